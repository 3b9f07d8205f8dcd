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
	const char *const *argv;
	int argc;
	/* Called with each finished cell (progress for people): the cell, how
	 * many have finished (1-based) and how many the run has. */
	void (*on_cell)(const json_t *cell, size_t done, size_t total, void *userdata);
	void *userdata;
};

/* Run every cell; *ret_doc gets the result document and *ret_run_dir the
 * run directory (nothing is written there but the cells' own files: the CLI
 * writes result.json and the renderings). Returns 0, the signal that
 * interrupted the run (> 0), -EINVAL for invalid scenarios (reported on
 * stderr as file:line:col: message) or -EIO when the run directory cannot
 * be made. */
int runner_main(const struct run_options *o, char **paths, size_t n_paths, json_t **ret_doc, char **ret_run_dir);

/* Load every scenario under paths (files or directories, *.yaml / *.yml,
 * sorted). Errors are printed as file:line:col: message. Returns 0 or -EINVAL. */
struct scenario;
int runner_collect(char **paths, size_t n_paths, struct scenario ***ret, size_t *ret_n);
