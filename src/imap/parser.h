/*
 * Incremental, resumable IMAP command parser (RFC 3501 / RFC 9051 section 9,
 * literals of RFC 7888).
 *
 * The parser is fed bytes as they arrive, in pieces of any size down to one
 * byte.  It never keeps a pointer into the caller's input: every argument is
 * copied into the parser's own arena, which lives until imap_parser_next().
 *
 * One command is parsed at a time:
 *
 *	tag SP command-name *(SP argument) CRLF
 *
 * Arguments form a typed tree (atoms, quoted strings, literals, lists); see
 * struct imap_arg and the accessors below.  Bare LF is accepted as a line end.
 *
 * Atoms are lenient, as in Dovecot: any byte except SP, CTL, '(', ')', '{',
 * '"' ends or breaks an atom, except that after a '[' inside an atom
 * everything up to the matching ']' (spaces and parentheses included, not
 * CR/LF) belongs to the atom, so "BODY[HEADER.FIELDS (FROM TO)]<0.100>" is one
 * atom.  '\\', '*', '%', ']' and 8-bit bytes are atom characters.  NIL is an
 * atom; imap_arg_is_nil() tells it apart.
 *
 * Usage:
 *	p = imap_parser_new(&limits);
 *	for each chunk of input (data, len):
 *		while (len > 0) {
 *			ret = imap_parser_feed(p, data, len, &used);
 *			data += used; len -= used;
 *			if (ret == IMAP_PARSE_MORE) break;	   // used == len
 *			if (ret == IMAP_PARSE_CONTINUE) send "+ OK\r\n";
 *			if (ret == IMAP_PARSE_ERROR) {
 *				reply BAD (tagged if imap_parser_tag() != NULL);
 *				if (imap_parser_error_fatal(p)) close;
 *				imap_parser_next(p);
 *			}
 *			if (ret == IMAP_PARSE_DONE) {
 *				run the command (args valid until next());
 *				imap_parser_next(p);
 *			}
 *		}
 */
#ifndef HERALD_IMAP_PARSER_H
#define HERALD_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
	IMAP_ARG_EOL = 0,	/* terminates every argument array */
	IMAP_ARG_ATOM,		/* includes NIL, sequence sets, flags, BODY[..] */
	IMAP_ARG_STRING,	/* quoted string, escapes removed */
	IMAP_ARG_LITERAL,	/* {n} / {n+} / {n-}; may contain NUL bytes */
	IMAP_ARG_LITERAL_STREAMED, /* content went to the literal handler */
	IMAP_ARG_LIST,		/* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal8:1;	/* announced as ~{n} (RFC 3516) */
	/* ATOM/STRING/LITERAL: byte length of str (str is NUL-terminated).
	 * LITERAL_STREAMED: literal size.  LIST: number of items. */
	uint64_t len;
	union {
		const char *str;
		const struct imap_arg *list;	/* len items + IMAP_ARG_EOL */
	} v;
};

struct imap_parser_limits {
	size_t max_line;	/* bytes of command text, literal data excluded */
	uint64_t max_literal;	/* one literal held in memory */
	size_t max_total;	/* in-memory bytes of one command, text+literals */
	unsigned max_depth;	/* list nesting; 0 = no lists allowed */
	unsigned max_args;	/* arguments in one command, all levels */
	bool literal_minus;	/* LITERAL- (RFC 7888): refuse {n+} over 4096 */
};

/* Return values of imap_parser_feed() and imap_parser_feed_line(). */
enum imap_parse_result {
	IMAP_PARSE_ERROR = -1,
	IMAP_PARSE_MORE = 0,	/* all input consumed, command incomplete */
	IMAP_PARSE_DONE = 1,	/* a complete command (or line) is ready */
	IMAP_PARSE_CONTINUE = 2, /* a synchronizing literal was accepted: send
				    a "+" continuation now, then keep feeding */
};

enum imap_literal_action {
	IMAP_LITERAL_MEMORY,	/* keep in the arena, subject to max_literal */
	IMAP_LITERAL_STREAM,	/* pass the bytes to handler->data() */
	IMAP_LITERAL_REJECT,	/* refuse; handler->reject_msg says why */
};

struct imap_parser;

/*
 * Optional hook deciding where a literal goes, so that APPEND can stream a
 * large message to disk.  begin() is called once the literal's size is known
 * and before the continuation is requested.  imap_parser_command_name()
 * and imap_parser_arg_count() tell which argument it is.  For a STREAM
 * literal, data() receives the content in pieces and end() is called after
 * the last byte.  abort() is called if the command fails or the parser is
 * freed or reset before end().
 */
struct imap_literal_handler {
	void *ctx;
	enum imap_literal_action (*begin)(void *ctx, struct imap_parser *p,
	    uint64_t size, bool literal8, const char **reject_msg_r);
	void (*data)(void *ctx, const void *data, size_t len);
	void (*end)(void *ctx);
	void (*abort)(void *ctx);
};

/* The limits are copied. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **p);
/* Takes effect for the next command (e.g. after authentication). */
void imap_parser_set_limits(struct imap_parser *p,
    const struct imap_parser_limits *limits);
void imap_parser_set_literal_handler(struct imap_parser *p,
    const struct imap_literal_handler *handler);

/*
 * Feed input.  *consumed_r is set to the number of bytes used; the parser
 * stops right after the line end of a complete command, so pipelined input
 * stays with the caller.  See enum imap_parse_result.
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
    const char *data, size_t len, size_t *consumed_r);

/*
 * Read one raw line instead of a command (AUTHENTICATE responses, IDLE's
 * DONE).  On DONE, *line_r (NUL-terminated, without CR/LF) stays valid until
 * imap_parser_next().  A line over max_line is an ERROR (not fatal); the rest
 * of it is skipped.
 */
enum imap_parse_result imap_parser_feed_line(struct imap_parser *p,
    const char *data, size_t len, size_t *consumed_r, const char **line_r);

/*
 * Forget the current command and free its arena; the next feed starts a new
 * command.  After a non-fatal ERROR in the middle of a line, the parser first
 * discards input up to and including the next LF.
 */
void imap_parser_next(struct imap_parser *p);

/* The tag, once parsed (NULL before, or if the tag itself was bad). */
const char *imap_parser_tag(const struct imap_parser *p);
/* The command name, uppercased, once parsed; else NULL. */
const char *imap_parser_command_name(const struct imap_parser *p);
/* Top-level arguments, terminated by an IMAP_ARG_EOL entry.  Valid after
 * DONE until imap_parser_next(). */
const struct imap_arg *imap_parser_args(const struct imap_parser *p,
    unsigned *count_r);
/* Number of complete top-level arguments so far (for literal handlers). */
unsigned imap_parser_arg_count(const struct imap_parser *p);

/* After ERROR: a human-readable reason suitable for a BAD response. */
const char *imap_parser_error(const struct imap_parser *p);
/* After ERROR: true when the connection must be closed (a rejected
 * non-synchronizing literal, whose bytes would otherwise be read as
 * commands). */
bool imap_parser_error_fatal(const struct imap_parser *p);
/* After ERROR: true when the error was a size limit (line or literal),
 * for the TOOBIG response code (RFC 4469/7889). */
bool imap_parser_error_toobig(const struct imap_parser *p);

/* Bytes held by the parser's arena (for memory accounting in tests). */
size_t imap_parser_memory(const struct imap_parser *p);

/* Accessors.  All return false when the argument has another type. */
bool imap_arg_is_nil(const struct imap_arg *arg);
bool imap_arg_get_atom(const struct imap_arg *arg, const char **str_r);
/* quoted or (in-memory) literal */
bool imap_arg_get_string(const struct imap_arg *arg, const char **str_r);
/* atom, quoted or literal (RFC 3501 astring; "NIL" counts as an atom) */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **str_r);
/* string or NIL (*str_r = NULL) */
bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r);
bool imap_arg_get_list(const struct imap_arg *arg,
    const struct imap_arg **items_r, unsigned *count_r);
/* Case-insensitive comparison of an atom with s. */
bool imap_arg_atom_equals(const struct imap_arg *arg, const char *s);

#endif
