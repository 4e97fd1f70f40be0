/*
 * MIME message parser: turns a complete message held in memory (mmap'ed
 * Maildir file or read buffer) into a tree of parts with byte offsets into
 * that buffer.  It never fails: any byte sequence, including an empty one,
 * parses into a tree with at least a root part.  The rules follow Dovecot's
 * parser where the RFCs leave room, so that BODYSTRUCTURE and BODY[section]
 * answers match a Dovecot server:
 *
 *  - Lines end at LF; a CR before LF belongs to the line end.  A bare CR is
 *    an ordinary byte (a CR-only message is one long header line).
 *  - A boundary line is any line starting with "--" + boundary (a prefix
 *    match, RFC 2046 section 5.1.1 asks for trailing whitespace only).
 *    Boundaries of all enclosing multiparts are checked, innermost first;
 *    the line end before a boundary line belongs to the boundary.
 *  - A header ends at an empty line, at a boundary line or at the end of
 *    the data.  Lines without a colon are kept as fields with no value.
 *  - multipart/ with a boundary parameter has children; in a
 *    multipart/digest a part without Content-Type is message/rfc822.
 *    message/rfc822 has exactly one child, the embedded message, whose
 *    extent is the part's body.
 *  - Nesting deeper than max_depth and parts beyond max_parts are not
 *    parsed: such a container becomes a leaf (MIME_PART_F_TRUNCATED).
 *
 * Sizes reported by BODYSTRUCTURE are "virtual" (every bare LF counts as
 * CRLF) as IMAP clients see the message with CRLF line ends; the byte
 * ranges below are raw offsets into the buffer.
 */
#ifndef HERALD_MIME_MESSAGE_H
#define HERALD_MIME_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

struct arena;

#define MIME_DEFAULT_MAX_DEPTH 100	/* same as Dovecot */
#define MIME_DEFAULT_MAX_PARTS 10000	/* same as Dovecot */

struct mime_limits {
	unsigned int max_depth;		/* 0 = MIME_DEFAULT_MAX_DEPTH */
	unsigned int max_parts;		/* 0 = MIME_DEFAULT_MAX_PARTS */
};

/* One header field ("Name: value" plus continuation lines). */
struct mime_header_field {
	size_t offset;		/* first byte of the field */
	size_t len;		/* raw bytes, continuations and line end */
	size_t name_len;	/* name at offset, trailing WSP trimmed */
	size_t value_offset;	/* first byte after the colon */
	size_t value_len;	/* up to (not incl.) the final line end */
	bool has_colon:1;	/* false: a broken line, name is the line */
	bool has_eol:1;		/* false: last line of the data, no LF */
};

struct mime_param {
	const char *name;	/* as written, NUL-terminated */
	const char *value;	/* unquoted, RFC 2231 merged as Dovecot */
};

enum mime_part_flags {
	MIME_PART_F_MULTIPART	= 1 << 0, /* Content-Type multipart/ */
	MIME_PART_F_MESSAGE	= 1 << 1, /* message/rfc822: 1 child */
	MIME_PART_F_TEXT	= 1 << 2, /* text/ (or no Content-Type) */
	MIME_PART_F_TRUNCATED	= 1 << 3, /* container not parsed: limit */
	MIME_PART_F_HAS_EOH	= 1 << 4, /* header ended with empty line */
};

struct mime_part {
	struct mime_part *parent, *next, *children;
	unsigned int nchildren;
	unsigned int depth;		/* root = 0 */
	unsigned int flags;		/* enum mime_part_flags */

	size_t hdr_offset, hdr_len;	/* header incl. the empty line */
	size_t body_offset, body_len;	/* raw body */
	size_t body_vsize;		/* body_len + bare LFs */
	size_t body_lines;		/* LFs in the body */

	struct mime_header_field *fields;
	unsigned int nfields;

	/* Content-* fields, first occurrence wins.  Strings are unfolded,
	   NUL-terminated copies; NULL when the field is absent.  type and
	   subtype are "" when Content-Type is present but unparsable. */
	const char *type, *subtype;
	struct mime_param *params;
	unsigned int nparams;
	const char *id, *description, *encoding, *md5, *location;
	const char *disposition;
	struct mime_param *disp_params;
	unsigned int ndisp_params;
	const char **languages;
	unsigned int nlanguages;
	const char *boundary;		/* NULL unless multipart */
};

struct mime_message {
	const char *data;		/* not owned: must outlive this */
	size_t size;
	struct mime_part *root;		/* never NULL */
	unsigned int nparts;
	struct arena *arena;		/* owns the tree */
};

/*
 * Parse size bytes at data.  Everything is allocated from arena (the tree,
 * field arrays and string copies) and lives until the arena is reset; the
 * tree points into data, which the caller keeps mapped as long as the
 * message is used.  limits may be NULL for the defaults.  Never fails.
 */
struct mime_message *mime_message_parse(struct arena *arena,
					const char *data, size_t size,
					const struct mime_limits *limits);

/* Unfolded value of a field: blanks before the first line's text dropped,
   line ends removed (the
   whitespace after a fold stays), NUL bytes replaced by U+FFFD.  Allocated
   from the message's arena; *len_r gets the length (may be NULL). */
const char *mime_header_value(const struct mime_message *msg,
			      const struct mime_header_field *field,
			      size_t *len_r);

/* As mime_header_value() but line ends stay (for text where a fold must
   be visible, as the ENVELOPE subject). */
const char *mime_header_value_raw(const struct mime_message *msg,
				  const struct mime_header_field *field,
				  size_t *len_r);

/* Last (get_last) or first field of part named name (case-insensitive),
   or NULL. */
const struct mime_header_field *
mime_header_find(const struct mime_message *msg, const struct mime_part *part,
		 const char *name, bool get_last);

/* True if the field is named name, case-insensitively. */
bool mime_header_is(const struct mime_message *msg,
		    const struct mime_header_field *field, const char *name);

/* Depth-first iteration over all parts of the tree, root first:
	for (p = msg->root; p != NULL; p = mime_part_next(p)) */
struct mime_part *mime_part_next(const struct mime_part *part);

/* The embedded message of a message/rfc822 part, else NULL. */
struct mime_part *mime_part_message(const struct mime_part *part);

/* Number of LF not preceded by CR in data[offset, offset+len). */
size_t mime_count_bare_lf(const char *data, size_t offset, size_t len);

#endif
