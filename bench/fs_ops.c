/* SPDX-License-Identifier: MIT */
/*
 * fs_ops - operations per second through a scopefs mount, beside the same
 * system calls on a plain directory (tmpfs):
 *   cycles: mkdir POD, write its allow file, rmdir POD
 *           (plain: mkdir, create+write a file, unlink, rmdir)
 *   reads:  open+read+close of a pod's pid file (plain: of a small file)
 *
 *   fs_ops -m MOUNT -d PLAINDIR -p POD [-t SECONDS]
 *
 * Prints one line: cycles/s through the mount and plain, reads/s both ways,
 * and the ratios.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "fs_ops: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void write_file(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_TRUNC | flags, 0644);

	if (fd < 0)
		fail("open", path);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail("write", path);
	if (close(fd) < 0)
		fail("close", path);
}

static double cycles(const char *dir, bool mount, double secs)
{
	static const char rules[] = "write recursive /bench/cycle\n";
	char pod[4096], file[4200];
	double t0 = now_s(), el;
	long n = 0;

	snprintf(pod, sizeof(pod), "%s/bench-cycle", dir);
	snprintf(file, sizeof(file), "%s/allow", pod);
	do {
		if (mkdir(pod, 0755) < 0)
			fail("mkdir", pod);
		write_file(file, rules, mount ? 0 : O_CREAT);
		if (!mount && unlink(file) < 0)
			fail("unlink", file);
		if (rmdir(pod) < 0)
			fail("rmdir", pod);
		n++;
	} while ((el = now_s() - t0) < secs);
	return n / el;
}

static double reads(const char *path, double secs)
{
	char buf[64];
	double t0 = now_s(), el;
	long n = 0;

	do {
		for (int i = 0; i < 100; i++) {
			int fd = open(path, O_RDONLY);

			if (fd < 0)
				fail("open", path);
			if (read(fd, buf, sizeof(buf)) <= 0)
				fail("read", path);
			close(fd);
		}
		n += 100;
	} while ((el = now_s() - t0) < secs);
	return n / el;
}

int main(int argc, char **argv)
{
	const char *mnt = NULL, *plain = NULL, *pod = NULL;
	char path[4200], ppath[4200];
	double secs = 2.0, cm, cp, rm, rp;
	int opt;

	while ((opt = getopt(argc, argv, "m:d:p:t:")) != -1) {
		switch (opt) {
		case 'm': mnt = optarg; break;
		case 'd': plain = optarg; break;
		case 'p': pod = optarg; break;
		case 't': secs = atof(optarg); break;
		default:
			fprintf(stderr, "usage: fs_ops -m MOUNT -d PLAINDIR -p POD [-t SECONDS]\n");
			return 2;
		}
	}
	if (!mnt || !plain || !pod) {
		fprintf(stderr, "usage: fs_ops -m MOUNT -d PLAINDIR -p POD [-t SECONDS]\n");
		return 2;
	}
	cm = cycles(mnt, true, secs);
	cp = cycles(plain, false, secs);
	snprintf(path, sizeof(path), "%s/%s/pid", mnt, pod);
	snprintf(ppath, sizeof(ppath), "%s/pid", plain);
	write_file(ppath, "12345\n", O_CREAT);
	rm = reads(path, secs);
	rp = reads(ppath, secs);
	unlink(ppath);
	printf("%12.0f %12.0f %8.1fx %12.0f %12.0f %8.1fx\n", cm, cp, cp / cm, rm, rp, rp / rm);
	return 0;
}
