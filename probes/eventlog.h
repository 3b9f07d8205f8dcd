#pragma once
/* The probe event log: events.ndjson, one JSON object per line.
 *
 * Each event is formatted into a caller-provided buffer and appended with a
 * single write(2) on an O_APPEND fd, so lines from many processes interleave
 * whole and a SIGKILLed writer never leaves a torn line. Everything here is
 * async-signal-safe: it runs between fork() and user code and in signal
 * handlers. The log fd is kept high (>= EVENTLOG_FD_MIN) and is reopened from
 * its path when a program closed it (EBADF) or reused its number. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/asfmt.h"

/* High enough to stay out of the way of programs that dup2 onto low fds, low
 * enough to fit the kernel's initial fd table (64 slots): a log fd at 900
 * grew every actor's table to 1024 entries and cost each fork, exit and
 * close_range measurably (docs/performance.md). */
#define EVENTLOG_FD_MIN 63
#define EVENT_MAX_BYTES (60 * 1024)

/* Open (create) the log at path; remembers the path for reopening. Returns 0 or -errno. */
int eventlog_open(const char *path);
/* Adopt an inherited fd (exec'ed children get FORKSCOPE_EVENTS_FD and the path). */
int eventlog_adopt(int fd, const char *path);
void eventlog_close(void);
bool eventlog_enabled(void);
/* The log's fd, so censuses can leave it out; -1 when closed. */
int eventlog_fd(void);
const char *eventlog_path(void);

/* Fields added to every event of this process, e.g. "actor":"leaf-1","actor_id":3.
 * The text is a JSON fragment without braces (copied, max 256 bytes). */
void eventlog_set_context(const char *json_fragment);

/* Monotonic time of the last fork() seen by this process, for "ns since fork". */
void eventlog_note_fork_time(uint64_t ns);
uint64_t eventlog_fork_time(void);

struct event {
	struct asbuf b;
	char storage[EVENT_MAX_BYTES];
};

/* Start an event: {"ts_ns":…,"pid":…,"tid":…,"ev":"name"<context> */
void event_begin(struct event *e, const char *name);
void event_str(struct event *e, const char *key, const char *value);
void event_strn(struct event *e, const char *key, const char *value, size_t n);
void event_int(struct event *e, const char *key, int64_t value);
void event_uint(struct event *e, const char *key, uint64_t value);
void event_bool(struct event *e, const char *key, bool value);
/* value is already JSON (object/array text). */
void event_raw(struct event *e, const char *key, const char *json);
/* Open a nested array/object under key: event_key(e,"fds"); asbuf_putc(&e->b,'['); … */
void event_key(struct event *e, const char *key);
/* Close the object, append '\n', write. An event that overflowed is replaced by
 * a short one marked "truncated":true (never a broken line). Returns 0 or -errno. */
int event_emit(struct event *e);
