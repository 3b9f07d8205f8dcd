#pragma once
/* Scenario files: a strict YAML subset loaded through libyaml's event API.
 *
 * A scenario describes one actor tree, the backend that forks it, the fix
 * switches, the timeouts and what the run is expected to show. A `matrix`
 * multiplies it into cells (e.g. backend x fixes.fd_scrub); each cell is a
 * fully resolved `struct scenario` of its own with its own expectation.
 *
 * Errors are reported as "file:line:col: message" (1-based), exactly one per
 * failed load (the first in the file), and nothing is half-loaded. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard limits: a scenario is hand-written input, not a data set. */
#define SCENARIO_MAX_FILE_BYTES (256 * 1024)
#define SCENARIO_MAX_DEPTH 8	   /* actor tree depth (root = 0) */
#define SCENARIO_MAX_ACTORS 1024   /* after expanding `count` */
#define SCENARIO_MAX_COUNT 256	   /* one node's `count` */
#define SCENARIO_MAX_STEPS 64	   /* per actor, boot + steps */
#define SCENARIO_MAX_CELLS 256	   /* matrix product */
#define SCENARIO_MAX_NAME 64
#define SCENARIO_MAX_YAML_NESTING 32
/* `image`: at most this, and at most half of the machine's memory. */
#define SCENARIO_MAX_IMAGE_BYTES (8ULL << 30)

enum backend_kind {
	BACKEND_MTF,
	BACKEND_FORK,
	BACKEND_SPAWN,
	_BACKEND_MAX,
};

enum capture_kind {
	CAPTURE_NONE,	 /* the root inherits forkscope's stdout/stderr */
	CAPTURE_PIPE,	 /* a pipe drained only after the tree exits (naive runner) */
	CAPTURE_TMPFILE, /* a deleted temporary file (pytest --capture=fd) */
	_CAPTURE_MAX,
};

enum stdio_kind {
	STDIO_INHERIT,
	STDIO_DEVNULL,
	STDIO_FILE, /* a per-actor file in the run directory */
	_STDIO_MAX,
};

enum wait_kind {
	WAIT_PIDFD,  /* pidfd in the event loop, then waitpid(WNOHANG) */
	WAIT_THREAD, /* blocking waitpid() in a helper thread: uncancellable */
	_WAIT_MAX,
};

/* How fd_scrub retires the fds a child inherited. */
enum scrub_mode {
	SCRUB_CLOSE,   /* close(): the numbers are free for the next fd (fd-alias hazard) */
	SCRUB_DEVNULL, /* dup2(/dev/null) over each: the numbers stay reserved */
	_SCRUB_MAX,
};

enum log_stream {
	LOG_STDOUT = 1,
	LOG_STDERR = 2,
};

enum step_kind {
	STEP_SLEEP,	     /* sleep: 250ms            (cancellable) */
	STEP_LOG,	     /* log: {bytes: 64KiB, to: stdout|stderr} (blocking writes) */
	STEP_RAISE,	     /* raise | raise: "message"  (error up the tree) */
	STEP_EXIT,	     /* exit: 2                  (_exit at once, no teardown) */
	STEP_IGNORE_CANCEL,  /* ignore_cancel            (cancel requests get no ack) */
	STEP_IGNORE_SIGTERM, /* ignore_sigterm */
	STEP_BLOCK_SIGINT,   /* block_sigint */
	STEP_SPIN,	     /* spin | spin: 200ms       (burn CPU; forever without a value) */
	STEP_SPAWN,	     /* spawn: NAME              (start a child declared `late: true`) */
	STEP_SERVE,	     /* serve                    (wait until cancelled) */
	STEP_AWAIT,	     /* await: NAME              (wait until that child has ended) */
	STEP_KILL_SELF,	     /* kill_self: SIGKILL */
	STEP_DAEMONIZE,	     /* daemonize                (a helper that setsid()s and stays) */
	STEP_LOG_SINK,	     /* log_sink | log_sink: 11  (open the runtime's error log on /dev/null, at fd N) */
	_STEP_MAX,
};

struct step {
	enum step_kind kind;
	uint64_t ns;	   /* sleep, spin (0 = forever) */
	uint64_t bytes;	   /* log */
	int stream;	   /* log: LOG_STDOUT or LOG_STDERR */
	int value;	   /* exit status, signal number */
	char *text;	   /* raise message, spawn/await child name (malloc'ed) */
	unsigned line;	   /* where it came from, for runtime errors */
	unsigned column;
};

/* One actor as written in the file. `count` > 1 expands at load time into
 * `count` siblings named NAME-1 .. NAME-N (each a full copy of the subtree). */
struct actor_spec {
	char *name;
	bool late;		/* spawned by a `spawn: NAME` step, not at start */
	struct step *boot;	/* before the handshake (boot death lives here) */
	size_t n_boot;
	struct step *steps;	/* after the handshake */
	size_t n_steps;
	struct actor_spec *children; /* array, already expanded */
	size_t n_children;
	unsigned line, column;
	/* Filled by scenario_index(): position in a pre-order walk (root = 0),
	 * depth and parent index (-1 for the root). */
	int id;
	int depth;
	int parent_id;
};

struct fixes {
	bool fd_scrub;
	bool reset_sigmask;
	enum stdio_kind stdio;
	bool atfork_locks;
	enum wait_kind wait;
	bool boot_race;
	bool cancel_first;
	bool peer_wait_bound;
	bool tree_kill;
	enum scrub_mode scrub_mode; /* how fd_scrub retires fds */
};

struct timeouts {
	uint64_t cancel_ack_ns; /* cancel request -> ack, then SIGTERM */
	uint64_t hard_kill_ns;	/* SIGTERM -> exit, then SIGKILL */
	uint64_t peer_wait_ns;	/* bound on waiting for a peer's hangup (peer_wait_bound) */
	uint64_t run_ns;	/* whole tree; past it the outcome is hang */
	uint64_t linger_ns;	/* after the root ends, how long the rest may take */
};

enum outcome {
	OUTCOME_OK,
	OUTCOME_ERROR,
	OUTCOME_HANG,
	_OUTCOME_MAX,
};

enum interrupt_target {
	INTERRUPT_ROOT,	 /* signal the root actor only (a SIGINT-first operator) */
	INTERRUPT_GROUP, /* signal the scenario's process group (kill -9 -PGID) */
};

/* An operator action during the run (tractor F13: pkill skipped the cascade). */
struct interrupt {
	bool enabled;
	uint64_t after_ns;
	int signal;
	enum interrupt_target target;
};

struct expectation {
	bool has_outcome;
	enum outcome outcome;
	char *verdict;	     /* verdict class that must be among the findings; NULL: none required */
	bool no_verdict;     /* `verdict: none`: no finding allowed */
	bool has_leaked;
	unsigned leaked;
};

/* One matrix axis: a --set style key and its values as written. */
struct matrix_axis {
	char *key;
	char **values;
	size_t n_values;
	unsigned line, column;
};

/* One `cells` entry: a cell whose axis values match every `when` condition
 * takes the expectation fields this entry sets (outcome when has_outcome,
 * leaked when has_leaked, the verdict pair when verdict or no_verdict is set).
 * Entries apply in file order after the top-level `expect`. */
struct cell_condition {
	char *key;   /* canonical --set key, e.g. "fixes.fd_scrub" */
	char *value; /* as written; one of that axis's values */
};

struct cell_rule {
	struct cell_condition *when;
	size_t n_when;
	struct expectation expect;
	unsigned line, column;
};

struct scenario {
	char *path;		/* file it came from */
	char *name;
	char *description;
	char *cell;		/* "backend=mtf,fixes.fd_scrub=off" for matrix cells, else NULL */
	enum backend_kind backend;
	enum capture_kind capture;
	uint64_t image_bytes;	/* warm image the root touches before forking (bench knob) */
	uint64_t budget_ns;	/* teardown budget for slow-teardown; 0 = none */
	struct fixes fixes;
	struct timeouts timeouts;
	struct interrupt interrupt;
	struct actor_spec root;
	struct expectation expect;
	size_t n_actors;	/* after count expansion */
	/* Matrix as written (only on the unexpanded scenario). */
	struct matrix_axis *matrix;
	size_t n_matrix;
	/* `cells` as written (only on the unexpanded scenario). */
	struct cell_rule *cell_rules;
	size_t n_cell_rules;
};

/* Load and validate. On failure, *ret_error gets "path:line:col: message"
 * (malloc'ed) and the return is -EINVAL (bad content) or -errno (I/O). */
int scenario_load(const char *path, struct scenario **ret, char **ret_error);
int scenario_load_string(const char *name, const char *text, size_t len, struct scenario **ret,
			 char **ret_error);

/* Apply "key=value" the way --set does (e.g. "backend=fork", "fixes.fd_scrub=off",
 * "fd_scrub=off" (fix names are accepted bare), "timeouts.run=2s", "capture=pipe",
 * "interrupt.signal=SIGINT"). On error *ret_error is "--set KEY=VAL: message". */
int scenario_set(struct scenario *s, const char *assignment, char **ret_error);

/* Expand the matrix into cells (each fully resolved, with `cell` set and the
 * expectation of that cell applied). A scenario without a matrix gives one cell,
 * a copy of itself. */
int scenario_expand(const struct scenario *s, struct scenario ***ret_cells, size_t *ret_n,
		    char **ret_error);

/* Finding scenario files: what `run` and `scenarios` load from their path
 * arguments. A directory is walked recursively for *.yaml / *.yml (names
 * starting with '.' are skipped), each argument's files sorted by path.
 * Symlinks are followed, but a directory or file reached a second time (a
 * symlink loop, `sub/up -> ..`, the same file named twice) is walked or loaded
 * once. Anything named *.yaml that is not a regular file (a FIFO, a device) is
 * refused, never opened for reading. Nothing is printed: errors and warnings
 * come back as notes, in the order found. */
struct scenario_note {
	bool error;    /* an error fails the collection; a warning does not */
	char *message; /* "path: reason", or the loader's "path:line:col: message" */
};

struct scenario_collection {
	struct scenario **scenarios; /* loaded, in order */
	size_t n_scenarios;
	struct scenario_note *notes;
	size_t n_notes;
	size_t n_errors;
};

/* Fills *ret (scenarios and notes) and returns 0 even when there are errors
 * (ret->n_errors > 0); -ENOMEM leaves *ret empty. */
int scenario_collect(char *const *paths, size_t n_paths, struct scenario_collection *ret);
void scenario_collection_clear(struct scenario_collection *c);

struct scenario *scenario_copy(const struct scenario *s);
void scenario_free(struct scenario *s);
void scenario_free_cells(struct scenario **cells, size_t n);

/* Pre-order index of the tree: fills id/depth/parent_id and returns a
 * malloc'ed array of pointers into the tree (length *ret_n). ret_actors and
 * ret_n may be NULL to only fill the fields (scenario_load, scenario_from_json
 * and copies already have them filled). */
int scenario_index(struct scenario *s, struct actor_spec ***ret_actors, size_t *ret_n);

/* Names for printing and parsing. */
const char *backend_name(enum backend_kind b);
int backend_from_name(const char *name);
const char *capture_name(enum capture_kind c);
const char *stdio_name(enum stdio_kind k);
const char *wait_name(enum wait_kind w);
const char *outcome_name(enum outcome o);
int outcome_from_name(const char *name);
const char *step_name(enum step_kind k);
/* Added: the inverse lookups (-EINVAL for unknown names) and interrupt targets. */
int capture_from_name(const char *name);
int stdio_from_name(const char *name);
int wait_from_name(const char *name);
const char *scrub_mode_name(enum scrub_mode m);
int step_from_name(const char *name);
const char *interrupt_target_name(enum interrupt_target t);
int interrupt_target_from_name(const char *name);

/* A canonical JSON rendering of a resolved scenario (cell), used to hand the
 * spec to `spawn`-backend children and recorded in result.json. Returns a
 * malloc'ed string. scenario_from_json() reads it back (no file:line there). */
char *scenario_to_json(const struct scenario *s);
int scenario_from_json(const char *text, struct scenario **ret, char **ret_error);
