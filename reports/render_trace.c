/* Chrome Trace Event JSON for the Perfetto UI (and chrome://tracing), as in
 * formats-and-conventions.md §3:
 *  - every actor of every cell is a process track with a synthetic pid, unique
 *    in the file (real pids are reused across cells); the real pid is in args;
 *  - cells are laid out one after another on the time axis, each with a track
 *    of its own carrying a `cell` slice and its verdicts;
 *  - X slices only, each with its dur (Perfetto drops an X without one):
 *    `lifetime` spawn->reap, nested `starting` spawn->ready (actors with a
 *    handshake only: watch processes run from spawn), `running`
 *    ready->exit, `zombie` exit->reap; a process never reaped is closed at the
 *    cell end with args.unfinished = true;
 *  - a `fork` slice on the parent, bound by a v2 flow (bind_id, flow_out ->
 *    flow_in) to the child's `lifetime`, draws the spawn arrow;
 *  - thread-scoped instants for cancel/SIGTERM/SIGKILL sent and exit, a
 *    global instant `hang detected` for hang cells;
 *  - ts in microseconds (fractions allowed), from the ns in result.json.
 * One event a line, so the file diffs and greps well. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports/render_util.h"
#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

/* Idle time drawn between two cells. */
#define CELL_GAP_NS (10 * NSEC_PER_MSEC)

struct trace {
	struct render_writer w;
	size_t events; /* written so far: the separator goes before all but the first */
	int next_pid;
	int next_flow;
};

/* Write one event on a line of its own and drop it. */
static void
emit(struct trace *t, json_t *ev)
{
	if (ev && t->events++ > 0)
		render_put(&t->w, ",\n");
	render_put_json_new(&t->w, ev, JSON_REAL_PRECISION(15));
}

static json_t *
us(uint64_t ns)
{
	return json_real((double) ns / 1000.0);
}

/* Strings in the trace are cleaned (no controls, valid UTF-8). */
static json_t *
clean_string(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	if (render_clean(&sb, s ? s : "", s ? strlen(s) : 0, CLEAN_ONE_LINE) < 0) {
		strbuf_free(&sb);
		return NULL;
	}
	json_t *j = json_stringn(sb.data ? sb.data : "", sb.len);
	strbuf_free(&sb);
	return j;
}

static json_t *
event(const char *name, const char *ph, uint64_t ts_ns, int pid)
{
	json_t *ev = json_object();
	if (!ev)
		return NULL;
	if (json_object_set_new(ev, "name", clean_string(name)) < 0 ||
	    json_object_set_new(ev, "ph", json_string(ph)) < 0 || json_object_set_new(ev, "ts", us(ts_ns)) < 0 ||
	    json_object_set_new(ev, "pid", json_integer(pid)) < 0 ||
	    json_object_set_new(ev, "tid", json_integer(pid)) < 0) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

static void
set(struct trace *t, json_t *ev, const char *key, json_t *value)
{
	if (!value || (ev && json_object_set_new(ev, key, value) < 0)) {
		render_fail(&t->w, -ENOMEM);
		return;
	}
	if (!ev)
		json_decref(value);
}

static void
metadata(struct trace *t, int pid, const char *process_name, const char *thread_name)
{
	json_t *ev = event("process_name", "M", 0, pid);
	set(t, ev, "args", json_pack("{s:o}", "name", clean_string(process_name)));
	emit(t, ev);
	ev = event("thread_name", "M", 0, pid);
	set(t, ev, "args", json_pack("{s:o}", "name", clean_string(thread_name)));
	emit(t, ev);
	/* chrome://tracing orders processes by this; Perfetto ignores it. */
	ev = event("process_sort_index", "M", 0, pid);
	set(t, ev, "args", json_pack("{s:i}", "sort_index", pid));
	emit(t, ev);
}

static json_t *
slice(const char *name, const char *cat, uint64_t from, uint64_t to, int pid)
{
	json_t *ev = event(name, "X", from, pid);
	if (ev && (json_object_set_new(ev, "dur", us(to > from ? to - from : 0)) < 0 ||
		   json_object_set_new(ev, "cat", json_string(cat)) < 0)) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

static void
instant(struct trace *t, const char *name, uint64_t ts, int pid, const char *scope, json_t *args)
{
	json_t *ev = event(name, "i", ts, pid);
	set(t, ev, "s", json_string(scope));
	set(t, ev, "cat", json_string("forkscope"));
	if (args)
		set(t, ev, "args", args);
	emit(t, ev);
}

/* Where an actor's phases begin and end, relative to the cell, clamped so
 * that they nest: start <= ready <= exit <= end. */
struct phases {
	uint64_t start, ready, exit, end;
	bool has_ready, has_exit, reaped;
	bool handshake; /* false: no starting phase (watch processes, capture, daemons) */
};

static struct phases
actor_phases(const json_t *a, uint64_t cell_end)
{
	struct phases p = { 0 };
	uint64_t v;
	if (json_ns(a, "spawn_ns", &v) || json_ns(a, "fork_ns", &v) || json_ns(a, "ready_ns", &v))
		p.start = v;
	p.reaped = json_ns(a, "reap_ns", &v);
	p.end = p.reaped ? v : cell_end;
	if (p.end < p.start)
		p.end = p.start;
	uint64_t ready = 0, exit_at = p.end;
	p.has_ready = json_ns(a, "ready_ns", &ready);
	p.handshake = render_actor_has_handshake(a);
	if (!p.handshake && !p.has_ready) {
		/* No handshake to wait for: it runs from its spawn. */
		p.has_ready = true;
		ready = p.start;
	}
	p.has_exit = json_ns(a, "exit_ns", &v);
	/* An exit without a ready ends the starting phase at the exit. */
	if (p.has_exit)
		exit_at = MAX(p.start, MIN(v, p.end));
	p.ready = p.has_ready ? MAX(p.start, MIN(ready, exit_at)) : exit_at;
	p.exit = MAX(p.ready, exit_at);
	return p;
}

static json_t *
status_args(const json_t *a)
{
	const json_t *st = json_object_get(a, "exit_status");
	json_t *args = json_object();
	if (!args)
		return NULL;
	if (json_has_int(st, "code"))
		(void) json_object_set_new(args, "status", json_integer(json_int(st, "code", 0)));
	else
		(void) json_object_set_new(args, "status", json_null());
	(void) json_object_set_new(args, "signal", json_str(st, "signal", NULL) ? clean_string(json_str(st, "signal", ""))
									 : json_null());
	(void) json_object_set_new(args, "core", json_boolean(json_bool(st, "core", 0)));
	return args;
}

static uint64_t
hang_time(const json_t *cell, uint64_t end)
{
	uint64_t v;
	if (json_ns(cell, "hang_detected_ns", &v) && v <= end)
		return v;
	if (json_ns(json_object_get(cell, "timeouts"), "run_ns", &v) && v <= end)
		return v;
	if (json_ns(json_object_get(cell, "teardown"), "started_ns", &v) && v <= end)
		return v;
	return end;
}

struct actor_track {
	int pid;
	struct phases ph;
	uint64_t last_fork_end; /* forks on one parent track must not overlap */
};

/* The cell's own track: a `cell` slice over its whole time with the outcome,
 * status and verdict classes. Returns the track's pid. */
static int
cell_track(struct trace *t, const json_t *cell, const char *id, uint64_t offset, uint64_t end, json_t *classes)
{
	int cell_pid = t->next_pid++;
	struct strbuf name = STRBUF_INIT;
	(void) strbuf_printf(&name, "cell %s (%s)", id, json_str(cell, "outcome", "?"));
	metadata(t, cell_pid, name.data, "cell");
	strbuf_free(&name);
	json_t *ev = slice(id, "cell", offset, offset + end, cell_pid);
	set(t, ev, "args",
	    json_pack("{s:o,s:o,s:b,s:I,s:O}", "outcome", clean_string(json_str(cell, "outcome", "?")), "status",
		      clean_string(render_cell_status_word(render_cell_status(cell))), "passed",
		      json_bool(cell, "passed", 0), "leaked", (json_int_t) json_int(cell, "leaked", 0), "verdicts",
		      classes));
	emit(t, ev);
	return cell_pid;
}

static json_t *
pid_or_null(const json_t *a)
{
	return json_has_int(a, "pid") ? json_integer(json_int(a, "pid", 0)) : json_null();
}

/* The args of an actor's `lifetime` slice. */
static json_t *
lifetime_args(const json_t *a, const struct phases *p)
{
	json_t *args = json_object();
	if (!args)
		return NULL;
	(void) json_object_set_new(args, "pid", pid_or_null(a));
	if (json_has_int(a, "ppid"))
		(void) json_object_set_new(args, "ppid", json_integer(json_int(a, "ppid", 0)));
	(void) json_object_set_new(args, "actor", clean_string(json_str(a, "name", "?")));
	if (json_str(a, "kind", NULL))
		(void) json_object_set_new(args, "kind", clean_string(json_str(a, "kind", "")));
	(void) json_object_set_new(args, "depth", json_integer(json_int(a, "depth", 0)));
	char label[64];
	render_actor_end_label(a, label, sizeof(label));
	(void) json_object_set_new(args, "ended", clean_string(label));
	if (!p->reaped)
		(void) json_object_set_new(args, "unfinished", json_true());
	return args;
}

/* The spawn arrow: a `fork` slice on the parent's track, bound by a flow to
 * the child's `lifetime` slice life. */
static void
fork_arrow(struct trace *t, const json_t *a, const struct phases *p, struct actor_track *pt, uint64_t offset,
	   json_t *life)
{
	uint64_t from = p->start, to = p->start, fork_ns;
	if (json_ns(a, "fork_ns", &fork_ns) && fork_ns >= from)
		to = fork_ns;
	/* Keep the fork inside the parent's lifetime, after its previous fork
	 * and within the phase it starts in, so slices on the parent's track
	 * nest strictly. */
	from = MIN(MAX(from, MAX(pt->ph.start, pt->last_fork_end)), pt->ph.end);
	uint64_t bound = from < pt->ph.ready ? pt->ph.ready : from < pt->ph.exit ? pt->ph.exit : pt->ph.end;
	to = MIN(MAX(to, from), bound);
	pt->last_fork_end = to;
	int flow = ++t->next_flow;
	struct strbuf fname = STRBUF_INIT;
	(void) strbuf_printf(&fname, "fork %s", json_str(a, "name", "?"));
	json_t *fork = slice(fname.data, "fork", offset + from, offset + to, pt->pid);
	strbuf_free(&fname);
	set(t, fork, "bind_id", json_integer(flow));
	set(t, fork, "flow_out", json_true());
	set(t, fork, "args",
	    json_pack("{s:o,s:o}", "child", clean_string(json_str(a, "name", "?")), "child_pid", pid_or_null(a)));
	emit(t, fork);
	set(t, life, "bind_id", json_integer(flow));
	set(t, life, "flow_in", json_true());
}

/* The nested phases: starting, running, zombie (open ones marked unfinished). */
static void
phase_slices(struct trace *t, const struct phases *p, uint64_t offset, int pid)
{
	json_t *s;
	if (p->handshake) {
		s = slice("starting", "phase", offset + p->start, offset + p->ready, pid);
		if (!p->has_ready && !p->has_exit)
			set(t, s, "args", json_pack("{s:b}", "unfinished", 1));
		emit(t, s);
	}
	if (p->has_ready) {
		s = slice("running", "phase", offset + p->ready, offset + p->exit, pid);
		if (!p->has_exit)
			set(t, s, "args", json_pack("{s:b}", "unfinished", 1));
		emit(t, s);
	}
	if (p->has_exit) {
		s = slice("zombie", "phase", offset + p->exit, offset + p->end, pid);
		if (!p->reaped)
			set(t, s, "args", json_pack("{s:b}", "unfinished", 1));
		emit(t, s);
	}
}

/* The kill ladder its parent went through, and the exit. */
static void
ladder_instants(struct trace *t, const json_t *a, const struct phases *p, uint64_t offset, int pid)
{
	static const struct {
		const char *key, *name;
	} rungs[] = {
		{ "cancel_sent_ns", "cancel sent" },
		{ "cancel_ack_ns", "cancel ack" },
		{ "sigterm_ns", "SIGTERM sent" },
		{ "sigkill_ns", "SIGKILL sent" },
	};
	const json_t *ladder = json_object_get(a, "ladder");
	uint64_t ts;
	if (json_is_object(ladder)) {
		for (size_t k = 0; k < sizeof(rungs) / sizeof(rungs[0]); k++)
			if (json_ns(ladder, rungs[k].key, &ts))
				instant(t, rungs[k].name, offset + MIN(MAX(ts, p->start), p->end), pid, "t", NULL);
	} else if (json_ns(a, "cancel_ns", &ts))
		instant(t, "cancel sent", offset + MIN(MAX(ts, p->start), p->end), pid, "t", NULL);
	if (p->has_exit)
		instant(t, "exit", offset + p->exit, pid, "t", status_args(a));
}

/* Verdicts on the cell track; the hang as a global marker across all tracks. */
static void
verdict_instants(struct trace *t, const json_t *cell, const char *id, uint64_t offset, uint64_t end, int cell_pid,
		 json_t *classes)
{
	bool hang = strcmp(json_str(cell, "outcome", ""), "hang") == 0;
	uint64_t when = hang ? hang_time(cell, end) : end;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(cell, "verdicts"), i, v) {
		struct strbuf vname = STRBUF_INIT;
		(void) strbuf_printf(&vname, "verdict %s", json_str(v, "class", "?"));
		uint64_t at = when;
		if (strcmp(json_str(v, "class", ""), "slow-teardown") == 0)
			(void) json_ns(json_object_get(cell, "teardown"), "started_ns", &at);
		instant(t, vname.data, offset + MIN(at, end), cell_pid, "t",
			json_pack("{s:o,s:o}", "summary", clean_string(json_str(v, "summary", "")), "remedy",
				  clean_string(json_str(v, "remedy", ""))));
		strbuf_free(&vname);
	}
	if (hang)
		instant(t, "hang detected", offset + when, cell_pid, "g",
			json_pack("{s:o,s:O}", "cell", clean_string(id), "verdicts", classes));
}

static void
cell_events(struct trace *t, const json_t *cell, uint64_t offset, uint64_t end)
{
	const json_t *actors = json_object_get(cell, "actors");
	size_t n = json_array_size(actors), i;
	const char *id = json_str(cell, "id", json_str(cell, "name", "cell"));
	struct actor_track *tracks = calloc(n ? n : 1, sizeof(*tracks));
	json_t *classes = json_array();
	json_t *a, *v;
	if (!tracks || !classes) {
		render_fail(&t->w, -ENOMEM);
		goto out;
	}
	json_array_foreach(json_object_get(cell, "verdicts"), i, v)
		(void) json_array_append_new(classes, clean_string(json_str(v, "class", "?")));
	int cell_pid = cell_track(t, cell, id, offset, end, classes);

	for (i = 0; i < n; i++) {
		a = json_array_get(actors, i);
		tracks[i].pid = t->next_pid++;
		tracks[i].ph = actor_phases(a, end);
		struct strbuf pname = STRBUF_INIT;
		(void) strbuf_printf(&pname, "%s / %s", id, json_str(a, "name", "?"));
		if (json_int(a, "pid", -1) > 0)
			(void) strbuf_printf(&pname, " (pid %lld)", (long long) json_int(a, "pid", 0));
		metadata(t, tracks[i].pid, pname.data, json_str(a, "name", "?"));
		strbuf_free(&pname);
	}

	json_array_foreach(actors, i, a) {
		const struct phases *p = &tracks[i].ph;
		long parent = render_actor_parent_index(actors, i);
		json_t *life = slice("lifetime", "process", offset + p->start, offset + p->end, tracks[i].pid);
		set(t, life, "args", lifetime_args(a, p));
		if (parent >= 0)
			fork_arrow(t, a, p, &tracks[parent], offset, life);
		emit(t, life);
		phase_slices(t, p, offset, tracks[i].pid);
		ladder_instants(t, a, p, offset, tracks[i].pid);
	}
	verdict_instants(t, cell, id, offset, end, cell_pid, classes);
out:
	json_decref(classes);
	free(tracks);
}

int
render_trace_doc(const json_t *doc, const struct render_options *o, struct strbuf *out)
{
	struct trace t = { .w = RENDER_WRITER(out), .next_pid = 1 };
	json_t *cells = render_cells(doc);
	json_t *layout = json_array();
	json_t *other = json_object();
	uint64_t offset = 0;
	size_t i;
	json_t *cell;
	if (!cells || !layout || !other) {
		render_fail(&t.w, -ENOMEM);
		goto out;
	}
	render_put(&t.w, "{\"traceEvents\":[\n");
	json_array_foreach(cells, i, cell) {
		uint64_t end = render_cell_end_ns(cell);
		cell_events(&t, cell, offset, end);
		(void) json_array_append_new(
			layout, json_pack("{s:o,s:o}", "id", clean_string(json_str(cell, "id", json_str(cell, "name", "?"))),
					  "offset_us", us(offset)));
		offset += end + CELL_GAP_NS;
	}
	if (t.events > 0)
		render_put(&t.w, "\n");

	(void) json_object_set_new(other, "generator", json_string("forkscope report --format trace"));
	if (json_has_int(doc, "schema_version"))
		(void) json_object_set_new(other, "schema_version", json_integer(json_int(doc, "schema_version", 0)));
	static const char *const copy[] = { "tool", "command", "started_at", "run_dir" };
	for (size_t k = 0; k < sizeof(copy) / sizeof(copy[0]); k++)
		if (json_str(doc, copy[k], NULL))
			(void) json_object_set_new(other, copy[k], clean_string(json_str(doc, copy[k], "")));
	(void) json_object_set_new(other, "time_base", json_string("cells laid out one after another; "
								    "times inside a cell are relative to its start"));
	(void) json_object_set(other, "cells", layout);

	render_put(&t.w, "],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":");
	render_put_json_new(&t.w, json_incref(other), JSON_REAL_PRECISION(15));
	render_put(&t.w, "}\n");
out:
	json_decref(cells);
	json_decref(layout);
	json_decref(other);
	return t.w.r;
}
