#pragma once
/* Facts about a thread blocked in futex(): the word it waits on and the tid
 * stored next to it. Interpretation (lock inherited across fork, deadlock
 * cycle) is the wait-for graph's job. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/procfs.h"

/* glibc's pthread_mutex_t keeps __lock at +0 and __owner (a tid) at +8 on
 * x86_64 and aarch64 alike. */
#define FUTEX_GLIBC_OWNER_OFFSET 8

enum futex_owner_where {
	FUTEX_OWNER_UNKNOWN = 0,   /* no owner tid recorded (0, unreadable, not a lock) */
	FUTEX_OWNER_SAME_PROCESS,  /* /proc/PID/task/OWNER exists */
	FUTEX_OWNER_OTHER_PROCESS, /* a thread of another process of the snapshot */
	FUTEX_OWNER_OUTSIDE,	   /* exists, in a process outside the snapshot */
	FUTEX_OWNER_NOWHERE,	   /* no such thread anywhere */
};

struct futex_info {
	uint64_t uaddr;
	int op;	 /* raw op argument */
	int cmd; /* FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI ... */
	bool private_flag;
	bool clock_realtime;
	uint32_t val; /* the value the waiter expects the word to have */
	bool word_read;
	uint32_t word;	/* current value at uaddr */
	int word_error; /* errno of the read, 0 when read */
	bool owner_read;
	pid_t owner_tid; /* int at uaddr + 8: glibc mutex __owner, if uaddr is a mutex */
	int owner_error;
	pid_t pi_owner_tid;		    /* PI futexes: word & FUTEX_TID_MASK */
	enum futex_owner_where owner_where; /* of pi_owner_tid if set, else owner_tid */
	pid_t owner_pid;		    /* thread group of that tid when it exists, else 0 */
};

/* Read the futex word and the owner slot of a thread of pid blocked in a
 * futex wait described by w (process_vm_readv; needs ptrace access), and
 * locate the owner: SAME_PROCESS, OUTSIDE or NOWHERE. The snapshot turns
 * OUTSIDE into OTHER_PROCESS when owner_pid is one of its processes.
 * Returns 0 (read errors are recorded in the struct) or -EINVAL if w is not
 * a futex wait. */
int futex_inspect(pid_t pid, const struct syscall_wait *w, struct futex_info *ret);

/* The tid the owner fields refer to (pi_owner_tid or owner_tid), 0 if none. */
pid_t futex_owner_candidate(const struct futex_info *info);

const char *futex_owner_where_name(enum futex_owner_where where);
int futex_owner_where_from_name(const char *name);
