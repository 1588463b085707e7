/* SPDX-License-Identifier: MIT */
/*
 * fuzz_name.c - pod names and session ids.
 *
 * Input: any bytes, taken as a pod name (with its length, as the mount
 * passes a directory name) and, NUL-terminated, as a session id.
 * Properties checked (abort on failure), both ways, from scope.h:
 *  - scope_name_valid: 1-255 bytes, no '/', no NUL, not "." or "..", not
 *    starting with '.', not a pod file's name (allow, pid, session, socket,
 *    delegated_from);
 *  - a valid name can be registered, and the table holding it reads back
 *    with that name (a name the mount accepts must not corrupt scope.lock);
 *  - scope_session_valid: exactly 36 characters, '-' at 8, 13, 18, 23, hex
 *    digits (any case) elsewhere.
 */
#include <string.h>

#include "fuzz_common.h"

#define SESSION "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"

static const char *const pod_files[] = { "allow", "pid", "session", "socket",
					 "delegated_from" };

static bool name_expected(const char *s, size_t len)
{
	if (len < 1 || len > 255)
		return false;
	if (memchr(s, '/', len) || memchr(s, '\0', len))
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	if (s[0] == '.')
		return false;
	if (!fuzz_utf8_valid((const unsigned char *)s, len)) /* the table is JSON */
		return false;
	for (size_t i = 0; i < sizeof(pod_files) / sizeof(pod_files[0]); i++)
		if (strlen(pod_files[i]) == len && memcmp(pod_files[i], s, len) == 0)
			return false;
	return true;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool session_expected(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex(s[i])) {
			return false;
		}
	}
	return true;
}

static void check_registered(const char *name)
{
	static const char empty[] = "{\n  \"allocations\": []\n}";
	struct scope_spec spec = { .name = name, .pid = 1, .pid_start = 1, .session = SESSION };
	struct scope_table *t = NULL, *t2 = NULL;
	struct scope_err err = { 0 };
	char *d;
	size_t dl;
	int rc;

	FUZZ_CHECK(scope_table_parse(empty, sizeof(empty) - 1, "empty", &t, &err) == 0, "%s",
		   err.msg);
	rc = scope_register(t, &spec, &err);
	FUZZ_CHECK(rc == 0, "register refused a valid name: %s", err.msg);
	FUZZ_CHECK(scope_find(t, name) == scope_table_at(t, 0), "registered name not found");
	FUZZ_CHECK(scope_table_dump(t, &d, &dl) == 0, "dump failed");
	rc = scope_table_parse(d, dl, "dump", &t2, &err);
	FUZZ_CHECK(rc == 0, "a table holding a valid name does not read back: %s", err.msg);
	FUZZ_CHECK(scope_table_count(t2) == 1 && strcmp(scope_table_at(t2, 0)->name, name) == 0,
		   "name changed in the round trip");
	free(d);
	scope_table_free(t2);
	scope_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	bool v;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	/* the name: exactly SIZE bytes, in a buffer of that size (ASan sees any
	 * read past it) */
	v = scope_name_valid((const char *)data, size);
	FUZZ_CHECK(v == name_expected((const char *)data, size),
		   "scope_name_valid = %d for %zu bytes `%.*s`", v, size, (int)size, s);
	if (v)
		check_registered(s);

	v = scope_session_valid(s);
	FUZZ_CHECK(v == session_expected(s), "scope_session_valid = %d for `%s`", v, s);
	if (v) {
		char id[37];

		scope_uuid_v7(id);
		FUZZ_CHECK(scope_session_valid(id), "fresh uuid `%s` refused", id);
	}
	free(s);
	return 0;
}
