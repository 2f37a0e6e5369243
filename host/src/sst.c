/* sst.c - sorted string tables (the contract is sst.h): a writer that streams sorted entries into
 * prefix-compressed, CRC32C-protected data blocks and ends the file with a bloom block, an index
 * block and a footer; a reader that maps the file, trusts no byte of it until checked, and checks
 * each data block's CRC once, on first use. sst sits on os, accel, bloom and block (the data
 * block codec, which the merge job shares so that there is one encoder and one decoder); it knows
 * nothing of levels, the manifest or what keys mean. Besides its own writer it writes tables
 * whose data blocks a merge job built (sl__sst_write_merged), with the same tail.
 *
 * On-disk layout, integers little-endian, nothing aligned:
 *   data block   entry... | u32 restart[n] | u32 n | u32 CRC32C of all bytes before it
 *     entry      varint shared | varint unshared | varint vlen | u8 flags | key[shared..] | value
 *                (shared: bytes taken from the previous key; 0 at every restart point)
 *   bloom block  filter (sl__bloom_bytes: a multiple of 64 bytes) | u32 CRC32C of the filter
 *   index block  u8 smallest_len | smallest key | per data block {u8 klen | last key | u64 offset
 *                | u32 size (trailer included)} | u32 count | u32 CRC32C of all bytes before it
 *   footer       struct footer_disk (64 bytes), its CRC32C over the first 60 bytes last
 * The data blocks are contiguous from offset 0; bloom, index and footer follow back to back.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "sluice.h"
#include "sst.h"

#define SST_MAGIC     "SLUICEST"
#define SST_VERSION   1
#define FOOTER_LEN    64
#define INDEX_TRAILER 8 /* u32 count, u32 CRC */
#define MIN_ENTRY     SL_BLOCK_MIN_ENTRY
#define MIN_BLOCK     SL_BLOCK_MIN
#define IDX_FIXED     13  /* per index entry besides the key: u8 klen, u64 offset, u32 size */
#define MAX_PROBES    64  /* far above any useful k; a larger count in a footer is damage */
#define VERIFY_BATCH  64  /* blocks checksummed per accelerator call in verify */
#define VERIFY_HASHES 256 /* key hashes probed per bloom batch in verify */

#define DEFAULT_BLOCK_BYTES 4096u
#define DEFAULT_RESTART	    16u
#define MIN_BLOCK_BYTES	    64u
#define MAX_BLOCK_BYTES	    (64u << 20)
#define MAX_RESTART	    (1u << 16)
#define MAX_BLOOM_BITS	    64u

/* The footer as it lies on disk: natural alignment, no padding, so the struct is the layout. */
struct footer_disk {
	char magic[8];
	uint16_t version;
	uint16_t bloom_probes;
	uint32_t bloom_size; /* filter bytes + 4 (its CRC) */
	uint64_t bloom_off;
	uint64_t index_off;
	uint64_t entries;
	uint64_t user[2];
	uint32_t index_size; /* the whole index block, count and CRC included */
	uint32_t crc;	     /* CRC32C of bytes [0, 60) */
};
_Static_assert(sizeof(struct footer_disk) == FOOTER_LEN, "the footer is 64 bytes");
_Static_assert(offsetof(struct footer_disk, crc) == FOOTER_LEN - 4, "the footer CRC comes last");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk integers are little-endian");
_Static_assert(SL_SST_MAX_KEY <= 255, "key lengths are stored in one byte in the index");
_Static_assert(SL_SST_MAX_KEY == SL_BLOCK_MAX_KEY && SL_SST_MAX_KEY == SL_ACCEL_MAX_KEY,
	       "tables, the block codec and the merge job agree on the key size");
_Static_assert(SL_SST_TOMBSTONE == SL_ACCEL_TOMBSTONE, "the merge job drops sst's tombstones");

/* ---- Small helpers ------------------------------------------------------------------------ */

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* The first 8 bytes of a key, zero-padded, as a big-endian integer. Prefixes order as the keys
 * do wherever they differ (a shorter key padded with zeros is a prefix of the longer one, which
 * sorts first either way), so the index search compares integers in its own array and touches
 * the mapping only on a tie. */
static uint64_t key_prefix(const uint8_t *k, size_t klen)
{
	uint64_t v = 0;
	memcpy(&v, k, klen < 8 ? klen : 8);
	return __builtin_bswap64(v);
}

/* Grow *p (elements of size elem, capacity *cap) to hold at least need, doubling. */
static int grow(const struct sl_os *os, void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *q = os->ops->realloc(os->ctx, *p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static char *dup_str(const struct sl_os *os, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = sl__os_malloc(os, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* ---- Writer ------------------------------------------------------------------------------- */

struct sl_sst_writer {
	const struct sl_os *os;
	struct sl_accel *accel;
	char *path;
	int fd;
	int err; /* the first I/O error: the table is lost and finish removes the file */
	uint32_t block_bytes, restart_interval, bloom_bits;
	int no_sync;
	uint64_t user[2];

	/* The data block being filled, by the codec, in storage grown here: entries in blk, the
	 * restart offsets in restarts until the block is cut. enc.last is the last key added. */
	struct sl_block_enc enc;
	uint8_t *blk;
	size_t blk_cap;
	uint32_t *restarts;
	size_t restarts_cap;

	uint8_t first[SL_SST_MAX_KEY];
	size_t first_len;
	uint64_t entries;
	uint64_t off; /* file offset of the next data block */
	uint64_t nblocks;

	/* The index block as it will be written (without its trailer), and every key's hash. */
	uint8_t *index;
	size_t index_len, index_cap;
	uint64_t *hashes;
	size_t hashes_cap;

	/* A merge job's filter, used as it is instead of one built from hashes (write_merged). */
	const uint8_t *given_bloom;
	size_t given_bloom_len;
	uint32_t given_probes;
};

static int check_options(const struct sl_sst_options *opt, struct sl_sst_writer *w)
{
	struct sl_sst_options o = { 0 };
	if (opt)
		o = *opt;
	w->block_bytes = o.block_bytes ? o.block_bytes : DEFAULT_BLOCK_BYTES;
	w->restart_interval = o.restart_interval ? o.restart_interval : DEFAULT_RESTART;
	w->bloom_bits = o.bloom_bits_per_key ? o.bloom_bits_per_key : SL_BLOOM_DEFAULT_BITS;
	w->no_sync = o.no_sync;
	w->user[0] = o.user[0];
	w->user[1] = o.user[1];
	if (w->block_bytes < MIN_BLOCK_BYTES || w->block_bytes > MAX_BLOCK_BYTES ||
	    w->restart_interval > MAX_RESTART || w->bloom_bits > MAX_BLOOM_BITS)
		return SL_ECONFIG;
	return 0;
}

/* A writer with its file created (O_EXCL), and with_block a block buffer of block_bytes (a
 * merged table's blocks come ready made). */
static int writer_new(const struct sl_os *os, struct sl_accel *accel, const char *path,
		      const struct sl_sst_options *opt, int with_block, struct sl_sst_writer **out)
{
	*out = NULL;
	struct sl_sst_writer *w = sl__os_calloc(os, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->os = os;
	w->accel = accel;
	w->fd = -1;
	int r = check_options(opt, w);
	if (r < 0)
		goto out_free;
	r = -ENOMEM;
	w->path = dup_str(os, path);
	if (!w->path)
		goto out_free;
	if (with_block) {
		w->blk_cap = w->block_bytes;
		w->blk = sl__os_malloc(os, w->blk_cap);
		if (!w->blk)
			goto out_free;
	}
	sl__block_enc_init(&w->enc, w->block_bytes, w->restart_interval, w->blk, w->blk_cap, NULL,
			   0);
	w->fd = os->ops->open(os->ctx, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (w->fd < 0) {
		r = w->fd;
		goto out_free;
	}
	*out = w;
	return 0;
out_free:
	sl__os_free(os, w->blk);
	sl__os_free(os, w->path);
	sl__os_free(os, w);
	return r;
}

int sl__sst_writer_open(const struct sl_os *os, struct sl_accel *accel, const char *path,
			const struct sl_sst_options *opt, struct sl_sst_writer **out)
{
	return writer_new(os, accel, path, opt, 1, out);
}

static void writer_free(struct sl_sst_writer *w)
{
	const struct sl_os *os = w->os;
	sl__os_free(os, w->blk);
	sl__os_free(os, w->restarts);
	sl__os_free(os, w->index);
	sl__os_free(os, w->hashes);
	sl__os_free(os, w->path);
	sl__os_free(os, w);
}

/* The index block opens with the table's smallest key, known at the first add (or at finish
 * for an empty table), so that opening a table never needs a data block for its meta. */
static int index_put_smallest(struct sl_sst_writer *w, const uint8_t *key, size_t klen)
{
	int r = grow(w->os, (void **)&w->index, &w->index_cap, 1 + klen, 1);
	if (r < 0)
		return r;
	w->index[0] = (uint8_t)klen;
	if (klen)
		memcpy(w->index + 1, key, klen);
	w->index_len = 1 + klen;
	return 0;
}

/* Append a data block's index entry; the space must have been grown first. */
static void index_put_block(struct sl_sst_writer *w, const uint8_t *last, size_t last_len,
			    uint64_t off, uint32_t size)
{
	uint8_t *e = w->index + w->index_len;
	e[0] = (uint8_t)last_len;
	memcpy(e + 1, last, last_len);
	put_u64(e + 1 + last_len, off);
	put_u32(e + 1 + last_len + 8, size);
	w->index_len += IDX_FIXED + last_len;
}

/* Close the block (the codec adds restart array and count), CRC, one pwrite, its index entry. */
static int flush_block(struct sl_sst_writer *w)
{
	/* Reserve the index entry first: an allocation failure must leave the block intact. */
	int r = grow(w->os, (void **)&w->index, &w->index_cap,
		     w->index_len + IDX_FIXED + w->enc.last_len, 1);
	if (r < 0)
		return r;
	size_t len = sl__block_enc_finish(&w->enc);
	uint32_t crc;
	struct sl_accel_buf b = { w->blk, len };
	r = sl__accel_crc32c_batch(w->accel, &b, 1, &crc);
	if (r < 0)
		return w->err = r;
	put_u32(w->blk + len, crc);
	len += 4;
	r = sl__os_pwrite_all(w->os, w->fd, w->blk, len, (off_t)w->off);
	if (r < 0)
		return w->err = r;
	index_put_block(w, w->enc.last, w->enc.last_len, w->off, (uint32_t)len);
	w->off += len;
	w->nblocks++;
	sl__block_enc_reset(&w->enc);
	return 0;
}

int sl__sst_writer_add(struct sl_sst_writer *w, const void *key, size_t klen, const void *val,
		       size_t vlen, uint32_t flags)
{
	const uint8_t *k = key;
	if (klen == 0 || klen > SL_SST_MAX_KEY || vlen > SL_SST_MAX_VALUE || flags > 0xff ||
	    (vlen && !val))
		return -EINVAL;
	if (w->err)
		return w->err;
	if (w->entries && sl__block_key_cmp(k, klen, w->enc.last, w->enc.last_len) <= 0)
		return SL_EORDER;
	int r;
	/* Cut the block before an entry that would push it past block_bytes (the codec's rule,
	 * which the merge job follows too), so that blocks stay within block_bytes except for one
	 * holding a single oversized entry. */
	if (sl__block_enc_full(&w->enc, klen, vlen) && (r = flush_block(w)) < 0)
		return r;
	/* Every allocation before any state changes: a failed one refuses just this entry. */
	size_t need = sl__block_enc_need(&w->enc, klen, vlen);
	if ((r = grow(w->os, (void **)&w->blk, &w->blk_cap, need, 1)) < 0 ||
	    (r = grow(w->os, (void **)&w->restarts, &w->restarts_cap, w->enc.nrestarts + 1, 4)) <
		    0 ||
	    (r = grow(w->os, (void **)&w->hashes, &w->hashes_cap, w->entries + 1, 8)) < 0)
		return r;
	w->enc.buf = w->blk;
	w->enc.cap = w->blk_cap;
	w->enc.restarts = w->restarts;
	w->enc.restarts_cap = w->restarts_cap;
	if (!w->entries) {
		if ((r = index_put_smallest(w, k, klen)) < 0)
			return r;
		memcpy(w->first, k, klen);
		w->first_len = klen;
	}
	/* Cannot fail: blk holds the entry's bound and the trailer, restarts one more slot. */
	r = sl__block_enc_add(&w->enc, k, klen, val, vlen, (uint8_t)flags);
	assert(r == 0);
	(void)r;
	w->hashes[w->entries++] = sl__bloom_hash(k, klen);
	return 0;
}

/* Bloom block, index block and footer, assembled in one buffer and written with one pwrite. The
 * three CRCs are independent of each other (the footer holds sizes, not CRCs), so they are
 * computed in one accelerator call. The filter is built from the key hashes, or copied from a
 * merge job's. */
static int write_tail(struct sl_sst_writer *w, uint32_t *bloom_bytes, uint32_t *probes)
{
	const struct sl_os *os = w->os;
	size_t fbytes =
		w->given_bloom ? w->given_bloom_len : sl__bloom_bytes(w->entries, w->bloom_bits);
	uint32_t k = w->given_bloom ? w->given_probes : sl__bloom_probes(w->bloom_bits);
	size_t bsize = fbytes + 4, isize = w->index_len + INDEX_TRAILER;
	if (bsize > UINT32_MAX || isize > UINT32_MAX || w->nblocks > UINT32_MAX || k == 0 ||
	    k > MAX_PROBES)
		return -EFBIG;
	size_t total = bsize + isize + FOOTER_LEN;
	uint8_t *tail = sl__os_calloc(os, total);
	if (!tail)
		return -ENOMEM;
	if (w->given_bloom)
		memcpy(tail, w->given_bloom, fbytes);
	else
		sl__bloom_add(tail, fbytes, w->hashes, w->entries, k);
	uint8_t *ib = tail + bsize;
	memcpy(ib, w->index, w->index_len);
	put_u32(ib + w->index_len, (uint32_t)w->nblocks);
	struct footer_disk f = {
		.version = SST_VERSION,
		.bloom_probes = (uint16_t)k,
		.bloom_size = (uint32_t)bsize,
		.bloom_off = w->off,
		.index_off = w->off + bsize,
		.entries = w->entries,
		.user = { w->user[0], w->user[1] },
		.index_size = (uint32_t)isize,
	};
	memcpy(f.magic, SST_MAGIC, 8);
	uint8_t *fp = ib + isize;
	memcpy(fp, &f, FOOTER_LEN);
	struct sl_accel_buf bufs[3] = {
		{ tail, fbytes },
		{ ib, isize - 4 },
		{ fp, FOOTER_LEN - 4 },
	};
	uint32_t crcs[3];
	int r = sl__accel_crc32c_batch(w->accel, bufs, 3, crcs);
	if (r < 0)
		goto out_free;
	put_u32(tail + fbytes, crcs[0]);
	put_u32(ib + isize - 4, crcs[1]);
	put_u32(fp + FOOTER_LEN - 4, crcs[2]);
	r = sl__os_pwrite_all(os, w->fd, tail, total, (off_t)w->off);
	if (r < 0)
		goto out_free;
	w->off += total;
	*bloom_bytes = (uint32_t)fbytes;
	*probes = k;
out_free:
	sl__os_free(os, tail);
	return r;
}

/* fsync the directory holding path: the table's directory entry must be as durable as its
 * data before a manifest edit names it (fdatasync covers the file, not the entry). */
static int sync_parent(const struct sl_sst_writer *w)
{
	const char *slash = strrchr(w->path, '/');
	if (!slash)
		return w->os->ops->sync_dir(w->os->ctx, ".");
	if (slash == w->path)
		return w->os->ops->sync_dir(w->os->ctx, "/");
	size_t n = (size_t)(slash - w->path);
	char *dir = sl__os_malloc(w->os, n + 1);
	if (!dir)
		return -ENOMEM;
	memcpy(dir, w->path, n);
	dir[n] = 0;
	int r = w->os->ops->sync_dir(w->os->ctx, dir);
	sl__os_free(w->os, dir);
	return r;
}

/* The end of every table write, given the data blocks' outcome r: the tail, the syncs, close;
 * on any failure the file is removed. Fills *meta on success; frees the writer either way. */
static int writer_complete(struct sl_sst_writer *w, int r, struct sl_sst_meta *meta)
{
	const struct sl_os *os = w->os;
	uint32_t bloom_bytes = 0, probes = 0;
	if (!r)
		r = write_tail(w, &bloom_bytes, &probes);
	/* Durable before it is reported written: the caller names the table in a manifest edit
	 * next, and that edit must never point at a file a crash can still tear. */
	if (!r && !w->no_sync)
		r = os->ops->fdatasync(os->ctx, w->fd);
	int rc = os->ops->close(os->ctx, w->fd);
	w->fd = -1;
	if (!r)
		r = rc;
	if (!r && !w->no_sync)
		r = sync_parent(w);
	if (r < 0) {
		/* Nothing that opens as a valid table may stay behind a failure: its footer
		 * may have reached the disk while an earlier block did not. */
		os->ops->unlink(os->ctx, w->path);
		writer_free(w);
		return r;
	}
	if (meta) {
		memset(meta, 0, sizeof(*meta));
		meta->entries = w->entries;
		meta->data_blocks = w->nblocks;
		meta->file_bytes = w->off;
		memcpy(meta->smallest, w->first, w->first_len);
		meta->smallest_len = (uint32_t)w->first_len;
		memcpy(meta->largest, w->enc.last, w->enc.last_len);
		meta->largest_len = (uint32_t)w->enc.last_len;
		meta->user[0] = w->user[0];
		meta->user[1] = w->user[1];
		meta->bloom_bytes = bloom_bytes;
		meta->bloom_probes = probes;
	}
	writer_free(w);
	return 0;
}

int sl__sst_writer_finish(struct sl_sst_writer *w, struct sl_sst_meta *meta)
{
	int r = w->err;
	if (!r && w->enc.entries)
		r = flush_block(w);
	if (!r && !w->entries)
		r = index_put_smallest(w, NULL, 0);
	return writer_complete(w, r, meta);
}

void sl__sst_writer_abort(struct sl_sst_writer *w)
{
	if (!w)
		return;
	w->os->ops->close(w->os->ctx, w->fd);
	w->os->ops->unlink(w->os->ctx, w->path);
	writer_free(w);
}

/* ---- Writer: tables a merge job built ----------------------------------------------------- */

/* The job's outputs as write_merged relies on them: what open would refuse is refused here
 * first (-EINVAL), so a broken backend cannot leave a table that fails to open. */
static int check_merged(const struct sl_accel_merge_job *job)
{
	if (!job->entries_out || !job->n_blocks || !job->blocks || !job->out || !job->bloom)
		return -EINVAL;
	if (job->smallest_len == 0 || job->smallest_len > SL_SST_MAX_KEY ||
	    job->entries_out > job->out_len / MIN_ENTRY)
		return -EINVAL;
	if (job->bloom_len < SL_BLOOM_BLOCK || job->bloom_len % SL_BLOOM_BLOCK ||
	    job->bloom_len > job->bloom_cap || job->bloom_probes == 0 ||
	    job->bloom_probes > MAX_PROBES || job->out_len > job->out_cap ||
	    job->n_blocks > job->blocks_cap)
		return -EINVAL;
	uint64_t off = 0;
	for (size_t i = 0; i < job->n_blocks; i++) {
		const struct sl_accel_block *b = &job->blocks[i];
		if (b->off != off || b->len < MIN_BLOCK || b->len > job->out_len - off ||
		    b->last_len == 0 || b->last_len > SL_SST_MAX_KEY ||
		    get_u32(job->out + off + b->len - 4) != b->crc)
			return -EINVAL;
		const uint8_t *prev = i ? job->blocks[i - 1].last : job->smallest;
		size_t prev_len = i ? job->blocks[i - 1].last_len : job->smallest_len;
		int c = sl__block_key_cmp(b->last, b->last_len, prev, prev_len);
		if (c < 0 || (c == 0 && i))
			return -EINVAL;
		off += b->len;
	}
	return off == job->out_len ? 0 : -EINVAL;
}

int sl__sst_write_merged(const struct sl_os *os, struct sl_accel *accel, const char *path,
			 const struct sl_sst_options *opt, const struct sl_accel_merge_job *job,
			 struct sl_sst_meta *meta)
{
	int r = check_merged(job);
	if (r < 0)
		return r;
	struct sl_sst_options o = { 0 };
	if (opt)
		o = *opt;
	o.bloom_bits_per_key = 0; /* the job's filter is the table's */
	struct sl_sst_writer *w;
	if ((r = writer_new(os, accel, path, &o, 0, &w)) < 0)
		return r;
	size_t ilen = 1 + job->smallest_len;
	for (size_t i = 0; i < job->n_blocks; i++)
		ilen += IDX_FIXED + job->blocks[i].last_len;
	if ((r = grow(os, (void **)&w->index, &w->index_cap, ilen, 1)) < 0 ||
	    (r = index_put_smallest(w, job->smallest, job->smallest_len)) < 0)
		return writer_complete(w, r, NULL);
	for (size_t i = 0; i < job->n_blocks; i++) {
		const struct sl_accel_block *b = &job->blocks[i];
		index_put_block(w, b->last, b->last_len, b->off, b->len);
	}
	const struct sl_accel_block *lb = &job->blocks[job->n_blocks - 1];
	memcpy(w->first, job->smallest, job->smallest_len);
	w->first_len = job->smallest_len;
	memcpy(w->enc.last, lb->last, lb->last_len);
	w->enc.last_len = lb->last_len;
	w->entries = job->entries_out;
	w->nblocks = job->n_blocks;
	w->given_bloom = job->bloom;
	w->given_bloom_len = job->bloom_len;
	w->given_probes = job->bloom_probes;
	/* The data blocks are back to back in out, as they will be in the file: one write. */
	r = sl__os_pwrite_all(os, w->fd, job->out, job->out_len, 0);
	if (!r)
		w->off = job->out_len;
	return writer_complete(w, r, meta);
}

/* ---- Reader: open ------------------------------------------------------------------------- */

/* One decoded index entry. key points into the mapping (validated at open); the lengths and
 * offsets live here, so nothing the mapping holds later can send a read out of bounds. */
struct idx_ent {
	uint64_t prefix; /* the key's first 8 bytes, zero-padded, big-endian: see key_prefix */
	const uint8_t *key;
	uint64_t off;
	uint32_t size;
	uint32_t klen;
};

struct sl_sst {
	const struct sl_os *os;
	struct sl_accel *accel;
	uint64_t tag; /* the owner's (tables: the file number) */
	char *path;
	const uint8_t *map;
	size_t size;
	struct idx_ent *idx;
	uint64_t nblocks;
	const uint8_t *bloom; /* the filter, bloom_bytes long */
	size_t bloom_bytes;
	uint32_t probes;
	uint64_t entries, user[2];
	uint64_t bloom_off, index_off, footer_off;
	const uint8_t *smallest;
	uint32_t smallest_len;
	/* One bit per data block, set with atomic ORs by any reader and never cleared:
	 * verified: its CRC matched; bad: it is damaged and was reported (once). */
	uint64_t *verified, *bad;
};

/* The last damage this thread's open found: where and what, for sl__sst_open_report. */
static _Thread_local uint64_t last_bad_off;
static _Thread_local const char *last_bad_what;

static int corrupt(const char *path, const char *what, uint64_t off)
{
	fprintf(stderr, "sluice: sst: %s: %s at offset %" PRIu64 "\n", path, what, off);
	last_bad_off = off;
	last_bad_what = what;
	return SL_ECORRUPT;
}

int sl__sst_open_report(const struct sl_os *os, struct sl_accel *accel, const char *path,
			uint64_t *bad_off, const char **what)
{
	struct sl_sst *t;
	last_bad_off = 0;
	last_bad_what = NULL;
	int r = sl__sst_open(os, accel, path, &t);
	if (r == 0) {
		sl__sst_close(t);
		return 0;
	}
	*bad_off = r == SL_ECORRUPT ? last_bad_off : 0;
	*what = r == SL_ECORRUPT ? last_bad_what : NULL;
	return r;
}

static int check_footer(struct sl_sst *t, struct footer_disk *f)
{
	uint64_t foff = t->footer_off;
	memcpy(f, t->map + foff, FOOTER_LEN);
	if (memcmp(f->magic, SST_MAGIC, 8))
		return corrupt(t->path, "bad footer magic (not a table, or truncated)", foff);
	if (sl__accel_crc32c(t->accel, f, FOOTER_LEN - 4) != f->crc)
		return corrupt(t->path, "footer checksum mismatch", foff);
	if (f->version != SST_VERSION) {
		fprintf(stderr,
			"sluice: sst: %s: format version %u not supported at offset %" PRIu64 "\n",
			t->path, f->version, foff);
		return SL_EVERSION;
	}
	/* The CRC matched, so what follows guards against a writer bug or a hand-made file;
	 * every later read depends on these bounds. */
	if (f->bloom_probes == 0 || f->bloom_probes > MAX_PROBES)
		return corrupt(t->path, "implausible bloom probe count in footer", foff);
	if (f->bloom_size < SL_BLOOM_BLOCK + 4 || (f->bloom_size - 4) % SL_BLOOM_BLOCK)
		return corrupt(t->path, "implausible bloom block size in footer", foff);
	if (f->index_size < 1 + INDEX_TRAILER)
		return corrupt(t->path, "implausible index block size in footer", foff);
	if (f->bloom_off > foff || f->bloom_size > foff - f->bloom_off ||
	    f->index_off != f->bloom_off + f->bloom_size || f->index_size != foff - f->index_off)
		return corrupt(t->path, "bloom and index blocks do not tile the file", foff);
	if (f->entries > f->bloom_off / MIN_ENTRY)
		return corrupt(t->path, "implausible entry count in footer", foff);
	t->bloom_off = f->bloom_off;
	t->index_off = f->index_off;
	t->entries = f->entries;
	t->user[0] = f->user[0];
	t->user[1] = f->user[1];
	t->probes = f->bloom_probes;
	t->bloom = t->map + f->bloom_off;
	t->bloom_bytes = f->bloom_size - 4;
	return 0;
}

/* Decode and check the index: every entry inside the block, key lengths 1..MAX, keys strictly
 * increasing, data blocks contiguous from 0 up to the bloom block. */
static int load_index(struct sl_sst *t, size_t isize)
{
	const uint8_t *ib = t->map + t->index_off;
	size_t body = isize - INDEX_TRAILER;
	uint64_t count = get_u32(ib + body);
	if (count > body / (IDX_FIXED + 1) || count > t->entries)
		return corrupt(t->path, "implausible index entry count", t->index_off + body);
	size_t pos = 1;
	t->smallest_len = ib[0];
	t->smallest = ib + 1;
	if (t->smallest_len > SL_SST_MAX_KEY || !t->smallest_len != !count ||
	    t->smallest_len > body - pos)
		return corrupt(t->path, "bad smallest key in index", t->index_off);
	pos += t->smallest_len;
	if (count) {
		t->idx = sl__os_malloc(t->os, count * sizeof(*t->idx));
		if (!t->idx)
			return -ENOMEM;
	}
	uint64_t expect = 0;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t at = t->index_off + pos;
		if (pos >= body || ib[pos] == 0 || ib[pos] > SL_SST_MAX_KEY)
			return corrupt(t->path, "bad key length in index entry", at);
		size_t kl = ib[pos];
		if (body - pos < IDX_FIXED + kl)
			return corrupt(t->path, "index entry runs past the index block", at);
		struct idx_ent *e = &t->idx[i];
		e->key = ib + pos + 1;
		e->klen = (uint32_t)kl;
		e->prefix = key_prefix(e->key, kl);
		e->off = get_u64(ib + pos + 1 + kl);
		e->size = get_u32(ib + pos + 1 + kl + 8);
		pos += IDX_FIXED + kl;
		if (e->off != expect)
			return corrupt(t->path, "index: data blocks not contiguous", at);
		if (e->size < MIN_BLOCK || e->size > t->bloom_off - e->off)
			return corrupt(t->path, "index: block size out of the data area", at);
		if (i && sl__block_key_cmp(e->key, kl, e[-1].key, e[-1].klen) <= 0)
			return corrupt(t->path, "index: keys not increasing", at);
		expect += e->size;
	}
	if (pos != body)
		return corrupt(t->path, "index: trailing bytes after the last entry",
			       t->index_off + pos);
	if (expect != t->bloom_off)
		return corrupt(t->path, "index: data blocks do not reach the bloom block",
			       t->index_off);
	if (count &&
	    sl__block_key_cmp(t->smallest, t->smallest_len, t->idx[0].key, t->idx[0].klen) > 0)
		return corrupt(t->path, "index: smallest key above the first block's last",
			       t->index_off);
	t->nblocks = count;
	return 0;
}

/* Index and bloom CRCs in one accelerator call, then the index's structure. */
static int check_index_bloom(struct sl_sst *t, const struct footer_disk *f)
{
	struct sl_accel_buf bufs[2] = {
		{ t->map + f->index_off, f->index_size - 4 },
		{ t->bloom, t->bloom_bytes },
	};
	uint32_t crcs[2];
	int r = sl__accel_crc32c_batch(t->accel, bufs, 2, crcs);
	if (r < 0)
		return r;
	if (crcs[0] != get_u32(t->map + f->index_off + f->index_size - 4))
		return corrupt(t->path, "index block checksum mismatch", f->index_off);
	if (crcs[1] != get_u32(t->bloom + t->bloom_bytes))
		return corrupt(t->path, "bloom block checksum mismatch", f->bloom_off);
	return load_index(t, f->index_size);
}

int sl__sst_open(const struct sl_os *os, struct sl_accel *accel, const char *path,
		 struct sl_sst **out)
{
	*out = NULL;
	struct sl_sst *t = sl__os_calloc(os, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->os = os;
	t->accel = accel;
	int r = -ENOMEM;
	t->path = dup_str(os, path);
	if (!t->path)
		goto out_free;
	int fd = os->ops->open(os->ctx, path, O_RDONLY, 0);
	if (fd < 0) {
		r = fd;
		goto out_free;
	}
	uint64_t size;
	if ((r = os->ops->fsize(os->ctx, fd, &size)) < 0)
		goto out_close_fd;
	/* Shorter than a footer (an empty file, a torn copy): nothing to map. */
	if (size < FOOTER_LEN) {
		r = corrupt(path, "file too short for a footer", 0);
		goto out_close_fd;
	}
	if (size > SIZE_MAX) {
		r = -EFBIG;
		goto out_close_fd;
	}
	void *map;
	if ((r = os->ops->mmap(os->ctx, fd, (size_t)size, &map)) < 0)
		goto out_close_fd;
	/* The mapping keeps the file; the descriptor is not needed any more. */
	os->ops->close(os->ctx, fd);
	t->map = map;
	t->size = (size_t)size;
	t->footer_off = size - FOOTER_LEN;
	struct footer_disk f;
	if ((r = check_footer(t, &f)) < 0 || (r = check_index_bloom(t, &f)) < 0)
		goto out_unmap;
	size_t words = (size_t)((t->nblocks + 63) / 64);
	t->verified = sl__os_calloc(os, 2 * (words ? words : 1) * sizeof(uint64_t));
	if (!t->verified) {
		r = -ENOMEM;
		goto out_unmap;
	}
	t->bad = t->verified + (words ? words : 1);
	*out = t;
	return 0;
out_unmap:
	sl__os_free(os, t->idx);
	os->ops->munmap(os->ctx, map, (size_t)size);
	goto out_free;
out_close_fd:
	os->ops->close(os->ctx, fd);
out_free:
	sl__os_free(os, t->path);
	sl__os_free(os, t);
	return r;
}

void sl__sst_close(struct sl_sst *t)
{
	if (!t)
		return;
	const struct sl_os *os = t->os;
	os->ops->munmap(os->ctx, (void *)t->map, t->size);
	sl__os_free(os, t->verified);
	sl__os_free(os, t->idx);
	sl__os_free(os, t->path);
	sl__os_free(os, t);
}

void sl__sst_get_meta(const struct sl_sst *t, struct sl_sst_meta *out)
{
	memset(out, 0, sizeof(*out));
	out->entries = t->entries;
	out->data_blocks = t->nblocks;
	out->file_bytes = t->size;
	memcpy(out->smallest, t->smallest, t->smallest_len);
	out->smallest_len = t->smallest_len;
	if (t->nblocks) {
		const struct idx_ent *e = &t->idx[t->nblocks - 1];
		memcpy(out->largest, e->key, e->klen);
		out->largest_len = e->klen;
	}
	out->user[0] = t->user[0];
	out->user[1] = t->user[1];
	out->bloom_bytes = (uint32_t)t->bloom_bytes;
	out->bloom_probes = t->probes;
}

void sl__sst_set_tag(struct sl_sst *t, uint64_t tag)
{
	t->tag = tag;
}

uint64_t sl__sst_tag(const struct sl_sst *t)
{
	return t->tag;
}

const char *sl__sst_path(const struct sl_sst *t)
{
	return t->path;
}

uint64_t sl__sst_block_count(const struct sl_sst *t)
{
	return t->nblocks;
}

void sl__sst_block(const struct sl_sst *t, uint64_t i, struct sl_accel_buf *data,
		   const uint8_t **last, size_t *last_len)
{
	const struct idx_ent *e = &t->idx[i];
	data->data = t->map + e->off;
	data->len = e->size;
	if (last)
		*last = e->key;
	if (last_len)
		*last_len = e->klen;
}

int sl__sst_may_contain(const struct sl_sst *t, uint64_t key_hash)
{
	return sl__bloom_may_contain(t->bloom, t->bloom_bytes, key_hash, t->probes);
}

void sl__sst_may_contain_batch(const struct sl_sst *t, const uint64_t *hashes, size_t n,
			       uint8_t *out)
{
	sl__bloom_probe_batch(t->bloom, t->bloom_bytes, hashes, n, t->probes, out);
}

/* ---- Reader: blocks ----------------------------------------------------------------------- */

/* Split block i into entries and restart array (block.c); a static reason, or NULL when sound.
 * open guaranteed that the block lies in the data area. */
static const char *parse_block(const struct sl_sst *t, uint64_t i, struct sl_block *b)
{
	const struct idx_ent *e = &t->idx[i];
	int r = sl__block_parse(b, t->map + e->off, e->size);
	return r < 0 ? sl__block_strerror(r) : NULL;
}

/* What a reader (get, iterators) says when a walk over a block's entries fails. A decode that
 * fails where a restart point should be is, to a reader that came to read that entry, a
 * malformed entry; only the restart search (and verify) speaks of bad restart points. */
static const char *read_why(int err)
{
	return err == -SL_BLOCK_ERESTART ? sl__block_strerror(SL_BLOCK_EENTRY)
					 : sl__block_strerror(err);
}

/* Mark block i bad; the first to do so says so on stderr. */
static int block_bad(struct sl_sst *t, uint64_t i, const char *why)
{
	uint64_t bit = 1ull << (i & 63);
	if (!(__atomic_fetch_or(&t->bad[i >> 6], bit, __ATOMIC_RELAXED) & bit))
		corrupt(t->path, why, t->idx[i].off);
	return SL_ECORRUPT;
}

/* Block i ready to read: its CRC checked once for the table's life. The bits are relaxed: each
 * records a fact about immutable bytes that any thread could recompute, and publishes no other
 * memory; a thread that misses a fresh bit only checks the CRC once more. */
static int block_load(struct sl_sst *t, uint64_t i, struct sl_block *b)
{
	uint64_t bit = 1ull << (i & 63);
	size_t w = (size_t)(i >> 6);
	if (__atomic_load_n(&t->bad[w], __ATOMIC_RELAXED) & bit)
		return SL_ECORRUPT;
	if (!(__atomic_load_n(&t->verified[w], __ATOMIC_RELAXED) & bit)) {
		const struct idx_ent *e = &t->idx[i];
		const uint8_t *p = t->map + e->off;
		struct sl_accel_buf buf = { p, e->size - 4 };
		uint32_t crc;
		int r = sl__accel_crc32c_batch(t->accel, &buf, 1, &crc);
		if (r < 0)
			return r;
		if (crc != get_u32(p + e->size - 4))
			return block_bad(t, i, "data block checksum mismatch");
		__atomic_fetch_or(&t->verified[w], bit, __ATOMIC_RELAXED);
	}
	const char *why = parse_block(t, i, b);
	return why ? block_bad(t, i, why) : 0;
}

/* The first block whose last key is >= key; nblocks when there is none. */
static uint64_t index_search(const struct sl_sst *t, const uint8_t *key, size_t klen)
{
	uint64_t lo = 0, hi = t->nblocks, p = key_prefix(key, klen);
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct idx_ent *e = &t->idx[mid];
		int below = e->prefix != p ? e->prefix < p
					   : sl__block_key_cmp(e->key, e->klen, key, klen) < 0;
		if (below)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The last restart point of block i whose key is <= key (the first one if none is), from
 * which a forward scan finds key if the block holds it. */
static int restart_search(struct sl_sst *t, uint64_t i, const struct sl_block *b,
			  const uint8_t *key, size_t klen, uint32_t *idx)
{
	int r = sl__block_seek_restart(b, key, klen, idx);
	return r < 0 ? block_bad(t, i, sl__block_strerror(r)) : 0;
}

/* ---- Reader: lookups ---------------------------------------------------------------------- */

int sl__sst_get(struct sl_sst *t, const void *key, size_t klen, const void **val, size_t *vlen,
		uint32_t *flags)
{
	const uint8_t *k = key;
	if (klen == 0 || klen > SL_SST_MAX_KEY)
		return -EINVAL;
	if (!sl__bloom_may_contain(t->bloom, t->bloom_bytes, sl__bloom_hash(k, klen), t->probes))
		return SL_ENOTFOUND;
	uint64_t i = index_search(t, k, klen);
	if (i == t->nblocks)
		return SL_ENOTFOUND;
	/* The block is cold in a large table: ask for its trailer (read first) and its start
	 * together, then for each restart point's line, so those misses overlap rather than
	 * queue behind each other. */
	const uint8_t *bp = t->map + t->idx[i].off;
	__builtin_prefetch(bp + t->idx[i].size - 1);
	__builtin_prefetch(bp);
	struct sl_block b;
	uint32_t ri;
	int r = block_load(t, i, &b);
	if (r < 0)
		return r;
	for (uint32_t j = 1; j < b.nrestarts && j <= 8; j++)
		if (sl__block_restart(&b, j) < b.data_end)
			__builtin_prefetch(bp + sl__block_restart(&b, j));
	if ((r = restart_search(t, i, &b, k, klen, &ri)) < 0)
		return r;
	/* And the lines of the run the scan below walks, to the next restart point (a hint from
	 * the file: clamped to the entries, as every address formed from the file is). */
	uint32_t pos = sl__block_restart(&b, ri);
	uint32_t run_end = ri + 1 < b.nrestarts ? sl__block_restart(&b, ri + 1) : b.data_end;
	if (run_end > b.data_end)
		run_end = b.data_end;
	for (uint32_t o = pos + 64; o < run_end; o += 64)
		__builtin_prefetch(bp + o);
	struct sl_block_iter bi;
	bi.klen = 0;
	sl__block_iter_start(&bi, &b, ri, 0);
	while ((r = sl__block_iter_next(&bi)) > 0) {
		int c = sl__block_key_cmp(bi.key, bi.klen, k, klen);
		if (c > 0)
			break;
		if (c == 0) {
			if (val)
				*val = bi.val;
			if (vlen)
				*vlen = bi.vlen;
			if (flags)
				*flags = bi.flags;
			return 0;
		}
	}
	if (r < 0)
		return block_bad(t, i, read_why(r));
	return SL_ENOTFOUND;
}

/* ---- Reader: iterators -------------------------------------------------------------------- */

struct sl_sst_iter {
	struct sl_sst *t;
	uint64_t blk; /* the block of the next entry; nblocks at the end */
	/* The walk over that block, when loaded; it holds the current entry (key rebuilt in it,
	 * value pointing into the mapping). */
	struct sl_block_iter bi;
	int loaded;
	int err;  /* sticky until the next seek */
	int have; /* the current entry was decoded (by a seek) and not returned yet */
};

int sl__sst_iter_new(struct sl_sst *t, struct sl_sst_iter **out)
{
	struct sl_sst_iter *it = sl__os_calloc(t->os, sizeof(*it));
	*out = it;
	if (!it)
		return -ENOMEM;
	it->t = t;
	return 0;
}

void sl__sst_iter_free(struct sl_sst_iter *it)
{
	if (it)
		sl__os_free(it->t->os, it);
}

/* Decode the next entry into the iterator, moving on to later blocks as each one ends. */
static int iter_step(struct sl_sst_iter *it)
{
	struct sl_sst *t = it->t;
	while (it->blk < t->nblocks) {
		if (!it->loaded) {
			struct sl_block b;
			int r = block_load(t, it->blk, &b);
			if (r < 0)
				return r;
			sl__block_iter_start(&it->bi, &b, 0, 0);
			it->loaded = 1;
		}
		int r = sl__block_iter_next(&it->bi);
		if (r > 0)
			return 0;
		if (r < 0)
			return block_bad(t, it->blk, read_why(r));
		it->blk++;
		it->loaded = 0;
	}
	return SL_EEND;
}

int sl__sst_iter_seek(struct sl_sst_iter *it, const void *key, size_t klen)
{
	struct sl_sst *t = it->t;
	const uint8_t *k = key;
	it->err = 0;
	it->have = 0;
	it->loaded = 0;
	it->blk = klen ? index_search(t, k, klen) : 0;
	if (it->blk == t->nblocks)
		return 0;
	struct sl_block b;
	uint32_t ri = 0;
	int r = block_load(t, it->blk, &b);
	if (!r && klen)
		r = restart_search(t, it->blk, &b, k, klen, &ri);
	if (r < 0)
		return it->err = r;
	sl__block_iter_start(&it->bi, &b, ri, 0);
	it->loaded = 1;
	for (;;) {
		r = iter_step(it);
		if (r == SL_EEND)
			return 0;
		if (r < 0)
			return it->err = r;
		if (!klen || sl__block_key_cmp(it->bi.key, it->bi.klen, k, klen) >= 0) {
			it->have = 1;
			return 0;
		}
	}
}

int sl__sst_iter_next(struct sl_sst_iter *it, const uint8_t **key, size_t *klen,
		      const uint8_t **val, size_t *vlen, uint32_t *flags)
{
	if (it->err)
		return it->err;
	if (!it->have) {
		int r = iter_step(it);
		if (r < 0) {
			if (r != SL_EEND)
				it->err = r;
			return r;
		}
	}
	it->have = 0;
	if (key)
		*key = it->bi.key;
	if (klen)
		*klen = it->bi.klen;
	if (val)
		*val = it->bi.val;
	if (vlen)
		*vlen = it->bi.vlen;
	if (flags)
		*flags = it->bi.flags;
	return 0;
}

/* ---- Verify ------------------------------------------------------------------------------- */

struct vstate {
	/* The walk over the current block; its key, kept from block to block, is the last key
	 * seen, so key order is checked across blocks too. */
	struct sl_block_iter it;
	uint64_t count;
	uint64_t hashes[VERIFY_HASHES];
	size_t nhashes;
	uint64_t bad_off;
	const char *what;
};

static int vfail(struct vstate *v, uint64_t off, const char *what)
{
	v->bad_off = off;
	v->what = what;
	return SL_ECORRUPT;
}

static int probe_hashes(const struct sl_sst *t, struct vstate *v)
{
	uint8_t hit[VERIFY_HASHES];
	sl__bloom_probe_batch(t->bloom, t->bloom_bytes, v->hashes, v->nhashes, t->probes, hit);
	for (size_t j = 0; j < v->nhashes; j++)
		if (!hit[j])
			return vfail(v, t->bloom_off, "bloom filter misses a key of the table");
	v->nhashes = 0;
	return 0;
}

/* Everything in block i past its CRC: restart points on entry boundaries with whole keys,
 * entries well formed, keys increasing (from the previous block on), the last key equal to
 * the index's, every key in the bloom. */
static int verify_block(const struct sl_sst *t, uint64_t i, struct vstate *v)
{
	const struct idx_ent *ie = &t->idx[i];
	struct sl_block b;
	const char *why = parse_block(t, i, &b);
	if (why)
		return vfail(v, ie->off, why);
	struct sl_block_iter *it = &v->it;
	sl__block_iter_start(it, &b, 0, SL_BLOCK_ITER_ORDER);
	int r;
	while ((r = sl__block_iter_next(it)) > 0) {
		if (!v->count && sl__block_key_cmp(it->key, it->klen, t->smallest, t->smallest_len))
			return vfail(v, t->index_off,
				     "index smallest key differs from the first key");
		v->count++;
		v->hashes[v->nhashes++] = sl__bloom_hash(it->key, it->klen);
		if (v->nhashes == VERIFY_HASHES && probe_hashes(t, v) < 0)
			return SL_ECORRUPT;
	}
	if (r < 0)
		return vfail(v, ie->off, sl__block_strerror(r));
	if (sl__block_key_cmp(it->key, it->klen, ie->key, ie->klen))
		return vfail(v, t->index_off, "index key differs from its block's last key");
	return 0;
}

int sl__sst_verify(struct sl_sst *t, uint64_t *bad_off, const char **what)
{
	struct vstate *v = sl__os_calloc(t->os, sizeof(*v));
	if (!v)
		return -ENOMEM;
	int r = 0;
	/* Fresh CRCs of every block, many per accelerator call, whatever the bitmap says: verify
	 * answers for the bytes on disk now. */
	for (uint64_t i = 0; i < t->nblocks && !r; i += VERIFY_BATCH) {
		size_t n = t->nblocks - i < VERIFY_BATCH ? (size_t)(t->nblocks - i) : VERIFY_BATCH;
		struct sl_accel_buf bufs[VERIFY_BATCH];
		uint32_t crcs[VERIFY_BATCH];
		for (size_t j = 0; j < n; j++) {
			bufs[j].data = t->map + t->idx[i + j].off;
			bufs[j].len = t->idx[i + j].size - 4;
		}
		if ((r = sl__accel_crc32c_batch(t->accel, bufs, n, crcs)) < 0)
			break;
		for (size_t j = 0; j < n && !r; j++) {
			const struct idx_ent *e = &t->idx[i + j];
			if (crcs[j] != get_u32(t->map + e->off + e->size - 4))
				r = vfail(v, e->off, "data block checksum mismatch");
			else
				r = verify_block(t, i + j, v);
		}
	}
	if (!r && v->nhashes)
		r = probe_hashes(t, v);
	if (!r && v->count != t->entries)
		r = vfail(v, t->footer_off, "footer entry count differs from the blocks");
	if (bad_off)
		*bad_off = r == SL_ECORRUPT ? v->bad_off : 0;
	if (what)
		*what = r == SL_ECORRUPT ? v->what : NULL;
	sl__os_free(t->os, v);
	return r;
}
