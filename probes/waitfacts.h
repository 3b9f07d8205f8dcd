#pragma once
/* Facts about kernel waits beyond pipes and sockets (docs/snapshot.md):
 * file locks held through an fd (the `lock:` lines of /proc/PID/fdinfo/FD,
 * same format as /proc/locks) and the path an open() is blocked on (a FIFO
 * waiting for its partner), read from the target's memory. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/procfs.h"

struct fd_lock {
	char kind[16];	 /* "FLOCK", "POSIX", "OFDLCK", "LEASE", "DELEG" */
	bool write;	 /* WRITE (exclusive) or READ (shared) */
	pid_t pid;	 /* who took it; -1 for OFD locks */
	uint32_t dev_major, dev_minor;
	uint64_t ino;	 /* the locked file's inode */
	int64_t start;
	int64_t end;	 /* -1: to EOF */
	bool waiter;	 /* a "->" line of /proc/locks: blocked, not held */
};

/* Parse every "lock:" line of an fdinfo text, or every line of /proc/locks
 * (with_prefix false). Unparseable lines are skipped. Returns 0 or -ENOMEM. */
int fd_locks_parse(const char *text, bool with_prefix, struct fd_lock **ret, size_t *ret_n);
/* The locks held through /proc/PID/fdinfo/FD (may be none). */
int fd_locks_read(pid_t pid, int fd, struct fd_lock **ret, size_t *ret_n);

json_t *fd_locks_to_json(const struct fd_lock *locks, size_t n);
/* NULL or a non-array yields no locks. Returns 0 or -ENOMEM. */
int fd_locks_from_json(const json_t *a, struct fd_lock **ret, size_t *ret_n);

/* The NUL-terminated path at addr in tid's memory (process_vm_readv), at most
 * PATH_MAX bytes. Returns 0, -errno. */
int wait_path_read(pid_t tid, uint64_t addr, char **ret);

/* Whether syscall nr opens a path, and the index of its path argument. */
bool syscall_opens_path(long nr, int *ret_arg);

/* For a thread blocked in open/openat/openat2: the path it opens, made
 * absolute through /proc/TID/cwd or the dirfd's link when relative. Returns
 * 0, -ENOENT when the call opens no path, -errno. */
int open_wait_path(pid_t tid, const struct proc_syscall *sc, char **ret);

/* A call interrupted by our own ptrace stop comes back as restart_syscall
 * (nanosleep and friends), whose wchan often names only do_syscall_64. The
 * registers still hold the original arguments: name the call from the
 * innermost stack frame (the libc wrapper), then decode and read its timeout
 * again. Returns true when sc was rewritten. */
bool syscall_resolve_restart_by_frame(pid_t pid, const char *frame0, struct proc_syscall *sc,
				      struct syscall_wait *w);

/* Would a ptrace stop change what this blocked thread does? A write or send
 * blocked after part of its data went into a pipe or stream socket returns
 * the short count when interrupted (pipe_write checks signal_pending), and
 * many programs then exit or lose data: such a process must not be frozen
 * for stacks. */
bool wait_breaks_on_interrupt(const char *wchan, const struct proc_syscall *sc);
