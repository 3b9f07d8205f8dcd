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
#include "probes/stacks_internal.h"

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

const Dwfl_Callbacks stacks_offline_callbacks = {
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
						: stacks_errorf("PTRACE_GETREGSET: %s", strerror(e)));
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
		*ret_reason = stacks_errorf("dwfl_begin: %s", dwfl_errmsg(-1));
		layout_free(l);
		return -ENOMEM;
	}
	dwfl_report_begin(l->dwfl);
	for (size_t i = 0; i < n; i++) {
		Dwfl_Module *mod = dwfl_report_module(l->dwfl, mods[i].path, mods[i].low, mods[i].high);
		void **userdata = NULL;
		if (!mod || !dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL)) {
			*ret_reason = stacks_errorf("dwfl_report_module %s pid %d: %s", mods[i].path,
					     (int) pid, dwfl_errmsg(-1));
			layout_free(l);
			return -EIO;
		}
		*userdata = &mods[i];
	}
	if (dwfl_report_end(l->dwfl, NULL, NULL) != 0) {
		*ret_reason = stacks_errorf("dwfl_report_end pid %d: %s", (int) pid, dwfl_errmsg(-1));
		layout_free(l);
		return -EIO;
	}
	if (!dwfl_attach_state(l->dwfl, NULL, pid, &unwind_callbacks, &l->target)) {
		*ret_reason = stacks_errorf("dwfl_attach_state pid %d: %s", (int) pid, dwfl_errmsg(-1));
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
		*ret_reason = stacks_errorf("read %s: %s", path, strerror(-r));
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
		_cleanup_free_ char *hex = stacks_hex_string(bits, (size_t) len);
		name = hex ? stacks_errorf("build-id:%s", hex) : NULL;
	} else {
		name = stacks_errorf("file:%s:%u:%u:%" PRIu64, o->path, o->dev_major, o->dev_minor, o->ino);
	}
	if (!name)
		return NULL;
	o->identity = identity_intern(cache, name);
	free(name);
	return o->identity;
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
		thread_set_error(ft, stacks_errorf("dwfl_frame_pc: %s", dwfl_errmsg(-1)));
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
		thread_set_error(ft, stacks_errorf("stopped at %u frames (max_frames)", t->max_frames));
	} else if (r != 0 && r != DWARF_CB_ABORT) {
		/* dwfl_thread_getframes reports the end of some stacks as an
		 * error too: only call it partial when libdwfl names one. */
		int err = dwfl_errno();
		if (err != 0 || ft->n_frames == 0)
			thread_set_error(ft, stacks_errorf("dwfl_thread_getframes tid %d: %s", (int) tid,
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
		out->error = stacks_errorf("stopped at %u frames (max_frames)", max_frames);
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

	job->r = stacks_freeze_process(&fz, &job->reason);
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
	stacks_thaw_process(&fz);
	for (size_t i = 0; i < fz.n; i++)
		if (fz.threads[i].attached)
			job->left_attached = true;

	/* Symbolize after detaching when nobody needs names while frozen: the
	 * freeze lasts only as long as the unwind. */
	if (job->r == 0 && !built)
		job->r = build_result(job->cache, layout, &fz, &job->opts, &job->threads,
				      &job->n_threads);
	stacks_freeze_free(&fz);
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
