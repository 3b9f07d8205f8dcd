/* TAP 13, flat: one test point per cell with a YAML diagnostics block (2-space
 * indent), readable by prove and by meson's parser (1.0.1: no subtests, YAML
 * only directly after a test line, '#' in a description starts a directive).
 * `Bail out!` only when the run produced no cells because of an
 * infrastructure failure. */
#include <errno.h>
#include <string.h>

#include "reports/render_util.h"
#include "util/jsonutil.h"

static void
put_quoted(struct render_writer *t, const char *s)
{
	render_put_yaml(t, s, s ? strlen(s) : 0);
}

/* A description on one line without '#' (a directive to every TAP parser);
 * the repeat suffix "#N" of an id becomes " (repeat N)". */
static void
put_description(struct render_writer *t, const char *id)
{
	struct strbuf clean = STRBUF_INIT;
	if (t->r < 0)
		return;
	t->r = render_clean(&clean, id, strlen(id), CLEAN_ONE_LINE);
	const char *s = clean.data ? clean.data : "";
	const char *hash = strrchr(s, '#');
	size_t digits = hash ? strspn(hash + 1, "0123456789") : 0;
	bool repeat = hash && digits > 0 && hash[1 + digits] == '\0';
	size_t n = repeat ? (size_t) (hash - s) : strlen(s);
	for (size_t i = 0; i < n; i++)
		render_putn(t, s[i] == '#' ? " " : &s[i], 1);
	if (repeat)
		render_putf(t, " (repeat %s)", hash + 1);
	strbuf_free(&clean);
}

/* A YAML mapping key: plain when it is a simple word, quoted otherwise. */
static void
put_key(struct render_writer *t, const char *key)
{
	if (*key && strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(key))
		render_put(t, key);
	else
		put_quoted(t, key);
}

static void
diagnostics(struct render_writer *t, const json_t *cell)
{
	const json_t *expected = json_object_get(cell, "expected");
	char ms[32];
	size_t i;
	json_t *v;
	uint64_t ns;

	render_put(t, "  ---\n");
	render_put(t, "  id: ");
	put_quoted(t, json_str(cell, "id", json_str(cell, "name", "")));
	render_put(t, "\n  outcome: ");
	put_quoted(t, json_str(cell, "outcome", "unknown"));
	render_put(t, "\n");
	if (json_is_object(expected)) {
		render_put(t, "  expected:\n");
		const char *key;
		json_t *value;
		json_object_foreach((json_t *) expected, key, value) {
			render_put(t, "    ");
			put_key(t, key);
			render_put(t, ": ");
			if (json_is_string(value))
				put_quoted(t, json_string_value(value));
			else if (json_is_integer(value))
				render_putf(t, "%lld", (long long) json_integer_value(value));
			else if (json_is_boolean(value))
				render_put(t, json_is_true(value) ? "true" : "false");
			else
				render_put(t, "null");
			render_put(t, "\n");
		}
	}
	const json_t *verdicts = json_object_get(cell, "verdicts");
	if (json_array_size(verdicts) > 0)
		render_put(t, "  verdicts:\n");
	json_array_foreach(verdicts, i, v) {
		render_put(t, "    - class: ");
		put_quoted(t, json_str(v, "class", "?"));
		render_put(t, "\n      summary: ");
		put_quoted(t, json_str(v, "summary", ""));
		render_put(t, "\n");
	}
	if (json_has_int(cell, "leaked"))
		render_putf(t, "  leaked: %lld\n", (long long) json_int(cell, "leaked", 0));
	if (json_ns(cell, "duration_ns", &ns))
		render_putf(t, "  duration_ms: %s\n", render_ms(ns, ms, sizeof(ms)));
	const json_t *mism = json_object_get(cell, "mismatches");
	if (json_array_size(mism) > 0)
		render_put(t, "  mismatches:\n");
	json_array_foreach(mism, i, v) {
		render_put(t, "    - ");
		put_quoted(t, json_string_value(v));
		render_put(t, "\n");
	}
	if (json_str(cell, "infra_error", NULL)) {
		render_put(t, "  infra_error: ");
		put_quoted(t, json_str(cell, "infra_error", ""));
		render_put(t, "\n");
	}
	if (json_str(cell, "file", NULL)) {
		render_put(t, "  file: ");
		put_quoted(t, json_str(cell, "file", ""));
		render_put(t, "\n");
	}
	render_put(t, "  ...\n");
}

int
render_tap_doc(const json_t *doc, const struct render_options *o, struct strbuf *out)
{
	struct render_writer t = RENDER_WRITER(out);
	json_t *cells = render_cells(doc);
	size_t i;
	json_t *cell;
	if (!cells)
		return -ENOMEM;

	render_put(&t, "TAP version 13\n");
	const char *infra = render_doc_infra_error(doc);
	if (json_array_size(cells) == 0 && infra) {
		struct strbuf reason = STRBUF_INIT;
		if (t.r == 0)
			t.r = render_clean(&reason, infra, strlen(infra), CLEAN_ONE_LINE);
		render_putf(&t, "Bail out! %s\n", reason.data ? reason.data : "");
		strbuf_free(&reason);
		json_decref(cells);
		return t.r;
	}
	if (json_array_size(cells) == 0) {
		/* meson and prove count an empty plan as skipped, not passed. */
		render_put(&t, "1..0 # SKIP no cells in this document\n");
		json_decref(cells);
		return t.r;
	}
	render_putf(&t, "1..%zu\n", json_array_size(cells));
	json_array_foreach(cells, i, cell) {
		enum cell_status st = render_cell_status(cell);
		render_putf(&t, "%s %zu - ", st == CELL_PASS || st == CELL_SKIP ? "ok" : "not ok", i + 1);
		put_description(&t, json_str(cell, "id", json_str(cell, "name", "cell")));
		if (st == CELL_SKIP) {
			struct strbuf reason = STRBUF_INIT;
			const char *why = json_str(cell, "skipped", "");
			if (t.r == 0)
				t.r = render_clean(&reason, why, strlen(why), CLEAN_ONE_LINE);
			render_putf(&t, " # SKIP %s", reason.data ? reason.data : "");
			strbuf_free(&reason);
		}
		render_put(&t, "\n");
		diagnostics(&t, cell);
	}
	json_decref(cells);
	return t.r;
}
