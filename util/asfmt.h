#pragma once
/* Async-signal-safe formatting into a caller-owned buffer.
 *
 * Used by the probe between fork() and user code and in signal handlers,
 * where malloc and stdio are off limits. Every function truncates silently
 * and keeps the buffer NUL-terminated; asbuf_overflowed() tells. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct asbuf {
	char *data;
	size_t len;
	size_t cap;
	bool overflow;
};

#define ASBUF_INIT(storage) { .data = (storage), .len = 0, .cap = sizeof(storage), .overflow = false }

void asbuf_reset(struct asbuf *b);
void asbuf_putc(struct asbuf *b, char c);
void asbuf_puts(struct asbuf *b, const char *s);
void asbuf_putn(struct asbuf *b, const char *s, size_t n);
void asbuf_u64(struct asbuf *b, uint64_t v);
void asbuf_i64(struct asbuf *b, int64_t v);
void asbuf_hex(struct asbuf *b, uint64_t v); /* "0x1f" */
/* A JSON string literal with quotes, escaping control characters. */
void asbuf_json_str(struct asbuf *b, const char *s);
void asbuf_json_strn(struct asbuf *b, const char *s, size_t n);
/* "key": prefixed with a comma unless the previous char is '{' or '['. */
void asbuf_json_key(struct asbuf *b, const char *key);
static inline bool
asbuf_overflowed(const struct asbuf *b)
{
	return b->overflow;
}

/* Parse helpers that never allocate. Return the number of chars consumed, 0 on failure. */
size_t as_parse_u64(const char *s, uint64_t *ret);
size_t as_parse_hex(const char *s, uint64_t *ret);
