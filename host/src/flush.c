/* flush.c - memtable -> state table, log range -> event table (see flush.h). Events stream
 * straight from the log cursor (already in key order); orders and trades are collected as
 * encoded entries and sorted once; stocks come out of the memtable in locate order. flush knows
 * the memtable, the log seam and tables, and nothing of levels or the manifest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flush.h"
#include "keys.h"
#include "sluice.h"

/* One encoded entry waiting to be sorted: key and value side by side. */
struct entry {
	uint8_t key[SL_KEY_MAX_LEN];
	uint8_t klen;
	uint8_t vlen;
	uint8_t flags;
	uint8_t val[SL_VAL_ORDER_LEN > SL_VAL_TRADE_LEN ? SL_VAL_ORDER_LEN : SL_VAL_TRADE_LEN];
};

struct entries {
	const struct sl_os *os;
	struct entry *v;
	size_t n, cap;
	int err;
};

static struct entry *push(struct entries *e)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4096;
		struct entry *v = e->os->ops->realloc(e->os->ctx, e->v, cap * sizeof(*v));
		if (!v) {
			e->err = -ENOMEM;
			return NULL;
		}
		e->v = v;
		e->cap = cap;
	}
	return &e->v[e->n++];
}

/* The sort. A flush sorts millions of entries of ~100 bytes: a comparison sort moving them (or
 * pointers to them, with a comparator call each time) was most of the flush. Instead each
 * entry's key becomes two big-endian words - bytes 0..7, then bytes 8..10 and the length in the
 * last byte, so equal padded keys order by length as memcmp would - and an LSD radix sort (8
 * bits a pass) orders (words, index) triples; passes over a byte every key shares (the key
 * prefix, the high bytes of numbers) are skipped. Entries are then written in that order. */
_Static_assert(SL_KEY_MAX_LEN <= 15, "keys fit two words with the length");

struct rkey {
	uint64_t hi, lo;
	uint32_t idx;
};

static void rkey_make(struct rkey *k, const struct entry *e, uint32_t idx)
{
	uint8_t b[16] = { 0 };
	memcpy(b, e->key, SL_KEY_MAX_LEN);
	b[15] = e->klen;
	uint64_t hi, lo;
	memcpy(&hi, b, 8);
	memcpy(&lo, b + 8, 8);
	k->hi = __builtin_bswap64(hi);
	k->lo = __builtin_bswap64(lo);
	k->idx = idx;
}

static unsigned rkey_byte(const struct rkey *k, int pass)
{
	/* pass 0 is the least significant byte: lo's last, ..., pass 15 hi's first. */
	return (unsigned)((pass < 8 ? k->lo >> (8 * pass) : k->hi >> (8 * (pass - 8))) & 0xff);
}

/* Sorted order of e's entries into order[0..n): 0, or -ENOMEM. */
static int sort_order(struct entries *e, uint32_t **order)
{
	size_t n = e->n;
	const struct sl_os *os = e->os;
	struct rkey *a = sl__os_malloc(os, n * sizeof(*a));
	struct rkey *b = sl__os_malloc(os, n * sizeof(*b));
	uint32_t *o = sl__os_malloc(os, n * sizeof(*o));
	size_t(*hist)[256] = sl__os_malloc(os, 16 * sizeof(*hist));
	if (!a || !b || !o || !hist) {
		sl__os_free(os, a);
		sl__os_free(os, b);
		sl__os_free(os, o);
		sl__os_free(os, hist);
		return -ENOMEM;
	}
	memset(hist, 0, 16 * sizeof(*hist));
	for (size_t i = 0; i < n; i++) {
		rkey_make(&a[i], &e->v[i], (uint32_t)i);
		for (int p = 0; p < 16; p++)
			hist[p][rkey_byte(&a[i], p)]++;
	}
	for (int p = 0; p < 16; p++) {
		if (hist[p][rkey_byte(&a[0], p)] == n)
			continue; /* every key has the same byte here */
		size_t at = 0;
		for (int v = 0; v < 256; v++) {
			size_t c = hist[p][v];
			hist[p][v] = at;
			at += c;
		}
		for (size_t i = 0; i < n; i++)
			b[hist[p][rkey_byte(&a[i], p)]++] = a[i];
		struct rkey *t = a;
		a = b;
		b = t;
	}
	for (size_t i = 0; i < n; i++)
		o[i] = a[i].idx;
	sl__os_free(os, a);
	sl__os_free(os, b);
	sl__os_free(os, hist);
	*order = o;
	return 0;
}

struct collect {
	struct entries orders, trades;
	struct sl_sst_writer *w;
	struct sl_flush_result *out;
};

static int collect_order(void *arg, const struct sl_order *o)
{
	struct collect *c = arg;
	struct entry *e = push(&c->orders);
	if (!e)
		return c->orders.err;
	memset(e->key, 0, sizeof(e->key));
	e->klen = (uint8_t)sl__key_order(e->key, o->locate, o->ref);
	e->vlen = (uint8_t)sl__val_order_encode(e->val, o);
	/* ITCH never changes an order again once it is done: a final state is written as a
	 * tombstone that keeps its value, so queries still see it and the bottom level drops it. */
	e->flags = o->status == SL_ORDER_OPEN ? 0 : SL_SST_TOMBSTONE;
	return 0;
}

static int collect_trade(void *arg, const struct sl_trade *t)
{
	struct collect *c = arg;
	struct entry *e = push(&c->trades);
	if (!e)
		return c->trades.err;
	memset(e->key, 0, sizeof(e->key));
	e->klen = (uint8_t)sl__key_trade(e->key, t->match);
	e->vlen = (uint8_t)sl__val_trade_encode(e->val, t);
	e->flags = 0;
	return 0;
}

/* Stocks arrive in locate order, which is key order: write them straight away, after the
 * orders (whose keys sort before them). */
static int write_stock(void *arg, const struct sl_stock *s)
{
	struct collect *c = arg;
	uint8_t k[SL_KEY_MAX_LEN], v[SL_VAL_STOCK_LEN];
	size_t kl = sl__key_stock(k, s->locate), vl = sl__val_stock_encode(v, s);
	c->out->stocks++;
	return sl__sst_writer_add(c->w, k, kl, v, vl, 0);
}

static int write_sorted(struct sl_sst_writer *w, struct entries *e, uint64_t *count)
{
	*count = 0;
	if (!e->n)
		return 0;
	uint32_t *order = NULL;
	int r = sort_order(e, &order);
	for (size_t i = 0; i < e->n && !r; i++) {
		if (i + 8 < e->n)
			__builtin_prefetch(&e->v[order[i + 8]]);
		const struct entry *x = &e->v[order[i]];
		r = sl__sst_writer_add(w, x->key, x->klen, x->val, x->vlen, x->flags);
	}
	if (!r)
		*count = e->n;
	sl__os_free(e->os, order);
	return r;
}

static int write_events(struct sl_sst_writer *w, struct sl_log *log, uint64_t first,
			uint64_t last, uint64_t *count)
{
	struct sl_log_cursor *cur;
	int r = log->ops->cursor_open(log->impl, first, &cur);
	if (r)
		return r;
	/* Event values are at most header + a log payload: keep one buffer for them. */
	static _Thread_local uint8_t val[SL_VAL_EVENT_HDR + SL_LOG_MAX_PAYLOAD];
	uint64_t next = first;
	while (next <= last) {
		struct sl_log_rec rec;
		r = log->ops->cursor_next(cur, &rec);
		if (r == SL_EEND)
			r = SL_EGAP; /* the caller promised a durable range */
		if (r)
			break;
		if (rec.seq > last)
			break;
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = sl__key_event(k, rec.seq);
		size_t vl = sl__val_event_encode(val, rec.type, rec.rx_ns, rec.data, rec.len);
		if ((r = sl__sst_writer_add(w, k, kl, val, vl, 0)))
			break;
		(*count)++;
		next = rec.seq + 1;
	}
	log->ops->cursor_close(cur);
	return r;
}

int sl__flush_state(struct sl_memtable *m, const struct sl_os *os, struct sl_accel *accel,
		    const char *path, const struct sl_sst_options *opt, struct sl_flush_result *out)
{
	memset(out, 0, sizeof(*out));
	struct collect c = { .orders = { .os = os }, .trades = { .os = os }, .out = out };
	int r = sl__sst_writer_open(os, accel, path, opt, &c.w);
	if (r)
		return r;
	/* Keys sort O < S < T: sorted orders, then stocks as they come, then sorted trades. */
	struct sl_memtable_visitor v = { .order = collect_order, .trade = collect_trade, .arg = &c };
	if ((r = sl__memtable_foreach(m, &v)))
		goto out_abort;
	if ((r = write_sorted(c.w, &c.orders, &out->orders)))
		goto out_abort;
	struct sl_memtable_visitor sv = { .stock = write_stock, .arg = &c };
	if ((r = sl__memtable_foreach(m, &sv)))
		goto out_abort;
	if ((r = write_sorted(c.w, &c.trades, &out->trades)))
		goto out_abort;
	r = sl__sst_writer_finish(c.w, &out->meta); /* frees the writer either way */
	c.w = NULL;
	goto out_free;
out_abort:
	sl__sst_writer_abort(c.w);
out_free:
	os->ops->free(os->ctx, c.orders.v);
	os->ops->free(os->ctx, c.trades.v);
	return r;
}

int sl__flush_events(struct sl_log *log, uint64_t first_seq, uint64_t last_seq,
		     const struct sl_os *os, struct sl_accel *accel, const char *path,
		     const struct sl_sst_options *opt, struct sl_flush_result *out)
{
	memset(out, 0, sizeof(*out));
	struct sl_sst_options o = *opt;
	o.user[0] = first_seq;
	o.user[1] = last_seq;
	struct sl_sst_writer *w;
	int r = sl__sst_writer_open(os, accel, path, &o, &w);
	if (r)
		return r;
	if ((r = write_events(w, log, first_seq, last_seq, &out->events))) {
		sl__sst_writer_abort(w);
		return r;
	}
	return sl__sst_writer_finish(w, &out->meta);
}
