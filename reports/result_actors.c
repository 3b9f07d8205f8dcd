#include "reports/result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonutil.h"
#include "util/procname.h"

/* The ACTOR list of a watch run (docs/results.md), built from the probe's
 * events alone: one entry per process seen, pre-order from the command. */


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

/* The name of a process that exec'd: "python3 script.py" for an
 * interpreter (util/procname.h). */
static void
set_exec_name(struct wproc *p, const char *argv0, const json_t *argv)
{
	size_t n = json_array_size(argv);
	const char **args = calloc(n + 1, sizeof(char *));
	if (!args)
		return;
	for (size_t i = 0; i < n; i++)
		args[i] = json_string_value(json_array_get(argv, i));
	if (n > 0 && argv0)
		args[0] = argv0;
	char *name = n > 0 ? process_display_name(NULL, args, n) : NULL;
	free(args);
	if (name)
		set_name(p, name);
	else
		set_name(p, base_name(argv0));
	free(name);
}

static json_t *
rel_ns(uint64_t ts, uint64_t start)
{
	if (!ts)
		return json_null();
	return ts >= start ? json_u64(ts - start) : json_integer(0);
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

static void
collect_events(struct wprocs *psp, const json_t *events, uint64_t start_ns)
{
	struct wprocs ps = *psp;
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
			set_exec_name(self, json_str(ev, "argv0", NULL), json_object_get(ev, "argv"));
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
				json_object_set_new(self->obj, "exit_status", result_exit_status((int) json_int(ev, "code", -1), NULL));
			json_object_set_new(self->obj, "exit_via", json_string(json_str(ev, "via", "")));
		} else if (strcmp(name, "reaped") == 0 && child_pid > 0) {
			struct wproc *c = wproc_get(&ps, child_pid);
			if (!c)
				continue;
			c->reap = ts;
			json_object_set_new(c->obj, "exit_status",
					    result_exit_status((int) json_int(ev, "code", -1), json_str(ev, "signal", NULL)));
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
	*psp = ps;
}

/* What crossed the fork; for a process that started by exec (the command,
 * posix_spawn, vfork+exec), what crossed the exec. */
static void
fill_actor(struct wprocs *ps, struct wproc *p, pid_t root_pid, uint64_t start_ns)
{
	json_t *o = p->obj;
	json_object_set_new(o, "name", json_string(p->name ? p->name : "?"));
	json_object_set_new(o, "id", json_integer(p->id));
	json_object_set_new(o, "pid", json_integer(p->pid));
	json_object_set_new(o, "ppid", p->ppid ? json_integer(p->ppid) : json_null());
	json_object_set_new(o, "parent", p->parent >= 0 ? json_integer(ps->v[p->parent].id) : json_null());
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
	json_t *census = p->start ? p->start : p->exec_ev;
	if (census) {
		result_describe_fds(o, json_object_get(census, "fds"), NULL);
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

json_t *
result_actors_from_events(const json_t *events, pid_t root_pid, uint64_t start_ns)
{
	struct wprocs ps = { 0 };
	if (root_pid > 0)
		(void) wproc_get(&ps, root_pid);
	collect_events(&ps, events, start_ns);
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

	for (size_t k = 0; k < ps.n; k++)
		fill_actor(&ps, &ps.v[k], root_pid, start_ns);
	for (size_t k = 0; k < ps.n; k++) {
		json_decref(ps.v[k].obj);
		json_decref(ps.v[k].signals);
		free(ps.v[k].name);
	}
	free(ps.v);
	return actors;
}

