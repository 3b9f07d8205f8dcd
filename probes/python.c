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
#include "probes/python_internal.h"

char *
python_errorf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}


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

int
py_mem_read(struct reader *rd, uint64_t addr, void *buf, size_t len)
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

int
py_mem_read_u64(struct reader *rd, uint64_t addr, uint64_t *ret)
{
	unsigned char b[8];
	int r = py_mem_read(rd, addr, b, sizeof(b));
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
int
py_read_unicode(struct walk *w, uint64_t addr, char **ret)
{
	const struct py_layout *L = &w->L;
	unsigned char head[128];
	size_t head_len = MAX(L->unicode_state, L->unicode_length) + 8;
	if (head_len > sizeof(head))
		return -EINVAL;
	int r = py_mem_read(&w->rd, addr, head, head_len);
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
	if (chars && (r = py_mem_read(&w->rd, data, raw, chars * kind)) < 0)
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
	int r = py_mem_read_u64(&w->rd, addr + w->L.bytes_size, &size);
	if (r < 0)
		return r;
	if (size > MAX_LINETABLE_BYTES)
		return -E2BIG;
	unsigned char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	if (size && (r = py_mem_read(&w->rd, addr + w->L.bytes_data, buf, size)) < 0) {
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
	int r = py_mem_read_u64(&w->rd, addr + w->L.object_type, &type);
	if (r < 0)
		return r;
	if (w->code_type)
		return type == w->code_type ? 0 : -EINVAL;
	uint64_t name_ptr;
	char name[8] = {0};
	if ((r = py_mem_read_u64(&w->rd, type + w->L.type_name, &name_ptr)) < 0 ||
	    (r = py_mem_read(&w->rd, name_ptr, name, 5)) < 0)
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
	if ((r = py_mem_read_u64(&w->rd, addr + L->code_name, &name)) < 0 ||
	    (r = py_mem_read_u64(&w->rd, addr + L->code_qualname, &qualname)) < 0 ||
	    (r = py_mem_read_u64(&w->rd, addr + L->code_filename, &filename)) < 0 ||
	    (r = py_mem_read_u64(&w->rd, addr + L->code_linetable, &linetable)) < 0 ||
	    (r = py_mem_read(&w->rd, addr + L->code_firstlineno, lineno, 4)) < 0)
		return r;
	*c = (struct code_info){.addr = addr, .firstlineno = (int)le32(lineno)};
	if ((r = py_read_unicode(w, name, &c->name)) < 0 ||
	    (r = py_read_unicode(w, filename, &c->filename)) < 0)
		goto fail;
	if (py_read_unicode(w, qualname, &c->qualname) < 0)
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

char *
py_strdup_or_null(const char *s)
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
		return py_mem_read_u64(&w->rd, tstate + L->tstate_current_frame, ret);
	uint64_t cframe;
	int r = py_mem_read_u64(&w->rd, tstate + L->tstate_cframe, &cframe);
	if (r < 0)
		return r;
	if (cframe == 0) {
		*ret = 0;
		return 0;
	}
	return py_mem_read_u64(&w->rd, cframe + L->cframe_current_frame, ret);
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
				thread_fail(t, python_errorf("frame chain loops at 0x%" PRIx64, frame));
				return 0;
			}
		if (n_seen >= w->max_frames) {
			thread_fail(t, python_errorf("stopped at %u frames (max_frames)", w->max_frames));
			return 0;
		}
		seen[n_seen++] = frame;

		unsigned char buf[128];
		int r = py_mem_read(&w->rd, frame, buf, span);
		if (r < 0) {
			thread_fail(t, python_errorf("frame at 0x%" PRIx64 ": %s", frame, strerror(-r)));
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
			thread_fail(t, python_errorf("code object at 0x%" PRIx64 ": %s", code,
					      r == -EINVAL ? "not a code object" : strerror(-r)));
			return r == -ESRCH ? r : 0;
		}
		if ((r = frames_push(t, &cap)) < 0)
			return r;
		int64_t offset = (int64_t)(instr - (code + L->code_adaptive));
		struct py_frame *f = &t->frames[t->n_frames];
		*f = (struct py_frame){
		    .function = strdup(c->name),
		    .qualname = py_strdup_or_null(c->qualname),
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
	if ((r = py_mem_read_u64(&w->rd, tstate + L->tstate_thread_id, &thread_id)) < 0 ||
	    (r = py_mem_read_u64(&w->rd, tstate + L->tstate_native_thread_id, &native)) < 0 ||
	    (r = current_frame_of(w, tstate, &frame)) < 0) {
		thread_fail(t, python_errorf("thread state at 0x%" PRIx64 ": %s", tstate, strerror(-r)));
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
			same = py_mem_read_u64(&w->rd, frame + L->frame_instr, &instr) == 0 &&
			       py_mem_read_u64(&w->rd, frame + L->frame_code, &code) == 0;
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

static int
walk_interpreters(struct walk *w, uint64_t runtime, struct py_process *py)
{
	const struct py_layout *L = &w->L;
	uint64_t interp;
	int r = py_mem_read_u64(&w->rd, runtime + L->runtime_interpreters_head, &interp);
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
		if ((r = py_mem_read_u64(&w->rd, interp + L->interp_threads_head, &tstate)) < 0 ||
		    (r = py_mem_read_u64(&w->rd, interp + L->interp_next, &next_interp)) < 0)
			goto failed;
		uint64_t first_tstate = tstate;
		size_t in_this = 0;
		while (tstate) {
			if (py->n >= w->max_threads || in_this > w->max_threads)
				goto cut;
			/* The layout check: a thread state points back at its
			 * interpreter. Catches a wrong table entry at once. */
			uint64_t back;
			if ((r = py_mem_read_u64(&w->rd, tstate + L->tstate_interp, &back)) < 0)
				goto failed;
			if (back != interp) {
				if (py->n == 0 && tstate == first_tstate) {
					free(py->unsupported_reason);
					py->unsupported_reason = python_errorf(
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
			if ((r = py_mem_read_u64(&w->rd, tstate + L->tstate_next, &tstate)) < 0)
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
		    python_errorf("thread list cut (limit of %u threads, or a loop)", w->max_threads);
	return 0;
failed:
	py->partial = true;
	if (!py->error)
		py->error = python_errorf("reading the thread list: %s", strerror(-r));
	return r == -ESRCH ? r : 0;
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
		_cleanup_free_ char *v = py_version_from_name(other);
		if (strstr(other, "pypy"))
			py->unsupported_reason =
			    strdup("PyPy: its frames are not CPython's; native frames only");
		else
			py->unsupported_reason =
			    python_errorf("Python %s (%s) has no _PyRuntime: CPython 3.11 or newer "
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
		_cleanup_free_ char *v = py_version_from_name(py->module);
		py->unsupported_reason =
		    python_errorf("CPython %s (no Py_Version: older than 3.11); native "
			   "frames only",
			   v ? v : "3.7 to 3.10");
		if (!py->unsupported_reason)
			goto enomem;
		goto done;
	}
	uint64_t hex = 0;
	if ((r = py_mem_read_u64(&w.rd, loc.bias + loc.elf.version_vaddr, &hex)) < 0)
		goto fail;
	hex &= 0xffffffff; /* unsigned long, value fits 32 bits */
	if (!(py->version = py_version_string(hex)))
		goto enomem;
	unsigned major = (hex >> 24) & 0xff, minor = (hex >> 16) & 0xff;
	if (major != 3 || minor < 11) {
		py->unsupported_reason = python_errorf(
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
		w.L = *python_layout_for_minor(minor);
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
			py->error = python_errorf("target gone while read: %s", strerror(-r));
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

