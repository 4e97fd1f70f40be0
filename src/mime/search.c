#include "mime/search.h"
#include "mime/decode.h"
#include "mime/message.h"
#include "mime/address.h"
#include "core/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <utf8proc.h>

void
mime_search_fold(struct buf *out, const char *s, size_t len)
{
	struct buf clean;
	utf8proc_uint8_t *folded = NULL;
	utf8proc_ssize_t n;
	size_t i;

	/* utf8proc wants valid UTF-8; NUL would end the text for it. */
	buf_init(&clean, 0);
	buf_append(&clean, "", 0);
	mime_decode_charset_utf8(&clean, NULL, s, len);
	for (i = 0; i < clean.len; i++) {
		if (clean.data[i] == '\0')
			clean.data[i] = ' ';
	}
	n = utf8proc_map((const utf8proc_uint8_t *)clean.data,
			 (utf8proc_ssize_t)clean.len, &folded,
			 UTF8PROC_STABLE | UTF8PROC_COMPOSE |
			 UTF8PROC_CASEFOLD);
	if (n >= 0)
		buf_append(out, folded, (size_t)n);
	else
		buf_append(out, clean.data, clean.len);
	free(folded);
	buf_free(&clean);
}

void
mime_search_header(struct buf *out, const struct mime_message *msg,
		   const struct mime_header_field *field)
{
	struct buf dec;
	const char *v;
	size_t vlen;

	buf_init(&dec, 0);
	buf_append(&dec, "", 0);
	v = mime_header_value(msg, field, &vlen);
	mime_decode_header_utf8(&dec, v, vlen);
	mime_search_fold(out, dec.data, dec.len);
	buf_free(&dec);
}

static void
headers_text(struct buf *out, const struct mime_message *msg,
	     const struct mime_part *part)
{
	unsigned int i;

	for (i = 0; i < part->nfields; i++) {
		const struct mime_header_field *f = &part->fields[i];

		if (!f->has_colon)
			continue;
		mime_search_fold(out, msg->data + f->offset, f->name_len);
		if (!buf_append(out, ": ", 2))
			return;
		mime_search_header(out, msg, f);
		if (!buf_append(out, "\n", 1))
			return;
	}
}

static const char *
param(const struct mime_part *part, const char *name)
{
	unsigned int i;

	for (i = 0; i < part->nparams; i++) {
		if (strcasecmp(part->params[i].name, name) == 0)
			return part->params[i].value;
	}
	return NULL;
}

static void
part_text(struct buf *out, const struct mime_message *msg,
	  const struct mime_part *part)
{
	struct buf raw, utf8;

	buf_init(&raw, out->max);
	buf_init(&utf8, out->max);
	buf_append(&raw, "", 0);
	buf_append(&utf8, "", 0);
	mime_decode_transfer(&raw, part->encoding,
			     msg->data + part->body_offset, part->body_len);
	mime_decode_charset_utf8(&utf8, param(part, "charset"), raw.data,
				 raw.len);
	mime_search_fold(out, utf8.data, utf8.len);
	buf_append(out, "\n", 1);
	buf_free(&raw);
	buf_free(&utf8);
}

static bool
is_searchable(const struct mime_part *part)
{
	if ((part->flags & MIME_PART_F_TEXT) != 0)
		return true;
	/* message/delivery-status and friends are text in disguise. */
	return part->type != NULL && strcasecmp(part->type, "message") == 0 &&
		(part->flags & MIME_PART_F_MESSAGE) == 0;
}

size_t
mime_search_text_cap(size_t len)
{
	size_t cap = 64 * 1024;

	if (len < (SIZE_MAX - cap) / 4)
		cap += len * 4;
	else
		cap = SIZE_MAX;
	return cap;
}

void
mime_search_body(struct buf *out, const struct mime_message *msg)
{
	const struct mime_part *p;

	for (p = msg->root; p != NULL; p = mime_part_next(p)) {
		if (out->max != 0 && out->len >= out->max)
			return;
		if (p->children == NULL && is_searchable(p))
			part_text(out, msg, p);
	}
}

void
mime_search_text(struct buf *out, const struct mime_message *msg,
		 unsigned int flags)
{
	const struct mime_part *p;

	if ((flags & MIME_SEARCH_HEADERS) != 0)
		headers_text(out, msg, msg->root);
	if ((flags & MIME_SEARCH_BODY) == 0)
		return;
	for (p = msg->root; p != NULL; p = mime_part_next(p)) {
		if (out->max != 0 && out->len >= out->max)
			return;
		if (p != msg->root && p->parent != NULL &&
		    (p->parent->flags & MIME_PART_F_MESSAGE) != 0)
			headers_text(out, msg, p);
		if (p->children == NULL && is_searchable(p))
			part_text(out, msg, p);
	}
}

static bool
atext_only(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL)
			continue;
		return false;
	}
	return true;
}

/* An address list as Dovecot rewrites it for searching:
 * "Name" <mailbox@domain>, group: <a@b>, <c@d>; */
static void
write_addresses(struct buf *out, const struct mime_address *a)
{
	bool first = true, group_start = false;

	for (; a != NULL; a = a->next) {
		if (a->mailbox != NULL && a->domain == NULL) {
			if (!first)
				buf_append_str(out, ", ");
			buf_append_str(out, a->mailbox);
			buf_append_str(out, ":");
			group_start = true;
		} else if (a->mailbox == NULL && a->domain == NULL) {
			buf_append_str(out, ";");
			group_start = false;
		} else {
			if (group_start)
				buf_append_str(out, " ");
			else if (!first)
				buf_append_str(out, ", ");
			group_start = false;
			if (a->name != NULL && a->name[0] != '\0') {
				if (atext_only(a->name)) {
					buf_append_str(out, a->name);
				} else {
					buf_append(out, "\"", 1);
					for (const char *p = a->name;
					    *p != '\0'; p++) {
						if (*p == '"' || *p == '\\')
							buf_append(out, "\\",
							    1);
						buf_append(out, p, 1);
					}
					buf_append(out, "\"", 1);
				}
				buf_append_str(out, " ");
			}
			buf_append_str(out, "<");
			if (a->route != NULL) {
				buf_append_str(out, a->route);
				buf_append_str(out, ":");
			}
			buf_append_str(out, a->mailbox);
			buf_append_str(out, "@");
			buf_append_str(out, a->domain);
			buf_append_str(out, ">");
		}
		first = false;
	}
}

/* Replace runs of white space with one space (Dovecot compresses the
 * subject so that folding does not hide a match). */
static void
compress_lwsp(struct buf *b)
{
	size_t i, j = 0;
	bool space = false;

	for (i = 0; i < b->len; i++) {
		char c = b->data[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (space)
				continue;
			space = true;
			c = ' ';
		} else {
			space = false;
		}
		b->data[j++] = c;
	}
	b->len = j;
	if (b->data != NULL)
		b->data[j] = '\0';
}

void
mime_search_header_values(struct buf *out, const struct mime_message *msg,
    struct arena *arena, enum mime_search_values kind, const char *name)
{
	const struct mime_part *root = msg->root;
	struct buf one;

	buf_init(&one, 0);
	for (unsigned i = 0; i < root->nfields; i++) {
		const struct mime_header_field *f = &root->fields[i];

		if (!f->has_colon || !mime_header_is(msg, f, name))
			continue;
		buf_reset(&one);
		if (kind == MIME_SEARCH_VALUES_ADDRESS) {
			struct buf raw, dec;
			size_t vlen;
			const char *v = mime_header_value(msg, f, &vlen);
			struct mime_address *list =
			    mime_address_parse(arena, v, vlen, NULL);

			buf_init(&raw, 0);
			buf_init(&dec, 0);
			write_addresses(&raw, list);
			buf_append(&dec, "", 0);
			mime_decode_header_utf8(&dec, raw.data != NULL ?
			    raw.data : "", raw.len);
			mime_search_fold(&one, dec.data, dec.len);
			buf_free(&raw);
			buf_free(&dec);
		} else {
			mime_search_header(&one, msg, f);
			if (kind == MIME_SEARCH_VALUES_SUBJECT)
				compress_lwsp(&one);
		}
		buf_append(out, one.data != NULL ? one.data : "", one.len);
		buf_append(out, "", 1);
	}
	buf_free(&one);
}
