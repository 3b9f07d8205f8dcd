#include "reports/verdict_fdalias.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/verdict_class.h"
#include "util/jsonutil.h"
#include "util/strbuf.h"

#define CHAIN_MAX 32

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

bool
fdalias_bytes_are_text(const unsigned char *bytes, size_t n)
{
	size_t printable = 0;
	for (size_t i = 0; i < n; i++)
		if ((bytes[i] >= 0x20 && bytes[i] < 0x7f) || bytes[i] == '\n' || bytes[i] == '\t' || bytes[i] == '\r')
			printable++;
	/* A length prefix or a binary header starts with bytes outside this. */
	return n >= 4 && printable * 10 >= n * 9 && bytes[0] >= 0x20 && bytes[0] < 0x7f;
}

/* The "hex" of a sample back to bytes; returns the count. */
static size_t
unhex(const char *hex, unsigned char *out, size_t max)
{
	size_t n = 0;
	for (; hex && hex[0] && hex[1] && n < max; hex += 2) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		out[n++] = (unsigned char) v;
	}
	return n;
}

static bool
channel_kind(const char *kind)
{
	return kind && (strcmp(kind, "socket") == 0 || strcmp(kind, "pipe") == 0);
}

static bool
sink_kind(const char *kind)
{
	return kind && (strcmp(kind, "file") == 0 || strcmp(kind, "null") == 0 || strcmp(kind, "tty") == 0);
}

static void
alias_clear(struct fdalias_alias *a)
{
	free(a->was_target);
	free(a->was_kind);
	free(a->closed_via);
	free(a->reuse_via);
	free(a->now_target);
	free(a->now_kind);
	free(a->now_local);
	free(a->now_peer);
	for (size_t i = 0; i < a->n_sites; i++) {
		struct fdalias_site *s = &a->sites[i];
		free(s->addr);
		free(s->module);
		free(s->offset);
		free(s->via);
		free(s->bytes);
	}
	memset(a, 0, sizeof(*a));
}

void
fdalias_free(struct fdalias_alias *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		alias_clear(&a[i]);
	free(a);
}

static void
alias_from_reuse(struct fdalias_alias *a, const json_t *ev)
{
	memset(a, 0, sizeof(*a));
	a->pid = (pid_t) json_int(ev, "pid", 0);
	a->fd = (int) json_int(ev, "fd", -1);
	a->reuse_ns = (uint64_t) json_int(ev, "ts_ns", 0);
	a->reuse_via = dup_or_null(json_str(ev, "via", NULL));
	a->stale = -1;
	const json_t *was = json_object_get(ev, "was");
	if (was) {
		a->was_target = dup_or_null(json_str(was, "target", NULL));
		a->was_kind = dup_or_null(json_str(was, "kind", NULL));
		a->was_ino = (uint64_t) json_int(was, "ino", 0);
		a->inherited_from = (pid_t) json_int(was, "inherited_from", 0);
		a->closed_ns = (uint64_t) json_int(was, "closed_ns", 0);
		a->closed_via = dup_or_null(json_str(was, "closed_via", NULL));
		a->closed_tid = (pid_t) json_int(was, "closed_tid", 0);
	}
	const json_t *now = json_object_get(ev, "now");
	a->now_target = dup_or_null(json_str(now, "target", NULL));
	a->now_kind = dup_or_null(json_str(now, "kind", NULL));
	a->now_ino = (uint64_t) json_int(now, "ino", 0);
	a->now_local = dup_or_null(json_str(now, "local", NULL));
	a->now_peer = dup_or_null(json_str(now, "peer", NULL));
}

static void
add_site(struct fdalias_alias *a, const json_t *ev)
{
	if (a->n_sites >= FDALIAS_SITES)
		return;
	const json_t *site = json_object_get(ev, "site");
	const char *addr = json_str(site, "addr", NULL);
	for (size_t i = 0; i < a->n_sites; i++)
		if (addr && a->sites[i].addr && strcmp(addr, a->sites[i].addr) == 0)
			return;
	struct fdalias_site *s = &a->sites[a->n_sites++];
	s->addr = dup_or_null(addr);
	s->module = dup_or_null(json_str(site, "module", NULL));
	s->offset = dup_or_null(json_str(site, "offset", NULL));
	s->via = dup_or_null(json_str(ev, "via", NULL));
	s->tid = (pid_t) json_int(ev, "tid", 0);
	s->bytes = dup_or_null(json_str(ev, "bytes", ""));
	s->ts_ns = (uint64_t) json_int(ev, "ts_ns", 0);
	unsigned char raw[64];
	size_t n = unhex(json_str(ev, "hex", ""), raw, sizeof(raw));
	s->text = fdalias_bytes_are_text(raw, n);
}

/* Two writers, or a text sink's bytes in a channel: which one is stale. */
static bool
judge(struct fdalias_alias *a)
{
	if (!channel_kind(a->now_kind) || a->n_sites == 0)
		return false;
	size_t n_text = 0;
	for (size_t i = 0; i < a->n_sites; i++)
		n_text += a->sites[i].text;
	if (a->n_sites >= 2) {
		a->why = "two writers";
		/* The channel frames its messages; the stale sink writes lines. */
		if (n_text > 0 && n_text < a->n_sites)
			for (size_t i = 0; i < a->n_sites && a->stale < 0; i++)
				if (a->sites[i].text)
					a->stale = (int) i;
		return true;
	}
	if (sink_kind(a->was_kind) && n_text == 1) {
		a->why = "text in a channel";
		a->stale = 0;
		return true;
	}
	return false;
}

int
fdalias_find(const json_t *events, struct fdalias_alias **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	size_t n = 0, cap = 0, i;
	struct fdalias_alias *all = NULL;
	const json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		bool reuse = strcmp(name, "fd_reuse") == 0;
		if (reuse) {
			if (json_is_true(json_object_get(ev, "retired")))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				struct fdalias_alias *na = realloc(all, nc * sizeof(*na));
				if (!na) {
					fdalias_free(all, n);
					return -ENOMEM;
				}
				all = na;
				cap = nc;
			}
			alias_from_reuse(&all[n++], ev);
		} else if (strcmp(name, "fd_write_sample") == 0) {
			pid_t pid = (pid_t) json_int(ev, "pid", 0);
			int fd = (int) json_int(ev, "fd", -1);
			/* The latest reuse of that number in that process. */
			for (size_t k = n; k-- > 0;)
				if (all[k].pid == pid && all[k].fd == fd) {
					add_site(&all[k], ev);
					break;
				}
		}
	}
	size_t kept = 0;
	for (size_t k = 0; k < n; k++) {
		if (judge(&all[k]))
			all[kept++] = all[k];
		else
			alias_clear(&all[k]);
	}
	if (kept == 0) {
		free(all);
		return 0;
	}
	*ret = all;
	*ret_n = kept;
	return (int) kept;
}

/* ---- the graph side: who stalls on the other end ---- */

static bool
thread_waits_on_fd(struct wf_proc *p, struct wf_thread *t, int fd)
{
	if (!t->blocking)
		return false;
	if ((t->wait == WF_WAIT_READ || t->wait == WF_WAIT_WRITE) && t->wait_fd == fd)
		return true;
	if (t->wait != WF_WAIT_POLL)
		return false;
	if (t->poll_fds) {
		for (size_t i = 0; i < t->n_poll_fds; i++)
			if (t->poll_fds[i] == fd)
				return true;
		return false;
	}
	struct wf_fd *ep = wf_find_fd(p, t->wait_fd);
	for (size_t i = 0; ep && i < ep->n_epoll_targets; i++)
		if (ep->epoll_targets[i] == fd)
			return true;
	return false;
}

struct stall {
	struct wf_proc *p;
	struct wf_thread *t;
	struct wf_fd *f;
	bool by_peer; /* the other end of the aliased channel, not a guess */
};

/* The holder of the other end, blocked on it. */
static bool
stall_by_peer(struct wf_graph *g, const struct fdalias_alias *a, struct wf_proc *w, struct stall *ret)
{
	struct wf_fd *wf = w ? wf_find_fd(w, a->fd) : NULL;
	uint64_t ino = wf ? wf->ino : a->now_ino;
	uint64_t peer = wf ? wf->peer_ino : 0;
	for (size_t i = 0; i < g->n_procs; i++) {
		struct wf_proc *p = &g->procs[i];
		for (size_t k = 0; k < p->n_fds; k++) {
			struct wf_fd *f = &p->fds[k];
			bool other;
			if (f->kind == WF_FD_PIPE)
				other = strcmp(a->now_kind, "pipe") == 0 && f->ino == ino && f->mode == 'r';
			else if (f->kind == WF_FD_SOCKET)
				other = (f->peer_ino && f->peer_ino == ino) || (peer && f->ino == peer);
			else
				other = false;
			if (!other || (p == w && f->fd == a->fd))
				continue;
			for (size_t t = 0; t < p->n_threads; t++)
				if (thread_waits_on_fd(p, &p->threads[t], f->fd)) {
					*ret = (struct stall){ p, &p->threads[t], f, true };
					return true;
				}
		}
	}
	return false;
}

static bool
descends_from(struct wf_graph *g, struct wf_proc *p, pid_t ancestor)
{
	for (int depth = 0; p && depth < 64; depth++) {
		if (p->ppid == ancestor)
			return true;
		p = wf_find_proc(g, p->ppid);
	}
	return false;
}

/* Peers unknown (TCP without sock_diag matching): a blocked reader of a
 * socket or pipe, the writer's own descendants first. */
static bool
stall_by_reader(struct wf_graph *g, struct wf_proc *w, pid_t writer, struct stall *ret)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < g->n_procs; i++) {
			struct wf_proc *p = &g->procs[i];
			if (p->pid == writer || (pass == 0 && !descends_from(g, p, writer)))
				continue;
			for (size_t t = 0; t < p->n_threads; t++) {
				struct wf_thread *th = &p->threads[t];
				for (size_t k = 0; k < p->n_fds; k++) {
					struct wf_fd *f = &p->fds[k];
					if ((f->kind == WF_FD_SOCKET && !f->listening) || (f->kind == WF_FD_PIPE && f->mode == 'r'))
						if (th->wait != WF_WAIT_WRITE && thread_waits_on_fd(p, th, f->fd)) {
							*ret = (struct stall){ p, th, f, false };
							return true;
						}
				}
			}
		}
	(void) w;
	return false;
}

/* Does thread t of q wait (wait4/waitid, or a poll over its pidfd) for c to exit? */
static bool
waits_for_exit(struct wf_proc *q, struct wf_thread *t, struct wf_proc *c)
{
	if (t->wait == WF_WAIT_CHILD)
		return t->wait_pid == c->pid || (t->wait_pid <= 0 && c->ppid == q->pid);
	if (t->wait != WF_WAIT_POLL)
		return false;
	struct wf_fd *ep = t->poll_fds ? NULL : wf_find_fd(q, t->wait_fd);
	size_t n = t->poll_fds ? t->n_poll_fds : ep ? ep->n_epoll_targets : 0;
	for (size_t i = 0; i < n; i++) {
		struct wf_fd *f = wf_find_fd(q, t->poll_fds ? t->poll_fds[i] : ep->epoll_targets[i]);
		if (f && f->kind == WF_FD_PIDFD && f->pidfd_pid == c->pid)
			return true;
	}
	return false;
}

/* Who waits for the stalled process to exit, level by level (a wait with a
 * ladder timer pending counts too: the chain is what the reader sees). */
static size_t
waiters_chain(struct wf_graph *g, struct wf_proc *s, struct wf_proc **out, size_t max)
{
	size_t n = 0;
	struct wf_proc *cur = s;
	while (n < max) {
		struct wf_proc *next = NULL;
		for (size_t i = 0; i < g->n_procs && !next; i++) {
			struct wf_proc *q = &g->procs[i];
			for (size_t k = 0; k < q->n_threads; k++)
				if (q != cur && waits_for_exit(q, &q->threads[k], cur)) {
					next = q;
					break;
				}
		}
		bool seen = next == s;
		for (size_t i = 0; i < n && next; i++)
			seen |= out[i] == next;
		if (!next || seen)
			break;
		out[n++] = next;
		cur = next;
	}
	return n;
}

/* The sample's bytes are already escaped text (\xNN for the rest). */
static void
put_bytes(struct strbuf *sb, const char *bytes)
{
	(void) strbuf_printf(sb, "\"%s\"", bytes ? bytes : "");
}

/* The process that opened the number: up the inherited_from line while the
 * ancestor already had the same target at that fd when it started. */
static pid_t
opened_by(const json_t *events, const struct fdalias_alias *a)
{
	pid_t who = a->inherited_from;
	for (int depth = 0; who > 0 && a->was_target && depth < 32; depth++) {
		pid_t up = 0;
		size_t i;
		const json_t *ev;
		json_array_foreach(events, i, ev) {
			const char *name = json_str(ev, "ev", "");
			if ((strcmp(name, "child_start") != 0 && strcmp(name, "exec") != 0) || json_int(ev, "pid", 0) != who)
				continue;
			size_t k;
			const json_t *fd;
			json_array_foreach(json_object_get(ev, "fds"), k, fd)
				if (json_int(fd, "fd", -1) == a->fd && strcmp(json_str(fd, "target", ""), a->was_target) == 0)
					up = (pid_t) json_int(ev, "ppid", 0);
		}
		if (up <= 0)
			break;
		who = up;
	}
	return who;
}

static const char *
label(struct wf_graph *g, pid_t pid, char *buf, size_t size)
{
	struct wf_proc *p = wf_find_proc(g, pid);
	if (p)
		return wf_proc_label(p, buf, size);
	(void) snprintf(buf, size, "pid %d", (int) pid);
	return buf;
}

static double
ms_between(uint64_t a, uint64_t b)
{
	return b >= a ? (double) (b - a) / 1e6 : -(double) (a - b) / 1e6;
}

static json_t *
site_json(const struct fdalias_site *s, bool stale)
{
	json_t *o = json_object();
	json_object_set_new(o, "via", json_string(s->via ? s->via : "?"));
	json_object_set_new(o, "tid", json_integer(s->tid));
	json_object_set_new(o, "module", s->module ? json_string(s->module) : json_null());
	json_object_set_new(o, "offset", s->offset ? json_string(s->offset) : json_null());
	json_object_set_new(o, "addr", s->addr ? json_string(s->addr) : json_null());
	json_object_set_new(o, "bytes", json_string(s->bytes ? s->bytes : ""));
	json_object_set_new(o, "text", json_boolean(s->text));
	json_object_set_new(o, "stale", json_boolean(stale));
	return o;
}

static json_t *
build_verdict(struct wf_graph *g, const json_t *events, const struct fdalias_alias *a, const struct stall *st,
	      struct wf_proc **chain, size_t n_chain)
{
	const struct verdict_class_info *info = verdict_class_lookup("fd-alias");
	const char *title = info ? verdict_class_title(info, g->from_scenario) : "a stale writer writes into a reused fd";
	const char *remedy = info ? verdict_class_remedy(info, g->from_scenario) : "retire fds by dup2-ing /dev/null over them";
	char l1[128], l2[128], l3[128];
	struct strbuf sb = STRBUF_INIT;
	(void) strbuf_printf(&sb, "Hang: fd-alias — %s\n", title);
	const char *writer = label(g, a->pid, l1, sizeof(l1));
	pid_t opener = opened_by(events, a);
	(void) strbuf_printf(&sb, "  fd %d of %s was %s", a->fd, writer, a->was_target ? a->was_target : "(unknown)");
	if (a->was_ino)
		(void) strbuf_printf(&sb, " (inode %llu)", (unsigned long long) a->was_ino);
	if (a->inherited_from > 0) {
		(void) strbuf_printf(&sb, " in its parent %s", label(g, a->inherited_from, l2, sizeof(l2)));
		if (opener != a->inherited_from)
			(void) strbuf_printf(&sb, ", opened by %s", label(g, opener, l3, sizeof(l3)));
		else
			(void) strbuf_printf(&sb, ", which opened it");
	}
	(void) strbuf_printf(&sb, ".\n");
	if (a->closed_ns)
		(void) strbuf_printf(&sb, "  The child's scrub closed it (%s, tid %d) %.3f ms before the number came back.\n",
				     a->closed_via ? a->closed_via : "close", (int) a->closed_tid,
				     ms_between(a->closed_ns, a->reuse_ns));
	(void) strbuf_printf(&sb, "  %s reused it for %s", a->reuse_via ? a->reuse_via : "?",
			     a->now_target ? a->now_target : "?");
	if (a->now_local && a->now_peer)
		(void) strbuf_printf(&sb, " (%s <-> %s)", a->now_local, a->now_peer);
	(void) strbuf_printf(&sb, "; its other end: %s, fd %d%s.\n", wf_proc_label(st->p, l2, sizeof(l2)), st->f->fd,
			     st->by_peer ? "" : " (the blocked reader; the peer is not known)");
	(void) strbuf_printf(&sb, "  Written from %zu call site%s (%s):\n", a->n_sites, a->n_sites == 1 ? "" : "s", a->why);
	json_t *sites = json_array();
	for (size_t i = 0; i < a->n_sites; i++) {
		const struct fdalias_site *s = &a->sites[i];
		(void) strbuf_printf(&sb, "    %-7s tid %d at %s+%s: ", s->via ? s->via : "?", (int) s->tid,
				     s->module ? s->module : "?", s->offset ? s->offset : s->addr ? s->addr : "?");
		put_bytes(&sb, s->bytes);
		if ((int) i == a->stale)
			(void) strbuf_printf(&sb, "   <- the stale writer");
		(void) strbuf_printf(&sb, "\n");
		json_array_append_new(sites, site_json(s, (int) i == a->stale));
	}
	char *what = wf_describe_wait(g, st->p, st->t);
	(void) strbuf_printf(&sb, "  %s stalls: %s waits for %s — the bytes that came first were read as a frame.\n",
			     wf_proc_label(st->p, l2, sizeof(l2)), st->t->syscall ? st->t->syscall : "a read",
			     what ? what : "?");
	for (size_t i = 0; i < n_chain; i++)
		(void) strbuf_printf(&sb, "  %s waits for the exit of %s.\n", wf_proc_label(chain[i], l1, sizeof(l1)),
				     wf_proc_label(i ? chain[i - 1] : st->p, l2, sizeof(l2)));
	(void) strbuf_printf(&sb, "  Remedy: %s.\n", remedy);

	char summary[512];
	const struct fdalias_site *stale = a->stale >= 0 ? &a->sites[a->stale] : &a->sites[a->n_sites - 1];
	struct strbuf head = STRBUF_INIT;
	put_bytes(&head, stale->bytes);
	(void) snprintf(summary, sizeof(summary), "fd %d of %s: %s after the scrub, written by a stale writer (%s); %s stalls on the other end",
			a->fd, wf_proc_label(wf_find_proc(g, a->pid) ? wf_find_proc(g, a->pid) : st->p, l1, sizeof(l1)),
			a->now_target ? a->now_target : "?", head.data ? head.data : "", wf_proc_label(st->p, l2, sizeof(l2)));
	strbuf_free(&head);

	json_t *pids = json_array();
	json_array_append_new(pids, json_integer(st->p->pid));
	if (a->pid != st->p->pid)
		json_array_append_new(pids, json_integer(a->pid));
	for (size_t i = 0; i < n_chain; i++)
		if (chain[i]->pid != a->pid)
			json_array_append_new(pids, json_integer(chain[i]->pid));
	json_t *chain_j = json_array();
	json_array_append_new(chain_j, json_integer(st->p->pid));
	for (size_t i = 0; i < n_chain; i++)
		json_array_append_new(chain_j, json_integer(chain[i]->pid));

	json_t *evidence = json_object();
	json_object_set_new(evidence, "fd", json_integer(a->fd));
	json_object_set_new(evidence, "writer_pid", json_integer(a->pid));
	json_t *was = json_object();
	json_object_set_new(was, "target", a->was_target ? json_string(a->was_target) : json_null());
	json_object_set_new(was, "kind", a->was_kind ? json_string(a->was_kind) : json_null());
	json_object_set_new(was, "ino", json_integer((json_int_t) a->was_ino));
	json_object_set_new(was, "inherited_from", json_integer(a->inherited_from));
	json_object_set_new(was, "opened_by", json_integer(opener));
	json_object_set_new(was, "closed_via", a->closed_via ? json_string(a->closed_via) : json_null());
	json_object_set_new(was, "closed_ms_before_reuse", json_real(ms_between(a->closed_ns, a->reuse_ns)));
	json_object_set_new(evidence, "was", was);
	json_t *now = json_object();
	json_object_set_new(now, "target", a->now_target ? json_string(a->now_target) : json_null());
	json_object_set_new(now, "via", a->reuse_via ? json_string(a->reuse_via) : json_null());
	if (a->now_local)
		json_object_set_new(now, "local", json_string(a->now_local));
	if (a->now_peer)
		json_object_set_new(now, "peer", json_string(a->now_peer));
	json_object_set_new(now, "peer_pid", json_integer(st->p->pid));
	json_object_set_new(now, "peer_fd", json_integer(st->f->fd));
	json_object_set_new(now, "peer_known", json_boolean(st->by_peer));
	json_object_set_new(evidence, "now", now);
	json_object_set_new(evidence, "writers", sites);
	json_object_set_new(evidence, "why", json_string(a->why));
	json_object_set_new(evidence, "stalled_pid", json_integer(st->p->pid));

	char resource[256];
	(void) snprintf(resource, sizeof(resource), "fd %d (%s, was %s)", a->fd, a->now_target ? a->now_target : "?",
			a->was_target ? a->was_target : "?");
	json_t *v = json_object();
	json_object_set_new(v, "class", json_string("fd-alias"));
	json_object_set_new(v, "summary", json_string(summary));
	json_object_set_new(v, "pids", pids);
	json_object_set_new(v, "resource", json_string(resource));
	json_object_set_new(v, "chain", chain_j);
	json_object_set_new(v, "evidence", evidence);
	json_object_set_new(v, "stacks", json_object());
	json_object_set_new(v, "remedy", json_string(remedy));
	json_object_set_new(v, "rule", json_string("builtin:fd-alias"));
	json_object_set_new(v, "text", json_string(sb.data ? sb.data : ""));
	free(what);
	strbuf_free(&sb);
	return v;
}

static bool
verdict_covers(const json_t *v, pid_t pid)
{
	size_t i;
	const json_t *p;
	json_array_foreach(json_object_get(v, "pids"), i, p)
		if (json_integer_value(p) == pid)
			return true;
	return false;
}

void
verdict_fdalias_apply(struct wf_graph *g, const json_t *events, json_t *verdicts)
{
	if (!events || !json_is_array(verdicts))
		return;
	struct fdalias_alias *aliases = NULL;
	size_t n = 0;
	if (fdalias_find(events, &aliases, &n) <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct fdalias_alias *a = &aliases[i];
		struct wf_proc *w = wf_find_proc(g, a->pid);
		struct stall st;
		bool found = stall_by_peer(g, a, w, &st);
		/* A single text writer is an alias only on a channel we can follow. */
		if (!found && a->n_sites >= 2)
			found = stall_by_reader(g, w, a->pid, &st);
		if (!found)
			continue;
		struct wf_proc *chain[CHAIN_MAX];
		size_t n_chain = waiters_chain(g, st.p, chain, CHAIN_MAX);
		/* The alias is the cause of what the other rules saw in these processes. */
		for (size_t k = json_array_size(verdicts); k-- > 0;) {
			const json_t *v = json_array_get(verdicts, k);
			const struct verdict_class_info *info =
				verdict_class_lookup(json_string_value(json_object_get(v, "class")));
			if (info && !info->is_hang)
				continue;
			bool covers = verdict_covers(v, st.p->pid) || verdict_covers(v, a->pid);
			for (size_t c = 0; c < n_chain && !covers; c++)
				covers = verdict_covers(v, chain[c]->pid);
			if (covers)
				(void) json_array_remove(verdicts, k);
		}
		json_array_append_new(verdicts, build_verdict(g, events, a, &st, chain, n_chain));
	}
	fdalias_free(aliases, n);
}
