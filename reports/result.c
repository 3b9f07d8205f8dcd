#include "reports/result.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probes/eventlog_read.h"
#include "reports/verdict.h"
#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/signames.h"
#include "util/strbuf.h"

/* ---- leftovers ---- */

/* The parent a process had when the probe first saw it. */
static pid_t
first_ppid(const json_t *events, pid_t pid)
{
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		if ((strcmp(name, "exec") == 0 || strcmp(name, "child_start") == 0) && json_int(ev, "pid", 0) == pid)
			return (pid_t) json_int(ev, "ppid", 0);
		if ((strcmp(name, "fork") == 0 || strcmp(name, "spawn") == 0) && json_int(ev, "child_pid", 0) == pid)
			return (pid_t) json_int(ev, "pid", 0);
		if (strcmp(name, "daemon_start") == 0 && json_int(ev, "pid", 0) == pid)
			return (pid_t) json_int(ev, "ppid", 0);
	}
	return 0;
}

/* Its name: the actor, else what it exec'ed, else the daemon a scenario
 * started, else its comm. */
static const char *
leftover_name(const json_t *events, pid_t pid, const char *comm, bool *ret_daemon, const char **ret_started_by)
{
	const char *name = NULL;
	*ret_daemon = false;
	*ret_started_by = NULL;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		if (json_int(ev, "pid", 0) != pid)
			continue;
		const char *kind = json_str(ev, "ev", "");
		if (strcmp(kind, "exec") == 0) {
			const char *argv0 = json_str(ev, "argv0", NULL);
			const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
			name = slash ? slash + 1 : argv0;
		} else if (strcmp(kind, "daemon_start") == 0) {
			*ret_daemon = true;
			*ret_started_by = json_str(ev, "started_by", NULL);
		}
	}
	if (name && *name)
		return name;
	return *ret_daemon ? "daemon" : comm;
}

/* What the snapshot saw it doing: "S in do_nanosleep (clock_nanosleep)". */
static char *
doing_from_snapshot(const json_t *snapshot, pid_t pid)
{
	size_t i;
	json_t *proc;
	json_array_foreach(json_object_get(snapshot, "processes"), i, proc) {
		if (json_int(proc, "pid", 0) != pid)
			continue;
		json_t *t = json_array_get(json_object_get(proc, "threads"), 0);
		if (!t)
			return NULL;
		const char *wchan = json_str(t, "wchan", "");
		const char *sc = json_str(json_object_get(t, "syscall"), "name", NULL);
		char *s = NULL;
		if (asprintf(&s, "%s%s%s%s%s%s", json_str(t, "state", "?"), *wchan ? " in " : "", wchan,
			     sc ? " (" : "", sc ? sc : "", sc ? ")" : "") < 0)
			return NULL;
		return s;
	}
	return NULL;
}

static bool
mask_has(uint64_t mask, int sig)
{
	return sig >= 1 && sig <= 64 && (mask & (1ull << (sig - 1)));
}

static void
describe_how(struct strbuf *how, const struct leftover_facts *f, bool actor, const char *actor_name,
	     const char *daemon_by, pid_t original_parent)
{
	if (actor)
		(void) strbuf_printf(how, "actor %s outlived the root", actor_name ? actor_name : "?");
	else if (f->sid == f->pid)
		(void) strbuf_printf(how, "left the process group and the session (setsid)%s%s",
				     daemon_by ? ", started by " : "", daemon_by ? daemon_by : "");
	else if (f->pgid != f->tree_pgid)
		(void) strbuf_printf(how, "left the process group (now in group %d)", (int) f->pgid);
	else
		(void) strbuf_append(how, "stayed in the tree's process group");
	if (f->ppid == f->subreaper && f->pid != f->tree_top) {
		(void) strbuf_append(how, "; reparented to the subreaper");
		if (original_parent > 0)
			(void) strbuf_printf(how, " after its parent (pid %d) exited", (int) original_parent);
	} else if (f->ppid > 0 && f->ppid != f->subreaper)
		(void) strbuf_printf(how, "; child of pid %d", (int) f->ppid);
	/* Why the first rung of the ladder could not end it. */
	bool first_rung_failed = f->ended_by && strcmp(f->ended_by, "SIGINT") != 0 && strcmp(f->ended_by, "exited") != 0;
	if (first_rung_failed && mask_has(f->sig_blocked, SIGINT))
		(void) strbuf_append(how, "; SIGINT was blocked in it (a signal mask inherited across fork), "
					  "so the SIGINT rung could not end it");
	else if (first_rung_failed && mask_has(f->sig_ignored, SIGINT))
		(void) strbuf_append(how, "; SIGINT was ignored in it, so the SIGINT rung could not end it");
}

json_t *
result_leftover(const struct leftover_facts *f, const json_t *events, const json_t *snapshot)
{
	const char *actor_name = NULL;
	bool actor = events_pid_is_actor(events, f->pid, &actor_name);
	bool daemon = false;
	const char *daemon_by = NULL;
	const char *name = leftover_name(events, f->pid, f->comm ? f->comm : "?", &daemon, &daemon_by);
	if (actor && actor_name)
		name = actor_name;
	pid_t original_parent = first_ppid(events, f->pid);
	struct strbuf how = STRBUF_INIT;
	describe_how(&how, f, actor, actor_name, daemon_by, original_parent);
	json_t *o = json_object();
	json_object_set_new(o, "pid", json_integer(f->pid));
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "ppid", f->ppid > 0 ? json_integer(f->ppid) : json_null());
	json_object_set_new(o, "state", f->state ? json_sprintf("%c", f->state) : json_null());
	json_object_set_new(o, "pgid", json_integer(f->pgid));
	json_object_set_new(o, "sid", f->sid > 0 ? json_integer(f->sid) : json_null());
	json_object_set_new(o, "actor", json_boolean(actor));
	json_object_set_new(o, "how", json_string(how.data ? how.data : ""));
	json_object_set_new(o, "started_by", original_parent > 0 ? json_integer(original_parent) : json_null());
	char *doing = snapshot ? doing_from_snapshot(snapshot, f->pid) : NULL;
	json_object_set_new(o, "doing", doing ? json_string(doing) : json_null());
	free(doing);
	json_object_set_new(o, "ended_by", json_string(f->ended_by ? f->ended_by : "?"));
	json_object_set_new(o, "sigint", json_pack("{s:b,s:b}", "blocked", mask_has(f->sig_blocked, SIGINT),
						   "ignored", mask_has(f->sig_ignored, SIGINT)));
	strbuf_free(&how);
	return o;
}

/* ---- the escaped verdict ---- */

json_t *
result_escaped_verdict(const json_t *leftovers, const char *what, bool scenario)
{
	json_t *pids = json_array();
	struct strbuf lines = STRBUF_INIT;
	size_t i, n = 0;
	json_t *l;
	json_array_foreach(leftovers, i, l) {
		if (json_bool(l, "actor", 0))
			continue;
		n++;
		json_array_append_new(pids, json_integer(json_int(l, "pid", 0)));
		const char *doing = json_str(l, "doing", NULL);
		(void) strbuf_printf(&lines, "  pid %lld (%s): %s%s%s; ended by %s\n", (long long) json_int(l, "pid", 0),
				     json_str(l, "name", "?"), json_str(l, "how", "?"), doing ? "; doing: " : "",
				     doing ? doing : "", json_str(l, "ended_by", "?"));
	}
	if (n == 0) {
		json_decref(pids);
		strbuf_free(&lines);
		return NULL;
	}
	const struct verdict_class_info *info = verdict_class_lookup("escaped");
	/* Scenario keys only for forkscope's scenarios. */
	const char *remedy = scenario && info ? info->remedy
					      : "end helpers by their process group (kill -INT -- -PGID), tear down "
						"SIGINT first, and leave lasting daemons to a service manager";
	char summary[256];
	(void) snprintf(summary, sizeof(summary), "%zu process%s outlived %s", n, n == 1 ? "" : "es", what);
	struct strbuf text = STRBUF_INIT;
	(void) strbuf_printf(&text, "%s:\n%sRemedy: %s.", summary, lines.data ? lines.data : "", remedy);
	json_t *v = json_pack("{s:s,s:s,s:o,s:{s:O},s:s,s:s}", "class", "escaped", "summary", summary, "pids", pids,
			      "evidence", "leftovers", leftovers, "remedy", remedy, "text", text.data);
	strbuf_free(&lines);
	strbuf_free(&text);
	return v;
}

size_t
result_count_hangs(const json_t *verdicts)
{
	return verdicts_count_hangs(verdicts);
}

/* ---- the cell ---- */

void
result_describe_fds(json_t *actor, const json_t *fds, const json_t *closed)
{
	size_t inherited = json_array_size(fds) + json_array_size(closed);
	json_object_set_new(actor, "fds_inherited", json_integer((json_int_t) inherited));
	json_t *unexpected = json_array();
	size_t i;
	json_t *fd;
	json_array_foreach(fds, i, fd) {
		if (json_int(fd, "fd", 0) <= 2)
			continue;
		json_t *u = json_pack("{s:I,s:s,s:s}", "fd", (json_int_t) json_int(fd, "fd", -1), "kind",
				      json_str(fd, "kind", "other"), "target", json_str(fd, "target", ""));
		if (json_str(fd, "detail", NULL))
			json_object_set_new(u, "detail", json_string(json_str(fd, "detail", "")));
		if (json_bool(fd, "deleted", 0))
			json_object_set_new(u, "deleted", json_true());
		json_array_append_new(unexpected, u);
	}
	json_object_set_new(actor, "fds_unexpected", unexpected);
	if (closed)
		json_object_set(actor, "fds_closed_by_scrub", (json_t *) closed);
}

json_t *
result_exit_status(int code, const char *signal)
{
	return json_pack("{s:o,s:o}", "code", code >= 0 ? json_integer(code) : json_null(), "signal",
			 signal ? json_string(signal) : json_null());
}

void
result_cell_common(json_t *cell, const struct cell_facts_common *f)
{
	size_t hangs = result_count_hangs(f->verdicts);
	size_t leaked = json_array_size(f->leftovers);
	json_t *mismatches = f->mismatches ? f->mismatches : json_array();
	/* A hang no verdict explains is said in words, never counted as a found
	 * hang: "Found N hangs." stands for exactly N verdicts. */
	bool unexplained = strcmp(f->outcome, "hang") == 0 && hangs == 0;
	json_object_set_new(cell, "id", json_string(f->id));
	json_object_set_new(cell, "name", json_string(f->name));
	json_object_set_new(cell, "outcome", json_string(f->outcome));
	json_object_set_new(cell, "passed", json_boolean(json_array_size(mismatches) == 0));
	json_object_set_new(cell, "mismatches", mismatches);
	json_object_set_new(cell, "infra_error", f->infra_error ? json_string(f->infra_error) : json_null());
	if (f->ended)
		json_object_set_new(cell, "exit",
				    result_exit_status(WIFEXITED(f->wstatus) ? WEXITSTATUS(f->wstatus) : -1,
						       WIFSIGNALED(f->wstatus) ? signal_name(WTERMSIG(f->wstatus)) : NULL));
	else
		json_object_set_new(cell, "exit", json_null());
	json_object_set(cell, "verdicts", f->verdicts);
	json_object_set_new(cell, "found_hangs", json_integer((json_int_t) hangs));
	json_object_set_new(cell, "hang_unexplained", json_boolean(unexplained));
	json_object_set_new(cell, "leaked", json_integer((json_int_t) leaked));
	json_object_set(cell, "leftovers", f->leftovers ? f->leftovers : json_array());
	if (json_is_null(json_object_get(cell, "leftovers")))
		json_object_set_new(cell, "leftovers", json_array());
	json_object_set_new(cell, "duration_ns", json_u64(f->duration_ns));
	json_object_set_new(cell, "events_file", f->events_file ? json_string(f->events_file) : json_null());
	json_object_set_new(cell, "snapshot_file", f->snapshot_file ? json_string(f->snapshot_file) : json_null());
}

/* ---- the document ---- */

json_t *
result_summary(const json_t *cells)
{
	size_t passed = 0, failed = 0, errors = 0, hangs = 0, leaked = 0, i;
	json_t *c;
	json_array_foreach(cells, i, c) {
		if (json_is_string(json_object_get(c, "infra_error")))
			errors++;
		else if (json_bool(c, "passed", 0))
			passed++;
		else
			failed++;
		if (strcmp(json_str(c, "outcome", ""), "hang") == 0)
			hangs++;
		leaked += (size_t) json_int(c, "leaked", 0);
	}
	return json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "cells", (int) json_array_size(cells), "passed", (int) passed,
			 "failed", (int) failed, "errors", (int) errors, "hangs", (int) hangs, "leaked", (int) leaked);
}

static json_t *
host_json(void)
{
	struct utsname u;
	(void) uname(&u);
	return json_pack("{s:s,s:s,s:i}", "kernel", u.release, "machine", u.machine, "nproc",
			 (int) sysconf(_SC_NPROCESSORS_ONLN));
}

json_t *
result_document(const char *command, const char *const *argv, int argc, int64_t wall_start, uint64_t duration_ns,
		const char *run_dir, json_t *cells)
{
	json_t *doc = json_object();
	json_object_set_new(doc, "schema_version", json_integer(1));
	json_object_set_new(doc, "tool", json_string("forkscope " FORKSCOPE_VERSION));
	json_object_set_new(doc, "command", json_string(command));
	json_t *args = json_array();
	for (int i = 0; i < argc; i++)
		json_array_append_new(args, json_string(argv[i]));
	json_object_set_new(doc, "argv", args);
	char stamp[32];
	struct tm tm;
	time_t wall = (time_t) wall_start;
	(void) gmtime_r(&wall, &tm);
	(void) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(doc, "started_at", json_string(stamp));
	json_object_set_new(doc, "duration_ns", json_u64(duration_ns));
	json_object_set_new(doc, "host", host_json());
	json_object_set_new(doc, "run_dir", json_string(run_dir));
	json_object_set_new(doc, "summary", result_summary(cells));
	json_object_set_new(doc, "scenarios", cells);
	return doc;
}
