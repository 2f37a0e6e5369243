/* model.h - the reference model that the model tests hold Sluice to (tests/unit/test_model.c,
 * tests/crash/crash_model.c). It is a plain in-memory model of ITCH order, trade and stock
 * state, written from the semantics memtable.c implements (an independent second
 * implementation, not a copy), with a workload to feed both: the deterministic feed of feed.h
 * with edge cases mixed in that the feed never makes (orders of its own with wide and odd
 * reference numbers, over-executions, reused reference and match numbers, self-replaces,
 * messages naming orders nobody added, broken trades of old trades, trading actions for unknown
 * stocks, directory re-issues, malformed messages). The checks compare every answer of a store
 * - orders one by one and in multi-gets, trades, stocks, scans, replay - with the model's. One
 * rule bends exactness (struct mpolicy): an order in a final state may be gone once a
 * compaction could have dropped it, and must be gone after a flush and a full compaction that
 * it was final before.
 *
 * Test-only and single-threaded. A failed check calls cmocka's fail_msg through mfail (it
 * jumps out of the test); a hang ends the binary from the watchdog alarm. The model knows
 * nothing of how a test drives the store: flushes, restarts and crashes are the tests' part.
 */
#ifndef SL_TEST_MODEL_H
#define SL_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

/* Receive times carry the sequence, so replay can check them: RX_BASE + seq. */
#define RX_BASE (1700000000ull * 1000000000ull)

/* Key spaces. The feed numbers its orders and matches 1, 2, 3 ... (far below 2^39). Injected
 * orders and matches take IREF_BASE + k, wide ones (past the 48 bits the memtable packs into
 * one word) IREF_WIDE + k or UINT64_MAX - k, plus two edge keys. Nothing is ever created in the
 * NX spaces: messages and queries for unknown orders and matches use them. */
#define IREF_BASE   (1ull << 40)
#define IREF_WIDE   (1ull << 48)
#define IMATCH_BASE (1ull << 40)
#define NX_LOW	    (1ull << 39) /* + [0, 2^39): below IREF_BASE, above the feed */
#define NX_HIGH	    (3ull << 56) /* + [0, 2^40) */
/* Locates from NX_LOCATE on never get an order or a directory entry, but for EDGE_LOCATE. */
#define NX_LOCATE   60000u
#define EDGE_LOCATE 65535u

/* ---- Failure reporting -------------------------------------------------------------------- */

/* What a failure or a hang names: set by the tests as they go. */
struct mctx {
	uint64_t seed;
	const char *test;
	const char *step;
	uint64_t seq;
	char dir[300];
	int failed;
	int verbose;
};
extern struct mctx mctx;

/* Fail the current test naming the seed, step and sequence; the data directory is kept. Closes
 * the scan a check has open first. Does not return (cmocka's fail_msg jumps out). */
void mfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A one-line notice, printed once per key, for an API that is not there yet. */
void notice_once(int *flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The keys of notice_once: one flag per notice. */
struct mnotes {
	int compact_stub;
};
extern struct mnotes notes;

/* A hang anywhere (a wait that never ends) fails the run naming the step it hung in, instead
 * of stalling the suite: every step re-arms the alarm (SIGALRM, installed on the first call).
 * mwatch_secs: 60 unless main sets it. */
extern unsigned mwatch_secs;
void watchdog_arm(void);

/* ---- Random numbers: splitmix64 ----------------------------------------------------------- */

uint64_t mrnd(uint64_t *s);
/* Uniform in [0, n), n > 0. */
uint64_t mbelow(uint64_t *s, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t mrange(uint64_t *s, uint64_t lo, uint64_t hi);
/* True with probability permille / 1000. */
int mchance(uint64_t *s, unsigned permille);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mono_ns(void);

/* ---- The message stream ------------------------------------------------------------------- */

/* Messages 1..n back to back: message k is bytes[off[k - 1], off[k]). Also keys that messages
 * named but nobody created (for queries that must find nothing). */
struct mstream {
	uint64_t n, cap_n, cap_b;
	uint8_t *bytes;
	uint64_t *off;
	uint64_t injected, malformed;
	struct mkey {
		uint16_t locate;
		uint64_t ref;
	} named[1024];
	uint32_t nnamed;
};

/* Message seq (1..s->n) and its length; valid until the next mstream_push. */
const uint8_t *mstream_msg(const struct mstream *s, uint64_t seq, uint32_t *len);
/* Append a message of len bytes (copied) as message s->n + 1. A zeroed stream is empty. */
void mstream_push(struct mstream *s, const uint8_t *p, uint32_t len);
/* Free the stream's buffers and zero it. */
void mstream_release(struct mstream *s);

/* ---- The reference model ------------------------------------------------------------------ */

/* An order and the sequence that took it out of OPEN (0 while open). */
struct mord {
	struct sl_order o;
	uint64_t final_seq;
};

/* Open addressing over vector indices: slot = index + 1, 0 = empty. Never deletes. */
struct mindex {
	uint32_t *slot;
	uint64_t cap;
};

struct model {
	struct mord *ord;
	uint64_t nord, cord;
	struct mindex oix;
	struct sl_trade *tr;
	uint64_t ntr, ctr;
	struct mindex tix;
	struct sl_stock *stock; /* 65536 entries; version 0: no directory entry */
	uint64_t seq;		/* the last message applied */
	uint64_t missing;	/* E/C/X/D/U naming an order it did not have: ignored */
	uint64_t bad;		/* messages that did not decode: logged, not applied */
};

/* An empty model (init/release: caller-owned storage); reset empties it again. */
void model_init(struct model *m);
void model_release(struct model *m);
void model_reset(struct model *m);
/* The model's record of an order, trade or stock, or NULL; valid until the next apply. */
const struct mord *model_order(const struct model *m, uint16_t locate, uint64_t ref);
const struct sl_trade *model_trade(const struct model *m, uint64_t match);
const struct sl_stock *model_stock(const struct model *m, uint16_t locate);
/* Apply message seq. Returns its type, or 0 when it does not decode (then it only counts). */
int model_apply(struct model *m, uint64_t seq, const uint8_t *p, uint32_t len);
/* Apply messages m->seq + 1 .. to of s. */
void model_advance(struct model *m, const struct mstream *s, uint64_t to);

/* ---- The workload: the feed with edge cases mixed in --------------------------------------- */

struct wl_config {
	uint64_t seed;
	uint64_t feed_messages;
	uint32_t stocks;
	uint32_t inject_permille; /* chance per message of an injected one instead */
};

/* Build the whole workload into s (deterministic in c; s is overwritten, not released). */
void workload_build(const struct wl_config *c, struct mstream *s);
/* A string space padded into a wire field of n bytes (8 for pad8). */
void padn(char *out, const char *s, size_t n);
void pad8(char out[8], const char *s);

/* ---- Comparing answers -------------------------------------------------------------------- */

/* Whether a final order may be, or must be, gone. */
struct mpolicy {
	uint64_t gone_upto;  /* final orders whose final_seq <= this must be gone (a flush and a
				full compaction ran after it) */
	uint64_t maybe_upto; /* else final orders whose final_seq <= this may be gone (a
				compaction could have run after it) */
};

/* What the checks saw, for the summary. */
struct mtotals {
	uint64_t orders, orders_gone, orders_absent, trades, stocks, multigets, scans, scan_records,
		replays, replay_events, gone_asserted;
};
extern struct mtotals mtot;

/* What one round of checks works with. */
struct mcheck {
	struct sl_db *db;
	const struct model *m;
	const struct mstream *s;
	struct mpolicy pol;
	uint64_t *rng;
	uint32_t stocks;
};

/* Every check calls mfail when the store's answer is not the model's. One order (by
 * sl_db_get_order), one trade, one stock. */
void check_order(const struct mcheck *c, uint16_t locate, uint64_t ref);
void check_trade(const struct mcheck *c, uint64_t match);
void check_stock(const struct mcheck *c, uint16_t locate);
/* A multi-get of a random set: model orders, unknown keys, and keys repeated in the set. */
void check_multiget_random(const struct mcheck *c);
/* Every order of the model through multi-gets of up to 1024 keys (a few unknown ones mixed
 * in), and every trade and every stock locate one by one. */
void check_all(const struct mcheck *c);
/* Scans: every record returned must be the model's (an order in a final state may be missing
 * when the policy allows), in key order, within the range; every record the model must show
 * must come. -ENOSYS (scans not there yet) is a notice. */
void check_scan(const struct mcheck *c, int kind, uint16_t locate, uint64_t from, uint64_t to);
void check_scan_random(const struct mcheck *c);
/* Replay from `from`: the stream's messages in order, receive times included, up to max events
 * or to the end, which must be `last` (everything is durable when this is called). */
void check_replay(const struct mcheck *c, uint64_t from, uint64_t last, uint64_t max);
/* A replay from a random place: anywhere, the start, the end, past it, or around the
 * checkpoint (where event tables hand over to the log). */
void check_replay_random(const struct mcheck *c, uint64_t last, uint64_t max);
/* A sample of everything: orders one by one and in multi-gets, trades, stocks, scans, a
 * replay. */
void check_sample(const struct mcheck *c, uint64_t last);

#endif /* SL_TEST_MODEL_H */
