/*
 * Hand-written cases for src/mime/: ENVELOPE and address lists, BODY and
 * BODYSTRUCTURE, RFC 2231 parameters, section addressing, decoders and
 * search text, broken input and limits.  Expected strings follow Dovecot
 * 2.3 (see test_mime_golden.c for the captured comparison).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mime/address.h"
#include "mime/bodystructure.h"
#include "mime/decode.h"
#include "mime/envelope.h"
#include "mime/message.h"
#include "mime/quote.h"
#include "mime/search.h"
#include "mime/section.h"
#include "test_mime_check.h"

static struct arena arena;
static struct buf out;

static int
setup(void **state)
{
	arena_init(&arena);
	buf_init(&out, 0);
	buf_append(&out, "", 0);
	return 0;
}

static int
teardown(void **state)
{
	arena_free(&arena);
	buf_free(&out);
	return 0;
}

static struct mime_message *
parse(const char *s)
{
	return mime_message_parse(&arena, s, strlen(s), NULL);
}

static const char *
envelope(const char *s)
{
	struct mime_message *msg = parse(s);

	buf_reset(&out);
	mime_envelope_write(&out, msg, msg->root);
	assert_true(imap_check(out.data, out.len));
	return out.data;
}

static const char *
bodystructure(const char *s, bool extended)
{
	struct mime_message *msg = parse(s);

	buf_reset(&out);
	mime_bodystructure_write(&out, msg, msg->root, extended);
	assert_true(imap_check(out.data, out.len));
	return out.data;
}

static const char *
addresses(const char *s)
{
	struct mime_address *a = mime_address_parse(&arena, s, strlen(s),
						    NULL);

	buf_reset(&out);
	mime_address_write(&out, a);
	return out.data;
}

/* Section content as a NUL-terminated copy, or NULL if absent. */
static const char *
section(struct mime_message *msg, const char *spec)
{
	struct mime_section sec;
	struct mime_section_data d;
	const char *err;

	assert_int_equal(mime_section_parse(&arena, spec, strlen(spec), &sec,
					    &err), 0);
	if (!mime_section_get(msg, &sec, &d))
		return NULL;
	return d.built != NULL ? d.built :
		arena_strndup(&arena, msg->data + d.offset, d.len);
}

static void
test_envelope_rfc3501(void **state)
{
	assert_string_equal(envelope(
		"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
		"From: Terry Gray <gray@cac.washington.edu>\r\n"
		"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
		"To: imap@cac.washington.edu\r\n"
		"cc: minutes@CNRI.Reston.VA.US,\r\n"
		"\tJohn Klensin <KLENSIN@MIT.EDU>\r\n"
		"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
		"\r\nbody\r\n"),
		"(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" "
		"\"IMAP4rev1 WG mtg summary and minutes\" "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
		"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
		"((NIL NIL \"imap\" \"cac.washington.edu\")) "
		"((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")"
		"(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
		"\"<B27397-0100000@cac.washington.edu>\")");
}

static void
test_envelope_fields(void **state)
{
	/* Empty message and header-only message. */
	assert_string_equal(envelope(""),
			    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* Sender and Reply-To given; last Subject wins; addresses of
	   repeated fields add up; In-Reply-To raw. */
	assert_string_equal(envelope(
		"Subject: one\nSubject: two\nFrom: a@x\nFrom: b@x\n"
		"Sender: s@x\nReply-To: r@x\nBcc: c@x\n"
		"In-Reply-To: <p@x> (comment)\n\n"),
		"(NIL \"two\" ((NIL NIL \"a\" \"x\")(NIL NIL \"b\" \"x\")) "
		"((NIL NIL \"s\" \"x\")) ((NIL NIL \"r\" \"x\")) NIL NIL "
		"((NIL NIL \"c\" \"x\")) \"<p@x> (comment)\" NIL)");
	/* Folded subject, quotes and 8-bit: literals of cleaned text. */
	assert_string_equal(envelope("Subject: a\n  b\tc\n\n"),
			    "(NIL {5}\r\na b c NIL NIL NIL NIL NIL NIL NIL NIL)");
	assert_string_equal(envelope("Subject: say \"hi\"\n\n"),
			    "(NIL {8}\r\nsay \"hi\" NIL NIL NIL NIL NIL NIL "
			    "NIL NIL)");
	assert_string_equal(envelope("Subject: caf\xc3\xa9\n\n"),
			    "(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL "
			    "NIL NIL)");
	/* Encoded-words stay raw; NUL reads as U+FFFD. */
	assert_string_equal(envelope("Subject: =?utf-8?q?x?=\n\n"),
			    "(NIL \"=?utf-8?q?x?=\" NIL NIL NIL NIL NIL NIL "
			    "NIL NIL)");
	{
		static const char m[] = "Subject: a\0b\n\n";
		struct mime_message *msg =
			mime_message_parse(&arena, m, sizeof(m) - 1, NULL);

		buf_reset(&out);
		mime_envelope_write(&out, msg, msg->root);
		assert_string_equal(out.data, "(NIL {5}\r\na\xef\xbf\xbd"
				    "b NIL NIL NIL NIL NIL NIL NIL NIL)");
	}
	/* Folded Date keeps the blank after the fold. */
	assert_string_equal(envelope("Date: a\n b  c\nMessage-ID:\n <m@x>\n\n"),
			    "(\"a b  c\" NIL NIL NIL NIL NIL NIL NIL NIL "
			    "\" <m@x>\")");
}

static void
test_addresses(void **state)
{
	assert_string_equal(addresses(""), "NIL");
	assert_string_equal(addresses("(just a comment)"), "NIL");
	assert_string_equal(addresses("\"Doe, John\" <john@example.com>"),
			    "((\"Doe, John\" NIL \"john\" \"example.com\"))");
	assert_string_equal(addresses("jane@example.com (Jane Roe)"),
			    "((\"Jane Roe\" NIL \"jane\" \"example.com\"))");
	assert_string_equal(addresses("x@y (a (nested) one)"),
			    "((\"a (nested) one\" NIL \"x\" \"y\"))");
	assert_string_equal(addresses("\"odd local\"@example.com"),
			    "((NIL NIL \"odd local\" \"example.com\"))");
	assert_string_equal(addresses("<@a.example,@b.example:u@c.example>"),
			    "((NIL \"@a.example,@b.example\" \"u\" "
			    "\"c.example\"))");
	assert_string_equal(addresses("John Q. Public <jqp@x>"),
			    "((\"John Q. Public\" NIL \"jqp\" \"x\"))");
	assert_string_equal(addresses("J.R. Smith <a@b>, A.\"b c\".D <x@y>"),
			    "((\"J.R. Smith\" NIL \"a\" \"b\")"
			    "(\"A. b c .D\" NIL \"x\" \"y\"))");
	assert_string_equal(addresses(", a@b,"),
			    "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
			    "(NIL NIL \"a\" \"b\"))");
	assert_string_equal(addresses("u@[192.0.2.1]"),
			    "((NIL NIL \"u\" \"[192.0.2.1]\"))");
	assert_string_equal(addresses(
		"A Group: a@x, \"B\" <b@x>;, c@x"),
		"((NIL NIL \"A Group\" NIL)(NIL NIL \"a\" \"x\")"
		"(\"B\" NIL \"b\" \"x\")(NIL NIL NIL NIL)(NIL NIL \"c\" \"x\"))");
	assert_string_equal(addresses("undisclosed-recipients:;"),
			    "((NIL NIL \"undisclosed-recipients\" NIL)"
			    "(NIL NIL NIL NIL))");
	/* An unterminated group is closed at the end. */
	assert_string_equal(addresses("g: a@x"),
			    "((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"x\")"
			    "(NIL NIL NIL NIL))");
	/* Broken ones, as Dovecot reports them. */
	assert_string_equal(addresses("bare"),
			    "((NIL NIL \"bare\" \"MISSING_DOMAIN\"))");
	assert_string_equal(addresses("@"),
			    "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
	assert_string_equal(addresses("a@, , b@x"),
			    "((NIL NIL \"a\" \"MISSING_DOMAIN\")"
			    "(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
			    "(NIL NIL \"b\" \"x\"))");
	assert_string_equal(addresses("<Undisclosed Recipients>"),
			    "((NIL NIL \"Undisclosed\" \"SYNTAX_ERROR\"))");
	assert_string_equal(addresses("\"undisclosed\""),
			    "((\"undisclosed\" NIL \"MISSING_MAILBOX\" "
			    "\"MISSING_DOMAIN\"))");
	assert_string_equal(addresses("<a@b> <c@d>"),
			    "((NIL NIL \"a\" \"b\"))");
	assert_string_equal(addresses("\"unterminated <a@b>"),
			    "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
	/* Display names are text for humans. */
	assert_string_equal(addresses("\"  x  \\\"y\" <a@b>"),
			    "(({4}\r\nx \"y NIL \"a\" \"b\"))");
}

static void
test_quote(void **state)
{
	buf_reset(&out);
	mime_quote_string(&out, "a\"b\\c", 5);
	assert_string_equal(out.data, "\"a\\\"b\\\\c\"");
	buf_reset(&out);
	mime_quote_string(&out, "\"\"\"\"\"", 5);
	assert_string_equal(out.data, "{5}\r\n\"\"\"\"\"");
	buf_reset(&out);
	mime_quote_string(&out, "a\r\nb", 4);
	assert_string_equal(out.data, "{4}\r\na\r\nb");
	buf_reset(&out);
	mime_quote_nstring(&out, NULL, 0);
	assert_string_equal(out.data, "NIL");
	buf_reset(&out);
	mime_quote_human(&out, " \t ", 3);
	assert_string_equal(out.data, "\"\"");
	buf_reset(&out);
	mime_quote_human(&out, " foo  ", 6);
	assert_string_equal(out.data, "{3}\r\nfoo");
	buf_reset(&out);
	mime_quote_nstring_nolf(&out, "a\r\n b\r\rc", 8);
	assert_string_equal(out.data, "\"a b c\"");
}

static const char multipart_msg[] =
	"From: a@example.com\n"
	"Subject: mp\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\n"
	"Content-Language: en, de\n"
	"Content-Location: http://example.com/x\n"
	"\n"
	"preamble\n"
	"--outer\n"
	"Content-Type: text/plain; charset=utf-8; format=flowed\n"
	"Content-ID: <id1@example.com>\n"
	"Content-Description: the text\n"
	"Content-Transfer-Encoding: 8bit\n"
	"\n"
	"line one\n"
	"line two\n"
	"--outer\n"
	"Content-Type: multipart/alternative; boundary=inner\n"
	"\n"
	"--inner\n"
	"Content-Type: text/html\n"
	"\n"
	"<p>hi</p>\n"
	"--inner\n"
	"Content-Type: application/octet-stream; name=\"a.bin\"\n"
	"Content-Disposition: attachment; filename=\"a.bin\"\n"
	"Content-Transfer-Encoding: base64\n"
	"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
	"\n"
	"AAEC\n"
	"--inner--\n"
	"--outer\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"From: inner@example.com\n"
	"Subject: inner\n"
	"\n"
	"inner body\n"
	"--outer\n"
	"Content-Disposition: inline\n"
	"\n"
	"default typed\n"
	"--outer--\n"
	"epilogue\n";

static void
test_bodystructure(void **state)
{
	assert_string_equal(bodystructure(multipart_msg, true),
		"((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" "
		"\"flowed\") \"<id1@example.com>\" \"the text\" \"8bit\" 18 1 "
		"NIL NIL NIL NIL)"
		"((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"9 0 NIL NIL NIL NIL)(\"application\" \"octet-stream\" "
		"(\"name\" \"a.bin\") NIL NIL \"base64\" 4 "
		"\"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" "
		"\"a.bin\")) NIL NIL) \"alternative\" (\"boundary\" \"inner\") "
		"NIL NIL NIL)"
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 53 "
		"(NIL \"inner\" ((NIL NIL \"inner\" \"example.com\")) "
		"((NIL NIL \"inner\" \"example.com\")) "
		"((NIL NIL \"inner\" \"example.com\")) NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"13 0 NIL (\"inline\" NIL) NIL NIL) \"mixed\" "
		"(\"boundary\" \"outer\") NIL (\"en\" \"de\") "
		"\"http://example.com/x\")");
	assert_string_equal(bodystructure(multipart_msg, false),
		"((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" "
		"\"flowed\") \"<id1@example.com>\" \"the text\" \"8bit\" 18 1)"
		"((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"9 0)(\"application\" \"octet-stream\" (\"name\" \"a.bin\") NIL "
		"NIL \"base64\" 4) \"alternative\")"
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 53 "
		"(NIL \"inner\" ((NIL NIL \"inner\" \"example.com\")) "
		"((NIL NIL \"inner\" \"example.com\")) "
		"((NIL NIL \"inner\" \"example.com\")) NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 10 0) 3)"
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"13 0) \"mixed\")");
}

static void
test_bodystructure_single(void **state)
{
	/* Defaults; the plain 7-bit form is lower-cased. */
	assert_string_equal(bodystructure("", true),
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 0 0 NIL NIL NIL NIL)");
	assert_string_equal(bodystructure(
		"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\nx\n", false),
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 3 1)");
	/* Otherwise case is kept, charset appended for text. */
	assert_string_equal(bodystructure(
		"Content-Type: Text/HTML; Name=\"x\"\n"
		"Content-Transfer-Encoding: BASE64\n\nx\n", false),
		"(\"Text\" \"HTML\" (\"Name\" \"x\" \"charset\" \"us-ascii\") "
		"NIL NIL \"BASE64\" 3 1)");
	/* CRLF message: sizes are the raw ones. */
	assert_string_equal(bodystructure(
		"Content-Type: image/png\r\n\r\nab\r\ncd\r\n", false),
		"(\"image\" \"png\" NIL NIL NIL \"7bit\" 8)");
	/* Unparsable Content-Type; missing subtype. */
	assert_string_equal(bodystructure(
		"Content-Type: /plain\n\nx\n", false),
		"(\"\" \"\" NIL NIL NIL \"7bit\" 3)");
	assert_string_equal(bodystructure("Content-Type: text\n\nx\n", false),
		"(\"text\" \"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"3 1)");
	/* multipart without boundary: one empty text part. */
	assert_string_equal(bodystructure(
		"Content-Type: multipart/mixed\n\n--x\n\nhi\n--x--\n", true),
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)");
	/* multipart/digest: parts default to message/rfc822. */
	assert_string_equal(bodystructure(
		"Content-Type: multipart/digest; boundary=d\n\n--d\n\n"
		"Subject: s\n\nb\n--d--\n", false),
		"((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 "
		"(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 1 0) 2) \"digest\")");
}

static void
test_rfc2231(void **state)
{
	assert_string_equal(bodystructure(
		"Content-Type: application/x;\n"
		" title*0*=us-ascii'en'a%20b;\n"
		" title*1*=%2Ac;\n"
		" title*2=\"50%\"\n"
		"Content-Disposition: attachment;\n"
		" filename*=UTF-8''%E2%82%AC.txt\n\nx\n", true),
		"(\"application\" \"x\" (\"title*\" "
		"\"us-ascii'en'a%20b%2Ac50%25\") NIL NIL \"7bit\" 3 NIL "
		"(\"attachment\" (\"filename*\" \"UTF-8''%E2%82%AC.txt\")) "
		"NIL NIL)");
	/* Plain continuations merge without "*"; gaps stay apart; the
	   starred ones come sorted after the plain ones. */
	assert_string_equal(bodystructure(
		"Content-Type: application/x; z*1=b; z*0=a; p=1; y*0=c; "
		"y*2=d\n\nx\n", false),
		"(\"application\" \"x\" (\"p\" \"1\" \"y*0\" \"c\" \"y*2\" "
		"\"d\" \"z\" \"ab\") NIL NIL \"7bit\" 3)");
	/* Broken pairs are skipped up to the next ';', an empty name is
	   fine (both as Dovecot). */
	assert_string_equal(bodystructure(
		"Content-Type: text/plain; bad; a=\"q\\\"x\"; =v; b=2\n\nx\n",
		false),
		"(\"text\" \"plain\" (\"\" \"v\" \"b\" \"2\" \"charset\" "
		"\"us-ascii\") NIL NIL \"7bit\" 3 1)");
}

static void
test_sections(void **state)
{
	struct mime_message *msg = parse(multipart_msg);

	assert_non_null(section(msg, ""));
	assert_int_equal(strlen(section(msg, "")), strlen(multipart_msg));
	assert_true(strncmp(section(msg, "HEADER"), "From: a@example.com\n",
			    20) == 0);
	assert_true(strncmp(section(msg, "TEXT"), "preamble\n", 9) == 0);
	assert_string_equal(section(msg, "1"), "line one\nline two");
	assert_string_equal(section(msg, "1.1"), "line one\nline two");
	assert_true(strncmp(section(msg, "1.MIME"),
			    "Content-Type: text/plain;", 25) == 0);
	assert_string_equal(section(msg, "2.1"), "<p>hi</p>");
	assert_string_equal(section(msg, "2.2"), "AAEC");
	assert_string_equal(section(msg, "2.MIME"),
		"Content-Type: multipart/alternative; boundary=inner\n\n");
	assert_null(section(msg, "2.HEADER"));
	assert_null(section(msg, "2.3"));
	assert_null(section(msg, "9"));
	assert_string_equal(section(msg, "3"),
		"From: inner@example.com\nSubject: inner\n\ninner body");
	assert_string_equal(section(msg, "3.HEADER"),
		"From: inner@example.com\nSubject: inner\n\n");
	assert_string_equal(section(msg, "3.TEXT"), "inner body");
	assert_string_equal(section(msg, "3.1"), "inner body");
	assert_string_equal(section(msg, "3.MIME"),
			    "Content-Type: message/rfc822\n\n");
	assert_string_equal(section(msg, "3.HEADER.FIELDS (SUBJECT)"),
			    "Subject: inner\n\r\n");
	assert_string_equal(section(msg, "4"), "default typed");
	assert_string_equal(section(msg, "HEADER.FIELDS (subject \"FROM\")"),
		"From: a@example.com\nSubject: mp\n\r\n");
	assert_string_equal(section(msg,
		"HEADER.FIELDS.NOT (From Subject Content-Type)"),
		"Content-Language: en, de\n"
		"Content-Location: http://example.com/x\n\n");

	/* Single-part message: "1" is the body, "1.1" does not exist. */
	msg = parse("Subject: s\n\nbody\n");
	assert_string_equal(section(msg, "1"), "body\n");
	assert_string_equal(section(msg, "1.MIME"), "Subject: s\n\n");
	assert_null(section(msg, "1.1"));
	assert_null(section(msg, "2"));
	/* A last line without LF gets CRLF in HEADER.FIELDS. */
	msg = parse("Subject: s\nFrom: f");
	assert_string_equal(section(msg, "HEADER.FIELDS (From)"),
			    "From: f\r\n\r\n");
	assert_string_equal(section(msg, "HEADER.FIELDS.NOT (From)"),
			    "Subject: s\n");
	assert_string_equal(section(msg, "TEXT"), "");
}

static void
test_section_parse(void **state)
{
	static const char *const bad[] = {
		"0", "1.", ".1", "1..2", "FOO", "MIME", "1.MIMEX",
		"HEADER.FIELDS", "HEADER.FIELDS ()", "HEADER.FIELDS (a",
		"HEADER.FIELDS (a) x", ("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16."
		"17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33"),
		"99999999999",
	};
	struct mime_section sec;
	const char *err;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		assert_int_equal(mime_section_parse(&arena, bad[i],
						    strlen(bad[i]), &sec,
						    &err), -1);
		assert_non_null(err);
	}
	{
		static const char s[] = "1.2.header.fields.not (A \"b c\")";

		assert_int_equal(mime_section_parse(&arena, s, sizeof(s) - 1,
						    &sec, &err), 0);
	}
	assert_int_equal(sec.nparts, 2);
	assert_int_equal(sec.parts[1], 2);
	assert_int_equal(sec.text, MIME_SECTION_HEADER_FIELDS_NOT);
	assert_int_equal(sec.nfields, 2);
	assert_string_equal(sec.fields[1], "b c");
}

static const char *
decoded_header(const char *s)
{
	buf_reset(&out);
	mime_decode_header_utf8(&out, s, strlen(s));
	return out.data;
}

static void
test_decode(void **state)
{
	assert_string_equal(decoded_header(
		"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>"),
		"Keld J\xc3\xb8rn Simonsen <keld@dkuug.dk>");
	/* RFC 2047 section 8: blanks between encoded-words go. */
	assert_string_equal(decoded_header("(=?ISO-8859-1?Q?a?= b)"),
			    "(a b)");
	assert_string_equal(decoded_header(
		"(=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=)"), "(ab)");
	assert_string_equal(decoded_header(
		"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?="
		"=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?="),
		"If you can read this you understand the example.");
	assert_string_equal(decoded_header("=?ISO-2022-JP?B?GyRCJEgkWSRrGyhC?="),
			    "\xe3\x81\xa8\xe3\x81\xb9\xe3\x82\x8b");
	assert_string_equal(decoded_header("=?utf-8*en?q?=E2=82=AC?="),
			    "\xe2\x82\xac");
	/* Unknown charset: bytes taken as UTF-8; bad UTF-8 replaced. */
	assert_string_equal(decoded_header("=?x-bogus?q?abc?= \xff"),
			    "abc \xef\xbf\xbd");
	/* Not encoded-words. */
	assert_string_equal(decoded_header("=?utf-8?x?abc?= =?a b?="),
			    "=?utf-8?x?abc?= =?a b?=");

	buf_reset(&out);
	mime_decode_qp(&out, "a=3Db=\r\nc  \nd=\n=zz=4", 21, false);
	assert_string_equal(out.data, "a=bc\nd=zz=4");
	buf_reset(&out);
	mime_decode_base64(&out, "aGVs\nbG8=\nxx", 12);
	assert_string_equal(out.data, "hello");
	buf_reset(&out);
	assert_true(mime_decode_charset_utf8(&out, "windows-1252", "\x80", 1));
	assert_string_equal(out.data, "\xe2\x82\xac");
	buf_reset(&out);
	assert_false(mime_decode_charset_utf8(&out, "uft-8", "ok", 2));
	assert_string_equal(out.data, "ok");
	buf_reset(&out);
	mime_decode_charset_utf8(&out, "utf-8", "\xc3", 1);
	assert_string_equal(out.data, "\xef\xbf\xbd");
}

static void
test_search(void **state)
{
	struct mime_message *msg = parse(
		"Subject: =?utf-8?q?Stra=C3=9Fe?= MIXED\n"
		"From: =?iso-8859-1?q?J=F6rg?= <j@x>\n"
		"Content-Type: multipart/mixed; boundary=b\n\n"
		"--b\nContent-Type: text/plain; charset=iso-8859-1\n"
		"Content-Transfer-Encoding: quoted-printable\n\n"
		"Gr=FC=DFe, W=\norld\n"
		"--b\nContent-Type: text/html; charset=utf-8\n"
		"Content-Transfer-Encoding: base64\n\nPGI+SGk8L2I+\n"
		"--b\nContent-Type: image/png\n\nNOTTEXT\n"
		"--b\nContent-Type: message/rfc822\n\n"
		"Subject: Inner\n\nInner Body\n--b--\n");
	struct buf needle;

	buf_reset(&out);
	mime_search_text(&out, msg, MIME_SEARCH_HEADERS);
	assert_non_null(strstr(out.data, "subject: strasse mixed\n"));
	assert_non_null(strstr(out.data, "from: j\xc3\xb6rg <j@x>\n"));
	assert_null(strstr(out.data, "grüsse"));

	buf_reset(&out);
	mime_search_text(&out, msg, MIME_SEARCH_BODY);
	assert_non_null(strstr(out.data, "gr\xc3\xbcsse, world"));
	assert_non_null(strstr(out.data, "<b>hi</b>"));
	assert_null(strstr(out.data, "nottext"));
	assert_non_null(strstr(out.data, "subject: inner\n"));
	assert_non_null(strstr(out.data, "inner body"));
	assert_null(strstr(out.data, "strasse"));

	buf_init(&needle, 0);
	mime_search_fold(&needle, "GRÜSSE", strlen("GRÜSSE"));
	assert_non_null(strstr(out.data, needle.data));
	buf_free(&needle);

	/* A bounded buffer stops the work without failing. */
	{
		struct buf small;

		buf_init(&small, 16);
		mime_search_text(&small, msg, MIME_SEARCH_HEADERS |
				 MIME_SEARCH_BODY);
		assert_true(small.len <= 16);
		buf_free(&small);
	}
}

static void
test_broken(void **state)
{
	struct mime_message *msg;

	/* Bare CR: one long header line, as Dovecot. */
	assert_string_equal(bodystructure("Subject: a\rb\r\rc\r", false),
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 0 0)");
	assert_string_equal(envelope("Subject: a\rb\r\rc\r"),
		"(NIL {5}\r\na b c NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* Boundaries are prefixes; an unterminated multipart runs to the
	   end; "--b--garbage" closes. */
	assert_string_equal(bodystructure(
		"Content-Type: multipart/mixed; boundary=b\n\n"
		"--b\n\none\n--bogus\n--b  \n\ntwo\n--b--x\n\nepilogue\n",
		false),
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 3 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
		"NIL NIL \"7bit\" 0 0)(\"text\" \"plain\" (\"charset\" "
		"\"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\")");
	assert_string_equal(bodystructure(
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nopen",
		false),
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 4 0) \"mixed\")");
	/* Header lines without colon are kept but ignored; a blank-only
	   line continues the header (and makes Subject "changed" text). */
	msg = parse("bad line\nSubject: s\n  \nTo: t@x\n\nb");
	assert_int_equal(msg->root->nfields, 3);
	assert_false(msg->root->fields[0].has_colon);
	buf_reset(&out);
	mime_envelope_write(&out, msg, msg->root);
	assert_string_equal(out.data, "(NIL {1}\r\ns NIL NIL NIL "
			    "((NIL NIL \"t\" \"x\")) NIL NIL NIL NIL)");
	/* NUL in body. */
	{
		static const char m[] = "\n\0\0\0";

		msg = mime_message_parse(&arena, m, sizeof(m) - 1, NULL);
		assert_int_equal(msg->root->body_len, 3);
	}
	/* Message/rfc822 cut short. */
	assert_string_equal(bodystructure(
		"Content-Type: message/rfc822\n\nSubject: x", false),
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 10 "
		"(NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 0 0) 0)");
	/* NULL data is an empty message. */
	msg = mime_message_parse(&arena, NULL, 5, NULL);
	assert_int_equal(msg->size, 0);
}

/* Every prefix of a message parses into well-formed answers. */
static void
test_truncated_prefixes(void **state)
{
	size_t n, len = sizeof(multipart_msg) - 1;

	for (n = 0; n <= len; n++) {
		struct arena a;
		struct mime_message *msg;
		char *copy = xmemdup(multipart_msg, n > 0 ? n : 1);

		arena_init(&a);
		msg = mime_message_parse(&a, copy, n, NULL);
		buf_reset(&out);
		mime_bodystructure_write(&out, msg, msg->root, true);
		assert_true(imap_check(out.data, out.len));
		buf_reset(&out);
		mime_envelope_write(&out, msg, msg->root);
		assert_true(imap_check(out.data, out.len));
		arena_free(&a);
		free(copy);
	}
}

static void
test_limits(void **state)
{
	struct mime_limits lim = { 3, 0 };
	struct buf s;
	struct mime_message *msg;
	unsigned int i;

	/* Nesting: containers at the depth limit become opaque. */
	buf_init(&s, 0);
	for (i = 0; i < 5; i++)
		buf_printf(&s, "Content-Type: multipart/mixed; boundary=x%u"
			   "\n\n--x%u\n", i, i);
	buf_append_str(&s, "\ndeep\n");
	msg = mime_message_parse(&arena, s.data, s.len, &lim);
	assert_int_equal(msg->nparts, 3);
	buf_reset(&out);
	mime_bodystructure_write(&out, msg, msg->root, false);
	assert_string_equal(out.data,
		"(((\"application\" \"octet-stream\" (\"boundary\" \"x2\") NIL "
		"NIL \"7bit\" 118) \"mixed\") \"mixed\")");

	/* Default depth (100) holds a 150-deep message without trouble. */
	buf_reset(&s);
	for (i = 0; i < 150; i++)
		buf_printf(&s, "Content-Type: message/rfc822\n\n");
	msg = mime_message_parse(&arena, s.data, s.len, NULL);
	assert_int_equal(msg->nparts, MIME_DEFAULT_MAX_DEPTH);
	buf_reset(&out);
	mime_bodystructure_write(&out, msg, msg->root, true);
	assert_true(imap_check(out.data, out.len));

	/* Part count. */
	lim.max_depth = 0;
	lim.max_parts = 10;
	buf_reset(&s);
	buf_append_str(&s, "Content-Type: multipart/mixed; boundary=q\n\n");
	for (i = 0; i < 50; i++)
		buf_printf(&s, "--q\n\npart %u\n", i);
	msg = mime_message_parse(&arena, s.data, s.len, &lim);
	assert_int_equal(msg->nparts, 10);
	assert_int_equal(msg->root->nchildren, 9);
	buf_reset(&out);
	mime_bodystructure_write(&out, msg, msg->root, true);
	assert_true(imap_check(out.data, out.len));
	buf_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_envelope_rfc3501, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_envelope_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_addresses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_quote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodystructure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bodystructure_single,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc2231, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sections, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_section_parse, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_prefixes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
