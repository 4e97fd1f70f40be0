/*
 * Mail storage: one user's mailboxes in Maildir++ with a per-user index.
 *
 * Layout (see docs/DESIGN.md, "Storage" for the full description):
 *	ROOT/Maildir/{cur,new,tmp}	INBOX
 *	ROOT/Maildir/.A.B/		mailbox "A/B" (Maildir++ folder)
 *	ROOT/Maildir/.../herald-uidlist	UIDVALIDITY + reserved UID/modseq
 *	ROOT/index.sqlite		the index (SQLite, WAL)
 * where ROOT is data_dir/users/NAME.
 *
 * Mailbox names are UTF-8 (the IMAP layer decodes modified UTF-7 first), use
 * '/' as the hierarchy delimiter, and "INBOX" (any case) is the Maildir
 * root.  See store_name_normalize() for the rules and the on-disk escaping.
 *
 * Every change to a mailbox (append, flag change, expunge, including changes
 * made by other programs and noticed by store_mailbox_sync()) gets a new
 * per-mailbox modseq; expunges are logged with their modseq, so
 * store_mailbox_changes() answers "what changed since modseq N" for IDLE,
 * NOTIFY, CONDSTORE and QRESYNC.
 *
 * Threads and processes: every call is blocking (file I/O, fsync, SQLite
 * locks).  A store_user and everything opened from it must be used by one
 * thread at a time; different store_user handles, in one process or in
 * several, may be used concurrently on the same user.  SQLite serialises
 * writers; UIDs and modseqs are allocated inside write transactions.
 *
 * Errors: functions return 0 on success or -1 with *err filled.  err->text
 * is neutral, client-safe text; internal details (paths, errno, SQLite
 * messages) are logged with log_err() together with a stamp that also
 * appears in err->text for STORE_ERR_INTERNAL.  err may not be NULL.
 *
 * Memory: results that are arrays come from a caller-supplied arena (a
 * command arena, STYLE section 9) unless stated otherwise.
 */
#ifndef HERALD_STORE_STORE_H
#define HERALD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

/* Longest mailbox name in bytes (UTF-8), and most hierarchy levels. */
#define STORE_NAME_MAX 255
#define STORE_NAME_MAX_LEVELS 32
/* Keywords per mailbox (one 64-bit mask per message). */
#define STORE_KEYWORDS_MAX 64
#define STORE_KEYWORD_MAX_LEN 100

enum store_error_code {
	STORE_ERR_NONE = 0,
	STORE_ERR_INTERNAL,	/* I/O or database failure; details logged */
	STORE_ERR_NOTFOUND,	/* no such mailbox: [NONEXISTENT] */
	STORE_ERR_EXISTS,	/* mailbox exists: [ALREADYEXISTS] */
	STORE_ERR_BADNAME,	/* invalid mailbox name or keyword: [CANNOT] */
	STORE_ERR_NOTPOSSIBLE,	/* e.g. delete INBOX, readonly: [CANNOT] */
	STORE_ERR_LIMIT,	/* name too long, too many keywords: [LIMIT] */
	STORE_ERR_NOSPACE,	/* ENOSPC/EDQUOT: [OVERQUOTA] */
	STORE_ERR_INUSE,	/* index locked too long: [INUSE] */
	STORE_ERR_EXPUNGED,	/* message is gone: [EXPUNGEISSUED] */
	STORE_ERR_NOPERM,	/* EACCES/EPERM on the files: [NOPERM] */
	STORE_ERR_UNAVAILABLE,	/* out of file descriptors: [UNAVAILABLE] */
};

struct store_error {
	enum store_error_code code;
	char text[200];		/* client-safe, NUL-terminated */
};

/* NULL settings mean all defaults.  Strings are copied at open. */
struct store_settings {
	const char *maildir_name;	/* below ROOT; default "Maildir" */
	const char *index_name;		/* below ROOT; default "index.sqlite" */
	const char *index_driver;	/* default "sqlite" (only one so far) */
	unsigned busy_timeout_ms;	/* lock wait; default 10000 */
	/* Tests and benchmarks only: no fsync of files, directories or the
	 * index (synchronous=OFF).  Acknowledged mail may then be lost on
	 * power failure, not on a process crash. */
	bool fsync_disable;
	/* Store the search data of appended messages (APPEND, LMTP,
	 * deliver: the BODY text, under the full-text index, and the values
	 * of Subject, From, To and Cc) when they are committed, rather than
	 * at the first search that reads them. */
	bool search_text_on_append;
};

/* System flags (RFC 3501 section 2.3.2).  STORE_F_RECENT is never stored:
 * it is set in a view's snapshot for the messages that view claimed. */
enum store_flag {
	STORE_F_SEEN = 1u << 0,
	STORE_F_ANSWERED = 1u << 1,
	STORE_F_FLAGGED = 1u << 2,
	STORE_F_DELETED = 1u << 3,
	STORE_F_DRAFT = 1u << 4,
	STORE_F_RECENT = 1u << 5,
};
#define STORE_F_SYSTEM_MASK 0x1fu	/* the storable ones */

/* Mailbox attributes for LIST (RFC 3501, RFC 5258, RFC 6154). */
enum store_mbox_attr {
	STORE_MBOX_NOSELECT = 1u << 0,	/* placeholder parent only */
	STORE_MBOX_HASCHILDREN = 1u << 1,
	STORE_MBOX_HASNOCHILDREN = 1u << 2,
	STORE_MBOX_SUBSCRIBED = 1u << 3,
	STORE_MBOX_NONEXISTENT = 1u << 4, /* subscribed but does not exist */
	/* Special use (RFC 6154). */
	STORE_MBOX_DRAFTS = 1u << 8,
	STORE_MBOX_SENT = 1u << 9,
	STORE_MBOX_TRASH = 1u << 10,
	STORE_MBOX_JUNK = 1u << 11,
	STORE_MBOX_ARCHIVE = 1u << 12,
	STORE_MBOX_ALL = 1u << 13,
	STORE_MBOX_FLAGGED = 1u << 14,
};
#define STORE_MBOX_SPECIAL_USE_MASK 0x7f00u

struct store_user;
struct store_mailbox;
struct store_append;

/* ---- names ------------------------------------------------------------ */

/*
 * Validate a mailbox name and write its canonical form into out (at least
 * STORE_NAME_MAX + 1 bytes): a first component equal to "INBOX" in any case
 * becomes "INBOX".  Rejected (STORE_ERR_BADNAME): empty names, a leading or
 * trailing '/', empty components ("a//b"), components "." and "..", control
 * characters (including NUL, which cannot occur in a C string anyway),
 * invalid UTF-8, the LIST wildcards '*' and '%'.  Too long (more than
 * STORE_NAME_MAX bytes, STORE_NAME_MAX_LEVELS levels, or an on-disk folder
 * name over 255 bytes) gives STORE_ERR_LIMIT.
 */
int store_name_normalize(const char *name, char *out, struct store_error *err);
bool store_name_is_inbox(const char *name);	/* case-insensitive */

/*
 * Maildir++ folder name for a canonical name: "A/B" -> ".A.B".  Bytes '.',
 * '%', '/' and bytes below 0x20 or 0x7f in a component are written as '%'
 * and two upper-case hex digits ("a.b" -> ".a%2Eb"), which is reversible
 * and keeps '.' free as the Maildir++ separator.  Other UTF-8 bytes are
 * written unchanged.  Returns false if out (size bytes) is too small.
 * INBOX has no folder name (it is the Maildir itself).
 */
bool store_name_to_folder(const char *name, char *out, size_t size);
/* The reverse; false for names that are not ours (no leading '.', bad
 * escapes, an escape that yields '/'), or out too small. */
bool store_name_from_folder(const char *folder, char *out, size_t size);

/* ---- user ------------------------------------------------------------- */

/*
 * Open (creating on first use) the storage under root (data_dir/users/NAME,
 * created with mode 0700 if missing): the Maildir with INBOX and the
 * special-use mailboxes Drafts, Sent, Trash, Junk and Archive (subscribed),
 * and the index.  A missing or corrupt index is rebuilt from the Maildir,
 * keeping UIDs and UIDVALIDITY (see docs/DESIGN.md).  Mailbox folders
 * created or removed by other programs are noticed here and at
 * store_mailbox_list().  Free with store_user_close().
 */
int store_user_open(const char *root, const struct store_settings *set,
    struct store_user **user_r, struct store_error *err);
/*
 * Call hook(ctx, mailbox) after every committed change to a mailbox made
 * through this handle (append, flags, expunge, copy/move on both sides, and
 * a sync that found changes made by other programs).  It runs in the thread
 * making the change.  IDLE uses it to wake watchers (src/notify).
 */
void store_user_set_change_hook(struct store_user *user,
    void (*hook)(void *ctx, const char *mailbox), void *ctx);

/*
 * True once the index file was found deleted or replaced while this
 * handle had it open (another process rebuilt it): the handle refuses to
 * write, since it would hand out UIDs the new index also hands out.  Close
 * it (and its mailboxes) and open the user again.
 */
bool store_user_index_replaced(struct store_user *user);

/* Mailboxes opened from the user must be closed first.  Sets *user NULL. */
void store_user_close(struct store_user **user);

/* ---- mailbox list and management -------------------------------------- */

struct store_list_entry {
	const char *name;	/* canonical UTF-8 name */
	unsigned attrs;		/* enum store_mbox_attr */
};

/*
 * Every mailbox, plus \Noselect placeholders for missing parents, sorted by
 * name (byte order, INBOX first).  Pattern matching is the caller's job.
 * With subscribed_only, the subscription list instead, with
 * STORE_MBOX_NONEXISTENT for names that do not exist (RFC 5258).
 */
int store_mailbox_list(struct store_user *user, bool subscribed_only,
    struct arena *arena, struct store_list_entry **entries_r,
    unsigned *count_r, struct store_error *err);

/*
 * Create name and any missing parents.  special_use is 0 or one
 * STORE_MBOX_* special-use bit (RFC 6154 CREATE-SPECIAL-USE).  Fails with
 * STORE_ERR_EXISTS if name exists (a \Noselect placeholder does not count).
 */
int store_mailbox_create(struct store_user *user, const char *name,
    unsigned special_use, struct store_error *err);
/*
 * Delete name with its messages.  Children stay; the name then lists as a
 * \Noselect placeholder (RFC 3501 section 6.3.4).  INBOX cannot be deleted.
 * The subscription is kept (RFC 3501 section 6.3.6).
 */
int store_mailbox_delete(struct store_user *user, const char *name,
    struct store_error *err);
/*
 * Rename old_name and its children (RFC 3501 section 6.3.5).  Renaming
 * INBOX moves all its messages into a new mailbox new_name and leaves INBOX
 * empty.  Missing parents of new_name are created.  Renaming a mailbox to
 * one of its own children is STORE_ERR_NOTPOSSIBLE.
 */
int store_mailbox_rename(struct store_user *user, const char *old_name,
    const char *new_name, struct store_error *err);
/* Subscribe or unsubscribe; the name need not exist. */
int store_mailbox_subscribe(struct store_user *user, const char *name,
    bool subscribe, struct store_error *err);

struct store_status {
	uint32_t messages;
	uint32_t recent;	/* not yet claimed by any session */
	uint32_t uidnext;
	uint32_t uidvalidity;
	uint32_t unseen;
	uint64_t highestmodseq;
	unsigned attrs;		/* special-use bits */
};

/* STATUS: resyncs the mailbox with its folder first. */
int store_mailbox_status(struct store_user *user, const char *name,
    struct store_status *status_r, struct store_error *err);

/* ---- an open mailbox (a view) ------------------------------------------ */

struct store_msg {
	uint32_t uid;
	uint32_t flags;		/* enum store_flag */
	uint64_t keywords;	/* bit i: keyword i of the mailbox */
	int64_t internal_date;	/* seconds since the epoch (file mtime) */
	uint64_t size;		/* bytes in the file, as stored */
	uint64_t modseq;
	const char *filename;	/* name inside cur/ */
};

enum store_open_flags {
	/* EXAMINE: refuses changes and claims no \Recent messages. */
	STORE_OPEN_READONLY = 1u << 0,
};

/*
 * Open a mailbox.  This reads its index row only: call store_mailbox_sync()
 * (SELECT, NOOP, CHECK, IDLE wake-ups) to look at the folder and claim
 * \Recent messages, then store_mailbox_messages() for a snapshot.  Opening
 * for APPEND or COPY only needs no sync.  Free with store_mailbox_close().
 */
int store_mailbox_open(struct store_user *user, const char *name,
    unsigned flags, struct store_mailbox **box_r, struct store_error *err);
/*
 * Open the mailbox `from` is open on, from its row as `from` last read it,
 * without reading the index: for many views of one mailbox reopened
 * together on the same store_user, with nothing written in between (IDLE
 * wake-ups after a release).  Never fails.
 */
void store_mailbox_open_same(struct store_mailbox *from, unsigned flags,
    struct store_mailbox **box_r);
void store_mailbox_close(struct store_mailbox **box);

/*
 * Resync the index with the folder: files in new/ move to cur/; unknown
 * files get UIDs in order of mtime then name (files in cur/ without ",U="
 * keep their names, their UIDs going to herald-uidmap); renamed files
 * (flags changed by other programs) and removed files become flag changes
 * and expunges with new modseqs.  The folder is not read when new/ and
 * cur/ are as the last settled scan left them (docs/DESIGN.md).  Then, unless the mailbox is read-only, claim the
 * messages that no session has seen yet as \Recent for this view (see
 * docs/DESIGN.md), and reload the snapshot.
 */
int store_mailbox_sync(struct store_mailbox *box, struct store_error *err);

/*
 * The snapshot taken by the last store_mailbox_sync(): every message in UID
 * order.  Owned by box; valid until the next sync or close.  Messages that
 * are \Recent for this view carry STORE_F_RECENT.
 */
const struct store_msg *store_mailbox_messages(struct store_mailbox *box,
    unsigned *count_r);

/* Free the snapshot (until the next sync) once the caller has copied what
 * it needs: an idling view keeps only its own UID list. */
void store_mailbox_drop_snapshot(struct store_mailbox *box);

struct store_mailbox_info {
	const char *name;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	unsigned attrs;		/* special-use bits */
	bool readonly;
	const char *path;	/* folder directory, for change watches */
};
/* Values as of the last open, sync, or change made through this box. */
void store_mailbox_get_info(struct store_mailbox *box,
    struct store_mailbox_info *info_r);

/* True if uid is \Recent for this view. */
bool store_mailbox_is_recent(struct store_mailbox *box, uint32_t uid);

/*
 * The mailbox keyword table: names[i] is keyword bit i.  Owned by box,
 * refreshed by sync, changes and flag updates; valid until then.
 */
const char *const *store_mailbox_keywords(struct store_mailbox *box,
    unsigned *count_r);

struct store_changes {
	uint32_t *expunged;		/* ascending UIDs */
	unsigned expunged_count;
	struct store_msg *changed;	/* modseq > since, ascending UID,
					   including new messages */
	unsigned changed_count;
	uint32_t uidnext;
	uint64_t highestmodseq;
};

/*
 * What changed since since_modseq (0: everything): expunged UIDs (from the
 * expunge log) and messages with a higher modseq.  Reads the index only;
 * call store_mailbox_sync() first to include changes made by other
 * programs.  Results come from arena; STORE_F_RECENT is set for this view.
 */
int store_mailbox_changes(struct store_mailbox *box, uint64_t since_modseq,
    struct arena *arena, struct store_changes *changes_r,
    struct store_error *err);

/*
 * Open a message file for reading (O_RDONLY, O_CLOEXEC; the caller closes
 * it).  A file renamed by another program is found again; a file that is
 * gone gives STORE_ERR_EXPUNGED.
 */
int store_mailbox_open_msg(struct store_mailbox *box, uint32_t uid, int *fd_r,
    struct store_error *err);

/* ---- changes ---------------------------------------------------------- */

enum store_modify {
	STORE_MODIFY_ADD,	/* +FLAGS */
	STORE_MODIFY_REMOVE,	/* -FLAGS */
	STORE_MODIFY_REPLACE,	/* FLAGS */
};

struct store_flag_update {
	enum store_modify mode;
	uint32_t flags;			/* STORE_F_SYSTEM_MASK bits */
	const char *const *keywords;	/* created in the table as needed */
	unsigned keyword_count;
	uint64_t unchangedsince;	/* RFC 7162 UNCHANGEDSINCE; 0: none */
};

struct store_update_result {
	struct store_msg *changed;	/* new flags and modseq, by UID */
	unsigned changed_count;
	uint32_t *modified;		/* failed UNCHANGEDSINCE (MODIFIED) */
	unsigned modified_count;
	uint64_t highestmodseq;
};

/*
 * STORE: apply upd to the messages in uids (ascending; UIDs that do not
 * exist are skipped).  Files are renamed so their ":2," suffix matches; the
 * changed messages share one new modseq.  Results come from arena.
 */
int store_mailbox_update_flags(struct store_mailbox *box,
    const uint32_t *uids, unsigned count,
    const struct store_flag_update *upd, struct arena *arena,
    struct store_update_result *result_r, struct store_error *err);

/*
 * Expunge the messages in uids (ascending; NULL: all) that have \Deleted at
 * the time of the call.  Files are unlinked and the UIDs logged with a new
 * modseq.  *expunged_r (from arena) lists what was expunged.
 */
int store_mailbox_expunge(struct store_mailbox *box, const uint32_t *uids,
    unsigned count, struct arena *arena, uint32_t **expunged_r,
    unsigned *expunged_count_r, struct store_error *err);

struct store_uid_map {
	uint32_t uidvalidity;		/* of the destination */
	uint32_t *src_uids;		/* ascending */
	uint32_t *dst_uids;		/* ascending, consecutive */
	unsigned count;
};

/*
 * COPY or MOVE the messages in uids (ascending; missing UIDs skipped) from
 * src to dst (both open on the same user; they may be the same mailbox).
 * Flags, keywords, internal date and cached data are kept; the copies are
 * \Recent for whoever sees them first.  MOVE expunges the sources in the
 * same index transaction (RFC 6851).  The map (from arena) gives COPYUID.
 */
int store_mailbox_copy(struct store_mailbox *src, const uint32_t *uids,
    unsigned count, struct store_mailbox *dst, bool move, struct arena *arena,
    struct store_uid_map *map_r, struct store_error *err);

/* ---- append (APPEND, MULTIAPPEND, LMTP delivery) ------------------------ */

struct store_append_msg {
	uint32_t flags;			/* STORE_F_SYSTEM_MASK bits */
	const char *const *keywords;
	unsigned keyword_count;
	int64_t internal_date;		/* 0: now */
	/* store_append_fd() only: bytes written before the fd's content
	 * and counted in the size (the trace fields LMTP delivery adds). */
	const void *prefix;
	size_t prefix_len;
};

/*
 * Appends are written to tmp/ (and fsynced) as they are added; commit takes
 * the index write lock, gives them consecutive UIDs, renames them into cur/
 * with the UID and flags in the name, fsyncs cur/, and commits.  Nothing
 * is visible before commit; rollback (or a crash) leaves only tmp/ files,
 * which sync removes after 36 hours.
 */
struct store_append *store_append_begin(struct store_mailbox *box);
/* Copy fd from its current offset to EOF. */
int store_append_fd(struct store_append *ctx, int fd,
    const struct store_append_msg *msg, struct store_error *err);
int store_append_buf(struct store_append *ctx, const void *data, size_t len,
    const struct store_append_msg *msg, struct store_error *err);
/*
 * Commit; *first_uid_r .. *first_uid_r + count - 1 are the new UIDs (in the
 * order added).  Frees ctx either way and sets it NULL.
 */
int store_append_commit(struct store_append **ctx, uint32_t *uidvalidity_r,
    uint32_t *first_uid_r, unsigned *count_r, struct store_error *err);
void store_append_rollback(struct store_append **ctx);

/* One message from a buffer: begin + buf + commit. */
int store_mailbox_append(struct store_mailbox *box, const void *data,
    size_t len, const struct store_append_msg *msg, uint32_t *uid_r,
    struct store_error *err);

/* ---- cache of parsed data ---------------------------------------------- */

/*
 * Parsed data (envelope, body structure, ...) per message and field name,
 * filled lazily by the caller.  It is dropped with the message and copied
 * along with COPY/MOVE.  put replaces; get returns a copy from arena with a
 * NUL byte after len, *found_r false if absent.
 */
int store_cache_put(struct store_mailbox *box, uint32_t uid,
    const char *field, const void *data, size_t len, struct store_error *err);
int store_cache_get(struct store_mailbox *box, uint32_t uid,
    const char *field, struct arena *arena, void **data_r, size_t *len_r,
    bool *found_r, struct store_error *err);

struct store_cache_value {
	uint32_t uid;
	const void *data;	/* NUL byte after len */
	size_t len;
};

/*
 * Every cached value of field for the UIDs in [uid_lo, uid_hi], in one
 * index query (FETCH reads a slice's envelopes this way): ascending by
 * UID, copies from arena.
 */
int store_cache_get_range(struct store_mailbox *box, uint32_t uid_lo,
    uint32_t uid_hi, const char *field, struct arena *arena,
    struct store_cache_value **values_r, unsigned *count_r,
    struct store_error *err);

struct store_cache_item {
	uint32_t uid;
	const char *field;
	const void *data;
	size_t len;
};

/* store_cache_put() for several values in one write transaction. */
int store_cache_put_many(struct store_mailbox *box,
    const struct store_cache_item *items, unsigned count,
    struct store_error *err);

/* ---- search data --------------------------------------------------------- */

/*
 * What SEARCH needs to answer without opening message files, kept in the
 * index per message and filled by the IMAP layer (src/imap/search.h
 * defines the contents): for header keys, the values of one "field" (an
 * id naming the key type and header name, at most
 * STORE_SEARCH_FIELD_MAX bytes); for BODY, the message's searchable text,
 * under a full-text index that narrows a substring search down to
 * candidates.  Rows go with the message on expunge and travel with
 * COPY/MOVE.  Messages never change, so a row, once written, stays true.
 */
#define STORE_SEARCH_FIELD_MAX 80

struct store_search_value {
	uint32_t uid;
	const void *data;	/* NUL byte after len */
	size_t len;
};

struct store_search_item {
	uint32_t uid;
	const char *field;	/* NULL: the BODY search text (UTF-8) */
	const void *data;
	size_t len;
};

/* Every stored value of field in the mailbox, ascending UID, from arena. */
int store_search_header_list(struct store_mailbox *box, const char *field,
    struct arena *arena, struct store_search_value **vals_r,
    unsigned *count_r, struct store_error *err);
/*
 * Store items in one write transaction.  Items of messages expunged
 * meanwhile are dropped; text already stored for a message is kept.
 */
int store_search_put(struct store_mailbox *box,
    const struct store_search_item *items, unsigned count,
    struct store_error *err);
/* UIDs whose text is in the full-text index, ascending, from arena. */
int store_search_text_indexed(struct store_mailbox *box, struct arena *arena,
    uint32_t **uids_r, unsigned *count_r, struct store_error *err);
/*
 * Of the indexed messages, a superset of those whose text holds needle
 * (folded UTF-8, as the text): UIDs ascending, from arena.  *usable_r is
 * false when the index cannot narrow the search (a needle shorter than 3
 * code points): every indexed message may then match.
 */
int store_search_text_candidates(struct store_mailbox *box,
    const char *needle, size_t len, struct arena *arena, uint32_t **uids_r,
    unsigned *count_r, bool *usable_r, struct store_error *err);

#endif
