#include "core/base64.h"

#include <stdbool.h>
#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1 outside the alphabet ('=' included). */
static int
value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void
base64_encode(const unsigned char *in, size_t len, char *out)
{
	uint32_t v;

	for (; len >= 3; in += 3, len -= 3) {
		v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
		*out++ = alphabet[v >> 18];
		*out++ = alphabet[(v >> 12) & 63];
		*out++ = alphabet[(v >> 6) & 63];
		*out++ = alphabet[v & 63];
	}
	if (len > 0) {
		v = (uint32_t)in[0] << 16;
		if (len == 2)
			v |= (uint32_t)in[1] << 8;
		*out++ = alphabet[v >> 18];
		*out++ = alphabet[(v >> 12) & 63];
		*out++ = len == 2 ? alphabet[(v >> 6) & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

/*
 * Only the last quantum may carry padding, as "xx==" or "xxx=".  The bits
 * that padding leaves over must be zero: RFC 4648 section 3.5 lets a
 * decoder refuse them, and accepting them would give one byte string many
 * encodings.
 */
long
base64_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t n = 0, pad = 0;
	int v[4];
	uint32_t bits;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && p[len - 1] == '=')
		pad = p[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;

		for (int j = 0; j < 4; j++) {
			if (last && j >= 4 - (int)pad)
				v[j] = 0;
			else if ((v[j] = value(p[i + j])) < 0)
				return -1;
		}
		bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[n++] = (unsigned char)(bits >> 16);
		if (last && pad == 2) {
			if ((bits & 0xffff) != 0)
				return -1;
			break;
		}
		out[n++] = (unsigned char)(bits >> 8);
		if (last && pad == 1) {
			if ((bits & 0xff) != 0)
				return -1;
			break;
		}
		out[n++] = (unsigned char)bits;
	}
	return (long)n;
}
