/*
 * Growable byte buffer with a hard maximum.  The data is always followed by
 * a NUL byte so it can be used as a C string.  A buffer that has never been
 * written to owns no memory: idle connections keep their buffers empty.
 */
#ifndef HERALD_CORE_BUF_H
#define HERALD_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data;		/* NULL until first write */
	size_t len;
	size_t cap;
	size_t max;		/* 0 = unlimited */
};

void buf_init(struct buf *b, size_t max);
/* Frees the storage; the buffer stays usable (and empty). */
void buf_free(struct buf *b);
void buf_reset(struct buf *b);	/* len = 0, keeps storage */

/* Append; return false (and leave the buffer unchanged) past b->max. */
bool buf_append(struct buf *b, const void *p, size_t n);
bool buf_append_str(struct buf *b, const char *s);
/* n in decimal, without printf (hot paths: FETCH writes one per line). */
bool buf_append_u64(struct buf *b, uint64_t n);
bool buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Drop n bytes from the front; frees storage once the buffer is empty. */
void buf_consume(struct buf *b, size_t n);

#endif
