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
	struct render_writer w;
	int color;
	int verbose;
};

static void
color_on(struct text *t, const char *code)
{
	if (t->color)
		render_put(&t->w, code);
}

static void
color_off(struct text *t)
{
	if (t->color)
		render_put(&t->w, C_RESET);
}

/* One cleaned line of untrusted text. */
static void
put_clean(struct text *t, const char *s)
{
	render_put_clean(&t->w, s, s ? strlen(s) : 0, CLEAN_ONE_LINE);
}

static void
put_clean_n(struct text *t, const char *s, size_t len)
{
	render_put_clean(&t->w, s, len, CLEAN_ONE_LINE);
}

/* Multi-line untrusted text, each line prefixed with indent. */
static void
put_block(struct text *t, const char *s, size_t len, const char *indent)
{
	struct strbuf clean = STRBUF_INIT;
	if (t->w.r < 0 || !s)
		return;
	t->w.r = render_clean(&clean, s, len, 0);
	const char *p = clean.data ? clean.data : "";
	while (t->w.r == 0 && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t) (nl - p) : strlen(p);
		render_put(&t->w, indent);
		render_putn(&t->w, p, n);
		render_put(&t->w, "\n");
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
	if (t->w.r < 0)
		return;
	t->w.r = render_clean(&clean, s ? s : "", s ? strlen(s) : 0, CLEAN_ONE_LINE);
	render_put(&t->w, clean.data ? clean.data : "");
	for (size_t w = display_width(clean.data); t->w.r == 0 && w < width; w++)
		render_put(&t->w, " ");
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
		render_put(&t->w, i ? "," : "");
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
	render_put(&t->w, "  ");
	put_padded(t, cell_id(cell), id_width);
	render_put(&t->w, "  ");
	put_padded(t, json_str(cell, "outcome", "?"), 5);
	render_put(&t->w, "  ");
	put_padded(t, render_duration_field(cell, "duration_ns", d, sizeof(d)), 7);
	if (json_array_size(json_object_get(cell, "verdicts")) > 0) {
		render_put(&t->w, "  verdict ");
		put_verdict_classes(t, cell);
	}
	int64_t leaked = json_int(cell, "leaked", -1);
	if (leaked >= 0) {
		render_put(&t->w, "  leaked ");
		if (leaked > 0)
			color_on(t, C_YELLOW);
		render_putf(&t->w, "%lld", (long long) leaked);
		if (leaked > 0)
			color_off(t);
	}
	if (st == CELL_ERROR) {
		render_put(&t->w, "  ");
		put_clean(t, json_str(cell, "infra_error", ""));
	}
	render_put(&t->w, "\n");
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
		render_fail(&t->w, -ENOMEM);
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
	render_put(&t->w, indent);
	put_clean(t, json_str(err, "actor", "?"));
	int64_t pid = json_int(err, "pid", -1);
	if (pid > 0)
		render_putf(&t->w, " (pid %lld)", (long long) pid);
	render_put(&t->w, ": ");
	put_clean(t, json_str(err, "message", ""));
	const json_t *st = json_object_get(err, "exit_status");
	if (json_str(st, "signal", NULL)) {
		render_put(&t->w, " [");
		put_clean(t, json_str(st, "signal", ""));
		render_put(&t->w, "]");
	} else if (json_has_int(st, "code"))
		render_putf(&t->w, " [exit %lld]", (long long) json_int(st, "code", 0));
	render_put(&t->w, "\n");
	size_t i;
	json_t *frame;
	const json_t *bt = json_object_get(err, "backtrace");
	json_array_foreach(bt, i, frame) {
		if (i >= BACKTRACE_FRAMES) {
			render_putf(&t->w, "%s    ... %zu more frames\n", indent, json_array_size(bt) - i);
			break;
		}
		render_putf(&t->w, "%s    ", indent);
		put_clean(t, json_string_value(frame));
		render_put(&t->w, "\n");
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
		render_put(&t->w, ind);
		put_clean(t, json_str(v, "summary", ""));
		render_put(&t->w, "\n");
	}
	const json_t *chain = json_object_get(v, "chain");
	if (json_array_size(chain) > 0)
		render_putf(&t->w, "%sChain:\n", ind);
	json_array_foreach(chain, i, e) {
		if (!json_is_object(e))
			continue;
		render_putf(&t->w, "%s  %s", ind, i == 0 ? "  " : "-> ");
		put_clean(t, json_str(e, "actor", "?"));
		render_putf(&t->w, " (pid %lld", (long long) json_int(e, "pid", 0));
		if (json_int(e, "tid", 0) > 0 && json_int(e, "tid", 0) != json_int(e, "pid", 0))
			render_putf(&t->w, ", tid %lld", (long long) json_int(e, "tid", 0));
		render_put(&t->w, ")");
		if (json_str(e, "syscall", NULL)) {
			render_put(&t->w, " in ");
			put_clean(t, json_str(e, "syscall", ""));
		}
		if (json_str(e, "wchan", NULL)) {
			render_put(&t->w, " [");
			put_clean(t, json_str(e, "wchan", ""));
			render_put(&t->w, "]");
		}
		render_put(&t->w, "\n");
		if (json_str(e, "waits_on", NULL)) {
			render_putf(&t->w, "%s       waits on ", ind);
			put_clean(t, json_str(e, "waits_on", ""));
			const json_t *held = json_object_get(e, "held_by");
			json_t *h;
			json_array_foreach(held, k, h)
				render_putf(&t->w, "%s%lld", k == 0 ? ", held by pid " : ", ", (long long) json_integer_value(h));
			render_put(&t->w, "\n");
		}
	}
	if (json_str(v, "resource", NULL)) {
		render_putf(&t->w, "%sResource: ", ind);
		put_clean(t, json_str(v, "resource", ""));
		render_put(&t->w, "\n");
	}
	const json_t *evidence = json_object_get(v, "evidence");
	if (json_object_size(evidence) > 0) {
		const char *key;
		json_t *value;
		render_putf(&t->w, "%sEvidence:\n", ind);
		json_object_foreach((json_t *) evidence, key, value) {
			render_putf(&t->w, "%s  ", ind);
			put_clean(t, key);
			render_put(&t->w, ": ");
			put_json_value(t, value);
			render_put(&t->w, "\n");
		}
	}
	const json_t *stacks = json_object_get(v, "stacks");
	if (json_object_size(stacks) > 0) {
		const char *pid;
		json_t *threads;
		render_putf(&t->w, "%sStacks:\n", ind);
		json_object_foreach((json_t *) stacks, pid, threads) {
			json_t *th;
			json_array_foreach(threads, i, th) {
				render_putf(&t->w, "%s  pid ", ind);
				put_clean(t, pid);
				render_putf(&t->w, " tid %lld:\n", (long long) json_int(th, "tid", 0));
				json_t *frame;
				json_array_foreach(json_object_get(th, "frames"), k, frame) {
					render_putf(&t->w, "%s    #%-2zu ", ind, k);
					put_clean(t, json_string_value(frame));
					render_put(&t->w, "\n");
				}
			}
		}
	}
	if (json_str(v, "remedy", NULL)) {
		render_putf(&t->w, "%sRemedy: ", ind);
		put_clean(t, json_str(v, "remedy", ""));
		render_put(&t->w, "\n");
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
	struct text t = { .w = RENDER_WRITER(&composed), .color = 0 };
	const struct verdict_class_info *info = verdict_class_lookup(json_str(verdict, "class", NULL));
	if (heading) {
		render_put(&t.w, "    Verdict ");
		put_clean(&t, json_str(verdict, "class", "?"));
		if (info) {
			render_put(&t.w, ": ");
			render_put(&t.w, info->title);
		}
		render_put(&t.w, "\n");
	}
	compose_verdict(&t, verdict);
	/* compose_verdict indents for the terminal; plain text starts at column 0. */
	const char *p = composed.data ? composed.data : "";
	while (t.w.r == 0 && *p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t) (nl - p) + 1 : strlen(p);
		size_t skip = strncmp(p, "    ", 4) == 0 ? 4 : 0;
		t.w.r = strbuf_appendn(out, p + skip, n - skip);
		p += n;
	}
	strbuf_free(&composed);
	return t.w.r;
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
		render_put(&t->w, "  Verdict ");
		color_on(t, C_CYAN);
		put_clean(t, cls);
		color_off(t);
		if (info) {
			render_put(&t->w, ": ");
			render_put(&t->w, info->title);
		}
		render_put(&t->w, "\n");
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
		render_putf(&t->w, "%s%s=", any ? " " : "", fds[k]);
		put_clean(t, kind);
		any = true;
	}
	if (!any)
		render_put(&t->w, "-");
}

/* --- inherited fds: one note per fd, not one per process ------------------ */

#define FD_NOTE_HOLDERS 3

static bool
same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Same fd number and target: the same inherited descriptor. */
static bool
same_fd(const json_t *x, const json_t *y, bool with_kind)
{
	if (json_int(x, "fd", -1) != json_int(y, "fd", -1) || !same_str(json_str(x, "target", NULL), json_str(y, "target", NULL)))
		return false;
	return !with_kind || (same_str(json_str(x, "kind", NULL), json_str(y, "kind", NULL)) &&
			      same_str(json_str(x, "detail", NULL), json_str(y, "detail", NULL)));
}

static void
put_fd(struct text *t, const json_t *fd)
{
	render_putf(&t->w, "fd %lld ", (long long) json_int(fd, "fd", -1));
	put_clean(t, json_str(fd, "target", "?"));
	render_put(&t->w, " (");
	put_clean(t, json_str(fd, "kind", "?"));
	if (json_str(fd, "detail", NULL)) {
		render_put(&t->w, ", ");
		put_clean(t, json_str(fd, "detail", ""));
	}
	render_put(&t->w, ")");
}

static void
put_bang(struct text *t)
{
	render_put(&t->w, "    ");
	color_on(t, C_YELLOW);
	render_put(&t->w, "!");
	color_off(t);
	render_put(&t->w, " ");
}

/* Whether a root actor (the command itself, in a watch run) already had fd:
 * then it came from the launcher (a CI runner, a shell), not from the tree. */
static bool
from_launcher(const json_t *actors, const json_t *fd)
{
	size_t i, k;
	json_t *a, *rfd;
	json_array_foreach(actors, i, a) {
		if (render_actor_parent_index(actors, i) >= 0)
			continue;
		json_array_foreach(json_object_get(a, "fds_unexpected"), k, rfd)
			if (same_fd(rfd, fd, false))
				return true;
	}
	return false;
}

/* What the roots inherited from their launcher, once per root; then every
 * other unexpected fd once, with the processes that hold it ("inherited by
 * a (pid 1), b (pid 2), c (pid 3) and 40 more"). */
/* shown: the actors listed in the table (the notes speak of those only);
 * the tree's shape comes from all of them. */
static bool
is_shown(const json_t *shown, const json_t *a)
{
	size_t i;
	json_t *x;
	json_array_foreach(shown, i, x)
		if (x == a)
			return true;
	return false;
}

static void
fd_notes(struct text *t, const json_t *actors, const json_t *shown)
{
	size_t i, k, i2, k2;
	json_t *a, *fd, *a2, *fd2;
	json_array_foreach(actors, i, a) {
		const json_t *fds = json_object_get(a, "fds_unexpected");
		if (render_actor_parent_index(actors, i) >= 0 || json_array_size(fds) == 0 || !is_shown(shown, a))
			continue;
		put_bang(t);
		put_clean(t, json_str(a, "name", "?"));
		render_putf(&t->w, " (pid %lld) inherited from its launcher: ", (long long) json_int(a, "pid", 0));
		json_array_foreach(fds, k, fd) {
			render_put(&t->w, k ? ", " : "");
			put_fd(t, fd);
		}
		render_put(&t->w, "\n");
	}
	json_array_foreach(actors, i, a) {
		if (render_actor_parent_index(actors, i) < 0 || !is_shown(shown, a))
			continue;
		json_array_foreach(json_object_get(a, "fds_unexpected"), k, fd) {
			if (from_launcher(actors, fd))
				continue;
			/* Printed already with an earlier holder? */
			bool seen = false;
			json_array_foreach(actors, i2, a2) {
				if (i2 >= i)
					break;
				if (!is_shown(shown, a2))
					continue;
				json_array_foreach(json_object_get(a2, "fds_unexpected"), k2, fd2)
					seen |= render_actor_parent_index(actors, i2) >= 0 && same_fd(fd, fd2, true);
			}
			if (seen)
				continue;
			put_bang(t);
			put_fd(t, fd);
			render_put(&t->w, " inherited by ");
			size_t holders = 0;
			for (i2 = i; i2 < json_array_size(actors); i2++) {
				a2 = json_array_get(actors, i2);
				bool holds = false;
				json_array_foreach(json_object_get(a2, "fds_unexpected"), k2, fd2)
					holds |= same_fd(fd, fd2, true);
				if (!holds || !is_shown(shown, a2) || holders++ >= FD_NOTE_HOLDERS)
					continue;
				render_put(&t->w, holders > 1 ? ", " : "");
				put_clean(t, json_str(a2, "name", "?"));
				render_putf(&t->w, " (pid %lld)", (long long) json_int(a2, "pid", 0));
			}
			if (holders > FD_NOTE_HOLDERS)
				render_putf(&t->w, " and %zu more", holders - FD_NOTE_HOLDERS);
			render_put(&t->w, "\n");
		}
	}
}

/* Signal masks a process started with, grouped by mask: a shell blocks
 * SIGINT, SIGTERM and SIGCHLD around every fork, and a pyenv shim forks
 * dozens of times. */
static void
mask_notes(struct text *t, const json_t *actors)
{
	json_t *done = json_array();
	size_t i, j;
	json_t *a, *b;
	json_array_foreach(actors, i, a) {
		const char *mask = json_str(a, "sigmask_blocked", NULL);
		if (!mask || !*mask)
			continue;
		bool seen = false;
		size_t d;
		json_t *x;
		json_array_foreach(done, d, x)
			seen = seen || strcmp(json_string_value(x), mask) == 0;
		if (seen)
			continue;
		json_array_append_new(done, json_string(mask));
		size_t holders = 0;
		render_put(&t->w, "    - started with signals blocked (");
		put_clean(t, mask);
		render_put(&t->w, "):");
		json_array_foreach(actors, j, b) {
			if (strcmp(json_str(b, "sigmask_blocked", ""), mask) != 0)
				continue;
			if (holders < 6) {
				render_put(&t->w, holders ? ", " : " ");
				put_clean(t, json_str(b, "name", "?"));
				render_putf(&t->w, " (pid %lld)", (long long) json_int(b, "pid", 0));
			}
			holders++;
		}
		if (holders > 6)
			render_putf(&t->w, " and %zu more", holders - 6);
		render_put(&t->w, "\n");
	}
	json_decref(done);
}

static bool
named_by_verdict(const json_t *cell, int64_t pid)
{
	size_t i, k;
	json_t *v, *p;
	json_array_foreach(json_object_get(cell, "verdicts"), i, v)
		json_array_foreach(json_object_get(v, "pids"), k, p)
			if (json_integer_value(p) == pid)
				return true;
	return false;
}

static void
actor_table(struct text *t, const json_t *cell)
{
	const json_t *all = json_object_get(cell, "actors");
	size_t i;
	json_t *a;
	size_t name_width = 5, end_width = 12;
	if (json_array_size(all) == 0)
		return;
	/* A watched command's tree can hold dozens of short-lived processes (a
	 * pyenv shim forks 40): without --verbose the table lists those still
	 * there at the end, and counts the ones that ran and exited 0. */
	json_t *actors = json_array();
	size_t hidden = 0;
	json_array_foreach(all, i, a) {
		bool plain = strcmp(json_str(a, "kind", ""), "process") == 0;
		if (!t->verbose && plain && json_array_size(all) > 12 && render_actor_end(a) == ACTOR_END_OK &&
		    !named_by_verdict(cell, json_int(a, "pid", 0)))
			hidden++;
		else
			json_array_append(actors, a);
	}
	json_array_foreach(actors, i, a) {
		char label[64];
		render_actor_end_label(a, label, sizeof(label));
		end_width = MAX(end_width, MIN(display_width(label), (size_t) 24));
		struct strbuf clean = STRBUF_INIT;
		const char *name = json_str(a, "name", "?");
		if (render_clean(&clean, name, strlen(name), CLEAN_ONE_LINE) == 0) {
			size_t w = display_width(clean.data) + 2 * (size_t) MAX(0, json_int(a, "depth", 0));
			name_width = MAX(name_width, MIN(w, (size_t) 32));
		}
		strbuf_free(&clean);
	}
	render_put(&t->w, "  Actors:\n");
	color_on(t, C_DIM);
	render_putf(&t->w, "    %-*s  %-7s %-7s %-*s %-8s %-8s %-8s %4s %7s  %s\n", (int) name_width, "actor", "pid",
	            "ppid", (int) end_width, "ended", "ready", "exit", "reap", "fds", "threads", "stdio");
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
		render_putf(&t->w, "    %*s", (int) (2 * depth), "");
		put_padded(t, json_str(a, "name", "?"), name_width - (size_t) (2 * depth));
		render_putf(&t->w, "  %-7s %-7s ", pid, ppid);
		enum actor_end end = render_actor_end(a);
		bool bad = end == ACTOR_END_KILLED || end == ACTOR_END_ZOMBIE || end == ACTOR_END_RUNNING;
		if (bad)
			color_on(t, C_YELLOW);
		render_putf(&t->w, "%-*s", (int) end_width, label);
		if (bad)
			color_off(t);
		render_putf(&t->w, " %-8s %-8s %-8s %4s %7s  ", render_duration_field(a, "ready_ns", ready, sizeof(ready)),
		            render_duration_field(a, "exit_ns", ex, sizeof(ex)),
		            render_duration_field(a, "reap_ns", reap, sizeof(reap)), fds, thr);
		stdio_kinds(t, json_object_get(a, "stdio"));
		render_put(&t->w, "\n");
	}
	if (hidden > 0)
		render_putf(&t->w, "    (and %zu process%s that ran and exited 0; --verbose lists them)\n", hidden,
			    hidden == 1 ? "" : "es");
	/* Highlights: what crossed the fork that should not have. */
	fd_notes(t, all, actors);
	mask_notes(t, actors);
	json_decref(actors);
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
	render_putf(&t->w, "  Teardown: %s", render_duration_field(td, "duration_ns", a, sizeof(a)));
	if (json_ns(td, "budget_ns", &(uint64_t){ 0 }))
		render_putf(&t->w, ", budget %s", render_duration_field(td, "budget_ns", b, sizeof(b)));
	if (json_bool(td, "over_budget", 0)) {
		render_put(&t->w, ", ");
		color_on(t, C_RED);
		render_put(&t->w, "over budget");
		color_off(t);
	}
	render_put(&t->w, "\n");
	const json_t *phases = json_object_get(td, "phases");
	if (json_array_size(phases) > 0) {
		color_on(t, C_DIM);
		render_putf(&t->w, "    %-5s  %-16s  %-11s  %-12s  %-13s  %-8s  %s\n", "depth", "actor", "cancel wait",
		            "SIGTERM wait", "SIGKILL->reap", "total", "ended by");
		color_off(t);
	}
	json_array_foreach(phases, i, p) {
		char c1[32], c2[32], c3[32], c4[32];
		render_putf(&t->w, "    %-5lld  ", (long long) json_int(p, "depth", 0));
		put_padded(t, json_str(p, "actor", "?"), 16);
		render_putf(&t->w, "  %-11s  %-12s  %-13s  %-8s  ", render_duration_field(p, "cancel_wait_ns", c1, sizeof(c1)),
		            render_duration_field(p, "sigterm_wait_ns", c2, sizeof(c2)),
		            render_duration_field(p, "sigkill_to_reap_ns", c3, sizeof(c3)),
		            render_duration_field(p, "total_ns", c4, sizeof(c4)));
		put_clean(t, json_str(p, "ended_by", "-"));
		render_put(&t->w, "\n");
	}
	json_array_foreach(json_object_get(td, "levels"), i, p)
		render_putf(&t->w, "    level %lld: %s\n", (long long) json_int(p, "depth", 0),
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
	render_put(&t->w, "  Leftovers:\n");
	json_array_foreach(left, i, l) {
		render_putf(&t->w, "    pid %lld ", (long long) json_int(l, "pid", 0));
		put_clean(t, json_str(l, "name", "?"));
		render_putf(&t->w, " (state ");
		put_clean(t, json_str(l, "state", "?"));
		if (json_int(l, "ppid", -1) >= 0)
			render_putf(&t->w, ", ppid %lld", (long long) json_int(l, "ppid", 0));
		render_put(&t->w, ")");
		if (json_str(l, "how", NULL)) {
			render_put(&t->w, ": ");
			put_clean(t, json_str(l, "how", ""));
		}
		render_put(&t->w, "; ended by ");
		color_on(t, C_YELLOW);
		put_clean(t, json_str(l, "ended_by", "?"));
		color_off(t);
		render_put(&t->w, "\n");
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
	render_putf(&t->w, "  Output (last lines):\n");
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

	render_put(&t->w, "\n");
	color_on(t, C_BOLD);
	render_put(&t->w, "=== ");
	color_off(t);
	color_on(t, status_color(st));
	render_put(&t->w, render_cell_status_word(st));
	color_off(t);
	color_on(t, C_BOLD);
	render_put(&t->w, " ");
	put_clean(t, cell_id(cell));
	render_put(&t->w, " ===");
	color_off(t);
	render_put(&t->w, "\n");

	render_put(&t->w, "  outcome ");
	put_clean(t, json_str(cell, "outcome", "?"));
	if (json_is_object(expected)) {
		render_put(&t->w, " (expected");
		if (json_str(expected, "outcome", NULL)) {
			render_put(&t->w, " ");
			put_clean(t, json_str(expected, "outcome", ""));
		}
		if (json_str(expected, "verdict", NULL)) {
			render_put(&t->w, ", verdict ");
			put_clean(t, json_str(expected, "verdict", ""));
		}
		if (json_has_int(expected, "leaked"))
			render_putf(&t->w, ", leaked %lld", (long long) json_int(expected, "leaked", 0));
		render_put(&t->w, ")");
	}
	if (json_str(cell, "file", NULL)) {
		render_put(&t->w, ", file ");
		put_clean(t, json_str(cell, "file", ""));
	}
	if (json_str(cell, "backend", NULL)) {
		render_put(&t->w, ", backend ");
		put_clean(t, json_str(cell, "backend", ""));
	}
	render_put(&t->w, "\n");
	if (json_str(cell, "infra_error", NULL)) {
		render_put(&t->w, "  Could not run: ");
		put_clean(t, json_str(cell, "infra_error", ""));
		render_put(&t->w, "\n");
	}
	const json_t *mism = json_object_get(cell, "mismatches");
	if (json_array_size(mism) > 0)
		render_put(&t->w, "  Mismatches:\n");
	json_array_foreach(mism, i, v) {
		if (!json_is_string(v))
			continue;
		render_put(&t->w, "    - ");
		put_clean(t, json_string_value(v));
		render_put(&t->w, "\n");
	}
	const json_t *errors = json_object_get(cell, "errors");
	if (json_array_size(errors) > 0)
		render_put(&t->w, "  Errors:\n");
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
	struct text t = { .w = RENDER_WRITER(out), .color = o->color, .verbose = o->verbose };
	json_t *cells = render_cells(doc);
	struct render_counts c;
	size_t i, id_width = 0;
	json_t *cell;
	if (!cells)
		return -ENOMEM;
	render_count(cells, &c);

	color_on(&t, C_BOLD);
	render_put(&t.w, "forkscope ");
	put_clean(&t, json_str(doc, "command", "run"));
	color_off(&t);
	render_putf(&t.w, ": %zu cell%s", c.cells, c.cells == 1 ? "" : "s");
	if (json_str(doc, "started_at", NULL)) {
		render_put(&t.w, ", started ");
		put_clean(&t, json_str(doc, "started_at", ""));
	}
	render_put(&t.w, "\n");
	int64_t version = json_int(doc, "schema_version", RENDER_SCHEMA_VERSION);
	if (version > RENDER_SCHEMA_VERSION)
		render_putf(&t.w, "note: schema_version %lld is newer than this renderer (%d); some fields may be missing\n",
		            (long long) version, RENDER_SCHEMA_VERSION);
	if (render_doc_infra_error(doc)) {
		color_on(&t, C_MAGENTA);
		render_put(&t.w, "Run failed: ");
		color_off(&t);
		put_clean(&t, render_doc_infra_error(doc));
		render_put(&t.w, "\n");
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
	/* A cell that met its expectation is its one line (its verdict named
	 * there); the details are for the cells that did not, or --verbose. A
	 * single watched command always gets them. */
	bool single = json_array_size(cells) == 1;
	json_array_foreach(cells, i, cell)
		if (cell_needs_details(cell) && (t.verbose || single || render_cell_status(cell) != CELL_PASS))
			cell_details(&t, cell);

	render_put(&t.w, "\n");
	if (c.leaked > 0) {
		color_on(&t, C_YELLOW);
		render_putf(&t.w, "%zu process%s leaked.", c.leaked, c.leaked == 1 ? "" : "es");
		color_off(&t);
		render_put(&t.w, "\n");
	}
	if (c.hangs > 0) {
		color_on(&t, C_RED);
		render_putf(&t.w, "Found %zu hang%s.", c.hangs, c.hangs == 1 ? "" : "s");
		color_off(&t);
		render_put(&t.w, "\n");
	}
	if (c.unexplained > 0) {
		color_on(&t, C_YELLOW);
		render_putf(&t.w, "%zu cell%s timed out with no hang verdict (no knot found; see above).",
			    c.unexplained, c.unexplained == 1 ? "" : "s");
		color_off(&t);
		render_put(&t.w, "\n");
	}
	render_putf(&t.w, "%zu passed, %zu failed", c.passed, c.failed);
	if (c.errors > 0)
		render_putf(&t.w, ", %zu errors", c.errors);
	if (c.skipped > 0)
		render_putf(&t.w, ", %zu skipped", c.skipped);
	render_put(&t.w, "\n");
	json_decref(cells);
	return t.w.r;
}
