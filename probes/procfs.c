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
