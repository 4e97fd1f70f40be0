/*
 * IMAP ENVELOPE (RFC 9051 section 7.5.2, RFC 3501 section 7.4.2) of a
 * message or of an embedded message/rfc822.  Values are written raw, not
 * RFC 2047-decoded, as Dovecot does:
 *  - date, subject, in-reply-to, message-id: the last such field wins;
 *    subject goes out as "text for humans" (mime_quote_human()), the
 *    others unfolded as nstrings;
 *  - from, sender, reply-to, to, cc, bcc: address lists, every field of
 *    the name is appended; sender and reply-to default to from.
 */
#ifndef HERALD_MIME_ENVELOPE_H
#define HERALD_MIME_ENVELOPE_H

struct buf;
struct mime_message;
struct mime_part;

/*
 * Append the parenthesised ENVELOPE of part, which must be msg->root or
 * the child of a message/rfc822 part (mime_part_message()): its header is
 * the message header.  Temporary data comes from msg->arena.
 */
void mime_envelope_write(struct buf *out, const struct mime_message *msg,
			 const struct mime_part *part);

#endif
