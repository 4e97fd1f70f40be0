/*
 * libFuzzer target: the AUTHENTICATE PLAIN response, read before login
 * (src/core/base64.h, src/auth/sasl.h).
 *
 * Input: the client's base64 line.  Strict decoding into an exact-size
 * buffer of base64_decoded_max() bytes (so ASan sees any overrun), then:
 *  - a decoded string encodes to text of the same length (padding is
 *    required, no whitespace) that decodes to the same bytes;
 *  - the decoded bytes and the raw input are each split as a PLAIN
 *    message; a success gives three NUL-free strings within the documented
 *    sizes (authcid and passwd not empty) that rebuild the message;
 *  - any bytes encode to base64_encoded_len() characters that decode back.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/base64.h"
#include "log/log.h"

#include "fuzz_common.h"

static void
check_plain(const unsigned char *msg, size_t len)
{
	char *authzid = NULL, *authcid = NULL, *passwd = NULL;
	size_t lz, lc, lp;

	if (sasl_plain_parse(msg, len, &authzid, &authcid, &passwd) < 0)
		return;
	FUZZ_CHECK(authzid != NULL && authcid != NULL && passwd != NULL);
	lz = strlen(authzid);
	lc = strlen(authcid);
	lp = strlen(passwd);
	FUZZ_CHECK(lc > 0 && lp > 0);
	FUZZ_CHECK(lz <= 255 && lc <= 255 && lp <= 1024);
	/* "authzid NUL authcid NUL passwd", nothing else. */
	FUZZ_CHECK(lz + 1 + lc + 1 + lp == len);
	FUZZ_CHECK(memcmp(msg, authzid, lz) == 0 && msg[lz] == '\0');
	FUZZ_CHECK(memcmp(msg + lz + 1, authcid, lc) == 0 &&
	    msg[lz + 1 + lc] == '\0');
	FUZZ_CHECK(memcmp(msg + lz + lc + 2, passwd, lp) == 0);
	free(authzid);
	free(authcid);
	free(passwd);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_LEVEL_ERROR);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *dec;
	char *enc, *in;
	long n;

	if (size > 16384)
		return -1;
	in = malloc(size > 0 ? size : 1);
	FUZZ_CHECK(in != NULL);
	if (size > 0)
		memcpy(in, data, size);

	dec = malloc(base64_decoded_max(size));
	FUZZ_CHECK(dec != NULL);
	n = base64_decode(in, size, dec);
	FUZZ_CHECK(n >= -1 && (n < 0 || (size_t)n <= base64_decoded_max(size)));
	if (n >= 0) {
		enc = malloc(base64_encoded_len((size_t)n) + 1);
		FUZZ_CHECK(enc != NULL);
		base64_encode(dec, (size_t)n, enc);
		if (strlen(enc) != size) {
			fprintf(stderr, "'%.*s' decodes, encodes as '%s'\n",
			    (int)size, in, enc);
			FUZZ_CHECK(!"decoded length does not match");
		}
		{
			unsigned char *again = malloc(base64_decoded_max(size));

			FUZZ_CHECK(again != NULL);
			FUZZ_CHECK(base64_decode(enc, size, again) == n);
			FUZZ_CHECK(n == 0 || memcmp(again, dec, (size_t)n) == 0);
			free(again);
		}
		free(enc);
		check_plain(dec, (size_t)n);
	}
	free(dec);

	check_plain(data, size);

	/* Any bytes: encode, then decode back. */
	enc = malloc(base64_encoded_len(size) + 1);
	FUZZ_CHECK(enc != NULL);
	base64_encode(data, size, enc);
	FUZZ_CHECK(strlen(enc) == base64_encoded_len(size));
	dec = malloc(base64_decoded_max(strlen(enc)));
	FUZZ_CHECK(dec != NULL);
	n = base64_decode(enc, strlen(enc), dec);
	FUZZ_CHECK(n >= 0 && (size_t)n == size);
	FUZZ_CHECK(size == 0 || memcmp(dec, data, size) == 0);
	free(dec);
	free(enc);
	free(in);
	return 0;
}
