#include "harness/actor.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "harness/actor-private.h"
#include "harness/backend.h"
#include "harness/channel.h"
#include "harness/registry.h"
#include "harness/fdsink.h"
#include "harness/loop.h"
#include "probes/census.h"
#include "probes/eventlog.h"
#include "util/fdutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/timeutil.h"

static const char *ctx_spec_path;
static const char *ctx_exe_path;
static struct actor *the_actor;
volatile sig_atomic_t actor_got_signal;
static int signal_wake_fd = -1;

void
actor_set_context(const char *spec_path, const char *exe_path)
{
	ctx_spec_path = spec_path;
	ctx_exe_path = exe_path;
}

static void check_teardown_done(struct actor *a);
static void start_ladder(struct actor *a, struct child *ch);
static bool fd_limit_hit(struct actor *a, const char *call, int err);

/* ---- small helpers ---- */

bool
actor_name_matches(const char *actual, const char *wanted)
{
	size_t n = strlen(wanted);
	if (strcmp(actual, wanted) == 0)
		return true;
	/* `count` copies are NAME-1 .. NAME-N and answer to NAME */
	if (strncmp(actual, wanted, n) != 0 || actual[n] != '-' || !actual[n + 1])
		return false;
	for (const char *p = actual + n + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void
emit_child_event(const char *ev, const struct child *ch, const char *key, int64_t value)
{
	struct event *e = malloc(sizeof(*e));
	if (!e)
		return;
	event_begin(e, ev);
	event_str(e, "child", ch->spec->name);
	event_int(e, "child_id", ch->spec->id);
	if (ch->pid > 0)
		event_int(e, "child_pid", ch->pid);
	if (key)
		event_int(e, key, value);
	(void) event_emit(e);
	free(e);
}

static void
set_event_context(const struct actor_spec *spec)
{
	char ctx[256];
	json_t *name = json_string(spec->name);
	char *quoted = json_dumps(name, JSON_ENCODE_ANY);
	(void) snprintf(ctx, sizeof(ctx), "\"actor\":%s,\"actor_id\":%d", quoted ? quoted : "\"?\"", spec->id);
	free(quoted);
	json_decref(name);
	eventlog_set_context(ctx);
}

json_t *
actor_capture_backtrace(void)
{
	/* libunwind's local unwinder: the actor records where its error came from. */
	json_t *frames = json_array();
	unw_context_t uc;
	unw_cursor_t cursor;
	if (unw_getcontext(&uc) != 0 || unw_init_local(&cursor, &uc) != 0)
		return frames;
	for (int depth = 0; depth < 32 && unw_step(&cursor) > 0; depth++) {
		char name[256];
		unw_word_t off = 0, pc = 0;
		(void) unw_get_reg(&cursor, UNW_REG_IP, &pc);
		char line[320];
		if (unw_get_proc_name(&cursor, name, sizeof(name), &off) == 0)
			(void) snprintf(line, sizeof(line), "%s+0x%lx", name, (unsigned long) off);
		else
			(void) snprintf(line, sizeof(line), "0x%lx", (unsigned long) pc);
		json_array_append_new(frames, json_string(line));
	}
	return frames;
}

static json_t *
status_json(int wstatus)
{
	if (WIFEXITED(wstatus))
		return json_pack("{s:i,s:n}", "code", WEXITSTATUS(wstatus), "signal");
	if (WIFSIGNALED(wstatus))
		return json_pack("{s:n,s:s}", "code", "signal", signal_name(WTERMSIG(wstatus)));
	return json_null();
}

/* ---- signals: handlers only set a flag and poke the loop ---- */

static void
on_signal(int sig)
{
	int saved = errno;
	/* keep the first signal; SIGTERM after SIGINT changes nothing */
	if (!actor_got_signal)
		actor_got_signal = sig;
	if (signal_wake_fd >= 0)
		(void) write(signal_wake_fd, "s", 1);
	errno = saved;
}

static void
install_signal_handlers(struct actor *a)
{
	struct sigaction sa = { .sa_handler = on_signal };
	(void) sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking write in a `log` step must see the signal. */
	sa.sa_flags = 0;
	(void) sigaction(SIGINT, &sa, NULL);
	struct sigaction cur;
	(void) sigaction(SIGTERM, NULL, &cur);
	if (cur.sa_handler != SIG_IGN)
		(void) sigaction(SIGTERM, &sa, NULL);
	(void) signal(SIGPIPE, SIG_IGN);
	signal_wake_fd = loop_wake_fd(a->loop);
}


static void
on_wake(struct loop *l, void *userdata)
{
	struct actor *a = userdata;
	if (actor_got_signal)
		actor_on_cancel(a, false, actor_got_signal);
}

/* ---- children: exit and reaping ---- */

static json_t *
synth_child_error(struct child *ch, const char *message)
{
	json_t *err = json_pack("{s:s,s:i,s:s}", "actor", ch->spec->name, "pid", (int) ch->pid, "message",
				message);
	return err;
}

static void on_child_error(struct actor *a, struct child *ch, json_t *error);

static void
child_reaped(struct child *ch, int wstatus)
{
	struct actor *a = ch->actor;
	ch->reaped = true;
	ch->wstatus = wstatus;
	if (ch->ladder_timer) {
		loop_cancel_timer(a->loop, ch->ladder_timer);
		ch->ladder_timer = 0;
	}
	if (ch->pidfd >= 0) {
		if (ch->pidfd_watched)
			(void) loop_remove_fd(a->loop, ch->pidfd);
		(void) close(ch->pidfd);
		ch->pidfd = -1;
		ch->pidfd_watched = false;
	}
	struct event *e = malloc(sizeof(*e));
	if (e) {
		event_begin(e, "reaped");
		event_str(e, "child", ch->spec->name);
		event_int(e, "child_id", ch->spec->id);
		event_int(e, "child_pid", ch->pid);
		if (WIFEXITED(wstatus))
			event_int(e, "code", WEXITSTATUS(wstatus));
		if (WIFSIGNALED(wstatus))
			event_str(e, "signal", signal_name(WTERMSIG(wstatus)));
		(void) event_emit(e);
		free(e);
	}
	if (ch->error)
		json_object_set_new(ch->error, "exit_status", status_json(wstatus));
	/* A child that ended without its final message, unless we killed it. */
	if (!ch->final_received && ch->ladder < 2) {
		char msg[160];
		if (ch->state == CHILD_BOOTING)
			(void) snprintf(msg, sizeof(msg), "died during boot (%s %d)",
					WIFSIGNALED(wstatus) ? "signal" : "status",
					WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
		else if (WIFSIGNALED(wstatus))
			(void) snprintf(msg, sizeof(msg), "killed by %s before reporting a result",
					signal_name(WTERMSIG(wstatus)));
		else
			(void) snprintf(msg, sizeof(msg), "exited with status %d before reporting a result",
					WEXITSTATUS(wstatus));
		if (ch->ladder == 0 || WEXITSTATUS(wstatus) != 0 || WIFSIGNALED(wstatus)) {
			json_t *err = synth_child_error(ch, msg);
			json_object_set_new(err, "exit_status", status_json(wstatus));
			on_child_error(a, ch, err);
		}
	}
	if (ch->chan.fd >= 0 && !ch->final_received) {
		/* keep reading: a last RESULT may still be buffered */
	}
	if (a->phase == PH_BOOT_CHILDREN || a->spawning_late)
		actor_spawn_next(a);
	if (a->awaiting)
		actor_run_steps(a);
	check_teardown_done(a);
}

static void
on_pidfd(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct child *ch = userdata;
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, (id_t) fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	int wstatus = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
	child_reaped(ch, wstatus);
}

static void
watch_pidfd(struct child *ch)
{
	if (ch->pidfd < 0 || ch->pidfd_watched)
		return;
	if (loop_add_fd(ch->actor->loop, ch->pidfd, EPOLLIN, on_pidfd, ch) == 0)
		ch->pidfd_watched = true;
}

struct wait_note {
	int index;
	int wstatus;
};

static void *
waiter_main(void *arg)
{
	struct child *ch = arg;
	int wstatus = 0;
	/* fixes.wait=thread: a plain blocking waitpid(); nothing can interrupt it. */
	while (waitpid(ch->pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	struct wait_note note = { (int) (ch - ch->actor->children), wstatus };
	(void) write_full(ch->actor->waitpipe[1], &note, sizeof(note));
	return NULL;
}

static void
on_waitpipe(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct actor *a = userdata;
	struct wait_note note;
	while (read(fd, &note, sizeof(note)) == (ssize_t) sizeof(note))
		if (note.index >= 0 && (size_t) note.index < a->n_children && !a->children[note.index].reaped)
			child_reaped(&a->children[note.index], note.wstatus);
}

static void
start_waiter(struct child *ch)
{
	struct actor *a = ch->actor;
	if (ch->waiter_started)
		return;
	if (a->waitpipe[0] < 0) {
		if (pipe2(a->waitpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
			(void) fd_limit_hit(a, "pipe2", errno);
			return;
		}
		(void) fd_set_nonblock(a->waitpipe[1], false);
		(void) loop_add_fd(a->loop, a->waitpipe[0], EPOLLIN, on_waitpipe, a);
	}
	sigset_t all, old;
	(void) sigfillset(&all);
	(void) pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_t t;
	if (pthread_create(&t, NULL, waiter_main, ch) == 0) {
		(void) pthread_detach(t);
		ch->waiter_started = true;
	}
	(void) pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- children: channel ---- */

static void
close_child_channel(struct child *ch)
{
	if (ch->chan.fd >= 0)
		(void) loop_remove_fd(ch->actor->loop, ch->chan.fd);
	channel_close(&ch->chan);
}

static void
on_child_error(struct actor *a, struct child *ch, json_t *error)
{
	fdsink_child_error(a->spec->name, ch->spec->name, error); /* tractor: an ERROR record */
	if (ch->error)
		json_decref(ch->error);
	ch->error = json_incref(error);
	json_array_append_new(a->child_errors, error);
	if (a->phase >= PH_TEARDOWN)
		return;
	if (a->awaiting && a->await_uncancellable) {
		/* The uncancellable wait owns the actor until the child exits. */
		if (!a->cancel_deferred) {
			a->cancel_deferred = true;
			a->deferred_from_parent = false;
			a->deferred_signal = 0;
		}
		return;
	}
	a->end = END_ERROR;
	actor_begin_teardown(a);
}

static void
on_child_message(struct child *ch, enum msg_type type, char *payload)
{
	struct actor *a = ch->actor;
	switch (type) {
	case MSG_CANCEL_ACK:
		ch->acked = true;
		ch->final_received = true;
		emit_child_event("cancel_ack", ch, NULL, 0);
		if (ch->ladder_timer) {
			loop_cancel_timer(a->loop, ch->ladder_timer);
			ch->ladder_timer = 0;
		}
		/* Hang up: the child waits for this before it exits. */
		close_child_channel(ch);
		break;
	case MSG_RESULT: {
		ch->final_received = true;
		json_t *doc = json_loads(payload, 0, NULL);
		json_t *err = doc ? json_object_get(doc, "error") : NULL;
		if (ch->ladder_timer) {
			loop_cancel_timer(a->loop, ch->ladder_timer);
			ch->ladder_timer = 0;
		}
		close_child_channel(ch);
		if (err && json_is_object(err))
			on_child_error(a, ch, json_incref(err));
		json_decref(doc);
		break;
	}
	default:
		break;
	}
}

static void
on_child_readable(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct child *ch = userdata;
	int r = channel_fill(&ch->chan);
	for (;;) {
		enum msg_type type;
		char *payload = NULL;
		if (ch->chan.fd < 0 || channel_pop(&ch->chan, &type, &payload) <= 0)
			break;
		on_child_message(ch, type, payload);
		free(payload);
	}
	if (ch->chan.fd >= 0 && (r == 0 || (r < 0 && r != -EAGAIN)))
		close_child_channel(ch);
}

/* ---- children: spawning and the handshake ---- */

static void
child_ready(struct actor *a, struct child *ch)
{
	ch->state = CHILD_READY;
	emit_child_event("ready", ch, NULL, 0);
	if (a->sc->fixes.wait == WAIT_PIDFD)
		watch_pidfd(ch);
	else {
		if (ch->pidfd_watched) {
			(void) loop_remove_fd(a->loop, ch->pidfd);
			ch->pidfd_watched = false;
		}
		start_waiter(ch);
	}
	if (a->phase >= PH_TEARDOWN) {
		if (a->sc->fixes.cancel_first)
			start_ladder(a, ch);
		check_teardown_done(a);
		return;
	}
	actor_spawn_next(a);
}

static void
on_pending_readable(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct actor *a = userdata;
	size_t i;
	for (i = 0; i < a->n_pending; i++)
		if (a->pending[i].fd == fd)
			break;
	if (i == a->n_pending)
		return;
	struct channel *c = &a->pending[i];
	int r = channel_fill(c);
	enum msg_type type;
	char *payload = NULL;
	if (channel_pop(c, &type, &payload) > 0 && type == MSG_HELLO) {
		json_t *doc = json_loads(payload, 0, NULL);
		int id = doc ? (int) json_integer_value(json_object_get(doc, "actor_id")) : -1;
		json_decref(doc);
		free(payload);
		for (size_t k = 0; k < a->n_children; k++) {
			struct child *ch = &a->children[k];
			/* mtf: the child can connect before the worker's pid notification
			 * reaches us, so a child still SPAWNING may say hello. */
			if (ch->spec->id != id || (ch->state != CHILD_BOOTING && ch->state != CHILD_SPAWNING) ||
			    ch->chan.fd >= 0)
				continue;
			(void) loop_remove_fd(a->loop, fd);
			ch->chan = *c;
			a->pending[i] = a->pending[--a->n_pending];
			(void) loop_add_fd(a->loop, ch->chan.fd, EPOLLIN, on_child_readable, ch);
			if (ch->state == CHILD_SPAWNING)
				ch->hello_early = true;
			else
				child_ready(a, ch);
			/* frames that came with the hello are already buffered */
			if (ch->chan.len > 0)
				on_child_readable(a->loop, ch->chan.fd, EPOLLIN, ch);
			return;
		}
		return;
	}
	free(payload);
	if (r == 0 || (r < 0 && r != -EAGAIN)) {
		(void) loop_remove_fd(a->loop, fd);
		channel_close(c);
		a->pending[i] = a->pending[--a->n_pending];
	}
}

static void
on_listener(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct actor *a = userdata;
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0) {
			/* EMFILE leaves the connection queued: level-triggered
			 * epoll would report it forever. */
			(void) fd_limit_hit(a, "accept4", errno);
			return;
		}
		fdsink_created(c, "accept4");
		if (a->n_pending == a->cap_pending) {
			size_t cap = a->cap_pending ? a->cap_pending * 2 : 8;
			struct channel *p = realloc(a->pending, cap * sizeof(*p));
			if (!p) {
				(void) close(c);
				return;
			}
			a->pending = p;
			a->cap_pending = cap;
		}
		channel_init(&a->pending[a->n_pending++], c);
		(void) loop_add_fd(a->loop, c, EPOLLIN, on_pending_readable, a);
	}
}

static int
open_listener(struct actor *a)
{
	(void) snprintf(a->listener_name, sizeof(a->listener_name), "forkscope/%d/%llx", (int) getpid(),
			(unsigned long long) now_ns());
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	fdsink_created(fd, "socket");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(a->listener_name);
	memcpy(sun.sun_path + 1, a->listener_name, n);
	socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *) &sun, len) < 0 || listen(fd, 128) < 0) {
		int e = -errno;
		(void) close(fd);
		return e;
	}
	a->listener = fd;
	return loop_add_fd(a->loop, fd, EPOLLIN, on_listener, a);
}

void
actor_emit_spawn_failed(const struct actor_spec *child, const char *call, int err, const char *msg)
{
	struct event *e = malloc(sizeof(*e));
	if (!e)
		return;
	event_begin(e, "spawn_failed");
	if (child) {
		event_str(e, "child", child->name);
		event_int(e, "child_id", child->id);
	}
	event_str(e, "call", call);
	event_str(e, "errno", strerrorname_np(err) ? strerrorname_np(err) : "?");
	event_str(e, "message", msg);
	(void) event_emit(e);
	free(e);
}

/* An fd the runtime needs was refused for lack of descriptors (EMFILE under
 * a low `ulimit -n`, ENFILE): the machine's limit, not the tree's behaviour.
 * The resource_limit event makes it the cell's infra_error (results.c), and
 * the actor ends with an error instead of waiting on what never comes. */
static bool
fd_limit_hit(struct actor *a, const char *call, int err)
{
	if (err != EMFILE && err != ENFILE)
		return false;
	struct event *e = malloc(sizeof(*e));
	if (e) {
		event_begin(e, "resource_limit");
		event_str(e, "call", call);
		event_str(e, "errno", strerrorname_np(err) ? strerrorname_np(err) : "?");
		event_str(e, "limit", err == EMFILE ? "RLIMIT_NOFILE" : "the system's open file table");
		(void) event_emit(e);
		free(e);
	}
	char msg[160];
	(void) snprintf(msg, sizeof(msg), "%s: %s (open file limit reached)", call, strerror(err));
	actor_exit(a, 75, msg);
	return true;
}

static void
on_spawn_done(struct spawn_request *req, void *userdata)
{
	struct child *ch = req->userdata;
	struct actor *a = ch->actor;
	if (req->error < 0 || req->pid <= 0) {
		ch->state = CHILD_FAILED;
		ch->reaped = true;
		/* Name the call and, for EAGAIN, the limit: a fork refused by
		 * RLIMIT_NPROC or a pids cgroup is the machine's doing, not the
		 * tree's (results.c turns it into the cell's infra_error). */
		const char *call = a->sc->backend == BACKEND_SPAWN ? "posix_spawn" : "fork";
		int err = req->error < 0 ? -req->error : EIO;
		char msg[200];
		(void) snprintf(msg, sizeof(msg), "spawn failed: %s: %s%s", call, strerror(err),
				err == EAGAIN ? " (process limit reached: RLIMIT_NPROC or a pids cgroup)" : "");
		actor_emit_spawn_failed(ch->spec, call, err, msg);
		on_child_error(a, ch, synth_child_error(ch, msg));
		check_teardown_done(a);
		return;
	}
	ch->pid = req->pid;
	ch->state = CHILD_BOOTING;
	ch->pidfd = pidfd_open(ch->pid, 0);
	if (ch->pidfd < 0)
		(void) fd_limit_hit(a, "pidfd_open", errno);
	fdsink_created(ch->pidfd, "pidfd_open");
	/* fixes.boot_race: wait for the handshake and for the child's death together. */
	if (a->sc->fixes.boot_race)
		watch_pidfd(ch);
	if (ch->hello_early) {
		child_ready(a, ch);
		return;
	}
	if (a->phase >= PH_TEARDOWN) {
		/* Forked while the teardown began: begin_teardown could not reach it. */
		if (a->sc->fixes.cancel_first)
			start_ladder(a, ch);
		check_teardown_done(a);
	}
}

static void
spawn_child(struct actor *a, struct child *ch)
{
	ch->state = CHILD_SPAWNING;
	struct spawn_request *req = &ch->req;
	memset(req, 0, sizeof(*req));
	req->sc = a->sc;
	req->spec = ch->spec;
	req->userdata = ch;
	(void) snprintf(req->parent_socket, sizeof(req->parent_socket), "%s", a->listener_name);
	if (ctx_spec_path)
		(void) snprintf(req->spec_path, sizeof(req->spec_path), "%s", ctx_spec_path);
	if (ctx_exe_path)
		(void) snprintf(req->exe_path, sizeof(req->exe_path), "%s", ctx_exe_path);
	if (a->sc->fixes.stdio == STDIO_FILE) {
		const char *log = eventlog_path();
		const char *slash = log ? strrchr(log, '/') : NULL;
		int dirlen = slash ? (int) (slash - log) : 1;
		(void) snprintf(req->stdio_path, sizeof(req->stdio_path), "%.*s/stdio-%s.txt", dirlen,
				slash ? log : ".", ch->spec->name);
	}
	{
		json_t *name = json_string(ch->spec->name);
		char *quoted = json_dumps(name, JSON_ENCODE_ANY);
		(void) snprintf(req->context, sizeof(req->context), "\"actor\":%s,\"actor_id\":%d",
				quoted ? quoted : "\"?\"", ch->spec->id);
		free(quoted);
		json_decref(name);
	}
	emit_child_event("spawn", ch, NULL, 0);
	int r = forkserver_spawn(a->fs, req);
	if (r < 0) {
		req->error = r;
		on_spawn_done(req, a);
	}
}

/* Spawn, one at a time, the children that are due: the initial ones in the boot
 * phase, the late ones named by the current `spawn:` step. A child is started
 * only after the previous one is up (nursery.start semantics). */
void
actor_spawn_next(struct actor *a)
{
	if (a->phase >= PH_TEARDOWN)
		return;
	for (size_t i = 0; i < a->n_children; i++) {
		struct child *ch = &a->children[i];
		if (ch->state == CHILD_SPAWNING || (ch->state == CHILD_BOOTING && !ch->reaped))
			return; /* wait for it */
	}
	for (size_t i = 0; i < a->n_children; i++) {
		struct child *ch = &a->children[i];
		if (ch->state != CHILD_IDLE)
			continue;
		bool due;
		if (a->phase == PH_BOOT_CHILDREN)
			due = !ch->spec->late;
		else
			due = a->spawning_late && ch->spec->late &&
			      actor_name_matches(ch->spec->name, a->spec->steps[a->step].text);
		if (!due)
			continue;
		spawn_child(a, ch);
		return;
	}
	/* Nothing left to start. */
	if (a->phase == PH_BOOT_CHILDREN) {
		a->phase = PH_STEPS;
		actor_run_steps(a);
	} else if (a->spawning_late) {
		a->spawning_late = false;
		a->step++;
		actor_run_steps(a);
	}
}

/* ---- the kill ladder ---- */

static void ladder_timeout(struct loop *l, void *userdata);

static void
ladder_signal(struct child *ch, int sig)
{
	(void) kill(ch->pid, sig);
	struct event *e = malloc(sizeof(*e));
	if (!e)
		return;
	event_begin(e, "signal_sent");
	event_str(e, "child", ch->spec->name);
	event_int(e, "child_id", ch->spec->id);
	event_int(e, "child_pid", ch->pid);
	event_str(e, "signal", signal_name(sig));
	(void) event_emit(e);
	free(e);
}

static void
start_ladder(struct actor *a, struct child *ch)
{
	if (ch->reaped || ch->ladder || ch->state == CHILD_IDLE || ch->state == CHILD_SPAWNING ||
	    ch->final_received)
		return;
	uint64_t now = now_ns();
	if (ch->state == CHILD_READY && ch->chan.fd >= 0 &&
	    channel_send(ch->chan.fd, MSG_CANCEL, NULL) == 0) {
		ch->ladder = 1;
		emit_child_event("cancel_sent", ch, NULL, 0);
		ch->ladder_timer = loop_add_timer(a->loop, now + a->sc->timeouts.cancel_ack_ns, ladder_timeout, ch);
		return;
	}
	/* Not reachable by message (still booting, or its channel is gone). */
	ch->ladder = 2;
	ladder_signal(ch, SIGTERM);
	ch->ladder_timer = loop_add_timer(a->loop, now + a->sc->timeouts.hard_kill_ns, ladder_timeout, ch);
}

static void
ladder_timeout(struct loop *l, void *userdata)
{
	struct child *ch = userdata;
	struct actor *a = ch->actor;
	ch->ladder_timer = 0;
	if (ch->reaped)
		return;
	if (ch->ladder == 1) {
		ch->ladder = 2;
		ladder_signal(ch, SIGTERM);
		ch->ladder_timer = loop_add_timer(l, now_ns() + a->sc->timeouts.hard_kill_ns, ladder_timeout, ch);
	} else if (ch->ladder == 2) {
		ch->ladder = 3;
		ladder_signal(ch, SIGKILL);
	}
}

/* ---- teardown, final message, linger ---- */

static void
end_daemons(struct actor *a)
{
	for (size_t i = 0; i < a->n_daemons; i++) {
		/* The helper called setsid(): it leads its own group. */
		(void) kill(-a->daemons[i], SIGKILL);
		int st;
		while (waitpid(a->daemons[i], &st, 0) < 0 && errno == EINTR)
			;
	}
	a->n_daemons = 0;
}

void
actor_begin_teardown(struct actor *a)
{
	if (a->phase >= PH_TEARDOWN)
		return;
	a->phase = PH_TEARDOWN;
	a->awaiting = false;
	a->spawning_late = false;
	if (a->step_timer) {
		loop_cancel_timer(a->loop, a->step_timer);
		a->step_timer = 0;
	}
	struct event *e = malloc(sizeof(*e));
	if (e) {
		static const char *const names[] = { "ok", "error", "cancelled", "signal" };
		event_begin(e, "teardown");
		event_str(e, "reason", names[a->end]);
		event_bool(e, "cancel_first", a->sc->fixes.cancel_first);
		(void) event_emit(e);
		free(e);
	}
	/* No more spawns from here on. */
	forkserver_shutdown(a->fs);
	if (a->sc->fixes.tree_kill)
		end_daemons(a);
	if (a->sc->fixes.cancel_first)
		for (size_t i = 0; i < a->n_children; i++)
			start_ladder(a, &a->children[i]);
	check_teardown_done(a);
}

static json_t *
own_error_box(struct actor *a)
{
	json_t *box = json_object();
	json_object_set_new(box, "actor", json_string(a->spec->name));
	json_object_set_new(box, "pid", json_integer(getpid()));
	if (a->own_error)
		json_object_set_new(box, "message", json_string(a->own_error));
	else if (json_array_size(a->child_errors) == 1)
		json_object_set_new(box, "message", json_string("a child failed"));
	else
		json_object_set_new(box, "message", json_string("children failed"));
	if (a->own_backtrace)
		json_object_set(box, "backtrace", a->own_backtrace);
	json_object_set(box, "children", a->child_errors);
	return box;
}

static void
linger_done(struct loop *l, void *userdata)
{
	struct actor *a = userdata;
	a->linger_timer = 0;
	actor_exit(a, -1, NULL);
}

static void
on_parent_readable(struct loop *l, int fd, uint32_t events, void *userdata);

static void
check_teardown_done(struct actor *a)
{
	if (a->phase != PH_TEARDOWN)
		return;
	for (size_t i = 0; i < a->n_children; i++) {
		struct child *ch = &a->children[i];
		if (ch->state == CHILD_IDLE || ch->state == CHILD_FAILED)
			continue;
		if (!ch->reaped)
			return;
	}
	/* Join-first nurseries get here only when every child ended on its own. */
	a->phase = PH_LINGER;
	if (a->is_root || a->parent.fd < 0) {
		actor_exit(a, -1, NULL);
	}
	char *payload = NULL;
	enum msg_type type = MSG_RESULT;
	/* A child error that arrived while we were being cancelled still travels up. */
	if (a->end == END_CANCELLED && json_array_size(a->child_errors) == 0)
		type = MSG_CANCEL_ACK;
	else if (a->end != END_OK || json_array_size(a->child_errors) > 0) {
		json_t *box = own_error_box(a);
		json_t *doc = json_pack("{s:o}", "error", box);
		payload = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
	} else
		payload = strdup("{\"ok\":true}");
	(void) channel_send(a->parent.fd, type, payload);
	free(payload);
	if (a->parent.eof)
		actor_exit(a, -1, NULL);
	/* Wait for the parent to hang up (it closes our channel on our final message). */
	if (a->sc->fixes.peer_wait_bound)
		a->linger_timer = loop_add_timer(a->loop, now_ns() + a->sc->timeouts.peer_wait_ns, linger_done, a);
}

__attribute__((noreturn)) void
actor_exit(struct actor *a, int code, const char *reason)
{
	static const char *const names[] = { "ok", "error", "cancelled", "signal" };
	if (code < 0) {
		switch (a->end) {
		case END_OK:
		case END_CANCELLED:
			/* an error that came up during the cancel still travels up, and
			 * so does its status */
			code = json_array_size(a->child_errors) > 0 ? 1 : 0;
			break;
		case END_ERROR:
			code = 1;
			break;
		case END_SIGNAL:
			code = 128 + a->end_signal;
			break;
		}
	}
	struct event *e = malloc(sizeof(*e));
	if (e) {
		event_begin(e, "exit");
		event_int(e, "code", code);
		event_str(e, "reason", reason ? reason : names[a->end]);
		if (a->end == END_ERROR || a->end == END_SIGNAL || a->own_error) {
			json_t *box = own_error_box(a);
			char *text = json_dumps(box, JSON_COMPACT);
			if (text)
				event_raw(e, "error", text);
			free(text);
			json_decref(box);
		}
		(void) event_emit(e);
		free(e);
	}
	_exit(code);
}

/* ---- cancellation ---- */

void
actor_on_cancel(struct actor *a, bool from_parent, int sig)
{
	struct event *e = malloc(sizeof(*e));
	if (e) {
		event_begin(e, "cancel_recv");
		event_str(e, "from", from_parent ? "parent" : "signal");
		if (sig)
			event_str(e, "signal", signal_name(sig));
		(void) event_emit(e);
		free(e);
	}
	if (from_parent && a->ignore_cancel)
		return; /* no ack, ever: the parent's ladder has to escalate */
	if (a->phase >= PH_TEARDOWN)
		return;
	if (a->awaiting && a->await_uncancellable) {
		/* fixes.wait=thread: the await sits in a blocking waitpid() in a helper
		 * thread; the cancel is noted and acted on only when it returns. */
		if (!a->cancel_deferred) {
			a->cancel_deferred = true;
			a->deferred_from_parent = from_parent;
			a->deferred_signal = sig;
		}
		return;
	}
	a->end = from_parent ? END_CANCELLED : END_SIGNAL;
	a->end_signal = sig;
	actor_begin_teardown(a);
}

static void
on_parent_readable(struct loop *l, int fd, uint32_t events, void *userdata)
{
	struct actor *a = userdata;
	int r = channel_fill(&a->parent);
	for (;;) {
		enum msg_type type;
		char *payload = NULL;
		if (channel_pop(&a->parent, &type, &payload) <= 0)
			break;
		if (type == MSG_CANCEL)
			actor_on_cancel(a, true, 0);
		free(payload);
	}
	if (r == 0 || (r < 0 && r != -EAGAIN)) {
		/* The parent hung up. Before the final message that is not a cancel
		 * (EOF is not a reliable signal across fork); after it, we may go. */
		(void) loop_remove_fd(a->loop, fd);
		a->parent.eof = true;
		struct event *e = malloc(sizeof(*e));
		if (e) {
			event_begin(e, "parent_hangup");
			(void) event_emit(e);
			free(e);
		}
		if (a->phase == PH_LINGER)
			actor_exit(a, -1, NULL);
	}
}

static int
connect_parent(struct actor *a, const char *name)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	fdsink_created(fd, "socket");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	if (n + 1 > sizeof(sun.sun_path)) {
		(void) close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path + 1, name, n);
	socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n);
	while (connect(fd, (struct sockaddr *) &sun, len) < 0) {
		if (errno == EINTR)
			continue;
		int e = -errno;
		(void) close(fd);
		return e;
	}
	json_t *hello = json_pack("{s:i,s:s,s:i}", "actor_id", a->spec->id, "name", a->spec->name, "pid",
				  (int) getpid());
	char *text = json_dumps(hello, JSON_COMPACT);
	json_decref(hello);
	int r = channel_send(fd, MSG_HELLO, text);
	free(text);
	if (r < 0) {
		(void) close(fd);
		return r;
	}
	channel_init(&a->parent, fd);
	return 0;
}

static void *image_block;

static int
build_image(uint64_t bytes)
{
	if (!bytes || image_block)
		return 0;
	/* The warm image: touched pages a forked child inherits and a spawned one
	 * must rebuild, as a fresh interpreter re-imports its modules. */
	image_block = malloc(bytes);
	if (!image_block)
		return -ENOMEM;
	long page = sysconf(_SC_PAGESIZE);
	for (uint64_t off = 0; off < bytes; off += (uint64_t) page)
		((volatile char *) image_block)[off] = (char) off;
	return 0;
}

static void child_entry(struct spawn_request *req, void *userdata);

__attribute__((noreturn)) static void
actor_run(const struct scenario *sc, const struct actor_spec *spec, const char *parent_socket)
{
	static struct actor actor;
	struct actor *a = &actor;
	memset(a, 0, sizeof(*a));
	the_actor = a;
	a->sc = sc;
	a->spec = spec;
	a->is_root = parent_socket == NULL;
	a->listener = -1;
	a->waitpipe[0] = a->waitpipe[1] = -1;
	channel_init(&a->parent, -1);
	a->child_errors = json_array();
	set_event_context(spec);
	(void) prctl(PR_SET_NAME, spec->name);

	/* Forked children inherit the image (no-op); the root and exec'd children build it.
	 * A missing image would measure something else: an infra error, not a result. */
	if (build_image(sc->image_bytes) < 0) {
		char call[96], msg[160];
		(void) snprintf(call, sizeof(call), "malloc of the %llu-byte image",
				(unsigned long long) sc->image_bytes);
		(void) snprintf(msg, sizeof(msg), "cannot build the image: %s: %s", call, strerror(ENOMEM));
		actor_emit_spawn_failed(NULL, call, ENOMEM, msg);
		actor_exit(a, 75, msg);
	}

	/* A child registers itself first: with the registry lock inherited locked
	 * (held by another thread at the fork) this never returns. */
	registry_lock();
	registry_unlock();

	actor_run_boot_steps(a);

	int lr = loop_new(&a->loop);
	if (lr < 0) {
		(void) fd_limit_hit(a, "epoll_create1", -lr);
		actor_exit(a, 70, "loop setup failed");
	}
	install_signal_handlers(a);
	loop_set_wake_handler(a->loop, on_wake, a);

	/* The warm image carries the parent's loop, and the child re-arms its
	 * surviving internal watchers (libuv's uv_loop_fork does the same). The
	 * forkserver notify socket survives unless fd_scrub closed it; the child
	 * never spawned through it, so it only watches it for hangup. */
	int inherited = forkserver_inherited_notify_fd();
	if (inherited >= 0 && fd_is_open(inherited))
		(void) loop_add_fd(a->loop, inherited, EPOLLRDHUP, forkserver_notify_watch, NULL);

	if (!a->is_root) {
		int r = connect_parent(a, parent_socket);
		if (r < 0) {
			(void) fd_limit_hit(a, "socket", -r);
			actor_exit(a, 71, "cannot connect to parent");
		}
		(void) loop_add_fd(a->loop, a->parent.fd, EPOLLIN, on_parent_readable, a);
	} else {
		struct event *e = malloc(sizeof(*e));
		if (e) {
			event_begin(e, "ready");
			event_str(e, "child", spec->name);
			event_int(e, "child_id", spec->id);
			event_int(e, "child_pid", getpid());
			(void) event_emit(e);
			free(e);
		}
	}

	if (spec->n_children > 0) {
		a->children = calloc(spec->n_children, sizeof(*a->children));
		a->n_children = spec->n_children;
		for (size_t i = 0; i < spec->n_children; i++) {
			struct child *ch = &a->children[i];
			ch->actor = a;
			ch->spec = &spec->children[i];
			ch->pidfd = -1;
			channel_init(&ch->chan, -1);
		}
		int lr2 = open_listener(a);
		if (lr2 < 0) {
			(void) fd_limit_hit(a, "socket", -lr2);
			actor_exit(a, 72, "cannot open listener");
		}
		static const struct forkserver_callbacks callbacks = { .done = on_spawn_done, .child_entry = child_entry };
		int fr = forkserver_new(sc->backend, a->loop, &callbacks, a, &a->fs);
		if (fr < 0) {
			/* mtf: pthread_create of the worker thread, refused at a pids limit too */
			char msg[200];
			(void) snprintf(msg, sizeof(msg), "cannot start forkserver: %s", strerror(-fr));
			actor_emit_spawn_failed(NULL, sc->backend == BACKEND_MTF ? "start of the mtf forkserver thread"
									   : "start of the forkserver",
					  -fr, msg);
			actor_exit(a, 73, msg);
		}
	}

	a->phase = PH_BOOT_CHILDREN;
	actor_spawn_next(a);
	for (;;)
		if (loop_run_once(a->loop) < 0)
			actor_exit(a, 74, "loop failed");
}

static void
child_entry(struct spawn_request *req, void *userdata)
{
	actor_run(req->sc, req->spec, req->parent_socket);
}

void
actor_root_main(const struct scenario *sc)
{
	actor_run(sc, &sc->root, NULL);
}

static const struct actor_spec *
find_actor(const struct actor_spec *node, int id)
{
	if (node->id == id)
		return node;
	for (size_t i = 0; i < node->n_children; i++) {
		const struct actor_spec *f = find_actor(&node->children[i], id);
		if (f)
			return f;
	}
	return NULL;
}

int
actor_exec_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "spec", required_argument, NULL, 's' },    { "actor", required_argument, NULL, 'a' },
		{ "parent", required_argument, NULL, 'p' },  { "events", required_argument, NULL, 'e' },
		{ "spawn-ns", required_argument, NULL, 'n' }, { 0 },
	};
	const char *spec_path = NULL, *parent = NULL, *events = NULL;
	int id = -1;
	uint64_t spawn_ns = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			spec_path = optarg;
			break;
		case 'a':
			id = atoi(optarg);
			break;
		case 'p':
			parent = optarg;
			break;
		case 'e':
			events = optarg;
			break;
		case 'n':
			spawn_ns = strtoull(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (!spec_path || id < 0 || !parent) {
		fprintf(stderr, "forkscope __actor: --spec, --actor and --parent are required\n");
		return 2;
	}
	if (events && *events)
		(void) eventlog_open(events);
	char *text = NULL;
	if (read_file_alloc(spec_path, &text, NULL) < 0) {
		fprintf(stderr, "forkscope __actor: cannot read %s\n", spec_path);
		return 2;
	}
	struct scenario *sc = NULL;
	char *err = NULL;
	if (scenario_from_json(text, &sc, &err) < 0) {
		fprintf(stderr, "forkscope __actor: %s: %s\n", spec_path, err ? err : "invalid spec");
		return 2;
	}
	free(text);
	struct actor_spec **index = NULL;
	size_t n = 0;
	(void) scenario_index(sc, &index, &n);
	free(index);
	const struct actor_spec *spec = find_actor(&sc->root, id);
	if (!spec) {
		fprintf(stderr, "forkscope __actor: no actor %d in %s\n", id, spec_path);
		return 2;
	}
	actor_set_context(spec_path, "/proc/self/exe");
	set_event_context(spec);
	eventlog_note_fork_time(spawn_ns);
	if (eventlog_enabled()) {
		/* The same record a forked child writes: here it shows what exec kept. */
		static struct event e;
		event_begin(&e, "child_start");
		event_uint(&e, "ns_since_fork", spawn_ns ? now_ns() - spawn_ns : 0);
		event_bool(&e, "exec", true);
		event_int(&e, "ppid", getppid());
		event_int(&e, "threads", census_thread_count());
		int skip[] = { eventlog_fd() };
		census_fds(&e, "fds", skip, 1);
		census_stdio(&e, "stdio");
		census_signals(&e);
		(void) event_emit(&e);
	}
	pid_t parent_pid = getppid();
	(void) prctl(PR_SET_PDEATHSIG, SIGINT);
	if (getppid() != parent_pid)
		(void) kill(getpid(), SIGINT);
	actor_run(sc, spec, parent);
}
