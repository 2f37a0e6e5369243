/* test_model.c - the model test. A long random workload runs against Sluice and against the
 * reference model of model.h (an independent in-memory model of ITCH order, trade and stock
 * state, fed the deterministic feed with edge cases mixed in). Every answer - orders one by one
 * and in multi-gets, trades, stocks, scans, replay from any sequence - must equal the model's,
 * across flushes, compactions, restarts and simulated crashes (the fault_os twin drops every
 * write from a random call on, then the store is reopened); final orders may or must be gone
 * after compactions as model.h says.
 *
 * Beside the random workload: the corners of the new API, a fixed script of every edge case
 * (through a flush, compactions and restarts, with scans over every instant it used), and
 * targeted tests of the waits: sl_db_wait_durable under back-pressure, sl_db_flush right after
 * an append, sl_db_flush and sl_db_close while a full disk fails every flush. A flush or close
 * that hangs fails its test after TIMED_SECS (left behind on a thread of its own); any other
 * hang ends the binary from a watchdog alarm that names the step.
 *
 * SL_MODEL_SEED=N repeats a run (the seed is printed first); SL_TEST_QUICK=1 shortens it,
 * SL_TEST_LONG=1 lengthens it; SL_MODEL_VERBOSE=1 prints every step.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "fault_os.h"
#include "itch.h"
#include "model.h"
#include "sluice.h"
#include "testutil.h"

static int quick, longrun;

/* Flushes, compactions and closes run on a thread of their own and are given up on (the test
 * fails, the thread and its store are left behind) when they take more than TIMED_SECS: one
 * hang fails one test and the others still run. */
#define TIMED_SECS 20u

struct timed_call {
	int (*fn)(struct sl_db *db);
	struct sl_db *db;
	int rc;
};

static void *timed_main(void *arg)
{
	struct timed_call *t = arg;

	t->rc = t->fn(t->db);
	return NULL;
}

static int call_timed(int (*fn)(struct sl_db *db), struct sl_db *db, const char *what)
{
	struct timed_call *t = malloc(sizeof(*t)); /* the thread's, if it never returns */
	struct timespec ts;
	pthread_t th;
	int rc;

	assert_non_null(t);
	*t = (struct timed_call){ fn, db, 0 };
	assert_int_equal(pthread_create(&th, NULL, timed_main, t), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TIMED_SECS;
	if (pthread_timedjoin_np(th, NULL, &ts) == ETIMEDOUT)
		mfail("%s has not returned after %u s (left hanging)", what, TIMED_SECS);
	rc = t->rc;
	free(t);
	return rc;
}

/* One run against one store directory. The store always holds messages 1..appended of the
 * stream and the model is fed exactly those. */
struct run {
	struct mstream s;
	struct model m;
	uint64_t rng;
	uint32_t stocks;
	char dir[64];
	struct fault_os *fo;
	struct sl_db *db;
	uint64_t appended;
	int bg;		      /* the open store compacts in the background */
	uint64_t bg_hi;	      /* the last sequence a background-compacting store had */
	uint64_t gone_upto;   /* final orders up to here must be gone */
	uint64_t crash_ack;   /* durable at the simulated crash */
	uint64_t early_waits; /* sl_db_wait_durable returned before the state had the seq */
	char early_first[300];
	struct sl_msg *msgs; /* batch buffer */
	size_t cap_msgs;
	/* Counts for the summary. */
	uint64_t batches, checks, full_checks, flushes, compactions, real_compactions, restarts,
		crashes, lost_in_crash, opens;
};

static void run_policy(const struct run *r, struct mpolicy *p)
{
	p->gone_upto = r->gone_upto;
	p->maybe_upto = r->bg ? UINT64_MAX : r->bg_hi;
}

static void run_mcheck(struct run *r, struct mcheck *c)
{
	c->db = r->db;
	c->m = &r->m;
	c->s = &r->s;
	c->rng = &r->rng;
	c->stocks = r->stocks;
	run_policy(r, &c->pol);
	mctx.seq = r->appended;
}

static void vlog(const struct run *r, const char *what)
{
	if (mctx.verbose)
		printf("  %-28s at %8" PRIu64 " (of %" PRIu64 ")\n", what, r->appended, r->s.n);
}

static void run_open(struct run *r)
{
	static const uint64_t mts[] = { 512 << 10, 1 << 20, 2 << 20 };
	static const uint64_t segs[] = { 256 << 10, 1 << 20, 4 << 20 };
	static const uint64_t expect_orders[] = { 1024, 16384, 65536 };
	struct sl_options o;
	int rc;

	sl_options_init(&o);
	o.data_dir = r->dir;
	o.flags = SL_OPEN_CREATE | (mchance(&r->rng, 500) ? SL_OPEN_NO_SYNC : 0);
	o.accel = "cpu";
	o.memtable_bytes = mts[mbelow(&r->rng, 3)];
	o.wal_segment_bytes = segs[mbelow(&r->rng, 3)];
	o.wal_buffer_bytes = mchance(&r->rng, 500) ? 1 << 20 : 8 << 20;
	o.commit_interval_us = mchance(&r->rng, 700) ? 0 : 200;
	o.expected_orders = expect_orders[mbelow(&r->rng, 3)];
	/* Mostly background compaction; now and then none, so final orders must stay. */
	o.compaction = mchance(&r->rng, 750) ? 1 : 0;
	rc = sl__db_open_os(&o, fault_os_get(r->fo), &r->db);
	if (rc)
		mfail("sl_db_open: %s", sl_strerror(rc));
	r->bg = (int)o.compaction;
	r->opens++;
}

/* Close cleanly (rc must be 0). */
static void run_close(struct run *r)
{
	struct sl_db *db = r->db;
	int rc;

	r->db = NULL; /* a hung close leaves it behind */
	rc = call_timed(sl_db_close, db, "sl_db_close");
	if (rc)
		mfail("sl_db_close: %s", sl_strerror(rc));
	if (r->bg)
		r->bg_hi = r->appended;
}

/* Append messages appended+1 .. appended+n and feed them to the model. Returns the library's
 * return code (only a crashed run tolerates a nonzero one). */
static int run_append(struct run *r, uint64_t n)
{
	uint64_t last = 0;
	int rc;

	if (n > r->s.n - r->appended)
		n = r->s.n - r->appended;
	if (!n)
		return 0;
	watchdog_arm();
	if (n > r->cap_msgs) {
		r->cap_msgs = n;
		r->msgs = realloc(r->msgs, n * sizeof(*r->msgs));
		assert_non_null(r->msgs);
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t len;
		uint64_t seq = r->appended + 1 + i;

		r->msgs[i].data = mstream_msg(&r->s, seq, &len);
		r->msgs[i].len = (uint16_t)len;
		r->msgs[i].rx_ns = RX_BASE + seq;
	}
	rc = sl_db_append_messages(r->db, r->msgs, (size_t)n, &last);
	if (rc)
		return rc;
	if (last != r->appended + n)
		mfail("sl_db_append_messages: last sequence %" PRIu64 ", want %" PRIu64, last,
		      r->appended + n);
	r->appended += n;
	model_advance(&r->m, &r->s, r->appended);
	r->batches++;
	return 0;
}

static uint64_t batch_size(struct run *r)
{
	uint32_t k = (uint32_t)mbelow(&r->rng, 100);

	if (k < 35)
		return mrange(&r->rng, 1, 4);
	if (k < 70)
		return mrange(&r->rng, 5, 200);
	if (k < 95)
		return mrange(&r->rng, 200, 3000);
	return mrange(&r->rng, 3000, 20000);
}

/* sl_db_wait_durable returns once the state reflects the sequence (sluice.h; behind flushes
 * that fail it returns early on purpose). When it returns early otherwise the run notes it (the
 * test fails at its end, naming the first time) and polls, so everything else still gets
 * checked. */
static void run_wait(struct run *r)
{
	watchdog_arm();
	int rc = sl_db_wait_durable(r->db, r->appended, 30ll * 1000000000);
	uint64_t applied = sl_db_applied_seq(r->db), t0 = mono_ns();

	if (rc)
		mfail("sl_db_wait_durable(%" PRIu64 "): %s", r->appended, sl_strerror(rc));
	if (applied == r->appended)
		return;
	struct sl_stats st;
	sl_db_stats(r->db, &st);
	/* Behind flushes that fail (a full disk) it returns early on purpose; otherwise not. */
	if (!st.flush_errors && !r->early_waits++)
		snprintf(r->early_first, sizeof(r->early_first),
			 "at %" PRIu64 " (%s): applied %" PRIu64 ", durable %" PRIu64
			 ", rotate_waits %" PRIu64 ", flush_errors %" PRIu64,
			 r->appended, mctx.step, applied, sl_db_durable_seq(r->db), st.rotate_waits,
			 st.flush_errors);
	while ((applied = sl_db_applied_seq(r->db)) < r->appended) {
		if (mono_ns() - t0 > 60ull * 1000000000)
			mfail("the state stays at %" PRIu64
			      " for 60 s after sl_db_wait_durable(%" PRIu64 ") returned 0",
			      applied, r->appended);
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* The contract checks a run defers to its end. */
static void run_verdict(struct run *r)
{
	mctx.step = "the end";
	if (r->early_waits)
		mfail("sl_db_wait_durable returned 0 before the state reflected the sequence "
		      "%" PRIu64 " times (with no I/O error); first %s",
		      r->early_waits, r->early_first);
}

static void run_check(struct run *r, int full)
{
	struct mcheck c;

	mctx.step = full ? "full check" : "check";
	mctx.seq = r->appended;
	run_wait(r);
	run_mcheck(r, &c);
	if (full) {
		check_all(&c);
		for (int i = 0; i < 8; i++)
			check_scan_random(&c);
		check_replay_random(&c, r->appended, 20000);
		r->full_checks++;
	} else {
		check_sample(&c, r->appended);
	}
	r->checks++;
}

/* sl_db_flush: afterwards the tables hold everything applied when it was called (settle: after
 * waiting for the state, so that is everything appended; else right after an append, while the
 * applier may still be busy); a flush that returns with the checkpoint short fails. Returns whether
 * the tables hold everything appended. */
static int run_flush(struct run *r, int settle)
{
	struct sl_stats a, b;
	uint64_t want;
	int rc;

	mctx.step = settle ? "sl_db_flush" : "sl_db_flush right after an append";
	mctx.seq = r->appended;
	if (settle)
		run_wait(r);
	assert_int_equal(sl_db_stats(r->db, &a), 0);
	want = sl_db_applied_seq(r->db);
	watchdog_arm();
	rc = call_timed(sl_db_flush, r->db, "sl_db_flush");
	if (rc)
		mfail("sl_db_flush: %s", sl_strerror(rc));
	assert_int_equal(sl_db_stats(r->db, &b), 0);
	r->flushes++;
	if (b.checkpoint_seq >= want && b.checkpoint_seq <= r->appended) {
		return b.checkpoint_seq == r->appended;
	}
	mfail("sl_db_flush returned with the checkpoint at %" PRIu64 ", want %" PRIu64
	      " (applied when it was called; %" PRIu64 " appended; rotations %" PRIu64
	      " -> %" PRIu64 ")",
	      b.checkpoint_seq, want, r->appended, a.rotations, b.rotations);
	return 0;
}

/* Flush, then a full compaction: when it ran (the compaction counter moved) after a real
 * flush, every order final by now must be gone and every open one exact; all state tables
 * sit in one level. */
static void run_compact(struct run *r)
{
	struct sl_stats a, b;
	int flushed = run_flush(r, 1), rc;

	mctx.step = "sl_db_compact";
	watchdog_arm();
	assert_int_equal(sl_db_stats(r->db, &a), 0);
	rc = call_timed(sl_db_compact, r->db, "sl_db_compact");
	if (rc)
		mfail("sl_db_compact: %s", sl_strerror(rc));
	assert_int_equal(sl_db_stats(r->db, &b), 0);
	r->compactions++;
	if (b.compactions > a.compactions && flushed) {
		int levels = 0;

		r->gone_upto = r->appended;
		r->real_compactions++;
		for (int l = 0; l < 6; l++)
			levels += b.level_tables[l] > 0;
		if (levels > 1)
			mfail("after a full compaction state tables sit in %d levels (L0 %" PRIu64
			      ", L1 %" PRIu64 ", L2 %" PRIu64 ", L3 %" PRIu64 ", L4 %" PRIu64
			      ", L5 %" PRIu64 ")",
			      levels, b.level_tables[0], b.level_tables[1], b.level_tables[2],
			      b.level_tables[3], b.level_tables[4], b.level_tables[5]);
		mtot.gone_asserted++;
	} else {
		notice_once(&notes.compact_stub,
			    "sl_db_compact ran no compaction (compactions "
			    "%" PRIu64 " -> %" PRIu64 "%s): the must-be-gone assertion for final "
			    "orders waits for it",
			    a.compactions, b.compactions, flushed ? "" : ", and no real flush");
	}
	run_check(r, 1);
}

static void run_restart(struct run *r)
{
	mctx.step = "restart";
	run_wait(r);
	watchdog_arm();
	run_close(r);
	run_open(r);
	if (sl_db_last_seq(r->db) != r->appended || sl_db_durable_seq(r->db) != r->appended)
		mfail("reopened with last %" PRIu64 " durable %" PRIu64 ", want %" PRIu64,
		      sl_db_last_seq(r->db), sl_db_durable_seq(r->db), r->appended);
	if (sl_db_applied_seq(r->db) != r->appended)
		mfail("reopened with applied %" PRIu64 ", want %" PRIu64, sl_db_applied_seq(r->db),
		      r->appended);
	r->restarts++;
	run_check(r, r->m.nord < 400000 || mchance(&r->rng, 300));
}

static void on_crash(void *arg)
{
	struct run *r = arg;

	/* The twin's lock is held: read the durable sequence only (an atomic load). */
	r->crash_ack = sl_db_durable_seq(r->db);
}

/* A simulated crash: from a random write-ish call on, every write is lost; the store keeps
 * working (appends, flushes, compactions) until the crash hits (or is forced), is closed, and
 * reopened. Everything durable at the crash must be back, nothing past what was appended; the
 * model is rebuilt to what came back and the rest is appended again later. */
static void run_crash(struct run *r)
{
	static const enum fault_op ops[] = { FAULT_PWRITE,    FAULT_FDATASYNC, FAULT_RENAME,
					     FAULT_UNLINK,    FAULT_FTRUNCATE, FAULT_FSYNC,
					     FAULT_FALLOCATE, FAULT_SYNC_DIR };
	enum fault_op op = ops[mbelow(&r->rng, 8)];
	uint64_t nth = mrange(&r->rng, 1, 60), before = sl_db_durable_seq(r->db), last, ack;
	int steps = (int)mrange(&r->rng, 1, 30), failed = 0;

	mctx.step = "simulated crash";
	mctx.seq = r->appended;
	watchdog_arm();
	r->crash_ack = 0;
	fault_os_on_crash(r->fo, on_crash, r);
	fault_os_crash_at(r->fo, op, nth);
	for (int i = 0; i < steps && !fault_os_crashed(r->fo) && !failed; i++) {
		uint32_t k = (uint32_t)mbelow(&r->rng, 100);

		watchdog_arm();
		mctx.seq = r->appended;
		if (k < 80) {
			mctx.step = "simulated crash: appending";
			failed = run_append(r, batch_size(r)) != 0;
		} else if (k < 90) {
			mctx.step = "simulated crash: sl_db_flush";
			failed = call_timed(sl_db_flush, r->db, "sl_db_flush") != 0;
		} else if (k < 95) {
			mctx.step = "simulated crash: sl_db_compact";
			failed = call_timed(sl_db_compact, r->db, "sl_db_compact") != 0;
		} else {
			mctx.step = "simulated crash: sl_db_wait_durable";
			failed = sl_db_wait_durable(r->db, r->appended, 5ll * 1000000000) != 0;
		}
	}
	if (!fault_os_crashed(r->fo))
		fault_os_crash(r->fo);
	ack = r->crash_ack > before ? r->crash_ack : before;
	mctx.step = "simulated crash: sl_db_close";
	watchdog_arm();
	struct sl_db *db = r->db;
	r->db = NULL;
	call_timed(sl_db_close, db, "sl_db_close"); /* writes go nowhere: its return says nothing */
	fault_os_reset(r->fo);
	fault_os_on_crash(r->fo, NULL, NULL);
	/* Whatever compaction ran in there may or may not have been recorded. */
	r->bg_hi = r->appended;
	run_open(r);
	last = sl_db_last_seq(r->db);
	mctx.step = "recovery after a simulated crash";
	if (last < ack || last > r->appended)
		mfail("recovered through %" PRIu64 ": durable at the crash (%s call %" PRIu64
		      ") was %" PRIu64 ", appended %" PRIu64,
		      last, op == FAULT_PWRITE ? "pwrite" : "write-ish", nth, ack, r->appended);
	if (sl_db_durable_seq(r->db) != last)
		mfail("recovered last %" PRIu64 " but durable %" PRIu64, last,
		      sl_db_durable_seq(r->db));
	if (last < r->appended) {
		r->lost_in_crash += r->appended - last;
		model_reset(&r->m);
		model_advance(&r->m, &r->s, last);
		r->appended = last;
	}
	r->crashes++;
	run_check(r, 1);
}

/* Next event at about every `every` messages. */
static uint64_t next_at(struct run *r, uint64_t every)
{
	return r->appended + mrange(&r->rng, every / 2 + 1, every * 3 / 2 + 1);
}

static void run_setup(struct run *r, uint64_t feed_messages, uint32_t stocks)
{
	struct wl_config wc = { .seed = mctx.seed,
				.feed_messages = feed_messages,
				.stocks = stocks,
				.inject_permille = 30 };
	uint64_t t0 = mono_ns();

	memset(r, 0, sizeof(*r));
	r->rng = mctx.seed * 0x100000001b3ull + 17;
	r->stocks = stocks;
	workload_build(&wc, &r->s);
	model_init(&r->m);
	assert_non_null(sl_test_mkdtemp(r->dir, sizeof(r->dir), "model"));
	snprintf(mctx.dir, sizeof(mctx.dir), "%s", r->dir);
	r->fo = fault_os_new();
	assert_non_null(r->fo);
	if (mctx.verbose)
		printf("  workload: %" PRIu64 " messages (%" PRIu64 " injected, %" PRIu64
		       " malformed) in %.2f s\n",
		       r->s.n, r->s.injected, r->s.malformed, (double)(mono_ns() - t0) / 1e9);
}

static void run_teardown(struct run *r)
{
	alarm(0);
	if (r->db)
		sl_db_close(r->db);
	if (r->fo) {
		int64_t allocs = fault_os_live_allocs(r->fo), fds = fault_os_open_fds(r->fo);

		fault_os_free(r->fo);
		if (!mctx.failed && (allocs || fds))
			mfail("after the last close: %" PRId64 " allocations and %" PRId64
			      " descriptors of the store are still live",
			      allocs, fds);
	}
	if (!mctx.failed) {
		sl_test_rm_rf(r->dir);
		mctx.dir[0] = 0;
	}
	model_release(&r->m);
	mstream_release(&r->s);
	free(r->msgs);
}

/* ---- Tests ---------------------------------------------------------------------------------- */

/* The long random workload: batches of random size, and at random points checks, flushes,
 * flush + full compaction, restarts and simulated crashes; at the end all of them once more
 * and a replay of everything. */
static void test_model_random_workload(void **state)
{
	uint64_t feed_n = longrun ? 5000000 : quick ? 250000 : 1000000, t0 = mono_ns();
	struct run *r = calloc(1, sizeof(*r));
	struct mcheck c;

	(void)state;
	assert_non_null(r);
	mctx.test = "model_random_workload";
	mctx.failed = 0;
	memset(&mtot, 0, sizeof(mtot));
	run_setup(r, feed_n, 64);
	run_open(r);

	uint64_t n = r->s.n;
	uint64_t every_check = n / 60 + 1, every_flush = n / 12 + 1, every_compact = n / 6 + 1,
		 every_restart = n / 6 + 1, every_crash = n / 5 + 1;
	uint64_t at_check = next_at(r, every_check), at_flush = next_at(r, every_flush),
		 at_compact = next_at(r, every_compact), at_restart = next_at(r, every_restart),
		 at_crash = next_at(r, every_crash);

	while (r->appended < n) {
		mctx.step = "append";
		mctx.seq = r->appended;
		int rc = run_append(r, batch_size(r));
		if (rc)
			mfail("sl_db_append_messages: %s", sl_strerror(rc));
		if (r->appended >= at_check) {
			vlog(r, "check");
			run_check(r, 0);
			at_check = next_at(r, every_check);
		}
		if (r->appended >= at_flush) {
			vlog(r, "flush");
			run_flush(r, mchance(&r->rng, 500));
			run_check(r, 0);
			at_flush = next_at(r, every_flush);
		}
		if (r->appended >= at_compact) {
			vlog(r, "flush + compact");
			run_compact(r);
			at_compact = next_at(r, every_compact);
		}
		if (r->appended >= at_restart) {
			vlog(r, "restart");
			run_restart(r);
			at_restart = next_at(r, every_restart);
		}
		if (r->appended >= at_crash && r->appended < n) {
			vlog(r, "simulated crash");
			run_crash(r);
			at_crash = next_at(r, every_crash);
		}
	}
	/* The end: everything once more, then all of the log from 1. */
	vlog(r, "final checks");
	run_check(r, 1);
	run_compact(r);
	run_restart(r);
	mctx.step = "full replay";
	run_mcheck(r, &c);
	check_replay(&c, 1, r->appended, UINT64_MAX);
	run_close(r);

	printf("model_random_workload: seed %" PRIu64 ": %" PRIu64 " messages (%" PRIu64
	       " injected, %" PRIu64 " malformed), %" PRIu64 " orders, %" PRIu64 " trades; %" PRIu64
	       " batches, %" PRIu64 " checks (%" PRIu64 " full), %" PRIu64 " flushes, %" PRIu64
	       " compactions (%" PRIu64 " ran), %" PRIu64 " restarts, %" PRIu64
	       " simulated crashes (%" PRIu64 " messages lost and "
	       "appended again), %.1f s\n",
	       mctx.seed, r->s.n, r->s.injected, r->s.malformed, r->m.nord, r->m.ntr, r->batches,
	       r->checks, r->full_checks, r->flushes, r->compactions, r->real_compactions,
	       r->restarts, r->crashes, r->lost_in_crash, (double)(mono_ns() - t0) / 1e9);
	printf("model_random_workload: answers checked: %" PRIu64 " orders exact, %" PRIu64
	       " final orders gone (allowed), %" PRIu64 " unknown keys not found, %" PRIu64
	       " trades, %" PRIu64 " stocks, %" PRIu64 " multi-gets, %" PRIu64 " scans (%" PRIu64
	       " records), %" PRIu64 " replays (%" PRIu64 " events); must-be-gone checked after "
	       "%" PRIu64 " compactions\n",
	       mtot.orders, mtot.orders_gone, mtot.orders_absent, mtot.trades, mtot.stocks,
	       mtot.multigets, mtot.scans, mtot.scan_records, mtot.replays, mtot.replay_events,
	       mtot.gone_asserted);
	run_verdict(r);
	run_teardown(r);
	free(r);
}

/* ---- Edge cases in a fixed script ---------------------------------------------------------- */

struct script {
	struct run *r;
	uint64_t t0, ts; /* the first timestamp; the last one given */
};

static void sc_emit(struct script *sc, struct sl_itch_msg *x)
{
	uint8_t buf[64];
	int len;

	x->timestamp = sc->ts += 1000;
	len = sl__itch_encode(x, buf, sizeof(buf));
	assert_true(len > 0);
	mstream_push(&sc->r->s, buf, (uint32_t)len);
}

static void sc_raw(struct script *sc, const char *bytes, uint32_t len)
{
	mstream_push(&sc->r->s, (const uint8_t *)bytes, len);
}

static void sc_dir(struct script *sc, uint16_t locate, const char *sym, char state)
{
	struct sl_itch_msg x = { .type = 'R', .locate = locate };

	pad8(x.u.stock_directory.stock, sym);
	x.u.stock_directory.market_category = 'Q';
	x.u.stock_directory.financial_status = state;
	x.u.stock_directory.round_lot_size = 100;
	sc_emit(sc, &x);
}

static void sc_action(struct script *sc, uint16_t locate, char state)
{
	struct sl_itch_msg x = { .type = 'H', .locate = locate };

	pad8(x.u.trading_action.stock, "X");
	x.u.trading_action.trading_state = state;
	sc_emit(sc, &x);
}

static void sc_add(struct script *sc, uint16_t locate, uint64_t ref, uint32_t shares,
		   const char *mpid)
{
	struct sl_itch_msg x = { .type = mpid ? 'F' : 'A', .locate = locate };

	x.u.add_order.ref = ref;
	x.u.add_order.side = ref & 1 ? 'S' : 'B';
	x.u.add_order.shares = shares;
	x.u.add_order.price = 1000 + (uint32_t)(ref & 0xffff);
	pad8(x.u.add_order.stock, "EDGE");
	if (mpid)
		padn(x.u.add_order.mpid, mpid, 4);
	sc_emit(sc, &x);
}

static void sc_exec(struct script *sc, char type, uint16_t locate, uint64_t ref, uint32_t shares,
		    uint64_t match)
{
	struct sl_itch_msg x = { .type = (uint8_t)type, .locate = locate };

	x.u.executed.ref = ref;
	x.u.executed.shares = shares;
	x.u.executed.match = match;
	x.u.executed.printable = 'N';
	x.u.executed.price = 4242;
	sc_emit(sc, &x);
}

static void sc_cancel(struct script *sc, uint16_t locate, uint64_t ref, uint32_t shares)
{
	struct sl_itch_msg x = { .type = 'X', .locate = locate };

	x.u.cancel.ref = ref;
	x.u.cancel.shares = shares;
	sc_emit(sc, &x);
}

static void sc_delete(struct script *sc, uint16_t locate, uint64_t ref)
{
	struct sl_itch_msg x = { .type = 'D', .locate = locate };

	x.u.del.ref = ref;
	sc_emit(sc, &x);
}

static void sc_replace(struct script *sc, uint16_t locate, uint64_t old, uint64_t nref,
		       uint32_t shares)
{
	struct sl_itch_msg x = { .type = 'U', .locate = locate };

	x.u.replace.orig_ref = old;
	x.u.replace.new_ref = nref;
	x.u.replace.shares = shares;
	x.u.replace.price = 777;
	sc_emit(sc, &x);
}

static void sc_trade(struct script *sc, char type, uint16_t locate, uint64_t match, uint64_t ref)
{
	struct sl_itch_msg x = { .type = (uint8_t)type, .locate = locate };

	if (type == 'P') {
		x.u.trade.ref = ref;
		x.u.trade.side = 'S';
		x.u.trade.shares = 300;
		pad8(x.u.trade.stock, "BF B");
		x.u.trade.price = 555;
		x.u.trade.match = match;
	} else if (type == 'Q') {
		x.u.cross_trade.shares = 1ull << 35;
		pad8(x.u.cross_trade.stock, "EDGE");
		x.u.cross_trade.price = 556;
		x.u.cross_trade.match = match;
		x.u.cross_trade.cross_type = 'O';
	} else {
		x.u.broken_trade.match = match;
	}
	sc_emit(sc, &x);
}

/* Scans of the script's stocks over everything and over every instant the script used. */
static void sc_scans(struct script *sc)
{
	static const uint16_t locs[] = { 0, 1, 2, 7, EDGE_LOCATE };
	struct mcheck c;

	run_mcheck(sc->r, &c);
	for (size_t i = 0; i < sizeof(locs) / sizeof(locs[0]); i++) {
		check_scan(&c, SL_SCAN_ORDERS, locs[i], 0, 0);
		check_scan(&c, SL_SCAN_TRADES, locs[i], 0, 0);
		for (uint64_t t = sc->t0 + 1000; t <= sc->ts; t += 1000) {
			check_scan(&c, SL_SCAN_ORDERS, locs[i], t, t);
			check_scan(&c, SL_SCAN_TRADES, locs[i], t, t);
		}
	}
}

/* Append everything scripted so far, then check every key the store and the model know. */
static void sc_sync(struct script *sc, const char *step)
{
	struct run *r = sc->r;
	int rc = run_append(r, r->s.n - r->appended);

	mctx.step = step;
	if (rc)
		mfail("sl_db_append_messages: %s", sl_strerror(rc));
	run_check(r, 1);
	mctx.step = step;
	sc_scans(sc);
}

/* Every edge of the state machine once, then again after a flush, a compaction and restarts,
 * with messages in between that reach back into the tables (a restart leaves open orders only
 * there; a broken trade names a trade in a table). */
static void test_model_edge_script(void **state)
{
	const uint64_t W = UINT64_MAX, T = (1ull << 48) - 1, B = 1ull << 48;
	struct run *r = calloc(1, sizeof(*r));
	struct script sc = { r, 34200ull * 1000000000ull, 34200ull * 1000000000ull };

	(void)state;
	assert_non_null(r);
	mctx.test = "model_edge_script";
	mctx.failed = 0;
	memset(r, 0, sizeof(*r));
	r->rng = mctx.seed + 99;
	r->stocks = 4;
	model_init(&r->m);
	assert_non_null(sl_test_mkdtemp(r->dir, sizeof(r->dir), "model"));
	snprintf(mctx.dir, sizeof(mctx.dir), "%s", r->dir);
	r->fo = fault_os_new();
	assert_non_null(r->fo);
	run_open(r);

	/* A memtable of one order and nothing else, flushed. */
	sc_add(&sc, 2, 30, 100, NULL);
	mctx.step = "one order alone";
	assert_int_equal(run_append(r, 1), 0);
	run_flush(r, 1);
	run_check(r, 1);
	sc_dir(&sc, 1, "AAPL", 'N');
	sc_dir(&sc, 2, "BF B", 'D');
	sc_dir(&sc, EDGE_LOCATE, "EDGE", 'N');
	sc_dir(&sc, 0, "ZERO", 'N');
	sc_action(&sc, 1, 'H');
	sc_action(&sc, 7, 'P');			/* no directory entry: ignored */
	sc_add(&sc, 1, 10, 100, NULL);		/* executed past its size */
	sc_add(&sc, 1, 11, 200, "  X ");	/* attribution with spaces */
	sc_exec(&sc, 'E', 1, 10, 150, 1);	/* 150 of 100: 100 execute, the trade says 150 */
	sc_exec(&sc, 'E', 1, 999, 5, 2);	/* unknown order: no trade 2 */
	sc_exec(&sc, 'C', 2, 11, 5, 3);		/* the right ref at the wrong locate: unknown */
	sc_cancel(&sc, 1, 11, 50);		/* 150 left */
	sc_replace(&sc, 1, 11, 12, 300);	/* 11 replaced by 12, which keeps "  X" */
	sc_replace(&sc, 1, 12, 12, 400);	/* a replace naming itself */
	sc_replace(&sc, 1, 999, 13, 1);		/* unknown original: no 13 */
	sc_add(&sc, 1, 10, 70, NULL);		/* 10 again, open */
	sc_add(&sc, 0, 0, 100, "GSCO");		/* locate 0, ref 0 */
	sc_add(&sc, EDGE_LOCATE, T, 100, NULL); /* packs to ck_ht's tombstone */
	sc_add(&sc, 2, W, 100, NULL);		/* wide reference numbers */
	sc_add(&sc, 2, B, 100, NULL);
	sc_add(&sc, 2, 20, 0, NULL); /* no shares */
	sc_cancel(&sc, 2, 20, 0);    /* cancelled to zero by cancelling nothing */
	sc_add(&sc, 2, 21, 0, NULL);
	sc_exec(&sc, 'E', 2, 21, 0, 4); /* executed by executing nothing */
	sc_exec(&sc, 'E', 0, 0, 40, 5);
	sc_trade(&sc, 'P', 1, 6, 77);
	sc_trade(&sc, 'Q', 1, 7, 0);
	sc_trade(&sc, 'B', 1, 6, 0);
	sc_trade(&sc, 'B', 1, 999, 0); /* unknown match */
	sc_trade(&sc, 'P', 1, 1, 0);   /* match 1 again: the trade is replaced */
	sc_delete(&sc, 2, W);
	sc_exec(&sc, 'C', EDGE_LOCATE, T, 10, W); /* wide match number */
	sc_raw(&sc, "z\x01\x02\x03\x04", 5);	  /* unknown type */
	sc_raw(&sc, "D\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 18);
	sc_sync(&sc, "script in the memtable");

	run_flush(r, 1);
	run_check(r, 1);
	/* After the flush: messages that need the tables' (or carried) state. */
	sc_trade(&sc, 'B', 1, 7, 0); /* a cross in a table */
	sc_exec(&sc, 'E', EDGE_LOCATE, T, 10, 8);
	sc_exec(&sc, 'E', 1, 10, 20, 9);
	sc_dir(&sc, 1, "AAPL", 'E'); /* a re-issue keeps the trading state */
	sc_action(&sc, 2, 'Q');
	sc_add(&sc, 1, 12, 5, NULL); /* a replaced (final) key reused */
	/* Versions in the tables that newer ones shadow, though those fall outside a scan's
	 * range: 11 is added again (a new added_ts), match 7 names another stock now. */
	sc_add(&sc, 1, 11, 9, NULL);
	sc_trade(&sc, 'Q', 2, 7, 0);
	sc_sync(&sc, "script after a flush");

	run_compact(r);
	sc_scans(&sc);
	run_restart(r);
	sc_scans(&sc);
	/* After a restart open orders live only in the tables until a message names them. */
	sc_cancel(&sc, 0, 0, 10);
	sc_exec(&sc, 'E', 2, B, 100, 10);
	sc_trade(&sc, 'B', 1, 5, 0);
	sc_action(&sc, EDGE_LOCATE, 'H');
	sc_replace(&sc, 1, 10, 14, 33);
	sc_sync(&sc, "script after a restart");
	run_restart(r);
	run_compact(r);
	run_restart(r);
	sc_scans(&sc);
	mctx.step = "script replay";
	struct mcheck c;
	run_mcheck(r, &c);
	check_replay(&c, 1, r->appended, UINT64_MAX);
	check_replay(&c, r->appended, r->appended, UINT64_MAX);
	check_replay(&c, r->appended + 1, r->appended, UINT64_MAX);
	run_close(r);
	run_verdict(r);
	run_teardown(r);
	free(r);
}

/* Options for the targeted tests: one memtable size, compaction on or off. */
static void fixed_options(struct run *r, struct sl_options *o, uint64_t memtable, int compaction)
{
	sl_options_init(o);
	o->data_dir = r->dir;
	o->flags = SL_OPEN_CREATE;
	o->accel = "cpu";
	o->memtable_bytes = memtable;
	o->wal_segment_bytes = 1 << 20;
	o->expected_orders = 4096;
	o->compaction = (uint32_t)compaction;
}

static void open_fixed(struct run *r, const struct sl_options *o)
{
	int rc = sl__db_open_os(o, fault_os_get(r->fo), &r->db);

	if (rc)
		mfail("sl_db_open: %s", sl_strerror(rc));
	r->bg = (int)o->compaction;
}

/* sl_db_wait_durable returns once the state reflects the sequence too (sluice.h), also while
 * the applier waits for the flush thread to make room (back-pressure, no error): a memtable
 * that the carried book nearly fills rotates at every batch, and the flushes fall behind. */
static void test_model_wait_durable_applies(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sl_options o;

	(void)state;
	assert_non_null(r);
	mctx.test = "model_wait_durable_applies";
	mctx.failed = 0;
	run_setup(r, quick ? 60000 : 200000, 64);
	fixed_options(r, &o, 256 << 10, 1);
	open_fixed(r, &o);
	while (r->appended < r->s.n) {
		struct sl_stats st;
		int rc;

		mctx.step = "sl_db_wait_durable after a large append";
		assert_int_equal(run_append(r, 20000), 0);
		mctx.seq = r->appended;
		watchdog_arm();
		rc = sl_db_wait_durable(r->db, r->appended, 30ll * 1000000000);
		if (rc)
			mfail("sl_db_wait_durable: %s", sl_strerror(rc));
		uint64_t applied = sl_db_applied_seq(r->db);
		assert_int_equal(sl_db_stats(r->db, &st), 0);
		if (applied != r->appended)
			mfail("sl_db_wait_durable(%" PRIu64
			      ") returned 0 with the state at %" PRIu64 " (rotate_waits %" PRIu64
			      ", flush_errors %" PRIu64 ")",
			      r->appended, applied, st.rotate_waits, st.flush_errors);
	}
	run_check(r, 1);
	run_close(r);
	run_verdict(r);
	run_teardown(r);
	free(r);
}

/* sl_db_flush right after an append, while the applier still works through it: it returns,
 * and the tables then hold everything applied when it was called. */
static void test_model_flush_right_after_append(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sl_options o;

	(void)state;
	assert_non_null(r);
	mctx.test = "model_flush_right_after_append";
	mctx.failed = 0;
	run_setup(r, quick ? 60000 : 200000, 64);
	fixed_options(r, &o, 64 << 20, 0); /* no rotation but the ones sl_db_flush asks for */
	open_fixed(r, &o);
	while (r->appended < r->s.n) {
		assert_int_equal(run_append(r, mrange(&r->rng, 1, 20000)), 0);
		run_flush(r, 0);
		if (mchance(&r->rng, 300))
			run_check(r, 0);
	}
	run_check(r, 1);
	run_close(r);
	run_verdict(r);
	run_teardown(r);
	free(r);
}

/* A full disk for tables: every .sst write fails with ENOSPC, every flush fails and is
 * retried, the state stalls behind four immutables (back-pressure), the log keeps everything.
 * Returns with the store in that state. */
static void stall_behind_enospc(struct run *r, struct sl_options *o)
{
	struct sl_stats st;
	int rc;

	run_setup(r, 60000, 64);
	fixed_options(r, o, 256 << 10, 1);
	fault_os_match(r->fo, ".sst");
	fault_os_fail(r->fo, FAULT_PWRITE, 1, -ENOSPC, 1);
	open_fixed(r, o);
	mctx.step = "appending while every table write fails";
	rc = run_append(r, r->s.n);
	if (rc)
		mfail("sl_db_append_messages: %s", sl_strerror(rc));
	rc = sl_db_wait_durable(r->db, r->appended, 30ll * 1000000000);
	if (rc)
		mfail("sl_db_wait_durable: %s", sl_strerror(rc));
	for (int i = 0; i < 500; i++) {
		assert_int_equal(sl_db_stats(r->db, &st), 0);
		if (st.flush_errors && st.rotate_waits)
			break;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	if (!st.flush_errors || !st.rotate_waits || st.applied_seq >= r->appended)
		mfail("the set-up did not stall behind failing flushes (flush_errors %" PRIu64
		      ", rotate_waits %" PRIu64 ", applied %" PRIu64 " of %" PRIu64 ")",
		      st.flush_errors, st.rotate_waits, st.applied_seq, r->appended);
	mctx.seq = r->appended;
}

/* Space is back: the retried flushes go through and the state catches up. */
static void space_again(struct run *r)
{
	uint64_t t0 = mono_ns();

	mctx.step = "the state catching up once there is space again";
	fault_os_reset(r->fo);
	watchdog_arm();
	while (sl_db_applied_seq(r->db) < r->appended) {
		if (mono_ns() - t0 > 30ull * 1000000000)
			mfail("the state stays at %" PRIu64 " of %" PRIu64
			      " 30 s after space came back",
			      sl_db_applied_seq(r->db), r->appended);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

/* sl_db_flush while no flush can succeed returns the flush's error (sluice.h: "0, SL_ERDONLY,
 * or the flush's error") instead of waiting for a flush that cannot come; once there is space
 * again, flushes and queries answer as the model does. */
static void test_model_flush_while_flushes_fail(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sl_options o;
	int rc;

	(void)state;
	assert_non_null(r);
	mctx.test = "model_flush_while_flushes_fail";
	mctx.failed = 0;
	stall_behind_enospc(r, &o);
	mctx.step = "sl_db_flush while every flush fails (ENOSPC)";
	watchdog_arm();
	rc = call_timed(sl_db_flush, r->db, "sl_db_flush while every flush fails (ENOSPC)");
	if (rc == 0)
		mfail("sl_db_flush returned 0 though no flush could succeed");
	space_again(r);
	run_flush(r, 1);
	run_check(r, 1);
	run_close(r);
	run_verdict(r);
	run_teardown(r);
	free(r);
}

/* Shutting down on a full disk (an operator stops the daemon) must still close - with whatever
 * error it reports - and a reopen once there is space again must answer as the model does. */
static void test_model_close_while_flushes_fail(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sl_options o;

	(void)state;
	assert_non_null(r);
	mctx.test = "model_close_while_flushes_fail";
	mctx.failed = 0;
	stall_behind_enospc(r, &o);
	mctx.step = "sl_db_close while every flush fails (ENOSPC) and the state is stalled";
	watchdog_arm();
	struct sl_db *db = r->db;
	r->db = NULL;
	call_timed(sl_db_close, db, "sl_db_close"); /* the flushes' error may come back */
	fault_os_reset(r->fo);
	mctx.step = "reopen with space again";
	open_fixed(r, &o);
	if (sl_db_last_seq(r->db) != r->appended)
		mfail("reopened with last %" PRIu64 ", want %" PRIu64, sl_db_last_seq(r->db),
		      r->appended);
	run_check(r, 1);
	run_restart(r);
	run_close(r);
	run_verdict(r);
	run_teardown(r);
	free(r);
}

/* The corners of the new API that need no workload. */
static void test_model_api_corners(void **state)
{
	char dir[64];
	struct sl_options o;
	struct sl_db *db = NULL;
	struct sl_scan *s = NULL;
	struct sl_order out[2];
	int rc[2], r;
	uint16_t loc[2] = { 1, 2 };
	uint64_t ref[2] = { 1, 2 };

	(void)state;
	mctx.test = "model_api_corners";
	assert_non_null(sl_test_mkdtemp(dir, sizeof(dir), "model"));
	sl_options_init(&o);
	o.data_dir = dir;
	o.flags = SL_OPEN_CREATE;
	o.accel = "cpu";
	o.expected_orders = 1024;
	assert_int_equal(sl_db_open(&o, &db), 0);

	r = sl_db_get_orders(db, 0, NULL, NULL, NULL, NULL);
	if (r != -ENOSYS) {
		assert_int_equal(r, 0);
		assert_int_equal(sl_db_get_orders(db, 2, NULL, ref, out, rc), -EINVAL);
		assert_int_equal(sl_db_get_orders(db, 2, loc, ref, NULL, rc), -EINVAL);
		assert_int_equal(sl_db_get_orders(db, 2, loc, ref, out, rc), 0);
		assert_int_equal(rc[0], SL_ENOTFOUND);
		assert_int_equal(rc[1], SL_ENOTFOUND);
	}
	r = sl_scan_open(db, 'Z', 1, 0, 0, &s);
	{
		assert_int_equal(r, -EINVAL);
		/* An empty store: both kinds end at once; the wrong next is -EINVAL. */
		assert_int_equal(sl_scan_open(db, SL_SCAN_ORDERS, 1, 0, 0, &s), 0);
		assert_int_equal(sl_scan_next_trade(s, &(struct sl_trade){ 0 }), -EINVAL);
		assert_int_equal(sl_scan_next_order(s, &out[0]), SL_EEND);
		sl_scan_close(s);
		assert_int_equal(sl_scan_open(db, SL_SCAN_TRADES, 1, 5, 4, &s), 0);
		assert_int_equal(sl_scan_next_order(s, &out[0]), -EINVAL);
		assert_int_equal(sl_scan_next_trade(s, &(struct sl_trade){ 0 }), SL_EEND);
		sl_scan_close(s);
	}
	sl_scan_close(NULL);
	r = sl_db_flush(db);
	assert_true(r == 0 || r == -ENOSYS);
	r = sl_db_compact(db);
	assert_true(r == 0 || r == -ENOSYS);
	assert_int_equal(sl_db_close(db), 0);

	o.flags = SL_OPEN_RDONLY;
	assert_int_equal(sl_db_open(&o, &db), 0);
	assert_int_equal(sl_db_flush(db), SL_ERDONLY);
	assert_int_equal(sl_db_compact(db), SL_ERDONLY);
	assert_int_equal(sl_db_close(db), 0);
	sl_test_rm_rf(dir);
}

int main(void)
{
	const char *s = getenv("SL_MODEL_SEED");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_api_corners),
		cmocka_unit_test(test_model_edge_script),
		cmocka_unit_test(test_model_wait_durable_applies),
		cmocka_unit_test(test_model_flush_right_after_append),
		cmocka_unit_test(test_model_flush_while_flushes_fail),
		cmocka_unit_test(test_model_close_while_flushes_fail),
		cmocka_unit_test(test_model_random_workload),
	};

	quick = getenv("SL_TEST_QUICK") && atoi(getenv("SL_TEST_QUICK"));
	longrun = getenv("SL_TEST_LONG") && atoi(getenv("SL_TEST_LONG"));
	mctx.verbose = getenv("SL_MODEL_VERBOSE") && atoi(getenv("SL_MODEL_VERBOSE"));
	mctx.seed = s && *s ? strtoull(s, NULL, 0) : 20240611;
	mwatch_secs = longrun ? 300 : 60;
	printf("test_model: seed %" PRIu64 " (SL_MODEL_SEED=N to change)%s\n", mctx.seed,
	       quick	 ? ", quick"
	       : longrun ? ", long"
			 : "");
	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
