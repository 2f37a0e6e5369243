// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* sluice.bpf.c - the XDP program of the AF_XDP front end: parse Ethernet (up to two VLAN tags),
 * IPv4 (options; fragments passed) or IPv6, and UDP, every access bounds-checked; a datagram to
 * a line in the feed map with a sane MoldUDP64 header is trimmed to its MoldUDP64 payload and
 * redirected to the AF_XDP socket of its rx queue, unless A/B arbitration finds every message
 * in it already delivered (then it is dropped here and the host never sees it). Everything else
 * is XDP_PASS: ping, ssh and TCP keep working. Knows nothing of the host beyond sluice_xdp.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_xdp.h"

#define ETH_P_8021Q_BE bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88A8)
#define CAS_TRIES 8

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, SL_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SL_XDP_MAX_FEEDS);
	__type(key, struct sl_xdp_feed_key);
	__type(value, __u32);
} feeds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SL_XDP_MAX_SESSIONS);
	__type(key, struct sl_xdp_arb_key);
	__type(value, struct sl_xdp_arb);
} arb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_XDP_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no other CPU writes it */
}

static __always_inline int pass(void)
{
	count(SL_XDP_PASSED);
	return XDP_PASS;
}

static __always_inline int pass_why(__u32 why)
{
	count(why);
	return pass();
}

/* A/B arbitration: 1 when every message of [seq, seq + n) was already delivered. Otherwise
 * advance the session's next sequence over this packet when it continues what was delivered.
 * Any doubt (map full, contention) steers: a duplicate the host drops costs a little, a packet
 * dropped here that carried something new would cost a re-request. */
static __always_inline int duplicate(__u32 feed, const __u8 *session, __u64 seq, __u64 n)
{
	struct sl_xdp_arb_key k = { .feed = feed };
	struct sl_xdp_arb *a;
	__u64 end = seq + n;

	__builtin_memcpy(k.session, session, sizeof(k.session));
	a = bpf_map_lookup_elem(&arb, &k);
	if (!a) {
		/* A new session: nothing is known delivered (next = 1). */
		struct sl_xdp_arb init = { .next = 1 };

		bpf_map_update_elem(&arb, &k, &init, BPF_NOEXIST);
		a = bpf_map_lookup_elem(&arb, &k);
		if (!a)
			return 0;
	}
	for (int i = 0; i < CAS_TRIES; i++) {
		__u64 cur = *(volatile __u64 *)&a->next;

		if (end <= cur)
			return 1;
		if (seq > cur)
			return 0; /* a gap before this packet: steer it, next stays */
		if (__sync_val_compare_and_swap(&a->next, cur, end) == cur)
			return 0;
	}
	return 0;
}

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct sl_xdp_feed_key key = {};
	struct ethhdr *eth = data;
	struct udphdr *udp;
	void *p, *l4_end;
	__u16 proto;
	__u32 *feed, q;

	count(SL_XDP_SEEN);
	if ((void *)(eth + 1) > end)
		return pass_why(SL_XDP_MALFORMED);
	proto = eth->h_proto;
	p = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *v = p;

		if (proto != ETH_P_8021Q_BE && proto != ETH_P_8021AD_BE)
			break;
		if ((void *)(v + 1) > end)
			return pass_why(SL_XDP_MALFORMED);
		proto = v->proto;
		p = v + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = p;
		__u32 hl, tot;

		if ((void *)(ip + 1) > end)
			return pass_why(SL_XDP_MALFORMED);
		hl = ip->ihl * 4;
		tot = bpf_ntohs(ip->tot_len);
		if (ip->version != 4 || hl < sizeof(*ip) || tot < hl || p + tot > end)
			return pass_why(SL_XDP_MALFORMED);
		if (ip->protocol != IPPROTO_UDP)
			return pass();
		/* More fragments, or an offset: a fragment carries no whole datagram. */
		if (ip->frag_off & bpf_htons(0x3fff))
			return pass_why(SL_XDP_FRAGMENTS);
		udp = p + hl;
		l4_end = p + tot;
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip->daddr, 4);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = p;

		if ((void *)(ip6 + 1) > end)
			return pass_why(SL_XDP_MALFORMED);
		l4_end = (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len);
		if (ip6->version != 6 || l4_end > end)
			return pass_why(SL_XDP_MALFORMED);
		/* Extension headers are not followed: such a packet is not a feed's. */
		if (ip6->nexthdr != IPPROTO_UDP)
			return pass();
		udp = (void *)(ip6 + 1);
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
	} else {
		return pass();
	}
	if ((void *)(udp + 1) > end || (void *)(udp + 1) > l4_end)
		return pass_why(SL_XDP_MALFORMED);
	if ((void *)udp + bpf_ntohs(udp->len) != l4_end)
		return pass_why(SL_XDP_MALFORMED);
	key.port = udp->dest;
	feed = bpf_map_lookup_elem(&feeds, &key);
	if (!feed) {
		__builtin_memset(key.addr, 0, sizeof(key.addr));
		feed = bpf_map_lookup_elem(&feeds, &key);
		if (!feed)
			return pass();
	}

	/* A feed's datagram: its MoldUDP64 header must be sane before it goes anywhere. */
	__u8 *mold = (void *)(udp + 1);
	__u32 plen = bpf_ntohs(udp->len) - sizeof(*udp);
	__u64 seq;
	__u16 n;

	if ((void *)(mold + SL_XDP_MOLD_HDR) > end || plen < SL_XDP_MOLD_HDR)
		return pass_why(SL_XDP_MALFORMED);
	__builtin_memcpy(&seq, mold + 10, 8);
	__builtin_memcpy(&n, mold + 18, 2);
	seq = bpf_be64_to_cpu(seq);
	n = bpf_ntohs(n);
	if (n != SL_XDP_MOLD_HEARTBEAT && n != SL_XDP_MOLD_END) {
		/* Each message has at least its 2-byte length; sequences start at 1. */
		if (plen < SL_XDP_MOLD_HDR + 2 * (__u32)n || seq == 0 || seq + n < seq)
			return pass_why(SL_XDP_MALFORMED);
	}
	q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &q))
		return pass_why(SL_XDP_NO_SOCKET);
	if (n != SL_XDP_MOLD_HEARTBEAT && n != SL_XDP_MOLD_END && duplicate(*feed, mold, seq, n)) {
		count(SL_XDP_DUPLICATES);
		return XDP_DROP;
	}
	/* The socket gets the MoldUDP64 packet alone: headers off the front, padding off the end. */
	__u32 off = (__u32)((void *)mold - data);
	__u32 len = (__u32)(end - data);

	if (off + plen < len && bpf_xdp_adjust_tail(ctx, (int)(off + plen) - (int)len))
		return pass_why(SL_XDP_MALFORMED);
	if (bpf_xdp_adjust_head(ctx, (int)off))
		return pass_why(SL_XDP_MALFORMED);
	count(SL_XDP_STEERED);
	return bpf_redirect_map(&xsks, q, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
