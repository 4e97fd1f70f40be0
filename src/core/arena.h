/*
 * Bump allocator for objects that share a lifetime (a command, a
 * connection).  Allocations are zeroed and 16-byte aligned; everything is
 * released at once by arena_reset() or arena_free().  An arena that has not
 * allocated owns no memory.
 */
#ifndef HERALD_CORE_ARENA_H
#define HERALD_CORE_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
	struct arena_block *head;
	size_t used;		/* bytes handed out since the last reset */
};

void arena_init(struct arena *a);
void *arena_alloc(struct arena *a, size_t size);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Free every block but the first, which is kept for reuse. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);

#endif
