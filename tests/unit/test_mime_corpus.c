/*
 * Robustness over the corpus at $HERALD_CORPUS (maildir/ and
 * to-be-debugged-because/): every message goes through parse, ENVELOPE,
 * BODY, BODYSTRUCTURE, every section of every part and the search text,
 * with default limits and with tiny ones.  Each answer must be one
 * well-formed IMAP value and every section must lie inside the message;
 * ASan/UBSan builds catch the rest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mime/bodystructure.h"
#include "mime/envelope.h"
#include "mime/message.h"
#include "mime/search.h"
#include "mime/section.h"
#include "test_mime_check.h"

struct corpus_stats {
	unsigned int files, ok, parts, sections;
};

static const char *const texts[] = {
	"", ".MIME", ".HEADER", ".TEXT",
	".HEADER.FIELDS (From Subject Content-Type)",
	".HEADER.FIELDS.NOT (Received From)",
};

static bool
check_section(struct mime_message *msg, const char *spec,
	      struct corpus_stats *st)
{
	struct mime_section sec;
	struct mime_section_data d;
	const char *err;

	if (mime_section_parse(msg->arena, spec, strlen(spec), &sec,
			       &err) < 0) {
		printf("section %s: %s\n", spec, err);
		return false;
	}
	st->sections++;
	if (!mime_section_get(msg, &sec, &d))
		return true;
	if (d.built == NULL && (d.offset > msg->size ||
				d.len > msg->size - d.offset)) {
		printf("section %s out of range\n", spec);
		return false;
	}
	return true;
}

/* Walk the tree, building the section number of each part. */
static bool
check_sections(struct mime_message *msg, const struct mime_part *part,
	       char *path, size_t plen, struct corpus_stats *st)
{
	const struct mime_part *c, *inner = mime_part_message(part);
	unsigned int i, n;
	char spec[1024];

	for (i = 0; i < ARRAY_SIZE(texts); i++) {
		if (plen == 0 && strcmp(texts[i], ".MIME") == 0)
			continue;
		snprintf(spec, sizeof(spec), "%.*s%s", (int)plen, path,
			 plen == 0 ? texts[i] + (texts[i][0] == '.') :
			 texts[i]);
		if (!check_section(msg, spec, st))
			return false;
	}
	if (plen > 900)
		return true;
	if (inner != NULL)
		part = inner;
	if ((part->flags & MIME_PART_F_MULTIPART) == 0) {
		if (plen == 0) {
			/* "1" of a single-part message. */
			snprintf(spec, sizeof(spec), "1");
			return check_section(msg, spec, st) &&
				check_section(msg, "1.MIME", st);
		}
		return true;
	}
	for (c = part->children, n = 1; c != NULL; c = c->next, n++) {
		char sub[1024];
		int l = snprintf(sub, sizeof(sub), "%.*s%s%u", (int)plen, path,
				 plen == 0 ? "" : ".", n);

		st->parts++;
		if (!check_sections(msg, c, sub, (size_t)l, st))
			return false;
	}
	return true;
}

static bool
check_message(const char *path, const char *data, size_t size,
	      const struct mime_limits *limits, struct corpus_stats *st)
{
	struct arena arena;
	struct mime_message *msg;
	struct buf out;
	bool ok = true;
	const struct mime_part *p;

	arena_init(&arena);
	buf_init(&out, 0);
	msg = mime_message_parse(&arena, data, size, limits);
	assert_non_null(msg->root);

	mime_envelope_write(&out, msg, msg->root);
	if (!imap_check(out.data, out.len)) {
		printf("%s: bad ENVELOPE %s\n", path, out.data);
		ok = false;
	}
	buf_reset(&out);
	mime_bodystructure_write(&out, msg, msg->root, true);
	if (!imap_check(out.data, out.len)) {
		printf("%s: bad BODYSTRUCTURE %s\n", path, out.data);
		ok = false;
	}
	buf_reset(&out);
	mime_bodystructure_write(&out, msg, msg->root, false);
	if (!imap_check(out.data, out.len)) {
		printf("%s: bad BODY %s\n", path, out.data);
		ok = false;
	}
	for (p = msg->root; p != NULL; p = mime_part_next(p)) {
		const struct mime_part *inner = mime_part_message(p);

		if (p->body_offset + p->body_len > size ||
		    p->hdr_offset + p->hdr_len > size) {
			printf("%s: part out of range\n", path);
			ok = false;
		}
		if (inner != NULL) {
			buf_reset(&out);
			mime_envelope_write(&out, msg, inner);
			if (!imap_check(out.data, out.len)) {
				printf("%s: bad inner ENVELOPE\n", path);
				ok = false;
			}
		}
	}
	if (!check_sections(msg, msg->root, "", 0, st)) {
		printf("%s: section check failed\n", path);
		ok = false;
	}
	buf_reset(&out);
	mime_search_text(&out, msg, MIME_SEARCH_HEADERS | MIME_SEARCH_BODY);
	buf_free(&out);
	arena_free(&arena);
	return ok;
}

static void
run_file(const char *path, struct corpus_stats *st)
{
	static const struct mime_limits tiny = { 3, 5 };
	FILE *f = fopen(path, "rb");
	char *data;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	/* An exact-size copy, so reads past the end trip ASan. */
	data = xmalloc(n > 0 ? (size_t)n : 1);
	assert_true(n == 0 || fread(data, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	st->files++;
	if (check_message(path, data, (size_t)n, NULL, st) &&
	    check_message(path, data, (size_t)n, &tiny, st))
		st->ok++;
	free(data);
}

static void
walk(const char *dir, struct corpus_stats *st)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[8192];
		struct stat sb;
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &sb) < 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			walk(path, st);
		else if (l > 4 && strcmp(de->d_name + l - 4, ".eml") == 0)
			run_file(path, st);
	}
	closedir(d);
}

static void
test_corpus(void **state)
{
	const char *corpus = getenv("HERALD_CORPUS");
	struct corpus_stats st;
	char dir[4096];

	if (corpus == NULL) {
		printf("HERALD_CORPUS not set, skipping\n");
		skip();
	}
	memset(&st, 0, sizeof(st));
	snprintf(dir, sizeof(dir), "%s/maildir", corpus);
	walk(dir, &st);
	snprintf(dir, sizeof(dir), "%s/to-be-debugged-because", corpus);
	walk(dir, &st);
	printf("corpus: %u/%u messages ok, %u parts, %u sections\n", st.ok,
	       st.files, st.parts, st.sections);
	assert_true(st.files >= 836);
	assert_int_equal(st.ok, st.files);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
