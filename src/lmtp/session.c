#include "lmtp/session.h"

#include "auth/passdb.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "event/conn.h"
#include "event/worker.h"
#include "lmtp/deliver.h"
#include "lmtp/proto.h"
#include "lmtp/server.h"
#include "log/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Recipients per transaction (RFC 5321 4.5.3.1.8: at least 100). */
#define LMTP_MAX_RECIPIENTS 1000
/* Inactivity before "421" (RFC 5321 4.5.3.2.7: a server waits at least
 * 5 minutes for the next command or data block). */
#define LMTP_TIMEOUT_MS (5 * 60 * 1000)
/* Bytes of message data gathered before each write to the spool. */
#define LMTP_SPOOL_BUF (64 * 1024)

enum lmtp_job {
	LMTP_JOB_NONE,
	LMTP_JOB_RCPT,		/* passwd-file lookup */
	LMTP_JOB_DELIVER,	/* one recipient's delivery */
};

struct lmtp_rcpt {
	char *address;		/* forward-path without the angle brackets */
	char *user;		/* the passwd-file user it maps to */
};

struct lmtp_session {
	struct lmtp_server *server;
	struct conn *conn;
	struct lmtp_session *prev, *next;
	uint64_t id;
	char *helo;		/* LHLO argument; NULL before LHLO */
	struct buf line;	/* command line being assembled */

	/* The mail transaction. */
	char *mail_from;	/* NULL: no MAIL yet; "" = null sender */
	struct lmtp_rcpt *rcpts;
	unsigned nrcpts, rcpts_cap;

	/* DATA. */
	enum lmtp_data_state dstate;
	int spool_fd;		/* -1 when no message is spooled */
	char *spool_buf;	/* LMTP_SPOOL_BUF bytes while in DATA */
	size_t spool_used;
	uint64_t data_size;	/* unstuffed message bytes */
	uint64_t max_size;	/* 0 = no limit */
	int spool_errno;	/* first write error */

	/* Blocking work on the thread pool; the fields below belong to the
	 * pool thread while busy is set. */
	uv_work_t work;
	enum lmtp_job job;
	const struct config *job_cfg;
	char *job_address;			/* RCPT: as given */
	char *job_cand[LMTP_MAX_CANDIDATES];	/* RCPT: user names */
	unsigned job_ncand;
	int job_found;				/* index, -1 none, -2 error */
	unsigned job_rcpt;			/* DELIVER: which recipient */
	char *job_received;			/* DELIVER: trace field */
	int job_ret;
	struct deliver_result job_res;
	struct store_error job_err;

	unsigned bad_count;	/* erroneous commands in a row */
	bool in_data:1;
	bool too_long:1;	/* discarding the rest of an overlong line */
	bool busy:1;		/* a job is on the thread pool */
	bool output_wait:1;	/* stopped reading until output drains */
	bool closed:1;		/* the conn is gone */
	bool quitting:1;
	bool shutdown:1;	/* say 421 once the current work is done */
};

static void session_continue(struct lmtp_session *s);

static const struct config *
session_cfg(const struct lmtp_session *s)
{
	return worker_config(s->server->worker);
}

static void
session_log(struct lmtp_session *s, enum log_level level, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
session_log(struct lmtp_session *s, enum log_level level, const char *fmt,
    ...)
{
	char msg[1024];
	va_list ap;

	if (level > log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_write(level, "lmtp session=%llx ip=%s %s",
	    (unsigned long long)s->id,
	    s->closed ? "-" : conn_peer_str(s->conn), msg);
}

static void
vreply(struct lmtp_session *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
vreply(struct lmtp_session *s, const char *fmt, va_list ap)
{
	struct buf b;

	if (s->closed)
		return;
	buf_init(&b, 0);
	buf_vprintf(&b, fmt, ap);
	buf_append(&b, "\r\n", 2);
	conn_write(s->conn, b.data, b.len);
	buf_free(&b);
}

/* One reply line; fmt starts with the code, CRLF is added.  A positive
 * reply ends a run of errors. */
static void
reply(struct lmtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply(struct lmtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
	if (fmt[0] == '2' || fmt[0] == '3')
		s->bad_count = 0;
}

/* A 5xx for a malformed or misplaced command: max_bad_commands in a row
 * (without a positive reply in between) end the session. */
static void
reply_error(struct lmtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply_error(struct lmtp_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->closed)
		return;
	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
	if (++s->bad_count >= session_cfg(s)->max_bad_commands) {
		session_log(s, LOG_LEVEL_INFO,
		    "disconnecting: reason=\"too many invalid commands\"");
		reply(s, "421 4.7.0 %s Too many invalid commands",
		    s->server->hostname);
		s->quitting = true;
		conn_close_after_flush(s->conn, "too many invalid commands");
	}
}

/* ---- transaction --------------------------------------------------------- */

static void
spool_close(struct lmtp_session *s)
{
	if (s->spool_fd >= 0)
		close(s->spool_fd);
	s->spool_fd = -1;
	free(s->spool_buf);
	s->spool_buf = NULL;
	s->spool_used = 0;
	s->data_size = 0;
	s->spool_errno = 0;
}

/* RSET, LHLO and the end of DATA (RFC 5321 4.1.1.5, 4.1.4). */
static void
transaction_reset(struct lmtp_session *s)
{
	free(s->mail_from);
	s->mail_from = NULL;
	for (unsigned i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].address);
		free(s->rcpts[i].user);
	}
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = s->rcpts_cap = 0;
	spool_close(s);
}

/* ---- jobs on the thread pool --------------------------------------------- */

static void
job_work_cb(uv_work_t *req)
{
	struct lmtp_session *s = req->data;

	switch (s->job) {
	case LMTP_JOB_RCPT:
		s->job_found = -1;
		for (unsigned i = 0; i < s->job_ncand; i++) {
			int r = passdb_user_lookup(s->server->passdb,
			    s->job_cand[i]);

			if (r < 0) {
				s->job_found = -2;
				break;
			}
			if (r > 0) {
				s->job_found = (int)i;
				break;
			}
		}
		break;
	case LMTP_JOB_DELIVER: {
		struct lmtp_rcpt *r = &s->rcpts[s->job_rcpt];
		struct deliver_envelope env = {
			.return_path = s->mail_from,
			.delivered_to = r->address,
			.received = s->job_received,
		};

		s->job_ret = deliver_message(s->job_cfg, r->user, NULL,
		    s->spool_fd, &env, &s->job_res, &s->job_err);
		break;
	}
	case LMTP_JOB_NONE:
		break;
	}
}

static void
session_destroy(struct lmtp_session *s)
{
	transaction_reset(s);
	for (unsigned i = 0; i < s->job_ncand; i++)
		free(s->job_cand[i]);
	free(s->job_address);
	free(s->job_received);
	buf_free(&s->line);
	free(s->helo);
	free(s);
}

static void rcpt_done(struct lmtp_session *s, int status);
static void deliver_done(struct lmtp_session *s, int status);

static void
job_after_cb(uv_work_t *req, int status)
{
	struct lmtp_session *s = req->data;
	enum lmtp_job job = s->job;

	s->busy = false;
	s->job = LMTP_JOB_NONE;
	if (s->closed) {
		/* The client went away meanwhile; a delivery that was
		 * running is complete, and the MTA will retry it. */
		session_destroy(s);
		return;
	}
	if (job == LMTP_JOB_RCPT)
		rcpt_done(s, status);
	else if (job == LMTP_JOB_DELIVER)
		deliver_done(s, status);
	session_continue(s);
}

static bool
job_start(struct lmtp_session *s, enum lmtp_job job)
{
	s->job = job;
	s->job_cfg = session_cfg(s);
	s->work.data = s;
	if (uv_queue_work(worker_loop(s->server->worker), &s->work,
	    job_work_cb, job_after_cb) != 0) {
		s->job = LMTP_JOB_NONE;
		return false;
	}
	s->busy = true;
	return true;
}

/* ---- commands ------------------------------------------------------------ */

static void
cmd_lhlo(struct lmtp_session *s, const char *args)
{
	const struct config *cfg = session_cfg(s);
	uint64_t max = cfg->max_message_size;

	const char *sp = strchr(args, ' ');

	if (*args == '\0' || *args == ' ') {
		reply_error(s, "501 5.5.4 Missing hostname");
		return;
	}
	/* LHLO is EHLO (RFC 2033 4.1): it also resets the transaction. */
	transaction_reset(s);
	free(s->helo);
	s->helo = sp == NULL ? xstrdup(args) :
	    xstrndup(args, (size_t)(sp - args));
	s->max_size = max;
	reply(s, "250-%s", s->server->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-8BITMIME");
	reply(s, "250-ENHANCEDSTATUSCODES");
	if (max > 0)
		reply(s, "250 SIZE %" PRIu64, max);
	else
		reply(s, "250 SIZE");
}

static void
cmd_mail(struct lmtp_session *s, const char *args)
{
	struct lmtp_path path;
	const char *p;
	char *key, *value;
	const char *why;
	bool have_size = false, have_body = false, ok = true;
	uint64_t size = 0;

	/* MAIL before LHLO is accepted, as Dovecot does. */
	if (s->mail_from != NULL) {
		reply_error(s, "503 5.5.0 MAIL already given");
		return;
	}
	if ((p = lmtp_skip_keyword(args, "FROM:")) == NULL) {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return;
	}
	if (!lmtp_path_parse(p, &path, &why)) {
		reply_error(s, "501 5.5.4 Invalid FROM: %s", why);
		return;
	}
	p = path.rest;
	while (ok && lmtp_next_param(&p, &key, &value)) {
		if (strcasecmp(key, "SIZE") == 0 && !have_size &&
		    value != NULL) {
			/* RFC 1870: the size the client expects to send. */
			char *end;

			have_size = true;
			errno = 0;
			size = strtoull(value, &end, 10);
			if (!isdigit((unsigned char)value[0]) ||
			    *end != '\0' || errno != 0) {
				reply_error(s, "501 5.5.4 Invalid SIZE= "
				    "parameter value");
				ok = false;
			}
		} else if (strcasecmp(key, "BODY") == 0 && !have_body &&
		    value != NULL) {
			/* RFC 6152: we store 8-bit data unchanged.
			 * BINARYMIME needs CHUNKING, which we lack. */
			have_body = true;
			if (strcasecmp(value, "7BIT") != 0 &&
			    strcasecmp(value, "8BITMIME") != 0) {
				reply_error(s, "501 5.5.4 Unsupported BODY= "
				    "parameter value");
				ok = false;
			}
		} else if ((strcasecmp(key, "SIZE") == 0 ||
		    strcasecmp(key, "BODY") == 0) && value == NULL) {
			reply_error(s, "501 5.5.4 Missing %s= parameter value",
			    strcasecmp(key, "SIZE") == 0 ? "SIZE" : "BODY");
			ok = false;
		} else if (strcasecmp(key, "SIZE") == 0 ||
		    strcasecmp(key, "BODY") == 0) {
			reply_error(s, "501 5.5.4 Duplicate %s= parameter",
			    strcasecmp(key, "SIZE") == 0 ? "SIZE" : "BODY");
			ok = false;
		} else {
			reply_error(s, "555 5.5.4 Unsupported parameters");
			ok = false;
		}
		free(key);
		free(value);
	}
	if (ok && have_size && s->max_size > 0 && size > s->max_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size");
		ok = false;
	}
	if (ok) {
		s->mail_from = path.address;
		path.address = NULL;
		reply(s, "250 2.1.0 OK");
	}
	lmtp_path_free(&path);
}

static void
cmd_rcpt(struct lmtp_session *s, const char *args)
{
	struct lmtp_path path;
	const char *p, *why;
	char *key, *value;

	if (s->mail_from == NULL) {
		reply_error(s, "503 5.5.0 MAIL needed first");
		return;
	}
	if ((p = lmtp_skip_keyword(args, "TO:")) == NULL) {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return;
	}
	if (!lmtp_path_parse(p, &path, &why)) {
		reply_error(s, "501 5.5.4 Invalid TO: %s", why);
		return;
	}
	if (path.null) {
		lmtp_path_free(&path);
		reply_error(s, "501 5.5.4 Invalid TO: Null path not allowed");
		return;
	}
	p = path.rest;
	if (lmtp_next_param(&p, &key, &value)) {
		/* No extension we announce has RCPT parameters. */
		free(key);
		free(value);
		lmtp_path_free(&path);
		reply_error(s, "555 5.5.4 Unsupported parameters");
		return;
	}
	if (s->nrcpts >= LMTP_MAX_RECIPIENTS) {
		lmtp_path_free(&path);
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	for (unsigned i = 0; i < s->job_ncand; i++)
		free(s->job_cand[i]);
	s->job_ncand = lmtp_candidates(&path, s->job_cand);
	free(s->job_address);
	s->job_address = path.address;
	path.address = NULL;
	lmtp_path_free(&path);
	if (s->job_ncand == 0) {
		reply(s, "550 5.1.1 <%s> User doesn't exist: %s",
		    s->job_address, s->job_address);
		return;
	}
	if (!job_start(s, LMTP_JOB_RCPT))
		reply(s, "451 4.3.0 <%s> Temporary internal error",
		    s->job_address);
}

static void
rcpt_done(struct lmtp_session *s, int status)
{
	struct lmtp_rcpt *r;

	if (status != 0 || s->job_found == -2) {
		session_log(s, LOG_LEVEL_WARN, "rcpt=<%s>: user lookup "
		    "failed", s->job_address);
		reply(s, "451 4.3.0 <%s> Temporary user lookup failure",
		    s->job_address);
		return;
	}
	if (s->job_found < 0) {
		session_log(s, LOG_LEVEL_INFO, "rcpt=<%s>: unknown user",
		    s->job_address);
		reply(s, "550 5.1.1 <%s> User doesn't exist: %s",
		    s->job_address, s->job_address);
		return;
	}
	if (s->nrcpts == s->rcpts_cap) {
		s->rcpts_cap = s->rcpts_cap == 0 ? 4 : s->rcpts_cap * 2;
		s->rcpts = xrealloc(s->rcpts, s->rcpts_cap * sizeof(*s->rcpts));
	}
	r = &s->rcpts[s->nrcpts++];
	r->address = s->job_address;
	s->job_address = NULL;
	r->user = xstrdup(s->job_cand[s->job_found]);
	reply(s, "250 2.1.5 OK");
}

static void
cmd_data(struct lmtp_session *s, const char *args)
{
	const struct config *cfg = session_cfg(s);

	if (*args != '\0') {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return;
	}
	if (s->mail_from == NULL) {
		reply_error(s, "503 5.5.0 MAIL needed first");
		return;
	}
	if (s->nrcpts == 0) {
		/* RFC 2033 4.2: must be 503 without a successful RCPT. */
		reply_error(s, "503 5.5.0 No valid recipients");
		return;
	}
	s->spool_fd = deliver_spool_open(cfg->data_dir);
	if (s->spool_fd < 0) {
		session_log(s, LOG_LEVEL_ERROR, "cannot create a spool file "
		    "in %s: %s", cfg->data_dir, strerror(errno));
		reply(s, "451 4.3.0 Temporary internal error");
		return;
	}
	s->spool_buf = xmalloc(LMTP_SPOOL_BUF);
	s->spool_used = 0;
	s->data_size = 0;
	s->spool_errno = 0;
	s->dstate = LMTP_DATA_BOL;
	s->in_data = true;
	reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

static void
cmd_rset(struct lmtp_session *s, const char *args)
{
	if (*args != '\0') {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return;
	}
	transaction_reset(s);
	reply(s, "250 2.0.0 OK");
}

static void
cmd_noop(struct lmtp_session *s, const char *args)
{
	/* RFC 5321 4.1.1.9: a parameter is allowed and ignored. */
	reply(s, "250 2.0.0 OK");
}

static void
cmd_vrfy(struct lmtp_session *s, const char *args)
{
	if (*args == '\0') {
		reply_error(s, "501 5.5.4 Invalid parameters");
		return;
	}
	/* RFC 5321 7.3: no user enumeration; RCPT tells. */
	reply(s, "252 2.3.3 Try RCPT instead");
}

static void
cmd_quit(struct lmtp_session *s, const char *args)
{
	reply(s, "221 2.0.0 Bye");
	s->quitting = true;
	conn_close_after_flush(s->conn, "QUIT");
}

static void
session_command(struct lmtp_session *s, char *line)
{
	static const struct {
		const char *name;
		void (*fn)(struct lmtp_session *s, const char *args);
	} cmds[] = {
		{ "LHLO", cmd_lhlo }, { "MAIL", cmd_mail },
		{ "RCPT", cmd_rcpt }, { "DATA", cmd_data },
		{ "RSET", cmd_rset }, { "NOOP", cmd_noop },
		{ "VRFY", cmd_vrfy }, { "QUIT", cmd_quit },
	};
	const char *args;
	size_t namelen;

	switch (lmtp_line_split(line, &namelen, &args)) {
	case LMTP_LINE_OK:
		break;
	case LMTP_LINE_BAD_VERB:
		reply_error(s, "500 5.5.2 Invalid command syntax");
		return;
	case LMTP_LINE_BAD_CHARS:
		reply_error(s, "501 5.5.2 Invalid characters in parameters");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strlen(cmds[i].name) == namelen &&
		    strncasecmp(cmds[i].name, line, namelen) == 0) {
			session_log(s, LOG_LEVEL_DEBUG, "command %s",
			    cmds[i].name);
			cmds[i].fn(s, args);
			return;
		}
	}
	/* HELO and EHLO too (RFC 2033 4.1: never a positive reply, 500
	 * recommended), and an empty line, as Dovecot. */
	reply_error(s, "500 5.5.1 Unknown command");
}

/* ---- DATA ---------------------------------------------------------------- */

static void
spool_flush(struct lmtp_session *s)
{
	size_t off = 0;

	while (off < s->spool_used && s->spool_errno == 0) {
		ssize_t n = write(s->spool_fd, s->spool_buf + off,
		    s->spool_used - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			s->spool_errno = errno;
		else
			off += (size_t)n;
	}
	s->spool_used = 0;
}

/* Message bytes, dot-stuffing already undone.  Past the size limit they
 * are only counted. */
static void
spool_put(struct lmtp_session *s, const char *data, size_t len)
{
	s->data_size += len;
	if (s->spool_errno != 0 ||
	    (s->max_size > 0 && s->data_size > s->max_size))
		return;
	while (len > 0) {
		size_t n = LMTP_SPOOL_BUF - s->spool_used;

		if (n > len)
			n = len;
		memcpy(s->spool_buf + s->spool_used, data, n);
		s->spool_used += n;
		data += n;
		len -= n;
		if (s->spool_used == LMTP_SPOOL_BUF)
			spool_flush(s);
	}
}

static void deliver_next(struct lmtp_session *s);

/* The final "." arrived: reply for each recipient (RFC 2033 4.2). */
static void
data_end(struct lmtp_session *s)
{
	s->in_data = false;
	spool_flush(s);
	free(s->spool_buf);
	s->spool_buf = NULL;
	if (s->max_size > 0 && s->data_size > s->max_size) {
		session_log(s, LOG_LEVEL_INFO, "from=<%s> size=%" PRIu64
		    ": message too big", s->mail_from, s->data_size);
		for (unsigned i = 0; i < s->nrcpts; i++)
			reply(s, "552 5.3.4 <%s> Message too big for system",
			    s->rcpts[i].address);
		transaction_reset(s);
		return;
	}
	if (s->spool_errno != 0) {
		session_log(s, LOG_LEVEL_ERROR, "writing the spool file: %s",
		    strerror(s->spool_errno));
		for (unsigned i = 0; i < s->nrcpts; i++)
			reply(s, "451 4.3.0 <%s> Temporary internal error",
			    s->rcpts[i].address);
		transaction_reset(s);
		return;
	}
	s->job_rcpt = 0;
	deliver_next(s);
}

/* The Received field Dovecot's LMTP adds (RFC 5321 4.4), folded with
 * "\n" (deliver_message() converts the line ends). */
static char *
received_field(struct lmtp_session *s, const char *rcpt)
{
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	return xasprintf("Received: from %s (%s)\n\tby %s with LMTP id "
	    "%llx-%u\n\t(envelope-from <%s>)\n\tfor <%s>; %s",
	    s->helo != NULL ? s->helo : "unknown", conn_peer_str(s->conn),
	    s->server->hostname, (unsigned long long)s->id, s->job_rcpt,
	    s->mail_from, rcpt, date);
}

static void
deliver_next(struct lmtp_session *s)
{
	struct lmtp_rcpt *r;

	if (s->job_rcpt >= s->nrcpts) {
		transaction_reset(s);
		return;
	}
	r = &s->rcpts[s->job_rcpt];
	free(s->job_received);
	s->job_received = received_field(s, r->address);
	if (!job_start(s, LMTP_JOB_DELIVER)) {
		reply(s, "451 4.3.0 <%s> Temporary internal error",
		    r->address);
		s->job_rcpt++;
		deliver_next(s);
	}
}

static void
deliver_done(struct lmtp_session *s, int status)
{
	struct lmtp_rcpt *r = &s->rcpts[s->job_rcpt];

	if (status != 0) {
		s->job_ret = -1;
		s->job_err.code = STORE_ERR_INTERNAL;
		snprintf(s->job_err.text, sizeof(s->job_err.text),
		    "Internal error");
	}
	if (s->job_ret == 0) {
		session_log(s, LOG_LEVEL_INFO, "from=<%s> rcpt=<%s> user=%s "
		    "mailbox=%s uid=%" PRIu32 " size=%" PRIu64 ": saved",
		    s->mail_from, r->address, r->user, s->job_res.mailbox,
		    s->job_res.uid, s->job_res.size);
		reply(s, "250 2.0.0 <%s> Saved", r->address);
	} else {
		session_log(s, LOG_LEVEL_WARN, "from=<%s> rcpt=<%s> user=%s: "
		    "delivery failed: %s", s->mail_from, r->address, r->user,
		    s->job_err.text);
		if (s->job_err.code == STORE_ERR_NOSPACE)
			reply(s, "452 4.2.2 <%s> Mailbox is full",
			    r->address);
		else
			reply(s, "451 4.3.0 <%s> Temporary internal error: "
			    "%s", r->address, s->job_err.text);
	}
	/* RFC 2033 5: send each reply as soon as possible. */
	conn_flush(s->conn);
	if (s->closed || conn_is_closing(s->conn))
		return;
	s->job_rcpt++;
	deliver_next(s);
}

static void
data_put(void *ctx, const char *data, size_t len)
{
	spool_put(ctx, data, len);
}

/* Feed dot-stuffed message data; returns the bytes consumed, which stop
 * right after the terminating CRLF "." CRLF. */
static size_t
data_feed(struct lmtp_session *s, const char *data, size_t len)
{
	bool end;
	size_t n;

	n = lmtp_data_feed(&s->dstate, data, len, data_put, s, &end);
	if (end)
		data_end(s);
	return n;
}

/* ---- input and connection events ----------------------------------------- */

static void
session_touch(struct lmtp_session *s)
{
	conn_set_timeout(s->conn, LMTP_TIMEOUT_MS);
}

static void
line_complete(struct lmtp_session *s)
{
	char *line = s->line.data;
	size_t len = s->line.len;

	/* A line ends with LF; a CR before it is dropped too. */
	len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (memchr(line, '\0', len) != NULL)
		reply_error(s, "500 5.5.2 Invalid command syntax");
	else
		session_command(s, line);
	buf_free(&s->line);
}

static size_t
session_input(void *ctx, const char *data, size_t len)
{
	struct lmtp_session *s = ctx;
	size_t pos = 0;

	session_touch(s);
	while (pos < len) {
		const char *nl;
		size_t n;

		if (s->busy || s->closed || s->quitting ||
		    conn_is_closing(s->conn))
			break;
		if (s->in_data) {
			pos += data_feed(s, data + pos, len - pos);
			continue;
		}
		if (s->shutdown) {
			session_continue(s);
			break;
		}
		if (conn_output_full(s->conn)) {
			/* Backpressure: resume when the client reads. */
			s->output_wait = true;
			break;
		}
		nl = memchr(data + pos, '\n', len - pos);
		n = nl == NULL ? len - pos : (size_t)(nl - (data + pos)) + 1;
		if (!s->too_long && s->line.len + n > LMTP_MAX_LINE) {
			s->too_long = true;
			buf_free(&s->line);
		}
		if (!s->too_long)
			buf_append(&s->line, data + pos, n);
		pos += n;
		if (nl == NULL)
			break;
		if (s->too_long) {
			s->too_long = false;
			reply_error(s, "500 5.5.2 Line too long");
			continue;
		}
		line_complete(s);
	}
	if (s->busy && pos == len && !s->closed)
		conn_pause(s->conn);
	return pos;
}

/* A job finished or the output drained: carry on with pipelined input,
 * or say goodbye if the server is stopping. */
static void
session_continue(struct lmtp_session *s)
{
	if (s->busy || s->closed || conn_is_closing(s->conn))
		return;
	if (s->shutdown && !s->in_data) {
		reply(s, "421 4.3.2 %s Server shutting down",
		    s->server->hostname);
		s->quitting = true;
		conn_close_after_flush(s->conn, "shutdown");
		return;
	}
	conn_resume(s->conn);
}

static void
session_drained(void *ctx)
{
	struct lmtp_session *s = ctx;

	if (s->output_wait) {
		s->output_wait = false;
		session_continue(s);
	}
}

static void
session_timeout(void *ctx)
{
	struct lmtp_session *s = ctx;

	if (s->busy) {
		/* A delivery taking long is not the client's idleness. */
		session_touch(s);
		return;
	}
	session_log(s, LOG_LEVEL_INFO, "disconnecting: reason=inactivity");
	reply(s, "421 4.4.2 %s Disconnected for inactivity",
	    s->server->hostname);
	s->quitting = true;
	conn_close_after_flush(s->conn, "inactivity");
}

static void
session_hangup(void *ctx, const char *reason)
{
	struct lmtp_session *s = ctx;

	session_log(s, LOG_LEVEL_DEBUG, "disconnected: reason=\"%s\"",
	    reason);
	if (s->in_data || s->busy)
		session_log(s, LOG_LEVEL_INFO, "disconnected during %s",
		    s->busy ? "delivery" : "DATA");
}

static void
session_closed(void *ctx)
{
	struct lmtp_session *s = ctx;
	struct lmtp_server *srv = s->server;

	s->closed = true;
	s->conn = NULL;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->session_count--;
	/* A job on the thread pool still uses the session: it is freed
	 * when the job comes back. */
	if (s->busy)
		return;
	session_destroy(s);
}

static const struct conn_ops session_conn_ops = {
	.input = session_input,
	.drained = session_drained,
	.timeout = session_timeout,
	.hangup = session_hangup,
	.closed = session_closed,
};

void
lmtp_session_new(struct lmtp_server *srv, struct worker *w, int fd,
    const struct sockaddr *peer, unsigned peer_len)
{
	struct lmtp_session *s = xmalloc(sizeof(*s));

	s->server = srv;
	s->spool_fd = -1;
	s->max_size = worker_config(w)->max_message_size;
	buf_init(&s->line, LMTP_MAX_LINE);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->session_count++;
	s->conn = conn_new(w, fd, peer, peer_len, NULL, &session_conn_ops, s);
	s->id = ((uint64_t)worker_index(w) << 32) | conn_id(s->conn);
	session_log(s, LOG_LEVEL_DEBUG, "connected");
	reply(s, "220 %s Herald LMTP ready", srv->hostname);
	session_touch(s);
	if (srv->shutting_down)
		lmtp_session_shutdown(s);
}

void
lmtp_session_shutdown(struct lmtp_session *s)
{
	s->shutdown = true;
	if (!s->busy && !s->in_data)
		session_continue(s);
}

struct lmtp_session *
lmtp_session_next(struct lmtp_session *s)
{
	return s->next;
}
