/* Verdicts on snapshots of real programs (recorded by
 * tools/realworld_check.py --record tests/realworld): python3 stdlib, sh,
 * util-linux flock, mkfifo. Each case names its class, the processes and
 * the resource, with remedies in the program's terms (no scenario keys). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probes/waitfacts.h"
#include "reports/rules.h"
#include "reports/verdict.h"
#include "reports/waitgraph.h"

static json_t *
load_case(const char *name, json_int_t *ret_root)
{
	char path[512];
	const char *dir = getenv("REALWORLD_SNAPSHOTS");
	cr_assert(dir, "REALWORLD_SNAPSHOTS not set");
	(void) snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	json_error_t err;
	json_t *doc = json_load_file(path, 0, &err);
	cr_assert(doc, "%s: %s", path, err.text);
	*ret_root = json_integer_value(json_object_get(doc, "root"));
	return doc;
}

/* The verdicts (and optionally the summary text) of a snapshot. */
static json_t *
verdicts_of(const json_t *snapshot, char **ret_summary)
{
	struct ruleset rs = {0};
	char *err = NULL;
	cr_assert_geq(ruleset_load_default(&rs, &err), 0, "%s", err ? err : "");
	ruleset_sort(&rs);
	struct wf_graph *g = NULL;
	cr_assert_geq(wf_graph_from_snapshot(snapshot, NULL, &g), 0);
	wf_analyze(g);
	json_t *v = verdicts_compute(g, &rs);
	if (ret_summary)
		*ret_summary = wf_summary_text(g);
	wf_graph_free(g);
	ruleset_free(&rs);
	return v;
}

static const json_t *
only_hang(const json_t *verdicts, const char *cls)
{
	cr_assert_eq(verdicts_count_hangs(verdicts), 1, "%s", json_dumps(verdicts, JSON_COMPACT));
	const json_t *v = json_array_get(verdicts, 0);
	cr_assert_str_eq(json_string_value(json_object_get(v, "class")), cls, "%s",
			 json_string_value(json_object_get(v, "text")));
	/* not a forkscope scenario: the remedy speaks the program's language */
	cr_assert_null(strstr(json_string_value(json_object_get(v, "remedy")), "fixes."));
	return v;
}

static bool
has_pid(const json_t *v, json_int_t pid)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(v, "pids"), i, p) if (json_integer_value(p) == pid) return true;
	return false;
}

/* pid of the process whose argv joined contains s (or whose ppid is ppid when s is NULL) */
static json_int_t
pid_of(const json_t *snapshot, const char *s, json_int_t ppid)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(snapshot, "processes"), i, p) {
		char argv[512] = "";
		size_t k;
		json_t *a;
		json_array_foreach(json_object_get(p, "argv"), k, a) {
			strncat(argv, json_string_value(a), sizeof(argv) - strlen(argv) - 2);
			strcat(argv, " ");
		}
		if (s ? strstr(argv, s) != NULL : json_integer_value(json_object_get(p, "ppid")) == ppid)
			return json_integer_value(json_object_get(p, "pid"));
	}
	return 0;
}

static const char *
text_of(const json_t *v)
{
	return json_string_value(json_object_get(v, "text"));
}

Test(realworld, flock_cycle_is_file_lock_naming_both_waiters)
{
	json_int_t root;
	json_t *doc = load_case("flock-cycle", &root);
	const json_t *snap = json_object_get(doc, "snapshot");
	json_t *v = verdicts_of(snap, NULL);
	const json_t *h = only_hang(v, "file-lock");
	cr_assert(has_pid(h, pid_of(snap, "flock la true", 0)));
	cr_assert(has_pid(h, pid_of(snap, "flock lb true", 0)));
	cr_assert(has_pid(h, root), "the shell waiting for both is part of the knot");
	cr_assert(strstr(text_of(h), "flock(2) lock on"), "%s", text_of(h));
	cr_assert_gt(json_array_size(json_object_get(json_object_get(h, "evidence"), "holders")), 0);
	json_decref(v);
	json_decref(doc);
}

Test(realworld, fifo_without_writer)
{
	json_int_t root;
	json_t *doc = load_case("fifo-no-writer", &root);
	json_t *v = verdicts_of(json_object_get(doc, "snapshot"), NULL);
	const json_t *h = only_hang(v, "fifo-no-partner");
	const char *path = json_string_value(json_object_get(json_object_get(h, "evidence"), "path"));
	cr_assert(path && path[0] == '/' && strcmp(path + strlen(path) - 3, "/ff") == 0, "%s", path ? path : "(null)");
	json_decref(v);
	json_decref(doc);
}

Test(realworld, lock_across_fork_is_lost_wakeup_not_lock_deadlock)
{
	json_int_t root;
	json_t *doc = load_case("lock-across-fork", &root);
	json_t *v = verdicts_of(json_object_get(doc, "snapshot"), NULL);
	const json_t *h = only_hang(v, "lost-wakeup-futex");
	const json_t *fx = json_object_get(json_object_get(h, "evidence"), "futex");
	cr_assert(json_is_true(json_object_get(fx, "single_threaded")));
	cr_assert_eq(json_integer_value(json_object_get(fx, "parent")), root, "names the parent");
	cr_assert(has_pid(h, root), "the parent waiting for it is in the same knot (its sleeping thread's absolute "
				    "deadline is judged at the snapshot's time, not at replay)");
	json_decref(v);
	json_decref(doc);
}

Test(realworld, tcp_peers_are_matched_over_loopback)
{
	json_int_t root;
	json_t *doc = load_case("tcp-peers-wait", &root);
	const json_t *snap = json_object_get(doc, "snapshot");
	json_t *v = verdicts_of(snap, NULL);
	const json_t *h = only_hang(v, "mutual-wait");
	cr_assert(has_pid(h, root));
	cr_assert(has_pid(h, pid_of(snap, NULL, root)));
	cr_assert(strstr(text_of(h), "TCP 127.0.0.1:"), "%s", text_of(h));
	cr_assert_null(strstr(text_of(h), "cancel from above"), "no scenario words for a program");
	json_decref(v);
	json_decref(doc);
}

Test(realworld, capture_pipe_held_by_background_job_is_eof_never_with_zombie_as_consequence)
{
	json_int_t root;
	json_t *doc = load_case("capture-bg-job", &root);
	const json_t *snap = json_object_get(doc, "snapshot");
	json_t *v = verdicts_of(snap, NULL);
	const json_t *h = only_hang(v, "eof-never");
	json_int_t sleeper = pid_of(snap, "sleep 1000", 0);
	size_t i;
	const json_t *holders = json_object_get(json_object_get(h, "evidence"), "holders");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(holders, 0), "pid")), sleeper);
	/* the shell that exited is a consequence, listed under the cause */
	json_int_t shell = pid_of(snap, NULL, root);
	const json_t *cons = json_object_get(h, "consequences");
	bool zombie_listed = false;
	json_t *c;
	json_array_foreach(cons, i, c)
		if (json_integer_value(json_object_get(c, "pid")) == shell)
			zombie_listed = strcmp(json_string_value(json_object_get(c, "class")), "unreaped-zombie") == 0;
	cr_assert(zombie_listed, "%s", text_of(h));
	json_decref(v);
	json_decref(doc);
}

Test(realworld, popen_pipe_full)
{
	json_int_t root;
	json_t *doc = load_case("popen-pipe-full", &root);
	json_t *v = verdicts_of(json_object_get(doc, "snapshot"), NULL);
	const json_t *h = only_hang(v, "pipe-full");
	cr_assert(strstr(json_string_value(json_object_get(h, "remedy")), "drain"));
	json_decref(v);
	json_decref(doc);
}

/* The writer read as R right after an interrupt, with a tick of CPU: both
 * samples caught the same blocking write, so it is still blocked. */
Test(realworld, interrupt_wakeup_is_not_progress)
{
	json_int_t root;
	json_t *doc = load_case("popen-pipe-full", &root);
	json_t *snap = json_object_get(doc, "snapshot");
	json_int_t writer = pid_of(snap, NULL, root);
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(snap, "processes"), i, p) {
		if (json_integer_value(json_object_get(p, "pid")) != writer)
			continue;
		json_t *t = json_array_get(json_object_get(p, "threads"), 0);
		json_object_set_new(t, "state", json_string("R"));
		json_t *s1 = json_array_get(json_object_get(t, "samples"), 1);
		json_object_set_new(s1, "state", json_string("R"));
		json_object_set_new(s1, "utime", json_integer(json_integer_value(json_object_get(s1, "utime")) + 1));
	}
	json_t *v = verdicts_of(snap, NULL);
	only_hang(v, "pipe-full");
	json_decref(v);
	json_decref(doc);
}

Test(realworld, stopped_child)
{
	json_int_t root;
	json_t *doc = load_case("stopped-child", &root);
	json_t *v = verdicts_of(json_object_get(doc, "snapshot"), NULL);
	const json_t *h = only_hang(v, "stopped");
	cr_assert(has_pid(h, root), "the shell waiting on it is in the knot");
	json_decref(v);
	json_decref(doc);
}

Test(realworld, slow_drain_is_slow_not_stuck_with_a_summary)
{
	json_int_t root;
	json_t *doc = load_case("slow-drain", &root);
	char *summary = NULL;
	json_t *v = verdicts_of(json_object_get(doc, "snapshot"), &summary);
	cr_assert_eq(verdicts_count_hangs(v), 0, "%s", json_dumps(v, JSON_COMPACT));
	cr_assert_eq(json_array_size(v), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(v, 0), "class")), "slow-not-stuck");
	char buf[64];
	cr_assert_str_eq(verdicts_closing_line(v, buf, sizeof(buf)), "No hang found.");
	char pid[32];
	(void) snprintf(pid, sizeof(pid), "(pid %lld)", (long long) root);
	cr_assert(summary && strstr(summary, pid), "%s", summary ? summary : "(null)");
	free(summary);
	json_decref(v);
	json_decref(doc);
}

Test(waitfacts, lock_lines_of_fdinfo_and_proc_locks)
{
	const char *fdinfo = "pos:\t0\nflags:\t02100000\nmnt_id:\t30\nino:\t10953144\n"
			     "lock:\t1: FLOCK  ADVISORY  WRITE 2687 fe:00:10953144 0 EOF\n";
	struct fd_lock *l = NULL;
	size_t n = 0;
	cr_assert_eq(fd_locks_parse(fdinfo, true, &l, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(l[0].kind, "FLOCK");
	cr_assert(l[0].write && !l[0].waiter);
	cr_assert_eq(l[0].pid, 2687);
	cr_assert_eq(l[0].dev_major, 0xfe);
	cr_assert_eq(l[0].ino, 10953144);
	cr_assert_eq(l[0].end, -1);
	free(l);
	const char *locks = "1: POSIX  ADVISORY  READ 412 08:01:1234 10 99\n"
			    "1: -> POSIX  ADVISORY  WRITE 413 08:01:1234 0 EOF\n"
			    "2: OFDLCK ADVISORY  WRITE -1 08:01:77 0 0\n"
			    "garbage\n";
	cr_assert_eq(fd_locks_parse(locks, false, &l, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert(!l[0].write && l[0].start == 10 && l[0].end == 99);
	cr_assert(l[1].waiter && l[1].pid == 413);
	cr_assert_str_eq(l[2].kind, "OFDLCK");
	cr_assert_eq(l[2].pid, -1);
	json_t *j = fd_locks_to_json(l, n);
	struct fd_lock *back = NULL;
	size_t nb = 0;
	cr_assert_eq(fd_locks_from_json(j, &back, &nb), 0);
	cr_assert_eq(nb, 3);
	cr_assert_eq(memcmp(back, l, sizeof(*l) * n), 0);
	json_decref(j);
	free(back);
	free(l);
}

Test(waitfacts, restart_syscall_named_from_the_innermost_frame)
{
	struct proc_syscall sc = {.kind = PROC_SYSCALL_IN, .nr = SYS_restart_syscall, .args = {7, 0, 0, 0x1234}};
	struct syscall_wait w = {0};
	cr_assert_not(syscall_resolve_restart_by_frame(getpid(), "main", &sc, &w), "no known wrapper");
	cr_assert(syscall_resolve_restart_by_frame(getpid(), "epoll_wait", &sc, &w));
	cr_assert_eq(sc.nr, SYS_epoll_wait);
	cr_assert_eq(w.fd, 7);
	struct proc_syscall other = {.kind = PROC_SYSCALL_IN, .nr = SYS_read};
	cr_assert_not(syscall_resolve_restart_by_frame(getpid(), "epoll_wait", &other, &w), "only restart_syscall");
}

Test(waitfacts, blocked_writes_are_not_frozen)
{
	struct proc_syscall wr = {.kind = PROC_SYSCALL_IN, .nr = SYS_write};
	struct proc_syscall rd = {.kind = PROC_SYSCALL_IN, .nr = SYS_read};
	cr_assert(wait_breaks_on_interrupt("anon_pipe_write", &wr));
	cr_assert(wait_breaks_on_interrupt("pipe_write", &wr));
	cr_assert(wait_breaks_on_interrupt("unix_stream_sendmsg", &wr));
	cr_assert_not(wait_breaks_on_interrupt("anon_pipe_read", &rd));
	cr_assert_not(wait_breaks_on_interrupt("", &wr));
}

Test(realworld, why_a_teardown_signal_fails)
{
	cr_assert_null(verdict_signal_note(1ULL << (SIGUSR1 - 1), 0), "not a terminating signal");
	char *s = verdict_signal_note(1ULL << (SIGINT - 1), 1ULL << (SIGHUP - 1));
	cr_assert(s && strstr(s, "SIGINT") && strstr(s, "blocked in every thread") && strstr(s, "SIGHUP ignored"),
		  "%s", s ? s : "(null)");
	free(s);
}

Test(realworld, a_shell_waiting_for_a_long_sleep_is_a_wait_knot)
{
	json_int_t root;
	json_t *doc = load_case("shell-waits-long-sleep", &root);
	const json_t *snap = json_object_get(doc, "snapshot");
	json_t *v = verdicts_of(snap, NULL);
	const json_t *h = only_hang(v, "wait-knot");
	cr_assert(has_pid(h, root) && has_pid(h, pid_of(snap, "sleep 1000", 0)));
	cr_assert(strstr(text_of(h), "beyond the window"), "%s", text_of(h));
	json_decref(v);
	json_decref(doc);
}

Test(realworld, a_lone_process_in_pause_is_no_hang_and_the_summary_says_what_it_waits_for)
{
	json_int_t root;
	json_t *doc = load_case("lone-pause", &root);
	char *summary = NULL;
	json_t *v = verdicts_of(json_object_get(doc, "snapshot"), &summary);
	cr_assert_eq(json_array_size(v), 0, "%s", json_dumps(v, JSON_COMPACT));
	cr_assert(summary && strstr(summary, "a signal (pause"), "%s", summary ? summary : "(null)");
	free(summary);
	json_decref(v);
	json_decref(doc);
}
