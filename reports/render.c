#include "reports/render.h"

#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reports/render_util.h"
#include "util/jsonutil.h"
#include "util/macro.h"

static const struct {
	const char *name;
	const char *suffix;
	int (*fn)(const json_t *doc, const struct render_options *o, struct strbuf *out);
} formats[_RENDER_FORMAT_MAX] = {
	[RENDER_TEXT] = { "text", ".txt", render_text_doc },
	[RENDER_JSON] = { "json", ".json", render_json_doc },
	[RENDER_JUNIT] = { "junit", ".xml", render_junit_doc },
	[RENDER_TAP] = { "tap", ".tap", render_tap_doc },
	[RENDER_TRACE] = { "trace", ".trace.json", render_trace_doc },
	[RENDER_HTML] = { "html", ".html", render_html_doc },
};

int
render_format_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int i = 0; i < _RENDER_FORMAT_MAX; i++)
		if (strcmp(formats[i].name, name) == 0)
			return i;
	return -EINVAL;
}

const char *
render_format_name(enum render_format fmt)
{
	return (unsigned) fmt < _RENDER_FORMAT_MAX ? formats[fmt].name : NULL;
}

const char *
render_format_suffix(enum render_format fmt)
{
	return (unsigned) fmt < _RENDER_FORMAT_MAX ? formats[fmt].suffix : NULL;
}

int
render(const json_t *doc, enum render_format fmt, const struct render_options *o, char **ret_text)
{
	static const struct render_options defaults = { 0 };
	struct strbuf out = STRBUF_INIT;
	if ((unsigned) fmt >= _RENDER_FORMAT_MAX || !json_is_object(doc) || !ret_text)
		return -EINVAL;
	/* Reports are read by machines (JUnit time, trace ts, SVG coordinates):
	 * printf must write '.' whatever setlocale() the CLI made. */
	locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
	if (c_locale == (locale_t) 0)
		return -errno;
	locale_t old = uselocale(c_locale);
	int r = formats[fmt].fn(doc, o ? o : &defaults, &out);
	(void) uselocale(old);
	freelocale(c_locale);
	if (r < 0) {
		strbuf_free(&out);
		return r;
	}
	char *text = strbuf_steal(&out);
	if (!text)
		return -ENOMEM;
	*ret_text = text;
	return 0;
}

int
render_to_stream(const json_t *doc, enum render_format fmt, const struct render_options *o, FILE *f)
{
	_cleanup_free_ char *text = NULL;
	int r = render(doc, fmt, o, &text);
	if (r < 0)
		return r;
	size_t len = strlen(text);
	if (fwrite(text, 1, len, f) != len || fflush(f) != 0)
		return -(errno ? errno : EIO);
	return 0;
}

int
render_to_file(const json_t *doc, enum render_format fmt, const struct render_options *o, const char *path)
{
	_cleanup_free_ char *text = NULL;
	if (!path)
		return -EINVAL;
	/* Through stdio, so it stays in order with what the CLI printed before. */
	if (strcmp(path, "-") == 0)
		return render_to_stream(doc, fmt, o, stdout);
	int r = render(doc, fmt, o, &text);
	if (r < 0)
		return r;
	return text_write_file_atomic(path, text, strlen(text));
}

int
render_color_wanted(const char *mode, int fd)
{
	if (mode && strcmp(mode, "always") == 0)
		return 1;
	if (mode && strcmp(mode, "never") == 0)
		return 0;
	if (mode && strcmp(mode, "auto") != 0)
		return -EINVAL;
	/* no-color.org: any non-empty value disables colour. */
	const char *no_color = getenv("NO_COLOR");
	if (no_color && *no_color)
		return 0;
	const char *term = getenv("TERM");
	if (!term || strcmp(term, "dumb") == 0)
		return 0;
	return isatty(fd) ? 1 : 0;
}

int
render_load(const char *path, json_t **ret_doc)
{
	_cleanup_free_ char *joined = NULL;
	struct stat st;
	if (!path)
		return -EINVAL;
	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		if (asprintf(&joined, "%s/result.json", path) < 0) {
			joined = NULL;
			return -ENOMEM;
		}
		path = joined;
	}
	json_error_t err;
	/* Strings stay as written; duplicates would make "the" value ambiguous. */
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!doc) {
		if (access(path, R_OK) < 0)
			return -errno;
		return -EBADMSG;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		return -EBADMSG;
	}
	*ret_doc = doc;
	return 0;
}
