/* SPDX-License-Identifier: MIT */
/*
 * interpose - a program on the core that happens to define a function of
 * its own named like one of the core's internals (here sbuf_add, a likely
 * name for a string buffer).  The core must keep using its own: exits 0
 * when it does, 1 when the program's function was called in its place
 * (the core exports its internal helpers from libscope.so, so that the
 * executable's definition interposes them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scope.h"

static int calls;

/* The program's own helper, unrelated to the core's. */
void sbuf_add(void *buf, const void *data, size_t n);
void sbuf_add(void *buf, const void *data, size_t n)
{
	(void)buf;
	(void)data;
	(void)n;
	calls++;
}

int main(void)
{
	static const char text[] = "{\n  \"allocations\": []\n}";
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	struct scope_spec spec = { .name = "p", .pid = 1, .session = NULL };
	char *out = NULL;
	size_t len = 0;
	int rc;

	rc = scope_table_parse(text, strlen(text), "fixture", &t, &err);
	if (rc == 0)
		rc = scope_register(t, &spec, &err);
	if (rc == 0 && calls == 0)
		rc = scope_table_dump(t, &out, &len);
	if (calls) {
		printf("the core called the program's own sbuf_add %d times instead of its "
		       "internal one\n", calls);
		return 1;
	}
	if (rc < 0 || !out || !strstr(out, "\"pod_name\": \"p\"")) {
		printf("the core failed: %d %s\n", rc, err.msg);
		return 1;
	}
	printf("the core kept its own internals\n");
	free(out);
	scope_table_free(t);
	return 0;
}
