/*
 * passwd-file database in Dovecot's format: one user per line,
 *	user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
 * Only the first two fields are used; the rest are ignored.  Blank lines and
 * lines starting with '#' are skipped.
 *
 * The file is read again when its mtime, size or inode changes.  All lookups
 * are thread-safe: verification runs on the libuv thread pool.
 */
#ifndef HERALD_AUTH_PASSDB_H
#define HERALD_AUTH_PASSDB_H

#include <stdbool.h>

enum passdb_result {
	PASSDB_OK,		/* user exists and the password matches */
	PASSDB_FAIL,		/* unknown user or wrong password */
	PASSDB_ERROR,		/* the file cannot be read */
};

struct passdb;

struct passdb *passdb_new(const char *path);
void passdb_free(struct passdb **db);

/* Verify; the user name is compared exactly.  Blocking (crypt, file I/O):
 * call from a thread pool. */
enum passdb_result passdb_verify(struct passdb *db, const char *user,
    const char *password);
bool passdb_user_exists(struct passdb *db, const char *user);
/* Like passdb_user_exists() but tells a failure apart (LMTP must defer,
 * not bounce, when the file cannot be read): 1 exists, 0 unknown, -1 the
 * file cannot be read.  Blocking, thread-safe. */
int passdb_user_lookup(struct passdb *db, const char *user);

/*
 * Editing, for "herald user ...".  Each rewrites the file atomically
 * (temporary file in the same directory, fsync, rename) under an flock on
 * "PATH.lock", keeping other lines byte for byte; a new file gets mode 0600.
 * User names must be 1..255 bytes without ':', control characters, spaces
 * or '/', and neither "." nor ".." nor starting with '#'.  The hash must
 * not be empty nor contain ':' or control characters.  A symlinked file is
 * replaced at its target; an existing file keeps its mode and owner.
 * Return 0, or -1 with *error_r (allocated; caller frees).
 *
 * When a user has several lines, lookups and passwd_file_set use the
 * first; passwd_file_del removes them all.
 */
int passwd_file_add(const char *path, const char *user, const char *hash,
    char **error_r);	/* fails if the user exists */
int passwd_file_set(const char *path, const char *user, const char *hash,
    char **error_r);	/* fails if the user does not exist */
int passwd_file_del(const char *path, const char *user, char **error_r);
/* Calls cb for each user name in file order (a missing file has none).
 * 0 or -1. */
int passwd_file_list(const char *path, void (*cb)(const char *user, void *ctx),
    void *ctx, char **error_r);
bool passwd_user_name_valid(const char *user);

#endif
