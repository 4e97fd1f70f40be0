#include "auth/password.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/xmalloc.h"
#include "log/log.h"

/*
 * How a scheme verifies and hashes.  A crypt scheme accepts only stored
 * strings starting with one of its prefixes; "" accepts any crypt(3)
 * string.
 */
enum scheme_kind {
	SCHEME_PLAIN,
	SCHEME_CRYPT,
};

struct scheme {
	const char *name; /* canonical name written by password_hash */
	enum scheme_kind kind;
	const char *gensalt_prefix;  /* NULL = libcrypt's preferred method */
	unsigned long gensalt_count; /* 0 = libcrypt's default cost */
	const char *prefixes[4];     /* accepted stored prefixes */
};

static const struct scheme schemes[] = {
    {"PLAIN", SCHEME_PLAIN, NULL, 0, {NULL}},
    {"CLEAR", SCHEME_PLAIN, NULL, 0, {NULL}},
    {"CLEARTEXT", SCHEME_PLAIN, NULL, 0, {NULL}},
    /* CRYPT verifies any crypt(3) string (also DES and MD5 from old
     * files) and hashes with libcrypt's preferred method (yescrypt on
     * Debian). */
    {"CRYPT", SCHEME_CRYPT, NULL, 0, {"", NULL}},
    /* 5000 rounds (the crypt default) keeps Dovecot's cost. */
    {"SHA512-CRYPT", SCHEME_CRYPT, "$6$", 0, {"$6$", NULL}},
    {"SHA256-CRYPT", SCHEME_CRYPT, "$5$", 0, {"$5$", NULL}},
    /* libcrypt's default bcrypt cost is 5; 10 is the usual minimum. */
    {"BLF-CRYPT", SCHEME_CRYPT, "$2b$", 10, {"$2b$", "$2y$", "$2a$", NULL}},
};

/*
 * A SHA512-CRYPT string of a random password, with the default 5000
 * rounds so a dummy check costs what a real SHA512-CRYPT check costs.
 */
#define DUMMY_HASH                                                             \
	"$6$heraldDummySalt$zl10Lw4v5Zu8qaXJCWXgYMNZPviYCt8mwlCJ"              \
	"XHI0/IFQRI0f3eJ5oKLQiDpFoTTk0HUwdATM.sBxOHrbNVL/l/"

#define SALT_RANDOM_BYTES 16

_Static_assert(PASSWORD_MAX_LEN < CRYPT_MAX_PASSPHRASE_SIZE,
               "PASSWORD_MAX_LEN must fit libxcrypt's passphrase limit");

/* Unknown scheme names already logged (a few; then we stop logging). */
#define UNKNOWN_LOGGED_MAX 8
static pthread_mutex_t unknown_lock = PTHREAD_MUTEX_INITIALIZER;
static char unknown_logged[UNKNOWN_LOGGED_MAX][33];
static unsigned unknown_logged_count;

static const struct scheme *
scheme_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		if (strlen(schemes[i].name) == len &&
		    strncasecmp(schemes[i].name, name, len) == 0)
			return &schemes[i];
	}
	return NULL;
}

bool
password_scheme_supported(const char *scheme)
{
	const struct scheme *s;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	char rbytes[SALT_RANDOM_BYTES] = {0};

	if (scheme == NULL)
		return true;
	if ((s = scheme_find(scheme, strlen(scheme))) == NULL)
		return false;
	if (s->kind != SCHEME_CRYPT || s->gensalt_prefix == NULL)
		return true;
	/* A libcrypt built without bcrypt refuses the prefix here. */
	return crypt_gensalt_rn(s->gensalt_prefix, s->gensalt_count, rbytes,
	                        sizeof(rbytes), setting,
	                        sizeof(setting)) != NULL;
}

static void
log_unknown_scheme(const char *name, size_t len)
{
	bool seen = false;

	if (len > 32)
		len = 32;
	pthread_mutex_lock(&unknown_lock);
	for (unsigned i = 0; i < unknown_logged_count; i++) {
		if (strlen(unknown_logged[i]) == len &&
		    strncasecmp(unknown_logged[i], name, len) == 0)
			seen = true;
	}
	if (!seen && unknown_logged_count < UNKNOWN_LOGGED_MAX) {
		memcpy(unknown_logged[unknown_logged_count], name, len);
		unknown_logged[unknown_logged_count][len] = '\0';
		unknown_logged_count++;
	} else
		seen = true;
	pthread_mutex_unlock(&unknown_lock);
	if (!seen)
		log_warnx("passdb: unknown password scheme '%.*s'", (int)len,
		          name);
}

/*
 * Compare a and b without leaking through timing where they differ, nor
 * (for PLAIN) how long the stored password is: both sides are hashed first
 * and the digests compared.
 */
static bool
secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;
	bool eq;

	if (EVP_Digest(a, alen, da, &la, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(b, blen, db, &lb, EVP_sha256(), NULL) != 1 || la != lb)
		fatalx("password: SHA-256 digest failed");
	eq = CRYPTO_memcmp(da, db, la) == 0;
	explicit_bzero(da, sizeof(da));
	explicit_bzero(db, sizeof(db));
	return eq;
}

/* crypt(3) check of password against a full crypt string. */
static bool
crypt_verify(const char *stored, const char *password)
{
	struct crypt_data *cd;
	const char *out;
	size_t len = strlen(stored);
	bool ok = false;

	/* UNSAFE: struct crypt_data is 32 KiB, too much for a thread pool
	 * stack; xmalloc zeroes it as crypt_rn requires. */
	cd = xmalloc(sizeof(*cd));
	out = crypt_rn(password, stored, cd, sizeof(*cd));
	/* A failed crypt_rn returns NULL; "*" strings are never valid. */
	if (out != NULL && out[0] != '*' && strlen(out) == len)
		ok = CRYPTO_memcmp(out, stored, len) == 0;
	xfree_secret(cd, sizeof(*cd));
	return ok;
}

static bool
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
password_verify(const char *stored, const char *password)
{
	const struct scheme *s;
	const char *data, *end;
	size_t plen = strlen(password);

	if (plen == 0 || plen > PASSWORD_MAX_LEN || stored[0] == '\0')
		return false;
	if (stored[0] == '{' && (end = strchr(stored, '}')) != NULL) {
		s = scheme_find(stored + 1, (size_t)(end - stored - 1));
		if (s == NULL) {
			log_unknown_scheme(stored + 1,
			                   (size_t)(end - stored - 1));
			return false;
		}
		data = end + 1;
	} else {
		/* No {SCHEME}: Dovecot's default, CRYPT, which covers the
		 * bare "$y$", "$6$", "$5$" and "$2b$" strings. */
		s = scheme_find("CRYPT", 5);
		data = stored;
	}

	if (s->kind == SCHEME_PLAIN)
		return secret_equal(data, strlen(data), password, plen);

	for (size_t i = 0; s->prefixes[i] != NULL; i++) {
		if (has_prefix(data, s->prefixes[i]))
			return crypt_verify(data, password);
	}
	return false;
}

void
password_verify_dummy(const char *password)
{
	size_t plen = strlen(password);

	/* Match password_verify: over-long passwords are refused early. */
	if (plen == 0 || plen > PASSWORD_MAX_LEN)
		return;
	(void)crypt_verify(DUMMY_HASH, password);
}

static int
random_bytes(void *p, size_t n)
{
	unsigned char *u = p;

	while (n > 0) {
		ssize_t r = getrandom(u, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		u += r;
		n -= (size_t)r;
	}
	return 0;
}

char *
password_hash(const char *password, const char *scheme, const char **error_r)
{
	const struct scheme *s;
	struct crypt_data *cd;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	char rbytes[SALT_RANDOM_BYTES];
	const char *out;
	char *result;
	size_t plen = strlen(password);

	if (scheme == NULL)
		scheme = PASSWORD_DEFAULT_SCHEME;
	if ((s = scheme_find(scheme, strlen(scheme))) == NULL) {
		*error_r = "unknown password scheme";
		return NULL;
	}
	if (plen == 0) {
		*error_r = "empty password";
		return NULL;
	}
	if (plen > PASSWORD_MAX_LEN) {
		*error_r = "password too long";
		return NULL;
	}
	if (s->kind == SCHEME_PLAIN)
		return xasprintf("{%s}%s", s->name, password);

	if (random_bytes(rbytes, sizeof(rbytes)) < 0) {
		*error_r = "cannot get random bytes for the salt";
		return NULL;
	}
	out = crypt_gensalt_rn(s->gensalt_prefix, s->gensalt_count, rbytes,
	                       sizeof(rbytes), setting, sizeof(setting));
	explicit_bzero(rbytes, sizeof(rbytes));
	if (out == NULL) {
		*error_r = "password scheme not supported by libcrypt";
		return NULL;
	}
	cd = xmalloc(sizeof(*cd));
	out = crypt_rn(password, setting, cd, sizeof(*cd));
	if (out == NULL || out[0] == '*') {
		xfree_secret(cd, sizeof(*cd));
		*error_r = "crypt() failed";
		return NULL;
	}
	result = xasprintf("{%s}%s", s->name, out);
	xfree_secret(cd, sizeof(*cd));
	return result;
}
