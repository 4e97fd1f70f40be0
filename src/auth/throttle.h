/*
 * Per-address throttling of failed logins.  Each worker keeps a small table
 * of remote addresses with a failure count in a sliding window; after
 * `threshold` failures within `window` seconds, every further attempt from
 * that address is delayed, doubling up to `delay_max` seconds.  The table
 * has a fixed maximum size (oldest entries are evicted), so an attacker
 * cannot grow it without bound.
 *
 * Details: the window slides in steps of window/8, so a failure stops
 * counting between 7/8 window and window seconds after it happened.  The
 * delay is 1 s at `threshold` failures, doubling with each further failure
 * in the window.  IPv4-mapped IPv6 addresses count as their IPv4 address;
 * other IPv6 addresses count per /64.  threshold 0 or delay_max 0 disables
 * throttling.  Not thread-safe: one table per worker loop.
 */
#ifndef HERALD_AUTH_THROTTLE_H
#define HERALD_AUTH_THROTTLE_H

#include <stdint.h>

struct sockaddr;
struct auth_throttle;

struct auth_throttle *auth_throttle_new(unsigned threshold, unsigned window,
    unsigned delay_max, unsigned max_entries);
void auth_throttle_free(struct auth_throttle **t);

/* Milliseconds to delay an attempt from addr before checking it (0 = none).
 * now is in milliseconds (uv_now()). */
uint64_t auth_throttle_delay(struct auth_throttle *t,
    const struct sockaddr *addr, uint64_t now);
void auth_throttle_failure(struct auth_throttle *t,
    const struct sockaddr *addr, uint64_t now);
/* Forgets addr's failures. */
void auth_throttle_success(struct auth_throttle *t,
    const struct sockaddr *addr);

#endif
