#include "mime/quote.h"
#include "core/buf.h"

#include <stdbool.h>
#include <string.h>

static void
literal(struct buf *out, const char *s, size_t len)
{
	buf_printf(out, "{%zu}\r\n", len);
	buf_append(out, s, len);
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
	buf_append(out, "\"", 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_append(out, "\\", 1);
		buf_append(out, s + i, 1);
	}
	buf_append(out, "\"", 1);
}

void
mime_quote_nstring(struct buf *out, const char *s, size_t len)
{
	if (s == NULL)
		buf_append_str(out, "NIL");
	else
		mime_quote_string(out, s, len);
}

void
mime_quote_human(struct buf *out, const char *s, size_t len)
{
	struct buf clean;
	bool changed = false, special = false, space = false;
	size_t i;

	buf_init(&clean, 0);
	buf_append(&clean, "", 0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (c != ' ' || space || clean.len == 0)
				changed = true;
			space = true;
			continue;
		}
		if (space && clean.len > 0)
			buf_append(&clean, " ", 1);
		space = false;
		if (c == '"' || c == '\\' || c >= 0x80 || c == '\0')
			special = true;
		buf_append(&clean, s + i, 1);
	}
	if (space)
		changed = true;
	if (clean.len == 0)
		buf_append_str(out, "\"\"");
	else if (changed || special)
		literal(out, clean.data, clean.len);
	else
		mime_quote_string(out, clean.data, clean.len);
	buf_free(&clean);
}

void
mime_quote_nstring_nolf(struct buf *out, const char *s, size_t len)
{
	struct buf clean;
	bool eight = false;
	size_t i;

	if (s == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_init(&clean, 0);
	buf_append(&clean, "", 0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n') {
			/* A run of line end bytes goes; unless a fold's
			   blank follows, one space stands for it. */
			while (i + 1 < len && (s[i + 1] == '\r' ||
					       s[i + 1] == '\n'))
				i++;
			if (i + 1 < len && s[i + 1] != ' ' && s[i + 1] != '\t')
				buf_append(&clean, " ", 1);
			continue;
		}
		if (c >= 0x80 || c == '\0')
			eight = true;
		buf_append(&clean, &c, 1);
	}
	if (eight) {
		literal(out, clean.data, clean.len);
	} else {
		buf_append(out, "\"", 1);
		for (i = 0; i < clean.len; i++) {
			if (clean.data[i] == '"' || clean.data[i] == '\\')
				buf_append(out, "\\", 1);
			buf_append(out, clean.data + i, 1);
		}
		buf_append(out, "\"", 1);
	}
	buf_free(&clean);
}
