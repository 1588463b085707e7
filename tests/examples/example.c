/* scopefs from C through the mount, plain system calls: register, adopt,
 * set rules, a refusal, release.
 * Build: cc -o example example.c; run: ./example [MOUNT]  (or SCOPEFS_MOUNT=MOUNT) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One open, one write() holding the whole text: 0, or -1 and errno. */
static int put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	if (close(fd) < 0 || n < 0)
		return -1;
	return 0;
}

/* The file's content without its final newline (a static buffer). */
static const char *get(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n - 1 : 0] = '\0';
	return buf;
}

static void check(int rc, const char *what)
{
	if (rc < 0) {
		perror(what);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *mnt = argc > 1 ? argv[1] : getenv("SCOPEFS_MOUNT");
	char pid[32];

	check(chdir(mnt ? mnt : "/run/scopes"), "chdir");
	check(mkdir("worker", 0755), "mkdir worker"); /* registers, owned by this process */
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	check(put("worker/pid", pid), "adopt"); /* adopts */
	check(put("worker/allow", "write recursive /srv/proj/src\nread recursive /srv/proj\n"),
	      "allow");
	printf("worker: pid %s, ", get("worker/pid"));
	printf("session %s\n", get("worker/session"));
	printf("%s\n", get("worker/allow"));

	check(mkdir("rival", 0755), "mkdir rival");
	if (put("rival/allow", "write recursive /srv/proj/src/lib\n") < 0 && errno == EBUSY)
		printf("rival refused: EBUSY\n"); /* worker holds that scope */

	check(rmdir("rival"), "rmdir rival"); /* releases */
	check(rmdir("worker"), "rmdir worker");
	printf("released\n");
	return 0;
}
