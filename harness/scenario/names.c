#include "harness/scenario/scenario-private.h"

#include <errno.h>
#include <string.h>

#include "util/macro.h"

/* ------------------------------------------------------------------------ */
/* Names */

const char *const backend_names[] = {
    [BACKEND_MTF] = "mtf",
    [BACKEND_FORK] = "fork",
    [BACKEND_SPAWN] = "spawn",
};
const char *const capture_names[] = {
    [CAPTURE_NONE] = "none",
    [CAPTURE_PIPE] = "pipe",
    [CAPTURE_TMPFILE] = "tmpfile",
};
const char *const stdio_names[] = {
    [STDIO_INHERIT] = "inherit",
    [STDIO_DEVNULL] = "devnull",
    [STDIO_FILE] = "file",
};
const char *const wait_names[] = {
    [WAIT_PIDFD] = "pidfd",
    [WAIT_THREAD] = "thread",
};
const char *const scrub_mode_names[] = {
    [SCRUB_CLOSE] = "close",
    [SCRUB_DEVNULL] = "devnull",
};
const char *const outcome_names[] = {
    [OUTCOME_OK] = "ok",
    [OUTCOME_ERROR] = "error",
    [OUTCOME_HANG] = "hang",
};
const char *const target_names[] = {
    [INTERRUPT_ROOT] = "root",
    [INTERRUPT_GROUP] = "group",
};
const char *const stream_names[] = {
    [LOG_STDOUT] = "stdout",
    [LOG_STDERR] = "stderr",
};

const struct step_info step_infos[_STEP_MAX] = {
    [STEP_SLEEP] = {"sleep", false, ARG_DURATION, true, "250ms"},
    [STEP_LOG] = {"log", false, ARG_LOG, true, "64KiB"},
    [STEP_RAISE] = {"raise", true, ARG_TEXT, true, "\"message\""},
    [STEP_EXIT] = {"exit", false, ARG_STATUS, true, "2"},
    [STEP_IGNORE_CANCEL] = {"ignore_cancel", true, ARG_NONE, false, NULL},
    [STEP_IGNORE_SIGTERM] = {"ignore_sigterm", true, ARG_NONE, true, NULL},
    [STEP_BLOCK_SIGINT] = {"block_sigint", true, ARG_NONE, true, NULL},
    [STEP_SPIN] = {"spin", true, ARG_DURATION, true, "200ms"},
    [STEP_SPAWN] = {"spawn", false, ARG_CHILD, false, "NAME"},
    [STEP_SERVE] = {"serve", true, ARG_NONE, false, NULL},
    [STEP_AWAIT] = {"await", false, ARG_CHILD, false, "NAME"},
    [STEP_KILL_SELF] = {"kill_self", false, ARG_SIGNAL, true, "SIGKILL"},
    [STEP_DAEMONIZE] = {"daemonize", true, ARG_NONE, false, NULL},
    [STEP_LOG_SINK] = {"log_sink", true, ARG_FD, true, "11"},
};

int
name_lookup(const char *const *names, size_t n, const char *name)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int)i;
	return -EINVAL;
}

const char *
name_of(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n && names[v] ? names[v] : "?";
}

const char *
backend_name(enum backend_kind b)
{
	return name_of(backend_names, ARRAY_SIZE(backend_names), (int)b);
}

int
backend_from_name(const char *name)
{
	return name_lookup(backend_names, ARRAY_SIZE(backend_names), name);
}

const char *
capture_name(enum capture_kind c)
{
	return name_of(capture_names, ARRAY_SIZE(capture_names), (int)c);
}

int
capture_from_name(const char *name)
{
	return name_lookup(capture_names, ARRAY_SIZE(capture_names), name);
}

const char *
stdio_name(enum stdio_kind k)
{
	return name_of(stdio_names, ARRAY_SIZE(stdio_names), (int)k);
}

int
stdio_from_name(const char *name)
{
	return name_lookup(stdio_names, ARRAY_SIZE(stdio_names), name);
}

const char *
wait_name(enum wait_kind w)
{
	return name_of(wait_names, ARRAY_SIZE(wait_names), (int)w);
}

const char *
scrub_mode_name(enum scrub_mode m)
{
	return name_of(scrub_mode_names, ARRAY_SIZE(scrub_mode_names), (int)m);
}

int
wait_from_name(const char *name)
{
	return name_lookup(wait_names, ARRAY_SIZE(wait_names), name);
}

const char *
outcome_name(enum outcome o)
{
	return name_of(outcome_names, ARRAY_SIZE(outcome_names), (int)o);
}

int
outcome_from_name(const char *name)
{
	return name_lookup(outcome_names, ARRAY_SIZE(outcome_names), name);
}

const char *
interrupt_target_name(enum interrupt_target t)
{
	return name_of(target_names, ARRAY_SIZE(target_names), (int)t);
}

int
interrupt_target_from_name(const char *name)
{
	return name_lookup(target_names, ARRAY_SIZE(target_names), name);
}

const char *
step_name(enum step_kind k)
{
	return (unsigned)k < ARRAY_SIZE(step_infos) ? step_infos[k].name : "?";
}

int
step_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(step_infos); i++)
		if (strcmp(step_infos[i].name, name) == 0)
			return (int)i;
	return -EINVAL;
}
