#pragma once
/* Native stacks of live processes through libdw/libdwfl, and symbolization of
 * raw program counters recorded by the in-process self-dump (libunwind).
 *
 * Threads of one process are frozen together (PTRACE_SEIZE + PTRACE_INTERRUPT
 * on every tid), unwound, and always detached again, also when forkscope is
 * interrupted. ELF/DWARF state is cached per build-id in a struct stack_cache
 * and reused across the processes of a tree: forked children map the same
 * files at the same addresses. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct frame {
	uint64_t pc;
	char *function; /* demangled symbol, NULL if unknown */
	uint64_t offset; /* pc - symbol start */
	char *module;	 /* basename of the mapped file, NULL if unknown */
	char *file;	 /* source file where debuginfo exists, else NULL */
	int line;	 /* 0 if unknown */
	bool inlined;	 /* an inlined call site expanded from the frame below */
	char *python;	 /* filled by the Python reader (issue 9): "func (file.py:12)", else NULL */
};

struct thread_stack {
	pid_t tid;
	struct frame *frames;
	size_t n_frames;
	bool partial;	/* unwinding stopped early (error, max depth, thread vanished) */
	char *error;	/* why it is partial or empty, NULL otherwise */
};

struct stack_cache;

/* Not thread-safe: one capture or symbolization at a time per cache. */
struct stack_cache *stack_cache_new(void);
void stack_cache_free(struct stack_cache *cache);

/* Counters for benchmarks and tests: how much the cache saved. */
struct stack_cache_stats {
	unsigned layouts_created;  /* Dwfl sessions built: one per distinct module layout */
	unsigned layouts_reused;   /* captures served by an existing session */
	unsigned symbols_resolved; /* program counters symbolized through libdw */
	unsigned symbols_cached;   /* program counters answered from the cache */
};

void stack_cache_get_stats(const struct stack_cache *cache, struct stack_cache_stats *ret);

/* Called with every thread of pid still frozen, after the native unwind, so
 * out-of-process readers (e.g. Python frames) see a consistent image. It runs
 * on the short-lived thread that holds the ptrace attachments (the tracer),
 * with every signal blocked; threads and frames are those later returned. */
typedef void (*stacks_frozen_fn)(pid_t pid, struct thread_stack *threads, size_t n_threads,
				 void *userdata);

struct stacks_options {
	unsigned max_frames;	  /* default 64 */
	bool symbolize_lines;	  /* file:line through DWARF (slower); default true */
	stacks_frozen_fn while_frozen;
	void *userdata;
};

/* Freeze, unwind every thread, detach. Returns 0 with *ret filled (possibly
 * partial per thread), or -errno with *ret_reason (malloc'ed) saying why no
 * stack could be taken, e.g. "ptrace: Operation not permitted (not the same
 * user, or kernel.yama.ptrace_scope)". opts may be NULL for the defaults;
 * max_frames 0 means the default. -EPERM: ptrace denied; -ESRCH: gone or a
 * zombie; -ETIMEDOUT: no thread reached its stop (uninterruptible sleep);
 * -EINVAL: pid is the calling process. ret_reason may be NULL. */
int stacks_capture(struct stack_cache *cache, pid_t pid, const struct stacks_options *opts,
		   struct thread_stack **ret, size_t *ret_n, char **ret_reason);

void thread_stacks_free(struct thread_stack *threads, size_t n);

/* What stands between us and PTRACE_SEIZE of a process, as far as /proc
 * tells: asked after an EPERM, for a reason a program can act on
 * (docs/stacks.md "When ptrace is refused"). */
enum ptrace_obstacle_kind {
	PTRACE_OBSTACLE_UNKNOWN,       /* nothing visible: a security module, seccomp? */
	PTRACE_OBSTACLE_KERNEL_THREAD, /* PF_KTHREAD: no user space; nobody may trace it */
	PTRACE_OBSTACLE_TRACED,	       /* TracerPid != 0: one tracer at a time, root too */
	PTRACE_OBSTACLE_OTHER_USER,    /* uid/gid differ and we lack CAP_SYS_PTRACE */
	PTRACE_OBSTACLE_NOT_DUMPABLE,  /* PR_SET_DUMPABLE 0 or set[ug]id, and we lack CAP_SYS_PTRACE */
	PTRACE_OBSTACLE_PTRACE_SCOPE,  /* kernel.yama.ptrace_scope forbids it */
};

struct ptrace_obstacle {
	enum ptrace_obstacle_kind kind;
	pid_t tracer;	  /* PTRACE_OBSTACLE_TRACED: the tracer's pid */
	int ptrace_scope; /* kernel.yama.ptrace_scope, -1 when there is no Yama */
};

/* The first obstacle in the order of the enum (kernel thread first: nothing
 * else matters then). Returns 0, -ESRCH when pid is gone, or -errno. */
int stacks_ptrace_obstacle(pid_t pid, struct ptrace_obstacle *ret);
/* "kernel-thread", "traced", "other-user", "not-dumpable", "ptrace-scope",
 * "unknown": the `cause` of a snapshot gap. */
const char *ptrace_obstacle_name(enum ptrace_obstacle_kind kind);

/* A module as recorded by a process about itself (self-dump without ptrace). */
struct raw_module {
	uint64_t start, end; /* mapped address range */
	uint64_t offset;     /* file offset of the mapping */
	char *path;
	char *build_id;	     /* hex, may be NULL */
};

/* Symbolize raw program counters against a recorded module map, one frame
 * per pc (no inline expansion: the frame names the function the pc is in).
 * As unwinders report them, pcs[0] is taken as an exact pc and every later
 * one as a return address, looked up at pc - 1. A module whose file cannot
 * be opened or whose build-id differs from the recorded one leaves its frames
 * with module set and function NULL. */
int stacks_symbolize(struct stack_cache *cache, const struct raw_module *modules, size_t n_modules,
		     const uint64_t *pcs, size_t n_pcs, struct frame **ret_frames);

void frames_free(struct frame *frames, size_t n);
