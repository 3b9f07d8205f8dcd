#include "probes/eventlog.h"
#include "util/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Process-global state, static storage only: no malloc after fork. */
static int log_fd = -1;
static char log_path[4096];
static dev_t log_dev;
static ino_t log_ino;
static char context[257];
static uint64_t fork_time_ns;

static int
remember_identity(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	log_dev = st.st_dev;
	log_ino = st.st_ino;
	return 0;
}

static int
open_high(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return -errno;
	/* A high number keeps it out of the way of programs that dup2 onto low fds. */
	int high = fcntl(fd, F_DUPFD_CLOEXEC, EVENTLOG_FD_MIN);
	if (high >= 0) {
		(void) close(fd);
		fd = high;
	}
	return fd;
}

int
eventlog_open(const char *path)
{
	size_t len = strlen(path);
	if (len >= sizeof(log_path))
		return -ENAMETOOLONG;
	int fd = open_high(path);
	if (fd < 0)
		return fd;
	int r = remember_identity(fd);
	if (r < 0) {
		(void) close(fd);
		return r;
	}
	if (log_fd >= 0 && log_fd != fd)
		(void) close(log_fd);
	memcpy(log_path, path, len + 1);
	log_fd = fd;
	return 0;
}

int
eventlog_adopt(int fd, const char *path)
{
	size_t len = path ? strlen(path) : 0;
	if (len >= sizeof(log_path))
		return -ENAMETOOLONG;
	int r = remember_identity(fd);
	if (r < 0)
		return r;
	if (path)
		memcpy(log_path, path, len + 1);
	log_fd = fd;
	return 0;
}

void
eventlog_close(void)
{
	if (log_fd >= 0)
		(void) close(log_fd);
	log_fd = -1;
	log_path[0] = '\0'; /* closed means off: no reopening by path */
}

bool
eventlog_enabled(void)
{
	return log_fd >= 0 || log_path[0];
}

int
eventlog_fd(void)
{
	return log_fd;
}

const char *
eventlog_path(void)
{
	return log_path[0] ? log_path : NULL;
}

void
eventlog_set_context(const char *json_fragment)
{
	size_t len = json_fragment ? strlen(json_fragment) : 0;
	if (len >= sizeof(context))
		len = sizeof(context) - 1;
	memcpy(context, json_fragment ? json_fragment : "", len);
	context[len] = '\0';
}

void
eventlog_note_fork_time(uint64_t ns)
{
	fork_time_ns = ns;
}

uint64_t
eventlog_fork_time(void)
{
	return fork_time_ns;
}

void
event_begin(struct event *e, const char *name)
{
	e->b = (struct asbuf) ASBUF_INIT(e->storage);
	asbuf_puts(&e->b, "{\"ts_ns\":");
	asbuf_u64(&e->b, now_ns());
	asbuf_puts(&e->b, ",\"pid\":");
	asbuf_i64(&e->b, getpid());
	asbuf_puts(&e->b, ",\"tid\":");
	asbuf_i64(&e->b, (int64_t) syscall(SYS_gettid));
	asbuf_puts(&e->b, ",\"ev\":");
	asbuf_json_str(&e->b, name);
	if (context[0]) {
		asbuf_putc(&e->b, ',');
		asbuf_puts(&e->b, context);
	}
}

void
event_key(struct event *e, const char *key)
{
	asbuf_json_key(&e->b, key);
}

void
event_str(struct event *e, const char *key, const char *value)
{
	asbuf_json_key(&e->b, key);
	if (value)
		asbuf_json_str(&e->b, value);
	else
		asbuf_puts(&e->b, "null");
}

void
event_strn(struct event *e, const char *key, const char *value, size_t n)
{
	asbuf_json_key(&e->b, key);
	asbuf_json_strn(&e->b, value, n);
}

void
event_int(struct event *e, const char *key, int64_t value)
{
	asbuf_json_key(&e->b, key);
	asbuf_i64(&e->b, value);
}

void
event_uint(struct event *e, const char *key, uint64_t value)
{
	asbuf_json_key(&e->b, key);
	asbuf_u64(&e->b, value);
}

void
event_bool(struct event *e, const char *key, bool value)
{
	asbuf_json_key(&e->b, key);
	asbuf_puts(&e->b, value ? "true" : "false");
}

void
event_raw(struct event *e, const char *key, const char *json)
{
	asbuf_json_key(&e->b, key);
	asbuf_puts(&e->b, json);
}

/* Is log_fd still our file? A program may have closed it and reused the number. */
static bool
log_fd_is_ours(void)
{
	struct stat st;
	if (log_fd < 0 || fstat(log_fd, &st) < 0)
		return false;
	return st.st_dev == log_dev && st.st_ino == log_ino;
}

static int
reopen_log(void)
{
	if (!log_path[0])
		return -EBADF;
	int fd = open_high(log_path);
	if (fd < 0)
		return fd;
	/* Do not close the old number: it belongs to the program now. */
	log_fd = fd;
	return remember_identity(fd);
}

int
event_emit(struct event *e)
{
	if (log_fd < 0 && !log_path[0])
		return 0;
	/* Leave room for the closing brace and newline. */
	if (e->b.len + 3 > e->b.cap || asbuf_overflowed(&e->b)) {
		/* Keep the head (ts, pid, tid, ev) and mark it truncated. */
		char *comma = NULL;
		const char *ev = strstr(e->b.data, ",\"ev\":\"");
		if (ev)
			comma = strchr(ev + 7, '"');
		size_t keep = comma ? (size_t) (comma - e->b.data) + 1 : 0;
		e->b.len = keep;
		e->b.overflow = false;
		e->b.data[keep] = '\0';
		asbuf_puts(&e->b, ",\"truncated\":true");
	}
	asbuf_puts(&e->b, "}\n");
	if (!log_fd_is_ours()) {
		int r = reopen_log();
		if (r < 0)
			return r;
	}
	for (;;) {
		ssize_t n = write(log_fd, e->b.data, e->b.len);
		if (n >= 0 && (size_t) n < e->b.len) {
			/* A short write: the filesystem filled up mid-line. Cut the
			 * torn head off again so the file stays whole lines, unless
			 * the file already grew past it (then a reader names the
			 * damaged line, docs/reliability.md). */
			off_t end = lseek(log_fd, 0, SEEK_CUR);
			struct stat st;
			if (n > 0 && end >= (off_t) n && fstat(log_fd, &st) == 0 && st.st_size == end)
				(void) ftruncate(log_fd, end - (off_t) n);
			return -ENOSPC;
		}
		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		return -errno;
	}
}
