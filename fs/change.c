/* SPDX-License-Identifier: MIT */
/*
 * change.c - the one path every change takes: the file's flock and
 * reload, stale reclaim, the operation, the save, then what the core says
 * changed drives the events and the kernel invalidations.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "scopefs.h"

int scopefs_fail(struct scope_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	err->kind = code == -EINVAL ? SCOPE_EINVAL : SCOPE_OK;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int scopefs_errno(int rc, const struct scope_err *err)
{
	/* A file that cannot be read or written is the daemon's problem,
	 * not the caller's: EIO whatever the underlying errno. */
	if (err->kind == SCOPE_EIO || err->kind == SCOPE_ECORRUPT)
		return EIO;
	if (err->code < 0)
		return -err->code;
	return rc < 0 ? -rc : EIO;
}

/* The pods named by a batch of changes, as a small open-addressing set. */
struct touched {
	const char **names;
	size_t cap;
};

static size_t name_hash(const char *s)
{
	size_t h = 5381;

	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static int touched_init(struct touched *ts, const struct scope_change *ch, size_t n)
{
	size_t i;

	ts->cap = 16;
	while (ts->cap < 2 * n)
		ts->cap *= 2;
	ts->names = calloc(ts->cap, sizeof(*ts->names));
	if (!ts->names)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		size_t j;

		if (!ch[i].name)
			continue;
		for (j = name_hash(ch[i].name) & (ts->cap - 1); ts->names[j];
		     j = (j + 1) & (ts->cap - 1))
			if (!strcmp(ts->names[j], ch[i].name))
				break;
		ts->names[j] = ch[i].name;
	}
	return 0;
}

static bool touched_has(const struct touched *ts, const char *name)
{
	size_t j;

	if (!ts->names) /* out of memory: treat everything as touched */
		return true;
	for (j = name_hash(name) & (ts->cap - 1); ts->names[j]; j = (j + 1) & (ts->cap - 1))
		if (!strcmp(ts->names[j], name))
			return true;
	return false;
}

struct inval_ctx {
	struct scopefs *d;
	struct scope_table *t;
	struct touched *ts;
	uint64_t ticket;
};

/* Whether N's validity may have changed: its pod, or a pod on its path,
 * was named by a change. */
static bool path_touched(struct scopefs *d, struct touched *ts, struct node *n)
{
	while (n && (n->kind == NODE_POD || n->kind == NODE_FILE)) {
		if (touched_has(ts, n->pod))
			return true;
		n = nodes_get(&d->nodes, n->parent);
	}
	return false;
}

static void inval_node(struct node *n, void *arg)
{
	struct inval_ctx *c = arg;
	struct scopefs *d = c->d;
	uint64_t ticket;

	if (n->dead || n->permanent)
		return;
	if (n->kind == NODE_LINK) {
		if (!view_node_valid(d, c->t, n)) {
			nodes_kill(&d->nodes, n);
			notifier_push_entry(&d->entries, n->parent, n->name);
		} else if (touched_has(c->ts, n->pod)) {
			/* The owner may have changed. */
			ticket = notifier_push_inode(&d->inodes, n->ino);
			if (ticket)
				c->ticket = ticket;
		}
		return;
	}
	if (!path_touched(d, c->ts, n))
		return;
	if (!view_node_valid(d, c->t, n)) {
		/* A file goes with its directory: only directories need their
		 * name invalidated. */
		nodes_kill(&d->nodes, n);
		if (n->kind == NODE_POD)
			notifier_push_entry(&d->entries, n->parent, n->name);
		return;
	}
	if (touched_has(c->ts, n->pod)) {
		/* Content, size or owner may have changed.  Without opens the
		 * kernel keeps a file's pages: a new mtime and invalidated
		 * attributes make its next read drop them, and the pages go
		 * too, without waiting for a write in flight to end. */
		if (d->fast_read && n->kind == NODE_FILE)
			ticket = view_push_file(d, n);
		else
			ticket = notifier_push_inode(&d->inodes, n->ino);
		if (ticket)
			c->ticket = ticket;
	}
}

/* Keeps the reaper informed: every owner named by a change gets watched,
 * so that its death is noticed without polling. */
static void watch_owners(struct scopefs *d, struct scope_table *t, const struct scope_change *ch,
			 size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct scope_alloc *a = ch[i].name ? scope_find(t, ch[i].name) : NULL;

		if (a)
			(void)scope_procwatch_alive(d->pw, a->pid, a->pid_start);
	}
}

static enum pod_file file_of(enum scope_change_kind kind)
{
	switch (kind) {
	case SCOPE_CH_ALLOW:
		return PF_ALLOW;
	case SCOPE_CH_PID:
		return PF_PID;
	case SCOPE_CH_SESSION:
		return PF_SESSION;
	case SCOPE_CH_SOCKET:
		return PF_SOCKET;
	case SCOPE_CH_REPARENT:
		return PF_DELEGATED_FROM;
	default:
		return PF_COUNT;
	}
}

/* Whether CH came through the mount at MOUNT/<pod>[/<file>] already, so
 * that watchers there saw it. */
static bool came_through(struct scopefs *d, const struct origin *o, const struct scope_change *ch,
			 enum pod_file f)
{
	struct node *n, *p;

	if (!o)
		return false;
	switch (o->kind) {
	case ORIGIN_MKDIR:
		return f == PF_COUNT && (ch->kind == SCOPE_CH_REGISTER ||
					 ch->kind == SCOPE_CH_DELEGATE) &&
		       o->ino == FUSE_ROOT_ID && !strcmp(o->name, ch->name);
	case ORIGIN_RMDIR:
		return ch->kind == SCOPE_CH_RELEASE && o->ino == FUSE_ROOT_ID &&
		       !strcmp(o->name, ch->name);
	case ORIGIN_WRITE:
		n = nodes_get(&d->nodes, o->ino);
		p = n ? nodes_get(&d->nodes, n->parent) : NULL;
		return n && p && n->kind == NODE_FILE && n->file == f && p->parent == FUSE_ROOT_ID &&
		       !strcmp(n->pod, ch->name);
	default:
		return false;
	}
}

/* Repeats through the mount, for inotify, what watchers of the root and of
 * MOUNT/<pod> would not see otherwise. */
static void loop_changes(struct scopefs *d, const struct origin *o, const struct scope_change *ch,
			 size_t n)
{
	size_t i;

	for (i = 0; d->loopback && i < n; i++) {
		enum pod_file f = file_of(ch[i].kind);

		if (!ch[i].name || !view_name_shown(ch[i].name) || came_through(d, o, &ch[i], f))
			continue;
		switch (ch[i].kind) {
		case SCOPE_CH_REGISTER:
		case SCOPE_CH_DELEGATE:
			loopback_push(d->loopback, LB_MKDIR, ch[i].name, PF_COUNT);
			break;
		case SCOPE_CH_RELEASE:
		case SCOPE_CH_REAP:
			loopback_push(d->loopback, LB_RMDIR, ch[i].name, PF_COUNT);
			break;
		default:
			if (f != PF_COUNT)
				loopback_push(d->loopback, LB_WRITE, ch[i].name, f);
			break;
		}
	}
}

/* Turns the table's pending changes into events and invalidations. */
static uint64_t apply_changes(struct scopefs *d, struct scope_table *t, const struct origin *o)
{
	const struct scope_change *ch;
	struct touched ts = { 0 };
	struct inval_ctx c = { .d = d, .t = t, .ts = &ts };
	size_t n = scope_table_changes(t, &ch);

	if (!n)
		return 0;
	events_publish(&d->events, ch, n);
	watch_owners(d, t, ch, n);
	loop_changes(d, o, ch, n);
	(void)touched_init(&ts, ch, n);
	nodes_each(&d->nodes, inval_node, &c);
	free(ts.names);
	scope_table_clear_changes(t);
	owners_prune(&d->owners, t);
	return c.ticket;
}

int scopefs_change(struct scopefs *d, change_fn fn, void *arg, const struct origin *origin,
		   struct scope_err *err, uint64_t *ticket)
{
	struct scope_table *t = NULL;
	struct scope_liveness lv;
	struct scope_err serr;
	useconds_t delay = 100;
	size_t reaped;
	uint64_t tk;
	int rc, src;

	memset(err, 0, sizeof(*err));
	if (ticket)
		*ticket = 0;
	for (;;) {
		pthread_mutex_lock(&d->lock);
		rc = scope_file_trylock(d->file, &t, err);
		if (rc != -EWOULDBLOCK && rc != -EAGAIN && rc != -EINTR)
			break;
		/* Another program holds the file: wait without the mutex, so
		 * that reads of the mount go on meanwhile. */
		pthread_mutex_unlock(&d->lock);
		usleep(delay);
		if (delay < 5000)
			delay *= 2;
	}
	if (rc < 0) {
		pthread_mutex_unlock(&d->lock);
		return rc;
	}
	lv = scope_procwatch_liveness(d->pw);
	reaped = scope_reclaim_stale(t, &lv);
	rc = fn ? fn(d, t, arg, err) : 0;
	if (rc == 0 || reaped) {
		memset(&serr, 0, sizeof(serr));
		src = scope_file_save(d->file, &serr);
		if (src < 0) {
			sfs_log(LOG_ERR, "%s", serr.msg);
			if (rc == 0) {
				*err = serr;
				rc = src;
			}
		}
	}
	tk = apply_changes(d, t, origin);
	scope_file_unlock(d->file);
	pthread_mutex_unlock(&d->lock);
	if (ticket)
		*ticket = tk;
	return rc;
}
