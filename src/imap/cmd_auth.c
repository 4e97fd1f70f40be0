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

/*
 * A login goes through up to three steps: the throttle delay (a timer,
 * even of 0 ms), the check on the thread pool, and after a failure the
 * auth_failure_delay_ms delay (the timer again).  One step owns the
 * request at a time: the timer is closed when its delay ends, before the
 * next step starts, so no handle of the request is open while the check
 * runs, and whichever step ends last frees it.
 *
 * The command points to the request (cmd->ctx).  If the session closes
 * first (the client left, or SIGTERM's BYE), freeing the command detaches
 * the request (auth_cmd_cleanup()): a delay ends at once, a check in
 * flight is let finish.  Either way the request frees itself without
 * waiting for timers that a stopping worker would never run.
 */
struct auth_request {
	uv_work_t work;
	uv_timer_t timer;
	uv_loop_t *loop;
	struct imap_cmd *cmd;	/* NULL once the session closed */
	struct passdb *passdb;
	char *user;
	char *password;
	const char *method;
	enum passdb_result result;
	bool timer_active:1;	/* a delay is running */
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
auth_timer_free_cb(uv_handle_t *h)
{
	auth_request_free(h->data);
}

static void
auth_delay_start(struct auth_request *req, uint64_t ms, uv_timer_cb cb)
{
	uv_timer_init(req->loop, &req->timer);
	req->timer.data = req;
	req->timer_active = true;
	uv_timer_start(&req->timer, cb, ms, 0);
}

/* The delay is over or cancelled: close the timer, then call cb. */
static void
auth_delay_end(struct auth_request *req, uv_close_cb cb)
{
	req->timer_active = false;
	uv_close((uv_handle_t *)&req->timer, cb);
}

/* The command is freed before the login finished: the session closed. */
static void
auth_cmd_cleanup(struct imap_cmd *cmd)
{
	struct auth_request *req = cmd->ctx;

	cmd->ctx = NULL;
	req->cmd = NULL;
	/* A check in flight, or a timer closing, frees it when it ends. */
	if (req->timer_active)
		auth_delay_end(req, auth_timer_free_cb);
}

/* Reply to the client; the reply frees the command. */
static void
auth_finish(struct auth_request *req)
{
	struct imap_cmd *cmd = req->cmd;
	struct imap_session *s = cmd->s;
	struct imap_server *srv = s->server;
	unsigned max_failures = worker_config(srv->worker)->max_auth_failures;

	cmd->cleanup = NULL;
	cmd->ctx = NULL;
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
		    uv_now(req->loop));
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
}

static void
auth_delay_cb(uv_timer_t *t)
{
	struct auth_request *req = t->data;

	auth_finish(req);
	auth_delay_end(req, auth_timer_free_cb);
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
	unsigned delay_ms;

	explicit_bzero(req->password, strlen(req->password));
	if (status != 0)
		req->result = PASSDB_ERROR;
	if (req->cmd == NULL) {
		auth_request_free(req);
		return;
	}
	delay_ms = cmd_cfg(req->cmd)->auth_failure_delay_ms;
	if (req->result == PASSDB_FAIL && delay_ms > 0) {
		auth_delay_start(req, delay_ms, auth_delay_cb);
		return;
	}
	auth_finish(req);
	auth_request_free(req);
}

/* The throttle delay is over and its timer closed: start the check. */
static void
auth_start_cb(uv_handle_t *h)
{
	struct auth_request *req = h->data;

	if (req->cmd == NULL) {
		auth_request_free(req);
		return;
	}
	req->work.data = req;
	if (uv_queue_work(req->loop, &req->work, auth_work_cb,
	    auth_after_work_cb) != 0) {
		req->result = PASSDB_ERROR;
		auth_finish(req);
		auth_request_free(req);
	}
}

static void
auth_throttle_cb(uv_timer_t *t)
{
	auth_delay_end(t->data, auth_start_cb);
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
	uint64_t delay;

	req->loop = worker_loop(srv->worker);
	req->cmd = cmd;
	req->passdb = srv->passdb;
	req->user = user;
	req->password = password;
	req->method = method;
	cmd->ctx = req;
	cmd->cleanup = auth_cmd_cleanup;
	delay = auth_throttle_delay(srv->throttle, conn_peer(s->conn),
	    uv_now(req->loop));
	if (delay > 0)
		imap_session_log(s, LOG_LEVEL_INFO,
		    "login throttled delay_ms=%llu",
		    (unsigned long long)delay);
	/* Through the timer even with no delay: the reply must come after
	 * this handler returns (the session marks itself waiting). */
	auth_delay_start(req, delay, auth_throttle_cb);
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
