/*
 * Changing messages of the selected mailbox: STORE (RFC 9051 6.4.6), COPY
 * (6.4.7) with COPYUID (UIDPLUS, RFC 4315), MOVE (RFC 6851) and EXPUNGE
 * (6.4.3), each also in its UID form (UID EXPUNGE: RFC 4315 2.1).
 *
 * Handlers check the arguments and resolve the message set against the
 * view on the loop thread (no run function is active then); the changes
 * are made by run functions on the thread pool.
 */
#include "imap/commands.h"

#include "imap/seqset.h"
#include "imap/view.h"
#include "store/store.h"

#include <string.h>
#include <strings.h>

struct store_ctx {
	uint32_t *uids;
	unsigned count;
	struct store_flag_update upd;
	bool silent;
};

struct copy_ctx {
	uint32_t *uids;
	unsigned count;
	char name[STORE_NAME_MAX + 1];
	bool move;
};

/* Resolve the set argument for cmd (sequence numbers, or UIDs in the UID
 * form), replying BAD on error.  Returns false if it replied. */
static bool
resolve_set(struct imap_cmd *cmd, const struct imap_arg *arg,
    uint32_t **uids_r, unsigned *count_r)
{
	const char *set, *error;

	if (!imap_arg_get_atom(arg, &set)) {
		imap_cmd_bad(cmd, "Invalid message set.");
		return false;
	}
	if (imap_view_resolve(cmd->s->view, set, cmd->uid, &cmd->arena,
	    uids_r, count_r, &error) < 0) {
		imap_cmd_bad(cmd, "%s", error);
		return false;
	}
	return true;
}

static bool
check_writable(struct imap_cmd *cmd)
{
	if (!cmd->s->view->readonly)
		return true;
	imap_cmd_reply(cmd, "NO", "[READ-ONLY]", "Mailbox is read-only.");
	return false;
}

/* "+FLAGS.SILENT" and friends, case-insensitive. */
static bool
parse_store_item(const char *item, enum store_modify *mode_r, bool *silent_r)
{
	*mode_r = STORE_MODIFY_REPLACE;
	if (*item == '+') {
		*mode_r = STORE_MODIFY_ADD;
		item++;
	} else if (*item == '-') {
		*mode_r = STORE_MODIFY_REMOVE;
		item++;
	}
	if (strncasecmp(item, "FLAGS", 5) != 0)
		return false;
	item += 5;
	*silent_r = strcasecmp(item, ".SILENT") == 0;
	return *silent_r || *item == '\0';
}

static enum imap_run_result
store_run(struct imap_cmd *cmd)
{
	struct imap_view *view = cmd->s->view;
	struct store_ctx *ctx = cmd->ctx;
	struct store_update_result res;
	struct store_error err;

	/* Bring the view up to date first (no expunges: the client's
	 * sequence numbers must hold), so that what follows the change in
	 * the store's log is this STORE's own doing. */
	imap_view_update(view, cmd, false);
	if (store_mailbox_update_flags(view->box, ctx->uids, ctx->count,
	    &ctx->upd, &cmd->arena, &res, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if (!ctx->silent) {
		/* FETCH (FLAGS) for each message whose flags changed (with
		 * UID for UID STORE), after FLAGS if a keyword is new. */
		imap_view_update(view, cmd, false);
	} else if (res.highestmodseq == view->modseq + 1) {
		/* Nobody else changed the mailbox meanwhile: the update
		 * ending the command must not echo our change. */
		view->modseq = res.highestmodseq;
	}
	imap_cmd_result(cmd, "OK", NULL, "Store completed.");
	return IMAP_RUN_DONE;
}

void
cmd_store(struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args, *flags;
	struct store_ctx *ctx;
	const char *item, *error, **kw;
	unsigned nflags;

	if (cmd->nargs < 2) {
		imap_cmd_bad(cmd, "STORE needs a message set, an item and "
		    "flags.");
		return;
	}
	if (args[1].type == IMAP_ARG_LIST) {
		/* RFC 7162 UNCHANGEDSINCE: CONDSTORE is not offered. */
		imap_cmd_bad(cmd, "STORE modifiers are not supported.");
		return;
	}
	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	if (!imap_arg_get_atom(&args[1], &item) ||
	    !parse_store_item(item, &ctx->upd.mode, &ctx->silent)) {
		imap_cmd_bad(cmd, "Invalid STORE item.");
		return;
	}
	/* RFC 9051 store-att-flags: a flag list, or flags without the
	 * parentheses (possibly none). */
	if (cmd->nargs == 3 && imap_arg_get_list(&args[2], &flags, &nflags)) {
		/* flags and nflags are set */
	} else {
		flags = &args[2];
		nflags = cmd->nargs - 2;
	}
	if (imap_flags_parse(flags, nflags, &cmd->arena, &ctx->upd.flags,
	    &kw, &ctx->upd.keyword_count, &error) < 0) {
		imap_cmd_bad(cmd, "%s", error);
		return;
	}
	ctx->upd.keywords = kw;
	if (!resolve_set(cmd, &args[0], &ctx->uids, &ctx->count) ||
	    !check_writable(cmd))
		return;
	cmd->ctx = ctx;
	imap_cmd_run(cmd, store_run);
}

/* Ascending UIDs as a compact set ("1:3,7") for COPYUID. */
static char *
uid_set_format(const uint32_t *uids, unsigned count, struct arena *arena)
{
	struct imap_seqset set;

	set.ranges = arena_alloc(arena, (count + 1) * sizeof(*set.ranges));
	set.count = 0;
	for (unsigned i = 0; i < count; i++) {
		struct imap_seq_range *last = set.count > 0 ?
		    &set.ranges[set.count - 1] : NULL;

		if (last != NULL && last->hi != UINT32_MAX &&
		    last->hi + 1 == uids[i]) {
			last->hi = uids[i];
		} else {
			set.ranges[set.count].lo = uids[i];
			set.ranges[set.count].hi = uids[i];
			set.count++;
		}
	}
	return imap_seqset_format(&set, arena);
}

static enum imap_run_result
copy_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_view *view = s->view;
	struct copy_ctx *ctx = cmd->ctx;
	struct store_mailbox *dst;
	struct store_uid_map map;
	struct store_error err;
	const char *done = ctx->move ? "Move completed." : "Copy completed.";
	char *code;

	/* As Dovecot: an empty set succeeds before the destination is even
	 * looked at. */
	if (ctx->count == 0) {
		imap_cmd_result(cmd, "OK", NULL, "No messages found.");
		return IMAP_RUN_DONE;
	}
	if (store_mailbox_open(s->store, ctx->name, 0, &dst, &err) < 0) {
		/* RFC 9051 6.4.7: the client may CREATE and retry. */
		if (err.code == STORE_ERR_NOTFOUND)
			imap_cmd_result(cmd, "NO", "[TRYCREATE]",
			    "Mailbox doesn't exist.");
		else
			imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if (store_mailbox_copy(view->box, ctx->uids, ctx->count, dst,
	    ctx->move, &cmd->arena, &map, &err) < 0) {
		store_mailbox_close(&dst);
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	store_mailbox_close(&dst);
	if (map.count == 0) {
		/* Every message was expunged meanwhile. */
		imap_cmd_result(cmd, "OK", NULL, "No messages found.");
		return IMAP_RUN_DONE;
	}
	code = arena_printf(&cmd->arena, "[COPYUID %u %s %s]",
	    map.uidvalidity, uid_set_format(map.src_uids, map.count,
	    &cmd->arena), uid_set_format(map.dst_uids, map.count,
	    &cmd->arena));
	if (!ctx->move) {
		imap_cmd_result(cmd, "OK", code, "%s", done);
		return IMAP_RUN_DONE;
	}
	/* RFC 6851 section 4.3: COPYUID in an untagged OK before the
	 * expunges, which the view reports now (with any others due), so
	 * the update ending the command finds nothing to repeat. */
	imap_cmd_printf(cmd, "* OK %s Moved UIDs.", code);
	imap_view_update(view, cmd, true);
	imap_cmd_result(cmd, "OK", NULL, "%s", done);
	return IMAP_RUN_DONE;
}

static void
copy_common(struct imap_cmd *cmd, bool move)
{
	struct copy_ctx *ctx;
	const char *mbox, *error;

	if (cmd->nargs != 2 || !imap_arg_get_astring(&cmd->args[1], &mbox)) {
		imap_cmd_bad(cmd, "%s needs a message set and a mailbox.",
		    cmd->name);
		return;
	}
	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	ctx->move = move;
	if (!resolve_set(cmd, &cmd->args[0], &ctx->uids, &ctx->count))
		return;
	if (imap_mailbox_name(mbox, ctx->name, &error) < 0) {
		imap_cmd_reply(cmd, "NO", "[CANNOT]", "%s", error);
		return;
	}
	/* MOVE expunges from the source (RFC 6851 section 3.3). */
	if (move && !check_writable(cmd))
		return;
	cmd->ctx = ctx;
	imap_cmd_run(cmd, copy_run);
}

void
cmd_copy(struct imap_cmd *cmd)
{
	copy_common(cmd, false);
}

void
cmd_move(struct imap_cmd *cmd)
{
	copy_common(cmd, true);
}

static enum imap_run_result
expunge_run(struct imap_cmd *cmd)
{
	struct imap_view *view = cmd->s->view;
	struct copy_ctx *ctx = cmd->ctx;
	struct store_error err;
	uint32_t *expunged;
	unsigned n;

	/* EXPUNGE: every \Deleted message; UID EXPUNGE: only those of the
	 * set (RFC 4315 section 2.1). */
	if (store_mailbox_expunge(view->box, cmd->uid ? ctx->uids : NULL,
	    cmd->uid ? ctx->count : 0, &cmd->arena, &expunged, &n,
	    &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	/* The view numbers the EXPUNGE responses, highest first, so each
	 * is right when the client reads it. */
	imap_view_update(view, cmd, true);
	imap_cmd_result(cmd, "OK", NULL, "Expunge completed.");
	return IMAP_RUN_DONE;
}

void
cmd_expunge(struct imap_cmd *cmd)
{
	struct copy_ctx *ctx = arena_alloc(&cmd->arena, sizeof(*ctx));

	if (cmd->uid) {
		if (cmd->nargs != 1) {
			imap_cmd_bad(cmd, "UID EXPUNGE needs a UID set.");
			return;
		}
		if (!resolve_set(cmd, &cmd->args[0], &ctx->uids, &ctx->count))
			return;
	} else if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "EXPUNGE takes no arguments.");
		return;
	}
	if (!check_writable(cmd))
		return;
	cmd->ctx = ctx;
	imap_cmd_run(cmd, expunge_run);
}
