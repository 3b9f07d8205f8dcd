#include "probes/census.h"

#include <dirent.h>
#include <sched.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <poll.h>
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

/* ---- what an fd is, without /proc where fstat can tell ----
 *
 * Every /proc/self lookup leaves dentries under /proc/<pid> that the kernel
 * must find and drop when the process is reaped (release_task ->
 * proc_flush_pid -> d_invalidate); with a census in every forked child that
 * was 42 % of the CPU of a probed tree (docs/performance.md). So the target
 * string is rebuilt from fstat where it is fully determined by the inode
 * (pipes, sockets, /dev/null, pidfds, epoll, timerfd), remembered by
 * dev:ino:ctime for files and devices (a child inherits what its ancestors
 * resolved), and read from /proc/self/fd/N only when neither can say. */

#define ANON_INODE_FS_MAGIC 0x09041934
#define PIDFS_MAGIC 0x50494446
#define PIPEFS_MAGIC 0x50495045

struct path_memo {
	dev_t dev;
	ino_t ino;
	struct timespec ctim;
	unsigned short len;
	char target[254];
};

/* Static, so a fork child starts with what its ancestors resolved. ctime
 * changes on rename, link, unlink, chmod and write: any of them is a miss,
 * so a remembered path is never older than the inode's last change. */
static struct path_memo memo[16];
static unsigned memo_next;
/* Trylock holding the owner's pid: a signal handler or another thread of
 * the same process skips the memo; a lock that crossed a fork (taken by a
 * thread of the parent) is stale in the child and taken over. */
static int memo_owner;

static bool
memo_lock(void)
{
	int self = getpid(), cur = 0;
	if (__atomic_compare_exchange_n(&memo_owner, &cur, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return true;
	return cur != self &&
	       __atomic_compare_exchange_n(&memo_owner, &cur, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void
memo_unlock(void)
{
	__atomic_store_n(&memo_owner, 0, __ATOMIC_RELEASE);
}

static bool
same_inode(const struct path_memo *m, const struct stat *st)
{
	return m->len && m->dev == st->st_dev && m->ino == st->st_ino && m->ctim.tv_sec == st->st_ctim.tv_sec &&
	       m->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

static ssize_t
memo_get(const struct stat *st, char *target, size_t size)
{
	ssize_t n = -1;
	if (!memo_lock())
		return -1;
	for (size_t i = 0; i < sizeof(memo) / sizeof(memo[0]); i++)
		if (same_inode(&memo[i], st) && memo[i].len < size) {
			memcpy(target, memo[i].target, memo[i].len);
			n = memo[i].len;
			break;
		}
	memo_unlock();
	return n;
}

static void
memo_put(const struct stat *st, const char *target, size_t len)
{
	if (len == 0 || len >= sizeof(memo[0].target) || !memo_lock())
		return;
	struct path_memo *m = &memo[memo_next++ % (sizeof(memo) / sizeof(memo[0]))];
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->ctim = st->st_ctim;
	memcpy(m->target, target, len);
	m->len = (unsigned short) len;
	memo_unlock();
}

static ssize_t
readlink_fd(int fd, char *target, size_t size)
{
	char path[64];
	struct asbuf p = ASBUF_INIT(path);
	asbuf_puts(&p, "/proc/self/fd/");
	asbuf_u64(&p, (uint64_t) fd);
	return readlink(path, target, size - 1);
}

static size_t
put_bracketed(char *target, size_t size, const char *prefix, uint64_t ino)
{
	struct asbuf t = { .data = target, .len = 0, .cap = size, .overflow = false };
	asbuf_puts(&t, prefix);
	asbuf_u64(&t, ino);
	asbuf_putc(&t, ']');
	return t.len < size ? t.len : size - 1;
}

/* An anon inode: the read-only probes that tell its class, or -1. probe_fd
 * is an eventfd of our own (made on first need), which no epoll can hold:
 * EPOLL_CTL_DEL of it gives ENOENT on an epoll and EINVAL on anything else. */
static const char *
anon_target(int fd, int *probe_fd)
{
	struct itimerspec its;
	if (syscall(SYS_timerfd_gettime, fd, &its) == 0)
		return "anon_inode:[timerfd]";
	if (*probe_fd < 0)
		*probe_fd = (int) syscall(SYS_eventfd2, 0, EFD_CLOEXEC);
	if (*probe_fd >= 0 && epoll_ctl(fd, EPOLL_CTL_DEL, *probe_fd, NULL) < 0 && errno == ENOENT)
		return "anon_inode:[eventpoll]";
	return NULL;
}

/* readlink(/proc/self/fd/N) as the kernel would print it, into target
 * (NUL-terminated); returns its length, 0 if the fd is gone. */
static size_t
fd_target(int fd, const struct stat *st, char *target, size_t size, int *probe_fd)
{
	ssize_t n;
	const char *fixed = NULL;
	struct statfs sf = { .f_type = 0 };
	switch (st->st_mode & S_IFMT) {
	case S_IFSOCK:
		return put_bracketed(target, size, "socket:[", (uint64_t) st->st_ino);
	case S_IFIFO:
		if (fstatfs(fd, &sf) == 0 && sf.f_type == PIPEFS_MAGIC)
			return put_bracketed(target, size, "pipe:[", (uint64_t) st->st_ino);
		break; /* a named FIFO: its path */
	case S_IFCHR:
		if (major(st->st_rdev) == 1 && minor(st->st_rdev) == 3)
			fixed = "/dev/null";
		break;
	case S_IFREG:
	case S_IFDIR:
	case S_IFBLK:
	case S_IFLNK:
		break;
	default: /* no type: an anon inode or a pidfd */
		if (fstatfs(fd, &sf) == 0 && sf.f_type == PIDFS_MAGIC)
			fixed = "anon_inode:[pidfd]"; /* what pidfs (6.9+) prints */
		else if (sf.f_type == ANON_INODE_FS_MAGIC)
			fixed = anon_target(fd, probe_fd);
		if (!fixed) {
			n = readlink_fd(fd, target, size);
			target[n < 0 ? 0 : n] = '\0';
			return n < 0 ? 0 : (size_t) n;
		}
		break;
	}
	if (fixed) {
		size_t len = strlen(fixed);
		memcpy(target, fixed, len + 1);
		return len;
	}
	n = memo_get(st, target, size);
	if (n < 0) {
		n = readlink_fd(fd, target, size);
		if (n > 0)
			memo_put(st, target, (size_t) n);
	}
	target[n < 0 ? 0 : n] = '\0';
	return n < 0 ? 0 : (size_t) n;
}

static void
put_one_fd(struct asbuf *b, int fd, int *probe_fd)
{
	char target[512];
	struct stat st;
	if (fstat(fd, &st) < 0)
		return;
	size_t n = fd_target(fd, &st, target, sizeof(target), probe_fd);
	const char *kind = census_kind_of_target(target);
	bool is_file = strcmp(kind, "file") == 0;
	/* fcntl and lseek, not /proc/self/fdinfo/N: the same access mode and
	 * offset without opening and formatting a /proc file per fd. */
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

/* "Key:\tN" of a /proc/self/status text, or -1. */
static int
status_field(const char *text, const char *key)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, key, klen) != 0 || line[klen] != ':')
			continue;
		const char *v = line + klen + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		uint64_t n;
		return as_parse_u64(v, &n) && n <= INT32_MAX ? (int) n : -1;
	}
	return -1;
}

int
census_self_status(int *ret_threads, int *ret_fd_table_size)
{
	char text[2048];
	ssize_t n = read_file_into("/proc/self/status", text, sizeof(text));
	if (n < 0)
		return (int) n;
	if (ret_threads)
		*ret_threads = status_field(text, "Threads");
	if (ret_fd_table_size)
		*ret_fd_table_size = status_field(text, "FDSize");
	return 0;
}

int
census_fd_bound(void)
{
	struct rlimit rl;
	int size = -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = CENSUS_FD_SCAN;
	/* The table starts with 64 slots and only grows; an fd at or above
	 * the soft limit exists only if the limit was lowered after it was
	 * opened, so below CENSUS_FD_SCAN the limit bounds the scan and no
	 * /proc read is needed. Above, FDSize (the table's size) does. */
	if (rl.rlim_cur <= CENSUS_FD_SCAN)
		return rl.rlim_cur < 64 ? 64 : (int) rl.rlim_cur;
	if (census_self_status(NULL, &size) == 0 && size > 0)
		return size;
	return rl.rlim_cur > CENSUS_FD_SCAN_MAX ? CENSUS_FD_SCAN_MAX : (int) rl.rlim_cur;
}

int
census_fds_below(struct event *e, const char *key, const int *skip, size_t n_skip, int bound)
{
	struct rlimit rl;
	size_t chunk = 256;
	/* poll() takes at most RLIMIT_NOFILE entries a call */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < chunk)
		chunk = rl.rlim_cur > 0 ? rl.rlim_cur : 1;
	struct pollfd pfd[256];
	int probe_fd = -1, count = 0;
	event_key(e, key);
	asbuf_putc(&e->b, '[');
	/* One poll() marks every closed number of a chunk POLLNVAL, and only
	 * those are asked again with fcntl. events = 0: a driver that acts on
	 * a POLLIN request (v4l2 read mode) sees none. */
	for (int base = 0; base < bound; base += (int) chunk) {
		size_t n = (size_t) (bound - base) < chunk ? (size_t) (bound - base) : chunk;
		for (size_t i = 0; i < n; i++)
			pfd[i] = (struct pollfd) { .fd = base + (int) i, .events = 0 };
		if (poll(pfd, n, 0) < 0) {
			int r = -errno;
			asbuf_putc(&e->b, ']');
			if (probe_fd >= 0)
				(void) close(probe_fd);
			return r;
		}
		for (size_t i = 0; i < n; i++) {
			int fd = pfd[i].fd;
			/* poll() does not see O_PATH fds (POLLNVAL as if closed);
			 * fcntl does. */
			bool closed = (pfd[i].revents & POLLNVAL) && fcntl(fd, F_GETFD) < 0;
			bool skipped = closed || fd == probe_fd;
			for (size_t k = 0; k < n_skip && !skipped; k++)
				skipped = skip[k] == fd;
			if (skipped)
				continue;
			size_t before = e->b.len;
			if (count)
				asbuf_putc(&e->b, ',');
			size_t mark = e->b.len;
			put_one_fd(&e->b, fd, &probe_fd);
			if (e->b.len == mark) { /* closed meanwhile */
				e->b.len = before;
				e->b.data[before] = '\0';
			}
			else
				count++;
		}
	}
	asbuf_putc(&e->b, ']');
	if (probe_fd >= 0)
		(void) close(probe_fd);
	return count;
}

int
census_fds(struct event *e, const char *key, const int *skip, size_t n_skip)
{
	return census_fds_below(e, key, skip, n_skip, census_fd_bound());
}

void
census_stdio(struct event *e, const char *key)
{
	int probe_fd = -1;
	event_key(e, key);
	asbuf_putc(&e->b, '{');
	for (int fd = 0; fd <= 2; fd++) {
		char target[512];
		struct stat st;
		if (fd)
			asbuf_putc(&e->b, ',');
		asbuf_putc(&e->b, '"');
		asbuf_u64(&e->b, (uint64_t) fd);
		asbuf_puts(&e->b, "\":\"");
		if (fstat(fd, &st) < 0) {
			asbuf_puts(&e->b, "closed\"");
			continue;
		}
		size_t n = fd_target(fd, &st, target, sizeof(target), &probe_fd);
		const char *k = census_kind_of_target(target);
		asbuf_puts(&e->b, k);
		if (strcmp(k, "file") == 0 && n > 10 && strcmp(target + n - 10, " (deleted)") == 0)
			asbuf_puts(&e->b, " (deleted)");
		asbuf_putc(&e->b, '"');
	}
	asbuf_putc(&e->b, '}');
	if (probe_fd >= 0)
		(void) close(probe_fd);
}

struct thread_walk {
	struct asbuf *b;
	int count;
	int dirfd;
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
	asbuf_u64(&p, tid);
	asbuf_puts(&p, "/stat");
	if ((pid_t) tid == (pid_t) syscall(SYS_gettid)) {
		/* The calling thread is running this census: its state is R and
		 * its name is prctl's, without a /proc lookup (docs/performance.md). */
		state = 'R';
		(void) prctl(PR_GET_NAME, comm);
	} else if (read_file_at(w->dirfd, path, stat, sizeof(stat)) > 0) {
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
	struct thread_walk w = { .b = &e->b, .count = 0, .dirfd = -1 };
	event_key(e, key);
	asbuf_putc(&e->b, '[');
	int r = 0;
	if (syscall(SYS_unshare, CLONE_THREAD) == 0) {
		/* Single-threaded (see census_thread_count): the caller is the
		 * whole list, no /proc/self/task listing. */
		char tid[24];
		struct asbuf t = ASBUF_INIT(tid);
		asbuf_u64(&t, (uint64_t) syscall(SYS_gettid));
		thread_entry(tid, &w);
	} else
		r = for_each_entry("/proc/self/task", &w.dirfd, thread_entry, &w);
	asbuf_putc(&e->b, ']');
	return r < 0 ? r : w.count;
}

int
census_thread_count(void)
{
	/* unshare(CLONE_THREAD) is a no-op for a single-threaded process and
	 * EINVAL for any other: the common answer (a fork child has one thread)
	 * without /proc. Else (EINVAL, or a seccomp filter's EPERM) one /proc
	 * file rather than a listing of /proc/self/task. */
	if (syscall(SYS_unshare, CLONE_THREAD) == 0)
		return 1;
	int threads = -1;
	int r = census_self_status(&threads, NULL);
	return r < 0 ? r : threads < 0 ? -EIO : threads;
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
