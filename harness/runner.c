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
#include "harness/reaper.h"
#include "harness/results.h"
#include "harness/scenario.h"
#include "harness/session.h"
#include "probes/eventlog.h"
#include "reports/result.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

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

/* Leftovers of a cell: actors the runner had to end are the hang itself;
 * anything else left the tree alive. */
static void
collect_leftovers(const struct ended_proc *ended, size_t n, const char *events_path, const json_t *snapshot,
		  pid_t top, pid_t pgid, json_t *leftovers)
{
	/* Parse the events only when someone is left to name (most cells:
	 * nobody; it cost 5.7 ms of an 85-actor cell's duration_ns). */
	json_t *events = n > 0 && events_path ? events_load(events_path, NULL) : NULL;
	for (size_t i = 0; i < n; i++) {
		const struct proc_brief *b = &ended[i].at_start;
		struct leftover_facts lf = {
			.pid = ended[i].pid, .ppid = b->ppid, .pgid = ended[i].pgid, .sid = b->sid,
			.state = b->state, .comm = ended[i].comm, .ended_by = ended[i].ended_by,
			.sig_blocked = ended[i].sig_blocked, .sig_ignored = ended[i].sig_ignored,
			.tree_top = top, .tree_pgid = pgid, .subreaper = getpid(),
		};
		json_t *l = result_leftover(&lf, events, snapshot);
		if (json_bool(l, "actor", 0))
			json_decref(l);
		else
			json_array_append_new(leftovers, l);
	}
	json_decref(events);
}

/* The watchdog's triage of a cell, before anything is signalled. */
static void
triage_cell(const struct scenario *sc, const struct cell_ctx *c, const char *cell_dir,
	    const struct session_tree *tree, const char *reason, json_t *verdicts, char **snapshot_rel,
	    json_t **ret_snapshot)
{
	struct session_triage t;
	session_triage(tree, reason, &t);
	if (t.snapshot_written) {
		const char *rel = cell_dir + strlen(c->run_dir) + 1;
		free(*snapshot_rel);
		if (asprintf(snapshot_rel, "%s/snapshot.json", rel) < 0)
			*snapshot_rel = NULL;
	} else if (t.write_error)
		fprintf(stderr, "forkscope: write %s: %s\n", tree->snapshot_path, strerror(-t.write_error));
	if (t.error && !t.snapshot)
		fprintf(stderr, "forkscope: triage of %s: %s\n", sc->name, strerror(-t.error));
	json_array_extend(verdicts, t.verdicts);
	if (ret_snapshot) {
		json_decref(*ret_snapshot);
		*ret_snapshot = json_incref(t.snapshot);
	}
	session_triage_release(&t);
}

/* Wait for the root until the deadline; the scenario's operator may step in
 * on the way (tractor F13: pkill skipped the cascade). */
static void
wait_cell(const struct scenario *sc, const struct cell_facts *f, int pidfd, const char *events_path)
{
	uint64_t deadline = f->start_ns + sc->timeouts.run_ns;
	uint64_t interrupt_at = sc->interrupt.enabled ? f->start_ns + sc->interrupt.after_ns : 0;
	for (;;) {
		uint64_t until = interrupt_at ? MIN(deadline, interrupt_at) : deadline;
		int r = session_wait(pidfd, until);
		if (r != 0)
			return; /* ended, interrupted, or poll failed (the tree is ended as on a timeout) */
		if (interrupt_at && now_ns() >= interrupt_at) {
			pid_t target = sc->interrupt.target == INTERRUPT_GROUP ? -f->pgid : root_pid_from_events(events_path);
			if (target != 0)
				(void) kill(target, sc->interrupt.signal);
			interrupt_at = 0;
			continue;
		}
		if (now_ns() >= deadline)
			return;
	}
}

static void
emit_root_reaped(pid_t top, int status)
{
	eventlog_set_context("\"actor\":\"forkscope\",\"kind\":\"runner\"");
	struct event *re = malloc(sizeof(*re));
	if (!re)
		return;
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

/* Whether an actor of the tree is still alive after the root ended. */
static bool
actor_alive(const char *events_path)
{
	json_t *events = events_load(events_path, NULL);
	struct proc_brief *d = NULL;
	size_t nd = 0;
	bool alive = false;
	if (proc_descendants(getpid(), &d, &nd) == 0)
		for (size_t i = 0; i < nd; i++)
			if (d[i].state != 'Z' && events_pid_is_actor(events, d[i].pid, NULL))
				alive = true;
	free(d);
	json_decref(events);
	return alive;
}

/* The files of one cell, under RUN_DIR/cells/NNN-name-cell[-rK]/. */
struct cell_paths {
	char *dirname, *dir, *events, *spec, *output, *snapshot, *events_rel;
};

static void
cell_paths_free(struct cell_paths *p)
{
	free(p->dirname);
	free(p->dir);
	free(p->events);
	free(p->spec);
	free(p->output);
	free(p->snapshot);
	free(p->events_rel);
}

static int
cell_paths_make(const struct cell_ctx *c, const struct scenario *sc, struct cell_paths *p)
{
	*p = (struct cell_paths){ 0 };
	if (asprintf(&p->dirname, "%03zu-%s%s%s", c->index, sc->name, sc->cell ? "-" : "", sc->cell ? sc->cell : "") < 0)
		return -ENOMEM;
	sanitize(p->dirname + 4);
	if (c->repeat) {
		char *d2 = NULL;
		if (asprintf(&d2, "%s-r%u", p->dirname, c->repeat) >= 0) {
			free(p->dirname);
			p->dirname = d2;
		}
	}
	char *cells = NULL;
	if (asprintf(&cells, "%s/cells", c->run_dir) >= 0) {
		(void) mkdir(cells, 0755);
		free(cells);
	}
	if (asprintf(&p->dir, "%s/cells/%s", c->run_dir, p->dirname) < 0 ||
	    asprintf(&p->events, "%s/events.ndjson", p->dir) < 0 || asprintf(&p->spec, "%s/spec.json", p->dir) < 0 ||
	    asprintf(&p->output, "%s/output.txt", p->dir) < 0 || asprintf(&p->snapshot, "%s/snapshot.json", p->dir) < 0 ||
	    asprintf(&p->events_rel, "cells/%s/events.ndjson", p->dirname) < 0) {
		cell_paths_free(p);
		return -ENOMEM;
	}
	return 0;
}

/* The cell directory, its spec.json and its event log. Infrastructure
 * errors name the path or the call and the errno text (the cell's
 * infra_error). */
static int
cell_prepare(const struct cell_ctx *c, const struct scenario *sc, const struct cell_paths *p, char *infra,
	     size_t infra_size)
{
	if (mkdir(p->dir, 0755) < 0 && errno != EEXIST) {
		(void) snprintf(infra, infra_size, "cannot create the cell directory %s: %s", p->dir, strerror(errno));
		return -1;
	}
	char *spec = scenario_to_json(sc);
	int w = spec ? text_write_file_atomic(p->spec, spec, strlen(spec)) : -ENOMEM;
	free(spec);
	if (w < 0) {
		(void) snprintf(infra, infra_size, "cannot write %s: %s%s", p->spec, strerror(-w),
				w == -EMFILE ? " (open file limit reached: RLIMIT_NOFILE, ulimit -n)" : "");
		return -1;
	}
	if (!c->o->no_probes && (w = eventlog_open(p->events)) < 0) {
		(void) snprintf(infra, infra_size, "cannot open %s: %s%s", p->events, strerror(-w),
				w == -EMFILE ? " (open file limit reached: RLIMIT_NOFILE, ulimit -n)" : "");
		return -1;
	}
	actor_set_context(p->spec, c->exe);
	eventlog_set_context("\"actor\":\"forkscope\",\"kind\":\"runner\"");
	return 0;
}

static json_t *
run_cell(const struct cell_ctx *c, const struct scenario *sc, int *ret_held)
{
	struct cell_paths paths;
	if (cell_paths_make(c, sc, &paths) < 0)
		return NULL;
	const char *cell_dir = paths.dir, *events_path = paths.events, *snapshot_path = paths.snapshot;
	struct cell_facts f = { .repeat = c->repeat, .events_file = paths.events_rel };
	json_t *leftovers = json_array();
	json_t *verdicts = json_array();
	char *snapshot_rel = NULL;
	f.leftovers = leftovers;
	f.verdicts = verdicts;
	pid_t top = -1;
	int pidfd = -1;
	char infra[4200];
	if (cell_prepare(c, sc, &paths, infra, sizeof(infra)) < 0) {
		f.infra_error = infra;
		goto out;
	}

	f.start_ns = now_ns();
	struct event *e = malloc(sizeof(*e));
	event_begin(e, "spawn");
	event_str(e, "child", sc->root.name);
	event_int(e, "child_id", 0);
	event_str(e, "cell", sc->cell ? sc->cell : "");
	(void) event_emit(e);
	free(e);

	top = session_fork_tree();
	if (top < 0) {
		int fork_errno = errno;
		(void) snprintf(infra, sizeof(infra), "fork of the tree's root failed: %s%s", strerror(fork_errno),
				fork_errno == EAGAIN ? " (process limit reached: RLIMIT_NPROC or a pids cgroup)" : "");
		f.infra_error = infra;
		goto out;
	}
	if (top == 0) {
		session_child_prelude();
		eventlog_set_context("");
		if (sc->capture == CAPTURE_NONE) {
			/* stdout carries forkscope's results: the tree writes to stderr. */
			(void) dup2(2, 1);
			actor_root_main(sc);
		}
		capture_host(sc, cell_dir);
	}
	f.pgid = top;
	struct session_tree tree = { .top = top, .pgid = top, .start_ns = f.start_ns,
				     .events_path = c->o->no_probes ? NULL : events_path, .snapshot_path = snapshot_path,
				     .window_ns = sc->timeouts.run_ns };
	pidfd = pidfd_open(top, 0);
	if (pidfd < 0) {
		/* EMFILE under a low `ulimit -n`: the machine's limit, said as such,
		 * never a hang. The tree is ended below like any other. */
		int pidfd_errno = errno;
		(void) snprintf(infra, sizeof(infra), "pidfd_open of the tree's root failed: %s%s", strerror(pidfd_errno),
				pidfd_errno == EMFILE ? " (open file limit reached: RLIMIT_NOFILE, ulimit -n)" : "");
		f.infra_error = infra;
	} else
		wait_cell(sc, &f, pidfd, events_path);
	int status;
	if (reap_children(top, &status) == 1) {
		f.root_ended = true;
		f.root_wstatus = status;
		f.root_end_ns = now_ns();
		if (sc->capture == CAPTURE_NONE)
			emit_root_reaped(top, status);
	}

	json_t *snapshot = NULL;
	if (!f.root_ended && !session_interrupted() && !f.infra_error) {
		/* The deadline passed with the tree alive: triage before touching it. */
		f.hang = true;
		fprintf(stderr, "forkscope: %s%s%s%s: no end after %.1fs, triaging\n", sc->name, sc->cell ? "[" : "",
			sc->cell ? sc->cell : "", sc->cell ? "]" : "", (double) sc->timeouts.run_ns / 1e9);
		triage_cell(sc, c, cell_dir, &tree, "timeout", verdicts, &snapshot_rel, &snapshot);
		if (c->o->hold) {
			*ret_held = 1;
			char *text = session_hold_text(&tree, c->run_dir);
			fprintf(stderr, "forkscope: %s\n", text);
			free(text);
			json_decref(snapshot);
			goto out;
		}
	} else if (f.root_ended) {
		/* The root ended: give the rest of the tree the linger window. */
		size_t alive = wait_descendants_gone(f.root_end_ns + sc->timeouts.linger_ns);
		if (alive > 0) {
			/* An actor still alive means the tree never finished: a hang. */
			if (actor_alive(events_path))
				f.hang = true;
			tree.top = 0;
			triage_cell(sc, c, cell_dir, &tree, "leftovers", verdicts, &snapshot_rel, &snapshot);
		}
	}

	/* End whatever is left, SIGINT first, and say what ended each. */
	struct ended_proc *ended = NULL;
	size_t n_ended = 0;
	if (session_end_all(&tree, &ended, &n_ended) == 0) {
		collect_leftovers(ended, n_ended, c->o->no_probes ? NULL : events_path, snapshot, top, f.pgid,
				  leftovers);
		free(ended);
	}
	json_decref(snapshot);
	json_t *escaped = result_escaped_verdict(leftovers, "the run", true);
	if (escaped)
		json_array_append_new(verdicts, escaped);
	(void) wait_descendants_gone(now_ns() + 5 * NSEC_PER_SEC);
	if (!f.root_ended)
		(void) reap_children(top, &status);
	f.end_ns = now_ns();
	f.snapshot_file = snapshot_rel;
	f.output_file = paths.output;

out:
	if (pidfd >= 0)
		(void) close(pidfd);
	eventlog_close();
	json_t *cell = results_build_cell(sc, events_path, &f);
	json_decref(leftovers);
	json_decref(verdicts);
	free(snapshot_rel);
	cell_paths_free(&paths);
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

/* `--set KEY=VAL` (and `--backend B`) on a scenario whose matrix has KEY as
 * an axis: the axis keeps VAL alone, so every cell is labelled with what
 * ran (one cell per remaining combination), never backend=fork under mtf. */
static int
override_axis(struct scenario *s, const char *assignment)
{
	const char *eq = strchr(assignment, '=');
	if (!eq)
		return 0;
	for (size_t i = 0; i < s->n_matrix; i++) {
		struct matrix_axis *ax = &s->matrix[i];
		if (strlen(ax->key) != (size_t) (eq - assignment) || strncmp(ax->key, assignment, (size_t) (eq - assignment)))
			continue;
		char *value = strdup(eq + 1);
		if (!value)
			return -ENOMEM;
		for (size_t k = 0; k < ax->n_values; k++)
			free(ax->values[k]);
		ax->values[0] = value;
		ax->n_values = 1;
	}
	return 0;
}

static int
apply_sets(struct scenario *sc, const struct run_options *o, const char *backend_assign)
{
	char *err = NULL;
	for (size_t s = 0; s <= o->n_sets; s++) {
		const char *assign = s < o->n_sets ? o->sets[s] : backend_assign;
		if (!assign)
			continue;
		if (scenario_set(sc, assign, &err) < 0) {
			fprintf(stderr, "%s\n", err ? err : assign);
			free(err);
			return -EINVAL;
		}
	}
	if (o->timeout_ns)
		sc->timeouts.run_ns = o->timeout_ns;
	return 0;
}

/* Expand matrices, apply --set and --backend: the cells to run. */
static int
expand_cells(struct scenario **scenarios, size_t n_scenarios, const struct run_options *o,
	     struct scenario ***ret_cells, size_t *ret_n)
{
	struct scenario **cells = NULL;
	size_t n_cells = 0;
	char backend_assign[64] = "";
	if (o->backend)
		(void) snprintf(backend_assign, sizeof(backend_assign), "backend=%s", o->backend);
	int rc = 0;
	for (size_t i = 0; i < n_scenarios && rc == 0; i++) {
		if (o->matrix && add_backend_axis(scenarios[i]) < 0)
			rc = -ENOMEM;
		for (size_t s = 0; s < o->n_sets && rc == 0; s++)
			rc = override_axis(scenarios[i], o->sets[s]);
		if (rc == 0 && o->backend)
			rc = override_axis(scenarios[i], backend_assign);
		struct scenario **sc_cells = NULL;
		size_t n = 0;
		char *err = NULL;
		if (rc < 0 || scenario_expand(scenarios[i], &sc_cells, &n, &err) < 0) {
			fprintf(stderr, "%s\n", err ? err : "matrix expansion failed");
			free(err);
			rc = -EINVAL;
			break;
		}
		struct scenario **grown = realloc(cells, (n_cells + n) * sizeof(*cells));
		if (!grown) {
			scenario_free_cells(sc_cells, n);
			rc = -ENOMEM;
			break;
		}
		cells = grown;
		for (size_t k = 0; k < n; k++) {
			if (rc == 0)
				rc = apply_sets(sc_cells[k], o, o->backend ? backend_assign : NULL);
			cells[n_cells++] = sc_cells[k];
		}
		free(sc_cells);
	}
	if (rc < 0) {
		scenario_free_cells(cells, n_cells);
		return rc;
	}
	*ret_cells = cells;
	*ret_n = n_cells;
	return 0;
}

int
runner_main(const struct run_options *o, char **paths, size_t n_paths, json_t **ret_doc, char **ret_run_dir)
{
	struct scenario **scenarios = NULL;
	size_t n_scenarios = 0;
	if (runner_collect(paths, n_paths, &scenarios, &n_scenarios) < 0)
		return -EINVAL;
	struct scenario **cells = NULL;
	size_t n_cells = 0;
	int rc = expand_cells(scenarios, n_scenarios, o, &cells, &n_cells);
	for (size_t i = 0; i < n_scenarios; i++)
		scenario_free(scenarios[i]);
	free(scenarios);
	if (rc < 0)
		return -EINVAL;

	char *run_dir = NULL;
	int r = session_make_run_dir(o->out_dir, "run", &run_dir);
	if (r < 0) {
		fprintf(stderr, "forkscope run: cannot create or write the run directory %s: %s\n",
			o->out_dir ? o->out_dir : "", strerror(-r));
		scenario_free_cells(cells, n_cells);
		return -EIO;
	}
	struct session_options so = { .hold = o->hold, .stacks = o->stacks, .rules_file = o->rules_file };
	if (session_start(&so) < 0)
		fprintf(stderr, "forkscope: warning: cannot start the guardian process: %s\n", strerror(errno));
	fprintf(stderr, "forkscope: run directory %s\n", run_dir);

	uint64_t t0 = now_ns();
	time_t wall = time(NULL);
	json_t *results = json_array();
	unsigned repeat = o->repeat ? o->repeat : 1;
	size_t index = 0, total = 0;
	for (size_t i = 0; i < n_cells; i++)
		if (o->shard_n <= 1 || i % o->shard_n == o->shard_k - 1)
			total += repeat;
	int held = 0;
	for (size_t i = 0; i < n_cells && !session_interrupted() && !held; i++) {
		if (o->shard_n > 1 && i % o->shard_n != o->shard_k - 1)
			continue;
		for (unsigned rep = 0; rep < repeat && !session_interrupted() && !held; rep++) {
			struct cell_ctx c = { .o = o, .run_dir = run_dir, .exe = o->exe_path, .index = index++,
					      .repeat = repeat > 1 ? rep : 0 };
			json_t *cell = run_cell(&c, cells[i], &held);
			if (!cell)
				continue;
			if (o->on_cell)
				o->on_cell(cell, index, total, o->userdata);
			spill_cell(results, cell, run_dir);
		}
	}
	unspill_cells(results);
	*ret_doc = result_document("run", o->argv, o->argc, (int64_t) wall, now_ns() - t0, run_dir, results);
	*ret_run_dir = run_dir;
	scenario_free_cells(cells, n_cells);
	return session_interrupted();
}
