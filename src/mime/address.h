/*
 * RFC 5322 section 3.4 address lists, parsed leniently into the shape of
 * an IMAP ENVELOPE address list (RFC 9051 section 7.5.2):
 *  - a mailbox: name (display name or the last comment, else NULL), route
 *    ("@a,@b" of an obsolete source route, else NULL), mailbox, domain;
 *  - a group "name: a, b;": a start entry (mailbox = group name, domain
 *    NULL) then its members then an end entry (mailbox and domain NULL).
 * Broken input never fails.  As in Dovecot, a missing local part or domain
 * reads "MISSING_MAILBOX" / "MISSING_DOMAIN", an empty list element is one
 * such invalid address, and parsing stops at the first byte that cannot
 * continue the list.
 */
#ifndef HERALD_MIME_ADDRESS_H
#define HERALD_MIME_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct buf;

struct mime_address {
	struct mime_address *next;
	const char *name, *route, *mailbox, *domain;	/* NUL-terminated */
	bool invalid:1;		/* MISSING_* was filled in */
};

/*
 * Parse an unfolded header value (see mime_header_value()).  The list and
 * its strings come from arena.  Returns NULL for an empty list.  *tail_r,
 * if not NULL, gets the last entry, for appending further lists.
 */
struct mime_address *mime_address_parse(struct arena *arena, const char *s,
					size_t len,
					struct mime_address **tail_r);

/* Append "((name route mailbox domain)...)" or NIL for an empty list. */
void mime_address_write(struct buf *out, const struct mime_address *list);

#endif
