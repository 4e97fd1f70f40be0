#include "imap/session.h"

#include "auth/throttle.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "event/conn.h"
#include "event/worker.h"
#include "imap/append_stream.h"
#include "imap/commands.h"
#include "imap/server.h"
#include "imap/view.h"
#include "store/store.h"
#include "log/log.h"
#include "notify/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HERALD_GREETING "Herald ready."

static const struct config *
session_cfg(const struct imap_session *s)
{
	return worker_config(s->server->worker);
}

void
imap_session_log(struct imap_session *s, enum log_level level,
    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_write(level, "session=%llx ip=%s user=%s %s",
	    (unsigned long long)s->id, conn_peer_str(s->conn),
	    s->user != NULL ? s->user : "-", msg);
}

void
imap_session_write(struct imap_session *s, const void *data, size_t len)
{
	if (!s->closed)
		conn_write(s->conn, data, len);
}

void
imap_session_printf(struct imap_session *s, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	if (s->closed)
		return;
	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append(&b, "\r\n", 2);
	conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

void
imap_session_bye(struct imap_session *s, const char *text)
{
	if (s->closed || conn_is_closing(s->conn))
		return;
	imap_session_printf(s, "* BYE %s", text);
	s->state = IMAP_STATE_LOGOUT;
	conn_close_after_flush(s->conn, text);
}

bool
imap_session_plaintext_allowed(const struct imap_session *s)
{
	switch (session_cfg(s)->plaintext_auth) {
	case CONFIG_PLAINTEXT_AUTH_YES:
		return true;
	case CONFIG_PLAINTEXT_AUTH_LOOPBACK:
		return conn_is_tls(s->conn) || conn_is_loopback(s->conn);
	case CONFIG_PLAINTEXT_AUTH_NO:
		break;
	}
	return conn_is_tls(s->conn);
}

const char *
imap_session_capabilities(const struct imap_session *s)
{
	static char caps[512];
	bool tls = conn_is_tls(s->conn);

	if (s->state == IMAP_STATE_NOT_AUTH) {
		bool plain_ok = imap_session_plaintext_allowed(s);

		snprintf(caps, sizeof(caps),
		    "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE%s%s%s",
		    !tls && s->server->tls_ctx != NULL ? " STARTTLS" : "",
		    plain_ok ? " AUTH=PLAIN" : "",
		    plain_ok ? "" : " LOGINDISABLED");
	} else {
		snprintf(caps, sizeof(caps),
		    "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE "
		    "UNSELECT UIDPLUS MOVE MULTIAPPEND APPENDLIMIT=%llu "
		    "CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE "
		    "CREATE-SPECIAL-USE",
		    (unsigned long long)(session_cfg(s)->max_message_size >
		    UINT32_MAX ? UINT32_MAX :
		    session_cfg(s)->max_message_size));
	}
	return caps;
}

void
imap_session_set_limits(struct imap_session *s)
{
	const struct config *cfg = session_cfg(s);
	struct imap_parser_limits lim;

	memset(&lim, 0, sizeof(lim));
	if (s->state == IMAP_STATE_NOT_AUTH) {
		lim.max_line = cfg->preauth_max_line_length;
		lim.max_literal = cfg->preauth_max_literal_size;
		lim.max_total = cfg->preauth_max_line_length +
		    2 * cfg->preauth_max_literal_size;
		lim.max_depth = cfg->preauth_max_list_depth;
		lim.max_args = 64;
	} else {
		lim.max_line = cfg->max_line_length;
		lim.max_literal = cfg->max_literal_size;
		lim.max_total = cfg->max_command_size;
		lim.max_depth = cfg->max_list_depth;
		lim.max_args = cfg->max_command_args;
	}
	imap_parser_set_limits(s->parser, &lim);
}

void
imap_session_notify(struct imap_session *s, const char *mailbox)
{
	if (s->user != NULL)
		notify_mailbox_changed(s->user, mailbox);
}

static void
session_touch(struct imap_session *s)
{
	const struct config *cfg = session_cfg(s);
	uint64_t secs = s->state == IMAP_STATE_NOT_AUTH ?
	    cfg->preauth_timeout : cfg->autologout_timeout;

	/* IDLE is exempt from the inactivity timeout: its own timer sends
	 * keepalives and enforces idle_max. */
	if (s->idling)
		return;
	conn_set_timeout(s->conn, secs * 1000);
}

void
imap_session_read_lines(struct imap_session *s, imap_line_cb *cb)
{
	s->input_mode = IMAP_INPUT_LINE;
	s->line_cb = cb;
}

static void
session_free_cmd(struct imap_session *s)
{
	imap_cmd_free(&s->cmd);
}

/* The store's change hook: runs on the thread pool after a commit. */
static void
session_store_changed(void *ctx, const char *mailbox)
{
	struct imap_user *u = ctx;

	notify_mailbox_changed(u->name, mailbox);
}

/* Called by run functions, which hold s->ustore->lock. */
int
imap_session_store(struct imap_session *s, struct store_error *err)
{
	const struct config *cfg = session_cfg(s);
	struct imap_user *u = s->ustore;
	struct store_settings set = { 0 };
	char *root;

	ASSERT(u != NULL);
	/* u->store may have been released and reopened since s->store was
	 * set: always take it from the user. */
	if (u->store == NULL) {
		set.fsync_disable = !cfg->fsync;
		set.search_text_on_append = cfg->fts_index_on_delivery;
		root = xasprintf("%s/users/%s", cfg->data_dir, s->user);
		if (store_user_open(root, &set, &u->store, err) < 0) {
			free(root);
			return -1;
		}
		free(root);
		store_user_set_change_hook(u->store, session_store_changed, u);
		imap_user_store_opened(u);
	}
	s->store = u->store;
	return 0;
}

/*
 * A command has sent its tagged reply.  Forget its arguments and, if it
 * had paused input, carry on with what the client pipelined.
 */
void
imap_session_command_finished(struct imap_session *s)
{
	session_free_cmd(s);
	/* The state may have changed (LOGIN): re-arm the inactivity timer
	 * with its timeout. */
	if (!s->closed)
		session_touch(s);
	s->input_mode = IMAP_INPUT_COMMAND;
	s->line_cb = NULL;
	imap_parser_next(s->parser);
	if (s->waiting) {
		s->waiting = false;
		if (!s->closed)
			conn_resume(s->conn);
	}
}

static void
session_bad_syntax(struct imap_session *s)
{
	const char *tag = imap_parser_tag(s->parser);
	const char *err = imap_parser_error(s->parser);
	bool toobig = imap_parser_error_toobig(s->parser);

	if (imap_parser_error_fatal(s->parser)) {
		imap_session_log(s, LOG_LEVEL_INFO,
		    "disconnecting: reason=\"%s\"", err);
		imap_session_bye(s, err);
		return;
	}
	imap_session_printf(s, "%s BAD %s%s", tag != NULL ? tag : "*",
	    toobig ? "[TOOBIG] " : "", err);
	imap_parser_next(s->parser);
	if (++s->bad_count >= session_cfg(s)->max_bad_commands) {
		imap_session_log(s, LOG_LEVEL_INFO,
		    "disconnecting: reason=\"too many bad commands\"");
		imap_session_bye(s, "Too many invalid IMAP commands.");
	}
}

static const char *
state_error(enum imap_state state)
{
	switch (state) {
	case IMAP_STATE_NOT_AUTH:
		return "Not authenticated.";
	case IMAP_STATE_AUTH:
		return "No mailbox selected.";
	default:
		return "Command not allowed in this state.";
	}
}

static void
session_dispatch(struct imap_session *s)
{
	const char *name = imap_parser_command_name(s->parser);
	const struct imap_command *def = imap_command_find(name);
	struct imap_cmd *cmd = xmalloc(sizeof(*cmd));

	cmd->s = s;
	cmd->def = def;
	cmd->tag = xstrdup(imap_parser_tag(s->parser));
	cmd->name = name;
	cmd->args = imap_parser_args(s->parser, &cmd->nargs);
	s->cmd = cmd;
	if (def == NULL) {
		imap_cmd_bad(cmd, "Unknown command.");
		return;
	}
	if ((def->states & s->state) == 0) {
		if (s->state == IMAP_STATE_NOT_AUTH ||
		    (s->state == IMAP_STATE_AUTH &&
		    (def->states & IMAP_STATE_SELECTED) != 0))
			imap_cmd_reply(cmd, "NO", NULL, "%s",
			    state_error(s->state));
		else
			imap_cmd_reply(cmd, "NO", NULL,
			    "Already authenticated.");
		return;
	}
	session_touch(s);
	imap_session_log(s, LOG_LEVEL_DEBUG, "command tag=%s name=%s",
	    cmd->tag, name);
	def->handler(cmd);
	/* A handler that did not reply is running asynchronously. */
	if (s->cmd == cmd && !cmd->done &&
	    s->input_mode == IMAP_INPUT_COMMAND)
		s->waiting = true;
}

static size_t
session_input(void *ctx, const char *data, size_t len)
{
	struct imap_session *s = ctx;
	size_t pos = 0;

	/* The inactivity timer restarts when a command arrives, not on any
	 * byte: a client trickling a byte a second must still time out. */
	while (pos < len) {
		enum imap_parse_result ret;
		size_t used = 0;

		if (s->waiting || s->starttls || s->closed ||
		    conn_is_closing(s->conn))
			break;
		if (conn_output_full(s->conn)) {
			/* Backpressure: resume when the client reads. */
			s->output_wait = true;
			break;
		}
		if (s->input_mode == IMAP_INPUT_LINE) {
			const char *line = NULL;

			ret = imap_parser_feed_line(s->parser, data + pos,
			    len - pos, &used, &line);
			pos += used;
			if (ret == IMAP_PARSE_DONE) {
				s->line_cb(s->cmd, line);
			} else if (ret == IMAP_PARSE_ERROR) {
				imap_cmd_bad(s->cmd, "%s",
				    imap_parser_error(s->parser));
			}
			continue;
		}
		ret = imap_parser_feed(s->parser, data + pos, len - pos,
		    &used);
		pos += used;
		switch (ret) {
		case IMAP_PARSE_MORE:
			break;
		case IMAP_PARSE_CONTINUE:
			imap_session_printf(s, "+ OK");
			break;
		case IMAP_PARSE_ERROR:
			session_bad_syntax(s);
			break;
		case IMAP_PARSE_DONE:
			session_dispatch(s);
			break;
		}
	}
	if (s->starttls)
		return len;	/* RFC 9051 6.2.1: pipelined bytes are dropped */
	if (s->waiting && pos == len && !s->closed)
		conn_pause(s->conn);
	return pos;
}

static void
session_drained(void *ctx)
{
	struct imap_session *s = ctx;

	if (s->cmd != NULL && s->cmd->wait_drain) {
		imap_cmd_continue(s->cmd);
		return;
	}
	if (s->output_wait) {
		s->output_wait = false;
		conn_resume(s->conn);
	}
}

static void
session_timeout(void *ctx)
{
	struct imap_session *s = ctx;

	if (s->idling) {
		imap_idle_timeout(s);
		return;
	}
	imap_session_log(s, LOG_LEVEL_INFO,
	    "disconnecting: reason=inactivity");
	imap_session_bye(s, "Disconnected for inactivity.");
}

static void
session_tls_ready(void *ctx)
{
	struct imap_session *s = ctx;

	s->starttls = false;
	imap_session_log(s, LOG_LEVEL_DEBUG, "starttls completed");
	/* Input was paused by the handshake; nothing pipelined survives. */
	imap_parser_next(s->parser);
	session_touch(s);
}

static void
session_hangup(void *ctx, const char *reason)
{
	struct imap_session *s = ctx;

	imap_session_log(s, LOG_LEVEL_INFO, "disconnected: reason=\"%s\"",
	    reason);
}

void
imap_session_destroy(struct imap_session *s)
{
	session_free_cmd(s);
	if (s->ustore != NULL) {
		/* Another session of the user may be in a run function. */
		uv_mutex_lock(&s->ustore->lock);
		imap_view_free(&s->view);
		uv_mutex_unlock(&s->ustore->lock);
		s->store = NULL;
		imap_user_unref(s->server, &s->ustore);
	}
	imap_parser_free(&s->parser);
	imap_append_stream_detach(s);
	free(s->user);
	free(s->client_id);
	free(s);
}

static void
session_closed(void *ctx)
{
	struct imap_session *s = ctx;
	struct imap_server *srv = s->server;

	s->closed = true;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->session_count--;
	/* A command running on the thread pool still uses the session:
	 * it is freed when that work comes back. */
	if (s->cmd != NULL && s->cmd->in_pool)
		return;
	/* Any other command is freed with the session: one waiting for the
	 * client to read its output (FETCH between slices), or a login in
	 * flight, which its cleanup detaches from the command. */
	imap_session_destroy(s);
}

static const struct conn_ops session_conn_ops = {
	.input = session_input,
	.drained = session_drained,
	.timeout = session_timeout,
	.tls_ready = session_tls_ready,
	.hangup = session_hangup,
	.closed = session_closed,
};

void
imap_server_accept(struct worker *w, int fd, const struct sockaddr *peer,
    unsigned peer_len, void *tls_ctx, void *ctx)
{
	struct imap_server *srv = ctx;
	struct imap_session *s = xmalloc(sizeof(*s));
	struct imap_parser_limits lim = { 0 };

	s->server = srv;
	s->state = IMAP_STATE_NOT_AUTH;
	s->parser = imap_parser_new(&lim);
	imap_append_stream_attach(s);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->session_count++;
	s->conn = conn_new(w, fd, peer, peer_len, tls_ctx, &session_conn_ops,
	    s);
	s->id = ((uint64_t)worker_index(w) << 32) | conn_id(s->conn);
	imap_session_set_limits(s);
	imap_session_log(s, LOG_LEVEL_DEBUG, "connected tls=%s",
	    tls_ctx != NULL ? "yes" : "no");
	imap_session_printf(s, "* OK [CAPABILITY %s] %s",
	    imap_session_capabilities(s), HERALD_GREETING);
	session_touch(s);
}

void
imap_server_shutdown(struct worker *w, void *ctx)
{
	struct imap_server *srv = ctx;
	struct imap_session *s;

	for (s = srv->sessions; s != NULL; s = s->next)
		imap_session_bye(s, "Server shutting down.");
}
