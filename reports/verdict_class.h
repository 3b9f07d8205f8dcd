#pragma once
/* The verdict taxonomy (docs/verdicts.md). Scenario files name these in
 * `expect.verdict`; the rule engine emits them. */
#include <stdbool.h>
#include <stddef.h>

struct verdict_class_info {
	const char *name;
	const char *title;  /* one line for people */
	const char *remedy; /* the known fix, as a sentence */
	bool is_hang;	    /* false for findings that are not hangs (slow-teardown, escaped) */
};

const struct verdict_class_info *verdict_class_lookup(const char *name);
const struct verdict_class_info *verdict_class_all(size_t *ret_n);
