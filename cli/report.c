/* forkscope report: render a run directory for people and for CI. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "probes/eventlog_read.h"
#include "reports/render.h"
#include "util/jsonutil.h"

static const char report_usage[] =
	"usage: forkscope report RUN_DIR|result.json [--format text|json|junit|tap|trace|html] [-o FILE]\n"
	"\n"
	"Renders a run directory of `run` or `watch` from its result.json alone.\n"
	"\n"
	"  -f, --format F   text (default), json, junit, tap, trace (Perfetto), html\n"
	"  -o, --output F   write to F instead of stdout\n"
	"  -v, --verbose    text: details of every cell, not only of those that failed\n"
	"  --color=auto|always|never\n"
	"\n"
	"Exit status: 0 rendered, 2 usage or not a run directory.\n";

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
	char *real_dir = realpath(run_dir, NULL);
	json_array_foreach(files, i, name) {
		const char *rel = json_string_value(name);
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(json_string_value(json_array_get(files, k)), rel) == 0;
		char *path = NULL;
		if (seen || rel[0] == '/' || asprintf(&path, "%s/%s", run_dir, rel) < 0)
			continue;
		/* Only files inside the run directory, links resolved: a link out of
		 * it (to /etc) is not read, and its content never echoed. */
		errno = 0;
		char *real = realpath(path, NULL);
		int real_errno = errno;
		bool inside = real && real_dir && strncmp(real, real_dir, strlen(real_dir)) == 0 &&
			      real[strlen(real_dir)] == '/';
		free(real);
		if (!inside) {
			fprintf(stderr, "forkscope report: warning: ");
			cli_print_sanitized(stderr, path);
			if (!real && real_errno != 0)
				fprintf(stderr, ": %s\n", strerror(real_errno));
			else
				fprintf(stderr, ": outside the run directory (a link out of it), not read\n");
			unreadable++;
			free(path);
			continue;
		}
		struct events_problem problems[REPORT_MAX_PROBLEMS];
		size_t bad = 0;
		int err = 0;
		json_decref(events_load_checked(path, problems, REPORT_MAX_PROBLEMS, &bad, &err));
		if (err < 0) {
			fprintf(stderr, "forkscope report: warning: ");
			cli_print_sanitized(stderr, path);
			fprintf(stderr, ": %s\n", events_error_reason(err));
			unreadable++;
		}
		for (size_t k = 0; k < bad && k < REPORT_MAX_PROBLEMS; k++) {
			cli_print_sanitized(stderr, path);
			fprintf(stderr, ":%zu: ", problems[k].line);
			cli_print_sanitized(stderr, problems[k].reason);
			fputc('\n', stderr);
		}
		if (bad > REPORT_MAX_PROBLEMS) {
			cli_print_sanitized(stderr, path);
			fprintf(stderr, ": %zu more malformed lines\n", bad - REPORT_MAX_PROBLEMS);
		}
		damage += bad;
		free(path);
	}
	json_decref(files);
	free(real_dir);
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
	cli_print_sanitized(stderr, path);
	if (doc)
		fprintf(stderr, ": not a forkscope result (a JSON object is expected)\n");
	else {
		fprintf(stderr, ":%d:%d: ", jerr.line, jerr.column);
		cli_print_sanitized(stderr, jerr.text);
		fputc('\n', stderr);
	}
	json_decref(doc);
	free(path);
}

int
cli_report(int argc, char **argv, const struct cli_globals *g)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' }, { "output", required_argument, NULL, 'o' },
		{ "color", required_argument, NULL, 'C' },  { "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },	    { 0 },
	};
	const char *format = "text", *out = NULL, *color = g->color;
	bool verbose = false;
	int c;
	/* getopt names argv[0] in its messages: "forkscope report: unrecognized option" */
	argv[0] = (char *) "forkscope report";
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:hv", opts, NULL)) != -1) {
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
		case 'v':
			verbose = true;
			break;
		case 'h':
			fputs(report_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'forkscope report --help'.\n");
			return 2;
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
	struct render_options o = { .color = fmt == RENDER_TEXT && want > 0, .verbose = verbose };
	r = out ? render_to_file(doc, (enum render_format) fmt, &o, out)
		: render_to_stream(doc, (enum render_format) fmt, &o, stdout);
	json_decref(doc);
	if (r < 0) {
		fprintf(stderr, "forkscope report: write %s: %s\n", out ? out : "stdout", strerror(-r));
		return 2;
	}
	return 0;
}

