#include "harness/session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness/guardian.h"
#include "probes/eventlog_read.h"
#include "harness/triage.h"
#include "probes/eventlog.h"
#include "probes/selfdump.h"
#include "probes/selfdump_read.h"
#include "probes/stacks.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

static volatile sig_atomic_t interrupted;
static struct session_options opts;

/* What the session found at start, restored in every tree it forks. */
static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP };
static struct sigaction saved_actions[ARRAY_SIZE(caught_signals)], saved_pipe, saved_lost;
static sigset_t saved_mask;

static void
on_interrupt(int sig)
{
	/* The guardian died (guardian.h): wind down as on SIGTERM, even when
	 * the user had SIGTERM ignored. */
	interrupted = sig == guardian_lost_signal() ? SIGTERM : sig;
}

int
session_start(const struct session_options *o)
{
	int r = 0;
	opts = *o;
	/* --hold leaves a hung tree alive on purpose: no guardian to end it. */
	if (!o->hold && guardian_split() < 0)
		r = -errno;
	(void) reaper_become_subreaper();
	struct sigaction sa = { .sa_handler = on_interrupt };
	(void) sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(caught_signals); i++) {
		(void) sigaction(caught_signals[i], NULL, &saved_actions[i]);
		/* An ignored signal (nohup) stays ignored, for us and the tree. */
		if (saved_actions[i].sa_handler != SIG_IGN)
			(void) sigaction(caught_signals[i], &sa, NULL);
	}
	(void) sigaction(guardian_lost_signal(), &sa, &saved_lost);
	struct sigaction ign = { .sa_handler = SIG_IGN };
	(void) sigaction(SIGPIPE, &ign, &saved_pipe);
	(void) sigprocmask(SIG_SETMASK, NULL, &saved_mask);
	return r;
}

int
session_interrupted(void)
{
	return interrupted;
}

void
session_child_restore_signals(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(caught_signals); i++)
		(void) sigaction(caught_signals[i], &saved_actions[i], NULL);
	(void) sigaction(SIGPIPE, &saved_pipe, NULL);
	(void) sigaction(guardian_lost_signal(), &saved_lost, NULL);
	(void) sigprocmask(SIG_SETMASK, &saved_mask, NULL);
}

pid_t
session_fork_tree(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		/* If forkscope dies, the top of the tree goes with it (the guardian
		 * ends the rest) - unless the user asked to hold a hung tree. */
		if (!opts.hold) {
			(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
		}
		(void) setpgid(0, 0);
		return 0;
	}
	if (pid > 0)
		(void) setpgid(pid, pid);
	return pid;
}

void
session_child_prelude(void)
{
	int keep[] = { 0, 1, 2, eventlog_fd() };
	(void) fd_close_all_except(keep, ARRAY_SIZE(keep), NULL, 0, NULL);
	sigset_t none;
	(void) sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void) signal(sig, SIG_DFL);
}

int
session_wait(int pidfd, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	for (;;) {
		if (interrupted)
			return -EINTR;
		int ms = -1;
		if (deadline_ns) {
			uint64_t now = now_ns();
			if (now >= deadline_ns)
				return 0;
			ms = (int) MIN((deadline_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, (uint64_t) 86400000);
		}
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- triage ---- */

static bool
pid_is_probed(const json_t *events, pid_t pid)
{
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		if (json_int(ev, "pid", 0) == pid && (strcmp(name, "exec") == 0 || strcmp(name, "child_start") == 0))
			return true;
	}
	return false;
}

static bool
process_lacks_stacks(const json_t *proc)
{
	if (json_is_string(json_object_get(proc, "stacks_error")))
		return true;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(proc, "threads"), i, t)
		if (json_is_object(json_object_get(t, "stack")))
			return false;
	return true;
}

/* Without a snapshot (nothing could be read through /proc and ptrace), the
 * self-dump still has the live descendants to ask. */
static json_t *
minimal_snapshot(void)
{
	json_t *snapshot = json_pack("{s:i,s:b,s:[]}", "schema_version", 1, "partial", 1, "processes");
	struct proc_brief *d = NULL;
	size_t nd = 0;
	if (proc_descendants(getpid(), &d, &nd) == 0)
		for (size_t i = 0; i < nd; i++)
			if (d[i].state != 'Z')
				json_array_append_new(json_object_get(snapshot, "processes"),
						      json_pack("{s:i,s:i,s:i,s:s,s:[]}", "pid", (int) d[i].pid, "ppid",
								(int) d[i].ppid, "pgid", (int) d[i].pgid, "comm",
								d[i].comm, "threads"));
	free(d);
	return snapshot;
}

/* Self-dump every probed process the snapshot has no stacks for. */
static void
add_selfdump_stacks(json_t *snapshot, const char *events_path, const json_t *events, json_t *report)
{
	int sig = SIGRTMIN + SELFDUMP_DEFAULT_RTMIN_OFFSET;
	struct stack_cache *cache = stack_cache_new();
	size_t i;
	json_t *proc;
	json_array_foreach(json_object_get(snapshot, "processes"), i, proc) {
		pid_t pid = (pid_t) json_int(proc, "pid", 0);
		if (pid <= 0 || !process_lacks_stacks(proc) || !pid_is_probed(events, pid) ||
		    json_bool(proc, "zombie", 0))
			continue;
		struct thread_stack *threads = NULL;
		size_t n = 0;
		char *reason = NULL;
		int r = selfdump_request(events_path, pid, sig, SESSION_SELFDUMP_WAIT_NS, cache, &threads, &n, &reason);
		if (r == 0) {
			(void) selfdump_merge_into_snapshot(snapshot, pid, threads, n);
			thread_stacks_free(threads, n);
			json_array_append_new(report, json_pack("{s:i}", "pid", (int) pid));
		} else {
			const char *why = reason ? reason : strerror(-r);
			json_object_set_new(proc, "selfdump_error", json_string(why));
			json_array_append_new(report, json_pack("{s:i,s:s}", "pid", (int) pid, "error", why));
		}
		free(reason);
	}
	stack_cache_free(cache);
}

void
session_triage(const struct session_tree *t, const char *reason, struct session_triage *ret)
{
	*ret = (struct session_triage){ .verdicts = json_array(), .selfdumps = json_array() };
	json_t *events = t->events_path ? events_load(t->events_path, NULL) : NULL;
	pid_t roots[] = { t->top };
	struct triage_request req = {
		.roots = roots, .n_roots = t->top > 0 ? 1 : 0, .subreaper = getpid(), .pgid = t->pgid,
		.stacks = opts.stacks, .events = events, .start_ns = t->start_ns, .reason = reason,
		.python_mode = 1,
	};
	json_t *snap = NULL;
	int r = triage_snapshot(&req, &snap);
	if (r < 0)
		ret->error = r;
	if (opts.selfdump && t->events_path) {
		if (!snap)
			snap = minimal_snapshot();
		add_selfdump_stacks(snap, t->events_path, events, ret->selfdumps);
	}
	if (snap && t->window_ns)
		json_object_set_new(snap, "window_ms", json_integer((json_int_t) (t->window_ns / 1000000)));
	if (snap) {
		/* The verdicts come from the snapshot as written, with the run's
		 * events: exactly what `triage --from` computes again. */
		struct triage_analysis an;
		if (triage_analyze(snap, events, opts.rules_file, false, &an, NULL) == 0) {
			json_array_extend(ret->verdicts, an.verdicts);
			ret->waits = json_incref(an.waits);
			triage_analysis_release(&an);
		}
		if (t->snapshot_path) {
			int wr = json_write_file_atomic(snap, t->snapshot_path, JSON_INDENT(1));
			if (wr == 0)
				ret->snapshot_written = true;
			else
				ret->write_error = wr;
		}
	}
	ret->snapshot = snap;
	json_decref(events);
}

void
session_triage_release(struct session_triage *t)
{
	json_decref(t->snapshot);
	json_decref(t->verdicts);
	json_decref(t->selfdumps);
	json_decref(t->waits);
	*t = (struct session_triage){ 0 };
}

/* ---- teardown ---- */

int
session_end_all(const struct session_tree *t, struct ended_proc **ret, size_t *ret_n)
{
	return reaper_end_all(t->pgid, SESSION_GRACE_NS, ret, ret_n);
}

char *
session_hold_text(const struct session_tree *t, const char *run_dir)
{
	struct strbuf sb = STRBUF_INIT;
	struct proc_brief *b = NULL;
	size_t nb = 0;
	(void) proc_descendants(getpid(), &b, &nb);
	(void) strbuf_printf(&sb,
			     "--hold: the hung tree is left as it is for inspection.\n"
			     "  process group %d (top pid %d); pids:",
			     (int) t->pgid, (int) t->top);
	for (size_t i = 0; i < nb; i++)
		(void) strbuf_printf(&sb, " %d", (int) b[i].pid);
	(void) strbuf_printf(&sb,
			     "\n  run directory: %s\n"
			     "  inspect: forkscope triage %d\n"
			     "  end it:  kill -INT -- -%d; sleep 1; kill -TERM -- -%d; sleep 1; kill -KILL -- -%d",
			     run_dir, (int) t->top, (int) t->pgid, (int) t->pgid, (int) t->pgid);
	for (size_t i = 0; i < nb; i++)
		if (b[i].pgid != t->pgid)
			(void) strbuf_printf(&sb, "; kill -INT %d", (int) b[i].pid);
	free(b);
	return strbuf_steal(&sb);
}

/* ---- run directories ---- */

int
session_state_dir(char **ret_path)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char *path = NULL;
	if (state && *state == '/')
		if (asprintf(&path, "%s/forkscope/runs", state) < 0)
			return -ENOMEM;
	if (!path) {
		if (!home || *home != '/')
			return -ENOENT;
		if (asprintf(&path, "%s/.local/state/forkscope/runs", home) < 0)
			return -ENOMEM;
	}
	*ret_path = path;
	return 0;
}

/* mkdir -p, 0700 for what it creates: run directories hold other people's
 * command lines and environments' traces. */
static int
mkdir_parents(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			int e = -errno;
			free(copy);
			return e;
		}
		*p = '/';
	}
	int r = mkdir(copy, 0700) < 0 && errno != EEXIST ? -errno : 0;
	free(copy);
	return r;
}

static int
make_fresh_dir(const char *base, const char *prefix, char **ret_path)
{
	time_t now = time(NULL);
	struct tm tm;
	(void) gmtime_r(&now, &tm);
	char stamp[32];
	(void) strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	char *path = NULL;
	if (asprintf(&path, "%s/%s-%s-%d", base, prefix, stamp, (int) getpid()) < 0)
		return -ENOMEM;
	if (mkdir(path, 0755) < 0) {
		int e = -errno;
		free(path);
		return e;
	}
	*ret_path = path;
	return 0;
}

int
session_make_run_dir(const char *out_dir, const char *prefix, char **ret_path)
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
		*ret_path = path;
		return 0;
	}
	/* Runs are kept under $XDG_STATE_HOME/forkscope/runs (`forkscope clean`
	 * prunes them); where that cannot be made, under $TMPDIR. */
	char *state = NULL;
	if (session_state_dir(&state) == 0 && mkdir_parents(state) == 0 && make_fresh_dir(state, prefix, &path) == 0) {
		free(state);
		*ret_path = path;
		return 0;
	}
	free(state);
	const char *tmp = getenv("TMPDIR");
	char *base = NULL;
	if (asprintf(&base, "%s/forkscope", tmp && *tmp ? tmp : "/tmp") < 0)
		return -ENOMEM;
	int r = mkdir_parents(base);
	if (r == 0)
		r = make_fresh_dir(base, prefix, &path);
	free(base);
	if (r < 0)
		return r;
	*ret_path = path;
	return 0;
}
