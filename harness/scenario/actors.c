#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"
#include "util/strbuf.h"

/* ------------------------------------------------------------------------ */
/* Actors */

/* A name a step may use: an expanded child name, or a count node's base name. */
struct ref_name {
	const char *name;
	const struct child_group *group;
};

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

/* count and late, the keys that make copies or delay an actor. */
static int
parse_count_late(struct loader *l, const struct field *f, int depth, struct actor_spec *a,
		 unsigned long long *ret_count)
{
	struct quoted q;
	int failed = 0, r = 0;
	unsigned long long count = 1;

	if (f[1].value && depth == 0)
		r = fail_at(l, f[1].key,
			    "the root actor cannot have 'count' (there is exactly one root)");
	else if (f[1].value)
		r = want_scalar(l, f[1].value, "count");
	if (r >= 0 && f[1].value &&
	    (!parse_uint(f[1].value->text, SCENARIO_MAX_COUNT, &count) || count == 0))
		r = fail_at(l, f[1].value,
			    "invalid count '%s' for actor '%s' (expected an integer from 1 to %d)",
			    quote(&q, f[1].value->text), a->name, SCENARIO_MAX_COUNT);
	r = loader_keep_going(l, r, &failed);
	if (r < 0 || !f[2].value)
		goto out;
	if (depth == 0) {
		r = loader_keep_going(
		    l,
		    fail_at(l, f[2].key, "the root actor cannot be late (nothing would spawn it)"),
		    &failed);
		goto out;
	}
	r = want_scalar(l, f[2].value, "late");
	if (r >= 0) {
		char *msg = NULL;
		char key[SCENARIO_MAX_NAME + 16];
		(void)snprintf(key, sizeof(key), "%s.late", a->name);
		r = parse_bool_value(key, f[2].value->text, &a->late, &msg);
		if (r < 0)
			r = fail_msg(l, f[2].value, r, msg);
	}
	r = loader_keep_going(l, r, &failed);
out:
	if (r < 0)
		return r;
	*ret_count = count;
	return failed;
}

/* Parse one actor node as written into a (children expanded); ret_group gets
 * its count, ret_size the size of one copy of its subtree. */
int
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

	int failed = 0;
	r = loader_keep_going(l, map_fields(l, node, where, f, ARRAY_SIZE(f)), &failed);
	if (r < 0)
		return r;
	if (!f[0].value) /* after a misspelt key, that key is the error */
		return failed ? failed : fail_at(l, node, "missing required key 'name'%s", where);
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

	r = loader_keep_going(l, parse_count_late(l, f, depth, a, &count), &failed);
	if (r >= 0 && f[3].value)
		r = loader_keep_going(
		    l, parse_steps(l, f[3].value, a->name, true, 0, &a->boot, &a->n_boot), &failed);
	if (r >= 0 && f[4].value)
		r = loader_keep_going(
		    l,
		    parse_steps(l, f[4].value, a->name, false, a->n_boot, &a->steps, &a->n_steps),
		    &failed);
	if (r >= 0 && f[5].value)
		r = loader_keep_going(
		    l, parse_children(l, f[5].value, depth + 1, a, &groups, &n_groups, &size),
		    &failed);
	/* References are checked against what parsed: not after an error. */
	if (r >= 0 && !failed)
		r = resolve_references(l, a, groups, n_groups);
	free(groups);
	if (r < 0)
		return r;
	if (failed)
		return failed;
	*ret_group = (struct child_group){.base = f[0].value->text,
					  .node = node,
					  .has_count = f[1].value != NULL,
					  .late = a->late,
					  .n = (size_t)count};
	*ret_size = size + 1;
	return 0;
}
