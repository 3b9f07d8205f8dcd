#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"
#include "util/strbuf.h"

/* ------------------------------------------------------------------------ */
/* YAML reading: events -> node tree */

void
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

int
loader_fail(struct loader *l, unsigned line, unsigned column, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL, *error = NULL;
	/* The loader goes on past some errors (loader_keep_going): the one
	 * reported is the first in the file, not the first found. */
	if (l->error &&
	    (line > l->error_line || (line == l->error_line && column >= l->error_column)))
		return -EINVAL;
	va_start(ap, fmt);
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	n = asprintf(&error, "%s:%u:%u: %s", l->path, line, column, m);
	free(m);
	if (n < 0)
		return -ENOMEM;
	free(l->error);
	l->error = error;
	l->error_line = line;
	l->error_column = column;
	return -EINVAL;
}

int
loader_keep_going(struct loader *l, int r, int *failed)
{
	if (r >= 0)
		return 0;
	if (r == -EINVAL && l->error) {
		*failed = r;
		return 0;
	}
	return r;
}

/* Report a message produced by a value parser at a node. */
int
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

int
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

const char *
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

int
want_scalar(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q;
	if (n->type == YNODE_SCALAR)
		return 0;
	return fail_at(l, n, "expected a single value for %s, found %s", what, node_found(n, &q));
}

int
want_mapping(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q;
	if (n->type == YNODE_MAPPING)
		return 0;
	return fail_at(l, n, "expected a mapping for %s, found %s", what, node_found(n, &q));
}

int
want_sequence(struct loader *l, const struct ynode *n, const char *what)
{
	struct quoted q;
	if (n->type == YNODE_SEQUENCE)
		return 0;
	return fail_at(l, n, "expected a list for %s, found %s", what, node_found(n, &q));
}

/* Check a mapping against its known keys: every key a scalar, known and set
 * once. fields[i].key/value get the nodes of the keys present; past a bad key
 * the others are still filled and -EINVAL is returned at the end. */
int
map_fields(struct loader *l, const struct ynode *map, const char *where, struct field *fields,
	   size_t n_fields)
{
	struct quoted q;
	int failed = 0, r = 0;
	for (size_t i = 0; i + 1 < map->n_items && r >= 0; i += 2) {
		const struct ynode *k = map->items[i];
		size_t j;
		if (k->type != YNODE_SCALAR) {
			r = loader_keep_going(
			    l,
			    fail_at(l, k, "keys must be single words, found %s", node_found(k, &q)),
			    &failed);
			continue;
		}
		for (j = 0; j < n_fields; j++)
			if (strcmp(fields[j].name, k->text) == 0)
				break;
		if (j == n_fields) {
			const char *names[16];
			char *msg = NULL;
			for (size_t f = 0; f < n_fields && f < ARRAY_SIZE(names); f++)
				names[f] = fields[f].name;
			r = unknown_msg(&msg, "key", k->text, where, names,
					MIN(n_fields, ARRAY_SIZE(names)), NULL);
			r = loader_keep_going(l, fail_msg(l, k, r, msg), &failed);
			continue;
		}
		if (fields[j].key) {
			r = loader_keep_going(l,
					      fail_at(l, k,
						      "duplicate key '%s'%s (first at line %u)",
						      fields[j].name, where, fields[j].key->line),
					      &failed);
			continue;
		}
		fields[j].key = k;
		fields[j].value = map->items[i + 1];
	}
	return r < 0 ? r : failed;
}

struct field *
field_get(struct field *fields, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

/* Apply a YAML scalar through the setting named key (canonical). */
int
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
int
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
