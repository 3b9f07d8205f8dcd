#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fdutil.h"
#include "util/macro.h"

/* ------------------------------------------------------------------------ */
/* Top level */

static int
parse_section(struct loader *l, struct scenario *s, const struct ynode *node, const char *section,
	      const char *const *keys, size_t n_keys, const char *required)
{
	struct field f[16];
	char where[32];
	int r = want_mapping(l, node, section);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_keys; i++)
		f[i] = (struct field){.name = keys[i]};
	(void)snprintf(where, sizeof(where), " in %s", section);
	int failed = 0;
	r = loader_keep_going(l, map_fields(l, node, where, f, n_keys), &failed);
	if (r < 0)
		return r;
	/* A misspelt key is the error, not the key it was meant to be. */
	if (!failed && required && !field_get(f, n_keys, required)->value)
		return fail_at(l, node, "missing required key '%s' in %s", required, section);
	for (size_t i = 0; i < n_keys; i++) {
		char key[48];
		if (!f[i].value)
			continue;
		(void)snprintf(key, sizeof(key), "%s.%s", section, keys[i]);
		r = loader_keep_going(l, apply_node(l, s, key, f[i].value), &failed);
		if (r < 0)
			return r;
	}
	return failed;
}

enum {
	TOP_NAME,
	TOP_DESCRIPTION,
	TOP_BACKEND,
	TOP_CAPTURE,
	TOP_IMAGE,
	TOP_BUDGET,
	TOP_FIXES,
	TOP_TIMEOUTS,
	TOP_INTERRUPT,
	TOP_TREE,
	TOP_EXPECT,
	TOP_MATRIX,
	TOP_CELLS,
	_TOP_MAX,
};

/* name and description */
static int
parse_identity(struct loader *l, const struct field *f, struct scenario *s)
{
	int failed = 0;
	int r = want_scalar(l, f[TOP_NAME].value, "name");
	if (r >= 0)
		r = check_name(l, f[TOP_NAME].value, "scenario name");
	if (r >= 0 && !(s->name = strdup(f[TOP_NAME].value->text)))
		r = -ENOMEM;
	r = loader_keep_going(l, r, &failed);
	if (r < 0 || !f[TOP_DESCRIPTION].value)
		return r < 0 ? r : failed;
	r = want_scalar(l, f[TOP_DESCRIPTION].value, "description");
	if (r >= 0 && !(s->description = strdup(f[TOP_DESCRIPTION].value->text)))
		r = -ENOMEM;
	r = loader_keep_going(l, r, &failed);
	return r < 0 ? r : failed;
}

/* The top-level keys are independent (cells aside): each is checked even
 * after an error in another, and loader_fail keeps the first in the file. */
static int
parse_top(struct loader *l, const struct ynode *doc, struct scenario *s)
{
	struct field f[_TOP_MAX] = {
	    [TOP_NAME] = {"name"},	     [TOP_DESCRIPTION] = {"description"},
	    [TOP_BACKEND] = {"backend"},     [TOP_CAPTURE] = {"capture"},
	    [TOP_IMAGE] = {"image"},	     [TOP_BUDGET] = {"budget"},
	    [TOP_FIXES] = {"fixes"},	     [TOP_TIMEOUTS] = {"timeouts"},
	    [TOP_INTERRUPT] = {"interrupt"}, [TOP_TREE] = {"tree"},
	    [TOP_EXPECT] = {"expect"},	     [TOP_MATRIX] = {"matrix"},
	    [TOP_CELLS] = {"cells"},
	};
	static const struct {
		int field;
		const char *key;
		const char *const *keys;
		size_t n_keys;
		const char *required;
	} plain[] = {
	    {TOP_BACKEND, "backend", NULL, 0, NULL},
	    {TOP_CAPTURE, "capture", NULL, 0, NULL},
	    {TOP_IMAGE, "image", NULL, 0, NULL},
	    {TOP_BUDGET, "budget", NULL, 0, NULL},
	    {TOP_FIXES, "fixes", fix_keys, ARRAY_SIZE(fix_keys), NULL},
	    {TOP_TIMEOUTS, "timeouts", timeout_keys, ARRAY_SIZE(timeout_keys), NULL},
	    {TOP_INTERRUPT, "interrupt", interrupt_keys, ARRAY_SIZE(interrupt_keys), "after"},
	};
	struct quoted q;
	int failed = 0, r;

	if (doc->type != YNODE_MAPPING)
		return fail_at(
		    l, doc,
		    "the top level must be a mapping with at least 'name' and 'tree', found %s",
		    node_found(doc, &q));
	r = loader_keep_going(l, map_fields(l, doc, " at the top level", f, ARRAY_SIZE(f)),
			      &failed);
	if (r < 0)
		return r;
	/* A misspelt key is the error, not the key it was meant to be. */
	if (!failed && !f[TOP_NAME].value)
		return fail_at(l, doc, "missing required key 'name'");
	if (!failed && !f[TOP_TREE].value)
		return fail_at(l, doc, "missing required key 'tree'");

	if (f[TOP_NAME].value)
		r = loader_keep_going(l, parse_identity(l, f, s), &failed);
	for (size_t i = 0; i < ARRAY_SIZE(plain) && r >= 0; i++) {
		const struct ynode *v = f[plain[i].field].value;
		if (!v)
			continue;
		if (plain[i].keys)
			r = parse_section(l, s, v, plain[i].key, plain[i].keys, plain[i].n_keys,
					  plain[i].required);
		else
			r = apply_node(l, s, plain[i].key, v);
		r = loader_keep_going(l, r, &failed);
	}
	if (r >= 0 && f[TOP_TREE].value) {
		struct child_group root_group;
		size_t size = 0;
		r = parse_actor(l, f[TOP_TREE].value, 0, &s->root, &root_group, &size);
		s->n_actors = size;
		r = loader_keep_going(l, r, &failed);
	}
	if (r >= 0 && f[TOP_EXPECT].value)
		r = loader_keep_going(l, parse_expect(l, f[TOP_EXPECT].value, "expect", &s->expect),
				      &failed);
	int matrix_failed = 0;
	if (r >= 0 && f[TOP_MATRIX].value)
		r = loader_keep_going(l, parse_matrix(l, f[TOP_MATRIX].value, s), &matrix_failed);
	/* cells are checked against the matrix: not against a broken one. */
	if (r >= 0 && !matrix_failed && f[TOP_CELLS].value)
		r = loader_keep_going(l, parse_cells(l, f[TOP_CELLS].key, f[TOP_CELLS].value, s),
				      &failed);
	if (r < 0)
		return r;
	if (failed || matrix_failed)
		return -EINVAL;
	return scenario_index(s, NULL, NULL);
}

static int
load_text(const char *path, const char *text, size_t len, struct scenario **ret, char **ret_error)
{
	struct loader l = {.path = path, .text = text, .len = len};
	struct ynode *doc = NULL;
	struct scenario *s = NULL;
	int r;

	if (len > SCENARIO_MAX_FILE_BYTES)
		r = loader_fail(&l, 1, 1, "the file is larger than %d KiB",
				SCENARIO_MAX_FILE_BYTES / 1024);
	else
		r = read_document(&l, &doc);
	if (r >= 0) {
		s = calloc(1, sizeof(*s));
		if (!s)
			r = -ENOMEM;
	}
	if (r >= 0) {
		scenario_set_defaults(s);
		s->path = strdup(path);
		r = s->path ? parse_top(&l, doc, s) : -ENOMEM;
	}
	ynode_free(doc);
	if (r < 0) {
		scenario_free(s);
		if (!l.error && asprintf(&l.error, "%s: %s", path, strerror(-r)) < 0)
			l.error = NULL;
		*ret_error = l.error;
		return r;
	}
	free(l.error);
	*ret = s;
	return 0;
}

int
scenario_load_string(const char *name, const char *text, size_t len, struct scenario **ret,
		     char **ret_error)
{
	return load_text(name, text, len, ret, ret_error);
}

static const char *
file_type_name(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "an unknown file type";
}

int
scenario_load(const char *path, struct scenario **ret, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	struct stat st;
	ssize_t n;
	int r;

	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto io_error;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		goto io_error;
	}
	if (!S_ISREG(st.st_mode)) {
		if (asprintf(ret_error,
			     "%s: not a regular file (%s); a scenario must be a regular file", path,
			     file_type_name(st.st_mode)) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	/* Bounded read: the file may still grow while we read it. */
	data = malloc(SCENARIO_MAX_FILE_BYTES + 2);
	if (!data)
		return -ENOMEM;
	n = read_full(fd, data, SCENARIO_MAX_FILE_BYTES + 1);
	if (n < 0) {
		r = (int)n;
		goto io_error;
	}
	data[n] = '\0';
	return load_text(path, data, (size_t)n, ret, ret_error);
io_error:
	if (asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0)
		*ret_error = NULL;
	return r;
}
