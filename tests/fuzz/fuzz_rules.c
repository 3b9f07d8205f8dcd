/* libFuzzer: the rules-file parser (reports/rules.h ruleset_load_string) on
 * arbitrary YAML, as a user's --rules file: every error must come back as
 * "file:line:col: message", never a crash, a leak or a half-built rule.
 * Patterns that compile are matched once against the input itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reports/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0; /* pcre2 compile time grows with pattern size, not bugs */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	struct ruleset rs = { 0 };
	char *err = NULL;
	int r = ruleset_load_string(&rs, "fuzz.yaml", text, size, true, &err);
	if (r == 0) {
		ruleset_sort(&rs);
		for (size_t i = 0; i < rs.n_rules; i++)
			for (size_t k = 0; k < rs.rules[i].n_patterns; k++)
				(void) rule_pattern_matches(&rs.rules[i].patterns[k], "futex_wait_queue");
	} else if (!err)
		abort(); /* an error must say where and why */
	free(err);
	ruleset_free(&rs);
	free(text);
	return 0;
}
