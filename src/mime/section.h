/*
 * BODY[section] addressing (RFC 9051 section 6.4.5).  A section is
 *	[part ("." part)*] ["." text] | text
 * with text one of HEADER, HEADER.FIELDS (list), HEADER.FIELDS.NOT (list),
 * TEXT, and MIME (only after a part number).  The empty section is the
 * whole message.  Part numbers follow Dovecot: in a single-part message
 * or part, "1" is that part's body; a message/rfc822 part's numbers go to
 * the embedded message; HEADER and TEXT after a part number need a
 * message/rfc822 part.  A section that does not exist is not an error:
 * Dovecot answers it with an empty string, and so should the caller.
 *
 * The result is a byte range of the message, or for HEADER.FIELDS(.NOT)
 * built content.  Both are raw message bytes (line ends as stored; lines
 * that had none get CRLF); CRLF conversion, NUL bytes (Dovecot sends them
 * as 0x80) and <partial>
 * are up to the caller.
 */
#ifndef HERALD_MIME_SECTION_H
#define HERALD_MIME_SECTION_H

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct mime_message;

#define MIME_SECTION_MAX_PARTS 32	/* "1.2.3..." depth we accept */

enum mime_section_text {
	MIME_SECTION_BODY,		/* "" or a bare part number */
	MIME_SECTION_HEADER,
	MIME_SECTION_HEADER_FIELDS,
	MIME_SECTION_HEADER_FIELDS_NOT,
	MIME_SECTION_TEXT,
	MIME_SECTION_MIME,
};

struct mime_section {
	unsigned int parts[MIME_SECTION_MAX_PARTS];	/* 1-based */
	unsigned int nparts;
	enum mime_section_text text;
	const char **fields;		/* HEADER.FIELDS(.NOT) names */
	unsigned int nfields;
};

/*
 * Parse the text between "[" and "]", e.g. "1.2.HEADER.FIELDS (From To)";
 * keywords are case-insensitive, field names are atoms or quoted strings.
 * fields come from arena.  Returns 0, or -1 with *error_r (static text)
 * on a syntax error.
 */
int mime_section_parse(struct arena *arena, const char *s, size_t len,
		       struct mime_section *section_r, const char **error_r);

struct mime_section_data {
	size_t offset;		/* into msg->data, when built == NULL */
	size_t len;
	const char *built;	/* else the content, from the arena */
};

/*
 * Find a section of msg.  Returns false if it does not exist (answer "").
 * Built content is allocated from msg->arena.
 */
bool mime_section_get(const struct mime_message *msg,
		      const struct mime_section *section,
		      struct mime_section_data *data_r);

#endif
