#pragma once
/* The verdict taxonomy (docs/verdicts.md). Scenario files name these in
 * `expect.verdict`; the rule engine emits them. */
#include <stdbool.h>
#include <stddef.h>

struct verdict_class_info {
	const char *name;
	const char *title;  /* one line for people */
	const char *remedy; /* the known fix for a forkscope scenario (names its fixes.* keys) */
	bool is_hang;	    /* false for findings that are not hangs (slow-teardown, escaped, slow-not-stuck) */
	const char *remedy_program; /* the same fix in any program's terms (no scenario keys) */
	const char *title_program;  /* a title without scenario words, when the title has them */
};

const struct verdict_class_info *verdict_class_lookup(const char *name);
const struct verdict_class_info *verdict_class_all(size_t *ret_n);
/* The remedy to print: scenario keys only when the run is a forkscope scenario. */
const char *verdict_class_remedy(const struct verdict_class_info *info, bool scenario);
const char *verdict_class_title(const struct verdict_class_info *info, bool scenario);
