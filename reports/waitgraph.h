#pragma once
/* The cross-process wait-for graph.
 *
 * Nodes are threads and resources (pipe ends, sockets, child exits, futexes,
 * listeners); a blocked thread "waits on" resources, and each resource is
 * "released by" the processes that could make it ready (the holders of a
 * pipe's other end, a socket's peer, the child that would exit, the owner of a
 * lock). An epoll/poll wait is an OR-wait over its targets.
 *
 * The analysis finds the threads that can never make progress: a fixpoint that
 * starts from threads that can act (running, or in a wait that times out within
 * the window, or waiting on something outside what we can see) and spreads
 * liveness through "released by" edges. What stays stuck is the hang: a knot
 * (every awaited resource is held by stuck threads), not merely a cycle. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/waitfacts.h"

enum wf_fd_kind {
	WF_FD_FILE,
	WF_FD_PIPE,
	WF_FD_SOCKET,
	WF_FD_EPOLL,
	WF_FD_EVENTFD,
	WF_FD_SIGNALFD,
	WF_FD_TIMERFD,
	WF_FD_PIDFD,
	WF_FD_OTHER,
};

struct wf_fd {
	int fd;
	enum wf_fd_kind kind;
	uint64_t ino;	       /* pipe or socket inode */
	char mode;	       /* 'r', 'w' or 'b' (both) */
	uint64_t peer_ino;     /* sockets: the peer's inode (sock_diag), 0 unknown */
	bool listening;	       /* sockets */
	int64_t queued;	       /* pipes: bytes queued (-1 unknown); sockets: rqlen */
	int64_t capacity;      /* pipes: F_GETPIPE_SZ (-1 unknown) */
	pid_t pidfd_pid;       /* pidfds */
	int *epoll_targets;    /* epoll: fds in the interest list */
	size_t n_epoll_targets;
	char *target;	       /* readlink text, for reports */
	char *name;	       /* socket name (@abstract or path), if bound */
	/* TCP/UDP: endpoints, and the peer found by swapping them (loopback) */
	bool inet;
	int inet_protocol;     /* IPPROTO_TCP, IPPROTO_UDP */
	int inet_state;
	char local[64], remote[64];
	bool has_tcp_info;
	uint64_t bytes_acked, bytes_received;
	uint32_t last_data_sent_ms, last_data_recv_ms;
	int64_t timerfd_value_ns; /* timerfds: remaining until expiry, 0 disarmed */
	struct fd_lock *locks;	  /* file locks held through this fd */
	size_t n_locks;
};

enum wf_wait_kind {
	WF_WAIT_NONE,	  /* running or not in a wait we understand */
	WF_WAIT_READ,	  /* read/recv on one fd */
	WF_WAIT_WRITE,	  /* write/send on one fd */
	WF_WAIT_ACCEPT,	  /* accept on a listener */
	WF_WAIT_POLL,	  /* epoll/poll: OR over targets */
	WF_WAIT_CHILD,	  /* wait4/waitid on a pid (or -1: any child) */
	WF_WAIT_FUTEX,	  /* futex wait */
	WF_WAIT_SIGNAL,	  /* pause, sigsuspend, sigtimedwait */
	WF_WAIT_SLEEP,	  /* nanosleep */
	WF_WAIT_LOCK,	  /* flock / fcntl F_SETLKW / F_OFD_SETLKW on a file */
	WF_WAIT_OPEN,	  /* open() of a FIFO with no partner (wait_for_partner) */
	WF_WAIT_STOPPED,  /* state T (job control) or t (ptrace) */
	WF_WAIT_CONNECT,  /* connect() in progress */
	WF_WAIT_UNKNOWN,  /* blocked in something else: "unclassified" */
};

struct wf_thread {
	pid_t tid;
	char *name;
	char state;	  /* R S D T t Z X */
	char *wchan;
	char *syscall;	  /* name, "running", or NULL */
	int64_t syscall_nr;
	uint64_t args[6];
	int64_t timeout_ms; /* decoded wait timeout, -1 = infinite, -2 = unknown */
	/* CPU and progress between the two samples */
	uint64_t cpu_delta_ns;
	uint64_t sample_interval_ns;
	uint64_t ctxt_delta;
	char *hot_syscall;   /* most sampled syscall while running, e.g. "read" */
	int64_t hot_fd;	     /* its first argument when it is an fd, else -1 */
	unsigned hot_samples;
	bool hot_has_result;
	int64_t hot_result;  /* return value seen for the hot syscall (0 = EOF for reads) */
	/* futex */
	uint64_t futex_addr;
	pid_t futex_owner;	    /* 0 unknown */
	bool futex_owner_in_process;
	pid_t futex_owner_elsewhere; /* pid of another snapshot process holding that tid, 0 none */
	/* stacks, innermost first (function names, with python frames where known) */
	char **frames;
	size_t n_frames;
	char *stack_error;
	/* poll/ppoll/select: the fds read from the target's memory (NULL: unknown) */
	int *poll_fds;
	size_t n_poll_fds;
	char *wait_path;       /* open() in progress: its path */
	bool restarted_same;   /* both samples caught the same blocking syscall */
	/* analysis */
	enum wf_wait_kind wait;
	int wait_fd;	       /* READ/WRITE/ACCEPT */
	pid_t wait_pid;	       /* CHILD */
	bool blocking;	       /* in a permanent wait (timeout beyond the window or none) */
	bool stuck;	       /* result of the fixpoint */
};

struct wf_proc {
	pid_t pid, ppid, pgid;
	char *comm;
	char *display;	/* from the command line when comm says little (process_display_name) */
	char *actor;	  /* actor name from probe events, or NULL */
	char state;
	bool zombie;
	bool partial;
	char *partial_reason;
	uint64_t sig_pending;	/* process-wide (ShdPnd) | per-thread (SigPnd) of any thread */
	uint64_t sig_blocked;	/* intersection over threads: blocked in every thread */
	uint64_t sig_caught;
	uint64_t sig_ignored;
	int64_t rchar_delta, wchar_delta, syscr_delta; /* -1 unknown */
	struct wf_thread *threads;
	size_t n_threads;
	struct wf_fd *fds;
	size_t n_fds;
	/* from probe events */
	bool has_events;
	bool spawned_not_ready; /* its parent saw spawn but never its handshake */
	bool cancel_received;	/* got a cancel request it has not acted on */
	uint64_t cancel_received_ns;
	int64_t inherited_inos_n;
	uint64_t *inherited_inos; /* inodes it had at child_start (inherited across fork) */
	bool is_top;		  /* a root the caller asked about */
	pid_t tracer_pid;	  /* TracerPid, 0 none */
	pid_t sid;		  /* session id */
	pid_t forking_tid;	  /* fork event: the parent thread that forked it, 0 unknown */
	char *fork_threads;	  /* fork event: the parent's threads at the fork, "tid name, ..." */
	/* analysis */
	bool live;
	bool stuck;
};

struct wf_graph {
	struct wf_proc *procs;
	size_t n_procs;
	pid_t subreaper;
	uint64_t window_ms; /* a wait with a longer (or no) timeout counts as permanent */
	pid_t taken_by;	    /* the snapshotting process: its ptrace stops are not waits */
	bool from_scenario; /* the events come from a forkscope scenario (remedies may name fixes.*) */
	const json_t *events; /* the probe events it was built with (borrowed), or NULL */
};

/* Build from a snapshot document (docs/snapshot.md) and, optionally, the
 * probe events of the run (names, handshakes, cancel requests). */
int wf_graph_from_snapshot(const json_t *snapshot, const json_t *events, struct wf_graph **ret);
struct snapshot;
int wf_graph_from_snapshot_struct(const struct snapshot *s, const json_t *events, struct wf_graph **ret);
void wf_graph_free(struct wf_graph *g);

struct wf_proc *wf_find_proc(struct wf_graph *g, pid_t pid);
struct wf_fd *wf_find_fd(struct wf_proc *p, int fd);
/* Processes holding an fd on inode ino, optionally only with a given mode. */
size_t wf_holders(struct wf_graph *g, uint64_t ino, char mode, struct wf_proc **out, int *out_fd, size_t max);

/* Decide each thread's wait, then run the liveness fixpoint. */
void wf_analyze(struct wf_graph *g);

/* Is thread t released when any other live process of the graph acts (a FIFO
 * open, a listener without a known connector)? */
bool wf_released_by_anyone(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t);

/* For a stuck thread, the processes whose action would release it (the union
 * over its OR-wait). Returns how many were written. */
size_t wf_releasers(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t, pid_t *out, size_t max);

/* "the exit of worker (pid 4241)", "EOF or data on socket:[81234] …" */
char *wf_describe_wait(struct wf_graph *g, struct wf_proc *p, struct wf_thread *t);
const char *wf_proc_label(const struct wf_proc *p, char *buf, size_t size);

/* Every process and thread with its decoded wait, whether it is stuck and who
 * could release it: what `forkscope triage --explain` prints. */
char *wf_explain(struct wf_graph *g);

/* "No hang found" is not the end of a look: a compact per-process summary of
 * what each thread waits for, its state and the remaining timeout. The text
 * form is a few lines per process; the JSON form is an array of
 * {pid, comm, state, stuck, threads:[{tid, name, state, wait, waits_for,
 * syscall, wchan, timeout_ms, released_by:[pid]}]}. */
char *wf_summary_text(struct wf_graph *g);
json_t *wf_summary_json(struct wf_graph *g);

/* Name of a wait kind: "read", "lock", "fifo-open", "stopped", "unclassified"… */
const char *wf_wait_name(enum wf_wait_kind w);
