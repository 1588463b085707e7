/* SPDX-License-Identifier: MIT */
/*
 * The table file: where it is, what may be opened, the modes it is made
 * with, and the flock that serialises processes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core_testutil.h"

struct dirfx {
	char *dir;
	char *path;
};

static int setup(void **state)
{
	struct dirfx *fx = calloc(1, sizeof(*fx));

	fx->dir = tu_mkdtemp();
	fx->path = tu_join(fx->dir, "scope.lock");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct dirfx *fx = *state;

	tu_rmrf(fx->dir);
	free(fx->dir);
	free(fx->path);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Refusals                                                            */

static void refuses_symlink(void **state)
{
	struct dirfx *fx = *state;
	char *real = tu_join(fx->dir, "real.lock");
	struct scope_file *f = NULL;
	struct scope_err err = { 0 };
	struct stat st;
	size_t len;
	char *bytes;
	int rc;

	tu_write_file(real, "{}", 2, 0600);
	assert_int_equal(symlink(real, fx->path), 0);
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_err(rc, err, SCOPE_EUNSAFE, -EPERM, fx->path);
	assert_null(f);
	/* the link and its target are left alone */
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	bytes = tu_read_file(real, &len);
	assert_int_equal(len, 2);
	free(bytes);

	/* a dangling link is not followed to create a file either */
	unlink(real);
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_err(rc, err, SCOPE_EUNSAFE, -EPERM, NULL);
	assert_int_equal(access(real, F_OK), -1);
	free(real);
}

static void refuses_foreign_owner(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_err err = { 0 };
	struct stat st;
	int rc;

	tu_write_file(fx->path, "{}", 2, 0600);
	assert_int_equal(chown(fx->path, 65534, 65534), 0);
	assert_int_not_equal(65534, geteuid());
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_err(rc, err, SCOPE_EUNSAFE, -EPERM, fx->path);
	assert_null(f);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_size, 2);
}

static void refuses_directory(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_err err = { 0 };
	int rc;

	assert_int_equal(mkdir(fx->path, 0700), 0);
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_err(rc, err, SCOPE_EUNSAFE, -EPERM, NULL);
	assert_null(f);
}

static void refuses_fifo(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_err err = { 0 };
	int rc;

	/* refused, without blocking in open() */
	assert_int_equal(mkfifo(fx->path, 0600), 0);
	alarm(10);
	rc = scope_file_open(&f, fx->path, &err);
	alarm(0);
	assert_scope_err(rc, err, SCOPE_EUNSAFE, -EPERM, NULL);
	assert_null(f);
}

/* ------------------------------------------------------------------ */
/* Default path                                                        */

static void clear_env(void)
{
	unsetenv("INSOMNIA_RUNTIME_DIR");
	unsetenv("INSOMNIA_HOME");
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("HOME");
}

static void expect_path(const char *want)
{
	struct scope_err err = { 0 };
	char *path = NULL;
	int rc = scope_default_path(&path, &err);

	if (!want) {
		assert_int_equal(rc, -ENOENT);
		assert_int_equal(err.code, -ENOENT);
		return;
	}
	assert_scope_ok(rc, err);
	assert_non_null(path);
	assert_string_equal(path, want);
	free(path);
}

static void default_path_resolution(void **state)
{
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	(void)state;
	clear_env();
	expect_path(NULL);
	setenv("HOME", "/h", 1);
	expect_path("/h/.insomnia/run/scope.lock");
	setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
	expect_path("/run/user/7/insomnia/scope.lock");
	setenv("INSOMNIA_HOME", "/ih", 1);
	expect_path("/ih/run/scope.lock");
	setenv("INSOMNIA_RUNTIME_DIR", "/ir", 1);
	expect_path("/ir/scope.lock");

	/* an empty variable counts as unset, at every level */
	setenv("INSOMNIA_RUNTIME_DIR", "", 1);
	expect_path("/ih/run/scope.lock");
	setenv("INSOMNIA_HOME", "", 1);
	expect_path("/run/user/7/insomnia/scope.lock");
	setenv("XDG_RUNTIME_DIR", "", 1);
	expect_path("/h/.insomnia/run/scope.lock");
	setenv("HOME", "", 1);
	expect_path(NULL);

	/* each alone */
	clear_env();
	setenv("INSOMNIA_RUNTIME_DIR", "/ir", 1);
	expect_path("/ir/scope.lock");
	clear_env();
	setenv("INSOMNIA_HOME", "/ih", 1);
	expect_path("/ih/run/scope.lock");
	clear_env();
	setenv("XDG_RUNTIME_DIR", "/x", 1);
	expect_path("/x/insomnia/scope.lock");

	clear_env();
	if (home) {
		setenv("HOME", home, 1);
		free(home);
	}
}

/* ------------------------------------------------------------------ */
/* Modes                                                               */

static void mode_is(const char *path, mode_t want)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	if ((st.st_mode & 07777) != want) {
		print_error("%s: mode %o, want %o\n", path, st.st_mode & 07777, want);
		fail();
	}
}

static void lock_save(const char *path)
{
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	static const char *const targets[] = { "/a", "/b", "/c", "/d" };
	struct scope_rule r = WRULE("/src", true);
	char name[32];
	int rc;

	rc = scope_file_open(&f, path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	snprintf(name, sizeof(name), "p%zu", scope_table_count(t));
	/* a distinct target per call */
	r.target = (char *)targets[scope_table_count(t) % ARRAY_SIZE(targets)];
	tu_register(t, name, &r, 1, NULL);
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	scope_file_unlock(f);
	scope_file_free(f);
}

static void created_modes(void **state)
{
	struct dirfx *fx = *state;
	char *d1 = tu_join(fx->dir, "a"), *d2 = tu_join(d1, "b"), *d3 = tu_join(d2, "c");
	char *path = tu_join(d3, "scope.lock");
	struct scope_file *f = NULL;
	struct scope_err err = { 0 };
	mode_t old;
	DIR *dir;
	struct dirent *de;
	int rc;

	old = umask(0);
	rc = scope_file_open(&f, path, &err);
	umask(old);
	assert_scope_ok(rc, err);
	scope_file_free(f);
	mode_is(d1, 0700);
	mode_is(d2, 0700);
	mode_is(d3, 0700);
	mode_is(path, 0600);

	/* whatever else the core keeps beside the table is private too */
	old = umask(0);
	lock_save(path);
	lock_save(path);
	umask(old);
	dir = opendir(d3);
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		char *p;

		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		p = tu_join(d3, de->d_name);
		mode_is(p, 0600);
		free(p);
	}
	closedir(dir);
	free(path);
	free(d3);
	free(d2);
	free(d1);
}

static void existing_modes_left_alone(void **state)
{
	struct dirfx *fx = *state;
	char *d1 = tu_join(fx->dir, "open"), *path = tu_join(d1, "scope.lock");
	struct stat before, after;

	assert_int_equal(mkdir(d1, 0755), 0);
	assert_int_equal(chmod(d1, 0755), 0);
	tu_write_file(path, "", 0, 0644);
	assert_int_equal(stat(path, &before), 0);
	lock_save(path);
	lock_save(path);
	mode_is(d1, 0755);
	mode_is(path, 0644);
	/* rewritten in place: other processes lock this same inode */
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_uid, before.st_uid);
	free(path);
	free(d1);
}

/* ------------------------------------------------------------------ */
/* Locking across processes                                            */

static void lock_blocks_other_process(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	int to_parent[2], status, rc;
	char c;
	pid_t pid;
	struct pollfd pfd;

	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(pipe(to_parent), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* child: its own handle, so its own open file description */
		struct scope_file *g = NULL;
		struct scope_table *u = NULL;
		struct scope_err e = { 0 };
		char r;

		close(to_parent[0]);
		if (scope_file_open(&g, fx->path, &e))
			_exit(10);
		if (scope_file_trylock(g, &u, &e) != -EWOULDBLOCK)
			_exit(11);
		r = 'w'; /* about to wait */
		if (write(to_parent[1], &r, 1) != 1)
			_exit(12);
		if (scope_file_lock(g, &u, &e))
			_exit(13);
		/* the parent's change, made while we waited, is here */
		r = scope_find(u, "late") ? 'L' : 'x';
		if (write(to_parent[1], &r, 1) != 1)
			_exit(14);
		scope_file_unlock(g);
		scope_file_free(g);
		_exit(0);
	}
	close(to_parent[1]);
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_int_equal(c, 'w');
	/* while we hold the lock, the child must not get it */
	pfd = (struct pollfd){ .fd = to_parent[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 300), 0);
	tu_register(t, "late", NULL, 0, NULL);
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(poll(&pfd, 1, 100), 0);
	scope_file_unlock(f);

	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_int_equal(c, 'L');
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(to_parent[0]);

	/* and once free, a trylock succeeds */
	rc = scope_file_trylock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_non_null(scope_find(t, "late"));
	scope_file_unlock(f);
	scope_file_free(f);
}

/* The original's pods lock the same file with flock(2): a core holding the
 * lock keeps them out, and they keep the core out. */
static void lock_is_flock_on_the_file(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	int fd, rc;

	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	fd = open(fx->path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	scope_file_unlock(f);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	rc = scope_file_trylock(f, &t, &err);
	assert_scope_err(rc, err, SCOPE_EIO, -EWOULDBLOCK, NULL);
	assert_int_equal(flock(fd, LOCK_UN), 0);
	close(fd);
	scope_file_free(f);
}

/* What another program wrote under the lock is what the next lock sees. */
static void lock_rereads_foreign_change(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	size_t len;
	char *text = tu_fixture("tree.json", &len);
	int rc;

	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_table_count(t), 0);
	scope_file_unlock(f);
	/* the original rewrites in place: truncate + write */
	tu_write_file(fx->path, text, len, 0600);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_table_count(t), 5);
	assert_non_null(scope_find(t, "worker-core"));
	scope_file_unlock(f);
	tu_write_file(fx->path, "", 0, 0600);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_table_count(t), 0);
	scope_file_unlock(f);
	scope_file_free(f);
	free(text);
}

/* Unsaved changes are forgotten at unlock; the next lock reads the file. */
static void unsaved_changes_forgotten(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	int rc;

	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	tu_register(t, "kept", NULL, 0, NULL);
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	tu_register(t, "dropped", NULL, 0, NULL);
	scope_file_unlock(f);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_non_null(scope_find(t, "kept"));
	assert_null(scope_find(t, "dropped"));
	assert_int_equal(scope_table_count(t), 1);
	scope_file_unlock(f);
	scope_file_free(f);
}

/* A save with nothing changed writes nothing. */
static void save_without_change_writes_nothing(void **state)
{
	struct dirfx *fx = *state;
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	struct stat st;
	size_t len;
	char *text = tu_fixture("tree.json", &len), *after;
	int rc;

	tu_write_file(fx->path, text, len, 0600);
	assert_int_equal(utimensat(AT_FDCWD, fx->path, old, 0), 0);
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_table_count(t), 5);
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	scope_file_unlock(f);
	scope_file_free(f);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	after = tu_read_file(fx->path, NULL);
	assert_string_equal(after, text);
	free(after);
	free(text);
}

static bool has_change(struct scope_table *t, enum scope_change_kind kind, const char *name)
{
	const struct scope_change *ch;
	size_t n = scope_table_changes(t, &ch);

	for (size_t i = 0; i < n; i++)
		if (ch[i].kind == kind && !strcmp(ch[i].name, name))
			return true;
	return false;
}

/* A change made by another program shows in the change log as what it
 * amounts to. */
static void lock_reports_foreign_changes(void **state)
{
	struct dirfx *fx = *state;
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	size_t len;
	char *text = tu_fixture("tree.json", &len), *edited, *p;
	int rc;

	tu_write_file(fx->path, text, len, 0600);
	rc = scope_file_open(&f, fx->path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	scope_file_unlock(f);
	scope_table_clear_changes(t);

	/* another writer: "reader" renamed "reader2" (one gone, one new) */
	p = strstr(text, "\"pod_name\": \"reader\"");
	assert_non_null(p);
	p += strlen("\"pod_name\": \"reader");
	if (asprintf(&edited, "%.*s2%s", (int)(p - text), text, p) < 0)
		abort();
	tu_write_file(fx->path, edited, len + 1, 0600);

	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_non_null(scope_find(t, "reader2"));
	assert_null(scope_find(t, "reader"));
	assert_true(has_change(t, SCOPE_CH_DELEGATE, "reader2"));
	assert_true(has_change(t, SCOPE_CH_RELEASE, "reader"));
	assert_false(has_change(t, SCOPE_CH_RELEASE, "orchestrator"));
	scope_file_unlock(f);
	scope_file_free(f);
	free(edited);
	free(text);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(refuses_symlink),
		T(refuses_foreign_owner),
		T(refuses_directory),
		T(refuses_fifo),
		T(default_path_resolution),
		T(created_modes),
		T(existing_modes_left_alone),
		T(lock_blocks_other_process),
		T(lock_is_flock_on_the_file),
		T(lock_rereads_foreign_change),
		T(unsaved_changes_forgotten),
		T(save_without_change_writes_nothing),
		T(lock_reports_foreign_changes),
	};

	return cmocka_run_group_tests_name("core_file", tests, NULL, NULL);
}
