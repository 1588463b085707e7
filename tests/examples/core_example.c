/* The core library, on the table file itself (beside a mount, or without
 * one): register a pod, a refusal, release.
 * Build: cc -o core_example core_example.c $(pkg-config --cflags --libs scopefs-core)
 * Run: ./core_example [TABLE]   (default: the original's table path) */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <scope.h>

/* The original's liveness test: kill(pid, 0), plus the recorded start time. */
static bool alive(void *ctx, const struct scope_alloc *a)
{
	(void)ctx;
	return scope_pid_alive(a->pid, a->pid_start);
}

static int fail(const struct scope_err *err)
{
	fprintf(stderr, "%s\n", err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	struct scope_err err;
	char *path = NULL;

	if (argc > 1)
		path = argv[1];
	else if (scope_default_path(&path, &err) < 0) /* the original's resolution */
		return fail(&err);
	/* README begin */
	char src[] = "/srv/proj/src", lib[] = "/srv/proj/src/lib";
	struct scope_rule rule = { .target = src, .perm = SCOPE_WRITE, .recursive = true };
	struct scope_rule sub = { .target = lib, .perm = SCOPE_WRITE, .recursive = true };
	struct scope_spec spec = { .name = "worker", .pid = getpid(), .rules = &rule, .nrules = 1 };
	struct scope_spec rival = { .name = "rival", .pid = getpid(), .rules = &sub, .nrules = 1 };
	struct scope_liveness liveness = { .alive = alive };
	struct scope_file *f;
	struct scope_table *t;

	if (scope_file_open(&f, path, &err) < 0 ||
	    scope_file_lock(f, &t, &err) < 0)   /* flock; re-read only if it changed */
		return fail(&err);
	scope_reclaim_stale(t, &liveness);      /* dead owners go, delegates reparented */
	if (scope_register(t, &spec, &err) < 0 ||
	    scope_file_save(f, &err) < 0)       /* crash-safe; writes only what changed */
		return fail(&err);
	printf("registered worker, session %s\n", scope_find(t, "worker")->session);
	if (scope_register(t, &rival, &err) == -EBUSY)
		printf("rival refused: %s\n", err.msg); /* the table is unchanged */
	if (scope_release(t, "worker", &err) < 0 || scope_file_save(f, &err) < 0)
		return fail(&err);
	scope_file_unlock(f);
	scope_file_free(f);
	/* README end */
	printf("released\n");
	if (argc < 2)
		free(path);
	return 0;
}
