/* SPDX-License-Identifier: MIT */
/*
 * nodes.c - the inode table: one node per path the kernel has looked up,
 * found by inode number and by (parent, name).  Inode numbers are never
 * reused, so a stale kernel inode can never be confused with a new path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scopefs.h"

static size_t hash_ino(fuse_ino_t ino, size_t nbuckets)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (nbuckets - 1);
}

static size_t hash_name(fuse_ino_t parent, const char *name, size_t nbuckets)
{
	uint64_t h = 1469598103934665603ull ^ parent;

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 29)) & (nbuckets - 1);
}

static void link_ino(struct nodes *ns, struct node *n)
{
	size_t b = hash_ino(n->ino, ns->nbuckets);

	n->ino_next = ns->by_ino[b];
	ns->by_ino[b] = n;
}

static void link_name(struct nodes *ns, struct node *n)
{
	size_t b = hash_name(n->parent, n->name, ns->nbuckets);

	n->name_next = ns->by_name[b];
	ns->by_name[b] = n;
}

static void unlink_ino(struct nodes *ns, struct node *n)
{
	struct node **p = &ns->by_ino[hash_ino(n->ino, ns->nbuckets)];

	for (; *p; p = &(*p)->ino_next) {
		if (*p == n) {
			*p = n->ino_next;
			return;
		}
	}
}

static void unlink_name(struct nodes *ns, struct node *n)
{
	struct node **p = &ns->by_name[hash_name(n->parent, n->name, ns->nbuckets)];

	for (; *p; p = &(*p)->name_next) {
		if (*p == n) {
			*p = n->name_next;
			return;
		}
	}
}

/* Doubles the buckets when chains get long; failure only costs speed. */
static void nodes_grow(struct nodes *ns)
{
	size_t nb = ns->nbuckets * 2, i;
	struct node **bi = calloc(nb, sizeof(*bi));
	struct node **bn = calloc(nb, sizeof(*bn));
	struct node **oi = ns->by_ino;
	size_t ob = ns->nbuckets;

	if (!bi || !bn) {
		free(bi);
		free(bn);
		return;
	}
	free(ns->by_name);
	ns->by_ino = bi;
	ns->by_name = bn;
	ns->nbuckets = nb;
	for (i = 0; i < ob; i++) {
		struct node *n = oi[i], *next;

		for (; n; n = next) {
			next = n->ino_next;
			link_ino(ns, n);
			if (!n->dead)
				link_name(ns, n);
		}
	}
	free(oi);
}

static void init_permanent(struct nodes *ns, struct node *n, fuse_ino_t ino, fuse_ino_t parent,
			   const char *name, enum node_kind kind)
{
	memset(n, 0, sizeof(*n));
	n->ino = ino;
	n->parent = parent;
	n->name = (char *)name;
	n->kind = kind;
	n->permanent = true;
	link_ino(ns, n);
	if (parent)
		link_name(ns, n);
}

int nodes_init(struct nodes *ns)
{
	memset(ns, 0, sizeof(*ns));
	ns->nbuckets = 256;
	ns->by_ino = calloc(ns->nbuckets, sizeof(*ns->by_ino));
	ns->by_name = calloc(ns->nbuckets, sizeof(*ns->by_name));
	if (!ns->by_ino || !ns->by_name) {
		free(ns->by_ino);
		free(ns->by_name);
		return -ENOMEM;
	}
	ns->next_ino = 16;
	init_permanent(ns, &ns->root, FUSE_ROOT_ID, 0, "", NODE_ROOT);
	init_permanent(ns, &ns->events, INO_EVENTS, FUSE_ROOT_ID, ".events", NODE_EVENTS);
	init_permanent(ns, &ns->bysession, INO_BYSESSION, FUSE_ROOT_ID, ".by-session",
		       NODE_BYSESSION);
	return 0;
}

static void node_free(struct node *n)
{
	free(n->name);
	free(n->pod);
	free(n);
}

void nodes_release(struct nodes *ns)
{
	size_t i;

	for (i = 0; i < ns->nbuckets; i++) {
		struct node *n = ns->by_ino[i], *next;

		for (; n; n = next) {
			next = n->ino_next;
			if (!n->permanent)
				node_free(n);
		}
	}
	free(ns->by_ino);
	free(ns->by_name);
	ns->by_ino = ns->by_name = NULL;
}

struct node *nodes_get(struct nodes *ns, fuse_ino_t ino)
{
	struct node *n = ns->by_ino[hash_ino(ino, ns->nbuckets)];

	while (n && n->ino != ino)
		n = n->ino_next;
	return n;
}

struct node *nodes_find(struct nodes *ns, fuse_ino_t parent, const char *name)
{
	struct node *n = ns->by_name[hash_name(parent, name, ns->nbuckets)];

	while (n && (n->parent != parent || strcmp(n->name, name)))
		n = n->name_next;
	return n;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

int nodes_make(struct nodes *ns, fuse_ino_t parent, const char *name, enum node_kind kind,
	       enum pod_file file, const char *pod, struct node **out)
{
	struct node *n = nodes_find(ns, parent, name);

	if (n && n->kind == kind && n->file == file && str_eq(n->pod, pod)) {
		*out = n;
		return 0;
	}
	if (n)
		nodes_kill(ns, n);
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->name = strdup(name);
	n->pod = pod ? strdup(pod) : NULL;
	if (!n->name || (pod && !n->pod)) {
		node_free(n);
		return -ENOMEM;
	}
	n->ino = ns->next_ino++;
	n->parent = parent;
	n->kind = kind;
	n->file = file;
	if (ns->count + 1 > ns->nbuckets * 2)
		nodes_grow(ns);
	link_ino(ns, n);
	link_name(ns, n);
	ns->count++;
	*out = n;
	return 0;
}

void nodes_kill(struct nodes *ns, struct node *n)
{
	if (n->dead || n->permanent)
		return;
	unlink_name(ns, n);
	n->dead = true;
}

void nodes_forget(struct nodes *ns, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = nodes_get(ns, ino);

	if (!n || n->permanent)
		return;
	n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
	if (n->nlookup)
		return;
	unlink_ino(ns, n);
	if (!n->dead)
		unlink_name(ns, n);
	ns->count--;
	node_free(n);
}

void nodes_each(struct nodes *ns, void (*fn)(struct node *n, void *ctx), void *ctx)
{
	size_t i;

	for (i = 0; i < ns->nbuckets; i++) {
		struct node *n;

		for (n = ns->by_ino[i]; n; n = n->ino_next)
			fn(n, ctx);
	}
}
