/*
 * Base64 (RFC 4648 section 4) with strict decoding: padding required, no
 * whitespace, no characters outside the alphabet.
 */
#ifndef HERALD_CORE_BASE64_H
#define HERALD_CORE_BASE64_H

#include <stddef.h>

/* Decoded size is at most base64_decoded_max(len). */
#define base64_decoded_max(len) (((len) / 4) * 3 + 3)
#define base64_encoded_len(len) ((((len) + 2) / 3) * 4)

/* Decode len chars of in into out; returns the byte count or -1. */
long base64_decode(const char *in, size_t len, unsigned char *out);
/* Encode into out (base64_encoded_len(len) + 1 bytes, NUL-terminated). */
void base64_encode(const unsigned char *in, size_t len, char *out);

#endif
