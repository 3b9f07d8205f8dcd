/* Building the wait-for graph from a snapshot (probes/snapshot.h) and the
 * probe events of the run. Kept apart from the analysis so the analysis can be
 * tested on hand-built graphs and the mapping on recorded snapshots. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probes/snapshot.h"
#include "reports/waitgraph.h"
#include "util/procname.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/strbuf.h"

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static enum wf_fd_kind
map_kind(enum fd_kind k)
{
	switch (k) {
	case FD_KIND_FILE:
	case FD_KIND_TTY:
	case FD_KIND_NULL:
		return WF_FD_FILE;
	case FD_KIND_PIPE:
		return WF_FD_PIPE;
	case FD_KIND_SOCKET:
		return WF_FD_SOCKET;
	case FD_KIND_EPOLL:
		return WF_FD_EPOLL;
	case FD_KIND_EVENTFD:
		return WF_FD_EVENTFD;
	case FD_KIND_SIGNALFD:
		return WF_FD_SIGNALFD;
	case FD_KIND_TIMERFD:
		return WF_FD_TIMERFD;
	case FD_KIND_PIDFD:
		return WF_FD_PIDFD;
	default:
		return WF_FD_OTHER;
	}
}

static void
build_fd(struct wf_fd *out, const struct snapshot_fd *f)
{
	memset(out, 0, sizeof(*out));
	out->fd = f->fd;
	out->kind = map_kind(f->kind);
	out->ino = f->ino;
	out->mode = f->access == O_WRONLY ? 'w' : f->access == O_RDWR ? 'b' : 'r';
	out->queued = -1;
	out->capacity = -1;
	out->target = dup_or_null(f->target);
	if (f->has_pipe_fill) {
		out->queued = f->pipe_fill.queued;
		out->capacity = f->pipe_fill.capacity;
	}
	if (f->has_unix) {
		out->peer_ino = f->unix_sock.peer_ino;
		out->listening = f->unix_sock.state == 10; /* TCP_LISTEN numbering */
		if (!out->listening && f->unix_sock.has_rqlen)
			out->queued = f->unix_sock.rqlen;
		out->name = dup_or_null(f->unix_sock.name);
	}
	if (f->has_inet) {
		const struct inet_sock_info *in = &f->inet_sock;
		out->listening = in->state == 10;
		out->inet = true;
		out->inet_protocol = in->protocol;
		out->inet_state = in->state;
		(void) snprintf(out->local, sizeof(out->local), "%s", in->local);
		(void) snprintf(out->remote, sizeof(out->remote), "%s", in->remote);
		out->has_tcp_info = in->has_tcp_info;
		out->bytes_acked = in->bytes_acked;
		out->bytes_received = in->bytes_received;
		out->last_data_sent_ms = in->last_data_sent_ms;
		out->last_data_recv_ms = in->last_data_recv_ms;
		if (!out->listening)
			out->queued = in->rqueue;
	}
	out->timerfd_value_ns = f->timerfd_value_ns;
	if (f->n_locks && (out->locks = calloc(f->n_locks, sizeof(*out->locks)))) {
		memcpy(out->locks, f->locks, f->n_locks * sizeof(*out->locks));
		out->n_locks = f->n_locks;
	}
	out->pidfd_pid = f->kind == FD_KIND_PIDFD ? f->pidfd_pid : 0;
	if (f->kind == FD_KIND_EPOLL && f->n_epoll_targets) {
		out->epoll_targets = calloc(f->n_epoll_targets, sizeof(int));
		for (size_t i = 0; out->epoll_targets && i < f->n_epoll_targets; i++)
			out->epoll_targets[out->n_epoll_targets++] = f->epoll_targets[i].tfd;
	}
	/* A socket end whose peer is gone reads EOF at once: nobody "releases" it. */
}

static char *
frame_text(const struct frame *fr)
{
	char *s = NULL;
	if (fr->python)
		return strdup(fr->python);
	if (fr->function && fr->file && fr->line > 0)
		(void) asprintf(&s, "%s (%s:%d)%s", fr->function, fr->file, fr->line, fr->inlined ? " [inlined]" : "");
	else if (fr->function)
		(void) asprintf(&s, "%s+0x%llx (%s)", fr->function, (unsigned long long) fr->offset,
				fr->module ? fr->module : "?");
	else
		(void) asprintf(&s, "0x%llx (%s)", (unsigned long long) fr->pc, fr->module ? fr->module : "?");
	return s;
}

static void
build_thread(struct wf_thread *out, const struct snapshot_process *p, const struct snapshot_thread *t,
	     long clock_ticks, uint64_t snap_started_ns)
{
	memset(out, 0, sizeof(*out));
	out->tid = t->tid;
	out->name = dup_or_null(t->name);
	out->state = t->state;
	out->wchan = dup_or_null(t->wchan);
	out->hot_fd = -1;
	switch (t->syscall.kind) {
	case PROC_SYSCALL_IN: {
		char buf[32];
		out->syscall = strdup(syscall_name_or_number(t->syscall.nr, buf, sizeof(buf)));
		out->syscall_nr = t->syscall.nr;
		memcpy(out->args, t->syscall.args, sizeof(out->args));
		break;
	}
	case PROC_SYSCALL_RUNNING:
		out->syscall = strdup("running");
		out->syscall_nr = -1;
		break;
	default:
		out->syscall = NULL;
		out->syscall_nr = -1;
	}
	switch (t->wait.timeout_kind) {
	case SYSCALL_TIMEOUT_INFINITE:
		out->timeout_ms = -1;
		break;
	case SYSCALL_TIMEOUT_RELATIVE:
		out->timeout_ms = t->wait.timeout_ns < 0 ? 0 : t->wait.timeout_ns / 1000000;
		break;
	case SYSCALL_TIMEOUT_ABSOLUTE: {
		/* a deadline on a clock: what was left of it when the snapshot was
		 * taken (not now: a recorded snapshot is replayed later) */
		struct timespec now, mono;
		int64_t remaining = -1;
		if (clock_gettime(t->wait.timeout_clock, &now) == 0 && clock_gettime(CLOCK_MONOTONIC, &mono) == 0) {
			int64_t now_ns = (int64_t) now.tv_sec * 1000000000LL + now.tv_nsec;
			int64_t mono_ns = (int64_t) mono.tv_sec * 1000000000LL + mono.tv_nsec;
			int64_t taken_ns = snap_started_ns ? (int64_t) snap_started_ns : mono_ns;
			/* the same instant on the deadline's clock */
			int64_t at_ns = t->wait.timeout_clock == CLOCK_MONOTONIC ? taken_ns : now_ns - (mono_ns - taken_ns);
			remaining = t->wait.timeout_ns - at_ns;
		}
		out->timeout_ms = remaining < 0 ? 0 : remaining / 1000000;
		break;
	}
	case SYSCALL_TIMEOUT_NA:
		out->timeout_ms = -1;
		break;
	default:
		out->timeout_ms = -2;
	}
	const struct snapshot_thread_sample *a = &t->samples[0], *b = &t->samples[1];
	if (a->valid && b->valid && b->at_ns > a->at_ns && clock_ticks > 0) {
		uint64_t ticks = (b->utime + b->stime) - (a->utime + a->stime);
		out->cpu_delta_ns = ticks * (1000000000ULL / (uint64_t) clock_ticks);
		out->sample_interval_ns = b->at_ns - a->at_ns;
		out->ctxt_delta = (b->voluntary_ctxt_switches + b->nonvoluntary_ctxt_switches) -
				  (a->voluntary_ctxt_switches + a->nonvoluntary_ctxt_switches);
		/* Both samples caught the same blocking call (restarted after our
		 * ptrace interrupt, or never left): blocked, whatever the state
		 * letter says right after the interrupt's own wake-up. */
		out->restarted_same = a->syscall.kind == PROC_SYSCALL_IN && b->syscall.kind == PROC_SYSCALL_IN &&
				      a->syscall.nr == b->syscall.nr && a->syscall.args[0] == b->syscall.args[0];
		/* A thread caught running at either sample counts as running. */
		if (b->state == 'R' && out->state != 'R' && out->cpu_delta_ns && !out->restarted_same)
			out->state = 'R';
	}
	/* State R read a moment before /proc/TID/syscall showed a blocking call
	 * with a wait channel: the wake-up of our own interrupt, not work. */
	if (out->state == 'R' && t->syscall.kind == PROC_SYSCALL_IN && t->wchan && *t->wchan &&
	    (out->restarted_same || !b->valid))
		out->state = 'S';
	out->wait_path = dup_or_null(t->wait_path);
	if (t->n_histogram > 0) {
		const struct syscall_histogram_entry *h = &t->histogram[0];
		char buf[32];
		if (h->kind == SYSCALL_SAMPLE_SYSCALL) {
			out->hot_syscall = strdup(syscall_name_or_number(h->nr, buf, sizeof(buf)));
			out->hot_fd = (int64_t) h->arg0;
		} else
			out->hot_syscall = strdup("user");
		out->hot_samples = h->count;
		out->hot_has_result = h->has_result;
		out->hot_result = h->result;
	}
	if (t->wait_fds && t->n_wait_fds) {
		out->poll_fds = calloc(t->n_wait_fds, sizeof(int));
		for (size_t i = 0; out->poll_fds && i < t->n_wait_fds; i++)
			out->poll_fds[out->n_poll_fds++] = t->wait_fds[i].fd;
	}
	if (t->has_futex) {
		const struct futex_info *fx = &t->futex;
		out->futex_addr = fx->uaddr;
		pid_t owner = fx->pi_owner_tid ? fx->pi_owner_tid : fx->owner_tid;
		/* +8 is a glibc mutex's owner only when the word says locked (1, or 2
		 * with waiters); a join or condition-variable futex has other words. */
		bool mutex_like = fx->word_read && (fx->word == 1 || fx->word == 2);
		if (fx->pi_owner_tid || (mutex_like && fx->owner_read && owner > 0)) {
			out->futex_owner = owner;
			out->futex_owner_in_process = fx->owner_where == FUTEX_OWNER_SAME_PROCESS ||
						      fx->owner_where == FUTEX_OWNER_UNKNOWN;
			out->futex_owner_elsewhere = fx->owner_where == FUTEX_OWNER_OTHER_PROCESS ? fx->owner_pid : 0;
		}
		/* pthread_join waits on the joined thread's tid word */
		if (fx->word_read && fx->word > 2 && snapshot_find_thread(p, (pid_t) fx->word)) {
			out->futex_owner = (pid_t) fx->word;
			out->futex_owner_in_process = true;
		}
	}
	if (t->stack) {
		out->frames = calloc(t->stack->n_frames ? t->stack->n_frames : 1, sizeof(char *));
		for (size_t i = 0; out->frames && i < t->stack->n_frames; i++) {
			char *s = frame_text(&t->stack->frames[i]);
			if (s)
				out->frames[out->n_frames++] = s;
		}
		out->stack_error = dup_or_null(t->stack->error);
	} else
		out->stack_error = dup_or_null(p->stacks_error);
}

/* ---- probe events: names, handshakes, cancel requests, inherited fds ---- */

static uint64_t
target_inode(const char *target)
{
	const char *b = target ? strchr(target, '[') : NULL;
	return b ? strtoull(b + 1, NULL, 10) : 0;
}

/* The parent's threads at the fork: who could have held a lock the child
 * inherited locked. */
static void
apply_fork_event(struct wf_graph *g, const json_t *ev)
{
	struct wf_proc *c = wf_find_proc(g, (pid_t) json_int(ev, "child_pid", 0));
	if (!c || c->fork_threads)
		return;
	c->forking_tid = (pid_t) json_int(ev, "forking_tid", 0);
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	json_t *th;
	json_array_foreach(json_object_get(ev, "threads"), i, th) {
		pid_t tid = (pid_t) json_int(th, "tid", 0);
		(void) strbuf_printf(&sb, "%s%d \"%s\"%s", sb.len ? ", " : "", (int) tid, json_str(th, "name", "?"),
				     tid == c->forking_tid ? " (forked)" : "");
	}
	c->fork_threads = sb.len ? strbuf_steal(&sb) : NULL;
	strbuf_free(&sb);
}

static void
apply_events(struct wf_graph *g, const json_t *events)
{
	size_t i;
	json_t *ev;
	/* actor id -> pid, from child_start */
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		if (strcmp(name, "child_start") != 0 && strcmp(name, "exec") != 0)
			continue;
		struct wf_proc *p = wf_find_proc(g, (pid_t) json_int(ev, "pid", 0));
		if (!p)
			continue;
		p->has_events = true;
		const char *actor = json_str(ev, "actor", NULL);
		if (actor && !p->actor)
			p->actor = strdup(actor);
		json_t *fds = json_object_get(ev, "fds");
		size_t k;
		json_t *fd;
		json_array_foreach(fds, k, fd) {
			uint64_t ino = target_inode(json_str(fd, "target", NULL));
			if (!ino)
				continue;
			uint64_t *n = realloc(p->inherited_inos, (size_t) (p->inherited_inos_n + 1) * sizeof(uint64_t));
			if (!n)
				break;
			p->inherited_inos = n;
			p->inherited_inos[p->inherited_inos_n++] = ino;
		}
	}
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		pid_t pid = (pid_t) json_int(ev, "pid", 0);
		struct wf_proc *p = wf_find_proc(g, pid);
		/* the root announces itself with its own ready event */
		if (strcmp(name, "ready") == 0 && json_int(ev, "child_id", -1) == 0) {
			struct wf_proc *root = wf_find_proc(g, (pid_t) json_int(ev, "child_pid", 0));
			if (root) {
				root->has_events = true;
				if (!root->actor && json_str(ev, "child", NULL))
					root->actor = strdup(json_str(ev, "child", ""));
			}
		}
		if (strcmp(name, "cancel_recv") == 0 && p && strcmp(json_str(ev, "from", ""), "parent") == 0) {
			p->cancel_received = true;
			p->cancel_received_ns = (uint64_t) json_int(ev, "ts_ns", 0);
		} else if (strcmp(name, "teardown") == 0 && p)
			p->cancel_received = false; /* it acted */
		else if (strcmp(name, "daemon_start") == 0 && p && !p->actor)
			p->actor = strdup("daemon");
		else if (strcmp(name, "capture_start") == 0 && p && !p->actor)
			p->actor = strdup("capture");
		/* scenario actors announce themselves; the watch probe's events
		 * (exec, fork, spawn of any program) carry no actor id */
		if (strcmp(name, "ready") == 0 || strcmp(name, "cancel_recv") == 0 || json_object_get(ev, "actor_id"))
			g->from_scenario = true;
		if (strcmp(name, "fork") == 0)
			apply_fork_event(g, ev);
	}
	/* A child whose parent never saw its handshake. */
	for (size_t k = 0; k < g->n_procs; k++) {
		struct wf_proc *p = &g->procs[k];
		if (!p->has_events)
			continue;
		json_int_t id = -1;
		json_array_foreach(events, i, ev)
			if (strcmp(json_str(ev, "ev", ""), "child_start") == 0 && json_int(ev, "pid", 0) == p->pid)
				id = json_int(ev, "actor_id", -1);
		if (id <= 0)
			continue;
		bool ready = false;
		json_array_foreach(events, i, ev)
			if (strcmp(json_str(ev, "ev", ""), "ready") == 0 && json_int(ev, "child_id", -2) == id)
				ready = true;
		p->spawned_not_ready = !ready;
	}
}

/* The peer of a loopback TCP/UDP socket is the one whose (local, remote) is
 * this one's (remote, local); sockets with no such peer in the tree talk to
 * the outside. */
static void
match_inet_peers(struct wf_graph *g)
{
	for (size_t i = 0; i < g->n_procs; i++)
		for (size_t k = 0; k < g->procs[i].n_fds; k++) {
			struct wf_fd *f = &g->procs[i].fds[k];
			size_t rl = strlen(f->remote);
			/* an unconnected UDP socket (remote port 0) has no peer */
			if (!f->inet || f->listening || f->peer_ino || rl < 2 || strcmp(f->remote + rl - 2, ":0") == 0)
				continue;
			for (size_t j = 0; j < g->n_procs && !f->peer_ino; j++)
				for (size_t m = 0; m < g->procs[j].n_fds; m++) {
					const struct wf_fd *q = &g->procs[j].fds[m];
					if (q->inet && q->ino != f->ino && q->inet_protocol == f->inet_protocol &&
					    strcmp(q->local, f->remote) == 0 && strcmp(q->remote, f->local) == 0) {
						f->peer_ino = q->ino;
						break;
					}
				}
		}
}

static int
graph_from_struct(const struct snapshot *s, const json_t *events, struct wf_graph **ret)
{
	struct wf_graph *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->subreaper = s->subreaper;
	g->procs = calloc(s->n_processes ? s->n_processes : 1, sizeof(*g->procs));
	if (!g->procs) {
		free(g);
		return -ENOMEM;
	}
	g->n_procs = s->n_processes;
	for (size_t i = 0; i < s->n_processes; i++) {
		const struct snapshot_process *sp = &s->processes[i];
		struct wf_proc *p = &g->procs[i];
		p->pid = sp->pid;
		p->ppid = sp->ppid;
		p->pgid = sp->pgid;
		p->comm = dup_or_null(sp->comm);
		p->display = process_display_name(sp->comm, (const char *const *) sp->argv, sp->argc);
		p->state = sp->state;
		p->zombie = sp->zombie;
		p->partial = sp->partial;
		p->partial_reason = dup_or_null(sp->partial_reason);
		p->sig_pending = sp->shd_pending;
		p->sig_blocked = sp->n_threads ? ~0ULL : 0;
		p->sig_caught = sp->sig_caught;
		p->tracer_pid = sp->tracer_pid;
		p->sid = sp->sid;
		p->sig_ignored = sp->sig_ignored;
		for (size_t r = 0; r < s->n_roots; r++)
			if (s->roots[r] == sp->pid)
				p->is_top = true;
		if (sp->has_io[0] && sp->has_io[1]) {
			p->rchar_delta = (int64_t) (sp->io[1].rchar - sp->io[0].rchar);
			p->wchar_delta = (int64_t) (sp->io[1].wchar - sp->io[0].wchar);
			p->syscr_delta = (int64_t) (sp->io[1].syscr - sp->io[0].syscr);
		} else
			p->rchar_delta = p->wchar_delta = p->syscr_delta = -1;
		p->threads = calloc(sp->n_threads ? sp->n_threads : 1, sizeof(*p->threads));
		p->n_threads = sp->n_threads;
		for (size_t k = 0; k < sp->n_threads; k++) {
			build_thread(&p->threads[k], sp, &sp->threads[k], s->clock_ticks, s->started_ns);
			p->sig_pending |= sp->threads[k].sig_pending;
			p->sig_blocked &= sp->threads[k].sig_blocked;
		}
		p->fds = calloc(sp->n_fds ? sp->n_fds : 1, sizeof(*p->fds));
		p->n_fds = sp->n_fds;
		for (size_t k = 0; k < sp->n_fds; k++)
			build_fd(&p->fds[k], &sp->fds[k]);
	}
	g->taken_by = s->taken_by;
	match_inet_peers(g);
	if (events)
		apply_events(g, events);
	g->events = events;
	*ret = g;
	return 0;
}

int
wf_graph_from_snapshot(const json_t *snapshot, const json_t *events, struct wf_graph **ret)
{
	struct snapshot *s = NULL;
	int r = snapshot_from_json(snapshot, &s);
	if (r < 0)
		return r;
	r = graph_from_struct(s, events, ret);
	snapshot_free(s);
	return r;
}

int
wf_graph_from_snapshot_struct(const struct snapshot *s, const json_t *events, struct wf_graph **ret)
{
	return graph_from_struct(s, events, ret);
}

void
wf_graph_free(struct wf_graph *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		free(p->comm);
		free(p->display);
		free(p->actor);
		free(p->partial_reason);
		free(p->inherited_inos);
		free(p->fork_threads);
		for (size_t k = 0; k < p->n_threads; k++) {
			struct wf_thread *t = &p->threads[k];
			free(t->name);
			free(t->wchan);
			free(t->syscall);
			free(t->hot_syscall);
			free(t->stack_error);
			for (size_t f = 0; f < t->n_frames; f++)
				free(t->frames[f]);
			free(t->frames);
			free(t->poll_fds);
			free(t->wait_path);
		}
		free(p->threads);
		for (size_t k = 0; k < p->n_fds; k++) {
			free(p->fds[k].epoll_targets);
			free(p->fds[k].target);
			free(p->fds[k].name);
			free(p->fds[k].locks);
		}
		free(p->fds);
	}
	free(g->procs);
	free(g);
}
