/* bench_store.c - the storage engine end to end on one pregenerated synthetic ITCH 5.0 session:
 * durable ingest, random order lookups (one at a time and batched), a full compaction and a
 * cold reopen, Sluice against RocksDB (C API, WAL on, sync=true per WriteBatch, bloom filter 10
 * bits/key, the same memtable size) given the same events and the same state records. A
 * benchmark, never a test: it reports figures, checks that both systems answer what the feed
 * implies, and removes its files.
 *
 * The peer stores what Sluice stores: every event ('E' seq -> the event value Sluice's event
 * tables hold) and the latest state of every order, trade and stock ('O' locate ref, 'T' match,
 * 'S' locate -> Sluice's value encodings, keys.h). RocksDB does not derive ITCH state, so a
 * model pass (memtable.c, the code Sluice's applier runs) computes, before any clock starts,
 * the state records each message leaves; RocksDB's timed ingest only packs them into
 * WriteBatches and writes them. RocksDB is not charged for deriving state: that favours it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "feed.h"
#include "itch.h"
#include "keys.h"
#include "log.h"
#include "memtable.h"
#include "os.h"
#include "sluice.h"

/* Largest state records one message leaves (a replace: two orders), encoded as the model
 * stores them: klen u8, key, vlen u8, value per record. */
#define MAX_PUT_BYTES (2 * (2 + SL_KEY_MAX_LEN + SL_VAL_ORDER_LEN))
#define SETTLE_MAX_S  600

struct config {
	uint64_t messages;
	uint64_t memtable_bytes; /* both systems */
	uint64_t lookups;
	size_t batch;	 /* messages per append call / synced WriteBatch */
	size_t mget;	 /* keys per batched lookup */
	uint64_t verify; /* keys checked against the model */
	int absent_pct;	 /* share of lookups for keys that never existed */
	int rocks_compression;
	int sluice_compaction; /* background compaction in Sluice (sl_options.compaction) */
	const char *rocks_compression_name;
	const char *dir;
	uint64_t seed;
	int json;
	int only; /* 0 both, 1 Sluice only, 2 RocksDB only */
};

/* Everything generated before any clock starts. */
struct dataset {
	uint64_t n;
	uint64_t raw_bytes; /* ITCH bytes of all messages: the denominator of write amplification */
	uint8_t *bytes;
	struct sl_msg *msgs;
};

struct order_key {
	uint64_t ref;
	uint16_t locate;
};

/* What the feed implies, from applying it to a private memtable with Sluice's apply code. */
struct model {
	struct order_key *orders; /* every order the feed created (A, F, and U's new order) */
	size_t norders;
	struct order_key *open; /* of which those still open at the end of the session */
	size_t nopen;
	uint64_t max_ref;
	struct sl_memtable_stats st; /* at the end of the session */
	/* The state records each message leaves, as RocksDB is given them: message i's records
	 * are puts[put_off[i] .. put_off[i + 1]). NULL when RocksDB does not run. */
	uint8_t *puts;
	uint64_t *put_off;
	uint64_t nputs;
	/* Keys checked in both systems, and the model's answer at the end of the session. */
	size_t nverify;
	struct order_key *verify;
	struct sl_order *want;
	size_t want_open;
};

enum { LK_CREATED, LK_OPEN, LK_SETS };

/* One set of lookups: keys in the order they are asked, as (locate, ref) and as table keys. */
struct lookups {
	const char *name;
	size_t n, present;
	uint16_t *locates;
	uint64_t *refs;
	uint8_t *keys; /* SL_KEY_ORDER_LEN each */
};

/* Process CPU time (all threads) and the block device's counters at one instant. The device
 * counters (/proc/diskstats) are for the whole device, other processes included; /proc/self/io
 * is not used because it counts whole page-cache folios as written when a few bytes of one are
 * dirtied (with large folios, a small synced log append counts up to megabytes). */
struct snap {
	uint64_t t_ns;
	double cpu_s;
	uint64_t dev_written, dev_read; /* bytes */
};

struct result {
	char system[16];
	int ran, verified;
	int events_ok, keys_ok;	     /* every event read back; verified keys as the model says */
	uint64_t bg_compactions;     /* compactions that ran before the lookups */
	uint64_t dropped_background; /* verified keys (final orders) those dropped */
	uint64_t compactions_during_lookups;
	uint64_t lookup_mismatches; /* keys sl_db_get_order and sl_db_get_orders answer apart */
	char detail[1536];	    /* engine-specific notes for the report */
	double ingest_s, ingest_rate, ingest_cpu_s;
	double flush_s, settle_s;
	double in_tables_rate; /* messages / (ingest + flush): until everything is in tables */
	struct lookup_res {
		double get_s, get_rate, mget_s, mget_rate;
		uint64_t get_found, mget_found;
	} lr[LK_SETS];
	double compact_s, compact_cpu_s;
	double close_s, open_s, first_get_s, recovery_s;
	uint64_t recovery_read_bytes;
	uint64_t store_bytes_ingested;		    /* du after ingest, flush and settling */
	uint64_t store_bytes;			    /* du after the full compaction and close */
	uint64_t table_bytes_ingested, table_bytes; /* live tables, as the engine counts them */
	uint64_t wal_written, flush_written, compact_written, logical_written;
	uint64_t full_compact_written; /* by the full compaction, engine counters */
	uint64_t phys_written;	       /* the device's, from open to the end of the compaction */
	uint64_t phys_ingest, phys_flush, phys_compact; /* of which: the phases */
	double wa_logical, wa_phys;
	uint64_t verify_dropped; /* verified keys a compaction dropped (final orders) */
};

#define BENCH_NAME "bench_store"
#include "bench_common.h"
static uint64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t from, uint64_t to)
{
	return (double)(to - from) / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* splitmix64: the sampling is a function of --seed alone. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static char g_disk[64]; /* the block device under --dir as /proc/diskstats names it, or "" */

static void disk_counters(struct snap *s)
{
	char line[512], name[64];
	unsigned long long rd, wr;
	s->dev_written = s->dev_read = 0;
	FILE *f = g_disk[0] ? fopen("/proc/diskstats", "r") : NULL;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %63s %*u %*u %llu %*u %*u %*u %llu", name, &rd, &wr) ==
			    3 &&
		    !strcmp(name, g_disk)) {
			s->dev_read = rd * 512u;
			s->dev_written = wr * 512u;
			break;
		}
	fclose(f);
}

static double cpu_now(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Before a phase: write everything dirty back (so that the phase's device counters hold only
 * its own writes), read the counters, then start the clock. */
static void snap_begin(struct snap *s)
{
	sync();
	disk_counters(s);
	s->cpu_s = cpu_now();
	s->t_ns = mono_ns();
}

/* After a phase: stop the clock, then write back what the phase left dirty (data the engine
 * did not sync itself, file system journal) before reading the counters. */
static void snap_end(struct snap *s)
{
	s->t_ns = mono_ns();
	s->cpu_s = cpu_now();
	sync();
	disk_counters(s);
}

/* Inside a sequence of phases: the clock, CPU and counters now, without a sync (which would
 * let background work run between one timed phase and the next). */
static void snap_mark(struct snap *s)
{
	s->t_ns = mono_ns();
	s->cpu_s = cpu_now();
	disk_counters(s);
}

static uint64_t snap_written(const struct snap *a, const struct snap *b)
{
	return b->dev_written - a->dev_written;
}

/* ---- Files ---------------------------------------------------------------------------------- */

static uint64_t g_du;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		g_du += (uint64_t)st->st_blocks * 512u;
	return 0;
}

/* Allocated bytes of every file under dir, as du counts them (preallocated log space too). */
static uint64_t du(const char *dir)
{
	g_du = 0;
	nftw(dir, du_one, 16, FTW_PHYS);
	return g_du;
}

static int evict_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag != FTW_F)
		return 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	/* Only clean pages can be dropped: write back first. */
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return 0;
}

/* Drop the store's files from the page cache so that the reopen reads from the device, as
 * after a reboot, without touching the rest of the machine's cache. */
static void evict(const char *dir)
{
	nftw(dir, evict_one, 16, FTW_PHYS);
}

/* ---- Data ----------------------------------------------------------------------------------- */

/* The messages back to back in one buffer (64 bytes each at most), with sl_msg views. */
static void gen_messages(const struct config *c, struct dataset *ds)
{
	ds->n = c->messages;
	ds->raw_bytes = gen_message_views(c->seed, c->messages, &ds->bytes, &ds->msgs);
}

/* ---- The model ------------------------------------------------------------------------------ */

/* Append one state record to the put stream. */
static uint8_t *put_rec(uint8_t *p, const uint8_t *key, size_t klen, const uint8_t *val,
			size_t vlen)
{
	*p++ = (uint8_t)klen;
	memcpy(p, key, klen);
	p += klen;
	*p++ = (uint8_t)vlen;
	memcpy(p, val, vlen);
	return p + vlen;
}

static uint8_t *put_order(struct sl_memtable *mt, uint8_t *p, uint16_t locate, uint64_t ref,
			  uint64_t *nputs)
{
	struct sl_order o;
	uint8_t k[SL_KEY_MAX_LEN], v[SL_VAL_ORDER_LEN];
	if (sl__memtable_get_order(mt, locate, ref, &o))
		return p; /* a message for an order never seen changes nothing */
	(*nputs)++;
	return put_rec(p, k, sl__key_order(k, locate, ref), v, sl__val_order_encode(v, &o));
}

static uint8_t *put_trade(struct sl_memtable *mt, uint8_t *p, uint64_t match, uint64_t *nputs)
{
	struct sl_trade t;
	uint8_t k[SL_KEY_MAX_LEN], v[SL_VAL_TRADE_LEN];
	if (sl__memtable_get_trade(mt, match, &t))
		return p;
	(*nputs)++;
	return put_rec(p, k, sl__key_trade(k, match), v, sl__val_trade_encode(v, &t));
}

static uint8_t *put_stock(struct sl_memtable *mt, uint8_t *p, uint16_t locate, uint64_t *nputs)
{
	struct sl_stock s;
	uint8_t k[SL_KEY_MAX_LEN], v[SL_VAL_STOCK_LEN];
	if (sl__memtable_get_stock(mt, locate, &s))
		return p;
	(*nputs)++;
	return put_rec(p, k, sl__key_stock(k, locate), v, sl__val_stock_encode(v, &s));
}

/* The records message m (already applied) leaves: every order, trade and stock it changed,
 * as they are after it. */
static uint8_t *message_puts(struct sl_memtable *mt, const struct sl_itch_msg *m, uint8_t *p,
			     uint64_t *nputs)
{
	switch (m->type) {
	case SL_ITCH_ADD_ORDER:
	case SL_ITCH_ADD_ORDER_MPID:
		return put_order(mt, p, m->locate, m->u.add_order.ref, nputs);
	case SL_ITCH_ORDER_EXECUTED:
	case SL_ITCH_ORDER_EXECUTED_PRICE:
		p = put_order(mt, p, m->locate, m->u.executed.ref, nputs);
		return put_trade(mt, p, m->u.executed.match, nputs);
	case SL_ITCH_ORDER_CANCEL:
		return put_order(mt, p, m->locate, m->u.cancel.ref, nputs);
	case SL_ITCH_ORDER_DELETE:
		return put_order(mt, p, m->locate, m->u.del.ref, nputs);
	case SL_ITCH_ORDER_REPLACE:
		p = put_order(mt, p, m->locate, m->u.replace.orig_ref, nputs);
		return put_order(mt, p, m->locate, m->u.replace.new_ref, nputs);
	case SL_ITCH_TRADE:
		return put_trade(mt, p, m->u.trade.match, nputs);
	case SL_ITCH_CROSS_TRADE:
		return put_trade(mt, p, m->u.cross_trade.match, nputs);
	case SL_ITCH_BROKEN_TRADE:
		return put_trade(mt, p, m->u.broken_trade.match, nputs);
	case SL_ITCH_STOCK_DIRECTORY:
	case SL_ITCH_TRADING_ACTION:
		return put_stock(mt, p, m->locate, nputs);
	default:
		return p;
	}
}

static void note_order(struct model *md, size_t *cap, uint16_t locate, uint64_t ref)
{
	if (md->norders == *cap) {
		*cap = *cap ? 2 * *cap : 1 << 20;
		md->orders = realloc(md->orders, *cap * sizeof(*md->orders));
		if (!md->orders)
			die("realloc", strerror(ENOMEM));
	}
	md->orders[md->norders++] = (struct order_key){ .ref = ref, .locate = locate };
	if (ref > md->max_ref)
		md->max_ref = ref;
}

/* Apply the whole session to one private memtable (never rotated, so no resolver is needed)
 * with the sequences Sluice will give (1, 2, ...), note every order created, and, when RocksDB
 * runs, the state records of every message. Then sample the keys to verify and keep the
 * model's final answer for each. */
static void build_model(const struct config *c, const struct dataset *ds, struct model *md)
{
	uint64_t creates = 0;
	for (uint64_t i = 0; i < ds->n; i++) {
		uint8_t t = *(const uint8_t *)ds->msgs[i].data;
		creates += t == SL_ITCH_ADD_ORDER || t == SL_ITCH_ADD_ORDER_MPID ||
			   t == SL_ITCH_ORDER_REPLACE;
	}
	struct sl_memtable *mt;
	int r = sl__memtable_new(sl__os_default(), creates + 1024, &mt);
	if (r < 0)
		die("model memtable", sl_strerror(r));
	uint8_t *p = NULL;
	if (c->only != 1) {
		/* Reserved at the worst case; pages never written are never committed. */
		md->puts = malloc((size_t)ds->n * MAX_PUT_BYTES);
		md->put_off = xcalloc((size_t)ds->n + 1, sizeof(uint64_t));
		if (!md->puts)
			die("malloc", strerror(ENOMEM));
		p = md->puts;
	}
	size_t cap = 0;
	for (uint64_t i = 0; i < ds->n; i++) {
		struct sl_itch_msg m;
		r = sl__itch_decode(ds->msgs[i].data, ds->msgs[i].len, &m);
		if (r < 0)
			die("model: a generated message does not decode", sl_strerror(r));
		r = sl__memtable_apply(mt, &m, i + 1);
		if (r < 0)
			die("model apply", sl_strerror(r));
		if (m.type == SL_ITCH_ADD_ORDER || m.type == SL_ITCH_ADD_ORDER_MPID)
			note_order(md, &cap, m.locate, m.u.add_order.ref);
		else if (m.type == SL_ITCH_ORDER_REPLACE)
			note_order(md, &cap, m.locate, m.u.replace.new_ref);
		if (p) {
			p = message_puts(mt, &m, p, &md->nputs);
			md->put_off[i + 1] = (uint64_t)(p - md->puts);
		}
	}
	sl__memtable_get_stats(mt, &md->st);
	if (!md->norders)
		die("model", "the session created no orders");

	md->open = xcalloc(md->norders, sizeof(*md->open));
	for (size_t i = 0; i < md->norders; i++) {
		struct sl_order o;
		if (sl__memtable_get_order(mt, md->orders[i].locate, md->orders[i].ref, &o) == 0 &&
		    o.status == SL_ORDER_OPEN)
			md->open[md->nopen++] = md->orders[i];
	}

	/* Half the verified keys from every order created, half from the open ones (the only
	 * ones a compaction must keep). */
	uint64_t s = c->seed ^ 0x76657269667900ull;
	md->nverify = (size_t)(c->verify < md->norders ? c->verify : md->norders);
	md->verify = xcalloc(md->nverify, sizeof(*md->verify));
	md->want = xcalloc(md->nverify, sizeof(*md->want));
	for (size_t i = 0; i < md->nverify; i++) {
		if ((i & 1) && md->nopen)
			md->verify[i] = md->open[rnd_next(&s) % md->nopen];
		else
			md->verify[i] = md->orders[rnd_next(&s) % md->norders];
		r = sl__memtable_get_order(mt, md->verify[i].locate, md->verify[i].ref,
					   &md->want[i]);
		if (r < 0)
			die("model: an order it created is missing", sl_strerror(r));
		md->want_open += md->want[i].status == SL_ORDER_OPEN;
	}
	sl__memtable_free(mt);
}

static void model_release(struct model *md)
{
	free(md->orders);
	free(md->open);
	free(md->puts);
	free(md->put_off);
	free(md->verify);
	free(md->want);
}

/* Keys drawn uniformly from a pool of orders (every order the session created, or those open
 * at its end), and absent_pct% keys that never existed (a real stock locate, a reference number
 * above every one used). */
static void plan_lookups(const struct config *c, const struct model *md, int set,
			 struct lookups *lk)
{
	uint64_t s = c->seed ^ 0x6c6f6f6b757073ull ^ (uint64_t)set << 56;
	const struct order_key *pool = set == LK_OPEN ? md->open : md->orders;
	size_t npool = set == LK_OPEN ? md->nopen : md->norders;
	if (!npool)
		die("lookups", "no order to look up");
	lk->name = set == LK_OPEN ? "open orders" : "created orders";
	lk->n = (size_t)c->lookups;
	lk->locates = xcalloc(lk->n, sizeof(*lk->locates));
	lk->refs = xcalloc(lk->n, sizeof(*lk->refs));
	lk->keys = xcalloc(lk->n, SL_KEY_ORDER_LEN);
	for (size_t i = 0; i < lk->n; i++) {
		const struct order_key *o = &pool[rnd_next(&s) % npool];
		lk->locates[i] = o->locate;
		if (rnd_next(&s) % 100 < (uint64_t)c->absent_pct) {
			lk->refs[i] = md->max_ref + 1 + rnd_next(&s) % (1ull << 40);
		} else {
			lk->refs[i] = o->ref;
			lk->present++;
		}
		sl__key_order(lk->keys + i * SL_KEY_ORDER_LEN, lk->locates[i], lk->refs[i]);
	}
}

static void lookups_release(struct lookups *lk)
{
	free(lk->locates);
	free(lk->refs);
	free(lk->keys);
}

static int order_equal(const struct sl_order *a, const struct sl_order *b)
{
	return a->locate == b->locate && a->side == b->side && a->status == b->status &&
	       a->ref == b->ref && !strcmp(a->stock, b->stock) && !strcmp(a->mpid, b->mpid) &&
	       a->price == b->price && a->shares == b->shares && a->orig_shares == b->orig_shares &&
	       a->executed_shares == b->executed_shares &&
	       a->cancelled_shares == b->cancelled_shares && a->replaced_by == b->replaced_by &&
	       a->replaces == b->replaces && a->added_ts == b->added_ts &&
	       a->updated_ts == b->updated_ts && a->added_seq == b->added_seq &&
	       a->updated_seq == b->updated_seq;
}

/* One system's answer for a verified key against the model's. Before a full compaction every
 * order must be there as the model has it; after one (compacted != 0) an order in a final
 * state may be gone, by design. Returns 1 when acceptable; counts the dropped ones. */
static int check_answer(const char *sys, const struct sl_order *want, int rc,
			const struct sl_order *got, int compacted, uint64_t *dropped)
{
	if (rc == 0 && order_equal(want, got))
		return 1;
	if (rc == SL_ENOTFOUND && compacted && want->status != SL_ORDER_OPEN) {
		(*dropped)++;
		return 1;
	}
	fprintf(stderr, "bench_store: %s: order %u/%" PRIu64 " (%s in the model): %s\n", sys,
		want->locate, want->ref, sl_order_status_name(want->status),
		rc ? sl_strerror(rc) : "differs");
	return 0;
}

/* ---- Sluice --------------------------------------------------------------------------------- */

/* A new store preallocates its next log segment in the background right after open (zeros and
 * an fdatasync). An appliance opens its store before the feed starts, so the clock starts once
 * that is done (or after 10 s), as bench_ingest does. */
static void settle_open(struct sl_db *db)
{
	struct sl_stats st;
	for (int i = 0; i < 10000; i++) {
		sl_db_stats(db, &st);
		if (st.wal_segments >= 2)
			return;
		sleep_ms(1);
	}
	progress("  (the second log segment was not ready after 10 s; starting anyway)\n");
}

/* Background compaction the ingest left behind: wait until none has run or finished for a
 * second (20 polls). The flag alone is not enough: it drops between one job and the next. */
static double sluice_settle(struct sl_db *db)
{
	uint64_t t0 = mono_ns(), done = UINT64_MAX;
	int quiet = 0;
	while (quiet < 20 && secs(t0, mono_ns()) < SETTLE_MAX_S) {
		struct sl_stats st;
		sl_db_stats(db, &st);
		quiet = st.compaction_running || st.compactions != done ? 0 : quiet + 1;
		done = st.compactions;
		if (quiet < 20)
			sleep_ms(50);
	}
	return quiet < 20 ? -1 : secs(t0, mono_ns());
}

/* sl_iter over everything and compare it with the messages given. */
static int sluice_compare_events(struct sl_db *db, const struct dataset *ds)
{
	struct sl_iter *it;
	struct sl_event ev;
	uint64_t seen = 0;
	int r = sl_iter_open(db, 1, &it);
	if (r < 0)
		return r;
	while ((r = sl_iter_next(it, &ev)) == 0) {
		const struct sl_msg *m = seen < ds->n ? &ds->msgs[seen] : NULL;
		if (ev.kind != SL_EVENT_MESSAGE || ev.seq != seen + 1 || !m || ev.len != m->len ||
		    memcmp(ev.data, m->data, m->len)) {
			r = SL_ECORRUPT;
			break;
		}
		seen++;
	}
	sl_iter_close(it);
	if (r == SL_EEND)
		r = seen == ds->n ? 0 : SL_ENOTFOUND;
	return r;
}

static int sluice_verify_keys(struct sl_db *db, const struct model *md, int compacted,
			      uint64_t *dropped)
{
	int ok = 1;
	*dropped = 0;
	for (size_t i = 0; i < md->nverify; i++) {
		struct sl_order o;
		int rc = sl_db_get_order(db, md->verify[i].locate, md->verify[i].ref, &o);
		ok &= check_answer("sluice", &md->want[i], rc, &o, compacted, dropped);
	}
	return ok;
}

static void sluice_levels(const struct sl_stats *st, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
	for (int l = 0; l < 8 && len < cap; l++)
		if (st->level_tables[l])
			len += (size_t)snprintf(out + len, cap - len,
						"%sL%d %" PRIu64 " (%.0f MiB)", len ? ", " : "", l,
						st->level_tables[l],
						(double)st->level_bytes[l] / 1048576.0);
}

static void sluice_open(const struct config *c, const char *dir, struct sl_db **db)
{
	struct sl_options o;
	sl_options_init(&o);
	o.flags = SL_OPEN_CREATE; /* durable: fdatasync per group commit */
	o.data_dir = dir;
	o.memtable_bytes = c->memtable_bytes;
	o.compaction = (uint32_t)c->sluice_compaction;
	int r = sl_db_open(&o, db);
	if (r < 0)
		die(dir, sl_strerror(r));
}

static void sluice_lookups(struct sl_db *db, const struct config *c, const struct lookups *lk,
			   struct lookup_res *res)
{
	struct sl_order o;
	uint64_t t0 = mono_ns();
	for (size_t i = 0; i < lk->n; i++) {
		int r = sl_db_get_order(db, lk->locates[i], lk->refs[i], &o);
		if (r == 0)
			res->get_found++;
		else if (r != SL_ENOTFOUND)
			die("sluice get_order", sl_strerror(r));
	}
	res->get_s = secs(t0, mono_ns());
	res->get_rate = (double)lk->n / res->get_s;

	struct sl_order *out = xcalloc(c->mget, sizeof(*out));
	int *rc = xcalloc(c->mget, sizeof(*rc));
	t0 = mono_ns();
	for (size_t i = 0; i < lk->n; i += c->mget) {
		size_t k = i + c->mget <= lk->n ? c->mget : lk->n - i;
		int r = sl_db_get_orders(db, k, lk->locates + i, lk->refs + i, out, rc);
		if (r < 0)
			die("sluice get_orders", sl_strerror(r));
		for (size_t j = 0; j < k; j++) {
			if (rc[j] == 0)
				res->mget_found++;
			else if (rc[j] != SL_ENOTFOUND)
				die("sluice get_orders", sl_strerror(rc[j]));
		}
	}
	res->mget_s = secs(t0, mono_ns());
	res->mget_rate = (double)lk->n / res->mget_s;
	free(out);
	free(rc);
}

/* Untimed: sl_db_get_orders must answer every key as sl_db_get_order does. Returns the keys
 * whose answers differ (the first few named on stderr). */
static uint64_t sluice_cross_check(struct sl_db *db, const struct config *c,
				   const struct lookups *lk)
{
	struct sl_order *out = xcalloc(c->mget, sizeof(*out)), o;
	int *rc = xcalloc(c->mget, sizeof(*rc));
	uint64_t bad = 0;
	for (size_t i = 0; i < lk->n; i += c->mget) {
		size_t k = i + c->mget <= lk->n ? c->mget : lk->n - i;
		if (sl_db_get_orders(db, k, lk->locates + i, lk->refs + i, out, rc) < 0)
			die("sluice get_orders", "failed");
		for (size_t j = 0; j < k; j++) {
			int r = sl_db_get_order(db, lk->locates[i + j], lk->refs[i + j], &o);
			if (r == rc[j] && (r || order_equal(&o, &out[j])))
				continue;
			if (bad++ < 5)
				fprintf(stderr,
					"bench_store: sluice: order %u/%" PRIu64
					": sl_db_get_order %s, sl_db_get_orders %s\n",
					lk->locates[i + j], lk->refs[i + j],
					r ? sl_strerror(r) : sl_order_status_name(o.status),
					rc[j] ? sl_strerror(rc[j])
					      : sl_order_status_name(out[j].status));
		}
	}
	free(out);
	free(rc);
	return bad;
}

/* A key the model says is open: what the first lookup after a reopen asks for. */
static const struct order_key *open_key(const struct model *md)
{
	for (size_t i = 0; i < md->nverify; i++)
		if (md->want[i].status == SL_ORDER_OPEN)
			return &md->verify[i];
	return &md->verify[0];
}

static void run_sluice(const struct config *c, const struct dataset *ds, const struct model *md,
		       const struct lookups *lk, struct result *res)
{
	char dir[PATH_MAX + 64], lv_ingest[200], lv_compact[200];
	snprintf(dir, sizeof(dir), "%s/sluice", g_root);
	snprintf(res->system, sizeof(res->system), "sluice");
	res->ran = 1;
	struct sl_db *db;
	struct sl_stats st;
	struct snap s_open, s_in0, s_in1, s_fl, s_c0, s_c1, s_r0, s_r1;
	int ok = 1;

	progress("sluice: ingest...\n");
	snap_begin(&s_open);
	sluice_open(c, dir, &db);
	settle_open(db);
	snap_begin(&s_in0);
	uint64_t last = 0;
	for (uint64_t i = 0; i < ds->n; i += c->batch) {
		size_t k = i + c->batch <= ds->n ? c->batch : (size_t)(ds->n - i);
		int r = sl_db_append_messages(db, ds->msgs + i, k, &last);
		if (r < 0)
			die("sluice append", sl_strerror(r));
	}
	int r = sl_db_wait_durable(db, last, -1);
	if (r < 0)
		die("sluice wait_durable", sl_strerror(r));
	snap_mark(&s_in1);
	res->ingest_s = secs(s_in0.t_ns, s_in1.t_ns);
	res->ingest_rate = (double)ds->n / res->ingest_s;
	res->ingest_cpu_s = s_in1.cpu_s - s_in0.cpu_s;
	sl_db_stats(db, &st);
	if (last != ds->n || st.durable_seq != ds->n || st.messages != ds->n ||
	    st.messages_unknown || st.messages_bad_length) {
		fprintf(stderr,
			"bench_store: sluice: durable %" PRIu64 " messages %" PRIu64 " of %" PRIu64
			"\n",
			st.durable_seq, st.messages, ds->n);
		ok = 0;
	}

	progress("sluice: flush, background compaction...\n");
	uint64_t t = mono_ns();
	r = sl_db_flush(db);
	if (r < 0)
		die("sluice flush", sl_strerror(r));
	res->flush_s = secs(t, mono_ns());
	res->settle_s = sluice_settle(db);
	snap_end(&s_fl);
	res->store_bytes_ingested = du(dir);
	sl_db_stats(db, &st);
	sluice_levels(&st, lv_ingest, sizeof(lv_ingest));
	res->table_bytes_ingested = st.table_bytes;
	uint64_t rotations = st.rotations, rotate_waits = st.rotate_waits,
		 apply_waits = st.apply_waits, bp_waits = st.wal_backpressure_waits;

	uint64_t compactions0 = st.compactions;
	for (int i = 0; i < LK_SETS; i++) {
		progress("sluice: %zu lookups of %s...\n", lk[i].n, lk[i].name);
		sluice_lookups(db, c, &lk[i], &res->lr[i]);
	}
	sl_db_stats(db, &st);
	res->compactions_during_lookups = st.compactions - compactions0;
	for (int i = 0; i < LK_SETS; i++)
		res->lookup_mismatches += sluice_cross_check(db, c, &lk[i]);
	uint64_t probes = st.bloom_probes, negs = st.bloom_negatives,
		 fps = st.bloom_false_positives;
	/* Any compaction into the bottom state level drops orders in a final state: once one
	 * has run, such an order may be gone before the full compaction too. */
	res->bg_compactions = st.compactions;
	uint64_t dropped;
	res->keys_ok = sluice_verify_keys(db, md, st.compactions > 0, &dropped);
	res->dropped_background = dropped;
	r = sluice_compare_events(db, ds);
	if (r < 0)
		fprintf(stderr, "bench_store: sluice: reading the events back: %s\n",
			sl_strerror(r));
	res->events_ok = r == 0;

	progress("sluice: full compaction...\n");
	uint64_t compacted0 = st.compacted_bytes;
	snap_begin(&s_c0);
	r = sl_db_compact(db);
	if (r < 0)
		die("sluice compact", sl_strerror(r));
	snap_end(&s_c1);
	res->compact_s = secs(s_c0.t_ns, s_c1.t_ns);
	res->compact_cpu_s = s_c1.cpu_s - s_c0.cpu_s;
	sl_db_stats(db, &st);
	sluice_levels(&st, lv_compact, sizeof(lv_compact));
	res->table_bytes = st.table_bytes;
	res->wal_written = st.wal_bytes;
	res->flush_written = st.flushed_bytes;
	res->compact_written = st.compacted_bytes;
	res->full_compact_written = st.compacted_bytes - compacted0;
	res->phys_written = snap_written(&s_open, &s_c1);
	res->phys_ingest = snap_written(&s_open, &s_in1);
	res->phys_flush = snap_written(&s_in1, &s_fl);
	res->phys_compact = snap_written(&s_c0, &s_c1);
	res->keys_ok &= sluice_verify_keys(db, md, 1, &dropped);
	res->verify_dropped = dropped;

	progress("sluice: close, reopen...\n");
	t = mono_ns();
	r = sl_db_close(db);
	if (r < 0)
		die("sluice close", sl_strerror(r));
	res->close_s = secs(t, mono_ns());
	res->store_bytes = du(dir);
	evict(dir);
	const struct order_key *k = open_key(md);
	struct sl_order o;
	snap_begin(&s_r0);
	sluice_open(c, dir, &db);
	uint64_t t_opened = mono_ns();
	r = sl_db_get_order(db, k->locate, k->ref, &o);
	snap_end(&s_r1);
	if (r < 0)
		die("sluice get after reopen", sl_strerror(r));
	res->open_s = secs(s_r0.t_ns, t_opened);
	res->first_get_s = secs(t_opened, s_r1.t_ns);
	res->recovery_s = secs(s_r0.t_ns, s_r1.t_ns);
	res->recovery_read_bytes = s_r1.dev_read - s_r0.dev_read;
	res->keys_ok &= sluice_verify_keys(db, md, 1, &dropped);
	sl_db_stats(db, &st);
	snprintf(res->detail, sizeof(res->detail),
		 "%" PRIu64 " rotations (%" PRIu64 " waited), %" PRIu64 " apply waits, %" PRIu64
		 " log back-pressure waits, %" PRIu64 " compactions before the lookups, %" PRIu64
		 " during them; sl_db_get_order and "
		 "sl_db_get_orders answered %" PRIu64
		 " keys differently; tables after ingest: %s; after compaction: %s; "
		 "reopen scanned %" PRIu64
		 " log records in %.3f s; bloom during the lookups: %" PRIu64 " probes, %" PRIu64
		 " negatives, %" PRIu64 " false positives",
		 rotations, rotate_waits, apply_waits, bp_waits, res->bg_compactions,
		 res->compactions_during_lookups, res->lookup_mismatches, lv_ingest, lv_compact,
		 st.recovered_records, (double)st.recovery_ns / 1e9, probes, negs, fps);
	r = sl_db_close(db);
	if (r < 0)
		die("sluice close", sl_strerror(r));
	res->verified = ok && res->keys_ok && res->events_ok && !res->lookup_mismatches;
	rm_tree(dir);
}

/* ---- RocksDB -------------------------------------------------------------------------------- */

struct rk {
	rocksdb_t *db;
	rocksdb_options_t *opt;
	rocksdb_column_family_handle_t *cf;
	rocksdb_readoptions_t *ro;
};

static void rk_open(const struct config *c, const char *dir, struct rk *k, int create)
{
	if (create) {
		k->opt = rocksdb_options_create();
		rocksdb_options_set_create_if_missing(k->opt, 1);
		rocksdb_options_set_write_buffer_size(k->opt, (size_t)c->memtable_bytes);
		rocksdb_options_set_compression(k->opt, c->rocks_compression);
		rocksdb_options_enable_statistics(k->opt);
		rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
		/* The table options own the policy; the factory copies the table options. */
		rocksdb_block_based_options_set_filter_policy(
			bbo, rocksdb_filterpolicy_create_bloom(10));
		rocksdb_options_set_block_based_table_factory(k->opt, bbo);
		rocksdb_block_based_options_destroy(bbo);
		k->ro = rocksdb_readoptions_create();
	}
	/* Through the column family API: batched MultiGet needs the default family's handle. */
	const char *names[1] = { "default" };
	const rocksdb_options_t *copts[1] = { k->opt };
	char *err = NULL;
	k->db = rocksdb_open_column_families(k->opt, dir, 1, names, copts, &k->cf, &err);
	if (err)
		die(dir, err);
}

static void rk_close(struct rk *k)
{
	rocksdb_column_family_handle_destroy(k->cf);
	rocksdb_close(k->db);
	k->db = NULL;
}

static uint64_t rk_prop(struct rk *k, const char *name)
{
	uint64_t v = 0;
	if (rocksdb_property_int(k->db, name, &v) != 0)
		return 0;
	return v;
}

/* A cumulative counter from the statistics dump ("rocksdb.wal.bytes COUNT : 123"). */
static uint64_t rk_ticker(struct rk *k, const char *name)
{
	char *s = rocksdb_options_statistics_get_string(k->opt);
	uint64_t v = 0;
	size_t l = strlen(name);
	for (const char *p = s; p && (p = strstr(p, name)); p += l) {
		if ((p == s || p[-1] == '\n') && p[l] == ' ') {
			const char *q = strstr(p, "COUNT : ");
			if (q)
				v = strtoull(q + 8, NULL, 10);
			break;
		}
	}
	rocksdb_free(s);
	return v;
}

/* Background flushes and compactions the ingest left behind: wait until none is running or
 * pending for three polls (RocksDB counts pending work, so a gap between jobs does not
 * pass for idle). */
static double rk_settle(struct rk *k)
{
	uint64_t t0 = mono_ns();
	int quiet = 0;
	while (quiet < 3 && secs(t0, mono_ns()) < SETTLE_MAX_S) {
		int busy = rk_prop(k, "rocksdb.num-running-compactions") ||
			   rk_prop(k, "rocksdb.compaction-pending") ||
			   rk_prop(k, "rocksdb.num-running-flushes") ||
			   rk_prop(k, "rocksdb.mem-table-flush-pending");
		quiet = busy ? 0 : quiet + 1;
		if (quiet < 3)
			sleep_ms(50);
	}
	return quiet < 3 ? -1 : secs(t0, mono_ns());
}

static void rk_levels(struct rk *k, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
	for (int l = 0; l < 7 && len < cap; l++) {
		char name[64];
		snprintf(name, sizeof(name), "rocksdb.num-files-at-level%d", l);
		char *v = rocksdb_property_value(k->db, name);
		if (v && strcmp(v, "0"))
			len += (size_t)snprintf(out + len, cap - len, "%sL%d %s", len ? ", " : "",
						l, v);
		rocksdb_free(v);
	}
	uint64_t live = rk_prop(k, "rocksdb.live-sst-files-size");
	if (len < cap)
		snprintf(out + len, cap - len, " (%.0f MiB of tables)", (double)live / 1048576.0);
}

/* The timed ingest: each WriteBatch holds `batch` messages, each as its event and the state
 * records the model says it leaves, and is written with sync=true (the WAL fsynced before the
 * call returns), one writer, as Sluice's one appending thread. */
static void rk_ingest(const struct config *c, const struct dataset *ds, const struct model *md,
		      struct rk *k)
{
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	for (uint64_t i = 0; i < ds->n; i += c->batch) {
		uint64_t end = i + c->batch <= ds->n ? i + c->batch : ds->n;
		/* The event's receive time: when the batch is handed over, as Sluice stamps an
		 * append call's messages. */
		uint64_t rx = real_ns();
		for (uint64_t j = i; j < end; j++) {
			uint8_t key[SL_KEY_MAX_LEN], val[SL_VAL_EVENT_HDR + 64];
			const struct sl_msg *m = &ds->msgs[j];
			size_t kl = sl__key_event(key, j + 1);
			size_t vl = sl__val_event_encode(val, SL_LOG_MSG, rx, m->data, m->len);
			rocksdb_writebatch_put(wb, (const char *)key, kl, (const char *)val, vl);
			const uint8_t *p = md->puts + md->put_off[j],
				      *e = md->puts + md->put_off[j + 1];
			while (p < e) {
				size_t pkl = p[0], pvl = p[1 + pkl];
				rocksdb_writebatch_put(wb, (const char *)p + 1, pkl,
						       (const char *)p + 2 + pkl, pvl);
				p += 2 + pkl + pvl;
			}
		}
		char *err = NULL;
		rocksdb_write(k->db, wo, wb, &err);
		if (err)
			die("rocksdb write", err);
		rocksdb_writebatch_clear(wb);
	}
	rocksdb_writebatch_destroy(wb);
	rocksdb_writeoptions_destroy(wo);
}

/* 0 and *o, SL_ENOTFOUND, or SL_ECORRUPT for a value that does not decode. */
static int rk_get_order(struct rk *k, uint16_t locate, uint64_t ref, const uint8_t *key,
			struct sl_order *o)
{
	char *err = NULL;
	rocksdb_pinnableslice_t *v =
		rocksdb_get_pinned(k->db, k->ro, (const char *)key, SL_KEY_ORDER_LEN, &err);
	if (err)
		die("rocksdb get", err);
	if (!v)
		return SL_ENOTFOUND;
	size_t vl;
	const char *p = rocksdb_pinnableslice_value(v, &vl);
	int r = sl__val_order_decode((const uint8_t *)p, vl, locate, ref, o);
	rocksdb_pinnableslice_destroy(v);
	return r;
}

/* The same calls as Sluice's lookups: one key at a time (rocksdb_get_pinned, no copy of the
 * value) and batches through the batched MultiGet, each value decoded into an sl_order as
 * sl_db_get_order returns it. */
static void rk_lookups(const struct config *c, const struct lookups *lk, struct rk *k,
		       struct lookup_res *res)
{
	struct sl_order o;
	uint64_t t0 = mono_ns();
	for (size_t i = 0; i < lk->n; i++) {
		int r = rk_get_order(k, lk->locates[i], lk->refs[i],
				     lk->keys + i * SL_KEY_ORDER_LEN, &o);
		if (r == 0)
			res->get_found++;
		else if (r != SL_ENOTFOUND)
			die("rocksdb get", sl_strerror(r));
	}
	res->get_s = secs(t0, mono_ns());
	res->get_rate = (double)lk->n / res->get_s;

	const char **keys = xcalloc(c->mget, sizeof(*keys));
	size_t *klens = xcalloc(c->mget, sizeof(*klens));
	rocksdb_pinnableslice_t **vals = xcalloc(c->mget, sizeof(*vals));
	char **errs = xcalloc(c->mget, sizeof(*errs));
	struct sl_order *out = xcalloc(c->mget, sizeof(*out));
	t0 = mono_ns();
	for (size_t i = 0; i < lk->n; i += c->mget) {
		size_t n = i + c->mget <= lk->n ? c->mget : lk->n - i;
		for (size_t j = 0; j < n; j++) {
			keys[j] = (const char *)lk->keys + (i + j) * SL_KEY_ORDER_LEN;
			klens[j] = SL_KEY_ORDER_LEN;
		}
		rocksdb_batched_multi_get_cf(k->db, k->ro, k->cf, n, keys, klens, vals, errs, 0);
		for (size_t j = 0; j < n; j++) {
			if (errs[j])
				die("rocksdb multi_get", errs[j]);
			if (!vals[j])
				continue;
			size_t vl;
			const char *p = rocksdb_pinnableslice_value(vals[j], &vl);
			if (sl__val_order_decode((const uint8_t *)p, vl, lk->locates[i + j],
						 lk->refs[i + j], &out[j]) < 0)
				die("rocksdb multi_get", "a value does not decode");
			res->mget_found++;
			rocksdb_pinnableslice_destroy(vals[j]);
		}
	}
	res->mget_s = secs(t0, mono_ns());
	res->mget_rate = (double)lk->n / res->mget_s;
	free(keys);
	free(klens);
	free(vals);
	free(errs);
	free(out);
}

static int rk_verify_keys(struct rk *k, const struct model *md)
{
	int ok = 1;
	uint64_t dropped = 0;
	for (size_t i = 0; i < md->nverify; i++) {
		uint8_t key[SL_KEY_MAX_LEN];
		struct sl_order o;
		sl__key_order(key, md->verify[i].locate, md->verify[i].ref);
		int rc = rk_get_order(k, md->verify[i].locate, md->verify[i].ref, key, &o);
		/* RocksDB keeps every order through compactions: always compared in full. */
		ok &= check_answer("rocksdb", &md->want[i], rc, &o, 0, &dropped);
	}
	return ok;
}

/* Every event key, in order, once, holding that message. */
static int rk_compare_events(struct rk *k, const struct dataset *ds)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator(k->db, k->ro);
	uint64_t seen = 0;
	int ok = 1;
	uint8_t first[SL_KEY_MAX_LEN];
	size_t fl = sl__key_event(first, 1);
	for (rocksdb_iter_seek(it, (const char *)first, fl); ok && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl, plen;
		const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it, &kl);
		if (kl < 1 || key[0] != SL_KEY_EVENT)
			break;
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl), *payload;
		uint64_t seq = 0, rx;
		uint32_t kind;
		const struct sl_msg *m = seen < ds->n ? &ds->msgs[seen] : NULL;
		ok = sl__key_parse(key, kl, &seq, NULL) == SL_KEY_EVENT && seq == seen + 1 && m &&
		     sl__val_event_decode(v, vl, &kind, &rx, &payload, &plen) == 0 &&
		     kind == SL_LOG_MSG && plen == m->len && !memcmp(payload, m->data, plen);
		seen++;
	}
	rocksdb_iter_destroy(it);
	if (!ok || seen != ds->n) {
		fprintf(stderr,
			"bench_store: rocksdb: %" PRIu64 " events read back of %" PRIu64 "%s\n",
			seen, ds->n, ok ? "" : ", a bad key or value");
		return 0;
	}
	return 1;
}

static void run_rocksdb(const struct config *c, const struct dataset *ds, const struct model *md,
			const struct lookups *lk, struct result *res)
{
	char dir[PATH_MAX + 64], lv_ingest[200], lv_compact[200];
	snprintf(dir, sizeof(dir), "%s/rocksdb", g_root);
	snprintf(res->system, sizeof(res->system), "rocksdb");
	res->ran = 1;
	struct rk k = { 0 };
	struct snap s_open, s_in0, s_in1, s_fl, s_c0, s_c1, s_r0, s_r1;
	char *err = NULL;

	progress("rocksdb: ingest...\n");
	snap_begin(&s_open);
	rk_open(c, dir, &k, 1);
	snap_begin(&s_in0);
	rk_ingest(c, ds, md, &k);
	snap_mark(&s_in1);
	res->ingest_s = secs(s_in0.t_ns, s_in1.t_ns);
	res->ingest_rate = (double)ds->n / res->ingest_s;
	res->ingest_cpu_s = s_in1.cpu_s - s_in0.cpu_s;

	progress("rocksdb: flush, background compaction...\n");
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, 1);
	uint64_t t = mono_ns();
	rocksdb_flush(k.db, fo, &err);
	if (err)
		die("rocksdb flush", err);
	res->flush_s = secs(t, mono_ns());
	rocksdb_flushoptions_destroy(fo);
	res->settle_s = rk_settle(&k);
	snap_end(&s_fl);
	res->store_bytes_ingested = du(dir);
	rk_levels(&k, lv_ingest, sizeof(lv_ingest));
	res->table_bytes_ingested = rk_prop(&k, "rocksdb.live-sst-files-size");

	for (int i = 0; i < LK_SETS; i++) {
		progress("rocksdb: %zu lookups of %s...\n", lk[i].n, lk[i].name);
		rk_lookups(c, &lk[i], &k, &res->lr[i]);
	}
	uint64_t useful = rk_ticker(&k, "rocksdb.bloom.filter.useful"),
		 positive = rk_ticker(&k, "rocksdb.bloom.filter.full.positive"),
		 true_pos = rk_ticker(&k, "rocksdb.bloom.filter.full.true.positive");
	res->keys_ok = rk_verify_keys(&k, md);
	res->events_ok = rk_compare_events(&k, ds);

	progress("rocksdb: full compaction...\n");
	rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
	/* kForceOptimized: every level down to one sorted run in the bottom level, as
	 * sl_db_compact merges every state table into the bottom level. */
	rocksdb_compactoptions_set_bottommost_level_compaction(co, 3);
	uint64_t compacted0 = rk_ticker(&k, "rocksdb.compact.write.bytes");
	snap_begin(&s_c0);
	rocksdb_compact_range_cf_opt(k.db, k.cf, co, NULL, 0, NULL, 0);
	snap_end(&s_c1);
	rocksdb_compactoptions_destroy(co);
	res->compact_s = secs(s_c0.t_ns, s_c1.t_ns);
	res->compact_cpu_s = s_c1.cpu_s - s_c0.cpu_s;
	rk_levels(&k, lv_compact, sizeof(lv_compact));
	res->table_bytes = rk_prop(&k, "rocksdb.live-sst-files-size");
	res->wal_written = rk_ticker(&k, "rocksdb.wal.bytes");
	res->flush_written = rk_ticker(&k, "rocksdb.flush.write.bytes");
	res->compact_written = rk_ticker(&k, "rocksdb.compact.write.bytes");
	res->full_compact_written = res->compact_written - compacted0;
	res->phys_written = snap_written(&s_open, &s_c1);
	res->phys_ingest = snap_written(&s_open, &s_in1);
	res->phys_flush = snap_written(&s_in1, &s_fl);
	res->phys_compact = snap_written(&s_c0, &s_c1);
	res->keys_ok &= rk_verify_keys(&k, md);

	progress("rocksdb: close, reopen...\n");
	t = mono_ns();
	rk_close(&k);
	res->close_s = secs(t, mono_ns());
	res->store_bytes = du(dir);
	evict(dir);
	const struct order_key *ok_key = open_key(md);
	uint8_t key[SL_KEY_MAX_LEN];
	struct sl_order o;
	sl__key_order(key, ok_key->locate, ok_key->ref);
	snap_begin(&s_r0);
	rk_open(c, dir, &k, 0);
	uint64_t t_opened = mono_ns();
	int r = rk_get_order(&k, ok_key->locate, ok_key->ref, key, &o);
	snap_end(&s_r1);
	if (r < 0)
		die("rocksdb get after reopen", sl_strerror(r));
	res->open_s = secs(s_r0.t_ns, t_opened);
	res->first_get_s = secs(t_opened, s_r1.t_ns);
	res->recovery_s = secs(s_r0.t_ns, s_r1.t_ns);
	res->recovery_read_bytes = s_r1.dev_read - s_r0.dev_read;
	res->keys_ok &= rk_verify_keys(&k, md);
	snprintf(res->detail, sizeof(res->detail),
		 "tables after ingest: %s; after compaction: %s; compression %s; bloom up to "
		 "the end of the lookups: %" PRIu64 " negatives, %" PRIu64 " false positives",
		 lv_ingest, lv_compact, c->rocks_compression_name, useful,
		 positive > true_pos ? positive - true_pos : 0);
	rk_close(&k);
	rocksdb_readoptions_destroy(k.ro);
	rocksdb_options_destroy(k.opt);
	res->verified = res->keys_ok && res->events_ok;
	rm_tree(dir);
}

/* ---- Machine -------------------------------------------------------------------------------- */

/* machine_probe, then g_disk: the block device under dir, for the device write counters. */
static void machine_probe_disk(const char *dir, struct machine *m)
{
	machine_probe(dir, m);
	char real[PATH_MAX];
	if (!strncmp(m->device, "/dev/", 5) && realpath(m->device, real)) {
		const char *b = strrchr(real, '/');
		snprintf(g_disk, sizeof(g_disk), "%.63s", b ? b + 1 : real);
	}
}

/* ---- Report --------------------------------------------------------------------------------- */

/* One row of the comparison. higher: a larger figure is better. A ratio above 1 always means
 * Sluice is better: sluice/rocksdb when higher is better, rocksdb/sluice otherwise. */
struct row {
	const char *what, *unit;
	double sluice, rocksdb;
	int higher;
	const char *aim; /* the target, or NULL */
};

static double row_ratio(const struct row *w)
{
	if (w->higher)
		return w->rocksdb > 0 ? w->sluice / w->rocksdb : 0;
	return w->sluice > 0 ? w->rocksdb / w->sluice : 0;
}

static void finish(const struct dataset *ds, struct result *r)
{
	if (!r->ran)
		return;
	r->in_tables_rate = (double)ds->n / (r->ingest_s + r->flush_s);
	r->logical_written = r->wal_written + r->flush_written + r->compact_written;
	r->wa_logical = (double)r->logical_written / (double)ds->raw_bytes;
	r->wa_phys = (double)r->phys_written / (double)ds->raw_bytes;
}

static int make_rows(const struct result *s, const struct result *k, struct row *w)
{
	int n = 0;
#define ROW(what_, unit_, field_, higher_, aim_)                                                   \
	w[n++] = (struct row){ .what = what_,                                                      \
			       .unit = unit_,                                                      \
			       .sluice = s->ran ? (double)s->field_ : 0,                           \
			       .rocksdb = k->ran ? (double)k->field_ : 0,                          \
			       .higher = higher_,                                                  \
			       .aim = aim_ }
	ROW("durable ingest", "msgs/s", ingest_rate, 1, ">= 10x");
	ROW("ingest CPU (all threads)", "s", ingest_cpu_s, 0, NULL);
	ROW("flush memtable to tables", "s", flush_s, 0, NULL);
	ROW("ingest + flush", "msgs/s", in_tables_rate, 1, NULL);
	ROW("background work after it", "s", settle_s, 0, NULL);
	ROW("lookups, created, 1 by 1", "gets/s", lr[LK_CREATED].get_rate, 1, ">= 2x");
	ROW("lookups, created, batches", "gets/s", lr[LK_CREATED].mget_rate, 1, ">= 2x");
	ROW("lookups, open, 1 by 1", "gets/s", lr[LK_OPEN].get_rate, 1, ">= 2x");
	ROW("lookups, open, batches", "gets/s", lr[LK_OPEN].mget_rate, 1, ">= 2x");
	ROW("full compaction", "s", compact_s, 0, ">= 2x");
	ROW("full compaction CPU", "s", compact_cpu_s, 0, NULL);
	ROW("  tables written", "MiB", full_compact_written / 1048576.0, 0, NULL);
	ROW("close", "s", close_s, 0, NULL);
	ROW("recovery: open + 1st get", "s", recovery_s, 0, NULL);
	ROW("  of which open", "s", open_s, 0, NULL);
	ROW("  read from device", "MiB", recovery_read_bytes / 1048576.0, 0, NULL);
	ROW("store after ingest", "MiB", store_bytes_ingested / 1048576.0, 0, NULL);
	ROW("store after compaction", "MiB", store_bytes / 1048576.0, 0, NULL);
	ROW("  tables after ingest", "MiB", table_bytes_ingested / 1048576.0, 0, NULL);
	ROW("  tables after compaction", "MiB", table_bytes / 1048576.0, 0, NULL);
	ROW("write amp, engine counters", "x", wa_logical, 0, NULL);
	ROW("  log", "MiB", wal_written / 1048576.0, 0, NULL);
	ROW("  flushes", "MiB", flush_written / 1048576.0, 0, NULL);
	ROW("  compactions", "MiB", compact_written / 1048576.0, 0, NULL);
	ROW("write amp, device writes", "x", wa_phys, 0, NULL);
	ROW("  open + ingest", "MiB", phys_ingest / 1048576.0, 0, NULL);
	ROW("  flush + background", "MiB", phys_flush / 1048576.0, 0, NULL);
	ROW("  full compaction", "MiB", phys_compact / 1048576.0, 0, NULL);
#undef ROW
	return n;
}

static void print_table(const struct machine *m, const struct config *c, const struct dataset *ds,
			const struct model *md, const struct lookups *lk, const struct result *s,
			const struct result *k)
{
	struct row w[32];
	int n = make_rows(s, k, w);
	say("\nmachine: %ld CPUs, %s, %.0f GiB RAM, %s; dir %s on %s (%s at %s)\n", m->nproc,
	    m->cpu, (double)m->mem_bytes / (1u << 30), m->kernel, c->dir, m->fs, m->device,
	    m->mount);
	if (!strcmp(m->fs, "tmpfs"))
		say("WARNING: tmpfs is not durable storage; fdatasync is a no-op there\n");
	say("data: %" PRIu64 " ITCH messages (seed %" PRIu64 "), %.1f MiB raw; %zu orders created "
	    "(%zu open at the end), %" PRIu64 " trades; %" PRIu64 " state records for the peer\n",
	    ds->n, c->seed, (double)ds->raw_bytes / 1048576.0, md->norders, md->nopen,
	    md->st.trades, md->nputs);
	say("both: memtable %" PRIu64 " MiB, %zu messages per append / synced WriteBatch; %zu "
	    "lookups per set, one by one and in batches of %zu\n\n",
	    c->memtable_bytes >> 20, c->batch, lk[0].n, c->mget);
	if (!c->sluice_compaction)
		say("sluice: background compaction off (--sluice-compaction 0)\n\n");
	say("%-28s %7s %14s %14s %8s %8s\n", "phase", "unit", "sluice", "rocksdb", "ratio", "aim");
	for (int i = 0; i < n; i++) {
		char a[32] = "-", b[32] = "-", r[16] = "-";
		if (s->ran)
			snprintf(a, sizeof(a), "%.3f", w[i].sluice);
		if (k->ran)
			snprintf(b, sizeof(b), "%.3f", w[i].rocksdb);
		if (s->ran && k->ran && w[i].sluice > 0 && w[i].rocksdb > 0)
			snprintf(r, sizeof(r), "%.2fx", row_ratio(&w[i]));
		if (!strcmp(w[i].unit, "msgs/s") || !strcmp(w[i].unit, "gets/s")) {
			if (s->ran)
				snprintf(a, sizeof(a), "%.0f", w[i].sluice);
			if (k->ran)
				snprintf(b, sizeof(b), "%.0f", w[i].rocksdb);
		}
		say("%-28s %7s %14s %14s %8s %8s\n", w[i].what, w[i].unit, a, b, r,
		    w[i].aim ? w[i].aim : "");
	}
	say("\nratio: above 1 means Sluice is better (sluice/rocksdb for rates, rocksdb/sluice for "
	    "times and bytes).\n");
	for (int i = 0; i < 2; i++) {
		const struct result *r = i ? k : s;
		if (!r->ran)
			continue;
		say("\n%s: %s.\n", r->system, r->detail);
		for (int j = 0; j < LK_SETS; j++)
			say("  lookups of %s: found %" PRIu64 " (batched %" PRIu64 ") of the %zu "
			    "that existed\n",
			    lk[j].name, r->lr[j].get_found, r->lr[j].mget_found, lk[j].present);
		say("  %zu keys (%zu open) checked against the model after ingest, after the full "
		    "compaction\n  and after the reopen: %s; final orders gone before the full "
		    "compaction %" PRIu64 ", after it %" PRIu64 ";\n  every event read back: %s; "
		    "verified: %s\n",
		    md->nverify, md->want_open, r->keys_ok ? "ok" : "FAILED", r->dropped_background,
		    r->verify_dropped, r->events_ok ? "ok" : "FAILED", r->verified ? "yes" : "NO");
	}
	say("\ningest: from the first append until the last message is durable (fdatasync done) "
	    "and, for Sluice,\n  applied; RocksDB: WriteBatch building plus rocksdb_write with "
	    "sync=true, one writer. RocksDB\n  is given the state records precomputed (not "
	    "charged for deriving ITCH state: favours it).\n");
	say("lookups: after the flush and once background compaction is idle; keys drawn "
	    "uniformly from every\n  order created, or from those open at the end, plus %d%% "
	    "that never existed.\n  sl_db_get_order / sl_db_get_orders; rocksdb_get_pinned / "
	    "rocksdb_batched_multi_get_cf;\n  both decode into struct sl_order. Sluice's "
	    "compactions into the bottom state level drop\n  orders in a final state, so once "
	    "one has run its \"created\" set answers not-found for many\n  keys RocksDB "
	    "returns: only the \"open\" set is like for like.\n",
	    c->absent_pct);
	say("full compaction: sl_db_compact (state tables only; events stay in their own tables) "
	    "/\n  rocksdb_compact_range (bottommost kForceOptimized; events and state share one "
	    "key space).\n");
	say("recovery: close, drop the store's files from the page cache (fadvise DONTNEED), "
	    "open, one order\n  lookup; read from device: the device's sectors read meanwhile. "
	    "Store bytes: allocated (du),\n  preallocated log space included; tables: "
	    "Sluice table_bytes, RocksDB live-sst-files-size.\n");
	say("write amp: bytes written / %.1f MiB of raw ITCH messages, open through the end of "
	    "the full\n  compaction. Engine counters: Sluice wal_bytes + flushed_bytes + "
	    "compacted_bytes; RocksDB\n  rocksdb.wal.bytes + flush.write.bytes + "
	    "compact.write.bytes. Device writes: sectors written on\n  %s (/proc/diskstats, "
	    "sync() at each phase boundary): log preallocation, file system\n  journal and any "
	    "other process writing to that device included.\n",
	    (double)ds->raw_bytes / 1048576.0, g_disk[0] ? g_disk : "(device not found)");
}

static void json_result(const struct result *r, const struct lookups *lk)
{
	printf("{\"system\":");
	json_str(r->system);
	printf(",\"ingest_s\":%.6f,\"ingest_msgs_per_s\":%.0f,\"ingest_cpu_s\":%.3f,"
	       "\"flush_s\":%.6f,\"ingest_flush_msgs_per_s\":%.0f,\"settle_s\":%.3f,"
	       "\"compact_s\":%.6f,\"compact_cpu_s\":%.3f,\"close_s\":%.6f,\"open_s\":%.6f,"
	       "\"first_get_s\":%.6f,\"recovery_s\":%.6f,\"recovery_read_bytes\":%" PRIu64
	       ",\"store_bytes_ingested\":%" PRIu64 ",\"store_bytes\":%" PRIu64
	       ",\"table_bytes_ingested\":%" PRIu64 ",\"table_bytes\":%" PRIu64
	       ",\"wal_written\":%" PRIu64 ",\"flush_written\":%" PRIu64
	       ",\"compact_written\":%" PRIu64 ",\"full_compact_written\":%" PRIu64
	       ",\"written\":%" PRIu64 ",\"write_amp\":%.3f,"
	       "\"device_written\":%" PRIu64 ",\"device_written_ingest\":%" PRIu64
	       ",\"device_written_flush\":%" PRIu64 ",\"device_written_compact\":%" PRIu64
	       ",\"write_amp_device\":%.3f,\"compactions_before_lookups\":%" PRIu64
	       ",\"dropped_before_full_compaction\":%" PRIu64
	       ",\"dropped_by_full_compaction\":%" PRIu64
	       ",\"keys_ok\":%s,\"events_ok\":%s,\"verified\":%s,\"lookups\":[",
	       r->ingest_s, r->ingest_rate, r->ingest_cpu_s, r->flush_s, r->in_tables_rate,
	       r->settle_s, r->compact_s, r->compact_cpu_s, r->close_s, r->open_s, r->first_get_s,
	       r->recovery_s, r->recovery_read_bytes, r->store_bytes_ingested, r->store_bytes,
	       r->table_bytes_ingested, r->table_bytes, r->wal_written, r->flush_written,
	       r->compact_written, r->full_compact_written, r->logical_written, r->wa_logical,
	       r->phys_written, r->phys_ingest, r->phys_flush, r->phys_compact, r->wa_phys,
	       r->bg_compactions, r->dropped_background, r->verify_dropped,
	       r->keys_ok ? "true" : "false", r->events_ok ? "true" : "false",
	       r->verified ? "true" : "false");
	for (int j = 0; j < LK_SETS; j++) {
		const struct lookup_res *x = &r->lr[j];
		printf("%s{\"set\":", j ? "," : "");
		json_str(lk[j].name);
		printf(",\"n\":%zu,\"present\":%zu,\"get_s\":%.6f,\"gets_per_s\":%.0f,"
		       "\"found\":%" PRIu64 ",\"mget_s\":%.6f,\"mgets_per_s\":%.0f,"
		       "\"mget_found\":%" PRIu64 "}",
		       lk[j].n, lk[j].present, x->get_s, x->get_rate, x->get_found, x->mget_s,
		       x->mget_rate, x->mget_found);
	}
	printf("],\"detail\":");
	json_str(r->detail);
	printf("}");
}

static void print_json(const struct machine *m, const struct config *c, const struct dataset *ds,
		       const struct model *md, const struct lookups *lk, const struct result *s,
		       const struct result *k)
{
	struct row w[32];
	int n = make_rows(s, k, w);
	printf("{\"benchmark\":\"bench_store\",\"sluice_version\":");
	json_str(sl_version());
	printf(",\"machine\":{\"nproc\":%ld,\"mem_bytes\":%" PRIu64 ",\"cpu\":", m->nproc,
	       m->mem_bytes);
	json_str(m->cpu);
	printf(",\"kernel\":");
	json_str(m->kernel);
	printf(",\"dir\":");
	json_str(c->dir);
	printf(",\"fs\":");
	json_str(m->fs);
	printf(",\"device\":");
	json_str(m->device);
	printf("},\"messages\":%" PRIu64 ",\"raw_bytes\":%" PRIu64 ",\"seed\":%" PRIu64
	       ",\"memtable_bytes\":%" PRIu64 ",\"batch\":%zu,\"lookups\":%zu,\"mget_batch\":%zu,"
	       "\"orders\":%zu,\"orders_open\":%zu,\"state_records\":%" PRIu64
	       ",\"verified_keys\":%zu,\"sluice_compaction\":%d,\"rocksdb_compression\":",
	       ds->n, ds->raw_bytes, c->seed, c->memtable_bytes, c->batch, lk->n, c->mget,
	       md->norders, md->nopen, md->nputs, md->nverify, c->sluice_compaction);
	json_str(c->rocks_compression_name);
	printf(",\"results\":[");
	int first = 1;
	for (int i = 0; i < 2; i++) {
		const struct result *r = i ? k : s;
		if (!r->ran)
			continue;
		printf("%s", first ? "" : ",");
		json_result(r, lk);
		first = 0;
	}
	printf("],\"ratios\":[");
	first = 1;
	for (int i = 0; i < n && s->ran && k->ran; i++) {
		if (!(w[i].sluice > 0 && w[i].rocksdb > 0))
			continue;
		printf("%s{\"what\":", first ? "" : ",");
		json_str(w[i].what);
		printf(",\"unit\":");
		json_str(w[i].unit);
		printf(",\"sluice\":%.6g,\"rocksdb\":%.6g,\"ratio\":%.3f,\"higher_is_better\":%s}",
		       w[i].sluice, w[i].rocksdb, row_ratio(&w[i]), w[i].higher ? "true" : "false");
		first = 0;
	}
	printf("]}\n");
}

/* ---- Main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_store [--messages N] [--memtable-mb M] [--lookups L] [--batch B]\n"
		"                   [--mget-batch K] [--verify V] [--absent-pct P] [--dir DIR]\n"
		"                   [--seed S] [--rocks-compression C] [--sluice-compaction B]\n"
		"                   [--only SYSTEM] [--json]\n"
		"The storage engine end to end: durable ingest, point lookups, full compaction,\n"
		"cold reopen; Sluice vs RocksDB (WAL on, sync=true, bloom 10 bits/key).\n"
		"  --messages N           messages (default 5000000; M and k suffixes work)\n"
		"  --memtable-mb M        memtable / write buffer size of both (default 64)\n"
		"  --lookups L            random order lookups (default 1000000)\n"
		"  --batch B              messages per append / synced WriteBatch (default 256)\n"
		"  --mget-batch K         keys per batched lookup (default 64)\n"
		"  --verify V             keys checked against the model (default 10000)\n"
		"  --absent-pct P         lookups of keys that never existed, %% (default 10)\n"
		"  --dir DIR              where temporary stores go (default $TMPDIR or /tmp)\n"
		"  --seed S               feed and sampling seed (default 1)\n"
		"  --rocks-compression C  none, snappy (RocksDB's default), lz4 or zstd\n"
		"  --sluice-compaction B  1: Sluice's background compaction on (default), 0: off\n"
		"  --only SYSTEM          measure only sluice or only rocksdb\n"
		"  --json                 one JSON object on stdout (progress on stderr)\n");
}

static uint64_t parse_u64(const char *name, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1000, end++;
	else if (*end == 'M')
		mul = 1000000, end++;
	if (errno || end == s || *end || s[0] == '-' || v > UINT64_MAX / mul)
		die(name, "expects a non-negative integer");
	return v * mul;
}

static void parse_compression(const char *s, struct config *c)
{
	static const struct {
		const char *name;
		int code;
	} known[] = {
		{ "none", rocksdb_no_compression },
		{ "snappy", rocksdb_snappy_compression },
		{ "lz4", rocksdb_lz4_compression },
		{ "zstd", rocksdb_zstd_compression },
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(s, known[i].name)) {
			c->rocks_compression = known[i].code;
			c->rocks_compression_name = known[i].name;
			return;
		}
	die("--rocks-compression", "expects none, snappy, lz4 or zstd");
}

static void parse_args(int argc, char **argv, struct config *c)
{
	static const struct option longopts[] = {
		{ "messages", required_argument, NULL, 'n' },
		{ "memtable-mb", required_argument, NULL, 'm' },
		{ "lookups", required_argument, NULL, 'l' },
		{ "batch", required_argument, NULL, 'b' },
		{ "mget-batch", required_argument, NULL, 'g' },
		{ "verify", required_argument, NULL, 'v' },
		{ "absent-pct", required_argument, NULL, 'a' },
		{ "dir", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "rocks-compression", required_argument, NULL, 'c' },
		{ "sluice-compaction", required_argument, NULL, 'C' },
		{ "only", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tmp = getenv("TMPDIR");
	*c = (struct config){
		.messages = 5000000,
		.memtable_bytes = 64ull << 20,
		.lookups = 1000000,
		.batch = 256,
		.mget = 64,
		.verify = 10000,
		.absent_pct = 10,
		.rocks_compression = rocksdb_snappy_compression,
		.rocks_compression_name = "snappy",
		.sluice_compaction = 1,
		.dir = tmp && tmp[0] ? tmp : "/tmp",
		.seed = 1,
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "n:m:l:b:g:v:a:d:s:c:C:o:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			c->messages = parse_u64("--messages", optarg);
			break;
		case 'm':
			c->memtable_bytes = parse_u64("--memtable-mb", optarg) << 20;
			break;
		case 'l':
			c->lookups = parse_u64("--lookups", optarg);
			break;
		case 'b':
			c->batch = (size_t)parse_u64("--batch", optarg);
			break;
		case 'g':
			c->mget = (size_t)parse_u64("--mget-batch", optarg);
			break;
		case 'v':
			c->verify = parse_u64("--verify", optarg);
			break;
		case 'a':
			c->absent_pct = (int)parse_u64("--absent-pct", optarg);
			break;
		case 'd':
			c->dir = optarg;
			break;
		case 's':
			c->seed = parse_u64("--seed", optarg);
			break;
		case 'c':
			parse_compression(optarg, c);
			break;
		case 'C':
			c->sluice_compaction = parse_u64("--sluice-compaction", optarg) != 0;
			break;
		case 'o':
			if (!strcmp(optarg, "sluice"))
				c->only = 1;
			else if (!strcmp(optarg, "rocksdb"))
				c->only = 2;
			else
				die("--only", "expects sluice or rocksdb");
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc || !c->messages || !c->batch || !c->mget || !c->lookups ||
	    !c->memtable_bytes || !c->verify || c->absent_pct > 100) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct config c;
	struct dataset ds = { 0 };
	struct model md = { 0 };
	struct lookups lk[LK_SETS] = { 0 };
	struct result s = { 0 }, k = { 0 };
	struct machine m;

	parse_args(argc, argv, &c);
	machine_probe_disk(c.dir, &m);
	make_root(c.dir);

	progress("generating %" PRIu64 " messages (seed %" PRIu64 ")...\n", c.messages, c.seed);
	gen_messages(&c, &ds);
	progress("model: applying the session to a private memtable%s...\n",
		 c.only != 1 ? ", state records for RocksDB" : "");
	build_model(&c, &ds, &md);
	for (int i = 0; i < LK_SETS; i++)
		plan_lookups(&c, &md, i, &lk[i]);
	progress("%zu orders created, %" PRIu64 " trades, %" PRIu64 " state records, %.1f MiB "
		 "raw\n",
		 md.norders, md.st.trades, md.nputs, (double)ds.raw_bytes / 1048576.0);

	if (c.only != 2)
		run_sluice(&c, &ds, &md, lk, &s);
	if (c.only != 1)
		run_rocksdb(&c, &ds, &md, lk, &k);
	finish(&ds, &s);
	finish(&ds, &k);

	/* Every lookup of an order that exists finds it, except that once a compaction has run,
	 * Sluice may have dropped orders in a final state (never open ones). */
	for (int i = 0; i < 2; i++) {
		struct result *r = i ? &k : &s;
		for (int j = 0; j < LK_SETS && r->ran; j++) {
			const struct lookup_res *x = &r->lr[j];
			int may_drop = !i && j == LK_CREATED && r->bg_compactions;
			int good = x->get_found == x->mget_found &&
				   (may_drop ? x->get_found <= lk[j].present
					     : x->get_found == lk[j].present);
			if (!good) {
				fprintf(stderr,
					"bench_store: %s found %" PRIu64 " / %" PRIu64
					" (batched) of %zu %s\n",
					r->system, x->get_found, x->mget_found, lk[j].present,
					lk[j].name);
				r->verified = 0;
			}
		}
	}
	int ok = (!s.ran || s.verified) && (!k.ran || k.verified);
	if (c.json)
		print_json(&m, &c, &ds, &md, lk, &s, &k);
	else
		print_table(&m, &c, &ds, &md, lk, &s, &k);
	for (int i = 0; i < LK_SETS; i++)
		lookups_release(&lk[i]);
	model_release(&md);
	free(ds.bytes);
	free(ds.msgs);
	remove_root();
	return ok ? 0 : 1;
}
