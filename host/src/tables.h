/* tables.h - the store's tables as one thing: a cache of open tables (DIR/<file_no:016x>.sst,
 * opened on first use and shared by refcounted handles), point and batched lookups through a
 * manifest version (level 0 newest first, then one table per level), event replay across the
 * event tables of SL_EVENT_LEVEL, verification of every live table against its manifest entry,
 * and removal of orphan table files. tables sits on sst, bloom, manifest (versions only) and
 * keys; it knows nothing of the log, the memtable or the engine that drives it.
 */
#ifndef SL_TABLES_H
#define SL_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"
#include "manifest.h"
#include "os.h"
#include "sst.h"

/* Event tables (only 'E' keys, from sl__flush_events) live at the last level, each covering a
 * sequence range [min_seq, max_seq]; the ranges never overlap. State tables use the levels
 * below it. */
#define SL_EVENT_LEVEL (SL_LEVELS - 1)

/* Keys looked up together per group in sl__tables_lookup_batch (a larger batch is split). */
#define SL_TABLES_BATCH 64

struct sl_tables;

/* A cache over dir (copied). No file is touched until the first get. 0 or -ENOMEM. */
int sl__tables_open(const struct sl_os *os, struct sl_accel *accel, const char *dir,
		    struct sl_tables **out);
/* Close every cached table and free the cache. Every handle (get, lookup holders, cursors) must
 * have been given back first. Accepts NULL. */
void sl__tables_close(struct sl_tables *tc);

/* A handle on table file_no: opened (sl__sst_open) on first use, then shared. 0 and *out, or
 * the open's error (-ENOENT for a missing file, SL_ECORRUPT, SL_EVERSION, -errno). A failed open
 * is remembered (a damaged store does not reopen and re-report a file per lookup) until
 * sl__tables_forget or sl__tables_trim drops it; -ENOMEM and descriptor exhaustion are not.
 * The handle stays valid until sl__tables_put. Thread-safe; no allocation once open. */
int sl__tables_get(struct sl_tables *tc, uint64_t file_no, struct sl_sst **out);
/* Give a handle back. A table whose last handle goes stays open (cached) unless it was
 * forgotten. Accepts NULL. Thread-safe. */
void sl__tables_put(struct sl_tables *tc, struct sl_sst *t);
/* file_no left the store (the caller is about to delete it): close it now if no handle is out,
 * else when the last one is put. A later get opens it again. Thread-safe. */
void sl__tables_forget(struct sl_tables *tc, uint64_t file_no);
/* Close every idle table (and drop every remembered open failure) not in v; tables not in v
 * with handles out are closed when their last handle is put. Returns how many were closed.
 * Thread-safe. */
size_t sl__tables_trim(struct sl_tables *tc, const struct sl_version *v);
/* Tables open and handles out (tests and stats). Thread-safe. */
void sl__tables_stats(struct sl_tables *tc, size_t *open, uint64_t *handles);
/* What the lookups' bloom probes said so far: probes, "certainly absent" answers, and "maybe"
 * answers whose table did not hold the key (false positives). Thread-safe. */
void sl__tables_bloom_stats(struct sl_tables *tc, uint64_t *probes, uint64_t *negatives,
			    uint64_t *false_pos);

/* Point lookup of key (hash = sl__bloom_hash(key, klen)) through v: level 0 newest first
 * (tables whose key range holds the key), then at most one table per level >= 1, by binary
 * search on the key ranges. Each table's bloom is asked first. 0 with *val (vlen bytes, pointing
 * into the holder's mapping) and *flags, and *holder set: the caller gives it back with
 * sl__tables_put, and *val stays valid until then. SL_ENOTFOUND when no table has the key or the
 * newest entry is a deletion (a tombstone without a value; a tombstone with a value is a final
 * state, answered like any entry: compaction drops it at the bottom level). SL_ECORRUPT when a table that had to be read has a damaged block,
 * and the open error (-ENOENT, SL_ECORRUPT, ...) of one that does not open: an error is returned
 * rather than an older value the damaged table might hide. -EINVAL for a bad key length. On any
 * return but 0, *holder is NULL. Thread-safe. */
int sl__tables_lookup(struct sl_tables *tc, const struct sl_version *v, const uint8_t *key,
		      size_t klen, uint64_t hash, const void **val, size_t *vlen, uint32_t *flags,
		      struct sl_sst **holder);

/* One key's answer in a batch: rc is what sl__tables_lookup would return for it, and the other
 * fields what it would fill (holder NULL unless rc is 0; give each back with sl__tables_put). */
struct sl_tables_result {
	int rc;
	uint32_t flags;
	const void *val;
	size_t vlen;
	struct sl_sst *holder;
};

/* Look n keys up through v, table by table: for each table, every pending key that falls in it
 * is checked against its bloom together, then the hits are read. Per key the same answer as
 * sl__tables_lookup. Returns 0 (answers in res[0..n)), or -EINVAL for a bad key length (nothing
 * answered, no holders taken). Thread-safe. */
int sl__tables_lookup_batch(struct sl_tables *tc, const struct sl_version *v, size_t n,
			    const uint8_t *const *keys, const size_t *klens, const uint64_t *hashes,
			    struct sl_tables_result *res);

struct sl_tables_events;

/* A cursor over the events of v's event tables (SL_EVENT_LEVEL) from from_seq on, in sequence
 * order. It takes a handle on every event table it may read at open, so it stays readable after
 * v is superseded, or its tables forgotten and deleted. 0, -ENOMEM, or an open error of one of
 * those tables. One thread at a time per cursor. */
int sl__tables_events_open(struct sl_tables *tc, const struct sl_version *v, uint64_t from_seq,
			   struct sl_tables_events **out);
/* The next event: 0 with its fields (payload points into a table mapping, valid until the
 * cursor is closed); SL_EEND after the last event of the last event table (the caller goes on
 * from the log); SL_ECORRUPT for a damaged block, a key that is not an event key, a bad value
 * or sequences out of order (sticky). */
int sl__tables_events_next(struct sl_tables_events *c, uint64_t *seq, uint32_t *kind,
			   uint64_t *rx_ns, const uint8_t **payload, size_t *plen);
/* Accepts NULL. */
void sl__tables_events_close(struct sl_tables_events *c);

/* One damaged or missing table, as sl__tables_verify reports it. */
struct sl_tables_damage {
	uint64_t file_no;
	uint32_t level;
	char path[256];
	uint64_t off;	  /* offset of the first bad block (the footer's for footer values) */
	const char *what; /* static text */
	int err;	  /* SL_ECORRUPT, or the open error (-ENOENT for a missing file) */
};

/* Check every table of v: it opens, sl__sst_verify passes (every block's CRC, key order, bloom,
 * counts), and its footer agrees with the manifest (entry count, file size, the user values as
 * [min_seq, max_seq], smallest and largest keys). cb (may be NULL) is called for each damaged
 * table, in level then manifest order; a nonzero return stops the walk and is returned. first
 * (may be NULL) gets the first damage. Returns 0 when every table is sound, else the first
 * damage's err (or -ENOMEM when verify itself ran out of memory). Thread-safe. */
int sl__tables_verify(struct sl_tables *tc, const struct sl_version *v,
		      int (*cb)(void *arg, const struct sl_tables_damage *d), void *arg,
		      struct sl_tables_damage *first);

/* Delete every DIR/<16 hex digits>.sst not in v: leftovers of a flush or compaction that died
 * before its manifest edit (file numbers not recorded durably are handed out again after a
 * restart, so a higher number proves nothing). Call it only while no table is being written
 * (at open, before flushes start). Other files are left alone. Returns how many were removed,
 * or -errno (list, unlink or sync_dir). */
int sl__tables_remove_orphans(struct sl_tables *tc, const struct sl_version *v);

#endif /* SL_TABLES_H */
