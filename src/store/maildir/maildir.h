/*
 * Maildir primitives: file names, folders, saving, scanning and the
 * herald-uidlist file.  No index knowledge here.
 *
 * File names follow the Maildir convention "BASE:2,FLAGS" where BASE is
 * "SECONDS.M<usec>P<pid>Q<counter>R<random>.HOST" followed by
 * comma-separated fields: ",S=<size>" (bytes, as Courier and Dovecot write
 * it) and ",U=<uid>" (ours: the UID, so that a lost index can be rebuilt
 * with the same UIDs).  FLAGS are upper-case letters in ASCII order:
 * D draft, F flagged, P passed, R replied (\Answered), S seen, T trashed
 * (\Deleted).  Letters we do not map (P, lower-case keyword letters written
 * by other programs) are kept when we rename.  Other programs keep BASE
 * when they change flags, so a file is identified by its BASE.
 */
#ifndef HERALD_STORE_MAILDIR_MAILDIR_H
#define HERALD_STORE_MAILDIR_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "store/store.h"

#define MAILDIR_UIDLIST_NAME "herald-uidlist"
#define MAILDIR_UIDMAP_NAME "herald-uidmap"
#define MAILDIR_TMP_MAX_AGE (36 * 3600)	/* the Maildir spec's 36 hours */

/* Length of BASE (up to the first ':' or the end). */
size_t maildir_name_base_len(const char *name);
/* STORE_F_* flags of the ":2," suffix (0 without one). */
uint32_t maildir_name_flags(const char *name);
/* The ",U=" field of BASE; false if absent or invalid. */
bool maildir_name_uid(const char *name, uint32_t *uid_r);
/*
 * New name for name: BASE without any ",U=" field, plus ",U=uid" (uid 0:
 * none), plus ":2," and the flags: our system flags replaced by flags,
 * other letters kept, in ASCII order.  Returned from malloc.
 */
char *maildir_name_build(const char *name, uint32_t uid, uint32_t flags);
/* Fill buf with random bytes (zeros if the kernel has none). */
void maildir_random(void *buf, size_t len);
/* A new unique BASE (malloc'd), without S= or U=. */
char *maildir_name_new_base(void);

/* mkdir path/{cur,new,tmp} (and path itself); EEXIST is fine. */
int maildir_folder_create(const char *path, bool maildirfolder,
    struct store_error *err);
/* fsync a directory (no-op if !do_fsync).  0 or -1 with errno. */
int maildir_fsync_dir(const char *path, bool do_fsync);
/* Remove a directory tree; errors are logged, not returned. */
void maildir_remove_tree(const char *path);
/* Remove files in path/tmp older than MAILDIR_TMP_MAX_AGE. */
void maildir_tmp_clean(const char *path);

/*
 * Write a message into path/tmp/BASE: data (len bytes, may be 0), then
 * fd's content to EOF if fd >= 0.  Sets the mtime to mtime, fsyncs if
 * do_fsync.  *base_r is malloc'd.
 */
int maildir_tmp_write(const char *path, int fd, const void *data, size_t len,
    int64_t mtime, bool do_fsync, char **base_r, uint64_t *size_r,
    struct store_error *err);

struct maildir_entry {
	const char *name;
	bool in_new;
};

/* Read new/ then cur/ (so a file moved new -> cur meanwhile is seen at
 * least once).  Names from arena. */
int maildir_scan(const char *path, struct arena *arena,
    struct maildir_entry **entries_r, unsigned *count_r,
    struct store_error *err);

struct maildir_uidlist {
	uint32_t uidvalidity;
	uint32_t uid_reserved;
	uint64_t modseq_reserved;
	unsigned special_use;
};

/* 1: read, 0: missing or unparsable, -1: error. */
int maildir_uidlist_read(const char *path, struct maildir_uidlist *ul_r,
    struct store_error *err);
/* Atomic: temporary file, fsync, rename, fsync the directory. */
int maildir_uidlist_write(const char *path, const struct maildir_uidlist *ul,
    bool do_fsync, struct store_error *err);

/*
 * herald-uidmap: the UIDs of files adopted in cur/ under their own names
 * (no ",U=" field), one "UID BASE\n" line each, appended; the last line
 * of a BASE counts (docs/DESIGN.md, "Index rebuild").  Append data and,
 * with do_fsync, fsync the file (and the folder when it was created).
 */
int maildir_uidmap_append(const char *path, const char *data, size_t len,
    bool do_fsync, struct store_error *err);
/* The whole file, NUL-terminated, from malloc (*data_r NULL if absent). */
int maildir_uidmap_read(const char *path, char **data_r, size_t *len_r,
    struct store_error *err);

/* Atomically replace path with data (tmp + fsync + rename). */
int maildir_write_file_atomic(const char *path, const void *data, size_t len,
    bool do_fsync, struct store_error *err);

#endif
