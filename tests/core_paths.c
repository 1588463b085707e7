/* SPDX-License-Identifier: MIT */
/*
 * Paths and rule relations, table-driven.  Targets written by others may
 * be non-normalised; they must compare exactly as the original's
 * std::path::Path does: component-wise, a leading "." kept as CurDir, a
 * later "." and repeated or trailing separators dropped, ".." an ordinary
 * component, "/" without a parent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_testutil.h"

struct path_case {
	const char *a, *b;
	bool want;
};

static void run_path_cases(const char *what, bool (*fn)(const char *, const char *),
			   const struct path_case *cases, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		bool got = fn(cases[i].a, cases[i].b);

		if (got != cases[i].want) {
			print_error("%s(\"%s\", \"%s\") = %d, want %d\n", what, cases[i].a, cases[i].b,
				    got, cases[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void path_eq(void **state)
{
	static const struct path_case cases[] = {
		{ "/src", "/src", true },
		{ "/src", "/src/", true },
		{ "/src", "//src//", true },
		{ "/src/core", "//src//core", true },
		{ "/src/core", "/src/./core", true },
		{ "/src/core", "/src/core/.", true },
		{ "/src", "/src/.", true },
		{ "/", "//", true },
		{ "/", "/.", true },
		{ "/", "/./", true },
		{ "/src", "src", false },
		{ "src", "./src", false },
		{ "./src", ".//src", true },
		{ "./src", "./src/", true },
		{ "./src", "././src", true },
		{ ".", "./", true },
		{ ".", "", false },
		{ "", "", true },
		{ "/src/..", "/", false },
		{ "/a/../b", "/b", false },
		{ "/a/..", "/a/..", true },
		{ "..", ".", false },
		{ "/src", "/srcx", false },
		{ "src/a", "src//a/", true },
		{ "/a/b", "/a/b/c", false },
		{ "/a/b/c", "/a/b", false },
		{ "/a b", "/a b/", true },
	};

	(void)state;
	run_path_cases("scope_path_eq", scope_path_eq, cases, ARRAY_SIZE(cases));
}

static void path_starts_with(void **state)
{
	static const struct path_case cases[] = {
		{ "/src/core", "/src", true },
		{ "/src", "/src", true },
		{ "/srcx", "/src", false },
		{ "/src", "/srcx", false },
		{ "/src", "/src/core", false },
		{ "/src/core", "/src/", true },
		{ "//src//core", "/src", true },
		{ "/src/core", "//src//", true },
		{ "/src/./core", "/src/core", true },
		{ "/src/./", "/src", true },
		{ "/src/core", "/", true },
		{ "/", "/", true },
		{ "/", "/src", false },
		{ "src/core", "src", true },
		{ "src/core", "/src", false },
		{ "/src/core", "src", false },
		{ "./src/core", "./src", true },
		{ "./src/core", "src", false },
		{ "src/core", "./src", false },
		{ "./src", ".", true },
		{ "/src", "", true },
		{ "src", "", true },
		{ "", "", true },
		{ "", "/", false },
		{ "/a/../b", "/a", true },
		{ "/a/../b", "/a/..", true },
		{ "/b", "/a/..", false },
		{ "/src/core", "/src/co", false },
		{ "/src/core", "/sr", false },
	};

	(void)state;
	run_path_cases("scope_path_starts_with", scope_path_starts_with, cases,
		       ARRAY_SIZE(cases));
}

static void path_parent_is(void **state)
{
	static const struct path_case cases[] = {
		{ "/src/core", "/src", true },
		{ "/src/core", "/src/", true },
		{ "/src/core", "//src", true },
		{ "/src/core/", "/src", true },
		{ "/src/./core", "/src", true },
		{ "/src/core/.", "/src", true },
		{ "//src//core//", "/src", true },
		{ "/src", "/", true },
		{ "/src", "", false },
		{ "/", "/", false },
		{ "/", "", false },
		{ "//", "/", false },
		{ "", "", false },
		{ "/src/core/x", "/src", false },
		{ "/src/core", "/src/core", false },
		{ "/srcx/a", "/src", false },
		{ "src", "", true },
		{ "src", ".", false },
		{ "src", "/", false },
		{ "./src", ".", true },
		{ "./src", "", false },
		{ ".", "", true },
		{ "/a/..", "/a", true },
		{ "/..", "/", true },
		{ "a/b", "a", true },
		{ "a/b", "./a", false },
	};

	(void)state;
	run_path_cases("scope_path_parent_is", scope_path_parent_is, cases, ARRAY_SIZE(cases));
}

/* ------------------------------------------------------------------ */

struct rule_case {
	struct scope_rule a, b;
	bool want;
};

static void show_rule(char *out, size_t size, const struct scope_rule *r)
{
	snprintf(out, size, "%s %s \"%s\"", r->perm == SCOPE_WRITE ? "write" : "read",
		 r->recursive ? "recursive" : "shallow", r->target);
}

#define W(t) WRULE(t, true)
#define WS(t) WRULE(t, false)
#define R(t) RRULE(t, true)
#define RS(t) RRULE(t, false)

/* Overlap is symmetric: every case runs in both orders. */
static void rules_overlap_table(void **state)
{
	static const struct rule_case cases[] = {
		/* recursive / recursive */
		{ W("/src"), W("/src/core"), true },
		{ W("/src"), W("/src"), true },
		{ W("/src"), W("/srcx"), false },
		{ W("/src"), W("/docs"), false },
		{ W("/"), W("/anything/deep"), true },
		{ W("/"), W("/"), true },
		{ W("/src/"), W("//src//core"), true },
		{ W("/src/./core"), W("/src/core/x"), true },
		{ W("src"), W("/src"), false },
		{ W("./src"), W("src/a"), false },
		{ W("./src"), W("./src/a"), true },
		{ W("/a/.."), W("/"), true },
		{ W("/a/.."), W("/b"), false },
		/* recursive / shallow */
		{ W("/src"), WS("/src"), true },
		{ W("/src"), WS("/src/core"), true },
		{ W("/src"), WS("/src/core/deep"), true },
		{ W("/src/core"), WS("/src"), true },
		{ W("/src/core/x"), WS("/src"), false },
		{ W("/src"), WS("/srcx"), false },
		{ W("/srcx/a"), WS("/src"), false },
		{ W("/src/a"), WS("/srcx"), false },
		{ W("/"), WS("/x"), true },
		{ W("/x"), WS("/"), true },
		{ W("/x/y"), WS("/"), false },
		{ W("/src/core/"), WS("/src/"), true },
		{ W("/src/./core"), WS("//src"), true },
		{ W("src"), WS("/"), false },
		{ W("./src"), WS("."), true },
		{ W("src"), WS("."), false },
		{ W("src"), WS(""), true },
		/* shallow / shallow */
		{ WS("/src"), WS("/src"), true },
		{ WS("/src"), WS("/src/"), true },
		{ WS("/src"), WS("/src/x"), true },
		{ WS("/src"), WS("/src/x/y"), false },
		{ WS("/src/x"), WS("/src/y"), false },
		{ WS("/"), WS("/a"), true },
		{ WS("/"), WS("/"), true },
		{ WS("/"), WS("/a/b"), false },
		{ WS("/src"), WS("/srcx"), false },
		{ WS("/src"), WS("/srcx/a"), false },
		{ WS("/src/./x"), WS("/src"), true },
		{ WS("/src/x/.."), WS("/src/x"), true },
		/* permission plays no part */
		{ R("/src"), W("/src/core"), true },
		{ RS("/src"), R("/src/a/b"), false },
		{ RS("/src"), RS("/src/a"), true },
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool ab = scope_rules_overlap(&cases[i].a, &cases[i].b);
		bool ba = scope_rules_overlap(&cases[i].b, &cases[i].a);

		if (ab != cases[i].want || ba != cases[i].want) {
			char x[256], y[256];

			show_rule(x, sizeof(x), &cases[i].a);
			show_rule(y, sizeof(y), &cases[i].b);
			print_error("overlap(%s, %s) = %d, reversed %d, want %d\n", x, y, ab, ba,
				    cases[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void covers_fully_table(void **state)
{
	static const struct rule_case cases[] = {
		{ W("/src"), W("/src/core"), true },
		{ W("/src"), WS("/src/core"), true },
		{ W("/src"), W("/src"), true },
		{ W("/src"), WS("/src"), true },
		{ W("/src"), W("/srcx"), false },
		{ W("/src"), W("/"), false },
		{ W("/src/core"), W("/src"), false },
		{ W("/src/core"), WS("/src"), false },
		/* permission: read < write */
		{ R("/src"), W("/src/core"), false },
		{ R("/src"), R("/src/core"), true },
		{ W("/src"), R("/src/core"), true },
		{ R("/src"), WS("/src"), false },
		/* shallow covers only the same shallow target */
		{ WS("/src"), WS("/src"), true },
		{ WS("/src"), RS("/src"), true },
		{ RS("/src"), WS("/src"), false },
		{ WS("/src"), W("/src"), false },
		{ WS("/src"), WS("/src/x"), false },
		{ WS("/src"), W("/src/x"), false },
		{ WS("/src/x"), WS("/src"), false },
		/* root */
		{ W("/"), W("/any/thing"), true },
		{ W("/"), WS("/"), true },
		{ WS("/"), WS("/a"), false },
		{ W("/"), W("src"), false },
		/* foreign, non-normalised targets */
		{ W("/src/"), W("//src//core"), true },
		{ WS("/src/"), WS("/src"), true },
		{ WS("/src/."), WS("/src"), true },
		{ WS("/src"), WS("//src/"), true },
		{ W("./src"), W("./src/a"), true },
		{ W("./src"), W("src/a"), false },
		{ W("src"), W("./src/a"), false },
		{ W("/a/.."), W("/a/../b"), true },
		{ W("/a/.."), W("/b"), false },
		{ W("/src"), W("/src/./core"), true },
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool got = scope_covers_fully(&cases[i].a, &cases[i].b);

		if (got != cases[i].want) {
			char x[256], y[256];

			show_rule(x, sizeof(x), &cases[i].a);
			show_rule(y, sizeof(y), &cases[i].b);
			print_error("covers_fully(%s, %s) = %d, want %d\n", x, y, got,
				    cases[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The relations feed the table's checks: a foreign, non-normalised target
 * in the file conflicts as the original would decide. */
static void foreign_targets_in_checks(void **state)
{
	struct scope_table *t = tu_parse(
		"{\"allocations\":["
		"{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
		"[{\"target\":\"//src/./\",\"permission\":\"write\",\"recursive\":true}],"
		"\"delegated_from\":null,\"session_id\":null},"
		"{\"pod_name\":\"rel\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
		"[{\"target\":\"docs\",\"permission\":\"write\",\"recursive\":true}],"
		"\"delegated_from\":null,\"session_id\":null}]}");
	struct scope_rule core = W("/src/core"), srcx = W("/srcx"), docs = W("/docs");
	struct scope_rule reldocs = W("docs/x");

	(void)state;
	assert_string_equal(scope_conflict_owner(t, &core, NULL), "a");
	assert_null(scope_conflict_owner(t, &srcx, NULL));
	assert_null(scope_conflict_owner(t, &docs, NULL));
	assert_string_equal(scope_conflict_owner(t, &reldocs, NULL), "rel");
	assert_true(scope_within_effective_write(t, "a", &core));
	assert_false(scope_within_effective_write(t, "a", &srcx));
	scope_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(path_eq),
		cmocka_unit_test(path_starts_with),
		cmocka_unit_test(path_parent_is),
		cmocka_unit_test(rules_overlap_table),
		cmocka_unit_test(covers_fully_table),
		cmocka_unit_test(foreign_targets_in_checks),
	};

	return cmocka_run_group_tests_name("core_paths", tests, NULL, NULL);
}
