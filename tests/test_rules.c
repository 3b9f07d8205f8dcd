/* The rules engine (reports/rules.h): the built-in rules load and name every
 * hang class of the catalogue; a user rules file loads beside them and is
 * tried first at equal priority; every mistake in a rules file is reported
 * as file:line:col pointing at the offending node. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reports/rules.h"

static const struct rule *
rule_for_class(const struct ruleset *rs, const char *cls)
{
	for (size_t i = 0; i < rs->n_rules; i++)
		if (strcmp(rs->rules[i].class_name, cls) == 0)
			return &rs->rules[i];
	return NULL;
}

Test(rules, default_rules_name_every_catalogue_class)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(ruleset_load_default(&rs, &err), 0, "%s", err ? err : "");
	cr_assert_null(err);
	/* The classes the catalogue scenarios expect from the rules (the
	 * others, escaped and slow-teardown, come from the runner). */
	static const char *const classes[] = { "pipe-full",   "lost-wakeup-futex", "uncancellable-wait",
					       "boot-death",  "eof-never",	   "signal-blocked",
					       "busy-loop",   "mutual-wait" };
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		const struct rule *r = rule_for_class(&rs, classes[i]);
		cr_assert_not_null(r, "no built-in rule names %s", classes[i]);
		cr_assert_not(r->user);
		cr_assert(r->n_patterns > 0 || r->n_require > 0);
		cr_assert(r->origin && strncmp(r->origin, "default-rules:", 14) == 0, "origin %s", r->origin);
		for (size_t k = 0; k < r->n_require; k++)
			cr_assert(rule_predicate_known(r->require[k]), "%s requires unknown %s", r->name, r->require[k]);
	}
	ruleset_free(&rs);
}

Test(rules, wchan_patterns_hold_on_both_kernel_namings)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(ruleset_load_default(&rs, &err), 0);
	const struct rule *r = rule_for_class(&rs, "pipe-full");
	const struct rule_pattern *wchan = NULL, *sc = NULL;
	for (size_t i = 0; i < r->n_patterns; i++) {
		if (r->patterns[i].field == RULE_FIELD_WCHAN)
			wchan = &r->patterns[i];
		if (r->patterns[i].field == RULE_FIELD_SYSCALL)
			sc = &r->patterns[i];
	}
	cr_assert(wchan && sc);
	/* anon_pipe_write on 6.x, pipe_write before. */
	cr_assert(rule_pattern_matches(wchan, "anon_pipe_write"));
	cr_assert(rule_pattern_matches(wchan, "pipe_write"));
	cr_assert_not(rule_pattern_matches(wchan, "do_epoll_wait"));
	cr_assert(rule_pattern_matches(sc, "write"));
	cr_assert_not(rule_pattern_matches(sc, "read"));
	ruleset_free(&rs);
}

static const char user_rules[] = "rules:\n"
				 "  - name: my-lock\n"
				 "    class: my-app-lock\n"
				 "    title: our registry lock\n"
				 "    remedy: release it before fork\n"
				 "    subject: process\n"
				 "    priority: 100\n"
				 "    match:\n"
				 "      comm: '^registry'\n"
				 "      frame: 'registry_lock'\n"
				 "    require: [stuck]\n";

Test(rules, user_rules_load_and_sort_first_at_equal_priority)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(ruleset_load_default(&rs, &err), 0);
	size_t builtin = rs.n_rules;
	cr_assert_eq(ruleset_load_string(&rs, "mine.yaml", user_rules, strlen(user_rules), true, &err), 0, "%s",
		     err ? err : "");
	cr_assert_eq(rs.n_rules, builtin + 1);
	const struct rule *mine = rule_for_class(&rs, "my-app-lock");
	cr_assert_not_null(mine);
	cr_assert_str_eq(mine->name, "my-lock");
	cr_assert_str_eq(mine->title, "our registry lock");
	cr_assert_str_eq(mine->remedy, "release it before fork");
	cr_assert_eq(mine->subject, RULE_PROCESS);
	cr_assert_eq(mine->priority, 100);
	cr_assert(mine->user);
	cr_assert_eq(mine->n_patterns, 2);
	cr_assert_eq(mine->patterns[0].field, RULE_FIELD_COMM);
	cr_assert(rule_pattern_matches(&mine->patterns[0], "registryd"));
	cr_assert_str_eq(mine->origin, "mine.yaml:2:5");

	ruleset_sort(&rs);
	for (size_t i = 1; i < rs.n_rules; i++)
		cr_assert_geq(rs.rules[i - 1].priority, rs.rules[i].priority, "sorted by priority, high first");
	/* pipe-full has priority 100 too: the user's rule goes first. */
	cr_assert_str_eq(rs.rules[0].class_name, "my-app-lock");
	ruleset_free(&rs);
}

Test(rules, a_rule_without_a_name_is_named_after_its_class)
{
	static const char text[] = "rules:\n  - class: x\n    require: [stuck]\n";
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(ruleset_load_string(&rs, "n.yaml", text, strlen(text), true, &err), 0);
	cr_assert_str_eq(rs.rules[0].name, "x");
	cr_assert_eq(rs.rules[0].subject, RULE_THREAD, "the default subject");
	ruleset_free(&rs);
}

/* Load text and expect an error that starts with "bad.yaml:LINE:COL: " and
 * contains what. */
static void
expect_error(const char *text, int line, int col, const char *what)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	int r = ruleset_load_string(&rs, "bad.yaml", text, strlen(text), true, &err);
	cr_assert_lt(r, 0, "accepted: %s", text);
	cr_assert_not_null(err);
	char prefix[64];
	(void) snprintf(prefix, sizeof(prefix), "bad.yaml:%d:%d: ", line, col);
	cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "expected %s..., got %s", prefix, err);
	cr_assert(strstr(err, what), "expected '%s' in %s", what, err);
	free(err);
	ruleset_free(&rs);
}

Test(rules, errors_point_at_file_line_col)
{
	expect_error("rules:\n  - class: x\n    require: [stuck, bogus_predicate]\n", 3, 22, "bogus_predicate");
	expect_error("rules:\n  - class: x\n    match:\n      syscall: '(unclosed'\n", 4, 16, "invalid pattern");
	expect_error("rules:\n  - class: x\n    match:\n      colour: red\n", 4, 7, "unknown match field 'colour'");
	expect_error("rules:\n  - name: no-class\n    require: [stuck]\n", 2, 5, "without 'class'");
	expect_error("rules:\n  - class: x\n", 2, 5, "neither 'match' nor 'require'");
	expect_error("rules:\n  - class: x\n    priority: 5000\n    require: [stuck]\n", 3, 15, "priority");
	expect_error("rules:\n  - class: x\n    subject: team\n    require: [stuck]\n", 3, 14, "subject");
	expect_error("rules:\n  - class: x\n    class: y\n    require: [stuck]\n", 3, 5, "duplicate rule key 'class'");
	expect_error("rulez: []\n", 1, 1, "unknown top-level key 'rulez'");
	expect_error("rules: {}\n", 1, 8, "must be a list");
	expect_error("rules:\n  - class: [x\n", 3, 1, "");
}

Test(rules, file_errors_name_the_path)
{
	char path[] = "/tmp/forkscope-rules-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	static const char text[] = "rules:\n  - class: x\n    require: [nope]\n";
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
	(void) close(fd);
	struct ruleset rs = { 0 };
	char *err = NULL;
	int r = ruleset_load_file(&rs, path, &err);
	(void) unlink(path);
	cr_assert_lt(r, 0);
	char prefix[64];
	(void) snprintf(prefix, sizeof(prefix), "%s:3:15: ", path);
	cr_assert(err && strncmp(err, prefix, strlen(prefix)) == 0, "got %s", err);
	free(err);
	err = NULL;
	cr_assert_lt(ruleset_load_file(&rs, "/nonexistent/rules.yaml", &err), 0);
	cr_assert(err && strstr(err, "/nonexistent/rules.yaml"), "got %s", err);
	free(err);
	ruleset_free(&rs);
}

Test(rules, predicates)
{
	cr_assert(rule_predicate_known("stuck"));
	cr_assert(rule_predicate_known("writes_full_pipe"));
	cr_assert_not(rule_predicate_known("bogus"));
	cr_assert_not(rule_predicate_known(""));
	cr_assert_str_eq(rule_field_name(RULE_FIELD_WCHAN), "wchan");
}
