/*
 * SEARCH and UID SEARCH (RFC 3501 section 6.4.4, RFC 9051 section 6.4.4).
 *
 * The criteria are parsed on the loop thread (src/imap/search.h); the
 * search runs on the thread pool in slices of at most SEARCH_SLICE_MS, so
 * that a search through a large mailbox does not hold a pool thread that
 * other sessions are waiting for.  Between slices the session is paused,
 * so its view stays as it was.  Messages are taken one at a time: each is
 * first tested on the index fields, then on a cached RFC822.SIZE, and only
 * mapped and parsed if the criteria still need it; its memory is released
 * before the next.
 */
#include "imap/commands.h"

#include "imap/msgload.h"
#include "imap/search.h"
#include "imap/view.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest time one run() slice may take before yielding the thread
 * (tests build with 0 to make every message a slice). */
#ifndef SEARCH_SLICE_MS
#define SEARCH_SLICE_MS 200
#endif

struct search_ctx {
	struct imap_search *search;
	const struct store_msg *msgs;	/* index at the start, by UID */
	unsigned msg_count, msg_pos;
	unsigned pos;			/* next view index to look at */
	uint32_t *results;		/* seqs or UIDs, ascending */
	unsigned result_count;
	bool started;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * RFC822.SIZE from the cache field FETCH fills ("vsize": decimal text).
 * SEARCH only reads it: writing one cache row per message would cost a
 * synchronous index commit each.
 */
static void
cached_vsize(struct store_mailbox *box, struct imap_search_msg *m,
    struct arena *arena)
{
	struct store_error err;
	void *data;
	size_t len;
	bool found;
	uint64_t v = 0;

	if (store_cache_get(box, m->uid, "vsize", arena, &data, &len, &found,
	    &err) < 0 || !found || len == 0 || len > 20)
		return;
	for (size_t i = 0; i < len; i++) {
		char c = ((const char *)data)[i];

		if (c < '0' || c > '9')
			return;
		v = v * 10 + (uint64_t)(c - '0');
	}
	m->vsize = v;
	m->vsize_known = true;
}

/*
 * Match one message.  1 if it matches, 0 if not (or it has gone meanwhile),
 * -1 with *err on a storage failure.
 */
static int
search_one(struct imap_cmd *cmd, struct search_ctx *ctx,
    const struct store_msg *sm, uint32_t seq, struct arena *arena,
    struct store_error *err)
{
	struct store_mailbox *box = cmd->s->view->box;
	struct imap_search_msg m;
	struct imap_msg msg;
	enum imap_search_result r;
	int ret = 0;

	imap_search_msg_init(&m, arena);
	m.seq = seq;
	m.uid = sm->uid;
	m.flags = sm->flags;
	m.keywords = sm->keywords;
	m.internal_date = sm->internal_date;
	m.size = sm->size;
	r = imap_search_match(ctx->search, &m);
	if (r == IMAP_SEARCH_MAYBE && m.vsize_wanted) {
		cached_vsize(box, &m, arena);
		if (m.vsize_known)
			r = imap_search_match(ctx->search, &m);
	}
	if (r == IMAP_SEARCH_MAYBE) {
		if (imap_msg_load(box, sm->uid, arena, &msg, err) < 0) {
			imap_search_msg_deinit(&m);
			/* Expunged by another program since the index was
			 * read: it matches nothing. */
			return err->code == STORE_ERR_EXPUNGED ? 0 : -1;
		}
		m.data = msg.data;
		m.len = msg.size;
		m.loaded = true;
		r = imap_search_match(ctx->search, &m);
		imap_msg_unload(&msg);
	}
	if (r == IMAP_SEARCH_YES)
		ret = 1;
	imap_search_msg_deinit(&m);
	return ret;
}

static int
search_start(struct imap_cmd *cmd, struct search_ctx *ctx,
    struct store_error *err)
{
	struct imap_view *view = cmd->s->view;
	struct store_changes ch;
	const char *const *kw;
	unsigned nkw;

	/*
	 * The current flags of every message, from the index: the mailbox
	 * snapshot is only as recent as the last sync, and this session's
	 * own STOREs since then must count.  Messages the view still shows
	 * but the index no longer has (expunges not yet reported) match
	 * nothing.
	 */
	if (store_mailbox_changes(view->box, 0, &cmd->arena, &ch, err) < 0)
		return -1;
	ctx->msgs = ch.changed;
	ctx->msg_count = ch.changed_count;
	kw = store_mailbox_keywords(view->box, &nkw);
	imap_search_prepare(ctx->search, view->count, view->count > 0 ?
	    view->uids[view->count - 1] : 0, kw, nkw);
	ctx->results = arena_alloc(&cmd->arena, ((size_t)view->count + 1) *
	    sizeof(*ctx->results));
	ctx->started = true;
	return 0;
}

static void
search_write_result(struct imap_cmd *cmd, struct search_ctx *ctx)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "* SEARCH");
	for (unsigned i = 0; i < ctx->result_count; i++) {
		buf_printf(&b, " %u", ctx->results[i]);
		if (b.len >= 65536) {
			imap_cmd_write(cmd, b.data, b.len);
			buf_reset(&b);
		}
	}
	buf_append_str(&b, "\r\n");
	imap_cmd_write(cmd, b.data, b.len);
	buf_free(&b);
}

static enum imap_run_result
search_run(struct imap_cmd *cmd)
{
	struct search_ctx *ctx = cmd->ctx;
	struct imap_view *view = cmd->s->view;
	struct store_error err;
	struct arena arena;
	uint64_t deadline = now_ms() + SEARCH_SLICE_MS;
	int ret = 0;

	if (!ctx->started && search_start(cmd, ctx, &err) < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	/* A fresh arena per slice: nothing but the command's arena outlives
	 * run(), so a session closed between slices leaks nothing. */
	arena_init(&arena);
	while (ctx->pos < view->count) {
		uint32_t uid = view->uids[ctx->pos];
		uint32_t seq = ++ctx->pos;

		while (ctx->msg_pos < ctx->msg_count &&
		    ctx->msgs[ctx->msg_pos].uid < uid)
			ctx->msg_pos++;
		if (ctx->msg_pos >= ctx->msg_count ||
		    ctx->msgs[ctx->msg_pos].uid != uid)
			continue;
		ret = search_one(cmd, ctx, &ctx->msgs[ctx->msg_pos], seq,
		    &arena, &err);
		arena_reset(&arena);
		if (ret < 0)
			break;
		if (ret > 0)
			ctx->results[ctx->result_count++] = cmd->uid ? uid :
			    seq;
		if (now_ms() >= deadline)
			break;
	}
	arena_free(&arena);
	if (ret < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if (ctx->pos < view->count)
		return IMAP_RUN_MORE;
	search_write_result(cmd, ctx);
	imap_cmd_result(cmd, "OK", NULL, "%s completed.",
	    cmd->uid ? "UID SEARCH" : "Search");
	return IMAP_RUN_DONE;
}

void
cmd_search(struct imap_cmd *cmd)
{
	struct search_ctx *ctx;
	const char *error;

	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	switch (imap_search_parse(cmd->args, cmd->nargs, &cmd->arena,
	    &ctx->search, &error)) {
	case IMAP_SEARCH_PARSE_OK:
		break;
	case IMAP_SEARCH_PARSE_BADCHARSET:
		imap_cmd_reply(cmd, "NO", IMAP_SEARCH_BADCHARSET, "%s", error);
		return;
	default:
		imap_cmd_bad(cmd, "%s", error);
		return;
	}
	cmd->ctx = ctx;
	imap_cmd_run(cmd, search_run);
}
