/*
 * A worker process: one libuv loop serving the IMAP listeners it was given.
 */
#include "main/main.h"

#include "config/config.h"
#include "core/xmalloc.h"
#include "event/worker.h"
#include "imap/server.h"
#include "lmtp/server.h"
#include "log/log.h"
#include "notify/notify.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

struct worker_proc {
	const struct config_source *src;
	struct config *cfg;
	struct config *old_cfg;	/* freed at the next reload */
	struct worker *w;
	struct imap_server *imap;
	struct lmtp_server *lmtp;
	uv_signal_t sighup;
};

static void
worker_proc_shutdown(struct worker *w, void *ctx)
{
	struct worker_proc *wp = ctx;

	imap_server_shutdown(w, wp->imap);
	lmtp_server_shutdown(wp->lmtp);
}

/* Before the loop sleeps: wake the sessions whose mailboxes changed. */
static void
worker_proc_tick(struct worker *w, void *ctx)
{
	struct worker_proc *wp = ctx;

	notify_drain();
	imap_server_tick(wp->imap);
}

static void
worker_sighup_cb(uv_signal_t *h, int signum)
{
	struct worker_proc *wp = h->data;
	char *error = NULL;
	struct config *cfg = config_source_load(wp->src, &error);

	if (cfg == NULL) {
		log_errx("reload failed: %s", error);
		free(error);
		return;
	}
	/* Requests in flight may still hold the previous config for one
	 * more callback; keep it alive until the next reload. */
	config_free(&wp->old_cfg);
	wp->old_cfg = wp->cfg;
	wp->cfg = cfg;
	log_set_level(cfg->log_level);
	worker_set_config(wp->w, cfg);
	imap_server_reconfigure(wp->imap);
	notify_set_poll_interval(cfg->idle_poll_interval);
	imap_server_start_release(wp->imap, cfg->idle_release);
	log_info("configuration reloaded");
}

void
worker_process_main(const struct config_source *src, struct config *cfg,
    unsigned index, const int *fds, const enum listen_kind *kinds,
    unsigned nfds, void *tls_ctx)
{
	static char role[32];
	struct worker_proc wp = { .src = src, .cfg = cfg };
	int status;

	snprintf(role, sizeof(role), "worker%u", index);
	log_set_role(role);
	signal(SIGPIPE, SIG_IGN);
	wp.w = worker_new(index, cfg);
	wp.imap = imap_server_new(wp.w, tls_ctx);
	wp.lmtp = lmtp_server_new(wp.w, wp.imap->passdb);
	for (unsigned i = 0; i < nfds; i++) {
		if (kinds[i] == LISTEN_LMTP)
			worker_add_listener(wp.w, fds[i], NULL,
			    "421 4.3.2 Too many connections, try again "
			    "later\r\n", lmtp_server_accept, wp.lmtp);
		else if (kinds[i] == LISTEN_IMAPS)
			worker_add_listener(wp.w, fds[i], tls_ctx, NULL,
			    imap_server_accept, wp.imap);
		else
			worker_add_listener(wp.w, fds[i], NULL,
			    "* BYE [UNAVAILABLE] Too many connections\r\n",
			    imap_server_accept, wp.imap);
	}
	worker_on_shutdown(wp.w, worker_proc_shutdown, &wp);
	{
		char *run_dir = xasprintf("%s/run", cfg->data_dir);
		char *error = NULL;

		if (notify_init(worker_loop(wp.w), run_dir, &error) < 0)
			fatalx("notify: %s", error);
		free(run_dir);
		notify_set_poll_interval(cfg->idle_poll_interval);
		imap_server_start_release(wp.imap, cfg->idle_release);
		worker_on_tick(wp.w, worker_proc_tick, &wp);
	}
	uv_signal_init(worker_loop(wp.w), &wp.sighup);
	wp.sighup.data = &wp;
	uv_signal_start(&wp.sighup, worker_sighup_cb, SIGHUP);
	uv_unref((uv_handle_t *)&wp.sighup);
	status = worker_run(wp.w);
	notify_deinit();
	worker_free(&wp.w);
	lmtp_server_free(&wp.lmtp);
	imap_server_free(&wp.imap);
	exit(status);
}
