/* forkscope triage: snapshot a live tree (or a recorded one) and name the cause. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "probes/eventlog_read.h"
#include "harness/triage.h"
#include "probes/snapshot.h"
#include "reports/rules.h"
#include "reports/verdict.h"
#include "util/jsonutil.h"

static const char triage_usage[] =
	"usage: forkscope triage [OPTIONS] PID...\n"
	"       forkscope triage --from SNAPSHOT.json [--events EVENTS.ndjson] [OPTIONS]\n"
	"\n"
	"Snapshots a live process tree (each PID and its descendants: stacks, fds, pipe\n"
	"fill, socket peers, futex owners, signal masks), builds the cross-process\n"
	"wait-for graph and names the cause. Nothing is signalled; threads are frozen\n"
	"for their stacks with ptrace and always released.\n"
	"\n"
	"  -p, --pid PID     a process to triage (repeatable; positional PIDs work too)\n"
	"  --json            the verdicts and the snapshot as JSON on stdout\n"
	"  --no-stacks       no ptrace stacks\n"
	"  --python=auto|off Python frames of CPython processes\n"
	"  --rules FILE      extra rules (docs/rules.md)\n"
	"  --from FILE       analyse a recorded snapshot.json again\n"
	"  --events FILE     the probe events of the tree's run (watch's events.ndjson)\n"
	"  --explain         with --from: what each thread waits for and who could release it\n"
	"  --color=auto|always|never\n"
	"\n"
	"Exit status: 0 no hang found, 1 a verdict names one, 2 usage or nothing readable.\n";

/* The verdicts and the closing line; when none names a hang, what each
 * thread waits for (a stack tool always shows something). JSON carries all. */
static void
print_analysis(const struct triage_analysis *an, const json_t *snapshot, bool json)
{
	size_t hangs = verdicts_count_hangs(an->verdicts);
	if (json) {
		json_t *doc = json_pack("{s:i,s:O,s:i,s:O}", "schema_version", 1, "verdicts", an->verdicts, "found_hangs",
					(int) hangs, "waits", an->waits ? an->waits : json_null());
		if (snapshot)
			json_object_set(doc, "snapshot", (json_t *) snapshot);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(an->verdicts, i, v)
		printf("%s\n", json_str(v, "text", ""));
	char line[64];
	printf("%s\n", verdicts_closing_line(an->verdicts, line, sizeof(line)));
	if (hangs == 0 && an->waits_text && *an->waits_text)
		printf("What each process waits for:\n%s", an->waits_text);
}

/* Post-mortem: analyse a recorded snapshot.json again (new rules, --explain). */
static int
triage_from_file(const char *path, const char *events_path, const char *rules, bool json, bool explain)
{
	json_t *snap = NULL;
	char *error = NULL;
	if (cli_load_json_file(path, &snap, &error) < 0) {
		fprintf(stderr, "forkscope triage: ");
		cli_print_sanitized(stderr, error ? error : path);
		fputc('\n', stderr);
		free(error);
		return 2;
	}
	json_t *events = NULL;
	if (events_path) {
		int err = 0;
		events = events_load_checked(events_path, NULL, 0, NULL, &err);
		if (err < 0) {
			fprintf(stderr, "forkscope triage: ");
			cli_print_sanitized(stderr, events_path);
			fprintf(stderr, ": %s\n", events_error_reason(err));
			json_decref(events);
			json_decref(snap);
			return 2;
		}
	}
	struct triage_analysis an;
	int r = triage_analyze(snap, events, rules, explain, &an, &error);
	if (r < 0) {
		/* A bad rules file names itself (file:line:col); a bad snapshot is the --from file. */
		fprintf(stderr, "forkscope triage: ");
		if (error && strncmp(error, "not a forkscope", 15) != 0)
			cli_print_sanitized(stderr, error);
		else {
			cli_print_sanitized(stderr, path);
			fprintf(stderr, ": %s", error ? error : strerror(-r));
		}
		fputc('\n', stderr);
		free(error);
		json_decref(snap);
		json_decref(events);
		return 2;
	}
	if (an.explain)
		fputs(an.explain, json ? stderr : stdout);
	print_analysis(&an, NULL, json);
	size_t hangs = verdicts_count_hangs(an.verdicts);
	triage_analysis_release(&an);
	json_decref(snap);
	json_decref(events);
	return hangs > 0 ? 1 : 0;
}

/* What the snapshot could not read, and why: a triage without stacks (ptrace
 * denied, another user's tree) must say so rather than look like a clean
 * bill of health. Returns the number of processes with readable state. */
static size_t
triage_print_gaps(const json_t *snap, FILE *f)
{
	const json_t *procs = json_object_get(snap, "processes");
	size_t n = json_array_size(procs), readable = 0, gone = 0, kernel = 0, listed = 0, incomplete = 0, i;
	bool denied = false, traced = false;
	const json_t *p;
	json_array_foreach(procs, i, p) {
		if (json_is_string(json_object_get(p, "state")))
			readable++;
		const char *partial = json_str(p, "partial_reason", NULL);
		const char *stacks = json_str(p, "stacks_error", NULL);
		if (!json_bool(p, "partial", 0) && !stacks)
			continue;
		/* The kinds come from the gaps' numbers (docs/snapshot.md), never
		 * from the English of the reasons. */
		struct snapshot_gap_summary gs;
		snapshot_process_gap_summary(p, &gs);
		if (gs.n > 0 && gs.by_kind[SNAPSHOT_GAP_GONE] == gs.n) {
			gone++;
			continue;
		}
		if (gs.n > 0 && gs.by_kind[SNAPSHOT_GAP_KERNEL_THREAD] == gs.n) {
			kernel++;
			continue;
		}
		traced = traced || gs.by_kind[SNAPSHOT_GAP_TRACED] > 0;
		denied = denied || gs.by_kind[SNAPSHOT_GAP_DENIED] > 0;
		if (incomplete++ == 0)
			fprintf(f, "Incomplete snapshot: what could not be read, and why:\n");
		if (listed < 10) {
			listed++;
			fprintf(f, "  pid %lld (", (long long) json_int(p, "pid", 0));
			cli_print_sanitized(f, json_str(p, "comm", "?"));
			fprintf(f, "):");
			if (stacks) {
				fprintf(f, " no stacks: ");
				cli_print_sanitized(f, stacks);
				fprintf(f, "%s", partial ? ";" : "");
			}
			if (partial) {
				fputc(' ', f);
				cli_print_sanitized(f, partial);
			}
			fputc('\n', f);
		}
	}
	if (incomplete > listed)
		fprintf(f, "  ... and %zu more process%s\n", incomplete - listed, incomplete - listed == 1 ? "" : "es");
	if (denied)
		fprintf(f, "  Verdicts rest on what could be read. Run triage as root, or as the tree's user with "
			   "ptrace allowed (CAP_SYS_PTRACE, kernel.yama.ptrace_scope), for stacks, fds and syscalls.\n");
	if (traced)
		fprintf(f, "  Another tracer (a debugger, strace) holds some of them: detach it for their stacks.\n");
	if (gone)
		fprintf(f, "%zu of %zu process%s exited or changed during the snapshot (recorded as partial).\n", gone, n,
			n == 1 ? "" : "es");
	if (kernel)
		fprintf(f, "%zu kernel thread%s: no user space, no stacks to take.\n", kernel, kernel == 1 ? "" : "s");
	return readable;
}

struct triage_args {
	bool json, stacks, explain;
	const char *from, *events_path, *rules;
	int python;
	pid_t *pids;
	size_t n_pids;
};

static int
add_pid(struct triage_args *a, const char *text)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (!*text || *end || errno || v <= 0 || v > 4194304)
		return cli_usage_error("triage", 2, "'%s' is not a pid", text);
	a->pids[a->n_pids++] = (pid_t) v;
	return -1;
}

/* Returns -1 to go on, or the exit status. */
static int
parse_triage_args(int argc, char **argv, struct triage_args *a)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },	    { "no-stacks", no_argument, NULL, 'N' },
		{ "rules", required_argument, NULL, 'L' }, { "python", required_argument, NULL, 'P' },
		{ "color", required_argument, NULL, 'C' }, { "help", no_argument, NULL, 'h' },
		{ "from", required_argument, NULL, 'F' },  { "events", required_argument, NULL, 'E' },
		{ "explain", no_argument, NULL, 'X' },	    { "pid", required_argument, NULL, 'p' },
		{ 0 },
	};
	int c, r;
	/* getopt names argv[0] in its messages: "forkscope triage: unrecognized option" */
	argv[0] = (char *) "forkscope triage";
	optind = 1;
	while ((c = getopt_long(argc, argv, "jhp:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			a->json = true;
			break;
		case 'N':
			a->stacks = false;
			break;
		case 'L':
			a->rules = optarg;
			break;
		case 'P':
			if (strcmp(optarg, "auto") == 0)
				a->python = 1;
			else if (strcmp(optarg, "off") == 0)
				a->python = 0;
			else
				return cli_usage_error("triage", 2, "--python: expected auto or off, got '%s'", optarg);
			break;
		case 'C':
			if (cli_check_color("triage", optarg) < 0)
				return 2;
			break;
		case 'F':
			a->from = optarg;
			break;
		case 'E':
			a->events_path = optarg;
			break;
		case 'X':
			a->explain = true;
			break;
		case 'p':
			if ((r = add_pid(a, optarg)) >= 0)
				return r;
			break;
		case 'h':
			fputs(triage_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'forkscope triage --help'.\n");
			return 2;
		}
	}
	for (int i = optind; i < argc; i++)
		if ((r = add_pid(a, argv[i])) >= 0)
			return r;
	if (!a->from && a->n_pids == 0)
		return cli_usage_error("triage", 2, "no PID given");
	if (a->from && a->n_pids > 0)
		return cli_usage_error("triage", 2, "--from analyses a recorded snapshot: give no PID with it");
	return -1;
}

static int
triage_live(const struct triage_args *a)
{
	/* The probe events of the tree's run (forkscope watch, the pytest
	 * plugin), if given: names, what crossed each fork. */
	json_t *events = NULL;
	if (a->events_path) {
		int err = 0;
		events = events_load_checked(a->events_path, NULL, 0, NULL, &err);
		if (err < 0) {
			fprintf(stderr, "forkscope triage: ");
			cli_print_sanitized(stderr, a->events_path);
			fprintf(stderr, ": %s\n", events_error_reason(err));
			json_decref(events);
			return 2;
		}
	}
	/* A root that leads its process group brings the group along: orphans of
	 * the tree (reparented away from it) usually stay in it. */
	pid_t pgid = getpgid(a->pids[0]);
	struct triage_request req = { .roots = a->pids, .n_roots = a->n_pids, .stacks = a->stacks,
				      .rules_file = a->rules, .reason = "command", .python_mode = a->python,
				      .pgid = pgid == a->pids[0] ? pgid : 0, .events = events };
	json_t *snap = NULL;
	struct triage_analysis an;
	char *error = NULL;
	int r = triage_run(&req, &snap, &an, &error);
	json_decref(events);
	if (r < 0) {
		if (error)
			fprintf(stderr, "forkscope triage: %s\n", error);
		else if (r == -ESRCH && a->n_pids == 1)
			cli_error("triage", "pid %d: no such process", (int) a->pids[0]);
		else if (r == -ESRCH)
			cli_error("triage", "none of the %zu pids given is a live process", a->n_pids);
		else
			cli_error("triage", "pid %d: %s", (int) a->pids[0], strerror(-r));
		free(error);
		return 2;
	}
	size_t hangs = verdicts_count_hangs(an.verdicts);
	/* The gaps: part of the text report; on stderr next to JSON. */
	if (triage_print_gaps(snap, a->json ? stderr : stdout) == 0) {
		cli_error("triage", "nothing could be read of the process%s given", a->n_pids == 1 ? "" : "es");
		json_decref(snap);
		triage_analysis_release(&an);
		return 2;
	}
	print_analysis(&an, snap, a->json);
	json_decref(snap);
	triage_analysis_release(&an);
	return hangs > 0 ? 1 : 0;
}

int
cli_triage(int argc, char **argv, const struct cli_globals *g)
{
	struct triage_args a = { .stacks = true, .python = 1 };
	a.pids = calloc((size_t) argc + 1, sizeof(pid_t));
	if (!a.pids)
		return 2;
	int rc = parse_triage_args(argc, argv, &a);
	if (rc < 0)
		rc = a.from ? triage_from_file(a.from, a.events_path, a.rules, a.json, a.explain) : triage_live(&a);
	free(a.pids);
	return rc;
}
