/* JSON: the document itself, pretty, keys in the order they were written, with
 * schema_version moved first so `head -2` tells a reader what it holds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reports/render_util.h"

int
render_json_doc(const json_t *doc, const struct render_options *o, struct strbuf *out)
{
	json_t *copy = json_object();
	if (!copy)
		return -ENOMEM;
	json_t *version = json_object_get(doc, "schema_version");
	int r = 0;
	if (version && json_object_set(copy, "schema_version", version) < 0)
		r = -ENOMEM;
	const char *key;
	json_t *value;
	json_object_foreach((json_t *) doc, key, value) {
		if (r < 0)
			break;
		if (strcmp(key, "schema_version") != 0 && json_object_set(copy, key, value) < 0)
			r = -ENOMEM;
	}
	char *text = r == 0 ? json_dumps(copy, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	if (!text && r == 0) {
		/* Unchecked strings (built in memory) that are not UTF-8. */
		json_t *clean = render_sanitized_copy(copy);
		text = clean ? json_dumps(clean, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		json_decref(clean);
	}
	json_decref(copy);
	if (!text)
		return -ENOMEM;
	r = strbuf_append(out, text);
	if (r == 0)
		r = strbuf_append(out, "\n");
	free(text);
	return r;
}
