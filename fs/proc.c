/* SPDX-License-Identifier: MIT */
/*
 * proc.c - facts about processes from /proc: a thread's process, a
 * process's users, and a cache of pod owners.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scopefs.h"

struct owner {
	uint32_t pid; /* 0: free slot */
	uint64_t start;
	uid_t uid;
	gid_t gid;
};

/* Reads /proc/PID/status whole (it is small) into BUF. */
static int read_status(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	size_t len = 0;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	while (len + 1 < size) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* A process that exits while we read gives ESRCH. */
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
out:
	close(fd);
	return rc;
}

static const char *status_field(const char *buf, const char *key)
{
	size_t klen = strlen(key);
	const char *p = buf;

	while (p && *p) {
		if (!strncmp(p, key, klen))
			return p + klen;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

int proc_tgid(pid_t tid, pid_t *tgid)
{
	char buf[4096];
	const char *v;
	int rc;

	if (tid <= 0)
		return -ESRCH;
	rc = read_status(tid, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	v = status_field(buf, "Tgid:");
	if (!v)
		return -EIO;
	*tgid = (pid_t)strtol(v, NULL, 10);
	return *tgid > 0 ? 0 : -EIO;
}

int proc_ids(pid_t pid, uid_t *ruid, uid_t *euid, gid_t *egid)
{
	char buf[4096];
	const char *u, *g;
	unsigned long r, e, gr, ge;
	int rc;

	if (pid <= 0)
		return -ESRCH;
	rc = read_status(pid, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	u = status_field(buf, "Uid:");
	g = status_field(buf, "Gid:");
	if (!u || !g || sscanf(u, "%lu %lu", &r, &e) != 2 || sscanf(g, "%lu %lu", &gr, &ge) != 2)
		return -EIO;
	*ruid = (uid_t)r;
	*euid = (uid_t)e;
	*egid = (gid_t)ge;
	return 0;
}

int owners_init(struct owners *o, uid_t uid, gid_t gid)
{
	o->cap = 64;
	o->count = 0;
	o->slots = calloc(o->cap, sizeof(*o->slots));
	o->fallback_uid = uid;
	o->fallback_gid = gid;
	return o->slots ? 0 : -ENOMEM;
}

void owners_release(struct owners *o)
{
	free(o->slots);
	o->slots = NULL;
	o->cap = o->count = 0;
}

static size_t owner_slot(const struct owners *o, uint32_t pid)
{
	size_t i = (pid * 2654435761u) & (o->cap - 1);

	while (o->slots[i].pid && o->slots[i].pid != pid)
		i = (i + 1) & (o->cap - 1);
	return i;
}

static int owners_grow(struct owners *o)
{
	struct owner *old = o->slots;
	size_t oldcap = o->cap, i;

	o->slots = calloc(oldcap * 2, sizeof(*o->slots));
	if (!o->slots) {
		o->slots = old;
		return -ENOMEM;
	}
	o->cap = oldcap * 2;
	for (i = 0; i < oldcap; i++)
		if (old[i].pid)
			o->slots[owner_slot(o, old[i].pid)] = old[i];
	free(old);
	return 0;
}

void owners_get(struct owners *o, uint32_t pid, uint64_t start, uid_t *uid, gid_t *gid)
{
	struct owner *s;
	uint64_t now = 0;
	uid_t ruid, euid;
	gid_t egid;
	bool alive;

	*uid = o->fallback_uid;
	*gid = o->fallback_gid;
	if (!pid || pid > INT32_MAX)
		return;
	s = &o->slots[owner_slot(o, pid)];
	if (s->pid && start && s->start == start)
		goto hit;
	/* Unknown start (a foreign writer's entry), or not cached: ask /proc
	 * which process holds the pid now. */
	alive = scope_proc_start(pid, &now) == 0 && (!start || now == start);
	if (s->pid && !start && s->start == now)
		goto hit;
	if (!alive || proc_ids((pid_t)pid, &ruid, &euid, &egid) < 0) {
		/* Dead: the last owner we saw under this pid, if any. */
		if (s->pid)
			goto hit;
		return;
	}
	if (!s->pid) {
		if ((o->count + 1) * 2 > o->cap) {
			if (owners_grow(o) < 0)
				goto answer;
			s = &o->slots[owner_slot(o, pid)];
		}
		o->count++;
	}
	s->pid = pid;
	s->start = now;
	s->uid = euid;
	s->gid = egid;
hit:
	*uid = s->uid;
	*gid = s->gid;
	return;
answer:
	*uid = euid;
	*gid = egid;
}

void owners_prune(struct owners *o, const struct scope_table *t)
{
	size_t n = scope_table_count(t), i, j;
	struct owner *old;
	size_t oldcap;

	if (o->count < 2 * n + 64)
		return;
	old = o->slots;
	oldcap = o->cap;
	o->slots = calloc(oldcap, sizeof(*o->slots));
	if (!o->slots) {
		o->slots = old;
		return;
	}
	o->count = 0;
	for (i = 0; i < n; i++) {
		uint32_t pid = scope_table_at(t, i)->pid;

		for (j = (pid * 2654435761u) & (oldcap - 1); old[j].pid; j = (j + 1) & (oldcap - 1)) {
			if (old[j].pid != pid)
				continue;
			struct owner *s = &o->slots[owner_slot(o, pid)];

			if (!s->pid) {
				*s = old[j];
				o->count++;
			}
			break;
		}
	}
	free(old);
}
