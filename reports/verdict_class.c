#include "reports/verdict_class.h"

#include <string.h>

static const struct verdict_class_info classes[] = {
	{ "pipe-full", "writers blocked on a full pipe whose reader waits for them",
	  "give children their own stdio (fixes.stdio: devnull|file) or drain the pipe while waiting",
	  true },
	{ "eof-never", "a reader waits for EOF that an inherited copy of the other end keeps away",
	  "close inherited fds in the child prelude (fixes.fd_scrub) or bound the wait (fixes.peer_wait_bound)",
	  true },
	{ "mutual-wait", "each level waits for the level below, which waits for a cancel from above",
	  "send cancel to children before joining them (fixes.cancel_first); bound peer waits (fixes.peer_wait_bound)",
	  true },
	{ "uncancellable-wait",
	  "a blocking waitpid in a helper thread keeps a process from acting on its cancel request",
	  "wait for children through a pidfd in the event loop (fixes.wait: pidfd)", true },
	{ "lost-wakeup-futex",
	  "a thread waits on a lock whose owner does not exist in its process (inherited across fork)",
	  "reinitialise or take locks around fork (fixes.atfork_locks, pthread_atfork)", true },
	{ "lock-deadlock",
	  "every thread of a process waits on a lock that only another of its waiting threads could release",
	  "take locks in one order, or do not join a thread while holding a lock it needs", true },
	{ "signal-blocked", "a signal meant to end the process is pending but blocked",
	  "reset the signal mask in the child prelude (fixes.reset_sigmask)", true },
	{ "orphan", "a process outlived its parent and nothing will end it",
	  "end subtrees by process group (fixes.tree_kill) and give orphans a parent-death signal", true },
	{ "unreaped-zombie", "a child exited and its parent never reaped it",
	  "watch children through a pidfd and reap them (waitpid) as they exit", true },
	{ "boot-death", "a child died before its handshake while its parent still waits for it",
	  "race the handshake against the child's death (fixes.boot_race)", true },
	{ "busy-loop", "a thread spins at full CPU without making progress",
	  "close inherited fds (fixes.fd_scrub) and stop reading on EOF (0-byte reads)", true },
	{ "fd-alias", "a stale writer writes into an fd number that the child's scrub closed and a channel reused",
	  "retire descriptors by dup2-ing /dev/null over them (the numbers stay reserved) or close the objects that own "
	  "them; never a raw close under live owners (fixes.scrub_mode: devnull)",
	  true },
	{ "slow-teardown", "no hang, but the cancel cascade exceeded its budget",
	  "shorten cancel_ack/hard_kill or fix the actor that ignores cancellation", false },
	{ "escaped", "a process left the tree alive after the run",
	  "end subtrees by process group (fixes.tree_kill) and tear runs down SIGINT first", false },
};

const struct verdict_class_info *
verdict_class_lookup(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcmp(classes[i].name, name) == 0)
			return &classes[i];
	return NULL;
}

const struct verdict_class_info *
verdict_class_all(size_t *ret_n)
{
	*ret_n = sizeof(classes) / sizeof(classes[0]);
	return classes;
}
