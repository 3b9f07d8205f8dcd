/* forkscope: reproduce, observe and triage hangs in fork-without-exec trees. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int
cmd_run(int argc, char **argv)
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
	const char **sets = calloc((size_t) argc + 1, sizeof(char *));
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
	if (r < 0) {
		fprintf(stderr, "forkscope report: %s: %s\n", argv[optind],
			r == -EINVAL ? "not a forkscope run directory or result.json" : strerror(-r));
		return 2;
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
