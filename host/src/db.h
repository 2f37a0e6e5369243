/* db.h - internal entry points of the engine for tests: open with a given os seam (a fault
 * twin, a crash simulator). Everything else of db is the public API in sluice.h.
 */
#ifndef SL_DB_H
#define SL_DB_H

#include "os.h"
#include "sluice.h"

int sl__db_open_os(const struct sl_options *o, const struct sl_os *os, struct sl_db **out);

#endif /* SL_DB_H */
