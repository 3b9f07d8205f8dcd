#pragma once
/* Socket facts through NETLINK_SOCK_DIAG: one dump per snapshot, looked up by
 * inode (the number in readlink "socket:[ino]").
 *
 * The reply parsers are pure functions over a byte buffer (fuzzed): they
 * append what they recognise to a table and never trust a length. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct unix_sock_info {
	uint64_t ino;
	int type;	   /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	int state;	   /* TCP_* numbering: 10 listen, 1 established, 7 close, 2 syn_sent */
	uint64_t peer_ino; /* 0: no peer */
	bool has_rqlen;
	uint32_t rqlen;	 /* listener: pending connections; else bytes queued for reading */
	uint32_t wqlen;	 /* listener: backlog limit; else bytes not yet read by the peer */
	uint32_t *icons; /* listener: inodes of connections waiting in accept() */
	size_t n_icons;
	char *name; /* "/path", "@abstract", or NULL (unnamed) */
	bool has_vfs;
	uint64_t vfs_ino; /* inode of the bound path */
	uint32_t vfs_dev;
	int shutdown; /* SHUT_* bits seen from this end (1 rd, 2 wr), -1 unknown */
	bool has_uid;
	uid_t uid;
};

struct inet_sock_info {
	uint64_t ino;
	int family;	/* AF_INET, AF_INET6 */
	int protocol;	/* IPPROTO_TCP, IPPROTO_UDP */
	int state;	/* TCP_* */
	char local[64]; /* "127.0.0.1:8080", "[::1]:8080" */
	char remote[64];
	uint32_t rqueue, wqueue;
	uid_t uid;
	/* TCP only (INET_DIAG_INFO): progress and who spoke last */
	bool has_tcp_info;
	uint64_t bytes_acked;	 /* sent and acknowledged by the peer */
	uint64_t bytes_received;
	uint32_t last_data_sent_ms; /* since the last data sent / received */
	uint32_t last_data_recv_ms;
};

struct sockdiag_table {
	struct unix_sock_info *unix_socks; /* sorted by ino after sockdiag_table_sort */
	size_t n_unix, cap_unix;
	struct inet_sock_info *inet_socks;
	size_t n_inet, cap_inet;
	char *inet_error; /* inet dumps are optional: why they failed, or NULL */
};

struct sockdiag_table *sockdiag_table_new(void);
void sockdiag_table_free(struct sockdiag_table *t);
void sockdiag_table_sort(struct sockdiag_table *t);

/* Parse one recv() worth of a dump reply. Returns 1 when NLMSG_DONE was seen,
 * 0 when more is to come, -errno for NLMSG_ERROR or malformed input, -ENOMEM. */
int sockdiag_parse_unix(const void *buf, size_t len, struct sockdiag_table *t);
int sockdiag_parse_inet(const void *buf, size_t len, int protocol, struct sockdiag_table *t);

/* Dump every AF_UNIX socket (name, vfs, peer, icons, rqlen, uid) and, if
 * possible, TCP/UDP over IPv4/IPv6, of the caller's network namespace. */
int sockdiag_dump(struct sockdiag_table **ret);

const struct unix_sock_info *sockdiag_find_unix(const struct sockdiag_table *t, uint64_t ino);
const struct inet_sock_info *sockdiag_find_inet(const struct sockdiag_table *t, uint64_t ino);

/* Deep copy (icons, name). */
int unix_sock_info_copy(const struct unix_sock_info *src, struct unix_sock_info *ret);
void unix_sock_info_clear(struct unix_sock_info *u);

const char *sock_state_name(int state); /* "listen", "established", ...; "state_N" never: NULL */
int sock_state_from_name(const char *name);
const char *sock_type_name(int type); /* "stream", "dgram", "seqpacket", NULL */
int sock_type_from_name(const char *name);
