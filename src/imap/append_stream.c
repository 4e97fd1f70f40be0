#include "imap/append_stream.h"

#include "config/config.h"
#include "core/xmalloc.h"
#include "event/worker.h"
#include "imap/parser.h"
#include "imap/server.h"
#include "imap/session.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct stream_file {
	struct imap_append_literal lit;
	unsigned position;	/* top-level argument index */
};

/* One session's message literals. */
struct append_stream {
	struct append_stream *next;
	struct imap_session *s;
	struct stream_file *files;	/* complete, oldest first */
	unsigned count, cap;
	struct stream_file cur;		/* the literal being received */
	bool receiving;
};

/* Sessions holding files, in this process (the loop thread only).  Short:
 * only APPENDs in flight are here. */
static struct append_stream *streams;

static struct append_stream *
stream_find(struct imap_session *s, bool create)
{
	struct append_stream *st;

	for (st = streams; st != NULL; st = st->next)
		if (st->s == s)
			return st;
	if (!create)
		return NULL;
	st = xmalloc(sizeof(*st));
	st->s = s;
	st->cur.lit.fd = -1;
	st->next = streams;
	streams = st;
	return st;
}

static void
file_close(struct imap_append_literal *lit)
{
	if (lit->fd >= 0)
		(void)close(lit->fd);
	lit->fd = -1;
}

static void
stream_close_files(struct append_stream *st)
{
	for (unsigned i = 0; i < st->count; i++)
		file_close(&st->files[i].lit);
	st->count = 0;
}

/* Forget st once it holds nothing. */
static void
stream_release(struct append_stream *st)
{
	struct append_stream **pp;

	if (st->count > 0 || st->receiving)
		return;
	for (pp = &streams; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	free(st->files);
	free(st);
}

/*
 * An unlinked file for one message: O_TMPFILE leaves no name behind, so a
 * crash or a disconnect can never leave a partial message anywhere.  The
 * directory is created on first use.  Returns the fd, or -1 with errno.
 */
static int
tmpfile_open(const char *data_dir)
{
	char *dir = xasprintf("%s/tmp", data_dir);
	int fd, e;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			e = errno;
			free(dir);
			errno = e;
			return -1;
		}
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	}
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL)) {
		/* No O_TMPFILE here: a named file, unlinked at once. */
		char *path = xasprintf("%s/append.XXXXXX", dir);

		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			(void)unlink(path);
		e = errno;
		free(path);
		errno = e;
	}
	e = errno;
	free(dir);
	errno = e;
	return fd;
}

static enum imap_literal_action
stream_begin(void *ctx, struct imap_parser *p, uint64_t size, bool literal8,
    const char **reject_msg_r)
{
	struct imap_session *s = ctx;
	const struct config *cfg = worker_config(s->server->worker);
	const char *name = imap_parser_command_name(p);
	unsigned pos = imap_parser_arg_count(p);
	const char *reject = NULL;
	struct append_stream *st;

	/* Only APPEND's messages, after login; argument 0 is the mailbox.
	 * A 0-byte literal has nothing to stream. */
	if ((s->state & (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)) == 0 ||
	    name == NULL || strcmp(name, "APPEND") != 0 || pos < 1 ||
	    size == 0)
		return IMAP_LITERAL_MEMORY;
	st = stream_find(s, true);
	/* Within one command, message literals sit at growing top-level
	 * positions.  One at or before the last file's position belongs to
	 * a new command: the old one failed after its literals. */
	if (st->count > 0 && pos <= st->files[st->count - 1].position)
		stream_close_files(st);
	if (size > cfg->max_message_size)
		reject = "[TOOBIG] Message too large";
	else if (st->count >= IMAP_APPEND_MAX_MESSAGES)
		reject = "[LIMIT] Too many messages in one APPEND";
	if (reject != NULL) {
		/* The command fails: its earlier messages go too. */
		stream_close_files(st);
		stream_release(st);
		*reject_msg_r = reject;
		return IMAP_LITERAL_REJECT;
	}
	file_close(&st->cur.lit);	/* never open here; just in case */
	memset(&st->cur, 0, sizeof(st->cur));
	st->cur.position = pos;
	st->cur.lit.fd = tmpfile_open(cfg->data_dir);
	if (st->cur.lit.fd < 0) {
		/* Receive the literal anyway; APPEND then answers NO. */
		st->cur.lit.error = errno;
		imap_session_log(s, LOG_LEVEL_ERROR,
		    "append: cannot create a temporary file in %s/tmp: %s",
		    cfg->data_dir, strerror(errno));
	}
	st->receiving = true;
	return IMAP_LITERAL_STREAM;
}

static void
stream_data(void *ctx, const void *data, size_t len)
{
	struct append_stream *st = stream_find(ctx, false);
	const char *d = data;

	if (st == NULL || !st->receiving)
		return;
	st->cur.lit.size += len;
	while (len > 0 && st->cur.lit.fd >= 0) {
		ssize_t n = write(st->cur.lit.fd, d, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			st->cur.lit.error = n < 0 ? errno : EIO;
			imap_session_log(st->s, LOG_LEVEL_ERROR,
			    "append: writing a temporary file: %s",
			    strerror(st->cur.lit.error));
			file_close(&st->cur.lit);
			break;
		}
		d += n;
		len -= (size_t)n;
	}
}

static void
stream_end(void *ctx)
{
	struct append_stream *st = stream_find(ctx, false);

	if (st == NULL || !st->receiving)
		return;
	if (st->count == st->cap) {
		st->cap = st->cap == 0 ? 4 : st->cap * 2;
		st->files = xrealloc(st->files, st->cap * sizeof(*st->files));
	}
	st->files[st->count++] = st->cur;
	st->cur.lit.fd = -1;
	st->receiving = false;
}

static void
stream_abort(void *ctx)
{
	struct append_stream *st = stream_find(ctx, false);

	if (st == NULL || !st->receiving)
		return;
	/* Closing the unlinked file is all it takes to remove it. */
	file_close(&st->cur.lit);
	st->receiving = false;
	stream_release(st);
}

void
imap_append_stream_attach(struct imap_session *s)
{
	struct imap_literal_handler h = {
		.ctx = s,
		.begin = stream_begin,
		.data = stream_data,
		.end = stream_end,
		.abort = stream_abort,
	};

	imap_parser_set_literal_handler(s->parser, &h);
}

void
imap_append_stream_detach(struct imap_session *s)
{
	struct append_stream *st = stream_find(s, false);

	if (st == NULL)
		return;
	stream_close_files(st);
	file_close(&st->cur.lit);
	st->receiving = false;
	stream_release(st);
}

int
imap_append_stream_take(struct imap_session *s, const unsigned *positions,
    unsigned n, struct imap_append_literal *out)
{
	struct append_stream *st = stream_find(s, false);
	unsigned base;
	int ret = 0;

	if (st == NULL)
		return n == 0 ? 0 : -1;
	/* The command's literals are the newest files; older ones are left
	 * over from commands that failed after their literals. */
	if (st->count < n) {
		ret = -1;
	} else {
		base = st->count - n;
		for (unsigned i = 0; i < n; i++)
			if (st->files[base + i].position != positions[i])
				ret = -1;
		if (ret == 0) {
			for (unsigned i = 0; i < n; i++) {
				out[i] = st->files[base + i].lit;
				st->files[base + i].lit.fd = -1;
			}
		}
	}
	stream_close_files(st);
	stream_release(st);
	return ret;
}
