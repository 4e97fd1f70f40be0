#include "event/worker.h"
#include "event/event_private.h"

#include "config/config.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKER_READ_BUF_SIZE (64 * 1024)
/* Connections one listener accepts per readiness event. */
#define WORKER_ACCEPTS_PER_EVENT 64
/* Pause after EMFILE/ENFILE before accepting again. */
#define WORKER_ACCEPT_BACKOFF_MS 100

struct listener {
	struct listener *next;
	struct worker *w;
	uv_poll_t poll;
	uv_timer_t backoff;
	int fd;
	void *tls_ctx;
	worker_accept_cb *cb;
	void *ctx;
	const char *busy_reply;	/* sent when the worker is full; NULL: none */
};

struct worker {
	uv_loop_t loop;
	uv_prepare_t prepare;
	uv_idle_t idle;
	uv_timer_t shutdown_timer;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	const struct config *cfg;
	unsigned index;
	unsigned nconns;
	uint32_t next_conn_id;
	struct conn *defer_head;
	struct conn **defer_tail;
	struct listener *listeners;
	char *rbuf;
	worker_shutdown_cb *shutdown_cb;
	void *shutdown_ctx;
	worker_tick_cb *tick_cb;
	void *tick_ctx;
	bool shutting_down;
	bool idle_active;
};

static void
worker_run_deferred(struct worker *w)
{
	/* Take the list as it is: work added while running it waits for the
	 * next iteration, so one busy connection cannot starve the loop. */
	struct conn *c = w->defer_head;

	w->defer_head = NULL;
	w->defer_tail = &w->defer_head;
	while (c != NULL) {
		struct conn *next = *conn_defer_link(c);

		*conn_defer_link(c) = NULL;
		conn_run_deferred(c);
		c = next;
	}
}

static void
worker_idle_cb(uv_idle_t *h)
{
	/* Exists only so that the loop polls without blocking. */
}

void
worker_wakeup(struct worker *w)
{
	if (!w->idle_active) {
		uv_idle_start(&w->idle, worker_idle_cb);
		w->idle_active = true;
	}
}

static void
worker_prepare_cb(uv_prepare_t *h)
{
	struct worker *w = h->data;

	if (w->tick_cb != NULL)
		w->tick_cb(w, w->tick_ctx);
	worker_run_deferred(w);
	if (w->defer_head != NULL) {
		worker_wakeup(w);
	} else if (w->idle_active) {
		uv_idle_stop(&w->idle);
		w->idle_active = false;
	}
	if (w->shutting_down && w->nconns == 0)
		uv_stop(&w->loop);
}

void
worker_defer(struct worker *w, struct conn *c)
{
	*conn_defer_link(c) = NULL;
	*w->defer_tail = c;
	w->defer_tail = conn_defer_link(c);
}

void
worker_undefer(struct worker *w, struct conn *c)
{
	struct conn **pp = &w->defer_head;

	while (*pp != NULL) {
		if (*pp == c) {
			*pp = *conn_defer_link(c);
			if (w->defer_tail == conn_defer_link(c))
				w->defer_tail = pp;
			*conn_defer_link(c) = NULL;
			return;
		}
		pp = conn_defer_link(*pp);
	}
}

char *
worker_read_buf(struct worker *w, size_t *size_r)
{
	*size_r = WORKER_READ_BUF_SIZE;
	return w->rbuf;
}

void
worker_conn_added(struct worker *w)
{
	w->nconns++;
}

void
worker_conn_removed(struct worker *w)
{
	ASSERT(w->nconns > 0);
	w->nconns--;
}

uint32_t
worker_next_conn_id(struct worker *w)
{
	return ++w->next_conn_id;
}

static void listener_poll_cb(uv_poll_t *h, int status, int events);

static void
listener_backoff_cb(uv_timer_t *t)
{
	struct listener *l = t->data;

	if (!l->w->shutting_down)
		uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
}

static void
listener_poll_cb(uv_poll_t *h, int status, int events)
{
	struct listener *l = h->data;
	struct worker *w = l->w;

	for (int i = 0; i < WORKER_ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warn("accept: pausing %d ms",
				    WORKER_ACCEPT_BACKOFF_MS);
				uv_poll_stop(&l->poll);
				uv_timer_start(&l->backoff,
				    listener_backoff_cb,
				    WORKER_ACCEPT_BACKOFF_MS, 0);
				return;
			}
			log_warn("accept");
			return;
		}
		if (w->nconns >= w->cfg->max_connections) {
			log_warnx("connection limit %u reached: refusing %s",
			    w->cfg->max_connections, "client");
			if (l->busy_reply != NULL)
				(void)send(fd, l->busy_reply,
				    strlen(l->busy_reply),
				    MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		{
			int one = 1;

			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
			    &one, sizeof(one));
		}
		l->cb(w, fd, (struct sockaddr *)&ss, sl, l->tls_ctx, l->ctx);
	}
}

struct worker *
worker_new(unsigned index, const struct config *cfg)
{
	struct worker *w = xmalloc(sizeof(*w));

	if (uv_loop_init(&w->loop) != 0)
		fatalx("uv_loop_init failed");
	w->index = index;
	w->cfg = cfg;
	w->defer_tail = &w->defer_head;
	w->rbuf = xmalloc(WORKER_READ_BUF_SIZE);
	uv_prepare_init(&w->loop, &w->prepare);
	w->prepare.data = w;
	uv_prepare_start(&w->prepare, worker_prepare_cb);
	uv_idle_init(&w->loop, &w->idle);
	w->idle.data = w;
	uv_timer_init(&w->loop, &w->shutdown_timer);
	w->shutdown_timer.data = w;
	uv_signal_init(&w->loop, &w->sigterm);
	uv_signal_init(&w->loop, &w->sigint);
	w->sigterm.data = w;
	w->sigint.data = w;
	/* The prepare and signal handles must not keep the loop alive on
	 * their own once shutdown has closed everything else. */
	return w;
}

static void
worker_shutdown_timeout_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	log_info("shutdown: %u connections still open after %us, exiting",
	    w->nconns, w->cfg->shutdown_timeout);
	uv_stop(&w->loop);
}

static void
worker_begin_shutdown(struct worker *w)
{
	struct listener *l;

	if (w->shutting_down)
		return;
	w->shutting_down = true;
	log_info("shutting down: %u connections", w->nconns);
	for (l = w->listeners; l != NULL; l = l->next) {
		uv_poll_stop(&l->poll);
		uv_timer_stop(&l->backoff);
	}
	if (w->shutdown_cb != NULL)
		w->shutdown_cb(w, w->shutdown_ctx);
	uv_timer_start(&w->shutdown_timer, worker_shutdown_timeout_cb,
	    (uint64_t)w->cfg->shutdown_timeout * 1000, 0);
	worker_wakeup(w);
}

static void
worker_signal_cb(uv_signal_t *s, int signum)
{
	worker_begin_shutdown(s->data);
}

void
worker_add_listener(struct worker *w, int fd, void *tls_ctx,
    const char *busy_reply, worker_accept_cb *cb, void *ctx)
{
	struct listener *l = xmalloc(sizeof(*l));

	l->w = w;
	l->fd = fd;
	l->tls_ctx = tls_ctx;
	l->busy_reply = busy_reply;
	l->cb = cb;
	l->ctx = ctx;
	uv_poll_init_socket(&w->loop, &l->poll, fd);
	uv_timer_init(&w->loop, &l->backoff);
	l->poll.data = l;
	l->backoff.data = l;
	uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
	l->next = w->listeners;
	w->listeners = l;
}

void
worker_on_shutdown(struct worker *w, worker_shutdown_cb *cb, void *ctx)
{
	w->shutdown_cb = cb;
	w->shutdown_ctx = ctx;
}

void
worker_on_tick(struct worker *w, worker_tick_cb *cb, void *ctx)
{
	w->tick_cb = cb;
	w->tick_ctx = ctx;
}

int
worker_run(struct worker *w)
{
	uv_signal_start(&w->sigterm, worker_signal_cb, SIGTERM);
	uv_signal_start(&w->sigint, worker_signal_cb, SIGINT);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return 0;
}

static void
worker_walk_close(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void
worker_free(struct worker **wp)
{
	struct worker *w = *wp;
	struct listener *l, *next;

	if (w == NULL)
		return;
	*wp = NULL;
	uv_walk(&w->loop, worker_walk_close, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&w->loop);
	for (l = w->listeners; l != NULL; l = next) {
		next = l->next;
		close(l->fd);
		free(l);
	}
	free(w->rbuf);
	free(w);
}

uv_loop_t *
worker_loop(struct worker *w)
{
	return &w->loop;
}

const struct config *
worker_config(const struct worker *w)
{
	return w->cfg;
}

void
worker_set_config(struct worker *w, const struct config *cfg)
{
	w->cfg = cfg;
}

unsigned
worker_index(const struct worker *w)
{
	return w->index;
}

unsigned
worker_conn_count(const struct worker *w)
{
	return w->nconns;
}

bool
worker_shutting_down(const struct worker *w)
{
	return w->shutting_down;
}
