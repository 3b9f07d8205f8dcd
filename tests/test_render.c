/* Renderers (reports/render_*.c): golden files for every format and sample,
 * plus structural checks the goldens cannot make on their own: JUnit against
 * xmllint and the portable-subset XSD, the trace parsed back (every X has a
 * dur, flows paired, slices nest), the HTML's embedded JSON equal to the input
 * and its SVG well-formed, hostile strings neutralised everywhere.
 *
 * The samples (fixtures/results/NAME.json) are deterministic (fixed pids and
 * times) and renderers read no clock or environment, so goldens compare
 * byte for byte. Regenerate them after an intended change with
 *	FORKSCOPE_UPDATE_GOLDEN=1 meson test -C build render
 * and review the diff. On a mismatch the actual output is left in
 * render-actual/ under the test's working directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reports/render.h"
#include "reports/render_util.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"

extern char **environ;

static const char *const samples[] = { "basics", "catalogue", "watch", "watch-flat", "partial", "infra", "hostile", "waits" };
static const enum render_format all_formats[] = { RENDER_TEXT, RENDER_JSON, RENDER_JUNIT,
						  RENDER_TAP,  RENDER_TRACE, RENDER_HTML };

static const char *
results_dir(void)
{
	const char *d = getenv("FORKSCOPE_RESULTS_DIR");
	return d ? d : "fixtures/results";
}

static json_t *
load_sample(const char *name)
{
	char path[4096];
	json_t *doc = NULL;
	(void) snprintf(path, sizeof(path), "%s/%s.json", results_dir(), name);
	int r = render_load(path, &doc);
	cr_assert_eq(r, 0, "render_load %s: %s", path, strerror(-r));
	return doc;
}

static char *
render_or_die(const json_t *doc, enum render_format fmt, int color)
{
	struct render_options o = { .color = color };
	char *text = NULL;
	int r = render(doc, fmt, &o, &text);
	cr_assert_eq(r, 0, "render %s: %s", render_format_name(fmt), strerror(-r));
	cr_assert_not_null(text);
	return text;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	cr_assert_eq(fclose(f), 0);
}

/* Compare with golden/NAME<suffix>; FORKSCOPE_UPDATE_GOLDEN=1 rewrites it. */
static void
check_golden(const char *name, const char *suffix, const char *text)
{
	char path[4096];
	(void) snprintf(path, sizeof(path), "%s/golden/%s%s", results_dir(), name, suffix);
	const char *update = getenv("FORKSCOPE_UPDATE_GOLDEN");
	if (update && strcmp(update, "1") == 0) {
		write_file(path, text);
		return;
	}
	char *golden = NULL;
	size_t len = 0;
	int r = read_file_alloc(path, &golden, &len);
	cr_assert_eq(r, 0, "read golden %s: %s (FORKSCOPE_UPDATE_GOLDEN=1 creates it)", path, strerror(-r));
	if (len != strlen(text) || memcmp(golden, text, len) != 0) {
		char actual[4096];
		(void) mkdir("render-actual", 0755);
		(void) snprintf(actual, sizeof(actual), "render-actual/%s%s", name, suffix);
		write_file(actual, text);
		size_t line = 1, i = 0;
		for (; i < len && text[i] && golden[i] == text[i]; i++)
			if (text[i] == '\n')
				line++;
		cr_expect_fail("%s differs from %s at line %zu; actual output in %s (diff them, or regenerate with "
			"FORKSCOPE_UPDATE_GOLDEN=1)",
			name, path, line, actual);
	}
	free(golden);
}

static void
golden_all(enum render_format fmt)
{
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *doc = load_sample(samples[i]);
		char *text = render_or_die(doc, fmt, 0);
		check_golden(samples[i], render_format_suffix(fmt), text);
		free(text);
		json_decref(doc);
	}
}

Test(render_golden, text) { golden_all(RENDER_TEXT); }
Test(render_golden, json) { golden_all(RENDER_JSON); }
Test(render_golden, junit) { golden_all(RENDER_JUNIT); }
Test(render_golden, tap) { golden_all(RENDER_TAP); }
Test(render_golden, trace) { golden_all(RENDER_TRACE); }
Test(render_golden, html) { golden_all(RENDER_HTML); }

/* --verbose: the details of every cell, passing ones too; without it a
 * cell that met its expectation is one line (issue 15: 851 lines for an
 * all-pass catalogue). */
Test(render_golden, text_verbose)
{
	json_t *doc = load_sample("catalogue");
	struct render_options o = { .verbose = 1 };
	char *verbose = NULL, *quiet = NULL;
	cr_assert_eq(render(doc, RENDER_TEXT, &o, &verbose), 0);
	o.verbose = 0;
	cr_assert_eq(render(doc, RENDER_TEXT, &o, &quiet), 0);
	check_golden("catalogue", ".verbose.txt", verbose);
	cr_expect_gt(strlen(verbose), strlen(quiet), "verbose shows more");
	/* the passing expected hang keeps its verdict on its one line */
	cr_expect_not_null(strstr(quiet, "verdict eof-never"));
	cr_expect_null(strstr(quiet, "Stacks of the threads involved:\n    root (pid 4300)"),
		       "no stacks of a cell that passed without --verbose");
	free(verbose);
	free(quiet);
	json_decref(doc);
}

Test(render_golden, text_color)
{
	json_t *doc = load_sample("catalogue");
	char *text = render_or_die(doc, RENDER_TEXT, 1);
	check_golden("catalogue", ".color.txt", text);
	cr_expect_not_null(strstr(text, "\033[1;31mFAIL"), "FAIL is red");
	free(text);
	json_decref(doc);
}

/* --- running tools --------------------------------------------------------- */

/* Run argv with stdout and stderr to /dev/null; exit status, or -1 if it could not run. */
static int
run_quiet(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;
	(void) posix_spawn_file_actions_init(&fa);
	(void) posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	(void) posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	(void) posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -1;
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool
have_xmllint(void)
{
	char *argv[] = { "xmllint", "--version", NULL };
	return run_quiet(argv) == 0;
}

static void
tmp_write(char *path_template, const char *text)
{
	int fd = mkostemps(path_template, strchr(path_template, '.') ? (int) strlen(strchr(path_template, '.')) : 0, O_CLOEXEC);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(write_full(fd, text, strlen(text)), 0);
	(void) close(fd);
}

static void
xmllint_ok(const char *text, const char *schema, const char *what)
{
	char path[] = "/tmp/forkscope-render-XXXXXX.xml";
	tmp_write(path, text);
	char *with_schema[] = { "xmllint", "--noout", "--nonet", "--schema", (char *) schema, path, NULL };
	char *plain[] = { "xmllint", "--noout", "--nonet", path, NULL };
	int st = run_quiet(schema ? with_schema : plain);
	cr_expect_eq(st, 0, "xmllint rejects %s (kept in %s)", what, path);
	if (st == 0)
		(void) unlink(path);
}

Test(render_junit, xmllint_and_xsd)
{
	if (!have_xmllint())
		cr_skip_test("xmllint not installed (Debian: libxml2-utils)");
	char xsd[4096];
	(void) snprintf(xsd, sizeof(xsd), "%s/junit-portable.xsd", results_dir());
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *doc = load_sample(samples[i]);
		char *text = render_or_die(doc, RENDER_JUNIT, 0);
		xmllint_ok(text, NULL, samples[i]);
		xmllint_ok(text, xsd, samples[i]);
		free(text);
		json_decref(doc);
	}
}

Test(render_junit, counts_and_cases)
{
	json_t *doc = load_sample("catalogue");
	char *x = render_or_die(doc, RENDER_JUNIT, 0);
	cr_expect_not_null(strstr(x, "<testsuites name=\"forkscope\" tests=\"8\" failures=\"1\" errors=\"1\" "
				     "skipped=\"0\" time=\"12.707\">"),
			   "%s", x);
	cr_expect_not_null(strstr(x, "<testcase classname=\"eof-never\" name=\"backend=mtf,fixes.fd_scrub=on#1\""));
	/* The message says why: the mismatch, then the verdict. */
	cr_expect_not_null(strstr(x, "<failure type=\"hang\" message=\"expected outcome ok, got hang; verdict pipe-full: "
				     "worker-3 (pid 4343) waits for room in pipe:[77012]"));
	cr_expect_not_null(strstr(x, "<error type=\"infra_error\""));
	cr_expect_not_null(strstr(x, "time=\"3.430\""));
	free(x);
	json_decref(doc);
}

/* A watch run (issue 15): one stable classname, the command as the test name,
 * the verdict in the failure message. */
Test(render_junit, watch_names)
{
	json_t *doc = load_sample("watch");
	char *x = render_or_die(doc, RENDER_JUNIT, 0);
	cr_expect_not_null(strstr(x, "<testsuite name=\"forkscope watch\""), "%s", x);
	cr_expect_not_null(strstr(x, "<testcase classname=\"forkscope.watch\" name=\"make check\""), "%s", x);
	cr_expect_not_null(strstr(x, "message=\"expected outcome ok, got hang; verdict pipe-full: pytest (pid 5101)"), "%s", x);
	free(x);
	json_decref(doc);

	/* A long command is cut, on a character, with an ellipsis. */
	doc = load_sample("watch-flat");
	struct strbuf longname = STRBUF_INIT;
	for (int i = 0; i < 100; i++)
		(void) strbuf_append(&longname, "\xc3\xa9" "ab ");
	json_object_set_new(doc, "name", json_string(longname.data));
	x = render_or_die(doc, RENDER_JUNIT, 0);
	const char *name = strstr(x, "classname=\"forkscope.watch\" name=\"");
	cr_assert_not_null(name, "%s", x);
	name += strlen("classname=\"forkscope.watch\" name=\"");
	const char *end = strchr(name, '"');
	cr_assert_not_null(end);
	size_t chars = 0;
	for (const char *p = name; p < end; p++)
		chars += ((unsigned char) *p & 0xc0) != 0x80;
	cr_expect_eq(chars, 201, "200 code points and the ellipsis");
	cr_expect_eq(strncmp(end - 3, "\xe2\x80\xa6", 3), 0);
	strbuf_free(&longname);
	free(x);
	json_decref(doc);
}

/* --- TAP ------------------------------------------------------------------- */

Test(render_tap, plan_and_points)
{
	json_t *doc = load_sample("catalogue");
	char *t = render_or_die(doc, RENDER_TAP, 0);
	cr_expect_eq(strncmp(t, "TAP version 13\n1..8\n", 19), 0, "%s", t);
	cr_expect_not_null(strstr(t, "\nnot ok 5 - pipe-full[capture=pipe,fixes.stdio=inherit]\n  ---\n"));
	cr_expect_not_null(strstr(t, "\nok 3 - eof-never[backend=mtf,fixes.fd_scrub=on] (repeat 1)\n"));
	free(t);
	json_decref(doc);

	doc = load_sample("infra");
	t = render_or_die(doc, RENDER_TAP, 0);
	cr_expect_str_eq(t, "TAP version 13\nBail out! create run directory /nonexistent/run: No such file or directory\n");
	free(t);
	json_decref(doc);

	doc = json_pack("{s:i,s:[]}", "schema_version", 1, "scenarios");
	t = render_or_die(doc, RENDER_TAP, 0);
	cr_expect_str_eq(t, "TAP version 13\n1..0 # SKIP no cells in this document\n");
	free(t);
	json_decref(doc);
}

/* --- text ------------------------------------------------------------------ */

Test(render_text, closing_lines)
{
	json_t *doc = load_sample("catalogue");
	char *t = render_or_die(doc, RENDER_TEXT, 0);
	size_t len = strlen(t);
	const char *tail = "1 process leaked.\nFound 3 hangs.\n6 passed, 1 failed, 1 errors\n";
	cr_assert_geq(len, strlen(tail));
	cr_expect_str_eq(t + len - strlen(tail), tail);
	cr_expect_null(strchr(t, '\033'), "no colour unless asked");
	free(t);
	json_decref(doc);

	doc = load_sample("basics");
	t = render_or_die(doc, RENDER_TEXT, 0);
	len = strlen(t);
	cr_expect_str_eq(t + len - strlen("\n3 passed, 0 failed\n"), "\n3 passed, 0 failed\n");
	cr_expect_null(strstr(t, "Found"), "no hang line without hangs");
	free(t);
	json_decref(doc);
}

/* --- trace ----------------------------------------------------------------- */

struct xslice {
	double ts, end;
};

static int
cmp_slice(const void *a, const void *b)
{
	const struct xslice *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->end > y->end ? -1 : x->end < y->end ? 1 : 0; /* outer first */
}

static void
check_trace(const char *name, const char *text)
{
	json_error_t err;
	json_t *t = json_loads(text, 0, &err);
	cr_assert_not_null(t, "%s: trace is not JSON: %s at %d:%d", name, err.text, err.line, err.column);
	json_t *events = json_object_get(t, "traceEvents");
	cr_assert(json_is_array(events), "%s: traceEvents", name);
	cr_expect_str_eq(json_string_value(json_object_get(t, "displayTimeUnit")), "ms");
	cr_expect(json_is_object(json_object_get(t, "otherData")));
	json_t *flows = json_object();
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *ph = json_string_value(json_object_get(ev, "ph"));
		cr_assert_not_null(ph, "%s: event %zu has no ph", name, i);
		cr_expect(json_is_string(json_object_get(ev, "name")), "%s: event %zu has no name", name, i);
		cr_expect(json_is_number(json_object_get(ev, "ts")), "%s: event %zu ts not numeric", name, i);
		cr_expect(json_is_integer(json_object_get(ev, "pid")) && json_is_integer(json_object_get(ev, "tid")),
			  "%s: event %zu pid/tid", name, i);
		if (strcmp(ph, "X") == 0) {
			json_t *dur = json_object_get(ev, "dur");
			cr_expect(json_is_number(dur) && json_number_value(dur) >= 0, "%s: X event %zu without dur", name, i);
		} else if (strcmp(ph, "i") == 0) {
			const char *s = json_string_value(json_object_get(ev, "s"));
			cr_expect(s && (strcmp(s, "t") == 0 || strcmp(s, "p") == 0 || strcmp(s, "g") == 0));
			cr_expect_null(json_object_get(ev, "bind_id"), "instants cannot carry flows");
		} else
			cr_expect(strcmp(ph, "M") == 0, "%s: unexpected ph %s", name, ph);
		json_t *bind = json_object_get(ev, "bind_id");
		if (bind) {
			char key[64];
			bool out = json_is_true(json_object_get(ev, "flow_out")), in = json_is_true(json_object_get(ev, "flow_in"));
			cr_expect(out != in, "%s: a flow end is either out or in", name);
			(void) snprintf(key, sizeof(key), "%lld%s", (long long) json_integer_value(bind), out ? "out" : "in");
			cr_expect_null(json_object_get(flows, key), "%s: flow %s twice", name, key);
			(void) json_object_set_new(flows, key, json_true());
		}
	}
	const char *key;
	json_t *v;
	json_object_foreach(flows, key, v) {
		char other[64];
		size_t n = strlen(key);
		bool out = n > 3 && strcmp(key + n - 3, "out") == 0;
		(void) snprintf(other, sizeof(other), "%.*s%s", (int) (n - (out ? 3 : 2)), key, out ? "in" : "out");
		cr_expect_not_null(json_object_get(flows, other), "%s: flow %s has no other end", name, key);
	}
	/* X slices on one track nest strictly (Perfetto would push overlaps to
	 * another track or drop them). Instants are zero-length and always nest. */
	json_t *tracks = json_object();
	json_array_foreach(events, i, ev) {
		if (strcmp(json_string_value(json_object_get(ev, "ph")), "X") != 0)
			continue;
		char tid[32];
		(void) snprintf(tid, sizeof(tid), "%lld", (long long) json_integer_value(json_object_get(ev, "tid")));
		json_t *list = json_object_get(tracks, tid);
		if (!list) {
			list = json_array();
			(void) json_object_set_new(tracks, tid, list);
		}
		(void) json_array_append(list, ev);
	}
	json_object_foreach(tracks, key, v) {
		size_t n = json_array_size(v);
		struct xslice *s = calloc(n, sizeof(*s));
		struct xslice stack[64];
		size_t depth = 0;
		json_array_foreach(v, i, ev) {
			s[i].ts = json_number_value(json_object_get(ev, "ts"));
			s[i].end = s[i].ts + json_number_value(json_object_get(ev, "dur"));
		}
		qsort(s, n, sizeof(*s), cmp_slice);
		for (i = 0; i < n; i++) {
			while (depth > 0 && stack[depth - 1].end <= s[i].ts + 1e-6 && !(stack[depth - 1].ts == s[i].ts))
				depth--;
			while (depth > 0 && s[i].ts >= stack[depth - 1].end - 1e-6 && stack[depth - 1].end > stack[depth - 1].ts)
				depth--;
			if (depth > 0)
				cr_expect(s[i].end <= stack[depth - 1].end + 1e-6,
					  "%s: track %s: slice at %.3f..%.3f overlaps its parent %.3f..%.3f", name, key,
					  s[i].ts, s[i].end, stack[depth - 1].ts, stack[depth - 1].end);
			if (depth < 64)
				stack[depth++] = s[i];
		}
		free(s);
	}
	json_decref(tracks);
	json_decref(flows);
	json_decref(t);
}

Test(render_trace, parses_back)
{
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *doc = load_sample(samples[i]);
		char *text = render_or_die(doc, RENDER_TRACE, 0);
		check_trace(samples[i], text);
		free(text);
		json_decref(doc);
	}
}

Test(render_trace, lifecycle_events)
{
	json_t *doc = load_sample("catalogue");
	char *t = render_or_die(doc, RENDER_TRACE, 0);
	cr_expect_not_null(strstr(t, "\"name\":\"hang detected\",\"ph\":\"i\""));
	cr_expect_not_null(strstr(t, "\"s\":\"g\""));
	cr_expect_not_null(strstr(t, "\"name\":\"SIGKILL sent\""));
	cr_expect_not_null(strstr(t, "\"name\":\"zombie\""));
	cr_expect_not_null(strstr(t, "\"flow_in\":true"));
	cr_expect_not_null(strstr(t, "eof-never[backend=mtf,fixes.fd_scrub=off] / registrar (pid 4303)"));
	free(t);
	json_decref(doc);
	/* A process never reaped is closed at the cell end and says so. */
	doc = load_sample("watch");
	t = render_or_die(doc, RENDER_TRACE, 0);
	cr_expect_not_null(strstr(t, "\"unfinished\":true"));
	free(t);
	json_decref(doc);
}

/* --- HTML ------------------------------------------------------------------ */

static json_t *
html_embedded(const char *html)
{
	const char *open = "<script type=\"application/json\" id=\"forkscope-data\">";
	const char *start = strstr(html, open);
	cr_assert_not_null(start, "embedded JSON missing");
	start += strlen(open);
	const char *end = strstr(start, "</script>");
	cr_assert_not_null(end);
	json_error_t err;
	json_t *doc = json_loadb(start, (size_t) (end - start), JSON_ALLOW_NUL, &err);
	cr_assert_not_null(doc, "embedded JSON does not parse: %s at %d:%d", err.text, err.line, err.column);
	return doc;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

Test(render_html, embedded_json_round_trips)
{
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *doc = load_sample(samples[i]);
		char *html = render_or_die(doc, RENDER_HTML, 0);
		json_t *back = html_embedded(html);
		cr_expect(json_equal(doc, back), "%s: embedded JSON differs from the input", samples[i]);
		/* Exactly our two script elements end; none inside the data. */
		cr_expect_eq(count(html, "</script"), 2, "%s", samples[i]);
		cr_expect_eq(count(html, "<script"), 2, "%s", samples[i]);
		cr_expect_eq(count(html, "<!--"), 0, "%s", samples[i]);
		cr_expect_eq(count(html, "http://"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""),
			     "%s: no network references", samples[i]);
		cr_expect_null(strstr(html, "https://"), "%s: no network references", samples[i]);
		json_decref(back);
		free(html);
		json_decref(doc);
	}
}

Test(render_html, svg_well_formed)
{
	if (!have_xmllint())
		cr_skip_test("xmllint not installed (Debian: libxml2-utils)");
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *doc = load_sample(samples[i]);
		char *html = render_or_die(doc, RENDER_HTML, 0);
		size_t n = 0;
		for (const char *p = html; (p = strstr(p, "<svg ")); n++) {
			const char *end = strstr(p, "</svg>");
			cr_assert_not_null(end);
			end += strlen("</svg>");
			char *svg = strndup(p, (size_t) (end - p));
			xmllint_ok(svg, NULL, samples[i]);
			free(svg);
			p = end;
		}
		json_t *cells = json_object_get(doc, "scenarios");
		size_t want = json_is_array(cells) ? json_array_size(cells) : 1;
		cr_expect_eq(n, 2 * want, "%s: a tree and a timeline per cell", samples[i]);
		free(html);
		json_decref(doc);
	}
}

Test(render_html, tree_has_wait_edges)
{
	json_t *doc = load_sample("catalogue");
	char *html = render_or_die(doc, RENDER_HTML, 0);
	cr_expect_not_null(strstr(html, "<svg class=\"tree\""));
	cr_expect_not_null(strstr(html, "<svg class=\"timeline\""));
	cr_expect_geq(count(html, "class=\"wait-edge\" d=\"M"), 7, "eof-never 2 + mutual-wait 3 + pipe-full 2");
	cr_expect_not_null(strstr(html, "<p class=\"hangs\">Found 3 hangs.</p>"));
	free(html);
	json_decref(doc);
}

/* Wait arrows go around process boxes (issue 15): every segment of every
 * arrow (orthogonal: M, H, V) stays out of every box of its tree, in every
 * sample. tests/render_html_check.sh measures the same in Chromium. */
struct box {
	double x, y, w, h;
};

static bool
segment_crosses(const struct box *b, double x1, double y1, double x2, double y2)
{
	double lx = MIN(x1, x2), hx = MAX(x1, x2), ly = MIN(y1, y2), hy = MAX(y1, y2);
	/* Touching an edge is allowed (arrows end at a box); inside is not. */
	return hx > b->x + 1 && lx < b->x + b->w - 1 && hy > b->y + 1 && ly < b->y + b->h - 1;
}

static size_t
arrows_crossing_boxes(const char *svg, const char *svg_end, size_t *ret_arrows)
{
	struct box boxes[64];
	size_t nb = 0, crossings = 0, arrows = 0;
	for (const char *p = svg; (p = strstr(p, "<g class=\"node")) && p < svg_end && nb < 64; p++) {
		const char *r = strstr(p, "<rect x=\"");
		struct box b;
		if (r && sscanf(r, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &b.x, &b.y, &b.w, &b.h) == 4)
			boxes[nb++] = b;
	}
	for (const char *p = svg; (p = strstr(p, "<path class=\"wait-edge\" d=\"")) && p < svg_end; p++) {
		const char *d = p + strlen("<path class=\"wait-edge\" d=\"");
		const char *close = strchr(d, '"');
		if (!close || strncmp(close, "\" marker-end=\"url(#wait-arrow-", 30) != 0 || !strstr(close, "><title>"))
			continue;
		if (strstr(close, "/>") && strstr(close, "/>") < strstr(close, "><title>"))
			continue; /* the legend's sample arrow */
		arrows++;
		double x = 0, y = 0;
		for (const char *c = d; c < close;) {
			char op = *c++;
			char *end;
			double a = strtod(c, &end), b2 = 0;
			cr_assert(end != c, "orthogonal path expected: %.*s", (int) (close - d), d);
			c = end;
			if (op == 'M') {
				b2 = strtod(c, &end);
				c = end;
				x = a;
				y = b2;
				continue;
			}
			cr_assert(op == 'H' || op == 'V', "orthogonal path expected: %.*s", (int) (close - d), d);
			double nx = op == 'H' ? a : x, ny = op == 'V' ? a : y;
			for (size_t k = 0; k < nb; k++)
				crossings += segment_crosses(&boxes[k], x, y, nx, ny);
			x = nx;
			y = ny;
		}
	}
	*ret_arrows = arrows;
	return crossings;
}

Test(render_html, wait_arrows_go_around_boxes)
{
	size_t total = 0;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *doc = load_sample(samples[i]);
		char *html = render_or_die(doc, RENDER_HTML, 0);
		for (const char *p = html; (p = strstr(p, "<svg class=\"tree\"")); p++) {
			const char *end = strstr(p, "</svg>");
			size_t arrows = 0;
			cr_expect_eq(arrows_crossing_boxes(p, end, &arrows), 0, "%s: a wait arrow crosses a box", samples[i]);
			total += arrows;
		}
		free(html);
		json_decref(doc);
	}
	cr_expect_geq(total, 7 + 7, "catalogue and waits have arrows to check (%zu)", total);
}

/* Honest labels (issue 15): the command line as a shell reads it back; plain
 * processes of a watch run are never "starting"; a process seen as a zombie
 * is drawn as one, with its status. */
Test(render_html, honest_labels)
{
	json_t *doc = load_sample("watch");
	char *html = render_or_die(doc, RENDER_HTML, 0);
	cr_expect_not_null(strstr(html, "<code class=\"cmdline\">forkscope watch --timeout 10 -- make check "
					"&#39;TESTS=test a.py&#39;</code>"));
	cr_expect_null(strstr(html, "class=\"ph-starting"), "no starting phase for kind process");
	cr_expect_not_null(strstr(html, "running (spawn \xe2\x86\x92 exit)"));
	cr_expect_not_null(strstr(html, "class=\"end-zombie\"/><text x=\"95.0\" y=\"209.0\" text-anchor=\"middle\">python3"),
			   "python3 exited (code 0) and was seen as a zombie: drawn as one");
	cr_expect_not_null(strstr(html, "pid 5102 \xc2\xb7 zombie, exit 0"));
	free(html);
	json_decref(doc);

	/* Forkscope's own actors keep their starting phase. */
	doc = load_sample("catalogue");
	html = render_or_die(doc, RENDER_HTML, 0);
	cr_expect_not_null(strstr(html, "class=\"ph-starting"));
	free(html);
	json_decref(doc);
}

Test(render_util, shell_words)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "make", "make" },
		{ "--timeout=10", "--timeout=10" },
		{ "a b", "'a b'" },
		{ "", "''" },
		{ "it's", "'it'\\''s'" },
		{ "$HOME", "'$HOME'" },
		{ "x\033[31my", "xy" },
		{ "two\nlines", "'two lines'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf sb = STRBUF_INIT;
		cr_assert_eq(render_shell_word(&sb, cases[i].in, strlen(cases[i].in)), 0);
		cr_expect_str_eq(sb.data ? sb.data : "", cases[i].out, "%s", cases[i].in);
		strbuf_free(&sb);
	}
}

/* Inherited-fd notes (issue 15): what the command inherited from its launcher
 * is said once, and not again for every descendant that holds it too; other
 * unexpected fds are said once each, with their holders (three, then a count). */
Test(render_text, fd_notes_grouped)
{
	json_t *cell = json_pack("{s:s,s:s,s:b,s:[]}", "name", "make check", "outcome", "hang", "passed", 0, "actors");
	json_t *actors = json_object_get(cell, "actors");
	for (int i = 0; i < 8; i++) {
		json_t *fds = json_array();
		/* fd 9 comes from the launcher (the root has it too). */
		json_array_append_new(fds, json_pack("{s:i,s:s,s:s}", "fd", 9, "target", "/ci/build.lock", "kind", "file"));
		if (i > 0)
			json_array_append_new(fds, json_pack("{s:i,s:s,s:s,s:s}", "fd", 251, "target", "pipe:[7001]", "kind",
							     "pipe", "detail", "write end"));
		json_array_append_new(actors, json_pack("{s:s,s:i,s:i,s:i,s:s,s:o}", "name", i ? "bash" : "make", "pid",
							100 + i, "ppid", i ? 100 : 1, "depth", i ? 1 : 0, "kind", "process",
							"fds_unexpected", fds));
	}
	json_t *doc = json_pack("{s:s,s:[o]}", "command", "watch", "scenarios", cell);
	char *text = render_or_die(doc, RENDER_TEXT, 0);
	cr_expect_not_null(strstr(text, "    ! make (pid 100) inherited from its launcher: fd 9 /ci/build.lock (file)\n"), "%s",
			   text);
	cr_expect_eq(count(text, "build.lock"), 1, "said once: %s", text);
	cr_expect_not_null(strstr(text, "    ! fd 251 pipe:[7001] (pipe, write end) inherited by bash (pid 101), bash (pid 102), "
					"bash (pid 103) and 4 more\n"),
			   "%s", text);
	cr_expect_eq(count(text, "pipe:[7001]"), 1, "%s", text);
	free(text);
	json_decref(doc);
}

/* --- hostile input ----------------------------------------------------------- */

static void
expect_clean(const char *what, const char *text)
{
	for (const unsigned char *p = (const unsigned char *) text; *p; p++)
		if (*p < 0x20 && *p != '\n' && *p != '\t')
			cr_expect_fail("%s: control byte 0x%02x at offset %zu", what, *p, (size_t) (p - (const unsigned char *) text));
	/* C1 CSI (U+009B), would drive some terminals; RLO reorders what is shown. */
	cr_expect_null(strstr(text, "\xc2\x9b"), "%s: C1 control", what);
	cr_expect_null(strstr(text, "\xe2\x80\xae"), "%s: bidi override", what);
}

Test(render_hostile, neutralised)
{
	json_t *doc = load_sample("hostile");
	for (size_t i = 0; i < sizeof(all_formats) / sizeof(all_formats[0]); i++) {
		enum render_format fmt = all_formats[i];
		char *text = render_or_die(doc, fmt, 0);
		/* JSON keeps the data (escaped); everything else must be clean. */
		if (fmt != RENDER_JSON)
			expect_clean(render_format_name(fmt), text);
		if (fmt == RENDER_JUNIT || fmt == RENDER_HTML)
			cr_expect_null(strstr(text, "</script><script>alert"), "%s: unescaped markup", render_format_name(fmt));
		if (fmt == RENDER_JUNIT)
			cr_expect_null(strstr(text, "]]>"), "junit: CDATA end passed through");
		free(text);
	}
	json_decref(doc);
}

static const char bad_utf8[] = "bad \xff\xfe utf8 \xc3 \xed\xa0\x80 surrogate \xf4\x90\x80\x80 \xe2\x82";

/* Every string of v gets invalid UTF-8 appended, as a document built in
 * memory with unchecked strings could have. */
static void
poison_strings(json_t *v)
{
	size_t i;
	const char *key;
	json_t *item;
	if (json_is_object(v)) {
		json_object_foreach(v, key, item) {
			if (json_is_string(item)) {
				char buf[4096];
				int n = snprintf(buf, sizeof(buf), "%s%s", json_string_value(item), bad_utf8);
				n = n < 0 ? 0 : n >= (int) sizeof(buf) ? (int) sizeof(buf) - 1 : n;
				(void) json_object_set_new_nocheck(v, key, json_stringn_nocheck(buf, (size_t) n));
			} else
				poison_strings(item);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			if (json_is_string(item))
				(void) json_array_set_new(v, i, json_stringn_nocheck(bad_utf8, sizeof(bad_utf8) - 1));
			else
				poison_strings(item);
		}
	}
}

static json_t *
invalid_utf8_doc(size_t output_bytes)
{
	json_t *doc = load_sample("catalogue");
	poison_strings(json_object_get(doc, "scenarios"));
	json_t *cell = json_array_get(json_object_get(doc, "scenarios"), 4);
	if (output_bytes) {
		char *out = malloc(output_bytes);
		for (size_t i = 0; i < output_bytes; i++)
			out[i] = i % 64 == 63 ? '\n' : "\033[31mxyz\xc3\xa9"[i % 10];
		(void) json_object_set_new(cell, "output_tail", json_stringn_nocheck(out, output_bytes));
		free(out);
	}
	return doc;
}

Test(render_hostile, invalid_utf8_in_memory)
{
	json_t *doc = invalid_utf8_doc(0);
	for (size_t i = 0; i < sizeof(all_formats) / sizeof(all_formats[0]); i++) {
		char *text = render_or_die(doc, all_formats[i], 0);
		cr_expect_not_null(strstr(text, "\xef\xbf\xbd"), "%s: U+FFFD for invalid bytes",
				   render_format_name(all_formats[i]));
		cr_expect_null(strstr(text, "\xff"), "%s", render_format_name(all_formats[i]));
		if (all_formats[i] == RENDER_JUNIT && have_xmllint())
			xmllint_ok(text, NULL, "junit with invalid UTF-8");
		if (all_formats[i] == RENDER_JSON || all_formats[i] == RENDER_TRACE) {
			json_t *back = json_loads(text, 0, NULL);
			cr_expect_not_null(back, "%s output parses", render_format_name(all_formats[i]));
			json_decref(back);
		}
		free(text);
	}
	json_decref(doc);
}

Test(render_hostile, huge_output_truncated)
{
	json_t *doc = invalid_utf8_doc(4 * 1024 * 1024);
	char *x = render_or_die(doc, RENDER_JUNIT, 0);
	cr_expect_lt(strlen(x), 512 * 1024, "junit stays small: %zu bytes", strlen(x));
	cr_expect_not_null(strstr(x, "bytes truncated ...]"));
	if (have_xmllint())
		xmllint_ok(x, NULL, "junit with huge output");
	free(x);
	char *h = render_or_die(doc, RENDER_HTML, 0);
	cr_expect_not_null(strstr(h, "bytes truncated ...]"));
	free(h);
	json_decref(doc);
}

/* --- robustness ------------------------------------------------------------ */

Test(render_robust, empty_and_odd_documents)
{
	static const char *const docs[] = {
		"{}",
		"{\"scenarios\": null}",
		"{\"scenarios\": [null, 1, \"x\", [], {}]}",
		"{\"scenarios\": [{\"actors\": [null, {\"parent\": 0, \"id\": 0}], \"verdicts\": [null, {\"chain\": 5}]}]}",
		"{\"outcome\": \"hang\", \"actors\": [{\"name\": \"a\", \"exit_ns\": 5, \"reap_ns\": 1}]}",
		"{\"schema_version\": 99, \"scenarios\": [{\"id\": \"x\", \"passed\": true, \"duration_ns\": 1e30}]}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_t *doc = json_loads(docs[i], 0, NULL);
		cr_assert_not_null(doc);
		for (size_t k = 0; k < sizeof(all_formats) / sizeof(all_formats[0]); k++) {
			char *text = render_or_die(doc, all_formats[k], 1);
			if (all_formats[k] == RENDER_TRACE)
				check_trace(docs[i], text);
			free(text);
		}
		json_decref(doc);
	}
	char *text = (char *) 0x1;
	cr_expect_eq(render(NULL, RENDER_TEXT, NULL, &text), -EINVAL);
	cr_expect_eq(text, (char *) 0x1, "ret_text untouched on failure");
	json_t *arr = json_array();
	cr_expect_eq(render(arr, RENDER_TEXT, NULL, &text), -EINVAL);
	cr_expect_eq(render(arr, (enum render_format) 42, NULL, &text), -EINVAL);
	json_decref(arr);
}

Test(render_robust, locale_independent)
{
	static const char *const comma_locales[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8",
						     "nl_NL.UTF-8", "ru_RU.UTF-8" };
	const char *used = NULL;
	for (size_t i = 0; i < sizeof(comma_locales) / sizeof(comma_locales[0]) && !used; i++)
		if (setlocale(LC_ALL, comma_locales[i]))
			used = comma_locales[i];
	if (!used)
		cr_skip_test("no locale with a decimal comma installed (e.g. de_DE.UTF-8)");
	char probe[16];
	(void) snprintf(probe, sizeof(probe), "%.1f", 1.5);
	cr_assert_str_eq(probe, "1,5", "%s should use a decimal comma", used);
	json_t *doc = load_sample("catalogue");
	for (size_t k = 0; k < sizeof(all_formats) / sizeof(all_formats[0]); k++) {
		char *text = render_or_die(doc, all_formats[k], 0);
		check_golden("catalogue", render_format_suffix(all_formats[k]), text);
		free(text);
	}
	json_decref(doc);
	(void) setlocale(LC_ALL, "C");
}

/* --- API helpers ------------------------------------------------------------ */

Test(render_api, format_names)
{
	static const char *const names[] = { "text", "json", "junit", "tap", "trace", "html" };
	for (int i = 0; i < (int) (sizeof(names) / sizeof(names[0])); i++) {
		cr_expect_eq(render_format_from_name(names[i]), i);
		cr_expect_str_eq(render_format_name((enum render_format) i), names[i]);
		cr_expect_not_null(render_format_suffix((enum render_format) i));
	}
	cr_expect_eq(render_format_from_name("xml"), -EINVAL);
	cr_expect_eq(render_format_from_name(NULL), -EINVAL);
	cr_expect_null(render_format_name(_RENDER_FORMAT_MAX));
}

Test(render_api, color_wanted)
{
	int pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	int tty = -1;
	if (pty >= 0 && grantpt(pty) == 0 && unlockpt(pty) == 0)
		tty = open(ptsname(pty), O_RDWR | O_NOCTTY | O_CLOEXEC);
	int pipefd[2];
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);

	(void) setenv("TERM", "xterm-256color", 1);
	(void) unsetenv("NO_COLOR");
	cr_expect_eq(render_color_wanted("always", pipefd[1]), 1, "the flag beats isatty");
	cr_expect_eq(render_color_wanted("never", tty >= 0 ? tty : pipefd[1]), 0);
	cr_expect_eq(render_color_wanted("auto", pipefd[1]), 0, "not a terminal");
	cr_expect_eq(render_color_wanted("sometimes", pipefd[1]), -EINVAL);
	if (tty >= 0) {
		cr_expect_eq(render_color_wanted("auto", tty), 1);
		cr_expect_eq(render_color_wanted(NULL, tty), 1, "NULL means auto");
		(void) setenv("NO_COLOR", "", 1);
		cr_expect_eq(render_color_wanted("auto", tty), 1, "empty NO_COLOR does not count");
		(void) setenv("NO_COLOR", "1", 1);
		cr_expect_eq(render_color_wanted("auto", tty), 0);
		cr_expect_eq(render_color_wanted("always", tty), 1, "the flag beats NO_COLOR");
		(void) unsetenv("NO_COLOR");
		(void) setenv("TERM", "dumb", 1);
		cr_expect_eq(render_color_wanted("auto", tty), 0);
		(void) unsetenv("TERM");
		cr_expect_eq(render_color_wanted("auto", tty), 0);
		(void) close(tty);
	}
	if (pty >= 0)
		(void) close(pty);
	(void) close(pipefd[0]);
	(void) close(pipefd[1]);
}

Test(render_api, load_dir_and_file)
{
	char dir[] = "/tmp/forkscope-render-load-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[256];
	json_t *doc = NULL;
	cr_expect_eq(render_load(dir, &doc), -ENOENT, "no result.json yet");
	(void) snprintf(path, sizeof(path), "%s/result.json", dir);
	write_file(path, "{\"schema_version\": 1, \"scenarios\": []}\n");
	cr_expect_eq(render_load(dir, &doc), 0);
	cr_expect_eq(json_integer_value(json_object_get(doc, "schema_version")), 1);
	json_decref(doc);
	doc = NULL;
	cr_expect_eq(render_load(path, &doc), 0);
	json_decref(doc);
	write_file(path, "{\"a\": 1, \"a\": 2}");
	doc = NULL;
	cr_expect_eq(render_load(path, &doc), -EBADMSG, "duplicate keys are ambiguous");
	write_file(path, "[1, 2]");
	cr_expect_eq(render_load(path, &doc), -EBADMSG, "not an object");
	cr_expect_null(doc, "ret_doc untouched on failure");

	/* render_to_file writes atomically. */
	json_t *small = json_pack("{s:i,s:[]}", "schema_version", 1, "scenarios");
	(void) snprintf(path, sizeof(path), "%s/report.tap", dir);
	cr_expect_eq(render_to_file(small, RENDER_TAP, NULL, path), 0);
	char *back = NULL;
	size_t len = 0;
	cr_expect_eq(read_file_alloc(path, &back, &len), 0);
	cr_expect_str_eq(back, "TAP version 13\n1..0 # SKIP no cells in this document\n");
	free(back);
	json_decref(small);
	(void) unlink(path);
	(void) snprintf(path, sizeof(path), "%s/result.json", dir);
	(void) unlink(path);
	(void) rmdir(dir);
}

/* The writer every renderer shares: the first error sticks, later writes are
 * no-ops, untrusted text goes through the cleaning and escaping helpers. */
Test(render_writer, first_error_sticks)
{
	struct strbuf sb = STRBUF_INIT;
	struct render_writer w = RENDER_WRITER(&sb);
	render_put(&w, "a");
	render_putf(&w, "%d", 1);
	render_putn(&w, "bcd", 1);
	render_put(&w, NULL);
	cr_assert_eq(w.r, 0);
	cr_assert_str_eq(sb.data, "a1b");
	render_fail(&w, -EIO);
	render_fail(&w, -ENOMEM);
	cr_assert_eq(w.r, -EIO, "the first error wins");
	render_put(&w, "lost");
	render_put_xml(&w, "<", 1, false);
	render_put_json_new(&w, json_integer(1), 0);
	cr_assert_str_eq(sb.data, "a1b", "nothing written after an error");
	strbuf_free(&sb);

	w = RENDER_WRITER(&sb);
	render_put_json_new(&w, NULL, 0);
	cr_assert_eq(w.r, -ENOMEM, "a value that could not be built");
	strbuf_free(&sb);
}

Test(render_writer, untrusted_text)
{
	struct strbuf sb = STRBUF_INIT;
	struct render_writer w = RENDER_WRITER(&sb);
	render_put_clean(&w, "x\033[31my\nz", 9, CLEAN_ONE_LINE);
	render_put(&w, "|");
	render_put_xml(&w, "<a href=\"&\">", 12, true);
	render_put(&w, "|");
	render_put_yaml(&w, "say \"hi\"", 8);
	render_put(&w, "|");
	render_put_yaml(&w, NULL, 0);
	render_put(&w, "|");
	render_put_json_new(&w, json_pack("{s:i}", "n", 1), 0);
	cr_assert_eq(w.r, 0);
	cr_assert_str_eq(sb.data, "xy z|&lt;a href=&quot;&amp;&quot;&gt;|\"say \\\"hi\\\"\"|\"\"|{\"n\":1}");
	strbuf_free(&sb);
}

/* util/jsonutil accessors the renderers read through. */
Test(render_json_access, ns_and_strn)
{
	json_t *o = json_pack("{s:I,s:i,s:f,s:f,s:s,s:n,s:s#}", "big", (json_int_t) 9000000000LL, "neg", -1, "real",
			      2.75, "huge", 1e300, "str", "12", "null", "nul", "a\0b", (size_t) 3);
	cr_assert_not_null(o);
	uint64_t v = 77;
	cr_assert(json_ns(o, "big", &v));
	cr_assert_eq(v, 9000000000ULL);
	cr_assert(json_ns(o, "real", &v));
	cr_assert_eq(v, 2, "a real is truncated");
	v = 77;
	cr_assert_not(json_ns(o, "neg", &v));
	cr_assert_not(json_ns(o, "huge", &v), "beyond uint64_t");
	cr_assert_not(json_ns(o, "str", &v), "a string is not a number");
	cr_assert_not(json_ns(o, "null", &v));
	cr_assert_not(json_ns(o, "missing", &v));
	cr_assert_not(json_ns(NULL, "big", &v));
	cr_assert_eq(v, 77, "untouched when absent");

	size_t len = 0;
	const char *s = json_strn(o, "nul", &len);
	cr_assert_not_null(s);
	cr_assert_eq(len, 3, "the full length, NUL included");
	cr_assert_eq(memcmp(s, "a\0b", 3), 0);
	cr_assert_str_eq(json_strn(o, "str", NULL), "12");
	cr_assert_null(json_strn(o, "big", &len));
	cr_assert_null(json_strn(o, "missing", &len));
	cr_assert(json_has_int(o, "neg"));
	cr_assert_not(json_has_int(o, "real"), "a real is not an integer");
	cr_assert_not(json_has_int(o, "null"));
	cr_assert_not(json_has_int(o, "missing"));
	json_decref(o);
}
