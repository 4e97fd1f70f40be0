#include "event/conn.h"
#include "event/event_private.h"

#include "config/config.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* How many reads one readiness event may do before yielding to others. */
#define CONN_READS_PER_EVENT 4
/* Grace period of conn_close_after_flush(). */
#define CONN_CLOSE_FLUSH_MS 5000

struct conn {
	uv_poll_t poll;
	uv_timer_t timer;
	struct worker *w;
	const struct conn_ops *ops;
	void *ctx;
	SSL *ssl;
	struct buf in;		/* input left over while paused */
	struct buf out;
	struct conn *defer_next;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} peer;
	int fd;
	uint32_t id;
	int poll_events;	/* events currently registered */
	uint8_t handles_open;

	bool deferred:1;	/* on the worker's deferred list */
	bool paused:1;
	bool want_input:1;	/* deliver buffered input on the next tick */
	bool want_flush:1;
	bool write_blocked:1;	/* last write returned EAGAIN */
	bool was_full:1;	/* crossed the high-water mark */
	bool handshaking:1;
	bool starttls_pending:1; /* handshake once output is flushed */
	bool starttls:1;	/* current handshake came from STARTTLS */
	bool ssl_read_wants_write:1;
	bool ssl_write_wants_read:1;
	bool close_after_flush:1;
	bool closing:1;
	bool hangup_sent:1;
	bool in_callback:1;
};

static void conn_poll_cb(uv_poll_t *handle, int status, int events);
static void conn_flush_now(struct conn *c);
static void conn_read(struct conn *c);
static void conn_handshake(struct conn *c);

static const struct config *
conn_cfg(const struct conn *c)
{
	return worker_config(c->w);
}

static void
conn_update_poll(struct conn *c)
{
	int events = 0;

	if (c->closing)
		return;
	if (c->handshaking) {
		events = c->ssl_read_wants_write ? UV_WRITABLE : UV_READABLE;
	} else {
		/* Input left over from a pause goes first: read nothing new
		 * until conn_run_deferred() has delivered it. */
		if (!c->paused && !c->starttls_pending && c->in.len == 0)
			events |= c->ssl_read_wants_write ? UV_WRITABLE :
			    UV_READABLE;
		if (c->out.len > 0 && c->write_blocked)
			events |= c->ssl_write_wants_read ? UV_READABLE :
			    UV_WRITABLE;
	}
	/* Hang-ups are noticed by the read that returns 0.  A paused conn
	 * must not ask for them: a half-closed peer would wake the loop on
	 * every iteration until the conn reads again. */
	if ((events & UV_READABLE) != 0)
		events |= UV_DISCONNECT;
	if (events == c->poll_events)
		return;
	c->poll_events = events;
	uv_poll_start(&c->poll, events, conn_poll_cb);
}

static void
conn_defer(struct conn *c)
{
	if (!c->deferred && !c->closing) {
		c->deferred = true;
		worker_defer(c->w, c);
	}
}

struct conn **
conn_defer_link(struct conn *c)
{
	return &c->defer_next;
}

static void
conn_handle_closed(uv_handle_t *handle)
{
	struct conn *c = handle->data;

	if (--c->handles_open > 0)
		return;
	/* Closed in the same loop iteration as it was queued (a reply,
	 * then the peer's EOF): the queue must not keep a freed conn. */
	if (c->deferred)
		worker_undefer(c->w, c);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	worker_conn_removed(c->w);
	if (c->ops->closed != NULL)
		c->ops->closed(c->ctx);
	free(c);
}

void
conn_close(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	log_debug("conn=%u closing: %s", c->id, reason);
	/* A final best-effort write of what is queued (e.g. a BYE). */
	if (c->out.len > 0 && !c->handshaking && !c->starttls_pending) {
		if (c->ssl != NULL)
			(void)SSL_write(c->ssl, c->out.data, (int)c->out.len);
		else
			(void)send(c->fd, c->out.data, c->out.len,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (c->ssl != NULL && !c->handshaking && !c->starttls_pending)
		(void)SSL_shutdown(c->ssl);
	buf_free(&c->in);
	buf_free(&c->out);
	uv_poll_stop(&c->poll);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->poll, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* The peer went away or I/O failed: tell the owner once, then close. */
static void
conn_fail(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	if (!c->hangup_sent) {
		c->hangup_sent = true;
		if (c->ops->hangup != NULL)
			c->ops->hangup(c->ctx, reason);
	}
	conn_close(c, reason);
}

static void
conn_timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing)
		return;
	if (c->close_after_flush) {
		conn_close(c, "flush timeout");
		return;
	}
	if (c->ops->timeout != NULL)
		c->ops->timeout(c->ctx);
}

struct conn *
conn_new(struct worker *w, int fd, const struct sockaddr *peer,
    socklen_t peer_len, void *tls_ctx, const struct conn_ops *ops, void *ctx)
{
	struct conn *c = xmalloc(sizeof(*c));
	const struct config *cfg = worker_config(w);

	c->w = w;
	c->fd = fd;
	c->ops = ops;
	c->ctx = ctx;
	c->id = worker_next_conn_id(w);
	if (peer_len > sizeof(c->peer))
		peer_len = sizeof(c->peer);
	memcpy(&c->peer, peer, peer_len);
	buf_init(&c->in, 0);
	buf_init(&c->out, cfg->max_output_buffer);
	uv_poll_init_socket(worker_loop(w), &c->poll, fd);
	uv_timer_init(worker_loop(w), &c->timer);
	c->poll.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	worker_conn_added(w);
	if (tls_ctx != NULL) {
		c->ssl = SSL_new(tls_ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			conn_fail(c, "TLS setup failed");
			return c;
		}
		c->handshaking = true;
	}
	conn_update_poll(c);
	return c;
}

/*
 * Hand bytes to the owner.  from_in: data points into c->in.
 */
static void
conn_deliver(struct conn *c, const char *data, size_t len, bool from_in)
{
	size_t used;

	used = c->ops->input(c->ctx, data, len);
	if (used > len)
		used = len;
	if (c->closing)
		return;
	if (c->starttls_pending) {
		/* RFC 9051 6.2.1: drop anything pipelined after STARTTLS. */
		buf_free(&c->in);
		return;
	}
	if (from_in) {
		buf_consume(&c->in, used);
		if (c->in.len > 0)
			c->paused = true;
	} else if (used < len) {
		buf_append(&c->in, data + used, len - used);
		c->paused = true;
	}
}

static void
conn_read(struct conn *c)
{
	size_t size;
	char *rbuf = worker_read_buf(c->w, &size);

	if (c->in.len > 0 && !c->paused && !c->closing) {
		/* Keep the order: what was left over is older. */
		conn_deliver(c, c->in.data, c->in.len, true);
		if (c->in.len > 0)
			return;
	}
	for (int i = 0; i < CONN_READS_PER_EVENT; i++) {
		ssize_t n;

		if (c->paused || c->closing || c->handshaking ||
		    c->starttls_pending || c->close_after_flush)
			break;
		if (c->ssl != NULL) {
			int r;

			c->ssl_read_wants_write = false;
			ERR_clear_error();
			r = SSL_read(c->ssl, rbuf, (int)size);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					break;
				if (e == SSL_ERROR_WANT_WRITE) {
					c->ssl_read_wants_write = true;
					break;
				}
				conn_fail(c, e == SSL_ERROR_ZERO_RETURN ?
				    "disconnected" : "TLS read error");
				return;
			}
			n = r;
		} else {
			n = recv(c->fd, rbuf, size, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK ||
				    errno == EINTR)
					break;
				conn_fail(c, errno == ECONNRESET ?
				    "connection reset" : "read error");
				return;
			}
			if (n == 0) {
				conn_fail(c, "disconnected");
				return;
			}
		}
		conn_deliver(c, rbuf, (size_t)n, false);
		if (c->ssl == NULL && (size_t)n < size)
			break;
	}
	/* TLS may hold decrypted bytes the socket no longer signals. */
	if (!c->closing && c->ssl != NULL && !c->paused &&
	    !c->handshaking && SSL_pending(c->ssl) > 0) {
		c->want_input = true;
		conn_defer(c);
	}
}

static void
conn_handshake(struct conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_accept(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		c->ssl_read_wants_write = false;
		log_debug("conn=%u TLS established: %s %s", c->id,
		    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
		if (c->starttls) {
			c->starttls = false;
			if (c->ops->tls_ready != NULL)
				c->ops->tls_ready(c->ctx);
		}
		if (c->closing)
			return;
		if (c->out.len > 0)
			conn_flush_now(c);
		conn_update_poll(c);
		/* The client may have sent its first command already. */
		conn_read(c);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		c->ssl_read_wants_write = false;
	} else if (e == SSL_ERROR_WANT_WRITE) {
		c->ssl_read_wants_write = true;
	} else {
		unsigned long err = ERR_peek_error();

		log_info("conn=%u TLS handshake failed: %s", c->id,
		    err != 0 ? ERR_reason_error_string(err) : "eof");
		conn_fail(c, "TLS handshake failed");
		return;
	}
	conn_update_poll(c);
}

static void
conn_flush_now(struct conn *c)
{
	if (c->closing || c->handshaking)
		return;
	while (c->out.len > 0) {
		ssize_t n;

		/* Under STARTTLS the reply leaves in clear before the
		 * handshake: c->ssl exists but is not in use yet. */
		if (c->ssl != NULL && !c->starttls_pending) {
			int r;

			c->ssl_write_wants_read = false;
			ERR_clear_error();
			r = SSL_write(c->ssl, c->out.data,
			    c->out.len > INT32_MAX ? INT32_MAX :
			    (int)c->out.len);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ) {
					c->ssl_write_wants_read =
					    e == SSL_ERROR_WANT_READ;
					c->write_blocked = true;
					break;
				}
				conn_fail(c, "TLS write error");
				return;
			}
			n = r;
		} else {
			n = send(c->fd, c->out.data, c->out.len,
			    MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK ||
				    errno == EINTR) {
					c->write_blocked = true;
					break;
				}
				conn_fail(c, errno == EPIPE ||
				    errno == ECONNRESET ? "disconnected" :
				    "write error");
				return;
			}
		}
		buf_consume(&c->out, (size_t)n);
	}
	if (c->out.len == 0) {
		c->write_blocked = false;
		buf_free(&c->out);
		if (c->close_after_flush) {
			conn_close(c, "closed after flush");
			return;
		}
		if (c->starttls_pending) {
			c->starttls_pending = false;
			c->handshaking = true;
			c->starttls = true;
			buf_free(&c->in);
			conn_handshake(c);
			return;
		}
		if (c->was_full) {
			c->was_full = false;
			if (c->ops->drained != NULL)
				c->ops->drained(c->ctx);
			if (c->closing)
				return;
		}
	}
	conn_update_poll(c);
}

static void
conn_poll_cb(uv_poll_t *handle, int status, int events)
{
	struct conn *c = handle->data;

	if (c->closing)
		return;
	if (status < 0) {
		conn_fail(c, "poll error");
		return;
	}
	if (c->handshaking) {
		conn_handshake(c);
		return;
	}
	if ((events & UV_WRITABLE) != 0 || ((events & UV_READABLE) != 0 &&
	    c->ssl_write_wants_read)) {
		if (c->ssl_read_wants_write) {
			c->ssl_read_wants_write = false;
			conn_read(c);
		}
		if (!c->closing && c->out.len > 0)
			conn_flush_now(c);
	}
	if (c->closing)
		return;
	if ((events & (UV_READABLE | UV_DISCONNECT)) != 0) {
		if (!c->paused && !c->close_after_flush)
			conn_read(c);
	}
	if (!c->closing && c->out.len > 0)
		conn_flush_now(c);
	else if (!c->closing)
		conn_update_poll(c);
}

void
conn_run_deferred(struct conn *c)
{
	c->deferred = false;
	if (c->closing)
		return;
	if (c->want_input && !c->paused) {
		c->want_input = false;
		if (c->in.len > 0)
			conn_deliver(c, c->in.data, c->in.len, true);
		if (!c->closing && !c->paused)
			conn_read(c);
	}
	if (c->closing)
		return;
	if (c->want_flush || c->out.len > 0) {
		c->want_flush = false;
		conn_flush_now(c);
	} else {
		conn_update_poll(c);
	}
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	const struct config *cfg;

	if (c->closing || c->close_after_flush)
		return;
	if (!buf_append(&c->out, data, len)) {
		log_info("conn=%u ip=%s output buffer over %llu bytes: "
		    "disconnecting", c->id, conn_peer_str(c),
		    (unsigned long long)c->out.max);
		conn_fail(c, "output buffer full");
		return;
	}
	cfg = conn_cfg(c);
	if (c->out.len > cfg->output_high_water)
		c->was_full = true;
	if (!c->want_flush) {
		c->want_flush = true;
		conn_defer(c);
	}
}

void
conn_write_str(struct conn *c, const char *s)
{
	conn_write(c, s, strlen(s));
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		conn_write(c, small, (size_t)n);
		return;
	}
	{
		char *big = xmalloc((size_t)n + 1);

		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		conn_write(c, big, (size_t)n);
		free(big);
	}
}

void
conn_flush(struct conn *c)
{
	conn_flush_now(c);
}

bool
conn_output_full(const struct conn *c)
{
	return c->out.len > conn_cfg(c)->output_high_water;
}

size_t
conn_output_len(const struct conn *c)
{
	return c->out.len;
}

void
conn_pause(struct conn *c)
{
	if (c->closing || c->paused)
		return;
	c->paused = true;
	conn_update_poll(c);
}

void
conn_resume(struct conn *c)
{
	if (c->closing || !c->paused)
		return;
	c->paused = false;
	c->want_input = true;
	conn_defer(c);
}

void
conn_starttls(struct conn *c, void *tls_ctx)
{
	if (c->closing || c->ssl != NULL)
		return;
	c->ssl = SSL_new(tls_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		conn_fail(c, "TLS setup failed");
		return;
	}
	buf_free(&c->in);
	c->starttls_pending = true;
	c->want_flush = true;
	conn_defer(c);
}

void
conn_set_timeout(struct conn *c, uint64_t ms)
{
	/* While closing after a flush the timer bounds the flush. */
	if (c->closing || c->close_after_flush)
		return;
	if (ms == 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

void
conn_close_after_flush(struct conn *c, const char *reason)
{
	if (c->closing || c->close_after_flush)
		return;
	log_debug("conn=%u closing after flush: %s", c->id, reason);
	if (c->out.len == 0 && !c->starttls_pending) {
		conn_close(c, reason);
		return;
	}
	c->close_after_flush = true;
	c->paused = true;
	uv_timer_start(&c->timer, conn_timer_cb, CONN_CLOSE_FLUSH_MS, 0);
	c->want_flush = true;
	conn_defer(c);
}

bool
conn_is_closing(const struct conn *c)
{
	return c->closing || c->close_after_flush;
}

bool
conn_is_tls(const struct conn *c)
{
	return c->ssl != NULL && !c->starttls_pending;
}

bool
conn_is_loopback(const struct conn *c)
{
	if (c->peer.sa.sa_family == AF_INET)
		return (ntohl(c->peer.sin.sin_addr.s_addr) >> 24) == 127;
	if (c->peer.sa.sa_family == AF_INET6) {
		const struct in6_addr *a = &c->peer.sin6.sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return a->s6_addr[12] == 127;
	}
	return false;
}

const struct sockaddr *
conn_peer(const struct conn *c)
{
	return &c->peer.sa;
}

const char *
conn_peer_str(const struct conn *c)
{
	static char str[INET6_ADDRSTRLEN];

	str[0] = '\0';
	if (c->peer.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &c->peer.sin.sin_addr, str, sizeof(str));
	else if (c->peer.sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &c->peer.sin6.sin6_addr, str, sizeof(str));
	else
		strcpy(str, "local");
	return str;
}

uint32_t
conn_id(const struct conn *c)
{
	return c->id;
}

struct worker *
conn_worker(const struct conn *c)
{
	return c->w;
}
