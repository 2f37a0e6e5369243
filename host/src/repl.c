/* repl.c - the raft FSM of a Sluice node and the replicated log behind the log seam (see
 * repl.h). Three parties: the writer (the db's appending thread) encodes each batch as a frame
 * into the pending buffer while this node leads; raft's thread (sl__repl_poll) turns pending
 * frames into entries and follows role changes; the FSM callbacks (raft's thread too) hand
 * committed records to the engine and keep them for cursors until a checkpoint passes them.
 * Readers (replay, the store's flush thread) read that committed store under its own lock.
 */
#include <ck_pr.h>
#include <errno.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repl.h"

#define CHUNK_RECS  4096
#define CHUNK_BYTES (1u << 20)
#define SNAP_HDR    40u
#define SNAP_VERSION 2
#define SNAP_TAIL_MAX (8u << 20)

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire integers are little-endian");

/* Wire layouts (little-endian, packed by construction). */
struct frame_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint32_t count;
	uint32_t bytes;   /* of the records after this header */
	uint32_t crc;     /* CRC32C of those bytes */
	uint32_t reserved;
};
_Static_assert(sizeof(struct frame_hdr) == SL_REPL_FRAME_HDR, "frame header is 24 bytes");

struct rec_hdr {
	uint64_t seq;
	uint64_t rx_ns;
	uint32_t len;
	uint32_t type;
};
_Static_assert(sizeof(struct rec_hdr) == SL_REPL_REC_HDR, "record header is 24 bytes");

struct snap_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint64_t applied_seq; /* the state the snapshot stands for */
	uint64_t checkpoint;  /* the tables' part holds every record <= it (0: no tables) */
	uint64_t records;     /* after the checkpoint, in the frames after the description */
	uint32_t desc_len;    /* the tables' description (then zeros to a multiple of 8) */
	uint32_t crc;         /* CRC32C of everything after this header */
};
_Static_assert(sizeof(struct snap_hdr) == SNAP_HDR, "snapshot header is 40 bytes");

/* Committed records kept for cursors: chunks in sequence order. */
struct rec_desc {
	uint64_t seq, rx_ns;
	uint32_t off, len, type;
};

struct chunk {
	uint64_t first_seq, last_seq;
	uint32_t n;
	size_t used, cap;
	struct rec_desc d[CHUNK_RECS];
	uint8_t *data;
	unsigned refs;   /* snapshots being encoded from it (under cmu) */
	int detached;    /* truncated while referenced: the last reference frees it */
};

/* A snapshot under way: what its synchronous part pinned, for the asynchronous part to
 * encode off raft's thread. Chunks before the last are complete; of the last only the first
 * cut[i] records existed when the snapshot was taken (later ones are appended past them, and
 * a chunk's arrays never move). */
struct snap_job {
	uint64_t checkpoint, applied_seq;
	void *desc;
	size_t dlen;
	struct chunk **chunks;
	uint32_t *cut;
	size_t n;
};

struct proposal {
	struct raft_apply req;
	struct sl_repl *r;
	uint64_t bytes;
};

struct sl_repl {
	struct sl_repl_config cfg;
	struct raft_fsm fsm;
	struct raft *raft;
	void (*kick)(void *);
	void *kick_arg;
	struct sl_log_apply ap;
	int bound;
	struct sl_repl_snap_ops snap;
	struct snap_job job;        /* raft runs one snapshot at a time */
	uint64_t flush_asked_ns;    /* raft's thread: when a snapshot asked for a flush first */

	/* mu guards everything below up to the committed store; cv: applied_seq advanced,
	 * room freed, or the role changed. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *pend;              /* frames waiting for raft's thread */
	size_t pend_len, pend_cap;
	uint64_t inflight;          /* bytes proposed (pending or in raft) and not yet done */
	unsigned inflight_reqs;     /* raft_apply requests not yet called back */
	int ready, resync, barrier_pending, was_leader, stopped, closed;
	uint64_t epoch, resume_seq, proposed_seq;
	uint64_t applied_seq;       /* also read lock-free (ck_pr) */
	struct raft_barrier barrier;
	struct sl_repl_status st;   /* raft thread's latest picture */

	/* The committed store: cmu guards it; appended on raft's thread, read by cursors,
	 * truncated by the flush thread. */
	pthread_mutex_t cmu;
	struct chunk **chunks;
	size_t nchunks, chunks_cap;
	uint64_t retained_bytes, retained_records;

	/* raft's thread only */
	struct sl_log_rec *scratch;
	size_t scratch_cap;
	size_t scratch_n;
	uint64_t scratch_floor;     /* records at or below this are already applied */
	int corrupt_said;
};

struct sl_log_cursor {
	struct sl_repl *r;
	uint64_t next_seq;
	uint8_t *buf;
	size_t cap;
};

static uint32_t crc32c(const void *p, size_t len)
{
	return crc32_iscsi((unsigned char *)p, (int)len, 0xffffffffu);
}

/* ---- Frames ------------------------------------------------------------------------------- */

long sl__repl_frame_encode(const struct sl_log_rec *recs, size_t n, void *buf, size_t cap)
{
	size_t need = SL_REPL_FRAME_HDR;
	for (size_t i = 0; i < n; i++)
		need += SL_REPL_REC_HDR + recs[i].len;
	size_t padded = (need + 7) & ~(size_t)7;
	if (padded > cap || need - SL_REPL_FRAME_HDR > UINT32_MAX || n > UINT32_MAX)
		return -ENOSPC;
	uint8_t *p = (uint8_t *)buf + SL_REPL_FRAME_HDR;
	for (size_t i = 0; i < n; i++) {
		struct rec_hdr h = { .seq = recs[i].seq, .rx_ns = recs[i].rx_ns,
				     .len = recs[i].len, .type = recs[i].type };
		memcpy(p, &h, sizeof(h));
		if (recs[i].len)
			memcpy(p + sizeof(h), recs[i].data, recs[i].len);
		p += sizeof(h) + recs[i].len;
	}
	struct frame_hdr fh = {
		.magic = SL_REPL_FRAME_MAGIC,
		.version = SL_REPL_VERSION,
		.count = (uint32_t)n,
		.bytes = (uint32_t)(need - SL_REPL_FRAME_HDR),
	};
	fh.crc = crc32c((uint8_t *)buf + SL_REPL_FRAME_HDR, fh.bytes);
	memcpy(buf, &fh, sizeof(fh));
	memset((uint8_t *)buf + need, 0, padded - need);
	return (long)padded;
}

long sl__repl_frame_decode(const void *p, size_t len,
			   int (*each)(void *arg, const struct sl_log_rec *rec), void *arg)
{
	struct frame_hdr fh;
	if (len < sizeof(fh))
		return SL_ECORRUPT;
	memcpy(&fh, p, sizeof(fh));
	size_t size = (sizeof(fh) + (size_t)fh.bytes + 7) & ~(size_t)7;
	if (fh.magic != SL_REPL_FRAME_MAGIC || fh.version != SL_REPL_VERSION || size > len)
		return SL_ECORRUPT;
	const uint8_t *q = (const uint8_t *)p + sizeof(fh), *end = q + fh.bytes;
	if (crc32c(q, fh.bytes) != fh.crc)
		return SL_ECORRUPT;
	for (const uint8_t *z = end; z < (const uint8_t *)p + size; z++)
		if (*z)
			return SL_ECORRUPT; /* the padding is zeros */
	/* Check the whole frame before handing out any of it: all or nothing. */
	const uint8_t *c = q;
	uint64_t prev = 0;
	for (uint32_t i = 0; i < fh.count; i++) {
		struct rec_hdr h;
		if ((size_t)(end - c) < sizeof(h))
			return SL_ECORRUPT;
		memcpy(&h, c, sizeof(h));
		if (h.len > SL_LOG_MAX_PAYLOAD || h.len > (size_t)(end - c) - sizeof(h) ||
		    h.seq <= prev || h.type < SL_LOG_MSG || h.type > SL_LOG_BAD)
			return SL_ECORRUPT;
		prev = h.seq;
		c += sizeof(h) + h.len;
	}
	if (c != end)
		return SL_ECORRUPT;
	for (uint32_t i = 0; i < fh.count; i++) {
		struct rec_hdr h;
		memcpy(&h, q, sizeof(h));
		struct sl_log_rec rec = { .seq = h.seq, .rx_ns = h.rx_ns, .data = q + sizeof(h),
					  .len = h.len, .type = h.type };
		int r = each(arg, &rec);
		if (r < 0)
			return r;
		q += sizeof(h) + h.len;
	}
	return (long)size;
}

/* ---- The committed store ------------------------------------------------------------------ */

/* Free a chunk the store no longer lists, unless a snapshot still reads it. Under cmu. */
static void chunk_drop_locked(struct chunk *c)
{
	if (c->refs) {
		c->detached = 1;
		return;
	}
	free(c->data);
	free(c);
}

static int keep_locked(struct sl_repl *r, const struct sl_log_rec *rec)
{
	struct chunk *c = r->nchunks ? r->chunks[r->nchunks - 1] : NULL;
	if (!c || c->n == CHUNK_RECS || c->used + rec->len > c->cap) {
		if (r->nchunks == r->chunks_cap) {
			size_t cap = r->chunks_cap ? r->chunks_cap * 2 : 64;
			struct chunk **p = realloc(r->chunks, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			r->chunks = p;
			r->chunks_cap = cap;
		}
		c = calloc(1, sizeof(*c));
		size_t cap = rec->len > CHUNK_BYTES ? rec->len : CHUNK_BYTES;
		if (c)
			c->data = malloc(cap);
		if (!c || !c->data) {
			free(c);
			return -ENOMEM;
		}
		c->cap = cap;
		r->chunks[r->nchunks++] = c;
	}
	if (!c->n)
		c->first_seq = rec->seq;
	c->last_seq = rec->seq;
	c->d[c->n++] = (struct rec_desc){ .seq = rec->seq, .rx_ns = rec->rx_ns,
					  .off = (uint32_t)c->used, .len = rec->len,
					  .type = rec->type };
	memcpy(c->data + c->used, rec->data, rec->len);
	c->used += rec->len;
	r->retained_bytes += rec->len;
	r->retained_records++;
	return 0;
}

static int keep(struct sl_repl *r, const struct sl_log_rec *recs, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&r->cmu);
	for (size_t i = 0; i < n && !rc; i++)
		rc = keep_locked(r, &recs[i]);
	pthread_mutex_unlock(&r->cmu);
	return rc;
}

/* ---- Applying committed records ----------------------------------------------------------- */

static int collect(void *arg, const struct sl_log_rec *rec)
{
	struct sl_repl *r = arg;
	if (rec->seq <= r->scratch_floor)
		return 0; /* applied already (an entry replayed after a restart, a snapshot) */
	if (r->scratch_n == r->scratch_cap) {
		size_t cap = r->scratch_cap ? r->scratch_cap * 2 : 1024;
		struct sl_log_rec *p = realloc(r->scratch, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		r->scratch = p;
		r->scratch_cap = cap;
	}
	r->scratch[r->scratch_n++] = *rec;
	r->scratch_floor = rec->seq;
	return 0;
}

/* Decode every frame of buf (len bytes), then keep and apply what this node's state lacks (a
 * restarted node has its tables already: what raft replays that they hold is skipped). */
static int apply_frames(struct sl_repl *r, const uint8_t *buf, size_t len, const char *what)
{
	uint64_t applied = ck_pr_load_64(&r->applied_seq);
	r->scratch_n = 0;
	r->scratch_floor = applied;
	size_t off = 0;
	/* Entries end with zeros up to a multiple of 8 (raft_uv needs entry lengths that are):
	 * no frame fits in less than that. */
	while (len - off >= 8) {
		long got = sl__repl_frame_decode(buf + off, len - off, collect, r);
		if (got < 0) {
			pthread_mutex_lock(&r->mu);
			r->st.frames_corrupt++;
			pthread_mutex_unlock(&r->mu);
			if (!r->corrupt_said++)
				fprintf(stderr, "sluice: repl: a committed %s holds a bad frame at "
					"offset %zu: %s; the rest of it is skipped\n", what, off,
					sl_strerror((int)got));
			if (got != SL_ECORRUPT)
				return (int)got;
			break;
		}
		off += (size_t)got;
	}
	size_t n = r->scratch_n;
	struct sl_log_rec *recs = r->scratch;
	if (!n)
		return 0;
	int rc = keep(r, recs, n);
	if (rc < 0) {
		fprintf(stderr, "sluice: repl: keeping committed records: %s\n", sl_strerror(rc));
		return rc;
	}
	if (r->bound) {
		rc = r->ap.apply(r->ap.arg, recs, n);
		if (rc < 0)
			fprintf(stderr, "sluice: repl: applying committed records: %s\n",
				sl_strerror(rc));
	} else {
		fprintf(stderr, "sluice: repl: %zu committed records before a db was bound\n", n);
	}
	pthread_mutex_lock(&r->mu);
	ck_pr_store_64(&r->applied_seq, recs[n - 1].seq);
	r->st.records_applied += n;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct sl_repl *r = fsm->data;
	*result = NULL;
	apply_frames(r, buf->base, buf->len, "entry");
	pthread_mutex_lock(&r->mu);
	r->st.entries_applied++;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* ---- Snapshots ---------------------------------------------------------------------------- */

/* A snapshot stands for the state at the last applied entry: the tables' part (pinned by the
 * snapshot ops: a checkpoint and a description of the tables, which travel on their own
 * channel), then every committed record after the checkpoint (what the tables do not hold yet:
 * the memtables' worth, kept in the committed store until a flush passes it). Without snapshot
 * ops the checkpoint is 0 and the records are all the committed store holds.
 *
 * Raft's FSM version 3: the synchronous part (raft's thread) pins the tables and references
 * the chunks holding those records under the committed store's lock, so no truncation can pass
 * the checkpoint before they are read; the asynchronous part (libuv's thread pool) encodes the
 * buffer; finalize frees it once raft_uv has written it. Encoding tens of megabytes on raft's
 * thread stalled every commit meanwhile. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			      unsigned *n_bufs);

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct sl_repl *r = fsm->data;
	struct snap_job *j = &r->job;
	*bufs = NULL;
	*n_bufs = 0;
	memset(j, 0, sizeof(*j));
	pthread_mutex_lock(&r->cmu);
	/* Records not in tables yet would be copied into the snapshot and written again: past a
	 * few MiB, flush them to tables first (work a flush does anyway) and take the snapshot
	 * once that is done; raft asks again at its next apply. A flush that does not finish in
	 * 10 s (a full disk) does not hold snapshots back. */
	if (r->snap.flush && r->retained_bytes > SNAP_TAIL_MAX) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		if (!r->flush_asked_ns) {
			r->flush_asked_ns = now;
			r->snap.flush(r->snap.arg);
		}
		if (now - r->flush_asked_ns < 10000000000ull) {
			pthread_mutex_unlock(&r->cmu);
			return RAFT_BUSY;
		}
	}
	r->flush_asked_ns = 0;
	if (r->snap.take) {
		int rc = r->snap.take(r->snap.arg, &j->checkpoint, &j->desc, &j->dlen);
		if (rc < 0) {
			pthread_mutex_unlock(&r->cmu);
			fprintf(stderr, "sluice: repl: taking a snapshot: pinning the tables: %s; "
				"raft tries again later\n", sl_strerror(rc));
			return RAFT_BUSY;
		}
	}
	size_t k = 0;
	while (k < r->nchunks && r->chunks[k]->last_seq <= j->checkpoint)
		k++;
	j->n = r->nchunks - k;
	j->chunks = malloc((j->n ? j->n : 1) * sizeof(*j->chunks));
	j->cut = malloc((j->n ? j->n : 1) * sizeof(*j->cut));
	if (!j->chunks || !j->cut) {
		pthread_mutex_unlock(&r->cmu);
		free(j->chunks);
		free(j->cut);
		free(j->desc);
		return RAFT_BUSY;
	}
	for (size_t i = 0; i < j->n; i++) {
		j->chunks[i] = r->chunks[k + i];
		j->cut[i] = j->chunks[i]->n;
		j->chunks[i]->refs++;
	}
	j->applied_seq = ck_pr_load_64(&r->applied_seq);
	pthread_mutex_unlock(&r->cmu);
	/* Without an asynchronous part (see sl_repl_config), raft wants the buffer now. */
	return r->cfg.sync_snapshots ? fsm_snapshot_async(fsm, bufs, n_bufs) : 0;
}

static void job_release(struct sl_repl *r, struct snap_job *j)
{
	pthread_mutex_lock(&r->cmu);
	for (size_t i = 0; i < j->n; i++)
		if (!--j->chunks[i]->refs && j->chunks[i]->detached)
			chunk_drop_locked(j->chunks[i]);
	pthread_mutex_unlock(&r->cmu);
	free(j->chunks);
	free(j->cut);
	free(j->desc);
	memset(j, 0, sizeof(*j));
}

/* libuv's thread pool: one buffer, the header, the description, then a frame per chunk. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			      unsigned *n_bufs)
{
	struct sl_repl *r = fsm->data;
	struct snap_job *j = &r->job;
	uint64_t cp = j->checkpoint, records = 0;
	size_t len = SNAP_HDR + ((j->dlen + 7) & ~(size_t)7);
	for (size_t i = 0; i < j->n; i++) {
		const struct chunk *c = j->chunks[i];
		size_t bytes = 0, k = 0;
		for (uint32_t x = 0; x < j->cut[i]; x++)
			if (c->d[x].seq > cp)
				bytes += SL_REPL_REC_HDR + c->d[x].len, k++;
		if (k)
			len += (SL_REPL_FRAME_HDR + bytes + 7) & ~(size_t)7;
	}
	struct raft_buffer *out = raft_malloc(sizeof(*out));
	uint8_t *p = raft_malloc(len);
	struct sl_log_rec *recs = malloc(CHUNK_RECS * sizeof(*recs));
	if (!out || !p || !recs) {
		raft_free(out);
		raft_free(p);
		free(recs);
		job_release(r, j);
		return RAFT_NOMEM;
	}
	size_t off = SNAP_HDR;
	if (j->dlen)
		memcpy(p + off, j->desc, j->dlen);
	memset(p + off + j->dlen, 0, ((j->dlen + 7) & ~(size_t)7) - j->dlen);
	off += (j->dlen + 7) & ~(size_t)7;
	for (size_t i = 0; i < j->n; i++) {
		const struct chunk *c = j->chunks[i];
		size_t k = 0;
		for (uint32_t x = 0; x < j->cut[i]; x++)
			if (c->d[x].seq > cp)
				recs[k++] = (struct sl_log_rec){ .seq = c->d[x].seq,
								 .rx_ns = c->d[x].rx_ns,
								 .data = c->data + c->d[x].off,
								 .len = c->d[x].len,
								 .type = c->d[x].type };
		if (!k)
			continue;
		long got = sl__repl_frame_encode(recs, k, p + off, len - off);
		off += (size_t)got; /* sized above: it fits */
		records += k;
	}
	free(recs);
	struct snap_hdr h = { .magic = SL_REPL_SNAP_MAGIC, .version = SNAP_VERSION,
			      .applied_seq = j->applied_seq, .checkpoint = cp,
			      .records = records, .desc_len = (uint32_t)j->dlen,
			      .crc = crc32c(p + SNAP_HDR, len - SNAP_HDR) };
	memcpy(p, &h, sizeof(h));
	job_release(r, j);
	out->base = p;
	out->len = len;
	*bufs = out;
	*n_bufs = 1;
	pthread_mutex_lock(&r->mu);
	r->st.snapshots_taken++;
	r->st.snapshot_bytes = len;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* Raft's thread, once raft_uv wrote the snapshot (or gave up): the buffers are ours to free. A
 * job whose asynchronous part never ran is released here. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
				 unsigned *n_bufs)
{
	struct sl_repl *r = fsm->data;
	if (r->job.chunks)
		job_release(r, &r->job);
	for (unsigned i = 0; *bufs && i < *n_bufs; i++)
		raft_free((*bufs)[i].base);
	raft_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

/* Install: when the snapshot's tables hold more than this node applied, they replace its state
 * (the snapshot ops fetch and install them); then the records after that through the same path
 * as entries. A node that has the tables' part already (a restart over its own snapshot) only
 * applies the records it lacks. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct sl_repl *r = fsm->data;
	struct snap_hdr h;
	if (buf->len < sizeof(h)) {
		fprintf(stderr, "sluice: repl: snapshot of %zu bytes: too short\n", buf->len);
		return RAFT_CORRUPT;
	}
	memcpy(&h, buf->base, sizeof(h));
	const uint8_t *body = (const uint8_t *)buf->base + SNAP_HDR;
	size_t blen = buf->len - SNAP_HDR, dpad = ((size_t)h.desc_len + 7) & ~(size_t)7;
	if (h.magic != SL_REPL_SNAP_MAGIC || h.version != SNAP_VERSION || dpad > blen ||
	    crc32c(body, blen) != h.crc) {
		fprintf(stderr, "sluice: repl: snapshot of %zu bytes: bad magic, version, length "
			"or CRC32C\n", buf->len);
		return RAFT_CORRUPT;
	}
	uint64_t have = ck_pr_load_64(&r->applied_seq);
	unsigned tables = 0;
	if (h.checkpoint > have) {
		if (!r->snap.install) {
			fprintf(stderr, "sluice: repl: a snapshot with tables through seq %" PRIu64
				" and no way to install them\n", h.checkpoint);
			return RAFT_CORRUPT;
		}
		uint64_t installed = h.checkpoint;
		int rc = r->snap.install(r->snap.arg, body, h.desc_len, h.checkpoint, &installed);
		if (rc < 0) {
			fprintf(stderr, "sluice: repl: installing a snapshot's tables (through seq %"
				PRIu64 "): %s; raft tries again\n", h.checkpoint, sl_strerror(rc));
			return RAFT_IOERR;
		}
		tables = (unsigned)rc;
		/* What the committed store held is older than the new state: drop it. */
		pthread_mutex_lock(&r->cmu);
		for (size_t i = 0; i < r->nchunks; i++)
			chunk_drop_locked(r->chunks[i]);
		r->nchunks = 0;
		r->retained_bytes = r->retained_records = 0;
		pthread_mutex_unlock(&r->cmu);
		pthread_mutex_lock(&r->mu);
		ck_pr_store_64(&r->applied_seq, installed);
		pthread_mutex_unlock(&r->mu);
	}
	int rc = apply_frames(r, body + dpad, blen - dpad, "snapshot");
	if (rc < 0)
		return RAFT_NOMEM;
	pthread_mutex_lock(&r->mu);
	if (ck_pr_load_64(&r->applied_seq) < h.applied_seq)
		ck_pr_store_64(&r->applied_seq, h.applied_seq);
	r->st.snapshots_restored++;
	if (h.checkpoint > have)
		r->st.snapshot_tables_installed += tables;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	fprintf(stderr, "sluice: repl: installed a snapshot through seq %" PRIu64 " (tables "
		"through %" PRIu64 "%s%u fetched, %" PRIu64 " records after them, %zu bytes; this "
		"node had %" PRIu64 ")\n", h.applied_seq, h.checkpoint,
		h.checkpoint > have ? ": " : ", ", tables, h.records, buf->len, have);
	raft_free(buf->base);
	return 0;
}

/* ---- Proposals and roles (raft's thread) ----------------------------------------------------- */

static void proposal_done(struct raft_apply *req, int status, void *result)
{
	(void)result;
	struct proposal *p = req->data;
	struct sl_repl *r = p->r;
	pthread_mutex_lock(&r->mu);
	r->inflight -= p->bytes;
	r->inflight_reqs--;
	if (status) {
		/* Lost with the leadership (or worse): what the writer proposed after it is
		 * worthless. Stop appends until a new barrier says where to go on from. */
		r->st.proposals_failed++;
		r->ready = 0;
		r->resync = 1;
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	free(p);
}

static void barrier_done(struct raft_barrier *req, int status)
{
	struct sl_repl *r = req->data;
	pthread_mutex_lock(&r->mu);
	r->barrier_pending = 0;
	if (!status && !r->stopped && raft_state(r->raft) == RAFT_LEADER && r->inflight_reqs == 0) {
		/* Everything committed before this term is applied: the feed goes on after it. */
		r->resync = 0;
		r->ready = 1;
		r->epoch++;
		r->resume_seq = r->proposed_seq = ck_pr_load_64(&r->applied_seq);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (r->kick)
		r->kick(r->kick_arg); /* let the owner poll again (e.g. barrier failed) */
}

/* Next chunk of pending frames for one entry: whole frames, up to max_entry_bytes (at least
 * one frame). */
static size_t take_frames(struct sl_repl *r)
{
	size_t off = 0;
	while (off < r->pend_len) {
		struct frame_hdr fh;
		memcpy(&fh, r->pend + off, sizeof(fh));
		size_t sz = (sizeof(fh) + fh.bytes + 7) & ~(size_t)7;
		if (off && off + sz > r->cfg.max_entry_bytes)
			break;
		off += sz;
	}
	return off;
}

static void update_status_locked(struct sl_repl *r)
{
	struct raft *rf = r->raft;
	struct sl_repl_status *s = &r->st;
	s->state = raft_state(rf);
	s->ready = r->ready;
	s->id = rf->id;
	s->term = rf->current_term;
	s->epoch = r->epoch;
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(rf, &lid, &laddr);
	s->leader_id = lid;
	snprintf(s->leader_address, sizeof(s->leader_address), "%s", laddr ? laddr : "");
	s->commit_index = rf->commit_index;
	s->applied_index = raft_last_applied(rf);
	s->last_index = raft_last_index(rf);
	s->applied_seq = ck_pr_load_64(&r->applied_seq);
	s->proposed_seq = r->proposed_seq;
	s->inflight_bytes = r->inflight;
	s->n_servers = 0;
	for (unsigned i = 0; i < rf->configuration.n && i < 9; i++) {
		const struct raft_server *sv = &rf->configuration.servers[i];
		s->servers[i].id = sv->id;
		snprintf(s->servers[i].address, sizeof(s->servers[i].address), "%s",
			 sv->address ? sv->address : "");
		s->servers[i].role = sv->role;
		s->servers[i].match_index = s->state == RAFT_LEADER &&
			rf->leader_state.progress ? rf->leader_state.progress[i].match_index : 0;
		s->n_servers++;
	}
}

void sl__repl_poll(struct sl_repl *r)
{
	if (!r->raft)
		return;
	pthread_mutex_lock(&r->mu);
	if (r->stopped) {
		pthread_mutex_unlock(&r->mu);
		return;
	}
	int leader = raft_state(r->raft) == RAFT_LEADER;
	if (leader && !r->was_leader) {
		r->resync = 1;
		r->ready = 0;
	}
	if (!leader && (r->ready || r->pend_len)) {
		r->ready = 0;
		r->inflight -= r->pend_len;
		r->pend_len = 0;
		pthread_cond_broadcast(&r->cv);
	}
	r->was_leader = leader;
	if (!r->ready && r->pend_len) {
		/* Proposals of a broken epoch: the writer starts again at the next one. */
		r->inflight -= r->pend_len;
		r->pend_len = 0;
		pthread_cond_broadcast(&r->cv);
	}
	if (leader && r->resync && !r->barrier_pending && !r->inflight_reqs) {
		r->barrier_pending = 1;
		r->barrier.data = r;
		int rc = raft_barrier(r->raft, &r->barrier, barrier_done);
		if (rc)
			r->barrier_pending = 0;
	}
	while (r->ready && r->pend_len) {
		size_t n = take_frames(r), padded = (n + 7) & ~(size_t)7;
		struct proposal *p = calloc(1, sizeof(*p));
		uint8_t *base = raft_malloc(padded);
		if (!p || !base) {
			free(p);
			raft_free(base);
			break; /* try again at the next poll */
		}
		memcpy(base, r->pend, n);
		memset(base + n, 0, padded - n);
		memmove(r->pend, r->pend + n, r->pend_len - n);
		r->pend_len -= n;
		p->r = r;
		p->bytes = n;
		p->req.data = p;
		struct raft_buffer rb = { .base = base, .len = padded };
		r->inflight_reqs++;
		r->st.proposals++;
		int rc = raft_apply(r->raft, &p->req, &rb, 1, proposal_done);
		if (rc) {
			raft_free(base);
			r->inflight_reqs--;
			r->inflight -= n;
			r->st.proposals_failed++;
			r->ready = 0;
			r->resync = 1;
			free(p);
			pthread_cond_broadcast(&r->cv);
		}
	}
	update_status_locked(r);
	pthread_mutex_unlock(&r->mu);
}

void sl__repl_shutdown(struct sl_repl *r)
{
	pthread_mutex_lock(&r->mu);
	r->stopped = 1;
	r->ready = 0;
	r->inflight -= r->pend_len;
	r->pend_len = 0;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* ---- The log seam ------------------------------------------------------------------------- */

static int log_append(void *impl, const struct sl_log_rec *recs, size_t n)
{
	struct sl_repl *r = impl;
	if (!n)
		return 0;
	size_t need = SL_REPL_FRAME_HDR;
	for (size_t i = 0; i < n; i++) {
		if (recs[i].len > SL_LOG_MAX_PAYLOAD)
			return -EINVAL;
		need += SL_REPL_REC_HDR + recs[i].len;
	}
	pthread_mutex_lock(&r->mu);
	int rc = 0;
	for (;;) {
		if (r->closed || r->stopped) {
			rc = SL_EFAILED;
			break;
		}
		if (!r->ready) {
			rc = SL_ENOTLEADER;
			break;
		}
		if (r->inflight == 0 || r->inflight + need <= r->cfg.max_inflight_bytes)
			break;
		if (r->cfg.no_wait) {
			rc = SL_ETIMEDOUT;
			break;
		}
		pthread_cond_wait(&r->cv, &r->mu);
	}
	if (!rc) {
		uint64_t prev = r->proposed_seq;
		for (size_t i = 0; i < n && !rc; i++) {
			if (recs[i].seq <= prev)
				rc = SL_EORDER;
			prev = recs[i].seq;
		}
	}
	if (!rc && r->pend_len + need > r->pend_cap) {
		size_t cap = r->pend_cap ? r->pend_cap : 1u << 20;
		while (cap < r->pend_len + need)
			cap *= 2;
		uint8_t *p = realloc(r->pend, cap);
		if (!p)
			rc = -ENOMEM;
		else {
			r->pend = p;
			r->pend_cap = cap;
		}
	}
	if (!rc) {
		long got = sl__repl_frame_encode(recs, n, r->pend + r->pend_len,
						 r->pend_cap - r->pend_len);
		r->pend_len += (size_t)got;
		r->inflight += (size_t)got;
		r->proposed_seq = recs[n - 1].seq;
	}
	pthread_mutex_unlock(&r->mu);
	if (!rc && r->kick)
		r->kick(r->kick_arg);
	return rc;
}

static uint64_t log_durable_seq(void *impl)
{
	struct sl_repl *r = impl;
	return ck_pr_load_64(&r->applied_seq);
}

static int log_wait_durable(void *impl, uint64_t seq, int64_t timeout_ns)
{
	struct sl_repl *r = impl;
	if (ck_pr_load_64(&r->applied_seq) >= seq)
		return 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
		     (timeout_ns >= 0 ? (uint64_t)timeout_ns : 0);
	ts.tv_sec = (time_t)(t / 1000000000ull);
	ts.tv_nsec = (long)(t % 1000000000ull);
	int rc = 0;
	pthread_mutex_lock(&r->mu);
	while (ck_pr_load_64(&r->applied_seq) < seq) {
		if (r->stopped) {
			rc = SL_ETIMEDOUT;
			break;
		}
		if (timeout_ns < 0) {
			pthread_cond_wait(&r->cv, &r->mu);
		} else if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) {
			rc = ck_pr_load_64(&r->applied_seq) >= seq ? 0 : SL_ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static void log_sync_now(void *impl)
{
	struct sl_repl *r = impl;
	if (r->kick)
		r->kick(r->kick_arg);
}

static int log_cursor_open(void *impl, uint64_t from, struct sl_log_cursor **out)
{
	struct sl_log_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->r = impl;
	c->next_seq = from ? from : 1;
	*out = c;
	return 0;
}

/* The first kept record with seq >= want, under cmu: chunk index and record index. */
static int find_locked(struct sl_repl *r, uint64_t want, size_t *ci, uint32_t *ri)
{
	size_t lo = 0, hi = r->nchunks;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->chunks[mid]->last_seq < want)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == r->nchunks)
		return 0;
	const struct chunk *c = r->chunks[lo];
	uint32_t a = 0, b = c->n;
	while (a < b) {
		uint32_t mid = (a + b) / 2;
		if (c->d[mid].seq < want)
			a = mid + 1;
		else
			b = mid;
	}
	*ci = lo;
	*ri = a;
	return a < c->n;
}

static int log_cursor_next(struct sl_log_cursor *c, struct sl_log_rec *rec)
{
	struct sl_repl *r = c->r;
	size_t ci;
	uint32_t ri;
	int rc = SL_EEND;
	pthread_mutex_lock(&r->cmu);
	if (find_locked(r, c->next_seq, &ci, &ri)) {
		const struct chunk *ch = r->chunks[ci];
		const struct rec_desc *d = &ch->d[ri];
		rc = 0;
		if (d->len > c->cap) {
			void *p = realloc(c->buf, d->len);
			if (!p)
				rc = -ENOMEM;
			else {
				c->buf = p;
				c->cap = d->len;
			}
		}
		if (!rc) {
			memcpy(c->buf, ch->data + d->off, d->len);
			*rec = (struct sl_log_rec){ .seq = d->seq, .rx_ns = d->rx_ns, .data = c->buf,
						    .len = d->len, .type = d->type };
			c->next_seq = d->seq + 1;
		}
	}
	pthread_mutex_unlock(&r->cmu);
	return rc;
}

static void log_cursor_close(struct sl_log_cursor *c)
{
	if (!c)
		return;
	free(c->buf);
	free(c);
}

static int log_truncate_before(void *impl, uint64_t seq)
{
	struct sl_repl *r = impl;
	pthread_mutex_lock(&r->cmu);
	size_t k = 0;
	/* The last chunk is still being filled: it stays (its records are few). */
	while (k + 1 < r->nchunks && r->chunks[k]->last_seq < seq) {
		struct chunk *c = r->chunks[k];
		r->retained_bytes -= c->used;
		r->retained_records -= c->n;
		chunk_drop_locked(c);
		k++;
	}
	memmove(r->chunks, r->chunks + k, (r->nchunks - k) * sizeof(*r->chunks));
	r->nchunks -= k;
	pthread_mutex_unlock(&r->cmu);
	return 0;
}

static void log_get_stats(void *impl, struct sl_log_stats *out)
{
	struct sl_repl *r = impl;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&r->cmu);
	out->segments = r->nchunks;
	out->bytes = r->retained_bytes;
	out->records = r->retained_records;
	pthread_mutex_unlock(&r->cmu);
	pthread_mutex_lock(&r->mu);
	out->commits = r->st.entries_applied;
	pthread_mutex_unlock(&r->mu);
}

static int log_close(void *impl)
{
	struct sl_repl *r = impl;
	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	r->bound = 0;
	r->ready = 0;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int log_bind(void *impl, const struct sl_log_apply *ap, uint64_t applied_seq)
{
	struct sl_repl *r = impl;
	if (!ap || !ap->apply)
		return -EINVAL;
	pthread_mutex_lock(&r->mu);
	r->ap = *ap;
	r->bound = 1;
	r->closed = 0;
	if (ck_pr_load_64(&r->applied_seq) < applied_seq)
		ck_pr_store_64(&r->applied_seq, applied_seq);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int log_writable(void *impl, uint64_t *epoch, uint64_t *resume_seq)
{
	struct sl_repl *r = impl;
	pthread_mutex_lock(&r->mu);
	int rc = r->ready ? 0 : SL_ENOTLEADER;
	*epoch = r->epoch;
	*resume_seq = r->resume_seq;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static const struct sl_log_ops repl_log_ops = {
	.version = SL_LOG_OPS_VERSION,
	.name = "raft",
	.append_batch = log_append,
	.durable_seq = log_durable_seq,
	.wait_durable = log_wait_durable,
	.sync_now = log_sync_now,
	.cursor_open = log_cursor_open,
	.cursor_next = log_cursor_next,
	.cursor_close = log_cursor_close,
	.truncate_before = log_truncate_before,
	.get_stats = log_get_stats,
	.close = log_close,
	.bind = log_bind,
	.writable = log_writable,
};

/* ---- Lifecycle ---------------------------------------------------------------------------- */

int sl__repl_new(const struct sl_repl_config *cfg, struct sl_repl **out)
{
	struct sl_repl *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (cfg)
		r->cfg = *cfg;
	if (!r->cfg.max_inflight_bytes)
		r->cfg.max_inflight_bytes = 64ull << 20;
	if (!r->cfg.max_entry_bytes)
		r->cfg.max_entry_bytes = 1u << 20;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_mutex_init(&r->cmu, NULL);
	r->fsm.version = 3;
	r->fsm.data = r;
	r->fsm.apply = fsm_apply;
	r->fsm.snapshot = fsm_snapshot;
	r->fsm.snapshot_async = r->cfg.sync_snapshots ? NULL : fsm_snapshot_async;
	r->fsm.snapshot_finalize = fsm_snapshot_finalize;
	r->fsm.restore = fsm_restore;
	*out = r;
	return 0;
}

void sl__repl_free(struct sl_repl *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nchunks; i++) {
		free(r->chunks[i]->data);
		free(r->chunks[i]);
	}
	free(r->chunks);
	free(r->pend);
	free(r->scratch);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->cmu);
	free(r);
}

struct raft_fsm *sl__repl_fsm(struct sl_repl *r)
{
	return &r->fsm;
}

void sl__repl_log(struct sl_repl *r, struct sl_log *out)
{
	out->ops = &repl_log_ops;
	out->impl = r;
}

void sl__repl_set_snap_ops(struct sl_repl *r, const struct sl_repl_snap_ops *ops)
{
	r->snap = *ops;
}

void sl__repl_attach(struct sl_repl *r, struct raft *raft, void (*kick)(void *), void *arg)
{
	r->raft = raft;
	r->kick = kick;
	r->kick_arg = arg;
}

void sl__repl_get_status(struct sl_repl *r, struct sl_repl_status *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->st;
	out->applied_seq = ck_pr_load_64(&r->applied_seq);
	out->inflight_bytes = r->inflight;
	out->ready = r->ready;
	out->epoch = r->epoch;
	out->proposed_seq = r->proposed_seq;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_lock(&r->cmu);
	out->retained_records = r->retained_records;
	out->retained_bytes = r->retained_bytes;
	pthread_mutex_unlock(&r->cmu);
}
