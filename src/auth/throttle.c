#include "auth/throttle.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "core/xmalloc.h"
#include "log/log.h"

/*
 * Each entry counts failures in THROTTLE_SLOTS slots of window/8 each, a
 * ring that slides with time: a failure stops counting between
 * window - window/8 and window seconds after it happened.
 *
 * Entries live in a fixed array, found through a hash table with chaining
 * (keyed SipHash, since attackers choose their addresses) and kept on an
 * LRU list ordered by last failure, whose tail is evicted when the table is
 * full.  Every operation is O(1) expected.
 */
#define THROTTLE_SLOTS 8
#define THROTTLE_BASE_DELAY_MS 1000
#define THROTTLE_MAX_ENTRIES (1u << 24)
/* IPv6 hosts usually own a /64, so count it as one address. */
#define THROTTLE_IPV6_PREFIX_BYTES 8

#define NIL 0 /* entry indexes are stored + 1 */

struct throttle_entry {
	uint8_t key[16];                 /* IPv6 form; IPv4 as ::ffff:a.b.c.d */
	uint32_t hnext;                  /* hash chain, or free list */
	uint32_t lru_prev;               /* towards the most recent */
	uint32_t lru_next;               /* towards the oldest */
	uint64_t last_slot;              /* absolute slot of the newest count */
	uint16_t counts[THROTTLE_SLOTS]; /* failures per slot */
};

struct auth_throttle {
	unsigned threshold;
	uint64_t slot_ms;
	uint64_t delay_max_ms;

	struct throttle_entry *entries;
	uint32_t max_entries;
	uint32_t free_head;
	uint32_t lru_head; /* most recent failure */
	uint32_t lru_tail; /* oldest; evicted first */
	uint32_t *buckets;
	uint32_t bucket_mask;
	uint64_t seed[2];
};

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t
load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* SipHash-2-4 of a 16-byte key. */
static uint64_t
siphash_key(const uint64_t seed[2], const uint8_t key[16])
{
	uint64_t v0 = seed[0] ^ 0x736f6d6570736575ull;
	uint64_t v1 = seed[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = seed[0] ^ 0x6c7967656e657261ull;
	uint64_t v3 = seed[1] ^ 0x7465646279746573ull;
	uint64_t m[3] = {load_le64(key), load_le64(key + 8), 16ull << 56};

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = ROTL64(v1, 13);                                           \
		v1 ^= v0;                                                      \
		v0 = ROTL64(v0, 32);                                           \
		v2 += v3;                                                      \
		v3 = ROTL64(v3, 16);                                           \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = ROTL64(v3, 21);                                           \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = ROTL64(v1, 17);                                           \
		v1 ^= v2;                                                      \
		v2 = ROTL64(v2, 32);                                           \
	} while (0)
	for (int i = 0; i < 3; i++) {
		v3 ^= m[i];
		SIPROUND;
		SIPROUND;
		v0 ^= m[i];
	}
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
#undef SIPROUND
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The table key of addr; false for families we do not throttle. */
static bool
addr_key(const struct sockaddr *addr, uint8_t key[16])
{
	memset(key, 0, 16);
	if (addr == NULL)
		return false;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin =
		    (const struct sockaddr_in *)(const void *)addr;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
		return true;
	}
	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)(const void *)addr;

		memcpy(key, &sin6->sin6_addr, 16);
		/* An IPv4-mapped address is the IPv4 address itself. */
		if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			memset(key + THROTTLE_IPV6_PREFIX_BYTES, 0,
			       16 - THROTTLE_IPV6_PREFIX_BYTES);
		return true;
	}
	return false;
}

struct auth_throttle *
auth_throttle_new(unsigned threshold, unsigned window, unsigned delay_max,
                  unsigned max_entries)
{
	struct auth_throttle *t = xmalloc(sizeof(*t));
	uint64_t window_ms = (uint64_t)(window > 0 ? window : 1) * 1000;
	uint32_t nbuckets = 1;

	if (max_entries == 0)
		max_entries = 1;
	if (max_entries > THROTTLE_MAX_ENTRIES)
		max_entries = THROTTLE_MAX_ENTRIES;
	t->threshold = threshold;
	t->slot_ms = (window_ms + THROTTLE_SLOTS - 1) / THROTTLE_SLOTS;
	t->delay_max_ms = (uint64_t)delay_max * 1000;
	t->max_entries = max_entries;
	t->entries = xcalloc(max_entries, sizeof(*t->entries));
	while (nbuckets < max_entries)
		nbuckets *= 2;
	t->buckets = xcalloc(nbuckets, sizeof(*t->buckets));
	t->bucket_mask = nbuckets - 1;
	for (uint32_t i = 0; i < max_entries; i++)
		t->entries[i].hnext = i + 1 < max_entries ? i + 2 : NIL;
	t->free_head = 1;
	if (getrandom(t->seed, sizeof(t->seed), 0) != sizeof(t->seed))
		fatal("throttle: getrandom");
	return t;
}

void
auth_throttle_free(struct auth_throttle **tp)
{
	struct auth_throttle *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	free(t->entries);
	free(t->buckets);
	free(t);
}

#define ENTRY(t, i) (&(t)->entries[(i)-1])

static uint32_t
bucket_of(const struct auth_throttle *t, const uint8_t key[16])
{
	return (uint32_t)siphash_key(t->seed, key) & t->bucket_mask;
}

static uint32_t
entry_find(const struct auth_throttle *t, const uint8_t key[16])
{
	uint32_t i;

	for (i = t->buckets[bucket_of(t, key)]; i != NIL;
	     i = ENTRY(t, i)->hnext) {
		if (memcmp(ENTRY(t, i)->key, key, 16) == 0)
			return i;
	}
	return NIL;
}

static void
lru_unlink(struct auth_throttle *t, uint32_t i)
{
	struct throttle_entry *e = ENTRY(t, i);

	if (e->lru_prev != NIL)
		ENTRY(t, e->lru_prev)->lru_next = e->lru_next;
	else
		t->lru_head = e->lru_next;
	if (e->lru_next != NIL)
		ENTRY(t, e->lru_next)->lru_prev = e->lru_prev;
	else
		t->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NIL;
}

static void
lru_push_head(struct auth_throttle *t, uint32_t i)
{
	struct throttle_entry *e = ENTRY(t, i);

	e->lru_prev = NIL;
	e->lru_next = t->lru_head;
	if (t->lru_head != NIL)
		ENTRY(t, t->lru_head)->lru_prev = i;
	else
		t->lru_tail = i;
	t->lru_head = i;
}

static void
entry_remove(struct auth_throttle *t, uint32_t i)
{
	struct throttle_entry *e = ENTRY(t, i);
	uint32_t *pp = &t->buckets[bucket_of(t, e->key)];

	while (*pp != i)
		pp = &ENTRY(t, *pp)->hnext;
	*pp = e->hnext;
	lru_unlink(t, i);
	memset(e, 0, sizeof(*e));
	e->hnext = t->free_head;
	t->free_head = i;
}

/* Drop the counts of slots that slid out of the window. */
static void
entry_advance(const struct auth_throttle *t, struct throttle_entry *e,
              uint64_t now)
{
	uint64_t slot = now / t->slot_ms;

	/* Time never goes back with uv_now(); if it did, count the failure
	 * in the newest slot. */
	if (slot <= e->last_slot)
		return;
	if (slot - e->last_slot >= THROTTLE_SLOTS)
		memset(e->counts, 0, sizeof(e->counts));
	else {
		for (uint64_t s = e->last_slot + 1; s <= slot; s++)
			e->counts[s % THROTTLE_SLOTS] = 0;
	}
	e->last_slot = slot;
}

static unsigned
entry_count(const struct throttle_entry *e)
{
	unsigned n = 0;

	for (unsigned i = 0; i < THROTTLE_SLOTS; i++)
		n += e->counts[i];
	return n;
}

uint64_t
auth_throttle_delay(struct auth_throttle *t, const struct sockaddr *addr,
                    uint64_t now)
{
	uint8_t key[16];
	uint32_t i;
	unsigned n, shift;
	uint64_t delay;

	if (t->threshold == 0 || t->delay_max_ms == 0 || !addr_key(addr, key))
		return 0;
	if ((i = entry_find(t, key)) == NIL)
		return 0;
	entry_advance(t, ENTRY(t, i), now);
	if ((n = entry_count(ENTRY(t, i))) == 0) {
		entry_remove(t, i);
		return 0;
	}
	if (n < t->threshold)
		return 0;
	/* The threshold-th failure gives the base delay; each one more
	 * doubles it, up to the cap. */
	shift = n - t->threshold;
	if (shift > 32)
		shift = 32;
	delay = (uint64_t)THROTTLE_BASE_DELAY_MS << shift;
	return delay < t->delay_max_ms ? delay : t->delay_max_ms;
}

void
auth_throttle_failure(struct auth_throttle *t, const struct sockaddr *addr,
                      uint64_t now)
{
	struct throttle_entry *e;
	uint8_t key[16];
	uint32_t i, b;

	if (t->threshold == 0 || !addr_key(addr, key))
		return;
	if ((i = entry_find(t, key)) == NIL) {
		if (t->free_head == NIL)
			entry_remove(t, t->lru_tail);
		i = t->free_head;
		e = ENTRY(t, i);
		t->free_head = e->hnext;
		memcpy(e->key, key, 16);
		e->last_slot = now / t->slot_ms;
		b = bucket_of(t, key);
		e->hnext = t->buckets[b];
		t->buckets[b] = i;
	} else
		lru_unlink(t, i);
	lru_push_head(t, i);
	e = ENTRY(t, i);
	entry_advance(t, e, now);
	if (e->counts[e->last_slot % THROTTLE_SLOTS] < UINT16_MAX)
		e->counts[e->last_slot % THROTTLE_SLOTS]++;
}

void
auth_throttle_success(struct auth_throttle *t, const struct sockaddr *addr)
{
	uint8_t key[16];
	uint32_t i;

	if (addr_key(addr, key) && (i = entry_find(t, key)) != NIL)
		entry_remove(t, i);
}
