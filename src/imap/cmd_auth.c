/*
 * Commands of the not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE
 * (PLAIN, with SASL-IR, RFC 4959).
 *
 * A login is checked on the libuv thread pool (crypt(3) is slow on
 * purpose), after the per-address throttle delay; a failed one is answered
 * only after auth_failure_delay_ms.  Input stays paused throughout, so a
 * client cannot race ahead with pipelined commands.
 */
#include "imap/commands.h"

#include "auth/passdb.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "config/config.h"
#include "core/base64.h"
#include "core/xmalloc.h"
#include "event/conn.h"
#include "event/worker.h"
#include "imap/server.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

struct auth_request {
	uv_work_t work;
	uv_timer_t timer;
	struct imap_cmd *cmd;	/* cmd->s is NULL once the session closed */
	struct passdb *passdb;
	char *user;
	char *password;
	const char *method;
	enum passdb_result result;
	bool timer_open:1;
};

static const struct config *
cmd_cfg(const struct imap_cmd *cmd)
{
	return worker_config(cmd->s->server->worker);
}

void
cmd_starttls(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "STARTTLS takes no arguments.");
		return;
	}
	if (conn_is_tls(s->conn)) {
		imap_cmd_bad(cmd, "TLS is already active.");
		return;
	}
	if (s->server->tls_ctx == NULL) {
		imap_cmd_bad(cmd, "TLS support isn't enabled.");
		return;
	}
	s->starttls = true;
	imap_cmd_reply(cmd, "OK", NULL, "Begin TLS negotiation now.");
	conn_starttls(s->conn, s->server->tls_ctx);
}

static void
auth_request_free(struct auth_request *req)
{
	free(req->user);
	xfree_secret(req->password,
	    req->password != NULL ? strlen(req->password) : 0);
	free(req);
}

static void
auth_timer_closed(uv_handle_t *h)
{
	auth_request_free(h->data);
}

static void
auth_request_done(struct auth_request *req)
{
	if (req->timer_open) {
		req->timer_open = false;
		uv_close((uv_handle_t *)&req->timer, auth_timer_closed);
	} else {
		auth_request_free(req);
	}
}

/*
 * If the session closed while the request was in flight, the command is
 * the request's to free (session_closed() set cmd->s to NULL).  Returns
 * the session, or NULL after cleaning up.
 */
static struct imap_session *
auth_session(struct auth_request *req)
{
	struct imap_cmd *cmd = req->cmd;

	if (cmd->s != NULL)
		return cmd->s;
	free(cmd->tag);
	free(cmd);
	req->cmd = NULL;
	auth_request_done(req);
	return NULL;
}

static void
auth_finish(struct auth_request *req)
{
	struct imap_cmd *cmd = req->cmd;
	struct imap_session *s = auth_session(req);
	struct imap_server *srv;
	unsigned max_failures;

	if (s == NULL)
		return;
	srv = s->server;
	max_failures = worker_config(srv->worker)->max_auth_failures;
	/* The reply ends the command and frees cmd. */
	req->cmd = NULL;
	switch (req->result) {
	case PASSDB_OK:
		auth_throttle_success(srv->throttle, conn_peer(s->conn));
		s->user = xstrdup(req->user);
		s->ustore = imap_user_ref(srv, s->user);
		s->state = IMAP_STATE_AUTH;
		imap_session_set_limits(s);
		imap_session_log(s, LOG_LEVEL_INFO,
		    "login method=%s tls=%s", req->method,
		    conn_is_tls(s->conn) ? "yes" : "no");
		imap_cmd_reply(cmd, "OK", NULL, "[CAPABILITY %s] Logged in",
		    imap_session_capabilities(s));
		break;
	case PASSDB_FAIL:
		auth_throttle_failure(srv->throttle, conn_peer(s->conn),
		    uv_now(worker_loop(srv->worker)));
		s->auth_failures++;
		imap_session_log(s, LOG_LEVEL_INFO,
		    "login failed method=%s user=<%s> failures=%u",
		    req->method, req->user, s->auth_failures);
		imap_cmd_reply(cmd, "NO", "[AUTHENTICATIONFAILED]",
		    "Authentication failed.");
		if (s->auth_failures >= max_failures)
			imap_session_bye(s, "Too many failed logins.");
		break;
	case PASSDB_ERROR:
		imap_session_log(s, LOG_LEVEL_ERROR,
		    "login error method=%s: password database unavailable",
		    req->method);
		imap_cmd_reply(cmd, "NO", "[UNAVAILABLE]",
		    "Temporary authentication failure.");
		break;
	}
	auth_request_done(req);
}

static void
auth_delay_cb(uv_timer_t *t)
{
	auth_finish(t->data);
}

static void
auth_work_cb(uv_work_t *work)
{
	struct auth_request *req = work->data;

	req->result = passdb_verify(req->passdb, req->user, req->password);
}

static void
auth_after_work_cb(uv_work_t *work, int status)
{
	struct auth_request *req = work->data;
	struct imap_session *s;

	explicit_bzero(req->password, strlen(req->password));
	if (status != 0)
		req->result = PASSDB_ERROR;
	s = auth_session(req);
	if (s == NULL)
		return;
	if (req->result == PASSDB_FAIL &&
	    cmd_cfg(req->cmd)->auth_failure_delay_ms > 0) {
		uv_timer_start(&req->timer, auth_delay_cb,
		    cmd_cfg(req->cmd)->auth_failure_delay_ms, 0);
		return;
	}
	auth_finish(req);
}

static void
auth_start_cb(uv_timer_t *t)
{
	struct auth_request *req = t->data;
	struct imap_session *s = auth_session(req);

	if (s == NULL)
		return;
	req->work.data = req;
	if (uv_queue_work(worker_loop(s->server->worker), &req->work,
	    auth_work_cb, auth_after_work_cb) != 0) {
		req->result = PASSDB_ERROR;
		auth_finish(req);
	}
}

/*
 * Check user/password asynchronously; takes ownership of both strings.
 */
static void
auth_begin(struct imap_cmd *cmd, const char *method, char *user,
    char *password)
{
	struct imap_session *s = cmd->s;
	struct imap_server *srv = s->server;
	struct auth_request *req = xmalloc(sizeof(*req));
	uv_loop_t *loop = worker_loop(srv->worker);
	uint64_t delay;

	req->cmd = cmd;
	req->passdb = srv->passdb;
	req->user = user;
	req->password = password;
	req->method = method;
	uv_timer_init(loop, &req->timer);
	req->timer.data = req;
	req->timer_open = true;
	delay = auth_throttle_delay(srv->throttle, conn_peer(s->conn),
	    uv_now(loop));
	if (delay > 0)
		imap_session_log(s, LOG_LEVEL_INFO,
		    "login throttled delay_ms=%llu",
		    (unsigned long long)delay);
	/* Through the timer even with no delay: the reply must come after
	 * this handler returns (the session marks itself waiting). */
	uv_timer_start(&req->timer, auth_start_cb, delay, 0);
}

static bool
check_plaintext(struct imap_cmd *cmd)
{
	if (imap_session_plaintext_allowed(cmd->s))
		return true;
	imap_cmd_reply(cmd, "NO", "[PRIVACYREQUIRED]",
	    "Plaintext authentication disallowed on non-secure "
	    "connections; use STARTTLS.");
	return false;
}

void
cmd_login(struct imap_cmd *cmd)
{
	const char *user, *pass;

	if (cmd->nargs != 2 || !imap_arg_get_astring(&cmd->args[0], &user) ||
	    !imap_arg_get_astring(&cmd->args[1], &pass)) {
		imap_cmd_bad(cmd, "LOGIN needs a user name and a password.");
		return;
	}
	if (!check_plaintext(cmd))
		return;
	if (user[0] == '\0' || strlen(user) > 255 || strlen(pass) > 1024 ||
	    memchr(user, '\0', cmd->args[0].len) != NULL) {
		imap_cmd_reply(cmd, "NO", "[AUTHENTICATIONFAILED]",
		    "Authentication failed.");
		return;
	}
	auth_begin(cmd, "LOGIN", xstrdup(user), xstrdup(pass));
}

/* The decoded SASL PLAIN response: start the check or refuse. */
static void
authenticate_plain(struct imap_cmd *cmd, const char *b64)
{
	size_t len = strlen(b64);
	unsigned char *msg;
	char *authzid, *authcid, *passwd;
	long n;

	if (strcmp(b64, "*") == 0) {
		imap_cmd_bad(cmd, "Authentication cancelled.");
		return;
	}
	if (len > 8192) {
		imap_cmd_bad(cmd, "Authentication response too long.");
		return;
	}
	msg = xmalloc(base64_decoded_max(len) + 1);
	/* RFC 4959: "=" is an empty initial response. */
	n = strcmp(b64, "=") == 0 ? 0 : base64_decode(b64, len, msg);
	if (n < 0) {
		free(msg);
		imap_cmd_bad(cmd, "Invalid base64 data.");
		return;
	}
	if (sasl_plain_parse(msg, (size_t)n, &authzid, &authcid,
	    &passwd) < 0) {
		xfree_secret(msg, base64_decoded_max(len) + 1);
		imap_cmd_reply(cmd, "NO", "[AUTHENTICATIONFAILED]",
		    "Invalid SASL PLAIN response.");
		return;
	}
	xfree_secret(msg, base64_decoded_max(len) + 1);
	if (authzid[0] != '\0' && strcmp(authzid, authcid) != 0) {
		free(authzid);
		free(authcid);
		xfree_secret(passwd, strlen(passwd));
		imap_cmd_reply(cmd, "NO", "[AUTHORIZATIONFAILED]",
		    "Authorization as another user is not allowed.");
		return;
	}
	free(authzid);
	auth_begin(cmd, "PLAIN", authcid, passwd);
}

static void
authenticate_line(struct imap_cmd *cmd, const char *line)
{
	struct imap_session *s = cmd->s;

	/* Back to command input for whatever follows this command. */
	s->input_mode = IMAP_INPUT_COMMAND;
	authenticate_plain(cmd, line);
	/* A reply already sent has freed cmd: only the session is safe to
	 * look at.  Otherwise the check is running asynchronously. */
	if (s->cmd == cmd)
		s->waiting = true;
}

void
cmd_authenticate(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *mech, *ir = NULL;

	if (cmd->nargs < 1 || cmd->nargs > 2 ||
	    !imap_arg_get_atom(&cmd->args[0], &mech) ||
	    (cmd->nargs == 2 && !imap_arg_get_atom(&cmd->args[1], &ir))) {
		imap_cmd_bad(cmd, "AUTHENTICATE needs a mechanism name.");
		return;
	}
	if (strcasecmp(mech, "PLAIN") != 0) {
		imap_cmd_reply(cmd, "NO", "[CANNOT]",
		    "Unsupported authentication mechanism.");
		return;
	}
	if (!check_plaintext(cmd))
		return;
	if (ir != NULL) {
		authenticate_plain(cmd, ir);
		return;
	}
	/* No initial response: ask for it with an empty challenge. */
	imap_session_printf(s, "+ ");
	imap_parser_next(s->parser);
	imap_session_read_lines(s, authenticate_line);
}
