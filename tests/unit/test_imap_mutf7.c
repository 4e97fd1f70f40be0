/*
 * Unit tests of modified UTF-7 (RFC 3501 section 5.1.3): the RFC's
 * examples, encoding, every rejection rule of the decoder, and round trips
 * over the whole of Unicode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "imap/mutf7.h"

/* Decode in; NULL when rejected.  The result is a static copy. */
static const char *
decode(const char *in)
{
	static char out[1024];
	struct buf b;
	bool ok;

	buf_init(&b, 0);
	ok = mutf7_decode(in, &b);
	if (ok) {
		assert_true(b.len < sizeof(out));
		memcpy(out, b.len > 0 ? b.data : "", b.len);
		out[b.len] = '\0';
		/* No NUL inside: the result is used as a C string. */
		assert_int_equal(strlen(out), b.len);
	}
	buf_free(&b);
	return ok ? out : NULL;
}

static const char *
encode(const char *in)
{
	static char out[1024];
	struct buf b;
	bool ok;

	buf_init(&b, 0);
	ok = mutf7_encode(in, &b);
	if (ok) {
		assert_true(b.len < sizeof(out));
		memcpy(out, b.len > 0 ? b.data : "", b.len);
		out[b.len] = '\0';
	}
	buf_free(&b);
	return ok ? out : NULL;
}

static const struct {
	const char *mutf7, *utf8;
} pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "Sent Items/2024", "Sent Items/2024" },
	/* Every printable ASCII character but '&' stands for itself. */
	{ " !\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~",
	  " !\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~" },
	{ "&-", "&" },
	{ "a&-b&-&-", "a&b&&" },
	/* RFC 3501 section 5.1.3 and the LIST example of 6.3.8. */
	{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
	  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "&AOk-", "\xc3\xa9" },			/* U+00E9 */
	{ "&AOkA6QDp-", "\xc3\xa9\xc3\xa9\xc3\xa9" },	/* one run */
	{ "&AIA-", "\xc2\x80" },			/* U+0080 */
	{ "&,,8-", "\xef\xbf\xbf" },			/* U+FFFF */
	{ "&2D3eAA-", "\xf0\x9f\x98\x80" },		/* U+1F600 */
	{ "&2,,f,w-", "\xf4\x8f\xbf\xbf" },		/* U+10FFFF */
	{ "a&2D3eAA-b&-c", "a\xf0\x9f\x98\x80" "b&c" },
	{ "&ANw-n&AO8-c&APY-d&AOk-/Ordner",
	  "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9/Ordner" },
	{ "&BBIERQQ+BDQETwRJBDgENQ-",
	  "\xd0\x92\xd1\x85\xd0\xbe\xd0\xb4\xd1\x8f\xd1\x89\xd0\xb8"
	  "\xd0\xb5" },
	/* A run followed by "&-" is no null shift. */
	{ "&AOk-&-", "\xc3\xa9&" },
	{ "&AOk-x&AOk-", "\xc3\xa9x\xc3\xa9" },
};

static void
test_pairs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		const char *d = decode(pairs[i].mutf7);
		const char *e;

		if (d == NULL)
			fail_msg("decode rejected %s", pairs[i].mutf7);
		assert_string_equal(d, pairs[i].utf8);
		e = encode(pairs[i].utf8);
		assert_non_null(e);
		assert_string_equal(e, pairs[i].mutf7);
	}
}

/* Every rule of mutf7_decode(), one input each (or more). */
static void
test_decode_rejects(void **state)
{
	static const char *const bad[] = {
		/* 8-bit bytes: raw UTF-8 is not modified UTF-7. */
		"\xc3\xa9", "a\x80", "\xff",
		/* Raw control characters. */
		"a\tb", "a\rb", "\n", "\x01", "\x1f", "\x7f",
		/* Unterminated shift: names must end in US-ASCII. */
		"&", "&AOk", "a&AOkA6Q", "&2D3eAA",
		/* Characters outside modified base64, in a run. */
		"&AO!-", "&AO/-", "&AO=-", "&AOk=-", "&AO k-", "&A\x80-",
		/* Leftover bits that are not zero. */
		"&AOl-", "&AOn-", "&2D3eAB-",
		/* Leftover bits making a whole base64 character, or too
		 * few bits for one UTF-16 unit. */
		"&AOkA-", "&AOkA6QDpA-", "&A-", "&AO-",
		/* Encoded printable ASCII (including '&', space, '~'). */
		"&AGE-", "&ACY-", "&ACA-", "&AH4-", "&AOkAYQ-",
		/* Encoded control characters (U+0000 would cut the name). */
		"&AAA-", "a&AAA-b", "&AAo-", "&AB8-", "&AH8-",
		/* Null shift: two runs that should have been one. */
		"&AOk-&AOk-", "x&AOk-&2D3eAA-",
		/* Invalid UTF-16: lone high, lone low, reversed pair, high
		 * followed by a non-surrogate, high at the end of a run. */
		"&2D0-", "&3gA-", "&3gDYPQ-", "&2D0A6Q-", "&AOnYPQ-",
		"&2D3YPd4A-",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (decode(bad[i]) != NULL)
			fail_msg("decode accepted \"%s\" as \"%s\"", bad[i],
			    decode(bad[i]));
}

static void
test_decode_appends(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	buf_append_str(&b, "x/");
	assert_true(mutf7_decode("&AOk-", &b));
	assert_string_equal(b.data, "x/\xc3\xa9");
	assert_true(mutf7_encode("\xc3\xa9", &b));
	assert_string_equal(b.data, "x/\xc3\xa9&AOk-");
	buf_free(&b);
}

static void
test_encode_rejects(void **state)
{
	static const char *const bad[] = {
		"\x80",				/* lone continuation byte */
		"a\xc3",			/* truncated */
		"\xe2\x82",
		"\xf0\x9f\x98",
		"\xc3" "a",			/* bad continuation */
		"\xc0\xaf", "\xc1\xbf",		/* overlong */
		"\xe0\x80\xaf", "\xf0\x80\x80\xaf",
		"\xed\xa0\x80", "\xed\xbf\xbf",	/* surrogates */
		"\xf4\x90\x80\x80",		/* above U+10FFFF */
		"\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (encode(bad[i]) != NULL)
			fail_msg("encode accepted bad UTF-8 #%zu", i);
}

/* Control characters are encoded (the encoder does not judge names). */
static void
test_encode_controls(void **state)
{
	(void)state;
	assert_string_equal(encode("\x7f"), "&AH8-");
	assert_string_equal(encode("a\tb"), "a&AAk-b");
}

static size_t
put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | (cp >> 6));
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xe0 | (cp >> 12));
		p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		p[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | (cp >> 18));
	p[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	p[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	p[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static bool
valid_in_name(uint32_t cp)
{
	return cp >= 0x20 && cp != 0x7f && (cp < 0xd800 || cp > 0xdfff) &&
	    cp <= 0x10ffff;
}

/*
 * Every code point alone, between ASCII, and paired with the next one
 * (1, 2 and 3 UTF-16 units per run exercise every padding length):
 * decode(encode(s)) == s, and the encoding only uses characters of
 * modified UTF-7.
 */
static void
test_round_trip_all(void **state)
{
	char in[64], copy[64];

	(void)state;
	for (uint32_t cp = 0x20; cp <= 0x10ffff; cp++) {
		const char *e, *d;
		size_t n = 0;

		if (!valid_in_name(cp))
			continue;
		/* Walk the supplementary planes with a stride. */
		if (cp > 0x20000 && cp % 97 != 0)
			continue;
		in[n++] = 'x';
		n += put_utf8(in + n, cp);
		n += put_utf8(in + n, valid_in_name(cp + 1) ? cp + 1 : 'y');
		in[n++] = '/';
		n += put_utf8(in + n, cp);
		in[n] = '\0';
		e = encode(in);
		if (e == NULL)
			fail_msg("encode failed for U+%04X", cp);
		for (const char *p = e; *p != '\0'; p++)
			assert_true(*p >= 0x20 && *p <= 0x7e);
		assert_true(strlen(e) < sizeof(copy));
		memcpy(copy, e, strlen(e) + 1);
		d = decode(copy);
		if (d == NULL)
			fail_msg("decode rejected %s (U+%04X)", copy, cp);
		assert_string_equal(d, in);
	}
}

/* Canonical mUTF-7 names survive decode then encode unchanged. */
static void
test_round_trip_mutf7(void **state)
{
	static const char *const names[] = {
		"&-&-&-", "a&-&AOk-", "&AOk-a&AOk-", "Drafts/&ZeVnLIqe-/x",
		"&2D3eAA-&-", "&,,,,,w-", "&AOkA6QDpAOk-", "&AOkA6QDpAOkA6Q-",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *d = decode(names[i]);
		char copy[256];

		assert_non_null(d);
		snprintf(copy, sizeof(copy), "%s", d);
		assert_string_equal(encode(copy), names[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_decode_appends),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_encode_controls),
		cmocka_unit_test(test_round_trip_all),
		cmocka_unit_test(test_round_trip_mutf7),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
