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

#endif /* SL_DB_H */
