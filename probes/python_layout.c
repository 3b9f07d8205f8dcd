/* Where CPython keeps what the walk reads: per-version tables for 3.11/3.12,
 * _Py_DebugOffsets for 3.13+. */
#include "probes/python_internal.h"

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

/* 3.13+: the layout from the _Py_DebugOffsets at the start of _PyRuntime. */
int
layout_from_debug_offsets(struct reader *rd, uint64_t runtime, uint64_t runtime_size,
			  unsigned minor, struct py_layout *ret, char **ret_unsupported)
{
	const struct debug_index *ix = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(debug_indexes); i++)
		if (debug_indexes[i].minor == minor)
			ix = &debug_indexes[i];
	if (!ix) {
		*ret_unsupported = python_errorf("CPython 3.%u: the layout of its _Py_DebugOffsets is not "
					  "known to this forkscope (3.13 and 3.14 are)",
					  minor);
		return 0;
	}
	uint64_t words[MAX_DEBUG_WORDS];
	int r = py_mem_read(rd, runtime, words, (size_t)ix->n_words * 8);
	if (r < 0)
		return r;
	if (memcmp(words, "xdebugpy", 8) != 0) {
		*ret_unsupported = strdup("_PyRuntime does not start with the \"xdebugpy\" cookie");
		return 0;
	}
	if (((words[1] >> 16) & 0xff) != minor) {
		*ret_unsupported =
		    python_errorf("_Py_DebugOffsets says version 0x%" PRIx64 ", Py_Version says 3.%u",
			   words[1], minor);
		return 0;
	}
	if (words[ix->free_threaded]) {
		*ret_unsupported = python_errorf("CPython 3.%u free-threaded build: not supported", minor);
		return 0;
	}
	/* The symbol's size is the struct's: a cheap check that the indexes
	 * below read the words they mean to. */
	if (runtime_size && words[ix->runtime_size] != runtime_size) {
		*ret_unsupported =
		    python_errorf("_Py_DebugOffsets of CPython 3.%u does not have the "
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
			*ret_unsupported = python_errorf("_Py_DebugOffsets of CPython 3.%u: implausible "
						  "offset %" PRIu64 " in word %u",
						  minor, words[used[i]], used[i]);
			return 0;
		}
	/* Frame and unicode fields are read from one buffer: keep them small. */
	if (words[ix->frame_previous] > 96 || words[ix->frame_executable] > 96 ||
	    words[ix->frame_instr_ptr] > 96 || words[ix->frame_owner] > 120 ||
	    words[ix->unicode_state] > 96 || words[ix->unicode_length] > 96) {
		*ret_unsupported = python_errorf("_Py_DebugOffsets of CPython 3.%u: frame or str fields "
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

char *
py_version_string(uint64_t hex)
{
	unsigned major = (hex >> 24) & 0xff, minor = (hex >> 16) & 0xff, micro = (hex >> 8) & 0xff;
	unsigned level = (hex >> 4) & 0xf, serial = hex & 0xf;
	const char *tag = level == 0xa ? "a" : level == 0xb ? "b" : level == 0xc ? "rc" : "";
	if (level == 0xf)
		return python_errorf("%u.%u.%u", major, minor, micro);
	return python_errorf("%u.%u.%u%s%u", major, minor, micro, tag, serial);
}

/* "3.10" out of "libpython3.10.so.1.0" or "python3.10", for the message. */
char *
py_version_from_name(const char *base)
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


const struct py_layout *
python_layout_for_minor(unsigned minor)
{
	for (size_t i = 0; i < ARRAY_SIZE(version_layouts); i++)
		if (version_layouts[i].minor == minor)
			return &version_layouts[i];
	return NULL;
}
