/*
 * The SQLite index driver (store_private.h vtable).  One connection per
 * store_user; WAL mode so readers never block the writer; writers use
 * BEGIN IMMEDIATE so the write lock is taken (waiting up to busy_timeout)
 * before anything is read, which is what makes UID allocation safe between
 * processes (a deferred transaction that upgrades to a writer can fail with
 * SQLITE_BUSY without waiting).
 *
 * synchronous=FULL: in WAL mode, NORMAL may lose the last commits on power
 * loss.  The Maildir would bring lost messages back (",U=" names), but
 * modseqs and keywords live only here, and a modseq that a client has seen
 * must never be handed out again (RFC 7162), so a commit that a client was
 * told about must be durable.  fsync_disable (tests) uses NORMAL.
 */
#include "store/store_private.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/*
 * Version 2 added the search tables (search_header, search_header_fields,
 * search_text, search_fts): a version 1 index gets them, empty, when it is
 * opened; SEARCH fills them as it reads messages.  Version 3 keeps the
 * BODY text zlib-compressed (search_body); search_text became a view that
 * serves it decompressed.  A version 2 index has its texts compressed
 * when it is opened, and is then vacuumed once to give the space back.
 */
#define SCHEMA_VERSION 3

/*
 * Search data.  search_header holds, per message, the values a header
 * search key compares against (one row per mailbox, field id and UID, so
 * a search reads one range); search_header_fields lists the field ids
 * present in a mailbox, so that an expunge or a copy reaches a message's
 * rows by primary key.
 */
#define SEARCH_HEADER_SQL \
	"CREATE TABLE IF NOT EXISTS search_header (" \
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)" \
	"  ON DELETE CASCADE," \
	" field TEXT NOT NULL," \
	" uid INTEGER NOT NULL," \
	" value BLOB NOT NULL," \
	" PRIMARY KEY (mailbox_id, field, uid)) WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS search_header_fields (" \
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)" \
	"  ON DELETE CASCADE," \
	" field TEXT NOT NULL," \
	" PRIMARY KEY (mailbox_id, field)) WITHOUT ROWID;"

/*
 * search_body holds the text BODY searches in, compressed (ztext: a zlib
 * stream of size bytes of UTF-8).  Mail text compresses to a third or
 * less, and nothing reads it on the search path: search_fts is a trigram
 * index over it (detail=none: it only answers "which messages hold every
 * trigram", which is all a prefilter needs), and candidates are confirmed
 * on the message file.  The text is kept only because FTS5 can remove a
 * document only when given the text it indexed (contentless_delete needs
 * SQLite 3.43).
 */
#define SEARCH_BODY_SQL \
	"CREATE TABLE IF NOT EXISTS search_body (" \
	" id INTEGER PRIMARY KEY," \
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)" \
	"  ON DELETE CASCADE," \
	" uid INTEGER NOT NULL," \
	" size INTEGER NOT NULL," \
	" ztext BLOB NOT NULL," \
	" UNIQUE (mailbox_id, uid));"

/*
 * search_fts is an external-content table over the view search_text,
 * which decompresses with herald_unzip() (registered on every connection
 * by try_open(); FTS5 reads the content only for 'rebuild' and
 * 'integrity-check', never for a MATCH on rowids).  The triggers keep
 * search_fts in step with search_body, including deletes cascaded from a
 * mailbox.  A connection without herald_unzip() (the sqlite3 shell) can
 * read everything but cannot delete texts: the trigger fails rather than
 * leave the full-text index out of step.
 */
#define SEARCH_FTS_SQL \
	"CREATE VIEW IF NOT EXISTS search_text (id, mailbox_id, uid, text)" \
	" AS SELECT id, mailbox_id, uid, herald_unzip(ztext, size)" \
	" FROM search_body;" \
	"CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(text," \
	" content='search_text', content_rowid='id'," \
	" tokenize='trigram case_sensitive 1', detail='none');" \
	"CREATE TRIGGER IF NOT EXISTS search_body_ai AFTER INSERT" \
	" ON search_body BEGIN" \
	" INSERT INTO search_fts (rowid, text)" \
	"  VALUES (new.id, herald_unzip(new.ztext, new.size));" \
	" END;" \
	"CREATE TRIGGER IF NOT EXISTS search_body_ad AFTER DELETE" \
	" ON search_body BEGIN" \
	" INSERT INTO search_fts (search_fts, rowid, text)" \
	"  VALUES ('delete', old.id, herald_unzip(old.ztext, old.size));" \
	" END;"

#define SEARCH_SCHEMA_SQL SEARCH_HEADER_SQL SEARCH_BODY_SQL SEARCH_FTS_SQL

/*
 * Version 2 to 3: compress the texts into search_body, keeping their ids,
 * which are the rowids search_fts knows them by, so the full-text index
 * stays as it is.  The old triggers go first: the copy must not index the
 * texts again, and dropping search_text must not remove them.
 */
#define SEARCH_V2_TO_V3_SQL \
	"DROP TRIGGER IF EXISTS search_text_ai;" \
	"DROP TRIGGER IF EXISTS search_text_ad;" \
	SEARCH_BODY_SQL \
	"INSERT INTO search_body (id, mailbox_id, uid, size, ztext)" \
	" SELECT id, mailbox_id, uid, length(CAST(text AS BLOB))," \
	" herald_zip(text) FROM search_text;" \
	"DROP TABLE search_text;" \
	SEARCH_FTS_SQL

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY,"
	" value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS mailboxes ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL,"
	" first_recent_uid INTEGER NOT NULL,"
	" uid_reserved INTEGER NOT NULL,"
	" highestmodseq INTEGER NOT NULL,"
	" modseq_reserved INTEGER NOT NULL,"
	" special_use INTEGER NOT NULL DEFAULT 0,"
	" rebuild INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS subscriptions (name TEXT PRIMARY KEY);"
	"CREATE TABLE IF NOT EXISTS messages ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)"
	"  ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" filename TEXT NOT NULL,"
	" flags INTEGER NOT NULL,"
	" keywords INTEGER NOT NULL,"
	" internal_date INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS messages_modseq"
	" ON messages (mailbox_id, modseq);"
	"CREATE TABLE IF NOT EXISTS expunged ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)"
	"  ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS expunged_modseq"
	" ON expunged (mailbox_id, modseq);"
	"CREATE TABLE IF NOT EXISTS keywords ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)"
	"  ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" name TEXT NOT NULL COLLATE NOCASE,"
	" PRIMARY KEY (mailbox_id, idx),"
	" UNIQUE (mailbox_id, name)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS cache ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id)"
	"  ON DELETE CASCADE,"
	" uid INTEGER NOT NULL,"
	" field TEXT NOT NULL,"
	" value BLOB NOT NULL,"
	" PRIMARY KEY (mailbox_id, uid, field)) WITHOUT ROWID;"
	SEARCH_SCHEMA_SQL;

#define MB_COLS "id, name, uidvalidity, uidnext, first_recent_uid," \
	" uid_reserved, highestmodseq, modseq_reserved, special_use, rebuild"
#define MSG_COLS "uid, flags, keywords, internal_date, size, modseq, filename"

/* S_MSG_INSERT_MANY: rows per statement. */
#define MSG_INSERT_ROWS 16
#define MSG_ROW "(?, ?, ?, ?, ?, ?, ?, ?)"
#define MSG_ROWS4 MSG_ROW ", " MSG_ROW ", " MSG_ROW ", " MSG_ROW
#define MSG_ROWS16 MSG_ROWS4 ", " MSG_ROWS4 ", " MSG_ROWS4 ", " MSG_ROWS4

enum stmt {
	S_META_GET,
	S_META_SET,
	S_MB_GET_NAME,
	S_MB_GET_ID,
	S_MB_LIST,
	S_MB_INSERT,
	S_MB_UPDATE,
	S_MB_DELETE,
	S_SUB_ADD,
	S_SUB_DEL,
	S_SUB_LIST,
	S_MSG_LIST,
	S_MSG_CHANGED,
	S_MSG_GET,
	S_MSG_INSERT,
	S_MSG_INSERT_MANY,
	S_MSG_UPDATE,
	S_MSG_DELETE,
	S_CACHE_DEL_MSG,
	S_EXP_INSERT,
	S_EXP_SINCE,
	S_COUNTS,
	S_KW_LIST,
	S_KW_INSERT,
	S_CACHE_PUT,
	S_CACHE_GET,
	S_CACHE_RANGE,
	S_CACHE_COPY,
	S_SH_LIST,
	S_SH_PUT,
	S_SH_FIELD,
	S_SH_DEL_MSG,
	S_SH_COPY,
	S_SH_COPY_FIELDS,
	S_ST_PUT,
	S_ST_DEL_MSG,
	S_ST_COPY,
	S_ST_INDEXED,
	S_ST_MATCH,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_META_GET] = "SELECT value FROM meta WHERE key = ?",
	[S_META_SET] = "INSERT INTO meta (key, value) VALUES (?, ?)"
	    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[S_MB_GET_NAME] = "SELECT " MB_COLS " FROM mailboxes WHERE name = ?",
	[S_MB_GET_ID] = "SELECT " MB_COLS " FROM mailboxes WHERE id = ?",
	[S_MB_LIST] = "SELECT " MB_COLS " FROM mailboxes ORDER BY name",
	[S_MB_INSERT] = "INSERT INTO mailboxes (name, uidvalidity, uidnext,"
	    " first_recent_uid, uid_reserved, highestmodseq, modseq_reserved,"
	    " special_use, rebuild) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[S_MB_UPDATE] = "UPDATE mailboxes SET name = ?, uidvalidity = ?,"
	    " uidnext = ?, first_recent_uid = ?, uid_reserved = ?,"
	    " highestmodseq = ?, modseq_reserved = ?, special_use = ?,"
	    " rebuild = ? WHERE id = ?",
	[S_MB_DELETE] = "DELETE FROM mailboxes WHERE id = ?",
	[S_SUB_ADD] = "INSERT OR IGNORE INTO subscriptions (name) VALUES (?)",
	[S_SUB_DEL] = "DELETE FROM subscriptions WHERE name = ?",
	[S_SUB_LIST] = "SELECT name FROM subscriptions ORDER BY name",
	[S_MSG_LIST] = "SELECT " MSG_COLS " FROM messages"
	    " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
	/*
	 * What changed since a modseq: left to itself the planner walks the
	 * whole mailbox in UID order to spare the sort, which on 100,000
	 * messages costs milliseconds at the end of every command.  The
	 * modseq index reads only the changed rows, which are few.
	 */
	[S_MSG_CHANGED] = "SELECT " MSG_COLS " FROM messages"
	    " INDEXED BY messages_modseq"
	    " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
	[S_MSG_GET] = "SELECT " MSG_COLS " FROM messages"
	    " WHERE mailbox_id = ? AND uid = ?",
	[S_MSG_INSERT] = "INSERT INTO messages (mailbox_id, uid, flags,"
	    " keywords, internal_date, size, modseq, filename)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	[S_MSG_INSERT_MANY] = "INSERT INTO messages (mailbox_id, uid, flags,"
	    " keywords, internal_date, size, modseq, filename)"
	    " VALUES " MSG_ROWS16,
	[S_MSG_UPDATE] = "UPDATE messages SET flags = ?, keywords = ?,"
	    " modseq = ?, filename = ? WHERE mailbox_id = ? AND uid = ?",
	[S_MSG_DELETE] = "DELETE FROM messages"
	    " WHERE mailbox_id = ? AND uid = ?",
	[S_CACHE_DEL_MSG] = "DELETE FROM cache"
	    " WHERE mailbox_id = ? AND uid = ?",
	[S_EXP_INSERT] = "INSERT OR REPLACE INTO expunged (mailbox_id, uid,"
	    " modseq) VALUES (?, ?, ?)",
	[S_EXP_SINCE] = "SELECT uid FROM expunged INDEXED BY expunged_modseq"
	    " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
	[S_COUNTS] = "SELECT count(*), total((flags & 1) = 0), total(uid >= ?)"
	    " FROM messages WHERE mailbox_id = ?",
	[S_KW_LIST] = "SELECT idx, name FROM keywords WHERE mailbox_id = ?"
	    " ORDER BY idx",
	[S_KW_INSERT] = "INSERT INTO keywords (mailbox_id, idx, name)"
	    " VALUES (?, ?, ?)",
	[S_CACHE_PUT] = "INSERT OR REPLACE INTO cache (mailbox_id, uid, field,"
	    " value) VALUES (?, ?, ?, ?)",
	[S_CACHE_GET] = "SELECT value FROM cache"
	    " WHERE mailbox_id = ? AND uid = ? AND field = ?",
	[S_CACHE_RANGE] = "SELECT uid, value FROM cache"
	    " WHERE mailbox_id = ? AND uid BETWEEN ? AND ? AND field = ?"
	    " ORDER BY uid",
	[S_CACHE_COPY] = "INSERT OR REPLACE INTO cache (mailbox_id, uid, field,"
	    " value) SELECT ?, ?, field, value FROM cache"
	    " WHERE mailbox_id = ? AND uid = ?",
	[S_SH_LIST] = "SELECT uid, value FROM search_header"
	    " WHERE mailbox_id = ? AND field = ? ORDER BY uid",
	/* Only for a message that still exists: SEARCH writes after reading
	 * the file, and an expunge may have come in between. */
	[S_SH_PUT] = "INSERT OR REPLACE INTO search_header (mailbox_id, field,"
	    " uid, value) SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM"
	    " messages WHERE mailbox_id = ?1 AND uid = ?3)",
	[S_SH_FIELD] = "INSERT OR IGNORE INTO search_header_fields"
	    " (mailbox_id, field) VALUES (?, ?)",
	[S_SH_DEL_MSG] = "DELETE FROM search_header WHERE mailbox_id = ?1"
	    " AND field IN (SELECT field FROM search_header_fields"
	    " WHERE mailbox_id = ?1) AND uid = ?2",
	[S_SH_COPY] = "INSERT OR REPLACE INTO search_header (mailbox_id, field,"
	    " uid, value) SELECT ?1, field, ?2, value FROM search_header"
	    " WHERE mailbox_id = ?3 AND field IN (SELECT field FROM"
	    " search_header_fields WHERE mailbox_id = ?3) AND uid = ?4",
	[S_SH_COPY_FIELDS] = "INSERT OR IGNORE INTO search_header_fields"
	    " (mailbox_id, field) SELECT ?1, field FROM search_header_fields"
	    " WHERE mailbox_id = ?2",
	/* Messages never change, so a row once written stays right. */
	[S_ST_PUT] = "INSERT INTO search_body (mailbox_id, uid, size, ztext)"
	    " SELECT ?1, ?2, ?3, herald_zip(?4) WHERE EXISTS (SELECT 1 FROM"
	    " messages WHERE mailbox_id = ?1 AND uid = ?2)"
	    " ON CONFLICT (mailbox_id, uid) DO NOTHING",
	[S_ST_DEL_MSG] = "DELETE FROM search_body"
	    " WHERE mailbox_id = ? AND uid = ?",
	[S_ST_COPY] = "INSERT INTO search_body (mailbox_id, uid, size, ztext)"
	    " SELECT ?1, ?2, size, ztext FROM search_body"
	    " WHERE mailbox_id = ?3 AND uid = ?4"
	    " ON CONFLICT (mailbox_id, uid) DO NOTHING",
	[S_ST_INDEXED] = "SELECT uid FROM search_body WHERE mailbox_id = ?"
	    " ORDER BY uid",
	/* CROSS JOIN: the full-text query first, then each hit by rowid
	 * (the other order would run the query once per message). */
	[S_ST_MATCH] = "SELECT t.uid FROM search_fts f CROSS JOIN search_body t"
	    " ON t.id = f.rowid WHERE search_fts MATCH ? AND t.mailbox_id = ?",
};

struct sqlite_index {
	struct store_index idx;
	sqlite3 *db;
	char *path;
	dev_t dev;		/* the file opened, to notice a replacement */
	ino_t ino;
	bool in_txn;
	bool replaced;		/* the path no longer names our file */
	bool vacuum;		/* a migration freed much space: VACUUM */
	sqlite3_stmt *stmts[S_COUNT];	/* prepared lazily, kept */
};

static int
db_error(struct sqlite_index *si, int rc, const char *what,
    struct store_error *err)
{
	const char *msg = si->db != NULL ? sqlite3_errmsg(si->db) :
	    sqlite3_errstr(rc);
	int sys = si->db != NULL ? sqlite3_system_errno(si->db) : 0;

	if ((rc & 0xff) == SQLITE_CANTOPEN && (sys == EMFILE || sys == ENFILE)) {
		log_warnx("store: %s: %s: %s: %s", si->path, what, msg,
		    strerror(sys));
		return store_error_set(err, STORE_ERR_UNAVAILABLE,
		    "Server busy, try again later");
	}
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		log_warnx("store: %s: %s: %s", si->path, what, msg);
		return store_error_set(err, STORE_ERR_INUSE,
		    "Mailbox is locked by another session, try again later");
	case SQLITE_FULL:
		log_warnx("store: %s: %s: %s", si->path, what, msg);
		return store_error_set(err, STORE_ERR_NOSPACE,
		    "Not enough disk space");
	default:
		return store_error_internal(err, "%s: %s: %s (%d)", si->path,
		    what, msg, rc);
	}
}

static sqlite3_stmt *
stmt_get(struct sqlite_index *si, enum stmt s, struct store_error *err)
{
	int rc;

	if (si->stmts[s] == NULL) {
		rc = sqlite3_prepare_v3(si->db, stmt_sql[s], -1,
		    SQLITE_PREPARE_PERSISTENT, &si->stmts[s], NULL);
		if (rc != SQLITE_OK) {
			db_error(si, rc, "prepare", err);
			return NULL;
		}
	}
	return si->stmts[s];
}

/* Step a statement that returns no rows, then reset it. */
static int
stmt_run(struct sqlite_index *si, sqlite3_stmt *st, const char *what,
    struct store_error *err)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_error(si, rc, what, err);
	return 0;
}

static void
stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
exec(struct sqlite_index *si, const char *sql, struct store_error *err)
{
	int rc = sqlite3_exec(si->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return db_error(si, rc, sql, err);
	return 0;
}

static void
finalize_all(struct sqlite_index *si)
{
	for (int i = 0; i < S_COUNT; i++) {
		if (si->stmts[i] != NULL)
			sqlite3_finalize(si->stmts[i]);
		si->stmts[i] = NULL;
	}
}

static bool
is_corrupt(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Longest text herald_unzip() inflates: far above what SEARCH stores
 * (4 MiB), far below SQLite's string limit. */
#define UNZIP_MAX (256 * 1024 * 1024)

/*
 * herald_zip(text): the text's bytes as a zlib stream (a blob).  The
 * window is sized to the text: deflate's setup of its default 32 KiB
 * window and hash table costs ten times the compression of a 2 KB text,
 * and a smaller window compresses a text that fits in it just as well.
 */
static void
sql_zip(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const void *in = sqlite3_value_blob(argv[0]);
	uLong in_len = (uLong)sqlite3_value_bytes(argv[0]);
	uLong out_cap = compressBound(in_len);
	Bytef *out = sqlite3_malloc64(out_cap);
	z_stream zs;
	int wbits = 9, rc;

	if (out == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	while (wbits < MAX_WBITS && ((uLong)1 << wbits) < in_len)
		wbits++;
	memset(&zs, 0, sizeof(zs));
	rc = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits,
	    wbits < MAX_WBITS ? 6 : 8, Z_DEFAULT_STRATEGY);
	if (rc == Z_OK) {
		zs.next_in = (Bytef *)(uintptr_t)(in != NULL ? in : "");
		zs.avail_in = (uInt)in_len;
		zs.next_out = out;
		zs.avail_out = (uInt)out_cap;
		rc = deflate(&zs, Z_FINISH) == Z_STREAM_END ? Z_OK : Z_BUF_ERROR;
		(void)deflateEnd(&zs);
	}
	if (rc != Z_OK) {
		sqlite3_free(out);
		sqlite3_result_error(ctx, "herald_zip: deflate failed", -1);
		return;
	}
	sqlite3_result_blob64(ctx, out, zs.total_out, sqlite3_free);
}

/*
 * herald_unzip(ztext, size): the text herald_zip() compressed, which was
 * size bytes.  Anything else is an error, never a different text: the
 * full-text index would be corrupted by deleting other text than it
 * indexed.
 */
static void
sql_unzip(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const void *in = sqlite3_value_blob(argv[0]);
	uLong in_len = (uLong)sqlite3_value_bytes(argv[0]);
	sqlite3_int64 size = sqlite3_value_int64(argv[1]);
	uLongf out_len = (uLongf)size;
	Bytef *out;

	if (in == NULL || size < 0 || size > UNZIP_MAX) {
		sqlite3_result_error(ctx, "herald_unzip: bad arguments", -1);
		return;
	}
	if ((out = sqlite3_malloc64((sqlite3_uint64)size + 1)) == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if (uncompress(out, &out_len, in, in_len) != Z_OK ||
	    out_len != (uLongf)size) {
		sqlite3_free(out);
		sqlite3_result_error(ctx, "herald_unzip: corrupt text", -1);
		return;
	}
	sqlite3_result_text64(ctx, (const char *)out, (sqlite3_uint64)size,
	    sqlite3_free, SQLITE_UTF8);
}

/* The functions the search schema's view and triggers call. */
static int
register_functions(sqlite3 *db)
{
	int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
	int rc;

	rc = sqlite3_create_function(db, "herald_zip", 1, flags, NULL,
	    sql_zip, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function(db, "herald_unzip", 2, flags,
		    NULL, sql_unzip, NULL, NULL);
	return rc;
}

#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * Bring a version v schema up to SCHEMA_VERSION, inside try_open()'s
 * write transaction.  A newer version than ours is refused (SQLITE_MISMATCH
 * fails the open): an older binary must not write an index it does not
 * understand.
 */
static int
migrate(struct sqlite_index *si, int v)
{
	int rc = SQLITE_OK;

	if (v == SCHEMA_VERSION)
		return SQLITE_OK;
	if (v < 1 || v > SCHEMA_VERSION)
		return SQLITE_MISMATCH;
	if (v < 2) {
		/* Empty search tables: SEARCH fills them lazily. */
		rc = sqlite3_exec(si->db, SEARCH_SCHEMA_SQL, NULL, NULL, NULL);
	} else if (v == 2) {
		rc = sqlite3_exec(si->db, SEARCH_V2_TO_V3_SQL, NULL, NULL,
		    NULL);
		/* The uncompressed texts left free pages behind. */
		si->vacuum = true;
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(si->db, "UPDATE schema_version SET version = "
		    STR(SCHEMA_VERSION), NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			log_info("store: %s: index schema %d upgraded to %d",
			    si->path, v, SCHEMA_VERSION);
	}
	return rc;
}

/* Returns an SQLite code; *created_r if the schema had to be made. */
static int
try_open(struct sqlite_index *si, const struct store_settings *set,
    bool *created_r)
{
	sqlite3_stmt *st = NULL;
	char pragma[128];
	int rc;

	*created_r = false;
	rc = sqlite3_open_v2(si->path, &si->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_extended_result_codes(si->db, 1);
	if ((rc = register_functions(si->db)) != SQLITE_OK)
		return rc;
	sqlite3_busy_timeout(si->db, set->busy_timeout_ms > 0 ?
	    (int)set->busy_timeout_ms : 10000);
	/* synchronous first: switching a new database to WAL is a write
	 * that would otherwise sync with the default setting. */
	snprintf(pragma, sizeof(pragma),
	    "PRAGMA synchronous = %s; PRAGMA journal_mode = WAL;"
	    " PRAGMA foreign_keys = ON;"
	    /* One connection per user and worker stays open while the
	     * user's sessions do: keep its page cache small (the kernel's
	     * page cache holds the file anyway). */
	    " PRAGMA cache_size = -256;",
	    set->fsync_disable ? "OFF" : "FULL");
	rc = sqlite3_exec(si->db, pragma, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_exec(si->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_prepare_v2(si->db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'schema_version'", -1, &st,
	    NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*created_r = sqlite3_column_int(st, 0) == 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_OK && *created_r) {
		rc = sqlite3_exec(si->db, schema_sql, NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(si->db, "INSERT INTO schema_version"
			    " VALUES (" STR(SCHEMA_VERSION) ")", NULL, NULL,
			    NULL);
	} else if (rc == SQLITE_OK) {
		int v = 0;

		rc = sqlite3_prepare_v2(si->db, "SELECT version FROM"
		    " schema_version", -1, &st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			v = sqlite3_column_int(st, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_CORRUPT;
		}
		/* Before migrating: DROP TABLE fails while a statement is
		 * active (SQLITE_LOCKED). */
		sqlite3_finalize(st);
		if (rc == SQLITE_OK)
			rc = migrate(si, v);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(si->db, "COMMIT", NULL, NULL, NULL);
	else
		(void)sqlite3_exec(si->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void
move_aside(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	long long now = (long long)time(NULL);

	for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
		char *from = xasprintf("%s%s", path, sfx[i]);
		char *to = xasprintf("%s.corrupt.%lld%s", path, now, sfx[i]);

		if (rename(from, to) < 0 && errno != ENOENT)
			log_warn("store: rename(%s, %s)", from, to);
		free(from);
		free(to);
	}
}

static int
sqlite_open(const char *path, const struct store_settings *set,
    struct store_index **idx_r, bool *created_r, struct store_error *err)
{
	struct sqlite_index *si = xmalloc(sizeof(*si));
	int rc;

	si->idx.v = &store_index_sqlite;
	si->path = xstrdup(path);
	rc = try_open(si, set, created_r);
	if (is_corrupt(rc)) {
		/* Rebuilt from the Maildir by the caller (store.c). */
		log_errx("store: index %s is corrupt (%s); moving it aside and"
		    " rebuilding from the Maildir", path, sqlite3_errstr(rc));
		finalize_all(si);
		sqlite3_close_v2(si->db);
		si->db = NULL;
		move_aside(path);
		rc = try_open(si, set, created_r);
	}
	if (rc != SQLITE_OK) {
		db_error(si, rc, "open", err);
		finalize_all(si);
		sqlite3_close_v2(si->db);
		free(si->path);
		free(si);
		return -1;
	}
	if (si->vacuum) {
		/* Once, after the migration committed; if it fails (another
		 * process holds the lock), the free pages are reused. */
		if (sqlite3_exec(si->db, "VACUUM; PRAGMA wal_checkpoint"
		    "(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK)
			log_warnx("store: %s: VACUUM: %s", path,
			    sqlite3_errmsg(si->db));
		si->vacuum = false;
	}
	{
		struct stat st;

		if (stat(path, &st) == 0) {
			si->dev = st.st_dev;
			si->ino = st.st_ino;
		}
	}
	*idx_r = &si->idx;
	return 0;
}

static void
sqlite_close(struct store_index *idx)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;

	if (si->in_txn)
		(void)sqlite3_exec(si->db, "ROLLBACK", NULL, NULL, NULL);
	finalize_all(si);
	sqlite3_close_v2(si->db);
	free(si->path);
	free(si);
}

static int
sqlite_begin(struct store_index *idx, bool write, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;

	ASSERT(!si->in_txn);
	if (si->replaced)
		return store_error_internal(err, "index %s was replaced",
		    si->path);
	if (exec(si, write ? "BEGIN IMMEDIATE" : "BEGIN", err) < 0)
		return -1;
	si->in_txn = true;
	if (write) {
		struct stat st;

		/*
		 * The index was deleted (or replaced) under us while another
		 * process rebuilt it from the Maildir: writing on here would
		 * hand out UIDs the new index also hands out.  Refuse; the
		 * owner reopens the store (store_user_index_replaced()).
		 */
		if (stat(si->path, &st) < 0 || st.st_dev != si->dev ||
		    st.st_ino != si->ino) {
			(void)sqlite3_exec(si->db, "ROLLBACK", NULL, NULL,
			    NULL);
			si->in_txn = false;
			si->replaced = true;
			log_warnx("store: index %s was deleted or replaced "
			    "while open: reopening", si->path);
			return store_error_set(err, STORE_ERR_INUSE,
			    "Index changed, try again");
		}
	}
	return 0;
}

static bool
sqlite_replaced(struct store_index *idx)
{
	return ((struct sqlite_index *)idx)->replaced;
}

static int
sqlite_commit(struct store_index *idx, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;

	ASSERT(si->in_txn);
	if (exec(si, "COMMIT", err) < 0) {
		(void)sqlite3_exec(si->db, "ROLLBACK", NULL, NULL, NULL);
		si->in_txn = false;
		return -1;
	}
	si->in_txn = false;
	return 0;
}

static void
sqlite_rollback(struct store_index *idx)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;

	if (!si->in_txn)
		return;
	(void)sqlite3_exec(si->db, "ROLLBACK", NULL, NULL, NULL);
	si->in_txn = false;
}

static int
sqlite_meta_get(struct store_index *idx, const char *key, uint64_t *value_r,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_META_GET, err);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*value_r = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) :
	    0;
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(si, rc, "meta_get", err);
	return 0;
}

static int
sqlite_meta_set(struct store_index *idx, const char *key, uint64_t value,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_META_SET, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)value);
	return stmt_run(si, st, "meta_set", err);
}

static void
read_mailbox(sqlite3_stmt *st, struct store_index_mailbox *mb)
{
	const unsigned char *name = sqlite3_column_text(st, 1);

	memset(mb, 0, sizeof(*mb));
	mb->id = sqlite3_column_int64(st, 0);
	snprintf(mb->name, sizeof(mb->name), "%s",
	    name != NULL ? (const char *)name : "");
	mb->uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
	mb->uidnext = (uint32_t)sqlite3_column_int64(st, 3);
	mb->first_recent_uid = (uint32_t)sqlite3_column_int64(st, 4);
	mb->uid_reserved = (uint32_t)sqlite3_column_int64(st, 5);
	mb->highestmodseq = (uint64_t)sqlite3_column_int64(st, 6);
	mb->modseq_reserved = (uint64_t)sqlite3_column_int64(st, 7);
	mb->special_use = (unsigned)sqlite3_column_int64(st, 8);
	mb->rebuild = (unsigned)sqlite3_column_int64(st, 9);
}

static int
sqlite_mailbox_get(struct store_index *idx, const char *name, int64_t id,
    struct store_index_mailbox *mb_r, bool *found_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, name != NULL ? S_MB_GET_NAME :
	    S_MB_GET_ID, err);
	int rc;

	if (st == NULL)
		return -1;
	if (name != NULL)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	*found_r = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		read_mailbox(st, mb_r);
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(si, rc, "mailbox_get", err);
	return 0;
}

static int
sqlite_mailbox_list(struct store_index *idx, struct arena *arena,
    struct store_index_mailbox **list_r, unsigned *count_r,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MB_LIST, err);
	struct store_index_mailbox *list = NULL;
	unsigned count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			struct store_index_mailbox *n;

			cap = cap == 0 ? 16 : cap * 2;
			n = arena_alloc(arena, cap * sizeof(*n));
			if (count > 0)
				memcpy(n, list, count * sizeof(*n));
			list = n;
		}
		read_mailbox(st, &list[count++]);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_error(si, rc, "mailbox_list", err);
	*list_r = list;
	*count_r = count;
	return 0;
}

static void
bind_mailbox(sqlite3_stmt *st, const struct store_index_mailbox *mb)
{
	sqlite3_bind_text(st, 1, mb->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, mb->uidvalidity);
	sqlite3_bind_int64(st, 3, mb->uidnext);
	sqlite3_bind_int64(st, 4, mb->first_recent_uid);
	sqlite3_bind_int64(st, 5, mb->uid_reserved);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)mb->highestmodseq);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)mb->modseq_reserved);
	sqlite3_bind_int64(st, 8, mb->special_use);
	sqlite3_bind_int64(st, 9, mb->rebuild);
}

static int
sqlite_mailbox_insert(struct store_index *idx, struct store_index_mailbox *mb,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MB_INSERT, err);

	if (st == NULL)
		return -1;
	bind_mailbox(st, mb);
	if (stmt_run(si, st, "mailbox_insert", err) < 0)
		return -1;
	mb->id = sqlite3_last_insert_rowid(si->db);
	return 0;
}

static int
sqlite_mailbox_update(struct store_index *idx,
    const struct store_index_mailbox *mb, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MB_UPDATE, err);

	if (st == NULL)
		return -1;
	bind_mailbox(st, mb);
	sqlite3_bind_int64(st, 10, mb->id);
	return stmt_run(si, st, "mailbox_update", err);
}

static int
sqlite_mailbox_delete(struct store_index *idx, int64_t id,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MB_DELETE, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return stmt_run(si, st, "mailbox_delete", err);
}

static int
sqlite_subscription_set(struct store_index *idx, const char *name, bool on,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, on ? S_SUB_ADD : S_SUB_DEL, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return stmt_run(si, st, "subscription_set", err);
}

static int
sqlite_subscription_list(struct store_index *idx, struct arena *arena,
    char ***names_r, unsigned *count_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_SUB_LIST, err);
	char **names = NULL;
	unsigned count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			char **n;

			cap = cap == 0 ? 16 : cap * 2;
			n = arena_alloc(arena, cap * sizeof(*n));
			if (count > 0)
				memcpy(n, names, count * sizeof(*n));
			names = n;
		}
		names[count++] = arena_strdup(arena,
		    (const char *)sqlite3_column_text(st, 0));
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_error(si, rc, "subscription_list", err);
	*names_r = names;
	*count_r = count;
	return 0;
}

/* Move count elements of size bytes from a malloc'd array into arena
 * (one spare element, so the result is never NULL) and free it. */
static void *
arena_take(struct arena *arena, void *tmp, unsigned count, size_t size)
{
	void *out = arena_alloc(arena, ((size_t)count + 1) * size);

	if (count > 0)
		memcpy(out, tmp, (size_t)count * size);
	free(tmp);
	return out;
}

static void
read_msg(sqlite3_stmt *st, struct arena *arena, struct store_msg *m)
{
	m->uid = (uint32_t)sqlite3_column_int64(st, 0);
	m->flags = (uint32_t)sqlite3_column_int64(st, 1);
	m->keywords = (uint64_t)sqlite3_column_int64(st, 2);
	m->internal_date = sqlite3_column_int64(st, 3);
	m->size = (uint64_t)sqlite3_column_int64(st, 4);
	m->modseq = (uint64_t)sqlite3_column_int64(st, 5);
	m->filename = arena_strdup(arena,
	    (const char *)sqlite3_column_text(st, 6));
}

static int
sqlite_msg_list(struct store_index *idx, int64_t mailbox_id,
    uint64_t since_modseq, struct arena *arena, struct store_msg **msgs_r,
    unsigned *count_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, since_modseq == 0 ? S_MSG_LIST :
	    S_MSG_CHANGED, err);
	struct store_msg *msgs = NULL;
	unsigned count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)since_modseq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			msgs = xrealloc(msgs, cap * sizeof(*msgs));
		}
		read_msg(st, arena, &msgs[count++]);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		free(msgs);
		return db_error(si, rc, "msg_list", err);
	}
	*msgs_r = arena_take(arena, msgs, count, sizeof(*msgs));
	*count_r = count;
	return 0;
}

static int
sqlite_msg_get(struct store_index *idx, int64_t mailbox_id, uint32_t uid,
    struct arena *arena, struct store_msg *msg_r, bool *found_r,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MSG_GET, err);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	rc = sqlite3_step(st);
	*found_r = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		read_msg(st, arena, msg_r);
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(si, rc, "msg_get", err);
	return 0;
}

/* Bind m as row `row` of an insert (8 parameters a row). */
static void
bind_msg_row(sqlite3_stmt *st, int row, int64_t mailbox_id,
    const struct store_msg *m)
{
	int b = row * 8;

	sqlite3_bind_int64(st, b + 1, mailbox_id);
	sqlite3_bind_int64(st, b + 2, m->uid);
	sqlite3_bind_int64(st, b + 3, m->flags & STORE_F_SYSTEM_MASK);
	sqlite3_bind_int64(st, b + 4, (sqlite3_int64)m->keywords);
	sqlite3_bind_int64(st, b + 5, m->internal_date);
	sqlite3_bind_int64(st, b + 6, (sqlite3_int64)m->size);
	sqlite3_bind_int64(st, b + 7, (sqlite3_int64)m->modseq);
	sqlite3_bind_text(st, b + 8, m->filename, -1, SQLITE_STATIC);
}

static int
sqlite_msg_insert(struct store_index *idx, int64_t mailbox_id,
    const struct store_msg *m, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MSG_INSERT, err);

	if (st == NULL)
		return -1;
	bind_msg_row(st, 0, mailbox_id, m);
	return stmt_run(si, st, "msg_insert", err);
}

/* Many rows, MSG_INSERT_ROWS per statement: adopting a folder of
 * 100,000 files spent most of its index time running statements. */
static int
sqlite_msg_insert_many(struct store_index *idx, int64_t mailbox_id,
    const struct store_msg *msgs, unsigned count, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	unsigned i = 0;

	for (; count - i >= MSG_INSERT_ROWS; i += MSG_INSERT_ROWS) {
		sqlite3_stmt *st = stmt_get(si, S_MSG_INSERT_MANY, err);

		if (st == NULL)
			return -1;
		for (int r = 0; r < MSG_INSERT_ROWS; r++)
			bind_msg_row(st, r, mailbox_id, &msgs[i + r]);
		if (stmt_run(si, st, "msg_insert_many", err) < 0)
			return -1;
	}
	for (; i < count; i++)
		if (sqlite_msg_insert(idx, mailbox_id, &msgs[i], err) < 0)
			return -1;
	return 0;
}

static int
sqlite_msg_update(struct store_index *idx, int64_t mailbox_id,
    const struct store_msg *m, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_MSG_UPDATE, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, m->flags & STORE_F_SYSTEM_MASK);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)m->keywords);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)m->modseq);
	sqlite3_bind_text(st, 4, m->filename, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, mailbox_id);
	sqlite3_bind_int64(st, 6, m->uid);
	return stmt_run(si, st, "msg_update", err);
}

static int
sqlite_msg_expunge(struct store_index *idx, int64_t mailbox_id, uint32_t uid,
    uint64_t modseq, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	static const enum stmt del[] = {
		S_MSG_DELETE, S_CACHE_DEL_MSG, S_SH_DEL_MSG, S_ST_DEL_MSG,
	};
	sqlite3_stmt *st;

	for (size_t i = 0; i < ARRAY_SIZE(del); i++) {
		if ((st = stmt_get(si, del[i], err)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_int64(st, 2, uid);
		if (stmt_run(si, st, "msg_expunge", err) < 0)
			return -1;
	}
	if ((st = stmt_get(si, S_EXP_INSERT, err)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
	return stmt_run(si, st, "msg_expunge log", err);
}

static int collect_uids(struct sqlite_index *si, sqlite3_stmt *st,
    const char *what, bool sort, struct arena *arena, uint32_t **uids_r,
    unsigned *count_r, struct store_error *err);

static int
sqlite_expunged_since(struct store_index *idx, int64_t mailbox_id,
    uint64_t since_modseq, struct arena *arena, uint32_t **uids_r,
    unsigned *count_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_EXP_SINCE, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)since_modseq);
	return collect_uids(si, st, "expunged_since", false, arena, uids_r,
	    count_r, err);
}

static int
sqlite_msg_counts(struct store_index *idx, int64_t mailbox_id,
    uint32_t first_recent_uid, uint32_t *messages_r, uint32_t *unseen_r,
    uint32_t *recent_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_COUNTS, err);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, first_recent_uid);
	sqlite3_bind_int64(st, 2, mailbox_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*messages_r = (uint32_t)sqlite3_column_int64(st, 0);
		*unseen_r = (uint32_t)sqlite3_column_double(st, 1);
		*recent_r = (uint32_t)sqlite3_column_double(st, 2);
	}
	stmt_done(st);
	if (rc != SQLITE_ROW)
		return db_error(si, rc, "msg_counts", err);
	return 0;
}

static int
sqlite_keyword_list(struct store_index *idx, int64_t mailbox_id,
    struct arena *arena, char ***names_r, unsigned *count_r,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_KW_LIST, err);
	char **names = arena_alloc(arena, (STORE_KEYWORDS_MAX + 1) *
	    sizeof(*names));
	unsigned count = 0;
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t bit = sqlite3_column_int64(st, 0);

		/* Bits are allocated densely from 0 (mailbox.c). */
		if (bit != (int64_t)count || count >= STORE_KEYWORDS_MAX)
			continue;
		names[count++] = arena_strdup(arena,
		    (const char *)sqlite3_column_text(st, 1));
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return db_error(si, rc, "keyword_list", err);
	*names_r = names;
	*count_r = count;
	return 0;
}

static int
sqlite_keyword_insert(struct store_index *idx, int64_t mailbox_id,
    unsigned bit, const char *name, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_KW_INSERT, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, bit);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	return stmt_run(si, st, "keyword_insert", err);
}

static int
sqlite_cache_put(struct store_index *idx, int64_t mailbox_id, uint32_t uid,
    const char *field, const void *data, size_t len, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_CACHE_PUT, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, field, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 4, len > 0 ? data : "", len, SQLITE_STATIC);
	return stmt_run(si, st, "cache_put", err);
}

static int
sqlite_cache_get(struct store_index *idx, int64_t mailbox_id, uint32_t uid,
    const char *field, struct arena *arena, void **data_r, size_t *len_r,
    bool *found_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_CACHE_GET, err);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, field, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*found_r = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		char *copy = arena_alloc(arena, n + 1);

		if (n > 0)
			memcpy(copy, p, n);
		*data_r = copy;
		*len_r = n;
	}
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(si, rc, "cache_get", err);
	return 0;
}

static int
sqlite_cache_get_range(struct store_index *idx, int64_t mailbox_id,
    uint32_t uid_lo, uint32_t uid_hi, const char *field, struct arena *arena,
    struct store_cache_value **values_r, unsigned *count_r,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_CACHE_RANGE, err);
	struct store_cache_value *v = NULL, *out;
	unsigned count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid_lo);
	sqlite3_bind_int64(st, 3, uid_hi);
	sqlite3_bind_text(st, 4, field, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		char *copy = arena_alloc(arena, n + 1);

		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			v = xrealloc(v, cap * sizeof(*v));
		}
		if (n > 0)
			memcpy(copy, p, n);
		v[count].uid = (uint32_t)sqlite3_column_int64(st, 0);
		v[count].data = copy;
		v[count++].len = n;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return db_error(si, rc, "cache_get_range", err);
	}
	out = arena_alloc(arena, (count + 1) * sizeof(*out));
	if (count > 0)
		memcpy(out, v, count * sizeof(*out));
	free(v);
	*values_r = out;
	*count_r = count;
	return 0;
}

static int
sqlite_cache_copy(struct store_index *idx, int64_t src_mailbox_id,
    uint32_t src_uid, int64_t dst_mailbox_id, uint32_t dst_uid,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	static const enum stmt copy[] = { S_CACHE_COPY, S_SH_COPY, S_ST_COPY };
	sqlite3_stmt *st;

	for (size_t i = 0; i < ARRAY_SIZE(copy); i++) {
		if ((st = stmt_get(si, copy[i], err)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, dst_mailbox_id);
		sqlite3_bind_int64(st, 2, dst_uid);
		sqlite3_bind_int64(st, 3, src_mailbox_id);
		sqlite3_bind_int64(st, 4, src_uid);
		if (stmt_run(si, st, "cache_copy", err) < 0)
			return -1;
	}
	if (src_mailbox_id == dst_mailbox_id)
		return 0;
	/* The destination's field list must name the copied fields, or
	 * its expunges would not find them. */
	if ((st = stmt_get(si, S_SH_COPY_FIELDS, err)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, dst_mailbox_id);
	sqlite3_bind_int64(st, 2, src_mailbox_id);
	return stmt_run(si, st, "cache_copy fields", err);
}

static int
sqlite_search_header_list(struct store_index *idx, int64_t mailbox_id,
    const char *field, struct arena *arena, struct store_search_value **vals_r,
    unsigned *count_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_SH_LIST, err);
	struct store_search_value *vals = NULL;
	unsigned count = 0, cap = 0;
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_text(st, 2, field, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		char *copy = arena_alloc(arena, n + 1);

		if (count == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			vals = xrealloc(vals, cap * sizeof(*vals));
		}
		vals[count].uid = (uint32_t)sqlite3_column_int64(st, 0);

		if (n > 0)
			memcpy(copy, p, n);
		vals[count].data = copy;
		vals[count].len = n;
		count++;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		free(vals);
		return db_error(si, rc, "search_header_list", err);
	}
	*vals_r = arena_take(arena, vals, count, sizeof(*vals));
	*count_r = count;
	return 0;
}

static int
sqlite_search_put(struct store_index *idx, int64_t mailbox_id,
    const struct store_search_item *items, unsigned count,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	const char *last_field = NULL;
	sqlite3_stmt *st;

	for (unsigned i = 0; i < count; i++) {
		const struct store_search_item *it = &items[i];

		if (it->field == NULL) {
			if ((st = stmt_get(si, S_ST_PUT, err)) == NULL)
				return -1;
			sqlite3_bind_int64(st, 1, mailbox_id);
			sqlite3_bind_int64(st, 2, it->uid);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)it->len);
			sqlite3_bind_text64(st, 4, it->len > 0 ? it->data : "",
			    it->len, SQLITE_STATIC, SQLITE_UTF8);
			if (stmt_run(si, st, "search_put text", err) < 0)
				return -1;
			continue;
		}
		if (last_field == NULL || strcmp(last_field, it->field) != 0) {
			if ((st = stmt_get(si, S_SH_FIELD, err)) == NULL)
				return -1;
			sqlite3_bind_int64(st, 1, mailbox_id);
			sqlite3_bind_text(st, 2, it->field, -1, SQLITE_STATIC);
			if (stmt_run(si, st, "search_put field", err) < 0)
				return -1;
			last_field = it->field;
		}
		if ((st = stmt_get(si, S_SH_PUT, err)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_text(st, 2, it->field, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, it->uid);
		sqlite3_bind_blob64(st, 4, it->len > 0 ? it->data : "",
		    it->len, SQLITE_STATIC);
		if (stmt_run(si, st, "search_put header", err) < 0)
			return -1;
	}
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Run st (bound) and collect column 0 as UIDs, ascending, from arena. */
static int
collect_uids(struct sqlite_index *si, sqlite3_stmt *st, const char *what,
    bool sort, struct arena *arena, uint32_t **uids_r, unsigned *count_r,
    struct store_error *err)
{
	uint32_t *uids = NULL;
	unsigned count = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[count++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		free(uids);
		return db_error(si, rc, what, err);
	}
	if (sort && count > 1)
		qsort(uids, count, sizeof(*uids), cmp_u32);
	*uids_r = arena_take(arena, uids, count, sizeof(*uids));
	*count_r = count;
	return 0;
}

static int
sqlite_search_text_indexed(struct store_index *idx, int64_t mailbox_id,
    struct arena *arena, uint32_t **uids_r, unsigned *count_r,
    struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st = stmt_get(si, S_ST_INDEXED, err);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	return collect_uids(si, st, "search_text_indexed", false, arena,
	    uids_r, count_r, err);
}

/* Longest run of trigrams put in one query: more only narrow the
 * candidates a little and cost a posting list each. */
#define FTS_MAX_TRIGRAMS 24

/*
 * The FTS5 query for a needle: every distinct trigram (3 code points) of
 * it, each a quoted string, ANDed.  detail=none keeps no positions, so
 * this finds the texts holding all of them anywhere: a superset of those
 * holding the needle.  False if the needle has fewer than 3 code points.
 */
static bool
fts_query(struct buf *q, const char *needle, size_t len)
{
	size_t bnd[FTS_MAX_TRIGRAMS + 4], n = 0;

	/* Code point k is needle[bnd[k] .. bnd[k + 1]]. */
	for (size_t i = 0; i <= len && n < ARRAY_SIZE(bnd); i++)
		if (i == len || ((unsigned char)needle[i] & 0xc0) != 0x80)
			bnd[n++] = i;
	if (n < 4)
		return false;
	for (size_t k = 0; k + 3 < n && k < FTS_MAX_TRIGRAMS; k++) {
		if (k > 0)
			buf_append_str(q, " AND ");
		buf_append(q, "\"", 1);
		for (size_t j = bnd[k]; j < bnd[k + 3]; j++) {
			if (needle[j] == '"')
				buf_append(q, "\"", 1);
			buf_append(q, &needle[j], 1);
		}
		buf_append(q, "\"", 1);
	}
	return true;
}

static int
sqlite_search_text_candidates(struct store_index *idx, int64_t mailbox_id,
    const char *needle, size_t len, struct arena *arena, uint32_t **uids_r,
    unsigned *count_r, bool *usable_r, struct store_error *err)
{
	struct sqlite_index *si = (struct sqlite_index *)idx;
	sqlite3_stmt *st;
	struct buf q;
	int ret;

	*usable_r = false;
	*count_r = 0;
	*uids_r = NULL;
	buf_init(&q, 0);
	if (!fts_query(&q, needle, len)) {
		buf_free(&q);
		return 0;
	}
	if ((st = stmt_get(si, S_ST_MATCH, err)) == NULL) {
		buf_free(&q);
		return -1;
	}
	sqlite3_bind_text(st, 1, q.data, (int)q.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, mailbox_id);
	ret = collect_uids(si, st, "search_text_candidates", true, arena,
	    uids_r, count_r, err);
	buf_free(&q);
	if (ret == 0)
		*usable_r = true;
	return ret;
}

const struct store_index_vfuncs store_index_sqlite = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.replaced = sqlite_replaced,
	.meta_get = sqlite_meta_get,
	.meta_set = sqlite_meta_set,
	.mailbox_get = sqlite_mailbox_get,
	.mailbox_list = sqlite_mailbox_list,
	.mailbox_insert = sqlite_mailbox_insert,
	.mailbox_update = sqlite_mailbox_update,
	.mailbox_delete = sqlite_mailbox_delete,
	.subscription_set = sqlite_subscription_set,
	.subscription_list = sqlite_subscription_list,
	.msg_list = sqlite_msg_list,
	.msg_get = sqlite_msg_get,
	.msg_insert = sqlite_msg_insert,
	.msg_insert_many = sqlite_msg_insert_many,
	.msg_update = sqlite_msg_update,
	.msg_expunge = sqlite_msg_expunge,
	.expunged_since = sqlite_expunged_since,
	.msg_counts = sqlite_msg_counts,
	.keyword_list = sqlite_keyword_list,
	.keyword_insert = sqlite_keyword_insert,
	.cache_put = sqlite_cache_put,
	.cache_get = sqlite_cache_get,
	.cache_get_range = sqlite_cache_get_range,
	.cache_copy = sqlite_cache_copy,
	.search_header_list = sqlite_search_header_list,
	.search_put = sqlite_search_put,
	.search_text_indexed = sqlite_search_text_indexed,
	.search_text_candidates = sqlite_search_text_candidates,
};
