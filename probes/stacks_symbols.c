/* Symbolization: the (build-id, address) symbol cache, inline chains, and
 * offline symbolization of recorded raw stacks. */
#include "probes/stacks_internal.h"

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

/* ---- symbol cache ---------------------------------------------------- */

const char *
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

char *
stacks_hex_string(const unsigned char *bits, size_t len)
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

void
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
const struct sym_entry *
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

int
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

/* ---- offline symbolization ------------------------------------------- */

void
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
	of->dwfl = dwfl_begin(&stacks_offline_callbacks);
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
	_cleanup_free_ char *hex = len > 0 ? stacks_hex_string(bits, (size_t) len) : NULL;
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
		hex ? stacks_errorf("build-id:%s", hex)
		    : stacks_errorf("file:%s:%u:%u:%" PRIu64, of->path, major(st.st_dev), minor(st.st_dev),
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
