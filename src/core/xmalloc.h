/*
 * Allocation wrappers: every allocation is zeroed, and failure aborts with a
 * message.  Callers never check for NULL (STYLE §9).
 */
#ifndef HERALD_CORE_XMALLOC_H
#define HERALD_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);		/* zeroed */
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);	/* new bytes are not zeroed */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Overwrite memory that held a secret, then free it.  NULL is fine. */
void xfree_secret(void *p, size_t n);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
