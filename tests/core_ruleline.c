/* SPDX-License-Identifier: MIT */
/*
 * The "allow" file's rule lines, pod names, session ids.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_testutil.h"

static void parse_ok(const char *text, size_t len, struct scope_rule **rules, size_t *n)
{
	struct scope_err err = { 0 };
	int rc = scope_rules_parse(text, len, rules, n, &err);

	if (rc != 0) {
		print_error("parse of \"%.*s\": %d %s\n", (int)len, text, rc, err.msg);
		fail();
	}
}

static void parse_format_round_trip(void **state)
{
	static const char text[] = "write recursive /home/u/proj/src\n"
				   "read shallow /home/u/proj\n"
				   "write shallow /\n"
				   "read recursive /a b/c d\n"
				   "write recursive /srv/\xc3\xbc\n";
	struct scope_rule *rules = NULL;
	size_t n = 0, len = 0;
	char *out;

	(void)state;
	parse_ok(text, strlen(text), &rules, &n);
	assert_int_equal(n, 5);
	assert_string_equal(rules[0].target, "/home/u/proj/src");
	assert_int_equal(rules[0].perm, SCOPE_WRITE);
	assert_true(rules[0].recursive);
	assert_string_equal(rules[1].target, "/home/u/proj");
	assert_int_equal(rules[1].perm, SCOPE_READ);
	assert_false(rules[1].recursive);
	assert_string_equal(rules[2].target, "/");
	assert_false(rules[2].recursive);
	assert_string_equal(rules[3].target, "/a b/c d");
	assert_string_equal(rules[4].target, "/srv/\xc3\xbc");
	out = scope_rules_format(rules, n, &len);
	assert_non_null(out);
	assert_int_equal(len, strlen(text));
	assert_string_equal(out, text);
	free(out);
	scope_rules_free(rules, n);
}

static void parse_without_final_newline(void **state)
{
	static const char text[] = "write recursive /a\nread shallow /b";
	struct scope_rule *rules = NULL;
	size_t n = 0;

	(void)state;
	parse_ok(text, strlen(text), &rules, &n);
	assert_int_equal(n, 2);
	assert_string_equal(rules[1].target, "/b");
	scope_rules_free(rules, n);
	/* LEN bounds the text, not a NUL */
	parse_ok("write recursive /abc", 18, &rules, &n);
	assert_int_equal(n, 1);
	assert_string_equal(rules[0].target, "/a");
	scope_rules_free(rules, n);
}

static void parse_empty_set(void **state)
{
	struct scope_rule *rules = NULL;
	size_t n = 99;
	char *out;
	size_t len = 99;

	(void)state;
	parse_ok("\n", 1, &rules, &n);
	assert_int_equal(n, 0);
	scope_rules_free(rules, n);
	n = 99;
	rules = NULL;
	parse_ok("", 0, &rules, &n);
	assert_int_equal(n, 0);
	scope_rules_free(rules, n);
	out = scope_rules_format(NULL, 0, &len);
	assert_non_null(out);
	assert_int_equal(len, 0);
	assert_string_equal(out, "");
	free(out);
}

static void escapes(void **state)
{
	struct scope_rule r[] = {
		WRULE("/weird\npath\\x", true),
		RRULE("/t\tab/\x01\x1f\x7f/end", false),
		WRULE("/sp ace/\xc3\xa9", true),
	};
	static const char want[] = "write recursive /weird\\012path\\134x\n"
				   "read shallow /t\\011ab/\\001\\037\\177/end\n"
				   "write recursive /sp ace/\xc3\xa9\n";
	struct scope_rule *back = NULL;
	size_t n = 0, len = 0;
	char *out;

	(void)state;
	out = scope_rules_format(r, ARRAY_SIZE(r), &len);
	assert_non_null(out);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	parse_ok(out, len, &back, &n);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(back[i].target, r[i].target);
		assert_int_equal(back[i].perm, r[i].perm);
		assert_int_equal(back[i].recursive, r[i].recursive);
	}
	scope_rules_free(back, n);
	free(out);

	/* input accepts any octal escape, also of bytes that need none */
	parse_ok("write recursive /a\\040b\\057c\n", 29, &back, &n);
	assert_int_equal(n, 1);
	assert_string_equal(back[0].target, "/a b/c");
	scope_rules_free(back, n);
}

static void escape_path_like_snprintf(void **state)
{
	char buf[64];
	size_t n;

	(void)state;
	n = scope_escape_path("/a\nb\\", buf, sizeof(buf));
	assert_int_equal(n, 11);
	assert_string_equal(buf, "/a\\012b\\134");
	memset(buf, 'Z', sizeof(buf));
	n = scope_escape_path("/a\nb", buf, 4);
	assert_int_equal(n, 7);
	assert_int_equal(buf[3], '\0');
	assert_memory_equal(buf, "/a\\", 3);
	assert_int_equal(buf[4], 'Z');
	n = scope_escape_path("/plain", NULL, 0);
	assert_int_equal(n, 6);
}

struct bad_case {
	const char *line;
	const char *why;
};

static void malformed_lines(void **state)
{
	static const struct bad_case cases[] = {
		{ "exec recursive /a", "bad permission" },
		{ "Write recursive /a", "permission is lower case" },
		{ "write deep /a", "bad recursion" },
		{ "write Recursive /a", "recursion is lower case" },
		{ "write recursive src", "relative target" },
		{ "write recursive ./src", "relative target" },
		{ "write recursive /a/./b", "\".\" component" },
		{ "write recursive /a/.", "\".\" component" },
		{ "write recursive /.", "\".\" component" },
		{ "write recursive /a/../b", "\"..\" component" },
		{ "write recursive /..", "\"..\" component" },
		{ "write recursive /a//b", "empty component" },
		{ "write recursive //a", "empty component" },
		{ "write recursive /a/", "trailing slash" },
		{ "write recursive /a\\9bc", "bad escape" },
		{ "write recursive /a\\01", "short escape" },
		{ "write recursive /a\\", "lone backslash" },
		{ "write recursive /a\\400", "escape over 0377" },
		{ "write recursive /a\\000b", "NUL byte" },
		{ "write recursive /a\\057", "an escaped slash is still a slash: trailing" },
		{ "write recursive", "no target" },
		{ "write recursive ", "empty target" },
		{ "write", "no recursion" },
		{ "write  recursive /a", "two spaces" },
		{ " write recursive /a", "leading space" },
		{ "write\trecursive /a", "tab separator" },
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text, lineno[16];
		struct scope_rule *rules = NULL;
		size_t n = 0;
		struct scope_err err = { 0 };
		int rc;

		/* the bad line is the second one */
		if (asprintf(&text, "read shallow /ok\n%s\nwrite recursive /fine\n",
			     cases[i].line) < 0)
			abort();
		rc = scope_rules_parse(text, strlen(text), &rules, &n, &err);
		snprintf(lineno, sizeof(lineno), "line 2");
		if (rc != -EINVAL || err.kind != SCOPE_EINVAL || err.code != -EINVAL ||
		    (!strstr(err.msg, lineno) && !strstr(err.msg, cases[i].line))) {
			print_error("\"%s\" (%s): rc %d kind %d msg \"%s\"\n", cases[i].line,
				    cases[i].why, rc, err.kind, err.msg);
			bad++;
			if (rc == 0)
				scope_rules_free(rules, n);
		}
		free(text);
	}
	assert_int_equal(bad, 0);
}

static void target_valid(void **state)
{
	static const struct {
		const char *t;
		bool ok;
	} cases[] = {
		{ "/", true },	      { "/a", true },	    { "/a/b", true },  { "/a/.b", true },
		{ "/...", true },     { "/a b", true },	    { "/a..", true },  { "", false },
		{ "a", false },	      { "./a", false },	    { "/a/", false },  { "//", false },
		{ "/a//b", false },   { "/.", false },	    { "/..", false },  { "/a/./b", false },
		{ "/a/../b", false }, { "/a/..", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (scope_target_valid(cases[i].t) != cases[i].ok) {
			print_error("scope_target_valid(\"%s\") != %d\n", cases[i].t, cases[i].ok);
			fail();
		}
	}
}

static void rules_dup(void **state)
{
	struct scope_rule r[] = { WRULE("/a", true), RRULE("/b", false) };
	struct scope_rule *d = NULL;

	(void)state;
	assert_int_equal(scope_rules_dup(r, 2, &d), 0);
	assert_non_null(d);
	assert_ptr_not_equal(d[0].target, r[0].target);
	assert_string_equal(d[0].target, "/a");
	assert_string_equal(d[1].target, "/b");
	assert_int_equal(d[1].perm, SCOPE_READ);
	assert_false(d[1].recursive);
	scope_rules_free(d, 2);
}

/* ------------------------------------------------------------------ */

static void name_valid(void **state)
{
	char long_name[300];

	(void)state;
	memset(long_name, 'n', sizeof(long_name));
	assert_true(scope_name_valid("a", 1));
	assert_true(scope_name_valid(long_name, 255));
	assert_false(scope_name_valid(long_name, 256));
	assert_false(scope_name_valid("", 0));
	assert_false(scope_name_valid(".", 1));
	assert_false(scope_name_valid("..", 2));
	assert_false(scope_name_valid(".hidden", 7));
	assert_false(scope_name_valid(".by-session", 11));
	assert_false(scope_name_valid("a/b", 3));
	assert_false(scope_name_valid("/", 1));
	assert_false(scope_name_valid("a\0b", 3));
	assert_true(scope_name_valid("a.", 2));
	assert_true(scope_name_valid("a..b", 4));
	assert_true(scope_name_valid("solo pod \xc3\xbc", 11));
	/* the names of a pod's files */
	assert_false(scope_name_valid("allow", 5));
	assert_false(scope_name_valid("pid", 3));
	assert_false(scope_name_valid("session", 7));
	assert_false(scope_name_valid("socket", 6));
	assert_false(scope_name_valid("delegated_from", 14));
	assert_true(scope_name_valid("allowx", 6));
	assert_true(scope_name_valid("Allow", 5));
	assert_true(scope_name_valid("pi", 2));
	/* LEN, not a NUL, ends the name */
	assert_true(scope_name_valid("pidx", 3) == false);
	assert_true(scope_name_valid("abc/", 3));
}

static void session_valid(void **state)
{
	(void)state;
	assert_true(scope_session_valid("0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"));
	assert_true(scope_session_valid("0192F3C4-5B6A-7C8D-9E0F-A1B2C3D4E5F6"));
	assert_true(scope_session_valid("00000000-0000-0000-0000-000000000000"));
	assert_false(scope_session_valid(""));
	assert_false(scope_session_valid("0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f"));
	assert_false(scope_session_valid("0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f66"));
	assert_false(scope_session_valid("0192f3c45-b6a-7c8d-9e0f-a1b2c3d4e5f6"));
	assert_false(scope_session_valid("0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5g6"));
	assert_false(scope_session_valid("0192f3c4_5b6a_7c8d_9e0f_a1b2c3d4e5f6"));
	assert_false(scope_session_valid("0192f3c45b6a7c8d9e0fa1b2c3d4e5f6"));
	assert_false(scope_session_valid("{0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6}"));
	assert_false(scope_session_valid(" 0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"));
	assert_false(scope_session_valid("0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6\n"));
}

static uint64_t uuid_ms(const char *u)
{
	char hex[13];

	memcpy(hex, u, 8);
	memcpy(hex + 8, u + 9, 4);
	hex[12] = '\0';
	return strtoull(hex, NULL, 16);
}

static void uuid_v7(void **state)
{
	char a[37], b[37];
	struct timespec ts;
	uint64_t now;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	scope_uuid_v7(a);
	scope_uuid_v7(b);
	for (int k = 0; k < 2; k++) {
		const char *u = k ? b : a;

		assert_int_equal(strlen(u), 36);
		assert_true(scope_session_valid(u));
		for (int i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				assert_int_equal(u[i], '-');
			else
				assert_non_null(strchr("0123456789abcdef", u[i]));
		}
		assert_int_equal(u[14], '7');			 /* version */
		assert_non_null(strchr("89ab", u[19]));		 /* variant 10xx */
		assert_in_range(uuid_ms(u), now - 5000, now + 5000); /* unix ms */
	}
	assert_string_not_equal(a, b);
	/* time-ordered: the later one sorts after (at least by its time) */
	assert_true(uuid_ms(a) <= uuid_ms(b));
	/* many in a row stay distinct and never go back in time */
	for (int i = 0; i < 1000; i++) {
		memcpy(a, b, sizeof(a));
		scope_uuid_v7(b);
		assert_string_not_equal(a, b);
		assert_true(uuid_ms(a) <= uuid_ms(b));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_format_round_trip),
		cmocka_unit_test(parse_without_final_newline),
		cmocka_unit_test(parse_empty_set),
		cmocka_unit_test(escapes),
		cmocka_unit_test(escape_path_like_snprintf),
		cmocka_unit_test(malformed_lines),
		cmocka_unit_test(target_valid),
		cmocka_unit_test(rules_dup),
		cmocka_unit_test(name_valid),
		cmocka_unit_test(session_valid),
		cmocka_unit_test(uuid_v7),
	};

	return cmocka_run_group_tests_name("core_ruleline", tests, NULL, NULL);
}
