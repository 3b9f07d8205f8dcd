#pragma once
/* Shared between the files of the scenario loader (the files in
 * harness/scenario/), not part of its interface: harness/scenario.h is.
 *
 *   names.c      enum <-> name tables
 *   messages.c   one-line message helpers and the value parsers
 *   settings.c   the --set keys (also matrix axes and `when` conditions)
 *   copy.c       free, deep copy and the pre-order index
 *   yaml.c       libyaml events -> node tree, node checks, the loader's error
 *   steps.c      boot/steps lists
 *   actors.c     the actor tree, `count` expansion, spawn/await references
 *   matrix.c     expect, matrix and cells; matrix expansion into cells
 *   load.c       the top level and the file/string entry points
 *   collect.c    the directory walk that finds scenario files
 *   json_write.c, json_read.c   the canonical JSON form */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "harness/scenario.h"

/* ---- names.c */

/* What a step accepts, by kind (same order as enum step_kind). */
enum step_arg {
	ARG_NONE,     /* takes no value */
	ARG_DURATION, /* sleep, spin */
	ARG_TEXT,     /* raise */
	ARG_STATUS,   /* exit */
	ARG_SIGNAL,   /* kill_self */
	ARG_LOG,      /* log: SIZE | {bytes, to} */
	ARG_CHILD,    /* spawn, await */
	ARG_FD,	      /* log_sink */
};

struct step_info {
	const char *name;
	bool bare_ok; /* may be written as a plain word */
	enum step_arg arg;
	bool in_boot;	     /* allowed before the handshake */
	const char *example; /* for "needs a value" */
};

extern const char *const backend_names[_BACKEND_MAX];
extern const char *const capture_names[_CAPTURE_MAX];
extern const char *const stdio_names[_STDIO_MAX];
extern const char *const wait_names[_WAIT_MAX];
extern const char *const scrub_mode_names[_SCRUB_MAX];
extern const char *const outcome_names[_OUTCOME_MAX];
extern const char *const target_names[INTERRUPT_GROUP + 1];
extern const char *const stream_names[LOG_STDERR + 1];
extern const struct step_info step_infos[_STEP_MAX];

int name_lookup(const char *const *names, size_t n, const char *name);
const char *name_of(const char *const *names, size_t n, int v);

/* ---- messages.c */

#define QUOTE_CHARS 60

/* A user value as it may appear inside a one-line message: control
 * characters escaped, long values cut at a UTF-8 boundary with "...". */
struct quoted {
	char s[QUOTE_CHARS * 4 + 16];
};

const char *quote(struct quoted *q, const char *text);
/* Set *ret_msg to a formatted message; returns -EINVAL (or -ENOMEM). */
int msgf(char **ret_msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *join_names(const char *const *names, size_t n, const char *last_sep);
const char *suggest(const char *word, const char *const *cands, size_t n);
int unknown_msg(char **ret_msg, const char *what, const char *word, const char *where,
		const char *const *cands, size_t n, const char *extra);

/* Value parsers shared by the YAML loader, --set and matrix values. Each
 * leaves its output alone on failure and explains in *ret_msg. */
bool parse_uint(const char *text, unsigned long long max, unsigned long long *ret);
int parse_bool_value(const char *key, const char *text, bool *ret, char **ret_msg);
int parse_duration_value(const char *key, const char *text, uint64_t *ret, char **ret_msg);
int parse_size_value(const char *key, const char *text, uint64_t *ret, char **ret_msg);
int parse_signal_value(const char *key, const char *text, int *ret, char **ret_msg);
int parse_choice_value(const char *key, const char *text, const char *const *names, size_t n,
		       int *ret, char **ret_msg);
int parse_verdict_value(const char *key, const char *text, char **ret_verdict, bool *ret_none,
			char **ret_msg);

/* ---- settings.c */

enum setting_id {
	SET_BACKEND,
	SET_CAPTURE,
	SET_IMAGE,
	SET_BUDGET,
	SET_FD_SCRUB,
	SET_RESET_SIGMASK,
	SET_STDIO,
	SET_ATFORK_LOCKS,
	SET_WAIT,
	SET_BOOT_RACE,
	SET_CANCEL_FIRST,
	SET_PEER_WAIT_BOUND,
	SET_TREE_KILL,
	SET_SCRUB_MODE,
	SET_CANCEL_ACK,
	SET_HARD_KILL,
	SET_PEER_WAIT,
	SET_RUN,
	SET_LINGER,
	SET_INTERRUPT_AFTER,
	SET_INTERRUPT_SIGNAL,
	SET_INTERRUPT_TARGET,
	SET_EXPECT_OUTCOME,
	SET_EXPECT_VERDICT,
	SET_EXPECT_LEAKED,
};

struct setting {
	const char *key;   /* canonical */
	const char *alias; /* bare fix name, accepted as well */
	enum setting_id id;
};

extern const char *const fix_keys[10];
extern const char *const timeout_keys[5];
extern const char *const interrupt_keys[3];
extern const char *const expect_keys[3];

const struct setting *setting_find(const char *key);
int setting_unknown_msg(char **ret_msg, const char *word, const char *where);
int expect_apply(struct expectation *e, const struct setting *st, const char *text, char **ret_msg);
/* Apply one setting. s is untouched on failure. */
int setting_apply(struct scenario *s, const struct setting *st, const char *text, char **ret_msg);
void scenario_set_defaults(struct scenario *s);

/* ---- copy.c */

void steps_free(struct step *steps, size_t n);
void actor_clear(struct actor_spec *a);
void expectation_clear(struct expectation *e);
/* Deep copy into dst; on failure dst is left empty. */
int actor_copy(struct actor_spec *dst, const struct actor_spec *src);
struct scenario *scenario_copy_full(const struct scenario *s, bool with_matrix);

/* ---- yaml.c */

enum ynode_type {
	YNODE_SCALAR,
	YNODE_SEQUENCE,
	YNODE_MAPPING,
};

struct ynode {
	enum ynode_type type;
	unsigned line, column; /* 1-based start */
	char *text;	       /* scalar */
	struct ynode **items;  /* sequence: items; mapping: key, value, key, value, ... */
	size_t n_items;
	size_t cap;
};

struct loader {
	const char *path;
	const char *text;
	size_t len;
	yaml_parser_t parser;
	char *error; /* the one "path:line:col: message": the first in the file */
	unsigned error_line, error_column;
};

struct field {
	const char *name;
	const struct ynode *key;
	const struct ynode *value;
};

void ynode_free(struct ynode *n);
int read_document(struct loader *l, struct ynode **ret);
int loader_fail(struct loader *l, unsigned line, unsigned column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* After an error in one field of a mapping the loader checks the others, so
 * that the error reported is the first in the file: r -EINVAL (with the error
 * recorded) sets *failed and returns 0; other errors (ENOMEM) come back. */
int loader_keep_going(struct loader *l, int r, int *failed);
#define fail_at(l, node, ...) loader_fail((l), (node)->line, (node)->column, __VA_ARGS__)
/* Report a message produced by a value parser at a node. */
int fail_msg(struct loader *l, const struct ynode *at, int r, char *msg);
const char *node_found(const struct ynode *n, struct quoted *q);
int want_scalar(struct loader *l, const struct ynode *n, const char *what);
int want_mapping(struct loader *l, const struct ynode *n, const char *what);
int want_sequence(struct loader *l, const struct ynode *n, const char *what);
int map_fields(struct loader *l, const struct ynode *map, const char *where, struct field *fields,
	       size_t n_fields);
struct field *field_get(struct field *fields, size_t n, const char *name);
int apply_node(struct loader *l, struct scenario *s, const char *key, const struct ynode *value);
int check_name(struct loader *l, const struct ynode *n, const char *what);

/* ---- steps.c */

int parse_steps(struct loader *l, const struct ynode *seq, const char *actor, bool boot,
		size_t already, struct step **ret, size_t *ret_n);

/* ---- actors.c */

/* One child node as written, before `count` made copies of it. */
struct child_group {
	const char *base; /* name as written (points into the node tree) */
	const struct ynode *node;
	bool has_count;
	bool late;
	size_t first, n; /* its copies in parent->children */
};

int parse_actor(struct loader *l, const struct ynode *node, int depth, struct actor_spec *a,
		struct child_group *ret_group, size_t *ret_size);

/* ---- matrix.c */

int parse_expect(struct loader *l, const struct ynode *node, const char *what,
		 struct expectation *e);
int parse_matrix(struct loader *l, const struct ynode *node, struct scenario *s);
int parse_cells(struct loader *l, const struct ynode *key, const struct ynode *node,
		struct scenario *s);
