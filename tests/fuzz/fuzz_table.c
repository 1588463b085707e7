/* SPDX-License-Identifier: MIT */
/*
 * fuzz_table.c - the table file reader and writer.
 *
 * Input: the bytes of a table file.  Properties checked (abort on failure):
 *  - scope_table_parse never crashes, leaks or reads out of bounds;
 *  - a parsed table dumps, its dump parses again and dumps to the very same
 *    bytes (round-trip stability: what we write we read back unchanged);
 *  - the name index finds, for every entry, the first entry of that name;
 *    the delegation index lists exactly the entries naming it as parent;
 *  - after reclaim (every other entry dead), scope_set_rules and
 *    scope_release on the first entry, the incrementally rendered dump
 *    still parses and equals a full render of what it holds.
 */
#include <string.h>

#include "fuzz_common.h"

#define SESSION "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"

static void check_index(const struct scope_table *t)
{
	size_t n = scope_table_count(t);

	if (n > 512)
		return; /* quadratic below; the fuzzer's inputs are far smaller */
	for (size_t i = 0; i < n; i++) {
		struct scope_alloc *a = scope_table_at(t, i), *first = NULL, *f, *c;
		size_t k, walked;

		FUZZ_CHECK(a && a->name && a->socket, "entry %zu incomplete", i);
		for (k = 0; k < n && !first; k++)
			if (strcmp(scope_table_at(t, k)->name, a->name) == 0)
				first = scope_table_at(t, k);
		f = scope_find(t, a->name);
		FUZZ_CHECK(f == first, "scope_find(`%s`) is not the first entry of that name", a->name);
		if (a != first)
			continue;
		/* children of A: entries naming it as parent, in table order */
		k = 0;
		walked = 0;
		for (c = scope_first_child(t, a); c; c = scope_next_sibling(t, c)) {
			FUZZ_CHECK(++walked <= n, "sibling list of `%s` loops", a->name);
			while (k < n) {
				struct scope_alloc *e = scope_table_at(t, k++);

				if (e != a && e->parent && strcmp(e->parent, a->name) == 0) {
					FUZZ_CHECK(e == c, "child list of `%s` skips or misorders `%s`",
						   a->name, e->name);
					break;
				}
			}
		}
		for (; k < n; k++) {
			struct scope_alloc *e = scope_table_at(t, k);

			FUZZ_CHECK(e == a || !e->parent || strcmp(e->parent, a->name) != 0,
				   "child `%s` of `%s` missing from the index", e->name, a->name);
		}
	}
}

/* Parse BUF; it must parse and dump to itself.  Returns the table. */
static struct scope_table *reparse_same(const char *buf, size_t len, const char *what)
{
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	char *d;
	size_t dl;
	int rc = scope_table_parse(buf, len, "dump", &t, &err);

	FUZZ_CHECK(rc == 0, "%s does not parse again: %s", what, err.msg);
	FUZZ_CHECK(scope_table_dump(t, &d, &dl) == 0, "dump failed");
	FUZZ_CHECK(dl == len && memcmp(d, buf, len) == 0,
		   "%s is not stable:\n--- first\n%.*s\n--- second\n%.*s", what, (int)len, buf,
		   (int)dl, d);
	free(d);
	check_index(t);
	return t;
}

/* Dump T and check the dump against a fresh parse of it. */
static void dump_check(struct scope_table *t, const char *what)
{
	char *d;
	size_t dl;

	FUZZ_CHECK(scope_table_dump(t, &d, &dl) == 0, "dump failed");
	FUZZ_CHECK(strlen(d) == dl, "dump length %zu but strlen %zu", dl, strlen(d));
	scope_table_free(reparse_same(d, dl, what));
	free(d);
}

struct every_other {
	unsigned calls;
};

static bool alive_every_other(void *ctx, const struct scope_alloc *a)
{
	struct every_other *e = ctx;

	(void)a;
	return e->calls++ % 2 == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scope_table *t = NULL, *t2;
	struct scope_err err = { 0 };
	struct every_other eo = { 0 };
	struct scope_liveness lv = { NULL, alive_every_other, &eo };
	char *d1, *name;
	size_t l1, before, reaped;

	if (scope_table_parse((const char *)data, size, "fuzz", &t, &err) < 0) {
		FUZZ_CHECK(err.kind != SCOPE_OK && err.code < 0 && memchr(err.msg, '\0', sizeof(err.msg)),
			   "failure without an error");
		return 0;
	}
	check_index(t);

	/* round trip */
	FUZZ_CHECK(scope_table_dump(t, &d1, &l1) == 0, "dump failed");
	FUZZ_CHECK(strlen(d1) == l1, "dump holds a NUL");
	t2 = reparse_same(d1, l1, "the dump");
	FUZZ_CHECK(scope_table_count(t2) == scope_table_count(t), "count changed in the round trip");
	for (size_t i = 0; i < scope_table_count(t); i++) {
		const struct scope_alloc *a = scope_table_at(t, i), *b = scope_table_at(t2, i);

		FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->pid == b->pid &&
				   a->pid_start == b->pid_start && strcmp(a->socket, b->socket) == 0 &&
				   a->nrules == b->nrules && !a->parent == !b->parent &&
				   !a->session == !b->session,
			   "entry %zu changed in the round trip", i);
		for (size_t k = 0; k < a->nrules; k++)
			FUZZ_CHECK(strcmp(a->rules[k].target, b->rules[k].target) == 0 &&
					   a->rules[k].perm == b->rules[k].perm &&
					   a->rules[k].recursive == b->rules[k].recursive,
				   "rule %zu of entry %zu changed in the round trip", k, i);
	}
	scope_table_free(t2);
	free(d1);

	/* reclaim: every other entry is dead */
	before = scope_table_count(t);
	reaped = scope_reclaim_stale(t, &lv);
	FUZZ_CHECK(scope_table_count(t) + reaped == before, "reclaim count %zu of %zu, %zu left",
		   reaped, before, scope_table_count(t));
	check_index(t);
	dump_check(t, "the dump after reclaim");

	if (scope_table_count(t) > 0) {
		struct scope_alloc *a = scope_table_at(t, 0);
		struct scope_alloc *last = scope_table_at(t, scope_table_count(t) - 1);
		struct scope_rule *rules;
		size_t nrules;

		name = strdup(a->name);
		FUZZ_CHECK(name != NULL, "out of memory");
		/* Take the last entry's rules (conflicts, subset checks), else drop
		 * the first's last rule (coverage of its delegates). */
		FUZZ_CHECK(scope_rules_dup(last->rules, last->nrules, &rules) == 0, "out of memory");
		nrules = last->nrules;
		if (scope_set_rules(t, name, rules, nrules, &err) < 0 && a->nrules > 0) {
			scope_rules_free(rules, nrules);
			FUZZ_CHECK(scope_rules_dup(a->rules, a->nrules, &rules) == 0, "out of memory");
			nrules = a->nrules;
			scope_set_rules(t, name, rules, nrules - 1, &err);
		}
		scope_rules_free(rules, nrules);
		check_index(t);
		dump_check(t, "the dump after set_rules");

		FUZZ_CHECK(scope_release(t, name, &err) == 0, "release of `%s` failed: %s", name,
			   err.msg);
		check_index(t);
		dump_check(t, "the dump after release");
		free(name);
	}
	scope_table_free(t);
	return 0;
}
