/*
 * Internals shared by the files of src/mime/: an RFC 5322 / RFC 2045
 * lexer over an unfolded header value, and parameter list parsing.
 */
#ifndef HERALD_MIME_PRIVATE_H
#define HERALD_MIME_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct buf;
struct mime_param;

struct rfc822_lexer {
	const unsigned char *p, *end;
	struct buf *last_comment;	/* if set, gets the last comment */
};

void rfc822_lexer_init(struct rfc822_lexer *lx, const char *s, size_t len);
/* Skip whitespace, line ends and (nested) comments.  Returns false at the
   end of the input. */
bool rfc822_skip_cfws(struct rfc822_lexer *lx);
/* Append an RFC 5322 atom (atext, 8-bit bytes allowed); false if none. */
bool rfc822_atom(struct rfc822_lexer *lx, struct buf *out);
/* Append an obs-phrase word: atext and '.' bytes (Dovecot keeps "J.R."
   as one word); false if none. */
bool rfc822_phrase_word(struct rfc822_lexer *lx, struct buf *out);
/* Append a dot-atom: atoms and dots, CFWS between them skipped. */
bool rfc822_dot_atom(struct rfc822_lexer *lx, struct buf *out);
/* Append a MIME token (RFC 2045 section 5.1); false if none. */
bool rfc822_token(struct rfc822_lexer *lx, struct buf *out);
/* At '"': append the unescaped content, line ends dropped.  An
   unterminated string returns false with the lexer at the end. */
bool rfc822_quoted(struct rfc822_lexer *lx, struct buf *out);
/* At '[': append the domain literal including the brackets. */
bool rfc822_domain_literal(struct rfc822_lexer *lx, struct buf *out);

/*
 * Parse "; name=value" pairs after a Content-Type or Content-Disposition
 * value and merge RFC 2231 continuations the way Dovecot does: plain
 * parameters keep their order, then the starred ones follow sorted by
 * name; a complete "name*0*=..; name*1=.." set becomes one "name*" (or
 * "name") parameter holding the still-encoded value; an incomplete set is
 * kept as separate "name*N" parameters.  Broken pairs are skipped.
 */
void mime_params_parse(struct arena *arena, struct rfc822_lexer *lx,
		       struct mime_param **params_r, unsigned int *count_r);

/* ASCII case-insensitive comparison of n bytes with a NUL-terminated
   string of the same length. */
bool mime_memcaseeq(const char *p, size_t n, const char *s);

#endif
