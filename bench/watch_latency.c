/* SPDX-License-Identifier: MIT */
/*
 * watch_latency - how long a change takes to reach the watchers of a
 * scopefs mount:
 *   observers: inotify on MOUNT (IN_CREATE|IN_DELETE) and on MOUNT/<pod>
 *              (IN_MODIFY|IN_CLOSE_WRITE), and a poll()ing reader of an
 *              open MOUNT/.events, each in a thread of its own that stamps
 *              what it reads with CLOCK_MONOTONIC;
 *   sources:   the mount (mkdir, rmdir, a write of allow) and a direct
 *              writer of the table file on the original's protocol (open,
 *              flock LOCK_EX, read, splice the JSON text, ftruncate,
 *              pwrite, fdatasync, unlock).
 * Each latency runs from just before the change's first system call to
 * the moment the observer's read() returned the event.  Changes are made
 * one at a time: the next starts once both observers saw the last one (or
 * it timed out, which is reported as missing).  Every event nobody
 * expected, a gap in the .events sequence numbers and an event that came
 * in the wrong order are reported.
 *
 *   watch_latency -m MOUNT -t TABLE [-n CHANGES] [-w WARMUP] [-T TIMEOUT_MS]
 *
 * Exits 0 when every event arrived as expected, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOD_POD "wl-mod"
#define MAX_REPORTS 20

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "watch_latency: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- what the observers saw ---- */

enum obs { OBS_INOTIFY, OBS_EVENTS };

struct seen {
	enum obs obs;
	double t;
	/* inotify */
	int wd;
	uint32_t mask;
	/* .events */
	uint64_t seq;
	char kind[16];
	/* both: the name (inotify) or the pod (.events); .events detail */
	char name[96];
	char detail[96];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct seen *q;
	size_t head, count, cap;
} seen_q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0 };

static void seen_push(const struct seen *s)
{
	pthread_mutex_lock(&seen_q.lock);
	if (seen_q.count == seen_q.cap) {
		size_t cap = seen_q.cap ? seen_q.cap * 2 : 256, i;
		struct seen *q = malloc(cap * sizeof(*q));

		if (!q)
			die("out of memory");
		for (i = 0; i < seen_q.count; i++)
			q[i] = seen_q.q[(seen_q.head + i) % seen_q.cap];
		free(seen_q.q);
		seen_q.q = q;
		seen_q.cap = cap;
		seen_q.head = 0;
	}
	seen_q.q[(seen_q.head + seen_q.count) % seen_q.cap] = *s;
	seen_q.count++;
	pthread_cond_signal(&seen_q.cv);
	pthread_mutex_unlock(&seen_q.lock);
}

/* Takes the oldest event into OUT; false if none came by DEADLINE. */
static bool seen_pop(struct seen *out, double deadline)
{
	bool got = false;

	pthread_mutex_lock(&seen_q.lock);
	for (;;) {
		double left;
		struct timespec until;

		if (seen_q.count) {
			*out = seen_q.q[seen_q.head];
			seen_q.head = (seen_q.head + 1) % seen_q.cap;
			seen_q.count--;
			got = true;
			break;
		}
		left = deadline - now_ms();
		if (left <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(left / 1e3);
		until.tv_nsec += (long)((left - (double)(long)(left / 1e3) * 1e3) * 1e6);
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&seen_q.cv, &seen_q.lock, &until);
	}
	pthread_mutex_unlock(&seen_q.lock);
	return got;
}

static int stopfd = -1;

struct ino_ctx {
	int fd;
};

static void *inotify_main(void *arg)
{
	struct ino_ctx *c = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = stopfd, .events = POLLIN } };

	for (;;) {
		ssize_t len;
		double t;
		char *p;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll on inotify: %s", strerror(errno));
		}
		if (pf[1].revents)
			return NULL;
		len = read(c->fd, buf, sizeof(buf));
		t = now_ms();
		if (len < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (len <= 0)
			die("read of inotify: %s", len < 0 ? strerror(errno) : "end of file");
		for (p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			struct seen s = { .obs = OBS_INOTIFY, .t = t, .wd = ev->wd, .mask = ev->mask };

			if (ev->len)
				snprintf(s.name, sizeof(s.name), "%s", ev->name);
			seen_push(&s);
			p += sizeof(*ev) + ev->len;
		}
	}
}

struct ev_ctx {
	int fd;
	char line[512];
	size_t llen;
	uint64_t lines;
};

static void parse_line(struct ev_ctx *c, double t)
{
	struct seen s = { .obs = OBS_EVENTS, .t = t };
	char kind[sizeof(s.kind)], name[sizeof(s.name)], detail[sizeof(s.detail)];
	int n;

	c->line[c->llen] = '\0';
	n = sscanf(c->line, "%" SCNu64 " %15s %95s %95s", &s.seq, kind, name, detail);
	if (n < 3) {
		snprintf(s.kind, sizeof(s.kind), "?");
		snprintf(s.name, sizeof(s.name), "%.95s", c->line);
	} else {
		memcpy(s.kind, kind, sizeof(kind));
		memcpy(s.name, name, sizeof(name));
		if (n == 4)
			memcpy(s.detail, detail, sizeof(detail));
	}
	c->lines++;
	seen_push(&s);
}

static void *events_main(void *arg)
{
	struct ev_ctx *c = arg;
	char buf[65536];
	struct pollfd pf[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = stopfd, .events = POLLIN } };

	for (;;) {
		ssize_t len, i;
		double t;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll on .events: %s", strerror(errno));
		}
		if (pf[1].revents)
			return NULL;
		if (!(pf[0].revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		len = read(c->fd, buf, sizeof(buf));
		t = now_ms();
		if (len < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (len <= 0)
			die("read of .events: %s", len < 0 ? strerror(errno) : "end of file");
		for (i = 0; i < len; i++) {
			if (buf[i] == '\n') {
				parse_line(c, t);
				c->llen = 0;
			} else if (c->llen < sizeof(c->line) - 1) {
				c->line[c->llen++] = buf[i];
			}
		}
	}
}

/* ---- the direct writer: the original's protocol on the JSON text ---- */

struct text {
	char *p;
	size_t len, cap;
};

static void text_splice(struct text *t, size_t at, size_t del, const char *ins, size_t inslen)
{
	size_t need = t->len - del + inslen + 1;

	if (need > t->cap) {
		t->cap = need * 2;
		t->p = realloc(t->p, t->cap);
		if (!t->p)
			die("out of memory");
	}
	memmove(t->p + at + inslen, t->p + at + del, t->len - at - del);
	memcpy(t->p + at, ins, inslen);
	t->len = t->len - del + inslen;
	t->p[t->len] = '\0';
}

static size_t skip_ws(const struct text *t, size_t i)
{
	while (i < t->len && strchr(" \t\r\n", t->p[i]))
		i++;
	return i;
}

/* Index just after the value at I (which starts a value), or 0. */
static size_t skip_value(const struct text *t, size_t i)
{
	int depth = 0;

	do {
		if (i >= t->len)
			return 0;
		switch (t->p[i]) {
		case '"':
			for (i++; i < t->len && t->p[i] != '"'; i++)
				if (t->p[i] == '\\')
					i++;
			if (i >= t->len)
				return 0;
			i++;
			break;
		case '{':
		case '[':
			depth++;
			i++;
			break;
		case '}':
		case ']':
			depth--;
			i++;
			break;
		default:
			if (depth == 0) {
				while (i < t->len && !strchr(",]} \t\r\n", t->p[i]))
					i++;
				return i;
			}
			i++;
			break;
		}
	} while (depth > 0);
	return i;
}

/* Whether the string token at I is exactly "S". */
static bool string_is(const struct text *t, size_t i, const char *s)
{
	size_t n = strlen(s);

	return i + n + 2 <= t->len && t->p[i] == '"' && !memcmp(t->p + i + 1, s, n) &&
	       t->p[i + 1 + n] == '"';
}

/* The value of member KEY of the object at I: its start in *VAL, its end
 * returned; 0 if absent or malformed. */
static size_t member(const struct text *t, size_t i, const char *key, size_t *val)
{
	i = skip_ws(t, i);
	if (i >= t->len || t->p[i] != '{')
		return 0;
	i = skip_ws(t, i + 1);
	while (i < t->len && t->p[i] == '"') {
		bool hit = string_is(t, i, key);
		size_t end;

		i = skip_value(t, i);
		if (!i)
			return 0;
		i = skip_ws(t, i);
		if (i >= t->len || t->p[i] != ':')
			return 0;
		i = skip_ws(t, i + 1);
		end = skip_value(t, i);
		if (!end)
			return 0;
		if (hit) {
			*val = i;
			return end;
		}
		i = skip_ws(t, end);
		if (i < t->len && t->p[i] == ',')
			i = skip_ws(t, i + 1);
	}
	return 0;
}

/* The allocation of pod NAME in the array at ARR: [*START, returned end)
 * is the element; 0 if absent. */
static size_t find_pod(const struct text *t, size_t arr, const char *name, size_t *start)
{
	size_t i = skip_ws(t, arr + 1);

	while (i < t->len && t->p[i] != ']') {
		size_t end = skip_value(t, i), v;

		if (!end)
			return 0;
		if (member(t, i, "pod_name", &v) && string_is(t, v, name)) {
			*start = i;
			return end;
		}
		i = skip_ws(t, end);
		if (i < t->len && t->p[i] == ',')
			i = skip_ws(t, i + 1);
	}
	return 0;
}

enum direct_op { D_ADD, D_REMOVE, D_RULES };

/* The change itself, on the text of the table. */
static void edit(struct text *t, enum direct_op op, const char *pod, int nrules, unsigned n)
{
	char obj[1024], full[1100];
	size_t arr, arr_end, start, end, v;
	int len;

	if (!t->len || t->p[skip_ws(t, 0)] == '\0') {
		t->len = 0;
		text_splice(t, 0, 0, "{\n  \"allocations\": []\n}", 23);
	}
	arr_end = member(t, 0, "allocations", &arr);
	if (!arr_end || t->p[arr] != '[')
		die("the table has no \"allocations\" array");
	switch (op) {
	case D_ADD:
		snprintf(obj, sizeof(obj),
			       "{\n      \"pod_name\": \"%s\",\n      \"pid\": %d,\n"
			       "      \"socket\": \"\",\n      \"scope_allow\": [],\n"
			       "      \"delegated_from\": null,\n"
			       "      \"session_id\": \"00000000-0000-7000-8000-%012x\"\n    }",
			       pod, (int)getpid(), n);
		if (t->p[skip_ws(t, arr + 1)] == ']') {
			len = snprintf(full, sizeof(full), "[\n    %s\n  ]", obj);
			text_splice(t, arr, arr_end - arr, full, (size_t)len);
		} else {
			len = snprintf(full, sizeof(full), "\n    %s,", obj);
			text_splice(t, arr + 1, 0, full, (size_t)len);
		}
		break;
	case D_REMOVE:
		end = find_pod(t, arr, pod, &start);
		if (!end)
			die("direct writer: no pod `%s` in the table", pod);
		v = skip_ws(t, end);
		if (t->p[v] == ',') {
			/* Drop the element, its comma and the blank up to the next. */
			text_splice(t, start, skip_ws(t, v + 1) - start, "", 0);
		} else {
			/* The last element: drop the comma before it, if any. */
			size_t b = start;

			while (b > arr + 1 && strchr(" \t\r\n", t->p[b - 1]))
				b--;
			if (t->p[b - 1] == ',')
				text_splice(t, b - 1, end - (b - 1), "", 0);
			else
				text_splice(t, arr, v + 1 - arr, "[]", 2);
		}
		break;
	case D_RULES:
		end = find_pod(t, arr, pod, &start);
		if (!end)
			die("direct writer: no pod `%s` in the table", pod);
		end = member(t, start, "scope_allow", &v);
		if (!end)
			die("direct writer: pod `%s` has no scope_allow", pod);
		len = snprintf(obj, sizeof(obj),
			       "[\n        {\n          \"target\": \"/wl-bench/mod/a\",\n"
			       "          \"permission\": \"write\",\n          \"recursive\": true\n        }%s\n      ]",
			       nrules == 2 ? ",\n        {\n          \"target\": \"/wl-bench/mod/b\",\n"
					     "          \"permission\": \"read\",\n          \"recursive\": false\n        }"
					   : "");
		text_splice(t, v, end - v, obj, (size_t)len);
		break;
	}
}

/* One whole change on the original's protocol; returns when it unlocked
 * (the CLOCK_MONOTONIC time of the unlock). */
static double direct_change(const char *table, enum direct_op op, const char *pod, int nrules,
			    unsigned n)
{
	static struct text t;
	struct stat st;
	double unlocked;
	ssize_t r;
	int fd = open(table, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open %s: %s", table, strerror(errno));
	if (flock(fd, LOCK_EX) < 0)
		die("flock %s: %s", table, strerror(errno));
	if (fstat(fd, &st) < 0)
		die("fstat %s: %s", table, strerror(errno));
	if ((size_t)st.st_size + 1 > t.cap) {
		t.cap = (size_t)st.st_size * 2 + 4096;
		t.p = realloc(t.p, t.cap);
		if (!t.p)
			die("out of memory");
	}
	t.len = 0;
	while ((r = pread(fd, t.p + t.len, t.cap - 1 - t.len, (off_t)t.len)) > 0) {
		t.len += (size_t)r;
		if (t.len == t.cap - 1) {
			t.cap *= 2;
			t.p = realloc(t.p, t.cap);
			if (!t.p)
				die("out of memory");
		}
	}
	if (r < 0)
		die("read %s: %s", table, strerror(errno));
	t.p[t.len] = '\0';
	if (t.len && t.p[0] == '\0')
		die("%s is in the middle of a save (poison byte) under the lock", table);
	edit(&t, op, pod, nrules, n);
	if (ftruncate(fd, 0) < 0)
		die("ftruncate %s: %s", table, strerror(errno));
	if (pwrite(fd, t.p, t.len, 0) != (ssize_t)t.len)
		die("pwrite %s: %s", table, strerror(errno));
	if (fdatasync(fd) < 0)
		die("fdatasync %s: %s", table, strerror(errno));
	if (flock(fd, LOCK_UN) < 0)
		die("unlock %s: %s", table, strerror(errno));
	unlocked = now_ms();
	close(fd);
	return unlocked;
}

/* ---- the mount as a source ---- */

static void write_allow(const char *mnt, int nrules)
{
	static const char one[] = "write recursive /wl-bench/mod/a\n";
	static const char two[] = "write recursive /wl-bench/mod/a\nread shallow /wl-bench/mod/b\n";
	const char *s = nrules == 2 ? two : one;
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/allow", mnt, MOD_POD);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		die("write %s: %s", path, strerror(errno));
	if (close(fd) < 0)
		die("close %s: %s", path, strerror(errno));
}

/* ---- one measured change ---- */

struct expect {
	/* inotify: on WD, an event with all of MASK, named NAME */
	int wd;
	uint32_t mask;
	const char *name;
	/* also stamp the first IN_MODIFY on WD named NAME (0: no) */
	bool want_modify;
	/* .events: KIND POD [DETAIL] */
	const char *kind, *pod, *detail;
};

struct series {
	const char *source, *change;
	double *ino, *mod, *ev, *held;
	size_t n;
	size_t miss_ino, miss_mod, miss_ev;
};

static unsigned long unexpected, seq_gaps, disorder;
static uint64_t last_seq;
static int reports;

static void report(const char *fmt, ...)
{
	va_list ap;

	if (reports++ >= MAX_REPORTS)
		return;
	fprintf(stderr, "watch_latency: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *mask_str(uint32_t m)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s%s%s%s%s%s", m & IN_CREATE ? "CREATE," : "",
		 m & IN_DELETE ? "DELETE," : "", m & IN_MODIFY ? "MODIFY," : "",
		 m & IN_CLOSE_WRITE ? "CLOSE_WRITE," : "", m & IN_ISDIR ? "ISDIR," : "",
		 m & IN_IGNORED ? "IGNORED," : "");
	if (*buf)
		buf[strlen(buf) - 1] = '\0';
	else
		snprintf(buf, sizeof(buf), "0x%x", m);
	return buf;
}

/* Waits for what E describes; fills the latencies (-1: missing). */
static void observe(const struct expect *e, double t0, double timeout_ms, const char *what,
		    double *ino, double *mod, double *ev)
{
	double deadline = t0 + timeout_ms;
	bool got_ino = false, got_ev = false, got_mod = !e->want_modify;
	struct seen s;

	*ino = *ev = -1;
	if (mod)
		*mod = -1;
	while (!(got_ino && got_ev && got_mod) && seen_pop(&s, deadline)) {
		if (s.obs == OBS_INOTIFY) {
			bool named = e->name && !strcmp(s.name, e->name) && s.wd == e->wd;

			if (named && !got_ino && (s.mask & e->mask) == e->mask) {
				*ino = s.t - t0;
				got_ino = true;
				if (!got_mod) {
					disorder++;
					report("%s: %s %s before any MODIFY", what, mask_str(s.mask),
					       s.name);
				}
			} else if (named && (s.mask & IN_MODIFY) && e->want_modify) {
				if (!got_mod && mod) {
					*mod = s.t - t0;
					got_mod = true;
				}
			} else if (named && (s.mask & IN_MODIFY) && (e->mask & IN_CLOSE_WRITE)) {
				/* O_TRUNC and the write() itself: expected. */
			} else {
				unexpected++;
				report("%s: unexpected inotify %s `%s` (wd %d) after %.3f ms", what,
				       mask_str(s.mask), s.name, s.wd, s.t - t0);
			}
		} else {
			if (last_seq && s.seq != last_seq + 1) {
				seq_gaps++;
				report("%s: .events sequence jumps from %" PRIu64 " to %" PRIu64, what,
				       last_seq, s.seq);
			}
			last_seq = s.seq;
			if (!got_ev && !strcmp(s.kind, e->kind) && !strcmp(s.name, e->pod) &&
			    (!e->detail || !strcmp(s.detail, e->detail))) {
				*ev = s.t - t0;
				got_ev = true;
			} else {
				unexpected++;
				report("%s: unexpected .events line `%" PRIu64 " %s %s %s` after %.3f ms",
				       what, s.seq, s.kind, s.name, s.detail, s.t - t0);
			}
		}
	}
	if (!got_ino)
		report("%s: no inotify %s `%s` within %.0f ms", what, mask_str(e->mask), e->name,
		       timeout_ms);
	if (!got_mod)
		report("%s: no inotify MODIFY `%s` within %.0f ms", what, e->name, timeout_ms);
	if (!got_ev)
		report("%s: no .events line `%s %s%s%s` within %.0f ms", what, e->kind, e->pod,
		       e->detail ? " " : "", e->detail ? e->detail : "", timeout_ms);
}

static void series_init(struct series *s, const char *source, const char *change, size_t n)
{
	s->source = source;
	s->change = change;
	s->n = 0;
	s->ino = calloc(n, sizeof(double));
	s->mod = calloc(n, sizeof(double));
	s->ev = calloc(n, sizeof(double));
	s->held = calloc(n, sizeof(double));
	if (!s->ino || !s->mod || !s->ev || !s->held)
		die("out of memory");
}

static void series_add(struct series *s, double ino, double mod, double ev, double held)
{
	s->miss_ino += ino < 0;
	s->miss_mod += mod < 0;
	s->miss_ev += ev < 0;
	s->ino[s->n] = ino;
	s->mod[s->n] = mod;
	s->ev[s->n] = ev;
	s->held[s->n] = held;
	s->n++;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median, p99 and max of the values >= 0 of V; false if none. */
static bool stats(const double *v, size_t n, double out[3], size_t *count)
{
	double *w = malloc((n ? n : 1) * sizeof(*w));
	size_t m = 0, i;

	if (!w)
		die("out of memory");
	for (i = 0; i < n; i++)
		if (v[i] >= 0)
			w[m++] = v[i];
	*count = m;
	if (!m) {
		free(w);
		return false;
	}
	qsort(w, m, sizeof(*w), cmp_double);
	out[0] = m % 2 ? w[m / 2] : (w[m / 2 - 1] + w[m / 2]) / 2;
	out[1] = w[(size_t)((double)(m - 1) * 0.99 + 0.5)];
	out[2] = w[m - 1];
	free(w);
	return true;
}

static bool print_row(const struct series *s, const char *observer, const double *v,
		      size_t missing)
{
	double st[3];
	size_t count;
	bool ok;

	if (!stats(v, s->n, st, &count)) {
		printf("%-7s %-9s %-32s %6zu %9s %9s %9s %7zu  MISSING\n", s->source, s->change,
		       observer, count, "-", "-", "-", missing);
		return false;
	}
	ok = st[0] < 5.0 && st[1] < 50.0 && !missing;
	printf("%-7s %-9s %-32s %6zu %9.3f %9.3f %9.3f %7zu  %s\n", s->source, s->change, observer,
	       count, st[0], st[1], st[2], missing, ok ? "ok" : "MISSES TARGET");
	return ok;
}

static void print_held(const struct series *s)
{
	double st[3];
	size_t count;

	if (stats(s->held, s->n, st, &count))
		printf("%-7s %-9s %-32s %6zu %9.3f %9.3f %9.3f %7s  (the change itself)\n", s->source,
		       s->change, "syscalls done", count, st[0], st[1], st[2], "");
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: watch_latency -m MOUNT -t TABLE [-n CHANGES] [-w WARMUP] [-T TIMEOUT_MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *mnt = NULL, *table = NULL;
	unsigned n = 1000, warm = 20, i;
	double timeout_ms = 2000;
	struct ino_ctx ic;
	struct ev_ctx ec = { 0 };
	pthread_t ith, eth;
	char path[4200], pod[64];
	int wd_root, wd_mod, opt;
	uint64_t one = 1;
	bool ok = true;
	enum { S_MKDIR, S_RMDIR, S_ALLOW, S_DADD, S_DREM, S_DRULES, S_COUNT };
	struct series ser[S_COUNT];

	while ((opt = getopt(argc, argv, "m:t:n:w:T:")) != -1) {
		switch (opt) {
		case 'm': mnt = optarg; break;
		case 't': table = optarg; break;
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': warm = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'T': timeout_ms = atof(optarg); break;
		default: usage();
		}
	}
	if (!mnt || !table || !n)
		usage();

	series_init(&ser[S_MKDIR], "mount", "mkdir", n);
	series_init(&ser[S_RMDIR], "mount", "rmdir", n);
	series_init(&ser[S_ALLOW], "mount", "allow", n);
	series_init(&ser[S_DADD], "direct", "add", n);
	series_init(&ser[S_DREM], "direct", "remove", n);
	series_init(&ser[S_DRULES], "direct", "rules", n);

	/* The pod whose files are watched for MODIFY/CLOSE_WRITE. */
	snprintf(path, sizeof(path), "%s/%s", mnt, MOD_POD);
	if (mkdir(path, 0755) < 0)
		die("mkdir %s: %s", path, strerror(errno));

	stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ic.fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (stopfd < 0 || ic.fd < 0)
		die("inotify/eventfd: %s", strerror(errno));
	wd_root = inotify_add_watch(ic.fd, mnt, IN_CREATE | IN_DELETE);
	wd_mod = inotify_add_watch(ic.fd, path, IN_MODIFY | IN_CLOSE_WRITE);
	if (wd_root < 0 || wd_mod < 0)
		die("inotify_add_watch: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/.events", mnt);
	ec.fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (ec.fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (pthread_create(&ith, NULL, inotify_main, &ic) || pthread_create(&eth, NULL, events_main, &ec))
		die("cannot start the observer threads");

	for (i = 0; i < warm + n; i++) {
		bool counted = i >= warm;
		struct expect e;
		double t0, t1, ino, mod, ev;
		char what[128];

		/* (a) through the mount: mkdir, rmdir, a write of allow */
		snprintf(pod, sizeof(pod), "wl-m%u", i);
		snprintf(path, sizeof(path), "%s/%s", mnt, pod);
		e = (struct expect){ .wd = wd_root, .mask = IN_CREATE | IN_ISDIR, .name = pod,
				     .kind = "register", .pod = pod };
		snprintf(what, sizeof(what), "mount mkdir %s", pod);
		t0 = now_ms();
		if (mkdir(path, 0755) < 0)
			die("mkdir %s: %s", path, strerror(errno));
		t1 = now_ms();
		observe(&e, t0, timeout_ms, what, &ino, NULL, &ev);
		if (counted)
			series_add(&ser[S_MKDIR], ino, 0, ev, t1 - t0);

		e = (struct expect){ .wd = wd_root, .mask = IN_DELETE | IN_ISDIR, .name = pod,
				     .kind = "release", .pod = pod };
		snprintf(what, sizeof(what), "mount rmdir %s", pod);
		t0 = now_ms();
		if (rmdir(path) < 0)
			die("rmdir %s: %s", path, strerror(errno));
		t1 = now_ms();
		observe(&e, t0, timeout_ms, what, &ino, NULL, &ev);
		if (counted)
			series_add(&ser[S_RMDIR], ino, 0, ev, t1 - t0);

		e = (struct expect){ .wd = wd_mod, .mask = IN_CLOSE_WRITE, .name = "allow",
				     .kind = "allow", .pod = MOD_POD, .detail = i % 2 ? "2" : "1" };
		snprintf(what, sizeof(what), "mount allow #%u", i);
		t0 = now_ms();
		write_allow(mnt, i % 2 ? 2 : 1);
		t1 = now_ms();
		observe(&e, t0, timeout_ms, what, &ino, NULL, &ev);
		if (counted)
			series_add(&ser[S_ALLOW], ino, 0, ev, t1 - t0);

		/* (b) a direct writer of the table file */
		snprintf(pod, sizeof(pod), "wl-d%u", i);
		e = (struct expect){ .wd = wd_root, .mask = IN_CREATE | IN_ISDIR, .name = pod,
				     .kind = "register", .pod = pod };
		snprintf(what, sizeof(what), "direct add %s", pod);
		t0 = now_ms();
		t1 = direct_change(table, D_ADD, pod, 0, i);
		observe(&e, t0, timeout_ms, what, &ino, NULL, &ev);
		if (counted)
			series_add(&ser[S_DADD], ino, 0, ev, t1 - t0);

		e = (struct expect){ .wd = wd_root, .mask = IN_DELETE | IN_ISDIR, .name = pod,
				     .kind = "release", .pod = pod };
		snprintf(what, sizeof(what), "direct remove %s", pod);
		t0 = now_ms();
		t1 = direct_change(table, D_REMOVE, pod, 0, i);
		observe(&e, t0, timeout_ms, what, &ino, NULL, &ev);
		if (counted)
			series_add(&ser[S_DREM], ino, 0, ev, t1 - t0);

		e = (struct expect){ .wd = wd_mod, .mask = IN_CLOSE_WRITE, .name = "allow",
				     .want_modify = true, .kind = "allow", .pod = MOD_POD,
				     .detail = i % 2 ? "1" : "2" };
		snprintf(what, sizeof(what), "direct rules #%u", i);
		t0 = now_ms();
		t1 = direct_change(table, D_RULES, MOD_POD, i % 2 ? 1 : 2, i);
		observe(&e, t0, timeout_ms, what, &ino, &mod, &ev);
		if (counted)
			series_add(&ser[S_DRULES], ino, mod, ev, t1 - t0);
	}

	/* Late or duplicate events: give them a moment to show. */
	{
		struct seen s;
		double until = now_ms() + 200;

		while (seen_pop(&s, until)) {
			unexpected++;
			if (s.obs == OBS_INOTIFY)
				report("after the last change: unexpected inotify %s `%s`",
				       mask_str(s.mask), s.name);
			else
				report("after the last change: unexpected .events line `%" PRIu64
				       " %s %s %s`", s.seq, s.kind, s.name, s.detail);
		}
	}

	if (write(stopfd, &one, sizeof(one)) < 0)
		die("eventfd: %s", strerror(errno));
	pthread_join(ith, NULL);
	pthread_join(eth, NULL);
	close(ec.fd);
	close(ic.fd);
	snprintf(path, sizeof(path), "%s/%s", mnt, MOD_POD);
	(void)rmdir(path);

	printf("%-7s %-9s %-32s %6s %9s %9s %9s %7s\n", "source", "change", "observer", "n",
	       "med ms", "p99 ms", "max ms", "missing");
	for (i = 0; i < S_COUNT; i++) {
		struct series *s = &ser[i];
		bool modify = i == S_ALLOW || i == S_DRULES;

		ok &= print_row(s, modify ? "inotify CLOSE_WRITE <pod>/allow" : i == S_MKDIR || i == S_DADD ? "inotify CREATE,ISDIR" : "inotify DELETE,ISDIR",
				s->ino, s->miss_ino);
		if (i == S_DRULES)
			ok &= print_row(s, "inotify MODIFY <pod>/allow", s->mod, s->miss_mod);
		ok &= print_row(s, ".events line", s->ev, s->miss_ev);
		print_held(s);
	}
	printf("targets: median < 5 ms, p99 < 50 ms; unexpected events %lu, .events sequence gaps %lu, "
	       "out of order %lu\n",
	       unexpected, seq_gaps, disorder);
	return ok && !unexpected && !seq_gaps && !disorder ? 0 : 1;
}
