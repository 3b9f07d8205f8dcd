#pragma once
/* What forkscope does so that nothing it started outlives it: it is a child
 * subreaper, it finds every descendant (orphans are adopted by it), and it ends
 * them SIGINT first (SIGINT -> grace -> SIGTERM -> grace -> SIGKILL), only its
 * own, never by name. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_brief {
	pid_t pid;
	pid_t ppid;
	pid_t pgid;
	pid_t sid;
	char state;
	char comm[32];
};

int reaper_become_subreaper(void);

/* Every live descendant of ancestor (zombies included, flagged by state 'Z'),
 * found by walking ppid links over a /proc scan. */
int proc_descendants(pid_t ancestor, struct proc_brief **ret, size_t *ret_n);
int proc_brief_read(pid_t pid, struct proc_brief *ret);

/* Reap every exited child of ours without blocking (adopted orphans included).
 * If watch > 0 and it was reaped, *ret_status gets its wait status and the
 * return is 1. */
int reap_children(pid_t watch, int *ret_status);

/* Wait until no descendant of ours is alive (zombies of other parents ignored)
 * or the deadline passes. Returns the number still alive. Reaps ours. */
size_t wait_descendants_gone(uint64_t deadline_ns);

struct ended_proc {
	pid_t pid;
	pid_t pgid;
	char comm[32];
	const char *ended_by; /* "exited" | "SIGINT" | "SIGTERM" | "SIGKILL" | "survived" */
	struct proc_brief at_start; /* what it was when the ladder began */
	/* Its signal state then (SigBlk/SigIgn of /proc/PID/status; 0 unknown):
	 * a SIGINT blocked or ignored is why the first rung could not end it. */
	uint64_t sig_blocked, sig_ignored;
};

/* End every descendant of ours: signal the group pgid (if > 0) and every
 * descendant by pid, SIGINT then SIGTERM then SIGKILL, `grace` between rungs.
 * Returns the list of processes that were alive at the start and what ended each. */
int reaper_end_all(pid_t pgid, uint64_t grace_ns, struct ended_proc **ret, size_t *ret_n);
