/*
 * Sequence sets (RFC 9051 section 9, "sequence-set"): "1:3,5,7:*", "$"
 * (SEARCHRES, RFC 5182) is not handled here.
 *
 * A parsed set is a sorted, merged array of inclusive ranges.  '*' is stored
 * as UINT32_MAX until imap_seqset_resolve() replaces it with the largest
 * number in use.
 */
#ifndef HERALD_IMAP_SEQSET_H
#define HERALD_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seq_range {
	uint32_t lo, hi;	/* lo <= hi */
};

struct imap_seqset {
	struct imap_seq_range *ranges;	/* sorted, non-overlapping, merged */
	unsigned count;
};

/*
 * Parse str (NUL-terminated) into set, allocating from arena.  Numbers are
 * 1..4294967295 (nz-number: no leading zeros); 0, empty elements, leading or
 * trailing commas, spaces, garbage and more than max_ranges elements (as
 * written, before merging; 0 allows none) are errors.  Returns 0, or -1 with
 * *error_r (a static string) and set->count = 0.
 *
 * Since '*' is UINT32_MAX, the number 4294967295 means '*' too, and a range
 * such as "5:*" absorbs the numbers above 5 given with it ("5:*,100" is
 * "5:*").  After imap_seqset_resolve() the set is therefore exact for the
 * numbers up to max, i.e. for every message that exists.
 */
int imap_seqset_parse(const char *str, struct arena *arena,
    unsigned max_ranges, struct imap_seqset *set, const char **error_r);

/*
 * Replace '*' by max (the highest sequence number or UID); ranges such as
 * "5:*" with max < 5 become "max:5" as RFC 9051 says (the range is
 * unordered).  With max == 0 every range collapses to nothing: count = 0.
 * Re-sorts and merges.
 */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t max);

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);

/* Format as "1:3,5" into arena (for UIDPLUS responses); an unresolved
 * '*' is written as 4294967295, an empty set as "". */
char *imap_seqset_format(const struct imap_seqset *set, struct arena *arena);

#endif
