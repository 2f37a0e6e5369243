/* memtable.c - latest state per key, kept in Concurrency Kit hash tables (single writer / many
 * readers) of records that live in chunked arenas. Readers copy a record under its own
 * ck_sequence and retry if the writer changed it meanwhile, so a reader never sees half an
 * update and never blocks the writer. memtable knows nothing of the log, packets or files.
 *
 * Reclamation: records are never freed while the memtable lives. When a table grows, CK asks
 * for the old slot array to be freed "deferred" (readers may still be probing it): it goes to
 * ck_epoch and is freed once every reader that could have seen it has left its read section.
 * Readers enter a section per lookup through an epoch record of their own thread.
 *
 * Per-stock walks: every record is also on a singly linked chain of its stock (locate), newest
 * first. The writer sets a record's next to the chain's head before the record is published
 * anywhere, and then stores the record as the new head (release). next never changes after
 * that and records never move, so a walk needs neither a lock nor an epoch section.
 */
#include <ck_epoch.h>
#include <ck_hs.h>
#include <ck_ht.h>
#include <ck_pr.h>
#include <ck_sequence.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
	struct order_rec *next; /* the stock's chain: set before publishing, then immutable */
};

struct trade_rec {
	uint64_t match;
	uint16_t key_zero; /* keys are (u64, u16) pairs; trades use only the first half */
	ck_sequence_t sq;
	uint16_t locate;
	char kind, side, cross_type;
	uint8_t printable, broken;
	uint8_t moved; /* superseded by a record of the same match under another locate */
	uint64_t ref, shares;
	uint32_t price;
	char stock[8];
	uint64_t ts, seq;
	struct trade_rec *next; /* as order_rec's */
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

/* Keys are (u64, u16): (order reference, locate) for orders, (match, 0) for trades, the first
 * fields of every record. Almost every key packs into one machine word (u16 << 48 | u64 when
 * the u64 fits 48 bits, as every real reference and match number does) and lives in a ck_ht
 * in direct mode, whose probes compare words in the table and never touch a record. The rest,
 * and the two words ck_ht reserves, go to a ck_hs of record pointers that compares records. */
struct kmap {
	ck_ht_t fast;
	ck_hs_t rare;
	uint64_t count;
};

struct reader_rec {
	ck_epoch_record_t rec;
	struct reader_rec *next;
};

struct sl_memtable {
	const struct sl_os *os;
	const struct sl_memtable_resolver *resolver; /* older state, for keys not here */
	uint64_t id;                     /* unique for the process's life: keys reader caches */
	ck_epoch_t epoch;
	ck_epoch_record_t writer;        /* the writer's record: deferred frees go through it */
	pthread_mutex_t readers_mu;
	struct reader_rec *readers;      /* every record handed to a reader thread */
	struct kmap orders;
	struct kmap trades;
	struct stock_rec *stocks[65536]; /* published with ck_pr_store_ptr */
	/* Chain heads by locate, published with ck_pr_store_ptr. Eight heads share a cache line,
	 * so a walk of one stock may share it with the writer linking a neighbour: a walk reads
	 * its head once, the cost is one miss. */
	struct order_rec *order_heads[65536];
	struct trade_rec *trade_heads[65536];
	struct arena order_arena, trade_arena, stock_arena;
	struct sl_memtable_stats st;     /* writer updates with ck_pr stores */
	int resolve_err;                 /* writer: the resolver failed (not "not found") while
					    applying the current message */
	/* Keys whose state could not be rebuilt because older state was unreadable (a damaged
	 * table block): a lookup that finds nothing here answers SL_ECORRUPT for them, not "not
	 * found". Rare: a flat array, appended by the writer, published by its count. */
	struct poison { uint64_t a; uint16_t locate; uint8_t kind; } poison[SL_MEMTABLE_POISON];
	uint32_t npoison;                /* ck_pr */
};

/* ---- ck_hs plumbing ----------------------------------------------------------------------- */

/* CK's allocator callbacks take no context; the writer names its memtable here around every
 * call that may grow a table (there is one writer per memtable, on one thread at a time). */
static _Thread_local struct sl_memtable *tl_writer;

struct deferred_free {
	ck_epoch_entry_t entry;
	void *p;
};

static void deferred_free_cb(ck_epoch_entry_t *e)
{
	struct deferred_free *d = (struct deferred_free *)(void *)e; /* entry is first */
	free(d->p);
	free(d);
}

/* Slot arrays of millions of entries are probed at random: back them with transparent huge
 * pages where the kernel offers them (madvise mode), which removes most TLB misses and page
 * faults from the probe path. */
#define HUGE_ALIGN (2u << 20)

static void *hs_malloc(size_t n)
{
	if (n < HUGE_ALIGN)
		return malloc(n);
	void *p;
	if (posix_memalign(&p, HUGE_ALIGN, n))
		return NULL;
	madvise(p, n, MADV_HUGEPAGE);
	return p;
}

static void hs_free(void *p, size_t n, bool defer)
{
	(void)n;
	struct sl_memtable *m = tl_writer;
	if (!defer || !m) {
		/* Not deferred, or a table torn down with no readers left (destroy). */
		free(p);
		return;
	}
	struct deferred_free *d = malloc(sizeof(*d));
	if (!d)
		return; /* cannot defer it: leaking it is safe, freeing it is not */
	d->p = p;
	ck_epoch_call(&m->writer, &d->entry, deferred_free_cb);
}

/* This thread's epoch record for m: cached per thread for a few memtables; a thread meeting
 * m for the first time takes a released record or registers a new one. */
static ck_epoch_record_t *reader_record(struct sl_memtable *m)
{
	static _Thread_local struct {
		uint64_t id;
		ck_epoch_record_t *rec;
	} cache[4];
	static _Thread_local unsigned next;
	for (int i = 0; i < 4; i++)
		if (cache[i].id == m->id)
			return cache[i].rec;
	ck_epoch_record_t *rec = ck_epoch_recycle(&m->epoch, NULL);
	if (!rec) {
		struct reader_rec *r = malloc(sizeof(*r));
		if (!r)
			return NULL;
		ck_epoch_register(&m->epoch, &r->rec, NULL);
		pthread_mutex_lock(&m->readers_mu);
		r->next = m->readers;
		m->readers = r;
		pthread_mutex_unlock(&m->readers_mu);
		rec = &r->rec;
	}
	cache[next].id = m->id;
	cache[next].rec = rec;
	next = (next + 1) % 4;
	return rec;
}

/* Enter a read section; -ENOMEM when this thread cannot get a record (the lookup fails). */
static int read_begin(struct sl_memtable *m, ck_epoch_record_t **rec)
{
	*rec = reader_record(m);
	if (!*rec)
		return -ENOMEM;
	ck_epoch_begin(*rec, NULL);
	return 0;
}

static void read_end(ck_epoch_record_t *rec)
{
	ck_epoch_end(rec, NULL);
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

struct rec_key {
	uint64_t a;
	uint16_t b;
};

static unsigned long key_hash(const void *obj, unsigned long seed)
{
	const struct rec_key *k = obj;
	return mix64(k->a ^ ((uint64_t)k->b << 48) ^ seed);
}

static bool key_cmp(const void *x, const void *y)
{
	const struct rec_key *p = x, *q = y;
	return p->a == q->a && p->b == q->b;
}

static void fast_hash(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
	(void)len;
	uintptr_t k;
	memcpy(&k, key, sizeof(k));
	h->value = mix64((uint64_t)k ^ seed);
}

/* The one-word form of a key, or 0 when it has none. */
static uintptr_t pack(uint64_t a, uint16_t b)
{
	if (a >> 48)
		return 0;
	uintptr_t k = (uintptr_t)b << 48 | (uintptr_t)a;
	return k == CK_HT_KEY_EMPTY || k == CK_HT_KEY_TOMBSTONE ? 0 : k;
}

static bool kmap_init(struct kmap *m, unsigned long size, unsigned long seed)
{
	if (!ck_ht_init(&m->fast, CK_HT_MODE_DIRECT, fast_hash, &hs_allocator, size, seed))
		return false;
	if (!ck_hs_init(&m->rare, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, key_hash, key_cmp,
			&hs_allocator, 16, seed)) {
		ck_ht_destroy(&m->fast);
		return false;
	}
	return true;
}

static void kmap_destroy(struct kmap *m)
{
	ck_ht_destroy(&m->fast);
	ck_hs_destroy(&m->rare);
}

/* Any thread. */
static void *kmap_get(struct kmap *m, uint64_t a, uint16_t b)
{
	uintptr_t k = pack(a, b);
	if (k) {
		ck_ht_hash_t h;
		ck_ht_entry_t e;
		ck_ht_hash_direct(&h, &m->fast, k);
		ck_ht_entry_key_set_direct(&e, k);
		return ck_ht_get_spmc(&m->fast, h, &e) ? (void *)ck_ht_entry_value_direct(&e)
						       : NULL;
	}
	struct rec_key key = { a, b };
	return ck_hs_get(&m->rare, CK_HS_HASH(&m->rare, key_hash, &key), &key);
}

/* Writer only. Insert rec (whose first fields are its key); 0, or 1 with *old set when the key
 * is present already (nothing inserted), or -ENOMEM. One probe in the common case. The slot
 * store inside put is the release that publishes the record's filled fields to readers. */
static int kmap_put(struct kmap *m, void *rec, void **old)
{
	const struct rec_key *key = rec;
	uintptr_t k = pack(key->a, key->b);
	*old = NULL;
	if (k) {
		ck_ht_hash_t h;
		ck_ht_entry_t e;
		ck_ht_hash_direct(&h, &m->fast, k);
		ck_ht_entry_set_direct(&e, h, k, (uintptr_t)rec);
		if (ck_ht_put_spmc(&m->fast, h, &e)) {
			m->count++;
			return 0;
		}
		/* put refuses an existing key and a failed growth alike: tell them apart. */
		*old = kmap_get(m, key->a, key->b);
		return *old ? 1 : -ENOMEM;
	}
	unsigned long h = CK_HS_HASH(&m->rare, key_hash, key);
	if (ck_hs_put(&m->rare, h, rec)) {
		m->count++;
		return 0;
	}
	*old = ck_hs_get(&m->rare, h, key);
	return *old ? 1 : -ENOMEM;
}

/* Writer only. Make rec the record of its key, which is present: the slot's pointer is swapped
 * in one store (a reader finds the old record or rec). 0 or -ENOMEM. */
static int kmap_replace(struct kmap *m, void *rec)
{
	const struct rec_key *key = rec;
	uintptr_t k = pack(key->a, key->b);
	if (k) {
		ck_ht_hash_t h;
		ck_ht_entry_t e;
		ck_ht_hash_direct(&h, &m->fast, k);
		ck_ht_entry_set_direct(&e, h, k, (uintptr_t)rec);
		return ck_ht_set_spmc(&m->fast, h, &e) ? 0 : -ENOMEM;
	}
	void *old;
	unsigned long h = CK_HS_HASH(&m->rare, key_hash, key);
	return ck_hs_set(&m->rare, h, rec, &old) ? 0 : -ENOMEM;
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
		/* Not zeroed: every field of a record is written before it is published. */
		uint8_t *c = sl__os_malloc(os, a->elem * a->per_chunk);
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

/* Bytes of records in use (what a flush writes out, roughly), not chunks reserved. */
static uint64_t arena_bytes(const struct arena *a)
{
	if (!a->nchunks)
		return 0;
	return ((uint64_t)(a->nchunks - 1) * a->per_chunk + a->used) * a->elem;
}

static void arena_release(const struct sl_os *os, struct arena *a)
{
	for (size_t i = 0; i < a->nchunks; i++)
		sl__os_free(os, a->chunks[i]);
	os->ops->free(os->ctx, a->chunks);
}

/* ---- Lifecycle ---------------------------------------------------------------------------- */

int sl__memtable_new(const struct sl_os *os, uint64_t expected_orders, struct sl_memtable **out)
{
	if (expected_orders < 1024)
		expected_orders = 1024;
	if (expected_orders > (1ull << 32))
		expected_orders = 1ull << 32;
	struct sl_memtable *m = sl__os_calloc(os, sizeof(*m));
	if (!m)
		return -ENOMEM;
	static uint64_t next_id;
	m->os = os;
	m->id = ck_pr_faa_64(&next_id, 1) + 1;
	ck_epoch_init(&m->epoch);
	ck_epoch_register(&m->epoch, &m->writer, NULL);
	pthread_mutex_init(&m->readers_mu, NULL);
	m->order_arena = (struct arena){ .elem = sizeof(struct order_rec), .per_chunk = 16384 };
	m->trade_arena = (struct arena){ .elem = sizeof(struct trade_rec), .per_chunk = 8192 };
	m->stock_arena = (struct arena){ .elem = sizeof(struct stock_rec), .per_chunk = 1024 };
	/* ck_ht doubles when half full: twice the expected count fits without growing. */
	if (!kmap_init(&m->orders, (unsigned long)expected_orders * 2, 0x5157c3))
		goto out_free;
	if (!kmap_init(&m->trades, (unsigned long)expected_orders / 2, 0x7ade5))
		goto out_orders;
	*out = m;
	return 0;
out_orders:
	kmap_destroy(&m->orders);
out_free:
	pthread_mutex_destroy(&m->readers_mu);
	sl__os_free(os, m);
	return -ENOMEM;
}

void sl__memtable_free(struct sl_memtable *m)
{
	if (!m)
		return;
	/* No reader is left (the caller's contract): run every deferred free now. */
	ck_epoch_barrier(&m->writer);
	tl_writer = NULL;
	kmap_destroy(&m->orders);
	kmap_destroy(&m->trades);
	for (struct reader_rec *r = m->readers, *n; r; r = n) {
		n = r->next;
		free(r);
	}
	pthread_mutex_destroy(&m->readers_mu);
	arena_release(m->os, &m->order_arena);
	arena_release(m->os, &m->trade_arena);
	arena_release(m->os, &m->stock_arena);
	sl__os_free(m->os, m);
}

/* ---- Writer ------------------------------------------------------------------------------- */

static void stat_set(uint64_t *c, uint64_t v)
{
	ck_pr_store_64(c, v);
}

static struct order_rec *find_order(struct sl_memtable *m, uint16_t locate, uint64_t ref)
{
	return kmap_get(&m->orders, ref, locate);
}

static struct trade_rec *find_trade(struct sl_memtable *m, uint64_t match)
{
	return kmap_get(&m->trades, match, 0);
}

/* A new order record for the caller to fill and publish with publish_order (ck_hs_put's store
 * of the slot is the release that makes the filled fields visible to readers). */
static struct order_rec *new_order(struct sl_memtable *m, uint16_t locate, uint64_t ref)
{
	struct order_rec *o = arena_alloc(m->os, &m->order_arena);
	if (!o)
		return NULL;
	o->ref = ref;
	o->locate = locate;
	ck_sequence_init(&o->sq);
	return o;
}

/* Publish a filled record: one probe of the hash set, then the head of its chain. If the key
 * exists already (a reference number used twice), *existing is set, the new record is given
 * back and nothing changes: the caller then updates the existing record under its sequence
 * lock, and that record keeps its one place on the chain. */
static int publish_order(struct sl_memtable *m, struct order_rec *o, struct order_rec **existing)
{
	void *old;
	/* next first: a reader that finds o in the table copies all of it, next included. */
	o->next = m->order_heads[o->locate];
	int r = kmap_put(&m->orders, o, &old);
	*existing = old;
	if (r) {
		arena_unalloc(&m->order_arena);
		return r < 0 ? r : 0;
	}
	/* Every field, next included, is written: the fence orders them before the store that
	 * lets a walk reach o (kmap_put's own fences are CK's business, not ours to lean on). */
	ck_pr_fence_store();
	ck_pr_store_ptr(&m->order_heads[o->locate], o);
	stat_set(&m->st.orders, m->st.orders + 1);
	stat_set(&m->st.orders_open, m->st.orders_open + 1);
	return 0;
}

/* Fill an order as added (A/F) or as the new order of a replace (U). */
static void fill_order(struct order_rec *o, const struct sl_itch_msg *msg, uint64_t seq,
		       char side, uint32_t shares, uint32_t price, const char *stock,
		       const char *mpid, uint64_t replaces)
{
	o->side = side;
	o->status = SL_ORDER_OPEN;
	o->price = price;
	o->shares = o->orig_shares = shares;
	o->executed_shares = o->cancelled_shares = 0;
	memcpy(o->stock, stock, 8);
	if (mpid)
		memcpy(o->mpid, mpid, 4);
	else
		memset(o->mpid, 0, 4);
	o->replaced_by = 0;
	o->replaces = replaces;
	o->added_ts = o->updated_ts = msg->timestamp;
	o->added_seq = o->updated_seq = seq;
}

/* Create (or, for a reused reference number, overwrite) an open order. */
static int open_order(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq,
		      uint64_t ref, char side, uint32_t shares, uint32_t price, const char *stock,
		      const char *mpid, uint64_t replaces)
{
	struct order_rec *o = new_order(m, msg->locate, ref), *old;
	if (!o)
		return -ENOMEM;
	fill_order(o, msg, seq, side, shares, price, stock, mpid, replaces);
	int r = publish_order(m, o, &old);
	if (r < 0 || !old)
		return r;
	ck_sequence_write_begin(&old->sq);
	if (old->status != SL_ORDER_OPEN)
		stat_set(&m->st.orders_open, m->st.orders_open + 1);
	fill_order(old, msg, seq, side, shares, price, stock, mpid, replaces);
	ck_sequence_write_end(&old->sq);
	return 0;
}

static int add_order(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	const char *mpid = msg->type == SL_ITCH_ADD_ORDER_MPID ? msg->u.add_order.mpid : NULL;
	return open_order(m, msg, seq, msg->u.add_order.ref, msg->u.add_order.side,
			  msg->u.add_order.shares, msg->u.add_order.price, msg->u.add_order.stock,
			  mpid, 0);
}

static void close_order(struct sl_memtable *m, struct order_rec *o, uint8_t status)
{
	o->status = status;
	stat_set(&m->st.orders_open, m->st.orders_open - 1);
}

/* Publish a filled trade record as order records are published. When it supersedes old (its
 * match number's record under another locate), it replaces old in the table and old is marked
 * moved, which drops old from its chain's walks; otherwise it is a new trade. */
static int publish_trade(struct sl_memtable *m, struct trade_rec *t, struct trade_rec *old)
{
	void *dup;
	t->next = m->trade_heads[t->locate];
	int r = old ? kmap_replace(&m->trades, t) : kmap_put(&m->trades, t, &dup);
	if (r) {
		/* r == 1 (present) cannot be: the caller looked the key up on this thread. */
		arena_unalloc(&m->trade_arena);
		return r < 0 ? r : 0;
	}
	ck_pr_fence_store(); /* as in publish_order */
	ck_pr_store_ptr(&m->trade_heads[t->locate], t);
	if (old) {
		ck_sequence_write_begin(&old->sq);
		old->moved = 1;
		ck_sequence_write_end(&old->sq);
	} else {
		stat_set(&m->st.trades, m->st.trades + 1);
	}
	return 0;
}

static void fill_trade(struct trade_rec *t, const struct sl_itch_msg *msg, uint64_t seq,
		       const struct trade_rec *src)
{
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
}

/* Record a trade: a match number seen before under the same locate is updated in place under
 * its sequence lock; otherwise a new record is filled and published. A match number reused
 * under another locate (a feed error) gets a new record, so that its trade is walked with the
 * stock it now names and a record never changes chains. */
static int record_trade(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq,
			uint64_t match, const struct trade_rec *src)
{
	struct trade_rec *old = find_trade(m, match);
	if (old && old->locate == msg->locate) {
		ck_sequence_write_begin(&old->sq);
		fill_trade(old, msg, seq, src);
		ck_sequence_write_end(&old->sq);
		return 0;
	}
	struct trade_rec *t = arena_alloc(m->os, &m->trade_arena);
	if (!t)
		return -ENOMEM;
	t->match = match;
	t->key_zero = 0;
	ck_sequence_init(&t->sq);
	t->moved = 0;
	fill_trade(t, msg, seq, src);
	return publish_trade(m, t, old);
}

/* Symbols come back NUL terminated; records keep the wire's space padding. */
static void pad_sym(char *dst, const char *src, size_t n)
{
	size_t l = strnlen(src, n);
	memcpy(dst, src, l);
	memset(dst + l, l < n && n == 8 ? ' ' : 0, n - l);
}

/* An order not in this memtable: ask the resolver (older memtables, tables) and bring it in,
 * so the message applies to the state it had. NULL when nobody knows it. */
static struct order_rec *load_order(struct sl_memtable *m, uint16_t locate, uint64_t ref)
{
	struct order_rec *o = find_order(m, locate, ref);
	if (o || !m->resolver || !m->resolver->order)
		return o;
	struct sl_order x;
	int r = m->resolver->order(m->resolver->arg, locate, ref, &x);
	if (r) {
		/* Older state that exists but cannot be read (a damaged table block) is not an
		 * order never seen: the message cannot be applied, and apply says so. */
		if (r != SL_ENOTFOUND)
			m->resolve_err = r;
		return NULL;
	}
	o = new_order(m, locate, ref);
	if (!o)
		return NULL;
	o->side = x.side;
	o->status = x.status;
	o->price = x.price;
	o->shares = x.shares;
	o->orig_shares = x.orig_shares;
	o->executed_shares = x.executed_shares;
	o->cancelled_shares = x.cancelled_shares;
	pad_sym(o->stock, x.stock, 8);
	pad_sym(o->mpid, x.mpid, 4);
	o->replaced_by = x.replaced_by;
	o->replaces = x.replaces;
	o->added_ts = x.added_ts;
	o->updated_ts = x.updated_ts;
	o->added_seq = x.added_seq;
	o->updated_seq = x.updated_seq;
	struct order_rec *dup;
	if (publish_order(m, o, &dup) < 0)
		return NULL;
	if (dup) /* cannot be (it was looked up just now), but o is given back then */
		return dup;
	if (x.status != SL_ORDER_OPEN) /* publish counted it open */
		stat_set(&m->st.orders_open, m->st.orders_open - 1);
	return o;
}

static int execute(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	struct order_rec *o = load_order(m, msg->locate, msg->u.executed.ref);
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
	struct order_rec *o = load_order(m, msg->locate, ref);
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
	struct order_rec *old = load_order(m, msg->locate, msg->u.replace.orig_ref);
	if (!old) {
		stat_set(&m->st.orders_missing, m->st.orders_missing + 1);
		return 0;
	}
	/* The new order keeps the side, stock and attribution of the one it replaces. */
	char mpid[4];
	memcpy(mpid, old->mpid, 4);
	int r = open_order(m, msg, seq, msg->u.replace.new_ref, old->side, msg->u.replace.shares,
			   msg->u.replace.price, old->stock, mpid, old->ref);
	if (r < 0)
		return r;
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
	struct sl_trade x;
	int rr = SL_ENOTFOUND;
	if (!t && m->resolver && m->resolver->trade &&
	    (rr = m->resolver->trade(m->resolver->arg, msg->u.broken_trade.match, &x)) != 0 &&
	    rr != SL_ENOTFOUND)
		m->resolve_err = rr;
	if (rr == 0) {
		/* A trade from before this memtable: bring it in, then mark it. */
		struct trade_rec src = { .side = x.side, .cross_type = x.cross_type,
					 .printable = x.printable, .ref = x.ref, .shares = x.shares,
					 .price = x.price };
		pad_sym(src.stock, x.stock, 8);
		struct sl_itch_msg orig = { .type = (uint8_t)x.kind, .locate = x.locate,
					    .timestamp = x.ts };
		if (record_trade(m, &orig, x.seq, x.match, &src) == 0)
			t = find_trade(m, msg->u.broken_trade.match);
	}
	if (!t)
		return;
	ck_sequence_write_begin(&t->sq);
	t->broken = 1;
	ck_sequence_write_end(&t->sq);
}

int sl__memtable_put_stock(struct sl_memtable *m, const struct sl_stock *st)
{
	struct stock_rec *s = m->stocks[st->locate];
	int fresh = !s;
	if (fresh) {
		s = arena_alloc(m->os, &m->stock_arena);
		if (!s)
			return -ENOMEM;
		ck_sequence_init(&s->sq);
	} else {
		ck_sequence_write_begin(&s->sq);
	}
	s->locate = st->locate;
	pad_sym(s->stock, st->stock, 8);
	s->market_category = st->market_category;
	s->financial_status = st->financial_status;
	s->trading_state = st->trading_state;
	s->round_lot_size = st->round_lot_size;
	s->seq = st->seq;
	if (fresh) {
		ck_pr_fence_store();
		ck_pr_store_ptr(&m->stocks[st->locate], s);
		stat_set(&m->st.stocks, m->st.stocks + 1);
	} else {
		ck_sequence_write_end(&s->sq);
	}
	return 0;
}

void sl__memtable_set_resolver(struct sl_memtable *m, const struct sl_memtable_resolver *r)
{
	m->resolver = r;
}

static void poison_key(struct sl_memtable *m, uint8_t kind, uint16_t locate, uint64_t a)
{
	uint32_t n = m->npoison;
	if (n == SL_MEMTABLE_POISON)
		return;
	m->poison[n] = (struct poison){ a, locate, kind };
	ck_pr_fence_store();
	ck_pr_store_32(&m->npoison, n + 1);
}

static int poisoned(struct sl_memtable *m, uint8_t kind, uint16_t locate, uint64_t a)
{
	uint32_t n = ck_pr_load_32(&m->npoison);
	ck_pr_fence_load();
	for (uint32_t i = 0; i < n; i++)
		if (m->poison[i].kind == kind && m->poison[i].locate == locate && m->poison[i].a == a)
			return 1;
	return 0;
}

/* A message whose older state could not be read: every key it would have changed or made. */
static void poison_msg(struct sl_memtable *m, const struct sl_itch_msg *msg)
{
	switch (msg->type) {
	case SL_ITCH_ORDER_EXECUTED:
	case SL_ITCH_ORDER_EXECUTED_PRICE:
		poison_key(m, 'O', msg->locate, msg->u.executed.ref);
		poison_key(m, 'T', 0, msg->u.executed.match);
		break;
	case SL_ITCH_ORDER_CANCEL:
		poison_key(m, 'O', msg->locate, msg->u.cancel.ref);
		break;
	case SL_ITCH_ORDER_DELETE:
		poison_key(m, 'O', msg->locate, msg->u.del.ref);
		break;
	case SL_ITCH_ORDER_REPLACE:
		poison_key(m, 'O', msg->locate, msg->u.replace.orig_ref);
		poison_key(m, 'O', msg->locate, msg->u.replace.new_ref);
		break;
	case SL_ITCH_BROKEN_TRADE:
		poison_key(m, 'T', 0, msg->u.broken_trade.match);
		break;
	default:
		break;
	}
}

int sl__memtable_apply(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq)
{
	int r = 0;
	tl_writer = m;
	m->resolve_err = 0;
	/* Free old slot arrays once readers have moved past them. */
	if (m->writer.n_pending && (m->st.applied & 1023) == 0)
		ck_epoch_poll(&m->writer);
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
	if (!r && m->resolve_err) {
		r = m->resolve_err;
		poison_msg(m, msg);
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

/* Consistent copies of records into the public structs: retry while the writer changes them. */
static void order_public(const struct order_rec *o, struct sl_order *out)
{
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
}

/* Returns false when the copy is of a moved record (one its walks skip). */
static bool trade_public(const struct trade_rec *t, struct sl_trade *out)
{
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
	return !c.moved;
}

static void stock_public(const struct stock_rec *s, struct sl_stock *out)
{
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
}

int sl__memtable_get_order(struct sl_memtable *m, uint16_t locate, uint64_t ref,
			   struct sl_order *out)
{
	ck_epoch_record_t *rec;
	if (read_begin(m, &rec))
		return -ENOMEM;
	/* Records outlive the section (never freed while m lives); the table may not. */
	struct order_rec *o = find_order(m, locate, ref);
	read_end(rec);
	if (!o)
		return poisoned(m, 'O', locate, ref) ? SL_ECORRUPT : SL_ENOTFOUND;
	order_public(o, out);
	return 0;
}

int sl__memtable_get_trade(struct sl_memtable *m, uint64_t match, struct sl_trade *out)
{
	ck_epoch_record_t *rec;
	if (read_begin(m, &rec))
		return -ENOMEM;
	struct trade_rec *t = find_trade(m, match);
	read_end(rec);
	if (!t)
		return poisoned(m, 'T', 0, match) ? SL_ECORRUPT : SL_ENOTFOUND;
	trade_public(t, out);
	return 0;
}

int sl__memtable_get_stock(struct sl_memtable *m, uint16_t locate, struct sl_stock *out)
{
	struct stock_rec *s = ck_pr_load_ptr(&m->stocks[locate]);
	if (!s)
		return SL_ENOTFOUND;
	stock_public(s, out);
	return 0;
}

/* Records of an arena in allocation order. */
static int arena_walk(const struct arena *a, int (*cb)(void *arg, const void *rec), void *arg)
{
	for (size_t c = 0; c < a->nchunks; c++) {
		size_t n = c + 1 == a->nchunks ? a->used : a->per_chunk;
		const uint8_t *base = a->chunks[c];
		for (size_t i = 0; i < n; i++) {
			int r = cb(arg, base + i * a->elem);
			if (r)
				return r;
		}
	}
	return 0;
}

/* Copy one open order record into another memtable as it is (same fields, same sequences). */
static int carry_order(void *arg, const void *rec)
{
	struct sl_memtable *fresh = arg;
	const struct order_rec *o = rec;
	if (o->status != SL_ORDER_OPEN)
		return 0;
	struct order_rec *n = new_order(fresh, o->locate, o->ref);
	if (!n)
		return -ENOMEM;
	*n = *o; /* m is quiesced: no writer can change o under us */
	ck_sequence_init(&n->sq);
	struct order_rec *dup;
	int r = publish_order(fresh, n, &dup);
	return r < 0 ? r : 0;
}

int sl__memtable_carry(struct sl_memtable *m, struct sl_memtable *fresh)
{
	tl_writer = fresh;
	int r = arena_walk(&m->order_arena, carry_order, fresh);
	for (uint32_t l = 0; !r && l < 65536; l++) {
		const struct stock_rec *s = m->stocks[l];
		if (!s)
			continue;
		struct stock_rec *n = arena_alloc(fresh->os, &fresh->stock_arena);
		if (!n)
			return -ENOMEM;
		*n = *s;
		ck_sequence_init(&n->sq);
		ck_pr_fence_store();
		ck_pr_store_ptr(&fresh->stocks[l], n);
		stat_set(&fresh->st.stocks, fresh->st.stocks + 1);
	}
	return r;
}

struct walk {
	const struct sl_memtable_visitor *v;
};

static int walk_order(void *arg, const void *rec)
{
	const struct walk *w = arg;
	struct sl_order o;
	order_public(rec, &o);
	return w->v->order(w->v->arg, &o);
}

static int walk_trade(void *arg, const void *rec)
{
	const struct walk *w = arg;
	struct sl_trade t;
	if (!trade_public(rec, &t))
		return 0; /* its match number's trade is a later record */
	return w->v->trade(w->v->arg, &t);
}

int sl__memtable_foreach(struct sl_memtable *m, const struct sl_memtable_visitor *v)
{
	struct walk w = { v };
	int r = 0;
	if (v->order && (r = arena_walk(&m->order_arena, walk_order, &w)))
		return r;
	for (uint32_t l = 0; v->stock && l < 65536; l++) {
		struct sl_stock s;
		if (sl__memtable_get_stock(m, (uint16_t)l, &s) == 0 && (r = v->stock(v->arg, &s)))
			return r;
	}
	if (v->trade)
		r = arena_walk(&m->trade_arena, walk_trade, &w);
	return r;
}

/* Walks start from the head as it is now; the acquire fence pairs with the writer's fence
 * before it stored that head, so every record reachable from it (each was the head once) is
 * seen filled, next included. next never changes again, so plain loads follow it. */
int sl__memtable_scan_orders(struct sl_memtable *m, uint16_t locate,
			     int (*cb)(void *arg, const struct sl_order *o), void *arg)
{
	const struct order_rec *o = ck_pr_load_ptr(&m->order_heads[locate]);
	ck_pr_fence_load();
	for (; o; o = o->next) {
		struct sl_order x;
		order_public(o, &x);
		int r = cb(arg, &x);
		if (r)
			return r;
	}
	return 0;
}

int sl__memtable_scan_trades(struct sl_memtable *m, uint16_t locate,
			     int (*cb)(void *arg, const struct sl_trade *t), void *arg)
{
	const struct trade_rec *t = ck_pr_load_ptr(&m->trade_heads[locate]);
	ck_pr_fence_load();
	for (; t; t = t->next) {
		struct sl_trade x;
		if (!trade_public(t, &x))
			continue;
		int r = cb(arg, &x);
		if (r)
			return r;
	}
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
	out->bytes = arena_bytes(&m->order_arena) + arena_bytes(&m->trade_arena) +
		     arena_bytes(&m->stock_arena);
}

int sl__memtable_read_hold(struct sl_memtable *m)
{
	ck_epoch_record_t *rec;
	return read_begin(m, &rec);
}

void sl__memtable_read_release(struct sl_memtable *m)
{
	read_end(reader_record(m));
}

unsigned sl__memtable_pending_frees(struct sl_memtable *m)
{
	return ck_pr_load_uint(&m->writer.n_pending);
}
