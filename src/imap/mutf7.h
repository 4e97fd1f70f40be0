/*
 * Modified UTF-7 mailbox names (RFC 3501 section 5.1.3).
 */
#ifndef HERALD_IMAP_MUTF7_H
#define HERALD_IMAP_MUTF7_H

#include <stdbool.h>

struct buf;

/*
 * Decode a modified UTF-7 name to UTF-8, appending to out (NUL-terminated
 * by the buf; nothing is rolled back on failure).  Strict: rejects 8-bit
 * bytes and control characters (raw, or encoded: U+0000-U+001F, U+007F), an
 * unterminated or empty ("&-" is the '&' escape) shift, bad base64
 * characters, leftover bits that are non-zero or make a whole base64
 * character, encoded printable ASCII (which must be written directly),
 * encoded forms that could have been merged with the previous one
 * ("&AGE-&AGE-"), and invalid UTF-16 (lone or reversed surrogates).
 * Returns false on any of these.
 */
bool mutf7_decode(const char *in, struct buf *out);
/*
 * Encode UTF-8 to modified UTF-7, appending to out: printable ASCII as is
 * ('&' as "&-"), everything else as UTF-16 in modified base64.  false: bad
 * UTF-8 (overlong forms, surrogates, code points above U+10FFFF, truncated
 * sequences).
 */
bool mutf7_encode(const char *in, struct buf *out);

#endif
