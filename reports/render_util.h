#pragma once
/* Helpers shared by the renderers (reports/render_*.c): walking a result
 * document that may be partial, making untrusted strings safe for terminals,
 * XML, HTML and YAML, and C-locale number formatting. Not part of the public
 * API (reports/render.h). */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reports/render.h"
#include "util/strbuf.h"

/* --- the output writer shared by every renderer ---------------------------- */

/* Appends to out and keeps the first error: after a failure every later write
 * is a no-op, so a renderer checks r once at the end instead of after each
 * call. */
struct render_writer {
	struct strbuf *out;
	int r; /* 0, or the first -errno */
};
#define RENDER_WRITER(sb) ((struct render_writer){ .out = (sb), .r = 0 })

/* Record an error from elsewhere (a helper strbuf, jansson): the first wins. */
void render_fail(struct render_writer *w, int r);
/* Trusted text (markup, format strings of our own); NULL appends nothing. */
void render_put(struct render_writer *w, const char *s);
void render_putn(struct render_writer *w, const char *s, size_t len);
void render_putf(struct render_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Untrusted text through render_clean() (flags: CLEAN_*); NULL appends nothing. */
void render_put_clean(struct render_writer *w, const char *s, size_t len, unsigned flags);
/* Untrusted text through render_xml_escape(); NULL appends nothing. */
void render_put_xml(struct render_writer *w, const char *s, size_t len, bool attr);
/* The same for a NUL-terminated string, as element content. */
void render_put_xml_str(struct render_writer *w, const char *s);
/* On one line, at most max_chars code points (an ellipsis when cut), escaped. */
void render_put_xml_short(struct render_writer *w, const char *s, size_t max_chars);
/* Untrusted text as a YAML double-quoted scalar; NULL is "". */
void render_put_yaml(struct render_writer *w, const char *s, size_t len);
/* v as compact JSON (JSON_COMPACT | flags); takes the reference to v. */
void render_put_json_new(struct render_writer *w, json_t *v, size_t flags);

/* --- the per-format backends, dispatched by render() ---------------------- */
int render_text_doc(const json_t *doc, const struct render_options *o, struct strbuf *out);
int render_json_doc(const json_t *doc, const struct render_options *o, struct strbuf *out);
int render_junit_doc(const json_t *doc, const struct render_options *o, struct strbuf *out);
int render_tap_doc(const json_t *doc, const struct render_options *o, struct strbuf *out);
int render_trace_doc(const json_t *doc, const struct render_options *o, struct strbuf *out);
int render_html_doc(const json_t *doc, const struct render_options *o, struct strbuf *out);
/* The HTML report's process tree of one cell, an <svg> (render_html_tree.c);
 * cell_index makes its marker ids unique in the page. */
void render_html_tree(struct render_writer *w, const json_t *cell, size_t cell_index);

/* A verdict as plain text (no colour, no indent): its `text` when present, else
 * composed from summary, chain, resource, evidence, stacks and remedy, under a
 * "Verdict CLASS: title" line when heading is set. Used by JUnit and HTML. */
int render_verdict_plain(const json_t *verdict, bool heading, struct strbuf *out);

/* --- document walking ------------------------------------------------------ */

/* The cells of a document: its `scenarios` array, or [doc] when doc is itself a
 * cell (a watch document without `scenarios`). Always a new array reference. */
json_t *render_cells(const json_t *doc);

enum cell_status {
	CELL_PASS,
	CELL_FAIL,  /* expectation not met */
	CELL_ERROR, /* infra_error: the cell could not run */
	CELL_SKIP,  /* optional `skipped` reason */
};
enum cell_status render_cell_status(const json_t *cell);
const char *render_cell_status_word(enum cell_status s); /* "PASS" "FAIL" "ERROR" "SKIP" */

/* Hangs named in a cell: found_hangs, else verdicts with a hang class; a cell
 * whose outcome is "hang" counts at least once even without a verdict. */
size_t render_cell_hangs(const json_t *cell);

struct render_counts {
	size_t cells, passed, failed, errors, skipped;
	size_t hangs;  /* sum of render_cell_hangs(): verdicts of hang classes */
	size_t unexplained; /* cells that hung (timed out) with no such verdict */
	size_t leaked; /* sum of cell leaked */
	uint64_t duration_ns; /* sum of cell durations */
};
void render_count(const json_t *cells, struct render_counts *ret);

/* The document-level infrastructure error (top-level `infra_error` or `error`
 * string), NULL if none. */
const char *render_doc_infra_error(const json_t *doc);


/* How an actor ended, for colours and labels. */
enum actor_end {
	ACTOR_END_UNKNOWN,
	ACTOR_END_OK,	   /* exit code 0 */
	ACTOR_END_ERROR,   /* non-zero exit code */
	ACTOR_END_SIGNAL,  /* ended by a signal other than SIGKILL */
	ACTOR_END_KILLED,  /* SIGKILL */
	ACTOR_END_ZOMBIE,  /* exited, never reaped */
	ACTOR_END_RUNNING, /* never seen to exit */
	_ACTOR_END_MAX,
};
/* An actor with `zombie: true` (or `state: "Z"`) is a zombie whatever its
 * exit status; else by status, else exited without a reap is a zombie. */
enum actor_end render_actor_end(const json_t *actor);
/* Whether the actor has a ready handshake (forkscope's actors: kind "actor"
 * or no kind). Plain processes of a watch run, the capture host and daemons
 * have none: they run from spawn to exit, they are never "starting". */
bool render_actor_has_handshake(const json_t *actor);
/* CSS-class-like key: "ok" "error" "signal" "killed" "zombie" "running" "unknown". */
const char *render_actor_end_key(enum actor_end e);
/* A short label: "exit 0", "exit 2", "SIGTERM", "SIGKILL", "zombie" (with its
 * status when known: "zombie, exit 0"), "never ended". */
void render_actor_end_label(const json_t *actor, char *buf, size_t size);

/* The end of the cell's time axis: max of duration_ns and every actor time. */
uint64_t render_cell_end_ns(const json_t *cell);

/* The actor whose pid is pid, NULL if none. */
const json_t *render_actor_by_pid(const json_t *cell, int64_t pid);
/* Index in actors[] of the parent of actors[i]: by `parent` id, else by ppid;
 * -1 for a root. */
long render_actor_parent_index(const json_t *actors, size_t i);

/* A deep copy of v whose strings are valid UTF-8 (invalid bytes -> U+FFFD), for
 * documents built in memory with unchecked strings that json_dumps refuses. */
json_t *render_sanitized_copy(const json_t *v);

/* --- safe strings ---------------------------------------------------------- */

enum {
	CLEAN_ONE_LINE = 1 << 0, /* newlines and tabs become spaces, runs of spaces kept */
};
/* Append s with ANSI escape sequences (CSI, OSC, two-byte ESC) removed, C0/C1
 * controls dropped except tab and LF (CR LF -> LF, lone CR -> LF), DEL and bidi
 * embedding/override/isolate controls (U+202A-E, U+2066-9) dropped, invalid
 * UTF-8 and U+FFFE/U+FFFF replaced by U+FFFD. The result is valid UTF-8 that
 * XML 1.0 accepts and that cannot drive or reorder a terminal. */
int render_clean(struct strbuf *out, const char *s, size_t len, unsigned flags);
/* Cleaned and escaped for XML/HTML text (& < > " '). With attr, also \n, \t as
 * character references so attribute-value normalisation keeps them. */
int render_xml_escape(struct strbuf *out, const char *s, size_t len, bool attr);
/* Convenience for NUL-terminated strings; NULL appends nothing. */
int render_xml(struct strbuf *out, const char *s);
int render_xml_attr(struct strbuf *out, const char *s);

/* One word of a command line, cleaned (one line) and quoted the way a POSIX
 * shell would read it back: as is when made of [A-Za-z0-9_@%+=:,./-] only,
 * else in single quotes ('\'' for a quote inside); '' for empty. */
int render_shell_word(struct strbuf *out, const char *s, size_t len);

/* Cleaned and written as a YAML/JSON-compatible double-quoted scalar. */
int render_yaml_quoted(struct strbuf *out, const char *s, size_t len);

/* At most max bytes of already-clean text s, cut on a UTF-8 boundary; when cut,
 * a marker "[... N bytes truncated ...]" says so. keep_end keeps the tail
 * (output tails), else the head. */
int render_clip(struct strbuf *out, const char *s, size_t len, size_t max, bool keep_end);

/* --- numbers (never locale-formatted) -------------------------------------- */

/* "%.3f" seconds of ns, rounded to the millisecond: "3.012". */
char *render_seconds(uint64_t ns, char *buf, size_t size);
/* Milliseconds with up to 3 decimals, trailing zeros dropped: "12.5". */
char *render_ms(uint64_t ns, char *buf, size_t size);
/* duration_format() of a field, or "-" when it is missing. */
char *render_duration_field(const json_t *obj, const char *key, char *buf, size_t size);
