#include "reports/verdict_class.h"

#include <string.h>

static const struct verdict_class_info classes[] = {
	{ "pipe-full", "writers blocked on a full pipe whose reader waits for them",
	  "give children their own stdio (fixes.stdio: devnull|file) or drain the pipe while waiting", true,
	  "drain the pipe while waiting for the child (communicate(), a reader thread, or poll on both), or send the child's output to a file or /dev/null" },
	{ "eof-never", "a reader waits for EOF that an inherited copy of the other end keeps away",
	  "close inherited fds in the child prelude (fixes.fd_scrub) or bound the wait (fixes.peer_wait_bound)", true,
	  "close the other end in every process that does not write to it: open pipes O_CLOEXEC / close_fds=True, do not leave background jobs holding the capture pipe (redirect their output), and bound the read with a timeout" },
	{ "mutual-wait", "each level waits for the level below, which waits for a cancel from above",
	  "send cancel to children before joining them (fixes.cancel_first); bound peer waits (fixes.peer_wait_bound)", true,
	  "tell the child to stop before waiting for it, and give every wait on a peer a timeout",
	  "processes wait on each other in a cycle: each waits for something only the next one can provide" },
	{ "uncancellable-wait",
	  "a blocking waitpid in a helper thread keeps a process from acting on its cancel request",
	  "wait for children through a pidfd in the event loop (fixes.wait: pidfd)", true,
	  "wait for children through a pidfd (or SIGCHLD) in the event loop instead of a blocking waitpid in a thread" },
	{ "lost-wakeup-futex",
	  "a thread waits on a lock nobody in its process can release (it came over locked across fork)",
	  "reinitialise or take locks around fork (fixes.atfork_locks, pthread_atfork)", true,
	  "do not fork while other threads may hold locks: use the spawn/forkserver start method or posix_spawn/exec, or take and reinitialise the locks around fork (pthread_atfork, os.register_at_fork)" },
	{ "lock-deadlock",
	  "threads of a process wait on locks that only another of its waiting threads could release",
	  "take locks in one order, or do not join a thread while holding a lock it needs", true,
	  "take locks in one order, or do not join a thread while holding a lock it needs" },
	{ "file-lock", "a process waits for a file lock held only by processes that are stuck themselves",
	  "take lock files in one order and never wait for a child while holding a lock it needs", true,
	  "take lock files in one order everywhere, release a lock before waiting for a process that needs it, and bound the wait (flock -w, LOCK_NB with retries, F_SETLK)" },
	{ "fifo-no-partner", "an open() of a FIFO waits for a partner that no process will bring",
	  "open FIFOs with O_NONBLOCK or from both sides before waiting", true,
	  "start the other side before opening the FIFO (or open it O_RDWR / O_NONBLOCK), and never wait for the process that would open it first" },
	{ "stopped", "a process is stopped (SIGSTOP, SIGTSTP, SIGTTIN/SIGTTOU or a tracer) and the others wait for it",
	  "send SIGCONT, and do not leave a background job reading the terminal", true,
	  "send SIGCONT (or detach the tracer); give background jobs stdin from /dev/null so they never stop on SIGTTIN, and wait with WUNTRACED to see stops" },
	{ "signal-blocked", "a signal meant to end the process is pending but blocked",
	  "reset the signal mask in the child prelude (fixes.reset_sigmask)", true,
	  "unblock signals in the child after fork (pthread_sigmask / signal.pthread_sigmask) before it runs anything that may hang" },
	{ "orphan", "a process outlived its parent and nothing will end it",
	  "end subtrees by process group (fixes.tree_kill) and give orphans a parent-death signal", true,
	  "end subtrees by process group (killpg) and give children a parent-death signal (prctl PR_SET_PDEATHSIG)" },
	{ "unreaped-zombie", "a child exited and its parent never reaped it",
	  "watch children through a pidfd and reap them (waitpid) as they exit", true,
	  "reap children with waitpid (Popen.wait / poll) as they exit, e.g. from a SIGCHLD handler or a pidfd" },
	{ "boot-death", "a child died before its handshake while its parent still waits for it",
	  "race the handshake against the child's death (fixes.boot_race)", true,
	  "wait for the child's handshake and its exit at the same time (poll on the socket and a pidfd), with a timeout" },
	{ "busy-loop", "a thread spins at full CPU without making progress",
	  "close inherited fds (fixes.fd_scrub) and stop reading on EOF (0-byte reads)", true,
	  "stop reading when read() returns 0 (EOF) and close inherited fds in children" },
	{ "wait-knot",
	  "threads wait on each other, or on something nothing in the tree will provide (no more specific cause found)",
	  "bound the waits of the chain with timeouts, and make sure whatever it waits for is provided", true,
	  "bound the waits of the chain with timeouts, and make sure whatever it waits for is provided" },
	{ "fd-alias", "a stale writer writes into an fd number that the child's scrub closed and a channel reused",
	  "retire descriptors by dup2-ing /dev/null over them (the numbers stay reserved) or close the objects that own "
	  "them; never a raw close under live owners (fixes.scrub_mode: devnull)",
	  true,
	  "retire descriptors by dup2-ing /dev/null over them (the numbers stay reserved) or close the objects that own "
	  "them first (logging.shutdown(), fclose); never a raw close under live owners" },
	{ "slow-teardown", "no hang, but the cancel cascade exceeded its budget",
	  "shorten cancel_ack/hard_kill or fix the actor that ignores cancellation", false,
	  "make the slow process act on its stop request sooner" },
	{ "escaped", "a process left the tree alive after the run",
	  "end subtrees by process group (fixes.tree_kill) and tear runs down SIGINT first", false,
	  "end subtrees by process group (killpg) and reap every child before exiting" },
	{ "slow-not-stuck", "not a hang: the program is slow but moving (bytes, CPU or syscalls progressed between two samples)",
	  "raise the timeout, or find the slow step in the stacks", false,
	  "raise the timeout, or find the slow step in the stacks" },
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

const char *
verdict_class_remedy(const struct verdict_class_info *info, bool scenario)
{
	if (!info)
		return NULL;
	return scenario || !info->remedy_program ? info->remedy : info->remedy_program;
}

const char *
verdict_class_title(const struct verdict_class_info *info, bool scenario)
{
	if (!info)
		return NULL;
	return scenario || !info->title_program ? info->title : info->title_program;
}
