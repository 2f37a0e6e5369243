/* wal.c - the local write-ahead log (see wal.h for the on-disk format). Three parties:
 *  - the writer (the caller of append_batch, one thread) copies records into the fill buffer
 *    and computes their CRCs through the accelerator seam;
 *  - the committer thread swaps the fill buffer out, writes it to the segment files and
 *    fdatasyncs them once: many appends, one sync; then it publishes the durable sequence;
 *  - the preparer thread creates the next segment ahead of need, zero-filled so that writing
 *    into it later changes no file metadata and fdatasync stays a pure data flush.
 * wal knows nothing of ITCH, the memtable or the store above it.
 */
#include <ck_pr.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"
#include "wal.h"

#define SEG_HDR_LEN 64
#define REC_HDR_LEN 24
#define SEG_MAGIC "SLUICEWL"
#define SEG_VERSION 1
#define MAX_EXTENTS 16
#define READ_CHUNK (1u << 20)
#define ZERO_CHUNK (1u << 20)
#define PREP_SYNC_CHUNKS 2 /* the preparer syncs every this many chunks */

/* Segment header, little-endian on disk. */
struct seg_hdr_disk {
	char magic[8];
	uint32_t version;
	uint32_t hdr_len;
	uint64_t index;
	uint64_t segment_bytes;
	uint64_t created_ns;
	uint8_t reserved[20];
	uint32_t crc; /* CRC32C of bytes [0, 60) */
};
_Static_assert(sizeof(struct seg_hdr_disk) == SEG_HDR_LEN, "segment header is 64 bytes");

/* Record header, little-endian on disk, packed back to back (no alignment). */
struct rec_hdr_disk {
	uint32_t crc; /* CRC32C of the 20 bytes after it and the payload */
	uint16_t len;
	uint8_t type;
	uint8_t flags;
	uint64_t seq;
	uint64_t rx_ns;
};
_Static_assert(sizeof(struct rec_hdr_disk) == REC_HDR_LEN, "record header is 24 bytes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk integers are little-endian");

struct seg {
	uint64_t index;
	int fd;              /* read-write fd (writer side); -1 in rdonly */
	uint64_t first_seq;  /* 0 while empty */
	uint64_t last_seq;
	uint64_t used;       /* end of the last record */
	uint64_t size;       /* its size per its header (segments made under other options differ) */
};

struct extent {
	uint64_t seg;
	uint64_t file_off;
	size_t buf_off, len;
	uint64_t first_seq, last_seq;
};

struct cbuf {
	uint8_t *data;
	size_t len, cap;
	struct extent ext[MAX_EXTENTS];
	int next;
	uint64_t last_seq;
	uint64_t nrec;
	uint64_t first_ns; /* monotonic time of the first append since the last swap */
};

struct wal {
	struct sl_wal_config cfg;
	char dir[4096];      /* dir/wal */
	const struct sl_os *os;
	struct sl_accel *accel;
	int rdonly;

	pthread_mutex_t mu;
	pthread_cond_t cv_commit;   /* committer: data or stop */
	pthread_cond_t cv_space;    /* writer: the fill buffer was swapped out */
	pthread_cond_t cv_durable;  /* waiters: durable moved or the log failed */
	pthread_cond_t cv_prep;     /* committer: a segment was prepared */
	pthread_cond_t cv_prep_req; /* preparer: a segment is wanted */

	/* Guarded by mu. */
	struct seg *segs;
	size_t nsegs, segs_cap;
	struct cbuf bufs[2];
	struct cbuf *fill;
	int committer_idle, stop, sync_req;
	uint64_t prepared_upto;  /* highest segment index ready on disk */
	uint64_t want_seg;       /* highest segment index the writer has moved to */
	int failed;              /* first fatal error, 0 while healthy */
	int prep_err;            /* the preparer's last error, 0 once it succeeds again */
	int durable_waiters;

	/* Writer thread only. */
	uint64_t w_seg, w_off, w_last_seq;
	uint64_t w_seg_bytes;    /* size of segment w_seg: the options' size, except for a segment
				    continued after an open that was made under other options */

	/* Published with ck_pr; read by anyone. */
	uint64_t durable_seq;

	struct sl_log_stats st;  /* counters: updated with ck_pr adds */
	pthread_t committer, preparer;
	int threads;
};

/* ---- Small helpers ------------------------------------------------------------------------ */

static void seg_path(const struct wal *w, uint64_t index, const char *suffix, char *out,
		     size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".wal%s", w->dir, index, suffix);
}

static uint32_t crc_of(const struct wal *w, const void *p, size_t n)
{
	return sl__accel_crc32c(w->accel, p, n);
}

static int is_zero(const uint8_t *p, size_t n)
{
	/* All bytes equal to the first, and the first zero: memcmp runs vectorized. */
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static uint64_t mono(const struct wal *w)
{
	return w->os->ops->mono_ns(w->os->ctx);
}

/* An absolute CLOCK_MONOTONIC deadline ns from now, for condition variables created with that
 * clock: a step of the wall clock never stretches or cuts a wait. */
static struct timespec deadline_in(uint64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t t = (uint64_t)ts.tv_nsec + ns;
	ts.tv_sec += (time_t)(t / 1000000000u);
	ts.tv_nsec = (long)(t % 1000000000u);
	return ts;
}

static void stat_add(uint64_t *c, uint64_t v)
{
	ck_pr_add_64(c, v);
}

static void fail_locked(struct wal *w, int err, const char *what, uint64_t seg)
{
	if (w->failed)
		return;
	w->failed = err;
	stat_add(&w->st.io_errors, 1);
	char path[4200];
	seg_path(w, seg, "", path, sizeof(path));
	fprintf(stderr, "sluice: wal: %s %s failed: %s; the log accepts nothing more until reopened\n",
		what, path, sl_strerror(err));
	pthread_cond_broadcast(&w->cv_durable);
	pthread_cond_broadcast(&w->cv_space);
	pthread_cond_broadcast(&w->cv_prep);
}

static struct seg *find_seg_locked(struct wal *w, uint64_t index)
{
	for (size_t i = w->nsegs; i-- > 0;)
		if (w->segs[i].index == index)
			return &w->segs[i];
	return NULL;
}

static int push_seg_locked(struct wal *w, const struct seg *s)
{
	if (w->nsegs == w->segs_cap) {
		size_t cap = w->segs_cap ? w->segs_cap * 2 : 16;
		struct seg *n = w->os->ops->realloc(w->os->ctx, w->segs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->segs = n;
		w->segs_cap = cap;
	}
	w->segs[w->nsegs++] = *s;
	return 0;
}

/* ---- Segment creation (preparer) ------------------------------------------------------------ */

static void fill_seg_hdr(const struct wal *w, uint64_t index, struct seg_hdr_disk *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, SEG_MAGIC, 8);
	h->version = SEG_VERSION;
	h->hdr_len = SEG_HDR_LEN;
	h->index = index;
	h->segment_bytes = w->cfg.segment_bytes;
	h->created_ns = w->os->ops->now_ns(w->os->ctx);
	h->crc = crc_of(w, h, offsetof(struct seg_hdr_disk, crc));
}

/* Create index.wal.tmp, write the header and zeros to the full size, sync it, rename it into
 * place and sync the directory: a segment either exists complete or not at all. Returns the
 * open fd or -errno. */
static int prepare_segment(struct wal *w, uint64_t index)
{
	const struct sl_os *os = w->os;
	char tmp[4200], path[4200];
	seg_path(w, index, ".tmp", tmp, sizeof(tmp));
	seg_path(w, index, "", path, sizeof(path));
	int fd = os->ops->open(os->ctx, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	int r;
	uint8_t *zeros = sl__os_calloc(os, ZERO_CHUNK);
	if (!zeros) {
		r = -ENOMEM;
		goto out_close;
	}
	struct seg_hdr_disk h;
	fill_seg_hdr(w, index, &h);
	memcpy(zeros, &h, sizeof(h));
	for (uint64_t off = 0; off < w->cfg.segment_bytes; off += ZERO_CHUNK) {
		uint64_t n = w->cfg.segment_bytes - off;
		if (n > ZERO_CHUNK)
			n = ZERO_CHUNK;
		r = sl__os_pwrite_all(os, fd, zeros, n, (off_t)off);
		if (off == 0)
			memset(zeros, 0, sizeof(h));
		if (r < 0)
			goto out_free;
		/* Flush as we go: 64 MiB of zeros queued at once on the device would sit in
		 * front of the committer's small syncs for tens of milliseconds. */
		if (!w->cfg.no_sync && (off / ZERO_CHUNK) % PREP_SYNC_CHUNKS == PREP_SYNC_CHUNKS - 1 &&
		    (r = os->ops->fdatasync(os->ctx, fd)) < 0)
			goto out_free;
	}
	if (!w->cfg.no_sync && (r = os->ops->fdatasync(os->ctx, fd)) < 0)
		goto out_free;
	if ((r = os->ops->rename(os->ctx, tmp, path)) < 0)
		goto out_free;
	if (!w->cfg.no_sync && (r = os->ops->sync_dir(os->ctx, w->dir)) < 0)
		goto out_free;
	sl__os_free(os, zeros);
	return fd;
out_free:
	sl__os_free(os, zeros);
out_close:
	os->ops->close(os->ctx, fd);
	os->ops->unlink(os->ctx, tmp);
	return r;
}

static void *preparer_main(void *arg)
{
	struct wal *w = arg;
	pthread_setname_np(pthread_self(), "sl-prepare");
	pthread_mutex_lock(&w->mu);
	while (!w->failed) {
		/* Keep one segment ready beyond the one the writer is filling. Once stopping, make
		 * only those the writer has already moved into: the committer's final commit
		 * waits for them. */
		if (w->prepared_upto < w->want_seg + !w->stop) {
			uint64_t index = w->prepared_upto + 1;
			pthread_mutex_unlock(&w->mu);
			int fd = prepare_segment(w, index);
			pthread_mutex_lock(&w->mu);
			if (fd < 0) {
				/* A full disk now may have room later (an operator frees space,
				 * old segments are truncated): the log fails only if the
				 * committer needs this segment while it cannot be made. */
				if (!w->prep_err) {
					char path[4200];
					seg_path(w, index, "", path, sizeof(path));
					fprintf(stderr, "sluice: wal: creating %s failed: %s; "
						"retrying\n", path, sl_strerror(fd));
				}
				w->prep_err = fd;
				stat_add(&w->st.prepare_errors, 1);
				pthread_cond_broadcast(&w->cv_prep);
				if (w->stop)
					break;
				struct timespec ts = deadline_in(100000000);
				pthread_cond_timedwait(&w->cv_prep_req, &w->mu, &ts);
				continue;
			}
			w->prep_err = 0;
			struct seg s = { .index = index, .fd = fd, .size = w->cfg.segment_bytes };
			int r = push_seg_locked(w, &s);
			if (r < 0) {
				w->os->ops->close(w->os->ctx, fd);
				fail_locked(w, r, "recording segment", index);
				break;
			}
			w->prepared_upto = index;
			stat_add(&w->st.segments, 1);
			pthread_cond_broadcast(&w->cv_prep);
			continue;
		}
		if (w->stop)
			break;
		pthread_cond_wait(&w->cv_prep_req, &w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- Commit (committer) ------------------------------------------------------------------- */

/* Close the descriptors of the segments before index: the committer has written and synced
 * them and never writes them again (cursors open their own). Without this every segment ever
 * made would keep a descriptor until close or truncate_before. */
static void close_done_segments(struct wal *w, uint64_t index)
{
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nsegs && w->segs[i].index < index; i++) {
		if (w->segs[i].fd >= 0) {
			w->os->ops->close(w->os->ctx, w->segs[i].fd);
			w->segs[i].fd = -1;
		}
	}
	pthread_mutex_unlock(&w->mu);
}

/* Write one swapped-out buffer: extents in order; before moving to another segment, sync the
 * one just written, so after a crash a later segment never holds data while an earlier one has
 * a torn tail (recovery relies on this to tell a torn tail from corruption). */
static int write_buffer(struct wal *w, struct cbuf *b)
{
	const struct sl_os *os = w->os;
	int fd = -1;
	for (int i = 0; i < b->next; i++) {
		struct extent *e = &b->ext[i];
		pthread_mutex_lock(&w->mu);
		while (w->prepared_upto < e->seg && !w->failed) {
			if (w->prep_err) {
				fail_locked(w, w->prep_err, "creating segment", e->seg);
				break;
			}
			pthread_cond_wait(&w->cv_prep, &w->mu);
		}
		int failed = w->failed;
		struct seg *s = find_seg_locked(w, e->seg);
		int nfd = s ? s->fd : -1;
		pthread_mutex_unlock(&w->mu);
		if (failed)
			return failed;
		if (nfd < 0)
			return -EBADF;
		if (fd >= 0 && nfd != fd && !w->cfg.no_sync) {
			int r = os->ops->fdatasync(os->ctx, fd);
			stat_add(&w->st.syncs, 1);
			if (r < 0)
				return r;
		}
		if (nfd != fd)
			close_done_segments(w, e->seg);
		fd = nfd;
		int r = sl__os_pwrite_all(os, fd, b->data + e->buf_off, e->len, (off_t)e->file_off);
		if (r < 0) {
			pthread_mutex_lock(&w->mu);
			fail_locked(w, r, "writing", e->seg);
			pthread_mutex_unlock(&w->mu);
			return r;
		}
		pthread_mutex_lock(&w->mu);
		s = find_seg_locked(w, e->seg);
		if (s) {
			if (!s->first_seq)
				s->first_seq = e->first_seq;
			s->last_seq = e->last_seq;
			s->used = e->file_off + e->len;
		}
		pthread_mutex_unlock(&w->mu);
		stat_add(&w->st.bytes, e->len);
	}
	if (fd >= 0 && !w->cfg.no_sync) {
		int r = os->ops->fdatasync(os->ctx, fd);
		stat_add(&w->st.syncs, 1);
		if (r < 0)
			return r;
	}
	return 0;
}


static void *committer_main(void *arg)
{
	struct wal *w = arg;
	pthread_setname_np(pthread_self(), "sl-commit");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && !w->failed && w->fill->len == 0) {
			w->committer_idle = 1;
			pthread_cond_wait(&w->cv_commit, &w->mu);
			w->committer_idle = 0;
		}
		if (w->failed || (w->stop && w->fill->len == 0))
			break;
		/* Linger for more appends when asked to, unless enough is buffered already. */
		if (w->cfg.commit_interval_us && !w->stop && !w->sync_req &&
		    w->fill->len < w->cfg.commit_max_bytes) {
			uint64_t due = w->fill->first_ns + (uint64_t)w->cfg.commit_interval_us * 1000;
			uint64_t now = mono(w);
			if (now < due) {
				struct timespec ts = deadline_in(due - now);
				w->committer_idle = 1;
				pthread_cond_timedwait(&w->cv_commit, &w->mu, &ts);
				w->committer_idle = 0;
				continue;
			}
		}
		struct cbuf *b = w->fill;
		w->fill = b == &w->bufs[0] ? &w->bufs[1] : &w->bufs[0];
		w->sync_req = 0;
		pthread_cond_broadcast(&w->cv_space);
		pthread_mutex_unlock(&w->mu);

		int r = write_buffer(w, b);

		pthread_mutex_lock(&w->mu);
		if (r < 0) {
			fail_locked(w, r, "syncing", b->next ? b->ext[b->next - 1].seg : 0);
			break;
		}
		stat_add(&w->st.commits, 1);
		stat_add(&w->st.records, b->nrec);
		/* Everything up to b->last_seq is on disk: publish it. The store is ordered
		 * after the data writes by the mutex and after fdatasync by program order. */
		ck_pr_store_64(&w->durable_seq, b->last_seq);
		b->len = 0;
		b->next = 0;
		b->nrec = 0;
		if (w->durable_waiters)
			pthread_cond_broadcast(&w->cv_durable);
	}
	w->committer_idle = 0;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- Writer ------------------------------------------------------------------------------- */

static int wal_append_batch(void *impl, const struct sl_log_rec *recs, size_t n)
{
	struct wal *w = impl;
	if (w->rdonly)
		return SL_ERDONLY;
	/* Check the whole batch before copying any of it: a refused batch leaves no trace. (A
	 * record copied before the check failed would be committed without its CRC, and read
	 * back as corruption; a type recovery cannot read would be the same.) */
	uint64_t prev = w->w_last_seq;
	for (size_t j = 0; j < n; j++) {
		if (recs[j].len > SL_LOG_MAX_PAYLOAD || recs[j].type < SL_LOG_MSG ||
		    recs[j].type > SL_LOG_BAD)
			return -EINVAL;
		if (recs[j].seq <= prev)
			return SL_EORDER;
		prev = recs[j].seq;
	}
	/* CRCs are computed per chunk of records in one accelerator call. */
	enum { CHUNK = 256 };
	struct sl_accel_buf cb[CHUNK];
	uint32_t crcs[CHUNK];
	uint8_t *hdrs[CHUNK];

	pthread_mutex_lock(&w->mu);
	size_t i = 0;
	while (i < n) {
		if (w->failed) {
			pthread_mutex_unlock(&w->mu);
			return SL_EFAILED;
		}
		struct cbuf *b = w->fill;
		size_t k = 0;
		while (i < n && k < CHUNK) {
			const struct sl_log_rec *r = &recs[i];
			size_t sz = REC_HDR_LEN + r->len;
			int rotate = w->w_off + sz > w->w_seg_bytes;
			uint64_t seg = rotate ? w->w_seg + 1 : w->w_seg;
			int new_ext = !b->next || b->ext[b->next - 1].seg != seg;
			if (b->len + sz > b->cap || (new_ext && b->next == MAX_EXTENTS))
				break; /* full: commit what we have, then wait for space */
			if (rotate) {
				w->w_seg = seg;
				w->w_off = SEG_HDR_LEN;
				w->w_seg_bytes = w->cfg.segment_bytes;
				w->want_seg = seg;
				pthread_cond_signal(&w->cv_prep_req);
			}
			if (new_ext) {
				struct extent *e = &b->ext[b->next++];
				e->seg = seg;
				e->file_off = w->w_off;
				e->buf_off = b->len;
				e->len = 0;
				e->first_seq = r->seq;
			}
			uint8_t *p = b->data + b->len;
			struct rec_hdr_disk h = {
				.crc = 0,
				.len = (uint16_t)r->len,
				.type = (uint8_t)r->type,
				.flags = 0,
				.seq = r->seq,
				.rx_ns = r->rx_ns,
			};
			memcpy(p, &h, REC_HDR_LEN);
			if (r->len)
				memcpy(p + REC_HDR_LEN, r->data, r->len);
			hdrs[k] = p;
			cb[k].data = p + 4;
			cb[k].len = sz - 4;
			k++;
			struct extent *e = &b->ext[b->next - 1];
			e->len += sz;
			e->last_seq = r->seq;
			if (!b->len)
				b->first_ns = mono(w);
			b->len += sz;
			b->nrec++;
			b->last_seq = r->seq;
			w->w_off += sz;
			w->w_last_seq = r->seq;
			i++;
		}
		if (k) {
			int rc = sl__accel_crc32c_batch(w->accel, cb, k, crcs);
			if (rc < 0) {
				fail_locked(w, rc, "checksumming for", w->w_seg);
				pthread_mutex_unlock(&w->mu);
				return SL_EFAILED;
			}
			for (size_t j = 0; j < k; j++)
				memcpy(hdrs[j], &crcs[j], 4);
		}
		if (w->committer_idle)
			pthread_cond_signal(&w->cv_commit);
		if (i < n && k == 0) {
			/* Back-pressure: the fill buffer is full; the committer will swap it. */
			stat_add(&w->st.backpressure_waits, 1);
			w->sync_req = 1;
			pthread_cond_signal(&w->cv_commit);
			while (w->fill == b && !w->failed)
				pthread_cond_wait(&w->cv_space, &w->mu);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static uint64_t wal_durable_seq(void *impl)
{
	struct wal *w = impl;
	return ck_pr_load_64(&w->durable_seq);
}

static int wal_wait_durable(void *impl, uint64_t seq, int64_t timeout_ns)
{
	struct wal *w = impl;
	/* A commit is typically under way and ends within microseconds: watch for it briefly
	 * before taking the lock the writer and the committer need (a sleep and a wake-up cost
	 * more than the wait). */
	for (int spin = 0; spin < 1024; spin++) {
		if (ck_pr_load_64(&w->durable_seq) >= seq)
			return 0;
		ck_pr_stall();
	}
	struct timespec ts = deadline_in(timeout_ns >= 0 ? (uint64_t)timeout_ns : 0);
	int r = 0;
	pthread_mutex_lock(&w->mu);
	w->durable_waiters++;
	/* A configured linger is honoured for waiters too: it is the batching the operator
	 * chose (sync_now cuts it short). */
	if (w->committer_idle)
		pthread_cond_signal(&w->cv_commit);
	while (ck_pr_load_64(&w->durable_seq) < seq) {
		if (w->failed) {
			r = w->failed;
			break;
		}
		if (w->rdonly || (w->stop && !w->threads)) {
			r = SL_ETIMEDOUT;
			break;
		}
		if (timeout_ns < 0) {
			pthread_cond_wait(&w->cv_durable, &w->mu);
		} else if (pthread_cond_timedwait(&w->cv_durable, &w->mu, &ts) == ETIMEDOUT) {
			r = ck_pr_load_64(&w->durable_seq) >= seq ? 0 : SL_ETIMEDOUT;
			break;
		}
	}
	w->durable_waiters--;
	pthread_mutex_unlock(&w->mu);
	return r;
}

static void wal_sync_now(void *impl)
{
	struct wal *w = impl;
	pthread_mutex_lock(&w->mu);
	w->sync_req = 1;
	pthread_cond_signal(&w->cv_commit);
	pthread_mutex_unlock(&w->mu);
}

/* ---- Reading segments --------------------------------------------------------------------- */

enum rd_status { RD_OK, RD_END, RD_BAD };

struct seg_reader {
	const struct sl_os *os;
	struct sl_accel *accel;
	int fd;
	uint64_t size;
	uint8_t *buf;
	size_t cap, len;
	uint64_t buf_off; /* file offset of buf[0] */
	uint64_t pos;     /* file offset of the next record */
	const char *why;  /* reason of the last RD_BAD */
	/* Records are checked in batches (one accelerator call for up to VERIFY_BATCH records in
	 * the buffer): the chain of records from ok_cur (the next one reader_next will take) up to
	 * ok_end matched their CRCs in the buffer contents of generation ok_gen. Each pread or
	 * file change is a new generation, and a pos moved by anything but reader_next no longer
	 * equals ok_cur: either way the record is checked again. */
	uint64_t gen, ok_gen, ok_cur, ok_end;
};

#define VERIFY_BATCH 128

static int reader_init(struct seg_reader *rd, const struct sl_os *os, struct sl_accel *accel)
{
	memset(rd, 0, sizeof(*rd));
	rd->os = os;
	rd->accel = accel;
	rd->fd = -1;
	rd->cap = READ_CHUNK;
	rd->buf = sl__os_malloc(os, rd->cap);
	return rd->buf ? 0 : -ENOMEM;
}

static void reader_release(struct seg_reader *rd)
{
	sl__os_free(rd->os, rd->buf);
	rd->buf = NULL;
}

/* Make [off, off + n) available in the buffer; returns a pointer or NULL past the file end. */
static const uint8_t *reader_at(struct seg_reader *rd, uint64_t off, size_t n, int *err)
{
	if (off + n > rd->size)
		return NULL;
	if (off >= rd->buf_off && off + n <= rd->buf_off + rd->len)
		return rd->buf + (off - rd->buf_off);
	ssize_t got = sl__os_pread_all(rd->os, rd->fd, rd->buf, rd->cap, (off_t)off);
	if (got < 0) {
		*err = (int)got;
		return NULL;
	}
	rd->buf_off = off;
	rd->len = (size_t)got;
	rd->gen++;
	return (size_t)got >= n ? rd->buf : NULL;
}

/* Check the CRCs of the record at rd->pos (whole in the buffer) and of the records chained
 * after it that are whole in the buffer too, in one batch call; ok_end becomes the start of
 * the first record that failed, or the end of the last one checked. Headers are only walked
 * here: reader_next still validates each one when it gets there. 0 or a negative error. */
static int verify_ahead(struct seg_reader *rd)
{
	struct sl_accel_buf bufs[VERIFY_BATCH];
	uint32_t want[VERIFY_BATCH], got[VERIFY_BATCH];
	uint64_t ends[VERIFY_BATCH];
	uint64_t off = rd->pos, lim = rd->buf_off + rd->len;
	if (lim > rd->size)
		lim = rd->size;
	size_t n = 0;
	while (n < VERIFY_BATCH && off + REC_HDR_LEN <= lim) {
		const uint8_t *p = rd->buf + (off - rd->buf_off);
		struct rec_hdr_disk h;
		memcpy(&h, p, REC_HDR_LEN);
		if (h.type < SL_LOG_MSG || h.type > SL_LOG_BAD || h.flags ||
		    off + REC_HDR_LEN + h.len > lim)
			break;
		bufs[n].data = p + 4;
		bufs[n].len = REC_HDR_LEN - 4 + (size_t)h.len;
		want[n] = h.crc;
		off += REC_HDR_LEN + h.len;
		ends[n++] = off;
	}
	int r = sl__accel_crc32c_batch(rd->accel, bufs, n, got);
	if (r < 0)
		return r;
	rd->ok_gen = rd->gen;
	rd->ok_cur = rd->ok_end = rd->pos;
	for (size_t i = 0; i < n && got[i] == want[i]; i++)
		rd->ok_end = ends[i];
	return 0;
}

/* Decode the record at rd->pos. RD_OK fills *rec (data points into the buffer) and advances;
 * RD_END means zeros (the unwritten rest) or the end of the file; RD_BAD sets rd->why. A
 * negative return is an I/O error. */
static int reader_next(struct seg_reader *rd, struct sl_log_rec *rec)
{
	int err = 0;
	const uint8_t *p = reader_at(rd, rd->pos, REC_HDR_LEN, &err);
	if (err)
		return err;
	if (!p)
		return RD_END;
	if (is_zero(p, REC_HDR_LEN))
		return RD_END;
	struct rec_hdr_disk h;
	memcpy(&h, p, REC_HDR_LEN);
	if (h.type < SL_LOG_MSG || h.type > SL_LOG_BAD || h.flags) {
		rd->why = "bad record header";
		return RD_BAD;
	}
	if (rd->pos + REC_HDR_LEN + h.len > rd->size) {
		rd->why = "record runs past the segment end";
		return RD_BAD;
	}
	p = reader_at(rd, rd->pos, REC_HDR_LEN + (size_t)h.len, &err);
	if (err)
		return err;
	if (!p) {
		rd->why = "record runs past the file end";
		return RD_BAD;
	}
	if (rd->ok_gen != rd->gen || rd->pos != rd->ok_cur || rd->pos >= rd->ok_end) {
		int r = verify_ahead(rd);
		if (r < 0)
			return r;
	}
	if (rd->pos >= rd->ok_end) {
		rd->why = "checksum mismatch";
		return RD_BAD;
	}
	rec->seq = h.seq;
	rec->rx_ns = h.rx_ns;
	rec->type = h.type;
	rec->len = h.len;
	rec->data = p + REC_HDR_LEN;
	rd->pos += REC_HDR_LEN + h.len;
	rd->ok_cur = rd->pos;
	return RD_OK;
}

/* Open a segment for reading and check its header. 0, SL_ECORRUPT (bad header) or -errno. */
static int reader_open(struct seg_reader *rd, const char *path, uint64_t index)
{
	const struct sl_os *os = rd->os;
	int fd = os->ops->open(os->ctx, path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	rd->fd = fd;
	rd->len = 0;
	rd->gen++;
	rd->buf_off = 0;
	rd->pos = SEG_HDR_LEN;
	int r = os->ops->fsize(os->ctx, fd, &rd->size);
	if (r < 0)
		return r;
	struct seg_hdr_disk h;
	ssize_t got = rd->size < SEG_HDR_LEN ? 0 : sl__os_pread_all(os, fd, &h, sizeof(h), 0);
	if (got < 0)
		return (int)got; /* an I/O error is not a bad header: never drop the segment */
	if (got != (ssize_t)sizeof(h) || memcmp(h.magic, SEG_MAGIC, 8) ||
	    h.version != SEG_VERSION || h.index != index ||
	    h.crc != sl__accel_crc32c(rd->accel, &h, offsetof(struct seg_hdr_disk, crc))) {
		rd->why = "bad segment header";
		return SL_ECORRUPT;
	}
	if (h.segment_bytes < rd->size)
		rd->size = h.segment_bytes;
	return 0;
}

static void reader_close(struct seg_reader *rd)
{
	if (rd->fd >= 0)
		rd->os->ops->close(rd->os->ctx, rd->fd);
	rd->fd = -1;
}

/* Is there any good record with seq > after at or past offset from? A byte-by-byte search,
 * used only after a bad record, to tell a torn tail from corruption in the middle. */
static int scan_for_good(struct seg_reader *rd, uint64_t from, uint64_t after, uint64_t *found)
{
	for (uint64_t off = from; off + REC_HDR_LEN <= rd->size; off++) {
		int err = 0;
		const uint8_t *p = reader_at(rd, off, REC_HDR_LEN, &err);
		if (err)
			return err;
		if (!p)
			break;
		struct rec_hdr_disk h;
		memcpy(&h, p, REC_HDR_LEN);
		if (h.type < SL_LOG_MSG || h.type > SL_LOG_BAD || h.flags || h.seq <= after ||
		    off + REC_HDR_LEN + h.len > rd->size)
			continue;
		p = reader_at(rd, off, REC_HDR_LEN + (size_t)h.len, &err);
		if (err)
			return err;
		if (p && sl__accel_crc32c(rd->accel, p + 4, REC_HDR_LEN - 4 + (size_t)h.len) ==
				 h.crc) {
			*found = off;
			return 1;
		}
	}
	return 0;
}

/* ---- Recovery ----------------------------------------------------------------------------- */

struct index_list {
	uint64_t *v;
	size_t n, cap;
	const struct sl_os *os;
	const char *dir;
	int rdonly;
};

static int list_cb(void *arg, const char *name)
{
	struct index_list *l = arg;
	size_t len = strlen(name);
	uint64_t index;
	char tail[8];
	if (len == 16 + 8 && !strcmp(name + 16, ".wal.tmp")) {
		/* A segment whose creation did not finish: it never held data. */
		if (!l->rdonly) {
			char path[4200];
			snprintf(path, sizeof(path), "%s/%s", l->dir, name);
			l->os->ops->unlink(l->os->ctx, path);
		}
		return 0;
	}
	if (len != 16 + 4 || sscanf(name, "%16" SCNx64 "%7s", &index, tail) != 2 ||
	    strcmp(tail, ".wal") || index == 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		uint64_t *v = l->os->ops->realloc(l->os->ctx, l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = index;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct recovery {
	int (*cb)(void *arg, const struct sl_log_rec *rec);
	void *arg;
	char *bad_path;
	size_t bad_cap;
	uint64_t bad_off;
	uint64_t records, torn_bytes, last_seq;
	int skip; /* recover_segment: drop this segment (a bad header and nothing after it) */
	size_t last_data; /* position (in the sorted list) of the last segment with a record,
			     or SIZE_MAX: "is there data after segment i" is i < last_data */
};

/* Does segment index hold at least one good record? */
static int seg_has_records(struct wal *w, struct seg_reader *rd, uint64_t index)
{
	char path[4200];
	seg_path(w, index, "", path, sizeof(path));
	struct seg_reader r2 = *rd;
	r2.len = 0;
	int r = reader_open(&r2, path, index);
	if (r == 0) {
		struct sl_log_rec rec;
		r = reader_next(&r2, &rec);
		r = r < 0 ? r : r == RD_OK;
	} else {
		r = r == SL_ECORRUPT ? 0 : r;
	}
	reader_close(&r2);
	/* r2 read into rd's buffer: what rd has cached there is gone. */
	rd->len = 0;
	rd->gen++;
	return r;
}

static void report_bad(struct recovery *rc, const char *path, uint64_t off, const char *why)
{
	fprintf(stderr, "sluice: wal: %s at offset %" PRIu64 ": %s\n", path, off, why);
	if (rc->bad_path && rc->bad_cap) {
		snprintf(rc->bad_path, rc->bad_cap, "%s", path);
		rc->bad_off = off;
	}
}

/* Is [from, size) of the segment all zeros? 1, 0, or -errno. */
static int rest_is_zero(struct seg_reader *rd, uint64_t from)
{
	for (uint64_t off = from; off < rd->size; off += READ_CHUNK) {
		size_t n = rd->size - off < READ_CHUNK ? (size_t)(rd->size - off) : READ_CHUNK;
		int err = 0;
		const uint8_t *p = reader_at(rd, off, n, &err);
		if (err)
			return err;
		if (!p)
			return 1; /* the file ends early: nothing there */
		if (!is_zero(p, n))
			return 0;
	}
	return 1;
}

/* Zero a torn tail [from, size) of a segment (only the chunks that are not zero already). */
static int zero_tail(struct wal *w, int fd, struct seg_reader *rd, uint64_t from,
		     uint64_t *torn)
{
	uint64_t last_nonzero = from;
	uint8_t *zeros = sl__os_calloc(w->os, ZERO_CHUNK);
	if (!zeros)
		return -ENOMEM;
	int r = 0;
	for (uint64_t off = from; off < rd->size; off += ZERO_CHUNK) {
		size_t n = rd->size - off < ZERO_CHUNK ? (size_t)(rd->size - off) : ZERO_CHUNK;
		int err = 0;
		const uint8_t *p = reader_at(rd, off, n, &err);
		if (err) {
			r = err;
			break;
		}
		if (!p || is_zero(p, n))
			continue;
		for (size_t i = n; i-- > 0;)
			if (p[i]) {
				last_nonzero = off + i + 1;
				break;
			}
		if (fd >= 0 && (r = sl__os_pwrite_all(w->os, fd, zeros, n, (off_t)off)) < 0)
			break;
	}
	sl__os_free(w->os, zeros);
	rd->len = 0;
	rd->gen++;
	*torn = last_nonzero - from;
	if (!r && fd >= 0 && !w->cfg.no_sync)
		r = w->os->ops->fdatasync(w->os->ctx, fd);
	return r;
}

static int recover_segment(struct wal *w, struct recovery *rc, struct seg_reader *rd,
			   const uint64_t *idx, size_t i, struct seg *out)
{
	char path[4200];
	seg_path(w, idx[i], "", path, sizeof(path));
	memset(out, 0, sizeof(*out));
	out->index = idx[i];
	out->fd = -1;
	out->used = SEG_HDR_LEN;
	int r = reader_open(rd, path, idx[i]);
	out->size = rd->size;
	if (r == SL_ECORRUPT) {
		/* Segments appear by rename, complete; a bad header is damage, except that an
		 * empty segment with no good record after it is just dropped on repair. */
		const char *why = rd->why;
		if (rc->last_data != SIZE_MAX && i < rc->last_data) {
			report_bad(rc, path, 0, why);
			return SL_ECORRUPT;
		}
		/* A segment is renamed into place only after its header is synced, so a bad
		 * header over records is damage too: dropping it would lose them. */
		int empty = rest_is_zero(rd, SEG_HDR_LEN);
		if (empty < 0)
			return empty;
		if (!empty) {
			report_bad(rc, path, 0, "bad segment header, with data after it");
			return SL_ECORRUPT;
		}
		report_bad(rc, path, 0, "bad header on the last segment; dropped");
		if (rc->bad_path)
			rc->bad_path[0] = 0;
		rc->skip = 1;
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "sluice: wal: %s: %s\n", path, sl_strerror(r));
		return r;
	}
	for (;;) {
		struct sl_log_rec rec;
		uint64_t at = rd->pos;
		int st = reader_next(rd, &rec);
		if (st < 0)
			return st;
		if (st == RD_OK) {
			if (rec.seq <= rc->last_seq) {
				report_bad(rc, path, at, "sequence not increasing");
				return SL_ECORRUPT;
			}
			rc->last_seq = rec.seq;
			rc->records++;
			if (!out->first_seq)
				out->first_seq = rec.seq;
			out->last_seq = rec.seq;
			out->used = rd->pos;
			if (rc->cb && (r = rc->cb(rc->arg, &rec)) != 0)
				return r;
			continue;
		}
		/* Zeros where a record header would be: this segment ends here (the writer moved on
		 * to a fresh segment after a rotation or a restart), or, in the last segment with
		 * data, the log ends here and anything after a hole was never acknowledged. A bad
		 * record is a torn tail only when nothing good follows it anywhere: the committer
		 * syncs a segment before it writes the next, so a torn write is always the very
		 * end of the log. */
		uint64_t found = 0;
		int later = rc->last_data != SIZE_MAX && i < rc->last_data;
		if (st == RD_END && later) {
			/* A segment the writer left is zeros from its end on (the rest was never
			 * written, or a torn tail there was zeroed before the writer moved on):
			 * anything else after the "end" is a hole in synced data. */
			int zero = rest_is_zero(rd, at);
			if (zero < 0)
				return zero;
			if (zero)
				return 0;
			report_bad(rc, path, at, "zeros where a record should be, data after them");
			return SL_ECORRUPT;
		}
		int here = 0;
		if (st == RD_BAD && (here = scan_for_good(rd, at + 1, rc->last_seq, &found)) < 0)
			return here;
		if (later || here) {
			report_bad(rc, path, at, rd->why);
			return SL_ECORRUPT;
		}
		uint64_t torn = 0;
		int fd = -1;
		if (!w->rdonly && (fd = w->os->ops->open(w->os->ctx, path, O_RDWR, 0)) < 0)
			return fd;
		r = zero_tail(w, fd, rd, at, &torn);
		if (fd >= 0)
			w->os->ops->close(w->os->ctx, fd);
		if (r < 0)
			return r;
		if (torn) {
			fprintf(stderr,
				"sluice: wal: %s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
				" (%s)%s\n",
				path, torn, at, st == RD_BAD ? rd->why : "partial write",
				w->rdonly ? "" : "; truncated");
			rc->torn_bytes += torn;
		}
		return 0;
	}
}

static int recover(struct wal *w, struct recovery *rc)
{
	struct index_list l = { .os = w->os, .dir = w->dir, .rdonly = w->rdonly };
	int r = w->os->ops->list(w->os->ctx, w->dir, list_cb, &l);
	if (r < 0)
		goto out;
	if (l.n) /* qsort's base must not be NULL, even for no elements */
		qsort(l.v, l.n, sizeof(*l.v), cmp_u64);
	/* Segments are made one index after another and removed only from the front, so a
	 * missing index between two present ones is a lost file. */
	for (size_t i = 1; i < l.n; i++) {
		if (l.v[i] != l.v[i - 1] + 1) {
			char path[4200];
			seg_path(w, l.v[i - 1] + 1, "", path, sizeof(path));
			report_bad(rc, path, 0, "segment file missing between two present ones");
			r = SL_ECORRUPT;
			goto out;
		}
	}
	struct seg_reader rd;
	if ((r = reader_init(&rd, w->os, w->accel)) < 0)
		goto out;
	/* Which segment is the last to hold a record: looked up once, from the end (only the
	 * trailing empty ones and one more are opened), not once per segment. */
	rc->last_data = SIZE_MAX;
	for (size_t i = l.n; i-- > 0;) {
		int has = seg_has_records(w, &rd, l.v[i]);
		if (has < 0) {
			r = has;
			goto out_release;
		}
		if (has) {
			rc->last_data = i;
			break;
		}
	}
	for (size_t i = 0; i < l.n; i++) {
		struct seg s;
		rc->skip = 0;
		r = recover_segment(w, rc, &rd, l.v, i, &s);
		reader_close(&rd);
		if (r == 0 && rc->skip) {
			char path[4200];
			seg_path(w, l.v[i], "", path, sizeof(path));
			if (!w->rdonly)
				w->os->ops->unlink(w->os->ctx, path);
			continue;
		}
		if (r)
			break; /* an error, or the callback's nonzero return */
		pthread_mutex_lock(&w->mu);
		r = push_seg_locked(w, &s);
		pthread_mutex_unlock(&w->mu);
		if (r < 0)
			break;
	}
out_release:
	reader_release(&rd);
out:
	w->os->ops->free(w->os->ctx, l.v);
	return r;
}

/* ---- Cursors ------------------------------------------------------------------------------ */

struct sl_log_cursor {
	struct wal *w;
	uint64_t next_seq;
	uint64_t seg;    /* index of the open segment, 0 when none */
	struct seg_reader rd;
};

static int wal_cursor_open(void *impl, uint64_t from, struct sl_log_cursor **out)
{
	struct wal *w = impl;
	struct sl_log_cursor *c = sl__os_calloc(w->os, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->w = w;
	c->next_seq = from ? from : 1;
	int r = reader_init(&c->rd, w->os, w->accel);
	if (r < 0) {
		sl__os_free(w->os, c);
		return r;
	}
	*out = c;
	return 0;
}

/* The segment to read next: the current one, or the first later one that may hold next_seq. */
static uint64_t pick_seg(struct wal *w, uint64_t after_index, uint64_t seq, uint64_t limit)
{
	uint64_t best = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nsegs; i++) {
		const struct seg *s = &w->segs[i];
		if (s->index <= after_index || !s->first_seq || s->first_seq > limit)
			continue;
		if (s->last_seq < seq)
			continue;
		best = s->index;
		break;
	}
	pthread_mutex_unlock(&w->mu);
	return best;
}

static uint64_t seg_last_seq(struct wal *w, uint64_t index)
{
	pthread_mutex_lock(&w->mu);
	struct seg *s = find_seg_locked(w, index);
	uint64_t v = s ? s->last_seq : 0;
	pthread_mutex_unlock(&w->mu);
	return v;
}

static int wal_cursor_next(struct sl_log_cursor *c, struct sl_log_rec *rec)
{
	struct wal *w = c->w;
	uint64_t limit = w->rdonly ? UINT64_MAX : ck_pr_load_64(&w->durable_seq);
	int reread = 0;
	for (;;) {
		if (c->next_seq > limit)
			return SL_EEND;
		if (!c->seg) {
			uint64_t s = pick_seg(w, 0, c->next_seq, limit);
			if (!s)
				return SL_EEND;
			char path[4200];
			seg_path(w, s, "", path, sizeof(path));
			int r = reader_open(&c->rd, path, s);
			if (r < 0) {
				reader_close(&c->rd);
				if (r == SL_ECORRUPT)
					fprintf(stderr, "sluice: wal: %s: %s\n", path, c->rd.why);
				return r;
			}
			c->seg = s;
		}
		uint64_t at = c->rd.pos;
		int st = reader_next(&c->rd, rec);
		if (st < 0)
			return st;
		if (st != RD_OK && c->rd.len && !reread) {
			/* The read-ahead cache may hold zeros or a partial record from before the
			 * writes that made these records durable: read the disk again. */
			c->rd.len = 0;
			reread = 1;
			continue;
		}
		if (st == RD_OK) {
			if (rec->seq > limit) {
				c->rd.pos = at; /* not durable yet: read it again next time */
				return SL_EEND;
			}
			if (rec->seq < c->next_seq)
				continue;
			c->next_seq = rec->seq + 1;
			return 0;
		}
		/* End of this segment's data. A bad record where the segment table says durable
		 * records are is damage; otherwise move on, or wait for more. */
		c->rd.len = 0; /* the file may grow: never trust a cached tail */
		uint64_t seg_last = seg_last_seq(w, c->seg);
		if (seg_last >= c->next_seq && seg_last <= limit) {
			char path[4200];
			seg_path(w, c->seg, "", path, sizeof(path));
			fprintf(stderr, "sluice: wal: %s at offset %" PRIu64 ": %s\n", path, at,
				st == RD_BAD ? c->rd.why : "durable records missing");
			return SL_ECORRUPT;
		}
		uint64_t nxt = pick_seg(w, c->seg, c->next_seq, limit);
		if (!nxt) {
			c->rd.pos = at;
			return SL_EEND;
		}
		reader_close(&c->rd);
		c->seg = 0;
	}
}

static void wal_cursor_close(struct sl_log_cursor *c)
{
	if (!c)
		return;
	reader_close(&c->rd);
	reader_release(&c->rd);
	sl__os_free(c->w->os, c);
}

/* ---- Lifecycle ---------------------------------------------------------------------------- */

static int wal_truncate_before(void *impl, uint64_t seq)
{
	struct wal *w = impl;
	int r = 0;
	pthread_mutex_lock(&w->mu);
	/* Keep the segment that holds seq and everything after; never the writer's own. */
	while (w->nsegs > 1 && w->segs[1].first_seq && w->segs[1].first_seq <= seq &&
	       w->segs[0].index < w->w_seg) {
		struct seg s = w->segs[0];
		memmove(&w->segs[0], &w->segs[1], (w->nsegs - 1) * sizeof(s));
		w->nsegs--;
		pthread_mutex_unlock(&w->mu);
		char path[4200];
		seg_path(w, s.index, "", path, sizeof(path));
		if (s.fd >= 0)
			w->os->ops->close(w->os->ctx, s.fd);
		r = w->os->ops->unlink(w->os->ctx, path);
		pthread_mutex_lock(&w->mu);
		if (r < 0)
			break;
	}
	pthread_mutex_unlock(&w->mu);
	if (!r && !w->cfg.no_sync)
		r = w->os->ops->sync_dir(w->os->ctx, w->dir);
	return r;
}

static void wal_get_stats(void *impl, struct sl_log_stats *out)
{
	struct wal *w = impl;
	pthread_mutex_lock(&w->mu);
	out->segments = w->nsegs;
	pthread_mutex_unlock(&w->mu);
	out->prepare_errors = ck_pr_load_64(&w->st.prepare_errors);
	out->bytes = ck_pr_load_64(&w->st.bytes);
	out->commits = ck_pr_load_64(&w->st.commits);
	out->syncs = ck_pr_load_64(&w->st.syncs);
	out->records = ck_pr_load_64(&w->st.records);
	out->backpressure_waits = ck_pr_load_64(&w->st.backpressure_waits);
	out->io_errors = ck_pr_load_64(&w->st.io_errors);
	out->recovered_records = w->st.recovered_records;
	out->recovery_torn_bytes = w->st.recovery_torn_bytes;
	out->recovery_ns = w->st.recovery_ns;
}

static void wal_free(struct wal *w)
{
	if (!w)
		return;
	const struct sl_os *os = w->os;
	for (size_t i = 0; i < w->nsegs; i++)
		if (w->segs[i].fd >= 0)
			os->ops->close(os->ctx, w->segs[i].fd);
	os->ops->free(os->ctx, w->segs);
	sl__os_free(os, w->bufs[0].data);
	sl__os_free(os, w->bufs[1].data);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv_commit);
	pthread_cond_destroy(&w->cv_space);
	pthread_cond_destroy(&w->cv_durable);
	pthread_cond_destroy(&w->cv_prep);
	pthread_cond_destroy(&w->cv_prep_req);
	sl__os_free(os, w);
}

static int wal_close(void *impl)
{
	struct wal *w = impl;
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv_commit);
	pthread_cond_broadcast(&w->cv_prep_req);
	pthread_cond_broadcast(&w->cv_prep);
	pthread_mutex_unlock(&w->mu);
	if (w->threads) {
		pthread_join(w->committer, NULL);
		pthread_join(w->preparer, NULL);
		w->threads = 0;
	}
	int r = w->failed;
	wal_free(w);
	return r;
}

static const struct sl_log_ops wal_ops = {
	.version = SL_LOG_OPS_VERSION,
	.name = "wal",
	.append_batch = wal_append_batch,
	.durable_seq = wal_durable_seq,
	.wait_durable = wal_wait_durable,
	.sync_now = wal_sync_now,
	.cursor_open = wal_cursor_open,
	.cursor_next = wal_cursor_next,
	.cursor_close = wal_cursor_close,
	.truncate_before = wal_truncate_before,
	.get_stats = wal_get_stats,
	.close = wal_close,
};

static int wal_new(const struct sl_wal_config *cfg, const struct sl_os *os, struct sl_accel *accel,
		   struct wal **out)
{
	struct wal *w = sl__os_calloc(os, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	if (!w->cfg.segment_bytes)
		w->cfg.segment_bytes = 64ull << 20;
	if (!w->cfg.buffer_bytes)
		w->cfg.buffer_bytes = 64ull << 20;
	if (!w->cfg.commit_max_bytes)
		w->cfg.commit_max_bytes = 4u << 20;
	w->os = os;
	w->accel = accel;
	w->rdonly = cfg->rdonly;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv_commit, &ca);
	pthread_cond_init(&w->cv_space, &ca);
	pthread_cond_init(&w->cv_durable, &ca);
	pthread_cond_init(&w->cv_prep, &ca);
	pthread_cond_init(&w->cv_prep_req, &ca);
	pthread_condattr_destroy(&ca);
	*out = w;
	if (w->cfg.segment_bytes < SL_WAL_MIN_SEGMENT || w->cfg.segment_bytes > (1ull << 40) ||
	    w->cfg.buffer_bytes < 2 * (REC_HDR_LEN + SL_LOG_MAX_PAYLOAD))
		return SL_ECONFIG;
	if ((size_t)snprintf(w->dir, sizeof(w->dir), "%s/wal", cfg->dir) >= sizeof(w->dir) - 64)
		return -ENAMETOOLONG;
	return 0;
}

static int wal_start(struct wal *w)
{
	const struct sl_os *os = w->os;
	size_t half = (size_t)(w->cfg.buffer_bytes / 2);
	for (int i = 0; i < 2; i++) {
		w->bufs[i].cap = half;
		w->bufs[i].data = sl__os_malloc(os, half);
		if (!w->bufs[i].data)
			return -ENOMEM;
	}
	w->fill = &w->bufs[0];
	/* Empty segments after the last one with data are spares made ahead of need: keep one
	 * for the writer to continue in and drop the rest (each open would otherwise add one). */
	size_t keep = 0;
	for (size_t i = 0; i < w->nsegs; i++)
		if (w->segs[i].first_seq)
			keep = i + 1;
	while (w->nsegs > keep + 1) {
		char path[4200];
		seg_path(w, w->segs[w->nsegs - 1].index, "", path, sizeof(path));
		int r = os->ops->unlink(os->ctx, path);
		if (r < 0)
			return r;
		w->nsegs--;
	}
	/* The writer continues in the last segment, after its last good record. */
	if (w->nsegs) {
		struct seg *s = &w->segs[w->nsegs - 1];
		char path[4200];
		seg_path(w, s->index, "", path, sizeof(path));
		s->fd = os->ops->open(os->ctx, path, O_RDWR, 0);
		if (s->fd < 0)
			return s->fd;
		w->w_seg = s->index;
		w->w_off = s->used;
		w->w_seg_bytes = s->size;
	} else {
		int fd = prepare_segment(w, 1);
		if (fd < 0)
			return fd;
		struct seg s = {
			.index = 1, .fd = fd, .used = SEG_HDR_LEN, .size = w->cfg.segment_bytes
		};
		int r = push_seg_locked(w, &s);
		if (r < 0) {
			os->ops->close(os->ctx, fd);
			return r;
		}
		w->w_seg = 1;
		w->w_off = SEG_HDR_LEN;
		w->w_seg_bytes = w->cfg.segment_bytes;
		w->st.segments++;
	}
	w->prepared_upto = w->w_seg;
	w->want_seg = w->w_seg;
	if (pthread_create(&w->committer, NULL, committer_main, w))
		return -EAGAIN;
	if (pthread_create(&w->preparer, NULL, preparer_main, w)) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_broadcast(&w->cv_commit);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->committer, NULL);
		return -EAGAIN;
	}
	w->threads = 1;
	return 0;
}

int sl__wal_open(const struct sl_wal_config *cfg, const struct sl_os *os, struct sl_accel *accel,
		 int (*recover_cb)(void *arg, const struct sl_log_rec *rec), void *arg,
		 struct sl_log *out)
{
	struct wal *w = NULL;
	int r = wal_new(cfg, os, accel, &w);
	if (r < 0)
		goto out_free;
	if (!w->rdonly) {
		r = os->ops->mkdir(os->ctx, w->dir, 0755);
		if (r < 0 && r != -EEXIST)
			goto out_free;
	}
	uint64_t t0 = os->ops->mono_ns(os->ctx);
	struct recovery rc = { .cb = recover_cb, .arg = arg };
	r = recover(w, &rc);
	if (r == -ENOENT && w->rdonly)
		r = 0; /* no log yet: an empty store */
	if (r)
		goto out_free;
	w->st.recovered_records = rc.records;
	w->st.recovery_torn_bytes = rc.torn_bytes;
	w->st.recovery_ns = os->ops->mono_ns(os->ctx) - t0;
	w->st.segments = w->nsegs;
	w->w_last_seq = rc.last_seq;
	w->durable_seq = rc.last_seq;
	if (!w->rdonly && (r = wal_start(w)) < 0)
		goto out_free;
	out->ops = &wal_ops;
	out->impl = w;
	return 0;
out_free:
	wal_free(w);
	return r;
}

int sl__wal_verify(const char *dir, const struct sl_os *os, struct sl_accel *accel, char *path,
		   size_t cap, uint64_t *off, uint64_t *records, uint64_t *torn_bytes)
{
	struct sl_wal_config cfg = { .dir = dir, .rdonly = 1 };
	struct wal *w = NULL;
	int r = wal_new(&cfg, os, accel, &w);
	if (r < 0)
		goto out;
	if (path && cap)
		path[0] = 0;
	struct recovery rc = { .bad_path = path, .bad_cap = cap };
	r = recover(w, &rc);
	if (r == -ENOENT && !(path && path[0]))
		r = 0; /* no log directory yet: an empty store, as a read-only open sees it */
	if (off)
		*off = rc.bad_off;
	if (records)
		*records = rc.records;
	if (torn_bytes)
		*torn_bytes = rc.torn_bytes;
out:
	wal_free(w);
	return r;
}
