#include "imap/commands.h"

#include "config/config.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "event/worker.h"
#include "imap/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sorted by name for bsearch. */
static const struct imap_command imap_commands[] = {
	{ "AUTHENTICATE", cmd_authenticate, IMAP_STATE_NOT_AUTH },
	{ "CAPABILITY", cmd_capability, IMAP_STATE_ANY },
	{ "ENABLE", cmd_enable, IMAP_STATE_AUTH | IMAP_STATE_SELECTED },
	{ "ID", cmd_id, IMAP_STATE_ANY },
	{ "LOGIN", cmd_login, IMAP_STATE_NOT_AUTH },
	{ "LOGOUT", cmd_logout, IMAP_STATE_ANY },
	{ "NOOP", cmd_noop, IMAP_STATE_ANY },
	{ "STARTTLS", cmd_starttls, IMAP_STATE_NOT_AUTH },
};

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
