/* store.h - the engine's state beyond the log: the active memtable, the immutable ones waiting
 * for their flush, the flush thread, the manifest and the tables, and lookups through all of
 * them, newest first. db drives it (one applier thread writes, any thread reads); store knows
 * the log only through the log seam, to copy the event stream into event tables.
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdint.h>

#include "accel.h"
#include "log.h"
#include "memtable.h"
#include "os.h"
#include "sluice.h"

struct sl_store_config {
	const struct sl_os *os;
	struct sl_accel *accel;
	const char *dir;
	int rdonly;
	int no_sync;
	uint64_t memtable_bytes;  /* rotate past this much record memory; 0 = never */
	uint64_t expected_orders; /* sizing of each memtable */
	int compaction;           /* run background compaction */
	uint32_t l0_trigger;      /* compaction tuning (0: defaults, see compact.h; base and
				     table sizes default from memtable_bytes) */
	uint64_t base_bytes, table_bytes;
	uint64_t event_retain_bytes, event_retain_secs; /* 0: keep all */
};

struct sl_store_stats {
	uint64_t checkpoint_seq;
	uint64_t tables, table_bytes, levels_tables[8], levels_bytes[8];
	uint64_t rotations, rotate_waits, flushes, flush_errors, flushed_bytes, immutables;
	uint64_t compactions, compaction_errors, compacted_read_bytes, compacted_bytes;
	uint64_t compaction_dropped, compaction_running, compaction_pending;
	uint64_t events_retired_tables, events_retired_bytes;
	uint64_t bloom_probes, bloom_negatives, bloom_false_positives;
	uint64_t first_event_seq; /* the oldest sequence event tables still hold (0: none) */
};

struct sl_store;

/* Open the manifest and the table cache (removing tables a crash left unlisted unless rdonly)
 * and make an empty active memtable whose resolver looks through the tables. */
int sl__store_open(const struct sl_store_config *cfg, struct sl_store **out);
/* Start the flush and compaction threads over this log (not in rdonly). */
int sl__store_start(struct sl_store *s, struct sl_log *log);
/* Stop the flush thread (immutables not flushed yet stay in the log), free everything. */
void sl__store_close(struct sl_store *s);

/* The oldest sequence still held (event tables, else the log after the checkpoint): retention
 * drops history before it. */
uint64_t sl__store_first_seq(struct sl_store *s);

/* Every record <= this is in tables; the log is replayed after it. */
uint64_t sl__store_checkpoint(struct sl_store *s);

/* The memtable to apply to: the applier's (or recovery's) thread only. */
struct sl_memtable *sl__store_active(struct sl_store *s);

/* Applier: after applying everything up to last_seq, rotate the memtable when it is full
 * (waiting, counted, while the flush thread is behind). 0 or -ENOMEM. */
int sl__store_after_apply(struct sl_store *s, uint64_t last_seq);

/* 1 while the applier waits for the flush thread to make room and flushes are failing (it
 * cannot write tables): state stops advancing, durability does not. Any thread. */
int sl__store_stalled(struct sl_store *s);

/* Any thread: newest state first (active memtable, immutables, then tables). 0,
 * SL_ENOTFOUND, SL_ECORRUPT (a damaged table block), or -errno. */
int sl__store_get_order(struct sl_store *s, uint16_t locate, uint64_t ref, struct sl_order *out);
int sl__store_get_trade(struct sl_store *s, uint64_t match, struct sl_trade *out);
int sl__store_get_stock(struct sl_store *s, uint16_t locate, struct sl_stock *out);

/* Events older than the log holds, from event tables: a cursor from from_seq. next gives 0
 * and the event (payload valid until the next call), or SL_EEND after the last table. */
struct sl_store_events;
int sl__store_events_open(struct sl_store *s, uint64_t from_seq, struct sl_store_events **out);
int sl__store_events_next(struct sl_store_events *c, uint64_t *seq, uint32_t *kind,
			  uint64_t *rx_ns, const uint8_t **payload, size_t *plen);
void sl__store_events_close(struct sl_store_events *c);

void sl__store_get_stats(struct sl_store *s, struct sl_store_stats *out);

/* Rotate the active memtable once the applier has applied through seq, whatever its size (any
 * thread; the applier acts on it). Then wait_flushed waits until nothing waits for a flush and
 * the checkpoint reached seq: 0, or the flush's error once a flush fails (it keeps retrying in
 * the background; the log holds everything). */
void sl__store_request_rotate(struct sl_store *s, uint64_t seq);
int sl__store_wait_flushed(struct sl_store *s, uint64_t seq);

/* Close is coming: a rotation waiting for room (flushes failing) stops waiting, so the applier
 * can drain and stop. Any thread. */
void sl__store_begin_close(struct sl_store *s);

/* Full compaction of every state table present now (waits for it; background compactions
 * wait meanwhile). 0 or the first error (the store stays as it was). */
int sl__store_compact(struct sl_store *s);

/* Scans of one stock's orders or trades in a time range (sluice.h's sl_scan_*): tables of the
 * version at open (handles held), memtables as collected at open. next fills a struct sl_order
 * or sl_trade by kind: 0, SL_EEND, SL_ECORRUPT (the damaged table is skipped afterwards). */
struct sl_store_scan;
int sl__store_scan_open(struct sl_store *s, int kind, uint16_t locate, uint64_t from,
			uint64_t to, struct sl_store_scan **out);
int sl__store_scan_next(struct sl_store_scan *c, void *out);
int sl__store_scan_kind(const struct sl_store_scan *c);
void sl__store_scan_close(struct sl_store_scan *c);

/* Batched order lookups, newest state first: rc[i] and out[i] per key. */
void sl__store_get_orders(struct sl_store *s, size_t n, const uint16_t *locates,
			  const uint64_t *refs, struct sl_order *out, int *rc);

/* Replication snapshots. pin: hard-link the current version's table files into dst_dir (same
 * names) and return their descriptions (malloc'd, *n of them) and the version's checkpoint; the
 * links keep the files after compaction removes them. Any thread. 0 or -errno.
 * install: make the tables described by tabs (files named by their file_no in src_dir) the
 * store's whole table set as of checkpoint, in one manifest edit (they get new numbers and move
 * into the store; every table there was goes), with a fresh active memtable. The caller makes
 * sure nothing is applied meanwhile and nothing waits for a flush. 0 or an error (the store is
 * unchanged then). */
struct sl_table_info;
int sl__store_pin(struct sl_store *s, const char *dst_dir, struct sl_table_info **out, size_t *n,
		  uint64_t *checkpoint);
int sl__store_install(struct sl_store *s, const char *src_dir, const struct sl_table_info *tabs,
		      size_t n, uint64_t checkpoint);

/* Read dir's manifest without changing anything: the checkpoint it records, its path, and where
 * edits after it would have been lost (a torn last edit's offset, else the file's end). 0 or the
 * open's error. */
int sl__store_probe(const struct sl_os *os, struct sl_accel *accel, const char *dir,
		    uint64_t *checkpoint, char *path, size_t cap, uint64_t *torn_off);

/* Check the manifest and every table of dir. 0, or SL_ECORRUPT (or -errno) with the first bad
 * file and offset. *tables counts the tables checked. */
int sl__store_verify(const struct sl_os *os, struct sl_accel *accel, const char *dir, char *path,
		     size_t cap, uint64_t *off, uint64_t *tables);

#endif /* SL_STORE_H */
