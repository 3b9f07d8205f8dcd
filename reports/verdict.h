#pragma once
/* Verdicts: run the rules over an analysed wait-for graph and describe each
 * hang the way jstack describes a deadlock — the chain or cycle, the resource,
 * who holds it, the stacks of only the threads involved, the remedy — as
 * VERDICT objects (docs/results.md) with a ready-made `text` block. */
#include <jansson.h>

#include "reports/rules.h"
#include "reports/waitgraph.h"

/* Returns a new array of VERDICT objects (possibly empty). */
json_t *verdicts_compute(struct wf_graph *g, const struct ruleset *rs);

/* Timed out but moving: when the two samples of the snapshot show bytes
 * (/proc/PID/io), CPU or recent TCP traffic (tcp_info) progressing, a
 * `slow-not-stuck` finding (not a hang) naming what moved; NULL when nothing
 * moved. verdicts_compute appends it when it found no hang. */
json_t *verdict_progress(struct wf_graph *g);

/* Why a teardown signal may not end a process (issue 13, item 4): the
 * terminating signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) it blocks in every
 * thread or ignores, e.g. "SIGINT blocked in every thread; SIGHUP ignored"
 * — NULL when none. blocked is the intersection over its threads (SigBlk),
 * ignored its SigIgn. For the escaped/leftover reports of the CLI. */
char *verdict_signal_note(uint64_t blocked, uint64_t ignored);

/* The closing line: "Found 2 hangs." / "Found one hang." / "No hang found." */
const char *verdicts_closing_line(const json_t *verdicts, char *buf, size_t size);
/* Number of verdicts whose class is a hang (not slow-teardown / escaped). */
size_t verdicts_count_hangs(const json_t *verdicts);
