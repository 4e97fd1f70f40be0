/*
 * The LMTP service of one worker (RFC 2033): the listeners' accept
 * callback and what all LMTP sessions of the worker share.
 *
 * LMTP listeners are configured with lmtp_listen: TCP addresses, and UNIX
 * socket paths (entries starting with '/').  The master binds them; every
 * worker accepts on them (see src/main/serve.c).
 */
#ifndef HERALD_LMTP_SERVER_H
#define HERALD_LMTP_SERVER_H

#include <stdbool.h>

struct worker;
struct passdb;
struct lmtp_session;
struct sockaddr;

struct lmtp_server {
	struct worker *worker;
	struct passdb *passdb;		/* shared with IMAP: not owned */
	char *hostname;			/* in the greeting and LHLO reply */
	struct lmtp_session *sessions;	/* doubly linked */
	unsigned session_count;
	bool shutting_down;
};

/* passdb must outlive the server (the worker's IMAP server owns it). */
struct lmtp_server *lmtp_server_new(struct worker *w, struct passdb *passdb);
/* After the worker's loop has finished (no session is left). */
void lmtp_server_free(struct lmtp_server **srv);
/* worker_accept_cb for LMTP listeners (ctx = lmtp_server). */
void lmtp_server_accept(struct worker *w, int fd, const struct sockaddr *peer,
    unsigned peer_len, void *tls_ctx, void *ctx);
/* Shutdown: idle sessions get "421" at once; a session in the middle of a
 * transaction finishes the message it is receiving or delivering first. */
void lmtp_server_shutdown(struct lmtp_server *srv);

#endif
