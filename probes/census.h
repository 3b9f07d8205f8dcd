#pragma once
/* In-process census of what a process holds: its fd table, its threads and its
 * signal state, written straight into an event as JSON. Async-signal-safe
 * (open/getdents64/readlink/read/fcntl/getsockopt/sigaction only), so the
 * child side of a fork can describe itself before any user code runs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probes/eventlog.h"

/* Kinds as docs/events.md names them. */
enum fd_kind {
	FD_KIND_FILE,
	FD_KIND_PIPE,
	FD_KIND_SOCKET,
	FD_KIND_EPOLL,
	FD_KIND_EVENTFD,
	FD_KIND_SIGNALFD,
	FD_KIND_TIMERFD,
	FD_KIND_PIDFD,
	FD_KIND_INOTIFY,
	FD_KIND_TTY,
	FD_KIND_NULL,
	FD_KIND_OTHER,
};

const char *fd_kind_name(enum fd_kind k);
/* Classify a readlink(/proc/PID/fd/N) target. */
enum fd_kind fd_kind_from_target(const char *target);

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
