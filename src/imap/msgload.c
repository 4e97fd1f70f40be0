#include "imap/msgload.h"

#include "core/arena.h"
#include "mime/message.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files up to this size are read, bigger ones mapped. */
#define MSGLOAD_READ_MAX (256 * 1024)

int
imap_msg_load(struct store_mailbox *box, uint32_t uid, struct arena *arena,
    struct imap_msg *msg, struct store_error *err)
{
	struct stat st;
	int fd;

	memset(msg, 0, sizeof(*msg));
	msg->uid = uid;
	msg->arena = arena;
	if (store_mailbox_open_msg(box, uid, &fd, err) < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		err->code = STORE_ERR_INTERNAL;
		snprintf(err->text, sizeof(err->text), "Internal error.");
		close(fd);
		return -1;
	}
	if (st.st_size > 0 && st.st_size <= MSGLOAD_READ_MAX) {
		char *p = arena_alloc(arena, (size_t)st.st_size + 1);
		size_t got = 0;
		ssize_t n = 0;

		while (got < (size_t)st.st_size) {
			n = pread(fd, p + got, (size_t)st.st_size - got,
			    (off_t)got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;	/* n == 0: shrank meanwhile */
			got += (size_t)n;
		}
		close(fd);
		if (n < 0) {
			err->code = STORE_ERR_INTERNAL;
			snprintf(err->text, sizeof(err->text),
			    "Internal error.");
			return -1;
		}
		msg->data = got > 0 ? p : NULL;
		msg->size = got;
		return 0;
	}
	if (st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ,
		    MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED) {
			err->code = STORE_ERR_INTERNAL;
			snprintf(err->text, sizeof(err->text),
			    "Internal error.");
			close(fd);
			return -1;
		}
		msg->map = p;
		msg->data = p;
		msg->size = (size_t)st.st_size;
	}
	close(fd);
	return 0;
}

struct mime_message *
imap_msg_parse(struct imap_msg *msg)
{
	if (msg->mime == NULL)
		msg->mime = mime_message_parse(msg->arena,
		    msg->data != NULL ? msg->data : "", msg->size, NULL);
	return msg->mime;
}

/* Where the top-level header ends: after the first empty line ("\n" or
 * "\r\n" at the start of a line, as mime_message_parse() reads it), or
 * the end of the data. */
static size_t
header_end(const char *d, size_t len)
{
	const char *p = d, *end = d + len;

	if (len > 0 && d[0] == '\n')
		return 1;
	if (len > 1 && d[0] == '\r' && d[1] == '\n')
		return 2;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p - d) + 1;
		if (end - p > 1 && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p - d) + 2;
	}
	return len;
}

struct mime_message *
imap_msg_parse_header(struct imap_msg *msg)
{
	const char *d = msg->data != NULL ? msg->data : "";

	if (msg->mime != NULL)
		return msg->mime;
	return mime_message_parse(msg->arena, d, header_end(d, msg->size),
	    NULL);
}

void
imap_msg_unload(struct imap_msg *msg)
{
	if (msg->map != NULL)
		munmap(msg->map, msg->size);
	msg->map = NULL;
	msg->data = NULL;
	msg->mime = NULL;
}
