/*
 * Mailbox management and listing: CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, LIST, LSUB and STATUS (RFC 3501 6.3.3-6.3.10), NAMESPACE
 * (RFC 2342), with LIST-EXTENDED (RFC 5258), CHILDREN (RFC 3348),
 * SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154) and LIST-STATUS (RFC 5819).
 *
 * One personal namespace with '/' as the hierarchy delimiter.  Names travel
 * in modified UTF-7 and are UTF-8 in the store.  Where the RFCs leave room
 * we answer as Dovecot 2.3 does: SUBSCRIBE needs an existing mailbox,
 * subscriptions stay behind on RENAME, DELETE of the selected mailbox
 * succeeds and then disconnects, STATUS echoes the name as sent and lists
 * its items in a fixed order, and an extended LIST reports only what was
 * asked for (children with CHILDREN, special use with SPECIAL-USE).
 */
#include "imap/commands.h"

#include "core/buf.h"
#include "core/xmalloc.h"
#include "imap/mutf7.h"
#include "imap/view.h"
#include "store/store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MBOX_DELIM '/'

/* ---- output ----------------------------------------------------------- */

/* ASTRING-CHAR of RFC 3501 section 9: ATOM-CHAR or ']'. */
static bool
astring_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

/* Append s as an astring: an atom when it can be one (but not NIL, which
 * would read as nil), else a quoted string, else a literal. */
static void
append_astring(struct buf *b, const char *s)
{
	bool atom = *s != '\0' && strcasecmp(s, "NIL") != 0;

	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x80 || c == '\r' || c == '\n') {
			buf_printf(b, "{%zu}\r\n%s", strlen(s), s);
			return;
		}
		if (!astring_char(c))
			atom = false;
	}
	if (atom) {
		buf_append_str(b, s);
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

/* Append a store (UTF-8) name in modified UTF-7.  False if it is not valid
 * UTF-8, which the store never hands out. */
static bool
append_mailbox(struct buf *b, const char *name)
{
	struct buf enc;
	bool ok;

	buf_init(&enc, 0);
	ok = mutf7_encode(name, &enc);
	if (ok)
		append_astring(b, enc.data != NULL ? enc.data : "");
	buf_free(&enc);
	return ok;
}

static const struct {
	unsigned bit;
	const char *name;
} special_uses[] = {
	{ STORE_MBOX_ALL, "\\All" },
	{ STORE_MBOX_ARCHIVE, "\\Archive" },
	{ STORE_MBOX_DRAFTS, "\\Drafts" },
	{ STORE_MBOX_FLAGGED, "\\Flagged" },
	{ STORE_MBOX_JUNK, "\\Junk" },
	{ STORE_MBOX_SENT, "\\Sent" },
	{ STORE_MBOX_TRASH, "\\Trash" },
};

/* Attribute lists are built word by word, space-separated. */
static void
attr_add(struct buf *b, bool *first, const char *attr)
{
	if (!*first)
		buf_append(b, " ", 1);
	buf_append_str(b, attr);
	*first = false;
}

static void
attr_add_special_use(struct buf *b, bool *first, unsigned attrs)
{
	for (size_t i = 0; i < ARRAY_SIZE(special_uses); i++)
		if ((attrs & special_uses[i].bit) != 0)
			attr_add(b, first, special_uses[i].name);
}

/* ---- arguments -------------------------------------------------------- */

/* An astring argument without NUL bytes (a literal may hold them). */
static bool
get_astring(const struct imap_arg *arg, const char **str_r)
{
	const char *s;

	if (!imap_arg_get_astring(arg, &s) || strlen(s) != arg->len)
		return false;
	*str_r = s;
	return true;
}

/*
 * Decode a mailbox name argument into out (STORE_NAME_MAX + 1 bytes), or
 * reply NO and return false.  BAD when the argument is not an astring.
 */
static bool
mailbox_arg(struct imap_cmd *cmd, const struct imap_arg *arg, char *out)
{
	const char *s, *error;

	if (!imap_arg_get_astring(arg, &s)) {
		imap_cmd_bad(cmd, "%s: mailbox name expected.", cmd->name);
		return false;
	}
	if (strlen(s) != arg->len) {
		imap_cmd_reply(cmd, "NO", "[CANNOT]", "Invalid mailbox name.");
		return false;
	}
	if (imap_mailbox_name(s, out, &error) < 0) {
		imap_cmd_reply(cmd, "NO", "[CANNOT]", "%s", error);
		return false;
	}
	return true;
}

static bool
is_self_or_child(const char *name, const char *parent)
{
	size_t n = strlen(parent);

	return strncmp(name, parent, n) == 0 &&
	    (name[n] == '\0' || name[n] == MBOX_DELIM);
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ------------------- */

struct mbox_ctx {
	char name[STORE_NAME_MAX + 1];
	char new_name[STORE_NAME_MAX + 1];	/* RENAME */
	unsigned special_use;			/* CREATE ... (USE (...)) */
};

static struct mbox_ctx *
mbox_ctx_new(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx = arena_alloc(&cmd->arena, sizeof(*ctx));

	cmd->ctx = ctx;
	return ctx;
}

/* Open the user's store for a run function; false: the reply is set. */
static bool
run_store(struct imap_cmd *cmd)
{
	struct store_error err;

	if (imap_session_store(cmd->s, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return false;
	}
	return true;
}

static enum imap_run_result
create_run(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx = cmd->ctx;
	struct store_error err;

	if (!run_store(cmd))
		return IMAP_RUN_DONE;
	if (store_mailbox_create(cmd->s->store, ctx->name, ctx->special_use,
	    &err) < 0)
		imap_cmd_store_error(cmd, &err);
	else
		imap_cmd_result(cmd, "OK", NULL, "Create completed.");
	return IMAP_RUN_DONE;
}

/*
 * RFC 4466 create-params; the only one is USE (RFC 6154 section 3).  The
 * store keeps one special use per mailbox, and \All and \Flagged would be
 * virtual mailboxes, which we do not have.  false: the reply is sent.
 */
static bool
create_params(struct imap_cmd *cmd, const struct imap_arg *arg,
    unsigned *use_r)
{
	const struct imap_arg *params, *uses;
	unsigned nparams, nuses;

	*use_r = 0;
	if (!imap_arg_get_list(arg, &params, &nparams) || nparams % 2 != 0) {
		imap_cmd_bad(cmd, "Invalid CREATE parameters.");
		return false;
	}
	for (unsigned i = 0; i < nparams; i += 2) {
		if (!imap_arg_atom_equals(&params[i], "USE")) {
			imap_cmd_bad(cmd, "Unknown CREATE parameter.");
			return false;
		}
		if (!imap_arg_get_list(&params[i + 1], &uses, &nuses)) {
			imap_cmd_bad(cmd, "USE needs a list of attributes.");
			return false;
		}
		for (unsigned j = 0; j < nuses; j++) {
			const char *a;
			unsigned bit = 0;

			if (!imap_arg_get_atom(&uses[j], &a) || a[0] != '\\') {
				imap_cmd_bad(cmd, "Invalid special-use "
				    "attribute.");
				return false;
			}
			for (size_t k = 0; k < ARRAY_SIZE(special_uses); k++)
				if (strcasecmp(a, special_uses[k].name) == 0)
					bit = special_uses[k].bit;
			if (bit == 0 || bit == STORE_MBOX_ALL ||
			    bit == STORE_MBOX_FLAGGED) {
				imap_cmd_reply(cmd, "NO", "[USEATTR]",
				    "Special-use attribute not supported.");
				return false;
			}
			*use_r |= bit;
		}
	}
	if ((*use_r & (*use_r - 1)) != 0) {
		imap_cmd_reply(cmd, "NO", "[USEATTR]",
		    "Only one special-use attribute per mailbox is "
		    "supported.");
		return false;
	}
	return true;
}

void
cmd_create(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx;
	struct imap_arg name;
	const char *s;
	size_t len;

	if (cmd->nargs < 1 || cmd->nargs > 2 ||
	    !imap_arg_get_astring(&cmd->args[0], &s)) {
		imap_cmd_bad(cmd, "CREATE needs a mailbox name.");
		return;
	}
	ctx = mbox_ctx_new(cmd);
	if (cmd->nargs == 2 &&
	    !create_params(cmd, &cmd->args[1], &ctx->special_use))
		return;
	/* RFC 3501 6.3.3: a trailing delimiter only declares that the client
	 * means to create names below this one. */
	name = cmd->args[0];
	len = strlen(s);
	if (len > 1 && len == name.len && s[len - 1] == MBOX_DELIM) {
		name.v.str = arena_strndup(&cmd->arena, s, len - 1);
		name.len = len - 1;
	}
	if (!mailbox_arg(cmd, &name, ctx->name))
		return;
	imap_cmd_run(cmd, create_run);
}

static enum imap_run_result
delete_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct mbox_ctx *ctx = cmd->ctx;
	struct store_error err;

	if (!run_store(cmd))
		return IMAP_RUN_DONE;
	if (store_mailbox_delete(s->store, ctx->name, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	imap_cmd_result(cmd, "OK", NULL, "Delete completed.");
	if (s->view != NULL && strcmp(s->view->name, ctx->name) == 0) {
		/* As Dovecot: the selected mailbox may be deleted, but the
		 * session cannot go on in a state the client did not ask
		 * for, so it ends after the tagged OK. */
		imap_view_free(&s->view);
		s->state = IMAP_STATE_AUTH;
		cmd->bye_after = "Selected mailbox was deleted, have to "
		    "disconnect.";
	}
	return IMAP_RUN_DONE;
}

void
cmd_delete(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx;

	if (cmd->nargs != 1) {
		imap_cmd_bad(cmd, "DELETE needs a mailbox name.");
		return;
	}
	ctx = mbox_ctx_new(cmd);
	if (!mailbox_arg(cmd, &cmd->args[0], ctx->name))
		return;
	imap_cmd_run(cmd, delete_run);
}

/*
 * The selected mailbox (or one of its parents) was renamed: its folder
 * moved, so reopen the view's mailbox under the new name.  The mailbox
 * keeps its index row, so UIDs, modseqs and the view's sequence numbers
 * stay valid.
 */
static void
rename_follow_view(struct imap_cmd *cmd, const char *old_name,
    const char *new_name)
{
	struct imap_session *s = cmd->s;
	struct imap_view *v = s->view;
	char name[STORE_NAME_MAX + 1];
	struct store_mailbox *box;
	struct store_error err;
	int n;

	/* Renaming INBOX moves its messages; INBOX itself stays. */
	if (v == NULL || strcmp(old_name, "INBOX") == 0 ||
	    !is_self_or_child(v->name, old_name))
		return;
	n = snprintf(name, sizeof(name), "%s%s", new_name,
	    v->name + strlen(old_name));
	if (n < 0 || (size_t)n >= sizeof(name) ||
	    store_mailbox_open(s->store, name,
	    v->readonly ? STORE_OPEN_READONLY : 0, &box, &err) < 0) {
		box = NULL;
	} else if (store_mailbox_sync(box, &err) < 0) {
		store_mailbox_close(&box);
	}
	if (box == NULL) {
		imap_view_free(&s->view);
		s->state = IMAP_STATE_AUTH;
		cmd->bye_after = "Selected mailbox was renamed, have to "
		    "disconnect.";
		return;
	}
	store_mailbox_close(&v->box);
	v->box = box;
	free(v->name);
	v->name = xstrdup(name);
	v->foreign = true;
}

static enum imap_run_result
rename_run(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx = cmd->ctx;
	struct store_error err;

	if (!run_store(cmd))
		return IMAP_RUN_DONE;
	if (store_mailbox_rename(cmd->s->store, ctx->name, ctx->new_name,
	    &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	imap_cmd_result(cmd, "OK", NULL, "Rename completed.");
	rename_follow_view(cmd, ctx->name, ctx->new_name);
	return IMAP_RUN_DONE;
}

void
cmd_rename(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx;

	if (cmd->nargs != 2) {
		imap_cmd_bad(cmd, "RENAME needs two mailbox names.");
		return;
	}
	ctx = mbox_ctx_new(cmd);
	if (!mailbox_arg(cmd, &cmd->args[0], ctx->name) ||
	    !mailbox_arg(cmd, &cmd->args[1], ctx->new_name))
		return;
	if (strcmp(ctx->name, ctx->new_name) == 0) {
		imap_cmd_reply(cmd, "NO", "[ALREADYEXISTS]",
		    "Can't rename mailbox to itself.");
		return;
	}
	imap_cmd_run(cmd, rename_run);
}

static enum imap_run_result
subscribe_run(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx = cmd->ctx;
	bool subscribe = strcmp(cmd->name, "SUBSCRIBE") == 0;
	struct store_mailbox *box;
	struct store_error err;

	if (!run_store(cmd))
		return IMAP_RUN_DONE;
	/* RFC 3501 6.3.6 lets the server check that the mailbox exists;
	 * Dovecot does.  Unsubscribing never checks, so that names of
	 * deleted mailboxes can be dropped. */
	if (subscribe) {
		if (store_mailbox_open(cmd->s->store, ctx->name,
		    STORE_OPEN_READONLY, &box, &err) < 0) {
			imap_cmd_store_error(cmd, &err);
			return IMAP_RUN_DONE;
		}
		store_mailbox_close(&box);
	}
	if (store_mailbox_subscribe(cmd->s->store, ctx->name, subscribe,
	    &err) < 0)
		imap_cmd_store_error(cmd, &err);
	else
		imap_cmd_result(cmd, "OK", NULL, "%s completed.",
		    subscribe ? "Subscribe" : "Unsubscribe");
	return IMAP_RUN_DONE;
}

static void
subscribe_common(struct imap_cmd *cmd)
{
	struct mbox_ctx *ctx;

	if (cmd->nargs != 1) {
		imap_cmd_bad(cmd, "%s needs a mailbox name.", cmd->name);
		return;
	}
	ctx = mbox_ctx_new(cmd);
	if (!mailbox_arg(cmd, &cmd->args[0], ctx->name))
		return;
	imap_cmd_run(cmd, subscribe_run);
}

void
cmd_subscribe(struct imap_cmd *cmd)
{
	subscribe_common(cmd);
}

void
cmd_unsubscribe(struct imap_cmd *cmd)
{
	subscribe_common(cmd);
}

/* ---- STATUS ----------------------------------------------------------- */

enum status_item {
	STATUS_MESSAGES = 1u << 0,
	STATUS_RECENT = 1u << 1,
	STATUS_UIDNEXT = 1u << 2,
	STATUS_UIDVALIDITY = 1u << 3,
	STATUS_UNSEEN = 1u << 4,
};

/* In the order Dovecot answers, whatever the order asked. */
static const struct {
	unsigned bit;
	const char *name;
} status_items[] = {
	{ STATUS_MESSAGES, "MESSAGES" },
	{ STATUS_RECENT, "RECENT" },
	{ STATUS_UIDNEXT, "UIDNEXT" },
	{ STATUS_UIDVALIDITY, "UIDVALIDITY" },
	{ STATUS_UNSEEN, "UNSEEN" },
};

/* Parse a status item list; false: BAD was sent. */
static bool
status_parse(struct imap_cmd *cmd, const struct imap_arg *arg,
    unsigned *items_r)
{
	const struct imap_arg *list;
	unsigned n;

	*items_r = 0;
	if (!imap_arg_get_list(arg, &list, &n)) {
		imap_cmd_bad(cmd, "Status items must be a list.");
		return false;
	}
	if (n == 0) {
		imap_cmd_bad(cmd, "Empty status list.");
		return false;
	}
	for (unsigned i = 0; i < n; i++) {
		const char *a;
		unsigned bit = 0;

		if (!imap_arg_get_atom(&list[i], &a)) {
			imap_cmd_bad(cmd, "Invalid status item.");
			return false;
		}
		for (size_t k = 0; k < ARRAY_SIZE(status_items); k++)
			if (strcasecmp(a, status_items[k].name) == 0)
				bit = status_items[k].bit;
		if (bit == 0) {
			imap_cmd_bad(cmd, "Invalid status item %.40s.", a);
			return false;
		}
		*items_r |= bit;
	}
	return true;
}

/*
 * Status of name.  For the selected mailbox the answer must agree with
 * what this session was told and claimed (\Recent): sync the view, report
 * the changes first (EXISTS, EXPUNGE), then count from its snapshot.
 */
static int
status_lookup(struct imap_cmd *cmd, const char *name,
    struct store_status *st, struct store_error *err)
{
	struct imap_view *v = cmd->s->view;
	struct store_mailbox_info info;
	const struct store_msg *msgs;
	unsigned count;

	if (v == NULL || strcmp(v->name, name) != 0)
		return store_mailbox_status(cmd->s->store, name, st, err);
	if (imap_view_sync(v, cmd->s, err) < 0)
		return -1;
	imap_view_update(v, cmd, true);
	memset(st, 0, sizeof(*st));
	msgs = store_mailbox_messages(v->box, &count);
	for (unsigned i = 0; i < count; i++) {
		if ((msgs[i].flags & STORE_F_RECENT) != 0)
			st->recent++;
		if ((msgs[i].flags & STORE_F_SEEN) == 0)
			st->unseen++;
	}
	st->messages = v->count;
	store_mailbox_get_info(v->box, &info);
	st->uidnext = info.uidnext;
	st->uidvalidity = info.uidvalidity;
	st->highestmodseq = info.highestmodseq;
	st->attrs = info.attrs;
	return 0;
}

/* "* STATUS name (...)"; name is written as given (already mUTF-7). */
static void
status_write(struct imap_cmd *cmd, const char *name, unsigned items,
    const struct store_status *st)
{
	const uint32_t values[] = {
		st->messages, st->recent, st->uidnext, st->uidvalidity,
		st->unseen,
	};
	bool first = true;
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "* STATUS ");
	append_astring(&b, name);
	buf_append_str(&b, " (");
	for (size_t i = 0; i < ARRAY_SIZE(status_items); i++) {
		if ((items & status_items[i].bit) == 0)
			continue;
		buf_printf(&b, "%s%s %u", first ? "" : " ",
		    status_items[i].name, values[i]);
		first = false;
	}
	buf_append_str(&b, ")\r\n");
	imap_cmd_write(cmd, b.data, b.len);
	buf_free(&b);
}

struct status_ctx {
	char name[STORE_NAME_MAX + 1];
	const char *arg;	/* as the client wrote it, echoed back */
	unsigned items;
};

static enum imap_run_result
status_run(struct imap_cmd *cmd)
{
	struct status_ctx *ctx = cmd->ctx;
	struct store_status st;
	struct store_error err;

	if (!run_store(cmd))
		return IMAP_RUN_DONE;
	if (status_lookup(cmd, ctx->name, &st, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	status_write(cmd, ctx->arg, ctx->items, &st);
	/* RFC 9051 6.3.11: clients SHOULD NOT ask about the selected
	 * mailbox; Dovecot answers, and says so. */
	if (cmd->s->view != NULL && strcmp(cmd->s->view->name,
	    ctx->name) == 0)
		imap_cmd_result(cmd, "OK", "[CLIENTBUG]",
		    "Status on selected mailbox completed.");
	else
		imap_cmd_result(cmd, "OK", NULL, "Status completed.");
	return IMAP_RUN_DONE;
}

void
cmd_status(struct imap_cmd *cmd)
{
	struct status_ctx *ctx;
	const char *arg;

	if (cmd->nargs != 2 || !imap_arg_get_astring(&cmd->args[0],
	    &arg)) {
		imap_cmd_bad(cmd, "STATUS needs a mailbox name and a list of "
		    "status items.");
		return;
	}
	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	cmd->ctx = ctx;
	if (!status_parse(cmd, &cmd->args[1], &ctx->items))
		return;
	ctx->arg = arg;
	if (!mailbox_arg(cmd, &cmd->args[0], ctx->name))
		return;
	imap_cmd_run(cmd, status_run);
}

/* ---- NAMESPACE -------------------------------------------------------- */

void
cmd_namespace(struct imap_cmd *cmd)
{
	if (cmd->nargs != 0) {
		imap_cmd_bad(cmd, "NAMESPACE takes no arguments.");
		return;
	}
	/* RFC 2342: one personal namespace, no other users', no shared. */
	imap_session_printf(cmd->s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_cmd_reply(cmd, "OK", NULL, "Namespace completed.");
}

/* ---- LIST and LSUB: patterns ------------------------------------------ */

/*
 * The canonical pattern of RFC 3501 6.3.8 is the reference followed by the
 * mailbox argument.  Each is decoded from modified UTF-7 on its own (their
 * concatenation might not be valid mUTF-7) and runs of wildcards are
 * collapsed ("%*" is "*", "%%" is "%"), which bounds the matching work: a
 * pattern with more literal bytes than the longest name matches nothing.
 * NULL: the pattern can match nothing and is ignored (RFC 5258 section 3).
 */
static char *
pattern_compile(struct arena *arena, const char *ref, const char *pat)
{
	struct buf dec;
	char *out;
	size_t o = 0, literals = 0;

	buf_init(&dec, 0);
	if (!mutf7_decode(ref, &dec) || !mutf7_decode(pat, &dec)) {
		buf_free(&dec);
		return NULL;
	}
	if (dec.data == NULL) {
		buf_free(&dec);
		return arena_strdup(arena, "");
	}
	out = arena_alloc(arena, dec.len + 1);
	for (size_t i = 0; i < dec.len;) {
		char c = dec.data[i];

		if (c != '*' && c != '%') {
			out[o++] = c;
			literals++;
			i++;
			continue;
		}
		c = '%';
		for (; i < dec.len && (dec.data[i] == '*' ||
		    dec.data[i] == '%'); i++)
			if (dec.data[i] == '*')
				c = '*';
		out[o++] = c;
	}
	out[o] = '\0';
	buf_free(&dec);
	return literals > STORE_NAME_MAX ? NULL : out;
}

/*
 * Does name match pattern?  '*' matches anything, '%' anything but the
 * delimiter.  INBOX is case-insensitive, also as the first level of a
 * hierarchy (RFC 3501 5.1), so "inbox/%" and "i*" find INBOX/x and INBOX.
 * Runs a set of reachable name positions through the pattern: at most
 * (2 * STORE_NAME_MAX + 1) * (STORE_NAME_MAX + 1) steps per name.
 */
static bool
pattern_match(const char *pattern, const char *name)
{
	bool reach[STORE_NAME_MAX + 2], next[STORE_NAME_MAX + 2];
	size_t n = strlen(name);
	bool inbox = strncmp(name, "INBOX", 5) == 0 &&
	    (name[5] == '\0' || name[5] == MBOX_DELIM);

	if (n > STORE_NAME_MAX)
		return false;
	memset(reach, 0, sizeof(reach));
	reach[0] = true;
	for (const char *p = pattern; *p != '\0'; p++) {
		bool any = false, acc = false;

		for (size_t j = 0; j <= n; j++) {
			if (*p == '*') {
				acc = acc || reach[j];
				next[j] = acc;
			} else if (*p == '%') {
				next[j] = reach[j] || (j > 0 && next[j - 1] &&
				    name[j - 1] != MBOX_DELIM);
			} else if (j == 0) {
				next[j] = false;
			} else {
				char c = *p;

				if (inbox && j <= 5)
					c = (char)toupper((unsigned char)c);
				next[j] = reach[j - 1] && name[j - 1] == c;
			}
			any = any || next[j];
		}
		if (!any)
			return false;
		memcpy(reach, next, n + 1);
	}
	return reach[n];
}

/* ---- LIST and LSUB: selection ----------------------------------------- */

enum list_flags {
	LIST_F_LSUB = 1u << 0,
	LIST_F_EXTENDED = 1u << 1,	/* RFC 5258 syntax was used */
	LIST_F_SEL_SUBSCRIBED = 1u << 2,
	LIST_F_SEL_SPECIAL_USE = 1u << 3,
	LIST_F_RECURSIVEMATCH = 1u << 4,
	LIST_F_RET_SUBSCRIBED = 1u << 5,
	LIST_F_RET_CHILDREN = 1u << 6,
	LIST_F_RET_SPECIAL_USE = 1u << 7,
	LIST_F_RET_STATUS = 1u << 8,	/* RFC 5819 */
};

struct list_ctx {
	unsigned flags;			/* enum list_flags */
	unsigned status_items;		/* RETURN (STATUS (...)) */
	char **patterns;		/* compiled; NULL entries never match */
	unsigned pattern_count;
};

struct list_item {
	const char *name;
	unsigned attrs;			/* enum store_mbox_attr */
	bool match:1;			/* matches a pattern */
	bool sel_child:1;		/* a descendant meets the selection */
	bool sel_child_nomatch:1;	/* ... and does not match a pattern */
};

static int
item_cmp(const void *a, const void *b)
{
	const struct list_item *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0;
	bool yi = strcmp(y->name, "INBOX") == 0;

	if (xi || yi)
		return (int)yi - (int)xi;
	return strcmp(x->name, y->name);
}

static struct list_item *
item_find(struct list_item *items, unsigned count, const char *name)
{
	struct list_item key = { .name = name };

	return bsearch(&key, items, count, sizeof(*items), item_cmp);
}

static bool
list_match(const struct list_ctx *ctx, const char *name)
{
	for (unsigned i = 0; i < ctx->pattern_count; i++)
		if (ctx->patterns[i] != NULL &&
		    pattern_match(ctx->patterns[i], name))
			return true;
	return false;
}

static bool
item_exists(const struct list_item *it)
{
	return (it->attrs & (STORE_MBOX_NOSELECT |
	    STORE_MBOX_NONEXISTENT)) == 0;
}

/* Does it meet the selection criteria (RFC 5258 section 3)? */
static bool
list_selected(const struct list_ctx *ctx, const struct list_item *it)
{
	if ((ctx->flags & (LIST_F_LSUB | LIST_F_SEL_SUBSCRIBED)) != 0) {
		if ((it->attrs & STORE_MBOX_SUBSCRIBED) == 0)
			return false;
	} else if ((it->attrs & STORE_MBOX_NONEXISTENT) != 0) {
		return false;
	}
	if ((ctx->flags & LIST_F_SEL_SPECIAL_USE) != 0 &&
	    (it->attrs & STORE_MBOX_SPECIAL_USE_MASK) == 0)
		return false;
	return true;
}

/*
 * Every name LIST or LSUB may talk about, sorted (INBOX first, then byte
 * order): the mailboxes and \Noselect placeholders for missing parents,
 * then, when subscriptions matter, subscribed names that do not exist.
 */
static int
list_collect(struct imap_cmd *cmd, struct list_ctx *ctx,
    struct list_item **items_r, unsigned *count_r, struct store_error *err)
{
	struct store_user *user = cmd->s->store;
	struct store_list_entry *all, *subs = NULL;
	unsigned nall, nsubs = 0, n = 0, cap;
	struct list_item *items;

	if (store_mailbox_list(user, false, &cmd->arena, &all, &nall,
	    err) < 0)
		return -1;
	if ((ctx->flags & (LIST_F_LSUB | LIST_F_SEL_SUBSCRIBED)) != 0 &&
	    store_mailbox_list(user, true, &cmd->arena, &subs, &nsubs,
	    err) < 0)
		return -1;
	/* Room for the ancestors list_mark_parents() may add. */
	cap = nall + nsubs * (STORE_NAME_MAX_LEVELS + 1) + 1;
	items = arena_alloc(&cmd->arena, cap * sizeof(*items));
	for (unsigned i = 0; i < nall; i++) {
		items[n].name = all[i].name;
		items[n++].attrs = all[i].attrs;
	}
	qsort(items, n, sizeof(*items), item_cmp);
	for (unsigned i = 0; i < nsubs; i++) {
		/* Placeholders are in the list already, marked. */
		if ((subs[i].attrs & STORE_MBOX_NONEXISTENT) == 0 ||
		    item_find(items, nall, subs[i].name) != NULL)
			continue;
		items[n].name = subs[i].name;
		items[n++].attrs = STORE_MBOX_SUBSCRIBED |
		    STORE_MBOX_NONEXISTENT | STORE_MBOX_HASNOCHILDREN;
	}
	qsort(items, n, sizeof(*items), item_cmp);
	for (unsigned i = 0; i < n; i++)
		items[i].match = list_match(ctx, items[i].name);
	*items_r = items;
	*count_r = n;
	return 0;
}

/*
 * RECURSIVEMATCH (RFC 5258 3.1) and LSUB's \Noselect parents (RFC 3501
 * 6.3.9): mark each matching ancestor of a name that meets the selection.
 * An ancestor with such a descendant that does not match the pattern
 * itself is listed even when it does not meet the selection (a name that
 * does not exist at all is added for it); when every such descendant is
 * listed anyway the ancestor would be redundant (RFC 5258 3.5).
 */
static void
list_mark_parents(struct list_ctx *ctx, struct arena *arena,
    struct list_item *items, unsigned *countp)
{
	unsigned count = *countp, n = count, o;
	char prefix[STORE_NAME_MAX + 1];

	for (unsigned i = 0; i < count; i++) {
		const char *name = items[i].name;

		if (!list_selected(ctx, &items[i]))
			continue;
		for (const char *p = strchr(name, MBOX_DELIM); p != NULL;
		    p = strchr(p + 1, MBOX_DELIM)) {
			struct list_item *parent;

			snprintf(prefix, sizeof(prefix), "%.*s",
			    (int)(p - name), name);
			if (!list_match(ctx, prefix))
				continue;
			parent = item_find(items, count, prefix);
			if (parent == NULL) {
				if (items[i].match)
					continue;
				/* Duplicates are merged below. */
				parent = &items[n++];
				parent->name = arena_strdup(arena, prefix);
				parent->attrs = STORE_MBOX_NONEXISTENT |
				    STORE_MBOX_HASNOCHILDREN;
				parent->match = true;
			}
			parent->sel_child = true;
			if (!items[i].match)
				parent->sel_child_nomatch = true;
		}
	}
	if (n == count)
		return;
	qsort(items, n, sizeof(*items), item_cmp);
	o = 0;
	for (unsigned i = 0; i < n; i++) {
		if (o > 0 && strcmp(items[o - 1].name, items[i].name) == 0) {
			items[o - 1].sel_child |= items[i].sel_child;
			items[o - 1].sel_child_nomatch |=
			    items[i].sel_child_nomatch;
			continue;
		}
		items[o++] = items[i];
	}
	*countp = o;
}

/* ---- LIST and LSUB: output -------------------------------------------- */

/* One LIST or LSUB line for it, or nothing if it is not to be listed. */
static bool
list_write_item(struct imap_cmd *cmd, const struct list_ctx *ctx,
    const struct list_item *it, struct buf *b)
{
	bool lsub = (ctx->flags & LIST_F_LSUB) != 0;
	bool selected = list_selected(ctx, it);
	bool first = true;
	unsigned f = ctx->flags;

	if (!it->match || !(selected || ((f & (LIST_F_LSUB |
	    LIST_F_RECURSIVEMATCH)) != 0 && it->sel_child_nomatch)))
		return false;
	buf_reset(b);
	buf_printf(b, "* %s (", lsub ? "LSUB" : "LIST");
	if (lsub) {
		/* RFC 3501 6.3.9: \Noselect here means "not subscribed,
		 * but has subscribed children". */
		if (!selected)
			attr_add(b, &first, "\\Noselect");
		else
			attr_add_special_use(b, &first, it->attrs);
	} else if ((f & LIST_F_EXTENDED) == 0) {
		if ((it->attrs & STORE_MBOX_NOSELECT) != 0)
			attr_add(b, &first, "\\Noselect");
		attr_add(b, &first,
		    (it->attrs & STORE_MBOX_HASCHILDREN) != 0 ?
		    "\\HasChildren" : "\\HasNoChildren");
		attr_add_special_use(b, &first, it->attrs);
	} else {
		if ((f & (LIST_F_SEL_SUBSCRIBED | LIST_F_RET_SUBSCRIBED)) !=
		    0 && (it->attrs & STORE_MBOX_SUBSCRIBED) != 0)
			attr_add(b, &first, "\\Subscribed");
		if (!item_exists(it))
			attr_add(b, &first, "\\NonExistent");
		if ((f & LIST_F_RET_CHILDREN) != 0)
			attr_add(b, &first,
			    (it->attrs & STORE_MBOX_HASCHILDREN) != 0 ?
			    "\\HasChildren" : "\\HasNoChildren");
		if ((f & (LIST_F_SEL_SPECIAL_USE |
		    LIST_F_RET_SPECIAL_USE)) != 0)
			attr_add_special_use(b, &first, it->attrs);
	}
	buf_append_str(b, ") \"/\" ");
	if (!append_mailbox(b, it->name))
		return false;
	if ((f & LIST_F_RECURSIVEMATCH) != 0 && it->sel_child)
		buf_append_str(b, " (CHILDINFO (\"SUBSCRIBED\"))");
	buf_append_str(b, "\r\n");
	imap_cmd_write(cmd, b->data, b->len);
	return true;
}

/* LIST-STATUS (RFC 5819): a STATUS line after each selectable mailbox;
 * mailboxes whose status cannot be read are skipped. */
static void
list_write_status(struct imap_cmd *cmd, const struct list_ctx *ctx,
    const struct list_item *it)
{
	struct store_status st;
	struct store_error err;
	struct buf enc;

	if (!item_exists(it) ||
	    status_lookup(cmd, it->name, &st, &err) < 0)
		return;
	buf_init(&enc, 0);
	if (mutf7_encode(it->name, &enc))
		status_write(cmd, enc.data, ctx->status_items, &st);
	buf_free(&enc);
}

static enum imap_run_result
list_run(struct imap_cmd *cmd)
{
	struct list_ctx *ctx = cmd->ctx;
	struct list_item *items;
	struct store_error err;
	unsigned count;
	struct buf b;

	if (!run_store(cmd))
		return IMAP_RUN_DONE;
	if (list_collect(cmd, ctx, &items, &count, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if ((ctx->flags & (LIST_F_LSUB | LIST_F_RECURSIVEMATCH)) != 0)
		list_mark_parents(ctx, &cmd->arena, items, &count);
	buf_init(&b, 0);
	for (unsigned i = 0; i < count; i++) {
		if (list_write_item(cmd, ctx, &items[i], &b) &&
		    (ctx->flags & LIST_F_RET_STATUS) != 0)
			list_write_status(cmd, ctx, &items[i]);
	}
	buf_free(&b);
	imap_cmd_result(cmd, "OK", NULL, "%s completed.",
	    (ctx->flags & LIST_F_LSUB) != 0 ? "Lsub" : "List");
	return IMAP_RUN_DONE;
}

/* ---- LIST and LSUB: arguments ----------------------------------------- */

/* LIST (opts) ...: RFC 5258 section 6 and RFC 6154.  false: BAD sent. */
static bool
list_select_opts(struct imap_cmd *cmd, const struct imap_arg *list,
    unsigned n, unsigned *flags)
{
	for (unsigned i = 0; i < n; i++) {
		if (imap_arg_atom_equals(&list[i], "SUBSCRIBED"))
			*flags |= LIST_F_SEL_SUBSCRIBED;
		else if (imap_arg_atom_equals(&list[i], "SPECIAL-USE"))
			*flags |= LIST_F_SEL_SPECIAL_USE;
		else if (imap_arg_atom_equals(&list[i], "RECURSIVEMATCH"))
			*flags |= LIST_F_RECURSIVEMATCH;
		else if (!imap_arg_atom_equals(&list[i], "REMOTE")) {
			/* REMOTE: we have no remote mailboxes. */
			imap_cmd_bad(cmd, "Unknown LIST selection option.");
			return false;
		}
	}
	/* RECURSIVEMATCH needs a base option (SPECIAL-USE is not one). */
	if ((*flags & LIST_F_RECURSIVEMATCH) != 0 &&
	    (*flags & LIST_F_SEL_SUBSCRIBED) == 0) {
		imap_cmd_bad(cmd, "RECURSIVEMATCH must not be the only "
		    "selection option.");
		return false;
	}
	return true;
}

static bool
list_return_opts(struct imap_cmd *cmd, struct list_ctx *ctx,
    const struct imap_arg *list, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (imap_arg_atom_equals(&list[i], "SUBSCRIBED")) {
			ctx->flags |= LIST_F_RET_SUBSCRIBED;
		} else if (imap_arg_atom_equals(&list[i], "CHILDREN")) {
			ctx->flags |= LIST_F_RET_CHILDREN;
		} else if (imap_arg_atom_equals(&list[i], "SPECIAL-USE")) {
			ctx->flags |= LIST_F_RET_SPECIAL_USE;
		} else if (imap_arg_atom_equals(&list[i], "STATUS") &&
		    i + 1 < n) {
			unsigned items;

			if (!status_parse(cmd, &list[++i], &items))
				return false;
			ctx->flags |= LIST_F_RET_STATUS;
			ctx->status_items |= items;
		} else {
			imap_cmd_bad(cmd, "Unknown LIST return option.");
			return false;
		}
	}
	return true;
}

/* Compile the patterns (one or a list) against ref. */
static bool
list_patterns(struct imap_cmd *cmd, struct list_ctx *ctx, const char *ref,
    const struct imap_arg *arg)
{
	const struct imap_arg *pats = arg;
	unsigned n = 1;

	if (arg->type == IMAP_ARG_LIST) {
		ctx->flags |= LIST_F_EXTENDED;
		if (!imap_arg_get_list(arg, &pats, &n) || n == 0) {
			imap_cmd_bad(cmd, "Empty pattern list.");
			return false;
		}
	}
	ctx->patterns = arena_alloc(&cmd->arena, n * sizeof(char *));
	ctx->pattern_count = n;
	for (unsigned i = 0; i < n; i++) {
		const char *p;

		if (!imap_arg_get_astring(&pats[i], &p)) {
			imap_cmd_bad(cmd, "Invalid mailbox pattern.");
			return false;
		}
		/* An extended LIST ignores empty patterns (RFC 5258 3). */
		if (strlen(p) != pats[i].len || *p == '\0')
			continue;
		ctx->patterns[i] = pattern_compile(&cmd->arena, ref, p);
	}
	return true;
}

/*
 * LIST "ref" "": the delimiter and the root of the reference (RFC 3501
 * 6.3.8): the reference up to and including its first delimiter, as
 * Dovecot answers.
 */
static void
list_delimiter(struct imap_cmd *cmd, const char *ref)
{
	const char *slash = strchr(ref, MBOX_DELIM);
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "* LIST (\\Noselect) \"/\" ");
	append_astring(&b, slash == NULL ? "" : arena_strndup(&cmd->arena,
	    ref, (size_t)(slash - ref + 1)));
	buf_append_str(&b, "\r\n");
	imap_session_write(cmd->s, b.data, b.len);
	buf_free(&b);
	imap_cmd_reply(cmd, "OK", NULL, "List completed.");
}

void
cmd_list(struct imap_cmd *cmd)
{
	const struct imap_arg *args = cmd->args, *opts;
	unsigned nargs = cmd->nargs, nopts;
	struct list_ctx *ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	const char *ref, *pat;

	cmd->ctx = ctx;
	if (nargs > 0 && args[0].type == IMAP_ARG_LIST) {
		ctx->flags |= LIST_F_EXTENDED;
		(void)imap_arg_get_list(&args[0], &opts, &nopts);
		if (!list_select_opts(cmd, opts, nopts, &ctx->flags))
			return;
		args++;
		nargs--;
	}
	if (nargs < 2 || !get_astring(&args[0], &ref)) {
		imap_cmd_bad(cmd, "LIST needs a reference and a mailbox "
		    "pattern.");
		return;
	}
	if (nargs == 4 && imap_arg_atom_equals(&args[2], "RETURN") &&
	    imap_arg_get_list(&args[3], &opts, &nopts)) {
		ctx->flags |= LIST_F_EXTENDED;
		if (!list_return_opts(cmd, ctx, opts, nopts))
			return;
	} else if (nargs != 2) {
		imap_cmd_bad(cmd, "Invalid LIST arguments.");
		return;
	}
	if ((ctx->flags & LIST_F_EXTENDED) == 0 &&
	    imap_arg_get_astring(&args[1], &pat) && *pat == '\0' &&
	    args[1].len == 0) {
		list_delimiter(cmd, ref);
		return;
	}
	if (!list_patterns(cmd, ctx, ref, &args[1]))
		return;
	imap_cmd_run(cmd, list_run);
}

void
cmd_lsub(struct imap_cmd *cmd)
{
	struct list_ctx *ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	const char *ref;

	cmd->ctx = ctx;
	ctx->flags = LIST_F_LSUB;
	if (cmd->nargs != 2 || !get_astring(&cmd->args[0], &ref) ||
	    cmd->args[1].type == IMAP_ARG_LIST) {
		imap_cmd_bad(cmd, "LSUB needs a reference and a mailbox "
		    "pattern.");
		return;
	}
	if (!list_patterns(cmd, ctx, ref, &cmd->args[1]))
		return;
	imap_cmd_run(cmd, list_run);
}
