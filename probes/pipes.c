#include "probes/pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int
pipe_fill_read(pid_t pid, int fd, struct pipe_fill *ret_fill)
{
	char path[64];
	struct stat before, after;
	int r, queued = 0, capacity;

	(void) snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, fd);
	/* Look before opening: the fd may have been reused for a tty or a
	 * device, where an open has side effects. */
	if (stat(path, &before) < 0)
		return -errno;
	if (!S_ISFIFO(before.st_mode))
		return -ENOTTY;
	/* Read end only: holding a write end would hide EOF from the readers. */
	int probe_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (probe_fd < 0)
		return -errno;
	r = fstat(probe_fd, &after) < 0 ? -errno : 0;
	if (r == 0 && (after.st_ino != before.st_ino || !S_ISFIFO(after.st_mode)))
		r = -ENOTTY;
	if (r == 0 && ioctl(probe_fd, FIONREAD, &queued) < 0)
		r = -errno;
	capacity = r < 0 ? -1 : fcntl(probe_fd, F_GETPIPE_SZ);
	if (r == 0 && capacity < 0)
		r = -errno;
	(void) close(probe_fd);
	if (r < 0)
		return r;
	*ret_fill = (struct pipe_fill){.queued = queued, .capacity = capacity, .ino = after.st_ino};
	return 0;
}
