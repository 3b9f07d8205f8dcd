/* census (probes/census.c): the fd table described without /proc/self/fd
 * listings must say what readlink(/proc/self/fd/N) says, for every kind of
 * fd; the path memo must never hand out a path the file no longer has; the
 * thread census of the calling thread must match /proc. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes/census.h"
#include "probes/eventlog.h"
#include "util/asfmt.h"

static struct event ev;

/* The census of the calling process as a JSON array (the "fds" key). */
static json_t *
census_now(int bound)
{
	event_begin(&ev, "t");
	int n = bound > 0 ? census_fds_below(&ev, "fds", NULL, 0, bound) : census_fds(&ev, "fds", NULL, 0);
	cr_assert_geq(n, 0, "census_fds: %s", strerror(-n));
	asbuf_putc(&ev.b, '}');
	json_error_t err;
	json_t *j = json_loads(ev.b.data, 0, &err);
	cr_assert_not_null(j, "census JSON does not parse: %s\n%s", err.text, ev.b.data);
	json_t *fds = json_incref(json_object_get(j, "fds"));
	json_decref(j);
	cr_assert_eq((size_t) n, json_array_size(fds));
	return fds;
}

static json_t *
find_fd(json_t *fds, int fd)
{
	size_t i;
	json_t *f;
	json_array_foreach(fds, i, f)
		if (json_integer_value(json_object_get(f, "fd")) == fd)
			return f;
	return NULL;
}

static void
readlink_fd(int fd, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, buf, size - 1);
	cr_assert_geq(n, 0, "readlink %s: %s", path, strerror(errno));
	buf[n] = '\0';
}

/* The census entry for fd says what /proc says of it. */
static void
assert_as_proc(json_t *fds, int fd)
{
	char want[512];
	readlink_fd(fd, want, sizeof(want));
	json_t *f = find_fd(fds, fd);
	cr_assert_not_null(f, "fd %d (%s) missing from the census", fd, want);
	cr_expect_str_eq(json_string_value(json_object_get(f, "target")), want, "fd %d", fd);
	cr_expect_str_eq(json_string_value(json_object_get(f, "kind")), census_kind_of_target(want), "fd %d", fd);
	int fl = fcntl(fd, F_GETFD);
	cr_expect_eq(json_is_true(json_object_get(f, "cloexec")), (fl & FD_CLOEXEC) != 0, "fd %d", fd);
}

Test(census, every_kind_as_proc_says)
{
	char dir[] = "/tmp/census-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char file[300], gone[300], fifo[300];
	snprintf(file, sizeof(file), "%s/a file", dir);
	snprintf(gone, sizeof(gone), "%s/gone", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);

	int p[2], sv[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	sigset_t none;
	sigemptyset(&none);
	int fds[] = {
		p[0], p[1], sv[0], sv[1],
		epoll_create1(EPOLL_CLOEXEC),
		eventfd(0, 0),
		timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
		signalfd(-1, &none, 0),
		inotify_init1(0),
		(int) syscall(SYS_pidfd_open, getpid(), 0),
		open("/dev/null", O_RDWR),
		open(file, O_RDWR | O_CREAT, 0600),
		open(gone, O_RDWR | O_CREAT | O_CLOEXEC, 0600),
		open(dir, O_RDONLY | O_DIRECTORY),
		open(fifo, O_RDWR),
		open(dir, O_PATH | O_CLOEXEC), /* poll() calls it closed */
	};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		cr_assert_geq(fds[i], 0, "fd %zu: %s", i, strerror(errno));
	cr_assert_eq(unlink(gone), 0);
	int high = dup2(p[0], 700); /* above the first 64-slot table */
	cr_assert_eq(high, 700);

	json_t *got = census_now(0);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		assert_as_proc(got, fds[i]);
	assert_as_proc(got, high);
	json_t *g = find_fd(got, fds[12]);
	cr_expect(json_is_true(json_object_get(g, "deleted")));
	/* The same again: now from the memo where it applies. */
	json_t *again = census_now(0);
	cr_expect(json_equal(got, again), "second census differs:\n%s\n%s", json_dumps(got, 0), json_dumps(again, 0));
	/* A bound below fd 700 leaves it out, and only it. */
	json_t *below = census_now(700);
	cr_expect_null(find_fd(below, high));
	cr_expect_eq(json_array_size(below) + 1, json_array_size(got));
	json_decref(got);
	json_decref(again);
	json_decref(below);

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close(fds[i]);
	close(high);
	unlink(file);
	unlink(fifo);
	rmdir(dir);
}

/* A remembered path must not outlive a rename, nor an unlink. */
Test(census, memo_follows_rename_and_unlink)
{
	char dir[] = "/tmp/census-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char a[300], b[300];
	snprintf(a, sizeof(a), "%s/before", dir);
	snprintf(b, sizeof(b), "%s/after", dir);
	int fd = open(a, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	json_t *one = census_now(0);
	cr_expect_str_eq(json_string_value(json_object_get(find_fd(one, fd), "target")), a);
	cr_assert_eq(rename(a, b), 0);
	json_t *two = census_now(0);
	cr_expect_str_eq(json_string_value(json_object_get(find_fd(two, fd), "target")), b);
	cr_assert_eq(unlink(b), 0);
	json_t *three = census_now(0);
	assert_as_proc(three, fd);
	cr_expect(json_is_true(json_object_get(find_fd(three, fd), "deleted")));
	json_decref(one);
	json_decref(two);
	json_decref(three);
	close(fd);
	rmdir(dir);
}

/* In a fork child the memo inherited from the parent still says the truth. */
Test(census, fork_child_as_proc_says)
{
	char path[] = "/tmp/census-file-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	json_decref(census_now(0)); /* fill the memo in the parent */
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char want[512];
		readlink_fd(fd, want, sizeof(want));
		event_begin(&ev, "t");
		(void) census_fds(&ev, "fds", NULL, 0);
		asbuf_putc(&ev.b, '}');
		bool ok = strstr(ev.b.data, want) != NULL;
		_exit(ok ? 0 : 1);
	}
	close(p[0]);
	close(p[1]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's census lost the file's path");
	close(fd);
	unlink(path);
}

Test(census, calling_thread_as_proc_says)
{
	(void) prctl(PR_SET_NAME, "census-test");
	event_begin(&ev, "t");
	int n = census_threads(&ev, "threads");
	asbuf_putc(&ev.b, '}');
	int threads = -1, table = -1;
	cr_assert_eq(census_self_status(&threads, &table), 0);
	cr_expect_eq(n, threads); /* Criterion may run threads of its own */
	cr_expect_eq(census_thread_count(), threads);
	cr_expect_geq(table, 64);
	cr_expect_geq(census_fd_bound(), 64);
	json_t *j = json_loads(ev.b.data, 0, NULL);
	cr_assert_not_null(j);
	size_t i;
	json_t *t, *self = NULL;
	json_array_foreach(json_object_get(j, "threads"), i, t)
		if (json_integer_value(json_object_get(t, "tid")) == (json_int_t) syscall(SYS_gettid))
			self = t;
	cr_assert_not_null(self, "the calling thread is missing: %s", ev.b.data);
	cr_expect_str_eq(json_string_value(json_object_get(self, "name")), "census-test");
	cr_expect_str_eq(json_string_value(json_object_get(self, "state")), "R");
	json_decref(j);
}
