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

/* Snapshot the live tree as JSON (snapshot.json's content). -ESRCH when
 * there is no process to look at, -errno when nothing could be read. */
int triage_snapshot(const struct triage_request *req, json_t **ret_snapshot);
/* The analysis of a snapshot (live or recorded) with the probe events of its
 * run if any: the wait-for graph, the rules, the verdicts. The one path every
 * verdict goes through, so `triage --from` reproduces what `run` and `watch`
 * wrote. */
struct triage_analysis {
	json_t *verdicts;  /* array, never NULL on success */
	char *explain;	   /* the graph as text, when asked for */
	char *waits_text;  /* what each thread waits for (the "no hang found" view) */
	json_t *waits;	   /* the same as JSON (wf_summary_json) */
};
/* On error, *ret_error (may be NULL) gets the message: "file:line:col: ..."
 * for a bad rules file, "not a forkscope snapshot" for a snapshot it cannot
 * read. */
int triage_analyze(const json_t *snapshot, const json_t *events, const char *rules_file, bool explain,
		   struct triage_analysis *ret, char **ret_error);
void triage_analysis_release(struct triage_analysis *a);
/* triage_snapshot then triage_analyze. */
int triage_run(const struct triage_request *req, json_t **ret_snapshot, struct triage_analysis *ret, char **ret_error);
