#pragma once
/* Private to probes/stacks*.c: shared state of the capture (stacks.c),
 * the freeze (stacks_freeze.c) and the symbol caches (stacks_symbols.c). */

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


struct freeze {
	pid_t pid;
	struct frozen_thread *threads;
	size_t n, cap;
};

/* ---- small helpers shared by the three files ---- */

static inline uint64_t
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

static inline char *
strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static inline const char *
path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}


/* stacks_freeze.c */
char *stacks_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void thread_set_error(struct frozen_thread *ft, char *error);
/* Freeze every thread of fz->pid; a reason for a partial or failed freeze. */
int stacks_freeze_process(struct freeze *fz, char **ret_reason);
void stacks_thaw_process(struct freeze *fz);
void stacks_freeze_free(struct freeze *fz);

/* stacks.c: Dwfl callbacks for files read offline (no live process). */
extern const Dwfl_Callbacks stacks_offline_callbacks;

/* stacks_symbols.c */
const char *identity_intern(struct stack_cache *cache, const char *name);
char *stacks_hex_string(const unsigned char *bits, size_t len);
void symbols_flush(struct stack_cache *cache);
const struct sym_entry *symbol_lookup(struct stack_cache *cache, const char *identity, uint64_t rel,
				      bool lines, Dwfl_Module *mod, Dwarf_Addr addr);
void offline_file_free(struct offline_file *of);
int frame_from_sym(struct frame *out, uint64_t pc, const char *module, const struct sym_frame *sf,
		   uint64_t offset_shift);
