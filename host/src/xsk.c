/* xsk.c - the AF_XDP front end: loads xdp/sluice.bpf.c through its libbpf skeleton, fills the
 * feed map, opens one libxdp AF_XDP socket (with its own UMEM) per rx queue, attaches the
 * program with a BPF link and hands the MoldUDP64 packets the program steers to the engine
 * straight from the UMEM frames. A front end like udp.c: it feeds db through the public API
 * (sl_db_append_packets, sl_db_tick, sl_db_stats) and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include "sluice.h"
#include "sluice.skel.h"
#include "xsk.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define XSK_BATCH 64
#define XDP_HEADROOM 256          /* XDP_PACKET_HEADROOM: the kernel's, before every frame */
#define FEED_ID 1                 /* one feed per front end: all its lines arbitrate as one */
#define PUBLISH_NS 1000000ull     /* tell the program the host's next sequence every 1 ms */
#define SPIN_NS 1000000ull        /* busy poll: spin this long without traffic, then poll() */

/* One AF_XDP socket and the UMEM only it uses. Touched by the writer thread only. */
struct xsk_q {
	struct xsk_socket *xsk;
	struct xsk_umem *umem;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;  /* unused: we never transmit; the UMEM API wants one */
	void *area;
	size_t area_len;
	int fd;
};

struct sl_xsk {
	struct sluice_xdp *skel;
	int link_fd;
	int ifindex;
	uint32_t nq, frame, ring;
	int busy_poll, zero_copy, mode;
	struct xsk_q q[SL_XDP_MAX_QUEUES];
	struct sl_packet pkts[XSK_BATCH];
	uint64_t addrs[XSK_BATCH];
	uint64_t packets, bytes, batches, wakeups;
	uint64_t last_tick_ns, last_publish_ns, published;
	char published_session[10];
};

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	if (!why || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* ---- Configuration ------------------------------------------------------------------------ */

SL_API void sl_xsk_config_init(struct sl_xsk_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = SL_XSK_CONFIG_VERSION;
	c->queues = 1;
	c->ring_size = 2048;
}

static int parse_line(const char *s, size_t n, struct sl_xdp_feed_key *k)
{
	char host[64], port[8];
	const char *colon;
	memset(k, 0, sizeof(*k));
	if (n == 0)
		return SL_ECONFIG;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close || close + 1 >= s + n || close[1] != ':')
			return SL_ECONFIG;
		colon = close + 1;
		if ((size_t)(close - s - 1) >= sizeof(host))
			return SL_ECONFIG;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = 0;
	} else {
		colon = NULL;
		for (const char *p = s; p < s + n; p++)
			if (*p == ':')
				colon = p;
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return SL_ECONFIG;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
	}
	size_t plen = (size_t)(s + n - colon - 1);
	if (plen == 0 || plen >= sizeof(port))
		return SL_ECONFIG;
	memcpy(port, colon + 1, plen);
	port[plen] = 0;
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	if (*end || port[0] == '-' || p == 0 || p > 65535)
		return SL_ECONFIG;
	k->port = htons((uint16_t)p);
	if (!host[0] || !strcmp(host, "*"))
		return 0; /* any address */
	struct in_addr a4;
	if (s[0] != '[' && inet_pton(AF_INET, host, &a4) == 1) {
		k->addr[10] = k->addr[11] = 0xff;
		memcpy(&k->addr[12], &a4, 4);
		return 0;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, k->addr) == 1)
		return 0;
	return SL_ECONFIG;
}

int sl__xsk_parse_feed(const char *spec, struct sl_xdp_feed_key *keys, int max, char *bad,
		       size_t cap)
{
	int n = 0;
	if (!spec)
		spec = "";
	const char *s = spec;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		if (n == max || parse_line(s, len, &keys[n]) < 0) {
			if (bad && cap)
				snprintf(bad, cap, "%.*s", (int)len, s);
			return SL_ECONFIG;
		}
		n++;
		if (!comma)
			return n;
		s = comma + 1;
	}
}

uint32_t sl__xsk_frame_size(uint32_t mtu)
{
	/* The kernel puts a frame at XDP_HEADROOM into its chunk: Ethernet header, two VLAN tags,
	 * the MTU's worth of IP packet. */
	uint64_t need = (uint64_t)XDP_HEADROOM + 14 + 8 + mtu;
	if (need <= 2048)
		return 2048;
	if (need <= 4096)
		return 4096;
	return 0;
}

/* ---- Open ---------------------------------------------------------------------------------- */

/* libbpf's own messages while loading: only with SLUICE_LIBBPF_DEBUG set (the verifier's log
 * among them); otherwise the one line in why says what failed. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || !getenv("SLUICE_LIBBPF_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int if_mtu(const char *ifname, uint32_t *mtu)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	int r = ioctl(fd, SIOCGIFMTU, &ifr) < 0 ? -errno : 0;
	close(fd);
	if (!r)
		*mtu = (uint32_t)ifr.ifr_mtu;
	return r;
}

/* The kernel frees a closed AF_XDP socket's hold on its queue from a work queue: a restart
 * right after a crash (or a quick close and reopen) can find the queue busy for a moment. */
static int create_socket(struct xsk_q *q, const char *ifname, uint32_t qi,
			 const struct xsk_socket_config *sc)
{
	int r = 0;
	for (int i = 0; i < 40; i++) {
		r = xsk_socket__create(&q->xsk, ifname, qi, q->umem, &q->rx, NULL, sc);
		if (r != -EBUSY)
			return r;
		usleep(50000);
	}
	return r;
}

static int open_queue(struct sl_xsk *x, const struct sl_xsk_config *c, uint32_t qi, char *why,
		      size_t cap)
{
	struct xsk_q *q = &x->q[qi];
	/* Two rx rings' worth of frames, all on a fill ring that holds them all: with the rx ring
	 * full, the kernel still has a full ring's worth of frames to fill. */
	uint32_t nframes = 2 * x->ring;
	q->area_len = (size_t)nframes * x->frame;
	q->area = mmap(NULL, q->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		say(why, cap, "UMEM of %zu bytes: %s", q->area_len, strerror(errno));
		return -ENOMEM;
	}
	struct xsk_umem_config uc = {
		.fill_size = nframes,
		.comp_size = 64,
		.frame_size = x->frame,
		.frame_headroom = 0,
	};
	int r = xsk_umem__create(&q->umem, q->area, q->area_len, &q->fill, &q->comp, &uc);
	if (r) {
		say(why, cap, "AF_XDP UMEM (%u frames of %u bytes): %s", nframes, x->frame,
		    strerror(-r));
		return r;
	}
	/* libxdp must not load its own program (its dispatcher cannot load here): ours feeds the
	 * socket through our XSKMAP. */
	struct xsk_socket_config sc = {
		.rx_size = x->ring,
		.tx_size = 0,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = c->mode == SL_XSK_MODE_GENERIC ? XDP_FLAGS_SKB_MODE :
							      XDP_FLAGS_DRV_MODE,
	};
	r = -EOPNOTSUPP;
	if (c->zero_copy != SL_XSK_ZC_OFF && c->mode != SL_XSK_MODE_GENERIC) {
		sc.bind_flags = XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY;
		r = create_socket(q, c->ifname, qi, &sc);
		if (!r)
			x->zero_copy = 1;
	}
	if (r && c->zero_copy == SL_XSK_ZC_ON) {
		say(why, cap, "zero-copy AF_XDP on %s queue %u: %s (try --zero-copy auto)",
		    c->ifname, qi, strerror(-r));
		return r;
	}
	if (r) {
		/* Copy mode: the fallback where the driver has no zero-copy (veth, most NICs in
		 * generic mode). */
		x->zero_copy = 0;
		sc.bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY;
		r = create_socket(q, c->ifname, qi, &sc);
	}
	if (r) {
		say(why, cap, "AF_XDP socket on %s queue %u: %s%s", c->ifname, qi, strerror(-r),
		    r == -EINVAL ? " (does the interface have that many rx queues?)" : "");
		return r;
	}
	q->fd = xsk_socket__fd(q->xsk);
	/* Every frame not on the rx ring or in our hands waits on the fill ring, which has room for
	 * all of them: giving frames back never waits. */
	uint32_t idx;
	if (xsk_ring_prod__reserve(&q->fill, nframes, &idx) != nframes) {
		say(why, cap, "AF_XDP fill ring: cannot reserve %u entries", nframes);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < nframes; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = (uint64_t)i * x->frame;
	xsk_ring_prod__submit(&q->fill, nframes);
	if (c->busy_poll) {
		int one = 1, usecs = 20, budget = XSK_BATCH;
		if (setsockopt(q->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) < 0 ||
		    setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs)) < 0 ||
		    setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)) <
			    0) {
			r = -errno;
			say(why, cap, "busy polling on the AF_XDP socket: %s", strerror(-r));
			return r;
		}
	}
	int fd = q->fd;
	r = bpf_map_update_elem(bpf_map__fd(x->skel->maps.xsks), &qi, &fd, BPF_ANY);
	if (r) {
		r = -errno;
		say(why, cap, "adding the socket of queue %u to the XSKMAP: %s", qi, strerror(-r));
		return r;
	}
	return 0;
}

/* A program of ours attached the old way (netlink, no link) outlives the process that attached
 * it, e.g. a sluiced that crashed under an older release or `ip link set ... xdp`: replace it.
 * Anything else attached is someone else's: leave it and fail. Both modes are looked at: the
 * kernel allows one of them at a time. */
static int clear_stale_mode(struct sl_xsk *x, const struct sl_xsk_config *c, uint32_t mode_flag,
			    char *why, size_t cap)
{
	uint32_t id = 0;
	int r = bpf_xdp_query_id(x->ifindex, (int)mode_flag, &id);
	if (r || !id)
		return 0;
	int fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0) {
		say(why, cap, "%s has XDP program id %u attached, which cannot be inspected: %s",
		    c->ifname, id, strerror(errno));
		return -EBUSY;
	}
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);
	memset(&info, 0, sizeof(info));
	r = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (r || strcmp(info.name, "sluice_xdp")) {
		say(why, cap, "%s already has another XDP program attached (id %u, \"%s\"); not "
		    "replacing it", c->ifname, id, r ? "?" : info.name);
		close(fd);
		return -EBUSY;
	}
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = fd);
	r = bpf_xdp_detach(x->ifindex, mode_flag, &ao);
	close(fd);
	if (r == -EBUSY) {
		/* Held by a link: its process is alive (a dead one's link is gone). */
		say(why, cap, "%s is taken: a running sluiced holds its XDP program (id %u) "
		    "through a BPF link", c->ifname, id);
		return r;
	}
	if (r) {
		say(why, cap, "detaching the stale sluice_xdp program (id %u) from %s: %s", id,
		    c->ifname, strerror(-r));
		return r;
	}
	fprintf(stderr, "sluice: xsk: replaced a stale sluice_xdp program (id %u) on %s\n", id,
		c->ifname);
	return 0;
}

static int clear_stale(struct sl_xsk *x, const struct sl_xsk_config *c, char *why, size_t cap)
{
	int r = clear_stale_mode(x, c, XDP_FLAGS_DRV_MODE, why, cap);
	return r ? r : clear_stale_mode(x, c, XDP_FLAGS_SKB_MODE, why, cap);
}

SL_API int sl_xsk_open(const struct sl_xsk_config *c, struct sl_xsk **out, char *why, size_t cap)
{
	struct sl_xdp_feed_key keys[SL_XDP_MAX_FEEDS];
	char bad[128];
	int r, nkeys;
	say(why, cap, "ok");
	if (!c || c->version != SL_XSK_CONFIG_VERSION) {
		say(why, cap, "struct sl_xsk_config version %u unknown", c ? c->version : 0);
		return SL_EVERSION;
	}
	if (!c->ifname || !c->ifname[0]) {
		say(why, cap, "no interface given");
		return SL_ECONFIG;
	}
	nkeys = sl__xsk_parse_feed(c->feed, keys, SL_XDP_MAX_FEEDS, bad, sizeof(bad));
	if (nkeys < 0) {
		say(why, cap, "bad feed line '%s' (want ADDR:PORT, [ADDR6]:PORT or *:PORT, comma "
		    "separated, at most %d)", bad, SL_XDP_MAX_FEEDS);
		return nkeys;
	}
	uint32_t nq = c->queues ? c->queues : 1, ring = c->ring_size ? c->ring_size : 2048;
	if (nq > SL_XDP_MAX_QUEUES || (ring & (ring - 1)) || ring < 64 || ring > 32768 ||
	    c->mode > SL_XSK_MODE_GENERIC || c->zero_copy > SL_XSK_ZC_OFF) {
		say(why, cap, "bad value: queues 1..%d, ring size a power of 2 in 64..32768, mode "
		    "native|generic, zero-copy auto|on|off", SL_XDP_MAX_QUEUES);
		return SL_ECONFIG;
	}
	if (c->zero_copy == SL_XSK_ZC_ON && c->mode == SL_XSK_MODE_GENERIC) {
		say(why, cap, "zero-copy needs native mode (--xdp-mode native)");
		return SL_ECONFIG;
	}
	int ifindex = (int)if_nametoindex(c->ifname);
	if (!ifindex) {
		say(why, cap, "no network interface '%s'", c->ifname);
		return -ENODEV;
	}
	struct sl_xsk *x = calloc(1, sizeof(*x));
	if (!x) {
		say(why, cap, "out of memory");
		return -ENOMEM;
	}
	x->ifindex = ifindex;
	x->link_fd = -1;
	x->nq = nq;
	x->ring = ring;
	x->mode = (int)c->mode;
	x->busy_poll = c->busy_poll ? 1 : 0;
	for (uint32_t i = 0; i < SL_XDP_MAX_QUEUES; i++)
		x->q[i].fd = -1;

	/* Skeleton: open -> load -> maps -> sockets -> attach. */
	libbpf_print_fn_t old_print = libbpf_set_print(libbpf_print);
	x->skel = sluice_xdp__open();
	if (!x->skel) {
		r = -errno;
		libbpf_set_print(old_print);
		say(why, cap, "opening the XDP program: %s", strerror(-r));
		goto out_free;
	}
	r = sluice_xdp__load(x->skel);
	libbpf_set_print(old_print);
	if (r) {
		if (r == -EPERM || r == -EACCES)
			say(why, cap, "loading the XDP program: permission denied: %s", geteuid() ?
			    "not root (needs root, or CAP_BPF + CAP_NET_ADMIN)" :
			    "the kernel refused BPF to root (lockdown? unprivileged BPF off?)");
		else if (r == -ENOSYS)
			say(why, cap, "loading the XDP program: this kernel has no BPF syscall");
		else
			say(why, cap, "loading the XDP program: %s (SLUICE_LIBBPF_DEBUG=1 shows "
			    "libbpf's and the verifier's log)", strerror(-r));
		goto out_destroy;
	}
	uint32_t mtu = 0;
	if ((r = if_mtu(c->ifname, &mtu)) < 0) {
		say(why, cap, "reading the MTU of %s: %s", c->ifname, strerror(-r));
		goto out_destroy;
	}
	x->frame = sl__xsk_frame_size(mtu);
	if (!x->frame) {
		say(why, cap, "MTU %u of %s is too large for one 4 KiB AF_XDP frame (the program "
		    "is not built for multi-buffer frames)", mtu, c->ifname);
		r = -EMSGSIZE;
		goto out_destroy;
	}
	for (int i = 0; i < nkeys; i++) {
		uint32_t id = FEED_ID;
		if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.feeds), &keys[i], &id,
					BPF_ANY)) {
			r = -errno;
			say(why, cap, "filling the feed map: %s", strerror(-r));
			goto out_destroy;
		}
	}
	/* Whoever holds the interface now, before binding sockets to its queues (a live owner's
	 * sockets would make ours fail with a less telling EBUSY). */
	r = clear_stale(x, c, why, cap);
	if (r)
		goto out_destroy;
	for (uint32_t qi = 0; qi < nq; qi++) {
		r = open_queue(x, c, qi, why, cap);
		if (r)
			goto out_sockets;
	}
	uint32_t mode_flag = c->mode == SL_XSK_MODE_GENERIC ? XDP_FLAGS_SKB_MODE :
							      XDP_FLAGS_DRV_MODE;
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = mode_flag);
	int lfd = bpf_link_create(bpf_program__fd(x->skel->progs.sluice_xdp), ifindex, BPF_XDP,
				  &lo);
	if (lfd < 0) {
		r = lfd;
		if (r == -EBUSY || r == -EEXIST)
			say(why, cap, "%s already has an XDP program attached through a link (another "
			    "sluiced on it?)", c->ifname);
		else if (r == -EOPNOTSUPP || r == -EINVAL)
			say(why, cap, "attaching XDP to %s in %s mode: %s%s", c->ifname,
			    c->mode == SL_XSK_MODE_GENERIC ? "generic" : "native", strerror(-r),
			    c->mode == SL_XSK_MODE_GENERIC ? "" : " (try --xdp-mode generic)");
		else
			say(why, cap, "attaching XDP to %s: %s", c->ifname, strerror(-r));
		goto out_sockets;
	}
	/* The link lives as long as this fd: closing it (or the process dying) detaches. */
	x->link_fd = lfd;
	*out = x;
	return 0;
out_sockets:
	for (uint32_t qi = 0; qi < nq; qi++) {
		xsk_socket__delete(x->q[qi].xsk);
		xsk_umem__delete(x->q[qi].umem);
		if (x->q[qi].area)
			munmap(x->q[qi].area, x->q[qi].area_len);
	}
out_destroy:
	sluice_xdp__destroy(x->skel);
out_free:
	free(x);
	return r;
}

/* ---- Receive ------------------------------------------------------------------------------- */

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Everything waiting on one socket's rx ring, in batches: the packets go to the engine straight
 * from their UMEM frames (the log copies what it keeps; the tracker copies what it holds back),
 * then the frames go back to the fill ring. */
static int rx_queue(struct sl_xsk *x, struct xsk_q *q, struct sl_db *db, int *got)
{
	for (;;) {
		uint32_t idx, fidx;
		uint32_t n = xsk_ring_cons__peek(&q->rx, XSK_BATCH, &idx);
		if (!n)
			return 0;
		uint64_t now = realtime_ns();
		for (uint32_t i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
			x->addrs[i] = d->addr;
			x->pkts[i] = (struct sl_packet){
				.data = xsk_umem__get_data(q->area, d->addr), .len = d->len, .rx_ns = now
			};
			x->bytes += d->len;
		}
		int r = db ? sl_db_append_packets(db, x->pkts, n) : 0;
		xsk_ring_cons__release(&q->rx, n);
		/* The fill ring has room for every frame of the UMEM: this never comes up short. */
		while (xsk_ring_prod__reserve(&q->fill, n, &fidx) != n)
			;
		for (uint32_t i = 0; i < n; i++)
			*xsk_ring_prod__fill_addr(&q->fill, fidx + i) =
				x->addrs[i] & ~(uint64_t)(x->frame - 1);
		xsk_ring_prod__submit(&q->fill, n);
		if (xsk_ring_prod__needs_wakeup(&q->fill)) {
			x->wakeups++;
			recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		x->packets += n;
		x->batches++;
		*got += (int)n;
		if (r < 0)
			return r;
	}
}

static int rx_all(struct sl_xsk *x, struct sl_db *db, int *got)
{
	for (uint32_t i = 0; i < x->nq; i++) {
		int r = rx_queue(x, &x->q[i], db, got);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Tell the program how far the host has delivered the session (everything below last_seq + 1
 * is in the log or given up as a gap), so arbitration catches up after a gap that the rewinder
 * filled or after a restart. The session is learned once from the engine's stats (the tracker
 * keeps the first session it sees); then one atomic load and, when the host has moved on, a map
 * lookup and update. Only ever raises the program's value; a race with the program at worst
 * lowers it, which lets a few more duplicates through to the host. */
static void publish(struct sl_xsk *x, struct sl_db *db)
{
	struct sl_xdp_arb_key k = { .feed = FEED_ID };
	if (!x->published_session[0]) {
		struct sl_stats s;
		if (sl_db_stats(db, &s) < 0 || !s.session[0])
			return;
		memcpy(x->published_session, s.session, sizeof(k.session));
	}
	uint64_t next = sl_db_last_seq(db) + 1;
	if (next <= x->published)
		return;
	memcpy(k.session, x->published_session, sizeof(k.session));
	struct sl_xdp_arb a = { .next = 0 };
	int fd = bpf_map__fd(x->skel->maps.arb);
	x->published = next;
	if (bpf_map_lookup_elem(fd, &k, &a) == 0 && a.next >= next)
		return;
	a.next = next;
	bpf_map_update_elem(fd, &k, &a, BPF_ANY);
}

SL_API int sl_xsk_pump(struct sl_xsk *x, struct sl_db *db, int timeout_ms)
{
	int got = 0, r = rx_all(x, db, &got);
	if (r < 0)
		return r;
	if (!got && x->busy_poll) {
		/* Busy polling: each empty receive runs the queue's NAPI in this thread. */
		uint64_t t0 = realtime_ns();
		while (!got && realtime_ns() - t0 < SPIN_NS) {
			for (uint32_t i = 0; i < x->nq; i++)
				recvfrom(x->q[i].fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
			if ((r = rx_all(x, db, &got)) < 0)
				return r;
		}
	}
	int rr_fd = db ? sl_db_poll_fd(db) : -1, rr_ready = 0;
	if (!got && timeout_ms != 0) {
		struct pollfd pfd[SL_XDP_MAX_QUEUES + 1];
		for (uint32_t i = 0; i < x->nq; i++)
			pfd[i] = (struct pollfd){ .fd = x->q[i].fd, .events = POLLIN };
		nfds_t n = x->nq;
		if (rr_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = rr_fd, .events = POLLIN };
		int pr = poll(pfd, n, timeout_ms);
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr > 0 && rr_fd >= 0 && (pfd[x->nq].revents & POLLIN))
			rr_ready = 1;
		if ((r = rx_all(x, db, &got)) < 0)
			return r;
	}
	if (!db)
		return got; /* the front end alone (benchmarks): nothing to tick or publish */
	/* Timers and rewinder replies: when idle, when replies wait, and every 5 ms anyway. */
	uint64_t now = realtime_ns();
	if (got == 0 || rr_ready || now - x->last_tick_ns > 5000000) {
		x->last_tick_ns = now;
		if ((r = sl_db_tick(db)) < 0)
			return r;
	}
	if (now - x->last_publish_ns > PUBLISH_NS) {
		x->last_publish_ns = now;
		publish(x, db);
	}
	return got;
}

/* ---- Stats and close ----------------------------------------------------------------------- */

SL_API void sl_xsk_get_stats(const struct sl_xsk *x, struct sl_xsk_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->packets = x->packets;
	out->bytes = x->bytes;
	out->batches = x->batches;
	out->wakeups = x->wakeups;
	out->queues = x->nq;
	out->zero_copy = (uint32_t)x->zero_copy;
	out->mode = (uint32_t)x->mode;
	out->frame_size = x->frame;
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*v)) : NULL;
	uint64_t sum[SL_XDP_COUNTERS] = { 0 };
	for (uint32_t k = 0; v && k < SL_XDP_COUNTERS; k++) {
		if (bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.counters), &k, v))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum[k] += v[c];
	}
	free(v);
	out->xdp_seen = sum[SL_XDP_SEEN];
	out->xdp_steered = sum[SL_XDP_STEERED];
	out->xdp_passed = sum[SL_XDP_PASSED];
	out->xdp_malformed = sum[SL_XDP_MALFORMED];
	out->xdp_duplicates = sum[SL_XDP_DUPLICATES];
	out->xdp_no_socket = sum[SL_XDP_NO_SOCKET];
	out->xdp_fragments = sum[SL_XDP_FRAGMENTS];
	for (uint32_t i = 0; i < x->nq; i++) {
		struct xdp_statistics st;
		socklen_t len = sizeof(st);
		if (getsockopt(x->q[i].fd, SOL_XDP, XDP_STATISTICS, &st, &len) < 0)
			continue;
		out->rx_dropped += st.rx_dropped;
		out->rx_invalid_descs += st.rx_invalid_descs;
		out->rx_ring_full += st.rx_ring_full;
		out->rx_fill_ring_empty += st.rx_fill_ring_empty_descs;
	}
}

SL_API void sl_xsk_close(struct sl_xsk *x)
{
	if (!x)
		return;
	/* Detach first, so no frame is steered to a socket that is going away. */
	if (x->link_fd >= 0)
		close(x->link_fd);
	for (uint32_t i = 0; i < x->nq; i++) {
		xsk_socket__delete(x->q[i].xsk);
		xsk_umem__delete(x->q[i].umem);
		if (x->q[i].area)
			munmap(x->q[i].area, x->q[i].area_len);
	}
	sluice_xdp__destroy(x->skel);
	free(x);
}
