/* The probe shim (probes/preload.c) and the self-dump (probes/selfdump*.c):
 * programs behave the same with and without the probe (errno, fds, exit
 * status), the shim exports only what it interposes, and a probed process
 * whose ptrace is denied still gives symbolized stacks of every thread.
 * The `forkscope watch` command line is tested in tests/test_watch.py.
 *
 * Every test makes itself a child subreaper, reaps what it started and
 * asserts that no descendant is left. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes/eventlog.h"
#include "probes/selfdump.h"
#include "probes/selfdump_read.h"
#include "probes/stacks.h"
#include "util/fdutil.h"
#include "util/timeutil.h"

extern char **environ;

static void
become_subreaper(void)
{
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

/* No descendant left: every child we started was reaped, no orphan came to us. */
static void
assert_no_descendants(void)
{
	int st;
	while (waitpid(-1, &st, WNOHANG) > 0)
		;
	char path[64], buf[4096];
	(void) snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int) getpid());
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	bool clean = n <= 0 || buf[0] == '\0' || buf[0] == '\n';
	if (!clean) {
		/* A failed assertion skipped its cleanup: end ours by pid, then fail. */
		for (char *p = strtok(buf, " \n"); p; p = strtok(NULL, " \n"))
			(void) kill((pid_t) atoi(p), SIGKILL);
		while (waitpid(-1, &st, 0) > 0)
			;
	}
	cr_assert(clean, "children were left behind");
}

TestSuite(probe, .init = become_subreaper, .fini = assert_no_descendants);
TestSuite(selfdump, .init = become_subreaper, .fini = assert_no_descendants);

static const char *
env_path(const char *name)
{
	const char *p = getenv(name);
	cr_assert(p && *p, "%s is not set (run through meson test)", name);
	return p;
}

/* A temporary directory for one test's event log. */
static char *
temp_dir(void)
{
	char *dir = strdup("/tmp/forkscope-test-watch-XXXXXX");
	cr_assert(mkdtemp(dir));
	return dir;
}

static void
remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.') {
				char path[4096];
				(void) snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
				(void) unlink(path);
			}
		(void) closedir(d);
	}
	(void) rmdir(dir);
	free(dir);
}

/* environ plus the probe (when events is set) and extra "K=V" entries. */
static char **
probe_env(const char *events, const char *extra)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 4, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "FORKSCOPE_", 10))
			env[k++] = environ[i];
	if (events) {
		cr_assert(asprintf(&env[k++], "LD_PRELOAD=%s", env_path("FORKSCOPE_PROBE")) > 0);
		cr_assert(asprintf(&env[k++], "FORKSCOPE_EVENTS=%s", events) > 0);
	}
	if (extra)
		env[k++] = strdup(extra);
	env[k] = NULL;
	return env;
}

/* Run argv with env, stdout into *ret_out (malloc'ed), and return its wait status. */
static int
run_capture(char *const argv[], char **env, char **ret_out)
{
	int out[2];
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	pid_t pid;
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	(void) close(out[1]);
	cr_assert_eq(r, 0, "posix_spawn %s: %s", argv[0], strerror(r));
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t n = read(out[0], buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t) n;
	}
	buf[len] = '\0';
	(void) close(out[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	*ret_out = buf;
	return st;
}

static void
free_env(char **env, bool probed)
{
	size_t n = 0;
	while (env[n])
		n++;
	/* The entries we allocated are at the end. */
	for (size_t i = 0; i < n; i++)
		if (!strncmp(env[i], "LD_PRELOAD=", 11) || !strncmp(env[i], "FORKSCOPE_", 10))
			free(env[i]);
	(void) probed;
	free(env);
}

static json_t *
load_events(const char *path)
{
	json_t *arr = json_array();
	char *data = NULL;
	size_t len = 0;
	cr_assert_eq(read_file_alloc(path, &data, &len), 0, "read %s", path);
	for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
		json_error_t err;
		json_t *ev = json_loads(line, 0, &err);
		cr_assert(json_is_object(ev), "bad line in %s: %s (%s)", path, line, err.text);
		json_array_append_new(arr, ev);
	}
	free(data);
	return arr;
}

static size_t
count_events(const json_t *events, const char *name, pid_t pid)
{
	size_t n = 0, i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (!strcmp(json_string_value(json_object_get(ev, "ev")), name) &&
		    (pid == 0 || json_integer_value(json_object_get(ev, "pid")) == pid))
			n++;
	return n;
}

/* ---- the shim ---- */

Test(probe, exports_only_interposers)
{
	void *h = dlopen(env_path("FORKSCOPE_PROBE"), RTLD_NOW | RTLD_LOCAL);
	cr_assert(h, "dlopen: %s", dlerror());
	static const char *const interposed[] = { "fork", "_Fork", "vfork", "posix_spawn", "posix_spawnp",
						   "waitpid", "wait4", "wait", "waitid", "kill", "tgkill",
						   "pidfd_send_signal", "pidfd_open", "exit", "_exit", "_Exit" };
	for (size_t i = 0; i < sizeof(interposed) / sizeof(interposed[0]); i++)
		cr_expect(dlsym(h, interposed[i]), "%s is not exported", interposed[i]);
	/* Its own code and static libraries stay private: a program defining
	 * event_emit or selfdump_install keeps its own. */
	static const char *const hidden[] = { "event_emit", "eventlog_open", "census_fds", "selfdump_install",
					      "asbuf_puts", "signal_name" };
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		cr_expect_null(dlsym(h, hidden[i]), "%s is exported", hidden[i]);
	/* libunwind is opened only for the self-dump, never linked: its
	 * _Unwind_* would interpose libgcc_s's in C++ programs. */
	cr_expect_null(dlopen("libunwind.so.8", RTLD_NOW | RTLD_NOLOAD));
}

Test(probe, errno_preserved)
{
	char *dir = temp_dir();
	char events[4096];
	(void) snprintf(events, sizeof(events), "%s/events.ndjson", dir);
	char *argv[] = { (char *) env_path("PROBE_CHECK"), (char *) "errno", NULL };
	char **plain = probe_env(NULL, NULL), **probed = probe_env(events, NULL);
	char *a = NULL, *b = NULL;
	int sa = run_capture(argv, plain, &a);
	int sb = run_capture(argv, probed, &b);
	cr_assert_eq(sa, sb);
	cr_assert_str_eq(a, b, "without probe:\n%s\nwith probe:\n%s", a, b);
	cr_assert(strstr(a, "kill-nopid -1 ESRCH"), "%s", a);
	/* The probe did see the calls. */
	json_t *ev = load_events(events);
	cr_assert_geq(count_events(ev, "fork", 0), 3);
	cr_assert_geq(count_events(ev, "reaped", 0), 5);
	cr_assert_geq(count_events(ev, "signal_sent", 0), 3);
	cr_assert_geq(count_events(ev, "pidfd_open", 0), 2);
	cr_assert_geq(count_events(ev, "spawn", 0), 1);
	json_decref(ev);
	free(a);
	free(b);
	free_env(plain, false);
	free_env(probed, true);
	remove_dir(dir);
}

/* "who fd target": the pipe's inode differs from run to run. */
static char *
normalize_fds(const char *text, const char *events)
{
	char *out = calloc(1, strlen(text) + 1);
	char *copy = strdup(text);
	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, events))
			continue;
		char *br = strstr(line, ":[");
		if (br)
			br[2] = '\0';
		strcat(out, line);
		strcat(out, "\n");
	}
	free(copy);
	return out;
}

Test(probe, fds_unchanged)
{
	char *dir = temp_dir();
	char events[4096];
	(void) snprintf(events, sizeof(events), "%s/events.ndjson", dir);
	char *argv[] = { (char *) env_path("PROBE_CHECK"), (char *) "fds", NULL };
	char **plain = probe_env(NULL, NULL), **probed = probe_env(events, NULL);
	char *a = NULL, *b = NULL;
	cr_assert_eq(run_capture(argv, plain, &a), 0);
	cr_assert_eq(run_capture(argv, probed, &b), 0);
	/* The probe's own fd: high, close-on-exec, in parent, forked and exec'ed child. */
	for (const char *who = "parent"; who; who = !strcmp(who, "parent") ? "child" : !strcmp(who, "child") ? "exec" : NULL) {
		bool found = false;
		size_t wl = strlen(who);
		for (const char *line = b; line && *line && !found; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
			const char *end = strchr(line, '\n');
			size_t len = end ? (size_t) (end - line) : strlen(line);
			char one[4400];
			if (len >= sizeof(one) || strncmp(line, who, wl) || line[wl] != ' ')
				continue;
			memcpy(one, line, len);
			one[len] = '\0';
			found = atoi(one + wl + 1) >= EVENTLOG_FD_MIN && strstr(one, events) && strstr(one, "cloexec");
		}
		cr_assert(found, "no log fd >= %d for %s:\n%s", EVENTLOG_FD_MIN, who, b);
	}
	char *na = normalize_fds(a, events), *nb = normalize_fds(b, events);
	cr_assert_str_eq(na, nb, "without probe:\n%s\nwith probe:\n%s", na, nb);
	free(na);
	free(nb);
	free(a);
	free(b);
	free_env(plain, false);
	free_env(probed, true);
	remove_dir(dir);
}

Test(probe, exit_status)
{
	static const struct {
		const char *mode, *arg;
		const char *via; /* of the exit event, NULL: none (killed) */
	} cases[] = {
		{ "exit", "3", "exit" }, { "return", "0", "main" }, { "return", "5", "main" },
		{ "_exit", "7", "_exit" }, { "kill", "15", NULL }, { "kill", "9", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = temp_dir();
		char events[4096];
		(void) snprintf(events, sizeof(events), "%s/events.ndjson", dir);
		char *argv[] = { (char *) env_path("PROBE_CHECK"), (char *) cases[i].mode, (char *) cases[i].arg, NULL };
		char **plain = probe_env(NULL, NULL), **probed = probe_env(events, NULL);
		char *a = NULL, *b = NULL;
		int sa = run_capture(argv, plain, &a), sb = run_capture(argv, probed, &b);
		cr_expect_eq(sa, sb, "%s %s: status %#x without, %#x with the probe", cases[i].mode, cases[i].arg, sa, sb);
		json_t *ev = load_events(events);
		cr_expect_eq(count_events(ev, "exec", 0), 1);
		size_t i_ev;
		json_t *e;
		size_t exits = 0;
		json_array_foreach(ev, i_ev, e) {
			if (strcmp(json_string_value(json_object_get(e, "ev")), "exit"))
				continue;
			exits++;
			cr_expect_str_eq(json_string_value(json_object_get(e, "via")), cases[i].via);
			cr_expect_eq(json_integer_value(json_object_get(e, "code")), atoi(cases[i].arg));
		}
		cr_expect_eq(exits, cases[i].via ? 1u : 0u, "%s %s: %zu exit events", cases[i].mode, cases[i].arg, exits);
		json_decref(ev);
		free(a);
		free(b);
		free_env(plain, false);
		free_env(probed, true);
		remove_dir(dir);
	}
}

/* ---- the self-dump ---- */

struct fixture {
	pid_t pid;
	int out_fd;
};

static void
fixture_start(struct fixture *fx, char **env, const char *arg)
{
	const char *path = env_path("SELFDUMP_FIXTURE");
	int out[2];
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	char *argv[] = { (char *) path, (char *) arg, NULL };
	int r = posix_spawn(&fx->pid, path, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	(void) close(out[1]);
	cr_assert_eq(r, 0, "posix_spawn %s: %s", path, strerror(r));
	fx->out_fd = out[0];
	char buf[64] = "";
	struct pollfd pfd = { .fd = fx->out_fd, .events = POLLIN };
	/* Long bound: a hang detector, not a timing assertion. */
	cr_assert_eq(poll(&pfd, 1, 60000), 1, "fixture printed nothing");
	cr_assert_gt(read(fx->out_fd, buf, sizeof(buf) - 1), 0);
	cr_assert(strstr(buf, "READY"), "fixture said: %s", buf);
	/* READY comes just before the main thread blocks: wait until every
	 * thread sleeps (state from stat needs no ptrace access). */
	for (int tries = 0; tries < 60000; tries++) {
		char dir[64];
		(void) snprintf(dir, sizeof(dir), "/proc/%d/task", (int) fx->pid);
		DIR *d = opendir(dir);
		cr_assert(d, "fixture %d gone", (int) fx->pid);
		int threads = 0, sleeping = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			threads++;
			char stat_path[400], stat[512];
			(void) snprintf(stat_path, sizeof(stat_path), "%s/%s/stat", dir, de->d_name);
			if (read_file_into(stat_path, stat, sizeof(stat)) > 0) {
				const char *p = strrchr(stat, ')');
				if (p && p[1] == ' ' && p[2] == 'S')
					sleeping++;
			}
		}
		(void) closedir(d);
		if (threads == 3 && sleeping == 3)
			return;
		struct timespec ts = { .tv_nsec = 1000000 };
		(void) nanosleep(&ts, NULL);
	}
	cr_assert_fail("fixture threads never all slept");
}

static void
fixture_stop(struct fixture *fx)
{
	(void) kill(fx->pid, SIGKILL);
	int st;
	(void) waitpid(fx->pid, &st, 0);
	(void) close(fx->out_fd);
}

static bool
has_function(const struct thread_stack *s, const char *name)
{
	for (size_t i = 0; i < s->n_frames; i++)
		if (s->frames[i].function && !strcmp(s->frames[i].function, name))
			return true;
	return false;
}

/* 0 when the dump has the three known threads, else a message. */
static const char *
check_three_threads(pid_t pid, const struct thread_stack *t, size_t n)
{
	static char msg[256];
	if (n != 3) {
		(void) snprintf(msg, sizeof(msg), "%zu threads, expected 3", n);
		return msg;
	}
	if (t[0].tid != pid || !has_function(&t[0], "fixture_main_read"))
		return "the leader is not first, or not in fixture_main_read";
	bool cond = false, sleep = false;
	for (size_t i = 1; i < n; i++) {
		cond |= has_function(&t[i], "fixture_thread_cond_wait") && has_function(&t[i], "pthread_cond_wait");
		sleep |= has_function(&t[i], "fixture_thread_nanosleep");
	}
	if (!cond || !sleep)
		return "no thread in fixture_thread_cond_wait/pthread_cond_wait or fixture_thread_nanosleep";
	for (size_t i = 0; i < n; i++)
		if (t[i].partial || t[i].error)
			return "a partial stack";
	return NULL;
}

Test(selfdump, signal_parse)
{
	cr_expect_eq(selfdump_signal_parse("SIGRTMIN+3"), SIGRTMIN + 3);
	cr_expect_eq(selfdump_signal_parse("RTMIN+3"), SIGRTMIN + 3);
	cr_expect_eq(selfdump_signal_parse("SIGRTMAX-1"), SIGRTMAX - 1);
	cr_expect_eq(selfdump_signal_parse("45"), 45);
	cr_expect_eq(selfdump_signal_parse("SIGUSR2"), SIGUSR2);
	cr_expect_eq(selfdump_signal_parse("SIGKILL"), -EINVAL);
	cr_expect_eq(selfdump_signal_parse("SIGRTMIN+99"), -EINVAL);
	cr_expect_eq(selfdump_signal_parse(""), -EINVAL);
}

/* selfdump_request waits for the answer on a pidfd: without pidfd_open
 * (Linux < 5.3; valgrind 3.19, meson test --setup valgrind) it cannot work. */
static void
skip_without_pidfd(void)
{
	int fd = pidfd_open(getpid(), 0);
	if (fd < 0 && errno == ENOSYS)
		cr_skip_test("pidfd_open: %s (Linux < 5.3, or valgrind < 3.20)", strerror(ENOSYS));
	if (fd >= 0)
		(void) close(fd);
}

Test(selfdump, every_thread_symbolized)
{
	skip_without_pidfd();
	char *dir = temp_dir();
	char events[4096], sig_env[64];
	(void) snprintf(events, sizeof(events), "%s/events.ndjson", dir);
	int sig = SIGRTMIN + SELFDUMP_DEFAULT_RTMIN_OFFSET;
	(void) snprintf(sig_env, sizeof(sig_env), "%s=%s", SELFDUMP_ENV, SELFDUMP_DEFAULT_SIGNAL);
	char **env = probe_env(events, sig_env);
	struct fixture fx;
	fixture_start(&fx, env, NULL);
	struct stack_cache *cache = stack_cache_new();
	struct thread_stack *t = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = selfdump_request(events, fx.pid, sig, 30 * NSEC_PER_SEC, cache, &t, &n, &reason);
	cr_assert_eq(r, 0, "selfdump_request: %d %s", r, reason ? reason : "");
	const char *bad = check_three_threads(fx.pid, t, n);
	cr_assert_null(bad, "%s", bad);
	/* A second request is a new dump, and the process lives on. */
	thread_stacks_free(t, n);
	r = selfdump_request(events, fx.pid, sig, 30 * NSEC_PER_SEC, cache, &t, &n, &reason);
	cr_assert_eq(r, 0);
	json_t *ev = selfdump_events_load(events, fx.pid);
	cr_assert_eq(selfdump_latest(ev, fx.pid), 2u);
	json_decref(ev);
	cr_assert_eq(kill(fx.pid, 0), 0, "the fixture died of its self-dump");

	/* Merged into a snapshot document, in the snapshot's stack shape. */
	json_t *snap = json_pack("{s:[{s:i,s:[{s:i,s:n}],s:[]}]}", "processes", "pid", (int) fx.pid, "threads", "tid",
				 (int) fx.pid, "stack", "unmatched_stacks");
	cr_assert_eq(selfdump_merge_into_snapshot(snap, fx.pid, t, n), 3);
	json_t *proc = json_array_get(json_object_get(snap, "processes"), 0);
	json_t *leader = json_array_get(json_object_get(proc, "threads"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(leader, "stack_source")), "selfdump");
	cr_assert(json_array_size(json_object_get(json_object_get(leader, "stack"), "frames")) > 2);
	cr_assert_eq(json_array_size(json_object_get(proc, "unmatched_stacks")), 2);
	json_decref(snap);

	thread_stacks_free(t, n);
	free(reason);
	stack_cache_free(cache);
	fixture_stop(&fx);
	free_env(env, true);
	remove_dir(dir);
}

/* The acceptance case: target and dumper are both nobody, the target is not
 * dumpable, so PTRACE_SEIZE answers EPERM; the self-dump still names every
 * thread's functions. */
Test(selfdump, ptrace_denied)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to run target and dumper as another user");
	skip_without_pidfd();
	/* The dumper child must not fail a Criterion assertion (it would block
	 * on the runner's socket): check what it needs here, before the fork. */
	(void) env_path("SELFDUMP_FIXTURE");
	(void) env_path("FORKSCOPE_PROBE");
	char *dir = temp_dir();
	cr_assert_eq(chmod(dir, 0777), 0);
	int result[2];
	cr_assert_eq(pipe2(result, O_CLOEXEC), 0);
	pid_t dumper = fork();
	cr_assert_geq(dumper, 0);
	if (dumper == 0) {
		(void) close(result[0]);
		char msg[512] = "";
		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) {
			(void) snprintf(msg, sizeof(msg), "cannot drop to nobody: %s", strerror(errno));
			goto done;
		}
		/* The fixture is our child: reap it ourselves. */
		(void) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
		char events[4096], sig_env[64];
		(void) snprintf(events, sizeof(events), "%s/events.ndjson", dir);
		(void) snprintf(sig_env, sizeof(sig_env), "%s=%s", SELFDUMP_ENV, SELFDUMP_DEFAULT_SIGNAL);
		char **env = probe_env(events, sig_env);
		struct fixture fx;
		fixture_start(&fx, env, "nodump");
		struct stack_cache *cache = stack_cache_new();
		struct thread_stack *t = NULL;
		size_t n = 0;
		char *reason = NULL;
		int r = stacks_capture(cache, fx.pid, NULL, &t, &n, &reason);
		if (r != -EPERM)
			(void) snprintf(msg, sizeof(msg), "stacks_capture gave %d (%s), expected EPERM", r, reason ? reason : "");
		else {
			free(reason);
			reason = NULL;
			r = selfdump_request(events, fx.pid, SIGRTMIN + SELFDUMP_DEFAULT_RTMIN_OFFSET, 30 * NSEC_PER_SEC,
					     cache, &t, &n, &reason);
			const char *bad = r < 0 ? (reason ? reason : "selfdump_request failed") : check_three_threads(fx.pid, t, n);
			if (bad)
				(void) snprintf(msg, sizeof(msg), "%s", bad);
			if (r == 0)
				thread_stacks_free(t, n);
		}
		free(reason);
		stack_cache_free(cache);
		fixture_stop(&fx);
done:
		(void) write_full(result[1], msg, strlen(msg));
		_exit(0);
	}
	(void) close(result[1]);
	char msg[512];
	ssize_t len = read_full(result[0], msg, sizeof(msg) - 1);
	(void) close(result[0]);
	int st;
	cr_assert_eq(waitpid(dumper, &st, 0), dumper);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dumper status %#x", st);
	cr_assert_geq(len, 0);
	msg[len] = '\0';
	cr_assert_eq(len, 0, "%s", msg);
	remove_dir(dir);
}
