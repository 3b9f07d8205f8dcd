/* The actor runtime's steps: what a scenario tells an actor to do between
 * its boot and its teardown (docs/scenario-format.md "steps"). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness/actor-private.h"
#include "harness/fdsink.h"
#include "probes/eventlog.h"
#include "util/fdutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

/* ---- steps ---- */

static void
on_sleep_done(struct loop *l, void *userdata)
{
	struct actor *a = userdata;
	a->step_timer = 0;
	a->step++;
	actor_run_steps(a);
}

static void
do_log(struct actor *a, const struct step *s)
{
	static const char line[] = "forkscope: actor log line, the kind a traceback would fill a pipe with\n";
	int fd = s->stream == LOG_STDERR ? 2 : 1;
	uint64_t left = s->bytes;
	while (left > 0 && !actor_got_signal) {
		size_t n = MIN(left, sizeof(line) - 1);
		/* A blocking write: a full pipe parks the whole actor here. */
		ssize_t w = write(fd, line, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		left -= (uint64_t) w;
	}
}

static void
do_spin(const struct step *s)
{
	uint64_t end = s->ns ? now_ns() + s->ns : UINT64_MAX;
	volatile uint64_t sink = 0;
	while (!actor_got_signal && now_ns() < end)
		for (int i = 0; i < 10000; i++)
			sink += (uint64_t) i;
}

static void
do_daemonize(struct actor *a)
{
	pid_t pid = fork();
	if (pid == 0) {
		/* A helper that leaves the process group and outlives its creator
		 * unless someone ends it: what a registry daemon started by a test does. */
		(void) setsid();
		(void) prctl(PR_SET_PDEATHSIG, 0);
		eventlog_set_context("\"kind\":\"daemon\"");
		struct event *e = malloc(sizeof(*e));
		if (e) {
			event_begin(e, "daemon_start");
			event_str(e, "started_by", a->spec->name);
			(void) event_emit(e);
			free(e);
		}
		int keep[] = { eventlog_fd() };
		(void) fd_close_all_except(keep, 1, NULL, 0, NULL);
		for (;;)
			(void) pause();
	}
	if (pid > 0 && a->n_daemons < ARRAY_SIZE(a->daemons)) {
		a->daemons[a->n_daemons++] = pid;
		struct event *e = malloc(sizeof(*e));
		if (e) {
			event_begin(e, "daemonize");
			event_int(e, "daemon_pid", pid);
			(void) event_emit(e);
			free(e);
		}
	}
}

bool
actor_await_satisfied(struct actor *a, const char *name)
{
	for (size_t i = 0; i < a->n_children; i++) {
		struct child *ch = &a->children[i];
		if (!actor_name_matches(ch->spec->name, name))
			continue;
		if (ch->state == CHILD_IDLE || ch->state == CHILD_FAILED)
			continue;
		if (!ch->reaped)
			return false;
	}
	return true;
}

void
actor_run_steps(struct actor *a)
{
	while (a->phase == PH_STEPS && a->step < a->spec->n_steps) {
		const struct step *s = &a->spec->steps[a->step];
		if (actor_got_signal) {
			actor_on_cancel(a, false, actor_got_signal);
			return;
		}
		switch (s->kind) {
		case STEP_SLEEP:
			if (!a->step_timer)
				a->step_timer = loop_add_timer(a->loop, now_ns() + s->ns, on_sleep_done, a);
			return;
		case STEP_LOG:
			do_log(a, s);
			break;
		case STEP_RAISE: {
			char msg[512];
			(void) snprintf(msg, sizeof(msg), "%s (raised by step at %s:%u:%u)",
					s->text ? s->text : "error", a->sc->path ? a->sc->path : "scenario", s->line,
					s->column);
			free(a->own_error);
			a->own_error = strdup(msg);
			a->own_backtrace = actor_capture_backtrace();
			a->end = END_ERROR;
			actor_begin_teardown(a);
			return;
		}
		case STEP_EXIT:
			actor_exit(a, s->value, "exit step");
		case STEP_LOG_SINK:
			(void) fdsink_open(s->value);
			break;
		case STEP_IGNORE_CANCEL:
			a->ignore_cancel = true;
			break;
		case STEP_IGNORE_SIGTERM:
			(void) signal(SIGTERM, SIG_IGN);
			break;
		case STEP_BLOCK_SIGINT: {
			sigset_t set;
			(void) sigemptyset(&set);
			(void) sigaddset(&set, SIGINT);
			(void) sigprocmask(SIG_BLOCK, &set, NULL);
			break;
		}
		case STEP_SPIN:
			do_spin(s);
			break;
		case STEP_SPAWN:
			if (!a->spawning_late) {
				a->spawning_late = true;
				actor_spawn_next(a);
			}
			return;
		case STEP_SERVE:
			return; /* until cancelled */
		case STEP_AWAIT:
			if (!actor_await_satisfied(a, s->text)) {
				a->awaiting = true;
				a->await_uncancellable = a->sc->fixes.wait == WAIT_THREAD;
				return;
			}
			a->awaiting = false;
			if (a->cancel_deferred) {
				a->cancel_deferred = false;
				if (json_array_size(a->child_errors) > 0 && !a->deferred_from_parent &&
				    !a->deferred_signal)
					a->end = END_ERROR;
				else
					a->end = a->deferred_from_parent ? END_CANCELLED : END_SIGNAL;
				a->end_signal = a->deferred_signal;
				actor_begin_teardown(a);
				return;
			}
			break;
		case STEP_KILL_SELF:
			(void) kill(getpid(), s->value);
			break;
		case STEP_DAEMONIZE:
			do_daemonize(a);
			break;
		default:
			break;
		}
		a->step++;
	}
	if (a->phase == PH_STEPS && a->step >= a->spec->n_steps && actor_got_signal) {
		actor_on_cancel(a, false, actor_got_signal);
		return;
	}
	if (a->phase == PH_STEPS && a->step >= a->spec->n_steps) {
		a->end = END_OK;
		actor_begin_teardown(a);
	}
}

/* ---- boot and main ---- */

void
actor_run_boot_steps(struct actor *a)
{
	for (size_t i = 0; i < a->spec->n_boot; i++) {
		const struct step *s = &a->spec->boot[i];
		switch (s->kind) {
		case STEP_SLEEP: {
			struct timespec ts = { (time_t) (s->ns / NSEC_PER_SEC), (long) (s->ns % NSEC_PER_SEC) };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
			break;
		}
		case STEP_EXIT:
			actor_exit(a, s->value, "exit during boot");
		case STEP_LOG_SINK:
			(void) fdsink_open(s->value);
			break;
		case STEP_RAISE: {
			/* An exception escaping the child entry: status 2, like the forkserver's. */
			char msg[512];
			(void) snprintf(msg, sizeof(msg), "%s (raised during boot at %s:%u:%u)",
					s->text ? s->text : "error", a->sc->path ? a->sc->path : "scenario", s->line,
					s->column);
			a->own_error = strdup(msg);
			a->own_backtrace = actor_capture_backtrace();
			a->end = END_ERROR;
			actor_exit(a, 2, "raise during boot");
		}
		case STEP_SPIN:
			do_spin(s);
			break;
		case STEP_KILL_SELF:
			(void) kill(getpid(), s->value);
			break;
		case STEP_LOG:
			do_log(a, s);
			break;
		case STEP_BLOCK_SIGINT: {
			sigset_t set;
			(void) sigemptyset(&set);
			(void) sigaddset(&set, SIGINT);
			(void) sigprocmask(SIG_BLOCK, &set, NULL);
			break;
		}
		case STEP_IGNORE_SIGTERM:
			(void) signal(SIGTERM, SIG_IGN);
			break;
		default:
			break;
		}
	}
}

