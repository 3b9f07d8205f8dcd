/* JSON form of struct snapshot (docs/snapshot.md). Lossless: 64-bit values
 * that may use the top bit (signal masks, syscall arguments, addresses) are
 * hex strings, everything else plain integers. */
#include "probes/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/asfmt.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"

/* ---- small writers ---- */

static json_t *
jhex(uint64_t v)
{
	char buf[24];
	(void) snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

static json_t *
jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
jchar(char c)
{
	char buf[2] = {c, '\0'};
	return c ? json_string(buf) : json_null();
}

static void
set(json_t *obj, const char *key, json_t *value)
{
	/* jansson tolerates a NULL value (returns -1): a failed allocation just drops the key */
	(void) json_object_set_new(obj, key, value);
}

static void
set_mask(json_t *obj, const char *key, uint64_t mask)
{
	char names_key[64];
	set(obj, key, jhex(mask));
	json_t *names = json_array();
	for (int sig = 1; sig <= 64; sig++)
		if (mask & (1ULL << (sig - 1)))
			(void) json_array_append_new(names, json_string(signal_name(sig)));
	(void) snprintf(names_key, sizeof(names_key), "%s_names", key);
	set(obj, names_key, names);
}

/* ---- enums ---- */

static const char *const syscall_kind_names[] = {
    [PROC_SYSCALL_UNKNOWN] = "unknown",
    [PROC_SYSCALL_IN] = "in",
    [PROC_SYSCALL_RUNNING] = "running",
    [PROC_SYSCALL_NONE] = "none",
};

static const char *const timeout_kind_names[] = {
    [SYSCALL_TIMEOUT_NA] = "na",
    [SYSCALL_TIMEOUT_INFINITE] = "infinite",
    [SYSCALL_TIMEOUT_RELATIVE] = "relative",
    [SYSCALL_TIMEOUT_ABSOLUTE] = "absolute",
    [SYSCALL_TIMEOUT_POINTER] = "pointer",
    [SYSCALL_TIMEOUT_UNREADABLE] = "unreadable",
};

static const char *const via_names[] = {"root", "children", "ppid", "subreaper", "pgid", "sid"};

static int
name_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int) i;
	return -1;
}

static const char *
access_name(int access)
{
	switch (access) {
	case 0:
		return "r";
	case 1:
		return "w";
	case 2:
		return "rw";
	default:
		return "?";
	}
}

static int
access_from_name(const char *s)
{
	if (!s)
		return 0;
	if (strcmp(s, "w") == 0)
		return 1;
	if (strcmp(s, "rw") == 0)
		return 2;
	return 0;
}

/* ---- to JSON ---- */

static json_t *
syscall_to_json(const struct proc_syscall *sc)
{
	json_t *o = json_object();
	set(o, "kind", json_string(syscall_kind_names[sc->kind]));
	if (sc->kind == PROC_SYSCALL_IN) {
		char buf[32];
		set(o, "nr", json_integer(sc->nr));
		set(o, "name", json_string(syscall_name_or_number(sc->nr, buf, sizeof(buf))));
		json_t *args = json_array();
		for (size_t i = 0; i < 6; i++)
			(void) json_array_append_new(args, jhex(sc->args[i]));
		set(o, "args", args);
	}
	if (sc->kind == PROC_SYSCALL_IN || sc->kind == PROC_SYSCALL_NONE) {
		set(o, "sp", jhex(sc->sp));
		set(o, "pc", jhex(sc->pc));
	}
	return o;
}

static json_t *
wait_to_json(const struct snapshot_thread *t)
{
	const struct syscall_wait *w = &t->wait;
	json_t *o = json_object();
	set(o, "fd", w->fd >= 0 ? json_integer(w->fd) : json_null());
	set(o, "wait_pid", w->wait_pid ? json_integer(w->wait_pid) : json_null());
	json_t *to = json_object();
	set(to, "kind", json_string(timeout_kind_names[w->timeout_kind]));
	if (w->timeout_kind == SYSCALL_TIMEOUT_RELATIVE ||
	    w->timeout_kind == SYSCALL_TIMEOUT_ABSOLUTE)
		set(to, "ns", json_integer(w->timeout_ns));
	if (w->timeout_kind == SYSCALL_TIMEOUT_ABSOLUTE)
		set(to, "clock", json_integer(w->timeout_clock));
	if (w->timeout_ptr)
		set(to, "ptr", jhex(w->timeout_ptr));
	set(o, "timeout", to);
	json_t *fds = json_array();
	for (size_t i = 0; i < t->n_wait_fds; i++)
		(void) json_array_append_new(fds, json_pack("{s:i,s:i}", "fd", t->wait_fds[i].fd,
							    "events", (int) t->wait_fds[i].events));
	set(o, "fds", fds);
	return o;
}

static json_t *
futex_to_json(const struct futex_info *f)
{
	json_t *o = json_object();
	const char *cmd = futex_cmd_name(f->cmd);
	set(o, "uaddr", jhex(f->uaddr));
	set(o, "op", json_integer(f->op));
	set(o, "cmd", cmd ? json_string(cmd) : json_integer(f->cmd));
	set(o, "private", json_boolean(f->private_flag));
	set(o, "clock_realtime", json_boolean(f->clock_realtime));
	set(o, "val", json_integer(f->val));
	set(o, "word", f->word_read ? json_integer(f->word) : json_null());
	set(o, "word_errno", f->word_error ? json_integer(f->word_error) : json_null());
	set(o, "owner_tid", f->owner_read ? json_integer(f->owner_tid) : json_null());
	set(o, "owner_errno", f->owner_error ? json_integer(f->owner_error) : json_null());
	set(o, "pi_owner_tid", f->pi_owner_tid ? json_integer(f->pi_owner_tid) : json_null());
	set(o, "owner_where", json_string(futex_owner_where_name(f->owner_where)));
	set(o, "owner_pid", f->owner_pid ? json_integer(f->owner_pid) : json_null());
	return o;
}

static json_t *
stack_to_json(const struct thread_stack *s)
{
	json_t *o = json_object();
	set(o, "tid", json_integer(s->tid));
	set(o, "partial", json_boolean(s->partial));
	set(o, "error", jstr_or_null(s->error));
	json_t *frames = json_array();
	for (size_t i = 0; i < s->n_frames; i++) {
		const struct frame *f = &s->frames[i];
		json_t *fo = json_object();
		set(fo, "pc", jhex(f->pc));
		set(fo, "function", jstr_or_null(f->function));
		set(fo, "offset", json_u64(f->offset));
		set(fo, "module", jstr_or_null(f->module));
		set(fo, "file", jstr_or_null(f->file));
		set(fo, "line", json_integer(f->line));
		set(fo, "inlined", json_boolean(f->inlined));
		set(fo, "python", jstr_or_null(f->python));
		(void) json_array_append_new(frames, fo);
	}
	set(o, "frames", frames);
	return o;
}

static json_t *
sample_to_json(const struct snapshot_thread_sample *s)
{
	json_t *o = json_object();
	set(o, "valid", json_boolean(s->valid));
	set(o, "at_ns", json_u64(s->at_ns));
	set(o, "state", jchar(s->state));
	set(o, "utime", json_u64(s->utime));
	set(o, "stime", json_u64(s->stime));
	set(o, "voluntary_ctxt_switches", json_u64(s->voluntary_ctxt_switches));
	set(o, "nonvoluntary_ctxt_switches", json_u64(s->nonvoluntary_ctxt_switches));
	set(o, "syscall", syscall_to_json(&s->syscall));
	return o;
}

static json_t *
thread_to_json(const struct snapshot_thread *t)
{
	json_t *o = json_object();
	set(o, "tid", json_integer(t->tid));
	set(o, "name", jstr_or_null(t->name));
	set(o, "state", jchar(t->state));
	set(o, "wchan", jstr_or_null(t->wchan));
	set(o, "syscall", syscall_to_json(&t->syscall));
	if (t->wait_path)
		set(o, "wait_path", json_string(t->wait_path));
	set(o, "wait", t->syscall.kind == PROC_SYSCALL_IN ? wait_to_json(t) : json_null());
	set_mask(o, "sig_pending", t->sig_pending);
	set_mask(o, "sig_blocked", t->sig_blocked);
	set(o, "utime", json_u64(t->utime));
	set(o, "stime", json_u64(t->stime));
	set(o, "voluntary_ctxt_switches", json_u64(t->voluntary_ctxt_switches));
	set(o, "nonvoluntary_ctxt_switches", json_u64(t->nonvoluntary_ctxt_switches));
	json_t *samples = json_array();
	for (size_t i = 0; i < 2; i++)
		(void) json_array_append_new(samples, sample_to_json(&t->samples[i]));
	set(o, "samples", samples);

	json_t *ss = json_object();
	set(ss, "taken", json_integer(t->n_syscall_samples));
	set(ss, "error", jstr_or_null(t->sampling_error));
	json_t *hist = json_array();
	for (size_t i = 0; i < t->n_histogram; i++) {
		const struct syscall_histogram_entry *e = &t->histogram[i];
		json_t *eo = json_object();
		char buf[32];
		bool user = e->kind == SYSCALL_SAMPLE_USER;
		set(eo, "kind", json_string(user ? "user" : "syscall"));
		set(eo, "nr", json_integer(e->nr));
		set(eo, "name",
		    user ? json_null()
			 : json_string(syscall_name_or_number(e->nr, buf, sizeof(buf))));
		set(eo, "arg0", jhex(e->arg0));
		set(eo, "result", e->has_result ? json_integer(e->result) : json_null());
		set(eo, "count", json_integer(e->count));
		(void) json_array_append_new(hist, eo);
	}
	set(ss, "histogram", hist);
	set(o, "syscall_samples", ss);

	set(o, "futex", t->has_futex ? futex_to_json(&t->futex) : json_null());
	set(o, "stack", t->stack ? stack_to_json(t->stack) : json_null());
	set(o, "partial", json_boolean(t->partial));
	set(o, "partial_reason", jstr_or_null(t->partial_reason));
	return o;
}

static json_t *
unix_to_json(const struct unix_sock_info *u)
{
	json_t *o = json_object();
	const char *type = sock_type_name(u->type);
	const char *state = sock_state_name(u->state);
	set(o, "ino", json_u64(u->ino));
	set(o, "type", type ? json_string(type) : json_integer(u->type));
	set(o, "state", state ? json_string(state) : json_integer(u->state));
	set(o, "peer_ino", u->peer_ino ? json_u64(u->peer_ino) : json_null());
	set(o, "rqlen", u->has_rqlen ? json_integer(u->rqlen) : json_null());
	set(o, "wqlen", u->has_rqlen ? json_integer(u->wqlen) : json_null());
	json_t *icons = json_array();
	for (size_t i = 0; i < u->n_icons; i++)
		(void) json_array_append_new(icons, json_integer(u->icons[i]));
	set(o, "icons", icons);
	set(o, "name", jstr_or_null(u->name));
	set(o, "vfs_ino", u->has_vfs ? json_u64(u->vfs_ino) : json_null());
	set(o, "vfs_dev", u->has_vfs ? json_integer(u->vfs_dev) : json_null());
	set(o, "shutdown", u->shutdown >= 0 ? json_integer(u->shutdown) : json_null());
	set(o, "uid", u->has_uid ? json_integer(u->uid) : json_null());
	return o;
}

static json_t *
inet_to_json(const struct inet_sock_info *s)
{
	json_t *o = json_object();
	const char *state = sock_state_name(s->state);
	set(o, "ino", json_u64(s->ino));
	set(o, "family", json_string(s->family == AF_INET6 ? "ipv6" : "ipv4"));
	set(o, "protocol", json_string(s->protocol == 17 ? "udp" : "tcp"));
	set(o, "state", state ? json_string(state) : json_integer(s->state));
	set(o, "local", json_string(s->local));
	set(o, "remote", json_string(s->remote));
	set(o, "rqueue", json_integer(s->rqueue));
	set(o, "wqueue", json_integer(s->wqueue));
	set(o, "uid", json_integer(s->uid));
	if (s->has_tcp_info)
		set(o, "tcp_info", json_pack("{s:o,s:o,s:I,s:I}", "bytes_acked", json_u64(s->bytes_acked),
					     "bytes_received", json_u64(s->bytes_received), "last_data_sent_ms",
					     (json_int_t) s->last_data_sent_ms, "last_data_recv_ms",
					     (json_int_t) s->last_data_recv_ms));
	return o;
}

static json_t *
fd_to_json(const struct snapshot_fd *f)
{
	json_t *o = json_object();
	set(o, "fd", json_integer(f->fd));
	set(o, "target", jstr_or_null(f->target));
	set(o, "kind", json_string(fd_kind_name(f->kind)));
	set(o, "ino", json_u64(f->ino));
	set(o, "deleted", json_boolean(f->deleted));
	set(o, "has_fdinfo", json_boolean(f->has_fdinfo));
	if (f->has_fdinfo) {
		char oct[16];
		(void) snprintf(oct, sizeof(oct), "0%o", f->flags);
		set(o, "flags", json_string(oct));
		set(o, "access", json_string(access_name(f->access)));
		set(o, "nonblock", json_boolean(f->nonblock));
		set(o, "cloexec", json_boolean(f->cloexec));
		set(o, "pos", json_integer(f->pos));
		set(o, "mnt_id", json_integer(f->mnt_id));
	}
	if (f->kind == FD_KIND_EPOLL || f->n_epoll_targets) {
		json_t *targets = json_array();
		for (size_t i = 0; i < f->n_epoll_targets; i++) {
			const struct epoll_target *e = &f->epoll_targets[i];
			(void) json_array_append_new(
			    targets, json_pack("{s:i,s:o,s:o,s:o,s:I}", "tfd", e->tfd, "events",
					       jhex(e->events), "data", jhex(e->data), "ino",
					       json_u64(e->ino), "sdev", (json_int_t) e->sdev));
		}
		set(o, "epoll_targets", targets);
	}
	if (f->kind == FD_KIND_PIDFD || f->pidfd_pid)
		set(o, "pidfd_pid", json_integer(f->pidfd_pid));
	if (f->kind == FD_KIND_EVENTFD || f->eventfd_count)
		set(o, "eventfd_count", jhex(f->eventfd_count));
	if (f->kind == FD_KIND_SIGNALFD || f->signalfd_mask)
		set_mask(o, "signalfd_mask", f->signalfd_mask);
	if (f->kind == FD_KIND_TIMERFD || f->timerfd_value_ns || f->timerfd_interval_ns) {
		set(o, "timerfd_clockid", json_integer(f->timerfd_clockid));
		set(o, "timerfd_value_ns", json_integer(f->timerfd_value_ns));
		set(o, "timerfd_interval_ns", json_integer(f->timerfd_interval_ns));
		set(o, "timerfd_ticks", json_u64(f->timerfd_ticks));
	}
	if (f->kind == FD_KIND_PIPE) {
		set(o, "pipe",
		    f->has_pipe_fill
			? json_pack("{s:i,s:i,s:o}", "queued", f->pipe_fill.queued, "capacity",
				    f->pipe_fill.capacity, "ino", json_u64(f->pipe_fill.ino))
			: json_null());
		set(o, "pipe_error", jstr_or_null(f->pipe_fill_error));
	}
	if (f->kind == FD_KIND_SOCKET) {
		json_t *so = json_object();
		set(so, "protocol", jstr_or_null(f->sock_protocol));
		set(so, "unix", f->has_unix ? unix_to_json(&f->unix_sock) : json_null());
		set(so, "inet", f->has_inet ? inet_to_json(&f->inet_sock) : json_null());
		set(o, "socket", so);
	}
	if (f->n_locks)
		set(o, "locks", fd_locks_to_json(f->locks, f->n_locks));
	set(o, "error", jstr_or_null(f->error));
	return o;
}

static json_t *
io_to_json(bool has, const struct proc_io *io)
{
	if (!has)
		return json_null();
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "rchar", json_u64(io->rchar), "wchar",
			 json_u64(io->wchar), "syscr", json_u64(io->syscr), "syscw",
			 json_u64(io->syscw), "read_bytes", json_u64(io->read_bytes), "write_bytes",
			 json_u64(io->write_bytes));
}

static json_t *
gap_to_json(const struct snapshot_gap *g)
{
	json_t *o = json_object();
	set(o, "what", json_string(g->what));
	set(o, "errno", g->err ? json_integer(g->err) : json_null());
	const char *name = g->err ? strerrorname_np(g->err) : NULL;
	set(o, "errno_name", jstr_or_null(name));
	set(o, "cause", jstr_or_null(g->cause));
	set(o, "tid", g->tid ? json_integer(g->tid) : json_null());
	if (g->tracer)
		set(o, "tracer", json_integer(g->tracer));
	set(o, "detail", jstr_or_null(g->detail));
	return o;
}

static json_t *
process_to_json(const struct snapshot_process *p)
{
	json_t *o = json_object();
	set(o, "pid", json_integer(p->pid));
	set(o, "ppid", json_integer(p->ppid));
	set(o, "pgid", json_integer(p->pgid));
	set(o, "sid", json_integer(p->sid));
	set(o, "tty_nr", json_integer(p->tty_nr));
	set(o, "uid", json_integer(p->uid));
	set(o, "euid", json_integer(p->euid));
	set(o, "gid", json_integer(p->gid));
	set(o, "egid", json_integer(p->egid));
	set(o, "comm", jstr_or_null(p->comm));
	json_t *argv = json_array();
	for (size_t i = 0; i < p->argc; i++)
		(void) json_array_append_new(argv, json_string(p->argv[i]));
	set(o, "argv", argv);
	set(o, "exe", jstr_or_null(p->exe));
	set(o, "state", jchar(p->state));
	set(o, "zombie", json_boolean(p->zombie));
	set(o, "stopped", json_boolean(p->stopped));
	set(o, "is_traced", json_boolean(p->is_traced));
	set(o, "tracer_pid", json_integer(p->tracer_pid));
	set(o, "orphan_hint", json_boolean(p->orphan_hint));
	json_t *via = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(via_names); i++)
		if (p->found_via & (1u << i))
			(void) json_array_append_new(via, json_string(via_names[i]));
	set(o, "found_via", via);
	set(o, "starttime", json_u64(p->starttime));
	set(o, "utime", json_u64(p->utime));
	set(o, "stime", json_u64(p->stime));
	set(o, "num_threads", json_integer(p->num_threads));
	set_mask(o, "shd_pending", p->shd_pending);
	set_mask(o, "sig_ignored", p->sig_ignored);
	set_mask(o, "sig_caught", p->sig_caught);
	set(o, "sigq_queued", json_u64(p->sigq_queued));
	set(o, "sigq_limit", json_u64(p->sigq_limit));
	json_t *io = json_array();
	for (size_t i = 0; i < 2; i++)
		(void) json_array_append_new(io, io_to_json(p->has_io[i], &p->io[i]));
	set(o, "io", io);
	json_t *threads = json_array();
	for (size_t i = 0; i < p->n_threads; i++)
		(void) json_array_append_new(threads, thread_to_json(&p->threads[i]));
	set(o, "threads", threads);
	json_t *fds = json_array();
	for (size_t i = 0; i < p->n_fds; i++)
		(void) json_array_append_new(fds, fd_to_json(&p->fds[i]));
	set(o, "fds", fds);
	/* Stacks of tids that are not in threads (appeared after the task scan). */
	json_t *extra = json_array();
	for (size_t k = 0; k < p->n_stacks; k++) {
		bool matched = false;
		for (size_t i = 0; i < p->n_threads && !matched; i++)
			matched = p->threads[i].stack == &p->stacks[k];
		if (!matched)
			(void) json_array_append_new(extra, stack_to_json(&p->stacks[k]));
	}
	set(o, "unmatched_stacks", extra);
	set(o, "stacks_error", jstr_or_null(p->stacks_error));
	set(o, "python", p->python ? python_process_to_json(p->python) : json_null());
	set(o, "partial", json_boolean(p->partial));
	set(o, "partial_reason", jstr_or_null(p->partial_reason));
	json_t *gaps = json_array();
	for (size_t i = 0; i < p->n_gaps; i++)
		(void) json_array_append_new(gaps, gap_to_json(&p->gaps[i]));
	set(o, "gaps", gaps);
	return o;
}

json_t *
snapshot_to_json(const struct snapshot *snap)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	set(o, "schema_version", json_integer(snap->schema_version));
	set(o, "started_ns", json_u64(snap->started_ns));
	set(o, "finished_ns", json_u64(snap->finished_ns));
	set(o, "duration_ns", json_u64(snap->duration_ns));
	set(o, "sample_interval_ns", json_u64(snap->sample_interval_ns));
	set(o, "clock_ticks", json_integer(snap->clock_ticks));
	set(o, "taken_by", json_integer(snap->taken_by));
	set(o, "kernel", jstr_or_null(snap->kernel));
	json_t *roots = json_array();
	for (size_t i = 0; i < snap->n_roots; i++)
		(void) json_array_append_new(roots, json_integer(snap->roots[i]));
	set(o, "roots", roots);
	set(o, "subreaper", json_integer(snap->subreaper));
	set(o, "pgid", json_integer(snap->pgid));
	set(o, "sid", json_integer(snap->sid));
	set(o, "truncated", json_boolean(snap->truncated));
	set(o, "sockdiag_error", jstr_or_null(snap->sockdiag_error));
	json_t *procs = json_array();
	for (size_t i = 0; i < snap->n_processes; i++)
		(void) json_array_append_new(procs, process_to_json(&snap->processes[i]));
	set(o, "processes", procs);
	return o;
}

/* ---- from JSON ---- */

static void
syscall_from_json(const json_t *o, struct proc_syscall *sc)
{
	*sc = (struct proc_syscall){0};
	int k = name_index(syscall_kind_names, ARRAY_SIZE(syscall_kind_names),
			   json_str(o, "kind", NULL));
	sc->kind = k < 0 ? PROC_SYSCALL_UNKNOWN : (enum proc_syscall_kind) k;
	sc->nr = sc->kind == PROC_SYSCALL_IN ? (long) json_int(o, "nr", -1) : -1;
	const json_t *args = json_object_get(o, "args");
	for (size_t i = 0; i < 6 && i < json_array_size(args); i++) {
		uint64_t v = 0;
		const json_t *a = json_array_get(args, i);
		if (json_is_string(a))
			(void) as_parse_hex(json_string_value(a), &v);
		sc->args[i] = v;
	}
	sc->sp = json_hex(o, "sp", 0);
	sc->pc = json_hex(o, "pc", 0);
}

static bool
wait_from_json(const json_t *o, struct snapshot_thread *t)
{
	/* What the arguments say is recomputed; what was read from memory is loaded. */
	syscall_wait_decode(&t->syscall, &t->wait);
	if (!json_is_object(o))
		return true;
	const json_t *to = json_object_get(o, "timeout");
	int k = name_index(timeout_kind_names, ARRAY_SIZE(timeout_kind_names),
			   json_str(to, "kind", NULL));
	if (k >= 0)
		t->wait.timeout_kind = (enum syscall_timeout_kind) k;
	t->wait.timeout_ns = json_int(to, "ns", 0);
	if (json_object_get(to, "clock"))
		t->wait.timeout_clock = (int) json_int(to, "clock", 0);
	const json_t *fds = json_object_get(o, "fds");
	size_t n = json_array_size(fds);
	if (n) {
		t->wait_fds = calloc(n, sizeof(*t->wait_fds));
		if (!t->wait_fds)
			return false;
		for (size_t i = 0; i < n; i++) {
			const json_t *e = json_array_get(fds, i);
			t->wait_fds[i].fd = (int) json_int(e, "fd", -1);
			t->wait_fds[i].events = (short) json_int(e, "events", 0);
		}
		t->n_wait_fds = n;
	}
	return true;
}

static void
futex_from_json(const json_t *o, struct futex_info *f)
{
	*f = (struct futex_info){0};
	f->uaddr = json_hex(o, "uaddr", 0);
	f->op = (int) json_int(o, "op", 0);
	f->cmd = f->op & 0x7f;
	f->private_flag = json_bool(o, "private", 0);
	f->clock_realtime = json_bool(o, "clock_realtime", 0);
	f->val = (uint32_t) json_int(o, "val", 0);
	const json_t *w = json_object_get(o, "word");
	f->word_read = json_is_integer(w);
	f->word = (uint32_t) json_int(o, "word", 0);
	f->word_error = (int) json_int(o, "word_errno", 0);
	f->owner_read = json_is_integer(json_object_get(o, "owner_tid"));
	f->owner_tid = (pid_t) json_int(o, "owner_tid", 0);
	f->owner_error = (int) json_int(o, "owner_errno", 0);
	f->pi_owner_tid = (pid_t) json_int(o, "pi_owner_tid", 0);
	int where = futex_owner_where_from_name(json_str(o, "owner_where", "unknown"));
	f->owner_where = where < 0 ? FUTEX_OWNER_UNKNOWN : (enum futex_owner_where) where;
	f->owner_pid = (pid_t) json_int(o, "owner_pid", 0);
}

static bool
stack_from_json(const json_t *o, struct thread_stack *s)
{
	bool ok = true;
	*s = (struct thread_stack){0};
	s->tid = (pid_t) json_int(o, "tid", 0);
	s->partial = json_bool(o, "partial", 0);
	s->error = json_strdup(o, "error", &ok);
	const json_t *frames = json_object_get(o, "frames");
	size_t n = json_array_size(frames);
	if (n) {
		s->frames = calloc(n, sizeof(*s->frames));
		if (!s->frames)
			return false;
		s->n_frames = n;
		for (size_t i = 0; i < n; i++) {
			const json_t *fo = json_array_get(frames, i);
			struct frame *f = &s->frames[i];
			f->pc = json_hex(fo, "pc", 0);
			f->function = json_strdup(fo, "function", &ok);
			f->offset = (uint64_t) json_int(fo, "offset", 0);
			f->module = json_strdup(fo, "module", &ok);
			f->file = json_strdup(fo, "file", &ok);
			f->line = (int) json_int(fo, "line", 0);
			f->inlined = json_bool(fo, "inlined", 0);
			f->python = json_strdup(fo, "python", &ok);
		}
	}
	return ok;
}

static void
sample_from_json(const json_t *o, struct snapshot_thread_sample *s)
{
	s->valid = json_bool(o, "valid", 0);
	s->at_ns = (uint64_t) json_int(o, "at_ns", 0);
	s->state = json_char(o, "state", '\0');
	s->utime = (uint64_t) json_int(o, "utime", 0);
	s->stime = (uint64_t) json_int(o, "stime", 0);
	s->voluntary_ctxt_switches = (uint64_t) json_int(o, "voluntary_ctxt_switches", 0);
	s->nonvoluntary_ctxt_switches = (uint64_t) json_int(o, "nonvoluntary_ctxt_switches", 0);
	syscall_from_json(json_object_get(o, "syscall"), &s->syscall);
}

static bool
thread_from_json(const json_t *o, struct snapshot_thread *t)
{
	bool ok = true;
	t->tid = (pid_t) json_int(o, "tid", 0);
	t->name = json_strdup(o, "name", &ok);
	t->state = json_char(o, "state", '\0');
	t->wchan = json_strdup(o, "wchan", &ok);
	syscall_from_json(json_object_get(o, "syscall"), &t->syscall);
	t->wait_path = json_strdup(o, "wait_path", &ok);
	if (!wait_from_json(json_object_get(o, "wait"), t))
		return false;
	t->sig_pending = json_hex(o, "sig_pending", 0);
	t->sig_blocked = json_hex(o, "sig_blocked", 0);
	t->utime = (uint64_t) json_int(o, "utime", 0);
	t->stime = (uint64_t) json_int(o, "stime", 0);
	t->voluntary_ctxt_switches = (uint64_t) json_int(o, "voluntary_ctxt_switches", 0);
	t->nonvoluntary_ctxt_switches = (uint64_t) json_int(o, "nonvoluntary_ctxt_switches", 0);
	const json_t *samples = json_object_get(o, "samples");
	for (size_t i = 0; i < 2 && i < json_array_size(samples); i++)
		sample_from_json(json_array_get(samples, i), &t->samples[i]);
	const json_t *ss = json_object_get(o, "syscall_samples");
	t->n_syscall_samples = (unsigned) json_int(ss, "taken", 0);
	t->sampling_error = json_strdup(ss, "error", &ok);
	const json_t *hist = json_object_get(ss, "histogram");
	size_t n = json_array_size(hist);
	if (n) {
		t->histogram = calloc(n, sizeof(*t->histogram));
		if (!t->histogram)
			return false;
		t->n_histogram = n;
		for (size_t i = 0; i < n; i++) {
			const json_t *e = json_array_get(hist, i);
			struct syscall_histogram_entry *h = &t->histogram[i];
			const char *kind = json_str(e, "kind", "syscall");
			h->kind = strcmp(kind, "user") == 0 ? SYSCALL_SAMPLE_USER
							    : SYSCALL_SAMPLE_SYSCALL;
			h->nr = (long) json_int(e, "nr", -1);
			h->arg0 = json_hex(e, "arg0", 0);
			h->has_result = json_is_integer(json_object_get(e, "result"));
			h->result = json_int(e, "result", 0);
			h->count = (unsigned) json_int(e, "count", 0);
		}
	}
	const json_t *fx = json_object_get(o, "futex");
	if (json_is_object(fx)) {
		t->has_futex = true;
		futex_from_json(fx, &t->futex);
	}
	t->partial = json_bool(o, "partial", 0);
	t->partial_reason = json_strdup(o, "partial_reason", &ok);
	return ok;
}

static bool
unix_from_json(const json_t *o, struct unix_sock_info *u)
{
	bool ok = true;
	*u = (struct unix_sock_info){.shutdown = -1};
	u->ino = (uint64_t) json_int(o, "ino", 0);
	const json_t *type = json_object_get(o, "type");
	u->type = json_is_string(type) ? sock_type_from_name(json_string_value(type))
				       : (int) json_int(o, "type", 0);
	const json_t *state = json_object_get(o, "state");
	u->state = json_is_string(state) ? sock_state_from_name(json_string_value(state))
					 : (int) json_int(o, "state", 0);
	u->peer_ino = (uint64_t) json_int(o, "peer_ino", 0);
	u->has_rqlen = json_is_integer(json_object_get(o, "rqlen"));
	u->rqlen = (uint32_t) json_int(o, "rqlen", 0);
	u->wqlen = (uint32_t) json_int(o, "wqlen", 0);
	const json_t *icons = json_object_get(o, "icons");
	size_t n = json_array_size(icons);
	if (n) {
		u->icons = calloc(n, sizeof(*u->icons));
		if (!u->icons)
			return false;
		u->n_icons = n;
		for (size_t i = 0; i < n; i++)
			u->icons[i] = (uint32_t) json_integer_value(json_array_get(icons, i));
	}
	u->name = json_strdup(o, "name", &ok);
	u->has_vfs = json_is_integer(json_object_get(o, "vfs_ino"));
	u->vfs_ino = (uint64_t) json_int(o, "vfs_ino", 0);
	u->vfs_dev = (uint32_t) json_int(o, "vfs_dev", 0);
	u->shutdown = (int) json_int(o, "shutdown", -1);
	u->has_uid = json_is_integer(json_object_get(o, "uid"));
	u->uid = (uid_t) json_int(o, "uid", 0);
	return ok;
}

static void
inet_from_json(const json_t *o, struct inet_sock_info *s)
{
	*s = (struct inet_sock_info){0};
	s->ino = (uint64_t) json_int(o, "ino", 0);
	s->family = strcmp(json_str(o, "family", "ipv4"), "ipv6") == 0 ? AF_INET6 : AF_INET;
	s->protocol = strcmp(json_str(o, "protocol", "tcp"), "udp") == 0 ? 17 : 6;
	const json_t *state = json_object_get(o, "state");
	s->state = json_is_string(state) ? sock_state_from_name(json_string_value(state))
					 : (int) json_int(o, "state", 0);
	(void) snprintf(s->local, sizeof(s->local), "%s", json_str(o, "local", ""));
	(void) snprintf(s->remote, sizeof(s->remote), "%s", json_str(o, "remote", ""));
	s->rqueue = (uint32_t) json_int(o, "rqueue", 0);
	s->wqueue = (uint32_t) json_int(o, "wqueue", 0);
	s->uid = (uid_t) json_int(o, "uid", 0);
	const json_t *ti = json_object_get(o, "tcp_info");
	if (json_is_object(ti)) {
		s->has_tcp_info = true;
		s->bytes_acked = (uint64_t) json_int(ti, "bytes_acked", 0);
		s->bytes_received = (uint64_t) json_int(ti, "bytes_received", 0);
		s->last_data_sent_ms = (uint32_t) json_int(ti, "last_data_sent_ms", 0);
		s->last_data_recv_ms = (uint32_t) json_int(ti, "last_data_recv_ms", 0);
	}
}

static bool
fd_from_json(const json_t *o, struct snapshot_fd *f)
{
	bool ok = true;
	f->fd = (int) json_int(o, "fd", -1);
	f->target = json_strdup(o, "target", &ok);
	int kind = fd_kind_from_name(json_str(o, "kind", "other"));
	f->kind = kind < 0 ? FD_KIND_OTHER : (enum fd_kind) kind;
	f->ino = (uint64_t) json_int(o, "ino", 0);
	f->deleted = json_bool(o, "deleted", 0);
	f->has_fdinfo = json_bool(o, "has_fdinfo", 0);
	const char *flags = json_str(o, "flags", NULL);
	if (flags)
		f->flags = (uint32_t) strtoul(flags, NULL, 8);
	f->access = access_from_name(json_str(o, "access", NULL));
	f->nonblock = json_bool(o, "nonblock", 0);
	f->cloexec = json_bool(o, "cloexec", 0);
	f->pos = json_int(o, "pos", 0);
	f->mnt_id = (int) json_int(o, "mnt_id", 0);
	const json_t *targets = json_object_get(o, "epoll_targets");
	size_t n = json_array_size(targets);
	if (n) {
		f->epoll_targets = calloc(n, sizeof(*f->epoll_targets));
		if (!f->epoll_targets)
			return false;
		f->n_epoll_targets = n;
		for (size_t i = 0; i < n; i++) {
			const json_t *e = json_array_get(targets, i);
			struct epoll_target *t = &f->epoll_targets[i];
			t->tfd = (int) json_int(e, "tfd", -1);
			t->events = (uint32_t) json_hex(e, "events", 0);
			t->data = json_hex(e, "data", 0);
			t->ino = (uint64_t) json_int(e, "ino", 0);
			t->sdev = (uint32_t) json_int(e, "sdev", 0);
		}
	}
	f->pidfd_pid = (pid_t) json_int(o, "pidfd_pid", 0);
	f->eventfd_count = json_hex(o, "eventfd_count", 0);
	f->signalfd_mask = json_hex(o, "signalfd_mask", 0);
	f->timerfd_clockid = (int) json_int(o, "timerfd_clockid", 0);
	f->timerfd_value_ns = json_int(o, "timerfd_value_ns", 0);
	f->timerfd_interval_ns = json_int(o, "timerfd_interval_ns", 0);
	f->timerfd_ticks = (uint64_t) json_int(o, "timerfd_ticks", 0);
	const json_t *pipe = json_object_get(o, "pipe");
	if (json_is_object(pipe)) {
		f->has_pipe_fill = true;
		f->pipe_fill.queued = (int) json_int(pipe, "queued", 0);
		f->pipe_fill.capacity = (int) json_int(pipe, "capacity", 0);
		f->pipe_fill.ino = (uint64_t) json_int(pipe, "ino", 0);
	}
	f->pipe_fill_error = json_strdup(o, "pipe_error", &ok);
	const json_t *so = json_object_get(o, "socket");
	if (json_is_object(so)) {
		f->sock_protocol = json_strdup(so, "protocol", &ok);
		const json_t *u = json_object_get(so, "unix");
		if (json_is_object(u)) {
			f->has_unix = true;
			if (!unix_from_json(u, &f->unix_sock))
				ok = false;
		}
		const json_t *in = json_object_get(so, "inet");
		if (json_is_object(in)) {
			f->has_inet = true;
			inet_from_json(in, &f->inet_sock);
		}
	}
	if (fd_locks_from_json(json_object_get(o, "locks"), &f->locks, &f->n_locks) < 0)
		ok = false;
	f->error = json_strdup(o, "error", &ok);
	return ok;
}

static void
io_from_json(const json_t *o, bool *has, struct proc_io *io)
{
	*has = json_is_object(o);
	if (!*has)
		return;
	io->rchar = (uint64_t) json_int(o, "rchar", 0);
	io->wchar = (uint64_t) json_int(o, "wchar", 0);
	io->syscr = (uint64_t) json_int(o, "syscr", 0);
	io->syscw = (uint64_t) json_int(o, "syscw", 0);
	io->read_bytes = (uint64_t) json_int(o, "read_bytes", 0);
	io->write_bytes = (uint64_t) json_int(o, "write_bytes", 0);
}

static bool
argv_from_json(const json_t *arr, struct snapshot_process *p)
{
	size_t n = json_array_size(arr), bytes = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(arr, i));
		bytes += (s ? strlen(s) : 0) + 1;
	}
	/* one allocation, as procfs_read_cmdline makes it */
	size_t head = (n + 1) * sizeof(char *);
	char **argv = malloc(head + bytes + 1);
	if (!argv)
		return false;
	char *w = (char *) argv + head;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(arr, i));
		size_t len = s ? strlen(s) : 0;
		memcpy(w, s ? s : "", len + 1);
		argv[i] = w;
		w += len + 1;
	}
	argv[n] = NULL;
	p->argv = argv;
	p->argc = n;
	return true;
}

/* Gaps that name no `what` are not gaps: skipped. */
static bool
gaps_from_json(const json_t *arr, struct snapshot_process *p)
{
	size_t n = json_array_size(arr);
	if (n == 0)
		return true;
	p->gaps = calloc(n, sizeof(*p->gaps));
	if (!p->gaps)
		return false;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const json_t *go = json_array_get(arr, i);
		if (!json_str(go, "what", NULL))
			continue;
		struct snapshot_gap *g = &p->gaps[p->n_gaps++];
		g->what = json_strdup(go, "what", &ok);
		int64_t err = json_int(go, "errno", 0);
		g->err = err > 0 && err < 4096 ? (int) err : 0;
		g->cause = json_strdup(go, "cause", &ok);
		g->tid = (pid_t) json_int(go, "tid", 0);
		g->tracer = (pid_t) json_int(go, "tracer", 0);
		g->detail = json_strdup(go, "detail", &ok);
	}
	return ok;
}

static bool
process_from_json(const json_t *o, struct snapshot_process *p)
{
	bool ok = true;
	p->pid = (pid_t) json_int(o, "pid", 0);
	p->ppid = (pid_t) json_int(o, "ppid", 0);
	p->pgid = (pid_t) json_int(o, "pgid", 0);
	p->sid = (pid_t) json_int(o, "sid", 0);
	p->tty_nr = (int) json_int(o, "tty_nr", 0);
	p->uid = (uid_t) json_int(o, "uid", 0);
	p->euid = (uid_t) json_int(o, "euid", 0);
	p->gid = (gid_t) json_int(o, "gid", 0);
	p->egid = (gid_t) json_int(o, "egid", 0);
	p->comm = json_strdup(o, "comm", &ok);
	if (!argv_from_json(json_object_get(o, "argv"), p))
		return false;
	p->exe = json_strdup(o, "exe", &ok);
	p->state = json_char(o, "state", '\0');
	p->zombie = json_bool(o, "zombie", 0);
	p->stopped = json_bool(o, "stopped", 0);
	p->is_traced = json_bool(o, "is_traced", 0);
	p->tracer_pid = (pid_t) json_int(o, "tracer_pid", 0);
	p->orphan_hint = json_bool(o, "orphan_hint", 0);
	const json_t *via = json_object_get(o, "found_via");
	for (size_t i = 0; i < json_array_size(via); i++) {
		int k = name_index(via_names, ARRAY_SIZE(via_names),
				   json_string_value(json_array_get(via, i)));
		if (k >= 0)
			p->found_via |= 1u << k;
	}
	p->starttime = (uint64_t) json_int(o, "starttime", 0);
	p->utime = (uint64_t) json_int(o, "utime", 0);
	p->stime = (uint64_t) json_int(o, "stime", 0);
	p->num_threads = json_int(o, "num_threads", 0);
	p->shd_pending = json_hex(o, "shd_pending", 0);
	p->sig_ignored = json_hex(o, "sig_ignored", 0);
	p->sig_caught = json_hex(o, "sig_caught", 0);
	p->sigq_queued = (uint64_t) json_int(o, "sigq_queued", 0);
	p->sigq_limit = (uint64_t) json_int(o, "sigq_limit", 0);
	const json_t *io = json_object_get(o, "io");
	for (size_t i = 0; i < 2; i++)
		io_from_json(json_array_get(io, i), &p->has_io[i], &p->io[i]);

	const json_t *threads = json_object_get(o, "threads");
	const json_t *extra = json_object_get(o, "unmatched_stacks");
	size_t nt = json_array_size(threads), n_stacks = json_array_size(extra);
	for (size_t i = 0; i < nt; i++)
		if (json_is_object(json_object_get(json_array_get(threads, i), "stack")))
			n_stacks++;
	if (nt) {
		p->threads = calloc(nt, sizeof(*p->threads));
		if (!p->threads)
			return false;
		p->n_threads = nt;
	}
	if (n_stacks) {
		p->stacks = calloc(n_stacks, sizeof(*p->stacks));
		if (!p->stacks)
			return false;
	}
	for (size_t i = 0; i < nt; i++) {
		const json_t *to = json_array_get(threads, i);
		if (!thread_from_json(to, &p->threads[i]))
			ok = false;
		const json_t *so = json_object_get(to, "stack");
		if (json_is_object(so)) {
			struct thread_stack *s = &p->stacks[p->n_stacks++];
			if (!stack_from_json(so, s))
				ok = false;
			p->threads[i].stack = s;
		}
	}
	for (size_t i = 0; i < json_array_size(extra); i++)
		if (!stack_from_json(json_array_get(extra, i), &p->stacks[p->n_stacks++]))
			ok = false;
	p->stacks_error = json_strdup(o, "stacks_error", &ok);

	const json_t *fds = json_object_get(o, "fds");
	size_t nf = json_array_size(fds);
	if (nf) {
		p->fds = calloc(nf, sizeof(*p->fds));
		if (!p->fds)
			return false;
		p->n_fds = nf;
		for (size_t i = 0; i < nf; i++)
			if (!fd_from_json(json_array_get(fds, i), &p->fds[i]))
				ok = false;
	}
	p->partial = json_bool(o, "partial", 0);
	p->partial_reason = json_strdup(o, "partial_reason", &ok);
	if (!gaps_from_json(json_object_get(o, "gaps"), p))
		ok = false;
	return ok;
}

int
snapshot_from_json(const json_t *doc, struct snapshot **ret)
{
	if (!json_is_object(doc) || !json_is_array(json_object_get(doc, "processes")) ||
	    !json_is_integer(json_object_get(doc, "schema_version")))
		return -EINVAL;
	struct snapshot *snap = calloc(1, sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	bool ok = true;
	snap->schema_version = (int) json_int(doc, "schema_version", 0);
	snap->started_ns = (uint64_t) json_int(doc, "started_ns", 0);
	snap->finished_ns = (uint64_t) json_int(doc, "finished_ns", 0);
	snap->duration_ns = (uint64_t) json_int(doc, "duration_ns", 0);
	snap->sample_interval_ns = (uint64_t) json_int(doc, "sample_interval_ns", 0);
	snap->clock_ticks = (long) json_int(doc, "clock_ticks", 100);
	snap->taken_by = (pid_t) json_int(doc, "taken_by", 0);
	snap->kernel = json_strdup(doc, "kernel", &ok);
	const json_t *roots = json_object_get(doc, "roots");
	size_t nr = json_array_size(roots);
	if (nr) {
		snap->roots = calloc(nr, sizeof(*snap->roots));
		if (!snap->roots)
			ok = false;
		else
			for (size_t i = 0; i < nr; i++)
				snap->roots[snap->n_roots++] =
				    (pid_t) json_integer_value(json_array_get(roots, i));
	}
	snap->subreaper = (pid_t) json_int(doc, "subreaper", 0);
	snap->pgid = (pid_t) json_int(doc, "pgid", 0);
	snap->sid = (pid_t) json_int(doc, "sid", 0);
	snap->truncated = json_bool(doc, "truncated", 0);
	snap->sockdiag_error = json_strdup(doc, "sockdiag_error", &ok);
	const json_t *procs = json_object_get(doc, "processes");
	size_t np = json_array_size(procs);
	if (ok && np) {
		snap->processes = calloc(np, sizeof(*snap->processes));
		if (!snap->processes) {
			ok = false;
		} else {
			snap->n_processes = np;
			for (size_t i = 0; i < np && ok; i++) {
				const json_t *po = json_array_get(procs, i);
				if (!json_is_object(po)) {
					snapshot_free(snap);
					return -EINVAL;
				}
				ok = process_from_json(po, &snap->processes[i]);
			}
		}
	}
	if (!ok) {
		snapshot_free(snap);
		return -ENOMEM;
	}
	*ret = snap;
	return 0;
}

/* ---- gaps, for readers of snapshot.json ---- */

enum snapshot_gap_kind
snapshot_gap_kind(const json_t *gap)
{
	int64_t err = json_int(gap, "errno", 0);
	return snapshot_gap_classify(err > 0 && err < 4096 ? (int) err : 0, json_str(gap, "cause", NULL));
}

void
snapshot_process_gap_summary(const json_t *process, struct snapshot_gap_summary *ret)
{
	struct snapshot_gap_summary s = { 0 };
	size_t i;
	const json_t *gap;
	json_array_foreach(json_object_get(process, "gaps"), i, gap) {
		if (!json_is_object(gap))
			continue;
		s.n++;
		s.by_kind[snapshot_gap_kind(gap)]++;
		if (strcmp(json_str(gap, "what", ""), "stacks") == 0)
			s.stacks = true;
	}
	*ret = s;
}
