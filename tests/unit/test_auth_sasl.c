/*
 * SASL PLAIN message parsing (RFC 4616 section 2).  Every message is copied
 * into a heap block of its exact size, so reading past it trips ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/xmalloc.h"

static int
parse(const char *msg, size_t len, char **z, char **c, char **p)
{
	unsigned char *copy = msg != NULL ? xmemdup(msg, len) : NULL;
	int ret;

	ret = sasl_plain_parse(copy, len, z, c, p);
	free(copy);
	return ret;
}

static void
expect_ok(const char *msg, size_t len, const char *authzid, const char *authcid,
          const char *passwd)
{
	char *z, *c, *p;

	assert_int_equal(parse(msg, len, &z, &c, &p), 0);
	assert_string_equal(z, authzid);
	assert_string_equal(c, authcid);
	assert_string_equal(p, passwd);
	free(z);
	free(c);
	xfree_secret(p, strlen(p));
}

static void
expect_fail(const char *msg, size_t len)
{
	char *z = (char *)1, *c = (char *)1, *p = (char *)1;

	assert_int_equal(parse(msg, len, &z, &c, &p), -1);
	assert_null(z);
	assert_null(c);
	assert_null(p);
}

#define S(lit) lit, sizeof(lit) - 1

static void
test_rfc_examples(void **state)
{
	/* Section 4: without and with an authorization identity. */
	expect_ok(S("\0tim\0tanstaaftanstaaf"), "", "tim", "tanstaaftanstaaf");
	expect_ok(S("Ursel\0Kurt\0xipj3plmq"), "Ursel", "Kurt", "xipj3plmq");
}

static void
test_content(void **state)
{
	/* Fields are form-free UTF-8 apart from NUL. */
	expect_ok(S("\0us\xc3\xa9r\0p\xe2\x82\xac ss word"), "", "us\xc3\xa9r",
	          "p\xe2\x82\xac ss word");
	expect_ok(S("a\0b\0c"), "a", "b", "c");
	expect_ok(S("\0b\0\x01\x7f"), "", "b", "\x01\x7f");
}

static void
test_missing_nuls(void **state)
{
	expect_fail(S(""));
	expect_fail(S("timtanstaaf"));
	expect_fail(S("tim\0tanstaaf"));
	expect_fail(S("\0tim"));
	expect_fail(NULL, 0);
}

static void
test_extra_nuls(void **state)
{
	/* A NUL may not appear inside the password. */
	expect_fail(S("\0tim\0tan\0staaf"));
	expect_fail(S("\0tim\0tanstaaf\0"));
	expect_fail(S("\0\0tim\0pw"));
}

static void
test_empty_fields(void **state)
{
	expect_fail(S("\0\0pw")); /* empty authcid */
	expect_fail(S("z\0\0pw"));
	expect_fail(S("\0tim\0")); /* empty passwd */
	expect_fail(S("z\0tim\0"));
	expect_fail(S("\0\0"));
}

static void
test_lengths(void **state)
{
	char msg[2048], want[1100];
	size_t n;

	/* 255 octets must be accepted for each identity (section 2). */
	memset(want, 'u', 255);
	want[255] = '\0';
	n = (size_t)snprintf(msg, sizeof(msg), "%s%c%s%cpw", want, 0, want, 0);
	expect_ok(msg, n, want, want, "pw");

	/* 256 is too long, in either identity. */
	memset(msg, 'u', 256);
	memcpy(msg + 256, "\0tim\0pw", 7);
	expect_fail(msg, 263);
	msg[0] = '\0';
	memset(msg + 1, 'u', 256);
	memcpy(msg + 257, "\0pw", 3);
	expect_fail(msg, 260);

	/* The password may have up to 1024 octets. */
	memcpy(msg, "\0tim\0", 5);
	memset(msg + 5, 'p', 1024);
	memset(want, 'p', 1024);
	want[1024] = '\0';
	expect_ok(msg, 5 + 1024, "", "tim", want);
	msg[5 + 1024] = 'p';
	expect_fail(msg, 5 + 1025);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_examples),
	    cmocka_unit_test(test_content),
	    cmocka_unit_test(test_missing_nuls),
	    cmocka_unit_test(test_extra_nuls),
	    cmocka_unit_test(test_empty_fields),
	    cmocka_unit_test(test_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
