/*
 * The selected mailbox as one session sees it (RFC 9051 section 2.3.1):
 * sequence numbers mapped to UIDs, the modseq up to which the client has
 * been told of changes, and expunges waiting until a command allows them.
 *
 * Everything here runs inside a command's run function (thread pool) or
 * while the session is otherwise idle: one thread at a time.
 */
#ifndef HERALD_IMAP_VIEW_H
#define HERALD_IMAP_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "imap/parser.h"
#include "store/store.h"

struct buf;
struct imap_changes_cache;
struct imap_cmd;
struct imap_session;

struct imap_view {
	struct store_mailbox *box;	/* NULL while the user's store is
					   released (imap_user_release()) */
	struct imap_view *unext, *uprev;	/* imap_user's views */
	struct imap_user *owner;
	char *name;		/* canonical UTF-8 name */
	char *path;		/* folder directory (for the loop thread) */
	bool readonly;
	uint32_t *uids;		/* sequence number i + 1 is uids[i] */
	unsigned count, cap;
	uint32_t *pending;	/* expunged, not yet reported (ascending) */
	unsigned pending_count, pending_cap;
	uint64_t modseq;	/* changes up to here are reflected */
	unsigned keyword_count;	/* keywords announced in FLAGS */
	unsigned recent;	/* messages \Recent in this view */
	uint32_t uidvalidity;
	uint64_t *sent_modseqs;	/* see imap_view_flags_sent() */
	unsigned sent_count, sent_cap;
	bool foreign;		/* some memory came from a pool thread */
};

/*
 * SELECT / EXAMINE: open and sync name, then write the untagged responses
 * (FLAGS, PERMANENTFLAGS, EXISTS, RECENT, UNSEEN, UIDVALIDITY, UIDNEXT) to
 * cmd.  On success *view_r is the new view.  0 or -1 with *err.
 */
int imap_view_open(struct imap_session *s, const char *name, bool readonly,
    struct imap_cmd *cmd, struct imap_view **view_r, struct store_error *err);
/* Free the view; with the owner's lock held. */
void imap_view_free(struct imap_view **view);
/*
 * Run functions allocate views on thread pool threads, whose malloc arenas
 * otherwise hold only short-lived memory (SQLite's, freed when the user's
 * store is released).  A view left there pins a page of that memory per
 * idle session.  On the loop thread, with the owner's lock held, this moves
 * *view and its arrays to fresh allocations and clears view->foreign;
 * *view then points to the new copy.
 */
void imap_view_rehome(struct imap_view **view);
/* Open the view's mailbox again after a release: 0 or -1 with *err.
 * With a cache (a batch), views of a mailbox already reopened in it copy
 * that handle instead of reading the index. */
int imap_view_reopen(struct imap_view *view, struct imap_session *s,
    struct imap_changes_cache *cache, struct store_error *err);

/* Look at the Maildir again (NOOP, CHECK, IDLE): 0 or -1. */
int imap_view_sync(struct imap_view *view, struct imap_session *s,
    struct store_error *err);

/*
 * Report changes since view->modseq to cmd: EXPUNGE (when allowed, else
 * they are kept pending and the messages keep their sequence numbers),
 * FETCH (FLAGS) for changed messages, EXISTS and RECENT for new ones, and
 * FLAGS when new keywords appeared.
 */
void imap_view_update(struct imap_view *view, struct imap_cmd *cmd,
    bool allow_expunge);

/*
 * Change sets shared by the views of one user in one batch of IDLE runs
 * (imap_cmd_requeue_batched()): the first view of a mailbox at a given
 * modseq reads the index, the others apply the same set from memory.  Valid
 * only while the user's lock is held without a break and nothing in the
 * batch writes to the index (reset it after a rescan).
 */
struct imap_changes {
	struct imap_changes *next;
	const char *name;		/* the mailbox */
	uint32_t uidvalidity;
	uint64_t since;			/* the modseq asked from */
	struct store_changes ch;
	const char *const *keywords;	/* the mailbox's keyword names */
	unsigned keyword_count;
};

/* A mailbox reopened in the batch: its other views copy the handle. */
struct imap_reopened {
	struct imap_reopened *next;
	struct store_user *store;
	const char *name;
	struct store_mailbox *box;	/* the first view's */
};

struct imap_changes_cache {
	struct arena arena;
	struct imap_changes *list;
	struct imap_reopened *reopened;
	unsigned queries, hits;		/* index reads, answers from memory */
};

void imap_changes_cache_init(struct imap_changes_cache *cache);
void imap_changes_cache_reset(struct imap_changes_cache *cache);
void imap_changes_cache_free(struct imap_changes_cache *cache);

/* imap_view_update() through cache (NULL: no cache). */
void imap_view_update_cached(struct imap_view *v, struct imap_cmd *cmd,
    bool allow_expunge, struct imap_changes_cache *cache);

/*
 * The client has been sent the flags of every message changed at modseq
 * (a FETCH that set \Seen, a STORE): the next imap_view_update() does not
 * repeat them, then forgets the modseq.
 */
void imap_view_flags_sent(struct imap_view *view, uint64_t modseq);

/* Sequence number of uid, or 0 if it is not in the view. */
uint32_t imap_view_seq(const struct imap_view *view, uint32_t uid);
/* True if uid was expunged and the client has not been told yet. */
bool imap_view_is_pending_expunge(const struct imap_view *view, uint32_t uid);

/*
 * Turn a sequence set (or UID set when uid is true) into the ascending
 * UIDs it names in the view.  A sequence number above the message count is
 * an error (RFC 9051 section 9, "seq-number"); UIDs that do not exist are
 * skipped.  The array comes from arena.  0, or -1 with *error_r.
 */
int imap_view_resolve(const struct imap_view *view, const char *set,
    bool uid, struct arena *arena, uint32_t **uids_r, unsigned *count_r,
    const char **error_r);

/* Write "(\Seen \Flagged kw ...)" for flags and keyword bits. */
void imap_flags_write(struct buf *out, uint32_t flags, uint64_t keywords,
    const char *const *names, unsigned name_count);

/*
 * Parse a flag list (STORE, APPEND): system flags into *flags_r, keywords
 * into *keywords_r (from arena).  \Recent and other unknown \-flags are
 * errors.  0, or -1 with *error_r.
 */
int imap_flags_parse(const struct imap_arg *list, unsigned count,
    struct arena *arena, uint32_t *flags_r, const char ***keywords_r,
    unsigned *keyword_count_r, const char **error_r);

/* Set cmd's reply from a store error: NO with the matching response code
 * (RFC 5530). */
void imap_cmd_store_error(struct imap_cmd *cmd, const struct store_error *err);

/*
 * Decode a mailbox name argument (modified UTF-7, RFC 3501 5.1.3; UTF-8
 * once UTF8=ACCEPT is enabled) and normalise it for the store.  Writes
 * STORE_NAME_MAX + 1 bytes at most into out.  0, or -1 with *error_r.
 */
int imap_mailbox_name(const char *arg, char *out, const char **error_r);

#endif
