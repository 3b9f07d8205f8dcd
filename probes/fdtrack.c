#include "probes/fdtrack.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include "probes/census.h"
#include "probes/eventlog.h"
#include "util/asfmt.h"
#include "util/timeutil.h"

uint64_t fdt_inherited[FDT_WORDS];
uint64_t fdt_pending[FDT_WORDS];
uint64_t fdt_reused[FDT_WORDS];

/* What a closed inherited number was, for the fd_reuse that may follow. */
struct closed_rec {
	int fd; /* -1: free */
	uint64_t ts_ns;
	pid_t tid;
	const char *via;
	const char *kind;
	char target[200];
	uint64_t ino, dev;
};

struct reuse_rec {
	int fd;	      /* -1: free */
	uint32_t gen; /* how many times this number was reused */
	uintptr_t sites[FDT_SITES];
	uint32_t writes;
};

static struct closed_rec closed[FDT_CLOSED_SLOTS];
static struct reuse_rec reuses[FDT_REUSE_SLOTS];
static pid_t inherited_from;
static uintptr_t self_lo, self_hi;

static void
set_bit(uint64_t *map, int fd, bool on)
{
	if (fd < 0 || fd >= FDT_MAX)
		return;
	uint64_t m = 1ULL << (fd & 63);
	if (on)
		__atomic_fetch_or(&map[fd >> 6], m, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&map[fd >> 6], ~m, __ATOMIC_RELAXED);
}

static struct event *
event_map(void)
{
	void *p = mmap(NULL, sizeof(struct event), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void
event_unmap(struct event *e)
{
	if (e)
		(void) munmap(e, sizeof(*e));
}

/* ---- /proc/self/maps, without malloc ---- */

struct map_line {
	uintptr_t start, end;
	uint64_t offset;
	const char *path; /* "" for anonymous */
};

typedef bool (*map_fn)(const struct map_line *m, void *userdata); /* false: stop */

static bool
parse_map_line(char *line, struct map_line *m)
{
	uint64_t v;
	size_t n = as_parse_hex(line, &v);
	if (!n || line[n] != '-')
		return false;
	m->start = (uintptr_t) v;
	char *s = line + n + 1;
	n = as_parse_hex(s, &v);
	if (!n)
		return false;
	m->end = (uintptr_t) v;
	s += n;
	/* perms, offset, dev, inode, path */
	while (*s == ' ')
		s++;
	while (*s && *s != ' ')
		s++;
	while (*s == ' ')
		s++;
	n = as_parse_hex(s, &v);
	m->offset = n ? v : 0;
	for (int field = 0; field < 3 && *s; field++) {
		while (*s && *s != ' ')
			s++;
		while (*s == ' ')
			s++;
	}
	m->path = s;
	return true;
}

static int
for_each_map(map_fn fn, void *userdata)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[4096], line[512];
	size_t ll = 0;
	bool more = true;
	while (more) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && more; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			struct map_line m;
			if (parse_map_line(line, &m))
				more = fn(&m, userdata);
		}
	}
	(void) close(fd);
	return 0;
}

struct site_find {
	uintptr_t addr;
	bool found;
	struct map_line m;
	char path[256];
};

static bool
site_line(const struct map_line *m, void *userdata)
{
	struct site_find *f = userdata;
	if (f->addr < m->start || f->addr >= m->end)
		return true;
	f->found = true;
	f->m = *m;
	size_t n = strlen(m->path);
	if (n >= sizeof(f->path))
		n = sizeof(f->path) - 1;
	memcpy(f->path, m->path, n);
	f->path[n] = '\0';
	return false;
}

int
fdtrack_site(uintptr_t addr, char *module, size_t module_size, uint64_t *ret_offset, char *path, size_t path_size,
	     uintptr_t *ret_start, uintptr_t *ret_end)
{
	struct site_find f = { .addr = addr };
	int r = for_each_map(site_line, &f);
	if (r < 0)
		return r;
	if (!f.found)
		return -ENOENT;
	const char *base = strrchr(f.path, '/');
	base = base ? base + 1 : f.path[0] ? f.path : "[anon]";
	struct asbuf mb = { .data = module, .len = 0, .cap = module_size, .overflow = false };
	asbuf_puts(&mb, base);
	if (path) {
		struct asbuf pb = { .data = path, .len = 0, .cap = path_size, .overflow = false };
		asbuf_puts(&pb, f.path);
	}
	if (ret_offset)
		*ret_offset = (uint64_t) (addr - f.m.start) + f.m.offset;
	if (ret_start)
		*ret_start = f.m.start;
	if (ret_end)
		*ret_end = f.m.end;
	return 0;
}

struct self_range {
	const char *path;
	uintptr_t lo, hi;
};

static bool
self_line(const struct map_line *m, void *userdata)
{
	struct self_range *s = userdata;
	if (strcmp(m->path, s->path) != 0)
		return true;
	if (!s->lo || m->start < s->lo)
		s->lo = m->start;
	if (m->end > s->hi)
		s->hi = m->end;
	return true;
}

void
fdtrack_init(void)
{
	char module[64], path[256];
	uintptr_t start = 0, end = 0;
	if (fdtrack_site((uintptr_t) &fdtrack_init, module, sizeof(module), NULL, path, sizeof(path), &start, &end) < 0)
		return;
	struct self_range s = { .path = path };
	if (path[0] == '/' && for_each_map(self_line, &s) == 0 && s.lo) {
		self_lo = s.lo;
		self_hi = s.hi;
	} else {
		self_lo = start;
		self_hi = end;
	}
}

bool
fdtrack_from_probe(const void *caller)
{
	uintptr_t a = (uintptr_t) caller;
	return a >= self_lo && a < self_hi;
}

/* ---- after fork: what crossed it ---- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static void
reset_tables(void)
{
	memset(fdt_inherited, 0, sizeof(fdt_inherited));
	memset(fdt_pending, 0, sizeof(fdt_pending));
	memset(fdt_reused, 0, sizeof(fdt_reused));
	for (size_t i = 0; i < FDT_CLOSED_SLOTS; i++)
		closed[i].fd = -1;
	for (size_t i = 0; i < FDT_REUSE_SLOTS; i++)
		reuses[i].fd = -1;
	inherited_from = getppid();
}

void
fdtrack_watch_only(int fd)
{
	reset_tables();
	set_bit(fdt_inherited, fd, true);
}

void
fdtrack_after_fork(void)
{
	reset_tables();
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	int logfd = eventlog_fd();
	char buf[4096] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *) (buf + off);
			uint64_t fd;
			if (as_parse_u64(d->d_name, &fd) && (int) fd != dfd && (int) fd != logfd)
				set_bit(fdt_inherited, (int) fd, true);
			off += d->d_reclen;
		}
	}
	(void) close(dfd);
}

/* ---- what an fd is ---- */

static ssize_t
fd_target(int fd, char *target, size_t size)
{
	char path[40];
	struct asbuf p = ASBUF_INIT(path);
	asbuf_puts(&p, "/proc/self/fd/");
	asbuf_i64(&p, fd);
	ssize_t n = readlink(path, target, size - 1);
	if (n < 0)
		n = 0;
	target[n] = '\0';
	return n;
}

static void
put_sockaddr(struct event *e, const char *key, const struct sockaddr_storage *ss, socklen_t len)
{
	char buf[160];
	struct asbuf b = ASBUF_INIT(buf);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *) ss;
		const unsigned char *a = (const unsigned char *) &in->sin_addr;
		for (int i = 0; i < 4; i++) {
			if (i)
				asbuf_putc(&b, '.');
			asbuf_u64(&b, a[i]);
		}
		asbuf_putc(&b, ':');
		asbuf_u64(&b, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) ss;
		static const char hex[] = "0123456789abcdef";
		asbuf_putc(&b, '[');
		for (int i = 0; i < 16; i += 2) {
			if (i)
				asbuf_putc(&b, ':');
			unsigned v = (unsigned) in6->sin6_addr.s6_addr[i] << 8 | in6->sin6_addr.s6_addr[i + 1];
			bool started = false;
			for (int sh = 12; sh >= 0; sh -= 4) {
				unsigned d = (v >> sh) & 0xf;
				if (d || started || sh == 0) {
					asbuf_putc(&b, hex[d]);
					started = true;
				}
			}
		}
		asbuf_puts(&b, "]:");
		asbuf_u64(&b, ntohs(in6->sin6_port));
	} else if (ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *) ss;
		size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n == 0)
			return;
		if (un->sun_path[0] == '\0') {
			asbuf_putc(&b, '@');
			asbuf_putn(&b, un->sun_path + 1, n - 1);
		} else
			asbuf_putn(&b, un->sun_path, strnlen(un->sun_path, n));
	} else
		return;
	event_str(e, key, buf);
}

/* "now": what fd is after the reuse; sockets with both addresses, so a
 * reader can find the peer without sock_diag. */
static void
put_now(struct event *e, int fd)
{
	char target[200];
	fd_target(fd, target, sizeof(target));
	event_key(e, "now");
	asbuf_puts(&e->b, "{\"target\":");
	asbuf_json_str(&e->b, target);
	asbuf_puts(&e->b, ",\"kind\":");
	asbuf_json_str(&e->b, census_kind_of_target(target));
	struct stat st;
	if (fstat(fd, &st) == 0) {
		event_uint(e, "ino", (uint64_t) st.st_ino);
	}
	if (strncmp(target, "socket:", 7) == 0) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		if (getsockname(fd, (struct sockaddr *) &ss, &len) == 0)
			put_sockaddr(e, "local", &ss, len);
		len = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		if (getpeername(fd, (struct sockaddr *) &ss, &len) == 0)
			put_sockaddr(e, "peer", &ss, len);
	}
	asbuf_putc(&e->b, '}');
}

/* ---- close ---- */

void
fdtrack_close_prepare(int fd, struct fdt_closing *c)
{
	c->fd = fd;
	c->inherited = fdt_bit(fdt_inherited, fd);
	fd_target(fd, c->target, sizeof(c->target));
	c->kind = census_kind_of_target(c->target);
	struct stat st;
	if (fstat(fd, &st) == 0) {
		c->ino = (uint64_t) st.st_ino;
		c->dev = (uint64_t) st.st_dev;
	} else
		c->ino = c->dev = 0;
}

static struct closed_rec *
closed_find(int fd)
{
	for (size_t i = 0; i < FDT_CLOSED_SLOTS; i++)
		if (__atomic_load_n(&closed[i].fd, __ATOMIC_ACQUIRE) == fd)
			return &closed[i];
	return NULL;
}

static struct reuse_rec *
reuse_find(int fd)
{
	for (size_t i = 0; i < FDT_REUSE_SLOTS; i++)
		if (__atomic_load_n(&reuses[i].fd, __ATOMIC_ACQUIRE) == fd)
			return &reuses[i];
	return NULL;
}

void
fdtrack_close_done(const struct fdt_closing *c, const char *via)
{
	int fd = c->fd;
	if (fdt_bit(fdt_reused, fd)) {
		/* The alias ends; the number may be reused again, and the stale
		 * owner still holds it: watch the next reuse too, a few times
		 * (a loop that opens and closes files there would flood the log). */
		set_bit(fdt_reused, fd, false);
		struct reuse_rec *r = reuse_find(fd);
		if (r && r->gen < FDT_MAX_GENERATIONS)
			set_bit(fdt_pending, fd, true);
		return;
	}
	if (!c->inherited)
		return;
	set_bit(fdt_inherited, fd, false);
	set_bit(fdt_pending, fd, true);
	uint64_t now = now_ns();
	pid_t tid = (pid_t) syscall(SYS_gettid);
	for (size_t i = 0; i < FDT_CLOSED_SLOTS; i++) {
		int expect = -1;
		if (__atomic_compare_exchange_n(&closed[i].fd, &expect, -2, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			struct closed_rec *r = &closed[i];
			r->ts_ns = now;
			r->tid = tid;
			r->via = via;
			r->kind = c->kind;
			memcpy(r->target, c->target, sizeof(r->target));
			r->ino = c->ino;
			r->dev = c->dev;
			__atomic_store_n(&r->fd, fd, __ATOMIC_RELEASE);
			break;
		}
	}
	struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "fd_close");
	event_str(e, "via", via);
	event_int(e, "fd", fd);
	event_str(e, "kind", c->kind);
	event_str(e, "target", c->target);
	if (c->ino)
		event_uint(e, "ino", c->ino);
	event_int(e, "inherited_from", inherited_from);
	(void) event_emit(e);
	event_unmap(e);
}

/* ---- reuse ---- */

void
fdtrack_reused(int fd, const char *via, pid_t tid)
{
	set_bit(fdt_pending, fd, false);
	struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "fd_reuse");
	event_str(e, "via", via);
	event_int(e, "fd", fd);
	event_int(e, "reuse_tid", tid);
	struct closed_rec *c = closed_find(fd);
	if (c) {
		event_key(e, "was");
		asbuf_puts(&e->b, "{\"target\":");
		asbuf_json_str(&e->b, c->target);
		asbuf_puts(&e->b, ",\"kind\":");
		asbuf_json_str(&e->b, c->kind);
		if (c->ino) {
			event_uint(e, "ino", c->ino);
			event_uint(e, "dev", c->dev);
		}
		event_int(e, "inherited_from", inherited_from);
		event_uint(e, "closed_ns", c->ts_ns);
		event_int(e, "closed_tid", c->tid);
		event_str(e, "closed_via", c->via);
		asbuf_putc(&e->b, '}');
	}
	put_now(e, fd);
	char target[64];
	fd_target(fd, target, sizeof(target));
	if (strcmp(target, "/dev/null") == 0) {
		/* A retirement (the fix), not an alias: nothing to sniff. */
		event_bool(e, "retired", true);
	} else {
		struct reuse_rec *r = reuse_find(fd);
		for (size_t i = 0; !r && i < FDT_REUSE_SLOTS; i++) {
			int expect = -1;
			if (__atomic_compare_exchange_n(&reuses[i].fd, &expect, fd, false, __ATOMIC_ACQ_REL,
							__ATOMIC_RELAXED))
				r = &reuses[i];
		}
		if (r) {
			r->gen++;
			for (size_t k = 0; k < FDT_SITES; k++)
				__atomic_store_n(&r->sites[k], 0, __ATOMIC_RELAXED);
			__atomic_store_n(&r->writes, 0, __ATOMIC_RELAXED);
			event_uint(e, "generation", r->gen);
			set_bit(fdt_reused, fd, true);
		} else
			event_bool(e, "sniffed", false);
	}
	(void) event_emit(e);
	event_unmap(e);
}

/* ---- write samples ---- */

/* Claim a site slot for caller; false when already seen or no room. */
static bool
claim_site(struct reuse_rec *r, uintptr_t site, uint32_t *ret_index)
{
	for (uint32_t k = 0; k < FDT_SITES; k++) {
		uintptr_t cur = __atomic_load_n(&r->sites[k], __ATOMIC_ACQUIRE);
		if (cur == site)
			return false;
		if (cur == 0) {
			uintptr_t expect = 0;
			if (__atomic_compare_exchange_n(&r->sites[k], &expect, site, false, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				*ret_index = k;
				return true;
			}
			if (expect == site)
				return false;
		}
	}
	return false;
}

/* Bytes for people and for JSON: printable ASCII kept, backslash doubled,
 * the rest as the text \xNN (JSON readers refuse \u0000). */
static void
put_bytes(struct asbuf *b, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[FDT_SAMPLE_BYTES * 4 + 1];
	struct asbuf t = ASBUF_INIT(tmp);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '\\')
			asbuf_puts(&t, "\\\\");
		else if (c >= 0x20 && c < 0x7f)
			asbuf_putc(&t, (char) c);
		else {
			char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 0xf] };
			asbuf_putn(&t, esc, sizeof(esc));
		}
	}
	asbuf_json_str(b, tmp);
}

static void
put_hex(struct asbuf *b, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	asbuf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		asbuf_putc(b, hex[s[i] >> 4]);
		asbuf_putc(b, hex[s[i] & 0xf]);
	}
	asbuf_putc(b, '"');
}

static void
emit_sample(int fd, const char *via, uintptr_t site, uint32_t index, uint32_t nth_write, const unsigned char *head,
	    size_t head_len, size_t len, ssize_t ret)
{
	struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "fd_write_sample");
	event_str(e, "via", via);
	event_int(e, "fd", fd);
	char target[64];
	fd_target(fd, target, sizeof(target));
	event_str(e, "target", target);
	event_uint(e, "site_index", index);
	event_uint(e, "nth_write", nth_write);
	char module[128];
	uint64_t off = 0;
	event_key(e, "site");
	asbuf_puts(&e->b, "{\"addr\":\"");
	asbuf_hex(&e->b, site);
	asbuf_putc(&e->b, '"');
	if (fdtrack_site(site, module, sizeof(module), &off, NULL, 0, NULL, NULL) == 0) {
		event_str(e, "module", module);
		char o[24];
		struct asbuf ob = ASBUF_INIT(o);
		asbuf_hex(&ob, off);
		event_str(e, "offset", o);
	}
	asbuf_putc(&e->b, '}');
	event_uint(e, "len", len);
	event_int(e, "ret", ret);
	event_key(e, "bytes");
	put_bytes(&e->b, head, head_len);
	event_key(e, "hex");
	put_hex(&e->b, head, head_len);
	(void) event_emit(e);
	event_unmap(e);
}

void
fdtrack_write(int fd, const char *via, const void *caller, const void *buf, size_t len, ssize_t ret)
{
	struct reuse_rec *r = reuse_find(fd);
	if (!r)
		return;
	uint32_t nth = __atomic_add_fetch(&r->writes, 1, __ATOMIC_RELAXED);
	uint32_t index;
	if (!claim_site(r, (uintptr_t) caller, &index))
		return;
	size_t n = len < FDT_SAMPLE_BYTES ? len : FDT_SAMPLE_BYTES;
	emit_sample(fd, via, (uintptr_t) caller, index, nth, buf, buf ? n : 0, len, ret);
}

void
fdtrack_writev(int fd, const char *via, const void *caller, const struct iovec *iov, int iovcnt, ssize_t ret)
{
	struct reuse_rec *r = reuse_find(fd);
	if (!r)
		return;
	uint32_t nth = __atomic_add_fetch(&r->writes, 1, __ATOMIC_RELAXED);
	uint32_t index;
	if (!claim_site(r, (uintptr_t) caller, &index))
		return;
	unsigned char head[FDT_SAMPLE_BYTES];
	size_t n = 0, len = 0;
	for (int i = 0; iov && i < iovcnt; i++) {
		len += iov[i].iov_len;
		for (size_t k = 0; k < iov[i].iov_len && n < sizeof(head); k++)
			head[n++] = ((const unsigned char *) iov[i].iov_base)[k];
	}
	emit_sample(fd, via, (uintptr_t) caller, index, nth, head, n, len, ret);
}
