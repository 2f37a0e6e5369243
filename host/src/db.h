/* db.h - internal entry points of the engine for tests: open with a given os seam (a fault
 * twin, a crash simulator). Everything else of db is the public API in sluice.h.
 */
#ifndef SL_DB_H
#define SL_DB_H

#include "log.h"
#include "os.h"
#include "sluice.h"

int sl__db_open_os(const struct sl_options *o, const struct sl_os *os, struct sl_db **out);

/* Cluster mode: open with a replicated log (log.h, version 2) in place of the WAL. The store's
 * tables are recovered as usual; the log is bound to the engine's apply path (only committed
 * records change the state, on the log's thread) and owned by the db from here on (closed by
 * sl_db_close through its ops). Appends are proposals that only the leader makes: packets a
 * follower receives are kept (the most recent, bounded) for the day it leads; messages get
 * SL_ENOTLEADER. SL_ECONFIG for a log that is not replicated or a read-only open. */
int sl__db_open_log(const struct sl_options *o, const struct sl_log *log, struct sl_db **out);

/* Cluster mode, once the replicated log delivers no more (its thread stopped): write what was
 * committed and applied to tables, so that the directory alone (offline replay, verify, a
 * restart) holds it. 0, or the flush's error. */
int sl__db_flush_quiesced(struct sl_db *db);

/* Cluster mode, replication snapshots (the log's thread, inside its snapshot and restore
 * callbacks). pin: sl__store_pin of the current tables into dst_dir. install: the state becomes
 * the tables in src_dir as of checkpoint (> what was applied): what was applied is flushed
 * first, then the table set is replaced in one manifest edit; the log's thread goes on applying
 * after checkpoint. 0 or an error (the state is as it was). */
/* Cluster mode: rotate the memtable at the next apply, so what was applied reaches tables
 * soon (returns at once). */
void sl__db_request_flush(struct sl_db *db);

struct sl_table_info;
int sl__db_pin_tables(struct sl_db *db, const char *dst_dir, struct sl_table_info **out,
		      size_t *n, uint64_t *checkpoint);
int sl__db_install_tables(struct sl_db *db, const char *src_dir, const struct sl_table_info *t,
			  size_t n, uint64_t checkpoint);

#endif /* SL_DB_H */
