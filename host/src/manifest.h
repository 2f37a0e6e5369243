/* manifest.h - the set of live tables per level as an append-only log of edits, each with a
 * CRC32C, in DIR/MANIFEST-<n>; DIR/CURRENT names the live manifest file. An edit is durable
 * (fdatasync) before apply returns, so files an edit obsoletes may be deleted after it. When
 * the log grows past a limit it is rewritten as one snapshot edit into a new file and CURRENT
 * is switched atomically (write CURRENT.tmp, fsync, rename, fsync the directory). Readers take
 * refcounted immutable versions. manifest knows nothing of what tables contain.
 */
#ifndef SL_MANIFEST_H
#define SL_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"
#include "os.h"

#define SL_LEVELS 7
#define SL_MANIFEST_MAX_KEY 64

struct sl_table_info {
	uint64_t file_no;           /* the table is DIR/<file_no:016x>.sst */
	uint32_t level;
	uint64_t file_bytes, entries;
	uint8_t smallest[SL_MANIFEST_MAX_KEY], largest[SL_MANIFEST_MAX_KEY];
	uint32_t smallest_len, largest_len;
	uint64_t min_seq, max_seq;  /* log sequences of what the table holds */
};

/* A change: tables added and removed, and optionally new values of the two counters. */
struct sl_manifest_edit {
	const struct sl_table_info *add;
	size_t n_add;
	const uint64_t *del;        /* file numbers */
	size_t n_del;
	uint64_t checkpoint_seq;    /* if nonzero: every record <= it is in tables (the log
				       before it may go); must not decrease */
};

/* An immutable set of live tables. Tables of level 0 may overlap, newest (highest file_no)
 * first; tables of levels >= 1 are sorted by smallest key and do not overlap. */
struct sl_version {
	uint64_t refs;              /* managed by acquire/release */
	uint64_t checkpoint_seq;
	uint64_t next_file_no;
	size_t n[SL_LEVELS];
	struct sl_table_info *tables[SL_LEVELS];
	uint64_t edits;             /* edits applied since the store was created */
};

struct sl_manifest;

/* Open DIR's manifest (create an empty one when rdonly is 0 and there is none; DIR must exist;
 * a read-only open of a store without one sees an empty version). Replays every edit, checking
 * each CRC: a torn (or damaged: the two cannot be told apart) last edit is dropped, said on
 * stderr and truncated unless rdonly; a bad edit followed by good ones is SL_ECORRUPT with a
 * stderr line naming file and offset. SL_EVERSION for a format it does not know. */
int sl__manifest_open(const struct sl_os *os, struct sl_accel *accel, const char *dir, int rdonly,
		      struct sl_manifest **out);
/* Accepts NULL. Versions still acquired stay valid until released. */
void sl__manifest_close(struct sl_manifest *m);

/* A new, unique file number for a table about to be written. Thread-safe. */
uint64_t sl__manifest_new_file_no(struct sl_manifest *m);

/* Append the edit, fdatasync it, and install the resulting version. Deletes apply before adds,
 * so one edit can move a table between levels (delete and re-add its file_no). Removing a table that is
 * not live, adding one that is, or a decreasing checkpoint: -EINVAL and nothing changes. I/O
 * errors: -errno, nothing installed (the manifest stays open and may be retried); SL_EFAILED
 * once undoing a failed append itself failed (reopen to recover). One writer at a time
 * (internally locked). File numbers handed out but not yet recorded by a durable edit may be
 * handed out again after a restart: a table file found with such a number is an orphan. */
int sl__manifest_apply(struct sl_manifest *m, const struct sl_manifest_edit *e);

/* The current version with a reference, and its release. Thread-safe, cheap. */
struct sl_version *sl__manifest_acquire(struct sl_manifest *m);
void sl__manifest_release(struct sl_manifest *m, struct sl_version *v);

/* Bytes of the live manifest file, and its path (for tests and stats). The path string is
 * rewritten by a rewrite: valid until the next apply, not to be read concurrently with one. */
uint64_t sl__manifest_file_bytes(const struct sl_manifest *m);
const char *sl__manifest_path(const struct sl_manifest *m);

/* The offset where open dropped a torn last edit, 0 when it dropped none. */
uint64_t sl__manifest_torn_off(const struct sl_manifest *m);

/* Rewrite as a snapshot when the log passes this many bytes and is at least twice the size of
 * its snapshot (default 4 MiB; tests lower it). */
void sl__manifest_set_rewrite_bytes(struct sl_manifest *m, uint64_t bytes);

/* Check DIR's manifest without opening it for write: 0, or SL_ECORRUPT with the file and
 * offset of the first bad edit. */
int sl__manifest_verify(const struct sl_os *os, struct sl_accel *accel, const char *dir,
			char *path, size_t cap, uint64_t *off);

#endif /* SL_MANIFEST_H */
