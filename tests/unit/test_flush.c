/* test_flush.c - an immutable memtable becomes a state table holding exactly its orders,
 * stocks and trades, and its log range an event table holding exactly its events, each in key
 * order; failures leave no file behind.
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

#include "fault_os.h"
#include "feed.h"
#include "flush.h"
#include "keys.h"
#include "testutil.h"
#include "wal.h"

struct fixture {
	char dir[64];
	struct sl_accel *accel;
	struct sl_log log;
	struct sl_memtable *mt;
	uint64_t n;
	uint8_t (*msg)[SL_ITCH_MAX_LEN];
	uint16_t *len;
};

/* n feed messages logged at sequences 1..n and applied to a memtable. */
static void fixture_new(struct fixture *f, uint64_t n)
{
	memset(f, 0, sizeof(*f));
	assert_non_null(sl_test_mkdtemp(f->dir, sizeof(f->dir), "flush"));
	assert_int_equal(sl__accel_open(sl_test_accel(), &f->accel), 0);
	struct sl_wal_config wc = { .dir = f->dir, .segment_bytes = 1 << 20,
				    .buffer_bytes = 1 << 20, .no_sync = 1 };
	assert_int_equal(sl__wal_open(&wc, sl__os_default(), f->accel, NULL, NULL, &f->log), 0);
	assert_int_equal(sl__memtable_new(sl__os_default(), 4096, &f->mt), 0);
	struct sl_feed_config c;
	sl__feed_config_init(&c);
	c.messages = n;
	struct sl_feed *feed;
	assert_int_equal(sl__feed_new(&c, &feed), 0);
	f->n = n;
	f->msg = malloc(n * sizeof(*f->msg));
	f->len = malloc(n * sizeof(*f->len));
	for (uint64_t i = 0; i < n; i++) {
		uint8_t buf[64];
		int len = sl__feed_next_msg(feed, buf, sizeof(buf));
		assert_true(len > 0);
		memcpy(f->msg[i], buf, (size_t)len);
		f->len[i] = (uint16_t)len;
		struct sl_log_rec rec = { .seq = i + 1, .rx_ns = 1000 + i, .data = f->msg[i],
					  .len = (uint32_t)len, .type = SL_LOG_MSG };
		assert_int_equal(f->log.ops->append_batch(f->log.impl, &rec, 1), 0);
		struct sl_itch_msg m;
		assert_int_equal(sl__itch_decode(buf, (size_t)len, &m), 0);
		assert_int_equal(sl__memtable_apply(f->mt, &m, i + 1), 0);
	}
	sl__feed_free(feed);
	assert_int_equal(f->log.ops->wait_durable(f->log.impl, n, -1), 0);
}

static void fixture_free(struct fixture *f)
{
	f->log.ops->close(f->log.impl);
	sl__memtable_free(f->mt);
	sl__accel_close(f->accel);
	free(f->msg);
	free(f->len);
	sl_test_rm_rf(f->dir);
}

struct check {
	struct sl_sst *t;
	uint64_t orders, trades, stocks, bad;
};

static int check_order(void *arg, const struct sl_order *o)
{
	struct check *c = arg;
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = sl__key_order(k, o->locate, o->ref);
	const void *v;
	size_t vl;
	uint32_t fl;
	struct sl_order d;
	c->orders++;
	if (sl__sst_get(c->t, k, kl, &v, &vl, &fl) ||
	    sl__val_order_decode(v, vl, o->locate, o->ref, &d) || memcmp(&d, o, sizeof(d)))
		c->bad++;
	return 0;
}

static int check_trade(void *arg, const struct sl_trade *t)
{
	struct check *c = arg;
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = sl__key_trade(k, t->match);
	const void *v;
	size_t vl;
	uint32_t fl;
	struct sl_trade d;
	c->trades++;
	if (sl__sst_get(c->t, k, kl, &v, &vl, &fl) || sl__val_trade_decode(v, vl, t->match, &d) ||
	    memcmp(&d, t, sizeof(d)))
		c->bad++;
	return 0;
}

static int check_stock(void *arg, const struct sl_stock *s)
{
	struct check *c = arg;
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = sl__key_stock(k, s->locate);
	const void *v;
	size_t vl;
	uint32_t fl;
	struct sl_stock d;
	c->stocks++;
	if (sl__sst_get(c->t, k, kl, &v, &vl, &fl) || sl__val_stock_decode(v, vl, s->locate, &d) ||
	    memcmp(&d, s, sizeof(d)))
		c->bad++;
	return 0;
}

/* Every entry of a table in strictly increasing key order; returns the count. */
static uint64_t scan_sorted(struct sl_sst *t, int kind)
{
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	assert_int_equal(sl__sst_iter_seek(it, NULL, 0), 0);
	uint8_t prev[SL_SST_MAX_KEY];
	size_t plen = 0;
	uint64_t n = 0;
	const uint8_t *key, *val;
	size_t kl, vl;
	uint32_t fl;
	int last_kind = 0;
	while (sl__sst_iter_next(it, &key, &kl, &val, &vl, &fl) == 0) {
		if (n) {
			size_t m = kl < plen ? kl : plen;
			int cmp = memcmp(prev, key, m);
			assert_true(cmp < 0 || (cmp == 0 && plen < kl));
		}
		int k = sl__key_parse(key, kl, NULL, NULL);
		assert_true(k != 0);
		assert_true(kind ? k == kind : k != SL_KEY_EVENT);
		assert_true(k >= last_kind);
		last_kind = k;
		memcpy(prev, key, kl);
		plen = kl;
		n++;
	}
	sl__sst_iter_free(it);
	return n;
}

static void test_flush_state_holds_every_record(void **state)
{
	(void)state;
	struct fixture f;
	fixture_new(&f, getenv("SL_TEST_QUICK") ? 20000 : 60000);
	char path[128];
	snprintf(path, sizeof(path), "%s/0000000000000001.sst", f.dir);
	struct sl_sst_options o = { .user = { 1, f.n } };
	struct sl_flush_result res;
	assert_int_equal(sl__flush_state(f.mt, sl__os_default(), f.accel, path, &o, &res), 0);
	struct sl_memtable_stats ms;
	sl__memtable_get_stats(f.mt, &ms);
	assert_int_equal(res.orders, ms.orders);
	assert_int_equal(res.trades, ms.trades);
	assert_int_equal(res.stocks, ms.stocks);
	assert_int_equal(res.meta.entries, ms.orders + ms.trades + ms.stocks);
	assert_int_equal(res.meta.user[0], 1);
	assert_int_equal(res.meta.user[1], f.n);
	struct check c = { 0 };
	assert_int_equal(sl__sst_open(sl__os_default(), f.accel, path, &c.t), 0);
	struct sl_memtable_visitor v = { check_order, check_trade, check_stock, &c };
	assert_int_equal(sl__memtable_foreach(f.mt, &v), 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.orders, ms.orders);
	assert_int_equal(scan_sorted(c.t, 0), res.meta.entries);
	sl__sst_close(c.t);
	fixture_free(&f);
}

static void test_flush_events_holds_every_event(void **state)
{
	(void)state;
	struct fixture f;
	fixture_new(&f, getenv("SL_TEST_QUICK") ? 20000 : 60000);
	char path[128];
	snprintf(path, sizeof(path), "%s/0000000000000002.sst", f.dir);
	struct sl_sst_options o = { 0 };
	struct sl_flush_result res;
	uint64_t first = 11, last = f.n - 5;
	assert_int_equal(sl__flush_events(&f.log, first, last, sl__os_default(), f.accel, path, &o,
					  &res),
			 0);
	assert_int_equal(res.events, last - first + 1);
	assert_int_equal(res.meta.user[0], first);
	assert_int_equal(res.meta.user[1], last);
	struct sl_sst *t;
	assert_int_equal(sl__sst_open(sl__os_default(), f.accel, path, &t), 0);
	for (uint64_t seq = 1; seq <= f.n; seq++) {
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = sl__key_event(k, seq);
		const void *val;
		size_t vl;
		uint32_t fl, kind;
		uint64_t rx;
		const uint8_t *p;
		size_t plen;
		int r = sl__sst_get(t, k, kl, &val, &vl, &fl);
		if (seq < first || seq > last) {
			assert_int_equal(r, SL_ENOTFOUND);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(sl__val_event_decode(val, vl, &kind, &rx, &p, &plen), 0);
		assert_int_equal(kind, SL_LOG_MSG);
		assert_int_equal(rx, 1000 + seq - 1);
		assert_int_equal(plen, f.len[seq - 1]);
		assert_memory_equal(p, f.msg[seq - 1], plen);
	}
	assert_int_equal(scan_sorted(t, SL_KEY_EVENT), res.events);
	sl__sst_close(t);
	fixture_free(&f);
}

static void test_flush_events_range_not_durable(void **state)
{
	(void)state;
	struct fixture f;
	fixture_new(&f, 1000);
	char path[128];
	snprintf(path, sizeof(path), "%s/x.sst", f.dir);
	struct sl_sst_options o = { 0 };
	struct sl_flush_result res;
	assert_int_equal(sl__flush_events(&f.log, 1, 2000, sl__os_default(), f.accel, path, &o,
					  &res),
			 SL_EGAP);
	assert_false(sl_test_file_exists(path));
	fixture_free(&f);
}

static void test_flush_enospc_leaves_nothing(void **state)
{
	(void)state;
	struct fixture f;
	fixture_new(&f, 20000);
	char path[128];
	snprintf(path, sizeof(path), "%s/y.sst", f.dir);
	struct fault_os *fo = fault_os_new();
	struct sl_sst_options o = { 0 };
	struct sl_flush_result res;
	/* The first, second and third block writes of either kind of table fail. */
	for (uint64_t nth = 1; nth <= 3; nth++) {
		fault_os_reset(fo);
		fault_os_fail(fo, FAULT_PWRITE, nth, -ENOSPC, 0);
		assert_int_equal(sl__flush_state(f.mt, fault_os_get(fo), f.accel, path, &o, &res),
				 -ENOSPC);
		assert_false(sl_test_file_exists(path));
		fault_os_reset(fo);
		fault_os_fail(fo, FAULT_PWRITE, nth, -ENOSPC, 0);
		assert_int_equal(sl__flush_events(&f.log, 1, f.n, fault_os_get(fo), f.accel, path,
						  &o, &res),
				 -ENOSPC);
		assert_false(sl_test_file_exists(path));
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
	}
	fault_os_reset(fo);
	fault_os_fail(fo, FAULT_MALLOC, 1, -ENOMEM, 1);
	int r = sl__flush_state(f.mt, fault_os_get(fo), f.accel, path, &o, &res);
	assert_int_equal(r, -ENOMEM);
	assert_false(sl_test_file_exists(path));
	fault_os_free(fo);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_state_holds_every_record),
		cmocka_unit_test(test_flush_events_holds_every_event),
		cmocka_unit_test(test_flush_events_range_not_durable),
		cmocka_unit_test(test_flush_enospc_leaves_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
