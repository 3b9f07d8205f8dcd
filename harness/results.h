#pragma once
/* Turning a cell's events.ndjson plus what the runner saw into a result entry
 * (docs/results.md CELL), and checking it against the scenario's expectation. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness/scenario.h"

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

/* Parse events.ndjson; returns a new array of event objects (bad lines skipped,
 * their count in *ret_bad_lines). */
json_t *events_load(const char *path, size_t *ret_bad_lines);

/* A line of an events file that is not an event: its 1-based number and why
 * ("invalid JSON: ... at column 12", "not a JSON object", "line of 10485760
 * bytes, longer than 1048576"). */
struct events_problem {
	size_t line;
	char reason[192];
};

/* The longest line taken as an event. The probe writes at most 60 KiB a line
 * (docs/events.md); anything much longer is damage, not an event. */
#define EVENTS_MAX_LINE_BYTES (1024 * 1024)

/* events_load over a buffer (no NUL needed; NUL bytes inside a line make it
 * bad, never end the parse). The first max_problems bad lines are described in
 * problems (may be NULL with 0); the count of all of them in *ret_bad_lines. */
json_t *events_parse(const char *data, size_t len, struct events_problem *problems, size_t max_problems,
		     size_t *ret_bad_lines);
/* events_load with the bad lines described; *ret_errno (may be NULL) gets 0 or
 * the -errno of reading the file (the array is then empty). */
json_t *events_load_checked(const char *path, struct events_problem *problems, size_t max_problems,
			    size_t *ret_bad_lines, int *ret_errno);

/* Build the CELL object. */
json_t *results_build_cell(const struct scenario *sc, const char *events_path, const struct cell_facts *f);

/* Pids of actor processes seen in the events (child_start), for telling actors
 * from escaped helpers among leftovers. */
bool events_pid_is_actor(const json_t *events, pid_t pid, const char **ret_name);
