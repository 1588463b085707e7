/* SPDX-License-Identifier: MIT */
/*
 * file.c - the table file, shared with the original's pods through their
 * protocol: an exclusive flock on the file itself for each whole
 * read-modify-write, and the file rewritten in place.
 *
 * Crash safety on that protocol.  A save writes, in order:
 *   1. the journal (TABLE.journal): where the new bytes go and the bytes,
 *      with a checksum; fdatasync;
 *   2. a poison byte (NUL) over the table's first byte; fdatasync;
 *   3. the new bytes in place (only from the first byte that changed),
 *      the new length; fdatasync;
 *   4. the real first byte.
 * While the poison is there no JSON parser accepts the file, so the
 * original's pods refuse it rather than read a half-written table; the
 * next lock by this core sees the poison and finishes the save from the
 * journal.  Without the poison the file is whole: the old table (the
 * save stopped before step 2) or the new one (after step 4).
 *
 * Cache.  The table's canonical text is kept; a lock compares the file
 * with it and parses again only when another writer changed it.  Where
 * the file system gives every change a new ctime once the old one was
 * read (multigrain timestamps, probed at open), an unchanged fstat()
 * after our own last look proves the bytes unchanged and the comparison
 * is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "internal.h"

#define POISON '\0'
#define JMAGIC "SCOPEJ01"

struct jheader {
	char magic[8];
	uint64_t from;	  /* offset of the first new byte */
	uint64_t newlen;  /* length of the whole new file */
	uint64_t first;	  /* the new file's first byte */
	uint64_t sum;	  /* hash64 of the header's other fields and the bytes */
};

struct scope_file {
	char *path, *jpath;
	int fd, jfd;
	bool locked;
	struct scope_table *table;
	/* The file's bytes when they differ from table->text (a foreign,
	 * non-canonical file), else empty: the file is table->text. */
	struct sbuf foreign;
	bool known;	 /* the cache describes the file's current content */
	bool fine_ctime; /* each change after an fstat gets a new ctime */
	bool volatile_fs; /* tmpfs/ramfs: nothing survives power loss, no fdatasync */
	struct stat now;  /* fstat of the locked file, taken by the lock */
	struct stat seen; /* fstat after our last read or write (valid when known) */
	bool dead;	 /* a fault-injected save "killed" this writer */
	long fault_step, fault_byte, step;
};

static int io_err(struct scope_err *err, int code, const char *what, const char *path)
{
	return err_set(err, SCOPE_EIO, code, "I/O error on scope.lock: %s `%s`: %s", what, path,
			  strerror(-code));
}

/* mkdir -p with mode 0700 for the directories that are missing. */
static int make_parents(const char *path)
{
	char *dir = strdup(path), *p;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	p = strrchr(dir, '/');
	if (!p || p == dir) {
		free(dir);
		return 0;
	}
	*p = '\0';
	for (p = dir + 1; rc == 0; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		*p = c;
		if (c == '\0')
			break;
	}
	free(dir);
	return rc;
}

static int check_safe(int fd, const char *path, struct scope_err *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return io_err(err, -errno, "cannot stat", path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, SCOPE_EUNSAFE, -EPERM, "table `%s` is not a regular file",
				  path);
	if (st.st_uid != geteuid())
		return err_set(err, SCOPE_EUNSAFE, -EPERM,
				  "table `%s` is owned by uid %u, not by this user (uid %u)", path,
				  (unsigned)st.st_uid, (unsigned)geteuid());
	return 0;
}

static int open_checked(const char *path, int flags, struct scope_err *err)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		if (errno == ELOOP)
			return err_set(err, SCOPE_EUNSAFE, -EPERM,
					  "table `%s` is a symbolic link; refusing to follow it", path);
		if (errno == EISDIR)
			return err_set(err, SCOPE_EUNSAFE, -EPERM,
					  "table `%s` is not a regular file", path);
		return -errno;
	}
	if (check_safe(fd, path, err) < 0) {
		close(fd);
		return err ? err->code : -EPERM;
	}
	return fd;
}

/* Does the file system holding PATH give a change that follows an fstat a
 * ctime of its own, even within one clock tick?  Asked of an unnamed file
 * in the same directory, a few times over. */
/* open(2) of the directory that holds PATH. */
static int open_dir_of(const char *path, int flags, mode_t mode)
{
	char *dir = strdup(path), *slash;
	int fd;

	if (!dir)
		return -1;
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	fd = open(slash ? dir : ".", flags | O_CLOEXEC, mode);
	free(dir);
	return fd;
}

static bool probe_fine_ctime(const char *path)
{
	struct stat a, b;
	bool fine = true;
	int fd = open_dir_of(path, O_TMPFILE | O_RDWR, 0600);

	if (fd < 0)
		return false;
	for (int i = 0; i < 16 && fine; i++) {
		fine = fstat(fd, &a) == 0 && pwrite(fd, "x", 1, 0) == 1 && fstat(fd, &b) == 0 &&
		       (a.st_ctim.tv_sec != b.st_ctim.tv_sec || a.st_ctim.tv_nsec != b.st_ctim.tv_nsec);
	}
	close(fd);
	return fine;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Remember what the file looks like now that the cache matches it. */
static void note_seen(struct scope_file *f)
{
	if (fstat(f->fd, &f->seen) < 0)
		f->known = false;
	f->now = f->seen;
}

int scope_file_open(struct scope_file **out, const char *path, struct scope_err *err)
{
	struct scope_file *f;
	int rc;

	f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
	f->fd = f->jfd = -1;
	f->fault_step = -1;
	f->path = strdup(path);
	if (!f->path || asprintf(&f->jpath, "%s.journal", path) < 0) {
		f->jpath = NULL;
		rc = err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = make_parents(path);
	if (rc < 0) {
		rc = io_err(err, rc, "cannot create the directory of", path);
		goto fail;
	}
	rc = open_checked(path, O_RDWR | O_CREAT, err);
	if (rc < 0) {
		if (!err || err->kind != SCOPE_EUNSAFE)
			rc = io_err(err, rc, "cannot open", path);
		goto fail;
	}
	f->fd = rc;
	f->fine_ctime = probe_fine_ctime(path);
	{
		struct statfs sfs;

		f->volatile_fs = fstatfs(f->fd, &sfs) == 0 &&
				 (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
	}
	*out = f;
	return 0;
fail:
	scope_file_free(f);
	return rc;
}

void scope_file_free(struct scope_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd); /* drops the flock too */
	if (f->jfd >= 0)
		close(f->jfd);
	scope_table_free(f->table);
	sbuf_release(&f->foreign);
	free(f->path);
	free(f->jpath);
	free(f);
}

const char *scope_file_path(const struct scope_file *f)
{
	return f->path;
}

struct scope_table *scope_file_table(const struct scope_file *f)
{
	return f->table;
}

void scope_file_fault_after(struct scope_file *f, long step, long byte)
{
	f->fault_step = step;
	f->fault_byte = byte;
}

/* ---- raw I/O ---- */

static int pwrite_all(int fd, const char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static int read_all(int fd, struct sbuf *b)
{
	char chunk[65536];
	off_t off = 0;

	sbuf_truncate(b, 0);
	for (;;) {
		ssize_t r = pread(fd, chunk, sizeof(chunk), off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		sbuf_add(b, chunk, (size_t)r);
		off += r;
	}
	return b->oom ? -ENOMEM : 0;
}

/* Does the file hold exactly LEN bytes equal to P?  Reads in chunks, so no
 * second copy of a large table is needed. */
static int same_content(int fd, const char *p, size_t len, bool *same)
{
	char chunk[65536];
	off_t off = 0;
	struct stat st;

	*same = false;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size != len)
		return 0;
	while ((size_t)off < len) {
		ssize_t r = pread(fd, chunk, sizeof(chunk), off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0 || memcmp(chunk, p + off, (size_t)r) != 0)
			return 0;
		off += r;
	}
	/* Nothing past LEN either. */
	*same = pread(fd, chunk, 1, off) == 0;
	return 0;
}

/* ---- save steps, each a place where a writer may die ---- */

/* Returns 1 if the fault injected at this step "kills" the writer. */
static int step_fault(struct scope_file *f, size_t *n)
{
	long s = f->step++;

	if (f->fault_step < 0 || s != f->fault_step)
		return 0;
	if (n && (size_t)f->fault_byte < *n)
		*n = (size_t)f->fault_byte;
	return 1;
}

static int do_write(struct scope_file *f, int fd, const char *p, size_t n, off_t off)
{
	int killed = step_fault(f, &n), rc = pwrite_all(fd, p, n, off);

	if (rc < 0)
		return rc;
	return killed ? -EINTR : 0;
}

static int do_sync(struct scope_file *f, int fd)
{
	if (step_fault(f, NULL))
		return -EINTR;
	/* Syncs order what reaches the disk; a killed writer needs none. */
	if (f->volatile_fs)
		return 0;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int do_truncate(struct scope_file *f, int fd, off_t len)
{
	if (step_fault(f, NULL))
		return -EINTR;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

static uint64_t journal_sum(const struct jheader *h, const char *bytes, size_t n)
{
	uint64_t v[3] = { h->from, h->newlen, h->first };

	return hash64(v, sizeof(v)) ^ hash64(bytes, n);
}

/* Makes the journal's name durable: without it a power loss could keep the
 * poisoned table and lose the journal that finishes it. */
static void sync_dir(const char *path)
{
	int fd = open_dir_of(path, O_RDONLY | O_DIRECTORY, 0);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static int open_journal(struct scope_file *f, bool create, struct scope_err *err)
{
	struct stat st;
	int fd;

	/* A journal removed since we opened it (a cleaner, a user) would take
	 * the next save into an unlinked file, and a crash then could not be
	 * finished: write only to the journal that has the name. */
	if (f->jfd >= 0 && fstat(f->jfd, &st) == 0 && st.st_nlink > 0)
		return 0;
	if (f->jfd >= 0) {
		close(f->jfd);
		f->jfd = -1;
	}
	fd = open_checked(f->jpath, O_RDWR, err);
	if (fd == -ENOENT && create) {
		fd = open_checked(f->jpath, O_RDWR | O_CREAT | O_EXCL, err);
		if (fd >= 0 && !f->volatile_fs)
			sync_dir(f->jpath);
	}
	if (fd < 0) {
		if (fd == -ENOENT && !create)
			return fd;
		if (!err || err->kind != SCOPE_EUNSAFE)
			return io_err(err, fd, "cannot open the journal", f->jpath);
		return fd;
	}
	f->jfd = fd;
	return 0;
}

/* Writes NEW (len bytes) over the file, which holds OLDLEN bytes equal to
 * NEW before FROM. */
static int write_table(struct scope_file *f, const char *nw, size_t len, size_t from,
		       size_t oldlen, struct scope_err *err)
{
	struct jheader h;
	struct sbuf j = { 0 };
	size_t start;
	int rc;

	rc = open_journal(f, true, err);
	if (rc < 0)
		return rc;
	memcpy(h.magic, JMAGIC, 8);
	h.from = from;
	h.newlen = len;
	h.first = (unsigned char)nw[0];
	h.sum = journal_sum(&h, nw + from, len - from);
	sbuf_add(&j, &h, sizeof(h));
	sbuf_add(&j, nw + from, len - from);
	if (j.oom)
		return err_set(err, SCOPE_EIO, -ENOMEM, "out of memory");
	f->step = 0;
	rc = do_write(f, f->jfd, j.p, j.len, 0);
	sbuf_release(&j);
	if (rc == 0)
		rc = do_sync(f, f->jfd);
	if (rc == 0)
		rc = do_write(f, f->fd, &(char){ POISON }, 1, 0);
	if (rc == 0)
		rc = do_sync(f, f->fd);
	/* Byte 0 is written last, so a stop anywhere before leaves the poison. */
	start = from ? from : 1;
	if (rc == 0 && start < len)
		rc = do_write(f, f->fd, nw + start, len - start, (off_t)start);
	if (rc == 0 && len < oldlen)
		rc = do_truncate(f, f->fd, (off_t)len);
	if (rc == 0)
		rc = do_sync(f, f->fd);
	if (rc == 0)
		rc = do_write(f, f->fd, nw, 1, 0);
	/* The next save overwrites the journal: this one must be on disk first,
	 * or a power loss then could find the poison with a torn journal. */
	if (rc == 0)
		rc = do_sync(f, f->fd);
	if (rc == -EINTR && f->fault_step >= 0) {
		f->dead = true;
		return err_set(err, SCOPE_EIO, -EINTR,
				  "I/O error on scope.lock: save of `%s` stopped by fault injection",
				  f->path);
	}
	if (rc < 0)
		return io_err(err, rc, "cannot write", f->path);
	return 0;
}

/* The file starts with the poison: finish the save its journal holds. */
static int recover(struct scope_file *f, struct scope_err *err)
{
	struct sbuf j = { 0 };
	struct jheader h;
	struct stat st;
	size_t n, start;
	const char *bytes;
	int rc;

	rc = open_journal(f, false, err);
	if (rc == -ENOENT)
		goto torn;
	if (rc < 0)
		return rc;
	rc = read_all(f->jfd, &j);
	if (rc < 0) {
		sbuf_release(&j);
		return io_err(err, rc, "cannot read the journal", f->jpath);
	}
	if (j.len < sizeof(h))
		goto torn_free;
	memcpy(&h, j.p, sizeof(h));
	if (memcmp(h.magic, JMAGIC, 8) != 0 || h.from > h.newlen || h.newlen == 0 ||
	    h.newlen - h.from > j.len - sizeof(h))
		goto torn_free;
	n = (size_t)(h.newlen - h.from);
	bytes = j.p + sizeof(h);
	if (journal_sum(&h, bytes, n) != h.sum)
		goto torn_free;
	if (fstat(f->fd, &st) < 0) {
		rc = io_err(err, -errno, "cannot stat", f->path);
		goto out;
	}
	start = h.from ? (size_t)h.from : 1;
	rc = pwrite_all(f->fd, bytes + (start - h.from), (size_t)(h.newlen - start), (off_t)start);
	if (rc == 0 && (uint64_t)st.st_size > h.newlen && ftruncate(f->fd, (off_t)h.newlen) < 0)
		rc = -errno;
	if (rc == 0 && fdatasync(f->fd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = pwrite_all(f->fd, &(char){ (char)h.first }, 1, 0);
	if (rc < 0)
		rc = io_err(err, rc, "cannot finish an interrupted save of", f->path);
out:
	sbuf_release(&j);
	return rc;
torn_free:
	sbuf_release(&j);
torn:
	return err_set(err, SCOPE_ECORRUPT, -EBADMSG,
			  "I/O error on scope.lock: `%s` was left half-written and its journal `%s` "
			  "cannot finish the save; the file is left as it is",
			  f->path, f->jpath);
}

/* ---- locking ---- */

/* The path may have been replaced (or removed) while we waited: lock the
 * file that is there now, as a new opener would. */
static int follow_replacement(struct scope_file *f, struct scope_err *err)
{
	struct stat *a = &f->now, b;
	int fd;

	if (fstat(f->fd, a) < 0)
		return io_err(err, -errno, "cannot stat", f->path);
	if (stat(f->path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino)
		return 0;
	fd = open_checked(f->path, O_RDWR | O_CREAT, err);
	if (fd < 0)
		return (err && err->kind == SCOPE_EUNSAFE) ? fd : io_err(err, fd, "cannot open", f->path);
	close(f->fd);
	f->fd = fd;
	f->known = false;
	return 1;
}

static int take_lock(struct scope_file *f, bool wait, struct scope_err *err)
{
	for (;;) {
		int rc;

		if (flock(f->fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EWOULDBLOCK)
				return err_set(err, SCOPE_EIO, -EWOULDBLOCK,
						  "table `%s` is locked by another process", f->path);
			return io_err(err, -errno, "cannot lock", f->path);
		}
		rc = follow_replacement(f, err);
		if (rc <= 0)
			return rc;
	}
}

/* Bring the cache up to date with the file; the table's change log gets
 * what another writer changed. */
static int refresh(struct scope_file *f, struct scope_err *err)
{
	struct sbuf buf = { 0 };
	struct scope_table *t = NULL;
	bool same = false;
	int rc;

	if (f->known && f->table) {
		const struct sbuf *mine = f->foreign.p ? &f->foreign : &f->table->text;

		/* f->now was taken under the lock, after any replacement. */
		if (f->fine_ctime && same_stat(&f->now, &f->seen))
			return 0;
		rc = same_content(f->fd, mine->p, mine->len, &same);
		if (rc < 0)
			return io_err(err, rc, "cannot read", f->path);
		if (same) {
			note_seen(f);
			return 0;
		}
	}
	rc = read_all(f->fd, &buf);
	if (rc < 0) {
		sbuf_release(&buf);
		return io_err(err, rc, "cannot read", f->path);
	}
	if (buf.len && buf.p[0] == POISON) {
		rc = recover(f, err);
		if (rc == 0)
			rc = read_all(f->fd, &buf);
		if (rc < 0) {
			sbuf_release(&buf);
			return rc < 0 && err && err->kind != SCOPE_OK ? rc : io_err(err, rc, "cannot read", f->path);
		}
	}
	{
		/* Entries in the unchanged start and end of the file are copied
		 * from the cache instead of parsed again. */
		struct reuse r = { 0 }, *rp = NULL;
		const struct scope_table *old = f->table;

		if (old && f->known && !f->foreign.p && old->text_valid && !old->modified &&
		    old->first_change == SIZE_MAX && buf.p) {
			size_t n = old->text.len < buf.len ? old->text.len : buf.len;

			while (r.prefix < n && old->text.p[r.prefix] == buf.p[r.prefix])
				r.prefix++;
			while (r.suffix < n - r.prefix &&
			       old->text.p[old->text.len - 1 - r.suffix] == buf.p[buf.len - 1 - r.suffix])
				r.suffix++;
			r.old = old;
			r.oldlen = old->text.len;
			rp = &r;
		}
		rc = json_parse_table(buf.p ? buf.p : "", buf.len, f->path, rp, &t, err);
	}
	if (rc < 0) {
		sbuf_release(&buf);
		return rc;
	}
	if (f->table) {
		const struct scope_change *ch;
		size_t n = scope_table_changes(f->table, &ch);

		/* Changes not yet taken by the caller stay first in the log. */
		for (size_t i = 0; i < n; i++)
			table_note(t, ch[i].kind, ch[i].name, ch[i].detail ? "%s" : NULL, ch[i].detail);
		table_diff(f->table, t);
		scope_table_free(f->table);
	}
	f->table = t;
	if (buf.len == t->text.len && memcmp(buf.p ? buf.p : "", t->text.p, buf.len) == 0) {
		sbuf_release(&buf);
		sbuf_release(&f->foreign);
	} else {
		sbuf_release(&f->foreign);
		f->foreign = buf;
		if (!f->foreign.p)
			sbuf_add(&f->foreign, "", 0);
	}
	f->known = true;
	note_seen(f);
	return 0;
}

static int lock_common(struct scope_file *f, bool wait, struct scope_table **table,
		       struct scope_err *err)
{
	int rc;

	if (f->dead)
		return err_set(err, SCOPE_EIO, -EIO, "table handle of `%s` is unusable after a stopped save",
				  f->path);
	if (f->locked)
		return err_set(err, SCOPE_EINVAL, -EDEADLK, "table `%s` is already locked by this handle",
				  f->path);
	rc = take_lock(f, wait, err);
	if (rc < 0)
		return rc;
	f->locked = true;
	rc = refresh(f, err);
	if (rc < 0) {
		scope_file_unlock(f);
		return rc;
	}
	if (table)
		*table = f->table;
	return 0;
}

int scope_file_lock(struct scope_file *f, struct scope_table **table, struct scope_err *err)
{
	return lock_common(f, true, table, err);
}

int scope_file_trylock(struct scope_file *f, struct scope_table **table, struct scope_err *err)
{
	return lock_common(f, false, table, err);
}

static bool table_changed(const struct scope_table *t)
{
	return t->modified;
}

int scope_file_save(struct scope_file *f, struct scope_err *err)
{
	struct scope_table *t = f->table;
	size_t from, oldlen;
	int rc;

	if (!f->locked || !t)
		return err_set(err, SCOPE_EINVAL, -EINVAL, "table `%s` is not locked", f->path);
	/* Nothing changed: the file stays as it is, whatever its form. */
	if (!table_changed(t))
		return 0;
	/* The file is as the lock found it (or as our last save left it). */
	oldlen = (size_t)f->now.st_size;
	rc = table_render(t, &from);
	if (rc < 0) {
		f->known = false;
		return err_set(err, SCOPE_EIO, rc, "out of memory");
	}
	/* Renders since the last save (scope_table_dump) moved the start. */
	if (t->dirty_from < from)
		from = t->dirty_from;
	if (from > t->text.len)
		from = t->text.len;
	if (f->foreign.p) {
		/* The file was not in canonical form: compare to find the start. */
		size_t n = oldlen < t->text.len ? oldlen : t->text.len;

		for (from = 0; from < n && f->foreign.p[from] == t->text.p[from]; from++)
			;
		if (from == n && oldlen == t->text.len) {
			sbuf_release(&f->foreign);
			t->modified = false;
			t->dirty_from = SIZE_MAX;
			return 0;
		}
	}
	rc = write_table(f, t->text.p, t->text.len, from, oldlen, err);
	if (rc < 0) {
		f->known = false; /* the file is in an unknown state: re-read it */
		return rc;
	}
	sbuf_release(&f->foreign);
	t->modified = false;
	t->dirty_from = SIZE_MAX;
	note_seen(f);
	return 0;
}

void scope_file_unlock(struct scope_file *f)
{
	if (!f->locked)
		return;
	/* Unsaved changes are dropped: the next lock reads the file again. */
	if (f->table && (table_changed(f->table)))
		f->known = false;
	flock(f->fd, LOCK_UN);
	f->locked = false;
}
