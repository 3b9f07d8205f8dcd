#include "reports/rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/fdutil.h"
#include "util/macro.h"

static const char *const field_names[] = {
	[RULE_FIELD_SYSCALL] = "syscall", [RULE_FIELD_WCHAN] = "wchan",	  [RULE_FIELD_FRAME] = "frame",
	[RULE_FIELD_PYTHON] = "python",	  [RULE_FIELD_COMM] = "comm",	  [RULE_FIELD_THREAD] = "thread",
	[RULE_FIELD_ACTOR] = "actor",
};

/* Graph predicates implemented in verdict.c; documented in docs/rules.md. */
static const char *const predicates[] = {
	"stuck",
	"blocking",
	"zombie",
	"writes_full_pipe",
	"futex_owner_absent",
	"blocking_child_wait_in_helper",
	"parent_awaits_handshake",
	"awaits_eof_held_by_inherited_copy",
	"terminating_signal_pending_blocked",
	"spinning_without_progress",
	"in_wait_cycle",
	"parent_stuck",
	"orphaned",
	"cancel_pending",
	"waits_file_lock",
	"fifo_without_partner",
	"stopped",
	"futex_single_thread",
	"threads_wait_each_other",
	"waits_on_another_process",
	NULL,
};

bool
rule_predicate_known(const char *name)
{
	for (size_t i = 0; predicates[i]; i++)
		if (strcmp(predicates[i], name) == 0)
			return true;
	return false;
}

const char *
rule_field_name(enum rule_field f)
{
	return (unsigned) f < _RULE_FIELD_MAX ? field_names[f] : "?";
}

bool
rule_pattern_matches(const struct rule_pattern *p, const char *subject)
{
	const char *s = subject ? subject : "";
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
	if (!md)
		return false;
	int rc = pcre2_match(p->re, (PCRE2_SPTR) s, strlen(s), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

static void
rule_clear(struct rule *r)
{
	free(r->name);
	free(r->class_name);
	free(r->title);
	free(r->remedy);
	free(r->origin);
	for (size_t i = 0; i < r->n_patterns; i++) {
		free(r->patterns[i].source);
		pcre2_code_free(r->patterns[i].re);
	}
	free(r->patterns);
	for (size_t i = 0; i < r->n_require; i++)
		free(r->require[i]);
	free(r->require);
}

void
ruleset_free(struct ruleset *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n_rules; i++)
		rule_clear(&rs->rules[i]);
	free(rs->rules);
	rs->rules = NULL;
	rs->n_rules = 0;
}

/* ---- loading: libyaml's document API, every error with file:line:col ---- */

struct loader {
	const char *name;
	yaml_document_t doc;
	char **error;
};

static int fail(struct loader *l, const yaml_node_t *node, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(struct loader *l, const yaml_node_t *node, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	(void) vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *out = NULL;
	if (asprintf(&out, "%s:%zu:%zu: %s", l->name, node ? node->start_mark.line + 1 : 1,
		     node ? node->start_mark.column + 1 : 1, msg) < 0)
		out = NULL;
	*l->error = out;
	return -EINVAL;
}

static const char *
scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *) n->data.scalar.value : NULL;
}

/* The key node of an earlier pair of the same mapping with the same key, or
 * NULL. libyaml keeps duplicate keys; a second 'name:' would leak the first
 * and silently win, so every mapping of a rules file refuses them. */
static const yaml_node_t *
earlier_key(struct loader *l, const yaml_node_t *map, const yaml_node_pair_t *pair, const char *key)
{
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
		const yaml_node_t *k = yaml_document_get_node(&l->doc, q->key);
		const char *other = scalar(k);
		if (other && strcmp(other, key) == 0)
			return k;
	}
	return NULL;
}

static int
load_patterns(struct loader *l, struct rule *r, yaml_node_t *map)
{
	if (map->type != YAML_MAPPING_NODE)
		return fail(l, map, "'match' must be a mapping of field: pattern");
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(&l->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(&l->doc, pair->value);
		const char *key = scalar(k), *val = scalar(v);
		int field = -1;
		for (int f = 0; key && f < _RULE_FIELD_MAX; f++)
			if (strcmp(field_names[f], key) == 0)
				field = f;
		if (field < 0)
			return fail(l, k, "unknown match field '%s' (syscall, wchan, frame, python, comm, thread, actor)", key ? key : "");
		const yaml_node_t *first = earlier_key(l, map, pair, key);
		if (first)
			return fail(l, k, "duplicate match field '%s' (first at line %zu)", key, first->start_mark.line + 1);
		if (!val)
			return fail(l, v, "the pattern for '%s' must be a string", key);
		int errcode;
		PCRE2_SIZE erroff;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR) val, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &errcode, &erroff, NULL);
		if (!re) {
			PCRE2_UCHAR buf[256];
			(void) pcre2_get_error_message(errcode, buf, sizeof(buf));
			char msg[400];
			(void) snprintf(msg, sizeof(msg), "invalid pattern for '%s' at offset %zu: %s", key, (size_t) erroff,
					(const char *) buf);
			return fail(l, v, "%s", msg);
		}
		struct rule_pattern *np = realloc(r->patterns, (r->n_patterns + 1) * sizeof(*np));
		if (!np) {
			pcre2_code_free(re);
			return -ENOMEM;
		}
		r->patterns = np;
		r->patterns[r->n_patterns++] = (struct rule_pattern){ (enum rule_field) field, strdup(val), re };
	}
	return 0;
}

static int
load_rule(struct loader *l, struct ruleset *rs, yaml_node_t *node, bool user)
{
	if (node->type != YAML_MAPPING_NODE)
		return fail(l, node, "each rule must be a mapping");
	struct rule r = { .priority = 50, .user = user, .subject = RULE_THREAD };
	char origin[256];
	(void) snprintf(origin, sizeof(origin), "%s:%zu:%zu", l->name, node->start_mark.line + 1,
			node->start_mark.column + 1);
	r.origin = strdup(origin);
	int ret = 0;
	for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(&l->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(&l->doc, pair->value);
		const char *key = scalar(k);
		if (!key) {
			ret = fail(l, k, "rule keys must be strings");
			break;
		}
		const yaml_node_t *first = earlier_key(l, node, pair, key);
		if (first) {
			ret = fail(l, k, "duplicate rule key '%s' (first at line %zu)", key, first->start_mark.line + 1);
			break;
		}
		if (strcmp(key, "match") == 0) {
			ret = load_patterns(l, &r, v);
			if (ret < 0)
				break;
			continue;
		}
		if (strcmp(key, "require") == 0) {
			if (v->type != YAML_SEQUENCE_NODE) {
				ret = fail(l, v, "'require' must be a list of predicates");
				break;
			}
			for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
				yaml_node_t *pn = yaml_document_get_node(&l->doc, *it);
				const char *p = scalar(pn);
				if (!p || !rule_predicate_known(p)) {
					ret = fail(l, pn, "unknown predicate '%s' (see docs/rules.md)", p ? p : "");
					break;
				}
				char **nr = realloc(r.require, (r.n_require + 1) * sizeof(char *));
				if (!nr) {
					ret = -ENOMEM;
					break;
				}
				r.require = nr;
				r.require[r.n_require++] = strdup(p);
			}
			if (ret < 0)
				break;
			continue;
		}
		const char *val = scalar(v);
		if (!val) {
			ret = fail(l, v, "'%s' must be a string", key);
			break;
		}
		if (strcmp(key, "name") == 0)
			r.name = strdup(val);
		else if (strcmp(key, "class") == 0)
			r.class_name = strdup(val);
		else if (strcmp(key, "title") == 0)
			r.title = strdup(val);
		else if (strcmp(key, "remedy") == 0)
			r.remedy = strdup(val);
		else if (strcmp(key, "subject") == 0) {
			if (strcmp(val, "thread") == 0)
				r.subject = RULE_THREAD;
			else if (strcmp(val, "process") == 0)
				r.subject = RULE_PROCESS;
			else {
				ret = fail(l, v, "subject must be 'thread' or 'process', not '%s'", val);
				break;
			}
		} else if (strcmp(key, "priority") == 0) {
			char *end;
			long p = strtol(val, &end, 10);
			if (*end || p < 0 || p > 1000) {
				ret = fail(l, v, "priority must be a number from 0 to 1000, not '%s'", val);
				break;
			}
			r.priority = (int) p;
		} else {
			ret = fail(l, k, "unknown rule key '%s' (name, class, subject, priority, match, require, title, remedy)", key);
			break;
		}
	}
	if (ret == 0 && !r.class_name)
		ret = fail(l, node, "rule without 'class'");
	if (ret == 0 && r.n_patterns == 0 && r.n_require == 0)
		ret = fail(l, node, "rule has neither 'match' nor 'require': it would match everything");
	if (ret == 0 && !r.name)
		r.name = strdup(r.class_name);
	if (ret < 0) {
		rule_clear(&r);
		return ret;
	}
	struct rule *nr = realloc(rs->rules, (rs->n_rules + 1) * sizeof(*nr));
	if (!nr) {
		rule_clear(&r);
		return -ENOMEM;
	}
	rs->rules = nr;
	rs->rules[rs->n_rules++] = r;
	return 0;
}

int
ruleset_load_string(struct ruleset *rs, const char *name, const char *text, size_t len, bool user,
		    char **ret_error)
{
	struct loader l = { .name = name, .error = ret_error };
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
	if (!yaml_parser_load(&parser, &l.doc)) {
		char *out = NULL;
		if (asprintf(&out, "%s:%zu:%zu: %s", name, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			     parser.problem ? parser.problem : "invalid YAML") < 0)
			out = NULL;
		*ret_error = out;
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	yaml_parser_delete(&parser);
	int r = 0;
	yaml_node_t *root = yaml_document_get_root_node(&l.doc);
	yaml_node_t *list = NULL;
	if (!root)
		r = fail(&l, NULL, "empty rules file");
	else if (root->type != YAML_MAPPING_NODE)
		r = fail(&l, root, "a rules file is a mapping with a 'rules' list");
	else {
		for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
			yaml_node_t *k = yaml_document_get_node(&l.doc, pair->key);
			const char *key = scalar(k);
			if (key && strcmp(key, "rules") == 0 && !list)
				list = yaml_document_get_node(&l.doc, pair->value);
			else if (key && strcmp(key, "rules") == 0) {
				r = fail(&l, k, "duplicate key 'rules'");
				break;
			} else {
				r = fail(&l, k, "unknown top-level key '%s' (expected 'rules')", key ? key : "");
				break;
			}
		}
		if (r == 0 && (!list || list->type != YAML_SEQUENCE_NODE))
			r = fail(&l, list ? list : root, "'rules' must be a list");
	}
	for (yaml_node_item_t *it = r == 0 ? list->data.sequence.items.start : NULL; r == 0 && it < list->data.sequence.items.top; it++)
		r = load_rule(&l, rs, yaml_document_get_node(&l.doc, *it), user);
	yaml_document_delete(&l.doc);
	return r;
}

int
ruleset_load_file(struct ruleset *rs, const char *path, char **ret_error)
{
	char *text = NULL;
	size_t len = 0;
	int r = read_file_alloc(path, &text, &len);
	if (r < 0) {
		char *out = NULL;
		if (asprintf(&out, "%s: %s", path, strerror(-r)) < 0)
			out = NULL;
		*ret_error = out;
		return r;
	}
	r = ruleset_load_string(rs, path, text, len, true, ret_error);
	free(text);
	return r;
}

int
ruleset_load_default(struct ruleset *rs, char **ret_error)
{
	return ruleset_load_string(rs, "default-rules", forkscope_default_rules, strlen(forkscope_default_rules), false,
				   ret_error);
}

static int
cmp_rule(const void *a, const void *b)
{
	const struct rule *x = a, *y = b;
	if (x->priority != y->priority)
		return y->priority - x->priority;
	return (int) y->user - (int) x->user;
}

void
ruleset_sort(struct ruleset *rs)
{
	/* qsort is not stable: break ties on position to keep file order. */
	for (size_t i = 1; i < rs->n_rules; i++)
		for (size_t j = i; j > 0 && cmp_rule(&rs->rules[j - 1], &rs->rules[j]) > 0; j--) {
			struct rule t = rs->rules[j];
			rs->rules[j] = rs->rules[j - 1];
			rs->rules[j - 1] = t;
		}
}
