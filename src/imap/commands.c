#include "imap/commands.h"

#include "config/config.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "event/conn.h"
#include "event/worker.h"
#include "imap/server.h"
#include "imap/view.h"
#include "store/store.h"
#include "log/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_NOTAUTH IMAP_STATE_NOT_AUTH
#define S_AUTH (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define S_SEL IMAP_STATE_SELECTED
#define S_ANY IMAP_STATE_ANY
#define F_NOEXP IMAP_CMD_F_NO_EXPUNGES

/* Sorted by name for bsearch. */
static const struct imap_command imap_commands[] = {
	{ "APPEND", cmd_append, S_AUTH, 0 },
	{ "AUTHENTICATE", cmd_authenticate, S_NOTAUTH, 0 },
	{ "CAPABILITY", cmd_capability, S_ANY, 0 },
	{ "CHECK", cmd_check, S_SEL, 0 },
	{ "CLOSE", cmd_close, S_SEL, 0 },
	{ "COPY", cmd_copy, S_SEL, 0 },
	{ "CREATE", cmd_create, S_AUTH, 0 },
	{ "DELETE", cmd_delete, S_AUTH, 0 },
	{ "ENABLE", cmd_enable, S_AUTH, 0 },
	{ "EXAMINE", cmd_examine, S_AUTH, 0 },
	{ "EXPUNGE", cmd_expunge, S_SEL, 0 },
	{ "FETCH", cmd_fetch, S_SEL, F_NOEXP },
	{ "ID", cmd_id, S_ANY, 0 },
	{ "IDLE", cmd_idle, S_AUTH, 0 },
	{ "LIST", cmd_list, S_AUTH, 0 },
	{ "LOGIN", cmd_login, S_NOTAUTH, 0 },
	{ "LOGOUT", cmd_logout, S_ANY, 0 },
	{ "LSUB", cmd_lsub, S_AUTH, 0 },
	{ "MOVE", cmd_move, S_SEL, 0 },
	{ "NAMESPACE", cmd_namespace, S_AUTH, 0 },
	{ "NOOP", cmd_noop, S_ANY, 0 },
	{ "RENAME", cmd_rename, S_AUTH, 0 },
	{ "SEARCH", cmd_search, S_SEL, F_NOEXP },
	{ "SELECT", cmd_select, S_AUTH, 0 },
	{ "STARTTLS", cmd_starttls, S_NOTAUTH, 0 },
	{ "STATUS", cmd_status, S_AUTH, 0 },
	{ "STORE", cmd_store, S_SEL, F_NOEXP },
	{ "SUBSCRIBE", cmd_subscribe, S_AUTH, 0 },
	{ "UID", cmd_uid, S_SEL, 0 },
	{ "UNSELECT", cmd_unselect, S_SEL, 0 },
	{ "UNSUBSCRIBE", cmd_unsubscribe, S_AUTH, 0 },
};

/* Commands that may follow UID (RFC 9051 6.4.9, RFC 6851, RFC 4315). */
static const char *const uid_commands[] = {
	"COPY", "EXPUNGE", "FETCH", "MOVE", "SEARCH", "STORE",
};

void
cmd_uid(struct imap_cmd *cmd)
{
	const char *name;
	const struct imap_command *def;

	if (cmd->nargs < 1 || !imap_arg_get_atom(&cmd->args[0], &name)) {
		imap_cmd_bad(cmd, "UID needs a command.");
		return;
	}
	def = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(uid_commands); i++)
		if (strcasecmp(name, uid_commands[i]) == 0)
			def = imap_command_find(uid_commands[i]);
	if (def == NULL) {
		imap_cmd_bad(cmd, "Unknown UID command.");
		return;
	}
	cmd->uid = true;
	cmd->def = def;
	cmd->name = def->name;
	cmd->args++;
	cmd->nargs--;
	def->handler(cmd);
}

static int
command_cmp(const void *key, const void *elem)
{
	const struct imap_command *c = elem;

	return strcmp(key, c->name);
}

const struct imap_command *
imap_command_find(const char *name)
{
	if (name == NULL)
		return NULL;
	return bsearch(name, imap_commands, ARRAY_SIZE(imap_commands),
	    sizeof(imap_commands[0]), command_cmp);
}

static void cmd_vreply(struct imap_cmd *cmd, const char *status,
    const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void
cmd_vreply(struct imap_cmd *cmd, const char *status, const char *code,
    const char *fmt, va_list ap)
{
	struct imap_session *s = cmd->s;
	struct buf b;

	cmd->done = true;
	if (s == NULL)
		return;
	buf_init(&b, 0);
	buf_printf(&b, "%s %s ", cmd->tag, status);
	if (code != NULL)
		buf_printf(&b, "%s ", code);
	buf_vprintf(&b, fmt, ap);
	buf_append(&b, "\r\n", 2);
	imap_session_write(s, b.data, b.len);
	buf_free(&b);
	if (strcmp(status, "BAD") != 0)
		s->bad_count = 0;
	imap_session_command_finished(s);
}

void
imap_cmd_reply(struct imap_cmd *cmd, const char *status, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_vreply(cmd, status, code, fmt, ap);
	va_end(ap);
}

void
imap_cmd_bad(struct imap_cmd *cmd, const char *fmt, ...)
{
	struct imap_session *s = cmd->s;
	va_list ap;

	va_start(ap, fmt);
	cmd_vreply(cmd, "BAD", NULL, fmt, ap);
	va_end(ap);
	if (s != NULL && ++s->bad_count >=
	    worker_config(s->server->worker)->max_bad_commands) {
		imap_session_log(s, LOG_LEVEL_INFO,
		    "disconnecting: reason=\"too many bad commands\"");
		imap_session_bye(s, "Too many invalid IMAP commands.");
	}
}

void
imap_cmd_result(struct imap_cmd *cmd, const char *status, const char *code,
    const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	free(cmd->reply_status);
	free(cmd->reply_code);
	free(cmd->reply_text);
	cmd->reply_status = xstrdup(status);
	cmd->reply_code = code != NULL ? xstrdup(code) : NULL;
	cmd->reply_text = text != NULL ? text : xstrdup("");
}

void
imap_cmd_printf(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&cmd->out, fmt, ap);
	va_end(ap);
	buf_append(&cmd->out, "\r\n", 2);
}

void
imap_cmd_write(struct imap_cmd *cmd, const void *data, size_t len)
{
	buf_append(&cmd->out, data, len);
}

/* A run with the user's lock held (when the session has a user). */
static void
cmd_run_locked(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	enum imap_run_result r;

	/* The store may have been released while the user idled: open it
	 * (and the selected mailbox) again. */
	if (s->ustore != NULL && (s->store != NULL || s->view != NULL)) {
		struct store_error err;

		if (imap_session_store(s, &err) < 0 || (s->view != NULL &&
		    imap_view_reopen(s->view, s, imap_cmd_changes_cache(cmd),
		    &err) < 0)) {
			imap_cmd_store_error(cmd, &err);
			cmd->run_result = IMAP_RUN_DONE;
			return;
		}
	}
	r = cmd->run(cmd);
	if (r == IMAP_RUN_DONE) {
		if (cmd->reply_status == NULL)
			imap_cmd_result(cmd, "NO", "[SERVERBUG]",
			    "Internal error.");
		/* Tell the client what changed, as a command ends (RFC 9051
		 * section 5.2).  The UID forms may also report expunges
		 * (section 7.5.1). */
		if (s->view != NULL && strcmp(cmd->reply_status, "BAD") != 0)
			imap_view_update(s->view, cmd, cmd->uid ||
			    (cmd->def->flags & IMAP_CMD_F_NO_EXPUNGES) == 0);
	}
	cmd->run_result = r;
}

/* The index was rebuilt under us by another process: drop the stale
 * handle; the next run opens the new one.  With u->lock held. */
static void
user_check_replaced(struct imap_user *u)
{
	if (u->store != NULL && store_user_index_replaced(u->store))
		imap_user_close_store(u);
}

static void
cmd_work_cb(uv_work_t *work)
{
	struct imap_cmd *cmd = work->data;
	struct imap_user *u = cmd->s->ustore;

	/* The user's store is shared by the user's sessions in this worker
	 * and may be used by one thread at a time. */
	if (u != NULL)
		uv_mutex_lock(&u->lock);
	cmd_run_locked(cmd);
	if (u != NULL) {
		user_check_replaced(u);
		uv_mutex_unlock(&u->lock);
	}
}

static void cmd_after_work_cb(uv_work_t *work, int status);

static void
cmd_queue(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	cmd->in_pool = true;
	cmd->work.data = cmd;
	if (uv_queue_work(worker_loop(s->server->worker), &cmd->work,
	    cmd_work_cb, cmd_after_work_cb) != 0) {
		cmd->in_pool = false;
		imap_cmd_reply(cmd, "NO", "[SERVERBUG]", "Internal error.");
	}
}

static void
cmd_after_work_cb(uv_work_t *work, int status)
{
	struct imap_cmd *cmd = work->data;
	struct imap_session *s = cmd->s;
	const char *bye;

	cmd->in_pool = false;
	if (s->ustore != NULL)
		s->ustore->last_used = uv_now(worker_loop(s->server->worker));
	if (s->closed) {
		imap_session_destroy(s);
		return;
	}
	if (cmd->out.len > 0) {
		imap_session_write(s, cmd->out.data, cmd->out.len);
		buf_free(&cmd->out);
	}
	/* Move a view the run allocated off the pool thread's arena (see
	 * imap_view_rehome()).  Never wait for the lock here: a view left
	 * behind is moved after a later run. */
	if (s->view != NULL && s->view->foreign && s->ustore != NULL &&
	    uv_mutex_trylock(&s->ustore->lock) == 0) {
		imap_view_rehome(&s->view);
		uv_mutex_unlock(&s->ustore->lock);
	}
	if (cmd->run_result == IMAP_RUN_WAIT) {
		if (cmd->resume != NULL)
			cmd->resume(cmd);
		return;
	}
	if (cmd->run_result == IMAP_RUN_MORE) {
		if (conn_output_full(s->conn))
			cmd->wait_drain = true;
		else
			cmd_queue(cmd);
		return;
	}
	bye = cmd->bye_after;
	imap_cmd_reply(cmd, cmd->reply_status, cmd->reply_code, "%s",
	    cmd->reply_text);
	if (bye != NULL)
		imap_session_bye(s, bye);
}

void
imap_cmd_continue(struct imap_cmd *cmd)
{
	if (cmd->wait_drain) {
		cmd->wait_drain = false;
		cmd_queue(cmd);
	}
}

void
imap_cmd_requeue(struct imap_cmd *cmd)
{
	if (!cmd->in_pool)
		cmd_queue(cmd);
}

/* ---- batched runs ------------------------------------------------------ */

struct imap_batch {
	struct imap_server *srv;
	struct imap_user *user;
	struct imap_cmd *first, **tail;
	unsigned count;
	struct imap_changes_cache cache;
	uv_work_t work;
};

static void
batch_list_user(struct imap_server *srv, struct imap_user *u)
{
	if (u->batch_listed)
		return;
	u->batch_listed = true;
	u->batch_link = srv->batch_users;
	srv->batch_users = u;
	worker_wakeup(srv->worker);
}

static void
batch_work_cb(uv_work_t *work)
{
	struct imap_batch *b = work->data;

	uv_mutex_lock(&b->user->lock);
	for (struct imap_cmd *cmd = b->first; cmd != NULL;
	    cmd = cmd->batch_next)
		cmd_run_locked(cmd);
	user_check_replaced(b->user);
	uv_mutex_unlock(&b->user->lock);
}

static void
batch_after_work_cb(uv_work_t *work, int status)
{
	struct imap_batch *b = work->data;
	struct imap_server *srv = b->srv;
	struct imap_user *u = b->user;
	struct imap_cmd *cmd, *next;

	if (b->count > 1)
		log_debug("imap: user=%s: batch of %u runs, %u index reads, "
		    "%u from memory", u->name, b->count, b->cache.queries,
		    b->cache.hits);
	/* Finishing a run may end its session and drop its reference. */
	u->refs++;
	for (cmd = b->first; cmd != NULL; cmd = next) {
		next = cmd->batch_next;
		cmd->batch = NULL;
		cmd->batch_next = NULL;
		cmd_after_work_cb(&cmd->work, status);
	}
	u->batch_running = false;
	imap_changes_cache_free(&b->cache);
	free(b);
	/* Wake-ups that came while this batch ran: imap_server_tick()
	 * starts them before the loop sleeps. */
	if (u->batch_pending != NULL)
		batch_list_user(srv, u);
	imap_user_unref(srv, &u);
}

void
imap_user_batch_start(struct imap_user *u)
{
	struct imap_batch *b = u->batch_pending;
	struct imap_cmd *cmd, *next;

	if (b == NULL || u->batch_running)
		return;
	u->batch_pending = NULL;
	u->batch_running = true;
	if (uv_queue_work(worker_loop(b->srv->worker), &b->work,
	    batch_work_cb, batch_after_work_cb) == 0)
		return;
	/* Cannot happen (only for a NULL callback); run them one by one. */
	u->batch_running = false;
	for (cmd = b->first; cmd != NULL; cmd = next) {
		next = cmd->batch_next;
		cmd->batch = NULL;
		cmd->batch_next = NULL;
		cmd->in_pool = false;
		cmd_queue(cmd);
	}
	imap_changes_cache_free(&b->cache);
	free(b);
}

void
imap_cmd_requeue_batched(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_user *u = s->ustore;
	struct imap_batch *b;

	if (cmd->in_pool)
		return;
	if (u == NULL) {
		cmd_queue(cmd);
		return;
	}
	b = u->batch_pending;
	if (b == NULL) {
		b = xcalloc(1, sizeof(*b));
		b->srv = s->server;
		b->user = u;
		b->tail = &b->first;
		b->work.data = b;
		imap_changes_cache_init(&b->cache);
		u->batch_pending = b;
		batch_list_user(s->server, u);
	}
	cmd->in_pool = true;
	cmd->work.data = cmd;
	cmd->batch = b;
	cmd->batch_next = NULL;
	*b->tail = cmd;
	b->tail = &cmd->batch_next;
	b->count++;
}

struct imap_changes_cache *
imap_cmd_changes_cache(struct imap_cmd *cmd)
{
	return cmd->batch != NULL ? &cmd->batch->cache : NULL;
}

void
imap_cmd_run(struct imap_cmd *cmd, imap_run_fn *run)
{
	cmd->run = run;
	cmd_queue(cmd);
}

void
imap_cmd_free(struct imap_cmd **cmdp)
{
	struct imap_cmd *cmd = *cmdp;

	if (cmd == NULL)
		return;
	*cmdp = NULL;
	ASSERT(!cmd->in_pool);
	if (cmd->cleanup != NULL)
		cmd->cleanup(cmd);
	arena_free(&cmd->arena);
	buf_free(&cmd->out);
	free(cmd->reply_status);
	free(cmd->reply_code);
	free(cmd->reply_text);
	free(cmd->tag);
	free(cmd);
}
