/*
 * Sequence sets (RFC 9051 section 9: sequence-set, seq-range, seq-number).
 */
#include "imap/seqset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse seq-number = nz-number / "*" at *sp; advance *sp past it. */
static int
parse_number(const char **sp, uint32_t *num_r, const char **error_r)
{
	const char *s = *sp;
	uint64_t n = 0;

	if (*s == '*') {
		*num_r = IMAP_SEQ_STAR;
		*sp = s + 1;
		return 0;
	}
	if (*s < '0' || *s > '9') {
		*error_r = *s == '\0' || *s == ',' || *s == ':' ?
		    "Empty element in sequence set" :
		    "Invalid characters in sequence set";
		return -1;
	}
	if (*s == '0') {
		/* nz-number = digit-nz *DIGIT: no 0, no leading zeros. */
		*error_r = "Invalid sequence number (numbers start at 1)";
		return -1;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > UINT32_MAX) {
			*error_r = "Sequence number too large";
			return -1;
		}
	}
	*num_r = (uint32_t)n;
	*sp = s;
	return 0;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

/* Sort, then merge overlapping and adjacent ranges in place. */
static void
normalize(struct imap_seqset *set)
{
	struct imap_seq_range *r = set->ranges;
	unsigned i, n = 0;

	if (set->count == 0)
		return;
	qsort(r, set->count, sizeof(*r), range_cmp);
	for (i = 1; i < set->count; i++) {
		if (r[n].hi == UINT32_MAX || r[i].lo <= r[n].hi + 1) {
			if (r[i].hi > r[n].hi)
				r[n].hi = r[i].hi;
		} else {
			r[++n] = r[i];
		}
	}
	set->count = n + 1;
}

int
imap_seqset_parse(const char *str, struct arena *arena,
    unsigned max_ranges, struct imap_seqset *set, const char **error_r)
{
	struct imap_seq_range *r;
	const char *s;
	size_t n = 1;
	unsigned i = 0;
	uint32_t a, b;

	set->ranges = NULL;
	set->count = 0;
	if (*str == '\0') {
		*error_r = "Empty sequence set";
		return -1;
	}
	for (s = str; *s != '\0'; s++) {
		if (*s == ',')
			n++;
	}
	if (n > max_ranges) {
		*error_r = "Too many ranges in sequence set";
		return -1;
	}
	r = arena_alloc(arena, n * sizeof(*r));
	for (s = str;;) {
		if (parse_number(&s, &a, error_r) < 0)
			return -1;
		b = a;
		if (*s == ':') {
			s++;
			if (parse_number(&s, &b, error_r) < 0)
				return -1;
		}
		/* RFC 9051: "2:4" and "4:2" are the same range. */
		r[i].lo = a < b ? a : b;
		r[i].hi = a < b ? b : a;
		i++;
		if (*s == '\0')
			break;
		if (*s != ',') {
			*error_r = "Invalid characters in sequence set";
			return -1;
		}
		s++;
	}
	set->ranges = r;
	set->count = i;
	normalize(set);
	return 0;
}

void
imap_seqset_resolve(struct imap_seqset *set, uint32_t max)
{
	unsigned i;

	if (max == 0) {
		set->count = 0;
		return;
	}
	for (i = 0; i < set->count; i++) {
		struct imap_seq_range *r = &set->ranges[i];
		uint32_t lo = r->lo == IMAP_SEQ_STAR ? max : r->lo;
		uint32_t hi = r->hi == IMAP_SEQ_STAR ? max : r->hi;

		r->lo = lo < hi ? lo : hi;
		r->hi = lo < hi ? hi : lo;
	}
	normalize(set);
}

bool
imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	unsigned lo = 0, hi = set->count;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct imap_seq_range *r = &set->ranges[mid];

		if (n < r->lo)
			hi = mid;
		else if (n > r->hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

char *
imap_seqset_format(const struct imap_seqset *set, struct arena *arena)
{
	/* UNSAFE: "4294967295:4294967295," is 22 bytes per range, + NUL. */
	size_t size = (size_t)set->count * 22 + 1;
	char *out = arena_alloc(arena, size);
	size_t pos = 0;
	unsigned i;

	for (i = 0; i < set->count; i++) {
		const struct imap_seq_range *r = &set->ranges[i];
		int n;

		if (r->lo == r->hi)
			n = snprintf(out + pos, size - pos, "%s%u",
			    i > 0 ? "," : "", r->lo);
		else
			n = snprintf(out + pos, size - pos, "%s%u:%u",
			    i > 0 ? "," : "", r->lo, r->hi);
		pos += (size_t)n;
	}
	return out;
}
