// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* feedgen.bpf.c - the benchmark's traffic generator (bench/bench_xdp.c), not part of the
 * appliance: run with BPF_PROG_TEST_RUN in live-frame mode on one template frame (Ethernet,
 * IPv4 without options, UDP, one MoldUDP64 packet), it stamps each copy with the next MoldUDP64
 * sequence (and, for an A/B feed, sends every packet twice: to port A, then port B) and
 * redirects it out of a veth, so the appliance's end receives frames at a rate no socket-based
 * sender reaches. Flow control happens here too: the receiver writes how far its log has got
 * into `appended` (a global in a memory-mapped map); while the next packet would run more than
 * window_msgs ahead of it, a run does nothing (XDP_DROP of the unstamped copy) and no sequence
 * is used, so one long BPF_PROG_TEST_RUN call keeps the receiver fed without losing a packet.
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define UDP_DPORT_OFF 36 /* 14 Ethernet + 20 IPv4 + 2 */
#define MOLD_OFF 42      /* 14 + 20 + 8 */

const volatile __u32 out_ifindex = 0;
const volatile __u32 msgs_per_packet = 1;
const volatile __u32 ab = 0;        /* 1: each packet on port_a, then on port_b */
const volatile __u16 port_a = 0;    /* network byte order */
const volatile __u16 port_b = 0;

const volatile __u64 window_msgs = 0;
const volatile __u64 total_packets = 0;

__u64 first_seq = 1; /* the sequence of frame 0's packet */
__u64 frames = 0;    /* frames stamped and sent so far */
__u64 appended = 0;  /* written by the receiver: its last logged sequence */

SEC("xdp")
int feedgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;

	if ((void *)(p + MOLD_OFF + 20) > end)
		return XDP_ABORTED;
	/* One generator thread: frames is read and written by this program alone. */
	__u64 n = frames;
	__u64 pkt = ab ? n / 2 : n;

	if (pkt >= total_packets)
		return XDP_DROP;
	if ((pkt + 1) * msgs_per_packet > *(volatile __u64 *)&appended + window_msgs)
		return XDP_DROP;
	frames = n + 1;
	__u64 seq = bpf_cpu_to_be64(first_seq + pkt * msgs_per_packet);
	__u16 port = (ab && (n & 1)) ? port_b : port_a;

	__builtin_memcpy(p + MOLD_OFF + 10, &seq, 8);
	__builtin_memcpy(p + UDP_DPORT_OFF, &port, 2);
	return bpf_redirect(out_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
