#include "util/jsonutil.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fdutil.h"

int
text_write_file_atomic(const char *path, const char *data, size_t len)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid());
	if (n < 0 || (size_t) n >= sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int r = write_full(fd, data, len);
	if (r == 0 && fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		(void) unlink(tmp);
	return r;
}

int
json_write_file_atomic(const json_t *root, const char *path, size_t flags)
{
	char *text = json_dumps(root, flags);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	/* A trailing newline keeps the file friendly to line tools. */
	char *withnl = realloc(text, len + 2);
	if (!withnl) {
		free(text);
		return -ENOMEM;
	}
	withnl[len] = '\n';
	withnl[len + 1] = '\0';
	int r = text_write_file_atomic(path, withnl, len + 1);
	free(withnl);
	return r;
}

const char *
json_str(const json_t *obj, const char *key, const char *fallback)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : fallback;
}

int64_t
json_int(const json_t *obj, const char *key, int64_t fallback)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		return (int64_t) json_integer_value(v);
	if (json_is_real(v)) {
		/* Casting a double outside int64_t's range (1e300 in a hostile file)
		 * is undefined behaviour: clamp, and NaN gets the fallback. */
		double d = json_real_value(v);
		if (d != d)
			return fallback;
		if (d >= 9223372036854775808.0)
			return INT64_MAX;
		if (d < -9223372036854775808.0)
			return INT64_MIN;
		return (int64_t) d;
	}
	return fallback;
}

double
json_num(const json_t *obj, const char *key, double fallback)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : fallback;
}

bool
json_ns(const json_t *obj, const char *key, uint64_t *ret_value)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*ret_value = (uint64_t) json_integer_value(v);
		return true;
	}
	/* Below 2^64 (about 1.8447e19), or the cast is undefined. */
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1.8e19) {
		*ret_value = (uint64_t) json_real_value(v);
		return true;
	}
	return false;
}

const char *
json_strn(const json_t *obj, const char *key, size_t *ret_len)
{
	const json_t *v = json_object_get(obj, key);
	if (!json_is_string(v))
		return NULL;
	if (ret_len)
		*ret_len = json_string_length(v);
	return json_string_value(v);
}

bool
json_has_int(const json_t *obj, const char *key)
{
	return json_is_integer(json_object_get(obj, key));
}

int
json_bool(const json_t *obj, const char *key, int fallback)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_boolean(v) ? json_is_true(v) : fallback;
}

json_t *
json_u64(uint64_t v)
{
	return json_integer(v > (uint64_t) INT64_MAX ? INT64_MAX : (json_int_t) v);
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629, Unicode table
 * 3-7), or 0: no overlong forms, no UTF-16 surrogates (U+D800..DFFF), nothing
 * above U+10FFFF, no NUL. jansson refuses exactly those, and a caller must
 * never get NULL for a string it asked to be made valid. */
static size_t
utf8_sequence_length(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below U+0800 */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else
		return 0; /* continuation byte, 0xc0/0xc1, 0xf5.. */
	if (avail < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t k = 2; k < need; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return need;
}

json_t *
json_string_lossy(const char *data, size_t len)
{
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	char *out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	const unsigned char *p = (const unsigned char *) data;
	for (size_t i = 0; i < len;) {
		size_t need = utf8_sequence_length(p + i, len - i);
		if (need) {
			memcpy(out + o, p + i, need);
			o += need;
			i += need;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	json_t *s = json_stringn(out, o);
	free(out);
	return s;
}

int
json_hex_checked(const json_t *obj, const char *key, uint64_t *ret)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return -ENOENT;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		*ret = (uint64_t) json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s)
		return -EINVAL;
	const char *digits = s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? s + 2 : s;
	size_t n = strspn(digits, "0123456789abcdefABCDEF");
	if (n == 0 || digits[n] != '\0')
		return -EINVAL;
	size_t zeros = strspn(digits, "0");
	/* More than 16 significant digits would overflow a uint64. */
	if (n - zeros > 16)
		return -EINVAL;
	*ret = strtoull(digits, NULL, 16);
	return 0;
}

uint64_t
json_hex(const json_t *obj, const char *key, uint64_t fallback)
{
	uint64_t v;
	return json_hex_checked(obj, key, &v) == 0 ? v : fallback;
}

char
json_char(const json_t *obj, const char *key, char fallback)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && s[0] ? s[0] : fallback;
}

char *
json_strdup(const json_t *obj, const char *key, bool *ret_ok)
{
	const char *s = json_string_value(json_object_get(obj, key));
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d && ret_ok)
		*ret_ok = false;
	return d;
}
