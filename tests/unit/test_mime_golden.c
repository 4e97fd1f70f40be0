/*
 * Golden comparison against Dovecot 2.3.19.1: for every file in
 * data/mime/golden/ (produced once by data/mime/capture.py, see its
 * header), parse the message and compare ENVELOPE, BODYSTRUCTURE, BODY,
 * RFC822.SIZE and each BODY[section] with what Dovecot answered.  Section
 * contents are compared after our LF -> CRLF conversion, as a FETCH would
 * send them.  Messages are data/mime/msgs/NAME.eml, or for names holding
 * "__" the corpus file at $HERALD_CORPUS/NAME with "__" read as "/".
 *
 * Set HERALD_MIME_GOLDEN_VERBOSE=1 to print every difference, and
 * HERALD_MIME_GOLDEN_DIR to compare with golden files elsewhere (e.g. a
 * capture of the whole corpus, too big to keep in the tree).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mime/bodystructure.h"
#include "mime/envelope.h"
#include "mime/message.h"
#include "mime/section.h"

static char data_dir[4096];

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc((size_t)n + 1);
	if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len_r = (size_t)n;
	return buf;
}

static void
crlf(struct buf *out, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			buf_append(out, "\r", 1);
		/* Dovecot sends NUL bytes of BODY[] as 0x80. */
		if (p[i] == '\0')
			buf_append(out, "\x80", 1);
		else
			buf_append(out, p + i, 1);
	}
}

struct stats {
	unsigned int items, matches, files;
};

static bool
compare_item(const char *file, const struct mime_message *msg,
	     struct arena *arena, const char *name, const char *want,
	     size_t want_len)
{
	struct buf got;
	bool ok;

	buf_init(&got, 0);
	buf_append(&got, "", 0);
	if (strcmp(name, "ENVELOPE") == 0) {
		mime_envelope_write(&got, msg, msg->root);
	} else if (strcmp(name, "BODYSTRUCTURE") == 0) {
		mime_bodystructure_write(&got, msg, msg->root, true);
	} else if (strcmp(name, "BODY") == 0) {
		mime_bodystructure_write(&got, msg, msg->root, false);
	} else if (strcmp(name, "RFC822.SIZE") == 0) {
		buf_printf(&got, "%zu", msg->size +
			   mime_count_bare_lf(msg->data, 0, msg->size));
	} else if (strncmp(name, "BODY[", 5) == 0) {
		struct mime_section sec;
		struct mime_section_data d;
		const char *err;
		struct buf content;

		buf_init(&content, 0);
		buf_append(&content, "", 0);
		assert_int_equal(mime_section_parse(arena, name + 5,
						    strlen(name) - 6, &sec,
						    &err), 0);
		if (mime_section_get(msg, &sec, &d)) {
			crlf(&content, d.built != NULL ? d.built :
			     msg->data + d.offset, d.len);
		}
		/* Dovecot: {n}\r\n<bytes>; we only compare the bytes. */
		if (want_len > 0 && want[0] == '{') {
			const char *nl = strstr(want, "}\r\n");

			want_len -= (size_t)(nl + 3 - want);
			want = nl + 3;
		} else if (want_len == 2 && memcmp(want, "\"\"", 2) == 0) {
			want_len = 0;
		}
		buf_append(&got, content.data, content.len);
		buf_free(&content);
	} else {
		buf_free(&got);
		return true;
	}
	ok = got.len == want_len && memcmp(got.data, want, want_len) == 0;
	if (!ok && getenv("HERALD_MIME_GOLDEN_VERBOSE") != NULL) {
		printf("MISMATCH %s %s\n  want: %.*s\n  got:  %.*s\n", file,
		       name, (int)(want_len > 600 ? 600 : want_len), want,
		       (int)(got.len > 600 ? 600 : got.len), got.data);
	}
	buf_free(&got);
	return ok;
}

static void
run_golden(const char *gpath, const char *name, struct stats *st)
{
	char path[8192];
	char *g, *msgdata, *p, *end;
	size_t glen, mlen = 0;
	struct arena arena;
	struct mime_message *msg;
	const char *corpus = getenv("HERALD_CORPUS");

	if (strstr(name, "__") != NULL) {
		char rel[4096], *q;
		size_t i;

		if (corpus == NULL)
			return;
		for (i = 0, q = rel; name[i] != '\0' && q < rel + 4000; i++) {
			if (name[i] == '_' && name[i + 1] == '_') {
				*q++ = '/';
				i++;
			} else {
				*q++ = name[i];
			}
		}
		*q = '\0';
		snprintf(path, sizeof(path), "%s/%s.eml", corpus, rel);
	} else {
		snprintf(path, sizeof(path), "%s/msgs/%s.eml", data_dir, name);
	}
	msgdata = read_file(path, &mlen);
	assert_non_null(msgdata);
	g = read_file(gpath, &glen);
	assert_non_null(g);
	arena_init(&arena);
	msg = mime_message_parse(&arena, msgdata, mlen, NULL);
	st->files++;

	for (p = g, end = g + glen; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *item, *val;
		size_t vlen;

		assert_non_null(nl);
		*nl = '\0';
		item = p;
		vlen = strtoul(nl + 1, &val, 10);
		assert_true(*val == '\n');
		val++;
		st->items++;
		if (compare_item(name, msg, &arena, item, val, vlen))
			st->matches++;
		p = val + vlen + 1;
	}
	arena_free(&arena);
	free(g);
	free(msgdata);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_golden(void **state)
{
	char gdir[8192];
	DIR *dir;
	struct dirent *de;
	struct stats st;
	char **names = NULL;
	size_t n = 0, i;

	memset(&st, 0, sizeof(st));
	if (getenv("HERALD_MIME_GOLDEN_DIR") != NULL)
		snprintf(gdir, sizeof(gdir), "%s",
			 getenv("HERALD_MIME_GOLDEN_DIR"));
	else
		snprintf(gdir, sizeof(gdir), "%s/golden", data_dir);
	dir = opendir(gdir);
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l < 8 || strcmp(de->d_name + l - 7, ".golden") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrndup(de->d_name, l - 7);
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++) {
		char gpath[16384];

		snprintf(gpath, sizeof(gpath), "%s/%s.golden", gdir,
			 names[i]);
		run_golden(gpath, names[i], &st);
		free(names[i]);
	}
	free(names);
	printf("golden: %u files, %u/%u items match Dovecot\n", st.files,
	       st.matches, st.items);
	assert_true(st.files > 0);
	assert_int_equal(st.matches, st.items);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
	};
	char src[4096];

	snprintf(src, sizeof(src), "%s", __FILE__);
	snprintf(data_dir, sizeof(data_dir), "%s/data/mime", dirname(src));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
