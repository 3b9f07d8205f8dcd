/* The graph builder (reports/graph_build.c), the analysis and the verdicts
 * (reports/verdict.h) on RECORDED snapshots: fixtures/snapshots/<class>/ holds
 * the snapshot.json and events.ndjson of one catalogue cell that hung
 * (`forkscope run --out DIR scenarios/<class>.yaml`, DIR/cells/<cell>/, the
 * run directory replaced by /tmp/forkscope-run) and expected.json with what
 * `run` wrote for it: the class, the pids of the verdict and its chain.
 *
 * What these tests pin (stable behaviour): the graph has one process per
 * snapshot process and the actor names of the events; the facts each class
 * rests on are decoded (a write on a full pipe, a zombie never handshaken, a
 * futex whose owner is elsewhere, ...); the analysis names exactly the
 * recorded class - the one hang verdict of the cell - with every pid of the
 * recorded chain among its pids. The exact pid set of a verdict is compared
 * too (triage --from reproduces what run wrote, issue 12). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/rules.h"
#include "reports/verdict.h"
#include "reports/verdict_class.h"
#include "reports/waitgraph.h"
#include "util/jsonutil.h"

struct recording {
	json_t *snapshot;
	json_t *events;
	json_t *expected;
	struct wf_graph *g;
};

static char *
fixture_path(const char *cls, const char *name)
{
	const char *dir = getenv("SNAPSHOT_FIXTURES");
	cr_assert_not_null(dir, "SNAPSHOT_FIXTURES is not set (meson test sets it)");
	char *path = NULL;
	cr_assert_geq(asprintf(&path, "%s/%s/%s", dir, cls, name), 0);
	return path;
}

/* events.ndjson as the array the runner hands to the analysis: one object a line. */
static json_t *
load_ndjson(const char *path)
{
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f, "open %s", path);
	json_t *events = json_array();
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		json_error_t err;
		json_t *ev = json_loadb(line, (size_t) n, 0, &err);
		cr_assert(json_is_object(ev), "%s: %s", path, err.text);
		json_array_append_new(events, ev);
	}
	free(line);
	fclose(f);
	return events;
}

static struct recording
load(const char *cls)
{
	struct recording rec = { 0 };
	json_error_t err;
	char *p = fixture_path(cls, "snapshot.json");
	rec.snapshot = json_load_file(p, 0, &err);
	cr_assert_not_null(rec.snapshot, "%s: %s", p, err.text);
	free(p);
	p = fixture_path(cls, "expected.json");
	rec.expected = json_load_file(p, 0, &err);
	cr_assert_not_null(rec.expected, "%s: %s", p, err.text);
	free(p);
	p = fixture_path(cls, "events.ndjson");
	rec.events = load_ndjson(p);
	free(p);
	cr_assert_eq(wf_graph_from_snapshot(rec.snapshot, rec.events, &rec.g), 0);
	cr_assert_not_null(rec.g);
	return rec;
}

static void
recording_free(struct recording *rec)
{
	wf_graph_free(rec->g);
	json_decref(rec->snapshot);
	json_decref(rec->events);
	json_decref(rec->expected);
}

static pid_t
expected_chain_pid(const struct recording *rec, size_t i)
{
	const json_t *chain = json_object_get(rec->expected, "chain");
	cr_assert_lt(i, json_array_size(chain));
	return (pid_t) json_integer_value(json_array_get(chain, i));
}

static bool
array_has_int(const json_t *array, json_int_t v)
{
	size_t i;
	json_t *x;
	json_array_foreach(array, i, x)
		if (json_is_integer(x) && json_integer_value(x) == v)
			return true;
	return false;
}

/* The graph mirrors the snapshot: one process each, names from the events. */
static void
check_graph_shape(const struct recording *rec)
{
	const json_t *procs = json_object_get(rec->snapshot, "processes");
	cr_assert_eq(rec->g->n_procs, json_array_size(procs));
	size_t i, named = 0;
	json_t *sp;
	json_array_foreach(procs, i, sp) {
		struct wf_proc *p = wf_find_proc(rec->g, (pid_t) json_int(sp, "pid", 0));
		cr_assert_not_null(p, "pid %lld of the snapshot is not in the graph", (long long) json_int(sp, "pid", 0));
		cr_assert_eq(p->ppid, (pid_t) json_int(sp, "ppid", -1));
		named += p->actor != NULL;
	}
	cr_assert_gt(named, 0, "the events name the actors");
}

/* Analyse with the built-in rules; the one hang verdict is the recorded one. */
static json_t *
check_verdict(struct recording *rec)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(ruleset_load_default(&rs, &err), 0);
	ruleset_sort(&rs);
	wf_analyze(rec->g);
	json_t *verdicts = verdicts_compute(rec->g, &rs);
	ruleset_free(&rs);
	cr_assert(json_is_array(verdicts));

	const char *cls = json_str(rec->expected, "class", "?");
	const json_t *found = NULL;
	size_t i, hangs = 0;
	json_t *v;
	json_array_foreach(verdicts, i, v) {
		const struct verdict_class_info *info = verdict_class_lookup(json_str(v, "class", NULL));
		if (!info || info->is_hang)
			hangs++;
		if (strcmp(json_str(v, "class", ""), cls) == 0)
			found = v;
	}
	char *dump = json_dumps(verdicts, JSON_COMPACT);
	cr_assert_not_null(found, "no %s verdict in %s", cls, dump);
	cr_assert_eq(hangs, 1, "one hang, one verdict: %s", dump);
	cr_assert_eq(verdicts_count_hangs(verdicts), 1);
	char line[64];
	/* The wording is the text report's ("Found 1 hang."); only its sense is pinned. */
	const char *closing = verdicts_closing_line(verdicts, line, sizeof(line));
	cr_assert(strncmp(closing, "Found ", 6) == 0 && strstr(closing, "hang"), "%s", closing);

	const json_t *pids = json_object_get(found, "pids");
	const json_t *want = json_object_get(rec->expected, "chain");
	json_array_foreach(want, i, v)
		cr_assert(array_has_int(pids, json_integer_value(v)), "chain pid %lld not among the pids: %s",
			  (long long) json_integer_value(v), dump);
	want = json_object_get(rec->expected, "pids");
	cr_assert_eq(json_array_size(pids), json_array_size(want), "pids differ from the recorded run: %s", dump);
	json_array_foreach(want, i, v)
		cr_assert(array_has_int(pids, json_integer_value(v)), "recorded pid %lld missing: %s",
			  (long long) json_integer_value(v), dump);
	cr_assert(json_str(found, "summary", NULL) && json_str(found, "remedy", NULL), "%s", dump);
	free(dump);
	json_incref((json_t *) found);
	json_decref(verdicts);
	return (json_t *) found;
}

Test(recorded, pipe_full)
{
	struct recording rec = load("pipe-full");
	check_graph_shape(&rec);
	wf_analyze(rec.g);
	/* Some chain process writes into a full pipe: queued at (or within a
	 * page of) the capacity. */
	bool writer = false;
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(rec.expected, "chain"), i, v) {
		struct wf_proc *p = wf_find_proc(rec.g, (pid_t) json_integer_value(v));
		cr_assert_not_null(p);
		for (size_t k = 0; k < p->n_threads; k++) {
			struct wf_thread *t = &p->threads[k];
			struct wf_fd *f = t->wait == WF_WAIT_WRITE ? wf_find_fd(p, t->wait_fd) : NULL;
			if (f && f->kind == WF_FD_PIPE && f->capacity > 0 && f->queued + 4096 > f->capacity)
				writer = true;
		}
	}
	cr_assert(writer, "no writer on a full pipe in the chain");
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

Test(recorded, boot_death)
{
	struct recording rec = load("boot-death");
	check_graph_shape(&rec);
	struct wf_proc *zombie = NULL;
	for (size_t i = 0; i < rec.g->n_procs; i++)
		if (rec.g->procs[i].zombie)
			zombie = &rec.g->procs[i];
	cr_assert_not_null(zombie, "the child that died before its handshake");
	cr_assert(zombie->spawned_not_ready, "the events say its parent never saw the handshake");
	json_t *v = check_verdict(&rec);
	cr_assert(array_has_int(json_object_get(v, "pids"), zombie->pid));
	cr_assert(array_has_int(json_object_get(v, "pids"), zombie->ppid));
	json_decref(v);
	recording_free(&rec);
}

Test(recorded, lost_wakeup_futex)
{
	struct recording rec = load("lost-wakeup-futex");
	check_graph_shape(&rec);
	wf_analyze(rec.g);
	struct wf_proc *child = wf_find_proc(rec.g, expected_chain_pid(&rec, 0));
	cr_assert_not_null(child);
	bool orphan_lock = false;
	for (size_t k = 0; k < child->n_threads; k++) {
		struct wf_thread *t = &child->threads[k];
		if (t->wait == WF_WAIT_FUTEX && t->futex_owner && !t->futex_owner_in_process && t->stuck)
			orphan_lock = true;
	}
	cr_assert(orphan_lock, "a futex whose owner thread is not in the child");
	cr_assert(child->stuck);
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

Test(recorded, uncancellable_wait)
{
	struct recording rec = load("uncancellable-wait");
	check_graph_shape(&rec);
	wf_analyze(rec.g);
	struct wf_proc *p = wf_find_proc(rec.g, expected_chain_pid(&rec, 0));
	cr_assert_not_null(p);
	bool helper_wait = false, other_thread = false;
	for (size_t k = 0; k < p->n_threads; k++) {
		if (p->threads[k].wait == WF_WAIT_CHILD && p->threads[k].blocking && p->threads[k].tid != p->pid)
			helper_wait = true;
		if (p->threads[k].tid == p->pid)
			other_thread = true;
	}
	cr_assert(helper_wait && other_thread, "a blocking wait in a helper thread beside the main thread");
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

Test(recorded, signal_blocked)
{
	struct recording rec = load("signal-blocked");
	check_graph_shape(&rec);
	struct wf_proc *p = wf_find_proc(rec.g, expected_chain_pid(&rec, 0));
	cr_assert_not_null(p);
	uint64_t sigint = 1ULL << (SIGINT - 1);
	cr_assert(p->sig_pending & sigint, "SIGINT pending");
	cr_assert(p->sig_blocked & sigint, "SIGINT blocked in every thread");
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

Test(recorded, busy_loop)
{
	struct recording rec = load("busy-loop");
	check_graph_shape(&rec);
	struct wf_proc *p = wf_find_proc(rec.g, expected_chain_pid(&rec, 0));
	cr_assert_not_null(p);
	bool spinning = false;
	for (size_t k = 0; k < p->n_threads; k++)
		if (p->threads[k].cpu_delta_ns > 0 && p->threads[k].hot_syscall)
			spinning = true;
	cr_assert(spinning, "CPU time and a hot syscall between the two samples");
	wf_analyze(rec.g);
	cr_assert_not(p->stuck, "a spinning process is live as far as waits go");
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

/* Every process of the chain stuck (a knot, not a process that can act). */
static void
chain_stuck(struct recording *rec)
{
	wf_analyze(rec->g);
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(rec->expected, "chain"), i, v) {
		struct wf_proc *p = wf_find_proc(rec->g, (pid_t) json_integer_value(v));
		cr_assert_not_null(p);
		cr_assert(p->stuck, "chain pid %d is not stuck", (int) p->pid);
	}
}

Test(recorded, eof_never)
{
	struct recording rec = load("eof-never");
	check_graph_shape(&rec);
	chain_stuck(&rec);
	/* The class rests on inherited copies: the events list what each child
	 * held at its start. */
	bool inherited = false;
	for (size_t i = 0; i < rec.g->n_procs; i++)
		inherited |= rec.g->procs[i].inherited_inos_n > 0;
	cr_assert(inherited);
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

Test(recorded, mutual_wait)
{
	struct recording rec = load("mutual-wait");
	check_graph_shape(&rec);
	chain_stuck(&rec);
	cr_assert_geq(json_array_size(json_object_get(rec.expected, "chain")), 2, "a chain of levels");
	json_decref(check_verdict(&rec));
	recording_free(&rec);
}

/* The same recording twice gives the same verdicts, byte for byte (no clock,
 * no environment in the analysis). */
Test(recorded, deterministic)
{
	static const char *const classes[] = { "pipe-full", "mutual-wait", "eof-never" };
	for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
		char *text[2];
		for (int round = 0; round < 2; round++) {
			struct recording rec = load(classes[c]);
			struct ruleset rs = { 0 };
			char *err = NULL;
			cr_assert_eq(ruleset_load_default(&rs, &err), 0);
			ruleset_sort(&rs);
			wf_analyze(rec.g);
			json_t *verdicts = verdicts_compute(rec.g, &rs);
			text[round] = json_dumps(verdicts, JSON_COMPACT);
			json_decref(verdicts);
			ruleset_free(&rs);
			recording_free(&rec);
		}
		cr_assert_str_eq(text[0], text[1], "%s", classes[c]);
		free(text[0]);
		free(text[1]);
	}
}

/* The catalogue's class names are part of the interface (scenarios expect
 * them, CI greps them): each is known, a hang, with a title and a remedy. */
Test(recorded, class_names_are_known_hangs)
{
	static const char *const classes[] = { "boot-death",	"busy-loop",	  "eof-never",	    "lost-wakeup-futex",
					       "mutual-wait",	"pipe-full",	  "signal-blocked", "uncancellable-wait" };
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		const struct verdict_class_info *info = verdict_class_lookup(classes[i]);
		cr_assert_not_null(info, "%s", classes[i]);
		cr_expect(info->is_hang, "%s", classes[i]);
		cr_expect(info->title && *info->title, "%s", classes[i]);
		cr_expect(info->remedy && *info->remedy, "%s", classes[i]);
	}
	/* Not hangs: counted apart. */
	cr_expect_not(verdict_class_lookup("slow-teardown")->is_hang);
	cr_expect_not(verdict_class_lookup("escaped")->is_hang);
}
