/* SPDX-License-Identifier: MIT */
/*
 * Crash safety: a writer that dies anywhere in a save leaves a file whose
 * next open by the core yields the whole old table or the whole new one,
 * and that the original's pods either refuse or read rightly.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core_testutil.h"

#define MAX_STEPS 200

static void sid_for(char out[37], unsigned n)
{
	snprintf(out, 37, "0192f3c4-5b6a-7c8d-9e0f-%012x", n);
}

/* N pods "pod-000".., each writing its own directory. */
static struct scope_table *big_table(unsigned n)
{
	struct scope_table *t = scope_table_new();

	for (unsigned i = 0; i < n; i++) {
		char name[32], target[64], sid[37];
		struct scope_rule r[] = { WRULE(target, true), RRULE("/shared/docs", true) };

		snprintf(name, sizeof(name), "pod-%03u", i);
		snprintf(target, sizeof(target), "/data/%s/with/a/longer/path", name);
		sid_for(sid, i);
		tu_register(t, name, r, 2, sid);
	}
	return t;
}

static void change_append(struct scope_table *t)
{
	struct scope_rule r = WRULE("/data/new", true);
	char sid[37];

	sid_for(sid, 9999);
	tu_register(t, "pod-new", &r, 1, sid);
}

static void change_remove_middle(struct scope_table *t)
{
	struct scope_err err = { 0 };
	int rc = scope_release(t, "pod-150", &err);

	assert_scope_ok(rc, err);
}

static void change_rewrite_all(struct scope_table *t)
{
	size_t n = scope_table_count(t);

	for (size_t i = 0; i < n; i++) {
		struct scope_alloc *a = scope_table_at(t, i);
		struct scope_err err = { 0 };
		char sock[128], *name = strdup(a->name);
		int rc;

		snprintf(sock, sizeof(sock), "/run/elsewhere/%s/socket", name);
		rc = scope_set_socket(t, name, sock, &err);
		assert_scope_ok(rc, err);
		free(name);
	}
}

static void change_shrink(struct scope_table *t)
{
	while (scope_table_count(t) > 20) {
		struct scope_err err = { 0 };
		char *name = strdup(scope_table_at(t, scope_table_count(t) - 1)->name);
		int rc = scope_release(t, name, &err);

		assert_scope_ok(rc, err);
		free(name);
	}
}

static void change_grow(struct scope_table *t)
{
	for (unsigned i = 0; i < 280; i++) {
		char name[32], target[64], sid[37];
		struct scope_rule r = WRULE(target, true);

		snprintf(name, sizeof(name), "grown-%03u", i);
		snprintf(target, sizeof(target), "/grown/%s", name);
		sid_for(sid, 5000 + i);
		tu_register(t, name, &r, 1, sid);
	}
}

struct change {
	const char *name;
	unsigned old_pods;
	void (*apply)(struct scope_table *t);
};

static const struct change changes[] = {
	{ "append at end", 300, change_append },
	{ "remove in middle", 300, change_remove_middle },
	{ "rewrite everything", 300, change_rewrite_all },
	{ "shrink", 300, change_shrink },
	{ "grow", 20, change_grow },
};

static json_t *view_of(const char *text)
{
	json_t *v = tu_original_view(text, strlen(text));

	assert_non_null(v);
	return v;
}

/* The original's pod, acting on the file: lock, read, and if it can read
 * it, register a pod of its own and rewrite the file in place. Returns
 * what it wrote (the table as it sees it), or NULL if it refused. */
static json_t *original_registers(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	json_t *view, *mine;
	char *buf, *out;
	size_t len;

	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	buf = tu_read_file(path, &len);
	view = tu_original_view(buf, len);
	free(buf);
	if (!view) {
		close(fd);
		return NULL;
	}
	mine = json_pack("{sssisss[]snss}", "pod_name", "rust", "pid", 1, "socket", "/r",
			 "scope_allow", "delegated_from", "session_id",
			 "0192f3c4-5b6a-7c8d-9e0f-0000000fffff");
	json_array_append_new(json_object_get(view, "allocations"), mine);
	out = json_dumps(view, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, out, strlen(out), 0), (ssize_t)strlen(out));
	assert_int_equal(fdatasync(fd), 0);
	free(out);
	close(fd); /* unlocks */
	return view;
}

struct crash_stats {
	unsigned runs, old_seen, new_seen, refused_by_original;
};

/*
 * One save of CH stopped at STEP, BYTE into that step. Returns whether the
 * save completed (STEP lies beyond its last step).
 */
static bool crash_once(const struct change *ch, const char *old_dump, const char *new_dump,
		       long step, long byte, bool original_acts, struct crash_stats *st)
{
	char *dir = tu_mkdtemp(), *path = tu_join(dir, "scope.lock");
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	json_t *old_view = view_of(old_dump), *new_view = view_of(new_dump), *raw_view, *wrote = NULL;
	char *raw, *got, *again;
	size_t raw_len;
	bool done;
	int rc;

	tu_write_file(path, old_dump, strlen(old_dump), 0600);
	rc = scope_file_open(&f, path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	ch->apply(t);
	scope_file_fault_after(f, step, byte);
	rc = scope_file_save(f, &err);
	done = rc == 0;
	if (done)
		scope_file_unlock(f);
	scope_file_free(f); /* the dead writer's descriptors close */

	/* before the core looks again: the original refuses or reads rightly */
	raw = tu_read_file(path, &raw_len);
	assert_non_null(raw);
	raw_view = tu_original_view(raw, raw_len);
	if (raw_view && !json_equal(raw_view, old_view) && !json_equal(raw_view, new_view)) {
		print_error("%s, step %ld byte %ld: the original reads a table that is neither "
			    "old nor new:\n%.*s\n",
			    ch->name, step, byte, (int)(raw_len > 600 ? 600 : raw_len), raw);
		fail();
	}
	if (!raw_view)
		st->refused_by_original++;
	if (raw_view && original_acts)
		wrote = original_registers(path);
	json_decref(raw_view);
	free(raw);

	got = tu_load(path, &rc, &err);
	if (!got) {
		print_error("%s, step %ld byte %ld: reopen failed: %d %s\n", ch->name, step, byte, rc,
			    err.msg);
		fail();
	}
	if (wrote) {
		/* the original's write came after the crash: it is the table now */
		json_t *now = view_of(got);

		if (!json_equal(now, wrote)) {
			print_error("%s, step %ld byte %ld: the original's later write was lost\n",
				    ch->name, step, byte);
			fail();
		}
		json_decref(now);
		json_decref(wrote);
	} else if (strcmp(got, old_dump) == 0) {
		if (done) {
			print_error("%s, step %ld: a completed save was lost\n", ch->name, step);
			fail();
		}
		st->old_seen++;
	} else if (strcmp(got, new_dump) == 0) {
		st->new_seen++;
	} else {
		print_error("%s, step %ld byte %ld: reopened table is neither old nor new:\n%.600s\n",
			    ch->name, step, byte, got);
		fail();
	}
	/* what the first reopen settled on stays */
	again = tu_load(path, &rc, &err);
	assert_non_null(again);
	assert_string_equal(again, got);
	free(again);
	free(got);
	st->runs++;
	json_decref(old_view);
	json_decref(new_view);
	tu_rmrf(dir);
	free(dir);
	free(path);
	return done;
}

static void crash_every_step(bool original_acts)
{
	int total_steps = 0;

	for (size_t c = 0; c < ARRAY_SIZE(changes); c++) {
		const struct change *ch = &changes[c];
		struct scope_table *t = big_table(ch->old_pods);
		struct crash_stats st = { 0 };
		char *old_dump = tu_dump(t), *new_dump;
		long old_len = (long)strlen(old_dump), new_len, bytes[16];
		size_t nbytes = 0;
		long step;

		ch->apply(t);
		new_dump = tu_dump(t);
		new_len = (long)strlen(new_dump);
		assert_string_not_equal(old_dump, new_dump);
		assert_true(new_len > 8192 || old_len > 8192);
		{
			long cand[] = { 0, 1, 4095, 4096, 4097, 8192, new_len / 2, new_len - 1,
					new_len, old_len - 1, 1L << 30 };

			for (size_t i = 0; i < ARRAY_SIZE(cand); i++) {
				bool dup = cand[i] < 0;

				for (size_t k = 0; k < nbytes; k++)
					dup |= bytes[k] == cand[i];
				if (!dup)
					bytes[nbytes++] = cand[i];
			}
		}
		for (step = 0; step < MAX_STEPS; step++) {
			bool completed = false;

			for (size_t b = 0; b < nbytes; b++)
				completed |= crash_once(ch, old_dump, new_dump, step, bytes[b],
							original_acts, &st);
			if (completed)
				break;
		}
		assert_true(step < MAX_STEPS);
		assert_true(step > 0);
		print_message("%s: %ld steps, %u runs (old %u, new %u; original refused %u)\n",
			      ch->name, step, st.runs, st.old_seen, st.new_seen,
			      st.refused_by_original);
		/* both outcomes happen: the crash points cover the whole save */
		if (!original_acts) {
			assert_true(st.old_seen > 0);
			assert_true(st.new_seen > 0);
		}
		total_steps += (int)step;
		free(old_dump);
		free(new_dump);
		scope_table_free(t);
	}
	assert_true(total_steps > 0);
}

static void fault_injection_every_step(void **state)
{
	(void)state;
	crash_every_step(false);
}

/* After a crash, the original's pods may act on the file if they can read
 * it; the core then must see their write, not replay its own. */
static void fault_injection_then_original_writes(void **state)
{
	(void)state;
	crash_every_step(true);
}

/* The handle of a writer stopped mid-save is done for: no further saves. */
static void stopped_handle_is_unusable(void **state)
{
	char *dir = tu_mkdtemp(), *path = tu_join(dir, "scope.lock");
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	int rc;

	(void)state;
	rc = scope_file_open(&f, path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	tu_register(t, "a", NULL, 0, NULL);
	scope_file_fault_after(f, 0, 0);
	rc = scope_file_save(f, &err);
	assert_true(rc < 0);
	assert_int_not_equal(err.kind, SCOPE_OK);
	scope_file_free(f);
	tu_rmrf(dir);
	free(dir);
	free(path);
}

/* ------------------------------------------------------------------ */
/* Real kills                                                          */

#define FILLERS 300
#define KILLS 100

static void child_registers_forever(const char *path, uint32_t owner, int ready)
{
	if (write(ready, "r", 1) != 1)
		_exit(22);
	close(ready);
	for (;;) {
		struct scope_file *f = NULL;
		struct scope_table *t = NULL;
		struct scope_err err = { 0 };
		char name[32], target[64];
		struct scope_rule r = WRULE(target, true);
		struct scope_spec spec = { .name = name, .pid = owner, .rules = &r, .nrules = 1 };

		if (scope_file_open(&f, path, &err) || scope_file_lock(f, &t, &err))
			_exit(20);
		snprintf(name, sizeof(name), "k-%05zu", scope_table_count(t) - FILLERS);
		snprintf(target, sizeof(target), "/kills/%s", name);
		if (scope_register(t, &spec, &err) || scope_file_save(f, &err))
			_exit(21);
		scope_file_unlock(f);
		scope_file_free(f);
	}
}

/* The table must be the fillers then k-00000..k-N, whole. Returns N+1. */
static size_t check_killed_table(const char *text, size_t at_least, const char *filler_dump)
{
	struct scope_table *t = tu_parse(text);
	size_t n = scope_table_count(t), k;

	assert_true(n >= FILLERS);
	for (size_t i = 0; i < FILLERS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "pod-%03zu", i);
		assert_string_equal(scope_table_at(t, i)->name, name);
	}
	for (k = 0; k < n - FILLERS; k++) {
		struct scope_alloc *a = scope_table_at(t, FILLERS + k);
		char name[32], target[64];

		snprintf(name, sizeof(name), "k-%05zu", k);
		snprintf(target, sizeof(target), "/kills/%s", name);
		assert_string_equal(a->name, name);
		assert_int_equal(a->nrules, 1);
		assert_string_equal(a->rules[0].target, target);
	}
	assert_true(k >= at_least);
	/* the fillers' bytes are untouched */
	if (filler_dump)
		assert_memory_equal(text, filler_dump, strlen(filler_dump) - 8);
	scope_table_free(t);
	return k;
}

/* Microseconds a fresh writer process takes, from fork to its first saved
 * change (open, lock and parse, register, save), so that the kills land
 * all over it, with sanitizers or without. */
static unsigned cycle_usec(const char *dir, const char *filler_dump)
{
	char *path = tu_join(dir, "calibrate.lock");
	double worst = 0;

	tu_write_file(path, filler_dump, strlen(filler_dump), 0600);
	for (int i = 0; i < 3; i++) {
		double t0 = tu_now();
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct scope_file *f = NULL;
			struct scope_table *t = NULL;
			struct scope_err err = { 0 };
			char name[32];
			struct scope_spec spec = { .name = name, .pid = (uint32_t)getppid() };

			snprintf(name, sizeof(name), "calibrate-%d", i);
			if (scope_file_open(&f, path, &err) || scope_file_lock(f, &t, &err) ||
			    scope_register(t, &spec, &err) || scope_file_save(f, &err))
				_exit(1);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		if (tu_now() - t0 > worst)
			worst = tu_now() - t0;
	}
	unlink(path);
	free(path);
	return (unsigned)(worst * 1e6) + 1;
}

static void killed_writers(void **state)
{
	char *dir = tu_mkdtemp(), *path = tu_join(dir, "scope.lock");
	struct scope_table *t = big_table(FILLERS);
	char *filler_dump = tu_dump(t), *seed_env = getenv("SCOPEFS_TEST_SEED");
	unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 0) : (unsigned)time(NULL);
	size_t count = 0, refused = 0;
	double t0 = tu_now();

	(void)state;
	unsigned cycle = cycle_usec(dir, filler_dump);

	print_message("seed %u (SCOPEFS_TEST_SEED to repeat), one cycle %u us\n", seed, cycle);
	srand(seed);
	tu_write_file(path, filler_dump, strlen(filler_dump), 0600);
	for (int i = 0; i < KILLS; i++) {
		struct scope_err err = { 0 };
		char *raw, *got;
		size_t raw_len;
		json_t *view;
		int status, rc, ready[2];
		char c;
		pid_t pid;

		assert_int_equal(pipe(ready), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(ready[0]);
			child_registers_forever(path, (uint32_t)getppid(), ready[1]);
		}
		close(ready[1]);
		assert_int_equal(read(ready[0], &c, 1), 1);
		close(ready[0]);
		/* anywhere in the first few cycles */
		usleep((useconds_t)((unsigned)rand() % (4 * cycle)));
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status)) {
			print_error("writer exited with %d before the kill\n", WEXITSTATUS(status));
			fail();
		}

		/* the original reads a whole table or refuses */
		raw = tu_read_file(path, &raw_len);
		view = tu_original_view(raw, raw_len);
		if (view) {
			char *text = json_dumps(view, 0);
			struct scope_table *vt = tu_parse(text);
			char *vdump = tu_dump(vt);

			check_killed_table(vdump, 0, NULL);
			free(vdump);
			scope_table_free(vt);
			free(text);
			json_decref(view);
		} else {
			refused++;
		}
		free(raw);

		got = tu_load(path, &rc, &err);
		if (!got) {
			print_error("kill %d: reopen failed: %d %s\n", i, rc, err.msg);
			fail();
		}
		/* nothing a previous writer saved is lost */
		count = check_killed_table(got, count, filler_dump);
		free(got);
	}
	print_message("%d kills in %.1fs: %zu pods registered; %zu times the original "
		      "found the file mid-save\n",
		      KILLS, tu_now() - t0, count, refused);
	assert_true(count > 0);
	free(filler_dump);
	scope_table_free(t);
	tu_rmrf(dir);
	free(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stopped_handle_is_unusable),
		cmocka_unit_test(fault_injection_every_step),
		cmocka_unit_test(fault_injection_then_original_writes),
		cmocka_unit_test(killed_writers),
	};

	return cmocka_run_group_tests_name("core_crash", tests, NULL, NULL);
}
