#pragma once
/* Forkserver backends: how an actor makes a child.
 *
 *  mtf   a dedicated worker thread, started before the event loop and used for
 *        nothing else, receives spawn requests over a pipe, fork()s, and hands
 *        the pid back over a socket the loop watches;
 *  fork  fork() straight from the event-loop thread;
 *  spawn posix_spawn() of the forkscope binary in child mode (fresh image).
 *
 * The child side of a fork runs the prelude (each fix switch of DESIGN.md)
 * with async-signal-safe calls only, then the actor main. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness/loop.h"
#include "harness/scenario.h"

struct forkserver;

struct spawn_request {
	/* in: everything prepared before the fork, so the child formats nothing */
	const struct scenario *sc;
	const struct actor_spec *spec;
	char parent_socket[108]; /* abstract name (without the leading NUL) to connect back to */
	char stdio_path[4096];	 /* fixes.stdio=file */
	char spec_path[4096];	 /* spawn backend: the cell's spec.json */
	char exe_path[4096];	 /* spawn backend: the forkscope binary */
	char context[256];	 /* event context of the child: "actor":…,"actor_id":… */
	void *userdata;
	/* out */
	pid_t pid;
	int error; /* -errno when the spawn failed */
	uint64_t fork_ns;
};

/* Called on the loop thread when a spawn request completed (pid or error). */
typedef void (*spawn_done_fn)(struct spawn_request *req, void *userdata);

int forkserver_new(enum backend_kind kind, struct loop *loop, spawn_done_fn done, void *userdata,
		   struct forkserver **ret);
/* Ask for a child. mtf completes asynchronously through the loop; fork and
 * spawn complete before returning. The runtime's registry lock is held from
 * the request until completion: that is what a warm-image child inherits. */
int forkserver_spawn(struct forkserver *fs, struct spawn_request *req);
/* No more spawns: the mtf worker closes its end of the notify socket. */
void forkserver_shutdown(struct forkserver *fs);
void forkserver_free(struct forkserver *fs);
int forkserver_thread_count(const struct forkserver *fs);

/* The runtime-wide registry lock (actor.c takes it when a child boots). */
void registry_lock(void);
void registry_unlock(void);

/* In a forked child: the loop-side notify fd of the forkserver that made it,
 * if it is still open (no fd_scrub), else -1. See backend.c for why it matters. */
int forkserver_inherited_notify_fd(void);
/* The drain shared by parent and (inherited) child watchers. */
void forkserver_notify_watch(struct loop *l, int fd, uint32_t events, void *userdata);

/* Entry point of the child after the prelude (implemented in actor.c). */
__attribute__((noreturn)) void actor_child_entry(struct spawn_request *req);

/* Prelude for a child that the runner forks itself (the root, the capture host):
 * close everything but 0,1,2 and the event log, reset the signal mask. */
void runner_child_prelude(void);
