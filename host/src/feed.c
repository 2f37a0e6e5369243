/* feed.c - a deterministic synthetic TotalView-ITCH 5.0 session: system events, the stock
 * directory, realistic order lifecycles drawn from a seeded xoshiro256** generator, every other
 * ITCH 5.0 type at low rates, and the closing events. feed uses itch (encode) and mold (packing)
 * and nothing else; nothing in the pipeline depends on it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "feed.h"
#include "itch.h"
#include "mold.h"

/* 09:30:00 ET in ns since midnight: the flow starts when the market opens. */
#define FEED_START_NS (34200ull * 1000000000ull)
/* Market hours (6.5 h): large sessions are squeezed into them so timestamps stay in the day. */
#define FEED_SPAN_NS (23400ull * 1000000000ull)
/* Mean gap between messages for sessions that do not need squeezing (1 us). */
#define FEED_MEAN_GAP_NS 1000ull
/* One cent in Price(4) units. */
#define FEED_TICK 100u
/* Recent match numbers a Broken Trade may name. */
#define FEED_MATCH_RING 16
/* Closing messages: 'M', 'E', 'C'. */
#define FEED_TAIL 3

struct feed_stock {
	char sym[8];  /* space padded */
	uint32_t mid; /* Price(4); random walk in ticks */
};

/* A live order on the synthetic book; 24 bytes, the pool is one flat array. */
struct feed_order {
	uint64_t ref;
	uint32_t price;
	uint32_t shares; /* remaining, always >= 1 while live */
	uint16_t stock;	 /* index into stocks[] (locate - 1) */
	char side;
};

/* Rare types: each appears once per cycle of the rare slot, in a shuffled order, so every ITCH
 * 5.0 type shows up within a few thousand flow messages whatever the seed. */
static const uint8_t rare_types[] = { 'Q', 'B', 'Y', 'L', 'V', 'W', 'K', 'J', 'h', 'I', 'N', 'O' };
#define FEED_RARE_N (sizeof(rare_types) / sizeof(rare_types[0]))

struct sl_feed {
	struct sl_feed_config cfg;
	uint64_t rng[4];
	uint64_t produced; /* messages generated so far */
	uint64_t seq;	   /* sequence of the next message handed out */
	uint64_t ts;
	uint32_t gap_span; /* timestamp step is uniform in [0, gap_span] */
	uint64_t next_ref, next_match;
	uint64_t matches[FEED_MATCH_RING]; /* 0 = empty or already broken */
	uint32_t match_pos;

	struct feed_stock *stocks;
	struct feed_order *orders;
	uint32_t live, cap;

	uint32_t rare_in; /* flow messages until the next rare one */
	uint32_t rare_pos;
	uint8_t rare_cycle[FEED_RARE_N];

	/* A message generated for a packet it did not fit in: it opens the next packet. */
	uint8_t pending[SL_ITCH_MAX_LEN];
	uint16_t pending_len;
};

/* Real-looking tickers for the first locates; the rest are AAAA, AAAB, ... skipping these. */
static const char *const tickers[] = {
	"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "COST", "NFLX",
	"AMD",	"PEP",	"ADBE", "CSCO", "INTC",	 "QCOM", "TXN",	 "AMGN", "INTU", "SBUX",
	"PYPL", "GILD", "MDLZ", "ADP",	"BKNG",	 "REGN", "VRTX", "ISRG", "MU",	 "LRCX",
	"PANW", "SNPS", "KLAC", "CDNS", "MRVL",	 "ABNB", "CRWD", "FTNT", "ORLY", "MELI",
	"ASML", "CHTR", "MAR",	"CTAS", "KDP",	 "WDAY", "DDOG", "ZS",	 "TEAM", "ODFL",
};
#define FEED_TICKERS (sizeof(tickers) / sizeof(tickers[0]))

static const char mpids[][5] = { "GSCO", "MSCO", "UBSS", "CDRG", "NITE", "VIRT", "JPMS", "SUSQ",
				 "ETMM", "GSMM", "MLCO", "CITI", "BARD", "HRTF", "JSSE", "TMBR" };
#define FEED_MPIDS (sizeof(mpids) / sizeof(mpids[0]))

/* ---- PRNG: splitmix64 seeds xoshiro256** (public domain, Blackman and Vigna) ---------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rnd(struct sl_feed *f)
{
	uint64_t *s = f->rng;
	uint64_t r = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return r;
}

/* Uniform in [0, n) by multiply-shift (Lemire); the bias for n < 2^32 is far below anything a
 * synthetic feed could show. */
static inline uint32_t below(struct sl_feed *f, uint32_t n)
{
	return (uint32_t)(((rnd(f) >> 32) * (uint64_t)n) >> 32);
}

/* ---- Book helpers ----------------------------------------------------------------------- */

static void pad_symbol(char out[8], const char *s)
{
	size_t n = strlen(s);

	memset(out, ' ', 8);
	memcpy(out, s, n < 8 ? n : 8);
}

static int is_ticker(const char sym[8])
{
	char p[8];

	for (size_t i = 0; i < FEED_TICKERS; i++) {
		pad_symbol(p, tickers[i]);
		if (memcmp(p, sym, 8) == 0)
			return 1;
	}
	return 0;
}

static void make_stocks(struct sl_feed *f)
{
	uint32_t gen = 0;

	for (uint32_t i = 0; i < f->cfg.stocks; i++) {
		struct feed_stock *s = &f->stocks[i];

		if (i < FEED_TICKERS) {
			pad_symbol(s->sym, tickers[i]);
		} else {
			do {
				uint32_t g = gen++;

				memset(s->sym, ' ', 8);
				for (int k = 3; k >= 0; k--) {
					s->sym[k] = (char)('A' + g % 26);
					g /= 26;
				}
			} while (is_ticker(s->sym));
		}
		/* $5 to $400, whole cents. */
		s->mid = (5 + below(f, 395)) * 10000 + below(f, 100) * FEED_TICK;
	}
}

/* Lot sizes as a book shows them: mostly round lots of a few hundred, some blocks, a few odd
 * lots. */
static uint32_t rand_shares(struct sl_feed *f)
{
	uint32_t r = below(f, 100);

	if (r < 80)
		return 100 * (1 + below(f, 1 + below(f, 10)));
	if (r < 92)
		return 100 * (1 + below(f, 50));
	return 1 + below(f, 99);
}

/* A part of s in [1, s - 1] (s >= 2), in round lots when s is. */
static uint32_t part_of(struct sl_feed *f, uint32_t s)
{
	if (s >= 200 && s % 100 == 0)
		return 100 * (1 + below(f, s / 100 - 1));
	return 1 + below(f, s - 1);
}

/* Active names trade more: the square of a uniform skews the choice toward low locates. */
static uint32_t rand_stock(struct sl_feed *f)
{
	uint64_t n = f->cfg.stocks;
	uint64_t a = below(f, (uint32_t)n), b = below(f, (uint32_t)n);

	return (uint32_t)(a * b / n);
}

static void walk_mid(struct sl_feed *f, struct feed_stock *s)
{
	uint32_t r = below(f, 40);

	if (r == 0 && s->mid > 100 * FEED_TICK)
		s->mid -= FEED_TICK;
	else if (r == 1)
		s->mid += FEED_TICK;
}

/* A resting price: below the mid for bids, above for offers, near the touch mostly. */
static uint32_t rest_price(struct sl_feed *f, const struct feed_stock *s, char side)
{
	uint32_t off = (1 + below(f, 1 + below(f, 25))) * FEED_TICK;

	return side == 'B' ? s->mid - off : s->mid + off;
}

static uint32_t near_mid(struct sl_feed *f, const struct feed_stock *s)
{
	return s->mid - 5 * FEED_TICK + below(f, 11) * FEED_TICK;
}

static void remember_match(struct sl_feed *f, uint64_t match)
{
	f->matches[f->match_pos] = match;
	f->match_pos = (f->match_pos + 1) % FEED_MATCH_RING;
}

static void drop_order(struct sl_feed *f, uint32_t i)
{
	f->orders[i] = f->orders[--f->live];
}

/* ---- Message builders: each fills *m (already zeroed, header set by the caller) ---------- */

static void set_stock(char dst[8], const struct feed_stock *s)
{
	memcpy(dst, s->sym, 8);
}

static void gen_add(struct sl_feed *f, struct sl_itch_msg *m, int mpid)
{
	uint32_t si = rand_stock(f);
	struct feed_stock *s = &f->stocks[si];
	struct feed_order *o = &f->orders[f->live++];

	walk_mid(f, s);
	o->ref = f->next_ref++;
	o->side = below(f, 2) ? 'B' : 'S';
	o->shares = rand_shares(f);
	o->price = rest_price(f, s, o->side);
	o->stock = (uint16_t)si;

	m->type = mpid ? 'F' : 'A';
	m->locate = (uint16_t)(si + 1);
	m->u.add_order.ref = o->ref;
	m->u.add_order.side = o->side;
	m->u.add_order.shares = o->shares;
	set_stock(m->u.add_order.stock, s);
	m->u.add_order.price = o->price;
	if (mpid)
		memcpy(m->u.add_order.mpid, mpids[below(f, FEED_MPIDS)], 4);
}

static void gen_exec(struct sl_feed *f, struct sl_itch_msg *m, int with_price)
{
	uint32_t i = below(f, f->live);
	struct feed_order *o = &f->orders[i];
	int full = o->shares < 2 || below(f, 2);
	uint32_t n = full ? o->shares : part_of(f, o->shares);

	m->type = with_price ? 'C' : 'E';
	m->locate = (uint16_t)(o->stock + 1);
	m->u.executed.ref = o->ref;
	m->u.executed.shares = n;
	m->u.executed.match = f->next_match;
	remember_match(f, f->next_match++);
	if (with_price) {
		/* Executions away from the displayed price: price improvement of a tick or two. */
		uint32_t imp = below(f, 3) * FEED_TICK;

		m->u.executed.printable = below(f, 10) ? 'Y' : 'N';
		m->u.executed.price =
			o->side == 'B' ? o->price - (imp < o->price ? imp : 0) : o->price + imp;
	}
	if (full)
		drop_order(f, i);
	else
		o->shares -= n;
}

static void gen_cancel(struct sl_feed *f, struct sl_itch_msg *m)
{
	uint32_t i = below(f, f->live);
	struct feed_order *o = &f->orders[i];
	int full = o->shares < 2 || below(f, 5) == 0;
	uint32_t n = full ? o->shares : part_of(f, o->shares);

	m->type = 'X';
	m->locate = (uint16_t)(o->stock + 1);
	m->u.cancel.ref = o->ref;
	m->u.cancel.shares = n;
	if (full)
		drop_order(f, i);
	else
		o->shares -= n;
}

static void gen_delete(struct sl_feed *f, struct sl_itch_msg *m)
{
	uint32_t i = below(f, f->live);

	m->type = 'D';
	m->locate = (uint16_t)(f->orders[i].stock + 1);
	m->u.del.ref = f->orders[i].ref;
	drop_order(f, i);
}

static void gen_replace(struct sl_feed *f, struct sl_itch_msg *m)
{
	struct feed_order *o = &f->orders[below(f, f->live)];
	struct feed_stock *s = &f->stocks[o->stock];

	m->type = 'U';
	m->locate = (uint16_t)(o->stock + 1);
	m->u.replace.orig_ref = o->ref;
	/* The original ends here; the new reference takes its place (and its slot) in the book. */
	o->ref = f->next_ref++;
	o->shares = rand_shares(f);
	o->price = rest_price(f, s, o->side);
	m->u.replace.new_ref = o->ref;
	m->u.replace.shares = o->shares;
	m->u.replace.price = o->price;
}

static void gen_trade(struct sl_feed *f, struct sl_itch_msg *m)
{
	uint32_t si = rand_stock(f);
	const struct feed_stock *s = &f->stocks[si];

	/* Since 2010 NASDAQ sends 0 as the reference and, since 2014, 'B' as the side of P. */
	m->type = 'P';
	m->locate = (uint16_t)(si + 1);
	m->u.trade.ref = 0;
	m->u.trade.side = 'B';
	m->u.trade.shares = rand_shares(f);
	set_stock(m->u.trade.stock, s);
	m->u.trade.price = near_mid(f, s);
	m->u.trade.match = f->next_match;
	remember_match(f, f->next_match++);
}

static int gen_broken(struct sl_feed *f, struct sl_itch_msg *m)
{
	/* Break the most recent match not broken yet. */
	for (uint32_t k = 1; k <= FEED_MATCH_RING; k++) {
		uint32_t i = (f->match_pos + FEED_MATCH_RING - k) % FEED_MATCH_RING;

		if (f->matches[i]) {
			m->type = 'B';
			m->locate = (uint16_t)(rand_stock(f) + 1);
			m->u.broken_trade.match = f->matches[i];
			f->matches[i] = 0;
			return 1;
		}
	}
	return 0;
}

static const char cross_types[] = { 'O', 'C', 'H', 'I' };
static const char variations[] = { 'L', '1', '2', '3', '4', '5', '6',
				   '7', '8', '9', 'A', 'B', 'C', ' ' };

/* One of the types in rare_types[]; returns 0 if it cannot be made now (B with no match yet). */
static int gen_rare(struct sl_feed *f, struct sl_itch_msg *m, uint8_t type)
{
	uint32_t si = rand_stock(f);
	const struct feed_stock *s = &f->stocks[si];
	uint32_t mid = s->mid;

	m->type = type;
	m->locate = (uint16_t)(si + 1);
	switch (type) {
	case 'Q':
		m->u.cross_trade.shares = 1000ull * (1 + below(f, 1000));
		set_stock(m->u.cross_trade.stock, s);
		m->u.cross_trade.price = mid;
		m->u.cross_trade.match = f->next_match++;
		m->u.cross_trade.cross_type = cross_types[below(f, 4)];
		return 1;
	case 'B':
		return gen_broken(f, m);
	case 'Y':
		set_stock(m->u.reg_sho.stock, s);
		m->u.reg_sho.action = (char)('0' + below(f, 3));
		return 1;
	case 'L':
		memcpy(m->u.mp_position.mpid, mpids[below(f, FEED_MPIDS)], 4);
		set_stock(m->u.mp_position.stock, s);
		m->u.mp_position.primary_mm = below(f, 4) ? 'N' : 'Y';
		m->u.mp_position.mm_mode = "NPSRL"[below(f, 5)];
		m->u.mp_position.participant_state = "AAAAE"[below(f, 5)];
		return 1;
	case 'V': {
		/* Levels are 7%, 13% and 20% below a prior S&P 500 close, in Price(8). */
		uint64_t spx = (4000ull + below(f, 1000)) * 100000000ull;

		m->locate = 0;
		m->u.mwcb_decline.level1 = spx / 100 * 93;
		m->u.mwcb_decline.level2 = spx / 100 * 87;
		m->u.mwcb_decline.level3 = spx / 100 * 80;
		return 1;
	}
	case 'W':
		m->locate = 0;
		m->u.mwcb_status.breached_level = (char)('1' + below(f, 3));
		return 1;
	case 'K':
		set_stock(m->u.ipo_quoting.stock, s);
		m->u.ipo_quoting.release_time = (uint32_t)(f->ts / 1000000000ull) + 900;
		m->u.ipo_quoting.release_qualifier = below(f, 5) ? 'A' : 'C';
		m->u.ipo_quoting.ipo_price = mid;
		return 1;
	case 'J':
		set_stock(m->u.luld_collar.stock, s);
		m->u.luld_collar.ref_price = mid;
		m->u.luld_collar.upper_price = mid + mid / 20;
		m->u.luld_collar.lower_price = mid - mid / 20;
		m->u.luld_collar.extension = below(f, 4);
		return 1;
	case 'h':
		set_stock(m->u.operational_halt.stock, s);
		m->u.operational_halt.market_code = "QBX"[below(f, 3)];
		m->u.operational_halt.action = below(f, 2) ? 'H' : 'T';
		return 1;
	case 'I':
		m->u.noii.paired_shares = 100ull * below(f, 100000);
		m->u.noii.imbalance_shares = 100ull * below(f, 10000);
		m->u.noii.imbalance_direction = "BSNO"[below(f, 4)];
		set_stock(m->u.noii.stock, s);
		m->u.noii.far_price = near_mid(f, s);
		m->u.noii.near_price = near_mid(f, s);
		m->u.noii.ref_price = mid;
		m->u.noii.cross_type = "OCH"[below(f, 3)];
		m->u.noii.price_variation = variations[below(f, sizeof(variations))];
		return 1;
	case 'N':
		set_stock(m->u.rpii.stock, s);
		m->u.rpii.interest_flag = "BSAN"[below(f, 4)];
		return 1;
	case 'O':
		set_stock(m->u.dlcr.stock, s);
		m->u.dlcr.open_eligibility = below(f, 4) ? 'Y' : 'N';
		m->u.dlcr.min_price = mid - mid / 10;
		m->u.dlcr.max_price = mid + mid / 10;
		m->u.dlcr.near_price = near_mid(f, s);
		m->u.dlcr.near_time = f->ts;
		m->u.dlcr.lower_collar = mid - mid / 20;
		m->u.dlcr.upper_collar = mid + mid / 20;
		return 1;
	default:
		return 0;
	}
}

static void shuffle_rare(struct sl_feed *f)
{
	memcpy(f->rare_cycle, rare_types, FEED_RARE_N);
	for (uint32_t i = FEED_RARE_N - 1; i > 0; i--) {
		uint32_t j = below(f, i + 1);
		uint8_t t = f->rare_cycle[i];

		f->rare_cycle[i] = f->rare_cycle[j];
		f->rare_cycle[j] = t;
	}
	f->rare_pos = 0;
}

/* One message of the continuous session. */
static void gen_flow(struct sl_feed *f, struct sl_itch_msg *m)
{
	uint32_t r;

	if (--f->rare_in == 0) {
		/* Mean 200 flow messages between rare ones: a 12-type cycle fits in 4,200. */
		f->rare_in = 50 + below(f, 300);
		if (gen_rare(f, m, f->rare_cycle[f->rare_pos])) {
			if (++f->rare_pos == FEED_RARE_N)
				shuffle_rare(f);
			return;
		}
		/* No match to break yet: trade now so the broken trade can follow at once. */
		f->rare_in = 1;
		memset(&m->u, 0, sizeof(m->u));
		gen_trade(f, m);
		return;
	}

	r = below(f, 1000);
	if (f->live == 0)
		r = 0; /* nothing to act on: add */
	if (r < 490 && f->live == f->cap)
		r = 700; /* the book is full: an order leaves instead of one arriving */

	if (r < 440)
		gen_add(f, m, 0);
	else if (r < 490)
		gen_add(f, m, 1);
	else if (r < 570)
		gen_exec(f, m, 0);
	else if (r < 590)
		gen_exec(f, m, 1);
	else if (r < 690)
		gen_cancel(f, m);
	else if (r < 870)
		gen_delete(f, m);
	else if (r < 980)
		gen_replace(f, m);
	else
		gen_trade(f, m);
}

/* Opening: O, S, R per stock, H 'T' per stock, Q. Index i of the session. */
static void gen_open(struct sl_feed *f, struct sl_itch_msg *m, uint64_t i)
{
	uint64_t n = f->cfg.stocks;

	if (i == 0 || i == 1 || i == 2 + 2 * n) {
		m->type = 'S';
		m->u.system_event.event_code = i == 0 ? 'O' : i == 1 ? 'S' : 'Q';
	} else if (i < 2 + n) {
		uint32_t si = (uint32_t)(i - 2);
		const struct feed_stock *s = &f->stocks[si];

		m->type = 'R';
		m->locate = (uint16_t)(si + 1);
		set_stock(m->u.stock_directory.stock, s);
		m->u.stock_directory.market_category = "QQQGGS"[si % 6];
		m->u.stock_directory.financial_status = 'N';
		m->u.stock_directory.round_lot_size = 100;
		m->u.stock_directory.round_lots_only = 'N';
		m->u.stock_directory.issue_classification = 'C';
		memcpy(m->u.stock_directory.issue_subtype, "Z ", 2);
		m->u.stock_directory.authenticity = 'P';
		m->u.stock_directory.short_sale_threshold = 'N';
		m->u.stock_directory.ipo_flag = 'N';
		m->u.stock_directory.luld_ref_price_tier = si < 100 ? '1' : '2';
		m->u.stock_directory.etp_flag = 'N';
		m->u.stock_directory.etp_leverage_factor = 0;
		m->u.stock_directory.inverse_indicator = 'N';
	} else {
		uint32_t si = (uint32_t)(i - 2 - n);

		m->type = 'H';
		m->locate = (uint16_t)(si + 1);
		set_stock(m->u.trading_action.stock, &f->stocks[si]);
		m->u.trading_action.trading_state = 'T';
		m->u.trading_action.reserved = ' ';
		memcpy(m->u.trading_action.reason, "    ", 4);
	}
}

/* Generate the next message into buf (>= SL_ITCH_MAX_LEN bytes); its length. */
static int gen_next(struct sl_feed *f, uint8_t *buf)
{
	struct sl_itch_msg m;
	uint64_t total = f->cfg.messages;
	uint64_t tail = total < FEED_TAIL ? total : FEED_TAIL;
	uint64_t i = f->produced;
	int len;

	memset(&m, 0, sizeof(m));
	f->ts += below(f, f->gap_span + 1);
	m.timestamp = f->ts;

	if (i >= total - tail) {
		/* The last messages are M, E, C (only the last of them in tiny sessions). */
		m.type = 'S';
		m.u.system_event.event_code = "MEC"[FEED_TAIL - (total - i)];
	} else if (i < 3 + 2 * (uint64_t)f->cfg.stocks) {
		gen_open(f, &m, i);
	} else {
		gen_flow(f, &m);
		m.tracking = (uint16_t)(1 + below(f, 4));
	}
	f->produced++;
	len = sl__itch_encode(&m, buf, SL_ITCH_MAX_LEN);
	/* Every builder above fills a valid ITCH 5.0 message: a failure is a bug here. */
	if (len <= 0)
		abort();
	return len;
}

/* ---- API ---------------------------------------------------------------------------------- */

void sl__feed_config_init(struct sl_feed_config *c)
{
	memset(c, 0, sizeof(*c));
	c->seed = 1;
	c->messages = 100000;
	c->stocks = 64;
	memcpy(c->session, "SLUICE0001", SL_MOLD_SESSION_LEN);
	c->max_packet = 1400;
	c->first_seq = 1;
}

int sl__feed_new(const struct sl_feed_config *c, struct sl_feed **out)
{
	struct sl_feed *f;
	uint64_t sm, mean;

	*out = NULL;
	/* A packet must hold at least the header and the longest message with its length. */
	if (c->messages < 1 || c->stocks < 1 || c->stocks > 65535 || c->first_seq < 1 ||
	    c->max_packet < SL_MOLD_HDR_LEN + 2 + SL_ITCH_MAX_LEN ||
	    c->max_packet > SL_MOLD_MAX_PACKET)
		return SL_ECONFIG;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = *c;
	f->cap = c->stocks * 64u;
	if (f->cap < 1024)
		f->cap = 1024;
	if (f->cap > (1u << 20))
		f->cap = 1u << 20;
	f->stocks = calloc(c->stocks, sizeof(*f->stocks));
	f->orders = calloc(f->cap, sizeof(*f->orders));
	if (!f->stocks || !f->orders) {
		sl__feed_free(f);
		return -ENOMEM;
	}

	sm = c->seed;
	for (int i = 0; i < 4; i++)
		f->rng[i] = splitmix64(&sm);
	f->seq = c->first_seq;
	f->ts = FEED_START_NS;
	mean = FEED_SPAN_NS / c->messages;
	if (mean > FEED_MEAN_GAP_NS)
		mean = FEED_MEAN_GAP_NS;
	f->gap_span = (uint32_t)(mean ? 2 * mean : 1);
	f->next_ref = 1;
	f->next_match = 1;
	f->rare_in = 50 + below(f, 300);
	make_stocks(f);
	shuffle_rare(f);
	*out = f;
	return 0;
}

void sl__feed_free(struct sl_feed *f)
{
	if (!f)
		return;
	free(f->stocks);
	free(f->orders);
	free(f);
}

int sl__feed_next_msg(struct sl_feed *f, uint8_t *buf, size_t cap)
{
	int len;

	if (f->produced == f->cfg.messages)
		return 0;
	if (cap < SL_ITCH_MAX_LEN)
		return -ENOSPC;
	len = gen_next(f, buf);
	f->seq++;
	return len;
}

int sl__feed_next_packet(struct sl_feed *f, uint8_t *buf, size_t cap, uint64_t *first_seq,
			 uint16_t *count)
{
	size_t len = SL_MOLD_HDR_LEN;
	uint16_t n = 0;

	if (cap < f->cfg.max_packet)
		return -ENOSPC;
	if (!f->pending_len && f->produced == f->cfg.messages)
		return 0;

	sl__mold_packet_init(buf, f->cfg.session, f->seq);
	*first_seq = f->seq;
	/* A count of 0xFFFF means end of session: never carry that many (64 KiB could not). */
	while (n < 0xFFFE) {
		if (!f->pending_len) {
			if (f->produced == f->cfg.messages)
				break;
			f->pending_len = (uint16_t)gen_next(f, f->pending);
		}
		if (sl__mold_packet_add(buf, f->cfg.max_packet, &len, f->pending, f->pending_len))
			break; /* full: the message opens the next packet */
		f->pending_len = 0;
		f->seq++;
		n++;
	}
	*count = n;
	return (int)len;
}

uint64_t sl__feed_next_seq(const struct sl_feed *f)
{
	return f->seq;
}

const char *sl__feed_session(const struct sl_feed *f)
{
	return f->cfg.session;
}
