/* libFuzzer: a recorded snapshot.json read back and analysed, what
 * `forkscope triage --from` does with a file a user hands it:
 * snapshot_from_json (probes/snapshot.h) and its JSON round trip, the
 * wait-for graph (reports/waitgraph.h wf_graph_from_snapshot, wf_analyze,
 * wf_explain) and the verdicts over the built-in rules (reports/verdict.h).
 *
 * Input: the snapshot JSON, optionally followed by a line
 * "---events---" and the run's events.ndjson (names, handshakes and cancel
 * requests feed the graph). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/results.h"
#include "probes/snapshot.h"
#include "reports/rules.h"
#include "reports/verdict.h"
#include "reports/waitgraph.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ruleset rules;
static bool rules_loaded;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *err = NULL;
	if (ruleset_load_default(&rules, &err) < 0) {
		fprintf(stderr, "fuzz_snapshot: default rules: %s\n", err ? err : "?");
		abort();
	}
	ruleset_sort(&rules);
	rules_loaded = true;
	return 0;
}

static const char separator[] = "\n---events---\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!rules_loaded)
		(void) LLVMFuzzerInitialize(NULL, NULL);
	size_t snap_len = size, ev_off = size;
	const uint8_t *sep = memmem(data, size, separator, sizeof(separator) - 1);
	if (sep) {
		snap_len = (size_t) (sep - data);
		ev_off = snap_len + sizeof(separator) - 1;
	}
	json_t *events = NULL;
	if (sep)
		events = events_parse((const char *) data + ev_off, size - ev_off, NULL, 0, NULL);
	json_t *doc = json_loadb((const char *) data, snap_len, 0, NULL);
	if (doc) {
		struct snapshot *s = NULL;
		if (snapshot_from_json(doc, &s) == 0) {
			json_t *again = snapshot_to_json(s);
			if (!again)
				abort();
			char *text = json_dumps(again, JSON_COMPACT);
			free(text);
			json_decref(again);
			snapshot_free(s);
		}
		struct wf_graph *g = NULL;
		if (wf_graph_from_snapshot(doc, events, &g) == 0) {
			wf_analyze(g);
			json_t *verdicts = verdicts_compute(g, &rules);
			char line[64];
			(void) verdicts_closing_line(verdicts, line, sizeof(line));
			(void) verdicts_count_hangs(verdicts);
			char *text = json_dumps(verdicts, JSON_COMPACT);
			free(text);
			json_decref(verdicts);
			char *explain = wf_explain(g);
			free(explain);
			wf_graph_free(g);
		}
		json_decref(doc);
	}
	json_decref(events);
	return 0;
}
