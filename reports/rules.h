#pragma once
/* Rules: pcre2 patterns over what a thread or process shows (syscall, wchan,
 * stack frames, names) plus graph predicates, naming a verdict class.
 * Format and predicates: docs/rules.md. The built-in rules come from
 * reports/rules/default.yaml (compiled in); users add files with --rules. */
#include <stdbool.h>
#include <stddef.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum rule_subject {
	RULE_THREAD,
	RULE_PROCESS,
};

/* Fields a pattern can match. `frame` and `python` match if any frame matches. */
enum rule_field {
	RULE_FIELD_SYSCALL,
	RULE_FIELD_WCHAN,
	RULE_FIELD_FRAME,
	RULE_FIELD_PYTHON,
	RULE_FIELD_COMM,
	RULE_FIELD_THREAD,
	RULE_FIELD_ACTOR,
	_RULE_FIELD_MAX,
};

struct rule_pattern {
	enum rule_field field;
	char *source;
	pcre2_code *re;
};

struct rule {
	char *name;
	char *class_name;
	char *title;  /* for classes outside the built-in taxonomy */
	char *remedy; /* idem */
	int priority;
	bool user;
	enum rule_subject subject;
	struct rule_pattern *patterns;
	size_t n_patterns;
	char **require;
	size_t n_require;
	char *origin; /* "file:line:col" */
};

struct ruleset {
	struct rule *rules;
	size_t n_rules;
};

/* Load the built-in rules. */
int ruleset_load_default(struct ruleset *rs, char **ret_error);
/* Add the rules of a YAML text/file. Errors: "file:line:col: message". */
int ruleset_load_string(struct ruleset *rs, const char *name, const char *text, size_t len, bool user,
			char **ret_error);
int ruleset_load_file(struct ruleset *rs, const char *path, char **ret_error);
/* Order for evaluation: priority high to low, user rules first at equal priority. */
void ruleset_sort(struct ruleset *rs);
void ruleset_free(struct ruleset *rs);

bool rule_predicate_known(const char *name);
const char *rule_field_name(enum rule_field f);
/* pcre2 match of a NUL-terminated subject (NULL subjects match the empty string). */
bool rule_pattern_matches(const struct rule_pattern *p, const char *subject);

/* The built-in rules text (generated from reports/rules/default.yaml). */
extern const char forkscope_default_rules[];
