/*
 * Password schemes in Dovecot's notation: "{SCHEME}data" or a bare crypt(3)
 * string ("$y$...", "$6$...", "$5$...", "$2b$...").
 *
 * Schemes: PLAIN (and CLEAR, CLEARTEXT), CRYPT, SHA512-CRYPT, SHA256-CRYPT,
 * BLF-CRYPT (where libcrypt has bcrypt), and the bare crypt strings.
 * Verification compares in constant time.
 */
#ifndef HERALD_AUTH_PASSWORD_H
#define HERALD_AUTH_PASSWORD_H

#include <stdbool.h>

/* Passwords longer than this never match and cannot be hashed, in any
 * scheme: libxcrypt refuses longer ones (CRYPT_MAX_PASSPHRASE_SIZE - 1). */
#define PASSWORD_MAX_LEN 511
#define PASSWORD_DEFAULT_SCHEME "SHA512-CRYPT"

/* True when password matches stored.  Unknown schemes never match (and are
 * logged once). */
bool password_verify(const char *stored, const char *password);

/* Hash password with scheme ("SHA512-CRYPT", "BLF-CRYPT", "PLAIN", ...;
 * NULL = SHA512-CRYPT) and a fresh random salt.  Returns a malloc'ed
 * "{SCHEME}..." string, or NULL with *error_r for an unknown scheme. */
char *password_hash(const char *password, const char *scheme,
    const char **error_r);

/* A dummy verification taking about as long as a real one, so that an
 * unknown user cannot be told from a wrong password by timing. */
void password_verify_dummy(const char *password);

/* True when password_hash() can hash with scheme (case-insensitive; NULL
 * = the default), e.g. to check "-s SCHEME" before asking for a password. */
bool password_scheme_supported(const char *scheme);

#endif
