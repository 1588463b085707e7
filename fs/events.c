/* SPDX-License-Identifier: MIT */
/*
 * events.c - MOUNT/.events: each open handle receives one line per change
 * made after it was opened,
 *
 *	SEQ KIND POD DETAIL\n
 *
 * with "-" for no detail, and bytes <= 0x20, 0x7f and '\\' in POD and
 * DETAIL written as three-digit octal escapes (as in mountinfo), so that
 * a line always has four fields.
 *
 * A read() with nothing to return is parked: the request is kept, no
 * worker thread waits, and whoever publishes the next line replies.  An
 * interrupt (SIGINT, SIGKILL) answers a parked read with EINTR at once.
 * A handle keeps at most SCOPEFS_EVENTS_MAX lines; older ones are dropped
 * and the reader is told by a line "SEQ overflow - N" (SEQ of the last
 * line lost, N lines lost) before the lines that follow.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scopefs.h"

struct ev_msg {
	unsigned refs;
	uint64_t seq;
	size_t len;
	char text[];
};

struct ev_read {
	fuse_req_t req;
	size_t size;
	struct ev_read *next;
};

struct ev_handle {
	struct ev_handle *next, *prev;
	struct ev_msg **ring;
	size_t cap, head, count;
	struct ev_msg *over; /* the overflow line, served before the ring */
	size_t front_off;    /* bytes of the front line already read */
	uint64_t lost, lost_seq;
	struct ev_read *reads, **reads_tail;
	struct fuse_pollhandle *ph;
};

int events_init(struct events *ev, struct notifier *poller)
{
	memset(ev, 0, sizeof(*ev));
	ev->poller = poller;
	pthread_mutex_init(&ev->lock, NULL);
	return 0;
}

static void msg_put(struct ev_msg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

static void handle_clear(struct ev_handle *h)
{
	struct ev_read *r, *next;

	for (r = h->reads; r; r = next) {
		next = r->next;
		fuse_reply_err(r->req, EINTR);
		free(r);
	}
	h->reads = NULL;
	h->reads_tail = &h->reads;
	while (h->count) {
		msg_put(h->ring[h->head]);
		h->head = (h->head + 1) % h->cap;
		h->count--;
	}
	free(h->ring);
	h->ring = NULL;
	msg_put(h->over);
	h->over = NULL;
	if (h->ph)
		fuse_pollhandle_destroy(h->ph);
	h->ph = NULL;
}

static void handle_unlink(struct events *ev, struct ev_handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		ev->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
}

void events_release(struct events *ev)
{
	struct ev_handle *h, *next;

	pthread_mutex_lock(&ev->lock);
	for (h = ev->handles; h; h = next) {
		next = h->next;
		handle_clear(h);
		free(h);
	}
	ev->handles = NULL;
	pthread_mutex_unlock(&ev->lock);
	pthread_mutex_destroy(&ev->lock);
}

int events_open(struct events *ev, struct ev_handle **out)
{
	struct ev_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->reads_tail = &h->reads;
	pthread_mutex_lock(&ev->lock);
	h->next = ev->handles;
	if (h->next)
		h->next->prev = h;
	ev->handles = h;
	pthread_mutex_unlock(&ev->lock);
	*out = h;
	return 0;
}

void events_close(struct events *ev, struct ev_handle *h)
{
	pthread_mutex_lock(&ev->lock);
	handle_unlink(ev, h);
	handle_clear(h);
	pthread_mutex_unlock(&ev->lock);
	free(h);
}

static bool has_data(const struct ev_handle *h)
{
	return h->over || h->count || h->lost;
}

static struct ev_msg *msg_new(size_t len)
{
	struct ev_msg *m = malloc(sizeof(*m) + len + 1);

	if (m) {
		m->refs = 0;
		m->len = len;
	}
	return m;
}

/* Copies whole lines (or part of the first, if it alone does not fit)
 * into BUF; returns the bytes copied. */
static size_t fill(struct ev_handle *h, char *buf, size_t size)
{
	size_t used = 0;

	while (used < size) {
		struct ev_msg *m;
		size_t avail;

		if (h->lost && !h->over && !h->front_off) {
			char line[64];
			int n = snprintf(line, sizeof(line), "%" PRIu64 " overflow - %" PRIu64 "\n",
					 h->lost_seq, h->lost);

			h->over = msg_new((size_t)n);
			if (!h->over)
				break;
			memcpy(h->over->text, line, (size_t)n + 1);
			h->over->refs = 1;
			h->lost = 0;
		}
		if (h->over)
			m = h->over;
		else if (h->count)
			m = h->ring[h->head];
		else
			break;
		avail = m->len - h->front_off;
		if (avail > size - used) {
			if (used)
				break;
			memcpy(buf, m->text + h->front_off, size);
			h->front_off += size;
			used = size;
			break;
		}
		memcpy(buf + used, m->text + h->front_off, avail);
		used += avail;
		h->front_off = 0;
		if (m == h->over) {
			h->over = NULL;
		} else {
			h->head = (h->head + 1) % h->cap;
			h->count--;
		}
		msg_put(m);
	}
	return used;
}

/* Replies to REQ with what H holds (caller holds ev->lock, H has data). */
static void reply_data(struct ev_handle *h, fuse_req_t req, size_t size)
{
	char *buf = malloc(size ? size : 1);
	size_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fill(h, buf, size);
	fuse_reply_buf(req, buf, n);
	free(buf);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	struct events *ev = data;
	struct ev_handle *h;

	/* Search every handle: the handle the read came through may be gone
	 * by the time a late interrupt runs. */
	pthread_mutex_lock(&ev->lock);
	for (h = ev->handles; h; h = h->next) {
		struct ev_read **p;

		for (p = &h->reads; *p; p = &(*p)->next) {
			struct ev_read *r = *p;

			if (r->req != req)
				continue;
			*p = r->next;
			if (h->reads_tail == &r->next)
				h->reads_tail = p;
			free(r);
			fuse_reply_err(req, EINTR);
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&ev->lock);
}

void events_read(struct events *ev, struct ev_handle *h, fuse_req_t req, size_t size,
		 bool nonblock)
{
	struct ev_read *r;

	/* Registered before ev->lock is taken: libfuse calls on_interrupt
	 * with the request's lock held, and on_interrupt takes ev->lock. */
	fuse_req_interrupt_func(req, on_interrupt, ev);
	pthread_mutex_lock(&ev->lock);
	if (has_data(h)) {
		reply_data(h, req, size);
	} else if (nonblock) {
		fuse_reply_err(req, EAGAIN);
	} else if (fuse_req_interrupted(req)) {
		fuse_reply_err(req, EINTR);
	} else if (!(r = calloc(1, sizeof(*r)))) {
		fuse_reply_err(req, ENOMEM);
	} else {
		r->req = req;
		r->size = size;
		*h->reads_tail = r;
		h->reads_tail = &r->next;
	}
	pthread_mutex_unlock(&ev->lock);
}

void events_poll(struct events *ev, struct ev_handle *h, fuse_req_t req,
		 struct fuse_pollhandle *ph)
{
	unsigned revents;

	pthread_mutex_lock(&ev->lock);
	if (ph) {
		if (h->ph)
			fuse_pollhandle_destroy(h->ph);
		h->ph = ph;
	}
	revents = has_data(h) ? POLLIN | POLLRDNORM : 0;
	pthread_mutex_unlock(&ev->lock);
	fuse_reply_poll(req, revents);
}

/* Octal-escapes bytes <= 0x20, 0x7f and '\\'; returns the length needed. */
static size_t escape(const char *s, char *out)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c == 0x7f || c == '\\') {
			if (out)
				sprintf(out + n, "\\%03o", c);
			n += 4;
		} else {
			if (out)
				out[n] = (char)c;
			n++;
		}
	}
	return n;
}

static struct ev_msg *format_change(uint64_t seq, const struct scope_change *c)
{
	const char *kind = scope_change_kind_name(c->kind);
	const char *name = c->name ? c->name : "-";
	const char *detail = c->detail && *c->detail ? c->detail : "-";
	char num[24];
	size_t nlen, len;
	struct ev_msg *m;
	char *p;

	nlen = (size_t)snprintf(num, sizeof(num), "%" PRIu64, seq);
	len = nlen + 1 + strlen(kind) + 1 + escape(name, NULL) + 1 + escape(detail, NULL) + 1;
	m = msg_new(len);
	if (!m)
		return NULL;
	m->seq = seq;
	p = m->text;
	memcpy(p, num, nlen);
	p += nlen;
	*p++ = ' ';
	memcpy(p, kind, strlen(kind));
	p += strlen(kind);
	*p++ = ' ';
	p += escape(name, p);
	*p++ = ' ';
	p += escape(detail, p);
	*p++ = '\n';
	*p = '\0';
	return m;
}

static void enqueue(struct ev_handle *h, struct ev_msg *m)
{
	if (h->count == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64, i;
		struct ev_msg **ring;

		if (cap > SCOPEFS_EVENTS_MAX)
			cap = SCOPEFS_EVENTS_MAX;
		ring = cap > h->cap ? malloc(cap * sizeof(*ring)) : NULL;
		if (ring) {
			for (i = 0; i < h->count; i++)
				ring[i] = h->ring[(h->head + i) % h->cap];
			free(h->ring);
			h->ring = ring;
			h->cap = cap;
			h->head = 0;
		} else if (!h->cap) {
			/* Out of memory with nothing queued: count it as lost. */
			h->lost++;
			h->lost_seq = m->seq;
			return;
		} else {
			/* Full: the oldest line goes. */
			struct ev_msg *old = h->ring[h->head];

			if (!h->over)
				h->front_off = 0;
			h->lost++;
			h->lost_seq = old->seq;
			msg_put(old);
			h->head = (h->head + 1) % h->cap;
			h->count--;
		}
	}
	h->ring[(h->head + h->count) % h->cap] = m;
	h->count++;
	m->refs++;
}

void events_publish(struct events *ev, const struct scope_change *ch, size_t n)
{
	struct ev_handle *h;
	size_t i;

	pthread_mutex_lock(&ev->lock);
	for (i = 0; i < n; i++) {
		uint64_t seq = ++ev->seq;
		struct ev_msg *m;

		if (!ev->handles)
			continue;
		m = format_change(seq, &ch[i]);
		if (!m) {
			for (h = ev->handles; h; h = h->next) {
				h->lost++;
				h->lost_seq = seq;
			}
			continue;
		}
		m->refs = 1; /* ours, while we enqueue */
		for (h = ev->handles; h; h = h->next)
			enqueue(h, m);
		msg_put(m);
	}
	for (h = ev->handles; h; h = h->next) {
		while (h->reads && has_data(h)) {
			struct ev_read *r = h->reads;

			h->reads = r->next;
			if (!h->reads)
				h->reads_tail = &h->reads;
			reply_data(h, r->req, r->size);
			free(r);
		}
		if (h->ph && has_data(h)) {
			notifier_push_poll(ev->poller, h->ph);
			h->ph = NULL;
		}
	}
	pthread_mutex_unlock(&ev->lock);
}
