#include "util/procname.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;
	return s ? s + 1 : path;
}

static bool
is_interpreter(const char *name)
{
	static const char *const names[] = { "python", "bash", "sh", "dash", "zsh", "perl", "ruby", "node" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		/* python3, python3.11, bash5.2 ... */
		if (strncmp(name, names[i], n) == 0 && (!name[n] || name[n] == '.' || (name[n] >= '0' && name[n] <= '9')))
			return true;
	}
	return false;
}

/* The script an interpreter runs: its first argument that is not an option
 * (for -m, the module); nothing for -c code. */
static const char *
script_of(const char *const *argv, size_t argc)
{
	for (size_t i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!arg)
			return NULL;
		if (arg[0] != '-')
			return base_name(arg);
		if (strcmp(arg, "-m") == 0)
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(arg, "-c") == 0)
			return NULL;
	}
	return NULL;
}

char *
process_display_name(const char *comm, const char *const *argv, size_t argc)
{
	const char *prog = argc > 0 ? base_name(argv[0]) : NULL;
	if (!prog || !*prog)
		return comm && *comm ? strdup(comm) : NULL;
	const char *script = is_interpreter(prog) ? script_of(argv, argc) : NULL;
	char *name = NULL;
	if (script && *script) {
		if (asprintf(&name, "%s %s", prog, script) < 0)
			return NULL;
		return name;
	}
	/* comm is cut to 15 characters (TASK_COMM_LEN - 1) */
	if (comm && *comm && strlen(comm) < 15)
		return strdup(comm);
	return strdup(prog);
}
