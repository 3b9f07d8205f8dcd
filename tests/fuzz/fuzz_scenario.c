/* libFuzzer: the scenario loader (harness/scenario.h) on arbitrary YAML.
 * A load either fails with one "file:line:col: message" or gives a scenario
 * that expands into cells, renders to JSON and reads back from that JSON
 * (what the spawn backend hands to its children) without complaint. The JSON
 * reader is also fed the raw input: spec.json files are read back by
 * exec'ed actors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct scenario *s = NULL;
	char *err = NULL;
	/* exactly size bytes: the YAML reader must not need a NUL */
	char *exact = malloc(size ? size : 1);
	if (!exact) {
		free(text);
		return 0;
	}
	memcpy(exact, data, size);
	int r = scenario_load_string("fuzz.yaml", exact, size, &s, &err);
	free(exact);
	if (r < 0) {
		if (!err)
			abort(); /* every failure says where */
		free(err);
	} else {
		struct scenario **cells = NULL;
		size_t n = 0;
		char *xerr = NULL;
		if (scenario_expand(s, &cells, &n, &xerr) == 0) {
			for (size_t i = 0; i < n; i++) {
				char *json = scenario_to_json(cells[i]);
				struct scenario *back = NULL;
				char *jerr = NULL;
				/* what the runner wrote, the child must read */
				if (json && scenario_from_json(json, &back, &jerr) < 0)
					abort();
				scenario_free(back);
				free(jerr);
				free(json);
				struct actor_spec **index = NULL;
				size_t na = 0;
				if (scenario_index(cells[i], &index, &na) == 0)
					free(index);
			}
			char *serr = NULL;
			if (n > 0 && scenario_set(cells[0], "timeouts.run=2s", &serr) < 0 && !serr)
				abort();
			free(serr);
			scenario_free_cells(cells, n);
		} else
			free(xerr);
		scenario_free(s);
	}
	struct scenario *j = NULL;
	char *jerr = NULL;
	if (scenario_from_json(text, &j, &jerr) == 0)
		scenario_free(j);
	free(jerr);
	free(text);
	return 0;
}
