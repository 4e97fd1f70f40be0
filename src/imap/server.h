/*
 * The IMAP service of one worker: the listeners' accept callback, the
 * resources shared by all sessions of the worker (TLS context for STARTTLS,
 * password database, login throttle) and the list of sessions.
 */
#ifndef HERALD_IMAP_SERVER_H
#define HERALD_IMAP_SERVER_H

#include <stdbool.h>

struct worker;
struct passdb;
struct auth_throttle;
struct imap_session;
struct sockaddr;

struct imap_server {
	struct worker *worker;
	void *tls_ctx;			/* for STARTTLS; NULL = not offered */
	struct passdb *passdb;
	char *passwd_path;		/* the file passdb reads */
	struct auth_throttle *throttle;
	struct imap_session *sessions;	/* doubly linked */
	unsigned session_count;
};

struct imap_server *imap_server_new(struct worker *w, void *tls_ctx);
void imap_server_free(struct imap_server **srv);
/* worker_accept_cb for IMAP and IMAPS listeners (ctx = imap_server). */
void imap_server_accept(struct worker *w, int fd, const struct sockaddr *peer,
    unsigned peer_len, void *tls_ctx, void *ctx);
/* worker_shutdown_cb: BYE to every session. */
void imap_server_shutdown(struct worker *w, void *ctx);
/* The config changed (SIGHUP): passdb path, limits. */
void imap_server_reconfigure(struct imap_server *srv);

#endif
