#pragma once
/* The result model shared by `run` and `watch` (docs/results.md): the parts
 * of a CELL that do not depend on where the tree came from, the leftovers
 * (one schema), the escaped verdict, the one hang count, the summary and the
 * result document around the cells. harness/ gathers the facts; this module
 * turns them into JSON. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A process still alive when the tree was over, as the supervisor saw it. */
struct leftover_facts {
	pid_t pid, ppid, pgid, sid;
	char state;	     /* 0: unknown */
	const char *comm;
	const char *ended_by; /* "exited" | "SIGINT" | "SIGTERM" | "SIGKILL" | "survived" */
	uint64_t sig_blocked, sig_ignored; /* at the start of the ladder (bit N-1 = signal N) */
	pid_t tree_top, tree_pgid, subreaper;
};
/* LEFTOVER: {pid, name, ppid, state, pgid, sid, actor, how, started_by,
 * doing, ended_by, sigint}. events (probe events of the run) and snapshot
 * (the triage of the leftovers) may be NULL. */
json_t *result_leftover(const struct leftover_facts *f, const json_t *events, const json_t *snapshot);

/* The `escaped` verdict over the leftovers that are not actors, or NULL when
 * there are none. what: "the run" / "`CMD`"; scenario selects the remedy
 * wording (scenario keys only for forkscope's scenarios). */
json_t *result_escaped_verdict(const json_t *leftovers, const char *what, bool scenario);

/* The one hang count: verdicts whose class is a hang class. */
size_t result_count_hangs(const json_t *verdicts);

/* The common part of a CELL. */
struct cell_facts_common {
	const char *id, *name;
	const char *outcome;	 /* "ok" | "error" | "hang" */
	bool ended;		 /* the top process ended */
	int wstatus;		 /* its wait status when ended */
	const char *infra_error; /* could not run, or NULL */
	json_t *mismatches;	 /* array of strings (stolen) */
	json_t *verdicts;	 /* (borrowed) */
	json_t *leftovers;	 /* (borrowed) */
	uint64_t duration_ns;
	const char *events_file, *snapshot_file; /* relative to the run directory, or NULL */
};
/* Sets id, name, outcome, passed, mismatches, infra_error, exit, verdicts,
 * found_hangs, leaked, leftovers, duration_ns, events_file, snapshot_file on
 * cell. A cell that hung without a verdict of a hang class says so in its
 * mismatches and "hang_unexplained". */
void result_cell_common(json_t *cell, const struct cell_facts_common *f);
json_t *result_exit_status(int code, const char *signal);
/* An ACTOR's fd fields from the fd table a census saw (child_start, exec)
 * and what a scrub closed (may be NULL): fds_inherited, fds_unexpected (every
 * fd above 2), fds_closed_by_scrub. */
void result_describe_fds(json_t *actor, const json_t *fds, const json_t *closed);

/* {"cells","passed","failed","errors","hangs","leaked"} over the cells. */
json_t *result_summary(const json_t *cells);
/* The result document: schema_version, tool, command, argv, started_at,
 * duration_ns, host, run_dir, summary, scenarios (cells stolen). */
json_t *result_document(const char *command, const char *const *argv, int argc, int64_t wall_start,
			uint64_t duration_ns, const char *run_dir, json_t *cells);

/* The probe events a watch run recorded, as the ACTOR list: one entry per
 * process seen, pre-order from root_pid, times relative to start_ns. */
json_t *result_actors_from_events(const json_t *events, pid_t root_pid, uint64_t start_ns);
