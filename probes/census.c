#include "probes/census.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/signames.h"

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *
census_kind_of_target(const char *t)
{
	if (starts_with(t, "pipe:["))
		return "pipe";
	if (starts_with(t, "socket:["))
		return "socket";
	/* pidfs (6.9+) shows "pidfd:[…]"; before, "anon_inode:[pidfd]" */
	if (starts_with(t, "pidfd:") || strcmp(t, "anon_inode:[pidfd]") == 0)
		return "pidfd";
	if (strcmp(t, "anon_inode:[eventpoll]") == 0)
		return "epoll";
	if (strcmp(t, "anon_inode:[eventfd]") == 0)
		return "eventfd";
	if (strcmp(t, "anon_inode:[signalfd]") == 0)
		return "signalfd";
	if (strcmp(t, "anon_inode:[timerfd]") == 0)
		return "timerfd";
	if (strcmp(t, "anon_inode:inotify") == 0)
		return "inotify";
	if (strcmp(t, "/dev/null") == 0)
		return "null";
	if (starts_with(t, "/dev/pts/") || starts_with(t, "/dev/tty") || strcmp(t, "/dev/console") == 0)
		return "tty";
	if (t[0] == '/')
		return "file";
	return "other";
}

static void
put_socket_detail(struct asbuf *b, int fd)
{
	int domain = -1, type = -1, listening = 0;
	socklen_t len = sizeof(int);
	(void) getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
	len = sizeof(int);
	(void) getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
	len = sizeof(int);
	(void) getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
	const char *fam = domain == AF_UNIX ? "unix" : domain == AF_INET ? "inet" : domain == AF_INET6 ? "inet6" :
			  domain == AF_NETLINK ? "netlink" : "other";
	const char *ty = type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : type == SOCK_SEQPACKET ?
			 "seqpacket" : "other";
	const char *state;
	if (listening)
		state = "listening";
	else {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		state = getpeername(fd, (struct sockaddr *) &peer, &plen) == 0 ? "connected" : "unconnected";
	}
	asbuf_puts(b, ",\"detail\":\"");
	asbuf_puts(b, fam);
	asbuf_putc(b, ' ');
	asbuf_puts(b, ty);
	asbuf_putc(b, ' ');
	asbuf_puts(b, state);
	asbuf_putc(b, '"');
}

static void
put_one_fd(struct asbuf *b, int fd)
{
	char path[64], target[512];
	struct asbuf p = ASBUF_INIT(path);
	asbuf_puts(&p, "/proc/self/fd/");
	asbuf_u64(&p, (uint64_t) fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		n = 0;
	target[n] = '\0';
	const char *kind = census_kind_of_target(target);
	bool is_file = strcmp(kind, "file") == 0;
	/* fcntl and lseek, not /proc/self/fdinfo/N: the same access mode and
	 * offset without opening and formatting a /proc file per fd, which was
	 * the larger part of the census (docs/performance.md). */
	int fl = fcntl(fd, F_GETFL);
	unsigned long flags = fl < 0 ? 0 : (unsigned long) fl;
	off_t off = is_file ? lseek(fd, 0, SEEK_CUR) : 0;
	uint64_t pos = off < 0 ? 0 : (uint64_t) off;
	int fdflags = fcntl(fd, F_GETFD);

	asbuf_puts(b, "{\"fd\":");
	asbuf_u64(b, (uint64_t) fd);
	asbuf_puts(b, ",\"kind\":\"");
	asbuf_puts(b, kind);
	asbuf_puts(b, "\",\"target\":");
	asbuf_json_str(b, target);
	const char *mode = (flags & O_ACCMODE) == O_RDONLY ? "r" : (flags & O_ACCMODE) == O_WRONLY ? "w" : "rw";
	asbuf_puts(b, ",\"mode\":\"");
	asbuf_puts(b, mode);
	asbuf_puts(b, "\",\"cloexec\":");
	asbuf_puts(b, fdflags >= 0 && (fdflags & FD_CLOEXEC) ? "true" : "false");
	if (is_file) {
		asbuf_puts(b, ",\"pos\":");
		asbuf_u64(b, pos);
		if (n > 10 && strcmp(target + n - 10, " (deleted)") == 0)
			asbuf_puts(b, ",\"deleted\":true");
	}
	if (strcmp(kind, "socket") == 0)
		put_socket_detail(b, fd);
	asbuf_putc(b, '}');
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Iterate /proc/self/<dir> with raw getdents64: opendir() mallocs. */
typedef void (*dirent_fn)(const char *name, void *userdata);

static int
for_each_entry(const char *dir, int *ret_dirfd, dirent_fn fn, void *userdata)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (ret_dirfd)
		*ret_dirfd = dfd;
	char buf[4096] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (n < 0) {
			int e = -errno;
			(void) close(dfd);
			return e;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *) (buf + off);
			if (d->d_name[0] != '.')
				fn(d->d_name, userdata);
			off += d->d_reclen;
		}
	}
	(void) close(dfd);
	return 0;
}

struct fd_walk {
	struct asbuf *b;
	const int *skip;
	size_t n_skip;
	int *dirfd;
	int count;
};

static void
fd_entry(const char *name, void *userdata)
{
	struct fd_walk *w = userdata;
	uint64_t fd;
	if (!as_parse_u64(name, &fd))
		return;
	if ((int) fd == *w->dirfd)
		return;
	for (size_t i = 0; i < w->n_skip; i++)
		if (w->skip[i] == (int) fd)
			return;
	if (w->count++)
		asbuf_putc(w->b, ',');
	put_one_fd(w->b, (int) fd);
}

int
census_fds(struct event *e, const char *key, const int *skip, size_t n_skip)
{
	int dirfd = -1;
	struct fd_walk w = { .b = &e->b, .skip = skip, .n_skip = n_skip, .dirfd = &dirfd, .count = 0 };
	event_key(e, key);
	asbuf_putc(&e->b, '[');
	int r = for_each_entry("/proc/self/fd", &dirfd, fd_entry, &w);
	asbuf_putc(&e->b, ']');
	return r < 0 ? r : w.count;
}

void
census_stdio(struct event *e, const char *key)
{
	event_key(e, key);
	asbuf_putc(&e->b, '{');
	for (int fd = 0; fd <= 2; fd++) {
		char path[32], target[512];
		struct asbuf p = ASBUF_INIT(path);
		asbuf_puts(&p, "/proc/self/fd/");
		asbuf_u64(&p, (uint64_t) fd);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (fd)
			asbuf_putc(&e->b, ',');
		asbuf_putc(&e->b, '"');
		asbuf_u64(&e->b, (uint64_t) fd);
		asbuf_puts(&e->b, "\":\"");
		if (n < 0) {
			asbuf_puts(&e->b, "closed\"");
			continue;
		}
		target[n] = '\0';
		const char *k = census_kind_of_target(target);
		asbuf_puts(&e->b, k);
		if (strcmp(k, "file") == 0 && n > 10 && strcmp(target + n - 10, " (deleted)") == 0)
			asbuf_puts(&e->b, " (deleted)");
		asbuf_putc(&e->b, '"');
	}
	asbuf_putc(&e->b, '}');
}

struct thread_walk {
	struct asbuf *b;
	int count;
};

static void
thread_entry(const char *name, void *userdata)
{
	struct thread_walk *w = userdata;
	uint64_t tid;
	if (!as_parse_u64(name, &tid))
		return;
	if (!w->b) {
		w->count++;
		return;
	}
	char path[64], stat[512], comm[64] = "";
	char state = '?';
	struct asbuf p = ASBUF_INIT(path);
	asbuf_puts(&p, "/proc/self/task/");
	asbuf_u64(&p, tid);
	asbuf_puts(&p, "/stat");
	if (read_file_into(path, stat, sizeof(stat)) > 0) {
		/* "tid (comm) S …": comm may hold spaces and parens, so use the last ')'. */
		char *open = strchr(stat, '(');
		char *close = strrchr(stat, ')');
		if (open && close && close > open) {
			size_t len = (size_t) (close - open - 1);
			if (len >= sizeof(comm))
				len = sizeof(comm) - 1;
			memcpy(comm, open + 1, len);
			comm[len] = '\0';
			if (close[1] == ' ')
				state = close[2];
		}
	}
	if (w->count++)
		asbuf_putc(w->b, ',');
	asbuf_puts(w->b, "{\"tid\":");
	asbuf_u64(w->b, tid);
	asbuf_puts(w->b, ",\"name\":");
	asbuf_json_str(w->b, comm);
	asbuf_puts(w->b, ",\"state\":\"");
	asbuf_putc(w->b, state);
	asbuf_puts(w->b, "\"}");
}

int
census_threads(struct event *e, const char *key)
{
	struct thread_walk w = { .b = &e->b, .count = 0 };
	event_key(e, key);
	asbuf_putc(&e->b, '[');
	int r = for_each_entry("/proc/self/task", NULL, thread_entry, &w);
	asbuf_putc(&e->b, ']');
	return r < 0 ? r : w.count;
}

int
census_thread_count(void)
{
	struct thread_walk w = { .b = NULL, .count = 0 };
	int r = for_each_entry("/proc/self/task", NULL, thread_entry, &w);
	return r < 0 ? r : w.count;
}

void
census_signal_set(struct event *e, const char *key, const sigset_t *set)
{
	event_key(e, key);
	asbuf_putc(&e->b, '"');
	int n = 0;
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigismember(set, sig) != 1)
			continue;
		if (n++)
			asbuf_putc(&e->b, ',');
		/* signal_name() formats RT signals with snprintf: not async-signal-safe. */
		if (sig < 32)
			asbuf_puts(&e->b, signal_name(sig));
		else {
			asbuf_puts(&e->b, "SIG");
			asbuf_u64(&e->b, (uint64_t) sig);
		}
	}
	asbuf_putc(&e->b, '"');
}

void
census_signals(struct event *e)
{
	sigset_t blocked, ignored, caught;
	(void) sigemptyset(&ignored);
	(void) sigemptyset(&caught);
	(void) pthread_sigmask(SIG_BLOCK, NULL, &blocked);
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
			continue;
		if (sa.sa_handler == SIG_IGN)
			(void) sigaddset(&ignored, sig);
		else if (sa.sa_handler != SIG_DFL)
			(void) sigaddset(&caught, sig);
	}
	census_signal_set(e, "sig_blocked", &blocked);
	census_signal_set(e, "sig_ignored", &ignored);
	census_signal_set(e, "sig_caught", &caught);
}
