#include "reports/render_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

/* --- the output writer ----------------------------------------------------- */

void
render_fail(struct render_writer *w, int r)
{
	if (w->r == 0 && r < 0)
		w->r = r;
}

void
render_put(struct render_writer *w, const char *s)
{
	if (w->r == 0 && s)
		w->r = strbuf_append(w->out, s);
}

void
render_putn(struct render_writer *w, const char *s, size_t len)
{
	if (w->r == 0 && s)
		w->r = strbuf_appendn(w->out, s, len);
}

void
render_putf(struct render_writer *w, const char *fmt, ...)
{
	va_list ap;
	if (w->r < 0)
		return;
	va_start(ap, fmt);
	w->r = strbuf_vprintf(w->out, fmt, ap);
	va_end(ap);
}

void
render_put_clean(struct render_writer *w, const char *s, size_t len, unsigned flags)
{
	if (w->r == 0 && s)
		w->r = render_clean(w->out, s, len, flags);
}

void
render_put_xml(struct render_writer *w, const char *s, size_t len, bool attr)
{
	if (w->r == 0 && s)
		w->r = render_xml_escape(w->out, s, len, attr);
}

void
render_put_xml_str(struct render_writer *w, const char *s)
{
	render_put_xml(w, s, s ? strlen(s) : 0, false);
}

void
render_put_xml_short(struct render_writer *w, const char *s, size_t max_chars)
{
	struct strbuf clean = STRBUF_INIT;
	if (w->r < 0 || !s)
		return;
	render_fail(w, render_clean(&clean, s, strlen(s), CLEAN_ONE_LINE));
	size_t chars = 0, i = 0;
	for (; clean.data && i < clean.len; i++)
		if (((unsigned char) clean.data[i] & 0xc0) != 0x80 && chars++ == max_chars)
			break;
	render_put_xml(w, clean.data, i, false);
	if (clean.data && i < clean.len)
		render_put(w, "\xe2\x80\xa6");
	strbuf_free(&clean);
}

void
render_put_yaml(struct render_writer *w, const char *s, size_t len)
{
	if (w->r == 0)
		w->r = render_yaml_quoted(w->out, s, s ? len : 0);
}

void
render_put_json_new(struct render_writer *w, json_t *v, size_t flags)
{
	if (!v) {
		render_fail(w, -ENOMEM);
		return;
	}
	if (w->r == 0) {
		char *text = json_dumps(v, JSON_COMPACT | flags);
		if (!text)
			w->r = -ENOMEM;
		else
			render_put(w, text);
		free(text);
	}
	json_decref(v);
}

/* --- document walking ------------------------------------------------------ */

json_t *
render_cells(const json_t *doc)
{
	json_t *scenarios = json_object_get(doc, "scenarios");
	if (json_is_array(scenarios))
		return json_incref(scenarios);
	json_t *cells = json_array();
	if (!cells)
		return NULL;
	/* A watch document without `scenarios` is one cell at top level. */
	if (json_is_object(doc) && (json_object_get(doc, "outcome") || json_object_get(doc, "actors") ||
				    json_object_get(doc, "id")))
		(void) json_array_append(cells, (json_t *) doc);
	return cells;
}

enum cell_status
render_cell_status(const json_t *cell)
{
	const char *infra = json_str(cell, "infra_error", NULL);
	if (infra)
		return CELL_ERROR;
	if (json_str(cell, "skipped", NULL))
		return CELL_SKIP;
	/* A cell that does not say it passed (partial run) did not pass. */
	return json_bool(cell, "passed", 0) ? CELL_PASS : CELL_FAIL;
}

const char *
render_cell_status_word(enum cell_status s)
{
	switch (s) {
	case CELL_PASS:
		return "PASS";
	case CELL_FAIL:
		return "FAIL";
	case CELL_ERROR:
		return "ERROR";
	case CELL_SKIP:
		return "SKIP";
	}
	return "?";
}

size_t
render_cell_hangs(const json_t *cell)
{
	int64_t found = json_int(cell, "found_hangs", -1);
	size_t n = 0;
	if (found >= 0)
		n = (size_t) found;
	else {
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(cell, "verdicts"), i, v) {
			const struct verdict_class_info *info = verdict_class_lookup(json_str(v, "class", NULL));
			/* As verdicts_count_hangs(): a class we do not know is a hang. */
			if (!info || info->is_hang)
				n++;
		}
	}
	/* A hang is a verdict of a hang class: a cell that timed out without
	 * one is counted apart (render_counts.unexplained), never as a hang. */
	return n;
}

void
render_count(const json_t *cells, struct render_counts *ret)
{
	struct render_counts c = { 0 };
	size_t i;
	json_t *cell;
	json_array_foreach(cells, i, cell) {
		c.cells++;
		switch (render_cell_status(cell)) {
		case CELL_PASS:
			c.passed++;
			break;
		case CELL_FAIL:
			c.failed++;
			break;
		case CELL_ERROR:
			c.errors++;
			break;
		case CELL_SKIP:
			c.skipped++;
			break;
		}
		size_t hangs = render_cell_hangs(cell);
		c.hangs += hangs;
		if (hangs == 0 && strcmp(json_str(cell, "outcome", ""), "hang") == 0)
			c.unexplained++;
		int64_t leaked = json_int(cell, "leaked", 0);
		if (leaked > 0)
			c.leaked += (size_t) leaked;
		uint64_t d;
		if (json_ns(cell, "duration_ns", &d))
			c.duration_ns += d;
	}
	*ret = c;
}

const char *
render_doc_infra_error(const json_t *doc)
{
	const char *e = json_str(doc, "infra_error", NULL);
	return e ? e : json_str(doc, "error", NULL);
}

enum actor_end
render_actor_end(const json_t *actor)
{
	const json_t *st = json_object_get(actor, "exit_status");
	const char *sig = json_str(st, "signal", NULL);
	uint64_t t;
	/* Seen as a zombie (a snapshot's state Z): not reaped, whatever its
	 * status says; watch learns the status from the probe, not from a reap. */
	if (json_bool(actor, "zombie", 0) || strcmp(json_str(actor, "state", ""), "Z") == 0)
		return ACTOR_END_ZOMBIE;
	if (sig)
		return strcmp(sig, "SIGKILL") == 0 ? ACTOR_END_KILLED : ACTOR_END_SIGNAL;
	if (json_has_int(st, "code"))
		return json_int(st, "code", 0) == 0 ? ACTOR_END_OK : ACTOR_END_ERROR;
	bool exited = json_ns(actor, "exit_ns", &t);
	bool reaped = json_ns(actor, "reap_ns", &t);
	if (exited && !reaped)
		return ACTOR_END_ZOMBIE;
	if (!exited && !reaped)
		return ACTOR_END_RUNNING;
	return ACTOR_END_UNKNOWN;
}

bool
render_actor_has_handshake(const json_t *actor)
{
	const char *kind = json_str(actor, "kind", NULL);
	return !kind || strcmp(kind, "actor") == 0;
}

const char *
render_actor_end_key(enum actor_end e)
{
	static const char *const keys[_ACTOR_END_MAX] = {
		[ACTOR_END_UNKNOWN] = "unknown", [ACTOR_END_OK] = "ok",		[ACTOR_END_ERROR] = "error",
		[ACTOR_END_SIGNAL] = "signal",	 [ACTOR_END_KILLED] = "killed", [ACTOR_END_ZOMBIE] = "zombie",
		[ACTOR_END_RUNNING] = "running",
	};
	return e < _ACTOR_END_MAX ? keys[e] : "unknown";
}

void
render_actor_end_label(const json_t *actor, char *buf, size_t size)
{
	const json_t *st = json_object_get(actor, "exit_status");
	switch (render_actor_end(actor)) {
	case ACTOR_END_OK:
	case ACTOR_END_ERROR:
		(void) snprintf(buf, size, "exit %lld", (long long) json_int(st, "code", 0));
		return;
	case ACTOR_END_SIGNAL:
	case ACTOR_END_KILLED: {
		/* Callers print the label as is: it must already be clean. */
		struct strbuf clean = STRBUF_INIT;
		const char *sig = json_str(st, "signal", "signal");
		if (render_clean(&clean, sig, strlen(sig), CLEAN_ONE_LINE) < 0 || !clean.data)
			(void) snprintf(buf, size, "signal");
		else
			(void) snprintf(buf, size, "%.32s", clean.data);
		strbuf_free(&clean);
		return;
	}
	case ACTOR_END_ZOMBIE:
		if (json_has_int(st, "code"))
			(void) snprintf(buf, size, "zombie, exit %lld", (long long) json_int(st, "code", 0));
		else if (json_str(st, "signal", NULL)) {
			struct strbuf clean = STRBUF_INIT;
			const char *sig = json_str(st, "signal", "");
			if (render_clean(&clean, sig, strlen(sig), CLEAN_ONE_LINE) == 0 && clean.data)
				(void) snprintf(buf, size, "zombie, %.32s", clean.data);
			else
				(void) snprintf(buf, size, "zombie");
			strbuf_free(&clean);
		} else
			(void) snprintf(buf, size, "zombie");
		return;
	case ACTOR_END_RUNNING:
		(void) snprintf(buf, size, "never ended");
		return;
	default:
		(void) snprintf(buf, size, "ended");
		return;
	}
}

static const char *const actor_time_keys[] = { "spawn_ns", "fork_ns", "ready_ns", "cancel_ns", "exit_ns",
					       "reap_ns" };
static const char *const ladder_time_keys[] = { "cancel_sent_ns", "cancel_ack_ns", "sigterm_ns", "sigkill_ns",
						"reaped_ns" };

uint64_t
render_cell_end_ns(const json_t *cell)
{
	uint64_t end = 0, t;
	if (json_ns(cell, "duration_ns", &t))
		end = t;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(cell, "actors"), i, a) {
		for (size_t k = 0; k < sizeof(actor_time_keys) / sizeof(actor_time_keys[0]); k++)
			if (json_ns(a, actor_time_keys[k], &t) && t > end)
				end = t;
		const json_t *ladder = json_object_get(a, "ladder");
		for (size_t k = 0; k < sizeof(ladder_time_keys) / sizeof(ladder_time_keys[0]); k++)
			if (json_ns(ladder, ladder_time_keys[k], &t) && t > end)
				end = t;
	}
	return end;
}

const json_t *
render_actor_by_pid(const json_t *cell, int64_t pid)
{
	size_t i;
	json_t *a;
	if (pid <= 0)
		return NULL;
	json_array_foreach(json_object_get(cell, "actors"), i, a)
		if (json_int(a, "pid", -1) == pid)
			return a;
	return NULL;
}

long
render_actor_parent_index(const json_t *actors, size_t i)
{
	const json_t *self = json_array_get(actors, i);
	const json_t *parent = json_object_get(self, "parent");
	size_t k;
	json_t *a;
	if (json_is_integer(parent)) {
		json_array_foreach(actors, k, a)
			if (k != i && json_equal(json_object_get(a, "id"), parent))
				return (long) k;
	}
	/* Helpers outside the scenario tree (capture host, daemons) hang under
	 * whichever actor forked them, if it is one of ours. */
	int64_t ppid = json_int(self, "ppid", -1);
	if (ppid > 0)
		json_array_foreach(actors, k, a)
			if (k != i && json_int(a, "pid", -1) == ppid)
				return (long) k;
	return -1;
}

static size_t utf8_decode(const unsigned char *p, size_t avail, uint32_t *ret_cp);

/* Strictly valid UTF-8 (json_string_lossy() lets encoded surrogates and code
 * points above U+10FFFF through, which jansson then rejects). */
static json_t *
string_lossy(const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *p = (const unsigned char *) s;
	int r = strbuf_appendn(&sb, "", 0);
	for (size_t i = 0; r == 0 && i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		r = n ? strbuf_appendn(&sb, s + i, n) : strbuf_append(&sb, "\xef\xbf\xbd");
		i += n ? n : 1;
	}
	json_t *j = r == 0 ? json_stringn(sb.data, sb.len) : NULL;
	strbuf_free(&sb);
	return j;
}

json_t *
render_sanitized_copy(const json_t *v)
{
	size_t i;
	const char *key;
	json_t *item, *copy;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		copy = json_object();
		json_object_foreach((json_t *) v, key, item) {
			json_t *k = string_lossy(key, strlen(key));
			if (!copy || !k || json_object_set_new(copy, json_string_value(k), render_sanitized_copy(item)) < 0) {
				json_decref(k);
				json_decref(copy);
				return NULL;
			}
			json_decref(k);
		}
		return copy;
	case JSON_ARRAY:
		copy = json_array();
		json_array_foreach(v, i, item)
			if (!copy || json_array_append_new(copy, render_sanitized_copy(item)) < 0) {
				json_decref(copy);
				return NULL;
			}
		return copy;
	case JSON_STRING:
		return string_lossy(json_string_value(v), json_string_length(v));
	default:
		return json_deep_copy(v);
	}
}

/* --- safe strings ---------------------------------------------------------- */

/* Decode one UTF-8 sequence strictly (no overlongs, no surrogates, <= U+10FFFF).
 * Returns its length, 0 when invalid. */
static size_t
utf8_decode(const unsigned char *p, size_t avail, uint32_t *ret_cp)
{
	unsigned char c = p[0];
	size_t need;
	uint32_t cp, min;
	if (c < 0x80) {
		*ret_cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		need = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		need = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		need = 4, cp = c & 0x07, min = 0x10000;
	} else
		return 0;
	if (need > avail)
		return 0;
	for (size_t k = 1; k < need; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return need;
}

/* Length of the escape sequence starting at p[0] == ESC (ECMA-48). */
static size_t
escape_length(const unsigned char *p, size_t avail)
{
	size_t i = 1;
	if (i >= avail)
		return i;
	unsigned char c = p[i];
	if (c == '[') {
		/* CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e. */
		i++;
		while (i < avail && p[i] >= 0x30 && p[i] <= 0x3f)
			i++;
		while (i < avail && p[i] >= 0x20 && p[i] <= 0x2f)
			i++;
		if (i < avail && p[i] >= 0x40 && p[i] <= 0x7e)
			i++;
		return i;
	}
	if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X') {
		/* OSC/DCS/APC/PM/SOS: a string up to BEL or ST (ESC \). */
		i++;
		while (i < avail) {
			if (p[i] == 0x07)
				return i + 1;
			if (p[i] == 0x1b)
				return i + 1 < avail && p[i + 1] == '\\' ? i + 2 : i;
			i++;
		}
		return i;
	}
	while (i < avail && p[i] >= 0x20 && p[i] <= 0x2f)
		i++;
	if (i < avail && p[i] >= 0x30 && p[i] <= 0x7e)
		i++;
	return i;
}

int
render_clean(struct strbuf *out, const char *s, size_t len, unsigned flags)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t i = 0, run = 0;
	int r = 0;
	if (!s)
		return 0;
	/* Copy runs of plain bytes at once; only special bytes break a run. */
#define FLUSH()                                                                                             \
	do {                                                                                                \
		if (run > 0) {                                                                              \
			r = strbuf_appendn(out, s + i - run, run);                                          \
			if (r < 0)                                                                          \
				return r;                                                                   \
			run = 0;                                                                            \
		}                                                                                           \
	} while (0)
	while (i < len) {
		unsigned char c = p[i];
		if (c >= 0x20 && c < 0x7f) {
			run++, i++;
			continue;
		}
		if (c >= 0x80) {
			uint32_t cp;
			size_t n = utf8_decode(p + i, len - i, &cp);
			/* C1 controls (0x9b is CSI for some terminals) and bidi
			 * embeddings/overrides/isolates, which reorder what a reader
			 * sees ("Trojan Source"), are dropped. */
			bool drop = n > 0 && ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
					      (cp >= 0x2066 && cp <= 0x2069));
			if (n > 0 && !drop && cp != 0xfffe && cp != 0xffff) {
				run += n, i += n;
				continue;
			}
			FLUSH();
			if (n == 0) {
				r = strbuf_append(out, "\xef\xbf\xbd");
				i++;
			} else if (drop) {
				i += n;
			} else {
				r = strbuf_append(out, "\xef\xbf\xbd");
				i += n;
			}
			if (r < 0)
				return r;
			continue;
		}
		FLUSH();
		if (c == 0x1b) {
			i += escape_length(p + i, len - i);
			continue;
		}
		if (c == '\r') {
			i++;
			if (i < len && p[i] == '\n')
				continue;
			c = '\n';
		} else
			i++;
		if (c == '\n' || c == '\t')
			r = strbuf_append(out, (flags & CLEAN_ONE_LINE) ? " " : c == '\n' ? "\n" : "\t");
		if (r < 0)
			return r;
	}
	FLUSH();
#undef FLUSH
	return 0;
}

int
render_xml_escape(struct strbuf *out, const char *s, size_t len, bool attr)
{
	struct strbuf clean = STRBUF_INIT;
	int r = render_clean(&clean, s, len, 0);
	size_t start = 0;
	for (size_t i = 0; r == 0 && i < clean.len; i++) {
		const char *rep;
		switch (clean.data[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		case '\n':
			rep = attr ? "&#10;" : NULL;
			break;
		case '\t':
			rep = attr ? "&#9;" : NULL;
			break;
		default:
			rep = NULL;
		}
		if (!rep)
			continue;
		r = strbuf_appendn(out, clean.data + start, i - start);
		if (r == 0)
			r = strbuf_append(out, rep);
		start = i + 1;
	}
	if (r == 0 && clean.len > start)
		r = strbuf_appendn(out, clean.data + start, clean.len - start);
	strbuf_free(&clean);
	return r;
}

int
render_xml(struct strbuf *out, const char *s)
{
	return s ? render_xml_escape(out, s, strlen(s), false) : 0;
}

int
render_xml_attr(struct strbuf *out, const char *s)
{
	return s ? render_xml_escape(out, s, strlen(s), true) : 0;
}

int
render_shell_word(struct strbuf *out, const char *s, size_t len)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-";
	struct strbuf clean = STRBUF_INIT;
	int r = render_clean(&clean, s ? s : "", s ? len : 0, CLEAN_ONE_LINE);
	const char *c = clean.data ? clean.data : "";
	if (r == 0 && clean.len > 0 && strspn(c, plain) == clean.len)
		r = strbuf_appendn(out, c, clean.len);
	else if (r == 0) {
		r = strbuf_append(out, "'");
		for (size_t i = 0; r == 0 && i < clean.len; i++)
			r = c[i] == '\'' ? strbuf_append(out, "'\\''") : strbuf_appendn(out, &c[i], 1);
		if (r == 0)
			r = strbuf_append(out, "'");
	}
	strbuf_free(&clean);
	return r;
}

int
render_yaml_quoted(struct strbuf *out, const char *s, size_t len)
{
	struct strbuf clean = STRBUF_INIT;
	int r = render_clean(&clean, s ? s : "", s ? len : 0, 0);
	if (r == 0)
		r = strbuf_append(out, "\"");
	size_t start = 0;
	for (size_t i = 0; r == 0 && i < clean.len; i++) {
		char c = clean.data[i];
		const char *rep = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t" : NULL;
		if (!rep)
			continue;
		r = strbuf_appendn(out, clean.data + start, i - start);
		if (r == 0)
			r = strbuf_append(out, rep);
		start = i + 1;
	}
	if (r == 0 && clean.len > start)
		r = strbuf_appendn(out, clean.data + start, clean.len - start);
	if (r == 0)
		r = strbuf_append(out, "\"");
	strbuf_free(&clean);
	return r;
}

int
render_clip(struct strbuf *out, const char *s, size_t len, size_t max, bool keep_end)
{
	if (len <= max)
		return strbuf_appendn(out, s, len);
	size_t cut = len - max;
	int r;
	if (keep_end) {
		size_t from = cut;
		/* Do not start inside a UTF-8 sequence. */
		while (from < len && ((unsigned char) s[from] & 0xc0) == 0x80)
			from++;
		r = strbuf_printf(out, "[... %zu bytes truncated ...]\n", from);
		if (r == 0)
			r = strbuf_appendn(out, s + from, len - from);
	} else {
		size_t to = max;
		while (to > 0 && ((unsigned char) s[to] & 0xc0) == 0x80)
			to--;
		r = strbuf_appendn(out, s, to);
		if (r == 0)
			r = strbuf_printf(out, "\n[... %zu bytes truncated ...]", len - to);
	}
	return r;
}

/* --- numbers --------------------------------------------------------------- */

char *
render_seconds(uint64_t ns, char *buf, size_t size)
{
	uint64_t ms = (ns + NSEC_PER_MSEC / 2) / NSEC_PER_MSEC;
	(void) snprintf(buf, size, "%llu.%03llu", (unsigned long long) (ms / 1000),
			(unsigned long long) (ms % 1000));
	return buf;
}

char *
render_ms(uint64_t ns, char *buf, size_t size)
{
	uint64_t us = (ns + NSEC_PER_USEC / 2) / NSEC_PER_USEC;
	unsigned frac = (unsigned) (us % 1000);
	if (frac == 0)
		(void) snprintf(buf, size, "%llu", (unsigned long long) (us / 1000));
	else {
		char f[8];
		(void) snprintf(f, sizeof(f), "%03u", frac);
		for (int k = 2; k > 0 && f[k] == '0'; k--)
			f[k] = '\0';
		(void) snprintf(buf, size, "%llu.%s", (unsigned long long) (us / 1000), f);
	}
	return buf;
}

char *
render_duration_field(const json_t *obj, const char *key, char *buf, size_t size)
{
	uint64_t ns;
	if (!json_ns(obj, key, &ns)) {
		(void) snprintf(buf, size, "-");
		return buf;
	}
	return duration_format(ns, buf, size);
}
