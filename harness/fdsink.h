#pragma once
/* The actor runtime's error log, "the sink" (catalogue class fd-alias): a
 * log_sink step opens it on /dev/null, as pytest's logging plugin opens a
 * FileHandler(os.devnull), at a chosen fd number. The fd lives in a global,
 * so every forked descendant inherits it with the warm image — and keeps
 * writing to that number after its fd_scrub closed it.
 *
 * The runtime watches that one number across each fork with probes/fdtrack:
 * the scrub's close of it (`fd_close`), the runtime's fd that reuses it
 * (`fd_reuse`), and the first write of each writer on it (`fd_write_sample`),
 * the same events the LD_PRELOAD probe writes for foreign programs. */
#include <stddef.h>

#include "harness/scenario.h"

/* Open /dev/null as the sink, at fd number want (>= 3) or, with 0, the lowest
 * free number. Returns the fd or -errno. */
int fdsink_open(int want);
int fdsink_fd(void);

/* "ERROR    <actor>: <message>\n" in one write(2) to the sink, if one is open. */
void fdsink_error(const char *actor, const char *message);
/* The runtime logs every child error it receives (error: the boxed error). */
struct json_t;
void fdsink_child_error(const char *actor, const char *child, const struct json_t *error);

/* Child side of a fork, before anything else (async-signal-safe): watch the
 * sink's number across this fork. */
void fdsink_after_fork(void);

/* fd_scrub in the child prelude (async-signal-safe): retire every fd but
 * keep[], by close() or by dup2(/dev/null) over it, recording the sink's. */
void fdsink_scrub(enum scrub_mode mode, const int *keep, size_t n_keep);

/* The runtime just created fd (via: "accept4", "socket", ...): is it the
 * sink's closed number coming back? */
void fdsink_created(int fd, const char *via);

/* A frame of len bytes was sent on fd by the channel code. */
void fdsink_channel_write(int fd, const void *buf, size_t len, long ret);
