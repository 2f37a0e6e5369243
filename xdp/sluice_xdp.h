/* sluice_xdp.h - what the XDP program (xdp/sluice.bpf.c) and its loader (host/src/xsk.c) share:
 * map keys and values and the counter indexes. Only fixed-width kernel types (<linux/types.h>)
 * so the same bytes mean the same thing to clang -target bpf and to the host compiler.
 */
#ifndef SLUICE_XDP_H
#define SLUICE_XDP_H

#include <linux/types.h>

#define SL_XDP_MAX_FEEDS 64     /* (address, port) lines in the feed map */
#define SL_XDP_MAX_QUEUES 64    /* XSKMAP slots: one AF_XDP socket per rx queue */
#define SL_XDP_MAX_SESSIONS 256 /* (feed, MoldUDP64 session) pairs arbitrated at once */

/* MoldUDP64 downstream header: session (10), sequence (u64 BE), message count (u16 BE). */
#define SL_XDP_MOLD_HDR 20
#define SL_XDP_MOLD_HEARTBEAT 0
#define SL_XDP_MOLD_END 0xFFFF

/* Feed map key: a line's destination. addr is the IPv6 address, or for IPv4 the IPv4-mapped
 * form ::ffff:a.b.c.d; port in network byte order. An all-zero addr matches any address on that
 * port (looked up after the exact key). Value: the feed id (>= 1); the A and B lines of one
 * feed carry the same id, which is what makes them one stream for arbitration. */
struct sl_xdp_feed_key {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/* Arbitration map key: one MoldUDP64 session of one feed. */
struct sl_xdp_arb_key {
	__u32 feed;
	char session[10];
	__u16 pad;
};

/* Arbitration state: next is the lowest sequence not known to be delivered; every sequence
 * below it was steered to a socket (by either line) or delivered by the host (which writes its
 * own next sequence here when it is higher). A data packet whose messages all lie below next is
 * a duplicate and is dropped; anything else is steered. The program advances next only with a
 * compare-and-swap from a value at or above the packet's first sequence, so it never skips a
 * sequence nobody delivered. */
struct sl_xdp_arb {
	__u64 next;
};

/* Per-CPU counters (one array slot each). seen = steered + passed + duplicates; malformed and
 * no_socket are passed packets counted again for why. */
enum sl_xdp_counter {
	SL_XDP_SEEN = 0,      /* every frame the program ran on */
	SL_XDP_STEERED,       /* redirected to the queue's AF_XDP socket */
	SL_XDP_PASSED,        /* XDP_PASS: not ours, or not sane */
	SL_XDP_MALFORMED,     /* a header contradicting itself or the frame (also passed) */
	SL_XDP_DUPLICATES,    /* every message already delivered: dropped (A/B arbitration) */
	SL_XDP_NO_SOCKET,     /* a feed packet on a queue without a socket (also passed) */
	SL_XDP_FRAGMENTS,     /* IPv4 fragments (also passed) */
	SL_XDP_COUNTERS
};

#endif /* SLUICE_XDP_H */
