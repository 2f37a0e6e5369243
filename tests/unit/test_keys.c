/* test_keys.c - table keys sort as their fields do, and every value round-trips exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "log.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct okey {
	uint16_t locate;
	uint64_t ref;
	uint8_t k[SL_KEY_ORDER_LEN];
};

static int cmp_fields(const void *a, const void *b)
{
	const struct okey *x = a, *y = b;
	if (x->locate != y->locate)
		return x->locate < y->locate ? -1 : 1;
	return x->ref < y->ref ? -1 : x->ref > y->ref;
}

static int cmp_bytes(const void *a, const void *b)
{
	return memcmp(((const struct okey *)a)->k, ((const struct okey *)b)->k, SL_KEY_ORDER_LEN);
}

static void test_key_order_memcmp_is_numeric(void **state)
{
	(void)state;
	enum { N = 20000 };
	static struct okey a[N], b[N];
	uint64_t s = 99;
	for (int i = 0; i < N; i++) {
		a[i].locate = (uint16_t)rnd(&s);
		a[i].ref = rnd(&s) >> (rnd(&s) % 64);
		assert_int_equal(sl__key_order(a[i].k, a[i].locate, a[i].ref), SL_KEY_ORDER_LEN);
	}
	memcpy(b, a, sizeof(a));
	qsort(a, N, sizeof(a[0]), cmp_fields);
	qsort(b, N, sizeof(b[0]), cmp_bytes);
	for (int i = 0; i < N; i++) {
		assert_int_equal(a[i].locate, b[i].locate);
		assert_int_equal(a[i].ref, b[i].ref);
	}
	/* Events sort before orders, orders before stocks, stocks before trades. */
	uint8_t e[16], o[16], st[16], t[16];
	sl__key_event(e, UINT64_MAX);
	sl__key_order(o, 0, 0);
	sl__key_stock(st, 0);
	sl__key_trade(t, 0);
	assert_true(memcmp(e, o, 1) < 0 && memcmp(o, st, 1) < 0 && memcmp(st, t, 1) < 0);
}

static void test_key_parse_kinds(void **state)
{
	(void)state;
	uint8_t k[16];
	uint64_t a;
	uint16_t l;
	sl__key_order(k, 513, 0x0102030405060708ull);
	assert_int_equal(sl__key_parse(k, SL_KEY_ORDER_LEN, &a, &l), SL_KEY_ORDER);
	assert_int_equal(l, 513);
	assert_int_equal(a, 0x0102030405060708ull);
	assert_int_equal(k[1], 2);
	assert_int_equal(k[3], 1);
	sl__key_event(k, 42);
	assert_int_equal(sl__key_parse(k, SL_KEY_EVENT_LEN, &a, NULL), SL_KEY_EVENT);
	assert_int_equal(a, 42);
	sl__key_trade(k, 7);
	assert_int_equal(sl__key_parse(k, SL_KEY_TRADE_LEN, &a, NULL), SL_KEY_TRADE);
	sl__key_stock(k, 65535);
	assert_int_equal(sl__key_parse(k, SL_KEY_STOCK_LEN, NULL, &l), SL_KEY_STOCK);
	assert_int_equal(l, 65535);
	assert_int_equal(sl__key_parse(k, 4, NULL, NULL), 0);
	k[0] = 'Z';
	assert_int_equal(sl__key_parse(k, 3, NULL, NULL), 0);
	assert_int_equal(sl__key_parse(k, 0, NULL, NULL), 0);
}

static void test_val_order_round_trip(void **state)
{
	(void)state;
	struct sl_order o = {
		.version = SL_ORDER_VERSION, .locate = 9, .side = 'S', .status = SL_ORDER_REPLACED,
		.ref = 77, .price = 0xFFFFFFFFu, .shares = 1, .orig_shares = 2,
		.executed_shares = 3, .cancelled_shares = 4, .replaced_by = UINT64_MAX,
		.replaces = 5, .added_ts = 6, .updated_ts = 7, .added_seq = 8, .updated_seq = 9,
	};
	strcpy(o.stock, "GOOGLXYZ");
	strcpy(o.mpid, "GSCO");
	uint8_t v[SL_VAL_ORDER_LEN + 8];
	assert_int_equal(sl__val_order_encode(v, &o), SL_VAL_ORDER_LEN);
	struct sl_order d;
	assert_int_equal(sl__val_order_decode(v, SL_VAL_ORDER_LEN, 9, 77, &d), 0);
	assert_memory_equal(&d, &o, sizeof(o));
	strcpy(o.mpid, "");
	strcpy(o.stock, "A");
	sl__val_order_encode(v, &o);
	assert_int_equal(sl__val_order_decode(v, SL_VAL_ORDER_LEN, 9, 77, &d), 0);
	assert_string_equal(d.stock, "A");
	assert_string_equal(d.mpid, "");
	assert_int_equal(sl__val_order_decode(v, SL_VAL_ORDER_LEN - 1, 9, 77, &d), SL_ECORRUPT);
	v[0] = 2;
	assert_int_equal(sl__val_order_decode(v, SL_VAL_ORDER_LEN, 9, 77, &d), SL_ECORRUPT);
}

static void test_val_trade_stock_round_trip(void **state)
{
	(void)state;
	struct sl_trade t = { .version = SL_TRADE_VERSION, .locate = 3, .kind = 'Q', .side = ' ',
			      .match = 1000, .ref = 0, .cross_type = 'O', .printable = 'Y',
			      .broken = 1, .shares = 123456789012ull, .price = 99, .ts = 5,
			      .seq = 6 };
	strcpy(t.stock, "SPY");
	uint8_t v[128];
	assert_int_equal(sl__val_trade_encode(v, &t), SL_VAL_TRADE_LEN);
	struct sl_trade d;
	assert_int_equal(sl__val_trade_decode(v, SL_VAL_TRADE_LEN, 1000, &d), 0);
	assert_memory_equal(&d, &t, sizeof(t));
	assert_int_equal(sl__val_trade_decode(v, 10, 1000, &d), SL_ECORRUPT);
	struct sl_stock s = { .version = SL_STOCK_VERSION, .locate = 4, .market_category = 'Q',
			      .financial_status = 'N', .round_lot_size = 100,
			      .trading_state = 'H', .seq = 77 };
	strcpy(s.stock, "ZVZZT");
	assert_int_equal(sl__val_stock_encode(v, &s), SL_VAL_STOCK_LEN);
	struct sl_stock ds;
	assert_int_equal(sl__val_stock_decode(v, SL_VAL_STOCK_LEN, 4, &ds), 0);
	assert_memory_equal(&ds, &s, sizeof(s));
	assert_int_equal(sl__val_stock_decode(v, SL_VAL_STOCK_LEN + 1, 4, &ds), SL_ECORRUPT);
}

static void test_val_event_round_trip(void **state)
{
	(void)state;
	uint8_t msg[50], v[128];
	for (int i = 0; i < 50; i++)
		msg[i] = (uint8_t)(i * 7);
	size_t n = sl__val_event_encode(v, SL_LOG_MSG, 0x1122334455667788ull, msg, 50);
	assert_int_equal(n, SL_VAL_EVENT_HDR + 50);
	uint32_t kind;
	uint64_t rx;
	const uint8_t *p;
	size_t plen;
	assert_int_equal(sl__val_event_decode(v, n, &kind, &rx, &p, &plen), 0);
	assert_int_equal(kind, SL_LOG_MSG);
	assert_int_equal(rx, 0x1122334455667788ull);
	assert_int_equal(plen, 50);
	assert_memory_equal(p, msg, 50);
	n = sl__val_event_encode(v, SL_LOG_GAP, 1, NULL, 0);
	assert_int_equal(sl__val_event_decode(v, n, &kind, &rx, &p, &plen), 0);
	assert_int_equal(plen, 0);
	assert_int_equal(sl__val_event_decode(v, SL_VAL_EVENT_HDR - 1, &kind, &rx, &p, &plen),
			 SL_ECORRUPT);
	v[1] = 0;
	assert_int_equal(sl__val_event_decode(v, n, &kind, &rx, &p, &plen), SL_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_order_memcmp_is_numeric),
		cmocka_unit_test(test_key_parse_kinds),
		cmocka_unit_test(test_val_order_round_trip),
		cmocka_unit_test(test_val_trade_stock_round_trip),
		cmocka_unit_test(test_val_event_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
