/* SPDX-License-Identifier: MIT */
/*
 * scopefs.h - the daemon's internals: the core table behind one mutex, the
 * inode table, the notifier queues, the .events streams and the watcher.
 *
 * Locking, outermost first: scopefs.lock (core table, procwatch, nodes,
 * owner cache) -> events.lock -> notifier.lock.  No lock is held while a
 * thread waits for the kernel or for a notifier.
 *
 * Functions return 0 or a negative errno unless said otherwise.
 */
#ifndef SCOPEFS_H
#define SCOPEFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "scope.h"

/* The kernel caches entries and attributes this long; everything that
 * changes earlier is invalidated explicitly. */
#define SCOPEFS_TIMEOUT 1.0
/* One write() of allow carries the whole set, at most this many bytes. */
#define SCOPEFS_MAX_WRITE (64 * 1024)
/* A pod made by mkdir survives its maker this long, awaiting adoption. */
#define SCOPEFS_GRACE_MS 1000
/* Lines kept for an .events reader that does not read. */
#define SCOPEFS_EVENTS_MAX 4096

/* ------------------------------------------------------------------ */
/* guard.c: what a crash leaves behind */

/* Detaches the mount of a dead daemon at MOUNTPOINT, if there is one:
 * 1 if it did, 0 if there was none. */
int guard_dead_mount(const char *mountpoint);
/* Starts the process that aborts the connection if the calling thread
 * dies without guard_stop (a SIGKILLed daemon); its pid, or -errno. */
pid_t guard_start(const char *mountpoint);
void guard_stop(pid_t pid);

/* ------------------------------------------------------------------ */
/* log.c */

void sfs_log_init(bool foreground);
void sfs_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* proc.c: who is calling, and who owns a pod */

/* The thread-group id (process) of thread TID. */
int proc_tgid(pid_t tid, pid_t *tgid);
/* Real and effective uid, effective gid of PID. */
int proc_ids(pid_t pid, uid_t *ruid, uid_t *euid, gid_t *egid);

struct owner;
/* uid/gid per (pid, start time), so that a dead owner still shows its uid
 * until the pod is reaped. */
struct owners {
	struct owner *slots;
	size_t cap;
	size_t count;
	uid_t fallback_uid;
	gid_t fallback_gid;
};

int owners_init(struct owners *o, uid_t uid, gid_t gid);
void owners_release(struct owners *o);
void owners_get(struct owners *o, uint32_t pid, uint64_t start, uid_t *uid, gid_t *gid);
/* Forget owners that no pod of T refers to (cheap when the cache is small). */
void owners_prune(struct owners *o, const struct scope_table *t);

/* ------------------------------------------------------------------ */
/* nodes.c: the inode table.  Every path the kernel knows has its own node
 * (one pod is shown at MOUNT/c and MOUNT/a/c with two inode numbers). */

enum node_kind { NODE_ROOT, NODE_EVENTS, NODE_BYSESSION, NODE_POD, NODE_FILE, NODE_LINK };
enum pod_file { PF_ALLOW, PF_PID, PF_SESSION, PF_SOCKET, PF_DELEGATED_FROM, PF_COUNT };

#define INO_EVENTS 2
#define INO_BYSESSION 3

struct node {
	fuse_ino_t ino;
	fuse_ino_t parent;
	char *name;
	char *pod; /* POD, FILE: the pod shown; LINK: the pod linked to */
	enum node_kind kind;
	enum pod_file file;
	uint64_t nlookup;
	bool permanent;
	bool dead; /* its name was invalidated; only its inode number lives on */
	bool served; /* FILE: served_hash is what the page cache may hold */
	uint64_t served_hash;
	/* FILE, fast_read: when what it shows last changed (0: the mount's
	 * time).  The kernel drops a file's cached pages when it sees a new
	 * mtime (auto_inval_data). */
	struct timespec mtime;
	struct node *ino_next;
	struct node *name_next;
};

struct nodes {
	struct node **by_ino;
	struct node **by_name;
	size_t nbuckets;
	size_t count;
	fuse_ino_t next_ino;
	struct node root, events, bysession;
};

int nodes_init(struct nodes *ns);
void nodes_release(struct nodes *ns);
struct node *nodes_get(struct nodes *ns, fuse_ino_t ino);
/* The live (not dead) node named NAME in PARENT. */
struct node *nodes_find(struct nodes *ns, fuse_ino_t parent, const char *name);
/* Find or make the live node for (PARENT, NAME); one that shows something
 * else is killed first. */
int nodes_make(struct nodes *ns, fuse_ino_t parent, const char *name, enum node_kind kind,
	       enum pod_file file, const char *pod, struct node **out);
void nodes_kill(struct nodes *ns, struct node *n);
void nodes_forget(struct nodes *ns, fuse_ino_t ino, uint64_t nlookup);
/* Calls FN for every node; FN must not add or remove nodes. */
void nodes_each(struct nodes *ns, void (*fn)(struct node *n, void *ctx), void *ctx);

/* ------------------------------------------------------------------ */
/* notify.c: kernel notifications, sent from a thread of their own because
 * the kernel may hold inode locks while a handler runs. */

struct nitem;

struct notifier {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t done_cv;
	struct nitem *items;
	size_t head, count, cap;
	uint64_t queued, done;
	bool started, stop;
	pthread_t thread;
	struct fuse_session *se;
	const char *name;
	struct notifier *before; /* what was queued there is sent first */
};

int notifier_init(struct notifier *n, const char *name);
int notifier_start(struct notifier *n, struct fuse_session *se);
/* Stops the thread; what is still queued is dropped. */
void notifier_stop(struct notifier *n);
void notifier_release(struct notifier *n);
/* The push functions return the ticket of the item (0 on failure). */
uint64_t notifier_push_inode(struct notifier *n, fuse_ino_t ino);
/* Invalidates only the attributes of INO: never waits for a page lock. */
uint64_t notifier_push_attr(struct notifier *n, fuse_ino_t ino);
uint64_t notifier_push_entry(struct notifier *n, fuse_ino_t parent, const char *name);
/* Takes ownership of PH. */
uint64_t notifier_push_poll(struct notifier *n, struct fuse_pollhandle *ph);
/* Wait until the item TICKET was sent, at most TIMEOUT_MS. */
void notifier_wait(struct notifier *n, uint64_t ticket, int timeout_ms);

/* ------------------------------------------------------------------ */
/* events.c: the .events streams */

struct ev_handle;

struct events {
	pthread_mutex_t lock;
	uint64_t seq;
	struct ev_handle *handles;
	struct notifier *poller; /* sends poll wake-ups */
};

int events_init(struct events *ev, struct notifier *poller);
/* Answers parked reads (EINTR) and frees every handle. */
void events_release(struct events *ev);
int events_open(struct events *ev, struct ev_handle **out);
void events_close(struct events *ev, struct ev_handle *h);
/* Replies now, or parks REQ until a line is ready (or an interrupt). */
void events_read(struct events *ev, struct ev_handle *h, fuse_req_t req, size_t size,
		 bool nonblock);
void events_poll(struct events *ev, struct ev_handle *h, fuse_req_t req,
		 struct fuse_pollhandle *ph);
/* One line per change, to every open handle; answers parked reads. */
void events_publish(struct events *ev, const struct scope_change *ch, size_t n);

struct scopefs;

/* ------------------------------------------------------------------ */
/* loopback.c: changes repeated through the mount for inotify watchers */

enum lb_kind { LB_MKDIR, LB_RMDIR, LB_WRITE };
struct loopback;

int loopback_new(struct scopefs *d, const char *mountpoint, struct loopback **out);
int loopback_start(struct loopback *lb);
/* Stops taking work; loopback_free joins (after the session is gone, so
 * that a request in flight cannot hang it). */
void loopback_stop(struct loopback *lb);
void loopback_free(struct loopback *lb);
/* Queue NAME's mkdir, rmdir or a write of its FILE (at the root's path). */
void loopback_push(struct loopback *lb, enum lb_kind kind, const char *name, enum pod_file file);
/* Whether REQ comes from the loopback thread. */
bool loopback_is(struct loopback *lb, fuse_req_t req);
/* Whether the loopback thread is doing KIND on NAME right now. */
bool loopback_doing(struct loopback *lb, enum lb_kind kind, const char *name);

/* ------------------------------------------------------------------ */
/* The daemon */

struct watcher;

struct scopefs {
	struct fuse_session *se;
	struct scope_file *file;
	struct scope_procwatch *pw;
	pthread_mutex_t lock; /* the core table, pw, nodes, owners */
	struct nodes nodes;
	struct owners owners;
	struct notifier inodes;	 /* inval_inode and poll: handlers may wait */
	struct notifier entries; /* inval_entry: takes dir locks, never waited for */
	/* fast_read: page cache invalidations of pod files.  Never waited
	 * for: one waits for the page lock of a write in flight. */
	struct notifier pages;
	struct events events;
	struct watcher *watcher;
	struct loopback *loopback;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	bool foreground;
	/* -o fast_read: the kernel sends no OPEN (no_open), pod files are
	 * cached and every change is pushed; .events is hidden. */
	bool fast_read;
};

/* change.c: every change to the table goes through scopefs_change. */

typedef int (*change_fn)(struct scopefs *d, struct scope_table *t, void *arg,
			 struct scope_err *err);

/* The mount operation that made a change, so that it is not repeated for
 * inotify at the path it already came through. */
enum origin_kind { ORIGIN_NONE, ORIGIN_MKDIR, ORIGIN_RMDIR, ORIGIN_WRITE };
struct origin {
	enum origin_kind kind;
	fuse_ino_t ino; /* MKDIR, RMDIR: the parent; WRITE: the file */
	const char *name;
};

/*
 * Under the mutex: lock the file (reloading it), reclaim stale pods, run FN
 * (if any), save, and turn the table's changes into events and kernel
 * invalidations.  *TICKET (if given) is what to wait for on d->inodes
 * before replying, so that the caller's next syscall sees fresh attributes.
 */
int scopefs_change(struct scopefs *d, change_fn fn, void *arg, const struct origin *origin,
		   struct scope_err *err, uint64_t *ticket);
/* Fill ERR with a refusal of our own; returns CODE (a negative errno). */
int scopefs_fail(struct scope_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The errno to reply for a failed change. */
int scopefs_errno(int rc, const struct scope_err *err);

/* view.c: what the mount shows, read under the mutex. */

bool view_node_valid(struct scopefs *d, const struct scope_table *t, struct node *n);
/* The pod a POD/FILE node shows, if its path is still valid. */
struct scope_alloc *view_node_pod(struct scopefs *d, const struct scope_table *t,
				  struct node *n);
int view_attr(struct scopefs *d, const struct scope_table *t, struct node *n, struct stat *st);
/* malloc'd content of pod file F of A (no NUL counted in *len). */
int view_render(const struct scope_alloc *a, enum pod_file f, char **out, size_t *len);
const char *view_file_name(enum pod_file f);
/* Which pod file NAME is, or PF_COUNT. */
enum pod_file view_file_lookup(const char *name);
uint64_t view_hash(const char *buf, size_t len);
bool view_name_shown(const char *name);
/* fast_read: a pod file's content may have changed; gives it a new mtime. */
void view_touch(struct scopefs *d, struct node *n);
/* fast_read: makes the kernel re-check N (a pod file) before its next
 * read: a new mtime, its attributes invalidated (returns the ticket on
 * d->inodes to wait for) and its pages dropped (never waited for). */
uint64_t view_push_file(struct scopefs *d, struct node *n);

/* watch.c: the thread that reaps dead owners and follows the table file. */
int watcher_new(struct scopefs *d, struct watcher **out);
int watcher_start(struct watcher *w);
void watcher_free(struct watcher *w);

/* ops.c */
extern const struct fuse_lowlevel_ops scopefs_ops;

#endif /* SCOPEFS_H */
