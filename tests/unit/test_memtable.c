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

/* ---- Per-stock scans ------------------------------------------------------------------------ */

/* What the scans return, collected. stop_after > 0 makes the callback return stop_ret on that
 * call. */
struct got {
	struct sl_order *orders;
	struct sl_trade *trades;
	size_t n, cap, stop_after;
	int stop_ret;
};

static void got_init(struct got *g, size_t cap)
{
	memset(g, 0, sizeof(*g));
	g->orders = calloc(cap, sizeof(*g->orders));
	g->trades = calloc(cap, sizeof(*g->trades));
	assert_non_null(g->orders);
	assert_non_null(g->trades);
	g->cap = cap;
}

static void got_release(struct got *g)
{
	free(g->orders);
	free(g->trades);
}

static int got_order(void *arg, const struct sl_order *o)
{
	struct got *g = arg;
	assert_true(g->n < g->cap);
	g->orders[g->n++] = *o;
	return g->n == g->stop_after ? g->stop_ret : 0;
}

static int got_trade(void *arg, const struct sl_trade *t)
{
	struct got *g = arg;
	assert_true(g->n < g->cap);
	g->trades[g->n++] = *t;
	return g->n == g->stop_after ? g->stop_ret : 0;
}

static size_t scan_orders(struct sl_memtable *m, uint16_t locate, struct got *g)
{
	g->n = 0;
	assert_int_equal(sl__memtable_scan_orders(m, locate, got_order, g), 0);
	return g->n;
}

static size_t scan_trades(struct sl_memtable *m, uint16_t locate, struct got *g)
{
	g->n = 0;
	assert_int_equal(sl__memtable_scan_trades(m, locate, got_trade, g), 0);
	return g->n;
}

/* A generated mix of every message that creates or changes records, and the reference the test
 * keeps of it: every order and trade record created, in creation order. */
struct key {
	uint16_t locate;
	uint64_t id; /* order reference or match number */
};

struct mix {
	struct key *orders, *trades;
	size_t norders, ntrades, cap;
	uint64_t rnd, ref, match, seq;
};

static const uint16_t mix_locates[] = { 1, 2, 3, 4, 5, 900, 65535 };
#define MIX_NLOCATES (sizeof(mix_locates) / sizeof(mix_locates[0]))

static uint64_t next_rnd(struct mix *x)
{
	x->rnd ^= x->rnd << 13;
	x->rnd ^= x->rnd >> 7;
	x->rnd ^= x->rnd << 17;
	return x->rnd;
}

static void mix_init(struct mix *x, size_t cap, uint64_t seed)
{
	memset(x, 0, sizeof(*x));
	x->orders = calloc(cap, sizeof(*x->orders));
	x->trades = calloc(cap, sizeof(*x->trades));
	assert_non_null(x->orders);
	assert_non_null(x->trades);
	x->cap = cap;
	x->rnd = seed;
}

static void mix_release(struct mix *x)
{
	free(x->orders);
	free(x->trades);
}

/* A fresh key: every 50th goes past 48 bits (the tables' rare path). */
static uint64_t fresh_id(uint64_t *counter)
{
	++*counter;
	return *counter % 50 ? *counter : *counter | 1ull << 50;
}

static void mix_order(struct mix *x, uint16_t locate, uint64_t ref)
{
	assert_true(x->norders < x->cap);
	x->orders[x->norders++] = (struct key){ locate, ref };
}

static void mix_trade(struct mix *x, uint16_t locate, uint64_t match)
{
	assert_true(x->ntrades < x->cap);
	x->trades[x->ntrades++] = (struct key){ locate, match };
}

static struct sl_itch_msg print_trade(uint16_t locate, uint64_t match, uint32_t shares)
{
	struct sl_itch_msg p = { .type = 'P', .locate = locate, .timestamp = 20000 + match };
	p.u.trade.ref = 0;
	p.u.trade.side = 'B';
	p.u.trade.shares = shares;
	p.u.trade.price = 4242;
	memcpy(p.u.trade.stock, "PRNT    ", 8);
	p.u.trade.match = match;
	return p;
}

static void apply_mix(struct sl_memtable *m, struct mix *x, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t k = next_rnd(x) % 100;
		const struct key *o = x->norders ? &x->orders[next_rnd(x) % x->norders] : NULL;
		uint16_t l = mix_locates[next_rnd(x) % MIX_NLOCATES];
		if (k < 35 || !o) { /* A or F: a new order */
			uint64_t ref = fresh_id(&x->ref);
			char side = k & 1 ? 'B' : 'S';
			uint32_t shares = 100 + (uint32_t)k * 10;
			struct sl_itch_msg a = add(l, ref, side, shares, (uint32_t)ref, "MIX");
			if (k & 2) {
				a.type = 'F';
				memcpy(a.u.add_order.mpid, "MIXX", 4);
			}
			apply(m, a, ++x->seq);
			mix_order(x, l, ref);
		} else if (k < 50) { /* E or C on a known order (open or not): a new trade */
			uint64_t match = fresh_id(&x->match);
			struct sl_itch_msg e = exec(o->locate, o->id, 40, match);
			if (k & 1) {
				e.type = 'C';
				e.u.executed.printable = 'Y';
				e.u.executed.price = 31337;
			}
			apply(m, e, ++x->seq);
			mix_trade(x, o->locate, match);
		} else if (k < 60) {
			apply(m, cancel(o->locate, o->id, 30), ++x->seq);
		} else if (k < 65) {
			apply(m, del(o->locate, o->id), ++x->seq);
		} else if (k < 75) { /* U: a new order replacing a known one */
			struct sl_itch_msg u = { .type = 'U', .locate = o->locate };
			u.u.replace.orig_ref = o->id;
			u.u.replace.new_ref = fresh_id(&x->ref);
			u.u.replace.shares = 77;
			u.u.replace.price = 88;
			apply(m, u, ++x->seq);
			mix_order(x, o->locate, u.u.replace.new_ref);
		} else if (k < 83) { /* P: a new trade */
			uint64_t match = fresh_id(&x->match);
			apply(m, print_trade(l, match, 10), ++x->seq);
			mix_trade(x, l, match);
		} else if (k < 90) { /* Q: a new trade */
			struct sl_itch_msg q = { .type = 'Q', .locate = l, .timestamp = 40000 };
			q.u.cross_trade.shares = 5000000000ull;
			memcpy(q.u.cross_trade.stock, "CROSS   ", 8);
			q.u.cross_trade.price = 100;
			q.u.cross_trade.match = fresh_id(&x->match);
			q.u.cross_trade.cross_type = 'C';
			apply(m, q, ++x->seq);
			mix_trade(x, l, q.u.cross_trade.match);
		} else if (k < 95 && x->ntrades) { /* a match number again, same stock: in place */
			const struct key *t = &x->trades[next_rnd(x) % x->ntrades];
			apply(m, print_trade(t->locate, t->id, 11), ++x->seq);
		} else { /* an order nobody knows: counted missing, no record */
			apply(m, exec(l, (1ull << 40) + (uint64_t)i, 1, fresh_id(&x->match)),
			      ++x->seq);
		}
	}
}

/* The reference's records of locate, newest first. */
static size_t expect(const struct key *v, size_t n, uint16_t locate, uint64_t *out)
{
	size_t k = 0;
	for (size_t i = n; i-- > 0;)
		if (v[i].locate == locate)
			out[k++] = v[i].id;
	return k;
}

/* Every locate's scans are exactly the reference's records, newest first, each as the point
 * lookups give it. */
static void check_scans(struct sl_memtable *m, const struct mix *x)
{
	struct got g;
	got_init(&g, x->cap);
	uint64_t *want = calloc(x->cap, sizeof(*want));
	assert_non_null(want);
	size_t orders = 0, trades = 0;
	const uint16_t unused[] = { 0, 6, 899, 65534 };
	for (size_t i = 0; i < MIX_NLOCATES + 4; i++) {
		uint16_t l = i < MIX_NLOCATES ? mix_locates[i] : unused[i - MIX_NLOCATES];
		size_t n = expect(x->orders, x->norders, l, want);
		assert_int_equal(scan_orders(m, l, &g), n);
		for (size_t k = 0; k < n; k++) {
			struct sl_order o;
			assert_int_equal(g.orders[k].ref, want[k]);
			assert_int_equal(g.orders[k].locate, l);
			assert_int_equal(sl__memtable_get_order(m, l, want[k], &o), 0);
			assert_memory_equal(&o, &g.orders[k], sizeof(o));
		}
		orders += n;
		n = expect(x->trades, x->ntrades, l, want);
		assert_int_equal(scan_trades(m, l, &g), n);
		for (size_t k = 0; k < n; k++) {
			struct sl_trade t;
			assert_int_equal(g.trades[k].match, want[k]);
			assert_int_equal(g.trades[k].locate, l);
			assert_int_equal(sl__memtable_get_trade(m, want[k], &t), 0);
			assert_memory_equal(&t, &g.trades[k], sizeof(t));
		}
		trades += n;
	}
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders, orders);
	assert_int_equal(st.trades, trades);
	free(want);
	got_release(&g);
}

static void test_scan_matches_reference(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt(); /* sized for 1024: the tables grow under the mix */
	struct mix x;
	mix_init(&x, 60000, 0x9e3779b97f4a7c15ull);
	apply_mix(m, &x, 20000);
	check_scans(m, &x);
	/* More of it after a first look: the new records go in front. */
	apply_mix(m, &x, 30000);
	check_scans(m, &x);
	assert_true(x.norders > 15000 && x.ntrades > 10000);
	mix_release(&x);
	sl__memtable_free(m);
}

static void test_scan_callback_stops(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	for (uint64_t ref = 1; ref <= 10; ref++) {
		apply(m, add(4, ref, 'B', 100, 1, "STOP"), ref);
		apply(m, exec(4, ref, 10, 100 + ref), 100 + ref);
	}
	struct got g;
	got_init(&g, 16);
	g.stop_after = 3;
	g.stop_ret = -42;
	assert_int_equal(sl__memtable_scan_orders(m, 4, got_order, &g), -42);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.orders[2].ref, 8);
	g.n = 0;
	g.stop_ret = 9;
	assert_int_equal(sl__memtable_scan_trades(m, 4, got_trade, &g), 9);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.trades[2].match, 108);
	/* Stopping at the last record still returns what the callback said. */
	g.n = 0;
	g.stop_after = 10;
	assert_int_equal(sl__memtable_scan_orders(m, 4, got_order, &g), 9);
	assert_int_equal(g.n, 10);
	g.stop_after = 0;
	assert_int_equal(scan_orders(m, 3, &g), 0);
	assert_int_equal(scan_trades(m, 5, &g), 0);
	got_release(&g);
	sl__memtable_free(m);
}

static void test_scan_orders_replace_and_reused_ref(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	apply(m, add(9, 100, 'S', 200, 500, "RPL"), 1);
	apply(m, add(9, 7, 'B', 300, 400, "RPL"), 2);
	struct sl_itch_msg u = { .type = 'U', .locate = 9, .timestamp = 3 };
	u.u.replace.orig_ref = 100;
	u.u.replace.new_ref = 101;
	u.u.replace.shares = 150;
	u.u.replace.price = 499;
	apply(m, u, 3);
	struct got g;
	got_init(&g, 8);
	assert_int_equal(scan_orders(m, 9, &g), 3);
	assert_int_equal(g.orders[0].ref, 101);
	assert_int_equal(g.orders[0].status, SL_ORDER_OPEN);
	assert_int_equal(g.orders[0].replaces, 100);
	assert_int_equal(g.orders[0].shares, 150);
	assert_int_equal(g.orders[1].ref, 7);
	assert_int_equal(g.orders[2].ref, 100);
	assert_int_equal(g.orders[2].status, SL_ORDER_REPLACED);
	assert_int_equal(g.orders[2].replaced_by, 101);
	/* A reference number used again for the stock overwrites its order, which keeps its
	 * place: no second entry. */
	apply(m, del(9, 7), 4);
	apply(m, add(9, 7, 'S', 60, 401, "RPL"), 5);
	assert_int_equal(scan_orders(m, 9, &g), 3);
	assert_int_equal(g.orders[1].ref, 7);
	assert_int_equal(g.orders[1].status, SL_ORDER_OPEN);
	assert_int_equal(g.orders[1].side, 'S');
	assert_int_equal(g.orders[1].shares, 60);
	assert_int_equal(g.orders[1].added_seq, 5);
	/* The same reference under another stock is another order. */
	apply(m, add(10, 7, 'B', 1, 1, "OTH"), 6);
	assert_int_equal(scan_orders(m, 9, &g), 3);
	assert_int_equal(scan_orders(m, 10, &g), 1);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.orders, 4);
	got_release(&g);
	sl__memtable_free(m);
}

static void test_scan_after_carry(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt(), *n = new_mt();
	struct mix x;
	mix_init(&x, 30000, 0xdecafbadull);
	apply_mix(m, &x, 12000);
	for (size_t i = 0; i < MIX_NLOCATES; i++) {
		struct sl_itch_msg r = { .type = 'R', .locate = mix_locates[i] };
		memcpy(r.u.stock_directory.stock, "CARRIED ", 8);
		r.u.stock_directory.round_lot_size = 100 + (uint32_t)i;
		apply(m, r, ++x.seq);
	}
	assert_int_equal(sl__memtable_carry(m, n), 0);
	/* The reference for n: the orders of m still open, in the order m created them. */
	struct mix y;
	mix_init(&y, x.cap, 1);
	for (size_t i = 0; i < x.norders; i++) {
		const struct key *k = &x.orders[i];
		struct sl_order o;
		assert_int_equal(sl__memtable_get_order(m, k->locate, k->id, &o), 0);
		if (o.status == SL_ORDER_OPEN)
			mix_order(&y, k->locate, k->id);
	}
	assert_true(y.norders > 1000 && y.norders < x.norders);
	check_scans(n, &y);
	/* Each carried order as it was in m. */
	struct got g;
	got_init(&g, x.cap);
	size_t carried = 0;
	for (size_t i = 0; i < MIX_NLOCATES; i++) {
		size_t k = scan_orders(n, mix_locates[i], &g);
		for (size_t j = 0; j < k; j++) {
			const struct sl_order *c = &g.orders[j];
			struct sl_order o;
			assert_int_equal(sl__memtable_get_order(m, c->locate, c->ref, &o), 0);
			assert_memory_equal(&o, c, sizeof(o));
		}
		carried += k;
		assert_int_equal(scan_trades(n, mix_locates[i], &g), 0);
		struct sl_stock a, b;
		assert_int_equal(sl__memtable_get_stock(m, mix_locates[i], &a), 0);
		assert_int_equal(sl__memtable_get_stock(n, mix_locates[i], &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
		assert_int_equal(b.round_lot_size, 100 + i);
	}
	assert_int_equal(carried, y.norders);
	/* Later messages on n: new records go in front of the carried ones. */
	y.ref = x.ref;
	y.match = x.match;
	y.seq = x.seq;
	y.rnd = 0x1234567ull;
	apply_mix(n, &y, 5000);
	check_scans(n, &y);
	got_release(&g);
	mix_release(&y);
	mix_release(&x);
	sl__memtable_free(m);
	sl__memtable_free(n);
}

static void test_scan_resolver_loaded_once(void **state)
{
	(void)state;
	struct sl_memtable *old = new_mt(), *m = new_mt();
	apply(old, add(5, 50, 'S', 400, 77, "OLD"), 1);
	apply(old, add(5, 51, 'B', 100, 78, "OLD"), 2);
	apply(old, add(6, 52, 'B', 100, 79, "OLD"), 3);
	apply(old, exec(5, 50, 100, 600), 4);
	struct sl_memtable_resolver r = { resolve_order, resolve_trade, old };
	sl__memtable_set_resolver(m, &r);
	/* 50 is loaded by the first message that names it, and found here by the next ones. */
	apply(m, exec(5, 50, 100, 601), 5);
	apply(m, cancel(5, 50, 10), 6);
	apply(m, exec(5, 50, 10, 602), 7);
	apply(m, del(5, 51), 8); /* loads 51 */
	struct sl_itch_msg u = { .type = 'U', .locate = 5, .timestamp = 9 };
	u.u.replace.orig_ref = 50;
	u.u.replace.new_ref = 53;
	u.u.replace.shares = 5;
	u.u.replace.price = 70;
	apply(m, u, 9);
	apply(m, add(5, 54, 'B', 1, 1, "NEW"), 10);
	struct sl_itch_msg b = { .type = 'B', .locate = 5 };
	b.u.broken_trade.match = 600; /* loads trade 600 */
	apply(m, b, 11);
	apply(m, b, 12);
	struct got g;
	got_init(&g, 16);
	assert_int_equal(scan_orders(m, 5, &g), 4);
	const uint64_t want[] = { 54, 53, 51, 50 };
	for (int i = 0; i < 4; i++) {
		struct sl_order o;
		assert_int_equal(g.orders[i].ref, want[i]);
		assert_int_equal(sl__memtable_get_order(m, 5, want[i], &o), 0);
		assert_memory_equal(&o, &g.orders[i], sizeof(o));
	}
	assert_int_equal(g.orders[3].status, SL_ORDER_REPLACED);
	assert_int_equal(g.orders[3].executed_shares, 210);
	assert_int_equal(g.orders[2].status, SL_ORDER_DELETED);
	assert_int_equal(scan_orders(m, 6, &g), 0); /* 52 was never asked for */
	assert_int_equal(scan_trades(m, 5, &g), 3);
	assert_int_equal(g.trades[0].match, 600);
	assert_int_equal(g.trades[0].broken, 1);
	assert_int_equal(g.trades[0].seq, 4);
	assert_int_equal(g.trades[1].match, 602);
	assert_int_equal(g.trades[2].match, 601);
	got_release(&g);
	sl__memtable_free(m);
	sl__memtable_free(old);
}

static int count_trade(void *arg, const struct sl_trade *t)
{
	(void)t;
	++*(int *)arg;
	return 0;
}

/* A match number used again under another stock (a feed error): its trade moves to that
 * stock's walk; the table, foreach and the count keep one trade. */
static void test_scan_trades_match_reused_elsewhere(void **state)
{
	(void)state;
	struct sl_memtable *m = new_mt();
	const uint64_t matches[] = { 900, (1ull << 52) + 900 }; /* the fast and the rare table */
	uint64_t seq = 0;
	for (int i = 0; i < 2; i++) {
		uint64_t mt = matches[i];
		uint16_t la = (uint16_t)(2 + 10 * i), lb = (uint16_t)(la + 1);
		apply(m, print_trade(la, mt, 10), ++seq);
		apply(m, print_trade(la, mt + 1, 11), ++seq);
		struct sl_memtable_stats before, after;
		sl__memtable_get_stats(m, &before);
		apply(m, print_trade(lb, mt, 12), ++seq);
		sl__memtable_get_stats(m, &after);
		assert_int_equal(after.trades, before.trades);
		assert_true(after.bytes > before.bytes); /* the new record is counted */
		struct got g;
		got_init(&g, 8);
		assert_int_equal(scan_trades(m, la, &g), 1);
		assert_int_equal(g.trades[0].match, mt + 1);
		assert_int_equal(scan_trades(m, lb, &g), 1);
		assert_int_equal(g.trades[0].match, mt);
		assert_int_equal(g.trades[0].shares, 12);
		struct sl_trade t;
		assert_int_equal(sl__memtable_get_trade(m, mt, &t), 0);
		assert_memory_equal(&t, &g.trades[0], sizeof(t));
		/* Broken and moved back: the newest record is the one marked and walked. */
		struct sl_itch_msg b = { .type = 'B', .locate = lb };
		b.u.broken_trade.match = mt;
		apply(m, b, ++seq);
		apply(m, print_trade(la, mt, 13), ++seq);
		assert_int_equal(scan_trades(m, lb, &g), 0);
		assert_int_equal(scan_trades(m, la, &g), 2);
		assert_int_equal(g.trades[0].match, mt);
		assert_int_equal(g.trades[0].shares, 13);
		assert_int_equal(g.trades[0].broken, 0);
		assert_int_equal(g.trades[1].match, mt + 1);
		/* The same stock again: in place. */
		apply(m, print_trade(la, mt, 14), ++seq);
		assert_int_equal(scan_trades(m, la, &g), 2);
		assert_int_equal(g.trades[0].shares, 14);
		got_release(&g);
	}
	int n = 0;
	struct sl_memtable_visitor v = { .trade = count_trade, .arg = &n };
	assert_int_equal(sl__memtable_foreach(m, &v), 0);
	assert_int_equal(n, 4);
	struct sl_memtable_stats st;
	sl__memtable_get_stats(m, &st);
	assert_int_equal(st.trades, 4);
	sl__memtable_free(m);
}

/* A reader walks one stock over and over while the writer applies: every record it sees is one
 * the writer could have produced (whole, never torn), newest first, and a walk never returns
 * fewer records than the one before it. The writer waits for a walk at checkpoints, so walks
 * overlap the writing however the threads are scheduled. */
#define SCAN_LOCATE 3
#define SCAN_SHARES 1000

struct scan_race {
	struct sl_memtable *m;
	volatile int done;
	uint64_t scans; /* walks completed (the writer waits on it) */
	uint64_t bad, out_of_order, shrank;
	size_t last_orders, last_trades;
	uint64_t prev_id;
	size_t n;
};

/* Every order of the stock is added with SCAN_SHARES and then only executed (100), cancelled
 * (50) or deleted. */
static int race_order(void *arg, const struct sl_order *o)
{
	struct scan_race *r = arg;
	if (o->locate != SCAN_LOCATE || o->orig_shares != SCAN_SHARES ||
	    o->shares + o->executed_shares + o->cancelled_shares != SCAN_SHARES ||
	    o->executed_shares % 100 || (o->status == SL_ORDER_OPEN) != (o->shares > 0) ||
	    o->price != (uint32_t)o->ref || strcmp(o->stock, "SCAN") || o->added_seq == 0 ||
	    o->updated_seq < o->added_seq)
		r->bad++;
	if (r->n && o->ref >= r->prev_id)
		r->out_of_order++;
	r->prev_id = o->ref;
	r->n++;
	return 0;
}

/* Executions of the stock: match = ref * 16 + k, 100 shares at the order's price. */
static int race_trade(void *arg, const struct sl_trade *t)
{
	struct scan_race *r = arg;
	if (t->locate != SCAN_LOCATE || t->kind != 'E' || t->shares != 100 ||
	    t->ref != t->match / 16 || t->price != (uint32_t)t->ref || strcmp(t->stock, "SCAN"))
		r->bad++;
	if (r->n && t->seq >= r->prev_id) /* newest first: by the message that made it */
		r->out_of_order++;
	r->prev_id = t->seq;
	r->n++;
	return 0;
}

static void *scan_reader(void *arg)
{
	struct scan_race *r = arg;
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
		r->n = 0;
		assert_int_equal(sl__memtable_scan_orders(r->m, SCAN_LOCATE, race_order, r), 0);
		if (r->n < r->last_orders)
			r->shrank++;
		r->last_orders = r->n;
		r->n = 0;
		assert_int_equal(sl__memtable_scan_trades(r->m, SCAN_LOCATE, race_trade, r), 0);
		if (r->n < r->last_trades)
			r->shrank++;
		r->last_trades = r->n;
		__atomic_store_n(&r->scans, r->scans + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void test_scan_concurrent_with_writer(void **state)
{
	(void)state;
	struct scan_race r = { .m = new_mt() };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, scan_reader, &r), 0);
	const uint64_t n = getenv("SL_TEST_QUICK") ? 6000 : 30000;
	uint64_t seq = 0, execs = 0, x = 0x2545f4914f6cdd1dull;
	for (uint64_t ref = 1; ref <= n; ref++) {
		apply(r.m, add(SCAN_LOCATE, ref, 'B', SCAN_SHARES, (uint32_t)ref, "SCAN"), ++seq);
		apply(r.m, add(SCAN_LOCATE + 1, ref, 'S', 1, 1, "NOISE"), ++seq);
		/* Work on older orders: up to 10 executions each, cancels, some deletes. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t a = 1 + (x >> 8) % ref, b = 1 + (x >> 36) % ref;
		struct sl_order o;
		assert_int_equal(sl__memtable_get_order(r.m, SCAN_LOCATE, a, &o), 0);
		if (o.executed_shares < 1000 && o.shares >= 100) {
			uint64_t match = a * 16 + o.executed_shares / 100;
			apply(r.m, exec(SCAN_LOCATE, a, 100, match), ++seq);
			execs++;
		}
		apply(r.m, cancel(SCAN_LOCATE, b, 50), ++seq);
		if (ref % 5 == 0)
			apply(r.m, del(SCAN_LOCATE, b), ++seq);
		if (ref % (n / 8) == 0) { /* a checkpoint: let a walk run against this state */
			uint64_t s = __atomic_load_n(&r.scans, __ATOMIC_ACQUIRE);
			while (__atomic_load_n(&r.scans, __ATOMIC_ACQUIRE) < s + 2)
				;
		}
	}
	__atomic_store_n(&r.done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_true(r.scans >= 16);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.out_of_order, 0);
	assert_int_equal(r.shrank, 0);
	/* Once the writer is done, a walk sees everything. */
	r.n = 0;
	assert_int_equal(sl__memtable_scan_orders(r.m, SCAN_LOCATE, race_order, &r), 0);
	assert_int_equal(r.n, n);
	r.n = 0;
	assert_int_equal(sl__memtable_scan_trades(r.m, SCAN_LOCATE, race_trade, &r), 0);
	assert_int_equal(r.n, execs);
	assert_true(execs > n / 2);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.out_of_order, 0);
	sl__memtable_free(r.m);
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
		cmocka_unit_test(test_scan_matches_reference),
		cmocka_unit_test(test_scan_callback_stops),
		cmocka_unit_test(test_scan_orders_replace_and_reused_ref),
		cmocka_unit_test(test_scan_after_carry),
		cmocka_unit_test(test_scan_resolver_loaded_once),
		cmocka_unit_test(test_scan_trades_match_reused_elsewhere),
		cmocka_unit_test(test_scan_concurrent_with_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
