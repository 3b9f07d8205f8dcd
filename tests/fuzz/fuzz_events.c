/* libFuzzer: the events.ndjson reader (harness/results.h events_parse) and
 * what is built from the events: a cell of result.json
 * (results_build_cell: actors, teardown phases, the expectation) and the
 * actor test of leftovers (events_pid_is_actor). Events files are written by
 * every process of a tree, foreign programs included: their content is
 * input, not trusted data. results_build_cell reads a path, so the input goes
 * through a memfd. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness/results.h"
#include "harness/scenario.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A tree with depth, a `count`, a budget and a late child: every branch of
 * the teardown section and the actor index is reachable. */
static const char cell_yaml[] =
	"name: fuzz-cell\n"
	"budget: 100ms\n"
	"tree:\n"
	"  name: root\n"
	"  steps: [{spawn: late}, {await: mid}, {raise: boom}]\n"
	"  children:\n"
	"    - name: mid\n"
	"      steps: [serve]\n"
	"      children:\n"
	"        - {name: leaf, count: 3, steps: [ignore_cancel, serve]}\n"
	"    - {name: late, late: true, steps: [{exit: 3}]}\n"
	"expect: {outcome: error, verdict: slow-teardown, leaked: 0}\n";

static struct scenario *cell;
static int memfd = -1;
static char memfd_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *err = NULL;
	if (scenario_load_string("fuzz-cell.yaml", cell_yaml, sizeof(cell_yaml) - 1, &cell, &err) < 0) {
		fprintf(stderr, "fuzz_events: %s\n", err ? err : "cannot load the cell");
		abort();
	}
	memfd = memfd_create("fuzz-events", MFD_CLOEXEC);
	if (memfd < 0)
		abort();
	(void) snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!cell)
		(void) LLVMFuzzerInitialize(NULL, NULL);
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct events_problem problems[4];
	size_t bad = 0;
	json_t *events = events_parse(buf, size, problems, 4, &bad);
	for (size_t i = 0; i < bad && i < 4; i++)
		if (problems[i].line == 0 || !memchr(problems[i].reason, '\0', sizeof(problems[i].reason)))
			abort();
	(void) events_pid_is_actor(events, 1, NULL);
	json_decref(events);
	free(buf);

	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t) size)
		return 0;
	json_t *leftovers = json_array(), *verdicts = json_array();
	struct cell_facts f = {
		.start_ns = 1000, .end_ns = 5000000, .root_ended = true, .root_wstatus = 1 << 8,
		.root_end_ns = 4000000, .pgid = 1, .leftovers = leftovers, .verdicts = verdicts,
		.events_file = "cells/000-fuzz/events.ndjson",
	};
	json_t *c = results_build_cell(cell, memfd_path, &f);
	if (!c)
		abort();
	/* result.json must stay writable */
	char *text = json_dumps(c, JSON_COMPACT);
	if (!text)
		abort();
	free(text);
	json_decref(c);
	json_decref(leftovers);
	json_decref(verdicts);
	return 0;
}
