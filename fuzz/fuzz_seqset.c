/*
 * libFuzzer target: sequence sets (src/imap/seqset.h).
 *
 * Input: byte 0 picks max_ranges, bytes 1-4 the "max" given to
 * imap_seqset_resolve() (little-endian; 0 and small values are common),
 * the rest is the set as a client would send it, e.g. "1:3,5,7:*".
 *
 * For a set that parses, the result is checked against a model built
 * here from the text (valid by then, so splitting it is simple): the
 * ranges are sorted, merged and non-empty, imap_seqset_contains() agrees
 * with the model at every boundary, formatting and parsing again gives
 * the same ranges, and after resolve() the set is still sorted and merged
 * and agrees with the resolved model.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "imap/seqset.h"
#include "log/log.h"

#include "fuzz_common.h"

#define HDR_LEN 5
#define MAX_ELEMS 4096

struct elem {
	uint32_t a, b;		/* as written; '*' is IMAP_SEQ_STAR */
};

static uint32_t
num(const char **pp)
{
	const char *p = *pp;
	uint64_t n = 0;

	if (*p == '*') {
		*pp = p + 1;
		return IMAP_SEQ_STAR;
	}
	while (*p >= '0' && *p <= '9')
		n = n * 10 + (uint64_t)(*p++ - '0');
	*pp = p;
	return (uint32_t)n;
}

static unsigned
model(const char *s, struct elem *e)
{
	unsigned n = 0;

	for (;;) {
		FUZZ_CHECK(n < MAX_ELEMS);
		e[n].a = e[n].b = num(&s);
		if (*s == ':') {
			s++;
			e[n].b = num(&s);
		}
		n++;
		if (*s != ',')
			break;
		s++;
	}
	FUZZ_CHECK(*s == '\0');
	return n;
}

static bool
model_contains(const struct elem *e, unsigned n, uint32_t v, bool resolved,
    uint32_t max)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t a = e[i].a, b = e[i].b, lo, hi;

		if (resolved) {
			if (max == 0)
				return false;
			if (a == IMAP_SEQ_STAR)
				a = max;
			if (b == IMAP_SEQ_STAR)
				b = max;
		}
		lo = a < b ? a : b;
		hi = a < b ? b : a;
		if (v >= lo && v <= hi)
			return true;
	}
	return false;
}

static void
check_shape(const struct imap_seqset *set)
{
	for (unsigned i = 0; i < set->count; i++) {
		FUZZ_CHECK(set->ranges[i].lo >= 1);
		FUZZ_CHECK(set->ranges[i].lo <= set->ranges[i].hi);
		/* Sorted and merged: a gap of at least one number. */
		if (i > 0)
			FUZZ_CHECK(set->ranges[i - 1].hi < UINT32_MAX &&
			    set->ranges[i - 1].hi + 1 < set->ranges[i].lo);
	}
}

static void
check_against(const struct imap_seqset *set, const struct elem *e,
    unsigned n, bool resolved, uint32_t max)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t pts[4][3];

		for (unsigned k = 0; k < 2; k++) {
			uint32_t v = k == 0 ? e[i].a : e[i].b;

			if (resolved && v == IMAP_SEQ_STAR)
				v = max;
			pts[k][0] = v;
			pts[k][1] = v - 1;
			pts[k][2] = v + 1;
		}
		for (unsigned k = 0; k < 2; k++) {
			for (unsigned j = 0; j < 3; j++) {
				uint32_t v = pts[k][j];

				/* Resolved sets are exact up to max only. */
				if (resolved && v > max)
					continue;
				if (imap_seqset_contains(set, v) !=
				    model_contains(e, n, v, resolved, max)) {
					fprintf(stderr, "contains(%u) wrong "
					    "(resolved %d max %u)\n", v,
					    resolved, max);
					FUZZ_CHECK(!"contains disagrees");
				}
			}
		}
	}
	for (unsigned i = 0; i < set->count; i++) {
		uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;

		if (resolved && lo > max)
			continue;
		if (resolved && hi > max)
			hi = max;
		FUZZ_CHECK(model_contains(e, n, lo, resolved, max));
		FUZZ_CHECK(model_contains(e, n, hi, resolved, max));
	}
}

static bool
same_set(const struct imap_seqset *a, const struct imap_seqset *b)
{
	return a->count == b->count && (a->count == 0 ||
	    memcmp(a->ranges, b->ranges, a->count * sizeof(a->ranges[0])) ==
	    0);
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
	static struct elem elems[MAX_ELEMS];
	struct imap_seqset set, again;
	struct arena arena;
	const char *err = NULL;
	unsigned max_ranges, n;
	uint32_t max;
	char *str, *fmt;

	if (size < HDR_LEN || size > 16384)
		return -1;
	max_ranges = data[0] < 200 ? data[0] : 100000;
	max = (uint32_t)data[1] | (uint32_t)data[2] << 8 |
	    (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
	str = malloc(size - HDR_LEN + 1);
	FUZZ_CHECK(str != NULL);
	memcpy(str, data + HDR_LEN, size - HDR_LEN);
	str[size - HDR_LEN] = '\0';

	arena_init(&arena);
	memset(&set, 0xa5, sizeof(set));
	if (imap_seqset_parse(str, &arena, max_ranges, &set, &err) < 0) {
		FUZZ_CHECK(err != NULL);
		FUZZ_CHECK(set.count == 0);
		goto out;
	}
	/* As written: at most max_ranges elements, at least one. */
	n = model(str, elems);
	FUZZ_CHECK(n <= max_ranges);
	FUZZ_CHECK(set.count >= 1 && set.count <= n);
	check_shape(&set);
	check_against(&set, elems, n, false, 0);

	fmt = imap_seqset_format(&set, &arena);
	FUZZ_CHECK(fmt != NULL);
	if (imap_seqset_parse(fmt, &arena, set.count, &again, &err) < 0) {
		fprintf(stderr, "format '%s' does not parse: %s\n", fmt, err);
		FUZZ_CHECK(!"formatted set does not parse");
	}
	FUZZ_CHECK(same_set(&set, &again));

	imap_seqset_resolve(&set, max);
	check_shape(&set);
	if (max == 0)
		FUZZ_CHECK(set.count == 0);
	if (max != UINT32_MAX)
		for (unsigned i = 0; i < set.count; i++)
			FUZZ_CHECK(set.ranges[i].hi != UINT32_MAX);
	check_against(&set, elems, n, true, max);
	fmt = imap_seqset_format(&set, &arena);
	FUZZ_CHECK(fmt != NULL && (set.count > 0 || fmt[0] == '\0'));
out:
	arena_free(&arena);
	free(str);
	return 0;
}
