/* test_feed.c - the synthetic ITCH 5.0 session: deterministic bytes per seed, every message a
 * valid ITCH 5.0 message, every type present, order lifecycles a book could follow, and packets
 * that parse as contiguous MoldUDP64. Links feed, itch, mold and err.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sluice.h"
#include "feed.h"
#include "itch.h"
#include "mold.h"

#define OPEN_NS (34200ull * 1000000000ull)
#define DAY_NS	(86400ull * 1000000000ull)

static struct sl_feed *new_feed(uint64_t seed, uint64_t messages, uint32_t stocks)
{
	struct sl_feed_config c;
	struct sl_feed *f;

	sl__feed_config_init(&c);
	c.seed = seed;
	c.messages = messages;
	c.stocks = stocks;
	assert_int_equal(sl__feed_new(&c, &f), 0);
	return f;
}

/* The whole session's messages, back to back with u16 lengths; *n messages. Caller frees. */
static uint8_t *session_bytes(uint64_t seed, uint64_t messages, uint32_t stocks, size_t *size,
			      uint64_t *n)
{
	struct sl_feed *f = new_feed(seed, messages, stocks);
	uint8_t *out = malloc(messages * (SL_ITCH_MAX_LEN + 2));
	size_t pos = 0;
	int len;

	assert_non_null(out);
	*n = 0;
	while ((len = sl__feed_next_msg(f, out + pos + 2, SL_ITCH_MAX_LEN)) > 0) {
		sl__put_be16(out + pos, (uint16_t)len);
		pos += 2 + (size_t)len;
		(*n)++;
	}
	assert_int_equal(len, 0);
	/* Stays at the end. */
	assert_int_equal(sl__feed_next_msg(f, out, SL_ITCH_MAX_LEN), 0);
	sl__feed_free(f);
	*size = pos;
	return out;
}

static void test_feed_config_init_defaults(void **state)
{
	struct sl_feed_config c;

	(void)state;
	sl__feed_config_init(&c);
	assert_int_equal(c.stocks, 64);
	assert_int_equal(c.max_packet, 1400);
	assert_int_equal(c.first_seq, 1);
	assert_memory_equal(c.session, "SLUICE0001", SL_MOLD_SESSION_LEN);
}

static void test_feed_new_bad_config(void **state)
{
	struct sl_feed_config c;
	struct sl_feed *f = (struct sl_feed *)1;

	(void)state;
	sl__feed_config_init(&c);
	c.messages = 0;
	assert_int_equal(sl__feed_new(&c, &f), SL_ECONFIG);
	assert_null(f);
	sl__feed_config_init(&c);
	c.stocks = 0;
	assert_int_equal(sl__feed_new(&c, &f), SL_ECONFIG);
	c.stocks = 65536;
	assert_int_equal(sl__feed_new(&c, &f), SL_ECONFIG);
	sl__feed_config_init(&c);
	c.max_packet = SL_MOLD_HDR_LEN + 2 + SL_ITCH_MAX_LEN - 1;
	assert_int_equal(sl__feed_new(&c, &f), SL_ECONFIG);
	c.max_packet = SL_MOLD_MAX_PACKET + 1;
	assert_int_equal(sl__feed_new(&c, &f), SL_ECONFIG);
	sl__feed_config_init(&c);
	c.first_seq = 0;
	assert_int_equal(sl__feed_new(&c, &f), SL_ECONFIG);
	sl__feed_free(NULL);
}

static void test_feed_next_msg_deterministic(void **state)
{
	size_t sa, sb, sc;
	uint64_t na, nb, nc;
	uint8_t *a, *b, *c;

	(void)state;
	a = session_bytes(42, 20000, 64, &sa, &na);
	b = session_bytes(42, 20000, 64, &sb, &nb);
	c = session_bytes(43, 20000, 64, &sc, &nc);
	assert_int_equal(na, 20000);
	assert_int_equal(nb, 20000);
	assert_int_equal(nc, 20000);
	assert_int_equal(sa, sb);
	assert_memory_equal(a, b, sa);
	assert_true(sa != sc || memcmp(a, c, sa) != 0);
	free(a);
	free(b);
	free(c);
}

static void test_feed_next_msg_small_cap(void **state)
{
	struct sl_feed *f = new_feed(1, 10, 4);
	uint8_t buf[SL_ITCH_MAX_LEN];

	(void)state;
	assert_int_equal(sl__feed_next_msg(f, buf, SL_ITCH_MAX_LEN - 1), -ENOSPC);
	assert_int_equal(sl__feed_next_seq(f), 1);
	assert_true(sl__feed_next_msg(f, buf, sizeof(buf)) > 0);
	assert_int_equal(sl__feed_next_seq(f), 2);
	assert_memory_equal(sl__feed_session(f), "SLUICE0001", SL_MOLD_SESSION_LEN);
	sl__feed_free(f);
}

/* Exact counts, including sessions too short for the whole opening: the closing events are
 * always the last messages. */
static void test_feed_next_msg_exact_count(void **state)
{
	static const uint64_t counts[] = { 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 100, 1000, 5000 };
	const uint32_t stocks = 4; /* opening: O, S, 4 R, 4 H, Q = 11 messages */

	(void)state;
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		struct sl_feed *f = new_feed(7, counts[k], stocks);
		uint8_t buf[SL_ITCH_MAX_LEN];
		char codes[3] = { 0, 0, 0 };
		uint64_t n = 0;
		int len;

		while ((len = sl__feed_next_msg(f, buf, sizeof(buf))) > 0) {
			struct sl_itch_msg m;

			assert_int_equal(sl__itch_decode(buf, (size_t)len, &m), 0);
			codes[0] = codes[1];
			codes[1] = codes[2];
			codes[2] = m.type == 'S' ? m.u.system_event.event_code : '?';
			if (n == 0 && counts[k] > 3)
				assert_int_equal(codes[2], 'O');
			n++;
		}
		assert_int_equal(n, counts[k]);
		assert_int_equal(sl__feed_next_seq(f), 1 + counts[k]);
		assert_int_equal(codes[2], 'C');
		if (counts[k] >= 2)
			assert_int_equal(codes[1], 'E');
		if (counts[k] >= 3)
			assert_int_equal(codes[0], 'M');
		sl__feed_free(f);
	}
}

static const char all_types[] = "SRHYLVWKJhAFECXDUPQBINO";

/* Counts of each type in a session; fails naming the first ITCH 5.0 type that is missing. */
static void count_types(uint64_t seed, uint64_t messages, uint64_t seen[128])
{
	struct sl_feed *f = new_feed(seed, messages, 64);
	uint8_t buf[SL_ITCH_MAX_LEN];
	int len;

	memset(seen, 0, 128 * sizeof(seen[0]));
	while ((len = sl__feed_next_msg(f, buf, sizeof(buf))) > 0) {
		struct sl_itch_msg m;

		assert_int_equal(sl__itch_decode(buf, (size_t)len, &m), 0);
		assert_int_equal((size_t)len, sl__itch_msg_len(buf[0]));
		seen[m.type & 127]++;
	}
	for (const char *t = all_types; *t; t++) {
		if (!seen[(int)*t])
			fail_msg("seed %llu, %llu messages: type '%c' missing",
				 (unsigned long long)seed, (unsigned long long)messages, *t);
	}
	sl__feed_free(f);
}

static void test_feed_next_msg_every_type(void **state)
{
	static const uint64_t seeds[] = { 1, 2, 3, 99, 12345, 0xdeadbeef };
	uint64_t seen[128];

	(void)state;
	for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
		count_types(seeds[k], 20000, seen);
		/* The common types dominate as on a real feed. */
		assert_true(seen['A'] > seen['D']);
		assert_true(seen['D'] > seen['E']);
		assert_true(seen['A'] + seen['F'] > 20000 / 4);
	}
	/* The rare types come in cycles, not by chance: any seed has them all by 10,000. */
	for (uint64_t seed = 100; seed < 300; seed++)
		count_types(seed, 10000, seen);
}

/* ---- Lifecycle model: what a book built from the feed would see ------------------------- */

struct model_order {
	uint32_t shares; /* remaining; 0 = not live */
	uint16_t locate;
	char side;
	uint8_t ever;
};

struct model {
	struct model_order *orders; /* indexed by reference number */
	uint8_t *matches;	    /* 1 = seen, 2 = broken */
	uint64_t cap, last_ref, last_match, last_ts, live;
	char syms[65536][8];
	uint32_t stocks;
	uint64_t n;
};

static struct model_order *live_order(struct model *md, uint64_t ref, uint16_t locate)
{
	if (ref == 0 || ref >= md->cap || md->orders[ref].shares == 0)
		fail_msg("message %llu: order %llu is not live", (unsigned long long)md->n,
			 (unsigned long long)ref);
	if (md->orders[ref].locate != locate)
		fail_msg("message %llu: order %llu belongs to locate %u, not %u",
			 (unsigned long long)md->n, (unsigned long long)ref, md->orders[ref].locate,
			 locate);
	return &md->orders[ref];
}

static void new_ref(struct model *md, uint64_t ref, uint16_t locate, uint32_t shares, char side)
{
	assert_true(ref > md->last_ref);
	assert_true(ref < md->cap);
	assert_true(shares > 0);
	assert_true(side == 'B' || side == 'S');
	md->last_ref = ref;
	md->orders[ref].shares = shares;
	md->orders[ref].locate = locate;
	md->orders[ref].side = side;
	md->orders[ref].ever = 1;
	md->live++;
}

static void new_match(struct model *md, uint64_t match)
{
	assert_true(match > md->last_match);
	assert_true(match < md->cap);
	md->last_match = match;
	md->matches[match] = 1;
}

static void take(struct model *md, struct model_order *o, uint32_t shares)
{
	assert_true(shares >= 1);
	if (shares > o->shares)
		fail_msg("message %llu: %u shares taken from an order with %u",
			 (unsigned long long)md->n, shares, o->shares);
	o->shares -= shares;
	if (!o->shares)
		md->live--;
}

static void check_locate(struct model *md, uint16_t locate, const char stock[8])
{
	assert_true(locate >= 1 && locate <= md->stocks);
	assert_memory_equal(md->syms[locate], stock, 8);
}

static void apply(struct model *md, const struct sl_itch_msg *m)
{
	struct model_order *o;

	switch (m->type) {
	case 'R':
		assert_int_equal(m->locate, md->n - 2); /* after O and S, in locate order */
		memcpy(md->syms[m->locate], m->u.stock_directory.stock, 8);
		for (uint16_t l = 1; l < m->locate; l++)
			assert_memory_not_equal(md->syms[l], m->u.stock_directory.stock, 8);
		break;
	case 'H':
		check_locate(md, m->locate, m->u.trading_action.stock);
		assert_int_equal(m->u.trading_action.trading_state, 'T');
		break;
	case 'A':
	case 'F':
		check_locate(md, m->locate, m->u.add_order.stock);
		assert_true(m->u.add_order.price > 0);
		new_ref(md, m->u.add_order.ref, m->locate, m->u.add_order.shares,
			m->u.add_order.side);
		break;
	case 'E':
	case 'C':
		o = live_order(md, m->u.executed.ref, m->locate);
		take(md, o, m->u.executed.shares);
		new_match(md, m->u.executed.match);
		if (m->type == 'C')
			assert_true(m->u.executed.printable == 'Y' ||
				    m->u.executed.printable == 'N');
		break;
	case 'X':
		o = live_order(md, m->u.cancel.ref, m->locate);
		take(md, o, m->u.cancel.shares);
		break;
	case 'D':
		o = live_order(md, m->u.del.ref, m->locate);
		o->shares = 0;
		md->live--;
		break;
	case 'U':
		o = live_order(md, m->u.replace.orig_ref, m->locate);
		o->shares = 0;
		md->live--;
		new_ref(md, m->u.replace.new_ref, m->locate, m->u.replace.shares, o->side);
		assert_true(m->u.replace.price > 0);
		break;
	case 'P':
		check_locate(md, m->locate, m->u.trade.stock);
		assert_int_equal(m->u.trade.ref, 0);
		new_match(md, m->u.trade.match);
		break;
	case 'Q':
		check_locate(md, m->locate, m->u.cross_trade.stock);
		new_match(md, m->u.cross_trade.match);
		break;
	case 'B':
		if (m->u.broken_trade.match == 0 || m->u.broken_trade.match > md->last_match ||
		    md->matches[m->u.broken_trade.match] != 1)
			fail_msg("message %llu: broken trade names match %llu, not a live match",
				 (unsigned long long)md->n,
				 (unsigned long long)m->u.broken_trade.match);
		md->matches[m->u.broken_trade.match] = 2;
		break;
	default:
		break;
	}
}

static void check_lifecycle(uint64_t seed, uint64_t messages, uint32_t stocks)
{
	struct model *md = calloc(1, sizeof(*md));
	struct sl_feed *f = new_feed(seed, messages, stocks);
	uint8_t buf[SL_ITCH_MAX_LEN];
	int len;

	assert_non_null(md);
	md->cap = messages + 2;
	md->orders = calloc(md->cap, sizeof(*md->orders));
	md->matches = calloc(md->cap, 1);
	md->stocks = stocks;
	assert_non_null(md->orders);
	assert_non_null(md->matches);
	while ((len = sl__feed_next_msg(f, buf, sizeof(buf))) > 0) {
		struct sl_itch_msg m;
		uint64_t open_len = 3 + 2ull * stocks;

		assert_int_equal(sl__itch_decode(buf, (size_t)len, &m), 0);
		md->n++;
		if (m.timestamp < md->last_ts)
			fail_msg("message %llu: timestamp goes back", (unsigned long long)md->n);
		assert_true(m.timestamp >= OPEN_NS && m.timestamp < DAY_NS);
		md->last_ts = m.timestamp;
		/* The opening, in order: O, S, R per stock, H per stock, Q. */
		if (md->n == 1 || md->n == 2 || md->n == open_len) {
			char want = md->n == 1 ? 'O' : md->n == 2 ? 'S' : 'Q';

			assert_int_equal(m.type, 'S');
			assert_int_equal(m.u.system_event.event_code, want);
		} else if (md->n <= 2 + stocks) {
			assert_int_equal(m.type, 'R');
		} else if (md->n < open_len) {
			assert_int_equal(m.type, 'H');
			assert_int_equal(m.locate, md->n - 2 - stocks);
		} else if (md->n <= messages - 3) {
			/* No system event in the middle of the session. */
			assert_int_not_equal(m.type, 'S');
		}
		apply(md, &m);
	}
	assert_int_equal(md->n, messages);
	/* The book held orders and still does: lifecycles were not all instant. */
	assert_true(md->live > 0);
	sl__feed_free(f);
	free(md->orders);
	free(md->matches);
	free(md);
}

static void test_feed_next_msg_lifecycle(void **state)
{
	(void)state;
	check_lifecycle(1, 20000, 64);
	check_lifecycle(2, 200000, 16);
	check_lifecycle(3, 50000, 1);
	check_lifecycle(4, 100000, 700); /* more stocks than the real-looking tickers */
}

/* Packets carry exactly the messages sl__feed_next_msg gives for the same config, in full
 * packets, with contiguous sequences starting at first_seq. */
static void test_feed_next_packet_contiguous(void **state)
{
	struct sl_feed_config c;
	struct sl_feed *fp, *fm;
	uint8_t pkt[1400], msg[SL_ITCH_MAX_LEN];
	uint64_t expect = 1000, total = 0, packets = 0;
	int len;

	(void)state;
	sl__feed_config_init(&c);
	c.seed = 5;
	c.messages = 20000;
	c.first_seq = 1000;
	memcpy(c.session, "TEST000042", SL_MOLD_SESSION_LEN);
	assert_int_equal(sl__feed_new(&c, &fp), 0);
	assert_int_equal(sl__feed_new(&c, &fm), 0);
	{
		uint64_t first;
		uint16_t count;

		assert_int_equal(sl__feed_next_packet(fp, pkt, sizeof(pkt) - 1, &first, &count),
				 -ENOSPC);
	}
	assert_int_equal(sl__feed_next_seq(fp), 1000);

	for (;;) {
		struct sl_mold_hdr h;
		uint64_t first = 0;
		uint16_t count = 0;
		size_t pos = SL_MOLD_HDR_LEN;

		len = sl__feed_next_packet(fp, pkt, sizeof(pkt), &first, &count);
		if (len == 0)
			break;
		assert_true(len > SL_MOLD_HDR_LEN && len <= 1400);
		assert_int_equal(sl__mold_parse(pkt, (size_t)len, &h), 0);
		assert_memory_equal(h.session, "TEST000042", SL_MOLD_SESSION_LEN);
		assert_int_equal(h.seq, expect);
		assert_int_equal(first, expect);
		assert_int_equal(h.count, count);
		assert_true(count >= 1);
		for (uint16_t i = 0; i < count; i++) {
			uint16_t mlen = sl__be16(pkt + pos);
			int ml = sl__feed_next_msg(fm, msg, sizeof(msg));

			assert_int_equal(mlen, ml);
			assert_memory_equal(pkt + pos + 2, msg, mlen);
			pos += 2u + mlen;
		}
		assert_int_equal(pos, (size_t)len);
		expect += count;
		total += count;
		packets++;
		assert_int_equal(sl__feed_next_seq(fp), expect);
	}
	assert_int_equal(total, 20000);
	assert_int_equal(expect, 21000);
	assert_int_equal(sl__feed_next_msg(fm, msg, sizeof(msg)), 0);
	{
		uint64_t first;
		uint16_t count;

		assert_int_equal(sl__feed_next_packet(fp, pkt, sizeof(pkt), &first, &count), 0);
	}
	/* 20,000 messages of 20 to 50 bytes do not fit in fewer packets than this. */
	assert_true(packets >= 20000 * 22 / (1400 - SL_MOLD_HDR_LEN));
	sl__feed_free(fp);
	sl__feed_free(fm);
}

/* Packets are full: each one plus the first message of the next would exceed max_packet. */
static void test_feed_next_packet_full(void **state)
{
	static const uint32_t sizes[] = { 72, 100, 576, 1400, 9000 };

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct sl_feed_config c;
		struct sl_feed *f;
		uint8_t *pkt = malloc(sizes[k]);
		int len, prev = 0;
		uint64_t total = 0;

		assert_non_null(pkt);
		sl__feed_config_init(&c);
		c.messages = 5000;
		c.max_packet = sizes[k];
		assert_int_equal(sl__feed_new(&c, &f), 0);
		for (;;) {
			uint64_t first;
			uint16_t count;

			len = sl__feed_next_packet(f, pkt, sizes[k], &first, &count);
			if (len == 0)
				break;
			assert_true((uint32_t)len <= sizes[k]);
			if (prev) {
				/* The first message of this packet did not fit in the last one. */
				uint16_t first_len = sl__be16(pkt + SL_MOLD_HDR_LEN);

				assert_true((uint32_t)prev + 2 + first_len > sizes[k]);
			}
			prev = len;
			total += count;
		}
		assert_int_equal(total, 5000);
		sl__feed_free(f);
		free(pkt);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_feed_config_init_defaults),
		cmocka_unit_test(test_feed_new_bad_config),
		cmocka_unit_test(test_feed_next_msg_deterministic),
		cmocka_unit_test(test_feed_next_msg_small_cap),
		cmocka_unit_test(test_feed_next_msg_exact_count),
		cmocka_unit_test(test_feed_next_msg_every_type),
		cmocka_unit_test(test_feed_next_msg_lifecycle),
		cmocka_unit_test(test_feed_next_packet_contiguous),
		cmocka_unit_test(test_feed_next_packet_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
