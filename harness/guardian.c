#include "harness/guardian.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness/reaper.h"
#include "util/timeutil.h"

static volatile pid_t worker_pid;

static void
forward(int sig)
{
	if (worker_pid > 0)
		(void) kill(worker_pid, sig);
}

int
guardian_lost_signal(void)
{
	return SIGRTMIN + 5;
}

int
guardian_split(void)
{
	if (reaper_become_subreaper() < 0)
		return -errno;
	pid_t guardian = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* the worker: told to wind down if the guardian disappears */
		(void) prctl(PR_SET_PDEATHSIG, guardian_lost_signal());
		if (getppid() != guardian)
			(void) kill(getpid(), guardian_lost_signal());
		(void) reaper_become_subreaper();
		return 0;
	}
	worker_pid = pid;
	struct sigaction sa = { .sa_handler = forward, .sa_flags = SA_RESTART };
	(void) sigemptyset(&sa.sa_mask);
	(void) sigaction(SIGINT, &sa, NULL);
	(void) sigaction(SIGTERM, &sa, NULL);
	(void) sigaction(SIGHUP, &sa, NULL);
	(void) signal(SIGPIPE, SIG_IGN);
	int status = 0;
	for (;;) {
		pid_t p = waitpid(-1, &status, 0);
		if (p == pid)
			break;
		if (p < 0 && errno == ECHILD)
			break;
		/* an orphan of the tree adopted by us: reaped, keep waiting */
	}
	/* Whatever the worker left behind (it was SIGKILLed, or crashed). */
	struct ended_proc *ended = NULL;
	size_t n = 0;
	if (reaper_end_all(0, 500 * NSEC_PER_MSEC, &ended, &n) == 0 && n > 0) {
		fprintf(stderr, "forkscope: the worker ended without tearing down its tree; ended %zu process%s:\n", n,
			n == 1 ? "" : "es");
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  pid %d (%s): %s\n", (int) ended[i].pid, ended[i].comm,
				ended[i].ended_by ? ended[i].ended_by : "?");
	}
	free(ended);
	if (WIFSIGNALED(status))
		_exit(128 + WTERMSIG(status));
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}
