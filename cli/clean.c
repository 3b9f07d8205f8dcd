/* forkscope clean: prune the run directories kept under the state directory. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "harness/session.h"

static const char clean_usage[] =
	"usage: forkscope clean [--keep N] [--dry-run]\n"
	"\n"
	"Removes the run directories that `run` and `watch` keep by default under\n"
	"$XDG_STATE_HOME/forkscope/runs (~/.local/state/forkscope/runs), all but the\n"
	"N newest. Directories given with --out are never touched.\n"
	"\n"
	"  --keep N     keep the N newest (default 10; 0 removes all)\n"
	"  --dry-run    say what would be removed\n"
	"\n"
	"Exit status: 0 done, 2 usage or a directory that could not be removed.\n";

struct run_entry {
	char *path;
	struct timespec mtime;
};

static int
newest_first(const void *a, const void *b)
{
	const struct run_entry *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(y->path, x->path);
}

static unsigned long long removed_bytes;

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_F || type == FTW_SL || type == FTW_SLN)
		removed_bytes += (unsigned long long) st->st_size;
	return remove(path) < 0 ? -1 : 0;
}

static bool
is_run_name(const char *name)
{
	return strncmp(name, "run-", 4) == 0 || strncmp(name, "watch-", 6) == 0;
}

/* The run directories under base (real directories, never links), newest first. */
static int
list_runs(const char *base, struct run_entry **ret, size_t *ret_n)
{
	DIR *d = opendir(base);
	if (!d)
		return -errno;
	struct run_entry *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_run_name(de->d_name))
			continue;
		char *path = NULL;
		struct stat st;
		if (asprintf(&path, "%s/%s", base, de->d_name) < 0)
			break;
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
			free(path);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			struct run_entry *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(path);
				break;
			}
			v = nv;
		}
		v[n++] = (struct run_entry){ .path = path, .mtime = st.st_mtim };
	}
	(void) closedir(d);
	qsort(v, n, sizeof(*v), newest_first);
	*ret = v;
	*ret_n = n;
	return 0;
}

int
cli_clean(int argc, char **argv, const struct cli_globals *g)
{
	static const struct option opts[] = {
		{ "keep", required_argument, NULL, 'k' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long keep = 10;
	bool dry = false;
	int c;
	argv[0] = (char *) "forkscope clean";
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': {
			char *end;
			errno = 0;
			keep = strtoul(optarg, &end, 10);
			if (!*optarg || *end || errno || *optarg == '-')
				return cli_usage_error("clean", 2, "--keep: expected a number, got '%s'", optarg);
			break;
		}
		case 'n':
			dry = true;
			break;
		case 'h':
			fputs(clean_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'forkscope clean --help'.\n");
			return 2;
		}
	}
	if (optind < argc)
		return cli_usage_error("clean", 2, "unexpected argument '%s'", argv[optind]);
	char *base = NULL;
	if (session_state_dir(&base) < 0) {
		cli_error("clean", "no state directory: neither XDG_STATE_HOME nor HOME is set");
		return 2;
	}
	struct run_entry *runs = NULL;
	size_t n = 0;
	int r = list_runs(base, &runs, &n);
	if (r == -ENOENT) {
		printf("No run directories under %s.\n", base);
		free(base);
		return 0;
	}
	if (r < 0) {
		cli_error("clean", "%s: %s", base, strerror(-r));
		free(base);
		return 2;
	}
	size_t removed = 0, failed = 0;
	for (size_t i = keep; i < n; i++) {
		if (dry)
			printf("would remove %s\n", runs[i].path);
		else if (nftw(runs[i].path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0) {
			cli_error("clean", "remove %s: %s", runs[i].path, strerror(errno));
			failed++;
			continue;
		}
		removed++;
	}
	printf("%s %zu run director%s (%.1f MiB), kept %zu under %s\n", dry ? "Would remove" : "Removed", removed,
	       removed == 1 ? "y" : "ies", (double) removed_bytes / (1 << 20), n - removed - failed, base);
	for (size_t i = 0; i < n; i++)
		free(runs[i].path);
	free(runs);
	free(base);
	return failed ? 2 : 0;
}
