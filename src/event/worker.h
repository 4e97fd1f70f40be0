/*
 * One worker process: a single-threaded libuv loop serving many
 * connections.  The worker owns the loop, the listeners it inherited, a read
 * buffer shared by all of its connections, and the list of deferred work run
 * once per loop iteration (flushes, resumed input, closes, and later the
 * IDLE notification drain).
 */
#ifndef HERALD_EVENT_WORKER_H
#define HERALD_EVENT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct config;
struct conn;
struct worker;
struct sockaddr;

/* Called for each accepted connection; tls_ctx is non-NULL on an implicit
 * TLS listener.  The callback creates the session and its conn. */
typedef void worker_accept_cb(struct worker *w, int fd,
    const struct sockaddr *peer, unsigned peer_len, void *tls_ctx,
    void *ctx);
/* Called when SIGTERM asks the worker to stop: say goodbye to sessions. */
typedef void worker_shutdown_cb(struct worker *w, void *ctx);
/* Called once per loop iteration before the loop sleeps. */
typedef void worker_tick_cb(struct worker *w, void *ctx);

struct worker *worker_new(unsigned index, const struct config *cfg);
void worker_free(struct worker **w);

/* Add an inherited listening socket.  busy_reply (a static string, or
 * NULL to just close) goes to a client refused because the worker holds
 * max_connections: in the listener's own protocol, and nothing on a TLS
 * port, where the client expects a handshake. */
void worker_add_listener(struct worker *w, int fd, void *tls_ctx,
    const char *busy_reply, worker_accept_cb *cb, void *ctx);
void worker_on_shutdown(struct worker *w, worker_shutdown_cb *cb, void *ctx);
void worker_on_tick(struct worker *w, worker_tick_cb *cb, void *ctx);

/* Run until shutdown completes.  Returns the exit status. */
int worker_run(struct worker *w);

uv_loop_t *worker_loop(struct worker *w);
const struct config *worker_config(const struct worker *w);
void worker_set_config(struct worker *w, const struct config *cfg);
unsigned worker_index(const struct worker *w);
unsigned worker_conn_count(const struct worker *w);
bool worker_shutting_down(const struct worker *w);
/* Make sure the loop does not block before the deferred work runs. */
void worker_wakeup(struct worker *w);

#endif
