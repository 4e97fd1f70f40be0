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
 *
 * Header keys and BODY use the search data of the index (store.h): header
 * values stored by earlier searches answer without the file, and the
 * full-text index rules out the messages whose text cannot hold a BODY
 * needle.  What a search had to read a file for (values of a searched
 * field, BODY text) is stored at the end of each slice, in one short write
 * transaction, so the next search of that field or text finds it.
 */
#include "imap/commands.h"

#include "imap/msgload.h"
#include "imap/search.h"
#include "imap/view.h"
#include "log/log.h"
#include "store/store.h"

#include <stdlib.h>
#include "core/xmalloc.h"
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
	bool save;			/* store what the index lacked */
	/* Search data to store at the end of the slice. */
	struct arena put_arena;		/* this slice's; freed at its end */
	struct store_search_item *puts;
	unsigned put_count, put_cap;
	size_t put_bytes;
	unsigned from_index, files_read;	/* for the debug log */
	uint32_t cur_uid;		/* message queue_put() is for */
};

/* Flush the search data early once a slice has gathered this much. */
#define SEARCH_PUT_MAX_BYTES (8u * 1024 * 1024)
/* Longest value or text stored; a message with a longer one is read by
 * every search. */
#define SEARCH_PUT_MAX_TEXT (4u * 1024 * 1024)

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

static void
queue_put(void *vctx, const struct imap_search_aux *aux, const void *data,
    size_t len)
{
	struct search_ctx *ctx = vctx;
	struct store_search_item *it;

	/* A huge text would cost more to index than to scan once more. */
	if (len > SEARCH_PUT_MAX_TEXT)
		return;
	if (ctx->put_count == ctx->put_cap) {
		ctx->put_cap = ctx->put_cap == 0 ? 256 : ctx->put_cap * 2;
		ctx->puts = xrealloc(ctx->puts, ctx->put_cap *
		    sizeof(*ctx->puts));
	}
	it = &ctx->puts[ctx->put_count++];
	it->uid = ctx->cur_uid;
	it->field = aux->field;
	it->data = arena_memdup(&ctx->put_arena, len > 0 ? data : "",
	    len > 0 ? len : 1);
	it->len = len;
	ctx->put_bytes += len;
}

/* Store the queued search data.  A failure (say, the write lock is busy)
 * costs the next search a file read, nothing more. */
static void
flush_puts(struct imap_cmd *cmd, struct search_ctx *ctx)
{
	struct store_error err;

	if (ctx->put_count > 0 && store_search_put(cmd->s->view->box,
	    ctx->puts, ctx->put_count, &err) < 0)
		log_warnx("search: storing search data failed: %s", err.text);
	ctx->put_count = 0;
	ctx->put_cap = 0;
	ctx->put_bytes = 0;
	free(ctx->puts);
	ctx->puts = NULL;
	arena_free(&ctx->put_arena);
}

/* Load the index data each aux can use.  Failures leave it unloaded: the
 * files answer instead. */
static void
load_aux(struct search_ctx *ctx, struct store_mailbox *box,
    struct arena *arena)
{
	struct store_error err;
	uint32_t *indexed = NULL;
	unsigned indexed_count = 0;
	bool have_indexed = false;

	for (struct imap_search_aux *a = imap_search_aux_list(ctx->search);
	    a != NULL; a = a->next) {
		if (a->kind == IMAP_SEARCH_AUX_HEADER) {
			struct store_search_value *vals;

			if (store_search_header_list(box, a->field, arena,
			    &vals, &a->value_count, &err) < 0)
				continue;
			a->values = vals;
			a->loaded = true;
			continue;
		}
		if (!have_indexed) {
			if (store_search_text_indexed(box, arena, &indexed,
			    &indexed_count, &err) < 0)
				continue;
			have_indexed = true;
		}
		if (indexed_count > 0) {
			uint32_t *cand;

			if (store_search_text_candidates(box, a->needle,
			    a->len, arena, &cand, &a->candidate_count,
			    &a->usable, &err) < 0)
				continue;
			a->candidates = cand;
		}
		a->indexed = indexed;
		a->indexed_count = indexed_count;
		a->loaded = true;
	}
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
		ctx->files_read++;
		if (ctx->save) {
			ctx->cur_uid = sm->uid;
			imap_search_aux_missing(ctx->search, &m, queue_put,
			    ctx);
		}
		imap_msg_unload(&msg);
	} else if (m.from_index) {
		ctx->from_index++;
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
	load_aux(ctx, view->box, &cmd->arena);
	ctx->save = imap_search_aux_list(ctx->search) != NULL;
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
	 * run(), so a session closed between slices leaks nothing (the
	 * search data queued in a slice is stored at its end). */
	arena_init(&arena);
	arena_init(&ctx->put_arena);
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
		if (now_ms() >= deadline ||
		    ctx->put_bytes >= SEARCH_PUT_MAX_BYTES)
			break;
	}
	arena_free(&arena);
	flush_puts(cmd, ctx);
	if (ret < 0) {
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if (ctx->pos < view->count)
		return IMAP_RUN_MORE;
	log_debug("search: %u messages, %u answered from the index,"
	    " %u files read", view->count, ctx->from_index, ctx->files_read);
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
