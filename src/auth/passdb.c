#include "auth/passdb.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/password.h"
#include "core/xmalloc.h"
#include "log/log.h"

/* A passwd-file larger than this is refused rather than read into memory. */
#define PASSWD_FILE_MAX_SIZE (64 * 1024 * 1024)
#define USER_NAME_MAX 255

struct passdb_entry {
	const char *user; /* NUL-terminated, inside db->data */
	const char *hash; /* NUL-terminated, inside db->data */
	uint32_t hv;      /* hash of user */
};

struct passdb {
	char *path;
	pthread_mutex_t lock; /* guards everything below */

	bool loaded : 1;       /* cache matches the file identity below */
	bool error_logged : 1; /* log a read error once until it recovers */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;

	char *data; /* file copy; fields NUL-terminated in place */
	size_t data_len;
	struct passdb_entry *entries;
	size_t count;
	uint32_t *table; /* open addressing: entry index + 1, 0 = free */
	size_t table_mask;
};

/* One line of a passwd-file, split into the fields we use. */
struct pw_line {
	size_t user_len; /* 0 = not a user line (comment, blank, bad) */
	size_t pw_start; /* offset of the password field */
	size_t pw_end;   /* end of the password field */
	bool malformed;  /* not a comment or blank, yet no user */
};

/*
 * Split a line (without its "\n"; a trailing "\r" is tolerated) into
 * user and password.  Blank lines and lines starting with '#' are skipped,
 * as Dovecot does.
 */
static void
pw_line_parse(const char *line, size_t len, struct pw_line *pl)
{
	const char *colon, *end;

	memset(pl, 0, sizeof(*pl));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0 || line[0] == '#')
		return;
	colon = memchr(line, ':', len);
	if (colon == NULL || colon == line) {
		pl->malformed = true;
		return;
	}
	pl->user_len = (size_t)(colon - line);
	pl->pw_start = pl->user_len + 1;
	end = memchr(colon + 1, ':', len - pl->pw_start);
	pl->pw_end = end != NULL ? (size_t)(end - line) : len;
}

static uint32_t
name_hash(const char *s, size_t len)
{
	/* FNV-1a.  The file is the admin's, so no keyed hash is needed. */
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

bool
passwd_user_name_valid(const char *user)
{
	size_t len = strlen(user);

	if (len == 0 || len > USER_NAME_MAX)
		return false;
	/* A leading '#' would turn the line into a comment; "." and ".."
	 * must never become path components. */
	if (user[0] == '#' || strcmp(user, ".") == 0 || strcmp(user, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)user; *p != '\0';
	     p++) {
		if (*p < 0x20 || *p == 0x7f || *p == ':' || *p == ' ' ||
		    *p == '/')
			return false;
	}
	return true;
}

/* The password field is written as is, so it must not break the line. */
static bool
hash_valid(const char *hash)
{
	if (hash[0] == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)hash; *p != '\0';
	     p++) {
		if (*p < 0x20 || *p == 0x7f || *p == ':')
			return false;
	}
	return true;
}

/*
 * Read a whole file.  Returns 0 with *data_r (malloc'ed, NUL-terminated),
 * or -1 with errno set (EFBIG when too large).  *st_r is the fstat() of
 * what was read, which is what the cache identity must describe.
 */
static int
read_file(const char *path, char **data_r, size_t *len_r, struct stat *st_r)
{
	char *data;
	size_t len = 0, cap;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, st_r) < 0)
		goto fail;
	if (!S_ISREG(st_r->st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (st_r->st_size > PASSWD_FILE_MAX_SIZE) {
		errno = EFBIG;
		goto fail;
	}
	/* Room for the NUL and one more byte, so that reading an unchanged
	 * file ends with read() returning 0 without growing the buffer. */
	cap = (size_t)st_r->st_size + 2;
	data = xmalloc(cap);
	for (;;) {
		ssize_t r;

		if (len + 1 == cap) {
			/* The file grew while we read it. */
			if (cap > PASSWD_FILE_MAX_SIZE) {
				xfree_secret(data, cap);
				errno = EFBIG;
				goto fail;
			}
			/* Not realloc: the old block must be wiped. */
			char *bigger = xmalloc(cap * 2);

			memcpy(bigger, data, len);
			xfree_secret(data, cap);
			data = bigger;
			cap *= 2;
		}
		r = read(fd, data + len, cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			xfree_secret(data, cap);
			errno = saved;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	data[len] = '\0';
	close(fd);
	*data_r = data;
	*len_r = len;
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* ---- The cached database ---- */

struct passdb *
passdb_new(const char *path)
{
	struct passdb *db = xmalloc(sizeof(*db));

	db->path = xstrdup(path);
	pthread_mutex_init(&db->lock, NULL);
	return db;
}

static void
cache_clear(struct passdb *db)
{
	/* The data may hold {PLAIN} passwords. */
	xfree_secret(db->data, db->data_len);
	free(db->entries);
	free(db->table);
	db->data = NULL;
	db->data_len = 0;
	db->entries = NULL;
	db->count = 0;
	db->table = NULL;
	db->table_mask = 0;
	db->loaded = false;
}

void
passdb_free(struct passdb **dbp)
{
	struct passdb *db = *dbp;

	if (db == NULL)
		return;
	*dbp = NULL;
	cache_clear(db);
	pthread_mutex_destroy(&db->lock);
	free(db->path);
	free(db);
}

static const struct passdb_entry *
cache_find(const struct passdb *db, const char *user, size_t len, uint32_t hv)
{
	size_t i;

	if (db->table == NULL)
		return NULL;
	for (i = hv & db->table_mask; db->table[i] != 0;
	     i = (i + 1) & db->table_mask) {
		const struct passdb_entry *e = &db->entries[db->table[i] - 1];

		if (e->hv == hv && strncmp(e->user, user, len) == 0 &&
		    e->user[len] == '\0')
			return e;
	}
	return NULL;
}

/* Build the cache from data (taken over).  The first line of a user wins. */
static void
cache_build(struct passdb *db, char *data, size_t len)
{
	size_t lines = 1, table_size = 16, pos = 0, lineno = 0;

	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n')
			lines++;
	while (table_size < lines * 2)
		table_size *= 2;
	db->data = data;
	db->data_len = len;
	db->entries = xcalloc(lines, sizeof(*db->entries));
	db->table = xcalloc(table_size, sizeof(*db->table));
	db->table_mask = table_size - 1;

	while (pos < len) {
		char *line = data + pos, *nl;
		size_t llen;
		struct pw_line pl;
		struct passdb_entry *e;

		nl = memchr(line, '\n', len - pos);
		llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += llen + 1;
		lineno++;
		pw_line_parse(line, llen, &pl);
		if (pl.malformed)
			log_warnx("passdb: %s:%zu: no user name field, "
			          "line ignored",
			          db->path, lineno);
		if (pl.user_len == 0)
			continue;
		line[pl.user_len] = '\0';
		line[pl.pw_end] = '\0';
		e = &db->entries[db->count];
		e->user = line;
		e->hash = line + pl.pw_start;
		e->hv = name_hash(line, pl.user_len);
		if (cache_find(db, e->user, pl.user_len, e->hv) != NULL)
			continue;
		for (size_t i = e->hv & db->table_mask;;
		     i = (i + 1) & db->table_mask) {
			if (db->table[i] == 0) {
				db->table[i] = (uint32_t)(db->count + 1);
				break;
			}
		}
		db->count++;
	}
}

static bool
same_identity(const struct passdb *db, const struct stat *st)
{
	return db->dev == st->st_dev && db->ino == st->st_ino &&
	       db->size == st->st_size &&
	       db->mtime.tv_sec == st->st_mtim.tv_sec &&
	       db->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       db->ctime.tv_sec == st->st_ctim.tv_sec &&
	       db->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Reload the file when it changed.  Call with db->lock held; 0 or -1. */
static int
passdb_refresh(struct passdb *db)
{
	struct stat st;
	char *data;
	size_t len;

	if (stat(db->path, &st) == 0 && db->loaded && same_identity(db, &st))
		return 0;
	if (read_file(db->path, &data, &len, &st) < 0) {
		if (!db->error_logged)
			log_err("passdb: cannot read %s", db->path);
		db->error_logged = true;
		cache_clear(db);
		return -1;
	}
	cache_clear(db);
	cache_build(db, data, len);
	db->dev = st.st_dev;
	db->ino = st.st_ino;
	db->size = st.st_size;
	db->mtime = st.st_mtim;
	db->ctime = st.st_ctim;
	db->loaded = true;
	if (db->error_logged)
		log_info("passdb: %s readable again", db->path);
	db->error_logged = false;
	return 0;
}

/* 1 with *hash_r (caller wipes and frees), 0 for an unknown user, -1. */
static int
passdb_lookup(struct passdb *db, const char *user, char **hash_r)
{
	const struct passdb_entry *e;
	size_t len = strlen(user);
	int ret;

	pthread_mutex_lock(&db->lock);
	if (passdb_refresh(db) < 0)
		ret = -1;
	else if ((e = cache_find(db, user, len, name_hash(user, len))) == NULL)
		ret = 0;
	else {
		if (hash_r != NULL)
			*hash_r = xstrdup(e->hash);
		ret = 1;
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

enum passdb_result
passdb_verify(struct passdb *db, const char *user, const char *password)
{
	char *hash = NULL;
	bool ok;

	switch (passdb_lookup(db, user, &hash)) {
	case -1:
		return PASSDB_ERROR;
	case 0:
		password_verify_dummy(password);
		return PASSDB_FAIL;
	default:
		break;
	}
	/* Hash outside the lock: crypt is the slow part. */
	ok = password_verify(hash, password);
	xfree_secret(hash, strlen(hash));
	return ok ? PASSDB_OK : PASSDB_FAIL;
}

bool
passdb_user_exists(struct passdb *db, const char *user)
{
	return passdb_lookup(db, user, NULL) == 1;
}

int
passdb_user_lookup(struct passdb *db, const char *user)
{
	return passdb_lookup(db, user, NULL);
}

/* ---- Editing ---- */

struct pw_edit {
	const char *path; /* as given (the lock is PATH.lock) */
	char *target;     /* the file replaced: path, symlinks resolved */
	int lock_fd;
	bool exists;    /* the file existed */
	struct stat st; /* of the file, when it exists */
	char *data;     /* its content */
	size_t len;
};

static char *
errno_error(const char *what, const char *path)
{
	return xasprintf("%s %s: %s", what, path, strerror(errno));
}

static void
pw_edit_end(struct pw_edit *ed)
{
	/* Closing the descriptor releases the flock.  The lock file stays:
	 * unlinking it would let two writers lock different inodes. */
	if (ed->lock_fd >= 0)
		close(ed->lock_fd);
	ed->lock_fd = -1;
	xfree_secret(ed->data, ed->len);
	ed->data = NULL;
	free(ed->target);
	ed->target = NULL;
}

/* Lock PATH.lock and read the current file.  0 or -1. */
static int
pw_edit_begin(struct pw_edit *ed, const char *path, char **error_r)
{
	char *lock_path;
	struct stat lst;

	memset(ed, 0, sizeof(*ed));
	ed->path = path;
	ed->lock_fd = -1;

	lock_path = xasprintf("%s.lock", path);
	ed->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ed->lock_fd < 0) {
		*error_r = errno_error("cannot open", lock_path);
		free(lock_path);
		return -1;
	}
	while (flock(ed->lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			*error_r = errno_error("cannot lock", lock_path);
			free(lock_path);
			pw_edit_end(ed);
			return -1;
		}
	}
	free(lock_path);

	/* Rewrite the file a symlink points to, not the symlink. */
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		ed->target = realpath(path, NULL);
		if (ed->target == NULL) {
			*error_r = errno_error("cannot resolve", path);
			pw_edit_end(ed);
			return -1;
		}
	} else
		ed->target = xstrdup(path);

	if (read_file(ed->target, &ed->data, &ed->len, &ed->st) == 0) {
		ed->exists = true;
		return 0;
	}
	if (errno != ENOENT) {
		*error_r = errno == EFBIG
		               ? xasprintf("%s: file too large", path)
		               : errno_error("cannot read", path);
		pw_edit_end(ed);
		return -1;
	}
	ed->data = xstrdup("");
	ed->len = 0;
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
fsync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

/*
 * Replace the file with data: a temporary file in the same directory gets
 * the old mode and owner, is synced, then renamed over the file, and the
 * directory is synced so the rename survives a crash.
 */
static int
pw_edit_commit(struct pw_edit *ed, const char *data, size_t len, char **error_r)
{
	char *tmp = xasprintf("%s.tmp.XXXXXX", ed->target);
	struct stat tst;
	int fd;

	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		*error_r = errno_error("cannot create", tmp);
		free(tmp);
		return -1;
	}
	if (fchmod(fd, ed->exists ? ed->st.st_mode & 07777 : 0600) < 0) {
		*error_r = errno_error("cannot chmod", tmp);
		goto fail;
	}
	/* Keep the owner, so "herald user" run as root does not make the
	 * file unreadable for an unprivileged server. */
	if (ed->exists && fstat(fd, &tst) == 0 &&
	    (tst.st_uid != ed->st.st_uid || tst.st_gid != ed->st.st_gid) &&
	    fchown(fd, ed->st.st_uid, ed->st.st_gid) < 0) {
		*error_r = errno_error("cannot keep the owner of", ed->path);
		goto fail;
	}
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		*error_r = errno_error("cannot write", tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = errno_error("cannot write", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, ed->target) < 0) {
		*error_r = errno_error("cannot rename to", ed->target);
		goto fail;
	}
	free(tmp);
	if (fsync_parent_dir(ed->target) < 0) {
		*error_r =
		    errno_error("cannot sync the directory of", ed->target);
		return -1;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

/*
 * Find user's first line.  Returns true with the line's offset and length
 * (including its "\n", if any) and the parsed fields.
 */
static bool
pw_find_user(const char *data, size_t len, const char *user, size_t *off_r,
             size_t *llen_r, struct pw_line *pl)
{
	size_t ulen = strlen(user), pos = 0;

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

		pw_line_parse(line, llen, pl);
		if (pl->user_len == ulen && memcmp(line, user, ulen) == 0) {
			*off_r = pos;
			*llen_r = llen + (nl != NULL ? 1 : 0);
			return true;
		}
		pos += llen + 1;
	}
	return false;
}

static int
check_args(const char *user, const char *hash, char **error_r)
{
	if (!passwd_user_name_valid(user)) {
		*error_r = xstrdup(
		    "invalid user name (1-255 bytes, no ':', "
		    "'/', spaces or control characters, not '.', '..' or "
		    "starting with '#')");
		return -1;
	}
	if (hash != NULL && !hash_valid(hash)) {
		*error_r = xstrdup("the password field cannot be empty nor "
		                   "contain ':' or control characters");
		return -1;
	}
	return 0;
}

/*
 * The new file content, allocated once at its final size: growing it with
 * realloc would leave copies of {PLAIN} passwords in freed memory.
 */
struct pw_out {
	char *data;
	size_t len;
	size_t cap;
};

static void
pw_out_init(struct pw_out *o, size_t cap)
{
	o->data = xmalloc(cap + 1);
	o->len = 0;
	o->cap = cap;
}

static void
pw_out_put(struct pw_out *o, const void *p, size_t n)
{
	ASSERT(n <= o->cap - o->len);
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

static void
pw_out_free(struct pw_out *o)
{
	xfree_secret(o->data, o->cap + 1);
	o->data = NULL;
}

int
passwd_file_add(const char *path, const char *user, const char *hash,
                char **error_r)
{
	struct pw_edit ed;
	struct pw_line pl;
	struct pw_out o;
	size_t off, llen;
	int ret;

	if (check_args(user, hash, error_r) < 0)
		return -1;
	if (pw_edit_begin(&ed, path, error_r) < 0)
		return -1;
	if (pw_find_user(ed.data, ed.len, user, &off, &llen, &pl)) {
		*error_r = xasprintf("user '%s' already exists", user);
		pw_edit_end(&ed);
		return -1;
	}
	pw_out_init(&o, ed.len + strlen(user) + strlen(hash) + 3);
	pw_out_put(&o, ed.data, ed.len);
	if (ed.len > 0 && ed.data[ed.len - 1] != '\n')
		pw_out_put(&o, "\n", 1);
	pw_out_put(&o, user, strlen(user));
	pw_out_put(&o, ":", 1);
	pw_out_put(&o, hash, strlen(hash));
	pw_out_put(&o, "\n", 1);
	ret = pw_edit_commit(&ed, o.data, o.len, error_r);
	pw_out_free(&o);
	pw_edit_end(&ed);
	return ret;
}

int
passwd_file_set(const char *path, const char *user, const char *hash,
                char **error_r)
{
	struct pw_edit ed;
	struct pw_line pl;
	struct pw_out o;
	size_t off, llen;
	int ret;

	if (check_args(user, hash, error_r) < 0)
		return -1;
	if (pw_edit_begin(&ed, path, error_r) < 0)
		return -1;
	if (!pw_find_user(ed.data, ed.len, user, &off, &llen, &pl)) {
		*error_r = xasprintf("user '%s' does not exist", user);
		pw_edit_end(&ed);
		return -1;
	}
	/* Only the password field changes; uid, home, extra fields and the
	 * line ending stay as they were. */
	pw_out_init(&o, ed.len + strlen(hash));
	pw_out_put(&o, ed.data, off + pl.pw_start);
	pw_out_put(&o, hash, strlen(hash));
	pw_out_put(&o, ed.data + off + pl.pw_end, ed.len - off - pl.pw_end);
	ret = pw_edit_commit(&ed, o.data, o.len, error_r);
	pw_out_free(&o);
	pw_edit_end(&ed);
	return ret;
}

int
passwd_file_del(const char *path, const char *user, char **error_r)
{
	struct pw_edit ed;
	struct pw_line pl;
	struct pw_out o;
	size_t off, llen, pos = 0;
	bool found = false;
	int ret;

	if (check_args(user, NULL, error_r) < 0)
		return -1;
	if (pw_edit_begin(&ed, path, error_r) < 0)
		return -1;
	/* Every line of the user goes, so that a duplicate further down
	 * cannot become active. */
	pw_out_init(&o, ed.len);
	while (
	    pw_find_user(ed.data + pos, ed.len - pos, user, &off, &llen, &pl)) {
		pw_out_put(&o, ed.data + pos, off);
		pos += off + llen;
		found = true;
	}
	if (!found) {
		*error_r = xasprintf("user '%s' does not exist", user);
		pw_out_free(&o);
		pw_edit_end(&ed);
		return -1;
	}
	pw_out_put(&o, ed.data + pos, ed.len - pos);
	ret = pw_edit_commit(&ed, o.data, o.len, error_r);
	pw_out_free(&o);
	pw_edit_end(&ed);
	return ret;
}

int
passwd_file_list(const char *path, void (*cb)(const char *user, void *ctx),
                 void *ctx, char **error_r)
{
	struct stat st;
	char *data;
	size_t len, pos = 0;

	/* No lock: writers replace the file by rename, so we read either the
	 * old or the new version. */
	if (read_file(path, &data, &len, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = errno == EFBIG
		               ? xasprintf("%s: file too large", path)
		               : errno_error("cannot read", path);
		return -1;
	}
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		struct pw_line pl;

		pw_line_parse(line, llen, &pl);
		if (pl.user_len > 0) {
			char *user = xstrndup(line, pl.user_len);

			cb(user, ctx);
			free(user);
		}
		pos += llen + 1;
	}
	xfree_secret(data, len);
	return 0;
}
