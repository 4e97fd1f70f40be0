/*
 * Unit tests of SEARCH criteria: parsing into a tree (checked through its
 * canonical text form), syntax errors, charsets, the date parsers, and
 * matching against messages held in memory, including the staged
 * evaluation that answers MAYBE until the message is supplied.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/arena.h"
#include "imap/parser.h"
#include "imap/search.h"
#include "store/store.h"

static const struct imap_parser_limits limits = {
	.max_line = 65536,
	.max_literal = 65536,
	.max_total = 1 << 20,
	.max_depth = 100,
	.max_args = 10000,
};

/* Parse "A SEARCH <criteria>\r\n" (literals allowed) and then the search
 * criteria.  Returns the parse result; *out_r the formatted tree or the
 * error text. */
static enum imap_search_parse_result
parse_len(struct arena *a, const char *criteria, size_t clen,
    struct imap_search **search_r, const char **out_r)
{
	struct imap_parser *p = imap_parser_new(&limits);
	struct buf line;
	const struct imap_arg *args;
	unsigned nargs;
	size_t off = 0, used;
	enum imap_parse_result pr;
	enum imap_search_parse_result r;
	struct imap_search *search = NULL;
	const char *error = NULL;

	buf_init(&line, 0);
	buf_append_str(&line, "A SEARCH");
	if (clen > 0) {
		buf_append_str(&line, " ");
		buf_append(&line, criteria, clen);
	}
	buf_append_str(&line, "\r\n");
	for (;;) {
		pr = imap_parser_feed(p, line.data + off, line.len - off,
		    &used);
		off += used;
		if (pr == IMAP_PARSE_CONTINUE)
			continue;
		break;
	}
	if (pr != IMAP_PARSE_DONE)
		fail_msg("parser: %s", imap_parser_error(p));
	args = imap_parser_args(p, &nargs);
	r = imap_search_parse(args, nargs, a, &search, &error);
	if (r == IMAP_SEARCH_PARSE_OK) {
		*out_r = imap_search_format(search, a);
		if (search_r != NULL)
			*search_r = search;
	} else {
		assert_non_null(error);
		*out_r = arena_strdup(a, error);
	}
	imap_parser_free(&p);
	buf_free(&line);
	return r;
}

static enum imap_search_parse_result
parse(struct arena *a, const char *criteria, struct imap_search **search_r,
    const char **out_r)
{
	return parse_len(a, criteria, strlen(criteria), search_r, out_r);
}

static void
test_parse_valid(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "ALL", "ALL" },
		{ "all", "ALL" },
		{ "SEEN", "SEEN" },
		{ "UNSEEN", "(NOT SEEN)" },
		{ "OLD", "(NOT RECENT)" },
		{ "NEW", "NEW" },
		{ "NOT UNSEEN", "SEEN" },
		{ "NOT NOT DELETED", "DELETED" },
		{ "UNANSWERED UNDELETED UNDRAFT UNFLAGGED",
		  "(AND (NOT ANSWERED) (NOT DELETED) (NOT DRAFT) "
		  "(NOT FLAGGED))" },
		/* RFC 3501's example; AND children are ordered by cost. */
		{ "FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
		  "(AND FLAGGED (SINCE 8797) (NOT (FROM \"smith\")))" },
		{ "NOT FROM \"Smith\" FLAGGED",
		  "(AND FLAGGED (NOT (FROM \"smith\")))" },
		{ "OR BODY x SEEN", "(OR SEEN (BODY \"x\"))" },
		{ "OR (TEXT a TO b) LARGER 10",
		  "(OR (LARGER 10) (AND (TO \"b\") (TEXT \"a\")))" },
		{ "((((SEEN))))", "SEEN" },
		{ "1:3,5 UID 2:*", "(AND (SEQ 1:3,5) (UID 2:4294967295))" },
		{ "*", "(SEQ 4294967295)" },
		{ "HEADER X-Foo \"BAR\"", "(HEADER X-Foo \"bar\")" },
		{ "HEADER Subject \"\"", "(HEADER Subject \"\")" },
		{ "KEYWORD $Junk", "(KEYWORD $Junk)" },
		{ "UNKEYWORD foo", "(NOT (KEYWORD foo))" },
		{ "BODY \"\"", "ALL" },
		{ "TEXT \"\" SEEN", "(AND ALL SEEN)" },
		{ "SUBJECT \"\"", "(SUBJECT \"\")" },
		{ "BEFORE 1-Feb-1994 ON \"07-feb-1994\" SINCE 29-Feb-2000",
		  "(AND (BEFORE 8797) (ON 8803) (SINCE 11016))" },
		{ "SENTBEFORE 1-Feb-1994 SENTON 7-Feb-1994 SENTSINCE "
		  "1-Jan-1970", "(AND (SENTBEFORE 8797) (SENTON 8803) "
		  "(SENTSINCE 0))" },
		{ "LARGER 0 SMALLER 18446744073709551615",
		  "(AND (LARGER 0) (SMALLER 18446744073709551615))" },
		{ "BCC a CC b FROM c TO d SUBJECT e",
		  "(AND (BCC \"a\") (CC \"b\") (FROM \"c\") (TO \"d\") "
		  "(SUBJECT \"e\"))" },
		{ "charset us-ascii seen", "SEEN" },
		{ "CHARSET \"UTF-8\" SUBJECT \"Stra\xc3\x9f" "e\"",
		  "(SUBJECT \"strasse\")" },
		/* A literal, with 8-bit bytes, decoded from Latin-1. */
		{ "CHARSET ISO-8859-1 SUBJECT {4}\r\nCAF\xc9",
		  "(SUBJECT \"caf\xc3\xa9\")" },
		{ "CHARSET UTF-8 TEXT {5}\r\nCAF\xc3\x89",
		  "(TEXT \"caf\xc3\xa9\")" },
		{ "FROM \"a\\\"b\"", "(FROM \"a\\\"b\")" },
	};
	struct arena a;

	arena_init(&a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *out;

		if (parse(&a, cases[i].in, NULL, &out) != IMAP_SEARCH_PARSE_OK)
			fail_msg("'%s' failed: %s", cases[i].in, out);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("'%s' -> '%s', expected '%s'", cases[i].in,
			    out, cases[i].out);
	}
	arena_free(&a);
}

static void
test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"",
		"CHARSET UTF-8",
		"CHARSET",
		"()",
		"(SEEN ())",
		"FOO",
		"\"ALL\"",
		"FROM",
		"HEADER Subject",
		"HEADER",
		"BEFORE 1-Foo-2000",
		"BEFORE 1-feb-00",
		"BEFORE 30-Feb-2000",
		"BEFORE 0-Feb-2000",
		"BEFORE 100-Feb-2000",
		"BEFORE 1-Feb-2000x",
		"BEFORE 1 Feb 2000",
		"BEFORE",
		"LARGER -1",
		"LARGER abc",
		"LARGER 99999999999999999999999",
		"LARGER",
		"SMALLER \"10\"",
		"0",
		"1,0",
		"1:",
		"$",
		"UID 0",
		"UID",
		"UID x",
		"OR SEEN",
		"OR",
		"NOT",
		"ALL CHARSET UTF-8",
		"KEYWORD",
		"KEYWORD \"a b\"",
		"SEEN (FLAGGED",
	};
	struct arena a;
	char deep[1024];

	arena_init(&a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *out;
		enum imap_search_parse_result r;

		/* "SEEN (FLAGGED" is a parser error already. */
		if (strchr(bad[i], '(') != NULL && strchr(bad[i], ')') == NULL)
			continue;
		r = parse(&a, bad[i], NULL, &out);
		if (r != IMAP_SEARCH_PARSE_BAD)
			fail_msg("'%s' gave %d (%s), expected BAD", bad[i], r,
			    out);
	}
	/* Nesting is bounded: NOT and OR count as well as parentheses. */
	deep[0] = '\0';
	for (int i = 0; i < 100; i++)
		strcat(deep, "NOT ");
	strcat(deep, "SEEN");
	{
		const char *out;

		assert_int_equal(parse(&a, deep, NULL, &out),
		    IMAP_SEARCH_PARSE_BAD);
		assert_string_equal(out, "Search keys nested too deeply.");
		/* 64 levels are fine (an even count of NOTs cancels). */
		deep[0] = '\0';
		for (int i = 0; i < 64; i++)
			strcat(deep, "NOT ");
		strcat(deep, "SEEN");
		assert_int_equal(parse(&a, deep, NULL, &out),
		    IMAP_SEARCH_PARSE_OK);
		assert_string_equal(out, "SEEN");
		assert_int_equal(parse(&a, "NOSUCHKEY", NULL, &out),
		    IMAP_SEARCH_PARSE_BAD);
		assert_string_equal(out, "Unknown search key NOSUCHKEY.");
	}
	arena_free(&a);
}

static void
test_parse_charset(void **state)
{
	struct arena a;
	const char *out;

	arena_init(&a);
	assert_int_equal(parse(&a, "CHARSET FOO ALL", NULL, &out),
	    IMAP_SEARCH_PARSE_BADCHARSET);
	assert_int_equal(parse(&a, "CHARSET \"\" ALL", NULL, &out),
	    IMAP_SEARCH_PARSE_BADCHARSET);
	assert_int_equal(parse(&a, "CHARSET UTF-8//IGNORE ALL", NULL, &out),
	    IMAP_SEARCH_PARSE_BADCHARSET);
	assert_int_equal(parse(&a, "CHARSET x-unknown-charset FROM x", NULL,
	    &out), IMAP_SEARCH_PARSE_BADCHARSET);
	assert_int_equal(parse(&a, "CHARSET KOI8-R ALL", NULL, &out),
	    IMAP_SEARCH_PARSE_OK);
	assert_int_equal(parse(&a, "CHARSET utf8 ALL", NULL, &out),
	    IMAP_SEARCH_PARSE_OK);
	arena_free(&a);
}

static void
test_dates(void **state)
{
	static const struct {
		const char *in;
		int64_t day;	/* INT64_MIN: invalid */
	} sent[] = {
		{ "Mon, 7 Feb 1994 21:52:25 -0800", 8803 },
		{ "7 Feb 1994 21:52 +0000", 8803 },
		{ "7 Feb 94 21:52:25 GMT", 8803 },
		{ "7 February 1994 21:52:25 -0800", 8803 },
		{ "  7   Feb   1994 21:52:25 (comment) -0800", 8803 },
		{ "7 Feb 1994 21:52:25", 8803 },
		{ "Mon, 07 Feb 1994 21:52:25 -0800 (PST)", 8803 },
		/* The day as written, whatever the zone. */
		{ "Mon, 7 Feb 1994 23:30:00 -1200", 8803 },
		{ "Mon, 7 Feb 1994 00:10:00 +1400", 8803 },
		{ "7 Feb 49 10:00:00 +0000", 28892 },
		{ "7 Feb 50 10:00:00 +0000", 29257 },
		{ "7 FEB 1994 10:00:00 +0000", 8803 },
		{ "Mon, 7 Feb 1994 21:52:25 XYZ", 8803 },
		{ "(c) 7 Feb 1994 10:00:00 +0000", 8803 },
		{ "Mon,7 Feb 1994 10:00:00 +0000", 8803 },
		{ "Mon , 7 Feb 1994 10:00:00 +0000", 8803 },
		{ "7 Feb 1994 9:5:5 +0000", 8803 },
		{ "7 Feb 1994 10", 8803 },
		{ "29 Feb 2000 10:00 +0000", 11016 },
		{ "7 Feb 1994", INT64_MIN },
		{ "Monday, 7 Feb 1994 21:52:25 -0800", INT64_MIN },
		{ "7-Feb-1994 21:52:25 -0800", INT64_MIN },
		{ "Mon Feb  7 21:52:25 1994", INT64_MIN },
		{ "Mon, 7 Feb 1994 25:30:00 +0000", INT64_MIN },
		{ "7 Feb 0094 10:00:00 +0000", INT64_MIN },
		{ "32 Feb 1994 10:00:00 +0000", INT64_MIN },
		{ "29 Feb 1900 10:00:00 +0000", INT64_MIN },
		{ "7 Feb 194 10:00:00 +0000", INT64_MIN },
		{ "0 Feb 1994 10:00:00 +0000", INT64_MIN },
		{ "007 Feb 1994 10:00:00 +0000", INT64_MIN },
		{ "7 Febx 1994 10:00:00 +0000", INT64_MIN },
		{ "7 Feb 1994 23:60:00 +0000", INT64_MIN },
		{ "garbage", INT64_MIN },
		{ "", INT64_MIN },
	};
	int64_t day;

	assert_int_equal(imap_search_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(imap_search_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(imap_search_days_from_civil(2000, 2, 29), 11016);
	assert_int_equal(imap_search_days_from_civil(1600, 3, 1), -135080);
	assert_int_equal(imap_search_days_from_civil(2024, 1, 1), 19723);

	assert_true(imap_search_parse_date("1-Feb-1994", &day));
	assert_int_equal(day, 8797);
	assert_true(imap_search_parse_date("07-FEB-1994", &day));
	assert_int_equal(day, 8803);
	assert_false(imap_search_parse_date("7-Feb-94", &day));
	assert_false(imap_search_parse_date("7-February-1994", &day));
	assert_false(imap_search_parse_date("-Feb-1994", &day));
	assert_false(imap_search_parse_date("29-Feb-1900", &day));
	assert_false(imap_search_parse_date("7-Feb-1994 ", &day));

	for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++) {
		bool ok = imap_search_sent_day(sent[i].in, strlen(sent[i].in),
		    &day);

		if (sent[i].day == INT64_MIN) {
			if (ok)
				fail_msg("'%s' parsed as %lld", sent[i].in,
				    (long long)day);
		} else if (!ok || day != sent[i].day) {
			fail_msg("'%s': ok=%d day=%lld, expected %lld",
			    sent[i].in, ok, ok ? (long long)day : 0,
			    (long long)sent[i].day);
		}
	}
}

/* ---- matching ------------------------------------------------------------ */

static const char msg_a[] =
	"From: \"Doe, John\" <john@example.com>\n"
	"To: =?ISO-8859-1?Q?J=F6rg?= <jorg@example.org>, group: a@b.c,\n"
	" d@e.f;\n"
	"Cc: jane@example.com (Jane Roe)\n"
	"Subject: =?UTF-8?B?w4ljb2xl?=   Stra\xc3\x9f" "e\n"
	"\ttest\n"
	"Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
	"X-Custom: Hello   World\n"
	"Content-Type: text/plain; charset=iso-8859-1\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"caf=E9 au lait=\n"
	"soft break\n";

static const char msg_b[] =
	"From: bob@example.net\r\n"
	"Subject: attachments\r\n"
	"Date: garbage\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=XX\r\n"
	"\r\n"
	"--XX\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"0J/RgNC40LLQtdGCLCDQvNC40YAh\r\n"	/* "Привет, мир!" */
	"--XX\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"c2VjcmV0IHBheWxvYWQ=\r\n"		/* "secret payload" */
	"--XX--\r\n";

/* Evaluate criteria on a message: data NULL leaves it unloaded. */
static enum imap_search_result
eval(const char *criteria, const char *data, uint32_t flags,
    uint64_t keywords, int64_t internal_date, uint64_t size)
{
	static const char *const kw[] = { "$Junk", "Work", "urgent" };
	struct arena a, ma;
	struct imap_search *search;
	struct imap_search_msg m;
	const char *out;
	enum imap_search_result r;

	arena_init(&a);
	arena_init(&ma);
	if (parse(&a, criteria, &search, &out) != IMAP_SEARCH_PARSE_OK)
		fail_msg("'%s': %s", criteria, out);
	imap_search_prepare(search, 5, 10, kw, 3);
	imap_search_msg_init(&m, &ma);
	m.seq = 5;
	m.uid = 10;
	m.flags = flags;
	m.keywords = keywords;
	m.internal_date = internal_date;
	m.size = data != NULL ? strlen(data) : size;
	if (data != NULL) {
		m.data = data;
		m.len = strlen(data);
		m.loaded = true;
	}
	r = imap_search_match(search, &m);
	imap_search_msg_deinit(&m);
	arena_free(&ma);
	arena_free(&a);
	return r;
}

#define YES IMAP_SEARCH_YES
#define NO IMAP_SEARCH_NO
#define MAYBE IMAP_SEARCH_MAYBE

static void
check(const char *criteria, const char *data, enum imap_search_result want)
{
	enum imap_search_result r = eval(criteria, data, 0, 0, 0, 0);

	if (r != want)
		fail_msg("'%s' gave %d, expected %d", criteria, r, want);
}

static void
test_match_text(void **state)
{
	/* Addresses, rewritten the way Dovecot matches them. */
	check("FROM \"doe, john\\\" <john@\"", msg_a, YES);
	check("FROM \"Doe, John <john\"", msg_a, NO);
	check("FROM john@EXAMPLE.com", msg_a, YES);
	check("FROM smith", msg_a, NO);
	check("TO \"j\xc3\xb6rg <jorg@\"", msg_a, YES);
	check("TO \"J\xc3\x96RG\"", msg_a, YES);
	check("TO \"group: <a@b.c>, <d@e.f>;\"", msg_a, YES);
	check("CC \"\\\"jane roe\\\" <jane@\"", msg_a, YES);
	check("CC \"(jane\"", msg_a, NO);
	check("BCC x", msg_a, NO);
	check("BCC \"\"", msg_a, NO);
	check("FROM \"\"", msg_a, YES);
	/* Subject: decoded, folded, white space compressed. */
	check("SUBJECT \"\xc3\xa9" "cole stra\xc3\x9f" "e test\"", msg_a, YES);
	check("SUBJECT \"\xc3\x89" "COLE STRASSE\"", msg_a, YES);
	check("SUBJECT \"ecole\"", msg_a, NO);
	check("SUBJECT \"\"", msg_a, YES);
	/* HEADER: as decoded, not compressed. */
	check("HEADER x-custom \"hello   world\"", msg_a, YES);
	check("HEADER X-CUSTOM \"hello world\"", msg_a, NO);
	check("HEADER X-Custom \"\"", msg_a, YES);
	check("HEADER X-Missing \"\"", msg_a, NO);
	check("HEADER \"\" \"\"", msg_a, NO);
	check("HEADER Subject \"\xc3\xa9" "cole\"", msg_a, YES);
	/* BODY: transfer encoding and charset decoded. */
	check("BODY \"CAF\xc3\x89 AU\"", msg_a, YES);
	check("BODY laitsoft", msg_a, YES);
	check("BODY doe", msg_a, NO);
	check("TEXT doe", msg_a, YES);
	check("TEXT \"x-custom: hello\"", msg_a, YES);
	check("TEXT \"break\"", msg_a, YES);
	check("CHARSET ISO-8859-1 BODY {4}\r\nCAF\xc9", msg_a, YES);
	check("BODY \"\xd0\xbf\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2\"",
	    msg_b, YES);
	check("BODY secret", msg_b, NO);
	check("TEXT attachments", msg_b, YES);
	check("BODY attachments", msg_b, NO);
	/* Combinations. */
	check("OR BODY nothing FROM bob", msg_b, YES);
	check("NOT (BODY nothing FROM bob)", msg_b, YES);
	check("(SUBJECT attachments) (NOT BODY secret)", msg_b, YES);
}

static void
test_match_dates(void **state)
{
	/* 1994-02-08 03:00 UTC is the 7th in New York (EST, -5). */
	int64_t t = (int64_t)8804 * 86400 + 3 * 3600;

	setenv("TZ", "UTC0", 1);
	tzset();
	assert_int_equal(eval("ON 8-Feb-1994", NULL, 0, 0, t, 10), YES);
	assert_int_equal(eval("ON 7-Feb-1994", NULL, 0, 0, t, 10), NO);
	assert_int_equal(eval("BEFORE 8-Feb-1994", NULL, 0, 0, t, 10), NO);
	assert_int_equal(eval("BEFORE 9-Feb-1994", NULL, 0, 0, t, 10), YES);
	assert_int_equal(eval("SINCE 8-Feb-1994", NULL, 0, 0, t, 10), YES);
	assert_int_equal(eval("SINCE 9-Feb-1994", NULL, 0, 0, t, 10), NO);
	setenv("TZ", "EST5", 1);
	tzset();
	assert_int_equal(eval("ON 7-Feb-1994", NULL, 0, 0, t, 10), YES);
	assert_int_equal(eval("SINCE 8-Feb-1994", NULL, 0, 0, t, 10), NO);
	setenv("TZ", "UTC0", 1);
	tzset();

	check("SENTON 7-Feb-1994", msg_a, YES);
	check("SENTBEFORE 7-Feb-1994", msg_a, NO);
	check("SENTBEFORE 8-Feb-1994", msg_a, YES);
	check("SENTSINCE 7-Feb-1994", msg_a, YES);
	check("SENTSINCE 8-Feb-1994", msg_a, NO);
	/* An unparsable or missing Date: is 1-Jan-1970. */
	check("SENTON 1-Jan-1970", msg_b, YES);
	check("SENTBEFORE 2-Jan-1970", msg_b, YES);
	check("SENTON 1-Jan-1970", "Subject: x\n\nbody\n", YES);
}

static void
test_match_index(void **state)
{
	uint32_t f = STORE_F_SEEN | STORE_F_FLAGGED;

	assert_int_equal(eval("SEEN FLAGGED", NULL, f, 0, 0, 10), YES);
	assert_int_equal(eval("UNSEEN", NULL, f, 0, 0, 10), NO);
	assert_int_equal(eval("ANSWERED", NULL, f, 0, 0, 10), NO);
	assert_int_equal(eval("UNANSWERED UNDELETED UNDRAFT", NULL, f, 0, 0,
	    10), YES);
	assert_int_equal(eval("DRAFT", NULL, STORE_F_DRAFT, 0, 0, 10), YES);
	assert_int_equal(eval("DELETED", NULL, STORE_F_DELETED, 0, 0, 10),
	    YES);
	assert_int_equal(eval("NEW", NULL, STORE_F_RECENT, 0, 0, 10), YES);
	assert_int_equal(eval("NEW", NULL, STORE_F_RECENT | STORE_F_SEEN, 0,
	    0, 10), NO);
	assert_int_equal(eval("OLD", NULL, STORE_F_RECENT, 0, 0, 10), NO);
	assert_int_equal(eval("OLD", NULL, 0, 0, 0, 10), YES);
	assert_int_equal(eval("RECENT", NULL, STORE_F_RECENT, 0, 0, 10), YES);
	/* Keywords: bit 1 is "Work", matched case-insensitively. */
	assert_int_equal(eval("KEYWORD work", NULL, 0, 2, 0, 10), YES);
	assert_int_equal(eval("KEYWORD $Junk", NULL, 0, 2, 0, 10), NO);
	assert_int_equal(eval("UNKEYWORD $Junk", NULL, 0, 2, 0, 10), YES);
	assert_int_equal(eval("KEYWORD nosuch", NULL, 0, 7, 0, 10), NO);
	assert_int_equal(eval("UNKEYWORD nosuch", NULL, 0, 7, 0, 10), YES);
	/* Sequence number 5 of 5, UID 10 (the highest). */
	assert_int_equal(eval("5", NULL, 0, 0, 0, 10), YES);
	assert_int_equal(eval("*", NULL, 0, 0, 0, 10), YES);
	assert_int_equal(eval("2:*", NULL, 0, 0, 0, 10), YES);
	assert_int_equal(eval("1:4,6:100", NULL, 0, 0, 0, 10), NO);
	assert_int_equal(eval("UID 10", NULL, 0, 0, 0, 10), YES);
	assert_int_equal(eval("UID 1:9", NULL, 0, 0, 0, 10), NO);
	/* "20:*" is 10:20 when the highest UID is 10 (RFC 9051). */
	assert_int_equal(eval("UID 20:*", NULL, 0, 0, 0, 10), YES);
	assert_int_equal(eval("NOT UID *", NULL, 0, 0, 0, 10), NO);
}

static void
test_match_staged(void **state)
{
	/* Index keys settle the answer without the message. */
	assert_int_equal(eval("SEEN BODY x", NULL, 0, 0, 0, 100), NO);
	assert_int_equal(eval("OR SEEN BODY x", NULL, STORE_F_SEEN, 0, 0, 100),
	    YES);
	assert_int_equal(eval("BODY x SEEN", NULL, STORE_F_SEEN, 0, 0, 100),
	    MAYBE);
	assert_int_equal(eval("NOT SUBJECT x", NULL, 0, 0, 0, 100), MAYBE);
	assert_int_equal(eval("SENTON 1-Jan-1970", NULL, 0, 0, 0, 100),
	    MAYBE);
	/* The stored size bounds RFC822.SIZE: size <= vsize <= 2 * size. */
	assert_int_equal(eval("LARGER 100", NULL, 0, 0, 0, 150), YES);
	assert_int_equal(eval("LARGER 100", NULL, 0, 0, 0, 40), NO);
	assert_int_equal(eval("LARGER 100", NULL, 0, 0, 0, 60), MAYBE);
	assert_int_equal(eval("SMALLER 100", NULL, 0, 0, 0, 49), YES);
	assert_int_equal(eval("SMALLER 100", NULL, 0, 0, 0, 100), NO);
	assert_int_equal(eval("SMALLER 100", NULL, 0, 0, 0, 60), MAYBE);
	/* Loaded: the exact size, LF counted as CRLF. */
	check("LARGER 9", "a\nb\nc\n", NO);	/* 6 bytes, vsize 9 */
	check("LARGER 8", "a\nb\nc\n", YES);
	check("SMALLER 9", "a\nb\nc\n", NO);
	check("SMALLER 10", "a\nb\nc\n", YES);
	check("LARGER 9", "a\r\nb\r\nc\r\n", NO);
	check("SMALLER 0", "", NO);
	check("LARGER 0", "", NO);
}

/* The caller learns when a cached RFC822.SIZE would settle a size key. */
static void
test_match_vsize(void **state)
{
	struct arena a, ma;
	struct imap_search *s1, *s2;
	struct imap_search_msg m;
	const char *out;

	arena_init(&a);
	arena_init(&ma);
	assert_int_equal(parse(&a, "LARGER 100 BODY x", &s1, &out),
	    IMAP_SEARCH_PARSE_OK);
	assert_int_equal(parse(&a, "SMALLER 100", &s2, &out),
	    IMAP_SEARCH_PARSE_OK);
	imap_search_prepare(s1, 1, 1, NULL, 0);
	imap_search_prepare(s2, 1, 1, NULL, 0);

	/* Settled by the stored size: only BODY needs the message. */
	imap_search_msg_init(&m, &ma);
	m.size = 150;
	assert_int_equal(imap_search_match(s1, &m), MAYBE);
	assert_false(m.vsize_wanted);
	imap_search_msg_deinit(&m);

	/* 60 bytes may be 60..120 with CRLF: the exact size decides. */
	imap_search_msg_init(&m, &ma);
	m.size = 60;
	assert_int_equal(imap_search_match(s2, &m), MAYBE);
	assert_true(m.vsize_wanted);
	m.vsize = 99;
	m.vsize_known = true;
	assert_int_equal(imap_search_match(s2, &m), YES);
	m.vsize = 100;
	assert_int_equal(imap_search_match(s2, &m), NO);
	imap_search_msg_deinit(&m);

	arena_free(&ma);
	arena_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_charset),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_match_text),
		cmocka_unit_test(test_match_dates),
		cmocka_unit_test(test_match_index),
		cmocka_unit_test(test_match_staged),
		cmocka_unit_test(test_match_vsize),
	};

	setenv("TZ", "UTC0", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
