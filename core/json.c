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

/* ---- unknown members, kept as the bytes they were written with ---- */

void rawext_free(struct rawext *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++) {
		free(x->m[i].key);
		free(x->m[i].val);
	}
	free(x->m);
	free(x);
}

/* LEN bytes of P (which need not end in a NUL) and a NUL. */
static char *memdup0(const char *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

static int rawext_add(struct rawext **px, const char *key, size_t klen, const char *val,
		      size_t vlen)
{
	struct rawext *x = *px;
	struct rawmember *m;

	if (!x && !(x = *px = calloc(1, sizeof(*x))))
		return -ENOMEM;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 4;

		m = realloc(x->m, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		x->m = m;
		x->cap = cap;
	}
	m = &x->m[x->n];
	m->key = memdup0(key, klen);
	m->val = memdup0(val, vlen);
	if (!m->key || !m->val) {
		free(m->key);
		free(m->val);
		return -ENOMEM;
	}
	x->n++;
	return 0;
}

struct rawext *rawext_dup(const struct rawext *x)
{
	struct rawext *c = NULL;

	for (size_t i = 0; x && i < x->n; i++) {
		if (rawext_add(&c, x->m[i].key, strlen(x->m[i].key), x->m[i].val,
			       strlen(x->m[i].val)) < 0) {
			rawext_free(c);
			return NULL;
		}
	}
	return c;
}

/* Each member as ",\n" INDENT KEY ": " VALUE (LEAD is "," or ""). */
void rawext_render(struct sbuf *b, const struct rawext *x, int level, const char *lead,
		   const char *trail)
{
	for (size_t i = 0; x && i < x->n; i++) {
		sbuf_adds(b, lead);
		sbuf_addc(b, '\n');
		indent(b, level);
		sbuf_adds(b, x->m[i].key);
		sbuf_adds(b, ": ");
		sbuf_adds(b, x->m[i].val);
		sbuf_adds(b, trail);
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
		rawext_render(b, r->ext, 5, ",", "");
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
	rawext_render(b, a->priv->ext, 3, ",", "");
	sbuf_adds(b, "\n    }");
}

/* ---- reading ---- */

struct scan {
	const char *buf;
	size_t len;
	const char *name;
	struct scope_err *err;
	const struct reuse *reuse;
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
	return err_set(s->err, SCOPE_ECORRUPT, -EBADMSG,
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
		return err_set(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
	return 0;
}

/* One member of an object: where its key and value are, and the key. */
struct member {
	size_t key, keyend, val, valend;
	json_t *name; /* the decoded key */
};

/*
 * Walks the object at *POS (a '{'), calling FN for each member; *POS ends
 * past the '}'.  The scanner only finds where values start and end; jansson
 * checks each value it is given.
 */
static int each_member(struct scan *s, size_t *pos, const char *what,
		       int (*fn)(struct scan *s, struct member *m, void *ctx), void *ctx)
{
	size_t i = *pos;
	int rc = 0;

	if (i >= s->len || s->buf[i] != '{')
		return scan_error(s, i, "invalid type, expected %s", what);
	i = skip_ws(s, i + 1);
	if (i < s->len && s->buf[i] == '}') {
		*pos = i + 1;
		return 0;
	}
	for (;;) {
		struct member m = { .key = i };

		if (i >= s->len || s->buf[i] != '"')
			return scan_error(s, i, "key must be a string");
		m.keyend = skip_string(s, i);
		if (!m.keyend)
			return scan_error(s, i, "EOF while parsing a string");
		m.name = load_value(s, i, m.keyend, 0, &rc);
		if (!m.name)
			return rc;
		i = skip_ws(s, m.keyend);
		if (i >= s->len || s->buf[i] != ':') {
			json_decref(m.name);
			return scan_error(s, i, "expected `:`");
		}
		m.val = skip_ws(s, i + 1);
		m.valend = skip_value(s, m.val);
		if (!m.valend) {
			json_decref(m.name);
			return scan_error(s, m.val, "EOF while parsing a value");
		}
		rc = fn(s, &m, ctx);
		json_decref(m.name);
		if (rc < 0)
			return rc;
		i = skip_ws(s, m.valend);
		if (i < s->len && s->buf[i] == ',') {
			i = skip_ws(s, i + 1);
			continue;
		}
		if (i < s->len && s->buf[i] == '}') {
			*pos = i + 1;
			return 0;
		}
		return scan_error(s, i, "expected `,` or `}`");
	}
}

/* A member no one here knows: checked, then kept byte for byte. */
static int keep_unknown(struct scan *s, struct member *m, struct rawext **x)
{
	int rc = 0;
	json_t *v = load_value(s, m->val, m->valend,
			       JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &rc);

	if (!v)
		return rc;
	json_decref(v);
	if (rawext_add(x, s->buf + m->key, m->keyend - m->key, s->buf + m->val,
		       m->valend - m->val) < 0)
		return err_set(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
	return 0;
}

/* The value of a known member, decoded; a second one is an error, as
 * serde's derive makes it. */
static json_t *known_value(struct scan *s, struct member *m, unsigned *seen, unsigned bit,
			   int *rc)
{
	if (*seen & bit) {
		*rc = scan_error(s, m->key, "duplicate field `%s`", json_string_value(m->name));
		return NULL;
	}
	*seen |= bit;
	return load_value(s, m->val, m->valend, 0, rc);
}

struct rule_ctx {
	struct scope_rule *r;
	unsigned seen;
};

static int rule_member(struct scan *s, struct member *m, void *ctx)
{
	struct rule_ctx *c = ctx;
	struct scope_rule *r = c->r;
	const char *key = json_string_value(m->name);
	json_t *v;
	int rc = 0;

	if (strcmp(key, "target") == 0) {
		v = known_value(s, m, &c->seen, 1, &rc);
		if (v)
			rc = get_string(s, m->val, v, key, false, &r->target);
	} else if (strcmp(key, "permission") == 0) {
		v = known_value(s, m, &c->seen, 2, &rc);
		if (v && json_is_string(v) && strcmp(json_string_value(v), "write") == 0)
			r->perm = SCOPE_WRITE;
		else if (v && json_is_string(v) && strcmp(json_string_value(v), "read") == 0)
			r->perm = SCOPE_READ;
		else if (v)
			rc = scan_error(s, m->val, "unknown permission, expected `read` or `write`");
	} else if (strcmp(key, "recursive") == 0) {
		v = known_value(s, m, &c->seen, 4, &rc);
		if (v && !json_is_boolean(v))
			rc = scan_error(s, m->val, "invalid type for `recursive`, expected a boolean");
		else if (v)
			r->recursive = json_is_true(v);
	} else {
		return keep_unknown(s, m, (struct rawext **)&r->ext);
	}
	json_decref(v);
	return rc;
}

struct alloc_ctx {
	struct scope_alloc *a;
	unsigned seen;
	json_t *start;
	size_t cap;
};

static int parse_rules(struct scan *s, struct member *m, struct alloc_ctx *c)
{
	struct scope_alloc *a = c->a;
	size_t i = m->val;
	int rc;

	if (c->seen & 8)
		return scan_error(s, m->key, "duplicate field `scope_allow`");
	c->seen |= 8;
	if (s->buf[i] != '[')
		return scan_error(s, i, "invalid type for `scope_allow`, expected a sequence");
	i = skip_ws(s, i + 1);
	if (i < s->len && s->buf[i] == ']')
		return 0;
	for (;;) {
		struct rule_ctx rc_ = { 0 };

		if (a->nrules == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 2;
			struct scope_rule *nr = realloc(a->rules, cap * sizeof(*nr));

			if (!nr)
				return err_set(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
			a->rules = nr;
			c->cap = cap;
		}
		rc_.r = &a->rules[a->nrules++];
		memset(rc_.r, 0, sizeof(*rc_.r));
		rc_.r->recursive = true; /* serde default */
		rc = each_member(s, &i, "struct ScopeRule", rule_member, &rc_);
		if (rc < 0)
			return rc;
		if (!(rc_.seen & 1))
			return scan_error(s, i, "missing field `target`");
		if (!(rc_.seen & 2))
			return scan_error(s, i, "missing field `permission`");
		i = skip_ws(s, i);
		if (i < s->len && s->buf[i] == ',') {
			i = skip_ws(s, i + 1);
			continue;
		}
		if (i < s->len && s->buf[i] == ']')
			return 0;
		return scan_error(s, i, "expected `,` or `]`");
	}
}

static int alloc_member(struct scan *s, struct member *m, void *ctx)
{
	struct alloc_ctx *c = ctx;
	struct scope_alloc *a = c->a;
	const char *key = json_string_value(m->name);
	json_t *v = NULL;
	int rc = 0;

	if (strcmp(key, "pod_name") == 0) {
		if ((v = known_value(s, m, &c->seen, 1, &rc)))
			rc = get_string(s, m->val, v, key, false, &a->name);
	} else if (strcmp(key, "pid") == 0) {
		if ((v = known_value(s, m, &c->seen, 2, &rc)))
			rc = get_u32(s, m->val, v, key, &a->pid);
	} else if (strcmp(key, "socket") == 0) {
		if ((v = known_value(s, m, &c->seen, 4, &rc)))
			rc = get_string(s, m->val, v, key, false, &a->socket);
	} else if (strcmp(key, "scope_allow") == 0) {
		return parse_rules(s, m, c);
	} else if (strcmp(key, "delegated_from") == 0) {
		if ((v = known_value(s, m, &c->seen, 16, &rc)))
			rc = get_string(s, m->val, v, key, true, &a->parent);
	} else if (strcmp(key, "session_id") == 0) {
		if ((v = known_value(s, m, &c->seen, 32, &rc)))
			rc = get_string(s, m->val, v, key, true, &a->session);
		if (rc == 0 && a->session && !scope_session_valid(a->session))
			rc = scan_error(s, m->val, "`session_id` is not a UUID");
	} else if (strcmp(key, "pid_start") == 0 && !(c->seen & 64)) {
		/* ours: checked once the pid is known */
		if ((v = known_value(s, m, &c->seen, 64, &rc)) && json_is_object(v))
			c->start = json_incref(v);
	} else {
		return keep_unknown(s, m, &a->priv->ext);
	}
	json_decref(v);
	return rc;
}

/* One entry of "allocations" at *POS. */
static int parse_alloc(struct scan *s, size_t *pos, struct scope_alloc *a)
{
	struct alloc_ctx c = { .a = a };
	size_t at = *pos;
	int rc = each_member(s, pos, "struct Allocation", alloc_member, &c);
	json_t *st = c.start;

	if (rc == 0) {
		static const char *const req[] = { "pod_name", "pid", "socket", "scope_allow" };

		for (unsigned i = 0; i < 4 && rc == 0; i++)
			if (!(c.seen & (1u << i)))
				rc = scan_error(s, at, "missing field `%s`", req[i]);
	}
	/* A start time counts only for the pid it was taken of: another writer
	 * may have changed the pid and kept the field. */
	if (rc == 0 && st &&
	    json_integer_value(json_object_get(st, "pid")) == (json_int_t)a->pid &&
	    json_integer_value(json_object_get(st, "ticks")) > 0)
		a->pid_start = (uint64_t)json_integer_value(json_object_get(st, "ticks"));
	json_decref(st);
	return rc;
}

/* The entry of the old table whose bytes are the new file's [START, END),
 * if they lie where the file did not change. */
static const struct scope_alloc *reusable(const struct scan *s, size_t start, size_t end)
{
	const struct reuse *r = s->reuse;
	const struct scope_table *old;
	size_t off, lo = 0, hi;

	if (!r || !end)
		return NULL;
	if (end <= r->prefix)
		off = start;
	else if (start >= s->len - r->suffix)
		off = start + r->oldlen - s->len;
	else
		return NULL;
	old = r->old;
	hi = old->n;
	while (lo < hi) { /* entries are in file order */
		size_t mid = lo + (hi - lo) / 2;

		if (old->a[mid]->priv->body < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < old->n && old->a[lo]->priv->body == off &&
	    old->a[lo]->priv->end - off == end - start)
		return old->a[lo];
	return NULL;
}

/* The entries go into T's text as the file has them: an entry that does not
 * change keeps its bytes. */
static int parse_allocations(struct scan *s, size_t *pos, struct scope_table *t)
{
	size_t i = *pos;
	int rc = 0;

	if (i >= s->len || s->buf[i] != '[')
		return scan_error(s, i, "invalid type for `allocations`, expected a sequence");
	table_render_head(t);
	i = skip_ws(s, i + 1);
	if (i < s->len && s->buf[i] == ']') {
		*pos = i + 1;
		return 0;
	}
	for (;;) {
		const struct scope_alloc *same = reusable(s, i, skip_value(s, i));
		struct scope_alloc *a = same ? alloc_clone(same) : alloc_new();
		size_t start = i;

		if (!a)
			return err_set(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
		if (same)
			i = same->priv->end - same->priv->body + start;
		else
			rc = parse_alloc(s, &i, a);
		if (rc == 0 && table_append(t, a) < 0)
			rc = err_set(s->err, SCOPE_EIO, -ENOMEM, "out of memory");
		if (rc < 0) {
			alloc_free(a);
			return rc;
		}
		a->priv->seg = t->text.len;
		sbuf_adds(&t->text, t->n == 1 ? "\n    " : ",\n    ");
		a->priv->body = t->text.len;
		sbuf_add(&t->text, s->buf + start, i - start);
		a->priv->end = t->text.len;
		a->priv->dirty = false;
		i = skip_ws(s, i);
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

struct top_ctx {
	struct scope_table *t;
	bool seen;
};

static int top_member(struct scan *s, struct member *m, void *ctx)
{
	struct top_ctx *c = ctx;

	if (strcmp(json_string_value(m->name), "allocations") == 0) {
		size_t i = m->val;

		if (c->seen)
			return scan_error(s, m->key, "duplicate field `allocations`");
		c->seen = true;
		return parse_allocations(s, &i, c->t);
	}
	return keep_unknown(s, m, c->seen ? &c->t->ext_after : &c->t->ext_before);
}

/* Rust's str::trim: is the whole file Unicode white space? */
static bool blank(const char *buf, size_t len)
{
	static const uint32_t ws[] = { 0x85,   0xa0,   0x1680, 0x2028, 0x2029,
				       0x202f, 0x205f, 0x3000 };
	const unsigned char *p = (const unsigned char *)buf, *end = p + len;

	while (p < end) {
		uint32_t cp;
		size_t n;
		bool ok = false;

		if (*p < 0x80) {
			if (!(*p == ' ' || (*p >= 0x09 && *p <= 0x0d)))
				return false;
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0)
			n = 2, cp = *p & 0x1f;
		else if ((*p & 0xf0) == 0xe0)
			n = 3, cp = *p & 0x0f;
		else
			return false;
		if ((size_t)(end - p) < n || !utf8_valid((const char *)p, n))
			return false;
		for (size_t k = 1; k < n; k++)
			cp = cp << 6 | (p[k] & 0x3f);
		for (size_t k = 0; k < sizeof(ws) / sizeof(ws[0]); k++)
			ok = ok || cp == ws[k];
		ok = ok || (cp >= 0x2000 && cp <= 0x200a);
		if (!ok)
			return false;
		p += n;
	}
	return true;
}

int json_parse_table(const char *buf, size_t len, const char *name, const struct reuse *reuse,
		     struct scope_table **out, struct scope_err *err)
{
	struct scan s = { buf, len, name ? name : "scope.lock", err, reuse };
	struct scope_table *t = scope_table_new();
	struct top_ctx c = { .t = t };
	size_t i;
	int rc;

	if (!t)
		return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
	if (len && memchr(buf, '\0', len)) {
		rc = scan_error(&s, (size_t)((const char *)memchr(buf, '\0', len) - buf),
				"NUL byte in the file");
		goto fail;
	}
	if (!blank(buf, len)) {
		i = skip_ws(&s, 0);
		rc = each_member(&s, &i, "struct LockFile", top_member, &c);
		if (rc < 0)
			goto fail;
		if (skip_ws(&s, i) != len) {
			rc = scan_error(&s, skip_ws(&s, i), "trailing characters");
			goto fail;
		}
	}
	if (!c.seen) {
		/* No "allocations": what the file has goes after it. */
		t->ext_after = t->ext_before;
		t->ext_before = NULL;
		table_render_head(t);
	}
	table_render_tail(t);
	if (t->text.oom) {
		rc = err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
		goto fail;
	}
	t->text_valid = true;
	t->first_change = SIZE_MAX;
	t->index_dirty = true;
	t->modified = false;
	t->dirty_from = SIZE_MAX;
	*out = t;
	return 0;
fail:
	scope_table_free(t);
	return rc;
}
