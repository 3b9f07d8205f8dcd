/* forkscope scenarios: list scenarios and their matrix cells. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "harness/runner.h"
#include "harness/scenario.h"

static const char scenarios_usage[] =
	"usage: forkscope scenarios [DIR|FILE...]\n"
	"\n"
	"Lists the scenarios under each path (default: scenarios/) with the number of\n"
	"matrix cells each expands to.\n"
	"\n"
	"Exit status: 0 listed, 2 an invalid scenario (file:line:col: message).\n";

int
cli_scenarios(int argc, char **argv, const struct cli_globals *g)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(scenarios_usage, stdout);
		return 0;
	}
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

