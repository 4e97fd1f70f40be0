#include "imap/view.h"

#include "core/buf.h"
#include "core/xmalloc.h"
#include "imap/commands.h"
#include "imap/mutf7.h"
#include "imap/seqset.h"
#include "imap/server.h"
#include "imap/session.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Most ranges in one sequence set. */
#define VIEW_MAX_SET_RANGES 100000

static const struct {
	uint32_t flag;
	const char *name;
} system_flags[] = {
	{ STORE_F_ANSWERED, "\\Answered" },
	{ STORE_F_FLAGGED, "\\Flagged" },
	{ STORE_F_DELETED, "\\Deleted" },
	{ STORE_F_SEEN, "\\Seen" },
	{ STORE_F_DRAFT, "\\Draft" },
	{ STORE_F_RECENT, "\\Recent" },
};

void
imap_flags_write(struct buf *out, uint32_t flags, uint64_t keywords,
    const char *const *names, unsigned name_count)
{
	bool first = true;

	buf_append(out, "(", 1);
	for (size_t i = 0; i < ARRAY_SIZE(system_flags); i++) {
		if ((flags & system_flags[i].flag) == 0)
			continue;
		if (!first)
			buf_append(out, " ", 1);
		buf_append_str(out, system_flags[i].name);
		first = false;
	}
	for (unsigned i = 0; i < name_count && i < 64; i++) {
		if ((keywords & ((uint64_t)1 << i)) == 0)
			continue;
		if (!first)
			buf_append(out, " ", 1);
		buf_append_str(out, names[i]);
		first = false;
	}
	buf_append(out, ")", 1);
}

/* RFC 9051 section 9: flag-keyword is an atom. */
static bool
keyword_valid(const char *s)
{
	if (*s == '\0' || strlen(s) > STORE_KEYWORD_MAX_LEN)
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

int
imap_flags_parse(const struct imap_arg *list, unsigned count,
    struct arena *arena, uint32_t *flags_r, const char ***keywords_r,
    unsigned *keyword_count_r, const char **error_r)
{
	const char **kw = arena_alloc(arena, (count + 1) * sizeof(*kw));
	unsigned nkw = 0;

	*flags_r = 0;
	for (unsigned i = 0; i < count; i++) {
		const char *f;
		bool found = false;

		if (!imap_arg_get_atom(&list[i], &f)) {
			*error_r = "Invalid flag.";
			return -1;
		}
		if (f[0] == '\\') {
			for (size_t j = 0; j < ARRAY_SIZE(system_flags); j++) {
				if (system_flags[j].flag != STORE_F_RECENT &&
				    strcasecmp(f, system_flags[j].name) == 0) {
					*flags_r |= system_flags[j].flag;
					found = true;
				}
			}
			if (!found) {
				*error_r = "Invalid system flag.";
				return -1;
			}
			continue;
		}
		if (!keyword_valid(f)) {
			*error_r = "Invalid keyword.";
			return -1;
		}
		kw[nkw++] = f;
	}
	*keywords_r = kw;
	*keyword_count_r = nkw;
	return 0;
}

void
imap_cmd_store_error(struct imap_cmd *cmd, const struct store_error *err)
{
	static const char *const codes[] = {
		[STORE_ERR_NONE] = NULL,
		[STORE_ERR_INTERNAL] = "[SERVERBUG]",
		[STORE_ERR_NOTFOUND] = "[NONEXISTENT]",
		[STORE_ERR_EXISTS] = "[ALREADYEXISTS]",
		[STORE_ERR_BADNAME] = "[CANNOT]",
		[STORE_ERR_NOTPOSSIBLE] = "[CANNOT]",
		[STORE_ERR_LIMIT] = "[LIMIT]",
		[STORE_ERR_NOSPACE] = "[OVERQUOTA]",
		[STORE_ERR_INUSE] = "[INUSE]",
		[STORE_ERR_EXPUNGED] = "[EXPUNGEISSUED]",
		[STORE_ERR_NOPERM] = "[NOPERM]",
		[STORE_ERR_UNAVAILABLE] = "[UNAVAILABLE]",
	};
	const char *code = (size_t)err->code < ARRAY_SIZE(codes) ?
	    codes[err->code] : "[SERVERBUG]";

	const char *text = err->text[0] != '\0' ? err->text : "Failed.";

	/* The store's text may quote a UTF-8 mailbox name; a client that
	 * has not enabled UTF8=ACCEPT must not receive 8-bit text. */
	for (const char *p = text; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80) {
			text = err->code == STORE_ERR_NOTFOUND ?
			    "Mailbox doesn't exist." : "Failed.";
			break;
		}
	}
	imap_cmd_result(cmd, "NO", code, "%s", text);
}

int
imap_mailbox_name(const char *arg, char *out, const char **error_r)
{
	struct buf b;
	struct store_error err;
	int ret;

	buf_init(&b, STORE_NAME_MAX * 4);
	if (!mutf7_decode(arg, &b)) {
		buf_free(&b);
		*error_r = "Invalid modified UTF-7 in mailbox name.";
		return -1;
	}
	ret = store_name_normalize(b.data != NULL ? b.data : "", out, &err);
	buf_free(&b);
	if (ret < 0) {
		static char msg[sizeof(err.text)];

		/* UNSAFE: thread-local would be cleaner; the text is constant
		 * per error kind, so sharing it across threads is benign. */
		memcpy(msg, err.text, sizeof(msg));
		*error_r = err.text[0] != '\0' ? msg : "Invalid mailbox name.";
		return -1;
	}
	return 0;
}

static void
view_add_uid(struct imap_view *v, uint32_t uid)
{
	if (v->count == v->cap) {
		v->cap = v->cap == 0 ? 64 : v->cap * 2;
		v->uids = xrealloc(v->uids, v->cap * sizeof(*v->uids));
		v->foreign = true;
	}
	v->uids[v->count++] = uid;
}

uint32_t
imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	unsigned lo = 0, hi = v->count;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (v->uids[mid] == uid)
			return mid + 1;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

bool
imap_view_is_pending_expunge(const struct imap_view *v, uint32_t uid)
{
	for (unsigned i = 0; i < v->pending_count; i++)
		if (v->pending[i] == uid)
			return true;
	return false;
}

void
imap_view_flags_sent(struct imap_view *v, uint64_t modseq)
{
	for (unsigned i = 0; i < v->sent_count; i++)
		if (v->sent_modseqs[i] == modseq)
			return;
	if (v->sent_count == v->sent_cap) {
		v->sent_cap = v->sent_cap == 0 ? 8 : v->sent_cap * 2;
		v->sent_modseqs = xrealloc(v->sent_modseqs,
		    v->sent_cap * sizeof(*v->sent_modseqs));
		v->foreign = true;
	}
	v->sent_modseqs[v->sent_count++] = modseq;
}

static bool
view_flags_were_sent(const struct imap_view *v, uint64_t modseq)
{
	for (unsigned i = 0; i < v->sent_count; i++)
		if (v->sent_modseqs[i] == modseq)
			return true;
	return false;
}

static void
write_flags_responses(struct imap_view *v, struct imap_cmd *cmd,
    const char *const *kw, unsigned nkw)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	    "\\Draft");
	for (unsigned i = 0; i < nkw; i++)
		buf_printf(&b, " %s", kw[i]);
	buf_append_str(&b, ")\r\n");
	if (v->readonly) {
		buf_append_str(&b, "* OK [PERMANENTFLAGS ()] Read-only "
		    "mailbox.\r\n");
	} else {
		buf_append_str(&b, "* OK [PERMANENTFLAGS (\\Answered "
		    "\\Flagged \\Deleted \\Seen \\Draft");
		for (unsigned i = 0; i < nkw; i++)
			buf_printf(&b, " %s", kw[i]);
		buf_append_str(&b, nkw < STORE_KEYWORDS_MAX ? " \\*)] " :
		    ")] ");
		buf_append_str(&b, "Flags permitted.\r\n");
	}
	imap_cmd_write(cmd, b.data, b.len);
	buf_free(&b);
	v->keyword_count = nkw;
}

int
imap_view_open(struct imap_session *s, const char *name, bool readonly,
    struct imap_cmd *cmd, struct imap_view **view_r, struct store_error *err)
{
	struct imap_view *v = xmalloc(sizeof(*v));
	struct store_mailbox_info info;
	const struct store_msg *msgs;
	const char *const *kw;
	unsigned count, nkw;
	uint32_t first_unseen = 0;

	if (store_mailbox_open(s->store, name,
	    readonly ? STORE_OPEN_READONLY : 0, &v->box, err) < 0) {
		free(v);
		return -1;
	}
	if (store_mailbox_sync(v->box, err) < 0) {
		store_mailbox_close(&v->box);
		free(v);
		return -1;
	}
	store_mailbox_get_info(v->box, &info);
	v->name = xstrdup(info.name);
	v->path = xstrdup(info.path);
	v->foreign = true;
	v->owner = s->ustore;
	v->unext = s->ustore->views;
	if (v->unext != NULL)
		v->unext->uprev = v;
	s->ustore->views = v;
	v->readonly = readonly || info.readonly;
	v->modseq = info.highestmodseq;
	v->uidvalidity = info.uidvalidity;
	msgs = store_mailbox_messages(v->box, &count);
	for (unsigned i = 0; i < count; i++) {
		view_add_uid(v, msgs[i].uid);
		if ((msgs[i].flags & STORE_F_RECENT) != 0)
			v->recent++;
		if (first_unseen == 0 && (msgs[i].flags & STORE_F_SEEN) == 0)
			first_unseen = i + 1;
		if (msgs[i].modseq > v->modseq)
			v->modseq = msgs[i].modseq;
	}
	kw = store_mailbox_keywords(v->box, &nkw);
	write_flags_responses(v, cmd, kw, nkw);
	imap_cmd_printf(cmd, "* %u EXISTS", v->count);
	imap_cmd_printf(cmd, "* %u RECENT", v->recent);
	if (first_unseen != 0)
		imap_cmd_printf(cmd, "* OK [UNSEEN %u] First unseen.",
		    first_unseen);
	imap_cmd_printf(cmd, "* OK [UIDVALIDITY %u] UIDs valid",
	    info.uidvalidity);
	imap_cmd_printf(cmd, "* OK [UIDNEXT %u] Predicted next UID",
	    info.uidnext);
	*view_r = v;
	return 0;
}

void
imap_view_free(struct imap_view **vp)
{
	struct imap_view *v = *vp;

	if (v == NULL)
		return;
	*vp = NULL;
	if (v->owner != NULL) {
		if (v->uprev != NULL)
			v->uprev->unext = v->unext;
		else
			v->owner->views = v->unext;
		if (v->unext != NULL)
			v->unext->uprev = v->uprev;
	}
	if (v->box != NULL)
		store_mailbox_close(&v->box);
	free(v->name);
	free(v->path);
	free(v->uids);
	free(v->pending);
	free(v->sent_modseqs);
	free(v);
}

static void *
copy_array(void *old, unsigned count, unsigned cap, size_t size)
{
	void *a = NULL;

	if (cap > 0) {
		a = xmalloc(cap * size);
		memcpy(a, old, count * size);
	}
	free(old);
	return a;
}

void
imap_view_rehome(struct imap_view **vp)
{
	struct imap_view *old = *vp, *v = xmalloc(sizeof(*v));

	*v = *old;
	v->name = xstrdup(old->name);
	v->path = xstrdup(old->path);
	free(old->name);
	free(old->path);
	v->uids = copy_array(old->uids, v->count, v->cap, sizeof(*v->uids));
	v->pending = copy_array(old->pending, v->pending_count,
	    v->pending_cap, sizeof(*v->pending));
	v->sent_modseqs = copy_array(old->sent_modseqs, v->sent_count,
	    v->sent_cap, sizeof(*v->sent_modseqs));
	if (v->uprev != NULL)
		v->uprev->unext = v;
	else if (v->owner != NULL)
		v->owner->views = v;
	if (v->unext != NULL)
		v->unext->uprev = v;
	v->foreign = false;
	free(old);
	*vp = v;
}

int
imap_view_reopen(struct imap_view *v, struct imap_session *s,
    struct imap_changes_cache *cache, struct store_error *err)
{
	unsigned flags = v->readonly ? STORE_OPEN_READONLY : 0;
	struct imap_reopened *r;

	if (v->box != NULL)
		return 0;
	if (cache != NULL) {
		for (r = cache->reopened; r != NULL; r = r->next) {
			if (r->store == s->store &&
			    strcmp(r->name, v->name) == 0) {
				store_mailbox_open_same(r->box, flags,
				    &v->box);
				return 0;
			}
		}
	}
	/* The messages this view had claimed as \Recent are not marked
	 * in FETCH after this; the RECENT count stays right. */
	if (store_mailbox_open(s->store, v->name, flags, &v->box, err) < 0)
		return -1;
	if (cache != NULL) {
		r = arena_alloc(&cache->arena, sizeof(*r));
		r->store = s->store;
		r->name = arena_strdup(&cache->arena, v->name);
		r->box = v->box;
		r->next = cache->reopened;
		cache->reopened = r;
	}
	return 0;
}

int
imap_view_sync(struct imap_view *v, struct imap_session *s,
    struct store_error *err)
{
	/* Changes the rescan finds are announced to other watchers by the
	 * store's change hook (imap_session_store()). */
	return store_mailbox_sync(v->box, err);
}

static void
view_add_pending(struct imap_view *v, uint32_t uid)
{
	unsigned i;

	if (imap_view_is_pending_expunge(v, uid))
		return;
	if (v->pending_count == v->pending_cap) {
		v->pending_cap = v->pending_cap == 0 ? 16 : v->pending_cap * 2;
		v->pending = xrealloc(v->pending,
		    v->pending_cap * sizeof(*v->pending));
		v->foreign = true;
	}
	for (i = v->pending_count; i > 0 && v->pending[i - 1] > uid; i--)
		v->pending[i] = v->pending[i - 1];
	v->pending[i] = uid;
	v->pending_count++;
}

/* Send the pending expunges, highest sequence number first, so that each
 * number is still valid when the client reads it. */
static void
view_flush_expunges(struct imap_view *v, struct imap_cmd *cmd)
{
	while (v->pending_count > 0) {
		uint32_t uid = v->pending[--v->pending_count];
		uint32_t seq = imap_view_seq(v, uid);

		if (seq == 0)
			continue;
		memmove(&v->uids[seq - 1], &v->uids[seq],
		    (v->count - seq) * sizeof(*v->uids));
		v->count--;
		imap_cmd_printf(cmd, "* %u EXPUNGE", seq);
	}
}

/* The changes since v->modseq, from the cache when another view of the
 * same mailbox at the same modseq asked already. */
static const struct imap_changes *
view_changes(struct imap_view *v, struct arena *arena,
    struct imap_changes_cache *cache, struct imap_changes *local)
{
	struct imap_changes *c = local;
	struct store_error err;
	const char *const *kw;
	unsigned nkw;

	if (cache != NULL) {
		for (c = cache->list; c != NULL; c = c->next) {
			if (c->since == v->modseq &&
			    c->uidvalidity == v->uidvalidity &&
			    strcmp(c->name, v->name) == 0) {
				cache->hits++;
				return c;
			}
		}
		arena = &cache->arena;
		c = arena_alloc(arena, sizeof(*c));
	}
	if (store_mailbox_changes(v->box, v->modseq, arena, &c->ch,
	    &err) < 0)
		return NULL;
	kw = store_mailbox_keywords(v->box, &nkw);
	c->keyword_count = nkw;
	c->keywords = kw;
	c->since = v->modseq;
	c->uidvalidity = v->uidvalidity;
	c->name = v->name;
	if (cache != NULL) {
		/* Kept beyond this box's next keyword reload. */
		char **copy = arena_alloc(arena, (nkw + 1) * sizeof(*copy));

		for (unsigned i = 0; i < nkw; i++)
			copy[i] = arena_strdup(arena, kw[i]);
		c->keywords = (const char *const *)copy;
		c->name = arena_strdup(arena, v->name);
		c->next = cache->list;
		cache->list = c;
		cache->queries++;
	}
	return c;
}

void
imap_changes_cache_init(struct imap_changes_cache *cache)
{
	memset(cache, 0, sizeof(*cache));
	arena_init(&cache->arena);
}

void
imap_changes_cache_reset(struct imap_changes_cache *cache)
{
	arena_reset(&cache->arena);
	cache->list = NULL;
	cache->reopened = NULL;
}

void
imap_changes_cache_free(struct imap_changes_cache *cache)
{
	arena_free(&cache->arena);
	cache->list = NULL;
	cache->reopened = NULL;
}

void
imap_view_update(struct imap_view *v, struct imap_cmd *cmd,
    bool allow_expunge)
{
	imap_view_update_cached(v, cmd, allow_expunge, NULL);
}

void
imap_view_update_cached(struct imap_view *v, struct imap_cmd *cmd,
    bool allow_expunge, struct imap_changes_cache *cache)
{
	struct imap_changes local;
	const struct imap_changes *c;
	const struct store_changes *ch;
	unsigned nkw, added = 0;
	const char *const *kw;
	uint32_t maxuid;
	struct buf b;

	c = view_changes(v, &cmd->arena, cache, &local);
	if (c == NULL)
		return;
	ch = &c->ch;
	kw = c->keywords;
	nkw = c->keyword_count;
	if (nkw != v->keyword_count)
		write_flags_responses(v, cmd, kw, nkw);
	for (unsigned i = 0; i < ch->expunged_count; i++)
		if (imap_view_seq(v, ch->expunged[i]) != 0)
			view_add_pending(v, ch->expunged[i]);
	if (allow_expunge)
		view_flush_expunges(v, cmd);

	maxuid = v->count > 0 ? v->uids[v->count - 1] : 0;
	buf_init(&b, 0);
	for (unsigned i = 0; i < ch->changed_count; i++) {
		const struct store_msg *m = &ch->changed[i];
		uint32_t flags, seq;

		/* \Recent is this view's own (the change set may have been
		 * read through another view's mailbox). */
		flags = m->flags & ~(uint32_t)STORE_F_RECENT;
		if (store_mailbox_is_recent(v->box, m->uid))
			flags |= STORE_F_RECENT;
		if (m->uid > maxuid) {
			view_add_uid(v, m->uid);
			maxuid = m->uid;
			if ((flags & STORE_F_RECENT) != 0)
				v->recent++;
			added++;
			continue;
		}
		seq = imap_view_seq(v, m->uid);
		if (seq == 0 || imap_view_is_pending_expunge(v, m->uid) ||
		    view_flags_were_sent(v, m->modseq))
			continue;
		buf_reset(&b);
		buf_printf(&b, "* %u FETCH (", seq);
		if (cmd->uid)
			buf_printf(&b, "UID %u ", m->uid);
		buf_append_str(&b, "FLAGS ");
		imap_flags_write(&b, flags, m->keywords, kw, nkw);
		buf_append_str(&b, ")\r\n");
		imap_cmd_write(cmd, b.data, b.len);
	}
	buf_free(&b);
	if (added > 0) {
		imap_cmd_printf(cmd, "* %u EXISTS", v->count);
		imap_cmd_printf(cmd, "* %u RECENT", v->recent);
	}
	if (ch->highestmodseq > v->modseq)
		v->modseq = ch->highestmodseq;
	v->sent_count = 0;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
imap_view_resolve(const struct imap_view *v, const char *str, bool uid,
    struct arena *arena, uint32_t **uids_r, unsigned *count_r,
    const char **error_r)
{
	struct imap_seqset set;
	uint32_t *out;
	unsigned n = 0;
	uint64_t total = 0;

	if (imap_seqset_parse(str, arena, VIEW_MAX_SET_RANGES, &set,
	    error_r) < 0)
		return -1;
	if (uid) {
		imap_seqset_resolve(&set, v->count > 0 ?
		    v->uids[v->count - 1] : 0);
		/* Never more results than messages. */
		out = arena_alloc(arena, (v->count + 1) * sizeof(*out));
		for (unsigned r = 0; r < set.count; r++) {
			/* First UID >= the range start, by binary search. */
			unsigned lo = 0, hi = v->count;

			while (lo < hi) {
				unsigned mid = lo + (hi - lo) / 2;

				if (v->uids[mid] < set.ranges[r].lo)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (unsigned i = lo; i < v->count &&
			    v->uids[i] <= set.ranges[r].hi; i++)
				out[n++] = v->uids[i];
		}
	} else {
		if (v->count == 0) {
			*error_r = "No messages.";
			return -1;
		}
		for (unsigned r = 0; r < set.count; r++) {
			if (set.ranges[r].hi != IMAP_SEQ_STAR &&
			    set.ranges[r].hi > v->count) {
				*error_r = "Invalid message sequence number.";
				return -1;
			}
			if (set.ranges[r].lo != IMAP_SEQ_STAR &&
			    set.ranges[r].lo > v->count) {
				*error_r = "Invalid message sequence number.";
				return -1;
			}
		}
		imap_seqset_resolve(&set, v->count);
		for (unsigned r = 0; r < set.count; r++)
			total += set.ranges[r].hi - set.ranges[r].lo + 1;
		out = arena_alloc(arena, (total + 1) * sizeof(*out));
		for (unsigned r = 0; r < set.count; r++)
			for (uint32_t q = set.ranges[r].lo;
			    q <= set.ranges[r].hi && q <= v->count; q++)
				out[n++] = v->uids[q - 1];
	}
	/* Ranges are merged and sorted, so out is ascending already; sort
	 * anyway in case of a sequence-set resolved out of order. */
	for (unsigned i = 1; i < n; i++) {
		if (out[i - 1] > out[i]) {
			qsort(out, n, sizeof(*out), uid_cmp);
			break;
		}
	}
	*uids_r = out;
	*count_r = n;
	return 0;
}
