#pragma once
/* The command line (docs/cli.md): one file per verb, each with its usage,
 * `--help`, options, exit codes and printing. Below cli/ nothing writes to
 * stdout: results are printed here, from the JSON the library returns.
 * Errors have one shape: `forkscope VERB: what went wrong`, naming the
 * object (the pid, the path). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Options given before the verb (`forkscope --color=never run ...`). */
struct cli_globals {
	const char *color; /* auto | always | never */
	const char *const *argv; /* the whole command line, for result.json */
	int argc;
};

int cli_run(int argc, char **argv, const struct cli_globals *g);
int cli_watch(int argc, char **argv, const struct cli_globals *g);
int cli_triage(int argc, char **argv, const struct cli_globals *g);
int cli_report(int argc, char **argv, const struct cli_globals *g);
int cli_scenarios(int argc, char **argv, const struct cli_globals *g);
int cli_clean(int argc, char **argv, const struct cli_globals *g);

/* `forkscope VERB: message` on stderr. */
void cli_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* --color's value checked; 0 or -EINVAL (after saying so). */
int cli_check_color(const char *verb, const char *value);
/* A usage error: the message, then where to read more; returns code. */
int cli_usage_error(const char *verb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Bytes from a file that may be damaged or hostile, made safe for a terminal. */
void cli_print_sanitized(FILE *f, const char *s);
/* Read a JSON file that must be a regular file of sane size (never blocks on
 * a FIFO). On error *ret_error gets "PATH: reason" or "PATH:LINE:COL: reason". */
int cli_load_json_file(const char *path, json_t **ret, char **ret_error);
/* The absolute path of the running binary (the spawn backend execs it). */
char *cli_self_exe(void);

/* One line per finished cell on stderr: [done/total] PASS/FAIL id outcome
 * duration verdicts, then the mismatches of a cell that did not pass. */
void cli_print_progress(const json_t *cell, size_t done, size_t total, const char *color_mode);
/* Write result.json into run_dir and every requested rendering; print the
 * text report to out (stdout, or stderr for watch whose stdout belongs to
 * the command). Returns 0, or 2 when an output could not be written. */
struct cli_outputs {
	const char *json, *junit, *tap, *trace, *html;
	bool verbose; /* the text report details every cell, not only those that failed */
};
int cli_write_outputs(const json_t *doc, const char *run_dir, const struct cli_outputs *files, const char *color_mode,
		      FILE *out);
