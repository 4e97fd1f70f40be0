/*
 * Internals shared by src/store/ only: the user and mailbox structs, error
 * helpers, and the index vtable that lets another database (PostgreSQL)
 * replace SQLite without touching store.c, mailbox.c or the IMAP layer.
 *
 * The index driver is a dumb row store: it knows nothing about Maildir.
 * store.c and mailbox.c own the rules (UID allocation, modseq bumps, the
 * order of file operations and commits).  Every driver call that changes
 * data runs between begin(write = true) and commit/rollback, which must
 * take the database-wide write lock at begin (SQLite BEGIN IMMEDIATE; a
 * PostgreSQL driver would lock the user's row) so that UID allocation is
 * serialised between processes.
 */
#ifndef HERALD_STORE_STORE_PRIVATE_H
#define HERALD_STORE_STORE_PRIVATE_H

#include "store/store.h"

/* Values of store_index_mailbox.rebuild. */
enum store_rebuild {
	STORE_REBUILD_NONE = 0,
	/* Row made from a folder and its herald-uidlist: the next sync adopts
	 * the ",U=" UIDs in file names below uid_reserved. */
	STORE_REBUILD_KEEP = 1,
	/* Row made from a folder without herald-uidlist: a new UIDVALIDITY
	 * was chosen, so any unique ",U=" value may be adopted. */
	STORE_REBUILD_ANY = 2,
};

/* One row of the mailboxes table. */
struct store_index_mailbox {
	int64_t id;
	char name[STORE_NAME_MAX + 1];
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t first_recent_uid;	/* lower UIDs were claimed \Recent */
	uint32_t uid_reserved;		/* UIDs below it may be on disk */
	uint64_t highestmodseq;
	uint64_t modseq_reserved;	/* written to herald-uidlist */
	unsigned special_use;		/* STORE_MBOX_* special-use bits */
	unsigned rebuild;		/* enum store_rebuild */
};

struct store_index;

struct store_index_vfuncs {
	const char *name;
	/* *created_r: a new, empty index (none existed, or the old one was
	 * corrupt and was moved aside). */
	int (*open)(const char *path, const struct store_settings *set,
	    struct store_index **idx_r, bool *created_r,
	    struct store_error *err);
	void (*close)(struct store_index *idx);
	int (*begin)(struct store_index *idx, bool write,
	    struct store_error *err);
	int (*commit)(struct store_index *idx, struct store_error *err);
	void (*rollback)(struct store_index *idx);
	/* The file was deleted or replaced under the open handle: the
	 * handle refuses writes and must be reopened. */
	bool (*replaced)(struct store_index *idx);

	/* Per-user counters ("last_uidvalidity"); absent reads as 0. */
	int (*meta_get)(struct store_index *idx, const char *key,
	    uint64_t *value_r, struct store_error *err);
	int (*meta_set)(struct store_index *idx, const char *key,
	    uint64_t value, struct store_error *err);

	/* Mailboxes.  name == NULL looks up by id. */
	int (*mailbox_get)(struct store_index *idx, const char *name,
	    int64_t id, struct store_index_mailbox *mb_r, bool *found_r,
	    struct store_error *err);
	int (*mailbox_list)(struct store_index *idx, struct arena *arena,
	    struct store_index_mailbox **list_r, unsigned *count_r,
	    struct store_error *err);
	int (*mailbox_insert)(struct store_index *idx,
	    struct store_index_mailbox *mb, struct store_error *err);
	/* Writes every field of the row mb->id. */
	int (*mailbox_update)(struct store_index *idx,
	    const struct store_index_mailbox *mb, struct store_error *err);
	/* Deletes the row and its messages, log, keywords and cache. */
	int (*mailbox_delete)(struct store_index *idx, int64_t id,
	    struct store_error *err);

	int (*subscription_set)(struct store_index *idx, const char *name,
	    bool on, struct store_error *err);
	int (*subscription_list)(struct store_index *idx, struct arena *arena,
	    char ***names_r, unsigned *count_r, struct store_error *err);

	/* Messages with modseq > since_modseq, by UID; filename from arena. */
	int (*msg_list)(struct store_index *idx, int64_t mailbox_id,
	    uint64_t since_modseq, struct arena *arena,
	    struct store_msg **msgs_r, unsigned *count_r,
	    struct store_error *err);
	int (*msg_get)(struct store_index *idx, int64_t mailbox_id,
	    uint32_t uid, struct arena *arena, struct store_msg *msg_r,
	    bool *found_r, struct store_error *err);
	int (*msg_insert)(struct store_index *idx, int64_t mailbox_id,
	    const struct store_msg *msg, struct store_error *err);
	int (*msg_insert_many)(struct store_index *idx, int64_t mailbox_id,
	    const struct store_msg *msgs, unsigned count,
	    struct store_error *err);
	/* Writes flags, keywords, filename and modseq. */
	int (*msg_update)(struct store_index *idx, int64_t mailbox_id,
	    const struct store_msg *msg, struct store_error *err);
	/* Deletes the message and its cache, logs (uid, modseq). */
	int (*msg_expunge)(struct store_index *idx, int64_t mailbox_id,
	    uint32_t uid, uint64_t modseq, struct store_error *err);
	int (*expunged_since)(struct store_index *idx, int64_t mailbox_id,
	    uint64_t since_modseq, struct arena *arena, uint32_t **uids_r,
	    unsigned *count_r, struct store_error *err);
	int (*msg_counts)(struct store_index *idx, int64_t mailbox_id,
	    uint32_t first_recent_uid, uint32_t *messages_r,
	    uint32_t *unseen_r, uint32_t *recent_r, struct store_error *err);

	/* Keyword table: names_r[i] is bit i. */
	int (*keyword_list)(struct store_index *idx, int64_t mailbox_id,
	    struct arena *arena, char ***names_r, unsigned *count_r,
	    struct store_error *err);
	int (*keyword_insert)(struct store_index *idx, int64_t mailbox_id,
	    unsigned bit, const char *name, struct store_error *err);

	int (*cache_put)(struct store_index *idx, int64_t mailbox_id,
	    uint32_t uid, const char *field, const void *data, size_t len,
	    struct store_error *err);
	int (*cache_get)(struct store_index *idx, int64_t mailbox_id,
	    uint32_t uid, const char *field, struct arena *arena,
	    void **data_r, size_t *len_r, bool *found_r,
	    struct store_error *err);
	/* Every value of field for UIDs in [uid_lo, uid_hi], by UID. */
	int (*cache_get_range)(struct store_index *idx, int64_t mailbox_id,
	    uint32_t uid_lo, uint32_t uid_hi, const char *field,
	    struct arena *arena, struct store_cache_value **values_r,
	    unsigned *count_r, struct store_error *err);
	/* Copies the cached data and the search data of a message. */
	int (*cache_copy)(struct store_index *idx, int64_t src_mailbox_id,
	    uint32_t src_uid, int64_t dst_mailbox_id, uint32_t dst_uid,
	    struct store_error *err);

	/*
	 * Search data (store.h, "search data").  msg_expunge and
	 * mailbox_delete drop a message's rows, cache_copy copies them.
	 * search_put writes rows only for messages that exist; it runs in
	 * a write transaction.  search_text_candidates returns a superset
	 * of the indexed messages whose text holds needle, in any order,
	 * or *usable_r false when the index cannot narrow it down.
	 */
	int (*search_header_list)(struct store_index *idx, int64_t mailbox_id,
	    const char *field, struct arena *arena,
	    struct store_search_value **vals_r, unsigned *count_r,
	    struct store_error *err);
	int (*search_put)(struct store_index *idx, int64_t mailbox_id,
	    const struct store_search_item *items, unsigned count,
	    struct store_error *err);
	int (*search_text_indexed)(struct store_index *idx, int64_t mailbox_id,
	    struct arena *arena, uint32_t **uids_r, unsigned *count_r,
	    struct store_error *err);
	int (*search_text_candidates)(struct store_index *idx,
	    int64_t mailbox_id, const char *needle, size_t len,
	    struct arena *arena, uint32_t **uids_r, unsigned *count_r,
	    bool *usable_r, struct store_error *err);
};

/* Every driver's handle starts with this. */
struct store_index {
	const struct store_index_vfuncs *v;
};

extern const struct store_index_vfuncs store_index_sqlite;

struct store_user {
	void (*change_hook)(void *ctx, const char *mailbox);
	void *change_ctx;
	char *root;
	char *maildir;			/* ROOT/Maildir */
	char *index_path;
	bool fsync;
	bool search_text_on_append;	/* store_settings */
	struct store_index *index;
	int open_boxes;			/* asserted 0 at close */
};

struct store_recent_range {
	uint32_t lo, hi;		/* inclusive */
};

struct store_mailbox {
	struct store_user *user;
	struct store_index_mailbox mb;	/* row as last read or written */
	char *path;			/* folder directory */
	bool readonly;
	bool tmp_cleaned;		/* stale tmp/ files removed once */

	struct store_recent_range *recent;	/* claimed by this view */
	unsigned recent_count, recent_cap;

	struct arena snap_arena;	/* snapshot messages + names */
	struct store_msg *msgs;
	unsigned msg_count;

	struct arena kw_arena;		/* keyword table */
	char **keywords;
	unsigned keyword_count;
};

/* Error helpers: fill err and return -1.  store_error_internal() logs the
 * details with a stamp and gives the client only the stamp. */
int store_error_set(struct store_error *err, enum store_error_code code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int store_error_internal(struct store_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Map errno: ENOSPC/EDQUOT, EACCES/EPERM, else internal (logged). */
int store_error_errno(struct store_error *err, int errnum, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Folder directory of a canonical name (malloc'd). */
char *store_user_folder_path(struct store_user *user, const char *name);
/* Choose a UIDVALIDITY never used before for this user (in a write txn). */
int store_user_new_uidvalidity(struct store_user *user, uint32_t *uv_r,
    struct store_error *err);

/* Add rows for folders made by other programs (or all, after the index was
 * lost) and drop rows whose folder is gone.  Takes the lock if needed. */
int store_user_sync_folders(struct store_user *user, struct store_error *err);

/* mailbox.c, called with the write lock held. */
int store_mailbox_sync_locked(struct store_mailbox *box,
    struct store_error *err);
/* Make herald-uidlist cover UIDs below uid_end and modseqs up to modseq. */
int store_mailbox_reserve(struct store_mailbox *box, uint32_t uid_end,
    uint64_t modseq, struct store_error *err);

#endif
