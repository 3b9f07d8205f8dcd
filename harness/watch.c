#include "harness/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "harness/reaper.h"
#include "probes/eventlog_read.h"
#include "harness/session.h"
#include "probes/eventlog.h"
#include "probes/selfdump.h"
#include "reports/result.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

extern char **environ;

static bool
readable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

int
watch_find_probe(char **ret_path)
{
	const char *env = getenv("FORKSCOPE_PROBE");
	if (env && *env) {
		char *p = realpath(env, NULL);
		if (!p || !readable_file(p)) {
			free(p);
			return -ENOENT;
		}
		*ret_path = p;
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	static const char *const candidates[] = {
		"../probes/libforkscope-probe.so", /* the build tree */
		"../lib/forkscope/libforkscope-probe.so",
		"../lib64/forkscope/libforkscope-probe.so",
#if defined(__x86_64__)
		"../lib/x86_64-linux-gnu/forkscope/libforkscope-probe.so",
#elif defined(__aarch64__)
		"../lib/aarch64-linux-gnu/forkscope/libforkscope-probe.so",
#endif
	};
	for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
		char path[PATH_MAX + 64];
		(void) snprintf(path, sizeof(path), "%s/%s", exe, candidates[i]);
		if (!readable_file(path))
			continue;
		char *p = realpath(path, NULL);
		if (!p)
			return -errno;
		*ret_path = p;
		return 0;
	}
	return -ENOENT;
}

/* execvp's PATH search, done before the fork so the child only execs. */
static char *
resolve_command(const char *name)
{
	if (strchr(name, '/'))
		return strdup(name);
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchrnul(path, ':');
		size_t len = (size_t) (colon - path);
		char *candidate = NULL;
		if (asprintf(&candidate, "%.*s%s%s", (int) len, len ? path : ".", "/", name) < 0)
			return NULL;
		struct stat st;
		if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0)
			return candidate;
		free(candidate);
		path = *colon ? colon + 1 : colon;
	}
	return NULL;
}

static bool
env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* The command's environment: ours, with the probe preloaded in front of
 * whatever LD_PRELOAD it had, the event log's path, and the self-dump signal
 * only when asked for (off for foreign programs by default). */
static char **
build_env(const char *probe, const char *events_path, bool selfdump)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 4, sizeof(char *));
	if (!env)
		return NULL;
	size_t k = 0;
	const char *old_preload = NULL;
	for (size_t i = 0; i < n; i++) {
		if (env_is(environ[i], "LD_PRELOAD")) {
			old_preload = environ[i] + strlen("LD_PRELOAD=");
			continue;
		}
		if (env_is(environ[i], "FORKSCOPE_EVENTS") || env_is(environ[i], SELFDUMP_ENV))
			continue;
		env[k++] = environ[i];
	}
	char *preload = NULL, *events = NULL, *sd = NULL;
	if (asprintf(&preload, "LD_PRELOAD=%s%s%s", probe, old_preload && *old_preload ? ":" : "",
		     old_preload ? old_preload : "") < 0 ||
	    asprintf(&events, "FORKSCOPE_EVENTS=%s", events_path) < 0) {
		free(env);
		return NULL;
	}
	env[k++] = preload;
	env[k++] = events;
	if (selfdump) {
		int sig = SIGRTMIN + SELFDUMP_DEFAULT_RTMIN_OFFSET;
		if (asprintf(&sd, "%s=%d", SELFDUMP_ENV, sig) >= 0)
			env[k++] = sd;
	}
	env[k] = NULL;
	return env;
}

static char *
command_line(char **cmd)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; cmd[i]; i++) {
		const char *a = cmd[i];
		bool plain = *a != '\0';
		for (const char *p = a; *p && plain; p++)
			if (!(strchr("-_./=:,+@%", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			      (*p >= 'A' && *p <= 'Z')))
				plain = false;
		(void) strbuf_append(&sb, i ? " " : "");
		if (plain)
			(void) strbuf_append(&sb, a);
		else {
			(void) strbuf_append(&sb, "'");
			for (const char *p = a; *p; p++)
				(void) strbuf_append(&sb, *p == '\'' ? "'\\''" : (char[]){ *p, 0 });
			(void) strbuf_append(&sb, "'");
		}
	}
	return sb.data ? strbuf_steal(&sb) : strdup("");
}

/* ---- where the probe cannot go ---- */

/* Why ld.so will not preload the probe into the program at path, or NULL:
 * a static binary has no ld.so; a set-user-ID program to another user runs
 * in secure mode, which ignores LD_PRELOAD. A script is judged by its #!
 * interpreter. */
const char *
watch_probe_obstacle(const char *path)
{
	char buf[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	struct stat st;
	ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	(void) close(fd);
	if (n < 4)
		return NULL;
	buf[n] = '\0';
	if ((st.st_mode & S_ISUID) && st.st_uid != geteuid())
		return "it is set-user-ID (secure mode ignores LD_PRELOAD)";
	if ((st.st_mode & S_ISGID) && st.st_gid != getegid())
		return "it is set-group-ID (secure mode ignores LD_PRELOAD)";
	if (buf[0] == '#' && buf[1] == '!') {
		char *interp = buf + 2;
		while (*interp == ' ' || *interp == '\t')
			interp++;
		interp[strcspn(interp, " \t\n")] = '\0';
		return *interp && strcmp(interp, path) != 0 ? watch_probe_obstacle(interp) : NULL;
	}
	if (memcmp(buf, "\177ELF", 4) != 0 || (size_t) n < 64)
		return NULL;
	/* ELF64 little-endian only (the machines this runs on): PT_INTERP? */
	if (buf[4] != 2 || buf[5] != 1)
		return NULL;
	uint64_t phoff;
	uint16_t phentsize, phnum;
	memcpy(&phoff, buf + 32, 8);
	memcpy(&phentsize, buf + 54, 2);
	memcpy(&phnum, buf + 56, 2);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	bool interp = false, read_all = true;
	for (uint16_t k = 0; k < phnum && k < 128; k++) {
		uint32_t type;
		if (pread(fd, &type, sizeof(type), (off_t) (phoff + (uint64_t) k * phentsize)) != (ssize_t) sizeof(type)) {
			read_all = false;
			break;
		}
		if (type == 3 /* PT_INTERP */)
			interp = true;
	}
	(void) close(fd);
	return read_all && !interp ? "it is statically linked (no ld.so to preload the probe)" : NULL;
}

/* ---- the watch ---- */

struct watch_run {
	const struct watch_options *o;
	char *run_dir;
	char *events_path;
	char *snapshot_path;
	char *cmdline;
	char *probe;
	char *path;	  /* the command, resolved on PATH */
	char **env;
	char **sh_argv;	  /* a script without #!: through /bin/sh */
	struct session_tree tree;
	json_t *verdicts;
	json_t *snapshot; /* the last triage's */
	json_t *leftovers;
	json_t *teardown;
	bool snapshot_written;
	bool own_terminal;
	int exec_errno;
	const char *infra_error;
};

static void
free_env(char **env)
{
	if (!env)
		return;
	for (size_t i = 0; env[i]; i++)
		if (env_is(env[i], "LD_PRELOAD") || env_is(env[i], "FORKSCOPE_EVENTS") || env_is(env[i], SELFDUMP_ENV))
			free(env[i]);
	free(env);
}

static void
emit_own(const char *what, const struct watch_run *w, int status, bool with_status)
{
	struct event *e = malloc(sizeof(*e));
	if (!e)
		return;
	event_begin(e, what);
	event_str(e, "via", "forkscope");
	event_int(e, "child_pid", w->tree.top);
	if (!with_status) {
		event_str(e, "command", w->cmdline);
		event_str(e, "probe", w->probe);
		event_bool(e, "selfdump", w->o->selfdump);
	} else {
		if (WIFEXITED(status))
			event_int(e, "code", WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			event_str(e, "signal", signal_name(WTERMSIG(status)));
		event_int(e, "wstatus", status);
	}
	(void) event_emit(e);
	free(e);
}

static void
take_terminal(pid_t pgrp)
{
	sigset_t ttou, before;
	(void) sigemptyset(&ttou);
	(void) sigaddset(&ttou, SIGTTOU);
	(void) sigprocmask(SIG_BLOCK, &ttou, &before);
	(void) tcsetpgrp(STDIN_FILENO, pgrp);
	(void) sigprocmask(SIG_SETMASK, &before, NULL);
}

/* Everything the child needs, prepared before the fork: it only execs. */
static int
prepare(struct watch_run *w, char **cmd)
{
	int r = watch_find_probe(&w->probe);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: cannot find libforkscope-probe.so next to the forkscope binary; "
				"set FORKSCOPE_PROBE to its path\n");
		return WATCH_EXIT_USAGE;
	}
	w->cmdline = command_line(cmd);
	w->path = resolve_command(cmd[0]);
	if (!w->path) {
		fprintf(stderr, "forkscope watch: %s: command not found\n", cmd[0]);
		return 127;
	}
	const char *obstacle = watch_probe_obstacle(w->path);
	if (obstacle)
		fprintf(stderr, "forkscope watch: warning: the probe cannot be loaded into %s: %s; forkscope sees its "
				"tree from outside only (triage still works)\n",
			w->path, obstacle);
	r = session_make_run_dir(w->o->out_dir, "watch", &w->run_dir);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: cannot create or write the run directory %s: %s\n",
			w->o->out_dir ? w->o->out_dir : "", strerror(-r));
		return WATCH_EXIT_USAGE;
	}
	if (asprintf(&w->events_path, "%s/events.ndjson", w->run_dir) < 0 ||
	    asprintf(&w->snapshot_path, "%s/snapshot.json", w->run_dir) < 0)
		return WATCH_EXIT_USAGE;
	/* A fresh log per run: an --out directory may hold an older one. */
	(void) unlink(w->events_path);
	r = eventlog_open(w->events_path);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: open %s: %s%s\n", w->events_path, strerror(-r),
			r == -EMFILE ? " (open file limit reached: RLIMIT_NOFILE, ulimit -n)" : "");
		return WATCH_EXIT_USAGE;
	}
	eventlog_set_context("\"actor\":\"forkscope\",\"kind\":\"watch\"");
	w->env = build_env(w->probe, w->events_path, w->o->selfdump);
	size_t n_cmd = 0;
	while (cmd[n_cmd])
		n_cmd++;
	w->sh_argv = calloc(n_cmd + 2, sizeof(char *));
	if (!w->env || !w->sh_argv)
		return WATCH_EXIT_USAGE;
	w->sh_argv[0] = (char *) "sh";
	w->sh_argv[1] = w->path;
	for (size_t i = 1; i < n_cmd; i++)
		w->sh_argv[i + 1] = cmd[i];
	return 0;
}

/* Fork and exec the command in a process group of its own. Returns the
 * pidfd, or -errno. */
static int
start_command(struct watch_run *w, char **cmd, const char **ret_call)
{
	int errpipe[2];
	*ret_call = "pipe2";
	if (pipe2(errpipe, O_CLOEXEC) < 0)
		return -errno;
	*ret_call = "fork";
	/* Interactive use: the command's group takes the terminal, so ^C reaches
	 * it as it would without forkscope. */
	w->own_terminal = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
	w->tree.start_ns = now_ns();
	pid_t pid = session_fork_tree();
	if (pid < 0) {
		int e = -errno;
		(void) close(errpipe[0]);
		(void) close(errpipe[1]);
		return e;
	}
	if (pid == 0) {
		/* Between fork and exec: async-signal-safe calls only. */
		if (w->own_terminal)
			take_terminal(getpid());
		session_child_restore_signals();
		(void) close(errpipe[0]);
		(void) execve(w->path, cmd, w->env);
		if (errno == ENOEXEC)
			(void) execve("/bin/sh", w->sh_argv, w->env);
		int e = errno;
		(void) write_full(errpipe[1], &e, sizeof(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	w->tree.top = pid;
	w->tree.pgid = pid;
	(void) close(errpipe[1]);
	emit_own("spawn", w, 0, false);
	if (read_full(errpipe[0], &w->exec_errno, sizeof(w->exec_errno)) == (ssize_t) sizeof(w->exec_errno)) {
		fprintf(stderr, "forkscope watch: %s: %s\n", w->path, strerror(w->exec_errno));
		w->infra_error = "the command could not be executed";
	} else
		w->exec_errno = 0;
	(void) close(errpipe[0]);
	*ret_call = "pidfd_open";
	int pidfd = pidfd_open(pid, 0);
	return pidfd < 0 ? -errno : pidfd;
}

static void
triage(struct watch_run *w, pid_t top, const char *reason)
{
	struct session_tree t = w->tree;
	t.top = top;
	struct session_triage tr;
	session_triage(&t, reason, &tr);
	if (tr.error && !tr.snapshot)
		fprintf(stderr, "forkscope watch: triage (%s): %s\n", reason, strerror(-tr.error));
	if (tr.write_error)
		fprintf(stderr, "forkscope watch: write %s: %s\n", w->snapshot_path, strerror(-tr.write_error));
	size_t i;
	json_t *sd;
	json_array_foreach(tr.selfdumps, i, sd)
		if (json_str(sd, "error", NULL))
			fprintf(stderr, "forkscope watch: self-dump of pid %lld: %s\n", (long long) json_int(sd, "pid", 0),
				json_str(sd, "error", ""));
	w->snapshot_written = w->snapshot_written || tr.snapshot_written;
	json_array_extend(w->verdicts, tr.verdicts);
	json_decref(w->snapshot);
	w->snapshot = json_incref(tr.snapshot);
	session_triage_release(&tr);
}

/* End every descendant SIGINT first. Processes of the command's group are
 * the tree that hung (teardown rows); others are leftovers. */
static void
end_everything(struct watch_run *w, const char *reason)
{
	json_t *events = events_load(w->events_path, NULL);
	struct event *e = malloc(sizeof(*e));
	if (e) {
		event_begin(e, "teardown");
		event_str(e, "reason", reason);
		(void) event_emit(e);
		free(e);
	}
	uint64_t t0 = now_ns();
	struct ended_proc *ended = NULL;
	size_t n_ended = 0;
	json_t *phases = json_array();
	if (session_end_all(&w->tree, &ended, &n_ended) == 0) {
		for (size_t i = 0; i < n_ended; i++) {
			const struct proc_brief *b = &ended[i].at_start;
			struct leftover_facts lf = {
				.pid = ended[i].pid, .ppid = b->ppid, .pgid = ended[i].pgid, .sid = b->sid,
				.state = b->state, .comm = ended[i].comm, .ended_by = ended[i].ended_by,
				.sig_blocked = ended[i].sig_blocked, .sig_ignored = ended[i].sig_ignored,
				.tree_top = w->tree.top, .tree_pgid = w->tree.pgid, .subreaper = getpid(),
			};
			json_t *l = result_leftover(&lf, events, w->snapshot);
			bool in_tree = strcmp(reason, "leftovers") != 0 && ended[i].pgid == w->tree.pgid;
			if (in_tree) {
				json_array_append_new(phases,
						      json_pack("{s:O,s:i,s:n,s:n,s:n,s:n,s:s}", "actor",
								json_object_get(l, "name"), "pid", (int) ended[i].pid,
								"depth", "cancel_wait_ns", "sigterm_wait_ns",
								"sigkill_to_reap_ns", "ended_by",
								ended[i].ended_by ? ended[i].ended_by : "?"));
				json_decref(l);
			} else
				json_array_append_new(w->leftovers, l);
		}
		free(ended);
	}
	if (json_array_size(phases) > 0)
		w->teardown = json_pack("{s:o,s:o,s:n,s:b,s:[],s:O,s:s}", "started_ns", json_u64(t0 - w->tree.start_ns),
					"duration_ns", json_u64(now_ns() - t0), "budget_ns", "over_budget", 0, "levels",
					"phases", phases, "reason", reason);
	json_decref(phases);
	json_decref(events);
}

static json_t *
watch_mismatches(const struct watch_run *w, bool ended, int wstatus, bool hang)
{
	json_t *mismatches = json_array();
	size_t leaked = json_array_size(w->leftovers);
	if (w->infra_error)
		json_array_append_new(mismatches, json_sprintf("could not run: %s", w->infra_error));
	else if (hang)
		json_array_append_new(mismatches, json_string("the command did not end before the timeout"));
	else if (ended && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0)
		json_array_append_new(mismatches, json_sprintf("the command exited with status %d", WEXITSTATUS(wstatus)));
	else if (ended && WIFSIGNALED(wstatus))
		json_array_append_new(mismatches,
				      json_sprintf("the command was killed by %s", signal_name(WTERMSIG(wstatus))));
	if (leaked)
		json_array_append_new(mismatches, json_sprintf("%zu process%s outlived the command", leaked,
							       leaked == 1 ? "" : "es"));
	return mismatches;
}

/* The command ran but the probe never spoke from it: ld.so did not preload
 * it (a static or set-user-ID program, or a probe path the command cannot
 * see: a chroot, a container). Said, rather than a tree of one "actor". */
static json_t *
probe_warnings(const struct watch_run *w, const json_t *events)
{
	json_t *warnings = json_array();
	if (w->exec_errno || w->tree.top <= 0)
		return warnings;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (json_int(ev, "pid", 0) == w->tree.top && strcmp(json_str(ev, "ev", ""), "exec") == 0)
			return warnings;
	const char *why = watch_probe_obstacle(w->path);
	json_t *msg = json_sprintf("the probe was not loaded into the command (pid %d): %s; its tree is seen from "
				   "outside only (no fork, fd or signal events)",
				   (int) w->tree.top,
				   why ? why : "a static or set-user-ID program, or the probe's path is not visible to "
					       "it (a chroot or a container: set FORKSCOPE_PROBE to a path inside)");
	fprintf(stderr, "forkscope watch: warning: %s\n", json_string_value(msg));
	json_array_append_new(warnings, msg);
	return warnings;
}

/* A process the triage saw as a zombie (exited, never reaped) is drawn as
 * one, not as the clean "exit 0" its exit event alone would say. */
static void
mark_zombies(json_t *actors, const json_t *snapshot)
{
	size_t i, k;
	json_t *a, *p;
	json_array_foreach(json_object_get(snapshot, "processes"), k, p) {
		if (!json_bool(p, "zombie", 0) && strcmp(json_str(p, "state", ""), "Z") != 0)
			continue;
		json_array_foreach(actors, i, a)
			if (json_int(a, "pid", 0) == json_int(p, "pid", -1))
				json_object_set_new(a, "zombie", json_true());
	}
}

static json_t *
build_cell(struct watch_run *w, bool ended, int wstatus, bool hang, uint64_t end_ns)
{
	const char *outcome = hang ? "hang"
			      : (!w->infra_error && ended && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) ? "ok"
														: "error";
	json_t *cell = json_pack("{s:n,s:n,s:n,s:n,s:n,s:i,s:n,s:n,s:n}", "id", "name", "cell", "file", "description",
				 "repeat", 0, "backend", "capture", "fixes");
	json_object_set_new(cell, "timeouts",
			    json_pack("{s:o,s:o}", "run_ns", w->o->timeout_ns ? json_u64(w->o->timeout_ns) : json_null(),
				      "linger_ns", json_u64(w->o->linger_ns)));
	json_object_set_new(cell, "expected", json_pack("{s:s,s:n,s:i}", "outcome", "ok", "verdict", "leaked", 0));
	struct cell_facts_common common = {
		.id = w->cmdline, .name = w->cmdline, .outcome = outcome, .ended = ended, .wstatus = wstatus,
		.infra_error = w->infra_error, .mismatches = watch_mismatches(w, ended, wstatus, hang),
		.verdicts = w->verdicts, .leftovers = w->leftovers,
		.duration_ns = end_ns > w->tree.start_ns ? end_ns - w->tree.start_ns : 0,
		.events_file = "events.ndjson", .snapshot_file = w->snapshot_written ? "snapshot.json" : NULL,
	};
	result_cell_common(cell, &common);
	json_object_set_new(cell, "errors", json_array());
	json_object_set(cell, "teardown", w->teardown ? w->teardown : json_null());
	json_t *events = events_load(w->events_path, NULL);
	json_t *actors = result_actors_from_events(events, w->tree.top, w->tree.start_ns);
	mark_zombies(actors, w->snapshot);
	json_object_set_new(cell, "actors", actors);
	json_object_set_new(cell, "warnings", probe_warnings(w, events));
	json_decref(events);
	json_object_set_new(cell, "output_tail", json_null());
	return cell;
}

/* The result document of a watch: one cell, its fields also at top level
 * (scripts read a watch without indexing). */
static json_t *
watch_document(struct watch_run *w, json_t *cell, int64_t wall_start, uint64_t t0)
{
	json_t *doc = result_document("watch", w->o->argv, w->o->argc, wall_start, now_ns() - t0, w->run_dir,
				      json_pack("[O]", cell));
	const char *key;
	json_t *value;
	json_object_foreach(cell, key, value)
		if (!json_object_get(doc, key) || strcmp(key, "duration_ns") == 0)
			json_object_set(doc, key, value);
	return doc;
}

/* After the command ended: give what it left behind the linger window, then
 * say what it is and what it does before ending it. */
static void
after_command(struct watch_run *w, uint64_t end_ns)
{
	size_t alive = wait_descendants_gone(end_ns + w->o->linger_ns);
	if (alive > 0 && !session_interrupted()) {
		fprintf(stderr, "forkscope watch: %zu process%s outlived the command, triaging\n", alive,
			alive == 1 ? "" : "es");
		triage(w, 0, "leftovers");
	}
	if (alive > 0)
		end_everything(w, "leftovers");
	json_t *escaped = result_escaped_verdict(w->leftovers, w->cmdline, false);
	if (escaped) {
		/* escaped replaces nothing: it names processes the triage did not. */
		json_array_append_new(w->verdicts, escaped);
	}
}

static int
exit_code_of(const struct watch_run *w, bool ended, int status, bool hang)
{
	if (hang)
		return WATCH_EXIT_HANG;
	if (session_interrupted() && !ended)
		return 128 + session_interrupted();
	if (w->exec_errno)
		return w->exec_errno == ENOENT ? 127 : 126;
	if (ended && WIFEXITED(status))
		return WEXITSTATUS(status);
	if (ended && WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static void
watch_free(struct watch_run *w)
{
	eventlog_close();
	free_env(w->env);
	free(w->sh_argv);
	json_decref(w->leftovers);
	json_decref(w->teardown);
	json_decref(w->verdicts);
	json_decref(w->snapshot);
	free(w->events_path);
	free(w->snapshot_path);
	free(w->cmdline);
	free(w->path);
	free(w->probe);
}

int
watch_main(const struct watch_options *o, char **cmd, json_t **ret_doc, char **ret_run_dir)
{
	struct watch_run w = { .o = o, .verdicts = json_array(), .leftovers = json_array() };
	int exit_code = prepare(&w, cmd);
	if (exit_code) {
		free(w.run_dir);
		watch_free(&w);
		return exit_code;
	}
	w.tree.events_path = w.events_path;
	w.tree.snapshot_path = w.snapshot_path;
	w.tree.window_ns = o->timeout_ns;
	/* A SIGKILL of forkscope must not leave the command's tree behind. */
	struct session_options so = { .hold = o->hold, .stacks = o->stacks, .selfdump = o->selfdump,
				      .rules_file = o->rules_file, .events_path = w.events_path };
	if (session_start(&so) < 0)
		fprintf(stderr, "forkscope: warning: cannot start the guardian process: %s\n", strerror(errno));
	int64_t wall_start = (int64_t) time(NULL);
	uint64_t t0 = now_ns();
	const char *call = NULL;
	int pidfd = start_command(&w, cmd, &call);
	if (pidfd < 0 && w.tree.top <= 0) {
		fprintf(stderr, "forkscope watch: cannot start the command: %s: %s%s\n", call, strerror(-pidfd),
			pidfd == -EAGAIN   ? " (process limit reached: RLIMIT_NPROC or a pids cgroup)"
			: pidfd == -EMFILE ? " (open file limit reached: RLIMIT_NOFILE, ulimit -n)"
					   : "");
		free(w.run_dir);
		watch_free(&w);
		return WATCH_EXIT_USAGE;
	}
	if (pidfd < 0) {
		fprintf(stderr, "forkscope watch: pidfd_open %d: %s%s; the command's tree is ended\n", (int) w.tree.top,
			strerror(-pidfd), pidfd == -EMFILE ? " (open file limit reached: RLIMIT_NOFILE, ulimit -n)" : "");
		w.infra_error = "forkscope could not watch the command (pidfd_open failed)";
	}
	int wr = pidfd >= 0 ? session_wait(pidfd, o->timeout_ns ? t0 + o->timeout_ns : 0) : -EBADF;
	if (pidfd >= 0)
		(void) close(pidfd);
	int status = 0;
	bool ended = false, hang = false;
	uint64_t end_ns = 0;
	if (reap_children(w.tree.top, &status) == 1) {
		ended = true;
		end_ns = now_ns();
		emit_own("reaped", &w, status, true);
	}
	if (w.own_terminal)
		take_terminal(getpgrp());

	if (!ended && wr == 0) {
		/* The deadline passed with the command alive: triage before touching it. */
		hang = true;
		char d[32];
		fprintf(stderr, "forkscope watch: %s: no end after %s, triaging\n", w.cmdline,
			duration_format(o->timeout_ns, d, sizeof(d)));
		triage(&w, w.tree.top, "timeout");
		if (o->hold) {
			char *text = session_hold_text(&w.tree, w.run_dir);
			fprintf(stderr, "forkscope: %s\n", text);
			free(text);
			json_t *cell = build_cell(&w, false, 0, true, now_ns());
			*ret_doc = watch_document(&w, cell, wall_start, t0);
			json_decref(cell);
			*ret_run_dir = w.run_dir;
			watch_free(&w);
			return WATCH_EXIT_HANG;
		}
		end_everything(&w, "timeout");
	} else if (!ended) {
		if (session_interrupted())
			fprintf(stderr, "forkscope watch: interrupted by %s; ending the command's tree SIGINT first\n",
				signal_name(session_interrupted()));
		end_everything(&w, "interrupted");
		if (reap_children(w.tree.top, &status) == 1) {
			ended = true;
			end_ns = now_ns();
		}
	} else
		after_command(&w, end_ns);
	(void) wait_descendants_gone(now_ns() + 5 * NSEC_PER_SEC);
	eventlog_close();

	json_t *cell = build_cell(&w, ended, status, hang, end_ns ? end_ns : now_ns());
	*ret_doc = watch_document(&w, cell, wall_start, t0);
	json_decref(cell);
	exit_code = exit_code_of(&w, ended, status, hang);
	*ret_run_dir = w.run_dir;
	watch_free(&w);
	return exit_code;
}
