/* SPDX-License-Identifier: MIT */
/*
 * table.c - the in-memory table: allocations in file order, a name index,
 * the delegation index, the change log and the canonical text, rendered
 * again only from the first entry that changed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static atomic_uint_fast64_t gen_counter = 1;

uint64_t next_gen(void)
{
	return atomic_fetch_add(&gen_counter, 1);
}

struct scope_alloc *alloc_new(void)
{
	struct scope_alloc *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->priv = calloc(1, sizeof(*a->priv));
	if (!a->priv) {
		free(a);
		return NULL;
	}
	a->priv->dirty = true;
	a->gen = next_gen();
	return a;
}

struct scope_alloc *alloc_clone(const struct scope_alloc *a)
{
	struct scope_alloc *c = alloc_new();

	if (!c)
		return NULL;
	c->name = strdup(a->name);
	c->pid = a->pid;
	c->pid_start = a->pid_start;
	c->socket = strdup(a->socket);
	c->parent = xstrdup(a->parent);
	c->session = xstrdup(a->session);
	c->gen = a->gen;
	c->priv->ext = a->priv->ext ? rawext_dup(a->priv->ext) : NULL;
	if (!c->name || !c->socket || (a->parent && !c->parent) || (a->session && !c->session) ||
	    (a->priv->ext && !c->priv->ext) || scope_rules_dup(a->rules, a->nrules, &c->rules) < 0) {
		alloc_free(c);
		return NULL;
	}
	c->nrules = a->nrules;
	return c;
}

void alloc_free(struct scope_alloc *a)
{
	if (!a)
		return;
	free(a->name);
	free(a->socket);
	scope_rules_free(a->rules, a->nrules);
	free(a->parent);
	free(a->session);
	rawext_free(a->priv->ext);
	free(a->priv->meta);
	free(a->priv);
	free(a);
}

struct scope_table *scope_table_new(void)
{
	struct scope_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->first_change = SIZE_MAX;
	t->dirty_from = SIZE_MAX;
	t->text_valid = false;
	return t;
}

void scope_table_free(struct scope_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		alloc_free(t->a[i]);
	free(t->a);
	free(t->hash);
	rawext_free(t->ext_before);
	rawext_free(t->ext_after);
	sbuf_release(&t->text);
	scope_table_clear_changes(t);
	free(t->ch);
	free(t);
}

size_t scope_table_count(const struct scope_table *t)
{
	return t->n;
}

struct scope_alloc *scope_table_at(const struct scope_table *t, size_t i)
{
	return i < t->n ? t->a[i] : NULL;
}

/* ---- name index: linear probing, deletion by backward shift ---- */

static size_t name_slot(const struct scope_table *t, const char *name)
{
	return (size_t)hash64(name, strlen(name)) & (t->hcap - 1);
}

static void hash_put(struct scope_table *t, struct scope_alloc *a)
{
	size_t i = name_slot(t, a->name);

	while (t->hash[i]) {
		if (strcmp(t->hash[i]->name, a->name) == 0)
			return; /* a duplicate name in a foreign file: the first wins */
		i = (i + 1) & (t->hcap - 1);
	}
	t->hash[i] = a;
}

static int hash_rebuild(struct scope_table *t, size_t want)
{
	size_t cap = 16;
	struct scope_alloc **h;

	while (cap < want * 2)
		cap *= 2;
	h = calloc(cap, sizeof(*h));
	if (!h)
		return -ENOMEM;
	free(t->hash);
	t->hash = h;
	t->hcap = cap;
	for (size_t i = 0; i < t->n; i++)
		hash_put(t, t->a[i]);
	return 0;
}

static void hash_del(struct scope_table *t, struct scope_alloc *a)
{
	size_t i = name_slot(t, a->name), j;

	while (t->hash[i] && t->hash[i] != a)
		i = (i + 1) & (t->hcap - 1);
	if (!t->hash[i])
		return; /* a later duplicate that was never indexed */
	t->hash[i] = NULL;
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & (t->hcap - 1);
		if (!t->hash[j])
			break;
		home = name_slot(t, t->hash[j]->name);
		/* Move the entry back if its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			t->hash[i] = t->hash[j];
			t->hash[j] = NULL;
			i = j;
		}
	}
}

struct scope_alloc *scope_find(const struct scope_table *t, const char *name)
{
	size_t i;

	if (!t->hcap)
		return NULL;
	i = name_slot(t, name);
	while (t->hash[i]) {
		if (strcmp(t->hash[i]->name, name) == 0)
			return t->hash[i];
		i = (i + 1) & (t->hcap - 1);
	}
	return NULL;
}

struct scope_alloc *scope_find_session(const struct scope_table *t, const char *session)
{
	/* Session ids are UUIDs: equal whatever the case of their hex digits. */
	for (size_t i = 0; i < t->n; i++)
		if (t->a[i]->session && strcasecmp(t->a[i]->session, session) == 0)
			return t->a[i];
	return NULL;
}

/* ---- delegation index ---- */

static void link_child(struct scope_alloc *p, struct scope_alloc *c)
{
	c->priv->up = p;
	c->priv->linked = true;
	c->priv->sib = NULL;
	if (p->priv->last_child)
		p->priv->last_child->priv->sib = c;
	else
		p->priv->child = c;
	p->priv->last_child = c;
}

void table_reindex(const struct scope_table *ct)
{
	struct scope_table *t = (struct scope_table *)ct; /* the index is a cache */

	if (!t->index_dirty)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct scope_alloc_priv *p = t->a[i]->priv;

		p->up = p->child = p->last_child = p->sib = NULL;
		p->linked = false;
	}
	t->norphans = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct scope_alloc *c = t->a[i], *p;

		if (!c->parent)
			continue;
		p = scope_find(t, c->parent);
		if (p && p != c)
			link_child(p, c);
		else
			t->norphans++;
	}
	t->index_dirty = false;
}

struct scope_alloc *scope_first_child(const struct scope_table *t, const struct scope_alloc *a)
{
	table_reindex(t);
	return a->priv->child;
}

struct scope_alloc *scope_next_sibling(const struct scope_table *t, const struct scope_alloc *a)
{
	table_reindex(t);
	return a->priv->sib;
}

/* ---- mutation ---- */

int table_append(struct scope_table *t, struct scope_alloc *a)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct scope_alloc **na = realloc(t->a, cap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		t->a = na;
		t->cap = cap;
	}
	if ((t->n + 1) * 2 > t->hcap) {
		t->a[t->n] = a; /* let the rebuild see it */
		t->n++;
		if (hash_rebuild(t, t->n) < 0) {
			t->n--;
			return -ENOMEM;
		}
	} else {
		t->a[t->n++] = a;
		hash_put(t, a);
	}
	if (t->first_change > t->n - 1)
		t->first_change = t->n - 1;
	t->modified = true;
	a->priv->dirty = true;
	/* Keep the delegation index without a rebuild in the common cases. */
	if (!t->index_dirty) {
		struct scope_alloc *p = a->parent ? scope_find(t, a->parent) : NULL;

		a->priv->up = a->priv->child = a->priv->last_child = a->priv->sib = NULL;
		a->priv->linked = false;
		if (p && p != a)
			link_child(p, a);
		else if (a->parent)
			t->index_dirty = true; /* an orphan */
		/* Orphans waiting for this name become its children. */
		if (t->norphans)
			t->index_dirty = true;
	}
	return 0;
}

size_t table_index_of(const struct scope_table *t, const struct scope_alloc *a)
{
	for (size_t i = t->n; i-- > 0;)
		if (t->a[i] == a)
			return i;
	return SIZE_MAX;
}

void table_remove_at(struct scope_table *t, size_t i)
{
	struct scope_alloc *a = t->a[i], *dup;

	hash_del(t, a);
	memmove(t->a + i, t->a + i + 1, (t->n - i - 1) * sizeof(*t->a));
	t->n--;
	/* A later entry of the same name (foreign files only) takes its place. */
	dup = NULL;
	if (!scope_find(t, a->name))
		for (size_t k = 0; k < t->n && !dup; k++)
			if (strcmp(t->a[k]->name, a->name) == 0)
				dup = t->a[k];
	if (dup)
		hash_put(t, dup);
	if (a->parent || a->priv->child || dup)
		t->index_dirty = true;
	if (t->first_change > i)
		t->first_change = i;
	t->modified = true;
	alloc_free(a);
}

void table_touch(struct scope_table *t, struct scope_alloc *a)
{
	size_t i = table_index_of(t, a);

	free(a->priv->meta); /* the rules may have changed */
	a->priv->meta = NULL;
	a->priv->dirty = true;
	a->gen = next_gen();
	t->modified = true;
	if (i < t->first_change)
		t->first_change = i;
}

/* ---- changes ---- */

const char *scope_change_kind_name(enum scope_change_kind kind)
{
	static const char *const names[] = {
		[SCOPE_CH_REGISTER] = "register", [SCOPE_CH_DELEGATE] = "delegate",
		[SCOPE_CH_RELEASE] = "release",	  [SCOPE_CH_REAP] = "reap",
		[SCOPE_CH_ALLOW] = "allow",	  [SCOPE_CH_PID] = "pid",
		[SCOPE_CH_SESSION] = "session",	  [SCOPE_CH_SOCKET] = "socket",
		[SCOPE_CH_REPARENT] = "reparent",
	};

	if ((unsigned)kind >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[kind];
}

int table_note(struct scope_table *t, enum scope_change_kind kind, const char *name,
	       const char *fmt, ...)
{
	struct scope_change *c;
	va_list ap;
	char *detail = NULL;
	int n;

	if (t->nch == t->capch) {
		size_t cap = t->capch ? t->capch * 2 : 16;
		struct scope_change *nc = realloc(t->ch, cap * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		t->ch = nc;
		t->capch = cap;
	}
	if (fmt) {
		va_start(ap, fmt);
		n = vasprintf(&detail, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
	}
	c = &t->ch[t->nch];
	c->kind = kind;
	c->name = strdup(name);
	c->detail = detail;
	if (!c->name) {
		free(detail);
		return -ENOMEM;
	}
	t->nch++;
	return 0;
}

size_t scope_table_changes(const struct scope_table *t, const struct scope_change **changes)
{
	*changes = t->ch;
	return t->nch;
}

void scope_table_clear_changes(struct scope_table *t)
{
	for (size_t i = 0; i < t->nch; i++) {
		free(t->ch[i].name);
		free(t->ch[i].detail);
	}
	t->nch = 0;
}

/* ---- rendering ---- */

void table_render_head(struct scope_table *t)
{
	sbuf_truncate(&t->text, 0);
	sbuf_addc(&t->text, '{');
	rawext_render(&t->text, t->ext_before, 1, "", ",");
	sbuf_adds(&t->text, "\n  \"allocations\": [");
	t->head_end = t->text.len;
}

void table_render_tail(struct scope_table *t)
{
	sbuf_adds(&t->text, t->n ? "\n  ]" : "]");
	rawext_render(&t->text, t->ext_after, 1, ",", "");
	sbuf_adds(&t->text, "\n}");
}

int table_render(struct scope_table *t, size_t *from)
{
	struct sbuf old = { 0 };
	size_t k, prefix;

	if (!t->text_valid) {
		table_render_head(t);
		for (size_t i = 0; i < t->n; i++)
			t->a[i]->priv->dirty = true;
		t->first_change = 0;
		*from = 0;
	} else if (t->first_change == SIZE_MAX) {
		*from = t->text.len;
		return 0;
	}
	k = t->first_change < t->n ? t->first_change : t->n;
	prefix = k == 0 ? t->head_end : t->a[k - 1]->priv->end;
	if (t->text_valid)
		*from = prefix;
	if (*from < t->dirty_from)
		t->dirty_from = *from;
	/* Entries after the first change that did not change keep their bytes. */
	sbuf_add(&old, t->text.p + prefix, t->text.len - prefix);
	sbuf_truncate(&t->text, prefix);
	for (size_t i = k; i < t->n; i++) {
		struct scope_alloc_priv *p = t->a[i]->priv;
		size_t body;

		p->seg = t->text.len;
		sbuf_adds(&t->text, i == 0 ? "\n    " : ",\n    ");
		body = t->text.len;
		if (p->dirty || p->end <= p->seg)
			json_render_alloc(&t->text, t->a[i]);
		else
			sbuf_add(&t->text, old.p + (p->body - prefix), p->end - p->body);
		p->body = body;
		p->end = t->text.len;
		p->dirty = false;
	}
	table_render_tail(t);
	sbuf_release(&old);
	if (t->text.oom) {
		t->text_valid = false;
		return -ENOMEM;
	}
	t->text_valid = true;
	t->first_change = SIZE_MAX;
	return 0;
}

int scope_table_dump(struct scope_table *t, char **buf, size_t *len)
{
	size_t from;
	int rc = table_render(t, &from);

	if (rc < 0)
		return rc;
	*buf = malloc(t->text.len + 1);
	if (!*buf)
		return -ENOMEM;
	memcpy(*buf, t->text.p, t->text.len + 1);
	*len = t->text.len;
	return 0;
}

int scope_table_parse(const char *buf, size_t len, const char *name, struct scope_table **out,
		      struct scope_err *err)
{
	return json_parse_table(buf, len, name, NULL, out, err);
}

/* ---- what changed between two versions of the file ---- */

static bool rules_equal(const struct scope_alloc *a, const struct scope_alloc *b)
{
	if (a->nrules != b->nrules)
		return false;
	for (size_t i = 0; i < a->nrules; i++)
		if (a->rules[i].perm != b->rules[i].perm ||
		    a->rules[i].recursive != b->rules[i].recursive ||
		    strcmp(a->rules[i].target, b->rules[i].target) != 0)
			return false;
	return true;
}

static bool str_equal(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void table_diff(struct scope_table *old, struct scope_table *nw)
{
	for (size_t i = 0; i < old->n; i++)
		if (!scope_find(nw, old->a[i]->name) && scope_find(old, old->a[i]->name) == old->a[i])
			table_note(nw, SCOPE_CH_RELEASE, old->a[i]->name, NULL);
	for (size_t i = 0; i < nw->n; i++) {
		struct scope_alloc *b = nw->a[i], *a = scope_find(old, b->name);
		bool same = true;

		if (scope_find(nw, b->name) != b)
			continue;
		if (!a) {
			if (b->parent)
				table_note(nw, SCOPE_CH_DELEGATE, b->name, "%s", b->parent);
			else
				table_note(nw, SCOPE_CH_REGISTER, b->name, NULL);
			continue;
		}
		if (!rules_equal(a, b)) {
			table_note(nw, SCOPE_CH_ALLOW, b->name, "%zu", b->nrules);
			same = false;
		}
		if (a->pid != b->pid) {
			table_note(nw, SCOPE_CH_PID, b->name, "%u", b->pid);
			same = false;
		}
		if (!str_equal(a->session, b->session)) {
			table_note(nw, SCOPE_CH_SESSION, b->name, "%s", b->session ? b->session : "-");
			same = false;
		}
		if (strcmp(a->socket, b->socket) != 0) {
			table_note(nw, SCOPE_CH_SOCKET, b->name, "%s", *b->socket ? b->socket : "-");
			same = false;
		}
		if (!str_equal(a->parent, b->parent)) {
			table_note(nw, SCOPE_CH_REPARENT, b->name, "%s", b->parent ? b->parent : "-");
			same = false;
		}
		if (same && a->pid_start == b->pid_start)
			b->gen = a->gen;
	}
}
