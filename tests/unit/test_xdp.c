/* test_xdp.c - the XDP program (xdp/sluice.bpf.c) alone, through bpf_prog_test_run_opts with
 * hand-built frames: every verdict (steer, pass, malformed, duplicate), VLAN tags, IPv6, IPv4
 * options and fragments, truncation at every byte, wrong UDP lengths, MoldUDP64 heartbeat and
 * end of session, and A/B arbitration. Loading it proves it passes this kernel's verifier.
 * Needs root (BPF); without it the program says so in one line and runs nothing else. The test
 * works in a network namespace of its own, with one AF_XDP socket bound to its loopback so that
 * the program's XSKMAP has a socket to steer to (test runs do not deliver to it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include "sluice.skel.h"
#include "sluice_xdp.h"

#define FEED_PORT 26477
#define FEED_PORT_B 26478

static struct sluice_xdp *skel;
static int prog_fd;
static struct xsk_socket *xsk;
static struct xsk_umem *umem;
static void *umem_area;
static struct xsk_ring_cons rx_ring, comp_ring;
static struct xsk_ring_prod fill_ring;
static char why_not[256];

/* ---- Frame builder --------------------------------------------------------------------------- */

struct frame_spec {
	int vlans;            /* 0, 1 or 2 tags (the outer one 802.1ad when 2), or 3 */
	int ipv6;
	int ip_opt_words;     /* IPv4 options, in 4-byte words */
	uint16_t frag;        /* IPv4 frag_off field (host order) */
	uint8_t proto;        /* IPPROTO_UDP unless set */
	uint16_t dport;       /* FEED_PORT unless set */
	uint32_t daddr;       /* 10.0.0.2 unless set (host order) */
	const char *session;  /* "SESSION001" unless set */
	uint64_t seq;
	uint16_t count;       /* messages; 0 heartbeat, 0xFFFF end of session */
	int udp_len_delta;    /* added to the UDP length field */
	int trailer;          /* padding bytes after the IP packet */
	int short_payload;    /* bytes cut from the MoldUDP64 payload (and the lengths) */
};

struct frame {
	uint8_t b[2048];
	size_t len;
	size_t payload_off, payload_len; /* the MoldUDP64 packet inside */
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void build(const struct frame_spec *s, struct frame *f)
{
	uint8_t *p = f->b;
	memset(f, 0, sizeof(*f));
	memcpy(p, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
	p += 12;
	for (int i = 0; i < s->vlans; i++) {
		put16(p, (s->vlans >= 2 && i == 0) ? 0x88A8 : 0x8100);
		put16(p + 2, (uint16_t)(100 + i));
		p += 4;
	}
	put16(p, s->ipv6 ? 0x86DD : 0x0800);
	p += 2;
	/* MoldUDP64 payload first, so the lengths are known. */
	uint8_t pay[1400];
	size_t plen = 20;
	memcpy(pay, s->session ? s->session : "SESSION001", 10);
	for (int i = 0; i < 8; i++)
		pay[10 + i] = (uint8_t)(s->seq >> (56 - 8 * i));
	put16(pay + 18, s->count);
	if (s->count != 0 && s->count != 0xFFFF) {
		for (uint16_t m = 0; m < s->count; m++) {
			uint16_t ml = (uint16_t)(12 + m % 5); /* any bytes will do */
			put16(pay + plen, ml);
			memset(pay + plen + 2, 'A' + m % 26, ml);
			plen += 2u + ml;
		}
	}
	plen -= (size_t)s->short_payload;
	uint16_t ulen = (uint16_t)(8 + plen);
	uint8_t proto = s->proto ? s->proto : 17;
	uint8_t *l4;
	if (s->ipv6) {
		memset(p, 0, 40);
		p[0] = 0x60;
		put16(p + 4, ulen);
		p[6] = proto;
		p[7] = 64;
		/* fd00::1 -> fd00::2 */
		p[8] = 0xfd;
		p[23] = 1;
		p[24] = 0xfd;
		p[39] = 2;
		l4 = p + 40;
	} else {
		int hl = 20 + 4 * s->ip_opt_words;
		memset(p, 0, (size_t)hl);
		p[0] = (uint8_t)(0x40 | (hl / 4));
		put16(p + 2, (uint16_t)(hl + ulen));
		put16(p + 6, s->frag);
		p[8] = 64;
		p[9] = proto;
		uint32_t d = s->daddr ? s->daddr : 0x0a000002;
		p[12] = 10;
		p[15] = 1;
		p[16] = (uint8_t)(d >> 24);
		p[17] = (uint8_t)(d >> 16);
		p[18] = (uint8_t)(d >> 8);
		p[19] = (uint8_t)d;
		for (int i = 20; i < hl; i++)
			p[i] = 1; /* NOP options */
		l4 = p + hl;
	}
	put16(l4, 40000);
	put16(l4 + 2, s->dport ? s->dport : FEED_PORT);
	put16(l4 + 4, (uint16_t)(ulen + s->udp_len_delta));
	memcpy(l4 + 8, pay, plen);
	f->payload_off = (size_t)(l4 + 8 - f->b);
	f->payload_len = plen;
	f->len = f->payload_off + plen;
	memset(f->b + f->len, 0xEE, (size_t)s->trailer);
	f->len += (size_t)s->trailer;
}

/* ---- Running the program --------------------------------------------------------------------- */

static uint64_t counters_now[SL_XDP_COUNTERS];

static void read_counters(uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v = calloc((size_t)ncpu, sizeof(*v));
	assert_non_null(v);
	for (uint32_t k = 0; k < SL_XDP_COUNTERS; k++) {
		assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(skel->maps.counters), &k, v), 0);
		out[k] = 0;
		for (int c = 0; c < ncpu; c++)
			out[k] += v[c];
	}
	free(v);
}

/* Run the program once; returns its verdict, the frame it left in out/outlen. The counters'
 * changes are in delta[]. */
static uint64_t delta[SL_XDP_COUNTERS];

static int run(const uint8_t *pkt, size_t len, uint8_t *out, uint32_t *outlen)
{
	uint8_t scratch[4096];
	uint64_t after[SL_XDP_COUNTERS];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = (uint32_t)len,
		    .data_out = out ? out : scratch, .data_size_out = sizeof(scratch),
		    .repeat = 1);
	read_counters(counters_now);
	assert_int_equal(bpf_prog_test_run_opts(prog_fd, &o), 0);
	read_counters(after);
	for (int k = 0; k < SL_XDP_COUNTERS; k++)
		delta[k] = after[k] - counters_now[k];
	if (outlen)
		*outlen = o.data_size_out;
	return (int)o.retval;
}

static int run_spec(const struct frame_spec *s)
{
	struct frame f;
	build(s, &f);
	return run(f.b, f.len, NULL, NULL);
}

static void expect_counts(uint64_t steered, uint64_t passed, uint64_t malformed, uint64_t dups)
{
	assert_int_equal(delta[SL_XDP_SEEN], 1);
	assert_int_equal(delta[SL_XDP_STEERED], steered);
	assert_int_equal(delta[SL_XDP_PASSED], passed);
	assert_int_equal(delta[SL_XDP_MALFORMED], malformed);
	assert_int_equal(delta[SL_XDP_DUPLICATES], dups);
}

static void expect_steer(const struct frame_spec *s)
{
	struct frame f;
	uint8_t out[4096];
	uint32_t outlen = 0;
	build(s, &f);
	assert_int_equal(run(f.b, f.len, out, &outlen), XDP_REDIRECT);
	expect_counts(1, 0, 0, 0);
	/* The socket gets the MoldUDP64 packet alone. */
	assert_int_equal(outlen, f.payload_len);
	assert_memory_equal(out, f.b + f.payload_off, f.payload_len);
}

static void expect_pass(const struct frame_spec *s, int malformed)
{
	struct frame f;
	uint8_t out[4096];
	uint32_t outlen = 0;
	build(s, &f);
	assert_int_equal(run(f.b, f.len, out, &outlen), XDP_PASS);
	expect_counts(0, 1, (uint64_t)malformed, 0);
	/* Passed frames go on untouched. */
	assert_int_equal(outlen, f.len);
	assert_memory_equal(out, f.b, f.len);
}

static void add_feed(const char *addr6, uint32_t addr4, uint16_t port)
{
	struct sl_xdp_feed_key k;
	uint32_t id = 1;
	memset(&k, 0, sizeof(k));
	if (addr6) {
		assert_int_equal(inet_pton(AF_INET6, addr6, k.addr), 1);
	} else if (addr4) {
		uint32_t be = htonl(addr4);
		k.addr[10] = k.addr[11] = 0xff;
		memcpy(&k.addr[12], &be, 4);
	}
	k.port = htons(port);
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(skel->maps.feeds), &k, &id, BPF_ANY), 0);
}

static void clear_map(struct bpf_map *m, size_t ksz)
{
	uint8_t key[64], next[64];
	int fd = bpf_map__fd(m);
	assert_true(ksz <= sizeof(key));
	while (bpf_map_get_next_key(fd, NULL, next) == 0) {
		memcpy(key, next, ksz);
		assert_int_equal(bpf_map_delete_elem(fd, key), 0);
	}
}

/* Each test starts with the feed 10.0.0.2:26477 and 10.0.0.2:26478 (lines A and B), the socket
 * in slot 0 and no arbitration state. */
static int setup(void **state)
{
	(void)state;
	clear_map(skel->maps.feeds, sizeof(struct sl_xdp_feed_key));
	clear_map(skel->maps.arb, sizeof(struct sl_xdp_arb_key));
	add_feed(NULL, 0x0a000002, FEED_PORT);
	add_feed(NULL, 0x0a000002, FEED_PORT_B);
	uint32_t q = 0;
	int fd = xsk_socket__fd(xsk);
	return bpf_map_update_elem(bpf_map__fd(skel->maps.xsks), &q, &fd, BPF_ANY);
}

/* ---- Verdicts -------------------------------------------------------------------------------- */

static void test_load_passes_verifier(void **state)
{
	(void)state;
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	memset(&info, 0, sizeof(info));
	assert_int_equal(bpf_obj_get_info_by_fd(prog_fd, &info, &len), 0);
	assert_string_equal(info.name, "sluice_xdp");
	assert_int_equal(info.type, BPF_PROG_TYPE_XDP);
	assert_true(info.xlated_prog_len > 0);
}

static void test_steer_ipv4(void **state)
{
	(void)state;
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 3 });
	expect_steer(&(struct frame_spec){ .seq = 4, .count = 1, .dport = FEED_PORT_B });
}

static void test_steer_trims_ethernet_padding(void **state)
{
	(void)state;
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 1, .trailer = 6 });
}

static void test_pass_not_a_feed(void **state)
{
	(void)state;
	/* Another port, another address, TCP, ICMP, ARP. */
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .dport = 53 }, 0);
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .daddr = 0x0a000003 }, 0);
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .proto = 6 }, 0);
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .proto = 1 }, 0);
	struct frame f;
	build(&(struct frame_spec){ .seq = 1, .count = 1 }, &f);
	put16(f.b + 12, 0x0806);
	assert_int_equal(run(f.b, f.len, NULL, NULL), XDP_PASS);
	expect_counts(0, 1, 0, 0);
}

static void test_wildcard_address(void **state)
{
	(void)state;
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .daddr = 0xe9360c6f, .dport = 9 },
		    0);
	add_feed(NULL, 0, 9);
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 1, .daddr = 0xe9360c6f, .dport = 9 });
}

static void test_vlan(void **state)
{
	(void)state;
	expect_steer(&(struct frame_spec){ .vlans = 1, .seq = 1, .count = 2 });
	expect_steer(&(struct frame_spec){ .vlans = 2, .seq = 3, .count = 2 });
	/* A third tag is beyond what the program parses: passed, not misread. */
	expect_pass(&(struct frame_spec){ .vlans = 3, .seq = 5, .count = 2 }, 0);
}

static void test_ipv6(void **state)
{
	(void)state;
	expect_pass(&(struct frame_spec){ .ipv6 = 1, .seq = 1, .count = 2 }, 0);
	add_feed("fd00::2", 0, FEED_PORT);
	expect_steer(&(struct frame_spec){ .ipv6 = 1, .seq = 1, .count = 2 });
	expect_steer(&(struct frame_spec){ .ipv6 = 1, .vlans = 2, .seq = 3, .count = 2 });
	/* An extension header (destination options, next header 60) is not followed. */
	expect_pass(&(struct frame_spec){ .ipv6 = 1, .proto = 60, .seq = 5, .count = 2 }, 0);
}

static void test_ip_options(void **state)
{
	(void)state;
	expect_steer(&(struct frame_spec){ .ip_opt_words = 1, .seq = 1, .count = 1 });
	expect_steer(&(struct frame_spec){ .ip_opt_words = 10, .seq = 2, .count = 1 });
	/* IHL below 5 */
	struct frame f;
	build(&(struct frame_spec){ .seq = 3, .count = 1 }, &f);
	f.b[14] = 0x44;
	assert_int_equal(run(f.b, f.len, NULL, NULL), XDP_PASS);
	expect_counts(0, 1, 1, 0);
	/* Not version 4 */
	build(&(struct frame_spec){ .seq = 3, .count = 1 }, &f);
	f.b[14] = 0x55;
	assert_int_equal(run(f.b, f.len, NULL, NULL), XDP_PASS);
	expect_counts(0, 1, 1, 0);
}

static void test_fragments_pass(void **state)
{
	(void)state;
	expect_pass(&(struct frame_spec){ .frag = 0x2000, .seq = 1, .count = 1 }, 0);
	assert_int_equal(delta[SL_XDP_FRAGMENTS], 1);
	expect_pass(&(struct frame_spec){ .frag = 0x00b9, .seq = 1, .count = 1 }, 0);
	assert_int_equal(delta[SL_XDP_FRAGMENTS], 1);
	/* Don't-fragment is no fragment. */
	expect_steer(&(struct frame_spec){ .frag = 0x4000, .seq = 1, .count = 1 });
}

/* Every prefix of a steerable frame, from the 14 bytes a test run needs up to one byte short,
 * is passed and counted malformed: some length field always promises more than is there. */
static void truncate_all(const struct frame_spec *s)
{
	struct frame f;
	build(s, &f);
	for (size_t k = 14; k < f.len; k++) {
		uint8_t out[4096];
		uint32_t outlen = 0;
		assert_int_equal(run(f.b, k, out, &outlen), XDP_PASS);
		expect_counts(0, 1, 1, 0);
		assert_int_equal(outlen, k);
	}
	expect_steer(s);
}

static void test_truncated_at_every_byte(void **state)
{
	(void)state;
	add_feed("fd00::2", 0, FEED_PORT);
	truncate_all(&(struct frame_spec){ .seq = 1, .count = 2 });
	truncate_all(&(struct frame_spec){ .vlans = 2, .ip_opt_words = 2, .seq = 3, .count = 2 });
	truncate_all(&(struct frame_spec){ .ipv6 = 1, .vlans = 1, .seq = 5, .count = 2 });
	truncate_all(&(struct frame_spec){ .seq = 7, .count = 0 });
}

static void test_wrong_udp_length(void **state)
{
	(void)state;
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .udp_len_delta = 1 }, 1);
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .udp_len_delta = -1 }, 1);
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .udp_len_delta = -100 }, 1);
	add_feed("fd00::2", 0, FEED_PORT);
	expect_pass(&(struct frame_spec){ .ipv6 = 1, .seq = 1, .count = 1, .udp_len_delta = 2 },
		    1);
	/* On a port that is no feed's, a bad UDP length is still malformed. */
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1, .dport = 53, .udp_len_delta = 3 },
		    1);
}

static void test_mold_header_sanity(void **state)
{
	(void)state;
	/* Payload shorter than the 20-byte header. */
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 0, .short_payload = 1 }, 1);
	/* Fewer bytes than count length prefixes. */
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 3, .short_payload = 40 }, 1);
	/* Sequence 0, and a sequence range that wraps. */
	expect_pass(&(struct frame_spec){ .seq = 0, .count = 1 }, 1);
	expect_pass(&(struct frame_spec){ .seq = UINT64_MAX, .count = 2 }, 1);
	/* None of them touched arbitration: sequence 1 is still new. */
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 1 });
}

static void test_heartbeat_and_end_of_session(void **state)
{
	(void)state;
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 0 });
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 0, .dport = FEED_PORT_B });
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 3 });
	/* After sequences 1..3 are in, both lines' heartbeats and ends still reach the host. */
	expect_steer(&(struct frame_spec){ .seq = 4, .count = 0 });
	expect_steer(&(struct frame_spec){ .seq = 4, .count = 0xFFFF });
	expect_steer(&(struct frame_spec){ .seq = 4, .count = 0xFFFF, .dport = FEED_PORT_B });
}

/* ---- A/B arbitration ------------------------------------------------------------------------- */

static int run_ab(uint16_t port, uint64_t seq, uint16_t count)
{
	return run_spec(&(struct frame_spec){ .seq = seq, .count = count, .dport = port });
}

static void test_duplicate_dropped(void **state)
{
	(void)state;
	assert_int_equal(run_ab(FEED_PORT, 1, 3), XDP_REDIRECT);
	expect_counts(1, 0, 0, 0);
	/* B's copy: every message already delivered. */
	assert_int_equal(run_ab(FEED_PORT_B, 1, 3), XDP_DROP);
	expect_counts(0, 0, 0, 1);
	/* A packet inside what was delivered, and A's own copy again. */
	assert_int_equal(run_ab(FEED_PORT_B, 2, 1), XDP_DROP);
	assert_int_equal(run_ab(FEED_PORT, 1, 3), XDP_DROP);
	expect_counts(0, 0, 0, 1);
}

static void test_overlap_with_new_messages_is_steered(void **state)
{
	(void)state;
	assert_int_equal(run_ab(FEED_PORT, 1, 3), XDP_REDIRECT);  /* 1..3 */
	assert_int_equal(run_ab(FEED_PORT_B, 2, 3), XDP_REDIRECT); /* 2..4: 4 is new */
	assert_int_equal(run_ab(FEED_PORT, 4, 1), XDP_DROP);
	assert_int_equal(run_ab(FEED_PORT, 5, 2), XDP_REDIRECT);
	assert_int_equal(run_ab(FEED_PORT_B, 5, 2), XDP_DROP);
}

/* Line A loses sequences 4..5; everything after the hole is steered from both lines until the
 * hole is filled (the host sorts out those duplicates); the hole itself is never dropped. */
static void test_gap_never_dropped(void **state)
{
	(void)state;
	assert_int_equal(run_ab(FEED_PORT, 1, 3), XDP_REDIRECT);
	assert_int_equal(run_ab(FEED_PORT, 6, 2), XDP_REDIRECT);   /* 4..5 lost on A */
	assert_int_equal(run_ab(FEED_PORT_B, 1, 3), XDP_DROP);
	assert_int_equal(run_ab(FEED_PORT_B, 4, 2), XDP_REDIRECT); /* the hole, from B */
	assert_int_equal(run_ab(FEED_PORT_B, 6, 2), XDP_REDIRECT); /* after the hole: steered */
	assert_int_equal(run_ab(FEED_PORT, 8, 1), XDP_REDIRECT);
	assert_int_equal(run_ab(FEED_PORT_B, 8, 1), XDP_DROP);
	/* A packet lost on both lines stays a hole the program never steps over. */
	assert_int_equal(run_ab(FEED_PORT, 12, 1), XDP_REDIRECT);  /* 9..11 lost on both */
	assert_int_equal(run_ab(FEED_PORT_B, 12, 1), XDP_REDIRECT);
	assert_int_equal(run_ab(FEED_PORT, 9, 3), XDP_REDIRECT);   /* a late copy fills it */
	assert_int_equal(run_ab(FEED_PORT_B, 9, 3), XDP_DROP);
}

static void test_host_published_sequence(void **state)
{
	(void)state;
	/* The host delivered up to 100 (a rewinder filled what both lines lost). */
	struct sl_xdp_arb_key k = { .feed = 1 };
	struct sl_xdp_arb a = { .next = 101 };
	memcpy(k.session, "SESSION001", 10);
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(skel->maps.arb), &k, &a, BPF_ANY), 0);
	assert_int_equal(run_ab(FEED_PORT, 50, 3), XDP_DROP);
	assert_int_equal(run_ab(FEED_PORT, 99, 3), XDP_REDIRECT); /* 101 is new */
	assert_int_equal(run_ab(FEED_PORT_B, 99, 3), XDP_DROP);
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(skel->maps.arb), &k, &a), 0);
	assert_int_equal(a.next, 102);
}

static void test_sessions_apart(void **state)
{
	(void)state;
	assert_int_equal(run_ab(FEED_PORT, 1, 3), XDP_REDIRECT);
	assert_int_equal(run_spec(&(struct frame_spec){ .seq = 1, .count = 3,
							.session = "SESSION002" }),
			 XDP_REDIRECT);
	assert_int_equal(run_spec(&(struct frame_spec){ .seq = 1, .count = 3,
							.session = "SESSION002" }),
			 XDP_DROP);
}

static void test_no_socket_passes(void **state)
{
	(void)state;
	uint32_t q = 0;
	assert_int_equal(bpf_map_delete_elem(bpf_map__fd(skel->maps.xsks), &q), 0);
	expect_pass(&(struct frame_spec){ .seq = 1, .count = 1 }, 0);
	assert_int_equal(delta[SL_XDP_NO_SOCKET], 1);
	/* Nothing was recorded as delivered: with the socket back, sequence 1 is steered. */
	assert_int_equal(setup(NULL), 0);
	clear_map(skel->maps.feeds, sizeof(struct sl_xdp_feed_key));
	add_feed(NULL, 0x0a000002, FEED_PORT);
	expect_steer(&(struct frame_spec){ .seq = 1, .count = 1 });
}

/* ---- Set-up ---------------------------------------------------------------------------------- */

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* A private network namespace (nothing here touches the host's interfaces), the program, and one
 * copy-mode AF_XDP socket on its loopback. 0, or the reason in why_not. */
static int bpf_setup(void)
{
	if (geteuid() != 0) {
		snprintf(why_not, sizeof(why_not), "not root (loading BPF needs root or CAP_BPF)");
		return -1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(why_not, sizeof(why_not), "no network namespace: %s", strerror(errno));
		return -1;
	}
	libbpf_print_fn_t old = libbpf_set_print(quiet_print);
	skel = sluice_xdp__open_and_load();
	int err = skel ? 0 : -errno;
	libbpf_set_print(old);
	if (!skel) {
		snprintf(why_not, sizeof(why_not), "the XDP program does not load: %s",
			 strerror(-err));
		return -1;
	}
	prog_fd = bpf_program__fd(skel->progs.sluice_xdp);
	size_t area = 64 * 4096;
	umem_area = mmap(NULL, area, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (umem_area == MAP_FAILED ||
	    xsk_umem__create(&umem, umem_area, area, &fill_ring, &comp_ring, NULL)) {
		snprintf(why_not, sizeof(why_not), "no AF_XDP UMEM: %s", strerror(errno));
		return -1;
	}
	struct xsk_socket_config sc = { .rx_size = 64,
					.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					.bind_flags = XDP_COPY };
	err = xsk_socket__create(&xsk, "lo", 0, umem, &rx_ring, NULL, &sc);
	if (err) {
		snprintf(why_not, sizeof(why_not), "no AF_XDP socket on lo: %s", strerror(-err));
		return -1;
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_load_passes_verifier, setup),
		cmocka_unit_test_setup(test_steer_ipv4, setup),
		cmocka_unit_test_setup(test_steer_trims_ethernet_padding, setup),
		cmocka_unit_test_setup(test_pass_not_a_feed, setup),
		cmocka_unit_test_setup(test_wildcard_address, setup),
		cmocka_unit_test_setup(test_vlan, setup),
		cmocka_unit_test_setup(test_ipv6, setup),
		cmocka_unit_test_setup(test_ip_options, setup),
		cmocka_unit_test_setup(test_fragments_pass, setup),
		cmocka_unit_test_setup(test_truncated_at_every_byte, setup),
		cmocka_unit_test_setup(test_wrong_udp_length, setup),
		cmocka_unit_test_setup(test_mold_header_sanity, setup),
		cmocka_unit_test_setup(test_heartbeat_and_end_of_session, setup),
		cmocka_unit_test_setup(test_duplicate_dropped, setup),
		cmocka_unit_test_setup(test_overlap_with_new_messages_is_steered, setup),
		cmocka_unit_test_setup(test_gap_never_dropped, setup),
		cmocka_unit_test_setup(test_host_published_sequence, setup),
		cmocka_unit_test_setup(test_sessions_apart, setup),
		cmocka_unit_test_setup(test_no_socket_passes, setup),
	};
	if (bpf_setup() < 0) {
		printf("test_xdp: %zu tests not run: %s\n", sizeof(tests) / sizeof(tests[0]),
		       why_not);
		return 0;
	}
	int r = cmocka_run_group_tests_name("xdp", tests, NULL, NULL);
	xsk_socket__delete(xsk);
	xsk_umem__delete(umem);
	sluice_xdp__destroy(skel);
	return r;
}
