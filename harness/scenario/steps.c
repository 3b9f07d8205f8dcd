#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"

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
	case ARG_FD: {
		unsigned long long fd;
		if (!parse_uint(v->text, 1023, &fd) || fd < 3)
			return fail_at(l, v,
				       "invalid fd number '%s' for log_sink (expected an integer "
				       "from 3 to 1023)",
				       quote(&q, v->text));
		st->value = (int)fd;
		return 0;
	}
	case ARG_LOG:
		return parse_log(l, v, st);
	case ARG_CHILD:
		return parse_child_ref(l, v, info->name, st);
	case ARG_NONE:
		break;
	}
	return 0;
}

int
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
