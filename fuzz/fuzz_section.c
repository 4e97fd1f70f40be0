/*
 * libFuzzer target: BODY[section] specifications (src/mime/section.h),
 * the part of FETCH that reads client text.
 *
 * Input: the text between "[" and "]", e.g. "1.2.HEADER.FIELDS (From)".
 * It is parsed; a section that parses is looked up in a few fixed
 * messages (single part, nested multipart with an embedded message, a
 * digest) and must lie inside the message.  Both the parse and the lookup
 * must not depend on anything past the given length: the text is copied
 * into an exact-size buffer without a NUL.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "log/log.h"
#include "mime/message.h"
#include "mime/section.h"

#include "fuzz_common.h"

static const char *const messages[] = {
	"From: a@b\r\nSubject: one\r\n\r\nbody\r\n",

	"From: a@b\nSubject: nested\nContent-Type: multipart/mixed; "
	"boundary=o\n\npreamble\n--o\nContent-Type: text/plain\n"
	"Content-ID: <1>\n\npart one\n--o\nContent-Type: multipart/"
	"alternative; boundary=i\n\n--i\n\ntext\n--i\nContent-Type: "
	"text/html\n\n<p>html</p>\n--i--\n--o\nContent-Type: message/rfc822"
	"\n\nFrom: c@d\nSubject: inner\nContent-Type: multipart/mixed; "
	"boundary=x\n\n--x\n\ninner one\n--x\n\ninner two\n--x--\n--o--\n",

	"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
	"Subject: digest one\r\n\r\nd1\r\n--d\r\nContent-Type: text/plain"
	"\r\n\r\nd2\r\n--d--\r\n",

	"",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LEVEL_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena arena;
	struct mime_section sec;
	const char *err = NULL;
	char *spec;

	if (size > 4096)
		return -1;
	spec = malloc(size > 0 ? size : 1);
	FUZZ_CHECK(spec != NULL);
	if (size > 0)
		memcpy(spec, data, size);
	arena_init(&arena);
	if (mime_section_parse(&arena, spec, size, &sec, &err) < 0) {
		FUZZ_CHECK(err != NULL);
		goto out;
	}
	FUZZ_CHECK(sec.nparts <= MIME_SECTION_MAX_PARTS);
	for (unsigned i = 0; i < sec.nparts; i++)
		FUZZ_CHECK(sec.parts[i] >= 1);
	FUZZ_CHECK(sec.text >= MIME_SECTION_BODY &&
	    sec.text <= MIME_SECTION_MIME);
	if (sec.text == MIME_SECTION_MIME)
		FUZZ_CHECK(sec.nparts > 0);
	for (unsigned i = 0; i < sec.nfields; i++)
		FUZZ_CHECK(sec.fields[i] != NULL);
	for (size_t m = 0; m < sizeof(messages) / sizeof(messages[0]); m++) {
		struct mime_message *msg;
		struct mime_section_data d;
		size_t len = strlen(messages[m]);

		msg = mime_message_parse(&arena, messages[m], len, NULL);
		if (!mime_section_get(msg, &sec, &d))
			continue;
		if (d.built != NULL) {
			(void)fuzz_hash(0, d.built, d.len);
		} else {
			FUZZ_CHECK(d.offset <= len && d.len <= len - d.offset);
		}
	}
out:
	arena_free(&arena);
	free(spec);
	return 0;
}
