/* SPDX-License-Identifier: MIT */
/*
 * proc.c - is the owner of a pod alive?  The original asks kill(pid, 0) for
 * every entry before every change; here a cache holds one pidfd per
 * process, so a reclaim costs a lookup per entry and a front end can wait
 * for deaths with poll instead of polling.  A recorded start time keeps a
 * reused pid from passing for the dead owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

int scope_proc_start(uint32_t pid, uint64_t *start)
{
	char path[64], buf[1024];
	unsigned long long ticks;
	ssize_t n;
	char *p;
	int fd, field;

	if (pid == 0 || pid >= SCOPE_PID_LIMIT)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	/* After ")" come fields 3 (state) .. 22 (starttime). */
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &ticks) != 1)
		return -EIO;
	*start = ticks;
	return 0;
}

bool scope_pid_alive(uint32_t pid, uint64_t start)
{
	uint64_t now;

	if (pid == 0 || pid >= SCOPE_PID_LIMIT)
		return false;
	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return false;
	if (start && scope_proc_start(pid, &now) == 0 && now != start)
		return false; /* the pid now names another process */
	return true;
}

/* ---- the cache ---- */

struct watched {
	uint32_t pid; /* 0: free slot */
	uint64_t start;
	int pidfd;	   /* -1 once the process has exited */
	uint64_t dead_at;  /* CLOCK_MONOTONIC ms when its exit was seen */
	unsigned grace_ms; /* counted alive this long after its exit */
};

struct scope_procwatch {
	int epfd;
	struct watched *w; /* open addressing by pid */
	size_t cap, used;
};

int scope_procwatch_new(struct scope_procwatch **out)
{
	struct scope_procwatch *pw = calloc(1, sizeof(*pw));

	if (!pw)
		return -ENOMEM;
	pw->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (pw->epfd < 0) {
		int e = -errno;

		free(pw);
		return e;
	}
	pw->cap = 64;
	pw->w = calloc(pw->cap, sizeof(*pw->w));
	if (!pw->w) {
		close(pw->epfd);
		free(pw);
		return -ENOMEM;
	}
	*out = pw;
	return 0;
}

void scope_procwatch_free(struct scope_procwatch *pw)
{
	if (!pw)
		return;
	for (size_t i = 0; i < pw->cap; i++)
		if (pw->w[i].pid && pw->w[i].pidfd >= 0)
			close(pw->w[i].pidfd);
	close(pw->epfd);
	free(pw->w);
	free(pw);
}

int scope_procwatch_fd(const struct scope_procwatch *pw)
{
	return pw->epfd;
}

static size_t slot_of(const struct scope_procwatch *pw, uint32_t pid)
{
	return (size_t)(pid * 2654435761u) & (pw->cap - 1);
}

static struct watched *lookup(struct scope_procwatch *pw, uint32_t pid)
{
	for (size_t i = slot_of(pw, pid);; i = (i + 1) & (pw->cap - 1)) {
		if (pw->w[i].pid == pid)
			return &pw->w[i];
		if (pw->w[i].pid == 0)
			return NULL;
	}
}

static int rehash(struct scope_procwatch *pw, size_t cap)
{
	struct watched *old = pw->w, *nw = calloc(cap, sizeof(*nw));
	size_t oldcap = pw->cap;

	if (!nw)
		return -ENOMEM;
	pw->w = nw;
	pw->cap = cap;
	pw->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].pid)
			continue;
		size_t j = slot_of(pw, old[i].pid);

		while (nw[j].pid)
			j = (j + 1) & (cap - 1);
		nw[j] = old[i]; /* epoll data is the pid, not the slot */
		pw->used++;
	}
	free(old);
	return 0;
}

static void forget(struct scope_procwatch *pw, struct watched *w)
{
	if (w->pidfd >= 0) {
		epoll_ctl(pw->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
		close(w->pidfd);
	}
	/* Linear probing without tombstones: shift later entries back. */
	size_t i = (size_t)(w - pw->w), j = i;

	pw->w[i].pid = 0;
	pw->used--;
	for (;;) {
		size_t home;

		j = (j + 1) & (pw->cap - 1);
		if (!pw->w[j].pid)
			break;
		home = slot_of(pw, pw->w[j].pid);
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			pw->w[i] = pw->w[j];
			pw->w[j].pid = 0;
			i = j;
		}
	}
}

/* Watch PID (whose start time must be START unless 0): true if alive. */
static bool probe(struct scope_procwatch *pw, uint32_t pid, uint64_t start, struct watched **out)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = pid };
	struct pollfd pfd;
	uint64_t now_start;
	struct watched *w;
	size_t j;
	int fd;

	*out = NULL;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0) {
		if (errno == ESRCH)
			return false;
		return scope_pid_alive(pid, start); /* e.g. out of descriptors */
	}
	/* The pidfd pins the process: /proc/PID is this one while it lives. */
	if (scope_proc_start(pid, &now_start) < 0)
		now_start = 0;
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) == 1 || (start && now_start && now_start != start)) {
		close(fd);
		return false;
	}
	if ((pw->used + 1) * 2 > pw->cap) {
		size_t cap = pw->cap;

		while ((pw->used + 1) * 2 > cap)
			cap *= 2;
		if (rehash(pw, cap) < 0) {
			close(fd);
			return true;
		}
	}
	if (epoll_ctl(pw->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return scope_pid_alive(pid, start);
	}
	j = slot_of(pw, pid);
	while (pw->w[j].pid)
		j = (j + 1) & (pw->cap - 1);
	w = &pw->w[j];
	w->pid = pid;
	w->start = now_start;
	w->pidfd = fd;
	w->dead_at = 0;
	w->grace_ms = 0;
	pw->used++;
	*out = w;
	return true;
}

int scope_procwatch_collect(struct scope_procwatch *pw)
{
	struct epoll_event ev[64];
	int n, total = 0;

	do {
		n = epoll_wait(pw->epfd, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			struct watched *w = lookup(pw, ev[i].data.u32);

			if (!w || w->pidfd < 0)
				continue;
			epoll_ctl(pw->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
			close(w->pidfd);
			w->pidfd = -1;
			w->dead_at = now_ms();
			if (!w->grace_ms)
				forget(pw, w);
			total++;
		}
	} while (n == 64);
	return total;
}

bool scope_procwatch_alive(struct scope_procwatch *pw, uint32_t pid, uint64_t start)
{
	struct watched *w;

	if (pid == 0 || pid >= SCOPE_PID_LIMIT)
		return false;
	w = lookup(pw, pid);
	if (w) {
		if (w->pidfd >= 0)
			return !(start && w->start && start != w->start);
		if (now_ms() < w->dead_at + w->grace_ms)
			return true;
		forget(pw, w);
		return false;
	}
	return probe(pw, pid, start, &w);
}

void scope_procwatch_grace(struct scope_procwatch *pw, uint32_t pid, unsigned ms)
{
	struct watched *w = NULL;

	if (scope_procwatch_alive(pw, pid, 0))
		w = lookup(pw, pid);
	if (w)
		w->grace_ms = ms;
}

int scope_procwatch_next_deadline(struct scope_procwatch *pw)
{
	uint64_t now = now_ms(), best = UINT64_MAX;

	for (size_t i = 0; i < pw->cap; i++) {
		struct watched *w = &pw->w[i];

		if (w->pid && w->pidfd < 0 && w->dead_at + w->grace_ms < best)
			best = w->dead_at + w->grace_ms;
	}
	if (best == UINT64_MAX)
		return -1;
	return best <= now ? 0 : (int)(best - now > 60000 ? 60000 : best - now);
}

/* Dead processes whose grace is over are forgotten: a pod still naming
 * one is found dead by a fresh probe, and no expired deadline keeps firing
 * once a reclaim has run. */
static void drop_expired(struct scope_procwatch *pw)
{
	uint64_t now = now_ms();

	for (size_t i = 0; i < pw->cap;) {
		struct watched *w = &pw->w[i];

		if (w->pid && w->pidfd < 0 && w->dead_at + w->grace_ms <= now)
			forget(pw, w); /* the backward shift may refill slot i */
		else
			i++;
	}
}

static void pw_begin(void *ctx)
{
	scope_procwatch_collect(ctx);
	drop_expired(ctx);
}

static bool pw_alive(void *ctx, const struct scope_alloc *a)
{
	return scope_procwatch_alive(ctx, a->pid, a->pid_start);
}

struct scope_liveness scope_procwatch_liveness(struct scope_procwatch *pw)
{
	struct scope_liveness lv = { .begin = pw_begin, .alive = pw_alive, .ctx = pw };

	return lv;
}

/* ---- the default table path ---- */

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int scope_default_path(char **out, struct scope_err *err)
{
	const char *v;
	int n = -1;

	if ((v = env("INSOMNIA_RUNTIME_DIR")))
		n = asprintf(out, "%s/scope.lock", v);
	else if ((v = env("INSOMNIA_HOME")))
		n = asprintf(out, "%s/run/scope.lock", v);
	else if ((v = env("XDG_RUNTIME_DIR")))
		n = asprintf(out, "%s/insomnia/scope.lock", v);
	else if ((v = env("HOME")))
		n = asprintf(out, "%s/.insomnia/run/scope.lock", v);
	else
		return err_set(err, SCOPE_EIO, -ENOENT,
				  "could not resolve scope.lock path (no INSOMNIA_HOME / "
				  "INSOMNIA_RUNTIME_DIR / XDG_RUNTIME_DIR / HOME)");
	if (n < 0)
		return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
	return 0;
}
