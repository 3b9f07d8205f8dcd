/* libFuzzer: util/jsonutil.c, the glue every reader of our files goes
 * through. json_string_lossy must turn any bytes into a string jansson takes
 * (never NULL, never invalid UTF-8), and the tolerant accessors must read any
 * value of any type without undefined behaviour (huge reals into int64). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *s = json_string_lossy((const char *) data, size);
	if (!s)
		abort(); /* invalid input must come out as U+FFFD, not as nothing */
	const char *v = json_string_value(s);
	size_t n = json_string_length(s);
	/* a string jansson accepts back, and no NUL inside */
	if (memchr(v, '\0', n))
		abort();
	json_t *back = json_stringn(v, n);
	if (!back)
		abort();
	json_decref(back);
	json_decref(s);

	json_t *doc = json_loadb((const char *) data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (json_is_object(doc)) {
		const char *key;
		json_t *value;
		json_object_foreach(doc, key, value) {
			(void) json_int(doc, key, -1);
			(void) json_num(doc, key, -1);
			(void) json_bool(doc, key, -1);
			(void) json_str(doc, key, NULL);
		}
	}
	json_t *wrap = json_pack("{s:O?}", "v", doc);
	(void) json_int(wrap, "v", 0);
	(void) json_num(wrap, "v", 0);
	json_decref(wrap);
	json_decref(doc);
	return 0;
}
