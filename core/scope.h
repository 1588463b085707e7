/* SPDX-License-Identifier: MIT */
/*
 * scope.h - the scope allocation table: rules, paths, the locked file,
 * liveness.  Every front end (the FUSE daemon, tools, tests) calls this
 * library; none of them holds a rule of its own.
 *
 * Conventions: functions that can fail return 0 or a negative errno and,
 * when given a struct scope_err, fill it with the kind of failure and a
 * message in words (the original registry's wording).  Strings returned
 * inside a table belong to the table.
 *
 * A table is not thread-safe: callers serialise access to one table.
 */
#ifndef SCOPE_H
#define SCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                              */

enum scope_kind {
	SCOPE_OK = 0,
	SCOPE_EIO,	  /* I/O on the table file (code: -errno) */
	SCOPE_ECORRUPT,	  /* the table file does not parse (-EBADMSG) */
	SCOPE_EDUPLICATE, /* DuplicatePodName (-EEXIST) */
	SCOPE_ECONFLICT,  /* WriteConflict (-EBUSY) */
	SCOPE_ENOTSUBSET, /* NotSubset (-EPERM) */
	SCOPE_EUNKNOWN,	  /* UnknownPod (-ENOENT) */
	SCOPE_ESESSION,	  /* SessionConflict (-EBUSY) */
	SCOPE_EUNCOVERED, /* new rules drop scope delegated to a child (-EBUSY) */
	SCOPE_EINVAL,	  /* malformed argument (-EINVAL) */
	SCOPE_EUNSAFE,	  /* table file is a symlink, not regular, or foreign (-EPERM) */
};

struct scope_err {
	enum scope_kind kind;
	int code;	/* negative errno, as returned */
	char msg[1024]; /* one line, in words */
};

/* ------------------------------------------------------------------ */
/* Rules and paths                                                     */

enum scope_perm { SCOPE_READ = 0, SCOPE_WRITE = 1 };

struct scope_rule {
	char *target; /* as stored: may be non-normalised if a foreign writer put it there */
	enum scope_perm perm;
	bool recursive;
	void *ext; /* private: unknown JSON fields of this rule (json_t *), or NULL */
};

/*
 * Paths compare component by component, exactly as Rust's std::path::Path
 * does: repeated separators and "." components (but a leading one) do not
 * count, a trailing "/" does not count, ".." is an ordinary component.
 */
bool scope_path_eq(const char *a, const char *b);
bool scope_path_starts_with(const char *path, const char *base);
/* Path::parent(path) == Some(parent); "/" has no parent. */
bool scope_path_parent_is(const char *path, const char *parent);

/* rules_overlap: the coverage sets of a and b share a path. */
bool scope_rules_overlap(const struct scope_rule *a, const struct scope_rule *b);
/* covers_fully: everything inner claims, cover claims too, with at least
 * its permission. */
bool scope_covers_fully(const struct scope_rule *cover, const struct scope_rule *inner);

/*
 * The rule-line format of the mount's "allow" file:
 *   PERMISSION RECURSION TARGET\n
 * PERMISSION is read|write, RECURSION recursive|shallow, TARGET an absolute
 * normalised path with bytes < 0x20, 0x7f and '\\' as three-digit octal
 * escapes.  Parsing accepts an optional missing final newline and the empty
 * text (or a lone newline) as the empty set.
 */
int scope_rules_parse(const char *text, size_t len, struct scope_rule **rules, size_t *nrules,
		      struct scope_err *err);
/* Returns a malloc'd NUL-terminated text (len without the NUL), or NULL on ENOMEM. */
char *scope_rules_format(const struct scope_rule *rules, size_t nrules, size_t *len);
/* Appends TARGET escaped as above; returns bytes written or needed (like snprintf). */
size_t scope_escape_path(const char *path, char *out, size_t size);
/* Frees rules made by scope_rules_parse or scope_rules_dup. */
void scope_rules_free(struct scope_rule *rules, size_t nrules);
int scope_rules_dup(const struct scope_rule *rules, size_t nrules, struct scope_rule **out);
/* Whether TARGET is an absolute normalised path ("/" or "/a/b", no ".",
 * "..", empty component or trailing "/"). */
bool scope_target_valid(const char *target);

/* A pod name as the mount can show it: 1-255 bytes, no '/' or NUL, not
 * "." or "..", not starting with '.', not a pod file's name. */
bool scope_name_valid(const char *name, size_t len);
/* A session id: a UUID in its 36-character text form (any case). */
bool scope_session_valid(const char *s);
/* Writes a fresh UUID v7 (lower case, 36 chars + NUL). */
void scope_uuid_v7(char out[37]);

/* ------------------------------------------------------------------ */
/* The table                                                           */

struct scope_alloc {
	char *name;
	uint32_t pid;
	/* Start time of pid (clock ticks after boot, /proc/PID/stat field 22)
	 * recorded when the pid was set, so that a reused pid does not keep a
	 * dead pod alive; 0 when unknown (e.g. written by the original). */
	uint64_t pid_start;
	char *socket;
	struct scope_rule *rules;
	size_t nrules;
	char *parent;  /* delegated_from; NULL for a top-level pod */
	char *session; /* NULL: a pre-reservation awaiting adoption */
	uint64_t gen;  /* changes whenever this entry changes; for caches */
	struct scope_alloc_priv *priv;
};

struct scope_table;

struct scope_table *scope_table_new(void);
void scope_table_free(struct scope_table *t);
/* Parse a table from memory (what the file holds); NAME names it in errors. */
int scope_table_parse(const char *buf, size_t len, const char *name, struct scope_table **out,
		      struct scope_err *err);
/* Serialise as the original does (pretty, two-space indent, no final
 * newline), keeping every unknown field byte for byte and the exact bytes
 * of every entry that did not change.  *buf is malloc'd. */
int scope_table_dump(struct scope_table *t, char **buf, size_t *len);

size_t scope_table_count(const struct scope_table *t);
struct scope_alloc *scope_table_at(const struct scope_table *t, size_t i);
struct scope_alloc *scope_find(const struct scope_table *t, const char *name);
/* find_by_session: the allocation writing to SESSION (pre-reservations skipped). */
struct scope_alloc *scope_find_session(const struct scope_table *t, const char *session);
/* Delegation tree: direct children of A in table order (NULL-terminated walk). */
struct scope_alloc *scope_first_child(const struct scope_table *t, const struct scope_alloc *a);
struct scope_alloc *scope_next_sibling(const struct scope_table *t, const struct scope_alloc *a);

/* is_within_effective_write: RULE lies in PARENT's effective scope. */
bool scope_within_effective_write(const struct scope_table *t, const char *parent,
				  const struct scope_rule *rule);
/* find_conflict_owner: the deepest pod whose write rules overlap RULE,
 * skipping EXEMPT; NULL if none (and always NULL for a read rule). */
const char *scope_conflict_owner(const struct scope_table *t, const struct scope_rule *rule,
				 const char *exempt);

/* ------------------------------------------------------------------ */
/* Changes: each mutation appends what it did, for front ends that show
 * or stream the table.  A reload after another program changed the file
 * appends what the change amounts to. */

enum scope_change_kind {
	SCOPE_CH_REGISTER, /* detail: - */
	SCOPE_CH_DELEGATE, /* detail: the parent */
	SCOPE_CH_RELEASE,  /* detail: - */
	SCOPE_CH_REAP,	   /* detail: the dead pid */
	SCOPE_CH_ALLOW,	   /* detail: number of rules */
	SCOPE_CH_PID,	   /* detail: the new pid */
	SCOPE_CH_SESSION,  /* detail: the new session, or "-" */
	SCOPE_CH_SOCKET,   /* detail: the new socket, or "-" */
	SCOPE_CH_REPARENT, /* detail: the new parent, or "-" for top-level */
};

struct scope_change {
	enum scope_change_kind kind;
	char *name;
	char *detail;
};

const char *scope_change_kind_name(enum scope_change_kind kind);
size_t scope_table_changes(const struct scope_table *t, const struct scope_change **changes);
void scope_table_clear_changes(struct scope_table *t);

/* ------------------------------------------------------------------ */
/* Operations (on a table the caller holds locked)                      */

struct scope_spec {
	const char *name;
	uint32_t pid;
	uint64_t pid_start; /* 0: looked up from /proc when the process exists */
	const char *socket; /* NULL = "" */
	const struct scope_rule *rules;
	size_t nrules;
	const char *session; /* register: the session (NULL: a fresh UUID v7) */
};

struct scope_liveness {
	/* Called once at the start of each reclaim (may be NULL): a cache can
	 * take in what changed since the last one. */
	void (*begin)(void *ctx);
	/* true while the process owning A is alive */
	bool (*alive)(void *ctx, const struct scope_alloc *a);
	void *ctx;
};

/* reclaim_stale: release every allocation whose owner is dead (reparenting
 * its delegates); returns how many.  The original's register_pod and
 * delegate_scope reclaim first: callers do the same before a change, with
 * the liveness they choose (scope_procwatch_liveness, or a test seam). */
size_t scope_reclaim_stale(struct scope_table *t, const struct scope_liveness *lv);
/* register_pod: a top-level pod. */
int scope_register(struct scope_table *t, const struct scope_spec *spec, struct scope_err *err);
/* delegate_scope: a pod delegated from SPAWNER (session stays NULL). */
int scope_delegate(struct scope_table *t, const char *spawner, const struct scope_spec *spec,
		   struct scope_err *err);
/* release_pod: remove NAME, its delegates move to NAME's own parent. */
int scope_release(struct scope_table *t, const char *name, struct scope_err *err);
/* adopt: NAME's owner becomes PID; SESSION (if not NULL) its session.
 * PID_START 0 = look it up. */
int scope_adopt(struct scope_table *t, const char *name, uint32_t pid, uint64_t pid_start,
		const char *session, struct scope_err *err);
/* Set NAME's session (NULL clears it); refused if another pod holds it. */
int scope_set_session(struct scope_table *t, const char *name, const char *session,
		      struct scope_err *err);
/* Replace NAME's rules with the same checks as register (top-level) or
 * delegate (child); NAME's own subtree never conflicts with itself, and
 * the new set must still cover every rule NAME delegated to its children. */
int scope_set_rules(struct scope_table *t, const char *name, const struct scope_rule *rules,
		    size_t nrules, struct scope_err *err);
/* Set NAME's socket: an absolute path, or "" for none. */
int scope_set_socket(struct scope_table *t, const char *name, const char *socket,
		     struct scope_err *err);

/* ------------------------------------------------------------------ */
/* The locked file                                                     */

/*
 * Default path, as the original resolves it: $INSOMNIA_RUNTIME_DIR/scope.lock,
 * else $INSOMNIA_HOME/run/scope.lock, else $XDG_RUNTIME_DIR/insomnia/scope.lock,
 * else $HOME/.insomnia/run/scope.lock (an empty variable counts as unset).
 * *out is malloc'd.  -ENOENT when none is set.
 */
int scope_default_path(char **out, struct scope_err *err);

struct scope_file;

/*
 * Open (creating it 0600 and missing directories 0700) the table at PATH.
 * Refuses a symlink, a non-regular file and a file owned by another user.
 * Neither locks nor reads.
 */
int scope_file_open(struct scope_file **out, const char *path, struct scope_err *err);
void scope_file_free(struct scope_file *f);
const char *scope_file_path(const struct scope_file *f);

/*
 * Take the exclusive flock on the table file (the original's protocol),
 * finish a save that a dead writer left half done, and bring the table up
 * to date with the file's content (parsed again only if its bytes changed;
 * the differences are appended to the table's changes).  A file that does
 * not parse is left as it is: -EBADMSG, naming the file and the error.
 */
int scope_file_lock(struct scope_file *f, struct scope_table **table, struct scope_err *err);
/* Like scope_file_lock, but -EWOULDBLOCK instead of waiting. */
int scope_file_trylock(struct scope_file *f, struct scope_table **table, struct scope_err *err);
/*
 * Write what changed since the lock, crash-safely: whatever byte the writer
 * dies at, or if the machine loses power, the next scope_file_lock finds
 * the whole old or the whole new table.  No-op when nothing changed.
 */
int scope_file_save(struct scope_file *f, struct scope_err *err);
/* Drop the flock; unsaved changes are forgotten (the next lock re-reads). */
void scope_file_unlock(struct scope_file *f);
/* The table as of the last lock, for reading between locks (or NULL). */
struct scope_table *scope_file_table(const struct scope_file *f);

/* Test seam: make the next save stop after STEP writes have been issued,
 * as if the writer had been killed there (see core/file.c). */
void scope_file_fault_after(struct scope_file *f, long step, long byte);

/* ------------------------------------------------------------------ */
/* Liveness                                                            */

/* Start time of PID (clock ticks after boot); -ESRCH if there is none. */
int scope_proc_start(uint32_t pid, uint64_t *start);
/* The original's kill(pid, 0) probe (pid 0 is dead), plus: a recorded
 * start time that differs from the process's means the pid was reused. */
bool scope_pid_alive(uint32_t pid, uint64_t start);

/*
 * A liveness cache (not thread-safe: one user at a time): one pidfd per
 * distinct process, so that a reclaim over
 * thousands of pods costs a hash lookup each instead of a syscall, and so
 * that a front end can wait (poll/epoll on scope_procwatch_fd) for an owner
 * to die instead of polling.
 */
struct scope_procwatch;
int scope_procwatch_new(struct scope_procwatch **out);
void scope_procwatch_free(struct scope_procwatch *pw);
/* Readable when a watched process has exited. */
int scope_procwatch_fd(const struct scope_procwatch *pw);
/* Collects exits (call when the fd is readable); returns how many. */
int scope_procwatch_collect(struct scope_procwatch *pw);
bool scope_procwatch_alive(struct scope_procwatch *pw, uint32_t pid, uint64_t start);
/* Keep PID counted alive until MS milliseconds after its death was seen. */
void scope_procwatch_grace(struct scope_procwatch *pw, uint32_t pid, unsigned ms);
/* Milliseconds until the next grace period ends (-1: none; 0: one has
 * ended, and stays reported until the next reclaim through the liveness
 * below, which forgets it). */
int scope_procwatch_next_deadline(struct scope_procwatch *pw);
/* A struct scope_liveness backed by PW. */
struct scope_liveness scope_procwatch_liveness(struct scope_procwatch *pw);

#ifdef __cplusplus
}
#endif
#endif /* SCOPE_H */
