/* test_memtable.c - the state machine of orders, trades and the stock directory, and lock-free
 * readers that never see half an update while the writer applies.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memtable.h"

static struct sl_itch_msg add(uint16_t locate, uint64_t ref, char side, uint32_t shares,
			      uint32_t price, const char *stock)
{
	struct sl_itch_msg m = { .type = 'A', .locate = locate, .timestamp = 1000 + ref };
	m.u.add_order.ref = ref;
	m.u.add_order.side = side;
	m.u.add_order.shares = shares;
	m.u.add_order.price = price;
	memset(m.u.add_order.stock, ' ', 8);
	memcpy(m.u.add_order.stock, stock, strlen(stock));
	return m;
}

static struct sl_itch_msg exec(uint16_t locate, uint64_t ref, uint32_t shares, uint64_t match)
{
	struct sl_itch_msg m = { .type = 'E', .locate = locate, .timestamp = 5000 + match };
	m.u.executed.ref = ref;
	m.u.executed.shares = shares;
	m.u.executed.match = match;
	return m;
}

static struct sl_itch_msg cancel(uint16_t locate, uint64_t ref, uint32_t shares)
{
	struct sl_itch_msg m = { .type = 'X', .locate = locate, .timestamp = 7000 };
	m.u.cancel.ref = ref;
	m.u.cancel.shares = shares;
	return m;
}

static struct sl_itch_msg del(uint16_t locate, uint64_t ref)
{
	struct sl_itch_msg m = { .type = 'D', .locate = locate, .timestamp = 8000 };
	m.u.del.ref = ref;
	return m;
}

static struct sl_memtable *new_mt(void)
{
	struct sl_memtable *m;
	assert_int_equal(sl__memtable_new(sl__os_default(), 1024, &m), 0);
	return m;
}

static void apply(struct sl_memtable *m, struct sl_itch_msg msg, uint64_t seq)
{
	assert_int_equal(sl__memtable_apply(m, &msg, seq), 0);
}

static void test_apply_add_order(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	apply(m, add(7, 42, 'B', 300, 1234500, "AAPL"), 1);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 7, 42, &o), 0);
	assert_int_equal(o.version, SL_ORDER_VERSION);
	assert_int_equal(o.locate, 7);
	assert_int_equal(o.ref, 42);
	assert_int_equal(o.side, 'B');
	assert_int_equal(o.status, SL_ORDER_OPEN);
	assert_int_equal(o.shares, 300);
	assert_int_equal(o.orig_shares, 300);
	assert_int_equal(o.price, 1234500);
	assert_string_equal(o.stock, "AAPL");
	assert_string_equal(o.mpid, "");
	assert_int_equal(o.added_seq, 1);
	assert_int_equal(o.added_ts, 1042);
	/* Same ref, other locate: a different key. */
	assert_int_equal(sl__memtable_get_order(m, 8, 42, &o), SL_ENOTFOUND);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders, 1);
	assert_int_equal(st.orders_open, 1);
	sl__memtable_free(m);
}

static void test_apply_add_order_mpid(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	struct sl_itch_msg f = add(3, 9, 'S', 100, 500, "MSFT");
	f.type = 'F';
	memcpy(f.u.add_order.mpid, "GSCO", 4);
	apply(m, f, 1);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 3, 9, &o), 0);
	assert_string_equal(o.mpid, "GSCO");
	assert_int_equal(o.side, 'S');
	sl__memtable_free(m);
}

static void test_apply_execute_partial_then_full(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	apply(m, add(1, 10, 'B', 300, 1000, "X"), 1);
	apply(m, exec(1, 10, 100, 77), 2);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 1, 10, &o), 0);
	assert_int_equal(o.status, SL_ORDER_OPEN);
	assert_int_equal(o.shares, 200);
	assert_int_equal(o.executed_shares, 100);
	assert_int_equal(o.updated_seq, 2);
	struct sl_trade t;
	assert_int_equal(sl__memtable_get_trade(m, 77, &t), 0);
	assert_int_equal(t.kind, 'E');
	assert_int_equal(t.ref, 10);
	assert_int_equal(t.shares, 100);
	assert_int_equal(t.price, 1000);
	assert_int_equal(t.side, 'B');
	assert_int_equal(t.seq, 2);
	assert_string_equal(t.stock, "X");
	/* An execution with price at another price, not printable. */
	struct sl_itch_msg c = exec(1, 10, 200, 78);
	c.type = 'C';
	c.u.executed.printable = 'N';
	c.u.executed.price = 999;
	apply(m, c, 3);
	assert_int_equal(sl__memtable_get_order(m, 1, 10, &o), 0);
	assert_int_equal(o.status, SL_ORDER_EXECUTED);
	assert_int_equal(o.shares, 0);
	assert_int_equal(o.executed_shares, 300);
	assert_int_equal(sl__memtable_get_trade(m, 78, &t), 0);
	assert_int_equal(t.kind, 'C');
	assert_int_equal(t.price, 999);
	assert_int_equal(t.printable, 'N');
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders_open, 0);
	assert_int_equal(st.trades, 2);
	sl__memtable_free(m);
}

static void test_apply_cancel_and_delete(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	apply(m, add(1, 1, 'B', 500, 10, "A"), 1);
	apply(m, add(1, 2, 'S', 500, 10, "A"), 2);
	apply(m, cancel(1, 1, 200), 3);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 1, 1, &o), 0);
	assert_int_equal(o.status, SL_ORDER_OPEN);
	assert_int_equal(o.shares, 300);
	assert_int_equal(o.cancelled_shares, 200);
	apply(m, cancel(1, 1, 300), 4);
	assert_int_equal(sl__memtable_get_order(m, 1, 1, &o), 0);
	assert_int_equal(o.status, SL_ORDER_CANCELLED);
	assert_int_equal(o.shares, 0);
	apply(m, del(1, 2), 5);
	assert_int_equal(sl__memtable_get_order(m, 1, 2, &o), 0);
	assert_int_equal(o.status, SL_ORDER_DELETED);
	assert_int_equal(o.shares, 0);
	assert_int_equal(o.cancelled_shares, 500);
	assert_int_equal(o.updated_seq, 5);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders, 2);
	assert_int_equal(st.orders_open, 0);
	sl__memtable_free(m);
}

static void test_apply_replace(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	struct sl_itch_msg f = add(4, 100, 'S', 200, 50000, "TSLA");
	f.type = 'F';
	memcpy(f.u.add_order.mpid, "MSCO", 4);
	apply(m, f, 1);
	struct sl_itch_msg u = { .type = 'U', .locate = 4, .timestamp = 9 };
	u.u.replace.orig_ref = 100;
	u.u.replace.new_ref = 101;
	u.u.replace.shares = 150;
	u.u.replace.price = 49900;
	apply(m, u, 2);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 4, 100, &o), 0);
	assert_int_equal(o.status, SL_ORDER_REPLACED);
	assert_int_equal(o.replaced_by, 101);
	assert_int_equal(o.shares, 0);
	assert_int_equal(sl__memtable_get_order(m, 4, 101, &o), 0);
	assert_int_equal(o.status, SL_ORDER_OPEN);
	assert_int_equal(o.replaces, 100);
	assert_int_equal(o.side, 'S');
	assert_int_equal(o.shares, 150);
	assert_int_equal(o.orig_shares, 150);
	assert_int_equal(o.price, 49900);
	assert_string_equal(o.stock, "TSLA");
	assert_string_equal(o.mpid, "MSCO");
	assert_int_equal(o.added_seq, 2);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders, 2);
	assert_int_equal(st.orders_open, 1);
	sl__memtable_free(m);
}

static void test_apply_missing_order(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	apply(m, exec(1, 5, 10, 1), 1);
	apply(m, cancel(1, 5, 10), 2);
	apply(m, del(1, 5), 3);
	struct sl_itch_msg u = { .type = 'U', .locate = 1 };
	u.u.replace.orig_ref = 5;
	u.u.replace.new_ref = 6;
	apply(m, u, 4);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders_missing, 4);
	assert_int_equal(st.orders, 0);
	assert_int_equal(st.trades, 0);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 1, 6, &o), SL_ENOTFOUND);
	sl__memtable_free(m);
}

static void test_apply_trades_cross_broken(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	struct sl_itch_msg p = { .type = 'P', .locate = 2, .timestamp = 11 };
	p.u.trade.ref = 0;
	p.u.trade.side = 'B';
	p.u.trade.shares = 400;
	p.u.trade.price = 7777;
	memcpy(p.u.trade.stock, "NVDA    ", 8);
	p.u.trade.match = 900;
	apply(m, p, 1);
	struct sl_itch_msg q = { .type = 'Q', .locate = 2, .timestamp = 12 };
	q.u.cross_trade.shares = 123456789012ull;
	memcpy(q.u.cross_trade.stock, "NVDA    ", 8);
	q.u.cross_trade.price = 8000;
	q.u.cross_trade.match = 901;
	q.u.cross_trade.cross_type = 'O';
	apply(m, q, 2);
	struct sl_itch_msg b = { .type = 'B', .locate = 2 };
	b.u.broken_trade.match = 900;
	apply(m, b, 3);
	struct sl_trade t;
	assert_int_equal(sl__memtable_get_trade(m, 900, &t), 0);
	assert_int_equal(t.kind, 'P');
	assert_int_equal(t.broken, 1);
	assert_int_equal(t.shares, 400);
	assert_string_equal(t.stock, "NVDA");
	assert_int_equal(sl__memtable_get_trade(m, 901, &t), 0);
	assert_int_equal(t.kind, 'Q');
	assert_int_equal(t.cross_type, 'O');
	assert_int_equal(t.shares, 123456789012ull);
	assert_int_equal(t.broken, 0);
	assert_int_equal(sl__memtable_get_trade(m, 902, &t), SL_ENOTFOUND);
	sl__memtable_free(m);
}

static void test_apply_stock_directory(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	struct sl_itch_msg r = { .type = 'R', .locate = 65535 };
	memcpy(r.u.stock_directory.stock, "ZVZZT   ", 8);
	r.u.stock_directory.market_category = 'Q';
	r.u.stock_directory.financial_status = 'N';
	r.u.stock_directory.round_lot_size = 100;
	apply(m, r, 1);
	struct sl_stock s;
	assert_int_equal(sl__memtable_get_stock(m, 65535, &s), 0);
	assert_string_equal(s.stock, "ZVZZT");
	assert_int_equal(s.market_category, 'Q');
	assert_int_equal(s.round_lot_size, 100);
	assert_int_equal(s.trading_state, 'T');
	struct sl_itch_msg h = { .type = 'H', .locate = 65535 };
	h.u.trading_action.trading_state = 'H';
	apply(m, h, 2);
	assert_int_equal(sl__memtable_get_stock(m, 65535, &s), 0);
	assert_int_equal(s.trading_state, 'H');
	assert_int_equal(s.seq, 2);
	assert_int_equal(sl__memtable_get_stock(m, 1, &s), SL_ENOTFOUND);
	sl__memtable_free(m);
}

static void test_apply_many_orders_grow(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	const uint64_t n = getenv("SL_TEST_QUICK") ? 100000 : 400000;
	for (uint64_t i = 1; i <= n; i++)
		apply(m, add((uint16_t)(i % 50), i, 'B', 100, (uint32_t)i, "G"), i);
	for (uint64_t i = 1; i <= n; i += 997) {
		struct sl_order o;
		assert_int_equal(sl__memtable_get_order(m, (uint16_t)(i % 50), i, &o), 0);
		assert_int_equal(o.price, (uint32_t)i);
	}
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders, n);
	sl__memtable_free(m);
}

/* Readers check an invariant that holds after every complete update and fails for a torn
 * read: shares + executed + cancelled == orig_shares. */
struct race {
	struct sl_memtable *m;
	volatile int done;
	uint64_t reads, torn;
};

static void *reader(void *arg)
{
	struct race *r = arg;
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
		for (uint64_t ref = 1; ref <= 64; ref++) {
			struct sl_order o;
			if (sl__memtable_get_order(r->m, 1, ref, &o))
				continue;
			r->reads++;
			if (o.shares + o.executed_shares + o.cancelled_shares != o.orig_shares)
				r->torn++;
		}
	}
	return NULL;
}

static void test_get_order_concurrent_readers(void **state)
{
	(void)state;
	struct race r = { .m = new_mt() };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
	uint64_t seq = 0, match = 0;
	const int rounds = getenv("SL_TEST_QUICK") ? 2000 : 10000;
	for (int round = 0; round < rounds; round++) {
		for (uint64_t ref = 1; ref <= 64; ref++)
			apply(r.m, add(1, ref, 'B', 1000, 5, "R"), ++seq);
		for (int k = 0; k < 3; k++)
			for (uint64_t ref = 1; ref <= 64; ref++) {
				apply(r.m, exec(1, ref, 100, ++match), ++seq);
				apply(r.m, cancel(1, ref, 50), ++seq);
			}
	}
	__atomic_store_n(&r.done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_true(r.reads > 0);
	assert_int_equal(r.torn, 0);
	sl__memtable_free(r.m);
}

/* Readers look up orders while the writer's inserts make the table grow many times: every
 * order published before a lookup is found, and no reader touches a freed slot array (ASan). */
struct growth {
	struct sl_memtable *m;
	uint64_t published; /* highest ref whose add has returned */
	volatile int done;
	uint64_t reads, missing;
};

static void *growth_reader(void *arg)
{
	struct growth *g = arg;
	uint64_t x = 88172645463325252ull;
	while (!__atomic_load_n(&g->done, __ATOMIC_ACQUIRE)) {
		uint64_t hi = __atomic_load_n(&g->published, __ATOMIC_ACQUIRE);
		if (!hi)
			continue;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t ref = 1 + x % hi;
		struct sl_order o;
		g->reads++;
		if (sl__memtable_get_order(g->m, (uint16_t)(ref & 7), ref, &o) != 0 || o.ref != ref)
			g->missing++;
	}
	return NULL;
}

static void test_get_order_during_growth(void **state)
{
	(void)state;
	struct growth g = { 0 };
	assert_int_equal(sl__memtable_new(sl__os_default(), 1024, &g.m), 0);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, growth_reader, &g), 0);
	const uint64_t n = getenv("SL_TEST_QUICK") ? 150000 : 600000;
	for (uint64_t ref = 1; ref <= n; ref++) {
		apply(g.m, add((uint16_t)(ref & 7), ref, 'S', 100, 1, "GROW"), ref);
		__atomic_store_n(&g.published, ref, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&g.done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_true(g.reads > 1000);
	assert_int_equal(g.missing, 0);
	sl__memtable_free(g.m);
}

/* A reader inside its section keeps every slot array it may be probing alive: the writer's
 * growth defers the frees until the reader leaves, then frees them all. */
struct holder {
	struct sl_memtable *m;
	volatile int held, release;
};

static void *hold_main(void *arg)
{
	struct holder *h = arg;
	assert_int_equal(sl__memtable_read_hold(h->m), 0);
	__atomic_store_n(&h->held, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&h->release, __ATOMIC_ACQUIRE))
		;
	sl__memtable_read_release(h->m);
	return NULL;
}

static void test_apply_growth_waits_for_readers(void **state)
{
	(void)state;
	struct holder h = { 0 };
	assert_int_equal(sl__memtable_new(sl__os_default(), 1024, &h.m), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, hold_main, &h), 0);
	while (!__atomic_load_n(&h.held, __ATOMIC_ACQUIRE))
		;
	uint64_t seq = 0;
	for (uint64_t ref = 1; ref <= 50000; ref++)
		apply(h.m, add(1, ref, 'B', 100, 1, "HOLD"), ++seq);
	/* Several doublings happened; none of the old arrays may be freed yet. */
	unsigned pending = sl__memtable_pending_frees(h.m);
	assert_true(pending >= 3);
	__atomic_store_n(&h.release, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	/* The writer frees them as it goes on (it polls every 1024 applies). */
	for (uint64_t ref = 50001; ref <= 60000 && sl__memtable_pending_frees(h.m); ref++)
		apply(h.m, add(1, ref, 'B', 100, 1, "HOLD"), ++seq);
	assert_int_equal(sl__memtable_pending_frees(h.m), 0);
	sl__memtable_free(h.m);
}

struct seen {
	struct sl_memtable *m;
	int orders, trades, stocks, mismatches;
};

static int see_order(void *arg, const struct sl_order *o)
{
	struct seen *s = arg;
	struct sl_order g;
	s->orders++;
	if (sl__memtable_get_order(s->m, o->locate, o->ref, &g) || memcmp(&g, o, sizeof(g)))
		s->mismatches++;
	return 0;
}

static int see_trade(void *arg, const struct sl_trade *t)
{
	struct seen *s = arg;
	struct sl_trade g;
	s->trades++;
	if (sl__memtable_get_trade(s->m, t->match, &g) || memcmp(&g, t, sizeof(g)))
		s->mismatches++;
	return 0;
}

static int see_stock(void *arg, const struct sl_stock *st)
{
	struct seen *s = arg;
	s->stocks++;
	return st->locate == 65535 ? 7 : 0; /* stop at the last stock, to test early stop */
}

static void test_foreach_visits_every_record(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	for (uint64_t ref = 1; ref <= 40000; ref++) /* several arena chunks */
		apply(m, add((uint16_t)(ref % 9), ref, 'B', 300, 10, "W"), ref);
	for (uint64_t ref = 1; ref <= 9000; ref++)
		apply(m, exec((uint16_t)(ref % 9), ref, 100, 500000 + ref), 40000 + ref);
	struct sl_itch_msg r = { .type = 'R', .locate = 2 };
	memcpy(r.u.stock_directory.stock, "AAA     ", 8);
	apply(m, r, 60000);
	r.locate = 65535;
	apply(m, r, 60001);
	struct seen s = { .m = m };
	struct sl_memtable_visitor v = { see_order, see_trade, see_stock, &s };
	assert_int_equal(sl__memtable_foreach(m, &v), 7);
	assert_int_equal(s.orders, 40000);
	assert_int_equal(s.stocks, 2);
	assert_int_equal(s.trades, 0); /* stopped before the trades */
	v.stock = NULL;
	memset(&s, 0, sizeof(s));
	s.m = m;
	assert_int_equal(sl__memtable_foreach(m, &v), 0);
	assert_int_equal(s.orders, 40000);
	assert_int_equal(s.trades, 9000);
	assert_int_equal(s.mismatches, 0);
	sl__memtable_free(m);
}

static void test_carry_open_orders_and_stocks(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt(), *n = new_mt();
	apply(m, add(1, 1, 'B', 300, 10, "A"), 1);  /* stays open, partly executed */
	apply(m, exec(1, 1, 100, 900), 2);
	apply(m, add(1, 2, 'S', 100, 11, "A"), 3);  /* deleted */
	apply(m, del(1, 2), 4);
	apply(m, add(2, 3, 'S', 100, 12, "B"), 5);  /* executed in full */
	apply(m, exec(2, 3, 100, 901), 6);
	apply(m, add(2, 4, 'B', 500, 13, "B"), 7);  /* open */
	struct sl_itch_msg r = { .type = 'R', .locate = 1 };
	memcpy(r.u.stock_directory.stock, "A       ", 8);
	apply(m, r, 8);
	assert_int_equal(sl__memtable_carry(m, n), 0);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(n, &st);
	assert_int_equal(st.orders, 2);
	assert_int_equal(st.orders_open, 2);
	assert_int_equal(st.stocks, 1);
	assert_int_equal(st.trades, 0);
	struct sl_order a, b;
	assert_int_equal(sl__memtable_get_order(m, 1, 1, &a), 0);
	assert_int_equal(sl__memtable_get_order(n, 1, 1, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(sl__memtable_get_order(n, 1, 2, &b), SL_ENOTFOUND);
	assert_int_equal(sl__memtable_get_order(n, 2, 3, &b), SL_ENOTFOUND);
	assert_int_equal(sl__memtable_get_order(n, 2, 4, &b), 0);
	struct sl_stock s;
	assert_int_equal(sl__memtable_get_stock(n, 1, &s), 0);
	assert_string_equal(s.stock, "A");
	/* Later messages apply to the carried state as they would have to the old. */
	apply(n, exec(1, 1, 200, 902), 9);
	assert_int_equal(sl__memtable_get_order(n, 1, 1, &b), 0);
	assert_int_equal(b.status, SL_ORDER_EXECUTED);
	assert_int_equal(b.executed_shares, 300);
	sl__memtable_get_stats(n, &st);
	assert_int_equal(st.orders_open, 1);
	assert_int_equal(st.orders_missing, 0);
	sl__memtable_free(m);
	sl__memtable_free(n);
}

static int resolve_order(void *arg, uint16_t locate, uint64_t ref, struct sl_order *out)
{
	return sl__memtable_get_order(arg, locate, ref, out);
}

static int resolve_trade(void *arg, uint64_t match, struct sl_trade *out)
{
	return sl__memtable_get_trade(arg, match, out);
}

static void test_apply_resolver_loads_older_state(void **state)
{
	(void)state;
	struct sl_memtable *old = new_mt(), *m = new_mt();
	struct sl_itch_msg f = add(5, 50, 'S', 400, 77, "MSFT");
	f.type = 'F';
	memcpy(f.u.add_order.mpid, "UBSS", 4);
	apply(old, f, 1);
	apply(old, exec(5, 50, 100, 600), 2);
	struct sl_memtable_resolver r = { resolve_order, resolve_trade, old };
	sl__memtable_set_resolver(m, &r);
	apply(m, exec(5, 50, 300, 601), 3);
	struct sl_order o;
	assert_int_equal(sl__memtable_get_order(m, 5, 50, &o), 0);
	assert_int_equal(o.status, SL_ORDER_EXECUTED);
	assert_int_equal(o.executed_shares, 400);
	assert_int_equal(o.shares, 0);
	assert_string_equal(o.stock, "MSFT");
	assert_string_equal(o.mpid, "UBSS");
	assert_int_equal(o.added_seq, 1);
	assert_int_equal(o.updated_seq, 3);
	/* A broken trade of the older memtable. */
	struct sl_itch_msg b = { .type = 'B', .locate = 5 };
	b.u.broken_trade.match = 600;
	apply(m, b, 4);
	struct sl_trade t;
	assert_int_equal(sl__memtable_get_trade(m, 600, &t), 0);
	assert_int_equal(t.broken, 1);
	assert_int_equal(t.shares, 100);
	assert_int_equal(t.seq, 2);
	assert_string_equal(t.stock, "MSFT");
	/* Unknown everywhere: counted missing, as without a resolver. */
	apply(m, exec(5, 99, 1, 602), 5);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders_missing, 1);
	assert_int_equal(st.orders_open, 0);
	sl__memtable_free(m);
	sl__memtable_free(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_add_order),
		cmocka_unit_test(test_apply_add_order_mpid),
		cmocka_unit_test(test_apply_execute_partial_then_full),
		cmocka_unit_test(test_apply_cancel_and_delete),
		cmocka_unit_test(test_apply_replace),
		cmocka_unit_test(test_apply_missing_order),
		cmocka_unit_test(test_apply_trades_cross_broken),
		cmocka_unit_test(test_apply_stock_directory),
		cmocka_unit_test(test_apply_many_orders_grow),
		cmocka_unit_test(test_get_order_concurrent_readers),
		cmocka_unit_test(test_get_order_during_growth),
		cmocka_unit_test(test_apply_growth_waits_for_readers),
		cmocka_unit_test(test_foreach_visits_every_record),
		cmocka_unit_test(test_carry_open_orders_and_stocks),
		cmocka_unit_test(test_apply_resolver_loads_older_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
