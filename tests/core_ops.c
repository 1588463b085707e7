/* SPDX-License-Identifier: MIT */
/*
 * Changes beyond the original's own operations: replacing a pod's rules,
 * its socket and its session.  Every refusal leaves the table as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_testutil.h"

#define SID_A "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"
#define SID_B "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f7"

#define W(t) WRULE(t, true)
#define WS(t) WRULE(t, false)
#define R(t) RRULE(t, true)

/*
 * a (top-level): write /src, write /lib
 *   b (from a): write /src/core
 *     d (from b): write /src/core/x
 *   r (from a): read /src/docs
 * c (top-level): write /other
 *   c1 (from c): write /other/x
 */
static struct scope_table *tree(void)
{
	struct scope_table *t = scope_table_new();
	struct scope_rule a[] = { W("/src"), W("/lib") }, b = W("/src/core"),
			  d = W("/src/core/x"), r = R("/src/docs"), c = W("/other"),
			  c1 = W("/other/x");

	assert_non_null(t);
	tu_register(t, "a", a, 2, SID_A);
	tu_delegate(t, "a", "b", &b, 1);
	tu_delegate(t, "b", "d", &d, 1);
	tu_delegate(t, "a", "r", &r, 1);
	tu_register(t, "c", &c, 1, SID_B);
	tu_delegate(t, "c", "c1", &c1, 1);
	return t;
}

struct snapshot {
	char *dump;
	size_t nchanges;
	uint64_t gen[16];
};

static void snap(struct scope_table *t, struct snapshot *s)
{
	const struct scope_change *ch;

	s->dump = tu_dump(t);
	s->nchanges = scope_table_changes(t, &ch);
	for (size_t i = 0; i < scope_table_count(t) && i < 16; i++)
		s->gen[i] = scope_table_at(t, i)->gen;
}

#define assert_unchanged(t, s) assert_unchanged_at(t, s, __FILE__, __LINE__)
static void assert_unchanged_at(struct scope_table *t, struct snapshot *s, const char *file,
				int line)
{
	const struct scope_change *ch;
	char *now = tu_dump(t);

	if (strcmp(now, s->dump) || scope_table_changes(t, &ch) != s->nchanges) {
		print_error("%s:%d: a refused change altered the table:\n%s\n", file, line, now);
		_fail(file, line);
	}
	for (size_t i = 0; i < scope_table_count(t) && i < 16; i++)
		if (scope_table_at(t, i)->gen != s->gen[i]) {
			print_error("%s:%d: gen of %s changed\n", file, line,
				    scope_table_at(t, i)->name);
			_fail(file, line);
		}
	free(now);
	free(s->dump);
	s->dump = NULL;
}

static void assert_targets(const struct scope_alloc *a, const char *const *targets, size_t n)
{
	assert_int_equal(a->nrules, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(a->rules[i].target, targets[i]);
}

/* ------------------------------------------------------------------ */

static void set_rules_top_level_own_subtree(void **state)
{
	struct scope_table *t = tree();
	struct scope_rule rules[] = { W("/src"), W("/lib"), W("/new"), WS("/shallow") };
	struct scope_err err = { 0 };
	struct scope_alloc *a = scope_find(t, "a");
	uint64_t gen = a->gen;
	int rc;

	(void)state;
	/* /src overlaps b, d and r in a's own subtree: no conflict with itself */
	rc = scope_set_rules(t, "a", rules, ARRAY_SIZE(rules), &err);
	assert_scope_ok(rc, err);
	a = scope_find(t, "a");
	assert_targets(a, (const char *[]){ "/src", "/lib", "/new", "/shallow" }, 4);
	assert_false(a->rules[3].recursive);
	assert_true(a->gen != gen);
	/* the delegation tree is untouched */
	assert_string_equal(scope_find(t, "b")->parent, "a");
	assert_string_equal(scope_find(t, "d")->parent, "b");
	/* the rules were copied, not borrowed */
	assert_ptr_not_equal(a->rules[0].target, rules[0].target);
	/* the empty set is fine for a pod that delegated nothing */
	rc = scope_set_rules(t, "c1", NULL, 0, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_find(t, "c1")->nrules, 0);
	scope_table_free(t);
}

static void set_rules_top_level_conflict(void **state)
{
	struct scope_table *t = tree();
	struct scope_rule to_c[] = { W("/src"), W("/lib"), W("/other/y") };
	struct scope_rule to_c1[] = { W("/src"), W("/lib"), W("/other/x/deep") };
	struct scope_rule to_root[] = { W("/") };
	struct scope_err err = { 0 };
	struct snapshot s;
	int rc;

	(void)state;
	snap(t, &s);
	rc = scope_set_rules(t, "a", to_c, ARRAY_SIZE(to_c), &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/other/y` conflicts with pod `c`");
	assert_unchanged(t, &s);

	/* the competitor is the deepest owner */
	snap(t, &s);
	rc = scope_set_rules(t, "a", to_c1, ARRAY_SIZE(to_c1), &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/other/x/deep` conflicts with pod `c1`");
	assert_unchanged(t, &s);

	snap(t, &s);
	rc = scope_set_rules(t, "c", to_root, 1, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY, "requested scope `/` conflicts with pod");
	assert_unchanged(t, &s);

	/* a read rule over someone else's tree is fine */
	rc = scope_set_rules(t, "c", (struct scope_rule[]){ W("/other"), R("/src") }, 2, &err);
	assert_scope_ok(rc, err);
	scope_table_free(t);
}

static void set_rules_delegated(void **state)
{
	struct scope_table *t = tree();
	struct scope_rule within[] = { W("/src/core"), W("/src/more"), R("/lib/x") };
	struct scope_err err = { 0 };
	struct snapshot s;
	int rc;

	(void)state;
	/* b's own current rules do not count against it */
	rc = scope_set_rules(t, "b", within, ARRAY_SIZE(within), &err);
	assert_scope_ok(rc, err);
	assert_targets(scope_find(t, "b"), (const char *[]){ "/src/core", "/src/more", "/lib/x" },
		       3);

	/* outside the parent's scope */
	snap(t, &s);
	rc = scope_set_rules(t, "b", (struct scope_rule[]){ W("/src/core"), W("/docs") }, 2, &err);
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/docs` is not within spawner `a`'s effective scope");
	assert_unchanged(t, &s);

	/* held by a sibling: not in the parent's effective scope */
	snap(t, &s);
	rc = scope_set_rules(t, "r", (struct scope_rule[]){ W("/src/core/y") }, 1, &err);
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/src/core/y` is not within spawner `a`'s effective scope");
	assert_unchanged(t, &s);

	/* write where the parent only reads */
	snap(t, &s);
	rc = scope_set_rules(t, "d", (struct scope_rule[]){ W("/src/core/x"), W("/lib") }, 2, &err);
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/lib` is not within spawner `b`'s effective scope");
	assert_unchanged(t, &s);

	/* d may widen within b */
	rc = scope_set_rules(t, "d", (struct scope_rule[]){ W("/src/core") }, 1, &err);
	assert_scope_ok(rc, err);
	scope_table_free(t);
}

/* A delegated pod within its parent, but overlapping another tree that a
 * foreign writer let overlap: refused with that tree's owner. */
static void set_rules_delegated_conflict(void **state)
{
	struct scope_table *t = tu_parse(
		"{\"allocations\":["
		"{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
		"[{\"target\":\"/src\",\"permission\":\"write\",\"recursive\":true}],"
		"\"delegated_from\":null,\"session_id\":null},"
		"{\"pod_name\":\"b\",\"pid\":1,\"socket\":\"\",\"scope_allow\":[],"
		"\"delegated_from\":\"a\",\"session_id\":null},"
		"{\"pod_name\":\"c\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
		"[{\"target\":\"/src/shared\",\"permission\":\"write\",\"recursive\":true}],"
		"\"delegated_from\":null,\"session_id\":null}]}");
	struct scope_rule x = W("/src/shared/x");
	struct scope_err err = { 0 };
	struct snapshot s;
	int rc;

	(void)state;
	snap(t, &s);
	rc = scope_set_rules(t, "b", &x, 1, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/src/shared/x` conflicts with pod `c`");
	assert_unchanged(t, &s);
	scope_table_free(t);
}

static void set_rules_uncovered(void **state)
{
	struct scope_table *t = tree();
	struct scope_err err = { 0 };
	struct snapshot s;
	int rc;

	(void)state;
	/* dropping /src drops b's /src/core and r's read /src/docs */
	snap(t, &s);
	rc = scope_set_rules(t, "a", (struct scope_rule[]){ W("/lib") }, 1, &err);
	assert_scope_err(rc, err, SCOPE_EUNCOVERED, -EBUSY, NULL);
	assert_unchanged(t, &s);

	/* shallow does not cover b's recursive /src/core */
	snap(t, &s);
	rc = scope_set_rules(t, "a",
			     (struct scope_rule[]){ WS("/src/core"), R("/src/docs"), W("/lib") }, 3,
			     &err);
	assert_scope_err(rc, err, SCOPE_EUNCOVERED, -EBUSY, NULL);
	assert_unchanged(t, &s);

	/* read does not cover write */
	snap(t, &s);
	rc = scope_set_rules(t, "a", (struct scope_rule[]){ R("/src"), W("/lib") }, 2, &err);
	assert_scope_err(rc, err, SCOPE_EUNCOVERED, -EBUSY, NULL);
	assert_unchanged(t, &s);

	/* a read rule delegated to r must stay covered too */
	snap(t, &s);
	rc = scope_set_rules(t, "a", (struct scope_rule[]){ W("/src/core"), W("/lib") }, 2, &err);
	assert_scope_err(rc, err, SCOPE_EUNCOVERED, -EBUSY, NULL);
	assert_unchanged(t, &s);

	/* a delegated pod's own delegate */
	snap(t, &s);
	rc = scope_set_rules(t, "b", (struct scope_rule[]){ W("/src/core/y") }, 1, &err);
	assert_scope_err(rc, err, SCOPE_EUNCOVERED, -EBUSY, NULL);
	assert_unchanged(t, &s);

	/* narrowing to exactly what the children hold is fine */
	rc = scope_set_rules(t, "a", (struct scope_rule[]){ W("/src/core"), R("/src/docs") }, 2,
			     &err);
	assert_scope_ok(rc, err);
	rc = scope_set_rules(t, "b", (struct scope_rule[]){ W("/src/core/x") }, 1, &err);
	assert_scope_ok(rc, err);
	scope_table_free(t);
}

static void set_rules_unknown_pod(void **state)
{
	struct scope_table *t = tree();
	struct scope_err err = { 0 };
	int rc;

	(void)state;
	rc = scope_set_rules(t, "ghost", (struct scope_rule[]){ W("/x") }, 1, &err);
	assert_scope_err(rc, err, SCOPE_EUNKNOWN, -ENOENT, "pod `ghost` is not registered");
	scope_table_free(t);
}

static void set_socket(void **state)
{
	struct scope_table *t = tree();
	struct scope_err err = { 0 };
	struct snapshot s;
	char *dump;
	int rc;

	(void)state;
	rc = scope_set_socket(t, "b", "/run/b/new.sock", &err);
	assert_scope_ok(rc, err);
	assert_string_equal(scope_find(t, "b")->socket, "/run/b/new.sock");
	rc = scope_set_socket(t, "b", "", &err);
	assert_scope_ok(rc, err);
	assert_string_equal(scope_find(t, "b")->socket, "");
	dump = tu_dump(t);
	assert_non_null(strstr(dump, "\"socket\": \"\""));
	free(dump);

	snap(t, &s);
	rc = scope_set_socket(t, "b", "relative/sock", &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	assert_unchanged(t, &s);
	snap(t, &s);
	rc = scope_set_socket(t, "ghost", "/s", &err);
	assert_scope_err(rc, err, SCOPE_EUNKNOWN, -ENOENT, "pod `ghost` is not registered");
	assert_unchanged(t, &s);
	scope_table_free(t);
}

static void set_session(void **state)
{
	struct scope_table *t = tree();
	struct scope_err err = { 0 };
	struct snapshot s;
	const char *sid_c = "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f8";
	int rc;

	(void)state;
	/* a pre-reservation takes a session */
	rc = scope_set_session(t, "b", sid_c, &err);
	assert_scope_ok(rc, err);
	assert_string_equal(scope_find(t, "b")->session, sid_c);
	assert_ptr_equal(scope_find_session(t, sid_c), scope_find(t, "b"));
	/* its own session again is no conflict */
	rc = scope_set_session(t, "b", sid_c, &err);
	assert_scope_ok(rc, err);

	/* held by a */
	snap(t, &s);
	rc = scope_set_session(t, "b", SID_A, &err);
	assert_scope_err(rc, err, SCOPE_ESESSION, -EBUSY, "`a`");
	assert_unchanged(t, &s);

	snap(t, &s);
	rc = scope_set_session(t, "b", "not-a-uuid", &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	assert_unchanged(t, &s);

	snap(t, &s);
	rc = scope_set_session(t, "ghost", sid_c, &err);
	assert_scope_err(rc, err, SCOPE_EUNKNOWN, -ENOENT, "pod `ghost` is not registered");
	assert_unchanged(t, &s);

	/* clearing makes it a pre-reservation again, and frees the id */
	rc = scope_set_session(t, "b", NULL, &err);
	assert_scope_ok(rc, err);
	assert_null(scope_find(t, "b")->session);
	assert_null(scope_find_session(t, sid_c));
	rc = scope_set_session(t, "d", sid_c, &err);
	assert_scope_ok(rc, err);
	scope_table_free(t);
}

/* The file is JSON, whose strings are UTF-8 (the original's are Rust
 * Strings): bytes that are not are refused before they reach it. */
static void non_utf8_refused(void **state)
{
	struct scope_table *t = tree();
	struct scope_rule bad = W("/src/\xff"), ok = W("/fresh");
	struct scope_spec s = { .name = "p\xff", .pid = (uint32_t)getpid(), .rules = &ok, .nrules = 1 };
	struct scope_err err = { 0 };
	struct snapshot snp;
	int rc;

	(void)state;
	snap(t, &snp);
	rc = scope_register(t, &s, &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	s.name = "p";
	s.socket = "/run/\xc3(";
	rc = scope_register(t, &s, &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	s.socket = NULL;
	s.rules = &bad;
	rc = scope_register(t, &s, &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	rc = scope_set_rules(t, "a", (struct scope_rule[]){ W("/src"), W("/lib"), bad }, 3, &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	rc = scope_set_socket(t, "a", "/s\xff", &err);
	assert_scope_err(rc, err, SCOPE_EINVAL, -EINVAL, NULL);
	assert_unchanged(t, &snp);
	/* valid UTF-8 beyond ASCII is fine */
	s.name = "p\xc3\xbc";
	s.rules = &W("/fr\xc3\xa9sh");
	rc = scope_register(t, &s, &err);
	assert_scope_ok(rc, err);
	scope_table_free(t);
}

/* ------------------------------------------------------------------ */
/* The change log front ends stream from                               */

static bool has_change(struct scope_table *t, enum scope_change_kind kind, const char *name,
		       const char *detail)
{
	const struct scope_change *ch;
	size_t n = scope_table_changes(t, &ch);

	for (size_t i = 0; i < n; i++)
		if (ch[i].kind == kind && !strcmp(ch[i].name, name) &&
		    (!detail || (ch[i].detail && !strcmp(ch[i].detail, detail))))
			return true;
	return false;
}

static bool dead_b(void *ctx, const struct scope_alloc *a)
{
	(void)ctx;
	return strcmp(a->name, "b") != 0;
}

static void change_log(void **state)
{
	struct scope_table *t = tree();
	struct scope_liveness lv = { .alive = dead_b };
	const struct scope_change *ch;
	struct scope_err err = { 0 };
	char pid[32];
	int rc;

	(void)state;
	assert_true(has_change(t, SCOPE_CH_REGISTER, "a", NULL));
	assert_true(has_change(t, SCOPE_CH_DELEGATE, "b", "a"));
	assert_true(has_change(t, SCOPE_CH_DELEGATE, "d", "b"));
	assert_string_equal(scope_change_kind_name(SCOPE_CH_REGISTER), "register");
	assert_string_equal(scope_change_kind_name(SCOPE_CH_REPARENT), "reparent");
	scope_table_clear_changes(t);
	assert_int_equal(scope_table_changes(t, &ch), 0);

	rc = scope_set_rules(t, "a", (struct scope_rule[]){ W("/src"), W("/lib"), W("/z") }, 3,
			     &err);
	assert_scope_ok(rc, err);
	assert_true(has_change(t, SCOPE_CH_ALLOW, "a", "3"));
	rc = scope_set_socket(t, "a", "", &err);
	assert_scope_ok(rc, err);
	assert_true(has_change(t, SCOPE_CH_SOCKET, "a", "-"));
	rc = scope_set_session(t, "d", NULL, &err);
	assert_scope_ok(rc, err);

	snprintf(pid, sizeof(pid), "%u", (unsigned)getpid());
	assert_int_equal(scope_reclaim_stale(t, &lv), 1);
	assert_true(has_change(t, SCOPE_CH_REAP, "b", pid));
	assert_true(has_change(t, SCOPE_CH_REPARENT, "d", "a"));
	rc = scope_release(t, "c", &err);
	assert_scope_ok(rc, err);
	assert_true(has_change(t, SCOPE_CH_RELEASE, "c", NULL));
	assert_true(has_change(t, SCOPE_CH_REPARENT, "c1", "-"));
	scope_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(set_rules_top_level_own_subtree),
		cmocka_unit_test(set_rules_top_level_conflict),
		cmocka_unit_test(set_rules_delegated),
		cmocka_unit_test(set_rules_delegated_conflict),
		cmocka_unit_test(set_rules_uncovered),
		cmocka_unit_test(set_rules_unknown_pod),
		cmocka_unit_test(set_socket),
		cmocka_unit_test(set_session),
		cmocka_unit_test(non_utf8_refused),
		cmocka_unit_test(change_log),
	};

	return cmocka_run_group_tests_name("core_ops", tests, NULL, NULL);
}
