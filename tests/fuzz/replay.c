/* Replays fuzz corpora through a harness built without libFuzzer: every file
 * under the directories (or the files) given is passed to
 * LLVMFuzzerTestOneInput once. Linked with the normal (or ASan/valgrind)
 * build, it makes `meson test` re-check every seed and every past crash
 * (fixtures/fuzz/<target>/). Exit 0 when all ran, 1 when none was found. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fdutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t replayed;

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
replay_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (!d) {
			fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
			return -errno;
		}
		char **names = NULL;
		size_t n = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char **grown = realloc(names, (n + 1) * sizeof(*names));
			if (!grown)
				break;
			names = grown;
			if (asprintf(&names[n], "%s/%s", path, de->d_name) >= 0)
				n++;
		}
		(void) closedir(d);
		/* sorted: the order (and any failure) is the same on every run */
		qsort(names, n, sizeof(*names), cmp_str);
		int r = 0;
		for (size_t i = 0; i < n; i++) {
			if (r == 0)
				r = replay_path(names[i]);
			free(names[i]);
		}
		free(names);
		return r;
	}
	char *data = NULL;
	size_t len = 0;
	int r = read_file_alloc(path, &data, &len);
	if (r < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(-r));
		return r;
	}
	/* an exact-size copy, so a read past the input is caught as with libFuzzer */
	uint8_t *exact = malloc(len ? len : 1);
	if (exact) {
		memcpy(exact, data, len);
		(void) LLVMFuzzerTestOneInput(exact, len);
		free(exact);
		replayed++;
	}
	free(data);
	return 0;
}

int
main(int argc, char **argv)
{
	if (LLVMFuzzerInitialize)
		(void) LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i]) < 0)
			return 1;
	printf("replayed %zu input%s\n", replayed, replayed == 1 ? "" : "s");
	return replayed > 0 ? 0 : 1;
}
