/*
 * APPEND's message literals, streamed to disk as they arrive (STYLE section
 * 5) instead of being held in the parser's memory.
 *
 * The session installs a literal handler on its parser at accept
 * (imap_append_stream_attach()).  For a literal that is an APPEND message
 * (command APPEND, top-level argument 1 or later, after login) the handler
 * opens an unlinked temporary file under data_dir/tmp (O_TMPFILE, or
 * mkstemp() + unlink() where the file system lacks it) and writes the bytes
 * there on the loop thread; those are small page-cache writes.  Literals
 * over max_message_size are refused with "[TOOBIG] Message too large"
 * (a synchronizing literal gets a BAD before the continuation; for {n+} the
 * parser closes the connection, RFC 7888 section 4).  A literal cut short
 * (disconnect, parser reset) has its file closed, so nothing is left
 * anywhere.  Zero-byte literals stay in memory (there is nothing to
 * stream), and so does every other literal.
 *
 * State exists only for sessions with a message literal in flight or
 * waiting for its command: idle sessions cost nothing.  Everything here
 * runs on the loop thread.
 */
#ifndef HERALD_IMAP_APPEND_STREAM_H
#define HERALD_IMAP_APPEND_STREAM_H

#include <stdint.h>

struct imap_session;

/* Most message literals one APPEND (MULTIAPPEND, RFC 3502) may carry;
 * each holds a file descriptor until the command runs. */
#define IMAP_APPEND_MAX_MESSAGES 100

/* A message literal received in full. */
struct imap_append_literal {
	int fd;			/* unlinked file at offset size; -1 if error */
	int error;		/* errno of a failed create or write, else 0 */
	uint64_t size;
};

/* Install the literal handler on s->parser.  Call once, at accept. */
void imap_append_stream_attach(struct imap_session *s);

/*
 * Close every file the session still holds and forget its state.  Call
 * when the session is destroyed: a client that disconnects after a
 * literal's last byte but before the command's line end leaves a complete
 * literal that no command will take.
 */
void imap_append_stream_detach(struct imap_session *s);

/*
 * For APPEND's handler: take the files of the command just parsed, whose
 * streamed literals are its top-level arguments positions[0..n-1]
 * (ascending).  Files left over from earlier commands that failed after a
 * literal (a syntax error later in the line) are closed.  On success the
 * caller owns out[0..n-1] and closes their fds.  Returns 0, or -1 if the
 * files do not match the positions (everything is closed then).
 */
int imap_append_stream_take(struct imap_session *s, const unsigned *positions,
    unsigned n, struct imap_append_literal *out);

#endif
