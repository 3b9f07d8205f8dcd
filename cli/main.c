/* forkscope: reproduce, observe and triage hangs in fork-without-exec trees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "harness/actor.h"

static const char usage_text[] =
	"usage: forkscope [--color=auto|always|never] COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  run       run scenario files: hang classes reproduced, fixes proven\n"
	"            [--backend B] [--set KEY=VAL]... [--matrix] [--repeat N] [--shard K/N]\n"
	"            [--timeout S] [--hold] [--no-stacks] [--rules FILE] [--probes on|off] [--out DIR] [-v]\n"
	"            [--json F] [--junit F] [--tap F] [--trace F] [--html F] [SCENARIO.yaml|DIR...]\n"
	"  watch     run any command with the probe, triage it if it hangs\n"
	"            [--timeout S] [--linger S] [--hold] [--selfdump] [--no-stacks] [--rules FILE]\n"
	"            [--out DIR] [--json F|-] [--html F] [--junit F] -- CMD [ARG...]\n"
	"  triage    snapshot a live tree and name the cause\n"
	"            [--json] [--no-stacks] [--rules FILE] [--python=auto|off] [--events F] [-p PID]... PID...\n"
	"            --from SNAPSHOT.json [--events EVENTS.ndjson] [--rules FILE] [--json] [--explain]\n"
	"  report    render a run directory\n"
	"            RUN_DIR --format text|json|junit|tap|trace|html [-o FILE] [-v]\n"
	"  scenarios list scenarios and their matrix cells\n"
	"            [DIR|FILE...]\n"
	"  clean     remove kept run directories but the newest\n"
	"            [--keep N] [--dry-run]\n"
	"\n"
	"Run directories go to $XDG_STATE_HOME/forkscope/runs (~/.local/state/forkscope/runs)\n"
	"unless --out is given; each run says where.\n"
	"\n"
	"Common: --color=auto|always|never (NO_COLOR is honoured), --help, --version.\n"
	"'forkscope COMMAND --help' shows the options of one command.\n"
	"Exit status: run 0 all met their expectation, 1 some did not, 2 usage or invalid scenario;\n"
	"watch passes the command's status, 124 on a hang, 125 when watch itself failed;\n"
	"triage 0 no hang, 1 hang found, 2 error.\n";

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv, const struct cli_globals *g);
} verbs[] = {
	{ "run", cli_run },	  { "watch", cli_watch },	  { "triage", cli_triage },
	{ "report", cli_report }, { "scenarios", cli_scenarios }, { "clean", cli_clean },
};

/* Levenshtein distance, small strings only: for "did you mean". */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32)
		return 99;
	size_t d[33][33];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

static int
unknown_command(const char *cmd)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t d = edit_distance(cmd, verbs[i].name);
		if (d < best_d || (strncmp(cmd, verbs[i].name, strlen(cmd)) == 0 && strlen(cmd) >= 2)) {
			best = verbs[i].name;
			best_d = d;
		}
	}
	fprintf(stderr, "forkscope: unknown command '%s'", cmd);
	if (best)
		fprintf(stderr, "; did you mean '%s'?", best);
	fprintf(stderr, "\nTry 'forkscope --help'.\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct cli_globals g = { .color = "auto", .argv = (const char *const *) argv, .argc = argc };
	int i = 1;
	/* Global options before the verb. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			printf("forkscope %s\n", FORKSCOPE_VERSION);
			return 0;
		}
		if (strncmp(a, "--color=", 8) == 0)
			g.color = a + 8;
		else if (strcmp(a, "--color") == 0 && i + 1 < argc)
			g.color = argv[++i];
		else {
			fprintf(stderr, "forkscope: unknown option '%s' before the command\nTry 'forkscope --help'.\n", a);
			return 2;
		}
		if (cli_check_color(NULL, g.color) < 0)
			return 2;
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *cmd = argv[i];
	if (strcmp(cmd, "help") == 0) {
		if (i + 1 < argc) {
			/* `forkscope help VERB` is `forkscope VERB --help`. */
			char *help_argv[] = { argv[i + 1], (char *) "--help", NULL };
			for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
				if (strcmp(argv[i + 1], verbs[k].name) == 0)
					return verbs[k].fn(2, help_argv, &g);
			return unknown_command(argv[i + 1]);
		}
		fputs(usage_text, stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		if (strcmp(cmd, verbs[k].name) == 0)
			return verbs[k].fn(argc - i, argv + i, &g);
	/* The spawn backend's child: internal, not listed. */
	if (strcmp(cmd, "__actor") == 0)
		return actor_exec_main(argc - i, argv + i);
	return unknown_command(cmd);
}
