/*
 * An IMAP session: the protocol state of one connection (RFC 9051 section
 * 3): not authenticated, authenticated, selected, logout.  It owns the
 * connection and the command parser, and runs one command at a time in
 * order; a command that waits (a login being checked on the thread pool)
 * pauses input until it completes, so pipelined commands keep their order.
 */
#ifndef HERALD_IMAP_SESSION_H
#define HERALD_IMAP_SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/parser.h"
#include "log/log.h"

struct conn;
struct imap_server;
struct imap_view;
struct imap_user;
struct store_user;
struct store_error;

enum imap_state {
	IMAP_STATE_NOT_AUTH = 1 << 0,
	IMAP_STATE_AUTH = 1 << 1,
	IMAP_STATE_SELECTED = 1 << 2,
	IMAP_STATE_LOGOUT = 1 << 3,
};
#define IMAP_STATE_ANY \
	(IMAP_STATE_NOT_AUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)

enum imap_input_mode {
	IMAP_INPUT_COMMAND,	/* the parser reads commands */
	IMAP_INPUT_LINE,	/* a command reads raw lines (AUTHENTICATE) */
};

struct imap_cmd;
/* Called with each raw line in IMAP_INPUT_LINE mode. */
typedef void imap_line_cb(struct imap_cmd *cmd, const char *line);

struct imap_session {
	struct imap_session *prev, *next;	/* imap_server's list */
	struct imap_server *server;
	struct conn *conn;
	struct imap_parser *parser;
	struct imap_cmd *cmd;		/* command in progress, if any */
	char *user;			/* after login */
	struct imap_user *ustore;	/* shared per user, after login */
	struct store_user *store;	/* ustore->store once opened */
	struct imap_view *view;		/* the selected mailbox */
	char *client_id;		/* from ID, for the log */
	uint64_t id;			/* worker index << 32 | conn id */
	enum imap_state state;
	enum imap_input_mode input_mode;
	imap_line_cb *line_cb;
	unsigned bad_count;		/* BAD replies in a row */
	unsigned auth_failures;
	uint32_t enabled;		/* IMAP_ENABLED_* bits (RFC 5161) */
	bool waiting:1;			/* a command is running async */
	bool output_wait:1;		/* paused at the output high-water */
	bool starttls:1;		/* STARTTLS accepted, handshake next */
	bool closed:1;			/* the conn is gone */
	bool idling:1;			/* IDLE in progress (cmd_idle.c) */
};

/* Notify every watcher (all processes) that mailbox changed. */
void imap_session_notify(struct imap_session *s, const char *mailbox);
/* IDLE's timer: keepalive and idle_max (cmd_idle.c). */
void imap_idle_timeout(struct imap_session *s);
void imap_idle_arm_timer(struct imap_session *s);

/* Free a session whose conn is gone (internal to imap/). */
void imap_session_destroy(struct imap_session *s);
/*
 * The user's mail store, opened on first use (data_dir/users/NAME).  For
 * run functions on the thread pool.  0, or -1 with *err.
 */
int imap_session_store(struct imap_session *s, struct store_error *err);

/* Write an untagged or continuation line: fmt must not include CRLF. */
void imap_session_printf(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_session_write(struct imap_session *s, const void *data,
    size_t len);
/* Log with the session's id, address and user. */
void imap_session_log(struct imap_session *s, enum log_level level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Send "* BYE text" and close once it is written. */
void imap_session_bye(struct imap_session *s, const char *text);
/* Switch to raw line input for the running command (AUTHENTICATE). */
void imap_session_read_lines(struct imap_session *s, imap_line_cb *cb);
/* The session's capability list for its current state. */
const char *imap_session_capabilities(const struct imap_session *s);
/* Apply the limits of the current state to the parser. */
void imap_session_set_limits(struct imap_session *s);
bool imap_session_plaintext_allowed(const struct imap_session *s);

#endif
