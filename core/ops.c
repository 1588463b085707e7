/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the operations of the original registry (register, delegate,
 * release, adopt, reclaim) and what the mount adds (replace rules, set the
 * session or socket).  Each checks everything before it changes anything,
 * so a refused operation leaves the table as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int oom(struct scope_err *err)
{
	return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
}

static int err_unknown(struct scope_err *err, const char *name)
{
	return err_set(err, SCOPE_EUNKNOWN, -ENOENT, "pod `%s` is not registered", name);
}

static int err_conflict(struct scope_err *err, const struct scope_rule *r, const char *owner)
{
	return err_set(err, SCOPE_ECONFLICT, -EBUSY,
			  "requested scope `%s` conflicts with pod `%s`", r->target, owner);
}

static int err_not_subset(struct scope_err *err, const struct scope_rule *r, const char *spawner)
{
	return err_set(err, SCOPE_ENOTSUBSET, -EPERM,
			  "requested scope `%s` is not within spawner `%s`'s effective scope",
			  r->target, spawner);
}

static int check_session(const struct scope_table *t, const char *session,
			 const struct scope_alloc *self, struct scope_err *err)
{
	const struct scope_alloc *holder;

	if (!scope_session_valid(session))
		return err_set(err, SCOPE_EINVAL, -EINVAL, "session `%s` is not a UUID", session);
	holder = scope_find_session(t, session);
	if (holder && holder != self)
		return err_set(err, SCOPE_ESESSION, -EBUSY,
				  "session `%s` is already held by pod `%s`", session, holder->name);
	return 0;
}

static int check_socket(const char *socket, struct scope_err *err)
{
	if (socket && socket[0] && socket[0] != '/')
		return err_set(err, SCOPE_EINVAL, -EINVAL, "socket `%s` is not an absolute path",
				  socket);
	if (socket && !utf8_valid(socket, strlen(socket)))
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "socket path is not valid UTF-8 (the table is JSON)");
	return 0;
}

/* What the file will hold must parse again: names and targets are JSON
 * strings, so UTF-8. */
static int check_strings(const char *name, const struct scope_rule *rules, size_t n,
			 struct scope_err *err)
{
	if (name && !utf8_valid(name, strlen(name)))
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "pod name is not valid UTF-8 (the table is JSON)");
	for (size_t i = 0; i < n; i++)
		if (!utf8_valid(rules[i].target, strlen(rules[i].target)))
			return err_set(err, SCOPE_EINVAL, -EINVAL,
					  "target of rule %zu is not valid UTF-8 (the table is JSON)",
					  i + 1);
	return 0;
}

/* A new entry from SPEC; ownership of strings stays with the caller. */
static struct scope_alloc *alloc_from_spec(const struct scope_spec *spec, const char *parent,
					   const char *session)
{
	struct scope_alloc *a = alloc_new();

	if (!a)
		return NULL;
	a->name = strdup(spec->name);
	a->pid = spec->pid;
	a->pid_start = spec->pid_start;
	if (!a->pid_start && scope_proc_start(spec->pid, &a->pid_start) < 0)
		a->pid_start = 0;
	a->socket = strdup(spec->socket ? spec->socket : "");
	a->parent = xstrdup(parent);
	a->session = xstrdup(session);
	if (!a->name || !a->socket || (parent && !a->parent) || (session && !a->session) ||
	    scope_rules_dup(spec->rules, spec->nrules, &a->rules) < 0) {
		alloc_free(a);
		return NULL;
	}
	a->nrules = spec->nrules;
	return a;
}

/* Reparent A's delegates to A's own parent, noting each move. */
static int reparent_children(struct scope_table *t, const struct scope_alloc *a)
{
	for (size_t i = 0; i < t->n; i++) {
		struct scope_alloc *c = t->a[i];
		char *np;

		if (c == a || !c->parent || strcmp(c->parent, a->name) != 0)
			continue;
		np = xstrdup(a->parent);
		if (a->parent && !np)
			return -ENOMEM;
		free(c->parent);
		c->parent = np;
		table_touch(t, c);
		table_note(t, SCOPE_CH_REPARENT, c->name, "%s", np ? np : "-");
	}
	t->index_dirty = true;
	return 0;
}

static int remove_pod(struct scope_table *t, struct scope_alloc *a, enum scope_change_kind kind)
{
	size_t i = table_index_of(t, a);
	uint32_t pid = a->pid;
	bool has_children = scope_first_child(t, a) != NULL;
	int rc;

	/* Without children in the index, no entry names it as parent (unless the
	 * file holds orphans or duplicate names). */
	if (has_children || t->norphans || scope_find(t, a->name) != a) {
		rc = reparent_children(t, a);
		if (rc < 0)
			return rc;
	}
	if (kind == SCOPE_CH_REAP)
		table_note(t, kind, a->name, "%u", pid);
	else
		table_note(t, kind, a->name, NULL);
	table_remove_at(t, i);
	return 0;
}

size_t scope_reclaim_stale(struct scope_table *t, const struct scope_liveness *lv)
{
	size_t n = 0;

	if (lv->begin)
		lv->begin(lv->ctx);
	/* Decide who is dead first, as the original does, then release. */
	for (size_t i = 0; i < t->n;) {
		struct scope_alloc *a = t->a[i];

		if (lv->alive(lv->ctx, a)) {
			i++;
			continue;
		}
		if (remove_pod(t, a, SCOPE_CH_REAP) < 0)
			break; /* best effort, like the original */
		n++;
	}
	return n;
}

int scope_register(struct scope_table *t, const struct scope_spec *spec, struct scope_err *err)
{
	char fresh[37];
	const char *session = spec->session;
	struct scope_alloc *a;

	if (scope_find(t, spec->name))
		return err_set(err, SCOPE_EDUPLICATE, -EEXIST, "pod name `%s` is already registered",
				  spec->name);
	if (session) {
		int rc = check_session(t, session, NULL, err);

		if (rc < 0)
			return rc;
	} else {
		scope_uuid_v7(fresh);
		session = fresh;
	}
	if (check_socket(spec->socket, err) < 0 ||
	    check_strings(spec->name, spec->rules, spec->nrules, err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < spec->nrules; i++) {
		const char *owner = scope_conflict_owner(t, &spec->rules[i], NULL);

		if (owner)
			return err_conflict(err, &spec->rules[i], owner);
	}
	a = alloc_from_spec(spec, NULL, session);
	if (!a || table_append(t, a) < 0) {
		alloc_free(a);
		return oom(err);
	}
	table_note(t, SCOPE_CH_REGISTER, a->name, NULL);
	return 0;
}

int scope_delegate(struct scope_table *t, const char *spawner, const struct scope_spec *spec,
		   struct scope_err *err)
{
	struct scope_alloc *s, *a;

	if (scope_find(t, spec->name))
		return err_set(err, SCOPE_EDUPLICATE, -EEXIST, "pod name `%s` is already registered",
				  spec->name);
	s = scope_find(t, spawner);
	if (!s)
		return err_unknown(err, spawner);
	if (check_socket(spec->socket, err) < 0 ||
	    check_strings(spec->name, spec->rules, spec->nrules, err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < spec->nrules; i++) {
		const struct scope_rule *r = &spec->rules[i];
		const char *owner;

		if (!within_effective_skip(t, s, r, NULL))
			return err_not_subset(err, r, spawner);
		owner = scope_conflict_owner(t, r, spawner);
		if (owner)
			return err_conflict(err, r, owner);
	}
	a = alloc_from_spec(spec, spawner, NULL);
	if (!a || table_append(t, a) < 0) {
		alloc_free(a);
		return oom(err);
	}
	table_note(t, SCOPE_CH_DELEGATE, a->name, "%s", spawner);
	return 0;
}

int scope_release(struct scope_table *t, const char *name, struct scope_err *err)
{
	struct scope_alloc *a = scope_find(t, name);

	if (!a)
		return err_unknown(err, name);
	if (remove_pod(t, a, SCOPE_CH_RELEASE) < 0)
		return oom(err);
	return 0;
}

static int set_session(struct scope_table *t, struct scope_alloc *a, const char *session)
{
	char *s = xstrdup(session);

	if (session && !s)
		return -ENOMEM;
	free(a->session);
	a->session = s;
	table_touch(t, a);
	table_note(t, SCOPE_CH_SESSION, a->name, "%s", s ? s : "-");
	return 0;
}

/* The pod NAME, which may take SESSION (NULL: no session to check). */
static int find_for_session(struct scope_table *t, const char *name, const char *session,
			    struct scope_alloc **out, struct scope_err *err)
{
	struct scope_alloc *a = scope_find(t, name);

	if (!a)
		return err_unknown(err, name);
	*out = a;
	return session ? check_session(t, session, a, err) : 0;
}

int scope_adopt(struct scope_table *t, const char *name, uint32_t pid, uint64_t pid_start,
		const char *session, struct scope_err *err)
{
	struct scope_alloc *a = NULL;
	int rc = find_for_session(t, name, session, &a, err);

	if (rc < 0)
		return rc;
	if (!pid_start && scope_proc_start(pid, &pid_start) < 0)
		pid_start = 0;
	a->pid = pid;
	a->pid_start = pid_start;
	table_touch(t, a);
	table_note(t, SCOPE_CH_PID, a->name, "%u", pid);
	if (session && set_session(t, a, session) < 0)
		return oom(err);
	return 0;
}

int scope_set_session(struct scope_table *t, const char *name, const char *session,
		      struct scope_err *err)
{
	struct scope_alloc *a = NULL;
	int rc = find_for_session(t, name, session, &a, err);

	if (rc < 0)
		return rc;
	if (set_session(t, a, session) < 0)
		return oom(err);
	return 0;
}

int scope_set_socket(struct scope_table *t, const char *name, const char *socket,
		     struct scope_err *err)
{
	struct scope_alloc *a = scope_find(t, name);
	char *s;

	if (!a)
		return err_unknown(err, name);
	if (check_socket(socket, err) < 0)
		return -EINVAL;
	s = strdup(socket ? socket : "");
	if (!s)
		return oom(err);
	free(a->socket);
	a->socket = s;
	table_touch(t, a);
	table_note(t, SCOPE_CH_SOCKET, a->name, "%s", *s ? s : "-");
	return 0;
}

int scope_set_rules(struct scope_table *t, const char *name, const struct scope_rule *rules,
		    size_t nrules, struct scope_err *err)
{
	struct scope_alloc *a = scope_find(t, name), *parent, *c;
	struct scope_rule *copy;

	if (!a)
		return err_unknown(err, name);
	if (check_strings(NULL, rules, nrules, err) < 0)
		return -EINVAL;
	table_reindex(t);
	parent = a->priv->linked ? a->priv->up : NULL;
	for (size_t i = 0; i < nrules; i++) {
		const struct scope_rule *r = &rules[i];
		const struct scope_alloc *owner;

		/* A delegated pod stays within what its parent can give (its
		 * siblings' shares excluded, its own old share included). */
		if (parent && !within_effective_skip(t, parent, r, a))
			return err_not_subset(err, r, parent->name);
		owner = conflict_owner_skip(t, r, parent ? parent->name : NULL, a);
		if (owner)
			return err_conflict(err, r, owner->name);
	}
	/* What the pod handed to its delegates must stay covered. */
	for (c = scope_first_child(t, a); c; c = scope_next_sibling(t, c)) {
		for (size_t k = 0; k < c->nrules; k++) {
			bool covered = false;

			for (size_t i = 0; i < nrules && !covered; i++)
				covered = (c->rules[k].perm != SCOPE_WRITE || rules[i].perm == SCOPE_WRITE) &&
					  scope_covers_fully(&rules[i], &c->rules[k]);
			if (!covered)
				return err_set(err, SCOPE_EUNCOVERED, -EBUSY,
						  "rules of pod `%s` no longer cover scope `%s` "
						  "delegated to pod `%s`",
						  a->name, c->rules[k].target, c->name);
		}
	}
	if (scope_rules_dup(rules, nrules, &copy) < 0)
		return oom(err);
	/* A rule kept across the rewrite keeps the unknown fields it had. */
	for (size_t i = 0; i < nrules; i++) {
		for (size_t k = 0; k < a->nrules && !copy[i].ext; k++) {
			struct scope_rule *old = &a->rules[k];

			if (old->ext && old->perm == copy[i].perm && old->recursive == copy[i].recursive &&
			    strcmp(old->target, copy[i].target) == 0) {
				copy[i].ext = old->ext;
				old->ext = NULL;
			}
		}
	}
	scope_rules_free(a->rules, a->nrules);
	a->rules = copy;
	a->nrules = nrules;
	table_touch(t, a);
	table_note(t, SCOPE_CH_ALLOW, a->name, "%zu", nrules);
	return 0;
}
