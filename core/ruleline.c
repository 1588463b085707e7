/* SPDX-License-Identifier: MIT */
/*
 * ruleline.c - the text forms the mount shows: rule lines
 * ("write recursive /path", octal escapes as in /proc/self/mountinfo),
 * pod names and session ids.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

static bool needs_escape(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '\\';
}

size_t scope_escape_path(const char *path, char *out, size_t size)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		char tmp[5];
		size_t k;

		if (needs_escape(*p)) {
			snprintf(tmp, sizeof(tmp), "\\%03o", *p);
			k = 4;
		} else {
			tmp[0] = (char)*p;
			k = 1;
		}
		for (size_t i = 0; i < k; i++, n++)
			if (n + 1 < size)
				out[n] = tmp[i];
	}
	if (size)
		out[n < size ? n : size - 1] = '\0';
	return n;
}

char *scope_rules_format(const struct scope_rule *rules, size_t nrules, size_t *len)
{
	struct sbuf b = { 0 };

	sbuf_add(&b, "", 0);
	for (size_t i = 0; i < nrules; i++) {
		size_t n = scope_escape_path(rules[i].target, NULL, 0);

		sbuf_adds(&b, rules[i].perm == SCOPE_WRITE ? "write " : "read ");
		sbuf_adds(&b, rules[i].recursive ? "recursive " : "shallow ");
		if (b.oom)
			break;
		sbuf_grow_to(&b, n);
		if (b.oom)
			break;
		scope_escape_path(rules[i].target, b.p + b.len, n + 1);
		b.len += n;
		sbuf_addc(&b, '\n');
	}
	if (b.oom) {
		sbuf_release(&b);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}

void scope_rules_free(struct scope_rule *rules, size_t nrules)
{
	if (!rules)
		return;
	for (size_t i = 0; i < nrules; i++) {
		free(rules[i].target);
		rawext_free(rules[i].ext);
	}
	free(rules);
}

int scope_rules_dup(const struct scope_rule *rules, size_t nrules, struct scope_rule **out)
{
	struct scope_rule *r = calloc(nrules ? nrules : 1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < nrules; i++) {
		r[i].target = strdup(rules[i].target);
		r[i].perm = rules[i].perm;
		r[i].recursive = rules[i].recursive;
		r[i].ext = rules[i].ext ? rawext_dup(rules[i].ext) : NULL;
		if (!r[i].target || (rules[i].ext && !r[i].ext)) {
			scope_rules_free(r, i + 1);
			return -ENOMEM;
		}
	}
	*out = r;
	return 0;
}

/* Decodes TARGET's octal escapes into OUT (at least len+1 bytes). */
static int unescape(const char *s, size_t len, char *out, size_t *outlen)
{
	size_t n = 0;
	unsigned v;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\') {
			out[n++] = s[i];
			continue;
		}
		if (len - i < 4) /* a backslash needs three octal digits */
			return -EINVAL;
		v = 0;
		for (size_t k = 1; k <= 3; k++) {
			char c = s[i + k];

			if (c < '0' || c > '7')
				return -EINVAL;
			v = v * 8 + (unsigned)(c - '0');
		}
		if (v == 0 || v > 0377)
			return -EINVAL;
		out[n++] = (char)v;
		i += 3;
	}
	out[n] = '\0';
	*outlen = n;
	return 0;
}

static int parse_line(const char *line, size_t len, size_t lineno, struct scope_rule *r,
		      struct scope_err *err)
{
	const char *sp1, *sp2, *end = line + len;
	size_t wlen, tlen;
	char *target;

	sp1 = memchr(line, ' ', len);
	if (!sp1)
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: expected `PERMISSION RECURSION TARGET`", lineno);
	wlen = (size_t)(sp1 - line);
	if (wlen == 5 && memcmp(line, "write", 5) == 0)
		r->perm = SCOPE_WRITE;
	else if (wlen == 4 && memcmp(line, "read", 4) == 0)
		r->perm = SCOPE_READ;
	else
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: unknown permission `%.*s` (expected read or write)",
				  lineno, (int)(wlen > 64 ? 64 : wlen), line);
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (!sp2)
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: expected `PERMISSION RECURSION TARGET`", lineno);
	wlen = (size_t)(sp2 - sp1 - 1);
	if (wlen == 9 && memcmp(sp1 + 1, "recursive", 9) == 0)
		r->recursive = true;
	else if (wlen == 7 && memcmp(sp1 + 1, "shallow", 7) == 0)
		r->recursive = false;
	else
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: unknown recursion `%.*s` (expected recursive or shallow)",
				  lineno, (int)(wlen > 64 ? 64 : wlen), sp1 + 1);
	tlen = (size_t)(end - sp2 - 1);
	target = malloc(tlen + 1);
	if (!target)
		return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
	if (memchr(sp2 + 1, '\0', tlen) || unescape(sp2 + 1, tlen, target, &tlen) < 0) {
		free(target);
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: bad escape in target (use \\ooo, three octal digits, "
				  "not \\000)",
				  lineno);
	}
	if (!utf8_valid(target, tlen)) {
		free(target);
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: target is not valid UTF-8 (the table is JSON)", lineno);
	}
	if (!scope_target_valid(target)) {
		free(target);
		return err_set(err, SCOPE_EINVAL, -EINVAL,
				  "line %zu: target `%.*s` is not an absolute normalised path "
				  "(no `.`, `..`, empty component or trailing `/`)",
				  lineno, (int)(tlen > 200 ? 200 : tlen), sp2 + 1);
	}
	r->target = target;
	r->ext = NULL;
	return 0;
}

int scope_rules_parse(const char *text, size_t len, struct scope_rule **rules, size_t *nrules,
		      struct scope_err *err)
{
	struct scope_rule *r = NULL;
	size_t n = 0, cap = 0, lineno = 0, pos = 0;
	int rc;

	/* The empty text and a lone newline are the empty set. */
	if (len == 1 && text[0] == '\n')
		len = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - text - pos) : len - pos;

		lineno++;
		if (llen == 0) {
			rc = err_set(err, SCOPE_EINVAL, -EINVAL, "line %zu: empty line", lineno);
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct scope_rule *nr = realloc(r, ncap * sizeof(*r));

			if (!nr) {
				rc = err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
				goto fail;
			}
			r = nr;
			cap = ncap;
		}
		rc = parse_line(text + pos, llen, lineno, &r[n], err);
		if (rc < 0)
			goto fail;
		n++;
		pos += llen + (nl ? 1 : 0);
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
	}
	*rules = r;
	*nrules = n;
	return 0;
fail:
	scope_rules_free(r, n);
	return rc;
}

bool scope_name_valid(const char *name, size_t len)
{
	static const char *const reserved[] = { "allow", "pid", "session", "socket",
						"delegated_from" };

	if (len == 0 || len > 255 || name[0] == '.')
		return false;
	if (memchr(name, '/', len) || memchr(name, '\0', len) || !utf8_valid(name, len))
		return false;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == len && memcmp(reserved[i], name, len) == 0)
			return false;
	return true;
}

bool scope_session_valid(const char *s)
{
	for (size_t i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return s[36] == '\0';
}

void scope_uuid_v7(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	struct timespec ts;
	uint64_t ms;
	size_t got = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

		if (r < 0) {
			/* getrandom only fails before the pool is ready or on EINTR; the
			 * clock keeps ids distinct enough for a session id then. */
			uint64_t x = hash64(&ts, sizeof(ts)) ^ (uint64_t)r;

			memcpy(b + got, &x, sizeof(b) - got < 8 ? sizeof(b) - got : 8);
			got += sizeof(b) - got < 8 ? sizeof(b) - got : 8;
			continue;
		}
		got += (size_t)r;
	}
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	/* rand_a: sub-millisecond time, so ids from one process sort by time. */
	{
		unsigned sub = (unsigned)((uint64_t)(ts.tv_nsec % 1000000) * 4096 / 1000000);

		b[6] = (unsigned char)(0x70 | (sub >> 8));
		b[7] = (unsigned char)(sub & 0xff);
	}
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	for (int i = 0, o = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[36] = '\0';
}
