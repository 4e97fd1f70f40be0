/* Unit tests for src/store: names, mailbox management, messages, resync. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store/store.h"
#include "store/maildir/maildir.h"
#include "core/arena.h"
#include "core/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

struct fixture {
	char root[64];
	struct store_settings set;
	struct store_user *user;
	struct arena arena;
};

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *f = xmalloc(sizeof(*f));
	struct store_error err;

	strcpy(f->root, "/tmp/herald-store-XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	strcat(f->root, "/u");
	f->set.fsync_disable = false;	/* exercise the fsync paths here */
	if (store_user_open(f->root, &f->set, &f->user, &err) < 0) {
		fprintf(stderr, "open: %s\n", err.text);
		return -1;
	}
	arena_init(&f->arena);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char *slash = strrchr(f->root, '/');

	/* A failed assertion leaves mailboxes open, and closing the user
	 * would then abort before cmocka prints the failure: set
	 * STORE_TEST_LEAK=1 to see it. */
	if (getenv("STORE_TEST_LEAK") == NULL)
		store_user_close(&f->user);
	arena_free(&f->arena);
	*slash = '\0';
	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

#define OK(expr) do {							\
	struct store_error *e_ = &err;					\
	if ((expr) < 0) {						\
		print_error("%s:%d %s: %s (code %d)\n", __FILE__,	\
		    __LINE__, #expr, e_->text, e_->code);		\
		fail();							\
	}								\
} while (0)

static struct store_list_entry *
find(struct store_list_entry *e, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}

static uint32_t
append(struct store_mailbox *box, const char *body, uint32_t flags)
{
	struct store_append_msg m = { .flags = flags };
	struct store_error err;
	uint32_t uid = 0;

	OK(store_mailbox_append(box, body, strlen(body), &m, &uid, &err));
	return uid;
}

static void
reopen_user(struct fixture *f)
{
	struct store_error err;

	store_user_close(&f->user);
	OK(store_user_open(f->root, &f->set, &f->user, &err));
}

static char *
folder(struct fixture *f, const char *sub)
{
	return xasprintf("%s/Maildir/%s", f->root, sub);
}

static void
write_file(const char *path, const char *data, time_t mtime)
{
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

/* ---- tests ------------------------------------------------------------- */

static void
test_names(void **state)
{
	char out[STORE_NAME_MAX + 1], dir[512], back[512];
	struct store_error err;
	char longname[400];
	static const char *const bad[] = {
		"", "/a", "a/", "a//b", "..", "a/../b", "a/./b", "a\001b",
		"a\177", "a*", "a%b", "\xff", "\xc0\x80",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(store_name_normalize(bad[i], out, &err), -1);
		assert_int_equal(err.code, STORE_ERR_BADNAME);
	}
	memset(longname, 'a', sizeof(longname));
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(store_name_normalize(longname, out, &err), -1);
	assert_int_equal(err.code, STORE_ERR_LIMIT);
	/* 200 dots would need 600 bytes on disk. */
	memset(longname, '.', 200);
	longname[0] = 'x';
	longname[200] = '\0';
	assert_int_equal(store_name_normalize(longname, out, &err), -1);
	assert_int_equal(err.code, STORE_ERR_LIMIT);

	OK(store_name_normalize("inbox", out, &err));
	assert_string_equal(out, "INBOX");
	OK(store_name_normalize("InBoX/Sub", out, &err));
	assert_string_equal(out, "INBOX/Sub");
	OK(store_name_normalize("INBOXes", out, &err));
	assert_string_equal(out, "INBOXes");
	OK(store_name_normalize("Caf\xc3\xa9/a.b", out, &err));
	assert_true(store_name_is_inbox("iNbOx"));

	assert_true(store_name_to_folder("Caf\xc3\xa9/a.b", dir, sizeof(dir)));
	assert_string_equal(dir, ".Caf\xc3\xa9.a%2Eb");
	assert_true(store_name_from_folder(dir, back, sizeof(back)));
	assert_string_equal(back, "Caf\xc3\xa9/a.b");
	assert_true(store_name_to_folder("50%", dir, sizeof(dir)));
	assert_string_equal(dir, ".50%25");
	assert_true(store_name_from_folder(dir, back, sizeof(back)));
	assert_string_equal(back, "50%");
	assert_false(store_name_from_folder("..x", back, sizeof(back)));
	assert_false(store_name_from_folder(".a%2F", back, sizeof(back)));
	assert_false(store_name_from_folder(".a%4", back, sizeof(back)));
	assert_false(store_name_to_folder("abcdef", dir, 4));
}

static void
test_filenames(void **state)
{
	uint32_t uid;
	char *n;

	(void)state;
	assert_int_equal(maildir_name_flags("1.2.h:2,FRS"),
	    STORE_F_FLAGGED | STORE_F_ANSWERED | STORE_F_SEEN);
	assert_int_equal(maildir_name_flags("1.2.h"), 0);
	assert_true(maildir_name_uid("1.2.h,S=5,U=42:2,S", &uid));
	assert_int_equal(uid, 42);
	assert_false(maildir_name_uid("1.2.h,S=5:2,S", &uid));
	assert_false(maildir_name_uid("1.2.h,U=:2,", &uid));
	n = maildir_name_build("1.2.h,U=7,S=5:2,Pac", 9,
	    STORE_F_SEEN | STORE_F_DRAFT);
	assert_string_equal(n, "1.2.h,S=5,U=9:2,DPSac");
	free(n);
	n = maildir_name_build("1.2.h", 3, 0);
	assert_string_equal(n, "1.2.h,U=3:2,");
	free(n);
}

static void
test_mailbox_crud(void **state)
{
	struct fixture *f = *state;
	struct store_list_entry *e, *x;
	struct store_error err;
	unsigned n;
	struct stat st;
	char *p;

	OK(store_mailbox_list(f->user, false, &f->arena, &e, &n, &err));
	assert_int_equal(n, 6);
	assert_string_equal(e[0].name, "INBOX");
	assert_non_null(x = find(e, n, "Sent"));
	assert_true(x->attrs & STORE_MBOX_SENT);
	assert_true(x->attrs & STORE_MBOX_SUBSCRIBED);
	assert_true(find(e, n, "Drafts")->attrs & STORE_MBOX_DRAFTS);
	assert_true(find(e, n, "Trash")->attrs & STORE_MBOX_TRASH);
	assert_true(find(e, n, "Junk")->attrs & STORE_MBOX_JUNK);
	assert_true(find(e, n, "Archive")->attrs & STORE_MBOX_ARCHIVE);

	OK(store_mailbox_create(f->user, "A/B.x/C", 0, &err));
	p = folder(f, ".A.B%2Ex.C/cur");
	assert_int_equal(stat(p, &st), 0);
	free(p);
	assert_int_equal(store_mailbox_create(f->user, "A/B.x", 0, &err), -1);
	assert_int_equal(err.code, STORE_ERR_EXISTS);
	assert_int_equal(store_mailbox_create(f->user, "inbox", 0, &err), -1);
	assert_int_equal(err.code, STORE_ERR_EXISTS);
	assert_int_equal(store_mailbox_create(f->user, "a/../b", 0, &err), -1);
	assert_int_equal(err.code, STORE_ERR_BADNAME);

	OK(store_mailbox_list(f->user, false, &f->arena, &e, &n, &err));
	assert_true(find(e, n, "A")->attrs & STORE_MBOX_HASCHILDREN);
	assert_true(find(e, n, "A/B.x/C")->attrs & STORE_MBOX_HASNOCHILDREN);

	/* Deleting a parent leaves a \Noselect placeholder. */
	OK(store_mailbox_delete(f->user, "A", &err));
	OK(store_mailbox_list(f->user, false, &f->arena, &e, &n, &err));
	x = find(e, n, "A");
	assert_non_null(x);
	assert_true(x->attrs & STORE_MBOX_NOSELECT);
	assert_true(x->attrs & STORE_MBOX_HASCHILDREN);
	assert_int_equal(store_mailbox_delete(f->user, "A", &err), -1);
	assert_int_equal(err.code, STORE_ERR_NOTFOUND);
	assert_int_equal(store_mailbox_delete(f->user, "INBOX", &err), -1);
	assert_int_equal(err.code, STORE_ERR_NOTPOSSIBLE);

	/* Rename with children, creating the new parents. */
	OK(store_mailbox_rename(f->user, "A/B.x", "X/Y", &err));
	OK(store_mailbox_list(f->user, false, &f->arena, &e, &n, &err));
	assert_null(find(e, n, "A/B.x"));
	assert_null(find(e, n, "A"));
	assert_non_null(find(e, n, "X"));
	assert_false(find(e, n, "X")->attrs & STORE_MBOX_NOSELECT);
	assert_non_null(find(e, n, "X/Y/C"));
	assert_int_equal(store_mailbox_rename(f->user, "X", "X/Z", &err), -1);
	assert_int_equal(err.code, STORE_ERR_NOTPOSSIBLE);
	assert_int_equal(store_mailbox_rename(f->user, "X", "Sent", &err), -1);
	assert_int_equal(err.code, STORE_ERR_EXISTS);
	assert_int_equal(store_mailbox_rename(f->user, "Nope", "Q", &err), -1);
	assert_int_equal(err.code, STORE_ERR_NOTFOUND);

	/* Subscriptions survive deletion (RFC 3501 6.3.6). */
	OK(store_mailbox_subscribe(f->user, "X/Y", true, &err));
	OK(store_mailbox_subscribe(f->user, "Ghost", true, &err));
	OK(store_mailbox_subscribe(f->user, "Junk", false, &err));
	OK(store_mailbox_list(f->user, true, &f->arena, &e, &n, &err));
	assert_non_null(find(e, n, "X/Y"));
	assert_null(find(e, n, "Junk"));
	assert_true(find(e, n, "Ghost")->attrs & STORE_MBOX_NONEXISTENT);

	/* A folder made by another program shows up. */
	p = folder(f, ".Other");
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	OK(store_mailbox_list(f->user, false, &f->arena, &e, &n, &err));
	assert_non_null(find(e, n, "Other"));
}

static void
test_append_flags(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox *box = NULL;
	struct store_error err;
	const struct store_msg *m;
	struct store_mailbox_info info;
	struct store_update_result res;
	const char *kws[] = { "$Important", "work" };
	struct store_flag_update upd = { .mode = STORE_MODIFY_ADD,
	    .flags = STORE_F_FLAGGED, .keywords = kws, .keyword_count = 2 };
	struct store_append_msg am = { .flags = STORE_F_DRAFT,
	    .internal_date = 1000000000 };
	const char *const *names;
	struct store_append *ctx;
	uint32_t uv, first;
	unsigned n, nk;
	char buf[64];
	ssize_t len;
	int fd;

	OK(store_mailbox_open(f->user, "Drafts", 0, &box, &err));
	assert_int_equal(append(box, "Subject: 1\r\n\r\none\r\n", STORE_F_SEEN),
	    1);
	ctx = store_append_begin(box);
	OK(store_append_buf(ctx, "Subject: 2\r\n\r\n", 14, &am, &err));
	fd = open("/dev/null", O_RDONLY);
	OK(store_append_fd(ctx, fd, &am, &err));
	close(fd);
	OK(store_append_commit(&ctx, &uv, &first, &n, &err));
	assert_int_equal(first, 2);
	assert_int_equal(n, 2);
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 3);
	assert_int_equal(m[0].uid, 1);
	assert_int_equal(m[0].flags, STORE_F_SEEN | STORE_F_RECENT);
	assert_int_equal(m[1].flags, STORE_F_DRAFT | STORE_F_RECENT);
	assert_int_equal(m[1].internal_date, 1000000000);
	assert_int_equal(m[1].size, 14);
	assert_int_equal(m[2].size, 0);
	assert_non_null(strstr(m[0].filename, ",U=1:2,S"));
	assert_non_null(strstr(m[1].filename, ",S=14,U=2:2,D"));
	store_mailbox_get_info(box, &info);
	assert_int_equal(info.uidnext, 4);
	assert_int_equal(info.uidvalidity, uv);

	OK(store_mailbox_open_msg(box, 1, &fd, &err));
	len = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(len, 19);

	upd.unchangedsince = 0;
	{
		uint32_t uids[] = { 1, 2, 99 };

		OK(store_mailbox_update_flags(box, uids, 3, &upd, &f->arena,
		    &res, &err));
	}
	assert_int_equal(res.changed_count, 2);
	assert_int_equal(res.changed[0].flags,
	    STORE_F_SEEN | STORE_F_FLAGGED | STORE_F_RECENT);
	assert_int_equal(res.changed[0].keywords, 3);
	assert_int_equal(res.changed[0].modseq, res.highestmodseq);
	names = store_mailbox_keywords(box, &nk);
	assert_int_equal(nk, 2);
	assert_string_equal(names[0], "$Important");
	{
		/* UNCHANGEDSINCE fails for the just-changed message. */
		uint32_t uids[] = { 1, 3 };
		struct store_flag_update u2 = { .mode = STORE_MODIFY_REPLACE,
		    .flags = STORE_F_ANSWERED,
		    .unchangedsince = res.highestmodseq - 1 };

		OK(store_mailbox_update_flags(box, uids, 2, &u2, &f->arena,
		    &res, &err));
		assert_int_equal(res.modified_count, 1);
		assert_int_equal(res.modified[0], 1);
		assert_int_equal(res.changed_count, 1);
		assert_int_equal(res.changed[0].uid, 3);
	}
	{
		const char *badkw[] = { "bad kw" };
		struct store_flag_update u3 = { .mode = STORE_MODIFY_ADD,
		    .keywords = badkw, .keyword_count = 1 };
		uint32_t uid = 1;

		assert_int_equal(store_mailbox_update_flags(box, &uid, 1, &u3,
		    &f->arena, &res, &err), -1);
		assert_int_equal(err.code, STORE_ERR_BADNAME);
	}
	store_mailbox_close(&box);

	/* Survives a reopen; the file names carry the flags. */
	reopen_user(f);
	OK(store_mailbox_open(f->user, "Drafts", 0, &box, &err));
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 3);
	assert_int_equal(m[0].flags, STORE_F_SEEN | STORE_F_FLAGGED);
	assert_int_equal(m[0].keywords, 3);
	assert_non_null(strstr(m[0].filename, ":2,FS"));
	assert_int_equal(m[2].flags, STORE_F_ANSWERED);
	assert_non_null(strstr(m[2].filename, ":2,R"));
	store_mailbox_close(&box);

	/* Read-only views refuse changes. */
	OK(store_mailbox_open(f->user, "Drafts", STORE_OPEN_READONLY, &box,
	    &err));
	assert_int_equal(store_mailbox_append(box, "x", 1, &am, &first, &err),
	    -1);
	assert_int_equal(err.code, STORE_ERR_NOTPOSSIBLE);
	store_mailbox_close(&box);
}

static void
test_external_changes(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox *box = NULL;
	struct store_error err;
	const struct store_msg *m;
	struct store_changes ch;
	uint64_t hms;
	unsigned n;
	char *p, *q;

	OK(store_mailbox_open(f->user, "INBOX", 0, &box, &err));
	assert_int_equal(append(box, "ours\n", 0), 1);
	/* Another delivery agent drops files into new/ (out of name
	 * order) and one straight into cur/ with flags, which keeps its
	 * name. */
	p = folder(f, "new/200.c.host");
	write_file(p, "second\n", 2000);
	free(p);
	p = folder(f, "new/300.a.host");
	write_file(p, "third\n", 3000);
	free(p);
	p = folder(f, "cur/100.b.host:2,S");
	write_file(p, "first\n", 1000);
	free(p);
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 4);
	assert_int_equal(m[1].uid, 2);
	/* Adopted in cur/ under its own name (UID in herald-uidmap). */
	assert_string_equal(m[1].filename, "100.b.host:2,S");
	assert_int_equal(m[1].flags, STORE_F_SEEN | STORE_F_RECENT);
	assert_true(strncmp(m[2].filename, "200.c.host,U=3:2,", 17) == 0);
	assert_true(strncmp(m[3].filename, "300.a.host,U=4:2,", 17) == 0);
	assert_int_equal(m[3].internal_date, 3000);
	p = folder(f, "new/200.c.host");
	assert_int_equal(access(p, F_OK), -1);	/* moved to cur/ */
	free(p);
	hms = m[3].modseq;

	/* Another program marks message 3 seen and deletes message 4. */
	p = xasprintf("%s/Maildir/cur/%s", f->root, m[2].filename);
	q = xasprintf("%s/Maildir/cur/200.c.host,U=3:2,ST", f->root);
	assert_int_equal(rename(p, q), 0);
	free(p);
	free(q);
	p = xasprintf("%s/Maildir/cur/%s", f->root, m[3].filename);
	assert_int_equal(unlink(p), 0);
	free(p);
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 3);
	assert_int_equal(m[2].uid, 3);
	assert_int_equal(m[2].flags & STORE_F_SYSTEM_MASK,
	    STORE_F_SEEN | STORE_F_DELETED);

	OK(store_mailbox_changes(box, hms, &f->arena, &ch, &err));
	assert_int_equal(ch.expunged_count, 1);
	assert_int_equal(ch.expunged[0], 4);
	assert_int_equal(ch.changed_count, 1);
	assert_int_equal(ch.changed[0].uid, 3);
	assert_true(ch.highestmodseq > hms);
	OK(store_mailbox_changes(box, ch.highestmodseq, &f->arena, &ch, &err));
	assert_int_equal(ch.expunged_count + ch.changed_count, 0);
	OK(store_mailbox_changes(box, 0, &f->arena, &ch, &err));
	assert_int_equal(ch.changed_count, 3);

	/* Our expunge: only \Deleted messages. */
	{
		uint32_t *ex;
		unsigned nex;

		OK(store_mailbox_expunge(box, NULL, 0, &f->arena, &ex, &nex,
		    &err));
		assert_int_equal(nex, 1);
		assert_int_equal(ex[0], 3);
	}
	/* A new file gets a UID above the expunged ones. */
	p = folder(f, "new/400.d.host");
	write_file(p, "fourth\n", 4000);
	free(p);
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 3);
	assert_int_equal(m[2].uid, 5);
	store_mailbox_close(&box);
}

static void
test_copy_move(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox *src, *dst;
	struct store_error err;
	struct store_uid_map map;
	const struct store_msg *m;
	const char *kw[] = { "Tag" };
	struct store_append_msg am = { .keywords = kw, .keyword_count = 1,
	    .flags = STORE_F_FLAGGED };
	uint32_t uids[] = { 1, 3, 7 }, uid;
	void *data;
	size_t len;
	bool found;
	unsigned n, nk;

	OK(store_mailbox_open(f->user, "INBOX", 0, &src, &err));
	OK(store_mailbox_open(f->user, "Archive", 0, &dst, &err));
	append(src, "m1\n", 0);
	OK(store_mailbox_append(src, "m2\n", 3, &am, &uid, &err));
	append(src, "m3\n", STORE_F_SEEN);
	append(dst, "existing\n", 0);
	OK(store_cache_put(src, 3, "envelope", "(NIL)", 5, &err));

	OK(store_mailbox_copy(src, uids, 3, dst, false, &f->arena, &map, &err));
	assert_int_equal(map.count, 2);
	assert_int_equal(map.src_uids[0], 1);
	assert_int_equal(map.src_uids[1], 3);
	assert_int_equal(map.dst_uids[0], 2);
	assert_int_equal(map.dst_uids[1], 3);
	OK(store_cache_get(dst, 3, "envelope", &f->arena, &data, &len, &found,
	    &err));
	assert_true(found);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "(NIL)", 5);
	OK(store_cache_get(dst, 2, "envelope", &f->arena, &data, &len, &found,
	    &err));
	assert_false(found);

	{
		uint32_t mv[] = { 2, 3 };

		OK(store_mailbox_copy(src, mv, 2, dst, true, &f->arena, &map,
		    &err));
	}
	assert_int_equal(map.count, 2);
	assert_int_equal(map.dst_uids[0], 4);
	assert_int_equal(map.dst_uids[1], 5);
	OK(store_mailbox_sync(src, &err));
	m = store_mailbox_messages(src, &n);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].uid, 1);
	OK(store_mailbox_sync(dst, &err));
	m = store_mailbox_messages(dst, &n);
	assert_int_equal(n, 5);
	assert_int_equal(m[3].uid, 4);
	assert_int_equal(m[3].flags & STORE_F_SYSTEM_MASK, STORE_F_FLAGGED);
	assert_int_equal(m[3].keywords, 1);
	assert_string_equal(store_mailbox_keywords(dst, &nk)[0], "Tag");
	assert_int_equal(m[4].flags & STORE_F_SYSTEM_MASK, STORE_F_SEEN);
	store_mailbox_close(&src);
	store_mailbox_close(&dst);

	/* RENAME INBOX moves the messages and keeps INBOX. */
	OK(store_mailbox_rename(f->user, "INBOX", "Old", &err));
	OK(store_mailbox_open(f->user, "Old", 0, &dst, &err));
	OK(store_mailbox_sync(dst, &err));
	store_mailbox_messages(dst, &n);
	assert_int_equal(n, 1);
	store_mailbox_close(&dst);
	OK(store_mailbox_open(f->user, "INBOX", 0, &src, &err));
	OK(store_mailbox_sync(src, &err));
	store_mailbox_messages(src, &n);
	assert_int_equal(n, 0);
	store_mailbox_close(&src);
}

static void
test_rebuild(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox *box = NULL;
	struct store_error err;
	struct store_mailbox_info info, info2;
	struct store_flag_update upd = { .mode = STORE_MODIFY_ADD,
	    .flags = STORE_F_DELETED };
	struct store_update_result res;
	struct store_list_entry *e;
	const struct store_msg *m;
	uint32_t uid = 5, *ex;
	unsigned n, nex;
	char *p;

	OK(store_mailbox_create(f->user, "Work/Sub", 0, &err));
	OK(store_mailbox_subscribe(f->user, "Work/Sub", true, &err));
	OK(store_mailbox_open(f->user, "Work/Sub", 0, &box, &err));
	for (int i = 0; i < 5; i++)
		append(box, "msg\n", i % 2 == 0 ? STORE_F_SEEN : 0);
	OK(store_mailbox_update_flags(box, &uid, 1, &upd, &f->arena, &res,
	    &err));
	OK(store_mailbox_expunge(box, NULL, 0, &f->arena, &ex, &nex, &err));
	assert_int_equal(nex, 1);
	store_mailbox_get_info(box, &info);
	store_mailbox_close(&box);

	for (int round = 0; round < 2; round++) {
		/* Round 0: index deleted; round 1: index corrupt. */
		store_user_close(&f->user);
		p = xasprintf("%s/index.sqlite", f->root);
		if (round == 0) {
			assert_int_equal(unlink(p), 0);
		} else {
			write_file(p, "this is not an SQLite database at all"
			    " and it is long enough", 0);
		}
		free(p);
		OK(store_user_open(f->root, &f->set, &f->user, &err));
		OK(store_mailbox_list(f->user, true, &f->arena, &e, &n, &err));
		assert_non_null(find(e, n, "Work/Sub"));
		OK(store_mailbox_list(f->user, false, &f->arena, &e, &n, &err));
		assert_true(find(e, n, "Sent")->attrs & STORE_MBOX_SENT);
		OK(store_mailbox_open(f->user, "Work/Sub", 0, &box, &err));
		OK(store_mailbox_sync(box, &err));
		m = store_mailbox_messages(box, &n);
		assert_int_equal(n, 4 + round);
		if (round == 1)
			assert_int_equal(m[4].uid, uid);
		for (unsigned i = 0; i < 4; i++) {
			assert_int_equal(m[i].uid, i + 1);
			assert_int_equal(m[i].flags & STORE_F_SEEN,
			    i % 2 == 0 ? STORE_F_SEEN : 0);
		}
		store_mailbox_get_info(box, &info2);
		assert_int_equal(info2.uidvalidity, info.uidvalidity);
		assert_true(info2.uidnext >= info.uidnext);
		assert_true(info2.highestmodseq > info.highestmodseq);
		/* UID 5 was expunged: it must never come back. */
		uid = append(box, "new\n", 0);
		assert_true(uid > 5);
		store_mailbox_close(&box);
		info = info2;
	}
}

/* Files put into cur/ without ",U=" keep their names; herald-uidmap keeps
 * their UIDs through an index rebuild, also past a line a crash cut. */
static void
test_uidmap(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox *box = NULL;
	struct store_error err;
	const struct store_msg *m;
	char *p, *map = folder(f, "herald-uidmap");
	unsigned n;
	int fd;

	for (int i = 0; i < 3; i++) {
		p = xasprintf("%s/Maildir/cur/100%d.M%dP9.other:2,%s", f->root,
		    i, i, i == 1 ? "S" : "");
		write_file(p, "Subject: x\n\nbody\n", 1000 + i);
		free(p);
	}
	OK(store_mailbox_open(f->user, "INBOX", 0, &box, &err));
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(m[i].uid, i + 1);
		assert_null(strstr(m[i].filename, ",U="));
	}
	store_mailbox_close(&box);
	/* A crash cut a line; the next append must not run into it. */
	fd = open(map, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "77 1002.M", 9), 9);
	close(fd);
	p = xasprintf("%s/Maildir/cur/1003.M3P9.other:2,", f->root);
	write_file(p, "Subject: y\n\nbody\n", 1003);
	free(p);
	OK(store_mailbox_open(f->user, "INBOX", 0, &box, &err));
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 4);
	assert_int_equal(m[3].uid, 4);
	store_mailbox_close(&box);

	store_user_close(&f->user);
	p = xasprintf("%s/index.sqlite", f->root);
	assert_int_equal(unlink(p), 0);
	free(p);
	OK(store_user_open(f->root, &f->set, &f->user, &err));
	OK(store_mailbox_open(f->user, "INBOX", 0, &box, &err));
	OK(store_mailbox_sync(box, &err));
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, 4);
	for (unsigned i = 0; i < n; i++) {
		p = xasprintf("100%u.M%uP9.other", i, i);
		assert_int_equal(m[i].uid, i + 1);
		assert_memory_equal(m[i].filename, p, strlen(p));
		assert_int_equal(m[i].flags, i == 1 ? STORE_F_SEEN : 0);
		free(p);
	}
	store_mailbox_close(&box);
	free(map);
}

static void
test_uid_never_repeats(void **state)
{
	struct fixture *f = *state;
	struct store_mailbox *box = NULL;
	struct store_error err;
	struct store_flag_update upd = { .mode = STORE_MODIFY_ADD,
	    .flags = STORE_F_DELETED };
	struct store_update_result res;
	uint32_t uids[] = { 2, 3 }, *ex;
	unsigned nex;

	OK(store_mailbox_open(f->user, "Junk", 0, &box, &err));
	append(box, "1\n", 0);
	append(box, "2\n", 0);
	append(box, "3\n", 0);
	OK(store_mailbox_update_flags(box, uids, 2, &upd, &f->arena, &res,
	    &err));
	OK(store_mailbox_expunge(box, uids, 2, &f->arena, &ex, &nex, &err));
	assert_int_equal(nex, 2);
	store_mailbox_close(&box);
	reopen_user(f);
	OK(store_mailbox_open(f->user, "Junk", 0, &box, &err));
	assert_int_equal(append(box, "4\n", 0), 4);
	store_mailbox_close(&box);
}

static void
test_two_handles(void **state)
{
	struct fixture *f = *state;
	struct store_user *u2;
	struct store_mailbox *a, *b;
	struct store_error err;
	struct store_changes ch;
	struct store_update_result res;
	struct store_status st;
	struct store_flag_update upd = { .mode = STORE_MODIFY_ADD,
	    .flags = STORE_F_SEEN };
	struct store_mailbox_info info;
	const struct store_msg *m;
	uint32_t uid;
	unsigned n;

	OK(store_user_open(f->root, &f->set, &u2, &err));
	OK(store_mailbox_open(f->user, "INBOX", 0, &a, &err));
	OK(store_mailbox_open(u2, "INBOX", 0, &b, &err));
	OK(store_mailbox_sync(a, &err));
	OK(store_mailbox_sync(b, &err));
	uid = append(a, "hello\n", 0);
	append(a, "hello again\n", 0);

	OK(store_mailbox_status(u2, "INBOX", &st, &err));
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.recent, 2);
	assert_int_equal(st.unseen, 2);
	assert_int_equal(st.uidnext, 3);

	/* b sees them first, so they are \Recent for b only. */
	OK(store_mailbox_sync(b, &err));
	m = store_mailbox_messages(b, &n);
	assert_int_equal(n, 2);
	assert_true(m[0].flags & STORE_F_RECENT);
	OK(store_mailbox_sync(a, &err));
	m = store_mailbox_messages(a, &n);
	assert_int_equal(n, 2);
	assert_false(m[0].flags & STORE_F_RECENT);
	OK(store_mailbox_status(f->user, "INBOX", &st, &err));
	assert_int_equal(st.recent, 0);

	store_mailbox_get_info(a, &info);
	OK(store_mailbox_update_flags(b, &uid, 1, &upd, &f->arena, &res,
	    &err));
	OK(store_mailbox_changes(a, info.highestmodseq, &f->arena, &ch, &err));
	assert_int_equal(ch.changed_count, 1);
	assert_int_equal(ch.changed[0].uid, uid);
	assert_int_equal(ch.changed[0].flags, STORE_F_SEEN);
	assert_int_equal(ch.highestmodseq, res.highestmodseq);

	/* a deletes the mailbox b has open... via rename of a child. */
	store_mailbox_close(&a);
	store_mailbox_close(&b);
	OK(store_mailbox_create(u2, "Tmp", 0, &err));
	OK(store_mailbox_open(f->user, "Tmp", 0, &a, &err));
	OK(store_mailbox_delete(u2, "Tmp", &err));
	assert_int_equal(store_mailbox_sync(a, &err), -1);
	assert_int_equal(err.code, STORE_ERR_NOTFOUND);
	store_mailbox_close(&a);
	store_user_close(&u2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_filenames),
		cmocka_unit_test_setup_teardown(test_mailbox_crud, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_append_flags, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_external_changes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uidmap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_never_repeats, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_handles, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
