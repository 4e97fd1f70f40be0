/*
 * IDLE (RFC 2177, RFC 9051 section 6.3.13): the headline of Herald.
 *
 * The session registers one notify watch on its selected mailbox and reads
 * raw lines until DONE.  A wake-up from notify_drain() queues a run on the
 * thread pool that rescans the folder when the change came from outside
 * Herald (NOTIFY_F_RESCAN), then reports EXPUNGE / EXISTS / FETCH from the
 * change log since the view's modseq.  Wake-ups that arrive while a run is
 * in flight are remembered and handled by one more run after it.
 *
 * The conn's timer sends "* OK Still here" every idle_keepalive seconds
 * (shortened by up to a quarter, by a hash of the user and address, so that
 * many idlers do not wake together), only when nothing is queued for
 * output, and ends the session with BYE after idle_max (RFC 2177 section 3
 * lets a server drop a client idling for 30 minutes).
 */
#include "imap/commands.h"

#include "config/config.h"
#include "core/xmalloc.h"
#include "event/conn.h"
#include "event/worker.h"
#include "imap/server.h"
#include "imap/view.h"
#include "notify/notify.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct idle_ctx {
	struct notify_watch *watch;
	uint64_t started;	/* uv_now() at IDLE */
	uint64_t keepalive_ms;
	unsigned pending;	/* wake flags not yet handled */
	unsigned running;	/* flags of the run in flight */
	bool done:1;		/* DONE (or a bad line) received */
	bool counted:1;		/* in the user's idlers */
	bool bad:1;
};

static uv_loop_t *
idle_loop(struct imap_session *s)
{
	return worker_loop(s->server->worker);
}

static enum imap_run_result
idle_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct idle_ctx *ctx = cmd->ctx;
	struct imap_changes_cache *cache;
	struct store_error err;

	if (s->view == NULL || s->view->box == NULL)
		return IMAP_RUN_WAIT;
	if ((ctx->running & NOTIFY_F_RESCAN) != 0) {
		(void)imap_view_sync(s->view, s, &err);
		/* The rescan may have committed: what the batch read
		 * before is stale. */
		cache = imap_cmd_changes_cache(cmd);
		if (cache != NULL)
			imap_changes_cache_reset(cache);
	}
	/* The other idlers of this mailbox in the batch share one read of
	 * the index (imap_cmd_requeue_batched()). */
	imap_view_update_cached(s->view, cmd, true,
	    imap_cmd_changes_cache(cmd));
	/* An idler needs only its view's UID list: the store's snapshot of
	 * the mailbox is rebuilt by the next sync if a command wants it. */
	store_mailbox_drop_snapshot(s->view->box);
	/* The change lists were allocated from the command arena: give the
	 * memory back now, not when IDLE ends half an hour later. */
	arena_free(&cmd->arena);
	/* The user's only session idles: its index (a SQLite connection,
	 * three file descriptors) is closed now rather than after
	 * idle_release, so that tens of thousands of users can idle in one
	 * worker; a wake-up reopens it.  Users with several sessions wait
	 * for the release timer, or a fan-out would reopen it per idler. */
	if (s->ustore != NULL &&
	    __atomic_load_n(&s->ustore->refs, __ATOMIC_RELAXED) == 1 &&
	    worker_config(s->server->worker)->idle_release > 0)
		imap_user_close_store(s->ustore);
	return IMAP_RUN_WAIT;
}

static void
idle_finish(struct imap_cmd *cmd)
{
	struct idle_ctx *ctx = cmd->ctx;

	if (ctx->bad)
		imap_cmd_bad(cmd, "Expected DONE.");
	else
		imap_cmd_reply(cmd, "OK", NULL, "Idle completed.");
}

static void
idle_start_run(struct imap_cmd *cmd)
{
	struct idle_ctx *ctx = cmd->ctx;

	ctx->running = ctx->pending;
	ctx->pending = 0;
	imap_cmd_requeue_batched(cmd);
}

/* After a run: finish, or run again for wake-ups that came meanwhile. */
static void
idle_resume(struct imap_cmd *cmd)
{
	struct idle_ctx *ctx = cmd->ctx;

	ctx->running = 0;
	if (ctx->done) {
		idle_finish(cmd);
		return;
	}
	if (ctx->pending != 0)
		idle_start_run(cmd);
}

static void
idle_wake(void *context, unsigned flags)
{
	struct imap_cmd *cmd = context;
	struct idle_ctx *ctx = cmd->ctx;

	ctx->pending |= flags;
	if (!cmd->in_pool && !ctx->done)
		idle_start_run(cmd);
}

static void
idle_line(struct imap_cmd *cmd, const char *line)
{
	struct imap_session *s = cmd->s;
	struct idle_ctx *ctx = cmd->ctx;

	ctx->done = true;
	ctx->bad = strcasecmp(line, "DONE") != 0;
	notify_watch_remove(&ctx->watch);
	if (ctx->counted) {
		s->ustore->idlers--;
		ctx->counted = false;
	}
	s->idling = false;
	if (cmd->in_pool) {
		/* Finish once the run in flight is back; hold later
		 * commands until then. */
		s->waiting = true;
		return;
	}
	idle_finish(cmd);
}

static void
idle_cleanup(struct imap_cmd *cmd)
{
	struct idle_ctx *ctx = cmd->ctx;

	notify_watch_remove(&ctx->watch);
	if (ctx->counted && cmd->s != NULL && cmd->s->ustore != NULL)
		cmd->s->ustore->idlers--;
	free(ctx);
	cmd->ctx = NULL;
	if (cmd->s != NULL) {
		cmd->s->idling = false;
		if (!cmd->s->closed)
			conn_set_timeout(cmd->s->conn,
			    (uint64_t)worker_config(cmd->s->server->worker)->
			    autologout_timeout * 1000);
	}
}

void
imap_idle_arm_timer(struct imap_session *s)
{
	const struct config *cfg = worker_config(s->server->worker);
	struct idle_ctx *ctx = s->cmd->ctx;
	uint64_t now = uv_now(idle_loop(s));
	uint64_t end = ctx->started + (uint64_t)cfg->idle_max * 1000;
	uint64_t next = now + ctx->keepalive_ms;

	if (next > end)
		next = end;
	conn_set_timeout(s->conn, next > now ? next - now : 1);
}

void
imap_idle_timeout(struct imap_session *s)
{
	const struct config *cfg = worker_config(s->server->worker);
	struct idle_ctx *ctx = s->cmd->ctx;
	uint64_t now = uv_now(idle_loop(s));

	if (now >= ctx->started + (uint64_t)cfg->idle_max * 1000) {
		imap_session_log(s, LOG_LEVEL_INFO,
		    "disconnecting: reason=idle_max");
		imap_session_bye(s, "IDLE time limit reached.");
		return;
	}
	/* A keepalive only when nothing else is waiting to be written:
	 * pending output already shows the connection is alive. */
	if (conn_output_len(s->conn) == 0)
		imap_session_printf(s, "* OK Still here");
	imap_idle_arm_timer(s);
}

static uint64_t
keepalive_interval(struct imap_session *s)
{
	const struct config *cfg = worker_config(s->server->worker);
	uint64_t ms = (uint64_t)cfg->idle_keepalive * 1000;
	const char *ip = conn_peer_str(s->conn);
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = s->user; p != NULL && *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = ip; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h ^= s->id;
	h *= 1099511628211ULL;
	/* Up to a quarter shorter, never longer than configured. */
	return ms - (ms / 4 == 0 ? 0 : (h >> 17) % (ms / 4));
}

void
cmd_idle(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct idle_ctx *ctx;

	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "IDLE takes no arguments.");
		return;
	}
	/* Not from the command arena: its first block is 4 KiB, and an
	 * idling session should hold as little as possible. */
	ctx = xmalloc(sizeof(*ctx));
	cmd->ctx = ctx;
	cmd->run = idle_run;
	cmd->resume = idle_resume;
	cmd->cleanup = idle_cleanup;
	ctx->started = uv_now(idle_loop(s));
	ctx->keepalive_ms = keepalive_interval(s);
	imap_session_printf(s, "+ idling");
	s->idling = true;
	imap_session_read_lines(s, idle_line);
	imap_idle_arm_timer(s);
	if (s->ustore != NULL) {
		s->ustore->idlers++;
		ctx->counted = true;
	}
	if (s->view != NULL) {
		ctx->watch = notify_watch_add(s->user, s->view->name,
		    s->view->path, idle_wake, cmd);
		/* Report what changed between the last command and the
		 * watch being in place. */
		ctx->pending = NOTIFY_F_CHANGED;
		idle_start_run(cmd);
	}
}
