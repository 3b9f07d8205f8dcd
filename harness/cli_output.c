#include "harness/cli_output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reports/render.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

void
cli_print_progress(const json_t *cell, const char *color_mode)
{
	bool color = render_color_wanted(color_mode, 2) > 0;
	bool passed = json_bool(cell, "passed", 0);
	const char *tag = json_is_string(json_object_get(cell, "infra_error")) ? "ERROR" : passed ? "PASS" : "FAIL";
	const char *on = !color ? "" : passed ? "\033[32m" : "\033[31m";
	const char *off = color ? "\033[0m" : "";
	struct strbuf v = STRBUF_INIT;
	size_t i;
	json_t *verdict;
	json_array_foreach(json_object_get(cell, "verdicts"), i, verdict)
		(void) strbuf_printf(&v, "%s%s", v.len ? "," : "", json_str(verdict, "class", "?"));
	char dur[32];
	fprintf(stderr, "%s%-5s%s %s  %s  %s%s%s\n", on, tag, off, json_str(cell, "id", "?"),
		json_str(cell, "outcome", "?"), duration_format((uint64_t) json_int(cell, "duration_ns", 0), dur, sizeof(dur)),
		v.len ? "  verdict: " : "", v.len ? v.data : "");
	json_t *m;
	json_array_foreach(json_object_get(cell, "mismatches"), i, m)
		fprintf(stderr, "      %s\n", json_string_value(m));
	strbuf_free(&v);
}

json_t *
cli_summary(const json_t *cells)
{
	size_t passed = 0, failed = 0, errors = 0, hangs = 0, leaked = 0, i;
	json_t *c;
	json_array_foreach(cells, i, c) {
		if (json_is_string(json_object_get(c, "infra_error")))
			errors++;
		else if (json_bool(c, "passed", 0))
			passed++;
		else
			failed++;
		if (strcmp(json_str(c, "outcome", ""), "hang") == 0)
			hangs++;
		leaked += (size_t) json_int(c, "leaked", 0);
	}
	return json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "cells", (int) json_array_size(cells), "passed", (int) passed,
			 "failed", (int) failed, "errors", (int) errors, "hangs", (int) hangs, "leaked", (int) leaked);
}

static int
write_rendering(const json_t *doc, enum render_format fmt, const char *path, const struct render_options *o)
{
	if (!path)
		return 0;
	int r = render_to_file(doc, fmt, o, path);
	if (r < 0) {
		fprintf(stderr, "forkscope: write %s (%s): %s\n", path, render_format_name(fmt), strerror(-r));
		return 2;
	}
	return 0;
}

int
cli_write_outputs(const json_t *doc, const char *run_dir, const char *json_path, const char *junit_path,
		  const char *tap_path, const char *trace_path, const char *html_path, const char *color_mode)
{
	int rc = 0;
	char *path = NULL;
	if (asprintf(&path, "%s/result.json", run_dir) >= 0) {
		int r = json_write_file_atomic(doc, path, JSON_INDENT(2));
		if (r < 0) {
			fprintf(stderr, "forkscope: write %s: %s\n", path, strerror(-r));
			rc = 2;
		}
		free(path);
	}
	struct render_options plain = { .color = 0 };
	/* One call per file: MAX() evaluates its arguments twice (each rendering
	 * was written, and each failure reported, two times). */
	const struct {
		enum render_format fmt;
		const char *path;
	} files[] = { { RENDER_JSON, json_path },   { RENDER_JUNIT, junit_path }, { RENDER_TAP, tap_path },
		      { RENDER_TRACE, trace_path }, { RENDER_HTML, html_path } };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		int w = write_rendering(doc, files[i].fmt, files[i].path, &plain);
		rc = MAX(rc, w);
	}
	int color = render_color_wanted(color_mode, fileno(stdout));
	struct render_options text = { .color = color > 0 };
	(void) fflush(stderr);
	if (render_to_stream(doc, RENDER_TEXT, &text, stdout) < 0)
		rc = 2;
	(void) fflush(stdout);
	return rc;
}
