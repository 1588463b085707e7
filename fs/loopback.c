/* SPDX-License-Identifier: MIT */
/*
 * loopback.c - make inotify watchers of the mount see every change.
 *
 * The kernel reports to inotify only operations made through the mount;
 * nothing the daemon sends (invalidations, deletes) yields CREATE or
 * DELETE.  So for a change the mount did not carry at that path (another
 * program's write, a reap, a delegation seen at the root, a reparent) a
 * thread of ours that is not a FUSE worker repeats it through the mount:
 * mkdir, rmdir, or open + write + close of the pod's file.  The handlers
 * recognise its requests by its thread id and acknowledge them without
 * touching the table.  Each action opens the mount's root and checks it is
 * our mount before acting relative to it, so that nothing can reach the
 * directory underneath once unmounted; the descriptor is closed at once
 * because an open one would make the unmount fail with EBUSY.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <syslog.h>
#include <unistd.h>

#include "scopefs.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

struct lb_item {
	enum lb_kind kind;
	char *name;
	enum pod_file file;
};

struct loopback {
	struct scopefs *d;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct lb_item *items;
	size_t head, count, cap;
	bool stop, started;
	pthread_t thread;
	pid_t tid;	    /* set once before the first request */
	struct lb_item cur; /* what the thread does now; cur.name NULL: nothing */
	char *mountpoint;
	dev_t dev; /* the mount's, learnt at the first action */
};

int loopback_new(struct scopefs *d, const char *mountpoint, struct loopback **out)
{
	struct loopback *lb = calloc(1, sizeof(*lb));

	if (!lb)
		return -ENOMEM;
	lb->mountpoint = strdup(mountpoint);
	if (!lb->mountpoint) {
		free(lb);
		return -ENOMEM;
	}
	lb->d = d;
	lb->tid = -1;
	pthread_mutex_init(&lb->lock, NULL);
	pthread_cond_init(&lb->wake, NULL);
	*out = lb;
	return 0;
}

static void drop_items(struct loopback *lb)
{
	while (lb->count) {
		free(lb->items[lb->head].name);
		lb->head = (lb->head + 1) % lb->cap;
		lb->count--;
	}
}

void loopback_stop(struct loopback *lb)
{
	if (!lb)
		return;
	pthread_mutex_lock(&lb->lock);
	lb->stop = true;
	drop_items(lb);
	pthread_cond_broadcast(&lb->wake);
	pthread_mutex_unlock(&lb->lock);
}

void loopback_free(struct loopback *lb)
{
	if (!lb)
		return;
	loopback_stop(lb);
	if (lb->started)
		pthread_join(lb->thread, NULL);
	free(lb->items);
	free(lb->mountpoint);
	pthread_cond_destroy(&lb->wake);
	pthread_mutex_destroy(&lb->lock);
	free(lb);
}

void loopback_push(struct loopback *lb, enum lb_kind kind, const char *name, enum pod_file file)
{
	struct lb_item it = { .kind = kind, .file = file };

	if (!lb)
		return;
	pthread_mutex_lock(&lb->lock);
	if (lb->stop || !lb->started)
		goto out;
	if (lb->count == lb->cap) {
		size_t cap = lb->cap ? lb->cap * 2 : 32, i;
		struct lb_item *items = malloc(cap * sizeof(*items));

		if (!items)
			goto out; /* a watcher misses one event; the view is right */
		for (i = 0; i < lb->count; i++)
			items[i] = lb->items[(lb->head + i) % lb->cap];
		free(lb->items);
		lb->items = items;
		lb->cap = cap;
		lb->head = 0;
	}
	it.name = strdup(name);
	if (!it.name)
		goto out;
	lb->items[(lb->head + lb->count) % lb->cap] = it;
	lb->count++;
	pthread_cond_signal(&lb->wake);
out:
	pthread_mutex_unlock(&lb->lock);
}

bool loopback_is(struct loopback *lb, fuse_req_t req)
{
	return lb && __atomic_load_n(&lb->tid, __ATOMIC_ACQUIRE) == fuse_req_ctx(req)->pid;
}

bool loopback_doing(struct loopback *lb, enum lb_kind kind, const char *name)
{
	bool yes;

	pthread_mutex_lock(&lb->lock);
	yes = lb->cur.name && lb->cur.kind == kind && !strcmp(lb->cur.name, name);
	pthread_mutex_unlock(&lb->lock);
	return yes;
}

/* A descriptor of our mount's root, or -1 (not mounted any more). */
static int open_root(struct loopback *lb)
{
	struct statfs sfs;
	struct stat st;
	int fd = open(lb->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != FUSE_SUPER_MAGIC || fstat(fd, &st) < 0 ||
	    (lb->dev && st.st_dev != lb->dev)) {
		close(fd);
		return -1;
	}
	lb->dev = st.st_dev;
	return fd;
}

static void perform(struct loopback *lb, const struct lb_item *it)
{
	struct scopefs *d = lb->d;
	char path[512];
	int fd, root;

	switch (it->kind) {
	case LB_MKDIR:
		/* A name the kernel still holds from a lookup would make mkdir
		 * fail in the kernel, before us, without an event. */
		notifier_wait(&d->entries, notifier_push_entry(&d->entries, FUSE_ROOT_ID, it->name),
			      1000);
		root = open_root(lb);
		if (root >= 0) {
			(void)mkdirat(root, it->name, 0755);
			close(root);
		}
		break;
	case LB_RMDIR:
		root = open_root(lb);
		if (root >= 0) {
			(void)unlinkat(root, it->name, AT_REMOVEDIR);
			close(root);
		}
		break;
	case LB_WRITE:
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", it->name,
				     view_file_name(it->file)) >= sizeof(path))
			break;
		root = open_root(lb);
		if (root < 0)
			break;
		/* fast_read: O_DIRECT, so that the byte never lands in the
		 * page cache, where a reader could see it. */
		fd = openat(root, path, O_WRONLY | O_CLOEXEC | (d->fast_read ? O_DIRECT : 0));
		close(root);
		if (fd < 0)
			break;
		/* Any byte: the handler acknowledges it; the content is already
		 * there. */
		if (write(fd, "\n", 1) < 0 && errno != ENOENT)
			sfs_log(LOG_DEBUG, "loopback write of `%s`: %s", path, strerror(errno));
		close(fd);
		break;
	}
}

static void *loopback_main(void *arg)
{
	struct loopback *lb = arg;
	struct lb_item it;

	pthread_mutex_lock(&lb->lock);
	for (;;) {
		while (!lb->count && !lb->stop)
			pthread_cond_wait(&lb->wake, &lb->lock);
		if (lb->stop)
			break;
		it = lb->items[lb->head];
		lb->head = (lb->head + 1) % lb->cap;
		lb->count--;
		lb->cur = it;
		pthread_mutex_unlock(&lb->lock);
		perform(lb, &it);
		pthread_mutex_lock(&lb->lock);
		lb->cur.name = NULL;
		free(it.name);
	}
	pthread_mutex_unlock(&lb->lock);
	return NULL;
}

static void *loopback_entry(void *arg)
{
	struct loopback *lb = arg;

	__atomic_store_n(&lb->tid, gettid(), __ATOMIC_RELEASE);
	return loopback_main(lb);
}

int loopback_start(struct loopback *lb)
{
	int rc;

	pthread_mutex_lock(&lb->lock);
	lb->started = true;
	pthread_mutex_unlock(&lb->lock);
	rc = pthread_create(&lb->thread, NULL, loopback_entry, lb);
	if (rc) {
		lb->started = false;
		return -rc;
	}
	return 0;
}
