#pragma once
/* Renderers: every report format, computed from a result.json document alone
 * (docs/results.md is the input schema, docs/reports.md describes the outputs).
 *
 * Typical use by the CLI:
 *
 *	json_t *doc;
 *	r = render_load(run_dir_or_file, &doc);           // result.json
 *	int fmt = render_format_from_name("junit");        // or RENDER_JUNIT
 *	struct render_options o = {
 *		.color = render_color_wanted(color_flag, STDOUT_FILENO) > 0,
 *	};
 *	r = render_to_file(doc, fmt, &o, "-");             // "-" = stdout
 *	json_decref(doc);
 *
 * The document may be a run (`scenarios: [...]`) or a single cell at top level
 * (watch). Missing or null fields never make a renderer fail: a partial run
 * renders what it has. Output is deterministic (no clock, no environment) and
 * locale-independent (numbers always use '.'), whatever setlocale() the caller
 * made. Functions return >= 0 or -errno and never print. */
#include <jansson.h>
#include <stdio.h>

enum render_format {
	RENDER_TEXT,  /* the terminal report: one line per cell, verdict blocks, summary */
	RENDER_JSON,  /* the document itself, pretty, schema_version first */
	RENDER_JUNIT, /* JUnit XML, the portable subset GitLab/Jenkins/GitHub reporters accept */
	RENDER_TAP,   /* TAP 13, flat, YAML diagnostics */
	RENDER_TRACE, /* Chrome Trace Event JSON for ui.perfetto.dev */
	RENDER_HTML,  /* one self-contained HTML file with SVG tree and timeline */
	_RENDER_FORMAT_MAX,
};

/* The result.json schema version these renderers were written for. Newer
 * documents still render (unknown fields are ignored); text and HTML say so. */
#define RENDER_SCHEMA_VERSION 1

struct render_options {
	int color;	   /* text only: 1 = ANSI colours, 0 = never */
	const char *title; /* HTML <title>/heading, JUnit <testsuites name>; NULL = "forkscope" */
	int verbose;	   /* text only: details of every cell, not only of the cells that failed */
};

/* "text" | "json" | "junit" | "tap" | "trace" | "html" -> enum value, or -EINVAL. */
int render_format_from_name(const char *name);
/* The name of a format, NULL if out of range. */
const char *render_format_name(enum render_format fmt);
/* The usual file name suffix: ".txt", ".json", ".xml", ".tap", ".trace.json", ".html". */
const char *render_format_suffix(enum render_format fmt);

/* Render doc in fmt into a new NUL-terminated string (free() it). o may be NULL.
 * Returns 0, -EINVAL (bad format or doc not an object) or -ENOMEM. */
int render(const json_t *doc, enum render_format fmt, const struct render_options *o, char **ret_text);

/* Render and write to path atomically (temporary file + rename), or to stdout
 * when path is "-". Returns 0 or -errno. */
int render_to_file(const json_t *doc, enum render_format fmt, const struct render_options *o,
		   const char *path);

/* Render and write to an open stream. Returns 0 or -errno. */
int render_to_stream(const json_t *doc, enum render_format fmt, const struct render_options *o, FILE *f);

/* Whether the text report on fd should be coloured. mode is the --color value:
 * "always" -> 1, "never" -> 0, "auto" or NULL -> isatty(fd) && TERM is set and
 * not "dumb" && NO_COLOR unset or empty (no-color.org). The flag beats the
 * environment. Returns 1, 0, or -EINVAL for an unknown mode. */
int render_color_wanted(const char *mode, int fd);

/* Load result.json: path is the file itself or a run directory containing it.
 * Returns 0, -errno from open/read, or -EBADMSG when it is not JSON (or not an
 * object). */
int render_load(const char *path, json_t **ret_doc);
