/*
 * Decoding for SEARCH: Content-Transfer-Encoding (RFC 2045 section 6),
 * RFC 2047 encoded-words and charset conversion to UTF-8 through glibc's
 * iconv.  Decoders are lenient: they never fail, broken input decodes as
 * far as it goes and invalid bytes become U+FFFD.  Every function appends
 * to out; the output of the _utf8 functions is valid UTF-8.
 */
#ifndef HERALD_MIME_DECODE_H
#define HERALD_MIME_DECODE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Quoted-printable; with header (RFC 2047 "Q") '_' is a space. */
void mime_decode_qp(struct buf *out, const char *s, size_t len, bool header);

/* Base64, skipping whitespace and other bytes outside the alphabet and
   stopping at the first '='. */
void mime_decode_base64(struct buf *out, const char *s, size_t len);

/* Decode by the Content-Transfer-Encoding name (NULL, 7bit, 8bit, binary
   and unknown names copy). */
void mime_decode_transfer(struct buf *out, const char *encoding,
			  const char *s, size_t len);

/*
 * Convert from charset to UTF-8.  NULL, us-ascii and utf-8 (and unknown
 * charsets, for which it returns false) are taken as UTF-8 and only
 * validated.
 */
bool mime_decode_charset_utf8(struct buf *out, const char *charset,
			      const char *s, size_t len);

/* An unfolded header value with its RFC 2047 encoded-words decoded
   (blanks between adjacent encoded-words dropped), as UTF-8. */
void mime_decode_header_utf8(struct buf *out, const char *s, size_t len);

#endif
