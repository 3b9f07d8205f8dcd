#pragma once
/* In-process census of what a process holds: its fd table, its threads and its
 * signal state, written straight into an event as JSON. Async-signal-safe
 * (poll/fstat/fstatfs/readlink/read/fcntl/getsockopt/sigaction only), so the
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
 * leaving out the fds in skip[] (the probe's own log fd, kept fds). The fds
 * are found with poll() over [0, census_fd_bound()) (fcntl for what poll
 * calls closed: O_PATH fds) and described from
 * fstat; /proc/self/fd/N is read only for what fstat cannot name (files and
 * devices not seen before by this process or an ancestor, rare anon inodes).
 * Returns the number of fds listed, or -errno. */
int census_fds(struct event *e, const char *key, const int *skip, size_t n_skip);
/* Same over [0, bound): for a caller that knows no fd lies above. */
int census_fds_below(struct event *e, const char *key, const int *skip, size_t n_skip, int bound);

/* Below this soft RLIMIT_NOFILE the limit bounds the fd scan (no /proc);
 * above, FDSize of /proc/self/status does, else at most CENSUS_FD_SCAN_MAX. */
#define CENSUS_FD_SCAN 1024
#define CENSUS_FD_SCAN_MAX 65536
/* Every open fd is below this number. */
int census_fd_bound(void);

/* Threads and fd table size (FDSize) from one read of /proc/self/status;
 * a field it lacks is -1. Returns 0 or -errno. */
int census_self_status(int *ret_threads, int *ret_fd_table_size);

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
