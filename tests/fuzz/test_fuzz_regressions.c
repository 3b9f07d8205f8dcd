/* Behaviour fixed after a fuzzing finding, asserted in every build (the
 * inputs themselves are replayed by fuzz-replay-<target> from
 * fixtures/fuzz/<target>/crash-*; a leak only shows under ASan or valgrind,
 * the behaviour below shows everywhere). Findings in modules with a test
 * file of their own are tested there. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "reports/rules.h"

static int
load(const char *text, struct ruleset *rs, char **err)
{
	*err = NULL;
	return ruleset_load_string(rs, "r.yaml", text, strlen(text), true, err);
}

/* fuzz-rules: a second `name:` in a rule replaced the first and leaked it. */
Test(rules, duplicate_rule_key_is_refused)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(load("rules:\n  - name: first\n    class: orphan\n    name: second\n    require: [stuck]\n", &rs, &err),
		     -EINVAL);
	cr_assert_str_eq(err, "r.yaml:4:5: duplicate rule key 'name' (first at line 2)");
	cr_assert_eq(rs.n_rules, 0);
	free(err);
	ruleset_free(&rs);
}

Test(rules, duplicate_match_field_and_rules_key_are_refused)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	cr_assert_eq(load("rules:\n  - class: orphan\n    match: {comm: a, comm: b}\n", &rs, &err), -EINVAL);
	cr_assert(strstr(err, "duplicate match field 'comm'"), "%s", err);
	free(err);
	cr_assert_eq(load("rules: []\nrules:\n  - {class: orphan, require: [stuck]}\n", &rs, &err), -EINVAL);
	cr_assert_str_eq(err, "r.yaml:2:1: duplicate key 'rules'");
	free(err);
	cr_assert_eq(rs.n_rules, 0);
	/* distinct keys still load */
	cr_assert_eq(load("rules:\n  - {name: a, class: orphan, title: t, remedy: r, require: [stuck]}\n", &rs, &err), 0);
	cr_assert_eq(rs.n_rules, 1);
	ruleset_free(&rs);
}
