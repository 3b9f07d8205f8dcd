#include "util/asfmt.h"

#include <string.h>

void
asbuf_reset(struct asbuf *b)
{
	b->len = 0;
	b->overflow = false;
	if (b->cap)
		b->data[0] = '\0';
}

void
asbuf_putn(struct asbuf *b, const char *s, size_t n)
{
	if (b->cap == 0)
		return;
	size_t room = b->cap - 1 - b->len;
	if (n > room) {
		n = room;
		b->overflow = true;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
asbuf_putc(struct asbuf *b, char c)
{
	asbuf_putn(b, &c, 1);
}

void
asbuf_puts(struct asbuf *b, const char *s)
{
	asbuf_putn(b, s, strlen(s));
}

void
asbuf_u64(struct asbuf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char) ('0' + v % 10);
		v /= 10;
	} while (v);
	asbuf_putn(b, tmp + i, sizeof(tmp) - i);
}

void
asbuf_i64(struct asbuf *b, int64_t v)
{
	if (v < 0) {
		asbuf_putc(b, '-');
		asbuf_u64(b, (uint64_t) (-(v + 1)) + 1);
	} else
		asbuf_u64(b, (uint64_t) v);
}

void
asbuf_hex(struct asbuf *b, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[18];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = digits[v & 0xf];
		v >>= 4;
	} while (v);
	asbuf_puts(b, "0x");
	asbuf_putn(b, tmp + i, sizeof(tmp) - i);
}

void
asbuf_json_strn(struct asbuf *b, const char *s, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	asbuf_putc(b, '"');
	for (size_t i = 0; i < n && s[i]; i++) {
		unsigned char c = (unsigned char) s[i];
		switch (c) {
		case '"':
			asbuf_puts(b, "\\\"");
			break;
		case '\\':
			asbuf_puts(b, "\\\\");
			break;
		case '\n':
			asbuf_puts(b, "\\n");
			break;
		case '\t':
			asbuf_puts(b, "\\t");
			break;
		case '\r':
			asbuf_puts(b, "\\r");
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char esc[6] = { '\\', 'u', '0', '0', digits[c >> 4], digits[c & 0xf] };
				asbuf_putn(b, esc, sizeof(esc));
			} else
				asbuf_putc(b, (char) c);
		}
	}
	asbuf_putc(b, '"');
}

void
asbuf_json_str(struct asbuf *b, const char *s)
{
	asbuf_json_strn(b, s, s ? strlen(s) : 0);
}

void
asbuf_json_key(struct asbuf *b, const char *key)
{
	if (b->len > 0) {
		char last = b->data[b->len - 1];
		if (last != '{' && last != '[')
			asbuf_putc(b, ',');
	}
	asbuf_json_str(b, key);
	asbuf_putc(b, ':');
}

size_t
as_parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;
	while (s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (uint64_t) (s[i] - '0');
		i++;
	}
	if (i)
		*ret = v;
	return i;
}

size_t
as_parse_hex(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		i = 2;
	size_t start = i;
	for (;; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		v = (v << 4) | (uint64_t) d;
	}
	if (i == start)
		return 0;
	*ret = v;
	return i;
}
