#pragma once
/* /proc readers and pure parsers.
 *
 * Every procfs_parse_*() takes text and a length (no NUL needed), never
 * allocates and never touches the system, so the parsers can be fuzzed and
 * used from the preload shim (e.g. on /proc/self/status). Readers open files
 * relative to a /proc/PID directory fd: the fd pins the process identity, so
 * a recycled pid reads as ESRCH/ENOENT instead of another process. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCFS_COMM_MAX 64 /* TASK_COMM_LEN is 16; status escapes may grow it */

/* /proc/PID/stat (fields 1-22, 39 not needed). */
struct proc_stat {
	pid_t pid;
	char comm[PROCFS_COMM_MAX];
	char state; /* R S D Z T t X I ... */
	pid_t ppid;
	pid_t pgrp;
	pid_t session;
	int tty_nr;
	uint64_t utime; /* clock ticks */
	uint64_t stime;
	int64_t num_threads;
	uint64_t starttime; /* clock ticks after boot */
};

/* comm may hold spaces and parentheses: it ends at the last ')'. */
int procfs_parse_stat(const char *text, size_t len, struct proc_stat *ret);

/* /proc/PID/status. Fields missing in the text stay 0 and their bit in
 * `present` stays clear. */
enum {
	PROC_STATUS_NAME = 1u << 0,
	PROC_STATUS_STATE = 1u << 1,
	PROC_STATUS_TGID = 1u << 2,
	PROC_STATUS_PPID = 1u << 3,
	PROC_STATUS_TRACERPID = 1u << 4,
	PROC_STATUS_UID = 1u << 5,
	PROC_STATUS_THREADS = 1u << 6,
	PROC_STATUS_SIGQ = 1u << 7,
	PROC_STATUS_SIGPND = 1u << 8,
	PROC_STATUS_SHDPND = 1u << 9,
	PROC_STATUS_SIGBLK = 1u << 10,
	PROC_STATUS_SIGIGN = 1u << 11,
	PROC_STATUS_SIGCGT = 1u << 12,
	PROC_STATUS_CTXT = 1u << 13,
	PROC_STATUS_GID = 1u << 14,
};

struct proc_status {
	unsigned present;
	char name[PROCFS_COMM_MAX]; /* unescaped */
	char state;
	pid_t tgid;
	pid_t ppid;
	pid_t tracer_pid;
	uid_t uid[4]; /* real, effective, saved, fs */
	gid_t gid[4];
	int64_t threads;
	uint64_t sigq_queued;
	uint64_t sigq_limit;
	uint64_t sig_pending; /* SigPnd: this thread */
	uint64_t shd_pending; /* ShdPnd: the whole thread group */
	uint64_t sig_blocked;
	uint64_t sig_ignored;
	uint64_t sig_caught;
	uint64_t voluntary_ctxt_switches;
	uint64_t nonvoluntary_ctxt_switches;
};

int procfs_parse_status(const char *text, size_t len, struct proc_status *ret);

/* One `tfd:` line of an epoll fd's fdinfo. */
struct epoll_target {
	int tfd;	 /* fd number in the registering process at registration time */
	uint32_t events; /* EPOLLIN ... */
	uint64_t data;
	uint64_t ino; /* inode of the target file: stable across processes */
	uint32_t sdev;
};

enum {
	FDINFO_POS = 1u << 0,
	FDINFO_FLAGS = 1u << 1,
	FDINFO_MNT_ID = 1u << 2,
	FDINFO_INO = 1u << 3,
	FDINFO_PIDFD = 1u << 4,
	FDINFO_EVENTFD = 1u << 5,
	FDINFO_SIGNALFD = 1u << 6,
	FDINFO_TIMERFD = 1u << 7,
	FDINFO_EPOLL = 1u << 8,
	FDINFO_INOTIFY = 1u << 9,
};

struct proc_fdinfo {
	unsigned present;
	int64_t pos;
	uint32_t flags; /* printed in octal: O_ACCMODE, O_NONBLOCK, O_CLOEXEC ... */
	int mnt_id;
	uint64_t ino;
	pid_t pidfd_pid;	/* pidfd `Pid:` (-1 once the process is gone) */
	uint64_t eventfd_count; /* printed in hex */
	uint64_t signalfd_mask; /* `sigmask:` */
	int timerfd_clockid;
	uint64_t timerfd_ticks;
	int64_t timerfd_value_ns;    /* it_value, 0 = disarmed */
	int64_t timerfd_interval_ns; /* it_interval */
	size_t n_inotify_watches;
	/* Epoll targets: stored up to the capacity the caller gives, counted all. */
	size_t n_targets; /* how many tfd lines the text has */
};

/* targets may be NULL with cap 0 (count only); a caller that sees
 * n_targets > cap grows its array and parses again. */
int procfs_parse_fdinfo(const char *text, size_t len, struct proc_fdinfo *ret,
			struct epoll_target *targets, size_t cap);

/* /proc/TID/syscall. */
enum proc_syscall_kind {
	PROC_SYSCALL_UNKNOWN = 0, /* not read */
	PROC_SYSCALL_IN = 1,	  /* blocked in syscall nr with args */
	PROC_SYSCALL_RUNNING = 2, /* "running": on a CPU or runnable */
	PROC_SYSCALL_NONE = 3,	  /* "-1 sp pc": stopped outside any syscall */
};

struct proc_syscall {
	enum proc_syscall_kind kind;
	long nr;
	uint64_t args[6];
	uint64_t sp;
	uint64_t pc;
};

int procfs_parse_syscall(const char *text, size_t len, struct proc_syscall *ret);

/* A blocked call interrupted by a signal or a ptrace stop (ours: freezing for
 * stacks) is often resumed through restart_syscall, and /proc then shows
 * that instead of poll or nanosleep. The argument registers still hold the
 * original arguments: recover the original call from the wchan. Returns true
 * if sc was rewritten. */
bool procfs_syscall_resolve_restart(struct proc_syscall *sc, const char *wchan);

/* /proc/PID/io. Unreadable for other users and for zombies on some kernels. */
struct proc_io {
	uint64_t rchar;
	uint64_t wchar;
	uint64_t syscr;
	uint64_t syscw;
	uint64_t read_bytes;
	uint64_t write_bytes;
};

int procfs_parse_io(const char *text, size_t len, struct proc_io *ret);

/* Whitespace-separated pids (/proc/PID/task/TID/children). Stores up to cap,
 * returns how many the text holds, or -EINVAL. */
int procfs_parse_pid_list(const char *text, size_t len, pid_t *pids, size_t cap);

/* /proc/TID/wchan: "0" (not sleeping, or hidden) becomes "". */
void procfs_parse_wchan(const char *text, size_t len, char *buf, size_t size);

/* readlink target classes of /proc/PID/fd/N. */
enum fd_kind {
	FD_KIND_OTHER = 0,
	FD_KIND_FILE,
	FD_KIND_PIPE,
	FD_KIND_SOCKET,
	FD_KIND_EPOLL,
	FD_KIND_EVENTFD,
	FD_KIND_SIGNALFD,
	FD_KIND_TIMERFD,
	FD_KIND_PIDFD,
	FD_KIND_INOTIFY,
	FD_KIND_TTY,
	FD_KIND_NULL,
	FD_KIND_ANON,
	FD_KIND_DIR, /* only when the caller knows (readlink cannot tell) */
};

const char *fd_kind_name(enum fd_kind kind);
int fd_kind_from_name(const char *name); /* -EINVAL if unknown */
/* Classify a readlink target; *ret_ino gets the [ino] of pipe:/socket: (else 0),
 * *ret_deleted whether it ends in " (deleted)". */
enum fd_kind fd_kind_classify(const char *target, uint64_t *ret_ino, bool *ret_deleted);

/* Syscall names (architecture independent: built from SYS_* of the build).
 * Returns a static name or NULL when the number is not in the table. */
const char *syscall_name(long nr);
/* The name, or "syscall_123" written into buf. */
const char *syscall_name_or_number(long nr, char *buf, size_t size);
/* -EINVAL if not known; accepts "syscall_123". */
long syscall_from_name(const char *name);

/* What a blocked syscall waits for, decoded from its number and arguments. */
enum syscall_timeout_kind {
	SYSCALL_TIMEOUT_NA = 0,	    /* the call has no timeout argument (read, wait4, accept) */
	SYSCALL_TIMEOUT_INFINITE,   /* timeout argument says forever (-1, NULL) */
	SYSCALL_TIMEOUT_RELATIVE,   /* timeout_ns from the start of the call */
	SYSCALL_TIMEOUT_ABSOLUTE,   /* deadline timeout_ns on clock timeout_clock */
	SYSCALL_TIMEOUT_POINTER,    /* behind timeout_ptr, not read (yet) */
	SYSCALL_TIMEOUT_UNREADABLE, /* pointer could not be read */
};

enum syscall_timeout_layout {
	TIMEOUT_LAYOUT_NONE = 0,
	TIMEOUT_LAYOUT_TIMESPEC,
	TIMEOUT_LAYOUT_TIMEVAL,
};

struct syscall_wait {
	long nr;
	int fd;		/* first fd argument (read/write/recv/accept/epoll fd ...), -1 none */
	pid_t wait_pid; /* wait4/waitid target (-1 any child, 0 none given) */
	enum syscall_timeout_kind timeout_kind;
	int64_t timeout_ns;
	int timeout_clock; /* CLOCK_* for absolute deadlines */
	uint64_t timeout_ptr;
	enum syscall_timeout_layout timeout_layout;
	bool timeout_absolute; /* meaning of the pointed-to value */
	/* futex() */
	bool is_futex;
	uint64_t futex_uaddr;
	int futex_op;  /* raw op argument */
	int futex_cmd; /* op & FUTEX_CMD_MASK */
	bool futex_private;
	bool futex_clock_realtime;
	uint32_t futex_val;
	/* poll/ppoll pollfd array, select/pselect6 fd_sets, to read from memory */
	uint64_t fds_ptr;	/* pollfd array or read set */
	uint64_t write_set_ptr; /* select write set */
	uint64_t nfds;
};

/* Pure: what the arguments say. Pointers are left for syscall_wait_read(). */
void syscall_wait_decode(const struct proc_syscall *sc, struct syscall_wait *ret);

const char *futex_cmd_name(int cmd); /* "FUTEX_WAIT", ..., or NULL */

/* Resolve SYSCALL_TIMEOUT_POINTER by reading the timespec/timeval from the
 * target with process_vm_readv: the kind becomes RELATIVE/ABSOLUTE/INFINITE or
 * UNREADABLE. Returns 0 or -errno (then the kind is UNREADABLE). */
int syscall_wait_read_timeout(pid_t pid, struct syscall_wait *w);

/* One fd a poll/ppoll/select waits on. */
struct wait_fd {
	int fd;
	short events; /* POLLIN, POLLOUT, ...; select read/write sets as POLLIN/POLLOUT */
};

/* Read the pollfd array (poll, ppoll) or fd_sets (select, pselect6) of a
 * blocked thread. Stores up to cap, *ret_n gets the count stored. */
int syscall_wait_read_fds(pid_t pid, const struct syscall_wait *w, struct wait_fd *fds, size_t cap,
			  size_t *ret_n);

/* /proc/PID directory fd (O_PATH|O_DIRECTORY|O_CLOEXEC). */
int procfs_open_pid(pid_t pid);
int procfs_open_task(int pid_dirfd, pid_t tid);

/* Readers over a /proc/PID or /proc/PID/task/TID dirfd. */
int procfs_read_stat(int dirfd, struct proc_stat *ret);
int procfs_read_status(int dirfd, struct proc_status *ret);
int procfs_read_syscall(int dirfd, struct proc_syscall *ret);
int procfs_read_wchan(int dirfd, char *buf, size_t size);
int procfs_read_io(int dirfd, struct proc_io *ret);
int procfs_read_comm(int dirfd, char *buf, size_t size);
/* Allocating readers (not for the preload shim's fork path). */
int procfs_read_fdinfo(int dirfd, int fd, struct proc_fdinfo *ret,
		       struct epoll_target **ret_targets);
/* Sorted tids of /proc/PID/task. */
int procfs_read_tasks(int dirfd, pid_t **ret_tids, size_t *ret_n);
/* Union of /proc/PID/task/ * /children, sorted, unique. */
int procfs_read_children(int dirfd, pid_t **ret_pids, size_t *ret_n);
/* NUL-separated argv; a NULL-terminated array in one allocation. */
int procfs_read_cmdline(int dirfd, char ***ret_argv, size_t *ret_argc);
/* readlink of an entry ("exe", "fd/3"), malloc'ed. */
int procfs_readlink(int dirfd, const char *name, char **ret_target);
/* Sorted fd numbers of /proc/PID/fd. */
int procfs_read_fds(int dirfd, int **ret_fds, size_t *ret_n);
