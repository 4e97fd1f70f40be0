/*
 * Password schemes: verification of known strings for every scheme, bare
 * crypt strings, unknown schemes, and hash-then-verify round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/password.h"
#include "core/xmalloc.h"

/* Reference strings computed with libxcrypt; SHA512 is Drepper's example. */
#define SHA512_HELLO                                                           \
	"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O81"                \
	"7G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
#define SHA512_ROUNDS_SECRET                                                   \
	"$6$rounds=1000$saltstring$2BkAo106CG84raQcWp"                         \
	"Alhyy6TSSkAsL1nfvBCoezLYyerUzY2l8axTvq6NynEt7SQAx3/cdop9ds0po8uaeHq0"
#define SHA256_HELLO                                                           \
	"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGW"               \
	"Ec5"
#define BCRYPT_SECRET_SALT                                                     \
	"abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"
#define BCRYPT_2B_SECRET "$2b$04$" BCRYPT_SECRET_SALT
#define BCRYPT_2Y_SECRET "$2y$04$" BCRYPT_SECRET_SALT
#define BCRYPT_2A_SECRET "$2a$04$" BCRYPT_SECRET_SALT
#define YESCRYPT_SECRET                                                        \
	"$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT9"                 \
	"2dRwOzDZ5XiVCe."
#define DES_SECRET "abNANd1rDfiNc"
#define MD5_SECRET "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"

static void
test_plain(void **state)
{
	assert_true(password_verify("{PLAIN}secret", "secret"));
	assert_false(password_verify("{PLAIN}secret", "Secret"));
	assert_false(password_verify("{PLAIN}secret", "secret2"));
	assert_false(password_verify("{PLAIN}secret", "secre"));
	assert_true(password_verify("{CLEAR}secret", "secret"));
	assert_false(password_verify("{CLEAR}secret", "wrong"));
	assert_true(password_verify("{CLEARTEXT}secret", "secret"));
	assert_false(password_verify("{CLEARTEXT}secret", "wrong"));
	/* Scheme names are case-insensitive. */
	assert_true(password_verify("{plain}secret", "secret"));
	assert_true(password_verify("{Clear}p{a}ss", "p{a}ss"));
	/* Braces after the scheme belong to the password. */
	assert_true(password_verify("{PLAIN}{x}", "{x}"));
	/* An empty password never matches, even an empty stored one. */
	assert_false(password_verify("{PLAIN}", ""));
	assert_false(password_verify("{PLAIN}", "x"));
	assert_false(password_verify("{PLAIN}x", ""));
}

static void
test_sha512_crypt(void **state)
{
	assert_true(
	    password_verify("{SHA512-CRYPT}" SHA512_HELLO, "Hello world!"));
	assert_false(
	    password_verify("{SHA512-CRYPT}" SHA512_HELLO, "Hello world"));
	assert_true(
	    password_verify("{sha512-crypt}" SHA512_ROUNDS_SECRET, "secret"));
	assert_false(
	    password_verify("{SHA512-CRYPT}" SHA512_ROUNDS_SECRET, "secreT"));
	/* The scheme must match the string. */
	assert_false(
	    password_verify("{SHA512-CRYPT}" SHA256_HELLO, "Hello world!"));
	assert_false(password_verify("{SHA512-CRYPT}" DES_SECRET, "secret"));
}

static void
test_sha256_crypt(void **state)
{
	assert_true(
	    password_verify("{SHA256-CRYPT}" SHA256_HELLO, "Hello world!"));
	assert_false(
	    password_verify("{SHA256-CRYPT}" SHA256_HELLO, "hello world!"));
	assert_false(
	    password_verify("{SHA256-CRYPT}" SHA512_HELLO, "Hello world!"));
}

static void
test_blf_crypt(void **state)
{
	if (!password_scheme_supported("BLF-CRYPT"))
		skip();
	assert_true(password_verify("{BLF-CRYPT}" BCRYPT_2B_SECRET, "secret"));
	assert_false(
	    password_verify("{BLF-CRYPT}" BCRYPT_2B_SECRET, "secret!"));
	assert_true(password_verify("{BLF-CRYPT}" BCRYPT_2Y_SECRET, "secret"));
	assert_true(password_verify("{blf-crypt}" BCRYPT_2A_SECRET, "secret"));
	assert_false(
	    password_verify("{BLF-CRYPT}" SHA512_HELLO, "Hello world!"));
}

static void
test_crypt(void **state)
{
	/* {CRYPT} takes any crypt(3) string. */
	assert_true(password_verify("{CRYPT}" SHA512_HELLO, "Hello world!"));
	assert_true(password_verify("{CRYPT}" YESCRYPT_SECRET, "secret"));
	assert_false(password_verify("{CRYPT}" YESCRYPT_SECRET, "secret "));
	assert_true(password_verify("{crypt}" DES_SECRET, "secret"));
	assert_false(password_verify("{CRYPT}" DES_SECRET, "wrong"));
	assert_true(password_verify("{CRYPT}" MD5_SECRET, "secret"));
	/* Locked or invalid strings never match. */
	assert_false(password_verify("{CRYPT}*", "secret"));
	assert_false(password_verify("{CRYPT}!" SHA512_HELLO, "Hello world!"));
	assert_false(password_verify("{CRYPT}", "secret"));
	assert_false(password_verify("{CRYPT}$6$", "secret"));
}

static void
test_bare_crypt(void **state)
{
	assert_true(password_verify(SHA512_HELLO, "Hello world!"));
	assert_false(password_verify(SHA512_HELLO, "Hello world?"));
	assert_true(password_verify(SHA256_HELLO, "Hello world!"));
	assert_false(password_verify(SHA256_HELLO, "x"));
	assert_true(password_verify(YESCRYPT_SECRET, "secret"));
	assert_false(password_verify(YESCRYPT_SECRET, "Secret"));
	if (password_scheme_supported("BLF-CRYPT")) {
		assert_true(password_verify(BCRYPT_2B_SECRET, "secret"));
		assert_false(password_verify(BCRYPT_2B_SECRET, "secrets"));
	}
	/* A truncated or tampered hash does not match. */
	assert_false(password_verify(
	    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8"
	    "iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz",
	    "Hello world!"));
	assert_false(password_verify(
	    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8"
	    "iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz2",
	    "Hello world!"));
	/* A brace without a closing brace is a (bad) crypt string. */
	assert_false(password_verify("{PLAIN", "{PLAIN"));
	assert_false(password_verify("", "x"));
}

/* Run fn with stderr in a temporary file; return what it wrote. */
static char *
capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/herald-test-XXXXXX";
	int fd = mkstemp(path), saved;
	char *out;
	long n;
	FILE *f;

	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fdopen(fd, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	out = xmalloc((size_t)n + 1);
	assert_int_equal(fread(out, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	return out;
}

static void
verify_unknown_twice(void)
{
	assert_false(password_verify("{NOSUCH}secret", "secret"));
	assert_false(password_verify("{nosuch}secret", "secret"));
	assert_false(password_verify("{MD5}secret", "secret"));
}

static void
test_unknown_scheme(void **state)
{
	char *out = capture_stderr(verify_unknown_twice);
	const char *p;
	int n = 0;

	/* Logged once per scheme, without the stored data or password. */
	for (p = out; (p = strstr(p, "unknown password scheme")) != NULL; p++)
		n++;
	assert_int_equal(n, 2);
	assert_non_null(strstr(out, "'NOSUCH'"));
	assert_non_null(strstr(out, "'MD5'"));
	assert_null(strstr(out, "secret"));
	free(out);
	assert_false(password_verify("{}secret", "secret"));
}

static void
test_long_password(void **state)
{
	char *pw = xmalloc(PASSWORD_MAX_LEN + 2);
	char *stored;
	const char *error = NULL;

	memset(pw, 'a', PASSWORD_MAX_LEN);
	stored = password_hash(pw, "SHA512-CRYPT", &error);
	assert_non_null(stored);
	assert_true(password_verify(stored, pw));
	free(stored);
	pw[PASSWORD_MAX_LEN] = 'a';
	assert_null(password_hash(pw, "SHA512-CRYPT", &error));
	assert_non_null(error);
	stored = xasprintf("{PLAIN}%s", pw);
	assert_false(password_verify(stored, pw));
	free(stored);
	free(pw);
}

static void
round_trip(const char *scheme, const char *expect_prefix)
{
	const char *error = NULL;
	char *h1, *h2;

	h1 = password_hash("correct horse", scheme, &error);
	assert_non_null(h1);
	assert_null(error);
	assert_true(strncmp(h1, expect_prefix, strlen(expect_prefix)) == 0);
	assert_true(password_verify(h1, "correct horse"));
	assert_false(password_verify(h1, "correct horsE"));
	assert_false(password_verify(h1, "correct hors"));
	/* A fresh salt each time (PLAIN has none). */
	h2 = password_hash("correct horse", scheme, &error);
	assert_non_null(h2);
	if (strncmp(expect_prefix, "{PLAIN}", 7) != 0 &&
	    strncmp(expect_prefix, "{CLEAR", 6) != 0)
		assert_string_not_equal(h1, h2);
	assert_true(password_verify(h2, "correct horse"));
	free(h1);
	free(h2);
}

static void
test_round_trip(void **state)
{
	round_trip(NULL, "{SHA512-CRYPT}$6$");
	round_trip("SHA512-CRYPT", "{SHA512-CRYPT}$6$");
	round_trip("sha512-crypt", "{SHA512-CRYPT}$6$");
	round_trip("SHA256-CRYPT", "{SHA256-CRYPT}$5$");
	round_trip("CRYPT", "{CRYPT}$");
	round_trip("PLAIN", "{PLAIN}correct horse");
	round_trip("CLEAR", "{CLEAR}correct horse");
	round_trip("cleartext", "{CLEARTEXT}correct horse");
	if (password_scheme_supported("BLF-CRYPT"))
		round_trip("BLF-CRYPT", "{BLF-CRYPT}$2b$10$");
}

static void
test_hash_errors(void **state)
{
	const char *error = NULL;

	assert_null(password_hash("pw", "NOSUCH", &error));
	assert_string_equal(error, "unknown password scheme");
	error = NULL;
	assert_null(password_hash("pw", "", &error));
	assert_non_null(error);
	error = NULL;
	assert_null(password_hash("", NULL, &error));
	assert_non_null(error);
	assert_false(password_scheme_supported("NOSUCH"));
	assert_false(password_scheme_supported(""));
	assert_true(password_scheme_supported(NULL));
	assert_true(password_scheme_supported("plain"));
	assert_true(password_scheme_supported("SHA256-CRYPT"));
	assert_true(password_scheme_supported("CRYPT"));
}

static void
test_dummy(void **state)
{
	/* Only checks that it runs; its purpose is its duration. */
	password_verify_dummy("whatever");
	password_verify_dummy("");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_sha512_crypt),
	    cmocka_unit_test(test_sha256_crypt),
	    cmocka_unit_test(test_blf_crypt),
	    cmocka_unit_test(test_crypt),
	    cmocka_unit_test(test_bare_crypt),
	    cmocka_unit_test(test_unknown_scheme),
	    cmocka_unit_test(test_long_password),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_hash_errors),
	    cmocka_unit_test(test_dummy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
