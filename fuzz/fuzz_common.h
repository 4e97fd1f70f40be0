/*
 * Helpers shared by the libFuzzer targets in fuzz/ (header-only: every
 * target is one translation unit plus the h_* libraries).
 *
 *  - FUZZ_CHECK(): an invariant that must hold; on failure it prints the
 *    condition and aborts, which libFuzzer reports as a crash and saves.
 *  - fuzz_rng: a tiny deterministic generator seeded from input bytes, for
 *    chunk sizes and other choices that must replay exactly.
 *  - fuzz_utf8_valid(): strict UTF-8 (no overlongs, no surrogates, at most
 *    U+10FFFF).
 *  - fuzz_imap_value(): one well-formed IMAP value as the server writes it
 *    (NIL, atom, number, quoted string, literal, parenthesised list).
 *  - fuzz_memfile: an in-memory regular file (memfd) with a path, for code
 *    that only takes a file name.
 */
#ifndef HERALD_FUZZ_COMMON_H
#define HERALD_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                  \
	((cond) ? (void)0 : fuzz_check_failed(#cond, __FILE__, __LINE__))

static inline void __attribute__((noreturn))
fuzz_check_failed(const char *cond, const char *file, int line)
{
	fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", cond, file, line);
	abort();
}

/* xorshift32; a zero seed is remapped since 0 is a fixed point. */
struct fuzz_rng {
	uint32_t s;
};

static inline void
fuzz_rng_init(struct fuzz_rng *r, uint32_t seed)
{
	r->s = seed != 0 ? seed : 0x9e3779b9u;
}

static inline uint32_t
fuzz_rng_next(struct fuzz_rng *r)
{
	uint32_t x = r->s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	r->s = x;
	return x;
}

/* FNV-1a over a byte range, chained through h (start with 2166136261). */
static inline uint32_t
fuzz_hash(uint32_t h, const void *p, size_t len)
{
	const unsigned char *u = p;

	for (size_t i = 0; i < len; i++) {
		h ^= u[i];
		h *= 16777619u;
	}
	return h;
}

static inline bool
fuzz_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned char c = *p;
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/*
 * Parse one IMAP value at *pp (RFC 9051 section 4) and advance past it.
 * List elements are separated by one space, except that a list may follow
 * another element directly (multipart BODYSTRUCTURE).  Quoted strings hold
 * 7-bit text without CR, LF or NUL and only \" and \\ escapes; anything
 * else must go out as a literal {n}\r\n with exactly n bytes.
 */
static inline bool
fuzz_imap_value_at(const char **pp, const char *end, unsigned depth)
{
	const char *p = *pp;

	if (p >= end || depth > 2000)
		return false;
	if (*p == '(') {
		p++;
		if (p < end && *p == ')') {
			*pp = p + 1;
			return true;
		}
		for (;;) {
			if (!fuzz_imap_value_at(&p, end, depth + 1) || p >= end)
				return false;
			if (*p == ')') {
				*pp = p + 1;
				return true;
			}
			if (*p == ' ')
				p++;
			else if (*p != '(')
				return false;
		}
	}
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;

			if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
				return false;
			if (c == '\\') {
				p++;
				if (p >= end || (*p != '"' && *p != '\\'))
					return false;
			}
		}
		if (p >= end)
			return false;
		*pp = p + 1;
		return true;
	}
	if (*p == '{') {
		uint64_t n = 0;
		const char *d = p + 1;

		while (d < end && *d >= '0' && *d <= '9' && n < (1ull << 40))
			n = n * 10 + (uint64_t)(*d++ - '0');
		if (d == p + 1 || end - d < 3 || d[0] != '}' || d[1] != '\r' ||
		    d[2] != '\n' || (uint64_t)(end - (d + 3)) < n)
			return false;
		*pp = d + 3 + n;
		return true;
	}
	while (p < end && *p != ' ' && *p != ')' && *p != '(') {
		unsigned char c = (unsigned char)*p;

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '{' || c == '\\')
			return false;
		p++;
	}
	if (p == *pp)
		return false;
	*pp = p;
	return true;
}

/* True if [s, s+len) is exactly one well-formed IMAP value. */
static inline bool
fuzz_imap_value(const char *s, size_t len)
{
	const char *p = s;

	return fuzz_imap_value_at(&p, s + len, 0) && p == s + len;
}

/*
 * A regular file in memory: memfd_create() gives a tmpfs inode that
 * open("/proc/self/fd/N") reopens like any file, without touching the disk.
 */
struct fuzz_memfile {
	int fd;
	char path[64];
};

static inline void
fuzz_memfile_init(struct fuzz_memfile *f, const char *name)
{
	f->fd = memfd_create(name, MFD_CLOEXEC);
	if (f->fd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

/* Replace the file's content. */
static inline void
fuzz_memfile_set(struct fuzz_memfile *f, const void *data, size_t len)
{
	const char *p = data;
	size_t off = 0;

	if (ftruncate(f->fd, 0) < 0) {
		perror("ftruncate");
		abort();
	}
	while (off < len) {
		ssize_t w = pwrite(f->fd, p + off, len - off, (off_t)off);

		if (w <= 0) {
			perror("pwrite");
			abort();
		}
		off += (size_t)w;
	}
}

#endif
