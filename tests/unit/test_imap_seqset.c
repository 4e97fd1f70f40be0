/*
 * Unit tests of sequence-set parsing, resolving '*', lookup and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "imap/seqset.h"

/* Parse, check the ranges are sorted and merged, and format. */
static char *
parse_fmt(struct arena *a, const char *str, unsigned max_ranges)
{
	struct imap_seqset set;
	const char *error = NULL;

	if (imap_seqset_parse(str, a, max_ranges, &set, &error) < 0) {
		assert_non_null(error);
		assert_int_equal(set.count, 0);
		return NULL;
	}
	for (unsigned i = 0; i < set.count; i++) {
		assert_true(set.ranges[i].lo <= set.ranges[i].hi);
		assert_true(set.ranges[i].lo >= 1);
		if (i > 0) {
			/* Sorted, not overlapping, not adjacent. */
			assert_true(set.ranges[i - 1].hi < UINT32_MAX);
			assert_true(set.ranges[i].lo >
			    set.ranges[i - 1].hi + 1);
		}
	}
	return imap_seqset_format(&set, a);
}

static void
test_parse_valid(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "1", "1" },
		{ "1:3,5,7:9", "1:3,5,7:9" },
		{ "1:3,5,7:*", "1:3,5,7:4294967295" },
		{ "*", "4294967295" },
		{ "*:*", "4294967295" },
		{ "4294967295", "4294967295" },
		{ "4294967294:*", "4294967294:4294967295" },
		/* Unordered ranges (RFC 9051: "2:4" and "4:2" are equal). */
		{ "5:2", "2:5" },
		{ "*:5", "5:4294967295" },
		/* Sorting and merging of overlapping and adjacent ranges. */
		{ "3,1,2", "1:3" },
		{ "1:5,3:7", "1:7" },
		{ "4,4,4", "4" },
		{ "10:20,1:2,5,3,21", "1:3,5,10:21" },
		{ "1:*,3,100", "1:4294967295" },
		{ "9,7,5,3,1", "1,3,5,7,9" },
		{ "2:3,4:5", "2:5" },
		{ "1,4294967295", "1,4294967295" },
		{ "123456789", "123456789" },
	};
	struct arena a;

	arena_init(&a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = parse_fmt(&a, cases[i].in, 100);

		if (got == NULL)
			fail_msg("'%s' failed to parse", cases[i].in);
		if (strcmp(got, cases[i].out) != 0)
			fail_msg("'%s' -> '%s', expected '%s'", cases[i].in,
			    got, cases[i].out);
	}
	arena_free(&a);
}

static void
test_parse_invalid(void **state)
{
	static const char *const cases[] = {
		"", "0", "0:5", "5:0", "01", "1:01", "1:", ":", ":1", "1,,2",
		",1", "1,", ",", "abc", "1a", "a1", "1 2", " 1", "1 ", "1:2:3",
		"$", "-1", "+1", "1.5", "1;2", "**", "*1", "1*", "1:**",
		"4294967296", "1:4294967296", "99999999999999999999",
		"18446744073709551617", "1,2,", "1:*,", "\xc2\xb9",
	};
	struct arena a;
	struct imap_seqset set;
	const char *error;

	arena_init(&a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		error = NULL;
		set.count = 99;
		if (imap_seqset_parse(cases[i], &a, 100, &set, &error) == 0)
			fail_msg("'%s' was accepted", cases[i]);
		assert_non_null(error);
		assert_int_equal(set.count, 0);
	}
	/* Some messages. */
	assert_int_equal(imap_seqset_parse("0", &a, 10, &set, &error), -1);
	assert_non_null(strstr(error, "start at 1"));
	assert_int_equal(imap_seqset_parse("4294967296", &a, 10, &set,
	    &error), -1);
	assert_non_null(strstr(error, "too large"));
	assert_int_equal(imap_seqset_parse("1,,2", &a, 10, &set, &error), -1);
	assert_non_null(strstr(error, "Empty"));
	arena_free(&a);
}

static void
test_max_ranges(void **state)
{
	struct arena a;
	struct imap_seqset set;
	const char *error;

	arena_init(&a);
	assert_non_null(parse_fmt(&a, "1,2,3", 3));
	assert_null(parse_fmt(&a, "1,2,3", 2));
	/* Elements are counted as written, before merging. */
	assert_null(parse_fmt(&a, "1,1,1,1", 3));
	assert_non_null(parse_fmt(&a, "1:100000", 1));
	assert_null(parse_fmt(&a, "1", 0));
	assert_int_equal(imap_seqset_parse("1,2,3", &a, 2, &set, &error),
	    -1);
	assert_non_null(strstr(error, "Too many"));
	{
		/* 10000 elements. */
		char buf[10000 * 6 + 1];
		size_t pos = 0;

		for (int i = 0; i < 10000; i++)
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos,
			    "%s%d", i > 0 ? "," : "", 20000 - 2 * i);
		assert_int_equal(imap_seqset_parse(buf, &a, 10000, &set,
		    &error), 0);
		assert_int_equal(set.count, 10000);
		assert_int_equal(set.ranges[0].lo, 2);
		assert_int_equal(set.ranges[9999].hi, 20000);
		assert_int_equal(imap_seqset_parse(buf, &a, 9999, &set,
		    &error), -1);
	}
	arena_free(&a);
}

static char *
resolve_fmt(struct arena *a, const char *str, uint32_t max)
{
	struct imap_seqset set;
	const char *error;

	assert_int_equal(imap_seqset_parse(str, a, 100, &set, &error), 0);
	imap_seqset_resolve(&set, max);
	for (unsigned i = 0; i < set.count; i++) {
		assert_true(set.ranges[i].lo <= set.ranges[i].hi);
		if (i > 0)
			assert_true(set.ranges[i].lo >
			    set.ranges[i - 1].hi + 1);
	}
	return imap_seqset_format(&set, a);
}

static void
test_resolve(void **state)
{
	static const struct {
		const char *in;
		uint32_t max;
		const char *out;
	} cases[] = {
		{ "5:*", 10, "5:10" },
		{ "5:*", 5, "5" },
		/* RFC 9051: 5:* with 3 messages is 3:5. */
		{ "5:*", 3, "3:5" },
		{ "*:5", 3, "3:5" },
		{ "*", 7, "7" },
		{ "*", 1, "1" },
		{ "1:*", 1, "1" },
		{ "1:*,3", 10, "1:10" },
		{ "2,*", 3, "2:3" },
		{ "1,*", 3, "1,3" },
		{ "10:20", 5, "10:20" },
		{ "1:3,*", 2, "1:3" },
		{ "7,*:9", 4, "4:9" },
		{ "1,5,9", 100, "1,5,9" },
		{ "*", 4294967295u, "4294967295" },
		{ "4294967295", 9, "9" },	/* documented: same as '*' */
	};
	struct arena a;

	arena_init(&a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = resolve_fmt(&a, cases[i].in, cases[i].max);

		if (strcmp(got, cases[i].out) != 0)
			fail_msg("'%s' max %u -> '%s', expected '%s'",
			    cases[i].in, cases[i].max, got, cases[i].out);
	}
	/* An empty mailbox: nothing at all. */
	assert_string_equal(resolve_fmt(&a, "1:*", 0), "");
	assert_string_equal(resolve_fmt(&a, "1,2,5:7", 0), "");
	arena_free(&a);
}

static void
test_contains(void **state)
{
	struct arena a;
	struct imap_seqset set;
	const char *error;
	char buf[1024];
	size_t pos = 0;

	arena_init(&a);
	assert_int_equal(imap_seqset_parse("3:5,9,20:*", &a, 10, &set,
	    &error), 0);
	assert_false(imap_seqset_contains(&set, 0));
	assert_false(imap_seqset_contains(&set, 2));
	assert_true(imap_seqset_contains(&set, 3));
	assert_true(imap_seqset_contains(&set, 5));
	assert_false(imap_seqset_contains(&set, 6));
	assert_true(imap_seqset_contains(&set, 9));
	assert_false(imap_seqset_contains(&set, 10));
	assert_true(imap_seqset_contains(&set, 20));
	assert_true(imap_seqset_contains(&set, UINT32_MAX));
	imap_seqset_resolve(&set, 25);
	assert_true(imap_seqset_contains(&set, 25));
	assert_false(imap_seqset_contains(&set, 26));
	assert_false(imap_seqset_contains(&set, UINT32_MAX));
	imap_seqset_resolve(&set, 0);
	assert_false(imap_seqset_contains(&set, 1));

	/* Odd numbers 1..199 against every number 0..201. */
	for (int i = 1; i < 200; i += 2)
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%d",
		    i > 1 ? "," : "", i);
	assert_int_equal(imap_seqset_parse(buf, &a, 100, &set, &error), 0);
	assert_int_equal(set.count, 100);
	for (uint32_t n = 0; n <= 201; n++)
		assert_int_equal(imap_seqset_contains(&set, n),
		    n % 2 == 1 && n < 200);
	arena_free(&a);
}

static void
test_format(void **state)
{
	struct arena a;
	struct imap_seqset set = { .ranges = NULL, .count = 0 };
	struct imap_seq_range r[3] = {
		{ 1, 1 }, { 3, 4294967295u }, { 0, 0 },
	};

	arena_init(&a);
	assert_string_equal(imap_seqset_format(&set, &a), "");
	set.ranges = r;
	set.count = 2;
	assert_string_equal(imap_seqset_format(&set, &a), "1,3:4294967295");
	r[0].lo = 4294967294u;
	r[0].hi = 4294967294u;
	r[1].lo = 4294967295u;
	set.count = 1;
	assert_string_equal(imap_seqset_format(&set, &a), "4294967294");
	/* Round trip. */
	assert_string_equal(parse_fmt(&a, "1:2,4,6:8,10", 10),
	    "1:2,4,6:8,10");
	arena_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_max_ranges),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
