/* Mailbox name validation and the Maildir++ folder encoding (store.h). */
#include "store/store_private.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool
store_name_is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

/* Length of the UTF-8 sequence at s, or 0 if invalid (overlong forms,
 * surrogates and code points above U+10FFFF are invalid, RFC 3629). */
static size_t
utf8_seq_len(const unsigned char *s)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int
store_name_normalize(const char *name, char *out, struct store_error *err)
{
	size_t len = strlen(name), comp_start = 0;
	unsigned levels = 1;
	char folder[512];

	if (len == 0)
		return store_error_set(err, STORE_ERR_BADNAME,
		    "Mailbox name is empty");
	if (len > STORE_NAME_MAX)
		return store_error_set(err, STORE_ERR_LIMIT,
		    "Mailbox name is too long");
	for (size_t i = 0; i <= len;) {
		const unsigned char c = (unsigned char)name[i];
		size_t n;

		if (c == '/' || c == '\0') {
			size_t clen = i - comp_start;

			if (clen == 0)
				return store_error_set(err, STORE_ERR_BADNAME,
				    "Mailbox name has an empty component");
			if ((clen == 1 && name[comp_start] == '.') ||
			    (clen == 2 && name[comp_start] == '.' &&
			    name[comp_start + 1] == '.'))
				return store_error_set(err, STORE_ERR_BADNAME,
				    "Mailbox name has a '.' or '..' component");
			if (c == '\0')
				break;
			if (++levels > STORE_NAME_MAX_LEVELS)
				return store_error_set(err, STORE_ERR_LIMIT,
				    "Mailbox hierarchy is too deep");
			comp_start = ++i;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			return store_error_set(err, STORE_ERR_BADNAME,
			    "Mailbox name contains control characters");
		if (c == '*' || c == '%')
			return store_error_set(err, STORE_ERR_BADNAME,
			    "Mailbox name contains a wildcard");
		n = utf8_seq_len((const unsigned char *)name + i);
		if (n == 0)
			return store_error_set(err, STORE_ERR_BADNAME,
			    "Mailbox name is not valid UTF-8");
		i += n;
	}
	memcpy(out, name, len + 1);
	/* RFC 3501 section 5.1: INBOX is case-insensitive, also as the first
	 * level of a hierarchy. */
	if (strncasecmp(out, "INBOX", 5) == 0 &&
	    (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	if (!store_name_to_folder(out, folder, 256))
		return store_error_set(err, STORE_ERR_LIMIT,
		    "Mailbox name is too long");
	return 0;
}

static bool
needs_escape(unsigned char c)
{
	return c == '.' || c == '%' || c == '/' || c < 0x20 || c == 0x7f;
}

bool
store_name_to_folder(const char *name, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (strcmp(name, "INBOX") == 0) {
		if (size == 0)
			return false;
		out[0] = '\0';
		return true;
	}
	if (size < 2)
		return false;
	out[o++] = '.';
	for (const char *p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '/') {
			if (o + 1 >= size)
				return false;
			out[o++] = '.';
		} else if (needs_escape(c)) {
			if (o + 3 >= size)
				return false;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			if (o + 1 >= size)
				return false;
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return true;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool
store_name_from_folder(const char *folder, char *out, size_t size)
{
	size_t o = 0;

	if (folder[0] != '.' || folder[1] == '.' || folder[1] == '\0')
		return false;
	for (const char *p = folder + 1; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			c = '/';
		} else if (c == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

			if (lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			if (c == '/' || c == '\0')
				return false;
			p += 2;
		}
		if (o + 1 >= size)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}
