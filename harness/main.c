/* forkscope: reproduce, observe and triage hangs in fork-without-exec trees. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/actor.h"
#include "harness/runner.h"
#include "harness/results.h"
#include "harness/scenario.h"
#include "harness/triage.h"
#include "harness/watch.h"
#include "reports/render.h"
#include "reports/rules.h"
#include "reports/verdict.h"
#include "util/jsonutil.h"
#include "util/timeutil.h"

static const char usage_text[] =
	"usage: forkscope COMMAND [OPTIONS]\n"
	"\n"
	"  run       [--backend B] [--set KEY=VAL]... [--matrix] [--repeat N] [--shard K/N]\n"
	"            [--timeout S] [--hold] [--no-stacks] [--rules FILE] [--probes on|off] [--out DIR]\n"
	"            [--json F] [--junit F] [--tap F] [--trace F] [--html F] SCENARIO.yaml|DIR...\n"
	"  watch     [--timeout S] [--out DIR] [--json F] [--html F] [--hold] -- CMD [ARG...]\n"
	"  triage    [--json] [--no-stacks] [--rules FILE] [--python=auto|off] PID...\n"
	"  triage    --from SNAPSHOT.json [--events EVENTS.ndjson] [--rules FILE] [--explain]\n"
	"  report    RUN_DIR --format text|json|junit|tap|trace|html [-o FILE]\n"
	"  scenarios [DIR]\n"
	"\n"
	"Common: --color=auto|always|never (NO_COLOR is honoured), --help, --version.\n"
	"Exit status: run 0 all met their expectation, 1 some did not, 2 usage or invalid scenario;\n"
	"watch passes the command's status, 124 on a hang; triage 0 no hang, 1 hang found, 2 error.\n";

static int
usage(FILE *f, int code)
{
	fputs(usage_text, f);
	return code;
}

static char *
self_exe(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n < 0)
		return strdup("/proc/self/exe");
	buf[n] = '\0';
	return strdup(buf);
}

static int
parse_shard(const char *text, unsigned *k, unsigned *n)
{
	char *end;
	unsigned long a = strtoul(text, &end, 10);
	if (*end != '/')
		return -EINVAL;
	unsigned long b = strtoul(end + 1, &end, 10);
	if (*end || b == 0 || a == 0 || a > b)
		return -EINVAL;
	*k = (unsigned) a;
	*n = (unsigned) b;
	return 0;
}

/* sets: room for argc entries, owned by cmd_run (every return of this one frees it). */
static int
cmd_run_with(int argc, char **argv, const char **sets)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' }, { "set", required_argument, NULL, 's' },
		{ "matrix", no_argument, NULL, 'm' },	     { "repeat", required_argument, NULL, 'r' },
		{ "shard", required_argument, NULL, 'S' },   { "timeout", required_argument, NULL, 't' },
		{ "hold", no_argument, NULL, 'H' },	     { "out", required_argument, NULL, 'o' },
		{ "json", required_argument, NULL, 'J' },    { "junit", required_argument, NULL, 'U' },
		{ "tap", required_argument, NULL, 'T' },     { "trace", required_argument, NULL, 'R' },
		{ "html", required_argument, NULL, 'W' },    { "color", required_argument, NULL, 'C' },
		{ "no-stacks", no_argument, NULL, 'N' },     { "rules", required_argument, NULL, 'L' },
		{ "probes", required_argument, NULL, 'p' },  { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct run_options o = { .stacks = true, .color = "auto", .argv = (const char **) argv, .argc = argc };
	int c;
	while ((c = getopt_long(argc, argv, "b:s:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (backend_from_name(optarg) < 0) {
				fprintf(stderr, "forkscope run: --backend: unknown backend '%s' (mtf, fork, spawn)\n", optarg);
				return 2;
			}
			o.backend = optarg;
			break;
		case 's':
			sets[o.n_sets++] = optarg;
			break;
		case 'm':
			o.matrix = true;
			break;
		case 'r': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > 100000) {
				fprintf(stderr, "forkscope run: --repeat: expected a positive number, got '%s'\n", optarg);
				return 2;
			}
			o.repeat = (unsigned) v;
			break;
		}
		case 'S':
			if (parse_shard(optarg, &o.shard_k, &o.shard_n) < 0) {
				fprintf(stderr, "forkscope run: --shard: expected K/N with 1 <= K <= N, got '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (duration_parse(optarg, &o.timeout_ns) < 0 || o.timeout_ns == 0) {
				fprintf(stderr, "forkscope run: --timeout: invalid duration '%s' (e.g. 30, 2.5s, 500ms)\n", optarg);
				return 2;
			}
			break;
		case 'H':
			o.hold = true;
			break;
		case 'o':
			o.out_dir = optarg;
			break;
		case 'J':
			o.json_path = optarg;
			break;
		case 'U':
			o.junit_path = optarg;
			break;
		case 'T':
			o.tap_path = optarg;
			break;
		case 'R':
			o.trace_path = optarg;
			break;
		case 'W':
			o.html_path = optarg;
			break;
		case 'C':
			if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
				fprintf(stderr, "forkscope run: --color: expected auto, always or never\n");
				return 2;
			}
			o.color = optarg;
			break;
		case 'N':
			o.stacks = false;
			break;
		case 'L':
			o.rules_file = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "forkscope run: --probes: expected on or off\n");
				return 2;
			}
			o.no_probes = strcmp(optarg, "off") == 0;
			break;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "forkscope run: no scenario given (a .yaml file or a directory)\n");
		return 2;
	}
	o.sets = sets;
	char *exe = self_exe();
	o.exe_path = exe;
	int r = runner_main(&o, argv + optind, (size_t) (argc - optind));
	free(exe);
	return r;
}

static int
cmd_run(int argc, char **argv)
{
	const char **sets = calloc((size_t) argc + 1, sizeof(char *));
	if (!sets) {
		fprintf(stderr, "forkscope run: out of memory\n");
		return 2;
	}
	int r = cmd_run_with(argc, argv, sets);
	free(sets);
	return r;
}

static void
print_verdicts(const json_t *verdicts)
{
	size_t i;
	json_t *v;
	json_array_foreach(verdicts, i, v)
		printf("%s\n", json_str(v, "text", ""));
	char line[64];
	printf("%s\n", verdicts_closing_line(verdicts, line, sizeof(line)));
}

/* Post-mortem: analyse a recorded snapshot.json again (new rules, --explain). */
static int
triage_from_file(const char *path, const char *events_path, const char *rules, bool json, bool explain)
{
	json_error_t jerr;
	json_t *snap = json_load_file(path, 0, &jerr);
	if (!snap) {
		fprintf(stderr, "%s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
		return 2;
	}
	json_t *events = NULL;
	if (events_path)
		events = events_load(events_path, NULL);
	json_t *verdicts = NULL;
	char *text = NULL;
	int r = triage_replay(snap, events, rules, &verdicts, explain ? &text : NULL);
	if (r < 0) {
		fprintf(stderr, "forkscope triage: %s: %s\n", path, r == -EINVAL ? "not a forkscope snapshot" : strerror(-r));
		json_decref(snap);
		json_decref(events);
		return 2;
	}
	if (text)
		fputs(text, json ? stderr : stdout);
	if (json) {
		json_t *doc = json_pack("{s:i,s:O,s:i}", "schema_version", 1, "verdicts", verdicts, "found_hangs",
					(int) verdicts_count_hangs(verdicts));
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
	} else
		print_verdicts(verdicts);
	size_t hangs = verdicts_count_hangs(verdicts);
	free(text);
	json_decref(verdicts);
	json_decref(snap);
	json_decref(events);
	return hangs > 0 ? 1 : 0;
}

/* Bytes from a damaged file, made safe for a terminal: anything outside
 * printable ASCII becomes \xNN (a hostile events file must not drive it). */
static void
print_sanitized(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			fputc(*p, f);
		else
			fprintf(f, "\\x%02x", *p);
	}
}

static bool
reason_is_denial(const char *text)
{
	return text && (strstr(text, "Permission denied") || strstr(text, "Operation not permitted"));
}

static bool
reason_is_gone(const char *text)
{
	/* every part of it says the process or a thread went away meanwhile */
	if (!text || !*text)
		return false;
	char *copy = strdup(text);
	bool gone = copy != NULL;
	char *save = NULL;
	for (char *part = copy ? strtok_r(copy, ";", &save) : NULL; part && gone; part = strtok_r(NULL, ";", &save))
		gone = strstr(part, "No such file or directory") || strstr(part, "No such process") ||
		       strstr(part, "exited during snapshot") || strstr(part, "pid reused");
	free(copy);
	return gone;
}

/* What the snapshot could not read, and why: a triage without stacks (ptrace
 * denied, another user's tree) must say so rather than look like a clean
 * bill of health. Returns the number of processes with readable state. */
static size_t
triage_print_gaps(const json_t *snap, FILE *f)
{
	const json_t *procs = json_object_get(snap, "processes");
	size_t n = json_array_size(procs), readable = 0, gone = 0, listed = 0, incomplete = 0, i;
	bool denied = false;
	const json_t *p;
	json_array_foreach(procs, i, p) {
		if (json_is_string(json_object_get(p, "state")))
			readable++;
		const char *partial = json_str(p, "partial_reason", NULL);
		const char *stacks = json_str(p, "stacks_error", NULL);
		if (!json_bool(p, "partial", 0) && !stacks)
			continue;
		if (!stacks && reason_is_gone(partial)) {
			gone++;
			continue;
		}
		denied = denied || reason_is_denial(partial) || reason_is_denial(stacks);
		if (incomplete++ == 0)
			fprintf(f, "Incomplete snapshot: what could not be read, and why:\n");
		if (listed < 10) {
			listed++;
			fprintf(f, "  pid %lld (", (long long) json_int(p, "pid", 0));
			print_sanitized(f, json_str(p, "comm", "?"));
			fprintf(f, "):");
			if (stacks) {
				fprintf(f, " no stacks: ");
				print_sanitized(f, stacks);
				fprintf(f, "%s", partial ? ";" : "");
			}
			if (partial) {
				fputc(' ', f);
				print_sanitized(f, partial);
			}
			fputc('\n', f);
		}
	}
	if (incomplete > listed)
		fprintf(f, "  ... and %zu more process%s\n", incomplete - listed, incomplete - listed == 1 ? "" : "es");
	if (denied)
		fprintf(f, "  Verdicts rest on what could be read. Run triage as root, or as the tree's user with "
			   "ptrace allowed (CAP_SYS_PTRACE, kernel.yama.ptrace_scope), for stacks, fds and syscalls.\n");
	if (gone)
		fprintf(f, "%zu of %zu process%s exited or changed during the snapshot (recorded as partial).\n", gone, n,
			n == 1 ? "" : "es");
	return readable;
}

static int
cmd_triage(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },	    { "no-stacks", no_argument, NULL, 'N' },
		{ "rules", required_argument, NULL, 'L' }, { "python", required_argument, NULL, 'P' },
		{ "color", required_argument, NULL, 'C' }, { "help", no_argument, NULL, 'h' },
		{ "from", required_argument, NULL, 'F' },  { "events", required_argument, NULL, 'E' },
		{ "explain", no_argument, NULL, 'X' },	    { 0 },
	};
	bool json = false, stacks = true, explain = false;
	const char *from = NULL, *events_path = NULL;
	const char *rules = NULL;
	int python = 1;
	int c;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'N':
			stacks = false;
			break;
		case 'L':
			rules = optarg;
			break;
		case 'P':
			if (strcmp(optarg, "auto") == 0)
				python = 1;
			else if (strcmp(optarg, "off") == 0)
				python = 0;
			else {
				fprintf(stderr, "forkscope triage: --python: expected auto or off\n");
				return 2;
			}
			break;
		case 'C':
			break;
		case 'F':
			from = optarg;
			break;
		case 'E':
			events_path = optarg;
			break;
		case 'X':
			explain = true;
			break;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (from)
		return triage_from_file(from, events_path, rules, json, explain);
	if (optind >= argc) {
		fprintf(stderr, "forkscope triage: no PID given\n");
		return 2;
	}
	size_t n = (size_t) (argc - optind);
	pid_t *pids = calloc(n, sizeof(pid_t));
	for (size_t i = 0; i < n; i++) {
		char *end;
		long v = strtol(argv[optind + (int) i], &end, 10);
		if (*end || v <= 0) {
			fprintf(stderr, "forkscope triage: '%s' is not a pid\n", argv[optind + (int) i]);
			free(pids);
			return 2;
		}
		pids[i] = (pid_t) v;
	}
	struct ruleset rs = { 0 };
	char *err = NULL;
	if (triage_load_rules(rules, &rs, &err) < 0) {
		fprintf(stderr, "%s\n", err ? err : "forkscope triage: cannot load rules");
		free(err);
		free(pids);
		return 2;
	}
	ruleset_free(&rs);
	/* A root that leads its process group brings the group along: orphans of
	 * the tree (reparented away from it) usually stay in it. */
	pid_t pgid = getpgid(pids[0]);
	struct triage_request req = { .roots = pids, .n_roots = n, .stacks = stacks, .rules_file = rules,
				      .reason = "command", .python_mode = python,
				      .pgid = pgid == pids[0] ? pgid : 0 };
	json_t *snap = NULL, *verdicts = NULL;
	int r = triage_run(&req, &snap, &verdicts);
	free(pids);
	if (r < 0) {
		fprintf(stderr, "forkscope triage: %s\n", r == -ESRCH ? "no such process" : strerror(-r));
		return 2;
	}
	size_t hangs = verdicts_count_hangs(verdicts);
	/* The gaps: part of the text report; on stderr next to JSON. */
	if (triage_print_gaps(snap, json ? stderr : stdout) == 0) {
		fprintf(stderr, "forkscope triage: nothing could be read of the process%s given\n", n == 1 ? "" : "es");
		json_decref(snap);
		json_decref(verdicts);
		return 2;
	}
	if (json) {
		json_t *doc = json_pack("{s:i,s:O,s:O,s:i}", "schema_version", 1, "verdicts", verdicts, "snapshot", snap,
					"found_hangs", (int) hangs);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
	} else
		print_verdicts(verdicts);
	json_decref(snap);
	json_decref(verdicts);
	return hangs > 0 ? 1 : 0;
}

/* The events files a run directory's result.json names, checked line by line:
 * every malformed line is named on stderr as FILE:LINE: reason. The report
 * itself comes from result.json, so it still renders. Returns the number of
 * malformed lines (plus unreadable files). */
#define REPORT_MAX_PROBLEMS 10
static size_t
report_check_events(const char *run_dir, const json_t *doc)
{
	json_t *files = json_array();
	const json_t *cells = json_object_get(doc, "scenarios");
	if (json_is_array(cells)) {
		size_t i;
		const json_t *cell;
		json_array_foreach(cells, i, cell)
			if (json_is_string(json_object_get(cell, "events_file")))
				json_array_append(files, json_object_get(cell, "events_file"));
	}
	if (json_is_string(json_object_get(doc, "events_file")))
		json_array_append(files, json_object_get(doc, "events_file"));
	size_t damage = 0, unreadable = 0, i;
	json_t *name;
	json_array_foreach(files, i, name) {
		const char *rel = json_string_value(name);
		/* Only files inside the run directory. */
		if (rel[0] == '/' || strcmp(rel, "..") == 0 || strncmp(rel, "../", 3) == 0 || strstr(rel, "/../") ||
		    (strlen(rel) >= 3 && strcmp(rel + strlen(rel) - 3, "/..") == 0))
			continue;
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(json_string_value(json_array_get(files, k)), rel) == 0;
		char *path = NULL;
		if (seen || asprintf(&path, "%s/%s", run_dir, rel) < 0)
			continue;
		struct events_problem problems[REPORT_MAX_PROBLEMS];
		size_t bad = 0;
		int err = 0;
		json_decref(events_load_checked(path, problems, REPORT_MAX_PROBLEMS, &bad, &err));
		if (err < 0) {
			fprintf(stderr, "forkscope report: warning: ");
			print_sanitized(stderr, path);
			fprintf(stderr, ": %s\n", strerror(-err));
			unreadable++;
		}
		for (size_t k = 0; k < bad && k < REPORT_MAX_PROBLEMS; k++) {
			print_sanitized(stderr, path);
			fprintf(stderr, ":%zu: ", problems[k].line);
			print_sanitized(stderr, problems[k].reason);
			fputc('\n', stderr);
		}
		if (bad > REPORT_MAX_PROBLEMS) {
			print_sanitized(stderr, path);
			fprintf(stderr, ": %zu more malformed lines\n", bad - REPORT_MAX_PROBLEMS);
		}
		damage += bad;
		free(path);
	}
	json_decref(files);
	if (damage > 0)
		fprintf(stderr,
			"forkscope report: warning: %zu malformed line%s in the run directory's events (skipped); "
			"the report is rendered from result.json\n",
			damage, damage == 1 ? "" : "s");
	return damage + unreadable;
}

/* result.json that does not parse: say where, as file:line:col: message. */
static void
report_bad_result(const char *arg)
{
	struct stat st;
	char *path = NULL;
	if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (asprintf(&path, "%s/result.json", arg) < 0)
			return;
	} else if (!(path = strdup(arg)))
		return;
	json_error_t jerr;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	print_sanitized(stderr, path);
	if (doc)
		fprintf(stderr, ": not a forkscope result (a JSON object is expected)\n");
	else {
		fprintf(stderr, ":%d:%d: ", jerr.line, jerr.column);
		print_sanitized(stderr, jerr.text);
		fputc('\n', stderr);
	}
	json_decref(doc);
	free(path);
}

static int
cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' }, { "output", required_argument, NULL, 'o' },
		{ "color", required_argument, NULL, 'C' },  { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *format = "text", *out = NULL, *color = "auto";
	int c;
	while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'C':
			color = optarg;
			break;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "forkscope report: expected one RUN_DIR (or result.json)\n");
		return 2;
	}
	int fmt = render_format_from_name(format);
	if (fmt < 0) {
		fprintf(stderr, "forkscope report: --format: unknown format '%s' (text, json, junit, tap, trace, html)\n", format);
		return 2;
	}
	int want = render_color_wanted(color, out ? -1 : fileno(stdout));
	if (want < 0) {
		fprintf(stderr, "forkscope report: --color: expected auto, always or never\n");
		return 2;
	}
	json_t *doc = NULL;
	int r = render_load(argv[optind], &doc);
	if (r == -EBADMSG)
		report_bad_result(argv[optind]);
	if (r < 0) {
		fprintf(stderr, "forkscope report: %s: %s\n", argv[optind],
			r == -EINVAL || r == -EBADMSG ? "not a forkscope run directory or result.json" : strerror(-r));
		return 2;
	}
	/* Damaged events do not stop the report: they are named, then it renders. */
	{
		struct stat st;
		char *run_dir = NULL;
		if (stat(argv[optind], &st) == 0 && S_ISDIR(st.st_mode))
			run_dir = strdup(argv[optind]);
		else if ((run_dir = strdup(argv[optind]))) {
			char *slash = strrchr(run_dir, '/');
			if (slash)
				slash[slash == run_dir ? 1 : 0] = '\0';
			else
				strcpy(run_dir, ".");
		}
		if (run_dir)
			(void) report_check_events(run_dir, doc);
		free(run_dir);
	}
	struct render_options o = { .color = fmt == RENDER_TEXT && want > 0 };
	r = out ? render_to_file(doc, (enum render_format) fmt, &o, out)
		: render_to_stream(doc, (enum render_format) fmt, &o, stdout);
	json_decref(doc);
	if (r < 0) {
		fprintf(stderr, "forkscope report: write %s: %s\n", out ? out : "stdout", strerror(-r));
		return 2;
	}
	return 0;
}

static int
cmd_scenarios(int argc, char **argv)
{
	char *def[] = { (char *) "scenarios" };
	char **paths = argc > 1 ? argv + 1 : def;
	size_t n = argc > 1 ? (size_t) (argc - 1) : 1;
	struct scenario **list = NULL;
	size_t count = 0;
	if (runner_collect(paths, n, &list, &count) < 0)
		return 2;
	for (size_t i = 0; i < count; i++) {
		struct scenario **cells = NULL;
		size_t nc = 0;
		char *err = NULL;
		if (scenario_expand(list[i], &cells, &nc, &err) < 0) {
			fprintf(stderr, "%s\n", err);
			free(err);
			continue;
		}
		printf("%-28s %3zu cell%s  %s\n", list[i]->name, nc, nc == 1 ? " " : "s",
		       list[i]->description ? list[i]->description : "");
		scenario_free_cells(cells, nc);
		scenario_free(list[i]);
	}
	free(list);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr, 2);
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
		return usage(stdout, 0);
	if (strcmp(cmd, "--version") == 0) {
		printf("forkscope %s\n", FORKSCOPE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "triage") == 0)
		return cmd_triage(argc - 1, argv + 1);
	if (strcmp(cmd, "watch") == 0)
		return cmd_watch(argc - 1, argv + 1);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(argc - 1, argv + 1);
	if (strcmp(cmd, "scenarios") == 0)
		return cmd_scenarios(argc - 1, argv + 1);
	if (strcmp(cmd, "__actor") == 0)
		return actor_exec_main(argc - 1, argv + 1);
	fprintf(stderr, "forkscope: unknown command '%s'\n", cmd);
	return usage(stderr, 2);
}
