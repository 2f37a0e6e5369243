/* test_repl.c - the raft FSM and the replicated log (repl.c) with canonical raft's fixture
 * (raft/fixture.h): deterministic elections, partitions, message loss and leader changes over
 * real engines (db.c in cluster mode, one data directory per node). Every test ends with every
 * node holding exactly the original stream: sequences 1..N, each message once, byte for byte.
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
#include <raft.h>
#include <raft/fixture.h>

#include "db.h"
#include "feed.h"
#include "repl.h"
#include "sluice.h"
#include "testutil.h"

#define MAX_NODES 5

/* The deterministic feed's messages. */
struct msgs {
	size_t n;
	uint8_t (*buf)[64];
	uint16_t *len;
};

static void gen_msgs(struct msgs *m, size_t n, uint64_t seed)
{
	struct sl_feed_config c;
	sl__feed_config_init(&c);
	c.seed = seed;
	c.messages = n;
	struct sl_feed *f;
	assert_int_equal(sl__feed_new(&c, &f), 0);
	m->n = n;
	m->buf = calloc(n, sizeof(*m->buf));
	m->len = calloc(n, sizeof(*m->len));
	assert_non_null(m->buf);
	assert_non_null(m->len);
	for (size_t i = 0; i < n; i++) {
		int len = sl__feed_next_msg(f, m->buf[i], sizeof(m->buf[i]));
		assert_true(len > 0);
		m->len[i] = (uint16_t)len;
	}
	sl__feed_free(f);
}

static void free_msgs(struct msgs *m)
{
	free(m->buf);
	free(m->len);
}

struct cluster {
	unsigned n;
	struct raft_fixture f;
	struct sl_repl *r[MAX_NODES];
	struct sl_db *db[MAX_NODES];
	char dir[MAX_NODES][64];
	struct msgs m;
};

static struct sl_db *open_node_db(const char *dir, struct sl_repl *r)
{
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = dir;
	o.flags = SL_OPEN_CREATE | SL_OPEN_NO_SYNC;
	o.accel = "cpu";
	o.expected_orders = 1u << 12;
	o.memtable_bytes = 0;
	struct sl_log log;
	sl__repl_log(r, &log);
	struct sl_db *db;
	assert_int_equal(sl__db_open_log(&o, &log, &db), 0);
	return db;
}

static void cluster_start(struct cluster *c, unsigned n, size_t msgs)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	gen_msgs(&c->m, msgs, 7);
	assert_int_equal(raft_fixture_initialize(&c->f), 0);
	struct sl_repl_config rc = { .no_wait = 1, .max_entry_bytes = 4096, .sync_snapshots = 1 };
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(sl__repl_new(&rc, &c->r[i]), 0);
		assert_non_null(sl_test_mkdtemp(c->dir[i], sizeof(c->dir[i]), "repl"));
		/* The engine binds to the log before raft starts: nothing committed is missed. */
		c->db[i] = open_node_db(c->dir[i], c->r[i]);
		assert_int_equal(raft_fixture_grow(&c->f, sl__repl_fsm(c->r[i])), 0);
	}
	struct raft_configuration conf;
	assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&c->f), 0);
	for (unsigned i = 0; i < n; i++)
		sl__repl_attach(c->r[i], raft_fixture_get(&c->f, i), NULL, NULL);
}

static void cluster_stop(struct cluster *c)
{
	/* raft first (nothing applies afterwards), then the engines, then repl. */
	raft_fixture_close(&c->f);
	for (unsigned i = 0; i < c->n; i++) {
		assert_int_equal(sl_db_close(c->db[i]), 0);
		sl__repl_free(c->r[i]);
		sl_test_rm_rf(c->dir[i]);
	}
	free_msgs(&c->m);
}

/* One step of the fixture, with every node's repl polled first (as raft_uv's loop does). */
static void step(struct cluster *c)
{
	for (unsigned i = 0; i < c->n; i++)
		sl__repl_poll(c->r[i]);
	raft_fixture_step(&c->f);
}

static int ready(struct cluster *c, unsigned i)
{
	struct sl_repl_status st;
	sl__repl_get_status(c->r[i], &st);
	return st.ready;
}

/* Step until node i leads and accepts appends (its barrier is applied). */
static void until_ready(struct cluster *c, unsigned i)
{
	for (int k = 0; k < 20000 && !ready(c, i); k++)
		step(c);
	assert_true(ready(c, i));
}

static unsigned leader_ready(struct cluster *c)
{
	for (int k = 0; k < 50000; k++) {
		for (unsigned i = 0; i < c->n; i++)
			if (raft_fixture_alive(&c->f, i) && ready(c, i))
				return i;
		step(c);
	}
	fail_msg("no leader became ready");
	return 0;
}

/* Append messages [from, to) of the original stream through node i's engine, as sequences
 * from + 1 .. to; with shift, other messages of the stream under those sequences (a tail that
 * must never be committed). */
static int append_shifted(struct cluster *c, unsigned i, size_t from, size_t to, size_t shift)
{
	struct sl_msg batch[64];
	while (from < to) {
		size_t k = to - from < 64 ? to - from : 64;
		for (size_t j = 0; j < k; j++) {
			size_t at = (from + j + shift) % c->m.n;
			batch[j] = (struct sl_msg){ .data = c->m.buf[at], .len = c->m.len[at] };
		}
		uint64_t last = 0;
		int r = sl_db_append_messages(c->db[i], batch, k, &last);
		if (r < 0)
			return r;
		assert_int_equal(last, from + k);
		from += k;
	}
	return 0;
}

static int append(struct cluster *c, unsigned i, size_t from, size_t to)
{
	return append_shifted(c, i, from, to, 0);
}

static uint64_t applied(struct cluster *c, unsigned i)
{
	return sl_db_durable_seq(c->db[i]);
}

static void until_applied(struct cluster *c, uint64_t seq)
{
	for (int k = 0; k < 100000; k++) {
		unsigned done = 0;
		for (unsigned i = 0; i < c->n; i++)
			done += applied(c, i) >= seq;
		if (done == c->n)
			return;
		step(c);
	}
	for (unsigned i = 0; i < c->n; i++)
		print_message("node %u applied %llu\n", i, (unsigned long long)applied(c, i));
	fail_msg("not every node applied %llu", (unsigned long long)seq);
}

/* Node i holds exactly messages 1..n of the original stream, each once, and its state
 * reflects all of them. */
static void check_stream(struct cluster *c, unsigned i, size_t n)
{
	struct sl_db *db = c->db[i];
	assert_int_equal(sl_db_wait_durable(db, n, 5000000000ll), 0);
	assert_int_equal(sl_db_applied_seq(db), n);
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), 0);
	struct sl_event ev;
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(sl_iter_next(it, &ev), 0);
		assert_int_equal(ev.seq, k + 1);
		assert_int_equal(ev.kind, SL_EVENT_MESSAGE);
		assert_int_equal(ev.len, c->m.len[k]);
		assert_memory_equal(ev.data, c->m.buf[k], ev.len);
	}
	assert_int_equal(sl_iter_next(it, &ev), SL_EEND);
	sl_iter_close(it);
	struct sl_stats s;
	assert_int_equal(sl_db_stats(db, &s), 0);
	assert_int_equal(s.messages, n);
	assert_int_equal(s.applied_seq, n);
}

/* Every node's state agrees with node 0's (orders, trades, stocks). */
static void check_same_state(struct cluster *c)
{
	struct sl_stats s0, s;
	assert_int_equal(sl_db_stats(c->db[0], &s0), 0);
	assert_true(s0.orders > 0);
	for (unsigned i = 1; i < c->n; i++) {
		assert_int_equal(sl_db_stats(c->db[i], &s), 0);
		assert_int_equal(s.orders, s0.orders);
		assert_int_equal(s.orders_open, s0.orders_open);
		assert_int_equal(s.trades, s0.trades);
		assert_int_equal(s.stocks, s0.stocks);
	}
}

/* ---- Frames ------------------------------------------------------------------------------- */

struct got {
	size_t n;
	uint64_t seqs[8];
};

static int got_rec(void *arg, const struct sl_log_rec *rec)
{
	struct got *g = arg;
	if (g->n < 8)
		g->seqs[g->n] = rec->seq;
	g->n++;
	return 0;
}

static void test_frame_encode_roundtrip_and_damage(void **state)
{
	(void)state;
	const char *a = "hello", *b = "world!";
	struct sl_log_rec recs[3] = {
		{ .seq = 5, .rx_ns = 1, .data = a, .len = 5, .type = SL_LOG_MSG },
		{ .seq = 6, .rx_ns = 2, .data = b, .len = 6, .type = SL_LOG_BAD },
		{ .seq = 9, .rx_ns = 3, .data = "\x03\0\0\0\0\0\0\0", .len = 8,
		  .type = SL_LOG_GAP },
	};
	uint8_t buf[256];
	assert_int_equal(sl__repl_frame_encode(recs, 3, buf, 10), -ENOSPC);
	long len = sl__repl_frame_encode(recs, 3, buf, sizeof(buf));
	/* 24 + 3 * 24 + 19 = 115 bytes, padded to 120 */
	assert_int_equal(len, 120);
	struct got g = { 0 };
	assert_int_equal(sl__repl_frame_decode(buf, (size_t)len, got_rec, &g), len);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.seqs[0], 5);
	assert_int_equal(g.seqs[2], 9);
	/* Every single-bit flip and every truncation is refused, and nothing is handed out. */
	for (long off = 0; off < len; off++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[off] ^= (uint8_t)(1u << bit);
			g.n = 0;
			long r = sl__repl_frame_decode(buf, (size_t)len, got_rec, &g);
			buf[off] ^= (uint8_t)(1u << bit);
			/* The flags and reserved fields are not checked: a flip there is harmless. */
			if (off >= 4 + 2 && off < 4 + 2 + 2)
				continue;
			if (off >= 20 && off < 24)
				continue;
			assert_int_equal(r, SL_ECORRUPT);
			assert_int_equal(g.n, 0);
		}
	}
	for (long cut = 0; cut < len; cut++) {
		g.n = 0;
		assert_int_equal(sl__repl_frame_decode(buf, (size_t)cut, got_rec, &g), SL_ECORRUPT);
		assert_int_equal(g.n, 0);
	}
	/* Sequences must increase inside a frame. */
	recs[1].seq = 5;
	len = sl__repl_frame_encode(recs, 3, buf, sizeof(buf));
	assert_int_equal(sl__repl_frame_decode(buf, (size_t)len, got_rec, &g), SL_ECORRUPT);
}

/* ---- Clusters ----------------------------------------------------------------------------- */

static void test_repl_replicates_exactly_once(void **state)
{
	(void)state;
	struct cluster c;
	cluster_start(&c, 3, 3000);
	raft_fixture_elect(&c.f, 0);
	until_ready(&c, 0);
	/* Followers refuse writes; the leader proposes, and nothing changes before commit. */
	assert_int_equal(append(&c, 1, 0, 10), SL_ENOTLEADER);
	assert_int_equal(append(&c, 0, 0, 1000), 0);
	assert_int_equal(sl_db_last_seq(c.db[0]), 1000);
	assert_int_equal(sl_db_applied_seq(c.db[0]), 0);
	until_applied(&c, 1000);
	assert_int_equal(append(&c, 0, 1000, 3000), 0);
	until_applied(&c, 3000);
	for (unsigned i = 0; i < c.n; i++)
		check_stream(&c, i, 3000);
	check_same_state(&c);
	cluster_stop(&c);
}

/* The leader is cut off with a tail it proposed: the majority elects another leader, which
 * goes on after what was committed; after healing, the old tail is gone everywhere and the
 * stores converge. */
static void test_repl_partition_discards_unacknowledged_tail(void **state)
{
	(void)state;
	struct cluster c;
	cluster_start(&c, 3, 4000);
	raft_fixture_elect(&c.f, 0);
	until_ready(&c, 0);
	assert_int_equal(append(&c, 0, 0, 1000), 0);
	until_applied(&c, 1000);
	for (unsigned j = 1; j < 3; j++) {
		raft_fixture_disconnect(&c.f, 0, j);
		raft_fixture_disconnect(&c.f, j, 0);
	}
	/* The minority side takes proposals (other bytes than the stream's, so that a trace of
	 * them anywhere would show) but never commits them. */
	assert_int_equal(append_shifted(&c, 0, 1000, 1500, 1717), 0);
	unsigned nl = 0;
	for (int k = 0; k < 100000; k++) {
		step(&c);
		if (ready(&c, 1) || ready(&c, 2))
			break;
	}
	nl = ready(&c, 1) ? 1 : 2;
	assert_true(ready(&c, nl));
	assert_int_equal(applied(&c, 0), 1000);
	uint64_t epoch;
	/* The new leader resumes after the committed sequence. */
	struct sl_repl_status st;
	sl__repl_get_status(c.r[nl], &st);
	epoch = st.epoch;
	assert_true(epoch >= 1);
	assert_int_equal(append(&c, nl, 1000, 2500), 0);
	for (int k = 0; k < 2000; k++)
		step(&c);
	assert_int_equal(applied(&c, nl), 2500);
	assert_int_equal(applied(&c, 0), 1000);
	for (unsigned j = 1; j < 3; j++) {
		raft_fixture_reconnect(&c.f, 0, j);
		raft_fixture_reconnect(&c.f, j, 0);
	}
	until_applied(&c, 2500);
	unsigned l = leader_ready(&c);
	assert_int_equal(append(&c, l, 2500, 4000), 0);
	until_applied(&c, 4000);
	for (unsigned i = 0; i < c.n; i++)
		check_stream(&c, i, 4000);
	check_same_state(&c);
	cluster_stop(&c);
}

/* Leaders change under message loss (links saturated at random, deterministic seed) while
 * batches keep coming; whatever the leader, the stream continues after the committed sequence. */
static void test_repl_message_loss_and_leader_changes(void **state)
{
	(void)state;
	struct cluster c;
	const size_t total = 6000;
	cluster_start(&c, 5, total);
	uint64_t rng = 12345;
	size_t next = 0;
	unsigned changes = 0;
	for (int round = 0; round < 400 && next < total; round++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		unsigned a = (unsigned)(rng >> 33) % c.n, b = (unsigned)(rng >> 40) % c.n;
		if (a != b) {
			if (raft_fixture_saturated(&c.f, a, b))
				raft_fixture_desaturate(&c.f, a, b);
			else if ((rng >> 50) % 3 == 0)
				raft_fixture_saturate(&c.f, a, b);
		}
		for (unsigned i = 0; i < c.n; i++) {
			if (!ready(&c, i))
				continue;
			/* The writer of a new epoch starts at its resume point, as the feed does. */
			uint64_t from = sl_db_applied_seq(c.db[i]);
			struct sl_repl_status st;
			sl__repl_get_status(c.r[i], &st);
			if (st.proposed_seq > from)
				from = st.proposed_seq;
			if (from < total) {
				size_t to = from + 40 < total ? from + 40 : total;
				int r = append(&c, i, from, to);
				if (r == 0)
					next = to;
				else
					assert_int_equal(r, SL_ENOTLEADER);
			}
		}
		for (int k = 0; k < 25; k++)
			step(&c);
		if (round % 50 == 49) {
			raft_fixture_depose(&c.f);
			changes++;
		}
	}
	for (unsigned a = 0; a < c.n; a++)
		for (unsigned b = 0; b < c.n; b++)
			if (a != b && raft_fixture_saturated(&c.f, a, b))
				raft_fixture_desaturate(&c.f, a, b);
	/* Finish the stream through whoever leads now. */
	for (;;) {
		unsigned l = leader_ready(&c);
		uint64_t from = sl_db_applied_seq(c.db[l]);
		struct sl_repl_status st;
		sl__repl_get_status(c.r[l], &st);
		if (st.proposed_seq > from)
			from = st.proposed_seq;
		if (from >= total)
			break;
		int r = append(&c, l, from, total);
		assert_true(r == 0 || r == SL_ENOTLEADER);
		for (int k = 0; k < 200; k++)
			step(&c);
	}
	until_applied(&c, total);
	assert_true(changes >= 1);
	for (unsigned i = 0; i < c.n; i++)
		check_stream(&c, i, total);
	check_same_state(&c);
	cluster_stop(&c);
}

/* A follower cut off while the log moves on past the leader's snapshots catches up by
 * installing one, then by entries. */
static void test_repl_snapshot_install(void **state)
{
	(void)state;
	struct cluster c;
	cluster_start(&c, 3, 5000);
	for (unsigned i = 0; i < c.n; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&c.f, i), 8);
		raft_set_snapshot_trailing(raft_fixture_get(&c.f, i), 2);
	}
	raft_fixture_elect(&c.f, 0);
	until_ready(&c, 0);
	assert_int_equal(append(&c, 0, 0, 500), 0);
	until_applied(&c, 500);
	raft_fixture_kill(&c.f, 2);
	for (size_t at = 500; at < 4000; at += 100) {
		assert_int_equal(append(&c, 0, at, at + 100), 0);
		for (int k = 0; k < 30; k++)
			step(&c);
	}
	for (int k = 0; k < 500; k++)
		step(&c);
	assert_int_equal(applied(&c, 0), 4000);
	assert_int_equal(applied(&c, 2), 500);
	struct sl_repl_status st;
	sl__repl_get_status(c.r[0], &st);
	assert_true(st.snapshots_taken >= 1);
	raft_fixture_revive(&c.f, 2);
	assert_int_equal(append(&c, 0, 4000, 5000), 0);
	until_applied(&c, 5000);
	sl__repl_get_status(c.r[2], &st);
	assert_true(st.snapshots_restored >= 1);
	for (unsigned i = 0; i < c.n; i++)
		check_stream(&c, i, 5000);
	check_same_state(&c);
	cluster_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_encode_roundtrip_and_damage),
		cmocka_unit_test(test_repl_replicates_exactly_once),
		cmocka_unit_test(test_repl_partition_discards_unacknowledged_tail),
		cmocka_unit_test(test_repl_message_loss_and_leader_changes),
		cmocka_unit_test(test_repl_snapshot_install),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
