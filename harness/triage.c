#include "harness/triage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/reaper.h"
#include "probes/snapshot.h"
#include "reports/rules.h"
#include "reports/verdict.h"
#include "reports/waitgraph.h"
#include "util/jsonutil.h"

int
triage_load_rules(const char *rules_file, struct ruleset *rs, char **ret_error)
{
	int r = ruleset_load_default(rs, ret_error);
	if (r == 0 && rules_file)
		r = ruleset_load_file(rs, rules_file, ret_error);
	if (r < 0) {
		ruleset_free(rs);
		return r;
	}
	ruleset_sort(rs);
	return 0;
}

int
triage_snapshot(const struct triage_request *req, json_t **ret_snapshot)
{
	/* Without explicit roots (leftovers after the root ended), start from
	 * every live descendant of ours: the orphans the subreaper adopted. */
	pid_t *roots = NULL;
	size_t n_roots = 0;
	if (req->n_roots > 0) {
		roots = malloc(req->n_roots * sizeof(pid_t));
		if (!roots)
			return -ENOMEM;
		memcpy(roots, req->roots, req->n_roots * sizeof(pid_t));
		n_roots = req->n_roots;
	} else {
		struct proc_brief *d = NULL;
		size_t nd = 0;
		if (proc_descendants(getpid(), &d, &nd) == 0) {
			roots = calloc(nd ? nd : 1, sizeof(pid_t));
			for (size_t i = 0; roots && i < nd; i++)
				roots[n_roots++] = d[i].pid;
		}
		free(d);
	}
	if (n_roots == 0) {
		free(roots);
		return -ESRCH;
	}
	struct snapshot_options opts;
	snapshot_options_init(&opts);
	opts.subreaper = req->subreaper;
	opts.pgid = req->pgid;
	opts.stacks = req->stacks;
	opts.python = req->python_mode != 0;
	struct snapshot *snap = NULL;
	int r = snapshot_take(roots, n_roots, &opts, &snap);
	free(roots);
	if (r < 0)
		return r;
	json_t *json = snapshot_to_json(snap);
	snapshot_free(snap);
	if (!json)
		return -ENOMEM;
	*ret_snapshot = json;
	return 0;
}

int
triage_analyze(const json_t *snapshot, const json_t *events, const char *rules_file, bool explain,
	       struct triage_analysis *ret, char **ret_error)
{
	struct ruleset rs = { 0 };
	char *err = NULL;
	int r = triage_load_rules(rules_file, &rs, &err);
	if (r < 0) {
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		return r;
	}
	struct wf_graph *g = NULL;
	r = wf_graph_from_snapshot(snapshot, events, &g);
	if (r < 0) {
		ruleset_free(&rs);
		if (ret_error && asprintf(ret_error, "not a forkscope snapshot") < 0)
			*ret_error = NULL;
		return r;
	}
	/* A timed wait longer than the deadline that passed counts as never
	 * ending; the deadline travels with the snapshot, so a replay judges
	 * it the same way. */
	int64_t window = json_int(snapshot, "window_ms", 0);
	if (window > 0)
		g->window_ms = (uint64_t) window;
	wf_analyze(g);
	*ret = (struct triage_analysis){
		.verdicts = verdicts_compute(g, &rs),
		.explain = explain ? wf_explain(g) : NULL,
		.waits_text = wf_summary_text(g),
		.waits = wf_summary_json(g),
	};
	wf_graph_free(g);
	ruleset_free(&rs);
	return 0;
}

void
triage_analysis_release(struct triage_analysis *a)
{
	json_decref(a->verdicts);
	free(a->explain);
	free(a->waits_text);
	json_decref(a->waits);
	*a = (struct triage_analysis){ 0 };
}

int
triage_run(const struct triage_request *req, json_t **ret_snapshot, struct triage_analysis *ret, char **ret_error)
{
	/* Rules first: a bad rules file is a usage error before any process is
	 * stopped for its stacks. */
	struct ruleset rs = { 0 };
	int r = triage_load_rules(req->rules_file, &rs, ret_error);
	if (r < 0)
		return r;
	ruleset_free(&rs);
	json_t *snap = NULL;
	r = triage_snapshot(req, &snap);
	if (r < 0)
		return r;
	r = triage_analyze(snap, req->events, req->rules_file, false, ret, ret_error);
	if (r < 0) {
		json_decref(snap);
		return r;
	}
	*ret_snapshot = snap;
	return 0;
}
