#include "probes/sockdiag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/macro.h"

struct sockdiag_table *
sockdiag_table_new(void)
{
	return calloc(1, sizeof(struct sockdiag_table));
}

void
unix_sock_info_clear(struct unix_sock_info *u)
{
	if (!u)
		return;
	free(u->icons);
	free(u->name);
	u->icons = NULL;
	u->n_icons = 0;
	u->name = NULL;
}

int
unix_sock_info_copy(const struct unix_sock_info *src, struct unix_sock_info *ret)
{
	struct unix_sock_info u = *src;
	u.icons = NULL;
	u.name = NULL;
	if (src->n_icons) {
		u.icons = malloc(src->n_icons * sizeof(*u.icons));
		if (!u.icons)
			return -ENOMEM;
		memcpy(u.icons, src->icons, src->n_icons * sizeof(*u.icons));
	}
	if (src->name && !(u.name = strdup(src->name))) {
		free(u.icons);
		return -ENOMEM;
	}
	*ret = u;
	return 0;
}

void
sockdiag_table_free(struct sockdiag_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_unix; i++)
		unix_sock_info_clear(&t->unix_socks[i]);
	free(t->unix_socks);
	free(t->inet_socks);
	free(t->inet_error);
	free(t);
}

static int
cmp_unix(const void *a, const void *b)
{
	uint64_t x = ((const struct unix_sock_info *) a)->ino,
		 y = ((const struct unix_sock_info *) b)->ino;
	return (x > y) - (x < y);
}

static int
cmp_inet(const void *a, const void *b)
{
	uint64_t x = ((const struct inet_sock_info *) a)->ino,
		 y = ((const struct inet_sock_info *) b)->ino;
	return (x > y) - (x < y);
}

void
sockdiag_table_sort(struct sockdiag_table *t)
{
	if (t->n_unix > 1)
		qsort(t->unix_socks, t->n_unix, sizeof(*t->unix_socks), cmp_unix);
	if (t->n_inet > 1)
		qsort(t->inet_socks, t->n_inet, sizeof(*t->inet_socks), cmp_inet);
}

const struct unix_sock_info *
sockdiag_find_unix(const struct sockdiag_table *t, uint64_t ino)
{
	struct unix_sock_info key = {.ino = ino};
	if (!t || !t->n_unix)
		return NULL;
	return bsearch(&key, t->unix_socks, t->n_unix, sizeof(key), cmp_unix);
}

const struct inet_sock_info *
sockdiag_find_inet(const struct sockdiag_table *t, uint64_t ino)
{
	struct inet_sock_info key = {.ino = ino};
	if (!t || !t->n_inet || ino == 0)
		return NULL;
	return bsearch(&key, t->inet_socks, t->n_inet, sizeof(key), cmp_inet);
}

static const char *const state_names[] = {
    [1] = "established", [2] = "syn_sent",  [3] = "syn_recv", [4] = "fin_wait1",
    [5] = "fin_wait2",	 [6] = "time_wait", [7] = "close",    [8] = "close_wait",
    [9] = "last_ack",	 [10] = "listen",   [11] = "closing",
};

const char *
sock_state_name(int state)
{
	if (state > 0 && (size_t) state < ARRAY_SIZE(state_names))
		return state_names[state];
	return NULL;
}

int
sock_state_from_name(const char *name)
{
	for (size_t i = 1; i < ARRAY_SIZE(state_names); i++)
		if (strcmp(state_names[i], name) == 0)
			return (int) i;
	return -EINVAL;
}

const char *
sock_type_name(int type)
{
	switch (type) {
	case SOCK_STREAM:
		return "stream";
	case SOCK_DGRAM:
		return "dgram";
	case SOCK_SEQPACKET:
		return "seqpacket";
	case SOCK_RAW:
		return "raw";
	default:
		return NULL;
	}
}

int
sock_type_from_name(const char *name)
{
	static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_RAW};
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (strcmp(sock_type_name(types[i]), name) == 0)
			return types[i];
	return -EINVAL;
}

/* ---- reply parsing (pure) ---- */

/* Walk the attributes of one message; attrs must lie inside [p, end). */
struct attr {
	unsigned type;
	const unsigned char *data;
	size_t len;
};

static bool
next_attr(const unsigned char **p, const unsigned char *end, struct attr *ret)
{
	struct nlattr a;
	if ((size_t) (end - *p) < sizeof(a))
		return false;
	memcpy(&a, *p, sizeof(a));
	if (a.nla_len < sizeof(a) || a.nla_len > (size_t) (end - *p))
		return false;
	ret->type = a.nla_type & NLA_TYPE_MASK;
	ret->data = *p + NLA_HDRLEN;
	ret->len = a.nla_len - NLA_HDRLEN;
	size_t step = NLA_ALIGN(a.nla_len);
	*p = step > (size_t) (end - *p) ? end : *p + step;
	return true;
}

static int
append_unix(struct sockdiag_table *t, const struct unix_sock_info *u)
{
	if (t->n_unix == t->cap_unix) {
		size_t cap = t->cap_unix ? t->cap_unix * 2 : 64;
		struct unix_sock_info *grown = realloc(t->unix_socks, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		t->unix_socks = grown;
		t->cap_unix = cap;
	}
	t->unix_socks[t->n_unix++] = *u;
	return 0;
}

static int
parse_unix_msg(const unsigned char *payload, size_t len, struct sockdiag_table *t)
{
	struct unix_diag_msg m;
	struct unix_sock_info u = {.shutdown = -1};
	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, payload, sizeof(m));
	u.ino = m.udiag_ino;
	u.type = m.udiag_type;
	u.state = m.udiag_state;

	const unsigned char *p = payload + NLMSG_ALIGN(sizeof(m));
	const unsigned char *end = payload + len;
	if (p > end)
		p = end;
	struct attr a;
	while (next_attr(&p, end, &a)) {
		switch (a.type) {
		case UNIX_DIAG_NAME:
			if (!u.name && a.len > 0) {
				char *name = malloc(a.len + 1);
				if (!name)
					goto oom;
				/* Abstract names start with NUL; show NULs as '@' like ss. */
				for (size_t i = 0; i < a.len; i++)
					name[i] = a.data[i] ? (char) a.data[i] : '@';
				name[a.len] = '\0';
				/* a path is NUL-terminated inside sun_path: cut there */
				if (a.data[0] != 0) {
					size_t n = strnlen((const char *) a.data, a.len);
					name[n] = '\0';
				}
				u.name = name;
			}
			break;
		case UNIX_DIAG_VFS:
			if (a.len >= sizeof(struct unix_diag_vfs)) {
				struct unix_diag_vfs v;
				memcpy(&v, a.data, sizeof(v));
				u.has_vfs = true;
				u.vfs_ino = v.udiag_vfs_ino;
				u.vfs_dev = v.udiag_vfs_dev;
			}
			break;
		case UNIX_DIAG_PEER:
			if (a.len >= sizeof(uint32_t)) {
				uint32_t v;
				memcpy(&v, a.data, sizeof(v));
				u.peer_ino = v;
			}
			break;
		case UNIX_DIAG_ICONS:
			if (!u.icons && a.len >= sizeof(uint32_t)) {
				size_t n = a.len / sizeof(uint32_t);
				u.icons = malloc(n * sizeof(uint32_t));
				if (!u.icons)
					goto oom;
				memcpy(u.icons, a.data, n * sizeof(uint32_t));
				u.n_icons = n;
			}
			break;
		case UNIX_DIAG_RQLEN:
			if (a.len >= sizeof(struct unix_diag_rqlen)) {
				struct unix_diag_rqlen q;
				memcpy(&q, a.data, sizeof(q));
				u.has_rqlen = true;
				u.rqlen = q.udiag_rqueue;
				u.wqlen = q.udiag_wqueue;
			}
			break;
		case UNIX_DIAG_SHUTDOWN:
			if (a.len >= 1)
				u.shutdown = a.data[0];
			break;
		case UNIX_DIAG_UID:
			if (a.len >= sizeof(uint32_t)) {
				uint32_t v;
				memcpy(&v, a.data, sizeof(v));
				u.has_uid = true;
				u.uid = v;
			}
			break;
		default:
			break;
		}
	}
	if (append_unix(t, &u) < 0)
		goto oom;
	return 0;
oom:
	unix_sock_info_clear(&u);
	return -ENOMEM;
}

static void
format_endpoint(int family, const uint32_t addr[4], uint16_t port_be, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	(void) inet_ntop(family, addr, host, sizeof(host));
	if (family == AF_INET6)
		(void) snprintf(buf, size, "[%s]:%u", host, (unsigned) ntohs(port_be));
	else
		(void) snprintf(buf, size, "%s:%u", host, (unsigned) ntohs(port_be));
}

static int
parse_inet_msg(const unsigned char *payload, size_t len, int protocol, struct sockdiag_table *t)
{
	struct inet_diag_msg m;
	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, payload, sizeof(m));
	if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
		return -EBADMSG;
	struct inet_sock_info s = {
	    .ino = m.idiag_inode,
	    .family = m.idiag_family,
	    .protocol = protocol,
	    .state = m.idiag_state,
	    .rqueue = m.idiag_rqueue,
	    .wqueue = m.idiag_wqueue,
	    .uid = m.idiag_uid,
	};
	format_endpoint(m.idiag_family, m.id.idiag_src, m.id.idiag_sport, s.local, sizeof(s.local));
	format_endpoint(m.idiag_family, m.id.idiag_dst, m.id.idiag_dport, s.remote,
			sizeof(s.remote));
	const unsigned char *p = payload + NLMSG_ALIGN(sizeof(m));
	const unsigned char *end = payload + len;
	struct attr a;
	while (p < end && next_attr(&p, end, &a)) {
		/* older kernels send a shorter tcp_info: take what is there */
		if (a.type != INET_DIAG_INFO || protocol != IPPROTO_TCP ||
		    a.len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(uint64_t))
			continue;
		struct tcp_info ti = {0};
		memcpy(&ti, a.data, MIN(a.len, sizeof(ti)));
		s.has_tcp_info = true;
		s.bytes_acked = ti.tcpi_bytes_acked;
		s.bytes_received = ti.tcpi_bytes_received;
		s.last_data_sent_ms = ti.tcpi_last_data_sent;
		s.last_data_recv_ms = ti.tcpi_last_data_recv;
	}
	if (t->n_inet == t->cap_inet) {
		size_t cap = t->cap_inet ? t->cap_inet * 2 : 32;
		struct inet_sock_info *grown = realloc(t->inet_socks, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		t->inet_socks = grown;
		t->cap_inet = cap;
	}
	t->inet_socks[t->n_inet++] = s;
	return 0;
}

typedef int (*msg_fn)(const unsigned char *payload, size_t len, int protocol,
		      struct sockdiag_table *t);

static int
unix_msg(const unsigned char *payload, size_t len, int protocol, struct sockdiag_table *t)
{
	return parse_unix_msg(payload, len, t);
}

static int
parse_reply(const void *buf, size_t len, int protocol, struct sockdiag_table *t, msg_fn fn)
{
	const unsigned char *p = buf;
	const unsigned char *end = p + len;
	while ((size_t) (end - p) >= sizeof(struct nlmsghdr)) {
		struct nlmsghdr h;
		memcpy(&h, p, sizeof(h));
		if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > (size_t) (end - p))
			return -EBADMSG;
		const unsigned char *payload = p + NLMSG_HDRLEN;
		size_t plen = h.nlmsg_len - NLMSG_HDRLEN;
		if (h.nlmsg_type == NLMSG_DONE)
			return 1;
		if (h.nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr e;
			if (plen < sizeof(e.error))
				return -EBADMSG;
			memcpy(&e.error, payload, sizeof(e.error));
			return e.error < 0 ? e.error : -EPROTO;
		}
		if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
			int r = fn(payload, plen, protocol, t);
			if (r == -ENOMEM)
				return r;
			/* a short or foreign message is skipped, not fatal */
		}
		size_t step = NLMSG_ALIGN(h.nlmsg_len);
		if (step > (size_t) (end - p))
			break;
		p += step;
	}
	return 0;
}

int
sockdiag_parse_unix(const void *buf, size_t len, struct sockdiag_table *t)
{
	return parse_reply(buf, len, 0, t, unix_msg);
}

int
sockdiag_parse_inet(const void *buf, size_t len, int protocol, struct sockdiag_table *t)
{
	return parse_reply(buf, len, protocol, t, parse_inet_msg);
}

/* ---- the dump ---- */

static int
dump_request(const void *req, size_t req_len, int protocol, struct sockdiag_table *t, bool is_unix)
{
	_cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	struct {
		struct nlmsghdr h;
		unsigned char body[64];
	} msg = {0};
	if (req_len > sizeof(msg.body))
		return -EINVAL;
	msg.h.nlmsg_len = (uint32_t) NLMSG_LENGTH(req_len);
	msg.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.h.nlmsg_seq = 1;
	memcpy(msg.body, req, req_len);
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
	if (sendto(fd, &msg, msg.h.nlmsg_len, 0, (struct sockaddr *) &nl, sizeof(nl)) < 0)
		return -errno;

	size_t cap = 32768;
	_cleanup_free_ void *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = recv(fd, buf, cap, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPROTO;
		int r = is_unix ? sockdiag_parse_unix(buf, (size_t) n, t)
				: sockdiag_parse_inet(buf, (size_t) n, protocol, t);
		if (r < 0)
			return r;
		if (r == 1)
			return 0;
	}
}

int
sockdiag_dump(struct sockdiag_table **ret)
{
	struct sockdiag_table *t = sockdiag_table_new();
	if (!t)
		return -ENOMEM;
	struct unix_diag_req ureq = {
	    .sdiag_family = AF_UNIX,
	    .udiag_states = ~0u,
	    .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS |
			  UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID,
	};
	int r = dump_request(&ureq, sizeof(ureq), 0, t, true);
	if (r < 0) {
		sockdiag_table_free(t);
		return r;
	}
	static const struct {
		int family, protocol;
	} inet[] = {
	    {AF_INET, IPPROTO_TCP},
	    {AF_INET6, IPPROTO_TCP},
	    {AF_INET, IPPROTO_UDP},
	    {AF_INET6, IPPROTO_UDP},
	};
	for (size_t i = 0; i < ARRAY_SIZE(inet); i++) {
		struct inet_diag_req_v2 ireq = {
		    .sdiag_family = (uint8_t) inet[i].family,
		    .sdiag_protocol = (uint8_t) inet[i].protocol,
		    .idiag_states = ~0u,
		    .idiag_ext = inet[i].protocol == IPPROTO_TCP ? 1u << (INET_DIAG_INFO - 1) : 0,
		};
		r = dump_request(&ireq, sizeof(ireq), inet[i].protocol, t, false);
		/* inet is a bonus: a missing inet_diag module must not cost the unix facts */
		if (r < 0 && r != -ENOMEM && !t->inet_error) {
			char msg[128];
			(void) snprintf(msg, sizeof(msg), "inet_diag %s/%s: %s",
					inet[i].family == AF_INET ? "ipv4" : "ipv6",
					inet[i].protocol == IPPROTO_TCP ? "tcp" : "udp",
					strerror(-r));
			t->inet_error = strdup(msg);
		} else if (r == -ENOMEM) {
			sockdiag_table_free(t);
			return r;
		}
	}
	sockdiag_table_sort(t);
	*ret = t;
	return 0;
}
