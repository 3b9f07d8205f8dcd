/* The fd-alias verdict (reports/verdict_fdalias.c) on synthetic probe events
 * and hand-built wait-for graphs: which reuses count as an alias, which
 * writer is the stale one, who stalls (peer known or not), the chain, and
 * that it replaces the verdicts it explains. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "reports/verdict_fdalias.h"
#include "reports/waitgraph.h"

static json_t *
reuse(int pid, int fd, const char *was_kind, const char *was_target, const char *now_kind, const char *now_target,
      long ts)
{
	return json_pack("{s:s,s:i,s:i,s:i,s:s,s:i,s:{s:s,s:s,s:i,s:i,s:i,s:s,s:i},s:{s:s,s:s,s:i}}", "ev", "fd_reuse",
			 "pid", pid, "tid", pid, "fd", fd, "via", "accept4", "ts_ns", ts, "was", "target", was_target,
			 "kind", was_kind, "ino", 3, "inherited_from", 9, "closed_ns", ts - 1000000, "closed_via",
			 "close", "closed_tid", pid, "now", "target", now_target, "kind", now_kind, "ino", 100);
}

static json_t *
sample(int pid, int fd, const char *addr, const char *via, const char *bytes, const char *hex, long ts)
{
	return json_pack("{s:s,s:i,s:i,s:i,s:s,s:{s:s,s:s,s:s},s:s,s:s,s:i}", "ev", "fd_write_sample", "pid", pid,
			 "tid", pid, "fd", fd, "via", via, "site", "addr", addr, "module", "libx.so", "offset", "0x10",
			 "bytes", bytes, "hex", hex, "ts_ns", ts);
}

#define FRAME_HELLO_BYTES "\\x00\\x00\\x00\\x05hello"
#define FRAME_HELLO_HEX "0000000568656c6c6f"
#define TEXT_BYTES "ERROR    spawner: boom"
#define TEXT_HEX "4552524f5220202020737061776e65723a20626f6f6d"

static json_t *
two_writer_events(void)
{
	json_t *ev = json_array();
	json_array_append_new(ev, reuse(10, 4, "null", "/dev/null", "socket", "socket:[100]", 5000000));
	json_array_append_new(ev, sample(10, 4, "0x1000", "send", FRAME_HELLO_BYTES, FRAME_HELLO_HEX, 6000000));
	json_array_append_new(ev, sample(10, 4, "0x2000", "write", TEXT_BYTES, TEXT_HEX, 7000000));
	return ev;
}

Test(fdalias, text_or_frame)
{
	cr_assert(fdalias_bytes_are_text((const unsigned char *) "ERROR    x", 10));
	cr_assert(fdalias_bytes_are_text((const unsigned char *) "line one\nline two\n", 18));
	cr_assert(!fdalias_bytes_are_text((const unsigned char *) "\0\0\0\5hello", 9));
	cr_assert(!fdalias_bytes_are_text((const unsigned char *) "ab", 2));
	cr_assert(!fdalias_bytes_are_text((const unsigned char *) "\x82\xa4type\xa6" "cancel", 12));
}

Test(fdalias, two_writers_and_the_stale_one)
{
	json_t *ev = two_writer_events();
	struct fdalias_alias *a = NULL;
	size_t n = 0;
	cr_assert_eq(fdalias_find(ev, &a, &n), 1);
	cr_assert_eq(n, 1);
	cr_assert_eq(a[0].pid, 10);
	cr_assert_eq(a[0].fd, 4);
	cr_assert_eq(a[0].n_sites, 2);
	cr_assert_str_eq(a[0].why, "two writers");
	cr_assert_eq(a[0].stale, 1);
	cr_assert_str_eq(a[0].sites[1].bytes, TEXT_BYTES);
	cr_assert_str_eq(a[0].was_target, "/dev/null");
	cr_assert_eq(a[0].inherited_from, 9);
	cr_assert_str_eq(a[0].now_target, "socket:[100]");
	fdalias_free(a, n);
	json_decref(ev);
}

Test(fdalias, what_is_not_an_alias)
{
	json_t *ev = json_array();
	/* retired: dup2 /dev/null over it */
	json_t *r = reuse(10, 3, "file", "/tmp/log", "null", "/dev/null", 1000000);
	json_object_set_new(r, "retired", json_true());
	json_array_append_new(ev, r);
	/* one binary writer on a reused socket: the channel itself */
	json_array_append_new(ev, reuse(10, 5, "file", "/tmp/log", "socket", "socket:[101]", 2000000));
	json_array_append_new(ev, sample(10, 5, "0x1000", "send", FRAME_HELLO_BYTES, FRAME_HELLO_HEX, 2100000));
	/* two writers on a reused regular file: no channel to break */
	json_array_append_new(ev, reuse(10, 6, "file", "/tmp/log", "file", "/tmp/other", 3000000));
	json_array_append_new(ev, sample(10, 6, "0x1000", "write", TEXT_BYTES, TEXT_HEX, 3100000));
	json_array_append_new(ev, sample(10, 6, "0x2000", "write", FRAME_HELLO_BYTES, FRAME_HELLO_HEX, 3200000));
	/* a reused socket nobody wrote to */
	json_array_append_new(ev, reuse(10, 7, "file", "/tmp/log", "socket", "socket:[102]", 4000000));
	struct fdalias_alias *a = NULL;
	size_t n = 0;
	cr_assert_eq(fdalias_find(ev, &a, &n), 0);
	cr_assert_null(a);
	json_decref(ev);
}

Test(fdalias, text_sink_bytes_in_a_channel)
{
	json_t *ev = json_array();
	json_array_append_new(ev, reuse(10, 5, "file", "/tmp/log", "pipe", "pipe:[100]", 2000000));
	json_array_append_new(ev, sample(10, 5, "0x1000", "write", TEXT_BYTES, TEXT_HEX, 2100000));
	struct fdalias_alias *a = NULL;
	size_t n = 0;
	cr_assert_eq(fdalias_find(ev, &a, &n), 1);
	cr_assert_str_eq(a[0].why, "text in a channel");
	cr_assert_eq(a[0].stale, 0);
	fdalias_free(a, n);
	json_decref(ev);
}

Test(fdalias, samples_go_to_the_latest_reuse)
{
	json_t *ev = json_array();
	json_array_append_new(ev, reuse(10, 4, "null", "/dev/null", "file", "/tmp/x", 1000000));
	json_array_append_new(ev, sample(10, 4, "0x1000", "send", FRAME_HELLO_BYTES, FRAME_HELLO_HEX, 1100000));
	json_array_append_new(ev, reuse(10, 4, "null", "/dev/null", "socket", "socket:[100]", 2000000));
	json_array_append_new(ev, sample(10, 4, "0x2000", "write", TEXT_BYTES, TEXT_HEX, 2100000));
	json_array_append_new(ev, sample(10, 4, "0x3000", "send", FRAME_HELLO_BYTES, FRAME_HELLO_HEX, 2200000));
	/* same number in another process: not this alias */
	json_array_append_new(ev, sample(11, 4, "0x4000", "send", FRAME_HELLO_BYTES, FRAME_HELLO_HEX, 2300000));
	struct fdalias_alias *a = NULL;
	size_t n = 0;
	cr_assert_eq(fdalias_find(ev, &a, &n), 1);
	cr_assert_str_eq(a[0].now_target, "socket:[100]");
	cr_assert_eq(a[0].n_sites, 2);
	cr_assert_str_eq(a[0].sites[0].addr, "0x2000");
	cr_assert_eq(a[0].stale, 0);
	fdalias_free(a, n);
	json_decref(ev);
}

/* ---- graphs ---- */

static void
set_proc(struct wf_proc *p, pid_t pid, pid_t ppid, size_t n_fds)
{
	p->pid = pid;
	p->ppid = ppid;
	p->comm = strdup("python3");
	p->state = 'S';
	p->threads = calloc(1, sizeof(*p->threads));
	p->n_threads = 1;
	p->threads[0].tid = pid;
	p->threads[0].name = strdup("python3");
	p->threads[0].state = 'S';
	p->threads[0].blocking = true;
	p->fds = calloc(n_fds ? n_fds : 1, sizeof(*p->fds));
	p->n_fds = n_fds;
}

static void
set_wait_child(struct wf_proc *p, pid_t child)
{
	p->threads[0].syscall = strdup("wait4");
	p->threads[0].wait = WF_WAIT_CHILD;
	p->threads[0].wait_pid = child;
}

/* root 9 waits for spawner 10, which waits for peer 11, which reads fd 3. */
static struct wf_graph *
knot(bool peer_known)
{
	struct wf_graph *g = calloc(1, sizeof(*g));
	g->procs = calloc(3, sizeof(*g->procs));
	g->n_procs = 3;
	set_proc(&g->procs[0], 9, 1, 0);
	set_wait_child(&g->procs[0], 10);
	set_proc(&g->procs[1], 10, 9, 1);
	set_wait_child(&g->procs[1], 11);
	g->procs[1].fds[0] = (struct wf_fd){ .fd = 4, .kind = WF_FD_SOCKET, .ino = 100, .mode = 'b',
					     .peer_ino = peer_known ? 101 : 0, .target = strdup("socket:[100]") };
	set_proc(&g->procs[2], 11, 10, 1);
	g->procs[2].fds[0] = (struct wf_fd){ .fd = 3, .kind = WF_FD_SOCKET, .ino = 101, .mode = 'b',
					     .peer_ino = peer_known ? 100 : 0, .target = strdup("socket:[101]") };
	g->procs[2].threads[0].syscall = strdup("recvfrom");
	g->procs[2].threads[0].wait = WF_WAIT_READ;
	g->procs[2].threads[0].wait_fd = 3;
	return g;
}

static json_t *
other_verdict(const char *cls, pid_t pid)
{
	return json_pack("{s:s,s:[i]}", "class", cls, "pids", pid);
}

Test(fdalias, verdict_with_the_peer_known_replaces_what_it_explains)
{
	struct wf_graph *g = knot(true);
	json_t *ev = two_writer_events();
	json_t *verdicts = json_array();
	json_array_append_new(verdicts, other_verdict("mutual-wait", 11));
	json_array_append_new(verdicts, other_verdict("escaped", 11)); /* not a hang: kept */
	json_array_append_new(verdicts, other_verdict("mutual-wait", 77)); /* elsewhere: kept */
	verdict_fdalias_apply(g, ev, verdicts);
	cr_assert_eq(json_array_size(verdicts), 3);
	json_t *v = json_array_get(verdicts, 2);
	cr_assert_str_eq(json_string_value(json_object_get(v, "class")), "fd-alias");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(verdicts, 0), "class")), "escaped");
	json_t *e = json_object_get(v, "evidence");
	cr_assert_eq(json_integer_value(json_object_get(e, "fd")), 4);
	cr_assert_eq(json_integer_value(json_object_get(e, "stalled_pid")), 11);
	cr_assert_eq(json_integer_value(json_object_get(e, "writer_pid")), 10);
	json_t *now = json_object_get(e, "now");
	cr_assert(json_is_true(json_object_get(now, "peer_known")));
	cr_assert_eq(json_integer_value(json_object_get(now, "peer_fd")), 3);
	json_t *chain = json_object_get(v, "chain");
	cr_assert_eq(json_array_size(chain), 3);
	cr_assert_eq(json_integer_value(json_array_get(chain, 0)), 11);
	cr_assert_eq(json_integer_value(json_array_get(chain, 1)), 10);
	cr_assert_eq(json_integer_value(json_array_get(chain, 2)), 9);
	const char *text = json_string_value(json_object_get(v, "text"));
	cr_assert(strstr(text, "Hang: fd-alias"));
	cr_assert(strstr(text, "fd 4 of python3 (pid 10) was /dev/null"));
	cr_assert(strstr(text, "\"" TEXT_BYTES "\"   <- the stale writer"), "%s", text);
	cr_assert(strstr(text, "python3 (pid 11) stalls"));
	cr_assert_null(strstr(text, "the peer is not known"));
	json_decref(verdicts);
	json_decref(ev);
	wf_graph_free(g);
}

Test(fdalias, verdict_without_the_peer_names_the_blocked_reader)
{
	struct wf_graph *g = knot(false);
	json_t *ev = two_writer_events();
	json_t *verdicts = json_array();
	verdict_fdalias_apply(g, ev, verdicts);
	cr_assert_eq(json_array_size(verdicts), 1);
	json_t *v = json_array_get(verdicts, 0);
	json_t *now = json_object_get(json_object_get(v, "evidence"), "now");
	cr_assert(json_is_false(json_object_get(now, "peer_known")));
	cr_assert_eq(json_integer_value(json_object_get(now, "peer_pid")), 11);
	cr_assert(strstr(json_string_value(json_object_get(v, "text")), "the peer is not known"));
	json_decref(verdicts);
	json_decref(ev);
	wf_graph_free(g);
}

Test(fdalias, no_verdict_without_a_blocked_reader_or_on_a_guess)
{
	/* The reader is running: nothing stalls. */
	struct wf_graph *g = knot(true);
	g->procs[2].threads[0].blocking = false;
	json_t *ev = two_writer_events();
	json_t *verdicts = json_array();
	verdict_fdalias_apply(g, ev, verdicts);
	cr_assert_eq(json_array_size(verdicts), 0);
	json_decref(ev);
	wf_graph_free(g);

	/* One text writer and the peer unknown: too weak to name. */
	g = knot(false);
	ev = json_array();
	json_array_append_new(ev, reuse(10, 4, "file", "/tmp/log", "socket", "socket:[100]", 5000000));
	json_array_append_new(ev, sample(10, 4, "0x2000", "write", TEXT_BYTES, TEXT_HEX, 7000000));
	verdict_fdalias_apply(g, ev, verdicts);
	cr_assert_eq(json_array_size(verdicts), 0);
	/* ...but named when the peer is known. */
	wf_graph_free(g);
	g = knot(true);
	verdict_fdalias_apply(g, ev, verdicts);
	cr_assert_eq(json_array_size(verdicts), 1);
	cr_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(json_array_get(verdicts, 0), "evidence"), "why")),
			 "text in a channel");
	json_decref(verdicts);
	json_decref(ev);
	wf_graph_free(g);
}
