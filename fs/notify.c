/* SPDX-License-Identifier: MIT */
/*
 * notify.c - kernel notifications from a thread of their own.
 *
 * The kernel may hold the locks an invalidation needs while one of our
 * handlers runs (a mkdir holds its parent directory), so handlers and
 * lock holders only queue; a notifier thread sends, in order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "scopefs.h"

enum nitem_kind { NI_INODE, NI_ATTR, NI_ENTRY, NI_POLL };

struct nitem {
	enum nitem_kind kind;
	uint64_t after; /* send once BEFORE's ticket AFTER is sent */
	fuse_ino_t ino; /* INODE: the inode; ENTRY: the parent */
	char *name;
	struct fuse_pollhandle *ph;
};

int notifier_init(struct notifier *n, const char *name)
{
	memset(n, 0, sizeof(*n));
	n->name = name;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->wake, NULL);
	pthread_cond_init(&n->done_cv, NULL);
	return 0;
}

static void item_free(struct nitem *it)
{
	free(it->name);
	if (it->ph)
		fuse_pollhandle_destroy(it->ph);
}

static void send_item(struct notifier *n, struct nitem *it)
{
	int rc = 0;

	switch (it->kind) {
	case NI_INODE:
		rc = fuse_lowlevel_notify_inval_inode(n->se, it->ino, 0, 0);
		break;
	case NI_ATTR:
		/* A negative offset: the attributes only, no page lock. */
		rc = fuse_lowlevel_notify_inval_inode(n->se, it->ino, -1, 0);
		break;
	case NI_ENTRY:
		rc = fuse_lowlevel_notify_inval_entry(n->se, it->ino, it->name, strlen(it->name));
		break;
	case NI_POLL:
		rc = fuse_lowlevel_notify_poll(it->ph);
		break;
	}
	/* ENOENT: the kernel had forgotten it already, nothing to do;
	 * ENOTCONN/ENODEV: unmounting. */
	if (rc < 0 && rc != -ENOENT && rc != -ENOTCONN && rc != -ENODEV && rc != -EBADF)
		sfs_log(LOG_WARNING, "%s notification failed: %s", n->name, strerror(-rc));
}

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;
	struct nitem it;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->count && !n->stop)
			pthread_cond_wait(&n->wake, &n->lock);
		if (n->stop)
			break;
		it = n->items[n->head];
		n->head = (n->head + 1) % n->cap;
		n->count--;
		pthread_mutex_unlock(&n->lock);
		/* A name must not vanish before the content that changed with it
		 * is invalidated: a reader who sees the one sees the other.  The
		 * wait is bounded, as the other notifier may be held up. */
		if (n->before && it.after)
			notifier_wait(n->before, it.after, 200);
		send_item(n, &it);
		item_free(&it);
		pthread_mutex_lock(&n->lock);
		n->done++;
		pthread_cond_broadcast(&n->done_cv);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int notifier_start(struct notifier *n, struct fuse_session *se)
{
	int rc;

	n->se = se;
	rc = pthread_create(&n->thread, NULL, notifier_main, n);
	if (rc)
		return -rc;
	n->started = true;
	return 0;
}

static void drop_all(struct notifier *n)
{
	while (n->count) {
		item_free(&n->items[n->head]);
		n->head = (n->head + 1) % n->cap;
		n->count--;
		n->done++;
	}
	pthread_cond_broadcast(&n->done_cv);
}

void notifier_stop(struct notifier *n)
{
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_broadcast(&n->wake);
	pthread_mutex_unlock(&n->lock);
	if (n->started)
		pthread_join(n->thread, NULL);
	n->started = false;
	pthread_mutex_lock(&n->lock);
	drop_all(n);
	pthread_mutex_unlock(&n->lock);
}

void notifier_release(struct notifier *n)
{
	drop_all(n);
	free(n->items);
	n->items = NULL;
	pthread_cond_destroy(&n->done_cv);
	pthread_cond_destroy(&n->wake);
	pthread_mutex_destroy(&n->lock);
}

/* Queues IT (taking its resources); returns the ticket, 0 on failure. */
static uint64_t push(struct notifier *n, struct nitem *it)
{
	uint64_t ticket = 0;

	if (n->before) {
		pthread_mutex_lock(&n->before->lock);
		it->after = n->before->queued;
		pthread_mutex_unlock(&n->before->lock);
	}

	pthread_mutex_lock(&n->lock);
	if (n->stop)
		goto fail;
	if (n->count == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 64, i;
		struct nitem *items = malloc(cap * sizeof(*items));

		if (!items)
			goto fail;
		for (i = 0; i < n->count; i++)
			items[i] = n->items[(n->head + i) % n->cap];
		free(n->items);
		n->items = items;
		n->cap = cap;
		n->head = 0;
	}
	n->items[(n->head + n->count) % n->cap] = *it;
	n->count++;
	ticket = ++n->queued;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
	return ticket;
fail:
	pthread_mutex_unlock(&n->lock);
	item_free(it);
	return 0;
}

uint64_t notifier_push_inode(struct notifier *n, fuse_ino_t ino)
{
	struct nitem it = { .kind = NI_INODE, .ino = ino };

	return push(n, &it);
}

uint64_t notifier_push_attr(struct notifier *n, fuse_ino_t ino)
{
	struct nitem it = { .kind = NI_ATTR, .ino = ino };

	return push(n, &it);
}

uint64_t notifier_push_entry(struct notifier *n, fuse_ino_t parent, const char *name)
{
	struct nitem it = { .kind = NI_ENTRY, .ino = parent, .name = strdup(name) };

	if (!it.name)
		return 0;
	return push(n, &it);
}

uint64_t notifier_push_poll(struct notifier *n, struct fuse_pollhandle *ph)
{
	struct nitem it = { .kind = NI_POLL, .ph = ph };

	return push(n, &it);
}

void notifier_wait(struct notifier *n, uint64_t ticket, int timeout_ms)
{
	struct timespec until;

	if (!ticket)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&n->lock);
	while (n->done < ticket && !n->stop && n->started) {
		if (pthread_cond_timedwait(&n->done_cv, &n->lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&n->lock);
}
