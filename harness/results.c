#include "harness/results.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "reports/result.h"
#include "reports/verdict_class.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

static json_t *
rel(uint64_t ts, uint64_t start)
{
	return ts >= start ? json_u64(ts - start) : json_integer(0);
}


struct actor_rec {
	json_t *obj;
	const struct actor_spec *spec;
	uint64_t spawn, fork, ready, cancel, exit, reap, teardown;
	uint64_t cancel_sent, ack, sigterm, sigkill;
	bool has_ladder;
};

static void
set_ns(json_t *obj, const char *key, uint64_t ts, uint64_t start)
{
	json_object_set_new(obj, key, ts ? rel(ts, start) : json_null());
}

static struct actor_rec *
rec_for(struct actor_rec *recs, size_t n, json_int_t id)
{
	return id >= 0 && (size_t) id < n ? &recs[id] : NULL;
}

/* slow-teardown: measured phases against the scenario's budget. */
static json_t *
teardown_section(const struct scenario *sc, struct actor_rec *recs, size_t n, uint64_t start,
		 json_t *verdicts)
{
	uint64_t t0 = 0, t1 = 0;
	for (size_t i = 0; i < n; i++)
		if (recs[i].teardown && (!t0 || recs[i].teardown < t0))
			t0 = recs[i].teardown;
	if (!t0)
		return json_null();
	t1 = recs[0].exit ? recs[0].exit : recs[0].reap;
	if (!t1 || t1 < t0)
		return json_null();
	json_t *td = json_object();
	json_object_set_new(td, "started_ns", rel(t0, start));
	json_object_set_new(td, "duration_ns", json_u64(t1 - t0));
	json_object_set_new(td, "budget_ns", sc->budget_ns ? json_u64(sc->budget_ns) : json_null());
	bool over = sc->budget_ns && t1 - t0 > sc->budget_ns;
	json_object_set_new(td, "over_budget", json_boolean(over));
	json_t *phases = json_array();
	int max_depth = 0;
	for (size_t i = 0; i < n; i++)
		max_depth = MAX(max_depth, recs[i].spec->depth);
	uint64_t level_start[SCENARIO_MAX_DEPTH + 2] = { 0 }, level_end[SCENARIO_MAX_DEPTH + 2] = { 0 };
	const char *worst = NULL;
	uint64_t worst_total = 0;
	for (size_t i = 0; i < n; i++) {
		struct actor_rec *r = &recs[i];
		if (!r->cancel_sent && !r->sigterm)
			continue;
		uint64_t s = r->cancel_sent ? r->cancel_sent : r->sigterm;
		uint64_t end = r->reap ? r->reap : t1;
		json_t *p = json_object();
		json_object_set_new(p, "actor", json_string(r->spec->name));
		json_object_set_new(p, "depth", json_integer(r->spec->depth));
		uint64_t ack_or_term = r->ack ? r->ack : r->sigterm ? r->sigterm : end;
		json_object_set_new(p, "cancel_wait_ns",
				    r->cancel_sent ? json_u64(ack_or_term - r->cancel_sent) : json_null());
		json_object_set_new(p, "sigterm_wait_ns",
				    r->sigterm ? json_u64((r->sigkill ? r->sigkill : end) - r->sigterm) : json_null());
		json_object_set_new(p, "sigkill_to_reap_ns", r->sigkill ? json_u64(end - r->sigkill) : json_null());
		json_object_set_new(p, "total_ns", json_u64(end - s));
		const char *by = r->sigkill ? "SIGKILL" : r->sigterm ? "SIGTERM" : r->ack ? "cancel_ack" : "exit";
		json_object_set_new(p, "ended_by", json_string(by));
		json_array_append_new(phases, p);
		int d = r->spec->depth;
		if (!level_start[d] || s < level_start[d])
			level_start[d] = s;
		level_end[d] = MAX(level_end[d], end);
		if (end - s > worst_total) {
			worst_total = end - s;
			worst = r->spec->name;
		}
	}
	json_t *levels = json_array();
	for (int d = 0; d <= max_depth; d++)
		if (level_start[d])
			json_array_append_new(levels, json_pack("{s:i,s:o}", "depth", d, "duration_ns",
								json_u64(level_end[d] - level_start[d])));
	json_object_set_new(td, "levels", levels);
	json_object_set_new(td, "phases", phases);
	if (over && verdicts) {
		struct strbuf sb = STRBUF_INIT;
		char a[32], b[32];
		(void) strbuf_printf(&sb, "Teardown took %s against a budget of %s.\n",
				     duration_format(t1 - t0, a, sizeof(a)), duration_format(sc->budget_ns, b, sizeof(b)));
		(void) strbuf_printf(&sb, "  cancel_ack=%s hard_kill=%s\n",
				     duration_format(sc->timeouts.cancel_ack_ns, a, sizeof(a)),
				     duration_format(sc->timeouts.hard_kill_ns, b, sizeof(b)));
		size_t i;
		json_t *p;
		json_array_foreach(phases, i, p) {
			char c1[32] = "-", c2[32] = "-", c3[32] = "-", c4[32];
			if (json_is_integer(json_object_get(p, "cancel_wait_ns")))
				(void) duration_format((uint64_t) json_int(p, "cancel_wait_ns", 0), c1, sizeof(c1));
			if (json_is_integer(json_object_get(p, "sigterm_wait_ns")))
				(void) duration_format((uint64_t) json_int(p, "sigterm_wait_ns", 0), c2, sizeof(c2));
			if (json_is_integer(json_object_get(p, "sigkill_to_reap_ns")))
				(void) duration_format((uint64_t) json_int(p, "sigkill_to_reap_ns", 0), c3, sizeof(c3));
			(void) strbuf_printf(&sb, "  depth %lld %-16s cancel wait %-8s SIGTERM wait %-8s SIGKILL->reap %-8s total %-8s ended by %s\n",
					     (long long) json_int(p, "depth", 0), json_str(p, "actor", "?"), c1, c2, c3,
					     duration_format((uint64_t) json_int(p, "total_ns", 0), c4, sizeof(c4)),
					     json_str(p, "ended_by", "?"));
		}
		json_t *lv;
		json_array_foreach(levels, i, lv)
			(void) strbuf_printf(&sb, "  level %lld: %s\n", (long long) json_int(lv, "depth", 0),
					     duration_format((uint64_t) json_int(lv, "duration_ns", 0), a, sizeof(a)));
		if (worst)
			(void) strbuf_printf(&sb, "Most time went to %s (%s).\n", worst,
					     duration_format(worst_total, a, sizeof(a)));
		const struct verdict_class_info *info = verdict_class_lookup("slow-teardown");
		(void) strbuf_printf(&sb, "Remedy: %s.", info->remedy);
		char summary[256];
		(void) snprintf(summary, sizeof(summary), "teardown took %s, budget %s; most time went to %s",
				duration_format(t1 - t0, a, sizeof(a)), duration_format(sc->budget_ns, b, sizeof(b)),
				worst ? worst : "?");
		json_t *v = json_object();
		json_object_set_new(v, "class", json_string("slow-teardown"));
		json_object_set_new(v, "summary", json_string(summary));
		json_object_set_new(v, "pids", json_array());
		json_object_set_new(v, "evidence", json_pack("{s:o,s:o}", "duration_ns", json_u64(t1 - t0),
							       "budget_ns", json_u64(sc->budget_ns)));
		json_object_set_new(v, "remedy", json_string(info->remedy));
		json_object_set_new(v, "text", json_string(sb.data ? sb.data : ""));
		strbuf_free(&sb);
		json_array_append_new(verdicts, v);
	}
	return td;
}

static json_t *
fixes_json(const struct fixes *f)
{
	return json_pack("{s:b,s:s,s:b,s:s,s:b,s:s,s:b,s:b,s:b,s:b}", "fd_scrub", f->fd_scrub, "scrub_mode",
			 scrub_mode_name(f->scrub_mode), "reset_sigmask", f->reset_sigmask, "stdio", stdio_name(f->stdio),
			 "atfork_locks", f->atfork_locks, "wait", wait_name(f->wait), "boot_race", f->boot_race,
			 "cancel_first", f->cancel_first, "peer_wait_bound", f->peer_wait_bound, "tree_kill", f->tree_kill);
}

static json_t *
timeouts_json(const struct timeouts *t)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o}", "cancel_ack_ns", json_u64(t->cancel_ack_ns), "hard_kill_ns",
			 json_u64(t->hard_kill_ns), "peer_wait_ns", json_u64(t->peer_wait_ns), "run_ns",
			 json_u64(t->run_ns), "linger_ns", json_u64(t->linger_ns));
}

static char *
read_tail(const char *path, size_t max)
{
	char *data = NULL;
	size_t len = 0;
	if (!path || read_file_alloc(path, &data, &len) < 0 || len == 0) {
		free(data);
		return NULL;
	}
	if (len > max) {
		memmove(data, data + len - max, max);
		data[max] = '\0';
	}
	return data;
}

/* The scenario's actors, filled from the events of the cell. */
struct cell_actors {
	struct actor_spec **index;
	size_t n;
	struct actor_rec *recs;
	json_t *child_starts[SCENARIO_MAX_ACTORS];
	json_t *scrubs[SCENARIO_MAX_ACTORS];
	json_t *extra;	    /* daemons, the capture host */
	json_t *root_error; /* borrowed from the events */
	char limit_error[256];
};

static void
note_spawn_failed(struct cell_actors *ca, const json_t *ev)
{
	/* fork/posix_spawn refused for lack of processes or memory: the
	 * machine's limit, not the tree's behaviour. */
	const char *en = json_str(ev, "errno", "");
	const char *child_name = json_str(ev, "child", NULL);
	if (ca->limit_error[0])
		return;
	if (strcmp(en, "EAGAIN") == 0 || strcmp(en, "ENOMEM") == 0 || strcmp(en, "EMFILE") == 0 ||
	    strcmp(en, "ENFILE") == 0)
		(void) snprintf(ca->limit_error, sizeof(ca->limit_error), "%s failed with %s in %s%s%s%s: %s",
				json_str(ev, "call", "fork"), en, json_str(ev, "actor", "?"),
				child_name ? " (spawning " : "", child_name ? child_name : "", child_name ? ")" : "",
				strcmp(en, "EAGAIN") == 0   ? "process limit reached (RLIMIT_NPROC or a pids cgroup)"
				: strcmp(en, "ENOMEM") == 0 ? "out of memory"
				: strcmp(en, "EMFILE") == 0 ? "open file limit reached (RLIMIT_NOFILE, ulimit -n)"
							    : "the system's open file table is full");
}

static void
note_event(struct cell_actors *ca, json_t *ev, uint64_t start_ns)
{
	const char *name = json_str(ev, "ev", "");
	uint64_t ts = (uint64_t) json_int(ev, "ts_ns", 0);
	struct actor_rec *self = rec_for(ca->recs, ca->n, json_int(ev, "actor_id", -1));
	struct actor_rec *child = rec_for(ca->recs, ca->n, json_int(ev, "child_id", -1));
	if (strcmp(name, "spawn") == 0 && child && !child->spawn)
		child->spawn = ts;
	else if (strcmp(name, "spawn_failed") == 0 || strcmp(name, "resource_limit") == 0)
		note_spawn_failed(ca, ev);
	else if (strcmp(name, "fork") == 0 && child) {
		child->fork = ts;
		json_t *threads = json_object_get(ev, "threads");
		json_object_set_new(child->obj, "threads_at_fork", json_integer((json_int_t) json_array_size(threads)));
		json_object_set_new(child->obj, "parent_threads", json_incref(threads));
		json_object_set_new(child->obj, "forking_thread_is_main",
				    json_boolean(json_bool(ev, "forking_thread_is_main", 0)));
	} else if (strcmp(name, "child_start") == 0 && self) {
		size_t id = (size_t) json_int(ev, "actor_id", 0);
		ca->child_starts[id] = ev;
		json_object_set_new(self->obj, "pid", json_integer(json_int(ev, "pid", 0)));
		json_object_set_new(self->obj, "ppid", json_integer(json_int(ev, "ppid", 0)));
		json_object_set(self->obj, "stdio", json_object_get(ev, "stdio"));
		json_object_set_new(self->obj, "sigmask_blocked", json_string(json_str(ev, "sig_blocked", "")));
		json_object_set_new(self->obj, "sigmask_inherited",
				    json_string(json_str(ev, "sig_blocked_inherited", json_str(ev, "sig_blocked", ""))));
		json_object_set_new(self->obj, "threads_at_start", json_integer(json_int(ev, "threads", 0)));
		json_object_set_new(self->obj, "ns_since_fork", json_integer(json_int(ev, "ns_since_fork", 0)));
		json_object_set_new(self->obj, "exec", json_boolean(json_bool(ev, "exec", 0)));
	} else if (strcmp(name, "fd_scrub") == 0 && self)
		ca->scrubs[json_int(ev, "actor_id", 0)] = ev;
	else if (strcmp(name, "ready") == 0 && child) {
		if (!child->ready)
			child->ready = ts;
		if (json_int(ev, "child_pid", 0) > 0 && json_is_null(json_object_get(child->obj, "pid")))
			json_object_set_new(child->obj, "pid", json_integer(json_int(ev, "child_pid", 0)));
	} else if (strcmp(name, "cancel_sent") == 0 && child) {
		if (!child->cancel)
			child->cancel = ts;
		child->cancel_sent = ts;
		child->has_ladder = true;
	} else if (strcmp(name, "cancel_ack") == 0 && child)
		child->ack = ts;
	else if (strcmp(name, "signal_sent") == 0 && child) {
		const char *sig = json_str(ev, "signal", "");
		child->has_ladder = true;
		if (strcmp(sig, "SIGTERM") == 0 && !child->sigterm)
			child->sigterm = ts;
		else if (strcmp(sig, "SIGKILL") == 0 && !child->sigkill)
			child->sigkill = ts;
		if (!child->cancel)
			child->cancel = ts;
	} else if (strcmp(name, "reaped") == 0 && child) {
		child->reap = ts;
		json_object_set_new(child->obj, "exit_status",
				    result_exit_status((int) json_int(ev, "code", -1), json_str(ev, "signal", NULL)));
		if (json_int(ev, "child_pid", 0) > 0 && json_is_null(json_object_get(child->obj, "pid")))
			json_object_set_new(child->obj, "pid", json_integer(json_int(ev, "child_pid", 0)));
	} else if (strcmp(name, "exit") == 0 && self) {
		self->exit = ts;
		json_t *err = json_object_get(ev, "error");
		if (err)
			json_object_set(self->obj, "error", err);
		json_object_set_new(self->obj, "exit_reason", json_string(json_str(ev, "reason", "")));
		if (self == &ca->recs[0] && err)
			ca->root_error = err;
	} else if (strcmp(name, "teardown") == 0 && self && !self->teardown)
		self->teardown = ts;
	else if (strcmp(name, "daemon_start") == 0)
		json_array_append_new(ca->extra, json_pack("{s:s,s:n,s:i,s:n,s:n,s:s,s:o,s:s}", "name", "daemon", "id",
							   "pid", (int) json_int(ev, "pid", 0), "ppid", "parent", "kind",
							   "daemon", "spawn_ns", rel(ts, start_ns), "started_by",
							   json_str(ev, "started_by", "?")));
	else if (strcmp(name, "capture_start") == 0)
		json_array_append_new(ca->extra, json_pack("{s:s,s:n,s:i,s:n,s:n,s:s,s:o,s:s}", "name", "capture", "id",
							   "pid", (int) json_int(ev, "pid", 0), "ppid", "parent", "kind",
							   "capture", "spawn_ns", rel(ts, start_ns), "capture",
							   json_str(ev, "capture", "?")));
}

static void
cell_actors_init(struct cell_actors *ca, struct scenario *sc)
{
	memset(ca, 0, sizeof(*ca));
	(void) scenario_index(sc, &ca->index, &ca->n);
	ca->recs = calloc(ca->n ? ca->n : 1, sizeof(*ca->recs));
	ca->extra = json_array();
	for (size_t i = 0; i < ca->n; i++) {
		struct actor_spec *spec = ca->index[i];
		ca->recs[i].spec = spec;
		ca->recs[i].obj = json_pack("{s:s,s:i,s:n,s:n,s:o,s:i,s:s}", "name", spec->name, "id", spec->id, "pid",
					    "ppid", "parent",
					    spec->parent_id >= 0 ? json_integer(spec->parent_id) : json_null(), "depth",
					    spec->depth, "kind", "actor");
	}
}

static json_t *
cell_actors_json(struct cell_actors *ca, uint64_t start_ns)
{
	json_t *actors = json_array();
	for (size_t k = 0; k < ca->n; k++) {
		struct actor_rec *r = &ca->recs[k];
		set_ns(r->obj, "spawn_ns", r->spawn, start_ns);
		set_ns(r->obj, "fork_ns", r->fork, start_ns);
		set_ns(r->obj, "ready_ns", r->ready, start_ns);
		set_ns(r->obj, "cancel_ns", r->cancel, start_ns);
		set_ns(r->obj, "exit_ns", r->exit, start_ns);
		set_ns(r->obj, "reap_ns", r->reap, start_ns);
		if (!json_object_get(r->obj, "exit_status"))
			json_object_set_new(r->obj, "exit_status", json_null());
		if (r->has_ladder) {
			json_t *l = json_object();
			set_ns(l, "cancel_sent_ns", r->cancel_sent, start_ns);
			set_ns(l, "cancel_ack_ns", r->ack, start_ns);
			set_ns(l, "sigterm_ns", r->sigterm, start_ns);
			set_ns(l, "sigkill_ns", r->sigkill, start_ns);
			set_ns(l, "reaped_ns", r->reap, start_ns);
			json_object_set_new(r->obj, "ladder", l);
		} else
			json_object_set_new(r->obj, "ladder", json_null());
		if (ca->child_starts[k])
			result_describe_fds(r->obj, json_object_get(ca->child_starts[k], "fds"),
					    ca->scrubs[k] ? json_object_get(ca->scrubs[k], "closed") : NULL);
		if (!json_object_get(r->obj, "threads_at_fork"))
			json_object_set_new(r->obj, "threads_at_fork", json_null());
		if (!json_object_get(r->obj, "error"))
			json_object_set_new(r->obj, "error", json_null());
		json_array_append(actors, r->obj);
	}
	json_array_extend(actors, ca->extra);
	return actors;
}

static void
cell_actors_free(struct cell_actors *ca)
{
	for (size_t k = 0; k < ca->n; k++)
		json_decref(ca->recs[k].obj);
	free(ca->recs);
	json_decref(ca->extra);
	free(ca->index);
}

/* The scenario's expectation against what happened. */
static json_t *
expectation_mismatches(const struct expectation *x, const char *outcome, const json_t *verdicts, size_t leaked,
		       const char *infra_error, size_t bad, const struct events_problem *first_bad)
{
	json_t *mismatches = json_array();
	char msg[512];
	size_t i;
	json_t *v;
	if (infra_error) {
		(void) snprintf(msg, sizeof(msg), "could not run: %s", infra_error);
		json_array_append_new(mismatches, json_string(msg));
	}
	if (x->has_outcome && strcmp(outcome_name(x->outcome), outcome) != 0) {
		(void) snprintf(msg, sizeof(msg), "expected outcome %s, got %s", outcome_name(x->outcome), outcome);
		json_array_append_new(mismatches, json_string(msg));
	}
	if (x->verdict) {
		bool found = false;
		struct strbuf got = STRBUF_INIT;
		json_array_foreach(verdicts, i, v) {
			const char *cls = json_str(v, "class", "");
			if (strcmp(cls, x->verdict) == 0)
				found = true;
			(void) strbuf_printf(&got, "%s%s", got.len ? ", " : "", cls);
		}
		if (!found) {
			(void) snprintf(msg, sizeof(msg), "expected verdict %s, found %s", x->verdict,
					got.len ? got.data : "none");
			json_array_append_new(mismatches, json_string(msg));
		}
		strbuf_free(&got);
	}
	if (x->no_verdict && json_array_size(verdicts) > 0) {
		(void) snprintf(msg, sizeof(msg), "expected no verdict, found %s",
				json_str(json_array_get(verdicts, 0), "class", "?"));
		json_array_append_new(mismatches, json_string(msg));
	}
	if (x->has_leaked && leaked != x->leaked) {
		(void) snprintf(msg, sizeof(msg), "expected %u leaked, got %zu", x->leaked, leaked);
		json_array_append_new(mismatches, json_string(msg));
	}
	if (bad) {
		(void) snprintf(msg, sizeof(msg), "%zu malformed line%s in events.ndjson (line %zu: %s)", bad,
				bad == 1 ? "" : "s", first_bad->line, first_bad->reason);
		json_array_append_new(mismatches, json_string(msg));
	}
	return mismatches;
}

static void
set_scenario_fields(json_t *cell, const struct scenario *sc, unsigned repeat)
{
	const struct expectation *x = &sc->expect;
	json_object_set_new(cell, "cell", sc->cell ? json_string(sc->cell) : json_null());
	json_object_set_new(cell, "file", sc->path ? json_string(sc->path) : json_null());
	json_object_set_new(cell, "description", sc->description ? json_string(sc->description) : json_null());
	json_object_set_new(cell, "repeat", json_integer(repeat));
	json_object_set_new(cell, "backend", json_string(backend_name(sc->backend)));
	json_object_set_new(cell, "capture", json_string(capture_name(sc->capture)));
	json_object_set_new(cell, "fixes", fixes_json(&sc->fixes));
	json_object_set_new(cell, "timeouts", timeouts_json(&sc->timeouts));
	json_t *expected = json_object();
	json_object_set_new(expected, "outcome", x->has_outcome ? json_string(outcome_name(x->outcome)) : json_null());
	json_object_set_new(expected, "verdict",
			    x->verdict ? json_string(x->verdict) : x->no_verdict ? json_string("none") : json_null());
	json_object_set_new(expected, "leaked", x->has_leaked ? json_integer(x->leaked) : json_null());
	json_object_set_new(cell, "expected", expected);
}

json_t *
results_build_cell(const struct scenario *csc, const char *events_path, const struct cell_facts *f)
{
	struct scenario *sc = (struct scenario *) csc;
	struct cell_actors ca;
	cell_actors_init(&ca, sc);
	size_t bad = 0, i;
	struct events_problem first_bad = { 0 };
	json_t *events = events_load_checked(events_path, &first_bad, 1, &bad, NULL);
	json_t *ev;
	json_array_foreach(events, i, ev)
		note_event(&ca, ev, f->start_ns);
	json_t *actors = cell_actors_json(&ca, f->start_ns);

	json_t *verdicts = f->verdicts ? json_deep_copy(f->verdicts) : json_array();
	json_t *teardown = teardown_section(sc, ca.recs, ca.n, f->start_ns, verdicts);

	const char *outcome;
	if (f->hang)
		outcome = "hang";
	else if (f->root_ended && WIFEXITED(f->root_wstatus) && WEXITSTATUS(f->root_wstatus) == 0)
		outcome = "ok";
	else
		outcome = "error";
	const char *infra_error = f->infra_error ? f->infra_error : ca.limit_error[0] ? ca.limit_error : NULL;
	if (infra_error)
		outcome = "error";

	/* id and name first: result.json is read by people too. */
	json_t *cell = json_pack("{s:n,s:n}", "id", "name");
	struct strbuf id = STRBUF_INIT;
	(void) strbuf_printf(&id, "%s", sc->name);
	if (sc->cell)
		(void) strbuf_printf(&id, "[%s]", sc->cell);
	if (f->repeat)
		(void) strbuf_printf(&id, "#%u", f->repeat);
	set_scenario_fields(cell, sc, f->repeat);
	struct cell_facts_common common = {
		.id = id.data, .name = sc->name, .outcome = outcome, .ended = f->root_ended,
		.wstatus = f->root_wstatus, .infra_error = infra_error,
		.mismatches = expectation_mismatches(&sc->expect, outcome, verdicts, json_array_size(f->leftovers),
						     infra_error, bad, &first_bad),
		.verdicts = verdicts, .leftovers = f->leftovers,
		.duration_ns = f->end_ns > f->start_ns ? f->end_ns - f->start_ns : 0,
		.events_file = f->events_file, .snapshot_file = f->snapshot_file,
	};
	result_cell_common(cell, &common);
	strbuf_free(&id);
	json_t *errors = json_array();
	if (ca.root_error)
		json_array_append(errors, ca.root_error);
	json_object_set_new(cell, "errors", errors);
	json_object_set_new(cell, "teardown", teardown);
	json_object_set_new(cell, "actors", actors);
	char *tail = read_tail(f->output_file, 4096);
	json_object_set_new(cell, "output_tail", tail ? json_string_lossy(tail, strlen(tail)) : json_null());
	free(tail);
	json_decref(verdicts);
	cell_actors_free(&ca);
	json_decref(events);
	return cell;
}
