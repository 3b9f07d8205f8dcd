/* text: what a person reads on the terminal after `forkscope run`. One line per
 * cell, then details for the cells that need a look (failed, errored, with
 * verdicts, leftovers or a teardown over budget), then "Found N hangs." and the
 * closing "N passed, N failed" line that CI log readers pick up.
 * Every string from the document goes through render_clean(): a hostile child
 * output must not drive the reader's terminal. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports/render_util.h"
#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_DIM "\033[2m"
#define C_RED "\033[1;31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_MAGENTA "\033[1;35m"
#define C_CYAN "\033[1;36m"

/* Longest id that still gets its own padded column. */
#define ID_COLUMN_MAX 56
/* Lines of output tail shown for a failed cell. */
#define OUTPUT_LINES 12
#define BACKTRACE_FRAMES 8

struct text {
	struct strbuf *out;
	int color;
	int r; /* first error; later appends are skipped */
};

static void
put(struct text *t, const char *s)
{
	if (t->r == 0 && s)
		t->r = strbuf_append(t->out, s);
}

static void __attribute__((format(printf, 2, 3)))
putf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	if (t->r < 0)
		return;
	va_start(ap, fmt);
	t->r = strbuf_vprintf(t->out, fmt, ap);
	va_end(ap);
}

static void
color_on(struct text *t, const char *code)
{
	if (t->color)
		put(t, code);
}

static void
color_off(struct text *t)
{
	if (t->color)
		put(t, C_RESET);
}

/* One cleaned line of untrusted text. */
static void
put_clean(struct text *t, const char *s)
{
	if (t->r == 0 && s)
		t->r = render_clean(t->out, s, strlen(s), CLEAN_ONE_LINE);
}

static void
put_clean_n(struct text *t, const char *s, size_t len)
{
	if (t->r == 0 && s)
		t->r = render_clean(t->out, s, len, CLEAN_ONE_LINE);
}

/* Multi-line untrusted text, each line prefixed with indent. */
static void
put_block(struct text *t, const char *s, size_t len, const char *indent)
{
	struct strbuf clean = STRBUF_INIT;
	if (t->r < 0 || !s)
		return;
	t->r = render_clean(&clean, s, len, 0);
	const char *p = clean.data ? clean.data : "";
	while (t->r == 0 && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t) (nl - p) : strlen(p);
		put(t, indent);
		if (t->r == 0)
			t->r = strbuf_appendn(t->out, p, n);
		put(t, "\n");
		p += n + (nl ? 1 : 0);
	}
	strbuf_free(&clean);
}

/* Display width of cleaned text: code points, not bytes. */
static size_t
display_width(const char *s)
{
	size_t w = 0;
	for (; s && *s; s++)
		if (((unsigned char) *s & 0xc0) != 0x80)
			w++;
	return w;
}

static void
put_padded(struct text *t, const char *s, size_t width)
{
	struct strbuf clean = STRBUF_INIT;
	if (t->r < 0)
		return;
	t->r = render_clean(&clean, s ? s : "", s ? strlen(s) : 0, CLEAN_ONE_LINE);
	put(t, clean.data ? clean.data : "");
	for (size_t w = display_width(clean.data); t->r == 0 && w < width; w++)
		put(t, " ");
	strbuf_free(&clean);
}

static const char *
status_color(enum cell_status s)
{
	switch (s) {
	case CELL_PASS:
		return C_GREEN;
	case CELL_FAIL:
		return C_RED;
	case CELL_ERROR:
		return C_MAGENTA;
	case CELL_SKIP:
		return C_YELLOW;
	}
	return C_BOLD;
}

static const char *
cell_id(const json_t *cell)
{
	const char *id = json_str(cell, "id", NULL);
	return id ? id : json_str(cell, "name", "(unnamed)");
}

static void
put_verdict_classes(struct text *t, const json_t *cell)
{
	const json_t *verdicts = json_object_get(cell, "verdicts");
	size_t i;
	json_t *v;
	json_array_foreach(verdicts, i, v) {
		put(t, i ? "," : "");
		color_on(t, C_CYAN);
		put_clean(t, json_str(v, "class", "?"));
		color_off(t);
	}
}

static void
cell_line(struct text *t, const json_t *cell, size_t id_width)
{
	enum cell_status st = render_cell_status(cell);
	char d[32];
	color_on(t, status_color(st));
	put_padded(t, render_cell_status_word(st), 5);
	color_off(t);
	put(t, "  ");
	put_padded(t, cell_id(cell), id_width);
	put(t, "  ");
	put_padded(t, json_str(cell, "outcome", "?"), 5);
	put(t, "  ");
	put_padded(t, render_duration_field(cell, "duration_ns", d, sizeof(d)), 7);
	if (json_array_size(json_object_get(cell, "verdicts")) > 0) {
		put(t, "  verdict ");
		put_verdict_classes(t, cell);
	}
	int64_t leaked = json_int(cell, "leaked", -1);
	if (leaked >= 0) {
		put(t, "  leaked ");
		if (leaked > 0)
			color_on(t, C_YELLOW);
		putf(t, "%lld", (long long) leaked);
		if (leaked > 0)
			color_off(t);
	}
	if (st == CELL_ERROR) {
		put(t, "  ");
		put_clean(t, json_str(cell, "infra_error", ""));
	}
	put(t, "\n");
}

static bool
cell_has_slow_teardown(const json_t *cell)
{
	size_t i;
	json_t *v;
	if (json_bool(json_object_get(cell, "teardown"), "over_budget", 0))
		return true;
	json_array_foreach(json_object_get(cell, "verdicts"), i, v)
		if (strcmp(json_str(v, "class", ""), "slow-teardown") == 0)
			return true;
	return false;
}

static bool
cell_needs_details(const json_t *cell)
{
	return render_cell_status(cell) == CELL_FAIL || render_cell_status(cell) == CELL_ERROR ||
	       json_array_size(json_object_get(cell, "verdicts")) > 0 ||
	       json_array_size(json_object_get(cell, "leftovers")) > 0 || cell_has_slow_teardown(cell);
}

static void
put_json_value(struct text *t, const json_t *v)
{
	if (json_is_string(v)) {
		put_clean_n(t, json_string_value(v), json_string_length(v));
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s) {
		t->r = t->r < 0 ? t->r : -ENOMEM;
		return;
	}
	put_clean(t, s);
	free(s);
}

static void
error_tree(struct text *t, const json_t *err, int level)
{
	char indent[64];
	int n = 4 + 2 * (level > 12 ? 12 : level);
	(void) snprintf(indent, sizeof(indent), "%*s", n, "");
	if (!json_is_object(err))
		return;
	put(t, indent);
	put_clean(t, json_str(err, "actor", "?"));
	int64_t pid = json_int(err, "pid", -1);
	if (pid > 0)
		putf(t, " (pid %lld)", (long long) pid);
	put(t, ": ");
	put_clean(t, json_str(err, "message", ""));
	const json_t *st = json_object_get(err, "exit_status");
	if (json_str(st, "signal", NULL)) {
		put(t, " [");
		put_clean(t, json_str(st, "signal", ""));
		put(t, "]");
	} else if (json_is_integer(json_object_get(st, "code")))
		putf(t, " [exit %lld]", (long long) json_int(st, "code", 0));
	put(t, "\n");
	size_t i;
	json_t *frame;
	const json_t *bt = json_object_get(err, "backtrace");
	json_array_foreach(bt, i, frame) {
		if (i >= BACKTRACE_FRAMES) {
			putf(t, "%s    ... %zu more frames\n", indent, json_array_size(bt) - i);
			break;
		}
		putf(t, "%s    ", indent);
		put_clean(t, json_string_value(frame));
		put(t, "\n");
	}
	json_t *child;
	json_array_foreach(json_object_get(err, "children"), i, child)
		error_tree(t, child, level + 1);
}

/* A verdict without `text`: compose the same parts the verdict engine prints. */
static void
compose_verdict(struct text *t, const json_t *v)
{
	size_t i, k;
	json_t *e;
	const char *ind = "    ";
	if (json_str(v, "summary", NULL)) {
		put(t, ind);
		put_clean(t, json_str(v, "summary", ""));
		put(t, "\n");
	}
	const json_t *chain = json_object_get(v, "chain");
	if (json_array_size(chain) > 0)
		putf(t, "%sChain:\n", ind);
	json_array_foreach(chain, i, e) {
		if (!json_is_object(e))
			continue;
		putf(t, "%s  %s", ind, i == 0 ? "  " : "-> ");
		put_clean(t, json_str(e, "actor", "?"));
		putf(t, " (pid %lld", (long long) json_int(e, "pid", 0));
		if (json_int(e, "tid", 0) > 0 && json_int(e, "tid", 0) != json_int(e, "pid", 0))
			putf(t, ", tid %lld", (long long) json_int(e, "tid", 0));
		put(t, ")");
		if (json_str(e, "syscall", NULL)) {
			put(t, " in ");
			put_clean(t, json_str(e, "syscall", ""));
		}
		if (json_str(e, "wchan", NULL)) {
			put(t, " [");
			put_clean(t, json_str(e, "wchan", ""));
			put(t, "]");
		}
		put(t, "\n");
		if (json_str(e, "waits_on", NULL)) {
			putf(t, "%s       waits on ", ind);
			put_clean(t, json_str(e, "waits_on", ""));
			const json_t *held = json_object_get(e, "held_by");
			json_t *h;
			json_array_foreach(held, k, h)
				putf(t, "%s%lld", k == 0 ? ", held by pid " : ", ", (long long) json_integer_value(h));
			put(t, "\n");
		}
	}
	if (json_str(v, "resource", NULL)) {
		putf(t, "%sResource: ", ind);
		put_clean(t, json_str(v, "resource", ""));
		put(t, "\n");
	}
	const json_t *evidence = json_object_get(v, "evidence");
	if (json_object_size(evidence) > 0) {
		const char *key;
		json_t *value;
		putf(t, "%sEvidence:\n", ind);
		json_object_foreach((json_t *) evidence, key, value) {
			putf(t, "%s  ", ind);
			put_clean(t, key);
			put(t, ": ");
			put_json_value(t, value);
			put(t, "\n");
		}
	}
	const json_t *stacks = json_object_get(v, "stacks");
	if (json_object_size(stacks) > 0) {
		const char *pid;
		json_t *threads;
		putf(t, "%sStacks:\n", ind);
		json_object_foreach((json_t *) stacks, pid, threads) {
			json_t *th;
			json_array_foreach(threads, i, th) {
				putf(t, "%s  pid ", ind);
				put_clean(t, pid);
				putf(t, " tid %lld:\n", (long long) json_int(th, "tid", 0));
				json_t *frame;
				json_array_foreach(json_object_get(th, "frames"), k, frame) {
					putf(t, "%s    #%-2zu ", ind, k);
					put_clean(t, json_string_value(frame));
					put(t, "\n");
				}
			}
		}
	}
	if (json_str(v, "remedy", NULL)) {
		putf(t, "%sRemedy: ", ind);
		put_clean(t, json_str(v, "remedy", ""));
		put(t, "\n");
	}
}

int
render_verdict_plain(const json_t *verdict, bool heading, struct strbuf *out)
{
	size_t len;
	const char *text = json_strn(verdict, "text", &len);
	if (text && len > 0) {
		int r = render_clean(out, text, len, 0);
		if (r == 0 && out->len > 0 && out->data[out->len - 1] != '\n')
			r = strbuf_append(out, "\n");
		return r;
	}
	struct strbuf composed = STRBUF_INIT;
	struct text t = { .out = &composed, .color = 0 };
	const struct verdict_class_info *info = verdict_class_lookup(json_str(verdict, "class", NULL));
	if (heading) {
		put(&t, "    Verdict ");
		put_clean(&t, json_str(verdict, "class", "?"));
		if (info) {
			put(&t, ": ");
			put(&t, info->title);
		}
		put(&t, "\n");
	}
	compose_verdict(&t, verdict);
	/* compose_verdict indents for the terminal; plain text starts at column 0. */
	const char *p = composed.data ? composed.data : "";
	while (t.r == 0 && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t) (nl - p) + 1 : strlen(p);
		size_t skip = strncmp(p, "    ", 4) == 0 ? 4 : 0;
		t.r = strbuf_appendn(out, p + skip, n - skip);
		p += n;
	}
	strbuf_free(&composed);
	return t.r;
}

/* Whether the first line of a verdict's own text already names its class
 * ("Hang: eof-never — ..."), so a heading of ours would only repeat it. */
static bool
text_names_class(const char *text, size_t len, const char *cls)
{
	const char *nl = memchr(text, '\n', len);
	size_t first = nl ? (size_t) (nl - text) : len;
	size_t n = strlen(cls);
	for (size_t i = 0; n > 0 && i + n <= first; i++)
		if (memcmp(text + i, cls, n) == 0)
			return true;
	return false;
}

static void
verdict_block(struct text *t, const json_t *v)
{
	const char *cls = json_str(v, "class", "?");
	const struct verdict_class_info *info = verdict_class_lookup(cls);
	size_t len;
	const char *text = json_strn(v, "text", &len);
	bool has_text = text && len > 0;
	bool heading = !has_text || !text_names_class(text, len, cls);
	if (heading) {
		put(t, "  Verdict ");
		color_on(t, C_CYAN);
		put_clean(t, cls);
		color_off(t);
		if (info) {
			put(t, ": ");
			put(t, info->title);
		}
		put(t, "\n");
	}
	if (has_text)
		put_block(t, text, len, heading ? "    " : "  ");
	else
		compose_verdict(t, v);
}

static void
stdio_kinds(struct text *t, const json_t *stdio)
{
	static const char *const fds[] = { "0", "1", "2" };
	bool any = false;
	for (size_t k = 0; k < 3; k++) {
		const char *kind = json_str(stdio, fds[k], NULL);
		if (!kind)
			continue;
		putf(t, "%s%s=", any ? " " : "", fds[k]);
		put_clean(t, kind);
		any = true;
	}
	if (!any)
		put(t, "-");
}

static void
actor_table(struct text *t, const json_t *cell)
{
	const json_t *actors = json_object_get(cell, "actors");
	size_t i, k;
	json_t *a;
	size_t name_width = 5;
	if (json_array_size(actors) == 0)
		return;
	json_array_foreach(actors, i, a) {
		struct strbuf clean = STRBUF_INIT;
		const char *name = json_str(a, "name", "?");
		if (render_clean(&clean, name, strlen(name), CLEAN_ONE_LINE) == 0) {
			size_t w = display_width(clean.data) + 2 * (size_t) MAX(0, json_int(a, "depth", 0));
			name_width = MAX(name_width, MIN(w, (size_t) 32));
		}
		strbuf_free(&clean);
	}
	put(t, "  Actors:\n");
	color_on(t, C_DIM);
	putf(t, "    %-*s  %-7s %-7s %-12s %-8s %-8s %-8s %4s %7s  %s\n", (int) name_width, "actor", "pid",
	     "ppid", "ended", "ready", "exit", "reap", "fds", "threads", "stdio");
	color_off(t);
	json_array_foreach(actors, i, a) {
		char label[64], ready[32], ex[32], reap[32], pid[24] = "-", ppid[24] = "-", fds[24] = "-",
									thr[24] = "-";
		int64_t depth = json_int(a, "depth", 0);
		depth = depth < 0 ? 0 : depth > 8 ? 8 : depth;
		render_actor_end_label(a, label, sizeof(label));
		if (json_int(a, "pid", -1) > 0)
			(void) snprintf(pid, sizeof(pid), "%lld", (long long) json_int(a, "pid", 0));
		if (json_int(a, "ppid", -1) > 0)
			(void) snprintf(ppid, sizeof(ppid), "%lld", (long long) json_int(a, "ppid", 0));
		if (json_int(a, "fds_inherited", -1) >= 0)
			(void) snprintf(fds, sizeof(fds), "%lld", (long long) json_int(a, "fds_inherited", 0));
		if (json_int(a, "threads_at_fork", -1) >= 0)
			(void) snprintf(thr, sizeof(thr), "%lld", (long long) json_int(a, "threads_at_fork", 0));
		putf(t, "    %*s", (int) (2 * depth), "");
		put_padded(t, json_str(a, "name", "?"), name_width - (size_t) (2 * depth));
		putf(t, "  %-7s %-7s ", pid, ppid);
		enum actor_end end = render_actor_end(a);
		bool bad = end == ACTOR_END_KILLED || end == ACTOR_END_ZOMBIE || end == ACTOR_END_RUNNING;
		if (bad)
			color_on(t, C_YELLOW);
		putf(t, "%-12s", label);
		if (bad)
			color_off(t);
		putf(t, " %-8s %-8s %-8s %4s %7s  ", render_duration_field(a, "ready_ns", ready, sizeof(ready)),
		     render_duration_field(a, "exit_ns", ex, sizeof(ex)),
		     render_duration_field(a, "reap_ns", reap, sizeof(reap)), fds, thr);
		stdio_kinds(t, json_object_get(a, "stdio"));
		put(t, "\n");
	}
	/* Highlights: what crossed the fork that should not have. */
	json_array_foreach(actors, i, a) {
		json_t *fd;
		json_array_foreach(json_object_get(a, "fds_unexpected"), k, fd) {
			put(t, "    ");
			color_on(t, C_YELLOW);
			put(t, "!");
			color_off(t);
			put(t, " ");
			put_clean(t, json_str(a, "name", "?"));
			putf(t, " (pid %lld) inherited fd %lld ", (long long) json_int(a, "pid", 0),
			     (long long) json_int(fd, "fd", -1));
			put_clean(t, json_str(fd, "target", "?"));
			put(t, " (");
			put_clean(t, json_str(fd, "kind", "?"));
			if (json_str(fd, "detail", NULL)) {
				put(t, ", ");
				put_clean(t, json_str(fd, "detail", ""));
			}
			put(t, ")\n");
		}
		const char *mask = json_str(a, "sigmask_blocked", NULL);
		if (mask && *mask) {
			put(t, "    - ");
			put_clean(t, json_str(a, "name", "?"));
			put(t, " started with signals blocked: ");
			put_clean(t, mask);
			put(t, "\n");
		}
	}
}

static void
teardown_table(struct text *t, const json_t *cell)
{
	const json_t *td = json_object_get(cell, "teardown");
	char a[32], b[32];
	size_t i;
	json_t *p;
	if (!json_is_object(td))
		return;
	putf(t, "  Teardown: %s", render_duration_field(td, "duration_ns", a, sizeof(a)));
	if (json_ns(td, "budget_ns", &(uint64_t){ 0 }))
		putf(t, ", budget %s", render_duration_field(td, "budget_ns", b, sizeof(b)));
	if (json_bool(td, "over_budget", 0)) {
		put(t, ", ");
		color_on(t, C_RED);
		put(t, "over budget");
		color_off(t);
	}
	put(t, "\n");
	const json_t *phases = json_object_get(td, "phases");
	if (json_array_size(phases) > 0) {
		color_on(t, C_DIM);
		putf(t, "    %-5s  %-16s  %-11s  %-12s  %-13s  %-8s  %s\n", "depth", "actor", "cancel wait",
		     "SIGTERM wait", "SIGKILL->reap", "total", "ended by");
		color_off(t);
	}
	json_array_foreach(phases, i, p) {
		char c1[32], c2[32], c3[32], c4[32];
		putf(t, "    %-5lld  ", (long long) json_int(p, "depth", 0));
		put_padded(t, json_str(p, "actor", "?"), 16);
		putf(t, "  %-11s  %-12s  %-13s  %-8s  ", render_duration_field(p, "cancel_wait_ns", c1, sizeof(c1)),
		     render_duration_field(p, "sigterm_wait_ns", c2, sizeof(c2)),
		     render_duration_field(p, "sigkill_to_reap_ns", c3, sizeof(c3)),
		     render_duration_field(p, "total_ns", c4, sizeof(c4)));
		put_clean(t, json_str(p, "ended_by", "-"));
		put(t, "\n");
	}
	json_array_foreach(json_object_get(td, "levels"), i, p)
		putf(t, "    level %lld: %s\n", (long long) json_int(p, "depth", 0),
		     render_duration_field(p, "duration_ns", a, sizeof(a)));
}

static void
leftovers(struct text *t, const json_t *cell)
{
	const json_t *left = json_object_get(cell, "leftovers");
	size_t i;
	json_t *l;
	if (json_array_size(left) == 0)
		return;
	put(t, "  Leftovers:\n");
	json_array_foreach(left, i, l) {
		putf(t, "    pid %lld ", (long long) json_int(l, "pid", 0));
		put_clean(t, json_str(l, "name", "?"));
		putf(t, " (state ");
		put_clean(t, json_str(l, "state", "?"));
		if (json_int(l, "ppid", -1) >= 0)
			putf(t, ", ppid %lld", (long long) json_int(l, "ppid", 0));
		put(t, ")");
		if (json_str(l, "how", NULL)) {
			put(t, ": ");
			put_clean(t, json_str(l, "how", ""));
		}
		put(t, "; ended by ");
		color_on(t, C_YELLOW);
		put_clean(t, json_str(l, "ended_by", "?"));
		color_off(t);
		put(t, "\n");
	}
}

static void
output_tail(struct text *t, const json_t *cell)
{
	size_t len;
	const char *tail = json_strn(cell, "output_tail", &len);
	if (!tail || len == 0)
		return;
	/* The last lines only: the whole tail is in result.json and the HTML. */
	size_t start = len, lines = 0;
	while (start > 0) {
		if (tail[start - 1] == '\n' && start != len && ++lines >= OUTPUT_LINES)
			break;
		start--;
	}
	putf(t, "  Output (last lines):\n");
	color_on(t, C_DIM);
	put_block(t, tail + start, len - start, "    | ");
	color_off(t);
}

static void
cell_details(struct text *t, const json_t *cell)
{
	enum cell_status st = render_cell_status(cell);
	const json_t *expected = json_object_get(cell, "expected");
	size_t i;
	json_t *v;

	put(t, "\n");
	color_on(t, C_BOLD);
	put(t, "=== ");
	color_off(t);
	color_on(t, status_color(st));
	put(t, render_cell_status_word(st));
	color_off(t);
	color_on(t, C_BOLD);
	put(t, " ");
	put_clean(t, cell_id(cell));
	put(t, " ===");
	color_off(t);
	put(t, "\n");

	put(t, "  outcome ");
	put_clean(t, json_str(cell, "outcome", "?"));
	if (json_is_object(expected)) {
		put(t, " (expected");
		if (json_str(expected, "outcome", NULL)) {
			put(t, " ");
			put_clean(t, json_str(expected, "outcome", ""));
		}
		if (json_str(expected, "verdict", NULL)) {
			put(t, ", verdict ");
			put_clean(t, json_str(expected, "verdict", ""));
		}
		if (json_is_integer(json_object_get(expected, "leaked")))
			putf(t, ", leaked %lld", (long long) json_int(expected, "leaked", 0));
		put(t, ")");
	}
	if (json_str(cell, "file", NULL)) {
		put(t, ", file ");
		put_clean(t, json_str(cell, "file", ""));
	}
	if (json_str(cell, "backend", NULL)) {
		put(t, ", backend ");
		put_clean(t, json_str(cell, "backend", ""));
	}
	put(t, "\n");
	if (json_str(cell, "infra_error", NULL)) {
		put(t, "  Could not run: ");
		put_clean(t, json_str(cell, "infra_error", ""));
		put(t, "\n");
	}
	const json_t *mism = json_object_get(cell, "mismatches");
	if (json_array_size(mism) > 0)
		put(t, "  Mismatches:\n");
	json_array_foreach(mism, i, v) {
		if (!json_is_string(v))
			continue;
		put(t, "    - ");
		put_clean(t, json_string_value(v));
		put(t, "\n");
	}
	const json_t *errors = json_object_get(cell, "errors");
	if (json_array_size(errors) > 0)
		put(t, "  Errors:\n");
	json_array_foreach(errors, i, v)
		error_tree(t, v, 0);
	json_array_foreach(json_object_get(cell, "verdicts"), i, v)
		verdict_block(t, v);
	actor_table(t, cell);
	if (cell_has_slow_teardown(cell))
		teardown_table(t, cell);
	leftovers(t, cell);
	if (st == CELL_FAIL || st == CELL_ERROR)
		output_tail(t, cell);
}

int
render_text_doc(const json_t *doc, const struct render_options *o, struct strbuf *out)
{
	struct text t = { .out = out, .color = o->color };
	json_t *cells = render_cells(doc);
	struct render_counts c;
	size_t i, id_width = 0;
	json_t *cell;
	if (!cells)
		return -ENOMEM;
	render_count(cells, &c);

	color_on(&t, C_BOLD);
	put(&t, "forkscope ");
	put_clean(&t, json_str(doc, "command", "run"));
	color_off(&t);
	putf(&t, ": %zu cell%s", c.cells, c.cells == 1 ? "" : "s");
	if (json_str(doc, "started_at", NULL)) {
		put(&t, ", started ");
		put_clean(&t, json_str(doc, "started_at", ""));
	}
	put(&t, "\n");
	int64_t version = json_int(doc, "schema_version", RENDER_SCHEMA_VERSION);
	if (version > RENDER_SCHEMA_VERSION)
		putf(&t, "note: schema_version %lld is newer than this renderer (%d); some fields may be missing\n",
		     (long long) version, RENDER_SCHEMA_VERSION);
	if (render_doc_infra_error(doc)) {
		color_on(&t, C_MAGENTA);
		put(&t, "Run failed: ");
		color_off(&t);
		put_clean(&t, render_doc_infra_error(doc));
		put(&t, "\n");
	}

	json_array_foreach(cells, i, cell) {
		struct strbuf clean = STRBUF_INIT;
		const char *id = cell_id(cell);
		if (render_clean(&clean, id, strlen(id), CLEAN_ONE_LINE) == 0)
			id_width = MAX(id_width, MIN(display_width(clean.data), (size_t) ID_COLUMN_MAX));
		strbuf_free(&clean);
	}
	json_array_foreach(cells, i, cell)
		cell_line(&t, cell, id_width);
	json_array_foreach(cells, i, cell)
		if (cell_needs_details(cell))
			cell_details(&t, cell);

	put(&t, "\n");
	if (c.leaked > 0) {
		color_on(&t, C_YELLOW);
		putf(&t, "%zu process%s leaked.", c.leaked, c.leaked == 1 ? "" : "es");
		color_off(&t);
		put(&t, "\n");
	}
	if (c.hangs > 0) {
		color_on(&t, C_RED);
		putf(&t, "Found %zu hang%s.", c.hangs, c.hangs == 1 ? "" : "s");
		color_off(&t);
		put(&t, "\n");
	}
	putf(&t, "%zu passed, %zu failed", c.passed, c.failed);
	if (c.errors > 0)
		putf(&t, ", %zu errors", c.errors);
	if (c.skipped > 0)
		putf(&t, ", %zu skipped", c.skipped);
	put(&t, "\n");
	json_decref(cells);
	return t.r;
}
