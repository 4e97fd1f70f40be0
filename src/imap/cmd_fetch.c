/*
 * FETCH and UID FETCH (RFC 3501 6.4.5, RFC 9051 6.4.5).
 *
 * The handler parses the items and resolves the sequence set on the loop
 * thread, answering BAD at once; fetch_run() then writes the responses on
 * the thread pool in slices of FETCH_SLICE_MSGS messages or about
 * FETCH_SLICE_BYTES of output, returning IMAP_RUN_MORE in between so that
 * a client reading slowly holds back the next slice.  A literal bigger
 * than a slice is streamed over several (the connection's output buffer
 * has a hard cap), and \Seen is set in small batches just ahead of the
 * output, so a client that stops reading has not had the range marked.
 *
 * Where the RFCs leave room we answer as Dovecot 2.3 does:
 *  - items come in request order, except that UID, FLAGS, INTERNALDATE and
 *    RFC822.SIZE come before the others (UID first for UID FETCH), and
 *    items other than BODY[...] are sent once however often they are asked;
 *  - when BODY[...], RFC822 or RFC822.TEXT set \Seen, FLAGS is added after
 *    those first items, and the update ending the command does not repeat
 *    it (imap_view_flags_sent());
 *  - sections are literals, even when empty: a section that does not exist
 *    (BODY[99], BODY[1.HEADER] of a text part) is {0};
 *  - bare LF goes out as CRLF and NUL as 0x80; <start.len> counts the bytes
 *    as sent, <start> alone means up to the end, and <start.0> is accepted.
 *  - a message whose file another session expunged is left out of the
 *    answer (Dovecot sends NIL placeholders instead), and the command ends
 *    "OK [EXPUNGEISSUED] Some messages were already expunged." (RFC 5530),
 *    as Dovecot's does; FETCH sends no EXPUNGE (RFC 9051 7.5.1).
 *
 * ENVELOPE, BODYSTRUCTURE, BODY and RFC822.SIZE are kept in the store's
 * cache as the exact text sent, so that they cost no parse next time.
 * FLAGS and INTERNALDATE come from the view's snapshot and the index.
 */
#include "imap/commands.h"

#include "core/xmalloc.h"
#include "imap/msgload.h"
#include "imap/view.h"
#include "mime/bodystructure.h"
#include "mime/envelope.h"
#include "mime/message.h"
#include "mime/section.h"
#include "store/store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Messages per slice when items need the file or the cache; items from
 * the index alone (UID, FLAGS, INTERNALDATE) are limited by bytes only. */
#define FETCH_SLICE_MSGS 500
#define FETCH_SLICE_BYTES (256 * 1024)
/* Bigger literals are streamed over several slices. */
#define FETCH_LITERAL_INLINE FETCH_SLICE_BYTES
#define FETCH_LITERAL_RUN 65536
/* \Seen is set this many messages ahead of the output at most. */
#define FETCH_SEEN_BATCH 64
#define FETCH_PARTIAL_MAX ((uint64_t)INT64_MAX)

enum fetch_kind {
	/* Sent first, in this group's request order. */
	FETCH_UID,
	FETCH_FLAGS,
	FETCH_INTERNALDATE,
	FETCH_RFC822_SIZE,
	FETCH_SEEN_FLAGS,	/* implicit FLAGS after setting \Seen */
	/* Then the others. */
	FETCH_ENVELOPE,
	FETCH_BODY,
	FETCH_BODYSTRUCTURE,
	FETCH_SECTION,		/* BODY[...], BODY.PEEK[...], RFC822* */
	FETCH_KIND_COUNT
};

struct fetch_item {
	enum fetch_kind kind;
	const char *name;		/* FETCH_SECTION: response name */
	struct mime_section section;
	uint64_t start, len;		/* <start.len>; len: UINT64_MAX */
	bool whole:1;			/* the entire message: no parse */
	bool partial:1;
	bool sets_seen:1;
};

/* A message's flags and date as this command sees them. */
struct fetch_state {
	uint32_t flags;
	uint64_t keywords;
	int64_t internal_date;
	bool found:1;		/* false: gone from the index */
	bool seen_set:1;	/* we set \Seen: send FLAGS */
};

/* One message being answered. */
struct fetch_msg {
	struct store_mailbox *box;
	uint32_t uid;
	struct imap_msg im;
	bool loaded:1;
};

/* A section's bytes on their way out, converted as they are sent. */
struct fetch_literal {
	const char *p;		/* raw bytes (mapped file or built) */
	size_t len;
	size_t i;		/* next raw byte */
	uint64_t pos;		/* converted offset of byte i */
	uint64_t from, to;	/* converted range to send */
};

/* Cached values of one field for the messages of a slice, read with one
 * index query; uids in [lo, hi] not among values are not cached. */
struct fetch_prefetch {
	struct store_cache_value *values;
	unsigned count, next;
	uint32_t lo, hi;
	bool valid:1;
};

/*
 * The command's state, in its arena.  Between slices nothing else is held,
 * except while a slice ended inside a literal too big to send at once: then
 * the message stays mapped (msg, msg_arena) until the literal is done, and
 * fetch_cleanup() releases it if the command is dropped meanwhile.
 */
struct fetch_ctx {
	struct fetch_item *items;
	unsigned item_count;
	uint32_t *uids;			/* resolved set, ascending */
	unsigned count;
	unsigned pos;			/* next message to send */
	unsigned seen_upto;		/* \Seen handled below this index */
	struct fetch_state *state;	/* per message, if need_state */
	/* The message being written. */
	struct fetch_msg msg;
	struct arena msg_arena;
	unsigned item;			/* its item being written */
	struct fetch_literal lit;	/* while streaming */
	bool first_item:1;		/* no item written yet */
	bool flushed:1;			/* part of it went to cmd->out */
	bool streaming:1;		/* paused inside lit */
	bool set_seen:1;		/* some item sets \Seen */
	bool need_state:1;		/* flags or dates are needed */
	bool skipped:1;			/* a message was expunged */
	bool index_only:1;		/* no item reads file or cache */
	bool header_only:1;		/* no item needs the body parsed */
	unsigned seq_hint;		/* index in the view of the next UID */
	/* FLAGS as last written, reused while they repeat. */
	uint32_t last_flags;
	uint64_t last_keywords;
	const char *const *last_kw;	/* the keyword table it used */
	unsigned last_nkw;
	char last_text[256];
	size_t last_len;		/* 0: nothing kept */
	/* During one fetch_run(): cached values read ahead, and values
	 * computed, written in one transaction as the run ends. */
	struct arena *slice_arena;
	struct fetch_prefetch pre[FETCH_KIND_COUNT];
	struct store_cache_item *puts;
	unsigned put_count, put_cap;
};

static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* ---- parsing ------------------------------------------------------------ */

/* RFC 9051 section 9: ATOM-CHAR, for writing header field names back. */
static bool
is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

static void
write_astring(struct buf *b, const char *s)
{
	bool atom = *s != '\0';

	for (const char *p = s; *p != '\0' && atom; p++)
		atom = is_atom_char((unsigned char)*p);
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

/* The section as Dovecot echoes it: upper case, field names as astrings
 * separated by one space. */
static void
write_section_spec(struct buf *b, const struct mime_section *sec)
{
	static const char *const texts[] = {
		[MIME_SECTION_BODY] = "",
		[MIME_SECTION_HEADER] = "HEADER",
		[MIME_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
		[MIME_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[MIME_SECTION_TEXT] = "TEXT",
		[MIME_SECTION_MIME] = "MIME",
	};

	for (unsigned i = 0; i < sec->nparts; i++)
		buf_printf(b, i == 0 ? "%u" : ".%u", sec->parts[i]);
	if (sec->text == MIME_SECTION_BODY)
		return;
	if (sec->nparts > 0)
		buf_append(b, ".", 1);
	buf_append_str(b, texts[sec->text]);
	if (sec->text != MIME_SECTION_HEADER_FIELDS &&
	    sec->text != MIME_SECTION_HEADER_FIELDS_NOT)
		return;
	buf_append(b, " (", 2);
	for (unsigned i = 0; i < sec->nfields; i++) {
		if (i > 0)
			buf_append(b, " ", 1);
		write_astring(b, sec->fields[i]);
	}
	buf_append(b, ")", 1);
}

static bool
parse_number(const char **pp, uint64_t *n_r)
{
	const char *p = *pp;
	uint64_t n = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (FETCH_PARTIAL_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*pp = p;
	*n_r = n;
	return true;
}

/* "<start.len>" or "<start>" (Dovecot: up to the end), then nothing. */
static bool
parse_partial(const char *p, struct fetch_item *it)
{
	if (*p == '\0')
		return true;
	if (*p++ != '<' || !parse_number(&p, &it->start))
		return false;
	it->len = UINT64_MAX;
	if (*p == '.') {
		p++;
		if (!parse_number(&p, &it->len))
			return false;
	}
	if (*p++ != '>' || *p != '\0')
		return false;
	it->partial = true;
	return true;
}

/* BODY[...]<...> or BODY.PEEK[...]<...>; s is upper-cased. */
static int
parse_section_item(struct arena *arena, const char *s, struct fetch_item *it,
    const char **error_r)
{
	const char *open = strchr(s, '['), *close;
	struct buf name;

	it->kind = FETCH_SECTION;
	it->sets_seen = strncmp(s, "BODY[", 5) == 0;
	close = strchr(open, ']');
	if (close == NULL) {
		*error_r = "Invalid BODY[..] section.";
		return -1;
	}
	if (mime_section_parse(arena, open + 1, (size_t)(close - open - 1),
	    &it->section, error_r) < 0) {
		*error_r = "Invalid BODY[..] section.";
		return -1;
	}
	if (!parse_partial(close + 1, it)) {
		*error_r = "Invalid BODY[..] partial.";
		return -1;
	}
	it->whole = it->section.nparts == 0 &&
	    it->section.text == MIME_SECTION_BODY;
	buf_init(&name, 0);
	buf_append_str(&name, "BODY[");
	write_section_spec(&name, &it->section);
	buf_append(&name, "]", 1);
	if (it->partial)
		buf_printf(&name, "<%" PRIu64 ">", it->start);
	it->name = arena_strdup(arena, name.data);
	buf_free(&name);
	return 0;
}

/* One item (not a macro): 0, or -1 with *error_r. */
static int
parse_item(struct arena *arena, const char *atom, struct fetch_item *it,
    const char **error_r)
{
	static const struct {
		const char *name;
		enum fetch_kind kind;
	} simple[] = {
		{ "UID", FETCH_UID },
		{ "FLAGS", FETCH_FLAGS },
		{ "INTERNALDATE", FETCH_INTERNALDATE },
		{ "RFC822.SIZE", FETCH_RFC822_SIZE },
		{ "ENVELOPE", FETCH_ENVELOPE },
		{ "BODY", FETCH_BODY },
		{ "BODYSTRUCTURE", FETCH_BODYSTRUCTURE },
	};
	char *s = arena_strdup(arena, atom);

	memset(it, 0, sizeof(*it));
	for (char *p = s; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	for (size_t i = 0; i < ARRAY_SIZE(simple); i++) {
		if (strcmp(s, simple[i].name) == 0) {
			it->kind = simple[i].kind;
			return 0;
		}
	}
	/* RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT =
	 * BODY[TEXT], under their own names (RFC 3501 6.4.5). */
	if (strcmp(s, "RFC822") == 0 || strcmp(s, "RFC822.HEADER") == 0 ||
	    strcmp(s, "RFC822.TEXT") == 0) {
		it->kind = FETCH_SECTION;
		it->name = s;
		if (strcmp(s, "RFC822") == 0) {
			it->whole = true;
			it->sets_seen = true;
		} else if (strcmp(s, "RFC822.TEXT") == 0) {
			it->section.text = MIME_SECTION_TEXT;
			it->sets_seen = true;
		} else {
			it->section.text = MIME_SECTION_HEADER;
		}
		return 0;
	}
	if (strncmp(s, "BODY[", 5) == 0 || strncmp(s, "BODY.PEEK[", 10) == 0)
		return parse_section_item(arena, s, it, error_r);
	*error_r = "Unknown FETCH item.";
	return -1;
}

/*
 * Parse the items argument (an atom, possibly a macro, or a list) into
 * ctx->items in the order they are sent.  0, or -1 with *error_r.
 */
static int
parse_items(struct imap_cmd *cmd, struct fetch_ctx *ctx,
    const struct imap_arg *arg, const char **error_r)
{
	static const char *const m_all[] = {
		"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
	};
	static const char *const m_full[] = {
		"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY",
	};
	const char *atom, *const *names;
	const struct imap_arg *list;
	struct fetch_item *parsed, *out;
	unsigned n, nout = 0;
	bool have[FETCH_KIND_COUNT] = { false };

	if (imap_arg_get_atom(arg, &atom)) {
		list = NULL;
		if (strcasecmp(atom, "ALL") == 0) {
			names = m_all;
			n = ARRAY_SIZE(m_all);
		} else if (strcasecmp(atom, "FAST") == 0) {
			names = m_all;
			n = 3;
		} else if (strcasecmp(atom, "FULL") == 0) {
			names = m_full;
			n = ARRAY_SIZE(m_full);
		} else {
			names = &atom;
			n = 1;
		}
	} else if (imap_arg_get_list(arg, &list, &n)) {
		names = NULL;
		if (n == 0) {
			*error_r = "FETCH list is empty.";
			return -1;
		}
	} else {
		*error_r = "Invalid arguments.";
		return -1;
	}

	parsed = arena_alloc(&cmd->arena, n * sizeof(*parsed));
	for (unsigned i = 0; i < n; i++) {
		if (list != NULL && !imap_arg_get_atom(&list[i], &atom)) {
			*error_r = "Invalid FETCH item.";
			return -1;
		}
		if (parse_item(&cmd->arena, list != NULL ? atom : names[i],
		    &parsed[i], error_r) < 0)
			return -1;
		/* No \Seen in a read-only mailbox (RFC 9051 6.3.3). */
		if (parsed[i].sets_seen && !cmd->s->view->readonly)
			ctx->set_seen = true;
	}

	/* UID, implicit FLAGS: at most n + 2 items. */
	out = arena_alloc(&cmd->arena, (n + 2) * sizeof(*out));
	if (cmd->uid) {
		out[nout++].kind = FETCH_UID;
		have[FETCH_UID] = true;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < n; i++) {
			enum fetch_kind k = parsed[i].kind;

			if ((k < FETCH_SEEN_FLAGS) != (pass == 0))
				continue;
			if (k != FETCH_SECTION && have[k])
				continue;
			have[k] = true;
			out[nout++] = parsed[i];
		}
		if (pass == 0 && ctx->set_seen && !have[FETCH_FLAGS])
			out[nout++].kind = FETCH_SEEN_FLAGS;
	}
	ctx->items = out;
	ctx->item_count = nout;
	ctx->need_state = ctx->set_seen || have[FETCH_FLAGS] ||
	    have[FETCH_INTERNALDATE];
	ctx->index_only = true;
	ctx->header_only = true;
	for (unsigned i = 0; i < nout; i++) {
		if (out[i].kind > FETCH_INTERNALDATE)
			ctx->index_only = false;
		if (out[i].kind == FETCH_BODY ||
		    out[i].kind == FETCH_BODYSTRUCTURE ||
		    out[i].kind == FETCH_SECTION)
			ctx->header_only = false;
	}
	return 0;
}

/* ---- running ------------------------------------------------------------ */

static void
state_set(struct fetch_state *st, const struct store_msg *m)
{
	st->flags = m->flags;
	st->keywords = m->keywords;
	st->internal_date = m->internal_date;
	st->found = true;
}

/*
 * Flags and dates of the messages, once per command: the snapshot of the
 * last sync, overlaid with what changed since (other sessions, messages the
 * view learnt of without a sync).  They are copied, since a sync (loading
 * a renamed file does one) replaces the snapshot.  Changes made by others
 * while the command runs are reported by the update that ends it.
 */
static int
load_state(struct imap_cmd *cmd, struct fetch_ctx *ctx,
    struct store_mailbox *box, struct store_error *err)
{
	const struct store_msg *snap, *m;
	struct store_changes ch;
	struct arena tmp;
	unsigned snap_count;
	uint64_t since = 0;

	ctx->state = arena_alloc(&cmd->arena, (ctx->count + 1) *
	    sizeof(*ctx->state));
	snap = store_mailbox_messages(box, &snap_count);
	for (unsigned i = 0; i < snap_count; i++)
		if (snap[i].modseq > since)
			since = snap[i].modseq;
	arena_init(&tmp);
	if (store_mailbox_changes(box, since, &tmp, &ch, err) < 0) {
		arena_free(&tmp);
		return -1;
	}
	/* All three lists ascend by UID: walk them together. */
	for (unsigned i = 0, c = 0, k = 0; i < ctx->count; i++) {
		uint32_t uid = ctx->uids[i];

		while (c < ch.changed_count && ch.changed[c].uid < uid)
			c++;
		while (k < snap_count && snap[k].uid < uid)
			k++;
		m = NULL;
		if (c < ch.changed_count && ch.changed[c].uid == uid)
			m = &ch.changed[c];
		else if (k < snap_count && snap[k].uid == uid)
			m = &snap[k];
		if (m != NULL)
			state_set(&ctx->state[i], m);
	}
	arena_free(&tmp);
	return 0;
}

/*
 * Set \Seen (RFC 9051 6.4.5: BODY[], RFC822, RFC822.TEXT) on the next
 * FETCH_SEEN_BATCH messages that lack it, in one store transaction, a
 * little ahead of the output so that a client that stops reading has not
 * had the whole range marked.  They get FLAGS in their response, which
 * the update ending the command then does not repeat.
 */
static int
set_seen(struct imap_view *v, struct fetch_ctx *ctx, struct arena *arena,
    struct store_error *err)
{
	static const struct store_flag_update upd = {
		.mode = STORE_MODIFY_ADD,
		.flags = STORE_F_SEEN,
	};
	unsigned start = ctx->seen_upto, end, n = 0, j = start;
	struct store_update_result res;
	uint32_t *uids;

	end = ctx->count - start > FETCH_SEEN_BATCH ?
	    start + FETCH_SEEN_BATCH : ctx->count;
	ctx->seen_upto = end;
	uids = arena_alloc(arena, (end - start) * sizeof(*uids));
	for (unsigned i = start; i < end; i++) {
		const struct fetch_state *st = &ctx->state[i];

		if (st->found && (st->flags & STORE_F_SEEN) == 0)
			uids[n++] = ctx->uids[i];
	}
	if (n == 0)
		return 0;
	if (store_mailbox_update_flags(v->box, uids, n, &upd, arena, &res,
	    err) < 0)
		return -1;
	/* Both lists ascend by UID. */
	for (unsigned k = 0; k < res.changed_count; k++) {
		while (j < end && ctx->uids[j] < res.changed[k].uid)
			j++;
		if (j == end)
			break;
		if (ctx->uids[j] == res.changed[k].uid) {
			state_set(&ctx->state[j], &res.changed[k]);
			ctx->state[j].seen_set = true;
		}
	}
	if (res.changed_count > 0)
		imap_view_flags_sent(v, res.changed[0].modseq);
	return 0;
}

static int
msg_load(struct fetch_msg *fm, struct arena *arena, struct store_error *err)
{
	if (fm->loaded)
		return 0;
	if (imap_msg_load(fm->box, fm->uid, arena, &fm->im, err) < 0)
		return -1;
	fm->loaded = true;
	return 0;
}

static size_t
count_bare_lf(const char *p, size_t len)
{
	const char *q = p, *end;
	size_t n = 0;

	if (len == 0)
		return 0;	/* p may be NULL (an empty file) */
	end = p + len;
	while (q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		if (q == p || q[-1] != '\r')
			n++;
		q++;
	}
	return n;
}

static const struct {
	const char *item, *field;
} cached_names[] = {
	[FETCH_RFC822_SIZE] = { "RFC822.SIZE ", "vsize" },
	[FETCH_ENVELOPE] = { "ENVELOPE ", "envelope" },
	[FETCH_BODY] = { "BODY ", "body" },
	[FETCH_BODYSTRUCTURE] = { "BODYSTRUCTURE ", "bodystructure" },
};

static bool
kind_is_cached(enum fetch_kind kind)
{
	return kind == FETCH_RFC822_SIZE || kind == FETCH_ENVELOPE ||
	    kind == FETCH_BODY || kind == FETCH_BODYSTRUCTURE;
}

/*
 * Read the cached values of the next FETCH_SLICE_MSGS messages, one query
 * per cached item instead of one per message and item.  Only for a dense
 * run of UIDs: the query reads every UID in between.  Failures only cost
 * the queries one by one.
 */
static void
prefetch_slice(struct fetch_ctx *ctx, struct store_mailbox *box)
{
	unsigned end = ctx->count - ctx->pos > FETCH_SLICE_MSGS ?
	    ctx->pos + FETCH_SLICE_MSGS : ctx->count;
	uint32_t lo, hi;
	struct store_error err;

	memset(ctx->pre, 0, sizeof(ctx->pre));
	if (ctx->pos >= end)
		return;
	lo = ctx->uids[ctx->pos];
	hi = ctx->uids[end - 1];
	if ((uint64_t)(hi - lo) + 1 > 4 * (uint64_t)(end - ctx->pos))
		return;
	for (unsigned i = 0; i < ctx->item_count; i++) {
		enum fetch_kind k = ctx->items[i].kind;
		struct fetch_prefetch *pf = &ctx->pre[k];

		if (!kind_is_cached(k) || pf->valid)
			continue;
		if (store_cache_get_range(box, lo, hi, cached_names[k].field,
		    ctx->slice_arena, &pf->values, &pf->count, &err) < 0)
			continue;
		pf->lo = lo;
		pf->hi = hi;
		pf->valid = true;
	}
}

/* The cached value from the prefetch: true if it answers for uid. */
static bool
prefetched(struct fetch_prefetch *pf, uint32_t uid, const void **data_r,
    size_t *len_r, bool *found_r)
{
	if (!pf->valid || uid < pf->lo || uid > pf->hi)
		return false;
	while (pf->next < pf->count && pf->values[pf->next].uid < uid)
		pf->next++;
	*found_r = pf->next < pf->count && pf->values[pf->next].uid == uid;
	if (*found_r) {
		*data_r = pf->values[pf->next].data;
		*len_r = pf->values[pf->next].len;
	}
	return true;
}

/* Keep a computed value for the write at the end of the run. */
static void
cache_later(struct fetch_ctx *ctx, uint32_t uid, const char *field,
    const struct buf *b)
{
	struct store_cache_item *it;
	char *copy = arena_alloc(ctx->slice_arena, b->len + 1);

	if (b->len > 0)
		memcpy(copy, b->data, b->len);
	if (ctx->put_count == ctx->put_cap) {
		ctx->put_cap = ctx->put_cap == 0 ? 64 : ctx->put_cap * 2;
		ctx->puts = xrealloc(ctx->puts,
		    ctx->put_cap * sizeof(*ctx->puts));
	}
	it = &ctx->puts[ctx->put_count++];
	it->uid = uid;
	it->field = field;
	it->data = copy;
	it->len = b->len;
}

/*
 * ENVELOPE, BODY, BODYSTRUCTURE or RFC822.SIZE (the virtual size, every
 * bare LF counted as CRLF): from the cache, else computed and cached.
 * Cache failures only cost a parse.
 */
static int
write_cached(struct fetch_ctx *ctx, struct fetch_msg *fm, struct arena *arena,
    enum fetch_kind kind, struct buf *out, struct store_error *err)
{
	const char *field = cached_names[kind].field;
	struct store_error cerr;
	struct mime_message *msg;
	struct buf b;
	const void *cdata;
	void *data;
	size_t len;
	bool found = false;

	buf_append_str(out, cached_names[kind].item);
	if (prefetched(&ctx->pre[kind], fm->uid, &cdata, &len, &found)) {
		if (found) {
			buf_append(out, cdata, len);
			return 0;
		}
	} else if (store_cache_get(fm->box, fm->uid, field, arena, &data,
	    &len, &found, &cerr) == 0 && found) {
		buf_append(out, data, len);
		return 0;
	}
	if (msg_load(fm, arena, err) < 0)
		return -1;
	buf_init(&b, 0);
	if (kind == FETCH_RFC822_SIZE) {
		buf_printf(&b, "%zu", fm->im.size +
		    count_bare_lf(fm->im.data, fm->im.size));
	} else {
		/* ENVELOPE reads the top-level header only; when nothing
		 * else of the message needs its body, the body is not
		 * parsed. */
		msg = kind == FETCH_ENVELOPE && ctx->header_only ?
		    imap_msg_parse_header(&fm->im) : imap_msg_parse(&fm->im);
		if (kind == FETCH_ENVELOPE)
			mime_envelope_write(&b, msg, msg->root);
		else
			mime_bodystructure_write(&b, msg, msg->root,
			    kind == FETCH_BODYSTRUCTURE);
	}
	cache_later(ctx, fm->uid, field, &b);
	buf_append(out, b.data, b.len);
	buf_free(&b);
	return 0;
}

static void
lit_emit(struct fetch_literal *l, struct buf *out, const char *p, size_t n)
{
	uint64_t s = l->pos, t = l->pos + n;

	if (t > l->from && s < l->to) {
		uint64_t a = s < l->from ? l->from - s : 0;
		uint64_t b = t > l->to ? l->to - s : n;

		buf_append(out, p + a, (size_t)(b - a));
	}
	l->pos = t;
}

/*
 * Append the next converted bytes of l to out, as Dovecot sends them: LF
 * without CR before it (within the section) becomes CRLF, NUL becomes 0x80;
 * the range counts the converted bytes (RFC 9051 6.4.5 <partial>).  Stops
 * once about max bytes were appended.  True when l is complete.
 */
static bool
lit_write(struct fetch_literal *l, struct buf *out, size_t max)
{
	size_t start = out->len;

	while (l->i < l->len && l->pos < l->to) {
		const char *p = l->p;
		size_t i = l->i, j;

		if (out->len - start >= max)
			return false;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
			lit_emit(l, out, "\r\n", 2);
			l->i++;
			continue;
		}
		if (p[i] == '\0') {
			lit_emit(l, out, "\x80", 1);
			l->i++;
			continue;
		}
		for (j = i + 1; j < l->len && j - i < FETCH_LITERAL_RUN &&
		    p[j] != '\0' && (p[j] != '\n' || p[j - 1] == '\r'); j++)
			;
		lit_emit(l, out, p + i, j - i);
		l->i = j;
	}
	return true;
}

/*
 * Write "NAME {n}\r\n" for a section item and prepare ctx->lit with its
 * bytes (an empty literal if the section does not exist).
 */
static int
section_begin(struct fetch_ctx *ctx, const struct fetch_item *it,
    struct buf *out, struct store_error *err)
{
	struct fetch_msg *fm = &ctx->msg;
	struct fetch_literal *l = &ctx->lit;
	struct mime_section_data d;
	struct mime_message *msg;
	uint64_t total;

	if (msg_load(fm, &ctx->msg_arena, err) < 0)
		return -1;
	memset(l, 0, sizeof(*l));
	l->p = "";
	if (it->whole) {
		if (fm->im.data != NULL)
			l->p = fm->im.data;
		l->len = fm->im.size;
	} else {
		msg = imap_msg_parse(&fm->im);
		if (mime_section_get(msg, &it->section, &d)) {
			l->p = d.built != NULL ? d.built : msg->data + d.offset;
			l->len = d.len;
		}
	}
	total = l->len + count_bare_lf(l->p, l->len);
	l->to = total;
	if (it->partial) {
		l->from = it->start < total ? it->start : total;
		if (total - l->from > it->len)
			l->to = l->from + it->len;
	}
	buf_append_str(out, it->name);
	buf_printf(out, " {%" PRIu64 "}\r\n", l->to - l->from);
	return 0;
}

/* Most messages share a few flag sets: the text of the last one is kept
 * and copied while it repeats. */
static void
write_flags(struct fetch_ctx *ctx, struct buf *out, struct store_mailbox *box,
    const struct fetch_state *st)
{
	unsigned nkw;
	const char *const *kw = store_mailbox_keywords(box, &nkw);
	size_t start = out->len;

	if (ctx->last_len > 0 && ctx->last_flags == st->flags &&
	    ctx->last_keywords == st->keywords && ctx->last_kw == kw &&
	    ctx->last_nkw == nkw) {
		buf_append(out, ctx->last_text, ctx->last_len);
		return;
	}
	buf_append_str(out, "FLAGS ");
	imap_flags_write(out, st->flags, st->keywords, kw, nkw);
	ctx->last_len = 0;
	if (out->len - start < sizeof(ctx->last_text)) {
		ctx->last_len = out->len - start;
		memcpy(ctx->last_text, out->data + start, ctx->last_len);
		ctx->last_flags = st->flags;
		ctx->last_keywords = st->keywords;
		ctx->last_kw = kw;
		ctx->last_nkw = nkw;
	}
}

/* "dd-Mon-yyyy hh:mm:ss +zzzz" in the server's time zone, as Dovecot. */
static void
write_date(struct buf *out, int64_t when)
{
	time_t t = (time_t)when;
	struct tm tm;
	long off;

	if (localtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	off = tm.tm_gmtoff / 60;
	buf_printf(out, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d "
	    "%c%02ld%02ld\"", tm.tm_mday, month_names[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

static size_t
slice_room(const struct imap_cmd *cmd)
{
	return cmd->out.len < FETCH_SLICE_BYTES ?
	    FETCH_SLICE_BYTES - cmd->out.len : 0;
}

static void
message_end(struct fetch_ctx *ctx)
{
	imap_msg_unload(&ctx->msg.im);
	memset(&ctx->msg, 0, sizeof(ctx->msg));
	arena_reset(&ctx->msg_arena);
	ctx->streaming = false;
}

/*
 * Write the items of message ctx->pos from ctx->item on: into b, which goes
 * to cmd->out at the end, or before a literal too big to hold, which is
 * then streamed into cmd->out.  Returns 0 when the message is done (or
 * left out because its file is gone: ctx->skipped), 1 when the slice is
 * full in the middle of a literal (call again in the next slice), or -1
 * with *err.
 */
static int
message_write(struct imap_cmd *cmd, struct fetch_ctx *ctx, struct buf *b,
    struct store_error *err)
{
	struct imap_view *v = cmd->s->view;
	const struct fetch_state *st = ctx->state != NULL ?
	    &ctx->state[ctx->pos] : NULL;
	struct fetch_msg *fm = &ctx->msg;
	int ret = 0;

	for (; ctx->item < ctx->item_count && ret == 0; ctx->item++) {
		const struct fetch_item *it = &ctx->items[ctx->item];

		if (ctx->streaming) {
			if (!lit_write(&ctx->lit, &cmd->out, slice_room(cmd)))
				return 1;
			ctx->streaming = false;
			continue;
		}
		if (it->kind == FETCH_SEEN_FLAGS && !st->seen_set)
			continue;
		if (!ctx->first_item)
			buf_append(b, " ", 1);
		ctx->first_item = false;
		switch (it->kind) {
		case FETCH_UID:
			buf_append(b, "UID ", 4);
			buf_append_u64(b, fm->uid);
			break;
		case FETCH_FLAGS:
		case FETCH_SEEN_FLAGS:
			write_flags(ctx, b, v->box, st);
			break;
		case FETCH_INTERNALDATE:
			write_date(b, st->internal_date);
			break;
		case FETCH_RFC822_SIZE:
		case FETCH_ENVELOPE:
		case FETCH_BODY:
		case FETCH_BODYSTRUCTURE:
			ret = write_cached(ctx, fm, &ctx->msg_arena,
			    it->kind, b, err);
			break;
		case FETCH_SECTION:
			ret = section_begin(ctx, it, b, err);
			if (ret < 0)
				break;
			if (ctx->lit.to - ctx->lit.from <=
			    FETCH_LITERAL_INLINE) {
				lit_write(&ctx->lit, b, SIZE_MAX);
				break;
			}
			/* The file is mapped now, so nothing of this message
			 * can fail any more: send what we have and stream the
			 * literal, over several slices if need be. */
			imap_cmd_write(cmd, b->data, b->len);
			buf_reset(b);
			ctx->flushed = true;
			ctx->streaming = true;
			if (!lit_write(&ctx->lit, &cmd->out, slice_room(cmd)))
				return 1;
			ctx->streaming = false;
			break;
		case FETCH_KIND_COUNT:
			break;
		}
	}
	if (ret < 0) {
		message_end(ctx);
		if (err->code != STORE_ERR_EXPUNGED || ctx->flushed)
			return -1;
		/* Expunged by another session after our last sync. */
		ctx->skipped = true;
		return 0;
	}
	buf_append(b, ")\r\n", 3);
	imap_cmd_write(cmd, b->data, b->len);
	message_end(ctx);
	return 0;
}

/* The sequence number of message ctx->pos: the UIDs ascend, so it is
 * usually the one after the last. */
static uint32_t
message_seq(const struct imap_view *v, struct fetch_ctx *ctx)
{
	uint32_t uid = ctx->uids[ctx->pos], seq;

	if (ctx->seq_hint < v->count && v->uids[ctx->seq_hint] == uid)
		seq = ctx->seq_hint + 1;
	else
		seq = imap_view_seq(v, uid);
	ctx->seq_hint = seq;
	return seq;
}

/* Start message ctx->pos; as message_write(). */
static int
message_start(struct imap_cmd *cmd, struct fetch_ctx *ctx, struct buf *b,
    struct store_error *err)
{
	struct imap_view *v = cmd->s->view;

	if (ctx->need_state && !ctx->state[ctx->pos].found) {
		ctx->skipped = true;
		return 0;
	}
	memset(&ctx->msg, 0, sizeof(ctx->msg));
	ctx->msg.box = v->box;
	ctx->msg.uid = ctx->uids[ctx->pos];
	ctx->item = 0;
	ctx->first_item = true;
	ctx->flushed = false;
	ctx->streaming = false;
	buf_reset(b);
	buf_append(b, "* ", 2);
	buf_append_u64(b, message_seq(v, ctx));
	buf_append(b, " FETCH (", 8);
	return message_write(cmd, ctx, b, err);
}

/* The command is freed: release a message kept between slices. */
static void
fetch_cleanup(struct imap_cmd *cmd)
{
	struct fetch_ctx *ctx = cmd->ctx;

	if (ctx == NULL)
		return;
	imap_msg_unload(&ctx->msg.im);
	arena_free(&ctx->msg_arena);
	free(ctx->puts);
	ctx->puts = NULL;
	ctx->put_cap = 0;
}

static enum imap_run_result
fetch_run(struct imap_cmd *cmd)
{
	struct fetch_ctx *ctx = cmd->ctx;
	struct imap_view *v = cmd->s->view;
	struct arena arena, slice;
	struct store_error err, cerr;
	struct buf b;
	unsigned sent = 0;
	int ret = 0;

	if (ctx->need_state && ctx->state == NULL)
		ret = load_state(cmd, ctx, v->box, &err);
	arena_init(&arena);
	arena_init(&slice);
	ctx->slice_arena = &slice;
	if (ret == 0 && !ctx->index_only)
		prefetch_slice(ctx, v->box);
	buf_init(&b, 0);
	if (ret == 0 && ctx->streaming) {
		ret = message_write(cmd, ctx, &b, &err);
		if (ret == 0)
			ctx->pos++;
	}
	while (ret == 0 && ctx->pos < ctx->count &&
	    (sent < FETCH_SLICE_MSGS || ctx->index_only) &&
	    cmd->out.len < FETCH_SLICE_BYTES) {
		if (ctx->set_seen && ctx->pos >= ctx->seen_upto) {
			ret = set_seen(v, ctx, &arena, &err);
			arena_reset(&arena);
			if (ret < 0)
				break;
		}
		ret = message_start(cmd, ctx, &b, &err);
		if (ret == 0) {
			ctx->pos++;
			sent++;
		}
	}
	buf_free(&b);
	arena_free(&arena);
	/* Cache failures only cost a parse next time. */
	(void)store_cache_put_many(v->box, ctx->puts, ctx->put_count, &cerr);
	ctx->put_count = 0;
	memset(ctx->pre, 0, sizeof(ctx->pre));
	ctx->slice_arena = NULL;
	arena_free(&slice);
	if (ret < 0) {
		fetch_cleanup(cmd);
		imap_cmd_store_error(cmd, &err);
		return IMAP_RUN_DONE;
	}
	if (ret == 1)
		return IMAP_RUN_MORE;	/* in a literal: msg kept */
	arena_free(&ctx->msg_arena);
	if (ctx->pos < ctx->count)
		return IMAP_RUN_MORE;
	if (ctx->skipped)
		imap_cmd_result(cmd, "OK", "[EXPUNGEISSUED]",
		    "Some messages were already expunged.");
	else
		imap_cmd_result(cmd, "OK", NULL, "Fetch completed.");
	return IMAP_RUN_DONE;
}

void
cmd_fetch(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct fetch_ctx *ctx;
	const char *set, *error;

	if (cmd->nargs != 2 || !imap_arg_get_atom(&cmd->args[0], &set)) {
		imap_cmd_bad(cmd, "Invalid arguments.");
		return;
	}
	ctx = arena_alloc(&cmd->arena, sizeof(*ctx));
	if (parse_items(cmd, ctx, &cmd->args[1], &error) < 0 ||
	    imap_view_resolve(s->view, set, cmd->uid, &cmd->arena, &ctx->uids,
	    &ctx->count, &error) < 0) {
		imap_cmd_bad(cmd, "%s", error);
		return;
	}
	cmd->ctx = ctx;
	cmd->cleanup = fetch_cleanup;
	imap_cmd_run(cmd, fetch_run);
}
