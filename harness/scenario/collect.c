#include "harness/scenario/scenario-private.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/macro.h"

/* ------------------------------------------------------------------------ */
/* The directory walk: path arguments -> scenario files -> loaded scenarios */

/* A directory or file already reached, by identity: symlinks make one
 * object reachable under many names, and only the first counts. */
struct seen {
	dev_t dev;
	ino_t ino;
	char *path; /* the name it was first reached under */
};

struct candidate {
	char *path;
	bool has_id; /* stat() worked: dev/ino are valid */
	dev_t dev;
	ino_t ino;
};

struct walk {
	struct scenario_collection *c;
	struct seen *dirs;
	size_t n_dirs, cap_dirs;
	struct candidate *found;
	size_t n_found, cap_found;
};

static int note_add(struct scenario_collection *c, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
note_add(struct scenario_collection *c, bool error, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	struct scenario_note *notes = realloc(c->notes, (c->n_notes + 1) * sizeof(*notes));
	if (!notes) {
		free(m);
		return -ENOMEM;
	}
	c->notes = notes;
	c->notes[c->n_notes++] = (struct scenario_note){.error = error, .message = m};
	if (error)
		c->n_errors++;
	return 0;
}

static const struct seen *
seen_find(const struct seen *set, size_t n, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].dev == dev && set[i].ino == ino)
			return &set[i];
	return NULL;
}

static int
seen_add(struct seen **set, size_t *n, size_t *cap, const struct stat *st, const char *path)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct seen *s = realloc(*set, ncap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		*set = s;
		*cap = ncap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	(*set)[(*n)++] = (struct seen){.dev = st->st_dev, .ino = st->st_ino, .path = p};
	return 0;
}

static void
seen_free(struct seen *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(set[i].path);
	free(set);
}

/* Takes path (malloc'ed) in every case. st NULL: it could not be stat'ed,
 * the loader will say why. */
static int
found_add(struct walk *w, char *path, const struct stat *st)
{
	if (w->n_found == w->cap_found) {
		size_t ncap = w->cap_found ? w->cap_found * 2 : 32;
		struct candidate *f = realloc(w->found, ncap * sizeof(*f));
		if (!f) {
			free(path);
			return -ENOMEM;
		}
		w->found = f;
		w->cap_found = ncap;
	}
	w->found[w->n_found++] = (struct candidate){.path = path,
						    .has_id = st != NULL,
						    .dev = st ? st->st_dev : 0,
						    .ino = st ? st->st_ino : 0};
	return 0;
}

static bool
has_yaml_suffix(const char *name)
{
	size_t n = strlen(name);
	return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmp_candidate(const void *a, const void *b)
{
	return strcmp(((const struct candidate *)a)->path, ((const struct candidate *)b)->path);
}

/* The entries of one directory, sorted, without '.' names: walking them in
 * name order makes "first reached" the same on every machine. */
static int
read_names(const char *dir, char ***ret, size_t *ret_n)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	for (errno = 0; (de = readdir(d)); errno = 0) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				break;
			}
			names = nn;
			cap = ncap;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	(void)closedir(d);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return r;
	}
	qsort(names, n, sizeof(*names), cmp_name);
	*ret = names;
	*ret_n = n;
	return 0;
}

static int walk_dir(struct walk *w, const char *dir, const struct stat *st, bool top);

static int
walk_entry(struct walk *w, const char *dir, const char *name)
{
	struct stat st;
	char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	/* stat, not lstat: symlinks are followed; the seen sets stop the loops. */
	bool ok = stat(path, &st) == 0;
	if (ok && S_ISDIR(st.st_mode)) {
		int r = walk_dir(w, path, &st, false);
		free(path);
		return r;
	}
	if (!has_yaml_suffix(name)) {
		free(path);
		return 0;
	}
	return found_add(w, path, ok ? &st : NULL);
}

static int
walk_dir(struct walk *w, const char *dir, const struct stat *st, bool top)
{
	const struct seen *again = seen_find(w->dirs, w->n_dirs, st->st_dev, st->st_ino);
	char **names = NULL;
	size_t n = 0;
	int r;

	if (again)
		return note_add(w->c, false,
				"%s: skipped, the same directory as %s (a symlink loop or a "
				"second link to it)",
				dir, again->path);
	r = seen_add(&w->dirs, &w->n_dirs, &w->cap_dirs, st, dir);
	if (r < 0)
		return r;
	r = read_names(dir, &names, &n);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		if (top)
			return note_add(w->c, true, "%s: cannot read directory: %s", dir,
					strerror(-r));
		return note_add(w->c, false,
				"%s: cannot read directory (%s); the scenarios in it are skipped",
				dir, strerror(-r));
	}
	for (size_t i = 0; i < n; i++) {
		if (r >= 0)
			r = walk_entry(w, dir, names[i]);
		free(names[i]);
	}
	free(names);
	return r;
}

static int
collect_argument(struct walk *w, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return note_add(w->c, true, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		/* Any file type: scenario_load() refuses what is not regular. */
		char *p = strdup(path);
		return p ? found_add(w, p, &st) : -ENOMEM;
	}
	size_t before = w->n_found, notes_before = w->c->n_notes;
	int r = walk_dir(w, path, &st, true);
	if (r < 0)
		return r;
	qsort(w->found + before, w->n_found - before, sizeof(*w->found), cmp_candidate);
	/* Only when the walk had nothing else to say about it. */
	if (w->n_found == before && w->c->n_notes == notes_before)
		return note_add(w->c, true, "%s: no scenario files (*.yaml) found", path);
	return 0;
}

static int
load_found(struct walk *w)
{
	struct scenario_collection *c = w->c;
	struct seen *files = NULL;
	size_t n_files = 0, cap_files = 0;
	int r = 0;

	c->scenarios = calloc(w->n_found ? w->n_found : 1, sizeof(*c->scenarios));
	if (!c->scenarios)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_found && r >= 0; i++) {
		const struct candidate *f = &w->found[i];
		struct stat st = {.st_dev = f->dev, .st_ino = f->ino};
		if (f->has_id) {
			const struct seen *again = seen_find(files, n_files, f->dev, f->ino);
			if (again) {
				r = note_add(c, false,
					     "%s: skipped, the same file as %s (loaded once)",
					     f->path, again->path);
				continue;
			}
			r = seen_add(&files, &n_files, &cap_files, &st, f->path);
			if (r < 0)
				break;
		}
		struct scenario *s = NULL;
		char *err = NULL;
		int lr = scenario_load(f->path, &s, &err);
		if (lr >= 0)
			c->scenarios[c->n_scenarios++] = s;
		else if (lr == -ENOMEM && !err)
			r = -ENOMEM;
		else
			r = note_add(c, true, "%s", err ? err : f->path);
		free(err);
	}
	seen_free(files, n_files);
	return r;
}

int
scenario_collect(char *const *paths, size_t n_paths, struct scenario_collection *ret)
{
	struct scenario_collection c = {0};
	struct walk w = {.c = &c};
	int r = 0;

	/* Walk everything first, then load: walk messages come before load errors. */
	for (size_t i = 0; i < n_paths && r >= 0; i++)
		r = collect_argument(&w, paths[i]);
	if (r >= 0)
		r = load_found(&w);
	for (size_t i = 0; i < w.n_found; i++)
		free(w.found[i].path);
	free(w.found);
	seen_free(w.dirs, w.n_dirs);
	if (r < 0) {
		scenario_collection_clear(&c);
		return r;
	}
	*ret = c;
	return 0;
}

void
scenario_collection_clear(struct scenario_collection *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_scenarios; i++)
		scenario_free(c->scenarios[i]);
	free(c->scenarios);
	for (size_t i = 0; i < c->n_notes; i++)
		free(c->notes[i].message);
	free(c->notes);
	*c = (struct scenario_collection){0};
}
