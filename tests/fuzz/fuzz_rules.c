/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rules.c - the rule-line format of the mount's "allow" file.
 *
 * Input: the bytes written to "allow".  Properties checked (abort on
 * failure):
 *  - scope_rules_parse never crashes, leaks or reads out of bounds, and a
 *    refusal fills the error;
 *  - every parsed target is an absolute normalised path;
 *  - scope_rules_format's text parses again to the same rules, rule by rule,
 *    and formats to the same text;
 *  - the rules, stored in a table as the mount stores them
 *    (scope_set_rules), make a table file that reads back with the same
 *    rules (what the mount accepts must not corrupt scope.lock).
 */
#include <string.h>

#include "fuzz_common.h"

static const char base_table[] =
	"{\n  \"allocations\": [\n    {\n      \"pod_name\": \"p\",\n      \"pid\": 1,\n"
	"      \"socket\": \"\",\n      \"scope_allow\": [],\n      \"delegated_from\": null,\n"
	"      \"session_id\": \"0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6\"\n    }\n  ]\n}";

static void check_same(const struct scope_rule *a, size_t na, const struct scope_rule *b,
		       size_t nb, const char *what)
{
	FUZZ_CHECK(na == nb, "%s: %zu rules, then %zu", what, na, nb);
	for (size_t i = 0; i < na; i++)
		FUZZ_CHECK(a[i].perm == b[i].perm && a[i].recursive == b[i].recursive &&
				   strcmp(a[i].target, b[i].target) == 0,
			   "%s: rule %zu differs: %d %d `%s` vs %d %d `%s`", what, i, a[i].perm,
			   a[i].recursive, a[i].target, b[i].perm, b[i].recursive, b[i].target);
}

static void check_in_table(const struct scope_rule *rules, size_t nrules)
{
	struct scope_table *t = NULL, *t2 = NULL;
	struct scope_err err = { 0 };
	char *d;
	size_t dl;
	int rc;

	FUZZ_CHECK(scope_table_parse(base_table, sizeof(base_table) - 1, "base", &t, &err) == 0,
		   "base table: %s", err.msg);
	/* a lone top-level pod: nothing to conflict with */
	rc = scope_set_rules(t, "p", rules, nrules, &err);
	FUZZ_CHECK(rc == 0, "set_rules refused: %s", err.msg);
	FUZZ_CHECK(scope_table_dump(t, &d, &dl) == 0, "dump failed");
	rc = scope_table_parse(d, dl, "dump", &t2, &err);
	FUZZ_CHECK(rc == 0, "the table holding the rules does not read back: %s\n%.*s", err.msg,
		   (int)dl, d);
	FUZZ_CHECK(scope_table_count(t2) == 1, "entries lost");
	check_same(rules, nrules, scope_table_at(t2, 0)->rules, scope_table_at(t2, 0)->nrules,
		   "table round trip");
	free(d);
	scope_table_free(t2);
	scope_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scope_rule *r1 = NULL, *r2 = NULL;
	size_t n1 = 0, n2 = 0, l1, l2;
	struct scope_err err = { 0 };
	char *f1, *f2;
	int rc;

	rc = scope_rules_parse((const char *)data, size, &r1, &n1, &err);
	if (rc < 0) {
		FUZZ_CHECK(err.kind != SCOPE_OK && err.code == rc &&
				   memchr(err.msg, '\0', sizeof(err.msg)) && err.msg[0],
			   "failure without an error");
		return 0;
	}
	FUZZ_CHECK(r1 != NULL, "no rule array");
	for (size_t i = 0; i < n1; i++) {
		FUZZ_CHECK(scope_target_valid(r1[i].target), "rule %zu: target `%s` accepted", i,
			   r1[i].target);
		FUZZ_CHECK(r1[i].perm == SCOPE_READ || r1[i].perm == SCOPE_WRITE, "permission %d",
			   r1[i].perm);
	}

	f1 = scope_rules_format(r1, n1, &l1);
	FUZZ_CHECK(f1 != NULL, "format failed");
	FUZZ_CHECK(strlen(f1) == l1, "formatted text holds a NUL");
	rc = scope_rules_parse(f1, l1, &r2, &n2, &err);
	FUZZ_CHECK(rc == 0, "formatted text does not parse: %s\n%s", err.msg, f1);
	check_same(r1, n1, r2, n2, "format round trip");
	f2 = scope_rules_format(r2, n2, &l2);
	FUZZ_CHECK(f2 && l2 == l1 && memcmp(f1, f2, l1) == 0, "format is not stable");

	for (size_t i = 0; i < n1; i++)
		FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)r1[i].target, strlen(r1[i].target)),
			   "a parsed target is not UTF-8: the table could not hold it");
	check_in_table(r1, n1);

	free(f1);
	free(f2);
	scope_rules_free(r1, n1);
	scope_rules_free(r2, n2);
	return 0;
}
