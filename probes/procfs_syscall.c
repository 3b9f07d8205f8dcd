#include "probes/procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/macro.h"
#include "probes/procfs_internal.h"

/* ---- syscall names ---- */

struct syscall_entry {
	long nr;
	const char *name;
};

/* Built from SYS_* of the target architecture: names are the same on x86_64
 * and aarch64, numbers are not (aarch64 has no poll/select/pause). */
static const struct syscall_entry syscall_table[] = {
#ifdef SYS_read
    {SYS_read, "read"},
#endif
#ifdef SYS_write
    {SYS_write, "write"},
#endif
#ifdef SYS_open
    {SYS_open, "open"},
#endif
#ifdef SYS_close
    {SYS_close, "close"},
#endif
#ifdef SYS_poll
    {SYS_poll, "poll"},
#endif
#ifdef SYS_select
    {SYS_select, "select"},
#endif
#ifdef SYS_pselect6
    {SYS_pselect6, "pselect6"},
#endif
#ifdef SYS_ppoll
    {SYS_ppoll, "ppoll"},
#endif
#ifdef SYS_epoll_wait
    {SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_epoll_pwait
    {SYS_epoll_pwait, "epoll_pwait"},
#endif
#ifdef SYS_epoll_pwait2
    {SYS_epoll_pwait2, "epoll_pwait2"},
#endif
#ifdef SYS_epoll_ctl
    {SYS_epoll_ctl, "epoll_ctl"},
#endif
#ifdef SYS_futex
    {SYS_futex, "futex"},
#endif
#ifdef SYS_futex_waitv
    {SYS_futex_waitv, "futex_waitv"},
#endif
#ifdef SYS_wait4
    {SYS_wait4, "wait4"},
#endif
#ifdef SYS_waitid
    {SYS_waitid, "waitid"},
#endif
#ifdef SYS_nanosleep
    {SYS_nanosleep, "nanosleep"},
#endif
#ifdef SYS_clock_nanosleep
    {SYS_clock_nanosleep, "clock_nanosleep"},
#endif
#ifdef SYS_accept
    {SYS_accept, "accept"},
#endif
#ifdef SYS_accept4
    {SYS_accept4, "accept4"},
#endif
#ifdef SYS_connect
    {SYS_connect, "connect"},
#endif
#ifdef SYS_pause
    {SYS_pause, "pause"},
#endif
#ifdef SYS_rt_sigsuspend
    {SYS_rt_sigsuspend, "rt_sigsuspend"},
#endif
#ifdef SYS_rt_sigtimedwait
    {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
#endif
#ifdef SYS_rt_sigreturn
    {SYS_rt_sigreturn, "rt_sigreturn"},
#endif
#ifdef SYS_flock
    {SYS_flock, "flock"},
#endif
#ifdef SYS_fcntl
    {SYS_fcntl, "fcntl"},
#endif
#ifdef SYS_pidfd_open
    {SYS_pidfd_open, "pidfd_open"},
#endif
#ifdef SYS_pidfd_send_signal
    {SYS_pidfd_send_signal, "pidfd_send_signal"},
#endif
#ifdef SYS_recvfrom
    {SYS_recvfrom, "recvfrom"},
#endif
#ifdef SYS_sendto
    {SYS_sendto, "sendto"},
#endif
#ifdef SYS_recvmsg
    {SYS_recvmsg, "recvmsg"},
#endif
#ifdef SYS_sendmsg
    {SYS_sendmsg, "sendmsg"},
#endif
#ifdef SYS_recvmmsg
    {SYS_recvmmsg, "recvmmsg"},
#endif
#ifdef SYS_sendmmsg
    {SYS_sendmmsg, "sendmmsg"},
#endif
#ifdef SYS_readv
    {SYS_readv, "readv"},
#endif
#ifdef SYS_writev
    {SYS_writev, "writev"},
#endif
#ifdef SYS_pread64
    {SYS_pread64, "pread64"},
#endif
#ifdef SYS_pwrite64
    {SYS_pwrite64, "pwrite64"},
#endif
#ifdef SYS_preadv
    {SYS_preadv, "preadv"},
#endif
#ifdef SYS_pwritev
    {SYS_pwritev, "pwritev"},
#endif
#ifdef SYS_ioctl
    {SYS_ioctl, "ioctl"},
#endif
#ifdef SYS_splice
    {SYS_splice, "splice"},
#endif
#ifdef SYS_tee
    {SYS_tee, "tee"},
#endif
#ifdef SYS_sendfile
    {SYS_sendfile, "sendfile"},
#endif
#ifdef SYS_sched_yield
    {SYS_sched_yield, "sched_yield"},
#endif
#ifdef SYS_msgrcv
    {SYS_msgrcv, "msgrcv"},
#endif
#ifdef SYS_msgsnd
    {SYS_msgsnd, "msgsnd"},
#endif
#ifdef SYS_semop
    {SYS_semop, "semop"},
#endif
#ifdef SYS_semtimedop
    {SYS_semtimedop, "semtimedop"},
#endif
#ifdef SYS_mq_timedreceive
    {SYS_mq_timedreceive, "mq_timedreceive"},
#endif
#ifdef SYS_mq_timedsend
    {SYS_mq_timedsend, "mq_timedsend"},
#endif
#ifdef SYS_io_getevents
    {SYS_io_getevents, "io_getevents"},
#endif
#ifdef SYS_io_uring_enter
    {SYS_io_uring_enter, "io_uring_enter"},
#endif
#ifdef SYS_getpid
    {SYS_getpid, "getpid"},
#endif
#ifdef SYS_gettid
    {SYS_gettid, "gettid"},
#endif
#ifdef SYS_getppid
    {SYS_getppid, "getppid"},
#endif
#ifdef SYS_kill
    {SYS_kill, "kill"},
#endif
#ifdef SYS_tgkill
    {SYS_tgkill, "tgkill"},
#endif
#ifdef SYS_tkill
    {SYS_tkill, "tkill"},
#endif
#ifdef SYS_exit
    {SYS_exit, "exit"},
#endif
#ifdef SYS_exit_group
    {SYS_exit_group, "exit_group"},
#endif
#ifdef SYS_fork
    {SYS_fork, "fork"},
#endif
#ifdef SYS_vfork
    {SYS_vfork, "vfork"},
#endif
#ifdef SYS_clone
    {SYS_clone, "clone"},
#endif
#ifdef SYS_clone3
    {SYS_clone3, "clone3"},
#endif
#ifdef SYS_execve
    {SYS_execve, "execve"},
#endif
#ifdef SYS_execveat
    {SYS_execveat, "execveat"},
#endif
#ifdef SYS_socket
    {SYS_socket, "socket"},
#endif
#ifdef SYS_socketpair
    {SYS_socketpair, "socketpair"},
#endif
#ifdef SYS_bind
    {SYS_bind, "bind"},
#endif
#ifdef SYS_listen
    {SYS_listen, "listen"},
#endif
#ifdef SYS_shutdown
    {SYS_shutdown, "shutdown"},
#endif
#ifdef SYS_getsockopt
    {SYS_getsockopt, "getsockopt"},
#endif
#ifdef SYS_setsockopt
    {SYS_setsockopt, "setsockopt"},
#endif
#ifdef SYS_dup
    {SYS_dup, "dup"},
#endif
#ifdef SYS_dup2
    {SYS_dup2, "dup2"},
#endif
#ifdef SYS_dup3
    {SYS_dup3, "dup3"},
#endif
#ifdef SYS_pipe
    {SYS_pipe, "pipe"},
#endif
#ifdef SYS_pipe2
    {SYS_pipe2, "pipe2"},
#endif
#ifdef SYS_openat
    {SYS_openat, "openat"},
#endif
#ifdef SYS_close_range
    {SYS_close_range, "close_range"},
#endif
#ifdef SYS_mmap
    {SYS_mmap, "mmap"},
#endif
#ifdef SYS_munmap
    {SYS_munmap, "munmap"},
#endif
#ifdef SYS_mprotect
    {SYS_mprotect, "mprotect"},
#endif
#ifdef SYS_brk
    {SYS_brk, "brk"},
#endif
#ifdef SYS_madvise
    {SYS_madvise, "madvise"},
#endif
#ifdef SYS_fsync
    {SYS_fsync, "fsync"},
#endif
#ifdef SYS_fdatasync
    {SYS_fdatasync, "fdatasync"},
#endif
#ifdef SYS_lseek
    {SYS_lseek, "lseek"},
#endif
#ifdef SYS_stat
    {SYS_stat, "stat"},
#endif
#ifdef SYS_fstat
    {SYS_fstat, "fstat"},
#endif
#ifdef SYS_lstat
    {SYS_lstat, "lstat"},
#endif
#ifdef SYS_newfstatat
    {SYS_newfstatat, "newfstatat"},
#endif
#ifdef SYS_statx
    {SYS_statx, "statx"},
#endif
#ifdef SYS_rt_sigaction
    {SYS_rt_sigaction, "rt_sigaction"},
#endif
#ifdef SYS_rt_sigprocmask
    {SYS_rt_sigprocmask, "rt_sigprocmask"},
#endif
#ifdef SYS_sigaltstack
    {SYS_sigaltstack, "sigaltstack"},
#endif
#ifdef SYS_signalfd
    {SYS_signalfd, "signalfd"},
#endif
#ifdef SYS_signalfd4
    {SYS_signalfd4, "signalfd4"},
#endif
#ifdef SYS_eventfd
    {SYS_eventfd, "eventfd"},
#endif
#ifdef SYS_eventfd2
    {SYS_eventfd2, "eventfd2"},
#endif
#ifdef SYS_timerfd_create
    {SYS_timerfd_create, "timerfd_create"},
#endif
#ifdef SYS_timerfd_settime
    {SYS_timerfd_settime, "timerfd_settime"},
#endif
#ifdef SYS_timerfd_gettime
    {SYS_timerfd_gettime, "timerfd_gettime"},
#endif
#ifdef SYS_inotify_init1
    {SYS_inotify_init1, "inotify_init1"},
#endif
#ifdef SYS_inotify_add_watch
    {SYS_inotify_add_watch, "inotify_add_watch"},
#endif
#ifdef SYS_epoll_create
    {SYS_epoll_create, "epoll_create"},
#endif
#ifdef SYS_epoll_create1
    {SYS_epoll_create1, "epoll_create1"},
#endif
#ifdef SYS_prctl
    {SYS_prctl, "prctl"},
#endif
#ifdef SYS_ptrace
    {SYS_ptrace, "ptrace"},
#endif
#ifdef SYS_getrandom
    {SYS_getrandom, "getrandom"},
#endif
#ifdef SYS_clock_gettime
    {SYS_clock_gettime, "clock_gettime"},
#endif
#ifdef SYS_gettimeofday
    {SYS_gettimeofday, "gettimeofday"},
#endif
#ifdef SYS_set_robust_list
    {SYS_set_robust_list, "set_robust_list"},
#endif
#ifdef SYS_get_robust_list
    {SYS_get_robust_list, "get_robust_list"},
#endif
#ifdef SYS_set_tid_address
    {SYS_set_tid_address, "set_tid_address"},
#endif
#ifdef SYS_membarrier
    {SYS_membarrier, "membarrier"},
#endif
#ifdef SYS_rseq
    {SYS_rseq, "rseq"},
#endif
#ifdef SYS_arch_prctl
    {SYS_arch_prctl, "arch_prctl"},
#endif
#ifdef SYS_mremap
    {SYS_mremap, "mremap"},
#endif
#ifdef SYS_msync
    {SYS_msync, "msync"},
#endif
#ifdef SYS_getdents64
    {SYS_getdents64, "getdents64"},
#endif
#ifdef SYS_unlink
    {SYS_unlink, "unlink"},
#endif
#ifdef SYS_unlinkat
    {SYS_unlinkat, "unlinkat"},
#endif
#ifdef SYS_rename
    {SYS_rename, "rename"},
#endif
#ifdef SYS_renameat2
    {SYS_renameat2, "renameat2"},
#endif
#ifdef SYS_mkdir
    {SYS_mkdir, "mkdir"},
#endif
#ifdef SYS_chdir
    {SYS_chdir, "chdir"},
#endif
#ifdef SYS_sync
    {SYS_sync, "sync"},
#endif
#ifdef SYS_syncfs
    {SYS_syncfs, "syncfs"},
#endif
#ifdef SYS_lockf
    {SYS_lockf, "lockf"},
#endif
#ifdef SYS_process_vm_readv
    {SYS_process_vm_readv, "process_vm_readv"},
#endif
#ifdef SYS_process_vm_writev
    {SYS_process_vm_writev, "process_vm_writev"},
#endif
#ifdef SYS_alarm
    {SYS_alarm, "alarm"},
#endif
#ifdef SYS_setitimer
    {SYS_setitimer, "setitimer"},
#endif
#ifdef SYS_getitimer
    {SYS_getitimer, "getitimer"},
#endif
#ifdef SYS_sigsuspend
    {SYS_sigsuspend, "sigsuspend"},
#endif
#ifdef SYS_sigtimedwait
    {SYS_sigtimedwait, "sigtimedwait"},
#endif
#ifdef SYS_kcmp
    {SYS_kcmp, "kcmp"},
#endif
};

const char *
syscall_name(long nr)
{
	for (size_t i = 0; i < ARRAY_SIZE(syscall_table); i++)
		if (syscall_table[i].nr == nr)
			return syscall_table[i].name;
	return NULL;
}

const char *
syscall_name_or_number(long nr, char *buf, size_t size)
{
	const char *name = syscall_name(nr);
	if (name)
		return name;
	(void) snprintf(buf, size, "syscall_%ld", nr);
	return buf;
}

long
syscall_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(syscall_table); i++)
		if (strcmp(syscall_table[i].name, name) == 0)
			return syscall_table[i].nr;
	if (starts_with(name, "syscall_")) {
		uint64_t v;
		size_t n = as_parse_u64(name + 8, &v);
		if (n && name[8 + n] == '\0' && v <= INT_MAX)
			return (long) v;
	}
	return -EINVAL;
}

/* ---- what a blocked syscall waits for ---- */

#define FUTEX_CMD_MASK_LOCAL 0x7f /* ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) */

static const char *const futex_cmd_names[] = {
    "FUTEX_WAIT",	    "FUTEX_WAKE",	 "FUTEX_FD",	      "FUTEX_REQUEUE",
    "FUTEX_CMP_REQUEUE",    "FUTEX_WAKE_OP",	 "FUTEX_LOCK_PI",     "FUTEX_UNLOCK_PI",
    "FUTEX_TRYLOCK_PI",	    "FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET", "FUTEX_WAIT_REQUEUE_PI",
    "FUTEX_CMP_REQUEUE_PI", "FUTEX_LOCK_PI2",
};

const char *
futex_cmd_name(int cmd)
{
	if (cmd >= 0 && (size_t) cmd < ARRAY_SIZE(futex_cmd_names))
		return futex_cmd_names[cmd];
	return NULL;
}

static int
arg_int(uint64_t a)
{
	return (int) (int32_t) (uint32_t) a;
}

static void
timeout_ms(struct syscall_wait *w, uint64_t arg)
{
	int ms = arg_int(arg);
	if (ms < 0) {
		w->timeout_kind = SYSCALL_TIMEOUT_INFINITE;
	} else {
		w->timeout_kind = SYSCALL_TIMEOUT_RELATIVE;
		w->timeout_ns = (int64_t) ms * 1000000;
	}
}

static void
timeout_ptr(struct syscall_wait *w, uint64_t ptr, enum syscall_timeout_layout layout, bool absolute,
	    int clock)
{
	if (ptr == 0) {
		w->timeout_kind = SYSCALL_TIMEOUT_INFINITE;
		return;
	}
	w->timeout_kind = SYSCALL_TIMEOUT_POINTER;
	w->timeout_ptr = ptr;
	w->timeout_layout = layout;
	w->timeout_absolute = absolute;
	w->timeout_clock = clock;
}

static bool
nr_is(long nr, long sys)
{
	return sys >= 0 && nr == sys;
}

#define NR(name) nr_is(sc->nr, sysnr_##name)
/* -1 for syscalls the architecture lacks, so the decoder below stays flat. */
#ifdef SYS_poll
static const long sysnr_poll = SYS_poll;
#else
static const long sysnr_poll = -1;
#endif
#ifdef SYS_select
static const long sysnr_select = SYS_select;
#else
static const long sysnr_select = -1;
#endif
#ifdef SYS_epoll_wait
static const long sysnr_epoll_wait = SYS_epoll_wait;
#else
static const long sysnr_epoll_wait = -1;
#endif
#ifdef SYS_epoll_pwait2
static const long sysnr_epoll_pwait2 = SYS_epoll_pwait2;
#else
static const long sysnr_epoll_pwait2 = -1;
#endif
#ifdef SYS_futex_waitv
static const long sysnr_futex_waitv = SYS_futex_waitv;
#else
static const long sysnr_futex_waitv = -1;
#endif
#ifdef SYS_accept
static const long sysnr_accept = SYS_accept;
#else
static const long sysnr_accept = -1;
#endif

void
syscall_wait_decode(const struct proc_syscall *sc, struct syscall_wait *ret)
{
	struct syscall_wait w = {.nr = sc->nr, .fd = -1};
	const uint64_t *a = sc->args;

	if (sc->kind != PROC_SYSCALL_IN) {
		w.nr = -1;
		*ret = w;
		return;
	}
	long nr = sc->nr;
	if (nr == SYS_read || nr == SYS_write || nr == SYS_readv || nr == SYS_writev ||
	    nr == SYS_pread64 || nr == SYS_pwrite64 || nr == SYS_recvfrom || nr == SYS_sendto ||
	    nr == SYS_recvmsg || nr == SYS_sendmsg || nr == SYS_sendmmsg || nr == SYS_accept4 ||
	    nr == SYS_connect || nr == SYS_flock || nr == SYS_fcntl || nr == SYS_ioctl ||
	    nr == SYS_splice || nr == SYS_fsync || nr == SYS_fdatasync || NR(accept)) {
		w.fd = arg_int(a[0]);
	} else if (nr == SYS_sendfile) {
		w.fd = arg_int(a[1]); /* in_fd is what it waits to read */
	} else if (nr == SYS_recvmmsg) {
		w.fd = arg_int(a[0]);
		timeout_ptr(&w, a[4], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
		if (w.timeout_kind == SYSCALL_TIMEOUT_INFINITE)
			w.timeout_kind = SYSCALL_TIMEOUT_NA;
	} else if (NR(poll)) {
		w.fds_ptr = a[0];
		w.nfds = a[1];
		timeout_ms(&w, a[2]);
	} else if (nr == SYS_ppoll) {
		w.fds_ptr = a[0];
		w.nfds = a[1];
		timeout_ptr(&w, a[2], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (NR(select)) {
		w.nfds = a[0];
		w.fds_ptr = a[1];
		w.write_set_ptr = a[2];
		timeout_ptr(&w, a[4], TIMEOUT_LAYOUT_TIMEVAL, false, CLOCK_MONOTONIC);
	} else if (nr == SYS_pselect6) {
		w.nfds = a[0];
		w.fds_ptr = a[1];
		w.write_set_ptr = a[2];
		timeout_ptr(&w, a[4], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (NR(epoll_wait) || nr == SYS_epoll_pwait) {
		w.fd = arg_int(a[0]);
		timeout_ms(&w, a[3]);
	} else if (NR(epoll_pwait2)) {
		w.fd = arg_int(a[0]);
		timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (nr == SYS_futex) {
		int op = arg_int(a[1]);
		int cmd = op & FUTEX_CMD_MASK_LOCAL;
		bool realtime = (op & 256) != 0;
		w.is_futex = true;
		w.futex_uaddr = a[0];
		w.futex_op = op;
		w.futex_cmd = cmd;
		w.futex_private = (op & 128) != 0;
		w.futex_clock_realtime = realtime;
		w.futex_val = (uint32_t) a[2];
		switch (cmd) {
		case 0: /* FUTEX_WAIT: relative, even with the realtime flag */
			timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
			break;
		case 9:	 /* FUTEX_WAIT_BITSET */
		case 11: /* FUTEX_WAIT_REQUEUE_PI */
		case 13: /* FUTEX_LOCK_PI2 */
			timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, true,
				    realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC);
			break;
		case 6: /* FUTEX_LOCK_PI: always CLOCK_REALTIME */
			timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, true, CLOCK_REALTIME);
			break;
		default:
			break;
		}
	} else if (NR(futex_waitv)) {
		w.is_futex = true;
		w.fds_ptr = a[0]; /* struct futex_waitv array */
		w.nfds = a[1];
		timeout_ptr(&w, a[3], TIMEOUT_LAYOUT_TIMESPEC, true, arg_int(a[4]));
	} else if (nr == SYS_wait4) {
		w.wait_pid = (pid_t) arg_int(a[0]);
	} else if (nr == SYS_waitid) {
		int idtype = arg_int(a[0]);
		if (idtype == 0) /* P_ALL */
			w.wait_pid = -1;
		else if (idtype == 1) /* P_PID */
			w.wait_pid = (pid_t) arg_int(a[1]);
		else if (idtype == 3) /* P_PIDFD */
			w.fd = arg_int(a[1]);
	} else if (nr == SYS_nanosleep) {
		timeout_ptr(&w, a[0], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	} else if (nr == SYS_clock_nanosleep) {
		timeout_ptr(&w, a[2], TIMEOUT_LAYOUT_TIMESPEC, (arg_int(a[1]) & TIMER_ABSTIME) != 0,
			    arg_int(a[0]));
	} else if (nr == SYS_rt_sigtimedwait) {
		timeout_ptr(&w, a[2], TIMEOUT_LAYOUT_TIMESPEC, false, CLOCK_MONOTONIC);
	}
	*ret = w;
}

static int
read_remote(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *) (uintptr_t) addr, .iov_len = len};
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	if ((size_t) n != len)
		return -EFAULT;
	return 0;
}

int
syscall_wait_read_timeout(pid_t pid, struct syscall_wait *w)
{
	int64_t sec, nsec;
	int r;

	if (w->timeout_kind != SYSCALL_TIMEOUT_POINTER)
		return 0;
	/* 64-bit only: a 32-bit (compat) target has 8-byte timespecs here too
	 * for the *_time64 calls; the old ones we would misread, rarely met. */
	if (w->timeout_layout == TIMEOUT_LAYOUT_TIMEVAL) {
		struct timeval tv = { 0 };
		r = read_remote(pid, w->timeout_ptr, &tv, sizeof(tv));
		sec = tv.tv_sec;
		if (__builtin_mul_overflow((int64_t) tv.tv_usec, (int64_t) 1000, &nsec))
			nsec = tv.tv_usec < 0 ? INT64_MIN : INT64_MAX;
	} else {
		struct timespec ts = { 0 };
		r = read_remote(pid, w->timeout_ptr, &ts, sizeof(ts));
		sec = ts.tv_sec;
		nsec = ts.tv_nsec;
	}
	if (r < 0) {
		w->timeout_kind = SYSCALL_TIMEOUT_UNREADABLE;
		return r;
	}
	w->timeout_ns = ns_saturated(sec, nsec);
	w->timeout_kind = w->timeout_absolute ? SYSCALL_TIMEOUT_ABSOLUTE : SYSCALL_TIMEOUT_RELATIVE;
	return 0;
}

int
syscall_wait_read_fds(pid_t pid, const struct syscall_wait *w, struct wait_fd *fds, size_t cap,
		      size_t *ret_n)
{
	size_t n = 0;
	int r;

	if (w->fds_ptr == 0 || w->nfds == 0 || w->is_futex) {
		*ret_n = 0;
		return 0;
	}
	if ((nr_is(w->nr, sysnr_select) || w->nr == SYS_pselect6)) {
		fd_set rs, ws;
		size_t nfds = w->nfds > FD_SETSIZE ? FD_SETSIZE : (size_t) w->nfds;
		size_t bytes = (nfds + 7) / 8;
		memset(&rs, 0, sizeof(rs));
		memset(&ws, 0, sizeof(ws));
		r = read_remote(pid, w->fds_ptr, &rs, bytes);
		if (r < 0)
			return r;
		if (w->write_set_ptr) {
			r = read_remote(pid, w->write_set_ptr, &ws, bytes);
			if (r < 0)
				return r;
		}
		for (size_t fd = 0; fd < nfds && n < cap; fd++) {
			short ev = (short) ((FD_ISSET((int) fd, &rs) ? POLLIN : 0) |
					    (FD_ISSET((int) fd, &ws) ? POLLOUT : 0));
			if (ev)
				fds[n++] = (struct wait_fd){.fd = (int) fd, .events = ev};
		}
	} else {
		struct pollfd p[64];
		size_t want = w->nfds > ARRAY_SIZE(p) ? ARRAY_SIZE(p) : (size_t) w->nfds;
		if (want > cap)
			want = cap;
		r = read_remote(pid, w->fds_ptr, p, want * sizeof(p[0]));
		if (r < 0)
			return r;
		for (size_t i = 0; i < want; i++)
			fds[n++] = (struct wait_fd){.fd = p[i].fd, .events = p[i].events};
	}
	*ret_n = n;
	return 0;
}

bool
procfs_syscall_resolve_restart(struct proc_syscall *sc, const char *wchan)
{
	if (sc->kind != PROC_SYSCALL_IN || sc->nr != SYS_restart_syscall || !wchan)
		return false;
	long nr = -1;
	if (strncmp(wchan, "poll_schedule_timeout", 21) == 0)
		/* poll keeps an int timeout in the third register, ppoll a pointer */
		nr = sc->args[2] <= 0xffffffffULL ? SYS_poll : SYS_ppoll;
	else if (strstr(wchan, "select"))
		nr = SYS_select;
	else if (strstr(wchan, "epoll"))
		nr = SYS_epoll_wait;
	else if (strncmp(wchan, "futex", 5) == 0)
		nr = SYS_futex;
	else if (strstr(wchan, "nanosleep"))
		nr = SYS_clock_nanosleep;
	if (nr < 0)
		return false;
	sc->nr = nr;
	return true;
}
