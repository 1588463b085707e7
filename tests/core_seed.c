/* SPDX-License-Identifier: MIT */
/*
 * The original registry's own tests, ported as behaviour, plus the
 * SessionConflict check that a later version of it added.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_testutil.h"

#define SID_A "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"
#define SID_B "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f7"

struct fixture {
	char *dir;
	char *path;
	struct scope_file *f;
	struct scope_table *t;
};

/* Every test starts from an empty locked table file in a fresh directory,
 * as the original's open_empty(). */
static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct scope_err err = { 0 };
	int rc;

	fx->dir = tu_mkdtemp();
	fx->path = tu_join(fx->dir, "scope.lock");
	rc = scope_file_open(&fx->f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(fx->f, &fx->t, &err);
	assert_scope_ok(rc, err);
	assert_non_null(fx->t);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->f) {
		scope_file_unlock(fx->f);
		scope_file_free(fx->f);
	}
	tu_rmrf(fx->dir);
	free(fx->dir);
	free(fx->path);
	free(fx);
	return 0;
}

static void save(struct fixture *fx)
{
	struct scope_err err = { 0 };
	int rc = scope_file_save(fx->f, &err);

	assert_scope_ok(rc, err);
}

static struct scope_spec spec(const char *name, const struct scope_rule *rules, size_t n,
			      const char *session)
{
	return (struct scope_spec){
		.name = name,
		.pid = (uint32_t)getpid(),
		.socket = "/tmp/x.sock",
		.rules = rules,
		.nrules = n,
		.session = session,
	};
}

/* a: write /src; b delegated from a: write /src/core. */
static void a_with_b(struct scope_table *t)
{
	struct scope_rule src = WRULE("/src", true), core = WRULE("/src/core", true);

	tu_register(t, "a", &src, 1, NULL);
	tu_delegate(t, "a", "b", &core, 1);
}

static void open_creates_empty_lock_file(void **state)
{
	struct fixture *fx = *state;
	struct stat st;

	assert_int_equal(scope_table_count(fx->t), 0);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void open_creates_file_with_owner_only_permissions(void **state)
{
	struct fixture *fx = *state;
	char *parent = tu_join(fx->dir, "insomnia");
	char *path = tu_join(parent, "scope.lock");
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	struct stat st;
	mode_t old = umask(0);
	int rc;

	rc = scope_file_open(&f, path, &err);
	umask(old);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	scope_file_unlock(f);
	scope_file_free(f);
	free(path);
	free(parent);
}

static void save_and_reopen_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true);
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	struct scope_alloc *a;
	int rc;

	tu_register(fx->t, "a", &src, 1, SID_A);
	save(fx);
	scope_file_unlock(fx->f);

	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_table_count(t), 1);
	a = scope_table_at(t, 0);
	assert_string_equal(a->name, "a");
	assert_int_equal(a->pid, getpid());
	assert_string_equal(a->socket, "/tmp/a.sock");
	assert_int_equal(a->nrules, 1);
	assert_string_equal(a->rules[0].target, "/src");
	assert_int_equal(a->rules[0].perm, SCOPE_WRITE);
	assert_true(a->rules[0].recursive);
	assert_null(a->parent);
	assert_string_equal(a->session, SID_A);
	scope_file_unlock(f);
	scope_file_free(f);
}

static void rules_overlap_prefix_relation(void **state)
{
	struct scope_rule src = WRULE("/src", true), core = WRULE("/src/core", true),
			  docs = WRULE("/docs", true);

	(void)state;
	assert_true(scope_rules_overlap(&src, &core));
	assert_true(scope_rules_overlap(&core, &src));
	assert_false(scope_rules_overlap(&src, &docs));
}

static void rules_overlap_non_recursive(void **state)
{
	struct scope_rule src = WRULE("/src", false), deep = WRULE("/src/a/b", true),
			  child = WRULE("/src/child", false);

	(void)state;
	assert_false(scope_rules_overlap(&src, &deep));
	assert_true(scope_rules_overlap(&src, &child));
}

static void register_detects_write_conflict(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), core = WRULE("/src/core", true);
	struct scope_spec s = spec("b", &core, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, NULL);
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/src/core` conflicts with pod `a`");
	assert_int_equal(scope_table_count(fx->t), 1);
	assert_null(scope_find(fx->t, "b"));
}

static void duplicate_pod_name_rejected(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), docs = WRULE("/docs", true);
	struct scope_spec s = spec("a", &docs, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, NULL);
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_EDUPLICATE, -EEXIST, "pod name `a` is already registered");
	assert_int_equal(scope_table_count(fx->t), 1);
	assert_string_equal(scope_find(fx->t, "a")->rules[0].target, "/src");
}

static void delegate_must_be_subset(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), docs = WRULE("/docs", true);
	struct scope_spec s = spec("b", &docs, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, NULL);
	rc = scope_delegate(fx->t, "a", &s, &err);
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/docs` is not within spawner `a`'s effective scope");
	assert_null(scope_find(fx->t, "b"));
}

static void delegate_succeeds_within_parent_scope(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule core = WRULE("/src/core", true), other = WRULE("/src/other", true);
	struct scope_alloc *b;

	a_with_b(fx->t);
	assert_int_equal(scope_table_count(fx->t), 2);
	b = scope_find(fx->t, "b");
	assert_non_null(b);
	assert_string_equal(b->parent, "a");
	assert_null(b->session);
	assert_int_equal(b->pid, getpid());
	/* a no longer has /src/core: b does; a keeps the rest. */
	assert_false(scope_within_effective_write(fx->t, "a", &core));
	assert_true(scope_within_effective_write(fx->t, "a", &other));
	/* storage keeps a's full rule set */
	assert_int_equal(scope_find(fx->t, "a")->nrules, 1);
	assert_string_equal(scope_find(fx->t, "a")->rules[0].target, "/src");
}

static void delegate_rejects_sibling_overlap(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule sub = WRULE("/src/core/sub", true);
	struct scope_spec s = spec("c", &sub, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	a_with_b(fx->t);
	rc = scope_delegate(fx->t, "a", &s, &err);
	/* NotSubset fires first: /src/core left a's effective scope. */
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/src/core/sub` is not within spawner `a`'s effective scope");
	assert_null(scope_find(fx->t, "c"));
}

static void release_reparents_children(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule x = WRULE("/src/core/x", true);
	struct scope_err err = { 0 };
	struct scope_alloc *d;
	int rc;

	a_with_b(fx->t);
	tu_delegate(fx->t, "b", "d", &x, 1);
	rc = scope_release(fx->t, "b", &err);
	assert_scope_ok(rc, err);
	d = scope_find(fx->t, "d");
	assert_non_null(d);
	assert_string_equal(d->parent, "a");
	assert_null(scope_find(fx->t, "b"));
	assert_int_equal(scope_table_count(fx->t), 2);
}

#define FAKE_DEAD_PID 0xfffffff0u

static bool alive_unless_fake(void *ctx, const struct scope_alloc *a)
{
	(*(int *)ctx)++;
	return a->pid != FAKE_DEAD_PID;
}

static void reclaim_stale_reparents_and_removes_dead_entries(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule x = WRULE("/src/core/x", true);
	int calls = 0;
	struct scope_liveness lv = { .alive = alive_unless_fake, .ctx = &calls };
	struct scope_alloc *d;

	a_with_b(fx->t);
	tu_delegate(fx->t, "b", "d", &x, 1);
	/* b crashed: its pid is one the probe calls dead */
	scope_find(fx->t, "b")->pid = FAKE_DEAD_PID;
	assert_int_equal(scope_reclaim_stale(fx->t, &lv), 1);
	assert_true(calls >= 3);
	assert_null(scope_find(fx->t, "b"));
	d = scope_find(fx->t, "d");
	assert_non_null(d);
	assert_string_equal(d->parent, "a");
	assert_non_null(scope_find(fx->t, "a"));

	/* a dead top-level pod: its delegate becomes top-level */
	scope_find(fx->t, "a")->pid = FAKE_DEAD_PID;
	assert_int_equal(scope_reclaim_stale(fx->t, &lv), 1);
	assert_int_equal(scope_table_count(fx->t), 1);
	assert_null(scope_find(fx->t, "d")->parent);

	/* nothing dead: nothing changes */
	assert_int_equal(scope_reclaim_stale(fx->t, &lv), 0);
	assert_int_equal(scope_table_count(fx->t), 1);
}

static void reclaim_dead_chain(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule x = WRULE("/src/core/x", true), y = WRULE("/src/core/x/y", true);
	int calls = 0;
	struct scope_liveness lv = { .alive = alive_unless_fake, .ctx = &calls };

	/* a -> b -> d -> e with b and d dead: e ends up under a */
	a_with_b(fx->t);
	tu_delegate(fx->t, "b", "d", &x, 1);
	tu_delegate(fx->t, "d", "e", &y, 1);
	scope_find(fx->t, "b")->pid = FAKE_DEAD_PID;
	scope_find(fx->t, "d")->pid = FAKE_DEAD_PID;
	assert_int_equal(scope_reclaim_stale(fx->t, &lv), 2);
	assert_int_equal(scope_table_count(fx->t), 2);
	assert_string_equal(scope_find(fx->t, "e")->parent, "a");
}

static void read_rules_do_not_conflict_with_write(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), rd = RRULE("/src", true);
	struct scope_rule rdeep = RRULE("/src/core", false);

	tu_register(fx->t, "a", &src, 1, NULL);
	tu_register(fx->t, "b", &rd, 1, NULL);
	assert_int_equal(scope_table_count(fx->t), 2);
	assert_null(scope_conflict_owner(fx->t, &rd, NULL));
	assert_null(scope_conflict_owner(fx->t, &rdeep, NULL));
	/* while the same target written does conflict */
	assert_string_equal(scope_conflict_owner(fx->t, &src, NULL), "a");
}

static void releasing_pod_reopens_scope_for_fresh_registration(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true);
	struct scope_spec s = spec("b", &src, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, NULL);
	/* held: refused */
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY, "conflicts with pod `a`");
	rc = scope_release(fx->t, "a", &err);
	assert_scope_ok(rc, err);
	tu_register(fx->t, "b", &src, 1, NULL);
	assert_int_equal(scope_table_count(fx->t), 1);
}

static void delegated_scope_returns_to_parent_on_release(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule core = WRULE("/src/core", true);
	struct scope_err err = { 0 };
	int rc;

	a_with_b(fx->t);
	assert_false(scope_within_effective_write(fx->t, "a", &core));
	rc = scope_release(fx->t, "b", &err);
	assert_scope_ok(rc, err);
	assert_true(scope_within_effective_write(fx->t, "a", &core));
}

static void env_sandbox(const char *dir)
{
	unsetenv("INSOMNIA_HOME");
	unsetenv("XDG_RUNTIME_DIR");
	setenv("INSOMNIA_RUNTIME_DIR", dir, 1);
}

/* The original's install_top_level + guard drop, through the default path. */
static void scope_allocation_guard_releases_on_drop(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true);
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	char *path = NULL, *dir = tu_mkdtemp(), *want = tu_join(dir, "scope.lock");
	int rc;

	(void)fx;
	env_sandbox(dir);
	rc = scope_default_path(&path, &err);
	assert_scope_ok(rc, err);
	assert_string_equal(path, want);

	rc = scope_file_open(&f, path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	tu_register(t, "a", &src, 1, NULL);
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	scope_file_unlock(f);
	scope_file_free(f);

	rc = scope_file_open(&f, want, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_non_null(scope_find(t, "a"));
	/* the guard's drop: release and save */
	rc = scope_release(t, "a", &err);
	assert_scope_ok(rc, err);
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	scope_file_unlock(f);
	scope_file_free(f);

	rc = scope_file_open(&f, want, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_null(scope_find(t, "a"));
	assert_int_equal(scope_table_count(t), 0);
	scope_file_unlock(f);
	scope_file_free(f);

	unsetenv("INSOMNIA_RUNTIME_DIR");
	tu_rmrf(dir);
	free(dir);
	free(want);
	free(path);
}

static struct scope_table *relock(struct fixture *fx)
{
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	int rc;

	scope_file_unlock(fx->f);
	scope_file_free(fx->f);
	fx->f = NULL;
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	fx->f = f;
	fx->t = t;
	return t;
}

static void adopt_allocation_rewrites_pid_and_releases_on_drop(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule tmp = WRULE("/tmp", true), child = WRULE("/tmp/child", true);
	uint32_t child_pid = (uint32_t)getppid(); /* another live process */
	struct scope_err err = { 0 };
	struct scope_table *t;
	struct scope_alloc *a;
	int rc;

	assert_int_not_equal(child_pid, getpid());
	/* the spawner pre-registers the child under its own pid */
	tu_register(fx->t, "spawner", &tmp, 1, SID_A);
	tu_delegate(fx->t, "spawner", "child", &child, 1);
	save(fx);

	t = relock(fx);
	rc = scope_adopt(t, "child", child_pid, 0, SID_B, &err);
	assert_scope_ok(rc, err);
	save(fx);

	t = relock(fx);
	a = scope_find(t, "child");
	assert_non_null(a);
	assert_int_equal(a->pid, child_pid);
	assert_string_equal(a->session, SID_B);
	assert_string_equal(a->parent, "spawner");
	assert_ptr_equal(scope_find_session(t, SID_B), a);
	/* the child's guard drops */
	rc = scope_release(t, "child", &err);
	assert_scope_ok(rc, err);
	save(fx);

	t = relock(fx);
	assert_null(scope_find(t, "child"));
	assert_non_null(scope_find(t, "spawner"));
}

static void adopt_allocation_errors_on_unknown_pod(void **state)
{
	struct fixture *fx = *state;
	struct scope_err err = { 0 };
	char *before = tu_dump(fx->t), *after;
	int rc;

	rc = scope_adopt(fx->t, "ghost", 42, 0, SID_A, &err);
	assert_scope_err(rc, err, SCOPE_EUNKNOWN, -ENOENT, "pod `ghost` is not registered");
	after = tu_dump(fx->t);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void conflict_detection_descends_to_real_owner(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule x = WRULE("/src/core/x", true), other = WRULE("/src/other", true);
	struct scope_spec s = spec("x", &x, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	a_with_b(fx->t);
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/src/core/x` conflicts with pod `b`");
	assert_string_equal(scope_conflict_owner(fx->t, &x, NULL), "b");
	assert_string_equal(scope_conflict_owner(fx->t, &other, NULL), "a");
	/* exempt skips that owner's whole tree only when it is the owner */
	assert_string_equal(scope_conflict_owner(fx->t, &x, "a"), "b");
	assert_null(scope_conflict_owner(fx->t, &x, "b"));
	assert_null(scope_conflict_owner(fx->t, &other, "a"));
}

/* ------------------------------------------------------------------ */
/* SessionConflict and the order of register's and delegate's checks   */

static void register_refuses_held_session(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), docs = WRULE("/docs", true);
	struct scope_spec s = spec("b", &docs, 1, SID_A);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, SID_A);
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ESESSION, -EBUSY, "`a`");
	assert_null(scope_find(fx->t, "b"));
	/* another session is fine */
	s.session = SID_B;
	rc = scope_register(fx->t, &s, &err);
	assert_scope_ok(rc, err);
	assert_ptr_equal(scope_find_session(fx->t, SID_B), scope_find(fx->t, "b"));
}

/* A session id is a UUID: the same id in upper case is the same session. */
static void register_session_conflict_ignores_case(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule docs = WRULE("/docs", true);
	struct scope_spec s = spec("b", &docs, 1, "0192F3C4-5B6A-7C8D-9E0F-A1B2C3D4E5F6");
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", NULL, 0, SID_A);
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ESESSION, -EBUSY, NULL);
}

/* A pre-reservation holds no session: find_by_session skips it. */
static void find_session_skips_pre_reservations(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), core = WRULE("/src/core", true);

	tu_register(fx->t, "a", &src, 1, SID_A);
	tu_delegate(fx->t, "a", "b", &core, 1);
	assert_ptr_equal(scope_find_session(fx->t, SID_A), scope_find(fx->t, "a"));
	assert_null(scope_find_session(fx->t, SID_B));
	assert_null(scope_find(fx->t, "b")->session);
}

/* register: duplicate name before session before write conflict. */
static void register_check_order(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true);
	struct scope_spec s = spec("a", &src, 1, SID_A);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, SID_A);
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_EDUPLICATE, -EEXIST, "pod name `a` is already registered");
	s.name = "b";
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ESESSION, -EBUSY, NULL);
	s.session = SID_B;
	rc = scope_register(fx->t, &s, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY, "conflicts with pod `a`");
	assert_int_equal(scope_table_count(fx->t), 1);
}

/* delegate: duplicate name before unknown spawner. */
static void delegate_check_order(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule src = WRULE("/src", true), core = WRULE("/src/core", true);
	struct scope_spec s = spec("a", &core, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", &src, 1, NULL);
	rc = scope_delegate(fx->t, "ghost", &s, &err);
	assert_scope_err(rc, err, SCOPE_EDUPLICATE, -EEXIST, "pod name `a` is already registered");
	s.name = "b";
	rc = scope_delegate(fx->t, "ghost", &s, &err);
	assert_scope_err(rc, err, SCOPE_EUNKNOWN, -ENOENT, "pod `ghost` is not registered");
	assert_int_equal(scope_table_count(fx->t), 1);
}

/* delegate: a read rule only needs some rule of the spawner covering it. */
static void delegate_read_rules(void **state)
{
	struct fixture *fx = *state;
	struct scope_rule rules[] = { WRULE("/src", true), RRULE("/docs", true) };
	struct scope_rule rd = RRULE("/docs/x", true), rd_src = RRULE("/src/core", true);
	struct scope_rule rd_out = RRULE("/etc", true);
	struct scope_spec s = spec("r1", &rd, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	tu_register(fx->t, "a", rules, 2, NULL);
	rc = scope_delegate(fx->t, "a", &s, &err);
	assert_scope_ok(rc, err);
	/* a read rule under a write rule, even with a child already there */
	tu_delegate(fx->t, "a", "w", &WRULE("/src/core", true), 1);
	s = spec("r2", &rd_src, 1, NULL);
	rc = scope_delegate(fx->t, "a", &s, &err);
	assert_scope_ok(rc, err);
	s = spec("r3", &rd_out, 1, NULL);
	rc = scope_delegate(fx->t, "a", &s, &err);
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/etc` is not within spawner `a`'s effective scope");
	/* a write rule under a read rule of the spawner is not within */
	s = spec("r4", &WRULE("/docs/x", true), 1, NULL);
	rc = scope_delegate(fx->t, "a", &s, &err);
	assert_scope_err(rc, err, SCOPE_ENOTSUBSET, -EPERM,
			 "requested scope `/docs/x` is not within spawner `a`'s effective scope");
}

/* delegate: within the spawner's effective scope but overlapping a pod of
 * another tree (a table written by others can hold such overlaps). */
static void delegate_write_conflict_other_tree(void **state)
{
	struct scope_table *t = tu_parse(
		"{\"allocations\":["
		"{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
		"[{\"target\":\"/src\",\"permission\":\"write\",\"recursive\":true}],"
		"\"delegated_from\":null,\"session_id\":null},"
		"{\"pod_name\":\"c\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
		"[{\"target\":\"/src/shared\",\"permission\":\"write\",\"recursive\":true}],"
		"\"delegated_from\":null,\"session_id\":null}]}");
	struct scope_rule x = WRULE("/src/shared/x", true);
	struct scope_spec s = spec("b", &x, 1, NULL);
	struct scope_err err = { 0 };
	int rc;

	(void)state;
	rc = scope_delegate(t, "a", &s, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/src/shared/x` conflicts with pod `c`");
	assert_null(scope_find(t, "b"));
	scope_table_free(t);
}

static void release_unknown_pod(void **state)
{
	struct fixture *fx = *state;
	struct scope_err err = { 0 };
	int rc;

	rc = scope_release(fx->t, "ghost", &err);
	assert_scope_err(rc, err, SCOPE_EUNKNOWN, -ENOENT, "pod `ghost` is not registered");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(open_creates_empty_lock_file),
		T(open_creates_file_with_owner_only_permissions),
		T(save_and_reopen_roundtrip),
		T(rules_overlap_prefix_relation),
		T(rules_overlap_non_recursive),
		T(register_detects_write_conflict),
		T(duplicate_pod_name_rejected),
		T(delegate_must_be_subset),
		T(delegate_succeeds_within_parent_scope),
		T(delegate_rejects_sibling_overlap),
		T(release_reparents_children),
		T(reclaim_stale_reparents_and_removes_dead_entries),
		T(read_rules_do_not_conflict_with_write),
		T(releasing_pod_reopens_scope_for_fresh_registration),
		T(delegated_scope_returns_to_parent_on_release),
		T(scope_allocation_guard_releases_on_drop),
		T(adopt_allocation_rewrites_pid_and_releases_on_drop),
		T(adopt_allocation_errors_on_unknown_pod),
		T(conflict_detection_descends_to_real_owner),
		T(register_refuses_held_session),
		T(register_session_conflict_ignores_case),
		T(find_session_skips_pre_reservations),
		T(register_check_order),
		T(delegate_check_order),
		T(delegate_read_rules),
		T(delegate_write_conflict_other_tree),
		T(reclaim_dead_chain),
		T(release_unknown_pod),
	};

	return cmocka_run_group_tests_name("core_seed", tests, NULL, NULL);
}
