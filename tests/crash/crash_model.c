/* crash_model.c - the model test under SIGKILL. A child opens the store (a small memtable, so
 * rotations, flushes and background compactions run all the time), appends the model
 * workload from where the store ends, now and then calls sl_db_flush or sl_db_compact, reports
 * every durable sequence it sees through a pipe, and is SIGKILLed at a random moment - or,
 * in the second test, while it is inside sl_db_compact. The parent then checks that sl_verify
 * finds no damage, that everything acknowledged durable came back, and that the recovered
 * store answers every query (every order, trade and stock, multi-gets, scans, replay from 1
 * and from random places) as the reference model fed exactly the recovered prefix does: after
 * a reopen every durable message is applied. Orders in a final state may be gone (the children
 * compact). The stream, the model and the checks are those of tests/unit/model.h.
 *
 * SL_TEST_QUICK=1: 3 rounds per test and a smaller workload; SL_TEST_LONG=1: 100 rounds.
 * SL_MODEL_SEED=N changes the workload and the parent's choices (fixed by default and printed;
 * the timing of a kill cannot be repeated exactly). SL_MODEL_VERBOSE=1 prints every round.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "model.h"
#include "sluice.h"
#include "testutil.h"

/* Reports on the pipe are 8-byte words: a durable sequence, or a marker (top bit set) with a
 * code and a payload. */
#define MARK		 (1ull << 63)
#define MARK_CODE(v)	 ((unsigned)((v) >> 56) & 0x7f)
#define MARK_ARG(v)	 ((v) & ((1ull << 56) - 1))
#define MARK_COMPACT	 1u /* entering sl_db_compact */
#define MARK_COMPACT_END 2u /* left it; payload: microseconds it took */
#define MARK_FLUSH	 3u
#define OPEN_TIMEOUT_MS	 60000

enum kill_mode { KILL_ANYWHERE, KILL_IN_COMPACTION };

struct plan {
	struct sl_options opt;
	uint32_t batch_min, batch_max;
	uint32_t wait_every;	 /* sl_db_wait_durable every this many batches (0: never) */
	uint32_t flush_permille; /* per batch */
	uint32_t compact_permille;
	uint32_t compact_after; /* KILL_IN_COMPACTION: compact after this many batches, and
				   every few batches after that */
	uint64_t seed;
};

struct crash {
	const char *name;
	enum kill_mode mode;
	struct mstream s;
	struct model m; /* fed exactly what the store recovered */
	char dir[64], data[128];
	uint64_t rng;
	int round;
	uint64_t prev;	     /* what the last round recovered */
	uint64_t compact_us; /* how long a child's sl_db_compact takes, as reported */
	/* For the summary. */
	uint64_t children, acked, recovered, resets, torn, in_compaction, compactions_seen,
		with_tables, lost_unacked;
};

static int rounds, quick, longrun;

/* ---- The child ------------------------------------------------------------------------------ */

static void sleep_us(uint64_t us)
{
	struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void report(int fd, uint64_t v)
{
	/* 8 bytes are below PIPE_BUF: a kill cannot tear the write. */
	ssize_t w = write(fd, &v, sizeof(v));

	(void)w;
}

static void child_fail(const char *what, int r, int code)
{
	fprintf(stderr, "crash_model child %d: %s: %s\n", (int)getpid(), what, sl_strerror(r));
	_exit(code);
}

static void child_compact(struct sl_db *db, int wfd)
{
	uint64_t t0 = mono_ns();
	int r;

	report(wfd, MARK | (uint64_t)MARK_COMPACT << 56);
	if ((r = sl_db_compact(db)) < 0 && r != -ENOSYS)
		child_fail("sl_db_compact", r, 20);
	report(wfd, MARK | (uint64_t)MARK_COMPACT_END << 56 | ((mono_ns() - t0) / 1000));
}

/* Append the stream from where the store ends until the parent's SIGKILL. */
static void child_main(const struct crash *c, const struct plan *p, int wfd)
{
	uint64_t rng = p->seed, reported, last, batches = 0;
	struct sl_msg *msgs = calloc(p->batch_max, sizeof(*msgs));
	struct sl_db *db = NULL;
	int r;

	if (!msgs)
		child_fail("calloc", -ENOMEM, 10);
	if ((r = sl_db_open(&p->opt, &db)))
		child_fail("sl_db_open", r, 11);
	last = sl_db_last_seq(db);
	reported = sl_db_durable_seq(db);
	report(wfd, reported); /* the first report: the open is done */
	if (last > c->s.n)
		child_fail("the store is ahead of the stream", SL_ECORRUPT, 12);
	while (last < c->s.n) {
		uint64_t n = mrange(&rng, p->batch_min, p->batch_max), got = 0, d;

		if (n > c->s.n - last)
			n = c->s.n - last;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t len;

			msgs[i].data = mstream_msg(&c->s, last + 1 + i, &len);
			msgs[i].len = (uint16_t)len;
			msgs[i].rx_ns = RX_BASE + last + 1 + i;
		}
		if ((r = sl_db_append_messages(db, msgs, (size_t)n, &got)))
			child_fail("sl_db_append_messages", r, 13);
		if (got != last + n)
			child_fail("sl_db_append_messages: wrong last sequence", SL_EORDER, 14);
		last = got;
		batches++;
		if (p->wait_every && batches % p->wait_every == 0 &&
		    (r = sl_db_wait_durable(db, last, -1)))
			child_fail("sl_db_wait_durable", r, 15);
		d = sl_db_durable_seq(db);
		if (d > last)
			child_fail("durable past the last appended", SL_EORDER, 16);
		if (d > reported)
			report(wfd, reported = d);
		if ((p->compact_after && batches >= p->compact_after &&
		     (batches - p->compact_after) % 4 == 0) ||
		    mchance(&rng, p->compact_permille))
			child_compact(db, wfd);
		if (mchance(&rng, p->flush_permille)) {
			report(wfd, MARK | (uint64_t)MARK_FLUSH << 56);
			/* Settled first (state included): sl_db_flush right after an append
			 * can hang, which test_model covers; here the kill is the point. */
			if ((r = sl_db_wait_durable(db, last, -1)))
				child_fail("sl_db_wait_durable", r, 17);
			while (sl_db_applied_seq(db) < last)
				sleep_us(100);
			if ((r = sl_db_flush(db)))
				child_fail("sl_db_flush", r, 17);
		}
	}
	/* All of the stream is in: make it durable, say so, compact, and wait for the kill. */
	if ((r = sl_db_wait_durable(db, last, -1)))
		child_fail("sl_db_wait_durable", r, 18);
	report(wfd, sl_db_durable_seq(db));
	if (p->compact_after)
		child_compact(db, wfd);
	for (;;)
		pause();
}

/* Settings for one child: commit policy, memtable size, batch sizes vary. */
static void plan_draw(struct crash *c, struct plan *p)
{
	static const uint64_t mts[] = { 256 << 10, 512 << 10, 1 << 20 };
	static const uint32_t waits[] = { 0, 1, 4, 16 };

	memset(p, 0, sizeof(*p));
	sl_options_init(&p->opt);
	p->opt.flags = SL_OPEN_CREATE | (mchance(&c->rng, 300) ? SL_OPEN_NO_SYNC : 0);
	p->opt.data_dir = c->data;
	p->opt.accel = "cpu";
	p->opt.wal_segment_bytes = 1 << 20;
	p->opt.wal_buffer_bytes = mchance(&c->rng, 500) ? 1 << 20 : 8 << 20;
	p->opt.commit_interval_us = mchance(&c->rng, 700) ? 0 : 500;
	p->opt.commit_max_bytes = mchance(&c->rng, 500) ? 64 << 10 : 4 << 20;
	p->opt.memtable_bytes = mts[mbelow(&c->rng, 3)];
	p->opt.expected_orders = mchance(&c->rng, 500) ? 4096 : 65536;
	p->opt.compaction = 1;
	if (mchance(&c->rng, 500)) {
		p->batch_min = 1;
		p->batch_max = 64;
	} else {
		p->batch_min = 64;
		p->batch_max = 4096;
	}
	p->wait_every = waits[mbelow(&c->rng, 4)];
	p->flush_permille = 10;
	p->compact_permille = c->mode == KILL_IN_COMPACTION ? 0 : 5;
	p->compact_after = c->mode == KILL_IN_COMPACTION ? (uint32_t)mrange(&c->rng, 5, 150) : 0;
	p->seed = mrnd(&c->rng);
}

/* ---- The parent ----------------------------------------------------------------------------- */

/* Take in one report: a durable sequence raises *ack; markers are counted. Returns its code
 * (0 for a sequence). */
static unsigned take_report(struct crash *c, uint64_t v, uint64_t *ack)
{
	if (!(v & MARK)) {
		if (v > *ack)
			*ack = v;
		return 0;
	}
	if (MARK_CODE(v) == MARK_COMPACT_END) {
		c->compactions_seen++;
		/* Kill times follow the longest compaction seen (up to a second). */
		if (MARK_ARG(v) > c->compact_us)
			c->compact_us = MARK_ARG(v) < 1000000 ? MARK_ARG(v) : 1000000;
	}
	return MARK_CODE(v);
}

/* Read reports until `until` (monotonic ns) or, when stop_at is nonzero, a marker with that
 * code. Returns 1 when the marker came. */
static int read_reports(struct crash *c, int fd, uint64_t until, unsigned stop_at, uint64_t *ack)
{
	for (;;) {
		uint64_t now = mono_ns(), v;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r;

		if (now >= until)
			return 0;
		r = poll(&pfd, 1, (int)((until - now) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		ssize_t got = read(fd, &v, sizeof(v));
		if (got <= 0)
			return 0; /* the child is gone; the caller finds out how */
		if (got != (ssize_t)sizeof(v))
			mfail("a short report from the child (%zd bytes)", got);
		if (take_report(c, v, ack) == stop_at && stop_at)
			return 1;
	}
}

/* Fork a child on plan p, kill it, and return the highest durable sequence it reported. */
static uint64_t child_run(struct crash *c, const struct plan *p)
{
	int fds[2], st = 0;
	uint64_t ack = 0, v;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(0);
		close(fds[0]);
		child_main(c, p, fds[1]);
		_exit(99);
	}
	close(fds[1]);
	c->children++;
	/* The first report says the open is done. */
	mctx.step = "waiting for the child's open";
	struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
	int pr;
	do
		pr = poll(&pfd, 1, OPEN_TIMEOUT_MS);
	while (pr < 0 && errno == EINTR);
	if (pr == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		mfail("the child did not open the store within %d ms", OPEN_TIMEOUT_MS);
	}
	if (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
		take_report(c, v, &ack);
	if (c->mode == KILL_IN_COMPACTION) {
		/* Wait for it to enter sl_db_compact, then kill it somewhere inside. */
		mctx.step = "waiting for the child's compaction";
		if (read_reports(c, fds[0], mono_ns() + 5000000000ull, MARK_COMPACT, &ack)) {
			c->in_compaction++;
			sleep_us(mbelow(&c->rng,
					(c->compact_us ? c->compact_us : 2000) * 3 / 2 + 1));
		}
	} else {
		read_reports(c, fds[0], mono_ns() + mrange(&c->rng, 1000, 200000) * 1000, 0, &ack);
	}
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	for (;;) {
		ssize_t got = read(fds[0], &v, sizeof(v));

		if (got <= 0)
			break;
		if (got != (ssize_t)sizeof(v))
			mfail("a short report from the child (%zd bytes)", got);
		take_report(c, v, &ack);
	}
	close(fds[0]);
	if (WIFEXITED(st))
		mfail("the child exited with status %d before the kill (see its stderr)",
		      WEXITSTATUS(st));
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		mfail("the child died of signal %d, not SIGKILL",
		      WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return ack;
}

/* After a kill: verify, recover, and compare everything with the model at the recovered
 * sequence. Returns that sequence. */
static uint64_t check_store(struct crash *c, uint64_t ack)
{
	char bad[4200] = "";
	uint64_t off = 0, records = 0, torn = 0, last;
	struct sl_options o;
	struct sl_stats st;
	struct sl_db *db = NULL;
	struct mcheck mc;
	int r;

	mctx.step = "sl_verify after the kill";
	mctx.seq = ack;
	watchdog_arm();
	r = sl_verify(c->data, bad, sizeof(bad), &off, &records, &torn);
	if (r)
		mfail("sl_verify: %s at %s offset %" PRIu64, sl_strerror(r), bad, off);
	c->torn += torn > 0;

	mctx.step = "recovery";
	sl_options_init(&o);
	o.data_dir = c->data;
	o.accel = "cpu";
	o.wal_segment_bytes = 1 << 20;
	o.expected_orders = 65536;
	o.compaction = 0; /* still while it is checked */
	r = sl_db_open(&o, &db);
	if (r)
		mfail("sl_db_open (recovery): %s", sl_strerror(r));
	last = sl_db_last_seq(db);
	mctx.seq = last;
	if (last < ack)
		mfail("acknowledged durable through %" PRIu64
		      " but recovered only through %" PRIu64,
		      ack, last);
	if (last < c->prev)
		mfail("recovered through %" PRIu64 ", less than the %" PRIu64
		      " of the round before",
		      last, c->prev);
	if (last > c->s.n)
		mfail("recovered through %" PRIu64 ", past the stream's %" PRIu64, last, c->s.n);
	if (sl_db_durable_seq(db) != last || sl_db_applied_seq(db) != last)
		mfail("after recovery last %" PRIu64 ", durable %" PRIu64 ", applied %" PRIu64,
		      last, sl_db_durable_seq(db), sl_db_applied_seq(db));
	assert_int_equal(sl_db_stats(db, &st), 0);
	if (st.checkpoint_seq)
		c->with_tables++;

	mctx.step = "checking the recovered store against the model";
	model_advance(&c->m, &c->s, last);
	mc = (struct mcheck){ .db = db,
			      .m = &c->m,
			      .s = &c->s,
			      .pol = { .gone_upto = 0, .maybe_upto = UINT64_MAX },
			      .rng = &c->rng,
			      .stocks = 64 };
	check_all(&mc);
	for (int i = 0; i < 20; i++)
		check_scan_random(&mc);
	for (int i = 0; i < 4; i++)
		check_replay_random(&mc, last, 20000);
	check_replay(&mc, 1, last, UINT64_MAX);
	for (int i = 0; i < 4; i++)
		check_multiget_random(&mc);

	mctx.step = "closing the recovered store";
	r = sl_db_close(db);
	if (r)
		mfail("sl_db_close: %s", sl_strerror(r));
	if (ack > c->prev)
		c->acked += ack - c->prev;
	c->recovered += last - c->prev;
	return last;
}

static void crash_rounds(struct crash *c)
{
	uint64_t t0 = mono_ns();

	for (c->round = 1; c->round <= rounds; c->round++) {
		struct plan p;
		uint64_t ack, last;

		/* A store holding the whole stream starts over. */
		if (c->prev == c->s.n) {
			sl_test_rm_rf(c->data);
			model_reset(&c->m);
			c->prev = 0;
			c->resets++;
		}
		plan_draw(c, &p);
		mctx.step = "running a child";
		mctx.seq = c->prev;
		watchdog_arm();
		ack = child_run(c, &p);
		last = check_store(c, ack);
		if (mctx.verbose)
			printf("  %s round %3d: acked %7" PRIu64 " recovered %7" PRIu64
			       " (+%" PRIu64 ")\n",
			       c->name, c->round, ack, last, last - c->prev);
		c->prev = last;
	}
	printf("crash_model: %-22s %3d rounds, %3" PRIu64 " children, acked %8" PRIu64
	       ", recovered %8" PRIu64 ", %" PRIu64 " torn tails, %" PRIu64 " rounds with "
	       "tables, %" PRIu64 " compactions completed in children, %" PRIu64
	       " kills inside sl_db_compact, %" PRIu64 " resets, %.1f s\n",
	       c->name, rounds, c->children, c->acked, c->recovered, c->torn, c->with_tables,
	       c->compactions_seen, c->in_compaction, c->resets, (double)(mono_ns() - t0) / 1e9);
}

static int setup(void **state, const char *name, enum kill_mode mode)
{
	struct crash *c = calloc(1, sizeof(*c));
	struct wl_config wc = { .seed = mctx.seed,
				.feed_messages = longrun ? 1000000
						 : quick ? 100000
							 : 300000,
				.stocks = 64,
				.inject_permille = 30 };

	if (!c)
		return -1;
	c->name = name;
	c->mode = mode;
	c->rng = mctx.seed ^ (mode + 1) * 0x9e3779b97f4a7c15ull;
	workload_build(&wc, &c->s);
	model_init(&c->m);
	if (!sl_test_mkdtemp(c->dir, sizeof(c->dir), "crash_model"))
		return -1;
	snprintf(c->data, sizeof(c->data), "%s/db", c->dir);
	snprintf(mctx.dir, sizeof(mctx.dir), "%s", c->dir);
	mctx.test = name;
	mctx.failed = 0;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct crash *c = *state;

	alarm(0);
	if (mctx.failed)
		fprintf(stderr, "crash_model: %s: data kept in %s\n", c->name, c->dir);
	else
		sl_test_rm_rf(c->dir);
	mctx.dir[0] = 0;
	model_release(&c->m);
	mstream_release(&c->s);
	free(c);
	return 0;
}

static int setup_anywhere(void **state)
{
	return setup(state, "model_kill_anywhere", KILL_ANYWHERE);
}

static int setup_in_compaction(void **state)
{
	return setup(state, "model_kill_in_compaction", KILL_IN_COMPACTION);
}

/* Killed 1-200 ms after the open, wherever the child is: appending, rotating, flushing,
 * compacting in the background, in sl_db_flush or sl_db_compact. */
static void test_model_kill_anywhere(void **state)
{
	crash_rounds(*state);
}

/* Killed inside a call of sl_db_compact (a full compaction, with background ones around). */
static void test_model_kill_in_compaction(void **state)
{
	crash_rounds(*state);
}

int main(void)
{
	const char *s = getenv("SL_MODEL_SEED");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_model_kill_anywhere, setup_anywhere, teardown),
		cmocka_unit_test_setup_teardown(test_model_kill_in_compaction, setup_in_compaction,
						teardown),
	};

	quick = getenv("SL_TEST_QUICK") && atoi(getenv("SL_TEST_QUICK"));
	longrun = getenv("SL_TEST_LONG") && atoi(getenv("SL_TEST_LONG"));
	rounds = longrun ? 100 : quick ? 3 : 10;
	mctx.verbose = getenv("SL_MODEL_VERBOSE") && atoi(getenv("SL_MODEL_VERBOSE"));
	mctx.seed = s && *s ? strtoull(s, NULL, 0) : 20240611;
	mwatch_secs = 300;
	printf("crash_model: seed %" PRIu64 " (SL_MODEL_SEED=N to change), %d rounds per test\n",
	       mctx.seed, rounds);
	/* A child killed while the parent reads its pipe must not take the parent down. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("crash_model", tests, NULL, NULL);
}
