#include "lmtp/proto.h"

#include "auth/passdb.h"
#include "core/buf.h"
#include "core/xmalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum lmtp_line_result
lmtp_line_split(const char *line, size_t *verb_len_r, const char **args_r)
{
	const char *args = strchr(line, ' ');
	size_t verb_len;

	verb_len = args != NULL ? (size_t)(args - line) : strlen(line);
	args = args != NULL ? args + 1 : line + verb_len;
	for (size_t i = 0; i < verb_len; i++) {
		if (!isalpha((unsigned char)line[i]))
			return LMTP_LINE_BAD_VERB;
	}
	for (const char *p = args; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return LMTP_LINE_BAD_CHARS;
	}
	*verb_len_r = verb_len;
	*args_r = args;
	return LMTP_LINE_OK;
}

const char *
lmtp_skip_keyword(const char *args, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(args, kw, n) != 0)
		return NULL;
	return args + n;
}

void
lmtp_path_free(struct lmtp_path *p)
{
	free(p->address);
	free(p->local);
	memset(p, 0, sizeof(*p));
}

bool
lmtp_path_parse(const char *s, struct lmtp_path *p, const char **why)
{
	struct buf local;
	const char *start;

	memset(p, 0, sizeof(*p));
	while (*s == ' ')
		s++;	/* "MAIL FROM: <x>" is common enough to allow */
	*why = "Missing '<' at beginning of path";
	if (*s++ != '<')
		return false;
	*why = "Missing '>' at end of path";
	if (*s == '>') {
		if (s[1] != '\0' && s[1] != ' ') {
			*why = "Invalid character in path";
			return false;
		}
		p->null = true;
		p->address = xstrdup("");
		p->local = xstrdup("");
		p->rest = s + 1;
		return true;
	}
	if (*s == '@') {
		/* A source route: ignored (RFC 5321 4.1.2, appendix C). */
		const char *colon = strchr(s, ':');
		const char *gt = strchr(s, '>');

		if (colon == NULL || gt == NULL || colon > gt)
			return false;
		s = colon + 1;
	}
	start = s;
	buf_init(&local, 0);
	if (*s == '"') {
		for (s++; *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				goto fail;
			buf_append(&local, s, 1);
		}
		s++;
		if (*s != '@' && *s != '>') {
			*why = "Invalid character in localpart";
			goto fail;
		}
	} else {
		for (; *s != '@' && *s != '>'; s++) {
			if ((unsigned char)*s <= 0x20 || *s == 0x7f ||
			    *s == '<' || *s == '"')
				goto fail;
			buf_append(&local, s, 1);
		}
		if (local.len == 0) {
			*why = "Missing localpart";
			goto fail;
		}
	}
	if (*s == '@') {
		const char *dom = ++s;

		for (; *s != '>'; s++) {
			if ((unsigned char)*s <= 0x20 || *s == 0x7f ||
			    *s == '<')
				goto fail;
		}
		if (s == dom) {
			*why = "Missing domain after '@'";
			goto fail;
		}
	}
	if (*s != '>')
		goto fail;
	if (s[1] != '\0' && s[1] != ' ') {
		*why = "Invalid character in path";
		goto fail;
	}
	buf_append(&local, "", 1);
	p->local = local.data;
	p->address = xstrndup(start, (size_t)(s - start));
	p->rest = s + 1;
	return true;
fail:
	buf_free(&local);
	return false;
}

bool
lmtp_next_param(const char **pp, char **key_r, char **value_r)
{
	const char *p = *pp, *k, *eq, *end;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return false;
	k = p;
	while (*p != '\0' && *p != ' ')
		p++;
	end = p;
	eq = memchr(k, '=', (size_t)(end - k));
	if (eq == NULL) {
		*key_r = xstrndup(k, (size_t)(end - k));
		*value_r = NULL;
	} else {
		*key_r = xstrndup(k, (size_t)(eq - k));
		*value_r = xstrndup(eq + 1, (size_t)(end - eq - 1));
	}
	*pp = p;
	return true;
}

static void
candidate_add(char *cand[], unsigned *n, const char *name, size_t len)
{
	char *c = xstrndup(name, len);

	if (!passwd_user_name_valid(c) || *n == LMTP_MAX_CANDIDATES) {
		free(c);
		return;
	}
	for (unsigned i = 0; i < *n; i++) {
		if (strcmp(cand[i], c) == 0) {
			free(c);
			return;
		}
	}
	cand[(*n)++] = c;
}

unsigned
lmtp_candidates(const struct lmtp_path *path, char *cand[LMTP_MAX_CANDIDATES])
{
	const char *local = path->local;
	const char *plus = strchr(local, '+');
	unsigned n = 0;
	char *lower;

	if (strchr(path->address, '@') != NULL)
		candidate_add(cand, &n, path->address, strlen(path->address));
	candidate_add(cand, &n, local, strlen(local));
	if (plus != NULL && plus != local)
		candidate_add(cand, &n, local, (size_t)(plus - local));
	lower = xstrdup(local);
	for (char *c = lower; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	if (strcmp(lower, local) != 0) {
		candidate_add(cand, &n, lower, strlen(lower));
		plus = strchr(lower, '+');
		if (plus != NULL && plus != lower)
			candidate_add(cand, &n, lower, (size_t)(plus - lower));
	}
	free(lower);
	return n;
}

size_t
lmtp_data_feed(enum lmtp_data_state *state, const char *data, size_t len,
    lmtp_data_put_fn *put, void *ctx, bool *end)
{
	size_t i = 0;

	*end = false;
	while (i < len) {
		const char *cr;
		size_t n;

		switch (*state) {
		case LMTP_DATA_TEXT:
			cr = memchr(data + i, '\r', len - i);
			n = cr == NULL ? len - i : (size_t)(cr - (data + i));
			if (n > 0)
				put(ctx, data + i, n);
			i += n;
			if (cr != NULL) {
				put(ctx, "\r", 1);
				i++;
				*state = LMTP_DATA_CR;
			}
			break;
		case LMTP_DATA_CR:
			put(ctx, data + i, 1);
			*state = data[i] == '\n' ? LMTP_DATA_BOL :
			    data[i] == '\r' ? LMTP_DATA_CR : LMTP_DATA_TEXT;
			i++;
			break;
		case LMTP_DATA_BOL:
			if (data[i] == '.') {
				i++;
				*state = LMTP_DATA_DOT;
			} else {
				*state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DOT:
			/* The leading dot is dropped (RFC 5321 4.5.2). */
			if (data[i] == '\r') {
				i++;
				*state = LMTP_DATA_DOT_CR;
			} else {
				*state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DOT_CR:
			if (data[i] == '\n') {
				*state = LMTP_DATA_BOL;
				*end = true;
				return i + 1;
			}
			/* ".\r" then something else: a line "\r..." */
			put(ctx, "\r", 1);
			*state = LMTP_DATA_CR;
			break;
		}
	}
	return i;
}
