#pragma once
/* How full a pipe is, read from outside the processes that hold it. */
#include <stdint.h>
#include <sys/types.h>

struct pipe_fill {
	int queued;   /* bytes waiting to be read (FIONREAD) */
	int capacity; /* F_GETPIPE_SZ */
	uint64_t ino; /* inode of the pipe that was measured */
};

/* Reopen /proc/PID/fd/N read-only and non-blocking, FIONREAD + F_GETPIPE_SZ,
 * close at once. Never opens a write end: holding one, even briefly, would
 * hide EOF from the readers. -ENOTTY if fd is not a pipe (fd reused in the
 * meantime, or a FIFO path check failed). */
int pipe_fill_read(pid_t pid, int fd, struct pipe_fill *ret_fill);
