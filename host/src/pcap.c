/* pcap.c - read and write capture files: classic pcap (Ethernet with up to two VLAN tags, Linux
 * cooked or raw IPv4 framing on read; IPv4/UDP inside) and NASDAQ's length-prefixed raw ITCH
 * files. pcap knows nothing of MoldUDP64 or ITCH beyond the raw file's u16 framing; it borrows
 * only the big-endian helpers of itch.h. Buffered stdio and one record buffer per handle: no
 * allocation per record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sluice.h"
#include "itch.h"
#include "pcap.h"

#define PCAP_MAGIC_US	0xa1b2c3d4u
#define PCAP_MAGIC_NS	0xa1b23c4du
#define PCAPNG_MAGIC	0x0a0d0d0au
#define PCAP_GLOBAL_LEN 24
#define PCAP_REC_LEN	16
/* The largest record we accept: libpcap's own ceiling for snaplen. */
#define PCAP_MAX_REC 262144u

#define LINKTYPE_ETHERNET  1
#define LINKTYPE_RAW	   101
#define LINKTYPE_LINUX_SLL 113
#define LINKTYPE_IPV4	   228

#define ETH_HDR_LEN	   14
#define SLL_HDR_LEN	   16
#define IPV4_HDR_LEN	   20
#define UDP_HDR_LEN	   8
#define ETHERTYPE_IPV4	   0x0800
#define ETHERTYPE_8021Q	   0x8100
#define ETHERTYPE_8021AD   0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100
#define IPPROTO_UDP_NUM	   17
/* The largest UDP payload an IPv4 datagram can carry. */
#define UDP_MAX_PAYLOAD (65535 - IPV4_HDR_LEN - UDP_HDR_LEN)
#define FRAME_MAX	(ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN + UDP_MAX_PAYLOAD)

/* Per-packet complaints on stderr stop after this many per file; the counters go on. */
#define PCAP_MAX_COMPLAINTS 10

_Static_assert(PCAP_GLOBAL_LEN == 4 + 2 + 2 + 4 + 4 + 4 + 4, "pcap global header layout");
_Static_assert(PCAP_REC_LEN == 4 * 4, "pcap record header layout");
_Static_assert(FRAME_MAX == 65549, "largest Ethernet/IPv4/UDP frame");

struct sl_capture {
	FILE *f;
	char *path;
	int kind;	  /* enum sl_capture_kind */
	int big_endian;	  /* pcap fields are big-endian in this file */
	uint32_t frac_ns; /* ns per unit of the timestamp fraction: 1000 (us) or 1 (ns) */
	uint32_t linktype;
	uint16_t dst_port; /* 0 = every port */
	int failed;	   /* sticky SL_EBADMSG: a broken record cannot be resynchronised */
	unsigned complaints;
	uint64_t off; /* file offset of the next record */
	uint8_t *buf; /* PCAP_MAX_REC bytes, reused for every record */
	struct sl_capture_stats st;
};

struct sl_capture_writer {
	FILE *f;
	int kind;
	int err; /* first write error, returned by close */
	uint16_t ip_id;
	uint8_t *buf; /* a record header and the largest frame, or one raw record */
};

/* ---- Little helpers ------------------------------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t file32(const struct sl_capture *c, const uint8_t *p)
{
	return c->big_endian ? sl__be32(p) : le32(p);
}

static uint16_t file16(const struct sl_capture *c, const uint8_t *p)
{
	return c->big_endian ? sl__be16(p) : (uint16_t)(p[0] | p[1] << 8);
}

/* Read n bytes at the current offset; returns how many arrived (short only at end of file or
 * on a read error, which the caller reports as truncation). */
static size_t read_n(struct sl_capture *c, void *p, size_t n)
{
	size_t got = fread(p, 1, n, c->f);

	c->off += got;
	c->st.bytes_read += got;
	return got;
}

static int broken(struct sl_capture *c, uint64_t rec_off, const char *what, uint64_t *counter)
{
	fprintf(stderr, "capture: %s: offset %" PRIu64 ": %s%s\n", c->path, rec_off, what,
		ferror(c->f) ? " (read error)" : "");
	(*counter)++;
	c->failed = SL_EBADMSG;
	return SL_EBADMSG;
}

/* A malformed frame inside a sound record: counted, reported a few times, skipped. */
static void complain(struct sl_capture *c, uint64_t rec_off, const char *what)
{
	c->st.bad++;
	if (c->complaints++ < PCAP_MAX_COMPLAINTS)
		fprintf(stderr, "capture: %s: record at offset %" PRIu64 ": %s (skipped)\n",
			c->path, rec_off, what);
}

/* ---- Reader --------------------------------------------------------------------------------- */

static int open_pcap_header(struct sl_capture *c, const uint8_t *h)
{
	uint32_t magic_le = le32(h), magic_be = sl__be32(h);

	if (magic_le == PCAP_MAGIC_US || magic_le == PCAP_MAGIC_NS) {
		c->big_endian = 0;
		c->frac_ns = magic_le == PCAP_MAGIC_US ? 1000 : 1;
	} else {
		c->big_endian = 1;
		c->frac_ns = magic_be == PCAP_MAGIC_US ? 1000 : 1;
	}
	if (file16(c, h + 4) != 2) {
		fprintf(stderr, "capture: %s: pcap version %u.%u not supported\n", c->path,
			file16(c, h + 4), file16(c, h + 6));
		return SL_EVERSION;
	}
	c->linktype = file32(c, h + 20) & 0x0fffffffu; /* the top bits carry FCS flags */
	switch (c->linktype) {
	case LINKTYPE_ETHERNET:
	case LINKTYPE_RAW:
	case LINKTYPE_LINUX_SLL:
	case LINKTYPE_IPV4:
		return 0;
	default:
		fprintf(stderr,
			"capture: %s: link type %u not supported (Ethernet, Linux cooked or "
			"raw IPv4 only)\n",
			c->path, c->linktype);
		return SL_EVERSION;
	}
}

static int is_pcap_magic(const uint8_t *h)
{
	uint32_t m = le32(h);

	return m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS || sl__be32(h) == PCAP_MAGIC_US ||
	       sl__be32(h) == PCAP_MAGIC_NS;
}

int sl__capture_open(const char *path, uint16_t dst_port, struct sl_capture **out)
{
	struct sl_capture *c;
	uint8_t h[PCAP_GLOBAL_LEN];
	struct stat sb;
	size_t got;
	int err;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dst_port = dst_port;
	c->path = strdup(path);
	c->buf = malloc(PCAP_MAX_REC);
	if (!c->path || !c->buf) {
		err = -ENOMEM;
		goto out_free;
	}
	c->f = fopen(path, "rb");
	if (!c->f) {
		err = -errno;
		goto out_free;
	}
	/* Captures are read front to back once: a large stdio buffer means few read syscalls. */
	setvbuf(c->f, NULL, _IOFBF, 1 << 20);
	if (fstat(fileno(c->f), &sb) == 0)
		c->st.file_bytes = (uint64_t)sb.st_size;

	got = read_n(c, h, 4);
	if (got == 4 && le32(h) == PCAPNG_MAGIC) {
		fprintf(stderr,
			"capture: %s: pcapng is not supported; convert it with "
			"`editcap -F pcap`\n",
			path);
		err = SL_EVERSION;
		goto out_close;
	}
	if (got == 4 && is_pcap_magic(h)) {
		c->kind = SL_CAPTURE_PCAP;
		if (read_n(c, h + 4, PCAP_GLOBAL_LEN - 4) != PCAP_GLOBAL_LEN - 4) {
			fprintf(stderr,
				"capture: %s: offset 0: pcap file header cut short (%" PRIu64
				" of %d bytes)\n",
				path, c->off, PCAP_GLOBAL_LEN);
			err = SL_EBADMSG;
			goto out_close;
		}
		err = open_pcap_header(c, h);
		if (err)
			goto out_close;
	} else {
		/* Raw NASDAQ file: start again at its first length prefix. */
		c->kind = SL_CAPTURE_RAW;
		if (fseek(c->f, 0, SEEK_SET) != 0) {
			err = -errno;
			goto out_close;
		}
		c->off = 0;
		c->st.bytes_read = 0;
	}
	*out = c;
	return 0;

out_close:
	fclose(c->f);
out_free:
	free(c->buf);
	free(c->path);
	free(c);
	return err;
}

int sl__capture_kind(const struct sl_capture *c)
{
	return c->kind;
}

static int next_raw(struct sl_capture *c, struct sl_capture_rec *rec)
{
	uint64_t rec_off = c->off;
	uint8_t lp[2];
	size_t got = read_n(c, lp, 2);
	uint16_t len;

	if (got == 0 && !ferror(c->f))
		return SL_EEND;
	if (got != 2)
		return broken(c, rec_off, "truncated length prefix", &c->st.truncated);
	len = sl__be16(lp);
	if (len == 0)
		return broken(c, rec_off, "message length 0", &c->st.bad);
	if (read_n(c, c->buf, len) != len)
		return broken(c, rec_off, "message runs past the end of the file",
			      &c->st.truncated);
	memset(rec, 0, sizeof(*rec));
	rec->data = c->buf;
	rec->len = len;
	c->st.records++;
	return 0;
}

/* Find the UDP payload in one IPv4 packet of len captured bytes. 1 and *rec's payload and
 * address fields set; 0 when the record is skipped (and counted). */
static int dissect_ipv4(struct sl_capture *c, const uint8_t *p, uint32_t len, int snapped,
			uint64_t rec_off, struct sl_capture_rec *rec)
{
	uint32_t ihl, tot, ulen;
	const uint8_t *u;

	if (len < IPV4_HDR_LEN || (p[0] >> 4) != 4) {
		if (snapped && len < IPV4_HDR_LEN)
			c->st.truncated++;
		else
			complain(c, rec_off, "bad IPv4 header");
		return 0;
	}
	ihl = (uint32_t)(p[0] & 0x0f) * 4;
	tot = sl__be16(p + 2);
	if (ihl < IPV4_HDR_LEN || tot < ihl) {
		complain(c, rec_off, "bad IPv4 header length");
		return 0;
	}
	if (tot > len) {
		if (snapped)
			c->st.truncated++;
		else
			complain(c, rec_off, "IPv4 total length exceeds the frame");
		return 0;
	}
	/* Anything after the IP datagram is Ethernet padding. */
	len = tot;
	if ((sl__be16(p + 6) & 0x3fff) != 0 || p[9] != IPPROTO_UDP_NUM) {
		/* A fragment (more-fragments set or an offset): not a whole datagram. */
		c->st.skipped_non_udp++;
		return 0;
	}
	if (len - ihl < UDP_HDR_LEN) {
		complain(c, rec_off, "UDP header cut short");
		return 0;
	}
	u = p + ihl;
	ulen = sl__be16(u + 4);
	if (ulen < UDP_HDR_LEN || ulen > len - ihl) {
		complain(c, rec_off, "UDP length does not fit the IPv4 datagram");
		return 0;
	}
	rec->src_ip = sl__be32(p + 12);
	rec->dst_ip = sl__be32(p + 16);
	rec->src_port = sl__be16(u);
	rec->dst_port = sl__be16(u + 2);
	if (c->dst_port && rec->dst_port != c->dst_port) {
		c->st.skipped_port++;
		return 0;
	}
	rec->data = u + UDP_HDR_LEN;
	rec->len = ulen - UDP_HDR_LEN;
	return 1;
}

/* Strip the link layer: 1 with *p and *len at the IPv4 header, 0 when skipped. */
static int strip_link(struct sl_capture *c, const uint8_t **p, uint32_t *len, int snapped,
		      uint64_t rec_off)
{
	uint32_t off;
	uint16_t type;

	switch (c->linktype) {
	case LINKTYPE_RAW:
	case LINKTYPE_IPV4:
		if (*len >= 1 && (**p >> 4) != 4) {
			c->st.skipped_non_udp++;
			return 0;
		}
		return 1;
	case LINKTYPE_LINUX_SLL:
		off = SLL_HDR_LEN;
		if (*len < off)
			goto short_frame;
		type = sl__be16(*p + 14);
		break;
	default:
		off = ETH_HDR_LEN;
		if (*len < off)
			goto short_frame;
		type = sl__be16(*p + 12);
		/* Up to two tags (802.1Q, or 802.1ad outer + 802.1Q inner); more are not ours. */
		for (int tags = 0; tags < 2; tags++) {
			if (type != ETHERTYPE_8021Q && type != ETHERTYPE_8021AD &&
			    type != ETHERTYPE_QINQ_OLD)
				break;
			if (*len < off + 4)
				goto short_frame;
			type = sl__be16(*p + off + 2);
			off += 4;
		}
		break;
	}
	if (type != ETHERTYPE_IPV4) {
		c->st.skipped_non_udp++;
		return 0;
	}
	*p += off;
	*len -= off;
	return 1;

short_frame:
	if (snapped)
		c->st.truncated++;
	else
		complain(c, rec_off, "frame shorter than its link header");
	return 0;
}

static int next_pcap(struct sl_capture *c, struct sl_capture_rec *rec)
{
	for (;;) {
		uint64_t rec_off = c->off;
		uint8_t h[PCAP_REC_LEN];
		size_t got = read_n(c, h, PCAP_REC_LEN);
		uint32_t sec, frac, incl, orig;
		const uint8_t *p = c->buf;
		int snapped;

		if (got == 0 && !ferror(c->f))
			return SL_EEND;
		if (got != PCAP_REC_LEN)
			return broken(c, rec_off, "truncated pcap record header", &c->st.truncated);
		sec = file32(c, h);
		frac = file32(c, h + 4);
		incl = file32(c, h + 8);
		orig = file32(c, h + 12);
		if (incl > PCAP_MAX_REC)
			return broken(c, rec_off, "impossible pcap record length", &c->st.bad);
		if (read_n(c, c->buf, incl) != incl)
			return broken(c, rec_off, "pcap record runs past the end of the file",
				      &c->st.truncated);
		snapped = incl < orig;

		memset(rec, 0, sizeof(*rec));
		if (!strip_link(c, &p, &incl, snapped, rec_off))
			continue;
		if (!dissect_ipv4(c, p, incl, snapped, rec_off, rec))
			continue;
		rec->ts_ns = (uint64_t)sec * 1000000000ull + (uint64_t)frac * c->frac_ns;
		c->st.records++;
		return 0;
	}
}

int sl__capture_next(struct sl_capture *c, struct sl_capture_rec *rec)
{
	if (c->failed)
		return c->failed;
	return c->kind == SL_CAPTURE_PCAP ? next_pcap(c, rec) : next_raw(c, rec);
}

void sl__capture_get_stats(const struct sl_capture *c, struct sl_capture_stats *out)
{
	*out = c->st;
}

void sl__capture_close(struct sl_capture *c)
{
	if (!c)
		return;
	fclose(c->f);
	free(c->buf);
	free(c->path);
	free(c);
}

/* ---- Writer --------------------------------------------------------------------------------- */

static void write_bytes(struct sl_capture_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	errno = 0;
	if (fwrite(p, 1, n, w->f) != n)
		w->err = errno ? -errno : -EIO;
}

int sl__capture_writer_open(const char *path, int kind, struct sl_capture_writer **out)
{
	struct sl_capture_writer *w;
	uint8_t h[PCAP_GLOBAL_LEN];
	int err;

	*out = NULL;
	if (kind != SL_CAPTURE_PCAP && kind != SL_CAPTURE_RAW)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->kind = kind;
	w->buf = malloc(PCAP_REC_LEN + FRAME_MAX);
	if (!w->buf) {
		err = -ENOMEM;
		goto out_free;
	}
	w->f = fopen(path, "wb");
	if (!w->f) {
		err = -errno;
		goto out_free;
	}
	setvbuf(w->f, NULL, _IOFBF, 1 << 20);
	if (kind == SL_CAPTURE_PCAP) {
		/* Little-endian whatever the host: the same session gives the same file. */
		put_le32(h, PCAP_MAGIC_NS);
		put_le16(h + 4, 2);
		put_le16(h + 6, 4);
		put_le32(h + 8, 0);  /* thiszone: UTC */
		put_le32(h + 12, 0); /* sigfigs */
		put_le32(h + 16, PCAP_MAX_REC);
		put_le32(h + 20, LINKTYPE_ETHERNET);
		write_bytes(w, h, sizeof(h));
		if (w->err) {
			err = w->err;
			fclose(w->f);
			goto out_free;
		}
	}
	*out = w;
	return 0;

out_free:
	free(w->buf);
	free(w);
	return err;
}

/* Ones' complement sum of n bytes as big-endian 16-bit words (odd tail padded with zero). */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* IPv4 multicast goes to 01:00:5e + the low 23 bits of the group; unicast to a locally
 * administered address derived from the IP, so conversations stay apart in Wireshark. */
static void mac_for(uint8_t mac[6], uint32_t ip)
{
	if ((ip >> 28) == 0xe) {
		mac[0] = 0x01;
		mac[1] = 0x00;
		mac[2] = 0x5e;
		mac[3] = (uint8_t)(ip >> 16 & 0x7f);
	} else {
		mac[0] = 0x02;
		mac[1] = 0x00;
		mac[2] = (uint8_t)(ip >> 24);
		mac[3] = (uint8_t)(ip >> 16);
	}
	mac[4] = (uint8_t)(ip >> 8);
	mac[5] = (uint8_t)ip;
}

static int write_frame(struct sl_capture_writer *w, const void *data, uint32_t len, uint64_t ts_ns,
		       uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, uint16_t dst_port)
{
	uint8_t *r = w->buf, *e = r + PCAP_REC_LEN, *ip = e + ETH_HDR_LEN;
	uint8_t *u = ip + IPV4_HDR_LEN;
	uint32_t frame = ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN + len;
	uint16_t ulen = (uint16_t)(UDP_HDR_LEN + len), sum;
	uint64_t acc;

	if (len > UDP_MAX_PAYLOAD)
		return -EMSGSIZE;
	put_le32(r, (uint32_t)(ts_ns / 1000000000ull));
	put_le32(r + 4, (uint32_t)(ts_ns % 1000000000ull));
	put_le32(r + 8, frame);
	put_le32(r + 12, frame);

	mac_for(e, dst_ip);
	mac_for(e + 6, src_ip);
	e[6] = 0x02; /* a source MAC is never multicast */
	sl__put_be16(e + 12, ETHERTYPE_IPV4);

	ip[0] = 0x45;
	ip[1] = 0;
	sl__put_be16(ip + 2, (uint16_t)(IPV4_HDR_LEN + ulen));
	sl__put_be16(ip + 4, w->ip_id++);
	sl__put_be16(ip + 6, 0x4000); /* don't fragment */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP_NUM;
	sl__put_be16(ip + 10, 0);
	sl__put_be32(ip + 12, src_ip);
	sl__put_be32(ip + 16, dst_ip);
	sl__put_be16(ip + 10, csum_fold(csum_add(0, ip, IPV4_HDR_LEN)));

	sl__put_be16(u, src_port);
	sl__put_be16(u + 2, dst_port);
	sl__put_be16(u + 4, ulen);
	sl__put_be16(u + 6, 0);
	memcpy(u + UDP_HDR_LEN, data, len);
	/* Pseudo-header (addresses, protocol, UDP length), then header and payload. */
	acc = csum_add(0, ip + 12, 8) + IPPROTO_UDP_NUM + ulen;
	acc = csum_add(acc, u, ulen);
	sum = csum_fold(acc);
	sl__put_be16(u + 6, sum ? sum : 0xffff); /* 0 would mean "no checksum" */

	write_bytes(w, r, PCAP_REC_LEN + frame);
	return w->err;
}

int sl__capture_write(struct sl_capture_writer *w, const void *data, uint32_t len, uint64_t ts_ns,
		      uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, uint16_t dst_port)
{
	if (w->err)
		return w->err;
	if (w->kind == SL_CAPTURE_PCAP)
		return write_frame(w, data, len, ts_ns, src_ip, src_port, dst_ip, dst_port);
	/* A raw record of 0 bytes would read back as corruption; one over 64 KiB cannot exist. */
	if (len == 0 || len > 0xffff)
		return -EINVAL;
	/* One fwrite per record: stdio takes its lock per call, and raw records are small. */
	sl__put_be16(w->buf, (uint16_t)len);
	memcpy(w->buf + 2, data, len);
	write_bytes(w, w->buf, 2u + len);
	return w->err;
}

int sl__capture_writer_close(struct sl_capture_writer *w)
{
	int err;

	if (!w)
		return 0;
	err = w->err;
	if (fflush(w->f) != 0 && !err)
		err = -errno;
	if (fclose(w->f) != 0 && !err)
		err = -errno;
	free(w->buf);
	free(w);
	return err;
}
