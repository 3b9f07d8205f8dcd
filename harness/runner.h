#pragma once
/* `forkscope run`: load scenarios, expand them into cells, run each cell's
 * tree under the subreaper with its own process group, watch the deadline,
 * triage hangs before teardown, end everything SIGINT first, and write the
 * run directory (result.json, per-cell events.ndjson and snapshot.json). */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct run_options {
	const char *out_dir;
	const char **sets;
	size_t n_sets;
	const char *backend;
	bool matrix;
	unsigned repeat;
	unsigned shard_k, shard_n;
	uint64_t timeout_ns;
	bool hold;
	bool stacks;
	bool no_probes; /* --probes=off: no event log (the probe-overhead baseline) */
	const char *rules_file;
	const char *exe_path;
	const char *json_path, *junit_path, *tap_path, *trace_path, *html_path;
	const char *color;
	const char **argv;
	int argc;
};

/* Returns the exit status of `forkscope run` (0, 1, 2). */
int runner_main(const struct run_options *o, char **paths, size_t n_paths);

/* Load every scenario under paths (files or directories, *.yaml / *.yml,
 * sorted). Errors are printed as file:line:col: message. Returns 0 or -EINVAL. */
struct scenario;
int runner_collect(char **paths, size_t n_paths, struct scenario ***ret, size_t *ret_n);

/* The run directory for a new run: out_dir if given, else a fresh one. */
int runner_make_run_dir(const char *out_dir, const char *prefix, char **ret_path);

/* Host facts for result.json. */
json_t *runner_host_json(void);
