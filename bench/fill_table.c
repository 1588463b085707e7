/* SPDX-License-Identifier: MIT */
/*
 * fill_table - writes a table of N live top-level pods through the core,
 * for benchmarks: pod-I owns "write recursive /bench/pI", pid PID.
 *
 *   fill_table PATH N PID
 */
#include <stdio.h>
#include <stdlib.h>

#include "scope.h"

int main(int argc, char **argv)
{
	struct scope_file *f;
	struct scope_table *t;
	struct scope_err e = { 0 };
	long n;

	if (argc != 4) {
		fprintf(stderr, "usage: fill_table PATH N PID\n");
		return 2;
	}
	n = atol(argv[2]);
	if (scope_file_open(&f, argv[1], &e) < 0 || scope_file_lock(f, &t, &e) < 0) {
		fprintf(stderr, "fill_table: %s\n", e.msg);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		char name[32], target[64], sock[80];
		struct scope_rule rule = { .target = target, .perm = SCOPE_WRITE, .recursive = true };
		struct scope_spec spec = { .name = name, .pid = (uint32_t)atol(argv[3]),
					   .socket = sock, .rules = &rule, .nrules = 1 };

		snprintf(name, sizeof(name), "pod-%ld", i);
		snprintf(target, sizeof(target), "/bench/p%ld", i);
		snprintf(sock, sizeof(sock), "/run/bench/%s.sock", name);
		if (scope_register(t, &spec, &e) < 0) {
			fprintf(stderr, "fill_table: %s\n", e.msg);
			return 1;
		}
	}
	if (scope_file_save(f, &e) < 0) {
		fprintf(stderr, "fill_table: %s\n", e.msg);
		return 1;
	}
	scope_file_free(f);
	return 0;
}
