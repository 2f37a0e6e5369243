/* bench_ingest.c - durable ingest of one pregenerated synthetic ITCH 5.0 session: Sluice (message
 * and MoldUDP64 packet paths, group commit) against RocksDB (WAL on, sync=true per WriteBatch),
 * messages/s and per-batch append-to-durable latency. A benchmark, never a test: it reports
 * figures, checks that every system stored exactly what it was given, and removes its files.
 */
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "feed.h"
#include "mold.h"
#include "sluice.h"

#define MAX_THREAD_COUNTS 8
#define MAX_REPEAT	  15
#define MAX_RATIOS	  4
#define MAX_RESULTS	  (4 + 2 * MAX_THREAD_COUNTS)

struct config {
	uint64_t messages;
	size_t batch;		 /* messages per append call / WriteBatch */
	size_t big_batch;	 /* the larger batch also measured (0: skip) */
	size_t packets_per_call; /* 0: about batch messages per sl_db_append_packets call */
	int rocks_threads[MAX_THREAD_COUNTS]; /* RocksDB writer counts to measure */
	int nrocks;
	double peer_max_s; /* stop a RocksDB run after this long (0: never) */
	double rate;	   /* offered load of the paced Sluice run (0: skip it) */
	const char *dir;
	uint64_t seed;
	int json;
	int repeat; /* runs of each configuration; the median is reported */
	int only;   /* 0 both, 1 Sluice only, 2 RocksDB only */
};

/* Everything generated before any clock starts: messages (one array of bytes, sl_msg views
 * into it) and the same session packed into MoldUDP64 packets. */
struct dataset {
	uint64_t n;
	uint8_t *bytes;
	struct sl_msg *msgs;
	uint8_t *pkt_bytes;
	struct sl_packet *pkts;
	uint64_t *pkt_last_seq; /* sequence of each packet's last message */
	size_t npkts;
};

struct result {
	char system[16];
	char variant[48];
	int threads;
	int paced;    /* offered load below saturation: not a throughput figure */
	size_t batch; /* messages per call (average for packets) */
	uint64_t messages;
	double seconds;
	double rate;		   /* the median run's */
	double rate_min, rate_max; /* over all runs */
	int runs;
	double p50_us, p99_us, p999_us, max_us;
	double append_s;	 /* Sluice: writer time until the last append returned */
	uint64_t commits, syncs; /* Sluice: group commits and fdatasyncs */
	int verified;		 /* stored exactly the messages given */
};

#define BENCH_NAME "bench_ingest"
#include "bench_common.h"

/* ---- Data ----------------------------------------------------------------------------------- */

/* The messages back to back in one buffer (64 bytes each at most), with sl_msg views. */
static void gen_messages(const struct config *c, struct dataset *ds)
{
	ds->n = c->messages;
	gen_message_views(c->seed, c->messages, &ds->bytes, &ds->msgs);
}

/* The same session as MoldUDP64 packets; every message is checked against gen_messages'. */
static void gen_packets(const struct config *c, struct dataset *ds)
{
	struct sl_feed *f = feed_open(c->seed, c->messages);
	size_t cap = (size_t)c->messages * 66 + 1400, used = 0, pcap = 1024;
	uint8_t pkt[SL_MOLD_MAX_PACKET];
	uint64_t next = 1;
	ds->pkt_bytes = xcalloc(cap, 1);
	ds->pkts = xcalloc(pcap, sizeof(*ds->pkts));
	ds->pkt_last_seq = xcalloc(pcap, sizeof(*ds->pkt_last_seq));
	for (;;) {
		uint64_t first;
		uint16_t count;
		int len = sl__feed_next_packet(f, pkt, sizeof(pkt), &first, &count);
		if (len < 0)
			die("feed packets", sl_strerror(len));
		if (len == 0)
			break;
		if (first != next || used + (size_t)len > cap)
			die("feed packets", "unexpected sequence or size");
		struct sl_mold_hdr h;
		if (sl__mold_parse(pkt, (size_t)len, &h) < 0 || h.count != count)
			die("feed packets", "a generated packet does not parse");
		size_t off = SL_MOLD_HDR_LEN;
		for (uint16_t k = 0; k < count; k++) {
			uint16_t ml = (uint16_t)(pkt[off] << 8 | pkt[off + 1]);
			const struct sl_msg *m = &ds->msgs[first - 1 + k];
			if (ml != m->len || memcmp(pkt + off + 2, m->data, ml))
				die("feed packets", "packet and message streams differ");
			off += 2u + ml;
		}
		if (ds->npkts == pcap) {
			pcap *= 2;
			ds->pkts = realloc(ds->pkts, pcap * sizeof(*ds->pkts));
			ds->pkt_last_seq =
				realloc(ds->pkt_last_seq, pcap * sizeof(*ds->pkt_last_seq));
			if (!ds->pkts || !ds->pkt_last_seq)
				die("realloc", strerror(ENOMEM));
		}
		memcpy(ds->pkt_bytes + used, pkt, (size_t)len);
		ds->pkts[ds->npkts] = (struct sl_packet){ .len = (uint32_t)len };
		ds->pkt_last_seq[ds->npkts++] = first + count - 1;
		used += (size_t)len;
		next = first + count;
	}
	sl__feed_free(f);
	if (next != ds->n + 1)
		die("feed packets", "message count differs");
	used = 0;
	for (size_t i = 0; i < ds->npkts; i++) {
		ds->pkts[i].data = ds->pkt_bytes + used;
		used += ds->pkts[i].len;
	}
}

static void dataset_release(struct dataset *ds)
{
	free(ds->bytes);
	free(ds->msgs);
	free(ds->pkt_bytes);
	free(ds->pkts);
	free(ds->pkt_last_seq);
}

/* ---- Latency -------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles of n latencies in ns (sorted in place), in microseconds. */
static void percentiles(uint64_t *lat, size_t n, struct result *res)
{
	if (!n)
		return;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	double q[3] = { 0.50, 0.99, 0.999 },
	       *out[3] = { &res->p50_us, &res->p99_us, &res->p999_us };
	for (int i = 0; i < 3; i++) {
		size_t rank = (size_t)(q[i] * (double)n + 0.999999);
		if (rank < 1)
			rank = 1;
		*out[i] = (double)lat[rank - 1] / 1e3;
	}
	res->max_us = (double)lat[n - 1] / 1e3;
}

/* ---- Sluice --------------------------------------------------------------------------------- */

/* One Sluice run. The writer appends as fast as it can and never waits for durability; for
 * each call it first publishes (release) the call's start time and the last sequence it will
 * get. The waiter thread sleeps in sl_db_wait_durable and stamps every published call that the
 * durable sequence covers when it wakes, so group commit sees the same pipelined load a feed
 * handler gives it. */
struct sluice_run {
	struct sl_db *db;
	size_t ncalls;
	uint64_t *t_start, *t_done, *last_seq;
	atomic_size_t published;
	int err;
};

static void *waiter_main(void *arg)
{
	struct sluice_run *run = arg;
	size_t i = 0;
	while (i < run->ncalls) {
		size_t pub = atomic_load_explicit(&run->published, memory_order_acquire);
		uint64_t d = sl_db_durable_seq(run->db), now = mono_ns();
		while (i < pub && run->last_seq[i] <= d)
			run->t_done[i++] = now;
		if (i == run->ncalls)
			break;
		/* Wait for the oldest pending call, or, when every published call is durable,
		 * for anything further (the writer has not published its next call yet). */
		uint64_t want = i < pub ? run->last_seq[i] : d + 1;
		int r = sl_db_wait_durable(run->db, want, 10 * 1000 * 1000);
		if (r < 0 && r != SL_ETIMEDOUT) {
			run->err = r;
			break;
		}
	}
	return NULL;
}

/* sl_iter over everything and compare it with the messages given. */
static int sluice_compare(struct sl_db *db, const struct dataset *ds)
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

static int sluice_verify(struct sl_db *db, const struct dataset *ds, int packets,
			 struct result *res)
{
	struct sl_stats st;
	sl_db_stats(db, &st);
	res->commits = st.wal_commits;
	res->syncs = st.wal_syncs;
	int ok = st.durable_seq == ds->n && st.last_seq == ds->n && st.messages == ds->n &&
		 st.messages_unknown == 0 && st.messages_bad_length == 0;
	if (packets)
		ok = ok && st.messages_delivered == ds->n && st.gaps_detected == 0 &&
		     st.duplicates == 0 && st.packets_bad == 0;
	if (!ok) {
		fprintf(stderr,
			"bench_ingest: sluice: durable %" PRIu64 " last %" PRIu64
			" messages %" PRIu64 " (unknown %" PRIu64 ", bad %" PRIu64
			") delivered %" PRIu64 " gaps %" PRIu64 ", expected %" PRIu64 "\n",
			st.durable_seq, st.last_seq, st.messages, st.messages_unknown,
			st.messages_bad_length, st.messages_delivered, st.gaps_detected, ds->n);
		return 0;
	}
	int r = sluice_compare(db, ds);
	if (r < 0)
		fprintf(stderr, "bench_ingest: sluice: reading the log back: %s\n", sl_strerror(r));
	return r == 0;
}

/* Split the work into calls: message batches of `batch`, or groups of `ppc` packets. */
static size_t plan_calls(const struct dataset *ds, int packets, size_t batch, size_t ppc,
			 struct sluice_run *run)
{
	size_t units = packets ? ds->npkts : (size_t)ds->n, per = packets ? ppc : batch;
	run->ncalls = (units + per - 1) / per;
	run->t_start = xcalloc(run->ncalls, sizeof(uint64_t));
	run->t_done = xcalloc(run->ncalls, sizeof(uint64_t));
	run->last_seq = xcalloc(run->ncalls, sizeof(uint64_t));
	for (size_t i = 0; i < run->ncalls; i++) {
		size_t end = (i + 1) * per < units ? (i + 1) * per : units;
		run->last_seq[i] = packets ? ds->pkt_last_seq[end - 1] : end;
	}
	return per;
}

/* A new store preallocates its next log segment in the background right after open (64 MiB of
 * zeros and an fdatasync). An appliance opens its store before the feed starts, so the clock
 * starts once that is done (or after 10 s); later segments are prepared during the run and
 * are measured. */
static void settle(struct sl_db *db)
{
	struct sl_stats st;
	for (int i = 0; i < 10000; i++) {
		sl_db_stats(db, &st);
		if (st.wal_segments >= 2)
			return;
		struct timespec ts = { .tv_nsec = 1000000 };
		nanosleep(&ts, NULL);
	}
	progress("  (the second log segment was not ready after 10 s; starting anyway)\n");
}

/* One measured Sluice configuration. */
struct sluice_variant {
	int packets;  /* sl_db_append_packets instead of sl_db_append_messages */
	size_t batch; /* messages per call (message path) */
	size_t ppc;   /* packets per call (packet path) */
	double rate;  /* offered messages/s (0: as fast as the writer goes) */
};

/* The writer: every call as soon as possible, or, when paced, at its scheduled arrival time,
 * which is then also where its latency starts (a late writer does not hide queueing). Returns
 * the time the first call was due. */
static uint64_t sluice_feed(struct sl_db *db, const struct dataset *ds,
			    const struct sluice_variant *v, size_t per, struct sluice_run *run)
{
	uint64_t t0 = mono_ns();
	for (size_t i = 0; i < run->ncalls; i++) {
		size_t from = i * per;
		uint64_t now = mono_ns();
		if (v->rate > 0) {
			uint64_t before = i ? run->last_seq[i - 1] : 0;
			uint64_t due = t0 + (uint64_t)((double)before * 1e9 / v->rate);
			if (due > now) {
				struct timespec ts = { .tv_sec = (time_t)(due / 1000000000u),
						       .tv_nsec = (long)(due % 1000000000u) };
				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
				       EINTR)
					;
			}
			now = due;
		}
		run->t_start[i] = now;
		atomic_store_explicit(&run->published, i + 1, memory_order_release);
		int r;
		if (v->packets) {
			size_t n = from + per <= ds->npkts ? per : ds->npkts - from;
			r = sl_db_append_packets(db, ds->pkts + from, n);
		} else {
			size_t n = from + per <= ds->n ? per : (size_t)ds->n - from;
			uint64_t last;
			r = sl_db_append_messages(db, ds->msgs + from, n, &last);
			if (r == 0 && last != run->last_seq[i])
				die("sluice", "append_messages returned an unexpected sequence");
		}
		if (r < 0)
			die("sluice append", sl_strerror(r));
	}
	return t0;
}

static void run_sluice(const struct dataset *ds, const struct sluice_variant *v, struct result *res)
{
	char dir[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s/sluice-%s-%zu-%.0f", g_root, v->packets ? "pkt" : "msg",
		 v->packets ? v->ppc : v->batch, v->rate);
	struct sl_options o;
	sl_options_init(&o);
	o.flags = SL_OPEN_CREATE;
	o.data_dir = dir;
	struct sl_db *db;
	int r = sl_db_open(&o, &db);
	if (r < 0)
		die(dir, sl_strerror(r));

	settle(db);
	struct sluice_run run = { .db = db };
	size_t per = plan_calls(ds, v->packets, v->batch, v->ppc, &run);
	pthread_t waiter;
	if (pthread_create(&waiter, NULL, waiter_main, &run))
		die("pthread_create", strerror(errno));
	uint64_t t0 = sluice_feed(db, ds, v, per, &run);
	uint64_t t_appended = mono_ns();
	pthread_join(waiter, NULL);
	if (run.err)
		die("sluice wait_durable", sl_strerror(run.err));

	uint64_t *lat = xcalloc(run.ncalls, sizeof(uint64_t));
	for (size_t i = 0; i < run.ncalls; i++)
		lat[i] = run.t_done[i] > run.t_start[i] ? run.t_done[i] - run.t_start[i] : 0;
	snprintf(res->system, sizeof(res->system), "sluice");
	int len = v->packets ? snprintf(res->variant, sizeof(res->variant), "packets x%zu/call",
					v->ppc)
			     : snprintf(res->variant, sizeof(res->variant), "messages");
	if (v->rate > 0)
		snprintf(res->variant + len, sizeof(res->variant) - (size_t)len, ", paced %.0fk/s",
			 v->rate / 1e3);
	res->threads = 1;
	res->paced = v->rate > 0;
	res->batch = v->packets ? (size_t)((ds->n + run.ncalls / 2) / run.ncalls) : v->batch;
	res->messages = ds->n;
	res->seconds = (double)(run.t_done[run.ncalls - 1] - t0) / 1e9;
	res->rate = (double)ds->n / res->seconds;
	res->append_s = (double)(t_appended - t0) / 1e9;
	percentiles(lat, run.ncalls, res);
	res->verified = sluice_verify(db, ds, v->packets, res);
	r = sl_db_close(db);
	if (r < 0)
		die("sluice close", sl_strerror(r));
	free(lat);
	free(run.t_start);
	free(run.t_done);
	free(run.last_seq);
	rm_tree(dir);
}

/* ---- RocksDB -------------------------------------------------------------------------------- */

/* Writers take batch indexes from one counter: with several threads RocksDB's write group
 * gathers the concurrent synced writes into one WAL write and one sync. */
struct rk_run {
	rocksdb_t *db;
	rocksdb_writeoptions_t *wo;
	const struct dataset *ds;
	size_t batch, nbatches;
	uint64_t *lat;	   /* per batch; 0 = not written (deadline) */
	uint64_t deadline; /* mono ns, 0 = none */
	atomic_size_t next;
	atomic_uint_least64_t written;
	atomic_uint_least64_t t_last; /* end of the last write */
	atomic_int failed;
};

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void *rk_writer_main(void *arg)
{
	struct rk_run *run = arg;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	for (;;) {
		size_t i = atomic_fetch_add(&run->next, 1);
		if (i >= run->nbatches || atomic_load(&run->failed))
			break;
		if (run->deadline && mono_ns() > run->deadline)
			break;
		size_t from = i * run->batch, n = run->batch;
		if (from + n > run->ds->n)
			n = (size_t)run->ds->n - from;
		for (size_t k = 0; k < n; k++) {
			uint8_t key[8];
			const struct sl_msg *m = &run->ds->msgs[from + k];
			put_be64(key, from + k + 1);
			rocksdb_writebatch_put(wb, (const char *)key, 8, m->data, m->len);
		}
		char *err = NULL;
		uint64_t t0 = mono_ns();
		rocksdb_write(run->db, run->wo, wb, &err);
		uint64_t t1 = mono_ns();
		rocksdb_writebatch_clear(wb);
		if (err) {
			fprintf(stderr, "bench_ingest: rocksdb write: %s\n", err);
			rocksdb_free(err);
			atomic_store(&run->failed, 1);
			break;
		}
		run->lat[i] = t1 - t0 ? t1 - t0 : 1;
		atomic_fetch_add(&run->written, n);
		uint64_t last = atomic_load(&run->t_last);
		while (t1 > last && !atomic_compare_exchange_weak(&run->t_last, &last, t1))
			;
	}
	rocksdb_writebatch_destroy(wb);
	return NULL;
}

/* Every key is a sequence of a written batch, in order, once, holding that message. */
static int rk_verify(rocksdb_t *db, const struct rk_run *run)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
	uint64_t count = 0, prev = 0;
	int ok = 1;
	for (rocksdb_iter_seek_to_first(it); ok && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const char *v = rocksdb_iter_value(it, &vl);
		uint64_t seq = 0;
		for (size_t i = 0; i < kl && kl == 8; i++)
			seq = seq << 8 | k[i];
		const struct sl_msg *m = seq && seq <= run->ds->n ? &run->ds->msgs[seq - 1] : NULL;
		ok = kl == 8 && m && seq > prev && run->lat[(seq - 1) / run->batch] &&
		     vl == m->len && !memcmp(v, m->data, vl);
		prev = seq;
		count++;
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (!ok || count != atomic_load(&run->written)) {
		fprintf(stderr, "bench_ingest: rocksdb: %" PRIu64 " keys, %" PRIu64 " written%s\n",
			count, (uint64_t)atomic_load(&run->written),
			ok ? "" : ", bad key or value");
		return 0;
	}
	return 1;
}

static void run_rocksdb(const struct config *c, const struct dataset *ds, size_t batch, int threads,
			struct result *res)
{
	char dir[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s/rocksdb-%zu-t%d", g_root, batch, threads);
	rocksdb_options_t *opt = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(opt, 1);
	char *err = NULL;
	rocksdb_t *db = rocksdb_open(opt, dir, &err);
	if (err)
		die(dir, err);
	struct rk_run run = {
		.db = db,
		.wo = rocksdb_writeoptions_create(),
		.ds = ds,
		.batch = batch,
		.nbatches = (size_t)((ds->n + batch - 1) / batch),
	};
	rocksdb_writeoptions_set_sync(run.wo, 1);
	run.lat = xcalloc(run.nbatches, sizeof(uint64_t));
	pthread_t th[64];
	uint64_t t0 = mono_ns();
	if (c->peer_max_s > 0)
		run.deadline = t0 + (uint64_t)(c->peer_max_s * 1e9);
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, rk_writer_main, &run))
			die("pthread_create", strerror(errno));
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&run.failed))
		die("rocksdb", "a write failed");

	size_t nlat = 0;
	for (size_t i = 0; i < run.nbatches; i++)
		if (run.lat[i])
			nlat++;
	uint64_t *lat = xcalloc(nlat, sizeof(uint64_t));
	nlat = 0;
	for (size_t i = 0; i < run.nbatches; i++)
		if (run.lat[i])
			lat[nlat++] = run.lat[i];
	snprintf(res->system, sizeof(res->system), "rocksdb");
	snprintf(res->variant, sizeof(res->variant), "sync WriteBatch, %d writer%s", threads,
		 threads > 1 ? "s" : "");
	res->threads = threads;
	res->batch = batch;
	res->messages = atomic_load(&run.written);
	res->seconds = (double)(atomic_load(&run.t_last) - t0) / 1e9;
	res->rate = res->seconds > 0 ? (double)res->messages / res->seconds : 0;
	percentiles(lat, nlat, res);
	res->verified = rk_verify(db, &run);
	if (res->messages < ds->n)
		progress("  (rocksdb stopped at --peer-max-seconds after %" PRIu64 " of %" PRIu64
			 " messages)\n",
			 res->messages, ds->n);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(run.wo);
	rocksdb_options_destroy(opt);
	free(lat);
	free(run.lat);
	rm_tree(dir);
}

/* ---- Machine -------------------------------------------------------------------------------- */

/* ---- Report --------------------------------------------------------------------------------- */

struct ratio {
	const struct result *sluice, *peer;
	char what[64];
};

/* The fastest RocksDB run at this batch size (any writer count). */
static const struct result *best_peer(const struct result *r, int n, size_t batch)
{
	const struct result *best = NULL;
	for (int i = 0; i < n; i++)
		if (!strcmp(r[i].system, "rocksdb") && r[i].batch == batch &&
		    (!best || r[i].rate > best->rate))
			best = &r[i];
	return best;
}

static void print_table(const struct machine *m, const struct config *c, const struct dataset *ds,
			const struct result *r, int n, const struct ratio *rt, int nrt)
{
	say("\nmachine: %ld CPUs, %s, %s; dir %s on %s (%s at %s)\n", m->nproc, m->cpu, m->kernel,
	    c->dir, m->fs, m->device, m->mount);
	if (!strcmp(m->fs, "tmpfs"))
		say("WARNING: tmpfs is not durable storage; fdatasync is a no-op there\n");
	say("data: %" PRIu64 " ITCH messages (seed %" PRIu64 "), also as %zu MoldUDP64 packets; "
	    "durable = fdatasync done\n\n",
	    c->messages, c->seed, ds->npkts);
	say("%-8s %-26s %5s %9s %7s %10s %7s %8s %8s %8s %3s\n", "system", "variant", "batch",
	    "messages", "seconds", "msgs/s", "spread", "p50 us", "p99 us", "p999 us", "ok");
	for (int i = 0; i < n; i++)
		say("%-8s %-26s %5zu %9" PRIu64 " %7.3f %10.0f %6.0f%% %8.0f %8.0f %8.0f %3s\n",
		    r[i].system, r[i].variant, r[i].batch, r[i].messages, r[i].seconds, r[i].rate,
		    r[i].rate > 0 ? 100 * (r[i].rate_max - r[i].rate_min) / r[i].rate : 0.0,
		    r[i].p50_us, r[i].p99_us, r[i].p999_us, r[i].verified ? "yes" : "NO");
	say("\neach row: the median of %d run(s) by msgs/s (paced: by p99), with that run's "
	    "latencies;\nspread: (fastest - slowest) / median msgs/s.\n",
	    c->repeat);
	say("latency: per append call or WriteBatch, until its last message is durable.\n");
	say("  sluice: from the call until durable_seq covers it; the writer never waits for "
	    "it.\n");
	say("  paced: from the call's scheduled arrival; msgs/s there is the offered load.\n");
	say("  rocksdb: the synchronous rocksdb_write call.\n");
	for (int i = 0; i < n; i++)
		if (!strcmp(r[i].system, "sluice"))
			say("sluice %-24s appends done at %.3f s, %" PRIu64
			    " group commits, %" PRIu64 " fdatasyncs, %.0f messages/commit\n",
			    r[i].variant, r[i].append_s, r[i].commits, r[i].syncs,
			    r[i].commits ? (double)r[i].messages / (double)r[i].commits : 0.0);
	say("\n");
	for (int i = 0; i < nrt; i++)
		say("ratio %-34s sluice %.0f / rocksdb %.0f msgs/s (%s) = %.1fx\n", rt[i].what,
		    rt[i].sluice->rate, rt[i].peer->rate, rt[i].peer->variant,
		    rt[i].sluice->rate / rt[i].peer->rate);
}

static void print_json(const struct machine *m, const struct config *c, const struct dataset *ds,
		       const struct result *r, int n, const struct ratio *rt, int nrt)
{
	printf("{\"benchmark\":\"bench_ingest\",\"sluice_version\":");
	json_str(sl_version());
	printf(",\"machine\":{\"nproc\":%ld,\"cpu\":", m->nproc);
	json_str(m->cpu);
	printf(",\"kernel\":");
	json_str(m->kernel);
	printf(",\"dir\":");
	json_str(c->dir);
	printf(",\"fs\":");
	json_str(m->fs);
	printf(",\"device\":");
	json_str(m->device);
	printf("},\"messages\":%" PRIu64 ",\"packets\":%zu,\"seed\":%" PRIu64 ",\"batch\":%zu,"
	       "\"big_batch\":%zu,\"results\":[",
	       c->messages, ds->npkts, c->seed, c->batch, c->big_batch);
	for (int i = 0; i < n; i++) {
		printf("%s{\"system\":", i ? "," : "");
		json_str(r[i].system);
		printf(",\"variant\":");
		json_str(r[i].variant);
		printf(",\"threads\":%d,\"batch\":%zu,\"messages\":%" PRIu64 ",\"seconds\":%.6f,"
		       "\"msgs_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
		       "\"max_us\":%.1f,\"runs\":%d,\"msgs_per_s_min\":%.0f,"
		       "\"msgs_per_s_max\":%.0f,\"paced\":%s,\"verified\":%s",
		       r[i].threads, r[i].batch, r[i].messages, r[i].seconds, r[i].rate,
		       r[i].p50_us, r[i].p99_us, r[i].p999_us, r[i].max_us, r[i].runs,
		       r[i].rate_min, r[i].rate_max, r[i].paced ? "true" : "false",
		       r[i].verified ? "true" : "false");
		if (!strcmp(r[i].system, "sluice"))
			printf(",\"append_s\":%.6f,\"commits\":%" PRIu64 ",\"syncs\":%" PRIu64,
			       r[i].append_s, r[i].commits, r[i].syncs);
		printf("}");
	}
	printf("],\"ratios\":[");
	for (int i = 0; i < nrt; i++) {
		printf("%s{\"what\":", i ? "," : "");
		json_str(rt[i].what);
		printf(",\"sluice_msgs_per_s\":%.0f,\"rocksdb_msgs_per_s\":%.0f,\"rocksdb\":",
		       rt[i].sluice->rate, rt[i].peer->rate);
		json_str(rt[i].peer->variant);
		printf(",\"ratio\":%.2f}", rt[i].sluice->rate / rt[i].peer->rate);
	}
	printf("]}\n");
}

/* ---- Main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_ingest [--messages N] [--batch B] [--big-batch B2] [--dir DIR]\n"
		"                    [--seed S] [--packets-per-call P] [--rocks-threads LIST]\n"
		"                    [--peer-max-seconds S] [--rate R] [--repeat K] [--only "
		"SYSTEM]\n"
		"                    [--json]\n"
		"Durable ingest of one synthetic ITCH 5.0 session: Sluice vs RocksDB (sync=true).\n"
		"  --messages N          messages (default 2000000)\n"
		"  --batch B             messages per append / WriteBatch (default 64)\n"
		"  --big-batch B2        a larger batch also measured (default 1024, 0 = skip)\n"
		"  --packets-per-call P  MoldUDP64 packets per append_packets (default: ~B msgs)\n"
		"  --rocks-threads LIST  RocksDB writer counts to measure (default 1,4,8)\n"
		"  --peer-max-seconds S  stop a RocksDB run after S s (default 60, 0 = never)\n"
		"  --dir DIR             where temporary stores go (default $TMPDIR or /tmp)\n"
		"  --seed S              feed seed (default 1)\n"
		"  --rate R              offered messages/s of a paced Sluice run: latency\n"
		"                        below saturation (default 1000000, 0 = skip it)\n"
		"  --repeat K            runs of each configuration, median reported (default 3)\n"
		"  --only SYSTEM         measure only sluice or only rocksdb\n"
		"  --json                one JSON object on stdout (progress on stderr)\n");
}

static uint64_t parse_u64(const char *name, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		die(name, "expects a non-negative integer");
	return v;
}

/* "1,2,4,8": writer counts, 1..64 each. Returns how many. */
static int parse_threads(const char *s, int *out)
{
	int n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (errno || end == p || v < 1 || v > 64 || n == MAX_THREAD_COUNTS ||
		    (*end && *end != ','))
			die("--rocks-threads", "expects up to 8 writer counts 1..64, like 1,2,4,8");
		out[n++] = (int)v;
		p = *end ? end + 1 : end;
	}
	if (!n)
		die("--rocks-threads", "expects at least one writer count");
	return n;
}

static int parse_only(const char *s)
{
	if (!strcmp(s, "sluice"))
		return 1;
	if (!strcmp(s, "rocksdb"))
		return 2;
	die("--only", "expects sluice or rocksdb");
	return 0;
}

static void parse_args(int argc, char **argv, struct config *c)
{
	static const struct option longopts[] = {
		{ "messages", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "big-batch", required_argument, NULL, 'B' },
		{ "packets-per-call", required_argument, NULL, 'p' },
		{ "rocks-threads", required_argument, NULL, 't' },
		{ "peer-max-seconds", required_argument, NULL, 'm' },
		{ "dir", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "rate", required_argument, NULL, 'r' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tmp = getenv("TMPDIR");
	*c = (struct config){
		.messages = 2000000,
		.batch = 64,
		.big_batch = 1024,
		.rocks_threads = { 1, 4, 8 },
		.nrocks = 3,
		.peer_max_s = 60,
		.rate = 1000000,
		.dir = tmp && tmp[0] ? tmp : "/tmp",
		.seed = 1,
		.repeat = 3,
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "n:b:B:p:t:m:d:s:o:r:R:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			c->messages = parse_u64("--messages", optarg);
			break;
		case 'b':
			c->batch = (size_t)parse_u64("--batch", optarg);
			break;
		case 'B':
			c->big_batch = (size_t)parse_u64("--big-batch", optarg);
			break;
		case 'p':
			c->packets_per_call = (size_t)parse_u64("--packets-per-call", optarg);
			break;
		case 't':
			c->nrocks = parse_threads(optarg, c->rocks_threads);
			break;
		case 'm':
			c->peer_max_s = (double)parse_u64("--peer-max-seconds", optarg);
			break;
		case 'd':
			c->dir = optarg;
			break;
		case 's':
			c->seed = parse_u64("--seed", optarg);
			break;
		case 'j':
			c->json = 1;
			break;
		case 'o':
			c->only = parse_only(optarg);
			break;
		case 'r':
			c->rate = (double)parse_u64("--rate", optarg);
			break;
		case 'R':
			c->repeat = (int)parse_u64("--repeat", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc || !c->messages || !c->batch || c->repeat < 1 ||
	    c->repeat > MAX_REPEAT) {
		usage(stderr);
		exit(2);
	}
	if (c->big_batch == c->batch)
		c->big_batch = 0;
}

/* One configuration to measure. */
struct job {
	int rocksdb;
	struct sluice_variant v; /* Sluice */
	size_t batch;		 /* RocksDB */
	int threads;		 /* RocksDB */
};

static int cmp_rate(const void *a, const void *b)
{
	const struct result *x = a, *y = b;
	return x->rate < y->rate ? -1 : x->rate > y->rate;
}

static int cmp_p99(const void *a, const void *b)
{
	const struct result *x = a, *y = b;
	return x->p99_us < y->p99_us ? -1 : x->p99_us > y->p99_us;
}

/* Run a job c->repeat times on fresh stores; keep the run with the median messages/s (paced
 * runs, whose rate is the offered load: the median p99 latency) with all its figures, the rate
 * range over all runs, and whether every run stored exactly its input. */
static void measure(const struct config *c, const struct dataset *ds, const struct job *j,
		    struct result *out)
{
	struct result runs[MAX_REPEAT];
	int all_ok = 1;
	memset(runs, 0, sizeof(runs));
	for (int i = 0; i < c->repeat; i++) {
		if (j->rocksdb)
			run_rocksdb(c, ds, j->batch, j->threads, &runs[i]);
		else
			run_sluice(ds, &j->v, &runs[i]);
		all_ok = all_ok && runs[i].verified;
	}
	qsort(runs, (size_t)c->repeat, sizeof(runs[0]), cmp_rate);
	double lo = runs[0].rate, hi = runs[c->repeat - 1].rate;
	if (!j->rocksdb && j->v.rate > 0)
		qsort(runs, (size_t)c->repeat, sizeof(runs[0]), cmp_p99);
	*out = runs[c->repeat / 2];
	out->runs = c->repeat;
	out->rate_min = lo;
	out->rate_max = hi;
	out->verified = all_ok;
}

/* Each Sluice run is compared with the fastest RocksDB run at the batch size it had (packets:
 * the batch they approximate). Paced runs are latency figures, not throughput: skipped. */
static int make_ratios(const struct config *c, const struct result *res, int n, struct ratio *rt)
{
	int nrt = 0;
	for (int i = 0; i < n && nrt < MAX_RATIOS; i++) {
		if (strcmp(res[i].system, "sluice") || res[i].paced)
			continue;
		size_t b = strcmp(res[i].variant, "messages") ? c->batch : res[i].batch;
		const struct result *peer = best_peer(res, n, b);
		if (!peer || peer->rate <= 0)
			continue;
		rt[nrt].sluice = &res[i];
		rt[nrt].peer = peer;
		snprintf(rt[nrt].what, sizeof(rt[nrt].what), "%s, batch %zu:", res[i].variant,
			 res[i].batch);
		nrt++;
	}
	return nrt;
}

/* The jobs of a run, in order: Sluice (messages at each batch, packets, paced), RocksDB. */
static int plan_jobs(const struct config *c, size_t ppc, struct job *jobs)
{
	size_t batches[2] = { c->batch, c->big_batch };
	int n = 0;
	for (int b = 0; b < 2 && batches[b] && c->only != 2; b++)
		jobs[n++] = (struct job){ .v = { .batch = batches[b] } };
	if (c->only != 2)
		jobs[n++] = (struct job){ .v = { .packets = 1, .ppc = ppc } };
	if (c->only != 2 && c->rate > 0)
		jobs[n++] = (struct job){ .v = { .batch = c->batch, .rate = c->rate } };
	for (int b = 0; b < 2 && batches[b] && c->only != 1; b++)
		for (int t = 0; t < c->nrocks; t++)
			jobs[n++] = (struct job){ .rocksdb = 1,
						  .batch = batches[b],
						  .threads = c->rocks_threads[t] };
	return n;
}

static void describe_job(const struct job *j)
{
	if (j->rocksdb)
		progress("rocksdb: batch %zu, %d writer(s)...\n", j->batch, j->threads);
	else if (j->v.packets)
		progress("sluice: packets, %zu per call...\n", j->v.ppc);
	else if (j->v.rate > 0)
		progress("sluice: messages, batch %zu, paced at %.0f messages/s...\n", j->v.batch,
			 j->v.rate);
	else
		progress("sluice: messages, batch %zu...\n", j->v.batch);
}

int main(int argc, char **argv)
{
	struct config c;
	struct dataset ds = { 0 };
	struct job jobs[MAX_RESULTS];
	struct result res[MAX_RESULTS];
	struct ratio rt[MAX_RATIOS];
	struct machine m;

	parse_args(argc, argv, &c);
	machine_probe(c.dir, &m);
	make_root(c.dir);
	memset(res, 0, sizeof(res));

	progress("generating %" PRIu64 " messages (seed %" PRIu64 ")...\n", c.messages, c.seed);
	gen_messages(&c, &ds);
	gen_packets(&c, &ds);
	size_t ppc = c.packets_per_call;
	if (!ppc) {
		/* About `batch` messages per call, as the message path gets. */
		double per_pkt = (double)ds.n / (double)ds.npkts;
		ppc = (size_t)((double)c.batch / per_pkt + 0.5);
		ppc = ppc ? ppc : 1;
	}
	progress("%zu MoldUDP64 packets, %.1f messages each; %zu packets per call; %d run(s) "
		 "of each configuration\n",
		 ds.npkts, (double)ds.n / (double)ds.npkts, ppc, c.repeat);

	int n = plan_jobs(&c, ppc, jobs);
	for (int i = 0; i < n; i++) {
		describe_job(&jobs[i]);
		measure(&c, &ds, &jobs[i], &res[i]);
	}
	int nrt = make_ratios(&c, res, n, rt);
	if (c.json)
		print_json(&m, &c, &ds, res, n, rt, nrt);
	else
		print_table(&m, &c, &ds, res, n, rt, nrt);
	dataset_release(&ds);
	int ok = 1;
	for (int i = 0; i < n; i++)
		ok = ok && res[i].verified;
	remove_root();
	return ok ? 0 : 1;
}
