/* SPDX-License-Identifier: MIT */
/*
 * scope_driver - a program that uses the core library directly, for the
 * stress, crash and liveness tests (and bench/soak.sh).
 *
 *   scope_driver TABLE                 commands on stdin, one answer a line
 *   scope_driver TABLE saver PID SEED  save in a loop until killed
 *   scope_driver TABLE dump            a fresh open: print the table
 *
 * Command mode: each line is one whole transaction (lock, reclaim stale
 * with a pidfd liveness cache, the operation, save, unlock), answered by
 * "ok [N]" or "err ERRNO KIND message" once the save has returned:
 *
 *   reg NAME PID SESSION|- SOCKET|- RULE...
 *   del PARENT NAME PID RULE...
 *   rules NAME RULE...
 *   rel NAME
 *   adopt NAME PID [SESSION]
 *   sess NAME SESSION|-
 *   sock NAME PATH|-
 *   reap                   (answers "ok N": how many pods were reaped)
 *
 * RULE is PERM:REC:TARGET, PERM w|r, REC r (recursive) | s (shallow);
 * targets hold no blank.  "noreclaim" as the first line turns reclaim off.
 *
 * Saver mode registers, releases and rewrites pods owned by PID (a live
 * process, so that nothing is reaped) without end, printing "B OP NAME
 * NRULES" before taking the lock and "A" once the save returned: every
 * change with its "A" on stdout was acknowledged before a kill.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scope.h"

#define MAX_RULES 64
#define MAX_TOKENS (MAX_RULES + 8)

static struct scope_file *file;
static struct scope_procwatch *pw;
static int reclaim = 1;

static const char *kind_name(enum scope_kind k)
{
	static const char *names[] = { "ok",	   "io",       "corrupt", "duplicate",
				       "conflict", "notsubset", "unknown", "session",
				       "uncovered", "inval",    "unsafe" };

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

static int parse_rules(char **tok, int n, struct scope_rule *rules)
{
	for (int i = 0; i < n; i++) {
		char *t = tok[i];

		if (strlen(t) < 5 || t[1] != ':' || t[3] != ':')
			return -1;
		rules[i].perm = t[0] == 'w' ? SCOPE_WRITE : SCOPE_READ;
		rules[i].recursive = t[2] == 'r';
		rules[i].target = t + 4;
		rules[i].ext = NULL;
	}
	return 0;
}

static const char *opt(const char *s)
{
	return strcmp(s, "-") ? s : NULL;
}

/* One transaction; returns the answer's status. */
static int run(char **tok, int n, struct scope_err *err, size_t *count)
{
	struct scope_rule rules[MAX_RULES];
	struct scope_table *t;
	struct scope_liveness lv = scope_procwatch_liveness(pw);
	int rc;

	if (scope_file_lock(file, &t, err) < 0)
		return err->code;
	if (reclaim)
		*count = scope_reclaim_stale(t, &lv);
	rc = -EINVAL;
	if (!strcmp(tok[0], "reg") && n >= 5 && n - 5 <= MAX_RULES &&
	    !parse_rules(tok + 5, n - 5, rules)) {
		struct scope_spec s = { .name = tok[1],
					.pid = (uint32_t)strtoul(tok[2], NULL, 10),
					.session = opt(tok[3]),
					.socket = opt(tok[4]),
					.rules = rules,
					.nrules = (size_t)(n - 5) };
		rc = scope_register(t, &s, err);
	} else if (!strcmp(tok[0], "del") && n >= 4 && n - 4 <= MAX_RULES &&
		   !parse_rules(tok + 4, n - 4, rules)) {
		struct scope_spec s = { .name = tok[2],
					.pid = (uint32_t)strtoul(tok[3], NULL, 10),
					.rules = rules,
					.nrules = (size_t)(n - 4) };
		rc = scope_delegate(t, tok[1], &s, err);
	} else if (!strcmp(tok[0], "rules") && n >= 2 && n - 2 <= MAX_RULES &&
		   !parse_rules(tok + 2, n - 2, rules)) {
		rc = scope_set_rules(t, tok[1], rules, (size_t)(n - 2), err);
	} else if (!strcmp(tok[0], "rel") && n == 2) {
		rc = scope_release(t, tok[1], err);
	} else if (!strcmp(tok[0], "adopt") && (n == 3 || n == 4)) {
		rc = scope_adopt(t, tok[1], (uint32_t)strtoul(tok[2], NULL, 10), 0,
				 n == 4 ? opt(tok[3]) : NULL, err);
	} else if (!strcmp(tok[0], "sess") && n == 3) {
		rc = scope_set_session(t, tok[1], opt(tok[2]), err);
	} else if (!strcmp(tok[0], "sock") && n == 3) {
		rc = scope_set_socket(t, tok[1], strcmp(tok[2], "-") ? tok[2] : "", err);
	} else if (!strcmp(tok[0], "reap") && n == 1) {
		if (!reclaim)
			*count = scope_reclaim_stale(t, &lv);
		rc = 0;
	} else {
		snprintf(err->msg, sizeof(err->msg), "bad command `%s`", tok[0]);
		err->kind = SCOPE_EINVAL;
	}
	/* Reaped pods are saved even when the operation was refused, as the
	 * daemon does. */
	if (rc == 0 || *count) {
		struct scope_err serr = { 0 };
		int src = scope_file_save(file, &serr);

		if (src < 0) {
			*err = serr;
			rc = src;
		}
	}
	scope_table_clear_changes(t);
	scope_file_unlock(file);
	return rc;
}

static int command_mode(void)
{
	char line[65536];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char *tok[MAX_TOKENS], *save = NULL, *p;
		struct scope_err err = { 0 };
		size_t count = 0;
		int n = 0, rc;

		for (p = strtok_r(line, " \n", &save); p && n < MAX_TOKENS;
		     p = strtok_r(NULL, " \n", &save))
			tok[n++] = p;
		if (!n)
			continue;
		if (!strcmp(tok[0], "noreclaim")) {
			reclaim = 0;
			printf("ok\n");
			continue;
		}
		rc = run(tok, n, &err, &count);
		if (rc == 0)
			printf("ok %zu\n", count);
		else
			printf("err %d %s %s\n", -rc, kind_name(err.kind),
			       err.msg[0] ? err.msg : strerror(-rc));
	}
	return 0;
}

/* ---- saver ---- */

static unsigned long long rng;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static int saver(uint32_t pid, unsigned long long seed)
{
	static char targets[MAX_RULES][160];
	struct scope_rule rules[MAX_RULES];
	struct scope_err err;
	unsigned serial = 0;

	rng = seed * 2654435761ULL + 88172645463325252ULL;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		struct scope_table *t;
		const char *op;
		char name[64];
		unsigned nr = 1 + rnd(40), pick = rnd(10);
		size_t count;
		int rc;

		if (scope_file_lock(file, &t, &err) < 0) {
			printf("E %s\n", err.msg);
			return 1;
		}
		count = scope_table_count(t);
		/* Keep the table between ~40 and ~120 pods: big enough that a
		 * save spans many pages, small enough to stay quick. */
		if (count > 40 && (pick < 3 || count > 120)) {
			op = "rel";
			snprintf(name, sizeof(name), "%s", scope_table_at(t, rnd((unsigned)count))->name);
			nr = 0;
		} else if (count > 40 && pick < 5) {
			op = "rules";
			snprintf(name, sizeof(name), "%s", scope_table_at(t, rnd((unsigned)count))->name);
		} else {
			op = "reg";
			snprintf(name, sizeof(name), "s%u-%llu-%u", (unsigned)getpid(), seed, serial++);
		}
		for (unsigned i = 0; i < nr; i++) {
			snprintf(targets[i], sizeof(targets[i]),
				 "/saver/%s/%u/some/longer/path/to/fill/the/table/page/after/page", name,
				 rnd(100000));
			rules[i] = (struct scope_rule){ .target = targets[i],
							.perm = SCOPE_READ,
							.recursive = rnd(2) };
		}
		/* What is about to change, before it can be acknowledged. */
		printf("B %s %s %u\n", op, name, nr);
		if (!strcmp(op, "rel")) {
			rc = scope_release(t, name, &err);
		} else if (!strcmp(op, "rules")) {
			rc = scope_set_rules(t, name, rules, nr, &err);
		} else {
			struct scope_spec s = { .name = name, .pid = pid, .rules = rules, .nrules = nr };

			rc = scope_register(t, &s, &err);
		}
		if (rc == 0)
			rc = scope_file_save(file, &err);
		scope_table_clear_changes(t);
		scope_file_unlock(file);
		if (rc < 0) {
			printf("E %s\n", err.msg);
			return 1;
		}
		printf("A\n");
	}
}

static int dump(void)
{
	struct scope_table *t;
	struct scope_err err = { 0 };
	char *buf;
	size_t len;

	if (scope_file_lock(file, &t, &err) < 0) {
		fprintf(stderr, "scope_driver: %s\n", err.msg);
		return 1;
	}
	if (scope_table_dump(t, &buf, &len) < 0) {
		fprintf(stderr, "scope_driver: out of memory\n");
		return 1;
	}
	fwrite(buf, 1, len, stdout);
	free(buf);
	scope_file_unlock(file);
	return 0;
}

int main(int argc, char **argv)
{
	struct scope_err err = { 0 };
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s TABLE [saver PID SEED | dump]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (scope_file_open(&file, argv[1], &err) < 0) {
		fprintf(stderr, "scope_driver: %s\n", err.msg);
		return 1;
	}
	rc = scope_procwatch_new(&pw);
	if (rc < 0) {
		fprintf(stderr, "scope_driver: procwatch: %s\n", strerror(-rc));
		return 1;
	}
	if (argc == 5 && !strcmp(argv[2], "saver"))
		rc = saver((uint32_t)strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	else if (argc == 3 && !strcmp(argv[2], "dump"))
		rc = dump();
	else
		rc = command_mode();
	scope_procwatch_free(pw);
	scope_file_free(file);
	return rc;
}
