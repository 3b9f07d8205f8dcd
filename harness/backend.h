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

/* What the runtime gives the forkserver, so the forkserver needs nothing of
 * the runtime: done runs on the loop thread when a request completed (pid or
 * error); child_entry runs in a forked child after the prelude and never
 * returns. */
struct forkserver_callbacks {
	void (*done)(struct spawn_request *req, void *userdata);
	void (*child_entry)(struct spawn_request *req, void *userdata);
};

int forkserver_new(enum backend_kind kind, struct loop *loop, const struct forkserver_callbacks *cb, void *userdata,
		   struct forkserver **ret);
/* Ask for a child. mtf completes asynchronously through the loop; fork and
 * spawn complete before returning. The runtime's registry lock is held from
 * the request until completion: that is what a warm-image child inherits. */
int forkserver_spawn(struct forkserver *fs, struct spawn_request *req);
/* No more spawns: the mtf worker closes its end of the notify socket. */
void forkserver_shutdown(struct forkserver *fs);
void forkserver_free(struct forkserver *fs);
int forkserver_thread_count(const struct forkserver *fs);

/* In a forked child: the loop-side notify fd of the forkserver that made it,
 * if it is still open (no fd_scrub), else -1. See backend.c for why it matters. */
int forkserver_inherited_notify_fd(void);
/* The drain shared by parent and (inherited) child watchers. */
void forkserver_notify_watch(struct loop *l, int fd, uint32_t events, void *userdata);
