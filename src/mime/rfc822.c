#include "mime/mime_private.h"
#include "mime/message.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
rfc822_lexer_init(struct rfc822_lexer *lx, const char *s, size_t len)
{
	memset(lx, 0, sizeof(*lx));
	lx->p = (const unsigned char *)s;
	lx->end = lx->p + len;
}

bool
mime_memcaseeq(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && strncasecmp(p, s, n) == 0;
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 5322 atext; 8-bit bytes are accepted as in RFC 6532. */
static bool
is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if (c <= ' ' || c == 0x7f)
		return false;
	return strchr("()<>[]:;@\\,.\"", c) == NULL;
}

static bool
is_token(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if (c <= ' ' || c == 0x7f)
		return false;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static void
skip_comment(struct rfc822_lexer *lx)
{
	unsigned int level = 0;
	const unsigned char *start = lx->p + 1;

	if (lx->last_comment != NULL)
		buf_reset(lx->last_comment);
	for (; lx->p < lx->end; lx->p++) {
		unsigned char c = *lx->p;

		if (c == '\\' && lx->p + 1 < lx->end) {
			lx->p++;
			if (lx->last_comment != NULL)
				buf_append(lx->last_comment, lx->p, 1);
			continue;
		}
		if (c == '(') {
			if (level++ == 0)
				continue;
		} else if (c == ')') {
			if (--level == 0) {
				lx->p++;
				return;
			}
		} else if (c == '\r' || c == '\n') {
			continue;
		}
		if (lx->last_comment != NULL && lx->p >= start)
			buf_append(lx->last_comment, lx->p, 1);
	}
}

bool
rfc822_skip_cfws(struct rfc822_lexer *lx)
{
	while (lx->p < lx->end) {
		if (is_wsp(*lx->p))
			lx->p++;
		else if (*lx->p == '(')
			skip_comment(lx);
		else
			return true;
	}
	return false;
}

bool
rfc822_atom(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start = lx->p;

	while (lx->p < lx->end && is_atext(*lx->p))
		lx->p++;
	if (lx->p == start)
		return false;
	buf_append(out, start, (size_t)(lx->p - start));
	return true;
}

bool
rfc822_phrase_word(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start = lx->p;

	while (lx->p < lx->end && (is_atext(*lx->p) || *lx->p == '.'))
		lx->p++;
	if (lx->p == start)
		return false;
	buf_append(out, start, (size_t)(lx->p - start));
	return true;
}

bool
rfc822_dot_atom(struct rfc822_lexer *lx, struct buf *out)
{
	bool any = false;

	for (;;) {
		if (rfc822_atom(lx, out))
			any = true;
		else if (!any)
			return false;
		rfc822_skip_cfws(lx);
		if (lx->p >= lx->end || *lx->p != '.')
			return true;
		buf_append(out, ".", 1);
		lx->p++;
		rfc822_skip_cfws(lx);
	}
}

bool
rfc822_token(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start = lx->p;

	while (lx->p < lx->end && is_token(*lx->p))
		lx->p++;
	if (lx->p == start)
		return false;
	buf_append(out, start, (size_t)(lx->p - start));
	return true;
}

bool
rfc822_quoted(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start;

	lx->p++;
	for (start = lx->p; lx->p < lx->end; lx->p++) {
		unsigned char c = *lx->p;

		if (c == '"') {
			buf_append(out, start, (size_t)(lx->p - start));
			lx->p++;
			return true;
		}
		if (c == '\\' && lx->p + 1 < lx->end) {
			buf_append(out, start, (size_t)(lx->p - start));
			lx->p++;
			start = lx->p;
		} else if (c == '\r' || c == '\n') {
			/* Folding inside a quoted string: drop the line end. */
			buf_append(out, start, (size_t)(lx->p - start));
			start = lx->p + 1;
		}
	}
	return false;
}

bool
rfc822_domain_literal(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start = lx->p;

	for (lx->p++; lx->p < lx->end; lx->p++) {
		if (*lx->p == '\\' && lx->p + 1 < lx->end)
			lx->p++;
		else if (*lx->p == ']') {
			lx->p++;
			buf_append(out, start, (size_t)(lx->p - start));
			return true;
		}
	}
	return false;
}

/* One "; name=value" pair: 1 ok, 0 at the end, -1 broken. */
static int
param_next(struct rfc822_lexer *lx, struct buf *name, struct buf *value)
{
	buf_reset(name);
	buf_reset(value);
	if (!rfc822_skip_cfws(lx))
		return 0;
	if (*lx->p != ';')
		return -1;
	lx->p++;
	if (!rfc822_skip_cfws(lx))
		return 0;
	/* An empty name is accepted ("; =v"), as Dovecot does. */
	buf_append(name, "", 0);
	rfc822_token(lx, name);
	if (!rfc822_skip_cfws(lx) || *lx->p != '=')
		return -1;
	lx->p++;
	if (!rfc822_skip_cfws(lx))
		return -1;
	if (*lx->p == '"') {
		if (!rfc822_quoted(lx, value))
			return -1;
	} else if (!rfc822_token(lx, value)) {
		return -1;
	}
	return 1;
}

struct rfc2231_param {
	char *key;		/* name before the first '*' */
	char *value;
	unsigned int idx;
	bool extended;
};

static int
rfc2231_cmp(const void *a, const void *b)
{
	const struct rfc2231_param *p1 = a, *p2 = b;
	int ret = strcmp(p1->key, p2->key);

	if (ret != 0)
		return ret;
	return p1->idx < p2->idx ? -1 : (p1->idx > p2->idx ? 1 : 0);
}

static void
params_add(struct arena *arena, struct mime_param **arr, unsigned int *n,
	   unsigned int *cap, const char *name, const char *value)
{
	if (*n == *cap) {
		struct mime_param *na;

		*cap = *cap == 0 ? 4 : *cap * 2;
		na = arena_alloc(arena, *cap * sizeof(*na));
		if (*n > 0)
			memcpy(na, *arr, *n * sizeof(*na));
		*arr = na;
	}
	(*arr)[*n].name = arena_strdup(arena, name);
	(*arr)[*n].value = arena_strdup(arena, value);
	(*n)++;
}

void
mime_params_parse(struct arena *arena, struct rfc822_lexer *lx,
		  struct mime_param **params_r, unsigned int *count_r)
{
	struct buf name, value, tmp;
	struct rfc2231_param *ext = NULL;
	unsigned int next_ext = 0, cap_ext = 0, n = 0, cap = 0, i, j, next;
	/* Dovecot keeps the index of the previous starred parameter when a
	   name ends in a bare '*' ("name*="); we do the same so that the
	   merged result matches its answers. */
	unsigned int idx = 0;
	struct mime_param *params = NULL;
	int ret;

	buf_init(&name, 0);
	buf_init(&value, 0);
	buf_init(&tmp, 0);
	while ((ret = param_next(lx, &name, &value)) != 0) {
		const char *star, *p;
		bool extended;

		if (ret < 0) {
			if (lx->p >= lx->end)
				break;
			lx->p++;
			continue;
		}
		star = strchr(name.data, '*');
		if (star == NULL) {
			params_add(arena, &params, &n, &cap, name.data,
				   value.data != NULL ? value.data : "");
			continue;
		}
		p = star;
		if (p[1] != '\0') {
			p++;
			idx = 0;
			for (; *p >= '0' && *p <= '9'; p++)
				idx = idx * 10 + (unsigned int)(*p - '0');
		}
		extended = *p == '*';
		if (extended)
			p++;
		if (*p != '\0') {
			params_add(arena, &params, &n, &cap, name.data,
				   value.data != NULL ? value.data : "");
			continue;
		}
		if (next_ext == cap_ext) {
			cap_ext = cap_ext == 0 ? 4 : cap_ext * 2;
			ext = xrealloc(ext, cap_ext * sizeof(*ext));
		}
		ext[next_ext].key = xstrndup(name.data,
					     (size_t)(star - name.data));
		ext[next_ext].value = xstrdup(value.data != NULL ?
					      value.data : "");
		ext[next_ext].idx = idx;
		ext[next_ext].extended = extended;
		next_ext++;
	}

	if (next_ext > 0)
		qsort(ext, next_ext, sizeof(*ext), rfc2231_cmp);
	for (i = 0; i < next_ext; i = next) {
		bool ok = true, have_ext = false;
		unsigned int want = 0;

		for (j = i; j < next_ext; j++, want++) {
			if (strcasecmp(ext[i].key, ext[j].key) != 0)
				break;
			if (ext[j].idx != want)
				ok = false;
			if (ext[j].extended)
				have_ext = true;
		}
		next = j;
		if (!ok) {
			for (j = i; j < next; j++) {
				char *k = arena_printf(arena,
					ext[j].extended ? "%s*%u*" : "%s*%u",
					ext[j].key, ext[j].idx);

				params_add(arena, &params, &n, &cap, k,
					   ext[j].value);
			}
			continue;
		}
		buf_reset(&tmp);
		if (!ext[i].extended && have_ext)
			buf_append_str(&tmp, "''");
		for (j = i; j < next; j++) {
			const char *v = ext[j].value;

			if (ext[j].extended || !have_ext) {
				buf_append_str(&tmp, v);
				continue;
			}
			/* A plain segment inside an encoded value: its '%'
			   must not read as an escape. */
			for (; *v != '\0'; v++) {
				if (*v == '%')
					buf_append_str(&tmp, "%25");
				else
					buf_append(&tmp, v, 1);
			}
		}
		params_add(arena, &params, &n, &cap,
			   have_ext ? arena_printf(arena, "%s*", ext[i].key) :
			   ext[i].key, tmp.data != NULL ? tmp.data : "");
	}
	for (i = 0; i < next_ext; i++) {
		free(ext[i].key);
		free(ext[i].value);
	}
	free(ext);
	buf_free(&name);
	buf_free(&value);
	buf_free(&tmp);
	*params_r = params;
	*count_r = n;
}
