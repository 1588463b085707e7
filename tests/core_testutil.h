/* SPDX-License-Identifier: MIT */
/*
 * core_testutil.h - helpers shared by the core's unit tests: temporary
 * directories, whole-file I/O, rule and table builders, error checks,
 * and a model of how the original registry reads a table file.
 */
#ifndef CORE_TESTUTIL_H
#define CORE_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include <cmocka.h>
#include <jansson.h>

#include "scope.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A rule over a string literal; the core never writes through target. */
#define WRULE(t, rec) ((struct scope_rule){ .target = (char *)(t), .perm = SCOPE_WRITE, .recursive = (rec) })
#define RRULE(t, rec) ((struct scope_rule){ .target = (char *)(t), .perm = SCOPE_READ, .recursive = (rec) })

/* Temporary directory, removed (recursively) by tu_rmrf. */
char *tu_mkdtemp(void);
void tu_rmrf(const char *path);
/* malloc'd "a/b" */
char *tu_join(const char *a, const char *b);
/* Whole file; NUL-terminated; NULL (errno set) if it cannot be read. */
char *tu_read_file(const char *path, size_t *len);
void tu_write_file(const char *path, const void *buf, size_t len, mode_t mode);
/* Whole file of the original's fixtures directory. */
char *tu_fixture(const char *name, size_t *len);

/* The table serialised, NUL-terminated, malloc'd. */
char *tu_dump(struct scope_table *t);
/* Parse JSON text that must be a valid table. */
#define tu_parse(json) tu_parse_at(json, __FILE__, __LINE__)
struct scope_table *tu_parse_at(const char *json, const char *file, int line);

/* Register a top-level pod owned by this process, must succeed. */
#define tu_register(t, name, rules, n, session) \
	tu_register_at(t, name, rules, n, session, __FILE__, __LINE__)
void tu_register_at(struct scope_table *t, const char *name, const struct scope_rule *rules,
		    size_t n, const char *session, const char *file, int line);
/* Delegate from SPAWNER with this process as placeholder, must succeed. */
#define tu_delegate(t, spawner, name, rules, n) \
	tu_delegate_at(t, spawner, name, rules, n, __FILE__, __LINE__)
void tu_delegate_at(struct scope_table *t, const char *spawner, const char *name,
		    const struct scope_rule *rules, size_t n, const char *file, int line);

/* A call failed with RC == CODE, ERR->kind == KIND, ERR->code == CODE and
 * (if MSG is not NULL) the message contains MSG. */
#define assert_scope_err(rc, err, kind, code, msg) \
	tu_assert_err(rc, &(err), kind, code, msg, __FILE__, __LINE__)
void tu_assert_err(int rc, const struct scope_err *err, enum scope_kind kind, int code,
		   const char *msg, const char *file, int line);
/* A call succeeded (prints the core's message otherwise). */
#define assert_scope_ok(rc, err) tu_assert_ok(rc, &(err), __FILE__, __LINE__)
void tu_assert_ok(int rc, const struct scope_err *err, const char *file, int line);

/*
 * Open PATH with a fresh handle, lock, dump the table, unlock, free.
 * Returns the dump (malloc'd) or NULL with *rc (and *err) set.
 */
char *tu_load(const char *path, int *rc, struct scope_err *err);

/*
 * How the original reads a table file: a blank file (Rust's trim()) is an
 * empty table, anything else must be JSON of the right shape (unknown
 * fields ignored, `recursive` defaults to true, a missing option is null).
 * Returns the table as the original sees it, reduced to the fields it
 * knows, or NULL when the original could not read it.
 */
json_t *tu_original_view(const char *buf, size_t len);

/* Seconds since an arbitrary point, for logging only. */
double tu_now(void);

#endif /* CORE_TESTUTIL_H */
