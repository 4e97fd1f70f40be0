/*
 * Restart safety of src/store: children append and change flags in a loop
 * and are killed with SIGKILL at random moments; every acknowledged
 * message must survive with its UID and flags, and no UID may ever name
 * two different messages.  Also: several processes appending at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store/store.h"
#include "core/arena.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ITERATIONS 40
#define MAX_ACKS 100000

static char root[64];
static struct store_settings settings;

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
	(void)state;
	strcpy(root, "/tmp/herald-crash-XXXXXX");
	if (mkdtemp(root) == NULL)
		return -1;
	strcat(root, "/u");
	/* SIGKILL does not lose the page cache: fsync is not what is
	 * tested here, and skipping it makes each iteration cheaper. */
	settings.fsync_disable = true;
	return 0;
}

static int
teardown(void **state)
{
	char *slash = strrchr(root, '/');

	(void)state;
	*slash = '\0';
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* Child: append and flag forever, acknowledging each success on fd. */
static void __attribute__((noreturn))
child_loop(int fd, unsigned iter)
{
	struct store_user *user;
	struct store_mailbox *box = NULL;
	struct store_error err;
	struct arena arena;

	arena_init(&arena);
	if (store_user_open(root, &settings, &user, &err) < 0 ||
	    store_mailbox_open(user, "INBOX", 0, &box, &err) < 0 ||
	    store_mailbox_sync(box, &err) < 0) {
		fprintf(stderr, "child: %s\n", err.text);
		_exit(2);
	}
	for (unsigned i = 0;; i++) {
		struct store_append_msg am = { 0 };
		struct store_flag_update upd = { .mode = STORE_MODIFY_ADD,
		    .flags = STORE_F_FLAGGED };
		struct store_update_result res;
		char body[128], line[160];
		uint32_t uid;
		int n;

		n = snprintf(body, sizeof(body),
		    "Subject: crash test\r\nX-Token: %u-%u\r\n\r\nbody\r\n",
		    iter, i);
		if (store_mailbox_append(box, body, (size_t)n, &am, &uid,
		    &err) < 0) {
			fprintf(stderr, "child append: %s\n", err.text);
			_exit(3);
		}
		n = snprintf(line, sizeof(line), "A %u %u-%u\n", uid, iter, i);
		if (write(fd, line, (size_t)n) != n)
			_exit(4);
		if (i % 3 == 0) {
			if (store_mailbox_update_flags(box, &uid, 1, &upd,
			    &arena, &res, &err) < 0) {
				fprintf(stderr, "child store: %s\n", err.text);
				_exit(5);
			}
			n = snprintf(line, sizeof(line), "F %u\n", uid);
			if (write(fd, line, (size_t)n) != n)
				_exit(4);
			arena_reset(&arena);
		}
		if (i % 7 == 0)
			(void)store_mailbox_sync(box, &err);
	}
}

struct ack {
	uint32_t uid;
	char token[32];
	bool flagged;
};

static struct ack *
ack_find(struct ack *acks, unsigned n, uint32_t uid)
{
	for (unsigned i = n; i-- > 0;)
		if (acks[i].uid == uid)
			return &acks[i];
	return NULL;
}

/* Read the whole message for uid and check it carries token. */
static bool
msg_has_token(struct store_mailbox *box, uint32_t uid, const char *token)
{
	struct store_error err;
	char buf[512], want[64];
	ssize_t n;
	int fd;

	if (store_mailbox_open_msg(box, uid, &fd, &err) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	snprintf(want, sizeof(want), "X-Token: %s\r\n", token);
	return strstr(buf, want) != NULL;
}

static void
check_store(struct ack *acks, unsigned nacks)
{
	struct store_user *user;
	struct store_mailbox *box = NULL;
	struct store_error err;
	const struct store_msg *m;
	unsigned n;

	if (store_user_open(root, &settings, &user, &err) < 0 ||
	    store_mailbox_open(user, "INBOX", 0, &box, &err) < 0 ||
	    store_mailbox_sync(box, &err) < 0)
		fail_msg("check open: %s", err.text);
	m = store_mailbox_messages(box, &n);
	for (unsigned i = 1; i < n; i++)
		assert_true(m[i - 1].uid < m[i].uid);
	for (unsigned i = 0; i < nacks; i++) {
		const struct store_msg *found = NULL;

		for (unsigned j = 0; j < n; j++)
			if (m[j].uid == acks[i].uid)
				found = &m[j];
		if (found == NULL)
			fail_msg("acknowledged UID %u (%s) lost", acks[i].uid,
			    acks[i].token);
		if (acks[i].flagged && (found->flags & STORE_F_FLAGGED) == 0)
			fail_msg("UID %u lost \\Flagged", acks[i].uid);
		if (!msg_has_token(box, acks[i].uid, acks[i].token))
			fail_msg("UID %u does not hold %s", acks[i].uid,
			    acks[i].token);
	}
	store_mailbox_close(&box);
	store_user_close(&user);
}

static void
test_sigkill_loop(void **state)
{
	struct ack *acks = xcalloc(MAX_ACKS, sizeof(*acks));
	unsigned nacks = 0;
	struct store_user *user;
	struct store_error err;
	uint32_t max_uid = 0;

	(void)state;
	if (store_user_open(root, &settings, &user, &err) < 0)
		fail_msg("open: %s", err.text);
	store_user_close(&user);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());

	for (unsigned iter = 0; iter < ITERATIONS; iter++) {
		int pfd[2];
		pid_t pid;
		char buf[65536], *line, *save = NULL;
		size_t len = 0;
		ssize_t r;
		int status;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child_loop(pfd[1], iter);
		}
		close(pfd[1]);
		usleep(2000 + (unsigned)(rand() % 40000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		while ((r = read(pfd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)r;
		close(pfd[0]);
		buf[len] = '\0';
		/* A line cut by the kill has no '\n': it is ignored. */
		line = strrchr(buf, '\n');
		if (line != NULL)
			line[1] = '\0';
		else
			buf[0] = '\0';
		for (line = strtok_r(buf, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			unsigned uid;
			char token[32];

			if (sscanf(line, "A %u %31s", &uid, token) == 2) {
				struct ack *a;

				/* UIDs never go backwards, even across
				 * crashes. */
				assert_true(uid > max_uid);
				max_uid = uid;
				assert_true(nacks < MAX_ACKS);
				a = &acks[nacks++];
				a->uid = uid;
				snprintf(a->token, sizeof(a->token), "%s",
				    token);
			} else if (sscanf(line, "F %u", &uid) == 1) {
				struct ack *a = ack_find(acks, nacks, uid);

				assert_non_null(a);
				a->flagged = true;
			}
		}
		if (iter % 10 == 9)
			check_store(acks, nacks);
	}
	fprintf(stderr, "acknowledged %u messages\n", nacks);
	assert_true(nacks > ITERATIONS);
	check_store(acks, nacks);
	/* Index lost after all that: the rebuild keeps the same UIDs. */
	{
		char *p = xasprintf("%s/index.sqlite", root);

		assert_int_equal(unlink(p), 0);
		free(p);
		/* \Flagged comes back from the ":2,F" file names. */
		check_store(acks, nacks);
	}
	free(acks);
}

/* Several processes append to one mailbox at once: no UID twice. */
static void
test_concurrent_appends(void **state)
{
	enum { PROCS = 4, PER_PROC = 25 };
	struct store_user *user;
	struct store_mailbox *box = NULL;
	struct store_error err;
	const struct store_msg *m;
	pid_t pids[PROCS];
	unsigned n;

	(void)state;
	if (store_user_open(root, &settings, &user, &err) < 0)
		fail_msg("open: %s", err.text);
	store_user_close(&user);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			if (store_user_open(root, &settings, &user, &err) < 0 ||
			    store_mailbox_open(user, "Sent", 0, &box,
			    &err) < 0)
				_exit(2);
			for (int i = 0; i < PER_PROC; i++) {
				struct store_append_msg am = { 0 };
				uint32_t uid;

				if (store_mailbox_append(box, "x\r\n", 3, &am,
				    &uid, &err) < 0) {
					fprintf(stderr, "append: %s\n",
					    err.text);
					_exit(3);
				}
				if (i % 5 == 0 &&
				    store_mailbox_sync(box, &err) < 0)
					_exit(4);
			}
			store_mailbox_close(&box);
			store_user_close(&user);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int status;

		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	if (store_user_open(root, &settings, &user, &err) < 0 ||
	    store_mailbox_open(user, "Sent", 0, &box, &err) < 0 ||
	    store_mailbox_sync(box, &err) < 0)
		fail_msg("check: %s", err.text);
	m = store_mailbox_messages(box, &n);
	assert_int_equal(n, PROCS * PER_PROC);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(m[i].uid, i + 1);
	store_mailbox_close(&box);
	store_user_close(&user);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sigkill_loop, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_appends, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
