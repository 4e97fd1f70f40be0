/*
 * Failed-login throttling: threshold, sliding window, exponential delay and
 * its cap, eviction of the oldest entry, IPv6 and IPv4-mapped addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth/throttle.h"

struct addr {
	struct sockaddr_storage ss;
};

static const struct sockaddr *
ip(struct addr *a, const char *text, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr),
		                 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return (const struct sockaddr *)&a->ss;
}

static void
fail_n(struct auth_throttle *t, const char *text, unsigned n, uint64_t now)
{
	struct addr a;

	for (unsigned i = 0; i < n; i++)
		auth_throttle_failure(t, ip(&a, text, 1000), now);
}

static uint64_t
delay(struct auth_throttle *t, const char *text, uint64_t now)
{
	struct addr a;

	return auth_throttle_delay(t, ip(&a, text, 2000), now);
}

static void
test_threshold_and_doubling(void **state)
{
	/* 3 failures in 80 s, capped at 15 s. */
	struct auth_throttle *t = auth_throttle_new(3, 80, 15, 16);
	const uint64_t want[] = {0,    0,     1000,  2000, 4000,
	                         8000, 15000, 15000, 15000};
	uint64_t now = 1000000;

	assert_int_equal(delay(t, "192.0.2.1", now), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		fail_n(t, "192.0.2.1", 1, now);
		assert_int_equal(delay(t, "192.0.2.1", now), want[i]);
		/* Other addresses are not affected. */
		assert_int_equal(delay(t, "192.0.2.2", now), 0);
		now += 100;
	}
	/* Many more failures keep the cap (no shift overflow). */
	fail_n(t, "192.0.2.1", 200, now);
	assert_int_equal(delay(t, "192.0.2.1", now), 15000);
	auth_throttle_free(&t);
	assert_null(t);
}

static void
test_window_expiry(void **state)
{
	/* 80 s window: slots of 10 s. */
	struct auth_throttle *t = auth_throttle_new(3, 80, 15, 16);

	fail_n(t, "198.51.100.7", 3, 0);
	assert_int_equal(delay(t, "198.51.100.7", 0), 1000);
	assert_int_equal(delay(t, "198.51.100.7", 79999), 1000);
	assert_int_equal(delay(t, "198.51.100.7", 80000), 0);
	/* Once expired, it takes 3 new failures again. */
	fail_n(t, "198.51.100.7", 2, 90000);
	assert_int_equal(delay(t, "198.51.100.7", 90000), 0);
	fail_n(t, "198.51.100.7", 1, 90000);
	assert_int_equal(delay(t, "198.51.100.7", 90000), 1000);
	auth_throttle_free(&t);
}

static void
test_window_slides(void **state)
{
	struct auth_throttle *t = auth_throttle_new(3, 80, 15, 16);

	/* Two old failures and two recent ones: 4 in the window, then the
	 * old ones slide out and 2 remain. */
	fail_n(t, "203.0.113.9", 2, 5000);
	fail_n(t, "203.0.113.9", 2, 45000);
	assert_int_equal(delay(t, "203.0.113.9", 50000), 2000);
	assert_int_equal(delay(t, "203.0.113.9", 79999), 2000);
	assert_int_equal(delay(t, "203.0.113.9", 80000), 0);
	/* One more failure: 3 in the window again. */
	fail_n(t, "203.0.113.9", 1, 81000);
	assert_int_equal(delay(t, "203.0.113.9", 81000), 1000);
	/* The failures of 45 s expire at 120 s, the last one at 160 s. */
	assert_int_equal(delay(t, "203.0.113.9", 119999), 1000);
	assert_int_equal(delay(t, "203.0.113.9", 120000), 0);
	auth_throttle_free(&t);

	/* With threshold 1, one failure is visible until it expires. */
	t = auth_throttle_new(1, 80, 15, 16);
	fail_n(t, "203.0.113.10", 1, 45000);
	assert_int_equal(delay(t, "203.0.113.10", 119999), 1000);
	assert_int_equal(delay(t, "203.0.113.10", 120000), 0);
	/* And a window jump far beyond the ring clears everything. */
	fail_n(t, "203.0.113.10", 5, 200000);
	assert_int_equal(delay(t, "203.0.113.10", 200000), 15000);
	assert_int_equal(delay(t, "203.0.113.10", 10000000), 0);
	auth_throttle_free(&t);
}

static void
test_success_resets(void **state)
{
	struct auth_throttle *t = auth_throttle_new(2, 60, 15, 16);
	struct addr a;

	fail_n(t, "192.0.2.50", 3, 0);
	assert_int_equal(delay(t, "192.0.2.50", 0), 2000);
	auth_throttle_success(t, ip(&a, "192.0.2.50", 3));
	assert_int_equal(delay(t, "192.0.2.50", 0), 0);
	/* Success for an unknown address is harmless. */
	auth_throttle_success(t, ip(&a, "192.0.2.51", 3));
	fail_n(t, "192.0.2.50", 1, 0);
	assert_int_equal(delay(t, "192.0.2.50", 0), 0);
	auth_throttle_free(&t);
}

static void
test_eviction(void **state)
{
	struct auth_throttle *t = auth_throttle_new(2, 300, 15, 4);

	fail_n(t, "10.0.0.1", 2, 1);
	fail_n(t, "10.0.0.2", 2, 2);
	fail_n(t, "10.0.0.3", 2, 3);
	fail_n(t, "10.0.0.4", 2, 4);
	/* Full: the fifth address evicts the oldest, 10.0.0.1. */
	fail_n(t, "10.0.0.5", 2, 5);
	assert_int_equal(delay(t, "10.0.0.1", 6), 0);
	assert_int_equal(delay(t, "10.0.0.2", 6), 1000);
	assert_int_equal(delay(t, "10.0.0.5", 6), 1000);
	/* A new failure makes 10.0.0.2 the newest: 10.0.0.3 goes next. */
	fail_n(t, "10.0.0.2", 1, 7);
	fail_n(t, "10.0.0.6", 1, 8);
	assert_int_equal(delay(t, "10.0.0.3", 9), 0);
	assert_int_equal(delay(t, "10.0.0.2", 9), 2000);
	assert_int_equal(delay(t, "10.0.0.4", 9), 1000);
	assert_int_equal(delay(t, "10.0.0.5", 9), 1000);
	fail_n(t, "10.0.0.6", 1, 10);
	assert_int_equal(delay(t, "10.0.0.6", 10), 1000);
	auth_throttle_free(&t);
}

static void
test_many_addresses(void **state)
{
	struct auth_throttle *t = auth_throttle_new(1, 300, 15, 1000);
	char text[64];
	unsigned i;

	/* 20000 addresses through a 1000-entry table. */
	for (i = 0; i < 20000; i++) {
		snprintf(text, sizeof(text), "10.%u.%u.%u", i >> 16,
		         (i >> 8) & 0xff, i & 0xff);
		fail_n(t, text, 1, i);
	}
	for (i = 0; i < 20000; i++) {
		snprintf(text, sizeof(text), "10.%u.%u.%u", i >> 16,
		         (i >> 8) & 0xff, i & 0xff);
		assert_int_equal(delay(t, text, 20000), i < 19000 ? 0 : 1000);
	}
	/* Successes free entries that later failures reuse. */
	for (i = 19000; i < 19500; i++) {
		struct addr a;

		snprintf(text, sizeof(text), "10.%u.%u.%u", i >> 16,
		         (i >> 8) & 0xff, i & 0xff);
		auth_throttle_success(t, ip(&a, text, 1));
	}
	fail_n(t, "10.200.0.1", 1, 20001);
	assert_int_equal(delay(t, "10.200.0.1", 20001), 1000);
	assert_int_equal(delay(t, "10.0.78.31", 20001), 1000); /* 19999 */
	auth_throttle_free(&t);
}

static void
test_ipv6(void **state)
{
	struct auth_throttle *t = auth_throttle_new(3, 60, 15, 16);

	fail_n(t, "2001:db8::1", 2, 0);
	assert_int_equal(delay(t, "2001:db8::1", 0), 0);
	/* The same /64 counts as one address. */
	fail_n(t, "2001:db8::ffff:1234", 1, 0);
	assert_int_equal(delay(t, "2001:db8::1", 0), 1000);
	assert_int_equal(delay(t, "2001:db8:0:0:8000::", 0), 1000);
	/* Other /64s are separate. */
	assert_int_equal(delay(t, "2001:db8:0:1::1", 0), 0);
	assert_int_equal(delay(t, "2001:db9::1", 0), 0);
	/* An IPv6 address does not collide with an IPv4 one. */
	assert_int_equal(delay(t, "0.0.0.0", 0), 0);
	fail_n(t, "::1", 3, 0);
	assert_int_equal(delay(t, "::1", 0), 1000);
	assert_int_equal(delay(t, "127.0.0.1", 0), 0);
	auth_throttle_free(&t);
}

static void
test_ipv4_mapped(void **state)
{
	struct auth_throttle *t = auth_throttle_new(3, 60, 15, 16);

	fail_n(t, "192.0.2.77", 2, 0);
	fail_n(t, "::ffff:192.0.2.77", 1, 0);
	assert_int_equal(delay(t, "192.0.2.77", 0), 1000);
	assert_int_equal(delay(t, "::ffff:192.0.2.77", 0), 1000);
	/* Mapped addresses are not grouped per /64 like IPv6 ones. */
	assert_int_equal(delay(t, "::ffff:192.0.2.78", 0), 0);
	assert_int_equal(delay(t, "192.0.2.78", 0), 0);
	auth_throttle_success(t, (struct sockaddr *)NULL);
	{
		struct addr a;

		auth_throttle_success(t, ip(&a, "::ffff:192.0.2.77", 0));
	}
	assert_int_equal(delay(t, "192.0.2.77", 0), 0);
	auth_throttle_free(&t);
}

static void
test_disabled_and_other_families(void **state)
{
	struct auth_throttle *t = auth_throttle_new(0, 60, 15, 16);
	struct sockaddr_un su;

	fail_n(t, "192.0.2.1", 50, 0);
	assert_int_equal(delay(t, "192.0.2.1", 0), 0);
	auth_throttle_free(&t);

	t = auth_throttle_new(3, 60, 0, 16);
	fail_n(t, "192.0.2.1", 50, 0);
	assert_int_equal(delay(t, "192.0.2.1", 0), 0);
	auth_throttle_free(&t);

	/* A zero-size table and window still work. */
	t = auth_throttle_new(1, 0, 15, 0);
	fail_n(t, "192.0.2.1", 1, 0);
	assert_int_equal(delay(t, "192.0.2.1", 0), 1000);
	fail_n(t, "192.0.2.2", 1, 0);
	assert_int_equal(delay(t, "192.0.2.1", 0), 0);
	assert_int_equal(delay(t, "192.0.2.2", 0), 1000);
	assert_int_equal(delay(t, "192.0.2.2", 1000), 0);

	/* Unix sockets are not throttled. */
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	for (int i = 0; i < 5; i++)
		auth_throttle_failure(t, (struct sockaddr *)&su, 0);
	assert_int_equal(auth_throttle_delay(t, (struct sockaddr *)&su, 0), 0);
	auth_throttle_free(&t);
	auth_throttle_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_threshold_and_doubling),
	    cmocka_unit_test(test_window_expiry),
	    cmocka_unit_test(test_window_slides),
	    cmocka_unit_test(test_success_resets),
	    cmocka_unit_test(test_eviction),
	    cmocka_unit_test(test_many_addresses),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_ipv4_mapped),
	    cmocka_unit_test(test_disabled_and_other_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
