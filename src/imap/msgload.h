/*
 * Load a message of the selected mailbox for FETCH and SEARCH: a small file
 * is read into the arena, a bigger one mapped read-only (mapping and
 * unmapping cost more than reading a few KB, and munmap() in a threaded
 * process interrupts the other threads), and parsed into a MIME tree on
 * demand.
 */
#ifndef HERALD_IMAP_MSGLOAD_H
#define HERALD_IMAP_MSGLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct arena;
struct mime_message;

struct imap_msg {
	uint32_t uid;
	const char *data;	/* the file; NULL for an empty file */
	void *map;		/* the same if mapped, for munmap() */
	size_t size;
	struct mime_message *mime;	/* NULL until imap_msg_parse() */
	struct arena *arena;
};

/* Read or map the message with uid.  0, or -1 with *err
 * (STORE_ERR_EXPUNGED when the file is gone).  The data (when read), the
 * tree and copies come from arena. */
int imap_msg_load(struct store_mailbox *box, uint32_t uid,
    struct arena *arena, struct imap_msg *msg, struct store_error *err);
/* Parse (once) and return the MIME tree. */
struct mime_message *imap_msg_parse(struct imap_msg *msg);
/*
 * The tree of the top-level header alone (ENVELOPE needs no more), or the
 * whole tree if parsed already.  Not kept: call once per message.
 */
struct mime_message *imap_msg_parse_header(struct imap_msg *msg);
/* Unmap if mapped.  The arena is the caller's to reset. */
void imap_msg_unload(struct imap_msg *msg);

#endif
