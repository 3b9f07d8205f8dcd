/* Python frames of live CPython processes, read out of process.
 *
 * Shape of one read:
 *   1. /proc/PID/maps names the candidate files (the executable, any
 *      libpython*); the first whose ELF symbol table has `_PyRuntime` is the
 *      interpreter. ELF facts are cached per (dev, inode, size, mtime):
 *      the processes of a forked tree map the same files;
 *   2. the version comes from `Py_Version` (3.11+) in the target's memory;
 *      3.13+ describe their own layout in the `_Py_DebugOffsets` at the start
 *      of `_PyRuntime`, 3.11/3.12 use the table below;
 *   3. interpreters -> thread states -> frame chain, each frame's code object
 *      giving name, qualname, file and, through the location table, the line
 *      of the instruction the frame is at.
 *
 * Every read goes through process_vm_readv (or /proc/PID/mem), is bounded and
 * may fail at any time: the target is not stopped by us and may exit. */
#include "probes/python.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/strbuf.h"

#define DEFAULT_MAX_FRAMES 256
#define DEFAULT_MAX_THREADS 1024
#define MAX_INTERPRETERS 64
#define MAX_STRING_CHARS 1024
#define MAX_LINETABLE_BYTES (256 * 1024)
#define MAX_CANDIDATES 8
#define ELF_CACHE_MAX 16
#define CODE_CACHE_SLOTS 1024 /* power of two */
#define MAX_DEBUG_WORDS 128
#define NO_OFFSET UINT32_MAX

/* ---- layouts ----------------------------------------------------------- */

/* Everything the walk needs, in bytes from the start of each structure.
 * NO_OFFSET: the version has no such field. */
struct py_layout {
	unsigned minor;
	const char *source; /* where the numbers came from */
	uint32_t runtime_interpreters_head;
	uint32_t interp_next;
	uint32_t interp_threads_head;
	uint32_t tstate_next;
	uint32_t tstate_interp;
	uint32_t tstate_thread_id;
	uint32_t tstate_native_thread_id;
	uint32_t tstate_cframe;	       /* 3.11/3.12: _PyCFrame *cframe */
	uint32_t cframe_current_frame; /* 3.11/3.12 */
	uint32_t tstate_current_frame; /* 3.13+: the frame pointer itself */
	uint32_t frame_code;	       /* f_code (3.11/3.12), f_executable (3.13+) */
	uint32_t frame_previous;
	uint32_t frame_instr; /* prev_instr (3.11/3.12), instr_ptr (3.13+) */
	uint32_t frame_owner;
	uint32_t frame_is_entry; /* 3.11 only */
	uint32_t code_filename;
	uint32_t code_name;
	uint32_t code_qualname;
	uint32_t code_firstlineno;
	uint32_t code_linetable;
	uint32_t code_adaptive; /* co_code_adaptive: the instructions */
	uint32_t object_type;	/* ob_type */
	uint32_t type_name;	/* tp_name */
	uint32_t bytes_size;	/* ob_size */
	uint32_t bytes_data;	/* ob_sval */
	uint32_t unicode_length;
	uint32_t unicode_state;
	uint32_t unicode_ascii_size;   /* sizeof(PyASCIIObject): compact ASCII data */
	uint32_t unicode_compact_size; /* sizeof(PyCompactUnicodeObject) */
	uint8_t owner_not_python;      /* frames with owner >= this are C shims; 0 = none */
	bool executable_tagged;	       /* f_executable is a _PyStackRef (3.14+) */
	/* Thread names (threading._active), 3.11/3.12 only: NO_OFFSET = skip. */
	uint32_t interp_modules;	/* sys.modules */
	uint32_t type_flags;		/* tp_flags */
	uint32_t heap_type_cached_keys; /* PyHeapTypeObject.ht_cached_keys */
	bool managed_dict_tagged;	/* 3.12: PyDictOrValues at obj-24, odd = values - 1 */
	bool long_tagged;		/* 3.12: PyLongObject.lv_tag, else ob_size */
};

/* CPython 3.11 and 3.12, x86_64/aarch64 (LP64), default (GIL) build.
 * 3.11: offsetof() over Debian's python3.11-dev 3.11.2 headers
 *   (/usr/include/python3.11/{cpython/pystate.h,cpython/code.h,
 *   internal/pycore_{runtime,interp,frame}.h}) compiled with Py_BUILD_CORE;
 *   tests/test_python.c recompiles them and checks every number here.
 * 3.12: CPython v3.12 headers (Include/cpython/pystate.h, cpython/code.h,
 *   internal/pycore_{runtime,interp,frame}.h), laid out by hand for LP64 and
 *   cross-checked against bloomberg/pystack's 3.12 transcriptions; fields
 *   shared with 3.13 agree with 3.13's published _Py_DebugOffsets; all of
 *   them confirmed by offsetof() over pyenv's 3.12.1 headers.
 * Thread-name fields (interp_modules, type_flags, heap_type_cached_keys):
 *   offsetof() over the same headers (PyInterpreterState.modules in 3.11,
 *   .imports.modules in 3.12).
 * docs/python.md walks through each. */
static const struct py_layout version_layouts[] = {
    {
	.minor = 11,
	.source = "python3.11-dev headers (offsetof, verified by test)",
	.runtime_interpreters_head = 40,
	.interp_next = 0,
	.interp_threads_head = 16,
	.tstate_next = 8,
	.tstate_interp = 16,
	.tstate_thread_id = 152,
	.tstate_native_thread_id = 160,
	.tstate_cframe = 56,
	.cframe_current_frame = 8,
	.tstate_current_frame = NO_OFFSET,
	.frame_code = 32,
	.frame_previous = 48,
	.frame_instr = 56,
	.frame_owner = 69,
	.frame_is_entry = 68,
	.code_filename = 112,
	.code_name = 120,
	.code_qualname = 128,
	.code_firstlineno = 72,
	.code_linetable = 136,
	.code_adaptive = 184,
	.object_type = 8,
	.type_name = 24,
	.bytes_size = 16,
	.bytes_data = 32,
	.unicode_length = 16,
	.unicode_state = 32,
	.unicode_ascii_size = 48,
	.unicode_compact_size = 72,
	.owner_not_python = 0,
	.interp_modules = 888,
	.type_flags = 168,
	.heap_type_cached_keys = 872,
	.managed_dict_tagged = false,
	.long_tagged = false,
    },
    {
	.minor = 12,
	.source = "CPython 3.12 headers, by hand (LP64)",
	.runtime_interpreters_head = 40,
	.interp_next = 0,
	.interp_threads_head = 72,
	.tstate_next = 8,
	.tstate_interp = 16,
	.tstate_thread_id = 136,
	.tstate_native_thread_id = 144,
	.tstate_cframe = 56,
	.cframe_current_frame = 0,
	.tstate_current_frame = NO_OFFSET,
	.frame_code = 0,
	.frame_previous = 8,
	.frame_instr = 56,
	.frame_owner = 70,
	.frame_is_entry = NO_OFFSET,
	.code_filename = 112,
	.code_name = 120,
	.code_qualname = 128,
	.code_firstlineno = 68,
	.code_linetable = 136,
	.code_adaptive = 192,
	.object_type = 8,
	.type_name = 24,
	.bytes_size = 16,
	.bytes_data = 32,
	.unicode_length = 16,
	.unicode_state = 32,
	.unicode_ascii_size = 40,
	.unicode_compact_size = 56,
	.owner_not_python = 3, /* FRAME_OWNED_BY_CSTACK */
	.interp_modules = 944,
	.type_flags = 168,
	.heap_type_cached_keys = 880,
	.managed_dict_tagged = true,
	.long_tagged = true,
    },
};

/* Where each field sits in _Py_DebugOffsets, as an index of 8-byte words
 * from the start of _PyRuntime (word 0 is the cookie). The struct itself
 * changes between minor versions (fields are appended to its sub-structs),
 * so this is the one per-version fact 3.13+ need.
 * 3.13: Include/internal/pycore_runtime.h of v3.13, and the words of
 *   Debian 13's python3.13 3.13.5 (tests/python313_chroot.sh).
 * 3.14: Include/internal/pycore_debug_offsets.h of v3.14 (not run here). */
struct debug_index {
	unsigned minor;
	uint8_t free_threaded, runtime_size, interpreters_head;
	uint8_t interp_next, interp_threads_head;
	uint8_t tstate_next, tstate_interp, tstate_current_frame, tstate_thread_id,
	    tstate_native_thread_id;
	uint8_t frame_previous, frame_executable, frame_instr_ptr, frame_owner;
	uint8_t code_filename, code_name, code_qualname, code_linetable, code_firstlineno,
	    code_adaptive;
	uint8_t object_type, type_name;
	uint8_t bytes_size, bytes_data;
	uint8_t unicode_state, unicode_length, unicode_ascii_size;
	uint8_t n_words;	  /* words to read: up to the last one used */
	uint8_t owner_not_python; /* first enum _frameowner value that is no Python frame */
	bool executable_tagged;
};

static const struct debug_index debug_indexes[] = {
    {
	.minor = 13,
	.free_threaded = 2,
	.runtime_size = 3,
	.interpreters_head = 5,
	.interp_next = 8,
	.interp_threads_head = 9,
	.tstate_next = 21,
	.tstate_interp = 22,
	.tstate_current_frame = 23,
	.tstate_thread_id = 24,
	.tstate_native_thread_id = 25,
	.frame_previous = 29,
	.frame_executable = 30,
	.frame_instr_ptr = 31,
	.frame_owner = 33,
	.code_filename = 35,
	.code_name = 36,
	.code_qualname = 37,
	.code_linetable = 38,
	.code_firstlineno = 39,
	.code_adaptive = 43,
	.object_type = 45,
	.type_name = 47,
	.bytes_size = 65,
	.bytes_data = 66,
	.unicode_state = 68,
	.unicode_length = 69,
	.unicode_ascii_size = 70,
	.n_words = 73,
	.owner_not_python = 3, /* FRAME_OWNED_BY_CSTACK */
	.executable_tagged = false,
    },
    {
	.minor = 14,
	.free_threaded = 2,
	.runtime_size = 3,
	.interpreters_head = 5,
	.interp_next = 8,
	.interp_threads_head = 9,
	.tstate_next = 24,
	.tstate_interp = 25,
	.tstate_current_frame = 26,
	.tstate_thread_id = 27,
	.tstate_native_thread_id = 28,
	.frame_previous = 32,
	.frame_executable = 33,
	.frame_instr_ptr = 34,
	.frame_owner = 36,
	.code_filename = 40,
	.code_name = 41,
	.code_qualname = 42,
	.code_linetable = 43,
	.code_firstlineno = 44,
	.code_adaptive = 48,
	.object_type = 51,
	.type_name = 53,
	.bytes_size = 75,
	.bytes_data = 76,
	.unicode_state = 78,
	.unicode_length = 79,
	.unicode_ascii_size = 80,
	.n_words = 81,
	.owner_not_python = 3, /* FRAME_OWNED_BY_INTERPRETER, then _CSTACK */
	.executable_tagged = true,
    },
};

/* ---- small helpers ----------------------------------------------------- */

static char *errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

static const char *
path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static uint64_t
le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t
le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* ---- target memory ----------------------------------------------------- */

/* Reads go through a small cache of whole pages: a stack's frames, code
 * objects and strings sit on few pages, and one process_vm_readv per page
 * costs about what one per field does. The cache lives for one read; the
 * torn-read check bypasses it. */
#define READ_PAGE 4096
#define READ_PAGES 32

struct read_page {
	uint64_t addr;
	int error; /* 0: data valid; < 0: the page could not be read */
	unsigned char data[READ_PAGE];
};

struct reader {
	pid_t pid;
	int mem_fd; /* /proc/PID/mem, opened when process_vm_readv is refused */
	bool vm_refused;
	struct read_page *pages; /* READ_PAGES, NULL: no cache */
	size_t n_pages, next_page;
	unsigned syscalls;
};

static int
mem_read_direct(struct reader *rd, uint64_t addr, void *buf, size_t len)
{
	if (addr == 0 || addr + len < addr)
		return -EFAULT;
	rd->syscalls++;
	if (!rd->vm_refused) {
		struct iovec local = {.iov_base = buf, .iov_len = len};
		struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
		ssize_t n = process_vm_readv(rd->pid, &local, 1, &remote, 1, 0);
		if (n == (ssize_t)len)
			return 0;
		if (n >= 0)
			return -EFAULT; /* crosses into an unmapped page */
		if (errno != EPERM && errno != ENOSYS)
			return -errno;
		/* Seccomp filters and some LSMs refuse the syscall, not the file. */
		rd->vm_refused = true;
	}
	if (rd->mem_fd < 0) {
		char path[64];
		(void)snprintf(path, sizeof(path), "/proc/%d/mem", (int)rd->pid);
		rd->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (rd->mem_fd < 0)
			return errno == ENOENT ? -ESRCH : -errno;
	}
	ssize_t n = pread(rd->mem_fd, buf, len, (off_t)addr);
	if (n == (ssize_t)len)
		return 0;
	if (n == 0 && kill(rd->pid, 0) < 0 && errno == ESRCH)
		return -ESRCH; /* the mm is gone: reads return 0 */
	return n < 0 ? -errno : -EFAULT;
}

static const struct read_page *
page_get(struct reader *rd, uint64_t page_addr)
{
	for (size_t i = 0; i < rd->n_pages; i++)
		if (rd->pages[i].addr == page_addr)
			return &rd->pages[i];
	struct read_page *p;
	if (rd->n_pages < READ_PAGES)
		p = &rd->pages[rd->n_pages++];
	else {
		p = &rd->pages[rd->next_page];
		rd->next_page = (rd->next_page + 1) % READ_PAGES;
	}
	p->addr = page_addr;
	p->error = mem_read_direct(rd, page_addr, p->data, READ_PAGE);
	return p;
}

static int
mem_read(struct reader *rd, uint64_t addr, void *buf, size_t len)
{
	if (addr == 0 || addr + len < addr)
		return -EFAULT;
	if (!rd->pages || len > 4 * READ_PAGE)
		return mem_read_direct(rd, addr, buf, len);
	unsigned char *out = buf;
	while (len) {
		uint64_t page_addr = addr & ~(uint64_t)(READ_PAGE - 1);
		size_t in_page = MIN(len, (size_t)(page_addr + READ_PAGE - addr));
		const struct read_page *p = page_get(rd, page_addr);
		if (p->error < 0)
			return p->error;
		memcpy(out, p->data + (addr - page_addr), in_page);
		out += in_page;
		addr += in_page;
		len -= in_page;
	}
	return 0;
}

static int
mem_read_u64(struct reader *rd, uint64_t addr, uint64_t *ret)
{
	unsigned char b[8];
	int r = mem_read(rd, addr, b, sizeof(b));
	if (r < 0)
		return r;
	*ret = le64(b);
	return 0;
}

/* ---- ELF facts, cached ------------------------------------------------- */

struct elf_facts {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool has_runtime;
	uint64_t runtime_vaddr, runtime_size;
	bool has_version;
	uint64_t version_vaddr;
	bool has_py_main; /* Py_Initialize/Py_Main: some Python, maybe not CPython 3.11+ */
	GElf_Phdr loads[8];
	size_t n_loads;
};

static struct elf_facts elf_cache[ELF_CACHE_MAX];
static size_t elf_cache_n, elf_cache_next;
static pthread_mutex_t elf_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void
scan_symbols(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, struct elf_facts *f)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	if (!data || sh->sh_entsize == 0)
		return;
	size_t n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 0; i < n; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
		    sym.st_value == 0)
			continue;
		const char *name = elf_strptr(elf, sh->sh_link, sym.st_name);
		if (!name || name[0] == '\0')
			continue;
		if (!f->has_runtime && strcmp(name, "_PyRuntime") == 0) {
			f->has_runtime = true;
			f->runtime_vaddr = sym.st_value;
			f->runtime_size = sym.st_size;
		} else if (!f->has_version && strcmp(name, "Py_Version") == 0) {
			f->has_version = true;
			f->version_vaddr = sym.st_value;
		} else if (strcmp(name, "Py_Initialize") == 0 || strcmp(name, "Py_Main") == 0) {
			f->has_py_main = true;
		}
	}
}

static int
elf_facts_compute(int fd, struct elf_facts *f)
{
	(void)elf_version(EV_CURRENT);
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -EINVAL;
	int r = 0;
	if (elf_kind(elf) != ELF_K_ELF) {
		r = -EINVAL;
		goto out;
	}
	/* .dynsym first: Debian strips .symtab, and _PyRuntime is exported. */
	for (int pass = 0; pass < 2 && !f->has_runtime; pass++) {
		Elf_Scn *scn = NULL;
		while ((scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			if (!gelf_getshdr(scn, &sh))
				continue;
			if (sh.sh_type == (pass == 0 ? SHT_DYNSYM : SHT_SYMTAB))
				scan_symbols(elf, scn, &sh, f);
		}
	}
	size_t n_phdrs = 0;
	if (elf_getphdrnum(elf, &n_phdrs) == 0)
		for (size_t i = 0; i < n_phdrs && f->n_loads < ARRAY_SIZE(f->loads); i++) {
			GElf_Phdr ph;
			if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD)
				f->loads[f->n_loads++] = ph;
		}
out:
	(void)elf_end(elf);
	return r;
}

static int
elf_facts_get(int fd, struct elf_facts *ret)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	(void)pthread_mutex_lock(&elf_cache_lock);
	for (size_t i = 0; i < elf_cache_n; i++) {
		const struct elf_facts *c = &elf_cache[i];
		if (c->dev == st.st_dev && c->ino == st.st_ino && c->size == st.st_size &&
		    c->mtime.tv_sec == st.st_mtim.tv_sec &&
		    c->mtime.tv_nsec == st.st_mtim.tv_nsec) {
			*ret = *c;
			(void)pthread_mutex_unlock(&elf_cache_lock);
			return 0;
		}
	}
	(void)pthread_mutex_unlock(&elf_cache_lock);

	struct elf_facts f = {
	    .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim};
	int r = elf_facts_compute(fd, &f);
	if (r < 0)
		return r;
	(void)pthread_mutex_lock(&elf_cache_lock);
	elf_cache[elf_cache_next] = f;
	elf_cache_next = (elf_cache_next + 1) % ELF_CACHE_MAX;
	if (elf_cache_n < ELF_CACHE_MAX)
		elf_cache_n++;
	(void)pthread_mutex_unlock(&elf_cache_lock);
	*ret = f;
	return 0;
}

/* ---- finding the interpreter ------------------------------------------- */

struct mapping {
	uint64_t start, end, offset;
	unsigned dev_major, dev_minor;
	uint64_t ino;
	char *path;
};

struct candidate {
	struct mapping map; /* its lowest mapping */
	bool is_exe;
};

struct located {
	struct elf_facts elf;
	uint64_t bias;
	char *path;
	bool found;
	/* no _PyRuntime anywhere: what else was seen */
	char *other_python; /* "PyPy", "libpython2.7.so.1.0"... */
};

static bool
is_interpreter_name(const char *base)
{
	return strncmp(base, "libpython", 9) == 0 || strncmp(base, "libpypy", 7) == 0;
}

/* Open the mapped file as the target sees it: the path in maps is relative to
 * our root, which is what we open; when that fails or is another file (other
 * mount namespace, replaced on disk), /proc/PID/map_files gives the very
 * mapped inode. */
static int
open_mapped(pid_t pid, const struct mapping *m)
{
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_ino == m->ino)
			return fd;
		(void)close(fd);
	}
	char path[96];
	(void)snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid,
		       m->start, m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* Load bias of a mapping: the PT_LOAD holding its file offset says which vaddr
 * its first byte has. */
static uint64_t
load_bias(const struct elf_facts *f, const struct mapping *m)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < f->n_loads; i++) {
		const GElf_Phdr *ph = &f->loads[i];
		uint64_t file_start = ph->p_offset & ~(page - 1);
		if (m->offset >= file_start && m->offset < ph->p_offset + MAX(ph->p_filesz, 1))
			return m->start - (ph->p_vaddr - ph->p_offset + m->offset);
	}
	return m->start - m->offset;
}

static int
parse_maps(pid_t pid, struct candidate *cands, size_t *ret_n, char **ret_exe_base)
{
	char path[64];
	(void)snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	struct stat exe_st;
	bool have_exe = stat(path, &exe_st) == 0;
	char exe_link[PATH_MAX];
	ssize_t ln = readlink(path, exe_link, sizeof(exe_link) - 1);
	exe_link[ln > 0 ? ln : 0] = '\0';

	(void)snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	int r = read_file_alloc(path, &data, &len);
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	size_t n = 0;
	for (char *line = data; line && *line && n < MAX_CANDIDATES;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		struct mapping m = {0};
		int path_at = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*4s %" SCNx64 " %x:%x %" SCNu64 " %n",
			   &m.start, &m.end, &m.offset, &m.dev_major, &m.dev_minor, &m.ino,
			   &path_at) >= 6 &&
		    m.ino != 0 && path_at > 0 && line[path_at] == '/') {
			const char *p = line + path_at;
			bool is_exe = have_exe && m.ino == (uint64_t)exe_st.st_ino;
			bool seen = false;
			for (size_t i = 0; i < n; i++)
				if (cands[i].map.ino == m.ino &&
				    cands[i].map.dev_major == m.dev_major &&
				    cands[i].map.dev_minor == m.dev_minor)
					seen = true;
			if (!seen && (is_exe || is_interpreter_name(path_basename(p)))) {
				m.path = strdup(p);
				if (!m.path) {
					r = -ENOMEM;
					break;
				}
				cands[n++] = (struct candidate){.map = m, .is_exe = is_exe};
			}
		}
		line = end ? end + 1 : NULL;
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(cands[i].map.path);
		return r;
	}
	*ret_n = n;
	*ret_exe_base = strdup(path_basename(exe_link));
	return 0;
}

/* A zombie (or a process being torn down) has no mappings left to read. */
static bool
process_gone(pid_t pid)
{
	char path[64], buf[512];
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file_into(path, buf, sizeof(buf)) < 0)
		return true;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static int
locate_interpreter(pid_t pid, struct located *ret)
{
	struct candidate cands[MAX_CANDIDATES];
	size_t n = 0;
	_cleanup_free_ char *exe_base = NULL;
	int r = parse_maps(pid, cands, &n, &exe_base);
	if (r < 0)
		return r;
	struct located loc = {0};
	/* The executable first: a static interpreter is its own runtime even if
	 * some extension drags a libpython in. */
	for (int pass = 0; pass < 2 && !loc.found; pass++)
		for (size_t i = 0; i < n && !loc.found; i++) {
			if (cands[i].is_exe != (pass == 0))
				continue;
			const char *base = path_basename(cands[i].map.path);
			int fd = open_mapped(pid, &cands[i].map);
			struct elf_facts f = {0};
			bool ok = fd >= 0 && elf_facts_get(fd, &f) == 0;
			if (fd >= 0)
				(void)close(fd);
			if (ok && f.has_runtime) {
				loc.found = true;
				loc.elf = f;
				loc.bias = load_bias(&f, &cands[i].map);
				loc.path = strdup(cands[i].map.path);
			} else if (!loc.other_python &&
				   (strstr(base, "pypy") || (ok && f.has_py_main) ||
				    strncmp(base, "libpython", 9) == 0)) {
				loc.other_python = strdup(base);
			}
		}
	if (!loc.found && !loc.other_python && exe_base && strncmp(exe_base, "pypy", 4) == 0)
		loc.other_python = strdup(exe_base);
	for (size_t i = 0; i < n; i++)
		free(cands[i].map.path);
	if (!loc.found && !loc.other_python)
		return process_gone(pid) ? -ESRCH : -ENOENT;
	*ret = loc;
	return 0;
}

/* ---- code objects ------------------------------------------------------ */

struct code_info {
	uint64_t addr;
	bool valid;
	char *name, *qualname, *filename;
	int firstlineno;
	unsigned char *linetable;
	size_t linetable_len;
};

struct walk {
	struct reader rd;
	struct py_layout L;
	unsigned max_frames, max_threads;
	bool frozen;
	uint64_t code_type;	 /* address of PyCode_Type once seen */
	struct code_info *codes; /* CODE_CACHE_SLOTS, open addressing */
	size_t n_codes;
};

static void
code_info_clear(struct code_info *c)
{
	free(c->name);
	free(c->qualname);
	free(c->filename);
	free(c->linetable);
	*c = (struct code_info){0};
}

static int
utf8_put(struct strbuf *sb, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp >= 0xd800 && cp <= 0xdfff)
		cp = 0xfffd; /* lone surrogates (surrogateescape'd file names) */
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else if (cp <= 0x10ffff) {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	} else {
		return strbuf_append(sb, "\xef\xbf\xbd");
	}
	return strbuf_appendn(sb, b, n);
}

/* A str object as UTF-8. Only compact strings (all that code objects hold);
 * anything else, or a state that makes no sense, is -EINVAL. */
static int
read_unicode(struct walk *w, uint64_t addr, char **ret)
{
	const struct py_layout *L = &w->L;
	unsigned char head[128];
	size_t head_len = MAX(L->unicode_state, L->unicode_length) + 8;
	if (head_len > sizeof(head))
		return -EINVAL;
	int r = mem_read(&w->rd, addr, head, head_len);
	if (r < 0)
		return r;
	uint64_t length = le64(head + L->unicode_length);
	uint32_t state = le32(head + L->unicode_state);
	/* state bits: interned:2 kind:3 compact:1 ascii:1 (3.11 to 3.14) */
	unsigned kind = (state >> 2) & 7;
	bool compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
	if (!compact || (kind != 1 && kind != 2 && kind != 4) || (ascii && kind != 1))
		return -EINVAL;
	bool truncated = length > MAX_STRING_CHARS;
	size_t chars = truncated ? MAX_STRING_CHARS : (size_t)length;
	uint64_t data = addr + (ascii ? L->unicode_ascii_size : L->unicode_compact_size);
	_cleanup_free_ unsigned char *raw = malloc(chars * kind + 1);
	if (!raw)
		return -ENOMEM;
	if (chars && (r = mem_read(&w->rd, data, raw, chars * kind)) < 0)
		return r;
	struct strbuf sb = STRBUF_INIT;
	r = strbuf_append(&sb, "");
	for (size_t i = 0; i < chars && r >= 0; i++) {
		uint32_t cp = kind == 1	  ? raw[i]
			      : kind == 2 ? (uint32_t)(raw[2 * i] | raw[2 * i + 1] << 8)
					  : le32(raw + 4 * i);
		if (cp == 0)
			cp = 0xfffd;
		r = utf8_put(&sb, cp);
	}
	if (r >= 0 && truncated)
		r = strbuf_append(&sb, "...");
	if (r < 0) {
		strbuf_free(&sb);
		return -ENOMEM;
	}
	*ret = strbuf_steal(&sb);
	return 0;
}

static int
read_bytes(struct walk *w, uint64_t addr, unsigned char **ret, size_t *ret_len)
{
	uint64_t size;
	int r = mem_read_u64(&w->rd, addr + w->L.bytes_size, &size);
	if (r < 0)
		return r;
	if (size > MAX_LINETABLE_BYTES)
		return -E2BIG;
	unsigned char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	if (size && (r = mem_read(&w->rd, addr + w->L.bytes_data, buf, size)) < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = size;
	return 0;
}

/* Is addr an object of type "code"? Checked once per type address, so a
 * stale pointer to something else is refused instead of decoded. */
static int
check_code_type(struct walk *w, uint64_t addr)
{
	uint64_t type;
	int r = mem_read_u64(&w->rd, addr + w->L.object_type, &type);
	if (r < 0)
		return r;
	if (w->code_type)
		return type == w->code_type ? 0 : -EINVAL;
	uint64_t name_ptr;
	char name[8] = {0};
	if ((r = mem_read_u64(&w->rd, type + w->L.type_name, &name_ptr)) < 0 ||
	    (r = mem_read(&w->rd, name_ptr, name, 5)) < 0)
		return r;
	if (memcmp(name, "code", 5) != 0)
		return -EINVAL;
	w->code_type = type;
	return 0;
}

static int
code_load(struct walk *w, uint64_t addr, struct code_info *c)
{
	const struct py_layout *L = &w->L;
	int r = check_code_type(w, addr);
	if (r < 0)
		return r;
	uint64_t name = 0, qualname = 0, filename = 0, linetable = 0;
	unsigned char lineno[4];
	if ((r = mem_read_u64(&w->rd, addr + L->code_name, &name)) < 0 ||
	    (r = mem_read_u64(&w->rd, addr + L->code_qualname, &qualname)) < 0 ||
	    (r = mem_read_u64(&w->rd, addr + L->code_filename, &filename)) < 0 ||
	    (r = mem_read_u64(&w->rd, addr + L->code_linetable, &linetable)) < 0 ||
	    (r = mem_read(&w->rd, addr + L->code_firstlineno, lineno, 4)) < 0)
		return r;
	*c = (struct code_info){.addr = addr, .firstlineno = (int)le32(lineno)};
	if ((r = read_unicode(w, name, &c->name)) < 0 ||
	    (r = read_unicode(w, filename, &c->filename)) < 0)
		goto fail;
	if (read_unicode(w, qualname, &c->qualname) < 0)
		c->qualname = NULL; /* optional */
	/* No location table: frames keep their name, the line is unknown. */
	if (read_bytes(w, linetable, &c->linetable, &c->linetable_len) < 0) {
		c->linetable = NULL;
		c->linetable_len = 0;
	}
	c->valid = true;
	return 0;
fail:
	code_info_clear(c);
	return r;
}

static const struct code_info *
code_get(struct walk *w, uint64_t addr, int *ret_error)
{
	size_t slot = (size_t)((addr >> 4) * 0x9e3779b97f4a7c15ULL) & (CODE_CACHE_SLOTS - 1);
	for (size_t probe = 0; probe < 8; probe++) {
		struct code_info *c = &w->codes[(slot + probe) & (CODE_CACHE_SLOTS - 1)];
		if (c->valid && c->addr == addr)
			return c;
		if (!c->valid) {
			int r = code_load(w, addr, c);
			if (r < 0) {
				*ret_error = r;
				return NULL;
			}
			w->n_codes++;
			return c;
		}
	}
	/* Cluster full: evict the home slot. */
	struct code_info *c = &w->codes[slot];
	code_info_clear(c);
	int r = code_load(w, addr, c);
	if (r < 0) {
		*ret_error = r;
		return NULL;
	}
	return c;
}

/* ---- location table (3.11+) -------------------------------------------- */

/* The line of the code unit at byte offset addr, from co_linetable as
 * Objects/locations.md describes it (3.11 to 3.14): entries start with a
 * byte 1CCCCLLL (code C, L+1 code units covered); code 15 has no location,
 * 13/14 carry a signed varint line delta, 10..12 a delta of C-10, 0..9 the
 * same line. Varints are 6 bits a byte, bit 6 meaning "more". Returns 0
 * when the table does not cover addr or says "no location". */
static int
scan_varint(const unsigned char *p, const unsigned char *end, size_t *pos, unsigned *ret)
{
	unsigned val = 0, shift = 0;
	for (;;) {
		if (p + *pos >= end || shift > 28)
			return -EINVAL;
		unsigned b = p[(*pos)++];
		val |= (b & 63) << shift;
		if (!(b & 64))
			break;
		shift += 6;
	}
	*ret = val;
	return 0;
}

static int
linetable_line(const unsigned char *table, size_t len, int firstlineno, int64_t addr)
{
	if (!table || addr < 0)
		return 0;
	const unsigned char *end = table + len;
	int64_t start = 0;
	int line = firstlineno;
	size_t pos = 0;
	while (pos < len) {
		unsigned first = table[pos];
		if (!(first & 0x80))
			return 0; /* not at an entry start: corrupt */
		pos++;
		unsigned code = (first >> 3) & 15;
		int64_t size = ((first & 7) + 1) * 2; /* bytes: code units are 2 */
		int delta = 0;
		if (code == 13 || code == 14) {
			unsigned u;
			if (scan_varint(table, end, &pos, &u) < 0)
				return 0;
			delta = (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
		} else if (code >= 10 && code <= 12) {
			delta = (int)code - 10;
		}
		line += delta;
		if (addr >= start && addr < start + size)
			return code == 15 ? 0 : line;
		start += size;
		/* Skip the column data: up to the next entry start. */
		while (pos < len && !(table[pos] & 0x80))
			pos++;
	}
	return 0;
}

/* ---- the walk ---------------------------------------------------------- */

static char *
strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void
py_thread_clear(struct py_thread *t)
{
	for (size_t i = 0; i < t->n_frames; i++) {
		free(t->frames[i].function);
		free(t->frames[i].qualname);
		free(t->frames[i].file);
	}
	free(t->frames);
	free(t->name);
	free(t->error);
	*t = (struct py_thread){0};
}

static void
thread_fail(struct py_thread *t, char *error)
{
	t->partial = true;
	if (t->error)
		free(error);
	else
		t->error = error;
}

/* The frame pointer a thread state currently shows. */
static int
current_frame_of(struct walk *w, uint64_t tstate, uint64_t *ret)
{
	const struct py_layout *L = &w->L;
	if (L->tstate_current_frame != NO_OFFSET)
		return mem_read_u64(&w->rd, tstate + L->tstate_current_frame, ret);
	uint64_t cframe;
	int r = mem_read_u64(&w->rd, tstate + L->tstate_cframe, &cframe);
	if (r < 0)
		return r;
	if (cframe == 0) {
		*ret = 0;
		return 0;
	}
	return mem_read_u64(&w->rd, cframe + L->cframe_current_frame, ret);
}

static int
frames_push(struct py_thread *t, size_t *cap)
{
	if (t->n_frames < *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 16;
	struct py_frame *f = realloc(t->frames, n * sizeof(*f));
	if (!f)
		return -ENOMEM;
	t->frames = f;
	*cap = n;
	return 0;
}

static int
walk_frames(struct walk *w, uint64_t first, struct py_thread *t, uint64_t *ret_first_instr)
{
	const struct py_layout *L = &w->L;
	size_t cap = 0;
	_cleanup_free_ uint64_t *seen = calloc(w->max_frames + 1, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	size_t n_seen = 0;
	uint32_t span = MAX(MAX(L->frame_code, L->frame_previous), L->frame_instr) + 8;
	if (L->frame_owner != NO_OFFSET)
		span = MAX(span, L->frame_owner + 1);
	if (L->frame_is_entry != NO_OFFSET)
		span = MAX(span, L->frame_is_entry + 1);
	*ret_first_instr = 0;

	for (uint64_t frame = first; frame;) {
		for (size_t i = 0; i < n_seen; i++)
			if (seen[i] == frame) {
				thread_fail(t, errorf("frame chain loops at 0x%" PRIx64, frame));
				return 0;
			}
		if (n_seen >= w->max_frames) {
			thread_fail(t, errorf("stopped at %u frames (max_frames)", w->max_frames));
			return 0;
		}
		seen[n_seen++] = frame;

		unsigned char buf[128];
		int r = mem_read(&w->rd, frame, buf, span);
		if (r < 0) {
			thread_fail(t, errorf("frame at 0x%" PRIx64 ": %s", frame, strerror(-r)));
			return r == -ESRCH ? r : 0;
		}
		uint64_t code = le64(buf + L->frame_code);
		uint64_t previous = le64(buf + L->frame_previous);
		uint64_t instr = le64(buf + L->frame_instr);
		if (L->executable_tagged)
			code &= ~(uint64_t)3; /* _PyStackRef tag bits */
		if (!*ret_first_instr)
			*ret_first_instr = instr ^ code;
		if (L->owner_not_python && L->frame_owner != NO_OFFSET &&
		    buf[L->frame_owner] >= L->owner_not_python) {
			/* A C shim frame: the Python frame above it was the
			 * first one of a _PyEval_EvalFrameDefault call. */
			if (t->n_frames)
				t->frames[t->n_frames - 1].entry = true;
			frame = previous;
			continue;
		}
		const struct code_info *c = code_get(w, code, &r);
		if (!c) {
			if (r == -ENOMEM)
				return r;
			thread_fail(t, errorf("code object at 0x%" PRIx64 ": %s", code,
					      r == -EINVAL ? "not a code object" : strerror(-r)));
			return r == -ESRCH ? r : 0;
		}
		if ((r = frames_push(t, &cap)) < 0)
			return r;
		int64_t offset = (int64_t)(instr - (code + L->code_adaptive));
		struct py_frame *f = &t->frames[t->n_frames];
		*f = (struct py_frame){
		    .function = strdup(c->name),
		    .qualname = strdup_or_null(c->qualname),
		    .file = strdup(c->filename),
		    .line = linetable_line(c->linetable, c->linetable_len, c->firstlineno, offset),
		    .entry = L->frame_is_entry != NO_OFFSET ? buf[L->frame_is_entry] != 0
							    : previous == 0,
		};
		t->n_frames++;
		if (!f->function || !f->file || (c->qualname && !f->qualname))
			return -ENOMEM;
		frame = previous;
	}
	if (t->n_frames)
		t->frames[t->n_frames - 1].entry = true;
	return 0;
}

static int
read_thread(struct walk *w, uint64_t tstate, struct py_thread *t)
{
	const struct py_layout *L = &w->L;
	uint64_t thread_id = 0, native = 0, frame = 0;
	int r;
	if ((r = mem_read_u64(&w->rd, tstate + L->tstate_thread_id, &thread_id)) < 0 ||
	    (r = mem_read_u64(&w->rd, tstate + L->tstate_native_thread_id, &native)) < 0 ||
	    (r = current_frame_of(w, tstate, &frame)) < 0) {
		thread_fail(t, errorf("thread state at 0x%" PRIx64 ": %s", tstate, strerror(-r)));
		return r == -ESRCH ? r : 0;
	}
	t->thread_id = (unsigned long)thread_id;
	t->tid = (pid_t)native;
	uint64_t first_instr = 0;
	r = walk_frames(w, frame, t, &first_instr);
	if (r < 0)
		return r;
	if (!w->frozen && !t->partial) {
		/* Not frozen: a thread that ran meanwhile may have handed us a
		 * mix of two stacks. Same top frame at the same instruction
		 * before and after means it did not move. Fresh reads: the
		 * page cache holds what was seen the first time. */
		struct read_page *pages = take_ptr(&w->rd.pages);
		uint64_t again = 0, instr = 0, code = 0;
		bool same = current_frame_of(w, tstate, &again) == 0 && again == frame;
		if (same && frame) {
			same = mem_read_u64(&w->rd, frame + L->frame_instr, &instr) == 0 &&
			       mem_read_u64(&w->rd, frame + L->frame_code, &code) == 0;
			if (L->executable_tagged)
				code &= ~(uint64_t)3;
			same = same && (instr ^ code) == first_instr;
		}
		w->rd.pages = pages;
		if (!same)
			thread_fail(
			    t, strdup("the thread ran while its frames were read (torn read)"));
	}
	return 0;
}

/* Thread ids of the process, to match native_thread_id against. */
static size_t
list_tids(pid_t pid, pid_t *tids, size_t max)
{
	char path[64];
	(void)snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dir)) && n < max) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (*end == '\0' && tid > 0)
			tids[n++] = (pid_t)tid;
	}
	(void)closedir(dir);
	return n;
}

static void
match_threads(pid_t pid, struct py_process *py)
{
	pid_t tids[1024];
	size_t n_tids = list_tids(pid, tids, ARRAY_SIZE(tids));
	if (n_tids == 0)
		return;
	size_t unmatched = 0;
	for (size_t i = 0; i < py->n; i++) {
		bool found = false;
		for (size_t k = 0; k < n_tids && !found; k++)
			found = tids[k] == py->threads[i].tid;
		if (!found) {
			py->threads[i].tid = 0;
			unmatched++;
		}
	}
	/* A single thread state in a single-threaded process is that thread,
	 * whatever its recorded id (e.g. a state created before a fork that
	 * did not refresh it). */
	if (unmatched == 1 && py->n == 1 && n_tids == 1)
		py->threads[0].tid = tids[0];
}

/* ---- thread names (3.11/3.12) ------------------------------------------ */

#define MAX_DICT_ENTRIES 65536
#define TPFLAGS_MANAGED_DICT (1UL << 4)

/* Is the str at addr equal to s? Compact ASCII only: module and attribute
 * names are. */
static bool
unicode_equals(struct walk *w, uint64_t addr, const char *s)
{
	const struct py_layout *L = &w->L;
	unsigned char head[128];
	size_t head_len = MAX(L->unicode_state, L->unicode_length) + 8;
	if (!addr || mem_read(&w->rd, addr, head, head_len) < 0)
		return false;
	uint32_t state = le32(head + L->unicode_state);
	size_t len = strlen(s);
	if (!((state >> 5) & 1) || !((state >> 6) & 1) || le64(head + L->unicode_length) != len)
		return false;
	char data[64];
	if (len > sizeof(data) || mem_read(&w->rd, addr + L->unicode_ascii_size, data, len) < 0)
		return false;
	return memcmp(data, s, len) == 0;
}

struct dict_view {
	uint64_t entries; /* first entry */
	size_t entry_size, key_at, value_at;
	size_t n;	 /* dk_nentries, capped */
	uint64_t values; /* split table: the values array, else 0 */
};

/* PyDictKeysObject as 3.11 and 3.12 lay it out: dk_log2_index_bytes at 9,
 * dk_kind at 10, dk_nentries at 24, the index table at 32, then entries of
 * {hash, key, value} (general) or {key, value} (unicode, split). */
static int
keys_view(struct walk *w, uint64_t keys, struct dict_view *v)
{
	unsigned char head[40];
	int r = mem_read(&w->rd, keys, head, sizeof(head));
	if (r < 0)
		return r;
	unsigned log2_index_bytes = head[9], kind = head[10];
	uint64_t n = le64(head + 24);
	if (log2_index_bytes > 40 || kind > 2 || n > MAX_DICT_ENTRIES)
		return -EINVAL;
	*v = (struct dict_view){
	    .entries = keys + 32 + (1ULL << log2_index_bytes),
	    .entry_size = kind == 0 ? 24 : 16,
	    .key_at = kind == 0 ? 8 : 0,
	    .value_at = kind == 0 ? 16 : 8,
	    .n = (size_t)n,
	};
	return 0;
}

static int
dict_view(struct walk *w, uint64_t dict, struct dict_view *v)
{
	uint64_t keys, values;
	int r;
	if ((r = mem_read_u64(&w->rd, dict + 32, &keys)) < 0 ||
	    (r = mem_read_u64(&w->rd, dict + 40, &values)) < 0 || (r = keys_view(w, keys, v)) < 0)
		return r;
	v->values = values;
	return 0;
}

static int
dict_entry(struct walk *w, const struct dict_view *v, size_t i, uint64_t *ret_key,
	   uint64_t *ret_value)
{
	uint64_t at = v->entries + i * v->entry_size;
	int r = mem_read_u64(&w->rd, at + v->key_at, ret_key);
	if (r < 0)
		return r;
	if (v->values)
		return mem_read_u64(&w->rd, v->values + 8 * i, ret_value);
	return mem_read_u64(&w->rd, at + v->value_at, ret_value);
}

/* dict[key] for a str key; 0 when absent or unreadable. */
static uint64_t
dict_get(struct walk *w, uint64_t dict, const char *key)
{
	struct dict_view v;
	if (dict_view(w, dict, &v) < 0)
		return 0;
	for (size_t i = 0; i < v.n; i++) {
		uint64_t k, val;
		if (dict_entry(w, &v, i, &k, &val) < 0)
			return 0;
		if (k && val && unicode_equals(w, k, key))
			return val;
	}
	return 0;
}

/* An attribute from the managed dict (or split values) of an instance. */
static uint64_t
instance_attr(struct walk *w, uint64_t obj, const char *name)
{
	const struct py_layout *L = &w->L;
	uint64_t type, flags, dict = 0, values = 0;
	if (mem_read_u64(&w->rd, obj + L->object_type, &type) < 0 ||
	    mem_read_u64(&w->rd, type + L->type_flags, &flags) < 0 ||
	    !(flags & TPFLAGS_MANAGED_DICT))
		return 0;
	if (L->managed_dict_tagged) {
		uint64_t dorv;
		if (mem_read_u64(&w->rd, obj - 24, &dorv) < 0)
			return 0;
		if (dorv & 1) /* stored as values - 1 (_PyDictOrValues_SetValues) */
			values = dorv + 1;
		else
			dict = dorv;
	} else if (mem_read_u64(&w->rd, obj - 24, &dict) < 0 ||
		   mem_read_u64(&w->rd, obj - 32, &values) < 0) {
		return 0;
	}
	if (dict)
		return dict_get(w, dict, name);
	if (!values)
		return 0;
	/* Split table: the keys are the type's, the values the instance's. */
	uint64_t keys;
	struct dict_view v;
	if (mem_read_u64(&w->rd, type + L->heap_type_cached_keys, &keys) < 0 ||
	    keys_view(w, keys, &v) < 0)
		return 0;
	v.values = values;
	for (size_t i = 0; i < v.n; i++) {
		uint64_t k, val;
		if (dict_entry(w, &v, i, &k, &val) < 0)
			return 0;
		if (k && unicode_equals(w, k, name))
			return val;
	}
	return 0;
}

/* A small non-negative int (thread idents are pthread_t values). */
static int
read_ident(struct walk *w, uint64_t addr, unsigned long *ret)
{
	unsigned char head[40];
	int r = mem_read(&w->rd, addr, head, sizeof(head));
	if (r < 0)
		return r;
	uint64_t ndigits;
	if (w->L.long_tagged) {
		uint64_t tag = le64(head + 16);
		if ((tag & 3) == 2)
			return -EINVAL; /* negative */
		ndigits = tag >> 3;
	} else {
		int64_t size = (int64_t)le64(head + 16);
		if (size < 0)
			return -EINVAL;
		ndigits = (uint64_t)size;
	}
	if (ndigits > 3)
		return -EINVAL;
	uint32_t digits[3] = {0};
	if (ndigits && (r = mem_read(&w->rd, addr + 24, digits, ndigits * 4)) < 0)
		return r;
	uint64_t v = 0;
	for (size_t i = ndigits; i-- > 0;)
		v = (v << 30) | (digits[i] & 0x3fffffff);
	*ret = (unsigned long)v;
	return 0;
}

/* threading._active maps get_ident() to Thread objects: their _name. Best
 * effort: any failure leaves the names NULL. */
static void
read_thread_names(struct walk *w, uint64_t interp, struct py_thread *threads, size_t n)
{
	const struct py_layout *L = &w->L;
	if (L->interp_modules == NO_OFFSET || n == 0)
		return;
	uint64_t modules, threading, md_dict, active;
	if (mem_read_u64(&w->rd, interp + L->interp_modules, &modules) < 0 || !modules)
		return;
	if (!(threading = dict_get(w, modules, "threading")) ||
	    mem_read_u64(&w->rd, threading + 16, &md_dict) < 0 ||
	    !md_dict || /* PyModuleObject.md_dict */
	    !(active = dict_get(w, md_dict, "_active")))
		return;
	struct dict_view v;
	if (dict_view(w, active, &v) < 0)
		return;
	for (size_t i = 0; i < v.n && i < w->max_threads; i++) {
		uint64_t key, thread;
		unsigned long ident;
		if (dict_entry(w, &v, i, &key, &thread) < 0)
			return;
		if (!key || !thread || read_ident(w, key, &ident) < 0)
			continue;
		for (size_t k = 0; k < n; k++) {
			if (threads[k].thread_id != ident || threads[k].name)
				continue;
			uint64_t name = instance_attr(w, thread, "_name");
			if (name)
				(void)read_unicode(w, name, &threads[k].name);
		}
	}
}

static int
walk_interpreters(struct walk *w, uint64_t runtime, struct py_process *py)
{
	const struct py_layout *L = &w->L;
	uint64_t interp;
	int r = mem_read_u64(&w->rd, runtime + L->runtime_interpreters_head, &interp);
	if (r < 0)
		return r;
	if (interp == 0) {
		py->error = strdup("no interpreter yet (starting) or any more (finalized)");
		py->partial = true;
		return 0;
	}
	size_t cap = 0;
	uint64_t seen_interp[MAX_INTERPRETERS];
	size_t n_interp = 0;
	while (interp) {
		for (size_t i = 0; i < n_interp; i++)
			if (seen_interp[i] == interp)
				goto cut;
		if (n_interp >= MAX_INTERPRETERS)
			goto cut;
		seen_interp[n_interp++] = interp;

		uint64_t tstate, next_interp;
		if ((r = mem_read_u64(&w->rd, interp + L->interp_threads_head, &tstate)) < 0 ||
		    (r = mem_read_u64(&w->rd, interp + L->interp_next, &next_interp)) < 0)
			goto failed;
		uint64_t first_tstate = tstate;
		size_t in_this = 0;
		while (tstate) {
			if (py->n >= w->max_threads || in_this > w->max_threads)
				goto cut;
			/* The layout check: a thread state points back at its
			 * interpreter. Catches a wrong table entry at once. */
			uint64_t back;
			if ((r = mem_read_u64(&w->rd, tstate + L->tstate_interp, &back)) < 0)
				goto failed;
			if (back != interp) {
				if (py->n == 0 && tstate == first_tstate) {
					free(py->unsupported_reason);
					py->unsupported_reason = errorf(
					    "CPython %s: thread state does not point back at its "
					    "interpreter; layout (%s) does not match this build",
					    py->version ? py->version : "?", L->source);
					return 0;
				}
				goto cut;
			}
			if (py->n == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct py_thread *g = realloc(py->threads, ncap * sizeof(*g));
				if (!g)
					return -ENOMEM;
				py->threads = g;
				cap = ncap;
			}
			struct py_thread *t = &py->threads[py->n++];
			*t = (struct py_thread){0};
			r = read_thread(w, tstate, t);
			if (t->partial)
				py->partial = true;
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				goto failed;
			in_this++;
			if ((r = mem_read_u64(&w->rd, tstate + L->tstate_next, &tstate)) < 0)
				goto failed;
			if (tstate == first_tstate)
				goto cut;
		}
		read_thread_names(w, interp, py->threads + py->n - in_this, in_this);
		interp = next_interp;
	}
	return 0;
cut:
	py->partial = true;
	if (!py->error)
		py->error =
		    errorf("thread list cut (limit of %u threads, or a loop)", w->max_threads);
	return 0;
failed:
	py->partial = true;
	if (!py->error)
		py->error = errorf("reading the thread list: %s", strerror(-r));
	return r == -ESRCH ? r : 0;
}

/* 3.13+: the layout from the _Py_DebugOffsets at the start of _PyRuntime. */
static int
layout_from_debug_offsets(struct reader *rd, uint64_t runtime, uint64_t runtime_size,
			  unsigned minor, struct py_layout *ret, char **ret_unsupported)
{
	const struct debug_index *ix = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(debug_indexes); i++)
		if (debug_indexes[i].minor == minor)
			ix = &debug_indexes[i];
	if (!ix) {
		*ret_unsupported = errorf("CPython 3.%u: the layout of its _Py_DebugOffsets is not "
					  "known to this forkscope (3.13 and 3.14 are)",
					  minor);
		return 0;
	}
	uint64_t words[MAX_DEBUG_WORDS];
	int r = mem_read(rd, runtime, words, (size_t)ix->n_words * 8);
	if (r < 0)
		return r;
	if (memcmp(words, "xdebugpy", 8) != 0) {
		*ret_unsupported = strdup("_PyRuntime does not start with the \"xdebugpy\" cookie");
		return 0;
	}
	if (((words[1] >> 16) & 0xff) != minor) {
		*ret_unsupported =
		    errorf("_Py_DebugOffsets says version 0x%" PRIx64 ", Py_Version says 3.%u",
			   words[1], minor);
		return 0;
	}
	if (words[ix->free_threaded]) {
		*ret_unsupported = errorf("CPython 3.%u free-threaded build: not supported", minor);
		return 0;
	}
	/* The symbol's size is the struct's: a cheap check that the indexes
	 * below read the words they mean to. */
	if (runtime_size && words[ix->runtime_size] != runtime_size) {
		*ret_unsupported =
		    errorf("_Py_DebugOffsets of CPython 3.%u does not have the "
			   "expected layout (runtime size %" PRIu64 " vs symbol %" PRIu64 ")",
			   minor, words[ix->runtime_size], runtime_size);
		return 0;
	}
	const uint64_t limit = 1 << 20; /* any offset beyond this is garbage */
	const uint8_t used[] = {ix->interpreters_head,	 ix->interp_next,
				ix->interp_threads_head, ix->tstate_next,
				ix->tstate_interp,	 ix->tstate_current_frame,
				ix->tstate_thread_id,	 ix->tstate_native_thread_id,
				ix->frame_previous,	 ix->frame_executable,
				ix->frame_instr_ptr,	 ix->frame_owner,
				ix->code_filename,	 ix->code_name,
				ix->code_qualname,	 ix->code_linetable,
				ix->code_firstlineno,	 ix->code_adaptive,
				ix->object_type,	 ix->type_name,
				ix->bytes_size,		 ix->bytes_data,
				ix->unicode_state,	 ix->unicode_length,
				ix->unicode_ascii_size};
	for (size_t i = 0; i < ARRAY_SIZE(used); i++)
		if (words[used[i]] >= limit) {
			*ret_unsupported = errorf("_Py_DebugOffsets of CPython 3.%u: implausible "
						  "offset %" PRIu64 " in word %u",
						  minor, words[used[i]], used[i]);
			return 0;
		}
	/* Frame and unicode fields are read from one buffer: keep them small. */
	if (words[ix->frame_previous] > 96 || words[ix->frame_executable] > 96 ||
	    words[ix->frame_instr_ptr] > 96 || words[ix->frame_owner] > 120 ||
	    words[ix->unicode_state] > 96 || words[ix->unicode_length] > 96) {
		*ret_unsupported = errorf("_Py_DebugOffsets of CPython 3.%u: frame or str fields "
					  "further than this reader expects",
					  minor);
		return 0;
	}
	*ret = (struct py_layout){
	    .minor = minor,
	    .source = "_Py_DebugOffsets",
	    .runtime_interpreters_head = (uint32_t)words[ix->interpreters_head],
	    .interp_next = (uint32_t)words[ix->interp_next],
	    .interp_threads_head = (uint32_t)words[ix->interp_threads_head],
	    .tstate_next = (uint32_t)words[ix->tstate_next],
	    .tstate_interp = (uint32_t)words[ix->tstate_interp],
	    .tstate_thread_id = (uint32_t)words[ix->tstate_thread_id],
	    .tstate_native_thread_id = (uint32_t)words[ix->tstate_native_thread_id],
	    .tstate_cframe = NO_OFFSET,
	    .cframe_current_frame = NO_OFFSET,
	    .tstate_current_frame = (uint32_t)words[ix->tstate_current_frame],
	    .frame_code = (uint32_t)words[ix->frame_executable],
	    .frame_previous = (uint32_t)words[ix->frame_previous],
	    .frame_instr = (uint32_t)words[ix->frame_instr_ptr],
	    .frame_owner = (uint32_t)words[ix->frame_owner],
	    .frame_is_entry = NO_OFFSET,
	    .code_filename = (uint32_t)words[ix->code_filename],
	    .code_name = (uint32_t)words[ix->code_name],
	    .code_qualname = (uint32_t)words[ix->code_qualname],
	    .code_firstlineno = (uint32_t)words[ix->code_firstlineno],
	    .code_linetable = (uint32_t)words[ix->code_linetable],
	    .code_adaptive = (uint32_t)words[ix->code_adaptive],
	    .object_type = (uint32_t)words[ix->object_type],
	    .type_name = (uint32_t)words[ix->type_name],
	    .bytes_size = (uint32_t)words[ix->bytes_size],
	    .bytes_data = (uint32_t)words[ix->bytes_data],
	    .unicode_length = (uint32_t)words[ix->unicode_length],
	    .unicode_state = (uint32_t)words[ix->unicode_state],
	    .unicode_ascii_size = (uint32_t)words[ix->unicode_ascii_size],
	    /* utf8_length and utf8 follow PyASCIIObject in every 3.12+ */
	    .unicode_compact_size = (uint32_t)words[ix->unicode_ascii_size] + 16,
	    .owner_not_python = ix->owner_not_python,
	    .executable_tagged = ix->executable_tagged,
	};
	return 0;
}

static char *
version_string(uint64_t hex)
{
	unsigned major = (hex >> 24) & 0xff, minor = (hex >> 16) & 0xff, micro = (hex >> 8) & 0xff;
	unsigned level = (hex >> 4) & 0xf, serial = hex & 0xf;
	const char *tag = level == 0xa ? "a" : level == 0xb ? "b" : level == 0xc ? "rc" : "";
	if (level == 0xf)
		return errorf("%u.%u.%u", major, minor, micro);
	return errorf("%u.%u.%u%s%u", major, minor, micro, tag, serial);
}

/* "3.10" out of "libpython3.10.so.1.0" or "python3.10", for the message. */
static char *
version_from_name(const char *base)
{
	const char *p = strstr(base, "python");
	if (!p)
		return NULL;
	p += 6;
	size_t n = strspn(p, "0123456789.");
	while (n && p[n - 1] == '.')
		n--;
	return n ? strndup(p, n) : NULL;
}

int
python_read_with(pid_t pid, const struct python_read_options *opts, struct py_process **ret)
{
	if (pid <= 0 || !ret)
		return -EINVAL;
	struct located loc = {0};
	int r = locate_interpreter(pid, &loc);
	if (r < 0)
		return r;
	_cleanup_free_ char *loc_path = loc.path;
	_cleanup_free_ char *other = loc.other_python;

	struct py_process *py = calloc(1, sizeof(*py));
	if (!py)
		return -ENOMEM;
	py->pid = pid;
	struct walk w = {
	    .rd = {.pid = pid, .mem_fd = -1},
	    .max_frames = opts && opts->max_frames ? opts->max_frames : DEFAULT_MAX_FRAMES,
	    .max_threads = opts && opts->max_threads ? opts->max_threads : DEFAULT_MAX_THREADS,
	    .frozen = opts && opts->frozen,
	};
	/* No cache is no error: every read goes to the target instead. */
	w.rd.pages = calloc(READ_PAGES, sizeof(*w.rd.pages));

	if (!loc.found) {
		_cleanup_free_ char *v = version_from_name(other);
		if (strstr(other, "pypy"))
			py->unsupported_reason =
			    strdup("PyPy: its frames are not CPython's; native frames only");
		else
			py->unsupported_reason =
			    errorf("Python %s (%s) has no _PyRuntime: CPython 3.11 or newer "
				   "is needed; native frames only",
				   v ? v : "2.x or unknown", other);
		py->module = strdup(other);
		if (!py->unsupported_reason || !py->module)
			goto enomem;
		goto done;
	}
	if (!(py->module = strdup(path_basename(loc.path))))
		goto enomem;
	uint64_t runtime = loc.bias + loc.elf.runtime_vaddr;
	if (!loc.elf.has_version) {
		/* _PyRuntime exists since 3.7, Py_Version since 3.11. */
		_cleanup_free_ char *v = version_from_name(py->module);
		py->unsupported_reason =
		    errorf("CPython %s (no Py_Version: older than 3.11); native "
			   "frames only",
			   v ? v : "3.7 to 3.10");
		if (!py->unsupported_reason)
			goto enomem;
		goto done;
	}
	uint64_t hex = 0;
	if ((r = mem_read_u64(&w.rd, loc.bias + loc.elf.version_vaddr, &hex)) < 0)
		goto fail;
	hex &= 0xffffffff; /* unsigned long, value fits 32 bits */
	if (!(py->version = version_string(hex)))
		goto enomem;
	unsigned major = (hex >> 24) & 0xff, minor = (hex >> 16) & 0xff;
	if (major != 3 || minor < 11) {
		py->unsupported_reason = errorf(
		    "CPython %s: only 3.11 and newer are read; native frames only", py->version);
		if (!py->unsupported_reason)
			goto enomem;
		goto done;
	}
	if (minor >= 13) {
		char *unsupported = NULL;
		r = layout_from_debug_offsets(&w.rd, runtime, loc.elf.runtime_size, minor, &w.L,
					      &unsupported);
		if (r < 0)
			goto fail;
		if (unsupported) {
			py->unsupported_reason = unsupported;
			goto done;
		}
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(version_layouts); i++)
			if (version_layouts[i].minor == minor)
				w.L = version_layouts[i];
	}

	w.codes = calloc(CODE_CACHE_SLOTS, sizeof(*w.codes));
	if (!w.codes)
		goto enomem;
	r = walk_interpreters(&w, runtime, py);
	for (size_t i = 0; i < CODE_CACHE_SLOTS; i++)
		code_info_clear(&w.codes[i]);
	free(w.codes);
	if (r == -ENOMEM)
		goto enomem;
	if (r == -ESRCH && py->n == 0)
		goto fail;
	if (r < 0) {
		py->partial = true;
		if (!py->error)
			py->error = errorf("target gone while read: %s", strerror(-r));
	}
	if (py->unsupported_reason) {
		for (size_t i = 0; i < py->n; i++)
			py_thread_clear(&py->threads[i]);
		py->n = 0;
	}
	match_threads(pid, py);
done:
	if (w.rd.mem_fd >= 0)
		(void)close(w.rd.mem_fd);
	free(w.rd.pages);
	*ret = py;
	return 0;
enomem:
	r = -ENOMEM;
fail:
	if (w.rd.mem_fd >= 0)
		(void)close(w.rd.mem_fd);
	free(w.rd.pages);
	py_process_free(py);
	return r;
}

int
python_read(pid_t pid, struct py_process **ret)
{
	return python_read_with(pid, NULL, ret);
}

void
py_process_free(struct py_process *py)
{
	if (!py)
		return;
	for (size_t i = 0; i < py->n; i++)
		py_thread_clear(&py->threads[i]);
	free(py->threads);
	free(py->version);
	free(py->module);
	free(py->unsupported_reason);
	free(py->error);
	free(py);
}

/* ---- native interleaving ----------------------------------------------- */

char *
py_frame_text(const struct py_frame *f)
{
	char *s = NULL;
	const char *name = f->qualname ? f->qualname : f->function ? f->function : "?";
	if (f->line > 0)
		s = errorf("%s (%s:%d)", name, f->file ? f->file : "?", f->line);
	else
		s = errorf("%s (%s)", name, f->file ? f->file : "?");
	return s;
}

static bool
is_eval_frame(const struct frame *f)
{
	return f->pc != 0 && !f->inlined && f->function &&
	       strcmp(f->function, "_PyEval_EvalFrameDefault") == 0;
}

static int
attach_thread(const struct py_thread *pt, struct thread_stack *ts)
{
	size_t total = ts->n_frames + pt->n_frames;
	struct frame *out = calloc(total ? total : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	/* Build the Python entries first so a failure leaves ts untouched. */
	struct frame *pyf = calloc(pt->n_frames ? pt->n_frames : 1, sizeof(*pyf));
	if (!pyf) {
		free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < pt->n_frames; i++) {
		const struct py_frame *p = &pt->frames[i];
		pyf[i] = (struct frame){
		    .file = strdup_or_null(p->file), .line = p->line, .python = py_frame_text(p)};
		if (!pyf[i].python || (p->file && !pyf[i].file)) {
			frames_free(pyf, i + 1);
			free(out);
			return -ENOMEM;
		}
	}
	/* Innermost first on both sides: the k-th eval frame from the top runs
	 * the k-th segment of Python frames, a segment ending at an entry frame. */
	size_t n = 0, next_py = 0;
	for (size_t i = 0; i < ts->n_frames; i++) {
		if (is_eval_frame(&ts->frames[i]))
			while (next_py < pt->n_frames) {
				bool entry = pt->frames[next_py].entry;
				out[n++] = pyf[next_py++];
				if (entry)
					break;
			}
		out[n++] = ts->frames[i];
	}
	while (next_py < pt->n_frames)
		out[n++] = pyf[next_py++];
	free(pyf);
	free(ts->frames);
	ts->frames = out;
	ts->n_frames = n;
	if (pt->partial) {
		ts->partial = true;
		char *e = errorf("%s%spython: %s", ts->error ? ts->error : "",
				 ts->error ? "; " : "", pt->error ? pt->error : "partial");
		if (e) {
			free(ts->error);
			ts->error = e;
		}
	}
	return (int)pt->n_frames;
}

int
python_attach_frames(const struct py_process *py, struct thread_stack *threads, size_t n)
{
	if (!py || (!threads && n))
		return -EINVAL;
	int total = 0;
	for (size_t i = 0; i < py->n; i++) {
		const struct py_thread *pt = &py->threads[i];
		if (pt->tid <= 0 || pt->n_frames == 0)
			continue;
		for (size_t k = 0; k < n; k++) {
			if (threads[k].tid != pt->tid)
				continue;
			int r = attach_thread(pt, &threads[k]);
			if (r < 0)
				return r;
			total += r;
			break;
		}
	}
	return total;
}

void
python_stacks_frozen(pid_t pid, struct thread_stack *threads, size_t n_threads, void *userdata)
{
	struct py_process **out = userdata;
	struct py_process *py = NULL;
	const struct python_read_options opts = {.frozen = true};
	if (out)
		*out = NULL;
	if (python_read_with(pid, &opts, &py) < 0)
		return;
	(void)python_attach_frames(py, threads, n_threads);
	if (out)
		*out = py;
	else
		py_process_free(py);
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *
jstr(const char *s)
{
	return s ? json_string_lossy(s, strlen(s)) : json_null();
}

json_t *
python_process_to_json(const struct py_process *py)
{
	if (!py)
		return json_null();
	json_t *o = json_object();
	json_t *threads = json_array();
	if (!o || !threads)
		goto fail;
	int e = 0;
	e |= json_object_set_new(o, "pid", json_integer(py->pid));
	e |= json_object_set_new(o, "version", jstr(py->version));
	e |= json_object_set_new(o, "module", jstr(py->module));
	e |= json_object_set_new(o, "partial", json_boolean(py->partial));
	e |= json_object_set_new(o, "error", jstr(py->error));
	e |= json_object_set_new(o, "unsupported_reason", jstr(py->unsupported_reason));
	for (size_t i = 0; i < py->n; i++) {
		const struct py_thread *t = &py->threads[i];
		json_t *to = json_object(), *frames = json_array();
		if (!to || !frames) {
			json_decref(to);
			json_decref(frames);
			goto fail;
		}
		e |= json_object_set_new(to, "tid", json_integer(t->tid));
		e |= json_object_set_new(to, "thread_id", json_u64(t->thread_id));
		e |= json_object_set_new(to, "name", jstr(t->name));
		e |= json_object_set_new(to, "partial", json_boolean(t->partial));
		e |= json_object_set_new(to, "error", jstr(t->error));
		for (size_t k = 0; k < t->n_frames; k++) {
			const struct py_frame *f = &t->frames[k];
			json_t *fo = json_object();
			if (!fo) {
				e = -1;
				break;
			}
			e |= json_object_set_new(fo, "function", jstr(f->function));
			e |= json_object_set_new(fo, "qualname", jstr(f->qualname));
			e |= json_object_set_new(fo, "file", jstr(f->file));
			e |= json_object_set_new(fo, "line", json_integer(f->line));
			e |= json_object_set_new(fo, "entry", json_boolean(f->entry));
			e |= json_array_append_new(frames, fo);
		}
		e |= json_object_set_new(to, "frames", frames);
		e |= json_array_append_new(threads, to);
	}
	e |= json_object_set_new(o, "threads", threads);
	threads = NULL;
	if (e)
		goto fail;
	return o;
fail:
	json_decref(threads);
	json_decref(o);
	return NULL;
}
