#include "core/arena.h"
#include "core/xmalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks grow from ARENA_BLOCK_FIRST to ARENA_BLOCK_MIN: an arena that
 * holds a few small objects (a mailbox view's keyword table) stays small,
 * one that holds many gets few large blocks. */
#define ARENA_BLOCK_FIRST 256
#define ARENA_BLOCK_MIN 4096
#define ARENA_ALIGN 16

struct arena_block {
	struct arena_block *next;
	size_t size;		/* usable bytes after the header */
	size_t pos;
	max_align_t data[];
};

void
arena_init(struct arena *a)
{
	memset(a, 0, sizeof(*a));
}

void *
arena_alloc(struct arena *a, size_t size)
{
	struct arena_block *b = a->head;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (need < size)
		abort();
	if (b == NULL || b->size - b->pos < need) {
		size_t step = b == NULL ? ARENA_BLOCK_FIRST :
		    b->size * 2 > ARENA_BLOCK_MIN ? ARENA_BLOCK_MIN :
		    b->size * 2;
		size_t bs = need > step ? need : step;

		b = xmalloc(sizeof(*b) + bs);
		b->size = bs;
		b->next = a->head;
		a->head = b;
	}
	p = (char *)b->data + b->pos;
	b->pos += need;
	a->used += need;
	memset(p, 0, size);
	return p;
}

void *
arena_memdup(struct arena *a, const void *src, size_t n)
{
	void *p = arena_alloc(a, n);

	memcpy(p, src, n);
	return p;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	p = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void
arena_reset(struct arena *a)
{
	struct arena_block *b, *next;

	if (a->head == NULL)
		return;
	/* Keep the most recent block only if it is a standard size. */
	for (b = a->head->next; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->head->next = NULL;
	a->head->pos = 0;
	if (a->head->size > ARENA_BLOCK_MIN) {
		free(a->head);
		a->head = NULL;
	}
	a->used = 0;
}

void
arena_free(struct arena *a)
{
	struct arena_block *b, *next;

	for (b = a->head; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->head = NULL;
	a->used = 0;
}
