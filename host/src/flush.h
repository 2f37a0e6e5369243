/* flush.h - turn an immutable memtable into a state table (every order, stock and trade in key
 * order, keys.h), and the log records it was built from into an event table (the event stream
 * of [first_seq, last_seq], keyed by sequence). They are separate files because they age
 * differently: state tables are compacted, event tables are only ever dropped by retention.
 * flush knows the memtable, the log seam and tables, and nothing of levels or the manifest.
 */
#ifndef SL_FLUSH_H
#define SL_FLUSH_H

#include <stdint.h>

#include "accel.h"
#include "log.h"
#include "memtable.h"
#include "os.h"
#include "sst.h"

struct sl_flush_result {
	struct sl_sst_meta meta;
	uint64_t events, orders, stocks, trades;
};

/* Write the memtable's state as a new table at path; the memtable must not change meanwhile.
 * The footer's user values are opt->user (db puts the sequence range there). On failure no
 * file is left. */
int sl__flush_state(struct sl_memtable *m, const struct sl_os *os, struct sl_accel *accel,
		    const char *path, const struct sl_sst_options *opt, struct sl_flush_result *out);

/* Write the log records [first_seq, last_seq] as a new event table at path. The log must hold
 * them durably (SL_EGAP if the cursor ends early). Footer user values: first_seq, last_seq. On
 * failure no file is left. */
int sl__flush_events(struct sl_log *log, uint64_t first_seq, uint64_t last_seq,
		     const struct sl_os *os, struct sl_accel *accel, const char *path,
		     const struct sl_sst_options *opt, struct sl_flush_result *out);

#endif /* SL_FLUSH_H */
