/* compact.h - leveled compaction of state tables. A compactor picks what a version needs most
 * (level 0 by table count, deeper levels by size against a target that grows by a ratio per
 * level), merges the picked tables through the accelerator's fused merge job (accel.h: newest
 * version wins, tombstones dropped when nothing older lies below, output blocks, CRCs and bloom
 * in one pass), cuts the output into tables of a target size, and records the outputs and the
 * removal of the inputs in one manifest edit. compact sits on tables, sst, manifest and accel;
 * it knows nothing of the log, memtables or threads (store runs it on its own thread).
 *
 * Levels: 0 holds flushed tables (overlapping, newest first); 1 .. SL_EVENT_LEVEL - 1 hold
 * disjoint sorted tables, each level older than the one above it; SL_EVENT_LEVEL holds event
 * tables, which compaction never touches.
 */
#ifndef SL_COMPACT_H
#define SL_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"
#include "manifest.h"
#include "os.h"
#include "tables.h"

/* The deepest state level: a compaction into it (or into a level with nothing below it) drops
 * tombstones. */
#define SL_STATE_BOTTOM (SL_EVENT_LEVEL - 1)

struct sl_compact_config {
	const struct sl_os *os;
	struct sl_accel *accel;
	const char *dir;        /* copied */
	int no_sync;
	uint32_t l0_trigger;    /* compact level 0 at this many tables (default 4) */
	uint64_t base_bytes;    /* level 1's target size (default 256 MiB) */
	uint32_t ratio;         /* each deeper level's target is this many times larger (10) */
	uint64_t table_bytes;   /* target size of an output table (default 64 MiB) */
	uint32_t block_bytes;   /* data block size of output tables (0: sst's default) */
	const int *stop;        /* when set and nonzero (read atomically between jobs), a run
				   gives up with -ECANCELED, leaving the store as it was */
};

/* What one compaction reads: runs newest first; a run is one level-0 table or the picked
 * tables of one deeper level, in key order. */
struct sl_compact_pick {
	int out_level;
	int drop_tombstones;
	int full;                          /* part of a full compaction */
	size_t n_runs;
	struct sl_compact_run {
		int level;
		size_t n;
		struct sl_table_info *t;   /* copies of the version's entries */
	} *runs;
	uint64_t in_bytes;
};

struct sl_compact_result {
	uint64_t tables_in, tables_out, bytes_in, bytes_out;
	uint64_t entries_in, entries_out, dropped_older, dropped_tombstones;
	uint64_t jobs;
	uint64_t *obsolete;                /* input file numbers: delete once unreachable */
	size_t n_obsolete;
};

struct sl_compactor;

/* 0 or -ENOMEM; zero fields of c take their defaults. */
int sl__compactor_new(const struct sl_compact_config *c, struct sl_compactor **out);
void sl__compactor_free(struct sl_compactor *k);

/* The level-by-level score of v: 1.0 and above means over target. For stats and tests. */
double sl__compact_score(const struct sl_compactor *k, const struct sl_version *v, int level);

/* Choose the compaction v needs most: 1 with *out (free with sl__compact_pick_free), 0 when
 * every level is within its target, -ENOMEM. full: instead, every state table into the
 * deepest non-empty state level (at least 1), or when there are more level-0 tables than one
 * merge takes, the oldest of them; 0 when there are no state tables. */
int sl__compact_pick(struct sl_compactor *k, const struct sl_version *v, int full,
		     struct sl_compact_pick **out);
void sl__compact_pick_free(struct sl_compact_pick *p);

/* Run a pick made from v (which the caller keeps acquired): merge, write the output tables,
 * apply one manifest edit that adds them and removes the inputs. On 0 res->obsolete lists the
 * inputs (free with sl__compact_result_free): the caller deletes those files once no reader
 * can reach them (a version taken before the edit may still name them). On failure nothing is
 * recorded and no output file is left: the store is as it was. SL_ECORRUPT names the damaged
 * input table and block on stderr. One run at a time per compactor. */
int sl__compact_run(struct sl_compactor *k, struct sl_manifest *m, struct sl_tables *tc,
		    const struct sl_compact_pick *p, struct sl_compact_result *res);
void sl__compact_result_free(struct sl_compact_result *res);

#endif /* SL_COMPACT_H */
