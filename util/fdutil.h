#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Close every fd except those in keep[] (any order). Async-signal-safe:
 * close_range() over the gaps, no allocation, no /proc. Returns 0 or -errno.
 * When ret_closed is given, up to max_closed closed fd numbers are stored there
 * (found with fcntl(F_GETFD) before closing) and *ret_n_closed gets their count. */
int fd_close_all_except(const int *keep, size_t n_keep, int *ret_closed, size_t max_closed,
			size_t *ret_n_closed);

bool fd_is_open(int fd);
int fd_set_cloexec(int fd, bool on);
int fd_set_nonblock(int fd, bool on);

/* Move fd to the lowest free number >= min_fd, closing the old one. Returns the new fd or -errno. */
int fd_move_above(int fd, int min_fd);

/* Loop over short writes and EINTR. Async-signal-safe. Returns 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);
/* Read until len bytes or EOF. Returns bytes read or -errno. */
ssize_t read_full(int fd, void *buf, size_t len);

/* Read a small file (e.g. under /proc) into buf, NUL-terminated. Returns bytes or -errno. */
ssize_t read_file_into(const char *path, char *buf, size_t size);
/* Same, relative to a directory fd. */
ssize_t read_file_at(int dirfd, const char *path, char *buf, size_t size);
/* Read a whole file into a malloc'ed, NUL-terminated buffer. Returns 0 or -errno. */
int read_file_alloc(const char *path, char **ret_data, size_t *ret_len);
