/* forkscope run: the scenario catalogue, cell by cell. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/catalogue.h"
#include "cli/cli.h"
#include "harness/runner.h"
#include "harness/scenario.h"
#include "util/jsonutil.h"
#include "util/signames.h"
#include "util/timeutil.h"

static const char run_usage[] =
	"usage: forkscope run [OPTIONS] [SCENARIO.yaml|DIR...]\n"
	"\n"
	"Runs scenario files: each cell builds its actor tree under a forkserver backend,\n"
	"is checked against its expectation, and is triaged when it hangs. Without a path,\n"
	"the installed catalogue:\n"
	"  " FORKSCOPE_DATADIR "/scenarios\n"
	"(./scenarios when run from the build tree; $FORKSCOPE_DATADIR overrides).\n"
	"\n"
	"  --backend B          run every cell under B (mtf, fork, spawn); a backend axis\n"
	"                       of the matrix is narrowed to B, so labels say what ran\n"
	"  --set KEY=VAL        override a scenario key (repeatable); an axis is narrowed too\n"
	"  --matrix             add the backend axis (mtf, fork, spawn) to every scenario\n"
	"  --repeat N           run each cell N times\n"
	"  --shard K/N          run only the K-th of N shards of the cells\n"
	"  --timeout S          the run deadline of every cell (e.g. 30, 2.5s, 500ms)\n"
	"  --hold               leave a hung tree alive for inspection (no guardian)\n"
	"  --no-stacks          no ptrace stacks in the triage\n"
	"  --rules FILE         extra triage rules (docs/rules.md)\n"
	"  --probes on|off      the event log and fork censuses (off: the overhead baseline)\n"
	"  --out DIR            the run directory (default: a new one under\n"
	"                       $XDG_STATE_HOME/forkscope/runs)\n"
	"  --json F  --junit F  --tap F  --trace F  --html F\n"
	"                       renderings of the result (F '-' for stdout)\n"
	"  -v, --verbose        the report details every cell (stacks, fds, leftovers),\n"
	"                       not only the cells that did not meet their expectation\n"
	"  --color=auto|always|never\n"
	"\n"
	"Exit status: 0 every cell met its expectation, 1 some did not, 2 usage or invalid\n"
	"scenario (file:line:col: message on stderr).\n";

static int
parse_shard(const char *text, unsigned *k, unsigned *n)
{
	char *end;
	if (!*text || *text == '-' || *text == '+')
		return -EINVAL;
	errno = 0;
	unsigned long a = strtoul(text, &end, 10);
	if (*end != '/' || errno || end[1] == '-' || end[1] == '+' || !end[1])
		return -EINVAL;
	unsigned long b = strtoul(end + 1, &end, 10);
	if (*end || errno || b == 0 || a == 0 || a > b || b > 1000000)
		return -EINVAL;
	*k = (unsigned) a;
	*n = (unsigned) b;
	return 0;
}

static int
parse_repeat(const char *text, unsigned *ret)
{
	char *end;
	if (!*text || *text == '-' || *text == '+')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (*end || errno || v == 0)
		return -EINVAL;
	if (v > 100000)
		return -ERANGE;
	*ret = (unsigned) v;
	return 0;
}

static void
on_cell(const json_t *cell, size_t done, size_t total, void *userdata)
{
	cli_print_progress(cell, done, total, userdata);
}

/* sets: room for argc entries, owned by the caller. */
static int
parse_run_options(int argc, char **argv, struct run_options *o, struct cli_outputs *files, const char **sets)
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
		{ "verbose", no_argument, NULL, 'v' },	     { 0 },
	};
	int c, r;
	/* getopt names argv[0] in its messages: "forkscope run: unrecognized option" */
	argv[0] = (char *) "forkscope run";
	optind = 1;
	while ((c = getopt_long(argc, argv, "b:s:o:hv", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (backend_from_name(optarg) < 0)
				return cli_usage_error("run", 2, "--backend: unknown backend '%s' (mtf, fork, spawn)", optarg);
			o->backend = optarg;
			break;
		case 's':
			sets[o->n_sets++] = optarg;
			break;
		case 'm':
			o->matrix = true;
			break;
		case 'r':
			r = parse_repeat(optarg, &o->repeat);
			if (r == -ERANGE)
				return cli_usage_error("run", 2, "--repeat: %s is too many (at most 100000)", optarg);
			if (r < 0)
				return cli_usage_error("run", 2, "--repeat: expected a positive number, got '%s'", optarg);
			break;
		case 'S':
			if (parse_shard(optarg, &o->shard_k, &o->shard_n) < 0)
				return cli_usage_error("run", 2, "--shard: expected K/N with 1 <= K <= N, got '%s'", optarg);
			break;
		case 't':
			if (duration_parse(optarg, &o->timeout_ns) < 0 || o->timeout_ns == 0)
				return cli_usage_error("run", 2, "--timeout: invalid duration '%s' (e.g. 30, 2.5s, 500ms)",
						       optarg);
			break;
		case 'H':
			o->hold = true;
			break;
		case 'o':
			o->out_dir = optarg;
			break;
		case 'J':
			files->json = optarg;
			break;
		case 'U':
			files->junit = optarg;
			break;
		case 'T':
			files->tap = optarg;
			break;
		case 'R':
			files->trace = optarg;
			break;
		case 'W':
			files->html = optarg;
			break;
		case 'C':
			if (cli_check_color("run", optarg) < 0)
				return 2;
			o->color = optarg;
			break;
		case 'N':
			o->stacks = false;
			break;
		case 'L':
			o->rules_file = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return cli_usage_error("run", 2, "--probes: expected on or off, got '%s'", optarg);
			o->no_probes = strcmp(optarg, "off") == 0;
			break;
		case 'v':
			files->verbose = true;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'forkscope run --help'.\n");
			return 2;
		}
	}
	return -1;
}

int
cli_run(int argc, char **argv, const struct cli_globals *g)
{
	const char **sets = calloc((size_t) argc + 1, sizeof(char *));
	if (!sets) {
		cli_error("run", "out of memory");
		return 2;
	}
	struct run_options o = { .stacks = true, .color = g->color, .argv = g->argv, .argc = g->argc,
				 .sets = sets, .on_cell = on_cell };
	struct cli_outputs files = { 0 };
	int rc = parse_run_options(argc, argv, &o, &files, sets);
	if (rc >= 0) {
		free(sets);
		return rc;
	}
	o.userdata = (void *) o.color;
	char *exe = cli_self_exe();
	o.exe_path = exe;
	json_t *doc = NULL;
	char *run_dir = NULL;
	char *def = NULL;
	if (optind >= argc && cli_default_catalogue(&def) < 0) {
		cli_error("run", "out of memory");
		free(exe);
		free(sets);
		return 2;
	}
	int r = def ? runner_main(&o, &def, 1, &doc, &run_dir)
		    : runner_main(&o, argv + optind, (size_t) (argc - optind), &doc, &run_dir);
	free(def);
	free(exe);
	free(sets);
	if (r < 0)
		return 2;
	int exit_code = cli_write_outputs(doc, run_dir, &files, o.color, stdout);
	json_t *summary = json_object_get(doc, "summary");
	if (json_int(summary, "failed", 0) > 0 || json_int(summary, "errors", 0) > 0)
		exit_code = exit_code > 1 ? exit_code : 1;
	if (r > 0) {
		cli_error("run", "interrupted by %s; the current tree was ended SIGINT first", signal_name(r));
		exit_code = exit_code > 1 ? exit_code : 1;
	}
	json_decref(doc);
	free(run_dir);
	return exit_code;
}
