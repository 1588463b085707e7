/* SPDX-License-Identifier: MIT */
/*
 * Liveness: the original's kill(pid, 0) probe, start times against pid
 * reuse, the pidfd cache, and stale reclaim driven by real processes.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core_testutil.h"

/* A child that waits to be killed. */
static pid_t sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
		for (;;)
			pause();
	}
	return pid;
}

static void kill_reap(pid_t pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* Field 22 of /proc/PID/stat, read here independently. */
static uint64_t stat_start(pid_t pid)
{
	char path[64], *buf, *p;
	unsigned long long v = 0;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	buf = tu_read_file(path, NULL);
	assert_non_null(buf);
	p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	assert_non_null(p);
	p++;
	while (*p && field < 22) {
		if (*p == ' ')
			field++;
		p++;
	}
	v = strtoull(p, NULL, 10);
	free(buf);
	return v;
}

static void proc_start(void **state)
{
	uint64_t start = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(scope_proc_start((uint32_t)getpid(), &start), 0);
	assert_true(start > 0);
	assert_int_equal(start, stat_start(getpid()));
	pid = sleeper();
	assert_int_equal(scope_proc_start((uint32_t)pid, &start), 0);
	assert_int_equal(start, stat_start(pid));
	kill_reap(pid);
	assert_int_equal(scope_proc_start((uint32_t)pid, &start), -ESRCH);
	assert_int_equal(scope_proc_start(0, &start), -ESRCH);
}

static void pid_alive(void **state)
{
	uint64_t start = 0;
	pid_t pid;

	(void)state;
	assert_int_equal(scope_proc_start((uint32_t)getpid(), &start), 0);
	assert_false(scope_pid_alive(0, 0)); /* the original: pid 0 is dead */
	assert_true(scope_pid_alive((uint32_t)getpid(), 0));
	assert_true(scope_pid_alive((uint32_t)getpid(), start));
	assert_false(scope_pid_alive((uint32_t)getpid(), start + 1)); /* reused pid */
	assert_true(scope_pid_alive(1, 0)); /* exists, whoever owns it */
	pid = sleeper();
	assert_true(scope_pid_alive((uint32_t)pid, 0));
	kill_reap(pid);
	assert_false(scope_pid_alive((uint32_t)pid, 0));
	assert_false(scope_pid_alive(0xfffffff0u, 0));
}

/* The original's probe as a liveness: kill(pid, 0) and the start time. */
static bool probe_alive(void *ctx, const struct scope_alloc *a)
{
	(void)ctx;
	return scope_pid_alive(a->pid, a->pid_start);
}

static const struct scope_liveness probe = { .alive = probe_alive };

/* The original's register_pod: reclaim stale entries, then register. */
static int reclaim_register(struct scope_table *t, const struct scope_spec *spec,
			    struct scope_err *err)
{
	scope_reclaim_stale(t, &probe);
	return scope_register(t, spec, err);
}

/* A crashed pod's scope does not block a new one. */
static void register_reclaims_dead_owner(void **state)
{
	struct scope_table *t = scope_table_new();
	struct scope_rule src = WRULE("/src", true), core = WRULE("/src/core", true);
	struct scope_spec a = { .name = "a", .rules = &src, .nrules = 1 };
	struct scope_spec b = { .name = "b", .pid = (uint32_t)getpid(), .rules = &src, .nrules = 1 };
	struct scope_err err = { 0 };
	pid_t pid = sleeper();
	int rc;

	(void)state;
	a.pid = (uint32_t)pid;
	rc = reclaim_register(t, &a, &err);
	assert_scope_ok(rc, err);
	assert_true(scope_find(t, "a")->pid_start > 0);
	/* alive: refused */
	rc = reclaim_register(t, &b, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY,
			 "requested scope `/src` conflicts with pod `a`");
	tu_delegate(t, "a", "a-child", &core, 1);
	rc = reclaim_register(t, &b, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY, "conflicts with pod `a-child`");
	kill_reap(pid);
	/* dead: a goes, its delegate is now top-level and still holds /src/core */
	rc = reclaim_register(t, &b, &err);
	assert_scope_err(rc, err, SCOPE_ECONFLICT, -EBUSY, "conflicts with pod `a-child`");
	assert_null(scope_find(t, "a"));
	assert_null(scope_find(t, "a-child")->parent);
	b.rules = &WRULE("/src/other", true);
	rc = reclaim_register(t, &b, &err);
	assert_scope_ok(rc, err);
	scope_table_free(t);
}

/* A pod whose recorded start time is not its process's: the pid was
 * reused by another process, the pod is dead. */
static void reused_pid_is_dead(void **state)
{
	struct scope_table *t = scope_table_new();
	struct scope_rule src = WRULE("/src", true);
	uint64_t start = 0;
	struct scope_spec a = { .name = "a", .pid = (uint32_t)getpid(), .rules = &src, .nrules = 1 };
	struct scope_spec b = { .name = "b", .pid = (uint32_t)getpid(), .rules = &src, .nrules = 1 };
	struct scope_err err = { 0 };
	int rc;

	(void)state;
	assert_int_equal(scope_proc_start((uint32_t)getpid(), &start), 0);
	a.pid_start = start + 1000;
	rc = scope_register(t, &a, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_find(t, "a")->pid_start, start + 1000);
	rc = reclaim_register(t, &b, &err);
	assert_scope_ok(rc, err);
	assert_null(scope_find(t, "a"));
	/* looked up when not given */
	assert_int_equal(scope_find(t, "b")->pid_start, start);
	scope_table_free(t);
}

static void procwatch(void **state)
{
	struct scope_procwatch *pw = NULL;
	struct scope_table *t = scope_table_new();
	struct scope_liveness lv;
	struct scope_spec a = { .name = "a" };
	struct scope_err err = { 0 };
	struct pollfd pfd;
	pid_t pid = sleeper();
	int rc;

	(void)state;
	assert_int_equal(scope_procwatch_new(&pw), 0);
	assert_non_null(pw);
	assert_true(scope_procwatch_fd(pw) >= 0);
	assert_true(scope_procwatch_alive(pw, (uint32_t)pid, 0));
	assert_false(scope_procwatch_alive(pw, 0, 0));
	a.pid = (uint32_t)pid;
	rc = scope_register(t, &a, &err);
	assert_scope_ok(rc, err);
	lv = scope_procwatch_liveness(pw);
	assert_int_equal(scope_reclaim_stale(t, &lv), 0);
	/* the cache honours a recorded start time too */
	assert_false(scope_procwatch_alive(pw, (uint32_t)getpid(), 1));

	/* its death makes the fd readable, without polling /proc */
	assert_int_equal(kill(pid, SIGKILL), 0);
	pfd = (struct pollfd){ .fd = scope_procwatch_fd(pw), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true(scope_procwatch_collect(pw) >= 1);
	assert_false(scope_procwatch_alive(pw, (uint32_t)pid, 0));
	assert_int_equal(scope_reclaim_stale(t, &lv), 1);
	assert_null(scope_find(t, "a"));
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	scope_procwatch_free(pw);
	scope_table_free(t);
}

static void procwatch_grace(void **state)
{
	struct scope_procwatch *pw = NULL;
	struct pollfd pfd;
	pid_t pid = sleeper();
	double t0;

	(void)state;
	assert_int_equal(scope_procwatch_new(&pw), 0);
	assert_int_equal(scope_procwatch_next_deadline(pw), -1);
	assert_true(scope_procwatch_alive(pw, (uint32_t)pid, 0));
	scope_procwatch_grace(pw, (uint32_t)pid, 1500);
	assert_int_equal(kill(pid, SIGKILL), 0);
	t0 = tu_now();
	pfd = (struct pollfd){ .fd = scope_procwatch_fd(pw), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	scope_procwatch_collect(pw);
	/* dead, but counted alive for the grace period */
	assert_true(scope_procwatch_alive(pw, (uint32_t)pid, 0));
	assert_in_range(scope_procwatch_next_deadline(pw), 0, 1500);
	if (tu_now() - t0 < 1.0)
		assert_true(scope_procwatch_alive(pw, (uint32_t)pid, 0));
	usleep(1700 * 1000);
	scope_procwatch_collect(pw);
	assert_false(scope_procwatch_alive(pw, (uint32_t)pid, 0));
	assert_int_equal(scope_procwatch_next_deadline(pw), -1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	scope_procwatch_free(pw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(proc_start),
		cmocka_unit_test(pid_alive),
		cmocka_unit_test(register_reclaims_dead_owner),
		cmocka_unit_test(reused_pid_is_dead),
		cmocka_unit_test(procwatch),
		cmocka_unit_test(procwatch_grace),
	};

	return cmocka_run_group_tests_name("core_proc", tests, NULL, NULL);
}
