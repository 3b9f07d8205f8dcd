/* libFuzzer: the NETLINK_SOCK_DIAG reply parsers (probes/sockdiag.h) on
 * arbitrary bytes, as one recv() worth of a dump. They must never trust a
 * length: nlmsg_len, rta_len and attribute payloads all come from the input.
 * The first byte picks the parser (unix, inet TCP, inet UDP); the rest is
 * the reply, copied to a buffer of its exact size (ASan catches over-reads)
 * and aligned the way a recv() buffer is. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/sockdiag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned which = data[0] % 3;
	data++;
	size--;
	void *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct sockdiag_table *t = sockdiag_table_new();
	if (t) {
		/* A dump is several replies into one table: parse twice. */
		for (int round = 0; round < 2; round++) {
			if (which == 0)
				(void) sockdiag_parse_unix(buf, size, t);
			else
				(void) sockdiag_parse_inet(buf, size, which == 1 ? IPPROTO_TCP : IPPROTO_UDP, t);
		}
		sockdiag_table_sort(t);
		for (size_t i = 0; i < t->n_unix; i++) {
			const struct unix_sock_info *u = sockdiag_find_unix(t, t->unix_socks[i].ino);
			struct unix_sock_info copy;
			if (u && unix_sock_info_copy(u, &copy) == 0)
				unix_sock_info_clear(&copy);
			(void) sock_state_name(t->unix_socks[i].state);
			(void) sock_type_name(t->unix_socks[i].type);
			if (u && u->peer_ino)
				(void) sockdiag_find_unix(t, u->peer_ino);
		}
		for (size_t i = 0; i < t->n_inet; i++)
			(void) sockdiag_find_inet(t, t->inet_socks[i].ino);
		sockdiag_table_free(t);
	}
	free(buf);
	return 0;
}
