/* mold.c - MoldUDP64: packet parse/build, request encode/decode, and the session tracker that
 * turns packets arriving late, twice or out of order into an exact, in-order message stream.
 * mold knows nothing of ITCH or the log: it hands messages to deliver() and gaps to lost().
 *
 * Tracker state, all preallocated by sl__mold_new():
 *  - the reorder pool: packets that arrived ahead of next_seq. Their payload bytes live in one
 *    byte arena (reorder_packets * 1500 bytes, bump allocated, compacted when it runs out of room
 *    at the top); their metadata in an array sorted by first sequence (entries [lo, hi) of a
 *    buffer twice the slot count, so that inserting at the end and removing at the front are
 *    both O(1) amortized).
 *  - the gap list: a FIFO of disjoint, sorted ranges [first, end) that were missing when they
 *    were detected. Parts of a range may have arrived since (they sit in the pool); what is
 *    still missing is the range minus the pool. Each gap carries its request and progress
 *    timestamps. Invariant: every sequence in [next_seq, highest) that is not in the pool lies
 *    in some gap, and consecutive gaps are separated by at least one pool entry, so the list
 *    never holds more than reorder_packets + 1 gaps.
 *  - one array of MOLD_MAX_MSGS (32743) message descriptors, the batch handed to deliver().
 *
 * Semantics mold.h leaves open:
 *  - deliver() gets, in one call, a packet's new messages followed by every held message that
 *    continues them; a run is split only past 32743 messages. A batch is all or nothing: when
 *    deliver() fails, next_seq stays at the batch's first message, held packets stay held, the
 *    failing packet is forgotten (it counts again when it arrives again, or its range is
 *    re-requested). Batches already accepted in the same call stay delivered. Held messages at
 *    next_seq are delivered again at the start of the next sl__mold_rx/tick.
 *  - Time is the largest rx_ns/now_ns seen; an older timestamp does not move it back.
 *  - give_up_ns: 0 means the default (5 s), UINT64_MAX never gives up. A gap is given up on
 *    when no new message of it arrived for give_up_ns and it is the first gap; each of its
 *    holes is one lost() call, the held messages between them delivered in between.
 *  - Counters: packets = every sl__mold_rx call; duplicates = messages (not packets) already
 *    delivered or already held; packets_reordered = packets held; reorder_overflow = packets
 *    dropped for want of room; gaps_detected = distinct holes (a hole growing at its end, as
 *    a heartbeat or dropped packet extends it, is the same gap); rerequests_sent = request
 *    packets, first ones and resends; gaps_filled/gaps_lost are counted when a gap is wholly
 *    behind next_seq, as lost if any of it was given up on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "itch.h"
#include "mold.h"
#include "sluice.h"

/* The most messages one packet can carry: every message at least its 2-byte length. check_body
 * relies on it: it writes message i only once 2 * (i + 1) bytes of body are known to exist. */
#define MOLD_MAX_MSGS ((SL_MOLD_MAX_PACKET - SL_MOLD_HDR_LEN) / 2)

#define DEF_REORDER_PACKETS 4096u
#define DEF_REREQUEST_NS    50000000ull	  /* 50 ms */
#define DEF_GIVE_UP_NS	    5000000000ull /* 5 s */
#define DEF_MAX_REQUEST	    1024u
/* Arena bytes per reorder slot: a packet of a standard 1500-byte MTU. Larger packets are held
 * too, as long as the arena has room for them. */
#define POOL_BYTES_PER_PACKET 1500u
/* Keeps the arena under 2 GiB and every size computation far from overflow. */
#define MAX_REORDER_PACKETS (1u << 20)
/* A gap is requested at most this many requests' worth (of max_request_count messages) at a
 * time; the next window is asked for as soon as the first is delivered, or on the next
 * timeout. A late joiner facing millions of missing messages does not flood the rewinder with
 * thousands of requests every timeout. */
#define REQUEST_WINDOW 16u

_Static_assert(SL_MOLD_HDR_LEN == SL_MOLD_SESSION_LEN + 8 + 2, "MoldUDP64 header layout");
_Static_assert(SL_MOLD_REQUEST_LEN == SL_MOLD_SESSION_LEN + 8 + 2, "MoldUDP64 request layout");
_Static_assert(MOLD_MAX_MSGS == 32743, "largest message count of one packet");

/* A packet held in the reorder pool: its messages [first, end), payload in the arena. */
struct pool_ent {
	uint64_t first, end;
	uint64_t rx_ns;
	size_t off;
	uint32_t bytes;
	uint16_t count;
};

/* A range found missing. Only [max(first, next_seq), end) minus the pool is still missing. */
struct gap {
	uint64_t first, end;
	uint64_t progress_ns; /* detection, or the last time a new message of it arrived */
	uint64_t req_ns;      /* last request sent for it */
	uint64_t asked_end;   /* the current request window reaches up to here */
	int lost;	      /* part of it was given up on */
};

/* Compaction sorts live entries by arena offset. */
struct compact_ref {
	size_t off;
	uint32_t idx;
};

struct sl_mold {
	struct sl_mold_ops ops;
	char session[SL_MOLD_SESSION_LEN];
	int session_known;

	uint64_t next_seq; /* next sequence to deliver */
	uint64_t highest;  /* highest sequence seen + 1 */
	uint64_t eos_seq;  /* sequence carried by end of session, when eos_known */
	int eos_known, ended;

	uint64_t now;	   /* largest time seen (rx_ns or tick): time never runs backwards */
	uint64_t deadline; /* no timer is due before this */
	uint64_t timeout_ns, give_up_ns;
	uint16_t max_request;

	/* Reorder pool. */
	struct pool_ent *ents; /* sorted by first in [lo, hi); ents_cap = 2 * pool_max */
	uint32_t lo, hi, ents_cap, pool_max;
	uint8_t *arena;
	size_t arena_cap, top, live; /* bump pointer, bytes still referenced */
	struct compact_ref *refs;

	/* Gap FIFO (ring). */
	struct gap *gaps;
	uint32_t ghead, gn, gcap;

	struct sl_mold_stats st;  /* counters; the state fields are filled by get_stats */
	struct sl_mold_msg *msgs; /* MOLD_MAX_MSGS */
};

/* Messages gathered for one deliver() call: base[0, n) are sequences [cur - n, cur). The
 * batch also remembers what committing it releases: `consumed` pool entries from lo, `dups`
 * messages found already delivered, and the range [stamp_first, stamp_end) newly received by
 * the current packet (progress on the gaps it overlaps). */
struct batch {
	struct sl_mold_msg *base;
	size_t n;
	uint64_t cur;
	uint32_t consumed;
	uint64_t dups;
	uint64_t stamp_first, stamp_end;
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- Wire format ---------------------------------------------------------------------------- */

static void read_hdr(const uint8_t *pkt, struct sl_mold_hdr *h)
{
	memcpy(h->session, pkt, SL_MOLD_SESSION_LEN);
	h->seq = sl__be64(pkt + SL_MOLD_SESSION_LEN);
	h->count = sl__be16(pkt + SL_MOLD_SESSION_LEN + 8);
}

/* Check the body of a packet (n bytes after the header) against its header. When out is not
 * NULL, out[i] describes message i (sequence, bytes in p, length, rx_ns) for the tracker. */
static int check_body(const struct sl_mold_hdr *h, const uint8_t *p, size_t n, uint64_t rx_ns,
		      struct sl_mold_msg *out)
{
	size_t off = 0;
	uint16_t mlen;
	uint32_t i;

	if (h->count == SL_MOLD_HEARTBEAT || h->count == SL_MOLD_END_OF_SESSION)
		return n == 0 ? 0 : SL_EBADMSG;
	/* [seq, seq + count) must be representable: the tracker computes its end. */
	if (h->seq > UINT64_MAX - h->count)
		return SL_EBADMSG;
	for (i = 0; i < h->count; i++) {
		if (n - off < 2)
			return SL_EBADMSG;
		mlen = sl__be16(p + off);
		off += 2;
		if (n - off < mlen)
			return SL_EBADMSG;
		if (out) {
			out[i].seq = h->seq + i;
			out[i].rx_ns = rx_ns;
			out[i].data = p + off;
			out[i].len = mlen;
		}
		off += mlen;
	}
	return off == n ? 0 : SL_EBADMSG;
}

int sl__mold_parse(const uint8_t *pkt, size_t len, struct sl_mold_hdr *out)
{
	struct sl_mold_hdr h;
	int rc;

	if (!pkt || len < SL_MOLD_HDR_LEN || len > SL_MOLD_MAX_PACKET)
		return SL_EBADMSG;
	read_hdr(pkt, &h);
	rc = check_body(&h, pkt + SL_MOLD_HDR_LEN, len - SL_MOLD_HDR_LEN, 0, NULL);
	if (rc == 0 && out)
		*out = h;
	return rc;
}

void sl__mold_packet_init(uint8_t *buf, const char session[SL_MOLD_SESSION_LEN], uint64_t seq)
{
	sl__mold_packet_control(buf, session, seq, 0);
}

int sl__mold_packet_add(uint8_t *buf, size_t cap, size_t *len, const void *msg, uint16_t mlen)
{
	uint16_t count = sl__be16(buf + SL_MOLD_SESSION_LEN + 8);

	/* Never build what sl__mold_parse would refuse: a datagram over the UDP limit, or a count
	 * that reads as end of session. */
	if (cap > SL_MOLD_MAX_PACKET)
		cap = SL_MOLD_MAX_PACKET;
	if (*len > cap || cap - *len < 2u + mlen || count >= SL_MOLD_END_OF_SESSION - 1)
		return -ENOSPC;
	sl__put_be16(buf + *len, mlen);
	if (mlen)
		memcpy(buf + *len + 2, msg, mlen);
	*len += 2u + mlen;
	sl__put_be16(buf + SL_MOLD_SESSION_LEN + 8, (uint16_t)(count + 1));
	return 0;
}

void sl__mold_packet_control(uint8_t *buf, const char session[SL_MOLD_SESSION_LEN], uint64_t seq,
			     uint16_t count)
{
	memcpy(buf, session, SL_MOLD_SESSION_LEN);
	sl__put_be64(buf + SL_MOLD_SESSION_LEN, seq);
	sl__put_be16(buf + SL_MOLD_SESSION_LEN + 8, count);
}

void sl__mold_request_encode(uint8_t out[SL_MOLD_REQUEST_LEN],
			     const char session[SL_MOLD_SESSION_LEN], uint64_t seq, uint16_t count)
{
	sl__mold_packet_control(out, session, seq, count);
}

int sl__mold_request_decode(const uint8_t *pkt, size_t len, char session[SL_MOLD_SESSION_LEN],
			    uint64_t *seq, uint16_t *count)
{
	if (!pkt || len != SL_MOLD_REQUEST_LEN)
		return SL_EBADMSG;
	memcpy(session, pkt, SL_MOLD_SESSION_LEN);
	*seq = sl__be64(pkt + SL_MOLD_SESSION_LEN);
	*count = sl__be16(pkt + SL_MOLD_SESSION_LEN + 8);
	return 0;
}

/* ---- Reorder pool --------------------------------------------------------------------------- */

static int cmp_ref(const void *a, const void *b)
{
	const struct compact_ref *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Slide every live payload down to the bottom of the arena, in address order so that no move
 * overwrites a payload not yet moved. */
static void arena_compact(struct sl_mold *m)
{
	uint32_t i, n = 0;
	size_t top = 0;

	for (i = m->lo; i < m->hi; i++) {
		m->refs[n].off = m->ents[i].off;
		m->refs[n++].idx = i;
	}
	qsort(m->refs, n, sizeof(m->refs[0]), cmp_ref);
	for (i = 0; i < n; i++) {
		struct pool_ent *e = &m->ents[m->refs[i].idx];

		if (e->off != top)
			memmove(m->arena + top, m->arena + e->off, e->bytes);
		e->off = top;
		top += e->bytes;
	}
	m->top = top;
}

/* Bump allocation. When the top is reached, compact, but only if that frees at least an eighth
 * of the arena: each compaction moves at most 7/8 of the arena and buys room for 1/8 of new
 * bytes, so the copying stays O(1) per byte held even when the pool is nearly full. */
static int arena_alloc(struct sl_mold *m, size_t bytes, size_t *off)
{
	if (bytes > m->arena_cap - m->top) {
		if (bytes > m->arena_cap - m->live || m->arena_cap - m->live < m->arena_cap / 8)
			return -ENOSPC;
		arena_compact(m);
	}
	*off = m->top;
	m->top += bytes;
	m->live += bytes;
	return 0;
}

/* Index of the first entry in [lo, hi) whose first sequence is > seq. */
static uint32_t pool_upper(const struct sl_mold *m, uint64_t seq)
{
	uint32_t a = m->lo, b = m->hi;

	if (a == b || m->ents[b - 1].first <= seq)
		return b; /* the common case: a packet beyond everything held */
	while (a < b) {
		uint32_t mid = a + (b - a) / 2;

		if (m->ents[mid].first <= seq)
			a = mid + 1;
		else
			b = mid;
	}
	return a;
}

enum { POOL_STORED, POOL_DUP, POOL_FULL };

/* Hold packet [first, first + count) (its body at p, bytes long). A packet wholly inside the
 * held packet with the nearest lower or equal first sequence is a duplicate; one that starts
 * where a held packet starts but reaches further replaces it (*replaced = messages discarded).
 * Other overlaps are kept: delivery skips what was already delivered. */
static int pool_insert(struct sl_mold *m, uint64_t first, uint16_t count, const uint8_t *p,
		       size_t bytes, uint64_t rx_ns, uint64_t *replaced)
{
	uint64_t end = first + count;
	uint32_t at = pool_upper(m, first);
	struct pool_ent *pred = at > m->lo ? &m->ents[at - 1] : NULL;
	size_t off;

	*replaced = 0;
	if (pred && pred->end >= end)
		return POOL_DUP;
	if (pred && pred->first == first) {
		/* Allocate before releasing pred: a compaction still sees pred as live. */
		if (arena_alloc(m, bytes, &off))
			return POOL_FULL;
		memcpy(m->arena + off, p, bytes);
		m->live -= pred->bytes;
		*replaced = pred->count;
		*pred = (struct pool_ent){ first, end, rx_ns, off, (uint32_t)bytes, count };
		return POOL_STORED;
	}
	if (m->hi - m->lo >= m->pool_max || arena_alloc(m, bytes, &off))
		return POOL_FULL;
	memcpy(m->arena + off, p, bytes);
	if (m->hi == m->ents_cap) {
		/* Holding at most pool_max of 2 * pool_max slots, lo >= pool_max here: one move of
		 * at most pool_max entries frees at least pool_max slots at the end. */
		memmove(m->ents, m->ents + m->lo, (m->hi - m->lo) * sizeof(m->ents[0]));
		at -= m->lo;
		m->hi -= m->lo;
		m->lo = 0;
	}
	memmove(m->ents + at + 1, m->ents + at, (m->hi - at) * sizeof(m->ents[0]));
	m->hi++;
	m->ents[at] = (struct pool_ent){ first, end, rx_ns, off, (uint32_t)bytes, count };
	return POOL_STORED;
}

static void pool_pop(struct sl_mold *m, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		m->live -= m->ents[m->lo + i].bytes;
	m->lo += n;
	if (m->lo == m->hi) {
		/* Empty: the whole arena is free again, no compaction needed. */
		m->lo = m->hi = 0;
		m->top = 0;
	}
}

/* Describe messages skip.. of a held packet in out[] (the body was checked on arrival). */
static void pool_fill(const struct sl_mold *m, const struct pool_ent *e, uint64_t skip,
		      struct sl_mold_msg *out)
{
	const uint8_t *p = m->arena + e->off;
	uint64_t i;

	for (i = 0; i < e->count; i++) {
		uint16_t mlen = sl__be16(p);

		if (i >= skip) {
			out->seq = e->first + i;
			out->rx_ns = e->rx_ns;
			out->data = p + 2;
			out->len = mlen;
			out++;
		}
		p += 2u + mlen;
	}
}

/* ---- Gaps and requests ---------------------------------------------------------------------- */

static struct gap *gap_at(const struct sl_mold *m, uint32_t k)
{
	return &m->gaps[(m->ghead + k) % m->gcap];
}

static void request_range(struct sl_mold *m, uint64_t a, uint64_t b)
{
	uint8_t pkt[SL_MOLD_REQUEST_LEN];

	if (!m->ops.request)
		return;
	while (a < b) {
		uint64_t n = b - a < m->max_request ? b - a : m->max_request;

		sl__mold_request_encode(pkt, m->session, a, (uint16_t)n);
		m->ops.request(m->ops.arg, pkt, sizeof(pkt));
		m->st.rerequests_sent++;
		a += n;
	}
}

static uint64_t window(const struct sl_mold *m)
{
	return (uint64_t)m->max_request * REQUEST_WINDOW;
}

/* Request what is still missing of g (g minus the pool, from next_seq on), one window's worth.
 * *pi and *covered are a cursor over the pool (the next entry to look at, the highest end of
 * the entries passed) shared by the gaps of one sweep, which are visited in order. */
static void request_missing(struct sl_mold *m, struct gap *g, uint32_t *pi, uint64_t *covered)
{
	uint64_t pos = g->first > m->next_seq ? g->first : m->next_seq;
	uint64_t budget = window(m);
	uint32_t i = *pi;

	if (*covered > pos)
		pos = *covered;
	while (pos < g->end && budget) {
		uint64_t stop = g->end;

		if (i < m->hi && m->ents[i].first <= pos) {
			if (m->ents[i].end > *covered)
				*covered = m->ents[i].end;
			if (*covered > pos)
				pos = *covered;
			i++;
			continue;
		}
		if (i < m->hi && m->ents[i].first < stop)
			stop = m->ents[i].first;
		if (stop - pos > budget)
			stop = pos + budget;
		request_range(m, pos, stop);
		budget -= stop - pos;
		pos = stop;
	}
	*pi = i;
	g->asked_end = pos < g->end ? pos : g->end;
	g->req_ns = m->now;
}

static void lower_deadline(struct sl_mold *m, uint64_t t)
{
	if (t < m->deadline)
		m->deadline = t;
}

static uint64_t give_up_at(const struct sl_mold *m, const struct gap *g)
{
	return m->give_up_ns == UINT64_MAX ? UINT64_MAX : sat_add(g->progress_ns, m->give_up_ns);
}

/* Sequences [a, b) with a == highest are missing: extend the last gap when it ends at a (the
 * same hole grew: no new gap is counted, and its give-up clock keeps running), else open a new
 * one. Ask for the new part at once unless the last gap's window has not reached a yet. */
static void add_gap(struct sl_mold *m, uint64_t a, uint64_t b)
{
	struct gap *g = m->gn ? gap_at(m, m->gn - 1) : NULL;
	uint64_t stop = b - a > window(m) ? a + window(m) : b;

	m->st.gap_messages += b - a;
	m->highest = b;
	if (g && (g->end == a || m->gn == m->gcap)) {
		/* gn == gcap cannot happen (see the file comment); if it did, the last gap would
		 * simply grow to cover the new hole and the pool entries between. */
		if (g->asked_end == g->end && g->end == a) {
			request_range(m, a, stop);
			g->asked_end = stop;
		}
		g->end = b;
		return;
	}
	g = gap_at(m, m->gn++);
	*g = (struct gap){ a, b, m->now, m->now, stop, 0 };
	m->st.gaps_detected++;
	request_range(m, a, stop);
	lower_deadline(m, sat_add(m->now, m->timeout_ns));
	lower_deadline(m, give_up_at(m, g));
}

/* Index of the first gap whose end is > seq (gn when none). */
static uint32_t gap_upper(const struct sl_mold *m, uint64_t seq)
{
	uint32_t a = 0, b = m->gn;

	while (a < b) {
		uint32_t mid = a + (b - a) / 2;

		if (gap_at(m, mid)->end <= seq)
			a = mid + 1;
		else
			b = mid;
	}
	return a;
}

/* New messages [a, b) arrived: progress for every gap they overlap. */
static void stamp(struct sl_mold *m, uint64_t a, uint64_t b)
{
	uint32_t k;

	for (k = gap_upper(m, a); k < m->gn; k++) {
		struct gap *g = gap_at(m, k);

		if (g->first >= b)
			break;
		g->progress_ns = m->now;
	}
}

/* Retire the gaps now wholly behind next_seq. When another gap becomes the first, its give-up
 * time may be earlier than any timer planned so far; and if its request window has been
 * delivered, ask for the next window now rather than at the next timeout. */
static void resolve_gaps(struct sl_mold *m)
{
	struct gap *g;
	uint32_t i;
	uint64_t covered;
	int popped = 0;

	while (m->gn && gap_at(m, 0)->end <= m->next_seq) {
		if (!gap_at(m, 0)->lost)
			m->st.gaps_filled++;
		m->ghead = (m->ghead + 1) % m->gcap;
		m->gn--;
		popped = 1;
	}
	if (!m->gn)
		return;
	g = gap_at(m, 0);
	if (popped)
		lower_deadline(m, give_up_at(m, g));
	if (g->asked_end < g->end && m->next_seq >= g->asked_end) {
		i = m->lo;
		covered = 0;
		request_missing(m, g, &i, &covered);
		lower_deadline(m, sat_add(m->now, m->timeout_ns));
	}
}

/* ---- Delivery ------------------------------------------------------------------------------- */

static void update_ended(struct sl_mold *m)
{
	if (m->eos_known && m->next_seq >= m->eos_seq)
		m->ended = 1;
}

/* Hand the batch to deliver(); on success it is delivered: next_seq moves to its end and what
 * it consumed is released. On failure nothing changes. */
static int commit(struct sl_mold *m, struct batch *b)
{
	int rc;

	if (b->n) {
		rc = m->ops.deliver(m->ops.arg, b->base, b->n);
		if (rc < 0)
			return rc;
	}
	m->next_seq = b->cur;
	m->st.messages_delivered += b->n;
	m->st.duplicates += b->dups;
	pool_pop(m, b->consumed);
	if (b->cur > m->highest)
		m->highest = b->cur;
	if (m->gn && b->stamp_end > b->stamp_first)
		stamp(m, b->stamp_first, b->stamp_end);
	resolve_gaps(m);
	update_ended(m);
	b->base = m->msgs;
	b->n = 0;
	b->consumed = 0;
	b->dups = 0;
	b->stamp_first = b->stamp_end = 0;
	return 0;
}

/* Append every held packet that continues the batch, then deliver. A batch holds at most
 * MOLD_MAX_MSGS messages; a longer run is delivered in several calls, each committed before
 * the next is built, so a failure in a later call leaves next_seq exactly after the last
 * message delivered. */
static int drain(struct sl_mold *m, struct batch *b)
{
	for (;;) {
		uint32_t i = m->lo + b->consumed;
		const struct pool_ent *e;
		uint64_t skip;
		size_t add;
		int rc;

		if (i == m->hi || m->ents[i].first > b->cur)
			break;
		e = &m->ents[i];
		if (e->end <= b->cur) {
			/* Everything in it was delivered (or is in this batch) already. */
			b->dups += e->count;
			b->consumed++;
			continue;
		}
		skip = b->cur - e->first;
		add = (size_t)(e->count - skip);
		if ((size_t)(b->base - m->msgs) + b->n + add > MOLD_MAX_MSGS) {
			rc = commit(m, b);
			if (rc < 0)
				return rc;
			continue;
		}
		pool_fill(m, e, skip, b->base + b->n);
		b->n += add;
		b->dups += skip;
		b->cur = e->end;
		b->consumed++;
	}
	return commit(m, b);
}

/* Deliver what is held from next_seq on (after a give-up, or to retry after deliver() failed). */
static int drain_pool(struct sl_mold *m)
{
	struct batch b = { .base = m->msgs, .cur = m->next_seq };

	return drain(m, &b);
}

static int drain_pending(const struct sl_mold *m)
{
	return m->lo < m->hi && m->ents[m->lo].first <= m->next_seq;
}

/* ---- Timers --------------------------------------------------------------------------------- */

/* Give up on the first gap while it has made no progress for give_up_ns: report the missing run
 * at next_seq to lost(), move past it and deliver what was held behind it. The same gap may
 * have further holes: each is reported by its own lost() call, with the held packets between
 * them delivered in between. */
static int give_up(struct sl_mold *m)
{
	while (m->gn) {
		struct gap *g = gap_at(m, 0);
		uint64_t x = g->end;
		int rc;

		if (m->now < give_up_at(m, g) || g->first > m->next_seq || drain_pending(m))
			break;
		if (m->lo < m->hi && m->ents[m->lo].first < x)
			x = m->ents[m->lo].first;
		if (m->ops.lost) {
			rc = m->ops.lost(m->ops.arg, m->next_seq, x - m->next_seq, m->now);
			if (rc < 0)
				return rc;
		}
		m->st.lost_messages += x - m->next_seq;
		if (!g->lost) {
			g->lost = 1;
			m->st.gaps_lost++;
		}
		m->next_seq = x;
		rc = drain_pool(m);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Due timers: give-ups, then resends of every gap whose request is older than the timeout;
 * then find the next time anything is due. A failure leaves the deadline at 0 so that the next
 * call retries. */
static int sweep(struct sl_mold *m)
{
	uint64_t covered = 0, d = UINT64_MAX;
	uint32_t i = m->lo, k;
	int rc;

	rc = give_up(m);
	if (rc < 0) {
		m->deadline = 0;
		return rc;
	}
	for (k = 0; k < m->gn; k++) {
		struct gap *g = gap_at(m, k);
		uint64_t t;

		if (m->now - g->req_ns >= m->timeout_ns)
			request_missing(m, g, &i, &covered);
		t = sat_add(g->req_ns, m->timeout_ns);
		d = t < d ? t : d;
	}
	/* Only the first gap can be given up on; the others get their turn in resolve_gaps(). */
	if (m->gn) {
		uint64_t t = give_up_at(m, gap_at(m, 0));

		d = t < d ? t : d;
	}
	m->deadline = d;
	return 0;
}

static void advance_clock(struct sl_mold *m, uint64_t now_ns)
{
	if (now_ns > m->now)
		m->now = now_ns;
}

/* ---- Packets -------------------------------------------------------------------------------- */

static int rx_data(struct sl_mold *m, const struct sl_mold_hdr *h, const uint8_t *body,
		   size_t bytes, uint64_t rx_ns)
{
	uint64_t first = h->seq, end = first + h->count, replaced, gap_end;
	int r;

	if (end <= m->next_seq) {
		m->st.duplicates += h->count;
		return 0;
	}
	if (first <= m->next_seq) {
		/* In order (or overlapping what was delivered): m->msgs already describes the
		 * packet; deliver its new tail and everything held that follows, in one call. */
		uint64_t skip = m->next_seq - first;
		struct batch b = {
			.base = m->msgs + skip,
			.n = (size_t)(h->count - skip),
			.cur = end,
			.dups = skip,
			.stamp_first = m->next_seq,
			.stamp_end = end,
		};

		return drain(m, &b);
	}

	/* Ahead of next_seq: hold it; what lies between highest and it is a new gap. */
	r = pool_insert(m, first, h->count, body, bytes, rx_ns, &replaced);
	gap_end = first;
	if (r == POOL_STORED) {
		m->st.packets_reordered++;
		m->st.duplicates += replaced;
		if (m->gn)
			stamp(m, first, end);
	} else if (r == POOL_DUP) {
		m->st.duplicates += h->count;
	} else {
		/* Dropped: its own messages are missing too, to be asked for again. */
		m->st.reorder_overflow++;
		gap_end = end;
	}
	if (gap_end > m->highest)
		add_gap(m, m->highest, gap_end);
	if (end > m->highest)
		m->highest = end;
	return 0;
}

/* Heartbeat or end of session: seq is the next sequence the sender will use. */
static void rx_control(struct sl_mold *m, uint64_t seq)
{
	if (seq > m->highest)
		add_gap(m, m->highest, seq);
}

static int session_is_blank(const char *s)
{
	int i;

	for (i = 0; i < SL_MOLD_SESSION_LEN; i++)
		if (s[i] != ' ' && s[i] != '\0')
			return 0;
	return 1;
}

int sl__mold_rx(struct sl_mold *m, const uint8_t *pkt, size_t len, uint64_t rx_ns)
{
	struct sl_mold_hdr h;
	int rc;

	m->st.packets++;
	advance_clock(m, rx_ns);
	if (drain_pending(m)) {
		rc = drain_pool(m);
		if (rc < 0)
			return rc;
	}
	if (!pkt || len < SL_MOLD_HDR_LEN || len > SL_MOLD_MAX_PACKET)
		goto bad;
	read_hdr(pkt, &h);
	/* One pass both checks the body and describes its messages for delivery. Messages carry
	 * the packet's own rx_ns even when it is older than the timers' clock. */
	if (check_body(&h, pkt + SL_MOLD_HDR_LEN, len - SL_MOLD_HDR_LEN, rx_ns, m->msgs))
		goto bad;
	if (!m->session_known) {
		memcpy(m->session, h.session, SL_MOLD_SESSION_LEN);
		m->session_known = 1;
	} else if (memcmp(m->session, h.session, SL_MOLD_SESSION_LEN)) {
		m->st.packets_other_session++;
		goto timers;
	}
	if (h.count == SL_MOLD_HEARTBEAT) {
		m->st.heartbeats++;
		rx_control(m, h.seq);
	} else if (h.count == SL_MOLD_END_OF_SESSION) {
		m->st.end_of_session++;
		rx_control(m, h.seq);
		m->eos_seq = h.seq;
		m->eos_known = 1;
		update_ended(m);
	} else {
		rc = rx_data(m, &h, pkt + SL_MOLD_HDR_LEN, len - SL_MOLD_HDR_LEN, rx_ns);
		if (rc < 0)
			return rc;
	}
	goto timers;
bad:
	m->st.packets_bad++;
timers:
	return m->now >= m->deadline ? sweep(m) : 0;
}

int sl__mold_tick(struct sl_mold *m, uint64_t now_ns)
{
	int rc;

	advance_clock(m, now_ns);
	if (drain_pending(m)) {
		rc = drain_pool(m);
		if (rc < 0)
			return rc;
	}
	return m->now >= m->deadline ? sweep(m) : 0;
}

/* ---- Lifecycle ------------------------------------------------------------------------------ */

int sl__mold_new(const struct sl_mold_config *cfg, const struct sl_mold_ops *ops,
		 struct sl_mold **out)
{
	struct sl_mold *m;
	uint32_t slots;
	int i, pad = 0;

	if (!out)
		return SL_ECONFIG;
	*out = NULL;
	if (!cfg || !ops || !ops->deliver)
		return SL_ECONFIG;
	slots = cfg->reorder_packets ? cfg->reorder_packets : DEF_REORDER_PACKETS;
	if (slots > MAX_REORDER_PACKETS)
		return SL_ECONFIG;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* A configured session is a C string or space padded; a NUL ends it and pads with
	 * spaces, as on the wire. Anything but printable ASCII cannot be a session name. */
	for (i = 0; i < SL_MOLD_SESSION_LEN; i++) {
		char c = cfg->session[i];

		if (c == '\0')
			pad = 1;
		if (pad)
			c = ' ';
		if (c < ' ' || c > '~') {
			free(m);
			return SL_ECONFIG;
		}
		m->session[i] = c;
	}
	m->session_known = !session_is_blank(cfg->session);

	m->ops = *ops;
	m->next_seq = cfg->next_seq ? cfg->next_seq : 1;
	m->highest = m->next_seq;
	m->deadline = UINT64_MAX;
	m->timeout_ns = cfg->rerequest_timeout_ns ? cfg->rerequest_timeout_ns : DEF_REREQUEST_NS;
	m->give_up_ns = cfg->give_up_ns ? cfg->give_up_ns : DEF_GIVE_UP_NS;
	m->max_request = cfg->max_request_count ? cfg->max_request_count : DEF_MAX_REQUEST;

	m->pool_max = slots;
	m->ents_cap = 2 * slots;
	m->arena_cap = (size_t)slots * POOL_BYTES_PER_PACKET;
	m->gcap = slots + 2;
	m->ents = malloc(m->ents_cap * sizeof(m->ents[0]));
	m->refs = malloc(slots * sizeof(m->refs[0]));
	m->arena = malloc(m->arena_cap);
	m->gaps = malloc(m->gcap * sizeof(m->gaps[0]));
	m->msgs = malloc(MOLD_MAX_MSGS * sizeof(m->msgs[0]));
	if (!m->ents || !m->refs || !m->arena || !m->gaps || !m->msgs) {
		sl__mold_free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

void sl__mold_free(struct sl_mold *m)
{
	if (!m)
		return;
	free(m->ents);
	free(m->refs);
	free(m->arena);
	free(m->gaps);
	free(m->msgs);
	free(m);
}

void sl__mold_get_stats(const struct sl_mold *m, struct sl_mold_stats *out)
{
	*out = m->st;
	memset(out->session, 0, sizeof(out->session));
	if (m->session_known)
		memcpy(out->session, m->session, SL_MOLD_SESSION_LEN);
	out->next_seq = m->next_seq;
	out->highest_seen = m->highest;
	out->ended = (uint8_t)m->ended;
}
