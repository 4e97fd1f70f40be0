/*
 * Shared by the test_mime*.c binaries: a strict checker for one IMAP
 * value (RFC 9051 section 4): NIL, atom or number, quoted string, literal
 * {n}\r\n with exactly n bytes, or a parenthesised list whose elements are
 * separated by one space (none before a nested list, as in a multipart
 * body structure).
 */
#ifndef HERALD_TEST_MIME_CHECK_H
#define HERALD_TEST_MIME_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

static bool
imap_check_value(const char **pp, const char *end, unsigned int depth)
{
	const char *p = *pp;

	if (p >= end || depth > 1000)
		return false;
	if (*p == '(') {
		p++;
		if (p < end && *p == ')') {
			*pp = p + 1;
			return true;
		}
		for (;;) {
			if (!imap_check_value(&p, end, depth + 1))
				return false;
			if (p >= end)
				return false;
			if (*p == ')') {
				*pp = p + 1;
				return true;
			}
			if (*p == ' ')
				p++;
			else if (*p != '(')
				return false;
		}
	}
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\r' || *p == '\n' || *p == '\0' ||
			    (unsigned char)*p >= 0x80)
				return false;
			if (*p == '\\') {
				p++;
				if (p >= end || (*p != '"' && *p != '\\'))
					return false;
			}
		}
		if (p >= end)
			return false;
		*pp = p + 1;
		return true;
	}
	if (*p == '{') {
		char *e;
		unsigned long n = strtoul(p + 1, &e, 10);

		if (e == p + 1 || e + 3 > end || e[0] != '}' || e[1] != '\r' ||
		    e[2] != '\n' || (size_t)(end - (e + 3)) < n)
			return false;
		*pp = e + 3 + n;
		return true;
	}
	while (p < end && *p != ' ' && *p != ')' && *p != '(') {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    *p == '"' || *p == '{' || *p == '\\')
			return false;
		p++;
	}
	if (p == *pp)
		return false;
	*pp = p;
	return true;
}

/* True if [s, s+len) is exactly one well-formed IMAP value. */
static inline bool
imap_check(const char *s, size_t len)
{
	const char *p = s;

	return imap_check_value(&p, s + len, 0) && p == s + len;
}

#endif
