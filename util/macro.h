#pragma once
/* Small macros shared by every module: cleanup attributes and array size. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void
cleanup_freep(void *p)
{
	free(*(void **) p);
}

static inline void
cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void) close(*fd);
		errno = saved;
	}
}

static inline void
cleanup_fclosep(FILE **f)
{
	if (*f)
		(void) fclose(*f);
}

#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(cleanup_fclosep)))

/* Take ownership out of a cleanup variable. */
static inline int
take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline void *
take_ptr(void *pp)
{
	void **p = pp;
	void *r = *p;
	*p = NULL;
	return r;
}

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
