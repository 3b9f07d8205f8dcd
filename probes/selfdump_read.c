#include "probes/selfdump_read.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "probes/eventlog_read.h"
#include "util/fdutil.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/timeutil.h"

static bool
is_selfdump_of(const json_t *ev, pid_t pid)
{
	return strcmp(json_str(ev, "ev", ""), "selfdump") == 0 && (pid == 0 || json_int(ev, "pid", -1) == pid);
}

static bool
is_part(const json_t *ev, const char *part)
{
	return strcmp(json_str(ev, "part", ""), part) == 0;
}

/* ---- loading ---- */

struct selfdump_lines {
	pid_t pid;
	json_t *out;
};

/* An events line: kept when it is a selfdump event of the pid. Damaged
 * lines are skipped, as the self-dump has no one to tell. */
static int
take_selfdump_line(const char *line, size_t n, size_t lineno, bool terminated, void *userdata)
{
	struct selfdump_lines *sl = userdata;
	/* Cheap filter first: most lines are other events. */
	if (!line || !memmem(line, n, "\"selfdump\"", 10))
		return 0;
	json_t *ev = json_loadb(line, n, 0, NULL);
	if (json_is_object(ev) && is_selfdump_of(ev, sl->pid))
		return json_array_append_new(sl->out, ev) == 0 ? 0 : -ENOMEM;
	json_decref(ev);
	return 0;
}

json_t *
selfdump_events_load(const char *events_path, pid_t pid)
{
	struct selfdump_lines sl = { .pid = pid, .out = json_array() };
	if (sl.out)
		(void) events_read_lines(events_path, take_selfdump_line, &sl);
	return sl.out;
}

/* Append the selfdump lines of pid written since *offset; only whole lines
 * are consumed, a line still being written is read next time. */
static void
read_new_lines(int fd, uint64_t *offset, pid_t pid, json_t *out)
{
	struct selfdump_lines sl = { .pid = pid, .out = out };
	uint64_t consumed = 0;
	uint64_t left = *offset < EVENTS_MAX_FILE_BYTES ? EVENTS_MAX_FILE_BYTES - *offset : 0;
	(void) events_read_fd(fd, *offset, left, false, take_selfdump_line, &sl, &consumed);
	*offset += consumed;
}

unsigned
selfdump_latest(const json_t *events, pid_t pid)
{
	unsigned latest = 0;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		if (is_selfdump_of(ev, pid) && is_part(ev, "modules"))
			latest = MAX(latest, (unsigned) json_int(ev, "dump", 0));
	return latest;
}

/* ---- one dump ---- */

struct dump_view {
	const json_t *head;	/* modules chunk 0: threads, blocked */
	json_t *modules;	/* every chunk's modules, in order of arrival */
	bool last_seen;		/* the closing chunk arrived */
	json_t *stacks;		/* stack parts */
};

static void
dump_view_collect(const json_t *events, pid_t pid, unsigned dump, struct dump_view *v)
{
	*v = (struct dump_view){ .modules = json_array(), .stacks = json_array() };
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		if (!is_selfdump_of(ev, pid) || json_int(ev, "dump", -1) != (int64_t) dump)
			continue;
		if (is_part(ev, "modules")) {
			if (json_int(ev, "chunk", 0) == 0)
				v->head = ev;
			(void) json_array_extend(v->modules, json_object_get(ev, "modules"));
			if (json_is_true(json_object_get(ev, "last")))
				v->last_seen = true;
		} else if (is_part(ev, "stack"))
			(void) json_array_append(v->stacks, ev);
	}
}

static void
dump_view_free(struct dump_view *v)
{
	json_decref(v->modules);
	json_decref(v->stacks);
}

static bool
tid_in(const json_t *array, pid_t tid)
{
	size_t i;
	json_t *t;
	json_array_foreach(array, i, t)
		if (json_is_integer(t) && json_integer_value(t) == tid)
			return true;
	return false;
}

static const json_t *
stack_of(const struct dump_view *v, pid_t tid)
{
	size_t i;
	json_t *s;
	json_array_foreach(v->stacks, i, s)
		if (json_int(s, "tid", -1) == tid)
			return s;
	return NULL;
}

/* Every asked thread that can answer has answered. */
static bool
dump_complete(const struct dump_view *v)
{
	if (!v->head || !v->last_seen)
		return false;
	const json_t *threads = json_object_get(v->head, "threads");
	const json_t *blocked = json_object_get(v->head, "blocked");
	size_t i;
	json_t *t;
	json_array_foreach(threads, i, t) {
		pid_t tid = (pid_t) json_integer_value(t);
		if (!tid_in(blocked, tid) && !stack_of(v, tid))
			return false;
	}
	return true;
}

static void
raw_modules_free(struct raw_module *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].path);
		free(m[i].build_id);
	}
	free(m);
}

static int
raw_modules_from_json(const json_t *modules, struct raw_module **ret, size_t *ret_n)
{
	size_t n = json_array_size(modules), k = 0;
	struct raw_module *m = calloc(n ? n : 1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	size_t i;
	json_t *o;
	json_array_foreach(modules, i, o) {
		struct raw_module r = { 0 };
		const char *path = json_str(o, "path", NULL);
		if (!path || json_hex_checked(o, "start", &r.start) < 0 || json_hex_checked(o, "end", &r.end) < 0 ||
		    json_hex_checked(o, "offset", &r.offset) < 0)
			continue;
		r.path = strdup(path);
		const char *id = json_str(o, "build_id", NULL);
		r.build_id = id ? strdup(id) : NULL;
		if (!r.path || (id && !r.build_id)) {
			free(r.path);
			free(r.build_id);
			raw_modules_free(m, k);
			return -ENOMEM;
		}
		m[k++] = r;
	}
	*ret = m;
	*ret_n = k;
	return 0;
}

static int
stack_from_event(struct stack_cache *cache, const struct raw_module *mods, size_t n_mods, const json_t *ev,
		 struct thread_stack *out)
{
	const json_t *pcs_json = json_object_get(ev, "pcs");
	size_t n = json_array_size(pcs_json);
	uint64_t *pcs = calloc(n ? n : 1, sizeof(*pcs));
	if (!pcs)
		return -ENOMEM;
	size_t k = 0;
	size_t i;
	json_t *p;
	json_array_foreach(pcs_json, i, p) {
		const char *s = json_string_value(p);
		if (s)
			pcs[k++] = strtoull(s, NULL, 16);
	}
	struct frame *frames = NULL;
	int r = stacks_symbolize(cache, mods, n_mods, pcs, k, &frames);
	free(pcs);
	if (r < 0)
		return r;
	out->frames = frames;
	out->n_frames = k;
	out->partial = json_is_true(json_object_get(ev, "partial"));
	const char *err = json_str(ev, "error", NULL);
	if (err && !(out->error = strdup(err)))
		return -ENOMEM;
	return 0;
}

static int
cmp_stack(const void *a, const void *b, void *leader)
{
	const struct thread_stack *x = a, *y = b;
	pid_t l = *(pid_t *) leader;
	if (x->tid == l || y->tid == l)
		return x->tid == l ? (y->tid == l ? 0 : -1) : 1;
	return (x->tid > y->tid) - (x->tid < y->tid);
}

int
selfdump_read(const json_t *events, pid_t pid, unsigned dump, struct stack_cache *cache,
	      struct thread_stack **ret, size_t *ret_n, char **ret_reason)
{
	if (!events || !cache || !ret || !ret_n)
		return -EINVAL;
	if (dump == 0)
		dump = selfdump_latest(events, pid);
	struct dump_view v;
	dump_view_collect(events, pid, dump, &v);
	if (dump == 0 || !v.head) {
		dump_view_free(&v);
		if (ret_reason && asprintf(ret_reason, "no self-dump recorded by pid %d", (int) pid) < 0)
			*ret_reason = NULL;
		return -ENOENT;
	}
	struct raw_module *mods = NULL;
	size_t n_mods = 0;
	int r = raw_modules_from_json(v.modules, &mods, &n_mods);
	if (r < 0) {
		dump_view_free(&v);
		return r;
	}
	const json_t *threads = json_object_get(v.head, "threads");
	const json_t *blocked = json_object_get(v.head, "blocked");
	size_t cap = json_array_size(threads) + json_array_size(v.stacks);
	struct thread_stack *out = calloc(cap ? cap : 1, sizeof(*out));
	size_t n = 0;
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	size_t i;
	json_t *t;
	json_array_foreach(threads, i, t) {
		pid_t tid = (pid_t) json_integer_value(t);
		struct thread_stack *s = &out[n++];
		s->tid = tid;
		const json_t *ev = stack_of(&v, tid);
		if (ev) {
			if ((r = stack_from_event(cache, mods, n_mods, ev, s)) < 0)
				goto out;
			continue;
		}
		s->partial = true;
		const char *why = tid_in(blocked, tid)
					  ? "no self-dump: the thread blocks the signal"
					  : "no self-dump: the thread did not answer (uninterruptible sleep, or it exited)";
		if (!(s->error = strdup(why))) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* A thread born after the task list was read cannot have been asked,
	 * but keep whatever answered. */
	json_t *ev;
	json_array_foreach(v.stacks, i, ev) {
		pid_t tid = (pid_t) json_int(ev, "tid", 0);
		if (tid_in(threads, tid))
			continue;
		struct thread_stack *s = &out[n++];
		s->tid = tid;
		if ((r = stack_from_event(cache, mods, n_mods, ev, s)) < 0)
			goto out;
	}
	pid_t leader = pid;
	qsort_r(out, n, sizeof(*out), cmp_stack, &leader);
	*ret = out;
	*ret_n = n;
	out = NULL;
	r = 0;
out:
	if (out)
		thread_stacks_free(out, n);
	raw_modules_free(mods, n_mods);
	dump_view_free(&v);
	return r;
}

/* ---- asking ---- */

int
selfdump_request(const char *events_path, pid_t pid, int sig, uint64_t timeout_ns, struct stack_cache *cache,
		 struct thread_stack **ret, size_t *ret_n, char **ret_reason)
{
	if (!events_path || pid <= 0 || sig <= 0)
		return -EINVAL;
	_cleanup_close_ int fd = events_open(events_path);
	if (fd < 0)
		return fd;
	_cleanup_close_ int pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return -errno;
	_cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino >= 0 && inotify_add_watch(ino, events_path, IN_MODIFY) < 0) {
		(void) close(ino);
		ino = -1;
	}
	json_t *events = json_array();
	uint64_t offset = 0;
	read_new_lines(fd, &offset, pid, events);
	unsigned before = selfdump_latest(events, pid);

	if (kill(pid, sig) < 0) {
		int e = -errno;
		json_decref(events);
		if (ret_reason && asprintf(ret_reason, "kill pid %d: %s", (int) pid, strerror(-e)) < 0)
			*ret_reason = NULL;
		return e;
	}
	uint64_t deadline = now_ns() + timeout_ns;
	unsigned dump = 0;
	bool gone = false;
	for (;;) {
		read_new_lines(fd, &offset, pid, events);
		unsigned latest = selfdump_latest(events, pid);
		if (latest > before) {
			dump = latest;
			struct dump_view v;
			dump_view_collect(events, pid, dump, &v);
			bool complete = dump_complete(&v);
			dump_view_free(&v);
			if (complete)
				break;
		}
		uint64_t now = now_ns();
		if (gone || now >= deadline)
			break;
		struct pollfd p[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = ino, .events = POLLIN } };
		/* Without inotify, wake every 20 ms to re-read. */
		int ms = (int) MIN((deadline - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC, ino >= 0 ? 86400000u : 20u);
		int n = poll(p, ino >= 0 ? 2 : 1, ms);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (p[0].revents & POLLIN))
			gone = true; /* read once more: it may have written before dying */
		if (n > 0 && ino >= 0 && (p[1].revents & POLLIN)) {
			char buf[4096] __attribute__((aligned(8)));
			while (read(ino, buf, sizeof(buf)) > 0)
				;
		}
	}
	int r;
	if (dump == 0) {
		r = gone ? -ESRCH : -ETIMEDOUT;
		if (ret_reason && asprintf(ret_reason, "pid %d %s", (int) pid,
					   gone ? "exited before it answered the self-dump signal"
						: "recorded no self-dump (no probe loaded, or the signal is blocked or handled by the program)") < 0)
			*ret_reason = NULL;
	} else
		r = selfdump_read(events, pid, dump, cache, ret, ret_n, ret_reason);
	json_decref(events);
	return r;
}

/* ---- JSON ---- */

static json_t *
hex_json(uint64_t v)
{
	char buf[24];
	(void) snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
selfdump_stack_to_json(const struct thread_stack *s)
{
	json_t *o = json_object();
	json_object_set_new(o, "tid", json_integer(s->tid));
	json_object_set_new(o, "partial", json_boolean(s->partial));
	json_object_set_new(o, "error", str_or_null(s->error));
	json_t *frames = json_array();
	for (size_t i = 0; i < s->n_frames; i++) {
		const struct frame *f = &s->frames[i];
		json_t *fo = json_object();
		json_object_set_new(fo, "pc", hex_json(f->pc));
		json_object_set_new(fo, "function", str_or_null(f->function));
		json_object_set_new(fo, "offset", json_integer((json_int_t) f->offset));
		json_object_set_new(fo, "module", str_or_null(f->module));
		json_object_set_new(fo, "file", str_or_null(f->file));
		json_object_set_new(fo, "line", json_integer(f->line));
		json_object_set_new(fo, "inlined", json_boolean(f->inlined));
		json_object_set_new(fo, "python", str_or_null(f->python));
		(void) json_array_append_new(frames, fo);
	}
	json_object_set_new(o, "frames", frames);
	json_object_set_new(o, "source", json_string("selfdump"));
	return o;
}

int
selfdump_merge_into_snapshot(json_t *snapshot, pid_t pid, const struct thread_stack *threads, size_t n)
{
	json_t *procs = json_object_get(snapshot, "processes");
	json_t *proc = NULL;
	size_t i;
	json_t *p;
	json_array_foreach(procs, i, p)
		if (json_int(p, "pid", -1) == pid)
			proc = p;
	if (!proc)
		return -ENOENT;
	json_t *thread_list = json_object_get(proc, "threads");
	json_t *extra = json_object_get(proc, "unmatched_stacks");
	if (!json_is_array(extra)) {
		extra = json_array();
		json_object_set_new(proc, "unmatched_stacks", extra);
	}
	int placed = 0;
	for (size_t k = 0; k < n; k++) {
		json_t *match = NULL, *t;
		json_array_foreach(thread_list, i, t)
			if (json_int(t, "tid", -1) == threads[k].tid)
				match = t;
		if (match && json_is_object(json_object_get(match, "stack")))
			continue; /* ptrace got one: keep it */
		json_t *s = selfdump_stack_to_json(&threads[k]);
		if (match) {
			json_object_set_new(match, "stack", s);
			json_object_set_new(match, "stack_source", json_string("selfdump"));
		} else
			(void) json_array_append_new(extra, s);
		placed++;
	}
	json_object_set_new(proc, "selfdump", json_pack("{s:i}", "threads", (int) n));
	return placed;
}
