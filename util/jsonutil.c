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
	if (json_is_real(v))
		return (int64_t) json_real_value(v);
	return fallback;
}

double
json_num(const json_t *obj, const char *key, double fallback)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : fallback;
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

json_t *
json_string_lossy(const char *data, size_t len)
{
	char *out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	const unsigned char *p = (const unsigned char *) data;
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t need = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = need > 0 && c != 0 && i + need <= len;
		for (size_t k = 1; ok && k < need; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				ok = false;
		if (ok && need == 2 && c < 0xc2)
			ok = false; /* overlong */
		if (ok) {
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
