#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"
#include "util/strbuf.h"

/* ------------------------------------------------------------------------ */
/* expect, matrix, cells */

int
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
	int failed = 0;
	r = loader_keep_going(l, map_fields(l, node, where, f, ARRAY_SIZE(f)), &failed);
	for (size_t i = 0; i < ARRAY_SIZE(f) && r >= 0; i++) {
		char key[32], *msg = NULL;
		if (!f[i].value)
			continue;
		(void)snprintf(key, sizeof(key), "expect.%s", f[i].name);
		r = want_scalar(l, f[i].value, key);
		if (r >= 0) {
			r = expect_apply(e, setting_find(key), f[i].value->text, &msg);
			if (r < 0)
				r = fail_msg(l, f[i].value, r, msg);
		}
		r = loader_keep_going(l, r, &failed);
	}
	return r < 0 ? r : failed;
}

static const struct matrix_axis *
axis_find(const struct matrix_axis *axes, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(axes[i].key, key) == 0)
			return &axes[i];
	return NULL;
}

int
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

int
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
