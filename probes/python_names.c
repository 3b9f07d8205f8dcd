/* Thread names of CPython 3.11/3.12: threading._active read out of the
 * interpreter's modules dict. */
#include "probes/python_internal.h"

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
	if (!addr || py_mem_read(&w->rd, addr, head, head_len) < 0)
		return false;
	uint32_t state = le32(head + L->unicode_state);
	size_t len = strlen(s);
	if (!((state >> 5) & 1) || !((state >> 6) & 1) || le64(head + L->unicode_length) != len)
		return false;
	char data[64];
	if (len > sizeof(data) || py_mem_read(&w->rd, addr + L->unicode_ascii_size, data, len) < 0)
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
	int r = py_mem_read(&w->rd, keys, head, sizeof(head));
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
	if ((r = py_mem_read_u64(&w->rd, dict + 32, &keys)) < 0 ||
	    (r = py_mem_read_u64(&w->rd, dict + 40, &values)) < 0 || (r = keys_view(w, keys, v)) < 0)
		return r;
	v->values = values;
	return 0;
}

static int
dict_entry(struct walk *w, const struct dict_view *v, size_t i, uint64_t *ret_key,
	   uint64_t *ret_value)
{
	uint64_t at = v->entries + i * v->entry_size;
	int r = py_mem_read_u64(&w->rd, at + v->key_at, ret_key);
	if (r < 0)
		return r;
	if (v->values)
		return py_mem_read_u64(&w->rd, v->values + 8 * i, ret_value);
	return py_mem_read_u64(&w->rd, at + v->value_at, ret_value);
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
	if (py_mem_read_u64(&w->rd, obj + L->object_type, &type) < 0 ||
	    py_mem_read_u64(&w->rd, type + L->type_flags, &flags) < 0 ||
	    !(flags & TPFLAGS_MANAGED_DICT))
		return 0;
	if (L->managed_dict_tagged) {
		uint64_t dorv;
		if (py_mem_read_u64(&w->rd, obj - 24, &dorv) < 0)
			return 0;
		if (dorv & 1) /* stored as values - 1 (_PyDictOrValues_SetValues) */
			values = dorv + 1;
		else
			dict = dorv;
	} else if (py_mem_read_u64(&w->rd, obj - 24, &dict) < 0 ||
		   py_mem_read_u64(&w->rd, obj - 32, &values) < 0) {
		return 0;
	}
	if (dict)
		return dict_get(w, dict, name);
	if (!values)
		return 0;
	/* Split table: the keys are the type's, the values the instance's. */
	uint64_t keys;
	struct dict_view v;
	if (py_mem_read_u64(&w->rd, type + L->heap_type_cached_keys, &keys) < 0 ||
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
	int r = py_mem_read(&w->rd, addr, head, sizeof(head));
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
	if (ndigits && (r = py_mem_read(&w->rd, addr + 24, digits, ndigits * 4)) < 0)
		return r;
	uint64_t v = 0;
	for (size_t i = ndigits; i-- > 0;)
		v = (v << 30) | (digits[i] & 0x3fffffff);
	*ret = (unsigned long)v;
	return 0;
}

/* threading._active maps get_ident() to Thread objects: their _name. Best
 * effort: any failure leaves the names NULL. */
void
read_thread_names(struct walk *w, uint64_t interp, struct py_thread *threads, size_t n)
{
	const struct py_layout *L = &w->L;
	if (L->interp_modules == NO_OFFSET || n == 0)
		return;
	uint64_t modules, threading, md_dict, active;
	if (py_mem_read_u64(&w->rd, interp + L->interp_modules, &modules) < 0 || !modules)
		return;
	if (!(threading = dict_get(w, modules, "threading")) ||
	    py_mem_read_u64(&w->rd, threading + 16, &md_dict) < 0 ||
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
				(void)py_read_unicode(w, name, &threads[k].name);
		}
	}
}
