/*
 * SASL helpers: the PLAIN mechanism (RFC 4616).
 */
#ifndef HERALD_AUTH_SASL_H
#define HERALD_AUTH_SASL_H

#include <stddef.h>

/*
 * Split a decoded PLAIN message "authzid NUL authcid NUL passwd".  Returns 0
 * with malloc'ed strings (authzid may be "" when absent), or -1 when the
 * message is malformed (wrong number of NULs, empty authcid or password,
 * fields over 255 / 1024 bytes).  Callers wipe passwd with xfree_secret().
 */
int sasl_plain_parse(const unsigned char *msg, size_t len, char **authzid_r,
    char **authcid_r, char **passwd_r);

#endif
