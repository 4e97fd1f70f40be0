#include "imap/mutf7.h"

#include "core/buf.h"

#include <stdint.h>
#include <string.h>

/* RFC 3501 5.1.3: base64 with ',' in place of '/'. */
static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64val(unsigned char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(b64chars, c);
	return p == NULL ? -1 : (int)(p - b64chars);
}

static void
put_utf8(struct buf *out, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, u, n);
}

/*
 * One UTF-16 unit of a run.  *high holds a pending high surrogate.  Lone or
 * reversed surrogates, printable ASCII (which must be written directly) and
 * control characters (no more welcome encoded than raw; U+0000 would even
 * cut the C string short) are refused.
 */
static bool
put_unit(struct buf *out, uint32_t u, uint32_t *high)
{
	if (*high != 0) {
		if (u < 0xdc00 || u > 0xdfff)
			return false;
		put_utf8(out, 0x10000 + ((*high - 0xd800) << 10) +
		    (u - 0xdc00));
		*high = 0;
		return true;
	}
	if (u >= 0xd800 && u <= 0xdbff) {
		*high = u;
		return true;
	}
	if ((u >= 0xdc00 && u <= 0xdfff) || u < 0x20 || u == 0x7f ||
	    (u >= 0x20 && u <= 0x7e))
		return false;
	put_utf8(out, u);
	return true;
}

/* Decode one "&...-" run starting after the '&'; *pp ends after '-'. */
static bool
decode_run(const char **pp, struct buf *out)
{
	const char *p = *pp;
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0, units = 0;

	for (; *p != '-'; p++) {
		int v = b64val((unsigned char)*p);

		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		units++;
		if (!put_unit(out, (bits >> nbits) & 0xffff, &high))
			return false;
		bits &= (1u << nbits) - 1;
	}
	/* Leftover bits: fewer than 6, all zero; no dangling surrogate. */
	if (units == 0 || high != 0 || nbits >= 6 || bits != 0)
		return false;
	*pp = p + 1;
	return true;
}

bool
mutf7_decode(const char *in, struct buf *out)
{
	const char *p = in;
	bool prev_run = false;

	while (*p != '\0') {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c > 0x7e)
			return false;
		if (c != '&') {
			buf_append(out, p, 1);
			p++;
			prev_run = false;
			continue;
		}
		p++;
		if (*p == '-') {
			buf_append(out, "&", 1);
			p++;
			prev_run = false;
			continue;
		}
		/* Two adjacent runs must have been written as one. */
		if (prev_run)
			return false;
		if (!decode_run(&p, out))
			return false;
		prev_run = true;
	}
	return true;
}

/* Next code point of UTF-8 at *pp, or -1 if invalid. */
static int32_t
utf8_next(const unsigned char **pp)
{
	const unsigned char *p = *pp;
	uint32_t cp;
	unsigned n;

	if (p[0] < 0x80) {
		*pp = p + 1;
		return p[0];
	}
	if ((p[0] & 0xe0) == 0xc0) {
		cp = p[0] & 0x1f;
		n = 1;
	} else if ((p[0] & 0xf0) == 0xe0) {
		cp = p[0] & 0x0f;
		n = 2;
	} else if ((p[0] & 0xf8) == 0xf0) {
		cp = p[0] & 0x07;
		n = 3;
	} else {
		return -1;
	}
	for (unsigned i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
	    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*pp = p + n + 1;
	return (int32_t)cp;
}

static void
put_b64(struct buf *out, uint32_t v)
{
	buf_append(out, &b64chars[v & 0x3f], 1);
}

bool
mutf7_encode(const char *in, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;

	while (*p != '\0') {
		uint32_t bits = 0;
		unsigned nbits = 0;

		if (*p >= 0x20 && *p <= 0x7e) {
			if (*p == '&')
				buf_append(out, "&-", 2);
			else
				buf_append(out, p, 1);
			p++;
			continue;
		}
		buf_append(out, "&", 1);
		while (*p != '\0' && !(*p >= 0x20 && *p <= 0x7e)) {
			int32_t cp = utf8_next(&p);
			uint32_t units[2];
			unsigned nu;

			if (cp < 0)
				return false;
			if (cp >= 0x10000) {
				uint32_t v = (uint32_t)cp - 0x10000;

				units[0] = 0xd800 + (v >> 10);
				units[1] = 0xdc00 + (v & 0x3ff);
				nu = 2;
			} else {
				units[0] = (uint32_t)cp;
				nu = 1;
			}
			for (unsigned i = 0; i < nu; i++) {
				bits = (bits << 16) | units[i];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					put_b64(out, bits >> nbits);
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0)
			put_b64(out, bits << (6 - nbits));
		buf_append(out, "-", 1);
	}
	return true;
}
