#pragma once
/* The one supervisor that `run` and `watch` both drive (docs/architecture.md).
 *
 * A session makes sure nothing it starts outlives it and that a hung tree is
 * looked at before it is touched:
 *  - the guardian split and the child subreaper (harness/guardian.h), unless
 *    the user asked to hold a hung tree;
 *  - SIGINT/SIGTERM/SIGHUP and the guardian-lost signal caught (an ignored
 *    signal stays ignored), SIGPIPE ignored;
 *  - each tree in a process group of its own (session_fork_tree);
 *  - pidfd waits against a deadline that an interrupt cuts short;
 *  - triage at the deadline, before any signal: snapshot, self-dump where
 *    ptrace gave no stacks, the analysis, snapshot.json written;
 *  - the SIGINT-first teardown ladder over every descendant, with what ended
 *    each and, for leftovers, how they escaped and what they were doing.
 * Everything here reports to its caller; only cli/ prints results. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness/reaper.h"

/* Grace between the rungs of the SIGINT -> SIGTERM -> SIGKILL ladder. */
#define SESSION_GRACE_NS (500 * 1000000ull)
/* How long a probed process gets to answer a self-dump request. */
#define SESSION_SELFDUMP_WAIT_NS (3 * 1000000000ull)

struct session_options {
	bool hold;	  /* a hung tree is left alive: no guardian, no parent-death signal */
	bool stacks;	  /* native stacks through ptrace in the triage */
	bool selfdump;	  /* ask probed processes without stacks to dump their own */
	const char *rules_file;
	const char *events_path; /* the probe's event log (triage names, self-dump), or NULL */
};

/* Split off the guardian (unless hold), become a subreaper, install the
 * handlers. Returns 0, or -errno when the guardian could not be started (the
 * session then runs unguarded; the caller says so). */
int session_start(const struct session_options *o);
/* The signal that interrupted the session (SIGTERM for a lost guardian), or 0. */
int session_interrupted(void);
/* In a forked child before it execs or runs: the signal dispositions and mask
 * the session found at start (async-signal-safe). */
void session_child_restore_signals(void);
/* fork() a tree's top process: in the child (return 0) it is the leader of a
 * new process group and dies with the session unless held; in the parent the
 * pid is returned with the group already set (no race with the child). */
pid_t session_fork_tree(void);
/* Prelude for a tree's top that runs forkscope code (the run's root, the
 * capture host): close everything but 0,1,2 and the event log, reset the
 * signal mask and dispositions. Async-signal-safe. */
void session_child_prelude(void);
/* Wait for pidfd to become readable (the process ended) until deadline_ns
 * (0: no deadline). Returns 1 ended, 0 deadline passed, -EINTR interrupted,
 * -errno when poll itself failed. */
int session_wait(int pidfd, uint64_t deadline_ns);

/* The tree under watch. */
struct session_tree {
	pid_t top;	    /* the tree's top process (0 once it has ended) */
	pid_t pgid;	    /* its process group */
	uint64_t start_ns;  /* CLOCK_MONOTONIC when it started */
	const char *events_path; /* or NULL (--probes off) */
	const char *snapshot_path; /* where snapshot.json goes */
	uint64_t window_ns; /* the deadline that passed: longer timed waits count as never (0: 60 s) */
};

struct session_triage {
	json_t *snapshot; /* what was read (NULL if nothing) */
	json_t *verdicts; /* array, never NULL */
	bool snapshot_written;
	int error;	  /* -errno of the snapshot when nothing could be read, else 0 */
	int write_error;  /* -errno of writing snapshot.json, else 0 */
	json_t *selfdumps; /* [{pid, error?}] of the self-dump requests */
	json_t *waits;	   /* what each thread waits for (wf_summary_json), or NULL */
};
/* Snapshot the live tree (reason: "timeout", "leftovers", ...), self-dump
 * where asked, analyse, write snapshot.json. Nothing is signalled. */
void session_triage(const struct session_tree *t, const char *reason, struct session_triage *ret);
void session_triage_release(struct session_triage *t);

/* End every descendant SIGINT first (the group first, then each by pid).
 * Returns what ended each, with what it looked like at the start. */
int session_end_all(const struct session_tree *t, struct ended_proc **ret, size_t *ret_n);
/* The hold message: how to inspect and end a tree left alive. */
char *session_hold_text(const struct session_tree *t, const char *run_dir);

/* A fresh run directory: out_dir if given, else PREFIX-STAMP-PID under the
 * state directory (session_state_dir), else under $TMPDIR/forkscope. */
int session_make_run_dir(const char *out_dir, const char *prefix, char **ret_path);
/* Where runs are kept by default: $XDG_STATE_HOME/forkscope/runs, else
 * $HOME/.local/state/forkscope/runs. */
int session_state_dir(char **ret_path);
