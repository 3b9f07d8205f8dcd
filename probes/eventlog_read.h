#pragma once
/* Reading events.ndjson back (the writer is probes/eventlog.c; the format is
 * docs/events.md). Events files are input like any other: they may be
 * damaged, huge, or not files at all (a FIFO or /dev/zero in their place).
 * The reader refuses what is not a regular file, streams line by line, and
 * stops after EVENTS_MAX_FILE_BYTES. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest line taken as an event. The probe writes at most 60 KiB a line
 * (docs/events.md); anything much longer is damage, not an event. */
#define EVENTS_MAX_LINE_BYTES (1024 * 1024)

/* The most a reader takes from one events file (the sum of its lines). An
 * 85-actor cell writes well under 1 MiB; a file past this is damage or a
 * device, and reading on would only exhaust memory. */
#define EVENTS_MAX_FILE_BYTES (256ULL * 1024 * 1024)

/* A line of an events file that is not an event: its 1-based number and why
 * ("invalid JSON: ... at column 12", "not a JSON object", "line of 10485760
 * bytes, longer than 1048576"). */
struct events_problem {
	size_t line;
	char reason[192];
};

/* Open an events file for reading (O_CLOEXEC, O_NONBLOCK so that a FIFO
 * cannot block the open). Returns the fd, or -errno: -EISDIR for a
 * directory, -ENODEV for a character or block device (/dev/zero), -EINVAL
 * for a FIFO, a socket or anything else that is not a regular file. */
int events_open(const char *path);

/* Why an events file was not read, for a message: "not a regular file (a
 * FIFO or socket)", "a device, not a file", "a directory", "larger than
 * 256 MiB (read up to there)", else strerror(-err). err is events_open's or
 * events_load_checked's -errno. */
const char *events_error_reason(int err);

/* Called for every line, empty ones included, with its 1-based number.
 * line is NULL for a line longer than EVENTS_MAX_LINE_BYTES (n is then its
 * length, which was skipped, never held in memory). terminated is false for
 * a last line without its newline. A negative return stops the read with
 * that value. Lines are not NUL-terminated. */
typedef int (*events_line_fn)(const char *line, size_t n, size_t lineno, bool terminated, void *userdata);

/* Stream the lines of fd from offset (pread: the file position is not
 * used). At most max_bytes are read; when the file holds more, returns
 * -EFBIG after the lines before the cap were delivered. with_tail: deliver
 * an unterminated last line (a whole file), or leave it for later (a file
 * still being written). *ret_consumed (may be NULL) gets the bytes through
 * the last line delivered, written also on failure. Returns 0 or -errno. */
int events_read_fd(int fd, uint64_t offset, uint64_t max_bytes, bool with_tail, events_line_fn fn,
		   void *userdata, uint64_t *ret_consumed);

/* events_open + events_read_fd over the whole file, EVENTS_MAX_FILE_BYTES. */
int events_read_lines(const char *path, events_line_fn fn, void *userdata);

/* Parse a buffer of events.ndjson (no NUL needed; NUL bytes inside a line
 * make it bad, never end the parse). Returns a new array of event objects.
 * The first max_problems bad lines are described in problems (may be NULL
 * with 0); the count of all of them in *ret_bad_lines (may be NULL). */
json_t *events_parse(const char *data, size_t len, struct events_problem *problems, size_t max_problems,
		     size_t *ret_bad_lines);

/* events_parse over a file, streamed. *ret_errno (may be NULL) gets 0 or the
 * -errno of opening or reading it (events_open's refusals, -EFBIG past
 * EVENTS_MAX_FILE_BYTES); the array then holds what was read before the
 * failure. Never returns NULL unless out of memory. */
json_t *events_load_checked(const char *path, struct events_problem *problems, size_t max_problems,
			    size_t *ret_bad_lines, int *ret_errno);

/* events_load_checked without the descriptions: bad lines skipped, their
 * count in *ret_bad_lines (may be NULL). */
json_t *events_load(const char *path, size_t *ret_bad_lines);

/* Whether pid is a member of the tree in these events (an actor's
 * child_start, the root's ready, the capture host's capture_start), for
 * telling actors from escaped helpers among leftovers. *ret_name (may be
 * NULL) gets the actor's name, borrowed from events. */
bool events_pid_is_actor(const json_t *events, pid_t pid, const char **ret_name);
