/*
 * libFuzzer target: the MIME parser and everything FETCH and SEARCH build
 * on it (the headers of src/mime/).
 *
 * Input: one message, exactly as stored in a Maildir file, so any .eml
 * file is a seed (make fuzz adds ../shared/corpus/maildir).  Every root
 * header field named "X-Section" is also used as the text of a
 * BODY[section] (e.g. "X-Section: 1.2.HEADER.FIELDS (From)"), which puts
 * mime_section_parse(), which reads client input, under the fuzzer too.
 *
 * The message is parsed with the default limits and with tiny ones; for
 * each tree:
 *  - the tree is consistent: every part, header field and value lies in
 *    the message, children lie in their parent's body, counts and depths
 *    agree, vsize = size + bare LFs;
 *  - ENVELOPE of the root and of every embedded message, BODY and
 *    BODYSTRUCTURE of every part are each one well-formed IMAP value;
 *  - every section of every part (as test_mime_corpus.c walks them) is
 *    inside the message;
 *  - decoded header values and the SEARCH text are valid UTF-8, and a
 *    bounded search buffer stays within its max.
 * ASan and UBSan catch the rest.  The copy of the input has no slack, so
 * any read past the end is caught.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "log/log.h"
#include "mime/bodystructure.h"
#include "mime/decode.h"
#include "mime/envelope.h"
#include "mime/message.h"
#include "mime/search.h"
#include "mime/section.h"

#include "fuzz_common.h"

/* Section texts tried after every part number (and alone). */
static const char *const texts[] = {
	"", ".MIME", ".HEADER", ".TEXT",
	".HEADER.FIELDS (From Subject Content-Type)",
	".HEADER.FIELDS.NOT (Received From)",
	".HEADER.FIELDS (\"X-Section\" Date)",
};

static void
check_value(const struct buf *out, const char *what)
{
	if (!fuzz_imap_value(out->data, out->len)) {
		fprintf(stderr, "bad %s: %.*s\n", what, (int)out->len,
		    out->data);
		FUZZ_CHECK(!"not one IMAP value");
	}
}

static uint32_t
touch(const char *p, size_t len)
{
	/* Read every byte, so that ASan sees the whole range. */
	return fuzz_hash(2166136261u, p, len);
}

static void
check_section_text(const struct mime_message *msg, const char *spec,
    size_t len, bool must_parse)
{
	struct mime_section sec;
	struct mime_section_data d;
	const char *err = NULL;

	if (mime_section_parse(msg->arena, spec, len, &sec, &err) < 0) {
		FUZZ_CHECK(err != NULL);
		if (must_parse) {
			fprintf(stderr, "section '%.*s': %s\n", (int)len,
			    spec, err);
			FUZZ_CHECK(!"a section we build does not parse");
		}
		return;
	}
	FUZZ_CHECK(sec.nparts <= MIME_SECTION_MAX_PARTS);
	for (unsigned i = 0; i < sec.nparts; i++)
		FUZZ_CHECK(sec.parts[i] >= 1);
	if (sec.text == MIME_SECTION_HEADER_FIELDS ||
	    sec.text == MIME_SECTION_HEADER_FIELDS_NOT) {
		FUZZ_CHECK(sec.nfields == 0 || sec.fields != NULL);
		for (unsigned i = 0; i < sec.nfields; i++)
			FUZZ_CHECK(sec.fields[i] != NULL);
	}
	if (!mime_section_get(msg, &sec, &d))
		return;
	if (d.built != NULL) {
		(void)touch(d.built, d.len);
	} else {
		FUZZ_CHECK(d.offset <= msg->size);
		FUZZ_CHECK(d.len <= msg->size - d.offset);
		(void)touch(msg->data + d.offset, d.len);
	}
}

/* Every section of part and below; path is its part number ("" = root). */
static void
walk_sections(const struct mime_message *msg, const struct mime_part *part,
    const char *path, size_t plen)
{
	const struct mime_part *c, *inner = mime_part_message(part);
	char spec[MIME_SECTION_MAX_PARTS * 12 + 64];
	unsigned n;
	int l;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (plen == 0 && strcmp(texts[i], ".MIME") == 0)
			continue;
		l = snprintf(spec, sizeof(spec), "%.*s%s", (int)plen, path,
		    plen == 0 ? texts[i] + (texts[i][0] == '.') : texts[i]);
		check_section_text(msg, spec, (size_t)l, true);
	}
	if (inner != NULL)
		part = inner;
	if ((part->flags & MIME_PART_F_MULTIPART) == 0) {
		if (plen == 0) {
			check_section_text(msg, "1", 1, true);
			check_section_text(msg, "1.MIME", 6, true);
		}
		return;
	}
	/* Deeper numbers are refused by the parser: stop at its limit. */
	if (part->depth >= MIME_SECTION_MAX_PARTS - 1 ||
	    plen > MIME_SECTION_MAX_PARTS * 11)
		return;
	for (c = part->children, n = 1; c != NULL; c = c->next, n++) {
		l = snprintf(spec, sizeof(spec), "%.*s%s%u", (int)plen, path,
		    plen == 0 ? "" : ".", n);
		walk_sections(msg, c, spec, (size_t)l);
		/* A multipart with thousands of parts: a sample is enough. */
		if (n >= 50)
			break;
	}
}

static void
check_fields(const struct mime_message *msg, const struct mime_part *part,
    struct buf *tmp)
{
	for (unsigned i = 0; i < part->nfields; i++) {
		const struct mime_header_field *f = &part->fields[i];
		const char *v;
		size_t vlen = 12345;

		FUZZ_CHECK(f->offset <= msg->size &&
		    f->len <= msg->size - f->offset);
		FUZZ_CHECK(f->name_len <= f->len);
		FUZZ_CHECK(f->offset >= part->hdr_offset &&
		    f->offset + f->len <= part->hdr_offset + part->hdr_len);
		if (f->has_colon) {
			FUZZ_CHECK(f->value_offset > f->offset &&
			    f->value_offset <= msg->size);
			FUZZ_CHECK(f->value_len <= msg->size - f->value_offset);
			FUZZ_CHECK(f->value_offset + f->value_len <=
			    f->offset + f->len);
		}
		v = mime_header_value(msg, f, &vlen);
		FUZZ_CHECK(v != NULL && v[vlen] == '\0');
		FUZZ_CHECK(memchr(v, '\0', vlen) == NULL);
		buf_reset(tmp);
		mime_decode_header_utf8(tmp, v, vlen);
		FUZZ_CHECK(fuzz_utf8_valid(tmp->data, tmp->len));
		v = mime_header_value_raw(msg, f, &vlen);
		FUZZ_CHECK(v != NULL && v[vlen] == '\0');
		if (part->parent == NULL) {
			buf_reset(tmp);
			mime_search_header(tmp, msg, f);
			FUZZ_CHECK(fuzz_utf8_valid(tmp->data, tmp->len));
		}
	}
}

/* mime_header_find() agrees with a scan using mime_header_is(). */
static void
check_find(const struct mime_message *msg, const struct mime_part *part,
    const char *name)
{
	const struct mime_header_field *first = NULL, *last = NULL;

	for (unsigned i = 0; i < part->nfields; i++) {
		if (mime_header_is(msg, &part->fields[i], name)) {
			if (first == NULL)
				first = &part->fields[i];
			last = &part->fields[i];
		}
	}
	FUZZ_CHECK(mime_header_find(msg, part, name, false) == first);
	FUZZ_CHECK(mime_header_find(msg, part, name, true) == last);
}

static void
check_tree(const struct mime_message *msg, struct buf *out)
{
	unsigned count = 0;

	FUZZ_CHECK(msg->root != NULL);
	FUZZ_CHECK(msg->root->parent == NULL && msg->root->depth == 0);
	for (const struct mime_part *p = msg->root; p != NULL;
	     p = mime_part_next(p)) {
		unsigned nchildren = 0;

		count++;
		FUZZ_CHECK(count <= msg->nparts);
		FUZZ_CHECK(p->hdr_offset <= msg->size &&
		    p->hdr_len <= msg->size - p->hdr_offset);
		FUZZ_CHECK(p->body_offset <= msg->size &&
		    p->body_len <= msg->size - p->body_offset);
		FUZZ_CHECK(p->hdr_offset + p->hdr_len <= p->body_offset);
		FUZZ_CHECK(p->body_vsize == p->body_len +
		    mime_count_bare_lf(msg->data, p->body_offset,
		    p->body_len));
		FUZZ_CHECK(p->body_lines <= p->body_len);
		FUZZ_CHECK(p->nfields == 0 || p->fields != NULL);
		FUZZ_CHECK((p->type == NULL) == (p->subtype == NULL));
		if (p->boundary != NULL)
			FUZZ_CHECK(p->flags & (MIME_PART_F_MULTIPART |
			    MIME_PART_F_TRUNCATED));
		if (p->flags & MIME_PART_F_TRUNCATED)
			FUZZ_CHECK(p->nchildren == 0);
		for (const struct mime_part *c = p->children; c != NULL;
		     c = c->next) {
			nchildren++;
			FUZZ_CHECK(c->parent == p);
			FUZZ_CHECK(c->depth == p->depth + 1);
			FUZZ_CHECK(c->hdr_offset >= p->body_offset);
			FUZZ_CHECK(c->body_offset + c->body_len <=
			    p->body_offset + p->body_len);
		}
		FUZZ_CHECK(nchildren == p->nchildren);
		if (p->flags & MIME_PART_F_MESSAGE) {
			FUZZ_CHECK(nchildren == 1);
			FUZZ_CHECK(mime_part_message(p) == p->children);
		} else {
			FUZZ_CHECK(mime_part_message(p) == NULL);
		}
		check_fields(msg, p, out);
		check_find(msg, p, "Subject");
		check_find(msg, p, "content-type");
		if (p->nfields > 0 && p->fields[0].name_len < 64) {
			char name[64];

			memcpy(name, msg->data + p->fields[0].offset,
			    p->fields[0].name_len);
			name[p->fields[0].name_len] = '\0';
			if (strlen(name) == p->fields[0].name_len)
				check_find(msg, p, name);
		}

		buf_reset(out);
		mime_bodystructure_write(out, msg, p, true);
		check_value(out, "BODYSTRUCTURE");
		buf_reset(out);
		mime_bodystructure_write(out, msg, p, false);
		check_value(out, "BODY");
		if (p->parent == NULL || mime_part_message(p->parent) == p) {
			buf_reset(out);
			mime_envelope_write(out, msg, p);
			check_value(out, "ENVELOPE");
		}
	}
	FUZZ_CHECK(count == msg->nparts);
}

static void
check_message(const char *data, size_t size, const struct mime_limits *lim)
{
	struct arena arena;
	struct mime_message *msg;
	struct buf out, small;

	arena_init(&arena);
	buf_init(&out, 0);
	msg = mime_message_parse(&arena, data, size, lim);
	FUZZ_CHECK(msg != NULL);
	FUZZ_CHECK(msg->data == data && msg->size == size);
	check_tree(msg, &out);
	walk_sections(msg, msg->root, "", 0);

	for (unsigned i = 0; i < msg->root->nfields; i++) {
		const struct mime_header_field *f = &msg->root->fields[i];
		const char *v;
		size_t vlen;

		if (!mime_header_is(msg, f, "X-Section"))
			continue;
		v = mime_header_value(msg, f, &vlen);
		check_section_text(msg, v, vlen, false);
	}

	buf_reset(&out);
	mime_search_text(&out, msg, MIME_SEARCH_HEADERS | MIME_SEARCH_BODY);
	FUZZ_CHECK(fuzz_utf8_valid(out.data, out.len));
	buf_init(&small, 100);
	mime_search_text(&small, msg, MIME_SEARCH_BODY);
	FUZZ_CHECK(small.len <= 100);
	buf_free(&small);

	buf_free(&out);
	arena_free(&arena);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LEVEL_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mime_limits tiny = { 3, 5 };
	char *copy;

	if (size > 1 << 20)
		return -1;
	/* An exact-size heap copy: libFuzzer's buffer is too, but the
	 * parser takes char and we keep the input const. */
	copy = malloc(size > 0 ? size : 1);
	FUZZ_CHECK(copy != NULL);
	if (size > 0)
		memcpy(copy, data, size);
	check_message(copy, size, NULL);
	check_message(copy, size, &tiny);
	free(copy);
	return 0;
}
