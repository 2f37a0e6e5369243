/* store.c - memtables, flush and tables behind the engine (see store.h). The applier writes
 * the active memtable; when it is full it becomes immutable, the open orders and the stock
 * directory seed a fresh one (so applying never reads tables for a live order), and the flush
 * thread writes the immutable one as a state table (level 0) plus its log range as an event
 * table, records both and the new checkpoint in one manifest edit, then lets the log drop what
 * the tables now hold. Readers take a read lock on the set of memtables and the version and
 * look newest first. store knows the log only through the log seam.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bloom.h"
#include "compact.h"
#include "flush.h"
#include "keys.h"
#include "manifest.h"
#include "store.h"
#include "tables.h"

#define MAX_IMM 4 /* immutable memtables waiting for the flush thread */

struct imm {
	struct sl_memtable *mt;
	uint64_t first_seq, last_seq;
};

struct sl_store {
	struct sl_store_config cfg;
	char dir[4096];
	struct sl_manifest *man;
	struct sl_tables *tc;
	struct sl_log *log;

	/* Guarded by lock: readers take it shared, rotation and flush installs exclusive. The
	 * applier reads mt without it (it is the only one that changes it). */
	pthread_rwlock_t lock;
	struct sl_memtable *mt;
	struct imm imm[MAX_IMM];
	size_t nimm;
	struct sl_version *ver;
	struct sl_memtable_resolver resolver;

	uint64_t mt_first_seq;   /* applier: first sequence in the active memtable */

	pthread_mutex_t fmu;     /* flush thread's wake-ups and rotation's waits */
	pthread_cond_t fcv;
	pthread_t flusher;
	int flusher_running, stop;
	int stalled;             /* the applier waits for the flush thread (tables cannot be
				    written: a full disk); __atomic */
	uint64_t rotate_at;      /* rotate once applied through this sequence, whatever the size
				    (0: no request); __atomic */
	int closing;             /* close began: rotations stop waiting; under fmu */
	int flush_err;           /* the last flush attempt's error, 0 once one succeeds;
				    __atomic */

	/* Compaction: its thread sleeps on ccv (under fmu) until a flush or a request. */
	struct sl_compactor *compactor;
	pthread_mutex_t cmu;     /* one compaction at a time (background or manual) */
	pthread_cond_t ccv;
	pthread_t compacter;
	int compacter_running;
	uint64_t compact_kicks;  /* under fmu */

	/* Open scans read memtables without the lock: a flushed memtable waits here (under fmu)
	 * until the last scan closes. */
	uint64_t scans_open;     /* __atomic; incremented under the read lock */
	struct sl_memtable **deferred;
	size_t ndeferred, deferred_cap;

	struct sl_store_stats st; /* counters, updated with __atomic adds */
};

static void add_stat(uint64_t *c, uint64_t v)
{
	__atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

/* ---- Lookups through the tables ------------------------------------------------------------- */

/* Look key up in the tables of v; on 0 the value is copied out through decode. */
static int table_get(struct sl_store *s, const struct sl_version *v, const uint8_t *key,
		     size_t klen, int (*decode)(const uint8_t *val, size_t vlen, void *arg),
		     void *arg)
{
	if (!v)
		return SL_ENOTFOUND;
	const void *val;
	size_t vlen;
	uint32_t flags;
	struct sl_sst *holder;
	int r = sl__tables_lookup(s->tc, v, key, klen, sl__bloom_hash(key, klen), &val, &vlen,
				  &flags, &holder);
	if (r)
		return r;
	r = decode(val, vlen, arg);
	sl__tables_put(s->tc, holder);
	return r;
}

struct order_q {
	uint16_t locate;
	uint64_t ref;
	struct sl_order *out;
};

static int decode_order(const uint8_t *val, size_t vlen, void *arg)
{
	struct order_q *q = arg;
	return sl__val_order_decode(val, vlen, q->locate, q->ref, q->out);
}

struct trade_q {
	uint64_t match;
	struct sl_trade *out;
};

static int decode_trade(const uint8_t *val, size_t vlen, void *arg)
{
	struct trade_q *q = arg;
	return sl__val_trade_decode(val, vlen, q->match, q->out);
}

struct stock_q {
	uint16_t locate;
	struct sl_stock *out;
};

static int decode_stock(const uint8_t *val, size_t vlen, void *arg)
{
	struct stock_q *q = arg;
	return sl__val_stock_decode(val, vlen, q->locate, q->out);
}

/* Immutables newest first, then tables; the caller holds the lock shared. */
static int older_order(struct sl_store *s, uint16_t locate, uint64_t ref, struct sl_order *out)
{
	for (size_t i = s->nimm; i-- > 0;)
		if (sl__memtable_get_order(s->imm[i].mt, locate, ref, out) == 0)
			return 0;
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = sl__key_order(k, locate, ref);
	struct order_q q = { locate, ref, out };
	return table_get(s, s->ver, k, kl, decode_order, &q);
}

static int older_trade(struct sl_store *s, uint64_t match, struct sl_trade *out)
{
	for (size_t i = s->nimm; i-- > 0;)
		if (sl__memtable_get_trade(s->imm[i].mt, match, out) == 0)
			return 0;
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = sl__key_trade(k, match);
	struct trade_q q = { match, out };
	return table_get(s, s->ver, k, kl, decode_trade, &q);
}

/* The active memtable's resolver: state from before it (applier's thread). */
static int resolve_order(void *arg, uint16_t locate, uint64_t ref, struct sl_order *out)
{
	struct sl_store *s = arg;
	pthread_rwlock_rdlock(&s->lock);
	int r = older_order(s, locate, ref, out);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

static int resolve_trade(void *arg, uint64_t match, struct sl_trade *out)
{
	struct sl_store *s = arg;
	pthread_rwlock_rdlock(&s->lock);
	int r = older_trade(s, match, out);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int sl__store_get_order(struct sl_store *s, uint16_t locate, uint64_t ref, struct sl_order *out)
{
	pthread_rwlock_rdlock(&s->lock);
	int r = sl__memtable_get_order(s->mt, locate, ref, out);
	if (r == SL_ENOTFOUND)
		r = older_order(s, locate, ref, out);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int sl__store_get_trade(struct sl_store *s, uint64_t match, struct sl_trade *out)
{
	pthread_rwlock_rdlock(&s->lock);
	int r = sl__memtable_get_trade(s->mt, match, out);
	if (r == SL_ENOTFOUND)
		r = older_trade(s, match, out);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int sl__store_get_stock(struct sl_store *s, uint16_t locate, struct sl_stock *out)
{
	/* The stock directory is carried into every memtable: the active one is enough, except
	 * before the first message after a restart (then the tables have it). */
	pthread_rwlock_rdlock(&s->lock);
	int r = sl__memtable_get_stock(s->mt, locate, out);
	for (size_t i = s->nimm; r == SL_ENOTFOUND && i-- > 0;)
		r = sl__memtable_get_stock(s->imm[i].mt, locate, out);
	if (r == SL_ENOTFOUND) {
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = sl__key_stock(k, locate);
		struct stock_q q = { locate, out };
		r = table_get(s, s->ver, k, kl, decode_stock, &q);
	}
	pthread_rwlock_unlock(&s->lock);
	return r;
}

/* ---- Versions ------------------------------------------------------------------------------- */

/* Make the manifest's current version the one readers use, unless a newer one is installed
 * already (the flush and compaction threads both install; versions only move forward). */
static void install_latest(struct sl_store *s)
{
	struct sl_version *nv = sl__manifest_acquire(s->man), *old;
	pthread_rwlock_wrlock(&s->lock);
	if (s->ver && nv->edits <= s->ver->edits) {
		old = nv;
	} else {
		old = s->ver;
		s->ver = nv;
	}
	pthread_rwlock_unlock(&s->lock);
	if (old)
		sl__manifest_release(s->man, old);
}

static void table_path(const struct sl_store *s, uint64_t file_no, char *out, size_t cap);

/* Files an installed edit removed: no reader can reach them through a version any more (they
 * look under the lock, at the installed version), and open handles keep their mappings. */
static void delete_tables(struct sl_store *s, const uint64_t *file_nos, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char path[4200];
		table_path(s, file_nos[i], path, sizeof(path));
		sl__tables_forget(s->tc, file_nos[i]);
		int r = s->cfg.os->ops->unlink(s->cfg.os->ctx, path);
		if (r < 0 && r != -ENOENT)
			fprintf(stderr, "sluice: store: removing %s: %s (it is no longer used)\n",
				path, sl_strerror(r));
	}
}

/* ---- Flush ---------------------------------------------------------------------------------- */

static void table_path(const struct sl_store *s, uint64_t file_no, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".sst", s->dir, file_no);
}

static void info_from_meta(struct sl_table_info *t, uint64_t file_no, uint32_t level,
			   const struct sl_sst_meta *m, uint64_t first, uint64_t last)
{
	memset(t, 0, sizeof(*t));
	t->file_no = file_no;
	t->level = level;
	t->file_bytes = m->file_bytes;
	t->entries = m->entries;
	memcpy(t->smallest, m->smallest, m->smallest_len);
	t->smallest_len = m->smallest_len;
	memcpy(t->largest, m->largest, m->largest_len);
	t->largest_len = m->largest_len;
	t->min_seq = first;
	t->max_seq = last;
}

/* Write one immutable memtable out and record it. 0 or an error (nothing recorded then). */
static int flush_one(struct sl_store *s, const struct imm *im)
{
	int r = s->log->ops->wait_durable(s->log->impl, im->last_seq, -1);
	if (r)
		return r;
	struct sl_sst_options o = { .no_sync = s->cfg.no_sync,
				    .user = { im->first_seq, im->last_seq } };
	struct sl_table_info add[2];
	size_t n_add = 0;
	char pa[4200], pb[4200];
	uint64_t fa = sl__manifest_new_file_no(s->man), fb = sl__manifest_new_file_no(s->man);
	table_path(s, fa, pa, sizeof(pa));
	table_path(s, fb, pb, sizeof(pb));
	struct sl_flush_result ra, rb;
	if ((r = sl__flush_state(im->mt, s->cfg.os, s->cfg.accel, pa, &o, &ra)))
		return r;
	if (ra.meta.entries)
		info_from_meta(&add[n_add++], fa, 0, &ra.meta, im->first_seq, im->last_seq);
	else
		s->cfg.os->ops->unlink(s->cfg.os->ctx, pa);
	if ((r = sl__flush_events(s->log, im->first_seq, im->last_seq, s->cfg.os, s->cfg.accel, pb,
				  &o, &rb))) {
		s->cfg.os->ops->unlink(s->cfg.os->ctx, pa);
		return r;
	}
	info_from_meta(&add[n_add++], fb, SL_EVENT_LEVEL, &rb.meta, im->first_seq, im->last_seq);
	struct sl_manifest_edit e = { .add = add, .n_add = n_add, .checkpoint_seq = im->last_seq };
	if ((r = sl__manifest_apply(s->man, &e))) {
		/* Not recorded: the files are orphans; remove them now (open would anyway). */
		s->cfg.os->ops->unlink(s->cfg.os->ctx, pa);
		s->cfg.os->ops->unlink(s->cfg.os->ctx, pb);
		return r;
	}
	add_stat(&s->st.flushed_bytes, ra.meta.file_bytes + rb.meta.file_bytes);
	return 0;
}

/* Free a memtable no lookup can reach, or keep it for the scans still open. */
static void release_memtable(struct sl_store *s, struct sl_memtable *mt)
{
	pthread_mutex_lock(&s->fmu);
	if (__atomic_load_n(&s->scans_open, __ATOMIC_ACQUIRE)) {
		if (s->ndeferred == s->deferred_cap) {
			size_t cap = s->deferred_cap ? s->deferred_cap * 2 : 8;
			struct sl_memtable **d = realloc(s->deferred, cap * sizeof(*d));
			if (d) {
				s->deferred = d;
				s->deferred_cap = cap;
			}
		}
		if (s->ndeferred < s->deferred_cap) {
			s->deferred[s->ndeferred++] = mt;
			mt = NULL;
		}
	}
	pthread_mutex_unlock(&s->fmu);
	/* Out of memory for the list: the scan is lost over freeing late; wait for it. */
	while (mt && __atomic_load_n(&s->scans_open, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	sl__memtable_free(mt);
}

static void *flusher_main(void *arg)
{
	struct sl_store *s = arg;
	pthread_setname_np(pthread_self(), "sl-flush");
	for (;;) {
		pthread_mutex_lock(&s->fmu);
		while (!s->stop && !__atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&s->fcv, &s->fmu);
		int stop = s->stop;
		pthread_mutex_unlock(&s->fmu);
		if (stop)
			break;
		/* Only this thread removes immutables; the applier only appends. */
		pthread_rwlock_rdlock(&s->lock);
		struct imm im = s->imm[0];
		pthread_rwlock_unlock(&s->lock);
		int r = flush_one(s, &im);
		__atomic_store_n(&s->flush_err, r, __ATOMIC_RELEASE);
		if (r) {
			add_stat(&s->st.flush_errors, 1);
			pthread_mutex_lock(&s->fmu);
			pthread_cond_broadcast(&s->fcv); /* flush waiters learn of it */
			pthread_mutex_unlock(&s->fmu);
			fprintf(stderr, "sluice: store: flushing sequences %" PRIu64 "..%" PRIu64
				" failed: %s; retrying in 1 s (the log keeps them)\n",
				im.first_seq, im.last_seq, sl_strerror(r));
			struct timespec ts = { 1, 0 };
			nanosleep(&ts, NULL);
			continue;
		}
		install_latest(s);
		pthread_rwlock_wrlock(&s->lock);
		memmove(&s->imm[0], &s->imm[1], (s->nimm - 1) * sizeof(s->imm[0]));
		__atomic_store_n(&s->nimm, s->nimm - 1, __ATOMIC_RELEASE);
		pthread_rwlock_unlock(&s->lock);
		/* No lookup can reach the flushed memtable any more (they take the lock); a scan
		 * opened before may still read it. */
		release_memtable(s, im.mt);
		add_stat(&s->st.flushes, 1);
		/* The log no longer needs what the tables hold. */
		r = s->log->ops->truncate_before(s->log->impl, im.last_seq + 1);
		if (r)
			fprintf(stderr, "sluice: store: dropping log segments before %" PRIu64
				": %s\n", im.last_seq + 1, sl_strerror(r));
		pthread_mutex_lock(&s->fmu);
		pthread_cond_broadcast(&s->fcv); /* a rotation may be waiting for room */
		s->compact_kicks++;
		pthread_cond_broadcast(&s->ccv);
		pthread_mutex_unlock(&s->fmu);
	}
	return NULL;
}

/* ---- Rotation (applier) --------------------------------------------------------------------- */

int sl__store_after_apply(struct sl_store *s, uint64_t last_seq)
{
	if (s->cfg.rdonly)
		return 0;
	uint64_t at = __atomic_load_n(&s->rotate_at, __ATOMIC_ACQUIRE);
	int forced = at && last_seq >= at &&
		     __atomic_compare_exchange_n(&s->rotate_at, &at, 0, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED);
	if (!forced) {
		if (!s->cfg.memtable_bytes)
			return 0;
		struct sl_memtable_stats ms;
		sl__memtable_get_stats(s->mt, &ms);
		if (ms.bytes < s->cfg.memtable_bytes)
			return 0;
	}
	/* Nothing applied since the last rotation: nothing to flush. */
	if (last_seq < s->mt_first_seq)
		return 0;
	/* Room for one more immutable: wait (counted) while the flush thread catches up. */
	pthread_mutex_lock(&s->fmu);
	if (__atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE) == MAX_IMM && !s->closing) {
		add_stat(&s->st.rotate_waits, 1);
		__atomic_store_n(&s->stalled, 1, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE) == MAX_IMM && !s->stop && !s->closing)
		pthread_cond_wait(&s->fcv, &s->fmu);
	__atomic_store_n(&s->stalled, 0, __ATOMIC_RELEASE);
	int closing = s->closing || __atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE) == MAX_IMM;
	pthread_mutex_unlock(&s->fmu);
	/* Closing with every slot taken (flushes failing): the memtable just grows; the log
	 * holds everything for the next open. */
	if (closing && __atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE) == MAX_IMM)
		return 0;
	struct sl_memtable *fresh;
	int r = sl__memtable_new(s->cfg.os, s->cfg.expected_orders, &fresh);
	if (r)
		return r;
	if ((r = sl__memtable_carry(s->mt, fresh))) {
		sl__memtable_free(fresh);
		return r;
	}
	sl__memtable_set_resolver(fresh, &s->resolver);
	pthread_rwlock_wrlock(&s->lock);
	s->imm[s->nimm] = (struct imm){ s->mt, s->mt_first_seq, last_seq };
	__atomic_store_n(&s->nimm, s->nimm + 1, __ATOMIC_RELEASE);
	s->mt = fresh;
	pthread_rwlock_unlock(&s->lock);
	s->mt_first_seq = last_seq + 1;
	add_stat(&s->st.rotations, 1);
	pthread_mutex_lock(&s->fmu);
	pthread_cond_broadcast(&s->fcv);
	pthread_mutex_unlock(&s->fmu);
	return 0;
}

/* ---- Compaction and retention --------------------------------------------------------------- */

static void add_compact_stats(struct sl_store *s, const struct sl_compact_result *res)
{
	add_stat(&s->st.compactions, 1);
	add_stat(&s->st.compacted_read_bytes, res->bytes_in);
	add_stat(&s->st.compacted_bytes, res->bytes_out);
	add_stat(&s->st.compaction_dropped, res->dropped_older + res->dropped_tombstones);
}

/* One compaction (full, or the one the current version needs most) under cmu. 1 when one ran,
 * 0 when there was nothing to do, or an error (nothing changed then). */
static int compact_once(struct sl_store *s, int full)
{
	struct sl_version *v = sl__manifest_acquire(s->man);
	struct sl_compact_pick *p;
	int r = sl__compact_pick(s->compactor, v, full, &p);
	if (r <= 0) {
		sl__manifest_release(s->man, v);
		return r;
	}
	struct sl_compact_result res;
	__atomic_store_n(&s->st.compaction_running, 1, __ATOMIC_RELAXED);
	r = sl__compact_run(s->compactor, s->man, s->tc, p, &res);
	__atomic_store_n(&s->st.compaction_running, 0, __ATOMIC_RELAXED);
	sl__compact_pick_free(p);
	sl__manifest_release(s->man, v);
	if (r) {
		add_stat(&s->st.compaction_errors, 1);
		return r;
	}
	install_latest(s);
	delete_tables(s, res.obsolete, res.n_obsolete);
	add_compact_stats(s, &res);
	sl__compact_result_free(&res);
	return 1;
}

/* The receive time of the newest event of an event table (its largest key). */
static int event_table_newest_rx(struct sl_store *s, const struct sl_table_info *t,
				 uint64_t *rx_ns)
{
	const void *val;
	size_t vlen;
	uint32_t flags, kind;
	struct sl_sst *h;
	int r = sl__tables_get(s->tc, t->file_no, &h);
	if (r)
		return r;
	const uint8_t *payload;
	size_t plen;
	r = sl__sst_get(h, t->largest, t->largest_len, &val, &vlen, &flags);
	if (r == 0)
		r = sl__val_event_decode(val, vlen, &kind, rx_ns, &payload, &plen);
	sl__tables_put(s->tc, h);
	return r;
}

/* Drop the oldest event tables past the byte limit, and those whose newest event is older
 * than the age limit. Their history is gone for replay; state never depends on it. */
static int retire_events(struct sl_store *s)
{
	uint64_t max_bytes = s->cfg.event_retain_bytes, max_secs = s->cfg.event_retain_secs;
	if (!max_bytes && !max_secs)
		return 0;
	struct sl_version *v = sl__manifest_acquire(s->man);
	const struct sl_table_info *ev = v->tables[SL_EVENT_LEVEL];
	size_t n = v->n[SL_EVENT_LEVEL], drop = 0;
	uint64_t total = 0, dropped_bytes = 0;
	for (size_t i = 0; i < n; i++)
		total += ev[i].file_bytes;
	/* Event tables are disjoint and sorted by key, which is sequence order: oldest first. */
	uint64_t now = s->cfg.os->ops->now_ns(s->cfg.os->ctx);
	while (drop < n) {
		int go = max_bytes && total - dropped_bytes > max_bytes;
		if (!go && max_secs) {
			uint64_t rx;
			if (event_table_newest_rx(s, &ev[drop], &rx) == 0 &&
			    rx + max_secs * 1000000000ull < now)
				go = 1;
		}
		if (!go)
			break;
		dropped_bytes += ev[drop].file_bytes;
		drop++;
	}
	int r = 0;
	if (drop) {
		uint64_t *del = malloc(drop * sizeof(*del));
		r = -ENOMEM;
		if (del) {
			for (size_t i = 0; i < drop; i++)
				del[i] = ev[i].file_no;
			struct sl_manifest_edit e = { .del = del, .n_del = drop };
			r = sl__manifest_apply(s->man, &e);
			if (r == 0) {
				install_latest(s);
				delete_tables(s, del, drop);
				add_stat(&s->st.events_retired_tables, drop);
				add_stat(&s->st.events_retired_bytes, dropped_bytes);
			}
			free(del);
		}
	}
	sl__manifest_release(s->man, v);
	return r;
}

static void *compacter_main(void *arg)
{
	struct sl_store *s = arg;
	pthread_setname_np(pthread_self(), "sl-compact");
	uint64_t seen = 0;
	int backoff = 0;
	for (;;) {
		pthread_mutex_lock(&s->fmu);
		if (backoff || seen == s->compact_kicks) {
			/* Wake for a flush, for stop, or each second (age-based retention). */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			if (!s->stop)
				pthread_cond_timedwait(&s->ccv, &s->fmu, &ts);
		}
		seen = s->compact_kicks;
		int stop = s->stop;
		pthread_mutex_unlock(&s->fmu);
		if (stop)
			break;
		backoff = 0;
		int r = retire_events(s);
		if (r < 0)
			fprintf(stderr, "sluice: store: retiring event tables: %s\n", sl_strerror(r));
		if (!s->cfg.compaction)
			continue;
		/* Compact while some level is over its target; a new flush re-kicks us. */
		for (int i = 0; i < 64 && !__atomic_load_n(&s->stop, __ATOMIC_RELAXED); i++) {
			pthread_mutex_lock(&s->cmu);
			r = compact_once(s, 0);
			pthread_mutex_unlock(&s->cmu);
			if (r <= 0)
				break;
		}
		if (r < 0 && r != -ECANCELED) {
			fprintf(stderr, "sluice: store: compaction failed: %s; retrying in 1 s (the "
				"store is unchanged)\n", sl_strerror(r));
			backoff = 1;
		}
	}
	return NULL;
}

int sl__store_compact(struct sl_store *s)
{
	if (s->cfg.rdonly)
		return SL_ERDONLY;
	/* What waits for a flush first: a full compaction covers the tables there are. */
	int r = sl__store_wait_flushed(s, 0);
	if (r)
		return r;
	pthread_mutex_lock(&s->cmu);
	/* More level-0 tables than one merge takes need more than one pass. */
	for (int pass = 0; pass < 64; pass++) {
		struct sl_version *v = sl__manifest_acquire(s->man);
		size_t l0 = v->n[0];
		sl__manifest_release(s->man, v);
		r = compact_once(s, 1);
		if (r <= 0 || l0 <= SL_ACCEL_MAX_RUNS - SL_STATE_BOTTOM)
			break;
	}
	pthread_mutex_unlock(&s->cmu);
	return r < 0 ? r : 0;
}

void sl__store_request_rotate(struct sl_store *s, uint64_t seq)
{
	__atomic_store_n(&s->rotate_at, seq ? seq : 1, __ATOMIC_RELEASE);
}

int sl__store_wait_flushed(struct sl_store *s, uint64_t seq)
{
	pthread_mutex_lock(&s->fmu);
	for (;;) {
		uint64_t cp = sl__store_checkpoint(s);
		size_t nimm = __atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE);
		if ((nimm == 0 && cp >= seq) || s->stop || !s->flusher_running ||
		    __atomic_load_n(&s->flush_err, __ATOMIC_ACQUIRE))
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->fcv, &s->fmu, &ts);
	}
	int err = __atomic_load_n(&s->flush_err, __ATOMIC_ACQUIRE);
	int r = sl__store_checkpoint(s) >= seq ? 0 : err ? err : SL_EFAILED;
	pthread_mutex_unlock(&s->fmu);
	return r;
}

/* ---- Snapshots of the table set (replication) ------------------------------------------------ */

static int reload_stocks(struct sl_store *s, struct sl_memtable *mt);

static int link_table(const char *from, const char *to)
{
	if (link(from, to) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

int sl__store_pin(struct sl_store *s, const char *dst_dir, struct sl_table_info **out, size_t *n,
		  uint64_t *checkpoint)
{
	/* A compaction may delete a table of the version between acquiring it and linking its
	 * file (deletions follow the edit that installs the newer version): try again on that
	 * newer one. */
	for (int attempt = 0; attempt < 16; attempt++) {
		struct sl_version *v = sl__manifest_acquire(s->man);
		size_t total = 0;
		for (int l = 0; l < SL_LEVELS; l++)
			total += v->n[l];
		struct sl_table_info *t = malloc((total ? total : 1) * sizeof(*t));
		if (!t) {
			sl__manifest_release(s->man, v);
			return -ENOMEM;
		}
		size_t k = 0;
		int r = 0;
		for (int l = 0; l < SL_LEVELS && !r; l++) {
			for (size_t i = 0; i < v->n[l] && !r; i++) {
				char from[4200], to[4200];
				t[k] = v->tables[l][i];
				table_path(s, t[k].file_no, from, sizeof(from));
				snprintf(to, sizeof(to), "%s/%016" PRIx64 ".sst", dst_dir, t[k].file_no);
				r = link_table(from, to);
				k++;
			}
		}
		uint64_t cp = v->checkpoint_seq;
		sl__manifest_release(s->man, v);
		if (r == 0) {
			*out = t;
			*n = total;
			*checkpoint = cp;
			return 0;
		}
		free(t);
		if (r != -ENOENT)
			return r;
	}
	return -EAGAIN;
}

static int cmp_file_no(const void *a, const void *b)
{
	const struct sl_table_info *x = a, *y = b;
	return x->file_no < y->file_no ? -1 : x->file_no > y->file_no;
}

int sl__store_install(struct sl_store *s, const char *src_dir, const struct sl_table_info *tabs,
		      size_t n, uint64_t checkpoint)
{
	if (s->cfg.rdonly)
		return SL_ERDONLY;
	struct sl_table_info *add = malloc((n ? n : 1) * sizeof(*add));
	if (!add)
		return -ENOMEM;
	memcpy(add, tabs, n * sizeof(*add));
	/* New numbers in the order of the old ones: level 0's newest-first order is by number. */
	qsort(add, n, sizeof(*add), cmp_file_no);
	pthread_mutex_lock(&s->cmu);
	struct sl_version *v = sl__manifest_acquire(s->man);
	size_t ndel = 0, moved = 0;
	for (int l = 0; l < SL_LEVELS; l++)
		ndel += v->n[l];
	uint64_t *del = malloc((ndel ? ndel : 1) * sizeof(*del));
	int r = del ? 0 : -ENOMEM;
	if (!r && checkpoint < v->checkpoint_seq)
		r = -EINVAL;
	for (size_t i = 0, k = 0; !r && i < (size_t)SL_LEVELS; i++)
		for (size_t j = 0; j < v->n[i]; j++)
			del[k++] = v->tables[i][j].file_no;
	for (; !r && moved < n; moved++) {
		char from[4200], to[4200];
		snprintf(from, sizeof(from), "%s/%016" PRIx64 ".sst", src_dir, add[moved].file_no);
		add[moved].file_no = sl__manifest_new_file_no(s->man);
		table_path(s, add[moved].file_no, to, sizeof(to));
		r = s->cfg.os->ops->rename(s->cfg.os->ctx, from, to);
		if (r)
			fprintf(stderr, "sluice: store: moving %s to %s: %s\n", from, to,
				sl_strerror(r));
	}
	if (r && moved)
		moved--; /* the last one did not move */
	if (!r)
		r = s->cfg.os->ops->sync_dir(s->cfg.os->ctx, s->dir);
	struct sl_manifest_edit e = { .add = add, .n_add = n, .del = del, .n_del = ndel,
				      .checkpoint_seq = checkpoint };
	if (!r)
		r = sl__manifest_apply(s->man, &e);
	if (r) {
		/* Not recorded: what moved is an orphan; remove it now (open would anyway). */
		for (size_t i = 0; i < moved; i++) {
			char path[4200];
			table_path(s, add[i].file_no, path, sizeof(path));
			s->cfg.os->ops->unlink(s->cfg.os->ctx, path);
		}
		goto out;
	}
	install_latest(s);
	delete_tables(s, del, ndel);
	/* A fresh active memtable over the new tables (the caller made sure nothing waits for a
	 * flush and the applier is idle). */
	struct sl_memtable *fresh = NULL;
	if ((r = sl__memtable_new(s->cfg.os, s->cfg.expected_orders, &fresh)) == 0) {
		sl__memtable_set_resolver(fresh, &s->resolver);
		pthread_rwlock_rdlock(&s->lock);
		r = reload_stocks(s, fresh);
		pthread_rwlock_unlock(&s->lock);
	}
	if (r < 0) {
		/* The tables are in; the stocks come back at the next open. */
		fprintf(stderr, "sluice: store: %s: reloading the stock directory after a snapshot "
			"install: %s\n", s->dir, sl_strerror(r));
		sl__memtable_free(fresh);
		r = 0;
		goto out;
	}
	pthread_rwlock_wrlock(&s->lock);
	struct sl_memtable *old = s->mt;
	s->mt = fresh;
	pthread_rwlock_unlock(&s->lock);
	s->mt_first_seq = checkpoint + 1;
	release_memtable(s, old);
out:
	sl__manifest_release(s->man, v);
	pthread_mutex_unlock(&s->cmu);
	free(del);
	free(add);
	return r;
}

/* ---- Multi-get ------------------------------------------------------------------------------ */

void sl__store_get_orders(struct sl_store *s, size_t n, const uint16_t *locates,
			  const uint64_t *refs, struct sl_order *out, int *rc)
{
	uint8_t keys[SL_TABLES_BATCH][SL_KEY_MAX_LEN];
	const uint8_t *kp[SL_TABLES_BATCH];
	size_t kl[SL_TABLES_BATCH], idx[SL_TABLES_BATCH];
	uint64_t h[SL_TABLES_BATCH];
	struct sl_tables_result res[SL_TABLES_BATCH];
	pthread_rwlock_rdlock(&s->lock);
	size_t i = 0;
	while (i < n) {
		/* Memtables first; the keys they miss go to the tables together. */
		size_t m = 0;
		for (; i < n && m < SL_TABLES_BATCH; i++) {
			int r = sl__memtable_get_order(s->mt, locates[i], refs[i], &out[i]);
			for (size_t j = s->nimm; r == SL_ENOTFOUND && j-- > 0;)
				r = sl__memtable_get_order(s->imm[j].mt, locates[i], refs[i], &out[i]);
			rc[i] = r;
			if (r != SL_ENOTFOUND || !s->ver)
				continue;
			kl[m] = sl__key_order(keys[m], locates[i], refs[i]);
			kp[m] = keys[m];
			h[m] = sl__bloom_hash(keys[m], kl[m]);
			idx[m++] = i;
		}
		if (!m)
			continue;
		int r = sl__tables_lookup_batch(s->tc, s->ver, m, kp, kl, h, res);
		for (size_t j = 0; j < m; j++) {
			size_t k = idx[j];
			if (r) {
				rc[k] = r;
				continue;
			}
			rc[k] = res[j].rc;
			if (res[j].rc == 0) {
				rc[k] = sl__val_order_decode(res[j].val, res[j].vlen, locates[k],
							     refs[k], &out[k]);
				sl__tables_put(s->tc, res[j].holder);
			}
		}
	}
	pthread_rwlock_unlock(&s->lock);
}

/* ---- Events from tables --------------------------------------------------------------------- */

struct sl_store_events {
	struct sl_tables_events *c;
};

int sl__store_events_open(struct sl_store *s, uint64_t from_seq, struct sl_store_events **out)
{
	struct sl_store_events *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_rwlock_rdlock(&s->lock);
	/* The cursor holds its own handles on the tables: the version may go after this. */
	int r = s->ver ? sl__tables_events_open(s->tc, s->ver, from_seq, &e->c) : 0;
	pthread_rwlock_unlock(&s->lock);
	if (r) {
		free(e);
		return r;
	}
	*out = e;
	return 0;
}

int sl__store_events_next(struct sl_store_events *c, uint64_t *seq, uint32_t *kind,
			  uint64_t *rx_ns, const uint8_t **payload, size_t *plen)
{
	if (!c->c)
		return SL_EEND;
	return sl__tables_events_next(c->c, seq, kind, rx_ns, payload, plen);
}

void sl__store_events_close(struct sl_store_events *c)
{
	if (!c)
		return;
	sl__tables_events_close(c->c);
	free(c);
}

/* ---- Lifecycle ------------------------------------------------------------------------------ */

int sl__store_stalled(struct sl_store *s)
{
	/* Waiting for a flush thread that is merely behind is back-pressure, not a stall: only
	 * one whose flushes fail (a full disk) stops the state from advancing. */
	return __atomic_load_n(&s->stalled, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&s->flush_err, __ATOMIC_ACQUIRE);
}

void sl__store_begin_close(struct sl_store *s)
{
	pthread_mutex_lock(&s->fmu);
	s->closing = 1;
	pthread_cond_broadcast(&s->fcv);
	pthread_mutex_unlock(&s->fmu);
}

uint64_t sl__store_first_seq(struct sl_store *s)
{
	pthread_rwlock_rdlock(&s->lock);
	uint64_t f = 1;
	if (s->ver)
		f = s->ver->n[SL_EVENT_LEVEL] ? s->ver->tables[SL_EVENT_LEVEL][0].min_seq
					       : s->ver->checkpoint_seq + 1;
	pthread_rwlock_unlock(&s->lock);
	return f;
}

uint64_t sl__store_checkpoint(struct sl_store *s)
{
	pthread_rwlock_rdlock(&s->lock);
	uint64_t c = s->ver ? s->ver->checkpoint_seq : 0;
	pthread_rwlock_unlock(&s->lock);
	return c;
}

struct sl_memtable *sl__store_active(struct sl_store *s)
{
	return s->mt;
}

/* Bring the tables' copy of the stock directory into mt (the active memtable to be). */
static int reload_stocks(struct sl_store *s, struct sl_memtable *mt)
{
	if (!s->ver->checkpoint_seq)
		return 0;
	uint64_t bad = 0;
	for (uint32_t l = 0; l < 65536; l++) {
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = sl__key_stock(k, (uint16_t)l);
		struct sl_stock st;
		struct stock_q q = { (uint16_t)l, &st };
		int r = table_get(s, s->ver, k, kl, decode_stock, &q);
		if (r == SL_ENOTFOUND)
			continue;
		if (r == SL_ECORRUPT || r == -ENOENT) {
			/* A damaged or missing table: this stock stays in the tables, where a query
			 * gets the error; the rest of the store opens. */
			if (!bad++)
				fprintf(stderr, "sluice: store: %s: stock %u cannot be read back from "
					"the tables (%s); serving the rest\n", s->dir, l,
					sl_strerror(r));
			continue;
		}
		if (r == 0)
			r = sl__memtable_put_stock(mt, &st);
		if (r < 0)
			return r;
	}
	return 0;
}

int sl__store_open(const struct sl_store_config *cfg, struct sl_store **out)
{
	struct sl_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	snprintf(s->dir, sizeof(s->dir), "%s", cfg->dir);
	s->cfg.dir = s->dir;
	pthread_rwlock_init(&s->lock, NULL);
	pthread_mutex_init(&s->fmu, NULL);
	pthread_cond_init(&s->fcv, NULL);
	pthread_mutex_init(&s->cmu, NULL);
	pthread_cond_init(&s->ccv, NULL);
	s->resolver = (struct sl_memtable_resolver){ resolve_order, resolve_trade, s };
	int r = sl__manifest_open(cfg->os, cfg->accel, s->dir, cfg->rdonly, &s->man);
	if (r)
		goto out_close;
	s->ver = sl__manifest_acquire(s->man);
	if ((r = sl__tables_open(cfg->os, cfg->accel, s->dir, &s->tc)))
		goto out_close;
	if (!cfg->rdonly && (r = sl__tables_remove_orphans(s->tc, s->ver)) > 0) {
		fprintf(stderr, "sluice: store: %s: removed %d table file(s) no manifest edit "
			"recorded (a flush cut short)\n", s->dir, r);
		r = 0;
	}
	if (r < 0)
		goto out_close;
	if (!cfg->rdonly) {
		/* Level 1 holds a few flushes' worth; output tables are a fraction of a flush. */
		uint64_t mb = cfg->memtable_bytes ? cfg->memtable_bytes : 256ull << 20;
		uint64_t tb = mb / 2;
		tb = tb < (256u << 10) ? 256u << 10 : tb > (64ull << 20) ? 64ull << 20 : tb;
		struct sl_compact_config cc = {
			.os = cfg->os,
			.accel = cfg->accel,
			.dir = s->dir,
			.no_sync = cfg->no_sync,
			.stop = &s->stop,
			.l0_trigger = cfg->l0_trigger,
			.base_bytes = cfg->base_bytes ? cfg->base_bytes
				: mb * 2 < (4u << 20) ? 4u << 20 : mb * 2,
			.table_bytes = cfg->table_bytes ? cfg->table_bytes : tb,
		};
		if ((r = sl__compactor_new(&cc, &s->compactor)))
			goto out_close;
	}
	if ((r = sl__memtable_new(cfg->os, cfg->expected_orders, &s->mt)))
		goto out_close;
	sl__memtable_set_resolver(s->mt, &s->resolver);
	/* The stock directory lives in every memtable (messages after it update trading states
	 * in place): bring the tables' copy back, as a rotation would have carried it. */
	if ((r = reload_stocks(s, s->mt)) < 0)
		goto out_close;
	s->mt_first_seq = s->ver->checkpoint_seq + 1;
	*out = s;
	return 0;
out_close:
	sl__store_close(s);
	return r;
}

int sl__store_start(struct sl_store *s, struct sl_log *log)
{
	s->log = log;
	if (s->cfg.rdonly)
		return 0;
	if (pthread_create(&s->flusher, NULL, flusher_main, s))
		return -EAGAIN;
	s->flusher_running = 1;
	if (pthread_create(&s->compacter, NULL, compacter_main, s))
		return -EAGAIN;
	s->compacter_running = 1;
	return 0;
}

void sl__store_close(struct sl_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->fmu);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->fcv);
	pthread_cond_broadcast(&s->ccv);
	pthread_mutex_unlock(&s->fmu);
	if (s->flusher_running)
		pthread_join(s->flusher, NULL);
	if (s->compacter_running)
		pthread_join(s->compacter, NULL);
	sl__compactor_free(s->compactor);
	for (size_t i = 0; i < s->nimm; i++)
		sl__memtable_free(s->imm[i].mt);
	sl__memtable_free(s->mt);
	for (size_t i = 0; i < s->ndeferred; i++)
		sl__memtable_free(s->deferred[i]);
	free(s->deferred);
	if (s->man)
		sl__manifest_release(s->man, s->ver);
	sl__tables_close(s->tc);
	sl__manifest_close(s->man);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->fmu);
	pthread_cond_destroy(&s->fcv);
	pthread_mutex_destroy(&s->cmu);
	pthread_cond_destroy(&s->ccv);
	free(s);
}

void sl__store_get_stats(struct sl_store *s, struct sl_store_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->rotations = __atomic_load_n(&s->st.rotations, __ATOMIC_RELAXED);
	out->rotate_waits = __atomic_load_n(&s->st.rotate_waits, __ATOMIC_RELAXED);
	out->flushes = __atomic_load_n(&s->st.flushes, __ATOMIC_RELAXED);
	out->flush_errors = __atomic_load_n(&s->st.flush_errors, __ATOMIC_RELAXED);
	out->flushed_bytes = __atomic_load_n(&s->st.flushed_bytes, __ATOMIC_RELAXED);
	out->compactions = __atomic_load_n(&s->st.compactions, __ATOMIC_RELAXED);
	out->compaction_errors = __atomic_load_n(&s->st.compaction_errors, __ATOMIC_RELAXED);
	out->compacted_read_bytes = __atomic_load_n(&s->st.compacted_read_bytes, __ATOMIC_RELAXED);
	out->compacted_bytes = __atomic_load_n(&s->st.compacted_bytes, __ATOMIC_RELAXED);
	out->compaction_dropped = __atomic_load_n(&s->st.compaction_dropped, __ATOMIC_RELAXED);
	out->compaction_running = __atomic_load_n(&s->st.compaction_running, __ATOMIC_RELAXED);
	out->events_retired_tables =
		__atomic_load_n(&s->st.events_retired_tables, __ATOMIC_RELAXED);
	out->events_retired_bytes = __atomic_load_n(&s->st.events_retired_bytes, __ATOMIC_RELAXED);
	sl__tables_bloom_stats(s->tc, &out->bloom_probes, &out->bloom_negatives,
			       &out->bloom_false_positives);
	pthread_rwlock_rdlock(&s->lock);
	out->immutables = s->nimm;
	if (s->ver) {
		out->checkpoint_seq = s->ver->checkpoint_seq;
		if (s->ver->n[SL_EVENT_LEVEL])
			out->first_event_seq = s->ver->tables[SL_EVENT_LEVEL][0].min_seq;
		for (int l = 0; s->compactor && s->cfg.compaction && l < SL_STATE_BOTTOM; l++)
			out->compaction_pending += sl__compact_score(s->compactor, s->ver, l) >= 1.0;
		for (int l = 0; l < SL_LEVELS && l < 8; l++) {
			for (size_t i = 0; i < s->ver->n[l]; i++) {
				out->levels_tables[l]++;
				out->levels_bytes[l] += s->ver->tables[l][i].file_bytes;
			}
			out->tables += out->levels_tables[l];
			out->table_bytes += out->levels_bytes[l];
		}
	}
	pthread_rwlock_unlock(&s->lock);
}

int sl__store_probe(const struct sl_os *os, struct sl_accel *accel, const char *dir,
		    uint64_t *checkpoint, char *path, size_t cap, uint64_t *torn_off)
{
	struct sl_manifest *m;
	int r = sl__manifest_open(os, accel, dir, 1, &m);
	if (r)
		return r;
	struct sl_version *v = sl__manifest_acquire(m);
	*checkpoint = v->checkpoint_seq;
	sl__manifest_release(m, v);
	const char *p = sl__manifest_path(m);
	snprintf(path, cap, "%s", p ? p : "");
	*torn_off = sl__manifest_torn_off(m);
	if (!*torn_off)
		*torn_off = sl__manifest_file_bytes(m); /* edits lost after its clean end */
	sl__manifest_close(m);
	return 0;
}

int sl__store_verify(const struct sl_os *os, struct sl_accel *accel, const char *dir, char *path,
		     size_t cap, uint64_t *off, uint64_t *tables)
{
	*tables = 0;
	int r = sl__manifest_verify(os, accel, dir, path, cap, off);
	if (r)
		return r;
	struct sl_manifest *m;
	if ((r = sl__manifest_open(os, accel, dir, 1, &m)))
		return r;
	struct sl_version *v = sl__manifest_acquire(m);
	struct sl_tables *tc;
	if ((r = sl__tables_open(os, accel, dir, &tc)) == 0) {
		for (int l = 0; l < SL_LEVELS; l++)
			*tables += v->n[l];
		struct sl_tables_damage d;
		r = sl__tables_verify(tc, v, NULL, NULL, &d);
		if (r) {
			snprintf(path, cap, "%s", d.path);
			*off = d.off;
			fprintf(stderr, "sluice: store: %s at offset %" PRIu64 ": %s\n", d.path, d.off,
				d.what);
		}
		sl__tables_close(tc);
	}
	sl__manifest_release(m, v);
	sl__manifest_close(m);
	return r;
}

/* ---- Scans ---------------------------------------------------------------------------------- */

/* A scan merges the memtables' records of one stock (collected at open, newest layer first,
 * one per key) with iterators over every state table of the version at open whose range
 * overlaps the scan's keys (handles taken at open, so flushes and compactions change nothing it
 * returns). Sources are in priority order: the memtable part, level 0 newest first, then deeper
 * levels; the newest source holding a key answers for it. */
struct scan_src {
	struct sl_sst *h;
	struct sl_sst_iter *it;
	int have, done;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint32_t flags;
};

struct mem_rec {
	uint8_t key[SL_KEY_MAX_LEN];
	uint32_t layer;
	union {
		struct sl_order o;
		struct sl_trade t;
	} u;
};

struct sl_store_scan {
	struct sl_store *s;
	int kind;
	uint16_t locate;
	uint64_t from, to;
	uint8_t lo[SL_KEY_MAX_LEN], hi[SL_KEY_MAX_LEN];
	size_t klen;
	struct mem_rec *mem;
	size_t nmem, mem_cap, mpos;
	uint32_t layer; /* while collecting */
	int err;        /* while collecting */
	struct scan_src *src;
	size_t nsrc;
	uint8_t cur[SL_SST_MAX_KEY]; /* the key scan_step settled */
	size_t cur_len;
	/* The memtables at open, newest first: pinned by scans_open until close. */
	struct sl_memtable *mts[MAX_IMM + 1];
	size_t nmts;
	int pinned;
};

/* Does a memtable of the scan hold key (any stock)? Then a table's entry of it is older. */
static int in_memtables(const struct sl_store_scan *c, const uint8_t *key, size_t klen)
{
	uint64_t a;
	uint16_t loc;
	int kind = sl__key_parse(key, klen, &a, &loc);
	for (size_t i = 0; i < c->nmts; i++) {
		int r;
		if (kind == SL_KEY_ORDER) {
			struct sl_order o;
			r = sl__memtable_get_order(c->mts[i], loc, a, &o);
		} else if (kind == SL_KEY_TRADE) {
			struct sl_trade t;
			r = sl__memtable_get_trade(c->mts[i], a, &t);
		} else {
			r = SL_ENOTFOUND;
		}
		if (r != SL_ENOTFOUND)
			return 1;
	}
	return 0;
}

static int in_time(const struct sl_store_scan *c, uint64_t ts)
{
	return ts >= c->from && (!c->to || ts <= c->to);
}

static struct mem_rec *mem_push(struct sl_store_scan *c)
{
	if (c->nmem == c->mem_cap) {
		size_t cap = c->mem_cap ? c->mem_cap * 2 : 256;
		struct mem_rec *m = realloc(c->mem, cap * sizeof(*m));
		if (!m) {
			c->err = -ENOMEM;
			return NULL;
		}
		c->mem = m;
		c->mem_cap = cap;
	}
	struct mem_rec *m = &c->mem[c->nmem++];
	memset(m->key, 0, sizeof(m->key));
	return m;
}

static int scan_collect_order(void *arg, const struct sl_order *o)
{
	struct sl_store_scan *c = arg;
	/* Every version, in range or not: the newest one decides, then the range (a reused
	 * reference number can move an order out of it). */
	struct mem_rec *m = mem_push(c);
	if (!m)
		return c->err;
	sl__key_order(m->key, o->locate, o->ref);
	m->layer = c->layer;
	m->u.o = *o;
	return 0;
}

static int scan_collect_trade(void *arg, const struct sl_trade *t)
{
	struct sl_store_scan *c = arg;
	struct mem_rec *m = mem_push(c);
	if (!m)
		return c->err;
	sl__key_trade(m->key, t->match);
	m->layer = c->layer;
	m->u.t = *t;
	return 0;
}

static int mem_cmp(const void *a, const void *b)
{
	const struct mem_rec *x = a, *y = b;
	int k = memcmp(x->key, y->key, SL_KEY_MAX_LEN);
	if (k)
		return k;
	return x->layer < y->layer ? -1 : x->layer > y->layer;
}

static int collect_layer(struct sl_store_scan *c, struct sl_memtable *m)
{
	if (c->kind == SL_SCAN_ORDERS)
		return sl__memtable_scan_orders(m, c->locate, scan_collect_order, c);
	return sl__memtable_scan_trades(m, c->locate, scan_collect_trade, c);
}

static int scan_add_table(struct sl_store_scan *c, const struct sl_table_info *t)
{
	if (memcmp(t->largest, c->lo, t->largest_len < c->klen ? t->largest_len : c->klen) < 0 ||
	    memcmp(t->smallest, c->hi, t->smallest_len < c->klen ? t->smallest_len : c->klen) > 0)
		return 0;
	struct scan_src *src = &c->src[c->nsrc];
	memset(src, 0, sizeof(*src));
	int r = sl__tables_get(c->s->tc, t->file_no, &src->h);
	if (r)
		return r;
	if ((r = sl__sst_iter_new(src->h, &src->it))) {
		sl__tables_put(c->s->tc, src->h);
		return r;
	}
	c->nsrc++;
	r = sl__sst_iter_seek(src->it, c->lo, c->klen);
	if (r)
		src->done = 1; /* reported at the first next */
	return r == SL_ECORRUPT ? 0 : r;
}

int sl__store_scan_open(struct sl_store *s, int kind, uint16_t locate, uint64_t from,
			uint64_t to, struct sl_store_scan **out)
{
	*out = NULL;
	if (kind != SL_SCAN_ORDERS && kind != SL_SCAN_TRADES)
		return -EINVAL;
	struct sl_store_scan *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->s = s;
	c->kind = kind;
	c->locate = locate;
	c->from = from;
	c->to = to;
	if (kind == SL_SCAN_ORDERS) {
		c->klen = sl__key_order(c->lo, locate, 0);
		sl__key_order(c->hi, locate, UINT64_MAX);
	} else {
		c->klen = sl__key_trade(c->lo, 0);
		sl__key_trade(c->hi, UINT64_MAX);
	}
	int r = 0;
	pthread_rwlock_rdlock(&s->lock);
	__atomic_add_fetch(&s->scans_open, 1, __ATOMIC_ACQ_REL);
	c->pinned = 1;
	c->mts[c->nmts++] = s->mt;
	for (size_t i = s->nimm; i-- > 0;)
		c->mts[c->nmts++] = s->imm[i].mt;
	for (size_t i = 0; !r && i < c->nmts; i++) {
		c->layer = (uint32_t)i;
		r = collect_layer(c, c->mts[i]);
	}
	if (!r && s->ver) {
		size_t total = 0;
		for (int l = 0; l < SL_EVENT_LEVEL; l++)
			total += s->ver->n[l];
		c->src = calloc(total ? total : 1, sizeof(*c->src));
		if (!c->src)
			r = -ENOMEM;
		for (int l = 0; !r && l < SL_EVENT_LEVEL; l++)
			for (size_t i = 0; !r && i < s->ver->n[l]; i++)
				r = scan_add_table(c, &s->ver->tables[l][i]);
	}
	pthread_rwlock_unlock(&s->lock);
	if (r) {
		sl__store_scan_close(c);
		return r;
	}
	/* One record per key, the newest layer's. */
	if (c->nmem)
		qsort(c->mem, c->nmem, sizeof(*c->mem), mem_cmp);
	size_t w = 0;
	for (size_t i = 0; i < c->nmem; i++) {
		if (w && !memcmp(c->mem[w - 1].key, c->mem[i].key, SL_KEY_MAX_LEN))
			continue;
		/* A trade whose match number moved to another stock in a newer memtable is that
		 * stock's now: this chain's copy is stale. */
		struct mem_rec *m = &c->mem[i];
		int moved = 0;
		for (uint32_t l = 0; c->kind == SL_SCAN_TRADES && l < m->layer && !moved; l++) {
			struct sl_trade t;
			moved = sl__memtable_get_trade(c->mts[l], m->u.t.match, &t) == 0 &&
				t.locate != c->locate;
		}
		c->mem[w++] = *m;
		if (moved)
			c->mem[w - 1].layer = UINT32_MAX; /* shadows the key, never returned */
	}
	c->nmem = w;
	*out = c;
	return 0;
}

/* Load the current entry of a table source; 0, or SL_ECORRUPT (the source is then done). */
static int src_fill(struct sl_store_scan *c, struct scan_src *src)
{
	if (src->have || src->done)
		return 0;
	int r = sl__sst_iter_next(src->it, &src->key, &src->klen, &src->val, &src->vlen,
				  &src->flags);
	if (r == 0 && memcmp(src->key, c->hi, src->klen < c->klen ? src->klen : c->klen) > 0)
		r = SL_EEND;
	if (r == 0) {
		src->have = 1;
		return 0;
	}
	src->done = 1;
	if (r == SL_EEND)
		return 0;
	fprintf(stderr, "sluice: store: scan: %s: %s (the scan skips the rest of this table)\n",
		sl__sst_path(src->h), sl_strerror(r));
	return r;
}

static int key_cmp_n(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = memcmp(a, b, n);
	return c ? c : (alen > blen) - (alen < blen);
}

/* The next record in key order, newest version, deletions skipped: 0 with *from_mem set to
 * the memtable record or *val and *vlen to a table value; SL_EEND; SL_ECORRUPT. */
static int scan_step(struct sl_store_scan *c, const struct mem_rec **from_mem, const uint8_t **val,
		     size_t *vlen)
{
	for (;;) {
		for (size_t i = 0; i < c->nsrc; i++) {
			int r = src_fill(c, &c->src[i]);
			if (r)
				return r;
		}
		const uint8_t *min = NULL;
		size_t min_len = 0;
		if (c->mpos < c->nmem) {
			min = c->mem[c->mpos].key;
			min_len = c->klen;
		}
		for (size_t i = 0; i < c->nsrc; i++) {
			struct scan_src *src = &c->src[i];
			if (src->have && (!min || key_cmp_n(src->key, src->klen, min, min_len) < 0)) {
				min = src->key;
				min_len = src->klen;
			}
		}
		if (!min)
			return SL_EEND;
		/* The newest source with this key answers; every source moves past it. */
		uint8_t *key = c->cur;
		memcpy(key, min, min_len);
		c->cur_len = min_len;
		*from_mem = NULL;
		*val = NULL;
		int found = 0, deleted = 0;
		if (c->mpos < c->nmem && !key_cmp_n(c->mem[c->mpos].key, c->klen, key, min_len)) {
			*from_mem = &c->mem[c->mpos++];
			found = 1;
			if ((*from_mem)->layer == UINT32_MAX)
				deleted = 1;
		} else if (in_memtables(c, key, min_len)) {
			/* Newer in a memtable, under another stock or out of this scan's view: the
			 * tables' copies are stale. */
			found = 1;
			deleted = 1;
		}
		for (size_t i = 0; i < c->nsrc; i++) {
			struct scan_src *src = &c->src[i];
			if (!src->have || key_cmp_n(src->key, src->klen, key, min_len))
				continue;
			if (!found) {
				found = 1;
				deleted = (src->flags & SL_SST_TOMBSTONE) && src->vlen == 0;
				*val = src->val;
				*vlen = src->vlen;
			}
			src->have = 0;
		}
		if (!deleted)
			return 0;
	}
}

int sl__store_scan_next(struct sl_store_scan *c, void *out)
{
	for (;;) {
		const struct mem_rec *m;
		const uint8_t *val;
		size_t vlen = 0;
		int r = scan_step(c, &m, &val, &vlen);
		if (r)
			return r;
		if (c->kind == SL_SCAN_ORDERS) {
			struct sl_order *o = out;
			if (m) {
				*o = m->u.o;
			} else {
				uint64_t ref;
				uint16_t loc;
				if (sl__key_parse(c->cur, c->cur_len, &ref, &loc) != SL_KEY_ORDER)
					return SL_ECORRUPT;
				if ((r = sl__val_order_decode(val, vlen, loc, ref, o)))
					return r;
			}
			if (in_time(c, o->added_ts))
				return 0;
		} else {
			struct sl_trade *t = out;
			uint64_t match;
			if (m)
				*t = m->u.t;
			else if (sl__key_parse(c->cur, c->cur_len, &match, NULL) != SL_KEY_TRADE)
				return SL_ECORRUPT;
			else if ((r = sl__val_trade_decode(val, vlen, match, t)))
				return r;
			if (t->locate == c->locate && in_time(c, t->ts))
				return 0;
		}
	}
}

int sl__store_scan_kind(const struct sl_store_scan *c)
{
	return c->kind;
}

void sl__store_scan_close(struct sl_store_scan *c)
{
	if (!c)
		return;
	if (c->pinned) {
		struct sl_store *s = c->s;
		struct sl_memtable **free_now = NULL;
		size_t n = 0;
		pthread_mutex_lock(&s->fmu);
		if (__atomic_sub_fetch(&s->scans_open, 1, __ATOMIC_ACQ_REL) == 0) {
			free_now = s->deferred;
			n = s->ndeferred;
			s->deferred = NULL;
			s->ndeferred = s->deferred_cap = 0;
		}
		pthread_mutex_unlock(&s->fmu);
		for (size_t i = 0; i < n; i++)
			sl__memtable_free(free_now[i]);
		free(free_now);
	}
	for (size_t i = 0; i < c->nsrc; i++) {
		sl__sst_iter_free(c->src[i].it);
		sl__tables_put(c->s->tc, c->src[i].h);
	}
	free(c->src);
	free(c->mem);
	free(c);
}
