#include "mime/decode.h"
#include "mime/mime_private.h"
#include "core/buf.h"

#include <errno.h>
#include <stdint.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

#include <utf8proc.h>

#define REPLACEMENT "\xef\xbf\xbd"

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
mime_decode_qp(struct buf *out, const char *s, size_t len, bool header)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (header && c == '_') {
			buf_append(out, s + start, i - start);
			buf_append(out, " ", 1);
			start = i + 1;
		} else if (c == '=') {
			int h, l;

			buf_append(out, s + start, i - start);
			if (i + 2 < len &&
			    (h = hexval((unsigned char)s[i + 1])) >= 0 &&
			    (l = hexval((unsigned char)s[i + 2])) >= 0) {
				unsigned char b = (unsigned char)(h * 16 + l);

				buf_append(out, &b, 1);
				i += 2;
			} else {
				/* A soft line break: "=" blanks line end. */
				size_t j = i + 1;

				while (j < len && (s[j] == ' ' || s[j] == '\t'))
					j++;
				if (j < len && s[j] == '\r')
					j++;
				if (j < len && s[j] == '\n') {
					i = j;
				} else if (j >= len) {
					i = len - 1;
				} else {
					buf_append(out, "=", 1);
				}
			}
			start = i + 1;
		} else if (!header && c == '\n') {
			/* Trailing blanks of a line are padding. */
			size_t e = i;

			if (e > start && s[e - 1] == '\r')
				e--;
			while (e > start && (s[e - 1] == ' ' ||
					     s[e - 1] == '\t'))
				e--;
			buf_append(out, s + start, e - start);
			buf_append(out, "\n", 1);
			start = i + 1;
		}
	}
	if (start < len)
		buf_append(out, s + start, len - start);
}

void
mime_decode_base64(struct buf *out, const char *s, size_t len)
{
	unsigned int acc = 0, bits = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else if (c == '=')
			break;
		else
			continue;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			unsigned char b;

			bits -= 8;
			b = (unsigned char)(acc >> bits);
			buf_append(out, &b, 1);
			acc &= (1u << bits) - 1;
		}
	}
}

void
mime_decode_transfer(struct buf *out, const char *encoding, const char *s,
		     size_t len)
{
	if (encoding != NULL && strcasecmp(encoding, "base64") == 0)
		mime_decode_base64(out, s, len);
	else if (encoding != NULL &&
		 strcasecmp(encoding, "quoted-printable") == 0)
		mime_decode_qp(out, s, len, false);
	else
		buf_append(out, s, len);
}

/* Copy valid UTF-8, replacing each invalid byte by U+FFFD. */
static void
utf8_sanitize(struct buf *out, const char *s, size_t len)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	size_t i = 0, start = 0;

	while (i < len) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
		if (n > 0) {
			i += (size_t)n;
			continue;
		}
		buf_append(out, s + start, i - start);
		buf_append_str(out, REPLACEMENT);
		i++;
		start = i;
	}
	buf_append(out, s + start, len - start);
}

static bool
is_utf8_name(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
		strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

bool
mime_decode_charset_utf8(struct buf *out, const char *charset, const char *s,
			 size_t len)
{
	iconv_t cd;
	char tmp[1024];
	char *in = (char *)(uintptr_t)s;	/* iconv's API is not const */
	size_t inleft = len;

	if (charset == NULL || charset[0] == '\0' || is_utf8_name(charset)) {
		utf8_sanitize(out, s, len);
		return true;
	}
	cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1) {
		utf8_sanitize(out, s, len);
		return false;
	}
	while (inleft > 0) {
		char *o = tmp;
		size_t oleft = sizeof(tmp);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);

		/* iconv output is valid UTF-8; no need to sanitize. */
		buf_append(out, tmp, sizeof(tmp) - oleft);
		if (r != (size_t)-1)
			continue;
		if (errno == E2BIG)
			continue;
		buf_append_str(out, REPLACEMENT);
		if (errno == EINVAL)
			break;	/* truncated sequence at the end */
		in++;
		inleft--;
	}
	{
		/* Flush shift state (ISO-2022-JP). */
		char *o = tmp;
		size_t oleft = sizeof(tmp);

		iconv(cd, NULL, NULL, &o, &oleft);
		buf_append(out, tmp, sizeof(tmp) - oleft);
	}
	iconv_close(cd);
	return true;
}

/* Parse "=?charset?E?text?=" at s; returns its length or 0. */
static size_t
encoded_word(const char *s, size_t len, struct buf *charset, char *enc_r,
	     const char **text_r, size_t *text_len_r)
{
	const char *q1, *q2, *q3, *end = s + len;

	if (len < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	q1 = memchr(s + 2, '?', len - 2);
	if (q1 == NULL || q1 == s + 2 || q1 + 3 >= end || q1[2] != '?')
		return 0;
	*enc_r = q1[1];
	if (*enc_r != 'Q' && *enc_r != 'q' && *enc_r != 'B' && *enc_r != 'b')
		return 0;
	q2 = q1 + 2;
	for (q3 = q2 + 1; q3 + 1 < end; q3++) {
		if (q3[0] == '?' && q3[1] == '=')
			break;
		if (q3[0] == ' ' || q3[0] == '\t')
			return 0;
	}
	if (q3 + 1 >= end)
		return 0;
	buf_reset(charset);
	buf_append(charset, s + 2, (size_t)(q1 - (s + 2)));
	{
		/* RFC 2231 section 5: charset*language. */
		char *star = strchr(charset->data, '*');

		if (star != NULL) {
			*star = '\0';
			charset->len = (size_t)(star - charset->data);
		}
	}
	*text_r = q2 + 1;
	*text_len_r = (size_t)(q3 - (q2 + 1));
	return (size_t)(q3 + 2 - s);
}

void
mime_decode_header_utf8(struct buf *out, const char *s, size_t len)
{
	struct buf charset, raw;
	size_t i = 0, plain = 0, after_word = (size_t)-1;

	buf_init(&charset, 0);
	buf_init(&raw, 0);
	buf_append(&charset, "", 0);
	while (i < len) {
		const char *text;
		size_t tlen, n;
		char enc;

		if (s[i] != '=' ||
		    (n = encoded_word(s + i, len - i, &charset, &enc, &text,
				      &tlen)) == 0) {
			i++;
			continue;
		}
		/* Only blanks between two encoded-words are dropped. */
		if (after_word != (size_t)-1 && after_word == plain) {
			size_t k;

			for (k = plain; k < i; k++) {
				if (s[k] != ' ' && s[k] != '\t' &&
				    s[k] != '\r' && s[k] != '\n')
					break;
			}
			if (k == i)
				plain = i;
		}
		utf8_sanitize(out, s + plain, i - plain);
		buf_reset(&raw);
		if (enc == 'Q' || enc == 'q')
			mime_decode_qp(&raw, text, tlen, true);
		else
			mime_decode_base64(&raw, text, tlen);
		mime_decode_charset_utf8(out, charset.data, raw.data != NULL ?
					 raw.data : "", raw.len);
		i += n;
		plain = i;
		after_word = i;
	}
	utf8_sanitize(out, s + plain, len - plain);
	buf_free(&charset);
	buf_free(&raw);
}
