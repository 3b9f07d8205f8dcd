/* Native stacks of live processes through libdwfl, with ELF/DWARF state
 * shared across the processes of a forked tree.
 *
 * Shape of one capture:
 *   1. a short-lived worker thread freezes every thread of the target
 *      (PTRACE_SEIZE + PTRACE_INTERRUPT, rescanning /proc/PID/task until no
 *      new tid appears);
 *   2. /proc/PID/maps names a module layout; one Dwfl per distinct layout is
 *      kept in the cache and re-pointed at the current pid through our own
 *      Dwfl_Thread_Callbacks, so forked children (same files at the same
 *      addresses) reuse modules, CFI and symbol tables;
 *   3. raw pcs are unwound, the optional while_frozen callback runs, every
 *      thread is detached, and the pcs are symbolized through a cache keyed
 *      by (build-id, address in the ELF file).
 *
 * Why a worker thread: ptrace attachments belong to the thread that made
 * them, and when that thread exits the kernel detaches every tracee it still
 * holds, also one that never reached its stop (a thread sleeping
 * uninterruptibly, e.g. a vfork parent), which PTRACE_DETACH cannot release.
 * The thread's exit is the backstop behind the explicit detach. */
#include "probes/stacks.h"

#include <dirent.h>
#include <dlfcn.h>
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/fdutil.h"
#include "util/macro.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

#define DEFAULT_MAX_FRAMES 64
#define FREEZE_TIMEOUT_NS (2 * NSEC_PER_SEC)
#define FREEZE_GRACE_NS (50 * NSEC_PER_MSEC)
#define FREEZE_MAX_ROUNDS 64
#define LAYOUT_CACHE_MAX 16
#define OFFLINE_CACHE_MAX 64
#define SYMBOL_CACHE_MAX 65536
#define MAX_INLINE_DEPTH 16
#define MEM_PAGE_SIZE 4096
#define MEM_CACHE_PAGES 16

/* ---- symbol cache ---------------------------------------------------- */

struct sym_frame {
	char *function; /* demangled, NULL if unknown */
	uint64_t offset; /* of the looked-up address from the symbol start */
	char *file;
	int line;
	bool inlined;
};

/* Everything known about one address of one ELF file: the inline chain,
 * innermost first, the physical function last. */
struct sym_entry {
	struct sym_entry *next;
	const char *identity; /* interned: compared by pointer */
	uint64_t rel;	      /* looked-up address in the file's own vaddrs */
	bool lines;
	size_t n;
	struct sym_frame frames[];
};

struct identity {
	struct identity *next;
	char name[];
};

/* ---- live capture ---------------------------------------------------- */

enum thread_state {
	THREAD_SEIZED,	/* attached, stop not seen yet */
	THREAD_STOPPED, /* frozen: may be unwound */
	THREAD_GONE,	/* exited during the freeze: dropped from the result */
	THREAD_STUCK,	/* never stopped (uninterruptible sleep) */
	THREAD_FAILED,	/* could not be attached, or a zombie group leader */
};

struct raw_frame {
	uint64_t pc;
	bool activation;
};

struct frozen_thread {
	pid_t tid;
	enum thread_state state;
	bool attached;
	int resume_signal; /* consumed by a signal-delivery-stop, re-injected on detach */
	struct raw_frame *frames;
	size_t n_frames;
	bool partial;
	char *error;
};

struct mem_page {
	uint64_t addr;
	bool valid;
	unsigned char data[MEM_PAGE_SIZE];
};

/* The dwfl_arg of a layout's Dwfl: which process the Dwfl currently looks
 * at. Rewritten before every capture; this is the re-pointing. */
struct unwind_target {
	pid_t pid;
	struct frozen_thread *threads;
	size_t n_threads;
	size_t cursor;
	struct frozen_thread *current;
	unsigned max_frames;
	struct mem_page *pages;
};

struct layout;

struct module_origin {
	struct layout *layout;
	char *path; /* as in /proc/PID/maps, may end in " (deleted)" */
	const char *basename;
	uint64_t low, high;	    /* the whole module */
	uint64_t map_start, map_end; /* its first mapping, for /proc/PID/map_files */
	unsigned dev_major, dev_minor;
	uint64_t ino;
	bool is_vdso;
	const char *identity; /* interned, resolved on first use */
};

struct layout {
	char *key;
	size_t key_len;
	uint64_t hash;
	Dwfl *dwfl;
	struct module_origin *modules;
	size_t n_modules;
	void *vdso_image;
	uint64_t last_used;
	struct unwind_target target;
};

/* ---- offline symbolization ------------------------------------------- */

struct offline_file {
	struct offline_file *next;
	char *path;
	char *build_id; /* as recorded, NULL if none */
	Dwfl *dwfl;
	Dwfl_Module *mod;
	const char *identity;
	GElf_Phdr *loads;
	size_t n_loads;
	bool usable;
};

struct stack_cache {
	struct layout *layouts[LAYOUT_CACHE_MAX];
	size_t n_layouts;
	uint64_t tick;
	struct sym_entry **buckets;
	size_t n_buckets;
	size_t n_entries;
	struct identity *identities;
	struct offline_file *offline;
	size_t n_offline;
	struct mem_page pages[MEM_CACHE_PAGES];
	struct stack_cache_stats stats;
};

/* ---- small helpers --------------------------------------------------- */

static uint64_t
fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static char *
strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *
path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static char *
errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
errorf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static void
thread_set_error(struct frozen_thread *ft, char *error)
{
	ft->partial = true;
	if (ft->error) {
		free(error);
		return;
	}
	ft->error = error;
}

/* __cxa_demangle lives in libstdc++, which forkscope does not link: look it
 * up once at run time, only when a mangled name shows up. */
typedef char *(*cxa_demangle_fn)(const char *, char *, size_t *, int *);
static cxa_demangle_fn demangler;
static pthread_once_t demangler_once = PTHREAD_ONCE_INIT;

static void
demangler_load(void)
{
	void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
	if (lib)
		demangler = (cxa_demangle_fn) dlsym(lib, "__cxa_demangle");
}

static char *
demangle_dup(const char *name)
{
	if (!name)
		return NULL;
	if (name[0] == '_' && name[1] == 'Z') {
		(void) pthread_once(&demangler_once, demangler_load);
		if (demangler) {
			int status = -1;
			char *out = demangler(name, NULL, NULL, &status);
			if (out && status == 0)
				return out;
			free(out);
		}
	}
	return strdup(name);
}

/* State letter of /proc/PID/task/TID/stat (or /proc/PID/stat when tid is 0).
 * The comm field may contain ')' and spaces: parse after the last ')'. */
static int
proc_state(pid_t pid, pid_t tid, char *ret_state)
{
	char path[64], buf[1024];
	if (tid > 0)
		(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int) pid, (int) tid);
	else
		(void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	ssize_t n = read_file_into(path, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int) n;
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == '\0')
		return -EIO;
	*ret_state = p[2];
	return 0;
}

/* The value of "Key:" in /proc/PID/status, into buf. */
static int
proc_status_field(pid_t pid, const char *key, char *buf, size_t size)
{
	char path[64], data[4096];
	(void) snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	ssize_t n = read_file_into(path, data, sizeof(data));
	if (n < 0)
		return (int) n;
	size_t key_len = strlen(key);
	for (char *line = data; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
			const char *v = line + key_len + 1;
			v += strspn(v, " \t");
			(void) snprintf(buf, size, "%s", v);
			return 0;
		}
		line = end ? end + 1 : NULL;
	}
	return -ENOENT;
}

static int
list_tids(pid_t pid, pid_t **ret_tids, size_t *ret_n)
{
	char path[64];
	(void) snprintf(path, sizeof(path), "/proc/%d/task", (int) pid);
	DIR *dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? -ESRCH : -errno;
	pid_t *tids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(dir))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || tid <= 0)
			continue;
		if (n == cap) {
			size_t new_cap = cap ? cap * 2 : 16;
			pid_t *grown = realloc(tids, new_cap * sizeof(*tids));
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			tids = grown;
			cap = new_cap;
		}
		tids[n++] = (pid_t) tid;
	}
	(void) closedir(dir);
	if (r < 0) {
		free(tids);
		return r;
	}
	*ret_tids = tids;
	*ret_n = n;
	return 0;
}

/* ---- symbol cache ---------------------------------------------------- */

static const char *
identity_intern(struct stack_cache *cache, const char *name)
{
	for (struct identity *id = cache->identities; id; id = id->next)
		if (strcmp(id->name, name) == 0)
			return id->name;
	size_t len = strlen(name);
	struct identity *id = malloc(sizeof(*id) + len + 1);
	if (!id)
		return NULL;
	memcpy(id->name, name, len + 1);
	id->next = cache->identities;
	cache->identities = id;
	return id->name;
}

static char *
hex_string(const unsigned char *bits, size_t len)
{
	char *s = malloc(len * 2 + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < len; i++)
		(void) snprintf(s + 2 * i, 3, "%02x", bits[i]);
	s[len * 2] = '\0';
	return s;
}

static void
sym_entry_free(struct sym_entry *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->frames[i].function);
		free(e->frames[i].file);
	}
	free(e);
}

static void
symbols_flush(struct stack_cache *cache)
{
	for (size_t b = 0; b < cache->n_buckets; b++) {
		struct sym_entry *e = cache->buckets[b];
		while (e) {
			struct sym_entry *next = e->next;
			sym_entry_free(e);
			e = next;
		}
		cache->buckets[b] = NULL;
	}
	cache->n_entries = 0;
}

static size_t
sym_bucket(const struct stack_cache *cache, const char *identity, uint64_t rel, bool lines)
{
	uint64_t h = FNV_OFFSET;
	uintptr_t id = (uintptr_t) identity;
	h = fnv1a(h, &id, sizeof(id));
	h = fnv1a(h, &rel, sizeof(rel));
	h = fnv1a(h, &lines, sizeof(lines));
	return (size_t) (h & (cache->n_buckets - 1));
}

static const char *
die_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (!name)
		name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	if (!name)
		name = dwarf_diename(die);
	return name;
}

static bool
is_function_scope(int tag)
{
	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_entry_point;
}

static void
sym_frame_clear(struct sym_frame *f)
{
	free(f->function);
	free(f->file);
	*f = (struct sym_frame){ 0 };
}

/* The inline chain at addr (module address space) from DWARF, innermost
 * first, the way eu-stack -i walks it: the innermost frame takes the line
 * table's file:line, every outer one the call site of the scope inside it. */
static size_t
dwarf_inline_chain(Dwfl_Module *mod, Dwarf_Addr addr, struct sym_frame *out, size_t max)
{
	Dwarf_Addr dwbias = 0;
	Dwarf_Die *cudie = dwfl_module_addrdie(mod, addr, &dwbias);
	if (!cudie)
		return 0;

	Dwarf_Die *scopes = NULL;
	int n_scopes = dwarf_getscopes(cudie, addr - dwbias, &scopes);
	Dwarf_Die innermost = { 0 };
	bool found = false;
	for (int i = 0; i < n_scopes && !found; i++)
		if (is_function_scope(dwarf_tag(&scopes[i])) && die_name(&scopes[i])) {
			innermost = scopes[i];
			found = true;
		}
	free(scopes);
	if (!found)
		return 0;

	Dwarf_Die *chain = NULL;
	int n_chain = dwarf_getscopes_die(&innermost, &chain);
	if (n_chain <= 0)
		return 0;

	size_t n = 0;
	int line = 0;
	const char *file = NULL;
	Dwfl_Line *lineobj = dwfl_module_getsrc(mod, addr);
	if (lineobj)
		file = dwfl_lineinfo(lineobj, NULL, &line, NULL, NULL, NULL);
	out[n++] = (struct sym_frame){
		.function = demangle_dup(die_name(&chain[0])),
		.file = strdup_or_null(file),
		.line = file ? line : 0,
		.inlined = dwarf_tag(&chain[0]) == DW_TAG_inlined_subroutine,
	};

	Dwarf_Files *files = NULL;
	if (dwarf_getsrcfiles(cudie, &files, NULL) != 0)
		files = NULL;
	Dwarf_Die *inner = &chain[0];
	if (dwarf_tag(inner) == DW_TAG_inlined_subroutine) {
		for (int i = 1; i < n_chain && n < max; i++) {
			Dwarf_Die *scope = &chain[i];
			int tag = dwarf_tag(scope);
			if (!is_function_scope(tag))
				continue;
			Dwarf_Attribute attr;
			Dwarf_Word call_file = 0, call_line = 0;
			const char *site = NULL;
			if (files &&
			    dwarf_formudata(dwarf_attr(inner, DW_AT_call_file, &attr), &call_file) == 0)
				site = dwarf_filesrc(files, call_file, NULL, NULL);
			if (dwarf_formudata(dwarf_attr(inner, DW_AT_call_line, &attr), &call_line) != 0)
				call_line = 0;
			out[n++] = (struct sym_frame){
				.function = demangle_dup(die_name(scope)),
				.file = strdup_or_null(site),
				.line = site ? (int) call_line : 0,
				.inlined = tag == DW_TAG_inlined_subroutine,
			};
			if (tag == DW_TAG_subprogram)
				break;
			inner = scope;
		}
	}
	free(chain);
	return n;
}

static struct sym_entry *
sym_entry_compute(Dwfl_Module *mod, Dwarf_Addr addr, bool lines)
{
	struct sym_frame chain[MAX_INLINE_DEPTH] = { 0 };
	size_t n = 0;
	GElf_Off sym_offset = 0;
	GElf_Sym sym;
	const char *elf_name = NULL;

	if (mod) {
		elf_name = dwfl_module_addrinfo(mod, addr, &sym_offset, &sym, NULL, NULL, NULL);
		if (lines)
			n = dwarf_inline_chain(mod, addr, chain, MAX_INLINE_DEPTH);
	}
	if (n == 0) {
		int line = 0;
		const char *file = NULL;
		if (lines && mod) {
			Dwfl_Line *lineobj = dwfl_module_getsrc(mod, addr);
			if (lineobj)
				file = dwfl_lineinfo(lineobj, NULL, &line, NULL, NULL, NULL);
		}
		chain[n++] = (struct sym_frame){ .file = strdup_or_null(file),
						 .line = file ? line : 0 };
	}
	/* The physical frame: prefer the ELF symbol, which names C++ methods
	 * fully (a DWARF DIE name alone does not) and exists without debuginfo. */
	struct sym_frame *physical = &chain[n - 1];
	if (!physical->inlined) {
		if (elf_name) {
			/* "clock_nanosleep@GLIBC_2.2.5": the version is noise for
			 * readers and for rules matching frame names. */
			char plain[512];
			(void) snprintf(plain, sizeof(plain), "%.*s", (int) strcspn(elf_name, "@"),
					elf_name);
			free(physical->function);
			physical->function = demangle_dup(plain);
		}
		physical->offset = elf_name ? sym_offset : 0;
	}

	struct sym_entry *e = calloc(1, sizeof(*e) + n * sizeof(e->frames[0]));
	if (!e) {
		for (size_t i = 0; i < n; i++)
			sym_frame_clear(&chain[i]);
		return NULL;
	}
	e->n = n;
	memcpy(e->frames, chain, n * sizeof(chain[0]));
	return e;
}

/* Symbolization of addr (in mod's address space) whose address in the ELF
 * file itself is rel. Never NULL unless out of memory. */
static const struct sym_entry *
symbol_lookup(struct stack_cache *cache, const char *identity, uint64_t rel, bool lines,
	      Dwfl_Module *mod, Dwarf_Addr addr)
{
	size_t b = sym_bucket(cache, identity, rel, lines);
	for (struct sym_entry *e = cache->buckets[b]; e; e = e->next)
		if (e->identity == identity && e->rel == rel && e->lines == lines) {
			cache->stats.symbols_cached++;
			return e;
		}

	struct sym_entry *e = sym_entry_compute(mod, addr, lines);
	if (!e)
		return NULL;
	cache->stats.symbols_resolved++;
	if (cache->n_entries >= SYMBOL_CACHE_MAX) {
		/* Bounded memory for long watch sessions: start over. */
		symbols_flush(cache);
		b = sym_bucket(cache, identity, rel, lines);
	}
	e->identity = identity;
	e->rel = rel;
	e->lines = lines;
	e->next = cache->buckets[b];
	cache->buckets[b] = e;
	cache->n_entries++;
	return e;
}

static int
frame_from_sym(struct frame *out, uint64_t pc, const char *module, const struct sym_frame *sf,
	       uint64_t offset_shift)
{
	*out = (struct frame){
		.pc = pc,
		.offset = sf->inlined || !sf->function ? 0 : sf->offset + offset_shift,
		.line = sf->line,
		.inlined = sf->inlined,
	};
	out->module = strdup_or_null(module);
	out->function = strdup_or_null(sf->function);
	out->file = strdup_or_null(sf->file);
	if ((module && !out->module) || (sf->function && !out->function) ||
	    (sf->file && !out->file))
		return -ENOMEM;
	return 0;
}

/* ---- module layouts and their Dwfl sessions -------------------------- */

static void
layout_free(struct layout *l)
{
	if (!l)
		return;
	if (l->dwfl)
		dwfl_end(l->dwfl);
	/* After dwfl_end: the vDSO Elf was built over this buffer. */
	free(l->vdso_image);
	for (size_t i = 0; i < l->n_modules; i++)
		free(l->modules[i].path);
	free(l->modules);
	free(l->key);
	free(l);
}

/* Open the file behind a module: by path when it is still the mapped inode,
 * else through /proc/PID/map_files (deleted or replaced files, other mount
 * namespaces; needs CAP_SYS_ADMIN), else by path anyway. */
static int
module_open(const struct module_origin *o, pid_t pid, char **ret_name)
{
	_cleanup_close_ int by_path = -1;
	static const char deleted[] = " (deleted)";
	size_t len = strlen(o->path);
	bool is_deleted =
		len > sizeof(deleted) - 1 && strcmp(o->path + len - (sizeof(deleted) - 1), deleted) == 0;

	if (!is_deleted) {
		by_path = open(o->path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (by_path >= 0 && fstat(by_path, &st) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t) st.st_ino == o->ino) {
			*ret_name = strdup(o->path);
			return take_fd(&by_path);
		}
	}
	char map_path[128];
	(void) snprintf(map_path, sizeof(map_path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
			(int) pid, o->map_start, o->map_end);
	int fd = open(map_path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		*ret_name = strdup(o->path);
		return fd;
	}
	if (by_path >= 0) {
		*ret_name = strdup(o->path);
		return take_fd(&by_path);
	}
	return -1;
}

/* Dwfl_Callbacks.find_elf for live layouts. */
static int
layout_find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		char **file_name, Elf **elfp)
{
	struct module_origin *o = *userdata;
	if (!o)
		return -1;
	struct layout *l = o->layout;
	if (!o->is_vdso)
		return module_open(o, l->target.pid, file_name);

	/* The vDSO exists only in memory: copy it out of the process we are
	 * currently looking at (the kernel maps the same image into all). */
	if (l->vdso_image)
		return -1;
	size_t size = o->high - o->low;
	void *image = malloc(size);
	if (!image)
		return -1;
	struct iovec local = { image, size };
	struct iovec remote = { (void *) (uintptr_t) o->low, size };
	if (process_vm_readv(l->target.pid, &local, 1, &remote, 1, 0) != (ssize_t) size) {
		free(image);
		return -1;
	}
	Elf *elf = elf_memory(image, size);
	if (!elf) {
		free(image);
		return -1;
	}
	l->vdso_image = image;
	*elfp = elf;
	*file_name = NULL;
	return -1;
}

/* Local debuginfo only (/usr/lib/debug/.build-id): the standard callback may
 * ask debuginfod over the network, and the target may be frozen meanwhile. */
static int
local_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		     const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
		     char **debuginfo_file_name)
{
	int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name,
					      debuglink_file, debuglink_crc, debuginfo_file_name);
	/* libdwfl opens it without O_CLOEXEC and keeps it for the session:
	 * children forkscope spawns later must not inherit it. */
	if (fd >= 0)
		(void) fd_set_cloexec(fd, true);
	return fd;
}

static char *debuginfo_path;

static const Dwfl_Callbacks live_callbacks = {
	.find_elf = layout_find_elf,
	.find_debuginfo = local_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = local_find_debuginfo,
	.section_address = dwfl_offline_section_address,
	.debuginfo_path = &debuginfo_path,
};

/* ---- Dwfl_Thread_Callbacks over a frozen thread list ----------------- */

static pid_t
unwind_next_thread(Dwfl *dwfl, void *dwfl_arg, void **thread_argp)
{
	struct unwind_target *t = dwfl_arg;
	while (t->cursor < t->n_threads) {
		struct frozen_thread *ft = &t->threads[t->cursor++];
		if (ft->state == THREAD_STOPPED) {
			*thread_argp = ft;
			return ft->tid;
		}
	}
	return 0;
}

static bool
target_read_page(struct unwind_target *t, uint64_t page, struct mem_page *slot)
{
	struct iovec local = { slot->data, MEM_PAGE_SIZE };
	struct iovec remote = { (void *) (uintptr_t) page, MEM_PAGE_SIZE };
	if (process_vm_readv(t->pid, &local, 1, &remote, 1, 0) != MEM_PAGE_SIZE)
		return false;
	slot->addr = page;
	slot->valid = true;
	return true;
}

static bool
unwind_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *dwfl_arg)
{
	struct unwind_target *t = dwfl_arg;
	uint64_t page = addr & ~(uint64_t) (MEM_PAGE_SIZE - 1);

	/* Unwinding reads the same few stack pages word by word: one
	 * process_vm_readv per page instead of one syscall per word. */
	if (addr - page <= MEM_PAGE_SIZE - sizeof(*result)) {
		struct mem_page *slot = &t->pages[(page / MEM_PAGE_SIZE) % MEM_CACHE_PAGES];
		if ((slot->valid && slot->addr == page) || target_read_page(t, page, slot)) {
			memcpy(result, slot->data + (addr - page), sizeof(*result));
			return true;
		}
	} else {
		struct iovec local = { result, sizeof(*result) };
		struct iovec remote = { (void *) (uintptr_t) addr, sizeof(*result) };
		if (process_vm_readv(t->pid, &local, 1, &remote, 1, 0) == sizeof(*result))
			return true;
	}
	/* process_vm_readv may be filtered (seccomp) or absent; a stopped
	 * tracee can always be peeked, a word at a time. */
	pid_t tid = t->current ? t->current->tid : t->pid;
	errno = 0;
	long word = ptrace(PTRACE_PEEKDATA, tid, (void *) (uintptr_t) addr, NULL);
	if (errno != 0)
		return false;
	*result = (Dwarf_Word) word;
	return true;
}

static bool
unwind_set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	struct frozen_thread *ft = thread_arg;
#if defined(__x86_64__) || defined(__aarch64__)
	struct user_regs_struct regs;
	struct iovec iov = { &regs, sizeof(regs) };
	if (ptrace(PTRACE_GETREGSET, ft->tid, (void *) (uintptr_t) NT_PRSTATUS, &iov) < 0) {
		int e = errno;
		thread_set_error(ft, e == ESRCH ? strdup("thread exited during capture")
						: errorf("PTRACE_GETREGSET: %s", strerror(e)));
		return false;
	}
	if (iov.iov_len != sizeof(regs)) {
		/* A compat (32-bit) tracee gets the 32-bit register view. */
		thread_set_error(ft, strdup("32-bit process: register layout not supported"));
		return false;
	}
#endif
#if defined(__x86_64__)
	/* DWARF register numbers of the x86-64 psABI: rax rdx rcx rbx rsi rdi
	 * rbp rsp r8..r15, then 16, the return address column, holds rip. */
	const Dwarf_Word dwarf_regs[17] = {
		regs.rax, regs.rdx, regs.rcx, regs.rbx, regs.rsi, regs.rdi, regs.rbp, regs.rsp,
		regs.r8,  regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
		regs.rip,
	};
	return dwfl_thread_state_registers(thread, 0, ARRAY_SIZE(dwarf_regs), dwarf_regs);
#elif defined(__aarch64__)
	/* x0..x30 are DWARF 0..30, sp is 31; the pc has no DWARF number. */
	Dwarf_Word dwarf_regs[32];
	for (size_t i = 0; i < 31; i++)
		dwarf_regs[i] = regs.regs[i];
	dwarf_regs[31] = regs.sp;
	if (!dwfl_thread_state_registers(thread, 0, ARRAY_SIZE(dwarf_regs), dwarf_regs))
		return false;
	dwfl_thread_state_register_pc(thread, regs.pc);
	return true;
#else
	thread_set_error(ft, strdup("unwinding not implemented for this architecture"));
	return false;
#endif
}

static const Dwfl_Thread_Callbacks unwind_callbacks = {
	.next_thread = unwind_next_thread,
	.memory_read = unwind_memory_read,
	.set_initial_registers = unwind_set_initial_registers,
};

/* ---- /proc/PID/maps → module layout ---------------------------------- */

static int
module_push(struct module_origin **mods, size_t *n, size_t *cap, const struct module_origin *m)
{
	if (*n == *cap) {
		size_t new_cap = *cap ? *cap * 2 : 32;
		struct module_origin *grown = realloc(*mods, new_cap * sizeof(**mods));
		if (!grown)
			return -ENOMEM;
		*mods = grown;
		*cap = new_cap;
	}
	(*mods)[(*n)++] = *m;
	return 0;
}

/* Group the mappings of each file into one module spanning all of them, as
 * dwfl_linux_proc_report does, and keep the modules with executable code:
 * data files mapped by one child must not split the tree's layouts. */
static int
maps_parse(char *maps, struct module_origin **ret_mods, size_t *ret_n)
{
	struct module_origin *mods = NULL;
	size_t n = 0, cap = 0;
	struct module_origin cur = { 0 };
	bool have = false, cur_exec = false;
	int r = 0;

	for (char *line = maps; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		uint64_t start, stop, offset, ino;
		unsigned major_n, minor_n;
		char perms[8];
		int pos = -1;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &start,
			   &stop, perms, &offset, &major_n, &minor_n, &ino, &pos) < 7 ||
		    pos < 0) {
			line = end ? end + 1 : NULL;
			continue;
		}
		const char *path = line + pos;
		bool exec = perms[2] == 'x';
		bool is_vdso = strcmp(path, "[vdso]") == 0;
		bool is_file = path[0] == '/' && !(ino == 0 && major_n == 0 && minor_n == 0);

		if (is_file && have && ino == cur.ino && major_n == cur.dev_major &&
		    minor_n == cur.dev_minor && strcmp(path, cur.path) == 0) {
			cur.high = stop;
			cur_exec |= exec;
		} else if (is_file || is_vdso) {
			if (have) {
				if (cur_exec) {
					r = module_push(&mods, &n, &cap, &cur);
					if (r < 0)
						goto fail;
				} else {
					free(cur.path);
				}
				have = false;
			}
			cur = (struct module_origin){
				.path = strdup(path),
				.low = start,
				.high = stop,
				.map_start = start,
				.map_end = stop,
				.dev_major = major_n,
				.dev_minor = minor_n,
				.ino = ino,
				.is_vdso = is_vdso,
			};
			if (!cur.path) {
				r = -ENOMEM;
				goto fail;
			}
			have = true;
			cur_exec = exec || is_vdso;
		}
		/* Anonymous mappings (.bss, heap) do not end a file's module. */
		line = end ? end + 1 : NULL;
	}
	if (have) {
		if (cur_exec) {
			r = module_push(&mods, &n, &cap, &cur);
			if (r < 0)
				goto fail;
		} else {
			free(cur.path);
		}
		have = false;
	}
	*ret_mods = mods;
	*ret_n = n;
	return 0;
fail:
	if (have)
		free(cur.path);
	for (size_t i = 0; i < n; i++)
		free(mods[i].path);
	free(mods);
	return r;
}

static char *
layout_key(const struct module_origin *mods, size_t n, size_t *ret_len)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++)
		if (strbuf_printf(&sb, "%" PRIx64 "-%" PRIx64 " %x:%x %" PRIu64 " %s\n", mods[i].low,
				  mods[i].high, mods[i].dev_major, mods[i].dev_minor, mods[i].ino,
				  mods[i].path) < 0) {
			strbuf_free(&sb);
			return NULL;
		}
	if (sb.len == 0 && strbuf_append(&sb, "") < 0)
		return NULL;
	*ret_len = sb.len;
	return strbuf_steal(&sb);
}

static int
layout_build(pid_t pid, struct module_origin *mods, size_t n, char *key, size_t key_len,
	     uint64_t hash, struct layout **ret, char **ret_reason)
{
	struct layout *l = calloc(1, sizeof(*l));
	if (!l) {
		for (size_t i = 0; i < n; i++)
			free(mods[i].path);
		free(mods);
		free(key);
		return -ENOMEM;
	}
	l->key = key;
	l->key_len = key_len;
	l->hash = hash;
	l->modules = mods;
	l->n_modules = n;
	l->target.pid = pid;
	for (size_t i = 0; i < n; i++) {
		mods[i].layout = l;
		mods[i].basename = mods[i].is_vdso ? mods[i].path : path_basename(mods[i].path);
	}

	l->dwfl = dwfl_begin(&live_callbacks);
	if (!l->dwfl) {
		*ret_reason = errorf("dwfl_begin: %s", dwfl_errmsg(-1));
		layout_free(l);
		return -ENOMEM;
	}
	dwfl_report_begin(l->dwfl);
	for (size_t i = 0; i < n; i++) {
		Dwfl_Module *mod = dwfl_report_module(l->dwfl, mods[i].path, mods[i].low, mods[i].high);
		void **userdata = NULL;
		if (!mod || !dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL)) {
			*ret_reason = errorf("dwfl_report_module %s pid %d: %s", mods[i].path,
					     (int) pid, dwfl_errmsg(-1));
			layout_free(l);
			return -EIO;
		}
		*userdata = &mods[i];
	}
	if (dwfl_report_end(l->dwfl, NULL, NULL) != 0) {
		*ret_reason = errorf("dwfl_report_end pid %d: %s", (int) pid, dwfl_errmsg(-1));
		layout_free(l);
		return -EIO;
	}
	if (!dwfl_attach_state(l->dwfl, NULL, pid, &unwind_callbacks, &l->target)) {
		*ret_reason = errorf("dwfl_attach_state pid %d: %s", (int) pid, dwfl_errmsg(-1));
		layout_free(l);
		return -EIO;
	}
	*ret = l;
	return 0;
}

/* The Dwfl session for pid's current module layout: reused when another
 * process (typically a fork sibling) had exactly the same one. */
static int
layout_for(struct stack_cache *cache, pid_t pid, struct layout **ret, char **ret_reason)
{
	char path[64];
	_cleanup_free_ char *maps = NULL;
	size_t maps_len;
	(void) snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
	int r = read_file_alloc(path, &maps, &maps_len);
	if (r < 0) {
		*ret_reason = errorf("read %s: %s", path, strerror(-r));
		return r;
	}
	struct module_origin *mods = NULL;
	size_t n = 0;
	r = maps_parse(maps, &mods, &n);
	if (r < 0)
		return r;
	size_t key_len = 0;
	char *key = layout_key(mods, n, &key_len);
	if (!key) {
		for (size_t i = 0; i < n; i++)
			free(mods[i].path);
		free(mods);
		return -ENOMEM;
	}
	uint64_t hash = fnv1a(FNV_OFFSET, key, key_len);

	for (size_t i = 0; i < cache->n_layouts; i++) {
		struct layout *l = cache->layouts[i];
		if (l->hash == hash && l->key_len == key_len && memcmp(l->key, key, key_len) == 0) {
			for (size_t j = 0; j < n; j++)
				free(mods[j].path);
			free(mods);
			free(key);
			l->last_used = ++cache->tick;
			cache->stats.layouts_reused++;
			*ret = l;
			return 0;
		}
	}

	struct layout *l = NULL;
	r = layout_build(pid, mods, n, key, key_len, hash, &l, ret_reason);
	if (r < 0)
		return r;
	if (cache->n_layouts == LAYOUT_CACHE_MAX) {
		size_t oldest = 0;
		for (size_t i = 1; i < cache->n_layouts; i++)
			if (cache->layouts[i]->last_used < cache->layouts[oldest]->last_used)
				oldest = i;
		layout_free(cache->layouts[oldest]);
		cache->layouts[oldest] = cache->layouts[--cache->n_layouts];
	}
	l->last_used = ++cache->tick;
	cache->layouts[cache->n_layouts++] = l;
	cache->stats.layouts_created++;
	*ret = l;
	return 0;
}

/* "build-id:<hex>" when the ELF has one, else the file's identity from maps. */
static const char *
module_identity(struct stack_cache *cache, struct module_origin *o, Dwfl_Module *mod,
		Dwarf_Addr *ret_bias)
{
	Dwarf_Addr bias = 0;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	*ret_bias = elf ? bias : o->low;
	if (o->identity)
		return o->identity;

	const unsigned char *bits = NULL;
	GElf_Addr vaddr;
	int len = elf ? dwfl_module_build_id(mod, &bits, &vaddr) : 0;
	char *name;
	if (len > 0) {
		_cleanup_free_ char *hex = hex_string(bits, (size_t) len);
		name = hex ? errorf("build-id:%s", hex) : NULL;
	} else {
		name = errorf("file:%s:%u:%u:%" PRIu64, o->path, o->dev_major, o->dev_minor, o->ino);
	}
	if (!name)
		return NULL;
	o->identity = identity_intern(cache, name);
	free(name);
	return o->identity;
}

/* ---- freezing -------------------------------------------------------- */

struct freeze {
	pid_t pid;
	struct frozen_thread *threads;
	size_t n, cap;
};

static struct frozen_thread *
freeze_find(struct freeze *fz, pid_t tid)
{
	for (size_t i = 0; i < fz->n; i++)
		if (fz->threads[i].tid == tid)
			return &fz->threads[i];
	return NULL;
}

static struct frozen_thread *
freeze_add(struct freeze *fz, pid_t tid, enum thread_state state)
{
	if (fz->n == fz->cap) {
		size_t new_cap = fz->cap ? fz->cap * 2 : 16;
		struct frozen_thread *grown = realloc(fz->threads, new_cap * sizeof(*grown));
		if (!grown)
			return NULL;
		fz->threads = grown;
		fz->cap = new_cap;
	}
	struct frozen_thread *ft = &fz->threads[fz->n++];
	*ft = (struct frozen_thread){ .tid = tid, .state = state };
	return ft;
}

static void
freeze_free(struct freeze *fz)
{
	for (size_t i = 0; i < fz->n; i++) {
		free(fz->threads[i].frames);
		free(fz->threads[i].error);
	}
	free(fz->threads);
	fz->threads = NULL;
	fz->n = fz->cap = 0;
}

static bool
thread_is_gone(pid_t pid, pid_t tid)
{
	char state;
	int r = proc_state(pid, tid, &state);
	return r == -ESRCH || (r == 0 && (state == 'Z' || state == 'X'));
}

static bool
has_cap_sys_ptrace(void)
{
	char value[64];
	if (proc_status_field(getpid(), "CapEff", value, sizeof(value)) < 0)
		return geteuid() == 0;
	unsigned long long caps = strtoull(value, NULL, 16);
	return (caps >> 19) & 1; /* CAP_SYS_PTRACE */
}

/* "ptrace: Operation not permitted (hint; hint)": every cause we can see
 * from here, so the user knows what to change. */
static char *
eperm_reason(pid_t pid)
{
	struct strbuf hints = STRBUF_INIT;
	char value[256];
	bool privileged = has_cap_sys_ptrace();

	if (proc_status_field(pid, "TracerPid", value, sizeof(value)) == 0 && atoi(value) > 0) {
		char comm_path[64], comm[64] = "";
		(void) snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", atoi(value));
		if (read_file_into(comm_path, comm, sizeof(comm)) > 0)
			comm[strcspn(comm, "\n")] = '\0';
		(void) strbuf_printf(&hints, "%salready traced by pid %d (%s)", hints.len ? "; " : "",
				     atoi(value), comm);
	}

	unsigned ruid = 0, euid = 0, suid = 0;
	bool have_uids = proc_status_field(pid, "Uid", value, sizeof(value)) == 0 &&
			 sscanf(value, "%u %u %u", &ruid, &euid, &suid) == 3;
	if (!privileged) {
		uid_t me = getuid();
		if (have_uids && (ruid != me || euid != me || suid != me))
			(void) strbuf_printf(&hints,
					     "%starget uid %u (euid %u) differs from ours (uid %u) "
					     "and we lack CAP_SYS_PTRACE",
					     hints.len ? "; " : "", ruid, euid, (unsigned) me);
		unsigned rgid = 0, egid = 0, sgid = 0;
		gid_t my_gid = getgid();
		if (proc_status_field(pid, "Gid", value, sizeof(value)) == 0 &&
		    sscanf(value, "%u %u %u", &rgid, &egid, &sgid) == 3 &&
		    (rgid != my_gid || egid != my_gid || sgid != my_gid))
			(void) strbuf_printf(&hints, "%starget gid %u differs from ours (gid %u)",
					     hints.len ? "; " : "", rgid, (unsigned) my_gid);
		/* A non-dumpable process has its /proc/PID owned by root. */
		char proc_path[64];
		struct stat st;
		(void) snprintf(proc_path, sizeof(proc_path), "/proc/%d", (int) pid);
		if (have_uids && euid != 0 && stat(proc_path, &st) == 0 && st.st_uid == 0)
			(void) strbuf_printf(&hints,
					     "%starget is not dumpable (setuid/setgid, or "
					     "prctl(PR_SET_DUMPABLE, 0))",
					     hints.len ? "; " : "");
	}

	char scope[16];
	if (read_file_into("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof(scope)) > 0) {
		int level = atoi(scope);
		static const char *const yama[] = {
			NULL,
			"only ancestors of the target may attach without CAP_SYS_PTRACE",
			"only CAP_SYS_PTRACE may attach",
			"attaching is disabled",
		};
		if (level > 0 && level < (int) ARRAY_SIZE(yama) && !(level == 1 && privileged))
			(void) strbuf_printf(&hints, "%skernel.yama.ptrace_scope=%d: %s",
					     hints.len ? "; " : "", level, yama[level]);
	}
	if (hints.len == 0)
		(void) strbuf_append(&hints, privileged ? "denied although we have CAP_SYS_PTRACE: "
							  "a security module or seccomp?"
							: "we lack CAP_SYS_PTRACE");

	char *reason = errorf("ptrace: %s (%s)", strerror(EPERM), hints.data ? hints.data : "");
	strbuf_free(&hints);
	return reason;
}

static void
wait_for_stops(struct freeze *fz, uint64_t deadline)
{
	long delay_ns = 2000;
	for (unsigned spins = 0;; spins++) {
		size_t pending = 0;
		for (size_t i = 0; i < fz->n; i++) {
			struct frozen_thread *ft = &fz->threads[i];
			if (ft->state != THREAD_SEIZED)
				continue;
			siginfo_t si = { 0 };
			/* WSTOPPED without WEXITED: never reap. The target may be
			 * our own child, whose exit status belongs to its waiter. */
			int r = waitid(P_PID, (id_t) ft->tid, &si, WSTOPPED | WNOHANG | __WALL);
			if (r == 0 && si.si_pid == ft->tid) {
				ft->state = THREAD_STOPPED;
				/* No event in bits 8..15: a signal-delivery-stop took
				 * a signal from the thread; it is given back on detach. */
				if ((si.si_status >> 8) == 0)
					ft->resume_signal = si.si_status & 0xff;
				continue;
			}
			if ((r < 0 && errno == ECHILD) ||
			    (spins > 0 && thread_is_gone(fz->pid, ft->tid))) {
				ft->state = THREAD_GONE;
				continue;
			}
			pending++;
		}
		if (pending == 0)
			return;
		if (now_ns() >= deadline) {
			for (size_t i = 0; i < fz->n; i++) {
				struct frozen_thread *ft = &fz->threads[i];
				if (ft->state != THREAD_SEIZED)
					continue;
				char state = '?', wchan[64] = "?", path[96];
				(void) proc_state(fz->pid, ft->tid, &state);
				(void) snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan",
						(int) fz->pid, (int) ft->tid);
				(void) read_file_into(path, wchan, sizeof(wchan));
				ft->state = THREAD_STUCK;
				thread_set_error(ft, errorf("did not stop within %llus (state %c, "
							    "wchan %s)",
							    (unsigned long long) (FREEZE_TIMEOUT_NS /
										  NSEC_PER_SEC),
							    state, wchan[0] ? wchan : "-"));
			}
			return;
		}
		/* A ptrace stop raises no fd event and waitid has no timeout:
		 * poll with a short backoff. Stops normally arrive within
		 * microseconds of PTRACE_INTERRUPT. */
		struct timespec ts = { .tv_nsec = delay_ns };
		(void) nanosleep(&ts, NULL);
		delay_ns = MIN(delay_ns * 2, 1000000L);
	}
}

/* Seize and interrupt every thread, rescanning the task list until a scan
 * finds no new tid (threads created meanwhile). Returns 0 with at least one
 * thread stopped, or -errno with *ret_reason. */
static int
freeze_process(struct freeze *fz, char **ret_reason)
{
	uint64_t deadline = now_ns() + FREEZE_TIMEOUT_NS;
	size_t seized = 0;

	for (unsigned round = 0; round < FREEZE_MAX_ROUNDS; round++) {
		_cleanup_free_ pid_t *tids = NULL;
		size_t n_tids = 0, added = 0;
		int r = list_tids(fz->pid, &tids, &n_tids);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			break;
		for (size_t i = 0; i < n_tids; i++) {
			pid_t tid = tids[i];
			if (freeze_find(fz, tid))
				continue;
			char state;
			if (proc_state(fz->pid, tid, &state) < 0)
				continue;
			struct frozen_thread *ft;
			if (state == 'Z' || state == 'X') {
				/* A zombie never stops: attaching would hang the wait.
				 * The group leader lingers as one after pthread_exit. */
				ft = freeze_add(fz, tid, tid == fz->pid ? THREAD_FAILED : THREAD_GONE);
				if (!ft)
					return -ENOMEM;
				if (tid == fz->pid)
					thread_set_error(ft, strdup("thread exited (zombie group "
								    "leader)"));
				continue;
			}
			if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
				int e = errno;
				/* The kernel answers EPERM, not ESRCH, for a thread
				 * that became a zombie since we read its state. */
				if (e == EPERM && thread_is_gone(fz->pid, tid))
					e = ESRCH;
				if ((e == EPERM || e == EACCES) && seized == 0) {
					*ret_reason = eperm_reason(fz->pid);
					return -EPERM;
				}
				ft = freeze_add(fz, tid, e == ESRCH ? THREAD_GONE : THREAD_FAILED);
				if (!ft)
					return -ENOMEM;
				if (e != ESRCH)
					thread_set_error(ft, errorf("PTRACE_SEIZE: %s", strerror(e)));
				continue;
			}
			seized++;
			ft = freeze_add(fz, tid, THREAD_SEIZED);
			if (!ft) {
				/* Not tracked, so detach now: it has not stopped yet,
				 * so this may fail, and the worker's exit then does it. */
				(void) ptrace(PTRACE_DETACH, tid, NULL, NULL);
				return -ENOMEM;
			}
			ft->attached = true;
			/* ESRCH here means it is exiting; the wait notices. */
			(void) ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
			added++;
		}
		if (added == 0)
			break;
		/* Past the deadline (a stuck thread used it up), threads found
		 * by a later scan still get a short grace to reach their stop. */
		wait_for_stops(fz, MAX(deadline, now_ns() + FREEZE_GRACE_NS));
	}

	size_t stopped = 0, stuck = 0;
	for (size_t i = 0; i < fz->n; i++) {
		stopped += fz->threads[i].state == THREAD_STOPPED;
		stuck += fz->threads[i].state == THREAD_STUCK;
	}
	if (stopped > 0)
		return 0;

	char state;
	int r = proc_state(fz->pid, 0, &state);
	if (r == -ESRCH)
		*ret_reason = strdup(seized ? "process exited during capture" : "no such process");
	else if (r == 0 && (state == 'Z' || state == 'X'))
		*ret_reason = strdup(seized ? "process exited during capture"
					    : "process is a zombie (exited, not yet reaped by "
					      "its parent)");
	else if (stuck > 0)
		*ret_reason = errorf("no thread stopped within %llus (uninterruptible sleep?)",
				     (unsigned long long) (FREEZE_TIMEOUT_NS / NSEC_PER_SEC));
	else
		*ret_reason = strdup("no thread left to freeze");
	return stuck > 0 && r == 0 && state != 'Z' ? -ETIMEDOUT : -ESRCH;
}

static void
thaw_process(struct freeze *fz)
{
	for (size_t i = 0; i < fz->n; i++) {
		struct frozen_thread *ft = &fz->threads[i];
		if (!ft->attached || ft->state != THREAD_STOPPED)
			continue;
		/* ESRCH: killed meanwhile (no longer in its stop). It stays
		 * linked to this thread until it is reaped or we exit, so it
		 * still counts as attached: the caller then waits for our exit,
		 * or the next capture would find it traced (EPERM). */
		if (ptrace(PTRACE_DETACH, ft->tid, NULL, (void *) (uintptr_t) ft->resume_signal) == 0)
			ft->attached = false;
	}
}

/* ---- unwinding ------------------------------------------------------- */

struct unwind_walk {
	struct unwind_target *target;
	struct frozen_thread *ft;
};

static int
unwind_frame_cb(Dwfl_Frame *state, void *arg)
{
	struct unwind_walk *walk = arg;
	struct frozen_thread *ft = walk->ft;
	Dwarf_Addr pc;
	bool activation = false;
	if (!dwfl_frame_pc(state, &pc, &activation)) {
		thread_set_error(ft, errorf("dwfl_frame_pc: %s", dwfl_errmsg(-1)));
		return DWARF_CB_ABORT;
	}
	ft->frames[ft->n_frames++] = (struct raw_frame){ .pc = pc, .activation = activation };
	/* One frame more than asked for tells "truncated" from "exactly max". */
	return ft->n_frames > walk->target->max_frames ? DWARF_CB_ABORT : DWARF_CB_OK;
}

static int
unwind_thread_cb(Dwfl_Thread *thread, void *arg)
{
	struct unwind_target *t = arg;
	pid_t tid = dwfl_thread_tid(thread);
	struct frozen_thread *ft = NULL;
	for (size_t i = 0; i < t->n_threads && !ft; i++)
		if (t->threads[i].tid == tid)
			ft = &t->threads[i];
	if (!ft)
		return DWARF_CB_OK;

	ft->frames = calloc((size_t) t->max_frames + 1, sizeof(*ft->frames));
	if (!ft->frames) {
		thread_set_error(ft, strdup("out of memory"));
		return DWARF_CB_OK;
	}
	t->current = ft;
	struct unwind_walk walk = { .target = t, .ft = ft };
	int r = dwfl_thread_getframes(thread, unwind_frame_cb, &walk);
	t->current = NULL;
	if (ft->n_frames > t->max_frames) {
		ft->n_frames = t->max_frames;
		thread_set_error(ft, errorf("stopped at %u frames (max_frames)", t->max_frames));
	} else if (r != 0 && r != DWARF_CB_ABORT) {
		/* dwfl_thread_getframes reports the end of some stacks as an
		 * error too: only call it partial when libdwfl names one. */
		int err = dwfl_errno();
		if (err != 0 || ft->n_frames == 0)
			thread_set_error(ft, errorf("dwfl_thread_getframes tid %d: %s", (int) tid,
						    dwfl_errmsg(err)));
	}
	return DWARF_CB_OK;
}

/* ---- symbolizing a captured thread ----------------------------------- */

static int
frames_push(struct frame **frames, size_t *n, size_t *cap)
{
	if (*n < *cap)
		return 0;
	size_t new_cap = *cap ? *cap * 2 : 16;
	struct frame *grown = realloc(*frames, new_cap * sizeof(**frames));
	if (!grown)
		return -ENOMEM;
	*frames = grown;
	*cap = new_cap;
	return 0;
}

static int
symbolize_thread(struct stack_cache *cache, struct layout *layout, const struct frozen_thread *ft,
		 unsigned max_frames, bool lines, struct thread_stack *out)
{
	struct frame *frames = NULL;
	size_t n = 0, cap = 0;
	bool truncated = false;
	int r = 0;

	for (size_t i = 0; i < ft->n_frames && !truncated; i++) {
		uint64_t pc = ft->frames[i].pc;
		/* A return address may sit just past a noreturn call at the
		 * very end of its function: look up the call instruction. */
		uint64_t shift = ft->frames[i].activation ? 0 : 1;
		Dwarf_Addr addr = pc - shift;
		Dwfl_Module *mod = layout ? dwfl_addrmodule(layout->dwfl, addr) : NULL;
		void **userdata = NULL;
		struct module_origin *o = NULL;
		if (mod && dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL))
			o = *userdata;
		if (!o) {
			if ((r = frames_push(&frames, &n, &cap)) < 0)
				goto fail;
			frames[n++] = (struct frame){ .pc = pc };
			truncated = n >= max_frames && i + 1 < ft->n_frames;
			continue;
		}
		Dwarf_Addr bias = 0;
		const char *identity = module_identity(cache, o, mod, &bias);
		const struct sym_entry *e =
			identity ? symbol_lookup(cache, identity, addr - bias, lines, mod, addr) : NULL;
		if (!e) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t j = 0; j < e->n; j++) {
			if (n >= max_frames) {
				truncated = true;
				break;
			}
			if ((r = frames_push(&frames, &n, &cap)) < 0)
				goto fail;
			r = frame_from_sym(&frames[n++], pc, o->basename, &e->frames[j], shift);
			if (r < 0)
				goto fail;
		}
		if (n >= max_frames && i + 1 < ft->n_frames)
			truncated = true;
	}

	*out = (struct thread_stack){ .tid = ft->tid, .frames = frames, .n_frames = n,
				      .partial = ft->partial || truncated };
	if (ft->error)
		out->error = strdup(ft->error);
	else if (truncated)
		out->error = errorf("stopped at %u frames (max_frames)", max_frames);
	return 0;
fail:
	frames_free(frames, n);
	return r;
}

static int
thread_order(const void *a, const void *b, void *leader_arg)
{
	pid_t leader = *(const pid_t *) leader_arg;
	pid_t x = ((const struct frozen_thread *) a)->tid, y = ((const struct frozen_thread *) b)->tid;
	if (x == y)
		return 0;
	if (x == leader)
		return -1;
	if (y == leader)
		return 1;
	return x < y ? -1 : 1;
}

static int
build_result(struct stack_cache *cache, struct layout *layout, struct freeze *fz,
	     const struct stacks_options *opts, struct thread_stack **ret, size_t *ret_n)
{
	size_t n = 0;
	struct thread_stack *threads = calloc(fz->n ? fz->n : 1, sizeof(*threads));
	if (!threads)
		return -ENOMEM;
	for (size_t i = 0; i < fz->n; i++) {
		const struct frozen_thread *ft = &fz->threads[i];
		if (ft->state == THREAD_GONE || ft->state == THREAD_SEIZED)
			continue;
		int r = symbolize_thread(cache, layout, ft, opts->max_frames, opts->symbolize_lines,
					 &threads[n]);
		if (r < 0) {
			thread_stacks_free(threads, n);
			return r;
		}
		n++;
	}
	*ret = threads;
	*ret_n = n;
	return 0;
}

/* ---- the worker thread ----------------------------------------------- */

struct capture_job {
	struct stack_cache *cache;
	pid_t pid;
	struct stacks_options opts;
	int r;
	char *reason;
	struct thread_stack *threads;
	size_t n_threads;
	pid_t worker_tid;
	bool left_attached; /* released only by the worker's exit */
};

static void
capture_run(struct capture_job *job)
{
	struct freeze fz = { .pid = job->pid };
	struct layout *layout = NULL;
	_cleanup_free_ char *layout_reason = NULL;
	bool built = false;
	int r;

	job->r = freeze_process(&fz, &job->reason);
	if (job->r < 0)
		goto thaw;

	/* Stable order for unwinding and for the result: leader first. */
	qsort_r(fz.threads, fz.n, sizeof(*fz.threads), thread_order, &job->pid);

	r = layout_for(job->cache, job->pid, &layout, &layout_reason);
	if (r == -ENOMEM) {
		job->r = r;
		goto thaw;
	}
	if (r < 0) {
		for (size_t i = 0; i < fz.n; i++)
			if (fz.threads[i].state == THREAD_STOPPED)
				thread_set_error(&fz.threads[i],
						 strdup(layout_reason ? layout_reason
								      : "cannot read the module map"));
	} else {
		struct unwind_target *t = &layout->target;
		t->pid = job->pid;
		t->threads = fz.threads;
		t->n_threads = fz.n;
		t->cursor = 0;
		t->current = NULL;
		t->max_frames = job->opts.max_frames;
		t->pages = job->cache->pages;
		for (size_t i = 0; i < MEM_CACHE_PAGES; i++)
			t->pages[i].valid = false;
		(void) dwfl_getthreads(layout->dwfl, unwind_thread_cb, t);
		t->threads = NULL;
		t->n_threads = 0;
	}

	if (job->opts.while_frozen) {
		job->r = build_result(job->cache, layout, &fz, &job->opts, &job->threads,
				      &job->n_threads);
		if (job->r < 0)
			goto thaw;
		built = true;
		job->opts.while_frozen(job->pid, job->threads, job->n_threads, job->opts.userdata);
	}

thaw:
	thaw_process(&fz);
	for (size_t i = 0; i < fz.n; i++)
		if (fz.threads[i].attached)
			job->left_attached = true;

	/* Symbolize after detaching when nobody needs names while frozen: the
	 * freeze lasts only as long as the unwind. */
	if (job->r == 0 && !built)
		job->r = build_result(job->cache, layout, &fz, &job->opts, &job->threads,
				      &job->n_threads);
	freeze_free(&fz);
}

static void *
capture_worker(void *arg)
{
	struct capture_job *job = arg;
	job->worker_tid = gettid();
	capture_run(job);
	return NULL;
}

/* pthread_join returns before the kernel has run the exiting thread's
 * ptrace cleanup; when that cleanup is what releases a tracee, wait for the
 * task to disappear so callers see the target untraced. */
static void
wait_task_gone(pid_t tid)
{
	char path[64];
	(void) snprintf(path, sizeof(path), "/proc/self/task/%d", (int) tid);
	long delay_ns = 10000;
	for (unsigned i = 0; i < 200 && access(path, F_OK) == 0; i++) {
		struct timespec ts = { .tv_nsec = delay_ns };
		(void) nanosleep(&ts, NULL);
		delay_ns = MIN(delay_ns * 2, 10000000L);
	}
}

int
stacks_capture(struct stack_cache *cache, pid_t pid, const struct stacks_options *opts,
	       struct thread_stack **ret, size_t *ret_n, char **ret_reason)
{
	if (!cache || pid <= 0 || !ret || !ret_n)
		return -EINVAL;
	if (pid == getpid()) {
		if (ret_reason)
			*ret_reason = strdup("cannot freeze the calling process itself");
		return -EINVAL;
	}

	struct capture_job job = {
		.cache = cache,
		.pid = pid,
		.opts = { .max_frames = DEFAULT_MAX_FRAMES, .symbolize_lines = true },
	};
	if (opts) {
		job.opts = *opts;
		if (job.opts.max_frames == 0)
			job.opts.max_frames = DEFAULT_MAX_FRAMES;
	}

	/* The worker starts with every signal blocked: no handler may run on
	 * the thread holding the tracees. The caller blocks the usual
	 * terminating signals for the frozen window; they are delivered after
	 * the targets are released. (If forkscope dies anyway, the kernel
	 * detaches: SEIZE never leaves a pending SIGSTOP behind.) */
	sigset_t all, window, saved;
	(void) sigfillset(&all);
	int e = pthread_sigmask(SIG_SETMASK, &all, &saved);
	if (e != 0)
		return -e;
	pthread_t worker;
	e = pthread_create(&worker, NULL, capture_worker, &job);
	window = saved;
	(void) sigaddset(&window, SIGINT);
	(void) sigaddset(&window, SIGTERM);
	(void) sigaddset(&window, SIGHUP);
	(void) sigaddset(&window, SIGQUIT);
	(void) sigaddset(&window, SIGPIPE);
	(void) pthread_sigmask(SIG_SETMASK, &window, NULL);
	if (e == 0) {
		(void) pthread_join(worker, NULL);
		if (job.left_attached)
			wait_task_gone(job.worker_tid);
	}
	(void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (e != 0)
		return -e;

	if (job.r < 0) {
		if (ret_reason && !job.reason)
			job.reason = strdup(strerror(-job.r));
		if (ret_reason)
			*ret_reason = job.reason;
		else
			free(job.reason);
		return job.r;
	}
	free(job.reason);
	*ret = job.threads;
	*ret_n = job.n_threads;
	return 0;
}

/* ---- offline symbolization ------------------------------------------- */

static void
offline_file_free(struct offline_file *of)
{
	if (!of)
		return;
	if (of->dwfl)
		dwfl_end(of->dwfl);
	free(of->path);
	free(of->build_id);
	free(of->loads);
	free(of);
}

static int
offline_file_open(struct stack_cache *cache, struct offline_file *of)
{
	int fd = open(of->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void) close(fd);
		return 0;
	}
	of->dwfl = dwfl_begin(&offline_callbacks);
	if (!of->dwfl) {
		(void) close(fd);
		return -ENOMEM;
	}
	dwfl_report_begin(of->dwfl);
	/* At ELF vaddrs (bias 0): one session serves every process that maps
	 * the file, wherever ASLR put it; pcs are translated by their own
	 * recorded load bias instead. */
	of->mod = dwfl_report_elf(of->dwfl, path_basename(of->path), of->path, fd, 0, true);
	if (!of->mod)
		(void) close(fd); /* consumed only on success */
	if (dwfl_report_end(of->dwfl, NULL, NULL) != 0 || !of->mod)
		return 0;

	Dwarf_Addr bias;
	Elf *elf = dwfl_module_getelf(of->mod, &bias);
	if (!elf)
		return 0;
	const unsigned char *bits = NULL;
	GElf_Addr vaddr;
	int len = dwfl_module_build_id(of->mod, &bits, &vaddr);
	_cleanup_free_ char *hex = len > 0 ? hex_string(bits, (size_t) len) : NULL;
	if (of->build_id && (!hex || strcasecmp(hex, of->build_id) != 0))
		return 0; /* not the file that was mapped */

	size_t n_phdrs;
	if (elf_getphdrnum(elf, &n_phdrs) != 0)
		return 0;
	of->loads = calloc(n_phdrs ? n_phdrs : 1, sizeof(*of->loads));
	if (!of->loads)
		return -ENOMEM;
	for (size_t i = 0; i < n_phdrs; i++) {
		GElf_Phdr phdr;
		if (gelf_getphdr(elf, (int) i, &phdr) && phdr.p_type == PT_LOAD)
			of->loads[of->n_loads++] = phdr;
	}
	_cleanup_free_ char *name =
		hex ? errorf("build-id:%s", hex)
		    : errorf("file:%s:%u:%u:%" PRIu64, of->path, major(st.st_dev), minor(st.st_dev),
			     (uint64_t) st.st_ino);
	if (!name || !(of->identity = identity_intern(cache, name)))
		return -ENOMEM;
	of->usable = true;
	return 0;
}

static int
offline_file_get(struct stack_cache *cache, const struct raw_module *m, struct offline_file **ret)
{
	for (struct offline_file *of = cache->offline; of; of = of->next)
		if (strcmp(of->path, m->path) == 0 &&
		    (of->build_id == m->build_id ||
		     (of->build_id && m->build_id && strcasecmp(of->build_id, m->build_id) == 0))) {
			*ret = of;
			return 0;
		}

	struct offline_file *of = calloc(1, sizeof(*of));
	if (!of)
		return -ENOMEM;
	of->path = strdup(m->path);
	of->build_id = strdup_or_null(m->build_id);
	if (!of->path || (m->build_id && !of->build_id)) {
		offline_file_free(of);
		return -ENOMEM;
	}
	int r = offline_file_open(cache, of);
	if (r < 0) {
		offline_file_free(of);
		return r;
	}
	if (cache->n_offline >= OFFLINE_CACHE_MAX) {
		/* Drop the oldest (the list tail): bounded open files. */
		struct offline_file **pp = &cache->offline;
		while ((*pp)->next)
			pp = &(*pp)->next;
		offline_file_free(*pp);
		*pp = NULL;
		cache->n_offline--;
	}
	of->next = cache->offline;
	cache->offline = of;
	cache->n_offline++;
	*ret = of;
	return 0;
}

/* Load bias of a recorded mapping: the PT_LOAD segment holding its file
 * offset says which vaddr its first byte has. */
static uint64_t
offline_bias(const struct offline_file *of, const struct raw_module *m)
{
	uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < of->n_loads; i++) {
		const GElf_Phdr *ph = &of->loads[i];
		uint64_t file_start = ph->p_offset & ~(page - 1);
		if (m->offset >= file_start && m->offset < ph->p_offset + MAX(ph->p_filesz, 1))
			return m->start - (ph->p_vaddr - ph->p_offset + m->offset);
	}
	return m->start - m->offset;
}

int
stacks_symbolize(struct stack_cache *cache, const struct raw_module *modules, size_t n_modules,
		 const uint64_t *pcs, size_t n_pcs, struct frame **ret_frames)
{
	if (!cache || (!modules && n_modules) || (!pcs && n_pcs) || !ret_frames)
		return -EINVAL;
	struct frame *frames = calloc(n_pcs ? n_pcs : 1, sizeof(*frames));
	if (!frames)
		return -ENOMEM;

	for (size_t i = 0; i < n_pcs; i++) {
		uint64_t pc = pcs[i];
		uint64_t shift = i == 0 ? 0 : 1;
		uint64_t addr = pc - shift;
		frames[i].pc = pc;

		const struct raw_module *m = NULL;
		for (size_t j = 0; j < n_modules && !m; j++)
			if (modules[j].path && modules[j].start <= addr && addr < modules[j].end)
				m = &modules[j];
		if (!m)
			continue;
		int r = -ENOMEM;
		if (!(frames[i].module = strdup(path_basename(m->path))))
			goto fail;
		struct offline_file *of = NULL;
		if ((r = offline_file_get(cache, m, &of)) < 0)
			goto fail;
		if (!of->usable)
			continue;
		uint64_t rel = addr - offline_bias(of, m);
		const struct sym_entry *e = symbol_lookup(cache, of->identity, rel, true, of->mod, rel);
		if (!e) {
			r = -ENOMEM;
			goto fail;
		}
		/* One frame per pc: the physical function, at its call site
		 * of any inlined code. */
		const struct sym_frame *sf = &e->frames[e->n - 1];
		struct sym_frame physical = *sf;
		physical.inlined = false;
		char *module = take_ptr(&frames[i].module);
		r = frame_from_sym(&frames[i], pc, module, &physical, shift);
		free(module);
		if (r < 0)
			goto fail;
		continue;
fail:
		frames_free(frames, n_pcs);
		return r;
	}
	*ret_frames = frames;
	return 0;
}

/* ---- lifetime -------------------------------------------------------- */

struct stack_cache *
stack_cache_new(void)
{
	struct stack_cache *cache = calloc(1, sizeof(*cache));
	if (!cache)
		return NULL;
	(void) elf_version(EV_CURRENT);
	cache->n_buckets = 4096;
	cache->buckets = calloc(cache->n_buckets, sizeof(*cache->buckets));
	if (!cache->buckets) {
		free(cache);
		return NULL;
	}
	return cache;
}

void
stack_cache_free(struct stack_cache *cache)
{
	if (!cache)
		return;
	for (size_t i = 0; i < cache->n_layouts; i++)
		layout_free(cache->layouts[i]);
	symbols_flush(cache);
	free(cache->buckets);
	while (cache->offline) {
		struct offline_file *next = cache->offline->next;
		offline_file_free(cache->offline);
		cache->offline = next;
	}
	while (cache->identities) {
		struct identity *next = cache->identities->next;
		free(cache->identities);
		cache->identities = next;
	}
	free(cache);
}

void
stack_cache_get_stats(const struct stack_cache *cache, struct stack_cache_stats *ret)
{
	if (cache && ret)
		*ret = cache->stats;
}

void
frames_free(struct frame *frames, size_t n)
{
	if (!frames)
		return;
	for (size_t i = 0; i < n; i++) {
		free(frames[i].function);
		free(frames[i].module);
		free(frames[i].file);
		free(frames[i].python);
	}
	free(frames);
}

void
thread_stacks_free(struct thread_stack *threads, size_t n)
{
	if (!threads)
		return;
	for (size_t i = 0; i < n; i++) {
		frames_free(threads[i].frames, threads[i].n_frames);
		free(threads[i].error);
	}
	free(threads);
}
