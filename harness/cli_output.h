#pragma once
/* What `run` and `watch` print and write at the end: the progress line per
 * cell on stderr, result.json, the requested renderings, and the text report
 * with its closing "N passed, N failed" line on stdout. */
#include <jansson.h>

/* One line per finished cell on stderr: PASS/FAIL id outcome duration verdicts. */
void cli_print_progress(const json_t *cell, const char *color_mode);
/* {"cells":…,"passed":…,"failed":…,"errors":…,"hangs":…,"leaked":…} */
json_t *cli_summary(const json_t *cells);
/* Write result.json into run_dir and every requested format; print the text
 * report to stdout. Returns 0, or 2 when an output could not be written. */
int cli_write_outputs(const json_t *doc, const char *run_dir, const char *json_path, const char *junit_path,
		      const char *tap_path, const char *trace_path, const char *html_path, const char *color_mode);
