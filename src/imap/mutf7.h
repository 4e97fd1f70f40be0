/*
 * Modified UTF-7 mailbox names (RFC 3501 section 5.1.3).
 */
#ifndef HERALD_IMAP_MUTF7_H
#define HERALD_IMAP_MUTF7_H

#include <stdbool.h>

struct buf;

/*
 * Decode a modified UTF-7 name to UTF-8, appending to out.  Strict: rejects
 * 8-bit bytes and control characters, an unterminated or empty-but-for-"&-"
 * shift, bad base64 characters, non-zero padding bits, encoded printable
 * ASCII (which must be written directly), encoded forms that could have been
 * merged with the previous one ("&AGE-&AGE-"), and invalid UTF-16 (lone
 * surrogates).  Returns false on any of these.
 */
bool mutf7_decode(const char *in, struct buf *out);
/* Encode UTF-8 to modified UTF-7, appending to out.  false: bad UTF-8. */
bool mutf7_encode(const char *in, struct buf *out);

#endif
