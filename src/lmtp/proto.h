/*
 * The LMTP wire syntax, apart from the connection (RFC 2033 over RFC
 * 5321): command lines, reverse- and forward-paths, ESMTP parameters, the
 * recipient-to-user mapping and the dot-stuffed DATA stream.  Pure
 * functions of their input: session.c drives them, and so do the unit
 * tests and the fuzz target (fuzz/fuzz_lmtp.c).
 */
#ifndef HERALD_LMTP_PROTO_H
#define HERALD_LMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Longest command line, CRLF included.  RFC 5321 4.5.3.1.4 asks for 512;
 * extension parameters may need more. */
#define LMTP_MAX_LINE 4096
/* Candidate user names for one recipient address. */
#define LMTP_MAX_CANDIDATES 6

/* ---- command lines ------------------------------------------------------- */

enum lmtp_line_result {
	LMTP_LINE_OK,
	LMTP_LINE_BAD_VERB,	/* 500 5.5.2 Invalid command syntax */
	LMTP_LINE_BAD_CHARS,	/* 501 5.5.2 Invalid characters in parameters */
};

/*
 * Split a command line (line ending already removed, NUL-terminated, no
 * NUL inside) into the verb and its arguments: the verb runs up to the
 * first space and must be letters only (it may be empty: an empty line);
 * the arguments, after that one space, must hold no control character.
 * *verb_len_r and *args_r are set on LMTP_LINE_OK.
 */
enum lmtp_line_result lmtp_line_split(const char *line, size_t *verb_len_r,
    const char **args_r);

/* Case-insensitive "KEYWORD:" at the start of args ("FROM:", "TO:");
 * returns what follows, or NULL. */
const char *lmtp_skip_keyword(const char *args, const char *kw);

/* ---- paths and parameters ------------------------------------------------ */

struct lmtp_path {
	char *address;		/* between the brackets, source route dropped */
	char *local;		/* local part, unquoted */
	const char *rest;	/* after '>' (points into the parsed text) */
	bool null;		/* "<>" */
};

/*
 * Parse a reverse- or forward-path (RFC 5321 4.1.2) at s: "<" [A-d-l ":"]
 * Mailbox ">", after optional spaces.  The local part may be a quoted
 * string; the domain is kept as given and not checked (the MTA in front
 * of us routed on it).  An address without '@' is accepted as a bare
 * local part.  What follows '>' must be the end or a space.  Returns false
 * with *why (static text, Dovecot's wording) on a syntax error, with *p
 * then holding nothing to free.
 */
bool lmtp_path_parse(const char *s, struct lmtp_path *p, const char **why);
void lmtp_path_free(struct lmtp_path *p);

/*
 * The next ESMTP parameter after a path (RFC 5321 4.1.2): a word up to a
 * space, "KEY=VALUE" or "KEY".  Returns false at the end; else *key_r and
 * *value_r (NULL without '=') are allocated and *pp moves past the word.
 */
bool lmtp_next_param(const char **pp, char **key_r, char **value_r);

/*
 * The passwd-file users a recipient may be, in order: the whole address
 * (for passwd files that list "user@domain"), the local part, and the
 * local part without a "+detail" suffix; then the last two lower-cased.
 * Names passwd_user_name_valid() refuses and repeats are left out.
 * Fills cand[] (allocated strings) and returns how many, at most
 * LMTP_MAX_CANDIDATES.
 */
unsigned lmtp_candidates(const struct lmtp_path *path,
    char *cand[LMTP_MAX_CANDIDATES]);

/* ---- DATA ---------------------------------------------------------------- */

/* Where the reader is in the dot-stuffed stream (RFC 5321 4.5.2). */
enum lmtp_data_state {
	LMTP_DATA_BOL,		/* at the start of a line */
	LMTP_DATA_TEXT,		/* inside a line */
	LMTP_DATA_CR,		/* after a CR inside a line */
	LMTP_DATA_DOT,		/* after a '.' at the start of a line (dropped) */
	LMTP_DATA_DOT_CR,	/* after ".\r" at the start of a line */
};

/* Receives message bytes with the dot-stuffing undone. */
typedef void lmtp_data_put_fn(void *ctx, const char *data, size_t len);

/*
 * Feed dot-stuffed message data, starting in LMTP_DATA_BOL.  Only CRLF
 * "." CRLF ends the data: a bare LF is content, never a line end.  Returns
 * the bytes consumed; *end is set when they stop right after the final
 * ".\r\n" (the terminator is not passed to put).  The result does not
 * depend on how the stream is split into calls.
 */
size_t lmtp_data_feed(enum lmtp_data_state *state, const char *data,
    size_t len, lmtp_data_put_fn *put, void *ctx, bool *end);

#endif
