#include "util/fdutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/macro.h"

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *) a, y = *(const int *) b;
	return (x > y) - (x < y);
}

static int
close_range_compat(unsigned first, unsigned last, int *closed, size_t max_closed, size_t *n_closed)
{
	/* The caller may want to know what it closed (the fd_scrub event):
	 * look before closing, only over the range actually in use. */
	if (closed) {
		struct rlimit rl;
		unsigned limit = last;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur - 1 < limit)
			limit = (unsigned) rl.rlim_cur - 1;
		for (unsigned fd = first; fd <= limit && *n_closed < max_closed; fd++)
			if (fcntl((int) fd, F_GETFD) >= 0)
				closed[(*n_closed)++] = (int) fd;
	}
	if (syscall(SYS_close_range, first, last, 0) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	struct rlimit rl;
	unsigned limit = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		limit = (unsigned) rl.rlim_cur;
	for (unsigned fd = first; fd <= last && fd < limit; fd++)
		(void) close((int) fd);
	return 0;
}

int
fd_close_all_except(const int *keep, size_t n_keep, int *ret_closed, size_t max_closed,
		    size_t *ret_n_closed)
{
	/* Sort a copy on the stack: no malloc, this runs after fork. */
	int sorted[64];
	size_t n = 0;
	size_t n_closed = 0;
	if (n_keep > ARRAY_SIZE(sorted))
		return -E2BIG;
	for (size_t i = 0; i < n_keep; i++)
		if (keep[i] >= 0)
			sorted[n++] = keep[i];
	/* insertion sort: qsort is not on the async-signal-safe list */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && cmp_int(&sorted[j - 1], &sorted[j]) > 0; j--) {
			int t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	unsigned next = 0;
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned) sorted[i];
		if (k > next) {
			r = close_range_compat(next, k - 1, ret_closed, max_closed, &n_closed);
			if (r < 0)
				return r;
		}
		if (k + 1 > next)
			next = k + 1;
	}
	r = close_range_compat(next, UINT_MAX, ret_closed, max_closed, &n_closed);
	if (ret_n_closed)
		*ret_n_closed = n_closed;
	return r;
}

bool
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

int
fd_set_cloexec(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0)
		return -errno;
	int nflags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
	if (nflags != flags && fcntl(fd, F_SETFD, nflags) < 0)
		return -errno;
	return 0;
}

int
fd_set_nonblock(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	int nflags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
	if (nflags != flags && fcntl(fd, F_SETFL, nflags) < 0)
		return -errno;
	return 0;
}

int
fd_move_above(int fd, int min_fd)
{
	if (fd >= min_fd)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
	if (nfd < 0)
		return -errno;
	(void) close(fd);
	return nfd;
}

int
write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

ssize_t
read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t) n;
	}
	return (ssize_t) done;
}

ssize_t
read_file_at(int dirfd, const char *path, char *buf, size_t size)
{
	if (size == 0)
		return -EINVAL;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	ssize_t n = read_full(fd, buf, size - 1);
	(void) close(fd);
	if (n < 0)
		return n;
	buf[n] = '\0';
	return n;
}

ssize_t
read_file_into(const char *path, char *buf, size_t size)
{
	return read_file_at(AT_FDCWD, path, buf, size);
}

int
read_file_alloc(const char *path, char **ret_data, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	char *data = malloc(cap);
	if (!data)
		return -ENOMEM;
	for (;;) {
		if (len + 1 >= cap) {
			char *n = realloc(data, cap * 2);
			if (!n) {
				free(data);
				return -ENOMEM;
			}
			data = n;
			cap *= 2;
		}
		ssize_t r = read(fd, data + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(data);
			return e;
		}
		if (r == 0)
			break;
		len += (size_t) r;
	}
	data[len] = '\0';
	*ret_data = data;
	if (ret_len)
		*ret_len = len;
	return 0;
}
