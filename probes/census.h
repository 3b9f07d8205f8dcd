#pragma once
/* In-process census of what a process holds: its fd table, its threads and its
 * signal state, written straight into an event as JSON. Async-signal-safe
 * (open/getdents64/readlink/read/fcntl/getsockopt/sigaction only), so the
 * child side of a fork can describe itself before any user code runs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probes/eventlog.h"

/* The kind names of docs/events.md for a readlink(/proc/PID/fd/N) target:
 * file, pipe, socket, epoll, eventfd, signalfd, timerfd, pidfd, inotify, tty,
 * null or other. (probes/procfs.h has the richer classifier used by the
 * snapshot; this one is allocation-free for the fork child.) */
const char *census_kind_of_target(const char *target);

/* "fds":[{"fd":0,"kind":"tty","target":"/dev/pts/1","mode":"rw","cloexec":false},…]
 * leaving out the fds in skip[] (the probe's own log fd, kept fds) and the fd
 * used to list /proc/self/fd. Returns the number of fds listed, or -errno. */
int census_fds(struct event *e, const char *key, const int *skip, size_t n_skip);

/* The kinds of fds 0, 1, 2: "stdio":{"0":"tty","1":"pipe","2":"file (deleted)"} */
void census_stdio(struct event *e, const char *key);

/* "threads":[{"tid":…,"name":"…","state":"S"},…]; returns the count or -errno. */
int census_threads(struct event *e, const char *key);
int census_thread_count(void);

/* "sig_blocked":"SIGINT,…","sig_ignored":…,"sig_caught":… for the calling thread. */
void census_signals(struct event *e);
/* "key":"SIGINT,…" for a given set. */
#include <signal.h>
void census_signal_set(struct event *e, const char *key, const sigset_t *set);
