/* log.h - the log seam: what the engine needs from a durable, ordered log of records. wal.c is
 * the local implementation; a replicated log (raft) can take its place without db.c changing.
 * A record is the raw bytes of what arrived plus its sequence, receive time and kind.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stddef.h>
#include <stdint.h>

enum sl_log_rec_type {
	SL_LOG_MSG = 1,   /* payload: one raw ITCH message as received */
	SL_LOG_GAP = 2,   /* payload: u64 LE count of lost sequences starting at seq */
	SL_LOG_BAD = 3,   /* payload: a message that did not decode (kept: the log is exact) */
};

struct sl_log_rec {
	uint64_t seq;     /* strictly increasing across the log; gaps allowed */
	uint64_t rx_ns;
	const void *data;
	uint32_t len;     /* <= SL_LOG_MAX_PAYLOAD */
	uint32_t type;    /* enum sl_log_rec_type */
};

#define SL_LOG_MAX_PAYLOAD 65535u

struct sl_log_stats {
	uint64_t segments; /* alive now */
	uint64_t bytes, commits, syncs, records;
	uint64_t backpressure_waits, io_errors, prepare_errors;
	uint64_t recovered_records, recovery_torn_bytes, recovery_ns;
};

struct sl_log_cursor;

#define SL_LOG_OPS_VERSION 2

/* What a replicated log hands its user (version 2, see bind below): committed records, in order,
 * on the log's own thread. apply returns 0 or an error that the log reports and goes on from. */
struct sl_log_apply {
	int (*apply)(void *arg, const struct sl_log_rec *recs, size_t n);
	void *arg;
};

struct sl_log_ops {
	int version;
	const char *name;
	/* Writer thread only. Copies the records; their seqs must increase past every earlier
	 * one (SL_EORDER otherwise). Returns 0, or the error that stopped the log (SL_EFAILED
	 * after an I/O error: nothing more is accepted until the log is reopened). */
	int (*append_batch)(void *log, const struct sl_log_rec *recs, size_t n);
	/* Highest sequence durable. Any thread, lock-free. */
	uint64_t (*durable_seq)(void *log);
	/* Block until durable_seq >= seq. timeout_ns < 0: forever. 0, SL_ETIMEDOUT, or the error
	 * that stopped the log. Any thread. */
	int (*wait_durable)(void *log, uint64_t seq, int64_t timeout_ns);
	/* Commit what is buffered now. Any thread. */
	void (*sync_now)(void *log);
	/* A cursor over durable records with seq >= from, in order. Any thread; each cursor is
	 * used by one thread at a time. next: 0, SL_EEND (nothing more durable yet), SL_ECORRUPT
	 * (named on stderr), -errno. rec->data stays valid until the next call on the cursor. */
	int (*cursor_open)(void *log, uint64_t from, struct sl_log_cursor **out);
	int (*cursor_next)(struct sl_log_cursor *c, struct sl_log_rec *rec);
	void (*cursor_close)(struct sl_log_cursor *c);
	/* Drop whole segments holding only records < seq (after a checkpoint). */
	int (*truncate_before)(void *log, uint64_t seq);
	void (*get_stats)(void *log, struct sl_log_stats *out);
	/* Commit, sync, stop, free. Returns the first I/O error seen. */
	int (*close)(void *log);
	/* Version 2, NULL for a local log (wal): a replicated log, where appends are proposals
	 * that only this group's leader may make and records reach the state only once committed.
	 * bind: from now on, committed records with seq > applied_seq go to ap->apply (on the
	 * log's thread, in order, each once); the user applies nothing at append. Once, before
	 * the log starts. 0 or -errno.
	 * writable: whether the writer may append now: 0 when this node leads and is ready, with
	 * *epoch (changes each time this node becomes ready to lead) and *resume_seq (everything
	 * committed before: the writer goes on after it); SL_ENOTLEADER otherwise. Writer thread. */
	int (*bind)(void *log, const struct sl_log_apply *ap, uint64_t applied_seq);
	int (*writable)(void *log, uint64_t *epoch, uint64_t *resume_seq);
};

struct sl_log {
	const struct sl_log_ops *ops;
	void *impl;
};

#endif /* SL_LOG_H */
