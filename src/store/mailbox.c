/*
 * Open mailboxes: disk resync, snapshots, flag changes, expunge, copy,
 * append, cache.  Every mutation follows the same order, which is what
 * makes a SIGKILL at any point safe:
 *
 *	1. BEGIN IMMEDIATE (the per-user write lock; UIDs are allocated
 *	   under it, so two processes never hand out the same UID);
 *	2. raise the herald-uidlist reservations above the UIDs and modseq
 *	   about to be used (atomic file write) -- a later rebuild never
 *	   goes below them;
 *	3. file operations: rename tmp/ -> cur/ with ",U=uid" in the name,
 *	   rename for flags, unlink for expunge, then fsync cur/; a sync
 *	   adopting files in cur/ under their own names appends their UIDs
 *	   to herald-uidmap (fsynced) instead of renaming them;
 *	4. index rows, then COMMIT.
 *
 * A crash between 3 and 4 leaves files the index does not know: the next
 * sync adopts a ",U=" (or herald-uidmap) UID in [uidnext, uid_reserved)
 * (the one that was being allocated), notices unlinked files as expunges
 * and renamed ones as flag changes.  Message data is fsynced in tmp/ before step 1, so a
 * message is on disk before any UID refers to it.
 */
#include "store/store_private.h"
#include "store/maildir/maildir.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "log/log.h"
#include "mime/message.h"
#include "mime/search.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How far herald-uidlist runs ahead, so it is rewritten only every
 * UID_RESERVE appends or MODSEQ_RESERVE changes. */
#define UID_RESERVE 128
#define MODSEQ_RESERVE 1024
#define UID_MAX_USABLE 0xfffff000u
/* Larger messages get their search text from the first BODY search that
 * reads them, not at append: delivery memory stays small. */
#define APPEND_SEARCH_TEXT_MAX (1024 * 1024)

struct store_append_item {
	char *base;		/* in tmp/ */
	uint64_t size;
	uint32_t flags;
	int64_t date;
	char **keywords;
	unsigned keyword_count;
	/* Search data computed before the lock (field NULL: the BODY
	 * text); data malloc'd, uid set at commit. */
	struct store_search_item *search;
	unsigned search_count;
};

struct store_append {
	struct store_mailbox *box;
	struct store_append_item *items;
	unsigned count, cap;
};

/* ---- helpers ----------------------------------------------------------- */

static struct store_index *
box_index(struct store_mailbox *box)
{
	return box->user->index;
}

static char *
cur_path(struct store_mailbox *box, const char *name)
{
	return xasprintf("%s/cur/%s", box->path, name);
}

static int
reload_row(struct store_mailbox *box, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	struct store_index_mailbox mb;
	bool found;

	if (idx->v->mailbox_get(idx, NULL, box->mb.id, &mb, &found, err) < 0)
		return -1;
	if (!found)
		return store_error_set(err, STORE_ERR_NOTFOUND,
		    "Mailbox has been deleted");
	if (strcmp(mb.name, box->mb.name) != 0) {
		/* Renamed by another session: follow the folder. */
		free(box->path);
		box->path = store_user_folder_path(box->user, mb.name);
	}
	box->mb = mb;
	return 0;
}

static int
fsync_cur(struct store_mailbox *box, struct store_error *err)
{
	char *p = xasprintf("%s/cur", box->path);
	int ret = 0;

	if (maildir_fsync_dir(p, box->user->fsync) < 0)
		ret = store_error_errno(err, errno, "fsync(%s)", p);
	free(p);
	return ret;
}

int
store_mailbox_reserve(struct store_mailbox *box, uint32_t uid_end,
    uint64_t modseq, struct store_error *err)
{
	struct maildir_uidlist ul;

	if (uid_end <= box->mb.uid_reserved &&
	    modseq <= box->mb.modseq_reserved)
		return 0;
	if (uid_end >= UID_MAX_USABLE)
		return store_error_set(err, STORE_ERR_LIMIT,
		    "Mailbox has run out of UIDs");
	ul.uidvalidity = box->mb.uidvalidity;
	ul.uid_reserved = uid_end > box->mb.uid_reserved ?
	    uid_end + UID_RESERVE : box->mb.uid_reserved;
	ul.modseq_reserved = modseq > box->mb.modseq_reserved ?
	    modseq + MODSEQ_RESERVE : box->mb.modseq_reserved;
	ul.special_use = box->mb.special_use;
	if (maildir_uidlist_write(box->path, &ul, box->user->fsync, err) < 0)
		return -1;
	box->mb.uid_reserved = ul.uid_reserved;
	box->mb.modseq_reserved = ul.modseq_reserved;
	return 0;
}

static int
load_keywords(struct store_mailbox *box, struct store_error *err)
{
	arena_reset(&box->kw_arena);
	box->keywords = NULL;
	box->keyword_count = 0;
	return box_index(box)->v->keyword_list(box_index(box), box->mb.id,
	    &box->kw_arena, &box->keywords, &box->keyword_count, err);
}

/* RFC 3501 flag-keyword = atom: no atom-specials, not a \system flag. */
static bool
keyword_valid(const char *kw)
{
	size_t n = strlen(kw);

	if (n == 0 || n > STORE_KEYWORD_MAX_LEN || kw[0] == '\\')
		return false;
	for (const char *p = kw; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* Bits for keyword names, creating missing ones if create.  Locked. */
static int
keyword_mask(struct store_mailbox *box, const char *const *names,
    unsigned count, bool create, uint64_t *mask_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	uint64_t mask = 0;

	if (count > 0 && load_keywords(box, err) < 0)
		return -1;
	for (unsigned i = 0; i < count; i++) {
		unsigned bit;

		if (!keyword_valid(names[i]))
			return store_error_set(err, STORE_ERR_BADNAME,
			    "Invalid keyword");
		for (bit = 0; bit < box->keyword_count; bit++)
			if (strcasecmp(box->keywords[bit], names[i]) == 0)
				break;
		if (bit == box->keyword_count) {
			if (!create)
				continue;
			if (bit >= STORE_KEYWORDS_MAX)
				return store_error_set(err, STORE_ERR_LIMIT,
				    "Too many keywords in this mailbox");
			if (idx->v->keyword_insert(idx, box->mb.id, bit,
			    names[i], err) < 0)
				return -1;
			box->keywords[bit] = arena_strdup(&box->kw_arena,
			    names[i]);
			box->keyword_count++;
		}
		mask |= (uint64_t)1 << bit;
	}
	*mask_r = mask;
	return 0;
}

static bool
range_contains(const struct store_mailbox *box, uint32_t uid)
{
	for (unsigned i = 0; i < box->recent_count; i++)
		if (uid >= box->recent[i].lo && uid <= box->recent[i].hi)
			return true;
	return false;
}

static void
mark_recent(struct store_mailbox *box, struct store_msg *msgs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		msgs[i].flags &= STORE_F_SYSTEM_MASK;
		if (range_contains(box, msgs[i].uid))
			msgs[i].flags |= STORE_F_RECENT;
	}
}

/* ---- open / close ------------------------------------------------------ */

int
store_mailbox_open(struct store_user *user, const char *name,
    unsigned flags, struct store_mailbox **box_r, struct store_error *err)
{
	struct store_index *idx = user->index;
	char norm[STORE_NAME_MAX + 1];
	struct store_mailbox *box;
	struct store_index_mailbox mb;
	bool found;

	if (store_name_normalize(name, norm, err) < 0)
		return -1;
	if (idx->v->mailbox_get(idx, norm, 0, &mb, &found, err) < 0)
		return -1;
	if (!found) {
		/* Maybe another program just made the folder. */
		if (store_user_sync_folders(user, err) < 0 ||
		    idx->v->mailbox_get(idx, norm, 0, &mb, &found, err) < 0)
			return -1;
		if (!found)
			return store_error_set(err, STORE_ERR_NOTFOUND,
			    "Mailbox doesn't exist: %s", norm);
	}
	box = xmalloc(sizeof(*box));
	box->user = user;
	box->mb = mb;
	box->path = store_user_folder_path(user, mb.name);
	box->readonly = (flags & STORE_OPEN_READONLY) != 0;
	arena_init(&box->snap_arena);
	arena_init(&box->kw_arena);
	user->open_boxes++;
	*box_r = box;
	return 0;
}

void
store_mailbox_open_same(struct store_mailbox *from, unsigned flags,
    struct store_mailbox **box_r)
{
	struct store_mailbox *box = xmalloc(sizeof(*box));

	box->user = from->user;
	box->mb = from->mb;
	box->path = xstrdup(from->path);
	box->readonly = (flags & STORE_OPEN_READONLY) != 0;
	arena_init(&box->snap_arena);
	arena_init(&box->kw_arena);
	from->user->open_boxes++;
	*box_r = box;
}

void
store_mailbox_close(struct store_mailbox **boxp)
{
	struct store_mailbox *box = *boxp;

	if (box == NULL)
		return;
	*boxp = NULL;
	ASSERT(box->user->open_boxes > 0);
	box->user->open_boxes--;
	arena_free(&box->snap_arena);
	arena_free(&box->kw_arena);
	free(box->recent);
	free(box->path);
	free(box);
}

void
store_mailbox_get_info(struct store_mailbox *box,
    struct store_mailbox_info *info_r)
{
	info_r->name = box->mb.name;
	info_r->uidvalidity = box->mb.uidvalidity;
	info_r->uidnext = box->mb.uidnext;
	info_r->highestmodseq = box->mb.highestmodseq;
	info_r->attrs = box->mb.special_use;
	info_r->readonly = box->readonly;
	info_r->path = box->path;
}

const struct store_msg *
store_mailbox_messages(struct store_mailbox *box, unsigned *count_r)
{
	*count_r = box->msg_count;
	return box->msgs;
}

bool
store_mailbox_is_recent(struct store_mailbox *box, uint32_t uid)
{
	return range_contains(box, uid);
}

const char *const *
store_mailbox_keywords(struct store_mailbox *box, unsigned *count_r)
{
	*count_r = box->keyword_count;
	return (const char *const *)box->keywords;
}

/* ---- resync with the folder -------------------------------------------- */

struct unknown_file {
	const char *name;
	const char *final;	/* name once adopted; NULL: gone */
	bool in_new;
	bool keep_name;		/* in cur/ without ",U=": not renamed */
	int64_t mtime;
	uint64_t size;
	uint32_t name_uid;	/* ",U=" or herald-uidmap, or 0 */
	uint32_t map_uid;	/* herald-uidmap's, or 0 */
	uint32_t uid;		/* assigned */
};

/*
 * Rows by BASE (the name up to ':'), in an open-addressing hash table: a
 * sync matches every file of a 100,000-message folder against the index.
 * The table and the names are far bigger than the CPU caches and every
 * lookup lands somewhere random, so lookups go in batches that prefetch
 * the slots, then the names, before touching them.
 */
struct base_slot {
	const char *name;	/* the row's file name; NULL: empty */
	uint32_t tag;		/* high half of the BASE's hash */
	uint32_t row;
};

struct base_table {
	struct base_slot *slots;
	uint32_t mask;
};

#define BASE_BATCH 16

static uint64_t
base_hash(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static void
base_table_init(struct base_table *t, const struct store_msg *msgs,
    unsigned n, struct arena *arena)
{
	uint32_t size = 16;

	while (size < 2 * (uint64_t)n)
		size *= 2;
	t->slots = arena_alloc(arena, size * sizeof(*t->slots));
	t->mask = size - 1;
	for (unsigned i = 0; i < n; i++) {
		const char *f = msgs[i].filename;
		uint64_t h = base_hash(f, maildir_name_base_len(f));
		uint32_t k = (uint32_t)h & t->mask;

		while (t->slots[k].name != NULL)
			k = (k + 1) & t->mask;
		t->slots[k].name = f;
		t->slots[k].tag = (uint32_t)(h >> 32);
		t->slots[k].row = i;
	}
}

static bool
same_base(const char *a, const char *b, size_t bl)
{
	return strncmp(a, b, bl) == 0 && (b[bl] == '\0' || b[bl] == ':');
}

/* rows_r[i]: the row whose BASE is that of ents[i], or -1. */
static void
base_table_find_all(const struct base_table *t,
    const struct maildir_entry *ents, unsigned n, int32_t *rows_r)
{
	for (unsigned s = 0; s < n; s += BASE_BATCH) {
		unsigned e = n - s > BASE_BATCH ? s + BASE_BATCH : n;
		uint32_t k[BASE_BATCH], tag[BASE_BATCH], bl[BASE_BATCH];

		for (unsigned j = s; j < e; j++) {
			const char *name = ents[j].name;
			uint64_t h;

			bl[j - s] = (uint32_t)maildir_name_base_len(name);
			h = base_hash(name, bl[j - s]);
			k[j - s] = (uint32_t)h & t->mask;
			tag[j - s] = (uint32_t)(h >> 32);
			__builtin_prefetch(&t->slots[k[j - s]]);
		}
		/* The first slot with the right tag, almost always the row. */
		for (unsigned j = s; j < e; j++) {
			uint32_t q = k[j - s];

			while (t->slots[q].name != NULL &&
			    t->slots[q].tag != tag[j - s])
				q = (q + 1) & t->mask;
			k[j - s] = q;
			if (t->slots[q].name != NULL)
				__builtin_prefetch(t->slots[q].name);
		}
		for (unsigned j = s; j < e; j++) {
			uint32_t q = k[j - s];
			const struct base_slot *sl;

			rows_r[j] = -1;
			for (; (sl = &t->slots[q])->name != NULL;
			    q = (q + 1) & t->mask) {
				if (sl->tag == tag[j - s] &&
				    same_base(ents[j].name, sl->name,
				    bl[j - s])) {
					rows_r[j] = (int32_t)sl->row;
					break;
				}
			}
		}
	}
}

/* uid's row in msgs (ascending by UID), or NULL. */
static const struct store_msg *
msg_by_uid(const struct store_msg *msgs, unsigned n, uint32_t uid)
{
	unsigned lo = 0, hi = n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (msgs[mid].uid == uid)
			return &msgs[mid];
		if (msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
cmp_unknown_uid(const void *a, const void *b)
{
	const struct unknown_file *x = a, *y = b;

	if (x->name_uid != y->name_uid)
		return x->name_uid < y->name_uid ? -1 : 1;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Arrival order: mtime, then name (the name starts with the time). */
static int
cmp_unknown_arrival(const void *a, const void *b)
{
	const struct unknown_file *x = a, *y = b;

	if ((x->uid != 0) != (y->uid != 0))
		return x->uid != 0 ? -1 : 1;	/* adopted first */
	if (x->uid != 0)
		return x->uid < y->uid ? -1 : 1;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * The UID to write into a known file's new name: its own, unless the name
 * has no ",U=" field (a file adopted under its own name, whose UID is in
 * herald-uidmap), which stays without one.  BASE must not change: it is
 * what matches the file to its row after a crash before the commit.
 */
static uint32_t
name_uid_kept(const char *name, uint32_t uid)
{
	uint32_t u;

	return maildir_name_uid(name, &u) ? uid : 0;
}

/* A known file was found under name (maybe in new/): follow it. */
static int
follow_rename(struct store_mailbox *box, struct store_msg *m,
    const char *name, bool in_new, uint64_t modseq, bool *changed,
    struct arena *arena, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	uint32_t nf;

	if (in_new) {
		/* Only we move files new -> cur; give it a proper name. */
		char *to_name = maildir_name_build(name,
		    name_uid_kept(name, m->uid), maildir_name_flags(name));
		char *from = xasprintf("%s/new/%s", box->path, name);
		char *to = cur_path(box, to_name);
		int r = rename(from, to);

		free(from);
		free(to);
		if (r < 0) {
			free(to_name);
			return errno == ENOENT ? 0 :
			    store_error_errno(err, errno, "rename new->cur");
		}
		name = arena_strdup(arena, to_name);
		free(to_name);
	}
	if (strcmp(name, m->filename) == 0)
		return 0;
	/* Flags changed by another program (or us, before a crash). */
	nf = maildir_name_flags(name);
	m->filename = arena_strdup(arena, name);
	if (nf != (m->flags & STORE_F_SYSTEM_MASK)) {
		m->flags = nf;
		m->modseq = modseq;
		*changed = true;
	}
	return idx->v->msg_update(idx, box->mb.id, m, err);
}

/* stat() the unknown files (relative to their directory), drop the ones
 * gone meanwhile, and read the ",U=" fields. */
static int
unknown_stat(struct store_mailbox *box, struct unknown_file *unk,
    unsigned *count, struct store_error *err)
{
	static const char *const subs[] = { "cur", "new" };
	int dfd[2];
	unsigned n = 0;

	for (int d = 0; d < 2; d++) {
		char *p = xasprintf("%s/%s", box->path, subs[d]);

		dfd[d] = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(p);
		if (dfd[d] < 0 && errno != ENOENT) {
			int e = errno;

			if (d == 1)
				close(dfd[0]);
			return store_error_errno(err, e, "open %s",
			    box->path);
		}
	}
	for (unsigned i = 0; i < *count; i++) {
		struct stat st;
		int fd = dfd[unk[i].in_new ? 1 : 0];

		if (fd < 0 || fstatat(fd, unk[i].name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;	/* gone meanwhile */
		unk[n] = unk[i];
		unk[n].mtime = st.st_mtime;
		unk[n].size = (uint64_t)st.st_size;
		if (!maildir_name_uid(unk[n].name, &unk[n].name_uid)) {
			unk[n].name_uid = 0;
			unk[n].keep_name = !unk[n].in_new &&
			    strstr(unk[n].name, ",U=") == NULL;
		}
		n++;
	}
	for (int d = 0; d < 2; d++)
		if (dfd[d] >= 0)
			close(dfd[d]);
	*count = n;
	return 0;
}

/*
 * The UIDs herald-uidmap gives files kept under their own names (read
 * only when there are such files: after a lost index, or when files were
 * put into cur/ by another program).  The last line of a BASE counts.
 */
static int
uidmap_lookup(struct store_mailbox *box, struct unknown_file *unk,
    unsigned n, struct arena *arena, struct store_error *err)
{
	struct store_msg *rows;
	struct maildir_entry *ents;
	struct base_table bt;
	unsigned nrows = 0, nents = 0, lines = 0;
	int32_t *found;
	size_t len;
	char *data, *p;

	for (unsigned i = 0; i < n; i++)
		if (unk[i].keep_name)
			nents++;
	if (nents == 0)
		return 0;
	if (maildir_uidmap_read(box->path, &data, &len, err) < 0)
		return -1;
	if (data == NULL)
		return 0;
	for (p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) !=
	    NULL; p++)
		lines++;
	rows = arena_alloc(arena, (lines + 1) * sizeof(*rows));
	/* Complete lines only: a crash may have cut the last one.  Stored
	 * last line first, so that a BASE's last line is the one found. */
	for (p = data; p < data + len;) {
		char *nl = memchr(p, '\n', len - (size_t)(p - data));
		unsigned long long u;
		char *sp, *end;

		if (nl == NULL)
			break;
		*nl = '\0';
		errno = 0;
		u = strtoull(p, &end, 10);
		sp = end;
		if (errno == 0 && u > 0 && u <= UINT32_MAX && *sp == ' ' &&
		    sp[1] != '\0') {
			rows[lines - 1 - nrows].uid = (uint32_t)u;
			rows[lines - 1 - nrows].filename = arena_strdup(arena,
			    sp + 1);
			nrows++;
		}
		p = nl + 1;
	}
	/* Unparsable lines left holes at the front: close them. */
	memmove(rows, rows + (lines - nrows), nrows * sizeof(*rows));
	free(data);
	base_table_init(&bt, rows, nrows, arena);
	ents = arena_alloc(arena, (nents + 1) * sizeof(*ents));
	found = arena_alloc(arena, (nents + 1) * sizeof(*found));
	nents = 0;
	for (unsigned i = 0; i < n; i++)
		if (unk[i].keep_name)
			ents[nents++].name = unk[i].name;
	base_table_find_all(&bt, ents, nents, found);
	nents = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!unk[i].keep_name)
			continue;
		if (found[nents] >= 0) {
			unk[i].map_uid = rows[found[nents]].uid;
			unk[i].name_uid = unk[i].map_uid;
		}
		nents++;
	}
	return 0;
}

/*
 * A hash of what stat() says about new/ and cur/ (device, inode, size,
 * link count, mtime and ctime to the nanosecond), never 0.  Any file
 * created, renamed or removed in a directory moves its mtime and ctime.
 * *trusted_r is false when a change could still go unnoticed: a time
 * stamp less than STAMP_MARGIN seconds old may be shared by a change made
 * right after our stat() within the same clock tick (Dovecot's maildir
 * sync has the same rule).
 */
#define STAMP_MARGIN 2

static uint64_t
dir_stamp(struct store_mailbox *box, bool *trusted_r)
{
	static const char *const subs[] = { "new", "cur" };
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)box->mb.id;
	struct timespec now;

	*trusted_r = false;
	h = (h ^ box->mb.uidvalidity) * 0x100000001b3ull;
	if (clock_gettime(CLOCK_REALTIME, &now) < 0)
		return 0;
	*trusted_r = true;
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		char *p = xasprintf("%s/%s", box->path, subs[i]);
		struct stat st;
		uint64_t v[8];
		int r = stat(p, &st);

		free(p);
		if (r < 0) {
			*trusted_r = false;
			return 0;
		}
		v[0] = (uint64_t)st.st_dev;
		v[1] = (uint64_t)st.st_ino;
		v[2] = (uint64_t)st.st_size;
		v[3] = (uint64_t)st.st_nlink;
		v[4] = (uint64_t)st.st_mtim.tv_sec;
		v[5] = (uint64_t)st.st_mtim.tv_nsec;
		v[6] = (uint64_t)st.st_ctim.tv_sec;
		v[7] = (uint64_t)st.st_ctim.tv_nsec;
		h = base_hash((const char *)v, sizeof(v)) ^ (h * 31);
		if (st.st_mtim.tv_sec > now.tv_sec - STAMP_MARGIN ||
		    st.st_ctim.tv_sec > now.tv_sec - STAMP_MARGIN)
			*trusted_r = false;
	}
	return h != 0 ? h : 1;
}

/*
 * The sync proper, under the write lock (see store_mailbox_sync()).
 *
 * The rows are read into list_arena.  When the sync kept every row (it
 * may have followed renames), *msgs_r and *count_r are the rows as they
 * are now, so a SELECT need not read them again; otherwise *msgs_r is
 * NULL.
 *
 * Unless full, the folder is not read at all when new/ and cur/ look the
 * way they did at the last scan that found them settled (dir_stamp(),
 * kept in the meta table): nothing was created, renamed or removed there
 * since, by us or by anyone else, so the index matches the files.
 */
static int
sync_locked(struct store_mailbox *box, bool full, struct arena *list_arena,
    struct store_msg **msgs_r, unsigned *count_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	struct store_msg *msgs;
	struct base_table bt;
	struct maildir_entry *ents;
	int32_t *rows;
	struct unknown_file *unk = NULL;
	unsigned nmsgs, nents, nunk = 0;
	uint64_t modseq, stamp, old_stamp = 0;
	bool *seen, changed = false, missing = false, renamed = false;
	bool trusted, touched = false, kept_rows = true;
	uint32_t next_uid, limit, floor_uid, kept_max;
	char stamp_key[40];
	struct arena arena;
	int ret = -1;

	*msgs_r = NULL;
	*count_r = 0;
	if (reload_row(box, err) < 0)
		return -1;
	if (!box->tmp_cleaned) {
		maildir_tmp_clean(box->path);
		box->tmp_cleaned = true;
	}
	snprintf(stamp_key, sizeof(stamp_key), "maildir_stamp.%" PRId64,
	    box->mb.id);
	stamp = dir_stamp(box, &trusted);
	if (idx->v->meta_get(idx, stamp_key, &old_stamp, err) < 0)
		return -1;
	if (!full && box->mb.rebuild == STORE_REBUILD_NONE &&
	    old_stamp != 0 && old_stamp == stamp)
		return 0;
	arena_init(&arena);
	modseq = box->mb.highestmodseq + 1;
	if (idx->v->msg_list(idx, box->mb.id, 0, list_arena, &msgs, &nmsgs,
	    err) < 0 ||
	    maildir_scan(box->path, &arena, &ents, &nents, err) < 0)
		goto out;
	base_table_init(&bt, msgs, nmsgs, &arena);
	seen = arena_alloc(&arena, nmsgs + 1);
	unk = xcalloc(nents + 1, sizeof(*unk));
	rows = arena_alloc(&arena, (nents + 1) * sizeof(*rows));
	base_table_find_all(&bt, ents, nents, rows);

	for (unsigned i = 0; i < nents; i++) {
		int32_t k = rows[i];

		if (ents[i].in_new)
			touched = true;	/* moved to cur/ */
		if (k < 0) {
			unk[nunk].name = ents[i].name;
			unk[nunk++].in_new = ents[i].in_new;
			continue;
		}
		if (seen[k])
			continue;	/* in new/ and cur/ during a move */
		seen[k] = true;
		if (follow_rename(box, &msgs[k], ents[i].name, ents[i].in_new,
		    modseq, &changed, list_arena, err) < 0)
			goto out;
	}
	for (unsigned i = 0; i < nmsgs; i++)
		if (!seen[i])
			missing = true;
	if (missing) {
		/*
		 * readdir() may miss a file that another program renames
		 * while we read (old name already gone, new name in a part
		 * of the directory we had passed).  Only what a second scan
		 * still misses is expunged.
		 */
		if (maildir_scan(box->path, &arena, &ents, &nents, err) < 0)
			goto out;
		rows = arena_alloc(&arena, (nents + 1) * sizeof(*rows));
		base_table_find_all(&bt, ents, nents, rows);
		for (unsigned i = 0; i < nents; i++) {
			int32_t k = rows[i];

			if (ents[i].in_new)
				touched = true;
			if (k < 0 || seen[k])
				continue;
			seen[k] = true;
			if (follow_rename(box, &msgs[k], ents[i].name,
			    ents[i].in_new, modseq, &changed, list_arena,
			    err) < 0)
				goto out;
		}
		for (unsigned i = 0; i < nmsgs; i++) {
			if (seen[i])
				continue;
			if (idx->v->msg_expunge(idx, box->mb.id, msgs[i].uid,
			    modseq, err) < 0)
				goto out;
			changed = true;
			kept_rows = false;
		}
	}

	/* Unknown files: stat, then decide which UIDs to keep. */
	if (nunk > 0 && unknown_stat(box, unk, &nunk, err) < 0)
		goto out;
	if (nunk > 0 && uidmap_lookup(box, unk, nunk, &arena, err) < 0)
		goto out;
	/*
	 * A UID from the name (",U=") or from herald-uidmap is kept when it
	 * cannot have been shown for another message: normally only in
	 * [uidnext, uid_reserved), which is a UID we were allocating when we
	 * crashed; after a lost index (rebuild) any UID below the
	 * reservation not used twice.
	 */
	floor_uid = box->mb.rebuild != STORE_REBUILD_NONE ? 1 :
	    box->mb.uidnext;
	limit = box->mb.rebuild == STORE_REBUILD_ANY ? 0x7fffffffu :
	    box->mb.uid_reserved;
	next_uid = box->mb.uidnext;
	kept_max = 0;
	/* Files with a UID to keep first, by UID (a UID named twice goes
	 * to the oldest file); the others need no order here. */
	{
		unsigned nkeep = 0;

		for (unsigned i = 0; i < nunk; i++) {
			if (unk[i].name_uid != 0) {
				struct unknown_file t = unk[nkeep];

				unk[nkeep++] = unk[i];
				unk[i] = t;
			}
		}
		if (nkeep > 1)
			qsort(unk, nkeep, sizeof(*unk), cmp_unknown_uid);
	}
	for (unsigned i = 0; i < nunk; i++) {
		uint32_t u = unk[i].name_uid;

		if (u == 0 || u < floor_uid || u >= limit ||
		    msg_by_uid(msgs, nmsgs, u) != NULL ||
		    (i > 0 && unk[i - 1].name_uid == u))
			continue;
		unk[i].uid = u;
		if (u >= next_uid)
			next_uid = u + 1;
		if (u > kept_max)
			kept_max = u;
	}
	if (nunk > 1)
		qsort(unk, nunk, sizeof(*unk), cmp_unknown_arrival);
	/* After a rebuild, files that kept their UID may have been shown
	 * to a client before: they are not \Recent.  Messages the index
	 * already holds (appended since the mailbox was indexed) and files
	 * that get new UIDs are. */
	if (box->mb.rebuild != STORE_REBUILD_NONE &&
	    box->mb.first_recent_uid <= kept_max)
		box->mb.first_recent_uid = kept_max + 1;
	for (unsigned i = 0; i < nunk; i++)
		if (unk[i].uid == 0)
			unk[i].uid = next_uid++;
	if (nunk > 0) {
		/* Reserve before any file carries the new UIDs. */
		if (store_mailbox_reserve(box, next_uid, modseq, err) < 0)
			goto out;
	}
	/*
	 * Files in new/ and names with a ",U=" field we do not keep are
	 * renamed into cur/ with ",U=uid".  A file in cur/ without the field
	 * keeps its name, and its UID goes to herald-uidmap instead: renaming
	 * 100,000 files of an imported folder took seconds.  Either way the
	 * UID is on disk before the index row (crash safety).
	 */
	{
		struct buf map;
		int r;

		buf_init(&map, 0);
		for (unsigned i = 0; i < nunk; i++) {
			char *to_name, *from, *to;

			r = 0;
			if (unk[i].keep_name) {
				unk[i].final = unk[i].name;
				if (unk[i].map_uid != unk[i].uid) {
					buf_append_u64(&map, unk[i].uid);
					buf_append(&map, " ", 1);
					buf_append(&map, unk[i].name,
					    maildir_name_base_len(
					    unk[i].name));
					buf_append(&map, "\n", 1);
				}
				continue;
			}
			to_name = maildir_name_build(unk[i].name, unk[i].uid,
			    maildir_name_flags(unk[i].name));
			from = xasprintf("%s/%s/%s", box->path,
			    unk[i].in_new ? "new" : "cur", unk[i].name);
			to = cur_path(box, to_name);
			if (strcmp(from, to) != 0)
				r = rename(from, to);
			free(from);
			free(to);
			if (r < 0) {
				free(to_name);
				if (errno == ENOENT)
					continue;	/* UID stays unused */
				store_error_errno(err, errno, "rename in %s",
				    box->path);
				buf_free(&map);
				goto out;
			}
			renamed = true;
			unk[i].final = arena_strdup(&arena, to_name);
			free(to_name);
		}
		r = map.len > 0 ? maildir_uidmap_append(box->path, map.data,
		    map.len, box->user->fsync, err) : 0;
		buf_free(&map);
		if (r < 0)
			goto out;
	}
	{
		struct store_msg *add = arena_alloc(&arena,
		    (nunk + 1) * sizeof(*add));
		unsigned nadd = 0;

		for (unsigned i = 0; i < nunk; i++) {
			struct store_msg *m = &add[nadd];

			if (unk[i].final == NULL)
				continue;
			m->uid = unk[i].uid;
			m->flags = maildir_name_flags(unk[i].name);
			m->internal_date = unk[i].mtime;
			m->size = unk[i].size;
			m->modseq = modseq;
			m->filename = unk[i].final;
			nadd++;
		}
		if (nadd > 0) {
			if (idx->v->msg_insert_many(idx, box->mb.id, add,
			    nadd, err) < 0)
				goto out;
			changed = true;
			kept_rows = false;
		}
	}
	if (renamed && fsync_cur(box, err) < 0)
		goto out;
	if (next_uid > box->mb.uidnext)
		box->mb.uidnext = next_uid;
	if (changed)
		box->mb.highestmodseq = modseq;
	box->mb.rebuild = STORE_REBUILD_NONE;
	if (store_mailbox_reserve(box, box->mb.uidnext,
	    box->mb.highestmodseq, err) < 0 ||
	    idx->v->mailbox_update(idx, &box->mb, err) < 0)
		goto out;
	/* What we renamed moved the directories' times: the next sync reads
	 * them again, as it does when they changed too recently to tell. */
	if (renamed || touched || !trusted)
		stamp = 0;
	if (stamp != old_stamp &&
	    idx->v->meta_set(idx, stamp_key, stamp, err) < 0)
		goto out;
	if (kept_rows) {
		*msgs_r = msgs;
		*count_r = nmsgs;
	}
	ret = 0;
out:
	free(unk);
	arena_free(&arena);
	return ret;
}

int
store_mailbox_sync_locked(struct store_mailbox *box, struct store_error *err)
{
	struct store_msg *msgs;
	struct arena arena;
	unsigned n;
	int ret;

	arena_init(&arena);
	ret = sync_locked(box, true, &arena, &msgs, &n, err);
	arena_free(&arena);
	return ret;
}

static void
claim_recent(struct store_mailbox *box)
{
	struct store_index_mailbox *mb = &box->mb;

	/*
	 * RFC 3501 section 2.3.2: \Recent belongs to the first session that
	 * sees a message.  UIDs at or above first_recent_uid have not been
	 * seen; this view takes them all, in the same write transaction that
	 * moves first_recent_uid to uidnext, so no other session can.
	 */
	if (mb->first_recent_uid >= mb->uidnext)
		return;
	if (box->recent_count > 0 &&
	    box->recent[box->recent_count - 1].hi + 1 == mb->first_recent_uid) {
		box->recent[box->recent_count - 1].hi = mb->uidnext - 1;
	} else {
		if (box->recent_count == box->recent_cap) {
			box->recent_cap = box->recent_cap == 0 ? 4 :
			    box->recent_cap * 2;
			box->recent = xrealloc(box->recent,
			    box->recent_cap * sizeof(*box->recent));
		}
		box->recent[box->recent_count].lo = mb->first_recent_uid;
		box->recent[box->recent_count++].hi = mb->uidnext - 1;
	}
	mb->first_recent_uid = mb->uidnext;
}

/* Run fn-like sync under the lock: begin, sync, (claim), commit. */
static int
sync_txn(struct store_mailbox *box, bool load, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	struct store_msg *msgs;
	struct arena rows;
	unsigned n;

	/* The rows the sync reads become the snapshot if it kept them all;
	 * the old snapshot stays until the new one is complete. */
	arena_init(&rows);
	if (idx->v->begin(idx, true, err) < 0)
		goto fail_rows;
	/* Without load, a file was missing: read the folder whatever it
	 * looks like. */
	if (sync_locked(box, !load, &rows, &msgs, &n, err) < 0)
		goto fail;
	if (!box->readonly) {
		claim_recent(box);
		if (idx->v->mailbox_update(idx, &box->mb, err) < 0)
			goto fail;
	}
	if (load) {
		if (msgs == NULL) {
			arena_reset(&rows);
			if (idx->v->msg_list(idx, box->mb.id, 0, &rows, &msgs,
			    &n, err) < 0)
				goto fail;
		}
		if (load_keywords(box, err) < 0)
			goto fail;
		mark_recent(box, msgs, n);
		arena_free(&box->snap_arena);
		box->snap_arena = rows;
		box->msgs = msgs;
		box->msg_count = n;
	} else {
		arena_free(&rows);
	}
	return idx->v->commit(idx, err);
fail:
	idx->v->rollback(idx);
fail_rows:
	arena_free(&rows);
	return -1;
}

/* Tell the user's change hook that box changed, if its modseq or uidnext
 * moved since (old_modseq, old_uidnext). */
static void
box_changed(struct store_mailbox *box, uint64_t old_modseq,
    uint32_t old_uidnext)
{
	struct store_user *user = box->user;

	if (user->change_hook != NULL &&
	    (box->mb.highestmodseq != old_modseq ||
	    box->mb.uidnext != old_uidnext))
		user->change_hook(user->change_ctx, box->mb.name);
}

int
store_mailbox_sync(struct store_mailbox *box, struct store_error *err)
{
	uint64_t modseq = box->mb.highestmodseq;
	uint32_t uidnext = box->mb.uidnext;
	int ret = sync_txn(box, true, err);

	/* A sync commits changes only when it found files that other
	 * programs added, renamed or removed. */
	if (ret == 0 && modseq != 0)
		box_changed(box, modseq, uidnext);
	return ret;
}

int
store_mailbox_changes(struct store_mailbox *box, uint64_t since_modseq,
    struct arena *arena, struct store_changes *ch_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);

	memset(ch_r, 0, sizeof(*ch_r));
	if (idx->v->begin(idx, false, err) < 0)
		return -1;
	if (reload_row(box, err) < 0 ||
	    idx->v->expunged_since(idx, box->mb.id, since_modseq, arena,
	    &ch_r->expunged, &ch_r->expunged_count, err) < 0 ||
	    idx->v->msg_list(idx, box->mb.id, since_modseq, arena,
	    &ch_r->changed, &ch_r->changed_count, err) < 0 ||
	    load_keywords(box, err) < 0) {
		idx->v->rollback(idx);
		return -1;
	}
	ch_r->uidnext = box->mb.uidnext;
	ch_r->highestmodseq = box->mb.highestmodseq;
	mark_recent(box, ch_r->changed, ch_r->changed_count);
	return idx->v->commit(idx, err);
}

int
store_mailbox_open_msg(struct store_mailbox *box, uint32_t uid, int *fd_r,
    struct store_error *err)
{
	struct store_index *idx = box_index(box);
	const struct store_msg *snap;
	struct arena arena;
	struct store_msg m;
	bool found;
	int ret = -1;

	/* The snapshot's name first: FETCH of a range would otherwise
	 * read the index once per message.  Names are unique, so a stale
	 * one opens nothing (ENOENT) rather than another message. */
	if ((snap = msg_by_uid(box->msgs, box->msg_count, uid)) != NULL) {
		char *p = cur_path(box, snap->filename);

		*fd_r = open(p, O_RDONLY | O_CLOEXEC);
		free(p);
		if (*fd_r >= 0)
			return 0;
		if (errno != ENOENT)
			return store_error_errno(err, errno, "open message");
	}
	arena_init(&arena);
	for (int attempt = 0; attempt < 2; attempt++) {
		char *p;

		if (idx->v->msg_get(idx, box->mb.id, uid, &arena, &m, &found,
		    err) < 0)
			goto out;
		if (!found)
			break;
		p = cur_path(box, m.filename);
		*fd_r = open(p, O_RDONLY | O_CLOEXEC);
		free(p);
		if (*fd_r >= 0) {
			ret = 0;
			goto out;
		}
		if (errno != ENOENT) {
			store_error_errno(err, errno, "open message");
			goto out;
		}
		/* Renamed or removed by another program: resync. */
		if (attempt == 0 && sync_txn(box, false, err) < 0)
			goto out;
	}
	store_error_set(err, STORE_ERR_EXPUNGED, "Message has been expunged");
out:
	arena_free(&arena);
	return ret;
}

/* ---- STORE ------------------------------------------------------------- */

static int
check_writable(struct store_mailbox *box, struct store_error *err)
{
	if (box->readonly)
		return store_error_set(err, STORE_ERR_NOTPOSSIBLE,
		    "Mailbox is read-only");
	return 0;
}

static int
store_mailbox_update_flags_impl(struct store_mailbox *box, const uint32_t *uids,
    unsigned count, const struct store_flag_update *upd, struct arena *arena,
    struct store_update_result *res, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	uint64_t kw = 0, modseq;
	uint32_t fl = upd->flags & STORE_F_SYSTEM_MASK;
	bool renamed = false;

	memset(res, 0, sizeof(*res));
	if (check_writable(box, err) < 0)
		return -1;
	res->changed = arena_alloc(arena, (count + 1) *
	    sizeof(*res->changed));
	res->modified = arena_alloc(arena, (count + 1) *
	    sizeof(*res->modified));
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (reload_row(box, err) < 0 ||
	    keyword_mask(box, upd->keywords, upd->keyword_count,
	    upd->mode != STORE_MODIFY_REMOVE, &kw, err) < 0)
		goto fail;
	modseq = box->mb.highestmodseq + 1;
	for (unsigned i = 0; i < count; i++) {
		struct store_msg m;
		uint32_t nf = 0;
		uint64_t nk = 0;
		bool found = false;
		int attempt;

		for (attempt = 0; attempt < 2; attempt++) {
			if (idx->v->msg_get(idx, box->mb.id, uids[i], arena,
			    &m, &found, err) < 0)
				goto fail;
			if (!found)
				break;
			if (upd->unchangedsince != 0 &&
			    m.modseq > upd->unchangedsince) {
				res->modified[res->modified_count++] = m.uid;
				found = false;
				break;
			}
			switch (upd->mode) {
			case STORE_MODIFY_ADD:
				nf = m.flags | fl;
				nk = m.keywords | kw;
				break;
			case STORE_MODIFY_REMOVE:
				nf = m.flags & ~fl;
				nk = m.keywords & ~kw;
				break;
			default:
				nf = fl;
				nk = kw;
				break;
			}
			if (nf == m.flags && nk == m.keywords) {
				found = false;
				break;
			}
			if (nf != m.flags) {
				char *name = maildir_name_build(m.filename,
				    name_uid_kept(m.filename, m.uid), nf);
				char *from = cur_path(box, m.filename);
				char *to = cur_path(box, name);
				int r = rename(from, to), e = errno;

				free(from);
				free(to);
				if (r < 0) {
					free(name);
					if (e != ENOENT) {
						store_error_errno(err, e,
						    "rename for flags");
						goto fail;
					}
					/* Renamed or removed meanwhile by
					 * another program: resync and retry
					 * once (the same modseq is fine). */
					if (store_mailbox_sync_locked(box,
					    err) < 0)
						goto fail;
					continue;
				}
				renamed = true;
				m.filename = arena_strdup(arena, name);
				free(name);
			}
			break;
		}
		if (attempt == 2 || !found)
			continue;
		m.flags = nf;
		m.keywords = nk;
		m.modseq = modseq;
		if (idx->v->msg_update(idx, box->mb.id, &m, err) < 0)
			goto fail;
		res->changed[res->changed_count++] = m;
	}
	if (renamed && fsync_cur(box, err) < 0)
		goto fail;
	if (res->changed_count > 0 || box->mb.highestmodseq >= modseq) {
		box->mb.highestmodseq = modseq;
		if (store_mailbox_reserve(box, box->mb.uidnext, modseq,
		    err) < 0 ||
		    idx->v->mailbox_update(idx, &box->mb, err) < 0)
			goto fail;
	}
	if (idx->v->commit(idx, err) < 0)
		return -1;
	mark_recent(box, res->changed, res->changed_count);
	res->highestmodseq = box->mb.highestmodseq;
	return 0;
fail:
	idx->v->rollback(idx);
	return -1;
}

/* ---- EXPUNGE ----------------------------------------------------------- */

static int
store_mailbox_expunge_impl(struct store_mailbox *box, const uint32_t *uids,
    unsigned count, struct arena *arena, uint32_t **expunged_r,
    unsigned *expunged_count_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);
	struct store_msg *all = NULL;
	unsigned nall = 0, n = 0, ncand;
	uint32_t *out;
	uint64_t modseq;

	*expunged_count_r = 0;
	*expunged_r = NULL;
	if (check_writable(box, err) < 0)
		return -1;
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (reload_row(box, err) < 0)
		goto fail;
	if (uids == NULL) {
		if (idx->v->msg_list(idx, box->mb.id, 0, arena, &all, &nall,
		    err) < 0)
			goto fail;
		ncand = nall;
	} else {
		ncand = count;
	}
	out = arena_alloc(arena, (ncand + 1) * sizeof(*out));
	modseq = box->mb.highestmodseq + 1;
	for (unsigned i = 0; i < ncand; i++) {
		uint32_t uid = uids == NULL ? all[i].uid : uids[i];

		for (int attempt = 0; attempt < 2; attempt++) {
			struct store_msg m;
			bool found;
			char *p;
			int r;

			if (idx->v->msg_get(idx, box->mb.id, uid, arena, &m,
			    &found, err) < 0)
				goto fail;
			if (!found || (m.flags & STORE_F_DELETED) == 0)
				break;
			/* Unlink before the commit: a crash in between
			 * leaves a row without a file, which the next sync
			 * expunges; the other order would resurrect the
			 * message under a new UID. */
			p = cur_path(box, m.filename);
			r = unlink(p);
			free(p);
			if (r < 0 && errno != ENOENT) {
				store_error_errno(err, errno, "unlink");
				goto fail;
			}
			if (r < 0) {
				if (attempt == 0 &&
				    store_mailbox_sync_locked(box, err) < 0)
					goto fail;
				continue;
			}
			if (idx->v->msg_expunge(idx, box->mb.id, uid, modseq,
			    err) < 0)
				goto fail;
			out[n++] = uid;
			break;
		}
	}
	if (n > 0 && fsync_cur(box, err) < 0)
		goto fail;
	if (n > 0 || box->mb.highestmodseq >= modseq) {
		box->mb.highestmodseq = modseq;
		if (store_mailbox_reserve(box, box->mb.uidnext, modseq,
		    err) < 0 ||
		    idx->v->mailbox_update(idx, &box->mb, err) < 0)
			goto fail;
	}
	if (idx->v->commit(idx, err) < 0)
		return -1;
	*expunged_r = out;
	*expunged_count_r = n;
	return 0;
fail:
	idx->v->rollback(idx);
	return -1;
}

/* ---- COPY / MOVE ------------------------------------------------------- */

/* Put a copy of src_path at dst_path: a hard link, or a real copy when
 * the file system refuses links (another device, no link support). */
static int
link_or_copy(struct store_mailbox *dst, const char *src_path,
    const char *dst_path, struct store_error *err)
{
	char *base, *tmp;
	uint64_t size;
	struct stat st;
	int fd, r;

	if (link(src_path, dst_path) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK &&
	    errno != ENOTSUP)
		return errno == ENOENT ? 1 :
		    store_error_errno(err, errno, "link");
	fd = open(src_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 :
		    store_error_errno(err, errno, "open for copy");
	if (fstat(fd, &st) < 0 ||
	    maildir_tmp_write(dst->path, fd, NULL, 0, st.st_mtime,
	    dst->user->fsync, &base, &size, err) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	tmp = xasprintf("%s/tmp/%s", dst->path, base);
	r = rename(tmp, dst_path);
	if (r < 0) {
		store_error_errno(err, errno, "rename copy");
		(void)unlink(tmp);
	}
	free(tmp);
	free(base);
	return r < 0 ? -1 : 0;
}

static int
store_mailbox_copy_impl(struct store_mailbox *src, const uint32_t *uids,
    unsigned count, struct store_mailbox *dst, bool move, struct arena *arena,
    struct store_uid_map *map, struct store_error *err)
{
	struct store_index *idx = box_index(dst);
	struct store_msg *msgs;
	uint64_t kwmap[STORE_KEYWORDS_MAX];
	uint64_t dst_modseq, src_modseq;
	unsigned n = 0;
	struct store_error scratch;
	bool same;
	char **created = NULL;
	unsigned ncreated = 0;

	ASSERT(src->user == dst->user);
	memset(map, 0, sizeof(*map));
	if (check_writable(dst, err) < 0 ||
	    (move && check_writable(src, err) < 0))
		return -1;
	map->src_uids = arena_alloc(arena, (count + 1) * sizeof(uint32_t));
	map->dst_uids = arena_alloc(arena, (count + 1) * sizeof(uint32_t));
	msgs = arena_alloc(arena, (count + 1) * sizeof(*msgs));
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (reload_row(src, err) < 0 || reload_row(dst, err) < 0)
		goto fail;
	same = src->mb.id == dst->mb.id;
	for (unsigned i = 0; i < count; i++) {
		bool found;

		if (idx->v->msg_get(idx, src->mb.id, uids[i], arena, &msgs[n],
		    &found, err) < 0)
			goto fail;
		if (found)
			n++;
	}
	/* Keyword bits are per mailbox: map them by name. */
	if (load_keywords(src, err) < 0)
		goto fail;
	{
		char **names = arena_alloc(arena,
		    (src->keyword_count + 1) * sizeof(*names));
		unsigned nk = src->keyword_count;

		for (unsigned k = 0; k < nk; k++)
			names[k] = arena_strdup(arena, src->keywords[k]);
		for (unsigned k = 0; k < nk; k++) {
			uint64_t used = 0;

			for (unsigned i = 0; i < n; i++)
				used |= msgs[i].keywords;
			kwmap[k] = 0;
			if ((used & ((uint64_t)1 << k)) != 0 &&
			    keyword_mask(dst, (const char *const *)&names[k],
			    1, true, &kwmap[k], err) < 0)
				goto fail;
		}
		for (unsigned i = 0; i < n; i++) {
			uint64_t m = 0;

			for (unsigned k = 0; k < nk; k++)
				if ((msgs[i].keywords & ((uint64_t)1 << k)) !=
				    0)
					m |= kwmap[k];
			msgs[i].keywords = m;
		}
	}
	dst_modseq = dst->mb.highestmodseq + 1;
	src_modseq = same ? dst_modseq : src->mb.highestmodseq + 1;
	map->uidvalidity = dst->mb.uidvalidity;
	if (n > 0 && store_mailbox_reserve(dst, dst->mb.uidnext + n,
	    dst_modseq, err) < 0)
		goto fail;
	created = xcalloc(n + 1, sizeof(*created));
	for (unsigned i = 0; i < n; i++) {
		struct store_msg *m = &msgs[i];
		uint32_t uid = dst->mb.uidnext;
		char *base = maildir_name_new_base();
		char *sized = xasprintf("%s,S=%" PRIu64, base, m->size);
		char *name = maildir_name_build(sized, uid, m->flags);
		char *from = cur_path(src, m->filename);
		char *to = cur_path(dst, name);
		int r;

		free(base);
		free(sized);
		if (move) {
			/* One rename: the message is never in both or in
			 * neither mailbox on disk (RFC 6851 atomicity). */
			r = rename(from, to) == 0 ? 0 : errno == ENOENT ? 1 :
			    store_error_errno(err, errno, "rename for move");
		} else {
			r = link_or_copy(dst, from, to, err);
		}
		free(from);
		if (r < 0) {
			free(to);
			free(name);
			goto fail;
		}
		if (r > 0) {	/* vanished meanwhile: skip it */
			free(to);
			free(name);
			continue;
		}
		created[ncreated++] = to;
		map->src_uids[map->count] = m->uid;
		map->dst_uids[map->count++] = uid;
		{
			struct store_msg nm = *m;

			nm.uid = uid;
			nm.modseq = dst_modseq;
			nm.filename = arena_strdup(arena, name);
			free(name);
			if (idx->v->msg_insert(idx, dst->mb.id, &nm, err) < 0 ||
			    idx->v->cache_copy(idx, src->mb.id, m->uid,
			    dst->mb.id, uid, err) < 0)
				goto fail;
		}
		if (move && idx->v->msg_expunge(idx, src->mb.id, m->uid,
		    src_modseq, err) < 0)
			goto fail;
		dst->mb.uidnext = uid + 1;
	}
	if (map->count > 0) {
		if (fsync_cur(dst, err) < 0 ||
		    (move && !same && fsync_cur(src, err) < 0))
			goto fail;
		dst->mb.highestmodseq = dst_modseq;
		if (move && !same) {
			src->mb.highestmodseq = src_modseq;
			if (store_mailbox_reserve(src, src->mb.uidnext,
			    src_modseq, err) < 0 ||
			    idx->v->mailbox_update(idx, &src->mb, err) < 0)
				goto fail;
		}
	}
	if (store_mailbox_reserve(dst, dst->mb.uidnext,
	    dst->mb.highestmodseq, err) < 0 ||
	    idx->v->mailbox_update(idx, &dst->mb, err) < 0 ||
	    idx->v->commit(idx, err) < 0)
		goto fail_files;
	if (same)
		src->mb = dst->mb;
	for (unsigned i = 0; i < ncreated; i++)
		free(created[i]);
	free(created);
	return 0;
fail:
	idx->v->rollback(idx);
fail_files:
	/* COPY said NO: remove the copies so the next sync does not adopt
	 * them.  A MOVE's renamed files are left; the next sync adopts
	 * them in the destination and expunges them from the source, so
	 * nothing is lost. */
	for (unsigned i = 0; i < ncreated; i++) {
		if (!move)
			(void)unlink(created[i]);
		free(created[i]);
	}
	free(created);
	(void)reload_row(dst, &scratch);
	memset(map, 0, sizeof(*map));
	return -1;
}

/* ---- APPEND ------------------------------------------------------------ */

struct store_append *
store_append_begin(struct store_mailbox *box)
{
	struct store_append *ctx = xmalloc(sizeof(*ctx));

	ctx->box = box;
	return ctx;
}

/*
 * The header fields whose search values are stored at delivery: those
 * clients search most (SUBJECT, HEADER Subject, FROM, TO, CC).  The ids
 * are the IMAP layer's (aux_field() in imap/search.c: "h:" HEADER, "s:"
 * SUBJECT, "a:" address keys, then the name in lower case); other fields
 * are stored by the first search that reads the files.
 */
static const struct {
	const char *field;
	enum mime_search_values kind;
	const char *name;
} append_search_fields[] = {
	{ "h:subject", MIME_SEARCH_VALUES_HEADER, "subject" },
	{ "s:subject", MIME_SEARCH_VALUES_SUBJECT, "subject" },
	{ "a:from", MIME_SEARCH_VALUES_ADDRESS, "from" },
	{ "a:to", MIME_SEARCH_VALUES_ADDRESS, "to" },
	{ "a:cc", MIME_SEARCH_VALUES_ADDRESS, "cc" },
};

static void
search_item_add(struct store_append_item *it, const char *field,
    const struct buf *b)
{
	struct store_search_item *si = &it->search[it->search_count++];
	char *copy = xmalloc(b->len + 1);

	if (b->len > 0)
		memcpy(copy, b->data, b->len);
	copy[b->len] = '\0';
	si->field = field;
	si->data = copy;
	si->len = b->len;
}

/*
 * The search data of a message just written to tmp/ (the BODY text and
 * the values of append_search_fields), computed here, outside the index
 * lock, and stored with the message at commit.  It is read back from the
 * file so that it covers exactly the bytes stored (LMTP's trace prefix
 * included), and computed by the functions SEARCH uses on the file, so the
 * answers are the same.  On failure there is none: SEARCH adds it later.
 */
static void
append_search_data(struct store_mailbox *box, struct store_append_item *it)
{
	char *path = xasprintf("%s/tmp/%s", box->path, it->base);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct arena arena;
	struct mime_message *msg;
	struct buf text;
	void *map = NULL;
	size_t len = (size_t)it->size;

	free(path);
	if (fd < 0)
		return;
	if (len > 0) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			close(fd);
			return;
		}
	}
	close(fd);
	arena_init(&arena);
	buf_init(&text, mime_search_text_cap(len));
	buf_append(&text, "", 0);
	msg = mime_message_parse(&arena, map != NULL ? map : "", len, NULL);
	mime_search_body(&text, msg);
	it->search = xcalloc(ARRAY_SIZE(append_search_fields) + 1,
	    sizeof(*it->search));
	search_item_add(it, NULL, &text);
	for (size_t i = 0; i < ARRAY_SIZE(append_search_fields); i++) {
		buf_reset(&text);
		text.max = 0;
		mime_search_header_values(&text, msg, &arena,
		    append_search_fields[i].kind, append_search_fields[i].name);
		search_item_add(it, append_search_fields[i].field, &text);
	}
	buf_free(&text);
	arena_free(&arena);
	if (map != NULL)
		munmap(map, len);
}

static int
append_add(struct store_append *ctx, int fd, const void *data, size_t len,
    const struct store_append_msg *msg, struct store_error *err)
{
	struct store_mailbox *box = ctx->box;
	struct store_append_item *it;
	int64_t date = msg->internal_date != 0 ? msg->internal_date :
	    (int64_t)time(NULL);

	if (check_writable(box, err) < 0)
		return -1;
	for (unsigned i = 0; i < msg->keyword_count; i++)
		if (!keyword_valid(msg->keywords[i]))
			return store_error_set(err, STORE_ERR_BADNAME,
			    "Invalid keyword");
	if (ctx->count == ctx->cap) {
		ctx->cap = ctx->cap == 0 ? 4 : ctx->cap * 2;
		ctx->items = xrealloc(ctx->items,
		    ctx->cap * sizeof(*ctx->items));
	}
	it = &ctx->items[ctx->count];
	memset(it, 0, sizeof(*it));
	if (fd >= 0) {
		data = msg->prefix;
		len = msg->prefix_len;
	}
	if (maildir_tmp_write(box->path, fd, data, len, date, box->user->fsync,
	    &it->base, &it->size, err) < 0)
		return -1;
	it->flags = msg->flags & STORE_F_SYSTEM_MASK;
	it->date = date;
	if (box->user->search_text_on_append &&
	    it->size <= APPEND_SEARCH_TEXT_MAX)
		append_search_data(box, it);
	it->keyword_count = msg->keyword_count;
	it->keywords = xcalloc(msg->keyword_count + 1, sizeof(char *));
	for (unsigned i = 0; i < msg->keyword_count; i++)
		it->keywords[i] = xstrdup(msg->keywords[i]);
	ctx->count++;
	return 0;
}

int
store_append_fd(struct store_append *ctx, int fd,
    const struct store_append_msg *msg, struct store_error *err)
{
	return append_add(ctx, fd, NULL, 0, msg, err);
}

int
store_append_buf(struct store_append *ctx, const void *data, size_t len,
    const struct store_append_msg *msg, struct store_error *err)
{
	return append_add(ctx, -1, data, len, msg, err);
}

static void
append_free(struct store_append *ctx, bool unlink_tmp)
{
	for (unsigned i = 0; i < ctx->count; i++) {
		struct store_append_item *it = &ctx->items[i];

		if (unlink_tmp) {
			char *p = xasprintf("%s/tmp/%s", ctx->box->path,
			    it->base);

			(void)unlink(p);
			free(p);
		}
		for (unsigned k = 0; k < it->keyword_count; k++)
			free(it->keywords[k]);
		free(it->keywords);
		free(it->base);
		for (unsigned k = 0; k < it->search_count; k++)
			free((void *)(uintptr_t)it->search[k].data);
		free(it->search);
	}
	free(ctx->items);
	free(ctx);
}

void
store_append_rollback(struct store_append **ctxp)
{
	if (*ctxp == NULL)
		return;
	append_free(*ctxp, true);
	*ctxp = NULL;
}

static int
store_append_commit_impl(struct store_append **ctxp, uint32_t *uidvalidity_r,
    uint32_t *first_uid_r, unsigned *count_r, struct store_error *err)
{
	struct store_append *ctx = *ctxp;
	struct store_mailbox *box = ctx->box;
	struct store_index *idx = box_index(box);
	char **done = xcalloc(ctx->count + 1, sizeof(*done));
	unsigned ndone = 0;
	uint64_t modseq;
	uint32_t first;
	struct arena arena;
	struct store_error scratch;
	int ret = -1;

	*ctxp = NULL;
	*count_r = 0;
	arena_init(&arena);
	if (idx->v->begin(idx, true, err) < 0)
		goto out;
	if (reload_row(box, err) < 0)
		goto fail;
	first = box->mb.uidnext;
	modseq = box->mb.highestmodseq + 1;
	if (store_mailbox_reserve(box, first + ctx->count, modseq, err) < 0)
		goto fail;
	for (unsigned i = 0; i < ctx->count; i++) {
		struct store_append_item *it = &ctx->items[i];
		struct store_msg m;
		char *sized = xasprintf("%s,S=%" PRIu64, it->base, it->size);
		char *name = maildir_name_build(sized, first + i, it->flags);
		char *from = xasprintf("%s/tmp/%s", box->path, it->base);
		char *to = cur_path(box, name);
		int r = rename(from, to), e = errno;

		free(sized);
		free(from);
		if (r < 0) {
			free(to);
			free(name);
			store_error_errno(err, e, "rename tmp->cur");
			goto fail;
		}
		done[ndone++] = to;
		memset(&m, 0, sizeof(m));
		m.uid = first + i;
		m.flags = it->flags;
		m.internal_date = it->date;
		m.size = it->size;
		m.modseq = modseq;
		m.filename = arena_strdup(&arena, name);
		free(name);
		if (keyword_mask(box, (const char *const *)it->keywords,
		    it->keyword_count, true, &m.keywords, err) < 0 ||
		    idx->v->msg_insert(idx, box->mb.id, &m, err) < 0)
			goto fail;
		for (unsigned k = 0; k < it->search_count; k++)
			it->search[k].uid = m.uid;
		if (it->search_count > 0 && idx->v->search_put(idx,
		    box->mb.id, it->search, it->search_count, err) < 0)
			goto fail;
	}
	if (fsync_cur(box, err) < 0)
		goto fail;
	box->mb.uidnext = first + ctx->count;
	box->mb.highestmodseq = modseq;
	if (idx->v->mailbox_update(idx, &box->mb, err) < 0)
		goto fail;
	if (idx->v->commit(idx, err) < 0)
		goto fail_files;
	*uidvalidity_r = box->mb.uidvalidity;
	*first_uid_r = first;
	*count_r = ctx->count;
	ret = 0;
	goto out;
fail:
	idx->v->rollback(idx);
fail_files:
	/* APPEND says NO: the files must not be adopted later. */
	for (unsigned i = 0; i < ndone; i++)
		(void)unlink(done[i]);
	(void)reload_row(box, &scratch);
out:
	for (unsigned i = 0; i < ndone; i++)
		free(done[i]);
	free(done);
	append_free(ctx, true);	/* renamed ones are already gone */
	arena_free(&arena);
	return ret;
}

int
store_mailbox_append(struct store_mailbox *box, const void *data, size_t len,
    const struct store_append_msg *msg, uint32_t *uid_r,
    struct store_error *err)
{
	struct store_append *ctx = store_append_begin(box);
	uint32_t uv;
	unsigned n;

	if (store_append_buf(ctx, data, len, msg, err) < 0) {
		store_append_rollback(&ctx);
		return -1;
	}
	return store_append_commit(&ctx, &uv, uid_r, &n, err);
}

/* ---- search data ------------------------------------------------------- */

int
store_search_header_list(struct store_mailbox *box, const char *field,
    struct arena *arena, struct store_search_value **vals_r,
    unsigned *count_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);

	return idx->v->search_header_list(idx, box->mb.id, field, arena,
	    vals_r, count_r, err);
}

int
store_search_put(struct store_mailbox *box,
    const struct store_search_item *items, unsigned count,
    struct store_error *err)
{
	struct store_index *idx = box_index(box);

	if (count == 0)
		return 0;
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (idx->v->search_put(idx, box->mb.id, items, count, err) < 0) {
		idx->v->rollback(idx);
		return -1;
	}
	return idx->v->commit(idx, err);
}

int
store_search_text_indexed(struct store_mailbox *box, struct arena *arena,
    uint32_t **uids_r, unsigned *count_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);

	return idx->v->search_text_indexed(idx, box->mb.id, arena, uids_r,
	    count_r, err);
}

int
store_search_text_candidates(struct store_mailbox *box, const char *needle,
    size_t len, struct arena *arena, uint32_t **uids_r, unsigned *count_r,
    bool *usable_r, struct store_error *err)
{
	struct store_index *idx = box_index(box);

	return idx->v->search_text_candidates(idx, box->mb.id, needle, len,
	    arena, uids_r, count_r, usable_r, err);
}

/* ---- cache ------------------------------------------------------------- */

int
store_cache_put(struct store_mailbox *box, uint32_t uid, const char *field,
    const void *data, size_t len, struct store_error *err)
{
	return box_index(box)->v->cache_put(box_index(box), box->mb.id, uid,
	    field, data, len, err);
}

int
store_cache_get_range(struct store_mailbox *box, uint32_t uid_lo,
    uint32_t uid_hi, const char *field, struct arena *arena,
    struct store_cache_value **values_r, unsigned *count_r,
    struct store_error *err)
{
	return box_index(box)->v->cache_get_range(box_index(box), box->mb.id,
	    uid_lo, uid_hi, field, arena, values_r, count_r, err);
}

int
store_cache_put_many(struct store_mailbox *box,
    const struct store_cache_item *items, unsigned count,
    struct store_error *err)
{
	struct store_index *idx = box_index(box);

	if (count == 0)
		return 0;
	/* One commit instead of one per value: each is a WAL append. */
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	for (unsigned i = 0; i < count; i++) {
		if (idx->v->cache_put(idx, box->mb.id, items[i].uid,
		    items[i].field, items[i].data, items[i].len, err) < 0) {
			idx->v->rollback(idx);
			return -1;
		}
	}
	return idx->v->commit(idx, err);
}

int
store_cache_get(struct store_mailbox *box, uint32_t uid, const char *field,
    struct arena *arena, void **data_r, size_t *len_r, bool *found_r,
    struct store_error *err)
{
	return box_index(box)->v->cache_get(box_index(box), box->mb.id, uid,
	    field, arena, data_r, len_r, found_r, err);
}

/* ---- public mutators: report committed changes to the change hook ---- */

int
store_mailbox_update_flags(struct store_mailbox *box, const uint32_t *uids,
    unsigned count, const struct store_flag_update *upd, struct arena *arena,
    struct store_update_result *result_r, struct store_error *err)
{
	uint64_t modseq = box->mb.highestmodseq;
	uint32_t uidnext = box->mb.uidnext;
	int ret = store_mailbox_update_flags_impl(box, uids, count, upd, arena,
	    result_r, err);

	if (ret == 0)
		box_changed(box, modseq, uidnext);
	return ret;
}

int
store_mailbox_expunge(struct store_mailbox *box, const uint32_t *uids,
    unsigned count, struct arena *arena, uint32_t **expunged_r,
    unsigned *expunged_count_r, struct store_error *err)
{
	uint64_t modseq = box->mb.highestmodseq;
	uint32_t uidnext = box->mb.uidnext;
	int ret = store_mailbox_expunge_impl(box, uids, count, arena,
	    expunged_r, expunged_count_r, err);

	if (ret == 0)
		box_changed(box, modseq, uidnext);
	return ret;
}

int
store_mailbox_copy(struct store_mailbox *src, const uint32_t *uids,
    unsigned count, struct store_mailbox *dst, bool move, struct arena *arena,
    struct store_uid_map *map_r, struct store_error *err)
{
	uint64_t smodseq = src->mb.highestmodseq;
	uint32_t suidnext = src->mb.uidnext;
	uint64_t dmodseq = dst->mb.highestmodseq;
	uint32_t duidnext = dst->mb.uidnext;
	int ret = store_mailbox_copy_impl(src, uids, count, dst, move, arena,
	    map_r, err);

	if (ret == 0) {
		box_changed(dst, dmodseq, duidnext);
		if (src != dst)
			box_changed(src, smodseq, suidnext);
	}
	return ret;
}

int
store_append_commit(struct store_append **ctxp, uint32_t *uidvalidity_r,
    uint32_t *first_uid_r, unsigned *count_r, struct store_error *err)
{
	struct store_mailbox *box = *ctxp != NULL ? (*ctxp)->box : NULL;
	uint64_t modseq = box != NULL ? box->mb.highestmodseq : 0;
	uint32_t uidnext = box != NULL ? box->mb.uidnext : 0;
	int ret = store_append_commit_impl(ctxp, uidvalidity_r, first_uid_r,
	    count_r, err);

	if (ret == 0 && box != NULL)
		box_changed(box, modseq, uidnext);
	return ret;
}

void
store_user_set_change_hook(struct store_user *user,
    void (*hook)(void *ctx, const char *mailbox), void *ctx)
{
	user->change_hook = hook;
	user->change_ctx = ctx;
}

void
store_mailbox_drop_snapshot(struct store_mailbox *box)
{
	arena_free(&box->snap_arena);
	box->msgs = NULL;
	box->msg_count = 0;
}
