#pragma once
/* Reading back what probes/selfdump.c recorded: the `selfdump` events of one
 * process, symbolized with stacks_symbolize() into struct thread_stack, the
 * same shape a ptrace capture gives. The way to a stack when ptrace is denied:
 *
 *	r = selfdump_request(events_path, pid, sig, 2 * NSEC_PER_SEC, cache, &threads, &n, &reason);
 *	...
 *	(void) selfdump_merge_into_snapshot(snapshot_json, pid, threads, n);
 *	thread_stacks_free(threads, n);
 */
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "probes/stacks.h"

/* The newest dump of pid found in events (a JSON array of event objects, as
 * events.ndjson parses), 0 if none. */
unsigned selfdump_latest(const json_t *events, pid_t pid);

/* Symbolize dump number `dump` of pid (0: the newest). One thread_stack per
 * thread the dump asked, leader first, then by tid; a thread that recorded
 * nothing (it blocks the signal, sleeps uninterruptibly, or exited) comes
 * back empty, partial, with the reason in error. Returns 0, -ENOENT when
 * events hold no such dump (*ret_reason says so), or -errno. */
int selfdump_read(const json_t *events, pid_t pid, unsigned dump, struct stack_cache *cache,
		  struct thread_stack **ret, size_t *ret_n, char **ret_reason);

/* Load the `selfdump` events of pid (0: every pid) from events.ndjson.
 * Malformed lines are skipped. Returns a new array (never NULL). */
json_t *selfdump_events_load(const char *events_path, pid_t pid);

/* Ask pid for a dump (kill(pid, sig)), wait until every thread it asked has
 * answered in events_path or timeout_ns passed (inotify on the file and a
 * pidfd, no sleep loop), then selfdump_read() it. -ESRCH: pid gone; -EPERM:
 * the signal was refused; -ETIMEDOUT: no dump started at all (no probe in
 * pid, or the signal is blocked everywhere). */
int selfdump_request(const char *events_path, pid_t pid, int sig, uint64_t timeout_ns, struct stack_cache *cache,
		     struct thread_stack **ret, size_t *ret_n, char **ret_reason);

/* One thread's stack as the snapshot writes it (docs/snapshot.md "stack"). */
json_t *selfdump_stack_to_json(const struct thread_stack *stack);

/* Put the stacks into the process pid of a snapshot document (its
 * "processes" array): every thread whose "stack" is null gets its self-dump
 * stack and "stack_source":"selfdump"; stacks of tids the snapshot does not
 * list go to "unmatched_stacks". The process gets "selfdump": {"threads": n}.
 * Returns the number of stacks placed, or -ENOENT when pid is not in it. */
int selfdump_merge_into_snapshot(json_t *snapshot, pid_t pid, const struct thread_stack *threads, size_t n);
