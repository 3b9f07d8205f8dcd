#include "harness/scenario/scenario-private.h"

#include <errno.h>

#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"

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
		case STEP_LOG_SINK:
			jset(o, "fd", json_integer(st->value), &failed);
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
	jset(fixes, "scrub_mode", json_string(scrub_mode_name(f->scrub_mode)), &failed);
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
