#pragma once
/* Glue over jansson shared by the CLI, the runner and the renderers. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write JSON to path through a temporary file and rename(2), so a reader never
 * sees a half-written file (full disk, killed writer). Returns 0 or -errno. */
int json_write_file_atomic(const json_t *root, const char *path, size_t flags);
/* Same for any text. */
int text_write_file_atomic(const char *path, const char *data, size_t len);

/* Accessors that tolerate missing keys and wrong types (reports read files written
 * by older or newer versions). */
const char *json_str(const json_t *obj, const char *key, const char *fallback);
int64_t json_int(const json_t *obj, const char *key, int64_t fallback);
double json_num(const json_t *obj, const char *key, double fallback);
/* A non-negative integer field (times in ns, sizes, counts), also from a
 * real: true with *ret_value set, false (ret_value untouched) when the key is
 * missing, null, negative, too large or of another type. */
bool json_ns(const json_t *obj, const char *key, uint64_t *ret_value);
/* A string field with its full length (jansson strings may hold NULs): NULL
 * when missing or not a string; ret_len may be NULL. */
const char *json_strn(const json_t *obj, const char *key, size_t *ret_len);
/* Whether the field is a JSON integer (present, not null, not a real): for
 * "shown only when known" fields. */
bool json_has_int(const json_t *obj, const char *key);
int json_bool(const json_t *obj, const char *key, int fallback);
/* A JSON string from arbitrary bytes: invalid UTF-8 and NULs become U+FFFD. */
json_t *json_string_lossy(const char *data, size_t len);
/* json_integer for uint64 values (clamped to INT64_MAX). */
json_t *json_u64(uint64_t v);

/* Accessors of the probes' snapshot and self-dump readers (appended here so
 * that other additions above merge cleanly). */
/* A uint64 written as a hex string ("0x1f" or "1f", the whole string) or as a
 * non-negative integer; fallback when missing or malformed. */
uint64_t json_hex(const json_t *obj, const char *key, uint64_t fallback);
/* Same, telling why not: 0 and *ret, -ENOENT (missing), -EINVAL (malformed). */
int json_hex_checked(const json_t *obj, const char *key, uint64_t *ret);
/* The first character of a string member, fallback when missing or empty. */
char json_char(const json_t *obj, const char *key, char fallback);
/* strdup of an optional string member: NULL when missing or not a string.
 * On allocation failure returns NULL and clears *ret_ok (left alone
 * otherwise), so a reader of many fields checks once at the end. */
char *json_strdup(const json_t *obj, const char *key, bool *ret_ok);
