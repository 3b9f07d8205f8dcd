/* forkscope watch: any command under the probe and the session supervisor. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "harness/watch.h"
#include "util/timeutil.h"

static const char watch_usage[] =
	"usage: forkscope watch [OPTIONS] -- CMD [ARG...]\n"
	"\n"
	"Runs CMD with the forkscope probe preloaded (events.ndjson in the run directory),\n"
	"passes its output and exit status through (128+N for death by signal N), triages\n"
	"the live tree and exits 124 when it did not end within --timeout, and reports,\n"
	"triages and ends SIGINT first whatever outlived it after --linger.\n"
	"\n"
	"  --timeout S     triage and end the tree if CMD has not ended after S (e.g. 30, 2.5s)\n"
	"  --linger S      grace for descendants after CMD ended (default 500ms)\n"
	"  --hold          on a hang, leave the tree alive for inspection (no guardian)\n"
	"  --selfdump      probed processes dump their own stacks where ptrace is denied\n"
	"  --no-stacks     no ptrace stacks in the triage\n"
	"  --rules FILE    extra triage rules (docs/rules.md)\n"
	"  --out DIR       the run directory (default: a new one under\n"
	"                  $XDG_STATE_HOME/forkscope/runs)\n"
	"  --json F        the result as JSON ('-': on stdout, after CMD's own output)\n"
	"  --html F  --junit F\n"
	"                  renderings of the result\n"
	"  --color=auto|always|never\n"
	"\n"
	"forkscope's report goes to stderr: stdout belongs to CMD.\n"
	"Exit status: CMD's own; 124 it hung; 125 watch itself failed (usage, no probe,\n"
	"no run directory); 126/127 CMD could not be executed/found.\n";

int
cli_watch(int argc, char **argv, const struct cli_globals *g)
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
	struct watch_options o = { .linger_ns = WATCH_LINGER_DEFAULT_NS, .stacks = true,
				   .argv = g->argv, .argc = g->argc };
	struct cli_outputs files = { 0 };
	const char *color = g->color;
	int c;
	/* getopt names argv[0] in its messages: "forkscope watch: unrecognized option" */
	argv[0] = (char *) "forkscope watch";
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (duration_parse(optarg, &o.timeout_ns) < 0 || o.timeout_ns == 0)
				return cli_usage_error("watch", WATCH_EXIT_USAGE,
						       "--timeout: invalid duration '%s' (e.g. 30, 2.5s, 500ms)", optarg);
			break;
		case 'l':
			if (duration_parse(optarg, &o.linger_ns) < 0)
				return cli_usage_error("watch", WATCH_EXIT_USAGE,
						       "--linger: invalid duration '%s' (e.g. 500ms, 2s)", optarg);
			break;
		case 'o':
			o.out_dir = optarg;
			break;
		case 'J':
			files.json = optarg;
			break;
		case 'W':
			files.html = optarg;
			break;
		case 'U':
			files.junit = optarg;
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
			if (cli_check_color("watch", optarg) < 0)
				return WATCH_EXIT_USAGE;
			color = optarg;
			break;
		case 'h':
			fputs(watch_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'forkscope watch --help'.\n");
			return WATCH_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error("watch", WATCH_EXIT_USAGE,
				       "no command given (forkscope watch [OPTIONS] -- CMD [ARG...])");
	json_t *doc = NULL;
	char *run_dir = NULL;
	int exit_code = watch_main(&o, argv + optind, &doc, &run_dir);
	if (doc) {
		/* stdout belongs to the watched command: forkscope's report goes
		 * to stderr, so `watch -- CMD` prints what CMD prints. */
		(void) fflush(stdout);
		int rc = cli_write_outputs(doc, run_dir, &files, color, stderr);
		if (rc && exit_code == 0)
			exit_code = WATCH_EXIT_USAGE;
		fprintf(stderr, "forkscope watch: run directory %s\n", run_dir);
	}
	json_decref(doc);
	free(run_dir);
	return exit_code;
}
