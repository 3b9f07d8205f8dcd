#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"

/* ------------------------------------------------------------------------ */
/* Free and copy */

void
steps_free(struct step *steps, size_t n)
{
	for (size_t i = 0; steps && i < n; i++)
		free(steps[i].text);
	free(steps);
}

void
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

void
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
int
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

struct scenario *
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
