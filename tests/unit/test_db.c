/* test_db.c - the engine through the public API: open/recover, both append paths, queries
 * after restart, replay with gaps and bad messages, locking, read-only opens, re-requests to a
 * live rewinder on loopback, and I/O faults through the os seam.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "fault_os.h"
#include "feed.h"
#include "itch.h"
#include "mold.h"
#include "sluice.h"
#include "testutil.h"

static void rm_rf(const char *dir)
{
	sl_test_rm_rf(dir);
}

struct tdir {
	char path[64];
};

static void tdir_new(struct tdir *t)
{
	assert_non_null(sl_test_mkdtemp(t->path, sizeof(t->path), "db"));
}

static struct sl_db *open_db(const char *dir, uint32_t flags)
{
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = dir;
	o.flags = flags;
	o.wal_segment_bytes = 256 * 1024;
	o.wal_buffer_bytes = 1 << 20;
	struct sl_db *db = NULL;
	int r = sl_db_open(&o, &db);
	if (r)
		fail_msg("open %s: %s", dir, sl_strerror(r));
	return db;
}

/* The deterministic feed's messages, kept for comparison. */
struct msgs {
	uint8_t (*data)[SL_ITCH_MAX_LEN];
	uint16_t *len;
	size_t n;
};

static void gen_msgs(struct msgs *m, size_t n, uint64_t seed)
{
	struct sl_feed_config c;
	sl__feed_config_init(&c);
	c.seed = seed;
	c.messages = n;
	struct sl_feed *f;
	assert_int_equal(sl__feed_new(&c, &f), 0);
	m->data = malloc(n * sizeof(*m->data));
	m->len = malloc(n * sizeof(*m->len));
	m->n = n;
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[64];
		int len = sl__feed_next_msg(f, buf, sizeof(buf));
		assert_true(len > 0 && len <= SL_ITCH_MAX_LEN);
		memcpy(m->data[i], buf, (size_t)len);
		m->len[i] = (uint16_t)len;
	}
	sl__feed_free(f);
}

static void free_msgs(struct msgs *m)
{
	free(m->data);
	free(m->len);
}

static void append_all(struct sl_db *db, const struct msgs *m, size_t from, size_t to)
{
	struct sl_msg batch[100];
	size_t k = 0;
	for (size_t i = from; i < to; i++) {
		batch[k++] = (struct sl_msg){ m->data[i], m->len[i], 1000 + i };
		if (k == 100 || i + 1 == to) {
			assert_int_equal(sl_db_append_messages(db, batch, k, NULL), 0);
			k = 0;
		}
	}
}

/* Every event from 1 must be exactly message seq-1. */
static void check_replay(struct sl_db *db, const struct msgs *m, uint64_t upto)
{
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), 0);
	uint64_t want = 1;
	struct sl_event ev;
	int r;
	while ((r = sl_iter_next(it, &ev)) == 0) {
		assert_int_equal(ev.seq, want);
		assert_int_equal(ev.kind, SL_EVENT_MESSAGE);
		assert_int_equal(ev.len, m->len[want - 1]);
		assert_memory_equal(ev.data, m->data[want - 1], ev.len);
		want++;
	}
	assert_int_equal(r, SL_EEND);
	assert_int_equal(want - 1, upto);
	sl_iter_close(it);
}

static void test_open_options_invalid(void **state)
{
	(void)state;
	struct sl_db *db;
	struct sl_options o;
	sl_options_init(&o);
	assert_int_equal(sl_db_open(&o, &db), SL_ECONFIG); /* no data_dir */
	o.data_dir = "/tmp/sl_nonexistent_dir_for_test/x";
	assert_int_equal(sl_db_open(&o, &db), -ENOENT);    /* no SL_OPEN_CREATE */
	o.version = 99;
	assert_int_equal(sl_db_open(&o, &db), SL_EVERSION);
	o.version = SL_OPTIONS_VERSION;
	o.wal_segment_bytes = 4096;
	o.flags = SL_OPEN_CREATE;
	assert_int_equal(sl_db_open(&o, &db), SL_ECONFIG);
	o.wal_segment_bytes = 0;
	o.accel = "fpga9000";
	struct tdir t;
	tdir_new(&t);
	o.data_dir = t.path;
	assert_int_equal(sl_db_open(&o, &db), SL_ECONFIG);
	o.accel = "cpu";
	o.rerequest_addr = "nocolon";
	assert_int_equal(sl_db_open(&o, &db), SL_ECONFIG);
	rm_rf(t.path);
	assert_int_equal(sl_db_close(NULL), 0);
	assert_string_equal(sl_strerror(SL_ECORRUPT), "data corrupt (checksum or format mismatch)");
	assert_string_equal(sl_strerror(-ENOSPC), "No space left on device");
}

static void test_open_lock_and_rdonly(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct sl_db *db = open_db(t.path, SL_OPEN_CREATE);
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = t.path;
	struct sl_db *db2;
	assert_int_equal(sl_db_open(&o, &db2), SL_ELOCKED);
	/* A reader does not need the lock. */
	o.flags = SL_OPEN_RDONLY;
	assert_int_equal(sl_db_open(&o, &db2), 0);
	struct sl_msg msg = { "S", 1, 0 };
	assert_int_equal(sl_db_append_messages(db2, &msg, 1, NULL), SL_ERDONLY);
	assert_int_equal(sl_db_tick(db2), SL_ERDONLY);
	sl_db_close(db2);
	sl_db_close(db);
	rm_rf(t.path);
}

static void test_append_messages_restart_state(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct msgs m;
	const size_t n = 60000;
	gen_msgs(&m, n, 7);
	struct sl_db *db = open_db(t.path, SL_OPEN_CREATE);
	append_all(db, &m, 0, n);
	uint64_t last = sl_db_last_seq(db);
	assert_int_equal(last, n);
	assert_int_equal(sl_db_wait_durable(db, last, 10 * 1000000000ll), 0);
	assert_int_equal(sl_db_durable_seq(db), n);
	struct sl_stats s1;
	assert_int_equal(sl_db_stats(db, &s1), 0);
	assert_int_equal(s1.messages, n);
	assert_int_equal(s1.messages_unknown + s1.messages_bad_length, 0);
	assert_true(s1.wal_commits >= 1);
	assert_true(s1.orders > 1000);
	/* Remember a sample of orders to compare after the restart. */
	struct sl_order before[32];
	int have = 0;
	for (size_t i = 0; i < n && have < 32; i += 997) {
		struct sl_itch_msg msg;
		assert_int_equal(sl__itch_decode(m.data[i], m.len[i], &msg), 0);
		if (msg.type != 'A')
			continue;
		assert_int_equal(sl_db_get_order(db, msg.locate, msg.u.add_order.ref,
						 &before[have]),
				 0);
		have++;
	}
	assert_true(have > 10);
	assert_int_equal(sl_db_close(db), 0);

	db = open_db(t.path, 0);
	struct sl_stats s2;
	sl_db_stats(db, &s2);
	assert_int_equal(s2.recovered_records, n);
	assert_int_equal(s2.recovery_torn_bytes, 0);
	assert_int_equal(s2.durable_seq, n);
	assert_int_equal(s2.orders, s1.orders);
	assert_int_equal(s2.orders_open, s1.orders_open);
	assert_int_equal(s2.trades, s1.trades);
	for (int i = 0; i < have; i++) {
		struct sl_order o;
		assert_int_equal(sl_db_get_order(db, before[i].locate, before[i].ref, &o), 0);
		assert_memory_equal(&o, &before[i], sizeof(o));
	}
	check_replay(db, &m, n);
	/* Appending continues the sequence. */
	append_all(db, &m, 0, 10);
	assert_int_equal(sl_db_last_seq(db), n + 10);
	sl_db_close(db);
	free_msgs(&m);
	rm_rf(t.path);
}

static void test_append_messages_bad_counted_and_logged(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct sl_db *db = open_db(t.path, SL_OPEN_CREATE);
	uint8_t unknown[5] = { 'Z', 1, 2, 3, 4 };
	uint8_t short_add[10] = { 'A' };
	uint8_t sys[12] = { 'S', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'O' };
	struct sl_msg batch[3] = { { unknown, 5, 0 }, { short_add, 10, 0 }, { sys, 12, 0 } };
	uint64_t last = 0;
	assert_int_equal(sl_db_append_messages(db, batch, 3, &last), 0);
	assert_int_equal(last, 3);
	struct sl_stats s;
	sl_db_stats(db, &s);
	assert_int_equal(s.messages, 3);
	assert_int_equal(s.messages_unknown, 1);
	assert_int_equal(s.messages_bad_length, 1);
	assert_int_equal(s.msg_by_type['S'], 1);
	assert_int_equal(sl_db_wait_durable(db, 3, -1), 0);
	/* The log is an exact record: the bad ones replay byte for byte. */
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), 0);
	struct sl_event ev;
	assert_int_equal(sl_iter_next(it, &ev), 0);
	assert_int_equal(ev.len, 5);
	assert_memory_equal(ev.data, unknown, 5);
	char line[512];
	sl_event_format(&ev, SL_FORMAT_JSON, line, sizeof(line));
	assert_non_null(strstr(line, "\"type\":\"bad\""));
	assert_non_null(strstr(line, "\"hex\":\"5a01020304\""));
	assert_int_equal(sl_iter_next(it, &ev), 0);
	assert_int_equal(ev.len, 10);
	assert_int_equal(sl_iter_next(it, &ev), 0);
	assert_int_equal(ev.seq, 3);
	sl_event_format(&ev, 0, line, sizeof(line));
	assert_non_null(strstr(line, "3 S system_event"));
	assert_int_equal(sl_iter_next(it, &ev), SL_EEND);
	sl_iter_close(it);
	/* Mixing the two sources in one store is refused. */
	struct sl_packet pk = { sys, 12, 0 };
	assert_int_equal(sl_db_append_packets(db, &pk, 1), -EINVAL);
	sl_db_close(db);
	char path[256];
	uint64_t off, recs, torn;
	assert_int_equal(sl_verify(t.path, path, sizeof(path), &off, &recs, &torn), 0);
	assert_int_equal(recs, 3);
	rm_rf(t.path);
}

/* Packets from the feed, some dropped, with no rewinder: the gaps are given up explicitly and
 * show as GAP events; everything else is there once, in order. */
static void test_append_packets_gap_given_up(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct sl_db *db = open_db(t.path, SL_OPEN_CREATE);
	struct sl_feed_config c;
	sl__feed_config_init(&c);
	c.messages = 5000;
	struct sl_feed *f;
	assert_int_equal(sl__feed_new(&c, &f), 0);
	uint8_t pkt[2048];
	uint64_t first;
	uint16_t cnt;
	int len, i = 0;
	uint64_t dropped_first[8], dropped_n[8];
	int ndrop = 0;
	while ((len = sl__feed_next_packet(f, pkt, sizeof(pkt), &first, &cnt)) > 0) {
		i++;
		if (i % 20 == 5 && ndrop < 8) {
			dropped_first[ndrop] = first;
			dropped_n[ndrop++] = cnt;
			continue;
		}
		struct sl_packet p = { pkt, (uint32_t)len, 0 };
		assert_int_equal(sl_db_append_packets(db, &p, 1), 0);
		if (i % 7 == 0) /* a duplicate now and then */
			assert_int_equal(sl_db_append_packets(db, &p, 1), 0);
	}
	sl__feed_free(f);
	assert_int_equal(sl_db_close_gaps(db), 0);
	struct sl_stats s;
	sl_db_stats(db, &s);
	assert_int_equal(s.gaps_detected, ndrop);
	assert_int_equal(s.gaps_lost, ndrop);
	uint64_t lost = 0;
	for (int k = 0; k < ndrop; k++)
		lost += dropped_n[k];
	assert_int_equal(s.lost_messages, lost);
	assert_int_equal(s.messages, 5000 - lost);
	assert_true(s.duplicates > 0);
	assert_string_equal(s.session, "SLUICE0001");
	assert_int_equal(sl_db_wait_durable(db, sl_db_last_seq(db), -1), 0);
	sl_db_close(db);
	/* Replay read-only: every sequence 1..5000 is either a message or inside a GAP. */
	db = open_db(t.path, SL_OPEN_RDONLY);
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), 0);
	struct sl_event ev;
	uint64_t next = 1;
	int gaps = 0;
	while (sl_iter_next(it, &ev) == 0) {
		assert_int_equal(ev.seq, next);
		if (ev.kind == SL_EVENT_GAP) {
			assert_int_equal(ev.seq, dropped_first[gaps]);
			assert_int_equal(ev.gap_count, dropped_n[gaps]);
			gaps++;
			next += ev.gap_count;
		} else {
			next++;
		}
	}
	assert_int_equal(gaps, ndrop);
	assert_int_equal(next, 5001);
	sl_iter_close(it);
	sl_db_close(db);
	rm_rf(t.path);
}

/* A rewinder on loopback: answers MoldUDP64 requests from the stored packets. */
struct rewinder {
	int fd;
	uint16_t port;
	volatile int stop;
	uint8_t (*msgs)[64];
	uint16_t *lens;
	uint64_t n;
	uint64_t answered;
	char session[10];
};

static void *rewinder_main(void *arg)
{
	struct rewinder *rw = arg;
	struct timeval tv = { 0, 20000 };
	setsockopt(rw->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (!rw->stop) {
		uint8_t req[64];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t got = recvfrom(rw->fd, req, sizeof(req), 0, (struct sockaddr *)&from, &fl);
		if (got < 0)
			continue;
		char sess[10];
		uint64_t seq;
		uint16_t cnt;
		if (sl__mold_request_decode(req, (size_t)got, sess, &seq, &cnt))
			continue;
		rw->answered++;
		while (cnt && seq >= 1 && seq <= rw->n) {
			uint8_t pkt[1400];
			size_t len = SL_MOLD_HDR_LEN;
			sl__mold_packet_init(pkt, rw->session, seq);
			while (cnt && seq <= rw->n &&
			       sl__mold_packet_add(pkt, sizeof(pkt), &len, rw->msgs[seq - 1],
						   rw->lens[seq - 1]) == 0) {
				seq++;
				cnt--;
			}
			sendto(rw->fd, pkt, len, 0, (struct sockaddr *)&from, fl);
		}
	}
	return NULL;
}

static void test_append_packets_rerequest_fills_gaps(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	/* The original stream. */
	const uint64_t n = 20000;
	struct sl_feed_config c;
	sl__feed_config_init(&c);
	c.messages = n;
	struct sl_feed *f;
	assert_int_equal(sl__feed_new(&c, &f), 0);
	struct rewinder rw = { .n = n };
	rw.msgs = malloc(n * 64);
	rw.lens = malloc(n * sizeof(uint16_t));
	memcpy(rw.session, sl__feed_session(f), 10);
	uint8_t (*pkts)[1400] = malloc(2000 * 1400);
	uint32_t *plen = malloc(2000 * sizeof(uint32_t));
	int np = 0;
	uint64_t first;
	uint16_t cnt;
	int len;
	while ((len = sl__feed_next_packet(f, pkts[np], 1400, &first, &cnt)) > 0) {
		struct sl_mold_hdr h;
		assert_int_equal(sl__mold_parse(pkts[np], (size_t)len, &h), 0);
		const uint8_t *p = pkts[np] + SL_MOLD_HDR_LEN;
		for (uint16_t k = 0; k < cnt; k++) {
			uint16_t ml = sl__be16(p);
			memcpy(rw.msgs[first + k - 1], p + 2, ml);
			rw.lens[first + k - 1] = ml;
			p += 2 + ml;
		}
		plen[np++] = (uint32_t)len;
		assert_true(np < 2000);
	}
	sl__feed_free(f);

	rw.fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	assert_int_equal(bind(rw.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	getsockname(rw.fd, (struct sockaddr *)&sa, &sl);
	rw.port = ntohs(sa.sin_port);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, rewinder_main, &rw), 0);

	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", rw.port);
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = t.path;
	o.flags = SL_OPEN_CREATE;
	o.rerequest_addr = addr;
	o.rerequest_timeout_us = 20000;
	o.gap_give_up_ms = 60000;
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	assert_true(sl_db_poll_fd(db) >= 0);
	/* Drop every 9th packet and deliver pairs swapped now and then. */
	for (int i = 0; i < np; i++) {
		if (i % 9 == 4)
			continue;
		int j = (i % 13 == 6 && i + 1 < np) ? i + 1 : i;
		struct sl_packet p = { pkts[j], plen[j], 0 };
		assert_int_equal(sl_db_append_packets(db, &p, 1), 0);
		if (j != i) {
			struct sl_packet q = { pkts[i], plen[i], 0 };
			assert_int_equal(sl_db_append_packets(db, &q, 1), 0);
			i++;
		}
	}
	for (int k = 0; k < 500 && sl_db_last_seq(db) < n; k++) {
		assert_int_equal(sl_db_tick(db), 0);
		usleep(2000);
	}
	struct sl_stats s;
	sl_db_stats(db, &s);
	assert_int_equal(sl_db_last_seq(db), n);
	assert_true(s.gaps_detected > 0);
	assert_int_equal(s.gaps_filled, s.gaps_detected);
	assert_int_equal(s.gaps_lost, 0);
	assert_true(s.rerequests_sent > 0);
	assert_int_equal(s.messages, n);
	assert_int_equal(sl_db_wait_durable(db, n, -1), 0);
	/* The stored stream is exactly the original. */
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), 0);
	struct sl_event ev;
	uint64_t want = 1;
	while (sl_iter_next(it, &ev) == 0) {
		assert_int_equal(ev.seq, want);
		assert_int_equal(ev.len, rw.lens[want - 1]);
		assert_memory_equal(ev.data, rw.msgs[want - 1], ev.len);
		want++;
	}
	assert_int_equal(want, n + 1);
	sl_iter_close(it);
	sl_db_close(db);
	rw.stop = 1;
	pthread_join(th, NULL);
	close(rw.fd);
	free(rw.msgs);
	free(rw.lens);
	free(pkts);
	free(plen);
	rm_rf(t.path);
}

static void test_iter_from_middle_and_end(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct msgs m;
	gen_msgs(&m, 30000, 3);
	struct sl_db *db = open_db(t.path, SL_OPEN_CREATE);
	append_all(db, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 12345, &it), 0);
	struct sl_event ev;
	assert_int_equal(sl_iter_next(it, &ev), 0);
	assert_int_equal(ev.seq, 12345);
	assert_memory_equal(ev.data, m.data[12344], ev.len);
	sl_iter_close(it);
	assert_int_equal(sl_iter_open(db, m.n + 1, &it), 0);
	assert_int_equal(sl_iter_next(it, &ev), SL_EEND);
	/* A live iterator sees what becomes durable later. */
	append_all(db, &m, 0, 5);
	assert_int_equal(sl_db_wait_durable(db, m.n + 5, -1), 0);
	assert_int_equal(sl_iter_next(it, &ev), 0);
	assert_int_equal(ev.seq, m.n + 1);
	sl_iter_close(it);
	sl_db_close(db);
	free_msgs(&m);
	rm_rf(t.path);
}

static void test_stats_format_json_keys(void **state)
{
	(void)state;
	struct sl_stats s;
	memset(&s, 0, sizeof(s));
	s.durable_seq = 42;
	s.msg_by_type['A'] = 7;
	strcpy(s.session, "ABC");
	char buf[8192];
	int n = sl_stats_format(&s, SL_FORMAT_JSON, buf, sizeof(buf));
	assert_int_equal((size_t)n, strlen(buf));
	assert_non_null(strstr(buf, "\"durable_seq\":42"));
	assert_non_null(strstr(buf, "\"session\":\"ABC\""));
	assert_non_null(strstr(buf, "\"msg_by_type\":{\"A\":7}"));
	/* Truncation is snprintf-like. */
	char small[16];
	assert_int_equal(sl_stats_format(&s, SL_FORMAT_JSON, small, sizeof(small)), n);
	assert_int_equal(strlen(small), 15);
}

static void test_order_format_json(void **state)
{
	(void)state;
	struct sl_order o = { .version = 1, .locate = 3, .side = 'S', .status = SL_ORDER_REPLACED,
			      .ref = 99, .price = 1234500, .shares = 0, .orig_shares = 100,
			      .replaced_by = 100 };
	strcpy(o.stock, "AAPL");
	char buf[1024];
	sl_order_format(&o, SL_FORMAT_JSON, buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"locate\":3,\"ref\":99,\"side\":\"S\",\"shares\":0,"
				    "\"price\":1234500,\"status\":\"replaced\""));
	sl_order_format(&o, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, "order 3/99 S 0 AAPL @ 123.4500 (1234500) replaced"));
	assert_non_null(strstr(buf, "replaced-by 100"));
}

/* ENOSPC while writing the log: the database fails loudly, then a reopen recovers exactly
 * what was durable before. */
static void test_append_enospc_then_recover(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct msgs m;
	gen_msgs(&m, 20000, 11);
	struct fault_os *fo = fault_os_new();
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = t.path;
	o.flags = SL_OPEN_CREATE;
	o.wal_segment_bytes = 256 * 1024;
	o.wal_buffer_bytes = 1 << 20;
	struct sl_db *db;
	assert_int_equal(sl__db_open_os(&o, fault_os_get(fo), &db), 0);
	append_all(db, &m, 0, 10000);
	assert_int_equal(sl_db_wait_durable(db, 10000, -1), 0);
	fault_os_fail(fo, FAULT_PWRITE, 1, -ENOSPC, 1);
	struct sl_msg one = { m.data[10000], m.len[10000], 0 };
	int r = sl_db_append_messages(db, &one, 1, NULL);
	assert_true(r == 0 || r == SL_EFAILED);
	assert_int_equal(sl_db_wait_durable(db, 10001, -1), -ENOSPC);
	assert_int_equal(sl_db_append_messages(db, &one, 1, NULL), SL_EFAILED);
	struct sl_stats s;
	sl_db_stats(db, &s);
	assert_int_equal(s.wal_io_errors, 1);
	assert_int_equal(s.durable_seq, 10000);
	assert_int_equal(sl_db_close(db), -ENOSPC);
	fault_os_free(fo);

	db = open_db(t.path, 0);
	assert_int_equal(sl_db_durable_seq(db), 10000);
	check_replay(db, &m, 10000);
	append_all(db, &m, 10000, 20000);
	assert_int_equal(sl_db_wait_durable(db, 20000, -1), 0);
	sl_db_close(db);
	free_msgs(&m);
	rm_rf(t.path);
}

/* Every allocation the open makes through the os seam fails in turn: each time the open
 * returns -ENOMEM, leaves nothing allocated or open, and a later open still works. */
static void test_open_alloc_failure_every_point(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = t.path;
	o.flags = SL_OPEN_CREATE;
	o.wal_segment_bytes = 256 * 1024;
	o.wal_buffer_bytes = 1 << 20;
	o.expected_orders = 1024;
	int failures = 0, opened = 0;
	for (uint64_t nth = 1; nth < 2000 && !opened; nth++) {
		fault_os_reset(fo);
		fault_os_fail(fo, FAULT_MALLOC, nth, -ENOMEM, 0);
		struct sl_db *db = NULL;
		int r = sl__db_open_os(&o, fault_os_get(fo), &db);
		if (r == 0) {
			opened = 1;
			assert_int_equal(sl_db_close(db), 0);
		} else {
			assert_int_equal(r, -ENOMEM);
			failures++;
		}
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
	}
	assert_true(opened);
	assert_true(failures >= 5);
	fault_os_free(fo);
	rm_rf(t.path);
}

/* Reopening with another segment size: the segment being continued keeps its own size (the
 * writer must not run past it), new segments take the new one, and nothing is lost. */
static void test_open_other_segment_size(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct msgs m;
	gen_msgs(&m, 61000, 21);
	const uint64_t sizes[3] = { 128 * 1024, 1024 * 1024, 128 * 1024 };
	const size_t upto[3] = { 1000, 51000, 61000 };
	size_t done = 0;
	for (int round = 0; round < 3; round++) {
		struct sl_options o;
		sl_options_init(&o);
		o.data_dir = t.path;
		o.flags = SL_OPEN_CREATE;
		o.wal_segment_bytes = sizes[round];
		o.wal_buffer_bytes = 1 << 20;
		struct sl_db *db;
		assert_int_equal(sl_db_open(&o, &db), 0);
		assert_int_equal(sl_db_durable_seq(db), done);
		append_all(db, &m, done, upto[round]);
		assert_int_equal(sl_db_wait_durable(db, upto[round], -1), 0);
		done = upto[round];
		assert_int_equal(sl_db_close(db), 0);
		char path[256];
		uint64_t off, recs, torn;
		assert_int_equal(sl_verify(t.path, path, sizeof(path), &off, &recs, &torn), 0);
		assert_int_equal(recs, done);
		assert_int_equal(torn, 0);
	}
	struct sl_db *db = open_db(t.path, SL_OPEN_RDONLY);
	check_replay(db, &m, 61000);
	sl_db_close(db);
	free_msgs(&m);
	rm_rf(t.path);
}

/* Read-only opens (what the CLI does) while a writer ingests at full speed: every open
 * succeeds and sees a contiguous prefix of the stream. */
struct live_writer {
	struct sl_db *db;
	const struct msgs *m;
	volatile int done;
};

static void *live_writer_main(void *arg)
{
	struct live_writer *lw = arg;
	append_all(lw->db, lw->m, 0, lw->m->n);
	sl_db_wait_durable(lw->db, lw->m->n, -1);
	__atomic_store_n(&lw->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_open_rdonly_during_ingest(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct msgs m;
	gen_msgs(&m, getenv("SL_TEST_QUICK") ? 100000 : 400000, 5);
	struct live_writer lw = { .db = open_db(t.path, SL_OPEN_CREATE), .m = &m };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, live_writer_main, &lw), 0);
	int opens = 0;
	while (!__atomic_load_n(&lw.done, __ATOMIC_ACQUIRE) || opens < 3) {
		struct sl_db *ro = open_db(t.path, SL_OPEN_RDONLY);
		struct sl_iter *it;
		assert_int_equal(sl_iter_open(ro, 1, &it), 0);
		struct sl_event ev;
		uint64_t want = 1;
		while (sl_iter_next(it, &ev) == 0) {
			assert_int_equal(ev.seq, want);
			assert_memory_equal(ev.data, m.data[want - 1], ev.len);
			want++;
		}
		sl_iter_close(it);
		sl_db_close(ro);
		opens++;
	}
	pthread_join(th, NULL);
	sl_db_close(lw.db);
	free_msgs(&m);
	rm_rf(t.path);
}

/* Options of the tests that write tables: small segments, buffers and memtables. */
static void small_store_options(struct sl_options *o, const char *dir, uint64_t memtable_bytes)
{
	sl_options_init(o);
	o->data_dir = dir;
	o->flags = SL_OPEN_CREATE;
	o->wal_segment_bytes = 256 * 1024;
	o->wal_buffer_bytes = 1 << 20;
	o->memtable_bytes = memtable_bytes;
	o->expected_orders = 4096;
}

/* A reference store in dir: the same options, never flushed, never synced. */
static struct sl_db *open_reference(const struct sl_options *o, const char *dir)
{
	struct sl_options ro = *o;
	ro.data_dir = dir;
	ro.memtable_bytes = 0;
	ro.flags |= SL_OPEN_NO_SYNC;
	struct sl_db *ref;
	assert_int_equal(sl_db_open(&ro, &ref), 0);
	return ref;
}

/* Poll the stats until every rotation is flushed (and, if want_applied, the state is at that
 * sequence), for up to 60 s (sanitizer builds apply slowly); the last stats are left in *s. */
static void wait_flushed(struct sl_db *db, uint64_t want_applied, struct sl_stats *s)
{
	for (int i = 0; i < 6000; i++) {
		sl_db_stats(db, s);
		if (s->rotations && s->flushes == s->rotations &&
		    (!want_applied || s->applied_seq == want_applied))
			return;
		usleep(10000);
	}
	/* Say so rather than let a later comparison see a state still catching up. */
	if (want_applied && s->applied_seq != want_applied)
		fail_msg("the state did not reach seq %llu in 60 s (applied %llu, rotations %llu, "
			 "flushes %llu)", (unsigned long long)want_applied,
			 (unsigned long long)s->applied_seq, (unsigned long long)s->rotations,
			 (unsigned long long)s->flushes);
}

/* How check_same_state treats orders in a final state (executed, cancelled, deleted, replaced),
 * which compaction drops at the bottom level: FINAL_EXACT, they must answer as the reference;
 * FINAL_ANY, answering as the reference or not found are both right (a background compaction may
 * or may not have run); FINAL_GONE, they must be gone (after a flush and a full compaction). */
enum { FINAL_EXACT, FINAL_ANY, FINAL_GONE };
static int final_mode = FINAL_ANY;

/* Every order and trade the reference store knows, the other store must answer identically. */
static void check_same_state(struct sl_db *db, struct sl_db *ref, const struct msgs *m)
{
	uint64_t orders = 0, trades = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct sl_itch_msg msg;
		if (sl__itch_decode(m->data[i], m->len[i], &msg))
			continue;
		if (msg.type == 'A' || msg.type == 'F') {
			struct sl_order a, b;
			assert_int_equal(sl_db_get_order(ref, msg.locate, msg.u.add_order.ref, &a), 0);
			int r = sl_db_get_order(db, msg.locate, msg.u.add_order.ref, &b);
			if (a.status != SL_ORDER_OPEN && final_mode != FINAL_EXACT &&
			    (r == SL_ENOTFOUND || final_mode == FINAL_GONE)) {
				assert_int_equal(r, SL_ENOTFOUND);
				orders++;
				continue;
			}
			if (r)
				fail_msg("order %u/%llu: %s", msg.locate,
					 (unsigned long long)msg.u.add_order.ref, sl_strerror(r));
			assert_memory_equal(&a, &b, sizeof(a));
			orders++;
		} else if (msg.type == 'E' || msg.type == 'P') {
			uint64_t match = msg.type == 'E' ? msg.u.executed.match : msg.u.trade.match;
			struct sl_trade a, b;
			assert_int_equal(sl_db_get_trade(ref, match, &a), 0);
			assert_int_equal(sl_db_get_trade(db, match, &b), 0);
			assert_memory_equal(&a, &b, sizeof(a));
			trades++;
		}
	}
	assert_true(orders > 1000 && trades > 100);
	struct sl_stock sa, sb;
	assert_int_equal(sl_db_get_stock(ref, 1, &sa), 0);
	assert_int_equal(sl_db_get_stock(db, 1, &sb), 0);
	assert_memory_equal(&sa, &sb, sizeof(sa));
}

/* A small memtable: it rotates and flushes many times while the feed goes in; queries, replay
 * and a restart (recovery from the manifest and the log tail) all see exactly what a store
 * that kept everything in memory sees. */
static void test_flush_rotation_queries_replay_restart(void **state)
{
	(void)state;
	final_mode = FINAL_ANY;
	struct tdir t, tr;
	tdir_new(&t);
	tdir_new(&tr);
	struct msgs m;
	gen_msgs(&m, getenv("SL_TEST_QUICK") ? 100000 : 200000, 17);
	struct sl_options o;
	small_store_options(&o, t.path, 512 * 1024);
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	struct sl_db *ref = open_reference(&o, tr.path);
	append_all(db, &m, 0, m.n);
	append_all(ref, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	assert_int_equal(sl_db_wait_durable(ref, m.n, -1), 0);
	struct sl_stats s;
	wait_flushed(db, 0, &s);
	assert_true(s.rotations >= 3);
	assert_int_equal(s.flushes, s.rotations);
	assert_int_equal(s.flush_errors, 0);
	assert_true(s.tables >= s.flushes);
	assert_true(s.level_tables[6] == s.flushes);
	if (!(s.checkpoint_seq > 0 && s.checkpoint_seq < m.n))
		fail_msg("checkpoint %llu rotations %llu flushes %llu tables %llu", (unsigned long long)s.checkpoint_seq, (unsigned long long)s.rotations, (unsigned long long)s.flushes, (unsigned long long)s.tables);
	check_same_state(db, ref, &m);
	check_replay(db, &m, m.n);
	assert_int_equal(sl_db_close(db), 0);

	/* Restart: the log holds only the tail; everything else comes from tables. */
	assert_int_equal(sl_db_open(&o, &db), 0);
	sl_db_stats(db, &s);
	assert_true(s.recovered_records < m.n);
	assert_int_equal(sl_db_durable_seq(db), m.n);
	check_same_state(db, ref, &m);
	check_replay(db, &m, m.n);
	/* A trading action after the restart updates the stock the tables brought back. */
	uint8_t h[25] = { 'H', 0, 1 };
	memcpy(h + 11, "HALTED  ", 8);
	h[19] = 'H';
	h[20] = ' ';
	memcpy(h + 21, "T1  ", 4);
	struct sl_msg hm = { h, sizeof(h), 0 };
	assert_int_equal(sl_db_append_messages(db, &hm, 1, NULL), 0);
	assert_int_equal(sl_db_append_messages(ref, &hm, 1, NULL), 0);
	assert_int_equal(sl_db_wait_durable(db, m.n + 1, -1), 0);
	assert_int_equal(sl_db_wait_durable(ref, m.n + 1, -1), 0);
	struct sl_stock sa, sb;
	assert_int_equal(sl_db_get_stock(ref, 1, &sa), 0);
	assert_int_equal(sl_db_get_stock(db, 1, &sb), 0);
	assert_int_equal(sb.trading_state, 'H');
	assert_memory_equal(&sa, &sb, sizeof(sa));
	assert_int_equal(sl_db_close(db), 0);
	char path[4200];
	uint64_t off, recs, torn;
	assert_int_equal(sl_verify(t.path, path, sizeof(path), &off, &recs, &torn), 0);
	/* A read-only open (the CLI) sees the same state. */
	db = open_db(t.path, SL_OPEN_RDONLY);
	check_same_state(db, ref, &m);
	assert_int_equal(sl_db_get_stock(db, 1, &sb), 0);
	assert_int_equal(sb.trading_state, 'H');
	sl_db_close(db);
	sl_db_close(ref);
	free_msgs(&m);
	rm_rf(t.path);
	rm_rf(tr.path);
}

/* A bit flipped in a state table: verify names the table and the block, lookups that land in
 * that block fail with SL_ECORRUPT, everything else keeps being answered. */
static void test_table_corruption_named_and_contained(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct msgs m;
	gen_msgs(&m, 60000, 23);
	struct sl_options o;
	small_store_options(&o, t.path, 1 << 20);
	o.compaction = 0; /* the table damaged below must still be there */
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	append_all(db, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	struct sl_stats s;
	wait_flushed(db, 0, &s);
	assert_true(s.level_tables[0] >= 1);
	assert_int_equal(sl_db_close(db), 0);
	/* The first state table is 0000000000000001.sst; flip a bit 100 bytes into it (its
	 * first data block, which holds the lowest order keys). */
	char path[256];
	snprintf(path, sizeof(path), "%s/0000000000000001.sst", t.path);
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 100, SEEK_SET);
	int c = fgetc(f);
	fseek(f, 100, SEEK_SET);
	fputc(c ^ 0x10, f);
	fclose(f);
	char bad[4200];
	uint64_t off = 99, recs, torn;
	assert_int_equal(sl_verify(t.path, bad, sizeof(bad), &off, &recs, &torn), SL_ECORRUPT);
	assert_string_equal(bad, path);
	assert_int_equal(off, 0);
	/* The store still opens and answers; the damaged block's keys report the damage. */
	db = open_db(t.path, SL_OPEN_RDONLY);
	uint64_t ok = 0, corrupt = 0;
	for (size_t i = 0; i < m.n; i++) {
		struct sl_itch_msg msg;
		if (sl__itch_decode(m.data[i], m.len[i], &msg) || msg.type != 'A')
			continue;
		struct sl_order ord;
		int r = sl_db_get_order(db, msg.locate, msg.u.add_order.ref, &ord);
		if (r == 0)
			ok++;
		else if (r == SL_ECORRUPT)
			corrupt++;
		else
			fail_msg("order %u/%llu: %s", msg.locate,
				 (unsigned long long)msg.u.add_order.ref, sl_strerror(r));
	}
	assert_true(corrupt > 0);
	assert_true(ok > 10 * corrupt);
	sl_db_close(db);
	free_msgs(&m);
	rm_rf(t.path);
}

/* A full disk while flushing: the flush fails and is retried, the log keeps everything (no
 * acknowledged message depends on the flush), queries keep working; once space is back the
 * retry succeeds and a restart sees the same state. */
static void test_flush_enospc_retried(void **state)
{
	(void)state;
	struct tdir t, tr;
	tdir_new(&t);
	tdir_new(&tr);
	struct msgs m;
	gen_msgs(&m, 40000, 29);
	struct fault_os *fo = fault_os_new();
	fault_os_match(fo, ".sst");
	fault_os_fail(fo, FAULT_PWRITE, 1, -ENOSPC, 1);
	struct sl_options o;
	small_store_options(&o, t.path, 256 * 1024);
	struct sl_db *db;
	assert_int_equal(sl__db_open_os(&o, fault_os_get(fo), &db), 0);
	struct sl_db *ref = open_reference(&o, tr.path);
	append_all(db, &m, 0, m.n);
	append_all(ref, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	assert_int_equal(sl_db_wait_durable(ref, m.n, -1), 0);
	struct sl_stats s;
	for (int i = 0; i < 300; i++) {
		sl_db_stats(db, &s);
		if (s.flush_errors)
			break;
		usleep(10000);
	}
	/* Everything is durable in the log; the state stalls once the immutables waiting for
	 * their flush fill up (back-pressure, counted), and queries still answer from it. */
	assert_true(s.flush_errors >= 1);
	assert_int_equal(s.flushes, 0);
	assert_int_equal(s.wal_io_errors, 0);
	assert_int_equal(s.durable_seq, m.n);
	for (int i = 0; i < 300 && !s.rotate_waits; i++) {
		usleep(10000);
		sl_db_stats(db, &s);
	}
	assert_true(s.rotate_waits >= 1);
	assert_true(s.applied_seq < m.n);
	struct sl_stock st;
	assert_int_equal(sl_db_get_stock(db, 1, &st), 0);
	fault_os_reset(fo); /* space is back: the next retry (within a second) succeeds */
	wait_flushed(db, m.n, &s);
	assert_int_equal(s.applied_seq, m.n);
	assert_true(s.flushes >= 1);
	assert_int_equal(s.flushes, s.rotations);
	check_same_state(db, ref, &m);
	assert_int_equal(sl_db_close(db), 0);
	fault_os_free(fo);
	assert_int_equal(sl_db_open(&o, &db), 0);
	check_same_state(db, ref, &m);
	check_replay(db, &m, m.n);
	sl_db_close(db);
	sl_db_close(ref);
	char path[4200];
	uint64_t off, recs, torn;
	assert_int_equal(sl_verify(t.path, path, sizeof(path), &off, &recs, &torn), 0);
	free_msgs(&m);
	rm_rf(t.path);
	rm_rf(tr.path);
}

/* Scans of a stock's orders and trades over a time range answer exactly what a walk of the
 * reference's state gives, in key order, across the memtable and many tables; multi-get equals
 * the single gets. */
struct scan_ref {
	uint16_t locate;
	uint64_t from, to;
	uint64_t refs[65536];
	size_t n;
};

static void test_scan_and_multiget(void **state)
{
	(void)state;
	final_mode = FINAL_EXACT;
	struct tdir t, tr;
	tdir_new(&t);
	tdir_new(&tr);
	struct msgs m;
	gen_msgs(&m, 120000, 31);
	struct sl_options o;
	small_store_options(&o, t.path, 256 * 1024);
	o.compaction = 0; /* final states stay: the scans must match the reference exactly */
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	struct sl_db *ref = open_reference(&o, tr.path);
	append_all(db, &m, 0, m.n);
	append_all(ref, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	assert_int_equal(sl_db_wait_durable(ref, m.n, -1), 0);
	struct sl_stats s;
	wait_flushed(db, m.n, &s);
	assert_true(s.level_tables[0] >= 4);
	/* Every order key of the feed, for multi-get and the scan reference. */
	size_t n = 0;
	uint16_t *locs = calloc(m.n, sizeof(*locs));
	uint64_t *refs = calloc(m.n, sizeof(*refs)), *ts = calloc(m.n, sizeof(*ts));
	assert_non_null(locs);
	assert_non_null(refs);
	assert_non_null(ts);
	for (size_t i = 0; i < m.n; i++) {
		struct sl_itch_msg msg;
		if (sl__itch_decode(m.data[i], m.len[i], &msg) == 0 &&
		    (msg.type == 'A' || msg.type == 'F' || msg.type == 'U')) {
			/* A replace creates an order too, added at its own time. */
			locs[n] = msg.locate;
			refs[n] = msg.type == 'U' ? msg.u.replace.new_ref : msg.u.add_order.ref;
			ts[n++] = msg.timestamp;
		}
	}
	/* Multi-get (plus keys that never existed) equals single gets of the reference. */
	size_t nq = n + 100;
	locs = realloc(locs, nq * sizeof(*locs));
	refs = realloc(refs, nq * sizeof(*refs));
	for (size_t i = n; i < nq; i++) {
		locs[i] = (uint16_t)(i % 7 + 1);
		refs[i] = (1ull << 40) + i;
	}
	struct sl_order *out = calloc(nq, sizeof(*out));
	int *rc = calloc(nq, sizeof(*rc));
	assert_int_equal(sl_db_get_orders(db, nq, locs, refs, out, rc), 0);
	for (size_t i = 0; i < nq; i++) {
		struct sl_order a;
		int r = sl_db_get_order(ref, locs[i], refs[i], &a);
		assert_int_equal(rc[i], r);
		if (!r)
			assert_memory_equal(&a, &out[i], sizeof(a));
	}
	sl_db_stats(db, &s);
	assert_true(s.bloom_probes > 0 && s.bloom_negatives > 0);
	/* Scans: three stocks, whole day and a window. */
	for (uint16_t loc = 1; loc <= 3; loc++) {
		for (int w = 0; w < 2; w++) {
			uint64_t from = w ? ts[n / 3] : 0, to = w ? ts[2 * n / 3] : 0;
			/* The reference: every order of loc added in range, by ref. */
			uint64_t *want = calloc(n, sizeof(*want));
			size_t nw = 0;
			for (size_t i = 0; i < n; i++)
				if (locs[i] == loc && ts[i] >= from && (!to || ts[i] <= to))
					want[nw++] = refs[i];
			for (size_t i = 1; i < nw; i++) /* insertion sort: refs mostly ascend */
				for (size_t j = i; j > 0 && want[j - 1] > want[j]; j--) {
					uint64_t x = want[j];
					want[j] = want[j - 1];
					want[j - 1] = x;
				}
			struct sl_scan *sc;
			assert_int_equal(sl_scan_open(db, SL_SCAN_ORDERS, loc, from, to, &sc), 0);
			struct sl_order so, ro;
			size_t got = 0;
			int r;
			while ((r = sl_scan_next_order(sc, &so)) == 0) {
				assert_true(got < nw);
				assert_int_equal(so.ref, want[got]);
				assert_int_equal(sl_db_get_order(ref, loc, so.ref, &ro), 0);
				assert_memory_equal(&so, &ro, sizeof(so));
				got++;
			}
			assert_int_equal(r, SL_EEND);
			assert_int_equal(got, nw);
			assert_true(w || nw > 100);
			struct sl_trade tr_;
			assert_int_equal(sl_scan_next_trade(sc, &tr_), -EINVAL);
			sl_scan_close(sc);
			free(want);
			/* Trades of the stock: ascending match numbers, each equal to the reference's. */
			assert_int_equal(sl_scan_open(db, SL_SCAN_TRADES, loc, from, to, &sc), 0);
			uint64_t last = 0;
			size_t trades = 0;
			while ((r = sl_scan_next_trade(sc, &tr_)) == 0) {
				struct sl_trade rt;
				assert_true(tr_.match > last);
				last = tr_.match;
				assert_int_equal(tr_.locate, loc);
				assert_true(tr_.ts >= from && (!to || tr_.ts <= to));
				assert_int_equal(sl_db_get_trade(ref, tr_.match, &rt), 0);
				assert_memory_equal(&tr_, &rt, sizeof(rt));
				trades++;
			}
			assert_int_equal(r, SL_EEND);
			assert_true(w || trades > 10);
			sl_scan_close(sc);
		}
	}
	assert_int_equal(sl_scan_open(db, 'X', 1, 0, 0, &(struct sl_scan *){ NULL }), -EINVAL);
	free(out);
	free(rc);
	free(locs);
	free(refs);
	free(ts);
	sl_db_close(db);
	sl_db_close(ref);
	free_msgs(&m);
	rm_rf(t.path);
	rm_rf(tr.path);
}

/* Background compaction keeps level 0 short while the feed goes in; sl_db_flush then
 * sl_db_compact leaves one level of state tables, with every final-state order gone and every
 * open order, trade and stock exactly as the reference has them, before and after a restart;
 * replay still gives every message; verify passes; the stats show it. */
static void test_compaction_background_and_full(void **state)
{
	(void)state;
	struct tdir t, tr;
	tdir_new(&t);
	tdir_new(&tr);
	struct msgs m;
	gen_msgs(&m, getenv("SL_TEST_QUICK") ? 100000 : 200000, 41);
	struct sl_options o;
	small_store_options(&o, t.path, 256 * 1024);
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	struct sl_db *ref = open_reference(&o, tr.path);
	append_all(db, &m, 0, m.n);
	append_all(ref, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	assert_int_equal(sl_db_wait_durable(ref, m.n, -1), 0);
	struct sl_stats s;
	wait_flushed(db, m.n, &s);
	final_mode = FINAL_ANY;
	check_same_state(db, ref, &m);
	assert_int_equal(sl_db_flush(db), 0);
	sl_db_stats(db, &s);
	assert_int_equal(s.checkpoint_seq, m.n);
	assert_true(s.compactions > 0);
	assert_int_equal(s.compaction_errors, 0);
	assert_int_equal(sl_db_compact(db), 0);
	sl_db_stats(db, &s);
	int levels = 0;
	for (int l = 0; l < 6; l++)
		levels += s.level_tables[l] > 0;
	assert_int_equal(levels, 1);
	assert_int_equal(s.level_tables[0], 0);
	assert_true(s.compaction_dropped > 0);
	final_mode = FINAL_GONE;
	check_same_state(db, ref, &m);
	check_replay(db, &m, m.n);
	char js[8192];
	sl_stats_format(&s, SL_FORMAT_JSON, js, sizeof(js));
	assert_non_null(strstr(js, "\"compactions\":"));
	assert_non_null(strstr(js, "\"bloom_false_positive_rate\":"));
	assert_int_equal(sl_db_close(db), 0);
	char path[4200];
	uint64_t off, recs, torn;
	assert_int_equal(sl_verify(t.path, path, sizeof(path), &off, &recs, &torn), 0);
	assert_int_equal(sl_db_open(&o, &db), 0);
	check_same_state(db, ref, &m);
	check_replay(db, &m, m.n);
	/* Nothing new: another full compaction changes nothing it answers. */
	assert_int_equal(sl_db_compact(db), 0);
	check_same_state(db, ref, &m);
	assert_int_equal(sl_db_close(db), 0);
	sl_db_close(ref);
	final_mode = FINAL_ANY;
	free_msgs(&m);
	rm_rf(t.path);
	rm_rf(tr.path);
}

/* The store on the sim backend with a device fault injected partway (a kernel hung while the log
 * writes; the device lost in a compaction's merge job): the accelerator seam runs the failed calls and, once the device is lost, every later
 * one on cpu; ingest, flushes and a full compaction go on, and the store answers exactly as a
 * reference on cpu, before and after a restart; the stats count the fallbacks. */
static void test_accel_device_faults(void **state)
{
	(void)state;
	static const struct {
		const char *profile;
		int lost;
	} faults[] = {
		{ "fpga,timeout_ms=100,fault=hang@40", 0 },
		{ "gpu,timeout_ms=100,fault=lost@merge", 1 }, /* in a compaction job */
	};
	char *accel_was = getenv("SLUICE_ACCEL") ? strdup(getenv("SLUICE_ACCEL")) : NULL;
	struct msgs m;
	gen_msgs(&m, getenv("SL_TEST_QUICK") ? 60000 : 120000, 77);
	for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
		struct tdir t, tr;
		tdir_new(&t);
		tdir_new(&tr);
		setenv("SLUICE_ACCEL", "sim", 1);
		setenv("SLUICE_SIM_PROFILE", faults[f].profile, 1);
		struct sl_options o;
		small_store_options(&o, t.path, 256 * 1024);
		struct sl_db *db;
		assert_int_equal(sl_db_open(&o, &db), 0);
		struct sl_options ro = o;
		ro.accel = "cpu";
		struct sl_db *ref = open_reference(&ro, tr.path);
		append_all(db, &m, 0, m.n);
		append_all(ref, &m, 0, m.n);
		assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
		assert_int_equal(sl_db_wait_durable(ref, m.n, -1), 0);
		struct sl_stats s;
		wait_flushed(db, m.n, &s);
		assert_int_equal(sl_db_flush(db), 0);
		assert_int_equal(sl_db_compact(db), 0);
		sl_db_stats(db, &s);
		assert_true(s.accel_fallbacks >= 1);
		assert_int_equal(s.accel_lost, (uint64_t)faults[f].lost);
		assert_int_equal(s.compaction_errors, 0);
		assert_int_equal(s.flush_errors, 0);
		final_mode = FINAL_GONE;
		check_same_state(db, ref, &m);
		check_replay(db, &m, m.n);
		assert_int_equal(sl_db_close(db), 0);
		unsetenv("SLUICE_SIM_PROFILE");
		o.accel = "cpu";
		assert_int_equal(sl_db_open(&o, &db), 0);
		check_same_state(db, ref, &m);
		assert_int_equal(sl_db_close(db), 0);
		sl_db_close(ref);
		final_mode = FINAL_ANY;
		rm_rf(t.path);
		rm_rf(tr.path);
	}
	if (accel_was)
		setenv("SLUICE_ACCEL", accel_was, 1);
	else
		unsetenv("SLUICE_ACCEL");
	free(accel_was);
	free_msgs(&m);
}

/* Event retention by bytes: the oldest event tables go; replay from before the retained history
 * says so; replay from the oldest retained runs to the end with no gap; the state is intact. */
static void test_event_retention(void **state)
{
	(void)state;
	struct tdir t, tr;
	tdir_new(&t);
	tdir_new(&tr);
	struct msgs m;
	gen_msgs(&m, 150000, 43);
	struct sl_options o;
	small_store_options(&o, t.path, 256 * 1024);
	o.event_retain_bytes = 1 << 20;
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	struct sl_db *ref = open_reference(&o, tr.path);
	append_all(db, &m, 0, m.n);
	append_all(ref, &m, 0, m.n);
	assert_int_equal(sl_db_wait_durable(db, m.n, -1), 0);
	assert_int_equal(sl_db_flush(db), 0);
	struct sl_stats s;
	for (int i = 0; i < 300; i++) {
		sl_db_stats(db, &s);
		if (s.events_retired_tables && s.level_bytes[6] <= o.event_retain_bytes)
			break;
		usleep(10000);
	}
	assert_true(s.events_retired_tables > 0);
	assert_true(s.level_bytes[6] <= o.event_retain_bytes);
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), SL_ENOTFOUND);
	assert_int_equal(sl_iter_open(db, 0, &it), 0);
	struct sl_event ev;
	assert_int_equal(sl_iter_next(it, &ev), 0);
	uint64_t first = ev.seq, want = first + 1;
	assert_true(first > 1);
	assert_memory_equal(ev.data, m.data[first - 1], ev.len);
	int r;
	while ((r = sl_iter_next(it, &ev)) == 0) {
		assert_int_equal(ev.seq, want);
		assert_memory_equal(ev.data, m.data[want - 1], ev.len);
		want++;
	}
	assert_int_equal(r, SL_EEND);
	assert_int_equal(want - 1, m.n);
	sl_iter_close(it);
	final_mode = FINAL_ANY;
	assert_int_equal(sl_db_wait_durable(ref, m.n, -1), 0);
	check_same_state(db, ref, &m);
	sl_db_close(db);
	sl_db_close(ref);
	free_msgs(&m);
	rm_rf(t.path);
	rm_rf(tr.path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_options_invalid),
		cmocka_unit_test(test_open_lock_and_rdonly),
		cmocka_unit_test(test_append_messages_restart_state),
		cmocka_unit_test(test_append_messages_bad_counted_and_logged),
		cmocka_unit_test(test_append_packets_gap_given_up),
		cmocka_unit_test(test_append_packets_rerequest_fills_gaps),
		cmocka_unit_test(test_iter_from_middle_and_end),
		cmocka_unit_test(test_stats_format_json_keys),
		cmocka_unit_test(test_order_format_json),
		cmocka_unit_test(test_append_enospc_then_recover),
		cmocka_unit_test(test_open_alloc_failure_every_point),
		cmocka_unit_test(test_open_other_segment_size),
		cmocka_unit_test(test_open_rdonly_during_ingest),
		cmocka_unit_test(test_flush_rotation_queries_replay_restart),
		cmocka_unit_test(test_table_corruption_named_and_contained),
		cmocka_unit_test(test_flush_enospc_retried),
		cmocka_unit_test(test_scan_and_multiget),
		cmocka_unit_test(test_compaction_background_and_full),
		cmocka_unit_test(test_event_retention),
		cmocka_unit_test(test_accel_device_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
