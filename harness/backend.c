#include "harness/backend.h"

#include "harness/fdsink.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness/registry.h"
#include "probes/census.h"
#include "probes/eventlog.h"
#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

extern char **environ;

struct forkserver {
	enum backend_kind kind;
	struct loop *loop;
	struct forkserver_callbacks cb;
	void *userdata;
	/* mtf */
	pthread_t worker;
	bool worker_started;
	int req_pipe[2]; /* loop writes [1], worker reads [0] */
	int notify[2];	 /* worker writes [1], loop reads [0] */
	unsigned in_flight; /* mtf requests written, completion not yet delivered */
	sem_t stopped;	    /* posted by the worker once it has closed its fds */
	bool shut;
};

/* Set in a forked child: the loop-side notify fd of the forkserver that made it. */
static int inherited_notify_fd = -1;

int
forkserver_inherited_notify_fd(void)
{
	return inherited_notify_fd;
}

/* ---- child side of a fork: async-signal-safe only ---- */

static void
emit_child_start(const struct spawn_request *req, const sigset_t *inherited_mask)
{
	static struct event e; /* static: the worker thread's stack is the child's stack */
	if (!eventlog_enabled())
		return; /* --probes off: no census either, so the overhead ratio is honest */
	uint64_t since = now_ns() - eventlog_fork_time();
	event_begin(&e, "child_start");
	event_uint(&e, "ns_since_fork", since);
	event_int(&e, "ppid", getppid());
	event_int(&e, "threads", census_thread_count());
	int skip[] = { eventlog_fd() };
	/* After a closing scrub only 0-2 and the log are left, and what the
	 * prelude opened since took the lowest free numbers: the first 64-slot
	 * table bounds them, no /proc read needed (probes/census.h). */
	int bound = req->sc->fixes.fd_scrub && req->sc->fixes.scrub_mode == SCRUB_CLOSE ?
			    (eventlog_fd() >= 64 ? eventlog_fd() + 1 : 64) : census_fd_bound();
	census_fds_below(&e, "fds", skip, 1, bound);
	census_stdio(&e, "stdio");
	census_signals(&e);
	census_signal_set(&e, "sig_blocked_inherited", inherited_mask);
	(void) event_emit(&e);
}

static void
apply_stdio(const struct spawn_request *req)
{
	const struct fixes *f = &req->sc->fixes;
	if (f->stdio == STDIO_INHERIT)
		return;
	int fd;
	if (f->stdio == STDIO_DEVNULL)
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	else
		fd = open(req->stdio_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	(void) dup2(fd, 1);
	(void) dup2(fd, 2);
	if (f->stdio == STDIO_DEVNULL)
		(void) dup2(fd, 0);
	if (fd > 2)
		(void) close(fd);
}

static void
apply_fd_scrub(const struct spawn_request *req)
{
	static struct event e;
	int keep[] = { 0, 1, 2, eventlog_fd() };
	enum scrub_mode mode = req->sc->fixes.scrub_mode;
	if (!eventlog_enabled()) {
		fdsink_scrub(mode, keep, ARRAY_SIZE(keep));
		return;
	}
	/* Describe what is about to go, then retire it. */
	event_begin(&e, "fd_scrub");
	int n = census_fds(&e, "closed", keep, ARRAY_SIZE(keep));
	event_str(&e, "mode", scrub_mode_name(mode));
	fdsink_scrub(mode, keep, ARRAY_SIZE(keep));
	event_int(&e, "n_closed", n);
	(void) event_emit(&e);
}

static void
child_prelude(const struct spawn_request *req, pid_t parent)
{
	const struct fixes *f = &req->sc->fixes;
	eventlog_set_context(req->context);
	if (eventlog_enabled())
		fdsink_after_fork();
	/* fd_scrub reports what it closes; child_start then shows what the actor
	 * starts its life with (fds, the stdio it will write to, signal state)
	 * and the signal mask that crossed the fork. */
	if (f->fd_scrub) {
		apply_fd_scrub(req);
		inherited_notify_fd = -1;
	}
	apply_stdio(req);
	sigset_t inherited;
	(void) sigprocmask(SIG_SETMASK, NULL, &inherited);
	if (f->reset_sigmask) {
		sigset_t none;
		(void) sigemptyset(&none);
		(void) sigprocmask(SIG_SETMASK, &none, NULL);
	}
	emit_child_start(req, &inherited);
	/* Orphans learn of their parent's death through SIGINT. The caveat: it fires
	 * when the *forking thread* exits, which is why the mtf worker never exits. */
	(void) prctl(PR_SET_PDEATHSIG, SIGINT);
	if (getppid() != parent)
		(void) kill(getpid(), SIGINT);
}

static void
emit_fork_parent(pid_t child, const struct spawn_request *req)
{
	/* Parent side of the fork; runs on the forking thread. */
	if (!eventlog_enabled())
		return;
	struct event *e = malloc(sizeof(*e));
	if (!e)
		return;
	event_begin(e, "fork");
	event_int(e, "child_pid", child);
	event_int(e, "child_id", req->spec->id);
	event_str(e, "child", req->spec->name);
	event_int(e, "forking_tid", (int64_t) syscall(SYS_gettid));
	event_bool(e, "forking_thread_is_main", syscall(SYS_gettid) == getpid());
	(void) census_threads(e, "threads");
	(void) event_emit(e);
	free(e);
}

static void
do_fork(struct forkserver *fs, struct spawn_request *req)
{
	pid_t parent = getpid();
	eventlog_note_fork_time(now_ns());
	pid_t pid = fork();
	if (pid == 0) {
		if (fs->kind == BACKEND_MTF) {
			/* The worker's own fds: the child has no worker thread. */
			(void) close(fs->req_pipe[0]);
			(void) close(fs->notify[1]);
			inherited_notify_fd = fs->notify[0];
		}
		child_prelude(req, parent);
		fs->cb.child_entry(req, fs->userdata);
		_exit(70); /* child_entry does not return */
	}
	req->fork_ns = now_ns();
	if (pid < 0) {
		req->error = -errno;
		req->pid = -1;
		return;
	}
	req->pid = pid;
	req->error = 0;
	emit_fork_parent(pid, req);
}

/* ---- mtf: the dedicated worker thread ---- */

static void *
worker_main(void *arg)
{
	struct forkserver *fs = arg;
	(void) prctl(PR_SET_NAME, "mtf-forkserver");
	for (;;) {
		struct spawn_request *req;
		ssize_t n = read_full(fs->req_pipe[0], &req, sizeof(req));
		/* A NULL request is the shutdown sentinel: EOF alone may never come,
		 * since children forked without fd_scrub hold the write end too. */
		if (n != (ssize_t) sizeof(req) || !req)
			break;
		do_fork(fs, req);
		if (write_full(fs->notify[1], &req, sizeof(req)) < 0)
			break;
	}
	(void) close(fs->notify[1]);
	(void) close(fs->req_pipe[0]);
	fs->notify[1] = fs->req_pipe[0] = -1;
	(void) sem_post(&fs->stopped);
	/* Park rather than return: PR_SET_PDEATHSIG of every child we forked fires
	 * when this thread exits, not when the process does. */
	for (;;)
		(void) pause();
	return NULL;
}

/* Stop watching the notify socket (after shutdown, once nothing is in flight). */
static void
notify_close(struct forkserver *fs)
{
	if (fs->notify[0] < 0)
		return;
	(void) loop_remove_fd(fs->loop, fs->notify[0]);
	(void) close(fs->notify[0]);
	fs->notify[0] = -1;
}

void
forkserver_notify_watch(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct forkserver *fs = userdata;
	struct spawn_request *reqs[16];
	/* Drain until the socket is empty: stop on EAGAIN only, as trio's
	 * WakeupSocketpair.drain does. On a socket whose writer is gone, read()
	 * returns 0 forever and this never returns to epoll_wait: the busy-loop
	 * class, reached by a child that re-armed an inherited notify watcher. */
	for (;;) {
		ssize_t n = read(fd, reqs, sizeof(reqs));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!fs)
			continue;
		if (n == 0 && fs->shut) {
			notify_close(fs); /* the worker is gone: nothing more will come */
			return;
		}
		for (size_t i = 0; i < (size_t) n / sizeof(reqs[0]); i++) {
			registry_unlock();
			if (fs->in_flight)
				fs->in_flight--;
			fs->cb.done(reqs[i], fs->userdata);
		}
		/* Shut down with a spawn in flight: its completion was the last
		 * thing to wait for; the worker's hangup is not ours to read. */
		if (fs->shut && !fs->in_flight) {
			notify_close(fs);
			return;
		}
	}
}

static int
mtf_start(struct forkserver *fs)
{
	if (pipe2(fs->req_pipe, O_CLOEXEC) < 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fs->notify) < 0)
		return -errno;
	if (fd_set_nonblock(fs->notify[0], true) < 0)
		return -errno;
	int r = loop_add_fd(fs->loop, fs->notify[0], EPOLLIN, forkserver_notify_watch, fs);
	if (r < 0)
		return r;
	/* A helper thread blocks every signal so they reach the loop thread: the
	 * common practice, and the mask every child it forks inherits. */
	sigset_t all, old;
	(void) sigfillset(&all);
	(void) pthread_sigmask(SIG_BLOCK, &all, &old);
	(void) sem_init(&fs->stopped, 0, 0);
	r = -pthread_create(&fs->worker, NULL, worker_main, fs);
	(void) pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	fs->worker_started = true;
	return 0;
}

int
forkserver_new(enum backend_kind kind, struct loop *loop, const struct forkserver_callbacks *cb, void *userdata,
	       struct forkserver **ret)
{
	struct forkserver *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	*fs = (struct forkserver){
		.kind = kind, .loop = loop, .cb = *cb, .userdata = userdata,
		.req_pipe = { -1, -1 }, .notify = { -1, -1 },
	};
	if (kind == BACKEND_MTF) {
		int r = mtf_start(fs);
		if (r < 0) {
			forkserver_free(fs);
			return r;
		}
	}
	*ret = fs;
	return 0;
}

static int
spawn_exec(struct spawn_request *req)
{
	char id[16], fork_ns[24];
	(void) snprintf(id, sizeof(id), "%d", req->spec->id);
	char *argv[] = {
		(char *) "forkscope", (char *) "__actor", (char *) "--spec", req->spec_path,
		(char *) "--actor", id, (char *) "--parent", req->parent_socket,
		(char *) "--events", (char *) (eventlog_path() ? eventlog_path() : ""),
		(char *) "--spawn-ns", fork_ns, NULL,
	};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	(void) posix_spawn_file_actions_init(&fa);
	(void) posix_spawnattr_init(&attr);
	const struct fixes *f = &req->sc->fixes;
	if (f->stdio == STDIO_DEVNULL) {
		(void) posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
		(void) posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_RDWR, 0);
		(void) posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_RDWR, 0);
	} else if (f->stdio == STDIO_FILE) {
		(void) posix_spawn_file_actions_addopen(&fa, 1, req->stdio_path,
							O_WRONLY | O_CREAT | O_APPEND, 0644);
		(void) posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	sigset_t none, def;
	(void) sigemptyset(&none);
	(void) sigemptyset(&def);
	(void) sigaddset(&def, SIGINT);
	(void) sigaddset(&def, SIGTERM);
	(void) sigaddset(&def, SIGPIPE);
	(void) posix_spawnattr_setsigmask(&attr, &none);
	(void) posix_spawnattr_setsigdefault(&attr, &def);
	(void) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	uint64_t t = now_ns();
	(void) snprintf(fork_ns, sizeof(fork_ns), "%llu", (unsigned long long) t);
	pid_t pid;
	int r = posix_spawn(&pid, req->exe_path, &fa, &attr, argv, environ);
	(void) posix_spawn_file_actions_destroy(&fa);
	(void) posix_spawnattr_destroy(&attr);
	req->fork_ns = now_ns();
	if (r != 0) {
		req->error = -r;
		req->pid = -1;
		return -r;
	}
	req->pid = pid;
	req->error = 0;
	return 0;
}

int
forkserver_spawn(struct forkserver *fs, struct spawn_request *req)
{
	if (fs->shut)
		return -ESHUTDOWN;
	registry_set_atfork_reinit(req->sc->fixes.atfork_locks);
	registry_lock();
	switch (fs->kind) {
	case BACKEND_MTF:
		/* Completion arrives through the notify socket; the lock stays held
		 * until then, as `async with lock: pid = await fork_in_worker()` would. */
		if (write_full(fs->req_pipe[1], &req, sizeof(req)) < 0) {
			int e = -errno;
			registry_unlock();
			return e;
		}
		fs->in_flight++;
		return 0;
	case BACKEND_FORK:
		do_fork(fs, req);
		break;
	case BACKEND_SPAWN:
		(void) spawn_exec(req);
		break;
	default:
		registry_unlock();
		return -EINVAL;
	}
	registry_unlock();
	fs->cb.done(req, fs->userdata);
	return 0;
}

void
forkserver_shutdown(struct forkserver *fs)
{
	if (!fs || fs->shut)
		return;
	fs->shut = true;
	if (fs->kind != BACKEND_MTF)
		return;
	/* Stop watching first: our own drain would otherwise read the hangup.
	 * A request already written is forked anyway: keep watching until its
	 * completion arrives, or its child would never be known (and never
	 * cancelled) while the actor waits for it in teardown. */
	if (!fs->in_flight)
		notify_close(fs);
	struct spawn_request *stop = NULL;
	(void) write_full(fs->req_pipe[1], &stop, sizeof(stop));
	(void) close(fs->req_pipe[1]);
	fs->req_pipe[1] = -1;
	/* An orderly stop: the forkserver is gone (its end of the notify socket
	 * closed) before anything else of the teardown happens. */
	while (fs->worker_started && sem_wait(&fs->stopped) < 0 && errno == EINTR)
		;
}

void
forkserver_free(struct forkserver *fs)
{
	if (!fs)
		return;
	forkserver_shutdown(fs);
	/* The worker parks forever (see worker_main); the struct stays with it. */
	if (fs->worker_started)
		return;
	free(fs);
}

int
forkserver_thread_count(const struct forkserver *fs)
{
	return fs && fs->worker_started ? 1 : 0;
}
