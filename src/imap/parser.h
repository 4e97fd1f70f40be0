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
 * Runs of spaces between arguments, and trailing spaces, are tolerated.
 *
 * The tag is 1*<ASTRING-CHAR except "+">; the command name is 1*ATOM-CHAR and
 * is returned uppercased.  Quoted strings accept only \" and \\ escapes;
 * CR, LF and NUL in them are errors, other bytes (8-bit included) are kept
 * as they are.  Literals are {n}, {n+} (RFC 7888), ~{n} and ~{n+} (RFC 3516
 * literal8); n is a number64, and the data may hold any byte, NUL included.
 *
 * Atoms are lenient, as in Dovecot: any byte except SP, CTL, '(', ')', '{',
 * '"' ends or breaks an atom, except that after a '[' inside an atom
 * everything up to the matching ']' (spaces and parentheses included, not
 * CR/LF) belongs to the atom, so "BODY[HEADER.FIELDS (FROM TO)]<0.100>" is one
 * atom.  '\\', '*', '%', ']' and 8-bit bytes are atom characters.  NIL is an
 * atom; imap_arg_is_nil() tells it apart.  Precisely: SP, CRLF and (inside a
 * list) ')' end an atom; ')' outside a list, '(', '{', '"' and CTLs in an
 * atom are errors, and so are CTLs and a line end inside its brackets.  '~'
 * followed by '{' starts a literal8, else an atom.
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
	IMAP_ARG_LITERAL,	/* {n} / {n+} / ~{n}; may contain NUL bytes */
	IMAP_ARG_LITERAL_STREAMED, /* content went to the literal handler */
	IMAP_ARG_LIST,		/* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal8:1;	/* announced as ~{n} (RFC 3516) */
	/* ATOM/STRING/LITERAL: byte length of str (str is NUL-terminated).
	 * LITERAL_STREAMED: literal size (v.str is NULL).  LIST: number of
	 * items. */
	uint64_t len;
	union {
		const char *str;
		const struct imap_arg *list;	/* len items + IMAP_ARG_EOL */
	} v;
};

/*
 * Every limit is a hard cap, and 0 means none allowed (not "unlimited").
 * Exceeding one is an ERROR at the byte that crossed it, without waiting
 * for the line end.
 */
struct imap_parser_limits {
	/* Bytes of command text, summed over all the lines of a command
	 * (a command with literals spans several), CR/LF and literal data
	 * excluded.  Also the limit of imap_parser_feed_line(). */
	size_t max_line;
	uint64_t max_literal;	/* one literal held in memory */
	size_t max_total;	/* in-memory bytes of one command, text+literals */
	unsigned max_depth;	/* list nesting; 0 = no lists allowed */
	/* Arguments in one command, all levels: a list counts as one, plus
	 * its items.  The command name does not count. */
	unsigned max_args;
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
 * (after the CRLF that follows "{n}") and before the continuation is
 * requested.  imap_parser_command_name() and imap_parser_arg_count() tell
 * which argument it is.  begin() is not called for a size over 2^63-1 nor,
 * under LITERAL-, for a {n+} over 4096: those are refused first.
 *
 * MEMORY: the literal is subject to max_literal and max_total.
 * STREAM: data() receives the content in pieces of any size (never 0) and
 * end() is called after the last byte (at once for a 0-byte literal); the
 * argument becomes IMAP_ARG_LITERAL_STREAMED.  Not counted in max_literal
 * or max_total.
 * REJECT: the command fails with *reject_msg_r (copied; may be NULL) as its
 * error; fatal for a {n+} literal, whose data is already on its way.
 *
 * abort() is called if the parser is freed or imap_parser_next() is called
 * between begin() (STREAM) and end(), i.e. the literal was cut short.  Once
 * end() has run the parser calls nothing more: if the command then fails
 * (an ERROR later in the line) the caller discards what the handler kept.
 * Callbacks must not call imap_parser_feed/next/free.  data, end and abort
 * may be NULL.
 */
struct imap_literal_handler {
	void *ctx;
	enum imap_literal_action (*begin)(void *ctx, struct imap_parser *p,
	    uint64_t size, bool literal8, const char **reject_msg_r);
	void (*data)(void *ctx, const void *data, size_t len);
	void (*end)(void *ctx);
	void (*abort)(void *ctx);
};

/* The limits are copied.  Never returns NULL. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
/* Calls the handler's abort() if a streamed literal is unfinished.  Sets *p
 * to NULL; NULL is fine. */
void imap_parser_free(struct imap_parser **p);
/* Takes effect for the next command (e.g. after authentication); at once
 * when no byte of a command has been read yet. */
void imap_parser_set_limits(struct imap_parser *p,
    const struct imap_parser_limits *limits);
void imap_parser_set_literal_handler(struct imap_parser *p,
    const struct imap_literal_handler *handler);

/*
 * Feed input.  *consumed_r is set to the number of bytes used; the parser
 * stops right after the line end of a complete command, so pipelined input
 * stays with the caller.  See enum imap_parse_result.  Exactly:
 *
 *  DONE      right after the LF ending the command.
 *  CONTINUE  right after the LF of "{n}\r\n" (the literal data is not
 *            touched); send "+" and feed the rest.
 *  ERROR     right after the byte that showed the error.  If that byte was
 *            the line's LF (e.g. "A1\r\n", a refused "{n}\r\n", an
 *            unclosed list) nothing is left to skip; otherwise the next
 *            feed first discards up to and including the next LF.  Fatal
 *            errors consume nothing more: every later call returns ERROR
 *            with *consumed_r = 0, even after imap_parser_next().
 *  MORE      all of len.
 *
 * The result does not depend on how the input is split into calls.
 *
 * While discarding the rest of a bad line, if that line turns out to end
 * with "{n+}" the client is sending a literal we would read as commands:
 * feed then returns a fatal ERROR ("Non-synchronizing literal in a rejected
 * command") with imap_parser_tag() NULL, the tagged BAD having been sent.
 *
 * Feeding after DONE or ERROR without imap_parser_next() calls it first.
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
    const char *data, size_t len, size_t *consumed_r);

/*
 * Read one raw line instead of a command (AUTHENTICATE responses, IDLE's
 * DONE).  Call only between commands (after next(), or after a previous raw
 * line).  On DONE, *line_r (NUL-terminated, without the LF and the CR just
 * before it; other CRs are kept) stays valid until imap_parser_next(), and
 * *consumed_r stops right after the LF.  A line over max_line bytes, or with
 * a NUL byte, is an ERROR (not fatal); the rest of it is skipped.
 */
enum imap_parse_result imap_parser_feed_line(struct imap_parser *p,
    const char *data, size_t len, size_t *consumed_r, const char **line_r);

/*
 * Forget the current command and free its memory (an idle parser holds
 * none); the next feed starts a new command.  After a non-fatal ERROR in the
 * middle of a line, the parser first discards input up to and including the
 * next LF.  Pending limits from imap_parser_set_limits() apply from here.
 */
void imap_parser_next(struct imap_parser *p);

/* The tag, once parsed (NULL before, or if the tag itself was bad).
 * Valid until imap_parser_next(). */
const char *imap_parser_tag(const struct imap_parser *p);
/* The command name, uppercased, once parsed; else NULL. */
const char *imap_parser_command_name(const struct imap_parser *p);
/* Top-level arguments, terminated by an IMAP_ARG_EOL entry.  Valid after
 * DONE until imap_parser_next().  NULL (count 0) when no command is DONE,
 * including after a raw line. */
const struct imap_arg *imap_parser_args(const struct imap_parser *p,
    unsigned *count_r);
/* Number of complete top-level arguments so far (for literal handlers). */
unsigned imap_parser_arg_count(const struct imap_parser *p);

/* After ERROR: a human-readable reason suitable for a BAD response
 * (NULL when there is no error).  Valid until imap_parser_next(), or until
 * free for a fatal error. */
const char *imap_parser_error(const struct imap_parser *p);
/* After ERROR: true when the connection must be closed (a rejected
 * non-synchronizing literal, whose bytes would otherwise be read as
 * commands). */
bool imap_parser_error_fatal(const struct imap_parser *p);
/* After ERROR: true when the error was a size limit (max_line, max_literal,
 * max_total, LITERAL-, a size over 2^63-1), for the TOOBIG response code
 * (RFC 4469/7889).  max_depth and max_args errors are plain syntax errors;
 * so is a handler's REJECT (put the code in its message). */
bool imap_parser_error_toobig(const struct imap_parser *p);

/* Bytes held for the current command: arena allocations plus the token
 * buffer (for memory accounting in tests).  0 after imap_parser_next(). */
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
