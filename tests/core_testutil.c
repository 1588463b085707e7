/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core_testutil.h"

char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&tmpl, "%s/scopefs-test-XXXXXX", base) < 0)
		abort();
	if (!mkdtemp(tmpl)) {
		print_error("mkdtemp %s: %s\n", tmpl, strerror(errno));
		fail();
	}
	return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void tu_rmrf(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s/%s", a, b) < 0)
		abort();
	return s;
}

char *tu_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap + 1);
	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

void tu_write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	const char *p = buf;

	if (fd < 0) {
		print_error("open %s: %s\n", path, strerror(errno));
		fail();
	}
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			print_error("write %s: %s\n", path, strerror(errno));
			fail();
		}
		p += w;
		len -= (size_t)w;
	}
	fchmod(fd, mode);
	close(fd);
}

char *tu_fixture(const char *name, size_t *len)
{
	char *path = tu_join(FIXTURES_DIR, name);
	char *buf = tu_read_file(path, len);

	if (!buf) {
		print_error("fixture %s: %s\n", path, strerror(errno));
		free(path);
		fail();
	}
	free(path);
	return buf;
}

char *tu_dump(struct scope_table *t)
{
	char *buf = NULL, *s;
	size_t len = 0;
	int rc = scope_table_dump(t, &buf, &len);

	if (rc != 0) {
		print_error("scope_table_dump: %d\n", rc);
		fail();
	}
	s = malloc(len + 1);
	memcpy(s, buf, len);
	s[len] = '\0';
	free(buf);
	if (strlen(s) != len) {
		print_error("dump holds a NUL byte\n");
		fail();
	}
	return s;
}

struct scope_table *tu_parse_at(const char *json, const char *file, int line)
{
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	int rc = scope_table_parse(json, strlen(json), "test.json", &t, &err);

	if (rc != 0 || !t) {
		print_error("%s:%d: scope_table_parse: %d %s\n", file, line, rc, err.msg);
		_fail(file, line);
	}
	return t;
}

void tu_register_at(struct scope_table *t, const char *name, const struct scope_rule *rules,
		    size_t n, const char *session, const char *file, int line)
{
	char sock[512];
	struct scope_err err = { 0 };
	struct scope_spec spec = {
		.name = name,
		.pid = (uint32_t)getpid(),
		.socket = sock,
		.rules = rules,
		.nrules = n,
		.session = session,
	};
	int rc;

	snprintf(sock, sizeof(sock), "/tmp/%s.sock", name);
	rc = scope_register(t, &spec, &err);
	tu_assert_ok(rc, &err, file, line);
}

void tu_delegate_at(struct scope_table *t, const char *spawner, const char *name,
		    const struct scope_rule *rules, size_t n, const char *file, int line)
{
	char sock[512];
	struct scope_err err = { 0 };
	struct scope_spec spec = {
		.name = name,
		.pid = (uint32_t)getpid(),
		.socket = sock,
		.rules = rules,
		.nrules = n,
	};
	int rc;

	snprintf(sock, sizeof(sock), "/tmp/%s.sock", name);
	rc = scope_delegate(t, spawner, &spec, &err);
	tu_assert_ok(rc, &err, file, line);
}

static const char *kind_name(enum scope_kind k)
{
	static const char *const names[] = {
		"SCOPE_OK",	    "SCOPE_EIO",      "SCOPE_ECORRUPT", "SCOPE_EDUPLICATE",
		"SCOPE_ECONFLICT",  "SCOPE_ENOTSUBSET", "SCOPE_EUNKNOWN", "SCOPE_ESESSION",
		"SCOPE_EUNCOVERED", "SCOPE_EINVAL",   "SCOPE_EUNSAFE",
	};

	if ((unsigned)k < ARRAY_SIZE(names))
		return names[k];
	return "?";
}

void tu_assert_err(int rc, const struct scope_err *err, enum scope_kind kind, int code,
		   const char *msg, const char *file, int line)
{
	bool ok = rc == code && err->kind == kind && err->code == code &&
		  (!msg || strstr(err->msg, msg));

	if (!ok) {
		print_error("%s:%d: expected rc %d kind %s msg containing \"%s\"\n"
			    "      got rc %d kind %s code %d msg \"%s\"\n",
			    file, line, code, kind_name(kind), msg ? msg : "(any)", rc,
			    kind_name(err->kind), err->code, err->msg);
		_fail(file, line);
	}
}

void tu_assert_ok(int rc, const struct scope_err *err, const char *file, int line)
{
	if (rc != 0) {
		print_error("%s:%d: expected success, got rc %d kind %s msg \"%s\"\n", file, line,
			    rc, kind_name(err->kind), err->msg);
		_fail(file, line);
	}
}

char *tu_load(const char *path, int *rc, struct scope_err *err)
{
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	char *dump = NULL;

	*rc = scope_file_open(&f, path, err);
	if (*rc != 0)
		return NULL;
	*rc = scope_file_lock(f, &t, err);
	if (*rc == 0) {
		if (!t) {
			print_error("scope_file_lock gave no table\n");
			fail();
		}
		dump = tu_dump(t);
		scope_file_unlock(f);
	}
	scope_file_free(f);
	return dump;
}

/* ------------------------------------------------------------------ */
/* The original's reading of a file                                     */

/* Rust's char::is_whitespace at P (valid UTF-8 assumed); bytes used or 0. */
static size_t rust_space(const unsigned char *p, size_t left)
{
	uint32_t c;
	size_t n;

	if (p[0] < 0x80) {
		c = p[0];
		n = 1;
	} else if ((p[0] & 0xe0) == 0xc0 && left >= 2) {
		c = ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
		n = 2;
	} else if ((p[0] & 0xf0) == 0xe0 && left >= 3) {
		c = ((uint32_t)(p[0] & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
		n = 3;
	} else {
		return 0;
	}
	if ((c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	    (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	    c == 0x205f || c == 0x3000)
		return n;
	return 0;
}

static bool utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

static bool is_u32(json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 &&
	       json_integer_value(v) <= (json_int_t)UINT32_MAX;
}

static json_t *view_rule(json_t *r)
{
	json_t *target = json_object_get(r, "target");
	json_t *perm = json_object_get(r, "permission");
	json_t *rec = json_object_get(r, "recursive");

	if (!json_is_object(r) || !json_is_string(target) || !json_is_string(perm))
		return NULL;
	if (strcmp(json_string_value(perm), "read") && strcmp(json_string_value(perm), "write"))
		return NULL;
	if (rec && !json_is_boolean(rec))
		return NULL;
	return json_pack("{sOsOsb}", "target", target, "permission", perm, "recursive",
			 rec ? json_is_true(rec) : 1);
}

static json_t *view_alloc(json_t *a)
{
	json_t *name = json_object_get(a, "pod_name");
	json_t *pid = json_object_get(a, "pid");
	json_t *sock = json_object_get(a, "socket");
	json_t *allow = json_object_get(a, "scope_allow");
	json_t *from = json_object_get(a, "delegated_from");
	json_t *sid = json_object_get(a, "session_id");
	json_t *rules, *out;
	size_t i;
	json_t *r;

	if (!json_is_object(a) || !json_is_string(name) || !is_u32(pid) || !json_is_string(sock) ||
	    !json_is_array(allow))
		return NULL;
	if (from && !json_is_null(from) && !json_is_string(from))
		return NULL;
	if (sid && !json_is_null(sid) && !json_is_string(sid))
		return NULL;
	rules = json_array();
	json_array_foreach(allow, i, r) {
		json_t *v = view_rule(r);

		if (!v) {
			json_decref(rules);
			return NULL;
		}
		json_array_append_new(rules, v);
	}
	/* "o" hands RULES over to OUT */
	out = json_pack("{sOsOsOsosOsO}", "pod_name", name, "pid", pid, "socket", sock,
			"scope_allow", rules, "delegated_from", from ? from : json_null(),
			"session_id", sid ? sid : json_null());
	return out;
}

json_t *tu_original_view(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0, n;
	json_t *root, *allocs, *out, *a;
	json_error_t jerr;

	if (!utf8_valid(p, len))
		return NULL; /* read_to_string fails */
	while (i < len && (n = rust_space(p + i, len - i)))
		i += n;
	if (i == len)
		return json_pack("{s[]}", "allocations");
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	allocs = json_object_get(root, "allocations");
	if (allocs && !json_is_array(allocs)) {
		json_decref(root);
		return NULL;
	}
	out = json_array();
	if (allocs) {
		json_array_foreach(allocs, i, a) {
			json_t *v = view_alloc(a);

			if (!v) {
				json_decref(out);
				json_decref(root);
				return NULL;
			}
			json_array_append_new(out, v);
		}
	}
	json_decref(root);
	return json_pack("{so}", "allocations", out);
}

double tu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
