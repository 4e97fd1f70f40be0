/* The user and mailbox-list half of store.h. */
#include "store/store_private.h"
#include "store/maildir/maildir.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SUBSCRIPTIONS_FILE "herald-subscriptions"

static const struct {
	const char *name;
	unsigned special_use;
} default_mailboxes[] = {
	{ "Drafts", STORE_MBOX_DRAFTS },
	{ "Sent", STORE_MBOX_SENT },
	{ "Trash", STORE_MBOX_TRASH },
	{ "Junk", STORE_MBOX_JUNK },
	{ "Archive", STORE_MBOX_ARCHIVE },
};

/* ---- errors ---------------------------------------------------------- */

int
store_error_set(struct store_error *err, enum store_error_code code,
    const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return -1;
}

int
store_error_internal(struct store_error *err, const char *fmt, ...)
{
	char stamp[32], detail[1024];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	/* The stamp lets an administrator match the client's text with this
	 * line (STYLE section 10). */
	log_errx("store: [%s] %s", stamp, detail);
	return store_error_set(err, STORE_ERR_INTERNAL,
	    "Internal error occurred. Refer to server log for more"
	    " information. [%s]", stamp);
}

int
store_error_errno(struct store_error *err, int errnum, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	switch (errnum) {
	case ENOSPC:
	case EDQUOT:
		log_warnx("store: %s: %s", detail, strerror(errnum));
		return store_error_set(err, STORE_ERR_NOSPACE,
		    "Not enough disk space");
	case EMFILE:
	case ENFILE:
		log_warnx("store: %s: %s", detail, strerror(errnum));
		return store_error_set(err, STORE_ERR_UNAVAILABLE,
		    "Server busy, try again later");
	case EACCES:
	case EPERM:
	case EROFS:
		store_error_internal(err, "%s: %s", detail, strerror(errnum));
		err->code = STORE_ERR_NOPERM;
		return -1;
	default:
		return store_error_internal(err, "%s: %s", detail,
		    strerror(errnum));
	}
}

/* ---- user ------------------------------------------------------------- */

char *
store_user_folder_path(struct store_user *user, const char *name)
{
	char folder[512];

	if (strcmp(name, "INBOX") == 0)
		return xstrdup(user->maildir);
	if (!store_name_to_folder(name, folder, sizeof(folder)))
		folder[0] = '\0';	/* unreachable for normalized names */
	return xasprintf("%s/%s", user->maildir, folder);
}

int
store_user_new_uidvalidity(struct store_user *user, uint32_t *uv_r,
    struct store_error *err)
{
	struct store_index *idx = user->index;
	uint64_t last, now = (uint64_t)time(NULL);

	/* RFC 3501 section 2.3.1.1: a mailbox re-created under the same name
	 * must get a different UIDVALIDITY; time-based values that also
	 * strictly increase per user guarantee it. */
	if (idx->v->meta_get(idx, "last_uidvalidity", &last, err) < 0)
		return -1;
	if (now <= last)
		now = last + 1;
	if (now > UINT32_MAX)
		now = 1;
	if (idx->v->meta_set(idx, "last_uidvalidity", now, err) < 0)
		return -1;
	*uv_r = (uint32_t)now;
	return 0;
}

static int
mkdir_p(const char *path, struct store_error *err)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			int e = errno;

			free(p);
			return store_error_errno(err, e, "mkdir(%s)", path);
		}
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST) {
		int e = errno;

		free(p);
		return store_error_errno(err, e, "mkdir(%s)", path);
	}
	free(p);
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Folders on disk: canonical names, sorted, from arena. */
static int
disk_folders(struct store_user *user, struct arena *arena, char ***names_r,
    unsigned *count_r, struct store_error *err)
{
	DIR *d = opendir(user->maildir);
	struct dirent *de;
	char **names = NULL;
	unsigned count = 0, cap = 0;

	if (d == NULL)
		return store_error_errno(err, errno, "opendir(%s)",
		    user->maildir);
	while ((de = readdir(d)) != NULL) {
		char name[STORE_NAME_MAX + 1], norm[STORE_NAME_MAX + 1];
		char back[512];
		struct store_error e2;
		struct stat st;

		if (de->d_name[0] != '.' ||
		    !store_name_from_folder(de->d_name, name, sizeof(name)))
			continue;
		/* Only names that map back to the same folder are ours;
		 * others (bad escapes, "..", empty components) are left
		 * alone. */
		if (store_name_normalize(name, norm, &e2) < 0 ||
		    !store_name_to_folder(norm, back, sizeof(back)) ||
		    strcmp(back, de->d_name) != 0 ||
		    strcmp(norm, "INBOX") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (count == cap) {
			char **n;

			cap = cap == 0 ? 16 : cap * 2;
			n = arena_alloc(arena, cap * sizeof(*n));
			if (count > 0)
				memcpy(n, names, count * sizeof(*n));
			names = n;
		}
		names[count++] = arena_strdup(arena, norm);
	}
	closedir(d);
	if (count > 1)
		qsort(names, count, sizeof(*names), cmp_str);
	*names_r = names;
	*count_r = count;
	return 0;
}

static bool
name_in(char **names, unsigned count, const char *name)
{
	return count > 0 && bsearch(&name, names, count, sizeof(*names),
	    cmp_str) != NULL;
}

/* Insert a row for a folder found on disk (rebuild or another program). */
static int
adopt_folder(struct store_user *user, const char *name,
    struct store_error *err)
{
	struct store_index_mailbox mb;
	struct maildir_uidlist ul;
	char *path = store_user_folder_path(user, name);
	int r = maildir_uidlist_read(path, &ul, err);

	free(path);
	if (r < 0)
		return -1;
	memset(&mb, 0, sizeof(mb));
	snprintf(mb.name, sizeof(mb.name), "%s", name);
	if (r > 0) {
		/* Everything below the reservations may have been seen by a
		 * client, so continue above them (docs/DESIGN.md). */
		mb.uidvalidity = ul.uidvalidity;
		mb.uidnext = mb.first_recent_uid = mb.uid_reserved =
		    ul.uid_reserved;
		mb.highestmodseq = mb.modseq_reserved =
		    ul.modseq_reserved > 0 ? ul.modseq_reserved : 1;
		mb.special_use = ul.special_use;
		mb.rebuild = STORE_REBUILD_KEEP;
	} else {
		if (store_user_new_uidvalidity(user, &mb.uidvalidity, err) < 0)
			return -1;
		mb.uidnext = mb.first_recent_uid = mb.uid_reserved = 1;
		mb.highestmodseq = 1;
		mb.modseq_reserved = 0;
		mb.rebuild = STORE_REBUILD_ANY;
	}
	log_info("store: %s: indexing mailbox %s (uidvalidity %" PRIu32
	    "%s)", user->root, name, mb.uidvalidity,
	    r > 0 ? "" : ", new");
	return user->index->v->mailbox_insert(user->index, &mb, err);
}

/*
 * Make the mailboxes table match the folders on disk: folders created by
 * other programs (or all of them, after the index was lost) get rows,
 * rows whose folder vanished are deleted.  The comparison is done once
 * without the lock and repeated under it only if something differs.
 */
int
store_user_sync_folders(struct store_user *user, struct store_error *err)
{
	struct store_index *idx = user->index;
	struct arena arena;
	bool locked = false;
	int ret = -1;

	arena_init(&arena);
	for (;;) {
		struct store_index_mailbox *rows;
		char **disk, **indexed;
		unsigned ndisk, nrows, changes = 0;

		if (disk_folders(user, &arena, &disk, &ndisk, err) < 0 ||
		    idx->v->mailbox_list(idx, &arena, &rows, &nrows, err) < 0)
			break;
		indexed = arena_alloc(&arena, (nrows + 1) * sizeof(*indexed));
		for (unsigned i = 0; i < nrows; i++)
			indexed[i] = rows[i].name;
		if (nrows > 1)
			qsort(indexed, nrows, sizeof(*indexed), cmp_str);
		if (!name_in(indexed, nrows, "INBOX")) {
			changes++;
			if (locked && adopt_folder(user, "INBOX", err) < 0)
				break;
		}
		for (unsigned i = 0; i < ndisk; i++) {
			if (name_in(indexed, nrows, disk[i]))
				continue;
			changes++;
			if (locked && adopt_folder(user, disk[i], err) < 0)
				goto out;
		}
		for (unsigned i = 0; i < nrows; i++) {
			if (strcmp(rows[i].name, "INBOX") == 0 ||
			    name_in(disk, ndisk, rows[i].name))
				continue;
			changes++;
			if (locked) {
				log_info("store: %s: mailbox %s vanished from"
				    " disk", user->root, rows[i].name);
				if (idx->v->mailbox_delete(idx, rows[i].id,
				    err) < 0)
					goto out;
			}
		}
		if (locked) {
			ret = idx->v->commit(idx, err);
			locked = false;
			break;
		}
		if (changes == 0) {
			ret = 0;
			break;
		}
		if (idx->v->begin(idx, true, err) < 0)
			break;
		locked = true;
		arena_reset(&arena);
	}
out:
	if (locked)
		idx->v->rollback(idx);
	arena_free(&arena);
	return ret;
}

static int
subscriptions_file_write(struct store_user *user, struct store_error *err)
{
	struct store_index *idx = user->index;
	struct arena arena;
	char **names, *path;
	unsigned count;
	struct buf_s {
		char *p;
		size_t len, cap;
	} b = { NULL, 0, 0 };
	int ret;

	arena_init(&arena);
	if (idx->v->subscription_list(idx, &arena, &names, &count, err) < 0) {
		arena_free(&arena);
		return -1;
	}
	for (unsigned i = 0; i < count; i++) {
		size_t n = strlen(names[i]);

		if (b.len + n + 2 > b.cap) {
			b.cap = (b.len + n + 2) * 2;
			b.p = xrealloc(b.p, b.cap);
		}
		memcpy(b.p + b.len, names[i], n);
		b.len += n;
		b.p[b.len++] = '\n';
	}
	path = xasprintf("%s/" SUBSCRIPTIONS_FILE, user->maildir);
	ret = maildir_write_file_atomic(path, b.p != NULL ? b.p : "", b.len,
	    user->fsync, err);
	free(path);
	free(b.p);
	arena_free(&arena);
	return ret;
}

/* After a lost index: read subscriptions back from the file. */
static int
subscriptions_file_import(struct store_user *user, struct store_error *err)
{
	char *path = xasprintf("%s/" SUBSCRIPTIONS_FILE, user->maildir);
	FILE *f = fopen(path, "re");
	char line[1024];
	int ret = 0;

	free(path);
	if (f == NULL)
		return 0;
	if (user->index->v->begin(user->index, true, err) < 0) {
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char norm[STORE_NAME_MAX + 1];
		struct store_error e2;

		line[strcspn(line, "\n")] = '\0';
		if (store_name_normalize(line, norm, &e2) < 0)
			continue;
		if (user->index->v->subscription_set(user->index, norm, true,
		    err) < 0) {
			ret = -1;
			break;
		}
	}
	fclose(f);
	if (ret < 0)
		user->index->v->rollback(user->index);
	else
		ret = user->index->v->commit(user->index, err);
	return ret;
}

/* Create one folder and its row; the write lock is held. */
static int
create_one(struct store_user *user, const char *name, unsigned special_use,
    struct store_error *err)
{
	struct store_index_mailbox mb;
	struct maildir_uidlist ul;
	unsigned char rnd[4] = { 0 };
	char *tmp, *path;

	memset(&mb, 0, sizeof(mb));
	snprintf(mb.name, sizeof(mb.name), "%s", name);
	if (store_user_new_uidvalidity(user, &mb.uidvalidity, err) < 0)
		return -1;
	mb.uidnext = mb.first_recent_uid = mb.uid_reserved = 1;
	mb.highestmodseq = mb.modseq_reserved = 1;
	mb.special_use = special_use;

	/* Build the folder under a name that scans ignore, then rename it
	 * into place, so that nobody sees a half-made folder. */
	maildir_random(rnd, sizeof(rnd));
	tmp = xasprintf("%s/..tmp.%d.%02x%02x%02x%02x", user->maildir,
	    (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
	path = store_user_folder_path(user, name);
	ul.uidvalidity = mb.uidvalidity;
	ul.uid_reserved = mb.uid_reserved;
	ul.modseq_reserved = mb.modseq_reserved;
	ul.special_use = special_use;
	if (maildir_folder_create(tmp, true, err) < 0 ||
	    maildir_uidlist_write(tmp, &ul, user->fsync, err) < 0)
		goto fail;
	if (rename(tmp, path) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			store_error_set(err, STORE_ERR_EXISTS,
			    "Mailbox already exists");
		else
			store_error_errno(err, errno, "rename(%s, %s)", tmp,
			    path);
		goto fail;
	}
	if (maildir_fsync_dir(user->maildir, user->fsync) < 0) {
		store_error_errno(err, errno, "fsync(%s)", user->maildir);
		goto fail_created;
	}
	if (user->index->v->mailbox_insert(user->index, &mb, err) < 0)
		goto fail_created;
	free(tmp);
	free(path);
	return 0;

fail_created:
	maildir_remove_tree(path);
fail:
	maildir_remove_tree(tmp);
	free(tmp);
	free(path);
	return -1;
}

static int
mailbox_exists(struct store_user *user, const char *name, bool *exists_r,
    struct store_error *err)
{
	struct store_index_mailbox mb;

	return user->index->v->mailbox_get(user->index, name, 0, &mb,
	    exists_r, err);
}

/* Create name's missing parents and, if create_self, name. Locked. */
static int
create_with_parents(struct store_user *user, const char *name,
    bool create_self, unsigned special_use, struct store_error *err)
{
	char prefix[STORE_NAME_MAX + 1];
	bool exists;

	for (const char *p = strchr(name, '/'); p != NULL;
	    p = strchr(p + 1, '/')) {
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(p - name),
		    name);
		if (mailbox_exists(user, prefix, &exists, err) < 0)
			return -1;
		if (!exists && create_one(user, prefix, 0, err) < 0)
			return -1;
	}
	if (!create_self)
		return 0;
	if (mailbox_exists(user, name, &exists, err) < 0)
		return -1;
	if (exists)
		return store_error_set(err, STORE_ERR_EXISTS,
		    "Mailbox already exists");
	return create_one(user, name, special_use, err);
}

static int
create_locked(struct store_user *user, const char *name, unsigned special_use,
    struct store_error *err)
{
	struct store_index *idx = user->index;

	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (create_with_parents(user, name, true, special_use, err) < 0) {
		idx->v->rollback(idx);
		return -1;
	}
	return idx->v->commit(idx, err);
}

int
store_user_open(const char *root, const struct store_settings *set,
    struct store_user **user_r, struct store_error *err)
{
	static const struct store_settings defaults;
	struct store_user *user;
	const char *maildir_name, *index_name, *driver;
	struct stat st;
	bool fresh, created;
	char *init_marker = NULL;

	if (set == NULL)
		set = &defaults;
	maildir_name = set->maildir_name != NULL ? set->maildir_name :
	    "Maildir";
	index_name = set->index_name != NULL ? set->index_name :
	    "index.sqlite";
	driver = set->index_driver != NULL ? set->index_driver : "sqlite";
	if (strcmp(driver, store_index_sqlite.name) != 0)
		return store_error_internal(err, "unknown index driver %s",
		    driver);

	user = xmalloc(sizeof(*user));
	user->root = xstrdup(root);
	user->maildir = xasprintf("%s/%s", root, maildir_name);
	user->index_path = xasprintf("%s/%s", root, index_name);
	user->fsync = !set->fsync_disable;
	user->search_text_on_append = set->search_text_on_append;

	if (mkdir_p(root, err) < 0)
		goto fail;
	/*
	 * "Fresh" means the default mailboxes are still to be made.  A
	 * marker file is written before the Maildir and removed once they
	 * exist, so a first open cut short (a crash, a kill) is finished by
	 * the next one; a Maildir that other software made (no marker) is
	 * left as it is.
	 */
	init_marker = xasprintf("%s/.herald-init", root);
	{
		char *cur = xasprintf("%s/cur", user->maildir);

		if (stat(cur, &st) < 0 && errno == ENOENT) {
			int fd = open(init_marker, O_WRONLY | O_CREAT |
			    O_NOFOLLOW | O_CLOEXEC, 0600);

			if (fd >= 0)
				close(fd);
		}
		free(cur);
		fresh = lstat(init_marker, &st) == 0;
	}
	if (maildir_folder_create(user->maildir, false, err) < 0)
		goto fail;
	if (store_index_sqlite.open(user->index_path, set, &user->index,
	    &created, err) < 0)
		goto fail;
	if (created && !fresh) {
		log_warnx("store: %s: no usable index, rebuilding it from %s",
		    root, user->maildir);
		if (subscriptions_file_import(user, err) < 0)
			goto fail;
	}
	if (store_user_sync_folders(user, err) < 0)
		goto fail;
	if (fresh) {
		/* First use: the special-use mailboxes of RFC 6154, which
		 * clients otherwise each invent under their own names.
		 * Another process doing the same first open is fine. */
		for (size_t i = 0; i < ARRAY_SIZE(default_mailboxes); i++) {
			struct store_error e2;

			if (create_locked(user, default_mailboxes[i].name,
			    default_mailboxes[i].special_use, &e2) < 0 &&
			    e2.code != STORE_ERR_EXISTS) {
				*err = e2;
				goto fail;
			}
			if (store_mailbox_subscribe(user,
			    default_mailboxes[i].name, true, err) < 0)
				goto fail;
		}
		if (store_mailbox_subscribe(user, "INBOX", true, err) < 0)
			goto fail;
		(void)unlink(init_marker);
	}
	free(init_marker);
	*user_r = user;
	return 0;

fail:
	free(init_marker);
	store_user_close(&user);
	return -1;
}

void
store_user_close(struct store_user **userp)
{
	struct store_user *user = *userp;

	if (user == NULL)
		return;
	*userp = NULL;
	ASSERT(user->open_boxes == 0);
	if (user->index != NULL)
		user->index->v->close(user->index);
	free(user->root);
	free(user->maildir);
	free(user->index_path);
	free(user);
}

/* ---- mailbox management ------------------------------------------------ */

int
store_mailbox_create(struct store_user *user, const char *name,
    unsigned special_use, struct store_error *err)
{
	char norm[STORE_NAME_MAX + 1];

	if (store_name_normalize(name, norm, err) < 0)
		return -1;
	if (strcmp(norm, "INBOX") == 0)
		return store_error_set(err, STORE_ERR_EXISTS,
		    "Mailbox already exists");
	if ((special_use & ~STORE_MBOX_SPECIAL_USE_MASK) != 0 ||
	    (special_use & (special_use - 1)) != 0)
		return store_error_set(err, STORE_ERR_NOTPOSSIBLE,
		    "Unsupported special-use attributes");
	if (store_user_sync_folders(user, err) < 0)
		return -1;
	return create_locked(user, norm, special_use, err);
}

int
store_mailbox_delete(struct store_user *user, const char *name,
    struct store_error *err)
{
	struct store_index *idx = user->index;
	struct store_index_mailbox mb;
	char norm[STORE_NAME_MAX + 1];
	char *path, *trash;
	bool found, moved;

	if (store_name_normalize(name, norm, err) < 0)
		return -1;
	if (strcmp(norm, "INBOX") == 0)
		return store_error_set(err, STORE_ERR_NOTPOSSIBLE,
		    "INBOX cannot be deleted");
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (idx->v->mailbox_get(idx, norm, 0, &mb, &found, err) < 0) {
		idx->v->rollback(idx);
		return -1;
	}
	if (!found) {
		idx->v->rollback(idx);
		return store_error_set(err, STORE_ERR_NOTFOUND,
		    "Mailbox doesn't exist: %s", norm);
	}
	/* Rename first (atomic), so no reader sees a half-deleted folder;
	 * names starting with ".." are skipped by every scan. */
	path = store_user_folder_path(user, norm);
	trash = xasprintf("%s/..DEL.%" PRId64 ".%d.%lld", user->maildir,
	    mb.id, (int)getpid(), (long long)time(NULL));
	moved = rename(path, trash) == 0;
	if (!moved && errno != ENOENT) {
		store_error_errno(err, errno, "rename(%s)", path);
		goto fail;
	}
	if (idx->v->mailbox_delete(idx, mb.id, err) < 0 ||
	    idx->v->commit(idx, err) < 0) {
		if (moved && rename(trash, path) < 0)
			log_warn("store: rename(%s, %s)", trash, path);
		goto fail;
	}
	if (moved)
		maildir_remove_tree(trash);
	free(path);
	free(trash);
	return 0;
fail:
	idx->v->rollback(idx);
	free(path);
	free(trash);
	return -1;
}

static bool
is_self_or_child(const char *name, const char *parent)
{
	size_t n = strlen(parent);

	return strncmp(name, parent, n) == 0 &&
	    (name[n] == '\0' || name[n] == '/');
}

/* RFC 3501 section 6.3.5: renaming INBOX moves its messages. */
static int
rename_inbox(struct store_user *user, const char *new_name,
    struct store_error *err)
{
	struct store_mailbox *src = NULL, *dst = NULL;
	struct arena arena;
	const struct store_msg *msgs;
	struct store_uid_map map;
	uint32_t *uids;
	unsigned count;
	int ret = -1;

	if (store_mailbox_create(user, new_name, 0, err) < 0)
		return -1;
	arena_init(&arena);
	if (store_mailbox_open(user, "INBOX", STORE_OPEN_READONLY, &src,
	    err) < 0 ||
	    store_mailbox_open(user, new_name, 0, &dst, err) < 0 ||
	    store_mailbox_sync(src, err) < 0)
		goto out;
	msgs = store_mailbox_messages(src, &count);
	uids = arena_alloc(&arena, (count + 1) * sizeof(*uids));
	for (unsigned i = 0; i < count; i++)
		uids[i] = msgs[i].uid;
	src->readonly = false;	/* opened read-only to claim no \Recent */
	ret = count == 0 ? 0 : store_mailbox_copy(src, uids, count, dst,
	    true, &arena, &map, err);
out:
	store_mailbox_close(&src);
	store_mailbox_close(&dst);
	arena_free(&arena);
	return ret;
}

struct rename_item {
	struct store_index_mailbox mb;
	char *old_path, *new_path;
	bool moved;
};

int
store_mailbox_rename(struct store_user *user, const char *old_name,
    const char *new_name, struct store_error *err)
{
	struct store_index *idx = user->index;
	char old_norm[STORE_NAME_MAX + 1], new_norm[STORE_NAME_MAX + 1];
	struct store_index_mailbox *rows;
	struct rename_item *items = NULL;
	unsigned nrows, nitems = 0;
	bool found_self = false;
	struct arena arena;
	int ret = -1;

	if (store_name_normalize(old_name, old_norm, err) < 0 ||
	    store_name_normalize(new_name, new_norm, err) < 0)
		return -1;
	if (strcmp(new_norm, "INBOX") == 0)
		return store_error_set(err, STORE_ERR_EXISTS,
		    "Mailbox already exists");
	if (is_self_or_child(new_norm, old_norm))
		return store_error_set(err, STORE_ERR_NOTPOSSIBLE,
		    "Cannot rename a mailbox into itself");
	if (store_user_sync_folders(user, err) < 0)
		return -1;
	if (strcmp(old_norm, "INBOX") == 0)
		return rename_inbox(user, new_norm, err);

	arena_init(&arena);
	if (idx->v->begin(idx, true, err) < 0)
		goto out;
	if (idx->v->mailbox_list(idx, &arena, &rows, &nrows, err) < 0)
		goto rollback;
	items = xcalloc(nrows + 1, sizeof(*items));
	for (unsigned i = 0; i < nrows; i++) {
		if (is_self_or_child(rows[i].name, new_norm)) {
			store_error_set(err, STORE_ERR_EXISTS,
			    "Mailbox already exists");
			goto rollback;
		}
		if (!is_self_or_child(rows[i].name, old_norm))
			continue;
		if (strcmp(rows[i].name, old_norm) == 0)
			found_self = true;
		items[nitems++].mb = rows[i];
	}
	if (!found_self) {
		store_error_set(err, STORE_ERR_NOTFOUND,
		    "Mailbox doesn't exist: %s", old_norm);
		goto rollback;
	}
	/* Validate every new name before touching the disk. */
	for (unsigned i = 0; i < nitems; i++) {
		struct rename_item *it = &items[i];
		char *nn = xasprintf("%s%s", new_norm,
		    it->mb.name + strlen(old_norm));
		int r = store_name_normalize(nn, it->mb.name, err);

		free(nn);
		if (r < 0)
			goto rollback;
	}
	if (create_with_parents(user, new_norm, false, 0, err) < 0)
		goto rollback;
	/* Re-read old paths from the original rows. */
	for (unsigned i = 0, j = 0; i < nrows; i++) {
		if (!is_self_or_child(rows[i].name, old_norm))
			continue;
		items[j].old_path = store_user_folder_path(user, rows[i].name);
		items[j].new_path = store_user_folder_path(user,
		    items[j].mb.name);
		j++;
	}
	for (unsigned i = 0; i < nitems; i++) {
		if (rename(items[i].old_path, items[i].new_path) < 0) {
			store_error_errno(err, errno, "rename(%s, %s)",
			    items[i].old_path, items[i].new_path);
			goto undo;
		}
		items[i].moved = true;
		if (idx->v->mailbox_update(idx, &items[i].mb, err) < 0)
			goto undo;
	}
	if (maildir_fsync_dir(user->maildir, user->fsync) < 0) {
		store_error_errno(err, errno, "fsync(%s)", user->maildir);
		goto undo;
	}
	if (idx->v->commit(idx, err) < 0)
		goto undo;
	ret = 0;
	goto out;
undo:
	for (unsigned i = nitems; i-- > 0;) {
		if (items[i].moved &&
		    rename(items[i].new_path, items[i].old_path) < 0)
			log_warn("store: undo rename(%s, %s)",
			    items[i].new_path, items[i].old_path);
	}
rollback:
	idx->v->rollback(idx);
out:
	for (unsigned i = 0; i < nitems; i++) {
		free(items[i].old_path);
		free(items[i].new_path);
	}
	free(items);
	arena_free(&arena);
	return ret;
}

int
store_mailbox_subscribe(struct store_user *user, const char *name,
    bool subscribe, struct store_error *err)
{
	struct store_index *idx = user->index;
	char norm[STORE_NAME_MAX + 1];

	if (store_name_normalize(name, norm, err) < 0)
		return -1;
	if (idx->v->begin(idx, true, err) < 0)
		return -1;
	if (idx->v->subscription_set(idx, norm, subscribe, err) < 0) {
		idx->v->rollback(idx);
		return -1;
	}
	if (idx->v->commit(idx, err) < 0)
		return -1;
	/* The file only serves a rebuild; the index is authoritative. */
	return subscriptions_file_write(user, err);
}

/* ---- LIST -------------------------------------------------------------- */

static int
cmp_entry(const void *a, const void *b)
{
	const struct store_list_entry *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0;
	bool yi = strcmp(y->name, "INBOX") == 0;

	if (xi || yi)
		return yi - xi;
	return strcmp(x->name, y->name);
}

static int
cmp_entry_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct store_list_entry *)elem)->name);
}

static struct store_list_entry *
find_entry(struct store_list_entry *e, unsigned n, const char *name)
{
	/* Sorted with INBOX first, then byte order: search both parts. */
	if (n > 0 && strcmp(e[0].name, "INBOX") == 0) {
		if (strcmp(name, "INBOX") == 0)
			return &e[0];
		e++;
		n--;
	}
	return n == 0 ? NULL : bsearch(name, e, n, sizeof(*e),
	    cmp_entry_name);
}

int
store_mailbox_list(struct store_user *user, bool subscribed_only,
    struct arena *arena, struct store_list_entry **entries_r,
    unsigned *count_r, struct store_error *err)
{
	struct store_index *idx = user->index;
	struct store_index_mailbox *rows;
	struct store_list_entry *all, *out;
	char **subs;
	unsigned nrows, nsubs, nall = 0, cap, nout = 0;

	if (store_user_sync_folders(user, err) < 0 ||
	    idx->v->mailbox_list(idx, arena, &rows, &nrows, err) < 0 ||
	    idx->v->subscription_list(idx, arena, &subs, &nsubs, err) < 0)
		return -1;

	/* Every mailbox, then a \Noselect placeholder for each missing
	 * parent; duplicates are merged after sorting. */
	cap = nrows * (STORE_NAME_MAX_LEVELS + 1) + 1;
	all = arena_alloc(arena, cap * sizeof(*all));
	for (unsigned i = 0; i < nrows; i++) {
		all[nall].name = rows[i].name;
		all[nall++].attrs = rows[i].special_use;
		for (const char *p = strchr(rows[i].name, '/'); p != NULL;
		    p = strchr(p + 1, '/')) {
			all[nall].name = arena_strndup(arena, rows[i].name,
			    (size_t)(p - rows[i].name));
			all[nall++].attrs = STORE_MBOX_NOSELECT;
		}
	}
	qsort(all, nall, sizeof(*all), cmp_entry);
	for (unsigned i = 0; i < nall; i++) {
		if (nout > 0 && strcmp(all[nout - 1].name, all[i].name) == 0) {
			/* A real mailbox wins over a placeholder. */
			if ((all[i].attrs & STORE_MBOX_NOSELECT) == 0)
				all[nout - 1].attrs = all[i].attrs;
			continue;
		}
		all[nout++] = all[i];
	}
	nall = nout;
	for (unsigned i = 0; i < nall; i++) {
		const char *slash = strrchr(all[i].name, '/');
		struct store_list_entry *parent;
		char *pname;

		if (slash == NULL)
			continue;
		pname = arena_strndup(arena, all[i].name,
		    (size_t)(slash - all[i].name));
		parent = find_entry(all, nall, pname);
		if (parent != NULL)
			parent->attrs |= STORE_MBOX_HASCHILDREN;
	}
	for (unsigned i = 0; i < nall; i++) {
		if ((all[i].attrs & STORE_MBOX_HASCHILDREN) == 0)
			all[i].attrs |= STORE_MBOX_HASNOCHILDREN;
		for (unsigned j = 0; j < nsubs; j++)
			if (strcmp(subs[j], all[i].name) == 0)
				all[i].attrs |= STORE_MBOX_SUBSCRIBED;
	}
	if (!subscribed_only) {
		*entries_r = all;
		*count_r = nall;
		return 0;
	}
	out = arena_alloc(arena, (nsubs + 1) * sizeof(*out));
	nout = 0;
	for (unsigned j = 0; j < nsubs; j++) {
		struct store_list_entry *e = find_entry(all, nall, subs[j]);

		out[nout].name = subs[j];
		if (e != NULL && (e->attrs & STORE_MBOX_NOSELECT) == 0)
			out[nout].attrs = e->attrs;
		else
			out[nout].attrs = STORE_MBOX_SUBSCRIBED |
			    STORE_MBOX_NONEXISTENT |
			    (e != NULL ? (e->attrs & STORE_MBOX_HASCHILDREN) :
			    0);
		nout++;
	}
	qsort(out, nout, sizeof(*out), cmp_entry);
	*entries_r = out;
	*count_r = nout;
	return 0;
}

int
store_mailbox_status(struct store_user *user, const char *name,
    struct store_status *status_r, struct store_error *err)
{
	struct store_mailbox *box;
	int ret;

	if (store_mailbox_open(user, name, STORE_OPEN_READONLY, &box,
	    err) < 0)
		return -1;
	ret = store_mailbox_sync(box, err);
	if (ret == 0) {
		memset(status_r, 0, sizeof(*status_r));
		ret = user->index->v->msg_counts(user->index, box->mb.id,
		    box->mb.first_recent_uid, &status_r->messages,
		    &status_r->unseen, &status_r->recent, err);
		status_r->uidnext = box->mb.uidnext;
		status_r->uidvalidity = box->mb.uidvalidity;
		status_r->highestmodseq = box->mb.highestmodseq;
		status_r->attrs = box->mb.special_use;
	}
	store_mailbox_close(&box);
	return ret;
}

bool
store_user_index_replaced(struct store_user *user)
{
	return user->index != NULL && user->index->v->replaced != NULL &&
	    user->index->v->replaced(user->index);
}
