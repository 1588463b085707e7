/* SPDX-License-Identifier: MIT */
/*
 * watch.c - the watcher thread (not a FUSE worker): it waits, without
 * polling, for
 *   - a pod owner's death (the procwatch fd) or the end of a grace period
 *     (a timeout), then reclaims, so a dead owner's pod goes within 1 s;
 *   - a change of the table file by another program (inotify on the file,
 *     and on its directory for a replaced file), then reloads under the
 *     flock so the change shows in the view at once.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "scopefs.h"

#define FILE_MASK (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
#define DIR_MASK (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)

struct watcher {
	struct scopefs *d;
	pthread_t thread;
	bool started;
	int epfd, inofd, stopfd;
	int wd_file, wd_dir;
	char *path, *dir, *base;
	char last_err[sizeof(((struct scope_err *)0)->msg)];
};

void watcher_free(struct watcher *w)
{
	uint64_t one = 1;

	if (!w)
		return;
	if (w->started) {
		if (write(w->stopfd, &one, sizeof(one)) < 0)
			sfs_log(LOG_ERR, "cannot stop the watcher: %s", strerror(errno));
		pthread_join(w->thread, NULL);
	}
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->inofd >= 0)
		close(w->inofd);
	if (w->stopfd >= 0)
		close(w->stopfd);
	free(w->path);
	free(w->dir);
	free(w->base);
	free(w);
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int watcher_new(struct scopefs *d, struct watcher **out)
{
	struct watcher *w = calloc(1, sizeof(*w));
	char *tmp = NULL;
	int rc;

	if (!w)
		return -ENOMEM;
	w->d = d;
	w->epfd = w->inofd = w->stopfd = w->wd_file = w->wd_dir = -1;
	w->path = strdup(scope_file_path(d->file));
	if (!w->path)
		goto nomem;
	tmp = strdup(w->path);
	if (!tmp)
		goto nomem;
	w->dir = strdup(dirname(tmp));
	strcpy(tmp, w->path);
	w->base = strdup(basename(tmp));
	free(tmp);
	if (!w->dir || !w->base)
		goto nomem;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->epfd < 0 || w->inofd < 0 || w->stopfd < 0) {
		rc = -errno;
		goto fail;
	}
	w->wd_dir = inotify_add_watch(w->inofd, w->dir, DIR_MASK | IN_ONLYDIR);
	w->wd_file = inotify_add_watch(w->inofd, w->path, FILE_MASK);
	if (w->wd_dir < 0 || w->wd_file < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = epoll_add(w->epfd, w->inofd)) < 0 || (rc = epoll_add(w->epfd, w->stopfd)) < 0 ||
	    (rc = epoll_add(w->epfd, scope_procwatch_fd(d->pw))) < 0)
		goto fail;
	*out = w;
	return 0;
nomem:
	free(tmp);
	rc = -ENOMEM;
fail:
	watcher_free(w);
	return rc;
}

/* Reads every pending inotify event; true if the table may have changed. */
static bool drain_inotify(struct watcher *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool changed = false, rewatch = false;
	ssize_t len;

	for (;;) {
		char *p;

		len = read(w->inofd, buf, sizeof(buf));
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			break;
		for (p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->wd == w->wd_file) {
				changed = true;
				if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
					rewatch = true;
			} else if (ev->wd == w->wd_dir && ev->len && !strcmp(ev->name, w->base)) {
				/* The file was replaced: watch the new one. */
				changed = true;
				rewatch = true;
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	if (rewatch) {
		int wd = inotify_add_watch(w->inofd, w->path, FILE_MASK);

		if (wd >= 0)
			w->wd_file = wd;
	}
	return changed;
}

static void run_reclaim(struct watcher *w)
{
	struct scope_err err;
	int rc = scopefs_change(w->d, NULL, NULL, NULL, &err, NULL);

	/* Say it once, not at every wake-up, while the file stays broken. */
	if (rc < 0 && strcmp(err.msg, w->last_err)) {
		sfs_log(LOG_ERR, "cannot follow the table: %s", err.msg[0] ? err.msg : strerror(-rc));
		snprintf(w->last_err, sizeof(w->last_err), "%s", err.msg);
	} else if (!rc) {
		w->last_err[0] = '\0';
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	struct scopefs *d = w->d;
	int pwfd = scope_procwatch_fd(d->pw);
	uint64_t due = 0; /* when a grace period ends; 0: none known */

	/* Pods whose owner died while no daemon watched go now. */
	run_reclaim(w);
	for (;;) {
		struct epoll_event evs[8];
		bool reclaim = false;
		int timeout = -1, left, n, i;
		uint64_t now = now_ms();

		/* A reclaim follows every expiry of a grace period (the core
		 * reports an expired one as due until a reclaim forgets it). */
		if (due && now >= due) {
			run_reclaim(w);
			due = 0;
		}
		pthread_mutex_lock(&d->lock);
		left = scope_procwatch_next_deadline(d->pw);
		pthread_mutex_unlock(&d->lock);
		if (left >= 0 && (!due || now + (uint64_t)left + 2 < due))
			due = now + (uint64_t)left + 2; /* just after the end */
		if (due)
			timeout = due > now ? (int)(due - now) : 0;
		n = epoll_wait(w->epfd, evs, 8, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sfs_log(LOG_ERR, "watcher: epoll_wait: %s", strerror(errno));
			usleep(100000);
			continue;
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == w->stopfd)
				return NULL;
			if (fd == pwfd) {
				pthread_mutex_lock(&d->lock);
				(void)scope_procwatch_collect(d->pw);
				pthread_mutex_unlock(&d->lock);
				reclaim = true;
			} else if (fd == w->inofd && drain_inotify(w)) {
				reclaim = true;
			}
		}
		if (reclaim)
			run_reclaim(w);
	}
	return NULL;
}

int watcher_start(struct watcher *w)
{
	int rc = pthread_create(&w->thread, NULL, watcher_main, w);

	if (rc)
		return -rc;
	w->started = true;
	return 0;
}
