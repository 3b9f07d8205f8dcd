#pragma once
/* `forkscope watch`: run any command with the probe (libforkscope-probe.so
 * through LD_PRELOAD) under the session supervisor, in its own process
 * group; pass its exit status through; on a timeout triage the live tree
 * before touching it (exit 124); report, triage and then end SIGINT first
 * whatever outlived the command. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* watch's own failures (no probe, no run directory, cannot fork): distinct
 * from any status the command itself may return, as timeout(1) does. */
#define WATCH_EXIT_USAGE 125
#define WATCH_EXIT_HANG 124
#define WATCH_LINGER_DEFAULT_NS (500 * 1000000ull)

struct watch_options {
	uint64_t timeout_ns;	/* 0: wait as long as the command runs */
	uint64_t linger_ns;	/* grace for descendants after the command ended */
	const char *out_dir;
	bool hold;		/* on a hang: leave the tree as it is */
	bool selfdump;		/* probed processes answer FORKSCOPE_SELFDUMP_SIGNAL */
	bool stacks;		/* ptrace stacks in the triage */
	const char *rules_file;
	const char *const *argv; /* forkscope's own argv, for result.json */
	int argc;
};

/* Run cmd as described. Returns the exit status of forkscope: the command's
 * own, 128+N for its death by signal N, 124 on a hang, 127/126 when it
 * cannot be found/executed, WATCH_EXIT_USAGE when watch itself could not
 * run it. When the command ran, *ret_doc gets the result document and
 * *ret_run_dir the run directory (result.json and renderings are the
 * caller's to write). */
int watch_main(const struct watch_options *o, char **cmd, json_t **ret_doc, char **ret_run_dir);
/* The probe library to preload: $FORKSCOPE_PROBE, else next to the forkscope
 * binary (build tree: ../probes/, install: ../lib[64]/[multiarch/]forkscope/).
 * Returns 0 with a malloc'ed absolute path, or -ENOENT. */
int watch_find_probe(char **ret_path);
/* Why the probe cannot be preloaded into the program at path (static,
 * set-user-ID to another user; a script by its #! interpreter), or NULL. */
const char *watch_probe_obstacle(const char *path);
