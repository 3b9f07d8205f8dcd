#pragma once
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#define NSEC_PER_USEC 1000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL

/* CLOCK_MONOTONIC in nanoseconds: the time base of every probe event. */
uint64_t now_ns(void);

/* Parse "250ms", "1.5s", "2m", "300us", "10ns" or a bare number of seconds.
 * Returns 0 or -EINVAL. */
int duration_parse(const char *text, uint64_t *ret_ns);

/* "1.250s", "250ms", "12us": compact and human. Returns buf. */
char *duration_format(uint64_t ns, char *buf, size_t size);

/* Parse "64KiB", "1MiB", "16MiB", "1GiB", "100", "10kB" (1000-based). */
int size_parse(const char *text, uint64_t *ret_bytes);
