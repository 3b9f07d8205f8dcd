/* probes/stacks: live captures of fixture processes (fixtures/stacks/),
 * the shared cache on a forked tree, the ptrace-denied path, targets that
 * die, stop or churn threads during a capture, and offline symbolization.
 *
 * Every test makes itself a child subreaper, kills what it started by pid,
 * reaps it, and asserts that no child is left. Fixtures also die with their
 * parent (PR_SET_PDEATHSIG) should a test abort halfway. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probes/stacks.h"
#include "util/fdutil.h"

extern char **environ;

#define MAX_CHILDREN 16

struct fixture {
	pid_t pid;
	int out_fd;
	size_t n_children;
	pid_t children[MAX_CHILDREN];
	int depth[MAX_CHILDREN];
	char function[MAX_CHILDREN][64];
};

static void
become_subreaper(void)
{
	/* Orphaned fixture children come back to us, to be reaped by pid. */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

TestSuite(stacks, .init = become_subreaper);

static void
sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	(void) nanosleep(&ts, NULL);
}

/* Start the fixture in mode with an optional argument; return once it
 * printed READY, with the CHILD lines it printed before parsed. */
static void
fixture_start(struct fixture *fx, const char *mode, const char *arg)
{
	const char *path = getenv("STACK_FIXTURE");
	cr_assert(path, "STACK_FIXTURE is not set (run through meson test)");
	*fx = (struct fixture){ .pid = -1, .out_fd = -1 };

	int out[2];
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
	char *argv[] = { (char *) path, (char *) mode, (char *) arg, NULL };
	int r = posix_spawn(&fx->pid, path, &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	(void) close(out[1]);
	cr_assert_eq(r, 0, "posix_spawn %s: %s", path, strerror(r));
	fx->out_fd = out[0];

	char buf[8192];
	size_t len = 0;
	for (;;) {
		char *nl;
		while ((nl = memchr(buf, '\n', len))) {
			*nl = '\0';
			if (strcmp(buf, "READY") == 0)
				return;
			int child_pid, depth;
			char function[64];
			if (sscanf(buf, "CHILD %d %d %63s", &child_pid, &depth, function) == 3) {
				cr_assert_lt(fx->n_children, MAX_CHILDREN);
				fx->children[fx->n_children] = child_pid;
				fx->depth[fx->n_children] = depth;
				(void) snprintf(fx->function[fx->n_children],
						sizeof(fx->function[0]), "%s", function);
				fx->n_children++;
			}
			len -= (size_t) (nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
		/* Long bound: a hang detector, not a timing assertion. */
		struct pollfd pfd = { .fd = fx->out_fd, .events = POLLIN };
		cr_assert_eq(poll(&pfd, 1, 60000), 1, "fixture %s printed no READY", mode);
		ssize_t n = read(fx->out_fd, buf + len, sizeof(buf) - 1 - len);
		cr_assert_gt(n, 0, "fixture %s exited before READY", mode);
		len += (size_t) n;
	}
}

static char
task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[1024];
	(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int) pid, (int) tid);
	if (read_file_into(path, buf, sizeof(buf)) < 0)
		return '?';
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static int
task_tracer(pid_t pid, pid_t tid)
{
	char path[64], buf[4096];
	(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int) pid, (int) tid);
	if (read_file_into(path, buf, sizeof(buf)) < 0)
		return -1;
	const char *p = strstr(buf, "TracerPid:");
	return p ? atoi(p + strlen("TracerPid:")) : -1;
}

static size_t
list_tasks(pid_t pid, pid_t *tids, size_t max)
{
	char path[64];
	(void) snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dir)) && n < max)
		if (de->d_name[0] != '.')
			tids[n++] = atoi(de->d_name);
	(void) closedir(dir);
	return n;
}

/* Wait until pid has at least n_threads threads, all in state `state`. */
static void
wait_threads_in_state(pid_t pid, size_t n_threads, char state)
{
	for (int i = 0; i < 60000; i++) {
		pid_t tids[64];
		size_t n = list_tasks(pid, tids, 64);
		size_t matching = 0;
		for (size_t j = 0; j < n; j++)
			matching += task_state(pid, tids[j]) == state;
		if (n >= n_threads && matching == n)
			return;
		sleep_ms(1);
	}
	cr_assert_fail("pid %d never had %zu threads in state %c", (int) pid, n_threads, state);
}

/* Previous state back: nothing traced, nothing left in a tracing stop;
 * stopped only if it was before ('T'). A sleeper ('S') may run briefly
 * while it restarts its interrupted syscall, then sleeps again. */
static void
assert_untouched(pid_t pid, char expected_state)
{
	pid_t tids[64];
	size_t n = list_tasks(pid, tids, 64);
	cr_assert_gt(n, 0, "pid %d has no threads", (int) pid);
	for (size_t i = 0; i < n; i++) {
		char state = task_state(pid, tids[i]);
		int tracer = task_tracer(pid, tids[i]);
		if (tracer < 0 && tids[i] != pid)
			continue; /* a thread that exited meanwhile (churn) */
		cr_assert_eq(tracer, 0, "tid %d still traced (TracerPid %d)", (int) tids[i], tracer);
		cr_assert_neq(state, 't', "tid %d left in a tracing stop", (int) tids[i]);
		if (expected_state == 'T' || expected_state == 'D')
			cr_assert_eq(state, expected_state, "tid %d in state %c, expected %c",
				     (int) tids[i], state, expected_state);
		else
			cr_assert_neq(state, 'T', "tid %d left stopped", (int) tids[i]);
	}
	if (expected_state == 'S')
		wait_threads_in_state(pid, n, 'S');
}

static void
assert_no_children(void)
{
	errno = 0;
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child is left");
	cr_assert_eq(errno, ECHILD, "a child is left");
}

static void
fixture_stop(struct fixture *fx)
{
	for (size_t i = 0; i < fx->n_children; i++)
		(void) kill(fx->children[i], SIGKILL);
	if (fx->pid > 0) {
		int status;
		(void) kill(fx->pid, SIGKILL);
		cr_assert_eq(waitpid(fx->pid, &status, 0), fx->pid, "reap fixture %d: %s",
			     (int) fx->pid, strerror(errno));
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	/* The parent is gone, so its children are ours now (subreaper). */
	for (size_t i = 0; i < fx->n_children; i++)
		cr_assert_eq(waitpid(fx->children[i], NULL, 0), fx->children[i],
			     "reap fixture child %d: %s", (int) fx->children[i], strerror(errno));
	if (fx->out_fd >= 0)
		(void) close(fx->out_fd);
	for (size_t i = 0; i < fx->n_children; i++)
		cr_assert(kill(fx->children[i], 0) < 0 && errno == ESRCH);
	cr_assert(kill(fx->pid, 0) < 0 && errno == ESRCH);
	assert_no_children();
}

static const struct thread_stack *
find_thread(const struct thread_stack *threads, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (threads[i].tid == tid)
			return &threads[i];
	return NULL;
}

static const struct frame *
find_frame(const struct thread_stack *t, const char *function)
{
	for (size_t i = 0; i < t->n_frames; i++)
		if (t->frames[i].function && strcmp(t->frames[i].function, function) == 0)
			return &t->frames[i];
	return NULL;
}

static size_t
count_frames(const struct thread_stack *t, const char *function)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n_frames; i++)
		n += t->frames[i].function && strcmp(t->frames[i].function, function) == 0;
	return n;
}

static void
assert_source_frame(const struct thread_stack *t, const char *function)
{
	const struct frame *f = find_frame(t, function);
	cr_assert(f, "tid %d: no frame %s", (int) t->tid, function);
	cr_assert(f->file, "tid %d: %s has no file", (int) t->tid, function);
	const char *base = strrchr(f->file, '/');
	cr_assert_str_eq(base ? base + 1 : f->file, "stack_fixture.c");
	cr_assert_gt(f->line, 0, "tid %d: %s has no line", (int) t->tid, function);
	cr_assert(f->module && strcmp(f->module, "stack-fixture") == 0);
}

struct frozen_check {
	unsigned calls;
	size_t n_threads;
	size_t seen_stopped;
	size_t seen_traced;
};

static void
check_frozen(pid_t pid, struct thread_stack *threads, size_t n_threads, void *userdata)
{
	struct frozen_check *chk = userdata;
	chk->calls++;
	chk->n_threads = n_threads;
	for (size_t i = 0; i < n_threads; i++) {
		chk->seen_stopped += task_state(pid, threads[i].tid) == 't';
		chk->seen_traced += task_tracer(pid, threads[i].tid) > 0;
	}
}

Test(stacks, threads_named_with_lines)
{
	struct fixture fx;
	fixture_start(&fx, "threads", NULL);
	wait_threads_in_state(fx.pid, 2, 'S');

	struct stack_cache *cache = stack_cache_new();
	cr_assert(cache);
	struct frozen_check chk = { 0 };
	struct stacks_options opts = { .max_frames = 64, .symbolize_lines = true,
				       .while_frozen = check_frozen, .userdata = &chk };
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, fx.pid, &opts, &threads, &n, &reason);
	cr_assert_eq(r, 0, "capture: %s", reason ? reason : strerror(-r));
	assert_untouched(fx.pid, 'S');

	/* Every thread, leader first, all stopped and traced while frozen. */
	cr_assert_eq(n, 2);
	cr_assert_eq(threads[0].tid, fx.pid);
	cr_assert_eq(chk.calls, 1);
	cr_assert_eq(chk.n_threads, 2);
	cr_assert_eq(chk.seen_stopped, 2);
	cr_assert_eq(chk.seen_traced, 2);

	const struct thread_stack *leader = &threads[0], *sleeper = &threads[1];
	cr_assert(!leader->partial, "leader partial: %s", leader->error);
	cr_assert(!sleeper->partial, "sleeper partial: %s", sleeper->error);
	assert_source_frame(leader, "fixture_block_in_read");
	assert_source_frame(leader, "main");
	assert_source_frame(sleeper, "fixture_block_in_nanosleep");
	assert_source_frame(sleeper, "sleeper_thread");
	cr_assert_null(find_frame(leader, "fixture_block_in_nanosleep"));
	cr_assert_null(find_frame(sleeper, "fixture_block_in_read"));

	/* The always-inline helper shows as an inlined frame above its caller,
	 * at the same pc. */
	const struct frame *inl = find_frame(leader, "fixture_read_inline");
	const struct frame *outer = find_frame(leader, "fixture_block_in_read");
	cr_assert(inl, "no inlined frame");
	cr_assert(inl->inlined);
	cr_assert(!outer->inlined);
	cr_assert_eq(inl + 1, outer);
	cr_assert_eq(inl->pc, outer->pc);
	cr_assert_gt(outer->offset, 0);
	thread_stacks_free(threads, n);

	/* max_frames cuts and says so. */
	opts = (struct stacks_options){ .max_frames = 3, .symbolize_lines = true };
	r = stacks_capture(cache, fx.pid, &opts, &threads, &n, &reason);
	cr_assert_eq(r, 0);
	cr_assert_eq(threads[0].n_frames, 3);
	cr_assert(threads[0].partial);
	cr_assert(threads[0].error);
	thread_stacks_free(threads, n);

	/* Without lines: ELF symbols only, no DWARF, no inline expansion. */
	opts = (struct stacks_options){ .max_frames = 64, .symbolize_lines = false };
	r = stacks_capture(cache, fx.pid, &opts, &threads, &n, &reason);
	cr_assert_eq(r, 0);
	cr_assert(find_frame(&threads[0], "fixture_block_in_read"));
	cr_assert_null(find_frame(&threads[0], "fixture_read_inline"));
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < threads[i].n_frames; j++)
			cr_assert_null(threads[i].frames[j].file);
	thread_stacks_free(threads, n);

	/* NULL options are the defaults. */
	r = stacks_capture(cache, fx.pid, NULL, &threads, &n, NULL);
	cr_assert_eq(r, 0);
	assert_source_frame(&threads[0], "fixture_block_in_read");
	thread_stacks_free(threads, n);

	assert_untouched(fx.pid, 'S');
	stack_cache_free(cache);
	fixture_stop(&fx);
}

Test(stacks, tree_shared_cache)
{
	struct fixture fx;
	fixture_start(&fx, "tree", "6");
	cr_assert_eq(fx.n_children, 6);
	wait_threads_in_state(fx.pid, 1, 'S');
	for (size_t i = 0; i < fx.n_children; i++)
		wait_threads_in_state(fx.children[i], 2, 'S');

	struct stack_cache *cache = stack_cache_new();
	cr_assert(cache);
	/* Two passes in different orders: every capture re-points the shared
	 * Dwfl at another pid, and each stack must still be that pid's own. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k <= fx.n_children; k++) {
			size_t i = pass == 0 ? k : fx.n_children - k;
			bool parent = i == fx.n_children;
			pid_t pid = parent ? fx.pid : fx.children[i];
			struct thread_stack *threads = NULL;
			size_t n = 0;
			char *reason = NULL;
			int r = stacks_capture(cache, pid, NULL, &threads, &n, &reason);
			cr_assert_eq(r, 0, "capture %d: %s", (int) pid, reason);
			const struct thread_stack *leader = find_thread(threads, n, pid);
			cr_assert(leader);
			cr_assert(!leader->partial, "pid %d: %s", (int) pid, leader->error);
			if (parent) {
				cr_assert_eq(n, 1);
				cr_assert(find_frame(leader, "run_tree"));
				assert_source_frame(leader, "fixture_block_in_read");
				cr_assert_eq(count_frames(leader, "fixture_recurse"), 0);
			} else {
				cr_assert_eq(n, 2, "pid %d has %zu threads", (int) pid, n);
				assert_source_frame(leader, fx.function[i]);
				cr_assert_eq(count_frames(leader, "fixture_recurse"),
					     (size_t) fx.depth[i] + 1, "pid %d depth %d: %zu frames",
					     (int) pid, fx.depth[i],
					     count_frames(leader, "fixture_recurse"));
				for (size_t other = 0; other < 3; other++)
					if (strcmp(fx.function[other], fx.function[i]) != 0)
						cr_assert_null(find_frame(leader, fx.function[other]));
				const struct thread_stack *sleeper =
					&threads[threads[0].tid == pid ? 1 : 0];
				assert_source_frame(sleeper, "fixture_block_in_nanosleep");
				assert_source_frame(sleeper, "sleeper_thread");
			}
			thread_stacks_free(threads, n);
			assert_untouched(pid, 'S');
		}
	}
	struct stack_cache_stats stats;
	stack_cache_get_stats(cache, &stats);
	/* Forked without exec: one module layout for all seven processes. */
	cr_assert_eq(stats.layouts_created, 1);
	cr_assert_eq(stats.layouts_reused, 2 * (fx.n_children + 1) - 1);
	cr_assert_gt(stats.symbols_cached, stats.symbols_resolved);
	stack_cache_free(cache);
	fixture_stop(&fx);
}

/* Without root we cannot drop to another user: capture one instead. */
static void
eperm_as_user(void)
{
	char buf[4096];
	cr_assert_gt(read_file_into("/proc/1/status", buf, sizeof(buf)), 0);
	const char *uid_line = strstr(buf, "Uid:");
	if (!uid_line || (uid_t) atoi(uid_line + 4) == getuid())
		cr_skip_test("not root, and no process of another user to try");
	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, 1, NULL, &threads, &n, &reason);
	cr_assert_eq(r, -EPERM, "got %d (%s)", r, reason);
	cr_assert(strstr(reason, "ptrace: Operation not permitted"), "reason: %s", reason);
	free(reason);
	stack_cache_free(cache);
	assert_untouched(1, 0);
}

Test(stacks, eperm_unprivileged)
{
	if (geteuid() != 0) {
		eperm_as_user();
		return;
	}
	struct fixture fx;
	fixture_start(&fx, "threads", NULL);
	wait_threads_in_state(fx.pid, 2, 'S');

	int result[2];
	cr_assert_eq(pipe2(result, O_CLOEXEC), 0);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		/* Drop to nobody, for good; then try to freeze a root process. */
		gid_t nogroup = 65534;
		uid_t nobody = 65534;
		if (setgroups(0, NULL) < 0 || setresgid(nogroup, nogroup, nogroup) < 0 ||
		    setresuid(nobody, nobody, nobody) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(3);
		struct stack_cache *cache = stack_cache_new();
		struct thread_stack *threads = NULL;
		size_t n = 0;
		char *reason = NULL;
		int r = stacks_capture(cache, fx.pid, NULL, &threads, &n, &reason);
		if (write_full(result[1], &r, sizeof(r)) < 0 ||
		    (reason && write_full(result[1], reason, strlen(reason)) < 0))
			_exit(4);
		_exit(0);
	}
	(void) close(result[1]);
	int r = 0;
	char reason[1024] = "";
	cr_assert_eq(read_full(result[0], &r, sizeof(r)), (ssize_t) sizeof(r));
	ssize_t len = read_full(result[0], reason, sizeof(reason) - 1);
	cr_assert_geq(len, 0);
	reason[len] = '\0';
	(void) close(result[0]);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);

	cr_assert_eq(r, -EPERM, "got %d (%s)", r, reason);
	cr_assert(strstr(reason, "ptrace: Operation not permitted"), "reason: %s", reason);
	cr_assert(strstr(reason, "uid 0"), "reason names no uid: %s", reason);
	cr_assert(strstr(reason, "CAP_SYS_PTRACE"), "reason: %s", reason);
	assert_untouched(fx.pid, 'S');
	fixture_stop(&fx);
}

struct killer {
	pid_t pid;
	atomic_uint captures;
	unsigned after;
	long delay_us;
};

static void *
killer_thread(void *arg)
{
	struct killer *k = arg;
	while (atomic_load(&k->captures) < k->after)
		sleep_ms(1);
	struct timespec ts = { .tv_nsec = k->delay_us * 1000 };
	(void) nanosleep(&ts, NULL);
	(void) kill(k->pid, SIGKILL);
	return NULL;
}

Test(stacks, killed_during_capture)
{
	static const long delays_us[] = { 0, 50, 200, 500, 2000 };
	struct stack_cache *cache = stack_cache_new();
	cr_assert(cache);
	for (size_t round = 0; round < sizeof(delays_us) / sizeof(delays_us[0]); round++) {
		struct fixture fx;
		/* Busy threads: the freeze has to catch them running. */
		fixture_start(&fx, "spin", "6");
		struct killer k = { .pid = fx.pid, .after = 2, .delay_us = delays_us[round] };
		pthread_t killer;
		cr_assert_eq(pthread_create(&killer, NULL, killer_thread, &k), 0);

		bool ended = false;
		for (unsigned i = 0; i < 100000 && !ended; i++) {
			struct thread_stack *threads = NULL;
			size_t n = 0;
			char *reason = NULL;
			int r = stacks_capture(cache, fx.pid, NULL, &threads, &n, &reason);
			if (r == 0) {
				/* Complete or partial, but well formed. */
				for (size_t t = 0; t < n; t++) {
					cr_assert_gt(threads[t].tid, 0);
					cr_assert(!threads[t].error || threads[t].partial);
					for (size_t f = 0; f < threads[t].n_frames; f++)
						cr_assert_neq(threads[t].frames[f].pc, 0);
				}
				thread_stacks_free(threads, n);
			} else {
				cr_assert_eq(r, -ESRCH, "r=%d (%s)", r, reason);
				cr_assert(reason);
				free(reason);
				ended = true;
			}
			atomic_fetch_add(&k.captures, 1);
		}
		cr_assert_eq(pthread_join(killer, NULL), 0);
		cr_assert(ended, "the killed target still gave stacks");
		/* The exit status is still there for its parent: never reaped. */
		fixture_stop(&fx);
	}
	stack_cache_free(cache);
}

Test(stacks, zombie_is_error)
{
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0)
		_exit(7);
	siginfo_t si = { 0 };
	cr_assert_eq(waitid(P_PID, (id_t) child, &si, WEXITED | WNOWAIT), 0);

	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, child, NULL, &threads, &n, &reason);
	cr_assert_eq(r, -ESRCH);
	cr_assert(reason && strstr(reason, "zombie"), "reason: %s", reason);
	free(reason);

	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);

	/* Gone altogether. */
	reason = NULL;
	r = stacks_capture(cache, child, NULL, &threads, &n, &reason);
	cr_assert_eq(r, -ESRCH);
	free(reason);
	stack_cache_free(cache);
	assert_no_children();
}

Test(stacks, stopped_target_stays_stopped)
{
	struct fixture fx;
	fixture_start(&fx, "threads", NULL);
	wait_threads_in_state(fx.pid, 2, 'S');
	cr_assert_eq(kill(fx.pid, SIGSTOP), 0);
	wait_threads_in_state(fx.pid, 2, 'T');

	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, fx.pid, NULL, &threads, &n, &reason);
	cr_assert_eq(r, 0, "capture: %s", reason);
	cr_assert_eq(n, 2);
	assert_source_frame(&threads[0], "fixture_block_in_read");
	thread_stacks_free(threads, n);
	assert_untouched(fx.pid, 'T');

	cr_assert_eq(kill(fx.pid, SIGCONT), 0);
	wait_threads_in_state(fx.pid, 2, 'S');
	stack_cache_free(cache);
	fixture_stop(&fx);
}

/* A thread that cannot reach its ptrace stop (a vfork parent sleeps killable
 * only) is given up after the freeze timeout and still released: only the
 * tracer thread's exit can detach it, and stacks_capture waits for that. */
Test(stacks, unstoppable_thread_released)
{
	struct fixture fx;
	fixture_start(&fx, "vfork", NULL);
	cr_assert_eq(fx.n_children, 1);
	pid_t child = fx.children[0];
	fx.n_children = 0; /* the fixture reaps its vfork child itself */
	wait_threads_in_state(child, 1, 'S');
	wait_threads_in_state(fx.pid, 1, 'D');

	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, fx.pid, NULL, &threads, &n, &reason);
	cr_assert_eq(r, -ETIMEDOUT, "r=%d (%s)", r, reason);
	cr_assert(reason && strstr(reason, "no thread stopped"), "reason: %s", reason);
	free(reason);
	assert_untouched(fx.pid, 'D');

	/* The child shares the parent's memory and maps: unwound as usual. */
	r = stacks_capture(cache, child, NULL, &threads, &n, &reason);
	cr_assert_eq(r, 0, "capture vfork child: %s", reason);
	assert_source_frame(&threads[0], "fixture_vfork_child");
	thread_stacks_free(threads, n);
	assert_untouched(child, 'S');

	/* Released for real: once the child is gone the parent runs on,
	 * without a stale trap stop, into its read. */
	cr_assert_eq(kill(child, SIGKILL), 0);
	wait_threads_in_state(fx.pid, 1, 'S');
	r = stacks_capture(cache, fx.pid, NULL, &threads, &n, &reason);
	cr_assert_eq(r, 0, "capture after vfork: %s", reason);
	assert_source_frame(&threads[0], "fixture_block_in_read");
	thread_stacks_free(threads, n);
	assert_untouched(fx.pid, 'S');
	stack_cache_free(cache);
	fixture_stop(&fx);
}

Test(stacks, thread_churn)
{
	struct fixture fx;
	fixture_start(&fx, "churn", NULL);
	struct stack_cache *cache = stack_cache_new();
	for (int i = 0; i < 40; i++) {
		struct thread_stack *threads = NULL;
		size_t n = 0;
		char *reason = NULL;
		int r = stacks_capture(cache, fx.pid, NULL, &threads, &n, &reason);
		cr_assert_eq(r, 0, "capture %d: %s", i, reason);
		cr_assert_geq(n, 1);
		cr_assert_eq(threads[0].tid, fx.pid);
		thread_stacks_free(threads, n);
		assert_untouched(fx.pid, 0);
	}
	stack_cache_free(cache);
	fixture_stop(&fx);
}

Test(stacks, self_and_bad_arguments)
{
	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	cr_assert_eq(stacks_capture(cache, getpid(), NULL, &threads, &n, &reason), -EINVAL);
	cr_assert(reason);
	free(reason);
	cr_assert_eq(stacks_capture(NULL, 1, NULL, &threads, &n, NULL), -EINVAL);
	cr_assert_eq(stacks_capture(cache, 0, NULL, &threads, &n, NULL), -EINVAL);
	stack_cache_free(cache);
	stack_cache_free(NULL);
	thread_stacks_free(NULL, 0);
	frames_free(NULL, 0);
}

/* ---- offline symbolization --------------------------------------------- */

struct module_map {
	struct raw_module modules[512];
	size_t n;
};

static void
module_map_read(pid_t pid, struct module_map *map)
{
	char path[64];
	(void) snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
	char *data = NULL;
	size_t len = 0;
	cr_assert_eq(read_file_alloc(path, &data, &len), 0);
	map->n = 0;
	for (char *line = strtok(data, "\n"); line && map->n < 512; line = strtok(NULL, "\n")) {
		uint64_t start, end, offset;
		int pos = -1;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64 " %*s %*s %n", &start,
			   &end, &offset, &pos) < 3 ||
		    pos < 0 || line[pos] != '/')
			continue;
		map->modules[map->n++] = (struct raw_module){
			.start = start, .end = end, .offset = offset, .path = strdup(line + pos)
		};
	}
	free(data);
}

static void
module_map_free(struct module_map *map)
{
	for (size_t i = 0; i < map->n; i++) {
		free(map->modules[i].path);
		free(map->modules[i].build_id);
	}
	map->n = 0;
}

static char *
file_build_id(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	(void) elf_version(EV_CURRENT);
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	cr_assert(elf);
	const void *bits = NULL;
	ssize_t len = dwelf_elf_gnu_build_id(elf, &bits);
	cr_assert_gt(len, 0);
	char *hex = malloc((size_t) len * 2 + 1);
	for (ssize_t i = 0; i < len; i++)
		(void) snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *) bits)[i]);
	elf_end(elf);
	(void) close(fd);
	return hex;
}

__attribute__((noinline)) void stacks_test_marker(void);

__attribute__((noinline)) void
stacks_test_marker(void)
{
	__asm__ volatile("");
}

Test(stacks, symbolize_offline)
{
	struct fixture fx;
	fixture_start(&fx, "threads", NULL);
	wait_threads_in_state(fx.pid, 2, 'S');

	struct stack_cache *live = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	cr_assert_eq(stacks_capture(live, fx.pid, NULL, &threads, &n, &reason), 0);
	const struct thread_stack *leader = &threads[0];

	/* The raw pcs of the leader, as a self-dump would record them. */
	uint64_t pcs[128];
	size_t n_pcs = 0;
	for (size_t i = 0; i < leader->n_frames && n_pcs < 128; i++)
		if (n_pcs == 0 || pcs[n_pcs - 1] != leader->frames[i].pc)
			pcs[n_pcs++] = leader->frames[i].pc;
	struct module_map map;
	module_map_read(fx.pid, &map);
	cr_assert_gt(map.n, 0);

	/* A fresh cache: offline sessions only. Names match the live ones. */
	struct stack_cache *offline = stack_cache_new();
	struct frame *frames = NULL;
	cr_assert_eq(stacks_symbolize(offline, map.modules, map.n, pcs, n_pcs, &frames), 0);
	for (size_t i = 0; i < leader->n_frames; i++) {
		const struct frame *f = &leader->frames[i];
		if (f->inlined || !f->function)
			continue;
		size_t j = 0;
		while (j < n_pcs && pcs[j] != f->pc)
			j++;
		cr_assert_lt(j, n_pcs);
		cr_assert(frames[j].function, "pc %#" PRIx64 " (%s) not symbolized", f->pc,
			  f->function);
		cr_assert_str_eq(frames[j].function, f->function);
		cr_assert_str_eq(frames[j].module, f->module);
		cr_assert_eq(frames[j].offset, f->offset);
	}
	const struct frame *outer = find_frame(leader, "fixture_block_in_read");
	for (size_t j = 0; j < n_pcs; j++)
		if (pcs[j] == outer->pc) {
			cr_assert_str_eq(frames[j].function, "fixture_block_in_read");
			cr_assert_eq(frames[j].line, outer->line);
			cr_assert(!frames[j].inlined);
		}
	frames_free(frames, n_pcs);

	/* Build-ids: the right one still resolves, a wrong one refuses the
	 * file (its frames keep the module name only), others are unaffected. */
	const char *fixture_path = getenv("STACK_FIXTURE");
	char *fixture_real = realpath(fixture_path, NULL);
	cr_assert(fixture_real);
	char *good_id = file_build_id(fixture_real);
	for (int attempt = 0; attempt < 2; attempt++) {
		for (size_t i = 0; i < map.n; i++)
			if (strcmp(map.modules[i].path, fixture_real) == 0) {
				free(map.modules[i].build_id);
				map.modules[i].build_id = strdup(attempt == 0 ? good_id : "00ff");
			}
		cr_assert_eq(stacks_symbolize(offline, map.modules, map.n, pcs, n_pcs, &frames), 0);
		bool fixture_named = false, libc_named = false;
		for (size_t j = 0; j < n_pcs; j++) {
			if (!frames[j].module)
				continue;
			if (strcmp(frames[j].module, "stack-fixture") == 0)
				fixture_named |= frames[j].function != NULL;
			else if (strncmp(frames[j].module, "libc", 4) == 0)
				libc_named |= frames[j].function != NULL;
		}
		cr_assert_eq(fixture_named, attempt == 0);
		cr_assert(libc_named);
		frames_free(frames, n_pcs);
	}
	free(good_id);
	free(fixture_real);
	module_map_free(&map);

	/* Our own function, from our own map: an exact pc is its symbol + 0. */
	module_map_read(getpid(), &map);
	uint64_t self_pc = (uint64_t) (uintptr_t) &stacks_test_marker;
	cr_assert_eq(stacks_symbolize(offline, map.modules, map.n, &self_pc, 1, &frames), 0);
	cr_assert(frames[0].function);
	cr_assert_str_eq(frames[0].function, "stacks_test_marker");
	cr_assert_eq(frames[0].offset, 0);
	cr_assert_str_eq(frames[0].module, "test_stacks");
	frames_free(frames, 1);

	/* An address in no module: a bare pc. */
	uint64_t nowhere = 16;
	cr_assert_eq(stacks_symbolize(offline, map.modules, map.n, &nowhere, 1, &frames), 0);
	cr_assert_null(frames[0].function);
	cr_assert_null(frames[0].module);
	frames_free(frames, 1);
	module_map_free(&map);

	thread_stacks_free(threads, n);
	stack_cache_free(offline);
	stack_cache_free(live);
	assert_untouched(fx.pid, 'S');
	fixture_stop(&fx);
}

/* ---- why ptrace was refused (issue 17: kernel threads, tracees, non-dumpable) ---- */

enum blocker_mode {
	BLOCKER_PLAIN,
	BLOCKER_NOBODY_DUMPABLE,     /* uid 65534, PR_SET_DUMPABLE 1 */
	BLOCKER_NOBODY_NOT_DUMPABLE, /* uid 65534, PR_SET_DUMPABLE 0 */
	BLOCKER_TRACER,		     /* PTRACE_SEIZE of `target`, then wait */
};

struct blocker {
	pid_t pid;
	int release; /* closing it lets the blocker exit */
};

static bool
drop_to_nobody(void)
{
	if (geteuid() != 0)
		return true; /* already unprivileged: stay who we are */
	return setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
	       setresuid(65534, 65534, 65534) == 0;
}

/* A child that sets itself up, says so on a pipe, and blocks until released
 * (or until we die: PR_SET_PDEATHSIG). No sleeps: the ready byte is the
 * synchronisation. */
static struct blocker
blocker_start(enum blocker_mode mode, pid_t target)
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
		char ok = 1;
		if (mode == BLOCKER_NOBODY_DUMPABLE || mode == BLOCKER_NOBODY_NOT_DUMPABLE) {
			/* A uid change resets dumpable to fs.suid_dumpable: set it after. */
			ok = drop_to_nobody() &&
			     prctl(PR_SET_DUMPABLE, mode == BLOCKER_NOBODY_DUMPABLE ? 1 : 0, 0, 0, 0) == 0;
		} else if (mode == BLOCKER_TRACER) {
			ok = ptrace(PTRACE_SEIZE, target, NULL, NULL) == 0;
		}
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
	cr_assert_eq(read_full(ready[0], &ok, 1), 1, "blocker %d died before it was ready", (int) pid);
	(void) close(ready[0]);
	cr_assert_eq(ok, 1, "blocker %d (mode %d) could not set itself up", (int) pid, (int) mode);
	return (struct blocker){ .pid = pid, .release = release[1] };
}

static void
blocker_stop(struct blocker *b)
{
	(void) kill(b->pid, SIGKILL);
	(void) close(b->release);
	int status;
	cr_assert_eq(waitpid(b->pid, &status, 0), b->pid);
}

/* What an unprivileged capture of target says: r, the reason, the obstacle,
 * from a child that drops to nobody (when root) first. */
struct unprivileged_answer {
	int r;
	struct ptrace_obstacle obstacle;
	int obstacle_r;
	char reason[512];
};

static struct unprivileged_answer
capture_as_nobody(pid_t target)
{
	int result[2];
	cr_assert_eq(pipe2(result, O_CLOEXEC), 0);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct unprivileged_answer a = { 0 };
		if (!drop_to_nobody())
			_exit(3);
		struct stack_cache *cache = stack_cache_new();
		struct thread_stack *threads = NULL;
		size_t n = 0;
		char *reason = NULL;
		a.r = stacks_capture(cache, target, NULL, &threads, &n, &reason);
		if (a.r == 0)
			thread_stacks_free(threads, n);
		a.obstacle_r = stacks_ptrace_obstacle(target, &a.obstacle);
		(void) snprintf(a.reason, sizeof(a.reason), "%s", reason ? reason : "");
		_exit(write_full(result[1], &a, sizeof(a)) < 0 ? 4 : 0);
	}
	(void) close(result[1]);
	struct unprivileged_answer a;
	cr_assert_eq(read_full(result[0], &a, sizeof(a)), (ssize_t) sizeof(a));
	(void) close(result[0]);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	return a;
}

Test(stacks, eperm_already_traced)
{
	struct blocker target = blocker_start(BLOCKER_PLAIN, 0);
	struct blocker tracer = blocker_start(BLOCKER_TRACER, target.pid);
	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	/* Root too: a process has one tracer at a time. */
	int r = stacks_capture(cache, target.pid, NULL, &threads, &n, &reason);
	cr_assert_eq(r, -EPERM, "got %d (%s)", r, reason ? reason : "");
	char want[64];
	(void) snprintf(want, sizeof(want), "already traced by pid %d", (int) tracer.pid);
	cr_assert(strstr(reason, want), "reason: %s", reason);
	cr_assert_null(strstr(reason, "security module"), "reason: %s", reason);
	struct ptrace_obstacle o;
	cr_assert_eq(stacks_ptrace_obstacle(target.pid, &o), 0);
	cr_assert_eq(o.kind, PTRACE_OBSTACLE_TRACED);
	cr_assert_eq(o.tracer, tracer.pid);
	cr_assert_str_eq(ptrace_obstacle_name(o.kind), "traced");
	free(reason);
	stack_cache_free(cache);
	blocker_stop(&tracer);
	blocker_stop(&target);
}

Test(stacks, eperm_kernel_thread)
{
	/* kthreadd is pid 2 outside a pid namespace; inside one there is no
	 * kernel thread to see. */
	char comm[32] = "";
	if (read_file_into("/proc/2/comm", comm, sizeof(comm)) <= 0 || strncmp(comm, "kthreadd", 8) != 0)
		cr_skip_test("no kthreadd at pid 2 (pid namespace?)");
	struct ptrace_obstacle o;
	cr_assert_eq(stacks_ptrace_obstacle(2, &o), 0);
	cr_assert_eq(o.kind, PTRACE_OBSTACLE_KERNEL_THREAD);
	cr_assert_str_eq(ptrace_obstacle_name(o.kind), "kernel-thread");
	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *threads = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, 2, NULL, &threads, &n, &reason);
	cr_assert_eq(r, -EPERM, "got %d (%s)", r, reason ? reason : "");
	cr_assert(strstr(reason, "kernel thread"), "reason: %s", reason);
	cr_assert_null(strstr(reason, "security module"), "reason: %s", reason);
	free(reason);
	stack_cache_free(cache);
	/* Our own process is no kernel thread. */
	cr_assert_eq(stacks_ptrace_obstacle(getpid(), &o), 0);
	cr_assert_neq(o.kind, PTRACE_OBSTACLE_KERNEL_THREAD);
}

Test(stacks, eperm_not_dumpable)
{
	/* As root, PR_SET_DUMPABLE 0 stops nobody (CAP_SYS_PTRACE): the check
	 * runs as uid 65534 against a target of the same uid, where only the
	 * dumpable flag can refuse. */
	struct ptrace_obstacle self;
	cr_assert_eq(stacks_ptrace_obstacle(getpid(), &self), 0);
	if (self.ptrace_scope >= 1)
		cr_skip_test("kernel.yama.ptrace_scope=%d refuses a sibling anyway", self.ptrace_scope);

	struct blocker open_target = blocker_start(BLOCKER_NOBODY_DUMPABLE, 0);
	struct unprivileged_answer a = capture_as_nobody(open_target.pid);
	cr_assert_eq(a.r, 0, "control: a dumpable target of our uid: %d (%s)", a.r, a.reason);
	blocker_stop(&open_target);

	struct blocker closed_target = blocker_start(BLOCKER_NOBODY_NOT_DUMPABLE, 0);
	a = capture_as_nobody(closed_target.pid);
	cr_assert_eq(a.r, -EPERM, "got %d (%s)", a.r, a.reason);
	cr_assert_eq(a.obstacle_r, 0);
	cr_assert_eq(a.obstacle.kind, PTRACE_OBSTACLE_NOT_DUMPABLE, "obstacle %s, reason %s",
		     ptrace_obstacle_name(a.obstacle.kind), a.reason);
	cr_assert(strstr(a.reason, "not dumpable"), "reason: %s", a.reason);
	cr_assert_null(strstr(a.reason, "security module"), "reason: %s", a.reason);
	blocker_stop(&closed_target);
}
