#pragma once
/* Private to probes/python*.c: the layout tables (python_layout.c), the
 * memory reader and walk (python.c), thread names (python_names.c) and the
 * native interleaving and JSON (python_output.c). */

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

/* ---- helpers shared by the python*.c files ---- */

static inline const char *
path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static inline uint64_t
le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t
le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

char *python_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The 3.11/3.12 table entry of that minor version, NULL if none. */
const struct py_layout *python_layout_for_minor(unsigned minor);

/* python.c */
int py_mem_read(struct reader *rd, uint64_t addr, void *buf, size_t len);
int py_mem_read_u64(struct reader *rd, uint64_t addr, uint64_t *ret);
int py_read_unicode(struct walk *w, uint64_t addr, char **ret);
char *py_strdup_or_null(const char *s);

/* python_names.c */
void read_thread_names(struct walk *w, uint64_t interp, struct py_thread *threads, size_t n);

/* python_layout.c */
int layout_from_debug_offsets(struct reader *rd, uint64_t runtime, uint64_t runtime_size,
			      unsigned minor, struct py_layout *ret, char **ret_unsupported);
char *py_version_string(uint64_t hex);
char *py_version_from_name(const char *base);
