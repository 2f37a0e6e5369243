/* db.c - the engine: open = lock the directory and recover (log replay into the memtable);
 * append = MoldUDP64 sequencing, ITCH decoding and one log append per batch on the writer
 * thread, while an applier thread brings the state up to date from a Concurrency Kit SPSC ring
 * of decoded batches (so decoding + logging and applying run on two cores); plus queries,
 * replay cursors and statistics. db sits on top: it may call every module below it
 * (os, accel, wal through the log seam, memtable, itch, mold), and none of them calls up.
 */
#include <arpa/inet.h>
#include <ck_pr.h>
#include <ck_ring.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"
#include "db.h"
#include "itch.h"
#include "log.h"
#include "memtable.h"
#include "mold.h"
#include "os.h"
#include "sluice.h"
#include "store.h"
#include "wal.h"

#define BATCH 256
#define APPLY_SLOTS 512 /* batches in flight to the applier: up to 131072 messages */
#define APPLY_SPIN 4096 /* ring polls (with a pause each) before the applier sleeps */

/* Decoded messages on their way to the applier. */
struct apply_batch {
	uint32_t n;
	uint64_t last_seq;  /* of the log batch (bad messages included) */
	uint64_t seqs[BATCH];
	struct sl_itch_msg msgs[BATCH];
};

struct sl_db {
	struct sl_options opt;
	char dir[4096];
	const struct sl_os *os;
	struct sl_accel *accel;
	struct sl_log log;
	int log_open;
	struct sl_store *st;      /* memtables, flush, manifest, tables */
	uint64_t checkpoint;      /* at open: records <= it are in tables */
	uint64_t first_recovered; /* the log's first record at open */
	struct sl_mold *mold;
	int lock_fd;
	int rdonly;
	int source;              /* 0 none yet, 1 packets, 2 messages */
	int rr_fd;               /* re-request socket (connected to the rewinder), or -1 */

	uint64_t last_seq;       /* ck_pr */
	/* Counters: written by the writer with ck_pr stores, read by anyone. */
	uint64_t messages, unknown, bad_length, by_type[128], missed_applies;

	/* Writer scratch: one batch at a time. */
	struct sl_log_rec recs[BATCH];

	/* Writer -> applier. full carries filled batches, free brings them back; both SPSC. */
	struct apply_batch *slots;
	ck_ring_t full, free;
	ck_ring_buffer_t *full_buf, *free_buf;
	pthread_t applier;
	int applier_running;
	pthread_mutex_t amu;
	pthread_cond_t acv;         /* applier: a batch is queued, or stop */
	pthread_cond_t wcv;         /* writer and waiters: a batch was applied */
	int applier_idle, writer_waiting, applied_waiters, stop_applier; /* ck_pr */
	uint64_t applied_seq;       /* ck_pr */
	uint64_t apply_waits;       /* back-pressure: the writer waited for a free slot */
	struct apply_batch *cur;    /* writer: the batch being filled */

	/* Cluster mode (a replicated log was injected): records reach the applier only once
	 * committed, from the log's thread; the writer appends while this node leads, and
	 * otherwise keeps the most recent packets for the day it does. */
	int cluster;
	uint64_t epoch;             /* writer: the log's epoch the mold was last reset for */
	struct pkt_ring *held;      /* writer: recent packets seen while following */
};

/* Recent packets kept while following (bounded: the oldest go first), so that a node elected
 * leader resumes the feed from them before it asks the rewinder for the rest. */
struct pkt_ent {
	uint32_t off, len;
	uint64_t rx_ns;
};

struct pkt_ring {
	uint8_t *mem;
	size_t cap;
	struct pkt_ent *ents;
	size_t max, first, count;
};

#define HELD_BYTES (16u << 20)

static void count(uint64_t *c)
{
	ck_pr_store_64(c, *c + 1);
}

SL_API void sl_options_init(struct sl_options *o)
{
	memset(o, 0, sizeof(*o));
	o->version = SL_OPTIONS_VERSION;
	o->wal_segment_bytes = 64ull << 20;
	o->commit_interval_us = 0;
	o->commit_max_bytes = 4u << 20;
	o->wal_buffer_bytes = 64ull << 20;
	o->rerequest_timeout_us = 50000;
	o->gap_give_up_ms = 5000;
	o->reorder_buffer_packets = 4096;
	/* SLUICE_ACCEL overrides the default backend for every program and test of a run. */
	const char *env = getenv("SLUICE_ACCEL");
	o->accel = env && env[0] ? env : "auto";
	o->expected_orders = 1u << 20;
	o->memtable_bytes = 256ull << 20;
	o->compaction = 1;
}

/* ---- Decode and apply --------------------------------------------------------------------- */

/* Decode one message and count it. Returns 1 when it decoded (msg filled). */
static int decode_counted(struct sl_db *db, const uint8_t *p, size_t len, struct sl_itch_msg *msg)
{
	int r = sl__itch_decode(p, len, msg);
	count(&db->messages);
	if (r == 0) {
		count(&db->by_type[msg->type & 127]);
		return 1;
	}
	if (r == SL_EUNKNOWN)
		count(&db->unknown);
	else
		count(&db->bad_length);
	return 0;
}

static int apply_decoded(struct sl_db *db, const struct sl_itch_msg *msg, uint64_t seq)
{
	int r = sl__memtable_apply(sl__store_active(db->st), msg, seq);
	if (r < 0) {
		/* The message is in the log already; the state lags until a reopen replays it. */
		count(&db->missed_applies);
		fprintf(stderr, "sluice: db: applying seq %" PRIu64 ": %s\n", seq,
			sl_strerror(r));
	}
	return r;
}

/* ---- The applier ------------------------------------------------------------------------ */

/* Wake a sleeper: the flag is read after a full fence that orders it after the caller's ring
 * operation, and the sleeper sets it under the mutex before re-checking the ring, so a wake-up
 * is never lost. */
static void wake(struct sl_db *db, int *flag, pthread_cond_t *cv)
{
	ck_pr_fence_memory();
	if (ck_pr_load_int(flag)) {
		pthread_mutex_lock(&db->amu);
		pthread_cond_broadcast(cv);
		pthread_mutex_unlock(&db->amu);
	}
}

static void *applier_main(void *arg)
{
	struct sl_db *db = arg;
	pthread_setname_np(pthread_self(), "sl-apply");
	for (;;) {
		void *p;
		/* Under load the next batch is microseconds away: look for it a little while
		 * before sleeping, since a sleep and a wake-up cost more than the batch. */
		int got = 0;
		for (int spin = 0; spin < APPLY_SPIN && !got; spin++) {
			got = ck_ring_dequeue_spsc(&db->full, db->full_buf, &p);
			if (!got)
				ck_pr_stall();
		}
		if (!got) {
			pthread_mutex_lock(&db->amu);
			ck_pr_store_int(&db->applier_idle, 1);
			ck_pr_fence_memory();
			while (!ck_ring_size(&db->full) && !ck_pr_load_int(&db->stop_applier))
				pthread_cond_wait(&db->acv, &db->amu);
			ck_pr_store_int(&db->applier_idle, 0);
			int stop = ck_pr_load_int(&db->stop_applier) && !ck_ring_size(&db->full);
			pthread_mutex_unlock(&db->amu);
			if (stop)
				break;
			continue;
		}
		struct apply_batch *b = p;
		for (uint32_t i = 0; i < b->n; i++)
			apply_decoded(db, &b->msgs[i], b->seqs[i]);
		int rr = sl__store_after_apply(db->st, b->last_seq);
		if (rr < 0)
			fprintf(stderr, "sluice: db: rotating the memtable: %s\n", sl_strerror(rr));
		ck_pr_store_64(&db->applied_seq, b->last_seq);
		ck_ring_enqueue_spsc(&db->free, db->free_buf, b);
		ck_pr_fence_memory();
		if (ck_pr_load_int(&db->writer_waiting) || ck_pr_load_int(&db->applied_waiters)) {
			pthread_mutex_lock(&db->amu);
			pthread_cond_broadcast(&db->wcv);
			pthread_mutex_unlock(&db->amu);
		}
	}
	return NULL;
}

/* A free batch for the writer, waiting (counted) while the applier is behind by APPLY_SLOTS. */
static struct apply_batch *take_slot(struct sl_db *db)
{
	void *p;
	if (ck_ring_dequeue_spsc(&db->free, db->free_buf, &p))
		return p;
	ck_pr_store_64(&db->apply_waits, db->apply_waits + 1);
	pthread_mutex_lock(&db->amu);
	ck_pr_store_int(&db->writer_waiting, 1);
	ck_pr_fence_memory();
	while (!ck_ring_dequeue_spsc(&db->free, db->free_buf, &p))
		pthread_cond_wait(&db->wcv, &db->amu);
	ck_pr_store_int(&db->writer_waiting, 0);
	pthread_mutex_unlock(&db->amu);
	return p;
}

static int start_applier(struct sl_db *db)
{
	const struct sl_os *os = db->os;
	db->slots = sl__os_malloc(os, APPLY_SLOTS * sizeof(*db->slots));
	db->full_buf = sl__os_calloc(os, (APPLY_SLOTS * 2) * sizeof(*db->full_buf));
	db->free_buf = sl__os_calloc(os, (APPLY_SLOTS * 2) * sizeof(*db->free_buf));
	if (!db->slots || !db->full_buf || !db->free_buf)
		return -ENOMEM;
	/* A ring of size 2n holds n: room for every slot in either ring. */
	ck_ring_init(&db->full, APPLY_SLOTS * 2);
	ck_ring_init(&db->free, APPLY_SLOTS * 2);
	for (int i = 0; i < APPLY_SLOTS; i++)
		ck_ring_enqueue_spsc(&db->free, db->free_buf, &db->slots[i]);
	db->applied_seq = db->last_seq;
	if (pthread_create(&db->applier, NULL, applier_main, db))
		return -EAGAIN;
	db->applier_running = 1;
	return 0;
}

static void stop_applier(struct sl_db *db)
{
	if (!db->applier_running)
		return;
	pthread_mutex_lock(&db->amu);
	ck_pr_store_int(&db->stop_applier, 1);
	pthread_cond_broadcast(&db->acv);
	pthread_mutex_unlock(&db->amu);
	pthread_join(db->applier, NULL);
	db->applier_running = 0;
}

/* Block until the applier has caught up with seq. It only lags, except while it waits for the
 * flush thread (tables cannot be written, e.g. a full disk): then durability is all there is
 * to wait for, and the state catches up when the flush does. */
static void wait_applied(struct sl_db *db, uint64_t seq)
{
	if (!db->applier_running || ck_pr_load_64(&db->applied_seq) >= seq)
		return;
	pthread_mutex_lock(&db->amu);
	db->applied_waiters++;
	ck_pr_fence_memory();
	while (ck_pr_load_64(&db->applied_seq) < seq && ck_pr_load_64(&db->last_seq) >= seq &&
	       !sl__store_stalled(db->st)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&db->wcv, &db->amu, &ts);
	}
	db->applied_waiters--;
	pthread_mutex_unlock(&db->amu);
}

/* Log n <= BATCH messages that already carry their sequences, then queue what decoded for the
 * applier. Writer thread only. */
static void queue_batch(struct sl_db *db, struct apply_batch *b, uint64_t last_seq)
{
	b->last_seq = last_seq;
	ck_pr_store_64(&db->last_seq, last_seq);
	ck_ring_enqueue_spsc(&db->full, db->full_buf, b);
	wake(db, &db->applier_idle, &db->acv);
}

static struct apply_batch *writer_slot(struct sl_db *db)
{
	struct apply_batch *b = db->cur ? db->cur : take_slot(db);
	db->cur = NULL;
	b->n = 0;
	return b;
}

/* Cluster mode: propose; the state changes when the group commits (apply_committed). */
static int log_only(struct sl_db *db, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sl_log_rec *r = &db->recs[i];
		struct sl_itch_msg msg;
		r->type = sl__itch_decode(r->data, r->len, &msg) == 0 ? SL_LOG_MSG : SL_LOG_BAD;
	}
	int rc = db->log.ops->append_batch(db->log.impl, db->recs, n);
	if (rc == 0)
		ck_pr_store_64(&db->last_seq, db->recs[n - 1].seq);
	return rc;
}

/* The log's thread, cluster mode: committed records, each once, in order, after the state
 * the store opened with. The same decode and apply as a single node's, on the applier. */
static int apply_committed(void *arg, const struct sl_log_rec *recs, size_t n)
{
	struct sl_db *db = arg;
	while (n) {
		size_t k = n < BATCH ? n : BATCH;
		struct apply_batch *b = take_slot(db);
		b->n = 0;
		for (size_t i = 0; i < k; i++) {
			const struct sl_log_rec *r = &recs[i];
			if (r->type == SL_LOG_GAP)
				continue;
			if (decode_counted(db, r->data, r->len, &b->msgs[b->n]) &&
			    r->type == SL_LOG_MSG)
				b->seqs[b->n++] = r->seq;
		}
		b->last_seq = recs[k - 1].seq;
		/* A follower's last sequence is what it applied; a leader's runs ahead. */
		uint64_t last = ck_pr_load_64(&db->last_seq);
		while (last < b->last_seq && !ck_pr_cas_64_value(&db->last_seq, last,
								  b->last_seq, &last))
			;
		ck_ring_enqueue_spsc(&db->full, db->full_buf, b);
		wake(db, &db->applier_idle, &db->acv);
		recs += k;
		n -= k;
	}
	return 0;
}

static int log_and_apply(struct sl_db *db, size_t n)
{
	if (db->cluster)
		return log_only(db, n);
	struct apply_batch *b = writer_slot(db);
	for (size_t i = 0; i < n; i++) {
		struct sl_log_rec *r = &db->recs[i];
		int ok = decode_counted(db, r->data, r->len, &b->msgs[b->n]);
		r->type = ok ? SL_LOG_MSG : SL_LOG_BAD;
		if (ok)
			b->seqs[b->n++] = r->seq;
	}
	int rc = db->log.ops->append_batch(db->log.impl, db->recs, n);
	if (rc < 0) {
		db->cur = b; /* only the applier returns slots to the free ring: keep it */
		return rc;
	}
	queue_batch(db, b, db->recs[n - 1].seq);
	return 0;
}

static int mold_deliver(void *arg, const struct sl_mold_msg *msgs, size_t n)
{
	struct sl_db *db = arg;
	while (n) {
		size_t k = n < BATCH ? n : BATCH;
		for (size_t i = 0; i < k; i++) {
			db->recs[i] = (struct sl_log_rec){
				.seq = msgs[i].seq,
				.rx_ns = msgs[i].rx_ns,
				.data = msgs[i].data,
				.len = msgs[i].len,
			};
		}
		int r = log_and_apply(db, k);
		if (r < 0)
			return r;
		msgs += k;
		n -= k;
	}
	return 0;
}

static void mold_request(void *arg, const uint8_t *pkt, size_t len)
{
	struct sl_db *db = arg;
	if (db->rr_fd >= 0 && send(db->rr_fd, pkt, len, MSG_DONTWAIT) < 0 && errno != EAGAIN)
		fprintf(stderr, "sluice: db: sending a re-request: %s\n", strerror(errno));
}

static int mold_lost(void *arg, uint64_t first, uint64_t n, uint64_t now_ns)
{
	struct sl_db *db = arg;
	uint8_t payload[8];
	for (int i = 0; i < 8; i++)
		payload[i] = (uint8_t)(n >> (8 * i));
	struct sl_log_rec rec = {
		.seq = first, .rx_ns = now_ns, .data = payload, .len = 8, .type = SL_LOG_GAP
	};
	fprintf(stderr, "sluice: db: gave up on sequences %" PRIu64 "..%" PRIu64
		" (%" PRIu64 " messages): logged as a gap\n", first, first + n - 1, n);
	if (db->cluster) {
		int r = db->log.ops->append_batch(db->log.impl, &rec, 1);
		if (r == 0)
			ck_pr_store_64(&db->last_seq, first);
		return r;
	}
	struct apply_batch *b = writer_slot(db);
	int r = db->log.ops->append_batch(db->log.impl, &rec, 1);
	if (r < 0) {
		db->cur = b;
		return r;
	}
	queue_batch(db, b, first); /* nothing to apply; it moves applied_seq along */
	return 0;
}

/* ---- Cluster mode ------------------------------------------------------------------------- */

static void held_push(struct pkt_ring *h, const void *data, uint32_t len, uint64_t rx_ns)
{
	if (!h || len > h->cap / 4)
		return;
	size_t off = 0;
	if (h->count) {
		const struct pkt_ent *last = &h->ents[(h->first + h->count - 1) % h->max];
		off = (size_t)last->off + last->len;
		if (off + len > h->cap)
			off = 0;
	}
	/* Entries lie in ring order: the oldest are the ones the new one may overlap. */
	while (h->count) {
		const struct pkt_ent *o = &h->ents[h->first];
		int overlap = o->off < off + len && (size_t)o->off + o->len > off;
		if (!overlap && h->count < h->max)
			break;
		h->first = (h->first + 1) % h->max;
		h->count--;
	}
	memcpy(h->mem + off, data, len);
	h->ents[(h->first + h->count) % h->max] =
		(struct pkt_ent){ .off = (uint32_t)off, .len = len, .rx_ns = rx_ns };
	h->count++;
}

static int apply_committed(void *arg, const struct sl_log_rec *recs, size_t n);
static int new_mold(struct sl_db *db, uint64_t next_seq);

/* Writer: 1 when this node leads and may append. On a new epoch (this node just became the
 * leader, after everything committed before was applied) the session tracker starts again at
 * the committed sequence + 1 and is fed the packets kept while following; what is still
 * missing it asks of the rewinder. */
static int cluster_ready(struct sl_db *db)
{
	uint64_t epoch = 0, resume = 0;
	if (db->log.ops->writable(db->log.impl, &epoch, &resume) < 0)
		return 0;
	if (epoch == db->epoch)
		return 1;
	db->epoch = epoch;
	ck_pr_store_64(&db->last_seq, resume);
	if (db->mold) {
		int r = new_mold(db, resume + 1);
		if (r < 0)
			return 0;
		struct pkt_ring *h = db->held;
		fprintf(stderr, "sluice: db: leading (epoch %" PRIu64 "): resuming after seq %" PRIu64
			" with %zu kept packets\n", epoch, resume, h ? h->count : 0);
		while (h && h->count) {
			const struct pkt_ent *e = &h->ents[h->first];
			h->first = (h->first + 1) % h->max;
			h->count--;
			r = sl__mold_rx(db->mold, h->mem + e->off, e->len, e->rx_ns);
			if (r < 0)
				return 0;
		}
	}
	return 1;
}

static int open_cluster(struct sl_db *db)
{
	const struct sl_os *os = db->os;
	struct pkt_ring *h = sl__os_calloc(os, sizeof(*h));
	if (!h)
		return -ENOMEM;
	db->held = h;
	h->cap = HELD_BYTES;
	h->max = db->opt.reorder_buffer_packets ? db->opt.reorder_buffer_packets : 4096;
	h->mem = sl__os_malloc(os, h->cap);
	h->ents = sl__os_calloc(os, h->max * sizeof(*h->ents));
	if (!h->mem || !h->ents)
		return -ENOMEM;
	struct sl_log_apply ap = { .apply = apply_committed, .arg = db };
	return db->log.ops->bind(db->log.impl, &ap, db->last_seq);
}

static void close_cluster(struct sl_db *db)
{
	if (!db->held)
		return;
	sl__os_free(db->os, db->held->mem);
	sl__os_free(db->os, db->held->ents);
	sl__os_free(db->os, db->held);
}

/* ---- Recovery ----------------------------------------------------------------------------- */

static int recover_rec(void *arg, const struct sl_log_rec *rec)
{
	struct sl_db *db = arg;
	if (!db->first_recovered)
		db->first_recovered = rec->seq;
	if (rec->seq <= db->checkpoint) {
		/* Already in tables: the log keeps it only until its segment goes. */
		db->last_seq = rec->seq;
		return 0;
	}
	if (rec->type == SL_LOG_MSG) {
		struct sl_itch_msg msg;
		if (decode_counted(db, rec->data, rec->len, &msg)) {
			int r = sl__memtable_apply(sl__store_active(db->st), &msg, rec->seq);
			/* Older state this message needs is damaged. A read-only open serves the
			 * rest: the keys it would have changed answer the error. A writable open
			 * must not go on: what it flushes next would lose those keys for good. */
			if (r == SL_ECORRUPT && db->rdonly) {
				if (!db->missed_applies++)
					fprintf(stderr, "sluice: db: seq %" PRIu64 " names state in a "
						"damaged table; the keys it changes answer "
						"\"%s\"\n", rec->seq, sl_strerror(r));
			} else if (r < 0) {
				fprintf(stderr, "sluice: db: recovering seq %" PRIu64 ": %s\n",
					rec->seq, sl_strerror(r));
				return r;
			}
		}
	} else if (rec->type == SL_LOG_BAD) {
		struct sl_itch_msg msg;
		decode_counted(db, rec->data, rec->len, &msg);
	}
	db->last_seq = rec->seq;
	return 0;
}

/* ---- The log must go on where the tables stop ----------------------------------------------- */

static int first_log_rec(void *arg, const struct sl_log_rec *rec)
{
	*(uint64_t *)arg = rec->seq;
	return 1; /* enough: stop the read */
}

/* Damage and absence are for the open or verify that follows to report, in its own words;
 * anything else (out of memory, I/O errors) stops here. */
static int passable(int r)
{
	return r == SL_ECORRUPT || r == SL_EVERSION || r == -ENOENT ? 0 : r;
}

/* Check, changing nothing, that the log's first record follows the manifest's checkpoint. A
 * manifest that lost its last edits (damage read as a torn tail) leaves a hole no one can fill:
 * the log before it went when those edits were made. SL_ECORRUPT naming the manifest and where
 * it lost edits (path, cap, off), 0 when sound or when either part cannot be read (the open or
 * verify that follows reports that). */
static int log_gap(const struct sl_os *os, struct sl_accel *a, const char *dir, char *path,
		   size_t cap, uint64_t *off)
{
	uint64_t cp, torn;
	char mpath[4200];
	int r = sl__store_probe(os, a, dir, &cp, mpath, sizeof(mpath), &torn);
	if (r)
		return passable(r);
	struct sl_wal_config wc = { .dir = dir, .rdonly = 1 };
	struct sl_log log;
	uint64_t first = 0;
	r = sl__wal_open(&wc, os, a, first_log_rec, &first, &log);
	if (r == 0)
		log.ops->close(log.impl);
	if (r != 0 && r != 1)
		return passable(r);
	if (!first || first <= cp + 1)
		return 0;
	fprintf(stderr, "sluice: db: %s: the log starts at %" PRIu64 " but the tables end at %" PRIu64
		": the manifest %s lost edits from offset %" PRIu64 " on%s; nothing was changed\n", dir,
		first, cp, mpath, torn,
		"");
	if (path && cap)
		snprintf(path, cap, "%s", mpath);
	if (off)
		*off = torn;
	return SL_ECORRUPT;
}

/* Counters rebuilt by recovery start again from zero for another attempt. */
static void reset_counters(struct sl_db *db)
{
	db->messages = db->unknown = db->bad_length = db->missed_applies = 0;
	memset(db->by_type, 0, sizeof(db->by_type));
	db->last_seq = 0;
}

/* ---- Open / close ------------------------------------------------------------------------- */

static int open_rerequest(struct sl_db *db, const char *addr)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !colon[1])
		return SL_ECONFIG;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return SL_ECONFIG;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : 0;
	if (!r && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		r = -errno;
	freeaddrinfo(ai);
	if (r) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	db->rr_fd = fd;
	return 0;
}

/* The session tracker, starting at next_seq (in the session a previous tracker learned). */
static int new_mold(struct sl_db *db, uint64_t next_seq)
{
	const struct sl_options *o = &db->opt;
	struct sl_mold_config mc = {
		.next_seq = next_seq,
		.reorder_packets = o->reorder_buffer_packets,
		.rerequest_timeout_ns = (uint64_t)o->rerequest_timeout_us * 1000,
		.give_up_ns = (uint64_t)o->gap_give_up_ms * 1000000,
	};
	memset(mc.session, ' ', sizeof(mc.session));
	if (db->mold) {
		struct sl_mold_stats ms;
		sl__mold_get_stats(db->mold, &ms);
		for (size_t i = 0; i < sizeof(mc.session) && ms.session[i]; i++)
			mc.session[i] = ms.session[i];
	}
	struct sl_mold_ops mo = {
		.deliver = mold_deliver,
		.request = mold_request,
		.lost = mold_lost,
		.arg = db,
	};
	struct sl_mold *m;
	int r = sl__mold_new(&mc, &mo, &m);
	if (r < 0)
		return r;
	sl__mold_free(db->mold);
	db->mold = m;
	return 0;
}

static int check_options(const struct sl_options *o)
{
	if (!o || o->version < 1 || o->version > SL_OPTIONS_VERSION)
		return SL_EVERSION;
	if (!o->data_dir || !o->data_dir[0])
		return SL_ECONFIG;
	if (o->wal_segment_bytes && o->wal_segment_bytes < SL_WAL_MIN_SEGMENT)
		return SL_ECONFIG;
	return 0;
}

static int open_db(const struct sl_options *o, const struct sl_os *os, const struct sl_log *log,
		   struct sl_db **out)
{
	int r = check_options(o);
	if (r)
		return r;
	struct sl_db *db = sl__os_calloc(os, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->opt = *o;
	db->os = os;
	db->lock_fd = -1;
	db->rr_fd = -1;
	pthread_mutex_init(&db->amu, NULL);
	pthread_cond_init(&db->acv, NULL);
	pthread_cond_init(&db->wcv, NULL);
	db->rdonly = !!(o->flags & SL_OPEN_RDONLY);
	if (log) {
		db->cluster = 1;
		if (db->rdonly || !log->ops || log->ops->version < 2 || !log->ops->bind ||
		    !log->ops->writable) {
			r = SL_ECONFIG;
			goto out_free;
		}
	}
	if ((size_t)snprintf(db->dir, sizeof(db->dir), "%s", o->data_dir) >= sizeof(db->dir) - 64) {
		r = -ENAMETOOLONG;
		goto out_free;
	}
	if (!db->rdonly) {
		if (o->flags & SL_OPEN_CREATE) {
			r = os->ops->mkdir(os->ctx, db->dir, 0755);
			if (r < 0 && r != -EEXIST)
				goto out_free;
		}
		char lock[4200];
		snprintf(lock, sizeof(lock), "%s/LOCK", db->dir);
		db->lock_fd = os->ops->lock(os->ctx, lock);
		if (db->lock_fd < 0) {
			r = db->lock_fd;
			goto out_free;
		}
	}
	/* SLUICE_SIM_PROFILE: the sim backend's profile (sim/README.md), faults included. */
	struct sl_accel_config ac = { .binary = o->accel_binary,
				      .device = o->accel_device,
				      .sim_profile = getenv("SLUICE_SIM_PROFILE") };
	char why[256];
	if ((r = sl__accel_open_cfg(o->accel, &ac, &db->accel, why, sizeof(why))) < 0 && why[0])
		fprintf(stderr, "sluice: db: accelerator \"%s\": %s\n", o->accel ? o->accel : "auto",
			why);
	if (r < 0)
		goto out_free;
	struct sl_wal_config wc = {
		.dir = db->dir,
		.segment_bytes = o->wal_segment_bytes,
		.buffer_bytes = o->wal_buffer_bytes,
		.commit_interval_us = o->commit_interval_us,
		.commit_max_bytes = o->commit_max_bytes,
		.rdonly = db->rdonly,
		.no_sync = !!(o->flags & SL_OPEN_NO_SYNC),
	};
	/* A read-only open may race a live writer and read a record it is halfway through
	 * writing, followed by the rest of its commit: that reads as damage in the middle. Real
	 * damage stays put, an in-flight write does not: look again before saying so. */
	struct sl_store_config sc = {
		.os = os,
		.accel = db->accel,
		.dir = db->dir,
		.rdonly = db->rdonly,
		.no_sync = !!(o->flags & SL_OPEN_NO_SYNC),
		.memtable_bytes = o->memtable_bytes,
		.expected_orders = o->expected_orders,
		.compaction = !!o->compaction,
		.event_retain_bytes = o->event_retain_bytes,
		.event_retain_secs = o->event_retain_secs,
	};
	/* Before anything is repaired (a torn manifest edit cut, orphan tables removed): a store
	 * whose log does not follow its tables must stay exactly as it is for the operator. */
	if (!db->rdonly && !log && (r = log_gap(os, db->accel, db->dir, NULL, 0, NULL)))
		goto out_free;
	for (int attempt = 0;; attempt++) {
		if ((r = sl__store_open(&sc, &db->st)) < 0)
			goto out_free;
		db->checkpoint = sl__store_checkpoint(db->st);
		db->first_recovered = 0;
		if (log) {
			/* A replicated log recovers once bound: it hands over what its group
			 * committed after the tables' checkpoint. */
			db->log = *log;
			r = 0;
			break;
		}
		r = sl__wal_open(&wc, os, db->accel, recover_rec, db, &db->log);
		/* The log must go on where the tables stop. A read-only open can race a flush
		 * that recorded new tables and dropped log segments after we read the manifest:
		 * then the log starts past our checkpoint. (A writable open cannot race.) */
		if (r == 0 && db->first_recovered > db->checkpoint + 1) {
			db->log.ops->close(db->log.impl);
			r = SL_ECORRUPT;
			fprintf(stderr, "sluice: db: %s: the log starts at %" PRIu64 " but the tables "
				"end at %" PRIu64 "\n", db->dir, db->first_recovered, db->checkpoint);
		}
		if ((r != SL_ECORRUPT && r != -ENOENT) || !db->rdonly || attempt == 2)
			break;
		sl__store_close(db->st);
		db->st = NULL;
		reset_counters(db);
		fprintf(stderr, "sluice: db: %s: looking again in case a writer was mid-commit\n",
			db->dir);
		usleep(50000);
	}
	if (r < 0)
		goto out_free;
	db->log_open = 1;
	if (db->last_seq < db->checkpoint)
		db->last_seq = db->checkpoint;
	if ((r = sl__store_start(db->st, &db->log)) < 0)
		goto out_free;
	if (!db->rdonly) {
		if ((r = new_mold(db, db->last_seq + 1)) < 0)
			goto out_free;
		if (o->rerequest_addr && (r = open_rerequest(db, o->rerequest_addr)) < 0)
			goto out_free;
		if ((r = start_applier(db)) < 0)
			goto out_free;
		if (db->cluster && (r = open_cluster(db)) < 0)
			goto out_free;
	}
	*out = db;
	return 0;
out_free:
	sl_db_close(db);
	return r;
}

int sl__db_open_os(const struct sl_options *o, const struct sl_os *os, struct sl_db **out)
{
	return open_db(o, os, NULL, out);
}

int sl__db_open_log(const struct sl_options *o, const struct sl_log *log, struct sl_db **out)
{
	return open_db(o, sl__os_default(), log, out);
}

SL_API int sl_db_open(const struct sl_options *o, struct sl_db **out)
{
	return sl__db_open_os(o, sl__os_default(), out);
}

SL_API int sl_db_close(struct sl_db *db)
{
	if (!db)
		return 0;
	int r = 0;
	if (db->st)
		sl__store_begin_close(db->st);
	stop_applier(db);
	/* The flush thread reads the log: stop it before the log goes. */
	sl__store_close(db->st);
	if (db->log_open)
		r = db->log.ops->close(db->log.impl);
	sl__mold_free(db->mold);
	close_cluster(db);
	sl__accel_close(db->accel);
	if (db->rr_fd >= 0)
		close(db->rr_fd);
	if (db->lock_fd >= 0)
		db->os->ops->close(db->os->ctx, db->lock_fd);
	sl__os_free(db->os, db->slots);
	sl__os_free(db->os, db->full_buf);
	sl__os_free(db->os, db->free_buf);
	pthread_mutex_destroy(&db->amu);
	pthread_cond_destroy(&db->acv);
	pthread_cond_destroy(&db->wcv);
	sl__os_free(db->os, db);
	return r;
}

/* ---- Append ------------------------------------------------------------------------------- */

static uint64_t now_ns(const struct sl_db *db)
{
	return db->os->ops->now_ns(db->os->ctx);
}

SL_API int sl_db_append_packets(struct sl_db *db, const struct sl_packet *pkts, size_t n)
{
	if (db->rdonly)
		return SL_ERDONLY;
	if (db->source == 2)
		return -EINVAL;
	db->source = 1;
	uint64_t now = 0;
	int leading = !db->cluster || cluster_ready(db);
	for (size_t i = 0; i < n; i++) {
		uint64_t rx = pkts[i].rx_ns;
		if (!rx)
			rx = now ? now : (now = now_ns(db));
		int r = leading ? sl__mold_rx(db->mold, pkts[i].data, pkts[i].len, rx) : 0;
		if (r == SL_ENOTLEADER && db->cluster)
			leading = 0; /* leadership went: the next epoch starts afresh */
		else if (r < 0)
			return r;
		if (!leading)
			held_push(db->held, pkts[i].data, pkts[i].len, rx);
	}
	return 0;
}

SL_API int sl_db_append_messages(struct sl_db *db, const struct sl_msg *msgs, size_t n,
				 uint64_t *last_seq)
{
	if (db->rdonly)
		return SL_ERDONLY;
	if (db->source == 1)
		return -EINVAL;
	db->source = 2;
	if (db->cluster && !cluster_ready(db))
		return SL_ENOTLEADER;
	uint64_t now = 0, seq = db->last_seq;
	while (n) {
		size_t k = n < BATCH ? n : BATCH;
		for (size_t i = 0; i < k; i++) {
			uint64_t rx = msgs[i].rx_ns;
			if (!rx)
				rx = now ? now : (now = now_ns(db));
			db->recs[i] = (struct sl_log_rec){
				.seq = ++seq, .rx_ns = rx, .data = msgs[i].data, .len = msgs[i].len
			};
		}
		int r = log_and_apply(db, k);
		if (r < 0)
			return r;
		msgs += k;
		n -= k;
	}
	if (last_seq)
		*last_seq = db->last_seq;
	return 0;
}

SL_API uint64_t sl_db_last_seq(struct sl_db *db)
{
	return ck_pr_load_64(&db->last_seq);
}

SL_API uint64_t sl_db_durable_seq(struct sl_db *db)
{
	return db->log.ops->durable_seq(db->log.impl);
}

SL_API int sl_db_wait_durable(struct sl_db *db, uint64_t seq, int64_t timeout_ns)
{
	int r = db->log.ops->wait_durable(db->log.impl, seq, timeout_ns);
	if (r == 0)
		wait_applied(db, seq);
	return r;
}

SL_API uint64_t sl_db_applied_seq(struct sl_db *db)
{
	return db->applier_running ? ck_pr_load_64(&db->applied_seq) : sl_db_last_seq(db);
}

SL_API void sl_db_sync(struct sl_db *db)
{
	if (!db->rdonly)
		db->log.ops->sync_now(db->log.impl);
}

SL_API int sl_db_poll_fd(struct sl_db *db)
{
	return db->rr_fd;
}

SL_API int sl_db_tick(struct sl_db *db)
{
	if (db->rdonly)
		return SL_ERDONLY;
	int leading = !db->cluster || cluster_ready(db);
	if (db->rr_fd >= 0) {
		/* Replies from the rewinder: ordinary downstream packets with old sequences. */
		uint8_t buf[2048];
		for (int i = 0; i < 256; i++) {
			ssize_t got = recv(db->rr_fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (got < 0)
				break;
			int r = leading ? sl__mold_rx(db->mold, buf, (size_t)got, now_ns(db)) : 0;
			if (r == SL_ENOTLEADER && db->cluster)
				leading = 0;
			else if (r < 0)
				return r;
		}
	}
	if (!leading)
		return 0;
	int r = sl__mold_tick(db->mold, now_ns(db));
	return r == SL_ENOTLEADER && db->cluster ? 0 : r;
}

SL_API int sl_db_close_gaps(struct sl_db *db)
{
	if (db->rdonly)
		return SL_ERDONLY;
	/* A time far past every gap's give-up deadline. */
	return sl__mold_tick(db->mold, UINT64_MAX / 2);
}

/* ---- Queries ------------------------------------------------------------------------------ */

SL_API int sl_db_get_order(struct sl_db *db, uint16_t locate, uint64_t ref, struct sl_order *out)
{
	return sl__store_get_order(db->st, locate, ref, out);
}

SL_API int sl_db_get_trade(struct sl_db *db, uint64_t match, struct sl_trade *out)
{
	return sl__store_get_trade(db->st, match, out);
}

SL_API int sl_db_get_stock(struct sl_db *db, uint16_t locate, struct sl_stock *out)
{
	return sl__store_get_stock(db->st, locate, out);
}

struct sl_iter {
	struct sl_db *db;
	uint64_t next_seq;               /* the next sequence wanted */
	struct sl_store_events *tables;  /* events older than the log, while any are left */
	struct sl_log_cursor *cur;       /* then the log */
};

SL_API int sl_iter_open(struct sl_db *db, uint64_t from_seq, struct sl_iter **out)
{
	struct sl_iter *it = sl__os_calloc(db->os, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->db = db;
	/* History before the oldest retained sequence is gone: say so rather than skip it. */
	uint64_t first = sl__store_first_seq(db->st);
	if (from_seq && from_seq < first) {
		fprintf(stderr, "sluice: db: replay from %" PRIu64 ": history before %" PRIu64
			" is no longer retained\n", from_seq, first);
		sl__os_free(db->os, it);
		return SL_ENOTFOUND;
	}
	it->next_seq = from_seq ? from_seq : first;
	int r = 0;
	/* Sequences the tables hold come from event tables: the log may have let them go. */
	if (it->next_seq <= sl__store_checkpoint(db->st))
		r = sl__store_events_open(db->st, it->next_seq, &it->tables);
	if (r < 0) {
		sl__os_free(db->os, it);
		return r;
	}
	*out = it;
	return 0;
}

static void fill_event(struct sl_event *ev, uint64_t seq, uint64_t rx_ns, uint32_t type,
		       const uint8_t *data, size_t len)
{
	memset(ev, 0, sizeof(*ev));
	ev->seq = seq;
	ev->rx_ns = rx_ns;
	ev->len = (uint32_t)len;
	ev->data = data;
	if (type == SL_LOG_GAP) {
		ev->kind = SL_EVENT_GAP;
		for (size_t i = 0; i < 8 && i < len; i++)
			ev->gap_count |= (uint64_t)data[i] << (8 * i);
	} else {
		ev->kind = SL_EVENT_MESSAGE;
	}
}

SL_API int sl_iter_next(struct sl_iter *it, struct sl_event *ev)
{
	struct sl_db *db = it->db;
	if (it->tables) {
		uint64_t seq, rx;
		uint32_t kind;
		const uint8_t *p;
		size_t len;
		int r = sl__store_events_next(it->tables, &seq, &kind, &rx, &p, &len);
		if (r == 0) {
			fill_event(ev, seq, rx, kind, p, len);
			it->next_seq = seq + 1;
			return 0;
		}
		if (r != SL_EEND)
			return r;
		sl__store_events_close(it->tables);
		it->tables = NULL;
	}
	if (!it->cur) {
		int r = db->log.ops->cursor_open(db->log.impl, it->next_seq, &it->cur);
		if (r < 0)
			return r;
	}
	struct sl_log_rec rec;
	int r = db->log.ops->cursor_next(it->cur, &rec);
	if (r < 0)
		return r;
	fill_event(ev, rec.seq, rec.rx_ns, rec.type, rec.data, rec.len);
	it->next_seq = rec.seq + 1;
	return 0;
}

SL_API void sl_iter_close(struct sl_iter *it)
{
	if (!it)
		return;
	sl__store_events_close(it->tables);
	if (it->cur)
		it->db->log.ops->cursor_close(it->cur);
	sl__os_free(it->db->os, it);
}

/* ---- Statistics and verification ---------------------------------------------------------- */

SL_API int sl_db_stats(struct sl_db *db, struct sl_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->version = SL_STATS_VERSION;
	out->last_seq = sl_db_last_seq(db);
	out->durable_seq = sl_db_durable_seq(db);
	out->applied_seq = sl_db_applied_seq(db);
	out->apply_waits = ck_pr_load_64(&db->apply_waits);
	if (db->mold) {
		/* The tracker's counters belong to the writer; a reader sees a recent copy. */
		struct sl_mold_stats ms;
		sl__mold_get_stats(db->mold, &ms);
		out->packets = ms.packets;
		out->packets_bad = ms.packets_bad;
		out->heartbeats = ms.heartbeats;
		out->end_of_session = ms.end_of_session;
		out->packets_other_session = ms.packets_other_session;
		out->messages_delivered = ms.messages_delivered;
		out->duplicates = ms.duplicates;
		out->gaps_detected = ms.gaps_detected;
		out->gap_messages = ms.gap_messages;
		out->gaps_filled = ms.gaps_filled;
		out->gaps_lost = ms.gaps_lost;
		out->lost_messages = ms.lost_messages;
		out->rerequests_sent = ms.rerequests_sent;
		out->packets_reordered = ms.packets_reordered;
		out->reorder_overflow = ms.reorder_overflow;
		out->session_ended = ms.ended;
		memcpy(out->session, ms.session, sizeof(out->session));
	}
	out->messages = ck_pr_load_64(&db->messages);
	out->messages_unknown = ck_pr_load_64(&db->unknown);
	out->messages_bad_length = ck_pr_load_64(&db->bad_length);
	for (int i = 0; i < 128; i++)
		out->msg_by_type[i] = ck_pr_load_64(&db->by_type[i]);
	struct sl_memtable_stats m;
	sl__memtable_get_stats(sl__store_active(db->st), &m);
	out->orders = m.orders;
	out->orders_open = m.orders_open;
	out->trades = m.trades;
	out->stocks = m.stocks;
	out->orders_missing = m.orders_missing;
	struct sl_log_stats l;
	db->log.ops->get_stats(db->log.impl, &l);
	out->wal_segments = l.segments;
	out->wal_bytes = l.bytes;
	out->wal_commits = l.commits;
	out->wal_syncs = l.syncs;
	out->wal_records = l.records;
	out->wal_backpressure_waits = l.backpressure_waits;
	out->wal_io_errors = l.io_errors;
	out->recovered_records = l.recovered_records;
	out->recovery_torn_bytes = l.recovery_torn_bytes;
	out->recovery_ns = l.recovery_ns;
	struct sl_store_stats ss;
	sl__store_get_stats(db->st, &ss);
	out->checkpoint_seq = ss.checkpoint_seq;
	out->tables = ss.tables;
	out->table_bytes = ss.table_bytes;
	for (int i = 0; i < 8; i++) {
		out->level_tables[i] = ss.levels_tables[i];
		out->level_bytes[i] = ss.levels_bytes[i];
	}
	out->rotations = ss.rotations;
	out->rotate_waits = ss.rotate_waits;
	out->flushes = ss.flushes;
	out->flush_errors = ss.flush_errors;
	out->flushed_bytes = ss.flushed_bytes;
	out->compactions = ss.compactions;
	out->compaction_errors = ss.compaction_errors;
	out->compacted_read_bytes = ss.compacted_read_bytes;
	out->compacted_bytes = ss.compacted_bytes;
	out->compaction_dropped = ss.compaction_dropped;
	out->compaction_running = ss.compaction_running;
	out->compaction_pending = ss.compaction_pending;
	out->events_retired_tables = ss.events_retired_tables;
	out->events_retired_bytes = ss.events_retired_bytes;
	out->bloom_probes = ss.bloom_probes;
	out->bloom_negatives = ss.bloom_negatives;
	out->bloom_false_positives = ss.bloom_false_positives;
	struct sl_accel_health ah;
	sl__accel_health(db->accel, &ah);
	out->accel_fallbacks = ah.fallbacks;
	out->accel_lost = (uint64_t)ah.lost;
	return 0;
}

SL_API int sl_verify(const char *dir, char *path, size_t cap, uint64_t *off, uint64_t *records,
		     uint64_t *torn_bytes)
{
	if (path && cap)
		path[0] = 0;
	struct sl_accel *a;
	int r = sl__accel_open("cpu", &a);
	if (r < 0)
		return r;
	/* As for read-only opens: a live writer's in-flight commit can look like damage. */
	for (int attempt = 0; attempt < 3; attempt++) {
		r = sl__wal_verify(dir, sl__os_default(), a, path, cap, off, records, torn_bytes);
		if (r != SL_ECORRUPT)
			break;
		usleep(50000);
	}
	uint64_t tables = 0, toff = 0;
	char tpath[4200];
	if (r == 0) {
		r = sl__store_verify(sl__os_default(), a, dir, tpath, sizeof(tpath), &toff, &tables);
		if (r && path && cap)
			snprintf(path, cap, "%s", tpath);
		if (r && off)
			*off = toff;
	}
	if (r == 0)
		r = log_gap(sl__os_default(), a, dir, path, cap, off);
	sl__accel_close(a);
	return r;
}

/* ---- Batched queries, scans, flush and compaction ------------------------------------------ */

SL_API int sl_db_get_orders(struct sl_db *db, size_t n, const uint16_t *locates,
			    const uint64_t *refs, struct sl_order *out, int *rc)
{
	if (n && (!locates || !refs || !out || !rc))
		return -EINVAL;
	sl__store_get_orders(db->st, n, locates, refs, out, rc);
	return 0;
}

SL_API int sl_scan_open(struct sl_db *db, int kind, uint16_t locate, uint64_t from_ns,
			uint64_t to_ns, struct sl_scan **out)
{
	return sl__store_scan_open(db->st, kind, locate, from_ns, to_ns,
				   (struct sl_store_scan **)out);
}

SL_API int sl_scan_next_order(struct sl_scan *s, struct sl_order *out)
{
	struct sl_store_scan *c = (struct sl_store_scan *)s;
	if (sl__store_scan_kind(c) != SL_SCAN_ORDERS)
		return -EINVAL;
	return sl__store_scan_next(c, out);
}

SL_API int sl_scan_next_trade(struct sl_scan *s, struct sl_trade *out)
{
	struct sl_store_scan *c = (struct sl_store_scan *)s;
	if (sl__store_scan_kind(c) != SL_SCAN_TRADES)
		return -EINVAL;
	return sl__store_scan_next(c, out);
}

SL_API void sl_scan_close(struct sl_scan *s)
{
	sl__store_scan_close((struct sl_store_scan *)s);
}

SL_API int sl_db_flush(struct sl_db *db)
{
	if (db->rdonly || !db->applier_running)
		return SL_ERDONLY;
	if (db->cluster)
		return -EOPNOTSUPP; /* only the log's thread feeds the applier */
	/* The applier rotates once it has applied everything appended so far: hand it an empty
	 * batch in case nothing else comes. */
	uint64_t last = db->last_seq;
	sl__store_request_rotate(db->st, last);
	queue_batch(db, writer_slot(db), last);
	return sl__store_wait_flushed(db->st, last);
}

int sl__db_flush_quiesced(struct sl_db *db)
{
	if (!db->cluster || !db->applier_running)
		return -EINVAL;
	/* The log's thread is gone: this thread may feed the applier now. Everything committed
	 * was queued; what this node proposed beyond it never was and is not flushed. */
	uint64_t last = db->log.ops->durable_seq(db->log.impl);
	if (last <= sl__store_checkpoint(db->st))
		return 0;
	sl__store_request_rotate(db->st, last);
	struct apply_batch *b = take_slot(db);
	b->n = 0;
	b->last_seq = last;
	ck_ring_enqueue_spsc(&db->full, db->full_buf, b);
	wake(db, &db->applier_idle, &db->acv);
	return sl__store_wait_flushed(db->st, last);
}

void sl__db_request_flush(struct sl_db *db)
{
	sl__store_request_rotate(db->st, ck_pr_load_64(&db->applied_seq));
}

int sl__db_pin_tables(struct sl_db *db, const char *dst_dir, struct sl_table_info **out,
		      size_t *n, uint64_t *checkpoint)
{
	return sl__store_pin(db->st, dst_dir, out, n, checkpoint);
}

int sl__db_install_tables(struct sl_db *db, const char *src_dir, const struct sl_table_info *t,
			  size_t n, uint64_t checkpoint)
{
	if (!db->cluster || !db->applier_running)
		return -EINVAL;
	/* The caller is the log's thread, the applier's only feeder: once what was queued is
	 * applied and flushed (flush_quiesced waits for both), nothing touches the memtable. */
	int r = sl__db_flush_quiesced(db);
	if (r < 0)
		return r;
	wait_applied(db, ck_pr_load_64(&db->last_seq));
	if ((r = sl__store_install(db->st, src_dir, t, n, checkpoint)) < 0)
		return r;
	ck_pr_store_64(&db->last_seq, checkpoint);
	ck_pr_store_64(&db->applied_seq, checkpoint);
	return 0;
}

SL_API int sl_db_compact(struct sl_db *db)
{
	if (db->rdonly)
		return SL_ERDONLY;
	return sl__store_compact(db->st);
}
