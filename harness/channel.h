#pragma once
/* Framed messages between an actor and its parent over a unix stream socket:
 * [u32 length][u8 type][payload], payload is JSON text (may be empty). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum msg_type {
	MSG_HELLO = 1,	  /* child -> parent: handshake {"actor_id":N,"name":…,"pid":…} */
	MSG_CANCEL = 2,	  /* parent -> child: cancel request */
	MSG_CANCEL_ACK = 3, /* child -> parent: cancelled (its subtree is torn down) */
	MSG_RESULT = 4,	  /* child -> parent: final result {"ok":true} or {"error":ERROR} */
};

#define CHANNEL_MAX_FRAME (1024 * 1024)

struct channel {
	int fd;
	char *buf;
	size_t len, cap;
	bool eof;
};

void channel_init(struct channel *c, int fd);
/* Close the fd (if open) and free the buffer. */
void channel_close(struct channel *c);
const char *msg_type_name(enum msg_type t);

/* Send one frame (blocking; messages are small). Returns 0 or -errno (EPIPE when
 * the peer is gone: never SIGPIPE). */
int channel_send(int fd, enum msg_type type, const char *payload);

/* Read what is available without blocking. Returns bytes read (> 0), 0 on EOF,
 * -EAGAIN when nothing is there, or another -errno. */
int channel_fill(struct channel *c);

/* Pop one complete frame: returns 1 and sets *ret_type and *ret_payload (malloc'ed,
 * NUL-terminated), 0 when no complete frame is buffered, -EBADMSG on garbage. */
int channel_pop(struct channel *c, enum msg_type *ret_type, char **ret_payload);
