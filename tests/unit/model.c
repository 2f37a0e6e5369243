/* model.c - the reference model of ITCH order, trade and stock state, the workload that feeds
 * it and the store, and the checks that compare the two (model.h says what they are). Shared by
 * tests/unit/test_model.c and tests/crash/crash_model.c; it knows nothing of how they drive the
 * store.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "feed.h"
#include "itch.h"
#include "model.h"
#include "sluice.h"

/* ---- Failure reporting -------------------------------------------------------------------- */

struct mctx mctx;
struct mnotes notes;
unsigned mwatch_secs = 60;

/* A scan being checked: a failure closes it before it jumps out. */
static struct sl_scan *mscan_open;

void mfail(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mctx.failed = 1;
	sl_scan_close(mscan_open);
	mscan_open = NULL;
	fail_msg("%s: %s at seq %" PRIu64 " (SL_MODEL_SEED=%" PRIu64 "%s%s): %s",
		 mctx.test ? mctx.test : "?", mctx.step ? mctx.step : "?", mctx.seq, mctx.seed,
		 mctx.dir[0] ? ", data kept in " : "", mctx.dir, msg);
}

void notice_once(int *flag, const char *fmt, ...)
{
	va_list ap;

	if (*flag)
		return;
	*flag = 1;
	printf("%s: notice: ", mctx.test ? mctx.test : "model");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void watchdog_fire(int sig)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "\n%s: HUNG for %u s in %s at seq %" PRIu64 " (SL_MODEL_SEED=%" PRIu64
			 ", data in %s)\n",
			 mctx.test ? mctx.test : "?", mwatch_secs, mctx.step ? mctx.step : "?",
			 mctx.seq, mctx.seed, mctx.dir);
	ssize_t w = write(2, msg, n > 0 ? (size_t)n : 0);

	(void)w;
	(void)sig;
	_exit(3);
}

void watchdog_arm(void)
{
	static int installed;

	if (!installed) {
		installed = 1;
		signal(SIGALRM, watchdog_fire);
	}
	alarm(mwatch_secs);
}

/* ---- Random numbers: splitmix64 ----------------------------------------------------------- */

uint64_t mrnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t mbelow(uint64_t *s, uint64_t n)
{
	return mrnd(s) % n;
}

uint64_t mrange(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return lo + mrnd(s) % (hi - lo + 1);
}

int mchance(uint64_t *s, unsigned permille)
{
	return mbelow(s, 1000) < permille;
}

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- The message stream ------------------------------------------------------------------- */

const uint8_t *mstream_msg(const struct mstream *s, uint64_t seq, uint32_t *len)
{
	*len = (uint32_t)(s->off[seq] - s->off[seq - 1]);
	return s->bytes + s->off[seq - 1];
}

void mstream_push(struct mstream *s, const uint8_t *p, uint32_t len)
{
	if (!s->cap_n) {
		s->cap_n = 1 << 16;
		s->cap_b = 1 << 21;
		s->off = malloc((s->cap_n + 1) * sizeof(*s->off));
		s->bytes = malloc(s->cap_b);
		assert_true(s->off && s->bytes);
		s->off[0] = 0;
	}
	if (s->n == s->cap_n) {
		s->cap_n *= 2;
		s->off = realloc(s->off, (s->cap_n + 1) * sizeof(*s->off));
		assert_non_null(s->off);
	}
	if (s->off[s->n] + len > s->cap_b) {
		s->cap_b *= 2;
		s->bytes = realloc(s->bytes, s->cap_b);
		assert_non_null(s->bytes);
	}
	memcpy(s->bytes + s->off[s->n], p, len);
	s->off[s->n + 1] = s->off[s->n] + len;
	s->n++;
}

void mstream_release(struct mstream *s)
{
	free(s->bytes);
	free(s->off);
	memset(s, 0, sizeof(*s));
}

/* ---- The reference model ------------------------------------------------------------------ */

static uint64_t mhash(uint64_t a, uint64_t b)
{
	uint64_t x =
		a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 32);
}

static void mindex_init(struct mindex *ix, uint64_t cap)
{
	ix->cap = cap;
	ix->slot = calloc(cap, sizeof(*ix->slot));
	assert_non_null(ix->slot);
}

void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	mindex_init(&m->oix, 1024);
	mindex_init(&m->tix, 1024);
	m->stock = calloc(65536, sizeof(*m->stock));
	assert_non_null(m->stock);
}

void model_release(struct model *m)
{
	free(m->ord);
	free(m->tr);
	free(m->oix.slot);
	free(m->tix.slot);
	free(m->stock);
	memset(m, 0, sizeof(*m));
}

void model_reset(struct model *m)
{
	model_release(m);
	model_init(m);
}

static uint32_t *order_slot(const struct model *m, uint16_t locate, uint64_t ref)
{
	uint64_t mask = m->oix.cap - 1, i = mhash(ref, locate) & mask;

	for (;; i = (i + 1) & mask) {
		uint32_t v = m->oix.slot[i];

		if (!v || (m->ord[v - 1].o.ref == ref && m->ord[v - 1].o.locate == locate))
			return &m->oix.slot[i];
	}
}

static uint32_t *trade_slot(const struct model *m, uint64_t match)
{
	uint64_t mask = m->tix.cap - 1, i = mhash(match, 7) & mask;

	for (;; i = (i + 1) & mask) {
		uint32_t v = m->tix.slot[i];

		if (!v || m->tr[v - 1].match == match)
			return &m->tix.slot[i];
	}
}

const struct mord *model_order(const struct model *m, uint16_t locate, uint64_t ref)
{
	uint32_t v = *order_slot(m, locate, ref);

	return v ? &m->ord[v - 1] : NULL;
}

const struct sl_trade *model_trade(const struct model *m, uint64_t match)
{
	uint32_t v = *trade_slot(m, match);

	return v ? &m->tr[v - 1] : NULL;
}

const struct sl_stock *model_stock(const struct model *m, uint16_t locate)
{
	return m->stock[locate].version ? &m->stock[locate] : NULL;
}

static struct mord *order_find(struct model *m, uint16_t locate, uint64_t ref)
{
	uint32_t v = *order_slot(m, locate, ref);

	return v ? &m->ord[v - 1] : NULL;
}

/* The record of (locate, ref), created blank when new. */
static struct mord *order_put(struct model *m, uint16_t locate, uint64_t ref)
{
	uint32_t *sl = order_slot(m, locate, ref);

	if (*sl)
		return &m->ord[*sl - 1];
	if ((m->nord + 1) * 2 > m->oix.cap) {
		free(m->oix.slot);
		mindex_init(&m->oix, m->oix.cap * 2);
		for (uint64_t i = 0; i < m->nord; i++)
			*order_slot(m, m->ord[i].o.locate, m->ord[i].o.ref) = (uint32_t)(i + 1);
		sl = order_slot(m, locate, ref);
	}
	if (m->nord == m->cord) {
		m->cord = m->cord ? m->cord * 2 : 4096;
		m->ord = realloc(m->ord, m->cord * sizeof(*m->ord));
		assert_non_null(m->ord);
	}
	struct mord *r = &m->ord[m->nord++];
	memset(r, 0, sizeof(*r));
	r->o.locate = locate;
	r->o.ref = ref;
	*sl = (uint32_t)m->nord;
	return r;
}

/* Insert or overwrite a trade (a match number seen again replaces the record). */
static void trade_set(struct model *m, const struct sl_trade *t)
{
	uint32_t *sl = trade_slot(m, t->match);

	if (*sl) {
		m->tr[*sl - 1] = *t;
		return;
	}
	if ((m->ntr + 1) * 2 > m->tix.cap) {
		free(m->tix.slot);
		mindex_init(&m->tix, m->tix.cap * 2);
		for (uint64_t i = 0; i < m->ntr; i++)
			*trade_slot(m, m->tr[i].match) = (uint32_t)(i + 1);
		sl = trade_slot(m, t->match);
	}
	if (m->ntr == m->ctr) {
		m->ctr = m->ctr ? m->ctr * 2 : 4096;
		m->tr = realloc(m->tr, m->ctr * sizeof(*m->tr));
		assert_non_null(m->tr);
	}
	m->tr[m->ntr++] = *t;
	*sl = (uint32_t)m->ntr;
}

/* A wire symbol (space padded) as the API returns it: trailing spaces dropped, NUL ended. */
static void sym_trim(char *dst, const char *wire, size_t n)
{
	memcpy(dst, wire, n);
	dst[n] = 0;
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == 0))
		dst[--n] = 0;
}

/* A (new or reused) order starts over, open: A, F, and the new side of U. */
static void m_open(struct model *m, const struct sl_itch_msg *x, uint64_t seq, uint64_t ref,
		   char side, uint32_t shares, uint32_t price, const char *stock, const char *mpid,
		   uint64_t replaces)
{
	struct mord *r = order_put(m, x->locate, ref);
	struct sl_order *o = &r->o;

	memset(r, 0, sizeof(*r));
	o->version = SL_ORDER_VERSION;
	o->locate = x->locate;
	o->ref = ref;
	o->side = side;
	o->status = SL_ORDER_OPEN;
	snprintf(o->stock, sizeof(o->stock), "%s", stock);
	snprintf(o->mpid, sizeof(o->mpid), "%s", mpid);
	o->price = price;
	o->shares = o->orig_shares = shares;
	o->replaces = replaces;
	o->added_ts = o->updated_ts = x->timestamp;
	o->added_seq = o->updated_seq = seq;
}

static void m_touch(struct mord *r, const struct sl_itch_msg *x, uint64_t seq)
{
	r->o.updated_ts = x->timestamp;
	r->o.updated_seq = seq;
}

static void m_close(struct mord *r, uint8_t status, uint64_t seq)
{
	if (r->o.status == SL_ORDER_OPEN)
		r->final_seq = seq;
	r->o.status = status;
}

/* E and C: a trade at the order's price (C: the message's) for the message's shares, then the
 * order loses what it has of them; an order nobody added is ignored, trade included. */
static void m_execute(struct model *m, const struct sl_itch_msg *x, uint64_t seq)
{
	struct mord *r = order_find(m, x->locate, x->u.executed.ref);

	if (!r) {
		m->missing++;
		return;
	}
	struct sl_trade t = { .version = SL_TRADE_VERSION,
			      .locate = x->locate,
			      .kind = (char)x->type,
			      .side = r->o.side,
			      .match = x->u.executed.match,
			      .ref = r->o.ref,
			      .cross_type = ' ',
			      .printable = 'Y',
			      .shares = x->u.executed.shares,
			      .price = r->o.price,
			      .ts = x->timestamp,
			      .seq = seq };
	memcpy(t.stock, r->o.stock, sizeof(t.stock));
	if (x->type == SL_ITCH_ORDER_EXECUTED_PRICE) {
		t.printable = (uint8_t)x->u.executed.printable;
		t.price = x->u.executed.price;
	}
	trade_set(m, &t);
	uint32_t n = x->u.executed.shares < r->o.shares ? x->u.executed.shares : r->o.shares;
	r->o.shares -= n;
	r->o.executed_shares += n;
	m_touch(r, x, seq);
	if (!r->o.shares && r->o.status == SL_ORDER_OPEN)
		m_close(r, SL_ORDER_EXECUTED, seq);
}

static void m_cancel(struct model *m, const struct sl_itch_msg *x, uint64_t seq)
{
	struct mord *r = order_find(m, x->locate, x->u.cancel.ref);

	if (!r) {
		m->missing++;
		return;
	}
	uint32_t n = x->u.cancel.shares < r->o.shares ? x->u.cancel.shares : r->o.shares;
	r->o.shares -= n;
	r->o.cancelled_shares += n;
	m_touch(r, x, seq);
	if (!r->o.shares && r->o.status == SL_ORDER_OPEN)
		m_close(r, SL_ORDER_CANCELLED, seq);
}

static void m_delete(struct model *m, const struct sl_itch_msg *x, uint64_t seq)
{
	struct mord *r = order_find(m, x->locate, x->u.del.ref);

	if (!r) {
		m->missing++;
		return;
	}
	r->o.cancelled_shares += r->o.shares;
	r->o.shares = 0;
	m_touch(r, x, seq);
	m_close(r, SL_ORDER_DELETED, seq);
}

/* U: the new reference opens with the old one's side, stock and attribution; then the old one
 * is replaced (its remaining shares leave without counting as cancelled). New before old, so
 * a replace naming itself ends replaced. */
static void m_replace(struct model *m, const struct sl_itch_msg *x, uint64_t seq)
{
	struct mord *old = order_find(m, x->locate, x->u.replace.orig_ref);

	if (!old) {
		m->missing++;
		return;
	}
	char side = old->o.side, stock[9], mpid[5];
	uint64_t oref = old->o.ref;
	memcpy(stock, old->o.stock, sizeof(stock));
	memcpy(mpid, old->o.mpid, sizeof(mpid));
	m_open(m, x, seq, x->u.replace.new_ref, side, x->u.replace.shares, x->u.replace.price,
	       stock, mpid, oref);
	old = order_find(m, x->locate, x->u.replace.orig_ref); /* the vector may have moved */
	old->o.replaced_by = x->u.replace.new_ref;
	old->o.shares = 0;
	m_touch(old, x, seq);
	m_close(old, SL_ORDER_REPLACED, seq);
}

static void m_trade(struct model *m, const struct sl_itch_msg *x, uint64_t seq)
{
	struct sl_trade t = { .version = SL_TRADE_VERSION,
			      .locate = x->locate,
			      .kind = (char)x->type,
			      .printable = 'Y',
			      .ts = x->timestamp,
			      .seq = seq };

	if (x->type == SL_ITCH_TRADE) {
		t.side = x->u.trade.side;
		t.match = x->u.trade.match;
		t.ref = x->u.trade.ref;
		t.cross_type = ' ';
		t.shares = x->u.trade.shares;
		t.price = x->u.trade.price;
		sym_trim(t.stock, x->u.trade.stock, 8);
	} else {
		t.side = ' ';
		t.match = x->u.cross_trade.match;
		t.cross_type = x->u.cross_trade.cross_type;
		t.shares = x->u.cross_trade.shares;
		t.price = x->u.cross_trade.price;
		sym_trim(t.stock, x->u.cross_trade.stock, 8);
	}
	trade_set(m, &t);
}

/* R: a new entry trades ('T') until an H says otherwise; a re-issue keeps the trading state. */
static void m_directory(struct model *m, const struct sl_itch_msg *x, uint64_t seq)
{
	struct sl_stock *s = &m->stock[x->locate];

	if (!s->version) {
		s->version = SL_STOCK_VERSION;
		s->trading_state = 'T';
	}
	s->locate = x->locate;
	sym_trim(s->stock, x->u.stock_directory.stock, 8);
	s->market_category = x->u.stock_directory.market_category;
	s->financial_status = x->u.stock_directory.financial_status;
	s->round_lot_size = x->u.stock_directory.round_lot_size;
	s->seq = seq;
}

int model_apply(struct model *m, uint64_t seq, const uint8_t *p, uint32_t len)
{
	struct sl_itch_msg x;

	m->seq = seq;
	if (sl__itch_decode(p, len, &x)) {
		m->bad++;
		return 0;
	}
	switch (x.type) {
	case SL_ITCH_ADD_ORDER:
	case SL_ITCH_ADD_ORDER_MPID: {
		char stock[9], mpid[5] = "";

		sym_trim(stock, x.u.add_order.stock, 8);
		if (x.type == SL_ITCH_ADD_ORDER_MPID)
			sym_trim(mpid, x.u.add_order.mpid, 4);
		m_open(m, &x, seq, x.u.add_order.ref, x.u.add_order.side, x.u.add_order.shares,
		       x.u.add_order.price, stock, mpid, 0);
		break;
	}
	case SL_ITCH_ORDER_EXECUTED:
	case SL_ITCH_ORDER_EXECUTED_PRICE:
		m_execute(m, &x, seq);
		break;
	case SL_ITCH_ORDER_CANCEL:
		m_cancel(m, &x, seq);
		break;
	case SL_ITCH_ORDER_DELETE:
		m_delete(m, &x, seq);
		break;
	case SL_ITCH_ORDER_REPLACE:
		m_replace(m, &x, seq);
		break;
	case SL_ITCH_TRADE:
	case SL_ITCH_CROSS_TRADE:
		m_trade(m, &x, seq);
		break;
	case SL_ITCH_BROKEN_TRADE: {
		uint32_t v = *trade_slot(m, x.u.broken_trade.match);

		if (v)
			m->tr[v - 1].broken = 1; /* the trade keeps its sequence */
		break;
	}
	case SL_ITCH_STOCK_DIRECTORY:
		m_directory(m, &x, seq);
		break;
	case SL_ITCH_TRADING_ACTION:
		if (m->stock[x.locate].version) {
			m->stock[x.locate].trading_state = x.u.trading_action.trading_state;
			m->stock[x.locate].seq = seq;
		}
		break;
	default:
		break;
	}
	return x.type;
}

void model_advance(struct model *m, const struct mstream *s, uint64_t to)
{
	for (uint64_t k = m->seq + 1; k <= to; k++) {
		uint32_t len;
		const uint8_t *p = mstream_msg(s, k, &len);

		model_apply(m, k, p, len);
	}
}

/* ---- The workload: the feed with edge cases mixed in --------------------------------------- */

/* The generator: the workload so far and what it needs to make the next message. */
struct gen {
	struct model m; /* the state after every message generated so far */
	struct mstream *s;
	uint64_t rng;
	uint32_t stocks;
	uint64_t ts; /* of the last feed message */
	uint64_t next_ref, next_wide, next_match;
	uint32_t next_locate; /* directory entries beyond the feed's */
	struct mkey *live;    /* injected orders, maybe open (checked when picked) */
	size_t nlive, clive;
};

static const char *const odd_mpids[] = { "GSCO", "A", " AB", "  X", "VIRT", "Q Q" };

void padn(char *out, const char *s, size_t n)
{
	size_t l = strnlen(s, n);

	memset(out, ' ', n);
	memcpy(out, s, l);
}

void pad8(char out[8], const char *s)
{
	padn(out, s, 8);
}

static void gen_symbol(struct gen *g, char out[8])
{
	uint32_t n = 1 + (uint32_t)mbelow(&g->rng, 8);

	memset(out, ' ', 8);
	for (uint32_t i = 0; i < n; i++)
		out[i] = (char)('A' + mbelow(&g->rng, 26));
	/* Class shares and the like: "BF B", "BRK.A". */
	if (n >= 3 && mchance(&g->rng, 200))
		out[1 + mbelow(&g->rng, n - 2)] = mchance(&g->rng, 500) ? ' ' : '.';
}

static void gen_stock_of(struct gen *g, uint16_t locate, char out[8])
{
	const struct sl_stock *st = model_stock(&g->m, locate);

	if (st && mchance(&g->rng, 900))
		pad8(out, st->stock);
	else
		gen_symbol(g, out);
}

static uint64_t gen_ts(struct gen *g)
{
	if (mchance(&g->rng, 30))
		return mbelow(&g->rng, 1ull << 48); /* anywhere a 6-byte timestamp reaches */
	return g->ts + mbelow(&g->rng, 1000);
}

static uint16_t gen_locate(struct gen *g)
{
	uint32_t r = (uint32_t)mbelow(&g->rng, 100);

	if (r < 5 && g->next_locate > g->stocks + 1)
		return (uint16_t)mrange(&g->rng, g->stocks + 1, g->next_locate - 1);
	if (r < 10)
		return (uint16_t)mbelow(&g->rng, NX_LOCATE);
	return (uint16_t)(1 + mbelow(&g->rng, g->stocks));
}

/* A reference number nobody used, for an injected order (may move *locate for edge keys). */
static uint64_t gen_new_ref(struct gen *g, uint16_t *locate)
{
	uint32_t r = (uint32_t)mbelow(&g->rng, 100);

	if (r < 85)
		return IREF_BASE + g->next_ref++;
	if (r < 92)
		return IREF_WIDE + g->next_wide++;
	if (r < 97)
		return UINT64_MAX - g->next_wide++;
	/* Keys whose packed form is one of ck_ht's two reserved words, reused over and over. */
	if (r < 99)
		return 0;
	*locate = EDGE_LOCATE;
	return (1ull << 48) - 1;
}

static uint64_t gen_match(struct gen *g)
{
	if (g->m.ntr && mchance(&g->rng, 100))
		return g->m.tr[mbelow(&g->rng, g->m.ntr)].match; /* reused: overwrites */
	return IMATCH_BASE + g->next_match++;
}

static void live_push(struct gen *g, uint16_t locate, uint64_t ref)
{
	if (g->nlive == g->clive) {
		g->clive = g->clive ? g->clive * 2 : 256;
		g->live = realloc(g->live, g->clive * sizeof(*g->live));
		assert_non_null(g->live);
	}
	g->live[g->nlive++] = (struct mkey){ locate, ref };
}

/* An injected order that is open now (the feed never names those). */
static const struct mord *gen_pick_live(struct gen *g)
{
	while (g->nlive) {
		size_t i = mbelow(&g->rng, g->nlive);
		const struct mord *r = model_order(&g->m, g->live[i].locate, g->live[i].ref);

		if (r && r->o.status == SL_ORDER_OPEN)
			return r;
		g->live[i] = g->live[--g->nlive];
	}
	return NULL;
}

/* An order in a final state, to reuse its key. */
static const struct mord *gen_pick_final(struct gen *g)
{
	for (int i = 0; i < 4 && g->m.nord; i++) {
		const struct mord *r = &g->m.ord[mbelow(&g->rng, g->m.nord)];

		if (r->o.status != SL_ORDER_OPEN)
			return r;
	}
	return NULL;
}

static void gen_named(struct gen *g, uint16_t locate, uint64_t ref)
{
	struct mstream *s = g->s;

	if (s->nnamed < sizeof(s->named) / sizeof(s->named[0]))
		s->named[s->nnamed++] = (struct mkey){ locate, ref };
	else
		s->named[mbelow(&g->rng, s->nnamed)] = (struct mkey){ locate, ref };
}

/* A key nothing ever creates. */
static void gen_nx_key(uint64_t *rng, uint32_t stocks, uint16_t *locate, uint64_t *ref)
{
	if (mchance(rng, 500)) {
		*locate = (uint16_t)(1 + mbelow(rng, stocks));
		*ref = NX_LOW + mbelow(rng, NX_LOW);
	} else {
		*locate = (uint16_t)mbelow(rng, 65536);
		*ref = NX_HIGH + mbelow(rng, 1ull << 40);
	}
}

static void inj_add(struct gen *g, struct sl_itch_msg *x, const struct mord *reuse)
{
	uint16_t locate = reuse ? reuse->o.locate : gen_locate(g);
	uint64_t ref = reuse ? reuse->o.ref : gen_new_ref(g, &locate);

	x->type = mchance(&g->rng, 500) ? SL_ITCH_ADD_ORDER_MPID : SL_ITCH_ADD_ORDER;
	x->locate = locate;
	x->u.add_order.ref = ref;
	x->u.add_order.side = mchance(&g->rng, 500) ? 'B' : 'S';
	x->u.add_order.shares = mchance(&g->rng, 30) ? 0 : (uint32_t)mrange(&g->rng, 1, 20000);
	x->u.add_order.price = mchance(&g->rng, 20) ? (mchance(&g->rng, 500) ? 0 : UINT32_MAX)
						    : (uint32_t)mrange(&g->rng, 1, 5000000);
	gen_stock_of(g, locate, x->u.add_order.stock);
	padn(x->u.add_order.mpid, odd_mpids[mbelow(&g->rng, 6)], 4);
	live_push(g, locate, ref);
}

static void inj_live_op(struct gen *g, struct sl_itch_msg *x)
{
	const struct mord *r = gen_pick_live(g);
	uint32_t k = (uint32_t)mbelow(&g->rng, 100);

	if (!r) {
		inj_add(g, x, NULL);
		return;
	}
	x->locate = r->o.locate;
	if (k < 45) {
		/* Executions of up to a fifth more than is left: the surplus is not executed. */
		x->type = k < 30 ? SL_ITCH_ORDER_EXECUTED : SL_ITCH_ORDER_EXECUTED_PRICE;
		x->u.executed.ref = r->o.ref;
		x->u.executed.shares = (uint32_t)mbelow(&g->rng, r->o.shares + r->o.shares / 5 + 3);
		x->u.executed.match = gen_match(g);
		x->u.executed.printable = mchance(&g->rng, 800) ? 'Y' : 'N';
		x->u.executed.price = (uint32_t)mrange(&g->rng, 1, 5000000);
	} else if (k < 70) {
		x->type = SL_ITCH_ORDER_CANCEL;
		x->u.cancel.ref = r->o.ref;
		x->u.cancel.shares = (uint32_t)mbelow(&g->rng, r->o.shares + 3);
	} else if (k < 85) {
		x->type = SL_ITCH_ORDER_DELETE;
		x->u.del.ref = r->o.ref;
	} else {
		uint16_t locate = r->o.locate;
		uint64_t nref = mchance(&g->rng, 100) ? r->o.ref : gen_new_ref(g, &locate);

		if (locate != r->o.locate)
			nref = IREF_BASE + g->next_ref++; /* an edge key lives at another locate */
		x->type = SL_ITCH_ORDER_REPLACE;
		x->u.replace.orig_ref = r->o.ref;
		x->u.replace.new_ref = nref;
		x->u.replace.shares = (uint32_t)mrange(&g->rng, 0, 20000);
		x->u.replace.price = (uint32_t)mrange(&g->rng, 1, 5000000);
		if (nref != r->o.ref)
			live_push(g, x->locate, nref);
	}
}

static void inj_unknown(struct gen *g, struct sl_itch_msg *x)
{
	uint16_t locate;
	uint64_t ref;
	static const uint8_t types[] = { 'E', 'C', 'X', 'D', 'U' };

	gen_nx_key(&g->rng, g->stocks, &locate, &ref);
	x->type = types[mbelow(&g->rng, 5)];
	x->locate = locate;
	gen_named(g, locate, ref);
	switch (x->type) {
	case 'E':
	case 'C':
		x->u.executed.ref = ref;
		x->u.executed.shares = 100;
		/* The match is named and must stay unknown: no trade comes of it. */
		x->u.executed.match = NX_HIGH + mbelow(&g->rng, 1ull << 40);
		x->u.executed.printable = 'Y';
		x->u.executed.price = 10000;
		break;
	case 'X':
		x->u.cancel.ref = ref;
		x->u.cancel.shares = 100;
		break;
	case 'D':
		x->u.del.ref = ref;
		break;
	default:
		/* No replacement comes of an unknown original either. */
		x->u.replace.orig_ref = ref;
		x->u.replace.new_ref = ref ^ 1;
		x->u.replace.shares = 100;
		x->u.replace.price = 10000;
		gen_named(g, locate, ref ^ 1);
		break;
	}
}

static void inj_trade(struct gen *g, struct sl_itch_msg *x)
{
	uint16_t si = (uint16_t)(1 + mbelow(&g->rng, g->stocks));

	x->locate = si;
	if (mchance(&g->rng, 700)) {
		uint32_t r = (uint32_t)mbelow(&g->rng, 4);

		x->type = SL_ITCH_TRADE;
		x->u.trade.ref = r < 2 ? 0 : r == 2 ? mbelow(&g->rng, NX_LOW) : NX_HIGH + r;
		x->u.trade.side = mchance(&g->rng, 500) ? 'B' : 'S';
		x->u.trade.shares = (uint32_t)mrange(&g->rng, 1, 100000);
		gen_stock_of(g, si, x->u.trade.stock);
		x->u.trade.price = (uint32_t)mrange(&g->rng, 1, 5000000);
		x->u.trade.match = gen_match(g);
	} else {
		x->type = SL_ITCH_CROSS_TRADE;
		x->u.cross_trade.shares = mbelow(&g->rng, 1ull << 40);
		gen_stock_of(g, si, x->u.cross_trade.stock);
		x->u.cross_trade.price = (uint32_t)mrange(&g->rng, 1, 5000000);
		x->u.cross_trade.match = gen_match(g);
		x->u.cross_trade.cross_type = "OCHIA"[mbelow(&g->rng, 5)];
	}
}

static void inj_broken(struct gen *g, struct sl_itch_msg *x)
{
	uint32_t r = (uint32_t)mbelow(&g->rng, 10);

	x->type = SL_ITCH_BROKEN_TRADE;
	x->locate = (uint16_t)(1 + mbelow(&g->rng, g->stocks));
	if (r < 5 && g->m.ntr)
		x->u.broken_trade.match = g->m.tr[mbelow(&g->rng, g->m.ntr)].match; /* maybe old */
	else if (r < 7 && g->m.ntr)
		x->u.broken_trade.match = g->m.tr[g->m.ntr - 1].match;
	else
		x->u.broken_trade.match = NX_HIGH + mbelow(&g->rng, 1ull << 40);
}

static void inj_action(struct gen *g, struct sl_itch_msg *x)
{
	x->type = SL_ITCH_TRADING_ACTION;
	if (mchance(&g->rng, 200))
		x->locate = (uint16_t)mrange(&g->rng, NX_LOCATE, EDGE_LOCATE - 1); /* unknown */
	else
		x->locate = gen_locate(g);
	gen_stock_of(g, x->locate, x->u.trading_action.stock);
	x->u.trading_action.trading_state = "HPQTT"[mbelow(&g->rng, 5)];
	x->u.trading_action.reserved = ' ';
	memcpy(x->u.trading_action.reason, "IPO1", 4);
}

static void inj_directory(struct gen *g, struct sl_itch_msg *x)
{
	static const uint32_t lots[] = { 1, 10, 100, 100, 1000, 0xfffffffeu };
	uint32_t r = (uint32_t)mbelow(&g->rng, 20);

	x->type = SL_ITCH_STOCK_DIRECTORY;
	if (r < 2)
		x->locate = r ? EDGE_LOCATE : 0;
	else if (r < 10 && g->next_locate < NX_LOCATE)
		x->locate = (uint16_t)g->next_locate++;
	else
		x->locate = gen_locate(g); /* a re-issue, or a new entry at an odd locate */
	if (model_stock(&g->m, x->locate) && mchance(&g->rng, 700))
		pad8(x->u.stock_directory.stock, model_stock(&g->m, x->locate)->stock);
	else
		gen_symbol(g, x->u.stock_directory.stock);
	x->u.stock_directory.market_category = "QGSNAPZ "[mbelow(&g->rng, 8)];
	x->u.stock_directory.financial_status = "NDEQ "[mbelow(&g->rng, 5)];
	x->u.stock_directory.round_lot_size = lots[mbelow(&g->rng, 6)];
	x->u.stock_directory.round_lots_only = 'N';
	x->u.stock_directory.issue_classification = 'C';
	memcpy(x->u.stock_directory.issue_subtype, "Z ", 2);
	x->u.stock_directory.authenticity = 'P';
	x->u.stock_directory.short_sale_threshold = 'N';
	x->u.stock_directory.ipo_flag = ' ';
	x->u.stock_directory.luld_ref_price_tier = '1';
	x->u.stock_directory.etp_flag = 'N';
	x->u.stock_directory.inverse_indicator = 'N';
}

/* A message that does not decode: an unknown type, or a known one of the wrong length. */
static void inj_malformed(struct gen *g)
{
	static const uint8_t unknown[] = { 'z', '!', '#', 0x00, 0xff, 'a' };
	static const uint8_t known[] = { 'A', 'F', 'E', 'X', 'D', 'U', 'P', 'Q', 'B', 'R', 'H' };
	uint8_t buf[64];
	uint32_t len;

	if (mchance(&g->rng, 500)) {
		buf[0] = unknown[mbelow(&g->rng, sizeof(unknown))];
		len = (uint32_t)mrange(&g->rng, 1, 40);
	} else {
		buf[0] = known[mbelow(&g->rng, sizeof(known))];
		uint32_t good = (uint32_t)sl__itch_msg_len(buf[0]);
		uint32_t d = (uint32_t)mrange(&g->rng, 1, 3);
		len = mchance(&g->rng, 500) || good <= d ? good + d : good - d;
	}
	for (uint32_t i = 1; i < len; i++)
		buf[i] = (uint8_t)mrnd(&g->rng);
	struct sl_itch_msg x;
	assert_int_not_equal(sl__itch_decode(buf, len, &x), 0);
	mstream_push(g->s, buf, len);
	g->s->malformed++;
}

static void gen_inject(struct gen *g)
{
	struct sl_itch_msg x;
	uint32_t r = (uint32_t)mbelow(&g->rng, 100);

	memset(&x, 0, sizeof(x));
	x.tracking = (uint16_t)mrnd(&g->rng);
	x.timestamp = gen_ts(g);
	if (r < 18)
		inj_add(g, &x, NULL);
	else if (r < 25)
		inj_add(g, &x, gen_pick_final(g)); /* a reference number used again */
	else if (r < 55)
		inj_live_op(g, &x);
	else if (r < 64)
		inj_unknown(g, &x);
	else if (r < 72)
		inj_trade(g, &x);
	else if (r < 78)
		inj_broken(g, &x);
	else if (r < 84)
		inj_action(g, &x);
	else if (r < 89)
		inj_directory(g, &x);
	else if (r < 94) {
		x.type = SL_ITCH_SYSTEM_EVENT;
		x.u.system_event.event_code = "OSQMEC"[mbelow(&g->rng, 6)];
	} else {
		inj_malformed(g);
		return;
	}
	uint8_t buf[64];
	int len = sl__itch_encode(&x, buf, sizeof(buf));
	assert_true(len > 0);
	mstream_push(g->s, buf, (uint32_t)len);
}

void workload_build(const struct wl_config *c, struct mstream *s)
{
	struct sl_feed_config fc;
	struct sl_feed *f = NULL;
	struct gen g;

	memset(s, 0, sizeof(*s));
	memset(&g, 0, sizeof(g));
	model_init(&g.m);
	g.s = s;
	g.rng = c->seed ^ 0x6d6f64656cull;
	g.stocks = c->stocks;
	g.next_locate = c->stocks + 1;
	sl__feed_config_init(&fc);
	fc.seed = c->seed;
	fc.messages = c->feed_messages;
	fc.stocks = c->stocks;
	assert_int_equal(sl__feed_new(&fc, &f), 0);
	for (;;) {
		if (s->n && mchance(&g.rng, c->inject_permille)) {
			gen_inject(&g);
			s->injected++;
		} else {
			uint8_t buf[64];
			int len = sl__feed_next_msg(f, buf, sizeof(buf));
			struct sl_itch_msg x;

			assert_true(len >= 0);
			if (len == 0)
				break;
			mstream_push(s, buf, (uint32_t)len);
			if (sl__itch_decode(buf, (size_t)len, &x) == 0)
				g.ts = x.timestamp;
		}
		uint32_t len;
		const uint8_t *p = mstream_msg(s, s->n, &len);
		model_apply(&g.m, s->n, p, len);
	}
	sl__feed_free(f);
	free(g.live);
	model_release(&g.m);
}

/* ---- Comparing answers -------------------------------------------------------------------- */

/* What an order's answer must be under a policy: not found, the model's, or either. */
enum mexp { MEXP_ABSENT, MEXP_EXACT, MEXP_EITHER };

static enum mexp model_expect(const struct mord *r, const struct mpolicy *p)
{
	if (!r)
		return MEXP_ABSENT;
	if (r->o.status == SL_ORDER_OPEN)
		return MEXP_EXACT;
	if (r->final_seq <= p->gone_upto)
		return MEXP_ABSENT;
	if (r->final_seq <= p->maybe_upto)
		return MEXP_EITHER;
	return MEXP_EXACT;
}

/* Appends " name=got/want" for each field that differs; returns how many differ. */
#define DIFF_NUM(f)                                                                                \
	do {                                                                                       \
		if (g->f != w->f) {                                                                \
			n += snprintf(buf + n, n < cap ? cap - n : 0,                              \
				      " " #f "=%" PRIu64 "/%" PRIu64, (uint64_t)g->f,              \
				      (uint64_t)w->f);                                             \
			bad++;                                                                     \
		}                                                                                  \
	} while (0)
#define DIFF_CHR(f)                                                                                \
	do {                                                                                       \
		if (g->f != w->f) {                                                                \
			n += snprintf(buf + n, n < cap ? cap - n : 0, " " #f "='%c'/'%c'",         \
				      g->f ? g->f : '0', w->f ? w->f : '0');                       \
			bad++;                                                                     \
		}                                                                                  \
	} while (0)
#define DIFF_STR(f)                                                                                \
	do {                                                                                       \
		if (!memchr(g->f, 0, sizeof(g->f)) || strcmp(g->f, w->f)) {                        \
			n += snprintf(buf + n, n < cap ? cap - n : 0, " " #f "=\"%.*s\"/\"%s\"",   \
				      (int)sizeof(g->f), g->f, w->f);                              \
			bad++;                                                                     \
		}                                                                                  \
	} while (0)

static int order_diff(const struct sl_order *g, const struct sl_order *w, char *buf, size_t cap)
{
	size_t n = 0;
	int bad = 0;

	buf[0] = 0;
	DIFF_NUM(version);
	DIFF_NUM(locate);
	DIFF_NUM(ref);
	DIFF_CHR(side);
	DIFF_NUM(status);
	DIFF_STR(stock);
	DIFF_STR(mpid);
	DIFF_NUM(price);
	DIFF_NUM(shares);
	DIFF_NUM(orig_shares);
	DIFF_NUM(executed_shares);
	DIFF_NUM(cancelled_shares);
	DIFF_NUM(replaced_by);
	DIFF_NUM(replaces);
	DIFF_NUM(added_ts);
	DIFF_NUM(updated_ts);
	DIFF_NUM(added_seq);
	DIFF_NUM(updated_seq);
	return bad;
}

static int trade_diff(const struct sl_trade *g, const struct sl_trade *w, char *buf, size_t cap)
{
	size_t n = 0;
	int bad = 0;

	buf[0] = 0;
	DIFF_NUM(version);
	DIFF_NUM(locate);
	DIFF_CHR(kind);
	DIFF_CHR(side);
	DIFF_NUM(match);
	DIFF_NUM(ref);
	DIFF_STR(stock);
	DIFF_CHR(cross_type);
	DIFF_NUM(printable);
	DIFF_NUM(broken);
	DIFF_NUM(shares);
	DIFF_NUM(price);
	DIFF_NUM(ts);
	DIFF_NUM(seq);
	return bad;
}

static int stock_diff(const struct sl_stock *g, const struct sl_stock *w, char *buf, size_t cap)
{
	size_t n = 0;
	int bad = 0;

	buf[0] = 0;
	DIFF_NUM(version);
	DIFF_NUM(locate);
	DIFF_STR(stock);
	DIFF_CHR(market_category);
	DIFF_CHR(financial_status);
	DIFF_NUM(round_lot_size);
	DIFF_CHR(trading_state);
	DIFF_NUM(seq);
	return bad;
}

#undef DIFF_NUM
#undef DIFF_CHR
#undef DIFF_STR

struct mtotals mtot;

static const char *status_name(const struct mord *r)
{
	return r ? sl_order_status_name(r->o.status) : "none";
}

/* Judge one answer for order (locate, ref): rc and *got against the model and the policy. */
static void check_order_answer(const struct mcheck *c, const char *how, uint16_t locate,
			       uint64_t ref, int rc, const struct sl_order *got)
{
	const struct mord *r = model_order(c->m, locate, ref);
	enum mexp e = model_expect(r, &c->pol);
	char diff[1024];

	if (rc == SL_ENOTFOUND) {
		if (e == MEXP_EXACT)
			mfail("%s order (%u, %" PRIu64 "): not found; the model has it %s (added "
			      "at %" PRIu64 ", final at %" PRIu64 ", no compaction could drop it)",
			      how, locate, ref, status_name(r), r->o.added_seq, r->final_seq);
		if (r)
			mtot.orders_gone++;
		else
			mtot.orders_absent++;
		return;
	}
	if (rc != 0)
		mfail("%s order (%u, %" PRIu64 "): %s", how, locate, ref, sl_strerror(rc));
	if (e == MEXP_ABSENT) {
		if (r)
			mfail("%s order (%u, %" PRIu64 "): found (status %s, updated_seq %" PRIu64
			      ") but it was %s at %" PRIu64 ", before a flush and a full "
			      "compaction at %" PRIu64 " that must have dropped it",
			      how, locate, ref, sl_order_status_name(got->status), got->updated_seq,
			      status_name(r), r->final_seq, c->pol.gone_upto);
		mfail("%s order (%u, %" PRIu64 "): found (status %s, added_seq %" PRIu64
		      ") but no message ever added it",
		      how, locate, ref, sl_order_status_name(got->status), got->added_seq);
	}
	if (order_diff(got, &r->o, diff, sizeof(diff)))
		mfail("%s order (%u, %" PRIu64 ") differs from the model (got/want):%s", how,
		      locate, ref, diff);
	mtot.orders++;
}

void check_order(const struct mcheck *c, uint16_t locate, uint64_t ref)
{
	struct sl_order o;
	int rc;

	memset(&o, 0xa5, sizeof(o));
	rc = sl_db_get_order(c->db, locate, ref, &o);
	check_order_answer(c, "sl_db_get_order", locate, ref, rc, &o);
}

void check_trade(const struct mcheck *c, uint64_t match)
{
	const struct sl_trade *w = model_trade(c->m, match);
	struct sl_trade t;
	char diff[1024];
	int rc;

	memset(&t, 0xa5, sizeof(t));
	rc = sl_db_get_trade(c->db, match, &t);
	if (!w) {
		if (rc != SL_ENOTFOUND)
			mfail("sl_db_get_trade(%" PRIu64 "): %s (seq %" PRIu64 "), want not found",
			      match, sl_strerror(rc), rc == 0 ? t.seq : 0);
		return;
	}
	if (rc)
		mfail("sl_db_get_trade(%" PRIu64 ") (made at %" PRIu64 "): %s", match, w->seq,
		      sl_strerror(rc));
	if (trade_diff(&t, w, diff, sizeof(diff)))
		mfail("trade %" PRIu64 " differs from the model (got/want):%s", match, diff);
	mtot.trades++;
}

void check_stock(const struct mcheck *c, uint16_t locate)
{
	const struct sl_stock *w = model_stock(c->m, locate);
	struct sl_stock s;
	char diff[1024];
	int rc;

	memset(&s, 0xa5, sizeof(s));
	rc = sl_db_get_stock(c->db, locate, &s);
	if (!w) {
		if (rc != SL_ENOTFOUND)
			mfail("sl_db_get_stock(%u): %s, want not found", locate, sl_strerror(rc));
		return;
	}
	if (rc)
		mfail("sl_db_get_stock(%u): %s", locate, sl_strerror(rc));
	if (stock_diff(&s, w, diff, sizeof(diff)))
		mfail("stock %u differs from the model (got/want):%s", locate, diff);
	mtot.stocks++;
}

/* A random key: an order of the model (open ones half the time when there are any to find
 * quickly), a key named but never created, or one from the never-created spaces. */
static void pick_key(const struct mcheck *c, uint16_t *locate, uint64_t *ref)
{
	uint32_t r = (uint32_t)mbelow(c->rng, 10);

	if (r < 7 && c->m->nord) {
		const struct mord *o = &c->m->ord[mbelow(c->rng, c->m->nord)];

		for (int i = 0; r < 4 && i < 8 && o->o.status != SL_ORDER_OPEN; i++)
			o = &c->m->ord[mbelow(c->rng, c->m->nord)];
		*locate = o->o.locate;
		*ref = o->o.ref;
	} else if (r < 8 && c->s->nnamed) {
		const struct mkey *k = &c->s->named[mbelow(c->rng, c->s->nnamed)];

		*locate = k->locate;
		*ref = k->ref;
	} else {
		gen_nx_key(c->rng, c->stocks, locate, ref);
	}
}

static int multiget_check(const struct mcheck *c, size_t n, const uint16_t *loc,
			  const uint64_t *ref)
{
	struct sl_order *out = malloc((n ? n : 1) * sizeof(*out));
	int *rc = malloc((n ? n : 1) * sizeof(*rc));
	int r;

	assert_true(out && rc);
	memset(out, 0xa5, (n ? n : 1) * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		rc[i] = 12345;
	r = sl_db_get_orders(c->db, n, loc, ref, out, rc);
	{
		if (r)
			mfail("sl_db_get_orders(%zu keys): %s", n, sl_strerror(r));
		for (size_t i = 0; i < n; i++)
			check_order_answer(c, "sl_db_get_orders", loc[i], ref[i], rc[i], &out[i]);
		mtot.multigets++;
	}
	free(out);
	free(rc);
	return r;
}

void check_multiget_random(const struct mcheck *c)
{
	size_t n = mchance(c->rng, 100) ? 0 : (size_t)mrange(c->rng, 1, 300);
	uint16_t *loc = malloc((n + 1) * sizeof(*loc));
	uint64_t *ref = malloc((n + 1) * sizeof(*ref));

	assert_true(loc && ref);
	for (size_t i = 0; i < n; i++) {
		if (i && mchance(c->rng, 100)) {
			size_t j = mbelow(c->rng, i);

			loc[i] = loc[j];
			ref[i] = ref[j];
		} else {
			pick_key(c, &loc[i], &ref[i]);
		}
	}
	multiget_check(c, n, loc, ref);
	free(loc);
	free(ref);
}

void check_all(const struct mcheck *c)
{
	enum { CHUNK = 1024 };
	uint16_t loc[CHUNK];
	uint64_t ref[CHUNK];

	for (uint64_t i = 0; i < c->m->nord;) {
		size_t n = 0;

		while (n < CHUNK && i < c->m->nord) {
			if (mchance(c->rng, 5)) {
				gen_nx_key(c->rng, c->stocks, &loc[n], &ref[n]);
			} else {
				loc[n] = c->m->ord[i].o.locate;
				ref[n] = c->m->ord[i].o.ref;
				i++;
			}
			n++;
		}
		if (multiget_check(c, n, loc, ref) == -ENOSYS)
			for (size_t k = 0; k < n; k++)
				check_order(c, loc[k], ref[k]);
	}
	for (uint64_t i = 0; i < c->m->ntr; i++)
		check_trade(c, c->m->tr[i].match);
	for (int i = 0; i < 200; i++)
		check_trade(c, mchance(c->rng, 500)
				       ? NX_HIGH + mbelow(c->rng, 1ull << 40)
				       : IMATCH_BASE + NX_LOW + mbelow(c->rng, NX_LOW));
	for (uint32_t l = 0; l < 65536; l++)
		check_stock(c, (uint16_t)l);
}

void check_scan(const struct mcheck *c, int kind, uint16_t locate, uint64_t from, uint64_t to)
{
	struct sl_scan *sc = NULL;
	int r = sl_scan_open(c->db, kind, locate, from, to, &sc);
	uint64_t prev = 0, seen = 0, must = 0, must_seen = 0;
	char diff[1024];

	if (r)
		mfail("sl_scan_open('%c', locate %u, %" PRIu64 "..%" PRIu64 "): %s", kind, locate,
		      from, to, sl_strerror(r));
	mscan_open = sc;
	for (;; seen++) {
		if (kind == SL_SCAN_ORDERS) {
			struct sl_order o;

			r = sl_scan_next_order(sc, &o);
			if (r)
				break;
			if (o.locate != locate || o.added_ts < from || (to && o.added_ts > to) ||
			    (seen && o.ref <= prev))
				mfail("order scan of locate %u over %" PRIu64 "..%" PRIu64
				      " returned (%u, %" PRIu64 ") added at ts %" PRIu64
				      " after ref %" PRIu64,
				      locate, from, to, o.locate, o.ref, o.added_ts, prev);
			prev = o.ref;
			check_order_answer(c, "sl_scan_next_order", o.locate, o.ref, 0, &o);
			if (model_expect(model_order(c->m, o.locate, o.ref), &c->pol) == MEXP_EXACT)
				must_seen++;
		} else {
			struct sl_trade t;
			const struct sl_trade *w;

			r = sl_scan_next_trade(sc, &t);
			if (r)
				break;
			if (t.locate != locate || t.ts < from || (to && t.ts > to) ||
			    (seen && t.match <= prev))
				mfail("trade scan of locate %u over %" PRIu64 "..%" PRIu64
				      " returned match %" PRIu64 " of locate %u at ts %" PRIu64
				      " after match %" PRIu64,
				      locate, from, to, t.match, t.locate, t.ts, prev);
			prev = t.match;
			w = model_trade(c->m, t.match);
			if (!w)
				mfail("trade scan returned match %" PRIu64 " nobody made", t.match);
			if (trade_diff(&t, w, diff, sizeof(diff)))
				mfail("trade scan: trade %" PRIu64 " differs (got/want):%s",
				      t.match, diff);
			must_seen++;
		}
	}
	sl_scan_close(sc);
	mscan_open = NULL;
	if (r != SL_EEND)
		mfail("scan '%c' of locate %u: %s after %" PRIu64 " records", kind, locate,
		      sl_strerror(r), seen);
	if (kind == SL_SCAN_ORDERS) {
		for (uint64_t i = 0; i < c->m->nord; i++) {
			const struct mord *o = &c->m->ord[i];

			if (o->o.locate == locate && o->o.added_ts >= from &&
			    (!to || o->o.added_ts <= to) && model_expect(o, &c->pol) == MEXP_EXACT)
				must++;
		}
	} else {
		for (uint64_t i = 0; i < c->m->ntr; i++) {
			const struct sl_trade *t = &c->m->tr[i];

			if (t->locate == locate && t->ts >= from && (!to || t->ts <= to))
				must++;
		}
	}
	if (must != must_seen)
		mfail("scan '%c' of locate %u over %" PRIu64 "..%" PRIu64 " returned %" PRIu64
		      " of the %" PRIu64 " records it must return (%" PRIu64 " in all)",
		      kind, locate, from, to, must_seen, must, seen);
	mtot.scans++;
	mtot.scan_records += seen;
}

void check_scan_random(const struct mcheck *c)
{
	int kind = mchance(c->rng, 500) ? SL_SCAN_ORDERS : SL_SCAN_TRADES;
	uint16_t locate = (uint16_t)(1 + mbelow(c->rng, c->stocks));
	uint64_t from = 0, to = 0, ts = 0;

	if (kind == SL_SCAN_ORDERS && c->m->nord) {
		const struct mord *o = &c->m->ord[mbelow(c->rng, c->m->nord)];

		locate = o->o.locate;
		ts = o->o.added_ts;
	} else if (c->m->ntr) {
		const struct sl_trade *t = &c->m->tr[mbelow(c->rng, c->m->ntr)];

		locate = t->locate;
		ts = t->ts;
	}
	switch (mbelow(c->rng, 4)) {
	case 0:
		break; /* everything */
	case 1:
		from = ts;
		to = ts + mbelow(c->rng, 1000000000);
		break;
	case 2:
		from = ts > 5000000 ? ts - mbelow(c->rng, 5000000) : 0;
		break; /* no upper bound */
	default:
		from = to = ts ? ts : 1; /* one instant */
		break;
	}
	check_scan(c, kind, locate, from, to);
}

void check_replay(const struct mcheck *c, uint64_t from, uint64_t last, uint64_t max)
{
	struct sl_iter *it = NULL;
	struct sl_event ev;
	uint64_t k = from ? from : 1, n = 0;
	int r = sl_iter_open(c->db, from, &it);

	if (r)
		mfail("sl_iter_open(%" PRIu64 "): %s", from, sl_strerror(r));
	for (; n < max; n++) {
		uint32_t len;
		const uint8_t *p;

		r = sl_iter_next(it, &ev);
		if (r == SL_EEND)
			break;
		if (r)
			mfail("replay from %" PRIu64 ": sl_iter_next after %" PRIu64 " events: %s",
			      from, n, sl_strerror(r));
		if (ev.seq != k)
			mfail("replay from %" PRIu64 ": event seq %" PRIu64 ", want %" PRIu64
			      " (%s)",
			      from, ev.seq, k, ev.seq < k ? "duplicate" : "gap");
		if (k > last)
			mfail("replay from %" PRIu64 ": event %" PRIu64 " past the last %" PRIu64,
			      from, k, last);
		p = mstream_msg(c->s, k, &len);
		if (ev.kind != SL_EVENT_MESSAGE || ev.len != len || memcmp(ev.data, p, len) ||
		    ev.rx_ns != RX_BASE + k)
			mfail("replay from %" PRIu64 ": event %" PRIu64 " (kind %u, len %u, rx "
			      "%" PRIu64 ") is not the message appended (len %u, rx %" PRIu64 ")",
			      from, k, ev.kind, ev.len, ev.rx_ns, len, (uint64_t)(RX_BASE + k));
		k++;
	}
	if (n < max && k != last + 1 && !(from > last && k == from))
		mfail("replay from %" PRIu64 " ended after %" PRIu64 ", want the end at %" PRIu64,
		      from, k - 1, last);
	sl_iter_close(it);
	mtot.replays++;
	mtot.replay_events += n;
}

void check_replay_random(const struct mcheck *c, uint64_t last, uint64_t max)
{
	struct sl_stats st;
	uint64_t from;

	switch (mbelow(c->rng, 8)) {
	case 0:
		from = mbelow(c->rng, 2); /* 0 means 1 */
		break;
	case 1:
		from = last + mbelow(c->rng, 3);
		break;
	case 2:
	case 3:
		assert_int_equal(sl_db_stats(c->db, &st), 0);
		from = st.checkpoint_seq ? st.checkpoint_seq - mbelow(c->rng, 3) + mbelow(c->rng, 5)
					 : 1;
		break;
	default:
		from = last ? mrange(c->rng, 1, last) : 1;
		break;
	}
	check_replay(c, from, last, max);
}

void check_sample(const struct mcheck *c, uint64_t last)
{
	for (int i = 0; i < 300; i++) {
		uint16_t locate;
		uint64_t ref;

		pick_key(c, &locate, &ref);
		check_order(c, locate, ref);
	}
	for (int i = 0; i < 3; i++)
		check_multiget_random(c);
	for (int i = 0; i < 200 && c->m->ntr; i++)
		check_trade(c, c->m->tr[mbelow(c->rng, c->m->ntr)].match);
	for (int i = 0; i < 20; i++)
		check_trade(c, NX_HIGH + mbelow(c->rng, 1ull << 40));
	for (int i = 0; i < 40; i++)
		check_stock(c, (uint16_t)(mchance(c->rng, 800) ? mbelow(c->rng, c->stocks + 2)
							       : mbelow(c->rng, 65536)));
	for (int i = 0; i < 4; i++)
		check_scan_random(c);
	check_replay_random(c, last, 3000);
}
