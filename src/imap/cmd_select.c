/*
 * Selecting and leaving mailboxes: SELECT, EXAMINE (RFC 9051 6.3.2-3),
 * CLOSE (6.4.1), UNSELECT (RFC 3691), CHECK (RFC 3501 6.4.1), and NOOP in
 * the selected state, which looks at the Maildir again.
 */
#include "imap/commands.h"

#include "core/xmalloc.h"
#include "imap/view.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

struct select_ctx {
	char name[STORE_NAME_MAX + 1];
	const char *name_error;	/* the name was invalid: say so */
	bool readonly;
};

static enum imap_run_result
select_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct select_ctx *ctx = cmd->ctx;
	struct store_error err;
	struct imap_view *view;

	if (s->view != NULL) {
		/* RFC 9051 6.3.2: the previous mailbox is closed first,
		 * without expunging, and the client is told so. */
		imap_view_free(&s->view);
		s->state = IMAP_STATE_AUTH;
		imap_cmd_printf(cmd, "* OK [CLOSED] Previous mailbox closed.");
	}
	if (ctx->name_error != NULL) {
		imap_cmd_result(cmd, "NO", "[CANNOT]", "%s", ctx->name_error);
		return IMAP_RUN_DONE;
	}
	if (imap_session_store(s, &err) < 0 ||
	    imap_view_open(s, ctx->name, ctx->readonly, cmd, &view,
	    &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	s->view = view;
	s->state = IMAP_STATE_SELECTED;
	imap_cmd_result(cmd, "OK", view->readonly ? "[READ-ONLY]" :
	    "[READ-WRITE]", "%s completed.", ctx->readonly ? "Examine" :
	    "Select");
	return IMAP_RUN_DONE;
}

static void
select_common(struct imap_cmd *cmd, bool readonly)
{
	struct select_ctx *ctx;
	const char *arg, *error;

	if (cmd->nargs != 1 || !imap_arg_get_astring(&cmd->args[0], &arg)) {
		imap_cmd_bad(cmd, "%s needs a mailbox name.", cmd->name);
		return;
	}
	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	ctx->readonly = readonly;
	/* Even with an invalid name the previous mailbox is closed, which
	 * the run function does under the user's lock. */
	if (imap_mailbox_name(arg, ctx->name, &error) < 0)
		ctx->name_error = error;
	cmd->ctx = ctx;
	imap_cmd_run(cmd, select_run);
}

void
cmd_select(struct imap_cmd *cmd)
{
	select_common(cmd, false);
}

void
cmd_examine(struct imap_cmd *cmd)
{
	select_common(cmd, true);
}

static enum imap_run_result
close_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct store_error err;
	uint32_t *expunged;
	unsigned n;

	/* CLOSE expunges silently (RFC 9051 6.4.1) unless read-only. */
	if (strcmp(cmd->name, "CLOSE") == 0 && !s->view->readonly &&
	    store_mailbox_expunge(s->view->box, NULL, 0, &cmd->arena,
	    &expunged, &n, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	imap_view_free(&s->view);
	s->state = IMAP_STATE_AUTH;
	imap_cmd_result(cmd, "OK", NULL, "%s completed.",
	    strcmp(cmd->name, "CLOSE") == 0 ? "Close" : "Unselect");
	return IMAP_RUN_DONE;
}

void
cmd_close(struct imap_cmd *cmd)
{
	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "CLOSE takes no arguments.");
		return;
	}
	imap_cmd_run(cmd, close_run);
}

void
cmd_unselect(struct imap_cmd *cmd)
{
	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "UNSELECT takes no arguments.");
		return;
	}
	imap_cmd_run(cmd, close_run);
}

/* CHECK and NOOP: resync with the Maildir; the changes are reported by
 * the update that ends every command. */
static enum imap_run_result
check_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct store_error err;

	if (imap_view_sync(s->view, s, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	imap_cmd_result(cmd, "OK", NULL, "%s completed.",
	    strcmp(cmd->name, "CHECK") == 0 ? "Check" : "NOOP");
	return IMAP_RUN_DONE;
}

void
cmd_check(struct imap_cmd *cmd)
{
	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "CHECK takes no arguments.");
		return;
	}
	imap_cmd_run(cmd, check_run);
}

void
imap_cmd_noop_selected(struct imap_cmd *cmd)
{
	imap_cmd_run(cmd, check_run);
}
