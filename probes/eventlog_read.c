/* The events.ndjson reader: streamed, capped, and refusing what is not a
 * regular file (docs/events.md "Reading"). */
#include "probes/eventlog_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/jsonutil.h"

#define READ_CHUNK (64 * 1024)

int
events_open(const char *path)
{
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		(void) close(fd);
		return e;
	}
	if (S_ISREG(st.st_mode))
		return fd;
	(void) close(fd);
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		return -ENODEV;
	return -EINVAL;
}

const char *
events_error_reason(int err)
{
	switch (err) {
	case -EINVAL:
		return "not a regular file (a FIFO or socket)";
	case -ENODEV:
		return "a device, not a file";
	case -EISDIR:
		return "a directory, not a file";
	case -EFBIG:
		return "larger than 256 MiB (read up to there)";
	default:
		return strerror(-err);
	}
}

/* Hand the whole lines of buf[0..*len) to fn and keep the rest at the front.
 * A rest longer than a line may be is dropped and only counted (*skipped);
 * *skipping stays set until its newline arrives. */
static int
deliver_lines(char *buf, size_t *len, size_t *lineno, bool *skipping, uint64_t *skipped, events_line_fn fn,
	      void *userdata)
{
	size_t start = 0;
	int r = 0;
	for (;;) {
		char *nl = memchr(buf + start, '\n', *len - start);
		if (!nl)
			break;
		size_t n = (size_t) (nl - (buf + start));
		(*lineno)++;
		if (*skipping) {
			r = fn(NULL, (size_t) (*skipped + n), *lineno, true, userdata);
			*skipping = false;
			*skipped = 0;
		} else if (n > EVENTS_MAX_LINE_BYTES) {
			r = fn(NULL, n, *lineno, true, userdata);
		} else {
			r = fn(buf + start, n, *lineno, true, userdata);
		}
		start += n + 1;
		if (r < 0)
			break;
	}
	size_t rest = *len - start;
	if (*skipping) {
		*skipped += rest;
		rest = 0;
	} else if (rest > EVENTS_MAX_LINE_BYTES) {
		*skipping = true;
		*skipped = rest;
		rest = 0;
	}
	if (rest && start)
		memmove(buf, buf + start, rest);
	*len = rest;
	return r;
}

/* Whether fd holds a byte at pos: the cap only matters if there is more. */
static int
has_more(int fd, uint64_t pos)
{
	char c;
	for (;;) {
		ssize_t k = pread(fd, &c, 1, (off_t) pos);
		if (k >= 0)
			return k > 0;
		if (errno != EINTR)
			return -errno;
	}
}

int
events_read_fd(int fd, uint64_t offset, uint64_t max_bytes, bool with_tail, events_line_fn fn, void *userdata,
	       uint64_t *ret_consumed)
{
	/* The buffer holds at most one line being assembled plus a chunk:
	 * memory stays bounded whatever the file holds. */
	size_t cap = READ_CHUNK, len = 0, lineno = 0;
	uint64_t total = 0, skipped = 0;
	bool skipping = false;
	int r = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			char *grown = realloc(buf, cap * 2);
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			buf = grown;
			cap *= 2;
		}
		if (total >= max_bytes) {
			r = has_more(fd, offset + total);
			if (r > 0)
				r = -EFBIG;
			break;
		}
		size_t want = cap - len;
		if (want > max_bytes - total)
			want = (size_t) (max_bytes - total);
		ssize_t k = pread(fd, buf + len, want, (off_t) (offset + total));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			break;
		}
		if (k == 0)
			break;
		len += (size_t) k;
		total += (uint64_t) k;
		r = deliver_lines(buf, &len, &lineno, &skipping, &skipped, fn, userdata);
		if (r < 0)
			break;
	}
	uint64_t pending = len + skipped;
	if (r == 0 && with_tail && pending > 0) {
		r = fn(skipping ? NULL : buf, (size_t) pending, lineno + 1, false, userdata);
		if (r >= 0) {
			r = 0;
			pending = 0;
		}
	}
	free(buf);
	if (ret_consumed)
		*ret_consumed = total - pending;
	return r < 0 ? r : 0;
}

int
events_read_lines(const char *path, events_line_fn fn, void *userdata)
{
	int fd = events_open(path);
	if (fd < 0)
		return fd;
	int r = events_read_fd(fd, 0, EVENTS_MAX_FILE_BYTES, true, fn, userdata, NULL);
	(void) close(fd);
	return r;
}

/* ---- lines to events ---- */

struct parse_state {
	json_t *events;
	struct events_problem *problems;
	size_t max_problems;
	size_t bad;
};

static void
parse_bad(struct parse_state *st, size_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
parse_bad(struct parse_state *st, size_t line, const char *fmt, ...)
{
	if (st->problems && st->bad < st->max_problems) {
		struct events_problem *p = &st->problems[st->bad];
		p->line = line;
		va_list ap;
		va_start(ap, fmt);
		(void) vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
		va_end(ap);
	}
	st->bad++;
}

static int
parse_line(const char *line, size_t n, size_t lineno, bool terminated, void *userdata)
{
	struct parse_state *st = userdata;
	if (n == 0)
		return 0;
	if (!line) {
		parse_bad(st, lineno, "line of %zu bytes, longer than %d", n, EVENTS_MAX_LINE_BYTES);
		return 0;
	}
	const char *nul = memchr(line, '\0', n);
	if (nul) {
		/* jansson would call it the end of the input: say what it is. */
		parse_bad(st, lineno, "NUL byte at column %zu (binary data)", (size_t) (nul - line) + 1);
		return 0;
	}
	json_error_t jerr;
	json_t *ev = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
	if (json_is_object(ev))
		return json_array_append_new(st->events, ev) == 0 ? 0 : -ENOMEM;
	if (!ev)
		parse_bad(st, lineno, "invalid JSON: %s at column %d%s", jerr.text, jerr.column,
			  terminated ? "" : "; the last line has no newline (torn write?)");
	else
		parse_bad(st, lineno, "not a JSON object");
	json_decref(ev);
	return 0;
}

json_t *
events_parse(const char *data, size_t len, struct events_problem *problems, size_t max_problems,
	     size_t *ret_bad_lines)
{
	struct parse_state st = { .events = json_array(), .problems = problems, .max_problems = max_problems };
	size_t lineno = 0;
	/* Lengths, not strings: a NUL byte in a damaged file must not hide the
	 * lines after it. */
	for (size_t pos = 0; st.events && pos < len;) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t) (nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (parse_line(n > EVENTS_MAX_LINE_BYTES ? NULL : line, n, lineno, nl != NULL, &st) < 0)
			break;
	}
	if (ret_bad_lines)
		*ret_bad_lines = st.bad;
	return st.events;
}

json_t *
events_load_checked(const char *path, struct events_problem *problems, size_t max_problems, size_t *ret_bad_lines,
		    int *ret_errno)
{
	struct parse_state st = { .events = json_array(), .problems = problems, .max_problems = max_problems };
	int r = st.events ? events_read_lines(path, parse_line, &st) : -ENOMEM;
	if (ret_errno)
		*ret_errno = r < 0 ? r : 0;
	if (ret_bad_lines)
		*ret_bad_lines = st.bad;
	return st.events;
}

json_t *
events_load(const char *path, size_t *ret_bad_lines)
{
	return events_load_checked(path, NULL, 0, ret_bad_lines, NULL);
}

bool
events_pid_is_actor(const json_t *events, pid_t pid, const char **ret_name)
{
	size_t i;
	json_t *ev;
	/* Members of the tree: actors (child_start), the root (its own ready
	 * event), the capture host. Helpers they daemonized are not. */
	json_array_foreach(events, i, ev) {
		const char *name = json_str(ev, "ev", "");
		bool member = false;
		if (strcmp(name, "child_start") == 0)
			member = json_int(ev, "pid", -1) == pid && json_int(ev, "actor_id", -1) >= 0;
		else if (strcmp(name, "ready") == 0)
			member = json_int(ev, "child_id", -1) == 0 && json_int(ev, "child_pid", -1) == pid;
		else if (strcmp(name, "capture_start") == 0)
			member = json_int(ev, "pid", -1) == pid;
		if (member) {
			if (ret_name)
				*ret_name = json_str(ev, "actor", NULL);
			return true;
		}
	}
	return false;
}
