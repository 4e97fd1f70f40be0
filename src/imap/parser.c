/*
 * IMAP command parser: a byte-driven state machine (STYLE section 5).
 *
 * Every decision is taken on the byte at hand, with no look-ahead, so the
 * result is the same whatever the input's chunking.  The only exceptions
 * are the bulk copies of literal data and of skipped lines, which are plain
 * byte counts.
 */
#include "imap/parser.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <stdlib.h>
#include <string.h>

/* RFC 7888 section 5: under LITERAL-, {n+} may be at most 4096 bytes. */
#define LITERAL_MINUS_MAX 4096
/* RFC 9051 section 9: a literal size is a number64 (at most 2^63 - 1). */
#define LITERAL_SIZE_MAX ((uint64_t)INT64_MAX)

enum parser_state {
	PS_TAG = 0,	/* start of a command: reading the tag */
	PS_NAME_START,	/* after tag SP */
	PS_NAME,
	PS_ARG_START,	/* an argument, ')' or the line end may follow */
	PS_AFTER_ARG,	/* after a string, literal or list */
	PS_ATOM,
	PS_QUOTED,
	PS_QUOTED_ESC,
	PS_TILDE,	/* '~': literal8 or an atom starting with '~' */
	PS_LIT_OPEN,	/* '{' */
	PS_LIT_DIGITS,
	PS_LIT_PLUS,
	PS_LIT_CLOSE,	/* '}': CRLF must follow */
	PS_LIT_DATA,
	PS_CR,		/* CR read where a line may end; LF must follow */
	PS_LINE,	/* raw line (imap_parser_feed_line) */
	PS_DONE,
	PS_ERROR,
	PS_SKIP,	/* discarding the rest of a bad line */
	PS_FATAL,	/* sticky: the connection must be closed */
};

/*
 * While a bad command line is skipped we still watch whether it ends with
 * "{n+}" (RFC 7888): the client then sends the literal without waiting, and
 * those bytes must not be read as commands.
 */
enum skip_lit {
	SKIP_LIT_NONE = 0,
	SKIP_LIT_OPEN,		/* "{" */
	SKIP_LIT_DIGITS,	/* "{1" */
	SKIP_LIT_PLUS,		/* "{1+" */
	SKIP_LIT_CLOSE,		/* "{1+}" */
	SKIP_LIT_CLOSE_CR,	/* "{1+}\r" */
};

enum step_result {
	STEP_ERROR = -1,
	STEP_OK = 0,
	STEP_DONE = 1,
	STEP_CONTINUE = 2,
};

struct level {
	struct imap_arg *items;	/* cap + 1 entries, items[count] = EOL */
	unsigned count, cap;
};

struct imap_parser {
	struct imap_parser_limits limits;
	/* From set_limits() in mid-command, for the next command. */
	struct imap_parser_limits next_limits;
	struct imap_literal_handler handler;
	struct arena arena;	/* everything of the current command */
	struct buf tok;		/* the token being read, or a raw line */

	enum parser_state state;
	enum parser_state cr_state;	/* resumed when LF follows CR */
	enum skip_lit skip_lit;
	const char *tag, *name;
	const char *error;
	char *error_dyn;	/* copy of the handler's reject message */

	struct level *levels;	/* levels[0]: the top-level arguments */
	unsigned levels_cap;
	unsigned depth;		/* open lists */
	unsigned nargs;		/* arguments at all levels (max_args) */
	unsigned bracket;	/* '[' nesting inside the current atom */

	size_t line_len;	/* command text so far, without CR/LF */
	size_t literal_mem;	/* bytes of in-memory literals so far */
	uint64_t lit_size;
	uint64_t lit_left;
	char *lit_data;		/* in-memory literal being filled */

	bool has_next_limits:1;
	bool lit8:1;		/* "~{" */
	bool lit_nonsync:1;	/* "{n+}" */
	bool lit_overflow:1;	/* size digits beyond number64 */
	bool streaming:1;	/* begin() said STREAM and end() is pending */
	bool skip_pending:1;	/* after next(): discard up to LF */
	bool skip_check_lit:1;	/* the skipped line is a command line */
	bool line_cr:1;		/* raw line: CR held back (LF next?) */
	bool toobig:1;
	bool fatal_now:1;	/* this error must close the connection */
};

static const struct imap_arg empty_list[1] = { { .type = IMAP_ARG_EOL } };

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 9051 ATOM-CHAR: any CHAR except atom-specials. */
static bool
is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* RFC 9051 tag: any ASTRING-CHAR except "+". */
static bool
is_tag_char(unsigned char c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

static const char *
tok_str(const struct imap_parser *p)
{
	return p->tok.len > 0 ? p->tok.data : "";
}

static enum step_result
tok_add(struct imap_parser *p, unsigned char c)
{
	/* The buffer has no own maximum: max_line bounds it. */
	(void)buf_append(&p->tok, &c, 1);
	return STEP_OK;
}

static char *
tok_take(struct imap_parser *p)
{
	char *s = arena_strndup(&p->arena, tok_str(p), p->tok.len);

	buf_reset(&p->tok);
	return s;
}

static enum step_result
fail(struct imap_parser *p, const char *msg)
{
	p->error = msg;
	return STEP_ERROR;
}

static enum step_result
fail_toobig(struct imap_parser *p, const char *msg)
{
	p->toobig = true;
	return fail(p, msg);
}

static struct level *
cur_level(struct imap_parser *p)
{
	if (p->depth >= p->levels_cap) {
		unsigned cap = p->levels_cap == 0 ? 4 : p->levels_cap * 2;
		struct level *l = arena_alloc(&p->arena, cap * sizeof(*l));

		if (p->levels_cap > 0)
			memcpy(l, p->levels, p->levels_cap * sizeof(*l));
		p->levels = l;
		p->levels_cap = cap;
	}
	return &p->levels[p->depth];
}

/* Append a zeroed argument to the innermost open list. */
static struct imap_arg *
add_arg(struct imap_parser *p)
{
	struct level *lv = cur_level(p);

	if (lv->count == lv->cap) {
		/* The old array stays in the arena; doubling bounds the waste
		 * to the size of the final array. */
		unsigned cap = lv->cap == 0 ? 4 : lv->cap * 2;
		struct imap_arg *items;

		items = arena_alloc(&p->arena, ((size_t)cap + 1) *
		    sizeof(*items));
		if (lv->count > 0)
			memcpy(items, lv->items, lv->count * sizeof(*items));
		lv->items = items;
		lv->cap = cap;
	}
	return &lv->items[lv->count++];
}

/* Count an argument that starts here against max_args. */
static enum step_result
new_arg(struct imap_parser *p)
{
	if (p->nargs >= p->limits.max_args)
		return fail(p, "Too many arguments");
	p->nargs++;
	return STEP_OK;
}

static void
save_atom(struct imap_parser *p)
{
	struct imap_arg *arg = add_arg(p);

	arg->type = IMAP_ARG_ATOM;
	arg->len = p->tok.len;
	arg->v.str = tok_take(p);
}

static void
save_string(struct imap_parser *p)
{
	struct imap_arg *arg = add_arg(p);

	arg->type = IMAP_ARG_STRING;
	arg->len = p->tok.len;
	arg->v.str = tok_take(p);
}

static void
save_name(struct imap_parser *p)
{
	char *s = tok_take(p);
	char *c;

	for (c = s; *c != '\0'; c++) {
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	}
	p->name = s;
}

static enum step_result
list_open(struct imap_parser *p)
{
	if (p->depth >= p->limits.max_depth)
		return fail(p, "Too deeply nested lists");
	if (new_arg(p) < 0)
		return STEP_ERROR;
	p->depth++;
	memset(cur_level(p), 0, sizeof(struct level));
	p->state = PS_ARG_START;
	return STEP_OK;
}

static enum step_result
list_close(struct imap_parser *p)
{
	struct level *lv;
	struct imap_arg *arg;
	const struct imap_arg *items;
	unsigned count;

	if (p->depth == 0)
		return fail(p, "Unexpected ')'");
	lv = cur_level(p);
	items = lv->items != NULL ? lv->items : empty_list;
	count = lv->count;
	p->depth--;
	arg = add_arg(p);
	arg->type = IMAP_ARG_LIST;
	arg->len = count;
	arg->v.list = items;
	p->state = PS_AFTER_ARG;
	return STEP_OK;
}

static enum step_result
line_end(struct imap_parser *p)
{
	if (p->depth > 0)
		return fail(p, "Missing ')'");
	/* The arguments are in the arena now: a command that runs long
	 * (IDLE) keeps no token buffer (STYLE section 7.8). */
	if (p->tok.len == 0)
		buf_free(&p->tok);
	p->state = PS_DONE;
	return STEP_DONE;
}

static enum step_result
cr(struct imap_parser *p)
{
	p->cr_state = p->state;
	p->state = PS_CR;
	return STEP_OK;
}

static void
literal_finish(struct imap_parser *p)
{
	struct imap_arg *arg = add_arg(p);

	arg->literal8 = p->lit8;
	arg->len = p->lit_size;
	if (p->streaming) {
		p->streaming = false;
		arg->type = IMAP_ARG_LITERAL_STREAMED;
		if (p->handler.end != NULL)
			p->handler.end(p->handler.ctx);
	} else {
		arg->type = IMAP_ARG_LITERAL;
		arg->v.str = p->lit_data;	/* NUL-terminated: zeroed */
	}
	p->lit_data = NULL;
	p->state = PS_AFTER_ARG;
}

/*
 * The CRLF after "{n}" has been read.  Errors here happen exactly at a line
 * end, so nothing is skipped.  For a synchronizing literal the client waits
 * for "+" and sends nothing more, so the error is not fatal; for {n+} the
 * data follows at once and the connection must be closed (RFC 7888
 * section 4).
 */
static enum step_result
literal_fail(struct imap_parser *p, const char *msg, bool toobig)
{
	p->fatal_now = p->lit_nonsync;
	p->toobig = toobig;
	return fail(p, msg);
}

static enum step_result
literal_announced(struct imap_parser *p)
{
	enum imap_literal_action action = IMAP_LITERAL_MEMORY;
	const char *msg = NULL;

	if (p->lit_overflow)
		return literal_fail(p, "Literal size too large", true);
	if (p->lit_nonsync && p->limits.literal_minus &&
	    p->lit_size > LITERAL_MINUS_MAX) {
		return literal_fail(p,
		    "Non-synchronizing literal over 4096 bytes (LITERAL-)",
		    true);
	}
	if (p->handler.begin != NULL) {
		action = p->handler.begin(p->handler.ctx, p, p->lit_size,
		    p->lit8, &msg);
	}
	switch (action) {
	case IMAP_LITERAL_REJECT:
		free(p->error_dyn);
		p->error_dyn = xstrdup(msg != NULL ? msg : "Literal rejected");
		return literal_fail(p, p->error_dyn, false);
	case IMAP_LITERAL_STREAM:
		p->streaming = true;
		break;
	case IMAP_LITERAL_MEMORY:
		if (p->lit_size > p->limits.max_literal)
			return literal_fail(p, "Literal too large", true);
		/* line_len + literal_mem <= max_total holds (parse_byte). */
		if (p->lit_size > p->limits.max_total - p->line_len -
		    p->literal_mem)
			return literal_fail(p, "Command too large", true);
		p->lit_data = arena_alloc(&p->arena, (size_t)p->lit_size + 1);
		p->literal_mem += (size_t)p->lit_size;
		break;
	}
	p->lit_left = p->lit_size;
	p->state = PS_LIT_DATA;
	if (p->lit_left == 0)
		literal_finish(p);
	return p->lit_nonsync ? STEP_OK : STEP_CONTINUE;
}

static void
literal_data(struct imap_parser *p, const unsigned char *d, size_t len,
    size_t *pos)
{
	size_t n = len - *pos;

	if (n > p->lit_left)
		n = (size_t)p->lit_left;
	if (p->streaming) {
		if (p->handler.data != NULL)
			p->handler.data(p->handler.ctx, d + *pos, n);
	} else {
		memcpy(p->lit_data + (p->lit_size - p->lit_left), d + *pos, n);
	}
	*pos += n;
	p->lit_left -= n;
	if (p->lit_left == 0)
		literal_finish(p);
}

static enum step_result atom_byte(struct imap_parser *p, unsigned char c);

static enum step_result
arg_start(struct imap_parser *p, unsigned char c)
{
	switch (c) {
	case ' ':
		/* Lenient, like Dovecot: extra spaces are ignored. */
		return STEP_OK;
	case '\r':
		return cr(p);
	case '\n':
		return line_end(p);
	case '(':
		return list_open(p);
	case ')':
		return list_close(p);
	case '"':
		if (new_arg(p) < 0)
			return STEP_ERROR;
		p->state = PS_QUOTED;
		return STEP_OK;
	case '{':
		if (new_arg(p) < 0)
			return STEP_ERROR;
		p->lit8 = false;
		p->state = PS_LIT_OPEN;
		return STEP_OK;
	case '~':
		if (new_arg(p) < 0)
			return STEP_ERROR;
		p->state = PS_TILDE;
		return STEP_OK;
	case '\0':
		return fail(p, "NUL byte in command");
	default:
		break;
	}
	if (is_ctl(c))
		return fail(p, "Control character in command");
	if (new_arg(p) < 0)
		return STEP_ERROR;
	p->state = PS_ATOM;
	p->bracket = 0;
	return atom_byte(p, c);
}

/*
 * Atoms are lenient (see parser.h).  Inside "[...]" everything but CR, LF
 * and other CTLs belongs to the atom, for FETCH's
 * BODY[HEADER.FIELDS (FROM TO)]<0.100>.
 */
static enum step_result
atom_byte(struct imap_parser *p, unsigned char c)
{
	if (p->bracket > 0) {
		if (c == '\r')
			return cr(p);
		if (c == '\n')
			return fail(p, "Missing ']' in atom");
		if (c == ']')
			p->bracket--;
		else if (c == '[')
			p->bracket++;
		else if (is_ctl(c))
			return fail(p, "Invalid characters in atom");
		return tok_add(p, c);
	}
	switch (c) {
	case ' ':
		save_atom(p);
		p->state = PS_ARG_START;
		return STEP_OK;
	case '\r':
		return cr(p);
	case '\n':
		save_atom(p);
		return line_end(p);
	case ')':
		if (p->depth == 0)
			return fail(p, "Unexpected ')'");
		save_atom(p);
		return list_close(p);
	case '[':
		p->bracket++;
		return tok_add(p, c);
	case '(':
	case '{':
	case '"':
		return fail(p, "Invalid characters in atom");
	default:
		break;
	}
	if (is_ctl(c))
		return fail(p, "Invalid characters in atom");
	return tok_add(p, c);
}

static enum step_result
tag_byte(struct imap_parser *p, unsigned char c)
{
	if (is_tag_char(c))
		return tok_add(p, c);
	if (c == '\r')
		return cr(p);
	if (p->tok.len == 0) {
		if (c == '\n')
			return fail(p, "Empty command line");
		if (c == ' ')
			return fail(p, "Missing tag");
		return fail(p, "Invalid characters in tag");
	}
	if (c == ' ') {
		p->tag = tok_take(p);
		p->state = PS_NAME_START;
		return STEP_OK;
	}
	if (c == '\n') {
		p->tag = tok_take(p);
		return fail(p, "Missing command name");
	}
	if (c == '(' || c == ')' || c == '{' || c == '"') {
		/* "A1(": the tag itself is fine, so the reply can use it. */
		p->tag = tok_take(p);
		return fail(p, "Missing space after tag");
	}
	return fail(p, "Invalid characters in tag");
}

/* One byte of command text (anything but literal data). */
static enum step_result
parse_byte(struct imap_parser *p, unsigned char c)
{
	if (c != '\r' && c != '\n') {
		p->line_len++;
		if (p->line_len > p->limits.max_line)
			return fail_toobig(p, "Line too long");
		if (p->line_len > p->limits.max_total - p->literal_mem)
			return fail_toobig(p, "Command too large");
	}
again:
	switch (p->state) {
	case PS_TAG:
		return tag_byte(p, c);
	case PS_NAME_START:
		if (c == ' ')
			return STEP_OK;
		if (c == '\r')
			return cr(p);
		if (c == '\n')
			return fail(p, "Missing command name");
		if (!is_atom_char(c))
			return fail(p, "Invalid characters in command name");
		p->state = PS_NAME;
		return tok_add(p, c);
	case PS_NAME:
		if (is_atom_char(c))
			return tok_add(p, c);
		if (c == ' ') {
			save_name(p);
			p->state = PS_ARG_START;
			return STEP_OK;
		}
		if (c == '\r')
			return cr(p);
		if (c == '\n') {
			save_name(p);
			return line_end(p);
		}
		return fail(p, "Invalid characters in command name");
	case PS_AFTER_ARG:
		if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
			p->state = PS_ARG_START;
			goto again;
		}
		return fail(p, "Missing space between arguments");
	case PS_ARG_START:
		return arg_start(p, c);
	case PS_ATOM:
		return atom_byte(p, c);
	case PS_QUOTED:
		if (c == '"') {
			save_string(p);
			p->state = PS_AFTER_ARG;
			return STEP_OK;
		}
		if (c == '\\') {
			p->state = PS_QUOTED_ESC;
			return STEP_OK;
		}
		if (c == '\r' || c == '\n')
			return fail(p, "Unterminated quoted string");
		if (c == '\0')
			return fail(p, "NUL byte in quoted string");
		/* RFC 9051 TEXT-CHAR and UTF-8: other bytes are taken as is. */
		return tok_add(p, c);
	case PS_QUOTED_ESC:
		if (c == '"' || c == '\\') {
			p->state = PS_QUOTED;
			return tok_add(p, c);
		}
		if (c == '\r' || c == '\n')
			return fail(p, "Unterminated quoted string");
		return fail(p, "Invalid escape in quoted string");
	case PS_TILDE:
		if (c == '{') {
			p->lit8 = true;
			p->state = PS_LIT_OPEN;
			return STEP_OK;
		}
		/* Not literal8: an atom that starts with '~'. */
		(void)tok_add(p, '~');
		p->state = PS_ATOM;
		p->bracket = 0;
		goto again;
	case PS_LIT_OPEN:
		if (!is_digit(c))
			return fail(p, "Invalid literal size");
		p->lit_size = (uint64_t)(c - '0');
		p->lit_overflow = false;
		p->lit_nonsync = false;
		p->state = PS_LIT_DIGITS;
		return STEP_OK;
	case PS_LIT_DIGITS:
		if (is_digit(c)) {
			unsigned d = (unsigned)(c - '0');

			/* Check before multiplying; keep reading digits so
			 * that a following '+' still tells whether the
			 * literal is synchronizing. */
			if (p->lit_overflow ||
			    p->lit_size > (LITERAL_SIZE_MAX - d) / 10)
				p->lit_overflow = true;
			else
				p->lit_size = p->lit_size * 10 + d;
			return STEP_OK;
		}
		if (c == '+') {
			p->lit_nonsync = true;
			p->state = PS_LIT_PLUS;
			return STEP_OK;
		}
		if (c == '}') {
			p->state = PS_LIT_CLOSE;
			return STEP_OK;
		}
		return fail(p, "Invalid literal size");
	case PS_LIT_PLUS:
		if (c == '}') {
			p->state = PS_LIT_CLOSE;
			return STEP_OK;
		}
		return fail(p, "Invalid literal size");
	case PS_LIT_CLOSE:
		if (c == '\r')
			return cr(p);
		if (c == '\n')
			return literal_announced(p);
		return fail(p, "Missing CRLF after literal size");
	case PS_CR:
		if (c == '\n') {
			p->state = p->cr_state;
			goto again;
		}
		return fail(p, "CR not followed by LF");
	case PS_LIT_DATA:
	case PS_LINE:
	case PS_DONE:
	case PS_ERROR:
	case PS_SKIP:
	case PS_FATAL:
		break;
	}
	ASSERT(!"unreachable parser state");
	return STEP_ERROR;
}

static enum skip_lit
skip_lit_step(enum skip_lit s, unsigned char c)
{
	if (c == '{')
		return SKIP_LIT_OPEN;
	switch (s) {
	case SKIP_LIT_OPEN:
	case SKIP_LIT_DIGITS:
		if (is_digit(c))
			return SKIP_LIT_DIGITS;
		if (c == '+' && s == SKIP_LIT_DIGITS)
			return SKIP_LIT_PLUS;
		break;
	case SKIP_LIT_PLUS:
		if (c == '}')
			return SKIP_LIT_CLOSE;
		break;
	case SKIP_LIT_CLOSE:
		if (c == '\r')
			return SKIP_LIT_CLOSE_CR;
		break;
	case SKIP_LIT_NONE:
	case SKIP_LIT_CLOSE_CR:
		break;
	}
	return SKIP_LIT_NONE;
}

/* Where the "{n+}" watcher stands given the parser's state. */
static enum skip_lit
skip_lit_from_state(const struct imap_parser *p, enum parser_state st,
    enum parser_state cr_st)
{
	switch (st) {
	case PS_LIT_OPEN:
		return SKIP_LIT_OPEN;
	case PS_LIT_DIGITS:
		return SKIP_LIT_DIGITS;
	case PS_LIT_PLUS:
		return SKIP_LIT_PLUS;
	case PS_LIT_CLOSE:
		return p->lit_nonsync ? SKIP_LIT_CLOSE : SKIP_LIT_NONE;
	case PS_CR:
		return cr_st == PS_LIT_CLOSE && p->lit_nonsync ?
		    SKIP_LIT_CLOSE_CR : SKIP_LIT_NONE;
	default:
		return SKIP_LIT_NONE;
	}
}

/*
 * Discard up to and including LF.  Returns -1 (fatal) if the discarded
 * command line announced a non-synchronizing literal at its end.
 */
static int
skip_line(struct imap_parser *p, const unsigned char *d, size_t len,
    size_t *pos)
{
	size_t i = *pos;
	const unsigned char *lf;

	if (!p->skip_check_lit) {
		lf = memchr(d + i, '\n', len - i);
		if (lf == NULL) {
			*pos = len;
			return 0;
		}
		*pos = (size_t)(lf - d) + 1;
		p->state = PS_TAG;
		return 0;
	}
	for (; i < len; i++) {
		if (d[i] == '\n') {
			*pos = i + 1;
			if (p->skip_lit == SKIP_LIT_CLOSE ||
			    p->skip_lit == SKIP_LIT_CLOSE_CR) {
				p->state = PS_FATAL;
				p->error = "Non-synchronizing literal in a "
				    "rejected command";
				return -1;
			}
			p->state = PS_TAG;
			return 0;
		}
		p->skip_lit = skip_lit_step(p->skip_lit, d[i]);
	}
	*pos = len;
	return 0;
}

static void
command_clear(struct imap_parser *p)
{
	if (p->streaming) {
		p->streaming = false;
		if (p->handler.abort != NULL)
			p->handler.abort(p->handler.ctx);
	}
	/* Free rather than reset: an idle connection owns no parser memory
	 * (STYLE section 7.8). */
	arena_free(&p->arena);
	buf_free(&p->tok);
	p->tag = NULL;
	p->name = NULL;
	p->levels = NULL;
	p->levels_cap = 0;
	p->depth = 0;
	p->nargs = 0;
	p->bracket = 0;
	p->line_len = 0;
	p->literal_mem = 0;
	p->lit_size = 0;
	p->lit_left = 0;
	p->lit_data = NULL;
	p->lit8 = false;
	p->lit_nonsync = false;
	p->lit_overflow = false;
	p->line_cr = false;
}

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xmalloc(sizeof(*p));

	p->limits = *limits;
	arena_init(&p->arena);
	buf_init(&p->tok, 0);
	p->state = PS_TAG;
	return p;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	command_clear(p);
	free(p->error_dyn);
	free(p);
	*pp = NULL;
}

void
imap_parser_set_limits(struct imap_parser *p,
    const struct imap_parser_limits *limits)
{
	bool idle = (p->state == PS_TAG && p->line_len == 0 &&
	    p->tok.len == 0) || p->state == PS_SKIP || p->state == PS_FATAL;

	if (idle) {
		p->limits = *limits;
		p->has_next_limits = false;
	} else {
		p->next_limits = *limits;
		p->has_next_limits = true;
	}
}

void
imap_parser_set_literal_handler(struct imap_parser *p,
    const struct imap_literal_handler *handler)
{
	if (handler == NULL)
		memset(&p->handler, 0, sizeof(p->handler));
	else
		p->handler = *handler;
}

void
imap_parser_next(struct imap_parser *p)
{
	command_clear(p);
	if (p->has_next_limits) {
		p->limits = p->next_limits;
		p->has_next_limits = false;
	}
	if (p->state == PS_FATAL)
		return;
	p->state = p->state == PS_ERROR && p->skip_pending ? PS_SKIP : PS_TAG;
	p->skip_pending = false;
	p->toobig = false;
	p->error = NULL;
	free(p->error_dyn);
	p->error_dyn = NULL;
}

/* Common entry of both feed functions.  Returns false if fatal. */
static bool
feed_begin(struct imap_parser *p)
{
	if (p->state == PS_FATAL)
		return false;
	if (p->state == PS_DONE || p->state == PS_ERROR)
		imap_parser_next(p);
	return true;
}

static void
record_error(struct imap_parser *p, enum parser_state prev,
    enum parser_state prev_cr, unsigned char c, bool command)
{
	if (p->fatal_now) {
		/* A rejected {n+}: its data is already on the way. */
		p->fatal_now = false;
		p->state = PS_FATAL;
		return;
	}
	p->state = PS_ERROR;
	/* An error on the LF itself leaves nothing of the line to skip. */
	p->skip_pending = c != '\n';
	p->skip_check_lit = command;
	p->skip_lit = command ?
	    skip_lit_step(skip_lit_from_state(p, prev, prev_cr), c) :
	    SKIP_LIT_NONE;
}

enum imap_parse_result
imap_parser_feed(struct imap_parser *p, const char *data, size_t len,
    size_t *consumed_r)
{
	const unsigned char *d = (const unsigned char *)data;
	enum parser_state prev, prev_cr;
	enum step_result ret;
	size_t i = 0;

	*consumed_r = 0;
	if (!feed_begin(p))
		return IMAP_PARSE_ERROR;
	ASSERT(p->state != PS_LINE);
	while (i < len) {
		if (p->state == PS_SKIP) {
			if (skip_line(p, d, len, &i) < 0) {
				*consumed_r = i;
				return IMAP_PARSE_ERROR;
			}
			continue;
		}
		if (p->state == PS_LIT_DATA) {
			literal_data(p, d, len, &i);
			continue;
		}
		prev = p->state;
		prev_cr = p->cr_state;
		ret = parse_byte(p, d[i]);
		i++;
		if (ret == STEP_OK)
			continue;
		*consumed_r = i;
		if (ret == STEP_DONE)
			return IMAP_PARSE_DONE;
		if (ret == STEP_CONTINUE)
			return IMAP_PARSE_CONTINUE;
		record_error(p, prev, prev_cr, d[i - 1], true);
		return IMAP_PARSE_ERROR;
	}
	*consumed_r = i;
	return IMAP_PARSE_MORE;
}

/* One byte of a raw line; a CR is held back until we know if LF follows. */
static enum step_result
line_byte(struct imap_parser *p, unsigned char c)
{
	if (c == '\n') {
		p->line_cr = false;
		p->state = PS_DONE;
		return STEP_DONE;
	}
	if (c == '\0')
		return fail(p, "NUL byte in line");
	if (p->line_cr) {
		p->line_cr = false;
		if (++p->line_len > p->limits.max_line)
			return fail_toobig(p, "Line too long");
		(void)tok_add(p, '\r');
	}
	if (c == '\r') {
		p->line_cr = true;
		return STEP_OK;
	}
	if (++p->line_len > p->limits.max_line)
		return fail_toobig(p, "Line too long");
	return tok_add(p, c);
}

enum imap_parse_result
imap_parser_feed_line(struct imap_parser *p, const char *data, size_t len,
    size_t *consumed_r, const char **line_r)
{
	const unsigned char *d = (const unsigned char *)data;
	enum step_result ret;
	size_t i = 0;

	*consumed_r = 0;
	*line_r = NULL;
	if (!feed_begin(p))
		return IMAP_PARSE_ERROR;
	while (i < len) {
		if (p->state == PS_SKIP) {
			if (skip_line(p, d, len, &i) < 0) {
				*consumed_r = i;
				return IMAP_PARSE_ERROR;
			}
			continue;
		}
		if (p->state == PS_TAG) {
			/* Raw lines are read only between commands. */
			ASSERT(p->line_len == 0 && p->tok.len == 0);
			p->state = PS_LINE;
		}
		ASSERT(p->state == PS_LINE);
		ret = line_byte(p, d[i]);
		i++;
		if (ret == STEP_OK)
			continue;
		*consumed_r = i;
		if (ret == STEP_DONE) {
			*line_r = tok_str(p);
			return IMAP_PARSE_DONE;
		}
		record_error(p, PS_LINE, PS_LINE, d[i - 1], false);
		return IMAP_PARSE_ERROR;
	}
	*consumed_r = i;
	return IMAP_PARSE_MORE;
}

const char *
imap_parser_tag(const struct imap_parser *p)
{
	return p->tag;
}

const char *
imap_parser_command_name(const struct imap_parser *p)
{
	return p->name;
}

const struct imap_arg *
imap_parser_args(const struct imap_parser *p, unsigned *count_r)
{
	if (p->state != PS_DONE || p->name == NULL) {
		*count_r = 0;
		return NULL;
	}
	if (p->levels == NULL || p->levels[0].items == NULL) {
		*count_r = 0;
		return empty_list;
	}
	*count_r = p->levels[0].count;
	return p->levels[0].items;
}

unsigned
imap_parser_arg_count(const struct imap_parser *p)
{
	return p->levels != NULL ? p->levels[0].count : 0;
}

const char *
imap_parser_error(const struct imap_parser *p)
{
	return p->error;
}

bool
imap_parser_error_fatal(const struct imap_parser *p)
{
	return p->state == PS_FATAL;
}

bool
imap_parser_error_toobig(const struct imap_parser *p)
{
	return p->toobig;
}

size_t
imap_parser_memory(const struct imap_parser *p)
{
	return p->arena.used + p->tok.cap;
}

bool
imap_arg_is_nil(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_ATOM && strcasecmp(arg->v.str, "NIL") == 0;
}

bool
imap_arg_get_atom(const struct imap_arg *arg, const char **str_r)
{
	if (arg->type != IMAP_ARG_ATOM)
		return false;
	*str_r = arg->v.str;
	return true;
}

bool
imap_arg_get_string(const struct imap_arg *arg, const char **str_r)
{
	if (arg->type != IMAP_ARG_STRING && arg->type != IMAP_ARG_LITERAL)
		return false;
	*str_r = arg->v.str;
	return true;
}

bool
imap_arg_get_astring(const struct imap_arg *arg, const char **str_r)
{
	if (arg->type == IMAP_ARG_ATOM)
		return imap_arg_get_atom(arg, str_r);
	return imap_arg_get_string(arg, str_r);
}

bool
imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r)
{
	if (imap_arg_is_nil(arg)) {
		*str_r = NULL;
		return true;
	}
	return imap_arg_get_string(arg, str_r);
}

bool
imap_arg_get_list(const struct imap_arg *arg,
    const struct imap_arg **items_r, unsigned *count_r)
{
	if (arg->type != IMAP_ARG_LIST)
		return false;
	*items_r = arg->v.list;
	*count_r = (unsigned)arg->len;
	return true;
}

bool
imap_arg_atom_equals(const struct imap_arg *arg, const char *s)
{
	return arg->type == IMAP_ARG_ATOM && strcasecmp(arg->v.str, s) == 0;
}
