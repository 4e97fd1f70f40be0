/*
 * libFuzzer target: SEARCH criteria and matching (src/imap/search.h).
 *
 * Input: the arguments of a SEARCH command, a line end, then a message:
 *	CHARSET UTF-8 OR FROM "smith" (SINCE 1-Feb-2024 LARGER 100)\r\n
 *	From: ...
 * "S SEARCH " is put in front and the whole goes through the IMAP command
 * parser (post-auth limits, literals in memory), exactly as the session
 * reads it; what follows the command is the message.  Criteria that parse
 * are formatted, bound to a mailbox of three messages with three keywords,
 * and matched against the message with three sets of index fields.
 *
 * Evaluation is staged (search.h): index fields only, then the exact
 * vsize, then the message.  An answer given early must be the answer given
 * with the whole message, the last stage must never be MAYBE, and asking
 * again must give the same answer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "imap/parser.h"
#include "imap/search.h"
#include "log/log.h"
#include "mime/message.h"

#include "fuzz_common.h"

#define PREFIX "S SEARCH "
#define PREFIX_LEN 9

static const struct imap_parser_limits limits = {
	.max_line = 65536,
	.max_literal = 1024 * 1024,
	.max_total = 2 * 1024 * 1024,
	.max_depth = 16,
	.max_args = 100000,
};

static const char *const keywords[] = { "$Forwarded", "Junk", "work" };

struct index_fields {
	uint32_t seq, uid, flags;
	uint64_t keywords;
	int64_t internal_date;
};

static const struct index_fields msgs[] = {
	{ 1, 2, 0, 0, 0 },
	{ 2, 5, 0x3f, 0x7, 1700000000 },
	{ 3, 10, 0x15, 0x2, -86400 * 400 },
};

static void
match_one(const struct imap_search *search, const struct index_fields *f,
    const char *data, size_t len, struct arena *arena)
{
	struct imap_search_msg m;
	enum imap_search_result early, sized = IMAP_SEARCH_MAYBE, final,
	    again;

	imap_search_msg_init(&m, arena);
	m.seq = f->seq;
	m.uid = f->uid;
	m.flags = f->flags;
	m.keywords = f->keywords;
	m.internal_date = f->internal_date;
	m.size = len;
	early = imap_search_match(search, &m);
	FUZZ_CHECK(early == IMAP_SEARCH_NO || early == IMAP_SEARCH_YES ||
	    early == IMAP_SEARCH_MAYBE);
	if (early == IMAP_SEARCH_MAYBE) {
		m.vsize = len + mime_count_bare_lf(data, 0, len);
		m.vsize_known = true;
		sized = imap_search_match(search, &m);
	}
	m.vsize = len + mime_count_bare_lf(data, 0, len);
	m.vsize_known = true;
	m.data = data;
	m.len = len;
	m.loaded = true;
	final = imap_search_match(search, &m);
	FUZZ_CHECK(final == IMAP_SEARCH_NO || final == IMAP_SEARCH_YES);
	if (early != IMAP_SEARCH_MAYBE && early != final) {
		fprintf(stderr, "seq %u: index-only answer %d, full %d\n",
		    f->seq, early, final);
		FUZZ_CHECK(!"staged evaluation disagrees");
	}
	if (sized != IMAP_SEARCH_MAYBE && sized != final) {
		fprintf(stderr, "seq %u: vsize answer %d, full %d\n",
		    f->seq, sized, final);
		FUZZ_CHECK(!"staged evaluation disagrees (vsize)");
	}
	again = imap_search_match(search, &m);
	FUZZ_CHECK(again == final);
	imap_search_msg_deinit(&m);
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
	struct imap_parser *p;
	struct arena arena, msg_arena;
	struct imap_search *search = NULL;
	const struct imap_arg *args;
	enum imap_parse_result ret = IMAP_PARSE_MORE;
	enum imap_search_parse_result pr;
	const char *in = (const char *)data, *err = NULL, *name;
	size_t left = size, used = 0;
	unsigned nargs = 0;
	char *copy;

	if (size > 1 << 20)
		return -1;
	p = imap_parser_new(&limits);
	ret = imap_parser_feed(p, PREFIX, PREFIX_LEN, &used);
	FUZZ_CHECK(ret == IMAP_PARSE_MORE && used == PREFIX_LEN);
	while (left > 0) {
		ret = imap_parser_feed(p, in, left, &used);
		in += used;
		left -= used;
		if (ret != IMAP_PARSE_CONTINUE)
			break;
	}
	name = imap_parser_command_name(p);
	if (ret != IMAP_PARSE_DONE || name == NULL ||
	    strcmp(name, "SEARCH") != 0) {
		imap_parser_free(&p);
		return 0;
	}
	args = imap_parser_args(p, &nargs);

	arena_init(&arena);
	pr = imap_search_parse(args, nargs, &arena, &search, &err);
	if (pr != IMAP_SEARCH_PARSE_OK) {
		FUZZ_CHECK(pr == IMAP_SEARCH_PARSE_BAD ||
		    pr == IMAP_SEARCH_PARSE_BADCHARSET);
		FUZZ_CHECK(err != NULL);
		goto out;
	}
	FUZZ_CHECK(search != NULL);
	/* The tree holds copies: the command may go away first. */
	imap_parser_free(&p);
	FUZZ_CHECK(imap_search_format(search, &arena) != NULL);
	imap_search_prepare(search, 3, 10, keywords, 3);
	FUZZ_CHECK(imap_search_format(search, &arena) != NULL);

	/* An exact-size copy of the message, so overreads are caught. */
	copy = malloc(left > 0 ? left : 1);
	FUZZ_CHECK(copy != NULL);
	if (left > 0)
		memcpy(copy, in, left);
	arena_init(&msg_arena);
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		match_one(search, &msgs[i], copy, left, &msg_arena);
		arena_reset(&msg_arena);
	}
	arena_free(&msg_arena);
	free(copy);
out:
	imap_parser_free(&p);
	arena_free(&arena);
	return 0;
}
