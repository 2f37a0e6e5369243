/* test_mold.c - unit tests of MoldUDP64: packet and request parsing (every truncation, lengths
 * past the end, trailing bytes), the builders, and the session tracker, case by case and then
 * end to end over a simulated lossy, reordering, duplicating channel whose rewinder answers the
 * tracker's requests. Links mold.o and err.o only.
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
#include "mold.h"
#include "sluice.h"

#define SESSION "SESSION001"
#define OTHER	"SESSION002"
#define MS	1000000ull

/* ---- Helpers -------------------------------------------------------------------------------- */

/* Message contents are a function of the sequence, so deliver() can check every byte. len < 0
 * picks the default length pattern, which includes empty messages. */
static uint16_t pattern_len(uint64_t seq, int len)
{
	return len >= 0 ? (uint16_t)len : (uint16_t)(seq % 7);
}

static uint8_t pattern_byte(uint64_t seq, size_t j)
{
	return (uint8_t)(seq * 131u + j * 7u + 1u);
}

/* Build a packet of messages [first, first + count) following the pattern. */
static size_t mkpkt_len(uint8_t *buf, size_t cap, const char *session, uint64_t first,
			uint16_t count, int len)
{
	uint8_t msg[65535];
	size_t plen = SL_MOLD_HDR_LEN;
	uint16_t i, j;

	sl__mold_packet_init(buf, session, first);
	for (i = 0; i < count; i++) {
		uint16_t mlen = pattern_len(first + i, len);

		for (j = 0; j < mlen; j++)
			msg[j] = pattern_byte(first + i, j);
		assert_int_equal(sl__mold_packet_add(buf, cap, &plen, msg, mlen), 0);
	}
	return plen;
}

static size_t mkpkt(uint8_t *buf, const char *session, uint64_t first, uint16_t count)
{
	return mkpkt_len(buf, 1500, session, first, count, -1);
}

/* What the callbacks saw. */
struct harness {
	struct sl_mold *m;
	int len;	 /* message length pattern, as mkpkt_len */
	uint64_t expect; /* the sequence deliver() must see next */
	size_t calls, delivered, last_n;
	int fail_deliver; /* fail this many deliver() calls with -EIO ... */
	int fail_after;	  /* ... after this many more succeed */
	int fail_lost;
	struct {
		char session[SL_MOLD_SESSION_LEN];
		uint64_t seq;
		uint16_t count;
	} req[256];
	size_t nreq;
	struct {
		uint64_t first, count, now;
	} lost[16];
	size_t nlost;
	char log[512]; /* "D6+3 L9+2 ..." in call order */
};

static void logf_(struct harness *h, char kind, uint64_t a, uint64_t n)
{
	size_t l = strlen(h->log);

	snprintf(h->log + l, sizeof(h->log) - l, "%s%c%llu+%llu", l ? " " : "", kind,
		 (unsigned long long)a, (unsigned long long)n);
}

static int h_deliver(void *arg, const struct sl_mold_msg *msgs, size_t n)
{
	struct harness *h = arg;
	size_t i, j;

	if (h->fail_deliver) {
		if (h->fail_after) {
			h->fail_after--;
		} else {
			h->fail_deliver--;
			return -EIO;
		}
	}
	assert_true(n >= 1);
	logf_(h, 'D', msgs[0].seq, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(msgs[i].seq, h->expect);
		assert_int_equal(msgs[i].len, pattern_len(msgs[i].seq, h->len));
		for (j = 0; j < msgs[i].len; j++)
			assert_int_equal(msgs[i].data[j], pattern_byte(msgs[i].seq, j));
		h->expect++;
	}
	h->calls++;
	h->delivered += n;
	h->last_n = n;
	return 0;
}

static void h_request(void *arg, const uint8_t *pkt, size_t len)
{
	struct harness *h = arg;

	assert_true(h->nreq < 256);
	assert_int_equal(sl__mold_request_decode(pkt, len, h->req[h->nreq].session,
						 &h->req[h->nreq].seq, &h->req[h->nreq].count),
			 0);
	h->nreq++;
}

static int h_lost(void *arg, uint64_t first, uint64_t count, uint64_t now)
{
	struct harness *h = arg;

	if (h->fail_lost) {
		h->fail_lost--;
		return -EIO;
	}
	assert_true(h->nlost < 16);
	assert_int_equal(first, h->expect);
	h->lost[h->nlost].first = first;
	h->lost[h->nlost].count = count;
	h->lost[h->nlost].now = now;
	h->nlost++;
	h->expect = first + count;
	logf_(h, 'L', first, count);
	return 0;
}

static struct harness *h_open(const struct sl_mold_config *cfg)
{
	struct sl_mold_ops ops = { h_deliver, h_request, h_lost, NULL };
	struct harness *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	ops.arg = h;
	h->len = -1;
	h->expect = cfg->next_seq ? cfg->next_seq : 1;
	assert_int_equal(sl__mold_new(cfg, &ops, &h->m), 0);
	return h;
}

static struct harness *h_open_default(void)
{
	struct sl_mold_config cfg = { 0 };

	return h_open(&cfg);
}

static void h_close(struct harness *h)
{
	sl__mold_free(h->m);
	free(h);
}

static struct sl_mold_stats stats(const struct harness *h)
{
	struct sl_mold_stats st;

	sl__mold_get_stats(h->m, &st);
	return st;
}

/* Feed data packet [first, first + count) at time t; expects rc. */
static void feed(struct harness *h, uint64_t first, uint16_t count, uint64_t t, int rc)
{
	uint8_t buf[1500];
	size_t len = mkpkt(buf, SESSION, first, count);

	assert_int_equal(sl__mold_rx(h->m, buf, len, t), rc);
}

static void feed_ctl(struct harness *h, uint64_t seq, uint16_t count, uint64_t t)
{
	uint8_t buf[SL_MOLD_HDR_LEN];

	sl__mold_packet_control(buf, SESSION, seq, count);
	assert_int_equal(sl__mold_rx(h->m, buf, sizeof(buf), t), 0);
}

static void assert_req(const struct harness *h, size_t i, uint64_t seq, uint16_t count)
{
	assert_true(i < h->nreq);
	assert_memory_equal(h->req[i].session, SESSION, SL_MOLD_SESSION_LEN);
	assert_int_equal(h->req[i].seq, seq);
	assert_int_equal(h->req[i].count, count);
}

/* ---- Parse ---------------------------------------------------------------------------------- */

static void test_mold_parse_good(void **state)
{
	uint8_t buf[1500];
	struct sl_mold_hdr h;
	size_t len;

	(void)state;
	len = mkpkt(buf, SESSION, 42, 3); /* lengths 0, 1, 2 */
	assert_int_equal(len, SL_MOLD_HDR_LEN + 2 + 0 + 2 + 1 + 2 + 2);
	assert_int_equal(sl__mold_parse(buf, len, &h), 0);
	assert_memory_equal(h.session, SESSION, SL_MOLD_SESSION_LEN);
	assert_int_equal(h.seq, 42);
	assert_int_equal(h.count, 3);
	assert_int_equal(sl__mold_parse(buf, len, NULL), 0);
}

static void test_mold_parse_wire_layout(void **state)
{
	static const uint8_t pkt[] = {
		'A', 'B', 'C', ' ', ' ', ' ', ' ',  ' ',  ' ', ' ', /* session */
		0,   0,	  0,   0,   0,	 0,   0x01, 0x02,	    /* sequence 258 */
		0,   2,						    /* two messages */
		0,   1,	  'x',					    /* "x" */
		0,   3,	  'y', 'z', 'w',			    /* "yzw" */
	};
	struct sl_mold_hdr h;

	(void)state;
	assert_int_equal(sl__mold_parse(pkt, sizeof(pkt), &h), 0);
	assert_memory_equal(h.session, "ABC       ", SL_MOLD_SESSION_LEN);
	assert_int_equal(h.seq, 258);
	assert_int_equal(h.count, 2);
}

static void test_mold_parse_control(void **state)
{
	uint8_t buf[SL_MOLD_HDR_LEN + 2] = { 0 };
	struct sl_mold_hdr h;

	(void)state;
	sl__mold_packet_control(buf, SESSION, 77, SL_MOLD_HEARTBEAT);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN, &h), 0);
	assert_int_equal(h.seq, 77);
	assert_int_equal(h.count, 0);
	sl__mold_packet_control(buf, SESSION, 78, SL_MOLD_END_OF_SESSION);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN, &h), 0);
	assert_int_equal(h.seq, 78);
	assert_int_equal(h.count, 0xFFFF);
}

static void test_mold_parse_control_with_payload(void **state)
{
	uint8_t buf[SL_MOLD_HDR_LEN + 3] = { 0 };

	(void)state;
	sl__mold_packet_control(buf, SESSION, 5, SL_MOLD_HEARTBEAT);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN + 1, NULL), SL_EBADMSG);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN + 2, NULL), SL_EBADMSG);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN + 3, NULL), SL_EBADMSG);
	sl__mold_packet_control(buf, SESSION, 5, SL_MOLD_END_OF_SESSION);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN + 2, NULL), SL_EBADMSG);
}

static void test_mold_parse_truncated_every_byte(void **state)
{
	uint8_t buf[1500];
	struct sl_mold_hdr h = { .seq = 99 };
	size_t len, cut;

	(void)state;
	len = mkpkt(buf, SESSION, 10, 7);
	assert_int_equal(sl__mold_parse(buf, len, NULL), 0);
	for (cut = 0; cut < len; cut++)
		assert_int_equal(sl__mold_parse(buf, cut, &h), SL_EBADMSG);
	assert_int_equal(h.seq, 99); /* *out untouched on failure */
	assert_int_equal(sl__mold_parse(NULL, len, NULL), SL_EBADMSG);
}

static void test_mold_parse_length_past_end(void **state)
{
	uint8_t buf[1500];
	size_t len, last;

	(void)state;
	len = mkpkt(buf, SESSION, 13, 2); /* lengths 6, 0 */
	last = len - 2;			  /* the empty last message's length field */
	assert_int_equal(sl__be16(buf + last), 0);
	sl__put_be16(buf + last, 1);
	assert_int_equal(sl__mold_parse(buf, len, NULL), SL_EBADMSG);
	sl__put_be16(buf + last, 0xFFFF);
	assert_int_equal(sl__mold_parse(buf, len, NULL), SL_EBADMSG);
	/* The first message claiming to run past the end. */
	sl__put_be16(buf + last, 0);
	sl__put_be16(buf + SL_MOLD_HDR_LEN, 7);
	assert_int_equal(sl__mold_parse(buf, len, NULL), SL_EBADMSG);
	sl__put_be16(buf + SL_MOLD_HDR_LEN, 6);
	assert_int_equal(sl__mold_parse(buf, len, NULL), 0);
}

static void test_mold_parse_trailing_bytes(void **state)
{
	uint8_t buf[1500] = { 0 };
	size_t len, extra;

	(void)state;
	len = mkpkt(buf, SESSION, 1, 4);
	for (extra = 1; extra <= 3; extra++)
		assert_int_equal(sl__mold_parse(buf, len + extra, NULL), SL_EBADMSG);
	/* A count one short leaves the last message as trailing bytes. */
	sl__put_be16(buf + SL_MOLD_SESSION_LEN + 8, 3);
	assert_int_equal(sl__mold_parse(buf, len, NULL), SL_EBADMSG);
	/* A count one too many runs past the end. */
	sl__put_be16(buf + SL_MOLD_SESSION_LEN + 8, 5);
	assert_int_equal(sl__mold_parse(buf, len, NULL), SL_EBADMSG);
}

static void test_mold_parse_size_limit(void **state)
{
	static uint8_t buf[SL_MOLD_MAX_PACKET + 1];
	const uint16_t big = SL_MOLD_MAX_PACKET - SL_MOLD_HDR_LEN - 2;

	(void)state;
	sl__mold_packet_control(buf, SESSION, 1, 1);
	sl__put_be16(buf + SL_MOLD_HDR_LEN, big);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_MAX_PACKET, NULL), 0);
	sl__put_be16(buf + SL_MOLD_HDR_LEN, big + 1);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_MAX_PACKET + 1, NULL), SL_EBADMSG);
}

static void test_mold_parse_sequence_overflow(void **state)
{
	uint8_t buf[1500];
	size_t len;

	(void)state;
	len = mkpkt(buf, SESSION, UINT64_MAX - 2, 2);
	assert_int_equal(sl__mold_parse(buf, len, NULL), 0);
	sl__put_be64(buf + SL_MOLD_SESSION_LEN, UINT64_MAX - 1);
	assert_int_equal(sl__mold_parse(buf, len, NULL), SL_EBADMSG);
	/* A heartbeat carries no messages: any sequence is representable. */
	sl__mold_packet_control(buf, SESSION, UINT64_MAX, SL_MOLD_HEARTBEAT);
	assert_int_equal(sl__mold_parse(buf, SL_MOLD_HDR_LEN, NULL), 0);
}

static void test_mold_parse_zero_length_messages(void **state)
{
	uint8_t buf[1500];
	size_t len = SL_MOLD_HDR_LEN;
	struct sl_mold_hdr h;
	int i;

	(void)state;
	sl__mold_packet_init(buf, SESSION, 5);
	for (i = 0; i < 100; i++)
		assert_int_equal(sl__mold_packet_add(buf, sizeof(buf), &len, NULL, 0), 0);
	assert_int_equal(len, SL_MOLD_HDR_LEN + 200);
	assert_int_equal(sl__mold_parse(buf, len, &h), 0);
	assert_int_equal(h.count, 100);
}

/* ---- Builders and requests ------------------------------------------------------------------ */

static void test_mold_packet_add_round_trip(void **state)
{
	uint8_t buf[1400], msg[200];
	size_t len = SL_MOLD_HDR_LEN, off;
	uint16_t lens[64], n = 0, i, j;
	struct sl_mold_hdr h;

	(void)state;
	sl__mold_packet_init(buf, "RT        ", 1000);
	for (;;) {
		uint16_t mlen = (uint16_t)((n * 37u) % 120u);

		for (j = 0; j < mlen; j++)
			msg[j] = (uint8_t)(n ^ j);
		if (sl__mold_packet_add(buf, sizeof(buf), &len, msg, mlen))
			break;
		lens[n++] = mlen;
	}
	assert_true(n > 10);
	assert_int_equal(sl__mold_parse(buf, len, &h), 0);
	assert_memory_equal(h.session, "RT        ", SL_MOLD_SESSION_LEN);
	assert_int_equal(h.seq, 1000);
	assert_int_equal(h.count, n);
	off = SL_MOLD_HDR_LEN;
	for (i = 0; i < n; i++) {
		assert_int_equal(sl__be16(buf + off), lens[i]);
		for (j = 0; j < lens[i]; j++)
			assert_int_equal(buf[off + 2 + j], (uint8_t)(i ^ j));
		off += 2u + lens[i];
	}
	assert_int_equal(off, len);
}

static void test_mold_packet_add_enospc(void **state)
{
	uint8_t buf[64], copy[64], msg[40] = { 0 };
	size_t len = SL_MOLD_HDR_LEN;

	(void)state;
	memset(buf, 0xAA, sizeof(buf));
	sl__mold_packet_init(buf, SESSION, 1);
	assert_int_equal(sl__mold_packet_add(buf, 64, &len, msg, 40), 0); /* 62 bytes */
	memcpy(copy, buf, sizeof(buf));
	assert_int_equal(sl__mold_packet_add(buf, 64, &len, msg, 1), -ENOSPC);
	assert_int_equal(len, 62);
	assert_memory_equal(buf, copy, sizeof(buf));
	assert_int_equal(sl__mold_packet_add(buf, 64, &len, msg, 0), 0); /* exactly 64 */
	assert_int_equal(len, 64);
	assert_int_equal(sl__mold_packet_add(buf, 64, &len, NULL, 0), -ENOSPC);
	assert_int_equal(sl__mold_parse(buf, len, NULL), 0);
}

static void test_mold_packet_control_layout(void **state)
{
	static const uint8_t want[] = {
		'S',  'E',  'S',  'S',	'I',  'O',  'N',  '0',	'0',  '1',
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xFF, 0xFF
	};
	uint8_t buf[SL_MOLD_HDR_LEN];

	(void)state;
	sl__mold_packet_control(buf, SESSION, 0x0102030405060708ull, SL_MOLD_END_OF_SESSION);
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_mold_request_encode_round_trip(void **state)
{
	static const uint8_t want[] = { 'S', 'E', 'S', 'S', 'I', 'O', 'N',  '0',  '0',	'1',
					0,   0,	  0,   0,   0,	 0,   0x30, 0x39, 0x04, 0x00 };
	uint8_t buf[SL_MOLD_REQUEST_LEN];
	char session[SL_MOLD_SESSION_LEN];
	uint64_t seq;
	uint16_t count;

	(void)state;
	sl__mold_request_encode(buf, SESSION, 12345, 1024);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(sl__mold_request_decode(buf, sizeof(buf), session, &seq, &count), 0);
	assert_memory_equal(session, SESSION, SL_MOLD_SESSION_LEN);
	assert_int_equal(seq, 12345);
	assert_int_equal(count, 1024);
}

static void test_mold_request_decode_bad_length(void **state)
{
	uint8_t buf[SL_MOLD_REQUEST_LEN + 1] = { 0 };
	char session[SL_MOLD_SESSION_LEN];
	uint64_t seq = 7;
	uint16_t count = 7;

	(void)state;
	assert_int_equal(sl__mold_request_decode(buf, 19, session, &seq, &count), SL_EBADMSG);
	assert_int_equal(sl__mold_request_decode(buf, 21, session, &seq, &count), SL_EBADMSG);
	assert_int_equal(sl__mold_request_decode(buf, 0, session, &seq, &count), SL_EBADMSG);
	assert_int_equal(seq, 7);
	assert_int_equal(count, 7);
}

/* ---- Tracker: set-up ------------------------------------------------------------------------ */

static int noop_deliver(void *arg, const struct sl_mold_msg *msgs, size_t n)
{
	(void)arg;
	(void)msgs;
	(void)n;
	return 0;
}

static void test_mold_new_bad_config(void **state)
{
	struct sl_mold_config cfg = { 0 };
	struct sl_mold_ops ops = { noop_deliver, NULL, NULL, NULL };
	struct sl_mold_ops no_deliver = { NULL, NULL, NULL, NULL };
	struct sl_mold *m = (struct sl_mold *)&cfg;

	(void)state;
	assert_int_equal(sl__mold_new(&cfg, &no_deliver, &m), SL_ECONFIG);
	assert_null(m);
	assert_int_equal(sl__mold_new(NULL, &ops, &m), SL_ECONFIG);
	assert_int_equal(sl__mold_new(&cfg, NULL, &m), SL_ECONFIG);
	assert_int_equal(sl__mold_new(&cfg, &ops, NULL), SL_ECONFIG);
	cfg.reorder_packets = (1u << 20) + 1;
	assert_int_equal(sl__mold_new(&cfg, &ops, &m), SL_ECONFIG);
	cfg.reorder_packets = 0;
	memcpy(cfg.session, "BAD\tNAME  ", SL_MOLD_SESSION_LEN);
	assert_int_equal(sl__mold_new(&cfg, &ops, &m), SL_ECONFIG);
	assert_null(m);
	sl__mold_free(NULL);
}

static void test_mold_new_defaults(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st = stats(h);
	uint32_t i;

	(void)state;
	assert_int_equal(st.next_seq, 1); /* next_seq 0 means 1 */
	assert_int_equal(st.highest_seen, 1);
	assert_string_equal(st.session, "");
	assert_int_equal(st.ended, 0);

	/* max_request_count 1024: a gap of 3000 is asked for in three requests. */
	feed_ctl(h, 3001, SL_MOLD_HEARTBEAT, 0);
	assert_int_equal(h->nreq, 3);
	assert_req(h, 0, 1, 1024);
	assert_req(h, 1, 1025, 1024);
	assert_req(h, 2, 2049, 952);

	/* rerequest_timeout_ns 50 ms. */
	assert_int_equal(sl__mold_tick(h->m, 50 * MS - 1), 0);
	assert_int_equal(h->nreq, 3);
	assert_int_equal(sl__mold_tick(h->m, 50 * MS), 0);
	assert_int_equal(h->nreq, 6);
	assert_req(h, 3, 1, 1024);

	/* reorder_packets 4096: the 4097th early packet does not fit. */
	for (i = 0; i < 4097; i++)
		feed(h, 3001 + i, 1, 50 * MS, 0);
	st = stats(h);
	assert_int_equal(st.packets_reordered, 4096);
	assert_int_equal(st.reorder_overflow, 1);
	assert_int_equal(st.highest_seen, 3001 + 4097);

	/* give_up_ns 5 s (the gap made no progress since it was found at 0). */
	assert_int_equal(sl__mold_tick(h->m, 5000 * MS - 1), 0);
	assert_int_equal(h->nlost, 0);
	assert_int_equal(sl__mold_tick(h->m, 5000 * MS), 0);
	assert_int_equal(h->nlost, 1);
	assert_int_equal(h->lost[0].first, 1);
	assert_int_equal(h->lost[0].count, 3000);
	assert_int_equal(h->lost[0].now, 5000 * MS);
	st = stats(h);
	assert_int_equal(st.messages_delivered, 4096);
	assert_int_equal(st.next_seq, 3001 + 4096);
	h_close(h);
}

/* ---- Tracker: in order, duplicates, overlaps ------------------------------------------------ */

static void test_mold_rx_in_order(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 10, 0);
	assert_int_equal(h->calls, 1);
	assert_int_equal(h->last_n, 5);
	feed(h, 6, 5, 20, 0);
	feed(h, 11, 1, 30, 0);
	assert_int_equal(h->calls, 3);
	assert_int_equal(h->last_n, 1);
	assert_int_equal(h->delivered, 11);
	st = stats(h);
	assert_int_equal(st.packets, 3);
	assert_int_equal(st.messages_delivered, 11);
	assert_int_equal(st.next_seq, 12);
	assert_int_equal(st.highest_seen, 12);
	assert_string_equal(st.session, SESSION);
	assert_int_equal(st.duplicates + st.gaps_detected + st.packets_reordered + st.packets_bad,
			 0);
	assert_int_equal(h->nreq, 0);
	h_close(h);
}

static int rx_ns_deliver(void *arg, const struct sl_mold_msg *msgs, size_t n)
{
	uint64_t *seen = arg;
	size_t i;

	for (i = 0; i < n; i++)
		seen[msgs[i].seq] = msgs[i].rx_ns;
	return 0;
}

static void test_mold_rx_receive_time_per_message(void **state)
{
	struct sl_mold_config cfg = { 0 };
	struct sl_mold_ops ops = { rx_ns_deliver, NULL, NULL, NULL };
	uint64_t seen[8] = { 0 };
	struct sl_mold *m;
	uint8_t buf[1500];
	size_t len;

	(void)state;
	ops.arg = seen;
	assert_int_equal(sl__mold_new(&cfg, &ops, &m), 0);
	len = mkpkt(buf, SESSION, 4, 3);
	assert_int_equal(sl__mold_rx(m, buf, len, 111), 0); /* held */
	len = mkpkt(buf, SESSION, 1, 3);
	assert_int_equal(sl__mold_rx(m, buf, len, 222), 0);
	assert_int_equal(seen[1], 222);
	assert_int_equal(seen[3], 222);
	assert_int_equal(seen[4], 111); /* the time its own packet arrived */
	assert_int_equal(seen[6], 111);
	len = mkpkt(buf, SESSION, 7, 1); /* stamped earlier than the last packet */
	assert_int_equal(sl__mold_rx(m, buf, len, 200), 0);
	assert_int_equal(seen[7], 200);
	sl__mold_free(m);
}

static void test_mold_rx_duplicate_packet(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 0, 0);
	feed(h, 1, 5, 0, 0);
	feed(h, 3, 2, 0, 0);
	assert_int_equal(h->calls, 1);
	st = stats(h);
	assert_int_equal(st.duplicates, 7);
	assert_int_equal(st.messages_delivered, 5);
	assert_int_equal(st.next_seq, 6);
	assert_int_equal(st.packets, 3);
	h_close(h);
}

static void test_mold_rx_partial_overlap(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 0, 0);
	feed(h, 3, 7, 0, 0); /* 3..9: 3, 4, 5 were delivered */
	assert_int_equal(h->calls, 2);
	assert_int_equal(h->last_n, 4);
	assert_string_equal(h->log, "D1+5 D6+4");
	st = stats(h);
	assert_int_equal(st.duplicates, 3);
	assert_int_equal(st.messages_delivered, 9);
	assert_int_equal(st.next_seq, 10);
	h_close(h);
}

static void test_mold_rx_start_sequence(void **state)
{
	struct sl_mold_config cfg = { .next_seq = 100 };
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;

	(void)state;
	feed(h, 90, 5, 0, 0);  /* all before next_seq */
	feed(h, 95, 10, 0, 0); /* 100..104 are new */
	assert_string_equal(h->log, "D100+5");
	st = stats(h);
	assert_int_equal(st.duplicates, 10);
	assert_int_equal(st.next_seq, 105);
	h_close(h);
}

/* ---- Tracker: gaps -------------------------------------------------------------------------- */

static void test_mold_rx_gap_filled_by_retransmission(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 100, 0);
	feed(h, 11, 5, 200, 0);
	assert_int_equal(h->calls, 1);
	st = stats(h);
	assert_int_equal(st.gaps_detected, 1);
	assert_int_equal(st.gap_messages, 5);
	assert_int_equal(st.packets_reordered, 1);
	assert_int_equal(st.next_seq, 6);
	assert_int_equal(st.highest_seen, 16);
	assert_int_equal(h->nreq, 1);
	assert_req(h, 0, 6, 5);

	feed(h, 16, 2, 300, 0); /* another early one: no new gap */
	assert_int_equal(h->nreq, 1);
	feed(h, 6, 5, 400, 0); /* the retransmission: one call delivers it and the held two */
	assert_string_equal(h->log, "D1+5 D6+12");
	st = stats(h);
	assert_int_equal(st.gaps_filled, 1);
	assert_int_equal(st.gaps_detected, 1);
	assert_int_equal(st.messages_delivered, 17);
	assert_int_equal(st.next_seq, 18);
	assert_int_equal(st.packets_reordered, 2);
	assert_int_equal(st.duplicates, 0);
	/* Filled: nothing more is asked for. */
	assert_int_equal(sl__mold_tick(h->m, 10000 * MS), 0);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->nlost, 0);
	h_close(h);
}

static void test_mold_rx_gap_filled_in_pieces(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 20, 1, 0, 0); /* gap 2..19 */
	feed(h, 10, 3, 0, 0); /* the original 10..12, late: held, gap now has two holes */
	feed(h, 2, 4, 0, 0);  /* 2..5 */
	feed(h, 13, 7, 0, 0); /* 13..19: held */
	feed(h, 6, 4, 0, 0);  /* 6..9: everything through 20 */
	assert_string_equal(h->log, "D1+1 D2+4 D6+15");
	st = stats(h);
	assert_int_equal(st.gaps_detected, 1);
	assert_int_equal(st.gaps_filled, 1);
	assert_int_equal(st.gap_messages, 18);
	assert_int_equal(st.next_seq, 21);
	h_close(h);
}

static void test_mold_rx_heartbeat_detects_tail_gap(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 0, 0);
	feed_ctl(h, 6, SL_MOLD_HEARTBEAT, 0); /* nothing missing */
	assert_int_equal(h->nreq, 0);
	feed_ctl(h, 9, SL_MOLD_HEARTBEAT, 0); /* 6, 7, 8 were sent and not seen */
	assert_int_equal(h->nreq, 1);
	assert_req(h, 0, 6, 3);
	st = stats(h);
	assert_int_equal(st.heartbeats, 2);
	assert_int_equal(st.gaps_detected, 1);
	assert_int_equal(st.gap_messages, 3);
	assert_int_equal(st.highest_seen, 9);
	assert_int_equal(st.next_seq, 6);
	feed_ctl(h, 9, SL_MOLD_HEARTBEAT, 0); /* the same hole: no second gap */
	assert_int_equal(h->nreq, 1);
	feed(h, 6, 3, 0, 0);
	st = stats(h);
	assert_int_equal(st.gaps_filled, 1);
	assert_int_equal(st.next_seq, 9);
	h_close(h);
}

static void test_mold_rx_end_of_session_detects_tail_gap(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 0, 0);
	feed_ctl(h, 9, SL_MOLD_END_OF_SESSION, 0);
	assert_int_equal(h->nreq, 1);
	assert_req(h, 0, 6, 3);
	st = stats(h);
	assert_int_equal(st.end_of_session, 1);
	assert_int_equal(st.ended, 0); /* 6..8 still missing */
	feed(h, 6, 2, 0, 0);
	assert_int_equal(stats(h).ended, 0);
	feed(h, 8, 1, 0, 0);
	st = stats(h);
	assert_int_equal(st.ended, 1);
	assert_int_equal(st.gaps_filled, 1);
	assert_int_equal(st.next_seq, 9);
	h_close(h);
}

static void test_mold_rx_end_of_session_complete(void **state)
{
	struct harness *h = h_open_default();

	(void)state;
	feed(h, 1, 5, 0, 0);
	feed_ctl(h, 6, SL_MOLD_END_OF_SESSION, 0);
	assert_int_equal(stats(h).ended, 1);
	assert_int_equal(stats(h).gaps_detected, 0);
	h_close(h);
}

static void test_mold_rx_request_chunks(void **state)
{
	struct sl_mold_config cfg = { .max_request_count = 4 };
	struct harness *h = h_open(&cfg);

	(void)state;
	feed(h, 1, 5, 0, 0);
	feed(h, 16, 1, 0, 0); /* 6..15 missing */
	assert_int_equal(h->nreq, 3);
	assert_req(h, 0, 6, 4);
	assert_req(h, 1, 10, 4);
	assert_req(h, 2, 14, 2);
	assert_int_equal(stats(h).rerequests_sent, 3);
	h_close(h);
}

static void test_mold_rx_request_window(void **state)
{
	/* A gap larger than 16 requests' worth is asked for a window at a time. */
	struct sl_mold_config cfg = { .max_request_count = 2 };
	struct harness *h = h_open(&cfg);
	size_t i;

	(void)state;
	feed_ctl(h, 101, SL_MOLD_HEARTBEAT, 0); /* 1..100 missing */
	assert_int_equal(h->nreq, 16);
	for (i = 0; i < 16; i++)
		assert_req(h, i, 1 + 2 * i, 2);
	feed(h, 1, 20, 0, 0); /* part of the window: wait */
	assert_int_equal(h->nreq, 16);
	feed(h, 21, 12, 0, 0); /* the window is delivered: ask for the next one at once */
	assert_int_equal(h->nreq, 32);
	assert_req(h, 16, 33, 2);
	assert_req(h, 31, 63, 2);
	/* On timeout, what is missing from the front again, a window's worth. */
	assert_int_equal(sl__mold_tick(h->m, 50 * MS), 0);
	assert_int_equal(h->nreq, 48);
	assert_req(h, 32, 33, 2);
	h_close(h);
}

static void test_mold_tick_resends_after_timeout(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000 };
	struct harness *h = h_open(&cfg);

	(void)state;
	feed(h, 1, 5, 100, 0);
	feed(h, 16, 1, 100, 0); /* 6..15 missing */
	assert_int_equal(h->nreq, 1);
	assert_req(h, 0, 6, 10);
	feed(h, 9, 3, 200, 0); /* 9..11 arrive: 6..8 and 12..15 still missing */
	assert_int_equal(sl__mold_tick(h->m, 1099), 0);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(sl__mold_tick(h->m, 1100), 0);
	assert_int_equal(h->nreq, 3);
	assert_req(h, 1, 6, 3);
	assert_req(h, 2, 12, 4);
	assert_int_equal(sl__mold_tick(h->m, 1101), 0);
	assert_int_equal(h->nreq, 3);
	/* A packet's receive time drives the timers too. */
	feed(h, 6, 3, 2100, 0);
	assert_int_equal(h->nreq, 4);
	assert_req(h, 3, 12, 4);
	assert_int_equal(stats(h).rerequests_sent, 4);
	/* Time never runs backwards: an older timestamp resends nothing. */
	assert_int_equal(sl__mold_tick(h->m, 50), 0);
	assert_int_equal(h->nreq, 4);
	h_close(h);
}

static void test_mold_tick_resends_every_gap(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000 };
	struct harness *h = h_open(&cfg);

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 3, 1, 0, 0);   /* gap 2 */
	feed(h, 5, 1, 500, 0); /* gap 4 */
	feed(h, 8, 1, 500, 0); /* gap 6..7 */
	assert_int_equal(stats(h).gaps_detected, 3);
	assert_int_equal(h->nreq, 3);
	assert_int_equal(sl__mold_tick(h->m, 1000), 0);
	assert_int_equal(h->nreq, 4);
	assert_req(h, 3, 2, 1);
	assert_int_equal(sl__mold_tick(h->m, 1500), 0);
	assert_int_equal(h->nreq, 6);
	assert_req(h, 4, 4, 1);
	assert_req(h, 5, 6, 2);
	h_close(h);
}

static void test_mold_tick_gives_up(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000, .give_up_ns = 10000 };
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 2, 0, 0);
	feed(h, 6, 3, 0, 0);  /* gap 3..5 */
	feed(h, 11, 2, 0, 0); /* gap 9..10 */
	assert_int_equal(sl__mold_tick(h->m, 9999), 0);
	assert_int_equal(h->nlost, 0);
	assert_int_equal(sl__mold_tick(h->m, 10000), 0);
	assert_string_equal(h->log, "D1+2 L3+3 D6+3 L9+2 D11+2");
	assert_int_equal(h->lost[0].now, 10000);
	st = stats(h);
	assert_int_equal(st.gaps_detected, 2);
	assert_int_equal(st.gaps_lost, 2);
	assert_int_equal(st.gaps_filled, 0);
	assert_int_equal(st.lost_messages, 5);
	assert_int_equal(st.messages_delivered, 7);
	assert_int_equal(st.next_seq, 13);
	/* Retransmissions arriving after the give-up are duplicates. */
	feed(h, 3, 3, 10001, 0);
	assert_int_equal(stats(h).duplicates, 3);
	assert_int_equal(sl__mold_tick(h->m, 100000), 0);
	assert_int_equal(h->nlost, 2);
	h_close(h);
}

static void test_mold_tick_give_up_waits_for_progress(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000, .give_up_ns = 10000 };
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 5, 1, 0, 0);	/* gap 2..4 */
	feed(h, 3, 1, 6000, 0); /* progress on it at 6000 */
	assert_int_equal(sl__mold_tick(h->m, 15999), 0);
	assert_int_equal(h->nlost, 0);
	assert_int_equal(sl__mold_tick(h->m, 16000), 0);
	/* Two holes of one gap: each reported, the held message between them delivered. */
	assert_string_equal(h->log, "D1+1 L2+1 D3+1 L4+1 D5+1");
	st = stats(h);
	assert_int_equal(st.gaps_lost, 1);
	assert_int_equal(st.lost_messages, 2);
	h_close(h);
}

static void test_mold_tick_give_up_then_buffered_and_tail(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000, .give_up_ns = 10000 };
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 3, 2, 0, 0);			   /* gap 2 */
	feed_ctl(h, 8, SL_MOLD_END_OF_SESSION, 0); /* gap 5..7 */
	feed(h, 6, 1, 9000, 0);			   /* progress on the second gap */
	assert_int_equal(sl__mold_tick(h->m, 10000), 0);
	assert_string_equal(h->log, "D1+1 L2+1 D3+2");
	assert_int_equal(stats(h).ended, 0);
	assert_int_equal(sl__mold_tick(h->m, 19000), 0);
	assert_string_equal(h->log, "D1+1 L2+1 D3+2 L5+1 D6+1 L7+1");
	st = stats(h);
	assert_int_equal(st.ended, 1);
	assert_int_equal(st.gaps_lost, 2);
	assert_int_equal(st.lost_messages, 3);
	assert_int_equal(st.next_seq, 8);
	h_close(h);
}

static void test_mold_tick_give_up_never(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000, .give_up_ns = UINT64_MAX };
	struct harness *h = h_open(&cfg);

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 3, 1, 0, 0);
	assert_int_equal(sl__mold_tick(h->m, UINT64_MAX - 1), 0);
	assert_int_equal(h->nlost, 0);
	assert_int_equal(h->nreq, 2); /* resends go on */
	feed(h, 2, 1, UINT64_MAX - 1, 0);
	assert_string_equal(h->log, "D1+1 D2+2");
	h_close(h);
}

static void test_mold_tick_lost_error_retried(void **state)
{
	struct sl_mold_config cfg = { .rerequest_timeout_ns = 1000, .give_up_ns = 10000 };
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 4, 1, 0, 0);
	h->fail_lost = 1;
	assert_int_equal(sl__mold_tick(h->m, 10000), -EIO);
	st = stats(h);
	assert_int_equal(st.gaps_lost, 0);
	assert_int_equal(st.lost_messages, 0);
	assert_int_equal(st.next_seq, 2);
	assert_int_equal(sl__mold_tick(h->m, 10001), 0);
	assert_string_equal(h->log, "D1+1 L2+2 D4+1");
	st = stats(h);
	assert_int_equal(st.gaps_lost, 1);
	assert_int_equal(st.lost_messages, 2);
	h_close(h);
}

static void test_mold_tick_no_request_callback(void **state)
{
	struct sl_mold_config cfg = { .give_up_ns = 10 };
	struct sl_mold_ops ops = { noop_deliver, NULL, NULL, NULL };
	struct sl_mold_stats st;
	struct sl_mold *m;
	uint8_t buf[1500];
	size_t len;

	(void)state;
	assert_int_equal(sl__mold_new(&cfg, &ops, &m), 0);
	len = mkpkt(buf, SESSION, 5, 1);
	assert_int_equal(sl__mold_rx(m, buf, len, 0), 0);
	assert_int_equal(sl__mold_tick(m, 10), 0);
	sl__mold_get_stats(m, &st);
	assert_int_equal(st.rerequests_sent, 0);
	assert_int_equal(st.gaps_lost, 1); /* counted even with no lost() to tell */
	assert_int_equal(st.lost_messages, 4);
	assert_int_equal(st.messages_delivered, 1);
	sl__mold_free(m);
}

/* ---- Tracker: reorder pool ------------------------------------------------------------------ */

static void test_mold_rx_reorder_overflow_recovers(void **state)
{
	struct sl_mold_config cfg = { .reorder_packets = 2 };
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 3, 1, 0, 0); /* held; gap 2 */
	feed(h, 4, 1, 0, 0); /* held */
	feed(h, 5, 1, 0, 0); /* no room: dropped, itself a gap */
	feed(h, 6, 1, 0, 0); /* dropped: the same gap grows */
	st = stats(h);
	assert_int_equal(st.packets_reordered, 2);
	assert_int_equal(st.reorder_overflow, 2);
	assert_int_equal(st.gaps_detected, 2);
	assert_int_equal(st.gap_messages, 3);
	assert_int_equal(st.highest_seen, 7);
	assert_int_equal(h->nreq, 3);
	assert_req(h, 0, 2, 1);
	assert_req(h, 1, 5, 1);
	assert_req(h, 2, 6, 1);
	feed(h, 2, 1, 0, 0);
	assert_string_equal(h->log, "D1+1 D2+3");
	feed(h, 5, 2, 0, 0); /* the rewinder's answer */
	assert_string_equal(h->log, "D1+1 D2+3 D5+2");
	st = stats(h);
	assert_int_equal(st.gaps_filled, 2);
	assert_int_equal(st.next_seq, 7);
	assert_int_equal(st.messages_delivered, 6);
	h_close(h);
}

static void test_mold_rx_reorder_overflow_by_bytes(void **state)
{
	struct sl_mold_config cfg = { .reorder_packets = 1 }; /* 1500 arena bytes */
	struct harness *h = h_open(&cfg);
	uint8_t buf[5000];
	size_t len;

	(void)state;
	h->len = 1990;
	len = mkpkt_len(buf, sizeof(buf), SESSION, 2, 1, 1990);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	assert_int_equal(stats(h).reorder_overflow, 1);
	assert_int_equal(stats(h).packets_reordered, 0);
	assert_int_equal(h->nreq, 1);
	assert_req(h, 0, 1, 2);
	len = mkpkt_len(buf, sizeof(buf), SESSION, 1, 2, 1990);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0); /* in order: no holding needed */
	assert_string_equal(h->log, "D1+2");
	h_close(h);
}

static void test_mold_rx_reorder_compacts_arena(void **state)
{
	/* 4 slots, 6000 arena bytes, packets of 1400 + 24 bytes. */
	struct sl_mold_config cfg = { .reorder_packets = 4 };
	struct harness *h = h_open(&cfg);
	uint8_t buf[1500];
	uint64_t seq;
	size_t len;

	(void)state;
	h->len = 1400;
	for (seq = 3; seq <= 9; seq += 2) { /* hold 3, 5, 7, 9: 5696 bytes of 6000 */
		len = mkpkt_len(buf, sizeof(buf), SESSION, seq, 1, 1400);
		assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	}
	for (seq = 1; seq <= 2; seq++) { /* delivers 1, 2, 3: frees the lowest payload */
		len = mkpkt_len(buf, sizeof(buf), SESSION, seq, 1, 1400);
		assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	}
	/* 11 does not fit at the top; compaction makes room. */
	len = mkpkt_len(buf, sizeof(buf), SESSION, 11, 1, 1400);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	assert_int_equal(stats(h).reorder_overflow, 0);
	assert_int_equal(stats(h).packets_reordered, 5);
	for (seq = 4; seq <= 10; seq += 2) {
		len = mkpkt_len(buf, sizeof(buf), SESSION, seq, 1, 1400);
		assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	}
	/* deliver() checked every byte of the moved payloads. */
	assert_string_equal(h->log, "D1+1 D2+2 D4+2 D6+2 D8+2 D10+2");
	assert_int_equal(stats(h).next_seq, 12);
	h_close(h);
}

static void test_mold_rx_held_duplicates(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 10, 3, 0, 0); /* held 10..12 */
	feed(h, 10, 3, 0, 0); /* the same: duplicate */
	feed(h, 11, 1, 0, 0); /* inside it: duplicate */
	feed(h, 10, 5, 0, 0); /* same start, reaches further: replaces it */
	feed(h, 13, 4, 0, 0); /* overlaps the end: held as well */
	st = stats(h);
	assert_int_equal(st.duplicates, 3 + 1 + 3);
	assert_int_equal(st.packets_reordered, 3);
	feed(h, 2, 8, 0, 0);
	assert_string_equal(h->log, "D1+1 D2+15");
	st = stats(h);
	assert_int_equal(st.duplicates, 3 + 1 + 3 + 2);
	assert_int_equal(st.messages_delivered, 16);
	assert_int_equal(st.next_seq, 17);
	assert_int_equal(st.gaps_filled, 1);
	h_close(h);
}

/* ---- Tracker: sessions, bad packets, errors ------------------------------------------------- */

static void test_mold_rx_other_session_ignored(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;
	uint8_t buf[1500];
	size_t len;

	(void)state;
	feed(h, 1, 2, 0, 0); /* learns SESSION */
	len = mkpkt(buf, OTHER, 3, 2);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	len = mkpkt(buf, OTHER, 9, 2); /* would be a gap in our session */
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	sl__mold_packet_control(buf, OTHER, 50, SL_MOLD_END_OF_SESSION);
	assert_int_equal(sl__mold_rx(h->m, buf, SL_MOLD_HDR_LEN, 0), 0);
	st = stats(h);
	assert_int_equal(st.packets_other_session, 3);
	assert_int_equal(st.packets, 4);
	assert_int_equal(st.messages_delivered, 2);
	assert_int_equal(st.gaps_detected, 0);
	assert_int_equal(st.end_of_session, 0);
	assert_int_equal(st.highest_seen, 3);
	assert_string_equal(st.session, SESSION);
	assert_int_equal(h->nreq, 0);
	feed(h, 3, 2, 0, 0);
	assert_string_equal(h->log, "D1+2 D3+2");
	h_close(h);
}

static void test_mold_rx_configured_session(void **state)
{
	struct sl_mold_config cfg = { .session = "ABC" }; /* NUL padded: means "ABC       " */
	struct harness *h = h_open(&cfg);
	struct sl_mold_stats st;
	uint8_t buf[1500];
	size_t len;

	(void)state;
	assert_string_equal(stats(h).session, "ABC       ");
	len = mkpkt(buf, SESSION, 1, 2); /* the first packet does not choose the session */
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	len = mkpkt(buf, "ABC       ", 1, 2);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	st = stats(h);
	assert_int_equal(st.packets_other_session, 1);
	assert_int_equal(st.messages_delivered, 2);
	h_close(h);
}

static void test_mold_rx_bad_packet_counted(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;
	uint8_t buf[1500];
	size_t len;

	(void)state;
	len = mkpkt(buf, OTHER, 1, 3);
	assert_int_equal(sl__mold_rx(h->m, buf, len - 1, 0), 0); /* truncated */
	assert_int_equal(sl__mold_rx(h->m, buf, len + 1, 0), 0); /* trailing byte */
	assert_int_equal(sl__mold_rx(h->m, buf, 5, 0), 0);
	assert_int_equal(sl__mold_rx(h->m, NULL, 0, 0), 0);
	st = stats(h);
	assert_int_equal(st.packets, 4);
	assert_int_equal(st.packets_bad, 4);
	assert_string_equal(st.session, ""); /* a bad packet teaches nothing */
	feed(h, 1, 3, 0, 0);
	st = stats(h);
	assert_string_equal(st.session, SESSION);
	assert_int_equal(st.messages_delivered, 3);
	assert_int_equal(st.packets_bad, 4);
	h_close(h);
}

static void test_mold_rx_deliver_error_redelivered_once(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 5, 0, 0);
	h->fail_deliver = 1;
	feed(h, 6, 5, 0, -EIO);
	st = stats(h);
	assert_int_equal(st.next_seq, 6);
	assert_int_equal(st.messages_delivered, 5);
	assert_int_equal(st.duplicates, 0);
	feed(h, 6, 5, 0, 0); /* offered again: delivered, once */
	feed(h, 6, 5, 0, 0);
	assert_string_equal(h->log, "D1+5 D6+5");
	st = stats(h);
	assert_int_equal(st.next_seq, 11);
	assert_int_equal(st.messages_delivered, 10);
	assert_int_equal(st.duplicates, 5);
	h_close(h);
}

static void test_mold_rx_deliver_error_keeps_held(void **state)
{
	struct harness *h = h_open_default();
	struct sl_mold_stats st;

	(void)state;
	feed(h, 1, 1, 0, 0);
	feed(h, 3, 2, 0, 0); /* held */
	h->fail_deliver = 1;
	feed(h, 2, 1, 0, -EIO); /* the fill, with what is held, fails as one batch */
	st = stats(h);
	assert_int_equal(st.next_seq, 2);
	assert_int_equal(st.gaps_filled, 0);
	feed(h, 2, 1, 0, 0); /* the retransmission comes again */
	assert_string_equal(h->log, "D1+1 D2+3");
	st = stats(h);
	assert_int_equal(st.next_seq, 5);
	assert_int_equal(st.gaps_filled, 1);
	assert_int_equal(st.duplicates, 0);
	h_close(h);
}

/* Held packets of 20000 empty messages each: a run longer than one deliver() batch. */
static void test_mold_rx_batch_split(void **state)
{
	struct sl_mold_config cfg = { .reorder_packets = 64 };
	struct harness *h = h_open(&cfg);
	static uint8_t buf[SL_MOLD_MAX_PACKET];
	struct sl_mold_stats st;
	size_t len;
	int i;

	(void)state;
	h->len = 0;
	for (i = 0; i < 2; i++) {
		len = mkpkt_len(buf, sizeof(buf), SESSION, 2 + 20000 * (uint64_t)i, 20000, 0);
		assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	}
	len = mkpkt_len(buf, sizeof(buf), SESSION, 1, 1, 0);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	assert_string_equal(h->log, "D1+20001 D20002+20000");
	st = stats(h);
	assert_int_equal(st.next_seq, 40002);
	assert_int_equal(st.messages_delivered, 40001);
	h_close(h);
}

static void test_mold_tick_retries_failed_batch(void **state)
{
	struct sl_mold_config cfg = { .reorder_packets = 64 };
	struct harness *h = h_open(&cfg);
	static uint8_t buf[SL_MOLD_MAX_PACKET];
	struct sl_mold_stats st;
	size_t len;
	int i;

	(void)state;
	h->len = 0;
	for (i = 0; i < 2; i++) {
		len = mkpkt_len(buf, sizeof(buf), SESSION, 2 + 20000 * (uint64_t)i, 20000, 0);
		assert_int_equal(sl__mold_rx(h->m, buf, len, 0), 0);
	}
	/* The first of the two calls succeeds, the second fails. */
	h->fail_after = 1;
	h->fail_deliver = 1;
	len = mkpkt_len(buf, sizeof(buf), SESSION, 1, 1, 0);
	assert_int_equal(sl__mold_rx(h->m, buf, len, 0), -EIO);
	assert_string_equal(h->log, "D1+20001");
	st = stats(h);
	assert_int_equal(st.next_seq, 20002);
	assert_int_equal(st.messages_delivered, 20001);
	assert_int_equal(st.gaps_filled, 1);
	/* What is held at next_seq is delivered by the next call, a tick here. */
	assert_int_equal(sl__mold_tick(h->m, 1), 0);
	assert_string_equal(h->log, "D1+20001 D20002+20000");
	st = stats(h);
	assert_int_equal(st.next_seq, 40002);
	assert_int_equal(st.messages_delivered, 40001);
	assert_int_equal(st.duplicates, 0);
	h_close(h);
}

/* ---- The lossy channel ---------------------------------------------------------------------- */

/* splitmix64: a fixed seed makes every failure reproducible. */
static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
	return rng() % n;
}

struct flight {
	uint64_t t, serial;
	uint8_t *data;
	uint16_t len;
};

struct sim {
	/* The session: message seq at index seq - 1. */
	uint32_t nmsg;
	uint8_t *bytes;
	uint32_t *off;
	uint16_t *len;
	struct {
		uint64_t first;
		uint16_t count;
	} * pkts;
	size_t npkts;
	/* The channel: a min-heap of packets in flight by arrival time. */
	struct flight *heap;
	size_t hn, hcap;
	uint64_t serial, now, rewinder_busy;
	unsigned drop_pct, dup_pct;
	uint64_t jitter_ns, pace_ns; /* reordering window; sender's packet spacing */
	/* The receiver. */
	struct sl_mold *m;
	uint64_t expect, fed_msgs, fed_pkts, fed_hb, fed_eos, requests, requests_dropped;
	uint64_t lost_calls;
};

static int flight_before(const struct flight *a, const struct flight *b)
{
	return a->t < b->t || (a->t == b->t && a->serial < b->serial);
}

static void heap_push(struct sim *s, uint64_t t, const uint8_t *data, size_t len)
{
	size_t i = s->hn++;

	if (s->hn > s->hcap) {
		s->hcap = s->hcap ? 2 * s->hcap : 1024;
		s->heap = realloc(s->heap, s->hcap * sizeof(s->heap[0]));
		assert_non_null(s->heap);
	}
	s->heap[i].t = t;
	s->heap[i].serial = s->serial++;
	s->heap[i].len = (uint16_t)len;
	s->heap[i].data = malloc(len);
	assert_non_null(s->heap[i].data);
	memcpy(s->heap[i].data, data, len);
	while (i && flight_before(&s->heap[i], &s->heap[(i - 1) / 2])) {
		struct flight f = s->heap[i];

		s->heap[i] = s->heap[(i - 1) / 2];
		s->heap[(i - 1) / 2] = f;
		i = (i - 1) / 2;
	}
}

static struct flight heap_pop(struct sim *s)
{
	struct flight top = s->heap[0];
	size_t i = 0;

	s->heap[0] = s->heap[--s->hn];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		struct flight f;

		if (l < s->hn && flight_before(&s->heap[l], &s->heap[min]))
			min = l;
		if (r < s->hn && flight_before(&s->heap[r], &s->heap[min]))
			min = r;
		if (min == i)
			break;
		f = s->heap[i];
		s->heap[i] = s->heap[min];
		s->heap[min] = f;
		i = min;
	}
	return top;
}

/* Through the channel: dropped, delayed (reordered within the jitter), maybe duplicated. */
static void channel_send(struct sim *s, const uint8_t *data, size_t len, uint64_t delay)
{
	if (rng_below(100) < s->drop_pct)
		return;
	heap_push(s, s->now + delay + rng_below(s->jitter_ns), data, len);
	if (rng_below(100) < s->dup_pct)
		heap_push(s, s->now + delay + rng_below(s->jitter_ns), data, len);
}

static size_t sim_build(const struct sim *s, uint8_t *buf, uint64_t first, uint16_t count)
{
	size_t len = SL_MOLD_HDR_LEN;
	uint16_t i;

	sl__mold_packet_init(buf, SESSION, first);
	for (i = 0; i < count; i++) {
		uint64_t k = first - 1 + i;

		assert_int_equal(
			sl__mold_packet_add(buf, 1500, &len, s->bytes + s->off[k], s->len[k]), 0);
	}
	return len;
}

static int sim_deliver(void *arg, const struct sl_mold_msg *msgs, size_t n)
{
	struct sim *s = arg;
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t k = msgs[i].seq - 1;

		assert_int_equal(msgs[i].seq, s->expect);
		assert_true(k < s->nmsg);
		assert_int_equal(msgs[i].len, s->len[k]);
		assert_memory_equal(msgs[i].data, s->bytes + s->off[k], s->len[k]);
		s->expect++;
	}
	return 0;
}

/* The rewinder: answers each request that survives the channel after a delay, either with the
 * original packets that overlap the range or with the range packed afresh. */
static void sim_request(void *arg, const uint8_t *pkt, size_t len)
{
	struct sim *s = arg;
	char session[SL_MOLD_SESSION_LEN];
	uint8_t buf[1500];
	uint64_t seq, end, delay;
	uint16_t count;

	assert_int_equal(sl__mold_request_decode(pkt, len, session, &seq, &count), 0);
	assert_memory_equal(session, SESSION, SL_MOLD_SESSION_LEN);
	assert_true(seq >= 1 && count >= 1 && seq + count <= (uint64_t)s->nmsg + 1);
	s->requests++;
	if (rng_below(100) < s->drop_pct) {
		s->requests_dropped++;
		return;
	}
	end = seq + count;
	/* One rewinder answers requests in order: 0.5 to 2.5 ms after a request arrives, and not
	 * before it finished sending the answer to the previous one. */
	delay = 500000 + rng_below(2000000);
	if (s->now + delay < s->rewinder_busy)
		delay = s->rewinder_busy - s->now;
	if (rng_below(2)) {
		size_t a = 0, b = s->npkts;

		while (a < b) { /* the last original packet starting at or before seq */
			size_t mid = a + (b - a) / 2;

			if (s->pkts[mid].first <= seq)
				a = mid + 1;
			else
				b = mid;
		}
		for (a = a - 1; a < s->npkts && s->pkts[a].first < end; a++) {
			channel_send(s, buf, sim_build(s, buf, s->pkts[a].first, s->pkts[a].count),
				     delay);
			delay += s->pace_ns;
		}
		s->rewinder_busy = s->now + delay;
	} else {
		while (seq < end) {
			uint64_t n = 1 + rng_below(30);
			size_t plen = SL_MOLD_HDR_LEN, k;

			if (n > end - seq)
				n = end - seq;
			for (k = 0; k < n; k++)
				plen += 2u + s->len[seq - 1 + k];
			if (plen > 1400)
				n = 1;
			channel_send(s, buf, sim_build(s, buf, seq, (uint16_t)n), delay);
			delay += s->pace_ns;
			seq += n;
		}
		s->rewinder_busy = s->now + delay;
	}
}

static int sim_lost(void *arg, uint64_t first, uint64_t count, uint64_t now)
{
	struct sim *s = arg;

	(void)first;
	(void)count;
	(void)now;
	s->lost_calls++;
	return 0;
}

static void sim_rx(struct sim *s, const uint8_t *data, size_t len)
{
	struct sl_mold_hdr h;

	assert_int_equal(sl__mold_parse(data, len, &h), 0);
	if (h.count == SL_MOLD_HEARTBEAT)
		s->fed_hb++;
	else if (h.count == SL_MOLD_END_OF_SESSION)
		s->fed_eos++;
	else
		s->fed_msgs += h.count;
	s->fed_pkts++;
	assert_int_equal(sl__mold_rx(s->m, data, len, s->now), 0);
}

/* A session of nmsg random messages in packets of random counts, sent one every pace_ns
 * through a channel that drops 2%, duplicates 2% and delays each packet by 50 us plus a random
 * jitter up to jitter_ns (so packets up to jitter_ns / pace_ns apart swap places). The rewinder
 * answers after 0.5 to 2.5 ms, at the same pace, through the same channel. A heartbeat every
 * 10 ms (end of session once everything was sent), a tick every ms. */
static void run_lossy(uint64_t seed, uint32_t nmsg, uint32_t reorder_packets, uint64_t pace_ns,
		      uint64_t jitter_ns)
{
	struct sl_mold_config cfg = { .reorder_packets = reorder_packets };
	struct sl_mold_ops ops = { sim_deliver, sim_request, sim_lost, NULL };
	struct sim s = { 0 };
	struct sl_mold_stats st;
	uint64_t k, total = 0, seq = 1, next_send = 0, next_tick = MS, next_hb = 10 * MS;
	uint8_t buf[1500];
	size_t sent = 0;

	rng_state = seed;
	s.nmsg = nmsg;
	s.drop_pct = 2;
	s.dup_pct = 2;
	s.jitter_ns = jitter_ns;
	s.pace_ns = pace_ns;
	s.expect = 1;
	s.off = malloc(nmsg * sizeof(s.off[0]));
	s.len = malloc(nmsg * sizeof(s.len[0]));
	for (k = 0; k < nmsg; k++) {
		s.off[k] = (uint32_t)total;
		s.len[k] = (uint16_t)rng_below(60); /* empty messages included */
		total += s.len[k];
	}
	s.bytes = malloc(total + 1);
	for (k = 0; k < total; k++)
		s.bytes[k] = (uint8_t)rng();
	s.pkts = malloc(nmsg * sizeof(s.pkts[0]));
	while (seq <= nmsg) {
		uint64_t want = 1 + rng_below(40), n = 0;
		size_t plen = SL_MOLD_HDR_LEN;

		while (n < want && seq + n <= nmsg && plen + 2 + s.len[seq - 1 + n] <= 1400)
			plen += 2u + s.len[seq - 1 + n++];
		s.pkts[s.npkts].first = seq;
		s.pkts[s.npkts++].count = (uint16_t)n;
		seq += n;
	}
	ops.arg = &s;
	assert_int_equal(sl__mold_new(&cfg, &ops, &s.m), 0);

	for (;;) {
		uint64_t t = next_tick < next_hb ? next_tick : next_hb;

		if (sent < s.npkts && next_send < t)
			t = next_send;
		if (s.hn && s.heap[0].t < t)
			t = s.heap[0].t;
		s.now = t;
		if (s.hn && s.heap[0].t == t) {
			struct flight f = heap_pop(&s);

			sim_rx(&s, f.data, f.len);
			free(f.data);
		} else if (sent < s.npkts && next_send == t) {
			channel_send(&s, buf,
				     sim_build(&s, buf, s.pkts[sent].first, s.pkts[sent].count),
				     50000);
			sent++;
			next_send += pace_ns;
		} else if (t == next_hb) {
			uint64_t hseq = sent < s.npkts ? s.pkts[sent].first : (uint64_t)nmsg + 1;

			sl__mold_packet_control(buf, SESSION, hseq,
						sent < s.npkts ? SL_MOLD_HEARTBEAT
							       : SL_MOLD_END_OF_SESSION);
			channel_send(&s, buf, SL_MOLD_HDR_LEN, 50000);
			next_hb += 10 * MS;
		} else {
			assert_int_equal(sl__mold_tick(s.m, t), 0);
			next_tick += MS;
			sl__mold_get_stats(s.m, &st);
			if (st.ended && !s.hn)
				break;
		}
		assert_true(s.now < 60000 * MS); /* a stuck gap shows as a timeout here */
	}

	sl__mold_get_stats(s.m, &st);
	assert_int_equal(s.expect, (uint64_t)nmsg + 1);
	assert_int_equal(st.messages_delivered, nmsg);
	assert_int_equal(st.next_seq, (uint64_t)nmsg + 1);
	assert_int_equal(st.highest_seen, (uint64_t)nmsg + 1);
	assert_int_equal(st.ended, 1);
	assert_int_equal(s.lost_calls, 0);
	assert_int_equal(st.gaps_lost, 0);
	assert_int_equal(st.lost_messages, 0);
	assert_true(st.gaps_detected > 0);
	assert_int_equal(st.gaps_filled, st.gaps_detected);
	assert_true(st.gap_messages >= st.gaps_detected);
	assert_true(st.duplicates > 0);
	assert_true(st.packets_reordered > 0);
	assert_int_equal(st.rerequests_sent, s.requests);
	assert_int_equal(st.packets, s.fed_pkts);
	assert_int_equal(st.heartbeats, s.fed_hb);
	assert_int_equal(st.end_of_session, s.fed_eos);
	assert_int_equal(st.packets_bad, 0);
	assert_int_equal(st.packets_other_session, 0);
	/* Every message received was delivered once or counted as a duplicate, unless its packet
	 * found the reorder pool full. */
	if (st.reorder_overflow == 0)
		assert_int_equal(s.fed_msgs, st.messages_delivered + st.duplicates);
	else
		assert_true(s.fed_msgs > st.messages_delivered + st.duplicates);
	if (getenv("SL_TEST_VERBOSE"))
		printf("seed %llu: packets %llu delivered %llu dups %llu gaps %llu (%llu msgs) "
		       "requests %llu reordered %llu overflow %llu sim %.3f s\n",
		       (unsigned long long)seed, (unsigned long long)st.packets,
		       (unsigned long long)st.messages_delivered, (unsigned long long)st.duplicates,
		       (unsigned long long)st.gaps_detected, (unsigned long long)st.gap_messages,
		       (unsigned long long)st.rerequests_sent,
		       (unsigned long long)st.packets_reordered,
		       (unsigned long long)st.reorder_overflow, (double)s.now / 1e9);

	while (s.hn) {
		struct flight f = heap_pop(&s);

		free(f.data);
	}
	free(s.heap);
	sl__mold_free(s.m);
	free(s.pkts);
	free(s.bytes);
	free(s.len);
	free(s.off);
}

static void test_mold_rx_lossy_feed_seed_1(void **state)
{
	(void)state;
	run_lossy(1, 200000, 16384, 10000, 200000);
}

static void test_mold_rx_lossy_feed_seed_2(void **state)
{
	(void)state;
	run_lossy(2, 200000, 16384, 10000, 200000);
}

static void test_mold_rx_lossy_feed_seed_3(void **state)
{
	(void)state;
	run_lossy(0xC0FFEE, 200000, 16384, 10000, 200000);
}

static void test_mold_rx_lossy_feed_small_pool(void **state)
{
	(void)state;
	run_lossy(4, 50000, 16, 10000, 20000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mold_parse_good),
		cmocka_unit_test(test_mold_parse_wire_layout),
		cmocka_unit_test(test_mold_parse_control),
		cmocka_unit_test(test_mold_parse_control_with_payload),
		cmocka_unit_test(test_mold_parse_truncated_every_byte),
		cmocka_unit_test(test_mold_parse_length_past_end),
		cmocka_unit_test(test_mold_parse_trailing_bytes),
		cmocka_unit_test(test_mold_parse_size_limit),
		cmocka_unit_test(test_mold_parse_sequence_overflow),
		cmocka_unit_test(test_mold_parse_zero_length_messages),
		cmocka_unit_test(test_mold_packet_add_round_trip),
		cmocka_unit_test(test_mold_packet_add_enospc),
		cmocka_unit_test(test_mold_packet_control_layout),
		cmocka_unit_test(test_mold_request_encode_round_trip),
		cmocka_unit_test(test_mold_request_decode_bad_length),
		cmocka_unit_test(test_mold_new_bad_config),
		cmocka_unit_test(test_mold_new_defaults),
		cmocka_unit_test(test_mold_rx_in_order),
		cmocka_unit_test(test_mold_rx_receive_time_per_message),
		cmocka_unit_test(test_mold_rx_duplicate_packet),
		cmocka_unit_test(test_mold_rx_partial_overlap),
		cmocka_unit_test(test_mold_rx_start_sequence),
		cmocka_unit_test(test_mold_rx_gap_filled_by_retransmission),
		cmocka_unit_test(test_mold_rx_gap_filled_in_pieces),
		cmocka_unit_test(test_mold_rx_heartbeat_detects_tail_gap),
		cmocka_unit_test(test_mold_rx_end_of_session_detects_tail_gap),
		cmocka_unit_test(test_mold_rx_end_of_session_complete),
		cmocka_unit_test(test_mold_rx_request_chunks),
		cmocka_unit_test(test_mold_rx_request_window),
		cmocka_unit_test(test_mold_tick_resends_after_timeout),
		cmocka_unit_test(test_mold_tick_resends_every_gap),
		cmocka_unit_test(test_mold_tick_gives_up),
		cmocka_unit_test(test_mold_tick_give_up_waits_for_progress),
		cmocka_unit_test(test_mold_tick_give_up_then_buffered_and_tail),
		cmocka_unit_test(test_mold_tick_give_up_never),
		cmocka_unit_test(test_mold_tick_lost_error_retried),
		cmocka_unit_test(test_mold_tick_no_request_callback),
		cmocka_unit_test(test_mold_rx_reorder_overflow_recovers),
		cmocka_unit_test(test_mold_rx_reorder_overflow_by_bytes),
		cmocka_unit_test(test_mold_rx_reorder_compacts_arena),
		cmocka_unit_test(test_mold_rx_held_duplicates),
		cmocka_unit_test(test_mold_rx_other_session_ignored),
		cmocka_unit_test(test_mold_rx_configured_session),
		cmocka_unit_test(test_mold_rx_bad_packet_counted),
		cmocka_unit_test(test_mold_rx_deliver_error_redelivered_once),
		cmocka_unit_test(test_mold_rx_deliver_error_keeps_held),
		cmocka_unit_test(test_mold_rx_batch_split),
		cmocka_unit_test(test_mold_tick_retries_failed_batch),
		cmocka_unit_test(test_mold_rx_lossy_feed_seed_1),
		cmocka_unit_test(test_mold_rx_lossy_feed_seed_2),
		cmocka_unit_test(test_mold_rx_lossy_feed_seed_3),
		cmocka_unit_test(test_mold_rx_lossy_feed_small_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
