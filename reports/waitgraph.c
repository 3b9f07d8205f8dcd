#include "reports/waitgraph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"
#include "util/strbuf.h"

#define WF_EXTERNAL ((pid_t) -1)

struct wf_proc *
wf_find_proc(struct wf_graph *g, pid_t pid)
{
	for (size_t i = 0; i < g->n_procs; i++)
		if (g->procs[i].pid == pid)
			return &g->procs[i];
	return NULL;
}

struct wf_fd *
wf_find_fd(struct wf_proc *p, int fd)
{
	for (size_t i = 0; i < p->n_fds; i++)
		if (p->fds[i].fd == fd)
			return &p->fds[i];
	return NULL;
}

size_t
wf_holders(struct wf_graph *g, uint64_t ino, char mode, struct wf_proc **out, int *out_fd, size_t max)
{
	size_t n = 0;
	if (!ino)
		return 0;
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		if (p->zombie)
			continue;
		for (size_t k = 0; k < p->n_fds; k++) {
			struct wf_fd *f = &p->fds[k];
			if (f->ino != ino)
				continue;
			if (mode && f->mode != mode && f->mode != 'b')
				continue;
			if (n < max) {
				out[n] = p;
				if (out_fd)
					out_fd[n] = f->fd;
			}
			n++;
			break; /* one entry per process */
		}
	}
	return MIN(n, max);
}

/* ---- deciding what each thread waits on ---- */

static bool
is_one_of(const char *s, const char *const *names)
{
	if (!s)
		return false;
	for (; *names; names++)
		if (strcmp(s, *names) == 0)
			return true;
	return false;
}

static const char *const read_calls[] = { "read", "readv", "pread64", "preadv", "preadv2", "recvfrom",
					  "recvmsg", "recvmmsg", NULL };
static const char *const write_calls[] = { "write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto",
					   "sendmsg", "sendmmsg", "splice", NULL };
static const char *const poll_calls[] = { "epoll_wait", "epoll_pwait", "epoll_pwait2", NULL };
static const char *const blind_poll_calls[] = { "poll", "ppoll", "select", "pselect6", NULL };
static const char *const signal_calls[] = { "pause", "rt_sigsuspend", "rt_sigtimedwait", "sigsuspend", NULL };
static const char *const sleep_calls[] = { "nanosleep", "clock_nanosleep", NULL };

static const char *const open_calls[] = { "open", "openat", "openat2", NULL };

#define LOCK_NB_FLAG 4
#define F_SETLKW_CMD 7
#define F_OFD_SETLKW_CMD 38
#define WNOHANG_FLAG 1
#define P_ALL_ID 0
#define P_PID_ID 1
#define P_PIDFD_ID 3

static void
classify_thread(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t)
{
	t->wait = WF_WAIT_NONE;
	t->wait_fd = -1;
	t->wait_pid = 0;
	t->blocking = false;
	if (p->zombie || t->state == 'Z' || t->state == 'X')
		return;
	/* A stopped thread (SIGSTOP, SIGTTIN, a debugger) waits for SIGCONT or its
	 * tracer; our own ptrace stop is not a wait. */
	if ((t->state == 'T' || t->state == 't') && !(p->tracer_pid && p->tracer_pid == g->taken_by)) {
		t->wait = WF_WAIT_STOPPED;
		t->blocking = true;
		return;
	}
	if (t->state == 'R' || !t->syscall || strcmp(t->syscall, "running") == 0)
		return;
	const char *sc = t->syscall;
	int64_t timeout = t->timeout_ms;
	if (strcmp(sc, "flock") == 0) {
		t->wait = WF_WAIT_LOCK;
		t->wait_fd = (int) t->args[0];
		timeout = (t->args[1] & LOCK_NB_FLAG) ? 0 : -1;
	} else if (strcmp(sc, "fcntl") == 0 && (t->args[1] == F_SETLKW_CMD || t->args[1] == F_OFD_SETLKW_CMD)) {
		t->wait = WF_WAIT_LOCK;
		t->wait_fd = (int) t->args[0];
		timeout = -1;
	} else if (is_one_of(sc, open_calls) && t->wchan && (strstr(t->wchan, "partner") || strstr(t->wchan, "fifo_open"))) {
		t->wait = WF_WAIT_OPEN;
		timeout = -1;
	} else if (strcmp(sc, "connect") == 0) {
		t->wait = WF_WAIT_CONNECT;
		t->wait_fd = (int) t->args[0];
		return; /* in progress: it completes or fails on its own */
	} else if (is_one_of(sc, read_calls)) {
		t->wait = WF_WAIT_READ;
		t->wait_fd = (int) t->args[0];
		timeout = -1;
	} else if (is_one_of(sc, write_calls)) {
		t->wait = WF_WAIT_WRITE;
		t->wait_fd = (int) t->args[0];
		timeout = -1;
	} else if (strcmp(sc, "accept") == 0 || strcmp(sc, "accept4") == 0) {
		t->wait = WF_WAIT_ACCEPT;
		t->wait_fd = (int) t->args[0];
		timeout = -1;
	} else if (is_one_of(sc, poll_calls)) {
		t->wait = WF_WAIT_POLL;
		t->wait_fd = (int) t->args[0];
		if (timeout == -2 && strcmp(sc, "epoll_pwait2") != 0)
			timeout = (int32_t) t->args[3];
	} else if (is_one_of(sc, blind_poll_calls)) {
		/* The fd set lives in the target's memory: the snapshot reads it when
		 * it can; without it we cannot see what the thread waits for. */
		t->wait = t->poll_fds ? WF_WAIT_POLL : WF_WAIT_UNKNOWN;
		t->wait_fd = -1;
		if (t->poll_fds && timeout == -2 && strcmp(sc, "poll") == 0)
			timeout = (int32_t) t->args[2];
	} else if (strcmp(sc, "wait4") == 0) {
		t->wait = WF_WAIT_CHILD;
		t->wait_pid = (pid_t) (int32_t) t->args[0];
		timeout = (t->args[2] & WNOHANG_FLAG) ? 0 : -1;
	} else if (strcmp(sc, "waitid") == 0) {
		t->wait = WF_WAIT_CHILD;
		uint64_t idtype = t->args[0];
		if (idtype == P_PID_ID)
			t->wait_pid = (pid_t) t->args[1];
		else if (idtype == P_ALL_ID)
			t->wait_pid = -1;
		else
			t->wait = WF_WAIT_UNKNOWN;
		timeout = (t->args[3] & WNOHANG_FLAG) ? 0 : -1;
	} else if (strcmp(sc, "futex") == 0 || strcmp(sc, "futex_waitv") == 0) {
		t->wait = WF_WAIT_FUTEX;
		if (timeout == -2)
			timeout = t->args[3] ? -2 : -1;
	} else if (is_one_of(sc, signal_calls)) {
		t->wait = WF_WAIT_SIGNAL;
		if (strcmp(sc, "rt_sigtimedwait") != 0)
			timeout = -1;
	} else if (is_one_of(sc, sleep_calls)) {
		t->wait = WF_WAIT_SLEEP;
	} else {
		t->wait = WF_WAIT_UNKNOWN;
	}
	if (t->wait == WF_WAIT_UNKNOWN)
		return;
	/* A wait that ends by itself within the window is not a block. */
	if (timeout == -1)
		t->blocking = true;
	else if (timeout >= 0)
		t->blocking = (uint64_t) timeout > g->window_ms;
	else
		t->blocking = false; /* timed, length unknown: give it the benefit of the doubt */
}

/* ---- who can release a wait ---- */

static size_t
add_pid(pid_t *out, size_t n, size_t max, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (out[i] == pid)
			return n;
	if (n < max)
		out[n++] = pid;
	return n;
}

static size_t
add_holders(struct wf_graph *g, uint64_t ino, char mode, pid_t *out, size_t n, size_t max)
{
	struct wf_proc *h[64];
	size_t k = wf_holders(g, ino, mode, h, NULL, ARRAY_SIZE(h));
	for (size_t i = 0; i < k; i++)
		n = add_pid(out, n, max, h[i]->pid);
	return n;
}

/* Releasers of "this fd becomes readable/ready". */
static size_t
fd_releasers(struct wf_graph *g, struct wf_proc *p, struct wf_fd *f, bool for_write, pid_t *out, size_t n,
	     size_t max)
{
	switch (f->kind) {
	case WF_FD_PIPE:
		/* a reader is released by writers (data or their last close), a writer by readers */
		return add_holders(g, f->ino, for_write ? 'r' : 'w', out, n, max);
	case WF_FD_SOCKET:
		if (f->listening) {
			/* Who could connect? In a connect-back design, the children that
			 * have not connected yet; anything else is outside our view. */
			for (size_t i = 0; i < g->n_procs; i++)
				if (g->procs[i].ppid == p->pid && !g->procs[i].zombie)
					n = add_pid(out, n, max, g->procs[i].pid);
			/* and whoever is connecting right now */
			for (size_t i = 0; i < g->n_procs; i++)
				for (size_t k = 0; k < g->procs[i].n_threads; k++)
					if (g->procs[i].threads[k].wait == WF_WAIT_CONNECT)
						n = add_pid(out, n, max, g->procs[i].pid);
			return n;
		}
		if (!f->peer_ino)
			return add_pid(out, n, max, WF_EXTERNAL);
		{
			/* peer end not held by anyone we can see: an outside process */
			struct wf_proc *h[1];
			if (wf_holders(g, f->peer_ino, 0, h, NULL, 1) == 0)
				return add_pid(out, n, max, WF_EXTERNAL);
			return add_holders(g, f->peer_ino, 0, out, n, max);
		}
	case WF_FD_PIDFD:
		if (f->pidfd_pid > 0) {
			struct wf_proc *c = wf_find_proc(g, f->pidfd_pid);
			if (!c)
				return n; /* gone: a pidfd of a reaped process is ready; nothing to wait for */
			return add_pid(out, n, max, c->pid);
		}
		return add_pid(out, n, max, WF_EXTERNAL);
	case WF_FD_EVENTFD:
		return add_holders(g, f->ino, 0, out, n, max);
	case WF_FD_TIMERFD:
		/* time passes, if the timer is armed and fires within the window */
		if (f->timerfd_value_ns == 0 || (uint64_t) f->timerfd_value_ns / 1000000 > g->window_ms)
			return n;
		return add_pid(out, n, max, WF_EXTERNAL);
	case WF_FD_SIGNALFD:
		return n; /* signals from outside are not modelled */
	case WF_FD_EPOLL:
	case WF_FD_FILE:
	case WF_FD_OTHER:
	default:
		return add_pid(out, n, max, WF_EXTERNAL);
	}
}

/* The holders of a lock on the file fd refers to: for flock and OFD locks
 * every process whose fd shares the locked open file description (its fdinfo
 * shows the lock); for POSIX locks the owning process. */
static size_t
lock_releasers(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t, pid_t *out, size_t n, size_t max)
{
	struct wf_fd *wf = wf_find_fd(p, t->wait_fd);
	if (!wf || !wf->ino)
		return add_pid(out, n, max, WF_EXTERNAL);
	size_t before = n;
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *q = &g->procs[i];
		if (q->zombie)
			continue;
		for (size_t k = 0; k < q->n_fds; k++)
			for (size_t l = 0; l < q->fds[k].n_locks; l++) {
				const struct fd_lock *lk = &q->fds[k].locks[l];
				if (lk->ino != wf->ino || lk->waiter)
					continue;
				if (strcmp(lk->kind, "POSIX") == 0) {
					if (lk->pid == p->pid)
						continue; /* a process never blocks on its own POSIX lock */
					n = add_pid(out, n, max, wf_find_proc(g, lk->pid) ? lk->pid : WF_EXTERNAL);
				} else if (!(q == p && &q->fds[k] == wf))
					n = add_pid(out, n, max, q->pid);
			}
	}
	/* held by someone whose fds we did not see */
	return n == before ? add_pid(out, n, max, WF_EXTERNAL) : n;
}

bool
wf_released_by_anyone(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t)
{
	if (t->wait == WF_WAIT_OPEN)
		return true;
	/* a process-shared futex (a multiprocessing lock in shared memory) can be
	 * released by any process mapping it: we cannot see which */
	return t->wait == WF_WAIT_FUTEX && t->syscall && strcmp(t->syscall, "futex") == 0 && !(t->args[1] & 128);
}

size_t
wf_releasers(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t, pid_t *out, size_t max)
{
	size_t n = 0;
	switch (t->wait) {
	case WF_WAIT_READ:
	case WF_WAIT_WRITE:
	case WF_WAIT_ACCEPT: {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		if (!f)
			return add_pid(out, n, max, WF_EXTERNAL);
		return fd_releasers(g, p, f, t->wait == WF_WAIT_WRITE, out, n, max);
	}
	case WF_WAIT_POLL: {
		if (t->poll_fds) {
			for (size_t i = 0; i < t->n_poll_fds; i++) {
				struct wf_fd *f = wf_find_fd(p, t->poll_fds[i]);
				if (f)
					n = fd_releasers(g, p, f, false, out, n, max);
			}
			return n;
		}
		struct wf_fd *ep = wf_find_fd(p, t->wait_fd);
		if (!ep || ep->kind != WF_FD_EPOLL || !ep->epoll_targets)
			return add_pid(out, n, max, WF_EXTERNAL);
		for (size_t i = 0; i < ep->n_epoll_targets; i++) {
			struct wf_fd *f = wf_find_fd(p, ep->epoll_targets[i]);
			if (!f)
				continue; /* closed after registration: never fires */
			n = fd_releasers(g, p, f, false, out, n, max);
		}
		return n;
	}
	case WF_WAIT_CHILD:
		if (t->wait_pid > 0) {
			if (wf_find_proc(g, t->wait_pid))
				return add_pid(out, n, max, t->wait_pid);
			return add_pid(out, n, max, WF_EXTERNAL);
		}
		for (size_t i = 0; i < g->n_procs; i++)
			if (g->procs[i].ppid == p->pid)
				n = add_pid(out, n, max, g->procs[i].pid);
		return n;
	case WF_WAIT_FUTEX:
		if (t->futex_owner && !t->futex_owner_in_process)
			return n; /* the owner does not exist here: nobody will unlock */
		return add_pid(out, n, max, p->pid);
	case WF_WAIT_SIGNAL: {
		/* a shell's `wait` is a sigsuspend for SIGCHLD: its children's exits;
		 * sigwait and pause wait for a signal a parent usually sends */
		for (size_t i = 0; i < g->n_procs; i++)
			if (g->procs[i].ppid == p->pid && !g->procs[i].zombie)
				n = add_pid(out, n, max, g->procs[i].pid);
		struct wf_proc *par = wf_find_proc(g, p->ppid);
		if (par && !par->zombie && strcmp(t->syscall, "rt_sigsuspend") != 0)
			n = add_pid(out, n, max, par->pid);
		return n;
	}
	case WF_WAIT_SLEEP:
	case WF_WAIT_OPEN:
		return n;
	case WF_WAIT_LOCK:
		return lock_releasers(g, p, t, out, n, max);
	case WF_WAIT_STOPPED:
		if (p->tracer_pid > 0 && t->state == 't')
			return add_pid(out, n, max, wf_find_proc(g, p->tracer_pid) ? p->tracer_pid : WF_EXTERNAL);
		return n; /* SIGCONT from whoever stopped it: nobody we can name */
	case WF_WAIT_CONNECT:
	case WF_WAIT_UNKNOWN:
	case WF_WAIT_NONE:
	default:
		return add_pid(out, n, max, WF_EXTERNAL);
	}
}

void
wf_analyze(struct wf_graph *g)
{
	if (!g->window_ms)
		g->window_ms = 60000;
	for (size_t i = 0; i < g->n_procs; i++)
		for (size_t k = 0; k < g->procs[i].n_threads; k++)
			classify_thread(g, &g->procs[i], &g->procs[i].threads[k]);

	/* Seed: threads that act on their own. */
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		p->live = false;
		for (size_t k = 0; k < p->n_threads; k++) {
			struct wf_thread *t = &p->threads[k];
			t->stuck = false;
			bool acts = !p->zombie && (!t->blocking || t->wait == WF_WAIT_UNKNOWN || t->wait == WF_WAIT_NONE ||
						   t->wait == WF_WAIT_CONNECT);
			/* A helper thread in a timed lock wait (an idle pool worker: trio's
			 * thread cache, concurrent.futures) wakes itself when the time is
			 * up; that wakes nobody else, so it does not make its process able
			 * to release the others. */
			bool self_timer = acts && t->wait == WF_WAIT_FUTEX && t->timeout_ms >= 0 && t->tid != p->pid &&
					  p->n_threads > 1;
			/* A spinning thread is live as far as waits go; busy-loop is judged apart. */
			if (acts && !self_timer)
				p->live = true;
			else if (!p->zombie)
				t->stuck = true;
		}
	}
	/* Spread liveness through "released by" edges until nothing changes. */
	bool changed = true;
	while (changed) {
		changed = false;
		for (size_t i = 0; i < g->n_procs; i++) {
			struct wf_proc *p = &g->procs[i];
			for (size_t k = 0; k < p->n_threads; k++) {
				struct wf_thread *t = &p->threads[k];
				if (!t->stuck)
					continue;
				if (wf_released_by_anyone(g, p, t)) {
					for (size_t j = 0; j < g->n_procs && t->stuck; j++)
						if (&g->procs[j] != p && g->procs[j].live) {
							t->stuck = false;
							p->live = true;
							changed = true;
						}
					if (!t->stuck)
						continue;
				}
				pid_t rel[256];
				size_t n = wf_releasers(g, p, t, rel, ARRAY_SIZE(rel));
				for (size_t r = 0; r < n; r++) {
					struct wf_proc *q = rel[r] == WF_EXTERNAL ? NULL : wf_find_proc(g, rel[r]);
					if (rel[r] == WF_EXTERNAL || (q && q->live) || (!q && rel[r] > 0)) {
						t->stuck = false;
						if (!p->live)
							p->live = true;
						changed = true;
						break;
					}
				}
			}
		}
	}
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		p->stuck = !p->zombie && p->n_threads > 0 && !p->live;
	}
}

const char *
wf_proc_label(const struct wf_proc *p, char *buf, size_t size)
{
	if (!p) {
		(void) snprintf(buf, size, "?");
		return buf;
	}
	if (p->actor)
		(void) snprintf(buf, size, "%s (pid %d)", p->actor, (int) p->pid);
	else
		(void) snprintf(buf, size, "%s (pid %d)", p->display ? p->display : p->comm ? p->comm : "?", (int) p->pid);
	return buf;
}

static void
describe_fd_wait(struct strbuf *sb, struct wf_graph *g, struct wf_proc *p, struct wf_fd *f, bool for_write)
{
	char lab[128];
	switch (f->kind) {
	case WF_FD_PIPE:
		if (for_write)
			(void) strbuf_printf(sb, "room in pipe:[%llu] (fd %d", (unsigned long long) f->ino, f->fd);
		else
			(void) strbuf_printf(sb, "data or EOF on pipe:[%llu] (fd %d", (unsigned long long) f->ino, f->fd);
		if (f->queued >= 0 && f->capacity > 0)
			(void) strbuf_printf(sb, ", %lld/%lld bytes queued", (long long) f->queued, (long long) f->capacity);
		(void) strbuf_printf(sb, ")");
		break;
	case WF_FD_SOCKET:
		if (f->listening) {
			(void) strbuf_printf(sb, "a connection on listener socket:[%llu] (fd %d%s%s)",
					     (unsigned long long) f->ino, f->fd, f->name ? ", " : "", f->name ? f->name : "");
			break;
		}
		(void) strbuf_printf(sb, "%s socket:[%llu] (fd %d", for_write ? "room in" : "a message or EOF on",
				     (unsigned long long) f->ino, f->fd);
		if (f->inet)
			(void) strbuf_printf(sb, ", %s %s -> %s", f->inet_protocol == 17 ? "UDP" : "TCP", f->local, f->remote);
		if (f->has_tcp_info)
			(void) strbuf_printf(sb, ", last data in %.1f s ago, out %.1f s ago", f->last_data_recv_ms / 1000.0,
					     f->last_data_sent_ms / 1000.0);
		if (f->peer_ino)
			(void) strbuf_printf(sb, ", peer socket:[%llu]", (unsigned long long) f->peer_ino);
		(void) strbuf_printf(sb, ")");
		break;
	case WF_FD_PIDFD: {
		struct wf_proc *c = wf_find_proc(g, f->pidfd_pid);
		(void) strbuf_printf(sb, "the exit of %s [pidfd %d]",
				     c ? wf_proc_label(c, lab, sizeof(lab)) : "pid ?", f->fd);
		break;
	}
	case WF_FD_EVENTFD:
		(void) strbuf_printf(sb, "eventfd (fd %d)", f->fd);
		break;
	case WF_FD_TIMERFD:
		(void) strbuf_printf(sb, "a timer (fd %d)", f->fd);
		break;
	case WF_FD_SIGNALFD:
		(void) strbuf_printf(sb, "a signal (signalfd %d)", f->fd);
		break;
	default:
		(void) strbuf_printf(sb, "fd %d (%s)", f->fd, f->target ? f->target : "?");
	}
}

char *
wf_describe_wait(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t)
{
	struct strbuf sb = STRBUF_INIT;
	char lab[128];
	switch (t->wait) {
	case WF_WAIT_READ:
	case WF_WAIT_WRITE:
	case WF_WAIT_ACCEPT: {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		if (f)
			describe_fd_wait(&sb, g, p, f, t->wait == WF_WAIT_WRITE);
		else
			(void) strbuf_printf(&sb, "fd %d", t->wait_fd);
		break;
	}
	case WF_WAIT_POLL: {
		struct wf_fd *ep = t->poll_fds ? NULL : wf_find_fd(p, t->wait_fd);
		(void) strbuf_printf(&sb, "any of: ");
		size_t shown = 0;
		size_t n_targets = t->poll_fds ? t->n_poll_fds : ep && ep->epoll_targets ? ep->n_epoll_targets : 0;
		{
			for (size_t i = 0; i < n_targets; i++) {
				struct wf_fd *f = wf_find_fd(p, t->poll_fds ? t->poll_fds[i] : ep->epoll_targets[i]);
				if (!f)
					continue;
				/* The loop's own wakeup pair is noise in a report. */
				if (f->kind == WF_FD_SOCKET && f->peer_ino) {
					struct wf_proc *h[4];
					size_t nh = wf_holders(g, f->peer_ino, 0, h, NULL, 4);
					if (nh == 1 && h[0] == p)
						continue;
				}
				(void) strbuf_printf(&sb, "%s", shown++ ? "; " : "");
				describe_fd_wait(&sb, g, p, f, false);
			}
		}
		if (!shown)
			(void) strbuf_printf(&sb, "(interest list unknown)");
		break;
	}
	case WF_WAIT_CHILD: {
		struct wf_proc *c = t->wait_pid > 0 ? wf_find_proc(g, t->wait_pid) : NULL;
		if (t->wait_pid > 0)
			(void) strbuf_printf(&sb, "the exit of %s (blocking %s)", c ? wf_proc_label(c, lab, sizeof(lab)) : "its child",
					     t->syscall);
		else
			(void) strbuf_printf(&sb, "the exit of any child (blocking %s)", t->syscall);
		break;
	}
	case WF_WAIT_FUTEX:
		(void) strbuf_printf(&sb, "futex 0x%llx", (unsigned long long) t->futex_addr);
		if (t->futex_owner)
			(void) strbuf_printf(&sb, " owned by tid %d%s", (int) t->futex_owner,
					     t->futex_owner_in_process ? "" : " (not a thread of this process)");
		break;
	case WF_WAIT_SIGNAL: {
		bool kids = false;
		for (size_t i = 0; i < g->n_procs; i++)
			if (g->procs[i].ppid == p->pid && !g->procs[i].zombie)
				kids = true;
		(void) strbuf_printf(&sb, "a signal (%s%s)", t->syscall,
				     kids ? "; SIGCHLD when a child exits" : "; nothing in the tree will send one");
		break;
	}
	case WF_WAIT_SLEEP:
		(void) strbuf_printf(&sb, "a timer (%s)", t->syscall);
		break;
	case WF_WAIT_LOCK: {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		bool is_flock = strcmp(t->syscall, "flock") == 0;
		(void) strbuf_printf(&sb, "%s lock on %s (fd %d, inode %llu)",
				     is_flock ? "an flock(2)" : t->args[1] == F_OFD_SETLKW_CMD ? "an OFD (fcntl F_OFD_SETLKW)" :
				     "a POSIX (fcntl F_SETLKW)", f && f->target ? f->target : "?", t->wait_fd,
				     (unsigned long long) (f ? f->ino : 0));
		pid_t takers[16];
		size_t nt = 0;
		for (size_t i = 0; f && i < g->n_procs; i++)
			for (size_t k = 0; k < g->procs[i].n_fds; k++)
				for (size_t l = 0; l < g->procs[i].fds[k].n_locks; l++) {
					const struct fd_lock *lk = &g->procs[i].fds[k].locks[l];
					if (lk->ino == f->ino && !lk->waiter && lk->pid > 0)
						nt = add_pid(takers, nt, ARRAY_SIZE(takers), lk->pid);
				}
		for (size_t i = 0; i < nt; i++)
			(void) strbuf_printf(&sb, "%s pid %d", i ? "," : ", taken by", (int) takers[i]);
		break;
	}
	case WF_WAIT_OPEN:
		(void) strbuf_printf(&sb, "another process to open FIFO %s (open blocks until the other side is opened)",
				     t->wait_path ? t->wait_path : "(path unreadable)");
		break;
	case WF_WAIT_STOPPED: {
		if (t->state == 't') {
			(void) strbuf_printf(&sb, "its tracer (pid %d) to resume it (ptrace stop)", (int) p->tracer_pid);
			break;
		}
		(void) strbuf_printf(&sb, "SIGCONT: it is stopped (state T%s%s)", t->wchan && *t->wchan ? ", wchan " : "",
				     t->wchan && *t->wchan ? t->wchan : "");
		/* stopped inside a read/write of its terminal: job control stopped
		 * a background job (SIGTTIN/SIGTTOU) until its shell brings it to
		 * the foreground */
		bool rd = is_one_of(t->syscall, read_calls), wr = is_one_of(t->syscall, write_calls);
		struct wf_fd *f = rd || wr ? wf_find_fd(p, (int) t->args[0]) : NULL;
		if (f && f->target && (strncmp(f->target, "/dev/pts/", 9) == 0 || strncmp(f->target, "/dev/tty", 8) == 0))
			(void) strbuf_printf(&sb, "; stopped while %s the terminal %s: a background job (SIG%s) waits for its shell to bring it to the foreground",
					     rd ? "reading" : "writing", f->target, rd ? "TTIN" : "TTOU");
		break;
	}
	case WF_WAIT_CONNECT:
		(void) strbuf_printf(&sb, "a connection to complete (connect on fd %d)", t->wait_fd);
		break;
	case WF_WAIT_UNKNOWN:
		(void) strbuf_printf(&sb, "unclassified wait: syscall %s, wchan %s", t->syscall ? t->syscall : "?",
				     t->wchan && *t->wchan ? t->wchan : "-");
		break;
	case WF_WAIT_NONE:
		(void) strbuf_printf(&sb, "nothing: it is running%s%s", t->hot_syscall ? ", looping on " : "",
				     t->hot_syscall ? t->hot_syscall : "");
		break;
	default:
		(void) strbuf_printf(&sb, "%s", t->syscall ? t->syscall : "?");
	}
	if (t->timeout_ms >= 0 && t->wait != WF_WAIT_NONE && t->wait != WF_WAIT_STOPPED)
		(void) strbuf_printf(&sb, " [timeout %lld.%03llds%s]", (long long) (t->timeout_ms / 1000),
				     (long long) (t->timeout_ms % 1000), t->blocking ? ", beyond the window" : "");
	return strbuf_steal(&sb);
}

static const char *const wait_names[] = {
	[WF_WAIT_NONE] = "none",     [WF_WAIT_READ] = "read",	  [WF_WAIT_WRITE] = "write",
	[WF_WAIT_ACCEPT] = "accept", [WF_WAIT_POLL] = "poll",	  [WF_WAIT_CHILD] = "child",
	[WF_WAIT_FUTEX] = "futex",   [WF_WAIT_SIGNAL] = "signal", [WF_WAIT_SLEEP] = "sleep",
	[WF_WAIT_LOCK] = "lock",     [WF_WAIT_OPEN] = "fifo-open", [WF_WAIT_STOPPED] = "stopped",
	[WF_WAIT_CONNECT] = "connect", [WF_WAIT_UNKNOWN] = "unclassified",
};

const char *
wf_wait_name(enum wf_wait_kind w)
{
	return (size_t) w < ARRAY_SIZE(wait_names) && wait_names[w] ? wait_names[w] : "?";
}

char *
wf_explain(struct wf_graph *g)
{
	struct strbuf sb = STRBUF_INIT;
	char lab[128];
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		(void) strbuf_printf(&sb, "%s ppid %d state %c%s%s%s\n", wf_proc_label(p, lab, sizeof(lab)), (int) p->ppid,
				     p->state ? p->state : '?', p->zombie ? " zombie" : "", p->stuck ? " STUCK" : "",
				     p->live ? " live" : "");
		for (size_t k = 0; k < p->n_threads; k++) {
			struct wf_thread *t = &p->threads[k];
			char *what = wf_describe_wait(g, p, t);
			(void) strbuf_printf(&sb, "  thread %d %s: %s wait=%s blocking=%d stuck=%d timeout=%lldms cpu=%llu/%llu hot=%s(%lld)x%u\n",
					     (int) t->tid, t->name ? t->name : "?", t->syscall ? t->syscall : "-",
					     wait_names[t->wait], t->blocking, t->stuck, (long long) t->timeout_ms,
					     (unsigned long long) t->cpu_delta_ns, (unsigned long long) t->sample_interval_ns,
					     t->hot_syscall ? t->hot_syscall : "-", (long long) t->hot_fd, t->hot_samples);
			(void) strbuf_printf(&sb, "    waits for: %s\n", what);
			free(what);
			pid_t rel[64];
			size_t n = wf_releasers(g, p, t, rel, 64);
			(void) strbuf_printf(&sb, "    released by:");
			for (size_t r = 0; r < n; r++)
				(void) strbuf_printf(&sb, " %d", (int) rel[r]);
			(void) strbuf_printf(&sb, "%s\n", n ? "" : " nobody");
		}
	}
	return strbuf_steal(&sb);
}

/* ---- the "no hang found" summary ---- */

static void
thread_summary(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t, struct strbuf *sb, json_t *threads)
{
	char *what = t->wait == WF_WAIT_NONE ? NULL : wf_describe_wait(g, p, t);
	pid_t rel[32];
	size_t n = t->wait == WF_WAIT_NONE ? 0 : wf_releasers(g, p, t, rel, ARRAY_SIZE(rel));
	const char *doing = t->state == 'R' || (t->syscall && strcmp(t->syscall, "running") == 0) ? "running" :
			    t->wait == WF_WAIT_NONE ? "not in a wait" : wf_wait_name(t->wait);
	(void) strbuf_printf(sb, "    %d %-15s %c %s", (int) t->tid, t->name ? t->name : "?", t->state ? t->state : '?', doing);
	if (what)
		(void) strbuf_printf(sb, ": %s", what);
	if (t->stuck)
		(void) strbuf_printf(sb, " — STUCK");
	else if (t->blocking && n)
		(void) strbuf_printf(sb, " — can be released");
	if (t->cpu_delta_ns >= 10000000ULL)
		(void) strbuf_printf(sb, " (cpu %.0f ms in %.0f ms)", (double) t->cpu_delta_ns / 1e6,
				     (double) t->sample_interval_ns / 1e6);
	(void) strbuf_printf(sb, "\n");
	json_t *rj = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rj, json_integer(rel[i]));
	json_array_append_new(threads, json_pack("{s:i,s:s?,s:s#,s:s,s:s?,s:s?,s:s?,s:I,s:b,s:b,s:I,s:o}", "tid", (int) t->tid,
						 "name", t->name, "state", &t->state, t->state ? 1 : 0, "wait", doing,
						 "waits_for", what, "syscall", t->syscall, "wchan", t->wchan,
						 "timeout_ms", (json_int_t) t->timeout_ms, "blocking", t->blocking, "stuck",
						 t->stuck, "cpu_ns", (json_int_t) t->cpu_delta_ns, "released_by", rj));
	free(what);
}

static char *
summary_build(struct wf_graph *g, json_t **ret_json)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *out = json_array();
	char lab[128];
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		(void) strbuf_printf(&sb, "  %s ppid %d, state %c%s%s\n", wf_proc_label(p, lab, sizeof(lab)), (int) p->ppid,
				     p->state ? p->state : '?', p->zombie ? " (zombie, not reaped)" : "",
				     p->stuck ? ", stuck" : "");
		json_t *threads = json_array();
		for (size_t k = 0; k < p->n_threads && !p->zombie; k++)
			thread_summary(g, p, &p->threads[k], &sb, threads);
		json_array_append_new(out, json_pack("{s:i,s:i,s:s?,s:s#,s:b,s:b,s:o}", "pid", (int) p->pid, "ppid", (int) p->ppid,
						     "comm", p->comm, "state", &p->state, p->state ? 1 : 0, "zombie", p->zombie,
						     "stuck", p->stuck, "threads", threads));
	}
	if (ret_json)
		*ret_json = out;
	else
		json_decref(out);
	return strbuf_steal(&sb);
}

char *
wf_summary_text(struct wf_graph *g)
{
	return summary_build(g, NULL);
}

json_t *
wf_summary_json(struct wf_graph *g)
{
	json_t *j = NULL;
	free(summary_build(g, &j));
	return j;
}
