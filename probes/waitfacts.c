#include "probes/waitfacts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/jsonutil.h"
#include "util/macro.h"

/* "1: FLOCK  ADVISORY  WRITE 2687 fe:00:10953144 0 EOF"
 * "1: -> POSIX  ADVISORY  WRITE 412 08:01:1234 0 99" */
static bool
parse_lock_line(const char *s, struct fd_lock *ret)
{
	struct fd_lock l = {0};
	char kind[16], adv[16], mode[16], end[32];
	int id, n = 0;
	if (sscanf(s, " %d: %n", &id, &n) < 1 || n == 0)
		return false;
	s += n;
	while (*s == ' ' || *s == '\t')
		s++;
	if (strncmp(s, "->", 2) == 0) {
		l.waiter = true;
		s += 2;
	}
	long long pid, start;
	unsigned maj, min;
	unsigned long long ino;
	if (sscanf(s, " %15s %15s %15s %lld %x:%x:%llu %lld %31s", kind, adv, mode, &pid, &maj, &min, &ino, &start,
		   end) != 9)
		return false;
	(void) snprintf(l.kind, sizeof(l.kind), "%s", kind);
	l.write = strcmp(mode, "WRITE") == 0;
	l.pid = (pid_t) pid;
	l.dev_major = maj;
	l.dev_minor = min;
	l.ino = ino;
	l.start = start;
	l.end = strcmp(end, "EOF") == 0 ? -1 : strtoll(end, NULL, 10);
	*ret = l;
	return true;
}

int
fd_locks_parse(const char *text, bool with_prefix, struct fd_lock **ret, size_t *ret_n)
{
	struct fd_lock *out = NULL;
	size_t n = 0, cap = 0;
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t) (nl - line) : strlen(line);
		char buf[256];
		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = '\0';
			const char *s = buf;
			bool take = true;
			if (with_prefix) {
				take = strncmp(s, "lock:", 5) == 0;
				s += take ? 5 : 0;
			}
			struct fd_lock l;
			if (take && parse_lock_line(s, &l)) {
				if (n == cap) {
					cap = cap ? cap * 2 : 4;
					struct fd_lock *g = realloc(out, cap * sizeof(*g));
					if (!g) {
						free(out);
						return -ENOMEM;
					}
					out = g;
				}
				out[n++] = l;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

int
fd_locks_read(pid_t pid, int fd, struct fd_lock **ret, size_t *ret_n)
{
	char path[64], buf[4096];
	(void) snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int) pid, fd);
	_cleanup_close_ int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	size_t len = 0;
	for (;;) {
		ssize_t r = read(f, buf + len, sizeof(buf) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || (len += (size_t) r) == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	*ret = NULL;
	*ret_n = 0;
	if (!strstr(buf, "lock:"))
		return 0;
	return fd_locks_parse(buf, true, ret, ret_n);
}

json_t *
fd_locks_to_json(const struct fd_lock *locks, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct fd_lock *l = &locks[i];
		char dev[32];
		(void) snprintf(dev, sizeof(dev), "%02x:%02x", l->dev_major, l->dev_minor);
		(void) json_array_append_new(
		    a, json_pack("{s:s,s:s,s:i,s:s,s:o,s:I,s:o,s:b}", "kind", l->kind, "mode", l->write ? "write" : "read",
				 "pid", (int) l->pid, "dev", dev, "ino", json_u64(l->ino), "start", (json_int_t) l->start,
				 "end", l->end < 0 ? json_null() : json_integer(l->end), "waiter", l->waiter));
	}
	return a;
}

int
fd_locks_from_json(const json_t *a, struct fd_lock **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	if (!json_is_array(a) || json_array_size(a) == 0)
		return 0;
	struct fd_lock *out = calloc(json_array_size(a), sizeof(*out));
	if (!out)
		return -ENOMEM;
	size_t i, n = 0;
	json_t *o;
	json_array_foreach(a, i, o) {
		struct fd_lock *l = &out[n++];
		(void) snprintf(l->kind, sizeof(l->kind), "%s", json_str(o, "kind", "?"));
		l->write = strcmp(json_str(o, "mode", "write"), "write") == 0;
		l->pid = (pid_t) json_int(o, "pid", 0);
		unsigned maj = 0, min = 0;
		(void) sscanf(json_str(o, "dev", "0:0"), "%x:%x", &maj, &min);
		l->dev_major = maj;
		l->dev_minor = min;
		l->ino = (uint64_t) json_int(o, "ino", 0);
		l->start = json_int(o, "start", 0);
		l->end = json_int(o, "end", -1);
		l->waiter = json_is_true(json_object_get(o, "waiter"));
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

int
wait_path_read(pid_t tid, uint64_t addr, char **ret)
{
	char buf[PATH_MAX];
	size_t got = 0;
	if (!addr)
		return -EFAULT;
	/* page by page: a path near the end of a mapping must not fail the whole read */
	while (got < sizeof(buf)) {
		uint64_t a = addr + got;
		size_t chunk = 4096 - (size_t) (a & 4095);
		if (chunk > sizeof(buf) - got)
			chunk = sizeof(buf) - got;
		struct iovec local = {buf + got, chunk}, remote = {(void *) (uintptr_t) a, chunk};
		ssize_t r = process_vm_readv(tid, &local, 1, &remote, 1, 0);
		if (r <= 0)
			return got ? -EFAULT : r < 0 ? -errno : -EFAULT;
		void *nul = memchr(buf + got, '\0', (size_t) r);
		got += (size_t) r;
		if (nul) {
			*ret = strdup(buf);
			return *ret ? 0 : -ENOMEM;
		}
	}
	return -ENAMETOOLONG;
}

bool
syscall_opens_path(long nr, int *ret_arg)
{
#ifdef SYS_open
	if (nr == SYS_open) {
		*ret_arg = 0;
		return true;
	}
#endif
	if (nr == SYS_openat || nr == SYS_openat2) {
		*ret_arg = 1;
		return true;
	}
	return false;
}

bool
syscall_resolve_restart_by_frame(pid_t pid, const char *frame0, struct proc_syscall *sc, struct syscall_wait *w)
{
	if (sc->kind != PROC_SYSCALL_IN || sc->nr != SYS_restart_syscall || !frame0)
		return false;
	static const struct {
		const char *frame;
		long nr;
	} map[] = {
		{"clock_nanosleep", SYS_clock_nanosleep}, {"nanosleep", SYS_nanosleep},
		{"epoll_pwait", SYS_epoll_pwait},	  {"epoll_wait", SYS_epoll_wait},
		{"ppoll", SYS_ppoll},			  {"poll", SYS_poll},
		{"pselect", SYS_pselect6},		  {"select", SYS_select},
		{"futex", SYS_futex},
	};
	long nr = -1;
	for (size_t i = 0; i < ARRAY_SIZE(map) && nr < 0; i++)
		if (strstr(frame0, map[i].frame))
			nr = map[i].nr;
	if (nr < 0)
		return false;
	sc->nr = nr;
	syscall_wait_decode(sc, w);
	if (w->timeout_kind == SYSCALL_TIMEOUT_POINTER)
		(void) syscall_wait_read_timeout(pid, w);
	return true;
}

int
open_wait_path(pid_t tid, const struct proc_syscall *sc, char **ret)
{
	int arg;
	if (sc->kind != PROC_SYSCALL_IN || !syscall_opens_path(sc->nr, &arg))
		return -ENOENT;
	char *path = NULL;
	int r = wait_path_read(tid, sc->args[arg], &path);
	if (r < 0)
		return r;
	if (path[0] != '/') {
		char link[64], dir[PATH_MAX];
		int dirfd = arg == 1 ? (int) (int32_t) sc->args[0] : AT_FDCWD;
		if (dirfd == AT_FDCWD)
			(void) snprintf(link, sizeof(link), "/proc/%d/cwd", (int) tid);
		else
			(void) snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int) tid, dirfd);
		ssize_t n = readlink(link, dir, sizeof(dir) - 1);
		if (n > 0) {
			dir[n] = '\0';
			char *abs = NULL;
			if (asprintf(&abs, "%s/%s", dir, path) >= 0) {
				free(path);
				path = abs;
			}
		}
	}
	*ret = path;
	return 0;
}

bool
wait_breaks_on_interrupt(const char *wchan, const struct proc_syscall *sc)
{
	if (sc->kind != PROC_SYSCALL_IN || !wchan)
		return false;
	long nr = sc->nr;
	if (nr != SYS_write && nr != SYS_writev && nr != SYS_pwrite64 && nr != SYS_pwritev && nr != SYS_sendto &&
	    nr != SYS_sendmsg && nr != SYS_sendmmsg && nr != SYS_splice)
		return false;
	return strstr(wchan, "pipe_w") || strstr(wchan, "pipe_wait") || strstr(wchan, "unix_stream") ||
	       strstr(wchan, "sock_alloc_send") || strstr(wchan, "sk_stream_wait") || strstr(wchan, "wait_woken");
}
