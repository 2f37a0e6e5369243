/* crash_ingest.c - the crash test of ingest. A child process opens the store, continues a
 * deterministic ITCH 5.0 feed from where the store ends, reports every durable sequence it sees
 * through a pipe, and is SIGKILLed at a random moment. The parent then checks that sl_verify
 * finds no corruption (a torn tail is fine), that everything acknowledged as durable survived,
 * that the log is exactly the feed's messages 1..last byte for byte (receive times included)
 * with no gap or duplicate, and that the recovered state equals that of a reference store the
 * parent fed the same messages. Variants: appended messages; MoldUDP64 packets from two
 * packings of the feed (so resuming often starts inside a packet); heavy load with large
 * commits; and a kill during the recovery of a torn tail (made by hand, from wal.h's record
 * layout, when the kill before left none: a SIGKILL tears a write only inside a pwrite).
 * Links the whole library; of the internal headers it uses feed.h and itch.h only.
 *
 * SL_TEST_QUICK=1: 10 rounds per test, a smaller feed; SL_TEST_LONG=1: 200 rounds.
 * SL_CRASH_SEED=N repeats a run's choices (kill delays, batch sizes, commit settings; the
 * timing of a kill cannot be repeated exactly); the seed is printed first. SL_CRASH_VERBOSE=1
 * prints every round; SL_CRASH_ONLY=pattern runs the matching tests only. A failing test keeps
 * its directory and names it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "feed.h"
#include "itch.h"
#include "sluice.h"
#include "testutil.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
/* Receive times carry where a message came from, so the parent can check them exactly:
 * RX_BASE + seq for appended messages, RX_BASE + (table << 40) + the first sequence of the
 * packet for packets. */
#define RX_BASE	       (1700000000ull * 1000000000ull)
#define RX_TABLE_SHIFT 40
#define FEED_SEED      20240501u
/* How long a child may take to open the store before the parent calls it hung. */
#define OPEN_TIMEOUT_MS 60000
/* Orders and trades spot-checked after each recovery. */
#define SPOT_CHECKS 12

/* ---- The deterministic feed, generated once ------------------------------------------------ */

/* Messages 1..n of the feed, back to back: message k is bytes[off[k - 1], off[k]). Children
 * inherit it through fork, so resuming at any sequence costs nothing: message k is always the
 * same bytes, whichever process appends it and however often. */
struct stream {
	uint64_t n;
	uint8_t *bytes;
	uint64_t *off; /* n + 1 entries */
};

/* The same feed packed into MoldUDP64 packets of at most max_packet bytes. Two tables with
 * different sizes cut the stream at different places: a store written through one ends in the
 * middle of a packet of the other, which is the resume case the tracker must handle. */
struct ptable {
	uint32_t max_packet;
	size_t n;
	uint8_t *bytes;
	uint64_t *off;	     /* n + 1 entries */
	uint64_t *first_seq; /* n entries */
	uint16_t *count;     /* n entries */
};

#define NTABLES 2
static const uint32_t table_max_packet[NTABLES] = { 1400, 300 };

static struct stream feed;
static struct ptable tables[NTABLES];
static int quick, rounds, verbose;
static uint64_t master_seed;

static const uint8_t *msg_at(uint64_t k, uint32_t *len)
{
	*len = (uint32_t)(feed.off[k] - feed.off[k - 1]);
	return feed.bytes + feed.off[k - 1];
}

static struct sl_feed *feed_open(uint32_t max_packet)
{
	struct sl_feed_config c;
	struct sl_feed *f = NULL;

	sl__feed_config_init(&c);
	c.seed = FEED_SEED;
	c.messages = feed.n;
	c.max_packet = max_packet;
	assert_int_equal(sl__feed_new(&c, &f), 0);
	return f;
}

static void stream_build(uint64_t n)
{
	struct sl_feed *f;
	size_t cap = (size_t)n * 40;
	uint64_t k;

	feed.n = n;
	feed.bytes = malloc(cap);
	feed.off = malloc((n + 1) * sizeof(*feed.off));
	assert_non_null(feed.bytes);
	assert_non_null(feed.off);
	f = feed_open(1400);
	feed.off[0] = 0;
	for (k = 1; k <= n; k++) {
		uint64_t at = feed.off[k - 1];
		int len;

		if (at + SL_ITCH_MAX_LEN > cap) {
			cap *= 2;
			feed.bytes = realloc(feed.bytes, cap);
			assert_non_null(feed.bytes);
		}
		len = sl__feed_next_msg(f, feed.bytes + at, cap - at);
		assert_true(len > 0);
		feed.off[k] = at + (uint64_t)len;
	}
	assert_int_equal(sl__feed_next_msg(f, feed.bytes, cap), 0);
	sl__feed_free(f);
}

/* Pack the feed and check that the packets carry exactly the messages of the stream. */
static void ptable_build(struct ptable *t, uint32_t max_packet)
{
	struct sl_feed *f = feed_open(max_packet);
	size_t cap_pk = 1024, cap_b = (size_t)feed.off[feed.n] + MIB;
	uint64_t expect_seq = 1;

	memset(t, 0, sizeof(*t));
	t->max_packet = max_packet;
	t->bytes = malloc(cap_b);
	t->off = malloc((cap_pk + 1) * sizeof(*t->off));
	t->first_seq = malloc(cap_pk * sizeof(*t->first_seq));
	t->count = malloc(cap_pk * sizeof(*t->count));
	assert_true(t->bytes && t->off && t->first_seq && t->count);
	t->off[0] = 0;
	for (;;) {
		uint64_t first = 0;
		uint16_t count = 0;
		int len;

		if (t->n == cap_pk) {
			cap_pk *= 2;
			t->off = realloc(t->off, (cap_pk + 1) * sizeof(*t->off));
			t->first_seq = realloc(t->first_seq, cap_pk * sizeof(*t->first_seq));
			t->count = realloc(t->count, cap_pk * sizeof(*t->count));
			assert_true(t->off && t->first_seq && t->count);
		}
		if (t->off[t->n] + max_packet > cap_b) {
			cap_b *= 2;
			t->bytes = realloc(t->bytes, cap_b);
			assert_non_null(t->bytes);
		}
		len = sl__feed_next_packet(f, t->bytes + t->off[t->n], max_packet, &first, &count);
		assert_true(len >= 0);
		if (len == 0)
			break;
		assert_int_equal(first, expect_seq);
		assert_true(count > 0);
		/* The messages inside, length-prefixed, must be the stream's bytes. */
		const uint8_t *p = t->bytes + t->off[t->n] + SL_MOLD_HDR_LEN;
		for (uint16_t i = 0; i < count; i++) {
			uint32_t mlen, plen = (uint32_t)p[0] << 8 | p[1];
			const uint8_t *m = msg_at(first + i, &mlen);

			assert_int_equal(plen, mlen);
			assert_memory_equal(p + 2, m, mlen);
			p += 2 + plen;
		}
		t->first_seq[t->n] = first;
		t->count[t->n] = count;
		t->off[t->n + 1] = t->off[t->n] + (uint64_t)len;
		t->n++;
		expect_seq = first + count;
	}
	assert_int_equal(expect_seq, feed.n + 1);
	sl__feed_free(f);
}

/* Index of the packet of t that carries seq (1 <= seq <= feed.n). */
static size_t ptable_find(const struct ptable *t, uint64_t seq)
{
	size_t lo = 0, hi = t->n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->first_seq[mid] <= seq)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void ptable_release(struct ptable *t)
{
	free(t->bytes);
	free(t->off);
	free(t->first_seq);
	free(t->count);
	memset(t, 0, sizeof(*t));
}

/* ---- Small helpers -------------------------------------------------------------------------- */

/* splitmix64: the parent's choices and each child's come from it, seeded from master_seed. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rnd_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return lo + rnd_next(s) % (hi - lo + 1);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
			       .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void rm_rf(const char *path)
{
	sl_test_rm_rf(path);
}

/* ---- One test's state ----------------------------------------------------------------------- */

/* What the parent knows of the store. The reference is a second store, in another directory,
 * opened without fdatasync and fed messages 1..applied straight through sl_db_append_messages
 * by the parent itself: the crashed store's state must equal it. by_type counts the feed's
 * message types from the raw bytes. */
struct crash {
	const char *name;
	char dir[256];
	char data[300];
	char refdir[300];
	uint64_t rng;
	int round;
	int failed;

	uint64_t applied;
	uint64_t by_type[128];

	/* Totals for the summary. */
	uint64_t acked, recovered, torn_rounds, torn_bytes, resets, children;
	uint64_t torn_pending, killed_in_open; /* kills in recovery: torn tails, and kills */
	uint64_t torn_made;		       /* torn tails written by hand */
	uint64_t mid_packet;		       /* packet rounds that resumed inside a packet */
	uint64_t flushed_rounds;	       /* rounds whose store had tables */
	int log_only;			       /* no small memtables: the torn-tail-by-hand and
						  recovery-kill rounds reason about the log alone */
	uint64_t open_ns;		       /* the parent's last recovery took this long */
	uint64_t seg;			       /* wal_segment_bytes of every open */
	uint64_t ns;
};

static struct crash *cur; /* for messages from expect() */

static struct totals {
	uint64_t rounds, acked, recovered, torn_rounds, torn_bytes, resets, children;
} tot;

/* Fail the test with the seed, test and round in the message; keep the directory. */
static void expect(int ok, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cur)
		cur->failed = 1;
	fail_msg("%s round %d (seed %" PRIu64 ", data dir %s kept): %s", cur ? cur->name : "?",
		 cur ? cur->round : -1, master_seed, cur ? cur->data : "?", msg);
}

static void ref_reset(struct crash *c)
{
	rm_rf(c->refdir);
	c->applied = 0;
	memset(c->by_type, 0, sizeof(c->by_type));
}

/* Open the reference and bring it up to message n (n only grows between resets). The caller
 * closes it before the next fork: the parent never forks with a store's threads running. */
static struct sl_db *ref_open(struct crash *c, uint64_t n)
{
	enum { CHUNK = 4096 };
	static struct sl_msg msgs[CHUNK];
	struct sl_options o;
	struct sl_db *ref = NULL;
	int r;

	sl_options_init(&o);
	o.flags = SL_OPEN_CREATE | SL_OPEN_NO_SYNC;
	o.data_dir = c->refdir;
	o.wal_segment_bytes = 1 * MIB;
	o.accel = "cpu";
	r = sl_db_open(&o, &ref);
	expect(r == 0, "opening the reference store: %s", sl_strerror(r));
	expect(sl_db_last_seq(ref) == c->applied,
	       "the reference store has %" PRIu64 ", want %" PRIu64, sl_db_last_seq(ref),
	       c->applied);
	while (c->applied < n) {
		uint64_t k = c->applied, got = 0;
		size_t i = 0;

		for (; i < CHUNK && k < n; i++) {
			uint32_t len;

			k++;
			msgs[i].data = msg_at(k, &len);
			msgs[i].len = (uint16_t)len;
			msgs[i].rx_ns = RX_BASE + k;
			c->by_type[((const uint8_t *)msgs[i].data)[0] & 127]++;
		}
		r = sl_db_append_messages(ref, msgs, i, &got);
		expect(r == 0 && got == k, "appending to the reference: %s", sl_strerror(r));
		c->applied = k;
	}
	/* Everything committed before the close, so the close has nothing left to write. */
	r = sl_db_wait_durable(ref, n, -1);
	expect(r == 0, "reference wait_durable: %s", sl_strerror(r));
	return ref;
}

static int setup_crash(void **state, const char *name)
{
	struct crash *c = calloc(1, sizeof(*c));
	const char *tmp = getenv("TMPDIR");

	if (!c)
		return -1;
	c->name = name;
	snprintf(c->dir, sizeof(c->dir), "%s/sluice-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(c->dir)) {
		free(c);
		return -1;
	}
	snprintf(c->data, sizeof(c->data), "%s/db", c->dir);
	snprintf(c->refdir, sizeof(c->refdir), "%s/ref", c->dir);
	/* Each test draws from its own stream of the master seed. */
	c->rng = master_seed ^ (uint64_t)strlen(name) * 0x100000001b3ull;
	for (const char *p = name; *p; p++)
		c->rng = (c->rng ^ (uint8_t)*p) * 0x100000001b3ull;
	*state = c;
	cur = c;
	return 0;
}

static int teardown_crash(void **state)
{
	struct crash *c = *state;

	if (c->failed)
		fprintf(stderr, "crash_ingest: %s: data kept in %s\n", c->name, c->dir);
	else
		rm_rf(c->dir);
	cur = NULL;
	free(c);
	return 0;
}

/* ---- The child ------------------------------------------------------------------------------ */

struct plan {
	int table; /* -1: append messages; else append packets of tables[table] */
	uint32_t batch_min, batch_max; /* messages or packets per append call */
	uint32_t wait_every; /* sl_db_wait_durable after every this many batches (0: never) */
	uint64_t seed;
	struct sl_options opt;
};

static void report(int fd, uint64_t v)
{
	/* 8 bytes are below PIPE_BUF: the write is atomic, a kill cannot tear it. */
	ssize_t w = write(fd, &v, sizeof(v));

	(void)w;
}

static void child_fail(const char *what, int r, int code)
{
	fprintf(stderr, "crash_ingest child %d: %s: %s\n", (int)getpid(), what, sl_strerror(r));
	_exit(code);
}

/* Append the feed from where the store ends, in batches, reporting the durable sequence after
 * each one, until the parent's SIGKILL. A child that runs out of feed waits for it. */
static void child_main(const struct plan *p, int wfd)
{
	uint64_t rng = p->seed;
	struct sl_db *db = NULL;
	struct sl_msg *msgs = NULL;
	struct sl_packet *pkts = NULL;
	uint64_t reported = 0, last, batches = 0;
	int r;

	r = sl_db_open(&p->opt, &db);
	if (r)
		child_fail("sl_db_open", r, 10);
	last = sl_db_last_seq(db);
	reported = sl_db_durable_seq(db);
	/* The first report also tells the parent the open is done. */
	report(wfd, reported);
	if (last > feed.n)
		child_fail("store is ahead of the feed", SL_ECORRUPT, 11);
	if (p->table < 0)
		msgs = calloc(p->batch_max, sizeof(*msgs));
	else
		pkts = calloc(p->batch_max, sizeof(*pkts));
	if (!msgs && !pkts)
		child_fail("calloc", -ENOMEM, 12);

	const struct ptable *t = p->table >= 0 ? &tables[p->table] : NULL;
	/* Resume: the first packet that carries last + 1 (a partly covered one is fine, the
	 * tracker drops the duplicate part). */
	size_t pk = t && last < feed.n ? ptable_find(t, last + 1) : 0;
	while (last < feed.n) {
		uint32_t n = (uint32_t)rnd_range(&rng, p->batch_min, p->batch_max);
		uint64_t want;

		if (!t) {
			if (n > feed.n - last)
				n = (uint32_t)(feed.n - last);
			for (uint32_t i = 0; i < n; i++) {
				uint32_t len;

				msgs[i].data = msg_at(last + 1 + i, &len);
				msgs[i].len = (uint16_t)len;
				msgs[i].rx_ns = RX_BASE + last + 1 + i;
			}
			want = last + n;
			uint64_t got = 0;
			if ((r = sl_db_append_messages(db, msgs, n, &got)) < 0)
				child_fail("sl_db_append_messages", r, 13);
			if (got != want)
				child_fail("sl_db_append_messages: wrong last sequence", SL_EORDER,
					   14);
		} else {
			if (n > t->n - pk)
				n = (uint32_t)(t->n - pk);
			for (uint32_t i = 0; i < n; i++) {
				pkts[i].data = t->bytes + t->off[pk + i];
				pkts[i].len = (uint32_t)(t->off[pk + i + 1] - t->off[pk + i]);
				pkts[i].rx_ns = RX_BASE + ((uint64_t)p->table << RX_TABLE_SHIFT) +
						t->first_seq[pk + i];
			}
			pk += n;
			want = t->first_seq[pk - 1] + t->count[pk - 1] - 1;
			if ((r = sl_db_append_packets(db, pkts, n)) < 0)
				child_fail("sl_db_append_packets", r, 15);
			if (sl_db_last_seq(db) != want)
				child_fail("sl_db_append_packets: wrong last sequence", SL_EGAP,
					   16);
		}
		last = want;
		batches++;
		if (p->wait_every && batches % p->wait_every == 0 &&
		    (r = sl_db_wait_durable(db, last, -1)) < 0)
			child_fail("sl_db_wait_durable", r, 17);
		uint64_t d = sl_db_durable_seq(db);
		if (d > last)
			child_fail("durable sequence past the last appended", SL_EORDER, 18);
		if (d > reported) {
			report(wfd, d);
			reported = d;
		}
	}
	/* The whole feed is in: make it durable, say so, and wait to be killed. */
	if ((r = sl_db_wait_durable(db, last, -1)) < 0)
		child_fail("sl_db_wait_durable", r, 19);
	report(wfd, sl_db_durable_seq(db));
	for (;;)
		pause();
}

/* Settings drawn per child: the commit policy varies, the segment size stays that of the
 * test (the store's segments were preallocated at that size). */
static void plan_draw(struct crash *c, struct plan *p, int table, int heavy, uint64_t seg)
{
	static const uint32_t intervals[] = { 0, 0, 100, 2000 };
	static const uint32_t max_bytes[] = { 4 * MIB, 64 * KIB, 512 * KIB };
	static const uint64_t buf_light[] = { 256 * KIB, 2 * MIB, 16 * MIB };
	static const uint64_t buf_heavy[] = { 8 * MIB, 32 * MIB, 64 * MIB };
	static const uint32_t waits[] = { 0, 1, 4, 16 };

	memset(p, 0, sizeof(*p));
	sl_options_init(&p->opt);
	p->opt.flags = SL_OPEN_CREATE;
	p->opt.data_dir = c->data;
	p->opt.wal_segment_bytes = seg;
	p->opt.accel = "cpu";
	p->opt.commit_interval_us = intervals[rnd_next(&c->rng) % 4];
	/* Two times in three a small memtable, so children are killed around rotations,
	 * flushes, manifest edits and log truncation too. */
	static const uint64_t memtables[] = { 0, 256 * KIB, 1 * MIB };
	uint64_t mt = memtables[rnd_next(&c->rng) % 3];
	if (mt && !c->log_only)
		p->opt.memtable_bytes = mt;
	if (heavy) {
		p->opt.commit_max_bytes = 16 * MIB;
		p->opt.wal_buffer_bytes = buf_heavy[rnd_next(&c->rng) % 3];
		/* Half the time without fdatasync: the committer then spends its time in pwrite
		 * of megabytes, where a kill tears the write (the kernel stops a write at a page
		 * when a fatal signal is pending), which is how torn tails come about. A process
		 * kill loses no page cache, so what such a child reports durable must still be
		 * there. */
		if (rnd_next(&c->rng) % 2)
			p->opt.flags |= SL_OPEN_NO_SYNC;
		p->batch_min = table < 0 ? 2048 : 64;
		p->batch_max = table < 0 ? 16384 : 512;
		p->wait_every = 0;
	} else {
		p->opt.commit_max_bytes = max_bytes[rnd_next(&c->rng) % 3];
		p->opt.wal_buffer_bytes = buf_light[rnd_next(&c->rng) % 3];
		p->batch_min = 1;
		p->batch_max = table < 0 ? 256 : 8;
		p->wait_every = waits[rnd_next(&c->rng) % 4];
	}
	p->table = table;
	p->seed = rnd_next(&c->rng);
}

/* Fork a child on plan p; kill it delay_us after it reports the open done (after_open) or after
 * the fork; return the highest durable sequence it reported. *opened: whether it finished
 * sl_db_open before the kill. */
static uint64_t child_run(struct crash *c, const struct plan *p, uint64_t delay_us, int after_open,
			  int *opened)
{
	int fds[2], st = 0;
	uint64_t ack = 0, v;
	pid_t pid;

	*opened = 0;

	assert_int_equal(pipe(fds), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_main(p, fds[1]);
		_exit(99);
	}
	close(fds[1]);
	c->children++;
	if (after_open) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		int r;

		do
			r = poll(&pfd, 1, OPEN_TIMEOUT_MS);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			expect(0, "child did not open the store within %d ms", OPEN_TIMEOUT_MS);
		}
		if (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
			*opened = 1;
			ack = v > ack ? v : ack;
		}
	}
	sleep_us(delay_us);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* Everything it managed to report before it died. */
	for (;;) {
		ssize_t got = read(fds[0], &v, sizeof(v));

		if (got <= 0)
			break;
		expect(got == (ssize_t)sizeof(v), "short report from the child (%zd bytes)", got);
		*opened = 1;
		if (v > ack)
			ack = v;
	}
	close(fds[0]);
	if (WIFEXITED(st))
		expect(0, "child exited with status %d before the kill (see its stderr)",
		       WEXITSTATUS(st));
	expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child died of signal %d, not SIGKILL",
	       WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return ack;
}

/* ---- The parent's checks -------------------------------------------------------------------- */

/* The receive time a message must carry, from how it was appended. */
static void check_rx(uint64_t seq, uint64_t rx)
{
	uint64_t v = rx - RX_BASE;

	expect(rx >= RX_BASE, "seq %" PRIu64 ": receive time %" PRIu64 " was not ours", seq, rx);
	if (v == seq)
		return; /* appended as a message */
	uint64_t tid = v >> RX_TABLE_SHIFT, first = v & ((1ull << RX_TABLE_SHIFT) - 1);
	expect(tid < NTABLES, "seq %" PRIu64 ": receive time %" PRIu64 " names no packet table",
	       seq, rx);
	const struct ptable *t = &tables[tid];
	size_t i = ptable_find(t, seq);
	expect(t->first_seq[i] == first,
	       "seq %" PRIu64 ": receive time of the packet at %" PRIu64 ", but it came in the "
	       "packet at %" PRIu64 " of table %" PRIu64,
	       seq, first, t->first_seq[i], tid);
}

/* Every event from 1 on: exactly the feed's message for its sequence, contiguous, through
 * last. */
static void check_log(struct sl_db *db, uint64_t last)
{
	struct sl_iter *it = NULL;
	struct sl_event ev;
	uint64_t k = 0;
	int r;

	r = sl_iter_open(db, 1, &it);
	expect(r == 0, "sl_iter_open: %s", sl_strerror(r));
	for (;;) {
		r = sl_iter_next(it, &ev);
		if (r == SL_EEND)
			break;
		expect(r == 0, "sl_iter_next after seq %" PRIu64 ": %s", k, sl_strerror(r));
		k++;
		expect(ev.seq == k, "expected seq %" PRIu64 ", the log has %" PRIu64 " (%s)", k,
		       ev.seq, ev.seq < k ? "duplicate" : "gap");
		expect(ev.kind == SL_EVENT_MESSAGE, "seq %" PRIu64 ": event kind %u", k, ev.kind);
		expect(k <= feed.n, "seq %" PRIu64 " is past the end of the feed", k);
		uint32_t len;
		const uint8_t *m = msg_at(k, &len);
		expect(ev.len == len && memcmp(ev.data, m, len) == 0,
		       "seq %" PRIu64 ": bytes differ from the feed (len %u, want %u)", k, ev.len,
		       len);
		check_rx(k, ev.rx_ns);
	}
	sl_iter_close(it);
	expect(k == last, "the log iterates to %" PRIu64 " but the store says last %" PRIu64, k,
	       last);
}

static void check_order_equal(const struct sl_order *a, const struct sl_order *b, uint64_t seq)
{
	expect(a->locate == b->locate && a->ref == b->ref && a->side == b->side &&
		       a->status == b->status && !memcmp(a->stock, b->stock, sizeof(a->stock)) &&
		       !memcmp(a->mpid, b->mpid, sizeof(a->mpid)) && a->price == b->price &&
		       a->shares == b->shares && a->orig_shares == b->orig_shares &&
		       a->executed_shares == b->executed_shares &&
		       a->cancelled_shares == b->cancelled_shares &&
		       a->replaced_by == b->replaced_by && a->replaces == b->replaces &&
		       a->added_ts == b->added_ts && a->updated_ts == b->updated_ts &&
		       a->added_seq == b->added_seq && a->updated_seq == b->updated_seq,
	       "order %" PRIu64 " (added at seq %" PRIu64 ") differs from the reference "
	       "(status %d/%d, shares %u/%u, updated_seq %" PRIu64 "/%" PRIu64 ")",
	       a->ref, seq, a->status, b->status, a->shares, b->shares, a->updated_seq,
	       b->updated_seq);
}

/* A symbol as the library returns it (NUL terminated; sluice.h says space padded, the
 * memtable trims the padding: accept either) against its 8 wire bytes. */
static int sym_eq(const char *got, const char wire[8])
{
	size_t n = strnlen(got, 8);

	if (memcmp(got, wire, n))
		return 0;
	for (size_t i = n; i < 8; i++)
		if (wire[i] != ' ')
			return 0;
	return 1;
}

/* Orders added and trades made at random places in 1..last: present, as the message says, and
 * equal to the reference state. */
static void spot_check(struct crash *c, struct sl_db *db, struct sl_db *ref, uint64_t last)
{
	for (int i = 0; i < SPOT_CHECKS && last; i++) {
		uint64_t k = rnd_range(&c->rng, 1, last);

		for (; k <= last; k++) {
			struct sl_itch_msg m;
			uint32_t len;
			const uint8_t *p = msg_at(k, &len);

			if (p[0] != 'A' && p[0] != 'F' && p[0] != 'E' && p[0] != 'C' && p[0] != 'P')
				continue;
			assert_int_equal(sl__itch_decode(p, len, &m), 0);
			if (p[0] == 'A' || p[0] == 'F') {
				struct sl_order o = { 0 }, ro = { 0 };
				int r = sl_db_get_order(db, m.locate, m.u.add_order.ref, &o);
				int rr = sl_db_get_order(ref, m.locate, m.u.add_order.ref, &ro);

				/* An order in a final state may be gone: compaction drops those at
				 * the bottom level (the event stream keeps their history). */
				if (r == SL_ENOTFOUND && rr == 0 && ro.status != SL_ORDER_OPEN)
					break;
				expect(r == 0, "order %" PRIu64 " added at seq %" PRIu64 ": %s",
				       m.u.add_order.ref, k, sl_strerror(r));
				expect(o.added_seq == k && o.ref == m.u.add_order.ref &&
					       o.locate == m.locate &&
					       o.side == m.u.add_order.side &&
					       o.price == m.u.add_order.price &&
					       o.orig_shares == m.u.add_order.shares &&
					       sym_eq(o.stock, m.u.add_order.stock),
				       "order %" PRIu64 " does not match its add at seq %" PRIu64,
				       o.ref, k);
				expect(rr == 0, "reference order %" PRIu64 ": %s", m.u.add_order.ref,
				       sl_strerror(rr));
				check_order_equal(&o, &ro, k);
			} else {
				struct sl_trade tr = { 0 }, rt = { 0 };
				uint64_t match = p[0] == 'P' ? m.u.trade.match : m.u.executed.match;
				int r = sl_db_get_trade(db, match, &tr);

				expect(r == 0 && tr.seq == k && tr.kind == (char)p[0],
				       "trade %" PRIu64 " at seq %" PRIu64 ": %s (seq %" PRIu64 ")",
				       match, k, sl_strerror(r), r == 0 ? tr.seq : 0);
				r = sl_db_get_trade(ref, match, &rt);
				expect(r == 0 && rt.locate == tr.locate && rt.kind == tr.kind &&
					       rt.side == tr.side && rt.ref == tr.ref &&
					       !strcmp(rt.stock, tr.stock) &&
					       rt.printable == tr.printable &&
					       rt.broken == tr.broken && rt.shares == tr.shares &&
					       rt.price == tr.price && rt.ts == tr.ts &&
					       rt.seq == tr.seq,
				       "trade %" PRIu64 " at seq %" PRIu64
				       " differs from the reference",
				       match, k);
			}
			break;
		}
	}
}

/* After a kill: verify, recover, check everything; returns the recovered last sequence. */
static uint64_t check_store(struct crash *c, uint64_t ack, uint64_t prev)
{
	char bad[4200] = "";
	uint64_t off = 0, records = 0, torn = 0, last;
	struct sl_options o;
	struct sl_stats s;
	struct sl_db *db = NULL;
	int r;

	r = sl_verify(c->data, bad, sizeof(bad), &off, &records, &torn);
	expect(r == 0, "sl_verify: %s at %s offset %" PRIu64, sl_strerror(r), bad, off);

	sl_options_init(&o);
	o.data_dir = c->data;
	o.accel = "cpu";
	/* The children's segment size: the preparer makes the next segment at open. */
	o.wal_segment_bytes = c->seg;
	uint64_t t0 = mono_ns();
	r = sl_db_open(&o, &db);
	c->open_ns = mono_ns() - t0;
	expect(r == 0, "sl_db_open (recovery): %s", sl_strerror(r));
	last = sl_db_last_seq(db);
	expect(sl_db_durable_seq(db) == last, "after recovery durable %" PRIu64 " != last %" PRIu64,
	       sl_db_durable_seq(db), last);
	expect(last >= ack,
	       "acknowledged durable through %" PRIu64 " but recovered only through %" PRIu64
	       " (%" PRIu64 " messages lost)",
	       ack, last, ack - last);
	expect(last >= prev,
	       "recovered through %" PRIu64 ", less than %" PRIu64 " recovered the round before",
	       last, prev);
	sl_db_stats(db, &s);
	/* The log holds [last - records + 1, last]; tables hold everything up to the checkpoint:
	 * together, every sequence, with no hole between them. */
	expect(records == s.recovered_records,
	       "sl_verify counted %" PRIu64 " log records, recovery %" PRIu64, records,
	       s.recovered_records);
	expect(records <= last && last - records <= s.checkpoint_seq,
	       "the log holds %" PRIu64 " records up to %" PRIu64 " but tables end at %" PRIu64,
	       records, last, s.checkpoint_seq);
	if (s.checkpoint_seq)
		c->flushed_rounds++;
	expect(s.recovery_torn_bytes == torn,
	       "sl_verify saw a torn tail of %" PRIu64 " bytes, recovery truncated %" PRIu64, torn,
	       s.recovery_torn_bytes);
	if (s.recovery_torn_bytes) {
		c->torn_rounds++;
		c->torn_bytes += s.recovery_torn_bytes;
	}

	check_log(db, last);

	/* The state: the reference fed the same messages, and the type counts. */
	struct sl_db *ref = ref_open(c, last);
	struct sl_stats rs;
	sl_db_stats(ref, &rs);
	/* Counts describe the memtable: they equal the reference's only while the store has no
	 * tables (then recovery rebuilt everything); with tables, lookups (spot_check) and the
	 * full replay (check_log) carry the comparison. */
	if (!s.checkpoint_seq) {
		expect(s.orders == rs.orders && s.orders_open == rs.orders_open &&
			       s.trades == rs.trades && s.stocks == rs.stocks &&
			       s.orders_missing == rs.orders_missing,
		       "state differs from the reference at %" PRIu64 ": orders %" PRIu64
		       "/%" PRIu64 " open %" PRIu64 "/%" PRIu64 " trades %" PRIu64 "/%" PRIu64
		       " stocks %" PRIu64 "/%" PRIu64 " missing %" PRIu64 "/%" PRIu64,
		       last, s.orders, rs.orders, s.orders_open, rs.orders_open, s.trades,
		       rs.trades, s.stocks, rs.stocks, s.orders_missing, rs.orders_missing);
		for (int t = 0; t < 128; t++)
			expect(s.msg_by_type[t] == c->by_type[t],
			       "type '%c': %" PRIu64 " messages recovered, %" PRIu64 " in the feed",
			       t, s.msg_by_type[t], c->by_type[t]);
	}
	expect(s.orders_missing == 0, "%" PRIu64 " messages named an order the store lost",
	       s.orders_missing);
	/* Recovery decodes what the tables do not hold. */
	expect(s.messages == last - s.checkpoint_seq && s.messages_unknown == 0 &&
		       s.messages_bad_length == 0,
	       "recovery decoded %" PRIu64 " messages (%" PRIu64 " unknown, %" PRIu64
	       " bad), want %" PRIu64,
	       s.messages, s.messages_unknown, s.messages_bad_length, last - s.checkpoint_seq);
	spot_check(c, db, ref, last);
	r = sl_db_close(ref);
	expect(r == 0, "closing the reference: %s", sl_strerror(r));

	r = sl_db_close(db);
	expect(r == 0, "sl_db_close: %s", sl_strerror(r));

	/* The repair is on disk: no torn tail left, the same records. */
	r = sl_verify(c->data, bad, sizeof(bad), &off, &records, &torn);
	expect(r == 0 && torn == 0 && records <= last && last - records <= s.checkpoint_seq,
	       "after the repair sl_verify: %s, %" PRIu64 " torn bytes, %" PRIu64
	       " log records up to %" PRIu64 ", tables to %" PRIu64,
	       sl_strerror(r), torn, records, last, s.checkpoint_seq);

	if (ack > prev)
		c->acked += ack - prev;
	c->recovered += last - prev;
	return last;
}

/* ---- A torn tail by hand -------------------------------------------------------------------- */

/* CRC32C (Castagnoli), bitwise: the few records written here need no speed. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* One log record of message seq as wal.h lays it out: crc32c(u32, over the rest) len(u16)
 * type(u8, 1 = message) flags(u8) seq(u64) rx_ns(u64) payload. Returns its length. */
static size_t make_record(uint64_t seq, uint8_t *out)
{
	uint32_t len;
	const uint8_t *m = msg_at(seq, &len);

	put_le(out + 4, len, 2);
	out[6] = 1;
	out[7] = 0;
	put_le(out + 8, seq, 8);
	put_le(out + 16, RX_BASE + seq, 8);
	memcpy(out + 24, m, len);
	put_le(out, crc32c(0, out + 4, 20 + len), 4);
	return 24 + len;
}

/* Where the records of segment file fd end (the first all-zero record header), walking the
 * record chain from the 64-byte segment header: 64 when the segment holds no record. */
static uint64_t records_end(int fd, uint64_t size)
{
	uint64_t off = 64;
	uint8_t h[24], zero[24] = { 0 };

	while (off + sizeof(h) <= size &&
	       pread(fd, h, sizeof(h), (off_t)off) == (ssize_t)sizeof(h) &&
	       memcmp(h, zero, sizeof(h)))
		off += 24 + ((uint64_t)h[4] | (uint64_t)h[5] << 8);
	return off;
}

/* What a kill in the middle of a commit leaves: after the last record of the newest segment
 * that has any, made whole records of the next messages (written, never acknowledged) and then
 * the first cut bytes of one more. The store must recover the whole ones and drop the rest.
 * Returns 0 (and writes nothing) when there is no room or no segment. */
static int tear_tail(struct crash *c, uint64_t last, uint64_t *made, uint64_t *cut)
{
	char wal[400], path[700], best[700] = "", first[700] = "";
	uint8_t buf[4 * 80];
	struct dirent *de;
	uint64_t size = 0, end = 0, first_size = 0;
	DIR *d;
	int fd;

	snprintf(wal, sizeof(wal), "%s/wal", c->data);
	d = opendir(wal);
	if (!d)
		return 0;
	/* Names are the index in 16 hex digits: the greatest name with records is the newest
	 * segment with data; failing any, the first segment. */
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat st;
		uint64_t e;

		if (n != 20 || strcmp(de->d_name + 16, ".wal"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", wal, de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0) {
			e = records_end(fd, (uint64_t)st.st_size);
			if (e > 64 && (!best[0] || strcmp(path, best) > 0)) {
				snprintf(best, sizeof(best), "%s", path);
				end = e;
				size = (uint64_t)st.st_size;
			}
			if (!first[0] || strcmp(path, first) < 0) {
				snprintf(first, sizeof(first), "%s", path);
				first_size = (uint64_t)st.st_size;
			}
		}
		close(fd);
	}
	closedir(d);
	if (!best[0] && first[0]) {
		snprintf(best, sizeof(best), "%s", first);
		end = 64;
		size = first_size;
	}
	if (!best[0] || last + 4 > feed.n)
		return 0;

	size_t len = 0, whole = rnd_range(&c->rng, 0, 3);
	for (size_t i = 0; i < whole; i++)
		len += make_record(last + 1 + i, buf + len);
	size_t next = make_record(last + 1 + whole, buf + len);
	*made = whole;
	/* At least crc, len and type: a tail that is all zeros is no tear. */
	*cut = rnd_range(&c->rng, 7, next - 1);
	len += *cut;
	if (end + len + 24 > size)
		return 0;
	fd = open(best, O_WRONLY);
	expect(fd >= 0, "opening %s to tear its tail: %s", best, strerror(errno));
	expect(pwrite(fd, buf, len, (off_t)end) == (ssize_t)len, "tearing %s: %s", best,
	       strerror(errno));
	close(fd);
	return 1;
}

/* ---- The rounds ----------------------------------------------------------------------------- */

enum mode {
	MODE_MESSAGES,
	MODE_PACKETS,
	MODE_HEAVY,
	MODE_KILL_IN_OPEN,
};

static void crash_rounds(struct crash *c, enum mode mode, uint64_t seg)
{
	uint64_t prev = 0, t0 = mono_ns();

	c->seg = seg;
	ref_reset(c);
	for (c->round = 1; c->round <= rounds; c->round++) {
		struct plan p;
		uint64_t ack;
		int table = mode == MODE_PACKETS ? (int)(rnd_next(&c->rng) % NTABLES) : -1;

		/* A store holding the whole feed starts over: a fresh directory. */
		if (prev == feed.n) {
			rm_rf(c->data);
			ref_reset(c);
			prev = 0;
			c->resets++;
		}
		/* Where the store ends inside a packet of this round's table, the child's first
		 * packet is partly stored already. */
		if (table >= 0 && prev < feed.n &&
		    tables[table].first_seq[ptable_find(&tables[table], prev + 1)] != prev + 1)
			c->mid_packet++;
		c->log_only = mode == MODE_KILL_IN_OPEN;
		plan_draw(c, &p, table, mode == MODE_HEAVY || mode == MODE_KILL_IN_OPEN, seg);
		int opened = 0;
		ack = child_run(c, &p, rnd_range(&c->rng, 1000, 50000), 1, &opened);
		if (mode == MODE_KILL_IN_OPEN) {
			/* A second child recovers what the first left and is killed during that
			 * recovery: in its replay or in its repair of a torn tail. A kill tears a
			 * write only when it lands inside a pwrite, so when the first child left
			 * none, the parent makes one as such a kill would (see tear_tail).
			 * sl_verify in between only reads. */
			char bad[4200];
			uint64_t off, records, torn, made = 0, cut = 0;
			int r = sl_verify(c->data, bad, sizeof(bad), &off, &records, &torn);

			expect(r == 0,
			       "sl_verify before the recovery kill: %s at %s offset %" PRIu64,
			       sl_strerror(r), bad, off);
			expect(records >= ack, "acknowledged %" PRIu64 ", the log holds %" PRIu64,
			       ack, records);
			if (!torn && tear_tail(c, records, &made, &cut)) {
				uint64_t records2 = 0;

				r = sl_verify(c->data, bad, sizeof(bad), &off, &records2, &torn);
				expect(r == 0 && records2 == records + made && torn > 0 &&
					       torn <= cut,
				       "after tearing the tail by hand (%" PRIu64 " whole records, "
				       "%" PRIu64 " bytes of the next) sl_verify: %s, %" PRIu64
				       " records (want %" PRIu64 "), torn %" PRIu64,
				       made, cut, sl_strerror(r), records2, records + made, torn);
				c->torn_made++;
			}
			/* Half the time 0-5 ms after the fork; otherwise anywhere in 1.5 times
			 * what the last recovery took, so kills reach the repair at its end and
			 * the first appends after it. */
			uint64_t span = 5000;
			if (rnd_next(&c->rng) % 2 && c->open_ns / 1000 * 3 / 2 > span)
				span = c->open_ns / 1000 * 3 / 2;
			plan_draw(c, &p, -1, 1, seg);
			uint64_t ack2 = child_run(c, &p, rnd_range(&c->rng, 0, span), 0, &opened);
			c->torn_pending += torn > 0;
			c->killed_in_open += !opened;
			if (ack2 > ack)
				ack = ack2;
		}
		uint64_t tc = mono_ns(), before = prev;
		prev = check_store(c, ack, prev);
		if (verbose)
			printf("  round %3d: table %d acked %7" PRIu64 " recovered %7" PRIu64
			       " (+%" PRIu64 ") torn %" PRIu64 " check %.0f ms\n",
			       c->round, table, ack, prev, prev - before, c->torn_rounds,
			       (double)(mono_ns() - tc) / 1e6);
	}
	c->ns = mono_ns() - t0;
	printf("crash_ingest: %-28s %3d rounds  %3" PRIu64 " children  acked %9" PRIu64
	       "  recovered %9" PRIu64 "  torn tails %2" PRIu64 " (%" PRIu64
	       " bytes)  resets %" PRIu64 "  %.1f s\n",
	       c->name, rounds, c->children, c->acked, c->recovered, c->torn_rounds, c->torn_bytes,
	       c->resets, (double)c->ns / 1e9);
	printf("crash_ingest: %-28s %3" PRIu64 " of %d rounds checked a store with tables\n",
	       c->name, c->flushed_rounds, rounds);
	if (mode == MODE_PACKETS)
		printf("crash_ingest: %-28s %3" PRIu64 " of %d children resumed in the middle of "
		       "a packet\n",
		       c->name, c->mid_packet, rounds);
	if (mode == MODE_KILL_IN_OPEN)
		printf("crash_ingest: %-28s %3" PRIu64 " of %d second children killed inside "
		       "sl_db_open; %" PRIu64 " had a torn tail to repair (%" PRIu64
		       " made by hand)\n",
		       c->name, c->killed_in_open, rounds, c->torn_pending, c->torn_made);
	tot.rounds += (uint64_t)rounds;
	tot.acked += c->acked;
	tot.recovered += c->recovered;
	tot.torn_rounds += c->torn_rounds;
	tot.torn_bytes += c->torn_bytes;
	tot.resets += c->resets;
	tot.children += c->children;
}

/* ---- Tests ---------------------------------------------------------------------------------- */

/* Small batches of messages, commit settings varied, killed 1-50 ms after the open. */
static void test_append_messages_random_kill(void **state)
{
	crash_rounds(*state, MODE_MESSAGES, 256 * KIB);
}

/* MoldUDP64 packets from one of two packings of the same feed: resuming often starts in the
 * middle of a packet, whose already-stored part the tracker must drop. */
static void test_append_packets_random_kill(void **state)
{
	crash_rounds(*state, MODE_PACKETS, 128 * KIB);
}

/* Batches of thousands of messages into large commit buffers: big writes that a kill tears,
 * segments rotating inside one commit. */
static void test_append_messages_heavy_kill(void **state)
{
	crash_rounds(*state, MODE_HEAVY, 4 * MIB);
}

/* A kill under load, then a kill 0-5 ms into the next open, during recovery and repair. */
static void test_db_open_kill_in_recovery(void **state)
{
	crash_rounds(*state, MODE_KILL_IN_OPEN, 4 * MIB);
}

static int setup_messages(void **state)
{
	return setup_crash(state, "append_messages_random_kill");
}

static int setup_packets(void **state)
{
	return setup_crash(state, "append_packets_random_kill");
}

static int setup_heavy(void **state)
{
	return setup_crash(state, "append_messages_heavy_kill");
}

static int setup_recovery(void **state)
{
	return setup_crash(state, "db_open_kill_in_recovery");
}

static int group_setup(void **state)
{
	uint64_t n = quick ? 200000 : 400000, t0 = mono_ns();

	(void)state;
	stream_build(n);
	for (int i = 0; i < NTABLES; i++)
		ptable_build(&tables[i], table_max_packet[i]);
	printf("crash_ingest: feed of %" PRIu64 " messages (%" PRIu64 " bytes), packets %zu/%zu, "
	       "built in %.2f s\n",
	       feed.n, feed.off[feed.n], tables[0].n, tables[1].n, (double)(mono_ns() - t0) / 1e9);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	printf("crash_ingest: summary: seed %" PRIu64 ", %" PRIu64 " rounds, %" PRIu64
	       " children killed, %" PRIu64 " messages acknowledged durable, %" PRIu64
	       " recovered, %" PRIu64 " torn tails (%" PRIu64 " bytes), %" PRIu64 " resets\n",
	       master_seed, tot.rounds, tot.children, tot.acked, tot.recovered, tot.torn_rounds,
	       tot.torn_bytes, tot.resets);
	for (int i = 0; i < NTABLES; i++)
		ptable_release(&tables[i]);
	free(feed.bytes);
	free(feed.off);
	return 0;
}

int main(void)
{
	const char *s = getenv("SL_CRASH_SEED");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_messages_random_kill, setup_messages,
						teardown_crash),
		cmocka_unit_test_setup_teardown(test_append_packets_random_kill, setup_packets,
						teardown_crash),
		cmocka_unit_test_setup_teardown(test_append_messages_heavy_kill, setup_heavy,
						teardown_crash),
		cmocka_unit_test_setup_teardown(test_db_open_kill_in_recovery, setup_recovery,
						teardown_crash),
	};

	quick = getenv("SL_TEST_QUICK") && atoi(getenv("SL_TEST_QUICK"));
	rounds = quick ? 10 : 30;
	if (getenv("SL_TEST_LONG") && atoi(getenv("SL_TEST_LONG")))
		rounds = 200;
	verbose = getenv("SL_CRASH_VERBOSE") && atoi(getenv("SL_CRASH_VERBOSE"));
	if (s && *s)
		master_seed = strtoull(s, NULL, 0);
	else
		master_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("crash_ingest: seed %" PRIu64 " (SL_CRASH_SEED=%" PRIu64 " repeats it), %d rounds "
	       "per test\n",
	       master_seed, master_seed, rounds);
	/* CMOCKA_TEST_FILTER-like: SL_CRASH_ONLY=pattern runs the matching tests only. */
	if (getenv("SL_CRASH_ONLY"))
		cmocka_set_test_filter(getenv("SL_CRASH_ONLY"));
	/* A child killed while the parent reads its pipe must not take the parent down. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("crash_ingest", tests, group_setup, group_teardown);
}
