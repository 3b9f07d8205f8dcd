#include "util/strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
strbuf_grow(struct strbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return 0;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	char *d = realloc(sb->data, cap);
	if (!d)
		return -ENOMEM;
	sb->data = d;
	sb->cap = cap;
	return 0;
}

int
strbuf_appendn(struct strbuf *sb, const char *s, size_t n)
{
	int r = strbuf_grow(sb, n);
	if (r < 0)
		return r;
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
	return 0;
}

int
strbuf_append(struct strbuf *sb, const char *s)
{
	return strbuf_appendn(sb, s, strlen(s));
}

int
strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	int r = strbuf_grow(sb, (size_t) n);
	if (r < 0)
		return r;
	(void) vsnprintf(sb->data + sb->len, (size_t) n + 1, fmt, ap);
	sb->len += (size_t) n;
	return 0;
}

int
strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
	return r;
}

char *
strbuf_steal(struct strbuf *sb)
{
	if (!sb->data && strbuf_grow(sb, 0) < 0)
		return NULL;
	if (sb->data)
		sb->data[sb->len] = '\0';
	char *d = sb->data;
	sb->data = NULL;
	sb->len = sb->cap = 0;
	return d;
}

void
strbuf_free(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}
