#pragma once
/* Turning a cell's events.ndjson plus what the runner saw into a result entry
 * (docs/results.md CELL), and checking it against the scenario's expectation. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness/scenario.h"
#include "probes/eventlog_read.h"

struct cell_facts {
	uint64_t start_ns;	/* CLOCK_MONOTONIC when the runner started the tree */
	uint64_t end_ns;	/* when the cell was over (everything gone) */
	bool root_ended;	/* within the run timeout */
	int root_wstatus;	/* wait status of the root (or what the capture host passed on) */
	uint64_t root_end_ns;
	bool hang;
	pid_t pgid;
	json_t *leftovers;	/* array of LEFTOVER (borrowed) */
	json_t *verdicts;	/* array of VERDICT from triage (borrowed) */
	const char *infra_error;
	const char *events_file;   /* relative to the run dir */
	const char *snapshot_file; /* relative, or NULL */
	const char *output_file;   /* absolute path of captured output, or NULL */
	unsigned repeat;
};

/* Build the CELL object. */
json_t *results_build_cell(const struct scenario *sc, const char *events_path, const struct cell_facts *f);
