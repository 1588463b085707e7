/* SPDX-License-Identifier: MIT */
/* internal.h - what the core's files share; not installed. */
#ifndef SCOPE_INTERNAL_H
#define SCOPE_INTERNAL_H

#include <jansson.h>
#include <stdarg.h>

#include "scope.h"

#define SCOPE_PID_LIMIT 4194304u /* PID_MAX_LIMIT: larger values are no process */

/* A growable byte buffer. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};
/* Makes room for EXTRA more bytes (and a NUL) without changing len. */
void sbuf_grow_to(struct sbuf *b, size_t extra);
void sbuf_add(struct sbuf *b, const void *data, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_truncate(struct sbuf *b, size_t len);
void sbuf_release(struct sbuf *b);

/* Fills ERR (if not NULL) and returns CODE. */
int err_set(struct scope_err *err, enum scope_kind kind, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

char *xstrdup(const char *s); /* NULL stays NULL; aborts nothing: NULL on ENOMEM too */
uint64_t now_ms(void);  /* CLOCK_MONOTONIC */
uint64_t hash64(const void *data, size_t len);
/* JSON strings are UTF-8: the file must stay readable by every parser. */
bool utf8_valid(const char *s, size_t len);

/* Members of an object that the core does not know, as their bytes. */
struct rawmember {
	char *key; /* the key as written, quotes included */
	char *val; /* the value as written */
};
struct rawext {
	struct rawmember *m;
	size_t n, cap;
};
void rawext_free(struct rawext *x);
struct rawext *rawext_dup(const struct rawext *x);
void rawext_render(struct sbuf *b, const struct rawext *x, int level, const char *lead,
		   const char *trail);

/* Per-allocation state the header does not show. */
struct scope_alloc_priv {
	struct rawext *ext; /* unknown members, in order, or NULL */
	size_t seg;	    /* offset of the separator before this element in table text */
	size_t body;	    /* offset of its first byte */
	size_t end;	    /* offset just past this element in table text */
	bool dirty;	    /* its text must be rendered again */
	struct scope_alloc *up, *child, *last_child, *sib; /* delegation index */
	bool linked;	    /* up is valid (the parent exists) */
	struct rmeta *meta; /* per rule, computed on first use; NULL when stale */
};

struct scope_table {
	struct scope_alloc **a;
	size_t n, cap;
	/* name -> alloc, open addressing over a power-of-two array */
	struct scope_alloc **hash;
	size_t hcap;
	bool index_dirty; /* delegation links must be rebuilt */
	size_t norphans;  /* entries whose parent is missing (as of the last reindex) */
	/* unknown top-level fields: before and after "allocations" */
	struct rawext *ext_before, *ext_after;
	/* The canonical text of the table: what the file holds after a save. */
	struct sbuf text;
	size_t head_end;	/* offset just past the "[" of allocations */
	size_t first_change;	/* lowest element index whose text is stale, or SIZE_MAX */
	bool text_valid;	/* text renders the model (apart from first_change on) */
	bool modified;		/* changed since it was read or last saved */
	size_t dirty_from;	/* first byte of text rendered anew since then */
	struct scope_change *ch;
	size_t nch, capch;
};

/* table.c */
int table_append(struct scope_table *t, struct scope_alloc *a);
void table_remove_at(struct scope_table *t, size_t i);
size_t table_index_of(const struct scope_table *t, const struct scope_alloc *a);
void table_touch(struct scope_table *t, struct scope_alloc *a);
void table_reindex(const struct scope_table *t);
int table_note(struct scope_table *t, enum scope_change_kind kind, const char *name,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
struct scope_alloc *alloc_new(void);
struct scope_alloc *alloc_clone(const struct scope_alloc *a);
void alloc_free(struct scope_alloc *a);
/* The text before the first entry, and after the last. */
void table_render_head(struct scope_table *t);
void table_render_tail(struct scope_table *t);
/* Render the text from first_change on; *from = first byte that may differ. */
int table_render(struct scope_table *t, size_t *from);
/* Append the changes that turn OLD into NEW to NEW's log; NEW keeps OLD's gens. */
void table_diff(struct scope_table *old, struct scope_table *nw);
uint64_t next_gen(void);

/* json.c */
/* What a parse may take from the table it replaces: entries whose bytes lie
 * in the part of the file that did not change are copied, not parsed. */
struct reuse {
	const struct scope_table *old; /* clean, and its text is the old file */
	size_t prefix, suffix;	       /* bytes equal at the start and the end */
	size_t oldlen;
};
int json_parse_table(const char *buf, size_t len, const char *name, const struct reuse *reuse,
		     struct scope_table **out, struct scope_err *err);
void json_render_alloc(struct sbuf *b, const struct scope_alloc *a);
void json_render_string(struct sbuf *b, const char *s, size_t len);

/* path.c */
bool path_simple(const char *s);

/* A rule's target prepared for fast comparison (see rules.c). */
struct rmeta {
	size_t len;  /* strlen(target) */
	size_t plen; /* bytes of its parent part (before the last '/') */
	bool simple; /* path_simple(target) */
};

/* rules.c */
void rmeta_of(const struct scope_rule *r, struct rmeta *m);
const struct rmeta *alloc_meta(const struct scope_alloc *a);
bool within_effective_skip(const struct scope_table *t, const struct scope_alloc *parent,
				 const struct scope_rule *rule, const struct scope_alloc *skip);
const struct scope_alloc *conflict_owner_skip(const struct scope_table *t,
						    const struct scope_rule *rule, const char *exempt,
						    const struct scope_alloc *skip);


#endif
