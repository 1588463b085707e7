/* SPDX-License-Identifier: MIT */
/*
 * path.c - paths compared as Rust's std::path::Path compares them on Unix,
 * so that targets a foreign writer left non-normalised ("/src/", "a//b",
 * "./x") give the original's answers.
 */
#include <string.h>

#include "internal.h"

enum comp_kind { COMP_END, COMP_ROOT, COMP_CUR, COMP_NORMAL };

struct comp_iter {
	const char *s;
	size_t pos;
	bool started;
};

struct comp {
	enum comp_kind kind;
	const char *p;
	size_t len;
};

static void comp_init(struct comp_iter *it, const char *s)
{
	it->s = s;
	it->pos = 0;
	it->started = false;
}

static struct comp comp_next(struct comp_iter *it)
{
	const char *s = it->s;
	struct comp c = { COMP_END, NULL, 0 };

	if (!it->started) {
		it->started = true;
		if (s[0] == '/') {
			while (s[it->pos] == '/')
				it->pos++;
			c.kind = COMP_ROOT;
			return c;
		}
		/* Only a leading "." survives as a component (Rust's CurDir). */
		if (s[0] == '.' && (s[1] == '/' || s[1] == '\0')) {
			it->pos = 1;
			c.kind = COMP_CUR;
			return c;
		}
	}
	for (;;) {
		size_t start;

		while (s[it->pos] == '/')
			it->pos++;
		if (s[it->pos] == '\0')
			return c;
		start = it->pos;
		while (s[it->pos] != '/' && s[it->pos] != '\0')
			it->pos++;
		if (it->pos - start == 1 && s[start] == '.')
			continue;
		c.kind = COMP_NORMAL;
		c.p = s + start;
		c.len = it->pos - start;
		return c;
	}
}

static bool comp_eq(struct comp a, struct comp b)
{
	if (a.kind != b.kind)
		return false;
	if (a.kind != COMP_NORMAL)
		return true;
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* An absolute path whose components are exactly its '/'-separated parts:
 * no "//", no component starting with '.', no trailing '/' (but "/").
 * Targets written through the mount are all simple; for them a byte
 * comparison gives what the component walk gives, much faster. */
bool path_simple(const char *s)
{
	if (s[0] != '/')
		return false;
	for (const char *p = s; *p; p++)
		if (p[0] == '/' && (p[1] == '/' || p[1] == '.' || (p[1] == '\0' && p != s)))
			return false;
	return true;
}

bool scope_path_eq(const char *a, const char *b)
{
	struct comp_iter ia, ib;

	if (strcmp(a, b) == 0)
		return true;
	if (path_simple(a) && path_simple(b))
		return false;
	comp_init(&ia, a);
	comp_init(&ib, b);
	for (;;) {
		struct comp ca = comp_next(&ia), cb = comp_next(&ib);

		if (!comp_eq(ca, cb))
			return false;
		if (ca.kind == COMP_END)
			return true;
	}
}

bool scope_path_starts_with(const char *path, const char *base)
{
	struct comp_iter ip, ib;

	if (path_simple(path) && path_simple(base)) {
		size_t n = strlen(base);

		if (n == 1)
			return true;
		return strncmp(path, base, n) == 0 && (path[n] == '/' || path[n] == '\0');
	}

	comp_init(&ip, path);
	comp_init(&ib, base);
	for (;;) {
		struct comp cb = comp_next(&ib), cp;

		if (cb.kind == COMP_END)
			return true;
		cp = comp_next(&ip);
		if (!comp_eq(cp, cb))
			return false;
	}
}

bool scope_path_parent_is(const char *path, const char *parent)
{
	struct comp_iter ip, iq;
	struct comp c, last = { COMP_END, NULL, 0 };
	size_t n = 0, i;

	if (path_simple(path) && path_simple(parent)) {
		const char *slash = strrchr(path, '/');
		size_t plen = (size_t)(slash - path);

		if (path[1] == '\0')
			return false; /* "/" has no parent */
		if (plen == 0)
			return parent[1] == '\0';
		return strlen(parent) == plen && memcmp(path, parent, plen) == 0;
	}

	comp_init(&ip, path);
	while ((c = comp_next(&ip)).kind != COMP_END) {
		last = c;
		n++;
	}
	/* Path::parent is None for "" and for a path ending at the root. */
	if (n == 0 || last.kind == COMP_ROOT)
		return false;
	comp_init(&ip, path);
	comp_init(&iq, parent);
	for (i = 0; i + 1 < n; i++) {
		if (!comp_eq(comp_next(&ip), comp_next(&iq)))
			return false;
	}
	return comp_next(&iq).kind == COMP_END;
}

bool scope_target_valid(const char *target)
{
	const char *p = target;

	if (p[0] != '/')
		return false;
	if (p[1] == '\0')
		return true;
	while (*p == '/') {
		const char *start = ++p;

		while (*p != '/' && *p != '\0')
			p++;
		if (p == start) /* empty component or trailing slash */
			return false;
		if ((p - start == 1 && start[0] == '.') ||
		    (p - start == 2 && start[0] == '.' && start[1] == '.'))
			return false;
	}
	return *p == '\0';
}
