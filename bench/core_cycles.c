/* SPDX-License-Identifier: MIT */
/*
 * core_cycles - register+release cycles per second through the core, on a
 * table that already holds N live allocations (default 0 100 1000 10000).
 *
 *   core_cycles [-d DIR] [-t SECONDS] [N...]
 *
 * DIR should be on tmpfs (default /dev/shm).  Each cycle is what a pod of
 * the original does twice: lock the file, reclaim stale entries, register
 * (or release), save, unlock.  Prints one line per N with cycles/s, the
 * table file's size and the process's peak and current resident memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scope.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long status_kib(const char *field)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = atol(line + strlen(field) + 1);
	fclose(f);
	return v;
}

static int die(const char *what, const struct scope_err *e)
{
	fprintf(stderr, "core_cycles: %s: %s\n", what, e->msg);
	exit(1);
}

/* One locked operation: lock, reclaim, OP, save, unlock. */
static void one_op(struct scope_file *f, struct scope_liveness *lv, bool reg, uint32_t pid)
{
	char target[] = "/bench/cycle";
	struct scope_rule rule = { .target = target, .perm = SCOPE_WRITE, .recursive = true };
	struct scope_spec spec = { .name = "cycle", .pid = pid, .socket = "/tmp/cycle.sock",
				   .rules = &rule, .nrules = 1 };
	struct scope_table *t;
	struct scope_err e = { 0 };

	if (scope_file_lock(f, &t, &e) < 0)
		die("lock", &e);
	scope_reclaim_stale(t, lv);
	if ((reg ? scope_register(t, &spec, &e) : scope_release(t, "cycle", &e)) < 0)
		die(reg ? "register" : "release", &e);
	if (scope_file_save(f, &e) < 0)
		die("save", &e);
	scope_table_clear_changes(t);
	scope_file_unlock(f);
}

/* Fills the table in a child, so this process's memory figures show only
 * what a user of the table holds. */
static void fill(const char *path, long n, uint32_t pid)
{
	pid_t child = fork();
	int status;
	struct scope_file *f;
	struct scope_table *t;
	struct scope_err e = { 0 };

	if (child < 0) {
		perror("fork");
		exit(1);
	}
	if (child > 0) {
		if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			exit(1);
		return;
	}
	if (scope_file_open(&f, path, &e) < 0 || scope_file_lock(f, &t, &e) < 0)
		die("open", &e);
	for (long i = 0; i < n; i++) {
		char name[32], target[64];
		struct scope_rule rule = { .target = target, .perm = SCOPE_WRITE, .recursive = true };
		struct scope_spec spec = { .name = name, .pid = pid, .rules = &rule, .nrules = 1 };

		snprintf(name, sizeof(name), "pod-%ld", i);
		snprintf(target, sizeof(target), "/bench/p%ld", i);
		char sock[80];

		snprintf(sock, sizeof(sock), "/run/bench/%s.sock", name);
		spec.socket = sock;
		if (scope_register(t, &spec, &e) < 0)
			die("fill", &e);
	}
	if (scope_file_save(f, &e) < 0)
		die("save", &e);
	scope_file_free(f);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *dir = "/dev/shm";
	double secs = 2.0;
	long sizes[16] = { 0, 100, 1000, 10000 };
	int nsizes = 4, opt;

	while ((opt = getopt(argc, argv, "d:t:h")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 't': secs = atof(optarg); break;
		default:
			fprintf(stderr, "usage: core_cycles [-d DIR] [-t SECONDS] [N...]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind < argc) {
		nsizes = 0;
		for (int i = optind; i < argc && nsizes < 16; i++)
			sizes[nsizes++] = atol(argv[i]);
	}
	printf("%8s %12s %12s %10s %10s %10s\n", "live", "cycles/s", "us/cycle", "file KiB",
	       "peak KiB", "rss KiB");
	for (int s = 0; s < nsizes; s++) {
		char tmpl[4096];
		char path[4200];
		struct scope_file *f;
		struct scope_procwatch *pw;
		struct scope_liveness lv;
		struct scope_err e = { 0 };
		long cycles = 0;
		double t0, el;
		FILE *st;
		long size = 0;

		snprintf(tmpl, sizeof(tmpl), "%s/scope-bench-XXXXXX", dir);
		if (!mkdtemp(tmpl)) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(path, sizeof(path), "%s/scope.lock", tmpl);
		fill(path, sizes[s], (uint32_t)getpid());
		if (scope_procwatch_new(&pw) < 0 || scope_file_open(&f, path, &e) < 0)
			die("open", &e);
		lv = scope_procwatch_liveness(pw);
		one_op(f, &lv, true, (uint32_t)getpid()); /* warm the cache */
		one_op(f, &lv, false, 0);
		t0 = now_s();
		do {
			one_op(f, &lv, true, (uint32_t)getpid());
			one_op(f, &lv, false, 0);
			cycles++;
		} while ((el = now_s() - t0) < secs);
		st = fopen(path, "r");
		if (st) {
			fseek(st, 0, SEEK_END);
			size = ftell(st);
			fclose(st);
		}
		printf("%8ld %12.0f %12.1f %10.1f %10ld %10ld\n", sizes[s], cycles / el,
		       el * 1e6 / cycles, size / 1024.0, status_kib("VmHWM:"), status_kib("VmRSS:"));
		fflush(stdout);
		scope_file_free(f);
		scope_procwatch_free(pw);
		unlink(path);
		snprintf(path, sizeof(path), "%s/scope.lock.journal", tmpl);
		unlink(path);
		rmdir(tmpl);
	}
	return 0;
}
