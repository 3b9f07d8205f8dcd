/* probes/eventlog_read: the events.ndjson reader on files made here, and on
 * things that are not files (issue 17, item 3): a FIFO with no writer, which
 * must not block; /dev/zero, which must not be read until memory runs out; a
 * directory. Plus the line streaming: lines split across reads, overlong
 * lines skipped without being held, the cap on the sum of lines. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probes/eventlog_read.h"

static char dir[] = "/tmp/fs-eventlog-XXXXXX";

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];
	(void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void) system(cmd);
}

static char *
path_in(const char *name)
{
	char *p = NULL;
	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static char *
write_file(const char *name, const char *data, size_t len)
{
	char *p = path_in(name);
	FILE *f = fopen(p, "we");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	return p;
}

TestSuite(eventlog_read, .init = setup, .fini = teardown, .timeout = 60);

Test(eventlog_read, loads_events_and_names_bad_lines)
{
	static const char text[] = "{\"ev\":\"a\"}\n\nnot json\n[1]\n{\"ev\":\"b\"}\n{\"ev\":";
	char *p = write_file("events.ndjson", text, sizeof(text) - 1);
	struct events_problem problems[4];
	size_t bad = 0;
	int err = 1;
	json_t *events = events_load_checked(p, problems, 4, &bad, &err);
	cr_assert_eq(err, 0);
	cr_assert_eq(json_array_size(events), 2);
	cr_assert_eq(bad, 3);
	cr_assert_eq(problems[0].line, 3);
	cr_assert_eq(problems[1].line, 4);
	cr_assert_str_eq(problems[1].reason, "not a JSON object");
	cr_assert_eq(problems[2].line, 6);
	cr_assert_not_null(strstr(problems[2].reason, "no newline"));
	json_decref(events);
	free(p);
}

Test(eventlog_read, same_answer_as_the_buffer_parser)
{
	/* Lines cross the reader's 64 KiB chunks: the streamed load must give
	 * exactly what parsing the whole buffer gives. */
	size_t cap = 300 * 1024, len = 0;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	for (unsigned i = 0; len + 128 < cap; i++)
		len += (size_t) snprintf(text + len, cap - len, i % 97 == 5 ? "garbage %u\n" : "{\"ev\":\"x\",\"i\":%u}\n", i);
	char *p = write_file("events.ndjson", text, len);
	size_t bad_buf = 0, bad_file = 0;
	json_t *a = events_parse(text, len, NULL, 0, &bad_buf);
	json_t *b = events_load(p, &bad_file);
	cr_assert_gt(json_array_size(a), 1000);
	cr_assert_gt(bad_buf, 0);
	cr_assert_eq(bad_buf, bad_file);
	cr_assert(json_equal(a, b));
	json_decref(a);
	json_decref(b);
	free(text);
	free(p);
}

Test(eventlog_read, overlong_line_is_skipped_and_named)
{
	size_t big = EVENTS_MAX_LINE_BYTES + 4096;
	size_t len = big + 64;
	char *text = malloc(len);
	cr_assert_not_null(text);
	memset(text, 'x', big);
	int tail = snprintf(text + big, len - big, "\n{\"ev\":\"after\"}\n");
	char *p = write_file("events.ndjson", text, big + (size_t) tail);
	struct events_problem problems[2];
	size_t bad = 0;
	int err = 1;
	json_t *events = events_load_checked(p, problems, 2, &bad, &err);
	cr_assert_eq(err, 0);
	cr_assert_eq(bad, 1);
	cr_assert_eq(problems[0].line, 1);
	char want[96];
	(void) snprintf(want, sizeof(want), "line of %zu bytes, longer than %d", big, EVENTS_MAX_LINE_BYTES);
	cr_assert_str_eq(problems[0].reason, want);
	cr_assert_eq(json_array_size(events), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(events, 0), "ev")), "after");
	json_decref(events);
	free(text);
	free(p);
}

Test(eventlog_read, fifo_is_refused_without_blocking)
{
	char *p = path_in("events.ndjson");
	cr_assert_eq(mkfifo(p, 0600), 0);
	/* No writer ever opens it: a blocking open would hang here until the
	 * suite's timeout fails the test. */
	int err = 0;
	size_t bad = 7;
	json_t *events = events_load_checked(p, NULL, 0, &bad, &err);
	cr_assert_eq(err, -EINVAL);
	cr_assert_eq(bad, 0);
	cr_assert_eq(json_array_size(events), 0);
	json_decref(events);
	cr_assert_eq(events_open(p), -EINVAL);
	cr_assert_str_eq(events_error_reason(-EINVAL), "not a regular file (a FIFO or socket)");
	free(p);
}

Test(eventlog_read, dev_zero_behind_a_symlink_is_refused)
{
	char *p = path_in("events.ndjson");
	cr_assert_eq(symlink("/dev/zero", p), 0);
	int err = 0;
	json_t *events = events_load_checked(p, NULL, 0, NULL, &err);
	cr_assert_eq(err, -ENODEV);
	cr_assert_str_eq(events_error_reason(err), "a device, not a file");
	cr_assert_eq(json_array_size(events), 0);
	json_decref(events);
	free(p);
}

Test(eventlog_read, directory_and_missing_file)
{
	cr_assert_eq(events_open(dir), -EISDIR);
	char *p = path_in("missing.ndjson");
	int err = 0;
	json_decref(events_load_checked(p, NULL, 0, NULL, &err));
	cr_assert_eq(err, -ENOENT);
	free(p);
}

struct collected {
	size_t lines;
	size_t bytes;
	bool saw_tail;
};

static int
count_line(const char *line, size_t n, size_t lineno, bool terminated, void *userdata)
{
	struct collected *c = userdata;
	c->lines++;
	c->bytes += n + (terminated ? 1 : 0);
	if (!terminated)
		c->saw_tail = true;
	return 0;
}

Test(eventlog_read, cap_on_the_sum_of_lines)
{
	/* 1000 lines of 10 bytes; a cap of 95 bytes delivers the 9 whole lines
	 * before it and says the file holds more. */
	char text[10 * 1000];
	for (size_t i = 0; i < 1000; i++)
		memcpy(text + 10 * i, "{\"e\":123}\n", 10);
	char *p = write_file("events.ndjson", text, sizeof(text));
	int fd = events_open(p);
	cr_assert_geq(fd, 0);
	struct collected c = { 0 };
	uint64_t consumed = 0;
	cr_assert_eq(events_read_fd(fd, 0, 95, true, count_line, &c, &consumed), -EFBIG);
	cr_assert_eq(c.lines, 9);
	cr_assert_eq(consumed, 90);
	cr_assert(!c.saw_tail);
	/* Exactly the file's size: no more to read, so no error. */
	c = (struct collected){ 0 };
	cr_assert_eq(events_read_fd(fd, 0, sizeof(text), true, count_line, &c, &consumed), 0);
	cr_assert_eq(c.lines, 1000);
	cr_assert_eq(consumed, sizeof(text));
	(void) close(fd);
	free(p);
}

Test(eventlog_read, incremental_read_leaves_the_unfinished_line)
{
	static const char text[] = "{\"a\":1}\n{\"b\":2}\n{\"c\":";
	char *p = write_file("events.ndjson", text, sizeof(text) - 1);
	int fd = events_open(p);
	cr_assert_geq(fd, 0);
	struct collected c = { 0 };
	uint64_t consumed = 0;
	cr_assert_eq(events_read_fd(fd, 0, EVENTS_MAX_FILE_BYTES, false, count_line, &c, &consumed), 0);
	cr_assert_eq(c.lines, 2);
	cr_assert_eq(consumed, 16);
	/* From the offset on, with the tail: the unfinished line alone. */
	c = (struct collected){ 0 };
	cr_assert_eq(events_read_fd(fd, consumed, EVENTS_MAX_FILE_BYTES, true, count_line, &c, NULL), 0);
	cr_assert_eq(c.lines, 1);
	cr_assert(c.saw_tail);
	(void) close(fd);
	free(p);
}

Test(eventlog_read, actor_membership)
{
	static const char text[] = "{\"ev\":\"child_start\",\"pid\":10,\"actor_id\":2,\"actor\":\"leaf\"}\n"
				   "{\"ev\":\"ready\",\"child_id\":0,\"child_pid\":11}\n"
				   "{\"ev\":\"child_start\",\"pid\":12,\"actor_id\":-1}\n";
	json_t *events = events_parse(text, sizeof(text) - 1, NULL, 0, NULL);
	const char *name = NULL;
	cr_assert(events_pid_is_actor(events, 10, &name));
	cr_assert_str_eq(name, "leaf");
	cr_assert(events_pid_is_actor(events, 11, NULL));
	cr_assert(!events_pid_is_actor(events, 12, NULL));
	cr_assert(!events_pid_is_actor(events, 13, NULL));
	json_decref(events);
}
