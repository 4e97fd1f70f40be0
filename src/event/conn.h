/*
 * Connections: a non-blocking socket, optionally TLS, with an output queue
 * and one timer.  Opaque outside event/; the owner (an IMAP or LMTP session)
 * sees it through the verbs below and one callback set.
 *
 * Input: the conn reads into a buffer shared by the whole worker and hands
 * the bytes to ops->input(), which returns how many it consumed.  Fewer than
 * offered pauses the conn: the rest is kept in a private buffer (the only
 * time a conn owns input memory) and offered again after conn_resume().
 *
 * Output: conn_write() appends to the output buffer, which is flushed once per
 * loop iteration (so the replies to a burst of pipelined commands leave in
 * one write).  Above cfg->output_high_water, conn_output_full() is true and
 * ops->drained() fires when it falls back to empty; above
 * cfg->max_output_buffer the conn is closed (a client that does not read).
 *
 * Closing is deferred: conn_close() stops I/O at once and ops->closed() runs
 * later from the loop, never inside another callback of the same conn.
 */
#ifndef HERALD_EVENT_CONN_H
#define HERALD_EVENT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conn;
struct worker;

struct conn_ops {
	/* Bytes arrived; return how many were consumed (<= len). */
	size_t (*input)(void *ctx, const char *data, size_t len);
	/* The output buffer drained completely after being full. */
	void (*drained)(void *ctx);
	/* The timer set with conn_set_timeout() fired. */
	void (*timeout)(void *ctx);
	/* The TLS handshake started by conn_starttls() completed. */
	void (*tls_ready)(void *ctx);
	/* The peer hung up or an error occurred (reason is static text);
	 * the conn is being closed.  Called at most once. */
	void (*hangup)(void *ctx, const char *reason);
	/* Last call: the conn is freed after this returns. */
	void (*closed)(void *ctx);
};

/* Take ownership of an accepted fd; tls_ctx != NULL starts a TLS handshake
 * (implicit TLS) before any input is delivered. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peer_len, void *tls_ctx, const struct conn_ops *ops,
    void *ctx);

void conn_write(struct conn *c, const void *data, size_t len);
void conn_write_str(struct conn *c, const char *s);
void conn_printf(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Flush now (normally done once per loop iteration). */
void conn_flush(struct conn *c);
bool conn_output_full(const struct conn *c);
size_t conn_output_len(const struct conn *c);

/* Stop delivering input; conn_resume() delivers what is buffered again. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Discard buffered input, flush the output queue, then start a TLS
 * handshake (STARTTLS: no pipelined byte survives, RFC 9051 6.2.1). */
void conn_starttls(struct conn *c, void *tls_ctx);

/* (Re)arm the single timer; 0 disables it. */
void conn_set_timeout(struct conn *c, uint64_t ms);

/* Close now; output still queued gets one non-blocking write attempt. */
void conn_close(struct conn *c, const char *reason);
/* Stop reading, flush the output (at most a few seconds), then close. */
void conn_close_after_flush(struct conn *c, const char *reason);
bool conn_is_closing(const struct conn *c);

bool conn_is_tls(const struct conn *c);
bool conn_is_loopback(const struct conn *c);
const struct sockaddr *conn_peer(const struct conn *c);
/* Printable remote address, e.g. "127.0.0.1" or "::1". */
const char *conn_peer_str(const struct conn *c);
uint32_t conn_id(const struct conn *c);
struct worker *conn_worker(const struct conn *c);

#endif
