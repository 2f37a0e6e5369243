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

#include "bloom.h"
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
		if (r) {
			add_stat(&s->st.flush_errors, 1);
			fprintf(stderr, "sluice: store: flushing sequences %" PRIu64 "..%" PRIu64
				" failed: %s; retrying in 1 s (the log keeps them)\n",
				im.first_seq, im.last_seq, sl_strerror(r));
			struct timespec ts = { 1, 0 };
			nanosleep(&ts, NULL);
			continue;
		}
		struct sl_version *nv = sl__manifest_acquire(s->man), *old;
		pthread_rwlock_wrlock(&s->lock);
		old = s->ver;
		s->ver = nv;
		memmove(&s->imm[0], &s->imm[1], (s->nimm - 1) * sizeof(s->imm[0]));
		__atomic_store_n(&s->nimm, s->nimm - 1, __ATOMIC_RELEASE);
		pthread_rwlock_unlock(&s->lock);
		sl__manifest_release(s->man, old);
		/* No reader can reach the flushed memtable any more (they take the lock). */
		sl__memtable_free(im.mt);
		add_stat(&s->st.flushes, 1);
		/* The log no longer needs what the tables hold. */
		r = s->log->ops->truncate_before(s->log->impl, im.last_seq + 1);
		if (r)
			fprintf(stderr, "sluice: store: dropping log segments before %" PRIu64
				": %s\n", im.last_seq + 1, sl_strerror(r));
		pthread_mutex_lock(&s->fmu);
		pthread_cond_broadcast(&s->fcv); /* a rotation may be waiting for room */
		pthread_mutex_unlock(&s->fmu);
	}
	return NULL;
}

/* ---- Rotation (applier) --------------------------------------------------------------------- */

int sl__store_after_apply(struct sl_store *s, uint64_t last_seq)
{
	if (!s->cfg.memtable_bytes || s->cfg.rdonly)
		return 0;
	struct sl_memtable_stats ms;
	sl__memtable_get_stats(s->mt, &ms);
	if (ms.bytes < s->cfg.memtable_bytes)
		return 0;
	/* Room for one more immutable: wait (counted) while the flush thread catches up. */
	pthread_mutex_lock(&s->fmu);
	if (__atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE) == MAX_IMM) {
		add_stat(&s->st.rotate_waits, 1);
		__atomic_store_n(&s->stalled, 1, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&s->nimm, __ATOMIC_ACQUIRE) == MAX_IMM && !s->stop)
		pthread_cond_wait(&s->fcv, &s->fmu);
	__atomic_store_n(&s->stalled, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->fmu);
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
	return __atomic_load_n(&s->stalled, __ATOMIC_ACQUIRE);
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

static int reload_stocks(struct sl_store *s)
{
	if (!s->ver->checkpoint_seq)
		return 0;
	for (uint32_t l = 0; l < 65536; l++) {
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = sl__key_stock(k, (uint16_t)l);
		struct sl_stock st;
		struct stock_q q = { (uint16_t)l, &st };
		int r = table_get(s, s->ver, k, kl, decode_stock, &q);
		if (r == SL_ENOTFOUND)
			continue;
		if (r == 0)
			r = sl__memtable_put_stock(s->mt, &st);
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
	if ((r = sl__memtable_new(cfg->os, cfg->expected_orders, &s->mt)))
		goto out_close;
	sl__memtable_set_resolver(s->mt, &s->resolver);
	/* The stock directory lives in every memtable (messages after it update trading states
	 * in place): bring the tables' copy back, as a rotation would have carried it. */
	if ((r = reload_stocks(s)) < 0)
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
	return 0;
}

void sl__store_close(struct sl_store *s)
{
	if (!s)
		return;
	if (s->flusher_running) {
		pthread_mutex_lock(&s->fmu);
		s->stop = 1;
		pthread_cond_broadcast(&s->fcv);
		pthread_mutex_unlock(&s->fmu);
		pthread_join(s->flusher, NULL);
	}
	for (size_t i = 0; i < s->nimm; i++)
		sl__memtable_free(s->imm[i].mt);
	sl__memtable_free(s->mt);
	if (s->man)
		sl__manifest_release(s->man, s->ver);
	sl__tables_close(s->tc);
	sl__manifest_close(s->man);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->fmu);
	pthread_cond_destroy(&s->fcv);
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
	pthread_rwlock_rdlock(&s->lock);
	out->immutables = s->nimm;
	if (s->ver) {
		out->checkpoint_seq = s->ver->checkpoint_seq;
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
