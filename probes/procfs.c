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

/* ---- a tiny cursor over (text, len): parsers never read past len ---- */

struct cursor {
	const char *p;
	const char *end;
};

static bool
cur_eof(const struct cursor *c)
{
	return c->p >= c->end;
}

static void
cur_skip_blanks(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static void
cur_skip_space(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'))
		c->p++;
}

static void
cur_next_line(struct cursor *c)
{
	while (c->p < c->end && *c->p != '\n')
		c->p++;
	if (c->p < c->end)
		c->p++;
}

static bool
cur_u64_base(struct cursor *c, unsigned base, uint64_t *ret)
{
	uint64_t v = 0;
	const char *start = c->p;
	if (base == 16 && c->end - c->p >= 2 && c->p[0] == '0' &&
	    (c->p[1] == 'x' || c->p[1] == 'X'))
		c->p += 2;
	const char *digits = c->p;
	while (c->p < c->end) {
		char ch = *c->p;
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned) (ch - '0');
		else if (base == 16 && ch >= 'a' && ch <= 'f')
			d = (unsigned) (ch - 'a' + 10);
		else if (base == 16 && ch >= 'A' && ch <= 'F')
			d = (unsigned) (ch - 'A' + 10);
		else
			break;
		if (d >= base)
			break;
		v = v * base + d; /* wraps on absurd input: fine for a parser, never UB */
		c->p++;
	}
	if (c->p == digits) {
		c->p = start;
		return false;
	}
	*ret = v;
	return true;
}

static bool
cur_u64(struct cursor *c, uint64_t *ret)
{
	return cur_u64_base(c, 10, ret);
}

static bool
cur_i64(struct cursor *c, int64_t *ret)
{
	bool neg = false;
	const char *start = c->p;
	if (c->p < c->end && (*c->p == '-' || *c->p == '+')) {
		neg = *c->p == '-';
		c->p++;
	}
	uint64_t v;
	if (!cur_u64(c, &v)) {
		c->p = start;
		return false;
	}
	*ret = neg ? (int64_t) (0 - v) : (int64_t) v;
	return true;
}

static bool
cur_int(struct cursor *c, int *ret)
{
	int64_t v;
	if (!cur_i64(c, &v))
		return false;
	*ret = (int) v;
	return true;
}

/* Does the line at c start with key (e.g. "SigPnd:")? Advances past it. */
static bool
cur_key(struct cursor *c, const char *key)
{
	size_t n = strlen(key);
	if ((size_t) (c->end - c->p) < n || memcmp(c->p, key, n) != 0)
		return false;
	c->p += n;
	cur_skip_blanks(c);
	return true;
}

static void
copy_bounded(char *dst, size_t size, const char *src, size_t n)
{
	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- /proc/PID/stat ---- */

int
procfs_parse_stat(const char *text, size_t len, struct proc_stat *ret)
{
	struct proc_stat st = {0};
	struct cursor c = {text, text + len};
	int64_t v;

	cur_skip_space(&c);
	if (!cur_i64(&c, &v))
		return -EINVAL;
	st.pid = (pid_t) v;
	cur_skip_blanks(&c);
	if (cur_eof(&c) || *c.p != '(')
		return -EINVAL;
	const char *open = c.p;
	/* comm may contain ") (": the real end is the last ')'. */
	const char *close = NULL;
	for (const char *q = c.end; q > open; q--)
		if (q[-1] == ')') {
			close = q - 1;
			break;
		}
	if (!close || close == open)
		return -EINVAL;
	copy_bounded(st.comm, sizeof(st.comm), open + 1, (size_t) (close - open - 1));
	c.p = close + 1;
	cur_skip_blanks(&c);
	if (cur_eof(&c))
		return -EINVAL;
	st.state = *c.p++;

	/* Fields 4.. are numbers; keep the ones we need by position. */
	int64_t f[20] = {0}; /* f[i] is field i + 4 */
	size_t n = 0;
	while (n < ARRAY_SIZE(f)) {
		cur_skip_blanks(&c);
		if (!cur_i64(&c, &f[n]))
			break;
		n++;
	}
	if (n < 19) /* up to starttime (field 22) */
		return -EINVAL;
	st.ppid = (pid_t) f[0];
	st.pgrp = (pid_t) f[1];
	st.session = (pid_t) f[2];
	st.tty_nr = (int) f[3];
	st.utime = (uint64_t) f[10];
	st.stime = (uint64_t) f[11];
	st.num_threads = f[16];
	st.starttime = (uint64_t) f[18];
	*ret = st;
	return 0;
}

/* ---- /proc/PID/status ---- */

/* Name: is printed with seq_escape (\n, \\, \t, octal): undo it. */
static void
unescape_name(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < size; i++) {
		char ch = s[i];
		if (ch == '\\' && i + 1 < n) {
			char e = s[++i];
			switch (e) {
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			case 'r':
				ch = '\r';
				break;
			case 'v':
				ch = '\v';
				break;
			case 'f':
				ch = '\f';
				break;
			case 'a':
				ch = '\a';
				break;
			case 'e':
				ch = '\033';
				break;
			case '\\':
				ch = '\\';
				break;
			default:
				if (e >= '0' && e <= '7') {
					unsigned v = 0, k = 0;
					i--;
					while (k < 3 && i + 1 < n && s[i + 1] >= '0' &&
					       s[i + 1] <= '7') {
						v = v * 8 + (unsigned) (s[++i] - '0');
						k++;
					}
					ch = (char) v;
				} else {
					ch = e;
				}
			}
		}
		out[o++] = ch;
	}
	if (size)
		out[o] = '\0';
}

static bool
parse_mask_line(struct cursor *c, const char *key, uint64_t *dst, unsigned bit, unsigned *present)
{
	if (!cur_key(c, key))
		return false;
	if (cur_u64_base(c, 16, dst))
		*present |= bit;
	return true;
}

int
procfs_parse_status(const char *text, size_t len, struct proc_status *ret)
{
	struct proc_status st = {0};
	struct cursor c = {text, text + len};

	while (!cur_eof(&c)) {
		const char *line = c.p;
		uint64_t u;
		int64_t v;
		if (cur_key(&c, "Name:")) {
			const char *e = c.p;
			while (e < c.end && *e != '\n')
				e++;
			unescape_name(c.p, (size_t) (e - c.p), st.name, sizeof(st.name));
			st.present |= PROC_STATUS_NAME;
		} else if (cur_key(&c, "State:")) {
			if (!cur_eof(&c)) {
				st.state = *c.p;
				st.present |= PROC_STATUS_STATE;
			}
		} else if (cur_key(&c, "Tgid:")) {
			if (cur_i64(&c, &v)) {
				st.tgid = (pid_t) v;
				st.present |= PROC_STATUS_TGID;
			}
		} else if (cur_key(&c, "PPid:")) {
			if (cur_i64(&c, &v)) {
				st.ppid = (pid_t) v;
				st.present |= PROC_STATUS_PPID;
			}
		} else if (cur_key(&c, "TracerPid:")) {
			if (cur_i64(&c, &v)) {
				st.tracer_pid = (pid_t) v;
				st.present |= PROC_STATUS_TRACERPID;
			}
		} else if (cur_key(&c, "Uid:") || cur_key(&c, "Gid:")) {
			bool is_uid = line[0] == 'U';
			size_t k = 0;
			for (; k < 4; k++) {
				cur_skip_blanks(&c);
				if (!cur_u64(&c, &u))
					break;
				if (is_uid)
					st.uid[k] = (uid_t) u;
				else
					st.gid[k] = (gid_t) u;
			}
			if (k == 4)
				st.present |= is_uid ? PROC_STATUS_UID : PROC_STATUS_GID;
		} else if (cur_key(&c, "Threads:")) {
			if (cur_i64(&c, &v)) {
				st.threads = v;
				st.present |= PROC_STATUS_THREADS;
			}
		} else if (cur_key(&c, "SigQ:")) {
			uint64_t q, l;
			if (cur_u64(&c, &q) && !cur_eof(&c) && *c.p++ == '/' && cur_u64(&c, &l)) {
				st.sigq_queued = q;
				st.sigq_limit = l;
				st.present |= PROC_STATUS_SIGQ;
			}
		} else if (parse_mask_line(&c, "SigPnd:", &st.sig_pending, PROC_STATUS_SIGPND,
					   &st.present) ||
			   parse_mask_line(&c, "ShdPnd:", &st.shd_pending, PROC_STATUS_SHDPND,
					   &st.present) ||
			   parse_mask_line(&c, "SigBlk:", &st.sig_blocked, PROC_STATUS_SIGBLK,
					   &st.present) ||
			   parse_mask_line(&c, "SigIgn:", &st.sig_ignored, PROC_STATUS_SIGIGN,
					   &st.present) ||
			   parse_mask_line(&c, "SigCgt:", &st.sig_caught, PROC_STATUS_SIGCGT,
					   &st.present)) {
			/* parsed */
		} else if (cur_key(&c, "voluntary_ctxt_switches:")) {
			if (cur_u64(&c, &u)) {
				st.voluntary_ctxt_switches = u;
				st.present |= PROC_STATUS_CTXT;
			}
		} else if (cur_key(&c, "nonvoluntary_ctxt_switches:")) {
			if (cur_u64(&c, &u)) {
				st.nonvoluntary_ctxt_switches = u;
				st.present |= PROC_STATUS_CTXT;
			}
		}
		cur_next_line(&c);
	}
	if (!(st.present & (PROC_STATUS_NAME | PROC_STATUS_STATE | PROC_STATUS_TGID)))
		return -EINVAL;
	*ret = st;
	return 0;
}

/* ---- /proc/PID/fdinfo/N ---- */

/* sec * 1e9 + nsec, saturated: the kernel's values fit (ktime_t), a
 * hostile file or a target's garbage timespec must not overflow. */
static int64_t
ns_saturated(int64_t sec, int64_t nsec)
{
	int64_t ns;
	if (__builtin_mul_overflow(sec, (int64_t) 1000000000, &ns) || __builtin_add_overflow(ns, nsec, &ns))
		return (sec < 0 || (sec == 0 && nsec < 0)) ? INT64_MIN : INT64_MAX;
	return ns;
}

/* "it_value: (1, 500000000)" */
static bool
parse_timer_pair(struct cursor *c, int64_t *ret_ns)
{
	int64_t sec, nsec;
	if (cur_eof(c) || *c->p != '(')
		return false;
	c->p++;
	cur_skip_blanks(c);
	if (!cur_i64(c, &sec))
		return false;
	if (cur_eof(c) || *c->p != ',')
		return false;
	c->p++;
	cur_skip_blanks(c);
	if (!cur_i64(c, &nsec))
		return false;
	*ret_ns = ns_saturated(sec, nsec);
	return true;
}

/* "tfd:        5 events:       19 data:                5  pos:0 ino:3e0a sdev:f" */
static bool
parse_tfd_line(struct cursor *c, struct epoll_target *t)
{
	struct epoll_target e = {0};
	uint64_t u;
	int v;
	if (!cur_int(c, &v))
		return false;
	e.tfd = v;
	cur_skip_blanks(c);
	if (!cur_key(c, "events:") || !cur_u64_base(c, 16, &u))
		return false;
	e.events = (uint32_t) u;
	cur_skip_blanks(c);
	if (!cur_key(c, "data:") || !cur_u64_base(c, 16, &e.data))
		return false;
	cur_skip_blanks(c);
	if (cur_key(c, "pos:")) {
		int64_t pos;
		(void) cur_i64(c, &pos);
		cur_skip_blanks(c);
	}
	if (cur_key(c, "ino:"))
		(void) cur_u64_base(c, 16, &e.ino);
	cur_skip_blanks(c);
	if (cur_key(c, "sdev:") && cur_u64_base(c, 16, &u))
		e.sdev = (uint32_t) u;
	*t = e;
	return true;
}

int
procfs_parse_fdinfo(const char *text, size_t len, struct proc_fdinfo *ret,
		    struct epoll_target *targets, size_t cap)
{
	struct proc_fdinfo fi = {0};
	struct cursor c = {text, text + len};
	fi.pidfd_pid = 0;

	while (!cur_eof(&c)) {
		uint64_t u;
		int64_t v;
		if (cur_key(&c, "pos:")) {
			if (cur_i64(&c, &v)) {
				fi.pos = v;
				fi.present |= FDINFO_POS;
			}
		} else if (cur_key(&c, "flags:")) {
			if (cur_u64_base(&c, 8, &u)) {
				fi.flags = (uint32_t) u;
				fi.present |= FDINFO_FLAGS;
			}
		} else if (cur_key(&c, "mnt_id:")) {
			if (cur_i64(&c, &v)) {
				fi.mnt_id = (int) v;
				fi.present |= FDINFO_MNT_ID;
			}
		} else if (cur_key(&c, "ino:")) {
			if (cur_u64(&c, &u)) {
				fi.ino = u;
				fi.present |= FDINFO_INO;
			}
		} else if (cur_key(&c, "Pid:")) {
			if (cur_i64(&c, &v)) {
				fi.pidfd_pid = (pid_t) v;
				fi.present |= FDINFO_PIDFD;
			}
		} else if (cur_key(&c, "eventfd-count:")) {
			if (cur_u64_base(&c, 16, &u)) {
				fi.eventfd_count = u;
				fi.present |= FDINFO_EVENTFD;
			}
		} else if (cur_key(&c, "sigmask:")) {
			if (cur_u64_base(&c, 16, &u)) {
				fi.signalfd_mask = u;
				fi.present |= FDINFO_SIGNALFD;
			}
		} else if (cur_key(&c, "clockid:")) {
			if (cur_i64(&c, &v)) {
				fi.timerfd_clockid = (int) v;
				fi.present |= FDINFO_TIMERFD;
			}
		} else if (cur_key(&c, "ticks:")) {
			if (cur_u64(&c, &u))
				fi.timerfd_ticks = u;
		} else if (cur_key(&c, "it_value:")) {
			(void) parse_timer_pair(&c, &fi.timerfd_value_ns);
		} else if (cur_key(&c, "it_interval:")) {
			(void) parse_timer_pair(&c, &fi.timerfd_interval_ns);
		} else if (cur_key(&c, "inotify wd:")) {
			fi.n_inotify_watches++;
			fi.present |= FDINFO_INOTIFY;
		} else if (cur_key(&c, "tfd:")) {
			struct epoll_target t;
			fi.present |= FDINFO_EPOLL;
			if (parse_tfd_line(&c, &t)) {
				if (fi.n_targets < cap)
					targets[fi.n_targets] = t;
				fi.n_targets++;
			}
		}
		cur_next_line(&c);
	}
	if (!(fi.present & FDINFO_FLAGS))
		return -EINVAL;
	*ret = fi;
	return 0;
}

/* ---- /proc/TID/syscall ---- */

int
procfs_parse_syscall(const char *text, size_t len, struct proc_syscall *ret)
{
	struct proc_syscall sc = {0};
	struct cursor c = {text, text + len};
	int64_t nr;

	cur_skip_space(&c);
	if (cur_key(&c, "running")) {
		sc.kind = PROC_SYSCALL_RUNNING;
		sc.nr = -1;
		*ret = sc;
		return 0;
	}
	if (!cur_i64(&c, &nr))
		return -EINVAL;
	sc.nr = (long) nr;
	uint64_t vals[8];
	size_t n = 0;
	while (n < ARRAY_SIZE(vals)) {
		cur_skip_blanks(&c);
		if (!cur_u64_base(&c, 16, &vals[n]))
			break;
		n++;
	}
	if (nr < 0) {
		/* "-1 sp pc": not inside a syscall (stopped, or in a fault). */
		if (n != 2)
			return -EINVAL;
		sc.kind = PROC_SYSCALL_NONE;
		sc.sp = vals[0];
		sc.pc = vals[1];
	} else {
		if (n != 8)
			return -EINVAL;
		sc.kind = PROC_SYSCALL_IN;
		memcpy(sc.args, vals, sizeof(sc.args));
		sc.sp = vals[6];
		sc.pc = vals[7];
	}
	*ret = sc;
	return 0;
}

/* ---- /proc/PID/io ---- */

int
procfs_parse_io(const char *text, size_t len, struct proc_io *ret)
{
	struct proc_io io = {0};
	struct cursor c = {text, text + len};
	unsigned seen = 0;

	while (!cur_eof(&c)) {
		uint64_t u = 0;
		if (cur_key(&c, "rchar:") && cur_u64(&c, &u)) {
			io.rchar = u;
			seen |= 1;
		} else if (cur_key(&c, "wchar:") && cur_u64(&c, &u)) {
			io.wchar = u;
			seen |= 2;
		} else if (cur_key(&c, "syscr:") && cur_u64(&c, &u)) {
			io.syscr = u;
			seen |= 4;
		} else if (cur_key(&c, "syscw:") && cur_u64(&c, &u)) {
			io.syscw = u;
			seen |= 8;
		} else if (cur_key(&c, "read_bytes:") && cur_u64(&c, &u)) {
			io.read_bytes = u;
		} else if (cur_key(&c, "write_bytes:") && cur_u64(&c, &u)) {
			io.write_bytes = u;
		}
		cur_next_line(&c);
	}
	if (seen != 15)
		return -EINVAL;
	*ret = io;
	return 0;
}

int
procfs_parse_pid_list(const char *text, size_t len, pid_t *pids, size_t cap)
{
	struct cursor c = {text, text + len};
	size_t n = 0;
	for (;;) {
		uint64_t u;
		cur_skip_space(&c);
		if (cur_eof(&c))
			break;
		if (!cur_u64(&c, &u) || u == 0 || u > INT_MAX)
			return -EINVAL;
		if (n < cap)
			pids[n] = (pid_t) u;
		n++;
		if (n > INT_MAX)
			return -E2BIG;
	}
	return (int) n;
}

void
procfs_parse_wchan(const char *text, size_t len, char *buf, size_t size)
{
	size_t n = 0;
	while (n < len && text[n] && text[n] != '\n' && text[n] != ' ')
		n++;
	if (n == 1 && text[0] == '0')
		n = 0;
	copy_bounded(buf, size, text, n);
}

/* ---- fd kinds ---- */

static const char *const fd_kind_names[] = {
    [FD_KIND_OTHER] = "other",	     [FD_KIND_FILE] = "file",	    [FD_KIND_PIPE] = "pipe",
    [FD_KIND_SOCKET] = "socket",     [FD_KIND_EPOLL] = "epoll",	    [FD_KIND_EVENTFD] = "eventfd",
    [FD_KIND_SIGNALFD] = "signalfd", [FD_KIND_TIMERFD] = "timerfd", [FD_KIND_PIDFD] = "pidfd",
    [FD_KIND_INOTIFY] = "inotify",   [FD_KIND_TTY] = "tty",	    [FD_KIND_NULL] = "null",
    [FD_KIND_ANON] = "anon",	     [FD_KIND_DIR] = "dir",
};

const char *
fd_kind_name(enum fd_kind kind)
{
	if ((size_t) kind < ARRAY_SIZE(fd_kind_names) && fd_kind_names[kind])
		return fd_kind_names[kind];
	return "other";
}

int
fd_kind_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(fd_kind_names); i++)
		if (fd_kind_names[i] && strcmp(fd_kind_names[i], name) == 0)
			return (int) i;
	return -EINVAL;
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static uint64_t
bracket_ino(const char *s)
{
	const char *b = strchr(s, '[');
	uint64_t v = 0;
	if (b && as_parse_u64(b + 1, &v))
		return v;
	return 0;
}

enum fd_kind
fd_kind_classify(const char *target, uint64_t *ret_ino, bool *ret_deleted)
{
	enum fd_kind kind;
	uint64_t ino = 0;
	size_t n = strlen(target);
	static const char deleted[] = " (deleted)";
	bool is_deleted = target[0] == '/' && n >= sizeof(deleted) - 1 &&
			  strcmp(target + n - (sizeof(deleted) - 1), deleted) == 0;

	if (starts_with(target, "pipe:[")) {
		kind = FD_KIND_PIPE;
		ino = bracket_ino(target);
	} else if (starts_with(target, "socket:[")) {
		kind = FD_KIND_SOCKET;
		ino = bracket_ino(target);
	} else if (strcmp(target, "anon_inode:[eventpoll]") == 0) {
		kind = FD_KIND_EPOLL;
	} else if (strcmp(target, "anon_inode:[eventfd]") == 0) {
		kind = FD_KIND_EVENTFD;
	} else if (strcmp(target, "anon_inode:[signalfd]") == 0) {
		kind = FD_KIND_SIGNALFD;
	} else if (strcmp(target, "anon_inode:[timerfd]") == 0) {
		kind = FD_KIND_TIMERFD;
	} else if (strcmp(target, "anon_inode:[pidfd]") == 0 || starts_with(target, "pidfd:")) {
		/* pidfs (6.9+) may name it "pidfd:[ino]" */
		kind = FD_KIND_PIDFD;
	} else if (strcmp(target, "anon_inode:inotify") == 0) {
		kind = FD_KIND_INOTIFY;
	} else if (starts_with(target, "anon_inode:")) {
		kind = FD_KIND_ANON;
	} else if (strcmp(target, "/dev/null") == 0) {
		kind = FD_KIND_NULL;
	} else if (starts_with(target, "/dev/pts/") || starts_with(target, "/dev/tty") ||
		   strcmp(target, "/dev/console") == 0 || strcmp(target, "/dev/ptmx") == 0) {
		kind = FD_KIND_TTY;
	} else if (target[0] == '/') {
		kind = FD_KIND_FILE;
	} else {
		kind = FD_KIND_OTHER;
	}
	if (ret_ino)
		*ret_ino = ino;
	if (ret_deleted)
		*ret_deleted = is_deleted;
	return kind;
}

/* ---- syscall names ---- */

struct syscall_entry {
	long nr;
	const char *name;
};

/* Built from SYS_* of the target architecture: names are the same on x86_64
 * and aarch64, numbers are not (aarch64 has no poll/select/pause). */
static const struct syscall_entry syscall_table[] = {
#ifdef SYS_read
    {SYS_read, "read"},
#endif
#ifdef SYS_write
    {SYS_write, "write"},
#endif
#ifdef SYS_open
    {SYS_open, "open"},
#endif
#ifdef SYS_close
    {SYS_close, "close"},
#endif
#ifdef SYS_poll
    {SYS_poll, "poll"},
#endif
#ifdef SYS_select
    {SYS_select, "select"},
#endif
#ifdef SYS_pselect6
    {SYS_pselect6, "pselect6"},
#endif
#ifdef SYS_ppoll
    {SYS_ppoll, "ppoll"},
#endif
#ifdef SYS_epoll_wait
    {SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_epoll_pwait
    {SYS_epoll_pwait, "epoll_pwait"},
#endif
#ifdef SYS_epoll_pwait2
    {SYS_epoll_pwait2, "epoll_pwait2"},
#endif
#ifdef SYS_epoll_ctl
    {SYS_epoll_ctl, "epoll_ctl"},
#endif
#ifdef SYS_futex
    {SYS_futex, "futex"},
#endif
#ifdef SYS_futex_waitv
    {SYS_futex_waitv, "futex_waitv"},
#endif
#ifdef SYS_wait4
    {SYS_wait4, "wait4"},
#endif
#ifdef SYS_waitid
    {SYS_waitid, "waitid"},
#endif
#ifdef SYS_nanosleep
    {SYS_nanosleep, "nanosleep"},
#endif
#ifdef SYS_clock_nanosleep
    {SYS_clock_nanosleep, "clock_nanosleep"},
#endif
#ifdef SYS_accept
    {SYS_accept, "accept"},
#endif
#ifdef SYS_accept4
    {SYS_accept4, "accept4"},
#endif
#ifdef SYS_connect
    {SYS_connect, "connect"},
#endif
#ifdef SYS_pause
    {SYS_pause, "pause"},
#endif
#ifdef SYS_rt_sigsuspend
    {SYS_rt_sigsuspend, "rt_sigsuspend"},
#endif
#ifdef SYS_rt_sigtimedwait
    {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
#endif
#ifdef SYS_rt_sigreturn
    {SYS_rt_sigreturn, "rt_sigreturn"},
#endif
#ifdef SYS_flock
    {SYS_flock, "flock"},
#endif
#ifdef SYS_fcntl
    {SYS_fcntl, "fcntl"},
#endif
#ifdef SYS_pidfd_open
    {SYS_pidfd_open, "pidfd_open"},
#endif
#ifdef SYS_pidfd_send_signal
    {SYS_pidfd_send_signal, "pidfd_send_signal"},
#endif
#ifdef SYS_recvfrom
    {SYS_recvfrom, "recvfrom"},
#endif
#ifdef SYS_sendto
    {SYS_sendto, "sendto"},
#endif
#ifdef SYS_recvmsg
    {SYS_recvmsg, "recvmsg"},
#endif
#ifdef SYS_sendmsg
    {SYS_sendmsg, "sendmsg"},
#endif
#ifdef SYS_recvmmsg
    {SYS_recvmmsg, "recvmmsg"},
#endif
#ifdef SYS_sendmmsg
    {SYS_sendmmsg, "sendmmsg"},
#endif
#ifdef SYS_readv
    {SYS_readv, "readv"},
#endif
#ifdef SYS_writev
    {SYS_writev, "writev"},
#endif
#ifdef SYS_pread64
    {SYS_pread64, "pread64"},
#endif
#ifdef SYS_pwrite64
    {SYS_pwrite64, "pwrite64"},
#endif
#ifdef SYS_preadv
    {SYS_preadv, "preadv"},
#endif
#ifdef SYS_pwritev
    {SYS_pwritev, "pwritev"},
#endif
#ifdef SYS_ioctl
    {SYS_ioctl, "ioctl"},
#endif
#ifdef SYS_splice
    {SYS_splice, "splice"},
#endif
#ifdef SYS_tee
    {SYS_tee, "tee"},
#endif
#ifdef SYS_sendfile
    {SYS_sendfile, "sendfile"},
#endif
#ifdef SYS_sched_yield
    {SYS_sched_yield, "sched_yield"},
#endif
#ifdef SYS_msgrcv
    {SYS_msgrcv, "msgrcv"},
#endif
#ifdef SYS_msgsnd
    {SYS_msgsnd, "msgsnd"},
#endif
#ifdef SYS_semop
    {SYS_semop, "semop"},
#endif
#ifdef SYS_semtimedop
    {SYS_semtimedop, "semtimedop"},
#endif
#ifdef SYS_mq_timedreceive
    {SYS_mq_timedreceive, "mq_timedreceive"},
#endif
#ifdef SYS_mq_timedsend
    {SYS_mq_timedsend, "mq_timedsend"},
#endif
#ifdef SYS_io_getevents
    {SYS_io_getevents, "io_getevents"},
#endif
#ifdef SYS_io_uring_enter
    {SYS_io_uring_enter, "io_uring_enter"},
#endif
#ifdef SYS_getpid
    {SYS_getpid, "getpid"},
#endif
#ifdef SYS_gettid
    {SYS_gettid, "gettid"},
#endif
#ifdef SYS_getppid
    {SYS_getppid, "getppid"},
#endif
#ifdef SYS_kill
    {SYS_kill, "kill"},
#endif
#ifdef SYS_tgkill
    {SYS_tgkill, "tgkill"},
#endif
#ifdef SYS_tkill
    {SYS_tkill, "tkill"},
#endif
#ifdef SYS_exit
    {SYS_exit, "exit"},
#endif
#ifdef SYS_exit_group
    {SYS_exit_group, "exit_group"},
#endif
#ifdef SYS_fork
    {SYS_fork, "fork"},
#endif
#ifdef SYS_vfork
    {SYS_vfork, "vfork"},
#endif
#ifdef SYS_clone
    {SYS_clone, "clone"},
#endif
#ifdef SYS_clone3
    {SYS_clone3, "clone3"},
#endif
#ifdef SYS_execve
    {SYS_execve, "execve"},
#endif
#ifdef SYS_execveat
    {SYS_execveat, "execveat"},
#endif
#ifdef SYS_socket
    {SYS_socket, "socket"},
#endif
#ifdef SYS_socketpair
    {SYS_socketpair, "socketpair"},
#endif
#ifdef SYS_bind
    {SYS_bind, "bind"},
#endif
#ifdef SYS_listen
    {SYS_listen, "listen"},
#endif
#ifdef SYS_shutdown
    {SYS_shutdown, "shutdown"},
#endif
#ifdef SYS_getsockopt
    {SYS_getsockopt, "getsockopt"},
#endif
#ifdef SYS_setsockopt
    {SYS_setsockopt, "setsockopt"},
#endif
#ifdef SYS_dup
    {SYS_dup, "dup"},
#endif
#ifdef SYS_dup2
    {SYS_dup2, "dup2"},
#endif
#ifdef SYS_dup3
    {SYS_dup3, "dup3"},
#endif
#ifdef SYS_pipe
    {SYS_pipe, "pipe"},
#endif
#ifdef SYS_pipe2
    {SYS_pipe2, "pipe2"},
#endif
#ifdef SYS_openat
    {SYS_openat, "openat"},
#endif
#ifdef SYS_close_range
    {SYS_close_range, "close_range"},
#endif
#ifdef SYS_mmap
    {SYS_mmap, "mmap"},
#endif
#ifdef SYS_munmap
    {SYS_munmap, "munmap"},
#endif
#ifdef SYS_mprotect
    {SYS_mprotect, "mprotect"},
#endif
#ifdef SYS_brk
    {SYS_brk, "brk"},
#endif
#ifdef SYS_madvise
    {SYS_madvise, "madvise"},
#endif
#ifdef SYS_fsync
    {SYS_fsync, "fsync"},
#endif
#ifdef SYS_fdatasync
    {SYS_fdatasync, "fdatasync"},
#endif
#ifdef SYS_lseek
    {SYS_lseek, "lseek"},
#endif
#ifdef SYS_stat
    {SYS_stat, "stat"},
#endif
#ifdef SYS_fstat
    {SYS_fstat, "fstat"},
#endif
#ifdef SYS_lstat
    {SYS_lstat, "lstat"},
#endif
#ifdef SYS_newfstatat
    {SYS_newfstatat, "newfstatat"},
#endif
#ifdef SYS_statx
    {SYS_statx, "statx"},
#endif
#ifdef SYS_rt_sigaction
    {SYS_rt_sigaction, "rt_sigaction"},
#endif
#ifdef SYS_rt_sigprocmask
    {SYS_rt_sigprocmask, "rt_sigprocmask"},
#endif
#ifdef SYS_sigaltstack
    {SYS_sigaltstack, "sigaltstack"},
#endif
#ifdef SYS_signalfd
    {SYS_signalfd, "signalfd"},
#endif
#ifdef SYS_signalfd4
    {SYS_signalfd4, "signalfd4"},
#endif
#ifdef SYS_eventfd
    {SYS_eventfd, "eventfd"},
#endif
#ifdef SYS_eventfd2
    {SYS_eventfd2, "eventfd2"},
#endif
#ifdef SYS_timerfd_create
    {SYS_timerfd_create, "timerfd_create"},
#endif
#ifdef SYS_timerfd_settime
    {SYS_timerfd_settime, "timerfd_settime"},
#endif
#ifdef SYS_timerfd_gettime
    {SYS_timerfd_gettime, "timerfd_gettime"},
#endif
#ifdef SYS_inotify_init1
    {SYS_inotify_init1, "inotify_init1"},
#endif
#ifdef SYS_inotify_add_watch
    {SYS_inotify_add_watch, "inotify_add_watch"},
#endif
#ifdef SYS_epoll_create
    {SYS_epoll_create, "epoll_create"},
#endif
#ifdef SYS_epoll_create1
    {SYS_epoll_create1, "epoll_create1"},
#endif
#ifdef SYS_prctl
    {SYS_prctl, "prctl"},
#endif
#ifdef SYS_ptrace
    {SYS_ptrace, "ptrace"},
#endif
#ifdef SYS_getrandom
    {SYS_getrandom, "getrandom"},
#endif
#ifdef SYS_clock_gettime
    {SYS_clock_gettime, "clock_gettime"},
#endif
#ifdef SYS_gettimeofday
    {SYS_gettimeofday, "gettimeofday"},
#endif
#ifdef SYS_set_robust_list
    {SYS_set_robust_list, "set_robust_list"},
#endif
#ifdef SYS_get_robust_list
    {SYS_get_robust_list, "get_robust_list"},
#endif
#ifdef SYS_set_tid_address
    {SYS_set_tid_address, "set_tid_address"},
#endif
#ifdef SYS_membarrier
    {SYS_membarrier, "membarrier"},
#endif
#ifdef SYS_rseq
    {SYS_rseq, "rseq"},
#endif
#ifdef SYS_arch_prctl
    {SYS_arch_prctl, "arch_prctl"},
#endif
#ifdef SYS_mremap
    {SYS_mremap, "mremap"},
#endif
#ifdef SYS_msync
    {SYS_msync, "msync"},
#endif
#ifdef SYS_getdents64
    {SYS_getdents64, "getdents64"},
#endif
#ifdef SYS_unlink
    {SYS_unlink, "unlink"},
#endif
#ifdef SYS_unlinkat
    {SYS_unlinkat, "unlinkat"},
#endif
#ifdef SYS_rename
    {SYS_rename, "rename"},
#endif
#ifdef SYS_renameat2
    {SYS_renameat2, "renameat2"},
#endif
#ifdef SYS_mkdir
    {SYS_mkdir, "mkdir"},
#endif
#ifdef SYS_chdir
    {SYS_chdir, "chdir"},
#endif
#ifdef SYS_sync
    {SYS_sync, "sync"},
#endif
#ifdef SYS_syncfs
    {SYS_syncfs, "syncfs"},
#endif
#ifdef SYS_lockf
    {SYS_lockf, "lockf"},
#endif
#ifdef SYS_process_vm_readv
    {SYS_process_vm_readv, "process_vm_readv"},
#endif
#ifdef SYS_process_vm_writev
    {SYS_process_vm_writev, "process_vm_writev"},
#endif
#ifdef SYS_alarm
    {SYS_alarm, "alarm"},
#endif
#ifdef SYS_setitimer
    {SYS_setitimer, "setitimer"},
#endif
#ifdef SYS_getitimer
    {SYS_getitimer, "getitimer"},
#endif
#ifdef SYS_sigsuspend
    {SYS_sigsuspend, "sigsuspend"},
#endif
#ifdef SYS_sigtimedwait
    {SYS_sigtimedwait, "sigtimedwait"},
#endif
#ifdef SYS_kcmp
    {SYS_kcmp, "kcmp"},
#endif
};

const char *
syscall_name(long nr)
{
	for (size_t i = 0; i < ARRAY_SIZE(syscall_table); i++)
		if (syscall_table[i].nr == nr)
			return syscall_table[i].name;
	return NULL;
}

const char *
syscall_name_or_number(long nr, char *buf, size_t size)
{
	const char *name = syscall_name(nr);
	if (name)
		return name;
	(void) snprintf(buf, size, "syscall_%ld", nr);
	return buf;
}

long
syscall_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(syscall_table); i++)
		if (strcmp(syscall_table[i].name, name) == 0)
			return syscall_table[i].nr;
	if (starts_with(name, "syscall_")) {
		uint64_t v;
		size_t n = as_parse_u64(name + 8, &v);
		if (n && name[8 + n] == '\0' && v <= INT_MAX)
			return (long) v;
	}
	return -EINVAL;
}

/* ---- what a blocked syscall waits for ---- */

#define FUTEX_CMD_MASK_LOCAL 0x7f /* ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) */

static const char *const futex_cmd_names[] = {
    "FUTEX_WAIT",	    "FUTEX_WAKE",	 "FUTEX_FD",	      "FUTEX_REQUEUE",
    "FUTEX_CMP_REQUEUE",    "FUTEX_WAKE_OP",	 "FUTEX_LOCK_PI",     "FUTEX_UNLOCK_PI",
    "FUTEX_TRYLOCK_PI",	    "FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET", "FUTEX_WAIT_REQUEUE_PI",
    "FUTEX_CMP_REQUEUE_PI", "FUTEX_LOCK_PI2",
};

const char *
futex_cmd_name(int cmd)
{
	if (cmd >= 0 && (size_t) cmd < ARRAY_SIZE(futex_cmd_names))
		return futex_cmd_names[cmd];
	return NULL;
}

static int
arg_int(uint64_t a)
{
	return (int) (int32_t) (uint32_t) a;
}

static void
timeout_ms(struct syscall_wait *w, uint64_t arg)
{
	int ms = arg_int(arg);
	if (ms < 0) {
		w->timeout_kind = SYSCALL_TIMEOUT_INFINITE;
	} else {
		w->timeout_kind = SYSCALL_TIMEOUT_RELATIVE;
		w->timeout_ns = (int64_t) ms * 1000000;
	}
}

static void
timeout_ptr(struct syscall_wait *w, uint64_t ptr, enum syscall_timeout_layout layout, bool absolute,
	    int clock)
{
	if (ptr == 0) {
		w->timeout_kind = SYSCALL_TIMEOUT_INFINITE;
		return;
	}
	w->timeout_kind = SYSCALL_TIMEOUT_POINTER;
	w->timeout_ptr = ptr;
	w->timeout_layout = layout;
	w->timeout_absolute = absolute;
	w->timeout_clock = clock;
}

static bool
nr_is(long nr, long sys)
{
	return sys >= 0 && nr == sys;
}

#define NR(name) nr_is(sc->nr, sysnr_##name)
/* -1 for syscalls the architecture lacks, so the decoder below stays flat. */
#ifdef SYS_poll
static const long sysnr_poll = SYS_poll;
#else
static const long sysnr_poll = -1;
#endif
#ifdef SYS_select
static const long sysnr_select = SYS_select;
#else
static const long sysnr_select = -1;
#endif
#ifdef SYS_epoll_wait
static const long sysnr_epoll_wait = SYS_epoll_wait;
#else
static const long sysnr_epoll_wait = -1;
#endif
#ifdef SYS_epoll_pwait2
static const long sysnr_epoll_pwait2 = SYS_epoll_pwait2;
#else
static const long sysnr_epoll_pwait2 = -1;
#endif
#ifdef SYS_futex_waitv
static const long sysnr_futex_waitv = SYS_futex_waitv;
#else
static const long sysnr_futex_waitv = -1;
#endif
#ifdef SYS_accept
static const long sysnr_accept = SYS_accept;
#else
static const long sysnr_accept = -1;
#endif

void
syscall_wait_decode(const struct proc_syscall *sc, struct syscall_wait *ret)
{
	struct syscall_wait w = {.nr = sc->nr, .fd = -1};
	const uint64_t *a = sc->args;

	if (sc->kind != PROC_SYSCALL_IN) {
		w.nr = -1;
		*ret = w;
		return;
	}
	long nr = sc->nr;
	if (nr == SYS_read || nr == SYS_write || nr == SYS_readv || nr == SYS_writev ||
	    nr == SYS_pread64 || nr == SYS_pwrite64 || nr == SYS_recvfrom || nr == SYS_sendto ||
	    nr == SYS_recvmsg || nr == SYS_sendmsg || nr == SYS_sendmmsg || nr == SYS_accept4 ||
	    nr == SYS_connect || nr == SYS_flock || nr == SYS_fcntl || nr == SYS_ioctl ||
	    nr == SYS_splice || nr == SYS_fsync || nr == SYS_fdatasync || NR(accept)) {
		w.fd = arg_int(a[0]);
	} else if (nr == SYS_sendfile) {
		w.fd = arg_int(a[1]); /* in_fd is what it waits to read */
	} else if (nr == SYS_recvmmsg) {
		w.fd = arg_int(a[0]);
		timeout_ptr(&w, a[4], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
		if (w.timeout_kind == SYSCALL_TIMEOUT_INFINITE)
			w.timeout_kind = SYSCALL_TIMEOUT_NA;
	} else if (NR(poll)) {
		w.fds_ptr = a[0];
		w.nfds = a[1];
		timeout_ms(&w, a[2]);
	} else if (nr == SYS_ppoll) {
		w.fds_ptr = a[0];
		w.nfds = a[1];
		timeout_ptr(&w, a[2], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (NR(select)) {
		w.nfds = a[0];
		w.fds_ptr = a[1];
		w.write_set_ptr = a[2];
		timeout_ptr(&w, a[4], TIMEOUT_LAYOUT_TIMEVAL, false, CLOCK_MONOTONIC);
	} else if (nr == SYS_pselect6) {
		w.nfds = a[0];
		w.fds_ptr = a[1];
		w.write_set_ptr = a[2];
		timeout_ptr(&w, a[4], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (NR(epoll_wait) || nr == SYS_epoll_pwait) {
		w.fd = arg_int(a[0]);
		timeout_ms(&w, a[3]);
	} else if (NR(epoll_pwait2)) {
		w.fd = arg_int(a[0]);
		timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (nr == SYS_futex) {
		int op = arg_int(a[1]);
		int cmd = op & FUTEX_CMD_MASK_LOCAL;
		bool realtime = (op & 256) != 0;
		w.is_futex = true;
		w.futex_uaddr = a[0];
		w.futex_op = op;
		w.futex_cmd = cmd;
		w.futex_private = (op & 128) != 0;
		w.futex_clock_realtime = realtime;
		w.futex_val = (uint32_t) a[2];
		switch (cmd) {
		case 0: /* FUTEX_WAIT: relative, even with the realtime flag */
			timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
			break;
		case 9:	 /* FUTEX_WAIT_BITSET */
		case 11: /* FUTEX_WAIT_REQUEUE_PI */
		case 13: /* FUTEX_LOCK_PI2 */
			timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, true,
				    realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC);
			break;
		case 6: /* FUTEX_LOCK_PI: always CLOCK_REALTIME */
			timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, true, CLOCK_REALTIME);
			break;
		default:
			break;
		}
	} else if (NR(futex_waitv)) {
		w.is_futex = true;
		w.fds_ptr = a[0]; /* struct futex_waitv array */
		w.nfds = a[1];
		timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, true, arg_int(a[4]));
	} else if (nr == SYS_wait4) {
		w.wait_pid = (pid_t) arg_int(a[0]);
	} else if (nr == SYS_waitid) {
		int idtype = arg_int(a[0]);
		if (idtype == 0) /* P_ALL */
			w.wait_pid = -1;
		else if (idtype == 1) /* P_PID */
			w.wait_pid = (pid_t) arg_int(a[1]);
		else if (idtype == 3) /* P_PIDFD */
			w.fd = arg_int(a[1]);
	} else if (nr == SYS_nanosleep) {
		timeout_ptr(&w, a[0], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (nr == SYS_clock_nanosleep) {
		timeout_ptr(&w, a[2], TIMEOUT_LAYOUT_TIMESPEC, (arg_int(a[1]) & TIMER_ABSTIME) != 0,
			    arg_int(a[0]));
	} else if (nr == SYS_rt_sigtimedwait) {
		timeout_ptr(&w, a[2], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	}
	*ret = w;
}

static int
read_remote(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *) (uintptr_t) addr, .iov_len = len};
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	if ((size_t) n != len)
		return -EFAULT;
	return 0;
}

int
syscall_wait_read_timeout(pid_t pid, struct syscall_wait *w)
{
	int64_t sec, nsec;
	int r;

	if (w->timeout_kind != SYSCALL_TIMEOUT_POINTER)
		return 0;
	/* 64-bit only: a 32-bit (compat) target has 8-byte timespecs here too
	 * for the *_time64 calls; the old ones we would misread, rarely met. */
	if (w->timeout_layout == TIMEOUT_LAYOUT_TIMEVAL) {
		struct timeval tv = { 0 };
		r = read_remote(pid, w->timeout_ptr, &tv, sizeof(tv));
		sec = tv.tv_sec;
		if (__builtin_mul_overflow((int64_t) tv.tv_usec, (int64_t) 1000, &nsec))
			nsec = tv.tv_usec < 0 ? INT64_MIN : INT64_MAX;
	} else {
		struct timespec ts = { 0 };
		r = read_remote(pid, w->timeout_ptr, &ts, sizeof(ts));
		sec = ts.tv_sec;
		nsec = ts.tv_nsec;
	}
	if (r < 0) {
		w->timeout_kind = SYSCALL_TIMEOUT_UNREADABLE;
		return r;
	}
	w->timeout_ns = ns_saturated(sec, nsec);
	w->timeout_kind = w->timeout_absolute ? SYSCALL_TIMEOUT_ABSOLUTE : SYSCALL_TIMEOUT_RELATIVE;
	return 0;
}

int
syscall_wait_read_fds(pid_t pid, const struct syscall_wait *w, struct wait_fd *fds, size_t cap,
		      size_t *ret_n)
{
	size_t n = 0;
	int r;

	if (w->fds_ptr == 0 || w->nfds == 0 || w->is_futex) {
		*ret_n = 0;
		return 0;
	}
	if ((nr_is(w->nr, sysnr_select) || w->nr == SYS_pselect6)) {
		fd_set rs, ws;
		size_t nfds = w->nfds > FD_SETSIZE ? FD_SETSIZE : (size_t) w->nfds;
		size_t bytes = (nfds + 7) / 8;
		memset(&rs, 0, sizeof(rs));
		memset(&ws, 0, sizeof(ws));
		r = read_remote(pid, w->fds_ptr, &rs, bytes);
		if (r < 0)
			return r;
		if (w->write_set_ptr) {
			r = read_remote(pid, w->write_set_ptr, &ws, bytes);
			if (r < 0)
				return r;
		}
		for (size_t fd = 0; fd < nfds && n < cap; fd++) {
			short ev = (short) ((FD_ISSET((int) fd, &rs) ? POLLIN : 0) |
					    (FD_ISSET((int) fd, &ws) ? POLLOUT : 0));
			if (ev)
				fds[n++] = (struct wait_fd){.fd = (int) fd, .events = ev};
		}
	} else {
		struct pollfd p[64];
		size_t want = w->nfds > ARRAY_SIZE(p) ? ARRAY_SIZE(p) : (size_t) w->nfds;
		if (want > cap)
			want = cap;
		r = read_remote(pid, w->fds_ptr, p, want * sizeof(p[0]));
		if (r < 0)
			return r;
		for (size_t i = 0; i < want; i++)
			fds[n++] = (struct wait_fd){.fd = p[i].fd, .events = p[i].events};
	}
	*ret_n = n;
	return 0;
}

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

bool
procfs_syscall_resolve_restart(struct proc_syscall *sc, const char *wchan)
{
	if (sc->kind != PROC_SYSCALL_IN || sc->nr != SYS_restart_syscall || !wchan)
		return false;
	long nr = -1;
	if (strncmp(wchan, "poll_schedule_timeout", 21) == 0)
		/* poll keeps an int timeout in the third register, ppoll a pointer */
		nr = sc->args[2] <= 0xffffffffULL ? SYS_poll : SYS_ppoll;
	else if (strstr(wchan, "select"))
		nr = SYS_select;
	else if (strstr(wchan, "epoll"))
		nr = SYS_epoll_wait;
	else if (strncmp(wchan, "futex", 5) == 0)
		nr = SYS_futex;
	else if (strstr(wchan, "nanosleep"))
		nr = SYS_clock_nanosleep;
	if (nr < 0)
		return false;
	sc->nr = nr;
	return true;
}
