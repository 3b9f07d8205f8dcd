/* The wait-for graph (reports/waitgraph.h) on hand-built graphs: what each
 * kind of wait is released by, and the liveness fixpoint that tells a knot
 * (stuck) from a cycle that has a way out (live). The graphs are built
 * through the public structs, as graph_build.c fills them from a snapshot;
 * every string and array is heap-allocated so wf_graph_free() owns it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/waitgraph.h"

static struct wf_graph *
graph_new(size_t n_procs)
{
	struct wf_graph *g = calloc(1, sizeof(*g));
	cr_assert_not_null(g);
	g->procs = calloc(n_procs, sizeof(*g->procs));
	cr_assert_not_null(g->procs);
	g->n_procs = n_procs;
	return g;
}

static struct wf_proc *
proc_init(struct wf_graph *g, size_t i, pid_t pid, pid_t ppid, const char *comm, size_t n_threads, size_t n_fds)
{
	struct wf_proc *p = &g->procs[i];
	p->pid = pid;
	p->ppid = ppid;
	p->pgid = pid;
	p->comm = strdup(comm);
	p->state = 'S';
	p->rchar_delta = p->wchar_delta = p->syscr_delta = -1;
	p->threads = calloc(n_threads ? n_threads : 1, sizeof(*p->threads));
	p->n_threads = n_threads;
	p->fds = calloc(n_fds ? n_fds : 1, sizeof(*p->fds));
	p->n_fds = n_fds;
	cr_assert(p->comm && p->threads && p->fds);
	return p;
}

/* Thread k of p in syscall sc (NULL: running) with its first arguments. */
static struct wf_thread *
thread_in(struct wf_proc *p, size_t k, char state, const char *sc, uint64_t a0, uint64_t a1, uint64_t a2,
	  uint64_t a3, int64_t timeout_ms)
{
	struct wf_thread *t = &p->threads[k];
	t->tid = p->pid + (pid_t) k;
	t->name = strdup(p->comm);
	t->state = state;
	t->syscall = strdup(sc ? sc : "running");
	t->args[0] = a0;
	t->args[1] = a1;
	t->args[2] = a2;
	t->args[3] = a3;
	t->timeout_ms = timeout_ms;
	t->hot_fd = -1;
	cr_assert(t->name && t->syscall);
	return t;
}

static struct wf_fd *
fd_at(struct wf_proc *p, size_t k, int fd, enum wf_fd_kind kind, uint64_t ino, char mode)
{
	struct wf_fd *f = &p->fds[k];
	f->fd = fd;
	f->kind = kind;
	f->ino = ino;
	f->mode = mode;
	f->queued = -1;
	f->capacity = -1;
	return f;
}

static void
epoll_targets(struct wf_fd *ep, const int *fds, size_t n)
{
	ep->epoll_targets = calloc(n, sizeof(int));
	cr_assert_not_null(ep->epoll_targets);
	memcpy(ep->epoll_targets, fds, n * sizeof(int));
	ep->n_epoll_targets = n;
}

static bool
has_pid(const pid_t *pids, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* A writes into pipe 10 (read by B) and B reads pipe 11 (written by A):
 * each waits for the other, nothing else runs. */
static struct wf_graph *
pipe_cycle(void)
{
	struct wf_graph *g = graph_new(2);
	struct wf_proc *a = proc_init(g, 0, 100, 1, "writer", 1, 2);
	struct wf_proc *b = proc_init(g, 1, 101, 100, "reader", 1, 2);
	thread_in(a, 0, 'S', "write", 1, 0, 4096, 0, -2);
	struct wf_fd *full = fd_at(a, 0, 1, WF_FD_PIPE, 10, 'w');
	full->queued = 65536;
	full->capacity = 65536;
	fd_at(a, 1, 4, WF_FD_PIPE, 11, 'w');
	thread_in(b, 0, 'S', "read", 3, 0, 4096, 0, -2);
	fd_at(b, 0, 0, WF_FD_PIPE, 10, 'r');
	fd_at(b, 1, 3, WF_FD_PIPE, 11, 'r');
	return g;
}

Test(waitgraph, pipe_cycle_is_a_knot)
{
	struct wf_graph *g = pipe_cycle();
	wf_analyze(g);
	struct wf_proc *a = wf_find_proc(g, 100), *b = wf_find_proc(g, 101);
	cr_assert_eq(a->threads[0].wait, WF_WAIT_WRITE);
	cr_assert_eq(a->threads[0].wait_fd, 1);
	cr_assert(a->threads[0].blocking, "a pipe write has no timeout");
	cr_assert_eq(b->threads[0].wait, WF_WAIT_READ);
	cr_assert(a->stuck && b->stuck, "A and B hold each other's only releaser");
	cr_assert(a->threads[0].stuck && b->threads[0].stuck);

	pid_t rel[8];
	size_t n = wf_releasers(g, a, &a->threads[0], rel, 8);
	cr_assert_eq(n, 1);
	cr_assert_eq(rel[0], 101, "a pipe writer is released by the readers");
	n = wf_releasers(g, b, &b->threads[0], rel, 8);
	cr_assert_eq(n, 1);
	cr_assert_eq(rel[0], 100, "a pipe reader is released by the writers");

	char *what = wf_describe_wait(g, a, &a->threads[0]);
	cr_assert_not_null(what);
	cr_assert(strstr(what, "pipe:[10]") && strstr(what, "65536/65536"), "describes the full pipe: %s", what);
	free(what);
	wf_graph_free(g);
}

Test(waitgraph, a_running_thread_breaks_the_knot)
{
	struct wf_graph *g = pipe_cycle();
	struct wf_proc *b = wf_find_proc(g, 101);
	/* B gets a second, running thread: it can still write into pipe 11
	 * (or close it), so A's reader is live and so is A. */
	struct wf_thread *more = realloc(b->threads, 2 * sizeof(*more));
	cr_assert_not_null(more);
	b->threads = more;
	memset(&b->threads[1], 0, sizeof(b->threads[1]));
	b->n_threads = 2;
	thread_in(b, 1, 'R', NULL, 0, 0, 0, 0, -2);
	wf_analyze(g);
	cr_assert(b->live && !b->stuck);
	cr_assert(!wf_find_proc(g, 100)->stuck, "its releaser can act");
	cr_assert(!wf_find_proc(g, 100)->threads[0].stuck);
	wf_graph_free(g);
}

/* A waits in epoll on two pipes: one fed by B (blocked on A), one fed by C.
 * A cycle A <-> B exists, but the OR-wait has an exit through C. */
static struct wf_graph *
or_wait(char c_state, const char *c_syscall)
{
	struct wf_graph *g = graph_new(3);
	struct wf_proc *a = proc_init(g, 0, 200, 1, "loop", 1, 4);
	struct wf_proc *b = proc_init(g, 1, 201, 200, "peer", 1, 2);
	struct wf_proc *c = proc_init(g, 2, 202, 200, "feeder", 1, 2);
	thread_in(a, 0, 'S', "epoll_wait", 5, 0, 16, (uint64_t) -1, -1);
	struct wf_fd *ep = fd_at(a, 0, 5, WF_FD_EPOLL, 0, 'b');
	epoll_targets(ep, (const int[]){ 3, 4 }, 2);
	fd_at(a, 1, 3, WF_FD_PIPE, 20, 'r');
	fd_at(a, 2, 4, WF_FD_PIPE, 21, 'r');
	fd_at(a, 3, 6, WF_FD_PIPE, 22, 'w');
	/* B writes to A only after A writes to it. */
	thread_in(b, 0, 'S', "read", 0, 0, 1, 0, -2);
	fd_at(b, 0, 0, WF_FD_PIPE, 22, 'r');
	fd_at(b, 1, 1, WF_FD_PIPE, 20, 'w');
	/* C holds the write end of pipe 21 and reads a pipe nobody writes. */
	thread_in(c, 0, c_state, c_syscall, 0, 0, 1, 0, -2);
	fd_at(c, 0, 1, WF_FD_PIPE, 21, 'w');
	fd_at(c, 1, 0, WF_FD_PIPE, 23, 'r');
	return g;
}

Test(waitgraph, or_wait_with_an_exit_is_live)
{
	struct wf_graph *g = or_wait('R', NULL);
	wf_analyze(g);
	struct wf_proc *a = wf_find_proc(g, 200);
	cr_assert_eq(a->threads[0].wait, WF_WAIT_POLL);
	pid_t rel[8];
	size_t n = wf_releasers(g, a, &a->threads[0], rel, 8);
	cr_assert_eq(n, 2, "the union over the interest list");
	cr_assert(has_pid(rel, n, 201) && has_pid(rel, n, 202));
	cr_assert(!a->stuck, "C can write to pipe 21, which wakes A");
	cr_assert(!wf_find_proc(g, 201)->stuck, "and A can then write to B");
	wf_graph_free(g);
}

Test(waitgraph, or_wait_whose_every_branch_is_stuck_is_a_knot)
{
	/* C now reads pipe 23, whose write end nobody holds... that is EOF,
	 * ready at once in reality; make it wait on pipe 22's read side
	 * instead, which only A writes. */
	struct wf_graph *g = or_wait('S', "read");
	struct wf_proc *c = wf_find_proc(g, 202);
	c->fds[1].ino = 22;
	wf_analyze(g);
	cr_assert(wf_find_proc(g, 200)->stuck);
	cr_assert(wf_find_proc(g, 201)->stuck);
	cr_assert(wf_find_proc(g, 202)->stuck);
	wf_graph_free(g);
}

Test(waitgraph, epoll_target_closed_after_registration_never_fires)
{
	struct wf_graph *g = or_wait('R', NULL);
	struct wf_proc *a = wf_find_proc(g, 200);
	/* fd 4 (C's pipe) is no longer in A's table: only B is left. */
	a->fds[2].fd = 9;
	wf_analyze(g);
	pid_t rel[8];
	size_t n = wf_releasers(g, a, &a->threads[0], rel, 8);
	cr_assert_eq(n, 1);
	cr_assert_eq(rel[0], 201);
	cr_assert(a->stuck && wf_find_proc(g, 201)->stuck);
	wf_graph_free(g);
}

Test(waitgraph, timed_wait_within_the_window_is_not_a_block)
{
	struct wf_graph *g = or_wait('S', "read");
	struct wf_proc *c = wf_find_proc(g, 202);
	c->fds[1].ino = 22;
	struct wf_proc *a = wf_find_proc(g, 200);
	a->threads[0].timeout_ms = 100; /* wakes by itself in 0.1 s */
	wf_analyze(g);
	cr_assert_not(a->threads[0].blocking);
	cr_assert(!a->stuck && !wf_find_proc(g, 201)->stuck && !wf_find_proc(g, 202)->stuck,
		  "A acts on its own, and releases B and C");
	wf_graph_free(g);
}

Test(waitgraph, timed_wait_beyond_the_window_is_a_block)
{
	struct wf_graph *g = or_wait('S', "read");
	struct wf_proc *c = wf_find_proc(g, 202);
	c->fds[1].ino = 22;
	g->window_ms = 1000;
	wf_find_proc(g, 200)->threads[0].timeout_ms = 86400 * 1000LL; /* a runtime's idle timeout */
	wf_analyze(g);
	cr_assert(wf_find_proc(g, 200)->threads[0].blocking);
	cr_assert(wf_find_proc(g, 200)->stuck);
	wf_graph_free(g);
}

Test(waitgraph, wait4_chain_down_to_a_signal_wait)
{
	/* root waits for mid, mid for leaf, leaf in pause(): the signal would
	 * come from its parent, which waits for it: all three are stuck. */
	struct wf_graph *g = graph_new(3);
	struct wf_proc *root = proc_init(g, 0, 300, 1, "root", 1, 0);
	struct wf_proc *mid = proc_init(g, 1, 301, 300, "mid", 1, 0);
	struct wf_proc *leaf = proc_init(g, 2, 302, 301, "leaf", 1, 0);
	thread_in(root, 0, 'S', "wait4", 301, 0, 0, 0, -2);
	thread_in(mid, 0, 'S', "wait4", (uint64_t) -1, 0, 0, 0, -2);
	thread_in(leaf, 0, 'S', "pause", 0, 0, 0, 0, -2);
	wf_analyze(g);
	cr_assert_eq(root->threads[0].wait, WF_WAIT_CHILD);
	cr_assert_eq(root->threads[0].wait_pid, 301);
	cr_assert_eq(mid->threads[0].wait_pid, -1, "any child");
	cr_assert_eq(leaf->threads[0].wait, WF_WAIT_SIGNAL);
	pid_t rel[4];
	cr_assert_eq(wf_releasers(g, leaf, &leaf->threads[0], rel, 4), 1);
	cr_assert_eq(rel[0], 301, "pause() waits for a signal its parent usually sends");
	cr_assert(root->stuck && mid->stuck && leaf->stuck);
	wf_graph_free(g);
}

Test(waitgraph, wnohang_is_not_a_block)
{
	struct wf_graph *g = graph_new(2);
	struct wf_proc *root = proc_init(g, 0, 310, 1, "root", 1, 0);
	struct wf_proc *leaf = proc_init(g, 1, 311, 310, "leaf", 1, 0);
	thread_in(root, 0, 'S', "wait4", 311, 0, 1 /* WNOHANG */, 0, -2);
	thread_in(leaf, 0, 'S', "pause", 0, 0, 0, 0, -2);
	wf_analyze(g);
	cr_assert_not(root->threads[0].blocking);
	cr_assert_not(root->stuck);
	cr_assert_not(leaf->stuck, "its live parent can send the signal it waits for");
	wf_graph_free(g);
}

Test(waitgraph, futex_without_its_owner_is_stuck_even_beside_a_running_thread)
{
	struct wf_graph *g = graph_new(1);
	struct wf_proc *p = proc_init(g, 0, 400, 1, "child", 1, 0);
	struct wf_thread *t = thread_in(p, 0, 'S', "futex", 0x1000, 0, 2, 0, -2);
	t->futex_addr = 0x1000;
	t->futex_owner = 399; /* the parent's thread that held it at fork() */
	t->futex_owner_in_process = false;
	wf_analyze(g);
	cr_assert_eq(t->wait, WF_WAIT_FUTEX);
	cr_assert(t->blocking, "no timeout argument");
	pid_t rel[4];
	cr_assert_eq(wf_releasers(g, p, t, rel, 4), 0, "nobody will unlock it");
	cr_assert(p->stuck);
	char *what = wf_describe_wait(g, p, t);
	cr_assert(what && strstr(what, "0x1000") && strstr(what, "399"), "%s", what);
	free(what);
	wf_graph_free(g);
}

Test(waitgraph, futex_held_in_process_waits_for_the_process)
{
	struct wf_graph *g = graph_new(1);
	struct wf_proc *p = proc_init(g, 0, 410, 1, "pool", 2, 0);
	struct wf_thread *t = thread_in(p, 0, 'S', "futex", 0x2000, 0, 2, 0, -2);
	t->futex_owner = 411;
	t->futex_owner_in_process = true;
	thread_in(p, 1, 'R', NULL, 0, 0, 0, 0, -2);
	wf_analyze(g);
	pid_t rel[4];
	cr_assert_eq(wf_releasers(g, p, t, rel, 4), 1);
	cr_assert_eq(rel[0], 410, "released by its own process");
	cr_assert(!p->stuck && !t->stuck, "the owner thread runs");
	wf_graph_free(g);
}

Test(waitgraph, what_we_cannot_see_counts_as_able_to_act)
{
	struct wf_graph *g = graph_new(2);
	struct wf_proc *a = proc_init(g, 0, 500, 1, "client", 1, 1);
	struct wf_proc *b = proc_init(g, 1, 501, 500, "waiter", 1, 0);
	/* A socket whose peer sock_diag could not name: an outside process. */
	thread_in(a, 0, 'S', "recvfrom", 3, 0, 64, 0, -2);
	fd_at(a, 0, 3, WF_FD_SOCKET, 30, 'b');
	/* B in a syscall the graph does not model (System V message queues). */
	thread_in(b, 0, 'S', "msgrcv", 3, 0, 64, 0, -2);
	wf_analyze(g);
	cr_assert_not(a->stuck);
	cr_assert_eq(b->threads[0].wait, WF_WAIT_UNKNOWN);
	cr_assert_not(b->stuck);
	wf_graph_free(g);
}

Test(waitgraph, socket_peer_held_by_a_stuck_process)
{
	struct wf_graph *g = graph_new(2);
	struct wf_proc *a = proc_init(g, 0, 510, 1, "a", 1, 1);
	struct wf_proc *b = proc_init(g, 1, 511, 510, "b", 1, 1);
	thread_in(a, 0, 'S', "recvmsg", 3, 0, 0, 0, -2);
	fd_at(a, 0, 3, WF_FD_SOCKET, 40, 'b')->peer_ino = 41;
	thread_in(b, 0, 'S', "recvmsg", 4, 0, 0, 0, -2);
	fd_at(b, 0, 4, WF_FD_SOCKET, 41, 'b')->peer_ino = 40;
	wf_analyze(g);
	cr_assert(a->stuck && b->stuck, "each waits for a message only the other would send");
	pid_t rel[4];
	cr_assert_eq(wf_releasers(g, a, &a->threads[0], rel, 4), 1);
	cr_assert_eq(rel[0], 511);
	wf_graph_free(g);
}

/* A flock held through fd (kind FLOCK, exclusive) on file ino. */
static void
hold_flock(struct wf_fd *f, pid_t pid, uint64_t ino)
{
	f->locks = calloc(1, sizeof(*f->locks));
	cr_assert_not_null(f->locks);
	f->n_locks = 1;
	(void) snprintf(f->locks[0].kind, sizeof(f->locks[0].kind), "FLOCK");
	f->locks[0].write = true;
	f->locks[0].pid = pid;
	f->locks[0].ino = ino;
	f->locks[0].end = -1;
}

Test(waitgraph, lock_order_inversion)
{
	/* A holds lock file 70 and waits for 71; B holds 71 and waits for 70. */
	struct wf_graph *g = graph_new(2);
	struct wf_proc *a = proc_init(g, 0, 700, 1, "a", 1, 2);
	struct wf_proc *b = proc_init(g, 1, 701, 700, "b", 1, 2);
	hold_flock(fd_at(a, 0, 3, WF_FD_FILE, 70, 'w'), 700, 70);
	fd_at(a, 1, 4, WF_FD_FILE, 71, 'w');
	thread_in(a, 0, 'S', "flock", 4, 2 /* LOCK_EX */, 0, 0, -2);
	hold_flock(fd_at(b, 0, 4, WF_FD_FILE, 71, 'w'), 701, 71);
	fd_at(b, 1, 3, WF_FD_FILE, 70, 'w');
	thread_in(b, 0, 'S', "flock", 3, 2, 0, 0, -2);
	wf_analyze(g);
	cr_assert_eq(a->threads[0].wait, WF_WAIT_LOCK);
	cr_assert(a->threads[0].blocking);
	pid_t rel[4];
	cr_assert_eq(wf_releasers(g, a, &a->threads[0], rel, 4), 1);
	cr_assert_eq(rel[0], 701, "the holder of the lock it waits for");
	cr_assert(a->stuck && b->stuck);

	/* LOCK_NB: a try, not a wait. */
	a->threads[0].args[1] = 2 | 4;
	wf_analyze(g);
	cr_assert_not(a->threads[0].blocking);
	cr_assert_not(a->stuck);
	cr_assert_not(b->stuck, "its holder can act again");
	wf_graph_free(g);
}

Test(waitgraph, stopped_and_zombie)
{
	struct wf_graph *g = graph_new(3);
	struct wf_proc *parent = proc_init(g, 0, 600, 1, "parent", 1, 0);
	struct wf_proc *stopped = proc_init(g, 1, 601, 600, "stopped", 1, 0);
	struct wf_proc *zombie = proc_init(g, 2, 602, 600, "zombie", 1, 0);
	thread_in(parent, 0, 'S', "wait4", 601, 0, 0, 0, -2);
	thread_in(stopped, 0, 'T', "read", 0, 0, 1, 0, -2);
	thread_in(zombie, 0, 'Z', NULL, 0, 0, 0, 0, -2);
	zombie->zombie = true;
	zombie->state = 'Z';
	wf_analyze(g);
	/* Stopped (SIGSTOP, no tracer): it waits for a SIGCONT nobody in the
	 * tree is known to send, and its parent waits for its exit. */
	cr_assert_eq(stopped->threads[0].wait, WF_WAIT_STOPPED);
	cr_assert(stopped->threads[0].blocking);
	pid_t rel[4];
	cr_assert_eq(wf_releasers(g, stopped, &stopped->threads[0], rel, 4), 0);
	cr_assert(stopped->stuck);
	cr_assert(parent->stuck, "it waits for the exit of a stopped child");
	cr_assert_not(zombie->stuck, "a zombie is not stuck, it is dead");
	cr_assert_not(zombie->live);
	wf_graph_free(g);
}

Test(waitgraph, holders_by_mode)
{
	struct wf_graph *g = pipe_cycle();
	struct wf_proc *out[4];
	int fds[4];
	size_t n = wf_holders(g, 10, 'r', out, fds, 4);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0]->pid, 101);
	cr_assert_eq(fds[0], 0);
	cr_assert_eq(wf_holders(g, 10, 0, out, fds, 4), 2, "either end");
	cr_assert_eq(wf_holders(g, 999, 0, out, fds, 4), 0);
	cr_assert_eq(wf_holders(g, 0, 0, out, fds, 4), 0, "inode 0 is unknown, not shared");
	wf_graph_free(g);
}

Test(waitgraph, explain_names_every_thread)
{
	struct wf_graph *g = pipe_cycle();
	wf_analyze(g);
	char *text = wf_explain(g);
	cr_assert_not_null(text);
	cr_assert(strstr(text, "writer (pid 100)") && strstr(text, "reader (pid 101)"), "%s", text);
	cr_assert(strstr(text, "STUCK"), "%s", text);
	free(text);
	wf_graph_free(g);
}
