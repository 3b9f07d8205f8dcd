#include "probes/selfdump.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "probes/eventlog.h"
#include "util/asfmt.h"
#include "util/fdutil.h"
#include "util/signames.h"

/* The value a coordinator puts in si_value when it re-signals one thread:
 * the high half marks it ours, the low half carries the dump number. */
#define SELFDUMP_MAGIC 0x5e1f0000u
#define SELFDUMP_MAGIC_MASK 0xffff0000u
/* Threads listed per dump; beyond it the list is marked truncated. */
#define SELFDUMP_MAX_THREADS 1024
/* A module chunk is emitted once its event grows past this. */
#define SELFDUMP_CHUNK_BYTES (40 * 1024)

#define XSTR(x) STR(x)
#define STR(x) #x

/* libunwind, resolved once at install time and read-only afterwards. */
static struct {
	int (*init_local)(unw_cursor_t *, unw_context_t *);
	int (*init_local2)(unw_cursor_t *, unw_context_t *, int);
	int (*step)(unw_cursor_t *);
	int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
	int (*getcontext)(unw_context_t *);
} unw;
static int installed_signal;
static atomic_uint dump_seq;

int
selfdump_signal_parse(const char *text)
{
	if (!text || !*text)
		return -EINVAL;
	const char *s = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
	int sig = -EINVAL;
	if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
		bool max = strncasecmp(s, "RTMAX", 5) == 0;
		long off = 0;
		const char *p = s + 5;
		if (*p == '+' || *p == '-') {
			char *end;
			off = strtol(p, &end, 10);
			if (*end || end == p + 1)
				return -EINVAL;
		} else if (*p)
			return -EINVAL;
		sig = (int) ((max ? SIGRTMAX : SIGRTMIN) + off);
		if (sig < SIGRTMIN || sig > SIGRTMAX)
			return -EINVAL;
	} else
		sig = signal_parse(text);
	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
		return -EINVAL;
	return sig;
}

int
selfdump_signal(void)
{
	return installed_signal;
}

/* ---- async-signal-safe helpers ---- */

static struct event *
event_map(void)
{
	/* mmap, not the stack: a thread stack may be small, and the handler may
	 * interrupt a frame that already holds an event. */
	void *p = mmap(NULL, sizeof(struct event), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void
event_unmap(struct event *e)
{
	if (e)
		(void) munmap(e, sizeof(*e));
}

static pid_t
gettid_raw(void)
{
	return (pid_t) syscall(SYS_gettid);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* The tids of this process (raw getdents64: opendir() mallocs). */
static size_t
list_tids(pid_t *tids, size_t max, bool *ret_truncated)
{
	*ret_truncated = false;
	int dfd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	size_t n = 0;
	char buf[2048] __attribute__((aligned(8)));
	for (;;) {
		long got = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (got <= 0)
			break;
		for (long off = 0; off < got;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *) (buf + off);
			uint64_t v;
			if (d->d_name[0] != '.' && as_parse_u64(d->d_name, &v)) {
				if (n < max)
					tids[n++] = (pid_t) v;
				else
					*ret_truncated = true;
			}
			off += d->d_reclen;
		}
	}
	(void) close(dfd);
	return n;
}

static void
task_path(char *path, size_t size, pid_t tid, const char *leaf)
{
	struct asbuf p = { .data = path, .len = 0, .cap = size, .overflow = false };
	asbuf_puts(&p, "/proc/self/task/");
	asbuf_u64(&p, (uint64_t) tid);
	asbuf_putc(&p, '/');
	asbuf_puts(&p, leaf);
}

/* Does thread tid block sig? From SigBlk in its status. */
static bool
thread_blocks(pid_t tid, int sig)
{
	char path[64], buf[2048];
	task_path(path, sizeof(path), tid, "status");
	if (read_file_into(path, buf, sizeof(buf)) <= 0)
		return false;
	const char *s = strstr(buf, "SigBlk:");
	if (!s)
		return false;
	s += 7;
	while (*s == ' ' || *s == '\t')
		s++;
	uint64_t mask = 0;
	if (!as_parse_hex(s, &mask))
		return false;
	return sig >= 1 && sig <= 64 && (mask >> (sig - 1)) & 1;
}

static void
put_thread_name(struct event *e, pid_t tid)
{
	char path[64], comm[64];
	task_path(path, sizeof(path), tid, "comm");
	ssize_t n = read_file_into(path, comm, sizeof(comm));
	if (n < 0)
		n = 0;
	while (n > 0 && (comm[n - 1] == '\n' || comm[n - 1] == '\0'))
		n--;
	event_strn(e, "thread", comm, (size_t) n);
}

/* ---- the module map ---- */

struct build_id_query {
	uint64_t addr;
	struct asbuf *out; /* hex digits go here */
	bool found;
};

static void
put_note_build_id(struct build_id_query *q, const unsigned char *p, size_t size, size_t align)
{
	while (size >= sizeof(ElfW(Nhdr))) {
		const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *) (const void *) p;
		size_t name_len = (nh->n_namesz + align - 1) & ~(align - 1);
		size_t desc_len = (nh->n_descsz + align - 1) & ~(align - 1);
		size_t total = sizeof(*nh) + name_len + desc_len;
		if (total > size)
			return;
		const unsigned char *name = p + sizeof(*nh);
		const unsigned char *desc = name + name_len;
		if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
		    nh->n_descsz <= 64) {
			static const char digits[] = "0123456789abcdef";
			for (size_t i = 0; i < nh->n_descsz; i++) {
				asbuf_putc(q->out, digits[desc[i] >> 4]);
				asbuf_putc(q->out, digits[desc[i] & 0xf]);
			}
			q->found = true;
			return;
		}
		p += total;
		size -= total;
	}
}

static int
build_id_callback(struct dl_phdr_info *info, size_t size, void *data)
{
	struct build_id_query *q = data;
	bool inside = false;
	for (int i = 0; i < info->dlpi_phnum && !inside; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && q->addr >= lo && q->addr < lo + ph->p_memsz)
			inside = true;
	}
	if (!inside)
		return 0;
	/* The object is loaded and the loader lock is held: its notes are mapped. */
	for (int i = 0; i < info->dlpi_phnum && !q->found; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		size_t align = ph->p_align == 8 ? 8 : 4;
		put_note_build_id(q, (const unsigned char *) (info->dlpi_addr + ph->p_vaddr), ph->p_filesz, align);
	}
	return 1;
}

/* One line of /proc/self/maps, if it is an executable file mapping. */
static bool
put_module(struct event *e, const char *line, size_t len, bool first)
{
	uint64_t start, end, offset;
	const char *p = line;
	size_t k = as_parse_hex(p, &start);
	if (!k || p[k] != '-')
		return false;
	p += k + 1;
	k = as_parse_hex(p, &end);
	if (!k || p[k] != ' ')
		return false;
	p += k + 1;
	if (len < (size_t) (p - line) + 5 || p[2] != 'x')
		return false;
	p += 5;
	k = as_parse_hex(p, &offset);
	if (!k)
		return false;
	const char *path = memchr(p, '/', len - (size_t) (p - line));
	if (!path)
		return false; /* anonymous, [vdso], [stack]: nothing to symbolize against */
	size_t path_len = len - (size_t) (path - line);

	if (!first)
		asbuf_putc(&e->b, ',');
	asbuf_puts(&e->b, "{\"start\":\"");
	asbuf_hex(&e->b, start);
	asbuf_puts(&e->b, "\",\"end\":\"");
	asbuf_hex(&e->b, end);
	asbuf_puts(&e->b, "\",\"offset\":\"");
	asbuf_hex(&e->b, offset);
	asbuf_puts(&e->b, "\",\"path\":");
	asbuf_json_strn(&e->b, path, path_len);
	asbuf_puts(&e->b, ",\"build_id\":");
	char hex[160];
	struct asbuf hb = ASBUF_INIT(hex);
	struct build_id_query q = { .addr = start, .out = &hb };
	(void) dl_iterate_phdr(build_id_callback, &q);
	if (q.found) {
		asbuf_putc(&e->b, '"');
		asbuf_puts(&e->b, hex);
		asbuf_putc(&e->b, '"');
	} else
		asbuf_puts(&e->b, "null");
	asbuf_putc(&e->b, '}');
	return true;
}

static void
modules_begin(struct event *e, unsigned dump, unsigned chunk)
{
	event_begin(e, "selfdump");
	event_str(e, "part", "modules");
	event_uint(e, "dump", dump);
	event_uint(e, "chunk", chunk);
}

/* The coordinator's record: which threads were asked (and which block the
 * signal, so their missing stacks are explained), then the module map in
 * chunks that each fit one event. */
static void
emit_modules(unsigned dump, int sig, const pid_t *tids, size_t n_tids, bool truncated, pid_t self)
{
	struct event *e = event_map();
	if (!e)
		return;
	unsigned chunk = 0;
	modules_begin(e, dump, chunk);
	event_int(e, "signal", sig);
	event_key(e, "threads");
	asbuf_putc(&e->b, '[');
	for (size_t i = 0; i < n_tids; i++) {
		if (i)
			asbuf_putc(&e->b, ',');
		asbuf_u64(&e->b, (uint64_t) tids[i]);
	}
	asbuf_putc(&e->b, ']');
	event_key(e, "blocked");
	asbuf_putc(&e->b, '[');
	size_t n_blocked = 0;
	for (size_t i = 0; i < n_tids; i++) {
		/* The coordinator blocks it only while in this handler. */
		if (tids[i] == self || !thread_blocks(tids[i], sig))
			continue;
		if (n_blocked++)
			asbuf_putc(&e->b, ',');
		asbuf_u64(&e->b, (uint64_t) tids[i]);
	}
	asbuf_putc(&e->b, ']');
	if (truncated)
		event_bool(e, "threads_truncated", true);
	event_key(e, "modules");
	asbuf_putc(&e->b, '[');
	bool first = true;

	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	char buf[8192];
	size_t len = 0;
	bool eof = fd < 0;
	while (!eof || len > 0) {
		if (!eof && len < sizeof(buf)) {
			ssize_t n = read(fd, buf + len, sizeof(buf) - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				eof = true;
			else
				len += (size_t) n;
		}
		char *nl = memchr(buf, '\n', len);
		if (!nl) {
			if (eof || len == sizeof(buf))
				len = 0; /* a last line without newline, or one too long: drop */
			continue;
		}
		if (put_module(e, buf, (size_t) (nl - buf), first))
			first = false;
		size_t used = (size_t) (nl + 1 - buf);
		memmove(buf, nl + 1, len - used);
		len -= used;
		if (e->b.len > SELFDUMP_CHUNK_BYTES) {
			asbuf_putc(&e->b, ']');
			event_bool(e, "last", false);
			(void) event_emit(e);
			modules_begin(e, dump, ++chunk);
			event_key(e, "modules");
			asbuf_putc(&e->b, '[');
			first = true;
		}
	}
	if (fd >= 0)
		(void) close(fd);
	asbuf_putc(&e->b, ']');
	event_bool(e, "last", true);
	(void) event_emit(e);
	event_unmap(e);
}

/* ---- one thread walks itself ---- */

static void
emit_stack(unsigned dump, void *ucontext)
{
	struct event *e = event_map();
	if (!e)
		return;
	event_begin(e, "selfdump");
	event_str(e, "part", "stack");
	event_uint(e, "dump", dump);
	put_thread_name(e, gettid_raw());
	const char *error = NULL;
	bool partial = false;
	size_t n = 0;
	event_key(e, "pcs");
	asbuf_putc(&e->b, '[');
	if (!unw.step || !unw.get_reg || (!unw.init_local2 && !unw.init_local)) {
		error = "libunwind not loaded";
	} else {
		unw_cursor_t cursor;
		unw_context_t local;
		int r = -1;
		/* Start at the interrupted instruction, not in this handler. */
		if (ucontext && unw.init_local2)
			r = unw.init_local2(&cursor, (unw_context_t *) ucontext, UNW_INIT_SIGNAL_FRAME);
		if (r < 0 && unw.getcontext && unw.init_local && unw.getcontext(&local) == 0)
			r = unw.init_local(&cursor, &local);
		if (r < 0)
			error = "unw_init_local failed";
		while (r >= 0 && !error) {
			unw_word_t ip = 0;
			if (unw.get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
				break;
			if (n)
				asbuf_putc(&e->b, ',');
			asbuf_putc(&e->b, '"');
			asbuf_hex(&e->b, (uint64_t) ip);
			asbuf_putc(&e->b, '"');
			if (++n >= SELFDUMP_MAX_FRAMES) {
				partial = true;
				error = "max frames reached";
				break;
			}
			r = unw.step(&cursor);
			if (r == 0)
				break;
			if (r < 0) {
				partial = true;
				error = "unw_step failed";
			}
		}
	}
	asbuf_putc(&e->b, ']');
	event_uint(e, "n_frames", n);
	if (partial)
		event_bool(e, "partial", true);
	if (error)
		event_str(e, "error", error);
	(void) event_emit(e);
	event_unmap(e);
}

static void
selfdump_handler(int sig, siginfo_t *si, void *ucontext)
{
	int saved_errno = errno;
	pid_t self = getpid();
	if (si && si->si_code == SI_QUEUE && si->si_pid == self &&
	    ((unsigned) si->si_value.sival_int & SELFDUMP_MAGIC_MASK) == SELFDUMP_MAGIC) {
		emit_stack((unsigned) si->si_value.sival_int & ~SELFDUMP_MAGIC_MASK, ucontext);
		errno = saved_errno;
		return;
	}
	/* A request from outside: this thread coordinates one dump. */
	unsigned dump = (atomic_fetch_add(&dump_seq, 1) + 1) & ~SELFDUMP_MAGIC_MASK;
	pid_t tids[SELFDUMP_MAX_THREADS];
	bool truncated;
	size_t n = list_tids(tids, SELFDUMP_MAX_THREADS, &truncated);
	pid_t me = gettid_raw();
	emit_modules(dump, sig, tids, n, truncated, me);
	for (size_t i = 0; i < n; i++) {
		if (tids[i] == me)
			continue;
		siginfo_t info;
		memset(&info, 0, sizeof(info));
		info.si_signo = sig;
		info.si_code = SI_QUEUE;
		info.si_pid = self;
		info.si_uid = getuid();
		info.si_value.sival_int = (int) (SELFDUMP_MAGIC | dump);
		/* A thread that exited meanwhile answers ESRCH: nothing to walk. */
		(void) syscall(SYS_rt_tgsigqueueinfo, self, tids[i], sig, &info);
	}
	emit_stack(dump, ucontext);
	errno = saved_errno;
}

static int
load_unwinder(void)
{
	if (unw.step)
		return 0;
	/* RTLD_LOCAL: libunwind's _Unwind_* and backtrace stay out of the
	 * global scope, so C++ exceptions keep going through libgcc_s. */
	void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		h = dlopen("libunwind.so", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return -ENOENT;
	unw.init_local = (int (*)(unw_cursor_t *, unw_context_t *)) dlsym(h, XSTR(unw_init_local));
	unw.init_local2 = (int (*)(unw_cursor_t *, unw_context_t *, int)) dlsym(h, XSTR(unw_init_local2));
	unw.get_reg = (int (*)(unw_cursor_t *, unw_regnum_t, unw_word_t *)) dlsym(h, XSTR(unw_get_reg));
	unw.getcontext = (int (*)(unw_context_t *)) dlsym(h, XSTR(unw_getcontext));
	unw.step = (int (*)(unw_cursor_t *)) dlsym(h, XSTR(unw_step));
	if (!unw.step || !unw.get_reg || (!unw.init_local2 && !unw.init_local)) {
		unw.step = NULL;
		return -ENOENT;
	}
	return 0;
}

int
selfdump_install(int sig)
{
	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
		return -EINVAL;
	int r = load_unwinder();
	struct sigaction sa = { .sa_sigaction = selfdump_handler, .sa_flags = SA_SIGINFO | SA_RESTART };
	(void) sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		return -errno;
	installed_signal = sig;
	return r;
}
