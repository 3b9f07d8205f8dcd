/* Scenario loader: valid files, --set, matrix expansion, JSON round trip,
 * the pre-order index, and a corpus of invalid files with their exact message
 * (fixtures/scenarios/invalid/NAME.yaml + NAME.expected), and the walk that
 * finds scenario files (symlink loops, FIFOs, unreadable directories). */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness/runner.h"
#include "harness/scenario.h"
#include "util/fdutil.h"
#include "util/timeutil.h"

static const char *
fixtures(void)
{
	const char *f = getenv("FIXTURES");
	return f && *f ? f : "fixtures";
}

static char *
fixture_path(const char *rel)
{
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/scenarios/%s", fixtures(), rel) >= 0);
	return p;
}

static struct scenario *
load_ok(const char *rel)
{
	char *path = fixture_path(rel), *err = NULL;
	struct scenario *s = NULL;
	int r = scenario_load(path, &s, &err);
	cr_assert_eq(r, 0, "loading %s failed (%d): %s", path, r, err ? err : "(no message)");
	cr_assert_not_null(s);
	cr_assert_str_eq(s->path, path);
	free(path);
	return s;
}

static struct scenario *
load_text(const char *text)
{
	struct scenario *s = NULL;
	char *err = NULL;
	int r = scenario_load_string("inline.yaml", text, strlen(text), &s, &err);
	cr_assert_eq(r, 0, "inline scenario failed: %s", err ? err : "(no message)");
	return s;
}

/* The one message of a failed inline load. */
static char *
load_text_error(const char *text)
{
	struct scenario *s = NULL;
	char *err = NULL;
	int r = scenario_load_string("inline.yaml", text, strlen(text), &s, &err);
	cr_assert_eq(r, -EINVAL, "expected -EINVAL, got %d", r);
	cr_assert_null(s);
	cr_assert_not_null(err);
	return err;
}

/* ---- deep comparison, so a round trip is shown lossless field by field ---- */

static void
assert_str_same(const char *a, const char *b, const char *what)
{
	if (!a || !b)
		cr_assert(a == b, "%s: %s vs %s", what, a ? a : "NULL", b ? b : "NULL");
	else
		cr_assert_str_eq(a, b, "%s differs", what);
}

static void
assert_steps_same(const struct step *a, const struct step *b, size_t n, const char *actor)
{
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(a[i].kind, b[i].kind, "%s step %zu kind", actor, i);
		cr_assert_eq(a[i].ns, b[i].ns, "%s step %zu ns", actor, i);
		cr_assert_eq(a[i].bytes, b[i].bytes, "%s step %zu bytes", actor, i);
		cr_assert_eq(a[i].stream, b[i].stream, "%s step %zu stream", actor, i);
		cr_assert_eq(a[i].value, b[i].value, "%s step %zu value", actor, i);
		cr_assert_eq(a[i].line, b[i].line, "%s step %zu line", actor, i);
		cr_assert_eq(a[i].column, b[i].column, "%s step %zu column", actor, i);
		assert_str_same(a[i].text, b[i].text, "step text");
	}
}

static void
assert_actor_same(const struct actor_spec *a, const struct actor_spec *b)
{
	assert_str_same(a->name, b->name, "actor name");
	cr_assert_eq(a->late, b->late, "%s late", a->name);
	cr_assert_eq(a->line, b->line, "%s line", a->name);
	cr_assert_eq(a->column, b->column, "%s column", a->name);
	cr_assert_eq(a->id, b->id, "%s id", a->name);
	cr_assert_eq(a->depth, b->depth, "%s depth", a->name);
	cr_assert_eq(a->parent_id, b->parent_id, "%s parent_id", a->name);
	cr_assert_eq(a->n_boot, b->n_boot, "%s n_boot", a->name);
	cr_assert_eq(a->n_steps, b->n_steps, "%s n_steps", a->name);
	cr_assert_eq(a->n_children, b->n_children, "%s n_children", a->name);
	assert_steps_same(a->boot, b->boot, a->n_boot, a->name);
	assert_steps_same(a->steps, b->steps, a->n_steps, a->name);
	for (size_t i = 0; i < a->n_children; i++)
		assert_actor_same(&a->children[i], &b->children[i]);
}

static void
assert_expect_same(const struct expectation *a, const struct expectation *b)
{
	cr_assert_eq(a->has_outcome, b->has_outcome);
	if (a->has_outcome)
		cr_assert_eq(a->outcome, b->outcome);
	assert_str_same(a->verdict, b->verdict, "verdict");
	cr_assert_eq(a->no_verdict, b->no_verdict);
	cr_assert_eq(a->has_leaked, b->has_leaked);
	cr_assert_eq(a->leaked, b->leaked);
}

static void
assert_scenario_same(const struct scenario *a, const struct scenario *b)
{
	assert_str_same(a->path, b->path, "path");
	assert_str_same(a->name, b->name, "name");
	assert_str_same(a->description, b->description, "description");
	assert_str_same(a->cell, b->cell, "cell");
	cr_assert_eq(a->backend, b->backend);
	cr_assert_eq(a->capture, b->capture);
	cr_assert_eq(a->image_bytes, b->image_bytes);
	cr_assert_eq(a->budget_ns, b->budget_ns);
	cr_assert(memcmp(&a->fixes, &b->fixes, sizeof(a->fixes)) == 0, "fixes differ");
	cr_assert(memcmp(&a->timeouts, &b->timeouts, sizeof(a->timeouts)) == 0, "timeouts differ");
	cr_assert_eq(a->interrupt.enabled, b->interrupt.enabled);
	cr_assert_eq(a->interrupt.after_ns, b->interrupt.after_ns);
	cr_assert_eq(a->interrupt.signal, b->interrupt.signal);
	cr_assert_eq(a->interrupt.target, b->interrupt.target);
	assert_expect_same(&a->expect, &b->expect);
	cr_assert_eq(a->n_actors, b->n_actors);
	assert_actor_same(&a->root, &b->root);
	cr_assert_eq(a->n_matrix, b->n_matrix);
	for (size_t i = 0; i < a->n_matrix; i++) {
		assert_str_same(a->matrix[i].key, b->matrix[i].key, "axis key");
		cr_assert_eq(a->matrix[i].n_values, b->matrix[i].n_values);
		cr_assert_eq(a->matrix[i].line, b->matrix[i].line);
		cr_assert_eq(a->matrix[i].column, b->matrix[i].column);
		for (size_t j = 0; j < a->matrix[i].n_values; j++)
			assert_str_same(a->matrix[i].values[j], b->matrix[i].values[j],
					"axis value");
	}
	cr_assert_eq(a->n_cell_rules, b->n_cell_rules);
	for (size_t i = 0; i < a->n_cell_rules; i++) {
		const struct cell_rule *x = &a->cell_rules[i], *y = &b->cell_rules[i];
		cr_assert_eq(x->n_when, y->n_when);
		cr_assert_eq(x->line, y->line);
		cr_assert_eq(x->column, y->column);
		for (size_t j = 0; j < x->n_when; j++) {
			assert_str_same(x->when[j].key, y->when[j].key, "when key");
			assert_str_same(x->when[j].value, y->when[j].value, "when value");
		}
		assert_expect_same(&x->expect, &y->expect);
	}
}

static void
assert_json_round_trip(const struct scenario *s)
{
	char *json = scenario_to_json(s), *err = NULL;
	struct scenario *back = NULL;
	cr_assert_not_null(json, "scenario_to_json failed for %s", s->name);
	int r = scenario_from_json(json, &back, &err);
	cr_assert_eq(r, 0, "scenario_from_json: %s", err ? err : "?");
	assert_scenario_same(s, back);
	char *again = scenario_to_json(back);
	cr_assert_str_eq(again, json, "the JSON of the copy differs");
	free(again);
	free(json);
	scenario_free(back);
}

/* ---- valid files ---- */

Test(scenario, minimal_has_every_default)
{
	struct scenario *s = load_ok("valid/minimal.yaml");
	cr_assert_str_eq(s->name, "minimal");
	cr_assert_null(s->description);
	cr_assert_null(s->cell);
	cr_assert_eq(s->backend, BACKEND_MTF);
	cr_assert_eq(s->capture, CAPTURE_TMPFILE);
	cr_assert_eq(s->image_bytes, 0);
	cr_assert_eq(s->budget_ns, 0);
	cr_assert(s->fixes.fd_scrub && s->fixes.reset_sigmask && s->fixes.atfork_locks &&
		      s->fixes.boot_race && s->fixes.cancel_first && s->fixes.peer_wait_bound &&
		      s->fixes.tree_kill,
		  "every fix is on by default");
	cr_assert_eq(s->fixes.stdio, STDIO_INHERIT);
	cr_assert_eq(s->fixes.wait, WAIT_PIDFD);
	cr_assert_eq(s->timeouts.cancel_ack_ns, 500 * NSEC_PER_MSEC);
	cr_assert_eq(s->timeouts.hard_kill_ns, 1600 * NSEC_PER_MSEC);
	cr_assert_eq(s->timeouts.peer_wait_ns, 3 * NSEC_PER_SEC);
	cr_assert_eq(s->timeouts.run_ns, 10 * NSEC_PER_SEC);
	cr_assert_eq(s->timeouts.linger_ns, 500 * NSEC_PER_MSEC);
	cr_assert_not(s->interrupt.enabled);
	cr_assert_eq(s->interrupt.signal, SIGINT);
	cr_assert_eq(s->interrupt.target, INTERRUPT_ROOT);
	cr_assert(s->expect.has_outcome);
	cr_assert_eq(s->expect.outcome, OUTCOME_OK);
	cr_assert(s->expect.has_leaked);
	cr_assert_eq(s->expect.leaked, 0);
	cr_assert_null(s->expect.verdict);
	cr_assert_not(s->expect.no_verdict);
	cr_assert_str_eq(s->root.name, "root");
	cr_assert_eq(s->root.line, 4);
	cr_assert_eq(s->root.column, 3);
	cr_assert_eq(s->n_actors, 1);
	cr_assert_eq(s->root.n_children, 0);
	cr_assert_eq(s->n_matrix, 0);
	cr_assert_eq(s->n_cell_rules, 0);
	scenario_free(s);
}

Test(scenario, full_sets_every_field)
{
	struct scenario *s = load_ok("valid/full.yaml");
	cr_assert_str_eq(s->name, "full.example_1");
	cr_assert_str_eq(s->description,
			 "every top-level field set to something other than its default\n");
	cr_assert_eq(s->backend, BACKEND_FORK);
	cr_assert_eq(s->capture, CAPTURE_PIPE);
	cr_assert_eq(s->image_bytes, 256ULL << 20);
	cr_assert_eq(s->budget_ns, 1500 * NSEC_PER_MSEC);
	cr_assert_not(s->fixes.fd_scrub);
	cr_assert_not(s->fixes.reset_sigmask);
	cr_assert_eq(s->fixes.stdio, STDIO_FILE);
	cr_assert_not(s->fixes.atfork_locks);
	cr_assert_eq(s->fixes.wait, WAIT_THREAD);
	cr_assert_not(s->fixes.boot_race || s->fixes.cancel_first || s->fixes.peer_wait_bound ||
		      s->fixes.tree_kill);
	cr_assert_eq(s->timeouts.cancel_ack_ns, 250 * NSEC_PER_MSEC);
	cr_assert_eq(s->timeouts.hard_kill_ns, 2 * NSEC_PER_SEC);
	cr_assert_eq(s->timeouts.peer_wait_ns, 100 * NSEC_PER_MSEC);
	cr_assert_eq(s->timeouts.run_ns, 120 * NSEC_PER_SEC);
	cr_assert_eq(s->timeouts.linger_ns, 0);
	cr_assert(s->interrupt.enabled);
	cr_assert_eq(s->interrupt.after_ns, 300 * NSEC_PER_MSEC);
	cr_assert_eq(s->interrupt.signal, SIGTERM);
	cr_assert_eq(s->interrupt.target, INTERRUPT_GROUP);
	cr_assert_eq(s->expect.outcome, OUTCOME_HANG);
	cr_assert_str_eq(s->expect.verdict, "eof-never");
	cr_assert_eq(s->expect.leaked, 2);

	const struct actor_spec *root = &s->root;
	cr_assert_eq(root->n_boot, 5);
	cr_assert_eq(root->boot[0].kind, STEP_SLEEP);
	cr_assert_eq(root->boot[0].ns, 5 * NSEC_PER_MSEC);
	cr_assert_eq(root->boot[0].line, 31);
	cr_assert_eq(root->boot[0].column, 7);
	cr_assert_eq(root->boot[1].kind, STEP_BLOCK_SIGINT);
	cr_assert_eq(root->boot[2].kind, STEP_IGNORE_SIGTERM);
	cr_assert_eq(root->boot[3].kind, STEP_LOG);
	cr_assert_eq(root->boot[3].bytes, 4096);
	cr_assert_eq(root->boot[3].stream, LOG_STDOUT);
	cr_assert_eq(root->boot[4].bytes, 1024);
	cr_assert_eq(root->boot[4].stream, LOG_STDERR);

	static const enum step_kind kinds[] = {
	    STEP_IGNORE_CANCEL, STEP_SPIN,	STEP_SPAWN,	STEP_AWAIT, STEP_RAISE, STEP_RAISE,
	    STEP_EXIT,		STEP_KILL_SELF, STEP_DAEMONIZE, STEP_SPIN,  STEP_SERVE};
	cr_assert_eq(root->n_steps, sizeof(kinds) / sizeof(kinds[0]));
	for (size_t i = 0; i < root->n_steps; i++) {
		cr_assert_eq(root->steps[i].kind, kinds[i], "step %zu is %s", i,
			     step_name(root->steps[i].kind));
		cr_assert_eq(root->steps[i].line, 37 + i);
	}
	cr_assert_eq(root->steps[1].ns, 20 * NSEC_PER_MSEC);
	cr_assert_str_eq(root->steps[2].text, "helper");
	cr_assert_str_eq(root->steps[3].text, "helper");
	cr_assert_str_eq(root->steps[4].text, "root failed on purpose");
	cr_assert_null(root->steps[5].text, "a bare raise keeps the default message");
	cr_assert_eq(root->steps[6].value, 3);
	cr_assert_eq(root->steps[7].value, SIGKILL);
	cr_assert_eq(root->steps[9].ns, 0, "a bare spin spins forever");
	cr_assert_eq(root->n_children, 1);
	cr_assert(root->children[0].late);
	scenario_free(s);
}

Test(scenario, count_expands_deep_copies_and_late_children)
{
	struct scenario *s = load_ok("valid/late-count.yaml");
	const struct actor_spec *root = &s->root;
	static const char *const names[] = {"pool-1",  "pool-2",	"pool-3", "extra-1",
					    "extra-2", "extra-1-spare", "fixed-1"};
	cr_assert_eq(root->n_children, 7);
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(root->children[i].name, names[i]);
	for (size_t i = 0; i < 3; i++) {
		const struct actor_spec *pool = &root->children[i];
		cr_assert(pool->late);
		cr_assert_eq(pool->n_children, 2);
		cr_assert_str_eq(pool->children[0].name, "leaf-1");
		cr_assert_str_eq(pool->children[1].name, "leaf-2");
		cr_assert_eq(pool->children[1].n_steps, 1);
		cr_assert_eq(pool->children[1].steps[0].ns, 10 * NSEC_PER_MSEC);
		cr_assert_str_eq(pool->steps[0].text, "leaf", "a base name is stored as written");
		/* Copies share nothing: each has its own allocations. */
		if (i > 0)
			cr_assert_neq(pool->children[0].steps, root->children[0].children[0].steps);
	}
	cr_assert(root->children[3].late && root->children[4].late);
	cr_assert_not(root->children[5].late);
	cr_assert_eq(s->n_actors, 1 + 3 * 3 + 2 + 1 + 1);
	cr_assert_str_eq(root->steps[0].text, "pool");
	cr_assert_str_eq(root->steps[2].text, "extra-2");
	assert_json_round_trip(s);
	scenario_free(s);
}

Test(scenario, flow_style_quotes_and_directives)
{
	struct scenario *s = load_ok("valid/flow-style.yaml");
	cr_assert_str_eq(s->name, "flow-style");
	cr_assert_str_eq(s->description, "a \"quoted\" description: with a colon");
	cr_assert_eq(s->timeouts.run_ns, 3 * NSEC_PER_SEC);
	cr_assert_eq(s->root.n_steps, 2);
	cr_assert_eq(s->root.steps[0].kind, STEP_SLEEP);
	cr_assert_eq(s->root.steps[1].kind, STEP_SERVE);
	cr_assert_eq(s->root.steps[1].line, 5);
	cr_assert_eq(s->root.steps[1].column, 44);
	cr_assert_str_eq(s->root.children[1].name, "b");
	scenario_free(s);
}

Test(scenario, yaml_scalars_are_never_guessed)
{
	/* `no` stays a word, 010 stays decimal, a quoted number is a number. */
	struct scenario *s = load_text("name: '0755'\n"
				       "fixes: {fd_scrub: no, tree_kill: YES}\n"
				       "tree: {name: r, steps: [{exit: 010}, {exit: '7'}]}\n"
				       "expect: {leaked: '3'}\n");
	cr_assert_str_eq(s->name, "0755");
	cr_assert_not(s->fixes.fd_scrub);
	cr_assert(s->fixes.tree_kill);
	cr_assert_eq(s->root.steps[0].value, 10);
	cr_assert_eq(s->root.steps[1].value, 7);
	cr_assert_eq(s->expect.leaked, 3);
	scenario_free(s);
}

Test(scenario, realtime_kill_self_round_trips)
{
	struct scenario *s = load_text("name: rt\ntree: {name: r, steps: [{kill_self: 40}]}\n"
				       "interrupt: {after: 1s, signal: 41}\n");
	cr_assert_eq(s->root.steps[0].value, 40);
	cr_assert_eq(s->interrupt.signal, 41);
	assert_json_round_trip(s);
	scenario_free(s);
}

/* ---- invalid files ---- */

static char *
read_expected(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int r = read_file_alloc(path, &data, &len);
	cr_assert_eq(r, 0, "%s: missing .expected file (%s)", path, strerror(-r));
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	cr_assert_null(strchr(data, '\n'), "%s must hold exactly one line", path);
	return data;
}

Test(scenario, invalid_corpus_gives_exact_messages)
{
	char *dir = fixture_path("invalid");
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cases = 0;

	cr_assert_not_null(d, "cannot open %s", dir);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		char *yaml = NULL, *expected_path = NULL, *err = NULL;
		struct scenario *s = NULL;
		cr_assert(asprintf(&yaml, "%s/%s", dir, e->d_name) >= 0);
		cr_assert(asprintf(&expected_path, "%s/%.*s.expected", dir, (int)(len - 5),
				   e->d_name) >= 0);
		char *expected = read_expected(expected_path);

		int r = scenario_load(yaml, &s, &err);
		cr_expect_eq(r, -EINVAL, "%s: expected -EINVAL, got %d", e->d_name, r);
		cr_expect_null(s, "%s: nothing may be half-loaded", e->d_name);
		if (err) {
			/* Messages name the path as given: compare relative to the directory. */
			size_t dl = strlen(dir);
			cr_expect(strncmp(err, dir, dl) == 0 && err[dl] == '/',
				  "%s: message does not start with the path: %s", e->d_name, err);
			cr_expect_str_eq(err + dl + 1, expected,
					 "%s:\n  got      %s\n  expected %s", e->d_name,
					 err + dl + 1, expected);
			cr_expect_null(strchr(err, '\n'), "%s: one line only", e->d_name);
		} else {
			cr_expect_fail("%s: no message", e->d_name);
		}
		scenario_free(s);
		free(err);
		free(expected);
		free(expected_path);
		free(yaml);
		cases++;
	}
	closedir(d);
	free(dir);
	cr_assert_geq(cases, 30, "only %zu invalid cases found", cases);
}

Test(scenario, every_expected_file_has_its_yaml)
{
	char *dir = fixture_path("invalid");
	DIR *d = opendir(dir);
	struct dirent *e;
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 10 || strcmp(e->d_name + len - 9, ".expected") != 0)
			continue;
		char *yaml = NULL;
		cr_assert(asprintf(&yaml, "%s/%.*s.yaml", dir, (int)(len - 9), e->d_name) >= 0);
		cr_expect_eq(access(yaml, R_OK), 0, "%s has no .yaml", e->d_name);
		free(yaml);
	}
	closedir(d);
	free(dir);
}

Test(scenario, size_limit_and_io_errors)
{
	size_t len = SCENARIO_MAX_FILE_BYTES + 1;
	char *big = malloc(len + 1), *err = NULL;
	struct scenario *s = NULL;
	memset(big, '#', len);
	big[len] = '\0';
	cr_assert_eq(scenario_load_string("big.yaml", big, len, &s, &err), -EINVAL);
	cr_assert_str_eq(err, "big.yaml:1:1: the file is larger than 256 KiB");
	free(err);
	free(big);

	err = NULL;
	cr_assert_eq(scenario_load("/nonexistent/forkscope.yaml", &s, &err), -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/forkscope.yaml: No such file or directory");
	free(err);

	err = NULL;
	char *dir = fixture_path("valid");
	cr_assert_eq(scenario_load(dir, &s, &err), -EISDIR);
	cr_assert_not_null(err);
	free(err);
	free(dir);
	cr_assert_null(s);
}

Test(scenario, inline_errors)
{
	static const struct {
		const char *text, *message;
	} cases[] = {
	    {"", "inline.yaml:1:1: the file is empty; a scenario needs at least 'name' and 'tree'"},
	    {"name: x\ntree: {name: r, children: [{name: a, late: true}]}\n",
	     "inline.yaml:2:28: late actor 'a' is never spawned; add '- spawn: a' to the steps of "
	     "'r'"},
	    {"name: x\ntree: {name: r}\nmatrix: {expect.verdict: [eof-never, nope]}\n",
	     "inline.yaml:3:38: unknown verdict class 'nope' for expect.verdict (expected one of: "
	     "pipe-full, "
	     "eof-never, mutual-wait, uncancellable-wait, lost-wakeup-futex, lock-deadlock, "
	     "file-lock, fifo-no-partner, stopped, signal-blocked, orphan, "
	     "unreaped-zombie, boot-death, busy-loop, wait-knot, fd-alias, slow-teardown, escaped, slow-not-stuck, or none)"},
	    {"name: x\ntree: {name: r}\ntimeouts: {run: 99999999999h}\n",
	     "inline.yaml:3:17: duration '99999999999h' for timeouts.run is too large"},
	    {"name: x\ntree: {name: r, children: [{name: '..'}]}\n",
	     "inline.yaml:2:35: actor name '..' is reserved"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = load_text_error(cases[i].text);
		cr_expect_str_eq(err, cases[i].message, "case %zu", i);
		free(err);
	}
}

/* ---- scenario_set ---- */

Test(scenario, set_applies_every_key_family)
{
	struct scenario *s = load_ok("valid/minimal.yaml");
	static const char *const sets[] = {
	    "backend=spawn",
	    "capture=none",
	    "image=64KiB",
	    "budget=2s",
	    "fixes.fd_scrub=off",
	    "reset_sigmask=false",
	    "stdio=devnull",
	    "fixes.wait=thread",
	    "timeouts.run=2s",
	    "timeouts.linger=1ms",
	    "interrupt.after=1s",
	    "interrupt.signal=SIGKILL",
	    "interrupt.target=group",
	    "expect.outcome=hang",
	    "expect.verdict=pipe-full",
	    "expect.leaked=4",
	};
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		char *err = NULL;
		cr_assert_eq(scenario_set(s, sets[i], &err), 0, "%s: %s", sets[i], err ? err : "?");
	}
	cr_assert_eq(s->backend, BACKEND_SPAWN);
	cr_assert_eq(s->capture, CAPTURE_NONE);
	cr_assert_eq(s->image_bytes, 65536);
	cr_assert_eq(s->budget_ns, 2 * NSEC_PER_SEC);
	cr_assert_not(s->fixes.fd_scrub);
	cr_assert_not(s->fixes.reset_sigmask);
	cr_assert_eq(s->fixes.stdio, STDIO_DEVNULL);
	cr_assert_eq(s->fixes.wait, WAIT_THREAD);
	cr_assert_eq(s->timeouts.run_ns, 2 * NSEC_PER_SEC);
	cr_assert_eq(s->timeouts.linger_ns, NSEC_PER_MSEC);
	cr_assert(s->interrupt.enabled, "interrupt.after enables the interrupt");
	cr_assert_eq(s->interrupt.signal, SIGKILL);
	cr_assert_eq(s->interrupt.target, INTERRUPT_GROUP);
	cr_assert_eq(s->expect.outcome, OUTCOME_HANG);
	cr_assert_str_eq(s->expect.verdict, "pipe-full");
	cr_assert_eq(s->expect.leaked, 4);

	char *err = NULL;
	cr_assert_eq(scenario_set(s, "expect.verdict=none", &err), 0);
	cr_assert_null(s->expect.verdict);
	cr_assert(s->expect.no_verdict);
	assert_json_round_trip(s);
	scenario_free(s);
}

Test(scenario, set_errors_leave_the_scenario_alone)
{
	static const struct {
		const char *assignment, *message;
	} cases[] = {
	    {"timeouts.run=25 ms", "--set timeouts.run=25 ms: invalid duration '25 ms' for "
				   "timeouts.run (expected e.g. 250ms, 1.5s)"},
	    {"timeouts.run=0",
	     "--set timeouts.run=0: timeouts.run must be greater than 0 (it bounds the whole run)"},
	    {"fd_scurb=off",
	     "--set fd_scurb=off: unknown key 'fd_scurb' (did you mean 'fd_scrub'?)"},
	    {"backend",
	     "--set backend: expected KEY=VALUE, e.g. backend=fork or fixes.fd_scrub=off"},
	    {"=fork", "--set =fork: expected KEY=VALUE, e.g. backend=fork or fixes.fd_scrub=off"},
	    {"backend=vfork", "--set backend=vfork: invalid value 'vfork' for backend (expected "
			      "mtf, fork or spawn)"},
	    {"fixes.tree_kill=2",
	     "--set fixes.tree_kill=2: invalid value '2' for fixes.tree_kill (expected on, "
	     "off, true, false, yes or no)"},
	    {"interrupt.signal=SIGNOPE",
	     "--set interrupt.signal=SIGNOPE: unknown signal 'SIGNOPE' for "
	     "interrupt.signal (expected e.g. SIGINT, SIGTERM, SIGKILL or a number)"},
	    {"expect.leaked=-2", "--set expect.leaked=-2: invalid value '-2' for expect.leaked "
				 "(expected a non-negative integer)"},
	    {"expect.verdict=pipe_full", "--set expect.verdict=pipe_full: unknown verdict class "
					 "'pipe_full' for expect.verdict (did you mean "
					 "'pipe-full'?)"},
	    {"name=other",
	     "--set name=other: unknown key 'name' (expected backend, capture, image, budget, "
	     "fixes.NAME, timeouts.NAME, interrupt.after|signal|target or "
	     "expect.outcome|verdict|leaked)"},
	};
	struct scenario *s = load_ok("valid/full.yaml");
	char *before = scenario_to_json(s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL;
		cr_expect_eq(scenario_set(s, cases[i].assignment, &err), -EINVAL, "%s",
			     cases[i].assignment);
		cr_expect_str_eq(err ? err : "(none)", cases[i].message);
		free(err);
	}
	char *after = scenario_to_json(s);
	cr_assert_str_eq(after, before, "a failed --set changed the scenario");
	free(before);
	free(after);
	scenario_free(s);
}

/* ---- matrix ---- */

Test(scenario, expand_matrix_cells_and_expectations)
{
	struct scenario *s = load_ok("valid/matrix-cells.yaml");
	struct scenario **cells = NULL;
	size_t n = 0;
	char *err = NULL;

	cr_assert_eq(s->n_matrix, 2);
	cr_assert_str_eq(s->matrix[1].key, "fixes.fd_scrub", "axis keys are canonical");
	cr_assert_eq(s->n_cell_rules, 2);
	cr_assert_eq(scenario_expand(s, &cells, &n, &err), 0, "%s", err ? err : "?");
	cr_assert_eq(n, 4);

	static const struct {
		const char *cell;
		enum backend_kind backend;
		bool fd_scrub;
		enum outcome outcome;
		const char *verdict;
		bool no_verdict;
		unsigned leaked;
	} want[] = {
	    {"backend=mtf,fixes.fd_scrub=on", BACKEND_MTF, true, OUTCOME_OK, NULL, true, 0},
	    {"backend=mtf,fixes.fd_scrub=off", BACKEND_MTF, false, OUTCOME_HANG, "eof-never", false,
	     0},
	    {"backend=fork,fixes.fd_scrub=on", BACKEND_FORK, true, OUTCOME_OK, NULL, true, 0},
	    {"backend=fork,fixes.fd_scrub=off", BACKEND_FORK, false, OUTCOME_HANG, "eof-never",
	     false, 1},
	};
	for (size_t i = 0; i < n; i++) {
		const struct scenario *c = cells[i];
		cr_assert_str_eq(c->cell, want[i].cell);
		cr_assert_eq(c->backend, want[i].backend, "%s", c->cell);
		cr_assert_eq(c->fixes.fd_scrub, want[i].fd_scrub, "%s", c->cell);
		cr_assert_eq(c->expect.outcome, want[i].outcome, "%s", c->cell);
		assert_str_same(c->expect.verdict, want[i].verdict, c->cell);
		cr_assert_eq(c->expect.no_verdict, want[i].no_verdict, "%s", c->cell);
		cr_assert_eq(c->expect.leaked, want[i].leaked, "%s", c->cell);
		cr_assert_eq(c->n_matrix, 0, "cells are resolved");
		cr_assert_eq(c->n_cell_rules, 0);
		cr_assert_eq(c->n_actors, 2);
		cr_assert_str_eq(c->root.children[0].name, "leaf");
		assert_json_round_trip(c);
	}
	/* The base is untouched by expansion. */
	cr_assert_eq(s->backend, BACKEND_MTF);
	cr_assert(s->fixes.fd_scrub);
	cr_assert_eq(s->expect.outcome, OUTCOME_OK);
	scenario_free_cells(cells, n);
	assert_json_round_trip(s);
	scenario_free(s);
}

Test(scenario, expand_without_matrix_is_one_copy)
{
	struct scenario *s = load_ok("valid/full.yaml");
	struct scenario **cells = NULL;
	size_t n = 0;
	char *err = NULL;
	cr_assert_eq(scenario_expand(s, &cells, &n, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_null(cells[0]->cell);
	cr_assert_neq(cells[0], s);
	cr_assert_neq(cells[0]->root.steps, s->root.steps, "a deep copy");
	assert_scenario_same(s, cells[0]);
	scenario_free_cells(cells, n);
	scenario_free(s);
}

Test(scenario, expand_three_axes_row_major)
{
	struct scenario *s =
	    load_text("name: m\ntree: {name: r}\n"
		      "matrix:\n  backend: [mtf, spawn]\n  timeouts.run: [1s, 2s, 3s]\n"
		      "  expect.outcome: [ok, hang]\n");
	struct scenario **cells = NULL;
	size_t n = 0;
	char *err = NULL;
	cr_assert_eq(scenario_expand(s, &cells, &n, &err), 0);
	cr_assert_eq(n, 12);
	cr_assert_str_eq(cells[0]->cell, "backend=mtf,timeouts.run=1s,expect.outcome=ok");
	cr_assert_str_eq(cells[1]->cell, "backend=mtf,timeouts.run=1s,expect.outcome=hang");
	cr_assert_str_eq(cells[2]->cell, "backend=mtf,timeouts.run=2s,expect.outcome=ok");
	cr_assert_str_eq(cells[11]->cell, "backend=spawn,timeouts.run=3s,expect.outcome=hang");
	cr_assert_eq(cells[11]->timeouts.run_ns, 3 * NSEC_PER_SEC);
	cr_assert_eq(cells[11]->expect.outcome, OUTCOME_HANG);
	cr_assert_eq(cells[6]->backend, BACKEND_SPAWN);
	scenario_free_cells(cells, n);
	scenario_free(s);
}

Test(scenario, later_cells_entries_override_earlier_ones)
{
	struct scenario *s = load_text(
	    "name: m\ntree: {name: r}\n"
	    "matrix: {wait: [pidfd, thread], cancel_first: [on, off]}\n"
	    "expect: {verdict: slow-teardown}\n"
	    "cells:\n"
	    "  - when: {wait: thread}\n    expect: {outcome: hang, verdict: uncancellable-wait}\n"
	    "  - when: {fixes.wait: thread, fixes.cancel_first: off}\n    expect: {verdict: "
	    "none}\n");
	struct scenario **cells = NULL;
	size_t n = 0;
	char *err = NULL;
	cr_assert_eq(scenario_expand(s, &cells, &n, &err), 0);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(cells[0]->expect.verdict, "slow-teardown");
	cr_assert_eq(cells[0]->expect.outcome, OUTCOME_OK);
	cr_assert_str_eq(cells[2]->cell, "fixes.wait=thread,fixes.cancel_first=on");
	cr_assert_str_eq(cells[2]->expect.verdict, "uncancellable-wait");
	cr_assert_eq(cells[2]->expect.outcome, OUTCOME_HANG);
	cr_assert_null(cells[3]->expect.verdict);
	cr_assert(cells[3]->expect.no_verdict);
	cr_assert_eq(cells[3]->expect.outcome, OUTCOME_HANG,
		     "fields a later entry does not set are kept");
	cr_assert_not(cells[3]->fixes.cancel_first);
	cr_assert_eq(cells[3]->fixes.wait, WAIT_THREAD);
	scenario_free_cells(cells, n);
	scenario_free(s);
}

/* ---- JSON ---- */

Test(scenario, json_round_trip_of_every_valid_file)
{
	static const char *const files[] = {"valid/minimal.yaml", "valid/full.yaml",
					    "valid/late-count.yaml", "valid/flow-style.yaml",
					    "valid/matrix-cells.yaml"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct scenario *s = load_ok(files[i]);
		assert_json_round_trip(s);
		struct scenario *c = scenario_copy(s);
		cr_assert_not_null(c);
		assert_scenario_same(s, c);
		scenario_free(c);
		scenario_free(s);
	}
}

Test(scenario, json_uses_result_shapes)
{
	struct scenario *s = load_ok("valid/full.yaml");
	char *json = scenario_to_json(s);
	cr_assert_not_null(strstr(
	    json, "\"fixes\":{\"fd_scrub\":false,\"reset_sigmask\":false,\"stdio\":\"file\""));
	cr_assert_not_null(strstr(json, "\"timeouts\":{\"cancel_ack_ns\":250000000,"));
	cr_assert_not_null(strstr(
	    json, "\"expect\":{\"outcome\":\"hang\",\"verdict\":\"eof-never\",\"leaked\":2}"));
	cr_assert_not_null(
	    strstr(json, "{\"kind\":\"spawn\",\"child\":\"helper\",\"line\":39,\"column\":7}"));
	free(json);
	scenario_free(s);
}

Test(scenario, json_errors)
{
	static const struct {
		const char *text, *message;
	} cases[] = {
	    {"{", "scenario json: 1:1: string or '}' expected near end of file"},
	    {"[]", "scenario json: the document must be an object"},
	    {"{\"name\":\"x\"}", "scenario json: 'description' must be a string or null"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scenario *s = NULL;
		char *err = NULL;
		cr_expect_eq(scenario_from_json(cases[i].text, &s, &err), -EINVAL);
		cr_expect_null(s);
		cr_expect_str_eq(err ? err : "(none)", cases[i].message);
		free(err);
	}

	/* A valid document with one bad step kind deep inside. */
	struct scenario *s = load_ok("valid/late-count.yaml");
	char *json = scenario_to_json(s), *p = strstr(json, "\"kind\":\"sleep\""), *err = NULL;
	cr_assert_not_null(p);
	memcpy(p, "\"kind\":\"slept\"", 14);
	struct scenario *back = NULL;
	cr_assert_eq(scenario_from_json(json, &back, &err), -EINVAL);
	cr_assert_str_eq(
	    err,
	    "scenario json: tree.children[0].children[0].steps[0]: 'kind' must be a step name");
	free(err);
	free(json);
	scenario_free(s);
}

/* ---- index ---- */

Test(scenario, index_is_pre_order)
{
	struct scenario *s = load_ok("valid/late-count.yaml");
	struct actor_spec **actors = NULL;
	size_t n = 0;
	cr_assert_eq(scenario_index(s, &actors, &n), 0);
	cr_assert_eq(n, s->n_actors);
	cr_assert_eq(actors[0], &s->root);
	cr_assert_eq(s->root.id, 0);
	cr_assert_eq(s->root.depth, 0);
	cr_assert_eq(s->root.parent_id, -1);
	/* root, pool-1, leaf-1, leaf-2, pool-2, ... */
	cr_assert_str_eq(actors[1]->name, "pool-1");
	cr_assert_str_eq(actors[2]->name, "leaf-1");
	cr_assert_str_eq(actors[3]->name, "leaf-2");
	cr_assert_str_eq(actors[4]->name, "pool-2");
	cr_assert_eq(actors[3]->depth, 2);
	cr_assert_eq(actors[3]->parent_id, 1);
	cr_assert_eq(actors[5]->parent_id, 4);
	cr_assert_str_eq(actors[n - 1]->name, "fixed-1");
	cr_assert_eq(actors[n - 1]->parent_id, 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(actors[i]->id, (int)i);
		if (i > 0)
			cr_assert_eq(actors[actors[i]->parent_id]->depth + 1, actors[i]->depth);
	}
	free(actors);
	scenario_free(s);
}

/* ---- names ---- */

Test(scenario, names_round_trip)
{
	for (int b = 0; b < _BACKEND_MAX; b++)
		cr_assert_eq(backend_from_name(backend_name(b)), b);
	for (int c = 0; c < _CAPTURE_MAX; c++)
		cr_assert_eq(capture_from_name(capture_name(c)), c);
	for (int k = 0; k < _STDIO_MAX; k++)
		cr_assert_eq(stdio_from_name(stdio_name(k)), k);
	for (int w = 0; w < _WAIT_MAX; w++)
		cr_assert_eq(wait_from_name(wait_name(w)), w);
	for (int o = 0; o < _OUTCOME_MAX; o++)
		cr_assert_eq(outcome_from_name(outcome_name(o)), o);
	for (int k = 0; k < _STEP_MAX; k++)
		cr_assert_eq(step_from_name(step_name(k)), k);
	cr_assert_eq(interrupt_target_from_name("group"), INTERRUPT_GROUP);
	cr_assert_eq(backend_from_name("vfork"), -EINVAL);
	cr_assert_eq(backend_from_name(NULL), -EINVAL);
	cr_assert_str_eq(backend_name(_BACKEND_MAX), "?");
	scenario_free(NULL);
	scenario_free_cells(NULL, 0);
}

/* ---- finding scenario files (scenario_collect, and runner_collect over it) ---- */

static const char minimal_text[] = "name: NAME\ntree:\n  name: root\n";

/* The collect tests each get a fresh directory, removed by the suite's fini
 * even when an assertion fails. */
static char *tree_dir;

static void
tree_setup(void)
{
	tree_dir = strdup("/tmp/forkscope-collect-XXXXXX");
	cr_assert_not_null(mkdtemp(tree_dir));
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		(void)chmod(path, 0700);
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void
tree_teardown(void)
{
	char *dir = tree_dir;
	tree_dir = NULL;
	if (!dir)
		return;
	/* Unlock first: a 000 directory cannot be listed to empty it. */
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "chmod -R u+rwx '%s'", dir) >= 0);
	(void)system(cmd);
	free(cmd);
	(void)nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

TestSuite(collect, .init = tree_setup, .fini = tree_teardown);

static char *
tree_path(const char *dir, const char *rel)
{
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/%s", dir, rel) >= 0);
	return p;
}

static void
tree_mkdir(const char *dir, const char *rel)
{
	char *p = tree_path(dir, rel);
	cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s: %s", p, strerror(errno));
	free(p);
}

static void
tree_scenario(const char *dir, const char *rel, const char *name)
{
	char *p = tree_path(dir, rel);
	FILE *f = fopen(p, "we");
	cr_assert_not_null(f, "%s: %s", p, strerror(errno));
	for (const char *t = minimal_text; *t; t++)
		if (strncmp(t, "NAME", 4) == 0) {
			fputs(name, f);
			t += 3;
		} else {
			fputc(*t, f);
		}
	cr_assert_eq(fclose(f), 0);
	free(p);
}

static void
tree_symlink(const char *dir, const char *rel, const char *target)
{
	char *p = tree_path(dir, rel);
	cr_assert_eq(symlink(target, p), 0, "symlink %s: %s", p, strerror(errno));
	free(p);
}

static size_t
count_notes(const struct scenario_collection *c, bool error, const char *part)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n_notes; i++)
		if (c->notes[i].error == error && strstr(c->notes[i].message, part))
			n++;
	return n;
}

static void
collect_dir(const char *dir, struct scenario_collection *c)
{
	char *paths[] = {(char *)dir};
	cr_assert_eq(scenario_collect(paths, 1, c), 0);
}

/* Regression (issue 17): `sub/up -> ..` made the walk load one file 41 times
 * (until ELOOP); runner_collect is the entry point run and scenarios use. */
Test(collect, parent_symlink_loads_each_file_once, .timeout = 300)
{
	char *dir = tree_dir;
	tree_scenario(dir, "one.yaml", "one");
	tree_mkdir(dir, "sub");
	tree_symlink(dir, "sub/up", "..");
	char *paths[] = {dir};
	struct scenario **list = NULL;
	size_t n = 0;
	cr_assert_eq(runner_collect(paths, 1, &list, &n), 0);
	cr_assert_eq(n, 1, "loaded %zu scenarios from one file", n);
	cr_assert_str_eq(list[0]->name, "one");
	scenario_free(list[0]);
	free(list);

	struct scenario_collection c;
	collect_dir(dir, &c);
	cr_assert_eq(c.n_scenarios, 1);
	cr_assert_eq(c.n_errors, 0);
	cr_assert_eq(count_notes(&c, false, "sub/up: skipped, the same directory as"), 1);
	scenario_collection_clear(&c);
}

/* Regression (issue 17): two `ln -s .` made the walk run forever, growing. */
Test(collect, self_symlinks_do_not_loop, .timeout = 300)
{
	char *dir = tree_dir;
	tree_scenario(dir, "a.yaml", "a");
	tree_mkdir(dir, "deeper");
	tree_scenario(dir, "deeper/b.yaml", "b");
	tree_symlink(dir, "x", ".");
	tree_symlink(dir, "y", ".");
	tree_symlink(dir, "deeper/z", "../deeper");
	char *paths[] = {dir};
	struct scenario **list = NULL;
	size_t n = 0;
	cr_assert_eq(runner_collect(paths, 1, &list, &n), 0);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		scenario_free(list[i]);
	free(list);

	struct scenario_collection c;
	collect_dir(dir, &c);
	cr_assert_eq(c.n_scenarios, 2);
	/* sorted by path: a.yaml before deeper/b.yaml */
	cr_assert_str_eq(c.scenarios[0]->name, "a");
	cr_assert_str_eq(c.scenarios[1]->name, "b");
	cr_assert_eq(c.n_errors, 0);
	cr_assert_eq(count_notes(&c, false, "skipped, the same directory as"), 3);
	scenario_collection_clear(&c);
}

Test(collect, same_file_named_twice_loads_once)
{
	char *dir = tree_dir;
	tree_scenario(dir, "one.yaml", "one");
	tree_symlink(dir, "alias.yaml", "one.yaml");
	char *file = tree_path(dir, "one.yaml");
	char *paths[] = {file, dir};
	struct scenario_collection c;
	cr_assert_eq(scenario_collect(paths, 2, &c), 0);
	cr_assert_eq(c.n_scenarios, 1);
	cr_assert_str_eq(c.scenarios[0]->path, file);
	cr_assert_eq(c.n_errors, 0);
	/* alias.yaml and one.yaml under dir are both the file already loaded */
	cr_assert_eq(count_notes(&c, false, "skipped, the same file as"), 2);
	scenario_collection_clear(&c);
	free(file);
}

/* Regression (issue 17): a FIFO named x.yaml blocked the loader in open(). */
Test(collect, fifo_is_refused_without_blocking, .timeout = 300)
{
	char *dir = tree_dir;
	tree_scenario(dir, "good.yaml", "good");
	char *fifo = tree_path(dir, "x.yaml");
	cr_assert_eq(mkfifo(fifo, 0644), 0);

	struct scenario *s = NULL;
	char *err = NULL;
	cr_assert_eq(scenario_load(fifo, &s, &err), -EINVAL);
	cr_assert_null(s);
	char *want = NULL;
	cr_assert(asprintf(&want,
			   "%s: not a regular file (a FIFO); a scenario must be a regular file",
			   fifo) >= 0);
	cr_assert_str_eq(err, want);
	free(err);

	struct scenario_collection c;
	collect_dir(dir, &c);
	cr_assert_eq(c.n_scenarios, 1);
	cr_assert_eq(c.n_errors, 1);
	cr_assert_str_eq(c.notes[0].message, want);
	scenario_collection_clear(&c);

	err = NULL;
	cr_assert_eq(scenario_load("/dev/null", &s, &err), -EINVAL);
	cr_assert_str_eq(err, "/dev/null: not a regular file (a character device); a scenario must "
			      "be a regular file");
	free(err);
	free(want);
	free(fifo);
}

/* Lower the effective capabilities that bypass directory permissions (root
 * reads a mode 000 directory anyway); the permitted set keeps them. */
static void
set_dac_override(bool on)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	cr_assert_eq(syscall(SYS_capget, &hdr, data), 0);
	unsigned mask = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
	if (on)
		data[0].effective |= mask & data[0].permitted;
	else
		data[0].effective &= ~mask;
	cr_assert_eq(syscall(SYS_capset, &hdr, data), 0, "capset: %s", strerror(errno));
}

/* Regression (issue 17): an unreadable subdirectory was skipped silently. */
Test(collect, unreadable_subdirectory_is_a_warning)
{
	char *dir = tree_dir;
	tree_scenario(dir, "a.yaml", "a");
	tree_mkdir(dir, "locked");
	tree_scenario(dir, "locked/b.yaml", "b");
	char *locked = tree_path(dir, "locked");
	cr_assert_eq(chmod(locked, 0), 0);

	struct scenario_collection c;
	set_dac_override(false);
	collect_dir(dir, &c);
	set_dac_override(true);
	cr_assert_eq(c.n_scenarios, 1);
	cr_assert_eq(c.n_errors, 0);
	cr_assert_eq(c.n_notes, 1);
	char *want = NULL;
	cr_assert(asprintf(&want,
			   "%s: cannot read directory (Permission denied); the scenarios in it "
			   "are skipped",
			   locked) >= 0);
	cr_assert_str_eq(c.notes[0].message, want);
	scenario_collection_clear(&c);

	/* Given as the argument itself it is an error: nothing can be run. */
	char *paths[] = {locked};
	set_dac_override(false);
	cr_assert_eq(scenario_collect(paths, 1, &c), 0);
	set_dac_override(true);
	cr_assert_eq(c.n_scenarios, 0);
	cr_assert_eq(c.n_errors, 1);
	cr_assert(strstr(c.notes[0].message, "cannot read directory: Permission denied"));
	scenario_collection_clear(&c);
	free(want);
	free(locked);
}

Test(collect, errors_are_data_in_order)
{
	char *dir = tree_dir;
	tree_mkdir(dir, "empty");
	tree_symlink(dir, "empty/dangling.yaml", "nowhere.yaml");
	tree_mkdir(dir, "nothing");
	char *empty = tree_path(dir, "empty"), *nothing = tree_path(dir, "nothing");
	char *missing = tree_path(dir, "missing");
	char *paths[] = {missing, nothing, empty};
	struct scenario_collection c;
	cr_assert_eq(scenario_collect(paths, 3, &c), 0);
	cr_assert_eq(c.n_scenarios, 0);
	cr_assert_eq(c.n_errors, 3);
	cr_assert_eq(c.n_notes, 3);
	char *want[3] = {NULL};
	cr_assert(asprintf(&want[0], "%s: No such file or directory", missing) >= 0);
	cr_assert(asprintf(&want[1], "%s: no scenario files (*.yaml) found", nothing) >= 0);
	cr_assert(asprintf(&want[2], "%s/dangling.yaml: No such file or directory", empty) >= 0);
	for (size_t i = 0; i < 3; i++) {
		cr_assert(c.notes[i].error);
		cr_assert_str_eq(c.notes[i].message, want[i]);
		free(want[i]);
	}
	scenario_collection_clear(&c);
	scenario_collection_clear(NULL);
	free(empty);
	free(nothing);
	free(missing);
}

/* Regression (issue 17): `image` had no cap below the machine's memory. The
 * limit is the smaller of SCENARIO_MAX_IMAGE_BYTES and half the memory. */
Test(scenario, image_is_capped_below_memory)
{
	uint64_t half = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 2;
	uint64_t limit = half < SCENARIO_MAX_IMAGE_BYTES ? half : SCENARIO_MAX_IMAGE_BYTES;
	struct scenario *s = load_text(minimal_text);
	char set[64], *err = NULL;

	(void)snprintf(set, sizeof(set), "image=%lluB", (unsigned long long)limit);
	cr_assert_eq(scenario_set(s, set, &err), 0, "%s", err ? err : "");
	cr_assert_eq(s->image_bytes, limit);

	(void)snprintf(set, sizeof(set), "image=%lluB", (unsigned long long)limit + 1);
	cr_assert_eq(scenario_set(s, set, &err), -EINVAL);
	cr_assert_eq(s->image_bytes, limit, "a refused --set leaves the scenario alone");
	if (limit == SCENARIO_MAX_IMAGE_BYTES)
		cr_assert(strstr(err, "is larger than the limit of 8 GiB"), "%s", err);
	else
		cr_assert(strstr(err, "is more than half of this machine's memory"), "%s", err);
	free(err);

	err = NULL;
	cr_assert_eq(scenario_set(s, "image=1024GiB", &err), -EINVAL);
	free(err);
	scenario_free(s);
}
