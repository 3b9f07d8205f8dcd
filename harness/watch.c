#include "harness/watch.h"
#include "harness/guardian.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "harness/cli_output.h"
#include "harness/reaper.h"
#include "harness/results.h"
#include "harness/runner.h"
#include "harness/triage.h"
#include "probes/eventlog.h"
#include "probes/selfdump.h"
#include "probes/selfdump_read.h"
#include "probes/stacks.h"
#include "reports/verdict_class.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/signames.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

extern char **environ;

/* Grace between the rungs of watch's SIGINT -> SIGTERM -> SIGKILL ladder. */
#define WATCH_GRACE_NS (500 * NSEC_PER_MSEC)
#define WATCH_LINGER_DEFAULT_NS (500 * NSEC_PER_MSEC)
/* How long a probed process gets to answer a self-dump request. */
#define WATCH_SELFDUMP_WAIT_NS (3 * NSEC_PER_SEC)
#define WATCH_EXIT_HANG 124

static volatile sig_atomic_t interrupted;

static void
on_interrupt(int sig)
{
	/* The guardian died (guardian.h): wind down as on SIGTERM, even when
	 * the user had SIGTERM ignored. */
	interrupted = sig == guardian_lost_signal() ? SIGTERM : sig;
}


/* ---- finding the probe and the command ---- */

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

/* ---- actors from the probe events ---- */

struct wproc {
	pid_t pid;
	pid_t ppid;
	json_t *obj;
	uint64_t spawn, fork, exec, exit, reap;
	char *name;
	bool probed;
	int parent;	/* index, -1 none */
	int id;		/* pre-order id, -1 until placed */
	int depth;
	json_t *start;	/* child_start (borrowed) */
	json_t *exec_ev;/* first exec (borrowed) */
	json_t *signals;
};

struct wprocs {
	struct wproc *v;
	size_t n, cap;
};

static struct wproc *
wproc_find(struct wprocs *ps, pid_t pid)
{
	for (size_t i = ps->n; i > 0; i--)
		if (ps->v[i - 1].pid == pid)
			return &ps->v[i - 1];
	return NULL;
}

static struct wproc *
wproc_get(struct wprocs *ps, pid_t pid)
{
	struct wproc *found = wproc_find(ps, pid);
	if (found)
		return found;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 64;
		struct wproc *nv = realloc(ps->v, cap * sizeof(*nv));
		if (!nv)
			return NULL;
		ps->v = nv;
		ps->cap = cap;
	}
	struct wproc *p = &ps->v[ps->n++];
	*p = (struct wproc){ .pid = pid, .obj = json_object(), .parent = -1, .id = -1, .signals = json_array() };
	return p;
}

static const char *
base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;
	return s ? s + 1 : path;
}

static void
set_name(struct wproc *p, const char *name)
{
	if (!name || !*name)
		return;
	free(p->name);
	p->name = strdup(name);
}

static json_t *
rel_ns(uint64_t ts, uint64_t start)
{
	if (!ts)
		return json_null();
	return ts >= start ? json_u64(ts - start) : json_integer(0);
}

static json_t *
status_json(int64_t code, const char *sig)
{
	return json_pack("{s:o,s:o}", "code", code >= 0 ? json_integer(code) : json_null(), "signal",
			 sig ? json_string(sig) : json_null());
}

static void
describe_fd_table(json_t *actor, const json_t *fds)
{
	json_object_set_new(actor, "fds_inherited", json_integer((json_int_t) json_array_size(fds)));
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
}

static void
place(struct wprocs *ps, size_t i, int depth, int *next_id, json_t *out)
{
	struct wproc *p = &ps->v[i];
	if (p->id >= 0)
		return;
	p->id = (*next_id)++;
	p->depth = depth;
	json_array_append(out, p->obj);
	for (size_t k = 0; k < ps->n; k++)
		if (ps->v[k].parent == (int) i)
			place(ps, k, depth + 1, next_id, out);
}

json_t *
watch_actors_from_events(const json_t *events, pid_t root_pid, uint64_t start_ns)
{
	struct wprocs ps = { 0 };
	if (root_pid > 0)
		(void) wproc_get(&ps, root_pid);
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		uint64_t ts = (uint64_t) json_int(ev, "ts_ns", 0);
		pid_t pid = (pid_t) json_int(ev, "pid", 0);
		/* forkscope's own records (its spawn and reap of the command) describe
		 * the command, not forkscope. */
		bool own = strcmp(json_str(ev, "kind", ""), "watch") == 0;
		pid_t child_pid = (pid_t) json_int(ev, "child_pid", 0);
		struct wproc *self = own || pid <= 0 ? NULL : wproc_get(&ps, pid);
		if (strcmp(name, "exec") == 0 && self) {
			self->probed = true;
			if (!self->exec) {
				self->exec = ts;
				self->exec_ev = ev;
			}
			if (!self->ppid)
				self->ppid = (pid_t) json_int(ev, "ppid", 0);
			set_name(self, base_name(json_str(ev, "argv0", NULL)));
			json_object_set(self->obj, "argv", json_object_get(ev, "argv"));
			json_object_set_new(self->obj, "exe", json_string(json_str(ev, "exe", "")));
		} else if (strcmp(name, "child_start") == 0 && self) {
			self->probed = true;
			self->start = ev;
			self->ppid = (pid_t) json_int(ev, "ppid", self->ppid);
		} else if ((strcmp(name, "fork") == 0 || strcmp(name, "spawn") == 0) && child_pid > 0) {
			struct wproc *c = wproc_get(&ps, child_pid);
			self = own || pid <= 0 ? NULL : wproc_get(&ps, pid); /* realloc may have moved it */
			if (!c)
				continue;
			if (!c->spawn)
				c->spawn = ts;
			if (self) {
				c->ppid = pid;
				if (!c->name && self->name)
					set_name(c, self->name);
			}
			json_object_set_new(c->obj, "via", json_string(json_str(ev, "via", own ? "forkscope" : name)));
			if (strcmp(name, "fork") == 0) {
				c->fork = ts;
				json_t *threads = json_object_get(ev, "threads");
				json_object_set_new(c->obj, "threads_at_fork",
						    json_integer((json_int_t) json_array_size(threads)));
				json_object_set(c->obj, "parent_threads", threads);
				json_object_set_new(c->obj, "forking_thread_is_main",
						    json_boolean(json_bool(ev, "forking_thread_is_main", 0)));
				json_object_set_new(c->obj, "forking_tid", json_integer(json_int(ev, "forking_tid", 0)));
			} else if (!own)
				json_object_set_new(c->obj, "forking_thread_is_main",
						    json_boolean(json_bool(ev, "forking_thread_is_main", 0)));
		} else if (strcmp(name, "exit") == 0 && self) {
			if (!self->exit)
				self->exit = ts;
			if (!json_object_get(self->obj, "exit_status"))
				json_object_set_new(self->obj, "exit_status", status_json(json_int(ev, "code", -1), NULL));
			json_object_set_new(self->obj, "exit_via", json_string(json_str(ev, "via", "")));
		} else if (strcmp(name, "reaped") == 0 && child_pid > 0) {
			struct wproc *c = wproc_get(&ps, child_pid);
			if (!c)
				continue;
			c->reap = ts;
			json_object_set_new(c->obj, "exit_status",
					    status_json(json_int(ev, "code", -1), json_str(ev, "signal", NULL)));
			json_object_set_new(c->obj, "reaped_by", json_integer(pid));
		} else if (strcmp(name, "signal_sent") == 0 && !own) {
			pid_t target = (pid_t) json_int(ev, "target_pid", 0);
			if (target <= 0)
				continue;
			/* Only processes of the tree: a signal to a stranger (or to
			 * no one, ESRCH) makes no actor. */
			struct wproc *c = wproc_find(&ps, target);
			if (c)
				json_array_append_new(c->signals,
						      json_pack("{s:i,s:s,s:o}", "from_pid", (int) pid, "signal",
								json_str(ev, "signal", "?"), "ns", rel_ns(ts, start_ns)));
		}
	}
	/* Parents: the pid that forked or spawned it, else the ppid it saw. */
	for (size_t k = 0; k < ps.n; k++) {
		struct wproc *p = &ps.v[k];
		if (p->pid == root_pid)
			continue;
		for (size_t j = 0; j < ps.n && p->ppid; j++)
			if (ps.v[j].pid == p->ppid && j != k)
				p->parent = (int) j;
	}
	json_t *actors = json_array();
	int next_id = 0;
	for (size_t k = 0; k < ps.n; k++)
		if (ps.v[k].pid == root_pid)
			place(&ps, k, 0, &next_id, actors);
	for (size_t k = 0; k < ps.n; k++)
		if (ps.v[k].id < 0 && (ps.v[k].parent < 0 || ps.v[ps.v[k].parent].id >= 0))
			place(&ps, k, ps.v[k].parent >= 0 ? ps.v[ps.v[k].parent].depth + 1 : 0, &next_id, actors);
	for (size_t k = 0; k < ps.n; k++)
		place(&ps, k, 0, &next_id, actors); /* cycles of bad data: place the rest flat */

	for (size_t k = 0; k < ps.n; k++) {
		struct wproc *p = &ps.v[k];
		json_t *o = p->obj;
		json_object_set_new(o, "name", json_string(p->name ? p->name : "?"));
		json_object_set_new(o, "id", json_integer(p->id));
		json_object_set_new(o, "pid", json_integer(p->pid));
		json_object_set_new(o, "ppid", p->ppid ? json_integer(p->ppid) : json_null());
		json_object_set_new(o, "parent", p->parent >= 0 ? json_integer(ps.v[p->parent].id) : json_null());
		json_object_set_new(o, "depth", json_integer(p->depth));
		json_object_set_new(o, "kind", json_string("process"));
		json_object_set_new(o, "probed", json_boolean(p->probed));
		uint64_t spawn = p->spawn ? p->spawn : (p->pid == root_pid ? start_ns : 0);
		json_object_set_new(o, "spawn_ns", rel_ns(spawn, start_ns));
		json_object_set_new(o, "fork_ns", rel_ns(p->fork, start_ns));
		json_object_set_new(o, "exec_ns", rel_ns(p->exec, start_ns));
		json_object_set_new(o, "ready_ns", json_null());
		json_object_set_new(o, "cancel_ns", json_null());
		json_object_set_new(o, "exit_ns", rel_ns(p->exit, start_ns));
		json_object_set_new(o, "reap_ns", rel_ns(p->reap, start_ns));
		json_object_set_new(o, "exit_to_reap_ns",
				    p->exit && p->reap && p->reap >= p->exit ? json_u64(p->reap - p->exit) : json_null());
		if (!json_object_get(o, "exit_status"))
			json_object_set_new(o, "exit_status", json_null());
		json_object_set_new(o, "ladder", json_null());
		if (!json_object_get(o, "threads_at_fork"))
			json_object_set_new(o, "threads_at_fork", json_null());
		if (!json_object_get(o, "forking_thread_is_main"))
			json_object_set_new(o, "forking_thread_is_main", json_null());
		if (!json_object_get(o, "via"))
			json_object_set_new(o, "via", json_null());
		/* What crossed the fork; for a process that started by exec (the
		 * command, posix_spawn, vfork+exec), what crossed the exec. */
		json_t *census = p->start ? p->start : p->exec_ev;
		if (census) {
			describe_fd_table(o, json_object_get(census, "fds"));
			json_object_set(o, "stdio", json_object_get(census, "stdio"));
			json_object_set_new(o, "sigmask_blocked", json_string(json_str(census, "sig_blocked", "")));
			json_object_set_new(o, "threads_at_start", json_integer(json_int(census, "threads", 0)));
			if (p->start)
				json_object_set_new(o, "ns_since_fork", json_integer(json_int(p->start, "ns_since_fork", 0)));
		} else {
			json_object_set_new(o, "fds_inherited", json_null());
			json_object_set_new(o, "fds_unexpected", json_array());
			json_object_set_new(o, "stdio", json_null());
		}
		json_object_set(o, "signals_received", p->signals);
		json_object_set_new(o, "error", json_null());
	}
	for (size_t k = 0; k < ps.n; k++) {
		json_decref(ps.v[k].obj);
		json_decref(ps.v[k].signals);
		free(ps.v[k].name);
	}
	free(ps.v);
	return actors;
}

/* ---- waiting ---- */

static int
wait_pidfd(int pidfd, uint64_t deadline_ns)
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

/* ---- triage, with the self-dump where ptrace is denied ---- */

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
	if (!json_is_null(json_object_get(proc, "stacks_error")) && json_object_get(proc, "stacks_error"))
		return true;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(proc, "threads"), i, t)
		if (json_is_object(json_object_get(t, "stack")))
			return false;
	return true;
}

static void
print_selfdump_stacks(pid_t pid, const struct thread_stack *threads, size_t n)
{
	fprintf(stderr, "forkscope: pid %d: stacks from its self-dump (ptrace was not available):\n", (int) pid);
	for (size_t i = 0; i < n; i++) {
		const struct thread_stack *s = &threads[i];
		fprintf(stderr, "  thread %d%s%s\n", (int) s->tid, s->error ? ": " : "", s->error ? s->error : "");
		for (size_t k = 0; k < s->n_frames && k < 16; k++) {
			const struct frame *f = &s->frames[k];
			if (f->file)
				fprintf(stderr, "    #%-2zu %s (%s:%d)\n", k, f->function ? f->function : "??", f->file,
					f->line);
			else
				fprintf(stderr, "    #%-2zu %s (%s)\n", k, f->function ? f->function : "??",
					f->module ? f->module : "?");
		}
	}
}

/* Self-dump every probed process the snapshot has no stacks for. Without a
 * snapshot (triage failed), build a minimal one from the live descendants. */
static json_t *
add_selfdump_stacks(json_t *snapshot, const char *events_path, const json_t *events)
{
	int sig = SIGRTMIN + SELFDUMP_DEFAULT_RTMIN_OFFSET;
	if (!snapshot) {
		snapshot = json_pack("{s:i,s:b,s:[]}", "schema_version", 1, "partial", 1, "processes");
		struct proc_brief *d = NULL;
		size_t nd = 0;
		if (proc_descendants(getpid(), &d, &nd) == 0)
			for (size_t i = 0; i < nd; i++)
				if (d[i].state != 'Z')
					json_array_append_new(json_object_get(snapshot, "processes"),
							      json_pack("{s:i,s:i,s:i,s:s,s:[]}", "pid", (int) d[i].pid,
									"ppid", (int) d[i].ppid, "pgid", (int) d[i].pgid,
									"comm", d[i].comm, "threads"));
		free(d);
	}
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
		int r = selfdump_request(events_path, pid, sig, WATCH_SELFDUMP_WAIT_NS, cache, &threads, &n, &reason);
		if (r == 0) {
			(void) selfdump_merge_into_snapshot(snapshot, pid, threads, n);
			print_selfdump_stacks(pid, threads, n);
			thread_stacks_free(threads, n);
		} else {
			json_object_set_new(proc, "selfdump_error", json_string(reason ? reason : strerror(-r)));
			fprintf(stderr, "forkscope: self-dump of pid %d: %s\n", (int) pid, reason ? reason : strerror(-r));
		}
		free(reason);
	}
	stack_cache_free(cache);
	return snapshot;
}

struct watch_run {
	const struct watch_options *o;
	char *run_dir;
	char *events_path;
	char *cmdline;
	pid_t top;
	pid_t pgid;
	uint64_t start_ns;
	json_t *verdicts;
	bool snapshot_written;
};

static void
run_triage(struct watch_run *w, pid_t root, const char *reason)
{
	json_t *events = events_load(w->events_path, NULL);
	pid_t roots[] = { root };
	struct triage_request req = {
		.roots = roots, .n_roots = root > 0 ? 1 : 0, .subreaper = getpid(), .pgid = w->pgid,
		.stacks = w->o->stacks, .rules_file = w->o->rules_file, .events = events,
		.start_ns = w->start_ns, .reason = reason, .python_mode = 1,
	};
	json_t *snap = NULL, *found = NULL;
	int r = triage_run(&req, &snap, &found);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: triage (%s): %s\n", reason, strerror(-r));
		snap = NULL;
	}
	if (w->o->selfdump)
		snap = add_selfdump_stacks(snap, w->events_path, events);
	if (snap) {
		char *path = NULL;
		if (asprintf(&path, "%s/snapshot.json", w->run_dir) >= 0) {
			int wr = json_write_file_atomic(snap, path, JSON_INDENT(1));
			if (wr == 0)
				w->snapshot_written = true;
			else
				fprintf(stderr, "forkscope watch: write %s: %s\n", path, strerror(-wr));
		}
		free(path);
	}
	size_t i;
	json_t *v;
	json_array_foreach(found, i, v) {
		json_array_append(w->verdicts, v);
		fprintf(stderr, "%s\n", json_str(v, "text", json_str(v, "summary", "")));
	}
	json_decref(snap);
	json_decref(found);
	json_decref(events);
}

/* ---- leftovers ---- */

static const struct proc_brief *
brief_of(const struct proc_brief *b, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (b[i].pid == pid)
			return &b[i];
	return NULL;
}

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
	}
	return 0;
}

static const char *
probe_name(const json_t *events, pid_t pid)
{
	const char *name = NULL;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (strcmp(json_str(ev, "ev", ""), "exec") == 0 && json_int(ev, "pid", 0) == pid)
			name = base_name(json_str(ev, "argv0", NULL));
	return name;
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

static json_t *
leftover_json(const struct ended_proc *p, const struct proc_brief *b, const json_t *events, const json_t *snapshot,
	      pid_t top, pid_t pgid)
{
	pid_t original_parent = first_ppid(events, p->pid);
	const char *name = probe_name(events, p->pid);
	struct strbuf how = STRBUF_INIT;
	if (b && b->sid == p->pid)
		(void) strbuf_append(&how, "left the process group and the session (setsid)");
	else if (p->pgid != pgid)
		(void) strbuf_printf(&how, "left the process group (now in group %d)", (int) p->pgid);
	else
		(void) strbuf_append(&how, "stayed in the command's process group");
	if (b && b->ppid == getpid() && p->pid != top)
		(void) strbuf_printf(&how, "; reparented to the subreaper%s", original_parent > 0 ? " after its parent" : "");
	if (b && b->ppid == getpid() && p->pid != top && original_parent > 0)
		(void) strbuf_printf(&how, " (pid %d) exited", (int) original_parent);
	else if (b && b->ppid != getpid())
		(void) strbuf_printf(&how, "; child of pid %d", (int) b->ppid);
	json_t *o = json_pack("{s:i,s:s,s:o,s:o,s:i,s:o,s:s,s:s}", "pid", (int) p->pid, "name",
			      name ? name : p->comm, "ppid", b ? json_integer(b->ppid) : json_null(), "state",
			      b ? json_sprintf("%c", b->state) : json_null(), "pgid", (int) p->pgid, "sid",
			      b ? json_integer(b->sid) : json_null(), "how", how.data ? how.data : "", "ended_by",
			      p->ended_by ? p->ended_by : "?");
	json_object_set_new(o, "started_by", original_parent > 0 ? json_integer(original_parent) : json_null());
	char *doing = snapshot ? doing_from_snapshot(snapshot, p->pid) : NULL;
	json_object_set_new(o, "doing", doing ? json_string(doing) : json_null());
	free(doing);
	json_object_set_new(o, "actor", json_false());
	strbuf_free(&how);
	return o;
}

static json_t *
escaped_verdict(const json_t *leftovers, const char *cmdline)
{
	size_t n = json_array_size(leftovers);
	if (n == 0)
		return NULL;
	json_t *pids = json_array();
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	json_t *l;
	json_array_foreach(leftovers, i, l) {
		json_array_append_new(pids, json_integer(json_int(l, "pid", 0)));
		(void) strbuf_printf(&sb, "  pid %lld (%s): %s; %s%s; ended by %s\n", (long long) json_int(l, "pid", 0),
				     json_str(l, "name", "?"), json_str(l, "how", "?"),
				     json_str(l, "doing", NULL) ? "doing: " : "", json_str(l, "doing", "doing: unknown"),
				     json_str(l, "ended_by", "?"));
	}
	const struct verdict_class_info *info = verdict_class_lookup("escaped");
	const char *remedy = info ? info->remedy
				  : "end helpers by process group and tear down SIGINT first";
	char summary[256];
	(void) snprintf(summary, sizeof(summary), "%zu process%s outlived `%s`", n, n == 1 ? "" : "es", cmdline);
	struct strbuf text = STRBUF_INIT;
	(void) strbuf_printf(&text, "%s:\n%sRemedy: %s.", summary, sb.data ? sb.data : "", remedy);
	json_t *v = json_pack("{s:s,s:s,s:o,s:{s:O},s:s,s:s}", "class", "escaped", "summary", summary, "pids", pids,
			      "evidence", "leftovers", leftovers, "remedy", remedy, "text", text.data);
	strbuf_free(&sb);
	strbuf_free(&text);
	return v;
}

/* End every descendant SIGINT first. Processes of the command's group are
 * the tree that hung (teardown rows); others are leftovers. */
static void
end_everything(struct watch_run *w, const char *reason, json_t *leftovers, json_t **ret_teardown)
{
	json_t *events = events_load(w->events_path, NULL);
	struct proc_brief *briefs = NULL;
	size_t nb = 0;
	(void) proc_descendants(getpid(), &briefs, &nb);
	json_t *snapshot = NULL;
	if (w->snapshot_written) {
		char *path = NULL;
		if (asprintf(&path, "%s/snapshot.json", w->run_dir) >= 0)
			snapshot = json_load_file(path, 0, NULL);
		free(path);
	}
	struct event *e = malloc(sizeof(*e));
	if (e) {
		event_begin(e, "teardown");
		event_str(e, "reason", reason);
		event_uint(e, "processes", nb);
		(void) event_emit(e);
		free(e);
	}
	uint64_t t0 = now_ns();
	struct ended_proc *ended = NULL;
	size_t n_ended = 0;
	json_t *phases = json_array();
	if (reaper_end_all(w->pgid, WATCH_GRACE_NS, &ended, &n_ended) == 0) {
		for (size_t i = 0; i < n_ended; i++) {
			const struct proc_brief *b = brief_of(briefs, nb, ended[i].pid);
			bool in_tree = strcmp(reason, "leftovers") != 0 && ended[i].pgid == w->pgid;
			if (in_tree) {
				const char *name = probe_name(events, ended[i].pid);
				json_array_append_new(phases,
						      json_pack("{s:s,s:i,s:n,s:n,s:n,s:n,s:s}", "actor",
								name ? name : ended[i].comm, "pid", (int) ended[i].pid,
								"depth", "cancel_wait_ns", "sigterm_wait_ns",
								"sigkill_to_reap_ns", "ended_by",
								ended[i].ended_by ? ended[i].ended_by : "?"));
				fprintf(stderr, "forkscope: ended pid %d (%s): %s\n", (int) ended[i].pid,
					name ? name : ended[i].comm, ended[i].ended_by ? ended[i].ended_by : "?");
			} else
				json_array_append_new(leftovers,
						      leftover_json(&ended[i], b, events, snapshot, w->top, w->pgid));
		}
		free(ended);
	}
	if (json_array_size(phases) > 0 && ret_teardown)
		*ret_teardown = json_pack("{s:o,s:o,s:n,s:b,s:[],s:O,s:s}", "started_ns", json_u64(t0 - w->start_ns),
					  "duration_ns", json_u64(now_ns() - t0), "budget_ns", "over_budget", 0,
					  "levels", "phases", phases, "reason", reason);
	json_decref(phases);
	json_decref(snapshot);
	free(briefs);
	json_decref(events);
}

static void
print_leftovers(const json_t *leftovers)
{
	size_t i;
	json_t *l;
	json_array_foreach(leftovers, i, l)
		fprintf(stderr, "forkscope: leftover pid %lld (%s): %s; %s%s; ended by %s\n",
			(long long) json_int(l, "pid", 0), json_str(l, "name", "?"), json_str(l, "how", "?"),
			json_str(l, "doing", NULL) ? "was " : "", json_str(l, "doing", "doing unknown"),
			json_str(l, "ended_by", "?"));
}

/* ---- the result document ---- */

static json_t *
build_cell(struct watch_run *w, const json_t *events, bool ended, int wstatus, bool hang, json_t *leftovers,
	   json_t *teardown, const char *infra_error, uint64_t end_ns)
{
	const char *outcome = hang ? "hang"
			      : (!infra_error && ended && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) ? "ok"
													     : "error";
	size_t leaked = json_array_size(leftovers);
	json_t *mismatches = json_array();
	char msg[512];
	if (infra_error) {
		(void) snprintf(msg, sizeof(msg), "could not run: %s", infra_error);
		json_array_append_new(mismatches, json_string(msg));
	} else if (hang) {
		json_array_append_new(mismatches, json_string("the command did not end before the timeout"));
	} else if (ended && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0) {
		(void) snprintf(msg, sizeof(msg), "the command exited with status %d", WEXITSTATUS(wstatus));
		json_array_append_new(mismatches, json_string(msg));
	} else if (ended && WIFSIGNALED(wstatus)) {
		(void) snprintf(msg, sizeof(msg), "the command was killed by %s", signal_name(WTERMSIG(wstatus)));
		json_array_append_new(mismatches, json_string(msg));
	}
	if (leaked) {
		(void) snprintf(msg, sizeof(msg), "%zu process%s outlived the command", leaked, leaked == 1 ? "" : "es");
		json_array_append_new(mismatches, json_string(msg));
	}
	size_t found_hangs = 0, i;
	json_t *v;
	json_array_foreach(w->verdicts, i, v) {
		const struct verdict_class_info *info = verdict_class_lookup(json_str(v, "class", ""));
		if (info && info->is_hang)
			found_hangs++;
	}
	json_t *cell = json_object();
	json_object_set_new(cell, "id", json_string(w->cmdline));
	json_object_set_new(cell, "name", json_string(w->cmdline));
	json_object_set_new(cell, "cell", json_null());
	json_object_set_new(cell, "file", json_null());
	json_object_set_new(cell, "description", json_null());
	json_object_set_new(cell, "repeat", json_integer(0));
	json_object_set_new(cell, "backend", json_null());
	json_object_set_new(cell, "capture", json_null());
	json_object_set_new(cell, "fixes", json_null());
	json_object_set_new(cell, "timeouts",
			    json_pack("{s:o,s:o}", "run_ns", w->o->timeout_ns ? json_u64(w->o->timeout_ns) : json_null(),
				      "linger_ns", json_u64(w->o->linger_ns)));
	json_object_set_new(cell, "outcome", json_string(outcome));
	json_object_set_new(cell, "expected", json_pack("{s:s,s:n,s:i}", "outcome", "ok", "verdict", "leaked", 0));
	json_object_set_new(cell, "passed", json_boolean(json_array_size(mismatches) == 0));
	json_object_set_new(cell, "mismatches", mismatches);
	json_object_set_new(cell, "infra_error", infra_error ? json_string(infra_error) : json_null());
	if (ended)
		json_object_set_new(cell, "exit",
				    status_json(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
						WIFSIGNALED(wstatus) ? signal_name(WTERMSIG(wstatus)) : NULL));
	else
		json_object_set_new(cell, "exit", json_null());
	json_object_set_new(cell, "errors", json_array());
	json_object_set(cell, "verdicts", w->verdicts);
	json_object_set_new(cell, "found_hangs", json_integer((json_int_t) found_hangs));
	json_object_set_new(cell, "leaked", json_integer((json_int_t) leaked));
	json_object_set(cell, "leftovers", leftovers);
	json_object_set_new(cell, "duration_ns", json_u64(end_ns > w->start_ns ? end_ns - w->start_ns : 0));
	json_object_set(cell, "teardown", teardown ? teardown : json_null());
	json_object_set_new(cell, "actors", watch_actors_from_events(events, w->top, w->start_ns));
	json_object_set_new(cell, "output_tail", json_null());
	json_object_set_new(cell, "events_file", json_string("events.ndjson"));
	json_object_set_new(cell, "snapshot_file", w->snapshot_written ? json_string("snapshot.json") : json_null());
	return cell;
}

static int
write_outputs(struct watch_run *w, json_t *cell, uint64_t wall_start, uint64_t t0)
{
	json_t *doc = json_object();
	json_object_set_new(doc, "schema_version", json_integer(1));
	json_object_set_new(doc, "tool", json_string("forkscope " FORKSCOPE_VERSION));
	json_object_set_new(doc, "command", json_string("watch"));
	json_t *argv = json_array();
	for (int i = 0; i < w->o->argc; i++)
		json_array_append_new(argv, json_string(w->o->argv[i]));
	json_object_set_new(doc, "argv", argv);
	char stamp[32];
	struct tm tm;
	time_t wall = (time_t) wall_start;
	(void) gmtime_r(&wall, &tm);
	(void) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(doc, "started_at", json_string(stamp));
	json_object_set_new(doc, "duration_ns", json_u64(now_ns() - t0));
	json_object_set_new(doc, "host", runner_host_json());
	json_object_set_new(doc, "run_dir", json_string(w->run_dir));
	json_t *cells = json_pack("[O]", cell);
	json_object_set_new(doc, "summary", cli_summary(cells));
	json_object_set_new(doc, "scenarios", cells);
	/* The cell at top level too: scripts read a watch without indexing. */
	const char *key;
	json_t *value;
	json_object_foreach(cell, key, value)
		if (!json_object_get(doc, key) || strcmp(key, "duration_ns") == 0)
			json_object_set(doc, key, value);
	/* stdout belongs to the watched command: forkscope's report lines go to
	 * stderr, so `watch -- CMD` prints what CMD prints. */
	(void) fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	if (saved >= 0)
		(void) dup2(STDERR_FILENO, STDOUT_FILENO);
	int rc = cli_write_outputs(doc, w->run_dir, w->o->json_path, w->o->junit_path, NULL, NULL, w->o->html_path,
				   w->o->color);
	(void) fflush(stdout);
	if (saved >= 0) {
		(void) dup2(saved, STDOUT_FILENO);
		(void) close(saved);
	}
	json_decref(doc);
	return rc;
}

/* ---- the watch ---- */

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP };

int
watch_main(const struct watch_options *o, char **cmd)
{
	struct watch_run w = { .o = o, .verdicts = json_array() };
	int exit_code = 2;
	char *probe = NULL, *path = NULL, **env = NULL;
	char **sh_argv = NULL;
	json_t *leftovers = json_array(), *teardown = NULL;
	int pidfd = -1, errpipe[2] = { -1, -1 };
	const char *infra_error = NULL;

	int r = watch_find_probe(&probe);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: cannot find libforkscope-probe.so next to the forkscope binary; "
				"set FORKSCOPE_PROBE to its path\n");
		goto out;
	}
	w.cmdline = command_line(cmd);
	path = resolve_command(cmd[0]);
	if (!path) {
		fprintf(stderr, "forkscope watch: %s: command not found\n", cmd[0]);
		exit_code = 127;
		goto out;
	}
	r = runner_make_run_dir(o->out_dir, "watch", &w.run_dir);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: cannot create or write the run directory %s: %s\n", o->out_dir ? o->out_dir : "",
			strerror(-r));
		goto out;
	}
	if (asprintf(&w.events_path, "%s/events.ndjson", w.run_dir) < 0)
		goto out;
	/* A fresh log per run: an --out directory may hold an older one. */
	(void) unlink(w.events_path);
	r = eventlog_open(w.events_path);
	if (r < 0) {
		fprintf(stderr, "forkscope watch: open %s: %s\n", w.events_path, strerror(-r));
		goto out;
	}
	eventlog_set_context("\"actor\":\"forkscope\",\"kind\":\"watch\"");
	env = build_env(probe, w.events_path, o->selfdump);
	if (!env)
		goto out;
	/* A script without #!: what execvp does, through /bin/sh. Counted here,
	 * so the child only execs. */
	size_t n_cmd = 0;
	while (cmd[n_cmd])
		n_cmd++;
	sh_argv = calloc(n_cmd + 2, sizeof(char *));
	if (!sh_argv)
		goto out;
	sh_argv[0] = (char *) "sh";
	sh_argv[1] = path;
	for (size_t i = 1; i < n_cmd; i++)
		sh_argv[i + 1] = cmd[i];

	/* A SIGKILL of forkscope must not leave the command's tree behind. */
	if (!o->hold && guardian_split() < 0)
		fprintf(stderr, "forkscope: warning: cannot start the guardian process: %s\n", strerror(errno));
	(void) reaper_become_subreaper();
	struct sigaction saved_actions[ARRAY_SIZE(forwarded_signals)], saved_pipe, saved_ttou;
	struct sigaction sa = { .sa_handler = on_interrupt };
	(void) sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded_signals); i++) {
		(void) sigaction(forwarded_signals[i], NULL, &saved_actions[i]);
		/* An ignored signal (nohup) stays ignored, for us and the command. */
		if (saved_actions[i].sa_handler != SIG_IGN)
			(void) sigaction(forwarded_signals[i], &sa, NULL);
	}
	struct sigaction saved_lost;
	(void) sigaction(guardian_lost_signal(), &sa, &saved_lost);
	struct sigaction ign = { .sa_handler = SIG_IGN };
	(void) sigaction(SIGPIPE, &ign, &saved_pipe);
	(void) sigaction(SIGTTOU, NULL, &saved_ttou);
	sigset_t saved_mask;
	(void) sigprocmask(SIG_SETMASK, NULL, &saved_mask);
	/* Interactive use: the command's group takes the terminal, so ^C reaches
	 * it as it would without forkscope. */
	bool own_terminal = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();

	if (pipe2(errpipe, O_CLOEXEC) < 0)
		goto out;
	uint64_t wall_start = (uint64_t) time(NULL);
	uint64_t t0 = now_ns();
	w.start_ns = t0;
	pid_t parent = getpid();
	w.top = fork();
	if (w.top < 0) {
		fprintf(stderr, "forkscope watch: fork: %s\n", strerror(errno));
		goto out;
	}
	if (w.top == 0) {
		/* Between fork and exec: async-signal-safe calls only. */
		if (!o->hold)
			(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		(void) setpgid(0, 0);
		if (own_terminal) {
			sigset_t ttou, before;
			(void) sigemptyset(&ttou);
			(void) sigaddset(&ttou, SIGTTOU);
			(void) sigprocmask(SIG_BLOCK, &ttou, &before);
			(void) tcsetpgrp(STDIN_FILENO, getpid());
			(void) sigprocmask(SIG_SETMASK, &before, NULL);
		}
		for (size_t i = 0; i < ARRAY_SIZE(forwarded_signals); i++)
			(void) sigaction(forwarded_signals[i], &saved_actions[i], NULL);
		(void) sigaction(SIGPIPE, &saved_pipe, NULL);
		(void) sigaction(guardian_lost_signal(), &saved_lost, NULL);
		(void) sigprocmask(SIG_SETMASK, &saved_mask, NULL);
		(void) close(errpipe[0]);
		(void) execve(path, cmd, env);
		if (errno == ENOEXEC)
			(void) execve("/bin/sh", sh_argv, env);
		int e = errno;
		(void) write_full(errpipe[1], &e, sizeof(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	(void) setpgid(w.top, w.top);
	w.pgid = w.top;
	(void) close(errpipe[1]);
	errpipe[1] = -1;
	{
		struct event *e = malloc(sizeof(*e));
		if (e) {
			event_begin(e, "spawn");
			event_str(e, "via", "forkscope");
			event_int(e, "child_pid", w.top);
			event_str(e, "command", w.cmdline);
			event_str(e, "probe", probe);
			event_bool(e, "selfdump", o->selfdump);
			(void) event_emit(e);
			free(e);
		}
	}
	int exec_errno = 0;
	if (read_full(errpipe[0], &exec_errno, sizeof(exec_errno)) == (ssize_t) sizeof(exec_errno)) {
		fprintf(stderr, "forkscope watch: %s: %s\n", path, strerror(exec_errno));
		infra_error = "the command could not be executed";
	}
	pidfd = pidfd_open(w.top, 0);
	if (pidfd < 0) {
		fprintf(stderr, "forkscope watch: pidfd_open %d: %s\n", (int) w.top, strerror(errno));
		goto out;
	}

	uint64_t deadline = o->timeout_ns ? t0 + o->timeout_ns : 0;
	int wr = wait_pidfd(pidfd, deadline);
	int status = 0;
	bool ended = false, hang = false;
	uint64_t end_ns = 0;
	if (reap_children(w.top, &status) == 1) {
		ended = true;
		end_ns = now_ns();
		struct event *e = malloc(sizeof(*e));
		if (e) {
			event_begin(e, "reaped");
			event_str(e, "via", "forkscope");
			event_int(e, "child_pid", w.top);
			if (WIFEXITED(status))
				event_int(e, "code", WEXITSTATUS(status));
			else if (WIFSIGNALED(status))
				event_str(e, "signal", signal_name(WTERMSIG(status)));
			event_int(e, "wstatus", status);
			(void) event_emit(e);
			free(e);
		}
	}
	if (own_terminal) {
		sigset_t ttou, before;
		(void) sigemptyset(&ttou);
		(void) sigaddset(&ttou, SIGTTOU);
		(void) sigprocmask(SIG_BLOCK, &ttou, &before);
		(void) tcsetpgrp(STDIN_FILENO, getpgrp());
		(void) sigprocmask(SIG_SETMASK, &before, NULL);
	}

	if (!ended && wr == 0) {
		/* The deadline passed with the command alive: triage before touching it. */
		hang = true;
		char d[32];
		fprintf(stderr, "forkscope watch: %s: no end after %s, triaging\n", w.cmdline,
			duration_format(o->timeout_ns, d, sizeof(d)));
		run_triage(&w, w.top, "timeout");
		if (o->hold) {
			struct proc_brief *b = NULL;
			size_t nb = 0;
			(void) proc_descendants(getpid(), &b, &nb);
			fprintf(stderr, "forkscope: --hold: the hung tree is left as it is for inspection.\n"
					"  process group %d (command pid %d); pids:", (int) w.pgid, (int) w.top);
			for (size_t i = 0; i < nb; i++)
				fprintf(stderr, " %d", (int) b[i].pid);
			fprintf(stderr, "\n  run directory: %s\n"
					"  inspect: forkscope triage %d\n"
					"  end it:  kill -INT -- -%d; sleep 1; kill -TERM -- -%d; sleep 1; kill -KILL -- -%d",
				w.run_dir, (int) w.top, (int) w.pgid, (int) w.pgid, (int) w.pgid);
			for (size_t i = 0; i < nb; i++)
				if (b[i].pgid != w.pgid)
					fprintf(stderr, "; kill -INT %d", (int) b[i].pid);
			fprintf(stderr, "\n");
			free(b);
			json_t *events = events_load(w.events_path, NULL);
			json_t *cell = build_cell(&w, events, false, 0, true, leftovers, NULL, NULL, now_ns());
			json_decref(events);
			(void) write_outputs(&w, cell, wall_start, t0);
			json_decref(cell);
			exit_code = WATCH_EXIT_HANG;
			goto out;
		}
		end_everything(&w, "timeout", leftovers, &teardown);
	} else if (!ended) {
		fprintf(stderr, "forkscope watch: interrupted by %s; ending the command's tree SIGINT first\n",
			signal_name(interrupted ? interrupted : SIGTERM));
		end_everything(&w, "interrupted", leftovers, &teardown);
		if (reap_children(w.top, &status) == 1) {
			ended = true;
			end_ns = now_ns();
		}
	} else {
		/* The command ended: give what it left behind the linger window,
		 * then say what it is and what it does before ending it. */
		size_t alive = wait_descendants_gone(end_ns + o->linger_ns);
		if (alive > 0 && !interrupted) {
			fprintf(stderr, "forkscope watch: %zu process%s outlived the command, triaging\n", alive,
				alive == 1 ? "" : "es");
			run_triage(&w, 0, "leftovers");
		}
		if (alive > 0)
			end_everything(&w, "leftovers", leftovers, NULL);
		print_leftovers(leftovers);
		json_t *escaped = escaped_verdict(leftovers, w.cmdline);
		if (escaped) {
			fprintf(stderr, "%s\n", json_str(escaped, "text", ""));
			json_array_append_new(w.verdicts, escaped);
		}
	}
	(void) wait_descendants_gone(now_ns() + 5 * NSEC_PER_SEC);
	eventlog_close();

	json_t *events = events_load(w.events_path, NULL);
	json_t *cell = build_cell(&w, events, ended, status, hang, leftovers, teardown, infra_error,
				  end_ns ? end_ns : now_ns());
	json_decref(events);
	int out_rc = write_outputs(&w, cell, wall_start, t0);
	json_decref(cell);

	if (hang)
		exit_code = WATCH_EXIT_HANG;
	else if (interrupted && !ended)
		exit_code = 128 + interrupted;
	else if (exec_errno)
		exit_code = exec_errno == ENOENT ? 127 : 126;
	else if (ended && WIFEXITED(status))
		exit_code = WEXITSTATUS(status);
	else if (ended && WIFSIGNALED(status))
		exit_code = 128 + WTERMSIG(status);
	else
		exit_code = 1;
	if (out_rc && exit_code == 0)
		exit_code = out_rc;
	(void) infra_error;
out:
	if (pidfd >= 0)
		(void) close(pidfd);
	if (errpipe[0] >= 0)
		(void) close(errpipe[0]);
	if (errpipe[1] >= 0)
		(void) close(errpipe[1]);
	eventlog_close();
	if (env) {
		for (size_t i = 0; env[i]; i++) {
			bool ours = env_is(env[i], "LD_PRELOAD") || env_is(env[i], "FORKSCOPE_EVENTS") ||
				    env_is(env[i], SELFDUMP_ENV);
			if (ours)
				free(env[i]);
		}
		free(env);
	}
	free(sh_argv);
	json_decref(leftovers);
	json_decref(teardown);
	json_decref(w.verdicts);
	free(w.events_path);
	free(w.run_dir);
	free(w.cmdline);
	free(path);
	free(probe);
	return exit_code;
}

/* ---- command line ---- */

static const char watch_usage[] =
	"usage: forkscope watch [--timeout S] [--linger S] [--out DIR] [--json F] [--html F] [--junit F]\n"
	"                       [--hold] [--selfdump] [--no-stacks] [--rules FILE] -- CMD [ARG...]\n"
	"\n"
	"Runs CMD with the forkscope probe preloaded (events.ndjson in the run directory),\n"
	"passes its exit status through (128+N for death by signal N), exits 124 when it\n"
	"did not end within --timeout (after triaging the live tree), and reports, triages\n"
	"and ends SIGINT first whatever outlived it after --linger (default 500ms).\n";

int
cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' }, { "linger", required_argument, NULL, 'l' },
		{ "out", required_argument, NULL, 'o' },     { "json", required_argument, NULL, 'J' },
		{ "html", required_argument, NULL, 'W' },    { "junit", required_argument, NULL, 'U' },
		{ "hold", no_argument, NULL, 'H' },	     { "selfdump", no_argument, NULL, 'S' },
		{ "no-stacks", no_argument, NULL, 'N' },     { "rules", required_argument, NULL, 'L' },
		{ "color", required_argument, NULL, 'C' },   { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct watch_options o = { .linger_ns = WATCH_LINGER_DEFAULT_NS, .stacks = true, .color = "auto",
				   .argv = (const char **) argv, .argc = argc };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (duration_parse(optarg, &o.timeout_ns) < 0 || o.timeout_ns == 0) {
				fprintf(stderr, "forkscope watch: --timeout: invalid duration '%s' (e.g. 30, 2.5s, 500ms)\n",
					optarg);
				return 2;
			}
			break;
		case 'l':
			if (duration_parse(optarg, &o.linger_ns) < 0) {
				fprintf(stderr, "forkscope watch: --linger: invalid duration '%s' (e.g. 500ms, 2s)\n", optarg);
				return 2;
			}
			break;
		case 'o':
			o.out_dir = optarg;
			break;
		case 'J':
			o.json_path = optarg;
			break;
		case 'W':
			o.html_path = optarg;
			break;
		case 'U':
			o.junit_path = optarg;
			break;
		case 'H':
			o.hold = true;
			break;
		case 'S':
			o.selfdump = true;
			break;
		case 'N':
			o.stacks = false;
			break;
		case 'L':
			o.rules_file = optarg;
			break;
		case 'C':
			if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
				fprintf(stderr, "forkscope watch: --color: expected auto, always or never\n");
				return 2;
			}
			o.color = optarg;
			break;
		case 'h':
			fputs(watch_usage, stdout);
			return 0;
		default:
			fputs(watch_usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "forkscope watch: no command given (forkscope watch [OPTIONS] -- CMD [ARG...])\n");
		return 2;
	}
	return watch_main(&o, argv + optind);
}
