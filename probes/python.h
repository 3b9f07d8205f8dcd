#pragma once
/* Python frames of live CPython processes, read out of process (issue 9).
 *
 * The interpreter is found through the ELF symbol `_PyRuntime` (dynsym or
 * symtab) in the main executable or a mapped libpython3.X.so, relocated by the
 * load bias from /proc/PID/maps. Memory is read with process_vm_readv, or
 * /proc/PID/mem where that is refused. Layouts:
 *   - CPython 3.13 and newer: the `_Py_DebugOffsets` the interpreter publishes
 *     at the start of `_PyRuntime` (cookie "xdebugpy");
 *   - CPython 3.11 and 3.12: one table of version layouts in python.c;
 *   - anything else (2.x, 3.10 and older, PyPy, free-threaded builds): no
 *     frames, `unsupported_reason` says why.
 * docs/python.md has the offsets and where each number comes from.
 *
 * Nothing here stops the target. Called from stacks_capture()'s while_frozen
 * hook the image is consistent; called on its own, the threads keep running
 * and a stack that changed while it was read is returned marked partial.
 * Every loop is bounded (interpreters, threads, frames, string and line-table
 * sizes) and frame chains are checked for cycles: a target that exits or
 * scribbles over itself gives a partial result, never a crash or a hang. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "probes/stacks.h"

struct py_frame {
	char *function; /* co_name */
	char *qualname; /* co_qualname, e.g. "Lock.acquire" or "<module>" */
	char *file;	/* co_filename as the target sees it */
	int line;	/* 0 when the location table has none for the instruction */
	bool entry;	/* outermost Python frame of one _PyEval_EvalFrameDefault call */
};

struct py_thread {
	pid_t tid;		 /* OS thread (PyThreadState.native_thread_id); 0 if unmatched */
	unsigned long thread_id; /* threading.get_ident(): the pthread_t */
	char *name; /* threading.Thread name (3.11/3.12); NULL where not read */
	struct py_frame *frames; /* innermost first */
	size_t n_frames;
	bool partial; /* frame chain cut: unreadable memory, cycle, limit, torn read */
	char *error;  /* why partial, NULL otherwise */
};

struct py_process {
	pid_t pid;
	char *version; /* "3.11.2"; NULL when not even that could be read */
	char *module;  /* file holding _PyRuntime: "python3.11", "libpython3.11.so.1.0" */
	struct py_thread *threads; /* newest Python thread first, as the interpreter lists them */
	size_t n;
	char *unsupported_reason; /* set, with n == 0, for interpreters not read */
	bool partial;		  /* some thread partial, or the thread list was cut */
	char *error;		  /* why partial at the process level, else NULL */
};

struct python_read_options {
	/* The caller froze every thread (stacks while_frozen): skip the
	 * re-read that detects stacks changing under the reader. */
	bool frozen;
	unsigned max_frames;  /* per thread; 0 = 256 */
	unsigned max_threads; /* per process; 0 = 1024 */
};

/* Read every thread's Python frames. Returns 0 with *ret set (possibly
 * partial, or with unsupported_reason for interpreters it cannot read),
 * -ENOENT when pid is no Python process, -ESRCH when it is gone, -EPERM when
 * its memory may not be read, -ENOMEM. opts may be NULL. */
int python_read(pid_t pid, struct py_process **ret);
int python_read_with(pid_t pid, const struct python_read_options *opts, struct py_process **ret);

void py_process_free(struct py_process *py);

/* Interleave py's frames into native stacks of the same process (as
 * stacks_capture returns them): each Python frame becomes an entry of its
 * own, inserted just before (i.e. innermost of) the native
 * `_PyEval_EvalFrameDefault` frame that runs it, matched per thread by tid.
 * Such an entry has pc 0, function and module NULL, file/line the Python
 * source, and python = "qualname (file:line)", the text rules match
 * (docs/rules.md). Python frames of segments without a matching native eval
 * frame (native unwind cut short, no symbols) are appended outermost. A
 * thread whose Python stack is partial gets partial set, its error appended.
 * Returns the number of Python frames attached, or -ENOMEM (the stacks are
 * then left as they were). */
int python_attach_frames(const struct py_process *py, struct thread_stack *threads, size_t n);

/* A stacks_frozen_fn: python_read (frozen) + python_attach_frames, for
 * stacks_options.while_frozen. userdata may be NULL, or a
 * `struct py_process **` that receives the read (the caller frees it with
 * py_process_free; NULL when the process is no Python or could not be read).
 * Errors are not fatal to the native capture: the stacks stay native only. */
void python_stacks_frozen(pid_t pid, struct thread_stack *threads, size_t n_threads,
			  void *userdata);

/* JSON form for `forkscope triage --json`:
 * {"pid", "version", "module", "partial", "error", "unsupported_reason",
 *  "threads": [{"tid", "thread_id", "name", "partial", "error",
 *               "frames": [{"function", "qualname", "file", "line", "entry"}]}]}
 * NULL on allocation failure. */
json_t *python_process_to_json(const struct py_process *py);

/* The "qualname (file:line)" text of one frame, malloc'ed; NULL on ENOMEM. */
char *py_frame_text(const struct py_frame *f);
