/* probes/python: Python frames of live CPython processes (fixtures/python/).
 *
 * The interpreter is /usr/bin/python3 (Debian 12: 3.11, statically linked),
 * or what the environment says, so tests/python313_chroot.sh can run the
 * same checks against Debian 13's python3.13 in a chroot:
 *   FORKSCOPE_PYTHON           interpreter path (inside the root, if any)
 *   FORKSCOPE_PYTHON_ROOT      run the targets as `chroot ROOT PYTHON ...`
 *   FORKSCOPE_PYTHON_FIXTURES  fixtures/python as the interpreter sees it
 *   FORKSCOPE_PYTHON_VERSION   expected "major.minor" (default 3.11)
 *   PY_EMBED                   fixtures/python/py_embed.c built (libpython)
 *
 * Expected lines come from "# MARK:name" comments in the fixture scripts.
 * Each test puts its targets in a process group of their own, kills the
 * group, and reaps everything (the test is a child subreaper). Waits are
 * bounded polls for a state, never timed assertions. */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probes/python.h"
#include "probes/stacks.h"

#define POLL_ROUNDS 200 /* x 25 ms: the state a fixture reaches after READY */

struct target {
	pid_t pid;
	int out_fd;
	char buf[4096];
	size_t len;
};

static void
become_subreaper(void)
{
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

TestSuite(python, .init = become_subreaper, .timeout = 120);

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	(void)nanosleep(&ts, NULL);
}

static const char *
env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

static const char *
python_root(void)
{
	return env_or("FORKSCOPE_PYTHON_ROOT", NULL);
}

/* Path of a fixture as the target sees it, and as we read it. */
static void
fixture_paths(const char *name, char *inside, size_t inside_size, char *host, size_t host_size)
{
	const char *dir = env_or("FORKSCOPE_PYTHON_FIXTURES", NULL);
	cr_assert_not_null(dir, "FORKSCOPE_PYTHON_FIXTURES is not set (run through meson test)");
	(void)snprintf(inside, inside_size, "%s/%s", dir, name);
	const char *root = python_root();
	(void)snprintf(host, host_size, "%s%s", root ? root : "", inside);
}

/* The line of "# MARK:marker" in a fixture. */
static int
marker_line(const char *fixture, const char *marker)
{
	char inside[512], host[1024], line[512], want[96];
	fixture_paths(fixture, inside, sizeof(inside), host, sizeof(host));
	FILE *f = fopen(host, "re");
	cr_assert_not_null(f, "open %s: %s", host, strerror(errno));
	(void)snprintf(want, sizeof(want), "# MARK:%s", marker);
	int n = 0, found = 0;
	while (fgets(line, sizeof(line), f)) {
		n++;
		char *at = strstr(line, want);
		if (at && (at[strlen(want)] == '\n' || at[strlen(want)] == '\0')) {
			found = n;
			break;
		}
	}
	(void)fclose(f);
	cr_assert_gt(found, 0, "no %s in %s", want, host);
	return found;
}

/* Start a fixture script in a process group of its own, stdout to a pipe. */
static void
target_start(struct target *t, const char *interpreter, const char *script)
{
	char inside[512], host[1024];
	fixture_paths(script, inside, sizeof(inside), host, sizeof(host));
	const char *py = interpreter ? interpreter : env_or("FORKSCOPE_PYTHON", "/usr/bin/python3");
	const char *root = interpreter ? NULL : python_root();
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		(void)setpgid(0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		(void)dup2(p[1], 1);
		if (root)
			execlp("chroot", "chroot", root, py, "-u", inside, (char *)NULL);
		else
			execl(py, py, "-u", inside, (char *)NULL);
		_exit(127);
	}
	(void)setpgid(pid, pid);
	(void)close(p[1]);
	*t = (struct target){.pid = pid, .out_fd = p[0]};
}

/* Next line of the target's stdout, waiting for it (bounded). */
static bool
target_line(struct target *t, char *out, size_t size)
{
	for (int rounds = 0; rounds < 1200; rounds++) {
		char *nl = memchr(t->buf, '\n', t->len);
		if (nl) {
			size_t n = (size_t)(nl - t->buf);
			(void)snprintf(out, size, "%.*s", (int)n, t->buf);
			memmove(t->buf, nl + 1, t->len - n - 1);
			t->len -= n + 1;
			return true;
		}
		struct pollfd pfd = {.fd = t->out_fd, .events = POLLIN};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		ssize_t r = read(t->out_fd, t->buf + t->len, sizeof(t->buf) - 1 - t->len);
		if (r <= 0)
			return false;
		t->len += (size_t)r;
	}
	return false;
}

static void
target_stop(struct target *t)
{
	if (t->pid > 0)
		(void)kill(-t->pid, SIGKILL);
	if (t->out_fd >= 0)
		(void)close(t->out_fd);
	/* Everything of the group, orphans included, comes back to us. */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	t->pid = 0;
	t->out_fd = -1;
}

static void
dump(const struct py_process *py)
{
	fprintf(stderr, "# pid %d python %s (%s)%s%s\n", (int)py->pid,
		py->version ? py->version : "?", py->module ? py->module : "?",
		py->partial ? " partial: " : "", py->error ? py->error : "");
	if (py->unsupported_reason)
		fprintf(stderr, "#  unsupported: %s\n", py->unsupported_reason);
	for (size_t i = 0; i < py->n; i++) {
		const struct py_thread *t = &py->threads[i];
		fprintf(stderr, "#  thread tid %d%s%s\n", (int)t->tid,
			t->partial ? " partial: " : "", t->error ? t->error : "");
		for (size_t k = 0; k < t->n_frames; k++)
			fprintf(stderr, "#    %s (%s:%d)%s\n", t->frames[k].qualname,
				t->frames[k].file, t->frames[k].line,
				t->frames[k].entry ? " [entry]" : "");
	}
}

static const char *
basename_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The thread of py (tid 0: any) with a frame function at script:line. */
static const struct py_thread *
find_frame(const struct py_process *py, pid_t tid, const char *script, const char *function,
	   int line)
{
	for (size_t i = 0; i < py->n; i++) {
		const struct py_thread *t = &py->threads[i];
		if (tid > 0 && t->tid != tid)
			continue;
		for (size_t k = 0; k < t->n_frames; k++) {
			const struct py_frame *f = &t->frames[k];
			if (f->function && strcmp(f->function, function) == 0 && f->line == line &&
			    f->file && strcmp(basename_of(f->file), script) == 0)
				return t;
		}
	}
	return NULL;
}

static void
check_version(const struct py_process *py)
{
	const char *want = env_or("FORKSCOPE_PYTHON_VERSION", "3.11");
	cr_assert_not_null(py->version);
	cr_assert(strncmp(py->version, want, strlen(want)) == 0 && py->version[strlen(want)] == '.',
		  "version %s, expected %s.x", py->version, want);
	cr_assert_null(py->unsupported_reason, "unsupported: %s", py->unsupported_reason);
}

/* Poll until pid shows function at script:MARK:marker (in thread tid if > 0);
 * returns the last read, which the caller frees. */
static struct py_process *
await_frame(pid_t pid, pid_t tid, const char *script, const char *function, const char *marker)
{
	int line = marker_line(script, marker);
	struct py_process *py = NULL;
	for (int i = 0; i < POLL_ROUNDS; i++) {
		py_process_free(py);
		py = NULL;
		int r = python_read(pid, &py);
		cr_assert(r == 0, "python_read(%d): %s", (int)pid, strerror(-r));
		check_version(py);
		if (find_frame(py, tid, script, function, line))
			return py;
		sleep_ms(25);
	}
	dump(py);
	cr_assert_fail("pid %d: no thread%s shows %s at %s:%d", (int)pid, tid > 0 ? " (tid)" : "",
		       function, script, line);
	return NULL;
}

Test(python, lock_acquire_in_thread)
{
	struct target t;
	char line[256];
	target_start(&t, NULL, "lock_blocked.py");
	cr_assert(target_line(&t, line, sizeof(line)), "no READY from lock_blocked.py");
	pid_t tid = 0;
	cr_assert_eq(sscanf(line, "READY %d", &tid), 1, "got '%s'", line);

	struct py_process *py =
	    await_frame(t.pid, tid, "lock_blocked.py", "blocked_worker", "acquire");
	const struct py_thread *worker = find_frame(py, tid, "lock_blocked.py", "blocked_worker",
						    marker_line("lock_blocked.py", "acquire"));
	/* Innermost first: Lock.acquire is C, so the script's frame is on top,
	 * threading's Thread.run below it. */
	cr_assert_str_eq(worker->frames[0].function, "blocked_worker");
	cr_assert_not_null(worker->frames[0].qualname);
	bool has_run = false;
	for (size_t k = 1; k < worker->n_frames; k++)
		if (worker->frames[k].qualname &&
		    strcmp(worker->frames[k].qualname, "Thread.run") == 0)
			has_run = true;
	cr_assert(has_run, "no Thread.run below blocked_worker");
	cr_assert(!worker->partial, "partial: %s", worker->error);
	/* Python-level names are read on 3.11 and 3.12 (docs/python.md). */
	if (strncmp(py->version, "3.11.", 5) == 0 || strncmp(py->version, "3.12.", 5) == 0) {
		cr_assert_not_null(worker->name, "no name for the worker thread");
		cr_assert_str_eq(worker->name, "blocked-worker");
	}

	cr_assert_eq(py->n, 2);
	py_process_free(py);
	/* The main thread (tid == pid) joins it, in main() at the join line. */
	py = await_frame(t.pid, t.pid, "lock_blocked.py", "main", "join");
	py_process_free(py);
	target_stop(&t);
}

Test(python, child_blocked_on_full_pipe)
{
	struct target t;
	char line[256];
	target_start(&t, NULL, "pipe_full.py");
	cr_assert(target_line(&t, line, sizeof(line)), "no READY from pipe_full.py");
	pid_t child = 0;
	cr_assert_eq(sscanf(line, "READY %d", &child), 1, "got '%s'", line);

	/* The forked child: the same mappings as its parent, one thread. */
	struct py_process *py = await_frame(child, child, "pipe_full.py", "fill_pipe", "write");
	cr_assert_eq(py->n, 1);
	py_process_free(py);
	py = await_frame(t.pid, t.pid, "pipe_full.py", "main", "waitpid");
	py_process_free(py);
	target_stop(&t);
}

Test(python, tree_forked_from_worker_thread)
{
	struct target t;
	char line[256];
	target_start(&t, NULL, "fork_tree.py");
	struct {
		pid_t pid;
		char function[64], marker[64];
	} procs[6];
	for (size_t i = 0; i < 6; i++) {
		cr_assert(target_line(&t, line, sizeof(line)), "fork_tree.py: %zu of 6 lines", i);
		int pid;
		cr_assert_eq(
		    sscanf(line, "PROC %d %63s %63s", &pid, procs[i].function, procs[i].marker), 3,
		    "got '%s'", line);
		procs[i].pid = pid;
	}
	size_t distinct = 0;
	for (size_t i = 0; i < 6; i++) {
		struct py_process *py = await_frame(procs[i].pid, 0, "fork_tree.py",
						    procs[i].function, procs[i].marker);
		/* Every thread maps to an OS thread of its own process. */
		for (size_t k = 0; k < py->n; k++)
			cr_assert_gt(py->threads[k].tid, 0, "pid %d: thread %zu unmatched",
				     (int)procs[i].pid, k);
		py_process_free(py);
		bool seen = false;
		for (size_t k = 0; k < i; k++)
			seen = seen || procs[k].pid == procs[i].pid;
		distinct += !seen;
	}
	cr_assert_eq(distinct, 5, "root, two children, two grandchildren");
	target_stop(&t);
}

/* While frozen by stacks_capture: Python frames interleaved with native ones. */
Test(python, frames_attached_while_frozen)
{
	struct target t;
	char line[256];
	target_start(&t, NULL, "lock_blocked.py");
	cr_assert(target_line(&t, line, sizeof(line)));
	pid_t tid = 0;
	cr_assert_eq(sscanf(line, "READY %d", &tid), 1);
	struct py_process *py =
	    await_frame(t.pid, tid, "lock_blocked.py", "blocked_worker", "acquire");
	py_process_free(py);
	py = NULL;

	struct stack_cache *cache = stack_cache_new();
	struct stacks_options opts = {.while_frozen = python_stacks_frozen, .userdata = &py};
	struct thread_stack *stacks = NULL;
	size_t n = 0;
	char *reason = NULL;
	int r = stacks_capture(cache, t.pid, &opts, &stacks, &n, &reason);
	cr_assert_eq(r, 0, "stacks_capture: %s", reason ? reason : strerror(-r));
	cr_assert_not_null(py, "python_stacks_frozen gave no read");
	cr_assert(!py->partial, "partial while frozen: %s", py->error);

	char want[128];
	(void)snprintf(want, sizeof(want), "blocked_worker (");
	const struct thread_stack *worker = NULL;
	for (size_t i = 0; i < n; i++)
		if (stacks[i].tid == tid)
			worker = &stacks[i];
	cr_assert_not_null(worker, "no native stack for tid %d", (int)tid);
	ssize_t py_at = -1, eval_at = -1;
	for (size_t k = 0; k < worker->n_frames; k++) {
		const struct frame *f = &worker->frames[k];
		if (py_at < 0 && f->python && strncmp(f->python, want, strlen(want)) == 0)
			py_at = (ssize_t)k;
		if (py_at >= 0 && eval_at < 0 && f->function &&
		    strcmp(f->function, "_PyEval_EvalFrameDefault") == 0)
			eval_at = (ssize_t)k;
	}
	if (py_at < 0 || eval_at < 0)
		for (size_t k = 0; k < worker->n_frames; k++)
			fprintf(stderr, "# %zu %s %s\n", k, worker->frames[k].function,
				worker->frames[k].python);
	cr_assert_geq(py_at, 0, "no Python entry for blocked_worker");
	cr_assert_geq(eval_at, 0, "no _PyEval_EvalFrameDefault below the Python entry");
	char suffix[64];
	(void)snprintf(suffix, sizeof(suffix), "lock_blocked.py:%d)",
		       marker_line("lock_blocked.py", "acquire"));
	const char *text = worker->frames[py_at].python;
	cr_assert(strlen(text) > strlen(suffix) &&
		      strcmp(text + strlen(text) - strlen(suffix), suffix) == 0,
		  "entry '%s'", text);
	cr_assert_eq(worker->frames[py_at].pc, 0);

	json_t *j = python_process_to_json(py);
	cr_assert_not_null(j);
	cr_assert_eq(json_array_size(json_object_get(j, "threads")), 2);
	json_decref(j);
	py_process_free(py);
	thread_stacks_free(stacks, n);
	free(reason);
	stack_cache_free(cache);
	target_stop(&t);
}

/* Reading a thread whose stack changes all the time: torn reads are marked
 * partial or come out whole, never garbage that crashes the reader. */
Test(python, racing_a_running_thread)
{
	struct target t;
	char line[256];
	target_start(&t, NULL, "churn.py");
	cr_assert(target_line(&t, line, sizeof(line)));
	unsigned reads = 0, with_recurse = 0;
	for (int i = 0; i < 300; i++) {
		struct py_process *py = NULL;
		int r = python_read(t.pid, &py);
		cr_assert_eq(r, 0, "python_read: %s", strerror(-r));
		reads++;
		for (size_t k = 0; k < py->n; k++) {
			const struct py_thread *th = &py->threads[k];
			cr_assert(th->n_frames <= 256);
			if (th->partial)
				cr_assert_not_null(th->error);
			for (size_t f = 0; f < th->n_frames; f++)
				if (th->frames[f].function &&
				    strcmp(th->frames[f].function, "recurse") == 0)
					with_recurse++;
		}
		py_process_free(py);
	}
	cr_assert_gt(with_recurse, 0, "never caught the churning thread in recurse()");
	target_stop(&t);
}

struct killer {
	pid_t pid;
	long delay_us;
};

static void *
kill_after(void *arg)
{
	struct killer *k = arg;
	struct timespec ts = {.tv_nsec = k->delay_us * 1000};
	(void)nanosleep(&ts, NULL);
	(void)kill(k->pid, SIGKILL);
	return NULL;
}

/* A target killed while it is read: a result (maybe partial) or an error,
 * never a crash or a hang; once gone, -ESRCH. */
Test(python, target_killed_while_read)
{
	for (long delay = 0; delay < 3000; delay += 250) {
		struct target t;
		char line[256];
		target_start(&t, NULL, "churn.py");
		cr_assert(target_line(&t, line, sizeof(line)));
		struct killer k = {.pid = t.pid, .delay_us = delay};
		pthread_t thread;
		cr_assert_eq(pthread_create(&thread, NULL, kill_after, &k), 0);
		for (int i = 0; i < 2000; i++) {
			struct py_process *py = NULL;
			int r = python_read(t.pid, &py);
			if (r < 0) {
				cr_assert(r == -ESRCH || r == -ENOENT || r == -EFAULT || r == -EIO,
					  "unexpected %s", strerror(-r));
				break;
			}
			if (py->partial)
				cr_assert(py->error || py->n > 0);
			py_process_free(py);
		}
		(void)pthread_join(thread, NULL);
		/* Dead but not reaped: a zombie has no memory to read. */
		struct py_process *py = NULL;
		int r;
		for (int i = 0; i < POLL_ROUNDS; i++) {
			r = python_read(t.pid, &py);
			if (r == -ESRCH)
				break;
			if (r == 0)
				py_process_free(py);
			sleep_ms(5);
		}
		cr_assert_eq(r, -ESRCH, "zombie: %s", strerror(-r));
		target_stop(&t);
		cr_assert_eq(python_read(k.pid, &py), -ESRCH);
	}
}

Test(python, not_python)
{
	struct py_process *py = NULL;
	cr_assert_eq(python_read(getpid(), &py), -ENOENT);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	/* Until the exec has happened the child is a copy of us: no Python. */
	int r = 0;
	for (int i = 0; i < POLL_ROUNDS; i++) {
		r = python_read(pid, &py);
		if (r == -ENOENT)
			break;
		sleep_ms(5);
	}
	cr_assert_eq(r, -ENOENT);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	cr_assert_eq(python_read(pid, &py), -ESRCH);
}

/* libpython3.X.so linked dynamically: _PyRuntime at that library's bias. */
Test(python, interpreter_linking_libpython)
{
	const char *embed = env_or("PY_EMBED", NULL);
	if (!embed || python_root())
		cr_skip_test("PY_EMBED not built (python3-embed missing) or running in a chroot");
	struct target t;
	char line[256];
	target_start(&t, embed, "lock_blocked.py");
	cr_assert(target_line(&t, line, sizeof(line)), "no READY from py-embed");
	pid_t tid = 0;
	cr_assert_eq(sscanf(line, "READY %d", &tid), 1);
	struct py_process *py =
	    await_frame(t.pid, tid, "lock_blocked.py", "blocked_worker", "acquire");
	cr_assert_not_null(py->module);
	cr_assert(strncmp(py->module, "libpython3.", 11) == 0, "module %s", py->module);
	py_process_free(py);
	target_stop(&t);
}

/* An interpreter this reader does not handle: a library named like
 * libpython3.10 (a copy of libz: no _PyRuntime) gives native frames only,
 * with the reason, not an error. */
Test(python, older_python_is_unsupported)
{
	char dir[] = "/tmp/forkscope-py310-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char lib[128], cmd[512];
	(void)snprintf(lib, sizeof(lib), "%s/libpython3.10.so.1.0", dir);
	(void)snprintf(cmd, sizeof(cmd),
		       "cp /lib/x86_64-linux-gnu/libz.so.1 %s || cp /usr/lib/libz.so.1 %s", lib,
		       lib);
	if (system(cmd) != 0)
		cr_skip_test("no libz.so.1 to stand in for libpython3.10");
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char ok = dlopen(lib, RTLD_NOW) ? 'y' : 'n';
		(void)write(p[1], &ok, 1);
		pause();
		_exit(0);
	}
	(void)close(p[1]);
	char ok = 0;
	cr_assert_eq(read(p[0], &ok, 1), 1);
	(void)close(p[0]);
	cr_assert_eq(ok, 'y');
	struct py_process *py = NULL;
	int r = python_read(pid, &py);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	(void)unlink(lib);
	(void)rmdir(dir);
	cr_assert_eq(r, 0, "python_read: %s", strerror(-r));
	cr_assert_eq(py->n, 0);
	cr_assert_not_null(py->unsupported_reason);
	cr_assert_not_null(strstr(py->unsupported_reason, "3.10"), "%s", py->unsupported_reason);
	json_t *j = python_process_to_json(py);
	cr_assert_str_eq(json_string_value(json_object_get(j, "unsupported_reason")),
			 py->unsupported_reason);
	json_decref(j);
	py_process_free(py);
}
