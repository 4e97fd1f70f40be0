#include "auth/sasl.h"

#include <string.h>

#include "core/xmalloc.h"

/*
 * RFC 4616 section 2 requires accepting 255 octets for each field; we allow
 * longer passwords, as long as password_verify() accepts them.
 */
#define SASL_PLAIN_ID_MAX 255
#define SASL_PLAIN_PASSWD_MAX 1024

int
sasl_plain_parse(const unsigned char *msg, size_t len, char **authzid_r,
                 char **authcid_r, char **passwd_r)
{
	const unsigned char *nul1, *nul2, *authcid, *passwd;
	size_t zlen, clen, plen;

	*authzid_r = *authcid_r = *passwd_r = NULL;
	/* message = [authzid] UTF8NUL authcid UTF8NUL passwd: exactly two
	 * NULs, since none may appear inside a field. */
	if (len == 0 || (nul1 = memchr(msg, '\0', len)) == NULL)
		return -1;
	authcid = nul1 + 1;
	zlen = (size_t)(nul1 - msg);
	if ((nul2 = memchr(authcid, '\0', len - zlen - 1)) == NULL)
		return -1;
	passwd = nul2 + 1;
	clen = (size_t)(nul2 - authcid);
	plen = len - zlen - 1 - clen - 1;
	if (memchr(passwd, '\0', plen) != NULL)
		return -1;
	/* authcid and passwd are 1*SAFE; an absent authzid is allowed. */
	if (clen == 0 || plen == 0)
		return -1;
	if (zlen > SASL_PLAIN_ID_MAX || clen > SASL_PLAIN_ID_MAX ||
	    plen > SASL_PLAIN_PASSWD_MAX)
		return -1;
	*authzid_r = xstrndup((const char *)msg, zlen);
	*authcid_r = xstrndup((const char *)authcid, clen);
	*passwd_r = xstrndup((const char *)passwd, plen);
	return 0;
}
