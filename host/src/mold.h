/* mold.h - MoldUDP64 (NASDAQ MoldUDP64 1.00): packet format, request format, and a per-session
 * tracker that turns packets arriving late, twice or out of order into an exact, in-order
 * stream of messages. A gap never silently disappears: it is re-requested, filled, or given up
 * on explicitly through the lost() callback. mold knows nothing of ITCH or the log.
 *
 * Downstream packet: session (10 bytes, alphanumeric, space padded), sequence number of the
 * first message (u64 big-endian), message count (u16 BE: 0 = heartbeat, 0xFFFF = end of
 * session), then per message a u16 BE length and that many bytes. Request packet: session (10),
 * first sequence wanted (u64 BE), count wanted (u16 BE) = 20 bytes.
 */
#ifndef SL_MOLD_H
#define SL_MOLD_H

#include <stddef.h>
#include <stdint.h>

#define SL_MOLD_SESSION_LEN 10
#define SL_MOLD_HDR_LEN 20
#define SL_MOLD_REQUEST_LEN 20
#define SL_MOLD_HEARTBEAT 0
#define SL_MOLD_END_OF_SESSION 0xFFFF
/* Largest packet we accept (a MoldUDP64 packet travels in one UDP datagram). */
#define SL_MOLD_MAX_PACKET 65507

struct sl_mold_hdr {
	char session[SL_MOLD_SESSION_LEN];
	uint64_t seq;
	uint16_t count;
};

/* Parse and bounds-check a downstream packet: header, then every length-prefixed message must
 * fit exactly in len (trailing bytes or a message running past the end: SL_EBADMSG). */
int sl__mold_parse(const uint8_t *pkt, size_t len, struct sl_mold_hdr *out);

/* Building packets (the generator, the rewinder, tests). buf must hold cap bytes. */
void sl__mold_packet_init(uint8_t *buf, const char session[SL_MOLD_SESSION_LEN], uint64_t seq);
/* Append one message; *len is the packet length so far (SL_MOLD_HDR_LEN after init). Returns 0,
 * or -ENOSPC when it does not fit in cap (the packet is unchanged). */
int sl__mold_packet_add(uint8_t *buf, size_t cap, size_t *len, const void *msg, uint16_t mlen);
/* Make buf a heartbeat (count 0) or end-of-session (count 0xFFFF) packet of 20 bytes. */
void sl__mold_packet_control(uint8_t *buf, const char session[SL_MOLD_SESSION_LEN], uint64_t seq,
			     uint16_t count);

void sl__mold_request_encode(uint8_t out[SL_MOLD_REQUEST_LEN],
			     const char session[SL_MOLD_SESSION_LEN], uint64_t seq, uint16_t count);
/* 0 or SL_EBADMSG when len != 20. */
int sl__mold_request_decode(const uint8_t *pkt, size_t len, char session[SL_MOLD_SESSION_LEN],
			    uint64_t *seq, uint16_t *count);

/* ---- Session tracker ---------------------------------------------------------------------- */

struct sl_mold_msg {
	uint64_t seq;
	uint64_t rx_ns;          /* receive time of the packet that carried it */
	const uint8_t *data;     /* valid only during the deliver() call */
	uint16_t len;
};

struct sl_mold_ops {
	/* n >= 1 messages with consecutive sequences, continuing exactly where the last call (or
	 * next_seq) left off: a packet's new messages and every held message that follows them,
	 * in one call (split only past 32743 messages). All or nothing: a negative return leaves
	 * next_seq at the call's first message, keeps held packets held, forgets the packet being
	 * processed (it counts again when it arrives again, or is re-requested), and is returned
	 * by sl__mold_rx/tick. Must not call back into the tracker. */
	int (*deliver)(void *arg, const struct sl_mold_msg *msgs, size_t n);
	/* Send this request packet to the rewinder. May be NULL (no re-requests). */
	void (*request)(void *arg, const uint8_t *pkt, size_t len);
	/* The tracker gave up on [first, first + count): it will deliver from first + count next.
	 * Return as deliver(). May be NULL. */
	int (*lost)(void *arg, uint64_t first, uint64_t count, uint64_t now_ns);
	void *arg;
};

struct sl_mold_config {
	/* Session to accept; all spaces or empty = learn it from the first packet. */
	char session[SL_MOLD_SESSION_LEN];
	uint64_t next_seq;              /* first sequence expected (1, or durable + 1) */
	uint32_t reorder_packets;       /* early packets held while a gap fills (default 4096) */
	uint64_t rerequest_timeout_ns;  /* resend an unanswered request after this (50 ms) */
	uint64_t give_up_ns;            /* declare a gap lost after this long without progress;
					   0 = the default 5 s, UINT64_MAX = never */
	uint16_t max_request_count;     /* most messages asked for in one request (default 1024) */
};

/* packets: every sl__mold_rx call, bad ones included; duplicates: messages, not packets;
 * packets_reordered: packets held for later; reorder_overflow: early packets dropped for lack of
 * room (their range is re-requested); gaps_detected: distinct holes (a hole growing at its end
 * stays one gap); rerequests_sent: request packets, resends included; a gap counts as filled or
 * lost once it is wholly behind next_seq, lost if any part was given up. */
struct sl_mold_stats {
	uint64_t packets, packets_bad, heartbeats, end_of_session, packets_other_session;
	uint64_t messages_delivered, duplicates, gaps_detected, gap_messages, gaps_filled,
		gaps_lost, lost_messages, rerequests_sent, packets_reordered, reorder_overflow;
	char session[SL_MOLD_SESSION_LEN + 1];
	uint64_t next_seq;              /* next sequence to deliver */
	uint64_t highest_seen;          /* highest sequence seen + 1 (>= next_seq) */
	uint8_t ended;                  /* end of session seen and everything before delivered */
};

struct sl_mold;

/* Allocates the tracker and its reorder pool up front: no allocation per packet afterwards.
 * 0, -ENOMEM or SL_ECONFIG. */
int sl__mold_new(const struct sl_mold_config *cfg, const struct sl_mold_ops *ops,
		 struct sl_mold **out);
void sl__mold_free(struct sl_mold *m);

/* Feed one received packet. Malformed packets are counted and return 0 (never fatal); only a
 * negative return of deliver()/lost() is returned. rx_ns also drives timeouts. */
int sl__mold_rx(struct sl_mold *m, const uint8_t *pkt, size_t len, uint64_t rx_ns);

/* Drive time when no packet arrives: resend overdue requests, give up on old gaps. */
int sl__mold_tick(struct sl_mold *m, uint64_t now_ns);

void sl__mold_get_stats(const struct sl_mold *m, struct sl_mold_stats *out);

#endif /* SL_MOLD_H */
