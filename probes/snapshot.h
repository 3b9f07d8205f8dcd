#pragma once
/* Out-of-process snapshot of a live process tree: the raw facts the wait-for
 * graph and the verdicts are computed from (docs/snapshot.md documents every
 * field and its JSON form).
 *
 * Nothing here interprets: a thread's syscall, wchan and timeout, an fd's
 * inode and access mode, a pipe's fill, a socket's peer, a futex word and the
 * owner tid next to it are recorded as read. Reading never kills, never
 * leaves a process stopped or traced, and never opens a pipe's write end.
 * A process that vanishes or cannot be read yields a record marked partial
 * with the reason, never an error of the whole snapshot. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/futex.h"
#include "probes/pipes.h"
#include "probes/procfs.h"
#include "probes/python.h"
#include "probes/sockdiag.h"
#include "probes/stacks.h"
#include "probes/waitfacts.h"

#define SNAPSHOT_SCHEMA_VERSION 1

struct snapshot_options {
	bool descendants;	     /* include all descendants of the roots; default true */
	pid_t subreaper;	     /* > 0: also every process whose ppid is this one */
	pid_t pgid;		     /* > 0: also every process of this process group */
	pid_t sid;		     /* > 0: also every process of this session */
	uint64_t sample_interval_ns; /* between the two samples; default 100 ms, 0 = back to back */
	unsigned syscall_samples;    /* ptrace samples per running thread; default 10, 0 = none */
	bool stacks;		     /* native stacks through probes/stacks.h; default true */
	bool python;		     /* CPython frames (probes/python.h), read while frozen; default true */
	struct stack_cache *stack_cache; /* shared cache; NULL = one for this snapshot */
	unsigned max_frames;		 /* passed to stacks_capture; 0 = its default */
	size_t max_processes; /* default 4096; beyond it the snapshot is marked truncated */
};

/* Defaults as documented above. snapshot_take(…, NULL, …) uses them too. */
void snapshot_options_init(struct snapshot_options *opts);

/* How a process came into the snapshot (bit set). */
enum {
	SNAPSHOT_VIA_ROOT = 1u << 0,
	SNAPSHOT_VIA_CHILDREN = 1u << 1, /* /proc/PID/task/ * /children */
	SNAPSHOT_VIA_PPID = 1u << 2,	 /* /proc scan: ppid is in the snapshot */
	SNAPSHOT_VIA_SUBREAPER = 1u << 3,
	SNAPSHOT_VIA_PGID = 1u << 4,
	SNAPSHOT_VIA_SID = 1u << 5,
};

/* The cheap per-thread state taken twice, sample_interval_ns apart. */
struct snapshot_thread_sample {
	bool valid;	/* false: thread gone or unreadable at that sample */
	uint64_t at_ns; /* CLOCK_MONOTONIC */
	char state;	/* from /proc/TID/stat */
	uint64_t utime; /* clock ticks */
	uint64_t stime;
	uint64_t voluntary_ctxt_switches;
	uint64_t nonvoluntary_ctxt_switches;
	struct proc_syscall syscall; /* kind UNKNOWN when unreadable */
};

/* What a ptrace sample of a running thread caught. */
enum syscall_sample_kind {
	SYSCALL_SAMPLE_SYSCALL = 0, /* entered syscall nr with arg0; result on exit */
	SYSCALL_SAMPLE_USER = 1,    /* no syscall within the sampling window: user-space spin */
};

struct syscall_histogram_entry {
	enum syscall_sample_kind kind;
	long nr;
	uint64_t arg0;	/* first argument (the fd for read/recvfrom/...) */
	int64_t result; /* return value of the last sample with this key */
	bool has_result;
	unsigned count;
};

struct snapshot_thread {
	pid_t tid;
	char *name;  /* comm of the thread */
	char state;  /* /proc/TID/stat at the first sample */
	char *wchan; /* "" when not sleeping or hidden */
	struct proc_syscall syscall;
	struct syscall_wait wait; /* decoded syscall: fd, wait pid, timeout, futex op */
	struct wait_fd *wait_fds; /* poll/ppoll/select fds read from memory */
	size_t n_wait_fds;
	uint64_t sig_pending; /* SigPnd of this thread */
	uint64_t sig_blocked; /* SigBlk of this thread */
	uint64_t utime, stime;
	uint64_t voluntary_ctxt_switches, nonvoluntary_ctxt_switches;
	struct snapshot_thread_sample samples[2];
	/* Quick ptrace samples of a thread that was running (state R). */
	unsigned n_syscall_samples;		   /* samples taken */
	struct syscall_histogram_entry *histogram; /* by count, most first */
	size_t n_histogram;
	char *sampling_error; /* why sampling stopped early, or NULL */
	bool has_futex;
	struct futex_info futex;
	char *wait_path; /* open()/openat() in progress: the path (a FIFO without partner) */
	const struct thread_stack *stack; /* into the process' stacks, or NULL */
	bool partial;
	char *partial_reason;
};

struct snapshot_fd {
	int fd;
	char *target; /* readlink of /proc/PID/fd/N */
	enum fd_kind kind;
	uint64_t ino;	 /* inode: from the link for pipe/socket, else fdinfo ino */
	bool deleted;	 /* a file whose target ends in " (deleted)" */
	bool has_fdinfo; /* fdinfo could be read */
	uint32_t flags;	 /* fdinfo flags (octal there) */
	int access;	 /* flags & O_ACCMODE: O_RDONLY, O_WRONLY, O_RDWR */
	bool nonblock;
	bool cloexec;
	int64_t pos;
	int mnt_id;
	/* kind-specific */
	struct epoll_target *epoll_targets;
	size_t n_epoll_targets;
	pid_t pidfd_pid; /* pidfd: the process it refers to (-1 gone) */
	uint64_t eventfd_count;
	uint64_t signalfd_mask;
	int timerfd_clockid;
	int64_t timerfd_value_ns; /* remaining until expiry, 0 disarmed */
	int64_t timerfd_interval_ns;
	uint64_t timerfd_ticks;
	bool has_pipe_fill;
	struct pipe_fill pipe_fill; /* pipes: bytes queued / capacity */
	char *pipe_fill_error;
	char *sock_protocol; /* sockets: "UNIX-STREAM", "TCP", ... (xattr system.sockprotoname) */
	bool has_unix;
	struct unix_sock_info unix_sock; /* joined from sock_diag by inode */
	bool has_inet;
	struct inet_sock_info inet_sock;
	struct fd_lock *locks; /* file locks held through this fd (fdinfo lock: lines) */
	size_t n_locks;
	char *error; /* why part of this fd could not be read */
};

/* One thing the snapshot could not read about a process, and why: the fact
 * behind the English of partial_reason and stacks_error, for programs
 * (docs/snapshot.md "Gaps"). */
struct snapshot_gap {
	char *what;   /* "stacks", "status", "fd table", "fdinfo", "thread", ... */
	int err;      /* errno (positive); 0 when the cause is no errno */
	char *cause;  /* NULL, or finer: a ptrace_obstacle_name() for stacks,
		       * "pid-reused", "exited" */
	pid_t tid;    /* the thread concerned; 0: the process */
	pid_t tracer; /* cause "traced": the tracer */
	char *detail; /* NULL, or more: "fd 7", the stacks reason */
};

/* How a gap came about, for a reader that must word it or act on it. */
enum snapshot_gap_kind {
	SNAPSHOT_GAP_OTHER,
	SNAPSHOT_GAP_GONE,	    /* the process or thread went away meanwhile */
	SNAPSHOT_GAP_DENIED,	    /* permission: root or CAP_SYS_PTRACE would read it */
	SNAPSHOT_GAP_TRACED,	    /* ptrace: another tracer holds it */
	SNAPSHOT_GAP_KERNEL_THREAD, /* ptrace: a kernel thread, nothing to read */
};

/* From the errno (positive) and the cause (may be NULL). */
enum snapshot_gap_kind snapshot_gap_classify(int err, const char *cause);
/* A gap object of snapshot.json ("errno" and "cause"). */
enum snapshot_gap_kind snapshot_gap_kind(const json_t *gap);
/* "other", "gone", "denied", "traced", "kernel-thread". */
const char *snapshot_gap_kind_name(enum snapshot_gap_kind kind);

/* The gaps of one process object of snapshot.json, counted by kind. A
 * snapshot older than the gaps has none: n is then 0. */
struct snapshot_gap_summary {
	size_t n;
	size_t by_kind[SNAPSHOT_GAP_KERNEL_THREAD + 1];
	bool stacks; /* one of them is about stacks */
};
void snapshot_process_gap_summary(const json_t *process, struct snapshot_gap_summary *ret);

struct snapshot_process {
	pid_t pid;
	pid_t ppid;
	pid_t pgid;
	pid_t sid;
	int tty_nr;
	uid_t uid, euid;
	gid_t gid, egid;
	char *comm;
	char **argv; /* NULL-terminated; empty for zombies and kernel threads */
	size_t argc;
	char *exe;  /* NULL when unreadable (zombie, other user) */
	char state; /* of the thread-group leader */
	bool zombie;
	bool stopped;	/* some thread in T (job control) or t (ptrace) */
	bool is_traced; /* TracerPid != 0 */
	pid_t tracer_pid;
	bool orphan_hint;      /* ppid is 1 or the subreaper, and not a root */
	unsigned found_via;    /* SNAPSHOT_VIA_* */
	uint64_t starttime;    /* clock ticks after boot: with pid, the identity */
	uint64_t utime, stime; /* whole process at the first sample */
	int64_t num_threads;
	/* signals: ShdPnd is process-wide, SigPnd/SigBlk are per thread */
	uint64_t shd_pending;
	uint64_t sig_ignored;
	uint64_t sig_caught;
	uint64_t sigq_queued, sigq_limit;
	bool has_io[2];
	struct proc_io io[2]; /* at the two samples; often unreadable for other users */
	struct snapshot_thread *threads;
	size_t n_threads;
	struct snapshot_fd *fds;
	size_t n_fds;
	struct thread_stack *stacks; /* owned, from stacks_capture */
	size_t n_stacks;
	char *stacks_error;
	struct py_process *python; /* CPython frames and version, NULL when not Python */
	bool partial;
	char *partial_reason; /* "; "-separated reasons */
	struct snapshot_gap *gaps; /* each (what, errno, cause, tid) once */
	size_t n_gaps;
};

struct snapshot {
	int schema_version;
	uint64_t started_ns; /* CLOCK_MONOTONIC */
	uint64_t finished_ns;
	uint64_t duration_ns;
	uint64_t sample_interval_ns;
	long clock_ticks; /* sysconf(_SC_CLK_TCK): utime/stime unit */
	pid_t taken_by;	  /* pid of the snapshotting process */
	char *kernel;	  /* uname release: wchan names depend on it */
	pid_t *roots;
	size_t n_roots;
	pid_t subreaper, pgid, sid;	    /* the options used */
	bool truncated;			    /* max_processes reached */
	char *sockdiag_error;		    /* NULL when the sock_diag dump worked */
	struct snapshot_process *processes; /* sorted by pid */
	size_t n_processes;
};

/* Take a snapshot of roots (n >= 1) and, per options, their descendants and
 * adopted/grouped processes. Returns 0 or -errno only for failures of the
 * snapshot itself (no memory, no /proc, no live process found at all: -ESRCH).
 *
 * Ptrace sampling and stacks make the calling thread a short-lived tracer.
 * Ptrace stops are reported to every thread of the caller: another thread
 * calling waitpid(-1)/wait() meanwhile may steal them (the sample is then
 * lost, never the target). Waiting by pid or pidfd is safe. The caller's own
 * children keep their exit status for the caller even if they die while
 * sampled. */
int snapshot_take(const pid_t *roots, size_t n, const struct snapshot_options *opts,
		  struct snapshot **ret);
void snapshot_free(struct snapshot *snap);

const struct snapshot_process *snapshot_find_process(const struct snapshot *snap, pid_t pid);
const struct snapshot_thread *snapshot_find_thread(const struct snapshot_process *proc, pid_t tid);
const struct snapshot_fd *snapshot_find_fd(const struct snapshot_process *proc, int fd);

/* JSON form (lossless): snapshot_from_json(snapshot_to_json(s)) equals s. */
json_t *snapshot_to_json(const struct snapshot *snap);
/* Returns 0, -EINVAL on a document that is not a snapshot, -ENOMEM. */
int snapshot_from_json(const json_t *doc, struct snapshot **ret);
