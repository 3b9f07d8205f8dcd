#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/verdict_class.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

/* ------------------------------------------------------------------------ */
/* Message helpers */

const char *
quote(struct quoted *q, const char *text)
{
	size_t o = 0, chars = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		bool lead = (*p & 0xC0) != 0x80;
		if ((lead && chars++ == QUOTE_CHARS) || o + 8 >= sizeof(q->s) - 4) {
			memcpy(q->s + o, "...", 4);
			return q->s;
		}
		if (*p == '\n') {
			q->s[o++] = '\\';
			q->s[o++] = 'n';
		} else if (*p == '\t') {
			q->s[o++] = '\\';
			q->s[o++] = 't';
		} else if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(q->s + o, sizeof(q->s) - o, "\\x%02x", *p);
		} else {
			q->s[o++] = (char)*p;
		}
	}
	q->s[o] = '\0';
	return q->s;
}

/* Set *ret_msg to a formatted message; returns -EINVAL (or -ENOMEM). */
int
msgf(char **ret_msg, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	*ret_msg = m;
	return -EINVAL;
}

/* "a, b or c" (last_sep " or ") or "a, b, c" (last_sep ", "); NULL on ENOMEM. */
char *
join_names(const char *const *names, size_t n, const char *last_sep)
{
	struct strbuf sb = STRBUF_INIT;
	size_t shown = 0;
	for (size_t i = 0; i < n; i++)
		if (names[i])
			shown++;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!names[i])
			continue;
		if (k > 0 && strbuf_append(&sb, k + 1 == shown ? last_sep : ", ") < 0)
			goto oom;
		if (strbuf_append(&sb, names[i]) < 0)
			goto oom;
		k++;
	}
	if (!sb.data && strbuf_append(&sb, "") < 0)
		goto oom;
	return strbuf_steal(&sb);
oom:
	strbuf_free(&sb);
	return NULL;
}

/* Optimal string alignment distance, bounded: names longer than 64 get none. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[65][65];
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
			v = MIN(v, d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				v = MIN(v, d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	return d[la][lb];
}

/* The closest candidate to a mistyped word, if it is close enough to be a typo. */
const char *
suggest(const char *word, const char *const *cands, size_t n)
{
	size_t len = strlen(word), best = SIZE_MAX;
	const char *found = NULL;
	size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
	for (size_t i = 0; i < n; i++) {
		if (!cands[i])
			continue;
		if (strcasecmp(word, cands[i]) == 0)
			return cands[i];
		size_t dist = edit_distance(word, cands[i]);
		if (dist <= limit && dist < best) {
			best = dist;
			found = cands[i];
		}
	}
	return found;
}

/* "did you mean 'x'?" or "expected one of: a, b, c" into *ret_msg. */
int
unknown_msg(char **ret_msg, const char *what, const char *word, const char *where,
	    const char *const *cands, size_t n, const char *extra)
{
	struct quoted q;
	const char *s = suggest(word, cands, n);
	if (s)
		return msgf(ret_msg, "unknown %s '%s'%s (did you mean '%s'?)", what,
			    quote(&q, word), where, s);
	_cleanup_free_ char *list = join_names(cands, n, ", ");
	if (!list)
		return -ENOMEM;
	return msgf(ret_msg, "unknown %s '%s'%s (expected one of: %s%s)", what, quote(&q, word),
		    where, list, extra ? extra : "");
}

/* ------------------------------------------------------------------------ */
/* Value parsers shared by the YAML loader, --set and matrix values. Each
 * leaves its output alone on failure and explains in *ret_msg. */

bool
parse_uint(const char *text, unsigned long long max, unsigned long long *ret)
{
	unsigned long long v = 0;
	if (!*text)
		return false;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (v > (ULLONG_MAX - 9) / 10)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > max)
		return false;
	*ret = v;
	return true;
}

int
parse_bool_value(const char *key, const char *text, bool *ret, char **ret_msg)
{
	static const char *const yes[] = {"on", "true", "yes"}, *const no[] = {"off", "false",
									       "no"};
	struct quoted q;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return msgf(ret_msg, "invalid value '%s' for %s (expected on, off, true, false, yes or no)",
		    quote(&q, text), key);
}

int
parse_duration_value(const char *key, const char *text, uint64_t *ret, char **ret_msg)
{
	struct quoted q;
	uint64_t ns;
	int r = duration_parse(text, &ns);
	/* JSON integers are signed 64-bit: keep every duration representable. */
	if (r == -ERANGE || (r >= 0 && ns > (uint64_t)INT64_MAX))
		return msgf(ret_msg, "duration '%s' for %s is too large", quote(&q, text), key);
	if (r < 0)
		return msgf(ret_msg, "invalid duration '%s' for %s (expected e.g. 250ms, 1.5s)",
			    quote(&q, text), key);
	*ret = ns;
	return 0;
}

int
parse_size_value(const char *key, const char *text, uint64_t *ret, char **ret_msg)
{
	struct quoted q;
	uint64_t bytes;
	int r = size_parse(text, &bytes);
	if (r == -ERANGE || (r >= 0 && bytes > (uint64_t)INT64_MAX))
		return msgf(ret_msg, "size '%s' for %s is too large", quote(&q, text), key);
	if (r < 0)
		return msgf(ret_msg, "invalid size '%s' for %s (expected e.g. 64KiB, 256MiB, 1GiB)",
			    quote(&q, text), key);
	*ret = bytes;
	return 0;
}

int
parse_signal_value(const char *key, const char *text, int *ret, char **ret_msg)
{
	struct quoted q;
	int sig = signal_parse(text);
	if (sig < 0)
		return msgf(ret_msg,
			    "unknown signal '%s' for %s (expected e.g. SIGINT, SIGTERM, SIGKILL or "
			    "a number)",
			    quote(&q, text), key);
	*ret = sig;
	return 0;
}

int
parse_choice_value(const char *key, const char *text, const char *const *names, size_t n, int *ret,
		   char **ret_msg)
{
	struct quoted q;
	int v = name_lookup(names, n, text);
	if (v >= 0) {
		*ret = v;
		return 0;
	}
	_cleanup_free_ char *list = join_names(names, n, " or ");
	if (!list)
		return -ENOMEM;
	return msgf(ret_msg, "invalid value '%s' for %s (expected %s)", quote(&q, text), key, list);
}

int
parse_verdict_value(const char *key, const char *text, char **ret_verdict, bool *ret_none,
		    char **ret_msg)
{
	if (strcmp(text, "none") == 0) {
		*ret_verdict = NULL;
		*ret_none = true;
		return 0;
	}
	if (!verdict_class_lookup(text)) {
		size_t n;
		const struct verdict_class_info *all = verdict_class_all(&n);
		_cleanup_free_ const char **names = calloc(n, sizeof(*names));
		if (!names)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			names[i] = all[i].name;
		char where[96];
		(void)snprintf(where, sizeof(where), " for %s", key);
		return unknown_msg(ret_msg, "verdict class", text, where, names, n, ", or none");
	}
	char *v = strdup(text);
	if (!v)
		return -ENOMEM;
	*ret_verdict = v;
	*ret_none = false;
	return 0;
}
