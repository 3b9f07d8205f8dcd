/* stacks_bench: forkscope's stacks alone, for bench/run (issue 7, part 4).
 *
 *   stacks_bench [--no-lines] PID...
 *       one cold pass: a fresh stack_cache shared by every pid, then
 *       stacks_capture() of each pid in turn (freeze, unwind, detach,
 *       symbolize with file:line unless --no-lines); then a warm pass over
 *       the same pids with the same cache.
 *   stacks_bench --snapshot ROOT
 *       snapshot_take() of ROOT and its descendants with stacks, and with
 *       sample_interval_ns = 0 (the triage's work without its 100 ms wait
 *       between the two samples), then again without stacks.
 *
 * Prints one JSON object with in-process times (CLOCK_MONOTONIC, ns), the
 * thread/frame counts and the cache counters. Process start-up is not in
 * these times: bench/run also times the whole process. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/snapshot.h"
#include "probes/stacks.h"
#include "util/timeutil.h"

struct pass {
	uint64_t ns;
	size_t threads, frames, errors, partial;
};

static void
capture_all(struct stack_cache *cache, const pid_t *pids, size_t n, const struct stacks_options *opts,
	    struct pass *ret)
{
	memset(ret, 0, sizeof(*ret));
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct thread_stack *ts = NULL;
		size_t nt = 0;
		char *reason = NULL;
		int r = stacks_capture(cache, pids[i], opts, &ts, &nt, &reason);
		if (r < 0) {
			ret->errors++;
			fprintf(stderr, "stacks_bench: pid %d: %s\n", (int) pids[i],
				reason ? reason : strerror(-r));
		} else {
			ret->threads += nt;
			for (size_t k = 0; k < nt; k++) {
				ret->frames += ts[k].n_frames;
				if (ts[k].partial) /* e.g. deeper than max_frames */
					ret->partial++;
			}
		}
		free(reason);
		thread_stacks_free(ts, nt);
	}
	ret->ns = now_ns() - t0;
}

static void
print_pass(const char *name, const struct pass *p)
{
	printf("\"%s\":{\"ns\":%" PRIu64 ",\"threads\":%zu,\"frames\":%zu,\"partial\":%zu,\"errors\":%zu}",
	       name, p->ns, p->threads, p->frames, p->partial, p->errors);
}

static int
snapshot_mode(pid_t root)
{
	struct snapshot_options o;
	uint64_t ns[2];
	size_t procs[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		snapshot_options_init(&o);
		o.sample_interval_ns = 0;
		o.stacks = k == 0;
		struct snapshot *s = NULL;
		uint64_t t0 = now_ns();
		int r = snapshot_take(&root, 1, &o, &s);
		ns[k] = now_ns() - t0;
		if (r < 0) {
			fprintf(stderr, "stacks_bench: snapshot of %d: %s\n", (int) root, strerror(-r));
			return 1;
		}
		procs[k] = s->n_processes;
		snapshot_free(s);
	}
	printf("{\"mode\":\"snapshot\",\"interval_ns\":0,\"processes\":%zu,\"with_stacks_ns\":%" PRIu64
	       ",\"without_stacks_ns\":%" PRIu64 "}\n",
	       procs[0], ns[0], ns[1]);
	return 0;
}

int
main(int argc, char **argv)
{
	bool lines = true;
	int i = 1;
	if (argc == 3 && strcmp(argv[1], "--snapshot") == 0)
		return snapshot_mode((pid_t) atoi(argv[2]));
	if (i < argc && strcmp(argv[i], "--no-lines") == 0) {
		lines = false;
		i++;
	}
	size_t n = (size_t) (argc - i);
	if (n == 0) {
		fprintf(stderr, "usage: stacks_bench [--no-lines] PID... | stacks_bench --snapshot ROOT\n");
		return 2;
	}
	pid_t *pids = calloc(n, sizeof(*pids));
	if (!pids)
		return 1;
	for (size_t k = 0; k < n; k++)
		pids[k] = (pid_t) atoi(argv[i + (int) k]);

	struct stacks_options opts = { .symbolize_lines = lines };
	struct stack_cache *cache = stack_cache_new();
	if (!cache)
		return 1;
	struct pass cold, warm;
	capture_all(cache, pids, n, &opts, &cold);
	struct stack_cache_stats st_cold;
	stack_cache_get_stats(cache, &st_cold);
	capture_all(cache, pids, n, &opts, &warm);
	struct stack_cache_stats st;
	stack_cache_get_stats(cache, &st);
	stack_cache_free(cache);

	printf("{\"mode\":\"stacks\",\"pids\":%zu,\"lines\":%s,", n, lines ? "true" : "false");
	print_pass("cold", &cold);
	printf(",");
	print_pass("warm", &warm);
	printf(",\"cold_cache\":{\"layouts_created\":%u,\"layouts_reused\":%u,\"symbols_resolved\":%u,"
	       "\"symbols_cached\":%u}}\n",
	       st_cold.layouts_created, st_cold.layouts_reused, st_cold.symbols_resolved, st_cold.symbols_cached);
	free(pids);
	return cold.errors ? 1 : 0;
}
