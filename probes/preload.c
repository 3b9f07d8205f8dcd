/* libforkscope-probe.so: the probe that `forkscope watch` injects with
 * LD_PRELOAD into any dynamically linked program (docs/events.md).
 *
 * It records what crosses each process boundary of the program's tree:
 * `exec` when an image loads (constructor), `fork` in the parent and
 * `child_start` in the child, `spawn` for posix_spawn, `reaped` for waits,
 * `signal_sent`, `pidfd_open` and `exit`. With FORKSCOPE_SELFDUMP_SIGNAL set
 * it also installs the self-dump handler (probes/selfdump.h). Its fd
 * wrappers (probes/preload_fd.c) follow, in fork children, the numbers that
 * crossed the fork: `fd_close`, `fd_reuse`, `fd_write_sample` (fd-alias).
 *
 * Rules the wrappers keep, so the program behaves as without the probe:
 * - errno is what the real call left, on every path;
 * - the only fd added is the event log, >= EVENTLOG_FD_MIN and CLOEXEC,
 *   reopened by path after exec and when the program closes or reuses it;
 * - code that runs in a forked child before it returns to the program, and
 *   every wrapper (they may be called from signal handlers), is
 *   async-signal-safe: event buffers come from mmap(2), formatting from
 *   util/asfmt, writes are single write(2) calls;
 * - nothing runs in a vfork child: it shares our memory and stack.
 *
 * What glibc 2.36 routes where (checked with nm -D on Debian 12's libc):
 * fork and __fork are one function that runs the atfork handlers and calls
 * _Fork, which is exported too (2.34+) and wrapped for programs that use it
 * directly; glibc-internal calls never pass through the PLT, so posix_spawn,
 * system() and popen() (clone(CLONE_VM|CLONE_VFORK) inside libc) show up only
 * as the posix_spawn wrapper, or not at all. CPython's os.fork() calls fork(),
 * subprocess calls vfork() (3.10+, when it can) or fork(), os.posix_spawn()
 * calls posix_spawn(); os.pidfd_open() and signal.pidfd_send_signal() make
 * raw syscalls and are therefore not seen. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes/census.h"
#include "probes/eventlog.h"
#include "probes/fdtrack.h"
#include "probes/preload_fd.h"
#include "probes/selfdump.h"
#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/signames.h"
#include "util/timeutil.h"

#define PUBLIC __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

/* At most this many argv entries go into exec and spawn events. */
#define ARGV_MAX 32

/* ---- the real functions ---- */

typedef pid_t (*fork_fn)(void);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			char *const[], char *const[]);
typedef pid_t (*wait_fn)(int *);
typedef pid_t (*waitpid_fn)(pid_t, int *, int);
typedef pid_t (*wait4_fn)(pid_t, int *, int, struct rusage *);
typedef int (*waitid_fn)(idtype_t, id_t, siginfo_t *, int);
typedef int (*kill_fn)(pid_t, int);
typedef int (*tgkill_fn)(pid_t, pid_t, int);
typedef int (*pidfd_send_signal_fn)(int, int, siginfo_t *, unsigned int);
typedef int (*pidfd_open_fn)(pid_t, unsigned int);
typedef void (*exit_fn)(int);
typedef int (*main_fn)(int, char **, char **);
typedef int (*start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);

static struct {
	fork_fn fork, __fork, _Fork;
	spawn_fn posix_spawn, posix_spawnp;
	wait_fn wait;
	waitpid_fn waitpid;
	wait4_fn wait4;
	waitid_fn waitid;
	kill_fn kill;
	tgkill_fn tgkill;
	pidfd_send_signal_fn pidfd_send_signal;
	pidfd_open_fn pidfd_open;
	exit_fn exit, _exit, _Exit;
	start_main_fn libc_start_main;
} real;

static main_fn program_main;

/* Interposed names glibc exports but declares in no header. */
PUBLIC pid_t __fork(void);
PUBLIC int __libc_start_main(main_fn main_function, int argc, char **argv, void (*init)(void), void (*fini)(void),
			     void (*rtld_fini)(void), void *stack_end);

/* Resolve on first use too: another library's constructor may call a wrapper
 * before ours ran. dlsym is not async-signal-safe, but after the constructor
 * every pointer is set and this path is never taken. */
#define REAL(name)                                                              \
	(real.name ? real.name : (real.name = (__typeof__(real.name)) dlsym(RTLD_NEXT, #name)))

static void
resolve_all(void)
{
	(void) REAL(fork);
	(void) REAL(__fork);
	(void) REAL(_Fork);
	(void) REAL(posix_spawn);
	(void) REAL(posix_spawnp);
	(void) REAL(wait);
	(void) REAL(waitpid);
	(void) REAL(wait4);
	(void) REAL(waitid);
	(void) REAL(kill);
	(void) REAL(tgkill);
	(void) REAL(pidfd_send_signal);
	(void) REAL(pidfd_open);
	(void) REAL(exit);
	(void) REAL(_exit);
	(void) REAL(_Exit);
}

/* ---- probe state ---- */

static bool active;
static atomic_bool exit_recorded;

/* Per thread, copied into a forked child with the forking thread. */
static TLS bool in_vfork;	   /* between our vfork and its return in the parent */
static TLS bool child_start_due;   /* set around fork(): the child records child_start */
static TLS uint64_t fork_started_ns;
static TLS pid_t fork_parent_tid;
static TLS const char *fork_via;

static bool
probe_on(void)
{
	return active && !in_vfork;
}

bool
preload_fd_paused(void)
{
	return in_vfork;
}

static pid_t
gettid_raw(void)
{
	return (pid_t) syscall(SYS_gettid);
}

static struct event *
event_map(void)
{
	void *p = mmap(NULL, sizeof(struct event), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void
event_unmapp(struct event **e)
{
	if (*e)
		(void) munmap(*e, sizeof(**e));
	*e = NULL;
}

#define _cleanup_event_ __attribute__((cleanup(event_unmapp)))

/* signal_name() formats RT signals with snprintf: not async-signal-safe. */
static void
put_signal(struct event *e, const char *key, int sig)
{
	if (sig > 0 && sig < 32) {
		event_str(e, key, signal_name(sig));
		return;
	}
	char buf[16];
	struct asbuf b = ASBUF_INIT(buf);
	asbuf_puts(&b, "SIG");
	asbuf_i64(&b, sig);
	event_str(e, key, buf);
}

static void
put_wait_status(struct event *e, int status)
{
	if (WIFEXITED(status))
		event_int(e, "code", WEXITSTATUS(status));
	else if (WIFSIGNALED(status)) {
		put_signal(e, "signal", WTERMSIG(status));
		if (WCOREDUMP(status))
			event_bool(e, "core_dumped", true);
	}
	event_int(e, "wstatus", status);
}

static void
put_argv(struct event *e, const char *key, char *const argv[])
{
	event_key(e, key);
	asbuf_putc(&e->b, '[');
	size_t i = 0;
	for (; argv && argv[i] && i < ARGV_MAX; i++) {
		if (i)
			asbuf_putc(&e->b, ',');
		asbuf_json_str(&e->b, argv[i]);
	}
	asbuf_putc(&e->b, ']');
	if (argv && argv[i])
		event_bool(e, "argv_truncated", true);
}

/* ---- exec: the constructor ---- */

static void
emit_exec(int argc, char **argv)
{
	_cleanup_event_ struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "exec");
	event_int(e, "ppid", getppid());
	event_str(e, "argv0", argc > 0 && argv ? argv[0] : NULL);
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n >= 0)
		event_strn(e, "exe", exe, (size_t) n);
	put_argv(e, "argv", argc > 0 ? argv : NULL);
	event_int(e, "threads", census_thread_count());
	int skip[] = { eventlog_fd() };
	(void) census_fds(e, "fds", skip, 1);
	census_stdio(e, "stdio");
	census_signals(e);
	if (selfdump_signal() > 0)
		event_int(e, "selfdump_signal", selfdump_signal());
	(void) event_emit(e);
}

/* ---- fork ---- */

/* The child's first record, before it returns to the program: only
 * async-signal-safe calls (the other threads of the parent are gone, maybe
 * holding locks). */
static void
emit_child_start(void)
{
	_cleanup_event_ struct event *e = event_map();
	uint64_t since = now_ns() - fork_started_ns;
	eventlog_note_fork_time(fork_started_ns);
	fdtrack_after_fork();
	if (!e)
		return;
	event_begin(e, "child_start");
	event_uint(e, "ns_since_fork", since);
	event_bool(e, "exec", false);
	event_str(e, "via", fork_via);
	event_int(e, "ppid", getppid());
	event_int(e, "forking_tid", fork_parent_tid);
	event_int(e, "threads", census_thread_count());
	int skip[] = { eventlog_fd() };
	(void) census_fds(e, "fds", skip, 1);
	census_stdio(e, "stdio");
	census_signals(e);
	(void) event_emit(e);
}

/* pthread_atfork child handler: runs before the program's own child
 * handlers (ours was registered first, from the constructor), so child_start
 * is written even when one of those blocks. */
static void
atfork_child(void)
{
	if (!child_start_due)
		return;
	/* Inside fork(): errno must come out as fork() leaves it. */
	int saved_errno = errno;
	child_start_due = false;
	atomic_store(&exit_recorded, false);
	emit_child_start();
	errno = saved_errno;
}

static pid_t
traced_fork(fork_fn fn, const char *via)
{
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	if (!probe_on())
		return fn();
	/* The parent's event is filled before the fork: the thread list as it
	 * was at the fork, not after. */
	_cleanup_event_ struct event *e = event_map();
	pid_t tid = gettid_raw();
	if (e) {
		event_begin(e, "fork");
		event_str(e, "via", via);
		event_int(e, "forking_tid", tid);
		event_bool(e, "forking_thread_is_main", tid == getpid());
		(void) census_threads(e, "threads");
	}
	fork_started_ns = now_ns();
	fork_parent_tid = tid;
	fork_via = via;
	child_start_due = true;
	pid_t pid = fn();
	int saved_errno = errno;
	if (pid == 0) {
		/* _Fork runs no atfork handlers: record here instead. */
		if (child_start_due) {
			child_start_due = false;
			atomic_store(&exit_recorded, false);
			emit_child_start();
		}
		errno = saved_errno;
		return 0;
	}
	child_start_due = false;
	if (e) {
		event_int(e, "child_pid", pid);
		if (pid < 0)
			event_int(e, "errno", saved_errno);
		(void) event_emit(e);
	}
	errno = saved_errno;
	return pid;
}

PUBLIC pid_t
fork(void)
{
	return traced_fork(REAL(fork), "fork");
}

PUBLIC pid_t
__fork(void)
{
	return traced_fork(REAL(__fork), "fork");
}

PUBLIC pid_t
_Fork(void)
{
	return traced_fork(REAL(_Fork), "_Fork");
}

/* ---- vfork ----
 *
 * A C wrapper cannot call vfork: the child would return through the
 * wrapper's frame and the parent would resume on a clobbered stack. So the
 * x86-64 entry below does what glibc's does (return address kept in a
 * register, raw syscall) and calls into C only in the parent, after the
 * child has exec'ed or exited. On other architectures vfork is not wrapped:
 * the child still shows up through its `exec` event. */
#if defined(__x86_64__)
__attribute__((visibility("hidden"), used)) void probe_vfork_enter(void);
__attribute__((visibility("hidden"), used)) pid_t probe_vfork_parent(pid_t pid);
__attribute__((visibility("hidden"), used)) pid_t probe_vfork_failed(int err);

void
probe_vfork_enter(void)
{
	/* Seen by the child too (same memory, same TLS): every wrapper it may
	 * call (_exit after a failed exec) passes straight through. */
	in_vfork = true;
}

pid_t
probe_vfork_parent(pid_t pid)
{
	int saved_errno = errno;
	in_vfork = false;
	if (active) {
		_cleanup_event_ struct event *e = event_map();
		if (e) {
			pid_t tid = gettid_raw();
			event_begin(e, "fork");
			event_str(e, "via", "vfork");
			event_int(e, "forking_tid", tid);
			event_bool(e, "forking_thread_is_main", tid == getpid());
			(void) census_threads(e, "threads");
			event_int(e, "child_pid", pid);
			(void) event_emit(e);
		}
	}
	errno = saved_errno;
	return pid;
}

pid_t
probe_vfork_failed(int err)
{
	in_vfork = false;
	errno = err;
	return -1;
}

__asm__(".text\n"
	".globl vfork\n"
	".type vfork,@function\n"
	".globl __vfork\n"
	".type __vfork,@function\n"
	"vfork:\n"
	"__vfork:\n"
	"	.cfi_startproc\n"
	"	subq $8, %rsp\n" /* align for the call */
	"	.cfi_adjust_cfa_offset 8\n"
	"	call probe_vfork_enter\n"
	"	addq $8, %rsp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	popq %rdi\n" /* the return address: the child will reuse this slot */
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_register %rip, %rdi\n"
	"	movl $58, %eax\n" /* SYS_vfork */
	"	syscall\n"
	"	pushq %rdi\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_rel_offset %rip, 0\n"
	"	cmpl $-4095, %eax\n"
	"	jae 2f\n"
	"	testl %eax, %eax\n"
	"	jz 1f\n" /* the child: back to the program at once */
	"	pushq %rax\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	movl %eax, %edi\n"
	"	call probe_vfork_parent\n"
	"	popq %rcx\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"1:	ret\n"
	"2:	negl %eax\n"
	"	subq $8, %rsp\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	movl %eax, %edi\n"
	"	call probe_vfork_failed\n"
	"	addq $8, %rsp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	ret\n"
	"	.cfi_endproc\n"
	".size vfork, .-vfork\n"
	".size __vfork, .-__vfork\n");
#endif

/* ---- posix_spawn ---- */

static int
traced_spawn(spawn_fn fn, const char *via, pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
	     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (!fn)
		return ENOSYS;
	pid_t child = -1;
	int r = fn(&child, path, actions, attr, argv, envp);
	int saved_errno = errno;
	if (r == 0 && pid)
		*pid = child;
	if (probe_on()) {
		_cleanup_event_ struct event *e = event_map();
		if (e) {
			pid_t tid = gettid_raw();
			event_begin(e, "spawn");
			event_str(e, "via", via);
			if (r == 0)
				event_int(e, "child_pid", child);
			else
				event_int(e, "errno", r);
			event_str(e, "path", path);
			put_argv(e, "argv", argv);
			event_int(e, "forking_tid", tid);
			event_bool(e, "forking_thread_is_main", tid == getpid());
			(void) event_emit(e);
		}
	}
	errno = saved_errno;
	return r;
}

PUBLIC int
posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attr,
	    char *const argv[], char *const envp[])
{
	return traced_spawn(REAL(posix_spawn), "posix_spawn", pid, path, actions, attr, argv, envp);
}

PUBLIC int
posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
	     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return traced_spawn(REAL(posix_spawnp), "posix_spawnp", pid, file, actions, attr, argv, envp);
}

/* ---- waits ---- */

static void
emit_reaped(pid_t child, int status, const char *via)
{
	/* Stops and continues are not ends. */
	if (!WIFEXITED(status) && !WIFSIGNALED(status))
		return;
	_cleanup_event_ struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "reaped");
	event_str(e, "via", via);
	event_int(e, "child_pid", child);
	put_wait_status(e, status);
	(void) event_emit(e);
}

PUBLIC pid_t
wait(int *status)
{
	wait_fn fn = REAL(wait);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	int st = 0;
	pid_t r = fn(&st);
	int saved_errno = errno;
	if (r > 0 && status)
		*status = st;
	if (r > 0 && probe_on())
		emit_reaped(r, st, "wait");
	errno = saved_errno;
	return r;
}

PUBLIC pid_t
waitpid(pid_t pid, int *status, int options)
{
	waitpid_fn fn = REAL(waitpid);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	int st = 0;
	pid_t r = fn(pid, &st, options);
	int saved_errno = errno;
	/* The kernel writes the status only for a pid it reports. */
	if (r > 0 && status)
		*status = st;
	if (r > 0 && probe_on())
		emit_reaped(r, st, "waitpid");
	errno = saved_errno;
	return r;
}

PUBLIC pid_t
wait4(pid_t pid, int *status, int options, struct rusage *usage)
{
	wait4_fn fn = REAL(wait4);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	int st = 0;
	pid_t r = fn(pid, &st, options, usage);
	int saved_errno = errno;
	if (r > 0 && status)
		*status = st;
	if (r > 0 && probe_on())
		emit_reaped(r, st, "wait4");
	errno = saved_errno;
	return r;
}

PUBLIC int
waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	waitid_fn fn = REAL(waitid);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	siginfo_t local;
	siginfo_t *si = info ? info : &local;
	if (!info)
		memset(&local, 0, sizeof(local));
	int r = fn(idtype, id, si, options);
	int saved_errno = errno;
	/* WNOWAIT leaves the child waitable: not reaped yet. */
	if (r == 0 && probe_on() && si->si_pid > 0 && !(options & WNOWAIT) &&
	    (si->si_code == CLD_EXITED || si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)) {
		int st = si->si_code == CLD_EXITED ? (si->si_status & 0xff) << 8
						    : (si->si_status & 0x7f) | (si->si_code == CLD_DUMPED ? 0x80 : 0);
		emit_reaped(si->si_pid, st, "waitid");
	}
	errno = saved_errno;
	return r;
}

/* ---- signals ---- */

static void
emit_signal_sent(const char *via, pid_t target, pid_t tid, int sig, int result_errno, bool before)
{
	_cleanup_event_ struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "signal_sent");
	event_str(e, "via", via);
	event_int(e, "target_pid", target);
	if (tid > 0)
		event_int(e, "target_tid", tid);
	if (target <= 0 && tid <= 0)
		event_bool(e, "group", true);
	put_signal(e, "signal", sig);
	if (result_errno)
		event_int(e, "errno", result_errno);
	if (before)
		event_bool(e, "before_call", true);
	(void) event_emit(e);
}

/* A signal that may end the caller is recorded before it is sent. */
static bool
may_hit_self(pid_t target)
{
	return target == getpid() || target == 0 || target == -1 || target == -getpgrp();
}

PUBLIC int
kill(pid_t pid, int sig)
{
	kill_fn fn = REAL(kill);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	/* Signal 0 only asks whether pid exists: liveness polls would flood the log. */
	if (!probe_on() || sig == 0)
		return fn(pid, sig);
	bool before = may_hit_self(pid);
	if (before)
		emit_signal_sent("kill", pid, 0, sig, 0, true);
	int r = fn(pid, sig);
	int saved_errno = errno;
	if (!before)
		emit_signal_sent("kill", pid, 0, sig, r < 0 ? saved_errno : 0, false);
	errno = saved_errno;
	return r;
}

PUBLIC int
tgkill(pid_t tgid, pid_t tid, int sig)
{
	tgkill_fn fn = REAL(tgkill);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	if (!probe_on() || sig == 0)
		return fn(tgid, tid, sig);
	bool before = tgid == getpid();
	if (before)
		emit_signal_sent("tgkill", tgid, tid, sig, 0, true);
	int r = fn(tgid, tid, sig);
	int saved_errno = errno;
	if (!before)
		emit_signal_sent("tgkill", tgid, tid, sig, r < 0 ? saved_errno : 0, false);
	errno = saved_errno;
	return r;
}

/* The pid behind a pidfd, from "Pid:\t123" in its fdinfo; -1 when gone. */
static pid_t
pidfd_target(int pidfd)
{
	char path[64], buf[512];
	struct asbuf p = ASBUF_INIT(path);
	asbuf_puts(&p, "/proc/self/fdinfo/");
	asbuf_i64(&p, pidfd);
	if (read_file_into(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *s = strstr(buf, "Pid:");
	if (!s)
		return 0;
	s += 4;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '-')
		return -1;
	uint64_t v;
	return as_parse_u64(s, &v) ? (pid_t) v : 0;
}

PUBLIC int
pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags)
{
	pidfd_send_signal_fn fn = REAL(pidfd_send_signal);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	if (!probe_on() || sig == 0)
		return fn(pidfd, sig, info, flags);
	pid_t target = pidfd_target(pidfd);
	bool before = target == getpid();
	if (before)
		emit_signal_sent("pidfd_send_signal", target, 0, sig, 0, true);
	int r = fn(pidfd, sig, info, flags);
	int saved_errno = errno;
	if (!before)
		emit_signal_sent("pidfd_send_signal", target, 0, sig, r < 0 ? saved_errno : 0, false);
	errno = saved_errno;
	return r;
}

PUBLIC int
pidfd_open(pid_t pid, unsigned int flags)
{
	pidfd_open_fn fn = REAL(pidfd_open);
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	int r = fn(pid, flags);
	int saved_errno = errno;
	preload_fd_created(r, "pidfd_open", __builtin_return_address(0));
	if (probe_on()) {
		_cleanup_event_ struct event *e = event_map();
		if (e) {
			event_begin(e, "pidfd_open");
			event_int(e, "target_pid", pid);
			if (r >= 0)
				event_int(e, "fd", r);
			else
				event_int(e, "errno", saved_errno);
			(void) event_emit(e);
		}
	}
	errno = saved_errno;
	return r;
}

/* ---- exit ---- */

static void
emit_exit(int status, const char *via)
{
	if (!probe_on() || atomic_exchange(&exit_recorded, true))
		return;
	_cleanup_event_ struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "exit");
	event_int(e, "code", status & 0xff);
	if ((status & 0xff) != status)
		event_int(e, "status", status);
	event_str(e, "via", via);
	event_int(e, "threads", census_thread_count());
	(void) event_emit(e);
}

PUBLIC void
exit(int status)
{
	int saved_errno = errno;
	emit_exit(status, "exit");
	errno = saved_errno;
	exit_fn fn = REAL(exit);
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

PUBLIC void
_exit(int status)
{
	int saved_errno = errno;
	emit_exit(status, "_exit");
	errno = saved_errno;
	exit_fn fn = REAL(_exit);
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

PUBLIC void
_Exit(int status)
{
	int saved_errno = errno;
	emit_exit(status, "_Exit");
	errno = saved_errno;
	exit_fn fn = REAL(_Exit);
	if (fn)
		fn(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

/* A return from main reaches exit() inside libc, past any PLT: wrap main
 * itself to learn its status. */
static int
probe_main(int argc, char **argv, char **envp)
{
	int r = program_main(argc, argv, envp);
	int saved_errno = errno;
	emit_exit(r, "main");
	errno = saved_errno;
	return r;
}

PUBLIC int
__libc_start_main(main_fn main_function, int argc, char **argv, void (*init)(void), void (*fini)(void),
		  void (*rtld_fini)(void), void *stack_end)
{
	start_main_fn fn = real.libc_start_main;
	if (!fn)
		fn = real.libc_start_main = (start_main_fn) dlsym(RTLD_NEXT, "__libc_start_main");
	program_main = main_function;
	return fn(program_main ? probe_main : main_function, argc, argv, init, fini, rtld_fini, stack_end);
}

/* ---- load ---- */

__attribute__((constructor)) static void
probe_init(int argc, char **argv, char **envp)
{
	int saved_errno = errno;
	resolve_all();
	preload_fd_init();
	real.libc_start_main = (start_main_fn) dlsym(RTLD_NEXT, "__libc_start_main");
	const char *path = getenv("FORKSCOPE_EVENTS");
	if (path && *path && eventlog_open(path) == 0) {
		active = true;
		fdtrack_init();
		(void) pthread_atfork(NULL, NULL, atfork_child);
		const char *sd = getenv(SELFDUMP_ENV);
		int sig = sd && *sd ? selfdump_signal_parse(sd) : -EINVAL;
		if (sig > 0)
			(void) selfdump_install(sig);
		emit_exec(argc, argv);
	}
	errno = saved_errno;
}
