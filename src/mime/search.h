/*
 * Text of a message for IMAP SEARCH substring matching (RFC 9051 section
 * 6.4.4): decoded to UTF-8 and case-folded (utf8proc, NFC), so a needle
 * folded with mime_search_fold() can be found with memmem().
 */
#ifndef HERALD_MIME_SEARCH_H
#define HERALD_MIME_SEARCH_H

#include <stddef.h>

struct arena;
struct buf;
struct mime_message;
struct mime_part;
struct mime_header_field;

enum mime_search_flags {
	MIME_SEARCH_HEADERS	= 1 << 0, /* the top-level header */
	MIME_SEARCH_BODY	= 1 << 1, /* text parts, embedded headers */
};

/*
 * Append the searchable text of msg: with MIME_SEARCH_HEADERS one line
 * "name: value" per top-level field, encoded-words decoded; with
 * MIME_SEARCH_BODY the text/ and message/ parts (transfer encoding and
 * charset decoded) and the headers of embedded messages, each part
 * followed by a newline.  NUL bytes become spaces.  The buffer's max
 * bounds the work: appending stops once it is full.
 */
void mime_search_text(struct buf *out, const struct mime_message *msg,
		      unsigned int flags);

/*
 * The text IMAP SEARCH BODY looks in (RFC 9051 section 6.4.4, as Dovecot
 * draws the line): the decoded, folded bodies of the text/ and message/
 * leaf parts that are not embedded messages, each followed by a newline;
 * no preamble, no MIME headers, no headers of embedded messages.  Set
 * out->max to mime_search_text_cap(length of the message) first: the
 * SEARCH matcher and the full-text index must see the same text.
 */
void mime_search_body(struct buf *out, const struct mime_message *msg);
/* Most decoded text kept for a message of len bytes: decoding can grow
 * text (Latin-1 to UTF-8, case folding), never by much more than this. */
size_t mime_search_text_cap(size_t len);

/* Append the decoded, folded value of one header field (for SEARCH
   HEADER name / FROM / SUBJECT ...). */
void mime_search_header(struct buf *out, const struct mime_message *msg,
			const struct mime_header_field *field);

/* Append the case-folded form of UTF-8 text (invalid bytes become
   U+FFFD), as applied to the text above. */
void mime_search_fold(struct buf *out, const char *s, size_t len);

/* How a header search key sees a field's value (RFC 3501 SEARCH keys). */
enum mime_search_values {
	MIME_SEARCH_VALUES_HEADER,	/* HEADER: the decoded value */
	MIME_SEARCH_VALUES_SUBJECT,	/* SUBJECT: white space compressed */
	MIME_SEARCH_VALUES_ADDRESS,	/* FROM, TO, CC, BCC: the address
					 * list rewritten as Dovecot does */
};

/*
 * Append the values a header search key compares against, each followed
 * by a NUL byte (no value holds one: folding turns NUL into a space, and
 * needles are folded too, so a needle never spans two values): one per
 * field named name (any case) of the top-level header, decoded and
 * folded.  Nothing is appended when the field is absent.  Address lists
 * are parsed into arena.  SEARCH matches against these and the index
 * stores them, so both give the same answers.
 */
void mime_search_header_values(struct buf *out,
    const struct mime_message *msg, struct arena *arena,
    enum mime_search_values kind, const char *name);

#endif
