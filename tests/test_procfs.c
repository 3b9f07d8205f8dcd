/* probes/procfs parsers on literal text (tricky comm names, zombies,
 * "running" syscalls, fdinfo of epoll/pidfd/eventfd/timerfd, status masks),
 * the syscall decoder, and the sock_diag reply parser on hand-built buffers. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "probes/futex.h"
#include "probes/procfs.h"
#include "probes/sockdiag.h"

#define PARSE(fn, text, out) fn((text), strlen(text), (out))

Test(procfs, stat_plain)
{
	const char *t =
	    "4242 (cat) S 4241 4242 4200 34816 4242 4194560 99 0 0 0 12 34 0 0 20 0 1 0 "
	    "987654 2490368 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
	struct proc_stat st;
	cr_assert_eq(PARSE(procfs_parse_stat, t, &st), 0);
	cr_expect_eq(st.pid, 4242);
	cr_expect_str_eq(st.comm, "cat");
	cr_expect_eq(st.state, 'S');
	cr_expect_eq(st.ppid, 4241);
	cr_expect_eq(st.pgrp, 4242);
	cr_expect_eq(st.session, 4200);
	cr_expect_eq(st.tty_nr, 34816);
	cr_expect_eq(st.utime, 12);
	cr_expect_eq(st.stime, 34);
	cr_expect_eq(st.num_threads, 1);
	cr_expect_eq(st.starttime, 987654);
}

Test(procfs, stat_comm_with_spaces_and_parens)
{
	/* a thread may name itself ") S 1 (" to fool a naive parser */
	const char *t = "77 (a) S 1 (b) c) Z 1 77 77 0 -1 4194564 0 0 0 0 5 6 0 0 20 0 3 0 555 0 0 "
			"18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0\n";
	struct proc_stat st;
	cr_assert_eq(PARSE(procfs_parse_stat, t, &st), 0);
	cr_expect_str_eq(st.comm, "a) S 1 (b) c");
	cr_expect_eq(st.state, 'Z');
	cr_expect_eq(st.ppid, 1);
	cr_expect_eq(st.utime, 5);
	cr_expect_eq(st.num_threads, 3);
	cr_expect_eq(st.starttime, 555);
}

Test(procfs, stat_zombie_and_garbage)
{
	const char *z =
	    "99 (worker) Z 98 98 98 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 "
	    "18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
	struct proc_stat st;
	cr_assert_eq(PARSE(procfs_parse_stat, z, &st), 0);
	cr_expect_eq(st.state, 'Z');
	cr_expect_eq(st.tty_nr, 0);
	cr_expect_eq(PARSE(procfs_parse_stat, "", &st), -EINVAL);
	cr_expect_eq(PARSE(procfs_parse_stat, "12 (x", &st), -EINVAL);
	cr_expect_eq(PARSE(procfs_parse_stat, "12 () S 1 2", &st), -EINVAL);
	cr_expect_eq(PARSE(procfs_parse_stat, "12 (x) S 1 2 3", &st), -EINVAL);
	/* not NUL-terminated: the length rules */
	char buf[16];
	memset(buf, '9', sizeof(buf));
	cr_expect_eq(procfs_parse_stat(buf, sizeof(buf), &st), -EINVAL);
}

static const char *status_text = "Name:\tmy\\nthread\\\\x\n"
				 "Umask:\t0022\n"
				 "State:\tS (sleeping)\n"
				 "Tgid:\t4242\n"
				 "Ngid:\t0\n"
				 "Pid:\t4243\n"
				 "PPid:\t1\n"
				 "TracerPid:\t0\n"
				 "Uid:\t1000\t1001\t1002\t1003\n"
				 "Gid:\t100\t101\t102\t103\n"
				 "Threads:\t3\n"
				 "SigQ:\t1/63429\n"
				 "SigPnd:\t0000000000000000\n"
				 "ShdPnd:\t0000000000000002\n"
				 "SigBlk:\t8000000000000002\n"
				 "SigIgn:\t0000000000001000\n"
				 "SigCgt:\t0000000180004a02\n"
				 "CapInh:\t0000000000000000\n"
				 "voluntary_ctxt_switches:\t150\n"
				 "nonvoluntary_ctxt_switches:\t7\n";

Test(procfs, status_masks_and_ids)
{
	struct proc_status st;
	cr_assert_eq(PARSE(procfs_parse_status, status_text, &st), 0);
	cr_expect_str_eq(st.name, "my\nthread\\x");
	cr_expect_eq(st.state, 'S');
	cr_expect_eq(st.tgid, 4242);
	cr_expect_eq(st.ppid, 1);
	cr_expect_eq(st.tracer_pid, 0);
	cr_expect_eq(st.uid[0], 1000);
	cr_expect_eq(st.uid[3], 1003);
	cr_expect_eq(st.gid[1], 101);
	cr_expect_eq(st.threads, 3);
	cr_expect_eq(st.sigq_queued, 1);
	cr_expect_eq(st.sigq_limit, 63429);
	cr_expect_eq(st.sig_pending, 0);
	cr_expect_eq(st.shd_pending, 1ULL << (SIGINT - 1));
	/* bit 63 = signal 64: the mask must stay 64-bit */
	cr_expect_eq(st.sig_blocked, 0x8000000000000002ULL);
	cr_expect_eq(st.sig_ignored, 1ULL << (SIGPIPE - 1));
	cr_expect_eq(st.sig_caught, 0x180004a02ULL);
	cr_expect_eq(st.voluntary_ctxt_switches, 150);
	cr_expect_eq(st.nonvoluntary_ctxt_switches, 7);
	cr_expect(st.present & PROC_STATUS_SIGBLK);
	cr_expect(st.present & PROC_STATUS_CTXT);
}

Test(procfs, status_traced_and_truncated)
{
	struct proc_status st;
	cr_assert_eq(PARSE(procfs_parse_status,
			   "Name:\tx\nState:\tt (tracing stop)\nTgid:\t5\nTracerPid:\t9\nSigBlk:\t",
			   &st),
		     0);
	cr_expect_eq(st.state, 't');
	cr_expect_eq(st.tracer_pid, 9);
	cr_expect_not(st.present & PROC_STATUS_SIGBLK);
	cr_expect_eq(PARSE(procfs_parse_status, "garbage\n", &st), -EINVAL);
}

Test(procfs, fdinfo_epoll)
{
	const char *t =
	    "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n"
	    "tfd:        5 events:       19 data:                5  pos:0 ino:3e0a sdev:f\n"
	    "tfd:        7 events: 80000001 data: ffffffffffffffff  pos:0 ino:11ccb sdev:9\n";
	struct proc_fdinfo fi;
	struct epoll_target targets[1];
	cr_assert_eq(procfs_parse_fdinfo(t, strlen(t), &fi, targets, 1), 0);
	cr_expect_eq(fi.flags, O_RDWR | O_CLOEXEC);
	cr_expect_eq(fi.mnt_id, 17);
	cr_expect_eq(fi.ino, 1038);
	cr_expect_eq(fi.n_targets, 2); /* counted beyond the capacity */
	cr_expect_eq(targets[0].tfd, 5);
	cr_expect_eq(targets[0].events, 0x19);
	cr_expect_eq(targets[0].data, 5);
	cr_expect_eq(targets[0].ino, 0x3e0a);
	cr_expect_eq(targets[0].sdev, 0xf);
	struct epoll_target all[2];
	cr_assert_eq(procfs_parse_fdinfo(t, strlen(t), &fi, all, 2), 0);
	cr_expect_eq(all[1].tfd, 7);
	cr_expect_eq(all[1].events, 0x80000001u);
	cr_expect_eq(all[1].data, UINT64_MAX);
	cr_expect(fi.present & FDINFO_EPOLL);
}

Test(procfs, fdinfo_pidfd_eventfd_timerfd_signalfd)
{
	struct proc_fdinfo fi;
	const char *pidfd =
	    "pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t85279\nPid:\t20574\nNSpid:\t20574\n";
	cr_assert_eq(procfs_parse_fdinfo(pidfd, strlen(pidfd), &fi, NULL, 0), 0);
	cr_expect(fi.present & FDINFO_PIDFD);
	cr_expect_eq(fi.pidfd_pid, 20574);
	const char *gone = "pos:\t0\nflags:\t02000002\nmnt_id:\t4\nPid:\t-1\n";
	cr_assert_eq(procfs_parse_fdinfo(gone, strlen(gone), &fi, NULL, 0), 0);
	cr_expect_eq(fi.pidfd_pid, -1);
	const char *efd = "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\n"
			  "eventfd-count:               1f\neventfd-id: 1\neventfd-semaphore: 0\n";
	cr_assert_eq(procfs_parse_fdinfo(efd, strlen(efd), &fi, NULL, 0), 0);
	cr_expect_eq(fi.eventfd_count, 0x1f);
	cr_expect(fi.flags & O_NONBLOCK);
	const char *tfd = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1\nclockid: 1\nticks: 3\n"
			  "settime flags: 01\nit_value: (0, 499000000)\nit_interval: (1, 0)\n";
	cr_assert_eq(procfs_parse_fdinfo(tfd, strlen(tfd), &fi, NULL, 0), 0);
	cr_expect(fi.present & FDINFO_TIMERFD);
	cr_expect_eq(fi.timerfd_clockid, CLOCK_MONOTONIC);
	cr_expect_eq(fi.timerfd_ticks, 3);
	cr_expect_eq(fi.timerfd_value_ns, 499000000);
	cr_expect_eq(fi.timerfd_interval_ns, 1000000000);
	const char *sfd = "pos:\t0\nflags:\t02\nmnt_id:\t17\nsigmask:\t0000000000004002\n";
	cr_assert_eq(procfs_parse_fdinfo(sfd, strlen(sfd), &fi, NULL, 0), 0);
	cr_expect_eq(fi.signalfd_mask, 0x4002);
	cr_expect_eq(procfs_parse_fdinfo("pos: 1\n", 7, &fi, NULL, 0), -EINVAL);
}

/* fuzz-procfs: seconds * 1e9 overflowed (UBSan); the kernel's values fit,
 * anything larger saturates. */
Test(procfs, fdinfo_timerfd_huge_values_saturate)
{
	struct proc_fdinfo fi;
	const char *tfd = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1\nclockid: 0\nticks: 0\n"
			  "it_value: (9223372036854775807, 999999999)\n"
			  "it_interval: (-3836682053449940993, 0)\n";
	cr_assert_eq(procfs_parse_fdinfo(tfd, strlen(tfd), &fi, NULL, 0), 0);
	cr_expect_eq(fi.timerfd_value_ns, INT64_MAX);
	cr_expect_eq(fi.timerfd_interval_ns, INT64_MIN);
	const char *edge = "pos:\t0\nflags:\t02\nmnt_id:\t17\nit_value: (9223372036, 854775807)\n"
			   "it_interval: (9223372036, 854775808)\n";
	cr_assert_eq(procfs_parse_fdinfo(edge, strlen(edge), &fi, NULL, 0), 0);
	cr_expect_eq(fi.timerfd_value_ns, INT64_MAX);
	cr_expect_eq(fi.timerfd_interval_ns, INT64_MAX);
}

Test(procfs, fdinfo_pipe_write_end)
{
	struct proc_fdinfo fi;
	const char *t = "pos:\t0\nflags:\t01\nmnt_id:\t16\nino:\t72907\n";
	cr_assert_eq(procfs_parse_fdinfo(t, strlen(t), &fi, NULL, 0), 0);
	cr_expect_eq(fi.flags & O_ACCMODE, O_WRONLY);
	cr_expect_not(fi.flags & O_CLOEXEC);
}

Test(procfs, syscall_lines)
{
	struct proc_syscall sc;
	cr_assert_eq(PARSE(procfs_parse_syscall, "running\n", &sc), 0);
	cr_expect_eq(sc.kind, PROC_SYSCALL_RUNNING);
	cr_assert_eq(PARSE(procfs_parse_syscall, "-1 0x7ffc1000 0x401000\n", &sc), 0);
	cr_expect_eq(sc.kind, PROC_SYSCALL_NONE);
	cr_expect_eq(sc.sp, 0x7ffc1000);
	cr_expect_eq(sc.pc, 0x401000);
	cr_assert_eq(PARSE(procfs_parse_syscall,
			   "1 0x4 0x55d0 0x10000 0x0 0x0 0x0 0x7ffd38 0x7f16ef3162ad\n", &sc),
		     0);
	cr_expect_eq(sc.kind, PROC_SYSCALL_IN);
	cr_expect_eq(sc.nr, 1);
	cr_expect_eq(sc.args[0], 4);
	cr_expect_eq(sc.args[2], 0x10000);
	cr_expect_eq(sc.pc, 0x7f16ef3162ad);
	cr_expect_eq(PARSE(procfs_parse_syscall, "1 0x4\n", &sc), -EINVAL);
	cr_expect_eq(PARSE(procfs_parse_syscall, "", &sc), -EINVAL);
	cr_expect_eq(PARSE(procfs_parse_syscall, "-1 0x1\n", &sc), -EINVAL);
}

Test(procfs, io_children_wchan)
{
	struct proc_io io;
	const char *t = "rchar: 1768279\nwchar: 2557\nsyscr: 1182\nsyscw: 46\nread_bytes: 1019904\n"
			"write_bytes: 8192\ncancelled_write_bytes: 0\n";
	cr_assert_eq(PARSE(procfs_parse_io, t, &io), 0);
	cr_expect_eq(io.rchar, 1768279);
	cr_expect_eq(io.syscw, 46);
	cr_expect_eq(io.write_bytes, 8192);
	cr_expect_eq(PARSE(procfs_parse_io, "rchar: 1\n", &io), -EINVAL);

	pid_t pids[2];
	cr_expect_eq(procfs_parse_pid_list("12 34 56 ", 9, pids, 2), 3);
	cr_expect_eq(pids[0], 12);
	cr_expect_eq(pids[1], 34);
	cr_expect_eq(procfs_parse_pid_list("", 0, pids, 2), 0);
	cr_expect_eq(procfs_parse_pid_list("1 x", 3, pids, 2), -EINVAL);

	char w[32];
	procfs_parse_wchan("0", 1, w, sizeof(w));
	cr_expect_str_eq(w, "");
	procfs_parse_wchan("anon_pipe_write", 15, w, sizeof(w));
	cr_expect_str_eq(w, "anon_pipe_write");
}

Test(procfs, fd_kinds)
{
	uint64_t ino;
	bool deleted;
	cr_expect_eq(fd_kind_classify("pipe:[72907]", &ino, &deleted), FD_KIND_PIPE);
	cr_expect_eq(ino, 72907);
	cr_expect_eq(fd_kind_classify("socket:[5]", &ino, &deleted), FD_KIND_SOCKET);
	cr_expect_eq(ino, 5);
	cr_expect_eq(fd_kind_classify("anon_inode:[eventpoll]", &ino, NULL), FD_KIND_EPOLL);
	cr_expect_eq(fd_kind_classify("anon_inode:[pidfd]", NULL, NULL), FD_KIND_PIDFD);
	cr_expect_eq(fd_kind_classify("pidfd:[1234]", NULL, NULL), FD_KIND_PIDFD);
	cr_expect_eq(fd_kind_classify("anon_inode:[eventfd]", NULL, NULL), FD_KIND_EVENTFD);
	cr_expect_eq(fd_kind_classify("anon_inode:[signalfd]", NULL, NULL), FD_KIND_SIGNALFD);
	cr_expect_eq(fd_kind_classify("anon_inode:[timerfd]", NULL, NULL), FD_KIND_TIMERFD);
	cr_expect_eq(fd_kind_classify("anon_inode:inotify", NULL, NULL), FD_KIND_INOTIFY);
	cr_expect_eq(fd_kind_classify("anon_inode:[io_uring]", NULL, NULL), FD_KIND_ANON);
	cr_expect_eq(fd_kind_classify("/dev/null", NULL, NULL), FD_KIND_NULL);
	cr_expect_eq(fd_kind_classify("/dev/pts/3", NULL, NULL), FD_KIND_TTY);
	cr_expect_eq(fd_kind_classify("/tmp/log (deleted)", &ino, &deleted), FD_KIND_FILE);
	cr_expect(deleted);
	cr_expect_eq(fd_kind_classify("net:[4026531840]", NULL, &deleted), FD_KIND_OTHER);
	cr_expect_not(deleted);
	for (int k = FD_KIND_OTHER; k <= FD_KIND_DIR; k++)
		cr_expect_eq(fd_kind_from_name(fd_kind_name((enum fd_kind) k)), k);
}

Test(procfs, syscall_names)
{
	char buf[32];
	cr_expect_str_eq(syscall_name(SYS_read), "read");
	cr_expect_str_eq(syscall_name(SYS_futex), "futex");
	cr_expect_str_eq(syscall_name(SYS_recvfrom), "recvfrom");
	cr_expect_str_eq(syscall_name(SYS_epoll_pwait), "epoll_pwait");
	cr_expect_str_eq(syscall_name_or_number(100000, buf, sizeof(buf)), "syscall_100000");
	cr_expect_eq(syscall_from_name("syscall_100000"), 100000);
	cr_expect_eq(syscall_from_name("wait4"), SYS_wait4);
	cr_expect_eq(syscall_from_name("nonsense"), -EINVAL);
}

static struct proc_syscall
in_syscall(long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
	return (struct proc_syscall){
	    .kind = PROC_SYSCALL_IN, .nr = nr, .args = {a0, a1, a2, a3, a4, 0}};
}

Test(procfs, decode_timeouts)
{
	struct syscall_wait w;
	struct proc_syscall sc;
#ifdef SYS_poll
	sc = in_syscall(SYS_poll, 0x1000, 2, (uint64_t) -1, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_INFINITE);
	cr_expect_eq(w.nfds, 2);
	sc = in_syscall(SYS_poll, 0x1000, 1, 20, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_RELATIVE);
	cr_expect_eq(w.timeout_ns, 20000000);
#endif
	/* epoll_pwait with 86400 s: timed, though longer than any watchdog */
	sc = in_syscall(SYS_epoll_pwait, 7, 0x2000, 64, 86400000, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.fd, 7);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_RELATIVE);
	cr_expect_eq(w.timeout_ns, 86400000LL * 1000000);
	sc = in_syscall(SYS_ppoll, 0x1000, 1, 0, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_INFINITE);
	sc = in_syscall(SYS_nanosleep, 0x3000, 0, 0, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_POINTER);
	cr_expect_eq(w.timeout_ptr, 0x3000);
	sc = in_syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, 0x4000, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect(w.timeout_absolute);
	sc = in_syscall(SYS_read, 5, 0x1000, 10, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.fd, 5);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_NA);
	sc = in_syscall(SYS_wait4, 1234, 0, 0, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.wait_pid, 1234);
	sc = in_syscall(SYS_waitid, 3 /* P_PIDFD */, 9, 0, 4, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.fd, 9);
	sc = (struct proc_syscall){.kind = PROC_SYSCALL_RUNNING};
	syscall_wait_decode(&sc, &w);
	cr_expect_eq(w.nr, -1);
	cr_expect_eq(w.fd, -1);
}

Test(procfs, decode_futex_ops)
{
	struct syscall_wait w;
	struct proc_syscall sc =
	    in_syscall(SYS_futex, 0x5596e21020e0, 128 /* WAIT|PRIVATE */, 2, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect(w.is_futex);
	cr_expect_eq(w.futex_uaddr, 0x5596e21020e0);
	cr_expect_eq(w.futex_cmd, 0);
	cr_expect_str_eq(futex_cmd_name(w.futex_cmd), "FUTEX_WAIT");
	cr_expect(w.futex_private);
	cr_expect_eq(w.futex_val, 2);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_INFINITE);

	sc = in_syscall(SYS_futex, 0x1000, 9 | 128 | 256 /* WAIT_BITSET|PRIVATE|REALTIME */, 0,
			0x2000, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_str_eq(futex_cmd_name(w.futex_cmd), "FUTEX_WAIT_BITSET");
	cr_expect(w.futex_clock_realtime);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_POINTER);
	cr_expect(w.timeout_absolute);
	cr_expect_eq(w.timeout_clock, CLOCK_REALTIME);

	sc = in_syscall(SYS_futex, 0x1000, 6 /* LOCK_PI */, 0, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_str_eq(futex_cmd_name(w.futex_cmd), "FUTEX_LOCK_PI");
	cr_expect_not(w.futex_private);
}

Test(procfs, timeout_read_from_memory)
{
	/* our own memory stands in for a target's */
	static struct timespec ts = {.tv_sec = 2, .tv_nsec = 500};
	struct proc_syscall sc = in_syscall(SYS_nanosleep, (uint64_t) (uintptr_t) &ts, 0, 0, 0, 0);
	struct syscall_wait w;
	syscall_wait_decode(&sc, &w);
	cr_assert_eq(syscall_wait_read_timeout(getpid(), &w), 0);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_RELATIVE);
	cr_expect_eq(w.timeout_ns, 2000000500LL);

	static struct pollfd pfds[2] = {{.fd = 4, .events = POLLIN}, {.fd = 9, .events = POLLOUT}};
	sc = in_syscall(SYS_ppoll, (uint64_t) (uintptr_t) pfds, 2, 0, 0, 0);
	syscall_wait_decode(&sc, &w);
	struct wait_fd fds[4];
	size_t n = 0;
	cr_assert_eq(syscall_wait_read_fds(getpid(), &w, fds, 4, &n), 0);
	cr_expect_eq(n, 2);
	cr_expect_eq(fds[1].fd, 9);
	cr_expect_eq(fds[1].events, POLLOUT);

	/* a bad pointer is recorded, not fatal */
	sc = in_syscall(SYS_nanosleep, 8, 0, 0, 0, 0);
	syscall_wait_decode(&sc, &w);
	cr_expect_lt(syscall_wait_read_timeout(getpid(), &w), 0);
	cr_expect_eq(w.timeout_kind, SYSCALL_TIMEOUT_UNREADABLE);
}

/* ---- sock_diag reply parser on a hand-built buffer ---- */

static size_t
put_attr(unsigned char *p, unsigned type, const void *data, size_t len)
{
	struct nlattr a = {.nla_len = (uint16_t) (NLA_HDRLEN + len), .nla_type = (uint16_t) type};
	memcpy(p, &a, sizeof(a));
	memcpy(p + NLA_HDRLEN, data, len);
	return NLA_ALIGN(NLA_HDRLEN + len);
}

Test(procfs, sockdiag_unix_reply)
{
	unsigned char buf[512] = {0};
	size_t off = NLMSG_HDRLEN;
	struct unix_diag_msg m = {.udiag_family = AF_UNIX,
				  .udiag_type = SOCK_STREAM,
				  .udiag_state = 10,
				  .udiag_ino = 4711};
	memcpy(buf + off, &m, sizeof(m));
	off += NLMSG_ALIGN(sizeof(m));
	const char name[] = "\0forkscope-test";
	off += put_attr(buf + off, UNIX_DIAG_NAME, name, sizeof(name) - 1);
	uint32_t icons[2] = {5000, 5001};
	off += put_attr(buf + off, UNIX_DIAG_ICONS, icons, sizeof(icons));
	struct unix_diag_rqlen q = {.udiag_rqueue = 2, .udiag_wqueue = 128};
	off += put_attr(buf + off, UNIX_DIAG_RQLEN, &q, sizeof(q));
	uint8_t shut = 0;
	off += put_attr(buf + off, UNIX_DIAG_SHUTDOWN, &shut, 1);
	struct nlmsghdr h = {.nlmsg_len = (uint32_t) off, .nlmsg_type = SOCK_DIAG_BY_FAMILY};
	memcpy(buf, &h, sizeof(h));
	/* second message: an established socket with a peer */
	size_t start = off;
	off += NLMSG_HDRLEN;
	struct unix_diag_msg m2 = {.udiag_family = AF_UNIX,
				   .udiag_type = SOCK_STREAM,
				   .udiag_state = 1,
				   .udiag_ino = 4712};
	memcpy(buf + off, &m2, sizeof(m2));
	off += NLMSG_ALIGN(sizeof(m2));
	uint32_t peer = 4713;
	off += put_attr(buf + off, UNIX_DIAG_PEER, &peer, sizeof(peer));
	h = (struct nlmsghdr){.nlmsg_len = (uint32_t) (off - start),
			      .nlmsg_type = SOCK_DIAG_BY_FAMILY};
	memcpy(buf + start, &h, sizeof(h));
	size_t done_at = off;
	h = (struct nlmsghdr){.nlmsg_len = NLMSG_HDRLEN + 4, .nlmsg_type = NLMSG_DONE};
	memcpy(buf + off, &h, sizeof(h));
	off += NLMSG_HDRLEN + 4;

	struct sockdiag_table *t = sockdiag_table_new();
	cr_assert_not_null(t);
	cr_assert_eq(sockdiag_parse_unix(buf, done_at, t), 0);
	cr_assert_eq(sockdiag_parse_unix(buf + done_at, off - done_at, t), 1);
	sockdiag_table_sort(t);
	const struct unix_sock_info *l = sockdiag_find_unix(t, 4711);
	cr_assert_not_null(l);
	cr_expect_str_eq(sock_state_name(l->state), "listen");
	cr_expect_str_eq(l->name, "@forkscope-test");
	cr_expect_eq(l->n_icons, 2);
	cr_expect_eq(l->icons[1], 5001);
	cr_expect_eq(l->rqlen, 2);
	cr_expect_eq(l->wqlen, 128);
	cr_expect_eq(l->shutdown, 0);
	const struct unix_sock_info *e = sockdiag_find_unix(t, 4712);
	cr_assert_not_null(e);
	cr_expect_eq(e->peer_ino, 4713);
	cr_expect_eq(e->shutdown, -1);
	cr_expect_null(sockdiag_find_unix(t, 1));

	/* truncated and lying lengths are rejected, never read past */
	cr_expect_lt(sockdiag_parse_unix(buf, 20, t), 0);
	struct nlmsghdr liar = {.nlmsg_len = 4096, .nlmsg_type = SOCK_DIAG_BY_FAMILY};
	cr_expect_lt(sockdiag_parse_unix(&liar, sizeof(liar), t), 0);
	struct {
		struct nlmsghdr h;
		int err;
	} error = {{.nlmsg_len = sizeof(error), .nlmsg_type = NLMSG_ERROR}, -EPERM};
	cr_expect_eq(sockdiag_parse_unix(&error, sizeof(error), t), -EPERM);
	sockdiag_table_free(t);
	sockdiag_table_free(NULL);
}

Test(procfs, live_self)
{
	/* the readers against our own /proc entry */
	int dirfd = procfs_open_pid(getpid());
	cr_assert_geq(dirfd, 0);
	struct proc_stat st;
	cr_assert_eq(procfs_read_stat(dirfd, &st), 0);
	cr_expect_eq(st.pid, getpid());
	struct proc_status status;
	cr_assert_eq(procfs_read_status(dirfd, &status), 0);
	cr_expect_eq(status.tgid, getpid());
	pid_t *tids = NULL;
	size_t n = 0;
	cr_assert_eq(procfs_read_tasks(dirfd, &tids, &n), 0);
	cr_expect_geq(n, 1);
	free(tids);
	char **argv = NULL;
	size_t argc = 0;
	cr_assert_eq(procfs_read_cmdline(dirfd, &argv, &argc), 0);
	cr_expect_geq(argc, 1);
	cr_expect_null(argv[argc]);
	free(argv);
	int *fds = NULL;
	cr_assert_eq(procfs_read_fds(dirfd, &fds, &n), 0);
	cr_expect_geq(n, 1);
	free(fds);
	cr_expect_eq(close(dirfd), 0);
	cr_expect_lt(procfs_open_pid(0x7ffffff0), 0);
}
