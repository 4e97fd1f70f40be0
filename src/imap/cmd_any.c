/*
 * Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 9051 6.1),
 * ID (RFC 2971), and ENABLE (RFC 5161).
 */
#include "imap/commands.h"

#include "core/buf.h"
#include "core/xmalloc.h"
#include "event/conn.h"
#include "imap/server.h"

#include <stdlib.h>
#include <string.h>

#define HERALD_VERSION "0.1.0"
/* RFC 2971 section 3.3: at most 30 pairs, 1024-byte values, 30-byte keys. */
#define ID_MAX_PAIRS 30
#define ID_MAX_KEY 30
#define ID_MAX_VALUE 1024

void
cmd_capability(struct imap_cmd *cmd)
{
	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "CAPABILITY takes no arguments.");
		return;
	}
	imap_session_printf(cmd->s, "* CAPABILITY %s",
	    imap_session_capabilities(cmd->s));
	imap_cmd_reply(cmd, "OK", NULL, "Capability completed.");
}

void
cmd_noop(struct imap_cmd *cmd)
{
	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "NOOP takes no arguments.");
		return;
	}
	if (cmd->s->view != NULL) {
		imap_cmd_noop_selected(cmd);
		return;
	}
	imap_cmd_reply(cmd, "OK", NULL, "NOOP completed.");
}

void
cmd_logout(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "LOGOUT takes no arguments.");
		return;
	}
	imap_session_printf(s, "* BYE Logging out");
	s->state = IMAP_STATE_LOGOUT;
	imap_cmd_reply(cmd, "OK", NULL, "Logout completed.");
	imap_session_log(s, LOG_LEVEL_INFO, "logout");
	conn_close_after_flush(s->conn, "logout");
}

/* Append an IMAP string to b: quoted when possible, else a literal. */
static void
append_string(struct buf *b, const char *s)
{
	bool quotable = strlen(s) < 256;

	for (const char *p = s; *p != '\0' && quotable; p++)
		if (*p == '\r' || *p == '\n' || (unsigned char)*p >= 0x80)
			quotable = false;
	if (!quotable) {
		buf_printf(b, "{%zu}\r\n%s", strlen(s), s);
		return;
	}
	buf_append(b, "\"", 1);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_append(b, "\\", 1);
		buf_append(b, p, 1);
	}
	buf_append(b, "\"", 1);
}

void
cmd_id(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const struct imap_arg *items;
	unsigned count;
	struct buf log;

	if (cmd->nargs != 1) {
		imap_cmd_bad(cmd, "ID takes one argument.");
		return;
	}
	buf_init(&log, 2048);
	if (!imap_arg_is_nil(&cmd->args[0])) {
		if (!imap_arg_get_list(&cmd->args[0], &items, &count) ||
		    count % 2 != 0) {
			imap_cmd_bad(cmd, "Invalid ID parameter list.");
			return;
		}
		if (count / 2 > ID_MAX_PAIRS) {
			imap_cmd_bad(cmd, "Too many ID parameters.");
			return;
		}
		for (unsigned i = 0; i < count; i += 2) {
			const char *key, *value;

			if (!imap_arg_get_string(&items[i], &key) ||
			    !imap_arg_get_nstring(&items[i + 1], &value) ||
			    strlen(key) > ID_MAX_KEY ||
			    (value != NULL && strlen(value) > ID_MAX_VALUE)) {
				buf_free(&log);
				imap_cmd_bad(cmd, "Invalid ID parameter.");
				return;
			}
			if (value != NULL)
				buf_printf(&log, "%s%s=%s",
				    log.len > 0 ? "," : "", key, value);
		}
	}
	if (log.len > 0) {
		free(s->client_id);
		s->client_id = xstrdup(log.data);
		imap_session_log(s, LOG_LEVEL_INFO, "id=\"%s\"", log.data);
	}
	buf_free(&log);
	{
		struct buf b;

		buf_init(&b, 0);
		buf_append_str(&b, "* ID (");
		append_string(&b, "name");
		buf_append_str(&b, " ");
		append_string(&b, "Herald");
		buf_append_str(&b, " ");
		append_string(&b, "version");
		buf_append_str(&b, " ");
		append_string(&b, HERALD_VERSION);
		buf_append_str(&b, ")\r\n");
		imap_session_write(s, b.data, b.len);
		buf_free(&b);
	}
	imap_cmd_reply(cmd, "OK", NULL, "ID completed.");
}

void
cmd_enable(struct imap_cmd *cmd)
{
	struct buf enabled;

	if (cmd->nargs == 0) {
		imap_cmd_bad(cmd, "ENABLE needs at least one capability.");
		return;
	}
	for (unsigned i = 0; i < cmd->nargs; i++) {
		const char *name;

		if (!imap_arg_get_atom(&cmd->args[i], &name)) {
			imap_cmd_bad(cmd, "Invalid capability name.");
			return;
		}
	}
	/*
	 * RFC 5161 section 3.1: unknown or non-enablable capabilities are
	 * ignored.  Nothing in this build can be enabled yet (CONDSTORE,
	 * QRESYNC, UTF8=ACCEPT and IMAP4rev2 come with the store), so the
	 * ENABLED response is empty.
	 */
	buf_init(&enabled, 0);
	imap_session_printf(cmd->s, "* ENABLED%s",
	    enabled.len > 0 ? enabled.data : "");
	buf_free(&enabled);
	imap_cmd_reply(cmd, "OK", NULL, "Enabled.");
}
