/* memtable.c - latest state per key, kept in Concurrency Kit hash sets (ck_hs, single writer /
 * many readers) of records that live in chunked arenas. Readers copy a record under its own
 * ck_sequence and retry if the writer changed it meanwhile, so a reader never sees half an
 * update and never blocks the writer. memtable knows nothing of the log, packets or files.
 *
 * Reclamation: records are never freed while the memtable lives. When a hash set grows, ck_hs
 * asks for the old slot array to be freed "deferred" (readers may still be probing it); those
 * arrays are parked and freed with the last memtable. Growth doubles, so the parked arrays add
 * at most the size of the live ones. (Memtable rotation, which frees whole memtables while
 * readers run, brings epoch reclamation with it.)
 */
#include <ck_hs.h>
#include <ck_pr.h>
#include <ck_sequence.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "memtable.h"

/* Records: the key first, then a sequence lock, then the state. */
struct order_rec {
	uint64_t ref;
	uint16_t locate;
	char side;
	uint8_t status;
	ck_sequence_t sq;
	uint32_t price, shares, orig_shares, executed_shares, cancelled_shares;
	char stock[8];
	char mpid[4];
	uint64_t replaced_by, replaces;
	uint64_t added_ts, updated_ts, added_seq, updated_seq;
};

struct trade_rec {
	uint64_t match;
	ck_sequence_t sq;
	uint16_t locate;
	char kind, side, cross_type;
	uint8_t printable, broken;
	uint64_t ref, shares;
	uint32_t price;
	char stock[8];
	uint64_t ts, seq;
};

struct stock_rec {
	ck_sequence_t sq;
	uint16_t locate;
	char stock[8];
	char market_category, financial_status, trading_state;
	uint32_t round_lot_size;
	uint64_t seq;
};

struct arena {
	size_t elem, per_chunk, used;
	uint8_t *cur;
	void **chunks;
	size_t nchunks, cap;
};

struct sl_memtable {
	const struct sl_os *os;
	ck_hs_t orders;
	ck_hs_t trades;
	struct stock_rec *stocks[65536]; /* published with ck_pr_store_ptr */
	struct arena order_arena, trade_arena, stock_arena;
	struct sl_memtable_stats st;     /* writer updates with ck_pr stores */
};

/* ---- ck_hs plumbing ----------------------------------------------------------------------- */

static pthread_mutex_t parked_mu = PTHREAD_MUTEX_INITIALIZER;
static void **parked;
static size_t nparked, parked_cap;
static int live_memtables;

static void *hs_malloc(size_t n)
{
	return malloc(n);
}

static void hs_free(void *p, size_t n, bool defer)
{
	(void)n;
	if (!defer) {
		free(p);
		return;
	}
	pthread_mutex_lock(&parked_mu);
	if (nparked == parked_cap) {
		size_t cap = parked_cap ? parked_cap * 2 : 64;
		void **v = realloc(parked, cap * sizeof(*v));
		if (!v) {
			/* Cannot park it: leaking it is safe, freeing it is not. */
			pthread_mutex_unlock(&parked_mu);
			return;
		}
		parked = v;
		parked_cap = cap;
	}
	parked[nparked++] = p;
	pthread_mutex_unlock(&parked_mu);
}

static struct ck_malloc hs_allocator = { .malloc = hs_malloc, .free = hs_free };

static inline unsigned long mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (unsigned long)x;
}

static unsigned long order_hash(const void *obj, unsigned long seed)
{
	const struct order_rec *o = obj;
	return mix64(o->ref ^ ((uint64_t)o->locate << 48) ^ seed);
}

static bool order_cmp(const void *a, const void *b)
{
	const struct order_rec *x = a, *y = b;
	return x->ref == y->ref && x->locate == y->locate;
}

static unsigned long trade_hash(const void *obj, unsigned long seed)
{
	const struct trade_rec *t = obj;
	return mix64(t->match ^ seed);
}

static bool trade_cmp(const void *a, const void *b)
{
	const struct trade_rec *x = a, *y = b;
	return x->match == y->match;
}

/* ---- Arenas ------------------------------------------------------------------------------- */

static void *arena_alloc(const struct sl_os *os, struct arena *a)
{
	if (!a->cur || a->used == a->per_chunk) {
		if (a->nchunks == a->cap) {
			size_t cap = a->cap ? a->cap * 2 : 16;
			void **v = os->ops->realloc(os->ctx, a->chunks, cap * sizeof(*v));
			if (!v)
				return NULL;
			a->chunks = v;
			a->cap = cap;
		}
		uint8_t *c = sl__os_calloc(os, a->elem * a->per_chunk);
		if (!c)
			return NULL;
		a->chunks[a->nchunks++] = c;
		a->cur = c;
		a->used = 0;
	}
	return a->cur + a->elem * a->used++;
}

/* Give back the last allocation (after a failed insert). */
static void arena_unalloc(struct arena *a)
{
	if (a->used) {
		a->used--;
		memset(a->cur + a->elem * a->used, 0, a->elem);
	}
}

static void arena_release(const struct sl_os *os, struct arena *a)
{
	for (size_t i = 0; i < a->nchunks; i++)
		sl__os_free(os, a->chunks[i]);
	os->ops->free(os->ctx, a->chunks);
}

/* ---- Lifecycle ---------------------------------------------------------------------------- */

int sl__memtable_new(const struct sl_os *os, struct sl_memtable **out)
{
	struct sl_memtable *m = sl__os_calloc(os, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->os = os;
	m->order_arena = (struct arena){ .elem = sizeof(struct order_rec), .per_chunk = 16384 };
	m->trade_arena = (struct arena){ .elem = sizeof(struct trade_rec), .per_chunk = 8192 };
	m->stock_arena = (struct arena){ .elem = sizeof(struct stock_rec), .per_chunk = 1024 };
	if (!ck_hs_init(&m->orders, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, order_hash, order_cmp,
			&hs_allocator, 1 << 16, 0x5157c3))
		goto out_free;
	if (!ck_hs_init(&m->trades, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, trade_hash, trade_cmp,
			&hs_allocator, 1 << 14, 0x7ade5))
		goto out_orders;
	pthread_mutex_lock(&parked_mu);
	live_memtables++;
	pthread_mutex_unlock(&parked_mu);
	*out = m;
	return 0;
out_orders:
	ck_hs_destroy(&m->orders);
out_free:
	sl__os_free(os, m);
	return -ENOMEM;
}

void sl__memtable_free(struct sl_memtable *m)
{
	if (!m)
		return;
	ck_hs_destroy(&m->orders);
	ck_hs_destroy(&m->trades);
	arena_release(m->os, &m->order_arena);
	arena_release(m->os, &m->trade_arena);
	arena_release(m->os, &m->stock_arena);
	sl__os_free(m->os, m);
	pthread_mutex_lock(&parked_mu);
	if (--live_memtables == 0) {
		for (size_t i = 0; i < nparked; i++)
			free(parked[i]);
		free(parked);
		parked = NULL;
		nparked = parked_cap = 0;
	}
	pthread_mutex_unlock(&parked_mu);
}

/* ---- Writer ------------------------------------------------------------------------------- */

static void stat_set(uint64_t *c, uint64_t v)
{
	ck_pr_store_64(c, v);
}

static struct order_rec *find_order(struct sl_memtable *m, uint16_t locate, uint64_t ref)
{
	struct order_rec key = { .ref = ref, .locate = locate };
	unsigned long h = CK_HS_HASH(&m->orders, order_hash, &key);
	return ck_hs_get(&m->orders, h, &key);
}

static struct trade_rec *find_trade(struct sl_memtable *m, uint64_t match)
{
	struct trade_rec key = { .match = match };
	unsigned long h = CK_HS_HASH(&m->trades, trade_hash, &key);
	return ck_hs_get(&m->trades, h, &key);
}

/* A new order record, filled by the caller before it is published by ck_hs_put (whose store
 * of the slot is the release that makes the filled fields visible to readers). If the key
 * exists already (a repeated reference number), the old record is updated in place. */
static struct order_rec *new_order(struct sl_memtable *m, uint16_t locate, uint64_t ref,
				   int *existed)
{
	struct order_rec *o = find_order(m, locate, ref);
	*existed = o != NULL;
	if (o)
		return o;
	o = arena_alloc(m->os, &m->order_arena);
	if (!o)
		return NULL;
	o->ref = ref;
	o->locate = locate;
	ck_sequence_init(&o->sq);
	return o;
}

static int publish_order(struct sl_memtable *m, struct order_rec *o)
{
	unsigned long h = CK_HS_HASH(&m->orders, order_hash, o);
	if (!ck_hs_put(&m->orders, h, o)) {
		arena_unalloc(&m->order_arena);
		return -ENOMEM;
	}
	stat_set(&m->st.orders, m->st.orders + 1);
	stat_set(&m->st.orders_open, m->st.orders_open + 1);
	return 0;
}

static int add_order(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	int existed;
	struct order_rec *o = new_order(m, msg->locate, msg->u.add_order.ref, &existed);
	if (!o)
		return -ENOMEM;
	if (existed) {
		ck_sequence_write_begin(&o->sq);
		if (o->status != SL_ORDER_OPEN)
			stat_set(&m->st.orders_open, m->st.orders_open + 1);
	}
	o->side = msg->u.add_order.side;
	o->status = SL_ORDER_OPEN;
	o->price = msg->u.add_order.price;
	o->shares = o->orig_shares = msg->u.add_order.shares;
	o->executed_shares = o->cancelled_shares = 0;
	memcpy(o->stock, msg->u.add_order.stock, 8);
	if (msg->type == SL_ITCH_ADD_ORDER_MPID)
		memcpy(o->mpid, msg->u.add_order.mpid, 4);
	else
		memset(o->mpid, 0, 4);
	o->replaced_by = o->replaces = 0;
	o->added_ts = o->updated_ts = msg->timestamp;
	o->added_seq = o->updated_seq = seq;
	if (existed) {
		ck_sequence_write_end(&o->sq);
		return 0;
	}
	return publish_order(m, o);
}

static void close_order(struct sl_memtable *m, struct order_rec *o, uint8_t status)
{
	o->status = status;
	stat_set(&m->st.orders_open, m->st.orders_open - 1);
}

static int add_trade(struct sl_memtable *m, uint64_t match, struct trade_rec **out)
{
	struct trade_rec *t = find_trade(m, match);
	if (t) {
		*out = t;
		return 1;
	}
	t = arena_alloc(m->os, &m->trade_arena);
	if (!t)
		return -ENOMEM;
	t->match = match;
	ck_sequence_init(&t->sq);
	*out = t;
	return 0;
}

static int publish_trade(struct sl_memtable *m, struct trade_rec *t)
{
	unsigned long h = CK_HS_HASH(&m->trades, trade_hash, t);
	if (!ck_hs_put(&m->trades, h, t)) {
		arena_unalloc(&m->trade_arena);
		return -ENOMEM;
	}
	stat_set(&m->st.trades, m->st.trades + 1);
	return 0;
}

/* Fill a trade record (new, or existing under its sequence lock) and publish a new one. */
static int record_trade(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq,
			uint64_t match, const struct trade_rec *src)
{
	struct trade_rec *t;
	int existed = add_trade(m, match, &t);
	if (existed < 0)
		return existed;
	if (existed)
		ck_sequence_write_begin(&t->sq);
	t->locate = msg->locate;
	t->kind = (char)msg->type;
	t->side = src->side;
	t->cross_type = src->cross_type;
	t->printable = src->printable;
	t->broken = 0;
	t->ref = src->ref;
	t->shares = src->shares;
	t->price = src->price;
	memcpy(t->stock, src->stock, 8);
	t->ts = msg->timestamp;
	t->seq = seq;
	if (existed) {
		ck_sequence_write_end(&t->sq);
		return 0;
	}
	return publish_trade(m, t);
}

static int execute(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	struct order_rec *o = find_order(m, msg->locate, msg->u.executed.ref);
	if (!o) {
		stat_set(&m->st.orders_missing, m->st.orders_missing + 1);
		return 0;
	}
	struct trade_rec tr = {
		.side = o->side,
		.cross_type = ' ',
		.printable = 'Y',
		.ref = o->ref,
		.shares = msg->u.executed.shares,
		.price = o->price,
	};
	memcpy(tr.stock, o->stock, 8);
	if (msg->type == SL_ITCH_ORDER_EXECUTED_PRICE) {
		tr.printable = (uint8_t)msg->u.executed.printable;
		tr.price = msg->u.executed.price;
	}
	int r = record_trade(m, msg, seq, msg->u.executed.match, &tr);
	if (r < 0)
		return r;
	uint32_t n = msg->u.executed.shares < o->shares ? msg->u.executed.shares : o->shares;
	ck_sequence_write_begin(&o->sq);
	o->shares -= n;
	o->executed_shares += n;
	o->updated_ts = msg->timestamp;
	o->updated_seq = seq;
	if (!o->shares && o->status == SL_ORDER_OPEN)
		close_order(m, o, SL_ORDER_EXECUTED);
	ck_sequence_write_end(&o->sq);
	return 0;
}

static int cancel(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	uint64_t ref = msg->type == SL_ITCH_ORDER_CANCEL ? msg->u.cancel.ref : msg->u.del.ref;
	struct order_rec *o = find_order(m, msg->locate, ref);
	if (!o) {
		stat_set(&m->st.orders_missing, m->st.orders_missing + 1);
		return 0;
	}
	ck_sequence_write_begin(&o->sq);
	if (msg->type == SL_ITCH_ORDER_CANCEL) {
		uint32_t n = msg->u.cancel.shares < o->shares ? msg->u.cancel.shares : o->shares;
		o->shares -= n;
		o->cancelled_shares += n;
		if (!o->shares && o->status == SL_ORDER_OPEN)
			close_order(m, o, SL_ORDER_CANCELLED);
	} else {
		o->cancelled_shares += o->shares;
		o->shares = 0;
		if (o->status == SL_ORDER_OPEN)
			close_order(m, o, SL_ORDER_DELETED);
		else
			o->status = SL_ORDER_DELETED;
	}
	o->updated_ts = msg->timestamp;
	o->updated_seq = seq;
	ck_sequence_write_end(&o->sq);
	return 0;
}

static int replace(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	struct order_rec *old = find_order(m, msg->locate, msg->u.replace.orig_ref);
	if (!old) {
		stat_set(&m->st.orders_missing, m->st.orders_missing + 1);
		return 0;
	}
	int existed;
	struct order_rec *o = new_order(m, msg->locate, msg->u.replace.new_ref, &existed);
	if (!o)
		return -ENOMEM;
	if (existed) {
		ck_sequence_write_begin(&o->sq);
		if (o->status != SL_ORDER_OPEN)
			stat_set(&m->st.orders_open, m->st.orders_open + 1);
	}
	/* The new order keeps the side, stock and attribution of the one it replaces. */
	o->side = old->side;
	o->status = SL_ORDER_OPEN;
	o->price = msg->u.replace.price;
	o->shares = o->orig_shares = msg->u.replace.shares;
	o->executed_shares = o->cancelled_shares = 0;
	memcpy(o->stock, old->stock, 8);
	memcpy(o->mpid, old->mpid, 4);
	o->replaced_by = 0;
	o->replaces = old->ref;
	o->added_ts = o->updated_ts = msg->timestamp;
	o->added_seq = o->updated_seq = seq;
	if (existed) {
		ck_sequence_write_end(&o->sq);
	} else {
		int r = publish_order(m, o);
		if (r < 0)
			return r;
	}
	ck_sequence_write_begin(&old->sq);
	old->replaced_by = msg->u.replace.new_ref;
	old->shares = 0;
	if (old->status == SL_ORDER_OPEN)
		close_order(m, old, SL_ORDER_REPLACED);
	else
		old->status = SL_ORDER_REPLACED;
	old->updated_ts = msg->timestamp;
	old->updated_seq = seq;
	ck_sequence_write_end(&old->sq);
	return 0;
}

static int stock_directory(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	struct stock_rec *s = m->stocks[msg->locate];
	int fresh = !s;
	if (fresh) {
		s = arena_alloc(m->os, &m->stock_arena);
		if (!s)
			return -ENOMEM;
		ck_sequence_init(&s->sq);
		s->trading_state = 'T';
	} else {
		ck_sequence_write_begin(&s->sq);
	}
	s->locate = msg->locate;
	memcpy(s->stock, msg->u.stock_directory.stock, 8);
	s->market_category = msg->u.stock_directory.market_category;
	s->financial_status = msg->u.stock_directory.financial_status;
	s->round_lot_size = msg->u.stock_directory.round_lot_size;
	s->seq = seq;
	if (fresh) {
		ck_pr_fence_store();
		ck_pr_store_ptr(&m->stocks[msg->locate], s);
		stat_set(&m->st.stocks, m->st.stocks + 1);
	} else {
		ck_sequence_write_end(&s->sq);
	}
	return 0;
}

static void trading_action(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	struct stock_rec *s = m->stocks[msg->locate];
	if (!s)
		return;
	ck_sequence_write_begin(&s->sq);
	s->trading_state = msg->u.trading_action.trading_state;
	s->seq = seq;
	ck_sequence_write_end(&s->sq);
}

static void broken_trade(struct sl_memtable *m, const struct sl_itch_msg *msg)
{
	struct trade_rec *t = find_trade(m, msg->u.broken_trade.match);
	if (!t)
		return;
	ck_sequence_write_begin(&t->sq);
	t->broken = 1;
	ck_sequence_write_end(&t->sq);
}

int sl__memtable_apply(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	int r = 0;
	switch (msg->type) {
	case SL_ITCH_ADD_ORDER:
	case SL_ITCH_ADD_ORDER_MPID:
		r = add_order(m, msg, seq);
		break;
	case SL_ITCH_ORDER_EXECUTED:
	case SL_ITCH_ORDER_EXECUTED_PRICE:
		r = execute(m, msg, seq);
		break;
	case SL_ITCH_ORDER_CANCEL:
	case SL_ITCH_ORDER_DELETE:
		r = cancel(m, msg, seq);
		break;
	case SL_ITCH_ORDER_REPLACE:
		r = replace(m, msg, seq);
		break;
	case SL_ITCH_TRADE: {
		struct trade_rec tr = {
			.side = msg->u.trade.side,
			.cross_type = ' ',
			.printable = 'Y',
			.ref = msg->u.trade.ref,
			.shares = msg->u.trade.shares,
			.price = msg->u.trade.price,
		};
		memcpy(tr.stock, msg->u.trade.stock, 8);
		r = record_trade(m, msg, seq, msg->u.trade.match, &tr);
		break;
	}
	case SL_ITCH_CROSS_TRADE: {
		struct trade_rec tr = {
			.side = ' ',
			.cross_type = msg->u.cross_trade.cross_type,
			.printable = 'Y',
			.shares = msg->u.cross_trade.shares,
			.price = msg->u.cross_trade.price,
		};
		memcpy(tr.stock, msg->u.cross_trade.stock, 8);
		r = record_trade(m, msg, seq, msg->u.cross_trade.match, &tr);
		break;
	}
	case SL_ITCH_BROKEN_TRADE:
		broken_trade(m, msg);
		break;
	case SL_ITCH_STOCK_DIRECTORY:
		r = stock_directory(m, msg, seq);
		break;
	case SL_ITCH_TRADING_ACTION:
		trading_action(m, msg, seq);
		break;
	default:
		break; /* logged and replayable; no keyed state of its own */
	}
	if (!r)
		stat_set(&m->st.applied, m->st.applied + 1);
	return r;
}

/* ---- Readers ------------------------------------------------------------------------------ */

static void copy_sym(char *dst, const char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = 0;
	for (size_t i = n; i-- > 0 && (dst[i] == ' ' || dst[i] == 0);)
		dst[i] = 0;
}

int sl__memtable_get_order(struct sl_memtable *m, uint16_t locate, uint64_t ref,
			   struct sl_order *out)
{
	struct order_rec *o = find_order(m, locate, ref);
	if (!o)
		return SL_ENOTFOUND;
	struct order_rec c;
	unsigned int v;
	do {
		v = ck_sequence_read_begin(&o->sq);
		memcpy(&c, o, sizeof(c));
	} while (ck_sequence_read_retry(&o->sq, v));
	memset(out, 0, sizeof(*out));
	out->version = SL_ORDER_VERSION;
	out->locate = c.locate;
	out->side = c.side;
	out->status = c.status;
	out->ref = c.ref;
	copy_sym(out->stock, c.stock, 8);
	copy_sym(out->mpid, c.mpid, 4);
	out->price = c.price;
	out->shares = c.shares;
	out->orig_shares = c.orig_shares;
	out->executed_shares = c.executed_shares;
	out->cancelled_shares = c.cancelled_shares;
	out->replaced_by = c.replaced_by;
	out->replaces = c.replaces;
	out->added_ts = c.added_ts;
	out->updated_ts = c.updated_ts;
	out->added_seq = c.added_seq;
	out->updated_seq = c.updated_seq;
	return 0;
}

int sl__memtable_get_trade(struct sl_memtable *m, uint64_t match, struct sl_trade *out)
{
	struct trade_rec *t = find_trade(m, match);
	if (!t)
		return SL_ENOTFOUND;
	struct trade_rec c;
	unsigned int v;
	do {
		v = ck_sequence_read_begin(&t->sq);
		memcpy(&c, t, sizeof(c));
	} while (ck_sequence_read_retry(&t->sq, v));
	memset(out, 0, sizeof(*out));
	out->version = SL_TRADE_VERSION;
	out->locate = c.locate;
	out->kind = c.kind;
	out->side = c.side;
	out->match = c.match;
	out->ref = c.ref;
	copy_sym(out->stock, c.stock, 8);
	out->cross_type = c.cross_type;
	out->printable = c.printable;
	out->broken = c.broken;
	out->shares = c.shares;
	out->price = c.price;
	out->ts = c.ts;
	out->seq = c.seq;
	return 0;
}

int sl__memtable_get_stock(struct sl_memtable *m, uint16_t locate, struct sl_stock *out)
{
	struct stock_rec *s = ck_pr_load_ptr(&m->stocks[locate]);
	if (!s)
		return SL_ENOTFOUND;
	struct stock_rec c;
	unsigned int v;
	do {
		v = ck_sequence_read_begin(&s->sq);
		memcpy(&c, s, sizeof(c));
	} while (ck_sequence_read_retry(&s->sq, v));
	memset(out, 0, sizeof(*out));
	out->version = SL_STOCK_VERSION;
	out->locate = c.locate;
	copy_sym(out->stock, c.stock, 8);
	out->market_category = c.market_category;
	out->financial_status = c.financial_status;
	out->round_lot_size = c.round_lot_size;
	out->trading_state = c.trading_state;
	out->seq = c.seq;
	return 0;
}

void sl__memtable_get_stats(struct sl_memtable *m, struct sl_memtable_stats *out)
{
	out->orders = ck_pr_load_64(&m->st.orders);
	out->orders_open = ck_pr_load_64(&m->st.orders_open);
	out->trades = ck_pr_load_64(&m->st.trades);
	out->stocks = ck_pr_load_64(&m->st.stocks);
	out->orders_missing = ck_pr_load_64(&m->st.orders_missing);
	out->applied = ck_pr_load_64(&m->st.applied);
	out->bytes = sizeof(*m) +
		     m->order_arena.nchunks * m->order_arena.per_chunk * m->order_arena.elem +
		     m->trade_arena.nchunks * m->trade_arena.per_chunk * m->trade_arena.elem +
		     m->stock_arena.nchunks * m->stock_arena.per_chunk * m->stock_arena.elem;
}
