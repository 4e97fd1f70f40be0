/*
 * passwd-file database: parsing, reload on change, editing that keeps
 * other lines byte for byte, user name rules, concurrent lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/passdb.h"
#include "core/xmalloc.h"

/* "Hello world!" */
#define SHA512_HELLO                                                           \
	"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O81"                \
	"7G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"

struct fixture {
	char dir[64];
	char *path; /* DIR/passwd */
};

static int
setup(void **state)
{
	struct fixture *f = xmalloc(sizeof(*f));

	strcpy(f->dir, "/tmp/herald-passdb-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->path = xasprintf("%s/passwd", f->dir);
	*state = f;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f->path);
	free(f);
	return 0;
}

static void
write_file(const char *path, const char *content)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(content, 1, strlen(content), fp),
	                 strlen(content));
	assert_int_equal(fclose(fp), 0);
}

/* Replace path by rename, as editors and our own tools do. */
static void
replace_file(const char *path, const char *content)
{
	char *tmp = xasprintf("%s.test-tmp", path);

	write_file(tmp, content);
	assert_int_equal(rename(tmp, path), 0);
	free(tmp);
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = xmalloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

static void
assert_file(const char *path, const char *want)
{
	char *got = slurp(path);

	assert_string_equal(got, want);
	free(got);
}

static void
test_parse(void **state)
{
	struct fixture *f = *state;
	struct passdb *db;

	write_file(f->path, "# Herald users\n"
	                    "\n"
	                    "alice:{PLAIN}alice-pw:1000:1000::/home/alice::"
	                    "userdb_mail=maildir:~/Mail quota=1G\n"
	                    "bob:{SHA512-CRYPT}" SHA512_HELLO ":::\n"
	                    "carol:{PLAIN}carol-pw\r\n"
	                    "nocolon\n"
	                    ":{PLAIN}nobody\n"
	                    "erin:\n"
	                    "#frank:{PLAIN}frank-pw\n"
	                    "alice:{PLAIN}second-alice\n"
	                    "gina:" SHA512_HELLO "\n"
	                    "   \n"
	                    "dave:{PLAIN}dave-pw");
	db = passdb_new(f->path);
	assert_int_equal(passdb_verify(db, "alice", "alice-pw"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "alice", "second-alice"),
	                 PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "alice", "alice-pw:1000"),
	                 PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "bob", "Hello world!"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "bob", "Hello world"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "carol", "carol-pw"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "carol", "carol-pw\r"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "dave", "dave-pw"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "gina", "Hello world!"), PASSDB_OK);
	/* An empty password field never matches. */
	assert_int_equal(passdb_verify(db, "erin", ""), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "erin", "x"), PASSDB_FAIL);
	assert_true(passdb_user_exists(db, "erin"));
	/* Comments, bad lines and other spellings are not users. */
	assert_int_equal(passdb_verify(db, "frank", "frank-pw"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "#frank", "frank-pw"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "nocolon", "x"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "", "nobody"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "Alice", "alice-pw"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "alic", "alice-pw"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "nobody", "x"), PASSDB_FAIL);
	assert_true(passdb_user_exists(db, "alice"));
	assert_true(passdb_user_exists(db, "dave"));
	assert_false(passdb_user_exists(db, "frank"));
	assert_false(passdb_user_exists(db, "   "));
	passdb_free(&db);
	assert_null(db);
	passdb_free(&db);
}

static void
test_reload(void **state)
{
	struct fixture *f = *state;
	struct passdb *db = passdb_new(f->path);
	struct timespec ts[2];
	int fd;

	write_file(f->path, "alice:{PLAIN}pw1\n");
	assert_int_equal(passdb_verify(db, "alice", "pw1"), PASSDB_OK);

	/* Replaced by rename: a new inode. */
	replace_file(f->path, "alice:{PLAIN}pw2\n");
	assert_int_equal(passdb_verify(db, "alice", "pw1"), PASSDB_FAIL);
	assert_int_equal(passdb_verify(db, "alice", "pw2"), PASSDB_OK);

	/* Rewritten in place with another size. */
	write_file(f->path, "alice:{PLAIN}pw33\nbob:{PLAIN}b\n");
	assert_int_equal(passdb_verify(db, "alice", "pw33"), PASSDB_OK);
	assert_true(passdb_user_exists(db, "bob"));

	/* Rewritten in place, same size: only the mtime tells.  Set it
	 * explicitly, since two writes may share a clock tick. */
	write_file(f->path, "alice:{PLAIN}pw44\nbob:{PLAIN}c\n");
	ts[0].tv_sec = ts[1].tv_sec = 1000000000;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	fd = open(f->path, O_RDONLY);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(passdb_verify(db, "alice", "pw44"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "bob", "c"), PASSDB_OK);

	/* Deleted: an error, not a failure; then back. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(passdb_verify(db, "alice", "pw44"), PASSDB_ERROR);
	assert_false(passdb_user_exists(db, "alice"));
	write_file(f->path, "alice:{PLAIN}pw5\n");
	assert_int_equal(passdb_verify(db, "alice", "pw5"), PASSDB_OK);
	passdb_free(&db);
}

static void
test_unreadable(void **state)
{
	struct fixture *f = *state;
	struct passdb *db = passdb_new(f->path);

	/* Missing. */
	assert_int_equal(passdb_verify(db, "alice", "x"), PASSDB_ERROR);
	/* A directory. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(passdb_verify(db, "alice", "x"), PASSDB_ERROR);
	assert_int_equal(rmdir(f->path), 0);
	/* No permission (root reads anyway). */
	write_file(f->path, "alice:{PLAIN}x\n");
	assert_int_equal(passdb_verify(db, "alice", "x"), PASSDB_OK);
	if (geteuid() != 0) {
		struct timespec ts[2] = {{0, UTIME_OMIT}, {5, 0}};

		assert_int_equal(chmod(f->path, 0), 0);
		/* Make sure the change is seen as one. */
		assert_int_equal(utimensat(AT_FDCWD, f->path, ts, 0), 0);
		assert_int_equal(passdb_verify(db, "alice", "x"), PASSDB_ERROR);
	}
	passdb_free(&db);
}

static void
test_user_names(void **state)
{
	char name[300];

	assert_true(passwd_user_name_valid("bob"));
	assert_true(passwd_user_name_valid("bob@example.com"));
	assert_true(passwd_user_name_valid("b"));
	assert_true(passwd_user_name_valid("b#b"));
	assert_true(passwd_user_name_valid("j\xc3\xb6rg"));
	assert_true(passwd_user_name_valid("..."));
	assert_false(passwd_user_name_valid(""));
	assert_false(passwd_user_name_valid("a:b"));
	assert_false(passwd_user_name_valid("a b"));
	assert_false(passwd_user_name_valid("a/b"));
	assert_false(passwd_user_name_valid("a\tb"));
	assert_false(passwd_user_name_valid("a\nb"));
	assert_false(passwd_user_name_valid("a\x7f"));
	assert_false(passwd_user_name_valid("\x01"));
	assert_false(passwd_user_name_valid("."));
	assert_false(passwd_user_name_valid(".."));
	assert_false(passwd_user_name_valid("#bob"));
	memset(name, 'n', 255);
	name[255] = '\0';
	assert_true(passwd_user_name_valid(name));
	name[255] = 'n';
	name[256] = '\0';
	assert_false(passwd_user_name_valid(name));
}

#define ORIGINAL                                                               \
	"# users\n"                                                            \
	"\n"                                                                   \
	"alice:{PLAIN}a:1000:1000::/home/alice::quota=1G\r\n"                  \
	"bob:{PLAIN}b\n"                                                       \
	"#carol:{PLAIN}c\n"                                                    \
	"  indented:{PLAIN}i\n"                                                \
	"dave:{PLAIN}d:::"

static void
test_edit_keeps_bytes(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	struct passdb *db;

	write_file(f->path, ORIGINAL);
	assert_int_equal(passwd_file_add(f->path, "erin", "{PLAIN}e", &error),
	                 0);
	assert_file(f->path, ORIGINAL "\nerin:{PLAIN}e\n");

	assert_int_equal(passwd_file_set(f->path, "alice", "{PLAIN}A2", &error),
	                 0);
	assert_int_equal(passwd_file_set(f->path, "dave", "{PLAIN}D2", &error),
	                 0);
	assert_int_equal(passwd_file_set(f->path, "bob", "{PLAIN}B2", &error),
	                 0);
	assert_file(f->path,
	            "# users\n"
	            "\n"
	            "alice:{PLAIN}A2:1000:1000::/home/alice::quota=1G\r\n"
	            "bob:{PLAIN}B2\n"
	            "#carol:{PLAIN}c\n"
	            "  indented:{PLAIN}i\n"
	            "dave:{PLAIN}D2:::\n"
	            "erin:{PLAIN}e\n");

	assert_int_equal(passwd_file_del(f->path, "bob", &error), 0);
	assert_int_equal(passwd_file_del(f->path, "erin", &error), 0);
	assert_file(f->path,
	            "# users\n"
	            "\n"
	            "alice:{PLAIN}A2:1000:1000::/home/alice::quota=1G\r\n"
	            "#carol:{PLAIN}c\n"
	            "  indented:{PLAIN}i\n"
	            "dave:{PLAIN}D2:::\n");
	assert_null(error);

	db = passdb_new(f->path);
	assert_int_equal(passdb_verify(db, "alice", "A2"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "dave", "D2"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "bob", "B2"), PASSDB_FAIL);
	passdb_free(&db);

	/* A line without a newline at the end, then removed. */
	write_file(f->path, "x:{PLAIN}1\ny:{PLAIN}2");
	assert_int_equal(passwd_file_set(f->path, "y", "{PLAIN}3", &error), 0);
	assert_file(f->path, "x:{PLAIN}1\ny:{PLAIN}3");
	assert_int_equal(passwd_file_del(f->path, "y", &error), 0);
	assert_file(f->path, "x:{PLAIN}1\n");
	assert_int_equal(passwd_file_del(f->path, "x", &error), 0);
	assert_file(f->path, "");
	assert_int_equal(passwd_file_add(f->path, "z", "{PLAIN}z", &error), 0);
	assert_file(f->path, "z:{PLAIN}z\n");
}

static void
collect_cb(const char *user, void *ctx)
{
	char *list = ctx;

	strcat(list, user);
	strcat(list, ",");
}

static void
test_list(void **state)
{
	struct fixture *f = *state;
	char list[256] = "";
	char *error = NULL;

	/* No file: no users, no error. */
	assert_int_equal(passwd_file_list(f->path, collect_cb, list, &error),
	                 0);
	assert_string_equal(list, "");
	write_file(f->path, ORIGINAL "\nzed:x\r\n");
	assert_int_equal(passwd_file_list(f->path, collect_cb, list, &error),
	                 0);
	assert_string_equal(list, "alice,bob,  indented,dave,zed,");

	/* A directory cannot be listed. */
	unlink(f->path);
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(passwd_file_list(f->path, collect_cb, list, &error),
	                 -1);
	assert_non_null(error);
	free(error);
}

/* Takes &error: the call in ret must have run before *error is read. */
static void
expect_error(int ret, char **error, const char *want)
{
	assert_int_equal(ret, -1);
	assert_non_null(*error);
	if (strstr(*error, want) == NULL)
		fail_msg("error '%s' lacks '%s'", *error, want);
	free(*error);
	*error = NULL;
}

static void
test_edit_errors(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	char *dirless;

	write_file(f->path, ORIGINAL);
	expect_error(passwd_file_add(f->path, "bob", "{PLAIN}x", &error),
	             &error, "user 'bob' already exists");
	expect_error(passwd_file_set(f->path, "carol", "{PLAIN}x", &error),
	             &error, "user 'carol' does not exist");
	expect_error(passwd_file_del(f->path, "nobody", &error), &error,
	             "user 'nobody' does not exist");
	expect_error(passwd_file_add(f->path, "a:b", "{PLAIN}x", &error),
	             &error, "invalid user name");
	expect_error(passwd_file_add(f->path, "#x", "{PLAIN}x", &error), &error,
	             "invalid user name");
	expect_error(passwd_file_del(f->path, "", &error), &error,
	             "invalid user name");
	expect_error(passwd_file_set(f->path, "bob", "{PLAIN}a:b", &error),
	             &error, "password field");
	expect_error(passwd_file_add(f->path, "new", "{PLAIN}a\nb", &error),
	             &error, "password field");
	expect_error(passwd_file_add(f->path, "new", "", &error), &error,
	             "password field");
	/* Nothing changed. */
	assert_file(f->path, ORIGINAL);

	/* A missing directory is reported, not created. */
	error = NULL;
	dirless = xasprintf("%s/nodir/passwd", f->dir);
	expect_error(passwd_file_add(dirless, "bob", "{PLAIN}x", &error),
	             &error, "nodir");
	free(dirless);
}

static bool
dir_has_tmp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".tmp.") != NULL)
			found = true;
	}
	closedir(d);
	return found;
}

static void
test_modes(void **state)
{
	struct fixture *f = *state;
	char *error = NULL, *lock;
	struct stat st;
	mode_t old = umask(022);

	assert_int_equal(passwd_file_add(f->path, "alice", "{PLAIN}a", &error),
	                 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	lock = xasprintf("%s.lock", f->path);
	assert_int_equal(stat(lock, &st), 0);
	free(lock);

	assert_int_equal(chmod(f->path, 0640), 0);
	assert_int_equal(passwd_file_add(f->path, "bob", "{PLAIN}b", &error),
	                 0);
	assert_int_equal(passwd_file_set(f->path, "bob", "{PLAIN}c", &error),
	                 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_false(dir_has_tmp_files(f->dir));
	umask(old);
}

static void
test_duplicates(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;
	struct passdb *db = passdb_new(f->path);

	write_file(f->path, "a:{PLAIN}1\nb:{PLAIN}x\na:{PLAIN}2\n");
	assert_int_equal(passdb_verify(db, "a", "1"), PASSDB_OK);
	assert_int_equal(passdb_verify(db, "a", "2"), PASSDB_FAIL);
	assert_int_equal(passwd_file_set(f->path, "a", "{PLAIN}3", &error), 0);
	assert_file(f->path, "a:{PLAIN}3\nb:{PLAIN}x\na:{PLAIN}2\n");
	assert_int_equal(passdb_verify(db, "a", "3"), PASSDB_OK);
	/* del removes every line, so the second cannot take over. */
	assert_int_equal(passwd_file_del(f->path, "a", &error), 0);
	assert_file(f->path, "b:{PLAIN}x\n");
	assert_int_equal(passdb_verify(db, "a", "2"), PASSDB_FAIL);
	passdb_free(&db);
}

static void
test_symlink(void **state)
{
	struct fixture *f = *state;
	char *real = xasprintf("%s/real-passwd", f->dir);
	char *error = NULL;
	struct stat st;

	write_file(real, "a:{PLAIN}1\n");
	assert_int_equal(symlink("real-passwd", f->path), 0);
	assert_int_equal(passwd_file_add(f->path, "b", "{PLAIN}2", &error), 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_file(real, "a:{PLAIN}1\nb:{PLAIN}2\n");
	free(real);
}

/* ---- Concurrency ---- */

#define THREADS 8
#define LOOKUPS 400

struct thread_ctx {
	struct passdb *db;
	atomic_int *bad;
	unsigned id;
};

static void *
lookup_thread(void *arg)
{
	struct thread_ctx *tc = arg;
	char user[32];

	for (unsigned i = 0; i < LOOKUPS; i++) {
		unsigned u = (i + tc->id) % 50;

		snprintf(user, sizeof(user), "user%u", u);
		if (passdb_verify(tc->db, user, "pw") != PASSDB_OK)
			atomic_fetch_add(tc->bad, 1);
		if (passdb_verify(tc->db, user, "wrong") != PASSDB_FAIL)
			atomic_fetch_add(tc->bad, 1);
		if (!passdb_user_exists(tc->db, user))
			atomic_fetch_add(tc->bad, 1);
		if (i % 100 == 0 &&
		    passdb_verify(tc->db, "crypt", "Hello world!") != PASSDB_OK)
			atomic_fetch_add(tc->bad, 1);
		if (i % 50 == 0 &&
		    passdb_verify(tc->db, "nobody", "pw") != PASSDB_FAIL)
			atomic_fetch_add(tc->bad, 1);
	}
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fixture *f = *state;
	struct thread_ctx tc[THREADS];
	pthread_t th[THREADS];
	atomic_int bad = 0;
	char *error = NULL, user[32];
	struct passdb *db = passdb_new(f->path);
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	fprintf(fp, "crypt:" SHA512_HELLO "\n");
	for (unsigned u = 0; u < 50; u++)
		fprintf(fp, "user%u:{PLAIN}pw:%u\n", u, u);
	fclose(fp);

	for (unsigned i = 0; i < THREADS; i++) {
		tc[i].db = db;
		tc[i].bad = &bad;
		tc[i].id = i;
		assert_int_equal(
		    pthread_create(&th[i], NULL, lookup_thread, &tc[i]), 0);
	}
	/* Rewrite the file meanwhile; every version keeps password "pw". */
	for (unsigned i = 0; i < 40; i++) {
		snprintf(user, sizeof(user), "user%u", i % 50);
		assert_int_equal(
		    passwd_file_set(f->path, user,
		                    i % 2 == 0 ? "{CLEAR}pw" : "{PLAIN}pw",
		                    &error),
		    0);
		assert_int_equal(
		    passwd_file_add(f->path, "extra", "{PLAIN}x", &error), 0);
		assert_int_equal(passwd_file_del(f->path, "extra", &error), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&bad), 0);
	passdb_free(&db);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_parse),
	    T(test_reload),
	    T(test_unreadable),
	    cmocka_unit_test(test_user_names),
	    T(test_edit_keeps_bytes),
	    T(test_list),
	    T(test_edit_errors),
	    T(test_modes),
	    T(test_duplicates),
	    T(test_symlink),
	    T(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
