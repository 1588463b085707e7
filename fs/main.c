/* SPDX-License-Identifier: MIT */
/*
 * main.c - scopefs: start-up and shut-down.  Every step that can fail
 * (options, the table, mounting) happens before daemonizing, so that its
 * error reaches the terminal and the exit status.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "scopefs.h"

/* A multi-threaded loop with room for many slow callers at once; blocked
 * .events readers hold no thread. */
#define MAX_THREADS 128

struct options {
	char *table;
	int show_help;
	int show_version;
	int allow_other;
	int fast_read;
};

enum { KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER };

static const struct fuse_opt option_spec[] = {
	{ "table=%s", offsetof(struct options, table), 0 },
	{ "fast_read", offsetof(struct options, fast_read), 1 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_END,
};

static int option_key(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	switch (key) {
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1; /* libfuse needs it too */
	default:
		return 1;
	}
}

static void usage(const char *prog)
{
	printf("usage: %s [options] [MOUNTPOINT]\n\n"
	       "Shows the scope allocation table as a directory tree.\n\n"
	       "scopefs options:\n"
	       "    -o table=PATH          the table file (default: the core's resolution,\n"
	       "                           $INSOMNIA_RUNTIME_DIR/scope.lock and so on)\n"
	       "    -o fast_read           open and read pod files without a request to the\n"
	       "                           daemon (the kernel's no_open mode: cached content,\n"
	       "                           every change pushed); MOUNT/.events is hidden\n"
	       "    -h, --help             this help\n"
	       "    -V, --version          the version\n\n"
	       "MOUNTPOINT defaults to /run/scopes for root, $XDG_RUNTIME_DIR/scopes\n"
	       "for other users (made if missing).\n\n",
	       prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* An absolute path, so that daemonizing (chdir /) changes nothing. */
static int absolute(const char *path, char **out)
{
	char *cwd;

	if (path[0] == '/') {
		*out = strdup(path);
		return *out ? 0 : -ENOMEM;
	}
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return -errno;
	if (asprintf(out, "%s/%s", cwd, path) < 0) {
		free(cwd);
		return -ENOMEM;
	}
	free(cwd);
	return 0;
}

static int default_mountpoint(char **out)
{
	const char *run;

	if (geteuid() == 0) {
		*out = strdup("/run/scopes");
	} else {
		run = getenv("XDG_RUNTIME_DIR");
		if (!run || !*run) {
			fprintf(stderr, "scopefs: no MOUNTPOINT given and XDG_RUNTIME_DIR is not set\n");
			return -EINVAL;
		}
		if (asprintf(out, "%s/scopes", run) < 0)
			*out = NULL;
	}
	if (!*out)
		return -ENOMEM;
	if (mkdir(*out, 0755) < 0 && errno != EEXIST) {
		int rc = -errno;

		fprintf(stderr, "scopefs: cannot make mountpoint `%s`: %s\n", *out, strerror(errno));
		return rc;
	}
	return 0;
}

/* fsname and subtype first, so that the user's own -o fsname= wins. */
static int add_names(struct fuse_args *args, const char *table)
{
	char *opt = NULL, *fsname = NULL;
	int rc = -ENOMEM;

	if (asprintf(&fsname, "fsname=%s", table) < 0)
		return -ENOMEM;
	if (fuse_opt_add_opt_escaped(&opt, fsname) || fuse_opt_add_opt(&opt, "subtype=scopefs"))
		goto out;
	if (fuse_opt_insert_arg(args, 1, "-o") || fuse_opt_insert_arg(args, 2, opt))
		goto out;
	rc = 0;
out:
	free(opt);
	free(fsname);
	return rc;
}

/* Opens the table and checks it parses, without changing it. */
static int open_table(struct scopefs *d, const char *path)
{
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	char *abs = NULL;
	int rc;

	rc = absolute(path, &abs);
	if (rc < 0) {
		fprintf(stderr, "scopefs: `%s`: %s\n", path, strerror(-rc));
		return rc;
	}
	rc = scope_file_open(&d->file, abs, &err);
	if (rc < 0)
		goto fail;
	rc = scope_file_lock(d->file, &t, &err);
	if (rc < 0)
		goto fail;
	/* What the first load reports as new is no change to stream. */
	scope_table_clear_changes(t);
	scope_file_unlock(d->file);
	free(abs);
	return 0;
fail:
	fprintf(stderr, "scopefs: %s\n", err.msg[0] ? err.msg : strerror(-rc));
	free(abs);
	return rc;
}

/* Frees what main set up; the threads are stopped by then. */
static void scopefs_release(struct scopefs *d)
{
	notifier_release(&d->inodes);
	notifier_release(&d->entries);
	notifier_release(&d->pages);
	nodes_release(&d->nodes);
	owners_release(&d->owners);
	scope_procwatch_free(d->pw);
	scope_file_free(d->file);
	pthread_mutex_destroy(&d->lock);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts copts = { 0 };
	struct options opts = { 0 };
	struct fuse_loop_config *cfg = NULL;
	struct scopefs d = { 0 };
	struct scope_err err = { 0 };
	char *table = NULL, *mountpoint = NULL, *real = NULL;
	pid_t guard = -1;
	bool mounted = false, handlers = false;
	int rc, ret = 1;

	pthread_mutex_init(&d.lock, NULL);
	d.uid = getuid();
	d.gid = getgid();
	clock_gettime(CLOCK_REALTIME, &d.mtime);
	if (nodes_init(&d.nodes) < 0 || owners_init(&d.owners, d.uid, d.gid) < 0) {
		fprintf(stderr, "scopefs: out of memory\n");
		return 1;
	}
	notifier_init(&d.inodes, "inode");
	notifier_init(&d.entries, "entry");
	notifier_init(&d.pages, "page");
	d.entries.before = &d.inodes;
	events_init(&d.events, &d.inodes);

	if (fuse_opt_parse(&args, &opts, option_spec, option_key) == -1)
		goto out;
	if (opts.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (opts.show_version) {
		printf("scopefs %s\nFUSE library %s\n", SCOPEFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (opts.table) {
		table = strdup(opts.table);
	} else if (scope_default_path(&table, &err) < 0) {
		fprintf(stderr, "scopefs: %s\n", err.msg[0] ? err.msg : "no table path");
		goto out;
	}
	if (!table) {
		fprintf(stderr, "scopefs: out of memory\n");
		goto out;
	}
	if (add_names(&args, table) < 0 ||
	    (opts.allow_other && fuse_opt_add_arg(&args, "-odefault_permissions"))) {
		fprintf(stderr, "scopefs: out of memory\n");
		goto out;
	}
	if (fuse_parse_cmdline(&args, &copts) != 0)
		goto out;
	if (copts.mountpoint)
		mountpoint = strdup(copts.mountpoint);
	else if (default_mountpoint(&mountpoint) < 0)
		goto out;
	if (!mountpoint)
		goto out;
	d.foreground = copts.foreground;
	d.fast_read = opts.fast_read != 0;

	if (open_table(&d, table) < 0)
		goto out;
	rc = scope_procwatch_new(&d.pw);
	if (rc < 0) {
		fprintf(stderr, "scopefs: cannot watch processes: %s\n", strerror(-rc));
		goto out;
	}
	rc = watcher_new(&d, &d.watcher);
	if (rc < 0) {
		fprintf(stderr, "scopefs: cannot watch `%s`: %s\n", table, strerror(-rc));
		goto out;
	}

	d.se = fuse_session_new(&args, &scopefs_ops, sizeof(scopefs_ops), &d);
	if (!d.se)
		goto out;
	if (fuse_set_signal_handlers(d.se) != 0)
		goto out;
	handlers = true;
	rc = guard_dead_mount(mountpoint);
	if (rc < 0) {
		fprintf(stderr, "scopefs: `%s` holds the mount of a dead daemon, which cannot be "
				"detached: %s\n", mountpoint, strerror(-rc));
		goto out;
	}
	if (fuse_session_mount(d.se, mountpoint) != 0)
		goto out;
	mounted = true;
	real = realpath(mountpoint, NULL);
	if (!real || loopback_new(&d, real, &d.loopback) < 0) {
		fprintf(stderr, "scopefs: `%s`: %s\n", mountpoint, strerror(errno));
		goto out;
	}
	if (fuse_daemonize(copts.foreground) != 0)
		goto out;

	/* Threads only now: daemonizing forks, and threads do not follow.
	 * The guard is forked by this thread, the one that runs the session. */
	sfs_log_init(copts.foreground);
	guard = guard_start(real);
	if ((rc = notifier_start(&d.inodes, d.se)) < 0 ||
	    (rc = notifier_start(&d.entries, d.se)) < 0 ||
	    (d.fast_read && (rc = notifier_start(&d.pages, d.se)) < 0) ||
	    (rc = watcher_start(d.watcher)) < 0 ||
	    (rc = loopback_start(d.loopback)) < 0) {
		sfs_log(LOG_ERR, "cannot start threads: %s", strerror(-rc));
		goto out;
	}
	if (copts.singlethread) {
		rc = fuse_session_loop(d.se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out;
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)copts.clone_fd);
		fuse_loop_cfg_set_max_threads(cfg, copts.max_threads > MAX_THREADS ?
							   copts.max_threads : MAX_THREADS);
		if (copts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg, copts.max_idle_threads);
		rc = fuse_session_loop_mt(d.se, cfg);
	}
	/* libfuse returns the signal that ended the loop: a stop asked for
	 * with SIGTERM, SIGINT or SIGHUP is a clean exit. */
	ret = (rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP) ? 0 : 1;
out:
	guard_stop(guard);
	/* The watcher first (it changes the table and queues notifications),
	 * then parked readers get their answer before the mount goes.  The
	 * loopback thread is joined last: a request of its own in flight ends
	 * only when the session's device is closed. */
	loopback_stop(d.loopback);
	watcher_free(d.watcher);
	d.watcher = NULL;
	notifier_stop(&d.inodes);
	notifier_stop(&d.entries);
	notifier_stop(&d.pages);
	events_release(&d.events);
	if (mounted)
		fuse_session_unmount(d.se);
	if (handlers)
		fuse_remove_signal_handlers(d.se);
	if (d.se)
		fuse_session_destroy(d.se);
	if (cfg)
		fuse_loop_cfg_destroy(cfg);
	loopback_free(d.loopback);
	scopefs_release(&d);
	free(copts.mountpoint);
	free(mountpoint);
	free(real);
	free(table);
	free(opts.table);
	fuse_opt_free_args(&args);
	return ret;
}
