/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the FUSE operations: each translates one file operation into one
 * core call (through scopefs_change) or a read of the table.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "scopefs.h"

/* How long a handler waits for its own invalidations to reach the kernel
 * before it replies anyway (only a pathological backlog takes longer). */
#define WAIT_NOTIFY_MS 200

static struct scopefs *sfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The calling process: the kernel tells us the calling thread. */
static pid_t caller_pid(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	pid_t tgid;

	if (proc_tgid(ctx->pid, &tgid) < 0)
		return ctx->pid;
	return tgid;
}

/* "pod/child/allow" for messages (mutex held). */
static void node_path(struct scopefs *d, struct node *n, char *buf, size_t size)
{
	const char *parts[64];
	size_t np = 0, len = 0, i;

	while (n && n->kind != NODE_ROOT && np < 64) {
		parts[np++] = n->name;
		n = nodes_get(&d->nodes, n->parent);
	}
	buf[0] = '\0';
	for (i = np; i-- > 0;) {
		int w = snprintf(buf + len, size - len, "%s%s", len ? "/" : "", parts[i]);

		if (w < 0 || (size_t)w >= size - len)
			break;
		len += (size_t)w;
	}
	if (!np)
		snprintf(buf, size, "/");
}

static void describe(fuse_req_t req, fuse_ino_t parent, const char *name, char *buf, size_t size)
{
	struct scopefs *d = sfs_of(req);
	char path[1024];
	struct node *p;

	pthread_mutex_lock(&d->lock);
	p = nodes_get(&d->nodes, parent);
	if (p)
		node_path(d, p, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "?");
	pthread_mutex_unlock(&d->lock);
	if (name)
		snprintf(buf, size, "%s%s%s", !strcmp(path, "/") ? "" : path,
			 !strcmp(path, "/") ? "" : "/", name);
	else
		snprintf(buf, size, "%s", path);
}

/* Logs one line saying what was refused and why, and replies the errno. */
static void refuse(fuse_req_t req, const char *op, const char *what, int rc,
		   const struct scope_err *err)
{
	int e = scopefs_errno(rc, err);

	sfs_log(LOG_NOTICE, "%s `%s` refused (pid %d): %s", op, what, (int)caller_pid(req),
		err->msg[0] ? err->msg : strerror(e));
	fuse_reply_err(req, e);
}

/* refuse(), naming the entry NAME of directory PARENT. */
static void refuse_at(fuse_req_t req, const char *op, fuse_ino_t parent, const char *name,
		      int rc, const struct scope_err *err)
{
	char what[1400];

	describe(req, parent, name, what, sizeof(what));
	refuse(req, op, what, rc, err);
}

static void refuse_simple(fuse_req_t req, const char *op, fuse_ino_t parent, const char *name,
			  int e, const char *why)
{
	struct scope_err err;

	scopefs_fail(&err, -e, "%s", why);
	refuse_at(req, op, parent, name, -e, &err);
}

/* Fills E for node N and counts the kernel's new reference (mutex held). */
static int entry_of(struct scopefs *d, const struct scope_table *t, struct node *n,
		    struct fuse_entry_param *e)
{
	int rc;

	memset(e, 0, sizeof(*e));
	rc = view_attr(d, t, n, &e->attr);
	if (rc < 0)
		return rc;
	e->ino = n->ino;
	e->attr_timeout = SCOPEFS_TIMEOUT;
	e->entry_timeout = SCOPEFS_TIMEOUT;
	if (!n->permanent)
		n->nlookup++;
	return 0;
}

static int lookup_child(struct scopefs *d, const struct scope_table *t, struct node *p,
			const char *name, struct node **out)
{
	const struct scope_alloc *a;
	enum pod_file f;

	switch (p->kind) {
	case NODE_ROOT:
		if (!strcmp(name, ".events")) {
			/* fast_read: a stream needs opens, which that mode has not. */
			if (d->fast_read)
				return -ENOENT;
			*out = &d->nodes.events;
			return 0;
		}
		if (!strcmp(name, ".by-session")) {
			*out = &d->nodes.bysession;
			return 0;
		}
		if (!view_name_shown(name) || !scope_find(t, name))
			return -ENOENT;
		return nodes_make(&d->nodes, p->ino, name, NODE_POD, PF_COUNT, name, out);
	case NODE_POD:
		f = view_file_lookup(name);
		if (f != PF_COUNT)
			return nodes_make(&d->nodes, p->ino, name, NODE_FILE, f, p->pod, out);
		a = scope_find(t, name);
		if (!a || !view_name_shown(name) || !a->parent || strcmp(a->parent, p->pod))
			return -ENOENT;
		return nodes_make(&d->nodes, p->ino, name, NODE_POD, PF_COUNT, name, out);
	case NODE_BYSESSION:
		a = scope_find_session(t, name);
		if (!a || !view_name_shown(a->name))
			return -ENOENT;
		return nodes_make(&d->nodes, p->ino, name, NODE_LINK, PF_COUNT, a->name, out);
	default:
		return -ENOTDIR;
	}
}

/* A pod already gone from the table, shown once more so that the loopback
 * thread's rmdir reaches us (and watchers see DELETE). */
static void ghost_entry(fuse_req_t req, const char *name)
{
	struct scopefs *d = sfs_of(req);
	struct fuse_entry_param e = { 0 };
	struct node *n;
	int rc;

	pthread_mutex_lock(&d->lock);
	rc = nodes_make(&d->nodes, FUSE_ROOT_ID, name, NODE_POD, PF_COUNT, name, &n);
	if (!rc) {
		nodes_kill(&d->nodes, n);
		n->nlookup++;
		e.ino = n->ino;
		e.attr.st_ino = n->ino;
		e.attr.st_mode = S_IFDIR | 0755;
		e.attr.st_nlink = 1;
		e.attr.st_uid = d->uid;
		e.attr.st_gid = d->gid;
		e.attr.st_mtim = e.attr.st_atim = e.attr.st_ctim = d->mtime;
	}
	pthread_mutex_unlock(&d->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void sfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct scopefs *d = sfs_of(req);
	struct fuse_entry_param e;
	struct scope_table *t;
	struct node *p, *n = NULL;
	int rc;

	if (parent == FUSE_ROOT_ID && loopback_is(d->loopback, req)) {
		if (loopback_doing(d->loopback, LB_MKDIR, name)) {
			fuse_reply_err(req, ENOENT); /* so that the mkdir reaches us */
			return;
		}
		if (loopback_doing(d->loopback, LB_RMDIR, name)) {
			ghost_entry(req, name);
			return;
		}
	}
	pthread_mutex_lock(&d->lock);
	t = scope_file_table(d->file);
	p = nodes_get(&d->nodes, parent);
	if (!p || !view_node_valid(d, t, p))
		rc = -ENOENT;
	else
		rc = lookup_child(d, t, p, name, &n);
	if (!rc)
		rc = entry_of(d, t, n, &e);
	pthread_mutex_unlock(&d->lock);
	/* An error caches nothing, so a name that appears later shows at once. */
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void sfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct scopefs *d = sfs_of(req);

	pthread_mutex_lock(&d->lock);
	nodes_forget(&d->nodes, ino, nlookup);
	pthread_mutex_unlock(&d->lock);
	fuse_reply_none(req);
}

static void sfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct scopefs *d = sfs_of(req);
	size_t i;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i < count; i++)
		nodes_forget(&d->nodes, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&d->lock);
	fuse_reply_none(req);
}

static void sfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	struct node *n;
	struct stat st;
	int rc;

	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	rc = n ? view_attr(d, scope_file_table(d->file), n, &st) : -ENOENT;
	pthread_mutex_unlock(&d->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, SCOPEFS_TIMEOUT);
}

static void sfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	uint64_t ticket = 0;
	struct node *n;
	struct stat st;
	int rc;

	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		refuse_simple(req, to_set & FUSE_SET_ATTR_MODE ? "chmod" : "chown", ino, NULL,
			      EPERM, "modes and owners follow the table");
		return;
	}
	/* Truncation alone (O_TRUNC, ": > allow") and time stamps change
	 * nothing: the write that follows carries the new content. */
	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	rc = n ? view_attr(d, scope_file_table(d->file), n, &st) : -ENOENT;
	if (!rc && d->fast_read && n->kind == NODE_FILE)
		ticket = notifier_push_inode(&d->inodes, ino);
	pthread_mutex_unlock(&d->lock);
	/* fast_read: the kernel takes the mtime of this reply without
	 * dropping its pages, so they go first.  The caller holds the
	 * inode's lock: no write of it holds a page lock meanwhile. */
	notifier_wait(&d->inodes, ticket, WAIT_NOTIFY_MS);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, SCOPEFS_TIMEOUT);
}

static void sfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct scopefs *d = sfs_of(req);
	char *target = NULL;
	struct node *n;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	if (!n || n->kind != NODE_LINK)
		rc = -EINVAL;
	else if (!view_node_valid(d, scope_file_table(d->file), n))
		rc = -ENOENT;
	else if (asprintf(&target, "../%s", n->pod) < 0)
		rc = -ENOMEM;
	pthread_mutex_unlock(&d->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

/* ------------------------------------------------------------------ */
/* mkdir and rmdir */

struct mkdir_arg {
	fuse_ino_t parent;
	const char *name;
	pid_t pid;
	struct fuse_entry_param *e;
};

static int do_mkdir(struct scopefs *d, struct scope_table *t, void *arg, struct scope_err *err)
{
	struct mkdir_arg *m = arg;
	struct scope_spec spec = { .name = m->name, .pid = (uint32_t)m->pid };
	struct node *p = nodes_get(&d->nodes, m->parent), *n;
	int rc;

	if (!p || !view_node_valid(d, t, p))
		return scopefs_fail(err, -ENOENT, "the parent directory no longer exists");
	if (!view_name_shown(m->name))
		return scopefs_fail(err, -EINVAL,
				    "invalid pod name `%s`: 1-255 bytes, no '/', not starting "
				    "with '.', not a pod file's name",
				    m->name);
	if (p->kind == NODE_ROOT)
		rc = scope_register(t, &spec, err);
	else if (p->kind == NODE_POD)
		rc = scope_delegate(t, p->pod, &spec, err);
	else
		rc = scopefs_fail(err, -EPERM, "pods are made at the root or in a pod");
	if (rc < 0)
		return rc;
	/* The maker of `mkdir X && echo $$ > X/pid` is dead before the
	 * echo: its pod must outlive it until adopted. */
	scope_procwatch_grace(d->pw, spec.pid, SCOPEFS_GRACE_MS);
	rc = nodes_make(&d->nodes, p->ino, m->name, NODE_POD, PF_COUNT, m->name, &n);
	if (!rc)
		rc = entry_of(d, t, n, m->e);
	/* The pod exists now even if we cannot describe it: the reply fails,
	 * a lookup will find it. */
	if (rc < 0)
		m->e->ino = 0;
	return 0;
}

/* The loopback thread's mkdir: the pod is in the table already. */
static void loopback_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct scopefs *d = sfs_of(req);
	struct fuse_entry_param e;
	struct scope_table *t;
	struct node *n = NULL;
	int rc = -ENOENT;

	pthread_mutex_lock(&d->lock);
	t = scope_file_table(d->file);
	if (parent == FUSE_ROOT_ID && view_name_shown(name) && scope_find(t, name))
		rc = nodes_make(&d->nodes, parent, name, NODE_POD, PF_COUNT, name, &n);
	if (!rc)
		rc = entry_of(d, t, n, &e);
	pthread_mutex_unlock(&d->lock);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void sfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct scopefs *d = sfs_of(req);
	struct fuse_entry_param e = { 0 };
	struct mkdir_arg m = { .parent = parent, .name = name, .e = &e };
	struct origin o = { .kind = ORIGIN_MKDIR, .ino = parent, .name = name };
	struct scope_err err;
	uint64_t ticket;
	int rc;

	if (loopback_is(d->loopback, req)) {
		loopback_mkdir(req, parent, name);
		return;
	}
	m.pid = caller_pid(req);
	rc = scopefs_change(d, do_mkdir, &m, &o, &err, &ticket);
	if (rc < 0) {
		refuse_at(req, "mkdir", parent, name, rc, &err);
		return;
	}
	notifier_wait(&d->inodes, ticket, WAIT_NOTIFY_MS);
	if (!e.ino)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_entry(req, &e);
}

struct rmdir_arg {
	fuse_ino_t parent;
	const char *name;
};

static int do_rmdir(struct scopefs *d, struct scope_table *t, void *arg, struct scope_err *err)
{
	struct rmdir_arg *r = arg;
	struct node *p = nodes_get(&d->nodes, r->parent);
	const struct scope_alloc *a = scope_find(t, r->name);
	char *name;
	int rc;

	if (!p || !view_node_valid(d, t, p))
		return scopefs_fail(err, -ENOENT, "the parent directory no longer exists");
	if (p->kind == NODE_ROOT && !strcmp(r->name, ".by-session"))
		return scopefs_fail(err, -EPERM, "`.by-session` is part of the view");
	if (!a || !view_name_shown(r->name) ||
	    (p->kind == NODE_POD && (!a->parent || strcmp(a->parent, p->pod))) ||
	    (p->kind != NODE_ROOT && p->kind != NODE_POD))
		return scopefs_fail(err, -ENOENT, "pod `%s` is not registered here", r->name);
	/* The table owns a->name, and releasing frees it. */
	name = strdup(a->name);
	if (!name)
		return scopefs_fail(err, -ENOMEM, "out of memory");
	rc = scope_release(t, name, err);
	free(name);
	return rc;
}

static void sfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct scopefs *d = sfs_of(req);
	struct rmdir_arg r = { .parent = parent, .name = name };
	struct origin o = { .kind = ORIGIN_RMDIR, .ino = parent, .name = name };
	struct scope_err err;
	uint64_t ticket;
	int rc;

	if (loopback_is(d->loopback, req)) {
		bool back;

		/* The pod is gone from the table already, unless it was made
		 * again since: then the kernel's entry may be the new directory,
		 * and acknowledging would kill it there.  Watchers miss that one
		 * delete-and-create; the view stays true. */
		pthread_mutex_lock(&d->lock);
		back = parent == FUSE_ROOT_ID && scope_find(scope_file_table(d->file), name);
		pthread_mutex_unlock(&d->lock);
		fuse_reply_err(req, back ? EBUSY : 0);
		return;
	}
	rc = scopefs_change(d, do_rmdir, &r, &o, &err, &ticket);
	if (rc < 0) {
		refuse_at(req, "rmdir", parent, name, rc, &err);
		return;
	}
	notifier_wait(&d->inodes, ticket, WAIT_NOTIFY_MS);
	fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------ */
/* Operations the view refuses */

static void sfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      dev_t rdev)
{
	refuse_simple(req, "mknod", parent, name, EPERM, "only directories (pods) can be made");
}

static void sfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	refuse_simple(req, "create", parent, name, EPERM, "only directories (pods) can be made");
}

static void sfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	refuse_simple(req, "unlink", parent, name, EPERM, "a pod's files go with the pod (rmdir)");
}

static void sfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	refuse_simple(req, "symlink", parent, name, EPERM, "only directories (pods) can be made");
}

static void sfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	refuse_simple(req, "link", newparent, newname, EPERM, "only directories (pods) can be made");
}

static void sfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	refuse_simple(req, "rename", parent, name, EPERM, "pods cannot be renamed");
}

static void sfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	refuse_simple(req, "setxattr", ino, NULL, EPERM, "the view has no extended attributes");
}

static void sfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	refuse_simple(req, "removexattr", ino, NULL, EPERM, "the view has no extended attributes");
}

/* ------------------------------------------------------------------ */
/* Files */

/* fi->fh of a pod file: whether the kernel's page cache is bypassed. */
#define FH_CACHED 0
#define FH_DIRECT 1

static void sfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	struct scope_table *t;
	struct ev_handle *h = NULL;
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct node *n;
	int rc = 0;

	if (d->fast_read) {
		/* The kernel sends no OPEN again, for any file of the mount
		 * (no_open): pod files are then cached, as with keep_cache. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	pthread_mutex_lock(&d->lock);
	t = scope_file_table(d->file);
	n = nodes_get(&d->nodes, ino);
	if (!n || !view_node_valid(d, t, n)) {
		rc = -ENOENT;
	} else if (n->kind == NODE_EVENTS) {
		if (writing) {
			rc = -EACCES;
		} else {
			rc = events_open(&d->events, &h);
			fi->fh = (uintptr_t)h;
			/* A stream: no page cache, no offsets. */
			fi->direct_io = 1;
			fi->nonseekable = 1;
		}
	} else if (n->kind == NODE_FILE) {
		fi->noflush = 1;
		if (writing) {
			/* Writes reach us exactly as made; nothing stale lands in
			 * the page cache. */
			if (n->file == PF_DELEGATED_FROM && !loopback_is(d->loopback, req))
				rc = -EACCES;
			fi->direct_io = 1;
			fi->fh = FH_DIRECT;
		} else {
			struct scope_alloc *a = view_node_pod(d, t, n);
			char *buf;
			size_t len;

			rc = a ? view_render(a, n->file, &buf, &len) : -ENOENT;
			if (!rc) {
				/* Keep the cache only if it holds this very content. */
				fi->keep_cache = n->served && n->served_hash == view_hash(buf, len);
				free(buf);
			}
			fi->fh = FH_CACHED;
		}
	} else {
		rc = -EISDIR;
	}
	pthread_mutex_unlock(&d->lock);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* New content: the kernel's size may still be the old one, and a read
	 * beyond what we return would come back zero-filled.  Drop its
	 * attributes now (attributes only: no page lock, safe in a handler) so
	 * the read asks for the size first. */
	if (n && n->kind == NODE_FILE && !writing && !fi->keep_cache)
		fuse_lowlevel_notify_inval_inode(d->se, ino, -1, 0);
	if (fuse_reply_open(req, fi) && h)
		events_close(&d->events, h); /* interrupted: no release will come */
}

static void sfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	struct scope_alloc *a;
	struct node *n;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (ino == INO_EVENTS) {
		if (d->fast_read) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		events_read(&d->events, (struct ev_handle *)(uintptr_t)fi->fh, req, size,
			    (fi->flags & O_NONBLOCK) != 0);
		return;
	}
	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	a = n && n->kind == NODE_FILE ? view_node_pod(d, scope_file_table(d->file), n) : NULL;
	rc = a ? view_render(a, n->file, &buf, &len) : -ENOENT;
	if (!rc && fi->fh == FH_CACHED) {
		n->served = true;
		n->served_hash = view_hash(buf, len);
	}
	pthread_mutex_unlock(&d->lock);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (off < 0 || (size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, buf + off, len - (size_t)off < size ? len - (size_t)off : size);
	free(buf);
}

/* Resolves an open pod file's pod as the table stands now. */
static int resolve_pod(struct scopefs *d, struct scope_table *t, fuse_ino_t ino, char **name,
		       struct scope_err *err)
{
	struct node *n = nodes_get(&d->nodes, ino);
	struct scope_alloc *a = n ? view_node_pod(d, t, n) : NULL;

	if (!a)
		return scopefs_fail(err, -ENOENT, "the pod no longer exists");
	*name = strdup(a->name);
	return *name ? 0 : scopefs_fail(err, -ENOMEM, "out of memory");
}

struct write_arg {
	fuse_ino_t ino;
	enum pod_file file;
	struct scope_rule *rules;
	size_t nrules;
	bool append;
	uint32_t pid;
	uint64_t start;
	const char *text;
};

static int set_rules_append(struct scope_table *t, const char *name, const struct write_arg *w,
			    struct scope_err *err)
{
	const struct scope_alloc *a = scope_find(t, name);
	struct scope_rule *cur = NULL, *all = NULL;
	size_t ncur;
	int rc;

	ncur = a->nrules;
	/* A copy: the pod's own rules are freed when the set is replaced. */
	rc = scope_rules_dup(a->rules, ncur, &cur);
	if (rc < 0)
		return scopefs_fail(err, rc, "out of memory");
	all = malloc((ncur + w->nrules + 1) * sizeof(*all));
	if (!all) {
		rc = scopefs_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (ncur)
		memcpy(all, cur, ncur * sizeof(*all));
	if (w->nrules)
		memcpy(all + ncur, w->rules, w->nrules * sizeof(*all));
	rc = scope_set_rules(t, name, all, ncur + w->nrules, err);
out:
	free(all);
	scope_rules_free(cur, ncur);
	return rc;
}

static int do_write(struct scopefs *d, struct scope_table *t, void *arg, struct scope_err *err)
{
	struct write_arg *w = arg;
	char *name = NULL;
	int rc;

	rc = resolve_pod(d, t, w->ino, &name, err);
	if (rc < 0)
		return rc;
	switch (w->file) {
	case PF_ALLOW:
		if (w->append)
			rc = set_rules_append(t, name, w, err);
		else
			rc = scope_set_rules(t, name, w->rules, w->nrules, err);
		break;
	case PF_PID:
		rc = scope_adopt(t, name, w->pid, w->start, NULL, err);
		break;
	case PF_SESSION:
		rc = scope_set_session(t, name, w->text, err);
		break;
	case PF_SOCKET:
		rc = scope_set_socket(t, name, w->text, err);
		break;
	default:
		rc = scopefs_fail(err, -EACCES, "`%s` is read-only", view_file_name(w->file));
		break;
	}
	free(name);
	return rc;
}

/* The text of a one-value file: without its final newline. */
static char *value_text(const char *buf, size_t size)
{
	if (size && buf[size - 1] == '\n')
		size--;
	if (memchr(buf, '\0', size))
		return NULL;
	return strndup(buf, size);
}

/* Checks a pid written to `pid`; fills W->pid and W->start. */
static int check_pid(fuse_req_t req, const char *buf, size_t size, struct write_arg *w,
		     struct scope_err *err)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	unsigned long long v = 0;
	size_t i = 0, end = size;
	uid_t ruid, euid;
	gid_t egid;
	pid_t tgid;
	int rc;

	while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
		i++;
	while (end > i && (buf[end - 1] == '\n' || buf[end - 1] == ' ' || buf[end - 1] == '\t'))
		end--;
	if (i == end)
		return scopefs_fail(err, -EINVAL, "not a positive integer");
	for (; i < end; i++) {
		if (buf[i] < '0' || buf[i] > '9' || v > INT_MAX)
			return scopefs_fail(err, -EINVAL, "not a positive integer");
		v = v * 10 + (unsigned)(buf[i] - '0');
	}
	if (v == 0 || v > INT_MAX)
		return scopefs_fail(err, -EINVAL, "not a positive integer");
	/* A thread id stands for its process. */
	rc = proc_tgid((pid_t)v, &tgid);
	if (!rc)
		rc = proc_ids(tgid, &ruid, &euid, &egid);
	if (!rc)
		rc = scope_proc_start((uint32_t)tgid, &w->start);
	if (rc < 0)
		return scopefs_fail(err, -ESRCH, "no process %llu", v);
	if (ctx->uid != 0 && ctx->uid != ruid && ctx->uid != euid)
		return scopefs_fail(err, -EPERM, "process %d belongs to another user", (int)tgid);
	w->pid = (uint32_t)tgid;
	return 0;
}

/* fast_read: a write of INO reached us; returns the ticket to wait for.
 * Waiting is safe: attribute invalidations take no page lock, and the
 * writer holds one until we reply. */
static uint64_t touch_written(struct scopefs *d, fuse_ino_t ino)
{
	uint64_t ticket = 0;
	struct node *n;

	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	if (n && n->kind == NODE_FILE)
		ticket = view_push_file(d, n);
	pthread_mutex_unlock(&d->lock);
	return ticket;
}

static void sfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	struct write_arg w = { .ino = ino, .append = (fi->flags & O_APPEND) != 0 };
	struct origin o = { .kind = ORIGIN_WRITE, .ino = ino };
	struct scope_err err = { 0 };
	char *text = NULL;
	char what[1400];
	uint64_t ticket;
	struct node *n;
	int rc;

	if (loopback_is(d->loopback, req)) {
		if (d->fast_read)
			(void)touch_written(d, ino);
		fuse_reply_write(req, size); /* the content is there already */
		return;
	}
	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	rc = n && n->kind == NODE_FILE ? 0 : -EBADF;
	if (n) {
		w.file = n->file;
		node_path(d, n, what, sizeof(what));
	}
	pthread_mutex_unlock(&d->lock);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (size > SCOPEFS_MAX_WRITE) {
		rc = scopefs_fail(&err, -EFBIG, "%zu bytes in one write, over the limit of %d", size,
				  SCOPEFS_MAX_WRITE);
		goto out;
	}
	if (off > 0 && !w.append) {
		rc = scopefs_fail(&err, -EINVAL,
				  "a write at offset %lld: one write() carries the whole content",
				  (long long)off);
		goto out;
	}
	switch (w.file) {
	case PF_ALLOW:
		rc = scope_rules_parse(buf, size, &w.rules, &w.nrules, &err);
		break;
	case PF_PID:
		rc = check_pid(req, buf, size, &w, &err);
		break;
	case PF_SESSION:
	case PF_SOCKET:
		text = value_text(buf, size);
		if (!text)
			rc = scopefs_fail(&err, -EINVAL, "not a %s",
					  w.file == PF_SESSION ? "UUID" : "path");
		else if (w.file == PF_SESSION && !scope_session_valid(text))
			rc = scopefs_fail(&err, -EINVAL, "`%s` is not a UUID", text);
		w.text = text;
		break;
	default:
		rc = scopefs_fail(&err, -EACCES, "`%s` is read-only", view_file_name(w.file));
		break;
	}
	if (rc < 0)
		goto out;
	rc = scopefs_change(d, do_write, &w, &o, &err, &ticket);
	if (!rc)
		notifier_wait(&d->inodes, ticket, WAIT_NOTIFY_MS);
out:
	/* fast_read: the bytes went through the page cache on their way
	 * here, and the content shown is not them (a refusal, or what the
	 * table makes of them): the pages must not be served. */
	if (d->fast_read)
		notifier_wait(&d->inodes, touch_written(d, ino), WAIT_NOTIFY_MS);
	if (rc < 0)
		refuse(req, "write", what, rc, &err);
	else
		fuse_reply_write(req, size);
	scope_rules_free(w.rules, w.nrules);
	free(text);
}

static void sfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* fast_read: files are opened without us, so no noflush either;
	 * ENOSYS makes the kernel stop sending FLUSH (it does nothing). */
	fuse_reply_err(req, sfs_of(req)->fast_read ? ENOSYS : 0);
}

static void sfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	/* Every accepted write is saved (and synced) before it is answered. */
	fuse_reply_err(req, 0);
}

static void sfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);

	if (ino == INO_EVENTS && fi->fh)
		events_close(&d->events, (struct ev_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void sfs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct fuse_pollhandle *ph)
{
	struct scopefs *d = sfs_of(req);

	if (ino == INO_EVENTS && fi->fh) {
		events_poll(&d->events, (struct ev_handle *)(uintptr_t)fi->fh, req, ph);
		return;
	}
	/* Pod files are always ready, like regular files. */
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
}

/* ------------------------------------------------------------------ */
/* Directories: a snapshot taken at offset 0, so that ls sees one state */

struct dir_ent {
	char *name;
	fuse_ino_t ino;
	mode_t mode;
};

struct dir_handle {
	struct dir_ent *ents;
	size_t n, cap;
};

static void dir_clear(struct dir_handle *dh)
{
	size_t i;

	for (i = 0; i < dh->n; i++)
		free(dh->ents[i].name);
	dh->n = 0;
}

static int dir_add(struct scopefs *d, struct dir_handle *dh, fuse_ino_t parent, const char *name,
		   fuse_ino_t ino, mode_t mode)
{
	if (dh->n == dh->cap) {
		size_t cap = dh->cap ? dh->cap * 2 : 32;
		struct dir_ent *ents = realloc(dh->ents, cap * sizeof(*ents));

		if (!ents)
			return -ENOMEM;
		dh->ents = ents;
		dh->cap = cap;
	}
	if (!ino) {
		/* Not looked up yet: any number that no node will take. */
		struct node *n = nodes_find(&d->nodes, parent, name);

		ino = n ? n->ino : (1ull << 62) | view_hash(name, strlen(name)) >> 2;
	}
	dh->ents[dh->n].name = strdup(name);
	if (!dh->ents[dh->n].name)
		return -ENOMEM;
	dh->ents[dh->n].ino = ino;
	dh->ents[dh->n].mode = mode;
	dh->n++;
	return 0;
}

static int dir_fill(struct scopefs *d, const struct scope_table *t, struct node *n,
		    struct dir_handle *dh)
{
	const struct scope_alloc *a, *c;
	size_t i, count = scope_table_count(t);
	int rc, f;

	dir_clear(dh);
	if (!view_node_valid(d, t, n))
		return -ENOENT;
	rc = dir_add(d, dh, n->ino, ".", n->ino, S_IFDIR);
	if (!rc)
		rc = dir_add(d, dh, n->ino, "..", n->parent ? n->parent : n->ino, S_IFDIR);
	switch (n->kind) {
	case NODE_ROOT:
		if (!rc)
			rc = dir_add(d, dh, n->ino, ".by-session", INO_BYSESSION, S_IFDIR);
		if (!rc && !d->fast_read)
			rc = dir_add(d, dh, n->ino, ".events", INO_EVENTS, S_IFREG);
		for (i = 0; !rc && i < count; i++) {
			a = scope_table_at(t, i);
			if (view_name_shown(a->name))
				rc = dir_add(d, dh, n->ino, a->name, 0, S_IFDIR);
		}
		break;
	case NODE_POD:
		a = scope_find(t, n->pod);
		for (f = 0; !rc && f < PF_COUNT; f++)
			rc = dir_add(d, dh, n->ino, view_file_name((enum pod_file)f), 0, S_IFREG);
		for (c = a ? scope_first_child(t, a) : NULL; !rc && c; c = scope_next_sibling(t, c))
			if (view_name_shown(c->name))
				rc = dir_add(d, dh, n->ino, c->name, 0, S_IFDIR);
		break;
	case NODE_BYSESSION:
		for (i = 0; !rc && i < count; i++) {
			a = scope_table_at(t, i);
			/* A session held twice (a foreign writer) shows once. */
			if (a->session && view_name_shown(a->name) &&
			    scope_find_session(t, a->session) == a)
				rc = dir_add(d, dh, n->ino, a->session, 0, S_IFLNK);
		}
		break;
	default:
		rc = -ENOTDIR;
	}
	return rc;
}

static void sfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	struct dir_handle *dh;
	struct node *n;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	n = nodes_get(&d->nodes, ino);
	if (!n || !view_node_valid(d, scope_file_table(d->file), n))
		rc = -ENOENT;
	else if (n->kind != NODE_ROOT && n->kind != NODE_POD && n->kind != NODE_BYSESSION)
		rc = -ENOTDIR;
	pthread_mutex_unlock(&d->lock);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	dh = calloc(1, sizeof(*dh));
	if (!dh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)dh;
	if (fuse_reply_open(req, fi)) {
		free(dh);
	}
}

static void sfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct scopefs *d = sfs_of(req);
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	size_t pos = 0, i;
	char *buf;
	int rc = 0;

	if (off == 0) {
		struct node *n;

		pthread_mutex_lock(&d->lock);
		n = nodes_get(&d->nodes, ino);
		rc = n ? dir_fill(d, scope_file_table(d->file), n, dh) : -ENOENT;
		pthread_mutex_unlock(&d->lock);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off < 0 ? 0 : (size_t)off; i < dh->n; i++) {
		struct stat st = { .st_ino = dh->ents[i].ino, .st_mode = dh->ents[i].mode };
		size_t sz = fuse_add_direntry(req, buf + pos, size - pos, dh->ents[i].name, &st,
					      (off_t)(i + 1));

		if (sz > size - pos)
			break;
		pos += sz;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void sfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;

	if (dh) {
		dir_clear(dh);
		free(dh->ents);
		free(dh);
	}
	fuse_reply_err(req, 0);
}

static void sfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct scopefs *d = userdata;
	const unsigned need = FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_AUTO_INVAL_DATA;

	/* Every write must reach us as the caller made it. */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (!d->fast_read)
		return;
	/* No OPEN at all; and with auto_inval_data every read() checks the
	 * attributes first, so that a new mtime drops stale pages. */
	if ((conn->capable & need) != need) {
		sfs_log(LOG_ERR, "fast_read: the kernel lacks no_open or auto_inval_data");
		fuse_session_exit(d->se);
		return;
	}
	conn->want |= need;
	conn->want &= ~(unsigned)FUSE_CAP_EXPLICIT_INVAL_DATA;
	/* Without it a truncating open is a SETATTR, which we answer with
	 * the unchanged size; with it the kernel would show an empty file
	 * to readers until the write that follows. */
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
}

const struct fuse_lowlevel_ops scopefs_ops = {
	.init = sfs_init,
	.lookup = sfs_lookup,
	.forget = sfs_forget,
	.forget_multi = sfs_forget_multi,
	.getattr = sfs_getattr,
	.setattr = sfs_setattr,
	.readlink = sfs_readlink,
	.mknod = sfs_mknod,
	.mkdir = sfs_mkdir,
	.unlink = sfs_unlink,
	.rmdir = sfs_rmdir,
	.symlink = sfs_symlink,
	.rename = sfs_rename,
	.link = sfs_link,
	.open = sfs_open,
	.read = sfs_read,
	.write = sfs_write,
	.flush = sfs_flush,
	.release = sfs_release,
	.fsync = sfs_fsync,
	.opendir = sfs_opendir,
	.readdir = sfs_readdir,
	.releasedir = sfs_releasedir,
	.setxattr = sfs_setxattr,
	.removexattr = sfs_removexattr,
	.create = sfs_create,
	.poll = sfs_poll,
};
