#pragma once
/* A small epoll loop with timers: one per actor process and one in the runner.
 *
 * Waits always happen in epoll_wait (its timeout comes from the nearest timer,
 * -1 when there is none), so a triage of a hung actor reads an honest
 * "blocked forever" or "blocked for N ms" from /proc/TID/syscall. */
#include <stdbool.h>
#include <stdint.h>

struct loop;

typedef void (*loop_fd_fn)(struct loop *l, int fd, uint32_t events, void *userdata);
typedef void (*loop_timer_fn)(struct loop *l, void *userdata);

int loop_new(struct loop **ret);
void loop_free(struct loop *l);

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *userdata);
int loop_remove_fd(struct loop *l, int fd);
bool loop_has_fd(struct loop *l, int fd);

/* Returns a timer id (> 0); deadline is CLOCK_MONOTONIC ns. */
uint64_t loop_add_timer(struct loop *l, uint64_t deadline_ns, loop_timer_fn fn, void *userdata);
void loop_cancel_timer(struct loop *l, uint64_t id);

/* One epoll_wait and dispatch. Returns 0 or -errno (EINTR is swallowed). */
int loop_run_once(struct loop *l);
/* Run until loop_quit(). */
int loop_run(struct loop *l);
void loop_quit(struct loop *l);
bool loop_quitting(struct loop *l);

/* The write end of the loop's wakeup socketpair, for signal handlers. */
int loop_wake_fd(struct loop *l);
/* Called when the wakeup socket was drained (signal handlers wrote to it). */
void loop_set_wake_handler(struct loop *l, loop_timer_fn fn, void *userdata);
