/* SPDX-License-Identifier: MIT */
/*
 * json.c - the table file's JSON, compatible both ways with the original:
 * reads whatever it writes (and accepts what serde would), writes what it
 * writes (serde_json's pretty printer, two-space indent, no final newline),
 * and keeps every unknown field.
 *
 * jansson parses each value; a small scanner finds where the entries of
 * "allocations" start and end, so that each entry is parsed on its own
 * (no document-sized tree in memory) and its bytes can be kept.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- writing ---- */

void json_render_string(struct sbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	sbuf_addc(b, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				memcpy(u, "\\u00", 4);
				u[4] = hex[c >> 4];
				u[5] = hex[c & 15];
				u[6] = '\0';
				esc = u;
			}
		}
		if (!esc) {
			run++;
			continue;
		}
		sbuf_add(b, s + i - run, run);
		run = 0;
		sbuf_adds(b, esc);
	}
	sbuf_add(b, s + len - run, run);
	sbuf_addc(b, '"');
}

static void indent(struct sbuf *b, int level)
{
	static const char spaces[] = "                                ";

	for (int n = level * 2; n > 0; n -= 32)
		sbuf_add(b, spaces, n > 32 ? 32 : (size_t)n);
}

/* Shortest text that reads back as D, laid out as serde_json (ryu) does. */
static void render_real(struct sbuf *b, double d)
{
	char tmp[40], digits[24];
	int prec, exp10, nd = 0, kk;
	char *e, *p;

	if (!isfinite(d)) {
		sbuf_adds(b, "null"); /* serde_json writes non-finite floats as null */
		return;
	}
	if (d == 0) {
		sbuf_adds(b, signbit(d) ? "-0.0" : "0.0");
		return;
	}
	for (prec = 0; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", prec, d);
	p = tmp;
	if (*p == '-') {
		sbuf_addc(b, '-');
		p++;
	}
	e = strchr(p, 'e');
	exp10 = atoi(e + 1);
	for (char *q = p; q < e; q++)
		if (*q != '.')
			digits[nd++] = *q;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	kk = exp10 + 1; /* position of the decimal point after the first digit */
	if (nd <= kk && kk <= 16) {
		sbuf_add(b, digits, (size_t)nd);
		for (int i = nd; i < kk; i++)
			sbuf_addc(b, '0');
		sbuf_adds(b, ".0");
	} else if (0 < kk && kk <= 16) {
		sbuf_add(b, digits, (size_t)kk);
		sbuf_addc(b, '.');
		sbuf_add(b, digits + kk, (size_t)(nd - kk));
	} else if (-5 < kk && kk <= 0) {
		sbuf_adds(b, "0.");
		for (int i = kk; i < 0; i++)
			sbuf_addc(b, '0');
		sbuf_add(b, digits, (size_t)nd);
	} else {
		sbuf_addc(b, digits[0]);
		if (nd > 1) {
			sbuf_addc(b, '.');
			sbuf_add(b, digits + 1, (size_t)(nd - 1));
		}
		sbuf_addf(b, "e%d", kk - 1);
	}
}

void json_render_member(struct sbuf *b, const char *key, json_t *v, int level)
{
	sbuf_addc(b, '\n');
	indent(b, level);
	json_render_string(b, key, strlen(key));
	sbuf_adds(b, ": ");
	json_render_value(b, v, level);
}

void json_render_value(struct sbuf *b, json_t *v, int level)
{
	const char *key;
	json_t *x;
	size_t i, n;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (json_object_size(v) == 0) {
			sbuf_adds(b, "{}");
			return;
		}
		sbuf_addc(b, '{');
		n = 0;
		json_object_foreach(v, key, x) {
			sbuf_adds(b, n++ ? "," : "");
			json_render_member(b, key, x, level + 1);
		}
		sbuf_addc(b, '\n');
		indent(b, level);
		sbuf_addc(b, '}');
		return;
	case JSON_ARRAY:
		if (json_array_size(v) == 0) {
			sbuf_adds(b, "[]");
			return;
		}
		sbuf_addc(b, '[');
		json_array_foreach(v, i, x) {
			sbuf_adds(b, i ? ",\n" : "\n");
			indent(b, level + 1);
			json_render_value(b, x, level + 1);
		}
		sbuf_addc(b, '\n');
		indent(b, level);
		sbuf_addc(b, ']');
		return;
	case JSON_STRING:
		json_render_string(b, json_string_value(v), json_string_length(v));
		return;
	case JSON_INTEGER:
		sbuf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return;
	case JSON_REAL:
		render_real(b, json_real_value(v));
		return;
	case JSON_TRUE:
		sbuf_adds(b, "true");
		return;
	case JSON_FALSE:
		sbuf_adds(b, "false");
		return;
	case JSON_NULL:
		sbuf_adds(b, "null");
		return;
	}
}

static void render_member(struct sbuf *b, const char *key, int level)
{
	sbuf_adds(b, ",\n");
	indent(b, level);
	json_render_string(b, key, strlen(key));
	sbuf_adds(b, ": ");
}

static void render_opt_string(struct sbuf *b, const char *s)
{
	if (s)
		json_render_string(b, s, strlen(s));
	else
		sbuf_adds(b, "null");
}

static void render_ext(struct sbuf *b, json_t *ext, int level)
{
	const char *key;
	json_t *v;

	if (!ext)
		return;
	json_object_foreach(ext, key, v) {
		sbuf_addc(b, ',');
		json_render_member(b, key, v, level);
	}
}

/* An entry of "allocations", at indent level 2, as serde derives it. */
void json_render_alloc(struct sbuf *b, const struct scope_alloc *a)
{
	sbuf_adds(b, "{\n      \"pod_name\": ");
	json_render_string(b, a->name, strlen(a->name));
	sbuf_addf(b, ",\n      \"pid\": %u", a->pid);
	render_member(b, "socket", 3);
	json_render_string(b, a->socket, strlen(a->socket));
	render_member(b, "scope_allow", 3);
	if (a->nrules == 0)
		sbuf_adds(b, "[]");
	for (size_t i = 0; i < a->nrules; i++) {
		const struct scope_rule *r = &a->rules[i];

		sbuf_adds(b, i ? ",\n        {\n          \"target\": " : "[\n        {\n          \"target\": ");
		json_render_string(b, r->target, strlen(r->target));
		sbuf_adds(b, r->perm == SCOPE_WRITE ? ",\n          \"permission\": \"write\""
						    : ",\n          \"permission\": \"read\"");
		sbuf_adds(b, r->recursive ? ",\n          \"recursive\": true"
					  : ",\n          \"recursive\": false");
		render_ext(b, r->ext, 5);
		sbuf_adds(b, "\n        }");
		if (i + 1 == a->nrules)
			sbuf_adds(b, "\n      ]");
	}
	render_member(b, "delegated_from", 3);
	render_opt_string(b, a->parent);
	render_member(b, "session_id", 3);
	render_opt_string(b, a->session);
	if (a->pid_start) {
		render_member(b, "pid_start", 3);
		sbuf_addf(b, "{\n        \"pid\": %u,\n        \"ticks\": %llu\n      }", a->pid,
			  (unsigned long long)a->pid_start);
	}
	render_ext(b, a->priv->ext, 3);
	sbuf_adds(b, "\n    }");
}

/* ---- reading ---- */

struct scan {
	const char *buf;
	size_t len;
	const char *name;
	struct scope_err *err;
};

static int scan_error(struct scan *s, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int scan_error(struct scan *s, size_t at, const char *fmt, ...)
{
	char what[512];
	size_t line = 1, col = 1;
	va_list ap;

	for (size_t i = 0; i < at && i < s->len; i++) {
		if (s->buf[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return scope_fail(s->err, SCOPE_ECORRUPT, -EBADMSG,
			  "I/O error on scope.lock: scope.lock parse error: %s at line %zu column "
			  "%zu of `%s`",
			  what, line, col, s->name);
}

static size_t skip_ws(const struct scan *s, size_t i)
{
	while (i < s->len && (s->buf[i] == ' ' || s->buf[i] == '\t' || s->buf[i] == '\n' ||
			      s->buf[i] == '\r'))
		i++;
	return i;
}

/* End of the string starting at I (a '"'), or 0 if it does not end. */
static size_t skip_string(const struct scan *s, size_t i)
{
	for (i++; i < s->len; i++) {
		if (s->buf[i] == '\\')
			i++;
		else if (s->buf[i] == '"')
			return i + 1;
	}
	return 0;
}

/* End of the value starting at I; its content is checked by jansson. */
static size_t skip_value(const struct scan *s, size_t i)
{
	size_t depth = 0;

	if (i >= s->len)
		return 0;
	if (s->buf[i] == '"')
		return skip_string(s, i);
	if (s->buf[i] != '{' && s->buf[i] != '[') {
		while (i < s->len && !strchr(",]} \t\n\r", s->buf[i]))
			i++;
		return i;
	}
	for (; i < s->len; i++) {
		char c = s->buf[i];

		if (c == '"') {
			i = skip_string(s, i);
			if (!i)
				return 0;
			i--;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return 0;
}

static json_t *load_value(struct scan *s, size_t start, size_t end, size_t flags, int *rc)
{
	json_error_t je;
	json_t *v = json_loadb(s->buf + start, end - start, flags | JSON_DECODE_ANY, &je);

	if (!v)
		*rc = scan_error(s, start + (size_t)(je.position > 0 ? je.position - 1 : 0), "%s",
				 je.text);
	return v;
}

static int get_u32(struct scan *s, size_t at, json_t *v, const char *field, uint32_t *out)
{
	json_int_t x;

	if (!json_is_integer(v))
		return scan_error(s, at, "invalid type for `%s`, expected u32", field);
	x = json_integer_value(v);
	if (x < 0 || x > (json_int_t)UINT32_MAX)
		return scan_error(s, at, "invalid value %" JSON_INTEGER_FORMAT " for `%s`, expected u32",
				  x, field);
	*out = (uint32_t)x;
	return 0;
}

static int get_string(struct scan *s, size_t at, json_t *v, const char *field, bool nullable,
		      char **out)
{
	const char *str;

	if (nullable && json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return scan_error(s, at, "invalid type for `%s`, expected a string", field);
	str = json_string_value(v);
	if (strlen(str) != json_string_length(v))
		return scan_error(s, at, "`%s` holds a NUL character", field);
	*out = strdup(str);
	if (!*out)
		return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
	return 0;
}

static int convert_rule(struct scan *s, size_t at, json_t *o, struct scope_rule *r)
{
	bool have_target = false, have_perm = false;
	const char *key;
	json_t *v;
	int rc;

	if (!json_is_object(o))
		return scan_error(s, at, "invalid type for a rule, expected struct ScopeRule");
	r->recursive = true; /* serde default */
	r->ext = NULL;
	json_object_foreach(o, key, v) {
		if (strcmp(key, "target") == 0) {
			rc = get_string(s, at, v, "target", false, &r->target);
			if (rc < 0)
				return rc;
			have_target = true;
		} else if (strcmp(key, "permission") == 0) {
			const char *p = json_string_value(v);

			if (p && strcmp(p, "write") == 0)
				r->perm = SCOPE_WRITE;
			else if (p && strcmp(p, "read") == 0)
				r->perm = SCOPE_READ;
			else
				return scan_error(s, at, "unknown permission, expected `read` or `write`");
			have_perm = true;
		} else if (strcmp(key, "recursive") == 0) {
			if (!json_is_boolean(v))
				return scan_error(s, at, "invalid type for `recursive`, expected a boolean");
			r->recursive = json_is_true(v);
		} else {
			if (!r->ext && !(r->ext = json_object()))
				return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
			if (json_object_set(r->ext, key, v) < 0)
				return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
		}
	}
	if (!have_target)
		return scan_error(s, at, "missing field `target`");
	if (!have_perm)
		return scan_error(s, at, "missing field `permission`");
	return 0;
}

static int convert_alloc(struct scan *s, size_t at, json_t *o, struct scope_alloc *a)
{
	bool have_name = false, have_pid = false, have_socket = false, have_allow = false;
	json_t *v, *start = NULL;
	const char *key;
	int rc;

	if (!json_is_object(o))
		return scan_error(s, at, "invalid type, expected struct Allocation");
	json_object_foreach(o, key, v) {
		if (strcmp(key, "pod_name") == 0) {
			rc = get_string(s, at, v, key, false, &a->name);
			have_name = true;
		} else if (strcmp(key, "pid") == 0) {
			rc = get_u32(s, at, v, key, &a->pid);
			have_pid = true;
		} else if (strcmp(key, "socket") == 0) {
			rc = get_string(s, at, v, key, false, &a->socket);
			have_socket = true;
		} else if (strcmp(key, "delegated_from") == 0) {
			rc = get_string(s, at, v, key, true, &a->parent);
		} else if (strcmp(key, "session_id") == 0) {
			rc = get_string(s, at, v, key, true, &a->session);
			if (rc == 0 && a->session && !scope_session_valid(a->session))
				rc = scan_error(s, at, "`session_id` is not a UUID");
		} else if (strcmp(key, "scope_allow") == 0) {
			size_t n = json_array_size(v), i;
			json_t *r;

			if (!json_is_array(v))
				return scan_error(s, at, "invalid type for `scope_allow`, expected a sequence");
			a->rules = calloc(n ? n : 1, sizeof(*a->rules));
			if (!a->rules)
				return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
			rc = 0;
			json_array_foreach(v, i, r) {
				rc = convert_rule(s, at, r, &a->rules[i]);
				a->nrules = i + 1;
				if (rc < 0)
					break;
			}
			have_allow = true;
		} else if (strcmp(key, "pid_start") == 0 && json_is_object(v)) {
			start = v; /* ours: checked once pid is known */
			rc = 0;
		} else {
			if (!a->priv->ext && !(a->priv->ext = json_object()))
				return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
			rc = json_object_set(a->priv->ext, key, v) < 0
				     ? scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory")
				     : 0;
		}
		if (rc < 0)
			return rc;
	}
	if (!have_name)
		return scan_error(s, at, "missing field `pod_name`");
	if (!have_pid)
		return scan_error(s, at, "missing field `pid`");
	if (!have_socket)
		return scan_error(s, at, "missing field `socket`");
	if (!have_allow)
		return scan_error(s, at, "missing field `scope_allow`");
	/* A start time counts only for the pid it was taken of: another writer
	 * may have changed the pid and kept the field. */
	if (start && json_integer_value(json_object_get(start, "pid")) == (json_int_t)a->pid &&
	    json_integer_value(json_object_get(start, "ticks")) > 0)
		a->pid_start = (uint64_t)json_integer_value(json_object_get(start, "ticks"));
	return 0;
}

static int parse_allocations(struct scan *s, size_t *pos, struct scope_table *t)
{
	size_t i = *pos;
	int rc = 0;

	if (i >= s->len || s->buf[i] != '[')
		return scan_error(s, i, "invalid type for `allocations`, expected a sequence");
	i = skip_ws(s, i + 1);
	if (i < s->len && s->buf[i] == ']') {
		*pos = i + 1;
		return 0;
	}
	for (;;) {
		size_t end = skip_value(s, i);
		struct scope_alloc *a;
		json_t *o;

		if (!end)
			return scan_error(s, i, "EOF while parsing a value");
		o = load_value(s, i, end, JSON_REJECT_DUPLICATES, &rc);
		if (!o)
			return rc;
		a = alloc_new();
		if (!a) {
			json_decref(o);
			return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
		}
		rc = convert_alloc(s, i, o, a);
		json_decref(o);
		if (rc == 0 && table_append(t, a) < 0)
			rc = scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
		if (rc < 0) {
			alloc_free(a);
			return rc;
		}
		i = skip_ws(s, end);
		if (i < s->len && s->buf[i] == ',') {
			i = skip_ws(s, i + 1);
			continue;
		}
		if (i < s->len && s->buf[i] == ']') {
			*pos = i + 1;
			return 0;
		}
		return scan_error(s, i, "expected `,` or `]`");
	}
}

static int parse_object(struct scan *s, size_t i, struct scope_table *t)
{
	bool seen = false;
	int rc = 0;

	if (s->buf[i] != '{')
		return scan_error(s, i, "invalid type, expected struct LockFile");
	i = skip_ws(s, i + 1);
	if (i < s->len && s->buf[i] == '}')
		return skip_ws(s, i + 1) == s->len ? 0 : scan_error(s, i + 1, "trailing characters");
	for (;;) {
		size_t kend, vend;
		json_t *key;
		const char *k;

		if (i >= s->len || s->buf[i] != '"')
			return scan_error(s, i, "key must be a string");
		kend = skip_string(s, i);
		if (!kend)
			return scan_error(s, i, "EOF while parsing a string");
		key = load_value(s, i, kend, 0, &rc);
		if (!key)
			return rc;
		k = json_string_value(key);
		i = skip_ws(s, kend);
		if (i >= s->len || s->buf[i] != ':') {
			json_decref(key);
			return scan_error(s, i, "expected `:`");
		}
		i = skip_ws(s, i + 1);
		if (strcmp(k, "allocations") == 0) {
			json_decref(key);
			if (seen)
				return scan_error(s, i, "duplicate field `allocations`");
			seen = true;
			rc = parse_allocations(s, &i, t);
			if (rc < 0)
				return rc;
		} else {
			json_t *v;

			vend = skip_value(s, i);
			if (!vend) {
				json_decref(key);
				return scan_error(s, i, "EOF while parsing a value");
			}
			v = load_value(s, i, vend, 0, &rc);
			if (!v) {
				json_decref(key);
				return rc;
			}
			rc = json_object_set_new(seen ? t->ext_after : t->ext_before, k, v);
			json_decref(key);
			if (rc < 0)
				return scope_fail(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
			i = vend;
		}
		i = skip_ws(s, i);
		if (i < s->len && s->buf[i] == ',') {
			i = skip_ws(s, i + 1);
			continue;
		}
		if (i < s->len && s->buf[i] == '}')
			break;
		return scan_error(s, i, "expected `,` or `}`");
	}
	i = skip_ws(s, i + 1);
	if (i != s->len)
		return scan_error(s, i, "trailing characters");
	if (!seen && json_object_size(t->ext_before)) {
		/* No "allocations": the members written back go after it. */
		json_t *tmp = t->ext_before;

		t->ext_before = t->ext_after;
		t->ext_after = tmp;
	}
	return 0;
}

int json_parse_table(const char *buf, size_t len, const char *name, struct scope_table **out,
		     struct scope_err *err)
{
	struct scan s = { buf, len, name ? name : "scope.lock", err };
	struct scope_table *t = scope_table_new();
	size_t i, from;
	int rc;

	if (!t)
		return scope_fail(err, SCOPE_EIO, -ENOMEM, "out of memory");
	if (len && memchr(buf, '\0', len)) {
		rc = scan_error(&s, (size_t)((const char *)memchr(buf, '\0', len) - buf),
				"NUL byte in the file");
		goto fail;
	}
	i = skip_ws(&s, 0);
	if (i < len) {
		rc = parse_object(&s, i, t);
		if (rc < 0)
			goto fail;
	}
	rc = table_render(t, &from);
	if (rc < 0) {
		rc = scope_fail(err, SCOPE_EIO, rc, "out of memory");
		goto fail;
	}
	t->index_dirty = true;
	t->modified = false;
	t->dirty_from = SIZE_MAX;
	*out = t;
	return 0;
fail:
	scope_table_free(t);
	return rc;
}
