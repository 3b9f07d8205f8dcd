#pragma once
/* The fd-alias verdict (docs/verdicts.md, docs/catalogue.md): a number that
 * crossed a fork was closed behind the back of an object that still holds
 * it, was reused for a socket or pipe, and the stale object writes into it.
 * Found from the probe events (fd_reuse, fd_write_sample, the harness'
 * fd_scrub) and the wait-for graph (who stalls on the other end). */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "reports/waitgraph.h"

#define FDALIAS_SITES 4

struct fdalias_site {
	char *addr, *module, *offset, *via;
	pid_t tid;
	char *bytes; /* first bytes as the event has them (escaped text) */
	uint64_t ts_ns;
	bool text;   /* the bytes read as text (log lines) */
};

/* One reused number with the evidence of a stale writer. */
struct fdalias_alias {
	pid_t pid; /* the process that reused the number and writes into it */
	int fd;
	char *was_target, *was_kind;
	uint64_t was_ino;
	pid_t inherited_from;
	uint64_t closed_ns, reuse_ns;
	char *closed_via, *reuse_via;
	pid_t closed_tid;
	char *now_target, *now_kind, *now_local, *now_peer;
	uint64_t now_ino;
	struct fdalias_site sites[FDALIAS_SITES];
	size_t n_sites;
	int stale; /* index of the stale writer in sites, -1 when it cannot be told */
	const char *why; /* "two writers" or "text in a channel" */
};

/* Every alias the events show (reused socket or pipe written from two call
 * sites, or with a text sink's bytes in it). Returns the count or -ENOMEM. */
int fdalias_find(const json_t *events, struct fdalias_alias **ret, size_t *ret_n);
void fdalias_free(struct fdalias_alias *a, size_t n);

/* Is this run of bytes text (a log line), not a binary frame? */
bool fdalias_bytes_are_text(const unsigned char *bytes, size_t n);

/* Add one fd-alias verdict per alias whose other end a blocked process waits
 * on; verdicts of other classes about the same processes are dropped (the
 * alias is their cause). events may be NULL (nothing to do). */
void verdict_fdalias_apply(struct wf_graph *g, const json_t *events, json_t *verdicts);
