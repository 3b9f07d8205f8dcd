#include "harness/reaper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fdutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

int
reaper_become_subreaper(void)
{
	return prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 ? -errno : 0;
}

int
proc_brief_read(pid_t pid, struct proc_brief *ret)
{
	char path[64], buf[1024];
	(void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	if (n < 0)
		return (int) n;
	char *open = strchr(buf, '(');
	char *close = strrchr(buf, ')');
	if (!open || !close || close < open || close[1] != ' ')
		return -EINVAL;
	struct proc_brief b = { .pid = pid };
	size_t len = MIN((size_t) (close - open - 1), sizeof(b.comm) - 1);
	memcpy(b.comm, open + 1, len);
	b.comm[len] = '\0';
	int ppid, pgid, sid;
	char state;
	if (sscanf(close + 2, "%c %d %d %d", &state, &ppid, &pgid, &sid) != 4)
		return -EINVAL;
	b.state = state;
	b.ppid = ppid;
	b.pgid = pgid;
	b.sid = sid;
	*ret = b;
	return 0;
}

int
proc_descendants(pid_t ancestor, struct proc_brief **ret, size_t *ret_n)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	struct proc_brief *all = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		struct proc_brief b;
		if (proc_brief_read((pid_t) pid, &b) < 0)
			continue; /* gone meanwhile */
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct proc_brief *na = realloc(all, cap * sizeof(*na));
			if (!na) {
				free(all);
				(void) closedir(d);
				return -ENOMEM;
			}
			all = na;
		}
		all[n++] = b;
	}
	(void) closedir(d);
	/* Mark descendants by repeatedly following ppid links to the ancestor. */
	bool *mark = calloc(n ? n : 1, sizeof(bool));
	if (!mark) {
		free(all);
		return -ENOMEM;
	}
	bool changed = true;
	while (changed) {
		changed = false;
		for (size_t i = 0; i < n; i++) {
			if (mark[i])
				continue;
			bool desc = all[i].ppid == ancestor;
			for (size_t j = 0; !desc && j < n; j++)
				if (mark[j] && all[j].pid == all[i].ppid)
					desc = true;
			if (desc) {
				mark[i] = true;
				changed = true;
			}
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (mark[i])
			all[k++] = all[i];
	free(mark);
	*ret = all;
	*ret_n = k;
	return 0;
}

int
reap_children(pid_t watch, int *ret_status)
{
	int found = 0;
	for (;;) {
		int status;
		pid_t p = waitpid(-1, &status, WNOHANG | __WALL);
		if (p <= 0)
			break;
		if (watch > 0 && p == watch) {
			if (ret_status)
				*ret_status = status;
			found = 1;
		}
	}
	return found;
}

/* Live descendants: zombies whose parent is not us are not ours to count; the
 * parent reaps them or, when it dies, they come to us. */
static size_t
live_descendants(struct proc_brief **ret)
{
	struct proc_brief *d = NULL;
	size_t n = 0;
	if (proc_descendants(getpid(), &d, &n) < 0)
		return 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (d[i].state != 'Z' && d[i].state != 'X')
			d[k++] = d[i];
	*ret = d;
	return k;
}

/* Block until one of the pids exits or the deadline passes: pidfds in poll(),
 * never a sleep loop. */
static void
wait_any_exit(const struct proc_brief *procs, size_t n, uint64_t deadline_ns)
{
	size_t m = MIN(n, (size_t) 1024);
	struct pollfd *pfd = calloc(m ? m : 1, sizeof(*pfd));
	if (!pfd)
		return;
	size_t k = 0;
	for (size_t i = 0; i < m; i++) {
		int fd = pidfd_open(procs[i].pid, 0);
		if (fd < 0)
			continue; /* already gone: no need to wait at all */
		pfd[k++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	uint64_t now = now_ns();
	if (k == m && now < deadline_ns) {
		int ms = (int) MIN((deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, (uint64_t) 86400000);
		(void) poll(pfd, k, ms);
	}
	for (size_t i = 0; i < k; i++)
		(void) close(pfd[i].fd);
	free(pfd);
}

size_t
wait_descendants_gone(uint64_t deadline_ns)
{
	for (;;) {
		(void) reap_children(0, NULL);
		struct proc_brief *d = NULL;
		size_t n = live_descendants(&d);
		if (n == 0 || now_ns() >= deadline_ns) {
			free(d);
			return n;
		}
		wait_any_exit(d, n, deadline_ns);
		free(d);
	}
}

/* SigBlk and SigIgn of the main thread, from /proc/PID/status. */
static void
read_signal_masks(pid_t pid, uint64_t *ret_blocked, uint64_t *ret_ignored)
{
	char path[64], buf[4096];
	*ret_blocked = *ret_ignored = 0;
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	if (read_file_into(path, buf, sizeof(buf)) < 0)
		return;
	const char *blk = strstr(buf, "\nSigBlk:");
	const char *ign = strstr(buf, "\nSigIgn:");
	if (blk)
		*ret_blocked = strtoull(blk + 8, NULL, 16);
	if (ign)
		*ret_ignored = strtoull(ign + 8, NULL, 16);
}

static void
signal_all(pid_t pgid, int sig, const struct proc_brief *procs, size_t n)
{
	if (pgid > 0)
		(void) kill(-pgid, sig);
	for (size_t i = 0; i < n; i++)
		(void) kill(procs[i].pid, sig);
}

int
reaper_end_all(pid_t pgid, uint64_t grace_ns, struct ended_proc **ret, size_t *ret_n)
{
	struct proc_brief *start = NULL;
	size_t n = live_descendants(&start);
	struct ended_proc *ended = calloc(n ? n : 1, sizeof(*ended));
	if (!ended) {
		free(start);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		ended[i].pid = start[i].pid;
		ended[i].pgid = start[i].pgid;
		memcpy(ended[i].comm, start[i].comm, sizeof(ended[i].comm));
		ended[i].ended_by = NULL;
		ended[i].at_start = start[i];
		read_signal_masks(start[i].pid, &ended[i].sig_blocked, &ended[i].sig_ignored);
	}
	static const int rungs[] = { SIGINT, SIGTERM, SIGKILL };
	static const char *const rung_names[] = { "SIGINT", "SIGTERM", "SIGKILL" };
	for (size_t r = 0; r < ARRAY_SIZE(rungs); r++) {
		struct proc_brief *live = NULL;
		size_t nl = live_descendants(&live);
		/* Whoever died before this rung was ended by the previous one. */
		for (size_t i = 0; i < n; i++) {
			if (ended[i].ended_by)
				continue;
			bool alive = false;
			for (size_t j = 0; j < nl; j++)
				if (live[j].pid == ended[i].pid)
					alive = true;
			if (!alive)
				ended[i].ended_by = r == 0 ? "exited" : rung_names[r - 1];
		}
		if (nl == 0) {
			free(live);
			break;
		}
		signal_all(pgid, rungs[r], live, nl);
		free(live);
		uint64_t deadline = now_ns() + (rungs[r] == SIGKILL ? 5 * NSEC_PER_SEC : grace_ns);
		(void) wait_descendants_gone(deadline);
	}
	struct proc_brief *left = NULL;
	size_t nleft = live_descendants(&left);
	for (size_t i = 0; i < n; i++) {
		if (ended[i].ended_by)
			continue;
		bool alive = false;
		for (size_t j = 0; j < nleft; j++)
			if (left[j].pid == ended[i].pid)
				alive = true;
		ended[i].ended_by = alive ? "survived" : "SIGKILL";
	}
	free(left);
	(void) reap_children(0, NULL);
	free(start);
	*ret = ended;
	*ret_n = n;
	return 0;
}
