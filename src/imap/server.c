#include "imap/server.h"

#include "auth/passdb.h"
#include "auth/throttle.h"
#include "config/config.h"
#include "core/xmalloc.h"
#include "event/worker.h"
#include "imap/session.h"
#include "store/store.h"

#include "log/log.h"

#include <stdlib.h>
#include <stdint.h>
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
	free(srv->users);
	free(srv);
}

static size_t
user_hash(const char *name, size_t size)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h % size);
}

struct imap_user *
imap_user_ref(struct imap_server *srv, const char *name)
{
	struct imap_user *u;
	size_t b;

	if (srv->users_size == 0 || srv->user_count >= srv->users_size) {
		unsigned nsize = srv->users_size == 0 ? 256 :
		    srv->users_size * 2;
		struct imap_user **nt = xcalloc(nsize, sizeof(*nt));

		for (unsigned i = 0; i < srv->users_size; i++) {
			struct imap_user *next;

			for (u = srv->users[i]; u != NULL; u = next) {
				next = u->next;
				b = user_hash(u->name, nsize);
				u->next = nt[b];
				nt[b] = u;
			}
		}
		free(srv->users);
		srv->users = nt;
		srv->users_size = nsize;
	}
	b = user_hash(name, srv->users_size);
	for (u = srv->users[b]; u != NULL; u = u->next) {
		if (strcmp(u->name, name) == 0) {
			u->refs++;
			return u;
		}
	}
	u = xmalloc(sizeof(*u));
	u->name = xstrdup(name);
	u->refs = 1;
	uv_mutex_init(&u->lock);
	u->next = srv->users[b];
	srv->users[b] = u;
	srv->user_count++;
	return u;
}

void
imap_user_unref(struct imap_server *srv, struct imap_user **up)
{
	struct imap_user *u = *up, **pp;

	if (u == NULL)
		return;
	*up = NULL;
	ASSERT(u->refs > 0);
	if (--u->refs > 0)
		return;
	pp = &srv->users[user_hash(u->name, srv->users_size)];
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	}
	srv->user_count--;
	if (u->store != NULL)
		store_user_close(&u->store);
	uv_mutex_destroy(&u->lock);
	free(u->name);
	free(u);
}
