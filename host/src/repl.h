/* repl.h - replication of the log on canonical raft: the raft state machine (FSM) of one node
 * and the log seam (log.h, version 2) the engine writes through in cluster mode. A raft entry
 * carries one or more frames; a frame is many log records under one CRC32C. Committed entries
 * reach the engine's apply path on every node, each record once; the committed records after
 * the tables' checkpoint stay in memory for cursors (replay, flushes) until the store's
 * checkpoint passes them, so the raft log replaces the WAL and nothing is written twice.
 *
 * repl does not run raft: whoever owns the raft instance (repl_node.c over raft_uv, or a test's
 * raft_fixture) calls sl__repl_poll on raft's thread whenever proposals may be waiting or the
 * role may have changed. repl knows nothing of db: it hands committed records to a callback.
 *
 * Frame, little-endian: magic "SLRF"(u32) version(u16) flags(u16) count(u32) bytes(u32)
 * crc32c(u32, over the records) reserved(u32), then count records of: seq(u64) rx_ns(u64)
 * len(u32) type(u32) data[len], then zeros up to a multiple of 8 bytes (raft_uv 0.15 misreads
 * its segments when an entry's length is not one). An entry is frames back to back.
 *
 * A snapshot (raft's buffer) is small whatever the store's size: a header (magic "SLSN",
 * version 2, the last applied sequence, the tables' checkpoint, the record count, the
 * description's length, a CRC32C of the rest), the tables' description (opaque here: the
 * snapshot ops make and read it; the table files travel on their own channel, repl_snap.c),
 * then frames of the committed records after the checkpoint.
 */
#ifndef SL_REPL_H
#define SL_REPL_H

#include <raft.h>
#include <stdint.h>

#include "log.h"
#include "sluice.h"

#define SL_REPL_FRAME_MAGIC 0x46524c53u /* "SLRF" */
#define SL_REPL_SNAP_MAGIC  0x4e534c53u /* "SLSN" */
#define SL_REPL_VERSION     1
#define SL_REPL_FRAME_HDR   24u
#define SL_REPL_REC_HDR     24u

struct sl_repl_config {
	uint64_t max_inflight_bytes; /* proposals not yet committed before append waits (64 MiB) */
	uint32_t max_entry_bytes;    /* queued batches coalesce into entries up to this (1 MiB) */
	int no_wait;                 /* append never waits for room: SL_ETIMEDOUT instead (tests
					 driving raft on the appending thread) */
	int sync_snapshots;          /* encode snapshots on raft's thread (raft's fixture, whose
					 I/O says version 1, has no asynchronous snapshots); the
					 default encodes them on libuv's thread pool, which needs a
					 raft_io of version 2 (repl_node.c sets raft_uv's) */
};

/* What a node knows of itself, for status and tests. Any thread (a consistent copy). */
struct sl_repl_status {
	int state;                 /* RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER, ... */
	int ready;                 /* leader and its barrier applied: appends accepted */
	uint64_t id, leader_id, term, epoch;
	char leader_address[128];
	uint64_t commit_index, applied_index, last_index;
	uint64_t applied_seq;      /* the last record applied (= committed and durable) */
	uint64_t proposed_seq;     /* the last record proposed by this node as leader */
	uint64_t entries_applied, records_applied, records_skipped, frames_corrupt;
	uint64_t proposals, proposals_failed, snapshots_taken, snapshots_restored;
	uint64_t snapshot_bytes;   /* the last snapshot taken, raft's buffer */
	uint64_t snapshot_tables_installed; /* tables fetched by installs */
	uint64_t inflight_bytes, retained_records, retained_bytes;
	unsigned n_servers;
	struct {
		uint64_t id;
		char address[128];
		int role;            /* RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE */
		uint64_t match_index; /* leader only: replicated through this index */
	} servers[9];
};

struct sl_repl;

/* A node's replication state, not yet attached to a raft. 0 or -ENOMEM. */
int sl__repl_new(const struct sl_repl_config *cfg, struct sl_repl **out);
/* After raft and the db are gone. Accepts NULL. */
void sl__repl_free(struct sl_repl *r);

/* The FSM to hand raft_init or raft_fixture_grow; lives as long as r. */
struct raft_fsm *sl__repl_fsm(struct sl_repl *r);

/* The log seam over this node's raft, to open the db with (sl__db_open_log). Its close op
 * only stops appends: r still owns everything. */
void sl__repl_log(struct sl_repl *r, struct sl_log *out);

/* The tables' part of snapshots. take (raft's thread, the committed store locked: keep it
 * short): pin the current tables so they outlive compaction; *checkpoint: every record <= it is
 * in them; *desc (malloc'd, *len bytes): what install needs on another node. install (raft's
 * thread): make the state the tables desc describes, as of checkpoint, or a newer node's
 * tables (*installed: their checkpoint, >= checkpoint); returns how many tables it fetched, or
 * an error. Without these (tests over raft's fixture)
 * a snapshot carries every committed record kept. Set before raft starts. */
struct sl_repl_snap_ops {
	int (*take)(void *arg, uint64_t *checkpoint, void **desc, size_t *len);
	int (*install)(void *arg, const void *desc, size_t len, uint64_t checkpoint,
		       uint64_t *installed);
	void (*flush)(void *arg);   /* optional: start writing what was applied to tables (do
				       not wait); a snapshot asks before copying a big tail */
	void *arg;
};
void sl__repl_set_snap_ops(struct sl_repl *r, const struct sl_repl_snap_ops *ops);

/* The raft instance (initialized, started or not) and how to wake its thread from another one
 * (kick: e.g. uv_async_send; NULL where the appending thread drives raft itself). */
void sl__repl_attach(struct sl_repl *r, struct raft *raft, void (*kick)(void *), void *arg);

/* Raft's thread: follow role changes (a new leader first commits a barrier, then accepts
 * appends after everything committed before: a new epoch), and submit queued proposals as
 * entries. Cheap when nothing changed. */
void sl__repl_poll(struct sl_repl *r);

/* Raft's thread: stop for good (raft is closing): proposals fail, waiters wake. */
void sl__repl_shutdown(struct sl_repl *r);

void sl__repl_get_status(struct sl_repl *r, struct sl_repl_status *out);

/* Encode n records as one frame into buf (cap bytes). Returns the frame's size, or -ENOSPC. */
long sl__repl_frame_encode(const struct sl_log_rec *recs, size_t n, void *buf, size_t cap);
/* Check and decode the frame at p (len bytes available): calls each(arg, rec) in order.
 * Returns the frame's size, SL_ECORRUPT (bad magic, length or CRC), or each()'s error. */
long sl__repl_frame_decode(const void *p, size_t len,
			   int (*each)(void *arg, const struct sl_log_rec *rec), void *arg);

#endif /* SL_REPL_H */
