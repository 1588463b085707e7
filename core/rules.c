/* SPDX-License-Identifier: MIT */
/*
 * rules.c - coverage of rules and the delegation-tree rules of the table:
 * overlap, full cover, effective write scope, conflict owner.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void rmeta_of(const struct scope_rule *r, struct rmeta *m)
{
	const char *slash = strrchr(r->target, '/');

	m->len = strlen(r->target);
	m->plen = slash ? (size_t)(slash - r->target) : 0;
	m->simple = path_simple(r->target);
}

/* Prepared targets of A's rules, kept until its rules change. */
const struct rmeta *alloc_meta(const struct scope_alloc *ca)
{
	struct scope_alloc *a = (struct scope_alloc *)ca; /* a cache */

	if (!a->priv->meta && a->nrules) {
		a->priv->meta = malloc(a->nrules * sizeof(*a->priv->meta));
		if (!a->priv->meta)
			return NULL;
		for (size_t i = 0; i < a->nrules; i++)
			rmeta_of(&a->rules[i], &a->priv->meta[i]);
	}
	return a->priv->meta;
}

/* Path relations on simple targets: plain byte comparisons. */
static bool fast_starts(const char *p, const struct rmeta *mp, const char *b, const struct rmeta *mb)
{
	if (mb->len == 1)
		return true;
	return mp->len >= mb->len && memcmp(p, b, mb->len) == 0 &&
	       (mp->len == mb->len || p[mb->len] == '/');
}

static bool fast_parent(const char *p, const struct rmeta *mp, const char *q, const struct rmeta *mq)
{
	if (mp->len == 1)
		return false;
	if (mp->plen == 0)
		return mq->len == 1;
	return mq->len == mp->plen && memcmp(p, q, mp->plen) == 0;
}

static bool overlap_prepared(const struct scope_rule *a, const struct rmeta *ma,
			     const struct scope_rule *b, const struct rmeta *mb)
{
	const char *x = a->target, *y = b->target;

	if (!ma || !mb || !ma->simple || !mb->simple)
		return scope_rules_overlap(a, b);
	if (a->recursive && b->recursive)
		return fast_starts(x, ma, y, mb) || fast_starts(y, mb, x, ma);
	if (a->recursive)
		return fast_starts(y, mb, x, ma) || fast_parent(x, ma, y, mb);
	if (b->recursive)
		return fast_starts(x, ma, y, mb) || fast_parent(y, mb, x, ma);
	return (ma->len == mb->len && memcmp(x, y, ma->len) == 0) || fast_parent(x, ma, y, mb) ||
	       fast_parent(y, mb, x, ma);
}

bool scope_rules_overlap(const struct scope_rule *a, const struct scope_rule *b)
{
	/* A recursive rule covers its target and all below, a shallow one its
	 * target and the target's direct children. */
	if (a->recursive && b->recursive)
		return scope_path_starts_with(a->target, b->target) ||
		       scope_path_starts_with(b->target, a->target);
	if (a->recursive)
		return scope_path_starts_with(b->target, a->target) ||
		       scope_path_parent_is(a->target, b->target);
	if (b->recursive)
		return scope_path_starts_with(a->target, b->target) ||
		       scope_path_parent_is(b->target, a->target);
	return scope_path_eq(a->target, b->target) || scope_path_parent_is(a->target, b->target) ||
	       scope_path_parent_is(b->target, a->target);
}

bool scope_covers_fully(const struct scope_rule *cover, const struct scope_rule *inner)
{
	if (cover->perm < inner->perm)
		return false;
	if (cover->recursive)
		return scope_path_starts_with(inner->target, cover->target);
	return !inner->recursive && scope_path_eq(inner->target, cover->target);
}

static bool any_write_overlap(const struct scope_alloc *a, const struct scope_rule *rule,
			      const struct rmeta *m)
{
	const struct rmeta *am = alloc_meta(a);

	for (size_t i = 0; i < a->nrules; i++)
		if (a->rules[i].perm == SCOPE_WRITE &&
		    overlap_prepared(&a->rules[i], am ? &am[i] : NULL, rule, m))
			return true;
	return false;
}

/* Some rule of A covers RULE fully (write rules only when RULE writes). */
static bool covered_by(const struct scope_rule *rules, size_t n, const struct scope_rule *rule)
{
	for (size_t i = 0; i < n; i++) {
		if (rule->perm == SCOPE_WRITE && rules[i].perm != SCOPE_WRITE)
			continue;
		if (scope_covers_fully(&rules[i], rule))
			return true;
	}
	return false;
}

/* Effective write check of PARENT, ignoring child SKIP (the pod whose own
 * rules are being replaced). */
bool within_effective_skip(const struct scope_table *t, const struct scope_alloc *parent,
				 const struct scope_rule *rule, const struct scope_alloc *skip)
{
	struct scope_alloc *c;
	struct rmeta m;

	if (!covered_by(parent->rules, parent->nrules, rule))
		return false;
	if (rule->perm != SCOPE_WRITE)
		return true;
	rmeta_of(rule, &m);
	for (c = scope_first_child(t, parent); c; c = scope_next_sibling(t, c))
		if (c != skip && any_write_overlap(c, rule, &m))
			return false;
	return true;
}

bool scope_within_effective_write(const struct scope_table *t, const char *parent,
				  const struct scope_rule *rule)
{
	struct scope_alloc *p = scope_find(t, parent);

	return p && within_effective_skip(t, p, rule, NULL);
}

/* The deepest pod under A whose write rules overlap RULE; SKIP's subtree
 * is left out.  DEPTH bounds the walk against cycles in foreign files. */
static const struct scope_alloc *conflict_in_subtree(const struct scope_table *t,
						     const struct scope_alloc *a,
						     const struct scope_rule *rule,
						     const struct rmeta *m,
						     const struct scope_alloc *skip, size_t depth)
{
	struct scope_alloc *c;

	if (a == skip || depth > t->n || !any_write_overlap(a, rule, m))
		return NULL;
	for (c = scope_first_child(t, a); c; c = scope_next_sibling(t, c)) {
		const struct scope_alloc *owner = conflict_in_subtree(t, c, rule, m, skip, depth + 1);

		if (owner)
			return owner;
	}
	return a;
}

const struct scope_alloc *conflict_owner_skip(const struct scope_table *t,
						    const struct scope_rule *rule, const char *exempt,
						    const struct scope_alloc *skip)
{
	struct rmeta m;

	if (rule->perm != SCOPE_WRITE)
		return NULL;
	rmeta_of(rule, &m);
	for (size_t i = 0; i < t->n; i++) {
		const struct scope_alloc *a = t->a[i], *owner;

		if (a->parent)
			continue;
		owner = conflict_in_subtree(t, a, rule, &m, skip, 0);
		if (!owner)
			continue;
		/* The original moves on to the next tree when the owner is exempt. */
		if (exempt && strcmp(owner->name, exempt) == 0)
			continue;
		return owner;
	}
	return NULL;
}

const char *scope_conflict_owner(const struct scope_table *t, const struct scope_rule *rule,
				 const char *exempt)
{
	const struct scope_alloc *owner = conflict_owner_skip(t, rule, exempt, NULL);

	return owner ? owner->name : NULL;
}
