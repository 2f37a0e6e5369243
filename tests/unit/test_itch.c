/* test_itch.c - unit tests of the ITCH 5.0 codec: hand-built messages decode field by field,
 * random messages of every type survive decode/encode byte for byte, every truncation and random
 * garbage is refused without a crash, and format output is exact and always valid JSON. Links
 * itch.o and err.o only. Messages are built here byte by byte from the spec, not with itch.c's
 * structs, so a layout error in itch.c cannot hide behind the same error in the test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itch.h"
#include "sluice.h"

/* ---- Helpers -------------------------------------------------------------------------------- */

/* The spec's message lengths (type byte included), written out independently of itch.c. */
static const struct {
	uint8_t type;
	size_t len;
} spec[] = {
	{ 'S', 12 }, { 'R', 39 }, { 'H', 25 }, { 'Y', 20 }, { 'L', 26 }, { 'V', 35 },
	{ 'W', 12 }, { 'K', 28 }, { 'J', 35 }, { 'h', 21 }, { 'A', 36 }, { 'F', 40 },
	{ 'E', 31 }, { 'C', 36 }, { 'X', 23 }, { 'D', 19 }, { 'U', 35 }, { 'P', 44 },
	{ 'Q', 40 }, { 'B', 19 }, { 'I', 50 }, { 'N', 20 }, { 'O', 48 },
};
#define NSPEC (sizeof(spec) / sizeof(spec[0]))

static size_t spec_len(uint8_t type)
{
	size_t i;

	for (i = 0; i < NSPEC; i++)
		if (spec[i].type == type)
			return spec[i].len;
	return 0;
}

/* Under `make check` (ASan, SL_TEST_QUICK=1) the random loops run fewer rounds. */
static unsigned rounds(unsigned full)
{
	const char *q = getenv("SL_TEST_QUICK");

	return q && *q && *q != '0' ? full / 10 : full;
}

/* splitmix64: a fixed seed makes every failure reproducible. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed;
}

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rnd_fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* A message under construction, big-endian fields appended in spec order. */
struct wb {
	uint8_t b[SL_ITCH_MAX_LEN + 16];
	size_t n;
};

static void wb_u(struct wb *w, uint64_t v, int bytes)
{
	int i;

	for (i = bytes - 1; i >= 0; i--)
		w->b[w->n++] = (uint8_t)(v >> (8 * i));
}

static void wb_c(struct wb *w, char c)
{
	w->b[w->n++] = (uint8_t)c;
}

/* An alpha field of n bytes: s, then space padding. */
static void wb_s(struct wb *w, const char *s, size_t n)
{
	size_t l = strlen(s);

	assert_true(l <= n);
	memcpy(w->b + w->n, s, l);
	memset(w->b + w->n + l, ' ', n - l);
	w->n += n;
}

static void wb_hdr(struct wb *w, char type, uint16_t locate, uint16_t tracking, uint64_t ts)
{
	w->n = 0;
	wb_c(w, type);
	wb_u(w, locate, 2);
	wb_u(w, tracking, 2);
	wb_u(w, ts, 6);
}

/* The header every field-by-field test uses: every byte distinct, so a byte-order or offset
 * slip shows as a wrong value. */
static const uint16_t std_locate = 0x0102;
static const uint16_t std_tracking = 0x0304;
static const uint64_t std_ts = 0x0a0b0c0d0e0full;

static void wb_std(struct wb *w, char type)
{
	wb_hdr(w, type, std_locate, std_tracking, std_ts);
}

/* Decode from a heap copy of exactly w->n bytes so ASan catches any read past the end. */
static int decode_exact(const uint8_t *p, size_t n, struct sl_itch_msg *m)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, p, n);
	rc = sl__itch_decode(copy, n, m);
	free(copy);
	return rc;
}

/* Decode a hand-built message that must be valid and carry the standard header. */
static void decode_std(const struct wb *w, struct sl_itch_msg *m)
{
	assert_int_equal(w->n, spec_len(w->b[0]));
	assert_int_equal(decode_exact(w->b, w->n, m), 0);
	assert_int_equal(m->type, w->b[0]);
	assert_int_equal(m->locate, std_locate);
	assert_int_equal(m->tracking, std_tracking);
	assert_int_equal(m->timestamp, std_ts);
}

/* Check that re-encoding m gives back exactly the bytes it came from. */
static void assert_reencodes(const struct sl_itch_msg *m, const struct wb *w)
{
	uint8_t out[SL_ITCH_MAX_LEN];

	assert_int_equal(sl__itch_encode(m, out, sizeof(out)), (int)w->n);
	assert_memory_equal(out, w->b, w->n);
}

/* ---- A minimal JSON checker ----------------------------------------------------------------- */

/* Accepts exactly what format may produce: one flat object whose values are strings or unsigned
 * integers, pure ASCII, no control bytes, valid escapes, no duplicate keys. Returns the number of
 * keys, or -1. */
struct jp {
	const char *s;
	const char *keys[64];
	size_t klen[64];
	int nkeys;
};

static int jp_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int jp_string(struct jp *j)
{
	if (*j->s != '"')
		return -1;
	j->s++;
	for (;;) {
		unsigned char c = (unsigned char)*j->s;

		if (c == '"') {
			j->s++;
			return 0;
		}
		if (c < 0x20 || c >= 0x7f)
			return -1;
		if (c == '\\') {
			j->s++;
			if (*j->s == 'u') {
				int i;

				for (i = 1; i <= 4; i++)
					if (!jp_hex(j->s[i]))
						return -1;
				j->s += 5;
				continue;
			}
			if (!*j->s || !strchr("\"\\/bfnrt", *j->s))
				return -1;
		}
		j->s++;
	}
}

static int jp_number(struct jp *j)
{
	if (*j->s == '0') {
		j->s++;
		return (*j->s >= '0' && *j->s <= '9') ? -1 : 0;
	}
	if (!(*j->s >= '1' && *j->s <= '9'))
		return -1;
	while (*j->s >= '0' && *j->s <= '9')
		j->s++;
	return 0;
}

static int json_check(const char *s)
{
	struct jp j = { .s = s };
	int i;

	if (*j.s++ != '{')
		return -1;
	for (;;) {
		const char *k = j.s + 1;

		if (jp_string(&j) < 0 || j.nkeys == 64)
			return -1;
		for (i = 0; i < j.nkeys; i++)
			if (j.klen[i] == (size_t)(j.s - 1 - k) && !memcmp(j.keys[i], k, j.klen[i]))
				return -1;
		j.keys[j.nkeys] = k;
		j.klen[j.nkeys++] = (size_t)(j.s - 1 - k);
		if (*j.s++ != ':')
			return -1;
		if (*j.s == '"' ? jp_string(&j) < 0 : jp_number(&j) < 0)
			return -1;
		if (*j.s == '}')
			break;
		if (*j.s++ != ',')
			return -1;
	}
	return j.s[1] == '\0' ? j.nkeys : -1;
}

/* Text: "<type> <name>" then " key=value" tokens; keys are [a-z0-9_], values visible ASCII and
 * no key repeats. Returns the number of key=value tokens, or -1. */
static int text_check(const char *s, const struct sl_itch_msg *m)
{
	const char *name = sl__itch_type_name(m->type);
	const char *keys[64];
	size_t klen[64];
	int n = 0, i;

	if ((uint8_t)s[0] != m->type || s[1] != ' ' || strncmp(s + 2, name, strlen(name)))
		return -1;
	s += 2 + strlen(name);
	while (*s) {
		const char *k;

		if (*s++ != ' ' || n == 64)
			return -1;
		k = s;
		while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')
			s++;
		if (s == k || *s != '=')
			return -1;
		for (i = 0; i < n; i++)
			if (klen[i] == (size_t)(s - k) && !memcmp(keys[i], k, klen[i]))
				return -1;
		keys[n] = k;
		klen[n++] = (size_t)(s - k);
		s++;
		while (*s && *s != ' ') {
			if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
				return -1;
			s++;
		}
	}
	return n;
}

/* Format m both ways, check both outputs, and check that every smaller cap truncates to a
 * NUL-terminated prefix while returning the same length. */
static void check_format(const struct sl_itch_msg *m)
{
	char full[2048], small[2048];
	int flags, n;
	size_t cap;

	for (flags = 0; flags <= SL_FORMAT_JSON; flags += SL_FORMAT_JSON) {
		n = sl__itch_format(m, flags, full, sizeof(full));
		assert_true(n > 0 && (size_t)n < sizeof(full));
		assert_int_equal(strlen(full), n);
		assert_int_equal(sl__itch_format(m, flags, NULL, 0), n);
		if (flags & SL_FORMAT_JSON)
			assert_true(json_check(full) > 0);
		else
			assert_true(text_check(full, m) > 0);
		for (cap = 1; cap <= (size_t)n + 1; cap += 1 + cap / 4) {
			memset(small, 0x7e, sizeof(small));
			assert_int_equal(sl__itch_format(m, flags, small, cap), n);
			assert_int_equal(strlen(small), cap - 1 < (size_t)n ? cap - 1 : (size_t)n);
			assert_memory_equal(small, full, strlen(small));
			assert_int_equal(small[cap], 0x7e);
		}
	}
}

/* ---- sl__itch_msg_len, sl__itch_type_name --------------------------------------------------- */

static void test_itch_msg_len_spec(void **state)
{
	size_t max = 0, known = 0;
	int t;

	(void)state;
	for (t = 0; t < 256; t++) {
		assert_int_equal(sl__itch_msg_len((uint8_t)t), spec_len((uint8_t)t));
		if (sl__itch_msg_len((uint8_t)t)) {
			known++;
			if (sl__itch_msg_len((uint8_t)t) > max)
				max = sl__itch_msg_len((uint8_t)t);
		}
	}
	assert_int_equal(known, 23);
	assert_int_equal(max, SL_ITCH_MAX_LEN);
}

static void test_itch_type_name_all(void **state)
{
	size_t i, k;
	int t;

	(void)state;
	for (i = 0; i < NSPEC; i++) {
		const char *a = sl__itch_type_name(spec[i].type);

		assert_non_null(a);
		assert_true(strlen(a) > 0);
		for (k = 0; k < i; k++)
			assert_string_not_equal(a, sl__itch_type_name(spec[k].type));
	}
	for (t = 0; t < 256; t++)
		if (!spec_len((uint8_t)t))
			assert_null(sl__itch_type_name((uint8_t)t));
	assert_string_equal(sl__itch_type_name('A'), "add_order");
	assert_string_equal(sl__itch_type_name('F'), "add_order_mpid");
	assert_string_equal(sl__itch_type_name('C'), "order_executed_price");
	assert_string_equal(sl__itch_type_name('h'), "operational_halt");
}

/* ---- sl__itch_decode: one hand-built message per type ---------------------------------------- */

static void test_itch_decode_system_event(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'S');
	wb_c(&w, 'O');
	decode_std(&w, &m);
	assert_int_equal(m.u.system_event.event_code, 'O');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_stock_directory(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	/* Every one-byte field gets a different letter so a swapped pair shows. */
	wb_std(&w, 'R');
	wb_s(&w, "ABCDEFGH", 8);
	wb_c(&w, 'Q');
	wb_c(&w, 'D');
	wb_u(&w, 0x11223344, 4);
	wb_c(&w, 'Y');
	wb_c(&w, 'C');
	wb_s(&w, "AI", 2);
	wb_c(&w, 'P');
	wb_c(&w, 'N');
	wb_c(&w, 'I');
	wb_c(&w, '2');
	wb_c(&w, 'E');
	wb_u(&w, 0x55667788, 4);
	wb_c(&w, 'V');
	decode_std(&w, &m);
	assert_memory_equal(m.u.stock_directory.stock, "ABCDEFGH", 8);
	assert_int_equal(m.u.stock_directory.market_category, 'Q');
	assert_int_equal(m.u.stock_directory.financial_status, 'D');
	assert_int_equal(m.u.stock_directory.round_lot_size, 0x11223344);
	assert_int_equal(m.u.stock_directory.round_lots_only, 'Y');
	assert_int_equal(m.u.stock_directory.issue_classification, 'C');
	assert_memory_equal(m.u.stock_directory.issue_subtype, "AI", 2);
	assert_int_equal(m.u.stock_directory.authenticity, 'P');
	assert_int_equal(m.u.stock_directory.short_sale_threshold, 'N');
	assert_int_equal(m.u.stock_directory.ipo_flag, 'I');
	assert_int_equal(m.u.stock_directory.luld_ref_price_tier, '2');
	assert_int_equal(m.u.stock_directory.etp_flag, 'E');
	assert_int_equal(m.u.stock_directory.etp_leverage_factor, 0x55667788);
	assert_int_equal(m.u.stock_directory.inverse_indicator, 'V');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_trading_action(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'H');
	wb_s(&w, "AAPL", 8);
	wb_c(&w, 'H');
	wb_c(&w, 'r');
	wb_s(&w, "T1", 4);
	decode_std(&w, &m);
	assert_memory_equal(m.u.trading_action.stock, "AAPL    ", 8);
	assert_int_equal(m.u.trading_action.trading_state, 'H');
	assert_int_equal(m.u.trading_action.reserved, 'r');
	assert_memory_equal(m.u.trading_action.reason, "T1  ", 4);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_reg_sho(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'Y');
	wb_s(&w, "MSFT", 8);
	wb_c(&w, '1');
	decode_std(&w, &m);
	assert_memory_equal(m.u.reg_sho.stock, "MSFT    ", 8);
	assert_int_equal(m.u.reg_sho.action, '1');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_mp_position(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'L');
	wb_s(&w, "GSCO", 4);
	wb_s(&w, "IBM", 8);
	wb_c(&w, 'Y');
	wb_c(&w, 'N');
	wb_c(&w, 'A');
	decode_std(&w, &m);
	assert_memory_equal(m.u.mp_position.mpid, "GSCO", 4);
	assert_memory_equal(m.u.mp_position.stock, "IBM     ", 8);
	assert_int_equal(m.u.mp_position.primary_mm, 'Y');
	assert_int_equal(m.u.mp_position.mm_mode, 'N');
	assert_int_equal(m.u.mp_position.participant_state, 'A');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_mwcb_decline(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'V');
	wb_u(&w, 0x0102030405060708ull, 8);
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_u(&w, 0x2122232425262728ull, 8);
	decode_std(&w, &m);
	assert_int_equal(m.u.mwcb_decline.level1, 0x0102030405060708ull);
	assert_int_equal(m.u.mwcb_decline.level2, 0x1112131415161718ull);
	assert_int_equal(m.u.mwcb_decline.level3, 0x2122232425262728ull);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_mwcb_status(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'W');
	wb_c(&w, '2');
	decode_std(&w, &m);
	assert_int_equal(m.u.mwcb_status.breached_level, '2');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_ipo_quoting(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'K');
	wb_s(&w, "NEWCO", 8);
	wb_u(&w, 0x01020304, 4);
	wb_c(&w, 'A');
	wb_u(&w, 0x11223344, 4);
	decode_std(&w, &m);
	assert_memory_equal(m.u.ipo_quoting.stock, "NEWCO   ", 8);
	assert_int_equal(m.u.ipo_quoting.release_time, 0x01020304);
	assert_int_equal(m.u.ipo_quoting.release_qualifier, 'A');
	assert_int_equal(m.u.ipo_quoting.ipo_price, 0x11223344);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_luld_collar(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'J');
	wb_s(&w, "TSLA", 8);
	wb_u(&w, 0x01020304, 4);
	wb_u(&w, 0x11121314, 4);
	wb_u(&w, 0x21222324, 4);
	wb_u(&w, 0x31323334, 4);
	decode_std(&w, &m);
	assert_memory_equal(m.u.luld_collar.stock, "TSLA    ", 8);
	assert_int_equal(m.u.luld_collar.ref_price, 0x01020304);
	assert_int_equal(m.u.luld_collar.upper_price, 0x11121314);
	assert_int_equal(m.u.luld_collar.lower_price, 0x21222324);
	assert_int_equal(m.u.luld_collar.extension, 0x31323334);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_operational_halt(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'h');
	wb_s(&w, "HALT", 8);
	wb_c(&w, 'Q');
	wb_c(&w, 'H');
	decode_std(&w, &m);
	assert_memory_equal(m.u.operational_halt.stock, "HALT    ", 8);
	assert_int_equal(m.u.operational_halt.market_code, 'Q');
	assert_int_equal(m.u.operational_halt.action, 'H');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_add_order(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'A');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_c(&w, 'B');
	wb_u(&w, 0x21222324, 4);
	wb_s(&w, "AAPL", 8);
	wb_u(&w, 0x31323334, 4);
	decode_std(&w, &m);
	assert_int_equal(m.u.add_order.ref, 0x1112131415161718ull);
	assert_int_equal(m.u.add_order.side, 'B');
	assert_int_equal(m.u.add_order.shares, 0x21222324);
	assert_memory_equal(m.u.add_order.stock, "AAPL    ", 8);
	assert_int_equal(m.u.add_order.price, 0x31323334);
	/* A carries no attribution: the field reads as zeros, not as stale memory. */
	assert_memory_equal(m.u.add_order.mpid, "\0\0\0\0", 4);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_add_order_mpid(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'F');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_c(&w, 'S');
	wb_u(&w, 0x21222324, 4);
	wb_s(&w, "BRK A", 8);
	wb_u(&w, 0x31323334, 4);
	wb_s(&w, "MSCO", 4);
	decode_std(&w, &m);
	assert_int_equal(m.u.add_order.ref, 0x1112131415161718ull);
	assert_int_equal(m.u.add_order.side, 'S');
	assert_int_equal(m.u.add_order.shares, 0x21222324);
	assert_memory_equal(m.u.add_order.stock, "BRK A   ", 8);
	assert_int_equal(m.u.add_order.price, 0x31323334);
	assert_memory_equal(m.u.add_order.mpid, "MSCO", 4);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_order_executed(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'E');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_u(&w, 0x21222324, 4);
	wb_u(&w, 0x3132333435363738ull, 8);
	decode_std(&w, &m);
	assert_int_equal(m.u.executed.ref, 0x1112131415161718ull);
	assert_int_equal(m.u.executed.shares, 0x21222324);
	assert_int_equal(m.u.executed.match, 0x3132333435363738ull);
	assert_int_equal(m.u.executed.printable, 0);
	assert_int_equal(m.u.executed.price, 0);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_order_executed_price(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'C');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_u(&w, 0x21222324, 4);
	wb_u(&w, 0x3132333435363738ull, 8);
	wb_c(&w, 'N');
	wb_u(&w, 0x41424344, 4);
	decode_std(&w, &m);
	assert_int_equal(m.u.executed.ref, 0x1112131415161718ull);
	assert_int_equal(m.u.executed.shares, 0x21222324);
	assert_int_equal(m.u.executed.match, 0x3132333435363738ull);
	assert_int_equal(m.u.executed.printable, 'N');
	assert_int_equal(m.u.executed.price, 0x41424344);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_order_cancel(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'X');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_u(&w, 0x21222324, 4);
	decode_std(&w, &m);
	assert_int_equal(m.u.cancel.ref, 0x1112131415161718ull);
	assert_int_equal(m.u.cancel.shares, 0x21222324);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_order_delete(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'D');
	wb_u(&w, 0x1112131415161718ull, 8);
	decode_std(&w, &m);
	assert_int_equal(m.u.del.ref, 0x1112131415161718ull);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_order_replace(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'U');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_u(&w, 0x2122232425262728ull, 8);
	wb_u(&w, 0x31323334, 4);
	wb_u(&w, 0x41424344, 4);
	decode_std(&w, &m);
	assert_int_equal(m.u.replace.orig_ref, 0x1112131415161718ull);
	assert_int_equal(m.u.replace.new_ref, 0x2122232425262728ull);
	assert_int_equal(m.u.replace.shares, 0x31323334);
	assert_int_equal(m.u.replace.price, 0x41424344);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_trade(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'P');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_c(&w, 'S');
	wb_u(&w, 0x21222324, 4);
	wb_s(&w, "QQQ", 8);
	wb_u(&w, 0x31323334, 4);
	wb_u(&w, 0x4142434445464748ull, 8);
	decode_std(&w, &m);
	assert_int_equal(m.u.trade.ref, 0x1112131415161718ull);
	assert_int_equal(m.u.trade.side, 'S');
	assert_int_equal(m.u.trade.shares, 0x21222324);
	assert_memory_equal(m.u.trade.stock, "QQQ     ", 8);
	assert_int_equal(m.u.trade.price, 0x31323334);
	assert_int_equal(m.u.trade.match, 0x4142434445464748ull);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_cross_trade(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'Q');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_s(&w, "SPY", 8);
	wb_u(&w, 0x21222324, 4);
	wb_u(&w, 0x3132333435363738ull, 8);
	wb_c(&w, 'O');
	decode_std(&w, &m);
	assert_int_equal(m.u.cross_trade.shares, 0x1112131415161718ull);
	assert_memory_equal(m.u.cross_trade.stock, "SPY     ", 8);
	assert_int_equal(m.u.cross_trade.price, 0x21222324);
	assert_int_equal(m.u.cross_trade.match, 0x3132333435363738ull);
	assert_int_equal(m.u.cross_trade.cross_type, 'O');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_broken_trade(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'B');
	wb_u(&w, 0x1112131415161718ull, 8);
	decode_std(&w, &m);
	assert_int_equal(m.u.broken_trade.match, 0x1112131415161718ull);
	assert_reencodes(&m, &w);
}

static void test_itch_decode_noii(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'I');
	wb_u(&w, 0x1112131415161718ull, 8);
	wb_u(&w, 0x2122232425262728ull, 8);
	wb_c(&w, 'B');
	wb_s(&w, "NVDA", 8);
	wb_u(&w, 0x31323334, 4);
	wb_u(&w, 0x41424344, 4);
	wb_u(&w, 0x51525354, 4);
	wb_c(&w, 'C');
	wb_c(&w, 'L');
	decode_std(&w, &m);
	assert_int_equal(m.u.noii.paired_shares, 0x1112131415161718ull);
	assert_int_equal(m.u.noii.imbalance_shares, 0x2122232425262728ull);
	assert_int_equal(m.u.noii.imbalance_direction, 'B');
	assert_memory_equal(m.u.noii.stock, "NVDA    ", 8);
	assert_int_equal(m.u.noii.far_price, 0x31323334);
	assert_int_equal(m.u.noii.near_price, 0x41424344);
	assert_int_equal(m.u.noii.ref_price, 0x51525354);
	assert_int_equal(m.u.noii.cross_type, 'C');
	assert_int_equal(m.u.noii.price_variation, 'L');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_rpii(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'N');
	wb_s(&w, "AMD", 8);
	wb_c(&w, 'A');
	decode_std(&w, &m);
	assert_memory_equal(m.u.rpii.stock, "AMD     ", 8);
	assert_int_equal(m.u.rpii.interest_flag, 'A');
	assert_reencodes(&m, &w);
}

static void test_itch_decode_dlcr(void **state)
{
	struct sl_itch_msg m;
	struct wb w;

	(void)state;
	wb_std(&w, 'O');
	wb_s(&w, "DLCR", 8);
	wb_c(&w, 'Y');
	wb_u(&w, 0x11121314, 4);
	wb_u(&w, 0x21222324, 4);
	wb_u(&w, 0x31323334, 4);
	wb_u(&w, 0x4142434445464748ull, 8);
	wb_u(&w, 0x51525354, 4);
	wb_u(&w, 0x61626364, 4);
	decode_std(&w, &m);
	assert_memory_equal(m.u.dlcr.stock, "DLCR    ", 8);
	assert_int_equal(m.u.dlcr.open_eligibility, 'Y');
	assert_int_equal(m.u.dlcr.min_price, 0x11121314);
	assert_int_equal(m.u.dlcr.max_price, 0x21222324);
	assert_int_equal(m.u.dlcr.near_price, 0x31323334);
	assert_int_equal(m.u.dlcr.near_time, 0x4142434445464748ull);
	assert_int_equal(m.u.dlcr.lower_collar, 0x51525354);
	assert_int_equal(m.u.dlcr.upper_collar, 0x61626364);
	assert_reencodes(&m, &w);
}

/* ---- sl__itch_decode: refusals --------------------------------------------------------------- */

static void test_itch_decode_unknown_type(void **state)
{
	uint8_t buf[SL_ITCH_MAX_LEN + 8];
	struct sl_itch_msg m;
	size_t n;
	int t;

	(void)state;
	rnd_fill(buf, sizeof(buf));
	for (t = 0; t < 256; t++) {
		if (spec_len((uint8_t)t))
			continue;
		buf[0] = (uint8_t)t;
		for (n = 1; n <= sizeof(buf); n++)
			assert_int_equal(decode_exact(buf, n, &m), SL_EUNKNOWN);
	}
}

static void test_itch_decode_bad_length(void **state)
{
	uint8_t buf[SL_ITCH_MAX_LEN + 2], poison[sizeof(struct sl_itch_msg)];
	struct sl_itch_msg m;
	size_t i, n;

	(void)state;
	/* len == 0 must not even look at p. */
	assert_int_equal(sl__itch_decode(NULL, 0, &m), SL_EBADMSG);
	memset(poison, 0xa5, sizeof(poison));
	for (i = 0; i < NSPEC; i++) {
		rnd_fill(buf, sizeof(buf));
		buf[0] = spec[i].type;
		for (n = 0; n <= spec[i].len + 1; n++) {
			if (n == spec[i].len)
				continue;
			memcpy(&m, poison, sizeof(m));
			assert_int_equal(decode_exact(buf, n, &m), SL_EBADMSG);
			/* A refused message leaves *out alone. */
			assert_memory_equal(&m, poison, sizeof(m));
		}
		assert_int_equal(decode_exact(buf, spec[i].len, &m), 0);
	}
}

/* Random bytes of random lengths: the outcome is exactly what the table says, never a crash or
 * an out-of-bounds read (decode_exact uses an exact-size heap copy for ASan), and whatever does
 * decode formats to valid output. Half the inputs start with a real type letter so lengths near
 * the right one are common. */
static void test_itch_decode_garbage(void **state)
{
	uint8_t buf[2 * SL_ITCH_MAX_LEN];
	unsigned r, n_ok = 0, nr = rounds(200000);
	struct sl_itch_msg m;

	(void)state;
	rng_seed(0x6172626167650001ull);
	for (r = 0; r < nr; r++) {
		size_t n = (size_t)(rnd() % (sizeof(buf) + 1)), want;
		int rc;

		rnd_fill(buf, sizeof(buf));
		if (rnd() & 1) {
			buf[0] = spec[rnd() % NSPEC].type;
			if (rnd() & 1)
				n = spec_len(buf[0]) + (size_t)(rnd() % 3) - 1;
		}
		rc = decode_exact(buf, n, &m);
		want = n ? spec_len(buf[0]) : 0;
		if (n == 0)
			assert_int_equal(rc, SL_EBADMSG);
		else if (!want)
			assert_int_equal(rc, SL_EUNKNOWN);
		else if (n != want)
			assert_int_equal(rc, SL_EBADMSG);
		else
			assert_int_equal(rc, 0);
		if (rc == 0 && (n_ok++ % 16) == 0)
			check_format(&m);
	}
	assert_true(n_ok > nr / 20);
}

/* ---- sl__itch_encode ------------------------------------------------------------------------ */

/* encode(decode(bytes)) == bytes for random contents of every type, and decode(encode(m)) == m.
 * The output buffer starts as the complement of the input so a byte encode forgot to write
 * cannot match by luck. */
static void test_itch_encode_roundtrip_random(void **state)
{
	uint8_t in[SL_ITCH_MAX_LEN], out[SL_ITCH_MAX_LEN];
	struct sl_itch_msg m, m2;
	unsigned r, nr = rounds(20000);
	size_t i, k;

	(void)state;
	rng_seed(0x726f756e64747269ull);
	for (i = 0; i < NSPEC; i++) {
		size_t len = spec[i].len;

		for (r = 0; r < nr; r++) {
			rnd_fill(in, len);
			in[0] = spec[i].type;
			assert_int_equal(decode_exact(in, len, &m), 0);
			for (k = 0; k < len; k++)
				out[k] = (uint8_t)~in[k];
			assert_int_equal(sl__itch_encode(&m, out, len), (int)len);
			assert_memory_equal(out, in, len);
			assert_int_equal(sl__itch_decode(out, len, &m2), 0);
			assert_memory_equal(&m, &m2, sizeof(m));
		}
	}
}

/* The other direction, from a struct of random contents: every field that travels survives. */
static void test_itch_encode_random_struct(void **state)
{
	uint8_t out[SL_ITCH_MAX_LEN], out2[SL_ITCH_MAX_LEN];
	struct sl_itch_msg m, m2;
	unsigned r, nr = rounds(20000);
	size_t i;

	(void)state;
	rng_seed(0x7374727563740001ull);
	for (i = 0; i < NSPEC; i++) {
		for (r = 0; r < nr; r++) {
			rnd_fill((uint8_t *)&m, sizeof(m));
			m.type = spec[i].type;
			m.timestamp &= (1ull << 48) - 1;
			assert_int_equal(sl__itch_encode(&m, out, sizeof(out)), (int)spec[i].len);
			assert_int_equal(sl__itch_decode(out, spec[i].len, &m2), 0);
			assert_int_equal(m2.type, m.type);
			assert_int_equal(m2.locate, m.locate);
			assert_int_equal(m2.tracking, m.tracking);
			assert_int_equal(m2.timestamp, m.timestamp);
			assert_int_equal(sl__itch_encode(&m2, out2, sizeof(out2)),
					 (int)spec[i].len);
			assert_memory_equal(out, out2, spec[i].len);
		}
	}
	/* Spot checks that the union fields themselves came through, for the busiest types. */
	memset(&m, 0, sizeof(m));
	m.type = 'P';
	m.u.trade.ref = 0xfedcba9876543210ull;
	m.u.trade.side = 'B';
	m.u.trade.shares = 0xdeadbeef;
	memcpy(m.u.trade.stock, "GOOGL   ", 8);
	m.u.trade.price = 0xcafef00d;
	m.u.trade.match = 0x0123456789abcdefull;
	assert_int_equal(sl__itch_encode(&m, out, sizeof(out)), 44);
	assert_int_equal(sl__itch_decode(out, 44, &m2), 0);
	assert_memory_equal(&m, &m2, sizeof(m));
	memset(&m, 0, sizeof(m));
	m.type = 'Q';
	m.u.cross_trade.shares = 0xfedcba9876543210ull;
	memcpy(m.u.cross_trade.stock, "SPY     ", 8);
	m.u.cross_trade.price = 0x01020304;
	m.u.cross_trade.match = 0x1122334455667788ull;
	m.u.cross_trade.cross_type = 'C';
	assert_int_equal(sl__itch_encode(&m, out, sizeof(out)), 40);
	assert_int_equal(sl__itch_decode(out, 40, &m2), 0);
	assert_memory_equal(&m, &m2, sizeof(m));
}

static void test_itch_encode_short_cap(void **state)
{
	uint8_t buf[SL_ITCH_MAX_LEN + 8], in[SL_ITCH_MAX_LEN];
	struct sl_itch_msg m;
	size_t i, k, cap;

	(void)state;
	rng_seed(0x73686f7274636170ull);
	for (i = 0; i < NSPEC; i++) {
		rnd_fill(in, spec[i].len);
		in[0] = spec[i].type;
		assert_int_equal(sl__itch_decode(in, spec[i].len, &m), 0);
		assert_int_equal(sl__itch_encode(&m, NULL, 0), -ENOSPC);
		for (cap = 0; cap < spec[i].len; cap++) {
			memset(buf, 0x5a, sizeof(buf));
			assert_int_equal(sl__itch_encode(&m, buf, cap), -ENOSPC);
			/* Nothing is written on failure. */
			for (k = 0; k < sizeof(buf); k++)
				assert_int_equal(buf[k], 0x5a);
		}
		/* A larger buffer gets exactly len bytes and no more. */
		memset(buf, 0x5a, sizeof(buf));
		assert_int_equal(sl__itch_encode(&m, buf, sizeof(buf)), (int)spec[i].len);
		assert_memory_equal(buf, in, spec[i].len);
		for (cap = spec[i].len; cap < sizeof(buf); cap++)
			assert_int_equal(buf[cap], 0x5a);
	}
}

static void test_itch_encode_unknown_type(void **state)
{
	uint8_t buf[SL_ITCH_MAX_LEN];
	struct sl_itch_msg m;
	int t;

	(void)state;
	memset(&m, 0, sizeof(m));
	for (t = 0; t < 256; t++) {
		if (spec_len((uint8_t)t))
			continue;
		m.type = (uint8_t)t;
		assert_int_equal(sl__itch_encode(&m, buf, sizeof(buf)), SL_EUNKNOWN);
	}
}

static void test_itch_encode_timestamp_range(void **state)
{
	uint8_t buf[SL_ITCH_MAX_LEN];
	struct sl_itch_msg m, m2;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = 'D';
	m.timestamp = (1ull << 48) - 1;
	assert_int_equal(sl__itch_encode(&m, buf, sizeof(buf)), 19);
	assert_int_equal(sl__itch_decode(buf, 19, &m2), 0);
	assert_int_equal(m2.timestamp, (1ull << 48) - 1);
	m.timestamp = 1ull << 48;
	assert_int_equal(sl__itch_encode(&m, buf, sizeof(buf)), -ERANGE);
}

/* ---- sl__itch_format ------------------------------------------------------------------------ */

static void format_exact(const struct wb *w, int flags, const char *want)
{
	struct sl_itch_msg m;
	char buf[1024];

	assert_int_equal(decode_exact(w->b, w->n, &m), 0);
	assert_int_equal(sl__itch_format(&m, flags, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
	if (flags & SL_FORMAT_JSON)
		assert_true(json_check(buf) > 0);
	else
		assert_true(text_check(buf, &m) > 0);
}

static void build_add_order(struct wb *w)
{
	wb_hdr(w, 'A', 13, 0, 34200000001234ull);
	wb_u(w, 123, 8);
	wb_c(w, 'B');
	wb_u(w, 100, 4);
	wb_s(w, "AAPL", 8);
	wb_u(w, 1234500, 4);
}

static const char add_order_text[] =
	"A add_order locate=13 track=0 ts=34200.000001234 ref=123 side=B shares=100 stock=AAPL "
	"price=1234500 px=123.4500";
static const char add_order_json[] =
	"{\"type\":\"A\",\"name\":\"add_order\",\"locate\":13,\"tracking\":0,"
	"\"timestamp\":34200000001234,\"ref\":123,\"side\":\"B\",\"shares\":100,"
	"\"stock\":\"AAPL\",\"price\":1234500}";

static void test_itch_format_add_order(void **state)
{
	struct wb w;

	(void)state;
	build_add_order(&w);
	format_exact(&w, 0, add_order_text);
	format_exact(&w, SL_FORMAT_JSON, add_order_json);
}

static void test_itch_format_stock_directory(void **state)
{
	struct wb w;

	(void)state;
	wb_hdr(&w, 'R', 1, 2, 3600000000000ull);
	wb_s(&w, "ZVZZT", 8);
	wb_c(&w, 'Q');
	wb_c(&w, 'N');
	wb_u(&w, 100, 4);
	wb_c(&w, 'N');
	wb_c(&w, 'C');
	wb_s(&w, "Z", 2);
	wb_c(&w, 'P');
	wb_c(&w, 'N');
	wb_c(&w, ' ');
	wb_c(&w, '2');
	wb_c(&w, 'N');
	wb_u(&w, 0, 4);
	wb_c(&w, 'N');
	/* A one-byte field holding a space keeps it: \x20 in text, " " in JSON. */
	format_exact(&w, 0,
		     "R stock_directory locate=1 track=2 ts=3600.000000000 stock=ZVZZT "
		     "market_category=Q financial_status=N round_lot_size=100 round_lots_only=N "
		     "issue_classification=C issue_subtype=Z authenticity=P short_sale_threshold=N "
		     "ipo_flag=\\x20 luld_ref_price_tier=2 etp_flag=N etp_leverage_factor=0 "
		     "inverse_indicator=N");
	format_exact(
		&w, SL_FORMAT_JSON,
		"{\"type\":\"R\",\"name\":\"stock_directory\",\"locate\":1,\"tracking\":2,"
		"\"timestamp\":3600000000000,\"stock\":\"ZVZZT\",\"market_category\":\"Q\","
		"\"financial_status\":\"N\",\"round_lot_size\":100,\"round_lots_only\":\"N\","
		"\"issue_classification\":\"C\",\"issue_subtype\":\"Z\",\"authenticity\":\"P\","
		"\"short_sale_threshold\":\"N\",\"ipo_flag\":\" \",\"luld_ref_price_tier\":\"2\","
		"\"etp_flag\":\"N\",\"etp_leverage_factor\":0,\"inverse_indicator\":\"N\"}");
}

static void test_itch_format_order_executed_price(void **state)
{
	struct wb w;

	(void)state;
	wb_hdr(&w, 'C', 7, 9, 57600123456789ull);
	wb_u(&w, 42, 8);
	wb_u(&w, 50, 4);
	wb_u(&w, 777, 8);
	wb_c(&w, 'Y');
	wb_u(&w, 99, 4);
	format_exact(&w, 0,
		     "C order_executed_price locate=7 track=9 ts=57600.123456789 ref=42 shares=50 "
		     "match=777 printable=Y price=99 px=0.0099");
	format_exact(
		&w, SL_FORMAT_JSON,
		"{\"type\":\"C\",\"name\":\"order_executed_price\",\"locate\":7,\"tracking\":9,"
		"\"timestamp\":57600123456789,\"ref\":42,\"shares\":50,\"match\":777,"
		"\"printable\":\"Y\",\"price\":99}");
}

static void test_itch_format_mwcb_decline(void **state)
{
	struct wb w;

	(void)state;
	/* Price(8): eight implied decimals. */
	wb_hdr(&w, 'V', 0, 0, 34200000000000ull);
	wb_u(&w, 305000000000ull, 8);
	wb_u(&w, 284050000000ull, 8);
	wb_u(&w, 1, 8);
	format_exact(&w, 0,
		     "V mwcb_decline locate=0 track=0 ts=34200.000000000 level1=305000000000 "
		     "level1_px=3050.00000000 level2=284050000000 level2_px=2840.50000000 level3=1 "
		     "level3_px=0.00000001");
	format_exact(&w, SL_FORMAT_JSON,
		     "{\"type\":\"V\",\"name\":\"mwcb_decline\",\"locate\":0,\"tracking\":0,"
		     "\"timestamp\":34200000000000,\"level1\":305000000000,\"level2\":284050000000,"
		     "\"level3\":1}");
}

static void test_itch_format_dlcr(void **state)
{
	struct wb w;

	(void)state;
	wb_hdr(&w, 'O', 5, 6, 1);
	wb_s(&w, "DLCR", 8);
	wb_c(&w, 'Y');
	wb_u(&w, 100000, 4);
	wb_u(&w, 200000, 4);
	wb_u(&w, 150000, 4);
	wb_u(&w, 123456789, 8);
	wb_u(&w, 140000, 4);
	wb_u(&w, 4294967295u, 4);
	format_exact(&w, 0,
		     "O dlcr locate=5 track=6 ts=0.000000001 stock=DLCR open_eligibility_status=Y "
		     "min_allowable_price=100000 min_allowable_px=10.0000 "
		     "max_allowable_price=200000 max_allowable_px=20.0000 "
		     "near_execution_price=150000 near_execution_px=15.0000 "
		     "near_execution_time=123456789 "
		     "lower_price_range_collar=140000 lower_price_range_collar_px=14.0000 "
		     "upper_price_range_collar=4294967295 upper_price_range_collar_px=429496.7295");
	format_exact(
		&w, SL_FORMAT_JSON,
		"{\"type\":\"O\",\"name\":\"dlcr\",\"locate\":5,\"tracking\":6,\"timestamp\":1,"
		"\"stock\":\"DLCR\",\"open_eligibility_status\":\"Y\","
		"\"min_allowable_price\":100000,\"max_allowable_price\":200000,"
		"\"near_execution_price\":150000,\"near_execution_time\":123456789,"
		"\"lower_price_range_collar\":140000,\"upper_price_range_collar\":4294967295}");
}

static void test_itch_format_noii(void **state)
{
	struct wb w;

	(void)state;
	wb_hdr(&w, 'I', 3, 4, 57000000000000ull);
	wb_u(&w, 1000, 8);
	wb_u(&w, 250, 8);
	wb_c(&w, 'S');
	wb_s(&w, "NVDA", 8);
	wb_u(&w, 0, 4);
	wb_u(&w, 1000100, 4);
	wb_u(&w, 1000000, 4);
	wb_c(&w, 'C');
	wb_c(&w, ' ');
	format_exact(&w, SL_FORMAT_JSON,
		     "{\"type\":\"I\",\"name\":\"noii\",\"locate\":3,\"tracking\":4,"
		     "\"timestamp\":57000000000000,\"paired_shares\":1000,\"imbalance_shares\":250,"
		     "\"imbalance_direction\":\"S\",\"stock\":\"NVDA\",\"far_price\":0,"
		     "\"near_price\":1000100,\"current_ref_price\":1000000,\"cross_type\":\"C\","
		     "\"price_variation_indicator\":\" \"}");
	format_exact(&w, 0,
		     "I noii locate=3 track=4 ts=57000.000000000 paired_shares=1000 "
		     "imbalance_shares=250 imbalance_direction=S stock=NVDA far_price=0 "
		     "far_px=0.0000 near_price=1000100 near_px=100.0100 current_ref_price=1000000 "
		     "current_ref_px=100.0000 cross_type=C price_variation_indicator=\\x20");
}

/* Bytes that are not plain visible ASCII: quote, backslash, control bytes, DEL, high bytes, an
 * inner space (kept) and a trailing one (trimmed). */
static void test_itch_format_escapes(void **state)
{
	static const char stock[8] = { '"', '\\', 0x01, 'A', ' ', 0x7f, (char)0xff, ' ' };
	struct wb w;

	(void)state;
	wb_hdr(&w, 'F', 1, 1, 0);
	wb_u(&w, 1, 8);
	wb_c(&w, '\0');
	wb_u(&w, 1, 4);
	memcpy(w.b + w.n, stock, 8);
	w.n += 8;
	wb_u(&w, 1, 4);
	wb_s(&w, "\n", 4);
	format_exact(&w, SL_FORMAT_JSON,
		     "{\"type\":\"F\",\"name\":\"add_order_mpid\",\"locate\":1,\"tracking\":1,"
		     "\"timestamp\":0,\"ref\":1,\"side\":\"\\u0000\",\"shares\":1,"
		     "\"stock\":\"\\\"\\\\\\u0001A \\u007f\\u00ff\",\"price\":1,"
		     "\"mpid\":\"\\u000a\"}");
	format_exact(&w, 0,
		     "F add_order_mpid locate=1 track=1 ts=0.000000000 ref=1 side=\\x00 shares=1 "
		     "stock=\"\\x5c\\x01A\\x20\\x7f\\xff price=1 px=0.0001 mpid=\\x0a");
}

/* Every type, random contents: valid JSON with no duplicate key, well-formed text, and exact
 * snprintf semantics at every cap. */
static void test_itch_format_all_types_random(void **state)
{
	uint8_t in[SL_ITCH_MAX_LEN];
	struct sl_itch_msg m;
	unsigned r, nr = rounds(500);
	size_t i;

	(void)state;
	rng_seed(0x666f726d61740001ull);
	for (i = 0; i < NSPEC; i++) {
		for (r = 0; r < nr; r++) {
			rnd_fill(in, spec[i].len);
			in[0] = spec[i].type;
			assert_int_equal(sl__itch_decode(in, spec[i].len, &m), 0);
			check_format(&m);
		}
	}
}

/* The JSON keys of every type, in order: every field the wire carries is there, named as the
 * spec names it. Values are checked by the exact tests above and the round trips. */
static const struct {
	uint8_t type;
	const char *keys;
} json_keys[] = {
	{ 'S', "event_code" },
	{ 'R', "stock,market_category,financial_status,round_lot_size,round_lots_only,"
	       "issue_classification,issue_subtype,authenticity,short_sale_threshold,ipo_flag,"
	       "luld_ref_price_tier,etp_flag,etp_leverage_factor,inverse_indicator" },
	{ 'H', "stock,trading_state,reserved,reason" },
	{ 'Y', "stock,reg_sho_action" },
	{ 'L', "mpid,stock,primary_market_maker,market_maker_mode,market_participant_state" },
	{ 'V', "level1,level2,level3" },
	{ 'W', "breached_level" },
	{ 'K', "stock,release_time,release_qualifier,ipo_price" },
	{ 'J', "stock,ref_price,upper_price,lower_price,extension" },
	{ 'h', "stock,market_code,action" },
	{ 'A', "ref,side,shares,stock,price" },
	{ 'F', "ref,side,shares,stock,price,mpid" },
	{ 'E', "ref,shares,match" },
	{ 'C', "ref,shares,match,printable,price" },
	{ 'X', "ref,shares" },
	{ 'D', "ref" },
	{ 'U', "orig_ref,new_ref,shares,price" },
	{ 'P', "ref,side,shares,stock,price,match" },
	{ 'Q', "shares,stock,cross_price,match,cross_type" },
	{ 'B', "match" },
	{ 'I', "paired_shares,imbalance_shares,imbalance_direction,stock,far_price,near_price,"
	       "current_ref_price,cross_type,price_variation_indicator" },
	{ 'N', "stock,interest_flag" },
	{ 'O', "stock,open_eligibility_status,min_allowable_price,max_allowable_price,"
	       "near_execution_price,near_execution_time,lower_price_range_collar,"
	       "upper_price_range_collar" },
};

static void test_itch_format_json_keys(void **state)
{
	uint8_t in[SL_ITCH_MAX_LEN];
	char buf[2048], keys[1024], *k = keys;
	const char *s;
	struct sl_itch_msg m;
	size_t i;

	(void)state;
	assert_int_equal(sizeof(json_keys) / sizeof(json_keys[0]), NSPEC);
	rng_seed(0x6b65797300000001ull);
	for (i = 0; i < NSPEC; i++) {
		size_t len = spec_len(json_keys[i].type);

		rnd_fill(in, len);
		in[0] = json_keys[i].type;
		assert_int_equal(sl__itch_decode(in, len, &m), 0);
		assert_true(sl__itch_format(&m, SL_FORMAT_JSON, buf, sizeof(buf)) > 0);
		assert_true(json_check(buf) > 0);
		/* A key is a quoted string followed by ':'; values never contain an unescaped
		 * quote, so scanning for "...": finds exactly the keys. */
		k = keys;
		for (s = buf; (s = strchr(s, '"')) != NULL;) {
			const char *e = s + 1;

			while (*e != '"')
				e += *e == '\\' ? 2 : 1;
			if (e[1] == ':') {
				memcpy(k, s + 1, (size_t)(e - s - 1));
				k += e - s - 1;
				*k++ = ',';
			}
			s = e + 1;
		}
		k[-1] = '\0';
		assert_string_equal(keys + strlen("type,name,locate,tracking,timestamp,"),
				    json_keys[i].keys);
		assert_memory_equal(keys, "type,name,locate,tracking,timestamp,",
				    strlen("type,name,locate,tracking,timestamp,"));
	}
}

static void test_itch_format_cap_zero(void **state)
{
	struct sl_itch_msg m;
	struct wb w;
	char buf[4] = "xyz";
	int n;

	(void)state;
	build_add_order(&w);
	assert_int_equal(decode_exact(w.b, w.n, &m), 0);
	n = sl__itch_format(&m, 0, NULL, 0);
	assert_int_equal(n, strlen(add_order_text));
	assert_int_equal(sl__itch_format(&m, SL_FORMAT_JSON, NULL, 0), strlen(add_order_json));
	/* cap 0 writes nothing at all, not even a NUL. */
	assert_int_equal(sl__itch_format(&m, SL_FORMAT_JSON, buf, 0), strlen(add_order_json));
	assert_string_equal(buf, "xyz");
	assert_int_equal(sl__itch_format(&m, 0, buf, 1), n);
	assert_string_equal(buf, "");
	assert_int_equal(sl__itch_format(&m, 0, buf, sizeof(buf)), n);
	assert_string_equal(buf, "A a");
}

static void test_itch_format_unknown_type(void **state)
{
	struct sl_itch_msg m;
	char buf[16] = "junk";

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = 'Z';
	assert_int_equal(sl__itch_format(&m, 0, buf, sizeof(buf)), SL_EUNKNOWN);
	assert_string_equal(buf, "");
	assert_int_equal(sl__itch_format(&m, SL_FORMAT_JSON, NULL, 0), SL_EUNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_itch_msg_len_spec),
		cmocka_unit_test(test_itch_type_name_all),
		cmocka_unit_test(test_itch_decode_system_event),
		cmocka_unit_test(test_itch_decode_stock_directory),
		cmocka_unit_test(test_itch_decode_trading_action),
		cmocka_unit_test(test_itch_decode_reg_sho),
		cmocka_unit_test(test_itch_decode_mp_position),
		cmocka_unit_test(test_itch_decode_mwcb_decline),
		cmocka_unit_test(test_itch_decode_mwcb_status),
		cmocka_unit_test(test_itch_decode_ipo_quoting),
		cmocka_unit_test(test_itch_decode_luld_collar),
		cmocka_unit_test(test_itch_decode_operational_halt),
		cmocka_unit_test(test_itch_decode_add_order),
		cmocka_unit_test(test_itch_decode_add_order_mpid),
		cmocka_unit_test(test_itch_decode_order_executed),
		cmocka_unit_test(test_itch_decode_order_executed_price),
		cmocka_unit_test(test_itch_decode_order_cancel),
		cmocka_unit_test(test_itch_decode_order_delete),
		cmocka_unit_test(test_itch_decode_order_replace),
		cmocka_unit_test(test_itch_decode_trade),
		cmocka_unit_test(test_itch_decode_cross_trade),
		cmocka_unit_test(test_itch_decode_broken_trade),
		cmocka_unit_test(test_itch_decode_noii),
		cmocka_unit_test(test_itch_decode_rpii),
		cmocka_unit_test(test_itch_decode_dlcr),
		cmocka_unit_test(test_itch_decode_unknown_type),
		cmocka_unit_test(test_itch_decode_bad_length),
		cmocka_unit_test(test_itch_decode_garbage),
		cmocka_unit_test(test_itch_encode_roundtrip_random),
		cmocka_unit_test(test_itch_encode_random_struct),
		cmocka_unit_test(test_itch_encode_short_cap),
		cmocka_unit_test(test_itch_encode_unknown_type),
		cmocka_unit_test(test_itch_encode_timestamp_range),
		cmocka_unit_test(test_itch_format_add_order),
		cmocka_unit_test(test_itch_format_stock_directory),
		cmocka_unit_test(test_itch_format_order_executed_price),
		cmocka_unit_test(test_itch_format_mwcb_decline),
		cmocka_unit_test(test_itch_format_dlcr),
		cmocka_unit_test(test_itch_format_noii),
		cmocka_unit_test(test_itch_format_escapes),
		cmocka_unit_test(test_itch_format_all_types_random),
		cmocka_unit_test(test_itch_format_json_keys),
		cmocka_unit_test(test_itch_format_cap_zero),
		cmocka_unit_test(test_itch_format_unknown_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
