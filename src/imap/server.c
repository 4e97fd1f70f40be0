#include "imap/server.h"

#include "auth/passdb.h"
#include "auth/throttle.h"
#include "config/config.h"
#include "core/xmalloc.h"
#include "event/worker.h"
#include "imap/session.h"

#include "log/log.h"

#include <stdlib.h>
#include <string.h>

/* Addresses the login throttle remembers per worker. */
#define IMAP_THROTTLE_ENTRIES 4096

struct imap_server *
imap_server_new(struct worker *w, void *tls_ctx)
{
	struct imap_server *srv = xmalloc(sizeof(*srv));
	const struct config *cfg = worker_config(w);

	srv->worker = w;
	srv->tls_ctx = tls_ctx;
	srv->passdb = passdb_new(cfg->passwd_file);
	srv->passwd_path = xstrdup(cfg->passwd_file);
	srv->throttle = auth_throttle_new(cfg->auth_throttle_failures,
	    cfg->auth_throttle_window, cfg->auth_throttle_delay_max,
	    IMAP_THROTTLE_ENTRIES);
	return srv;
}

void
imap_server_reconfigure(struct imap_server *srv)
{
	const struct config *cfg = worker_config(srv->worker);

	/* Sessions pick up new limits at their next state change.  The
	 * passdb re-reads its file when it changes; a different path needs
	 * a restart, since logins in flight on the thread pool use it. */
	if (strcmp(cfg->passwd_file, srv->passwd_path) != 0)
		log_warnx("passwd_file changed to %s: restart to apply",
		    cfg->passwd_file);
}

void
imap_server_free(struct imap_server **srvp)
{
	struct imap_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	passdb_free(&srv->passdb);
	auth_throttle_free(&srv->throttle);
	free(srv->passwd_path);
	free(srv);
}
