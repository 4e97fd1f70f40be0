/*
 * The command table and the command context.  One row per command: name,
 * handler, the states it is allowed in, flags (STYLE section 6).  A handler
 * either finishes the command (imap_cmd_reply() or imap_cmd_done()) before
 * returning, or starts asynchronous work and finishes it later; input stays
 * paused meanwhile.
 */
#ifndef HERALD_IMAP_COMMANDS_H
#define HERALD_IMAP_COMMANDS_H

#include <stdbool.h>

#include "imap/parser.h"
#include "imap/session.h"

struct imap_cmd;
typedef void imap_command_fn(struct imap_cmd *cmd);

struct imap_command {
	const char *name;
	imap_command_fn *handler;
	unsigned states;	/* IMAP_STATE_* where it is allowed */
};

struct imap_cmd {
	struct imap_session *s;
	const struct imap_command *def;
	char *tag;		/* owned copy: survives the parser's reset */
	const char *name;
	const struct imap_arg *args;	/* valid until the command ends */
	unsigned nargs;
	bool done;
};

const struct imap_command *imap_command_find(const char *name);

/* Send the tagged reply, e.g. imap_cmd_reply(cmd, "OK", NULL, "Done"), or
 * with a response code "NO", "[AUTHENTICATIONFAILED]".  Ends the command. */
void imap_cmd_reply(struct imap_cmd *cmd, const char *status,
    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Reply BAD and count it toward max_bad_commands. */
void imap_cmd_bad(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Handlers, one file per family (cmd_*.c). */
void cmd_capability(struct imap_cmd *cmd);
void cmd_noop(struct imap_cmd *cmd);
void cmd_logout(struct imap_cmd *cmd);
void cmd_id(struct imap_cmd *cmd);
void cmd_enable(struct imap_cmd *cmd);
void cmd_starttls(struct imap_cmd *cmd);
void cmd_login(struct imap_cmd *cmd);
void cmd_authenticate(struct imap_cmd *cmd);

/* Internal to the session: finish a command (called by imap_cmd_reply). */
void imap_session_command_finished(struct imap_session *s);

#endif
