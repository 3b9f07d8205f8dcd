/* The LD_PRELOAD probe's fd interposers (probes/preload_fd.c) on their hot
 * paths, in a fork child (where the fd tracking is armed), as ns per call:
 *
 *   fdtrack_bench write N      write(1 byte) to /dev/null, a number that
 *                              crossed the fork and was never closed
 *   fdtrack_bench openclose N  open + close of /dev/null (a fresh number)
 *   fdtrack_bench reused N     write on a number closed and reused after the
 *                              fork (sampled once per call site, then counted)
 *   fdtrack_bench fork N       fork + _exit + waitpid (child_start census)
 *
 * Run with and without LD_PRELOAD=libforkscope-probe.so FORKSCOPE_EVENTS=F
 * (docs/performance.md, "fd interposers"). Prints "MODE N ns_per_op": thread
 * CPU time per call, wall time per fork. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* CPU time of the calling thread for the loops of calls (other processes on
 * shared cores do not count), wall time for fork (the child's work and the
 * wait are the figure). */
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

static uint64_t
now(void)
{
	struct timespec ts;
	clock_gettime(clock_id, &ts);
	return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static double
run(const char *mode, long n, int held)
{
	char c = 'x';
	if (strcmp(mode, "fork") == 0)
		clock_id = CLOCK_MONOTONIC;
	uint64_t t0 = now();
	if (strcmp(mode, "write") == 0) {
		for (long i = 0; i < n; i++)
			if (write(held, &c, 1) != 1)
				return -1;
	} else if (strcmp(mode, "openclose") == 0) {
		for (long i = 0; i < n; i++) {
			int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				return -1;
			(void) close(fd);
		}
	} else if (strcmp(mode, "reused") == 0) {
		(void) close(held);
		int fd = open("/dev/zero", O_WRONLY | O_CLOEXEC); /* reuses held's number */
		if (fd != held)
			return -1;
		t0 = now();
		for (long i = 0; i < n; i++)
			if (write(fd, &c, 1) != 1)
				return -1;
	} else if (strcmp(mode, "fork") == 0) {
		for (long i = 0; i < n; i++) {
			pid_t pid = fork();
			if (pid == 0)
				_exit(0);
			if (pid < 0 || waitpid(pid, NULL, 0) != pid)
				return -1;
		}
	} else
		return -1;
	return (double) (now() - t0) / (double) n;
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fdtrack_bench write|openclose|reused|fork N\n");
		return 2;
	}
	long n = atol(argv[2]);
	int held = open("/dev/null", O_WRONLY | O_CLOEXEC); /* crosses the fork */
	if (held < 0 || n <= 0)
		return 2;
	int p[2];
	if (pipe(p) < 0)
		return 2;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		double ns = run(argv[1], n, held);
		dprintf(p[1], "%s %ld %.1f\n", argv[1], n, ns);
		_exit(ns < 0);
	}
	close(p[1]);
	char buf[128];
	ssize_t k = read(p[0], buf, sizeof(buf) - 1);
	int st = 0;
	(void) waitpid(pid, &st, 0);
	if (k <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	buf[k] = '\0';
	fputs(buf, stdout);
	return 0;
}
