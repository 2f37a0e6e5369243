/* memtable.h - the latest state of the market as the feed describes it: orders by (stock
 * locate, order reference number), trades by match number, the stock directory by locate.
 * One writer applies decoded ITCH messages; any number of readers look things up at the same
 * time without locks. memtable knows nothing of the log, packets or files.
 */
#ifndef SL_MEMTABLE_H
#define SL_MEMTABLE_H

#include <stdint.h>

#include "itch.h"
#include "os.h"
#include "sluice.h"

struct sl_memtable_stats {
	uint64_t orders, orders_open, trades, stocks, orders_missing, applied;
	uint64_t bytes; /* bytes of records in use (the rotation threshold compares this) */
};

struct sl_memtable;

/* Records come from chunked arenas allocated through os: no allocation per message except when
 * a chunk or a hash table grows. The order table is sized for expected_orders up front (and
 * the trade table for a quarter of that), so growth, which rehashes everything on the
 * writer's thread, happens only past them. 0 or -ENOMEM. */
int sl__memtable_new(const struct sl_os *os, uint64_t expected_orders, struct sl_memtable **out);
void sl__memtable_free(struct sl_memtable *m);

/* Where state older than this memtable lives (older memtables, tables). When a message names
 * an order (or a broken trade names a trade) that is not here, the memtable asks; 0 and *out
 * filled brings the record in before the message applies. Called on the writer's thread. */
struct sl_memtable_resolver {
	int (*order)(void *arg, uint16_t locate, uint64_t ref, struct sl_order *out);
	int (*trade)(void *arg, uint64_t match, struct sl_trade *out);
	void *arg;
};

/* Put a stock directory entry as it is (reloading state from tables). Writer thread only.
 * 0 or -ENOMEM. */
int sl__memtable_put_stock(struct sl_memtable *m, const struct sl_stock *s);

/* Set (or clear, with NULL) the resolver; r must outlive its use. Writer thread only. */
void sl__memtable_set_resolver(struct sl_memtable *m, const struct sl_memtable_resolver *r);

/* Apply one decoded message logged at seq. Writer thread only. 0, -ENOMEM (the state is
 * unchanged then), or the resolver's error other than SL_ENOTFOUND (older state that exists
 * but cannot be read, e.g. SL_ECORRUPT: the message is not applied, and the keys it would have
 * changed or made answer that error from this memtable, up to SL_MEMTABLE_POISON of them, rather
 * than "not found"). Messages naming an order never seen (here or by the resolver) count in
 * orders_missing. */
#define SL_MEMTABLE_POISON 4096
int sl__memtable_apply(struct sl_memtable *m, const struct sl_itch_msg *msg, uint64_t seq);

/* Any thread, lock-free: 0 or SL_ENOTFOUND. */
int sl__memtable_get_order(struct sl_memtable *m, uint16_t locate, uint64_t ref,
			   struct sl_order *out);
int sl__memtable_get_trade(struct sl_memtable *m, uint64_t match, struct sl_trade *out);
int sl__memtable_get_stock(struct sl_memtable *m, uint16_t locate, struct sl_stock *out);

void sl__memtable_get_stats(struct sl_memtable *m, struct sl_memtable_stats *out);

/* Every record as a consistent copy: orders and trades in the order they were created (not key
 * order), stocks by locate. A callback may be NULL; a nonzero return stops the walk and is
 * returned. Only while no apply runs (an immutable memtable being flushed): the arenas may
 * move under a concurrent writer. */
struct sl_memtable_visitor {
	int (*order)(void *arg, const struct sl_order *o);
	int (*trade)(void *arg, const struct sl_trade *t);
	int (*stock)(void *arg, const struct sl_stock *s);
	void *arg;
};
int sl__memtable_foreach(struct sl_memtable *m, const struct sl_memtable_visitor *v);

/* Every order of stock `locate` in this memtable (created here or carried in), newest first: in
 * the reverse order their records entered this memtable (an order brought in by the resolver
 * or carried in enters when that happens; a reference number reused for the same stock
 * overwrites its order in place, which keeps its position). Each is a consistent copy, as
 * sl__memtable_get_order gives. Any thread, lock-free, concurrently with the writer: an order
 * created after the walk began may or may not be seen; each one seen is as of one applied
 * message. A nonzero return of cb stops the walk and is returned; else 0. The copies are the
 * caller's for the call of cb only. m must outlive the walk. */
int sl__memtable_scan_orders(struct sl_memtable *m, uint16_t locate,
			     int (*cb)(void *arg, const struct sl_order *o), void *arg);
/* The same for trades whose locate is `locate` (executions, non-cross and cross trades). A
 * match number reused under another locate moves its trade to that locate's walk. */
int sl__memtable_scan_trades(struct sl_memtable *m, uint16_t locate,
			     int (*cb)(void *arg, const struct sl_trade *t), void *arg);

/* Seed an empty memtable with what applying later messages needs from m: every order still
 * open and every stock, field for field. Memtable rotation uses it so that the apply path
 * never reads tables for a live order (ITCH only ever changes open orders). m must be
 * quiesced; fresh is written as by its writer. 0 or -ENOMEM (fresh is then partly seeded and
 * should be freed). */
int sl__memtable_carry(struct sl_memtable *m, struct sl_memtable *fresh);

/* For tests of reclamation: hold this thread's read section open (as a reader probing the
 * table would) until the matching release, and count the frees waiting for readers. */
int sl__memtable_read_hold(struct sl_memtable *m);
void sl__memtable_read_release(struct sl_memtable *m);
unsigned sl__memtable_pending_frees(struct sl_memtable *m);

#endif /* SL_MEMTABLE_H */
