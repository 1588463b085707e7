/* SPDX-License-Identifier: MIT */
/*
 * register_pod.c - a program outside the tree, built by the install test
 * against the installed scopefs-core (pkg-config) only: registers a pod in
 * a table the way any front end of the core does.
 *
 *     register_pod TABLE NAME PID [RULE-LINES]
 */
#include <scope.h> /* -I.../include/scopefs from scopefs-core.pc */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char *argv[])
{
	struct scope_err err = { 0 };
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_rule *rules = NULL;
	size_t nrules = 0;
	struct scope_spec spec = { 0 };
	int rc, ret = 1;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: register_pod TABLE NAME PID [RULE-LINES]\n");
		return 2;
	}
	if (argc == 5 && scope_rules_parse(argv[4], strlen(argv[4]), &rules, &nrules, &err) < 0)
		goto fail;
	rc = scope_file_open(&f, argv[1], &err);
	if (rc < 0)
		goto fail;
	rc = scope_file_lock(f, &t, &err);
	if (rc < 0)
		goto fail;
	spec.name = argv[2];
	spec.pid = (uint32_t)strtoul(argv[3], NULL, 10);
	spec.rules = rules;
	spec.nrules = nrules;
	rc = scope_register(t, &spec, &err);
	if (rc < 0)
		goto fail;
	rc = scope_file_save(f, &err);
	if (rc < 0)
		goto fail;
	scope_file_unlock(f);
	printf("%s %zu\n", scope_find(t, argv[2]) ? "registered" : "lost", scope_table_count(t));
	ret = 0;
	goto out;
fail:
	fprintf(stderr, "register_pod: %s\n", err.msg[0] ? err.msg : "failed");
out:
	scope_rules_free(rules, nrules);
	scope_file_free(f);
	return ret;
}
