/* test_pcap.c - capture files: pcap and raw files written and read back exactly, checksums a
 * dissector accepts, and hand-made captures in every byte order and resolution with VLAN tags,
 * IPv4 options, fragments, other protocols, padding, snapped frames and truncated files.
 * Links pcap and err.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sluice.h"
#include "itch.h"
#include "pcap.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sl_test_pcap_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/cap", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_file(const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long sz;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	sz = ftell(f);
	rewind(f);
	p = malloc((size_t)sz + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	*n = (size_t)sz;
	return p;
}

static void fill(uint8_t *p, uint32_t n, uint32_t salt)
{
	for (uint32_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + salt);
}

/* ---- Writer round trips ----------------------------------------------------------------- */

static uint16_t csum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void test_capture_write_pcap_roundtrip(void **state)
{
	static const uint32_t lens[] = { 0, 1, 2, 20, 21, 1400, 9000, 65507, 77, 3 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	struct sl_capture_writer *w;
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	uint8_t *data = malloc(65507), *file;
	size_t size, off;

	(void)state;
	assert_non_null(data);
	assert_int_equal(sl__capture_writer_open(path, SL_CAPTURE_PCAP, &w), 0);
	for (uint32_t i = 0; i < N; i++) {
		fill(data, lens[i], i);
		assert_int_equal(sl__capture_write(w, data, lens[i],
						   1704205800000000000ull + i * 1000001ull,
						   0x0a000001u + i, (uint16_t)(26400 + i),
						   0xe9360c6fu - i, (uint16_t)(26477 + i)),
				 0);
	}
	assert_int_equal(sl__capture_write(w, data, 65508, 0, 1, 1, 2, 2), -EMSGSIZE);
	assert_int_equal(sl__capture_writer_close(w), 0);

	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_kind(c), SL_CAPTURE_PCAP);
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(sl__capture_next(c, &rec), 0);
		fill(data, lens[i], i);
		assert_int_equal(rec.len, lens[i]);
		assert_memory_equal(rec.data, data, lens[i]);
		assert_int_equal(rec.ts_ns, 1704205800000000000ull + i * 1000001ull);
		assert_int_equal(rec.src_ip, 0x0a000001u + i);
		assert_int_equal(rec.dst_ip, 0xe9360c6fu - i);
		assert_int_equal(rec.src_port, 26400 + i);
		assert_int_equal(rec.dst_port, 26477 + i);
	}
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, N);
	assert_int_equal(st.skipped_non_udp + st.skipped_port + st.truncated + st.bad, 0);
	assert_int_equal(st.bytes_read, st.file_bytes);
	sl__capture_close(c);

	/* Checksums a dissector verifies: the IPv4 header and the UDP pseudo-header sum. */
	file = read_file(&size);
	assert_int_equal(file[0], 0x4d); /* nanosecond magic, little-endian */
	assert_int_equal(file[3], 0xa1);
	off = 24;
	for (uint32_t i = 0; i < N; i++) {
		uint8_t *e = file + off + 16, *ip = e + 14, *u = ip + 20;
		uint32_t incl = file[off + 8] | file[off + 9] << 8 | file[off + 10] << 16 |
				(uint32_t)file[off + 11] << 24;
		uint16_t ulen = sl__be16(u + 4);
		uint32_t pseudo;

		assert_int_equal(incl, 42 + lens[i]);
		assert_int_equal(sl__be16(e + 12), 0x0800);
		/* Multicast destinations get the 01:00:5e group MAC. */
		assert_int_equal(e[0], 0x01);
		assert_int_equal(e[2], 0x5e);
		assert_int_equal(e[6] & 1, 0);
		assert_int_equal(csum16(ip, 20, 0), 0xffff);
		assert_int_equal(ulen, 8 + lens[i]);
		assert_int_not_equal(sl__be16(u + 6), 0);
		pseudo = csum16(ip + 12, 8, 0) + 17u + ulen;
		assert_int_equal(csum16(u, ulen, pseudo), 0xffff);
		off += 16 + incl;
	}
	assert_int_equal(off, size);
	free(file);
	free(data);
}

static void test_capture_write_raw_roundtrip(void **state)
{
	struct sl_capture_writer *w;
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	uint8_t data[65535];
	uint32_t i;

	(void)state;
	assert_int_equal(sl__capture_writer_open(path, SL_CAPTURE_RAW, &w), 0);
	assert_int_equal(sl__capture_write(w, data, 0, 0, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(sl__capture_write(w, data, 65536, 0, 0, 0, 0, 0), -EINVAL);
	for (i = 1; i <= 60; i++) {
		fill(data, i, i);
		/* Addresses and times are not part of a raw file. */
		assert_int_equal(sl__capture_write(w, data, i, 123, 1, 2, 3, 4), 0);
	}
	fill(data, 65535, 0);
	assert_int_equal(sl__capture_write(w, data, 65535, 0, 0, 0, 0, 0), 0);
	assert_int_equal(sl__capture_writer_close(w), 0);

	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_kind(c), SL_CAPTURE_RAW);
	for (i = 1; i <= 60; i++) {
		assert_int_equal(sl__capture_next(c, &rec), 0);
		fill(data, i, i);
		assert_int_equal(rec.len, i);
		assert_memory_equal(rec.data, data, i);
		assert_int_equal(rec.ts_ns, 0);
		assert_int_equal(rec.src_ip, 0);
		assert_int_equal(rec.dst_port, 0);
	}
	assert_int_equal(sl__capture_next(c, &rec), 0);
	fill(data, 65535, 0);
	assert_int_equal(rec.len, 65535);
	assert_memory_equal(rec.data, data, 65535);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, 61);
	assert_int_equal(st.bytes_read, st.file_bytes);
	assert_int_equal(st.file_bytes, 60 * 61 / 2 + 61 * 2 + 65535);
	sl__capture_close(c);
}

static void test_capture_writer_close_null(void **state)
{
	struct sl_capture_writer *w = NULL;

	(void)state;
	assert_int_equal(sl__capture_writer_close(NULL), 0);
	sl__capture_close(NULL);
	assert_int_equal(sl__capture_writer_open(path, 7, &w), -EINVAL);
	assert_int_equal(sl__capture_writer_open("/nonexistent-dir/x", SL_CAPTURE_RAW, &w),
			 -ENOENT);
	assert_null(w);
}

/* ---- Hand-made captures ------------------------------------------------------------------- */

enum byte_order { LE, BE };

struct pcap_builder {
	uint8_t buf[1 << 16];
	size_t len;
	enum byte_order order;
};

static void put32(struct pcap_builder *b, uint32_t v)
{
	if (b->order == BE)
		sl__put_be32(b->buf + b->len, v);
	else
		for (int i = 0; i < 4; i++)
			b->buf[b->len + (size_t)i] = (uint8_t)(v >> (8 * i));
	b->len += 4;
}

static void put16(struct pcap_builder *b, uint16_t v)
{
	if (b->order == BE)
		sl__put_be16(b->buf + b->len, v);
	else {
		b->buf[b->len] = (uint8_t)v;
		b->buf[b->len + 1] = (uint8_t)(v >> 8);
	}
	b->len += 2;
}

static void begin(struct pcap_builder *b, enum byte_order order, uint32_t magic, uint32_t linktype)
{
	b->len = 0;
	b->order = order;
	put32(b, magic);
	put16(b, 2);
	put16(b, 4);
	put32(b, 0);
	put32(b, 0);
	put32(b, 65535);
	put32(b, linktype);
}

static void record(struct pcap_builder *b, uint32_t sec, uint32_t frac, const uint8_t *frame,
		   uint32_t incl, uint32_t orig)
{
	put32(b, sec);
	put32(b, frac);
	put32(b, incl);
	put32(b, orig);
	memcpy(b->buf + b->len, frame, incl);
	b->len += incl;
}

struct frame_spec {
	int tags;      /* VLAN tags (first is 802.1ad when there are two) */
	int ihl;       /* IPv4 header words (5 = no options) */
	uint16_t frag; /* flags + fragment offset field */
	uint8_t proto; /* 17 = UDP */
	uint16_t ethertype;
	uint16_t sport, dport;
	uint32_t payload; /* bytes of payload */
	int pad_to;	  /* pad the frame with zeros to this length */
	int bad_ulen;	  /* UDP length larger than the datagram */
};

static const struct frame_spec udp_frame = {
	.ihl = 5,
	.proto = 17,
	.ethertype = 0x0800,
	.sport = 1111,
	.dport = 26477,
	.payload = 30,
};

/* Ethernet/[VLAN]/IPv4/UDP frame into f; its length. Checksums are left zero: the reader does
 * not verify them (captures offloaded by the NIC carry garbage there). */
static uint32_t frame(uint8_t *f, const struct frame_spec *s)
{
	uint32_t off = 12, ip, ulen = 8 + s->payload;

	memset(f, 0, 12);
	f[0] = 0x01;
	for (int t = 0; t < s->tags; t++) {
		sl__put_be16(f + off, (s->tags == 2 && t == 0) ? 0x88a8 : 0x8100);
		sl__put_be16(f + off + 2, (uint16_t)(100 + t));
		off += 4;
	}
	sl__put_be16(f + off, s->ethertype);
	ip = off + 2;
	memset(f + ip, 0, (size_t)s->ihl * 4);
	f[ip] = (uint8_t)(0x40 | s->ihl);
	sl__put_be16(f + ip + 2, (uint16_t)(s->ihl * 4 + ulen));
	sl__put_be16(f + ip + 6, s->frag);
	f[ip + 8] = 64;
	f[ip + 9] = s->proto;
	sl__put_be32(f + ip + 12, 0xc0a80001u);
	sl__put_be32(f + ip + 16, 0xef000001u);
	for (int k = 20; k < s->ihl * 4; k++)
		f[ip + (uint32_t)k] = 0x01; /* NOP options */
	off = ip + (uint32_t)s->ihl * 4;
	sl__put_be16(f + off, s->sport);
	sl__put_be16(f + off + 2, s->dport);
	sl__put_be16(f + off + 4, (uint16_t)(ulen + (s->bad_ulen ? 10 : 0)));
	sl__put_be16(f + off + 6, 0);
	fill(f + off + 8, s->payload, 0x55);
	off += ulen;
	while ((int)off < s->pad_to)
		f[off++] = 0;
	return off;
}

static void expect_payload(struct sl_capture *c, uint32_t payload, uint16_t dport)
{
	struct sl_capture_rec rec;
	uint8_t want[2048];

	assert_int_equal(sl__capture_next(c, &rec), 0);
	fill(want, payload, 0x55);
	assert_int_equal(rec.len, payload);
	assert_memory_equal(rec.data, want, payload);
	assert_int_equal(rec.src_ip, 0xc0a80001u);
	assert_int_equal(rec.dst_ip, 0xef000001u);
	assert_int_equal(rec.src_port, 1111);
	assert_int_equal(rec.dst_port, dport);
}

static void test_capture_open_every_magic(void **state)
{
	static const struct {
		enum byte_order order;
		uint32_t magic;
		uint64_t frac_ns;
	} cases[] = {
		{ LE, 0xa1b2c3d4u, 1000 },
		{ BE, 0xa1b2c3d4u, 1000 },
		{ LE, 0xa1b23c4du, 1 },
		{ BE, 0xa1b23c4du, 1 },
	};
	struct pcap_builder *b = malloc(sizeof(*b));
	uint8_t f[256];

	(void)state;
	assert_non_null(b);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct sl_capture *c;
		struct sl_capture_rec rec;
		uint32_t n = frame(f, &udp_frame);

		begin(b, cases[k].order, cases[k].magic, 1);
		record(b, 1700000000, 999999, f, n, n);
		record(b, 1700000001, 5, f, n, n);
		write_file(b->buf, b->len);
		assert_int_equal(sl__capture_open(path, 0, &c), 0);
		assert_int_equal(sl__capture_kind(c), SL_CAPTURE_PCAP);
		assert_int_equal(sl__capture_next(c, &rec), 0);
		assert_int_equal(rec.ts_ns,
				 1700000000ull * 1000000000ull + 999999 * cases[k].frac_ns);
		assert_int_equal(rec.len, 30);
		assert_int_equal(rec.dst_port, 26477);
		assert_int_equal(sl__capture_next(c, &rec), 0);
		assert_int_equal(rec.ts_ns, 1700000001ull * 1000000000ull + 5 * cases[k].frac_ns);
		assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
		sl__capture_close(c);
	}
	free(b);
}

static void test_capture_next_vlan_tags(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	struct frame_spec s = udp_frame;
	uint8_t f[256];
	uint32_t n;

	(void)state;
	assert_non_null(b);
	begin(b, LE, 0xa1b2c3d4u, 1);
	for (int t = 0; t <= 3; t++) {
		s.tags = t;
		s.payload = 10 + (uint32_t)t;
		n = frame(f, &s);
		record(b, 1, 0, f, n, n);
	}
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 10, 26477);
	expect_payload(c, 11, 26477);
	expect_payload(c, 12, 26477);
	/* A third tag is beyond what we parse: skipped and counted, not misread. */
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, 3);
	assert_int_equal(st.skipped_non_udp, 1);
	sl__capture_close(c);
	free(b);
}

static void test_capture_next_ipv4_options(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct frame_spec s = udp_frame;
	uint8_t f[256];
	uint32_t n;

	(void)state;
	assert_non_null(b);
	begin(b, LE, 0xa1b23c4du, 1);
	s.ihl = 6;
	s.payload = 7;
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s.ihl = 15;
	s.payload = 9;
	s.tags = 1;
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 7, 26477);
	expect_payload(c, 9, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_close(c);
	free(b);
}

static void test_capture_next_skips_fragments_and_non_udp(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	struct frame_spec s;
	uint8_t f[256];
	uint32_t n;

	(void)state;
	assert_non_null(b);
	begin(b, BE, 0xa1b2c3d4u, 1);
	s = udp_frame;
	s.frag = 0x2000; /* more fragments: the first piece */
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s.frag = 0x0010; /* a later piece */
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s = udp_frame;
	s.frag = 0x4000; /* don't fragment: a whole datagram */
	s.payload = 3;
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s = udp_frame;
	s.proto = 6; /* TCP */
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s = udp_frame;
	s.ethertype = 0x0806; /* ARP */
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s.ethertype = 0x86dd; /* IPv6 */
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	s = udp_frame;
	s.payload = 4;
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	write_file(b->buf, b->len);

	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 3, 26477);
	expect_payload(c, 4, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, 2);
	assert_int_equal(st.skipped_non_udp, 5);
	assert_int_equal(st.bad, 0);
	sl__capture_close(c);
	free(b);
}

static void test_capture_next_padding_and_snaplen(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	struct frame_spec s = udp_frame;
	uint8_t f[256];
	uint32_t n;

	(void)state;
	assert_non_null(b);
	begin(b, LE, 0xa1b2c3d4u, 1);
	/* A 2-byte payload in a minimum-size (60-byte) frame: padding is not payload. */
	s.payload = 2;
	s.pad_to = 60;
	n = frame(f, &s);
	assert_int_equal(n, 60);
	record(b, 1, 0, f, n, n);
	/* Captured with a short snaplen: the datagram is not whole. */
	s = udp_frame;
	s.payload = 100;
	n = frame(f, &s);
	record(b, 1, 0, f, 60, n);
	/* UDP length claims more than the IPv4 datagram holds. */
	s = udp_frame;
	s.bad_ulen = 1;
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	/* A runt frame with no room for an Ethernet header. */
	record(b, 1, 0, f, 10, 10);
	s = udp_frame;
	s.payload = 5;
	n = frame(f, &s);
	record(b, 1, 0, f, n, n);
	write_file(b->buf, b->len);

	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 2, 26477);
	expect_payload(c, 5, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, 2);
	assert_int_equal(st.truncated, 1);
	assert_int_equal(st.bad, 2);
	sl__capture_close(c);
	free(b);
}

static void test_capture_open_dst_port_filter(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	struct frame_spec s = udp_frame;
	uint8_t f[256];
	uint32_t n;

	(void)state;
	assert_non_null(b);
	begin(b, LE, 0xa1b2c3d4u, 1);
	for (int i = 0; i < 6; i++) {
		s.dport = i % 2 ? 26477 : 53;
		s.payload = 10 + (uint32_t)i;
		n = frame(f, &s);
		record(b, 1, 0, f, n, n);
	}
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 26477, &c), 0);
	expect_payload(c, 11, 26477);
	expect_payload(c, 13, 26477);
	expect_payload(c, 15, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, 3);
	assert_int_equal(st.skipped_port, 3);
	sl__capture_close(c);
	/* Without a filter every datagram comes back. */
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	for (int i = 0; i < 6; i++)
		expect_payload(c, 10 + (uint32_t)i, i % 2 ? 26477 : 53);
	sl__capture_close(c);
	free(b);
}

static void test_capture_next_linux_cooked_and_raw_ip(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	uint8_t f[256], g[256];
	uint32_t n;

	(void)state;
	assert_non_null(b);
	n = frame(f, &udp_frame);
	/* LINKTYPE_LINUX_SLL: a 16-byte header whose last two bytes are the protocol. */
	memset(g, 0, 16);
	sl__put_be16(g + 14, 0x0800);
	memcpy(g + 16, f + 14, n - 14);
	begin(b, LE, 0xa1b2c3d4u, 113);
	record(b, 1, 0, g, n + 2, n + 2);
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 30, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_close(c);
	/* LINKTYPE_RAW: the IPv4 header first. */
	begin(b, LE, 0xa1b2c3d4u, 101);
	record(b, 1, 0, f + 14, n - 14, n - 14);
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 30, 26477);
	sl__capture_close(c);
	/* A link type we cannot parse is refused at open. */
	begin(b, LE, 0xa1b2c3d4u, 105);
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 0, &c), SL_EVERSION);
	free(b);
}

static void test_capture_next_truncated_pcap(void **state)
{
	struct pcap_builder *b = malloc(sizeof(*b));
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;
	uint8_t f[256];
	uint32_t n = frame(f, &udp_frame);
	size_t whole;

	(void)state;
	assert_non_null(b);
	begin(b, LE, 0xa1b2c3d4u, 1);
	record(b, 1, 0, f, n, n);
	whole = b->len;
	record(b, 2, 0, f, n, n);

	/* Cut inside the second record's data. */
	write_file(b->buf, b->len - 5);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 30, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	/* Sticky: no resynchronising on garbage. */
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.records, 1);
	assert_int_equal(st.truncated, 1);
	sl__capture_close(c);

	/* Cut inside the second record's header. */
	write_file(b->buf, whole + 7);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	expect_payload(c, 30, 26477);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	sl__capture_close(c);

	/* An impossible record length. */
	begin(b, LE, 0xa1b2c3d4u, 1);
	record(b, 1, 0, f, 0, 0);
	b->buf[24 + 8] = 0xff;
	b->buf[24 + 11] = 0x7f;
	write_file(b->buf, b->len);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.bad, 1);
	sl__capture_close(c);

	/* Cut inside the file header. */
	write_file(b->buf, 10);
	assert_int_equal(sl__capture_open(path, 0, &c), SL_EBADMSG);
	free(b);
}

static void test_capture_next_truncated_raw(void **state)
{
	static const uint8_t zero_len[] = { 0, 3, 'S', 1, 2, 0, 0, 0, 4 };
	static const uint8_t past_eof[] = { 0, 2, 'S', 1, 0, 40, 'A', 1, 2 };
	static const uint8_t half_prefix[] = { 0, 1, 'S', 0 };
	struct sl_capture *c;
	struct sl_capture_rec rec;
	struct sl_capture_stats st;

	(void)state;
	write_file(zero_len, sizeof(zero_len));
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_kind(c), SL_CAPTURE_RAW);
	assert_int_equal(sl__capture_next(c, &rec), 0);
	assert_int_equal(rec.len, 3);
	assert_memory_equal(rec.data, "S\x01\x02", 3);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.bad, 1);
	sl__capture_close(c);

	write_file(past_eof, sizeof(past_eof));
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_next(c, &rec), 0);
	assert_int_equal(rec.len, 2);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	sl__capture_get_stats(c, &st);
	assert_int_equal(st.truncated, 1);
	sl__capture_close(c);

	write_file(half_prefix, sizeof(half_prefix));
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_next(c, &rec), 0);
	assert_int_equal(sl__capture_next(c, &rec), SL_EBADMSG);
	sl__capture_close(c);

	/* An empty file is an empty raw capture. */
	write_file("", 0);
	assert_int_equal(sl__capture_open(path, 0, &c), 0);
	assert_int_equal(sl__capture_kind(c), SL_CAPTURE_RAW);
	assert_int_equal(sl__capture_next(c, &rec), SL_EEND);
	sl__capture_close(c);
}

static void test_capture_open_errors(void **state)
{
	static const uint8_t pcapng[] = { 0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0,
					  0,	0,    0x4d, 0x3c, 0x2b, 0x1a };
	struct sl_capture *c = (struct sl_capture *)1;

	(void)state;
	assert_int_equal(sl__capture_open("/nonexistent-dir/cap", 0, &c), -ENOENT);
	assert_null(c);
	write_file(pcapng, sizeof(pcapng));
	assert_int_equal(sl__capture_open(path, 0, &c), SL_EVERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capture_write_pcap_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_write_raw_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_writer_close_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_open_every_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_vlan_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_ipv4_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_skips_fragments_and_non_udp,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_padding_and_snaplen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_capture_open_dst_port_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_linux_cooked_and_raw_ip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_truncated_pcap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_next_truncated_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_open_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
