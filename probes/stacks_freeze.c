/* Freezing a live process for the unwinder: PTRACE_SEIZE every thread, and
 * the reasons an attach fails. */
#include "probes/stacks_internal.h"

char *
stacks_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

char *
stacks_errorf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

void
thread_set_error(struct frozen_thread *ft, char *error)
{
	ft->partial = true;
	if (ft->error) {
		free(error);
		return;
	}
	ft->error = error;
}

/* State letter of /proc/PID/task/TID/stat (or /proc/PID/stat when tid is 0).
 * The comm field may contain ')' and spaces: parse after the last ')'. */
static int
proc_state(pid_t pid, pid_t tid, char *ret_state)
{
	char path[64], buf[1024];
	if (tid > 0)
		(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int) pid, (int) tid);
	else
		(void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int) n;
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == '\0')
		return -EIO;
	*ret_state = p[2];
	return 0;
}

/* The value of "Key:" in /proc/PID/status, into buf. */
static int
proc_status_field(pid_t pid, const char *key, char *buf, size_t size)
{
	char path[64], data[4096];
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	ssize_t n = read_file_into(path, data, sizeof(data));
	if (n < 0)
		return (int) n;
	size_t key_len = strlen(key);
	for (char *line = data; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
			const char *v = line + key_len + 1;
			v += strspn(v, " \t");
			(void) snprintf(buf, size, "%s", v);
			return 0;
		}
		line = end ? end + 1 : NULL;
	}
	return -ENOENT;
}

static int
list_tids(pid_t pid, pid_t **ret_tids, size_t *ret_n)
{
	char path[64];
	(void) snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
	DIR *dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? -ESRCH : -errno;
	pid_t *tids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(dir))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || tid <= 0)
			continue;
		if (n == cap) {
			size_t new_cap = cap ? cap * 2 : 16;
			pid_t *grown = realloc(tids, new_cap * sizeof(*tids));
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			tids = grown;
			cap = new_cap;
		}
		tids[n++] = (pid_t) tid;
	}
	(void) closedir(dir);
	if (r < 0) {
		free(tids);
		return r;
	}
	*ret_tids = tids;
	*ret_n = n;
	return 0;
}
/* ---- freezing -------------------------------------------------------- */


static struct frozen_thread *
freeze_find(struct freeze *fz, pid_t tid)
{
	for (size_t i = 0; i < fz->n; i++)
		if (fz->threads[i].tid == tid)
			return &fz->threads[i];
	return NULL;
}

static struct frozen_thread *
freeze_add(struct freeze *fz, pid_t tid, enum thread_state state)
{
	if (fz->n == fz->cap) {
		size_t new_cap = fz->cap ? fz->cap * 2 : 16;
		struct frozen_thread *grown = realloc(fz->threads, new_cap * sizeof(*grown));
		if (!grown)
			return NULL;
		fz->threads = grown;
		fz->cap = new_cap;
	}
	struct frozen_thread *ft = &fz->threads[fz->n++];
	*ft = (struct frozen_thread){ .tid = tid, .state = state };
	return ft;
}

void
stacks_freeze_free(struct freeze *fz)
{
	for (size_t i = 0; i < fz->n; i++) {
		free(fz->threads[i].frames);
		free(fz->threads[i].error);
	}
	free(fz->threads);
	fz->threads = NULL;
	fz->n = fz->cap = 0;
}

static bool
thread_is_gone(pid_t pid, pid_t tid)
{
	char state;
	int r = proc_state(pid, tid, &state);
	return r == -ESRCH || (r == 0 && (state == 'Z' || state == 'X'));
}

static bool
has_cap_sys_ptrace(void)
{
	char value[64];
	if (proc_status_field(getpid(), "CapEff", value, sizeof(value)) < 0)
		return geteuid() == 0;
	unsigned long long caps = strtoull(value, NULL, 16);
	return (caps >> 19) & 1; /* CAP_SYS_PTRACE */
}

/* PF_KTHREAD of include/linux/sched.h, in field 9 of /proc/PID/stat. */
#define PF_KTHREAD_FLAG 0x00200000UL

/* The flags field of /proc/PID/stat (after the comm, which may hold ')'). */
static int
proc_flags(pid_t pid, unsigned long *ret)
{
	char path[64], buf[1024];
	(void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int) n;
	const char *p = strrchr(buf, ')');
	char state;
	int ppid, pgrp, session, tty_nr, tpgid;
	if (!p || sscanf(p + 1, " %c %d %d %d %d %d %lu", &state, &ppid, &pgrp, &session, &tty_nr, &tpgid, ret) != 7)
		return -EIO;
	return 0;
}

static int
yama_ptrace_scope(void)
{
	char scope[16];
	if (read_file_into("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof(scope)) <= 0)
		return -1;
	return atoi(scope);
}

/* Would Yama refuse us at this level? 1 lets CAP_SYS_PTRACE (and
 * ancestors) through, 2 only CAP_SYS_PTRACE, 3 nobody. */
static bool
yama_forbids(int level, bool privileged)
{
	return level >= 3 || (level >= 1 && !privileged);
}

static bool
ids_differ(pid_t pid, const char *key, unsigned mine)
{
	char value[256];
	unsigned r = 0, e = 0, s = 0;
	return proc_status_field(pid, key, value, sizeof(value)) == 0 && sscanf(value, "%u %u %u", &r, &e, &s) == 3 &&
	       (r != mine || e != mine || s != mine);
}

/* A non-dumpable process has the files under /proc/PID owned by root
 * (task_dump_owner), whatever its euid; /proc/PID itself keeps the euid, for
 * procps. So: status owned by root while the euid is not root. A process
 * running as root cannot be told apart this way; to anyone but root it is
 * another user's process anyway. */
static bool
looks_not_dumpable(pid_t pid)
{
	char value[256], path[64];
	unsigned r = 0, e = 0, s = 0;
	struct stat st;
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	return proc_status_field(pid, "Uid", value, sizeof(value)) == 0 && sscanf(value, "%u %u %u", &r, &e, &s) == 3 &&
	       e != 0 && stat(path, &st) == 0 && st.st_uid == 0;
}

int
stacks_ptrace_obstacle(pid_t pid, struct ptrace_obstacle *ret)
{
	struct ptrace_obstacle o = { .kind = PTRACE_OBSTACLE_UNKNOWN, .ptrace_scope = yama_ptrace_scope() };
	unsigned long flags = 0;
	int r = proc_flags(pid, &flags);
	if (r < 0)
		return r;
	char value[64];
	bool privileged = has_cap_sys_ptrace();
	if (flags & PF_KTHREAD_FLAG)
		o.kind = PTRACE_OBSTACLE_KERNEL_THREAD;
	else if (proc_status_field(pid, "TracerPid", value, sizeof(value)) == 0 && atoi(value) > 0) {
		o.kind = PTRACE_OBSTACLE_TRACED;
		o.tracer = (pid_t) atoi(value);
	} else if (!privileged && (ids_differ(pid, "Uid", (unsigned) getuid()) ||
				   ids_differ(pid, "Gid", (unsigned) getgid())))
		o.kind = PTRACE_OBSTACLE_OTHER_USER;
	else if (!privileged && looks_not_dumpable(pid))
		o.kind = PTRACE_OBSTACLE_NOT_DUMPABLE;
	else if (yama_forbids(o.ptrace_scope, privileged))
		o.kind = PTRACE_OBSTACLE_PTRACE_SCOPE;
	*ret = o;
	return 0;
}

const char *
ptrace_obstacle_name(enum ptrace_obstacle_kind kind)
{
	switch (kind) {
	case PTRACE_OBSTACLE_KERNEL_THREAD:
		return "kernel-thread";
	case PTRACE_OBSTACLE_TRACED:
		return "traced";
	case PTRACE_OBSTACLE_OTHER_USER:
		return "other-user";
	case PTRACE_OBSTACLE_NOT_DUMPABLE:
		return "not-dumpable";
	case PTRACE_OBSTACLE_PTRACE_SCOPE:
		return "ptrace-scope";
	case PTRACE_OBSTACLE_UNKNOWN:
		break;
	}
	return "unknown";
}

/* "ptrace: Operation not permitted (why)": the obstacle first, then every
 * other cause we can see from here, so the user knows what to change. */
static char *
eperm_reason(pid_t pid)
{
	struct ptrace_obstacle o;
	if (stacks_ptrace_obstacle(pid, &o) < 0)
		o = (struct ptrace_obstacle){ .kind = PTRACE_OBSTACLE_UNKNOWN, .ptrace_scope = yama_ptrace_scope() };
	if (o.kind == PTRACE_OBSTACLE_KERNEL_THREAD)
		return stacks_errorf("ptrace: %s (kernel thread: it has no user space to trace)", strerror(EPERM));

	struct strbuf hints = STRBUF_INIT;
	char value[256];
	bool privileged = has_cap_sys_ptrace();
	if (o.kind == PTRACE_OBSTACLE_TRACED) {
		char comm_path[64], comm[64] = "";
		(void) snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", (int) o.tracer);
		if (read_file_into(comm_path, comm, sizeof(comm)) > 0)
			comm[strcspn(comm, "\n")] = '\0';
		(void) strbuf_printf(&hints, "already traced by pid %d (%s): a process has one tracer at a time",
				     (int) o.tracer, comm);
	}
	if (!privileged) {
		unsigned ruid = 0, euid = 0, suid = 0;
		uid_t me = getuid();
		if (proc_status_field(pid, "Uid", value, sizeof(value)) == 0 &&
		    sscanf(value, "%u %u %u", &ruid, &euid, &suid) == 3 && (ruid != me || euid != me || suid != me))
			(void) strbuf_printf(&hints,
					     "%starget uid %u (euid %u) differs from ours (uid %u) "
					     "and we lack CAP_SYS_PTRACE",
					     hints.len ? "; " : "", ruid, euid, (unsigned) me);
		unsigned rgid = 0, egid = 0, sgid = 0;
		gid_t my_gid = getgid();
		if (proc_status_field(pid, "Gid", value, sizeof(value)) == 0 &&
		    sscanf(value, "%u %u %u", &rgid, &egid, &sgid) == 3 &&
		    (rgid != my_gid || egid != my_gid || sgid != my_gid))
			(void) strbuf_printf(&hints, "%starget gid %u differs from ours (gid %u)",
					     hints.len ? "; " : "", rgid, (unsigned) my_gid);
		if (looks_not_dumpable(pid))
			(void) strbuf_printf(&hints,
					     "%starget is not dumpable (setuid/setgid, or "
					     "prctl(PR_SET_DUMPABLE, 0)) and we lack CAP_SYS_PTRACE",
					     hints.len ? "; " : "");
	}
	static const char *const yama[] = {
		NULL,
		"only ancestors of the target may attach without CAP_SYS_PTRACE",
		"only CAP_SYS_PTRACE may attach",
		"attaching is disabled",
	};
	int level = o.ptrace_scope;
	if (level > 0 && level < (int) ARRAY_SIZE(yama) && yama_forbids(level, privileged))
		(void) strbuf_printf(&hints, "%skernel.yama.ptrace_scope=%d: %s", hints.len ? "; " : "", level,
				     yama[level]);
	if (hints.len == 0)
		(void) strbuf_append(&hints, privileged ? "denied although we have CAP_SYS_PTRACE: "
							  "a security module or seccomp?"
							: "we lack CAP_SYS_PTRACE");

	char *reason = stacks_errorf("ptrace: %s (%s)", strerror(EPERM), hints.data ? hints.data : "");
	strbuf_free(&hints);
	return reason;
}

static void
wait_for_stops(struct freeze *fz, uint64_t deadline)
{
	long delay_ns = 2000;
	for (unsigned spins = 0;; spins++) {
		size_t pending = 0;
		for (size_t i = 0; i < fz->n; i++) {
			struct frozen_thread *ft = &fz->threads[i];
			if (ft->state != THREAD_SEIZED)
				continue;
			siginfo_t si = { 0 };
			/* WSTOPPED without WEXITED: never reap. The target may be
			 * our own child, whose exit status belongs to its waiter. */
			int r = waitid(P_PID, (id_t) ft->tid, &si, WSTOPPED | WNOHANG | __WALL);
			if (r == 0 && si.si_pid == ft->tid) {
				ft->state = THREAD_STOPPED;
				/* No event in bits 8..15: a signal-delivery-stop took
				 * a signal from the thread; it is given back on detach. */
				if ((si.si_status >> 8) == 0)
					ft->resume_signal = si.si_status & 0xff;
				continue;
			}
			if ((r < 0 && errno == ECHILD) ||
			    (spins > 0 && thread_is_gone(fz->pid, ft->tid))) {
				ft->state = THREAD_GONE;
				continue;
			}
			pending++;
		}
		if (pending == 0)
			return;
		if (now_ns() >= deadline) {
			for (size_t i = 0; i < fz->n; i++) {
				struct frozen_thread *ft = &fz->threads[i];
				if (ft->state != THREAD_SEIZED)
					continue;
				char state = '?', wchan[64] = "?", path[96];
				(void) proc_state(fz->pid, ft->tid, &state);
				(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan",
						(int) fz->pid, (int) ft->tid);
				(void) read_file_into(path, wchan, sizeof(wchan));
				ft->state = THREAD_STUCK;
				thread_set_error(ft, stacks_errorf("did not stop within %llus (state %c, "
							    "wchan %s)",
							    (unsigned long long) (FREEZE_TIMEOUT_NS /
										  NSEC_PER_SEC),
							    state, wchan[0] ? wchan : "-"));
			}
			return;
		}
		/* A ptrace stop raises no fd event and waitid has no timeout:
		 * poll with a short backoff. Stops normally arrive within
		 * microseconds of PTRACE_INTERRUPT. */
		struct timespec ts = { .tv_nsec = delay_ns };
		(void) nanosleep(&ts, NULL);
		delay_ns = MIN(delay_ns * 2, 1000000L);
	}
}

/* Seize and interrupt every thread, rescanning the task list until a scan
 * finds no new tid (threads created meanwhile). Returns 0 with at least one
 * thread stopped, or -errno with *ret_reason. */
int
stacks_freeze_process(struct freeze *fz, char **ret_reason)
{
	uint64_t deadline = now_ns() + FREEZE_TIMEOUT_NS;
	size_t seized = 0;

	for (unsigned round = 0; round < FREEZE_MAX_ROUNDS; round++) {
		_cleanup_free_ pid_t *tids = NULL;
		size_t n_tids = 0, added = 0;
		int r = list_tids(fz->pid, &tids, &n_tids);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			break;
		for (size_t i = 0; i < n_tids; i++) {
			pid_t tid = tids[i];
			if (freeze_find(fz, tid))
				continue;
			char state;
			if (proc_state(fz->pid, tid, &state) < 0)
				continue;
			struct frozen_thread *ft;
			if (state == 'Z' || state == 'X') {
				/* A zombie never stops: attaching would hang the wait.
				 * The group leader lingers as one after pthread_exit. */
				ft = freeze_add(fz, tid, tid == fz->pid ? THREAD_FAILED : THREAD_GONE);
				if (!ft)
					return -ENOMEM;
				if (tid == fz->pid)
					thread_set_error(ft, strdup("thread exited (zombie group "
								    "leader)"));
				continue;
			}
			if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
				int e = errno;
				/* The kernel answers EPERM, not ESRCH, for a thread
				 * that became a zombie since we read its state. */
				if (e == EPERM && thread_is_gone(fz->pid, tid))
					e = ESRCH;
				if ((e == EPERM || e == EACCES) && seized == 0) {
					*ret_reason = eperm_reason(fz->pid);
					return -EPERM;
				}
				ft = freeze_add(fz, tid, e == ESRCH ? THREAD_GONE : THREAD_FAILED);
				if (!ft)
					return -ENOMEM;
				if (e != ESRCH)
					thread_set_error(ft, stacks_errorf("PTRACE_SEIZE: %s", strerror(e)));
				continue;
			}
			seized++;
			ft = freeze_add(fz, tid, THREAD_SEIZED);
			if (!ft) {
				/* Not tracked, so detach now: it has not stopped yet,
				 * so this may fail, and the worker's exit then does it. */
				(void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
				return -ENOMEM;
			}
			ft->attached = true;
			/* ESRCH here means it is exiting; the wait notices. */
			(void) ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
			added++;
		}
		if (added == 0)
			break;
		/* Past the deadline (a stuck thread used it up), threads found
		 * by a later scan still get a short grace to reach their stop. */
		wait_for_stops(fz, MAX(deadline, now_ns() + FREEZE_GRACE_NS));
	}

	size_t stopped = 0, stuck = 0;
	for (size_t i = 0; i < fz->n; i++) {
		stopped += fz->threads[i].state == THREAD_STOPPED;
		stuck += fz->threads[i].state == THREAD_STUCK;
	}
	if (stopped > 0)
		return 0;

	char state;
	int r = proc_state(fz->pid, 0, &state);
	if (r == -ESRCH)
		*ret_reason = strdup(seized ? "process exited during capture" : "no such process");
	else if (r == 0 && (state == 'Z' || state == 'X'))
		*ret_reason = strdup(seized ? "process exited during capture"
					    : "process is a zombie (exited, not yet reaped by "
					      "its parent)");
	else if (stuck > 0)
		*ret_reason = stacks_errorf("no thread stopped within %llus (uninterruptible sleep?)",
				     (unsigned long long) (FREEZE_TIMEOUT_NS / NSEC_PER_SEC));
	else
		*ret_reason = strdup("no thread left to freeze");
	return stuck > 0 && r == 0 && state != 'Z' ? -ETIMEDOUT : -ESRCH;
}

void
stacks_thaw_process(struct freeze *fz)
{
	for (size_t i = 0; i < fz->n; i++) {
		struct frozen_thread *ft = &fz->threads[i];
		if (!ft->attached || ft->state != THREAD_STOPPED)
			continue;
		/* ESRCH: killed meanwhile (no longer in its stop). It stays
		 * linked to this thread until it is reaped or we exit, so it
		 * still counts as attached: the caller then waits for our exit,
		 * or the next capture would find it traced (EPERM). */
		if (ptrace(PTRACE_DETACH, ft->tid, NULL, (void *) (uintptr_t) ft->resume_signal) == 0)
			ft->attached = false;
	}
}
