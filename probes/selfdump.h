#pragma once
/* Self-dump without ptrace: when ptrace is denied (another user, a
 * non-dumpable process, Yama, a container without CAP_SYS_PTRACE), a probed
 * process asked by a signal walks its own threads with libunwind's local
 * unwinder and records raw program counters as `selfdump` events; forkscope
 * symbolizes them afterwards (probes/selfdump_read.h).
 *
 * The thread that receives the process-directed signal coordinates: it
 * records the module map once per dump (executable file mappings from
 * /proc/self/maps with the build-id of each loaded image) and re-signals
 * every other thread with rt_tgsigqueueinfo(), so each walks itself from the
 * interrupted context. Everything in the handler is async-signal-safe: no
 * malloc, no stdio; event buffers come from mmap(2).
 *
 * libunwind is dlopen()ed RTLD_LOCAL when the handler is installed, never
 * linked: libunwind.so exports _Unwind_* and backtrace, which would otherwise
 * interpose the program's own (libgcc_s, glibc) for C++ exceptions. */
#include <stdbool.h>

/* The environment variable that turns the self-dump on in probed programs:
 * a signal name or number, e.g. "SIGRTMIN+3", "RTMIN+3", "SIGUSR2", "45". */
#define SELFDUMP_ENV "FORKSCOPE_SELFDUMP_SIGNAL"
/* What `forkscope watch --selfdump` asks for: SIGRTMIN+3. */
#define SELFDUMP_DEFAULT_SIGNAL "SIGRTMIN+3"
#define SELFDUMP_DEFAULT_RTMIN_OFFSET 3
#define SELFDUMP_MAX_FRAMES 128

/* Signal name or number -> number, or -EINVAL. SIGKILL/SIGSTOP are refused. */
int selfdump_signal_parse(const char *text);

/* Load the unwinder and install the handler for sig (SA_SIGINFO|SA_RESTART).
 * Not async-signal-safe (dlopen): call it at start-up. Returns 0 or -errno;
 * -ENOENT when libunwind cannot be loaded (the handler still records the
 * module map and an error per thread). */
int selfdump_install(int sig);

/* The signal installed by selfdump_install(), 0 if none. */
int selfdump_signal(void);
