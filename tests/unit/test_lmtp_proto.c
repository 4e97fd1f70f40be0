/* The LMTP wire syntax (src/lmtp/proto.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "lmtp/proto.h"

static void
test_line_split(void **state)
{
	const char *args;
	size_t vlen;

	assert_int_equal(lmtp_line_split("MAIL FROM:<a@b>", &vlen, &args),
	    LMTP_LINE_OK);
	assert_int_equal(vlen, 4);
	assert_string_equal(args, "FROM:<a@b>");
	assert_int_equal(lmtp_line_split("QUIT", &vlen, &args), LMTP_LINE_OK);
	assert_int_equal(vlen, 4);
	assert_string_equal(args, "");
	assert_int_equal(lmtp_line_split("", &vlen, &args), LMTP_LINE_OK);
	assert_int_equal(vlen, 0);
	assert_int_equal(lmtp_line_split("M@IL x", &vlen, &args),
	    LMTP_LINE_BAD_VERB);
	assert_int_equal(lmtp_line_split("NOOP a\tb", &vlen, &args),
	    LMTP_LINE_BAD_CHARS);
	assert_int_equal(lmtp_line_split("NOOP \x7f", &vlen, &args),
	    LMTP_LINE_BAD_CHARS);
	args = "from:<x>";
	assert_ptr_equal(lmtp_skip_keyword(args, "FROM:"), args + 5);
	assert_null(lmtp_skip_keyword("TO:<x>", "FROM:"));
}

static void
test_paths(void **state)
{
	static const struct {
		const char *in, *address, *local, *rest;
	} ok[] = {
		{ "<a@b.example>", "a@b.example", "a", "" },
		{ "  <a@b> SIZE=1", "a@b", "a", " SIZE=1" },
		{ "<bare>", "bare", "bare", "" },
		{ "<@r1,@r2:u@d>", "u@d", "u", "" },
		{ "<\"a b\\\"c\"@d>", "\"a b\\\"c\"@d", "a b\"c", "" },
		{ "<>", "", "", "" },
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "a@b", "Missing '<' at beginning of path" },
		{ "<a@b", "Missing '>' at end of path" },
		{ "<a@>", "Missing domain after '@'" },
		{ "<@d>", "Missing '>' at end of path" },
		{ "<@x:@d>", "Missing localpart" },
		{ "<a@b>x", "Invalid character in path" },
		{ "<>x", "Invalid character in path" },
		{ "<\"a\"b@c>", "Invalid character in localpart" },
		{ "<a b@c>", "Missing '>' at end of path" },
		{ "<\"a\x01\"@c>", "Missing '>' at end of path" },
		{ "<\"unterminated", "Missing '>' at end of path" },
	};
	struct lmtp_path p;
	const char *why;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_true(lmtp_path_parse(ok[i].in, &p, &why));
		assert_string_equal(p.address, ok[i].address);
		assert_string_equal(p.local, ok[i].local);
		assert_string_equal(p.rest, ok[i].rest);
		assert_int_equal(p.null, ok[i].address[0] == '\0');
		lmtp_path_free(&p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(lmtp_path_parse(bad[i].in, &p, &why));
		assert_string_equal(why, bad[i].why);
		assert_null(p.address);
	}
}

static void
test_params(void **state)
{
	const char *p = " SIZE=100  BODY=8BITMIME FOO =x ";
	char *key, *value;

	assert_true(lmtp_next_param(&p, &key, &value));
	assert_string_equal(key, "SIZE");
	assert_string_equal(value, "100");
	free(key);
	free(value);
	assert_true(lmtp_next_param(&p, &key, &value));
	assert_string_equal(key, "BODY");
	assert_string_equal(value, "8BITMIME");
	free(key);
	free(value);
	assert_true(lmtp_next_param(&p, &key, &value));
	assert_string_equal(key, "FOO");
	assert_null(value);
	free(key);
	assert_true(lmtp_next_param(&p, &key, &value));
	assert_string_equal(key, "");
	assert_string_equal(value, "x");
	free(key);
	free(value);
	assert_false(lmtp_next_param(&p, &key, &value));
}

static void
test_candidates(void **state)
{
	struct lmtp_path p;
	const char *why;
	char *cand[LMTP_MAX_CANDIDATES];
	unsigned n;

	assert_true(lmtp_path_parse("<Alice+Tag@Example.org>", &p, &why));
	n = lmtp_candidates(&p, cand);
	assert_int_equal(n, 5);
	assert_string_equal(cand[0], "Alice+Tag@Example.org");
	assert_string_equal(cand[1], "Alice+Tag");
	assert_string_equal(cand[2], "Alice");
	assert_string_equal(cand[3], "alice+tag");
	assert_string_equal(cand[4], "alice");
	for (unsigned i = 0; i < n; i++)
		free(cand[i]);
	lmtp_path_free(&p);

	/* No repeats; "+x" alone has no prefix; a name with '/' is no
	 * user. */
	assert_true(lmtp_path_parse("<+x>", &p, &why));
	n = lmtp_candidates(&p, cand);
	assert_int_equal(n, 1);
	assert_string_equal(cand[0], "+x");
	free(cand[0]);
	lmtp_path_free(&p);
	assert_true(lmtp_path_parse("<../etc>", &p, &why));
	assert_int_equal(lmtp_candidates(&p, cand), 0);
	lmtp_path_free(&p);
}

static void
put(void *ctx, const char *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* Feed in pieces of `step` bytes; returns the bytes consumed. */
static size_t
feed(const char *in, size_t step, struct buf *out, bool *end)
{
	enum lmtp_data_state st = LMTP_DATA_BOL;
	size_t len = strlen(in), pos = 0;

	*end = false;
	while (pos < len && !*end) {
		size_t n = len - pos < step ? len - pos : step;

		pos += lmtp_data_feed(&st, in + pos, n, put, out, end);
	}
	return pos;
}

static void
test_data(void **state)
{
	static const struct {
		const char *in, *out;
		size_t used;	/* 0: no end seen */
	} cases[] = {
		{ "a\r\n.\r\nQUIT\r\n", "a\r\n", 6 },
		{ ".\r\n", "", 3 },
		{ "..x\r\n.\r\n", ".x\r\n", 8 },
		{ "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", 10 },
		{ ".\rx\r\n.\r\n", "\rx\r\n", 8 },
		{ "a\r\r\n.\r\n", "a\r\r\n", 7 },
		{ "no end\r\n", "no end\r\n", 0 },
		{ "x\r\n.", "x\r\n", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= 8; step++) {
			struct buf out;
			bool end;
			size_t used;

			buf_init(&out, 0);
			used = feed(cases[i].in, step, &out, &end);
			assert_int_equal(end, cases[i].used != 0);
			assert_int_equal(used, cases[i].used != 0 ?
			    cases[i].used : strlen(cases[i].in));
			assert_int_equal(out.len, strlen(cases[i].out));
			assert_memory_equal(out.data, cases[i].out, out.len);
			buf_free(&out);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_split),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_candidates),
		cmocka_unit_test(test_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
