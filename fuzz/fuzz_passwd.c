/*
 * libFuzzer target: the passwd-file database (src/auth/passdb.h).
 *
 * Input: a passwd-file ("user:{SCHEME}hash:uid:gid:...").  It is written
 * to an in-memory file (memfd, reopened through /proc/self/fd) and a
 * fresh passdb looks up and verifies a few users: fixed names, the user
 * of the first lines, and names made from the input.  The answers are
 * checked against a model of the format: the first line of a user wins,
 * blank lines and '#' lines are skipped, a trailing CR is dropped.
 *
 * crypt(3) is slow and not ours, so passwords are only tried where the
 * stored hash cannot reach it: an input holding a '$' (every crypt prefix
 * starts with one) is looked up but not verified, and unknown users (which
 * cost a dummy crypt) are only verified with the empty password, which is
 * refused before any hashing.  The seeds use {PLAIN}.  passwd_file_list()
 * reads the same file and must list every user line.
 *
 * Then the editing functions of "herald user" work on a copy in a tmpfs
 * directory (/dev/shm, so the fsyncs cost nothing): add a user, change the
 * first user's password, delete it; after each step the changed user reads
 * back as expected and the other users keep their passwords.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/passdb.h"
#include "log/log.h"

#include "fuzz_common.h"

#define MAX_USERS 64

static struct fuzz_memfile file;
static char edit_dir[64], edit_path[96];

/* The model: user names (first occurrence) and their password field. */
struct entry {
	char *user, *pw;
};

struct model {
	struct entry e[MAX_USERS];
	unsigned n;
	bool truncated;		/* more users than MAX_USERS */
	/* Every user line in file order, duplicates included, for list. */
	unsigned lines;
};

static char *
dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	FUZZ_CHECK(d != NULL);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void
model_build(struct model *m, const char *data, size_t len)
{
	size_t pos = 0;

	memset(m, 0, sizeof(*m));
	while (pos < len) {
		const char *line = data + pos, *nl, *colon, *end;
		size_t llen;
		bool dup = false;

		nl = memchr(line, '\n', len - pos);
		llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += llen + 1;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen == 0 || line[0] == '#')
			continue;
		colon = memchr(line, ':', llen);
		if (colon == NULL || colon == line)
			continue;
		m->lines++;
		end = memchr(colon + 1, ':', llen - (size_t)(colon + 1 - line));
		if (end == NULL)
			end = line + llen;
		for (unsigned i = 0; i < m->n; i++) {
			if (strlen(m->e[i].user) == (size_t)(colon - line) &&
			    memcmp(m->e[i].user, line, (size_t)(colon - line))
			    == 0)
				dup = true;
		}
		if (dup)
			continue;
		if (m->n == MAX_USERS) {
			m->truncated = true;
			continue;
		}
		m->e[m->n].user = dupn(line, (size_t)(colon - line));
		m->e[m->n].pw = dupn(colon + 1, (size_t)(end - colon - 1));
		m->n++;
	}
}

static void
model_free(struct model *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		free(m->e[i].user);
		free(m->e[i].pw);
	}
}

/* The entry of user, NULL if absent; only meaningful for user names that
 * hold no NUL (the C API cannot ask about the others). */
static const struct entry *
model_find(const struct model *m, const char *user)
{
	for (unsigned i = 0; i < m->n; i++)
		if (strcmp(m->e[i].user, user) == 0)
			return &m->e[i];
	return NULL;
}

static bool
is_plain(const char *pw, const char **data_r)
{
	static const char *const names[] = { "{PLAIN}", "{CLEAR}",
		"{CLEARTEXT}" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);

		if (strncasecmp(pw, names[i], n) == 0) {
			*data_r = pw + n;
			return true;
		}
	}
	return false;
}

/*
 * Look user up and verify passwords that cannot reach crypt(3) (see the
 * top).  exact: the model is complete (no NUL in the input, not
 * truncated), so a user it lacks must be unknown.
 */
static void
check_user(struct passdb *db, const struct model *m, const char *user,
    bool exact, bool may_crypt)
{
	const struct entry *e = model_find(m, user);
	const char *plain;
	int exists = passdb_user_lookup(db, user);

	FUZZ_CHECK(exists == 0 || exists == 1);
	FUZZ_CHECK(passdb_user_exists(db, user) == (exists == 1));
	if (exact)
		FUZZ_CHECK(exists == (e != NULL));
	if (exists != 1 || e == NULL || !exact) {
		/* Unknown: only the empty password skips the dummy crypt. */
		FUZZ_CHECK(passdb_verify(db, user, "") == PASSDB_FAIL);
		return;
	}
	FUZZ_CHECK(passdb_verify(db, user, "") == PASSDB_FAIL);
	if (is_plain(e->pw, &plain)) {
		if (plain[0] != '\0' && strlen(plain) <= 511)
			FUZZ_CHECK(passdb_verify(db, user, plain) ==
			    PASSDB_OK);
		if (strcmp(plain, "x") != 0)
			FUZZ_CHECK(passdb_verify(db, user, "x") ==
			    PASSDB_FAIL);
	} else if (may_crypt) {
		enum passdb_result r = passdb_verify(db, user, "secret");

		FUZZ_CHECK(r == PASSDB_OK || r == PASSDB_FAIL);
	}
}

struct list_ctx {
	unsigned n;
};

static void
list_cb(const char *user, void *ctx)
{
	struct list_ctx *l = ctx;

	FUZZ_CHECK(user != NULL);
	l->n++;
}

/* The other users (first lines of the model) still read as before. */
static void
check_others(const struct model *m, const char *changed)
{
	struct passdb *db = passdb_new(edit_path);

	for (unsigned i = 0; i < m->n && i < 8; i++) {
		const char *plain;

		if (strcmp(m->e[i].user, changed) == 0)
			continue;
		FUZZ_CHECK(passdb_user_lookup(db, m->e[i].user) == 1);
		if (is_plain(m->e[i].pw, &plain) && plain[0] != '\0' &&
		    strlen(plain) <= 511)
			FUZZ_CHECK(passdb_verify(db, m->e[i].user, plain) ==
			    PASSDB_OK);
	}
	passdb_free(&db);
}

static void
edit_file(const uint8_t *data, size_t size, const struct model *m)
{
	static const char newuser[] = "fuzz-new";
	struct passdb *db;
	struct list_ctx l = { 0 };
	char *err = NULL;
	FILE *f;
	int r;

	f = fopen(edit_path, "wb");
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(fwrite(data, 1, size, f) == size);
	FUZZ_CHECK(fclose(f) == 0);

	r = passwd_file_add(edit_path, newuser, "{PLAIN}pw1", &err);
	if (r < 0) {
		FUZZ_CHECK(err != NULL);
		free(err);
		err = NULL;
		FUZZ_CHECK(model_find(m, newuser) != NULL);
	} else {
		FUZZ_CHECK(model_find(m, newuser) == NULL);
		db = passdb_new(edit_path);
		FUZZ_CHECK(passdb_verify(db, newuser, "pw1") == PASSDB_OK);
		passdb_free(&db);
		FUZZ_CHECK(passwd_file_list(edit_path, list_cb, &l, &err) ==
		    0);
		FUZZ_CHECK(l.n == m->lines + 1);
		check_others(m, newuser);
	}
	if (m->n == 0)
		return;

	r = passwd_file_set(edit_path, m->e[0].user, "{PLAIN}pw2", &err);
	if (r < 0) {
		FUZZ_CHECK(err != NULL);
		free(err);
		err = NULL;
		/* Only a name "herald user" would refuse may fail. */
		FUZZ_CHECK(!passwd_user_name_valid(m->e[0].user));
		return;
	}
	db = passdb_new(edit_path);
	FUZZ_CHECK(passdb_verify(db, m->e[0].user, "pw2") == PASSDB_OK);
	passdb_free(&db);
	check_others(m, m->e[0].user);

	r = passwd_file_del(edit_path, m->e[0].user, &err);
	FUZZ_CHECK(r == 0);
	db = passdb_new(edit_path);
	FUZZ_CHECK(passdb_user_lookup(db, m->e[0].user) == 0);
	passdb_free(&db);
	check_others(m, m->e[0].user);
}

static void
cleanup(void)
{
	char lock[128];

	snprintf(lock, sizeof(lock), "%s.lock", edit_path);
	unlink(edit_path);
	unlink(lock);
	rmdir(edit_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LEVEL_ERROR);
	fuzz_memfile_init(&file, "passwd");
	snprintf(edit_dir, sizeof(edit_dir), "%s",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm/herald-fuzz.XXXXXX" :
	    "/tmp/herald-fuzz.XXXXXX");
	FUZZ_CHECK(mkdtemp(edit_dir) != NULL);
	snprintf(edit_path, sizeof(edit_path), "%s/passwd", edit_dir);
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fixed[] = { "alice", "bob", "demo", "",
		"#alice", "root", "a:b" };
	struct passdb *db;
	struct model m;
	struct list_ctx l = { 0 };
	char *err = NULL, name[64];
	bool exact, may_crypt;

	if (size > 65536)
		return -1;
	/* Slow crypt(3) settings all start with '$' or '_' (BSDi DES). */
	may_crypt = memchr(data, '$', size) == NULL &&
	    memchr(data, '_', size) == NULL;
	fuzz_memfile_set(&file, data, size);
	model_build(&m, (const char *)data, size);
	exact = !m.truncated && memchr(data, '\0', size) == NULL;

	db = passdb_new(file.path);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		check_user(db, &m, fixed[i], exact, may_crypt);
	for (unsigned i = 0; i < m.n && i < 8; i++)
		check_user(db, &m, m.e[i].user, exact, may_crypt);
	/* Names cut from the input: prefixes of the first line. */
	for (size_t n = 1; n < sizeof(name) && n <= size; n += 5) {
		memcpy(name, data, n);
		name[n] = '\0';
		check_user(db, &m, name, exact, may_crypt);
	}
	passdb_free(&db);
	FUZZ_CHECK(db == NULL);

	/* Every user line, duplicates included, in file order. */
	FUZZ_CHECK(passwd_file_list(file.path, list_cb, &l, &err) == 0);
	FUZZ_CHECK(l.n == m.lines);
	if (exact)
		edit_file(data, size, &m);
	model_free(&m);
	return 0;
}
