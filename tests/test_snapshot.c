/* probes/snapshot on the hang fixtures (fixtures/hang/): each fixture is
 * started in its own process group, the test waits for READY and for the
 * thread state the hang produces (bounded polling of /proc), snapshots the
 * tree and asserts the facts the wait-for graph will need. Then: nothing is
 * left stopped or traced, a target killed mid-snapshot gives partial records,
 * JSON round-trips, and an unprivileged snapshot of root's processes gives
 * partial records with reasons.
 *
 * Every test makes itself a child subreaper (orphans come back to it), kills
 * its fixture by process group, reaps, and asserts no process of that group
 * is left. No assertion depends on timing. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probes/snapshot.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"

#define WAIT_LIMIT_MS 20000 /* guard against a broken fixture, not a timing assertion */

struct fixture {
	pid_t pid; /* also the process group */
	char ready[256];
};

static void
become_subreaper(void)
{
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

TestSuite(snapshot, .init = become_subreaper);

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	(void) nanosleep(&ts, NULL);
}

static void
fixture_start(struct fixture *f, const char *env)
{
	const char *path = getenv(env);
	cr_assert_not_null(path, "%s not set (run through meson test)", env);
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		(void) dup2(p[1], STDOUT_FILENO);
		/* the fixture dies with us if a test aborts halfway */
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		execl(path, path, (char *) NULL);
		_exit(127);
	}
	(void) close(p[1]);
	f->pid = pid;
	size_t len = 0;
	while (len + 1 < sizeof(f->ready)) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int r = poll(&pfd, 1, WAIT_LIMIT_MS);
		cr_assert_gt(r, 0, "%s: no READY line", env);
		ssize_t n = read(p[0], f->ready + len, 1);
		cr_assert_eq(n, 1, "%s: exited before READY", env);
		if (f->ready[len] == '\n')
			break;
		len++;
	}
	f->ready[len] = '\0';
	(void) close(p[0]);
	cr_assert(strncmp(f->ready, "READY", 5) == 0, "%s: %s", env, f->ready);
}

static long
fixture_value(const struct fixture *f, const char *key)
{
	char pattern[64];
	(void) snprintf(pattern, sizeof(pattern), " %s=", key);
	const char *s = strstr(f->ready, pattern);
	cr_assert_not_null(s, "no %s in '%s'", key, f->ready);
	return strtol(s + strlen(pattern), NULL, 0);
}

/* pids of live processes (zombies included) in process group pgid */
static size_t
group_members(pid_t pgid, pid_t *out, size_t cap)
{
	DIR *d = opendir("/proc");
	size_t n = 0;
	struct dirent *de;
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		int pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		char path[300], buf[1024];
		(void) snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		ssize_t len = read_file_into(path, buf, sizeof(buf));
		struct proc_stat st;
		if (len <= 0 || procfs_parse_stat(buf, (size_t) len, &st) < 0)
			continue;
		if (st.pgrp == pgid) {
			if (n < cap)
				out[n] = st.pid;
			n++;
		}
	}
	(void) closedir(d);
	return n;
}

static void
assert_not_stopped_or_traced_in(pid_t pgid, const struct snapshot *snap);

/* Facts every snapshot must leave behind: no process of the fixture stopped
 * or traced. */
static void
assert_not_stopped_or_traced(pid_t pgid)
{
	assert_not_stopped_or_traced_in(pgid, NULL);
}

static const char *
sampling_note(const struct snapshot *snap, pid_t tid)
{
	for (size_t i = 0; snap && i < snap->n_processes; i++) {
		const struct snapshot_thread *t = snapshot_find_thread(&snap->processes[i], tid);
		if (t)
			return t->sampling_error ? t->sampling_error : "(no sampling error)";
	}
	return "(not in snapshot)";
}

static void
assert_not_stopped_or_traced_in(pid_t pgid, const struct snapshot *snap)
{
	pid_t pids[64];
	size_t n = group_members(pgid, pids, 64);
	for (size_t i = 0; i < n && i < 64; i++) {
		char dir[64];
		(void) snprintf(dir, sizeof(dir), "/proc/%d", (int) pids[i]);
		int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			continue;
		pid_t *tids = NULL;
		size_t nt = 0;
		if (procfs_read_tasks(dirfd, &tids, &nt) == 0) {
			for (size_t k = 0; k < nt; k++) {
				int tfd = procfs_open_task(dirfd, tids[k]);
				struct proc_status st;
				if (tfd < 0)
					continue;
				if (procfs_read_status(tfd, &st) == 0) {
					cr_expect_eq(st.tracer_pid, 0, "tid %d still traced by %d: %s",
						     (int) tids[k], (int) st.tracer_pid,
						     sampling_note(snap, tids[k]));
					cr_expect(st.state != 'T' && st.state != 't',
						  "tid %d left in state %c", (int) tids[k],
						  st.state);
				}
				(void) close(tfd);
			}
			free(tids);
		}
		(void) close(dirfd);
	}
}

static void
fixture_kill(struct fixture *f)
{
	if (f->pid <= 0)
		return;
	(void) kill(-f->pid, SIGKILL);
	/* reap the fixture and whatever of its tree came back to us */
	for (;;) {
		int status;
		pid_t r = waitpid(-1, &status, __WALL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
	}
	pid_t left[8];
	cr_expect_eq(group_members(f->pid, left, 8), 0, "processes of group %d left over",
		     (int) f->pid);
	f->pid = 0;
}

static bool
read_proc_stat(pid_t pid, pid_t tid, struct proc_stat *st)
{
	char path[64], buf[1024];
	(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int) pid, (int) tid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	return n > 0 && procfs_parse_stat(buf, (size_t) n, st) == 0;
}

static bool
read_wchan(pid_t pid, char *buf, size_t size)
{
	char path[64], raw[128];
	(void) snprintf(path, sizeof(path), "/proc/%d/wchan", (int) pid);
	ssize_t n = read_file_into(path, raw, sizeof(raw));
	if (n < 0)
		return false;
	procfs_parse_wchan(raw, (size_t) n, buf, size);
	return true;
}

static bool
read_syscall_nr(pid_t pid, long *nr)
{
	char path[64], raw[256];
	struct proc_syscall sc;
	(void) snprintf(path, sizeof(path), "/proc/%d/syscall", (int) pid);
	ssize_t n = read_file_into(path, raw, sizeof(raw));
	if (n <= 0 || procfs_parse_syscall(raw, (size_t) n, &sc) < 0 || sc.kind != PROC_SYSCALL_IN)
		return false;
	*nr = sc.nr;
	return true;
}

/* Bounded polling until pid's (main thread) state is `state` and, when given,
 * its syscall is nr. */
static void
wait_for_state(pid_t pid, char state, long nr)
{
	for (int ms = 0; ms < WAIT_LIMIT_MS; ms += 5) {
		struct proc_stat st;
		long cur;
		if (read_proc_stat(pid, pid, &st) && st.state == state &&
		    (nr < 0 || (read_syscall_nr(pid, &cur) && cur == nr)))
			return;
		sleep_ms(5);
	}
	cr_assert_fail("pid %d never reached state %c (syscall %ld)", (int) pid, state, nr);
}

static bool
wchan_matches(const char *wchan, const char *pattern)
{
	regex_t re;
	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	bool m = regexec(&re, wchan, 0, NULL, 0) == 0;
	regfree(&re);
	return m;
}

static void
wait_for_wchan(pid_t pid, const char *pattern)
{
	char w[128] = "";
	for (int ms = 0; ms < WAIT_LIMIT_MS; ms += 5) {
		if (read_wchan(pid, w, sizeof(w)) && wchan_matches(w, pattern))
			return;
		sleep_ms(5);
	}
	cr_assert_fail("pid %d never waited in %s (last wchan '%s')", (int) pid, pattern, w);
}

static struct snapshot *
take(const pid_t *roots, size_t n, pid_t pgid, bool stacks)
{
	struct snapshot_options opts;
	struct snapshot *snap = NULL;
	snapshot_options_init(&opts);
	opts.stacks = stacks;
	opts.subreaper = getpid();
	opts.pgid = pgid;
	int r = snapshot_take(roots, n, &opts, &snap);
	cr_assert_eq(r, 0, "snapshot_take: %s", strerror(-r));
	cr_assert_not_null(snap);
	cr_expect_geq(snap->finished_ns, snap->started_ns);
	cr_expect_eq(snap->duration_ns, snap->finished_ns - snap->started_ns);
	return snap;
}

static const struct snapshot_process *
must_find(const struct snapshot *snap, pid_t pid)
{
	const struct snapshot_process *p = snapshot_find_process(snap, pid);
	cr_assert_not_null(p, "pid %d not in the snapshot", (int) pid);
	return p;
}

static const struct snapshot_thread *
main_thread(const struct snapshot_process *p)
{
	const struct snapshot_thread *t = snapshot_find_thread(p, p->pid);
	cr_assert_not_null(t, "no main thread for %d", (int) p->pid);
	return t;
}

static const char *
sc_name(long nr)
{
	const char *n = syscall_name(nr);
	return n ? n : "?";
}

Test(snapshot, pipe_full)
{
	struct fixture f;
	fixture_start(&f, "HANG_PIPE_FULL");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	/* wchan is anon_pipe_write on 6.x, pipe_write before */
	wait_for_wchan(child, "pipe_write");
	wait_for_state(parent, 'S', SYS_wait4);

	struct snapshot *snap = take(&parent, 1, 0, true);
	const struct snapshot_process *pp = must_find(snap, parent);
	const struct snapshot_process *cp = must_find(snap, child);
	cr_expect(cp->found_via & (SNAPSHOT_VIA_CHILDREN | SNAPSHOT_VIA_PPID));
	cr_expect_eq(cp->ppid, parent);

	const struct snapshot_thread *writer = main_thread(cp);
	cr_expect(wchan_matches(writer->wchan, "^(anon_)?pipe_write$"), "wchan %s", writer->wchan);
	cr_assert_eq(writer->syscall.kind, PROC_SYSCALL_IN);
	cr_expect_eq(writer->syscall.nr, SYS_write, "syscall %s", sc_name(writer->syscall.nr));
	cr_expect_eq(writer->wait.fd, 1);
	cr_expect_eq(writer->wait.timeout_kind, SYSCALL_TIMEOUT_NA);

	const struct snapshot_fd *wfd = snapshot_find_fd(cp, 1);
	cr_assert_not_null(wfd);
	cr_expect_eq(wfd->kind, FD_KIND_PIPE);
	cr_expect_eq(wfd->access, O_WRONLY);
	cr_assert(wfd->has_pipe_fill, "pipe fill: %s", wfd->pipe_fill_error);
	cr_expect_eq(wfd->pipe_fill.queued, 65536);
	cr_expect_eq(wfd->pipe_fill.capacity, 65536);

	/* the reader of that pipe is the parent, which waits for the writer */
	const struct snapshot_fd *rfd = NULL;
	for (size_t i = 0; i < pp->n_fds; i++)
		if (pp->fds[i].ino == wfd->ino && pp->fds[i].kind == FD_KIND_PIPE)
			rfd = &pp->fds[i];
	cr_assert_not_null(rfd, "parent holds no end of pipe:[%lu]", (unsigned long) wfd->ino);
	cr_expect_eq(rfd->access, O_RDONLY);
	cr_expect_eq(rfd->pipe_fill.queued, 65536);
	const struct snapshot_thread *waiter = main_thread(pp);
	cr_expect_eq(waiter->syscall.nr, SYS_wait4);
	cr_expect_eq(waiter->wait.wait_pid, child);

	/* stacks landed: the writer's shows write() */
	if (writer->stack)
		cr_expect_gt(writer->stack->n_frames, 0);
	else
		cr_expect_not_null(cp->stacks_error);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, eof_never)
{
	struct fixture f;
	fixture_start(&f, "HANG_EOF_NEVER");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t grandchild = (pid_t) fixture_value(&f, "grandchild");
	wait_for_state(parent, 'S', SYS_read);
	wait_for_state(grandchild, 'S', -1);

	/* the grandchild's parent is gone: only the group and the subreaper find it */
	struct snapshot *snap = take(&parent, 1, f.pid, false);
	const struct snapshot_process *pp = must_find(snap, parent);
	const struct snapshot_process *gp = must_find(snap, grandchild);
	cr_expect(gp->found_via & (SNAPSHOT_VIA_PGID | SNAPSHOT_VIA_SUBREAPER));
	cr_expect(gp->orphan_hint);
	cr_expect(gp->ppid == getpid() || gp->ppid == 1);

	const struct snapshot_thread *reader = main_thread(pp);
	cr_assert_eq(reader->syscall.kind, PROC_SYSCALL_IN);
	cr_expect_eq(reader->syscall.nr, SYS_read);
	const struct snapshot_fd *rfd = snapshot_find_fd(pp, reader->wait.fd);
	cr_assert_not_null(rfd);
	cr_expect_eq(rfd->kind, FD_KIND_PIPE);
	cr_expect_eq(rfd->access, O_RDONLY);
	cr_assert(rfd->has_pipe_fill);
	cr_expect_eq(rfd->pipe_fill.queued, 0);

	/* who holds the write end: the grandchild, and only it */
	size_t writers = 0;
	for (size_t i = 0; i < snap->n_processes; i++) {
		const struct snapshot_process *p = &snap->processes[i];
		for (size_t k = 0; k < p->n_fds; k++)
			if (p->fds[k].ino == rfd->ino && p->fds[k].access == O_WRONLY) {
				writers++;
				cr_expect_eq(p->pid, grandchild, "write end held by %d",
					     (int) p->pid);
			}
	}
	cr_expect_eq(writers, 1);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, mutual_wait)
{
	struct fixture f;
	fixture_start(&f, "HANG_MUTUAL_WAIT");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	int pidfd = (int) fixture_value(&f, "pidfd");
	int sock = (int) fixture_value(&f, "sock");
	wait_for_state(child, 'S', SYS_read);
	wait_for_wchan(parent, "poll|schedule");

	struct snapshot *snap = take(&parent, 1, 0, false);
	const struct snapshot_process *pp = must_find(snap, parent);
	const struct snapshot_process *cp = must_find(snap, child);

	const struct snapshot_fd *pfd = snapshot_find_fd(pp, pidfd);
	cr_assert_not_null(pfd);
	cr_expect_eq(pfd->kind, FD_KIND_PIDFD);
	cr_expect_eq(pfd->pidfd_pid, child);
	/* the parent polls that pidfd, for ever */
	const struct snapshot_thread *pt = main_thread(pp);
	cr_assert_eq(pt->syscall.kind, PROC_SYSCALL_IN);
	cr_expect_eq(pt->wait.timeout_kind, SYSCALL_TIMEOUT_INFINITE);
	bool polls_pidfd = false;
	for (size_t i = 0; i < pt->n_wait_fds; i++)
		polls_pidfd |= pt->wait_fds[i].fd == pidfd;
	cr_expect(polls_pidfd, "poll set lacks the pidfd");

	/* the child reads its end of the socket; the peer is the parent's fd */
	const struct snapshot_thread *ct = main_thread(cp);
	cr_expect_eq(ct->syscall.nr, SYS_read);
	const struct snapshot_fd *cfd = snapshot_find_fd(cp, ct->wait.fd);
	cr_assert_not_null(cfd);
	cr_expect_eq(cfd->kind, FD_KIND_SOCKET);
	cr_assert(cfd->has_unix);
	const struct snapshot_fd *psock = snapshot_find_fd(pp, sock);
	cr_assert_not_null(psock);
	cr_expect_eq(cfd->unix_sock.peer_ino, psock->ino);
	cr_expect_str_eq(sock_state_name(cfd->unix_sock.state), "established");
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, lost_wakeup_futex)
{
	struct fixture f;
	fixture_start(&f, "HANG_LOST_WAKEUP_FUTEX");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	pid_t holder = (pid_t) fixture_value(&f, "holder");
	wait_for_state(child, 'S', SYS_futex);

	struct snapshot *snap = take(&parent, 1, 0, false);
	const struct snapshot_process *pp = must_find(snap, parent);
	const struct snapshot_process *cp = must_find(snap, child);
	cr_expect_eq(cp->n_threads, 1, "the child is single-threaded");
	const struct snapshot_thread *t = main_thread(cp);
	cr_assert_eq(t->syscall.nr, SYS_futex);
	cr_assert(t->has_futex);
	cr_expect_str_eq(futex_cmd_name(t->futex.cmd), "FUTEX_WAIT");
	cr_expect(t->futex.private_flag);
	cr_expect(t->futex.word_read);
	cr_expect_neq(t->futex.word, 0);
	cr_expect(t->futex.owner_read);
	cr_expect_eq(t->futex.owner_tid, holder);
	/* the owner is not in the child's task list but exists in the parent */
	cr_expect_null(snapshot_find_thread(cp, holder));
	cr_expect_not_null(snapshot_find_thread(pp, holder));
	cr_expect_eq(t->futex.owner_where, FUTEX_OWNER_OTHER_PROCESS);
	cr_expect_eq(t->futex.owner_pid, parent);
	cr_expect_eq(t->wait.timeout_kind, SYSCALL_TIMEOUT_INFINITE);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

static bool
sigint_pending(pid_t pid)
{
	char path[64], buf[4096];
	struct proc_status st;
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	if (n <= 0 || procfs_parse_status(buf, (size_t) n, &st) < 0)
		return false;
	return ((st.shd_pending | st.sig_pending) & (1ULL << (SIGINT - 1))) != 0;
}

Test(snapshot, signal_blocked)
{
	struct fixture f;
	fixture_start(&f, "HANG_SIGNAL_BLOCKED");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	int status;
	cr_assert_eq(waitpid(parent, &status, 0), parent); /* the parent exits by design */
	int ms = 0;
	while (!sigint_pending(child) && ms < WAIT_LIMIT_MS) {
		sleep_ms(5);
		ms += 5;
	}
	cr_assert(sigint_pending(child), "SIGINT never became pending");
	wait_for_state(child, 'S', -1);

	/* the root is gone; the orphan is found through group and subreaper */
	struct snapshot *snap = take(&parent, 1, f.pid, false);
	const struct snapshot_process *cp = must_find(snap, child);
	cr_expect(cp->ppid == getpid() || cp->ppid == 1, "ppid %d", (int) cp->ppid);
	cr_expect(cp->orphan_hint);
	const struct snapshot_thread *t = main_thread(cp);
	uint64_t bit = 1ULL << (SIGINT - 1);
	cr_expect((cp->shd_pending | t->sig_pending) & bit, "SIGINT not pending");
	cr_expect(t->sig_blocked & bit, "SIGINT not blocked");
	cr_expect_not(cp->sig_ignored & bit);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, busy_loop)
{
	struct fixture f;
	fixture_start(&f, "HANG_BUSY_LOOP");
	pid_t pid = (pid_t) fixture_value(&f, "pid");
	int fd = (int) fixture_value(&f, "fd");
	wait_for_state(pid, 'R', -1);

	struct snapshot *snap = take(&pid, 1, 0, false);
	const struct snapshot_process *p = must_find(snap, pid);
	const struct snapshot_thread *t = main_thread(p);
	cr_assert(t->samples[0].valid && t->samples[1].valid);
	cr_expect_gt(t->samples[1].utime + t->samples[1].stime,
		     t->samples[0].utime + t->samples[0].stime, "CPU time did not rise");
	cr_expect_gt(t->samples[1].at_ns, t->samples[0].at_ns);
	cr_expect_gt(t->n_syscall_samples, 0, "no syscall samples: %s", t->sampling_error);
	bool recv_on_fd = false;
	for (size_t i = 0; i < t->n_histogram; i++) {
		const struct syscall_histogram_entry *e = &t->histogram[i];
		if (e->kind == SYSCALL_SAMPLE_SYSCALL &&
		    (e->nr == SYS_recvfrom || e->nr == SYS_read) && (int) e->arg0 == fd) {
			recv_on_fd = true;
			if (e->has_result)
				cr_expect_eq(e->result, 0, "recv returned %ld", (long) e->result);
		}
	}
	cr_expect(recv_on_fd, "no recvfrom/read on fd %d sampled", fd);
	const struct snapshot_fd *sfd = snapshot_find_fd(p, fd);
	cr_assert_not_null(sfd);
	cr_expect(sfd->has_unix);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, sampling_leaves_nothing_traced)
{
	/* many ptrace samples of busy threads, back to back: every race between
	 * a stop and our waits gets its chance; after each snapshot nothing may
	 * be stopped or traced */
	struct fixture f;
	fixture_start(&f, "HANG_HEALTHY_BUSY");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	for (int i = 0; i < 30; i++) {
		struct snapshot_options opts;
		struct snapshot *snap = NULL;
		snapshot_options_init(&opts);
		opts.stacks = false;
		opts.sample_interval_ns = 0;
		opts.syscall_samples = 50;
		cr_assert_eq(snapshot_take(&parent, 1, &opts, &snap), 0);
		assert_not_stopped_or_traced_in(f.pid, snap);
		snapshot_free(snap);
	}
	fixture_kill(&f);
}

Test(snapshot, unreaped_zombie)
{
	struct fixture f;
	fixture_start(&f, "HANG_UNREAPED_ZOMBIE");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	wait_for_state(child, 'Z', -1);
	wait_for_state(parent, 'S', -1);

	struct snapshot *snap = take(&parent, 1, 0, true);
	const struct snapshot_process *cp = must_find(snap, child);
	cr_expect(cp->zombie);
	cr_expect_eq(cp->state, 'Z');
	cr_expect_eq(cp->ppid, parent);
	cr_expect_not(cp->partial, "zombie marked partial: %s", cp->partial_reason);
	const struct snapshot_thread *pt = main_thread(must_find(snap, parent));
	cr_expect_eq(pt->syscall.nr, SYS_pause);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, boot_death)
{
	struct fixture f;
	fixture_start(&f, "HANG_BOOT_DEATH");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	int listener = (int) fixture_value(&f, "listener");
	wait_for_state(child, 'Z', -1);
	wait_for_state(parent, 'S', SYS_accept4);

	struct snapshot *snap = take(&parent, 1, 0, false);
	const struct snapshot_process *pp = must_find(snap, parent);
	const struct snapshot_thread *t = main_thread(pp);
	cr_expect_eq(t->syscall.nr, SYS_accept4);
	cr_expect_eq(t->wait.fd, listener);
	const struct snapshot_fd *lfd = snapshot_find_fd(pp, listener);
	cr_assert_not_null(lfd);
	cr_assert(lfd->has_unix, "no sock_diag record (%s)", snap->sockdiag_error);
	cr_expect_str_eq(sock_state_name(lfd->unix_sock.state), "listen");
	char name[64];
	(void) snprintf(name, sizeof(name), "@forkscope-boot-death-%d", (int) parent);
	cr_expect_str_eq(lfd->unix_sock.name, name);
	cr_expect_eq(lfd->unix_sock.n_icons, 0);
	const struct snapshot_process *cp = must_find(snap, child);
	cr_expect(cp->zombie);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, healthy_poll)
{
	struct fixture f;
	fixture_start(&f, "HANG_HEALTHY_POLL");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	wait_for_state(child, 'S', -1);

	struct snapshot *snap = take(&parent, 1, 0, false);
	const struct snapshot_thread *pt = main_thread(must_find(snap, parent));
	const struct snapshot_thread *ct = main_thread(must_find(snap, child));
	/* progress: both sides switched context between the samples */
	cr_expect_gt(pt->samples[1].voluntary_ctxt_switches,
		     pt->samples[0].voluntary_ctxt_switches);
	cr_expect_gt(ct->samples[1].voluntary_ctxt_switches,
		     ct->samples[0].voluntary_ctxt_switches);
	/* when caught sleeping, the wait is a timed one */
	if (pt->syscall.kind == PROC_SYSCALL_IN && pt->wait.timeout_kind != SYSCALL_TIMEOUT_NA)
		cr_expect_eq(pt->wait.timeout_kind, SYSCALL_TIMEOUT_RELATIVE);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, healthy_busy)
{
	struct fixture f;
	fixture_start(&f, "HANG_HEALTHY_BUSY");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");

	struct snapshot *snap = take(&parent, 1, 0, false);
	const struct snapshot_process *pp = must_find(snap, parent);
	must_find(snap, child);
	cr_assert(pp->has_io[0] && pp->has_io[1]);
	cr_expect_gt(pp->io[1].wchar, pp->io[0].wchar, "no output between the samples");
	const struct snapshot_thread *pt = main_thread(pp);
	cr_expect_gt(pt->samples[1].utime + pt->samples[1].stime,
		     pt->samples[0].utime + pt->samples[0].stime);
	assert_not_stopped_or_traced_in(f.pid, snap);
	snapshot_free(snap);
	fixture_kill(&f);
}

Test(snapshot, fd_kinds_of_self)
{
	/* our own fd table holds one of each kind; the snapshot must classify
	 * them and read their fdinfo facts */
	char fifo[] = "/tmp/forkscope-fifo-XXXXXX";
	cr_assert_not_null(mkdtemp(fifo));
	char fifo_path[64];
	(void) snprintf(fifo_path, sizeof(fifo_path), "%s/f", fifo);
	cr_assert_eq(mkfifo(fifo_path, 0600), 0);
	int ff = open(fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	cr_assert_geq(ff, 0);
	cr_assert_eq(write(ff, "abc", 3), 3);
	int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int efd = eventfd(7, EFD_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct itimerspec its = {.it_value = {.tv_sec = 3600}};
	cr_assert_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xfeedULL};
	cr_assert_eq(epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev), 0);
	cr_assert(dfd >= 0 && efd >= 0 && tfd >= 0 && sfd >= 0 && epfd >= 0);

	pid_t self = getpid();
	struct snapshot_options opts;
	struct snapshot *snap = NULL;
	snapshot_options_init(&opts);
	opts.descendants = false;
	opts.stacks = false;
	opts.sample_interval_ns = 0;
	cr_assert_eq(snapshot_take(&self, 1, &opts, &snap), 0);
	const struct snapshot_process *p = must_find(snap, self);
	cr_expect_eq(p->found_via, SNAPSHOT_VIA_ROOT);

	const struct snapshot_fd *f = snapshot_find_fd(p, ff);
	cr_assert_not_null(f);
	cr_expect_eq(f->kind, FD_KIND_PIPE, "named fifo is %s", fd_kind_name(f->kind));
	cr_expect_eq(f->access, O_RDWR);
	cr_expect(f->nonblock);
	cr_expect(f->cloexec);
	cr_assert(f->has_pipe_fill, "%s", f->pipe_fill_error);
	cr_expect_eq(f->pipe_fill.queued, 3);
	cr_expect_eq(snapshot_find_fd(p, dfd)->kind, FD_KIND_DIR);
	const struct snapshot_fd *e = snapshot_find_fd(p, efd);
	cr_expect_eq(e->kind, FD_KIND_EVENTFD);
	cr_expect_eq(e->eventfd_count, 7);
	const struct snapshot_fd *t = snapshot_find_fd(p, tfd);
	cr_expect_eq(t->kind, FD_KIND_TIMERFD);
	cr_expect_gt(t->timerfd_value_ns, 0, "armed timerfd reads as disarmed");
	cr_expect_eq(t->timerfd_clockid, CLOCK_MONOTONIC);
	const struct snapshot_fd *s = snapshot_find_fd(p, sfd);
	cr_expect_eq(s->kind, FD_KIND_SIGNALFD);
	cr_expect_eq(s->signalfd_mask, 1ULL << (SIGUSR2 - 1));
	const struct snapshot_fd *ep = snapshot_find_fd(p, epfd);
	cr_expect_eq(ep->kind, FD_KIND_EPOLL);
	cr_assert_eq(ep->n_epoll_targets, 1);
	cr_expect_eq(ep->epoll_targets[0].tfd, efd);
	cr_expect_eq(ep->epoll_targets[0].data, 0xfeedULL);
	cr_expect_eq(ep->epoll_targets[0].ino, e->ino);

	json_t *doc = snapshot_to_json(snap);
	struct snapshot *back = NULL;
	cr_assert_eq(snapshot_from_json(doc, &back), 0);
	json_t *again = snapshot_to_json(back);
	cr_expect(json_equal(doc, again));
	json_decref(doc);
	json_decref(again);
	snapshot_free(back);
	snapshot_free(snap);
	(void) close(ff);
	(void) close(dfd);
	(void) close(efd);
	(void) close(tfd);
	(void) close(sfd);
	(void) close(epfd);
	(void) unlink(fifo_path);
	(void) rmdir(fifo);
}

Test(snapshot, json_round_trip)
{
	struct fixture f;
	fixture_start(&f, "HANG_MUTUAL_WAIT");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	wait_for_state(child, 'S', SYS_read);
	struct snapshot *snap = take(&parent, 1, 0, true);

	json_t *doc = snapshot_to_json(snap);
	cr_assert_not_null(doc);
	/* through text too, as snapshot.json is re-read by `forkscope report` */
	char *text = json_dumps(doc, JSON_COMPACT);
	cr_assert_not_null(text);
	json_error_t err;
	json_t *reread = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	cr_assert_not_null(reread, "%s", err.text);
	struct snapshot *back = NULL;
	cr_assert_eq(snapshot_from_json(reread, &back), 0);
	json_t *again = snapshot_to_json(back);
	cr_expect(json_equal(doc, again), "JSON differs after a round trip");
	cr_expect_eq(back->n_processes, snap->n_processes);
	const struct snapshot_process *bp = must_find(back, parent);
	const struct snapshot_process *sp = must_find(snap, parent);
	cr_expect_eq(bp->n_fds, sp->n_fds);
	cr_expect_eq(bp->shd_pending, sp->shd_pending);
	cr_expect_eq(main_thread(bp)->syscall.args[0], main_thread(sp)->syscall.args[0]);
	cr_expect_eq(snapshot_from_json(json_object_get(doc, "processes"), &back), 0 - EINVAL);
	free(text);
	json_decref(doc);
	json_decref(reread);
	json_decref(again);
	snapshot_free(back);
	snapshot_free(snap);
	snapshot_free(NULL);
	fixture_kill(&f);
}

struct killer {
	pid_t pgid;
	long delay_ms;
	atomic_bool started;
	atomic_bool done;
};

static void *
killer_main(void *arg)
{
	struct killer *k = arg;
	while (!atomic_load(&k->started))
		sleep_ms(1);
	sleep_ms(k->delay_ms);
	(void) kill(-k->pgid, SIGKILL);
	atomic_store(&k->done, true);
	return NULL;
}

/* Snapshot a tree in a loop while a thread SIGKILLs it delay_ms after the
 * first snapshot started; returns whether any record came out partial. */
static bool
snapshot_while_killed(const char *fixture, long delay_ms)
{
	struct fixture f;
	fixture_start(&f, fixture);
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	struct killer k = {.pgid = f.pid, .delay_ms = delay_ms};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, killer_main, &k), 0);

	bool saw_partial = false;
	for (int rounds = 0; rounds < 50; rounds++) {
		struct snapshot_options opts;
		struct snapshot *snap = NULL;
		snapshot_options_init(&opts);
		opts.stacks = rounds % 2 == 0;
		atomic_store(&k.started, true);
		int r = snapshot_take(&parent, 1, &opts, &snap);
		cr_assert(r == 0 || r == -ESRCH, "snapshot_take: %s", strerror(-r));
		if (r == -ESRCH)
			break; /* every process gone and reaped */
		for (size_t i = 0; i < snap->n_processes; i++)
			if (snap->processes[i].partial) {
				saw_partial = true;
				cr_expect_not_null(snap->processes[i].partial_reason);
			}
		json_t *doc = snapshot_to_json(snap);
		cr_expect_not_null(doc);
		json_decref(doc);
		snapshot_free(snap);
		if (atomic_load(&k.done)) {
			/* reap what died so the root disappears */
			int status;
			while (waitpid(-1, &status, WNOHANG | __WALL) > 0)
				;
		}
	}
	cr_assert_eq(pthread_join(th, NULL), 0);
	fixture_kill(&f);
	return saw_partial;
}

Test(snapshot, killed_mid_snapshot)
{
	/* the kill lands between the two samples: the second one sees it */
	cr_expect(snapshot_while_killed("HANG_HEALTHY_POLL", 40),
		  "no partial record across the kill");
}

Test(snapshot, killed_while_reading)
{
	/* the kill lands somewhere in the reading (stacks, ptrace samples of
	 * the busy parent): whatever it hits, no crash and no error */
	(void) snapshot_while_killed("HANG_HEALTHY_BUSY", 3);
	(void) snapshot_while_killed("HANG_PIPE_FULL", 1);
}

/* Kill the group as soon as its leader shows a tracer (our sampler). */
static void *
kill_when_traced(void *arg)
{
	struct killer *k = arg;
	char path[64], buf[4096];
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) k->pgid);
	while (!atomic_load(&k->started))
		sleep_ms(1);
	for (int spins = 0; spins < 200000; spins++) {
		struct proc_status st;
		ssize_t n = read_file_into(path, buf, sizeof(buf));
		if (n > 0 && procfs_parse_status(buf, (size_t) n, &st) == 0 && st.tracer_pid != 0)
			break;
	}
	(void) kill(-k->pgid, SIGKILL);
	atomic_store(&k->done, true);
	return NULL;
}

Test(snapshot, killed_child_keeps_exit_status)
{
	/* The busy root is our own child and gets ptrace-sampled; if it dies
	 * meanwhile, its exit must still be ours to reap, with its status. */
	struct fixture f;
	fixture_start(&f, "HANG_BUSY_LOOP");
	pid_t pid = (pid_t) fixture_value(&f, "pid");
	wait_for_state(pid, 'R', -1);
	struct killer k = {.pgid = f.pid};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, kill_when_traced, &k), 0);
	struct snapshot_options opts;
	struct snapshot *snap = NULL;
	snapshot_options_init(&opts);
	opts.stacks = false;
	opts.syscall_samples = 2000; /* a long sampling, for the kill to land in */
	atomic_store(&k.started, true);
	int r = snapshot_take(&pid, 1, &opts, &snap);
	cr_assert(r == 0 || r == -ESRCH, "snapshot_take: %s", strerror(-r));
	snapshot_free(snap);
	cr_assert_eq(pthread_join(th, NULL), 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid, "the snapshot reaped our child");
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
	fixture_kill(&f);
}

Test(snapshot, unprivileged)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: drops to uid 65534 to look at root's processes");
	struct fixture f;
	fixture_start(&f, "HANG_PIPE_FULL");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	wait_for_wchan(child, "pipe_write");

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* result as exit code: bit set = that expectation failed */
		int bad = 0;
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		struct snapshot_options opts;
		struct snapshot *snap = NULL;
		snapshot_options_init(&opts);
		opts.sample_interval_ns = 10 * 1000 * 1000;
		int r = snapshot_take(&parent, 1, &opts, &snap);
		if (r < 0)
			_exit(101);
		if (snap->n_processes < 2)
			bad |= 1;
		for (size_t i = 0; i < snap->n_processes; i++) {
			const struct snapshot_process *p = &snap->processes[i];
			if (!p->partial || !p->partial_reason ||
			    !strstr(p->partial_reason, strerror(EACCES)))
				bad |= 2;
			if (p->state != 'S')
				bad |= 4; /* stat stays readable */
			/* the same facts as gaps: denied by errno, stacks by cause */
			bool denied = false, stacks_other_user = false;
			for (size_t k = 0; k < p->n_gaps; k++) {
				const struct snapshot_gap *g = &p->gaps[k];
				denied = denied || snapshot_gap_classify(g->err, g->cause) == SNAPSHOT_GAP_DENIED;
				stacks_other_user = stacks_other_user ||
						    (strcmp(g->what, "stacks") == 0 && g->err == EPERM && g->cause &&
						     strcmp(g->cause, "other-user") == 0);
			}
			if (!denied)
				bad |= 16;
			if (!stacks_other_user)
				bad |= 32;
		}
		json_t *doc = snapshot_to_json(snap);
		if (!doc)
			bad |= 8;
		json_decref(doc);
		snapshot_free(snap);
		_exit(bad);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "unprivileged snapshot crashed (status %#x)", status);
	cr_expect_eq(WEXITSTATUS(status), 0, "unprivileged expectations failed: %d",
		     WEXITSTATUS(status));
	assert_not_stopped_or_traced(f.pid);
	fixture_kill(&f);
}

Test(snapshot, gap_kinds)
{
	cr_assert_eq(snapshot_gap_classify(EPERM, NULL), SNAPSHOT_GAP_DENIED);
	cr_assert_eq(snapshot_gap_classify(EACCES, NULL), SNAPSHOT_GAP_DENIED);
	cr_assert_eq(snapshot_gap_classify(ESRCH, NULL), SNAPSHOT_GAP_GONE);
	cr_assert_eq(snapshot_gap_classify(ENOENT, NULL), SNAPSHOT_GAP_GONE);
	cr_assert_eq(snapshot_gap_classify(ETIMEDOUT, NULL), SNAPSHOT_GAP_OTHER);
	cr_assert_eq(snapshot_gap_classify(EPERM, "traced"), SNAPSHOT_GAP_TRACED);
	cr_assert_eq(snapshot_gap_classify(EPERM, "kernel-thread"), SNAPSHOT_GAP_KERNEL_THREAD);
	cr_assert_eq(snapshot_gap_classify(EPERM, "not-dumpable"), SNAPSHOT_GAP_DENIED);
	cr_assert_eq(snapshot_gap_classify(0, "pid-reused"), SNAPSHOT_GAP_GONE);
	cr_assert_eq(snapshot_gap_classify(0, NULL), SNAPSHOT_GAP_OTHER);
	cr_assert_str_eq(snapshot_gap_kind_name(SNAPSHOT_GAP_KERNEL_THREAD), "kernel-thread");

	/* From snapshot.json: the numbers decide, never an English text. */
	json_error_t err;
	json_t *proc = json_loads("{\"pid\": 5, \"partial_reason\": \"status: Permission denied\", \"gaps\": ["
				  "{\"what\": \"status\", \"errno\": 13, \"errno_name\": \"EACCES\"},"
				  "{\"what\": \"stacks\", \"errno\": 1, \"cause\": \"traced\", \"tracer\": 9},"
				  "{\"what\": \"second sample\", \"errno\": 3, \"detail\": \"Permission denied\"},"
				  "\"junk\"]}",
				  0, &err);
	cr_assert_not_null(proc, "%s", err.text);
	const json_t *gaps = json_object_get(proc, "gaps");
	cr_assert_eq(snapshot_gap_kind(json_array_get(gaps, 0)), SNAPSHOT_GAP_DENIED);
	cr_assert_eq(snapshot_gap_kind(json_array_get(gaps, 1)), SNAPSHOT_GAP_TRACED);
	cr_assert_eq(snapshot_gap_kind(json_array_get(gaps, 2)), SNAPSHOT_GAP_GONE);
	struct snapshot_gap_summary s;
	snapshot_process_gap_summary(proc, &s);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.by_kind[SNAPSHOT_GAP_DENIED], 1);
	cr_assert_eq(s.by_kind[SNAPSHOT_GAP_TRACED], 1);
	cr_assert_eq(s.by_kind[SNAPSHOT_GAP_GONE], 1);
	cr_assert(s.stacks);
	json_decref(proc);
	/* A snapshot from before the gaps: nothing to count. */
	proc = json_pack("{s:i, s:s}", "pid", 5, "partial_reason", "status: Permission denied");
	snapshot_process_gap_summary(proc, &s);
	cr_assert_eq(s.n, 0);
	json_decref(proc);
}

/* A tracer of our own making: PTRACE_SEIZE of target, then it waits for
 * its release (or our death). */
static pid_t
tracer_start(pid_t target, int *ret_release)
{
	int ready[2], release[2];
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(release, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		(void) close(ready[0]);
		(void) close(release[1]);
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		char ok = ptrace(PTRACE_SEIZE, target, NULL, NULL) == 0;
		if (write(ready[1], &ok, 1) != 1)
			_exit(1);
		char c;
		while (read(release[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	(void) close(ready[1]);
	(void) close(release[0]);
	char ok = 0;
	cr_assert_eq(read(ready[0], &ok, 1), 1);
	(void) close(ready[0]);
	cr_assert_eq(ok, 1, "the tracer could not seize %d", (int) target);
	*ret_release = release[1];
	return pid;
}

Test(snapshot, gap_of_a_traced_process)
{
	struct fixture f;
	fixture_start(&f, "HANG_MUTUAL_WAIT");
	pid_t parent = (pid_t) fixture_value(&f, "parent");
	pid_t child = (pid_t) fixture_value(&f, "child");
	wait_for_state(child, 'S', SYS_read);
	int release;
	pid_t tracer = tracer_start(child, &release);

	struct snapshot *snap = take(&parent, 1, 0, true);
	const struct snapshot_process *p = must_find(snap, child);
	cr_assert_not_null(p->stacks_error);
	const struct snapshot_gap *g = NULL;
	for (size_t i = 0; i < p->n_gaps; i++)
		if (strcmp(p->gaps[i].what, "stacks") == 0)
			g = &p->gaps[i];
	cr_assert_not_null(g, "no stacks gap (stacks_error: %s)", p->stacks_error);
	cr_assert_eq(g->err, EPERM);
	cr_assert_str_eq(g->cause, "traced");
	cr_assert_eq(g->tracer, tracer);
	cr_assert_eq(snapshot_gap_classify(g->err, g->cause), SNAPSHOT_GAP_TRACED);
	/* The parent, not traced, has its stacks and no stacks gap. */
	const struct snapshot_process *pp = must_find(snap, parent);
	cr_assert_null(pp->stacks_error, "%s", pp->stacks_error);

	json_t *doc = snapshot_to_json(snap);
	const json_t *jp = NULL, *jg;
	size_t i;
	json_array_foreach(json_object_get(doc, "processes"), i, jg)
		if (json_integer_value(json_object_get(jg, "pid")) == child)
			jp = jg;
	cr_assert_not_null(jp);
	const json_t *stacks_gap = NULL;
	json_array_foreach(json_object_get(jp, "gaps"), i, jg)
		if (strcmp(json_string_value(json_object_get(jg, "what")), "stacks") == 0)
			stacks_gap = jg;
	cr_assert_not_null(stacks_gap);
	cr_assert_str_eq(json_string_value(json_object_get(stacks_gap, "errno_name")), "EPERM");
	cr_assert_eq(json_integer_value(json_object_get(stacks_gap, "errno")), EPERM);
	cr_assert_eq(json_integer_value(json_object_get(stacks_gap, "tracer")), tracer);
	cr_assert_eq(snapshot_gap_kind(stacks_gap), SNAPSHOT_GAP_TRACED);
	/* and back: the gaps survive a round trip */
	struct snapshot *back = NULL;
	cr_assert_eq(snapshot_from_json(doc, &back), 0);
	json_t *again = snapshot_to_json(back);
	cr_assert(json_equal(doc, again), "JSON differs after a round trip");
	json_decref(again);
	json_decref(doc);
	snapshot_free(back);
	snapshot_free(snap);

	(void) kill(tracer, SIGKILL);
	(void) close(release);
	int status;
	cr_assert_eq(waitpid(tracer, &status, 0), tracer);
	assert_not_stopped_or_traced(f.pid);
	fixture_kill(&f);
}

/* The util/jsonutil accessors snapshot_from_json reads with. */
Test(snapshot, json_accessors)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:s, s:s, s:n}", "hex", "0x1f", "bare", "ff", "upper",
			      "0XABCDEF0123456789", "long", "0x00000000000000000001", "junk", "0x1g", "int",
			      (json_int_t) 42, "neg", -1, "state", "S", "empty", "", "null");
	cr_assert_not_null(o);
	uint64_t v = 7;
	cr_assert_eq(json_hex_checked(o, "hex", &v), 0);
	cr_assert_eq(v, 0x1f);
	cr_assert_eq(json_hex(o, "bare", 0), 0xff);
	cr_assert_eq(json_hex(o, "upper", 0), 0xABCDEF0123456789ULL);
	cr_assert_eq(json_hex(o, "long", 0), 1, "leading zeros are no overflow");
	cr_assert_eq(json_hex(o, "int", 0), 42);
	v = 7;
	cr_assert_eq(json_hex_checked(o, "junk", &v), -EINVAL);
	cr_assert_eq(v, 7, "untouched on failure");
	cr_assert_eq(json_hex_checked(o, "neg", &v), -EINVAL);
	cr_assert_eq(json_hex_checked(o, "missing", &v), -ENOENT);
	cr_assert_eq(json_hex_checked(o, "null", &v), -EINVAL);
	cr_assert_eq(json_hex(o, "junk", 99), 99);
	json_t *big = json_pack("{s:s}", "h", "0x10000000000000000");
	cr_assert_eq(json_hex_checked(big, "h", &v), -EINVAL, "17 significant digits overflow");
	json_decref(big);
	cr_assert_eq(json_char(o, "state", '?'), 'S');
	cr_assert_eq(json_char(o, "empty", '?'), '?');
	cr_assert_eq(json_char(o, "int", '?'), '?');
	bool ok = true;
	char *s = json_strdup(o, "state", &ok);
	cr_assert_str_eq(s, "S");
	free(s);
	cr_assert_null(json_strdup(o, "int", &ok));
	cr_assert_null(json_strdup(o, "missing", &ok));
	cr_assert(ok);
	json_decref(o);
}
