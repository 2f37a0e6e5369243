/* sluice.h - the one public header of libsluice: ingest NASDAQ TotalView-ITCH 5.0 over
 * MoldUDP64, make it durable, query it, replay it. A gateway links libsluice.a or libsluice.so
 * and this header and nothing else.
 *
 * Conventions (every function below follows them unless its comment says otherwise):
 *  - 0 on success, a negative errno or a negative SL_E* code on failure; sl_strerror() names both.
 *  - Handles are opaque. Destructors accept NULL.
 *  - Structs passed in carry a `version` field: set it with the matching *_init() function so
 *    the library can grow the struct without breaking callers built against an older header.
 *  - Thread safety: one writer (append) thread per database; any number of reader threads may
 *    call the get/iterate/stats functions concurrently with it.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SL_BUILDING_LIBRARY)
#define SL_API __attribute__((visibility("default")))
#else
#define SL_API
#endif

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0

/* Project error codes: all below -4095 so they never collide with -errno. */
#define SL_ERRORS(X)                                                                          \
	X(SL_ECORRUPT, -5000, "data corrupt (checksum or format mismatch)")                    \
	X(SL_ENOTFOUND, -5001, "not found")                                                    \
	X(SL_EBADMSG, -5002, "malformed message")                                              \
	X(SL_EUNKNOWN, -5003, "unknown message type")                                          \
	X(SL_EGAP, -5004, "sequence gap")                                                      \
	X(SL_ESESSION, -5005, "packet belongs to another MoldUDP64 session")                   \
	X(SL_EVERSION, -5006, "unsupported format or struct version")                          \
	X(SL_ECONFIG, -5007, "invalid option or configuration value")                          \
	X(SL_ELOCKED, -5008, "data directory is locked by another process")                    \
	X(SL_ERDONLY, -5009, "database is open read-only")                                     \
	X(SL_ETIMEDOUT, -5010, "timed out")                                                    \
	X(SL_EORDER, -5011, "sequence not increasing")                                         \
	X(SL_EFAILED, -5012, "database failed earlier (I/O error); reopen to recover")         \
	X(SL_EEND, -5013, "end of stream")                                                     \
	X(SL_ENOTLEADER, -5014, "not the cluster's leader (writes go to the leader)")

enum sl_error {
#define SL_ERR_ENUM(name, value, text) name = value,
	SL_ERRORS(SL_ERR_ENUM)
#undef SL_ERR_ENUM
};

/* A human-readable text for any return code of this library (SL_E* or -errno). The string is
 * static. Thread-safe. */
SL_API const char *sl_strerror(int err);

/* "0.1.0". Static string. */
SL_API const char *sl_version(void);

/* ---- Options ------------------------------------------------------------------------------ */

#define SL_OPTIONS_VERSION 1

enum sl_open_flags {
	SL_OPEN_CREATE = 1 << 0,   /* create the data directory if it is missing */
	SL_OPEN_RDONLY = 1 << 1,   /* read-only: no lock, no repair, no appends */
	SL_OPEN_NO_SYNC = 1 << 2,  /* never fdatasync (tests and benchmarks of the CPU path only) */
};

struct sl_options {
	uint32_t version;          /* SL_OPTIONS_VERSION */
	uint32_t flags;            /* enum sl_open_flags */
	const char *data_dir;      /* required; copied at open */
	uint64_t wal_segment_bytes;     /* preallocated size of one log segment (default 64 MiB) */
	uint32_t commit_interval_us;    /* linger before a group commit, to gather more appends
					   (default 0: commit as soon as the last one finished,
					   which batches naturally under load) */
	uint32_t commit_max_bytes;      /* commit early when this much is buffered (default 4 MiB) */
	uint64_t wal_buffer_bytes;      /* in-memory log buffer; appends wait when it is full
					   (back-pressure, counted; default 64 MiB) */
	const char *rerequest_addr;     /* "HOST:PORT" of the feed's rewinder, or NULL for none */
	uint32_t rerequest_timeout_us;  /* resend a re-request not answered within this (50 ms) */
	uint32_t gap_give_up_ms;        /* declare a gap lost after this long (default 5000 ms);
					   a lost gap is logged as a GAP record and counted */
	uint32_t reorder_buffer_packets; /* out-of-order packets held while a gap fills (4096) */
	const char *accel;              /* "auto" (default: the planner routes each call to cpu or
					   a device present), "cpu", "sim", "opencl", "xrt" */
	const char *accel_binary;       /* an xclbin or OpenCL program binary to load (NULL:
					   build kernels from source where the device allows) */
	const char *accel_device;       /* OpenCL device: platform/device name substring or
					   "P:D" indexes (NULL: the first) */
	uint64_t memtable_bytes;        /* when the memtable's records pass this (default 256
					   MiB), it is flushed to tables in the background and
					   the log behind it is dropped; 0 = never */
	uint64_t expected_orders;       /* the order table is sized for this many up front
					   (default 1M, about 64 MiB); growing past it rehashes
					   on the applier thread (a stall of ~0.3 s at 1M) */
	uint64_t event_retain_bytes;    /* keep at most this many bytes of event tables (the
					   oldest go first; 0 = no limit) */
	uint64_t event_retain_secs;     /* drop event tables whose newest event was received
					   longer ago than this (0 = no limit) */
	uint32_t compaction;            /* 1 (default): background leveled compaction; 0: none
					   (sl_db_compact still works) */
};

/* Fill *o with defaults and the current version. */
SL_API void sl_options_init(struct sl_options *o);

/* ---- Database ----------------------------------------------------------------------------- */

struct sl_db;

/* Open (and recover) the store in o->data_dir: replays the log, verifies every record's CRC,
 * truncates a torn tail (reported in stats and on stderr), and rebuilds the in-memory state.
 * A corrupt record in the middle of the log fails the open with SL_ECORRUPT and a message on
 * stderr naming the segment file and offset. Unless SL_OPEN_RDONLY, takes an exclusive lock on
 * the directory (SL_ELOCKED if another process holds it) and starts the group-commit thread.
 * On success *out owns everything; release it with sl_db_close(). */
SL_API int sl_db_open(const struct sl_options *o, struct sl_db **out);

/* Flush and sync everything appended, stop the threads, release the lock, free the handle.
 * Accepts NULL. Returns the first I/O error seen while syncing, else 0. Not concurrent with
 * any other call on the same handle. */
SL_API int sl_db_close(struct sl_db *db);

/* One received MoldUDP64 packet: bytes (not copied beyond the call), length, receive time in
 * nanoseconds (CLOCK_REALTIME; 0 = now). */
struct sl_packet {
	const void *data;
	uint32_t len;
	uint64_t rx_ns;
};

/* Append a batch of raw MoldUDP64 packets (downstream format). The session tracker delivers
 * messages in sequence order, drops duplicates, buffers packets that arrive early, detects gaps
 * and sends re-requests to o->rerequest_addr; every delivered message is logged (its raw bytes,
 * its MoldUDP64 sequence, its receive time), then applied to the state by the applier thread
 * microseconds later (sl_db_applied_seq; sl_db_wait_durable waits for both). Malformed packets and
 * messages are counted (sl_stats) and never abort the batch. Returns 0 or a fatal error
 * (I/O failure, SL_ERDONLY). Writer thread only. */
SL_API int sl_db_append_packets(struct sl_db *db, const struct sl_packet *pkts, size_t n);

/* One ITCH message that did not come through MoldUDP64 (a gateway's own stream, a NASDAQ
 * binary file). */
struct sl_msg {
	const void *data;
	uint16_t len;
	uint64_t rx_ns;  /* 0 = now */
};

/* Append a batch of raw ITCH 5.0 messages. They take the sequences last+1 .. last+n; the last
 * is stored in *last_seq when that is not NULL. Writer thread only. */
SL_API int sl_db_append_messages(struct sl_db *db, const struct sl_msg *msgs, size_t n,
				 uint64_t *last_seq);

/* Highest sequence appended (may not be durable yet). Thread-safe. */
SL_API uint64_t sl_db_last_seq(struct sl_db *db);

/* Highest sequence durable on disk (fdatasync done). Thread-safe, lock-free. */
SL_API uint64_t sl_db_durable_seq(struct sl_db *db);

/* Wait until sl_db_durable_seq() >= seq, and then until the state reflects seq too (queries
 * see it: the applier thread trails the log by microseconds). timeout_ns < 0 waits forever
 * (the timeout bounds the durability wait). Returns 0, SL_ETIMEDOUT, or the I/O error that
 * stopped the log. Thread-safe. */
SL_API int sl_db_wait_durable(struct sl_db *db, uint64_t seq, int64_t timeout_ns);

/* Highest sequence applied to the in-memory state (what queries see). Thread-safe. */
SL_API uint64_t sl_db_applied_seq(struct sl_db *db);

/* Ask the log to commit what is buffered now instead of at the next interval. Thread-safe. */
SL_API void sl_db_sync(struct sl_db *db);

/* ---- State queries ------------------------------------------------------------------------ */

enum sl_order_status {
	SL_ORDER_OPEN = 0,       /* resting, maybe partially executed */
	SL_ORDER_EXECUTED = 1,   /* fully executed */
	SL_ORDER_CANCELLED = 2,  /* cancelled down to zero shares */
	SL_ORDER_DELETED = 3,    /* deleted (D) */
	SL_ORDER_REPLACED = 4,   /* replaced (U) by replaced_by */
};

/* Name of a status ("open", "executed", ...). Static string. */
SL_API const char *sl_order_status_name(int status);

#define SL_ORDER_VERSION 1

struct sl_order {
	uint32_t version;       /* SL_ORDER_VERSION, set by the library */
	uint16_t locate;        /* ITCH stock locate */
	char side;              /* 'B' or 'S' */
	uint8_t status;         /* enum sl_order_status */
	uint64_t ref;           /* ITCH order reference number */
	char stock[9];          /* symbol, trailing spaces removed, NUL terminated */
	char mpid[5];           /* attribution for F messages, else "" */
	uint32_t price;         /* ITCH Price(4): 4 implied decimals */
	uint32_t shares;        /* remaining shares */
	uint32_t orig_shares;   /* shares when added (or when it replaced another) */
	uint32_t executed_shares;
	uint32_t cancelled_shares;
	uint64_t replaced_by;   /* new reference number when status == SL_ORDER_REPLACED */
	uint64_t replaces;      /* the reference number this order replaced, else 0 */
	uint64_t added_ts;      /* ITCH timestamp, ns since midnight */
	uint64_t updated_ts;
	uint64_t added_seq;     /* log sequence of the message that created it */
	uint64_t updated_seq;   /* log sequence of the last message that changed it */
};

/* Look an order up by (stock locate, order reference number). Returns 0 and fills *out, or
 * SL_ENOTFOUND. Thread-safe, lock-free; sees every message up to sl_db_applied_seq() (which
 * may be ahead of the durable sequence, or a few microseconds behind the last append). */
SL_API int sl_db_get_order(struct sl_db *db, uint16_t locate, uint64_t ref, struct sl_order *out);

#define SL_TRADE_VERSION 1

enum sl_trade_kind {
	SL_TRADE_EXECUTION = 'E',  /* order executed (E) */
	SL_TRADE_EXEC_PRICE = 'C', /* order executed with price (C) */
	SL_TRADE_NONCROSS = 'P',   /* non-displayed trade (P) */
	SL_TRADE_CROSS = 'Q',      /* cross trade (Q) */
};

struct sl_trade {
	uint32_t version;       /* SL_TRADE_VERSION */
	uint16_t locate;
	char kind;              /* enum sl_trade_kind */
	char side;              /* 'B'/'S' for E/C/P, ' ' for crosses */
	uint64_t match;         /* ITCH match number */
	uint64_t ref;           /* order reference number, 0 for crosses */
	char stock[9];
	char cross_type;        /* Q only */
	uint8_t printable;      /* 'Y'/'N' for C, 'Y' otherwise */
	uint8_t broken;         /* 1 once a Broken Trade (B) named it */
	uint64_t shares;
	uint32_t price;         /* ITCH Price(4) */
	uint64_t ts;            /* ITCH timestamp, ns since midnight */
	uint64_t seq;           /* log sequence */
};

/* Look a trade up by match number. 0 or SL_ENOTFOUND. Thread-safe. */
SL_API int sl_db_get_trade(struct sl_db *db, uint64_t match, struct sl_trade *out);

#define SL_STOCK_VERSION 1

struct sl_stock {
	uint32_t version;
	uint16_t locate;
	char stock[9];
	char market_category;
	char financial_status;
	uint32_t round_lot_size;
	char trading_state;     /* from H: 'H','P','Q','T'; 'T' until told otherwise */
	uint64_t seq;
};

/* Look a stock directory entry up by locate. 0 or SL_ENOTFOUND. Thread-safe. */
SL_API int sl_db_get_stock(struct sl_db *db, uint16_t locate, struct sl_stock *out);

/* ---- Replay ------------------------------------------------------------------------------- */

enum sl_event_kind {
	SL_EVENT_MESSAGE = 1,   /* an ITCH message as it arrived */
	SL_EVENT_GAP = 2,       /* sequences [seq, seq + gap_count) were lost and given up on */
};

struct sl_event {
	uint64_t seq;           /* log sequence (the MoldUDP64 sequence for packet ingest) */
	uint64_t rx_ns;         /* receive time */
	uint32_t kind;          /* enum sl_event_kind */
	uint32_t len;           /* payload length */
	uint64_t gap_count;     /* SL_EVENT_GAP only */
	const uint8_t *data;    /* the raw ITCH message; valid until the next sl_iter_next/close */
};

/* Many orders in one call: out[i] and rc[i] answer (locates[i], refs[i]) as sl_db_get_order
 * would (rc 0, SL_ENOTFOUND, or SL_ECORRUPT for a key whose table block is damaged). The keys
 * that reach the tables are looked up together, table by table, with one batched bloom probe
 * per table. Returns 0, or -EINVAL (n > 0 with a NULL array). Thread-safe. */
SL_API int sl_db_get_orders(struct sl_db *db, size_t n, const uint16_t *locates,
			    const uint64_t *refs, struct sl_order *out, int *rc);

/* Scans of one stock's orders (by added_ts) or trades (by ts) over a time range [from_ns,
 * to_ns] (ITCH timestamps, nanoseconds since midnight; to_ns 0 = no upper bound), in key order
 * (order reference, match number). A scan sees the tables of one version for its whole life
 * (flushes and compactions that run meanwhile change nothing it returns) and the memtables as
 * they were when it opened, each record as of one applied message. One thread at a time. */
enum sl_scan_kind {
	SL_SCAN_ORDERS = 'O',
	SL_SCAN_TRADES = 'T',
};

struct sl_scan;

/* 0, -EINVAL (bad kind), -ENOMEM. */
SL_API int sl_scan_open(struct sl_db *db, int kind, uint16_t locate, uint64_t from_ns,
			uint64_t to_ns, struct sl_scan **out);
/* 0 and the next record, SL_EEND after the last, SL_ECORRUPT for a damaged table block
 * (named on stderr; the scan goes on past it on the next call), -EINVAL for the wrong kind. */
SL_API int sl_scan_next_order(struct sl_scan *s, struct sl_order *out);
SL_API int sl_scan_next_trade(struct sl_scan *s, struct sl_trade *out);
SL_API void sl_scan_close(struct sl_scan *s);

/* Make everything applied so far part of the tables: rotate the memtable and wait until every
 * memtable waiting for a flush is written and recorded (and the log before it dropped). Call
 * from the appending thread (not concurrently with appends). 0, SL_ERDONLY, or the flush's
 * error. */
SL_API int sl_db_flush(struct sl_db *db);

/* Full manual compaction: merge every state table of every level into the bottom level,
 * dropping orders in a final state and every version a newer one shadows; waits until done.
 * Ingest goes on meanwhile. 0, SL_ERDONLY, or the first error (the store stays as it was). */
SL_API int sl_db_compact(struct sl_db *db);

struct sl_iter;

/* Iterate logged events with sequence >= from_seq (0: from the oldest retained), in order, up
 * to the durable sequence at the time of each call to sl_iter_next (read-only databases: up to
 * the end of the log). Older events come from event tables, newer ones from the log, so it works
 * for any retained sequence; from_seq older than the retained history (see event_retain_*) is
 * SL_ENOTFOUND. Owned by the caller:
 * release with sl_iter_close(). One iterator is used by one thread at a time. */
SL_API int sl_iter_open(struct sl_db *db, uint64_t from_seq, struct sl_iter **out);

/* 0 and *ev filled, SL_EEND when no further event is durable yet, SL_ECORRUPT on a bad record
 * (named on stderr), or -errno. */
SL_API int sl_iter_next(struct sl_iter *it, struct sl_event *ev);

SL_API void sl_iter_close(struct sl_iter *it);

enum sl_format_flags {
	SL_FORMAT_JSON = 1 << 0,
};

/* Render an event (decoded ITCH fields by name) as one line of text or one JSON object, no
 * trailing newline. Returns the length it needed (like snprintf); the output is truncated but
 * NUL terminated when that is >= cap. Thread-safe. */
SL_API int sl_event_format(const struct sl_event *ev, int flags, char *buf, size_t cap);

/* Render an order / trade as one line or one JSON object, as sl_event_format. */
SL_API int sl_order_format(const struct sl_order *o, int flags, char *buf, size_t cap);
SL_API int sl_trade_format(const struct sl_trade *t, int flags, char *buf, size_t cap);

/* ---- Front ends ----------------------------------------------------------------------------- */

/* Drive the MoldUDP64 session's timers: read the rewinder's replies (they come back to the
 * re-request socket), resend unanswered requests, give up on gaps older than gap_give_up_ms.
 * Front ends call it when idle and whenever sl_db_poll_fd() is readable. Writer thread only. */
SL_API int sl_db_tick(struct sl_db *db);

/* The re-request socket to poll for readability, or -1 when there is none. */
SL_API int sl_db_poll_fd(struct sl_db *db);

/* Declare every open gap lost now (logging GAP records) and deliver what was buffered behind
 * them: the end of a capture file, or shutdown. Writer thread only. */
SL_API int sl_db_close_gaps(struct sl_db *db);

struct sl_udp;

/* A UDP front end bound to addr ("HOST:PORT"; a multicast group address joins the group on
 * INADDR_ANY). rcvbuf_bytes sets SO_RCVBUF when nonzero. 0, SL_ECONFIG, or -errno. */
SL_API int sl_udp_open(const char *addr, uint32_t rcvbuf_bytes, struct sl_udp **out);

/* Wait at most timeout_ms for datagrams, receive a batch with recvmmsg (up to 64), append them
 * with sl_db_append_packets, and drive sl_db_tick. Returns the number of datagrams appended
 * (0 on a timeout) or a fatal error. db NULL: receive and discard (measuring the front end
 * alone). Writer thread only. */
SL_API int sl_udp_pump(struct sl_udp *u, struct sl_db *db, int timeout_ms);

struct sl_udp_stats {
	uint64_t datagrams, bytes, batches, kernel_drops; /* kernel_drops: SO_RXQ_OVFL */
};
SL_API void sl_udp_get_stats(const struct sl_udp *u, struct sl_udp_stats *out);
SL_API void sl_udp_close(struct sl_udp *u);

/* The XDP/AF_XDP front end (Linux, root or CAP_BPF + CAP_NET_ADMIN): an XDP program on ifname
 * steers the feed's datagrams (every line of cfg->feed) to one AF_XDP socket per rx queue,
 * dropping in XDP the packets of one line whose messages the other line already delivered (A/B
 * arbitration); everything else goes on to the kernel stack. */
struct sl_xsk;

#define SL_XSK_CONFIG_VERSION 1

enum sl_xsk_mode {
	SL_XSK_MODE_NATIVE = 0,   /* the driver runs the program (default) */
	SL_XSK_MODE_GENERIC = 1,  /* the kernel runs it on socket buffers (any interface) */
};

enum sl_xsk_zero_copy {
	SL_XSK_ZC_AUTO = 0,       /* zero-copy where the driver offers it, else copy mode */
	SL_XSK_ZC_ON = 1,         /* zero-copy or fail */
	SL_XSK_ZC_OFF = 2,        /* copy mode */
};

struct sl_xsk_config {
	uint32_t version;         /* SL_XSK_CONFIG_VERSION */
	const char *ifname;       /* the interface the feed arrives on */
	const char *feed;         /* "ADDR:PORT[,ADDR:PORT...]": the lines of one feed (A, B, ...);
				     IPv6 as [ADDR]:PORT; ADDR "*" or empty = any address */
	uint32_t queues;          /* rx queues 0..queues-1, one socket each (default 1) */
	uint32_t mode;            /* enum sl_xsk_mode */
	uint32_t zero_copy;       /* enum sl_xsk_zero_copy */
	uint32_t busy_poll;       /* 1: SO_PREFER_BUSY_POLL/SO_BUSY_POLL, spin while traffic flows */
	uint32_t ring_size;       /* rx and fill ring entries per socket (default 2048, power of 2) */
};

/* Fill *c with defaults and the current version. */
SL_API void sl_xsk_config_init(struct sl_xsk_config *c);

/* Load the XDP program, fill its feed map, create the UMEMs and sockets, attach the program
 * (through a BPF link: it detaches when the handle closes or the process dies; a program of the
 * same name left attached the old way is replaced, never stacked; another program is left alone
 * and the open fails with -EBUSY). 0, or an error with one line in why (cap bytes, may be NULL)
 * saying exactly what is missing: not root / no permission for BPF (-EPERM), no such interface
 * (-ENODEV), a bad feed (SL_ECONFIG), the mode or zero-copy unsupported (-EOPNOTSUPP), ... */
SL_API int sl_xsk_open(const struct sl_xsk_config *c, struct sl_xsk **out, char *why, size_t cap);

/* As sl_udp_pump: wait at most timeout_ms, hand every received MoldUDP64 packet to
 * sl_db_append_packets straight from the UMEM frames (no copy), give the frames back to the
 * fill ring, drive sl_db_tick, and tell the program the host's delivered sequence. Returns the
 * packets appended or a fatal error. db NULL: receive and give the frames back (measuring the
 * front end alone). Writer thread only. */
SL_API int sl_xsk_pump(struct sl_xsk *x, struct sl_db *db, int timeout_ms);

struct sl_xsk_stats {
	uint64_t packets, bytes, batches, wakeups;  /* received by the sockets */
	/* the XDP program's counters, summed over CPUs (seen = steered + passed + duplicates) */
	uint64_t xdp_seen, xdp_steered, xdp_passed, xdp_malformed, xdp_duplicates, xdp_no_socket,
		xdp_fragments;
	/* XDP_STATISTICS, summed over sockets: frames the kernel could not hand over */
	uint64_t rx_dropped, rx_invalid_descs, rx_ring_full, rx_fill_ring_empty;
	uint32_t queues, zero_copy, mode, frame_size;
};
SL_API void sl_xsk_get_stats(const struct sl_xsk *x, struct sl_xsk_stats *out);

/* Detach the program, close the sockets, free everything. Accepts NULL. */
SL_API void sl_xsk_close(struct sl_xsk *x);

struct sl_ingest_progress {
	uint64_t bytes_done, bytes_total;  /* of the capture file */
	uint64_t records;                  /* packets (pcap) or messages (raw) read */
	int done;                          /* 1 on the last call */
};

/* Ingest a capture file: a pcap of MoldUDP64 datagrams (only those to dst_port when nonzero;
 * their capture time becomes the receive time) or a NASDAQ raw file of length-prefixed ITCH
 * messages (sequences continue from the last one). Gaps still open at the end of a pcap are
 * closed with sl_db_close_gaps. progress (may be NULL) is called every ~64k records and at the
 * end. 0, SL_EBADMSG (a damaged capture: everything before the damage is ingested and the
 * position is named on stderr), or a fatal error. Writer thread only. */
SL_API int sl_db_ingest_file(struct sl_db *db, const char *path, uint16_t dst_port,
			     void (*progress)(void *arg, const struct sl_ingest_progress *p),
			     void *arg);

/* ---- Statistics --------------------------------------------------------------------------- */

#define SL_STATS_VERSION 1

struct sl_stats {
	uint32_t version;            /* set by the library */
	uint64_t last_seq, durable_seq, applied_seq;
	uint64_t apply_waits;        /* the writer waited for the applier (back-pressure) */
	/* MoldUDP64 */
	uint64_t packets, packets_bad, heartbeats, end_of_session, packets_other_session;
	uint64_t messages_delivered, duplicates, gaps_detected, gap_messages, gaps_filled,
		gaps_lost, lost_messages, rerequests_sent, packets_reordered, reorder_overflow;
	uint64_t session_ended;      /* 1 once end-of-session arrived and all before it is in */
	/* ITCH */
	uint64_t messages, messages_unknown, messages_bad_length;
	uint64_t msg_by_type[128];   /* indexed by the ITCH type letter */
	/* State */
	uint64_t orders, orders_open, trades, stocks, orders_missing; /* missing: E/X/D/U for an
								 order never seen */
	/* Log */
	uint64_t wal_segments, wal_bytes, wal_commits, wal_syncs, wal_records;
	uint64_t wal_backpressure_waits, wal_io_errors;
	uint64_t recovered_records, recovery_torn_bytes, recovery_ns;
	/* Tables */
	uint64_t checkpoint_seq;     /* every record <= it is in tables */
	uint64_t tables, table_bytes, level_tables[8], level_bytes[8]; /* level 6: event tables */
	uint64_t rotations, rotate_waits, flushes, flush_errors, flushed_bytes;
	uint64_t compactions, compaction_errors, compacted_read_bytes, compacted_bytes;
	uint64_t compaction_dropped;   /* entries dropped: shadowed versions and final orders */
	uint64_t compaction_running;   /* 1 while a compaction job runs */
	uint64_t compaction_pending;   /* levels over their target now (work the compaction
					  thread has yet to do; 0 when idle) */
	uint64_t events_retired_tables, events_retired_bytes; /* event tables dropped by retention */
	uint64_t bloom_probes, bloom_negatives, bloom_false_positives; /* table lookups: probes,
								 "certainly absent" answers, and
								 "maybe" answers whose table did
								 not hold the key */
	uint64_t accel_fallbacks;    /* accelerator calls a device fault (I/O error, hung kernel,
					device lost) sent to the cpu backend: same results */
	uint64_t accel_lost;         /* 1 once the accelerator device is gone (all work on cpu) */
	char session[11];            /* current MoldUDP64 session, NUL terminated */
};

/* Snapshot of the counters. Thread-safe; counters are read without a global lock, so fields
 * may be from instants microseconds apart. */
SL_API int sl_db_stats(struct sl_db *db, struct sl_stats *out);

/* Render stats as readable lines or one JSON object. As sl_event_format. */
SL_API int sl_stats_format(const struct sl_stats *s, int flags, char *buf, size_t cap);

/* ---- Accelerators ------------------------------------------------------------------------- */

/* Describe the accelerator backends (cpu, sim, opencl, xrt): each one opened on its own,
 * available or not and why; then, for mode "auto" (NULL), the planner's calibration (launch
 * cost and cost per byte of each operation on each backend it routes to) and its routing (per
 * operation, the backend used from which size). binary and device as sluiced's --accel-binary
 * and --accel-device (NULL: none). flags: SL_FORMAT_JSON for one object with a "backends"
 * array of {name, available, ...}. 0, or -ENOSPC when cap is too small. */
SL_API int sl_accel_report(const char *mode, const char *binary, const char *device, int flags,
			   char *buf, size_t cap);

/* ---- Verification ------------------------------------------------------------------------- */

/* Check every record of every log segment, the manifest and every block of every table in dir
 * without opening the database. Returns 0 when all is sound; otherwise SL_ECORRUPT (or -errno)
 * and, when path/off are not NULL, the first bad file's path (copied into path, cap bytes) and
 * byte offset (a table's damaged block). A torn tail after the last good
 * record of the newest segment counts as sound (it is what a crash leaves) and is reported in
 * *torn_bytes. */
SL_API int sl_verify(const char *dir, char *path, size_t cap, uint64_t *off, uint64_t *records,
		     uint64_t *torn_bytes);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */
