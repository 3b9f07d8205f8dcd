#include "reports/verdict.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/verdict_class.h"
#include "reports/verdict_fdalias.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"

#define MAX_REL 256
#define FUTEX_PRIVATE 128
#define EXTERNAL ((pid_t) -1)

struct ctx {
	struct wf_graph *g;
	bool *in_cycle; /* per process index */
	size_t *component;
};

static size_t
proc_index(struct wf_graph *g, const struct wf_proc *p)
{
	return (size_t) (p - g->procs);
}

static const uint64_t terminating_signals =
	(1ULL << (SIGINT - 1)) | (1ULL << (SIGTERM - 1)) | (1ULL << (SIGHUP - 1)) | (1ULL << (SIGQUIT - 1));

/* ---- predicates ---- */

static bool
thread_waits_on_listener(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t)
{
	if (!t->blocking)
		return false;
	if (t->wait == WF_WAIT_ACCEPT) {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		return !f || !f->inet;
	}
	if (t->wait != WF_WAIT_POLL)
		return false;
	struct wf_fd *ep = t->poll_fds ? NULL : wf_find_fd(p, t->wait_fd);
	size_t n = t->poll_fds ? t->n_poll_fds : ep ? ep->n_epoll_targets : 0;
	for (size_t i = 0; i < n; i++) {
		struct wf_fd *f = wf_find_fd(p, t->poll_fds ? t->poll_fds[i] : ep->epoll_targets[i]);
		if (f && f->kind == WF_FD_SOCKET && f->listening && !f->inet)
			return true;
	}
	return false;
}

static bool
proc_all_blocked(const struct wf_proc *p)
{
	if (p->n_threads == 0)
		return false;
	for (size_t k = 0; k < p->n_threads; k++)
		if (!p->threads[k].blocking)
			return false;
	return true;
}

static bool
holds_inherited(const struct wf_proc *h, uint64_t ino)
{
	for (int64_t i = 0; i < h->inherited_inos_n; i++)
		if (h->inherited_inos[i] == ino)
			return true;
	return false;
}

/* Is holder h keeping the other end of something reader p waits on, without
 * being the process that end was made for? Evidence, strongest first: the
 * probe saw the inode in h's fd table at child_start (inherited at fork); the
 * end is open in several processes; h is the reader itself (a forgotten
 * close); h is neither the reader's parent nor its child. */
static bool
inherited_copy(struct wf_graph *g, struct wf_proc *p, struct wf_proc *h, uint64_t ino, size_t n_holders)
{
	if (holds_inherited(h, ino))
		return true;
	if (h->has_events)
		return false; /* the probe saw its fds at birth: not inherited */
	if (n_holders > 1)
		return true;
	if (h == p)
		return true;
	return h->pid != p->ppid && h->ppid != p->pid;
}

/* One awaited fd of reader p whose other end is kept by an inherited copy held by stuck processes. */
static bool
fd_eof_kept_by_copy(struct wf_graph *g, struct wf_proc *p, struct wf_fd *f, uint64_t *ret_other)
{
	uint64_t other;
	char mode;
	if (f->kind == WF_FD_PIPE && f->mode == 'r') {
		other = f->ino;
		mode = 'w';
	} else if (f->kind == WF_FD_SOCKET && !f->listening && f->peer_ino) {
		other = f->peer_ino;
		mode = 0;
	} else
		return false;
	if (f->queued > 0)
		return false;
	struct wf_proc *h[64];
	size_t n = wf_holders(g, other, mode, h, NULL, ARRAY_SIZE(h));
	if (n == 0)
		return false;
	/* Both ends in the reader alone: a self-pipe (an event loop's wakeup), not
	 * a wait for EOF. A socket whose peer the reader holds is one too (its
	 * children may have inherited copies of it, which are not the cause);
	 * a pipe whose write end the reader kept *and* shared is the classic
	 * forgotten close. */
	for (size_t i = 0; i < n; i++)
		if (h[i] == p && (n == 1 || f->kind == WF_FD_SOCKET))
			return false;
	bool any_copy = false;
	for (size_t i = 0; i < n; i++) {
		if (h[i]->live && h[i] != p)
			return false; /* someone who can act holds it */
		if (inherited_copy(g, p, h[i], other, n))
			any_copy = true;
	}
	if (any_copy && ret_other)
		*ret_other = other;
	return any_copy;
}

static struct wf_fd *
eof_kept_fd(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t, uint64_t *ret_other)
{
	if (t->wait == WF_WAIT_READ) {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		return f && fd_eof_kept_by_copy(g, p, f, ret_other) ? f : NULL;
	}
	if (t->wait != WF_WAIT_POLL)
		return NULL;
	struct wf_fd *ep = t->poll_fds ? NULL : wf_find_fd(p, t->wait_fd);
	size_t n = t->poll_fds ? t->n_poll_fds : ep ? ep->n_epoll_targets : 0;
	for (size_t i = 0; i < n; i++) {
		struct wf_fd *f = wf_find_fd(p, t->poll_fds ? t->poll_fds[i] : ep->epoll_targets[i]);
		if (f && fd_eof_kept_by_copy(g, p, f, ret_other))
			return f;
	}
	return NULL;
}

static bool
is_read_call(const char *s)
{
	return s && (strcmp(s, "read") == 0 || strcmp(s, "recvfrom") == 0 || strcmp(s, "recvmsg") == 0 ||
		     strcmp(s, "readv") == 0 || strcmp(s, "pread64") == 0);
}

static bool
spinning(struct wf_proc *p, struct wf_thread *t)
{
	if (!(t->state == 'R' || (t->syscall && strcmp(t->syscall, "running") == 0)) && t->cpu_delta_ns == 0)
		return false;
	/* The direct evidence: every sample caught the same read returning 0
	 * (EOF) - a loop that never gets back to waiting. It holds whatever
	 * share of a CPU a loaded machine leaves the thread. CPU time comes in
	 * clock ticks (10 ms) and the syscall sampling holds the thread at
	 * ptrace stops for most of the interval between the two stat samples,
	 * so a thread seen running may have gained no tick: running counts. */
	if (t->hot_syscall && is_read_call(t->hot_syscall) && t->hot_samples >= 3 && t->hot_has_result &&
	    t->hot_result == 0 && (t->cpu_delta_ns > 0 || t->state == 'R'))
		return true;
	if (!t->sample_interval_ns || t->cpu_delta_ns * 2 < t->sample_interval_ns)
		return false;
	/* Busy is not a hang: it is one when nothing moves. Zero-byte reads in a
	 * loop (EOF read forever) move syscall counters but no bytes. */
	bool io_flat = p->rchar_delta >= 0 && p->rchar_delta <= 64 && p->wchar_delta >= 0 && p->wchar_delta <= 64;
	if (t->hot_syscall && is_read_call(t->hot_syscall) && t->hot_samples >= 2 && (io_flat || p->rchar_delta < 0))
		return true;
	return io_flat && p->syscr_delta > 1000;
}

/* A private futex in a process whose only thread waits on it: no thread of
 * this process can ever release it (CPython locks are semaphores: no owner
 * field to read, so this is the evidence). */
static bool
futex_single_thread(struct wf_proc *p, struct wf_thread *t)
{
	if (t->wait != WF_WAIT_FUTEX || strcmp(t->syscall ? t->syscall : "", "futex") != 0)
		return false;
	if (!(t->args[1] & FUTEX_PRIVATE))
		return false;
	size_t alive = 0;
	for (size_t k = 0; k < p->n_threads; k++)
		if (p->threads[k].state != 'Z' && p->threads[k].state != 'X')
			alive++;
	return alive == 1 && !(t->futex_owner && t->futex_owner_in_process && t->futex_owner != t->tid);
}

static bool
child_waits_on(struct wf_graph *g, struct wf_proc *c, struct wf_proc *p)
{
	if (c->zombie)
		return false;
	for (size_t k = 0; k < c->n_threads; k++) {
		struct wf_thread *t = &c->threads[k];
		if (!t->blocking)
			continue;
		pid_t rel[MAX_REL];
		size_t n = wf_releasers(g, c, t, rel, MAX_REL);
		for (size_t i = 0; i < n; i++)
			if (rel[i] == p->pid)
				return true;
	}
	return false;
}

static bool
predicate(struct ctx *cx, const char *name, struct wf_proc *p, struct wf_thread *t)
{
	struct wf_graph *g = cx->g;
	if (strcmp(name, "stuck") == 0)
		return t ? t->stuck : p->stuck;
	if (strcmp(name, "blocking") == 0)
		return t ? t->blocking : proc_all_blocked(p);
	if (strcmp(name, "zombie") == 0)
		return p->zombie;
	if (strcmp(name, "cancel_pending") == 0)
		return p->cancel_received;
	if (strcmp(name, "orphaned") == 0) {
		/* a root the user pointed at is an orphan too, unless it leads its
		 * own session (a daemon, started that way on purpose) */
		if (g->subreaper > 0 && p->ppid == g->subreaper)
			return !p->is_top; /* a root is the subreaper's own child */
		return p->ppid == 1 && (!p->is_top || (p->sid && p->sid != p->pid));
	}
	if (strcmp(name, "terminating_signal_pending_blocked") == 0)
		return (p->sig_pending & p->sig_blocked & terminating_signals) && !p->zombie &&
		       (p->stuck || proc_all_blocked(p));
	if (strcmp(name, "parent_stuck") == 0 || strcmp(name, "parent_awaits_handshake") == 0) {
		struct wf_proc *q = wf_find_proc(g, p->ppid);
		if (!q || q->zombie || !(q->stuck || proc_all_blocked(q)))
			return false;
		if (strcmp(name, "parent_stuck") == 0)
			return true;
		if (p->spawned_not_ready)
			return true;
		if (p->has_events)
			return false;
		/* without probe events, a connect-back handshake is guessed from
		 * a parent waiting on a unix listener; a TCP server in accept()
		 * with an unreaped child is just that */
		for (size_t k = 0; k < q->n_threads; k++)
			if (thread_waits_on_listener(g, q, &q->threads[k]))
				return true;
		return false;
	}
	if (!t) {
		/* thread predicates on a process subject: any thread */
		for (size_t k = 0; k < p->n_threads; k++)
			if (predicate(cx, name, p, &p->threads[k]))
				return true;
		return false;
	}
	if (strcmp(name, "writes_full_pipe") == 0) {
		if (t->wait != WF_WAIT_WRITE)
			return false;
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		if (!f || f->kind != WF_FD_PIPE)
			return false;
		/* A write blocks once the free room is below what it wants to write
		 * (at most PIPE_BUF bytes stay atomic). */
		return f->capacity <= 0 || f->queued < 0 || f->queued + 4096 >= f->capacity;
	}
	if (strcmp(name, "futex_owner_absent") == 0)
		return t->wait == WF_WAIT_FUTEX && t->futex_owner > 0 && !t->futex_owner_in_process;
	if (strcmp(name, "futex_single_thread") == 0)
		return futex_single_thread(p, t);
	if (strcmp(name, "threads_wait_each_other") == 0) {
		size_t waiting = 0;
		for (size_t k = 0; k < p->n_threads; k++)
			if (p->threads[k].wait == WF_WAIT_FUTEX && p->threads[k].stuck)
				waiting++;
		return waiting >= 2;
	}
	if (strcmp(name, "waits_on_another_process") == 0) {
		/* an edge to another stuck process, either way: a lone process
		 * idling in pause() or a long sleep is not a knot by itself */
		pid_t rel[MAX_REL];
		size_t n = t->stuck ? wf_releasers(g, p, t, rel, MAX_REL) : 0;
		for (size_t i = 0; i < n; i++) {
			struct wf_proc *q = rel[i] > 0 ? wf_find_proc(g, rel[i]) : NULL;
			if (q && q != p && q->stuck)
				return true;
		}
		return false;
	}
	if (strcmp(name, "waits_file_lock") == 0)
		return t->wait == WF_WAIT_LOCK;
	if (strcmp(name, "fifo_without_partner") == 0)
		return t->wait == WF_WAIT_OPEN;
	if (strcmp(name, "stopped") == 0)
		return t->wait == WF_WAIT_STOPPED;
	if (strcmp(name, "blocking_child_wait_in_helper") == 0) {
		if (t->wait != WF_WAIT_CHILD || !t->blocking || t->wait_pid <= 0)
			return false;
		/* The evidence is a cancel request it has not acted on (probe
		 * events). Without events nobody asked it to cancel: a helper
		 * thread in waitpid is how asyncio watches children, not a cause. */
		if (!p->has_events || !p->cancel_received)
			return false;
		struct wf_proc *c = wf_find_proc(g, t->wait_pid);
		return c && child_waits_on(g, c, p);
	}
	if (strcmp(name, "awaits_eof_held_by_inherited_copy") == 0)
		return t->stuck && eof_kept_fd(g, p, t, NULL) != NULL;
	if (strcmp(name, "spinning_without_progress") == 0)
		return spinning(p, t);
	if (strcmp(name, "in_wait_cycle") == 0)
		return t->stuck && cx->in_cycle[proc_index(g, p)];
	return false;
}

/* ---- patterns ---- */

static bool
pattern_on_thread(const struct rule_pattern *pat, struct wf_proc *p, struct wf_thread *t)
{
	switch (pat->field) {
	case RULE_FIELD_SYSCALL:
		return rule_pattern_matches(pat, t->syscall);
	case RULE_FIELD_WCHAN:
		return rule_pattern_matches(pat, t->wchan);
	case RULE_FIELD_THREAD:
		return rule_pattern_matches(pat, t->name);
	case RULE_FIELD_COMM:
		return rule_pattern_matches(pat, p->comm);
	case RULE_FIELD_ACTOR:
		return rule_pattern_matches(pat, p->actor);
	case RULE_FIELD_FRAME:
	case RULE_FIELD_PYTHON:
		for (size_t i = 0; i < t->n_frames; i++) {
			const char *fr = t->frames[i];
			bool is_py = strncmp(fr, "py ", 3) == 0;
			if (pat->field == RULE_FIELD_PYTHON && !is_py)
				continue;
			if (rule_pattern_matches(pat, is_py && pat->field == RULE_FIELD_PYTHON ? fr + 3 : fr))
				return true;
		}
		return false;
	default:
		return false;
	}
}

static bool
rule_holds(struct ctx *cx, const struct rule *r, struct wf_proc *p, struct wf_thread *t)
{
	for (size_t i = 0; i < r->n_patterns; i++) {
		const struct rule_pattern *pat = &r->patterns[i];
		bool ok;
		if (t)
			ok = pattern_on_thread(pat, p, t);
		else if (pat->field == RULE_FIELD_COMM || pat->field == RULE_FIELD_ACTOR)
			ok = rule_pattern_matches(pat, pat->field == RULE_FIELD_COMM ? p->comm : p->actor);
		else {
			ok = false;
			for (size_t k = 0; k < p->n_threads && !ok; k++)
				ok = pattern_on_thread(pat, p, &p->threads[k]);
		}
		if (!ok)
			return false;
	}
	for (size_t i = 0; i < r->n_require; i++)
		if (!predicate(cx, r->require[i], p, t))
			return false;
	return true;
}

/* ---- structure: cycles and components over stuck processes ---- */

static void
find_cycles(struct ctx *cx)
{
	struct wf_graph *g = cx->g;
	size_t n = g->n_procs;
	/* Reachability by repeated relaxation: small graphs, clear code. */
	bool *reach = calloc(n ? n * n : 1, sizeof(bool));
	if (!reach)
		return;
	for (size_t i = 0; i < n; i++) {
		struct wf_proc *p = &g->procs[i];
		if (!p->stuck)
			continue;
		for (size_t k = 0; k < p->n_threads; k++) {
			if (!p->threads[k].stuck)
				continue;
			pid_t rel[MAX_REL];
			size_t m = wf_releasers(g, p, &p->threads[k], rel, MAX_REL);
			for (size_t r = 0; r < m; r++) {
				struct wf_proc *q = rel[r] > 0 ? wf_find_proc(g, rel[r]) : NULL;
				if (q && q != p && q->stuck)
					reach[i * n + proc_index(g, q)] = true;
			}
		}
	}
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < n; i++)
			if (reach[i * n + k])
				for (size_t j = 0; j < n; j++)
					if (reach[k * n + j])
						reach[i * n + j] = true;
	for (size_t i = 0; i < n; i++)
		cx->in_cycle[i] = reach[i * n + i];
	free(reach);
}

static size_t
uf_find(size_t *parent, size_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

static void
uf_union(size_t *parent, size_t a, size_t b)
{
	a = uf_find(parent, a);
	b = uf_find(parent, b);
	if (a != b)
		parent[b] = a;
}

static void
find_components(struct ctx *cx)
{
	struct wf_graph *g = cx->g;
	for (size_t i = 0; i < g->n_procs; i++)
		cx->component[i] = i;
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		if (p->zombie) {
			struct wf_proc *q = wf_find_proc(g, p->ppid);
			if (q && q->stuck)
				uf_union(cx->component, proc_index(g, q), i);
			continue;
		}
		if (!p->stuck)
			continue;
		for (size_t k = 0; k < p->n_threads; k++) {
			if (!p->threads[k].stuck)
				continue;
			pid_t rel[MAX_REL];
			size_t m = wf_releasers(g, p, &p->threads[k], rel, MAX_REL);
			for (size_t r = 0; r < m; r++) {
				struct wf_proc *q = rel[r] > 0 ? wf_find_proc(g, rel[r]) : NULL;
				if (q && q->stuck)
					uf_union(cx->component, i, proc_index(g, q));
			}
		}
	}
	for (size_t i = 0; i < g->n_procs; i++)
		cx->component[i] = uf_find(cx->component, i);
}

/* ---- describing ---- */

struct match {
	struct wf_proc *p;
	struct wf_thread *t;
	const struct rule *rule;
	size_t order;
};

/* Among subjects of the same rule in one component, the one whose evidence is
 * most direct names the finding: for eof-never, an end kept open only by other
 * processes beats one the reader also keeps (e.g. a helper thread's pipe). */
static int
match_strength(struct ctx *cx, const struct match *mt)
{
	if (!mt->t || strcmp(mt->rule->class_name, "eof-never") != 0)
		return 0;
	uint64_t other = 0;
	struct wf_fd *f = eof_kept_fd(cx->g, mt->p, mt->t, &other);
	if (!f)
		return 0;
	struct wf_proc *h[64];
	size_t n = wf_holders(cx->g, other, f->kind == WF_FD_PIPE ? 'w' : 0, h, NULL, 64);
	for (size_t i = 0; i < n; i++)
		if (h[i] == mt->p)
			return 1;
	return 2;
}

static json_t *
pids_json(const pid_t *pids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(pids[i]));
	return a;
}

static struct wf_thread *
pick_thread(struct wf_proc *p)
{
	for (size_t k = 0; k < p->n_threads; k++)
		if (p->threads[k].stuck)
			return &p->threads[k];
	for (size_t k = 0; k < p->n_threads; k++)
		if (p->threads[k].blocking)
			return &p->threads[k];
	return p->n_threads ? &p->threads[0] : NULL;
}

/* Native frames shown in a verdict's text before the rest is counted. */
#define STACK_TEXT_FRAMES 12

/* A frame of the Python interpreter's own (docs/python.md): "func (file.py:N)"
 * or "<module> (<string>:1)". */
static bool
is_python_frame(const char *frame)
{
	return strstr(frame, ".py:") || strstr(frame, "(<string>:") || strstr(frame, "(<stdin>:");
}

static void
append_stack(struct strbuf *sb, json_t *stacks, struct wf_proc *p, struct wf_thread *t)
{
	char lab[128];
	char key[32];
	(void) snprintf(key, sizeof(key), "%d", (int) p->pid);
	json_t *list = json_object_get(stacks, key);
	if (!list) {
		list = json_array();
		json_object_set_new(stacks, key, list);
	}
	json_t *frames = json_array();
	if (sb) {
		(void) strbuf_printf(sb, "    %s thread %d \"%s\":\n", wf_proc_label(p, lab, sizeof(lab)), (int) t->tid,
				     t->name ? t->name : "?");
		if (t->n_frames == 0)
			(void) strbuf_printf(sb, "      (no stack: %s)\n", t->stack_error ? t->stack_error : "not captured");
	}
	/* The text shows what a reader needs: for an interpreter, its own
	 * frames and the call it sits in; for native code, the top of the
	 * stack. The evidence keeps every frame. */
	size_t python = 0, shown = 0;
	for (size_t i = 0; i < t->n_frames; i++)
		if (is_python_frame(t->frames[i]))
			python++;
	for (size_t i = 0; i < t->n_frames; i++) {
		bool show = python ? (i == 0 || is_python_frame(t->frames[i])) : i < STACK_TEXT_FRAMES;
		if (sb && show) {
			(void) strbuf_printf(sb, "      #%-2zu %s\n", i, t->frames[i]);
			shown++;
		}
		json_array_append_new(frames, json_string(t->frames[i]));
	}
	if (sb && shown < t->n_frames)
		(void) strbuf_printf(sb, "      (%zu %sframes not shown; snapshot.json has them all)\n", t->n_frames - shown,
				     python ? "native " : "more ");
	json_array_append_new(list, json_pack("{s:i,s:s,s:o}", "tid", (int) t->tid, "name", t->name ? t->name : "",
					      "frames", frames));
}

/* Walk the wait edges from (p, t): each step names what the thread waits for
 * and who could release it, then moves to a stuck releaser. */
static json_t *
build_chain(struct ctx *cx, struct wf_proc *p, struct wf_thread *t, size_t comp, struct strbuf *sb,
	    json_t *stacks, pid_t *chain_pids, size_t *n_chain)
{
	struct wf_graph *g = cx->g;
	json_t *chain = json_array();
	char lab[128], lab2[128];
	bool *seen = calloc(g->n_procs ? g->n_procs : 1, sizeof(bool));
	*n_chain = 0;
	struct wf_proc *cycle_to = NULL;
	for (int steps = 0; p && t && steps < 32; steps++) {
		seen[proc_index(g, p)] = true;
		chain_pids[(*n_chain)++] = p->pid;
		char *what = wf_describe_wait(g, p, t);
		pid_t rel[MAX_REL];
		size_t m = t->blocking || t->stuck ? wf_releasers(g, p, t, rel, MAX_REL) : 0;
		json_t *held = json_array();
		struct strbuf hb = STRBUF_INIT;
		struct wf_proc *next = NULL;
		for (size_t r = 0; r < m; r++) {
			/* outside processes, and the waiter itself (its loop's own wakeup
			 * pair), are not what a reader needs to see */
			if (rel[r] == EXTERNAL || rel[r] == p->pid)
				continue;
			struct wf_proc *q = wf_find_proc(g, rel[r]);
			json_array_append_new(held, json_integer(rel[r]));
			(void) strbuf_printf(&hb, "%s%s", hb.len ? ", " : "", q ? wf_proc_label(q, lab2, sizeof(lab2)) : "?");
			if (q && q != p && q->stuck && cx->component[proc_index(g, q)] == comp) {
				if (seen[proc_index(g, q)]) {
					if (!next && !cycle_to)
						cycle_to = q;
				} else if (!next)
					next = q;
			}
		}
		if (next)
			cycle_to = NULL;
		(void) strbuf_printf(sb, "  %s thread %d \"%s\" [%s%s%s]\n", wf_proc_label(p, lab, sizeof(lab)), (int) t->tid,
				     t->name ? t->name : "?", t->syscall ? t->syscall : "?", t->wchan && *t->wchan ? ", wchan " : "",
				     t->wchan && *t->wchan ? t->wchan : "");
		(void) strbuf_printf(sb, "      waits for: %s\n", what);
		if (hb.len)
			(void) strbuf_printf(sb, "      which only %s can provide%s\n", hb.data,
					     cycle_to && !next ? " (cycle)" : "");
		else if (t->stuck) {
			bool self = false;
			for (size_t r = 0; r < m; r++)
				if (rel[r] == p->pid)
					self = true;
			(void) strbuf_printf(sb, "      which %s\n", self ? "only its own threads, all waiting, could provide"
							      : "nothing in the tree can provide");
		}
		json_t *entry = json_pack("{s:i,s:i,s:s?,s:s?,s:s,s:s?,s:s?,s:o}", "pid", (int) p->pid, "tid", (int) t->tid,
					  "actor", p->actor, "thread", t->name, "waits_on", what, "wchan", t->wchan,
					  "syscall", t->syscall, "held_by", held);
		json_array_append_new(chain, entry);
		free(what);
		strbuf_free(&hb);
		if (!next)
			break;
		p = next;
		t = pick_thread(p);
	}
	free(seen);
	return chain;
}

/* The threads involved: every waiting or spinning thread of the processes of
 * the chain, as text and as the verdict's "stacks". */
static void
stack_section(struct strbuf *sb, json_t *stacks, struct wf_graph *g, const pid_t *pids, size_t n)
{
	(void) strbuf_printf(sb, "  Stacks of the threads involved:\n");
	for (size_t i = 0; i < n; i++) {
		struct wf_proc *p = wf_find_proc(g, pids[i]);
		if (!p)
			continue;
		for (size_t k = 0; k < p->n_threads; k++) {
			struct wf_thread *t = &p->threads[k];
			/* spinning: CPU ticks, or seen running (see spinning()) */
			if (!t->stuck && !t->blocking && t->cpu_delta_ns == 0 && t->state != 'R')
				continue;
			append_stack(sb, stacks, p, t);
		}
	}
}

static char *
fmt_mask(uint64_t mask)
{
	char buf[512];
	return strdup(sigmask_format(mask, buf, sizeof(buf)));
}

/* Evidence for the waits beyond pipes and sockets (docs/verdicts.md):
 * locks without an owner field, file locks, FIFO opens, stopped processes.
 * Returns false when cls is none of these. */
static bool
describe_evidence_waits(struct ctx *cx, const char *cls, struct wf_proc *p, struct wf_thread *t, struct strbuf *sb,
			json_t *evidence, char *res, size_t res_size)
{
	struct wf_graph *g = cx->g;
	char lab[128];
	if (strcmp(cls, "lost-wakeup-futex") == 0 && t && !t->futex_owner) {
		/* no owner field (a semaphore, a CPython lock): the evidence is that
		 * the process has no other thread */
		struct wf_proc *par = wf_find_proc(g, p->ppid);
		char plab[128];
		(void) snprintf(res, res_size, "futex 0x%llx", (unsigned long long) t->futex_addr);
		(void) strbuf_printf(sb, "  Resource: %s; %s has a single thread, and it waits on this lock: no thread of this process can ever release it. The lock was held by another thread of its parent %s at fork() and came over locked%s%s%s\n",
				     res, wf_proc_label(p, lab, sizeof(lab)),
				     par ? wf_proc_label(par, plab, sizeof(plab)) : "(gone)",
				     p->fork_threads ? "; the parent's threads at the fork: " : "",
				     p->fork_threads ? p->fork_threads : "", p->fork_threads ? "" : " (fork not observed by the probe: run it under `forkscope watch` to name the threads)");
		json_object_set_new(evidence, "futex", json_pack("{s:s,s:b,s:i,s:i,s:s?}", "addr", res + 6, "single_threaded", true,
								  "parent", (int) p->ppid, "forking_tid", (int) p->forking_tid,
								  "parent_threads_at_fork", p->fork_threads));
	} else if (strcmp(cls, "file-lock") == 0 && t) {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		(void) snprintf(res, res_size, "%s lock on %s", strcmp(t->syscall, "flock") == 0 ? "flock" : "fcntl",
				f && f->target ? f->target : "?");
		json_t *holders = json_array();
		(void) strbuf_printf(sb, "  Resource: %s (inode %llu); held through:\n", res, (unsigned long long) (f ? f->ino : 0));
		for (size_t i = 0; f && i < g->n_procs; i++)
			for (size_t k = 0; k < g->procs[i].n_fds; k++)
				for (size_t l = 0; l < g->procs[i].fds[k].n_locks; l++) {
					const struct fd_lock *lk = &g->procs[i].fds[k].locks[l];
					if (lk->ino != f->ino || lk->waiter)
						continue;
					struct wf_thread *ht = pick_thread(&g->procs[i]);
					char *doing = ht ? wf_describe_wait(g, &g->procs[i], ht) : strdup("?");
					(void) strbuf_printf(sb, "    %s fd %d: %s %s lock taken by pid %d; it waits for %s\n",
							     wf_proc_label(&g->procs[i], lab, sizeof(lab)), g->procs[i].fds[k].fd, lk->kind,
							     lk->write ? "WRITE" : "READ", (int) lk->pid, doing);
					json_array_append_new(holders, json_pack("{s:i,s:i,s:s,s:b,s:i,s:s}", "pid", (int) g->procs[i].pid,
										 "fd", g->procs[i].fds[k].fd, "kind", lk->kind, "write", lk->write,
										 "taken_by", (int) lk->pid, "waits_for", doing));
					free(doing);
				}
		json_object_set_new(evidence, "lock", json_pack("{s:s?,s:I,s:i}", "path", f ? f->target : NULL, "ino",
								 (json_int_t) (f ? f->ino : 0), "fd", t->wait_fd));
		json_object_set_new(evidence, "holders", holders);
	} else if (strcmp(cls, "fifo-no-partner") == 0 && t) {
		(void) snprintf(res, res_size, "FIFO %s", t->wait_path ? t->wait_path : "?");
		(void) strbuf_printf(sb, "  Resource: %s; %s blocks in %s until another process opens the other side, and every other process in the tree is stuck\n",
				     res, wf_proc_label(p, lab, sizeof(lab)), t->syscall);
		json_object_set_new(evidence, "path", t->wait_path ? json_string(t->wait_path) : json_null());
		json_object_set_new(evidence, "flags", json_integer((json_int_t) t->args[2]));
	} else if (strcmp(cls, "stopped") == 0) {
		(void) snprintf(res, res_size, "pid %d stopped", (int) p->pid);
		struct wf_proc *tr = p->tracer_pid ? wf_find_proc(g, p->tracer_pid) : NULL;
		(void) strbuf_printf(sb, "  Resource: %s is stopped (state %c%s%s); nothing in the tree will %s\n",
				     wf_proc_label(p, lab, sizeof(lab)), t ? t->state : p->state,
				     p->tracer_pid ? ", traced by " : "", p->tracer_pid ? (tr ? tr->comm : "a process outside the tree") : "",
				     p->tracer_pid ? "resume it" : "send SIGCONT");
		json_object_set_new(evidence, "state", json_sprintf("%c", t ? t->state : p->state));
		json_object_set_new(evidence, "tracer", json_integer(p->tracer_pid));
	} else
		return false;
	return true;
}

/* Class-specific resource line and evidence, from the subject that matched. */
static void
describe_evidence(struct ctx *cx, const char *cls, struct wf_proc *p, struct wf_thread *t, struct strbuf *sb,
		  json_t *evidence, char **ret_resource)
{
	struct wf_graph *g = cx->g;
	char lab[128], res[256] = "";
	if (describe_evidence_waits(cx, cls, p, t, sb, evidence, res, sizeof(res))) {
		/* done */
	} else if (strcmp(cls, "pipe-full") == 0 && t) {
		struct wf_fd *f = wf_find_fd(p, t->wait_fd);
		if (f) {
			(void) snprintf(res, sizeof(res), "pipe:[%llu] %lld/%lld", (unsigned long long) f->ino,
					(long long) f->queued, (long long) f->capacity);
			struct wf_proc *h[64];
			int hfd[64];
			size_t n = wf_holders(g, f->ino, 'r', h, hfd, 64);
			json_t *readers = json_array();
			(void) strbuf_printf(sb, "  Resource: %s bytes queued; read end held by ", res);
			for (size_t i = 0; i < n; i++) {
				struct wf_thread *rt = pick_thread(h[i]);
				char *doing = rt ? wf_describe_wait(g, h[i], rt) : strdup("?");
				(void) strbuf_printf(sb, "%s%s fd %d (not reading: waits for %s)", i ? "; " : "",
						     wf_proc_label(h[i], lab, sizeof(lab)), hfd[i], doing);
				json_array_append_new(readers, json_pack("{s:i,s:i,s:s}", "pid", (int) h[i]->pid, "fd", hfd[i],
									 "waits_for", doing));
				free(doing);
			}
			if (n == 0)
				(void) strbuf_printf(sb, "nobody in the tree");
			(void) strbuf_printf(sb, "\n");
			n = wf_holders(g, f->ino, 'w', h, hfd, 64);
			json_t *writers = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(writers, json_pack("{s:i,s:i}", "pid", (int) h[i]->pid, "fd", hfd[i]));
			json_object_set_new(evidence, "pipe", json_pack("{s:I,s:I,s:I}", "ino", (json_int_t) f->ino, "queued",
								       (json_int_t) f->queued, "capacity", (json_int_t) f->capacity));
			json_object_set_new(evidence, "readers", readers);
			json_object_set_new(evidence, "writers", writers);
		}
	} else if (strcmp(cls, "eof-never") == 0 && t) {
		uint64_t other = 0;
		struct wf_fd *f = eof_kept_fd(g, p, t, &other);
		if (f) {
			(void) snprintf(res, sizeof(res), "%s:[%llu]", f->kind == WF_FD_PIPE ? "pipe" : "socket",
					(unsigned long long) other);
			(void) strbuf_printf(sb, "  Resource: %s (the other end of %s's fd %d, %s:[%llu]); EOF needs every copy closed, still open in:\n",
					     res, wf_proc_label(p, lab, sizeof(lab)), f->fd,
					     f->kind == WF_FD_PIPE ? "pipe" : "socket", (unsigned long long) f->ino);
			struct wf_proc *h[64];
			int hfd[64];
			size_t n = wf_holders(g, other, f->kind == WF_FD_PIPE ? 'w' : 0, h, hfd, 64);
			json_t *holders = json_array();
			for (size_t i = 0; i < n; i++) {
				bool copy = inherited_copy(g, p, h[i], other, n);
				const char *how = holds_inherited(h[i], other) ? "inherited across fork (seen at child_start)" :
						  h[i] == p ? "the reader itself never closed it" :
						  copy ? "an inherited copy" : "its owner";
				(void) strbuf_printf(sb, "    %s fd %d: %s\n", wf_proc_label(h[i], lab, sizeof(lab)), hfd[i], how);
				json_array_append_new(holders, json_pack("{s:i,s:i,s:b,s:s}", "pid", (int) h[i]->pid, "fd", hfd[i],
									 "inherited", copy, "how", how));
			}
			json_object_set_new(evidence, "awaited", json_pack("{s:i,s:I,s:I}", "fd", f->fd, "ino", (json_int_t) f->ino,
									  "other_end", (json_int_t) other));
			json_object_set_new(evidence, "holders", holders);
		}
	} else if (strcmp(cls, "lost-wakeup-futex") == 0 && t) {
		(void) snprintf(res, sizeof(res), "futex 0x%llx owner tid %d", (unsigned long long) t->futex_addr,
				(int) t->futex_owner);
		struct wf_proc *o = t->futex_owner_elsewhere ? wf_find_proc(g, t->futex_owner_elsewhere) : NULL;
		(void) strbuf_printf(sb, "  Resource: %s; tid %d is not a thread of %s (single-threaded: %s)%s%s — the lock was held by another thread at fork() and came over locked, with nobody to unlock it\n",
				     res, (int) t->futex_owner, wf_proc_label(p, lab, sizeof(lab)), p->n_threads == 1 ? "yes" : "no",
				     o ? "; that tid lives in " : "", o ? wf_proc_label(o, lab + 64, 64) : "");
		json_object_set_new(evidence, "futex", json_pack("{s:s,s:i,s:b,s:o}", "addr", res + 6, "owner_tid", (int) t->futex_owner,
								  "owner_in_process", t->futex_owner_in_process, "owner_found_in",
								  o ? json_integer(o->pid) : json_null()));
	} else if (strcmp(cls, "signal-blocked") == 0) {
		uint64_t sig = p->sig_pending & p->sig_blocked & terminating_signals;
		char *pending = fmt_mask(sig), *blocked = fmt_mask(p->sig_blocked);
		(void) snprintf(res, sizeof(res), "%s pending and blocked", pending);
		(void) strbuf_printf(sb, "  Resource: %s in %s (ppid %d%s); blocked in every thread: %s\n", res,
				     wf_proc_label(p, lab, sizeof(lab)), (int) p->ppid,
				     (p->ppid == 1 || p->ppid == g->subreaper) ? ", an orphan" : "", blocked);
		json_object_set_new(evidence, "pending", json_string(pending));
		json_object_set_new(evidence, "blocked", json_string(blocked));
		json_object_set_new(evidence, "ppid", json_integer(p->ppid));
		json_object_set_new(evidence, "orphan", json_boolean(p->ppid == 1 || p->ppid == g->subreaper));
		free(pending);
		free(blocked);
	} else if (strcmp(cls, "busy-loop") == 0 && t) {
		struct wf_fd *f = t->hot_fd >= 0 ? wf_find_fd(p, (int) t->hot_fd) : NULL;
		(void) snprintf(res, sizeof(res), "%s%s%s", t->hot_syscall ? t->hot_syscall : "cpu",
				f ? " on " : "", f && f->target ? f->target : "");
		(void) strbuf_printf(sb, "  Resource: %s; %.0f%% of a CPU over %.0f ms; %s(fd %lld) seen in %u samples; bytes read %lld, written %lld, syscalls %lld: no progress\n",
				     wf_proc_label(p, lab, sizeof(lab)),
				     t->sample_interval_ns ? 100.0 * (double) t->cpu_delta_ns / (double) t->sample_interval_ns : 0.0,
				     (double) t->sample_interval_ns / 1e6, t->hot_syscall ? t->hot_syscall : "?", (long long) t->hot_fd,
				     t->hot_samples, (long long) p->rchar_delta, (long long) p->wchar_delta, (long long) p->syscr_delta);
		json_object_set_new(evidence, "cpu_ns", json_integer((json_int_t) t->cpu_delta_ns));
		json_object_set_new(evidence, "interval_ns", json_integer((json_int_t) t->sample_interval_ns));
		json_object_set_new(evidence, "syscall", t->hot_syscall ? json_string(t->hot_syscall) : json_null());
		json_object_set_new(evidence, "fd", json_integer(t->hot_fd));
		json_object_set_new(evidence, "target", f && f->target ? json_string(f->target) : json_null());
		json_object_set_new(evidence, "rchar_delta", json_integer(p->rchar_delta));
		json_object_set_new(evidence, "syscr_delta", json_integer(p->syscr_delta));
	} else if ((strcmp(cls, "boot-death") == 0 || strcmp(cls, "unreaped-zombie") == 0) && p->zombie) {
		struct wf_proc *q = wf_find_proc(g, p->ppid);
		char plab[128];
		(void) snprintf(res, sizeof(res), "zombie pid %d", (int) p->pid);
		(void) strbuf_printf(sb, "  Resource: %s exited and was never reaped by %s%s\n", wf_proc_label(p, lab, sizeof(lab)),
				     q ? wf_proc_label(q, plab, sizeof(plab)) : "its parent",
				     strcmp(cls, "boot-death") == 0 ? ", which still waits for its handshake" : "");
		json_object_set_new(evidence, "zombie", json_integer(p->pid));
		json_object_set_new(evidence, "parent", json_integer(p->ppid));
		json_object_set_new(evidence, "spawned_not_ready", json_boolean(p->spawned_not_ready));
	} else if (strcmp(cls, "uncancellable-wait") == 0 && t) {
		struct wf_proc *c = wf_find_proc(g, t->wait_pid);
		(void) snprintf(res, sizeof(res), "blocking %s(%d) in thread %d", t->syscall, (int) t->wait_pid, (int) t->tid);
		(void) strbuf_printf(sb, "  Resource: %s of %s; the child waits on this process, which cannot act on %s while the wait owns it\n",
				     res, wf_proc_label(p, lab, sizeof(lab)),
				     p->cancel_received ? "the cancel request it received" : "a cancel request");
		json_object_set_new(evidence, "thread", json_integer(t->tid));
		json_object_set_new(evidence, "child", c ? json_integer(c->pid) : json_null());
		json_object_set_new(evidence, "cancel_received", json_boolean(p->cancel_received));
	} else if (strcmp(cls, "orphan") == 0) {
		(void) snprintf(res, sizeof(res), "pid %d, ppid %d", (int) p->pid, (int) p->ppid);
		(void) strbuf_printf(sb, "  Resource: %s lost its parent (now ppid %d) and waits for nothing that will come\n",
				     wf_proc_label(p, lab, sizeof(lab)), (int) p->ppid);
		json_object_set_new(evidence, "ppid", json_integer(p->ppid));
	}
	*ret_resource = res[0] ? strdup(res) : NULL;
}

/* One cause per knot: the other findings of the same component (zombies,
 * orphans, …) are its consequences, listed under the verdict. */
static json_t *
list_consequences(struct ctx *cx, const struct match *m, size_t nm, size_t best, size_t comp, struct strbuf *sb)
{
	struct wf_graph *g = cx->g;
	json_t *out = json_array();
	char lab[128], plab[128];
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *q = &g->procs[i];
		if (cx->component[i] != comp || !(q->stuck || q->zombie))
			continue;
		const char *cls = NULL;
		for (size_t j = 0; j < nm && !cls; j++)
			if (j != best && m[j].p == q && strcmp(m[j].rule->class_name, m[best].rule->class_name) != 0)
				cls = m[j].rule->class_name;
		struct wf_proc *par = wf_find_proc(g, q->ppid);
		char what[256];
		if (q->zombie)
			(void) snprintf(what, sizeof(what), "exited and is not reaped: %s waits elsewhere",
					par ? wf_proc_label(par, plab, sizeof(plab)) : "its parent");
		else if (cls && strcmp(cls, "orphan") == 0)
			(void) snprintf(what, sizeof(what), "lost its parent (ppid %d)", (int) q->ppid);
		else if (cls && strcmp(cls, "signal-blocked") == 0)
			(void) snprintf(what, sizeof(what), "has a terminating signal pending but blocked");
		else
			continue; /* another cause-like match of the same knot: the chain shows it */
		if (!json_array_size(out))
			(void) strbuf_printf(sb, "  Consequences (not the cause):\n");
		(void) strbuf_printf(sb, "    %s %s%s%s\n", wf_proc_label(q, lab, sizeof(lab)), what, cls ? " — " : "",
				     cls ? cls : "");
		json_array_append_new(out, json_pack("{s:i,s:s?,s:s}", "pid", (int) q->pid, "class",
						     cls ? cls : (q->zombie ? "unreaped-zombie" : NULL), "what", what));
	}
	return out;
}

static int
cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
	return (x > y) - (x < y);
}

json_t *
verdicts_compute(struct wf_graph *g, const struct ruleset *rs)
{
	json_t *out = json_array();
	size_t n = g->n_procs;
	struct ctx cx = { .g = g, .in_cycle = calloc(n ? n : 1, sizeof(bool)), .component = calloc(n ? n : 1, sizeof(size_t)) };
	find_cycles(&cx);
	find_components(&cx);

	/* Best rule per subject. */
	size_t cap = 16, nm = 0;
	struct match *m = calloc(cap, sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		struct wf_proc *p = &g->procs[i];
		for (size_t r = 0; r < rs->n_rules; r++) {
			const struct rule *rule = &rs->rules[r];
			if (rule->subject != RULE_PROCESS || !rule_holds(&cx, rule, p, NULL))
				continue;
			if (nm == cap)
				m = realloc(m, (cap *= 2) * sizeof(*m));
			m[nm++] = (struct match){ p, NULL, rule, r };
			break;
		}
		for (size_t k = 0; k < p->n_threads; k++) {
			for (size_t r = 0; r < rs->n_rules; r++) {
				const struct rule *rule = &rs->rules[r];
				if (rule->subject != RULE_THREAD || !rule_holds(&cx, rule, p, &p->threads[k]))
					continue;
				if (nm == cap)
					m = realloc(m, (cap *= 2) * sizeof(*m));
				m[nm++] = (struct match){ p, &p->threads[k], rule, r };
				break;
			}
		}
	}

	/* One verdict per component: the highest-priority finding names it. Live
	 * subjects (a spinning thread, a pending signal) stand alone. */
	bool *done = calloc(nm ? nm : 1, sizeof(bool));
	for (size_t i = 0; i < nm; i++) {
		if (done[i])
			continue;
		size_t comp = cx.component[proc_index(g, m[i].p)];
		bool grouped = m[i].p->stuck || m[i].p->zombie;
		size_t best = i;
		for (size_t j = i; j < nm; j++) {
			if (done[j])
				continue;
			bool same = grouped ? ((m[j].p->stuck || m[j].p->zombie) && cx.component[proc_index(g, m[j].p)] == comp)
					    : (m[j].p == m[i].p && !(m[j].p->stuck || m[j].p->zombie));
			if (!same)
				continue;
			done[j] = true;
			if (m[j].order < m[best].order ||
			    (m[j].order == m[best].order && match_strength(&cx, &m[j]) > match_strength(&cx, &m[best])))
				best = j;
		}
		struct match *b = &m[best];
		const char *cls = b->rule->class_name;
		const struct verdict_class_info *info = verdict_class_lookup(cls);
		const char *title = info ? verdict_class_title(info, g->from_scenario) : b->rule->title ? b->rule->title : cls;
		const char *remedy = info ? verdict_class_remedy(info, g->from_scenario)
				   : b->rule->remedy ? b->rule->remedy : "(no remedy given)";

		struct strbuf sb = STRBUF_INIT;
		(void) strbuf_printf(&sb, "Hang: %s — %s\n", cls, title);
		json_t *stacks = json_object();
		pid_t chain_pids[64];
		size_t n_chain = 0;
		struct wf_proc *start_p = b->p;
		struct wf_thread *start_t = b->t;
		if (b->p->zombie) {
			/* Start from the one waiting for the dead child. */
			struct wf_proc *q = wf_find_proc(g, b->p->ppid);
			if (q) {
				start_p = q;
				start_t = pick_thread(q);
			}
		}
		if (!start_t)
			start_t = pick_thread(start_p);
		json_t *chain = build_chain(&cx, start_p, start_t, comp, &sb, stacks, chain_pids, &n_chain);
		json_t *evidence = json_object();
		char *resource = NULL;
		describe_evidence(&cx, cls, b->p, b->t ? b->t : pick_thread(b->p), &sb, evidence, &resource);

		/* Every process of the finding: the chain, the component, the zombie. */
		pid_t pids[256];
		size_t np = 0;
		for (size_t c = 0; c < n_chain && np < 256; c++)
			pids[np++] = chain_pids[c];
		for (size_t k = 0; k < n && np < 256; k++) {
			struct wf_proc *q = &g->procs[k];
			bool member = grouped ? ((q->stuck || q->zombie) && cx.component[k] == comp) : q == b->p;
			bool have = false;
			for (size_t c = 0; c < np; c++)
				if (pids[c] == q->pid)
					have = true;
			if (member && !have)
				pids[np++] = q->pid;
		}
		qsort(pids, np, sizeof(pid_t), cmp_pid);
		json_t *consequences = grouped ? list_consequences(&cx, m, nm, best, comp, &sb) : json_array();
		stack_section(&sb, stacks, g, chain_pids, n_chain);
		(void) strbuf_printf(&sb, "  Remedy: %s.\n", remedy);

		char lab[128], summary[512];
		char *what = start_t ? wf_describe_wait(g, start_p, start_t) : strdup("?");
		if (b->p->zombie)
			(void) snprintf(summary, sizeof(summary), "%s waits for %s; %s exited and was never reaped",
					wf_proc_label(start_p, lab, sizeof(lab)), what, wf_proc_label(b->p, lab + 64, 64));
		else
			(void) snprintf(summary, sizeof(summary), "%s waits for %s%s%s", wf_proc_label(start_p, lab, sizeof(lab)),
					what, resource ? " — " : "", resource ? resource : "");
		free(what);
		if (strcmp(cls, "busy-loop") == 0 && resource)
			(void) snprintf(summary, sizeof(summary), "%s spins in %s without progress",
					wf_proc_label(b->p, lab, sizeof(lab)), resource);
		if (strcmp(cls, "signal-blocked") == 0 && resource)
			(void) snprintf(summary, sizeof(summary), "%s has %s", wf_proc_label(b->p, lab, sizeof(lab)), resource);

		json_t *v = json_object();
		json_object_set_new(v, "class", json_string(cls));
		json_object_set_new(v, "summary", json_string(summary));
		json_object_set_new(v, "pids", pids_json(pids, np));
		json_object_set_new(v, "resource", resource ? json_string(resource) : json_null());
		json_object_set_new(v, "chain", chain);
		json_object_set_new(v, "evidence", evidence);
		json_object_set_new(v, "consequences", consequences);
		json_object_set_new(v, "stacks", stacks);
		json_object_set_new(v, "remedy", json_string(remedy));
		json_object_set_new(v, "rule", json_string(b->rule->origin ? b->rule->origin : b->rule->name));
		json_object_set_new(v, "text", json_string(sb.data ? sb.data : ""));
		json_array_append_new(out, v);
		free(resource);
		strbuf_free(&sb);
	}
	free(done);
	free(m);
	free(cx.in_cycle);
	free(cx.component);
	verdict_fdalias_apply(g, g->events, out);
	if (verdicts_count_hangs(out) == 0) {
		json_t *moving = verdict_progress(g);
		if (moving)
			json_array_append_new(out, moving);
	}
	return out;
}

/* CPU comes in clock ticks: two ticks is work, not the wake-up of our interrupt. */
#define PROGRESS_CPU_NS 20000000ULL
#define PROGRESS_BYTES 1 /* any byte: a blocked or spinning-on-EOF thread moves none */

json_t *
verdict_progress(struct wf_graph *g)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *moved = json_array();
	pid_t pids[256];
	size_t np = 0;
	char lab[128];
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		if (p->zombie)
			continue;
		uint64_t cpu = 0, interval = 0;
		for (size_t k = 0; k < p->n_threads; k++) {
			struct wf_thread *t = &p->threads[k];
			if (t->restarted_same && t->wait != WF_WAIT_NONE)
				continue; /* blocked at both samples: its ticks are not work */
			cpu += t->cpu_delta_ns;
			interval = MAX(interval, t->sample_interval_ns);
		}
		int64_t bytes = (p->rchar_delta > 0 ? p->rchar_delta : 0) + (p->wchar_delta > 0 ? p->wchar_delta : 0);
		uint32_t tcp_ms = UINT32_MAX;
		for (size_t k = 0; k < p->n_fds; k++)
			if (p->fds[k].has_tcp_info && !p->fds[k].listening)
				tcp_ms = MIN(tcp_ms, MIN(p->fds[k].last_data_recv_ms, p->fds[k].last_data_sent_ms));
		uint64_t recent_ms = MAX(1000, interval / 1000000 * 2);
		bool by_cpu = cpu >= PROGRESS_CPU_NS, by_io = bytes >= PROGRESS_BYTES, by_tcp = tcp_ms < recent_ms;
		if (!by_cpu && !by_io && !by_tcp)
			continue;
		(void) strbuf_printf(&sb, "    %s:", wf_proc_label(p, lab, sizeof(lab)));
		if (by_cpu)
			(void) strbuf_printf(&sb, " cpu %.0f ms in %.0f ms;", (double) cpu / 1e6, (double) interval / 1e6);
		if (by_io)
			(void) strbuf_printf(&sb, " %lld bytes read/written;", (long long) bytes);
		if (by_tcp)
			(void) strbuf_printf(&sb, " TCP data %u ms ago;", tcp_ms);
		(void) strbuf_printf(&sb, "\n");
		json_array_append_new(moved, json_pack("{s:i,s:I,s:I,s:I,s:o}", "pid", (int) p->pid, "cpu_ns", (json_int_t) cpu,
						       "interval_ns", (json_int_t) interval, "io_bytes", (json_int_t) bytes,
						       "tcp_last_data_ms", tcp_ms == UINT32_MAX ? json_null() : json_integer(tcp_ms)));
		if (np < ARRAY_SIZE(pids))
			pids[np++] = p->pid;
	}
	if (np == 0) {
		json_decref(moved);
		strbuf_free(&sb);
		return NULL;
	}
	const struct verdict_class_info *info = verdict_class_lookup("slow-not-stuck");
	struct strbuf text = STRBUF_INIT;
	(void) strbuf_printf(&text, "Finding: slow-not-stuck — %s\n  What moved between the two samples:\n%s  Remedy: %s.\n",
			     info->title, sb.data, verdict_class_remedy(info, g->from_scenario));
	char summary[256];
	(void) snprintf(summary, sizeof(summary), "no knot: %zu process%s moved between the two samples", np,
			np == 1 ? "" : "es");
	json_t *v = json_pack("{s:s,s:s,s:o,s:n,s:[],s:{s:o},s:{},s:s,s:s,s:s}", "class", "slow-not-stuck", "summary", summary,
			      "pids", pids_json(pids, np), "resource", "chain", "evidence", "moved", moved, "stacks",
			      "remedy", verdict_class_remedy(info, g->from_scenario), "rule", "progress", "text", text.data);
	strbuf_free(&sb);
	strbuf_free(&text);
	return v;
}

char *
verdict_signal_note(uint64_t blocked, uint64_t ignored)
{
	char b[256], i[256];
	uint64_t bl = blocked & terminating_signals, ig = ignored & terminating_signals & ~blocked;
	if (!bl && !ig)
		return NULL;
	char *out = NULL;
	if (asprintf(&out, "%s%s%s%s%s", bl ? sigmask_format(bl, b, sizeof(b)) : "", bl ? " blocked in every thread" : "",
		     bl && ig ? "; " : "", ig ? sigmask_format(ig, i, sizeof(i)) : "", ig ? " ignored" : "") < 0)
		return NULL;
	return out;
}

size_t
verdicts_count_hangs(const json_t *verdicts)
{
	size_t n = 0, i;
	json_t *v;
	json_array_foreach(verdicts, i, v) {
		const struct verdict_class_info *info = verdict_class_lookup(json_string_value(json_object_get(v, "class")));
		if (!info || info->is_hang)
			n++;
	}
	return n;
}

const char *
verdicts_closing_line(const json_t *verdicts, char *buf, size_t size)
{
	size_t n = verdicts_count_hangs(verdicts);
	if (n == 0)
		(void) snprintf(buf, size, "No hang found.");
	else if (n == 1)
		(void) snprintf(buf, size, "Found 1 hang.");
	else
		(void) snprintf(buf, size, "Found %zu hangs.", n);
	return buf;
}
