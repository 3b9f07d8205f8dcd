#pragma once
/* The watchdog's triage: snapshot a live tree and name the cause. Shared by
 * `forkscope triage`, the run watchdog and `watch`. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct triage_request {
	const pid_t *roots;
	size_t n_roots;
	pid_t subreaper;	/* include processes adopted by this pid (0: none) */
	pid_t pgid;		/* include this process group (0: none) */
	bool stacks;		/* native stacks through ptrace + libdw */
	const char *rules_file; /* extra user rules, or NULL */
	const json_t *events;	/* probe events of the run (names, spawn/ready/cancel facts), or NULL */
	uint64_t start_ns;	/* cell start, to express times relative to it */
	const char *reason;	/* "timeout" | "leftovers" | "command" */
	int python_mode;	/* 0 off, 1 auto */
};

struct ruleset;
/* The built-in rules plus rules_file (if any), sorted. On a bad file,
 * *ret_error is "file:line:col: message". */
int triage_load_rules(const char *rules_file, struct ruleset *rs, char **ret_error);

/* Analyse a recorded snapshot (snapshot.json) again, with the events of its
 * run if given: verdicts, and (explain) the graph as text. */
int triage_replay(const json_t *snapshot, const json_t *events, const char *rules_file, json_t **ret_verdicts,
		  char **ret_explain);

/* Returns 0 with a snapshot (JSON) and the verdict list, or -errno when
 * nothing at all could be read (e.g. the pids are gone). */
int triage_run(const struct triage_request *req, json_t **ret_snapshot, json_t **ret_verdicts);
