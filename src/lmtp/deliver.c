#include "lmtp/deliver.h"

#include "config/config.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "log/log.h"
#include "notify/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How far into the message to look for its first line end. */
#define DELIVER_EOL_PROBE 8192

int
deliver_spool_open(const char *dir)
{
	char *path;
	int fd;

#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Not supported by this file system: fall back. */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -1;
#endif
	path = xasprintf("%s/.herald-spool-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		(void)unlink(path);
	free(path);
	return fd;
}

/* "\r\n" if the first line of the message ends with CRLF (or it has no
 * line end at all: the Internet form), else "\n". */
static const char *
message_eol(int fd)
{
	char buf[DELIVER_EOL_PROBE];
	ssize_t n;
	char *lf;

	do {
		n = pread(fd, buf, sizeof(buf), 0);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return "\r\n";
	lf = memchr(buf, '\n', (size_t)n);
	if (lf == NULL || (lf > buf && lf[-1] == '\r'))
		return "\r\n";
	return "\n";
}

/* Append s with control characters dropped (they cannot come from a
 * parsed address, but -f and -a come from a command line). */
static void
append_clean(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x20 && *s != 0x7f)
			buf_append(b, s, 1);
}

static void
build_prefix(struct buf *b, const struct deliver_envelope *env,
    const char *eol)
{
	if (env == NULL)
		return;
	if (env->return_path != NULL) {
		buf_append_str(b, "Return-Path: <");
		append_clean(b, env->return_path);
		buf_append_str(b, ">");
		buf_append_str(b, eol);
	}
	if (env->delivered_to != NULL) {
		buf_append_str(b, "Delivered-To: ");
		append_clean(b, env->delivered_to);
		buf_append_str(b, eol);
	}
	if (env->received != NULL) {
		for (const char *p = env->received; *p != '\0'; p++) {
			if (*p == '\n')
				buf_append_str(b, eol);
			else if ((unsigned char)*p >= 0x20 || *p == '\t')
				buf_append(b, p, 1);
		}
		buf_append_str(b, eol);
	}
}

/* Errors after which dovecot-lda saves to INBOX instead. */
static bool
mailbox_unusable(enum store_error_code code)
{
	switch (code) {
	case STORE_ERR_NOTFOUND:
	case STORE_ERR_BADNAME:
	case STORE_ERR_LIMIT:
	case STORE_ERR_NOTPOSSIBLE:
	case STORE_ERR_NOPERM:
		return true;
	default:
		return false;
	}
}

static int
open_mailbox(struct store_user *su, const char *user, const char *mailbox,
    struct store_mailbox **box_r, struct deliver_result *res,
    struct store_error *err)
{
	struct store_error nerr;

	if (mailbox != NULL && !store_name_is_inbox(mailbox)) {
		if (store_name_normalize(mailbox, res->mailbox, &nerr) == 0 &&
		    store_mailbox_open(su, res->mailbox, 0, box_r,
		    &nerr) == 0)
			return 0;
		if (!mailbox_unusable(nerr.code)) {
			*err = nerr;
			return -1;
		}
		log_info("deliver: user=%s mailbox \"%s\" not usable (%s): "
		    "saving to INBOX", user, mailbox, nerr.text);
		res->fell_back = true;
	}
	strcpy(res->mailbox, "INBOX");
	return store_mailbox_open(su, "INBOX", 0, box_r, err);
}

int
deliver_message(const struct config *cfg, const char *user,
    const char *mailbox, int fd, const struct deliver_envelope *env,
    struct deliver_result *result_r, struct store_error *err)
{
	struct store_settings set = { 0 };
	struct store_user *su = NULL;
	struct store_mailbox *box = NULL;
	struct store_append *ctx;
	struct store_append_msg msg = { 0 };
	struct buf prefix;
	struct stat st;
	unsigned count;
	char *root, *run_dir;
	int ret = -1;

	memset(result_r, 0, sizeof(*result_r));
	memset(err, 0, sizeof(*err));
	buf_init(&prefix, 0);
	build_prefix(&prefix, env, message_eol(fd));
	if (lseek(fd, 0, SEEK_SET) < 0 || fstat(fd, &st) < 0) {
		log_err("deliver: user=%s spool file", user);
		snprintf(err->text, sizeof(err->text), "Internal error");
		err->code = STORE_ERR_INTERNAL;
		buf_free(&prefix);
		return -1;
	}
	set.fsync_disable = !cfg->fsync;
	set.search_text_on_append = cfg->fts_index_on_delivery;
	root = xasprintf("%s/users/%s", cfg->data_dir, user);
	if (store_user_open(root, &set, &su, err) < 0)
		goto out;
	if (open_mailbox(su, user, mailbox, &box, result_r, err) < 0)
		goto out;
	msg.prefix = prefix.data;
	msg.prefix_len = prefix.len;
	ctx = store_append_begin(box);
	if (store_append_fd(ctx, fd, &msg, err) < 0) {
		store_append_rollback(&ctx);
		goto out;
	}
	if (store_append_commit(&ctx, &result_r->uidvalidity, &result_r->uid,
	    &count, err) < 0)
		goto out;
	result_r->size = (uint64_t)st.st_size + prefix.len;
	ret = 0;
out:
	if (box != NULL)
		store_mailbox_close(&box);
	if (su != NULL)
		store_user_close(&su);
	free(root);
	buf_free(&prefix);
	if (ret == 0) {
		/* Committed: wake IDLE sessions of this user, in the server's
		 * processes too when we are `herald deliver`. */
		run_dir = xasprintf("%s/run", cfg->data_dir);
		notify_mailbox_changed_ext(run_dir, user, result_r->mailbox);
		free(run_dir);
	}
	return ret;
}
