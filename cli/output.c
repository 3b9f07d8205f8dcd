#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reports/render.h"
#include "util/jsonutil.h"
#include "util/macro.h"
#include "util/strbuf.h"
#include "util/timeutil.h"

void
cli_error(const char *verb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "forkscope%s%s: ", verb ? " " : "", verb ? verb : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int
cli_usage_error(const char *verb, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "forkscope %s: ", verb);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'forkscope %s --help'.\n", verb);
	va_end(ap);
	return code;
}

int
cli_check_color(const char *verb, const char *value)
{
	if (strcmp(value, "auto") && strcmp(value, "always") && strcmp(value, "never")) {
		cli_error(verb, "--color: expected auto, always or never, got '%s'", value);
		return -EINVAL;
	}
	return 0;
}

void
cli_print_sanitized(FILE *f, const char *s)
{
	/* Anything outside printable ASCII becomes \xNN: a hostile file must
	 * not drive the terminal. */
	for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			fputc(*p, f);
		else
			fprintf(f, "\\x%02x", *p);
	}
}

char *
cli_self_exe(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n < 0)
		return strdup("/proc/self/exe");
	buf[n] = '\0';
	return strdup(buf);
}

void
cli_print_progress(const json_t *cell, size_t done, size_t total, const char *color_mode)
{
	bool color = render_color_wanted(color_mode, 2) > 0;
	bool passed = json_bool(cell, "passed", 0);
	const char *tag = json_is_string(json_object_get(cell, "infra_error")) ? "ERROR" : passed ? "PASS" : "FAIL";
	const char *on = !color ? "" : passed ? "\033[32m" : "\033[31m";
	const char *off = color ? "\033[0m" : "";
	struct strbuf v = STRBUF_INIT;
	size_t i;
	json_t *verdict;
	json_array_foreach(json_object_get(cell, "verdicts"), i, verdict)
		(void) strbuf_printf(&v, "%s%s", v.len ? "," : "", json_str(verdict, "class", "?"));
	char dur[32];
	int width = snprintf(NULL, 0, "%zu", total);
	fprintf(stderr, "[%*zu/%zu] %s%-5s%s %s  %s  %s%s%s\n", width, done, total, on, tag, off, json_str(cell, "id", "?"),
		json_str(cell, "outcome", "?"), duration_format((uint64_t) json_int(cell, "duration_ns", 0), dur, sizeof(dur)),
		v.len ? "  verdict: " : "", v.len ? v.data : "");
	json_t *m;
	json_array_foreach(json_object_get(cell, "mismatches"), i, m)
		fprintf(stderr, "      %s\n", json_string_value(m));
	strbuf_free(&v);
}

static int
write_rendering(const json_t *doc, enum render_format fmt, const char *path, const struct render_options *o)
{
	if (!path)
		return 0;
	/* `--json -`: the rendering on stdout. */
	int r = strcmp(path, "-") == 0 ? render_to_stream(doc, fmt, o, stdout) : render_to_file(doc, fmt, o, path);
	if (r < 0) {
		cli_error(NULL, "write %s (%s): %s", path, render_format_name(fmt), strerror(-r));
		return 2;
	}
	return 0;
}

int
cli_write_outputs(const json_t *doc, const char *run_dir, const struct cli_outputs *files, const char *color_mode,
		  FILE *out)
{
	int rc = 0;
	char *path = NULL;
	if (asprintf(&path, "%s/result.json", run_dir) >= 0) {
		int r = json_write_file_atomic(doc, path, JSON_INDENT(2));
		if (r < 0) {
			cli_error(NULL, "write %s: %s", path, strerror(-r));
			rc = 2;
		}
		free(path);
	}
	struct render_options plain = { .color = 0 };
	/* One call per file: MAX() evaluates its arguments twice (each rendering
	 * was written, and each failure reported, two times). */
	const struct {
		enum render_format fmt;
		const char *path;
	} renderings[] = { { RENDER_JSON, files->json },   { RENDER_JUNIT, files->junit }, { RENDER_TAP, files->tap },
			   { RENDER_TRACE, files->trace }, { RENDER_HTML, files->html } };
	for (size_t i = 0; i < ARRAY_SIZE(renderings); i++) {
		int w = write_rendering(doc, renderings[i].fmt, renderings[i].path, &plain);
		rc = MAX(rc, w);
	}
	int color = render_color_wanted(color_mode, fileno(out));
	struct render_options text = { .color = color > 0, .verbose = files->verbose };
	(void) fflush(stderr);
	if (render_to_stream(doc, RENDER_TEXT, &text, out) < 0)
		rc = 2;
	(void) fflush(out);
	return rc;
}

/* The largest JSON file read (snapshot.json of a large tree is a few MiB). */
#define CLI_JSON_MAX_BYTES (512ull << 20)

int
cli_load_json_file(const char *path, json_t **ret, char **ret_error)
{
	/* O_NONBLOCK: a FIFO named like a snapshot must not block the open. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	int r = 0;
	if (fd < 0)
		r = -errno;
	else if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode)) {
		if (asprintf(ret_error, "%s: not a regular file", path) < 0)
			*ret_error = NULL;
		(void) close(fd);
		return -EINVAL;
	} else if ((uint64_t) st.st_size > CLI_JSON_MAX_BYTES) {
		if (asprintf(ret_error, "%s: %lld bytes, larger than any forkscope file", path, (long long) st.st_size) < 0)
			*ret_error = NULL;
		(void) close(fd);
		return -EFBIG;
	}
	if (r < 0) {
		if (fd >= 0)
			(void) close(fd);
		if (asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0)
			*ret_error = NULL;
		return r;
	}
	json_error_t jerr;
	json_t *doc = json_loadfd(fd, 0, &jerr);
	(void) close(fd);
	if (!doc) {
		if (asprintf(ret_error, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text) < 0)
			*ret_error = NULL;
		return -EBADMSG;
	}
	*ret = doc;
	return 0;
}
