#include "lmtp/server.h"

#include "core/xmalloc.h"
#include "event/worker.h"
#include "lmtp/session.h"
#include "log/log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lmtp_server *
lmtp_server_new(struct worker *w, struct passdb *passdb)
{
	struct lmtp_server *srv = xmalloc(sizeof(*srv));
	char host[HOST_NAME_MAX + 1];

	srv->worker = w;
	srv->passdb = passdb;
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	srv->hostname = xstrdup(host);
	return srv;
}

void
lmtp_server_free(struct lmtp_server **srvp)
{
	struct lmtp_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	free(srv->hostname);
	free(srv);
}

void
lmtp_server_accept(struct worker *w, int fd, const struct sockaddr *peer,
    unsigned peer_len, void *tls_ctx, void *ctx)
{
	lmtp_session_new(ctx, w, fd, peer, peer_len);
}

void
lmtp_server_shutdown(struct lmtp_server *srv)
{
	struct lmtp_session *s, *next;

	srv->shutting_down = true;
	for (s = srv->sessions; s != NULL; s = next) {
		next = lmtp_session_next(s);
		lmtp_session_shutdown(s);
	}
}
