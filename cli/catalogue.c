/* The default scenario catalogue of `run` and `scenarios`. */
#include "cli/catalogue.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The install's datadir, set by meson (harness/meson.build). */
#ifndef FORKSCOPE_DATADIR
#error "FORKSCOPE_DATADIR must be defined by the build"
#endif

static bool
is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int
take(const char *path, char **ret_path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	*ret_path = p;
	return 0;
}

int
cli_default_catalogue(char **ret_path)
{
	char path[PATH_MAX + 64];
	const char *env = getenv("FORKSCOPE_DATADIR");
	if (env && *env) {
		(void) snprintf(path, sizeof(path), "%s/scenarios", env);
		return take(path, ret_path);
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash = n > 0 ? memchr(exe, '/', (size_t) n) : NULL;
	if (slash) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		/* build/harness/forkscope: build/build.ninja is its build tree. */
		(void) snprintf(path, sizeof(path), "%s/../build.ninja", exe);
		if (is_file(path) && is_dir("scenarios"))
			return take("scenarios", ret_path);
		(void) snprintf(path, sizeof(path), "%s/../share/forkscope/scenarios", exe);
		if (is_dir(path)) {
			char *real = realpath(path, NULL);
			if (!real)
				return take(path, ret_path);
			*ret_path = real;
			return 0;
		}
	}
	if (is_dir(FORKSCOPE_DATADIR "/scenarios") || !is_dir("scenarios"))
		return take(FORKSCOPE_DATADIR "/scenarios", ret_path);
	return take("scenarios", ret_path);
}
