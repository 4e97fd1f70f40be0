/*
 * BODY and BODYSTRUCTURE (RFC 9051 section 7.5.2) of a parsed message or
 * of any part of it, formatted as Dovecot 2.3 does:
 *  - type, subtype, parameter names and values keep their case;
 *  - a text part without charset gets ("charset" "us-ascii") appended; a
 *    part without Content-Type is text/plain; a multipart without parts
 *    gets one empty text/plain part;
 *  - a single-part message that is plain 7-bit us-ascii text is written
 *    in the lower-case default form;
 *  - sizes count every bare LF as CRLF; text and message/rfc822 parts get
 *    their line count;
 *  - extension data: md5, disposition, language, location for single
 *    parts; parameters, disposition, language, location for multiparts;
 *  - containers not parsed because of limits read application/octet-stream.
 */
#ifndef HERALD_MIME_BODYSTRUCTURE_H
#define HERALD_MIME_BODYSTRUCTURE_H

#include <stdbool.h>

struct buf;
struct mime_message;
struct mime_part;

/* Append the body structure of part (msg->root for the FETCH item):
   extended = true for BODYSTRUCTURE, false for BODY. */
void mime_bodystructure_write(struct buf *out, const struct mime_message *msg,
			      const struct mime_part *part, bool extended);

#endif
