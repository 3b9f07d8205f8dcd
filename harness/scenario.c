/* Scenario files: a strict YAML subset.
 *
 * libyaml's event API feeds a small tree of nodes (scalar, list, mapping, each
 * with its 1-based start position); anchors, aliases, tags and extra documents
 * are refused while reading, so the tree is plain data. The tree is then
 * checked and converted field by field: every scalar is text and converted
 * explicitly, so YAML's type guessing (`no`, `0755`) never happens. The first
 * problem found ends the load with one "path:line:col: message". */
#include "harness/scenario.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "reports/verdict_class.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

/* ------------------------------------------------------------------------ */
/* Names */

static const char *const backend_names[] = {
    [BACKEND_MTF] = "mtf",
    [BACKEND_FORK] = "fork",
    [BACKEND_SPAWN] = "spawn",
};
static const char *const capture_names[] = {
    [CAPTURE_NONE] = "none",
    [CAPTURE_PIPE] = "pipe",
    [CAPTURE_TMPFILE] = "tmpfile",
};
static const char *const stdio_names[] = {
    [STDIO_INHERIT] = "inherit",
    [STDIO_DEVNULL] = "devnull",
    [STDIO_FILE] = "file",
};
static const char *const wait_names[] = {
    [WAIT_PIDFD] = "pidfd",
    [WAIT_THREAD] = "thread",
};
static const char *const outcome_names[] = {
    [OUTCOME_OK] = "ok",
    [OUTCOME_ERROR] = "error",
    [OUTCOME_HANG] = "hang",
};
static const char *const target_names[] = {
    [INTERRUPT_ROOT] = "root",
    [INTERRUPT_GROUP] = "group",
};
static const char *const stream_names[] = {
    [LOG_STDOUT] = "stdout",
    [LOG_STDERR] = "stderr",
};

/* What a step accepts, by kind (same order as enum step_kind). */
enum step_arg {
	ARG_NONE,     /* takes no value */
	ARG_DURATION, /* sleep, spin */
	ARG_TEXT,     /* raise */
	ARG_STATUS,   /* exit */
	ARG_SIGNAL,   /* kill_self */
	ARG_LOG,      /* log: SIZE | {bytes, to} */
	ARG_CHILD,    /* spawn, await */
};

static const struct step_info {
	const char *name;
	bool bare_ok; /* may be written as a plain word */
	enum step_arg arg;
	bool in_boot;	     /* allowed before the handshake */
	const char *example; /* for "needs a value" */
} step_infos[] = {
    [STEP_SLEEP] = {"sleep", false, ARG_DURATION, true, "250ms"},
    [STEP_LOG] = {"log", false, ARG_LOG, true, "64KiB"},
    [STEP_RAISE] = {"raise", true, ARG_TEXT, true, "\"message\""},
    [STEP_EXIT] = {"exit", false, ARG_STATUS, true, "2"},
    [STEP_IGNORE_CANCEL] = {"ignore_cancel", true, ARG_NONE, false, NULL},
    [STEP_IGNORE_SIGTERM] = {"ignore_sigterm", true, ARG_NONE, true, NULL},
    [STEP_BLOCK_SIGINT] = {"block_sigint", true, ARG_NONE, true, NULL},
    [STEP_SPIN] = {"spin", true, ARG_DURATION, true, "200ms"},
    [STEP_SPAWN] = {"spawn", false, ARG_CHILD, false, "NAME"},
    [STEP_SERVE] = {"serve", true, ARG_NONE, false, NULL},
    [STEP_AWAIT] = {"await", false, ARG_CHILD, false, "NAME"},
    [STEP_KILL_SELF] = {"kill_self", false, ARG_SIGNAL, true, "SIGKILL"},
    [STEP_DAEMONIZE] = {"daemonize", true, ARG_NONE, false, NULL},
};

static int
name_lookup(const char *const *names, size_t n, const char *name)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int)i;
	return -EINVAL;
}

static const char *
name_of(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n && names[v] ? names[v] : "?";
}

const char *
backend_name(enum backend_kind b)
{
	return name_of(backend_names, ARRAY_SIZE(backend_names), (int)b);
}

int
backend_from_name(const char *name)
{
	return name_lookup(backend_names, ARRAY_SIZE(backend_names), name);
}

const char *
capture_name(enum capture_kind c)
{
	return name_of(capture_names, ARRAY_SIZE(capture_names), (int)c);
}

int
capture_from_name(const char *name)
{
	return name_lookup(capture_names, ARRAY_SIZE(capture_names), name);
}

const char *
stdio_name(enum stdio_kind k)
{
	return name_of(stdio_names, ARRAY_SIZE(stdio_names), (int)k);
}

int
stdio_from_name(const char *name)
{
	return name_lookup(stdio_names, ARRAY_SIZE(stdio_names), name);
}

const char *
wait_name(enum wait_kind w)
{
	return name_of(wait_names, ARRAY_SIZE(wait_names), (int)w);
}

int
wait_from_name(const char *name)
{
	return name_lookup(wait_names, ARRAY_SIZE(wait_names), name);
}

const char *
outcome_name(enum outcome o)
{
	return name_of(outcome_names, ARRAY_SIZE(outcome_names), (int)o);
}

int
outcome_from_name(const char *name)
{
	return name_lookup(outcome_names, ARRAY_SIZE(outcome_names), name);
}

const char *
interrupt_target_name(enum interrupt_target t)
{
	return name_of(target_names, ARRAY_SIZE(target_names), (int)t);
}

int
interrupt_target_from_name(const char *name)
{
	return name_lookup(target_names, ARRAY_SIZE(target_names), name);
}

const char *
step_name(enum step_kind k)
{
	return (unsigned)k < ARRAY_SIZE(step_infos) ? step_infos[k].name : "?";
}

int
step_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(step_infos); i++)
		if (strcmp(step_infos[i].name, name) == 0)
			return (int)i;
	return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Message helpers */

#define QUOTE_CHARS 60

/* A user value as it may appear inside a one-line message: control
 * characters escaped, long values cut at a UTF-8 boundary with "...". */
struct quoted {
	char s[QUOTE_CHARS * 4 + 16];
};

static const char *
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

static int msgf(char **ret_msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set *ret_msg to a formatted message; returns -EINVAL (or -ENOMEM). */
static int
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
static char *
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
static const char *
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
static int
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

static bool
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

static int
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

static int
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

static int
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

static int
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

static int
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

static int
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

/* ------------------------------------------------------------------------ */
/* Settings: the keys of --set, matrix axes and `when` conditions. */

enum setting_id {
	SET_BACKEND,
	SET_CAPTURE,
	SET_IMAGE,
	SET_BUDGET,
	SET_FD_SCRUB,
	SET_RESET_SIGMASK,
	SET_STDIO,
	SET_ATFORK_LOCKS,
	SET_WAIT,
	SET_BOOT_RACE,
	SET_CANCEL_FIRST,
	SET_PEER_WAIT_BOUND,
	SET_TREE_KILL,
	SET_CANCEL_ACK,
	SET_HARD_KILL,
	SET_PEER_WAIT,
	SET_RUN,
	SET_LINGER,
	SET_INTERRUPT_AFTER,
	SET_INTERRUPT_SIGNAL,
	SET_INTERRUPT_TARGET,
	SET_EXPECT_OUTCOME,
	SET_EXPECT_VERDICT,
	SET_EXPECT_LEAKED,
};

static const struct setting {
	const char *key;   /* canonical */
	const char *alias; /* bare fix name, accepted as well */
	enum setting_id id;
} settings[] = {
    {"backend", NULL, SET_BACKEND},
    {"capture", NULL, SET_CAPTURE},
    {"image", NULL, SET_IMAGE},
    {"budget", NULL, SET_BUDGET},
    {"fixes.fd_scrub", "fd_scrub", SET_FD_SCRUB},
    {"fixes.reset_sigmask", "reset_sigmask", SET_RESET_SIGMASK},
    {"fixes.stdio", "stdio", SET_STDIO},
    {"fixes.atfork_locks", "atfork_locks", SET_ATFORK_LOCKS},
    {"fixes.wait", "wait", SET_WAIT},
    {"fixes.boot_race", "boot_race", SET_BOOT_RACE},
    {"fixes.cancel_first", "cancel_first", SET_CANCEL_FIRST},
    {"fixes.peer_wait_bound", "peer_wait_bound", SET_PEER_WAIT_BOUND},
    {"fixes.tree_kill", "tree_kill", SET_TREE_KILL},
    {"timeouts.cancel_ack", NULL, SET_CANCEL_ACK},
    {"timeouts.hard_kill", NULL, SET_HARD_KILL},
    {"timeouts.peer_wait", NULL, SET_PEER_WAIT},
    {"timeouts.run", NULL, SET_RUN},
    {"timeouts.linger", NULL, SET_LINGER},
    {"interrupt.after", NULL, SET_INTERRUPT_AFTER},
    {"interrupt.signal", NULL, SET_INTERRUPT_SIGNAL},
    {"interrupt.target", NULL, SET_INTERRUPT_TARGET},
    {"expect.outcome", NULL, SET_EXPECT_OUTCOME},
    {"expect.verdict", NULL, SET_EXPECT_VERDICT},
    {"expect.leaked", NULL, SET_EXPECT_LEAKED},
};

static const char *const fix_keys[] = {
    "fd_scrub",	 "reset_sigmask", "stdio",	     "atfork_locks", "wait",
    "boot_race", "cancel_first",  "peer_wait_bound", "tree_kill",
};
static const char *const timeout_keys[] = {"cancel_ack", "hard_kill", "peer_wait", "run", "linger"};
static const char *const interrupt_keys[] = {"after", "signal", "target"};
static const char *const expect_keys[] = {"outcome", "verdict", "leaked"};

static const struct setting *
setting_find(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (strcmp(settings[i].key, key) == 0 ||
		    (settings[i].alias && strcmp(settings[i].alias, key) == 0))
			return &settings[i];
	return NULL;
}

static int
setting_unknown_msg(char **ret_msg, const char *word, const char *where)
{
	const char *cands[ARRAY_SIZE(settings) * 2];
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		cands[n++] = settings[i].key;
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		cands[n++] = settings[i].alias;
	const char *s = suggest(word, cands, n);
	struct quoted q;
	if (s)
		return msgf(ret_msg, "unknown key '%s'%s (did you mean '%s'?)", quote(&q, word),
			    where, s);
	return msgf(
	    ret_msg,
	    "unknown key '%s'%s (expected backend, capture, image, budget, fixes.NAME, "
	    "timeouts.NAME, interrupt.after|signal|target or expect.outcome|verdict|leaked)",
	    quote(&q, word), where);
}

static int
expect_apply(struct expectation *e, const struct setting *st, const char *text, char **ret_msg)
{
	struct quoted q;
	int r, v;
	switch (st->id) {
	case SET_EXPECT_OUTCOME:
		r = parse_choice_value(st->key, text, outcome_names, ARRAY_SIZE(outcome_names), &v,
				       ret_msg);
		if (r < 0)
			return r;
		e->has_outcome = true;
		e->outcome = (enum outcome)v;
		return 0;
	case SET_EXPECT_VERDICT: {
		char *verdict = NULL;
		bool none = false;
		r = parse_verdict_value(st->key, text, &verdict, &none, ret_msg);
		if (r < 0)
			return r;
		free(e->verdict);
		e->verdict = verdict;
		e->no_verdict = none;
		return 0;
	}
	case SET_EXPECT_LEAKED: {
		unsigned long long n;
		if (!parse_uint(text, INT_MAX, &n))
			return msgf(ret_msg,
				    "invalid value '%s' for %s (expected a non-negative integer)",
				    quote(&q, text), st->key);
		e->has_leaked = true;
		e->leaked = (unsigned)n;
		return 0;
	}
	default:
		return -EINVAL;
	}
}

/* Apply one setting. s is untouched on failure. */
static int
setting_apply(struct scenario *s, const struct setting *st, const char *text, char **ret_msg)
{
	bool *flag = NULL;
	uint64_t *duration = NULL;
	uint64_t u;
	int r, v;

	switch (st->id) {
	case SET_BACKEND:
		r = parse_choice_value(st->key, text, backend_names, ARRAY_SIZE(backend_names), &v,
				       ret_msg);
		if (r >= 0)
			s->backend = (enum backend_kind)v;
		return r;
	case SET_CAPTURE:
		r = parse_choice_value(st->key, text, capture_names, ARRAY_SIZE(capture_names), &v,
				       ret_msg);
		if (r >= 0)
			s->capture = (enum capture_kind)v;
		return r;
	case SET_IMAGE:
		r = parse_size_value(st->key, text, &u, ret_msg);
		if (r >= 0)
			s->image_bytes = u;
		return r;
	case SET_BUDGET:
		duration = &s->budget_ns;
		break;
	case SET_FD_SCRUB:
		flag = &s->fixes.fd_scrub;
		break;
	case SET_RESET_SIGMASK:
		flag = &s->fixes.reset_sigmask;
		break;
	case SET_ATFORK_LOCKS:
		flag = &s->fixes.atfork_locks;
		break;
	case SET_BOOT_RACE:
		flag = &s->fixes.boot_race;
		break;
	case SET_CANCEL_FIRST:
		flag = &s->fixes.cancel_first;
		break;
	case SET_PEER_WAIT_BOUND:
		flag = &s->fixes.peer_wait_bound;
		break;
	case SET_TREE_KILL:
		flag = &s->fixes.tree_kill;
		break;
	case SET_STDIO:
		r = parse_choice_value(st->key, text, stdio_names, ARRAY_SIZE(stdio_names), &v,
				       ret_msg);
		if (r >= 0)
			s->fixes.stdio = (enum stdio_kind)v;
		return r;
	case SET_WAIT:
		r = parse_choice_value(st->key, text, wait_names, ARRAY_SIZE(wait_names), &v,
				       ret_msg);
		if (r >= 0)
			s->fixes.wait = (enum wait_kind)v;
		return r;
	case SET_CANCEL_ACK:
		duration = &s->timeouts.cancel_ack_ns;
		break;
	case SET_HARD_KILL:
		duration = &s->timeouts.hard_kill_ns;
		break;
	case SET_PEER_WAIT:
		duration = &s->timeouts.peer_wait_ns;
		break;
	case SET_LINGER:
		duration = &s->timeouts.linger_ns;
		break;
	case SET_RUN:
		r = parse_duration_value(st->key, text, &u, ret_msg);
		if (r < 0)
			return r;
		if (u == 0)
			return msgf(ret_msg, "%s must be greater than 0 (it bounds the whole run)",
				    st->key);
		s->timeouts.run_ns = u;
		return 0;
	case SET_INTERRUPT_AFTER:
		r = parse_duration_value(st->key, text, &u, ret_msg);
		if (r < 0)
			return r;
		s->interrupt.after_ns = u;
		s->interrupt.enabled = true;
		return 0;
	case SET_INTERRUPT_SIGNAL:
		r = parse_signal_value(st->key, text, &v, ret_msg);
		if (r >= 0)
			s->interrupt.signal = v;
		return r;
	case SET_INTERRUPT_TARGET:
		r = parse_choice_value(st->key, text, target_names, ARRAY_SIZE(target_names), &v,
				       ret_msg);
		if (r >= 0)
			s->interrupt.target = (enum interrupt_target)v;
		return r;
	case SET_EXPECT_OUTCOME:
	case SET_EXPECT_VERDICT:
	case SET_EXPECT_LEAKED:
		return expect_apply(&s->expect, st, text, ret_msg);
	}
	if (flag) {
		bool b;
		r = parse_bool_value(st->key, text, &b, ret_msg);
		if (r >= 0)
			*flag = b;
		return r;
	}
	if (duration) {
		r = parse_duration_value(st->key, text, &u, ret_msg);
		if (r >= 0)
			*duration = u;
		return r;
	}
	return -EINVAL;
}

static void
scenario_set_defaults(struct scenario *s)
{
	s->backend = BACKEND_MTF;
	s->capture = CAPTURE_TMPFILE;
	s->image_bytes = 0;
	s->budget_ns = 0;
	s->fixes = (struct fixes){
	    .fd_scrub = true,
	    .reset_sigmask = true,
	    .stdio = STDIO_INHERIT,
	    .atfork_locks = true,
	    .wait = WAIT_PIDFD,
	    .boot_race = true,
	    .cancel_first = true,
	    .peer_wait_bound = true,
	    .tree_kill = true,
	};
	s->timeouts = (struct timeouts){
	    .cancel_ack_ns = 500 * NSEC_PER_MSEC,
	    .hard_kill_ns = 1600 * NSEC_PER_MSEC,
	    .peer_wait_ns = 3 * NSEC_PER_SEC,
	    .run_ns = 10 * NSEC_PER_SEC,
	    .linger_ns = 500 * NSEC_PER_MSEC,
	};
	s->interrupt = (struct interrupt){
	    .enabled = false, .after_ns = 0, .signal = SIGINT, .target = INTERRUPT_ROOT};
	s->expect = (struct expectation){
	    .has_outcome = true, .outcome = OUTCOME_OK, .has_leaked = true, .leaked = 0};
	s->root.id = 0;
	s->root.parent_id = -1;
}

int
scenario_set(struct scenario *s, const char *assignment, char **ret_error)
{
	struct quoted q;
	char *msg = NULL;
	int r;
	const char *eq = strchr(assignment, '=');

	if (!eq || eq == assignment) {
		r = msgf(&msg, "expected KEY=VALUE, e.g. backend=fork or fixes.fd_scrub=off");
	} else {
		_cleanup_free_ char *key = strndup(assignment, (size_t)(eq - assignment));
		if (!key)
			return -ENOMEM;
		const struct setting *st = setting_find(key);
		r = st ? setting_apply(s, st, eq + 1, &msg) : setting_unknown_msg(&msg, key, "");
		if (r >= 0)
			return 0;
	}
	if (r == -EINVAL && msg &&
	    asprintf(ret_error, "--set %s: %s", quote(&q, assignment), msg) < 0)
		r = -ENOMEM;
	free(msg);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Free and copy */

static void
steps_free(struct step *steps, size_t n)
{
	for (size_t i = 0; steps && i < n; i++)
		free(steps[i].text);
	free(steps);
}

static void
actor_clear(struct actor_spec *a)
{
	if (!a)
		return;
	free(a->name);
	steps_free(a->boot, a->n_boot);
	steps_free(a->steps, a->n_steps);
	for (size_t i = 0; i < a->n_children; i++)
		actor_clear(&a->children[i]);
	free(a->children);
	*a = (struct actor_spec){.parent_id = -1};
}

static void
expectation_clear(struct expectation *e)
{
	free(e->verdict);
	e->verdict = NULL;
}

static void
matrix_free(struct matrix_axis *axes, size_t n)
{
	for (size_t i = 0; axes && i < n; i++) {
		free(axes[i].key);
		for (size_t j = 0; j < axes[i].n_values; j++)
			free(axes[i].values[j]);
		free(axes[i].values);
	}
	free(axes);
}

static void
cell_rules_free(struct cell_rule *rules, size_t n)
{
	for (size_t i = 0; rules && i < n; i++) {
		for (size_t j = 0; j < rules[i].n_when; j++) {
			free(rules[i].when[j].key);
			free(rules[i].when[j].value);
		}
		free(rules[i].when);
		expectation_clear(&rules[i].expect);
	}
	free(rules);
}

void
scenario_free(struct scenario *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->name);
	free(s->description);
	free(s->cell);
	actor_clear(&s->root);
	expectation_clear(&s->expect);
	matrix_free(s->matrix, s->n_matrix);
	cell_rules_free(s->cell_rules, s->n_cell_rules);
	free(s);
}

void
scenario_free_cells(struct scenario **cells, size_t n)
{
	for (size_t i = 0; cells && i < n; i++)
		scenario_free(cells[i]);
	free(cells);
}

/* strdup that keeps NULL; sets *failed on ENOMEM. */
static char *
dup_or_null(const char *s, bool *failed)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

static int
steps_copy(const struct step *src, size_t n, struct step **ret)
{
	bool failed = false;
	if (n == 0) {
		*ret = NULL;
		return 0;
	}
	struct step *d = calloc(n, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		d[i] = src[i];
		d[i].text = dup_or_null(src[i].text, &failed);
	}
	if (failed) {
		steps_free(d, n);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

/* Deep copy into dst; on failure dst is left empty. */
static int
actor_copy(struct actor_spec *dst, const struct actor_spec *src)
{
	bool failed = false;
	*dst = *src;
	dst->name = NULL;
	dst->boot = dst->steps = NULL;
	dst->children = NULL;
	dst->n_boot = dst->n_steps = dst->n_children = 0;
	dst->name = dup_or_null(src->name, &failed);
	if (failed || steps_copy(src->boot, src->n_boot, &dst->boot) < 0)
		goto fail;
	dst->n_boot = src->n_boot;
	if (steps_copy(src->steps, src->n_steps, &dst->steps) < 0)
		goto fail;
	dst->n_steps = src->n_steps;
	if (src->n_children) {
		dst->children = calloc(src->n_children, sizeof(*dst->children));
		if (!dst->children)
			goto fail;
		for (size_t i = 0; i < src->n_children; i++) {
			if (actor_copy(&dst->children[i], &src->children[i]) < 0)
				goto fail;
			dst->n_children = i + 1;
		}
	}
	return 0;
fail:
	actor_clear(dst);
	return -ENOMEM;
}

static int
expectation_copy(struct expectation *dst, const struct expectation *src)
{
	bool failed = false;
	*dst = *src;
	dst->verdict = dup_or_null(src->verdict, &failed);
	return failed ? -ENOMEM : 0;
}

static int
matrix_copy(const struct matrix_axis *src, size_t n, struct matrix_axis **ret)
{
	bool failed = false;
	*ret = NULL;
	if (n == 0)
		return 0;
	struct matrix_axis *d = calloc(n, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n && !failed; i++) {
		d[i] = (struct matrix_axis){.line = src[i].line, .column = src[i].column};
		d[i].key = dup_or_null(src[i].key, &failed);
		d[i].values = calloc(src[i].n_values ? src[i].n_values : 1, sizeof(char *));
		if (!d[i].values) {
			failed = true;
			break;
		}
		d[i].n_values = src[i].n_values;
		for (size_t j = 0; j < src[i].n_values; j++)
			d[i].values[j] = dup_or_null(src[i].values[j], &failed);
	}
	if (failed) {
		matrix_free(d, n);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

static int
cell_rules_copy(const struct cell_rule *src, size_t n, struct cell_rule **ret)
{
	bool failed = false;
	*ret = NULL;
	if (n == 0)
		return 0;
	struct cell_rule *d = calloc(n, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n && !failed; i++) {
		d[i] = (struct cell_rule){.line = src[i].line, .column = src[i].column};
		if (expectation_copy(&d[i].expect, &src[i].expect) < 0) {
			failed = true;
			break;
		}
		d[i].when = calloc(src[i].n_when ? src[i].n_when : 1, sizeof(*d[i].when));
		if (!d[i].when) {
			failed = true;
			break;
		}
		d[i].n_when = src[i].n_when;
		for (size_t j = 0; j < src[i].n_when; j++) {
			d[i].when[j].key = dup_or_null(src[i].when[j].key, &failed);
			d[i].when[j].value = dup_or_null(src[i].when[j].value, &failed);
		}
	}
	if (failed) {
		cell_rules_free(d, n);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

static struct scenario *
scenario_copy_full(const struct scenario *s, bool with_matrix)
{
	bool failed = false;
	struct scenario *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	*c = *s;
	c->path = c->name = c->description = c->cell = NULL;
	c->root = (struct actor_spec){.parent_id = -1};
	c->expect.verdict = NULL;
	c->matrix = NULL;
	c->n_matrix = 0;
	c->cell_rules = NULL;
	c->n_cell_rules = 0;

	c->path = dup_or_null(s->path, &failed);
	c->name = dup_or_null(s->name, &failed);
	c->description = dup_or_null(s->description, &failed);
	c->cell = dup_or_null(s->cell, &failed);
	c->expect.verdict = dup_or_null(s->expect.verdict, &failed);
	if (failed || actor_copy(&c->root, &s->root) < 0)
		goto fail;
	if (with_matrix) {
		if (matrix_copy(s->matrix, s->n_matrix, &c->matrix) < 0)
			goto fail;
		c->n_matrix = s->n_matrix;
		if (cell_rules_copy(s->cell_rules, s->n_cell_rules, &c->cell_rules) < 0)
			goto fail;
		c->n_cell_rules = s->n_cell_rules;
	}
	return c;
fail:
	scenario_free(c);
	return NULL;
}

struct scenario *
scenario_copy(const struct scenario *s)
{
	return s ? scenario_copy_full(s, true) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Index */

static size_t
actor_count(const struct actor_spec *a)
{
	size_t n = 1;
	for (size_t i = 0; i < a->n_children; i++)
		n += actor_count(&a->children[i]);
	return n;
}

static void
actor_index(struct actor_spec *a, int depth, int parent_id, struct actor_spec **arr, size_t *pos)
{
	a->id = (int)*pos;
	a->depth = depth;
	a->parent_id = parent_id;
	if (arr)
		arr[*pos] = a;
	(*pos)++;
	for (size_t i = 0; i < a->n_children; i++)
		actor_index(&a->children[i], depth + 1, a->id, arr, pos);
}

int
scenario_index(struct scenario *s, struct actor_spec ***ret_actors, size_t *ret_n)
{
	size_t n = actor_count(&s->root), pos = 0;
	struct actor_spec **arr = NULL;
	if (ret_actors) {
		arr = calloc(n, sizeof(*arr));
		if (!arr)
			return -ENOMEM;
	}
	actor_index(&s->root, 0, -1, arr, &pos);
	if (ret_actors)
		*ret_actors = arr;
	if (ret_n)
		*ret_n = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* YAML reading: events -> node tree */

enum ynode_type {
	YNODE_SCALAR,
	YNODE_SEQUENCE,
	YNODE_MAPPING,
};

struct ynode {
	enum ynode_type type;
	unsigned line, column; /* 1-based start */
	char *text;	       /* scalar */
	struct ynode **items;  /* sequence: items; mapping: key, value, key, value, ... */
	size_t n_items;
	size_t cap;
};

static void
ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_items; i++)
		ynode_free(n->items[i]);
	free(n->items);
	free(n->text);
	free(n);
}

struct loader {
	const char *path;
	const char *text;
	size_t len;
	yaml_parser_t parser;
	char *error; /* the one "path:line:col: message" */
};

static int loader_fail(struct loader *l, unsigned line, unsigned column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
loader_fail(struct loader *l, unsigned line, unsigned column, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;
	if (l->error)
		return -EINVAL;
	va_start(ap, fmt);
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	if (asprintf(&l->error, "%s:%u:%u: %s", l->path, line, column, m) < 0) {
		l->error = NULL;
		free(m);
		return -ENOMEM;
	}
	free(m);
	return -EINVAL;
}

#define fail_at(l, node, ...) loader_fail((l), (node)->line, (node)->column, __VA_ARGS__)

/* Report a message produced by a value parser at a node. */
static int
fail_msg(struct loader *l, const struct ynode *at, int r, char *msg)
{
	if (r == -EINVAL && msg)
		r = fail_at(l, at, "%s", msg);
	free(msg);
	return r;
}

/* Offset of the first byte that does not start a valid UTF-8 sequence, or len. */
static size_t
utf8_invalid_offset(const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	for (size_t i = 0; i < len;) {
		size_t n;
		unsigned cp;
		if (t[i] < 0x80) {
			i++;
			continue;
		}
		if (t[i] >= 0xC2 && t[i] <= 0xDF) {
			n = 2;
			cp = t[i] & 0x1F;
		} else if (t[i] >= 0xE0 && t[i] <= 0xEF) {
			n = 3;
			cp = t[i] & 0x0F;
		} else if (t[i] >= 0xF0 && t[i] <= 0xF4) {
			n = 4;
			cp = t[i] & 0x07;
		} else {
			return i;
		}
		if (i + n > len)
			return i;
		for (size_t k = 1; k < n; k++) {
			if ((t[i + k] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (t[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n;
	}
	return len;
}

/* 1-based line/column (characters) of a byte offset. */
static void
position_of_offset(const struct loader *l, size_t offset, unsigned *ret_line, unsigned *ret_column)
{
	unsigned line = 1, column = 1;
	for (size_t i = 0; i < offset && i < l->len; i++) {
		unsigned char c = (unsigned char)l->text[i];
		if (c == '\n') {
			line++;
			column = 1;
		} else if ((c & 0xC0) != 0x80) {
			column++;
		}
	}
	*ret_line = line;
	*ret_column = column;
}

/* Byte offset of a 1-based line/column, or len. */
static size_t
offset_of_position(const struct loader *l, size_t line, size_t column)
{
	size_t i = 0;
	for (size_t ln = 1; ln < line && i < l->len; i++)
		if (l->text[i] == '\n')
			ln++;
	for (size_t col = 1; i < l->len && l->text[i] != '\n'; i++) {
		if (((unsigned char)l->text[i] & 0xC0) == 0x80)
			continue;
		if (col++ == column)
			return i;
	}
	return i;
}

static int
loader_syntax_error(struct loader *l)
{
	const yaml_parser_t *p = &l->parser;
	const char *problem = p->problem ? p->problem : "invalid YAML";
	unsigned line, column;

	if (p->error == YAML_MEMORY_ERROR)
		return -ENOMEM;
	if (p->error == YAML_READER_ERROR) {
		/* libyaml points past the bad sequence; name the byte that starts it. */
		size_t bad = utf8_invalid_offset(l->text, l->len);
		if (bad < l->len) {
			position_of_offset(l, bad, &line, &column);
			return loader_fail(
			    l, line, column,
			    "invalid UTF-8 (byte 0x%02X); scenario files must be UTF-8 text",
			    (unsigned char)l->text[bad]);
		}
		position_of_offset(l, p->problem_offset, &line, &column);
		if (p->problem_value >= 0)
			return loader_fail(l, line, column,
					   "%s (byte 0x%02X); scenario files must be UTF-8 text",
					   problem, (unsigned)p->problem_value);
		return loader_fail(l, line, column, "%s", problem);
	}
	line = (unsigned)p->problem_mark.line + 1;
	column = (unsigned)p->problem_mark.column + 1;
	size_t off = offset_of_position(l, line, column);
	/* libyaml only says "cannot start any token" for the most common mistake. */
	const char *hint = "";
	if (off < l->len && l->text[off] == '\t')
		hint = "; tabs are not allowed for indentation, use spaces";
	else if (strcmp(problem, "mapping values are not allowed in this context") == 0)
		hint = "; check the indentation, or quote a value that contains ': '";
	if (p->context)
		return loader_fail(l, line, column, "%s (%s at %zu:%zu)%s", problem, p->context,
				   p->context_mark.line + 1, p->context_mark.column + 1, hint);
	return loader_fail(l, line, column, "%s%s", problem, hint);
}

static int
loader_next(struct loader *l, yaml_event_t *ev)
{
	if (yaml_parser_parse(&l->parser, ev))
		return 0;
	return loader_syntax_error(l);
}

/* "tag:yaml.org,2002:int" is what was written as "!!int". */
static const char *
tag_display(const char *tag, char *buf, size_t size)
{
	static const char core[] = "tag:yaml.org,2002:";
	if (strncmp(tag, core, sizeof(core) - 1) == 0) {
		(void)snprintf(buf, size, "!!%s", tag + sizeof(core) - 1);
		return buf;
	}
	return tag;
}

static int
read_node(struct loader *l, const yaml_event_t *ev, unsigned level, struct ynode **ret)
{
	unsigned line = (unsigned)ev->start_mark.line + 1,
		 column = (unsigned)ev->start_mark.column + 1;
	const yaml_char_t *anchor, *tag;
	enum ynode_type type;
	struct quoted q;
	char buf[128];
	int r;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return loader_fail(l, line, column,
				   "aliases are not supported ('*%s'); write the value out in full",
				   quote(&q, (const char *)ev->data.alias.anchor));
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		type = YNODE_SCALAR;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		type = YNODE_SEQUENCE;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		type = YNODE_MAPPING;
		break;
	default:
		return loader_fail(l, line, column, "unexpected YAML structure");
	}
	if (anchor)
		return loader_fail(l, line, column,
				   "anchors are not supported ('&%s'); write the value out in full",
				   quote(&q, (const char *)anchor));
	if (tag)
		return loader_fail(
		    l, line, column,
		    "tags are not supported ('%s'); remove it, every value is read as text",
		    quote(&q, tag_display((const char *)tag, buf, sizeof(buf))));
	if (type != YNODE_SCALAR && level + 1 > SCENARIO_MAX_YAML_NESTING)
		return loader_fail(l, line, column, "more than %d levels of nesting",
				   SCENARIO_MAX_YAML_NESTING);

	struct ynode *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->type = type;
	n->line = line;
	n->column = column;
	if (type == YNODE_SCALAR) {
		const char *value = (const char *)ev->data.scalar.value;
		size_t length = ev->data.scalar.length;
		if (memchr(value, '\0', length)) {
			ynode_free(n);
			return loader_fail(l, line, column,
					   "NUL characters are not allowed in values");
		}
		n->text = strndup(value, length);
		if (!n->text) {
			ynode_free(n);
			return -ENOMEM;
		}
		*ret = n;
		return 0;
	}
	for (;;) {
		yaml_event_t child;
		struct ynode *c = NULL;
		r = loader_next(l, &child);
		if (r < 0)
			goto fail;
		if (child.type == YAML_SEQUENCE_END_EVENT || child.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&child);
			break;
		}
		r = read_node(l, &child, level + 1, &c);
		yaml_event_delete(&child);
		if (r < 0)
			goto fail;
		if (n->n_items == n->cap) {
			size_t cap = n->cap ? n->cap * 2 : 8;
			struct ynode **items = realloc(n->items, cap * sizeof(*items));
			if (!items) {
				ynode_free(c);
				r = -ENOMEM;
				goto fail;
			}
			n->items = items;
			n->cap = cap;
		}
		n->items[n->n_items++] = c;
	}
	*ret = n;
	return 0;
fail:
	ynode_free(n);
	return r;
}

static int
read_document(struct loader *l, struct ynode **ret)
{
	yaml_event_t ev;
	struct ynode *root = NULL;
	int r;

	if (!yaml_parser_initialize(&l->parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&l->parser, (const unsigned char *)l->text, l->len);
	yaml_parser_set_encoding(&l->parser, YAML_UTF8_ENCODING);

	r = loader_next(l, &ev); /* stream start */
	if (r < 0)
		goto out;
	yaml_event_delete(&ev);
	r = loader_next(l, &ev);
	if (r < 0)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		r = loader_fail(l, 1, 1,
				"the file is empty; a scenario needs at least 'name' and 'tree'");
		goto out;
	}
	yaml_event_delete(&ev); /* document start */
	r = loader_next(l, &ev);
	if (r < 0)
		goto out;
	r = read_node(l, &ev, 0, &root);
	yaml_event_delete(&ev);
	if (r < 0)
		goto out;
	r = loader_next(l, &ev); /* document end */
	if (r < 0)
		goto out;
	yaml_event_delete(&ev);
	r = loader_next(l, &ev);
	if (r < 0)
		goto out;
	if (ev.type == YAML_DOCUMENT_START_EVENT)
		r = loader_fail(
		    l, (unsigned)ev.start_mark.line + 1, (unsigned)ev.start_mark.column + 1,
		    "multiple documents are not supported; one file holds one scenario");
	yaml_event_delete(&ev);
out:
	yaml_parser_delete(&l->parser);
	if (r < 0) {
		ynode_free(root);
		return r;
	}
	*ret = root;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Node checks */

static const char *
node_found(const struct ynode *n, struct quoted *q)
{
	if (n->type == YNODE_SEQUENCE)
		return "a list";
	if (n->type == YNODE_MAPPING)
		return "a mapping";
	if (!*n->text)
		return "an empty value";
	/* quote() leaves room: its output stays below sizeof(q->s) - 4. */
	struct quoted inner;
	size_t len = strlen(quote(&inner, n->text));
	q->s[0] = '\'';
	memcpy(q->s + 1, inner.s, len);
	memcpy(q->s + 1 + len, "'", 2);
	return q->s;
}

static int
want_scalar(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q;
	if (n->type == YNODE_SCALAR)
		return 0;
	return fail_at(l, n, "expected a single value for %s, found %s", what, node_found(n, &q));
}

static int
want_mapping(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q;
	if (n->type == YNODE_MAPPING)
		return 0;
	return fail_at(l, n, "expected a mapping for %s, found %s", what, node_found(n, &q));
}

static int
want_sequence(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q;
	if (n->type == YNODE_SEQUENCE)
		return 0;
	return fail_at(l, n, "expected a list for %s, found %s", what, node_found(n, &q));
}

struct field {
	const char *name;
	const struct ynode *key;
	const struct ynode *value;
};

/* Check a mapping against its known keys: every key a scalar, known and set
 * once. fields[i].key/value get the nodes of the keys present. */
static int
map_fields(struct loader *l, const struct ynode *map, const char *where, struct field *fields,
	   size_t n_fields)
{
	struct quoted q;
	for (size_t i = 0; i + 1 < map->n_items; i += 2) {
		const struct ynode *k = map->items[i];
		size_t j;
		if (k->type != YNODE_SCALAR)
			return fail_at(l, k, "keys must be single words, found %s",
				       node_found(k, &q));
		for (j = 0; j < n_fields; j++)
			if (strcmp(fields[j].name, k->text) == 0)
				break;
		if (j == n_fields) {
			const char *names[16];
			char *msg = NULL;
			for (size_t f = 0; f < n_fields && f < ARRAY_SIZE(names); f++)
				names[f] = fields[f].name;
			int r = unknown_msg(&msg, "key", k->text, where, names,
					    MIN(n_fields, ARRAY_SIZE(names)), NULL);
			return fail_msg(l, k, r, msg);
		}
		if (fields[j].key)
			return fail_at(l, k, "duplicate key '%s'%s (first at line %u)",
				       fields[j].name, where, fields[j].key->line);
		fields[j].key = k;
		fields[j].value = map->items[i + 1];
	}
	return 0;
}

static struct field *
field_get(struct field *fields, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

/* Apply a YAML scalar through the setting named key (canonical). */
static int
apply_node(struct loader *l, struct scenario *s, const char *key, const struct ynode *value)
{
	const struct setting *st = setting_find(key);
	char *msg = NULL;
	int r = want_scalar(l, value, key);
	if (r < 0)
		return r;
	r = setting_apply(s, st, value->text, &msg);
	if (r >= 0)
		return 0;
	return fail_msg(l, value, r, msg);
}

/* Names become directory names and message parts: keep them tame. */
static int
check_name(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q, q2;
	const char *t = n->text;
	size_t len = strlen(t);

	if (len == 0)
		return fail_at(l, n, "%s is empty", what);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-')
			continue;
		/* Show the whole character, even a multi-byte one. */
		size_t clen = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		char ch[8];
		(void)snprintf(ch, sizeof(ch), "%.*s", (int)MIN(clen, len - i), t + i);
		return fail_at(
		    l, n,
		    "invalid %s '%s': '%s' is not allowed (use letters, digits, '_', '.' and '-')",
		    what, quote(&q, t), quote(&q2, ch));
	}
	if (len > SCENARIO_MAX_NAME)
		return fail_at(l, n, "%s '%s' is too long (%zu characters, the limit is %d)", what,
			       quote(&q, t), len, SCENARIO_MAX_NAME);
	if (strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
		return fail_at(l, n, "%s '%s' is reserved", what, t);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Steps */

static int
parse_child_ref(struct loader *l, const struct ynode *v, const char *step, struct step *st)
{
	char what[32];
	(void)snprintf(what, sizeof(what), "child name for %s", step);
	int r = want_scalar(l, v, step);
	if (r < 0)
		return r;
	r = check_name(l, v, what);
	if (r < 0)
		return r;
	st->text = strdup(v->text);
	return st->text ? 0 : -ENOMEM;
}

static int
parse_log(struct loader *l, const struct ynode *v, struct step *st)
{
	char *msg = NULL;
	int r;
	st->stream = LOG_STDOUT;
	if (v->type == YNODE_SCALAR) {
		r = parse_size_value("log", v->text, &st->bytes, &msg);
		return r < 0 ? fail_msg(l, v, r, msg) : 0;
	}
	if (v->type != YNODE_MAPPING)
		return fail_at(l, v,
			       "expected a size or a mapping {bytes: SIZE, to: stdout|stderr} for "
			       "log, found a list");
	struct field f[] = {{"bytes"}, {"to"}};
	r = map_fields(l, v, " in log", f, ARRAY_SIZE(f));
	if (r < 0)
		return r;
	if (!f[0].value)
		return fail_at(l, v, "missing required key 'bytes' in log");
	r = want_scalar(l, f[0].value, "log.bytes");
	if (r < 0)
		return r;
	r = parse_size_value("log.bytes", f[0].value->text, &st->bytes, &msg);
	if (r < 0)
		return fail_msg(l, f[0].value, r, msg);
	if (f[1].value) {
		int stream;
		r = want_scalar(l, f[1].value, "log.to");
		if (r < 0)
			return r;
		r = parse_choice_value("log.to", f[1].value->text, stream_names,
				       ARRAY_SIZE(stream_names), &stream, &msg);
		if (r < 0)
			return fail_msg(l, f[1].value, r, msg);
		st->stream = stream;
	}
	return 0;
}

static int
parse_step(struct loader *l, const struct ynode *item, bool boot, struct step *st)
{
	const char *step_words[ARRAY_SIZE(step_infos)];
	const struct ynode *key, *v = NULL;
	struct quoted q, q2;
	char *msg = NULL;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(step_infos); i++)
		step_words[i] = step_infos[i].name;
	st->line = item->line;
	st->column = item->column;

	if (item->type == YNODE_SEQUENCE)
		return fail_at(
		    l, item,
		    "a step is a word like 'serve' or a single-key mapping like 'sleep: 250ms', "
		    "found a list");
	if (item->type == YNODE_MAPPING) {
		if (item->n_items == 0)
			return fail_at(l, item,
				       "empty step; write a word like 'serve' or 'name: value'");
		if (item->n_items > 2)
			return fail_at(
			    l, item->items[2],
			    "a step mapping has exactly one key; write each step as its own list "
			    "item "
			    "('- %s' and '- %s')",
			    item->items[0]->type == YNODE_SCALAR ? quote(&q, item->items[0]->text)
								 : "...",
			    item->items[2]->type == YNODE_SCALAR ? quote(&q2, item->items[2]->text)
								 : "...");
		key = item->items[0];
		v = item->items[1];
		if (key->type != YNODE_SCALAR)
			return fail_at(l, key, "keys must be single words, found %s",
				       node_found(key, &q));
	} else {
		key = item;
	}

	int kind = step_from_name(key->text);
	if (kind < 0) {
		r = unknown_msg(&msg, "step", key->text, "", step_words, ARRAY_SIZE(step_words),
				NULL);
		return fail_msg(l, key, r, msg);
	}
	const struct step_info *info = &step_infos[kind];
	st->kind = (enum step_kind)kind;
	if (boot && !info->in_boot)
		return fail_at(l, key,
			       "'%s' is not allowed in boot (the handshake has not happened yet)",
			       info->name);
	if (!v) {
		if (!info->bare_ok)
			return fail_at(l, key, "step '%s' needs a value, e.g. '- %s: %s'",
				       info->name, info->name, info->example);
		return 0; /* spin forever (ns 0), raise with the default message (text NULL) */
	}
	if (info->arg == ARG_NONE)
		return fail_at(l, v, "step '%s' takes no value (write '- %s')", info->name,
			       info->name);
	if (info->arg != ARG_LOG) {
		r = want_scalar(l, v, info->name);
		if (r < 0)
			return r;
	}

	switch (info->arg) {
	case ARG_DURATION:
		r = parse_duration_value(info->name, v->text, &st->ns, &msg);
		if (r < 0)
			return fail_msg(l, v, r, msg);
		if (st->kind == STEP_SPIN && st->ns == 0)
			return fail_at(l, v,
				       "spin needs a duration greater than 0 (write '- spin' alone "
				       "to spin forever)");
		return 0;
	case ARG_TEXT:
		if (!*v->text)
			return fail_at(l, v,
				       "empty message for raise (write '- raise' alone for the "
				       "default message)");
		st->text = strdup(v->text);
		return st->text ? 0 : -ENOMEM;
	case ARG_STATUS: {
		unsigned long long status;
		if (!parse_uint(v->text, 255, &status))
			return fail_at(
			    l, v, "invalid exit status '%s' (expected an integer from 0 to 255)",
			    quote(&q, v->text));
		st->value = (int)status;
		return 0;
	}
	case ARG_SIGNAL:
		r = parse_signal_value(info->name, v->text, &st->value, &msg);
		return r < 0 ? fail_msg(l, v, r, msg) : 0;
	case ARG_LOG:
		return parse_log(l, v, st);
	case ARG_CHILD:
		return parse_child_ref(l, v, info->name, st);
	case ARG_NONE:
		break;
	}
	return 0;
}

static int
parse_steps(struct loader *l, const struct ynode *seq, const char *actor, bool boot, size_t already,
	    struct step **ret, size_t *ret_n)
{
	struct quoted q;
	int r = want_sequence(l, seq, boot ? "boot" : "steps");
	if (r < 0)
		return r;
	if (already + seq->n_items > SCENARIO_MAX_STEPS)
		return fail_at(l, seq->items[SCENARIO_MAX_STEPS - already],
			       "actor '%s' has more than %d steps (boot and steps together)",
			       quote(&q, actor), SCENARIO_MAX_STEPS);
	if (seq->n_items == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	struct step *steps = calloc(seq->n_items, sizeof(*steps));
	if (!steps)
		return -ENOMEM;
	for (size_t i = 0; i < seq->n_items; i++) {
		r = parse_step(l, seq->items[i], boot, &steps[i]);
		if (r < 0) {
			steps_free(steps, seq->n_items);
			return r;
		}
	}
	*ret = steps;
	*ret_n = seq->n_items;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Actors */

/* One child node as written, before `count` made copies of it. */
struct child_group {
	const char *base; /* name as written (points into the node tree) */
	const struct ynode *node;
	bool has_count;
	bool late;
	size_t first, n; /* its copies in parent->children */
};

/* A name a step may use: an expanded child name, or a count node's base name. */
struct ref_name {
	const char *name;
	const struct child_group *group;
};

static int parse_actor(struct loader *l, const struct ynode *node, int depth, struct actor_spec *a,
		       struct child_group *ret_group, size_t *ret_size);

static int
parse_children(struct loader *l, const struct ynode *seq, int depth, struct actor_spec *parent,
	       struct child_group **ret_groups, size_t *ret_n_groups, size_t *ret_size)
{
	struct child_group *groups = NULL;
	struct ref_name *refs = NULL;
	size_t n_refs = 0, size = 0;
	struct quoted q;
	int r = want_sequence(l, seq, "children");
	if (r < 0)
		return r;
	size_t n = seq->n_items;
	if (n == 0)
		goto done;
	groups = calloc(n, sizeof(*groups));
	if (!groups)
		return -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		struct actor_spec tmp = {.parent_id = -1};
		struct child_group *g = &groups[i];
		size_t sub;

		r = parse_actor(l, seq->items[i], depth, &tmp, g, &sub);
		if (r < 0) {
			actor_clear(&tmp);
			goto fail;
		}
		size_t copies = g->n;
		if (sub * copies > SCENARIO_MAX_ACTORS ||
		    size + sub * copies + 1 > SCENARIO_MAX_ACTORS) {
			actor_clear(&tmp);
			r = fail_at(l, seq->items[i],
				    "the tree has more than %d actors after expanding 'count' "
				    "(actor '%s' adds %zu)",
				    SCENARIO_MAX_ACTORS, g->base, sub * copies);
			goto fail;
		}
		struct actor_spec *children =
		    realloc(parent->children, (parent->n_children + copies) * sizeof(*children));
		if (!children) {
			actor_clear(&tmp);
			r = -ENOMEM;
			goto fail;
		}
		parent->children = children;
		g->first = parent->n_children;
		if (!g->has_count) {
			parent->children[parent->n_children++] = tmp;
		} else {
			for (size_t k = 1; k <= copies; k++) {
				struct actor_spec *c = &parent->children[parent->n_children];
				char *cname = NULL;
				if (k < copies) {
					r = actor_copy(c, &tmp);
				} else {
					*c = tmp; /* the last copy takes the original */
					tmp = (struct actor_spec){.parent_id = -1};
					r = 0;
				}
				if (r >= 0 && asprintf(&cname, "%s-%zu", c->name, k) < 0) {
					actor_clear(c);
					r = -ENOMEM;
				}
				if (r < 0) {
					actor_clear(&tmp);
					goto fail;
				}
				free(c->name);
				c->name = cname;
				parent->n_children++;
				if (strlen(cname) > SCENARIO_MAX_NAME) {
					if (k < copies)
						actor_clear(&tmp);
					r = fail_at(l, g->node,
						    "actor name '%s' made by count is too long "
						    "(%zu characters, the limit is %d)",
						    quote(&q, cname), strlen(cname),
						    SCENARIO_MAX_NAME);
					goto fail;
				}
			}
		}
		size += sub * copies;

		/* Every name a step may use must say one thing: the written names and
		 * the expanded names of all siblings together are unique. */
		struct ref_name *nr = realloc(refs, (n_refs + copies + 1) * sizeof(*refs));
		if (!nr) {
			r = -ENOMEM;
			goto fail;
		}
		refs = nr;
		size_t start = n_refs;
		if (g->has_count)
			refs[n_refs++] = (struct ref_name){g->base, g};
		for (size_t k = 0; k < copies; k++)
			refs[n_refs++] = (struct ref_name){parent->children[g->first + k].name, g};
		for (size_t a = start; a < n_refs; a++)
			for (size_t b = 0; b < start; b++) {
				if (strcmp(refs[a].name, refs[b].name) != 0)
					continue;
				bool from_count =
				    refs[a].group->has_count || refs[b].group->has_count;
				r = fail_at(l, g->node,
					    "duplicate actor name '%s' among the children of '%s' "
					    "(first at line %u%s)",
					    quote(&q, refs[a].name), parent->name,
					    refs[b].group->node->line,
					    from_count ? "; count N makes NAME-1 .. NAME-N" : "");
				goto fail;
			}
	}
done:
	free(refs);
	*ret_groups = groups;
	*ret_n_groups = n;
	*ret_size = size;
	return 0;
fail:
	free(refs);
	free(groups);
	return r;
}

/* "a, b (count 3)", at most 8 names: a hint, not an inventory. */
static char *
list_group_names(const struct child_group *groups, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	int r = strbuf_append(&sb, "");
	for (size_t i = 0; i < n && i < 8 && r >= 0; i++)
		r = strbuf_printf(&sb, "%s%s%s", i ? ", " : "", groups[i].base,
				  groups[i].has_count ? " (count)" : "");
	if (r >= 0 && n > 8)
		r = strbuf_append(&sb, ", ...");
	if (r < 0) {
		strbuf_free(&sb);
		return NULL;
	}
	return strbuf_steal(&sb);
}

/* spawn/await name children; every late child is spawned exactly once. */
static int
resolve_references(struct loader *l, struct actor_spec *a, const struct child_group *groups,
		   size_t n_groups)
{
	_cleanup_free_ unsigned *spawned_at =
	    calloc(a->n_children ? a->n_children : 1, sizeof(unsigned));
	struct quoted q;

	if (!spawned_at)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_steps; i++) {
		const struct step *st = &a->steps[i];
		size_t first = 0, n = 0;
		if (st->kind != STEP_SPAWN && st->kind != STEP_AWAIT)
			continue;
		for (size_t g = 0; g < n_groups && !n; g++)
			if (groups[g].has_count && strcmp(groups[g].base, st->text) == 0) {
				first = groups[g].first;
				n = groups[g].n;
			}
		for (size_t c = 0; c < a->n_children && !n; c++)
			if (strcmp(a->children[c].name, st->text) == 0) {
				first = c;
				n = 1;
			}
		if (!n) {
			if (!a->n_children)
				return loader_fail(
				    l, st->line, st->column,
				    "no child named '%s' to %s: actor '%s' has no children",
				    quote(&q, st->text), step_name(st->kind), a->name);
			_cleanup_free_ char *list = list_group_names(groups, n_groups);
			if (!list)
				return -ENOMEM;
			return loader_fail(
			    l, st->line, st->column,
			    "no child named '%s' to %s in actor '%s' (its children: %s)",
			    quote(&q, st->text), step_name(st->kind), a->name, list);
		}
		if (st->kind == STEP_AWAIT)
			continue;
		for (size_t c = first; c < first + n; c++) {
			if (!a->children[c].late)
				return loader_fail(
				    l, st->line, st->column,
				    "'spawn: %s' names a child that is not late; add 'late: true' "
				    "to it "
				    "(children that are not late start with their parent)",
				    st->text);
			if (spawned_at[c])
				return loader_fail(l, st->line, st->column,
						   "child '%s' is already spawned at line %u",
						   a->children[c].name, spawned_at[c]);
			spawned_at[c] = st->line;
		}
	}
	for (size_t g = 0; g < n_groups; g++) {
		const struct child_group *grp = &groups[g];
		size_t missing = SIZE_MAX, n_missing = 0;
		for (size_t c = grp->first; c < grp->first + grp->n; c++)
			if (a->children[c].late && !spawned_at[c]) {
				if (missing == SIZE_MAX)
					missing = c;
				n_missing++;
			}
		if (!n_missing)
			continue;
		const char *which =
		    n_missing == grp->n && grp->has_count ? grp->base : a->children[missing].name;
		return fail_at(
		    l, grp->node,
		    "late actor '%s' is never spawned; add '- spawn: %s' to the steps of '%s'",
		    which, which, a->name);
	}
	return 0;
}

/* Parse one actor node as written into a (children expanded); ret_group gets
 * its count, ret_size the size of one copy of its subtree. */
static int
parse_actor(struct loader *l, const struct ynode *node, int depth, struct actor_spec *a,
	    struct child_group *ret_group, size_t *ret_size)
{
	struct field f[] = {{"name"}, {"count"}, {"late"}, {"boot"}, {"steps"}, {"children"}};
	struct child_group *groups = NULL;
	size_t n_groups = 0, size = 0;
	unsigned long long count = 1;
	struct quoted q;
	char where[SCENARIO_MAX_NAME + 96];
	int r;

	r = want_mapping(l, node, depth == 0 ? "tree (the root actor)" : "an actor");
	if (r < 0)
		return r;
	a->line = node->line;
	a->column = node->column;
	a->parent_id = -1;

	/* Name the actor in messages about its keys, if it has a usable name. */
	(void)snprintf(where, sizeof(where), " in %s", depth == 0 ? "tree" : "actor");
	for (size_t i = 0; i + 1 < node->n_items; i += 2)
		if (node->items[i]->type == YNODE_SCALAR &&
		    strcmp(node->items[i]->text, "name") == 0 &&
		    node->items[i + 1]->type == YNODE_SCALAR && *node->items[i + 1]->text)
			(void)snprintf(where, sizeof(where), " in actor '%s'",
				       quote(&q, node->items[i + 1]->text));

	r = map_fields(l, node, where, f, ARRAY_SIZE(f));
	if (r < 0)
		return r;
	if (!f[0].value)
		return fail_at(l, node, "missing required key 'name'%s", where);
	r = want_scalar(l, f[0].value, "name");
	if (r < 0)
		return r;
	r = check_name(l, f[0].value, "actor name");
	if (r < 0)
		return r;
	a->name = strdup(f[0].value->text);
	if (!a->name)
		return -ENOMEM;
	if (depth > SCENARIO_MAX_DEPTH)
		return fail_at(l, node, "actor '%s' is %d levels below the root; the limit is %d",
			       a->name, depth, SCENARIO_MAX_DEPTH);

	if (f[1].value) {
		if (depth == 0)
			return fail_at(
			    l, f[1].key,
			    "the root actor cannot have 'count' (there is exactly one root)");
		r = want_scalar(l, f[1].value, "count");
		if (r < 0)
			return r;
		if (!parse_uint(f[1].value->text, SCENARIO_MAX_COUNT, &count) || count == 0)
			return fail_at(
			    l, f[1].value,
			    "invalid count '%s' for actor '%s' (expected an integer from 1 to %d)",
			    quote(&q, f[1].value->text), a->name, SCENARIO_MAX_COUNT);
	}
	if (f[2].value) {
		char *msg = NULL;
		char key[SCENARIO_MAX_NAME + 16];
		if (depth == 0)
			return fail_at(l, f[2].key,
				       "the root actor cannot be late (nothing would spawn it)");
		r = want_scalar(l, f[2].value, "late");
		if (r < 0)
			return r;
		(void)snprintf(key, sizeof(key), "%s.late", a->name);
		r = parse_bool_value(key, f[2].value->text, &a->late, &msg);
		if (r < 0)
			return fail_msg(l, f[2].value, r, msg);
	}
	if (f[3].value) {
		r = parse_steps(l, f[3].value, a->name, true, 0, &a->boot, &a->n_boot);
		if (r < 0)
			return r;
	}
	if (f[4].value) {
		r = parse_steps(l, f[4].value, a->name, false, a->n_boot, &a->steps, &a->n_steps);
		if (r < 0)
			return r;
	}
	if (f[5].value) {
		r = parse_children(l, f[5].value, depth + 1, a, &groups, &n_groups, &size);
		if (r < 0)
			return r;
	}
	r = resolve_references(l, a, groups, n_groups);
	free(groups);
	if (r < 0)
		return r;
	*ret_group = (struct child_group){.base = f[0].value->text,
					  .node = node,
					  .has_count = f[1].value != NULL,
					  .late = a->late,
					  .n = (size_t)count};
	*ret_size = size + 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* expect, matrix, cells */

static int
parse_expect(struct loader *l, const struct ynode *node, const char *what, struct expectation *e)
{
	struct field f[ARRAY_SIZE(expect_keys)];
	char where[48];
	for (size_t i = 0; i < ARRAY_SIZE(f); i++)
		f[i] = (struct field){.name = expect_keys[i]};
	int r = want_mapping(l, node, what);
	if (r < 0)
		return r;
	(void)snprintf(where, sizeof(where), " in %s", what);
	r = map_fields(l, node, where, f, ARRAY_SIZE(f));
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		char key[32], *msg = NULL;
		if (!f[i].value)
			continue;
		(void)snprintf(key, sizeof(key), "expect.%s", f[i].name);
		r = want_scalar(l, f[i].value, key);
		if (r < 0)
			return r;
		r = expect_apply(e, setting_find(key), f[i].value->text, &msg);
		if (r < 0)
			return fail_msg(l, f[i].value, r, msg);
	}
	return 0;
}

static const struct matrix_axis *
axis_find(const struct matrix_axis *axes, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(axes[i].key, key) == 0)
			return &axes[i];
	return NULL;
}

static int
parse_matrix(struct loader *l, const struct ynode *node, struct scenario *s)
{
	struct quoted q;
	size_t cells = 1;
	int r = want_mapping(l, node, "matrix");
	if (r < 0)
		return r;
	size_t n = node->n_items / 2;
	if (n == 0)
		return fail_at(
		    l, node,
		    "the matrix has no axes; give at least one key with its values, e.g. "
		    "'backend: [mtf, fork]'");
	s->matrix = calloc(n, sizeof(*s->matrix));
	if (!s->matrix)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct ynode *k = node->items[2 * i], *v = node->items[2 * i + 1];
		struct matrix_axis *ax = &s->matrix[i];
		char *msg = NULL;

		if (k->type != YNODE_SCALAR)
			return fail_at(l, k, "keys must be single words, found %s",
				       node_found(k, &q));
		const struct setting *st = setting_find(k->text);
		if (!st) {
			int e = setting_unknown_msg(&msg, k->text, " in matrix");
			return fail_msg(l, k, e, msg);
		}
		const struct matrix_axis *dup = axis_find(s->matrix, s->n_matrix, st->key);
		if (dup) {
			if (strcmp(k->text, st->key) == 0 &&
			    strcmp(node->items[2 * (size_t)(dup - s->matrix)]->text, st->key) == 0)
				return fail_at(l, k,
					       "duplicate key '%s' in matrix (first at line %u)",
					       st->key, dup->line);
			return fail_at(
			    l, k, "duplicate key '%s' in matrix (same axis as '%s' at line %u)",
			    k->text, node->items[2 * (size_t)(dup - s->matrix)]->text, dup->line);
		}
		if (v->type != YNODE_SEQUENCE)
			return fail_at(
			    l, v,
			    "matrix axis '%s' must be a list of values, e.g. [a, b], found %s",
			    k->text, node_found(v, &q));
		if (v->n_items == 0)
			return fail_at(l, v, "matrix axis '%s' has no values", k->text);
		if (cells * v->n_items > SCENARIO_MAX_CELLS)
			return fail_at(l, v,
				       "the matrix has %zu cells up to axis '%s'; the limit is %d",
				       cells * v->n_items, k->text, SCENARIO_MAX_CELLS);
		cells *= v->n_items;

		ax->key = strdup(st->key);
		ax->values = calloc(v->n_items, sizeof(char *));
		if (!ax->key || !ax->values) {
			free(ax->key);
			free(ax->values);
			*ax = (struct matrix_axis){0};
			return -ENOMEM;
		}
		ax->line = k->line;
		ax->column = k->column;
		s->n_matrix++;
		for (size_t j = 0; j < v->n_items; j++) {
			const struct ynode *val = v->items[j];
			struct scenario scratch = {0};
			if (val->type != YNODE_SCALAR)
				return fail_at(l, val,
					       "matrix values must be single values, found %s",
					       node_found(val, &q));
			for (size_t p = 0; p < j; p++)
				if (strcmp(ax->values[p], val->text) == 0)
					return fail_at(l, val,
						       "duplicate value '%s' in matrix axis '%s'",
						       quote(&q, val->text), k->text);
			/* Each value must apply on its own, as it will in its cells. */
			scenario_set_defaults(&scratch);
			r = setting_apply(&scratch, st, val->text, &msg);
			expectation_clear(&scratch.expect);
			if (r < 0)
				return fail_msg(l, val, r, msg);
			ax->values[j] = strdup(val->text);
			if (!ax->values[j])
				return -ENOMEM;
			ax->n_values++;
		}
	}
	return 0;
}

static int
parse_cell_rule(struct loader *l, const struct ynode *item, const struct scenario *s,
		struct cell_rule *rule)
{
	struct field f[] = {{"when"}, {"expect"}};
	struct quoted q;
	int r = want_mapping(l, item, "a cells entry");
	if (r < 0)
		return r;
	rule->line = item->line;
	rule->column = item->column;
	r = map_fields(l, item, " in cells entry", f, ARRAY_SIZE(f));
	if (r < 0)
		return r;
	if (!f[0].value)
		return fail_at(l, item, "missing required key 'when' in cells entry");
	if (!f[1].value)
		return fail_at(l, item, "missing required key 'expect' in cells entry");

	const struct ynode *when = f[0].value;
	r = want_mapping(l, when, "when");
	if (r < 0)
		return r;
	size_t n = when->n_items / 2;
	if (n == 0)
		return fail_at(l, when, "'when' needs at least one matrix key and value");
	rule->when = calloc(n, sizeof(*rule->when));
	if (!rule->when)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct ynode *k = when->items[2 * i], *v = when->items[2 * i + 1];
		char *msg = NULL;
		if (k->type != YNODE_SCALAR)
			return fail_at(l, k, "keys must be single words, found %s",
				       node_found(k, &q));
		const struct setting *st = setting_find(k->text);
		if (!st) {
			int e = setting_unknown_msg(&msg, k->text, " in when");
			return fail_msg(l, k, e, msg);
		}
		const struct matrix_axis *ax = axis_find(s->matrix, s->n_matrix, st->key);
		if (!ax) {
			const char *keys[SCENARIO_MAX_CELLS];
			for (size_t a = 0; a < s->n_matrix && a < ARRAY_SIZE(keys); a++)
				keys[a] = s->matrix[a].key;
			_cleanup_free_ char *list =
			    join_names(keys, MIN(s->n_matrix, ARRAY_SIZE(keys)), ", ");
			if (!list)
				return -ENOMEM;
			return fail_at(l, k, "'%s' in when is not a matrix axis (the axes are: %s)",
				       k->text, list);
		}
		for (size_t p = 0; p < rule->n_when; p++)
			if (strcmp(rule->when[p].key, st->key) == 0)
				return fail_at(
				    l, k,
				    "duplicate key '%s' in when (same axis as '%s' at line %u)",
				    k->text, when->items[2 * p]->text, when->items[2 * p]->line);
		r = want_scalar(l, v, k->text);
		if (r < 0)
			return r;
		bool found = false;
		for (size_t j = 0; j < ax->n_values && !found; j++)
			found = strcmp(ax->values[j], v->text) == 0;
		if (!found) {
			_cleanup_free_ char *list =
			    join_names((const char *const *)ax->values, ax->n_values, ", ");
			if (!list)
				return -ENOMEM;
			return fail_at(
			    l, v, "value '%s' for %s in when is not one of the matrix values (%s)",
			    quote(&q, v->text), ax->key, list);
		}
		rule->when[i].key = strdup(st->key);
		rule->when[i].value = strdup(v->text);
		rule->n_when++;
		if (!rule->when[i].key || !rule->when[i].value)
			return -ENOMEM;
	}

	r = parse_expect(l, f[1].value, "cells entry expect", &rule->expect);
	if (r < 0)
		return r;
	if (!rule->expect.has_outcome && !rule->expect.has_leaked && !rule->expect.verdict &&
	    !rule->expect.no_verdict)
		return fail_at(l, f[1].value,
			       "expect in a cells entry must set outcome, verdict or leaked");
	return 0;
}

static int
parse_cells(struct loader *l, const struct ynode *key, const struct ynode *node, struct scenario *s)
{
	int r;
	if (!s->n_matrix)
		return fail_at(
		    l, key,
		    "'cells' needs a 'matrix' (cells give the expectation of matrix cells)");
	r = want_sequence(l, node, "cells");
	if (r < 0)
		return r;
	if (node->n_items > SCENARIO_MAX_CELLS)
		return fail_at(l, node->items[SCENARIO_MAX_CELLS], "more than %d cells entries",
			       SCENARIO_MAX_CELLS);
	if (node->n_items == 0)
		return 0;
	s->cell_rules = calloc(node->n_items, sizeof(*s->cell_rules));
	if (!s->cell_rules)
		return -ENOMEM;
	for (size_t i = 0; i < node->n_items; i++) {
		s->n_cell_rules++;
		r = parse_cell_rule(l, node->items[i], s, &s->cell_rules[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Top level */

static int
parse_section(struct loader *l, struct scenario *s, const struct ynode *node, const char *section,
	      const char *const *keys, size_t n_keys, const char *required)
{
	struct field f[16];
	char where[32];
	int r = want_mapping(l, node, section);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_keys; i++)
		f[i] = (struct field){.name = keys[i]};
	(void)snprintf(where, sizeof(where), " in %s", section);
	r = map_fields(l, node, where, f, n_keys);
	if (r < 0)
		return r;
	if (required && !field_get(f, n_keys, required)->value)
		return fail_at(l, node, "missing required key '%s' in %s", required, section);
	for (size_t i = 0; i < n_keys; i++) {
		char key[48];
		if (!f[i].value)
			continue;
		(void)snprintf(key, sizeof(key), "%s.%s", section, keys[i]);
		r = apply_node(l, s, key, f[i].value);
		if (r < 0)
			return r;
	}
	return 0;
}

enum {
	TOP_NAME,
	TOP_DESCRIPTION,
	TOP_BACKEND,
	TOP_CAPTURE,
	TOP_IMAGE,
	TOP_BUDGET,
	TOP_FIXES,
	TOP_TIMEOUTS,
	TOP_INTERRUPT,
	TOP_TREE,
	TOP_EXPECT,
	TOP_MATRIX,
	TOP_CELLS,
	_TOP_MAX,
};

static int
parse_top(struct loader *l, const struct ynode *doc, struct scenario *s)
{
	struct field f[_TOP_MAX] = {
	    [TOP_NAME] = {"name"},	     [TOP_DESCRIPTION] = {"description"},
	    [TOP_BACKEND] = {"backend"},     [TOP_CAPTURE] = {"capture"},
	    [TOP_IMAGE] = {"image"},	     [TOP_BUDGET] = {"budget"},
	    [TOP_FIXES] = {"fixes"},	     [TOP_TIMEOUTS] = {"timeouts"},
	    [TOP_INTERRUPT] = {"interrupt"}, [TOP_TREE] = {"tree"},
	    [TOP_EXPECT] = {"expect"},	     [TOP_MATRIX] = {"matrix"},
	    [TOP_CELLS] = {"cells"},
	};
	struct quoted q;
	int r;

	if (doc->type != YNODE_MAPPING)
		return fail_at(
		    l, doc,
		    "the top level must be a mapping with at least 'name' and 'tree', found %s",
		    node_found(doc, &q));
	r = map_fields(l, doc, " at the top level", f, ARRAY_SIZE(f));
	if (r < 0)
		return r;
	if (!f[TOP_NAME].value)
		return fail_at(l, doc, "missing required key 'name'");
	if (!f[TOP_TREE].value)
		return fail_at(l, doc, "missing required key 'tree'");

	r = want_scalar(l, f[TOP_NAME].value, "name");
	if (r < 0)
		return r;
	r = check_name(l, f[TOP_NAME].value, "scenario name");
	if (r < 0)
		return r;
	s->name = strdup(f[TOP_NAME].value->text);
	if (!s->name)
		return -ENOMEM;
	if (f[TOP_DESCRIPTION].value) {
		r = want_scalar(l, f[TOP_DESCRIPTION].value, "description");
		if (r < 0)
			return r;
		s->description = strdup(f[TOP_DESCRIPTION].value->text);
		if (!s->description)
			return -ENOMEM;
	}
	static const struct {
		int field;
		const char *key;
	} plain[] = {{TOP_BACKEND, "backend"},
		     {TOP_CAPTURE, "capture"},
		     {TOP_IMAGE, "image"},
		     {TOP_BUDGET, "budget"}};
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
		if (f[plain[i].field].value) {
			r = apply_node(l, s, plain[i].key, f[plain[i].field].value);
			if (r < 0)
				return r;
		}
	if (f[TOP_FIXES].value) {
		r = parse_section(l, s, f[TOP_FIXES].value, "fixes", fix_keys, ARRAY_SIZE(fix_keys),
				  NULL);
		if (r < 0)
			return r;
	}
	if (f[TOP_TIMEOUTS].value) {
		r = parse_section(l, s, f[TOP_TIMEOUTS].value, "timeouts", timeout_keys,
				  ARRAY_SIZE(timeout_keys), NULL);
		if (r < 0)
			return r;
	}
	if (f[TOP_INTERRUPT].value) {
		r = parse_section(l, s, f[TOP_INTERRUPT].value, "interrupt", interrupt_keys,
				  ARRAY_SIZE(interrupt_keys), "after");
		if (r < 0)
			return r;
	}

	struct child_group root_group;
	size_t size;
	r = parse_actor(l, f[TOP_TREE].value, 0, &s->root, &root_group, &size);
	if (r < 0)
		return r;
	s->n_actors = size;

	if (f[TOP_EXPECT].value) {
		r = parse_expect(l, f[TOP_EXPECT].value, "expect", &s->expect);
		if (r < 0)
			return r;
	}
	if (f[TOP_MATRIX].value) {
		r = parse_matrix(l, f[TOP_MATRIX].value, s);
		if (r < 0)
			return r;
	}
	if (f[TOP_CELLS].value) {
		r = parse_cells(l, f[TOP_CELLS].key, f[TOP_CELLS].value, s);
		if (r < 0)
			return r;
	}
	return scenario_index(s, NULL, NULL);
}

static int
load_text(const char *path, const char *text, size_t len, struct scenario **ret, char **ret_error)
{
	struct loader l = {.path = path, .text = text, .len = len};
	struct ynode *doc = NULL;
	struct scenario *s = NULL;
	int r;

	if (len > SCENARIO_MAX_FILE_BYTES)
		r = loader_fail(&l, 1, 1, "the file is larger than %d KiB",
				SCENARIO_MAX_FILE_BYTES / 1024);
	else
		r = read_document(&l, &doc);
	if (r >= 0) {
		s = calloc(1, sizeof(*s));
		if (!s)
			r = -ENOMEM;
	}
	if (r >= 0) {
		scenario_set_defaults(s);
		s->path = strdup(path);
		r = s->path ? parse_top(&l, doc, s) : -ENOMEM;
	}
	ynode_free(doc);
	if (r < 0) {
		scenario_free(s);
		if (!l.error && asprintf(&l.error, "%s: %s", path, strerror(-r)) < 0)
			l.error = NULL;
		*ret_error = l.error;
		return r;
	}
	free(l.error);
	*ret = s;
	return 0;
}

int
scenario_load_string(const char *name, const char *text, size_t len, struct scenario **ret,
		     char **ret_error)
{
	return load_text(name, text, len, ret, ret_error);
}

int
scenario_load(const char *path, struct scenario **ret, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	struct stat st;
	ssize_t n;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto io_error;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		goto io_error;
	}
	/* Bounded read: a FIFO or /dev/zero must not make us allocate forever. */
	data = malloc(SCENARIO_MAX_FILE_BYTES + 2);
	if (!data)
		return -ENOMEM;
	n = read_full(fd, data, SCENARIO_MAX_FILE_BYTES + 1);
	if (n < 0) {
		r = (int)n;
		goto io_error;
	}
	data[n] = '\0';
	return load_text(path, data, (size_t)n, ret, ret_error);
io_error:
	if (asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0)
		*ret_error = NULL;
	return r;
}

/* ------------------------------------------------------------------------ */
/* Matrix expansion */

int
scenario_expand(const struct scenario *s, struct scenario ***ret_cells, size_t *ret_n,
		char **ret_error)
{
	size_t n = 1;
	for (size_t a = 0; a < s->n_matrix; a++) {
		if (s->matrix[a].n_values == 0 || n * s->matrix[a].n_values > SCENARIO_MAX_CELLS) {
			if (asprintf(ret_error,
				     "%s: matrix axis '%s' makes more than %d cells (or none)",
				     s->path ? s->path : s->name, s->matrix[a].key,
				     SCENARIO_MAX_CELLS) < 0)
				*ret_error = NULL;
			return -EINVAL;
		}
		n *= s->matrix[a].n_values;
	}
	struct scenario **cells = calloc(n, sizeof(*cells));
	_cleanup_free_ size_t *pick = calloc(s->n_matrix ? s->n_matrix : 1, sizeof(*pick));
	if (!cells || !pick) {
		free(cells);
		return -ENOMEM;
	}
	int r = 0;
	for (size_t idx = 0; idx < n; idx++) {
		struct scenario *c = scenario_copy_full(s, false);
		struct strbuf cell = STRBUF_INIT;
		size_t rem = idx;
		if (!c) {
			r = -ENOMEM;
			goto fail;
		}
		cells[idx] = c;
		if (s->n_matrix == 0)
			continue;
		/* Row-major: the last axis varies fastest. */
		for (size_t a = s->n_matrix; a-- > 0;) {
			pick[a] = rem % s->matrix[a].n_values;
			rem /= s->matrix[a].n_values;
		}
		for (size_t a = 0; a < s->n_matrix; a++) {
			const struct matrix_axis *ax = &s->matrix[a];
			const char *value = ax->values[pick[a]];
			const struct setting *st = setting_find(ax->key);
			char *msg = NULL;
			r = st ? setting_apply(c, st, value, &msg) : -EINVAL;
			if (r < 0) {
				if (r == -EINVAL &&
				    asprintf(ret_error, "%s:%u:%u: %s", s->path ? s->path : s->name,
					     ax->line, ax->column,
					     msg ? msg : "unknown matrix key") < 0)
					*ret_error = NULL;
				free(msg);
				strbuf_free(&cell);
				goto fail;
			}
			if (strbuf_printf(&cell, "%s%s=%s", a ? "," : "", ax->key, value) < 0) {
				strbuf_free(&cell);
				r = -ENOMEM;
				goto fail;
			}
		}
		free(c->cell);
		c->cell = strbuf_steal(&cell);
		for (size_t k = 0; k < s->n_cell_rules; k++) {
			const struct cell_rule *rule = &s->cell_rules[k];
			bool match = true;
			for (size_t w = 0; w < rule->n_when && match; w++) {
				const struct matrix_axis *ax =
				    axis_find(s->matrix, s->n_matrix, rule->when[w].key);
				size_t a = ax ? (size_t)(ax - s->matrix) : 0;
				match = ax && strcmp(ax->values[pick[a]], rule->when[w].value) == 0;
			}
			if (!match)
				continue;
			const struct expectation *x = &rule->expect;
			if (x->has_outcome) {
				c->expect.has_outcome = true;
				c->expect.outcome = x->outcome;
			}
			if (x->has_leaked) {
				c->expect.has_leaked = true;
				c->expect.leaked = x->leaked;
			}
			if (x->verdict || x->no_verdict) {
				char *v = NULL;
				if (x->verdict && !(v = strdup(x->verdict))) {
					r = -ENOMEM;
					goto fail;
				}
				free(c->expect.verdict);
				c->expect.verdict = v;
				c->expect.no_verdict = x->no_verdict;
			}
		}
	}
	*ret_cells = cells;
	*ret_n = n;
	return 0;
fail:
	scenario_free_cells(cells, n);
	return r;
}

/* ------------------------------------------------------------------------ */
/* JSON */

/* Sets *failed when a value could not be made or stored (ENOMEM, bad UTF-8). */
static void
jset(json_t *o, const char *key, json_t *v, bool *failed)
{
	if (json_object_set_new(o, key, v) < 0)
		*failed = true;
}

static json_t *
jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
signal_to_json(int sig)
{
	/* Real-time signals have no name signal_parse() knows: keep the number. */
	const char *name = signal_name(sig);
	if (signal_parse(name) == sig)
		return json_string(name);
	return json_integer(sig);
}

static json_t *
expectation_to_json(const struct expectation *x)
{
	bool failed = false;
	json_t *o = json_object();
	if (!o)
		return NULL;
	jset(o, "outcome", x->has_outcome ? json_string(outcome_name(x->outcome)) : json_null(),
	     &failed);
	jset(o, "verdict",
	     x->verdict	     ? json_string(x->verdict)
	     : x->no_verdict ? json_string("none")
			     : json_null(),
	     &failed);
	jset(o, "leaked", x->has_leaked ? json_integer(x->leaked) : json_null(), &failed);
	if (failed) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
steps_to_json(const struct step *steps, size_t n)
{
	bool failed = false;
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < n && !failed; i++) {
		const struct step *st = &steps[i];
		json_t *o = json_object();
		if (!o || json_array_append_new(arr, o) < 0) {
			failed = true;
			break;
		}
		jset(o, "kind", json_string(step_name(st->kind)), &failed);
		switch (st->kind) {
		case STEP_SLEEP:
		case STEP_SPIN:
			jset(o, "ns", json_u64(st->ns), &failed);
			break;
		case STEP_LOG:
			jset(o, "bytes", json_u64(st->bytes), &failed);
			jset(o, "to",
			     json_string(
				 name_of(stream_names, ARRAY_SIZE(stream_names), st->stream)),
			     &failed);
			break;
		case STEP_RAISE:
			jset(o, "text", jstr_or_null(st->text), &failed);
			break;
		case STEP_EXIT:
			jset(o, "status", json_integer(st->value), &failed);
			break;
		case STEP_KILL_SELF:
			jset(o, "signal", signal_to_json(st->value), &failed);
			break;
		case STEP_SPAWN:
		case STEP_AWAIT:
			jset(o, "child", jstr_or_null(st->text), &failed);
			break;
		default:
			break;
		}
		jset(o, "line", json_integer(st->line), &failed);
		jset(o, "column", json_integer(st->column), &failed);
	}
	if (failed) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *
actor_to_json(const struct actor_spec *a)
{
	bool failed = false;
	json_t *o = json_object(), *children = json_array();
	if (!o || !children) {
		json_decref(o);
		json_decref(children);
		return NULL;
	}
	jset(o, "name", jstr_or_null(a->name), &failed);
	jset(o, "late", json_boolean(a->late), &failed);
	jset(o, "line", json_integer(a->line), &failed);
	jset(o, "column", json_integer(a->column), &failed);
	jset(o, "boot", steps_to_json(a->boot, a->n_boot), &failed);
	jset(o, "steps", steps_to_json(a->steps, a->n_steps), &failed);
	for (size_t i = 0; i < a->n_children && !failed; i++)
		if (json_array_append_new(children, actor_to_json(&a->children[i])) < 0)
			failed = true;
	jset(o, "children", children, &failed);
	if (failed) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *
scenario_to_json(const struct scenario *s)
{
	bool failed = false;
	json_t *o = json_object(), *fixes = json_object(), *timeouts = json_object(),
	       *interrupt = json_object();
	const struct fixes *f = &s->fixes;
	const struct timeouts *t = &s->timeouts;
	char *text = NULL;

	if (!o || !fixes || !timeouts || !interrupt) {
		json_decref(fixes);
		json_decref(timeouts);
		json_decref(interrupt);
		goto out;
	}
	jset(o, "name", jstr_or_null(s->name), &failed);
	jset(o, "description", jstr_or_null(s->description), &failed);
	jset(o, "path", jstr_or_null(s->path), &failed);
	jset(o, "cell", jstr_or_null(s->cell), &failed);
	jset(o, "backend", json_string(backend_name(s->backend)), &failed);
	jset(o, "capture", json_string(capture_name(s->capture)), &failed);
	jset(o, "image_bytes", json_u64(s->image_bytes), &failed);
	jset(o, "budget_ns", json_u64(s->budget_ns), &failed);

	/* Same shape as result.json's "fixes" and "timeouts". */
	jset(fixes, "fd_scrub", json_boolean(f->fd_scrub), &failed);
	jset(fixes, "reset_sigmask", json_boolean(f->reset_sigmask), &failed);
	jset(fixes, "stdio", json_string(stdio_name(f->stdio)), &failed);
	jset(fixes, "atfork_locks", json_boolean(f->atfork_locks), &failed);
	jset(fixes, "wait", json_string(wait_name(f->wait)), &failed);
	jset(fixes, "boot_race", json_boolean(f->boot_race), &failed);
	jset(fixes, "cancel_first", json_boolean(f->cancel_first), &failed);
	jset(fixes, "peer_wait_bound", json_boolean(f->peer_wait_bound), &failed);
	jset(fixes, "tree_kill", json_boolean(f->tree_kill), &failed);
	jset(o, "fixes", fixes, &failed);

	jset(timeouts, "cancel_ack_ns", json_u64(t->cancel_ack_ns), &failed);
	jset(timeouts, "hard_kill_ns", json_u64(t->hard_kill_ns), &failed);
	jset(timeouts, "peer_wait_ns", json_u64(t->peer_wait_ns), &failed);
	jset(timeouts, "run_ns", json_u64(t->run_ns), &failed);
	jset(timeouts, "linger_ns", json_u64(t->linger_ns), &failed);
	jset(o, "timeouts", timeouts, &failed);

	jset(interrupt, "enabled", json_boolean(s->interrupt.enabled), &failed);
	jset(interrupt, "after_ns", json_u64(s->interrupt.after_ns), &failed);
	jset(interrupt, "signal", signal_to_json(s->interrupt.signal), &failed);
	jset(interrupt, "target", json_string(interrupt_target_name(s->interrupt.target)), &failed);
	jset(o, "interrupt", interrupt, &failed);

	jset(o, "expect", expectation_to_json(&s->expect), &failed);
	jset(o, "tree", actor_to_json(&s->root), &failed);

	if (s->n_matrix) {
		json_t *m = json_array();
		for (size_t i = 0; m && i < s->n_matrix; i++) {
			json_t *ax = json_object(), *values = json_array();
			if (json_array_append_new(m, ax) < 0) {
				json_decref(values);
				failed = true;
				break;
			}
			jset(ax, "key", json_string(s->matrix[i].key), &failed);
			for (size_t j = 0; values && j < s->matrix[i].n_values; j++)
				if (json_array_append_new(values,
							  json_string(s->matrix[i].values[j])) < 0)
					failed = true;
			jset(ax, "values", values, &failed);
			jset(ax, "line", json_integer(s->matrix[i].line), &failed);
			jset(ax, "column", json_integer(s->matrix[i].column), &failed);
		}
		jset(o, "matrix", m, &failed);
	}
	if (s->n_cell_rules) {
		json_t *c = json_array();
		for (size_t i = 0; c && i < s->n_cell_rules; i++) {
			const struct cell_rule *rule = &s->cell_rules[i];
			json_t *entry = json_object(), *when = json_object();
			if (json_array_append_new(c, entry) < 0) {
				json_decref(when);
				failed = true;
				break;
			}
			for (size_t w = 0; when && w < rule->n_when; w++)
				jset(when, rule->when[w].key, json_string(rule->when[w].value),
				     &failed);
			jset(entry, "when", when, &failed);
			jset(entry, "expect", expectation_to_json(&rule->expect), &failed);
			jset(entry, "line", json_integer(rule->line), &failed);
			jset(entry, "column", json_integer(rule->column), &failed);
		}
		jset(o, "cells", c, &failed);
	}
	if (!failed)
		text = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	return text;
}

struct jreader {
	char *error;
	size_t n_actors;
};

static int jfail(struct jreader *j, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
jfail(struct jreader *j, const char *where, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;
	if (j->error)
		return -EINVAL;
	va_start(ap, fmt);
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	if (asprintf(&j->error, "scenario json: %s%s%s", where, *where ? ": " : "", m) < 0)
		j->error = NULL;
	free(m);
	return j->error ? -EINVAL : -ENOMEM;
}

static int
jget_string(struct jreader *j, const json_t *o, const char *where, const char *key, bool nullable,
	    char **ret)
{
	const json_t *v = json_object_get(o, key);
	if (nullable && json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return jfail(j, where, "'%s' must be a string%s", key, nullable ? " or null" : "");
	char *d = strdup(json_string_value(v));
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

static int
jget_uint(struct jreader *j, const json_t *o, const char *where, const char *key, uint64_t max,
	  uint64_t *ret)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return jfail(j, where, "'%s' must be an integer from 0 to %llu", key,
			     (unsigned long long)max);
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

static int
jget_bool(struct jreader *j, const json_t *o, const char *where, const char *key, bool *ret)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_boolean(v))
		return jfail(j, where, "'%s' must be true or false", key);
	*ret = json_is_true(v);
	return 0;
}

static int
jget_choice(struct jreader *j, const json_t *o, const char *where, const char *key,
	    const char *const *names, size_t n, int *ret)
{
	const json_t *v = json_object_get(o, key);
	int c = json_is_string(v) ? name_lookup(names, n, json_string_value(v)) : -EINVAL;
	if (c < 0)
		return jfail(j, where, "'%s' must be one of the known names", key);
	*ret = c;
	return 0;
}

static int
jget_signal(struct jreader *j, const json_t *o, const char *where, const char *key, int *ret)
{
	const json_t *v = json_object_get(o, key);
	int sig = -EINVAL;
	if (json_is_string(v))
		sig = signal_parse(json_string_value(v));
	else if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 64)
		sig = (int)json_integer_value(v);
	if (sig < 0)
		return jfail(j, where, "'%s' must be a signal name or number", key);
	*ret = sig;
	return 0;
}

static int
jget_position(struct jreader *j, const json_t *o, const char *where, unsigned *ret_line,
	      unsigned *ret_column)
{
	uint64_t line, column;
	int r = jget_uint(j, o, where, "line", UINT_MAX, &line);
	if (r >= 0)
		r = jget_uint(j, o, where, "column", UINT_MAX, &column);
	if (r < 0)
		return r;
	*ret_line = (unsigned)line;
	*ret_column = (unsigned)column;
	return 0;
}

static int
expectation_from_json(struct jreader *j, const json_t *o, const char *where, struct expectation *x)
{
	const json_t *v;
	uint64_t u;
	int r, c;
	if (!json_is_object(o))
		return jfail(j, where, "must be an object");
	*x = (struct expectation){0};
	v = json_object_get(o, "outcome");
	if (!json_is_null(v)) {
		r = jget_choice(j, o, where, "outcome", outcome_names, ARRAY_SIZE(outcome_names),
				&c);
		if (r < 0)
			return r;
		x->has_outcome = true;
		x->outcome = (enum outcome)c;
	}
	v = json_object_get(o, "verdict");
	if (json_is_string(v) && strcmp(json_string_value(v), "none") == 0) {
		x->no_verdict = true;
	} else if (!json_is_null(v)) {
		r = jget_string(j, o, where, "verdict", false, &x->verdict);
		if (r < 0)
			return r;
	}
	v = json_object_get(o, "leaked");
	if (!json_is_null(v)) {
		r = jget_uint(j, o, where, "leaked", UINT_MAX, &u);
		if (r < 0)
			return r;
		x->has_leaked = true;
		x->leaked = (unsigned)u;
	}
	return 0;
}

static int
steps_from_json(struct jreader *j, const json_t *arr, const char *where, struct step **ret,
		size_t *ret_n)
{
	char w[512];
	size_t n;
	int r = 0;
	if (!json_is_array(arr))
		return jfail(j, where, "must be an array");
	n = json_array_size(arr);
	if (n > SCENARIO_MAX_STEPS)
		return jfail(j, where, "more than %d steps", SCENARIO_MAX_STEPS);
	*ret = NULL;
	*ret_n = 0;
	if (n == 0)
		return 0;
	struct step *steps = calloc(n, sizeof(*steps));
	if (!steps)
		return -ENOMEM;
	for (size_t i = 0; i < n && r >= 0; i++) {
		const json_t *o = json_array_get(arr, i);
		struct step *st = &steps[i];
		uint64_t u;
		int kind;
		(void)snprintf(w, sizeof(w), "%s[%zu]", where, i);
		if (!json_is_object(o)) {
			r = jfail(j, w, "must be an object");
			break;
		}
		kind = json_is_string(json_object_get(o, "kind"))
			   ? step_from_name(json_string_value(json_object_get(o, "kind")))
			   : -EINVAL;
		if (kind < 0) {
			r = jfail(j, w, "'kind' must be a step name");
			break;
		}
		st->kind = (enum step_kind)kind;
		r = jget_position(j, o, w, &st->line, &st->column);
		if (r < 0)
			break;
		switch (st->kind) {
		case STEP_SLEEP:
		case STEP_SPIN:
			r = jget_uint(j, o, w, "ns", INT64_MAX, &st->ns);
			break;
		case STEP_LOG:
			r = jget_uint(j, o, w, "bytes", INT64_MAX, &st->bytes);
			if (r >= 0)
				r = jget_choice(j, o, w, "to", stream_names,
						ARRAY_SIZE(stream_names), &st->stream);
			break;
		case STEP_RAISE:
			r = jget_string(j, o, w, "text", true, &st->text);
			break;
		case STEP_EXIT:
			r = jget_uint(j, o, w, "status", 255, &u);
			st->value = (int)u;
			break;
		case STEP_KILL_SELF:
			r = jget_signal(j, o, w, "signal", &st->value);
			break;
		case STEP_SPAWN:
		case STEP_AWAIT:
			r = jget_string(j, o, w, "child", false, &st->text);
			break;
		default:
			break;
		}
	}
	if (r < 0) {
		steps_free(steps, n);
		return r;
	}
	*ret = steps;
	*ret_n = n;
	return 0;
}

static int
actor_from_json(struct jreader *j, const json_t *o, const char *where, int depth,
		struct actor_spec *a)
{
	char w[512];
	const json_t *children;
	int r;

	*a = (struct actor_spec){.parent_id = -1};
	if (!json_is_object(o))
		return jfail(j, where, "must be an object");
	if (depth > SCENARIO_MAX_DEPTH)
		return jfail(j, where, "deeper than %d levels", SCENARIO_MAX_DEPTH);
	if (++j->n_actors > SCENARIO_MAX_ACTORS)
		return jfail(j, where, "more than %d actors", SCENARIO_MAX_ACTORS);
	r = jget_string(j, o, where, "name", false, &a->name);
	if (r >= 0)
		r = jget_bool(j, o, where, "late", &a->late);
	if (r >= 0)
		r = jget_position(j, o, where, &a->line, &a->column);
	if (r >= 0) {
		(void)snprintf(w, sizeof(w), "%s.boot", where);
		r = steps_from_json(j, json_object_get(o, "boot"), w, &a->boot, &a->n_boot);
	}
	if (r >= 0) {
		(void)snprintf(w, sizeof(w), "%s.steps", where);
		r = steps_from_json(j, json_object_get(o, "steps"), w, &a->steps, &a->n_steps);
	}
	if (r < 0)
		return r;
	children = json_object_get(o, "children");
	if (!json_is_array(children))
		return jfail(j, where, "'children' must be an array");
	size_t n = json_array_size(children);
	if (n == 0)
		return 0;
	a->children = calloc(n, sizeof(*a->children));
	if (!a->children)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		(void)snprintf(w, sizeof(w), "%s.children[%zu]", where, i);
		a->n_children++;
		r = actor_from_json(j, json_array_get(children, i), w, depth + 1, &a->children[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
matrix_from_json(struct jreader *j, const json_t *arr, struct scenario *s)
{
	char w[64];
	if (!json_is_array(arr))
		return jfail(j, "matrix", "must be an array");
	size_t n = json_array_size(arr);
	if (n == 0)
		return 0;
	s->matrix = calloc(n, sizeof(*s->matrix));
	if (!s->matrix)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const json_t *o = json_array_get(arr, i), *values;
		struct matrix_axis *ax = &s->matrix[i];
		int r;
		(void)snprintf(w, sizeof(w), "matrix[%zu]", i);
		s->n_matrix++;
		if (!json_is_object(o))
			return jfail(j, w, "must be an object");
		r = jget_string(j, o, w, "key", false, &ax->key);
		if (r >= 0)
			r = jget_position(j, o, w, &ax->line, &ax->column);
		if (r < 0)
			return r;
		if (!setting_find(ax->key))
			return jfail(j, w, "unknown key '%s'", ax->key);
		values = json_object_get(o, "values");
		if (!json_is_array(values) || json_array_size(values) == 0)
			return jfail(j, w, "'values' must be a non-empty array");
		ax->values = calloc(json_array_size(values), sizeof(char *));
		if (!ax->values)
			return -ENOMEM;
		for (size_t k = 0; k < json_array_size(values); k++) {
			const json_t *v = json_array_get(values, k);
			if (!json_is_string(v))
				return jfail(j, w, "'values' must hold strings");
			ax->values[k] = strdup(json_string_value(v));
			if (!ax->values[k])
				return -ENOMEM;
			ax->n_values++;
		}
	}
	return 0;
}

static int
cells_from_json(struct jreader *j, const json_t *arr, struct scenario *s)
{
	char w[64];
	if (!json_is_array(arr))
		return jfail(j, "cells", "must be an array");
	size_t n = json_array_size(arr);
	if (n == 0)
		return 0;
	s->cell_rules = calloc(n, sizeof(*s->cell_rules));
	if (!s->cell_rules)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const json_t *o = json_array_get(arr, i), *when, *v;
		struct cell_rule *rule = &s->cell_rules[i];
		const char *key;
		int r;
		(void)snprintf(w, sizeof(w), "cells[%zu]", i);
		s->n_cell_rules++;
		if (!json_is_object(o))
			return jfail(j, w, "must be an object");
		r = jget_position(j, o, w, &rule->line, &rule->column);
		if (r >= 0)
			r = expectation_from_json(j, json_object_get(o, "expect"), w,
						  &rule->expect);
		if (r < 0)
			return r;
		when = json_object_get(o, "when");
		if (!json_is_object(when))
			return jfail(j, w, "'when' must be an object");
		rule->when = calloc(json_object_size(when) ? json_object_size(when) : 1,
				    sizeof(*rule->when));
		if (!rule->when)
			return -ENOMEM;
		json_object_foreach((json_t *)when, key, v)
		{
			struct cell_condition *c = &rule->when[rule->n_when];
			if (!json_is_string(v))
				return jfail(j, w, "'when' values must be strings");
			c->key = strdup(key);
			c->value = strdup(json_string_value(v));
			rule->n_when++;
			if (!c->key || !c->value)
				return -ENOMEM;
		}
	}
	return 0;
}

static int
scenario_from_json_object(struct jreader *j, const json_t *o, struct scenario *s)
{
	const json_t *sub;
	int r, c;
	uint64_t u;

	if (!json_is_object(o))
		return jfail(j, "", "the document must be an object");
	r = jget_string(j, o, "", "name", false, &s->name);
	if (r >= 0)
		r = jget_string(j, o, "", "description", true, &s->description);
	if (r >= 0)
		r = jget_string(j, o, "", "path", true, &s->path);
	if (r >= 0)
		r = jget_string(j, o, "", "cell", true, &s->cell);
	if (r >= 0 && (r = jget_choice(j, o, "", "backend", backend_names,
				       ARRAY_SIZE(backend_names), &c)) >= 0)
		s->backend = (enum backend_kind)c;
	if (r >= 0 && (r = jget_choice(j, o, "", "capture", capture_names,
				       ARRAY_SIZE(capture_names), &c)) >= 0)
		s->capture = (enum capture_kind)c;
	if (r >= 0)
		r = jget_uint(j, o, "", "image_bytes", INT64_MAX, &s->image_bytes);
	if (r >= 0)
		r = jget_uint(j, o, "", "budget_ns", INT64_MAX, &s->budget_ns);
	if (r < 0)
		return r;

	sub = json_object_get(o, "fixes");
	if (!json_is_object(sub))
		return jfail(j, "fixes", "must be an object");
	struct fixes *f = &s->fixes;
	r = jget_bool(j, sub, "fixes", "fd_scrub", &f->fd_scrub);
	if (r >= 0)
		r = jget_bool(j, sub, "fixes", "reset_sigmask", &f->reset_sigmask);
	if (r >= 0 && (r = jget_choice(j, sub, "fixes", "stdio", stdio_names,
				       ARRAY_SIZE(stdio_names), &c)) >= 0)
		f->stdio = (enum stdio_kind)c;
	if (r >= 0)
		r = jget_bool(j, sub, "fixes", "atfork_locks", &f->atfork_locks);
	if (r >= 0 &&
	    (r = jget_choice(j, sub, "fixes", "wait", wait_names, ARRAY_SIZE(wait_names), &c)) >= 0)
		f->wait = (enum wait_kind)c;
	if (r >= 0)
		r = jget_bool(j, sub, "fixes", "boot_race", &f->boot_race);
	if (r >= 0)
		r = jget_bool(j, sub, "fixes", "cancel_first", &f->cancel_first);
	if (r >= 0)
		r = jget_bool(j, sub, "fixes", "peer_wait_bound", &f->peer_wait_bound);
	if (r >= 0)
		r = jget_bool(j, sub, "fixes", "tree_kill", &f->tree_kill);
	if (r < 0)
		return r;

	sub = json_object_get(o, "timeouts");
	if (!json_is_object(sub))
		return jfail(j, "timeouts", "must be an object");
	struct timeouts *t = &s->timeouts;
	r = jget_uint(j, sub, "timeouts", "cancel_ack_ns", INT64_MAX, &t->cancel_ack_ns);
	if (r >= 0)
		r = jget_uint(j, sub, "timeouts", "hard_kill_ns", INT64_MAX, &t->hard_kill_ns);
	if (r >= 0)
		r = jget_uint(j, sub, "timeouts", "peer_wait_ns", INT64_MAX, &t->peer_wait_ns);
	if (r >= 0)
		r = jget_uint(j, sub, "timeouts", "run_ns", INT64_MAX, &t->run_ns);
	if (r >= 0)
		r = jget_uint(j, sub, "timeouts", "linger_ns", INT64_MAX, &t->linger_ns);
	if (r < 0)
		return r;

	sub = json_object_get(o, "interrupt");
	if (!json_is_object(sub))
		return jfail(j, "interrupt", "must be an object");
	r = jget_bool(j, sub, "interrupt", "enabled", &s->interrupt.enabled);
	if (r >= 0)
		r = jget_uint(j, sub, "interrupt", "after_ns", INT64_MAX, &u);
	if (r >= 0)
		s->interrupt.after_ns = u;
	if (r >= 0)
		r = jget_signal(j, sub, "interrupt", "signal", &s->interrupt.signal);
	if (r >= 0 && (r = jget_choice(j, sub, "interrupt", "target", target_names,
				       ARRAY_SIZE(target_names), &c)) >= 0)
		s->interrupt.target = (enum interrupt_target)c;
	if (r >= 0)
		r = expectation_from_json(j, json_object_get(o, "expect"), "expect", &s->expect);
	if (r >= 0)
		r = actor_from_json(j, json_object_get(o, "tree"), "tree", 0, &s->root);
	if (r < 0)
		return r;
	s->n_actors = j->n_actors;
	if ((sub = json_object_get(o, "matrix")) && (r = matrix_from_json(j, sub, s)) < 0)
		return r;
	if ((sub = json_object_get(o, "cells")) && (r = cells_from_json(j, sub, s)) < 0)
		return r;
	return scenario_index(s, NULL, NULL);
}

int
scenario_from_json(const char *text, struct scenario **ret, char **ret_error)
{
	struct jreader j = {0};
	json_error_t jerr;
	int r;
	json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		if (asprintf(ret_error, "scenario json: %d:%d: %s", jerr.line, jerr.column,
			     jerr.text) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	struct scenario *s = calloc(1, sizeof(*s));
	if (!s) {
		json_decref(o);
		return -ENOMEM;
	}
	s->root.parent_id = -1;
	r = scenario_from_json_object(&j, o, s);
	json_decref(o);
	if (r < 0) {
		scenario_free(s);
		*ret_error = j.error;
		return r;
	}
	*ret = s;
	return 0;
}
