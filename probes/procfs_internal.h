#pragma once
/* Private to probes/procfs*.c: small helpers the parsers, the readers and
 * the syscall decoder share. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void
copy_bounded(char *dst, size_t size, const char *src, size_t n)
{
	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static inline int64_t
ns_saturated(int64_t sec, int64_t nsec)
{
	int64_t ns;
	if (__builtin_mul_overflow(sec, (int64_t) 1000000000, &ns) || __builtin_add_overflow(ns, nsec, &ns))
		return (sec < 0 || (sec == 0 && nsec < 0)) ? INT64_MIN : INT64_MAX;
	return ns;
}

static inline bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}
