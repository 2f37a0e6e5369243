/* sluice-feed.c - generate a synthetic TotalView-ITCH 5.0 session (feed.c) and write it as a pcap
 * or a raw NASDAQ file (pcap.c), or send it as MoldUDP64 over UDP while acting as the session's
 * rewinder. This program parses options, calls library code and prints; the only logic of its
 * own is socket I/O, pacing and the simulated network impairments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"
#include "feed.h"
#include "itch.h"
#include "mold.h"
#include "pcap.h"

/* pcap defaults: the NASDAQ TotalView multicast group and port, a private source. */
#define DEF_DST_IP   0xe9360c6fu /* 233.54.12.111 */
#define DEF_DST_PORT 26477
#define DEF_SRC_IP   0x0a000001u /* 10.0.0.1 */
#define DEF_SRC_PORT 26400
/* pcap timestamps start at 2024-01-02 09:30:00 EST (14:30 UTC), so the same session always
 * gives the same file. */
#define PCAP_BASE_NS (1704205800ull * 1000000000ull)
#define BATCH	     64
#define EOS_EVERY_NS 250000000ull
/* Most messages retransmitted for one request: a burst the requester's socket can absorb. */
#define REWIND_MAX 2048

struct opts {
	struct sl_feed_config feed;
	uint64_t rate;
	uint16_t port;
	const char *udp, *udp_b, *pcap, *raw;
	struct sockaddr_in dst, dst_b; /* --udp, --udp-b, resolved */
	struct sockaddr_in also[4]; /* --also-udp: more lines with line A's packets */
	unsigned nalso;
	double loss, dup, reorder, loss_b;
	uint64_t linger_ms;
	int quiet;
};

/* Everything sent, for the rewinder: packets back to back, and each packet's first sequence
 * and offset so a request finds its place by binary search. */
struct store {
	uint8_t *buf;
	size_t len, cap;
	uint64_t *first_seq;
	size_t *off;
	size_t n, ncap;
};

struct sender {
	int fd;
	struct sockaddr_in dst[2]; /* line A, and line B when has_b */
	int has_b;
	struct sockaddr_in also[4]; /* --also-udp: line A's packets there too */
	unsigned nalso;
	char session[SL_MOLD_SESSION_LEN];
	uint32_t max_packet;
	struct store st;
	uint64_t next_seq; /* one past the last message sent */
	uint64_t rng, rng_b;
	double loss, dup, reorder, loss_b;
	/* First transmissions waiting for sendmmsg, as offsets into st (which may move), and the
	 * line each goes out on. */
	size_t batch_off[BATCH + 2];
	uint32_t batch_len[BATCH + 2];
	uint8_t batch_line[BATCH + 2];
	unsigned nbatch;
	long held; /* packet index held back to simulate reordering, or -1 */
	uint64_t dropped, duplicated, reordered, dropped_b, dropped_both;
	uint64_t requests, bad_requests, retransmitted, retrans_packets, controls;
	uint8_t rbuf[SL_MOLD_MAX_PACKET];
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluice-feed --messages N [--seed S] [--stocks K] [--rate MSG/S]\n"
		"                   [--port P] [--session NAME]\n"
		"                   (--udp HOST:PORT [--udp-b HOST:PORT] [--also-udp HOST:PORT]...\n"
		"                    | --pcap FILE | --raw FILE)\n"
		"                   [--loss P] [--loss-b P] [--dup P] [--reorder P] [--linger-ms MS]\n"
		"                   [--quiet]\n"
		"  --messages N     ITCH 5.0 messages in the session (required, >= 1)\n"
		"  --seed S         generator seed (default 1); same seed, same bytes\n"
		"  --stocks K       symbols in the stock directory (default 64, 1..65535)\n"
		"  --rate MSG/S     messages per second (0 = as fast as possible); for --pcap it\n"
		"                   spaces the timestamps (default 1 us per packet)\n"
		"  --port P         UDP source port (--udp: bind; 0 = any; --pcap: default 26400)\n"
		"  --session NAME   MoldUDP64 session, up to 10 letters/digits (SLUICE0001)\n"
		"  --udp HOST:PORT  send MoldUDP64 there and answer re-requests on --port\n"
		"  --udp-b HOST:PORT  a B line: every packet is sent there too (A/B feed)\n"
		"  --loss-b P       probability of dropping a packet on the B line, rolled\n"
		"                   apart from line A's --loss (--dup and --reorder: A only)\n"
		"  --also-udp HOST:PORT  line A's packets to another address too (a cluster's\n"
		"                   nodes; repeat up to 4 times)\n"
		"  --pcap FILE      write Ethernet/IPv4/UDP frames to a nanosecond pcap, to\n"
		"                   the --udp address if given, else 233.54.12.111:26477\n"
		"  --raw FILE       write NASDAQ's raw format (u16 length + message)\n"
		"  --loss P, --dup P, --reorder P\n"
		"                   probabilities (0..1) of dropping, duplicating or delaying a\n"
		"                   packet's first transmission (--udp; retransmissions never)\n"
		"  --linger-ms MS   after end of session, keep answering requests (default 2000)\n"
		"  --quiet          no progress, only the summary line\n"
		"Outputs may be combined; at least one of --udp, --pcap, --raw is needed.\n");
}

/* ---- Option parsing ------------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno || *end || x > max)
		return -1;
	*v = x;
	return 0;
}

static int parse_prob(const char *s, double *p)
{
	char *end;

	errno = 0;
	*p = strtod(s, &end);
	return (errno || !*s || *end || !(*p >= 0.0 && *p <= 1.0)) ? -1 : 0;
}

static int parse_session(const char *s, char out[SL_MOLD_SESSION_LEN])
{
	size_t n = strlen(s);

	if (n < 1 || n > SL_MOLD_SESSION_LEN)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return -1;
	memset(out, ' ', SL_MOLD_SESSION_LEN);
	memcpy(out, s, n);
	return 0;
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints, *res;
	uint64_t port;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host) ||
	    parse_u64(colon + 1, 65535, &port) || port == 0)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET; /* the frames we write and the requests we answer are IPv4 */
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -1;
	memcpy(sa, res->ai_addr, sizeof(*sa));
	sa->sin_port = htons((uint16_t)port);
	freeaddrinfo(res);
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum {
		O_MESSAGES = 256,
		O_SEED,
		O_STOCKS,
		O_RATE,
		O_PORT,
		O_SESSION,
		O_UDP,
		O_PCAP,
		O_RAW,
		O_LOSS,
		O_DUP,
		O_REORDER,
		O_LINGER,
		O_QUIET,
		O_UDP_B,
		O_LOSS_B,
		O_ALSO_UDP,
		O_HELP
	};
	static const struct option lo[] = {
		{ "messages", required_argument, NULL, O_MESSAGES },
		{ "seed", required_argument, NULL, O_SEED },
		{ "stocks", required_argument, NULL, O_STOCKS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "port", required_argument, NULL, O_PORT },
		{ "session", required_argument, NULL, O_SESSION },
		{ "udp", required_argument, NULL, O_UDP },
		{ "pcap", required_argument, NULL, O_PCAP },
		{ "raw", required_argument, NULL, O_RAW },
		{ "loss", required_argument, NULL, O_LOSS },
		{ "dup", required_argument, NULL, O_DUP },
		{ "reorder", required_argument, NULL, O_REORDER },
		{ "linger-ms", required_argument, NULL, O_LINGER },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "udp-b", required_argument, NULL, O_UDP_B },
		{ "loss-b", required_argument, NULL, O_LOSS_B },
		{ "also-udp", required_argument, NULL, O_ALSO_UDP },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v = 0;
	int c, have_messages = 0;

	memset(o, 0, sizeof(*o));
	sl__feed_config_init(&o->feed);
	o->linger_ms = 2000;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		const char *bad = NULL;

		switch (c) {
		case O_MESSAGES:
			if (parse_u64(optarg, UINT64_MAX, &o->feed.messages) || !o->feed.messages)
				bad = "--messages";
			have_messages = 1;
			break;
		case O_SEED:
			if (parse_u64(optarg, UINT64_MAX, &o->feed.seed))
				bad = "--seed";
			break;
		case O_STOCKS:
			if (parse_u64(optarg, 65535, &v) || !v)
				bad = "--stocks";
			o->feed.stocks = (uint32_t)v;
			break;
		case O_RATE:
			if (parse_u64(optarg, UINT32_MAX, &o->rate))
				bad = "--rate";
			break;
		case O_PORT:
			if (parse_u64(optarg, 65535, &v))
				bad = "--port";
			o->port = (uint16_t)v;
			break;
		case O_SESSION:
			if (parse_session(optarg, o->feed.session))
				bad = "--session";
			break;
		case O_UDP:
			o->udp = optarg;
			if (parse_hostport(optarg, &o->dst))
				bad = "--udp (HOST:PORT, IPv4)";
			break;
		case O_UDP_B:
			o->udp_b = optarg;
			if (parse_hostport(optarg, &o->dst_b))
				bad = "--udp-b (HOST:PORT, IPv4)";
			break;
		case O_LOSS_B:
			if (parse_prob(optarg, &o->loss_b))
				bad = "--loss-b";
			break;
		case O_ALSO_UDP:
			if (o->nalso == 4 || parse_hostport(optarg, &o->also[o->nalso++]))
				bad = "--also-udp (HOST:PORT, IPv4, at most 4)";
			break;
		case O_PCAP:
			o->pcap = optarg;
			break;
		case O_RAW:
			o->raw = optarg;
			break;
		case O_LOSS:
			if (parse_prob(optarg, &o->loss))
				bad = "--loss";
			break;
		case O_DUP:
			if (parse_prob(optarg, &o->dup))
				bad = "--dup";
			break;
		case O_REORDER:
			if (parse_prob(optarg, &o->reorder))
				bad = "--reorder";
			break;
		case O_LINGER:
			if (parse_u64(optarg, 3600000, &o->linger_ms))
				bad = "--linger-ms";
			break;
		case O_QUIET:
			o->quiet = 1;
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
		if (bad) {
			fprintf(stderr, "sluice-feed: bad value for %s: '%s'\n", bad, optarg);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sluice-feed: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!have_messages) {
		fprintf(stderr, "sluice-feed: --messages is required\n");
		return -1;
	}
	if (!o->udp && !o->pcap && !o->raw) {
		fprintf(stderr, "sluice-feed: one of --udp, --pcap, --raw is required\n");
		return -1;
	}
	if (!o->udp && o->nalso) {
		fprintf(stderr, "sluice-feed: --also-udp needs --udp (the A line)\n");
		return -1;
	}
	if (!o->udp && o->udp_b) {
		fprintf(stderr, "sluice-feed: --udp-b needs --udp (the A line)\n");
		return -1;
	}
	if (!o->udp_b && o->loss_b > 0) {
		fprintf(stderr, "sluice-feed: --loss-b applies to --udp-b only\n");
		return -1;
	}
	if (!o->udp && (o->loss > 0 || o->dup > 0 || o->reorder > 0)) {
		fprintf(stderr, "sluice-feed: --loss, --dup and --reorder apply to --udp only\n");
		return -1;
	}
	return 0;
}

/* ---- Time ------------------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* When message number n of a session at rate msg/s is due, in ns from the start; exact for
 * any session length (n * 1e9 alone would overflow past 18 billion messages). */
static uint64_t due_ns(uint64_t n, uint64_t rate)
{
	return n / rate * 1000000000ull + n % rate * 1000000000ull / rate;
}

/* ---- UDP sender and rewinder ---------------------------------------------------------------- */

/* splitmix64: the impairment dice, seeded from --seed but apart from the generator's stream. */
static double dice(struct sender *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Line B's dice: a stream of their own, so A's losses stay what they were without B. */
static double dice_b(struct sender *s)
{
	uint64_t z = (s->rng_b += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int store_add(struct store *st, const uint8_t *pkt, size_t len, uint64_t first_seq)
{
	if (st->len + len > st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 1 << 24;
		uint8_t *b;

		while (cap < st->len + len)
			cap *= 2;
		b = realloc(st->buf, cap);
		if (!b)
			return -ENOMEM;
		st->buf = b;
		st->cap = cap;
	}
	if (st->n == st->ncap) {
		size_t ncap = st->ncap ? st->ncap * 2 : 1 << 16;
		uint64_t *fs = realloc(st->first_seq, ncap * sizeof(*fs));
		size_t *off;

		if (!fs)
			return -ENOMEM;
		st->first_seq = fs;
		off = realloc(st->off, ncap * sizeof(*off));
		if (!off)
			return -ENOMEM;
		st->off = off;
		st->ncap = ncap;
	}
	memcpy(st->buf + st->len, pkt, len);
	st->first_seq[st->n] = first_seq;
	st->off[st->n] = st->len;
	st->n++;
	st->len += len;
	return 0;
}

static int send_one(struct sender *s, const void *p, size_t len, const struct sockaddr_in *to)
{
	for (;;) {
		if (sendto(s->fd, p, len, 0, (const struct sockaddr *)to, sizeof(*to)) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == ENOBUFS || errno == EAGAIN) {
			/* The interface queue is full for a moment: wait, never drop. */
			usleep(50);
			continue;
		}
		return -errno;
	}
}

/* Retransmit [seq, seq + count) to the requester, re-packed from the stored packets. */
static int answer(struct sender *s, uint64_t seq, uint64_t count, const struct sockaddr_in *to)
{
	uint8_t *out = s->rbuf;
	size_t lo = 0, hi = s->st.n, pos, len = SL_MOLD_HDR_LEN, end_off;
	uint64_t cur, end = seq + count;
	uint16_t n = 0;
	int err;

	if (end > s->next_seq)
		end = s->next_seq;
	if (seq >= end || s->st.n == 0 || seq < s->st.first_seq[0])
		return 0;
	/* The last packet whose first sequence is <= seq. */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (s->st.first_seq[mid] <= seq)
			lo = mid;
		else
			hi = mid;
	}
	cur = s->st.first_seq[lo];
	pos = s->st.off[lo] + SL_MOLD_HDR_LEN;
	end_off = lo + 1 < s->st.n ? s->st.off[lo + 1] : s->st.len;
	sl__mold_packet_init(out, s->session, seq);
	while (cur < end) {
		uint16_t mlen;

		if (pos >= end_off) {
			/* Next stored packet: skip its header. */
			lo++;
			pos = s->st.off[lo] + SL_MOLD_HDR_LEN;
			end_off = lo + 1 < s->st.n ? s->st.off[lo + 1] : s->st.len;
			continue;
		}
		mlen = sl__be16(s->st.buf + pos);
		if (cur >= seq) {
			if (sl__mold_packet_add(out, s->max_packet, &len, s->st.buf + pos + 2,
						mlen) < 0) {
				err = send_one(s, out, len, to);
				if (err)
					return err;
				s->retrans_packets++;
				sl__mold_packet_init(out, s->session, cur);
				len = SL_MOLD_HDR_LEN;
				n = 0;
				continue; /* the same message opens the next packet */
			}
			n++;
			s->retransmitted++;
		}
		pos += 2u + mlen;
		cur++;
	}
	if (n) {
		err = send_one(s, out, len, to);
		if (err)
			return err;
		s->retrans_packets++;
	}
	return 0;
}

/* Answer every request waiting on the socket; never blocks. */
static int serve_requests(struct sender *s)
{
	uint8_t req[64];
	struct sockaddr_in from;
	socklen_t fl;
	ssize_t n;

	for (;;) {
		char session[SL_MOLD_SESSION_LEN];
		uint64_t seq;
		uint16_t count;
		int err;

		fl = sizeof(from);
		n = recvfrom(s->fd, req, sizeof(req), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED)
				return 0;
			return -errno;
		}
		if (fl != sizeof(from) || from.sin_family != AF_INET ||
		    sl__mold_request_decode(req, (size_t)n, session, &seq, &count) != 0 ||
		    memcmp(session, s->session, SL_MOLD_SESSION_LEN) != 0) {
			s->bad_requests++;
			continue;
		}
		s->requests++;
		err = answer(s, seq, count < REWIND_MAX ? count : REWIND_MAX, &from);
		if (err)
			return err;
	}
}

/* Wait for time t (CLOCK_MONOTONIC), answering requests meanwhile: a paced feed may sleep for
 * long stretches and a requester should not wait for the next packet to be due. */
static int wait_until(struct sender *s, uint64_t t)
{
	for (;;) {
		uint64_t now = now_ns();
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		struct timespec ts;
		int err;

		if (now >= t)
			return 0;
		if (t - now >= 1000000ull) {
			if (poll(&pfd, 1, (int)((t - now) / 1000000ull)) > 0 &&
			    (err = serve_requests(s)))
				return err;
			continue;
		}
		/* Less than a millisecond: poll cannot wait that finely. */
		ts.tv_sec = (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
}

static int send_all(struct sender *s, struct mmsghdr *mh, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		int r = sendmmsg(s->fd, mh + done, n - done, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS || errno == EAGAIN) {
				usleep(50);
				continue;
			}
			return -errno;
		}
		done += (unsigned)r;
	}
	return 0;
}

/* The batch on its lines, then line A's part of it to every --also-udp address. */
static int flush_batch(struct sender *s)
{
	struct mmsghdr mh[BATCH + 2];
	struct iovec iov[BATCH + 2];
	int err;

	memset(mh, 0, sizeof(mh[0]) * s->nbatch);
	for (unsigned i = 0; i < s->nbatch; i++) {
		iov[i].iov_base = s->st.buf + s->batch_off[i];
		iov[i].iov_len = s->batch_len[i];
		mh[i].msg_hdr.msg_iov = &iov[i];
		mh[i].msg_hdr.msg_iovlen = 1;
		mh[i].msg_hdr.msg_name = &s->dst[s->batch_line[i]];
		mh[i].msg_hdr.msg_namelen = sizeof(s->dst[0]);
	}
	if ((err = send_all(s, mh, s->nbatch)))
		return err;
	for (unsigned a = 0; a < s->nalso; a++) {
		unsigned n = 0;
		memset(mh, 0, sizeof(mh[0]) * s->nbatch);
		for (unsigned i = 0; i < s->nbatch; i++) {
			if (s->batch_line[i])
				continue;
			mh[n].msg_hdr.msg_iov = &iov[i];
			mh[n].msg_hdr.msg_iovlen = 1;
			mh[n].msg_hdr.msg_name = &s->also[a];
			mh[n].msg_hdr.msg_namelen = sizeof(s->also[a]);
			n++;
		}
		if ((err = send_all(s, mh, n)))
			return err;
	}
	s->nbatch = 0;
	return serve_requests(s);
}

static int queue_line(struct sender *s, size_t idx, int line)
{
	size_t end = idx + 1 < s->st.n ? s->st.off[idx + 1] : s->st.len;

	s->batch_off[s->nbatch] = s->st.off[idx];
	s->batch_len[s->nbatch] = (uint32_t)(end - s->st.off[idx]);
	s->batch_line[s->nbatch] = (uint8_t)line;
	s->nbatch++;
	return s->nbatch >= BATCH ? flush_batch(s) : 0;
}

static int queue_stored(struct sender *s, size_t idx)
{
	return queue_line(s, idx, 0);
}

/* First transmission of the packet just stored, through the simulated network: on line A
 * (with loss, duplication and reordering) and, with --udp-b, on line B (with its own loss). */
static int transmit(struct sender *s)
{
	size_t idx = s->st.n - 1;
	int err, lost_a = s->loss > 0 && dice(s) < s->loss;

	if (s->has_b) {
		if (s->loss_b > 0 && dice_b(s) < s->loss_b) {
			s->dropped_b++;
			s->dropped_both += (uint64_t)lost_a;
		} else if ((err = queue_line(s, idx, 1))) {
			return err;
		}
	}
	if (lost_a) {
		s->dropped++;
		return 0;
	}
	if (s->reorder > 0 && s->held < 0 && dice(s) < s->reorder) {
		/* Hold it back: it goes out after the next packet. */
		s->held = (long)idx;
		s->reordered++;
		return 0;
	}
	err = queue_stored(s, idx);
	if (!err && s->dup > 0 && dice(s) < s->dup) {
		s->duplicated++;
		err = queue_stored(s, idx);
	}
	if (!err && s->held >= 0 && (size_t)s->held != idx) {
		err = queue_stored(s, (size_t)s->held);
		s->held = -1;
	}
	return err;
}

static int send_control(struct sender *s, uint16_t count)
{
	uint8_t pkt[SL_MOLD_HDR_LEN];

	sl__mold_packet_control(pkt, s->session, s->next_seq, count);
	s->controls++;
	int err = send_one(s, pkt, sizeof(pkt), &s->dst[0]);
	if (!err && s->has_b)
		err = send_one(s, pkt, sizeof(pkt), &s->dst[1]);
	for (unsigned i = 0; i < s->nalso && !err; i++)
		err = send_one(s, pkt, sizeof(pkt), &s->also[i]);
	return err;
}

static int sender_open(struct sender *s, const struct opts *o)
{
	struct sockaddr_in me;
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->held = -1;
	s->fd = -1;
	s->dst[0] = o->dst;
	s->dst[1] = o->dst_b;
	s->has_b = o->udp_b != NULL;
	memcpy(s->also, o->also, sizeof(s->also));
	s->nalso = o->nalso;
	s->loss_b = o->loss_b;
	s->rng_b = o->feed.seed ^ 0xb11eb11eb11eb11eull;
	memcpy(s->session, o->feed.session, SL_MOLD_SESSION_LEN);
	s->max_packet = o->feed.max_packet;
	s->rng = o->feed.seed ^ 0x5eed5eed5eed5eedull;
	s->loss = o->loss;
	s->dup = o->dup;
	s->reorder = o->reorder;
	s->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (s->fd < 0) {
		int err = -errno;

		fprintf(stderr, "sluice-feed: socket: %s\n", strerror(-err));
		return err;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&me, 0, sizeof(me));
	me.sin_family = AF_INET;
	me.sin_addr.s_addr = htonl(INADDR_ANY);
	me.sin_port = htons(o->port);
	if (bind(s->fd, (struct sockaddr *)&me, sizeof(me)) < 0) {
		int err = -errno;

		fprintf(stderr, "sluice-feed: bind to port %u: %s\n", o->port, strerror(-err));
		return err;
	}
	return 0;
}

static void sender_close(struct sender *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->st.buf);
	free(s->st.first_seq);
	free(s->st.off);
}

/* End of session, then keep answering requests, repeating end-of-session every 250 ms so a
 * receiver that lost the tail learns where the session ends. */
static int linger(struct sender *s, uint64_t ms)
{
	uint64_t end = now_ns() + ms * 1000000ull, next_eos;
	int err = send_control(s, SL_MOLD_END_OF_SESSION);

	next_eos = now_ns() + EOS_EVERY_NS;
	while (!err) {
		uint64_t t = now_ns(), until = next_eos < end ? next_eos : end;
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };

		if (t >= end)
			break;
		if (t >= next_eos) {
			err = send_control(s, SL_MOLD_END_OF_SESSION);
			next_eos += EOS_EVERY_NS;
			continue;
		}
		if (poll(&pfd, 1, (int)((until - t + 999999) / 1000000)) > 0)
			err = serve_requests(s);
	}
	return err;
}

/* ---- Main ------------------------------------------------------------------------------------ */

/* The messages of a packet we just built, one by one into the raw file. */
static int write_raw_messages(struct sl_capture_writer *w, const uint8_t *pkt, size_t len)
{
	size_t pos = SL_MOLD_HDR_LEN;

	while (pos + 2 <= len) {
		uint16_t mlen = sl__be16(pkt + pos);
		int err = sl__capture_write(w, pkt + pos + 2, mlen, 0, 0, 0, 0, 0);

		if (err)
			return err;
		pos += 2u + mlen;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t pkt[SL_MOLD_MAX_PACKET];
	struct opts o;
	struct sl_feed *feed = NULL;
	struct sl_capture_writer *pw = NULL, *rw = NULL;
	struct sender *s = NULL;
	uint32_t dst_ip = DEF_DST_IP, src_port;
	uint16_t dst_port = DEF_DST_PORT;
	uint64_t msgs = 0, packets = 0, controls = 0, t0, t_end, next_report, ts = PCAP_BASE_NS;
	double secs;
	int err, len, rc = 1;

	if (parse_opts(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	src_port = o.port ? o.port : DEF_SRC_PORT;

	err = sl__feed_new(&o.feed, &feed);
	if (err) {
		fprintf(stderr, "sluice-feed: %s\n", sl_strerror(err));
		return 1;
	}
	if (o.udp) {
		s = malloc(sizeof(*s));
		if (!s) {
			err = -ENOMEM;
			goto out;
		}
		err = sender_open(s, &o);
		if (err)
			goto out;
		dst_ip = ntohl(s->dst[0].sin_addr.s_addr);
		dst_port = ntohs(s->dst[0].sin_port);
	}
	if (o.pcap) {
		err = sl__capture_writer_open(o.pcap, SL_CAPTURE_PCAP, &pw);
		if (err) {
			fprintf(stderr, "sluice-feed: %s: %s\n", o.pcap, sl_strerror(err));
			goto out;
		}
	}
	if (o.raw) {
		err = sl__capture_writer_open(o.raw, SL_CAPTURE_RAW, &rw);
		if (err) {
			fprintf(stderr, "sluice-feed: %s: %s\n", o.raw, sl_strerror(err));
			goto out;
		}
	}

	t0 = now_ns();
	next_report = t0 + 1000000000ull;
	for (;;) {
		uint64_t first;
		uint16_t count;

		len = sl__feed_next_packet(feed, pkt, sizeof(pkt), &first, &count);
		if (len <= 0) {
			err = len;
			break;
		}
		if (pw) {
			if (o.rate)
				ts = PCAP_BASE_NS + due_ns(msgs, o.rate);
			err = sl__capture_write(pw, pkt, (uint32_t)len, ts, DEF_SRC_IP,
						(uint16_t)src_port, dst_ip, dst_port);
			if (!o.rate)
				ts += 1000;
			if (err)
				break;
		}
		if (rw && (err = write_raw_messages(rw, pkt, (size_t)len)))
			break;
		if (s) {
			if (o.rate) {
				/* Pace: this packet is due when its first message is. */
				uint64_t due = t0 + due_ns(msgs, o.rate);

				if (due > now_ns()) {
					if ((err = flush_batch(s)) || (err = wait_until(s, due)))
						break;
				}
			}
			if ((err = store_add(&s->st, pkt, (size_t)len, first)))
				break;
			s->next_seq = first + count;
			if ((err = transmit(s)))
				break;
		}
		msgs += count;
		packets++;
		if (!o.quiet && (packets & 15) == 0 && now_ns() >= next_report) {
			next_report += 1000000000ull;
			fprintf(stderr,
				"sluice-feed: %" PRIu64 "/%" PRIu64 " messages, %" PRIu64
				" packets, %" PRIu64 " retransmitted\n",
				msgs, o.feed.messages, packets, s ? s->retransmitted : 0);
		}
	}
	if (err) {
		fprintf(stderr, "sluice-feed: %s\n", sl_strerror(err));
		goto out;
	}
	if (pw) {
		/* End of session: a replay of the capture knows the session is complete. */
		uint8_t eos[SL_MOLD_HDR_LEN];

		sl__mold_packet_control(eos, o.feed.session, sl__feed_next_seq(feed),
					SL_MOLD_END_OF_SESSION);
		err = sl__capture_write(pw, eos, sizeof(eos), ts, DEF_SRC_IP, (uint16_t)src_port,
					dst_ip, dst_port);
		controls++;
		if (err) {
			fprintf(stderr, "sluice-feed: %s: %s\n", o.pcap, sl_strerror(err));
			goto out;
		}
	}
	t_end = now_ns();
	if (s) {
		if (s->held >= 0) {
			err = queue_stored(s, (size_t)s->held);
			s->held = -1;
		}
		if (!err)
			err = flush_batch(s);
		t_end = now_ns();
		if (!err) {
			if (!o.quiet)
				fprintf(stderr,
					"sluice-feed: session sent; lingering %" PRIu64
					" ms for re-requests\n",
					o.linger_ms);
			err = linger(s, o.linger_ms);
		}
		if (err) {
			fprintf(stderr, "sluice-feed: udp: %s\n", sl_strerror(err));
			goto out;
		}
	}
	err = sl__capture_writer_close(pw);
	pw = NULL;
	if (err) {
		fprintf(stderr, "sluice-feed: %s: %s\n", o.pcap, sl_strerror(err));
		goto out;
	}
	err = sl__capture_writer_close(rw);
	rw = NULL;
	if (err) {
		fprintf(stderr, "sluice-feed: %s: %s\n", o.raw, sl_strerror(err));
		goto out;
	}
	/* Elapsed and rate cover generating and sending, not the linger. */
	secs = (double)(t_end - t0) / 1e9;
	rc = 0;
	/* The summary goes to stdout (one key=value line) so scripts can read it apart from the
	 * progress lines. */
	printf("sluice-feed: messages=%" PRIu64 " packets=%" PRIu64 " end_of_session=%" PRIu64
	       " retransmitted=%" PRIu64 " requests=%" PRIu64 " dropped=%" PRIu64
	       " duplicated=%" PRIu64 " reordered=%" PRIu64 " elapsed=%.3fs rate=%.0f msg/s",
	       msgs, packets, controls + (s ? s->controls : 0), s ? s->retransmitted : 0,
	       s ? s->requests : 0, s ? s->dropped : 0, s ? s->duplicated : 0, s ? s->reordered : 0,
	       secs, secs > 0 ? (double)msgs / secs : 0.0);
	if (s && s->has_b)
		printf(" dropped_b=%" PRIu64 " dropped_both=%" PRIu64, s->dropped_b,
		       s->dropped_both);
	printf("\n");
out:
	sl__capture_writer_close(pw);
	sl__capture_writer_close(rw);
	if (s) {
		sender_close(s);
		free(s);
	}
	sl__feed_free(feed);
	return rc;
}
