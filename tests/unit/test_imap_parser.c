/*
 * Unit tests of the IMAP command parser.
 *
 * Every case is fed through a small session-like driver that writes a
 * transcript of what the parser reported (commands with their argument
 * trees, continuation requests, errors with their flags, literal handler
 * calls, and the consumed offsets).  Each case is run with the input in
 * one piece, one byte at a time, split in two at every offset, and in
 * pseudo-random pieces; every transcript must equal the expected one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "imap/parser.h"

static const struct imap_parser_limits def_limits = {
	.max_line = 1024,
	.max_literal = 8192,
	.max_total = 65536,
	.max_depth = 4,
	.max_args = 64,
	.literal_minus = false,
};

/* How the driver treats one case. */
struct opts {
	const struct imap_parser_limits *limits;
	/* Feed function per command: 'C' feed(), 'L' feed_line(); the last
	 * letter repeats.  NULL = all commands. */
	const char *modes;
	bool handler;		/* install the test literal handler */
	uint64_t stream_min;	/* handler: stream literals of this size+ */
	uint64_t reject_min;	/* handler: reject literals of this size+ */
};

/* The test literal handler writes into the transcript too. */
struct handler_ctx {
	struct buf *out;
	struct buf data;
	const struct opts *o;
};

static void
put_esc(struct buf *out, const char *s, size_t len, bool quote)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			assert_true(buf_printf(out, "\\x%02x", c));
		else if (quote && (c == '"' || c == '\\'))
			assert_true(buf_printf(out, "\\%c", c));
		else
			assert_true(buf_append(out, &s[i], 1));
	}
}

static void
put_args(struct buf *out, const struct imap_arg *args, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];

		if (i > 0)
			buf_append_str(out, " ");
		switch (a->type) {
		case IMAP_ARG_ATOM:
			assert_false(a->literal8);
			assert_int_equal(strlen(a->v.str), a->len);
			assert_true(a->len > 0);
			put_esc(out, a->v.str, a->len, false);
			break;
		case IMAP_ARG_STRING:
			assert_int_equal(strlen(a->v.str), a->len);
			buf_append_str(out, "\"");
			put_esc(out, a->v.str, a->len, true);
			buf_append_str(out, "\"");
			break;
		case IMAP_ARG_LITERAL:
			assert_int_equal(a->v.str[a->len], '\0');
			buf_printf(out, "%s{%llu}", a->literal8 ? "~" : "",
			    (unsigned long long)a->len);
			put_esc(out, a->v.str, a->len, true);
			break;
		case IMAP_ARG_LITERAL_STREAMED:
			buf_printf(out, "%s{%llu*}", a->literal8 ? "~" : "",
			    (unsigned long long)a->len);
			break;
		case IMAP_ARG_LIST:
			buf_append_str(out, "(");
			put_args(out, a->v.list, (unsigned)a->len);
			buf_append_str(out, ")");
			break;
		case IMAP_ARG_EOL:
			fail_msg("EOL inside an argument array");
		}
	}
	assert_int_equal(args[count].type, IMAP_ARG_EOL);
}

static enum imap_literal_action
h_begin(void *ctx, struct imap_parser *p, uint64_t size, bool literal8,
    const char **reject_msg_r)
{
	struct handler_ctx *h = ctx;
	const char *name = imap_parser_command_name(p);
	enum imap_literal_action act = IMAP_LITERAL_MEMORY;

	if (size >= h->o->reject_min) {
		act = IMAP_LITERAL_REJECT;
		*reject_msg_r = "[TOOBIG] Literal refused by handler";
	} else if (size >= h->o->stream_min) {
		act = IMAP_LITERAL_STREAM;
	}
	buf_printf(h->out, "begin(%llu,%d,%u,%s)=%s\n",
	    (unsigned long long)size, literal8, imap_parser_arg_count(p),
	    name != NULL ? name : "-",
	    act == IMAP_LITERAL_REJECT ? "reject" :
	    act == IMAP_LITERAL_STREAM ? "stream" : "memory");
	buf_reset(&h->data);
	return act;
}

static void
h_data(void *ctx, const void *data, size_t len)
{
	struct handler_ctx *h = ctx;

	assert_true(len > 0);
	assert_true(buf_append(&h->data, data, len));
}

static void
h_end(void *ctx)
{
	struct handler_ctx *h = ctx;

	buf_append_str(h->out, "end(");
	put_esc(h->out, h->data.data != NULL ? h->data.data : "",
	    h->data.len, true);
	buf_append_str(h->out, ")\n");
}

static void
h_abort(void *ctx)
{
	struct handler_ctx *h = ctx;

	buf_printf(h->out, "abort(%zu)\n", h->data.len);
}

static void
setup_handler(struct imap_parser *p, struct handler_ctx *h,
    struct buf *out, const struct opts *o)
{
	struct imap_literal_handler lh = {
		.ctx = h, .begin = h_begin, .data = h_data, .end = h_end,
		.abort = h_abort,
	};

	h->out = out;
	h->o = o;
	buf_init(&h->data, 0);
	imap_parser_set_literal_handler(p, &lh);
}

/* Check the accessors against the tree for a finished command. */
static void
check_accessors(const struct imap_arg *args, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		const struct imap_arg *items;
		const char *s;
		unsigned n;

		switch (a->type) {
		case IMAP_ARG_ATOM:
			assert_true(imap_arg_get_atom(a, &s));
			assert_ptr_equal(s, a->v.str);
			assert_true(imap_arg_get_astring(a, &s));
			assert_false(imap_arg_get_string(a, &s));
			assert_false(imap_arg_get_list(a, &items, &n));
			assert_true(imap_arg_atom_equals(a, a->v.str));
			break;
		case IMAP_ARG_STRING:
		case IMAP_ARG_LITERAL:
			assert_false(imap_arg_is_nil(a));
			assert_false(imap_arg_get_atom(a, &s));
			assert_true(imap_arg_get_string(a, &s));
			assert_ptr_equal(s, a->v.str);
			assert_true(imap_arg_get_astring(a, &s));
			assert_true(imap_arg_get_nstring(a, &s));
			assert_ptr_equal(s, a->v.str);
			assert_false(imap_arg_atom_equals(a, a->v.str));
			break;
		case IMAP_ARG_LITERAL_STREAMED:
			assert_false(imap_arg_get_string(a, &s));
			assert_false(imap_arg_get_astring(a, &s));
			assert_false(imap_arg_get_nstring(a, &s));
			assert_false(imap_arg_is_nil(a));
			break;
		case IMAP_ARG_LIST:
			assert_true(imap_arg_get_list(a, &items, &n));
			assert_int_equal(n, a->len);
			assert_false(imap_arg_get_astring(a, &s));
			assert_false(imap_arg_is_nil(a));
			check_accessors(items, n);
			break;
		case IMAP_ARG_EOL:
			fail();
		}
	}
}

/*
 * Feed input in the pieces given by cuts[] (piece ends, ascending, the
 * last = len) and return the transcript (caller frees).
 */
static char *
run(const char *input, size_t len, const size_t *cuts, size_t ncuts,
    const struct opts *o)
{
	struct imap_parser *p = imap_parser_new(o->limits != NULL ?
	    o->limits : &def_limits);
	struct handler_ctx h;
	struct buf out;
	enum imap_parse_result ret = IMAP_PARSE_MORE;
	size_t pos = 0, item = 0;
	bool stop = false;

	buf_init(&out, 0);
	if (o->handler)
		setup_handler(p, &h, &out, o);
	assert_int_equal(imap_parser_memory(p), 0);
	for (size_t c = 0; c < ncuts && !stop; c++) {
		size_t end = cuts[c];

		while (pos < end) {
			size_t used = 0, mi;
			const char *line = NULL, *tag, *name;
			const char *modes = o->modes != NULL ? o->modes : "C";

			mi = strlen(modes) - 1;
			if (item < mi)
				mi = item;
			if (modes[mi] == 'L') {
				ret = imap_parser_feed_line(p, input + pos,
				    end - pos, &used, &line);
			} else {
				ret = imap_parser_feed(p, input + pos,
				    end - pos, &used);
			}
			assert_true(used <= end - pos);
			pos += used;
			if (ret == IMAP_PARSE_MORE) {
				assert_int_equal(pos, end);
				break;
			}
			if (ret == IMAP_PARSE_CONTINUE) {
				assert_true(used > 0);
				buf_printf(&out, "CONT@%zu\n", pos);
				continue;
			}
			tag = imap_parser_tag(p);
			if (ret == IMAP_PARSE_ERROR) {
				const char *err = imap_parser_error(p);

				assert_non_null(err);
				buf_printf(&out, "ERR@%zu %s%s%s: %s\n", pos,
				    tag != NULL ? tag : "-",
				    imap_parser_error_fatal(p) ? " fatal" : "",
				    imap_parser_error_toobig(p) ? " toobig" :
				    "", err);
				if (imap_parser_error_fatal(p)) {
					/* Sticky until the connection is
					 * closed. */
					assert_int_equal(imap_parser_feed(p,
					    "A9 NOOP\r\n", 9, &used),
					    IMAP_PARSE_ERROR);
					assert_int_equal(used, 0);
					imap_parser_next(p);
					assert_true(imap_parser_error_fatal(p));
					stop = true;
					break;
				}
			} else if (line != NULL) {
				assert_int_equal(ret, IMAP_PARSE_DONE);
				buf_printf(&out, "LINE@%zu ", pos);
				put_esc(&out, line, strlen(line), false);
				buf_append_str(&out, "\n");
			} else {
				const struct imap_arg *args;
				unsigned count;

				assert_int_equal(ret, IMAP_PARSE_DONE);
				name = imap_parser_command_name(p);
				assert_non_null(tag);
				assert_non_null(name);
				args = imap_parser_args(p, &count);
				assert_non_null(args);
				assert_int_equal(count,
				    imap_parser_arg_count(p));
				buf_printf(&out, "DONE@%zu %s %s", pos, tag,
				    name);
				if (count > 0)
					buf_append_str(&out, " ");
				put_args(&out, args, count);
				buf_append_str(&out, "\n");
				check_accessors(args, count);
			}
			imap_parser_next(p);
			/* An idle parser holds no memory. */
			assert_int_equal(imap_parser_memory(p), 0);
			assert_null(imap_parser_tag(p));
			assert_null(imap_parser_command_name(p));
			item++;
		}
	}
	if (!stop && ret == IMAP_PARSE_MORE)
		buf_append_str(&out, "MORE\n");
	imap_parser_free(&p);
	assert_null(p);
	if (o->handler)
		buf_free(&h.data);
	if (out.data == NULL)
		return strdup("");
	return out.data;
}

static void
compare(const char *got, const char *expected, const char *how)
{
	if (strcmp(got, expected) != 0) {
		print_error("Mismatch (%s)\n--- expected:\n%s--- got:\n%s",
		    how, expected, got);
		fail();
	}
}

static void
check_case_len(const char *input, size_t len, const struct opts *o,
    const char *expected)
{
	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	char how[64];
	char *got;
	size_t n, step;
	unsigned seed = 12345;

	/* One piece. */
	cuts[0] = len;
	got = run(input, len, cuts, 1, o);
	compare(got, expected, "one piece");
	free(got);

	/* One byte at a time. */
	for (n = 0; n < len; n++)
		cuts[n] = n + 1;
	got = run(input, len, cuts, len, o);
	compare(got, expected, "byte by byte");
	free(got);

	/* Two pieces, split at every offset (a sample for long inputs). */
	step = len > 2000 ? len / 500 : 1;
	for (size_t k = 1; k < len; k += step) {
		cuts[0] = k;
		cuts[1] = len;
		got = run(input, len, cuts, 2, o);
		snprintf(how, sizeof(how), "split at %zu", k);
		compare(got, expected, how);
		free(got);
	}

	/* Random pieces of 1..16 bytes. */
	for (int r = 0; r < 8; r++) {
		size_t at = 0;

		n = 0;
		while (at < len) {
			seed = seed * 1103515245 + 12345;
			at += 1 + (seed >> 16) % 16;
			if (at > len)
				at = len;
			cuts[n++] = at;
		}
		got = run(input, len, cuts, n, o);
		snprintf(how, sizeof(how), "random pieces #%d", r);
		compare(got, expected, how);
		free(got);
	}
	free(cuts);
}

static const struct opts def_opts = { .limits = NULL };

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* String literal input: its length includes embedded NULs. */
#define CHECK(input, expected) \
	check_case_len(input, sizeof(input) - 1, &def_opts, expected)
#define CHECK_O(o, input, expected) \
	check_case_len(input, sizeof(input) - 1, o, expected)

static void
test_simple(void **state)
{
	CHECK("A1 NOOP\r\n", "DONE@9 A1 NOOP\n");
	CHECK("a1 noop\r\n", "DONE@9 a1 NOOP\n");
	CHECK("A1 NOOP\n", "DONE@8 A1 NOOP\n");
	CHECK("A1 LOGIN user pass\r\n", "DONE@20 A1 LOGIN user pass\n");
	CHECK("x.y]z LIST \"\" *\r\n", "DONE@17 x.y]z LIST \"\" *\n");
	CHECK("A1 uid fetch 1:* (FLAGS)\r\n",
	    "DONE@26 A1 UID fetch 1:* (FLAGS)\n");
	/* Extra spaces are tolerated (as Dovecot does). */
	CHECK("A1  NOOP  x  \r\n", "DONE@15 A1 NOOP x\n");
	/* Incomplete input: nothing yet. */
	CHECK("A1 NOO", "MORE\n");
	CHECK("A1 NOOP\r", "MORE\n");
	CHECK("A1 LOGIN {3}\r\nab", "CONT@14\nMORE\n");
	/* Atom characters: flags, wildcards, 8-bit, '~', ']'. */
	CHECK("A1 STORE 1 +FLAGS (\\Seen \\Deleted $Junk)\r\n",
	    "DONE@42 A1 STORE 1 +FLAGS (\\Seen \\Deleted $Junk)\n");
	CHECK("A1 LIST % INBOX.*\r\n", "DONE@19 A1 LIST % INBOX.*\n");
	CHECK("A1 SELECT Gr\xc3\xbc\xc3\x9f""e ~x ~ a]\r\n",
	    "DONE@27 A1 SELECT Gr\\xc3\\xbc\\xc3\\x9fe ~x ~ a]\n");
}

static void
test_pipelined(void **state)
{
	CHECK("A1 NOOP\r\nA2 LOGIN a b\r\nA3 LOGOUT\r\n",
	    "DONE@9 A1 NOOP\n"
	    "DONE@23 A2 LOGIN a b\n"
	    "DONE@34 A3 LOGOUT\n");
	CHECK("A1 NOOP\nA2 NOOP\r\nA3 NO",
	    "DONE@8 A1 NOOP\n"
	    "DONE@17 A2 NOOP\n"
	    "MORE\n");
	/* An invalid command followed by a valid one. */
	CHECK("A1 NOOP (\r\nA2 FOO a)b\r\nA3 NOOP\r\n",
	    "ERR@11 A1: Missing ')'\n"
	    "ERR@20 A2: Unexpected ')'\n"
	    "DONE@32 A3 NOOP\n");
	/* Literals in pipelined commands. */
	CHECK("A1 LOGIN {1+}\r\na {1+}\r\nb\r\nA2 SELECT {5}\r\nINBOX\r\n",
	    "DONE@26 A1 LOGIN {1}a {1}b\n"
	    "CONT@41\n"
	    "DONE@48 A2 SELECT {5}INBOX\n");
}

static void
test_quoted(void **state)
{
	CHECK("A1 LOGIN \"us\\\"er\" \"p\\\\ss\"\r\n",
	    "DONE@27 A1 LOGIN \"us\\\"er\" \"p\\\\ss\"\n");
	CHECK("A1 X \"\" \"a b\" \"(\" \")\" \"{5}\"\r\n",
	    "DONE@29 A1 X \"\" \"a b\" \"(\" \")\" \"{5}\"\n");
	/* 8-bit (UTF-8) and TEXT-CHAR controls such as TAB are allowed. */
	CHECK("A1 X \"gr\xc3\xbc\xc3\x9f""e\" \"a\tb\"\r\n",
	    "DONE@22 A1 X \"gr\\xc3\\xbc\\xc3\\x9fe\" \"a\\x09b\"\n");
	/* Quoted strings inside lists, and directly closing a list. */
	CHECK("A1 X (\"a\" (\"b\"))\r\n", "DONE@18 A1 X (\"a\" (\"b\"))\n");
	/* Other escapes, CR, LF and NUL are errors. */
	CHECK("A1 X \"a\\nb\"\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Invalid escape in quoted string\n"
	    "DONE@22 A2 NOOP\n");
	CHECK("A1 X \"ab\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Unterminated quoted string\n"
	    "DONE@19 A2 NOOP\n");
	CHECK("A1 X \"ab\nA2 NOOP\r\n",
	    "ERR@9 A1: Unterminated quoted string\n"
	    "DONE@18 A2 NOOP\n");
	CHECK("A1 X \"a\\\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Unterminated quoted string\n"
	    "DONE@19 A2 NOOP\n");
	CHECK("A1 X \"a\0b\"\r\nA2 NOOP\r\n",
	    "ERR@8 A1: NUL byte in quoted string\n"
	    "DONE@21 A2 NOOP\n");
	/* A string must be followed by SP, ')' or the line end. */
	CHECK("A1 X \"a\"b\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Missing space between arguments\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1 X \"a\"\"b\"\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Missing space between arguments\n"
	    "DONE@22 A2 NOOP\n");
}

static void
test_literal_sync(void **state)
{
	CHECK("A1 LOGIN {4}\r\nuser {4}\r\npass\r\n",
	    "CONT@14\n"
	    "CONT@24\n"
	    "DONE@30 A1 LOGIN {4}user {4}pass\n");
	/* Bare LF after the size; leading zeros. */
	CHECK("A1 LOGIN {004}\nuser x\r\n",
	    "CONT@15\n"
	    "DONE@23 A1 LOGIN {4}user x\n");
	/* NUL, CR and LF inside a literal are data. */
	CHECK("A1 X {6}\r\na\0\r\nb\n\r\n",
	    "CONT@10\n"
	    "DONE@18 A1 X {6}a\\x00\\x0d\\x0ab\\x0a\n");
	/* Something that looks like a command inside a literal. */
	CHECK("A1 X {9}\r\nA2 NOOP\r\n\r\n",
	    "CONT@10\n"
	    "DONE@21 A1 X {9}A2 NOOP\\x0d\\x0a\n");
	/* Empty literal. */
	CHECK("A1 X {0}\r\n\r\n", "CONT@10\nDONE@12 A1 X {0}\n");
	CHECK("A1 X {0}\r\n {0}\r\n)\r\n",
	    "CONT@10\n"
	    "CONT@16\n"
	    "ERR@17 A1: Unexpected ')'\n"
	    "MORE\n");
	/* Inside lists. */
	CHECK("A1 X (a {1}\r\nb (c {2}\r\nde))\r\n",
	    "CONT@13\n"
	    "CONT@23\n"
	    "DONE@29 A1 X (a {1}b (c {2}de))\n");
	/* Data must be followed by SP, ')' or the line end. */
	CHECK("A1 X {1}\r\nab\r\nA2 NOOP\r\n",
	    "CONT@10\n"
	    "ERR@12 A1: Missing space between arguments\n"
	    "DONE@23 A2 NOOP\n");
	/* Literal announcement syntax. */
	CHECK("A1 X {5}x\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Missing CRLF after literal size\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1 X {5}\rx\r\nA2 NOOP\r\n",
	    "ERR@10 A1: CR not followed by LF\n"
	    "DONE@21 A2 NOOP\n");
	CHECK("A1 X {}\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid literal size\n"
	    "DONE@18 A2 NOOP\n");
	CHECK("A1 X {abc}\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid literal size\n"
	    "DONE@21 A2 NOOP\n");
	CHECK("A1 X {5-}\r\nA2 NOOP\r\n",
	    "ERR@8 A1: Invalid literal size\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1 X {5+x}\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Invalid literal size\n"
	    "DONE@21 A2 NOOP\n");
	CHECK("A1 X { 5}\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid literal size\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1 X {5\r\nA2 NOOP\r\n",
	    "ERR@8 A1: Invalid literal size\n"
	    "DONE@18 A2 NOOP\n");
	/* A literal is an argument, not part of an atom. */
	CHECK("A1 X a{5}\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@20 A2 NOOP\n");
}

static void
test_literal_nonsync(void **state)
{
	/* {n+}: no continuation request. */
	CHECK("A1 LOGIN {4+}\r\nuser {4+}\r\npass\r\n",
	    "DONE@32 A1 LOGIN {4}user {4}pass\n");
	CHECK("A1 X {0+}\r\n\r\nA2 NOOP\r\n",
	    "DONE@13 A1 X {0}\nDONE@22 A2 NOOP\n");
	CHECK("A1 X ({3+}\r\na\0b)\r\n",
	    "DONE@18 A1 X ({3}a\\x00b)\n");
	/* A big {n+} without LITERAL- is fine. */
	{
		static char in[5000 + 64];
		char exp[64];
		int n = snprintf(in, sizeof(in), "A1 APPEND INBOX {5000+}\r\n");

		memset(in + n, 'x', 5000);
		memcpy(in + n + 5000, "\r\n", 2);
		snprintf(exp, sizeof(exp), "DONE@%d A1 APPEND INBOX {5000}",
		    n + 5002);
		{
			struct buf e;

			buf_init(&e, 0);
			buf_append_str(&e, exp);
			for (int i = 0; i < 5000; i++)
				buf_append_str(&e, "x");
			buf_append_str(&e, "\n");
			check_case_len(in, (size_t)n + 5002, &def_opts,
			    e.data);
			buf_free(&e);
		}
	}
}

static void
test_literal8(void **state)
{
	CHECK("A1 APPEND INBOX ~{3}\r\nabc\r\n",
	    "CONT@22\n"
	    "DONE@27 A1 APPEND INBOX ~{3}abc\n");
	CHECK("A1 APPEND INBOX ~{3+}\r\na\0c\r\n",
	    "DONE@28 A1 APPEND INBOX ~{3}a\\x00c\n");
	CHECK("A1 X (~{1+}\r\na)\r\n", "DONE@17 A1 X (~{1}a)\n");
	/* '~' not followed by '{' starts an atom. */
	CHECK("A1 X ~ ~a (~)\r\n", "DONE@15 A1 X ~ ~a (~)\n");
	CHECK("A1 X ~(\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@18 A2 NOOP\n");
	CHECK("A1 X ~{x}\r\nA2 NOOP\r\n",
	    "ERR@8 A1: Invalid literal size\n"
	    "DONE@20 A2 NOOP\n");
}

static void
test_lists(void **state)
{
	CHECK("A1 X (a (b (c)) d)\r\n", "DONE@20 A1 X (a (b (c)) d)\n");
	CHECK("A1 X () (()) ( ) (a )\r\n",
	    "DONE@23 A1 X () (()) () (a)\n");
	CHECK("A1 X (a)(b)\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Missing space between arguments\n"
	    "DONE@22 A2 NOOP\n");
	CHECK("A1 X (\r\nA2 NOOP\r\n",
	    "ERR@8 A1: Missing ')'\n"
	    "DONE@17 A2 NOOP\n");
	CHECK("A1 X ((a) (b)\nA2 NOOP\r\n",
	    "ERR@14 A1: Missing ')'\n"
	    "DONE@23 A2 NOOP\n");
	CHECK("A1 X )\r\nA2 NOOP\r\n",
	    "ERR@6 A1: Unexpected ')'\n"
	    "DONE@17 A2 NOOP\n");
	CHECK("A1 X (a))\r\nA2 NOOP\r\n",
	    "ERR@9 A1: Unexpected ')'\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1 X a)\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Unexpected ')'\n"
	    "DONE@18 A2 NOOP\n");
	/* Every kind of argument in one list. */
	CHECK("A1 X (atom \"q\" {1}\r\nl ~{1+}\r\n8 NIL (x))\r\n",
	    "CONT@20\n"
	    "DONE@41 A1 X (atom \"q\" {1}l ~{1}8 NIL (x))\n");
}

static void
test_fetch_atoms(void **state)
{
	CHECK("A1 FETCH 1 (FLAGS BODY[HEADER.FIELDS (FROM TO)]<0.100>)\r\n",
	    "DONE@57 A1 FETCH 1 (FLAGS BODY[HEADER.FIELDS (FROM TO)]<0.100>)"
	    "\n");
	CHECK("A1 FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (X-A (Y))]\r\n",
	    "DONE@51 A1 FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (X-A (Y))]\n");
	CHECK("A1 FETCH 1:2 (BODY[] BODY[1.2.MIME] BINARY[1]<5.10>)\r\n",
	    "DONE@54 A1 FETCH 1:2 (BODY[] BODY[1.2.MIME] BINARY[1]<5.10>)\n");
	/* Nested brackets; quotes and braces are plain inside brackets. */
	CHECK("A1 X a[b[c d]e (f)]g h\r\n", "DONE@24 A1 X a[b[c d]e (f)]g h\n");
	CHECK("A1 X a[\"{5}\"]\r\n", "DONE@15 A1 X a[\"{5}\"]\n");
	CHECK("A1 X ]a]\r\n", "DONE@10 A1 X ]a]\n");
	CHECK("A1 FETCH 1 BODY[HEADER\r\nA2 NOOP\r\n",
	    "ERR@24 A1: Missing ']' in atom\n"
	    "DONE@33 A2 NOOP\n");
	CHECK("A1 FETCH 1 BODY[HEADER\nA2 NOOP\r\n",
	    "ERR@23 A1: Missing ']' in atom\n"
	    "DONE@32 A2 NOOP\n");
	CHECK("A1 FETCH 1 BODY[\x01]\r\nA2 NOOP\r\n",
	    "ERR@17 A1: Invalid characters in atom\n"
	    "DONE@29 A2 NOOP\n");
	CHECK("A1 FETCH 1 (BODY[1] \r\nA2 NOOP\r\n",
	    "ERR@22 A1: Missing ')'\n"
	    "DONE@31 A2 NOOP\n");
}

static void
test_nil(void **state)
{
	struct imap_parser *p = imap_parser_new(&def_limits);
	static const char in[] = "A1 X NIL nil \"NIL\" {3+}\r\nNIL Nil2 "
	    "(NIL)\r\n";
	const struct imap_arg *args, *items;
	const char *s;
	size_t used;
	unsigned count, n;

	assert_int_equal(imap_parser_feed(p, in, sizeof(in) - 1, &used),
	    IMAP_PARSE_DONE);
	assert_int_equal(used, sizeof(in) - 1);
	args = imap_parser_args(p, &count);
	assert_int_equal(count, 6);
	assert_true(imap_arg_is_nil(&args[0]));
	assert_true(imap_arg_is_nil(&args[1]));
	assert_false(imap_arg_is_nil(&args[2]));
	assert_false(imap_arg_is_nil(&args[3]));
	assert_false(imap_arg_is_nil(&args[4]));
	assert_true(imap_arg_get_nstring(&args[0], &s));
	assert_null(s);
	assert_true(imap_arg_get_nstring(&args[2], &s));
	assert_string_equal(s, "NIL");
	assert_true(imap_arg_get_nstring(&args[3], &s));
	assert_string_equal(s, "NIL");
	/* NIL is an atom for astring purposes (RFC 3501 astring). */
	assert_true(imap_arg_get_astring(&args[0], &s));
	assert_string_equal(s, "NIL");
	assert_true(imap_arg_get_atom(&args[1], &s));
	assert_string_equal(s, "nil");
	assert_false(imap_arg_get_string(&args[0], &s));
	assert_false(imap_arg_get_nstring(&args[4], &s));
	assert_true(imap_arg_atom_equals(&args[4], "NIL2"));
	assert_false(imap_arg_atom_equals(&args[4], "NIL"));
	assert_false(imap_arg_atom_equals(&args[2], "NIL"));
	assert_true(imap_arg_get_list(&args[5], &items, &n));
	assert_int_equal(n, 1);
	assert_true(imap_arg_is_nil(&items[0]));
	assert_int_equal(items[1].type, IMAP_ARG_EOL);
	assert_false(imap_arg_get_list(&args[0], &items, &n));
	assert_int_equal(args[6].type, IMAP_ARG_EOL);
	imap_parser_free(&p);
}

static void
test_limit_line(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	l.max_line = 20;
	/* Exactly 20 bytes of text (CRLF not counted) is fine. */
	CHECK_O(&o, "A1 LOGIN aaaaa bbbbb\r\n",
	    "DONE@22 A1 LOGIN aaaaa bbbbb\n");
	/* Byte 21 fails at once, and the rest of the line is skipped. */
	CHECK_O(&o, "A1 LOGIN aaaaa bbbbbX\r\nA2 NOOP\r\n",
	    "ERR@21 A1 toobig: Line too long\n"
	    "DONE@32 A2 NOOP\n");
	/* No need for the LF to come: the error is prompt. */
	CHECK_O(&o, "A1 LOGIN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    "ERR@21 A1 toobig: Line too long\nMORE\n");
	/* Before the tag is complete, there is no tag to report. */
	CHECK_O(&o, "AAAAAAAAAAAAAAAAAAAAAAAAA NOOP\nA2 NOOP\n",
	    "ERR@21 - toobig: Line too long\n"
	    "DONE@39 A2 NOOP\n");
	/* Literal data does not count, the text of all lines does. */
	CHECK_O(&o, "A1 X {30+}\r\n012345678901234567890123456789\r\n",
	    "DONE@44 A1 X {30}012345678901234567890123456789\n");
	CHECK_O(&o, "A1 X {3+}\r\nabc aaaaaaaaaa\r\nA2 NOOP\r\n",
	    "DONE@27 A1 X {3}abc aaaaaaaaaa\nDONE@36 A2 NOOP\n");
	CHECK_O(&o, "A1 X {3+}\r\nabc aaaaaaaaaaa\r\nA2 NOOP\r\n",
	    "ERR@26 A1 toobig: Line too long\n"
	    "DONE@37 A2 NOOP\n");
	/* The limit hits inside a quoted string. */
	CHECK_O(&o, "A1 X \"aaaaaaaaaaaaaaaaaaaaaaa\"\r\nA2 NOOP\r\n",
	    "ERR@21 A1 toobig: Line too long\n"
	    "DONE@41 A2 NOOP\n");
}

static void
test_limit_literal(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	l.max_literal = 8;
	CHECK_O(&o, "A1 X {8}\r\n12345678\r\n",
	    "CONT@10\nDONE@20 A1 X {8}12345678\n");
	/* Synchronizing: refused without a continuation; the client sends
	 * nothing more for this command, so nothing is skipped. */
	CHECK_O(&o, "A1 X {9}\r\nA2 NOOP\r\n",
	    "ERR@10 A1 toobig: Literal too large\n"
	    "DONE@19 A2 NOOP\n");
	CHECK_O(&o, "A1 X ~{9}\r\nA2 NOOP\r\n",
	    "ERR@11 A1 toobig: Literal too large\n"
	    "DONE@20 A2 NOOP\n");
	/* Non-synchronizing: the data is coming anyway, so this is fatal. */
	CHECK_O(&o, "A1 X {9+}\r\n123456789\r\nA2 NOOP\r\n",
	    "ERR@11 A1 fatal toobig: Literal too large\n");
	CHECK_O(&o, "A1 X (a {9+}\n123456789)\r\n",
	    "ERR@13 A1 fatal toobig: Literal too large\n");
}

static void
test_limit_total(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	l.max_total = 40;
	l.max_literal = 20;
	/* Text 9 + 5 = 14 bytes, literals 10 + 16 = 26: 40 in all. */
	CHECK_O(&o, "A1 X {10}\r\n0123456789 {16}\r\n0123456789abcdef\r\n",
	    "CONT@11\n"
	    "CONT@28\n"
	    "DONE@46 A1 X {10}0123456789 {16}0123456789abcdef\n");
	CHECK_O(&o, "A1 X {10}\r\n0123456789 {17}\r\nA2 NOOP\r\n",
	    "CONT@11\n"
	    "ERR@28 A1 toobig: Command too large\n"
	    "DONE@37 A2 NOOP\n");
	CHECK_O(&o, "A1 X {10+}\r\n0123456789 {14+}\r\n0123456789abcd\r\n",
	    "DONE@46 A1 X {10}0123456789 {14}0123456789abcd\n");
	CHECK_O(&o, "A1 X {10+}\r\n0123456789 {14+}\r\n0123456789abcd \r\n",
	    "ERR@45 A1 toobig: Command too large\n"
	    "MORE\n");
	CHECK_O(&o, "A1 X {10+}\r\n0123456789 {17+}\r\n0123456789abcdefg\r\n",
	    "ERR@30 A1 fatal toobig: Command too large\n");
	/* Text alone beyond max_total. */
	l.max_total = 10;
	CHECK_O(&o, "A1 NOOP abcdef\r\nA2 NOOP\r\n",
	    "ERR@11 A1 toobig: Command too large\n"
	    "DONE@25 A2 NOOP\n");
	l.max_total = 20;
	CHECK_O(&o, "A1 X {10+}\r\n0123456789\r\nA2 NOOP\r\n",
	    "DONE@24 A1 X {10}0123456789\nDONE@33 A2 NOOP\n");
	CHECK_O(&o, "A1 X {10+}\r\n0123456789 abcd\r\nA2 NOOP\r\n",
	    "ERR@23 A1 toobig: Command too large\n"
	    "DONE@38 A2 NOOP\n");
}

static void
test_limit_depth(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	l.max_depth = 2;
	CHECK_O(&o, "A1 X ((a) (b)) ()\r\n", "DONE@19 A1 X ((a) (b)) ()\n");
	CHECK_O(&o, "A1 X ((()))\r\nA2 X (())\r\n",
	    "ERR@8 A1: Too deeply nested lists\n"
	    "DONE@24 A2 X (())\n");
	l.max_depth = 0;
	CHECK_O(&o, "A1 X (a)\r\nA2 X a\r\n",
	    "ERR@6 A1: Too deeply nested lists\n"
	    "DONE@18 A2 X a\n");
	/* Brackets inside atoms are not lists. */
	CHECK_O(&o, "A1 FETCH 1 BODY[HEADER.FIELDS (A (B))]\r\n",
	    "DONE@40 A1 FETCH 1 BODY[HEADER.FIELDS (A (B))]\n");
	/* A deep list with a generous limit. */
	l.max_depth = 1000;
	l.max_args = 1000;
	{
		struct buf in, exp;

		buf_init(&in, 0);
		buf_init(&exp, 0);
		buf_append_str(&in, "A1 X ");
		for (int i = 0; i < 300; i++)
			buf_append_str(&in, "(");
		for (int i = 0; i < 300; i++)
			buf_append_str(&in, ")");
		buf_append_str(&in, "\r\n");
		buf_printf(&exp, "DONE@%zu A1 X %.*s\n", in.len,
		    (int)in.len - 7, in.data + 5);
		check_case_len(in.data, in.len, &o, exp.data);
		buf_free(&in);
		buf_free(&exp);
	}
}

static void
test_limit_args(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	l.max_args = 3;
	CHECK_O(&o, "A1 X a \"b\" {1+}\r\nc\r\n",
	    "DONE@20 A1 X a \"b\" {1}c\n");
	CHECK_O(&o, "A1 X a b c d\r\nA2 X e\r\n",
	    "ERR@12 A1: Too many arguments\n"
	    "DONE@22 A2 X e\n");
	/* A list counts, and so do its items. */
	CHECK_O(&o, "A1 X (a b)\r\n", "DONE@12 A1 X (a b)\n");
	CHECK_O(&o, "A1 X (a b) c\r\nA2 X (a (b))\r\n",
	    "ERR@12 A1: Too many arguments\n"
	    "ERR@24 A2: Too many arguments\n"
	    "MORE\n");
	CHECK_O(&o, "A1 X a b ~c d\r\nA2 X ~{1}\r\nz\r\n",
	    "ERR@13 A1: Too many arguments\n"
	    "CONT@26\n"
	    "DONE@29 A2 X ~{1}z\n");
	l.max_args = 0;
	CHECK_O(&o, "A1 NOOP\r\nA2 NOOP x\r\n",
	    "DONE@9 A1 NOOP\n"
	    "ERR@18 A2: Too many arguments\n"
	    "MORE\n");
}

static void
test_literal_minus(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };
	struct buf in, exp;

	l.literal_minus = true;
	l.max_literal = 10000;
	l.max_total = 20000;
	/* 4096 bytes is the largest {n+} allowed (RFC 7888 section 5). */
	buf_init(&in, 0);
	buf_init(&exp, 0);
	buf_append_str(&in, "A1 APPEND INBOX {4096+}\r\n");
	for (int i = 0; i < 4096; i++)
		buf_append(&in, &"abcdefgh"[i % 8], 1);
	buf_append_str(&in, "\r\n");
	buf_printf(&exp, "DONE@%zu A1 APPEND INBOX {4096}", in.len);
	buf_append(&exp, in.data + 25, 4096);
	buf_append_str(&exp, "\n");
	check_case_len(in.data, in.len, &o, exp.data);
	buf_free(&in);
	buf_free(&exp);

	CHECK_O(&o, "A1 APPEND INBOX {4097+}\r\nxxxx",
	    "ERR@25 A1 fatal toobig: Non-synchronizing literal over 4096 "
	    "bytes (LITERAL-)\n");
	CHECK_O(&o, "A1 APPEND INBOX ~{4097+}\r\nxxxx",
	    "ERR@26 A1 fatal toobig: Non-synchronizing literal over 4096 "
	    "bytes (LITERAL-)\n");
	/* Synchronizing literals are not affected. */
	CHECK_O(&o, "A1 APPEND INBOX {4097}\r\n", "CONT@24\n");
	/* Without LITERAL- the same {n+} is fine. */
	l.literal_minus = false;
	CHECK_O(&o, "A1 APPEND INBOX {4097+}\r\nxxxx", "MORE\n");
}

static void
test_literal_size_overflow(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	/* 2^63 - 1 is a valid number64, just too large here. */
	CHECK("A1 X {9223372036854775807}\r\nA2 NOOP\r\n",
	    "ERR@28 A1 toobig: Literal too large\n"
	    "DONE@37 A2 NOOP\n");
	CHECK("A1 X {9223372036854775808}\r\nA2 NOOP\r\n",
	    "ERR@28 A1 toobig: Literal size too large\n"
	    "DONE@37 A2 NOOP\n");
	CHECK("A1 X {18446744073709551616}\r\nA2 NOOP\r\n",
	    "ERR@29 A1 toobig: Literal size too large\n"
	    "DONE@38 A2 NOOP\n");
	CHECK("A1 X {99999999999999999999}\r\nA2 NOOP\r\n",
	    "ERR@29 A1 toobig: Literal size too large\n"
	    "DONE@38 A2 NOOP\n");
	CHECK("A1 X {99999999999999999999+}\r\nxx\r\n",
	    "ERR@30 A1 fatal toobig: Literal size too large\n");
	CHECK("A1 X {00000000000000000000000000000001}\r\nx\r\n",
	    "CONT@41\nDONE@44 A1 X {1}x\n");
	/* A huge size with a handler that would stream anything. */
	o.handler = true;
	o.stream_min = 0;
	o.reject_min = UINT64_MAX;
	CHECK_O(&o, "A1 X {99999999999999999999}\r\nA2 NOOP\r\n",
	    "ERR@29 A1 toobig: Literal size too large\n"
	    "DONE@38 A2 NOOP\n");
	CHECK_O(&o, "A1 X {9223372036854775807}\r\n",
	    "begin(9223372036854775807,0,0,X)=stream\n"
	    "CONT@28\n"
	    "abort(0)\n");
}

static void
test_garbage(void **state)
{
	CHECK("A1 NOOP a\x01z\r\nA2 NOOP\r\n",
	    "ERR@10 A1: Invalid characters in atom\n"
	    "DONE@22 A2 NOOP\n");
	CHECK("A1 X \0\r\nA2 NOOP\r\n",
	    "ERR@6 A1: NUL byte in command\n"
	    "DONE@17 A2 NOOP\n");
	CHECK("A1 X a\0\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@18 A2 NOOP\n");
	CHECK("A1 X \x07\r\nA2 NOOP\r\n",
	    "ERR@6 A1: Control character in command\n"
	    "DONE@17 A2 NOOP\n");
	CHECK("A1 X \x7f\r\nA2 NOOP\r\n",
	    "ERR@6 A1: Control character in command\n"
	    "DONE@17 A2 NOOP\n");
	CHECK("A1 X a\"b\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@19 A2 NOOP\n");
	CHECK("A1 X a(b\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@19 A2 NOOP\n");
	CHECK("A1 X a\tb\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@19 A2 NOOP\n");
	/* Tags. */
	CHECK(" NOOP\r\nA2 NOOP\r\n",
	    "ERR@1 -: Missing tag\n"
	    "DONE@16 A2 NOOP\n");
	CHECK("\r\nA2 NOOP\r\n",
	    "ERR@2 -: Empty command line\n"
	    "DONE@11 A2 NOOP\n");
	CHECK("\nA2 NOOP\r\n",
	    "ERR@1 -: Empty command line\n"
	    "DONE@10 A2 NOOP\n");
	CHECK("A1\r\nA2 NOOP\r\n",
	    "ERR@4 A1: Missing command name\n"
	    "DONE@13 A2 NOOP\n");
	CHECK("A1 \r\nA2 NOOP\r\n",
	    "ERR@5 A1: Missing command name\n"
	    "DONE@14 A2 NOOP\n");
	CHECK("A1", "MORE\n");
	CHECK("A+1 NOOP\r\nA2 NOOP\r\n",
	    "ERR@2 -: Invalid characters in tag\n"
	    "DONE@19 A2 NOOP\n");
	CHECK("+ NOOP\r\nA2 NOOP\r\n",
	    "ERR@1 -: Invalid characters in tag\n"
	    "DONE@17 A2 NOOP\n");
	CHECK("* OK\r\nA2 NOOP\r\n",
	    "ERR@1 -: Invalid characters in tag\n"
	    "DONE@15 A2 NOOP\n");
	CHECK("A\xc3\xa9""1 NOOP\r\nA2 NOOP\r\n",
	    "ERR@2 -: Invalid characters in tag\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1(x)\r\nA2 NOOP\r\n",
	    "ERR@3 A1: Missing space after tag\n"
	    "DONE@16 A2 NOOP\n");
	CHECK("A1\"x\"\r\nA2 NOOP\r\n",
	    "ERR@3 A1: Missing space after tag\n"
	    "DONE@16 A2 NOOP\n");
	CHECK("\0\0\0\r\nA2 NOOP\r\n",
	    "ERR@1 -: Invalid characters in tag\n"
	    "DONE@14 A2 NOOP\n");
	CHECK("\xff\xfe\x01\x02\r\nA2 NOOP\r\n",
	    "ERR@1 -: Invalid characters in tag\n"
	    "DONE@15 A2 NOOP\n");
	CHECK(")\r\nA2 NOOP\r\n",
	    "ERR@1 -: Invalid characters in tag\n"
	    "DONE@12 A2 NOOP\n");
	/* Command names. */
	CHECK("A1 NO*OP\r\nA2 NOOP\r\n",
	    "ERR@6 A1: Invalid characters in command name\n"
	    "DONE@19 A2 NOOP\n");
	CHECK("A1 (NOOP)\r\nA2 NOOP\r\n",
	    "ERR@4 A1: Invalid characters in command name\n"
	    "DONE@20 A2 NOOP\n");
	CHECK("A1 NOOP(x)\r\nA2 NOOP\r\n",
	    "ERR@8 A1: Invalid characters in command name\n"
	    "DONE@21 A2 NOOP\n");
	CHECK("A1 {3}\r\nA2 NOOP\r\n",
	    "ERR@4 A1: Invalid characters in command name\n"
	    "DONE@17 A2 NOOP\n");
	/* CR must be followed by LF. */
	CHECK("A1 NOOP\rA2 NOOP\r\nA3 NOOP\r\n",
	    "ERR@9 A1: CR not followed by LF\n"
	    "DONE@26 A3 NOOP\n");
	CHECK("A1 NOOP\r\r\nA3 NOOP\r\n",
	    "ERR@9 A1: CR not followed by LF\n"
	    "DONE@19 A3 NOOP\n");
	CHECK("\r\r\nA3 NOOP\r\n",
	    "ERR@2 -: CR not followed by LF\n"
	    "DONE@12 A3 NOOP\n");
	/* Many bad lines in a row, then a good one. */
	CHECK("\x01\r\n)\r\n(\r\n\"\r\n{5}\r\n{5+}\r\nA1 NOOP\r\n",
	    "ERR@1 -: Invalid characters in tag\n"
	    "ERR@4 -: Invalid characters in tag\n"
	    "ERR@7 -: Invalid characters in tag\n"
	    "ERR@10 -: Invalid characters in tag\n"
	    "ERR@13 -: Invalid characters in tag\n"
	    "ERR@18 -: Invalid characters in tag\n"
	    "ERR@23 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
}

/*
 * A command line rejected before its end may still end with "{n+}": the
 * client then sends the literal without waiting, and those bytes must not
 * be taken for commands.  The first error is reported at once (not
 * fatal); the skip that follows finds the {n+} and turns fatal.
 */
static void
test_skip_nonsync(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l };

	CHECK("A1 X a\x01 {5+}\r\nA2 NO\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "ERR@14 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	CHECK("A1 X a\x01 ~{5+}\nA2 NO\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "ERR@14 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	/* Synchronizing: the client waits, and nothing was sent. */
	CHECK("A1 X a\x01 {5}\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@22 A2 NOOP\n");
	/* Not at the line end: no literal. */
	CHECK("A1 X a\x01 {5+} x\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@25 A2 NOOP\n");
	CHECK("A1 X a\x01 {5+}x\r\nA2 NOOP\r\n",
	    "ERR@7 A1: Invalid characters in atom\n"
	    "DONE@24 A2 NOOP\n");
	/* The error is at the '{' itself. */
	l.max_args = 1;
	CHECK_O(&o, "A1 X a {5+}\r\nhello\r\n",
	    "ERR@8 A1: Too many arguments\n"
	    "ERR@13 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	CHECK_O(&o, "A1 X a ~{5+}\r\nhello\r\n",
	    "ERR@8 A1: Too many arguments\n"
	    "ERR@14 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	CHECK_O(&o, "A1 X a {5}\r\nA2 NOOP\r\n",
	    "ERR@8 A1: Too many arguments\n"
	    "DONE@21 A2 NOOP\n");
	/* The line limit hits inside the size digits, at '+' or at '}'. */
	l = def_limits;
	l.max_line = 8;
	CHECK_O(&o, "A1 X {12+}\r\nhello world!\r\n",
	    "ERR@9 A1 toobig: Line too long\n"
	    "ERR@12 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	CHECK_O(&o, "A1 X {1+}\r\nh\r\n",
	    "ERR@9 A1 toobig: Line too long\n"
	    "ERR@11 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	CHECK_O(&o, "A1 X{12}\r\nA2 NOOP\r\n",
	    "ERR@5 A1: Invalid characters in command name\n"
	    "DONE@19 A2 NOOP\n");
	l.max_line = 7;
	CHECK_O(&o, "A1 X {5+}\r\nhello\r\n",
	    "ERR@8 A1 toobig: Line too long\n"
	    "ERR@11 - fatal: Non-synchronizing literal in a rejected "
	    "command\n");
	/* Raw lines have no literals. */
	o.modes = "L";
	l.max_line = 3;
	CHECK_O(&o, "abcd {5+}\r\nabc\r\n",
	    "ERR@4 - toobig: Line too long\n"
	    "LINE@16 abc\n");
}

static void
test_feed_line(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l, .modes = "L" };

	CHECK_O(&o, "DONE\r\n", "LINE@6 DONE\n");
	CHECK_O(&o, "dGVzdA==\n\r\n", "LINE@9 dGVzdA==\nLINE@11 \n");
	CHECK_O(&o, "*\r\n", "LINE@3 *\n");
	/* Only the CR before LF is stripped. */
	CHECK_O(&o, "a\rb\r\r\n", "LINE@6 a\\x0db\\x0d\n");
	CHECK_O(&o, "\xc3\xa9 (){}\"\r\n",
	    "LINE@10 \\xc3\\xa9 (){}\"\n");
	CHECK_O(&o, "abc", "MORE\n");
	CHECK_O(&o, "abc\r", "MORE\n");
	CHECK_O(&o, "a\0b\r\nxyz\r\n",
	    "ERR@2 -: NUL byte in line\n"
	    "LINE@10 xyz\n");
	l.max_line = 4;
	CHECK_O(&o, "abcd\r\nabcde\r\nab\n",
	    "LINE@6 abcd\n"
	    "ERR@11 - toobig: Line too long\n"
	    "LINE@16 ab\n");
	/* A held CR counts once a non-LF byte shows it was data. */
	CHECK_O(&o, "abc\r\r\nabc\rd\r\n",
	    "LINE@6 abc\\x0d\n"
	    "ERR@11 - toobig: Line too long\n"
	    "MORE\n");
	/* IDLE: "DONE" as a raw line, then commands. */
	l = def_limits;
	o.modes = "LC";
	CHECK_O(&o, "DONE\r\nA1 NOOP\r\nA2 NOOP\r\n",
	    "LINE@6 DONE\n"
	    "DONE@15 A1 NOOP\n"
	    "DONE@24 A2 NOOP\n");
	/* AUTHENTICATE: command, raw line, command. */
	o.modes = "CLC";
	CHECK_O(&o, "A1 AUTHENTICATE PLAIN\r\nAGEAYg==\r\nA2 NOOP\r\n",
	    "DONE@23 A1 AUTHENTICATE PLAIN\n"
	    "LINE@33 AGEAYg==\n"
	    "DONE@42 A2 NOOP\n");
	/* A command error skips its line even if a raw line comes next. */
	CHECK_O(&o, "A1 X )junk\r\nA2 NOOP\r\nA3 NOOP\r\n",
	    "ERR@6 A1: Unexpected ')'\n"
	    "LINE@21 A2 NOOP\n"
	    "DONE@30 A3 NOOP\n");
}

static void
test_streamed_literal(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct opts o = { .limits = &l, .handler = true, .stream_min = 10,
	    .reject_min = 100 };

	CHECK_O(&o, "A1 APPEND INBOX (\\Seen) {12}\r\nHello world!\r\n",
	    "begin(12,0,2,APPEND)=stream\n"
	    "CONT@30\n"
	    "end(Hello world!)\n"
	    "DONE@44 A1 APPEND INBOX (\\Seen) {12*}\n");
	/* Small literals stay in memory; literal8 and {n+}. */
	CHECK_O(&o,
	    "A1 X {3+}\r\nabc ~{10+}\r\n0123\0\r\n789 (x {2}\r\nyz)\r\n",
	    "begin(3,0,0,X)=memory\n"
	    "begin(10,1,1,X)=stream\n"
	    "end(0123\\x00\\x0d\\x0a789)\n"
	    "begin(2,0,2,X)=memory\n"
	    "CONT@42\n"
	    "DONE@47 A1 X {3}abc ~{10*} (x {2}yz)\n");
	/* Not subject to max_literal / max_total. */
	l.max_literal = 5;
	l.max_total = 60;
	CHECK_O(&o, "A1 X {50+}\r\n"
	    "01234567890123456789012345678901234567890123456789\r\n",
	    "begin(50,0,0,X)=stream\n"
	    "end(01234567890123456789012345678901234567890123456789)\n"
	    "DONE@64 A1 X {50*}\n");
	/* Memory literals still are. */
	CHECK_O(&o, "A1 X {6}\r\nA2 NOOP\r\n",
	    "begin(6,0,0,X)=memory\n"
	    "ERR@10 A1 toobig: Literal too large\n"
	    "DONE@19 A2 NOOP\n");
	l = def_limits;
	/* Rejected by the handler: synchronizing is not fatal. */
	CHECK_O(&o, "A1 APPEND INBOX {100}\r\nA2 NOOP\r\n",
	    "begin(100,0,1,APPEND)=reject\n"
	    "ERR@23 A1: [TOOBIG] Literal refused by handler\n"
	    "DONE@32 A2 NOOP\n");
	CHECK_O(&o, "A1 APPEND INBOX {100+}\r\nxxx",
	    "begin(100,0,1,APPEND)=reject\n"
	    "ERR@24 A1 fatal: [TOOBIG] Literal refused by handler\n");
	/* LITERAL- is checked before asking the handler. */
	l.literal_minus = true;
	o.reject_min = UINT64_MAX;
	CHECK_O(&o, "A1 APPEND INBOX {5000+}\r\nxxx",
	    "ERR@25 A1 fatal toobig: Non-synchronizing literal over 4096 "
	    "bytes (LITERAL-)\n");
	l.literal_minus = false;
	/* A streamed empty literal ends at once. */
	o.stream_min = 0;
	CHECK_O(&o, "A1 X {0}\r\n ~{0+}\r\n\r\n",
	    "begin(0,0,0,X)=stream\n"
	    "end()\n"
	    "CONT@10\n"
	    "begin(0,1,1,X)=stream\n"
	    "end()\n"
	    "DONE@20 A1 X {0*} ~{0*}\n");
	/* An error after a complete streamed literal: no abort(). */
	CHECK_O(&o, "A1 X {2+}\r\nab)\r\nA2 NOOP\r\n",
	    "begin(2,0,0,X)=stream\n"
	    "end(ab)\n"
	    "ERR@14 A1: Unexpected ')'\n"
	    "DONE@25 A2 NOOP\n");
}

static struct buf abort_log;

static void
abort_data(void *ctx, const void *data, size_t len)
{
	buf_printf(&abort_log, "data(%zu)", len);
}

static void
abort_abort(void *ctx)
{
	buf_append_str(&abort_log, "abort");
}

static void
abort_end(void *ctx)
{
	buf_append_str(&abort_log, "end");
}

static enum imap_literal_action
abort_begin(void *ctx, struct imap_parser *p, uint64_t size, bool literal8,
    const char **reject_msg_r)
{
	buf_printf(&abort_log, "begin(%llu)", (unsigned long long)size);
	return IMAP_LITERAL_STREAM;
}

static void
test_streamed_abort(void **state)
{
	struct imap_literal_handler h = {
		.begin = abort_begin, .data = abort_data, .end = abort_end,
		.abort = abort_abort,
	};
	struct imap_parser *p;
	size_t used;

	buf_init(&abort_log, 0);
	/* next() in the middle of a streamed literal aborts it. */
	p = imap_parser_new(&def_limits);
	imap_parser_set_literal_handler(p, &h);
	assert_int_equal(imap_parser_feed(p, "A1 X {10+}\r\nabc", 15, &used),
	    IMAP_PARSE_MORE);
	assert_int_equal(used, 15);
	imap_parser_next(p);
	assert_string_equal(abort_log.data, "begin(10)data(3)abort");
	assert_int_equal(imap_parser_memory(p), 0);
	/* The parser starts afresh. */
	assert_int_equal(imap_parser_feed(p, "A2 NOOP\r\n", 9, &used),
	    IMAP_PARSE_DONE);
	assert_string_equal(imap_parser_tag(p), "A2");
	imap_parser_next(p);
	buf_reset(&abort_log);

	/* So does free(). */
	assert_int_equal(imap_parser_feed(p, "A1 X {10}\r\n", 11, &used),
	    IMAP_PARSE_CONTINUE);
	assert_int_equal(imap_parser_feed(p, "0123", 4, &used),
	    IMAP_PARSE_MORE);
	imap_parser_free(&p);
	assert_null(p);
	assert_string_equal(abort_log.data, "begin(10)data(4)abort");
	buf_reset(&abort_log);

	/* Once end() was called there is nothing to abort. */
	p = imap_parser_new(&def_limits);
	imap_parser_set_literal_handler(p, &h);
	assert_int_equal(imap_parser_feed(p, "A1 X {2+}\r\nab c", 15, &used),
	    IMAP_PARSE_MORE);
	imap_parser_free(&p);
	assert_string_equal(abort_log.data, "begin(2)data(2)end");
	buf_reset(&abort_log);

	/* The handler can be removed. */
	p = imap_parser_new(&def_limits);
	imap_parser_set_literal_handler(p, &h);
	imap_parser_set_literal_handler(p, NULL);
	assert_int_equal(imap_parser_feed(p, "A1 X {2+}\r\nab\r\n", 15,
	    &used), IMAP_PARSE_DONE);
	imap_parser_free(&p);
	assert_int_equal(abort_log.len, 0);
	buf_free(&abort_log);
}

static void
test_api_details(void **state)
{
	struct imap_parser_limits small = def_limits;
	struct imap_parser *p = imap_parser_new(&def_limits);
	const struct imap_arg *args;
	const char *line;
	unsigned count;
	size_t used;

	/* Nothing before a command completes. */
	assert_null(imap_parser_tag(p));
	assert_null(imap_parser_error(p));
	assert_int_equal(imap_parser_arg_count(p), 0);
	assert_null(imap_parser_args(p, &count));
	assert_int_equal(count, 0);
	assert_int_equal(imap_parser_feed(p, "", 0, &used), IMAP_PARSE_MORE);
	assert_int_equal(used, 0);

	/* Tag and name are known early, args only when done. */
	assert_int_equal(imap_parser_feed(p, "A1 LOGIN a ", 11, &used),
	    IMAP_PARSE_MORE);
	assert_string_equal(imap_parser_tag(p), "A1");
	assert_string_equal(imap_parser_command_name(p), "LOGIN");
	assert_int_equal(imap_parser_arg_count(p), 1);
	assert_null(imap_parser_args(p, &count));
	assert_int_equal(imap_parser_feed(p, "b\r\nA2", 5, &used),
	    IMAP_PARSE_DONE);
	assert_int_equal(used, 3);
	args = imap_parser_args(p, &count);
	assert_int_equal(count, 2);
	assert_string_equal(args[1].v.str, "b");
	assert_true(imap_parser_memory(p) > 0);

	/* Feeding again without next() starts the next command. */
	assert_int_equal(imap_parser_feed(p, "A2 NOOP\r\n", 9, &used),
	    IMAP_PARSE_DONE);
	assert_string_equal(imap_parser_tag(p), "A2");
	args = imap_parser_args(p, &count);
	assert_int_equal(count, 0);
	assert_int_equal(args[0].type, IMAP_ARG_EOL);

	/* Same after an error. */
	assert_int_equal(imap_parser_feed(p, "A3 )\r\n", 6, &used),
	    IMAP_PARSE_ERROR);
	assert_int_equal(used, 4);
	assert_false(imap_parser_error_fatal(p));
	assert_false(imap_parser_error_toobig(p));
	assert_int_equal(imap_parser_feed(p, "\r\nA4 NOOP\r\n", 11, &used),
	    IMAP_PARSE_DONE);
	assert_int_equal(used, 11);
	assert_string_equal(imap_parser_tag(p), "A4");
	assert_null(imap_parser_error(p));

	/* Raw lines have no args. */
	imap_parser_next(p);
	assert_int_equal(imap_parser_feed_line(p, "x\r\n", 3, &used, &line),
	    IMAP_PARSE_DONE);
	assert_string_equal(line, "x");
	assert_null(imap_parser_args(p, &count));
	assert_null(imap_parser_tag(p));
	imap_parser_next(p);

	/* New limits wait for the next command. */
	small.max_line = 10;
	assert_int_equal(imap_parser_feed(p, "A5 NOOP ", 8, &used),
	    IMAP_PARSE_MORE);
	imap_parser_set_limits(p, &small);
	assert_int_equal(imap_parser_feed(p, "aaaaaaaaaa\r\n", 12, &used),
	    IMAP_PARSE_DONE);
	imap_parser_next(p);
	assert_int_equal(imap_parser_feed(p, "A6 NOOP aaaaaaaa\r\n", 18,
	    &used), IMAP_PARSE_ERROR);
	assert_int_equal(used, 11);
	assert_true(imap_parser_error_toobig(p));
	imap_parser_next(p);
	/* Between commands they apply at once. */
	imap_parser_set_limits(p, &def_limits);
	assert_int_equal(imap_parser_feed(p, "\r\nA7 NOOP aaaaaaaa\r\n", 20,
	    &used), IMAP_PARSE_DONE);
	imap_parser_next(p);
	imap_parser_set_limits(p, &small);
	assert_int_equal(imap_parser_feed(p, "A8 NOOP aaaaaaaa\r\n", 18,
	    &used), IMAP_PARSE_ERROR);
	imap_parser_free(&p);
	imap_parser_free(&p);
}

/* A long line without LF: prompt error, and memory stays small. */
static void
test_memory_bounded(void **state)
{
	struct imap_parser_limits l = def_limits;
	struct imap_parser *p;
	static char junk[65536];
	size_t used;
	int i;

	l.max_line = 1000;
	l.max_literal = 100000;
	l.max_total = 200000;
	p = imap_parser_new(&l);
	memset(junk, 'a', sizeof(junk));
	memcpy(junk, "A1 X ", 5);
	assert_int_equal(imap_parser_feed(p, junk, sizeof(junk), &used),
	    IMAP_PARSE_ERROR);
	assert_int_equal(used, 1001);
	assert_true(imap_parser_memory(p) < 4 * 1024 + 8192);
	imap_parser_next(p);
	assert_int_equal(imap_parser_memory(p), 0);
	/* 16 MB of the same line is skipped without growing. */
	for (i = 0; i < 256; i++) {
		assert_int_equal(imap_parser_feed(p, junk, sizeof(junk),
		    &used), IMAP_PARSE_MORE);
		assert_int_equal(used, sizeof(junk));
		assert_int_equal(imap_parser_memory(p), 0);
	}
	assert_int_equal(imap_parser_feed(p, "\nA2 NOOP\r\n", 10, &used),
	    IMAP_PARSE_DONE);
	imap_parser_next(p);

	/* A literal in memory costs its size, and no more than a few KB
	 * on top. */
	assert_int_equal(imap_parser_feed(p, "A3 X {100000}\r\n", 15, &used),
	    IMAP_PARSE_CONTINUE);
	assert_true(imap_parser_memory(p) >= 100000);
	assert_true(imap_parser_memory(p) < 100000 + 8192);
	for (i = 0; i < 100000; i += 1000) {
		assert_int_equal(imap_parser_feed(p, junk, 1000, &used),
		    IMAP_PARSE_MORE);
	}
	assert_int_equal(imap_parser_feed(p, "\r\n", 2, &used),
	    IMAP_PARSE_DONE);
	assert_true(imap_parser_memory(p) < 100000 + 8192);
	imap_parser_next(p);
	assert_int_equal(imap_parser_memory(p), 0);

	/* Many arguments: bounded by max_args. */
	l.max_args = 2000;
	l.max_line = 100000;
	imap_parser_set_limits(p, &l);
	{
		struct buf in;
		unsigned count;

		buf_init(&in, 0);
		buf_append_str(&in, "A4 X");
		for (i = 0; i < 2000; i++)
			buf_append_str(&in, " a");
		buf_append_str(&in, "\r\n");
		assert_int_equal(imap_parser_feed(p, in.data, in.len, &used),
		    IMAP_PARSE_DONE);
		assert_non_null(imap_parser_args(p, &count));
		assert_int_equal(count, 2000);
		/* 2000 args of 24..32 bytes, grown by doubling, + strings. */
		assert_true(imap_parser_memory(p) < 2000 * 32 * 2 + 2000 *
		    16 + 8192);
		imap_parser_next(p);
		buf_free(&in);
	}
	imap_parser_free(&p);
}

/*
 * Random inputs made of IMAP-ish tokens, with random small limits, random
 * raw-line/command modes and literal handler policies: the transcript must
 * not depend on the input's chunking, and the driver's invariants (all
 * input consumed on MORE, no memory held between commands) must hold.
 */
static void
test_random_chunking(void **state)
{
	static const char *const tokens[] = {
		"A1", "b.2", " ", " ", " ", "NOOP", "LOGIN", "x", "NIL", "(",
		")", "((", "))", "\"", "\"q s\"", "\\", "\\\"", "{", "}", "+",
		"~", "[", "]", "BODY[HEADER (A B)]", "<0.5>", "{3}\r\n",
		"{2+}\r\n", "~{1}\r\n", "~{1+}\r\n", "{0}\r\n", "{0+}\r\n",
		"{12}\r\n", "{99999999999999999999+}\r\n",
		"{9223372036854775808}\r\n", "{5000+}\r\n", "\r\n", "\r\n",
		"\r\n", "\n", "\r", "\0", "\x01", "\x7f", "\xc3\xa9", "*",
		"%", "abc", "0123456789",
	};
	struct imap_parser_limits l;
	struct opts o = { .limits = &l };
	unsigned seed = 4242;
	size_t cuts[2048];
	char in[2048];

#define RND(n) (seed = seed * 1103515245 + 12345, (seed >> 16) % (n))
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0, n;
		unsigned nlines = 1 + RND(4);
		char modes[4];
		char *one, *got;

		/* Mostly well-formed command lines with random arguments. */
		for (unsigned li = 0; li < nlines; li++) {
			unsigned ntok = RND(12);

			if (RND(5) != 0)
				len += (size_t)snprintf(in + len, 32,
				    "T%u CMD%u", li, RND(3));
			for (unsigned t = 0; t < ntok; t++) {
				const char *tok =
				    tokens[RND(ARRAY_LEN(tokens))];
				size_t tl = tok[0] == '\0' ? 1 : strlen(tok);

				if (RND(3) != 0)
					in[len++] = ' ';
				memcpy(in + len, tok, tl);
				len += tl;
			}
			if (RND(8) != 0) {
				memcpy(in + len, "\r\n", 2);
				len += 2;
			}
		}
		l.max_line = 4 + RND(100);
		l.max_literal = RND(20);
		l.max_total = 10 + RND(150);
		l.max_depth = RND(4);
		l.max_args = RND(16);
		l.literal_minus = RND(2) == 0;
		o.handler = RND(2) == 0;
		o.stream_min = RND(14);
		o.reject_min = 5 + RND(20);
		for (int m = 0; m < 3; m++)
			modes[m] = RND(6) == 0 ? 'L' : 'C';
		modes[3] = '\0';
		o.modes = modes;

		cuts[0] = len;
		one = run(in, len, cuts, 1, &o);
		for (n = 0; n < len; n++)
			cuts[n] = n + 1;
		got = run(in, len, cuts, len, &o);
		compare(got, one, "random input, byte by byte");
		free(got);
		n = 0;
		for (size_t at = 0; at < len;) {
			at += 1 + RND(8);
			cuts[n++] = at < len ? at : len;
		}
		got = run(in, len, cuts, n, &o);
		compare(got, one, "random input, random pieces");
		free(got);
		free(one);
	}
#undef RND
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_literal_sync),
		cmocka_unit_test(test_literal_nonsync),
		cmocka_unit_test(test_literal8),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_fetch_atoms),
		cmocka_unit_test(test_nil),
		cmocka_unit_test(test_limit_line),
		cmocka_unit_test(test_limit_literal),
		cmocka_unit_test(test_limit_total),
		cmocka_unit_test(test_limit_depth),
		cmocka_unit_test(test_limit_args),
		cmocka_unit_test(test_literal_minus),
		cmocka_unit_test(test_literal_size_overflow),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_skip_nonsync),
		cmocka_unit_test(test_feed_line),
		cmocka_unit_test(test_streamed_literal),
		cmocka_unit_test(test_streamed_abort),
		cmocka_unit_test(test_api_details),
		cmocka_unit_test(test_memory_bounded),
		cmocka_unit_test(test_random_chunking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
