#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/macro.h"
#include "util/signames.h"
#include "util/timeutil.h"

/* ------------------------------------------------------------------------ */
/* Settings: the keys of --set, matrix axes and `when` conditions. */

static const struct setting settings[] = {
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
    {"fixes.scrub_mode", "scrub_mode", SET_SCRUB_MODE},
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

const char *const fix_keys[] = {
    "fd_scrub",	 "reset_sigmask", "stdio",	     "atfork_locks", "wait",
    "boot_race", "cancel_first",  "peer_wait_bound", "tree_kill",    "scrub_mode",
};
const char *const timeout_keys[] = {"cancel_ack", "hard_kill", "peer_wait", "run", "linger"};
const char *const interrupt_keys[] = {"after", "signal", "target"};
const char *const expect_keys[] = {"outcome", "verdict", "leaked"};

const struct setting *
setting_find(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (strcmp(settings[i].key, key) == 0 ||
		    (settings[i].alias && strcmp(settings[i].alias, key) == 0))
			return &settings[i];
	return NULL;
}

int
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

int
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

/* The root touches every page of the image and the whole tree inherits it:
 * one that does not fit beside the tree ends in the OOM killer, not a result. */
static int
check_image_size(const char *key, const char *text, uint64_t bytes, char **ret_msg)
{
	struct quoted q;
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t half = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 : 0;

	if (bytes > SCENARIO_MAX_IMAGE_BYTES)
		return msgf(ret_msg, "%s '%s' is larger than the limit of %llu GiB", key,
			    quote(&q, text), SCENARIO_MAX_IMAGE_BYTES >> 30);
	if (half && bytes > half)
		return msgf(ret_msg,
			    "%s '%s' is more than half of this machine's memory (at most %llu MiB "
			    "here)",
			    key, quote(&q, text), (unsigned long long)(half >> 20));
	return 0;
}

/* Apply one setting. s is untouched on failure. */
int
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
			r = check_image_size(st->key, text, u, ret_msg);
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
	case SET_SCRUB_MODE:
		r = parse_choice_value(st->key, text, scrub_mode_names,
				       ARRAY_SIZE(scrub_mode_names), &v, ret_msg);
		if (r >= 0)
			s->fixes.scrub_mode = (enum scrub_mode)v;
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

void
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
	    .scrub_mode = SCRUB_CLOSE,
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
