/* JUnit XML, the portable subset that GitLab, Jenkins (junit and xUnit) and the
 * GitHub reporters (dorny/test-reporter, mikepenz/action-junit-report) all read
 * (docs/reports.md, formats-and-conventions.md §1):
 *  - <testsuites> with the four counts and time; one <testsuite> per scenario
 *    file with the four counts, time and timestamp; one <testcase> per cell;
 *  - time as "%.3f" seconds, never locale-formatted;
 *  - one <failure> (expectation not met) or <error> (infrastructure) per case;
 *  - output in the testcase's own <system-out> (GitLab ignores the suite's);
 *  - unique classname+name (GitLab keeps only the first of duplicates);
 *  - no XML-illegal characters at all, not even as references: controls and
 *    ANSI sequences are removed, invalid UTF-8 replaced; big bodies clipped. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports/render_util.h"
#include "util/jsonutil.h"

/* Per body section; CI viewers choke on megabytes, the full data stays in result.json. */
#define BODY_MAX (64 * 1024)
#define MESSAGE_MAX 1024
/* A watch run's test name is its command line: long ones are cut (code points). */
#define WATCH_NAME_MAX 200
/* The classname of every watch run: short and stable, so CI history lines up. */
#define WATCH_CLASSNAME "forkscope.watch"

struct junit_doc {
	json_t *used; /* classname + "\n" + name already written */
	bool watch;   /* a `forkscope watch` document */
};

/* Untrusted text: cleaned, clipped, escaped. */
static void
put_text(struct render_writer *j, const char *s, size_t len, size_t max, bool keep_end, bool attr)
{
	struct strbuf clean = STRBUF_INIT, clipped = STRBUF_INIT;
	if (j->r < 0 || !s)
		return;
	j->r = render_clean(&clean, s, len, 0);
	if (j->r == 0 && clean.len > 0)
		j->r = render_clip(&clipped, clean.data, clean.len, max, keep_end);
	if (clipped.len > 0)
		render_put_xml(j, clipped.data, clipped.len, attr);
	strbuf_free(&clean);
	strbuf_free(&clipped);
}

static void
put_attr(struct render_writer *j, const char *name, const char *value)
{
	if (!value)
		return;
	render_putf(j, " %s=\"", name);
	put_text(j, value, strlen(value), MESSAGE_MAX, false, true);
	render_put(j, "\"");
}

/* The suite a cell belongs to: its scenario file, else its scenario name;
 * every cell of a watch run is in "forkscope watch". */
static const char *
suite_key(const json_t *cell, bool watch)
{
	if (watch)
		return "forkscope watch";
	const char *file = json_str(cell, "file", NULL);
	if (file)
		return file;
	return json_str(cell, "name", json_str(cell, "id", "forkscope"));
}

static void
counts_attrs(struct render_writer *j, const struct render_counts *c)
{
	char t[32];
	render_putf(j, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%s\"", c->cells, c->failed,
	            c->errors, c->skipped, render_seconds(c->duration_ns, t, sizeof(t)));
}

/* Verdict texts, as `forkscope triage` prints them. */
static int
verdict_texts(const json_t *cell, struct strbuf *sb)
{
	size_t i;
	json_t *v;
	int r = 0;
	json_array_foreach(json_object_get(cell, "verdicts"), i, v) {
		if (r == 0 && i > 0)
			r = strbuf_append(sb, "\n");
		if (r == 0)
			r = render_verdict_plain(v, true, sb);
	}
	return r;
}

/* One line of cleaned text, or fallback when nothing printable is left
 * (dorny/test-reporter crashes on a missing or empty name). */
static int
clean_name(struct strbuf *out, const char *s, const char *fallback)
{
	int r = render_clean(out, s ? s : "", s ? strlen(s) : 0, CLEAN_ONE_LINE);
	if (r < 0)
		return r;
	if (out->len > 0 && strspn(out->data, " ") < out->len)
		return 0;
	out->len = 0;
	return strbuf_append(out, fallback);
}

/* At most max code points of clean one-line text, with an ellipsis when cut. */
static int
clip_chars(struct strbuf *sb, size_t max)
{
	size_t chars = 0, i = 0;
	for (; i < sb->len; i++)
		if (((unsigned char) sb->data[i] & 0xc0) != 0x80 && chars++ == max)
			break;
	if (i == sb->len)
		return 0;
	sb->len = i;
	sb->data[i] = '\0';
	return strbuf_append(sb, "\xe2\x80\xa6");
}

/* classname and name of a cell, unique in the document: a run cell is
 * scenario + matrix cell (+ #repeat); a watch run is forkscope.watch + its
 * command line. GitLab keeps only the first of two cases with the same
 * classname+name: compare what the XML will say, i.e. the cleaned strings. */
static int
case_names(const json_t *cell, struct junit_doc *d, struct strbuf *classname, struct strbuf *name)
{
	struct strbuf key = STRBUF_INIT;
	int r;
	if (d->watch) {
		r = strbuf_append(classname, WATCH_CLASSNAME);
		if (r == 0)
			r = clean_name(name, json_str(cell, "name", json_str(cell, "id", NULL)), "command");
		if (r == 0)
			r = clip_chars(name, WATCH_NAME_MAX);
	} else {
		r = clean_name(classname, json_str(cell, "name", json_str(cell, "id", NULL)), "unnamed");
		if (r == 0)
			r = clean_name(name, json_str(cell, "cell", NULL), "default");
		if (r == 0 && json_int(cell, "repeat", 0) > 0)
			r = strbuf_printf(name, "#%lld", (long long) json_int(cell, "repeat", 0));
	}
	size_t base = name->len;
	for (int n = 2; r == 0; n++) {
		strbuf_free(&key);
		r = strbuf_printf(&key, "%s\n%s", classname->data, name->data);
		if (r < 0 || !json_object_get(d->used, key.data))
			break;
		name->len = base;
		name->data[base] = '\0';
		r = strbuf_printf(name, " (%d)", n);
	}
	if (r == 0 && json_object_set_new(d->used, key.data, json_true()) < 0)
		r = -ENOMEM;
	strbuf_free(&key);
	return r;
}

/* The failure message: the mismatches, then each verdict's class and summary,
 * so that a CI summary line says why, not only that it hung. */
static int
failure_message(const json_t *cell, struct strbuf *msg)
{
	size_t i;
	json_t *v;
	int r = 0;
	json_array_foreach(json_object_get(cell, "mismatches"), i, v)
		if (r == 0 && json_is_string(v))
			r = strbuf_printf(msg, "%s%s", msg->len ? "; " : "", json_string_value(v));
	if (r == 0 && msg->len == 0)
		r = strbuf_append(msg, "expectation not met");
	json_array_foreach(json_object_get(cell, "verdicts"), i, v) {
		const char *summary = json_str(v, "summary", NULL);
		if (r == 0)
			r = strbuf_printf(msg, "; verdict %s", json_str(v, "class", "?"));
		if (r == 0 && summary && *summary)
			r = strbuf_printf(msg, ": %s", summary);
	}
	return r;
}

static void
testcase(struct render_writer *j, const json_t *cell, struct junit_doc *d)
{
	enum cell_status st = render_cell_status(cell);
	struct strbuf classname = STRBUF_INIT, name = STRBUF_INIT, body = STRBUF_INIT;
	char t[32];
	size_t i;
	json_t *v;
	uint64_t ns = 0;

	if (j->r < 0)
		return;
	render_fail(j, case_names(cell, d, &classname, &name));

	(void) json_ns(cell, "duration_ns", &ns);
	render_put(j, "    <testcase");
	put_attr(j, "classname", classname.data);
	put_attr(j, "name", name.data);
	put_attr(j, "file", json_str(cell, "file", NULL));
	render_putf(j, " time=\"%s\">\n", render_seconds(ns, t, sizeof(t)));

	if (st == CELL_ERROR) {
		render_put(j, "      <error type=\"infra_error\"");
		put_attr(j, "message", json_str(cell, "infra_error", ""));
		render_put(j, ">");
		const char *infra = json_str(cell, "infra_error", "");
		put_text(j, infra, strlen(infra), BODY_MAX, false, false);
		render_put(j, "</error>\n");
	} else if (st == CELL_FAIL) {
		struct strbuf msg = STRBUF_INIT;
		render_fail(j, failure_message(cell, &msg));
		render_put(j, "      <failure");
		put_attr(j, "type", json_str(cell, "outcome", "failure"));
		put_attr(j, "message", msg.data);
		render_put(j, ">");
		/* Body: where (file, for annotation tools), what, and why (verdicts). */
		struct strbuf what = STRBUF_INIT;
		json_array_foreach(json_object_get(cell, "mismatches"), i, v)
			if (j->r == 0 && json_is_string(v))
				j->r = strbuf_printf(&what, "%s%s", what.len ? "; " : "", json_string_value(v));
		if (j->r == 0 && what.len == 0)
			j->r = strbuf_append(&what, "expectation not met");
		if (j->r == 0 && json_str(cell, "file", NULL))
			j->r = strbuf_printf(&body, "%s: %s\n", json_str(cell, "file", ""), what.data);
		else if (j->r == 0)
			j->r = strbuf_printf(&body, "%s\n", what.data);
		strbuf_free(&what);
		json_array_foreach(json_object_get(cell, "errors"), i, v)
			if (j->r == 0)
				j->r = strbuf_printf(&body, "error from %s (pid %lld): %s\n", json_str(v, "actor", "?"),
						     (long long) json_int(v, "pid", 0), json_str(v, "message", ""));
		if (j->r == 0 && json_array_size(json_object_get(cell, "verdicts")) > 0) {
			j->r = strbuf_append(&body, "\n");
			if (j->r == 0)
				j->r = verdict_texts(cell, &body);
		}
		put_text(j, body.data, body.len, BODY_MAX, false, false);
		render_put(j, "</failure>\n");
		strbuf_free(&msg);
	} else if (st == CELL_SKIP) {
		render_put(j, "      <skipped");
		put_attr(j, "message", json_str(cell, "skipped", ""));
		render_put(j, "/>\n");
	}

	/* system-out: the verdicts (also for cells that expected their hang) and the output tail. */
	struct strbuf verdicts = STRBUF_INIT;
	size_t tail_len = 0;
	const char *tail = json_strn(cell, "output_tail", &tail_len);
	if (j->r == 0)
		j->r = verdict_texts(cell, &verdicts);
	if (verdicts.len > 0 || (tail && tail_len > 0)) {
		render_put(j, "      <system-out>");
		put_text(j, verdicts.data, verdicts.len, BODY_MAX, false, false);
		if (tail && tail_len > 0) {
			render_put(j, verdicts.len > 0 ? "\n--- output (tail) ---\n" : "--- output (tail) ---\n");
			put_text(j, tail, tail_len, BODY_MAX, true, false);
		}
		render_put(j, "</system-out>\n");
	}
	render_put(j, "    </testcase>\n");
	strbuf_free(&verdicts);
	strbuf_free(&classname);
	strbuf_free(&name);
	strbuf_free(&body);
}

int
render_junit_doc(const json_t *doc, const struct render_options *o, struct strbuf *out)
{
	struct render_writer j = RENDER_WRITER(out);
	json_t *cells = render_cells(doc);
	struct junit_doc d = { .used = json_object(), .watch = strcmp(json_str(doc, "command", ""), "watch") == 0 };
	size_t n = json_array_size(cells), n_suites = 0, i, k;
	/* Suites in the order their first cell appears: the index of that cell.
	 * Compared with strcmp, not as JSON keys: names may not be UTF-8. */
	size_t *first = calloc(n ? n : 1, sizeof(size_t));
	struct render_counts all;
	json_t *cell;

	if (!cells || !d.used || !first) {
		render_fail(&j, -ENOMEM);
		goto out;
	}
	render_count(cells, &all);
	for (i = 0; i < n; i++) {
		const char *key = suite_key(json_array_get(cells, i), d.watch);
		for (k = 0; k < n_suites; k++)
			if (strcmp(suite_key(json_array_get(cells, first[k]), d.watch), key) == 0)
				break;
		if (k == n_suites)
			first[n_suites++] = i;
	}

	render_put(&j, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
	put_attr(&j, "name", o->title ? o->title : "forkscope");
	counts_attrs(&j, &all);
	render_put(&j, ">\n");
	for (size_t s = 0; s < n_suites && j.r == 0; s++) {
		const char *key = suite_key(json_array_get(cells, first[s]), d.watch);
		json_t *members = json_array();
		struct render_counts c;
		if (!members) {
			render_fail(&j, -ENOMEM);
			break;
		}
		json_array_foreach(cells, k, cell)
			if (strcmp(suite_key(cell, d.watch), key) == 0 && json_array_append(members, cell) < 0)
				render_fail(&j, -ENOMEM);
		render_count(members, &c);
		struct strbuf suite = STRBUF_INIT;
		if (j.r == 0)
			j.r = clean_name(&suite, key, "forkscope");
		render_put(&j, "  <testsuite");
		put_attr(&j, "name", suite.data);
		strbuf_free(&suite);
		counts_attrs(&j, &c);
		put_attr(&j, "timestamp", json_str(doc, "started_at", NULL));
		render_put(&j, ">\n");
		json_array_foreach(members, k, cell)
			testcase(&j, cell, &d);
		render_put(&j, "  </testsuite>\n");
		json_decref(members);
	}
	render_put(&j, "</testsuites>\n");
out:
	free(first);
	json_decref(cells);
	json_decref(d.used);
	return j.r;
}
