/*
 * libFuzzer target: the IMAP command parser (src/imap/parser.h).
 *
 * Input: a 6-byte control header, then the client's byte stream.
 *	c[0]	bits 0-1: literal handler policy (0 none, 1 stream all,
 *		2 mixed MEMORY/STREAM/REJECT, 3 APPEND-like); bit 2:
 *		LITERAL- in the tiny limits; bits 3-7: salt for the mixed policy
 *	c[1]	seed of the chunk sizes
 *	c[2]	bit i: command i is read with imap_parser_feed_line() (i < 8)
 *	c[3..5]	the "tiny" limits (see tiny_limits())
 *
 * The stream is fed with three limit sets: the server's pre-auth limits
 * (switching to the post-auth ones after a LOGIN or AUTHENTICATE, as the
 * session does), the post-auth limits, and tiny limits from the header.
 * Each is fed twice, in one piece and in pseudo-random chunks, the way a
 * session drives the parser (see the usage in parser.h).  Every call's
 * contract is checked (consumed <= len, MORE consumes all, DONE/CONTINUE
 * stop after an LF, fatal errors are sticky, memory is 0 after next()),
 * every argument tree is checked against the limits and the documented
 * token rules, and the two transcripts (results with offsets, trees,
 * errors, handler calls) must be equal: parser.h promises that the result
 * does not depend on how the input is split.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "log/log.h"

#include "fuzz_common.h"

#define HDR_LEN 6

/* The server's defaults (src/config/config.h, src/imap/session.c). */
static const struct imap_parser_limits preauth_limits = {
	.max_line = 8192,
	.max_literal = 8192,
	.max_total = 8192 + 2 * 8192,
	.max_depth = 2,
	.max_args = 64,
};

static const struct imap_parser_limits postauth_limits = {
	.max_line = 65536,
	.max_literal = 1024 * 1024,
	.max_total = 2 * 1024 * 1024,
	.max_depth = 16,
	.max_args = 100000,
};

struct run {
	const uint8_t *hdr;
	const struct imap_parser_limits *limits;	/* of the current command */
	const struct imap_parser_limits *after_login;	/* or NULL */
	struct imap_parser *p;
	struct buf *log;		/* the transcript */
	/* Literal handler state. */
	bool streaming;
	uint64_t lit_size, lit_got;
	uint32_t lit_hash;
};

static void
logf_(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
logf_(struct run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	FUZZ_CHECK(buf_vprintf(r->log, fmt, ap));
	va_end(ap);
}

static void
log_bytes(struct run *r, const char *s, size_t len)
{
	logf_(r, "%zu:%08" PRIx32, len, fuzz_hash(2166136261u, s, len));
}

/* ---- Literal handler ---- */

static enum imap_literal_action
h_begin(void *ctx, struct imap_parser *p, uint64_t size, bool literal8,
    const char **reject_msg_r)
{
	struct run *r = ctx;
	const char *name = imap_parser_command_name(p);
	unsigned argc = imap_parser_arg_count(p);
	enum imap_literal_action act;

	FUZZ_CHECK(p == r->p);
	FUZZ_CHECK(!r->streaming);
	FUZZ_CHECK(size <= (uint64_t)INT64_MAX);
	switch (r->hdr[0] & 3) {
	case 1:
		act = IMAP_LITERAL_STREAM;
		break;
	case 2:
		act = (enum imap_literal_action)((size + argc + (r->hdr[0] >> 3))
		    % 3);
		break;
	default:	/* 3: APPEND streams the message, refuses huge ones */
		act = size > 100000 ? IMAP_LITERAL_REJECT :
		    size > 16 ? IMAP_LITERAL_STREAM : IMAP_LITERAL_MEMORY;
		break;
	}
	if (act == IMAP_LITERAL_REJECT)
		*reject_msg_r = size % 2 == 0 ? "[TOOBIG] Refused." : NULL;
	logf_(r, " B%" PRIu64 ",%d,%u,%s=%d", size, literal8, argc,
	    name != NULL ? name : "(null)", act);
	if (act == IMAP_LITERAL_STREAM) {
		r->streaming = true;
		r->lit_size = size;
		r->lit_got = 0;
		r->lit_hash = 2166136261u;
	}
	return act;
}

static void
h_data(void *ctx, const void *data, size_t len)
{
	struct run *r = ctx;

	FUZZ_CHECK(r->streaming);
	FUZZ_CHECK(len > 0);
	FUZZ_CHECK(len <= r->lit_size - r->lit_got);
	r->lit_got += len;
	r->lit_hash = fuzz_hash(r->lit_hash, data, len);
}

static void
h_end(void *ctx)
{
	struct run *r = ctx;

	FUZZ_CHECK(r->streaming);
	FUZZ_CHECK(r->lit_got == r->lit_size);
	r->streaming = false;
	logf_(r, " E%08" PRIx32, r->lit_hash);
}

static void
h_abort(void *ctx)
{
	struct run *r = ctx;

	FUZZ_CHECK(r->streaming);
	r->streaming = false;
	logf_(r, " A%" PRIu64, r->lit_got);
}

/* ---- Argument trees ---- */

struct tree_sums {
	unsigned args;		/* all levels, lists count as one each */
	uint64_t text;		/* atom and quoted-string bytes */
	uint64_t lits;		/* in-memory literal bytes */
};

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static void
check_atom(const char *s, size_t len)
{
	unsigned bracket = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		FUZZ_CHECK(!is_ctl(c));
		if (c == '[')
			bracket++;
		else if (c == ']' && bracket > 0)
			bracket--;
		else if (bracket == 0)
			FUZZ_CHECK(c != ' ' && c != '(' && c != ')' &&
			    c != '{' && c != '"');
	}
}

static void
check_accessors(const struct imap_arg *a)
{
	const char *s = NULL;
	const struct imap_arg *items = NULL;
	unsigned n = 0;
	bool is_str = a->type == IMAP_ARG_STRING || a->type == IMAP_ARG_LITERAL;

	FUZZ_CHECK(imap_arg_get_atom(a, &s) == (a->type == IMAP_ARG_ATOM));
	FUZZ_CHECK(imap_arg_get_string(a, &s) == is_str);
	if (is_str)
		FUZZ_CHECK(s == a->v.str);
	FUZZ_CHECK(imap_arg_get_astring(a, &s) ==
	    (is_str || a->type == IMAP_ARG_ATOM));
	FUZZ_CHECK(imap_arg_get_list(a, &items, &n) ==
	    (a->type == IMAP_ARG_LIST));
	if (a->type == IMAP_ARG_LIST)
		FUZZ_CHECK(items == a->v.list && n == a->len);
	FUZZ_CHECK(imap_arg_is_nil(a) == (a->type == IMAP_ARG_ATOM &&
	    strcasecmp(a->v.str, "NIL") == 0));
	if (imap_arg_get_nstring(a, &s)) {
		FUZZ_CHECK(is_str || imap_arg_is_nil(a));
		FUZZ_CHECK(is_str ? s == a->v.str : s == NULL);
	} else {
		FUZZ_CHECK(!is_str && !imap_arg_is_nil(a));
	}
	if (a->type == IMAP_ARG_ATOM)
		FUZZ_CHECK(imap_arg_atom_equals(a, a->v.str));
	else
		FUZZ_CHECK(!imap_arg_atom_equals(a, "NIL"));
}

static void
walk_args(struct run *r, const struct imap_arg *args, unsigned count,
    unsigned depth, struct tree_sums *sums)
{
	const struct imap_parser_limits *lim = r->limits;

	FUZZ_CHECK(args != NULL);
	FUZZ_CHECK(args[count].type == IMAP_ARG_EOL);
	for (unsigned i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];

		sums->args++;
		check_accessors(a);
		if (a->type != IMAP_ARG_LITERAL &&
		    a->type != IMAP_ARG_LITERAL_STREAMED)
			FUZZ_CHECK(!a->literal8);
		switch (a->type) {
		case IMAP_ARG_ATOM:
			FUZZ_CHECK(a->v.str != NULL && a->len > 0);
			FUZZ_CHECK(strlen(a->v.str) == a->len);
			check_atom(a->v.str, a->len);
			sums->text += a->len;
			logf_(r, " a");
			log_bytes(r, a->v.str, a->len);
			break;
		case IMAP_ARG_STRING:
			FUZZ_CHECK(a->v.str != NULL);
			FUZZ_CHECK(strlen(a->v.str) == a->len);
			FUZZ_CHECK(memchr(a->v.str, '\r', a->len) == NULL &&
			    memchr(a->v.str, '\n', a->len) == NULL);
			sums->text += a->len;
			logf_(r, " s");
			log_bytes(r, a->v.str, a->len);
			break;
		case IMAP_ARG_LITERAL:
			FUZZ_CHECK(a->v.str != NULL);
			FUZZ_CHECK(a->v.str[a->len] == '\0');
			FUZZ_CHECK(a->len <= lim->max_literal);
			sums->lits += a->len;
			logf_(r, " l%d,", a->literal8);
			log_bytes(r, a->v.str, a->len);
			break;
		case IMAP_ARG_LITERAL_STREAMED:
			FUZZ_CHECK(a->v.str == NULL);
			logf_(r, " L%d,%" PRIu64, a->literal8, a->len);
			break;
		case IMAP_ARG_LIST:
			FUZZ_CHECK(depth < lim->max_depth);
			FUZZ_CHECK(a->len <= lim->max_args);
			logf_(r, " (");
			walk_args(r, a->v.list, (unsigned)a->len, depth + 1,
			    sums);
			logf_(r, " )");
			break;
		default:
			FUZZ_CHECK(!"bad argument type");
		}
	}
}

/* RFC 9051 ATOM-CHAR; a tag is ASTRING-CHAR (adds ']') except '+'. */
static bool
is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

static bool
is_tag_char(unsigned char c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

static void
check_command(struct run *r)
{
	const char *tag = imap_parser_tag(r->p);
	const char *name = imap_parser_command_name(r->p);
	const struct imap_arg *args;
	struct tree_sums sums = { 0, 0, 0 };
	unsigned count = 12345;

	FUZZ_CHECK(tag != NULL && tag[0] != '\0');
	for (const char *c = tag; *c != '\0'; c++)
		FUZZ_CHECK(is_tag_char((unsigned char)*c));
	FUZZ_CHECK(name != NULL && name[0] != '\0');
	for (const char *c = name; *c != '\0'; c++) {
		FUZZ_CHECK(is_atom_char((unsigned char)*c));
		FUZZ_CHECK(!(*c >= 'a' && *c <= 'z'));
	}
	args = imap_parser_args(r->p, &count);
	FUZZ_CHECK(count == imap_parser_arg_count(r->p));
	logf_(r, " T");
	log_bytes(r, tag, strlen(tag));
	logf_(r, " %s", name);
	walk_args(r, args, count, 0, &sums);
	FUZZ_CHECK(sums.args <= r->limits->max_args);
	FUZZ_CHECK(strlen(tag) + strlen(name) + sums.text <=
	    r->limits->max_line);
	FUZZ_CHECK(sums.text + sums.lits <= r->limits->max_total);
	FUZZ_CHECK(imap_parser_memory(r->p) > 0);
}

/* ---- Driver ---- */

static void
next_cmd(struct run *r)
{
	imap_parser_next(r->p);
	FUZZ_CHECK(!r->streaming);
	FUZZ_CHECK(imap_parser_memory(r->p) == 0);
	FUZZ_CHECK(imap_parser_tag(r->p) == NULL);
	FUZZ_CHECK(imap_parser_error(r->p) == NULL);
}

static size_t
next_chunk(struct fuzz_rng *rng)
{
	static const size_t sizes[] = { 1, 1, 2, 3, 4, 5, 7, 8, 13, 16, 31,
		64, 100, 512, 4096 };

	return sizes[fuzz_rng_next(rng) % (sizeof(sizes) / sizeof(sizes[0]))];
}

/*
 * Feed data as a session would, in pieces (whole when chunked is false),
 * writing the transcript into log.
 */
static void
run_stream(const uint8_t *hdr, const char *data, size_t size,
    const struct imap_parser_limits *limits,
    const struct imap_parser_limits *after_login, bool chunked,
    bool literal_minus, struct buf *log)
{
	struct imap_parser_limits lim = *limits;
	struct imap_literal_handler handler;
	struct fuzz_rng rng;
	struct run r;
	size_t pos = 0;
	unsigned cmdno = 0, stalls = 0;
	bool fatal = false;

	memset(&r, 0, sizeof(r));
	lim.literal_minus = literal_minus;
	r.hdr = hdr;
	r.limits = limits;
	r.after_login = after_login;
	r.log = log;
	/* Set the limits on an idle parser: they apply at once. */
	r.p = imap_parser_new(&postauth_limits);
	imap_parser_set_limits(r.p, &lim);
	imap_parser_set_literal_handler(r.p, NULL);
	if ((hdr[0] & 3) != 0) {
		handler.ctx = &r;
		handler.begin = h_begin;
		handler.data = h_data;
		handler.end = h_end;
		handler.abort = h_abort;
		imap_parser_set_literal_handler(r.p, &handler);
	}
	fuzz_rng_init(&rng, 0x10001u * hdr[1] + 1);

	while (pos < size && !fatal) {
		size_t len = chunked ? next_chunk(&rng) : size - pos;
		const char *chunk = data + pos;

		if (len > size - pos)
			len = size - pos;
		while (len > 0) {
			bool line_mode = cmdno < 8 && (hdr[2] >> cmdno) & 1;
			const char *line = NULL;
			enum imap_parse_result ret;
			unsigned argc = 1;
			size_t used = len + 1;

			if (line_mode)
				ret = imap_parser_feed_line(r.p, chunk, len,
				    &used, &line);
			else
				ret = imap_parser_feed(r.p, chunk, len, &used);
			FUZZ_CHECK(used <= len);
			FUZZ_CHECK(ret >= IMAP_PARSE_ERROR &&
			    ret <= IMAP_PARSE_CONTINUE);
			chunk += used;
			len -= used;
			pos += used;
			/* A session loops while bytes remain: a result that
			 * consumes nothing must not repeat for ever. */
			stalls = used == 0 ? stalls + 1 : 0;
			FUZZ_CHECK(stalls < 4);
			if (ret == IMAP_PARSE_MORE) {
				FUZZ_CHECK(len == 0);
				break;
			}
			logf_(&r, "\n@%zu %d", pos, ret);
			if (ret == IMAP_PARSE_DONE || ret == IMAP_PARSE_CONTINUE)
				FUZZ_CHECK(used > 0 && chunk[-1] == '\n');
			if (ret == IMAP_PARSE_CONTINUE) {
				FUZZ_CHECK(!line_mode);
				continue;
			}
			if (ret == IMAP_PARSE_ERROR) {
				const char *err = imap_parser_error(r.p);

				FUZZ_CHECK(err != NULL);
				FUZZ_CHECK(imap_parser_args(r.p, &argc) == NULL && argc == 0);
				fatal = imap_parser_error_fatal(r.p);
				logf_(&r, " %s f%d t%d tag=%s", err, fatal,
				    imap_parser_error_toobig(r.p),
				    imap_parser_tag(r.p) != NULL ?
				    imap_parser_tag(r.p) : "-");
				if (fatal) {
					size_t u = 1;

					imap_parser_next(r.p);
					ret = imap_parser_feed(r.p, "A1 NOOP\r\n",
					    9, &u);
					FUZZ_CHECK(ret == IMAP_PARSE_ERROR &&
					    u == 0);
					FUZZ_CHECK(imap_parser_error_fatal(r.p));
					u = 1;
					ret = imap_parser_feed_line(r.p, "x\n",
					    2, &u, &line);
					FUZZ_CHECK(ret == IMAP_PARSE_ERROR &&
					    u == 0 && line == NULL);
					break;
				}
			} else if (line_mode) {
				FUZZ_CHECK(line != NULL);
				FUZZ_CHECK(strlen(line) <= r.limits->max_line);
				FUZZ_CHECK(strchr(line, '\n') == NULL);
				FUZZ_CHECK(imap_parser_args(r.p, &argc) == NULL && argc == 0);
				logf_(&r, " line ");
				log_bytes(&r, line, strlen(line));
			} else {
				const char *name;

				check_command(&r);
				name = imap_parser_command_name(r.p);
				if (r.after_login != NULL &&
				    (strcmp(name, "LOGIN") == 0 ||
				    strcmp(name, "AUTHENTICATE") == 0)) {
					lim = *r.after_login;
					lim.literal_minus = literal_minus;
					imap_parser_set_limits(r.p, &lim);
					r.limits = r.after_login;
					r.after_login = NULL;
				}
			}
			/* From the 9th command on, every other one leaves
			 * next() to the following feed (parser.h allows it). */
			if (cmdno < 8 || cmdno % 2 == 0 || line_mode)
				next_cmd(&r);
			cmdno++;
		}
	}
	imap_parser_free(&r.p);
	FUZZ_CHECK(r.p == NULL);
	FUZZ_CHECK(!r.streaming);
	logf_(&r, "\nend");
}

static void
compare(const uint8_t *hdr, const char *data, size_t size,
    const struct imap_parser_limits *limits,
    const struct imap_parser_limits *after_login, bool literal_minus)
{
	struct buf whole, chunks;

	buf_init(&whole, 0);
	buf_init(&chunks, 0);
	run_stream(hdr, data, size, limits, after_login, false, literal_minus,
	    &whole);
	run_stream(hdr, data, size, limits, after_login, true, literal_minus,
	    &chunks);
	if (whole.len != chunks.len ||
	    memcmp(whole.data, chunks.data, whole.len) != 0) {
		fprintf(stderr, "transcripts differ\n--- whole:\n%s\n"
		    "--- chunked:\n%s\n", whole.data, chunks.data);
		FUZZ_CHECK(!"result depends on the input's chunking");
	}
	buf_free(&whole);
	buf_free(&chunks);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LEVEL_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[HDR_LEN] = { 0 };
	struct imap_parser_limits tiny;
	const char *in;

	if (size > 1 << 20)
		return -1;
	memcpy(hdr, data, size < HDR_LEN ? size : HDR_LEN);
	in = (const char *)data + (size < HDR_LEN ? size : HDR_LEN);
	size -= size < HDR_LEN ? size : HDR_LEN;

	compare(hdr, in, size, &preauth_limits, &postauth_limits, false);
	compare(hdr, in, size, &postauth_limits, NULL, false);

	tiny.max_line = hdr[3];
	tiny.max_literal = (uint64_t)(hdr[4] & 0x0f) * 16;
	tiny.max_total = tiny.max_line + (size_t)(hdr[4] >> 4) * 32;
	tiny.max_depth = hdr[5] & 7;
	tiny.max_args = hdr[5] >> 3;
	tiny.literal_minus = false;
	compare(hdr, in, size, &tiny, NULL, (hdr[0] & 4) != 0);
	return 0;
}
