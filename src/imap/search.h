/*
 * SEARCH criteria (RFC 3501 section 6.4.4, RFC 9051 section 6.4.4).
 *
 * The arguments are parsed on the loop thread into a tree (syntax errors
 * become BAD there), then imap_search_prepare() binds it to the selected
 * mailbox and imap_search_match() evaluates it message by message on the
 * thread pool.
 *
 * Evaluation is staged so that files are opened only when needed: with the
 * index fields alone (flags, UID, sequence number, internal date, stored
 * size) a tree answers YES or NO where it can, and MAYBE when a key needs
 * the message (text keys, SENT*, or LARGER/SMALLER whose answer the stored
 * size does not settle).  The caller then supplies the exact RFC822.SIZE
 * if it knows it, or the message itself, and asks again.  AND and OR
 * children are sorted cheapest first, and evaluation stops at the first
 * child that settles the answer.
 *
 * Matching rules, where RFC 3501 leaves room, follow Dovecot:
 *  - strings match as case-insensitive substrings of text decoded to UTF-8
 *    (RFC 2047 words, transfer encodings, charsets) and case-folded
 *    (src/mime/search.h);
 *  - BODY searches the bodies of the text/ and message/ leaf parts only
 *    (no preamble, no MIME or embedded-message headers); TEXT adds every
 *    header of the message as "name: value" lines: the top-level one,
 *    each part's MIME header and those of embedded messages;
 *  - FROM, TO, CC and BCC match the address list rewritten as
 *    "name" <mailbox@domain>, ... (display names quoted when they hold
 *    more than atext), SUBJECT the subject with runs of white space
 *    compressed to one space, HEADER the decoded value as it is;
 *  - an empty string in a header key matches every message having that
 *    field; an empty BODY or TEXT string matches every message;
 *  - BEFORE, ON, SINCE compare the day of the internal date in the
 *    server's local time zone; SENT* the day written in the first Date:
 *    field, disregarding time and zone; a missing or unparsable Date:
 *    counts as 1-Jan-1970 (as Dovecot does);
 *  - sequence numbers above the message count match nothing (no error).
 */
#ifndef HERALD_IMAP_SEARCH_H
#define HERALD_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "imap/parser.h"
#include "store/store.h"

struct mime_message;

/* Response code for an unknown CHARSET (RFC 3501 section 7.1). */
#define IMAP_SEARCH_BADCHARSET "[BADCHARSET (UTF-8 US-ASCII)]"

/* Nesting of parentheses, NOT and OR allowed in one search. */
#define IMAP_SEARCH_MAX_DEPTH 64

enum imap_search_parse_result {
	IMAP_SEARCH_PARSE_OK = 0,
	IMAP_SEARCH_PARSE_BAD = -1,		/* syntax error: BAD */
	IMAP_SEARCH_PARSE_BADCHARSET = -2,	/* NO [BADCHARSET] */
};

struct imap_search;

/*
 * Parse "[CHARSET astring] 1*search-key".  Strings are converted from the
 * charset to UTF-8 (any charset iconv knows; UTF-8 and US-ASCII strings
 * are taken as UTF-8) and case-folded here.  The tree, and copies of
 * everything it needs from args, come from arena.  Returns
 * IMAP_SEARCH_PARSE_OK with *search_r, or an error with *error_r (static
 * text, or from arena) for the client.
 */
enum imap_search_parse_result imap_search_parse(const struct imap_arg *args,
    unsigned nargs, struct arena *arena, struct imap_search **search_r,
    const char **error_r);

/*
 * The tree in a canonical text form, for tests and debugging, e.g.
 * "(AND FLAGGED (NOT (FROM \"smith\")) (SINCE 8797))": keys upper-case,
 * strings folded, dates as days since 1970-01-01, AND/OR children in
 * evaluation order.  From arena.
 */
char *imap_search_format(const struct imap_search *search,
    struct arena *arena);

/*
 * Bind to the mailbox before matching: resolve '*' in sequence sets
 * (count messages, highest UID max_uid; sets are changed in place, so call
 * this once) and keyword names to the mailbox's keyword bits (names[i] is
 * bit i, compared case-insensitively).
 */
void imap_search_prepare(struct imap_search *search, uint32_t count,
    uint32_t max_uid, const char *const *keywords, unsigned keyword_count);

/* One message being matched.  The caller fills the index fields, and
 * vsize or data as it learns them; the rest is a cache for the keys. */
struct imap_search_msg {
	uint32_t seq, uid;
	uint32_t flags;		/* STORE_F_*, STORE_F_RECENT included */
	uint64_t keywords;	/* bit i: keyword i of the mailbox */
	int64_t internal_date;	/* seconds since the epoch */
	uint64_t size;		/* bytes in the file, as stored */
	uint64_t vsize;		/* RFC822.SIZE (LF counted as CRLF) */
	bool vsize_known;
	/* Set by imap_search_match() when a LARGER/SMALLER key could not be
	 * decided from the stored size: the exact vsize would help. */
	bool vsize_wanted;
	/* The message file once loaded (data may be NULL with len 0 for an
	 * empty file: set loaded). */
	const char *data;
	size_t len;
	bool loaded;

	/* Private: computed on first use. */
	struct arena *arena;		/* for the MIME tree */
	struct mime_message *mime;
	struct buf hdr_text, body_text, scratch;
	int64_t sent_day;
	bool hdr_done:1, body_done:1, sent_done:1;
	/* Set when a key was answered from index data (tests, logs). */
	bool from_index:1;
};

enum imap_search_result {
	IMAP_SEARCH_NO = 0,
	IMAP_SEARCH_YES = 1,
	IMAP_SEARCH_MAYBE = 2,	/* needs vsize or the message */
};

/* Prepare m for a message; arena (the caller's, reset between messages)
 * holds the MIME tree. */
void imap_search_msg_init(struct imap_search_msg *m, struct arena *arena);
/* Free m's caches (not data, which is the caller's). */
void imap_search_msg_deinit(struct imap_search_msg *m);

/* Evaluate.  Never MAYBE once m->loaded is set. */
enum imap_search_result imap_search_match(const struct imap_search *search,
    struct imap_search_msg *m);

/*
 * Index data (store.h, "search data").  A header key (HEADER, SUBJECT,
 * FROM, TO, CC, BCC) on a plain field name can be answered from the
 * values stored under its field id (see header_values() in search.c:
 * exactly the strings the file-based match compares against), and a BODY
 * key whose needle has at least 3 code points from the full-text index,
 * which gives candidates that are then confirmed on the file.  TEXT keys
 * always read the file.  The caller loads, for each aux, the stored data
 * (values, or indexed UIDs and candidates) and sets loaded; keys without
 * data for a message answer MAYBE as before.  Answers are the same with
 * and without the index.
 */
enum imap_search_aux_kind {
	IMAP_SEARCH_AUX_HEADER,
	IMAP_SEARCH_AUX_BODY,
};

struct imap_search_aux {
	enum imap_search_aux_kind kind;
	const char *field;		/* HEADER: store field id */
	const char *needle;		/* BODY: folded needle */
	size_t len;
	/* Filled by the caller (arrays ascending by UID): */
	bool loaded;			/* the data below is valid */
	const struct store_search_value *values;	/* HEADER */
	unsigned value_count;
	const uint32_t *indexed;	/* BODY: UIDs with stored text */
	unsigned indexed_count;
	bool usable;			/* BODY: candidates narrow it down */
	const uint32_t *candidates;	/* BODY: superset of the matches */
	unsigned candidate_count;
	struct imap_search_aux *next;
	/* Private. */
	int key_type;
	const char *name;
};

/* The index data the search can use, one per header field id and one
 * per BODY key; NULL if none. */
struct imap_search_aux *imap_search_aux_list(struct imap_search *search);

typedef void imap_search_aux_cb(void *ctx, const struct imap_search_aux *aux,
    const void *data, size_t len);
/*
 * After a loaded message was matched: call cb once per header aux whose
 * (loaded) values lack m's UID, with the values to store, and once for the
 * first BODY aux whose indexed UIDs lack it, with the BODY text to store.
 * data is valid during the call only.
 */
void imap_search_aux_missing(struct imap_search *search,
    struct imap_search_msg *m, imap_search_aux_cb *cb, void *ctx);

/*
 * Dates.  Days are counted from 1970-01-01 (negative before).
 * imap_search_parse_date(): RFC 3501 "date" text, "1-Feb-1994" or
 * "01-Feb-1994", month case-insensitive; false if invalid.
 * imap_search_sent_day(): the date written in an RFC 5322 Date: value
 * (obsolete forms, comments and two-digit years included; a time of day
 * is required, as Dovecot does); false if unparsable.
 */
bool imap_search_parse_date(const char *s, int64_t *day_r);
bool imap_search_sent_day(const char *s, size_t len, int64_t *day_r);
int64_t imap_search_days_from_civil(int year, unsigned month, unsigned day);

#endif
