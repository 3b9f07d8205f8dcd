#pragma once
/* What the actor runtime's files share (harness/actor.c: the process, its
 * children, teardown; harness/actor_steps.c: the scenario's steps). */
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness/backend.h"
#include "harness/channel.h"
#include "harness/loop.h"
#include "harness/scenario.h"

enum child_state {
	CHILD_IDLE,	/* not spawned yet (late, or waiting its turn) */
	CHILD_SPAWNING, /* request sent to the forkserver */
	CHILD_BOOTING,	/* has a pid, no handshake yet */
	CHILD_READY,
	CHILD_FAILED, /* the spawn itself failed */
};

struct actor;

struct child {
	struct actor *actor;
	const struct actor_spec *spec;
	enum child_state state;
	pid_t pid;
	int pidfd;
	bool pidfd_watched;
	struct channel chan;
	bool final_received;
	bool acked;
	int ladder; /* 0 none, 1 cancel sent, 2 SIGTERM sent, 3 SIGKILL sent */
	uint64_t ladder_timer;
	bool reaped;
	int wstatus;
	json_t *error;
	struct spawn_request req;
	bool waiter_started;
	bool hello_early; /* the handshake beat the forkserver's pid notification */
};

enum phase {
	PH_BOOT_CHILDREN,
	PH_STEPS,
	PH_TEARDOWN,
	PH_LINGER,
};

enum end_reason {
	END_OK,
	END_ERROR,
	END_CANCELLED, /* by the parent's cancel request */
	END_SIGNAL,    /* by SIGINT/SIGTERM */
};

struct actor {
	const struct scenario *sc;
	const struct actor_spec *spec;
	bool is_root;
	struct loop *loop;
	struct forkserver *fs;
	struct channel parent;
	int listener;
	char listener_name[108];
	struct child *children;
	size_t n_children;
	struct channel *pending;
	size_t n_pending, cap_pending;
	enum phase phase;
	size_t step;
	uint64_t step_timer;
	bool spawning_late; /* a `spawn:` step is bringing children up */
	bool awaiting;
	bool await_uncancellable;
	bool ignore_cancel;
	bool cancel_deferred;
	bool deferred_from_parent;
	int deferred_signal;
	enum end_reason end;
	int end_signal;
	char *own_error;
	json_t *own_backtrace;
	json_t *child_errors;
	uint64_t linger_timer;
	pid_t daemons[16];
	size_t n_daemons;
	int waitpipe[2];
};

/* The signal (SIGINT/SIGTERM) the actor got, 0 none: set by its handler. */
extern volatile sig_atomic_t actor_got_signal;

__attribute__((noreturn)) void actor_exit(struct actor *a, int code, const char *reason);
void actor_begin_teardown(struct actor *a);
void actor_on_cancel(struct actor *a, bool from_parent, int sig);
void actor_spawn_next(struct actor *a);
json_t *actor_capture_backtrace(void);
bool actor_name_matches(const char *actual, const char *wanted);

/* harness/actor_steps.c */
void actor_run_steps(struct actor *a);
void actor_run_boot_steps(struct actor *a);
bool actor_await_satisfied(struct actor *a, const char *name);
