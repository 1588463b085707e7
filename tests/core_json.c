/* SPDX-License-Identifier: MIT */
/*
 * The table's JSON: what the original writes is read and written back
 * byte for byte, unknown fields survive, defaults are the original's,
 * and a file that does not parse is refused and left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_testutil.h"

static struct scope_table *parse_fixture(const char *name, char **text)
{
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	size_t len;
	char *buf = tu_fixture(name, &len);
	int rc = scope_table_parse(buf, len, name, &t, &err);

	assert_scope_ok(rc, err);
	assert_non_null(t);
	if (text)
		*text = buf;
	else
		free(buf);
	return t;
}

static void fixtures_round_trip(void **state)
{
	static const char *const names[] = { "tree.json", "minimal.json", "reclaim-after.json",
					     "empty-after-release.json" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *text, *dump;
		struct scope_table *t = parse_fixture(names[i], &text);

		dump = tu_dump(t);
		if (strcmp(dump, text)) {
			print_error("%s does not dump as read:\n%s\n", names[i], dump);
			fail();
		}
		free(dump);
		free(text);
		scope_table_free(t);
	}
}

static void tree_fixture_content(void **state)
{
	struct scope_table *t = parse_fixture("tree.json", NULL);
	struct scope_alloc *a;

	(void)state;
	assert_int_equal(scope_table_count(t), 5);
	a = scope_find(t, "worker-core-tests");
	assert_non_null(a);
	assert_string_equal(a->parent, "worker-core");
	assert_null(a->session);
	assert_int_equal(a->pid, 1531);
	assert_false(a->rules[0].recursive);
	a = scope_find(t, "solo pod \xc3\xbc");
	assert_non_null(a);
	assert_string_equal(a->socket, "/tmp/with space/sock");
	assert_string_equal(a->rules[1].target, "/srv/data/a \"quoted\" dir");
	assert_int_equal(a->rules[1].perm, SCOPE_READ);
	assert_string_equal(a->session, "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f7");
	assert_null(a->parent);
	/* delegation tree walk */
	a = scope_first_child(t, scope_find(t, "orchestrator"));
	assert_string_equal(a->name, "worker-core");
	a = scope_next_sibling(t, a);
	assert_string_equal(a->name, "reader");
	assert_null(scope_next_sibling(t, a));
	assert_null(scope_first_child(t, scope_find(t, "reader")));
	scope_table_free(t);
}

static bool dead_4194000(void *ctx, const struct scope_alloc *a)
{
	(void)ctx;
	return a->pid != 4194000;
}

static void reclaim_fixture(void **state)
{
	struct scope_liveness lv = { .alive = dead_4194000 };
	struct scope_table *t = parse_fixture("reclaim-before.json", NULL);
	char *want = tu_fixture("reclaim-after.json", NULL), *dump;

	(void)state;
	assert_string_equal(scope_find(t, "ctl")->rules[0].target, "/weird\npath\\x");
	assert_int_equal(scope_reclaim_stale(t, &lv), 1);
	dump = tu_dump(t);
	assert_string_equal(dump, want);
	free(dump);
	free(want);
	scope_table_free(t);
}

static void release_minimal_fixture(void **state)
{
	struct scope_table *t = parse_fixture("minimal.json", NULL);
	char *want = tu_fixture("empty-after-release.json", NULL), *dump;
	struct scope_err err = { 0 };
	int rc;

	(void)state;
	rc = scope_release(t, "only", &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	assert_string_equal(dump, want);
	free(dump);
	free(want);
	scope_table_free(t);
}

/* A table built by the core's own operations is written as the original
 * writes it. */
static void fresh_table_format(void **state)
{
	struct scope_table *t = scope_table_new();
	struct scope_rule r[] = { WRULE("/src", true), RRULE("/d", false) };
	struct scope_err err = { 0 };
	char *dump;
	const char *want;
	int rc;
	struct scope_spec s = {
		.name = "a",
		.pid = 1,
		.socket = "/s",
		.rules = r,
		.nrules = 2,
		.session = "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6",
	};

	(void)state;
	dump = tu_dump(t);
	assert_string_equal(dump, "{\n  \"allocations\": []\n}");
	free(dump);
	rc = scope_register(t, &s, &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	/* pid_start may ride along as a field of our own; the original's
	 * fields come in its order with its formatting */
	want = "{\n  \"allocations\": [\n    {\n      \"pod_name\": \"a\",\n      \"pid\": 1,\n"
	       "      \"socket\": \"/s\",\n      \"scope_allow\": [\n        {\n"
	       "          \"target\": \"/src\",\n          \"permission\": \"write\",\n"
	       "          \"recursive\": true\n        },\n        {\n"
	       "          \"target\": \"/d\",\n          \"permission\": \"read\",\n"
	       "          \"recursive\": false\n        }\n      ],\n"
	       "      \"delegated_from\": null,\n"
	       "      \"session_id\": \"0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6\"";
	if (strncmp(dump, want, strlen(want))) {
		print_error("got:\n%s\n", dump);
		fail();
	}
	free(dump);
	scope_table_free(t);
}

/* ------------------------------------------------------------------ */
/* Unknown fields                                                      */

#define ENTRY_A                                                                 \
	"    {\n"                                                           \
	"      \"pod_name\": \"a\",\n"                                      \
	"      \"x_alloc\": {\"nested\": [1, 2.5, null, true, \"\\u00e9\xc3\xa9\"]},\n" \
	"      \"pid\": 1,\n"                                               \
	"      \"socket\": \"/run/a.sock\",\n"                              \
	"      \"scope_allow\": [\n"                                        \
	"        {\n"                                                       \
	"          \"target\": \"/src\",\n"                                 \
	"          \"x_rule\": [{\"deep\": {\"er\": -0.5e-3}}, []],\n"      \
	"          \"permission\": \"write\",\n"                            \
	"          \"recursive\": true\n"                                   \
	"        }\n"                                                       \
	"      ],\n"                                                        \
	"      \"delegated_from\": null,\n"                                 \
	"      \"session_id\": \"0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e501\",\n" \
	"      \"x_null\": null,\n"                                         \
	"      \"x_emoji\": \"\\ud83d\\ude00 \xf0\x9f\x98\x80\"\n"           \
	"    }"

#define ENTRY_B                                                       \
	"    {\n"                                                     \
	"      \"pod_name\": \"b\",\n"                                \
	"      \"pid\": 1,\n"                                         \
	"      \"socket\": \"/run/b.sock\",\n"                        \
	"      \"scope_allow\": [\n"                                  \
	"        {\n"                                                 \
	"          \"target\": \"/docs\",\n"                          \
	"          \"permission\": \"read\",\n"                       \
	"          \"recursive\": false,\n"                           \
	"          \"x_b\": 7\n"                                      \
	"        }\n"                                                 \
	"      ],\n"                                                  \
	"      \"delegated_from\": null,\n"                           \
	"      \"session_id\": null,\n"                               \
	"      \"x_b_alloc\": {}\n"                                   \
	"    }"

static const char unknown_json[] = "{\n"
				   "  \"x_top\": {\"version\": 3, \"list\": [\"a\", {\"b\": null}]},\n"
				   "  \"allocations\": [\n" ENTRY_A ",\n" ENTRY_B "\n  ],\n"
				   "  \"x_tail\": 12\n"
				   "}";

static json_t *load_json(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	if (!j) {
		print_error("dump is not JSON: %s (line %d)\n%s\n", jerr.text, jerr.line, text);
		fail();
	}
	return j;
}

static json_t *entry(json_t *root, const char *name)
{
	size_t i;
	json_t *a;

	json_array_foreach(json_object_get(root, "allocations"), i, a) {
		if (!strcmp(json_string_value(json_object_get(a, "pod_name")), name))
			return a;
	}
	fail_msg("no entry %s", name);
	return NULL;
}

/* Every unknown field of the input is in OUT, equal. */
static void assert_unknown_fields(json_t *out)
{
	json_t *in = load_json(unknown_json);
	static const char *const top[] = { "x_top", "x_tail" };
	static const char *const in_a[] = { "x_alloc", "x_null", "x_emoji" };
	json_t *ra, *rb;

	for (size_t i = 0; i < ARRAY_SIZE(top); i++)
		assert_true(json_equal(json_object_get(in, top[i]), json_object_get(out, top[i])));
	for (size_t i = 0; i < ARRAY_SIZE(in_a); i++) {
		json_t *v = json_object_get(entry(out, "a"), in_a[i]);

		if (!v || !json_equal(json_object_get(entry(in, "a"), in_a[i]), v))
			fail_msg("a's %s lost", in_a[i]);
	}
	assert_true(json_equal(json_object_get(entry(in, "b"), "x_b_alloc"),
			       json_object_get(entry(out, "b"), "x_b_alloc")));
	ra = json_array_get(json_object_get(entry(out, "a"), "scope_allow"), 0);
	rb = json_array_get(json_object_get(entry(out, "b"), "scope_allow"), 0);
	assert_true(json_equal(json_object_get(ra, "x_rule"),
			       json_object_get(json_array_get(json_object_get(entry(in, "a"),
									      "scope_allow"),
							      0),
					       "x_rule")));
	assert_true(json_is_integer(json_object_get(rb, "x_b")));
	assert_int_equal(json_integer_value(json_object_get(rb, "x_b")), 7);
	json_decref(in);
}

/* The header's promise: an entry that did not change keeps its bytes, even
 * when another writer formatted it its own way. */
static void unchanged_entries_keep_their_bytes(void **state)
{
	struct scope_table *t = tu_parse(unknown_json);
	struct scope_err err = { 0 };
	char *dump = tu_dump(t);
	int rc;

	(void)state;
	if (!strstr(dump, ENTRY_A) || !strstr(dump, ENTRY_B)) {
		print_error("entries not kept byte for byte:\n%s\n", dump);
		fail();
	}
	free(dump);
	rc = scope_set_socket(t, "b", "/run/b2.sock", &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	if (!strstr(dump, ENTRY_A)) {
		print_error("entry a not kept byte for byte:\n%s\n", dump);
		fail();
	}
	free(dump);
	scope_table_free(t);
}

static void unknown_fields_round_trip(void **state)
{
	struct scope_table *t = tu_parse(unknown_json), *again;
	char *dump = tu_dump(t), *dump2;
	json_t *out = load_json(dump);

	(void)state;
	assert_unknown_fields(out);
	json_decref(out);
	/* and the dump is a fixed point */
	again = tu_parse(dump);
	dump2 = tu_dump(again);
	assert_string_equal(dump, dump2);
	free(dump2);
	scope_table_free(again);
	free(dump);
	scope_table_free(t);
}

static void unknown_fields_survive_change_of_other_entry(void **state)
{
	struct scope_table *t = tu_parse(unknown_json);
	struct scope_err err = { 0 };
	json_t *out;
	char *dump;
	int rc;

	(void)state;
	rc = scope_set_socket(t, "b", "/run/b2.sock", &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	out = load_json(dump);
	assert_string_equal(json_string_value(json_object_get(entry(out, "b"), "socket")),
			    "/run/b2.sock");
	assert_unknown_fields(out);
	json_decref(out);
	free(dump);
	scope_table_free(t);
}

static void unknown_fields_survive_change_of_entry(void **state)
{
	struct scope_table *t = tu_parse(unknown_json);
	struct scope_err err = { 0 };
	const char *sid = "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e599";
	struct scope_table *again;
	json_t *out, *a;
	char *dump, *dump2;
	int rc;

	(void)state;
	rc = scope_set_socket(t, "a", "/run/a2.sock", &err);
	assert_scope_ok(rc, err);
	rc = scope_set_session(t, "b", sid, &err);
	assert_scope_ok(rc, err);
	rc = scope_adopt(t, "a", 1, 0, NULL, &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	out = load_json(dump);
	a = entry(out, "a");
	assert_string_equal(json_string_value(json_object_get(a, "socket")), "/run/a2.sock");
	assert_string_equal(json_string_value(json_object_get(entry(out, "b"), "session_id")),
			    sid);
	assert_unknown_fields(out);
	json_decref(out);
	/* and what we wrote reads back the same */
	again = tu_parse(dump);
	dump2 = tu_dump(again);
	assert_string_equal(dump, dump2);
	free(dump2);
	scope_table_free(again);
	free(dump);
	scope_table_free(t);
}

/* A rule that stays across a rewrite of the set keeps its unknown fields. */
static void rule_unknown_fields_survive_set_rules(void **state)
{
	struct scope_table *t = tu_parse(unknown_json);
	struct scope_rule rules[] = { WRULE("/lib", true), WRULE("/src", true) };
	struct scope_err err = { 0 };
	json_t *in = load_json(unknown_json), *out, *src = NULL, *r;
	char *dump;
	size_t i;
	int rc;

	(void)state;
	rc = scope_set_rules(t, "a", rules, 2, &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	out = load_json(dump);
	json_array_foreach(json_object_get(entry(out, "a"), "scope_allow"), i, r) {
		if (!strcmp(json_string_value(json_object_get(r, "target")), "/src"))
			src = r;
	}
	assert_non_null(src);
	assert_true(json_equal(
		json_object_get(src, "x_rule"),
		json_object_get(json_array_get(json_object_get(entry(in, "a"), "scope_allow"), 0),
				"x_rule")));
	/* and the allocation's own unknown fields too */
	assert_true(json_equal(json_object_get(entry(in, "a"), "x_alloc"),
			       json_object_get(entry(out, "a"), "x_alloc")));
	assert_true(json_equal(json_object_get(entry(in, "a"), "x_emoji"),
			       json_object_get(entry(out, "a"), "x_emoji")));
	json_decref(out);
	json_decref(in);
	free(dump);
	scope_table_free(t);
}

/* Numbers the original skips over whatever their size: they must not make
 * the file unreadable, nor be altered. */
static void unknown_big_numbers_survive(void **state)
{
	static const char json[] =
		"{\"allocations\":[{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\","
		"\"scope_allow\":[],\"delegated_from\":null,\"session_id\":null,"
		"\"x_big\":123456789012345678901234567890,\"x_prec\":0.1000000000000000055511151231257827}],"
		"\"x_neg\":-98765432109876543210}";
	struct scope_table *t = tu_parse(json);
	struct scope_err err = { 0 };
	char *dump;
	int rc;

	(void)state;
	rc = scope_set_socket(t, "a", "/s", &err);
	assert_scope_ok(rc, err);
	dump = tu_dump(t);
	assert_non_null(strstr(dump, "123456789012345678901234567890"));
	assert_non_null(strstr(dump, "0.1000000000000000055511151231257827"));
	assert_non_null(strstr(dump, "-98765432109876543210"));
	free(dump);
	scope_table_free(t);
}

/* ------------------------------------------------------------------ */
/* The original's defaults                                             */

static void defaults(void **state)
{
	struct scope_table *t;
	struct scope_alloc *a;

	(void)state;
	t = tu_parse("{}");
	assert_int_equal(scope_table_count(t), 0);
	scope_table_free(t);

	t = tu_parse("{\"other\": 1}");
	assert_int_equal(scope_table_count(t), 0);
	scope_table_free(t);

	t = tu_parse("{\"allocations\":[{\"pod_name\":\"a\",\"pid\":4294967295,\"socket\":\"\","
		     "\"scope_allow\":[{\"target\":\"/x\",\"permission\":\"read\"}]},"
		     "{\"pod_name\":\"b\",\"pid\":0,\"socket\":\"/s\",\"scope_allow\":[],"
		     "\"delegated_from\":\"a\",\"session_id\":null}]}");
	assert_int_equal(scope_table_count(t), 2);
	a = scope_find(t, "a");
	assert_int_equal(a->pid, 4294967295u);
	assert_true(a->rules[0].recursive); /* missing recursive = true */
	assert_int_equal(a->rules[0].perm, SCOPE_READ);
	assert_null(a->session); /* missing session_id */
	assert_null(a->parent);	 /* missing delegated_from */
	a = scope_find(t, "b");
	assert_null(a->session); /* null session_id */
	assert_string_equal(a->parent, "a");
	assert_int_equal(a->pid, 0);
	scope_table_free(t);
}

static void blank_text_is_empty_table(void **state)
{
	static const char *const blanks[] = { "", " ", "\n", "  \n\t\r\n  " };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(blanks); i++) {
		struct scope_table *t = NULL;
		struct scope_err err = { 0 };
		int rc = scope_table_parse(blanks[i], strlen(blanks[i]), "blank", &t, &err);

		assert_scope_ok(rc, err);
		assert_int_equal(scope_table_count(t), 0);
		scope_table_free(t);
	}
}

/* The original trims with Rust's char::is_whitespace, not JSON's: a file
 * of vertical tabs, form feeds or no-break spaces is empty to it too. */
static void blank_unicode_whitespace(void **state)
{
	static const char *const blanks[] = { "\v", "\f\n", "\xc2\xa0", "\xe3\x80\x80 \n" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(blanks); i++) {
		struct scope_table *t = NULL;
		struct scope_err err = { 0 };
		int rc = scope_table_parse(blanks[i], strlen(blanks[i]), "blank", &t, &err);

		assert_scope_ok(rc, err);
		assert_int_equal(scope_table_count(t), 0);
		scope_table_free(t);
	}
}

static const char *const corrupt[] = {
	"{\"allocations\": [",
	"{\"allocations\": [{\"pod_name\": \"a\", \"pid\": 1",
	"{\"allocations\": []",
	"{\"allocations\": []} x",
	"{\"allocations\": []}{}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":\"x\",\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":-1,\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":4294967296,\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1.5,\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
	"[{\"target\":\"/x\",\"permission\":\"exec\",\"recursive\":true}]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
	"[{\"target\":\"/x\",\"permission\":\"write\",\"recursive\":\"yes\"}]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":"
	"[{\"permission\":\"write\"}]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\"}]}",
	"{\"allocations\": [{\"pid\":1,\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":7,\"pid\":1,\"socket\":\"\",\"scope_allow\":[]}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":[],"
	"\"delegated_from\":3}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":[],"
	"\"session_id\":5}]}",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"socket\":\"\",\"scope_allow\":{}}]}",
	"{\"allocations\": {}}",
	"{\"allocations\": null}",
	"{\"allocations\": [1]}",
	"null",
	"42",
	"\"text\"",
	"{\"allocations\": [{\"pod_name\":\"a\",\"pid\":1,\"pid\":2,\"socket\":\"\",\"scope_allow\":[]}]}",
	"\xff",
};

static void corrupt_text(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(corrupt); i++) {
		struct scope_table *t = NULL;
		struct scope_err err = { 0 };
		int rc = scope_table_parse(corrupt[i], strlen(corrupt[i]), "corrupt.json", &t, &err);

		if (rc != -EBADMSG || err.kind != SCOPE_ECORRUPT || err.code != -EBADMSG ||
		    !strstr(err.msg, "corrupt.json")) {
			print_error("case %zu `%s`: rc %d kind %d msg \"%s\"\n", i, corrupt[i], rc,
				    err.kind, err.msg);
			bad++;
			if (rc == 0)
				scope_table_free(t);
		}
	}
	assert_int_equal(bad, 0);
}

/* A corrupt file is refused and never touched, by lock nor save. */
static void corrupt_file_left_alone(void **state)
{
	char *dir = tu_mkdtemp(), *path = tu_join(dir, "scope.lock");
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(corrupt); i++) {
		struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
		struct scope_file *f = NULL;
		struct scope_table *t = NULL;
		struct scope_err err = { 0 };
		struct stat before, after;
		size_t len;
		char *bytes;
		int rc;

		tu_write_file(path, corrupt[i], strlen(corrupt[i]), 0600);
		assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
		assert_int_equal(stat(path, &before), 0);

		rc = scope_file_open(&f, path, &err);
		assert_scope_ok(rc, err);
		rc = scope_file_lock(f, &t, &err);
		if (rc != -EBADMSG || err.kind != SCOPE_ECORRUPT || !strstr(err.msg, path)) {
			print_error("case %zu: lock rc %d kind %d msg \"%s\"\n", i, rc, err.kind,
				    err.msg);
			bad++;
		}
		scope_file_save(f, &err);
		rc = scope_file_lock(f, &t, &err);
		if (rc != -EBADMSG) {
			print_error("case %zu: second lock rc %d\n", i, rc);
			bad++;
		}
		scope_file_save(f, &err);
		scope_file_unlock(f);
		scope_file_free(f);

		bytes = tu_read_file(path, &len);
		assert_int_equal(stat(path, &after), 0);
		if (len != strlen(corrupt[i]) || memcmp(bytes, corrupt[i], len) ||
		    after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
		    after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
		    after.st_ino != before.st_ino || (after.st_mode & 07777) != 0600) {
			print_error("case %zu: the file was changed\n", i);
			bad++;
		}
		free(bytes);
	}
	tu_rmrf(dir);
	free(dir);
	free(path);
	assert_int_equal(bad, 0);
}

/* A blank file on disk is an empty table, and locking it writes nothing. */
static void blank_file_left_alone(void **state)
{
	char *dir = tu_mkdtemp(), *path = tu_join(dir, "scope.lock");
	struct scope_file *f = NULL;
	struct scope_table *t = NULL;
	struct scope_err err = { 0 };
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	struct stat st;
	size_t len;
	char *bytes;
	int rc;

	(void)state;
	tu_write_file(path, " \n\n", 3, 0600);
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	rc = scope_file_open(&f, path, &err);
	assert_scope_ok(rc, err);
	rc = scope_file_lock(f, &t, &err);
	assert_scope_ok(rc, err);
	assert_int_equal(scope_table_count(t), 0);
	/* nothing changed: save is a no-op */
	rc = scope_file_save(f, &err);
	assert_scope_ok(rc, err);
	scope_file_unlock(f);
	scope_file_free(f);
	bytes = tu_read_file(path, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(bytes, " \n\n", 3);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	free(bytes);
	tu_rmrf(dir);
	free(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixtures_round_trip),
		cmocka_unit_test(tree_fixture_content),
		cmocka_unit_test(reclaim_fixture),
		cmocka_unit_test(release_minimal_fixture),
		cmocka_unit_test(fresh_table_format),
		cmocka_unit_test(unknown_fields_round_trip),
		cmocka_unit_test(unchanged_entries_keep_their_bytes),
		cmocka_unit_test(unknown_fields_survive_change_of_other_entry),
		cmocka_unit_test(unknown_fields_survive_change_of_entry),
		cmocka_unit_test(unknown_big_numbers_survive),
		cmocka_unit_test(rule_unknown_fields_survive_set_rules),
		cmocka_unit_test(defaults),
		cmocka_unit_test(blank_text_is_empty_table),
		cmocka_unit_test(blank_unicode_whitespace),
		cmocka_unit_test(corrupt_text),
		cmocka_unit_test(corrupt_file_left_alone),
		cmocka_unit_test(blank_file_left_alone),
	};

	return cmocka_run_group_tests_name("core_json", tests, NULL, NULL);
}
