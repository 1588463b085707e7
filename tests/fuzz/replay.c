/* SPDX-License-Identifier: MIT */
/*
 * replay.c - runs a fuzz harness over committed inputs without libFuzzer,
 * so that any compiler (and CI's `meson test`) checks them.
 *
 *   replay DIR|FILE...                 every input must pass
 *   replay --expect-crash DIR|FILE...  every input must still fail (each
 *                                      runs in a child): reproducers of open
 *                                      core bugs; a pass means the bug is
 *                                      fixed and the file belongs in the
 *                                      corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool expect_crash;
static int failures, ran;

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	uint8_t *b = malloc(cap);

	if (!f || !b) {
		if (f)
			fclose(f);
		free(b);
		return -1;
	}
	for (;;) {
		size_t r;

		if (n == cap) {
			uint8_t *nb = realloc(b, cap *= 2);

			if (!nb) {
				free(b);
				fclose(f);
				return -1;
			}
			b = nb;
		}
		r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*buf = b;
	*len = n;
	return 0;
}

static void run_one(const char *path)
{
	uint8_t *buf;
	size_t len;
	pid_t pid;
	int status;

	if (read_file(path, &buf, &len) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		failures++;
		return;
	}
	ran++;
	if (!expect_crash) {
		/* A copy of exactly LEN bytes, as libFuzzer passes it. */
		uint8_t *exact = malloc(len ? len : 1);

		memcpy(exact, buf, len);
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
		free(buf);
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		/* the abort is expected: keep its report short */
		LLVMFuzzerTestOneInput(buf, len);
		_exit(0);
	}
	free(buf);
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		fprintf(stderr, "replay: %s: fork: %s\n", path, strerror(errno));
		failures++;
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		fprintf(stderr,
			"replay: %s no longer fails: the bug looks fixed; move it into the corpus\n",
			path);
		failures++;
	} else {
		fprintf(stderr, "replay: %s still fails, as expected\n", path);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		failures++;
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		run_one(path);
		return;
	}
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		failures++;
		return;
	}
	while ((e = readdir(d))) {
		char **nn;

		if (e->d_name[0] == '.')
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn || asprintf(&nn[n], "%s/%s", path, e->d_name) < 0) {
			fprintf(stderr, "replay: out of memory\n");
			exit(2);
		}
		names = nn;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		run_path(names[i]);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	int i = 1;

	if (i < argc && strcmp(argv[i], "--expect-crash") == 0) {
		expect_crash = true;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [--expect-crash] DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (; i < argc; i++)
		run_path(argv[i]);
	fprintf(stderr, "replay: %d inputs, %d failures\n", ran, failures);
	if (ran == 0)
		return 1;
	return failures ? 1 : 0;
}
