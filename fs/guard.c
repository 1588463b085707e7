/* SPDX-License-Identifier: MIT */
/*
 * guard.c - what a crash leaves behind, handled.
 *
 * A daemon that died leaves its mount answering ENOTCONN: a new daemon
 * detaches it and mounts anew.  And a daemon killed while one of its
 * threads waits in the kernel for a directory lock (an invalidation) that
 * a client's request holds cannot finish dying: the client waits for an
 * answer that will never come, the device stays open, the table's flock
 * stays held.  A small child process watches for the death of the thread
 * that runs the session and aborts the connection through fusectl, which
 * answers the client, frees the lock and lets the daemon die.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scopefs.h"

#define FUSECTL "/sys/fs/fuse/connections"

int guard_dead_mount(const char *mountpoint)
{
	struct stat st;
	pid_t pid;
	int status;

	if (stat(mountpoint, &st) == 0 || (errno != ENOTCONN && errno != ECONNABORTED))
		return 0;
	if (umount2(mountpoint, MNT_DETACH) < 0) {
		if (errno != EPERM)
			return -errno;
		/* Not root: the setuid helper may detach a mount of ours. */
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			execlp("fusermount3", "fusermount3", "-u", "-z", mountpoint, (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			return -EBUSY;
	}
	return 1;
}

/* mountinfo escapes ' ', '\t', '\n' and '\\' in octal. */
static bool mountinfo_path_is(const char *field, const char *path)
{
	for (; *field && *path; path++) {
		if (field[0] == '\\' && field[1] >= '0' && field[1] <= '3' && field[2] && field[3]) {
			if (*path != (char)((field[1] - '0') * 64 + (field[2] - '0') * 8 + (field[3] - '0')))
				return false;
			field += 4;
		} else if (*field++ != *path) {
			return false;
		}
	}
	return !*field && !*path;
}

/* The device minor of the last mount at MOUNTPOINT, read from mountinfo:
 * a stat() of our own mount would wait for an answer no thread gives yet. */
static int mount_minor(const char *mountpoint, unsigned *minor_out)
{
	char line[8192];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char mnt[4096];

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) == 3 &&
		    mountinfo_path_is(mnt, mountpoint)) {
			*minor_out = min;
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* The abort file of the connection mounted at MOUNTPOINT, opened now: the
 * open file can only ever abort this connection, even if its number is
 * reused later. */
static int open_abort(const char *mountpoint)
{
	char path[64];
	unsigned min;
	int fd, rc = mount_minor(mountpoint, &min);

	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), FUSECTL "/%u/abort", min);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && geteuid() == 0 &&
	    mount("fusectl", FUSECTL, "fusectl", 0, NULL) == 0)
		fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

pid_t guard_start(const char *mountpoint)
{
	int fd = open_abort(mountpoint), sig;
	pid_t parent = getpid(), pid;
	sigset_t set;

	if (fd < 0)
		return fd; /* no fusectl: no guard, the daemon still works */
	pid = fork();
	if (pid != 0) {
		close(fd);
		return pid < 0 ? -errno : pid;
	}
	/* The child: wait for the signal sent when the forking thread (the
	 * session's) ends, then abort.  A clean stop kills us first.  It keeps
	 * no other descriptor: a copy of the device or of the table would keep
	 * the connection alive or the table's flock held. */
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0U, 0);
	prctl(PR_SET_NAME, "scopefs-guard"); /* what ps and pgrep show */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1) < 0)
		_exit(1);
	if (getppid() == parent) {
		while (sigwait(&set, &sig) != 0)
			;
	}
	if (write(fd, "1", 1) < 0)
		_exit(1);
	_exit(0);
}

void guard_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
