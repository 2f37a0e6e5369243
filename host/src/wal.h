/* wal.h - the local write-ahead log behind the log seam (log.h): preallocated, zero-filled
 * segment files of CRC32C-protected records, group commit (many appends, one fdatasync) on a
 * committer thread, recovery that truncates a torn tail and refuses to skip a corrupt record in
 * the middle. wal knows nothing of ITCH, the memtable or the store above it.
 *
 * On disk, little-endian: DIR/wal/<index:016x>.wal, each starting with a 64-byte header
 * (magic "SLUICEWL", version, index, segment size, creation time, CRC32C), then records back to
 * back: crc32c(u32, over the rest of the record) len(u16) type(u8) flags(u8) seq(u64)
 * rx_ns(u64) payload[len]. The unused rest of a segment is zeros.
 */
#ifndef SL_WAL_H
#define SL_WAL_H

#include <stdint.h>

#include "accel.h"
#include "log.h"
#include "os.h"

#define SL_WAL_MIN_SEGMENT (128u * 1024u)

struct sl_wal_config {
	const char *dir;               /* the data directory; segments go in dir/wal */
	uint64_t segment_bytes;        /* default 64 MiB, at least SL_WAL_MIN_SEGMENT */
	uint64_t buffer_bytes;         /* two commit buffers of half this each (default 64 MiB) */
	uint32_t commit_interval_us;   /* linger before a commit below commit_max_bytes (0) */
	uint32_t commit_max_bytes;     /* commit at once past this much buffered (4 MiB) */
	int rdonly;                    /* recover without repairing; no appends, no threads */
	int no_sync;                   /* skip fdatasync (benchmarks of the CPU path only) */
};

/* Open dir/wal (created if missing unless rdonly), recover: every record of every segment is
 * checked and handed to recover(arg, rec) in order (a nonzero return aborts the open and is
 * returned). A torn tail is zeroed (not in rdonly) and reported on stderr; a corrupt record
 * followed by good ones fails with SL_ECORRUPT naming the segment and offset. *out is a log
 * whose impl is owned by it: release with log->ops->close(log->impl), then free nothing else. */
int sl__wal_open(const struct sl_wal_config *cfg, const struct sl_os *os, struct sl_accel *accel,
		 int (*recover)(void *arg, const struct sl_log_rec *rec), void *arg,
		 struct sl_log *out);

/* Check every segment of dir/wal without opening for write. 0 when sound; SL_ECORRUPT and the
 * first bad file (path, cap) and offset otherwise. *records counts good records; *torn_bytes
 * the torn tail (sound). */
int sl__wal_verify(const char *dir, const struct sl_os *os, struct sl_accel *accel, char *path,
		   size_t cap, uint64_t *off, uint64_t *records, uint64_t *torn_bytes);

#endif /* SL_WAL_H */
