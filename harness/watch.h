#pragma once
/* `forkscope watch [OPTIONS] -- CMD [ARG...]`: run any command with the probe
 * (libforkscope-probe.so through LD_PRELOAD) under the subreaper, in its own
 * process group; pass its exit status through; on a timeout triage the live
 * tree before touching it (exit 124); report, triage and then end SIGINT
 * first whatever outlived the command; write the run directory
 * (events.ndjson, result.json, snapshot.json, renderings). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct watch_options {
	uint64_t timeout_ns;	/* 0: wait as long as the command runs */
	uint64_t linger_ns;	/* grace for descendants after the command ended */
	const char *out_dir;
	const char *json_path, *html_path, *junit_path;
	bool hold;		/* on a hang: leave the tree as it is */
	bool selfdump;		/* probed processes answer FORKSCOPE_SELFDUMP_SIGNAL */
	bool stacks;		/* ptrace stacks in the triage */
	const char *rules_file;
	const char *color;
	const char **argv;	/* forkscope's own argv, for result.json */
	int argc;
};

/* The `watch` subcommand: parse argv (argv[0] is "watch") and run. Returns
 * the exit status of forkscope: the command's own, 128+N for its death by
 * signal N, 124 on a hang, 2 on usage errors. */
int cmd_watch(int argc, char **argv);

/* Run cmd as described; returns the exit status as cmd_watch does. */
int watch_main(const struct watch_options *o, char **cmd);

/* The probe library to preload: $FORKSCOPE_PROBE, else next to the forkscope
 * binary (build tree: ../probes/, install: ../lib[64]/[multiarch/]forkscope/).
 * Returns 0 with a malloc'ed absolute path, or -ENOENT. */
int watch_find_probe(char **ret_path);

/* The ACTOR list of docs/results.md from a watch's probe events: one entry
 * per process seen, pre-order from root_pid, times relative to start_ns. */
json_t *watch_actors_from_events(const json_t *events, pid_t root_pid, uint64_t start_ns);
