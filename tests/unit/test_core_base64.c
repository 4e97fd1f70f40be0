#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"

/* RFC 4648 section 10. */
static const struct {
	const char *plain, *encoded;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_encode_vectors(void **state)
{
	char out[64];

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		size_t len = strlen(vectors[i].plain);

		memset(out, 'x', sizeof(out));
		base64_encode((const unsigned char *)vectors[i].plain, len,
		    out);
		assert_string_equal(out, vectors[i].encoded);
		assert_int_equal(base64_encoded_len(len),
		    strlen(vectors[i].encoded));
	}
}

static void
test_decode_vectors(void **state)
{
	unsigned char out[64];

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *enc = vectors[i].encoded;
		size_t plen = strlen(vectors[i].plain);
		long n;

		assert_true(base64_decoded_max(strlen(enc)) >= plen);
		n = base64_decode(enc, strlen(enc), out);
		assert_int_equal(n, (long)plen);
		assert_memory_equal(out, vectors[i].plain, plen);
	}
}

static void
test_decode_empty(void **state)
{
	unsigned char out[4] = { 0 };

	assert_int_equal(base64_decode("", 0, out), 0);
	/* A NULL input with zero length must be fine as well. */
	assert_int_equal(base64_decode(NULL, 0, out), 0);
}

/* Every byte value, at every length mod 3, survives a round trip. */
static void
test_roundtrip_binary(void **state)
{
	unsigned char in[258], out[258 + 3];
	char enc[base64_encoded_len(258) + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(in); len++) {
		size_t elen;

		base64_encode(in, len, enc);
		elen = strlen(enc);
		assert_int_equal(elen, base64_encoded_len(len));
		assert_true(base64_decoded_max(elen) <= sizeof(out));
		assert_int_equal(base64_decode(enc, elen, out), (long)len);
		assert_memory_equal(out, in, len);
	}
}

static void
test_decode_high_bits(void **state)
{
	unsigned char out[8];

	assert_int_equal(base64_decode("////", 4, out), 3);
	assert_int_equal(out[0], 0xff);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(out[2], 0xff);
	assert_int_equal(base64_decode("+/8=", 4, out), 2);
	assert_int_equal(out[0], 0xfb);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(base64_decode("AA==", 4, out), 1);
	assert_int_equal(out[0], 0);
}

static void
test_decode_rejects(void **state)
{
	static const char *const bad[] = {
		"Z",		/* bad length */
		"Zg",
		"Zg=",
		"Zm9vY",
		"Zg==Zg==",	/* data after padding */
		"Zg==Zm9v",
		"Zm8=Zm9v",
		"Zg=A",		/* padding in the middle of a quantum */
		"Z=g=",
		"=Zg=",
		"Z===",		/* too much padding */
		"====",
		"Zm9v====",
		"Zh==",		/* non-zero bits under the padding */
		"Zm9=",
		"Zm 9",		/* characters outside the alphabet */
		"Zm9v\r\n",
		"Zm9\n",
		"Zm9-",		/* URL-safe alphabet is not base64 */
		"Zm9_",
		"Zm9v!A==",
		"Zm9\x80",
		"\xff\xff\xff\xff",
	};
	unsigned char out[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (base64_decode(bad[i], strlen(bad[i]), out) != -1)
			fail_msg("accepted '%s'", bad[i]);
	}
	/* An embedded NUL is a bad character, not the end. */
	assert_int_equal(base64_decode("Zg\0=", 4, out), -1);
	assert_int_equal(base64_decode("Zm9v\0\0\0\0", 8, out), -1);
	/* The length is what counts, not the terminator. */
	assert_int_equal(base64_decode("Zm9vYmFy", 4, out), 3);
	assert_int_equal(base64_decode("Zm9vYmFy", 7, out), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_vectors),
		cmocka_unit_test(test_decode_vectors),
		cmocka_unit_test(test_decode_empty),
		cmocka_unit_test(test_roundtrip_binary),
		cmocka_unit_test(test_decode_high_bits),
		cmocka_unit_test(test_decode_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
