#include "harness/runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/actor.h"
#include "harness/backend.h"
#include "harness/cli_output.h"
#include "harness/guardian.h"
#include "harness/reaper.h"
#include "harness/results.h"
#include "harness/scenario.h"
#include "harness/triage.h"
#include "probes/eventlog.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

/* Grace between the rungs of the runner's own SIGINT -> SIGTERM -> SIGKILL ladder. */
#define RUNNER_GRACE_NS (500 * NSEC_PER_MSEC)

static volatile sig_atomic_t interrupted;

static void
on_interrupt(int sig)
{
	/* The guardian died (guardian.h): wind down as on SIGTERM, even when
	 * the user had SIGTERM ignored. */
	interrupted = sig == guardian_lost_signal() ? SIGTERM : sig;
}


/* ---- collecting scenario files ---- */

int
runner_collect(char **paths, size_t n_paths, struct scenario ***ret, size_t *ret_n)
{
	struct scenario_collection c;
	int r = scenario_collect(paths, n_paths, &c);
	if (r < 0) {
		fprintf(stderr, "forkscope: collecting scenarios: %s\n", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < c.n_notes; i++)
		fprintf(stderr, "%s%s\n", c.notes[i].error ? "" : "forkscope: warning: ", c.notes[i].message);
	if (c.n_errors > 0) {
		scenario_collection_clear(&c);
		return -EINVAL;
	}
	*ret = c.scenarios;
	*ret_n = c.n_scenarios;
	c.scenarios = NULL;
	c.n_scenarios = 0;
	scenario_collection_clear(&c);
	return 0;
}

/* ---- run directory ---- */

int
runner_make_run_dir(const char *out_dir, const char *prefix, char **ret_path)
{
	char *path = NULL;
	if (out_dir) {
		if (mkdir(out_dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		path = realpath(out_dir, NULL);
		if (!path)
			return -errno;
		/* An existing directory on a read-only filesystem (or not ours to
		 * write): refuse before any tree runs, not cell by cell after. */
		if (faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) < 0) {
			int e = -errno;
			free(path);
			return e;
		}
	} else {
		const char *tmp = getenv("TMPDIR");
		time_t t = time(NULL);
		struct tm tm;
		(void) gmtime_r(&t, &tm);
		char stamp[32];
		(void) strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
		if (asprintf(&path, "%s/forkscope-%s-%s-%d", tmp && *tmp ? tmp : "/tmp", prefix, stamp,
			     (int) getpid()) < 0)
			return -ENOMEM;
		if (mkdir(path, 0755) < 0) {
			int e = -errno;
			free(path);
			return e;
		}
	}
	*ret_path = path;
	return 0;
}

json_t *
runner_host_json(void)
{
	struct utsname u;
	(void) uname(&u);
	return json_pack("{s:s,s:s,s:i}", "kernel", u.release, "machine", u.machine, "nproc",
			 (int) sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- the capture host: a naive test runner around the root ---- */

__attribute__((noreturn)) static void
capture_host(const struct scenario *sc, const char *cell_dir)
{
	eventlog_set_context("\"actor\":\"capture\",\"kind\":\"capture\"");
	struct event *e = malloc(sizeof(*e));
	event_begin(e, "capture_start");
	event_str(e, "capture", capture_name(sc->capture));
	(void) event_emit(e);

	int out = -1, pipefd[2] = { -1, -1 };
	if (sc->capture == CAPTURE_PIPE) {
		if (pipe2(pipefd, O_CLOEXEC) < 0)
			_exit(70);
		out = pipefd[1];
	} else {
		/* pytest's FDCapture: a TemporaryFile, i.e. a deleted regular file. */
		out = open(cell_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (out < 0)
			_exit(70);
		/* ... and pytest keeps a dup of the original stdout at a higher fd
		 * (os.dup: non-inheritable, so exec drops it; fork keeps it). */
		(void) fcntl(1, F_DUPFD_CLOEXEC, 10);
	}
	pid_t root = fork();
	if (root < 0) {
		/* Named in the events: results.c makes a refused fork the cell's infra_error. */
		int fork_errno = errno;
		actor_emit_spawn_failed(&sc->root, "fork", fork_errno, strerror(fork_errno));
		_exit(70);
	}
	if (root == 0) {
		(void) dup2(out, 1);
		(void) dup2(out, 2);
		if (pipefd[0] >= 0)
			(void) close(pipefd[0]);
		(void) close(out);
		eventlog_set_context("");
		actor_root_main(sc);
	}
	if (pipefd[1] >= 0)
		(void) close(pipefd[1]);
	/* The naive runner: wait for the tree first, read its output afterwards. */
	int status = 0;
	while (waitpid(root, &status, 0) < 0 && errno == EINTR)
		;
	eventlog_set_context("\"actor\":\"capture\",\"kind\":\"capture\"");
	event_begin(e, "reaped");
	event_int(e, "child_id", 0);
	event_int(e, "child_pid", root);
	if (WIFEXITED(status))
		event_int(e, "code", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		event_str(e, "signal", signal_name(WTERMSIG(status)));
	(void) event_emit(e);
	/* Written then renamed, like every file of the run directory: a full
	 * disk leaves no half output.txt. */
	char path[4096], tmp[4200];
	(void) snprintf(path, sizeof(path), "%s/output.txt", cell_dir);
	(void) snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid());
	int dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int src = sc->capture == CAPTURE_PIPE ? pipefd[0] : out;
	if (sc->capture != CAPTURE_PIPE)
		(void) lseek(src, 0, SEEK_SET);
	char buf[65536];
	ssize_t n;
	bool copied = dst >= 0;
	while ((n = read(src, buf, sizeof(buf))) > 0)
		if (copied && write_full(dst, buf, (size_t) n) < 0)
			copied = false;
	if (dst >= 0) {
		if (close(dst) < 0)
			copied = false;
		if (!copied || rename(tmp, path) < 0)
			(void) unlink(tmp);
	}
	/* Pass the root's end on, as a test runner's exit status would. */
	if (WIFSIGNALED(status)) {
		(void) signal(WTERMSIG(status), SIG_DFL);
		(void) prctl(PR_SET_DUMPABLE, 0);
		(void) kill(getpid(), WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* ---- one cell ---- */

struct cell_ctx {
	const struct run_options *o;
	const char *run_dir;
	const char *exe;
	size_t index;
	unsigned repeat;
};

static void
sanitize(char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.'))
			*s = '_';
}

static pid_t
root_pid_from_events(const char *events_path)
{
	json_t *events = events_load(events_path, NULL);
	pid_t pid = 0;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (strcmp(json_str(ev, "ev", ""), "ready") == 0 && json_int(ev, "child_id", -1) == 0)
			pid = (pid_t) json_int(ev, "child_pid", 0);
	json_decref(events);
	return pid;
}

static json_t *
leftover_json(const struct ended_proc *p, const json_t *events, pid_t pgid, const char **ret_actor)
{
	const char *actor = NULL;
	bool is_actor = events_pid_is_actor(events, p->pid, &actor);
	const char *started_by = NULL;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (strcmp(json_str(ev, "ev", ""), "daemon_start") == 0 && json_int(ev, "pid", 0) == p->pid)
			started_by = json_str(ev, "started_by", NULL);
	char how[256];
	if (is_actor)
		(void) snprintf(how, sizeof(how), "actor %s outlived the root", actor ? actor : "?");
	else if (p->pgid != pgid)
		(void) snprintf(how, sizeof(how), "left the process group (setsid)%s%s and was adopted by the subreaper",
				started_by ? ", started by " : "", started_by ? started_by : "");
	else
		(void) snprintf(how, sizeof(how), "outlived the root in its process group");
	*ret_actor = is_actor ? (actor ? actor : "?") : NULL;
	return json_pack("{s:i,s:s,s:i,s:s,s:s,s:b}", "pid", (int) p->pid, "name",
			 is_actor && actor ? actor : (started_by ? "daemon" : p->comm), "pgid", (int) p->pgid, "how",
			 how, "ended_by", p->ended_by ? p->ended_by : "?", "actor", is_actor);
}

/* An escaped process is an observation of the runner itself: it was alive after
 * the tree ended, outside what the tree's own teardown ended. */
static json_t *
escaped_verdict(json_t *leftovers)
{
	json_t *pids = json_array();
	struct strbuf sb = STRBUF_INIT;
	size_t i, n = 0;
	json_t *l;
	json_array_foreach(leftovers, i, l) {
		if (json_bool(l, "actor", 0))
			continue;
		n++;
		json_array_append_new(pids, json_integer(json_int(l, "pid", 0)));
		(void) strbuf_printf(&sb, "  pid %lld (%s): %s; ended by %s\n", (long long) json_int(l, "pid", 0),
				     json_str(l, "name", "?"), json_str(l, "how", "?"), json_str(l, "ended_by", "?"));
	}
	if (n == 0) {
		json_decref(pids);
		strbuf_free(&sb);
		return NULL;
	}
	char summary[160];
	(void) snprintf(summary, sizeof(summary), "%zu process%s left the tree alive after the run", n,
			n == 1 ? "" : "es");
	struct strbuf text = STRBUF_INIT;
	(void) strbuf_printf(&text, "%s:\n%sRemedy: end subtrees by process group (fixes.tree_kill) and tear runs down SIGINT first.",
			     summary, sb.data ? sb.data : "");
	json_t *v = json_pack("{s:s,s:s,s:o,s:o,s:s,s:s}", "class", "escaped", "summary", summary, "pids", pids,
			      "evidence", json_pack("{s:O}", "leftovers", leftovers), "remedy",
			      "end subtrees by process group (fixes.tree_kill) and tear runs down SIGINT first",
			      "text", text.data);
	strbuf_free(&sb);
	strbuf_free(&text);
	return v;
}

static int
wait_pidfd(int pidfd, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline_ns)
			return 0;
		int ms = (int) MIN((deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, (uint64_t) 86400000);
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r < 0 && errno == EINTR) {
			if (interrupted)
				return -EINTR;
			continue;
		}
	}
}

static void
run_triage(const struct scenario *sc, const struct cell_ctx *c, const char *cell_dir, const char *events_path,
	   pid_t top, pid_t pgid, uint64_t start_ns, const char *reason, json_t **verdicts, char **snapshot_rel)
{
	json_t *events = events_load(events_path, NULL);
	pid_t roots[] = { top };
	struct triage_request req = {
		.roots = roots, .n_roots = top > 0 ? 1 : 0, .subreaper = getpid(), .pgid = pgid,
		.stacks = c->o->stacks, .rules_file = c->o->rules_file, .events = events,
		.start_ns = start_ns, .reason = reason, .python_mode = 1,
	};
	json_t *snap = NULL, *found = NULL;
	int r = triage_run(&req, &snap, &found);
	if (r == 0) {
		char path[4096];
		(void) snprintf(path, sizeof(path), "%s/snapshot.json", cell_dir);
		int wr = json_write_file_atomic(snap, path, JSON_INDENT(1));
		if (wr == 0) {
			const char *rel = cell_dir + strlen(c->run_dir) + 1;
			if (asprintf(snapshot_rel, "%s/snapshot.json", rel) < 0)
				*snapshot_rel = NULL;
		} else
			fprintf(stderr, "forkscope: write %s: %s\n", path, strerror(-wr));
		size_t i;
		json_t *v;
		json_array_foreach(found, i, v)
			json_array_append(*verdicts, v);
	} else
		fprintf(stderr, "forkscope: triage of %s: %s\n", sc->name, strerror(-r));
	json_decref(snap);
	json_decref(found);
	json_decref(events);
}

static json_t *
run_cell(const struct cell_ctx *c, const struct scenario *sc, int *ret_held)
{
	char *cell_dir = NULL, *events_path = NULL, *spec_path = NULL, *output_path = NULL;
	char *dirname = NULL;
	if (asprintf(&dirname, "%03zu-%s%s%s", c->index, sc->name, sc->cell ? "-" : "", sc->cell ? sc->cell : "") < 0)
		return NULL;
	sanitize(dirname + 4);
	if (c->repeat) {
		char *d2 = NULL;
		if (asprintf(&d2, "%s-r%u", dirname, c->repeat) >= 0) {
			free(dirname);
			dirname = d2;
		}
	}
	char *cells = NULL;
	if (asprintf(&cells, "%s/cells", c->run_dir) >= 0) {
		(void) mkdir(cells, 0755);
		free(cells);
	}
	if (asprintf(&cell_dir, "%s/cells/%s", c->run_dir, dirname) < 0 ||
	    asprintf(&events_path, "%s/events.ndjson", cell_dir) < 0 ||
	    asprintf(&spec_path, "%s/spec.json", cell_dir) < 0 || asprintf(&output_path, "%s/output.txt", cell_dir) < 0)
		return NULL;
	struct cell_facts f = { .repeat = c->repeat };
	json_t *leftovers = json_array();
	json_t *verdicts = json_array();
	char *snapshot_rel = NULL;
	char *events_rel = NULL;
	if (asprintf(&events_rel, "cells/%s/events.ndjson", dirname) < 0)
		events_rel = NULL;
	f.events_file = events_rel;
	f.leftovers = leftovers;
	f.verdicts = verdicts;
	pid_t top = -1;
	int pidfd = -1;
	/* Infrastructure errors name the path or the call and the errno text,
	 * on stderr and in the cell's infra_error. */
	char infra[4200];
	int w;

	if (mkdir(cell_dir, 0755) < 0 && errno != EEXIST) {
		(void) snprintf(infra, sizeof(infra), "cannot create the cell directory %s: %s", cell_dir,
				strerror(errno));
		f.infra_error = infra;
		goto out;
	}
	char *spec = scenario_to_json(sc);
	w = spec ? text_write_file_atomic(spec_path, spec, strlen(spec)) : -ENOMEM;
	free(spec);
	if (w < 0) {
		(void) snprintf(infra, sizeof(infra), "cannot write %s: %s", spec_path, strerror(-w));
		f.infra_error = infra;
		goto out;
	}
	if (!c->o->no_probes && (w = eventlog_open(events_path)) < 0) {
		(void) snprintf(infra, sizeof(infra), "cannot open %s: %s", events_path, strerror(-w));
		f.infra_error = infra;
		goto out;
	}
	actor_set_context(spec_path, c->exe);
	eventlog_set_context("\"actor\":\"forkscope\",\"kind\":\"runner\"");

	f.start_ns = now_ns();
	struct event *e = malloc(sizeof(*e));
	event_begin(e, "spawn");
	event_str(e, "child", sc->root.name);
	event_int(e, "child_id", 0);
	event_str(e, "cell", sc->cell ? sc->cell : "");
	(void) event_emit(e);
	free(e);

	top = fork();
	if (top < 0) {
		int fork_errno = errno;
		(void) snprintf(infra, sizeof(infra), "fork of the tree's root failed: %s%s", strerror(fork_errno),
				fork_errno == EAGAIN ? " (process limit reached: RLIMIT_NPROC or a pids cgroup)" : "");
		f.infra_error = infra;
		goto out;
	}
	if (top == 0) {
		/* If forkscope dies, the top of the tree goes with it (the guardian
		 * ends the rest) - unless the user asked to hold a hung tree. */
		if (!c->o->hold)
			(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		(void) setpgid(0, 0);
		runner_child_prelude();
		eventlog_set_context("");
		if (sc->capture == CAPTURE_NONE) {
			/* stdout carries forkscope's results: the tree writes to stderr. */
			(void) dup2(2, 1);
			actor_root_main(sc);
		}
		capture_host(sc, cell_dir);
	}
	(void) setpgid(top, top);
	f.pgid = top;
	pidfd = pidfd_open(top, 0);
	uint64_t deadline = f.start_ns + sc->timeouts.run_ns;
	uint64_t interrupt_at = sc->interrupt.enabled ? f.start_ns + sc->interrupt.after_ns : 0;
	for (;;) {
		uint64_t until = interrupt_at ? MIN(deadline, interrupt_at) : deadline;
		int r = wait_pidfd(pidfd, until);
		if (r == 1)
			break;
		if (r == -EINTR)
			break;
		if (interrupt_at && now_ns() >= interrupt_at) {
			/* The operator steps in (tractor F13: pkill skipped the cascade). */
			pid_t target = sc->interrupt.target == INTERRUPT_GROUP ? -f.pgid : root_pid_from_events(events_path);
			if (target != 0)
				(void) kill(target, sc->interrupt.signal);
			interrupt_at = 0;
			continue;
		}
		if (now_ns() >= deadline)
			break;
	}
	int status;
	if (reap_children(top, &status) == 1) {
		f.root_ended = true;
		f.root_wstatus = status;
		f.root_end_ns = now_ns();
		if (sc->capture == CAPTURE_NONE) {
			eventlog_set_context("\"actor\":\"forkscope\",\"kind\":\"runner\"");
			struct event *re = malloc(sizeof(*re));
			event_begin(re, "reaped");
			event_int(re, "child_id", 0);
			event_int(re, "child_pid", top);
			if (WIFEXITED(status))
				event_int(re, "code", WEXITSTATUS(status));
			else if (WIFSIGNALED(status))
				event_str(re, "signal", signal_name(WTERMSIG(status)));
			(void) event_emit(re);
			free(re);
		}
	}

	if (!f.root_ended && !interrupted) {
		/* The deadline passed with the tree alive: triage before touching it. */
		f.hang = true;
		fprintf(stderr, "forkscope: %s%s%s%s: no end after %.1fs, triaging\n", sc->name, sc->cell ? "[" : "",
			sc->cell ? sc->cell : "", sc->cell ? "]" : "", (double) sc->timeouts.run_ns / 1e9);
		run_triage(sc, c, cell_dir, events_path, top, f.pgid, f.start_ns, "timeout", &verdicts, &snapshot_rel);
		if (c->o->hold) {
			*ret_held = 1;
			fprintf(stderr,
				"forkscope: --hold: the hung tree is left as it is for inspection.\n"
				"  process group %d (top pid %d); snapshot: %s/snapshot.json\n"
				"  inspect: forkscope triage %d\n"
				"  end it:  kill -INT -- -%d; sleep 1; kill -KILL -- -%d\n",
				(int) f.pgid, (int) top, cell_dir, (int) top, (int) f.pgid, (int) f.pgid);
			goto out;
		}
	} else if (f.root_ended) {
		/* The root ended: give the rest of the tree the linger window. */
		size_t alive = wait_descendants_gone(f.root_end_ns + sc->timeouts.linger_ns);
		if (alive > 0) {
			json_t *events = events_load(events_path, NULL);
			struct proc_brief *d = NULL;
			size_t nd = 0;
			bool actor_alive = false;
			if (proc_descendants(getpid(), &d, &nd) == 0)
				for (size_t i = 0; i < nd; i++)
					if (d[i].state != 'Z' && events_pid_is_actor(events, d[i].pid, NULL))
						actor_alive = true;
			free(d);
			json_decref(events);
			/* An actor still alive means the tree never finished: a hang. */
			if (actor_alive)
				f.hang = true;
			run_triage(sc, c, cell_dir, events_path, 0, f.pgid, f.start_ns, "leftovers", &verdicts,
				   &snapshot_rel);
		}
	}

	/* End whatever is left, SIGINT first, and say what ended each. Actors the
	 * runner had to end are the hang itself; anything else left the tree
	 * alive: those are the leaks. */
	struct ended_proc *ended = NULL;
	size_t n_ended = 0;
	if (reaper_end_all(f.pgid, RUNNER_GRACE_NS, &ended, &n_ended) == 0) {
		/* Parse the events only when someone is left to name (most cells:
		 * nobody; it cost 5.7 ms of an 85-actor cell's duration_ns). */
		json_t *events = n_ended > 0 ? events_load(events_path, NULL) : NULL;
		for (size_t i = 0; i < n_ended; i++) {
			const char *actor = NULL;
			json_t *l = leftover_json(&ended[i], events, f.pgid, &actor);
			if (actor)
				json_decref(l);
			else
				json_array_append_new(leftovers, l);
		}
		json_decref(events);
		free(ended);
	}
	json_t *escaped = escaped_verdict(leftovers);
	if (escaped)
		json_array_append_new(verdicts, escaped);
	(void) wait_descendants_gone(now_ns() + 5 * NSEC_PER_SEC);
	if (!f.root_ended)
		(void) reap_children(top, &status);
	f.end_ns = now_ns();
	f.snapshot_file = snapshot_rel;
	f.output_file = output_path;

out:
	if (pidfd >= 0)
		(void) close(pidfd);
	eventlog_close();
	json_t *cell = results_build_cell(sc, events_path, &f);
	json_decref(leftovers);
	json_decref(verdicts);
	free(snapshot_rel);
	free(events_rel);
	free(cell_dir);
	free(events_path);
	free(spec_path);
	free(output_path);
	free(dirname);
	return cell;
}

/* ---- the whole run ---- */

static int
add_backend_axis(struct scenario *s)
{
	for (size_t i = 0; i < s->n_matrix; i++)
		if (strcmp(s->matrix[i].key, "backend") == 0)
			return 0;
	struct matrix_axis *m = realloc(s->matrix, (s->n_matrix + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	s->matrix = m;
	struct matrix_axis *ax = &m[s->n_matrix++];
	memset(ax, 0, sizeof(*ax));
	ax->key = strdup("backend");
	ax->values = calloc(3, sizeof(char *));
	ax->values[0] = strdup("mtf");
	ax->values[1] = strdup("fork");
	ax->values[2] = strdup("spawn");
	ax->n_values = 3;
	return 0;
}

/* Every tree of a run is forked from this process without exec, so whatever
 * the runner holds is inherited (and copied at each fork, walked at each
 * exit) by every later actor: kept in memory, the finished cells' results
 * made the 10th cell of a run 1.59x slower than the first and broke the
 * cascade of a 1024-actor cell run after another (docs/performance.md). So
 * each finished cell goes to cells/<dir>/cell.json at once and only its path
 * stays here; the memory is handed back (malloc_trim) before the next tree.
 * If it cannot be written the cell simply stays in memory. */
static void
spill_cell(json_t *results, json_t *cell, const char *run_dir)
{
	const char *events = json_str(cell, "events_file", NULL);
	const char *slash = events ? strrchr(events, '/') : NULL;
	char *path = NULL;
	if (slash && asprintf(&path, "%s/%.*s/cell.json", run_dir, (int) (slash - events), events) < 0)
		path = NULL;
	if (path && json_write_file_atomic(cell, path, JSON_COMPACT) == 0) {
		json_t *ref = json_pack("{s:s}", "$spilled", path);
		if (ref) {
			json_array_append_new(results, ref);
			json_decref(cell);
			free(path);
			(void) malloc_trim(0);
			return;
		}
		(void) unlink(path);
	}
	free(path);
	json_array_append_new(results, cell);
}

/* Read the spilled cells back once every tree has ended; cell.json stays in
 * the cell's directory (a per-cell copy of its entry in result.json). */
static void
unspill_cells(json_t *results)
{
	size_t i;
	json_t *v;
	json_array_foreach(results, i, v) {
		const char *path = json_str(v, "$spilled", NULL);
		if (!path)
			continue;
		json_error_t err;
		json_t *cell = json_load_file(path, 0, &err);
		if (!cell) {
			fprintf(stderr, "forkscope: cannot read back %s: %s\n", path, err.text);
			cell = json_pack("{s:s, s:b, s:s}", "name", path, "passed", 0, "infra_error", err.text);
		}
		json_array_set_new(results, i, cell);
	}
}

int
runner_main(const struct run_options *o, char **paths, size_t n_paths)
{
	struct scenario **scenarios = NULL;
	size_t n_scenarios = 0;
	if (runner_collect(paths, n_paths, &scenarios, &n_scenarios) < 0)
		return 2;

	/* Expand matrices, apply --set, then pick the shard. */
	struct scenario **cells = NULL;
	size_t n_cells = 0;
	int rc = 0;
	for (size_t i = 0; i < n_scenarios && rc == 0; i++) {
		if (o->matrix && add_backend_axis(scenarios[i]) < 0)
			rc = 2;
		struct scenario **sc_cells = NULL;
		size_t n = 0;
		char *err = NULL;
		if (scenario_expand(scenarios[i], &sc_cells, &n, &err) < 0) {
			fprintf(stderr, "%s\n", err ? err : "matrix expansion failed");
			free(err);
			rc = 2;
			break;
		}
		cells = realloc(cells, (n_cells + n) * sizeof(*cells));
		for (size_t k = 0; k < n; k++) {
			for (size_t s = 0; s < o->n_sets && rc == 0; s++) {
				if (scenario_set(sc_cells[k], o->sets[s], &err) < 0) {
					fprintf(stderr, "%s\n", err ? err : o->sets[s]);
					free(err);
					err = NULL;
					rc = 2;
				}
			}
			if (o->backend) {
				char assign[64];
				(void) snprintf(assign, sizeof(assign), "backend=%s", o->backend);
				if (scenario_set(sc_cells[k], assign, &err) < 0) {
					fprintf(stderr, "%s\n", err ? err : assign);
					free(err);
					err = NULL;
					rc = 2;
				}
			}
			if (o->timeout_ns)
				sc_cells[k]->timeouts.run_ns = o->timeout_ns;
			cells[n_cells++] = sc_cells[k];
		}
		free(sc_cells);
	}
	for (size_t i = 0; i < n_scenarios; i++)
		scenario_free(scenarios[i]);
	free(scenarios);
	if (rc) {
		scenario_free_cells(cells, n_cells);
		return rc;
	}

	char *run_dir = NULL;
	int r = runner_make_run_dir(o->out_dir, "run", &run_dir);
	if (r < 0) {
		fprintf(stderr, "forkscope run: cannot create or write the run directory %s: %s\n",
			o->out_dir ? o->out_dir : "", strerror(-r));
		scenario_free_cells(cells, n_cells);
		return 2;
	}
	/* --hold leaves a hung tree alive on purpose: no guardian to end it. */
	if (!o->hold && guardian_split() < 0)
		fprintf(stderr, "forkscope: warning: cannot start the guardian process: %s\n", strerror(errno));
	(void) reaper_become_subreaper();
	struct sigaction sa = { .sa_handler = on_interrupt };
	(void) sigaction(SIGINT, &sa, NULL);
	(void) sigaction(SIGTERM, &sa, NULL);
	(void) sigaction(guardian_lost_signal(), &sa, NULL);
	(void) signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "forkscope: run directory %s\n", run_dir);

	uint64_t t0 = now_ns();
	time_t wall = time(NULL);
	json_t *results = json_array();
	unsigned repeat = o->repeat ? o->repeat : 1;
	size_t index = 0;
	int held = 0;
	for (size_t i = 0; i < n_cells && !interrupted && !held; i++) {
		if (o->shard_n > 1 && i % o->shard_n != o->shard_k - 1)
			continue;
		for (unsigned rep = 0; rep < repeat && !interrupted && !held; rep++) {
			struct cell_ctx c = { .o = o, .run_dir = run_dir, .exe = o->exe_path, .index = index++,
					      .repeat = repeat > 1 ? rep : 0 };
			json_t *cell = run_cell(&c, cells[i], &held);
			if (!cell)
				continue;
			cli_print_progress(cell, o->color);
			spill_cell(results, cell, run_dir);
		}
	}
	unspill_cells(results);

	json_t *doc = json_object();
	json_object_set_new(doc, "schema_version", json_integer(1));
	json_object_set_new(doc, "tool", json_string("forkscope " FORKSCOPE_VERSION));
	json_object_set_new(doc, "command", json_string("run"));
	json_t *argv = json_array();
	for (int i = 0; i < o->argc; i++)
		json_array_append_new(argv, json_string(o->argv[i]));
	json_object_set_new(doc, "argv", argv);
	char stamp[32];
	struct tm tm;
	(void) gmtime_r(&wall, &tm);
	(void) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(doc, "started_at", json_string(stamp));
	json_object_set_new(doc, "duration_ns", json_u64(now_ns() - t0));
	json_object_set_new(doc, "host", runner_host_json());
	json_object_set_new(doc, "run_dir", json_string(run_dir));
	json_object_set_new(doc, "summary", cli_summary(results));
	json_object_set_new(doc, "scenarios", results);

	int exit_code = cli_write_outputs(doc, run_dir, o->json_path, o->junit_path, o->tap_path, o->trace_path,
					  o->html_path, o->color);
	json_t *summary = json_object_get(doc, "summary");
	if (json_int(summary, "failed", 0) > 0 || json_int(summary, "errors", 0) > 0)
		exit_code = MAX(exit_code, 1);
	if (interrupted) {
		fprintf(stderr, "forkscope: interrupted by %s; the current tree was ended SIGINT first\n",
			signal_name(interrupted));
		exit_code = MAX(exit_code, 1);
	}
	json_decref(doc);
	scenario_free_cells(cells, n_cells);
	free(run_dir);
	return exit_code;
}
