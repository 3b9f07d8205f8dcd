#include "util/timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t
now_ns(void)
{
	struct timespec ts;
	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

struct unit {
	const char *suffix;
	double factor;
};

static int
parse_with_units(const char *text, const struct unit *units, size_t n_units, double default_factor,
		 uint64_t *ret)
{
	char *end;
	double value;

	if (!text || !*text)
		return -EINVAL;
	/* strtod accepts "inf", "nan", signs and hex floats: require a plain decimal. */
	if (!(text[0] >= '0' && text[0] <= '9') || strpbrk(text, "xXeE"))
		return -EINVAL;
	errno = 0;
	value = strtod(text, &end);
	if (errno != 0 || end == text || value < 0 || !isfinite(value))
		return -EINVAL;
	double factor = -1;
	if (*end == '\0')
		factor = default_factor;
	else
		for (size_t i = 0; i < n_units; i++)
			if (strcmp(end, units[i].suffix) == 0) {
				factor = units[i].factor;
				break;
			}
	if (factor < 0)
		return -EINVAL;
	double total = value * factor;
	if (total > 1.8e19)
		return -ERANGE;
	*ret = (uint64_t) llround(total);
	return 0;
}

int
duration_parse(const char *text, uint64_t *ret_ns)
{
	static const struct unit units[] = {
		{ "ns", 1 },	      { "us", 1e3 },	   { "ms", 1e6 },     { "s", 1e9 },
		{ "sec", 1e9 },	      { "m", 60e9 },	   { "min", 60e9 },   { "h", 3600e9 },
	};
	return parse_with_units(text, units, sizeof(units) / sizeof(units[0]), 1e9, ret_ns);
}

int
size_parse(const char *text, uint64_t *ret_bytes)
{
	static const struct unit units[] = {
		{ "B", 1 },	    { "KiB", 1024.0 },	  { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
		{ "kB", 1e3 },	    { "KB", 1e3 },	  { "MB", 1e6 },	{ "GB", 1e9 },
		{ "K", 1024.0 },    { "M", 1048576.0 },	  { "G", 1073741824.0 },
	};
	return parse_with_units(text, units, sizeof(units) / sizeof(units[0]), 1, ret_bytes);
}

char *
duration_format(uint64_t ns, char *buf, size_t size)
{
	if (ns >= 10 * NSEC_PER_SEC)
		(void) snprintf(buf, size, "%.1fs", (double) ns / 1e9);
	else if (ns >= NSEC_PER_SEC)
		(void) snprintf(buf, size, "%.3fs", (double) ns / 1e9);
	else if (ns >= 10 * NSEC_PER_MSEC)
		(void) snprintf(buf, size, "%.0fms", (double) ns / 1e6);
	else if (ns >= NSEC_PER_MSEC)
		(void) snprintf(buf, size, "%.1fms", (double) ns / 1e6);
	else if (ns >= NSEC_PER_USEC)
		(void) snprintf(buf, size, "%.0fus", (double) ns / 1e3);
	else
		(void) snprintf(buf, size, "%lluns", (unsigned long long) ns);
	return buf;
}
