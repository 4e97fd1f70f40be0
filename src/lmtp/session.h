/*
 * One LMTP connection (RFC 2033 over RFC 5321): LHLO, MAIL, RCPT, DATA,
 * RSET, NOOP, VRFY, QUIT, with PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES
 * (RFC 2034, codes from RFC 3463) and SIZE (RFC 1870).
 *
 * Commands are handled strictly in order.  A command that needs blocking
 * work pauses the input until it is done: RCPT looks the user up in the
 * passwd file on the thread pool (the lookup may re-read the file), and the
 * end of DATA delivers to each accepted recipient in turn on the thread
 * pool, sending each recipient's reply as soon as its message is fsynced and
 * indexed (RFC 2033 section 5).
 *
 * The message is never held in memory: DATA streams it, dot-stuffing
 * undone, into an unlinked file in data_dir (written from the loop thread
 * in 64 KiB blocks: page-cache writes, no fsync), and past
 * max_message_size only counts it (every recipient then gets 552).  Only
 * CRLF "." CRLF ends the data: a bare LF is message content, never a line
 * end, so that no other reading of the end of data can smuggle a second
 * message through.
 *
 * Recipients: "local@domain" is the passwd-file user "local@domain",
 * else "local", else "local" without a "+detail" suffix, then the same
 * lower-cased; the domain is not checked.  Unknown users get 550 5.1.1 at
 * RCPT, an unreadable passwd file 451 4.3.0.  Delivery always goes to
 * INBOX and adds Return-Path, Delivered-To and Received (see deliver.h).
 *
 * Limits: command lines of 4096 bytes, 1000 recipients per transaction,
 * 5 minutes of inactivity (RFC 5321 4.5.3.2.7), max_bad_commands errors in
 * a row.  There is no authentication: listen on loopback or a UNIX socket.
 */
#ifndef HERALD_LMTP_SESSION_H
#define HERALD_LMTP_SESSION_H

#include <stdbool.h>

struct lmtp_server;
struct lmtp_session;
struct worker;
struct sockaddr;

/* Start a session on an accepted connection; sends the greeting. */
void lmtp_session_new(struct lmtp_server *srv, struct worker *w, int fd,
    const struct sockaddr *peer, unsigned peer_len);
/* Server shutdown: say 421 now, or after the current message. */
void lmtp_session_shutdown(struct lmtp_session *s);
struct lmtp_session *lmtp_session_next(struct lmtp_session *s);

#endif
