#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"

/* ------------------------------------------------------------------------ */
/* JSON reading: the canonical form back into a scenario */

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
		case STEP_LOG_SINK:
			r = jget_uint(j, o, w, "fd", 1023, &u);
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
		r = jget_uint(j, o, "", "image_bytes", SCENARIO_MAX_IMAGE_BYTES, &s->image_bytes);
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
	if (r >= 0 && (r = jget_choice(j, sub, "fixes", "scrub_mode", scrub_mode_names,
				       ARRAY_SIZE(scrub_mode_names), &c)) >= 0)
		f->scrub_mode = (enum scrub_mode)c;
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
