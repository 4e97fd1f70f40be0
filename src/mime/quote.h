/*
 * IMAP string output (RFC 9051 section 4.3) for the answers built by this
 * module.  The choice between quoted string and literal follows Dovecot so
 * that answers compare equal byte for byte.  All functions append to a
 * struct buf and ignore its max (a full buffer truncates the answer; size
 * the buffer without a max, or check len against max afterwards).
 */
#ifndef HERALD_MIME_QUOTE_H
#define HERALD_MIME_QUOTE_H

#include <stddef.h>

struct buf;

/* A quoted string, escaping '"' and '\'; a literal {n}\r\n when s holds
   CR, LF, NUL or 8-bit bytes, or more than four '"' or '\'. */
void mime_quote_string(struct buf *out, const char *s, size_t len);

/* NIL for s == NULL, else as mime_quote_string(). */
void mime_quote_nstring(struct buf *out, const char *s, size_t len);

/*
 * NIL, or s with line ends removed (a run of them not followed by a blank
 * reads as one space) as a
 * quoted string, escaping as needed; a literal only for 8-bit or NUL.
 * Dovecot writes ENVELOPE date, in-reply-to and message-id this way.
 */
void mime_quote_nstring_nolf(struct buf *out, const char *s, size_t len);

/*
 * Text meant for people (subject, display names): line ends are removed,
 * TABs become spaces, runs of spaces shrink to one and the ends are
 * trimmed.  If anything had to change, or the text holds '"', '\' or
 * 8-bit bytes, it goes out as a literal of the cleaned text; otherwise as a
 * quoted string.  Empty or blank input gives "".
 */
void mime_quote_human(struct buf *out, const char *s, size_t len);

#endif
