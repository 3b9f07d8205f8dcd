#include "probes/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/macro.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

#define DEFAULT_INTERVAL_NS (100 * NSEC_PER_MSEC)
#define DEFAULT_SYSCALL_SAMPLES 10
#define DEFAULT_MAX_PROCESSES 4096
#define MAX_SAMPLED_THREADS 64
#define MAX_WAIT_FDS 64

void
snapshot_options_init(struct snapshot_options *opts)
{
	*opts = (struct snapshot_options){
	    .descendants = true,
	    .sample_interval_ns = DEFAULT_INTERVAL_NS,
	    .syscall_samples = DEFAULT_SYSCALL_SAMPLES,
	    .stacks = true,
	    .python = true,
	    .max_processes = DEFAULT_MAX_PROCESSES,
	};
}

/* ---- freeing ---- */

static void
thread_clear(struct snapshot_thread *t)
{
	free(t->name);
	free(t->wchan);
	free(t->wait_fds);
	free(t->histogram);
	free(t->sampling_error);
	free(t->partial_reason);
	free(t->wait_path);
}

static void
fd_clear(struct snapshot_fd *f)
{
	free(f->target);
	free(f->epoll_targets);
	free(f->pipe_fill_error);
	free(f->sock_protocol);
	unix_sock_info_clear(&f->unix_sock);
	free(f->locks);
	free(f->error);
}

static void
process_clear(struct snapshot_process *p)
{
	free(p->comm);
	free(p->argv);
	free(p->exe);
	for (size_t i = 0; i < p->n_threads; i++)
		thread_clear(&p->threads[i]);
	free(p->threads);
	for (size_t i = 0; i < p->n_fds; i++)
		fd_clear(&p->fds[i]);
	free(p->fds);
	thread_stacks_free(p->stacks, p->n_stacks);
	free(p->stacks_error);
	py_process_free(p->python);
	free(p->partial_reason);
	for (size_t i = 0; i < p->n_gaps; i++) {
		free(p->gaps[i].what);
		free(p->gaps[i].cause);
		free(p->gaps[i].detail);
	}
	free(p->gaps);
}

void
snapshot_free(struct snapshot *snap)
{
	if (!snap)
		return;
	for (size_t i = 0; i < snap->n_processes; i++)
		process_clear(&snap->processes[i]);
	free(snap->processes);
	free(snap->roots);
	free(snap->kernel);
	free(snap->sockdiag_error);
	free(snap);
}

/* ---- lookups ---- */

const struct snapshot_process *
snapshot_find_process(const struct snapshot *snap, pid_t pid)
{
	for (size_t i = 0; snap && i < snap->n_processes; i++)
		if (snap->processes[i].pid == pid)
			return &snap->processes[i];
	return NULL;
}

const struct snapshot_thread *
snapshot_find_thread(const struct snapshot_process *proc, pid_t tid)
{
	for (size_t i = 0; proc && i < proc->n_threads; i++)
		if (proc->threads[i].tid == tid)
			return &proc->threads[i];
	return NULL;
}

const struct snapshot_fd *
snapshot_find_fd(const struct snapshot_process *proc, int fd)
{
	for (size_t i = 0; proc && i < proc->n_fds; i++)
		if (proc->fds[i].fd == fd)
			return &proc->fds[i];
	return NULL;
}

/* ---- partial reasons ---- */

static void append_reason(char **reason, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
append_reason(char **reason, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	(void) vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct strbuf sb = STRBUF_INIT;
	if (*reason && (strbuf_append(&sb, *reason) < 0 || strbuf_append(&sb, "; ") < 0)) {
		strbuf_free(&sb);
		return;
	}
	if (strbuf_append(&sb, msg) < 0) {
		strbuf_free(&sb);
		return;
	}
	free(*reason);
	*reason = strbuf_steal(&sb);
}

static bool
same_or_null(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Record a gap (err: -errno or 0), once per (what, errno, cause, tid): a
 * hundred unreadable fdinfo files are one gap. */
static void
gap_add(struct snapshot_process *p, const char *what, int err, const char *cause, pid_t tid, pid_t tracer,
	const char *detail)
{
	for (size_t i = 0; i < p->n_gaps; i++) {
		const struct snapshot_gap *g = &p->gaps[i];
		if (strcmp(g->what, what) == 0 && g->err == -err && same_or_null(g->cause, cause) && g->tid == tid)
			return;
	}
	struct snapshot_gap *grown = realloc(p->gaps, (p->n_gaps + 1) * sizeof(*grown));
	if (!grown)
		return;
	p->gaps = grown;
	struct snapshot_gap g = { .what = strdup(what), .err = -err, .tid = tid, .tracer = tracer };
	g.cause = cause ? strdup(cause) : NULL;
	g.detail = detail ? strdup(detail) : NULL;
	if (!g.what || (cause && !g.cause) || (detail && !g.detail)) {
		free(g.what);
		free(g.cause);
		free(g.detail);
		return;
	}
	p->gaps[p->n_gaps++] = g;
}

/* The gap's name for what a reason text calls a step. */
static const char *
gap_what(const char *step)
{
	static const struct {
		const char *step, *what;
	} names[] = {
		{ "open /proc", "process" },
		{ "fd", "fd table" },
		{ "task", "threads" },
		{ "exited during snapshot", "second sample" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(step, names[i].step) == 0)
			return names[i].what;
	return step;
}

static void
proc_partial(struct snapshot_process *p, const char *what, int err)
{
	p->partial = true;
	append_reason(&p->partial_reason, "%s: %s", what, strerror(-err));
	gap_add(p, gap_what(what), err, NULL, 0, 0, NULL);
}

static void
thread_partial(struct snapshot_process *p, struct snapshot_thread *t, const char *what, int err)
{
	t->partial = true;
	append_reason(&t->partial_reason, "%s: %s", what, strerror(-err));
	gap_add(p, strcmp(what, "task") == 0 ? "thread" : what, err, NULL, t->tid, 0, NULL);
}

enum snapshot_gap_kind
snapshot_gap_classify(int err, const char *cause)
{
	if (cause) {
		if (strcmp(cause, "kernel-thread") == 0)
			return SNAPSHOT_GAP_KERNEL_THREAD;
		if (strcmp(cause, "traced") == 0)
			return SNAPSHOT_GAP_TRACED;
		if (strcmp(cause, "pid-reused") == 0 || strcmp(cause, "exited") == 0)
			return SNAPSHOT_GAP_GONE;
		if (strcmp(cause, "other-user") == 0 || strcmp(cause, "not-dumpable") == 0 ||
		    strcmp(cause, "ptrace-scope") == 0)
			return SNAPSHOT_GAP_DENIED;
	}
	if (err == ESRCH || err == ENOENT)
		return SNAPSHOT_GAP_GONE;
	if (err == EPERM || err == EACCES)
		return SNAPSHOT_GAP_DENIED;
	return SNAPSHOT_GAP_OTHER;
}

const char *
snapshot_gap_kind_name(enum snapshot_gap_kind kind)
{
	switch (kind) {
	case SNAPSHOT_GAP_GONE:
		return "gone";
	case SNAPSHOT_GAP_DENIED:
		return "denied";
	case SNAPSHOT_GAP_TRACED:
		return "traced";
	case SNAPSHOT_GAP_KERNEL_THREAD:
		return "kernel-thread";
	case SNAPSHOT_GAP_OTHER:
		break;
	}
	return "other";
}

/* Errors that mean "the process is gone", as opposed to "not allowed". */
static bool
is_gone(int err)
{
	return err == -ENOENT || err == -ESRCH;
}

static bool
is_denied(int err)
{
	return err == -EACCES || err == -EPERM;
}

/* ---- discovery ---- */

struct scan_entry {
	pid_t pid, ppid, pgrp, session;
};

struct pidset {
	pid_t *pids;
	unsigned *via;
	size_t n, cap;
};

static ssize_t
pidset_find(const struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->pids[i] == pid)
			return (ssize_t) i;
	return -1;
}

/* Returns 1 if added, 0 if already there (via merged), -ENOMEM. */
static int
pidset_add(struct pidset *s, pid_t pid, unsigned via)
{
	ssize_t k = pidset_find(s, pid);
	if (k >= 0) {
		s->via[k] |= via;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		pid_t *p = realloc(s->pids, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->pids = p;
		unsigned *v = realloc(s->via, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->via = v;
		s->cap = cap;
	}
	s->pids[s->n] = pid;
	s->via[s->n] = via;
	s->n++;
	return 1;
}

static void
pidset_free(struct pidset *s)
{
	free(s->pids);
	free(s->via);
}

static int
scan_proc(struct scan_entry **ret, size_t *ret_n)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	size_t n = 0, cap = 256;
	struct scan_entry *v = malloc(cap * sizeof(*v));
	if (!v) {
		(void) closedir(d);
		return -ENOMEM;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t u;
		size_t k = as_parse_u64(de->d_name, &u);
		if (!k || de->d_name[k] || u == 0 || u > INT_MAX)
			continue;
		char path[300], buf[1024];
		(void) snprintf(path, sizeof(path), "%s/stat", de->d_name);
		ssize_t len = read_file_at(dirfd(d), path, buf, sizeof(buf));
		struct proc_stat st;
		if (len <= 0 || procfs_parse_stat(buf, (size_t) len, &st) < 0)
			continue; /* exited since readdir */
		if (n == cap) {
			struct scan_entry *grown = realloc(v, cap * 2 * sizeof(*v));
			if (!grown) {
				free(v);
				(void) closedir(d);
				return -ENOMEM;
			}
			v = grown;
			cap *= 2;
		}
		v[n++] = (struct scan_entry){st.pid, st.ppid, st.pgrp, st.session};
	}
	(void) closedir(d);
	*ret = v;
	*ret_n = n;
	return 0;
}

static int
discover(const pid_t *roots, size_t n_roots, const struct snapshot_options *opts,
	 struct pidset *set, bool *ret_truncated)
{
	_cleanup_free_ struct scan_entry *scan = NULL;
	size_t n_scan = 0;
	pid_t self = getpid();
	int r;

	r = scan_proc(&scan, &n_scan);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_roots; i++) {
		char path[32];
		(void) snprintf(path, sizeof(path), "/proc/%d", (int) roots[i]);
		if (roots[i] <= 0 || access(path, F_OK) < 0)
			continue; /* a root that is gone is simply not in the snapshot */
		if ((r = pidset_add(set, roots[i], SNAPSHOT_VIA_ROOT)) < 0)
			return r;
	}
	for (size_t i = 0; i < n_scan; i++) {
		const struct scan_entry *e = &scan[i];
		unsigned via = 0;
		if (e->pid == self)
			continue;
		if (opts->subreaper > 0 && e->ppid == opts->subreaper)
			via |= SNAPSHOT_VIA_SUBREAPER;
		if (opts->pgid > 0 && e->pgrp == opts->pgid)
			via |= SNAPSHOT_VIA_PGID;
		if (opts->sid > 0 && e->session == opts->sid)
			via |= SNAPSHOT_VIA_SID;
		if (via && (r = pidset_add(set, e->pid, via)) < 0)
			return r;
	}
	if (opts->descendants) {
		/* Two sources: children files can miss a child mid-fork or
		 * after reparenting, the ppid scan can miss one born after it. */
		for (size_t k = 0; k < set->n; k++) {
			pid_t pid = set->pids[k];
			int dirfd = procfs_open_pid(pid);
			if (dirfd >= 0) {
				_cleanup_free_ pid_t *kids = NULL;
				size_t n_kids = 0;
				if (procfs_read_children(dirfd, &kids, &n_kids) == 0)
					for (size_t j = 0; j < n_kids; j++)
						if (kids[j] != self &&
						    (r = pidset_add(set, kids[j],
								    SNAPSHOT_VIA_CHILDREN)) < 0) {
							(void) close(dirfd);
							return r;
						}
				(void) close(dirfd);
			}
			for (size_t j = 0; j < n_scan; j++)
				if (scan[j].ppid == pid && scan[j].pid != self &&
				    (r = pidset_add(set, scan[j].pid, SNAPSHOT_VIA_PPID)) < 0)
					return r;
			if (set->n >= opts->max_processes)
				break;
		}
	}
	*ret_truncated = set->n > opts->max_processes;
	if (set->n > opts->max_processes)
		set->n = opts->max_processes;
	return 0;
}

/* ---- per-process reading ---- */

struct pipe_cache_entry {
	uint64_t ino;
	int r;
	struct pipe_fill fill;
};

struct take_ctx {
	const struct snapshot_options *opts;
	struct snapshot *snap;
	struct sockdiag_table *sockets;
	struct pipe_cache_entry *pipes;
	size_t n_pipes, cap_pipes;
	struct stack_cache *stack_cache;
	pid_t self;
};

static void
sample_from_stat(struct snapshot_thread_sample *s, const struct proc_stat *st)
{
	s->valid = true;
	s->state = st->state;
	s->utime = st->utime;
	s->stime = st->stime;
}

static void
read_thread(int pid_dirfd, struct snapshot_process *p, struct snapshot_thread *t)
{
	pid_t pid = p->pid;
	int r;
	int dirfd = procfs_open_task(pid_dirfd, t->tid);
	if (dirfd < 0) {
		thread_partial(p, t, "task", dirfd);
		return;
	}
	t->samples[0].at_ns = now_ns();
	struct proc_stat st;
	r = procfs_read_stat(dirfd, &st);
	if (r < 0) {
		thread_partial(p, t, "stat", r);
	} else {
		t->state = st.state;
		t->utime = st.utime;
		t->stime = st.stime;
		t->name = strdup(st.comm);
		sample_from_stat(&t->samples[0], &st);
	}
	struct proc_status status;
	r = procfs_read_status(dirfd, &status);
	if (r < 0) {
		thread_partial(p, t, "status", r);
	} else {
		t->sig_pending = status.sig_pending;
		t->sig_blocked = status.sig_blocked;
		t->voluntary_ctxt_switches = status.voluntary_ctxt_switches;
		t->nonvoluntary_ctxt_switches = status.nonvoluntary_ctxt_switches;
		t->samples[0].voluntary_ctxt_switches = status.voluntary_ctxt_switches;
		t->samples[0].nonvoluntary_ctxt_switches = status.nonvoluntary_ctxt_switches;
		if (!t->name)
			t->name = strdup(status.name);
	}
	char wchan[128] = "";
	r = procfs_read_wchan(dirfd, wchan, sizeof(wchan));
	if (r < 0 && !is_gone(r))
		thread_partial(p, t, "wchan", r);
	t->wchan = strdup(wchan);

	r = procfs_read_syscall(dirfd, &t->syscall);
	if (r < 0) {
		/* zombies and exiting threads have no syscall to show */
		if (!(is_gone(r) && t->state == 'Z'))
			thread_partial(p, t, "syscall", r);
		t->syscall.kind = PROC_SYSCALL_UNKNOWN;
	}
	(void) procfs_syscall_resolve_restart(&t->syscall, t->wchan);
	t->samples[0].syscall = t->syscall;
	(void) close(dirfd);

	/* Reads of the target's memory (process_vm_readv) need ptrace access:
	 * a refusal is a gap, not a partial record. */
	syscall_wait_decode(&t->syscall, &t->wait);
	if (t->wait.timeout_kind == SYSCALL_TIMEOUT_POINTER) {
		r = syscall_wait_read_timeout(pid, &t->wait);
		if (r < 0 && !is_gone(r))
			gap_add(p, "memory", r, NULL, t->tid, 0, "syscall timeout");
	}
	if (t->wait.fds_ptr && !t->wait.is_futex) {
		struct wait_fd fds[MAX_WAIT_FDS];
		size_t n = 0;
		r = syscall_wait_read_fds(pid, &t->wait, fds, ARRAY_SIZE(fds), &n);
		if (r < 0 && !is_gone(r))
			gap_add(p, "memory", r, NULL, t->tid, 0, "waited-for fds");
		if (r == 0 && n > 0) {
			t->wait_fds = malloc(n * sizeof(*fds));
			if (t->wait_fds) {
				memcpy(t->wait_fds, fds, n * sizeof(*fds));
				t->n_wait_fds = n;
			}
		}
	}
	if (t->wait.is_futex && t->wait.futex_uaddr) {
		if (futex_inspect(pid, &t->wait, &t->futex) == 0)
			t->has_futex = true;
		if (t->has_futex && t->futex.word_error && !is_gone(-t->futex.word_error))
			gap_add(p, "memory", -t->futex.word_error, NULL, t->tid, 0, "futex word");
	}
	(void) open_wait_path(t->tid, &t->syscall, &t->wait_path);
}

static int
pipe_cached(struct take_ctx *ctx, pid_t pid, int fd, uint64_t ino, struct pipe_fill *ret)
{
	for (size_t i = 0; i < ctx->n_pipes; i++)
		if (ctx->pipes[i].ino == ino) {
			if (ctx->pipes[i].r == 0)
				*ret = ctx->pipes[i].fill;
			return ctx->pipes[i].r;
		}
	struct pipe_fill fill = {0};
	int r = pipe_fill_read(pid, fd, &fill);
	if (r == 0 && fill.ino != ino)
		r = -ENOTTY; /* fd reused since readlink */
	/* Only cache a success: another holder may be readable where this one was not. */
	if (r == 0) {
		if (ctx->n_pipes == ctx->cap_pipes) {
			size_t cap = ctx->cap_pipes ? ctx->cap_pipes * 2 : 32;
			struct pipe_cache_entry *grown = realloc(ctx->pipes, cap * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			ctx->pipes = grown;
			ctx->cap_pipes = cap;
		}
		ctx->pipes[ctx->n_pipes++] = (struct pipe_cache_entry){ino, r, fill};
		*ret = fill;
	}
	return r;
}

static void
fd_error(struct snapshot_fd *f, const char *what, int err)
{
	append_reason(&f->error, "%s: %s", what, strerror(-err));
}

/* Returns the readlink error: the fd is useless without its target. */
static int
read_fd(struct take_ctx *ctx, int dirfd, struct snapshot_process *p, struct snapshot_fd *f)
{
	pid_t pid = p->pid;
	char name[32];
	int r;

	(void) snprintf(name, sizeof(name), "fd/%d", f->fd);
	r = procfs_readlink(dirfd, name, &f->target);
	if (r < 0) {
		fd_error(f, "readlink", r);
		return r;
	}
	f->kind = fd_kind_classify(f->target, &f->ino, &f->deleted);
	if (f->kind == FD_KIND_FILE) {
		/* a named FIFO is a pipe in every respect that matters here */
		char path[64];
		struct stat st;
		(void) snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, f->fd);
		if (stat(path, &st) == 0) {
			if (S_ISFIFO(st.st_mode)) {
				f->kind = FD_KIND_PIPE;
				f->ino = st.st_ino;
			} else if (S_ISDIR(st.st_mode)) {
				f->kind = FD_KIND_DIR;
			}
		}
	}

	struct proc_fdinfo fi;
	struct epoll_target *targets = NULL;
	r = procfs_read_fdinfo(dirfd, f->fd, &fi, &targets);
	if (r < 0) {
		fd_error(f, "fdinfo", r);
		if (!is_gone(r)) {
			char detail[32];
			(void) snprintf(detail, sizeof(detail), "fd %d", f->fd);
			gap_add(p, "fdinfo", r, NULL, 0, 0, detail);
		}
	} else {
		f->has_fdinfo = true;
		f->flags = fi.flags;
		f->access = (int) (fi.flags & O_ACCMODE);
		f->nonblock = (fi.flags & O_NONBLOCK) != 0;
		f->cloexec = (fi.flags & O_CLOEXEC) != 0;
		f->pos = fi.pos;
		f->mnt_id = fi.mnt_id;
		if (!f->ino)
			f->ino = fi.ino;
		f->epoll_targets = targets;
		f->n_epoll_targets = fi.n_targets;
		if (fi.present & FDINFO_PIDFD)
			f->pidfd_pid = fi.pidfd_pid;
		f->eventfd_count = fi.eventfd_count;
		f->signalfd_mask = fi.signalfd_mask;
		f->timerfd_clockid = fi.timerfd_clockid;
		f->timerfd_value_ns = fi.timerfd_value_ns;
		f->timerfd_interval_ns = fi.timerfd_interval_ns;
		f->timerfd_ticks = fi.timerfd_ticks;
	}
	if (f->kind == FD_KIND_FILE)
		(void) fd_locks_read(pid, f->fd, &f->locks, &f->n_locks);
	if (f->kind == FD_KIND_PIPE) {
		r = pipe_cached(ctx, pid, f->fd, f->ino, &f->pipe_fill);
		if (r == 0) {
			f->has_pipe_fill = true;
		} else {
			char msg[128];
			(void) snprintf(msg, sizeof(msg), "%s", strerror(-r));
			f->pipe_fill_error = strdup(msg);
		}
	} else if (f->kind == FD_KIND_SOCKET) {
		char path[64], proto[64];
		(void) snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, f->fd);
		ssize_t n = getxattr(path, "system.sockprotoname", proto, sizeof(proto) - 1);
		if (n > 0) {
			proto[n] = '\0';
			f->sock_protocol = strdup(proto);
		}
		const struct unix_sock_info *u = sockdiag_find_unix(ctx->sockets, f->ino);
		if (u && unix_sock_info_copy(u, &f->unix_sock) == 0)
			f->has_unix = true;
		const struct inet_sock_info *in = sockdiag_find_inet(ctx->sockets, f->ino);
		if (in) {
			f->has_inet = true;
			f->inet_sock = *in;
		}
	}
	return 0;
}

static void
read_fds(struct take_ctx *ctx, int dirfd, struct snapshot_process *p)
{
	_cleanup_free_ int *fds = NULL;
	size_t n = 0;
	int r = procfs_read_fds(dirfd, &fds, &n);
	if (r < 0) {
		if (!(is_gone(r) && p->zombie))
			proc_partial(p, "fd", r);
		return;
	}
	if (n == 0)
		return;
	p->fds = calloc(n, sizeof(*p->fds));
	if (!p->fds) {
		proc_partial(p, "fd", -ENOMEM);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct snapshot_fd *f = &p->fds[k];
		*f = (struct snapshot_fd){.fd = fds[i]};
		r = read_fd(ctx, dirfd, p, f);
		if (is_gone(r)) {
			/* closed between listing and reading: not an fd any more */
			fd_clear(f);
			continue;
		}
		if (r < 0)
			proc_partial(p, "fd target", r);
		k++;
	}
	p->n_fds = k;
}

static void
read_process(struct take_ctx *ctx, struct snapshot_process *p)
{
	int r;
	int dirfd = procfs_open_pid(p->pid);
	if (dirfd < 0) {
		proc_partial(p, "open /proc", dirfd);
		return;
	}
	struct proc_stat st;
	r = procfs_read_stat(dirfd, &st);
	if (r < 0) {
		proc_partial(p, "stat", r);
		(void) close(dirfd);
		return;
	}
	p->ppid = st.ppid;
	p->pgid = st.pgrp;
	p->sid = st.session;
	p->tty_nr = st.tty_nr;
	p->state = st.state;
	p->zombie = st.state == 'Z';
	p->starttime = st.starttime;
	p->utime = st.utime;
	p->stime = st.stime;
	p->num_threads = st.num_threads;
	p->comm = strdup(st.comm);

	struct proc_status status;
	r = procfs_read_status(dirfd, &status);
	if (r < 0) {
		proc_partial(p, "status", r);
	} else {
		p->uid = status.uid[0];
		p->euid = status.uid[1];
		p->gid = status.gid[0];
		p->egid = status.gid[1];
		p->tracer_pid = status.tracer_pid;
		p->is_traced = status.tracer_pid != 0;
		p->shd_pending = status.shd_pending;
		p->sig_ignored = status.sig_ignored;
		p->sig_caught = status.sig_caught;
		p->sigq_queued = status.sigq_queued;
		p->sigq_limit = status.sigq_limit;
	}
	if (p->ppid == 1 || (ctx->opts->subreaper > 0 && p->ppid == ctx->opts->subreaper))
		p->orphan_hint = !(p->found_via & SNAPSHOT_VIA_ROOT);

	r = procfs_read_io(dirfd, &p->io[0]);
	if (r == 0)
		p->has_io[0] = true;
	else if (is_denied(r))
		proc_partial(p, "io", r);

	r = procfs_read_cmdline(dirfd, &p->argv, &p->argc);
	if (r < 0 && !is_gone(r))
		proc_partial(p, "cmdline", r);
	r = procfs_readlink(dirfd, "exe", &p->exe);
	if (r < 0 && !(is_gone(r) && (p->zombie || p->argc == 0)))
		proc_partial(p, "exe", r);

	_cleanup_free_ pid_t *tids = NULL;
	size_t n_tids = 0;
	r = procfs_read_tasks(dirfd, &tids, &n_tids);
	if (r < 0) {
		proc_partial(p, "task", r);
	} else if (n_tids > 0) {
		p->threads = calloc(n_tids, sizeof(*p->threads));
		if (!p->threads) {
			proc_partial(p, "task", -ENOMEM);
		} else {
			p->n_threads = n_tids;
			for (size_t i = 0; i < n_tids; i++) {
				struct snapshot_thread *t = &p->threads[i];
				t->tid = tids[i];
				read_thread(dirfd, p, t);
				if (t->state == 'T' || t->state == 't')
					p->stopped = true;
				if (t->partial) {
					p->partial = true;
					append_reason(
					    &p->partial_reason, "thread %d: %s", (int) t->tid,
					    t->partial_reason ? t->partial_reason : "partial");
				}
			}
		}
	}
	if (p->state == 'T' || p->state == 't')
		p->stopped = true;
	read_fds(ctx, dirfd, p);
	(void) close(dirfd);
}

/* The cheap second look; also checks the pid still names the same process. */
static void
resample_process(struct snapshot_process *p, int idx)
{
	int dirfd = procfs_open_pid(p->pid);
	struct proc_stat st;
	int r = dirfd < 0 ? dirfd : procfs_read_stat(dirfd, &st);
	if (r < 0) {
		if (dirfd >= 0)
			(void) close(dirfd);
		proc_partial(p, is_gone(r) ? "exited during snapshot" : "second sample", r);
		return;
	}
	if (p->starttime && st.starttime != p->starttime) {
		p->partial = true;
		append_reason(&p->partial_reason, "pid reused during snapshot");
		gap_add(p, "second sample", 0, "pid-reused", 0, 0, NULL);
		(void) close(dirfd);
		return;
	}
	if (st.state == 'Z' && !p->zombie) {
		/* still readable, but what the first sample saw is gone */
		p->partial = true;
		append_reason(&p->partial_reason,
			      "exited during snapshot (zombie at second sample)");
		gap_add(p, "second sample", 0, "exited", 0, 0, "zombie at second sample");
	}
	if (procfs_read_io(dirfd, &p->io[idx]) == 0)
		p->has_io[idx] = true;
	for (size_t i = 0; i < p->n_threads; i++) {
		struct snapshot_thread *t = &p->threads[i];
		struct snapshot_thread_sample *s = &t->samples[idx];
		int tfd = procfs_open_task(dirfd, t->tid);
		if (tfd < 0)
			continue; /* thread ended: sample stays invalid */
		s->at_ns = now_ns();
		struct proc_stat tst;
		if (procfs_read_stat(tfd, &tst) == 0)
			sample_from_stat(s, &tst);
		struct proc_status tstatus;
		if (procfs_read_status(tfd, &tstatus) == 0) {
			s->voluntary_ctxt_switches = tstatus.voluntary_ctxt_switches;
			s->nonvoluntary_ctxt_switches = tstatus.nonvoluntary_ctxt_switches;
		}
		if (procfs_read_syscall(tfd, &s->syscall) < 0)
			s->syscall.kind = PROC_SYSCALL_UNKNOWN;
		(void) close(tfd);
	}
	(void) close(dirfd);
}

/* ---- quick syscall samples of running threads (ptrace) ---- */

#define SAMPLE_WINDOW_NS (20 * NSEC_PER_MSEC)
#define STOP_DEADLINE_NS (500 * NSEC_PER_MSEC)

/* Ptrace stops cannot be waited for with a timeout: no fd reports them and
 * SIGCHLD belongs to the caller. The windows are a few ms, so poll.
 *
 * Stops are consumed; an exit is only peeked at (WNOWAIT) when keep_exit is
 * set: a tracee that is also the caller's own child must stay for the caller
 * to reap, with its status. Other exited tracees must be reaped here, or
 * their real parent could not. */
static int
wait_tracee(pid_t tid, bool keep_exit, uint64_t deadline, int *ret_status)
{
	for (;;) {
		siginfo_t si = {0};
		/* ECHILD here may just mean "a zombie, and WEXITED not asked" */
		if (waitid(P_PID, (id_t) tid, &si, WSTOPPED | __WALL | WNOHANG) < 0 &&
		    errno != EINTR && errno != ECHILD)
			return -errno;
		if (si.si_pid == tid) {
			/* si_status is the ptrace exit_code: signal | event << 8 */
			*ret_status = (si.si_status << 8) | 0x7f;
			return 0;
		}
		si = (siginfo_t){0};
		int flags = WEXITED | __WALL | WNOHANG | (keep_exit ? WNOWAIT : 0);
		if (waitid(P_PID, (id_t) tid, &si, flags) < 0 && errno != EINTR)
			return -errno;
		if (si.si_pid == tid) {
			bool exited = si.si_code == CLD_EXITED || si.si_code == CLD_KILLED ||
				      si.si_code == CLD_DUMPED;
			/* Ptrace stops are reported whatever the flags say: a
			 * stop that arrived since the first call shows up here. */
			if (!exited && keep_exit)
				continue; /* not consumed (WNOWAIT): take it above */
			if (!exited) {
				*ret_status = (si.si_status << 8) | 0x7f;
				return 0;
			}
			*ret_status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8
							       : (si.si_status & 0x7f);
			return 0;
		}
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = {0, 200 * 1000};
		(void) nanosleep(&ts, NULL);
	}
}

static bool
tracee_gone(int status)
{
	return WIFEXITED(status) || WIFSIGNALED(status);
}

/* A signal-delivery-stop (not ours): the signal must be handed back. */
static int
stop_signal(int status)
{
	if (!WIFSTOPPED(status) || (status >> 16) != 0)
		return 0;
	int sig = WSTOPSIG(status);
	return sig == (SIGTRAP | 0x80) ? 0 : sig;
}

static void
histogram_add(struct snapshot_thread *t, enum syscall_sample_kind kind, long nr, uint64_t arg0,
	      bool has_result, int64_t result)
{
	for (size_t i = 0; i < t->n_histogram; i++) {
		struct syscall_histogram_entry *e = &t->histogram[i];
		if (e->kind == kind && e->nr == nr && e->arg0 == arg0) {
			e->count++;
			if (has_result) {
				e->has_result = true;
				e->result = result;
			}
			return;
		}
	}
	struct syscall_histogram_entry *grown =
	    realloc(t->histogram, (t->n_histogram + 1) * sizeof(*grown));
	if (!grown)
		return;
	t->histogram = grown;
	t->histogram[t->n_histogram++] = (struct syscall_histogram_entry){.kind = kind,
									  .nr = nr,
									  .arg0 = arg0,
									  .result = result,
									  .has_result = has_result,
									  .count = 1};
}

static int
cmp_histogram(const void *a, const void *b)
{
	const struct syscall_histogram_entry *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return (x->nr > y->nr) - (x->nr < y->nr);
}

static void
sampling_error(struct snapshot_thread *t, const char *what, int err)
{
	if (!t->sampling_error)
		append_reason(&t->sampling_error, "%s: %s", what, strerror(-err));
}

/* Is tid still traced by this thread? (TracerPid names the tracer thread.) */
static bool
traced_by_us(pid_t tid)
{
	char path[64], buf[4096];
	struct proc_status st;
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) tid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	if (n <= 0 || procfs_parse_status(buf, (size_t) n, &st) < 0)
		return false;
	return st.tracer_pid == gettid() && st.state != 'Z' && st.state != 'X';
}

/* Detach, whatever state the tracee is in. PTRACE_DETACH needs a ptrace-stop;
 * a tracee that is running (or that a kill woke) is stopped first. Checked
 * against /proc rather than our bookkeeping: leaving a target in "t" would
 * hang it for as long as we live. */
static void
release_tracee(struct snapshot_thread *t, bool keep_exit, int pending)
{
	pid_t tid = t->tid;
	for (int attempt = 0; attempt < 3; attempt++) {
		if (ptrace(PTRACE_DETACH, tid, 0, (void *) (long) pending) == 0)
			return;
		if (errno != ESRCH || !traced_by_us(tid))
			return; /* gone, or detached after all */
		int status;
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH)
			break;
		if (wait_tracee(tid, keep_exit, now_ns() + STOP_DEADLINE_NS, &status) == 0) {
			if (tracee_gone(status))
				return;
			pending = stop_signal(status);
		}
	}
	sampling_error(t, "ptrace detach", -ESRCH);
}

/* Seize the thread, let it run to its next syscall entry n times, note
 * number, first argument and result; detach. Never leaves it stopped: every
 * path that saw it stop ends in PTRACE_DETACH, handing back any signal it
 * was about to receive. */
static void
sample_thread_syscalls(struct snapshot_thread *t, unsigned n, bool keep_exit)
{
	pid_t tid = t->tid;
	int status, r, pending = 0;
	bool stopped = false;

	if (ptrace(PTRACE_SEIZE, tid, 0, (void *) (long) PTRACE_O_TRACESYSGOOD) < 0) {
		sampling_error(t, "ptrace seize", -errno);
		return;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
		sampling_error(t, "ptrace interrupt", -errno);
		goto detach_running;
	}
	r = wait_tracee(tid, keep_exit, now_ns() + STOP_DEADLINE_NS, &status);
	if (r < 0) {
		sampling_error(t, "wait for stop", r);
		goto detach_running;
	}
	if (tracee_gone(status))
		return;
	stopped = true;
	pending = stop_signal(status);

	for (unsigned i = 0; i < n; i++) {
		if (ptrace(PTRACE_SYSCALL, tid, 0, (void *) (long) pending) < 0) {
			sampling_error(t, "ptrace syscall", -errno);
			break;
		}
		pending = 0;
		stopped = false;
		r = wait_tracee(tid, keep_exit, now_ns() + SAMPLE_WINDOW_NS, &status);
		if (r == -ETIMEDOUT) {
			/* No syscall in the window: spinning in user space, or
			 * it went to sleep in one we did not see enter. */
			if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ||
			    wait_tracee(tid, keep_exit, now_ns() + STOP_DEADLINE_NS, &status) < 0) {
				sampling_error(t, "interrupt after window", -ETIMEDOUT);
				break;
			}
			if (tracee_gone(status))
				return;
			stopped = true;
			pending = stop_signal(status);
			t->n_syscall_samples++;
			histogram_add(t, SYSCALL_SAMPLE_USER, -1, 0, false, 0);
			continue;
		}
		if (r < 0) {
			sampling_error(t, "wait", r);
			break;
		}
		if (tracee_gone(status))
			return;
		stopped = true;
		if (!WIFSTOPPED(status) || WSTOPSIG(status) != (SIGTRAP | 0x80)) {
			pending = stop_signal(status); /* a signal or an event stop: not a sample */
			continue;
		}
		struct __ptrace_syscall_info info;
		if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *) sizeof(info), &info) < 0)
			break;
		if (info.op != PTRACE_SYSCALL_INFO_ENTRY)
			continue; /* an exit stop of the call we interrupted */
		long nr = (long) info.entry.nr;
		uint64_t arg0 = info.entry.args[0];
		/* Let it run to the exit stop to see the result (recv = 0 at EOF). */
		bool has_result = false;
		int64_t result = 0;
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) == 0) {
			stopped = false;
			r = wait_tracee(tid, keep_exit, now_ns() + SAMPLE_WINDOW_NS, &status);
			if (r == -ETIMEDOUT) {
				/* it blocks in there: interrupt (the call restarts) */
				if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ||
				    wait_tracee(tid, keep_exit, now_ns() + STOP_DEADLINE_NS,
						&status) < 0) {
					sampling_error(t, "interrupt in syscall", -ETIMEDOUT);
					t->n_syscall_samples++;
					histogram_add(t, SYSCALL_SAMPLE_SYSCALL, nr, arg0, false,
						      0);
					break;
				}
			} else if (r < 0) {
				sampling_error(t, "wait", r);
				break;
			}
			if (tracee_gone(status))
				return;
			stopped = true;
			if (WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80) &&
			    ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *) sizeof(info), &info) >
				0 &&
			    info.op == PTRACE_SYSCALL_INFO_EXIT) {
				has_result = true;
				result = info.exit.rval;
			} else {
				pending = stop_signal(status);
			}
		}
		t->n_syscall_samples++;
		histogram_add(t, SYSCALL_SAMPLE_SYSCALL, nr, arg0, has_result, result);
	}
	if (t->n_histogram > 1)
		qsort(t->histogram, t->n_histogram, sizeof(*t->histogram), cmp_histogram);
	if (!stopped) {
		/* resumed but no stop seen: get one, detach needs it */
		if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ||
		    wait_tracee(tid, keep_exit, now_ns() + STOP_DEADLINE_NS, &status) < 0)
			goto detach_running;
		if (tracee_gone(status))
			return;
		pending = stop_signal(status);
	}
	release_tracee(t, keep_exit, pending);
	return;

detach_running:
	release_tracee(t, keep_exit, 0);
}

static bool
thread_is_running(const struct snapshot_thread *t)
{
	return t->samples[0].valid && (t->state == 'R' || t->syscall.kind == PROC_SYSCALL_RUNNING);
}

static void
sample_running_threads(struct take_ctx *ctx)
{
	unsigned budget = MAX_SAMPLED_THREADS;
	if (ctx->opts->syscall_samples == 0)
		return;
	for (size_t i = 0; i < ctx->snap->n_processes && budget; i++) {
		struct snapshot_process *p = &ctx->snap->processes[i];
		if (p->pid == ctx->self || p->zombie || p->stopped || p->is_traced)
			continue;
		for (size_t j = 0; j < p->n_threads && budget; j++) {
			struct snapshot_thread *t = &p->threads[j];
			if (!thread_is_running(t))
				continue;
			budget--;
			/* the caller's own child: its exit is the caller's to reap */
			bool keep_exit = t->tid == p->pid && p->ppid == ctx->self;
			sample_thread_syscalls(t, ctx->opts->syscall_samples, keep_exit);
		}
	}
}

/* ---- stacks ---- */

static void
capture_stacks(struct take_ctx *ctx, struct snapshot_process *p)
{
	if (p->pid == ctx->self || p->zombie)
		return;
	struct stacks_options sopts = {.max_frames = ctx->opts->max_frames,
				       .symbolize_lines = true};
	if (!sopts.max_frames)
		sopts.max_frames = 64;
	struct thread_stack *stacks = NULL;
	size_t n = 0;
	char *reason = NULL;
	struct py_process *py = NULL;
	/* Python frames are read while the threads are still frozen. */
	if (ctx->opts->python) {
		sopts.while_frozen = python_stacks_frozen;
		sopts.userdata = &py;
	}
	int r = 0;
	for (size_t i = 0; i < p->n_threads && r == 0; i++)
		if (wait_breaks_on_interrupt(p->threads[i].wchan, &p->threads[i].syscall)) {
			reason = strdup("not stopped for stacks: a blocked write would return short if interrupted");
			r = -EBUSY;
		}
	if (r == 0)
		r = stacks_capture(ctx->stack_cache, p->pid, &sopts, &stacks, &n, &reason);
	if (r < 0) {
		py_process_free(py);
		if (reason)
			p->stacks_error = reason;
		else
			append_reason(&p->stacks_error, "stacks: %s", strerror(-r));
		/* ptrace refused: say by what, so no reader parses the text */
		struct ptrace_obstacle o = { .kind = PTRACE_OBSTACLE_UNKNOWN };
		bool obstacle = r == -EPERM && stacks_ptrace_obstacle(p->pid, &o) == 0;
		gap_add(p, "stacks", r, obstacle ? ptrace_obstacle_name(o.kind) : NULL, 0, o.tracer, p->stacks_error);
		/* without ptrace, Python frames can still be read (unfrozen, maybe torn) */
		if (ctx->opts->python && python_read(p->pid, &py) == 0)
			p->python = py;
		return;
	}
	p->python = py;
	free(reason);
	p->stacks = stacks;
	p->n_stacks = n;
	for (size_t i = 0; i < p->n_threads; i++)
		for (size_t k = 0; k < n; k++)
			if (stacks[k].tid == p->threads[i].tid)
				p->threads[i].stack = &stacks[k];
	for (size_t i = 0; i < p->n_threads; i++) {
		struct snapshot_thread *t = &p->threads[i];
		if (t->stack && t->stack->n_frames)
			(void) syscall_resolve_restart_by_frame(p->pid, t->stack->frames[0].function, &t->syscall,
								&t->wait);
	}
}

/* ---- futex owners across processes ---- */

static void
locate_futex_owners(struct snapshot *snap)
{
	for (size_t i = 0; i < snap->n_processes; i++) {
		struct snapshot_process *p = &snap->processes[i];
		for (size_t j = 0; j < p->n_threads; j++) {
			struct futex_info *f = &p->threads[j].futex;
			if (!p->threads[j].has_futex || f->owner_where != FUTEX_OWNER_OUTSIDE)
				continue;
			if (snapshot_find_process(snap, f->owner_pid))
				f->owner_where = FUTEX_OWNER_OTHER_PROCESS;
		}
	}
}

static void
sleep_until(uint64_t deadline)
{
	struct timespec ts = {.tv_sec = (time_t) (deadline / NSEC_PER_SEC),
			      .tv_nsec = (long) (deadline % NSEC_PER_SEC)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int
cmp_process(const void *a, const void *b)
{
	pid_t x = ((const struct snapshot_process *) a)->pid;
	pid_t y = ((const struct snapshot_process *) b)->pid;
	return (x > y) - (x < y);
}

int
snapshot_take(const pid_t *roots, size_t n, const struct snapshot_options *opts,
	      struct snapshot **ret)
{
	struct snapshot_options defaults;
	struct pidset set = {0};
	struct take_ctx ctx = {0};
	struct snapshot *snap = NULL;
	bool truncated = false;
	int r;

	if (!roots || n == 0)
		return -EINVAL;
	if (!opts) {
		snapshot_options_init(&defaults);
		opts = &defaults;
	}
	if (opts->max_processes == 0) {
		defaults = *opts;
		defaults.max_processes = DEFAULT_MAX_PROCESSES;
		opts = &defaults;
	}
	snap = calloc(1, sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	snap->schema_version = SNAPSHOT_SCHEMA_VERSION;
	snap->started_ns = now_ns();
	snap->sample_interval_ns = opts->sample_interval_ns;
	snap->clock_ticks = sysconf(_SC_CLK_TCK);
	snap->taken_by = getpid();
	snap->subreaper = opts->subreaper;
	snap->pgid = opts->pgid;
	snap->sid = opts->sid;
	struct utsname u;
	if (uname(&u) == 0)
		snap->kernel = strdup(u.release);
	snap->roots = malloc(n * sizeof(*roots));
	if (!snap->roots) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(snap->roots, roots, n * sizeof(*roots));
	snap->n_roots = n;

	ctx.opts = opts;
	ctx.snap = snap;
	ctx.self = getpid();

	r = discover(roots, n, opts, &set, &truncated);
	if (r < 0)
		goto fail;
	if (set.n == 0) {
		r = -ESRCH;
		goto fail;
	}
	snap->truncated = truncated;

	r = sockdiag_dump(&ctx.sockets);
	if (r < 0) {
		char msg[128];
		(void) snprintf(msg, sizeof(msg), "sock_diag: %s", strerror(-r));
		snap->sockdiag_error = strdup(msg);
	} else if (ctx.sockets->inet_error) {
		snap->sockdiag_error = strdup(ctx.sockets->inet_error);
	}

	snap->processes = calloc(set.n, sizeof(*snap->processes));
	if (!snap->processes) {
		r = -ENOMEM;
		goto fail;
	}
	snap->n_processes = set.n;
	for (size_t i = 0; i < set.n; i++) {
		snap->processes[i].pid = set.pids[i];
		snap->processes[i].found_via = set.via[i];
	}
	qsort(snap->processes, snap->n_processes, sizeof(*snap->processes), cmp_process);

	/* First sample: everything. */
	for (size_t i = 0; i < snap->n_processes; i++)
		read_process(&ctx, &snap->processes[i]);
	uint64_t first_done = now_ns();
	locate_futex_owners(snap);

	if (opts->stacks) {
		ctx.stack_cache = opts->stack_cache;
		struct stack_cache *own = NULL;
		if (!ctx.stack_cache)
			ctx.stack_cache = own = stack_cache_new();
		if (ctx.stack_cache)
			for (size_t i = 0; i < snap->n_processes; i++)
				capture_stacks(&ctx, &snap->processes[i]);
		stack_cache_free(own);
	} else if (opts->python) {
		/* no freezing without stacks: a torn read comes back marked partial */
		for (size_t i = 0; i < snap->n_processes; i++) {
			struct snapshot_process *p = &snap->processes[i];
			if (!p->zombie && p->pid != ctx.self && python_read(p->pid, &p->python) < 0)
				p->python = NULL;
		}
	}

	sample_running_threads(&ctx);

	/* Second sample, interval after the first. */
	sleep_until(first_done + opts->sample_interval_ns);
	for (size_t i = 0; i < snap->n_processes; i++)
		if (snap->processes[i].starttime)
			resample_process(&snap->processes[i], 1);

	snap->finished_ns = now_ns();
	snap->duration_ns = snap->finished_ns - snap->started_ns;
	sockdiag_table_free(ctx.sockets);
	free(ctx.pipes);
	pidset_free(&set);
	*ret = snap;
	return 0;
fail:
	sockdiag_table_free(ctx.sockets);
	free(ctx.pipes);
	pidset_free(&set);
	snapshot_free(snap);
	return r;
}
