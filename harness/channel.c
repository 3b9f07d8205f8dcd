#include "harness/channel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness/fdsink.h"
#include "util/fdutil.h"

void
channel_init(struct channel *c, int fd)
{
	*c = (struct channel){ .fd = fd };
}

void
channel_close(struct channel *c)
{
	if (c->fd >= 0)
		(void) close(c->fd);
	free(c->buf);
	*c = (struct channel){ .fd = -1 };
}

const char *
msg_type_name(enum msg_type t)
{
	switch (t) {
	case MSG_HELLO:
		return "hello";
	case MSG_CANCEL:
		return "cancel";
	case MSG_CANCEL_ACK:
		return "cancel_ack";
	case MSG_RESULT:
		return "result";
	}
	return "unknown";
}

int
channel_send(int fd, enum msg_type type, const char *payload)
{
	size_t plen = payload ? strlen(payload) : 0;
	if (plen + 1 > CHANNEL_MAX_FRAME)
		return -EMSGSIZE;
	size_t total = 5 + plen;
	char small[512];
	char *frame = total <= sizeof(small) ? small : malloc(total);
	if (!frame)
		return -ENOMEM;
	uint32_t len = (uint32_t) (plen + 1);
	memcpy(frame, &len, 4);
	frame[4] = (char) type;
	if (plen)
		memcpy(frame + 5, payload, plen);
	int r = 0;
	size_t off = 0;
	while (off < total) {
		ssize_t n = send(fd, frame + off, total - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t) n;
	}
	fdsink_channel_write(fd, frame, total, r < 0 ? r : (long) total);
	if (frame != small)
		free(frame);
	return r;
}

int
channel_fill(struct channel *c)
{
	if (c->fd < 0)
		return -EBADF;
	if (c->cap - c->len < 4096) {
		size_t cap = c->cap ? c->cap * 2 : 8192;
		char *b = realloc(c->buf, cap);
		if (!b)
			return -ENOMEM;
		c->buf = b;
		c->cap = cap;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* ECONNRESET: the peer died with unread data; that is EOF for us. */
			if (errno == ECONNRESET) {
				c->eof = true;
				return 0;
			}
			return -errno;
		}
		if (n == 0)
			c->eof = true;
		c->len += (size_t) n;
		return (int) n;
	}
}

int
channel_pop(struct channel *c, enum msg_type *ret_type, char **ret_payload)
{
	if (c->len < 5)
		return 0;
	uint32_t len;
	memcpy(&len, c->buf, 4);
	if (len == 0 || len > CHANNEL_MAX_FRAME)
		return -EBADMSG;
	if (c->len < 4 + (size_t) len)
		return 0;
	char *payload = malloc(len);
	if (!payload)
		return -ENOMEM;
	memcpy(payload, c->buf + 5, len - 1);
	payload[len - 1] = '\0';
	*ret_type = (enum msg_type) (unsigned char) c->buf[4];
	*ret_payload = payload;
	size_t consumed = 4 + (size_t) len;
	memmove(c->buf, c->buf + consumed, c->len - consumed);
	c->len -= consumed;
	return 1;
}
