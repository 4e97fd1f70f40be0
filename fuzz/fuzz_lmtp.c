/*
 * libFuzzer target: the LMTP command reader (src/lmtp/proto.h), the bytes
 * an MTA (or anyone who reaches the LMTP socket) sends.
 *
 * Input: one byte seeding the chunk sizes, then the client's stream.  The
 * stream is cut into lines as the session does (LF ends a line, a CR
 * before it is dropped, lines longer than LMTP_MAX_LINE are discarded up
 * to their LF, a line holding NUL is refused) and each line goes through:
 *  - lmtp_line_split(): on success the verb is letters only and the
 *    arguments follow one space and hold no control character; on failure
 *    the line has a non-letter in its verb or a control character after;
 *  - for MAIL FROM: and RCPT TO:, lmtp_path_parse(): the address lies in
 *    the line, the unquoted local part holds no control character, what
 *    follows '>' is the end or a space; then every lmtp_next_param() word
 *    is a piece of the line without spaces, and lmtp_candidates() gives at
 *    most LMTP_MAX_CANDIDATES distinct valid user names, each the address,
 *    the local part or a prefix of it, possibly lower-cased;
 *  - DATA (with no argument, whatever the transaction state) switches to
 *    the dot-stuffed stream: lmtp_data_feed() is run on the rest in one
 *    piece and in pseudo-random chunks, and both must agree with a model
 *    built from CRLF-separated lines (leading dot dropped, "." alone
 *    ends); the reader then goes back to command lines.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/passdb.h"
#include "core/buf.h"
#include "log/log.h"
#include "lmtp/proto.h"

#include "fuzz_common.h"

struct sink {
	struct buf out;
};

static void
sink_put(void *ctx, const char *data, size_t len)
{
	struct sink *k = ctx;

	FUZZ_CHECK(len > 0);
	buf_append(&k->out, data, len);
}

/* The expected unstuffing of data[0..len): output, bytes consumed, and
 * whether the final "." line was seen. */
static size_t
data_model(const char *data, size_t len, struct buf *out, bool *end)
{
	size_t q = 0;

	*end = false;
	for (;;) {
		const char *crlf = NULL;
		size_t e, start;

		for (size_t i = q; i + 1 < len; i++) {
			if (data[i] == '\r' && data[i + 1] == '\n') {
				crlf = data + i;
				break;
			}
		}
		start = q < len && data[q] == '.' ? q + 1 : q;
		if (crlf == NULL) {
			if (start < len)
				buf_append(out, data + start, len - start);
			return len;
		}
		e = (size_t)(crlf - data);
		if (e == q + 1 && data[q] == '.') {
			*end = true;
			return e + 2;
		}
		buf_append(out, data + start, e + 2 - start);
		q = e + 2;
	}
}

/* Run the DATA reader on data[0..len); returns the bytes it consumed. */
static size_t
check_data(const char *data, size_t len, struct fuzz_rng *rng)
{
	struct sink whole, chunked;
	struct buf model;
	enum lmtp_data_state st, st2;
	bool end, end2, mend;
	size_t n, n2 = 0, mn;

	buf_init(&whole.out, 0);
	buf_init(&chunked.out, 0);
	buf_init(&model, 0);

	st = LMTP_DATA_BOL;
	n = lmtp_data_feed(&st, data, len, sink_put, &whole, &end);
	FUZZ_CHECK(n <= len);
	FUZZ_CHECK(end || n == len);

	st2 = LMTP_DATA_BOL;
	end2 = false;
	while (n2 < len && !end2) {
		size_t c = 1 + fuzz_rng_next(rng) % 17;
		size_t got;

		if (c > len - n2)
			c = len - n2;
		got = lmtp_data_feed(&st2, data + n2, c, sink_put, &chunked,
		    &end2);
		FUZZ_CHECK(got <= c);
		FUZZ_CHECK(end2 || got == c);
		n2 += got;
	}
	FUZZ_CHECK(n2 == n && end2 == end && st2 == st);
	FUZZ_CHECK(whole.out.len == chunked.out.len);
	FUZZ_CHECK(whole.out.len == 0 ||
	    memcmp(whole.out.data, chunked.out.data, whole.out.len) == 0);

	mn = data_model(data, len, &model, &mend);
	FUZZ_CHECK(mn == n && mend == end);
	if (end) {
		FUZZ_CHECK(st == LMTP_DATA_BOL);
		FUZZ_CHECK(n >= 3 && memcmp(data + n - 3, ".\r\n", 3) == 0);
	}
	/* At the end of a cut stream, ".\r" is held back until the next
	 * byte says whether it ends the data. */
	if (!end && st == LMTP_DATA_DOT_CR) {
		FUZZ_CHECK(model.len == whole.out.len + 1);
		FUZZ_CHECK(model.data[model.len - 1] == '\r');
	} else {
		FUZZ_CHECK(model.len == whole.out.len);
	}
	FUZZ_CHECK(whole.out.len == 0 ||
	    memcmp(model.data, whole.out.data, whole.out.len) == 0);
	buf_free(&whole.out);
	buf_free(&chunked.out);
	buf_free(&model);
	return n;
}

static bool
in_line(const char *p, const char *line, size_t len)
{
	return p >= line && p <= line + len;
}

static void
check_candidates(const struct lmtp_path *path)
{
	char *cand[LMTP_MAX_CANDIDATES];
	unsigned n = lmtp_candidates(path, cand);
	size_t llen = strlen(path->local);

	FUZZ_CHECK(n <= LMTP_MAX_CANDIDATES);
	for (unsigned i = 0; i < n; i++) {
		size_t clen = strlen(cand[i]);

		FUZZ_CHECK(passwd_user_name_valid(cand[i]));
		for (unsigned j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(cand[i], cand[j]) != 0);
		if (strcmp(cand[i], path->address) != 0) {
			/* The local part or a prefix, maybe lower-cased. */
			FUZZ_CHECK(clen <= llen);
			FUZZ_CHECK(strncasecmp(cand[i], path->local,
			    clen) == 0);
			FUZZ_CHECK(clen == llen || path->local[clen] == '+');
		}
	}
	for (unsigned i = 0; i < n; i++)
		free(cand[i]);
}

static void
check_path(const char *line, size_t len, const char *args, bool rcpt)
{
	struct lmtp_path path;
	const char *p, *why = NULL;
	char *key, *value;
	unsigned nparams = 0;

	p = lmtp_skip_keyword(args, rcpt ? "TO:" : "FROM:");
	if (p == NULL)
		return;
	FUZZ_CHECK(in_line(p, line, len));
	if (!lmtp_path_parse(p, &path, &why)) {
		FUZZ_CHECK(why != NULL && *why != '\0');
		FUZZ_CHECK(path.address == NULL && path.local == NULL);
		return;
	}
	FUZZ_CHECK(path.address != NULL && path.local != NULL);
	FUZZ_CHECK(in_line(path.rest, line, len));
	FUZZ_CHECK(*path.rest == '\0' || *path.rest == ' ');
	FUZZ_CHECK(path.rest[-1] == '>');
	FUZZ_CHECK(strlen(path.address) < len);
	FUZZ_CHECK(memmem(line, len, path.address,
	    strlen(path.address)) != NULL);
	FUZZ_CHECK(path.null == (path.address[0] == '\0'));
	for (const char *c = path.local; *c != '\0'; c++)
		FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
	for (const char *c = path.address; *c != '\0'; c++)
		FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
	p = path.rest;
	while (lmtp_next_param(&p, &key, &value)) {
		FUZZ_CHECK(in_line(p, line, len));
		FUZZ_CHECK(*p == '\0' || *p == ' ');
		FUZZ_CHECK(strchr(key, ' ') == NULL && strchr(key, '=') ==
		    NULL);
		FUZZ_CHECK(value == NULL || strchr(value, ' ') == NULL);
		FUZZ_CHECK(strlen(key) + (value != NULL ?
		    strlen(value) + 1 : 0) > 0);
		free(key);
		free(value);
		FUZZ_CHECK(++nparams <= len);
	}
	FUZZ_CHECK(p[strspn(p, " ")] == '\0');	/* only spaces left */
	if (!path.null)
		check_candidates(&path);
	lmtp_path_free(&path);
}

/* One complete command line, line ending removed.  Returns true for DATA. */
static bool
check_line(char *line, size_t len)
{
	const char *args;
	size_t vlen;
	enum lmtp_line_result r;

	line[len] = '\0';
	if (memchr(line, '\0', len) != NULL)
		return false;	/* 500, as the session answers */
	r = lmtp_line_split(line, &vlen, &args);
	if (r != LMTP_LINE_OK) {
		bool bad_verb = false, bad_chars = false;
		const char *sp = strchr(line, ' ');
		size_t v = sp != NULL ? (size_t)(sp - line) : len;

		for (size_t i = 0; i < v; i++)
			bad_verb |= !isalpha((unsigned char)line[i]);
		for (size_t i = sp != NULL ? v + 1 : len; i < len; i++)
			bad_chars |= (unsigned char)line[i] < 0x20 ||
			    line[i] == 0x7f;
		FUZZ_CHECK(r == LMTP_LINE_BAD_VERB ? bad_verb :
		    !bad_verb && bad_chars);
		return false;
	}
	FUZZ_CHECK(vlen <= len);
	FUZZ_CHECK(in_line(args, line, len));
	FUZZ_CHECK(args == line + len || (line[vlen] == ' ' &&
	    args == line + vlen + 1));
	for (size_t i = 0; i < vlen; i++)
		FUZZ_CHECK(isalpha((unsigned char)line[i]));
	for (const char *c = args; *c != '\0'; c++)
		FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
	if (vlen == 4 && strncasecmp(line, "MAIL", 4) == 0)
		check_path(line, len, args, false);
	else if (vlen == 4 && strncasecmp(line, "RCPT", 4) == 0)
		check_path(line, len, args, true);
	return vlen == 4 && strncasecmp(line, "DATA", 4) == 0 &&
	    *args == '\0';
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
	struct fuzz_rng rng;
	const char *in;
	char *line;
	size_t pos = 0, len;

	if (size < 1 || size > 65536)
		return -1;
	fuzz_rng_init(&rng, data[0] * 0x01000193u + 7);
	in = (const char *)data + 1;
	len = size - 1;
	line = malloc(LMTP_MAX_LINE + 1);
	FUZZ_CHECK(line != NULL);
	while (pos < len) {
		const char *nl = memchr(in + pos, '\n', len - pos);
		size_t n = nl == NULL ? len - pos :
		    (size_t)(nl - (in + pos)) + 1;

		if (nl == NULL)
			break;	/* an unfinished line waits for more */
		pos += n;
		if (n > LMTP_MAX_LINE)
			continue;	/* 500 Line too long */
		memcpy(line, in + pos - n, n);
		n--;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (check_line(line, n))
			pos += check_data(in + pos, len - pos, &rng);
	}
	free(line);
	return 0;
}
