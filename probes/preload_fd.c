/* The fd wrappers of libforkscope-probe.so: closes of fds that crossed a
 * fork, the calls that create fds (to see a closed number come back), and
 * writes on reused numbers (probes/fdtrack.h, docs/events.md "fd reuse").
 *
 * Every wrapper keeps errno and the result of the real call. Calls made by
 * the probe itself (its event log, its census) pass straight through: the
 * caller's return address is inside the probe's own mapping. The symbols are
 * given with asm labels because _FILE_OFFSET_BITS=64 renames open, openat,
 * creat and fcntl in the headers; both names are exported. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "probes/fdtrack.h"
#include "probes/preload_fd.h"

#define PUBLIC __attribute__((visibility("default")))
#define CALLER __builtin_return_address(0)

typedef int (*close_fn)(int);
typedef int (*close_range_fn)(unsigned, unsigned, int);
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*creat_fn)(const char *, mode_t);
typedef int (*fcntl_fn)(int, int, ...);
typedef int (*socket_fn)(int, int, int);
typedef int (*socketpair_fn)(int, int, int, int[2]);
typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);
typedef int (*pipe_fn)(int[2]);
typedef int (*pipe2_fn)(int[2], int);
typedef int (*dup_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
typedef int (*eventfd_fn)(unsigned int, int);
typedef int (*memfd_fn)(const char *, unsigned int);
typedef int (*epoll_create_fn)(int);
typedef int (*signalfd_fn)(int, const sigset_t *, int);
typedef int (*timerfd_fn)(int, int);
typedef int (*inotify_init_fn)(void);
typedef int (*inotify_init1_fn)(int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);

static struct {
	close_fn close;
	close_range_fn close_range;
	open_fn open, open64;
	openat_fn openat, openat64;
	creat_fn creat, creat64;
	fcntl_fn fcntl, fcntl64;
	socket_fn socket;
	socketpair_fn socketpair;
	accept_fn accept;
	accept4_fn accept4;
	pipe_fn pipe;
	pipe2_fn pipe2;
	dup_fn dup;
	dup2_fn dup2;
	dup3_fn dup3;
	eventfd_fn eventfd;
	memfd_fn memfd_create;
	epoll_create_fn epoll_create, epoll_create1;
	signalfd_fn signalfd;
	timerfd_fn timerfd_create;
	inotify_init_fn inotify_init;
	inotify_init1_fn inotify_init1;
	write_fn write;
	send_fn send;
	sendto_fn sendto;
	sendmsg_fn sendmsg;
	writev_fn writev;
} rf;

#define RF(name) (rf.name ? rf.name : (rf.name = (__typeof__(rf.name)) dlsym(RTLD_NEXT, #name)))

void
preload_fd_init(void)
{
	(void) RF(close);
	(void) RF(close_range);
	(void) RF(open);
	(void) RF(open64);
	(void) RF(openat);
	(void) RF(openat64);
	(void) RF(creat);
	(void) RF(creat64);
	(void) RF(fcntl);
	(void) RF(fcntl64);
	(void) RF(socket);
	(void) RF(socketpair);
	(void) RF(accept);
	(void) RF(accept4);
	(void) RF(pipe);
	(void) RF(pipe2);
	(void) RF(dup);
	(void) RF(dup2);
	(void) RF(dup3);
	(void) RF(eventfd);
	(void) RF(memfd_create);
	(void) RF(epoll_create);
	(void) RF(epoll_create1);
	(void) RF(signalfd);
	(void) RF(timerfd_create);
	(void) RF(inotify_init);
	(void) RF(inotify_init1);
	(void) RF(write);
	(void) RF(send);
	(void) RF(sendto);
	(void) RF(sendmsg);
	(void) RF(writev);
}

static pid_t
tid_raw(void)
{
	return (pid_t) syscall(SYS_gettid);
}

/* After a call that returned a new fd: is it a closed inherited number? */
static void
created(int fd, const char *via, const void *caller)
{
	if (fd >= 0 && fdt_bit(fdt_pending, fd) && !fdtrack_from_probe(caller) && !preload_fd_paused())
		fdtrack_reused(fd, via, tid_raw());
}

#define NOSYS_IF_NULL(fn)               \
	do {                            \
		if (!(fn)) {            \
			errno = ENOSYS; \
			return -1;      \
		}                       \
	} while (0)

/* ---- closes ---- */

static bool
close_watched(int fd)
{
	return fdt_bit(fdt_inherited, fd) || fdt_bit(fdt_reused, fd);
}

PUBLIC int
close(int fd)
{
	close_fn fn = RF(close);
	NOSYS_IF_NULL(fn);
	if (!close_watched(fd) || fdtrack_from_probe(CALLER) || preload_fd_paused())
		return fn(fd);
	struct fdt_closing c;
	fdtrack_close_prepare(fd, &c);
	int r = fn(fd);
	int saved = errno;
	/* Linux releases the number even when close reports EINTR/EIO. */
	if (r == 0 || saved != EBADF)
		fdtrack_close_done(&c, "close");
	errno = saved;
	return r;
}

PUBLIC int
close_range(unsigned int first, unsigned int last, int flags)
{
	close_range_fn fn = RF(close_range);
	NOSYS_IF_NULL(fn);
	if ((flags & CLOSE_RANGE_CLOEXEC) || fdtrack_from_probe(CALLER) || preload_fd_paused())
		return fn(first, last, flags);
	/* Describe the watched fds of the range before they go. */
	struct fdt_closing *list = NULL;
	size_t n = 0, cap = 0;
	unsigned hi = last < FDT_MAX - 1 ? last : FDT_MAX - 1;
	for (unsigned fd = first; fd <= hi; fd++)
		if (close_watched((int) fd))
			cap++;
	if (cap) {
		void *p = mmap(NULL, cap * sizeof(*list), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		list = p == MAP_FAILED ? NULL : p;
		for (unsigned fd = first; list && fd <= hi && n < cap; fd++)
			if (close_watched((int) fd))
				fdtrack_close_prepare((int) fd, &list[n++]);
	}
	int r = fn(first, last, flags);
	int saved = errno;
	for (size_t i = 0; r == 0 && i < n; i++)
		fdtrack_close_done(&list[i], "close_range");
	if (list)
		(void) munmap(list, cap * sizeof(*list));
	errno = saved;
	return r;
}

/* ---- calls that create fds ---- */

#define RETURN_CREATED(expr, via)             \
	do {                                  \
		int r_ = (expr);              \
		int saved_ = errno;           \
		created(r_, via, CALLER);     \
		errno = saved_;               \
		return r_;                    \
	} while (0)

static bool
open_needs_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

PUBLIC int probe_open(const char *path, int flags, ...) __asm__("open");
PUBLIC int probe_open64(const char *path, int flags, ...) __asm__("open64");
PUBLIC int probe_openat(int dirfd, const char *path, int flags, ...) __asm__("openat");
PUBLIC int probe_openat64(int dirfd, const char *path, int flags, ...) __asm__("openat64");
PUBLIC int probe_creat(const char *path, mode_t mode) __asm__("creat");
PUBLIC int probe_creat64(const char *path, mode_t mode) __asm__("creat64");
PUBLIC int probe_fcntl(int fd, int cmd, ...) __asm__("fcntl");
PUBLIC int probe_fcntl64(int fd, int cmd, ...) __asm__("fcntl64");

#define OPEN_BODY(fnname, ...)                                  \
	open_fn fn = RF(fnname);                               \
	NOSYS_IF_NULL(fn);                                     \
	mode_t mode = 0;                                       \
	if (open_needs_mode(flags)) {                          \
		va_list ap;                                    \
		va_start(ap, flags);                           \
		mode = (mode_t) va_arg(ap, unsigned int);      \
		va_end(ap);                                    \
	}                                                      \
	RETURN_CREATED(fn(__VA_ARGS__), #fnname)

PUBLIC int
probe_open(const char *path, int flags, ...)
{
	OPEN_BODY(open, path, flags, mode);
}

PUBLIC int
probe_open64(const char *path, int flags, ...)
{
	OPEN_BODY(open64, path, flags, mode);
}

#define OPENAT_BODY(fnname)                                      \
	openat_fn fn = RF(fnname);                              \
	NOSYS_IF_NULL(fn);                                      \
	mode_t mode = 0;                                        \
	if (open_needs_mode(flags)) {                           \
		va_list ap;                                     \
		va_start(ap, flags);                            \
		mode = (mode_t) va_arg(ap, unsigned int);       \
		va_end(ap);                                     \
	}                                                       \
	RETURN_CREATED(fn(dirfd, path, flags, mode), #fnname)

PUBLIC int
probe_openat(int dirfd, const char *path, int flags, ...)
{
	OPENAT_BODY(openat);
}

PUBLIC int
probe_openat64(int dirfd, const char *path, int flags, ...)
{
	OPENAT_BODY(openat64);
}

PUBLIC int
probe_creat(const char *path, mode_t mode)
{
	creat_fn fn = RF(creat);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(path, mode), "creat");
}

PUBLIC int
probe_creat64(const char *path, mode_t mode)
{
	creat_fn fn = RF(creat64);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(path, mode), "creat64");
}

/* Every fcntl third argument is an int or a pointer: passed on as a long
 * (same register on the ABIs glibc supports). Only F_DUPFD* create fds. */
#define FCNTL_BODY(fnname)                                                        \
	fcntl_fn fn = RF(fnname);                                                \
	NOSYS_IF_NULL(fn);                                                       \
	va_list ap;                                                              \
	va_start(ap, cmd);                                                       \
	long arg = va_arg(ap, long);                                             \
	va_end(ap);                                                              \
	if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)                            \
		return fn(fd, cmd, arg);                                         \
	RETURN_CREATED(fn(fd, cmd, arg), cmd == F_DUPFD ? "fcntl(F_DUPFD)" : "fcntl(F_DUPFD_CLOEXEC)")

PUBLIC int
probe_fcntl(int fd, int cmd, ...)
{
	FCNTL_BODY(fcntl);
}

PUBLIC int
probe_fcntl64(int fd, int cmd, ...)
{
	FCNTL_BODY(fcntl64);
}

PUBLIC int
socket(int domain, int type, int protocol)
{
	socket_fn fn = RF(socket);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(domain, type, protocol), "socket");
}

PUBLIC int
socketpair(int domain, int type, int protocol, int sv[2])
{
	socketpair_fn fn = RF(socketpair);
	NOSYS_IF_NULL(fn);
	int r = fn(domain, type, protocol, sv);
	int saved = errno;
	if (r == 0) {
		created(sv[0], "socketpair", CALLER);
		created(sv[1], "socketpair", CALLER);
	}
	errno = saved;
	return r;
}

PUBLIC int
accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	accept_fn fn = RF(accept);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(fd, addr, len), "accept");
}

PUBLIC int
accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	accept4_fn fn = RF(accept4);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(fd, addr, len, flags), "accept4");
}

PUBLIC int
pipe(int fds[2])
{
	pipe_fn fn = RF(pipe);
	NOSYS_IF_NULL(fn);
	int r = fn(fds);
	int saved = errno;
	if (r == 0) {
		created(fds[0], "pipe", CALLER);
		created(fds[1], "pipe", CALLER);
	}
	errno = saved;
	return r;
}

PUBLIC int
pipe2(int fds[2], int flags)
{
	pipe2_fn fn = RF(pipe2);
	NOSYS_IF_NULL(fn);
	int r = fn(fds, flags);
	int saved = errno;
	if (r == 0) {
		created(fds[0], "pipe2", CALLER);
		created(fds[1], "pipe2", CALLER);
	}
	errno = saved;
	return r;
}

PUBLIC int
dup(int fd)
{
	dup_fn fn = RF(dup);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(fd), "dup");
}

/* dup2/dup3 onto a watched number close what it held (recorded as a close
 * by via) and reuse the number at once. */
static int
traced_dup_onto(int oldfd, int newfd, int flags, bool three, const void *caller)
{
	const char *via = three ? "dup3" : "dup2";
	bool watched = oldfd != newfd && close_watched(newfd) && !fdtrack_from_probe(caller) && !preload_fd_paused();
	struct fdt_closing c;
	if (watched)
		fdtrack_close_prepare(newfd, &c);
	dup2_fn d2 = RF(dup2);
	dup3_fn d3 = RF(dup3);
	int r = three ? d3(oldfd, newfd, flags) : d2(oldfd, newfd);
	int saved = errno;
	if (r >= 0 && watched)
		fdtrack_close_done(&c, via);
	if (r >= 0)
		created(r, via, caller);
	errno = saved;
	return r;
}

PUBLIC int
dup2(int oldfd, int newfd)
{
	NOSYS_IF_NULL(RF(dup2));
	return traced_dup_onto(oldfd, newfd, 0, false, CALLER);
}

PUBLIC int
dup3(int oldfd, int newfd, int flags)
{
	NOSYS_IF_NULL(RF(dup3));
	return traced_dup_onto(oldfd, newfd, flags, true, CALLER);
}

PUBLIC int
eventfd(unsigned int initval, int flags)
{
	eventfd_fn fn = RF(eventfd);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(initval, flags), "eventfd");
}

PUBLIC int
memfd_create(const char *name, unsigned int flags)
{
	memfd_fn fn = RF(memfd_create);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(name, flags), "memfd_create");
}

PUBLIC int
epoll_create(int size)
{
	epoll_create_fn fn = RF(epoll_create);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(size), "epoll_create");
}

PUBLIC int
epoll_create1(int flags)
{
	epoll_create_fn fn = RF(epoll_create1);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(flags), "epoll_create1");
}

PUBLIC int
signalfd(int fd, const sigset_t *mask, int flags)
{
	signalfd_fn fn = RF(signalfd);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(fd, mask, flags), "signalfd");
}

PUBLIC int
timerfd_create(int clockid, int flags)
{
	timerfd_fn fn = RF(timerfd_create);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(clockid, flags), "timerfd_create");
}

PUBLIC int
inotify_init(void)
{
	inotify_init_fn fn = RF(inotify_init);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(), "inotify_init");
}

PUBLIC int
inotify_init1(int flags)
{
	inotify_init1_fn fn = RF(inotify_init1);
	NOSYS_IF_NULL(fn);
	RETURN_CREATED(fn(flags), "inotify_init1");
}

/* pidfd_open is wrapped in preload.c (its own event); it reports here. */
void
preload_fd_created(int fd, const char *via, const void *caller)
{
	created(fd, via, caller);
}

/* ---- writes: sampled on reused numbers only ---- */

PUBLIC ssize_t
write(int fd, const void *buf, size_t len)
{
	write_fn fn = RF(write);
	NOSYS_IF_NULL(fn);
	if (!fdt_bit(fdt_reused, fd))
		return fn(fd, buf, len);
	ssize_t r = fn(fd, buf, len);
	int saved = errno;
	if (!fdtrack_from_probe(CALLER) && !preload_fd_paused())
		fdtrack_write(fd, "write", CALLER, buf, len, r);
	errno = saved;
	return r;
}

PUBLIC ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
	send_fn fn = RF(send);
	NOSYS_IF_NULL(fn);
	if (!fdt_bit(fdt_reused, fd))
		return fn(fd, buf, len, flags);
	ssize_t r = fn(fd, buf, len, flags);
	int saved = errno;
	if (!preload_fd_paused())
		fdtrack_write(fd, "send", CALLER, buf, len, r);
	errno = saved;
	return r;
}

PUBLIC ssize_t
sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t alen)
{
	sendto_fn fn = RF(sendto);
	NOSYS_IF_NULL(fn);
	if (!fdt_bit(fdt_reused, fd))
		return fn(fd, buf, len, flags, addr, alen);
	ssize_t r = fn(fd, buf, len, flags, addr, alen);
	int saved = errno;
	if (!preload_fd_paused())
		fdtrack_write(fd, "sendto", CALLER, buf, len, r);
	errno = saved;
	return r;
}

PUBLIC ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	sendmsg_fn fn = RF(sendmsg);
	NOSYS_IF_NULL(fn);
	if (!fdt_bit(fdt_reused, fd))
		return fn(fd, msg, flags);
	ssize_t r = fn(fd, msg, flags);
	int saved = errno;
	if (!preload_fd_paused())
		fdtrack_writev(fd, "sendmsg", CALLER, msg ? msg->msg_iov : NULL, msg ? (int) msg->msg_iovlen : 0, r);
	errno = saved;
	return r;
}

PUBLIC ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	writev_fn fn = RF(writev);
	NOSYS_IF_NULL(fn);
	if (!fdt_bit(fdt_reused, fd))
		return fn(fd, iov, iovcnt);
	ssize_t r = fn(fd, iov, iovcnt);
	int saved = errno;
	if (!preload_fd_paused())
		fdtrack_writev(fd, "writev", CALLER, iov, iovcnt, r);
	errno = saved;
	return r;
}
