#include "mime/section.h"
#include "mime/message.h"
#include "mime/mime_private.h"
#include "core/arena.h"
#include "core/buf.h"

#include <string.h>
#include <strings.h>

static bool
keyword(const char **p, const char *end, const char *kw)
{
	size_t n = strlen(kw);

	if ((size_t)(end - *p) < n || strncasecmp(*p, kw, n) != 0)
		return false;
	*p += n;
	return true;
}

static int
parse_fields(struct arena *arena, const char *p, const char *end,
	     struct mime_section *sec, const char **error_r)
{
	const char **fields = NULL;
	unsigned int cap = 0;

	while (p < end && *p == ' ')
		p++;
	if (p == end || *p != '(') {
		*error_r = "Missing header field list";
		return -1;
	}
	p++;
	for (;;) {
		const char *start;
		char *name;

		while (p < end && *p == ' ')
			p++;
		if (p == end) {
			*error_r = "Unterminated header field list";
			return -1;
		}
		if (*p == ')') {
			p++;
			break;
		}
		if (*p == '"') {
			char *o;

			start = ++p;
			o = name = arena_alloc(arena, (size_t)(end - p) + 1);
			while (p < end && *p != '"') {
				if (*p == '\\' && p + 1 < end)
					p++;
				*o++ = *p++;
			}
			if (p == end) {
				*error_r = "Unterminated quoted field name";
				return -1;
			}
			p++;
			*o = '\0';
		} else {
			start = p;
			while (p < end && *p != ' ' && *p != ')' &&
			       *p != '(' && *p != '"' &&
			       (unsigned char)*p > ' ')
				p++;
			if (p == start) {
				*error_r = "Invalid header field name";
				return -1;
			}
			name = arena_strndup(arena, start,
					     (size_t)(p - start));
		}
		if (sec->nfields == cap) {
			const char **nf;

			cap = cap == 0 ? 8 : cap * 2;
			nf = arena_alloc(arena, cap * sizeof(*nf));
			if (sec->nfields > 0)
				memcpy(nf, fields,
				       sec->nfields * sizeof(*nf));
			fields = nf;
		}
		fields[sec->nfields++] = name;
	}
	sec->fields = fields;
	if (sec->nfields == 0) {
		*error_r = "Empty header field list";
		return -1;
	}
	while (p < end && *p == ' ')
		p++;
	if (p != end) {
		*error_r = "Garbage after header field list";
		return -1;
	}
	return 0;
}

int
mime_section_parse(struct arena *arena, const char *s, size_t len,
		   struct mime_section *sec, const char **error_r)
{
	const char *p = s, *end = s + len;

	memset(sec, 0, sizeof(*sec));
	while (p < end && *p >= '0' && *p <= '9') {
		unsigned long n = 0;

		if (*p == '0') {
			*error_r = "Invalid part number";
			return -1;
		}
		while (p < end && *p >= '0' && *p <= '9') {
			n = n * 10 + (unsigned long)(*p - '0');
			if (n > 1000000) {
				*error_r = "Part number too large";
				return -1;
			}
			p++;
		}
		if (sec->nparts == MIME_SECTION_MAX_PARTS) {
			*error_r = "Too many part numbers";
			return -1;
		}
		sec->parts[sec->nparts++] = (unsigned int)n;
		if (p == end)
			return 0;
		if (*p != '.') {
			*error_r = "Invalid section";
			return -1;
		}
		p++;
		if (p == end) {
			*error_r = "Invalid section";
			return -1;
		}
	}
	if (p == end)
		return 0;
	if (keyword(&p, end, "HEADER.FIELDS.NOT")) {
		sec->text = MIME_SECTION_HEADER_FIELDS_NOT;
		return parse_fields(arena, p, end, sec, error_r);
	}
	if (keyword(&p, end, "HEADER.FIELDS")) {
		sec->text = MIME_SECTION_HEADER_FIELDS;
		return parse_fields(arena, p, end, sec, error_r);
	}
	if (keyword(&p, end, "HEADER"))
		sec->text = MIME_SECTION_HEADER;
	else if (keyword(&p, end, "TEXT"))
		sec->text = MIME_SECTION_TEXT;
	else if (keyword(&p, end, "MIME") && sec->nparts > 0)
		sec->text = MIME_SECTION_MIME;
	else {
		*error_r = "Invalid section";
		return -1;
	}
	if (p != end) {
		*error_r = "Invalid section";
		return -1;
	}
	return 0;
}

static bool
field_listed(const struct mime_message *msg,
	     const struct mime_header_field *f, const struct mime_section *sec)
{
	unsigned int i;

	for (i = 0; i < sec->nfields; i++) {
		if (mime_memcaseeq(msg->data + f->offset, f->name_len,
				   sec->fields[i]))
			return true;
	}
	return false;
}

static void
header_filter(const struct mime_message *msg, const struct mime_part *part,
	      const struct mime_section *sec, struct mime_section_data *data)
{
	bool want = sec->text == MIME_SECTION_HEADER_FIELDS;
	struct buf b;
	unsigned int i;
	size_t fend = part->hdr_offset;

	buf_init(&b, 0);
	buf_append(&b, "", 0);
	for (i = 0; i < part->nfields; i++) {
		const struct mime_header_field *f = &part->fields[i];

		fend = f->offset + f->len;
		if (field_listed(msg, f, sec) != want)
			continue;
		buf_append(&b, msg->data + f->offset, f->len);
		if (want && !f->has_eol)
			buf_append(&b, "\r\n", 2);
	}
	if (want) {
		/* HEADER.FIELDS always ends with the empty line. */
		buf_append(&b, "\r\n", 2);
	} else if ((part->flags & MIME_PART_F_HAS_EOH) != 0) {
		/* HEADER.FIELDS.NOT copies the empty line if it was there:
		   the bytes between the last field and the header end. */
		size_t hend = part->hdr_offset + part->hdr_len;

		if (fend < hend)
			buf_append(&b, msg->data + fend, hend - fend);
	}
	data->built = arena_memdup(msg->arena, b.data, b.len + 1);
	data->len = b.len;
	data->offset = 0;
	buf_free(&b);
}

bool
mime_section_get(const struct mime_message *msg,
		 const struct mime_section *sec,
		 struct mime_section_data *data)
{
	const struct mime_part *part = msg->root, *m;
	unsigned int i, j;

	memset(data, 0, sizeof(*data));
	for (i = 0; i < sec->nparts; i++) {
		unsigned int n = sec->parts[i];
		const struct mime_part *inner = mime_part_message(part);

		/* Numbers below a message/rfc822 part address the parts of
		   the embedded message.  The top-level message is already
		   the message: its "1" is its own body. */
		if (i > 0 && inner != NULL)
			part = inner;
		else if (i > 0 && part == msg->root)
			return false;	/* "1.1" of a single part */
		if ((part->flags & MIME_PART_F_MULTIPART) != 0) {
			const struct mime_part *c = part->children;

			for (j = 1; c != NULL && j < n; j++)
				c = c->next;
			if (c == NULL)
				return false;
			part = c;
		} else if (n != 1) {
			return false;
		}
	}

	switch (sec->text) {
	case MIME_SECTION_BODY:
		if (sec->nparts == 0) {
			data->offset = 0;
			data->len = msg->size;
		} else {
			data->offset = part->body_offset;
			data->len = part->body_len;
		}
		return true;
	case MIME_SECTION_MIME:
		data->offset = part->hdr_offset;
		data->len = part->hdr_len;
		return true;
	case MIME_SECTION_HEADER:
	case MIME_SECTION_TEXT:
	case MIME_SECTION_HEADER_FIELDS:
	case MIME_SECTION_HEADER_FIELDS_NOT:
		break;
	}
	/* After a part number, HEADER and TEXT need a message/rfc822 part,
	   the top-level one included: BODY[1.HEADER] of a text/plain
	   message does not exist (Dovecot answers it empty). */
	m = sec->nparts == 0 ? msg->root : mime_part_message(part);
	if (m == NULL)
		return false;
	if (m != msg->root && m->hdr_len == 0 && m->body_len == 0)
		return false;	/* empty embedded message: "" */
	if (sec->text == MIME_SECTION_HEADER) {
		data->offset = m->hdr_offset;
		data->len = m->hdr_len;
	} else if (sec->text == MIME_SECTION_TEXT) {
		data->offset = m->body_offset;
		data->len = m->body_len;
	} else {
		header_filter(msg, m, sec, data);
	}
	return true;
}
