#include "harness/fdsink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probes/eventlog.h"
#include "probes/fdtrack.h"
#include "util/asfmt.h"
#include "util/fdutil.h"

static int sink = -1;

int
fdsink_open(int want)
{
	int fd = open("/dev/null", O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (want >= 3 && fd != want) {
		/* Only onto a free number: the sink must not steal one in use. */
		if (fcntl(want, F_GETFD) >= 0) {
			(void) close(fd);
			return -EBUSY;
		}
		int r = dup3(fd, want, O_CLOEXEC);
		int e = errno;
		(void) close(fd);
		if (r < 0)
			return -e;
		fd = want;
	}
	if (sink >= 0 && sink != fd)
		(void) close(sink);
	sink = fd;
	return fd;
}

int
fdsink_fd(void)
{
	return sink;
}

void
fdsink_error(const char *actor, const char *message)
{
	if (sink < 0)
		return;
	char line[512];
	struct asbuf b = ASBUF_INIT(line);
	asbuf_puts(&b, "ERROR    ");
	asbuf_puts(&b, actor ? actor : "?");
	asbuf_puts(&b, ": ");
	asbuf_puts(&b, message ? message : "");
	asbuf_putc(&b, '\n');
	/* The stale writer: it still believes the number is its /dev/null. */
	ssize_t r = write(sink, line, b.len);
	if (fdt_bit(fdt_reused, sink))
		fdtrack_write(sink, "write", (const void *) fdsink_error, line, b.len, r);
}

void
fdsink_child_error(const char *actor, const char *child, const json_t *error)
{
	if (sink < 0)
		return;
	const char *what = json_string_value(json_object_get(error, "message"));
	char line[256];
	(void) snprintf(line, sizeof(line), "child %s failed: %s", child, what ? what : "?");
	fdsink_error(actor, line);
}

void
fdsink_after_fork(void)
{
	/* Only a number that crossed this fork open (a parent's scrub may have
	 * closed it already). */
	fdtrack_watch_only(sink >= 0 && fcntl(sink, F_GETFD) >= 0 ? sink : -1);
}

void
fdsink_scrub(enum scrub_mode mode, const int *keep, size_t n_keep)
{
	struct fdt_closing c;
	bool watched = sink >= 3 && fdt_bit(fdt_inherited, sink);
	for (size_t i = 0; watched && i < n_keep; i++)
		watched = keep[i] != sink;
	if (watched)
		fdtrack_close_prepare(sink, &c);
	if (mode == SCRUB_CLOSE) {
		(void) fd_close_all_except(keep, n_keep, NULL, 0, NULL);
		if (watched)
			fdtrack_close_done(&c, "close");
		return;
	}
	/* devnull: the numbers stay taken, stale owners write into /dev/null. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0) {
		(void) fd_close_all_except(keep, n_keep, NULL, 0, NULL);
		return;
	}
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		char buf[4096] __attribute__((aligned(8)));
		for (;;) {
			long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
			if (n <= 0)
				break;
			for (long off = 0; off < n;) {
				/* struct linux_dirent64: d_ino, d_off, d_reclen, d_type, d_name */
				unsigned short reclen;
				memcpy(&reclen, buf + off + 16, sizeof(reclen));
				uint64_t v;
				const char *name = buf + off + 19;
				off += reclen;
				if (!as_parse_u64(name, &v))
					continue;
				int fd = (int) v;
				bool keep_it = fd < 3 || fd == null || fd == dfd;
				for (size_t i = 0; i < n_keep && !keep_it; i++)
					keep_it = keep[i] == fd;
				if (!keep_it)
					(void) dup3(null, fd, O_CLOEXEC);
			}
		}
		(void) close(dfd);
	}
	(void) close(null);
	if (watched) {
		fdtrack_close_done(&c, "dup3");
		fdtrack_reused(sink, "dup3", (pid_t) syscall(SYS_gettid));
	}
}

void
fdsink_created(int fd, const char *via)
{
	if (fd >= 0 && fdt_bit(fdt_pending, fd))
		fdtrack_reused(fd, via, (pid_t) syscall(SYS_gettid));
}

void
fdsink_channel_write(int fd, const void *buf, size_t len, long ret)
{
	if (fdt_bit(fdt_reused, fd))
		fdtrack_write(fd, "send", (const void *) fdsink_channel_write, buf, len, ret);
}
