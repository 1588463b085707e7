/* SPDX-License-Identifier: MIT */
/*
 * mount_scopefs.c - mount.scopefs (also installed as mount.fuse.scopefs):
 * what mount(8) runs for `mount -t scopefs` / `-t fuse.scopefs` and fstab.
 *
 * mount(8) calls a helper as
 *     mount.TYPE SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS] [-N NS] [-t TYPE]
 * without PATH.  This program turns that into
 *     scopefs -o table=SOURCE,OPTIONS MOUNTPOINT
 * with the daemon found beside this program (installed or in the build
 * tree), drops the options that only mean something to mount(8) and fstab,
 * and checks what it can before the daemon runs, so that every error is
 * printed and reflected in the exit status.  The daemon itself does all of
 * its fallible start-up before it detaches.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

/* Exit statuses as mount(8) documents them. */
#define EX_USAGE_ 1   /* incorrect invocation */
#define EX_SYSERR 2   /* system error (no daemon, fork failed) */
#define EX_FAIL 32    /* mount failure */

#define PROG "mount.scopefs"

/* Where the daemon is installed, and sbindir -> bindir as a relative path
 * (empty when either is absolute), from mount-helper/meson.build. */
#ifndef SCOPEFS_DAEMON_PATH
#define SCOPEFS_DAEMON_PATH "/usr/local/bin/scopefs"
#endif
#ifndef SCOPEFS_DAEMON_RELPATH
#define SCOPEFS_DAEMON_RELPATH ""
#endif

struct helper {
	const char *source;
	const char *mountpoint;
	char *table;	 /* from table= (raw) */
	char *opts;	 /* what goes to the daemon, fuse_opt-escaped, or NULL */
	const char *ns; /* -N */
	bool fake, verbose;
};

/* Options that only mount(8) and fstab care about. */
static bool fstab_only(const char *opt)
{
	static const char *const names[] = {
		"auto", "noauto", "user", "nouser", "users", "owner", "group",
		"nofail", "_netdev", "defaults", NULL,
	};
	size_t i;

	for (i = 0; names[i]; i++)
		if (strcmp(opt, names[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "X-", 2) == 0 ||
	       strncmp(opt, "comment=", 8) == 0 || strncmp(opt, "user=", 5) == 0;
}

/* Appends OPT to *LIST for fuse_opt_parse, which splits on ',' and takes
 * a backslash as an escape. */
static int opt_append(char **list, const char *opt)
{
	size_t have = *list ? strlen(*list) : 0, i, n = 0;
	char *s;

	s = realloc(*list, have + 2 * strlen(opt) + 2);
	if (!s)
		return -ENOMEM;
	*list = s;
	s += have;
	if (have)
		*s++ = ',';
	for (i = 0; opt[i]; i++) {
		if (opt[i] == ',' || opt[i] == '\\')
			s[n++] = '\\';
		s[n++] = opt[i];
	}
	s[n] = '\0';
	return 0;
}

/*
 * Splits mount(8)'s option string (comma-separated; a double-quoted part
 * may hold commas, as libmount writes `opt="a,b"`) and sorts each option.
 */
static int parse_options(struct helper *h, const char *optstr)
{
	char *buf = malloc(strlen(optstr) + 1), *o = buf;
	const char *p = optstr;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		bool quoted = false;

		o = buf;
		for (; *p && (quoted || *p != ','); p++) {
			if (*p == '"')
				quoted = !quoted;
			else
				*o++ = *p;
		}
		*o = '\0';
		if (quoted) {
			fprintf(stderr, PROG ": unbalanced quote in options `%s`\n", optstr);
			rc = -EINVAL;
			break;
		}
		if (!*buf || fstab_only(buf)) {
			/* dropped */
		} else if (strncmp(buf, "table=", 6) == 0) {
			if (!buf[6]) {
				fprintf(stderr, PROG ": empty `table=` option\n");
				rc = -EINVAL;
				break;
			}
			if (h->table && strcmp(h->table, buf + 6) != 0) {
				fprintf(stderr, PROG ": conflicting options `table=%s` and `table=%s`\n",
					h->table, buf + 6);
				rc = -EINVAL;
				break;
			}
			free(h->table);
			h->table = strdup(buf + 6);
			if (!h->table) {
				rc = -ENOMEM;
				break;
			}
		} else if (strcmp(buf, "remount") == 0) {
			fprintf(stderr, PROG ": `remount` is not supported: unmount and mount again\n");
			rc = -EINVAL;
			break;
		} else if ((rc = opt_append(&h->opts, buf)) < 0) {
			break;
		}
		if (!*p)
			break;
		p++;
	}
	free(buf);
	return rc;
}

/* An absolute version of PATH (not resolving symlinks: the daemon decides
 * about those); malloc'd. */
static char *absolute(const char *path)
{
	char *cwd, *out;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		out = NULL;
	free(cwd);
	return out;
}

/* PATH with its directory resolved (the file itself may not exist yet);
 * malloc'd, or NULL when the directory does not exist either. */
static char *canonical(const char *path)
{
	char *copy = strdup(path), *slash, *dir, *out = NULL;
	const char *base;

	if (!copy)
		return NULL;
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
		dir = realpath(slash == copy ? "/" : copy, NULL);
	} else {
		base = copy;
		dir = realpath(".", NULL);
	}
	if (dir && asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "", base) < 0)
		out = NULL;
	free(dir);
	free(copy);
	return out;
}

/* Whether two table paths name the same file: the same inode when both
 * exist, else the same path once their directories are resolved, else the
 * same absolute path. */
static bool same_table(const char *a, const char *b)
{
	struct stat sa, sb;
	char *xa, *xb;
	bool same;

	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	xa = canonical(a);
	xb = canonical(b);
	if (!xa || !xb) {
		free(xa);
		free(xb);
		xa = absolute(a);
		xb = absolute(b);
	}
	same = xa && xb && strcmp(xa, xb) == 0;
	free(xa);
	free(xb);
	return same;
}

/* The table the daemon gets: SOURCE, unless it says "the default" (none,
 * -), and table= must agree with it.  *OUT is NULL for the default. */
static int resolve_table(struct helper *h, char **out)
{
	const char *src = h->source;
	bool src_default = !*src || strcmp(src, "none") == 0 || strcmp(src, "-") == 0;
	const char *table;

	*out = NULL;
	if (!src_default && h->table && !same_table(src, h->table)) {
		fprintf(stderr,
			PROG ": the source `%s` and the option `table=%s` name different tables; "
			     "give one of them (or the same file twice)\n",
			src, h->table);
		return -EINVAL;
	}
	table = src_default ? h->table : src;
	if (!table)
		return 0;
	*out = absolute(table);
	return *out ? 0 : -ENOMEM;
}

/* Decodes the octal escapes of a /proc/self/mountinfo field in place. */
static void unescape_mountinfo(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

/* The type of the mount whose mount point is PATH (malloc'd), or NULL. */
static char *mounted_at(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *type = NULL;
	size_t cap = 0;

	if (!f)
		return NULL;
	while (!type && getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
		char *save = NULL, *field, *mnt = NULL;
		int i = 0;

		for (field = strtok_r(line, " \n", &save); field;
		     field = strtok_r(NULL, " \n", &save), i++) {
			if (i == 4)
				mnt = field;
			if (mnt && strcmp(field, "-") == 0) {
				field = strtok_r(NULL, " \n", &save);
				unescape_mountinfo(mnt);
				if (field && strcmp(mnt, path) == 0)
					type = strdup(field);
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return type;
}

/*
 * The mount point must be an existing directory on which nothing is
 * mounted yet: the kernel would let the daemon stack a second mount on a
 * busy one, which is never what the user meant.  The dead mount a crashed
 * daemon left is the exception: the daemon takes it over.  REAL gets its
 * canonical path.
 */
static int check_mountpoint(const char *mountpoint, char real[PATH_MAX])
{
	struct stat st;
	char *type;

	if (stat(mountpoint, &st) < 0) {
		int err = errno;

		/* What a FUSE mount whose daemon died answers: the daemon takes
		 * it over (detaches it and mounts anew). */
		if ((err == ENOTCONN || err == ECONNABORTED) && mountpoint[0] == '/' &&
		    strlen(mountpoint) < PATH_MAX) {
			strcpy(real, mountpoint);
			return 0;
		}
		fprintf(stderr, PROG ": mountpoint `%s`: %s\n", mountpoint, strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, PROG ": mountpoint `%s` is not a directory\n", mountpoint);
		return -ENOTDIR;
	}
	if (!realpath(mountpoint, real)) {
		fprintf(stderr, PROG ": mountpoint `%s`: %s\n", mountpoint, strerror(errno));
		return -errno;
	}
	type = mounted_at(real);
	if (type) {
		fprintf(stderr, PROG ": mountpoint `%s` is busy: %s is already mounted there\n",
			mountpoint, type);
		free(type);
		return -EBUSY;
	}
	return 0;
}

/* Whether PATH is a program; if so, *PATH becomes its canonical name. */
static bool executable(char **path)
{
	struct stat st;
	char *real;

	if (stat(*path, &st) < 0 || !S_ISREG(st.st_mode) || access(*path, X_OK) < 0)
		return false;
	real = realpath(*path, NULL);
	if (real) {
		free(*path);
		*path = real;
	}
	return true;
}

/*
 * The daemon, looked for (mount(8) gives no PATH) beside this program,
 * where it is installed relative to this program (which works in a
 * DESTDIR too), in the build tree when this program runs from there, and
 * at its configured install path.  Malloc'd, or NULL.
 */
static char *find_daemon(bool verbose)
{
	char self[PATH_MAX], *dir, *cand = NULL;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	struct stat st;

	if (n > 0) {
		self[n] = '\0';
		dir = strrchr(self, '/');
		if (dir && dir != self) {
			*dir = '\0';
			dir = self;
			const char *rel[] = { "scopefs", SCOPEFS_DAEMON_RELPATH };

			for (size_t i = 0; i < sizeof(rel) / sizeof(*rel); i++) {
				if (!*rel[i] || asprintf(&cand, "%s/%s", dir, rel[i]) < 0)
					continue;
				if (verbose)
					fprintf(stderr, PROG ": trying %s\n", cand);
				if (executable(&cand))
					return cand;
				free(cand);
			}
			/* In a meson build tree: DIR is <build>/mount-helper. */
			if (asprintf(&cand, "%s/../meson-private", dir) >= 0) {
				bool tree = stat(cand, &st) == 0 && S_ISDIR(st.st_mode);

				free(cand);
				if (tree && asprintf(&cand, "%s/../fs/scopefs", dir) >= 0) {
					if (verbose)
						fprintf(stderr, PROG ": trying %s\n", cand);
					if (executable(&cand))
						return cand;
					free(cand);
				}
			}
		}
	}
	if (verbose)
		fprintf(stderr, PROG ": trying %s\n", SCOPEFS_DAEMON_PATH);
	cand = strdup(SCOPEFS_DAEMON_PATH);
	if (cand && executable(&cand))
		return cand;
	free(cand);
	return NULL;
}

/* -N: mount in another mount namespace (a path, or a process id). */
static int enter_namespace(const char *ns)
{
	char path[64];
	const char *p = ns;
	char *end;
	int fd;

	errno = 0;
	long pid = strtol(ns, &end, 10);
	if (!errno && *ns && !*end && pid > 0) {
		snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", pid);
		p = path;
	}
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0) {
		int err = errno;

		fprintf(stderr, PROG ": cannot enter mount namespace `%s`: %s\n", ns, strerror(err));
		if (fd >= 0)
			close(fd);
		return -err;
	}
	close(fd);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " SOURCE MOUNTPOINT [-o OPTIONS] [-n] [-s] [-f] [-v] [-N NS]\n"
		"\n"
		"Mounts scopefs for mount(8) and fstab: runs the scopefs daemon as\n"
		"    scopefs -o table=SOURCE,OPTIONS MOUNTPOINT\n"
		"\n"
		"SOURCE       the table file; `none` or `-` for the default\n"
		"             ($INSOMNIA_RUNTIME_DIR/scope.lock and so on)\n"
		"MOUNTPOINT   an existing directory with nothing mounted on it\n"
		"-o OPTIONS   scopefs and FUSE options, comma-separated; table=PATH must\n"
		"             agree with SOURCE; auto, noauto, user, users, nouser, owner,\n"
		"             group, nofail, _netdev, defaults, comment=, x-* are dropped\n"
		"-n           accepted (no mtab is written)\n"
		"-s           accepted (sloppy: unknown options reach the daemon anyway)\n"
		"-f           check everything, print nothing unless -v, mount nothing\n"
		"-v           print what is run\n"
		"-N NS        mount in mount namespace NS (a path or a process id)\n"
		"-h, --help   this help\n"
		"-V, --version\n"
		"\n"
		"Exit status: 0 mounted, 1 bad invocation, 2 system error (no daemon),\n"
		"32 the mount failed (the daemon's error is printed above).\n"
		"See mount.scopefs(8) and scopefs(8).\n");
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct helper h = { 0 };
	char *table = NULL, *tableopt = NULL, *daemon = NULL, *opts = NULL;
	char realmnt[PATH_MAX];
	const char *dargv[6];
	int c, ret = EX_USAGE_, status, i;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "o:nsfvN:t:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (parse_options(&h, optarg) < 0)
				goto out;
			break;
		case 'n':
		case 's':
		case 't': /* mount(8) passes the full type: nothing to do with it */
			break;
		case 'f':
			h.fake = true;
			break;
		case 'v':
			h.verbose = true;
			break;
		case 'N':
			h.ns = optarg;
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		case 'V':
			printf(PROG " (scopefs) %s\n", SCOPEFS_VERSION);
			ret = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, PROG ": expected SOURCE and MOUNTPOINT, got %d argument%s\n",
			argc - optind, argc - optind == 1 ? "" : "s");
		usage(stderr);
		goto out;
	}
	h.source = argv[optind];
	h.mountpoint = argv[optind + 1];

	if (resolve_table(&h, &table) < 0)
		goto out;
	if (h.ns && enter_namespace(h.ns) < 0) {
		ret = EX_SYSERR;
		goto out;
	}
	if (check_mountpoint(h.mountpoint, realmnt) < 0) {
		ret = EX_FAIL;
		goto out;
	}
	daemon = find_daemon(h.verbose);
	if (!daemon) {
		fprintf(stderr,
			PROG ": cannot find the scopefs daemon beside this program or at `%s`\n",
			SCOPEFS_DAEMON_PATH);
		ret = EX_SYSERR;
		goto out;
	}

	/* table= first, so that it is the one fsname= reports. */
	if (table) {
		if (asprintf(&tableopt, "table=%s", table) < 0 || opt_append(&opts, tableopt) < 0)
			goto nomem;
	}
	if (h.opts) {
		if (!opts) {
			opts = h.opts;
			h.opts = NULL;
		} else {
			char *both;

			if (asprintf(&both, "%s,%s", opts, h.opts) < 0)
				goto nomem;
			free(opts);
			opts = both;
		}
	}
	i = 0;
	dargv[i++] = daemon;
	if (opts) {
		dargv[i++] = "-o";
		dargv[i++] = opts;
	}
	/* Canonical, so that ps shows which mount a daemon serves. */
	dargv[i++] = realmnt;
	dargv[i] = NULL;

	if (h.verbose) {
		fprintf(stderr, PROG ": running");
		for (i = 0; dargv[i]; i++)
			fprintf(stderr, " %s", dargv[i]);
		fputc('\n', stderr);
	}
	if (h.fake) {
		ret = 0;
		goto out;
	}

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": cannot start `%s`: %s\n", daemon, strerror(errno));
		ret = EX_SYSERR;
		goto out;
	}
	if (pid == 0) {
		execv(daemon, (char *const *)dargv);
		fprintf(stderr, PROG ": cannot run `%s`: %s\n", daemon, strerror(errno));
		_exit(127);
	}
	/* The daemon's first process returns once the mount is up (or has
	 * failed); its child stays behind as the file system. */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waiting for `%s`: %s\n", daemon, strerror(errno));
			ret = EX_SYSERR;
			goto out;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		ret = 0;
	} else {
		if (WIFSIGNALED(status))
			fprintf(stderr, PROG ": `%s` was killed by signal %d\n", daemon,
				WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			ret = EX_SYSERR;
		fprintf(stderr, PROG ": mounting scopefs on `%s` failed\n", h.mountpoint);
		if (ret != EX_SYSERR)
			ret = EX_FAIL;
	}
	goto out;
nomem:
	fprintf(stderr, PROG ": out of memory\n");
	ret = EX_SYSERR;
out:
	free(h.table);
	free(h.opts);
	free(table);
	free(tableopt);
	free(daemon);
	free(opts);
	return ret;
}
