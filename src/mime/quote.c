#include "mime/quote.h"
#include "core/buf.h"
#include "core/xmalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Strings up to this size are cleaned on the stack: an envelope quotes
 * a dozen short ones, and FETCH ENVELOPE writes a thousand at a time. */
#define QUOTE_STACK 512

static void
literal(struct buf *out, const char *s, size_t len)
{
	buf_append(out, "{", 1);
	buf_append_u64(out, len);
	buf_append(out, "}\r\n", 3);
	buf_append(out, s, len);
}

/* "s" with '\' before '"' and '\', appended a run at a time. */
static void
quoted(struct buf *out, const char *s, size_t len)
{
	size_t start = 0;

	buf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			buf_append(out, s + start, i - start);
			buf_append(out, "\\", 1);
			start = i;
		}
	}
	buf_append(out, s + start, len - start);
	buf_append(out, "\"", 1);
}

void
mime_quote_string(struct buf *out, const char *s, size_t len)
{
	size_t i, specials = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80) {
			literal(out, s, len);
			return;
		}
		if (c == '"' || c == '\\')
			specials++;
	}
	/* Past four escapes a literal is as short (Dovecot's rule). */
	if (specials > 4) {
		literal(out, s, len);
		return;
	}
	quoted(out, s, len);
}

void
mime_quote_nstring(struct buf *out, const char *s, size_t len)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		mime_quote_string(out, s, len);
}

/* Room for a cleaned copy of len bytes (never longer than the input). */
static char *
scratch(char *stack, size_t len)
{
	return len <= QUOTE_STACK ? stack : xmalloc(len);
}

void
mime_quote_human(struct buf *out, const char *s, size_t len)
{
	char stack[QUOTE_STACK], *clean = scratch(stack, len);
	bool changed = false, special = false, space = false;
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (c != ' ' || space || n == 0)
				changed = true;
			space = true;
			continue;
		}
		if (space && n > 0)
			clean[n++] = ' ';
		space = false;
		if (c == '"' || c == '\\' || c >= 0x80 || c == '\0')
			special = true;
		clean[n++] = (char)c;
	}
	if (space)
		changed = true;
	if (n == 0)
		buf_append_str(out, "\"\"");
	else if (changed || special)
		literal(out, clean, n);
	else
		mime_quote_string(out, clean, n);
	if (clean != stack)
		free(clean);
}

void
mime_quote_nstring_nolf(struct buf *out, const char *s, size_t len)
{
	char stack[QUOTE_STACK], *clean;
	bool eight = false;
	size_t i, n = 0;

	if (s == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	clean = scratch(stack, len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n') {
			/* A run of line end bytes goes; unless a fold's
			   blank follows, one space stands for it. */
			while (i + 1 < len && (s[i + 1] == '\r' ||
					       s[i + 1] == '\n'))
				i++;
			if (i + 1 < len && s[i + 1] != ' ' && s[i + 1] != '\t')
				clean[n++] = ' ';
			continue;
		}
		if (c >= 0x80 || c == '\0')
			eight = true;
		clean[n++] = (char)c;
	}
	if (eight)
		literal(out, clean, n);
	else
		quoted(out, clean, n);
	if (clean != stack)
		free(clean);
}
