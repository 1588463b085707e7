/* SPDX-License-Identifier: MIT */
/*
 * view.c - what the mount shows for the table: which paths exist, their
 * attributes and the content of the pod files.  Called with the mutex held.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scopefs.h"

static const char *const file_names[PF_COUNT] = {
	[PF_ALLOW] = "allow",
	[PF_PID] = "pid",
	[PF_SESSION] = "session",
	[PF_SOCKET] = "socket",
	[PF_DELEGATED_FROM] = "delegated_from",
};

const char *view_file_name(enum pod_file f)
{
	return file_names[f];
}

enum pod_file view_file_lookup(const char *name)
{
	int f;

	for (f = 0; f < PF_COUNT; f++)
		if (!strcmp(name, file_names[f]))
			return (enum pod_file)f;
	return PF_COUNT;
}

bool view_name_shown(const char *name)
{
	return scope_name_valid(name, strlen(name));
}

uint64_t view_hash(const char *buf, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)buf[i];
		h *= 1099511628211ull;
	}
	return h ^ len;
}

void view_touch(struct scopefs *d, struct node *n)
{
	struct timespec now, prev = n->mtime.tv_sec ? n->mtime : d->mtime;

	clock_gettime(CLOCK_REALTIME, &now);
	/* Always later than the last one, even within a nanosecond or with
	 * the clock set back: the kernel only compares for equality. */
	if (now.tv_sec < prev.tv_sec || (now.tv_sec == prev.tv_sec && now.tv_nsec <= prev.tv_nsec)) {
		now = prev;
		if (++now.tv_nsec == 1000000000L) {
			now.tv_sec++;
			now.tv_nsec = 0;
		}
	}
	n->mtime = now;
}

uint64_t view_push_file(struct scopefs *d, struct node *n)
{
	view_touch(d, n);
	notifier_push_inode(&d->pages, n->ino);
	return notifier_push_attr(&d->inodes, n->ino);
}

bool view_node_valid(struct scopefs *d, const struct scope_table *t, struct node *n)
{
	/* Walks up the path: a depth bounded by what the kernel looked up. */
	for (;;) {
		const struct scope_alloc *a;
		struct node *p;

		if (n->dead)
			return false;
		switch (n->kind) {
		case NODE_ROOT:
		case NODE_EVENTS:
		case NODE_BYSESSION:
			return true;
		case NODE_LINK:
			a = scope_find_session(t, n->name);
			return a && !strcmp(a->name, n->pod) && view_name_shown(a->name);
		case NODE_FILE:
			p = nodes_get(&d->nodes, n->parent);
			if (!p || p->kind != NODE_POD)
				return false;
			n = p;
			continue;
		case NODE_POD:
			a = scope_find(t, n->pod);
			if (!a || !view_name_shown(a->name))
				return false;
			p = nodes_get(&d->nodes, n->parent);
			if (!p)
				return false;
			if (p->kind == NODE_ROOT)
				return true;
			if (p->kind != NODE_POD || !a->parent || strcmp(a->parent, p->pod))
				return false;
			n = p;
			continue;
		}
		return false;
	}
}

struct scope_alloc *view_node_pod(struct scopefs *d, const struct scope_table *t, struct node *n)
{
	if ((n->kind != NODE_POD && n->kind != NODE_FILE) || !view_node_valid(d, t, n))
		return NULL;
	return scope_find(t, n->pod);
}

int view_render(const struct scope_alloc *a, enum pod_file f, char **out, size_t *len)
{
	const char *s = NULL;
	char num[16];
	char *buf;
	size_t n;

	switch (f) {
	case PF_ALLOW:
		*out = scope_rules_format(a->rules, a->nrules, len);
		return *out ? 0 : -ENOMEM;
	case PF_PID:
		snprintf(num, sizeof(num), "%u", a->pid);
		s = num;
		break;
	case PF_SESSION:
		s = a->session;
		break;
	case PF_SOCKET:
		s = a->socket;
		break;
	case PF_DELEGATED_FROM:
		s = a->parent;
		break;
	case PF_COUNT:
		return -EINVAL;
	}
	n = s ? strlen(s) : 0;
	buf = malloc(n + 2);
	if (!buf)
		return -ENOMEM;
	if (n) {
		memcpy(buf, s, n);
		buf[n++] = '\n';
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int view_attr(struct scopefs *d, const struct scope_table *t, struct node *n, struct stat *st)
{
	const struct scope_alloc *a = NULL;
	uid_t uid = d->uid;
	gid_t gid = d->gid;

	memset(st, 0, sizeof(*st));
	if (!view_node_valid(d, t, n))
		return -ENOENT;
	st->st_ino = n->ino;
	st->st_atim = st->st_mtim = st->st_ctim = d->mtime;
	st->st_blksize = 4096;
	switch (n->kind) {
	case NODE_ROOT:
		/* Sticky like /tmp: anyone registers, only owners release. */
		st->st_mode = S_IFDIR | 01777;
		st->st_nlink = 1;
		break;
	case NODE_BYSESSION:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 1;
		break;
	case NODE_EVENTS:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		break;
	case NODE_LINK:
		a = scope_find(t, n->pod);
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)(3 + strlen(n->pod));
		break;
	case NODE_POD:
		a = scope_find(t, n->pod);
		/* 1: "unknown", so that find(1) does not count subdirectories. */
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 1;
		break;
	case NODE_FILE: {
		char *buf;
		size_t len;
		int rc;

		a = scope_find(t, n->pod);
		if (!a)
			return -ENOENT;
		rc = view_render(a, n->file, &buf, &len);
		if (rc < 0)
			return rc;
		free(buf);
		st->st_mode = S_IFREG | (n->file == PF_DELEGATED_FROM ? 0444 : 0644);
		st->st_nlink = 1;
		st->st_size = (off_t)len;
		if (d->fast_read && n->mtime.tv_sec)
			st->st_mtim = st->st_ctim = n->mtime;
		break;
	}
	}
	if (a)
		owners_get(&d->owners, a->pid, a->pid_start, &uid, &gid);
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}
