#pragma once
/* The actor runtime: each actor is a process with an epoll loop, a channel to
 * its parent (a unix socket it connects back to), a listener its children
 * connect to, and a nursery of children it spawns through its backend.
 *
 * Semantics (docs/actors.md):
 *  - a child connects back and sends HELLO (the handshake);
 *  - steps run after the initial children are up; an error in a child
 *    interrupts the steps and tears the nursery down;
 *  - teardown: cancel_first sends cancel to every child then joins them with
 *    the kill ladder (cancel request -> cancel_ack -> SIGTERM -> hard_kill ->
 *    SIGKILL); without it the nursery waits for its children to end first;
 *  - the final message (RESULT or CANCEL_ACK) goes to the parent, and the
 *    actor waits for the parent to hang up before exiting (bounded by
 *    peer_wait with peer_wait_bound): the parent closes a child's channel when
 *    its final message arrives. */
#include <stdint.h>

#include "harness/scenario.h"

/* Where spawn-backend children find their spec and the binary. Set once by the
 * runner (or the exec'ed child) before any actor runs; forked children inherit it. */
void actor_set_context(const char *spec_path, const char *exe_path);

/* Run the root actor of a cell in this (already forked) process. Never returns. */
__attribute__((noreturn)) void actor_root_main(const struct scenario *sc);

/* `forkscope __actor --spec F --actor ID --parent NAME --events PATH --spawn-ns N`:
 * the child side of the spawn backend. Returns an exit status only on usage errors. */
int actor_exec_main(int argc, char **argv);

/* The spawn_failed event (docs/events.md): results.c reads it to tell a
 * refused fork or posix_spawn (the machine's limit) from the tree's own
 * behaviour. child is NULL when no child was being made; err is an errno. */
void actor_emit_spawn_failed(const struct actor_spec *child, const char *call, int err, const char *msg);
