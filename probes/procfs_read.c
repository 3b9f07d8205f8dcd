#include "probes/procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/macro.h"
#include "probes/procfs_internal.h"

/* ---- readers ---- */

int
procfs_open_pid(pid_t pid)
{
	char path[32];
	(void) snprintf(path, sizeof(path), "/proc/%d", (int) pid);
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int
procfs_open_task(int pid_dirfd, pid_t tid)
{
	char path[32];
	(void) snprintf(path, sizeof(path), "task/%d", (int) tid);
	int fd = openat(pid_dirfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* A dead task's files read as empty: say ESRCH rather than EINVAL. */
static int
read_small(int dirfd, const char *name, char *buf, size_t size)
{
	ssize_t n = read_file_at(dirfd, name, buf, size);
	if (n < 0)
		return (int) n;
	if (n == 0)
		return -ESRCH;
	return (int) n;
}

int
procfs_read_stat(int dirfd, struct proc_stat *ret)
{
	char buf[1024];
	int n = read_small(dirfd, "stat", buf, sizeof(buf));
	if (n < 0)
		return n;
	return procfs_parse_stat(buf, (size_t) n, ret);
}

int
procfs_read_status(int dirfd, struct proc_status *ret)
{
	char buf[4096];
	int n = read_small(dirfd, "status", buf, sizeof(buf));
	if (n < 0)
		return n;
	return procfs_parse_status(buf, (size_t) n, ret);
}

int
procfs_read_syscall(int dirfd, struct proc_syscall *ret)
{
	char buf[256];
	int n = read_small(dirfd, "syscall", buf, sizeof(buf));
	if (n < 0)
		return n;
	return procfs_parse_syscall(buf, (size_t) n, ret);
}

int
procfs_read_wchan(int dirfd, char *buf, size_t size)
{
	char tmp[128];
	ssize_t n = read_file_at(dirfd, "wchan", tmp, sizeof(tmp));
	if (n < 0)
		return (int) n;
	procfs_parse_wchan(tmp, (size_t) n, buf, size);
	return 0;
}

int
procfs_read_io(int dirfd, struct proc_io *ret)
{
	char buf[512];
	int n = read_small(dirfd, "io", buf, sizeof(buf));
	if (n < 0)
		return n;
	return procfs_parse_io(buf, (size_t) n, ret);
}

int
procfs_read_comm(int dirfd, char *buf, size_t size)
{
	char tmp[PROCFS_COMM_MAX];
	int n = read_small(dirfd, "comm", tmp, sizeof(tmp));
	if (n < 0)
		return n;
	if (n > 0 && tmp[n - 1] == '\n')
		tmp[--n] = '\0';
	copy_bounded(buf, size, tmp, (size_t) n);
	return 0;
}

static int
read_at_alloc(int dirfd, const char *name, char **ret_data, size_t *ret_len)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *data = malloc(cap);
	if (!data)
		return -ENOMEM;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= (64u << 20))
				return -EFBIG;
			char *grown = realloc(data, cap * 2);
			if (!grown)
				return -ENOMEM;
			data = grown;
			cap *= 2;
		}
		ssize_t r = read(fd, data + len, cap - 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		len += (size_t) r;
	}
	data[len] = '\0';
	*ret_len = len;
	*ret_data = take_ptr(&data);
	return 0;
}

int
procfs_read_fdinfo(int dirfd, int fd, struct proc_fdinfo *ret, struct epoll_target **ret_targets)
{
	char name[32];
	_cleanup_free_ char *text = NULL;
	size_t len;
	struct proc_fdinfo fi;
	int r;

	(void) snprintf(name, sizeof(name), "fdinfo/%d", fd);
	r = read_at_alloc(dirfd, name, &text, &len);
	if (r < 0)
		return r;
	if (len == 0)
		return -ESRCH;
	r = procfs_parse_fdinfo(text, len, &fi, NULL, 0);
	if (r < 0)
		return r;
	struct epoll_target *targets = NULL;
	if (fi.n_targets > 0) {
		targets = calloc(fi.n_targets, sizeof(*targets));
		if (!targets)
			return -ENOMEM;
		size_t cap = fi.n_targets;
		(void) procfs_parse_fdinfo(text, len, &fi, targets, cap);
		if (fi.n_targets > cap)
			fi.n_targets = cap;
	}
	*ret = fi;
	if (ret_targets)
		*ret_targets = targets;
	else
		free(targets);
	return 0;
}

static int
cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
	return (x > y) - (x < y);
}

static int
cmp_int_local(const void *a, const void *b)
{
	int x = *(const int *) a, y = *(const int *) b;
	return (x > y) - (x < y);
}

/* Numeric entries of a directory under dirfd, sorted. */
static int
read_numeric_dir(int dirfd, const char *name, int **ret, size_t *ret_n)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = -errno;
		(void) close(fd);
		return e;
	}
	size_t n = 0, cap = 16;
	int *v = malloc(cap * sizeof(*v));
	if (!v) {
		(void) closedir(d);
		return -ENOMEM;
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		uint64_t u;
		size_t k = as_parse_u64(de->d_name, &u);
		if (!k || de->d_name[k] != '\0' || u > INT_MAX)
			continue;
		if (n == cap) {
			int *grown = realloc(v, cap * 2 * sizeof(*v));
			if (!grown) {
				free(v);
				(void) closedir(d);
				return -ENOMEM;
			}
			v = grown;
			cap *= 2;
		}
		v[n++] = (int) u;
	}
	int e = errno ? -errno : 0;
	(void) closedir(d);
	if (e < 0 && n == 0) {
		free(v);
		return e;
	}
	qsort(v, n, sizeof(*v), cmp_int_local);
	*ret = v;
	*ret_n = n;
	return 0;
}

int
procfs_read_tasks(int dirfd, pid_t **ret_tids, size_t *ret_n)
{
	_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is int");
	int *v;
	size_t n;
	int r = read_numeric_dir(dirfd, "task", &v, &n);
	if (r < 0)
		return r;
	*ret_tids = (pid_t *) v;
	*ret_n = n;
	return 0;
}

int
procfs_read_fds(int dirfd, int **ret_fds, size_t *ret_n)
{
	return read_numeric_dir(dirfd, "fd", ret_fds, ret_n);
}

int
procfs_read_children(int dirfd, pid_t **ret_pids, size_t *ret_n)
{
	_cleanup_free_ pid_t *tids = NULL;
	size_t n_tids;
	int r = procfs_read_tasks(dirfd, &tids, &n_tids);
	if (r < 0)
		return r;
	pid_t *all = NULL;
	size_t n = 0;
	for (size_t i = 0; i < n_tids; i++) {
		char name[48];
		_cleanup_free_ char *text = NULL;
		size_t len;
		(void) snprintf(name, sizeof(name), "task/%d/children", (int) tids[i]);
		if (read_at_alloc(dirfd, name, &text, &len) < 0)
			continue; /* thread gone, or no CONFIG_PROC_CHILDREN */
		int k = procfs_parse_pid_list(text, len, NULL, 0);
		if (k <= 0)
			continue;
		pid_t *grown = realloc(all, (n + (size_t) k) * sizeof(*all));
		if (!grown) {
			free(all);
			return -ENOMEM;
		}
		all = grown;
		(void) procfs_parse_pid_list(text, len, all + n, (size_t) k);
		n += (size_t) k;
	}
	if (n > 1) {
		qsort(all, n, sizeof(*all), cmp_pid);
		size_t u = 1;
		for (size_t i = 1; i < n; i++)
			if (all[i] != all[u - 1])
				all[u++] = all[i];
		n = u;
	}
	*ret_pids = all;
	*ret_n = n;
	return 0;
}

int
procfs_read_cmdline(int dirfd, char ***ret_argv, size_t *ret_argc)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = read_at_alloc(dirfd, "cmdline", &text, &len);
	if (r < 0)
		return r;
	/* The last argument may lack its NUL (a process rewrote its argv). */
	size_t argc = 0;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\0')
			argc++;
	if (len > 0 && text[len - 1] != '\0')
		argc++;
	size_t head = (argc + 1) * sizeof(char *);
	char **argv = malloc(head + len + 1);
	if (!argv)
		return -ENOMEM;
	char *strings = (char *) argv + head;
	memcpy(strings, text, len);
	strings[len] = '\0';
	size_t k = 0;
	for (size_t i = 0; i < len && k < argc;) {
		argv[k++] = strings + i;
		i += strlen(strings + i) + 1;
	}
	argv[k] = NULL;
	*ret_argv = argv;
	*ret_argc = k;
	return 0;
}

int
procfs_readlink(int dirfd, const char *name, char **ret_target)
{
	char buf[PATH_MAX + 32];
	ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	char *s = strdup(buf);
	if (!s)
		return -ENOMEM;
	*ret_target = s;
	return 0;
}
