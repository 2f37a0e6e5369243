/* test_xsk.c - the AF_XDP front end's own logic, with no privilege needed: the feed line syntax,
 * the UMEM frame size rule, and sl_xsk_open's refusals (each with its one-line reason). The
 * program itself is tested in test_xdp.c and the whole path end to end in
 * tests/integration/test_e2e_xdp.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice.h"
#include "xsk.h"

static void test_sl__xsk_parse_feed_lines(void **state)
{
	(void)state;
	struct sl_xdp_feed_key k[4];
	assert_int_equal(sl__xsk_parse_feed("10.1.2.3:26477,233.54.12.111:26478", k, 4, NULL, 0),
			 2);
	static const uint8_t a[16] = { [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 1, [14] = 2,
				       [15] = 3 };
	assert_memory_equal(k[0].addr, a, 16);
	assert_int_equal(k[0].port, htons(26477));
	assert_int_equal(k[1].addr[12], 233);
	assert_int_equal(k[1].port, htons(26478));
	assert_int_equal(k[0].pad, 0);

	assert_int_equal(sl__xsk_parse_feed("[fd00::2]:9,*:10,:11", k, 4, NULL, 0), 3);
	uint8_t v6[16];
	inet_pton(AF_INET6, "fd00::2", v6);
	assert_memory_equal(k[0].addr, v6, 16);
	static const uint8_t any[16] = { 0 };
	assert_memory_equal(k[1].addr, any, 16);
	assert_int_equal(k[1].port, htons(10));
	assert_memory_equal(k[2].addr, any, 16);
	assert_int_equal(k[2].port, htons(11));
}

static void test_sl__xsk_parse_feed_bad(void **state)
{
	(void)state;
	struct sl_xdp_feed_key k[2];
	char bad[64];
	static const char *const wrong[] = { "", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0",
					     "10.0.0.1:65536", "10.0.0.1:-1", "10.0.0.1:1x",
					     "10.0.0.300:5", "fd00::1:5", "[fd00::1]5",
					     "[10.0.0.1]:5", "a:1,", "host.example:5" };
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
		assert_int_equal(sl__xsk_parse_feed(wrong[i], k, 2, NULL, 0), SL_ECONFIG);
	assert_int_equal(sl__xsk_parse_feed("1.2.3.4:5,1.2.3.4:99999", k, 2, bad, sizeof(bad)),
			 SL_ECONFIG);
	assert_string_equal(bad, "1.2.3.4:99999");
	/* More lines than room. */
	assert_int_equal(sl__xsk_parse_feed("1.2.3.4:5,1.2.3.4:6,1.2.3.4:7", k, 2, bad,
					    sizeof(bad)),
			 SL_ECONFIG);
	assert_string_equal(bad, "1.2.3.4:7");
}

static void test_sl__xsk_frame_size(void **state)
{
	(void)state;
	assert_int_equal(sl__xsk_frame_size(1500), 2048);
	assert_int_equal(sl__xsk_frame_size(2048 - 256 - 22), 2048);
	assert_int_equal(sl__xsk_frame_size(2048 - 256 - 22 + 1), 4096);
	assert_int_equal(sl__xsk_frame_size(3506), 4096);
	assert_int_equal(sl__xsk_frame_size(4096 - 256 - 22), 4096);
	assert_int_equal(sl__xsk_frame_size(4096 - 256 - 22 + 1), 0);
	assert_int_equal(sl__xsk_frame_size(9000), 0);
}

static void test_sl_xsk_open_refusals(void **state)
{
	(void)state;
	struct sl_xsk_config c;
	struct sl_xsk *x = NULL;
	char why[256];

	sl_xsk_config_init(&c);
	assert_int_equal(c.version, SL_XSK_CONFIG_VERSION);
	assert_int_equal(c.queues, 1);
	assert_int_equal(c.ring_size, 2048);
	c.feed = "10.0.0.2:26477";
	assert_int_equal(sl_xsk_open(&c, &x, why, sizeof(why)), SL_ECONFIG);
	assert_string_equal(why, "no interface given");

	c.ifname = "sl-no-such-if0";
	assert_int_equal(sl_xsk_open(&c, &x, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "no network interface 'sl-no-such-if0'");

	c.feed = "10.0.0.2";
	assert_int_equal(sl_xsk_open(&c, &x, why, sizeof(why)), SL_ECONFIG);
	assert_non_null(strstr(why, "bad feed line '10.0.0.2'"));

	c.feed = "10.0.0.2:1";
	c.ring_size = 1000;
	assert_int_equal(sl_xsk_open(&c, &x, why, sizeof(why)), SL_ECONFIG);
	c.ring_size = 2048;
	c.mode = SL_XSK_MODE_GENERIC;
	c.zero_copy = SL_XSK_ZC_ON;
	assert_int_equal(sl_xsk_open(&c, &x, why, sizeof(why)), SL_ECONFIG);
	assert_string_equal(why, "zero-copy needs native mode (--xdp-mode native)");
	c.version = 99;
	assert_int_equal(sl_xsk_open(&c, &x, why, sizeof(why)), SL_EVERSION);
	assert_null(x);
	sl_xsk_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sl__xsk_parse_feed_lines),
		cmocka_unit_test(test_sl__xsk_parse_feed_bad),
		cmocka_unit_test(test_sl__xsk_frame_size),
		cmocka_unit_test(test_sl_xsk_open_refusals),
	};
	return cmocka_run_group_tests_name("xsk", tests, NULL, NULL);
}
