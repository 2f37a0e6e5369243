/* sst.h - sorted string tables: immutable files of (key, value, flags) entries in key order
 * (memcmp). Written once by a writer, then read through mmap by any number of threads. sst
 * knows nothing of what keys mean (db decides), of levels or of the manifest.
 *
 * File layout (integers little-endian): data blocks of about block_bytes each, then the bloom
 * block, then the index block, then a 64-byte footer. A data block holds entries with keys
 * prefix-compressed against the previous key, a restart point (full key) every
 * restart_interval entries, the restart offsets, their count, and a CRC32C of the block. The
 * index holds, per data block, its last key, offset and size, and its own CRC32C. The bloom
 * block holds one bloom filter (bloom.h) over every key of the table and its CRC32C. The
 * footer holds the magic "SLUICEST", the format version, the offsets and sizes of the index
 * and bloom blocks, the entry count, the bloom's probe count, two caller-defined u64 values
 * (db keeps the table's sequence range there) and a CRC32C of the footer. The index starts with
 * the table's smallest key, so opening never reads a data block. sst.c documents every field;
 * the data blocks are block.h's, encoded and decoded by its codec only, which the merge job
 * (accel.h) shares: a compaction's blocks come from the job and sl__sst_write_merged adds the
 * rest of the table.
 */
#ifndef SL_SST_H
#define SL_SST_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"
#include "os.h"

#define SL_SST_MAX_KEY 64
#define SL_SST_MAX_VALUE (1u << 20)

enum sl_sst_entry_flags {
	SL_SST_TOMBSTONE = 1 << 0, /* the key is deleted (value may be empty) */
};

struct sl_sst_options {
	uint32_t block_bytes;        /* target data block size (default 4096) */
	uint32_t restart_interval;   /* entries between full keys (default 16) */
	uint32_t bloom_bits_per_key; /* default SL_BLOOM_DEFAULT_BITS */
	int no_sync;                 /* skip the final fdatasync (tests, benchmarks) */
	uint64_t user[2];            /* stored in the footer, returned in meta */
};

struct sl_sst_meta {
	uint64_t entries, data_blocks, file_bytes;
	uint8_t smallest[SL_SST_MAX_KEY], largest[SL_SST_MAX_KEY];
	uint32_t smallest_len, largest_len;
	uint64_t user[2];
	uint32_t bloom_bytes, bloom_probes;
};

struct sl_sst_writer;

/* Create path (O_EXCL) for writing. 0, -errno, SL_ECONFIG. */
int sl__sst_writer_open(const struct sl_os *os, struct sl_accel *accel, const char *path,
			const struct sl_sst_options *opt, struct sl_sst_writer **out);
/* Append one entry; keys strictly increasing (SL_EORDER otherwise), 1..SL_SST_MAX_KEY bytes,
 * values up to SL_SST_MAX_VALUE, flags within a byte (-EINVAL otherwise). Those refusals and
 * -ENOMEM refuse only this entry; an I/O error is sticky (every later call returns it).
 * Buffers a block, writes full blocks. */
int sl__sst_writer_add(struct sl_sst_writer *w, const void *key, size_t klen, const void *val,
		       size_t vlen, uint32_t flags);
/* Write bloom, index and footer, fdatasync, close, fsync the directory (no syncs with no_sync);
 * fill *meta. The writer is freed whether or not it succeeds; on failure the file is removed. */
int sl__sst_writer_finish(struct sl_sst_writer *w, struct sl_sst_meta *meta);
/* Give up: close, remove the file, free. Accepts NULL. */
void sl__sst_writer_abort(struct sl_sst_writer *w);

/* Write a table whose data blocks a merge job built (job->out, job->blocks[0..n_blocks),
 * job->bloom with job->bloom_probes): the blocks as they are, then the bloom, index and footer
 * exactly as the writer makes them, synced as sl__sst_writer_finish syncs (unless opt->no_sync).
 * The table must hold at least one entry (-EINVAL otherwise, and for outputs that are not
 * consistent: blocks not back to back in out, a block's stored CRC not its crc, last keys not
 * increasing, a bloom size not a multiple of SL_BLOOM_BLOCK). opt->bloom_bits_per_key is ignored
 * (the job's filter is used as it is; the footer records job->bloom_probes and its size); the
 * other options are checked as by sl__sst_writer_open (SL_ECONFIG), and path created O_EXCL.
 * meta as finish fills it. 0 or -errno; on failure no file is left. The job's buffers are only
 * read, and only during the call. */
int sl__sst_write_merged(const struct sl_os *os, struct sl_accel *accel, const char *path,
			 const struct sl_sst_options *opt, const struct sl_accel_merge_job *job,
			 struct sl_sst_meta *meta);

struct sl_sst;

/* Open and mmap a table; check the footer, the index and the bloom block (CRCs, bounds,
 * ordering of the index). SL_ECORRUPT with a stderr line naming the file and the part,
 * SL_EVERSION for a sound footer of an unknown version, or -errno. Thread-safe once open. */
int sl__sst_open(const struct sl_os *os, struct sl_accel *accel, const char *path,
		 struct sl_sst **out);
void sl__sst_close(struct sl_sst *t);
/* Open and close path to learn why it does not open: its error, and for SL_ECORRUPT the offset
 * of the damaged part (footer, index or bloom block; 0 for a file too short for a footer) and a
 * static description. 0 when it opens. */
int sl__sst_open_report(const struct sl_os *os, struct sl_accel *accel, const char *path,
			uint64_t *bad_off, const char **what);
void sl__sst_get_meta(const struct sl_sst *t, struct sl_sst_meta *out);
const char *sl__sst_path(const struct sl_sst *t);
/* A value the owner keeps with an open table (0 after open); set it before sharing the table. */
void sl__sst_set_tag(struct sl_sst *t, uint64_t tag);
uint64_t sl__sst_tag(const struct sl_sst *t);

/* Data blocks of an open table, for a merge job: how many, and block i's bytes (trailer included,
 * pointing into the mapping, valid until close; CRC not checked here: the job checks it) and
 * last key (from the index, pointing into the mapping; last and last_len may be NULL). i < count.
 * Thread-safe. */
uint64_t sl__sst_block_count(const struct sl_sst *t);
void sl__sst_block(const struct sl_sst *t, uint64_t i, struct sl_accel_buf *data,
		   const uint8_t **last, size_t *last_len);

/* Bloom check only: 0 when the key is certainly absent. */
int sl__sst_may_contain(const struct sl_sst *t, uint64_t key_hash);
/* The same for n hashes at once (out[i] = may_contain(hashes[i])), prefetching ahead. */
void sl__sst_may_contain_batch(const struct sl_sst *t, const uint64_t *hashes, size_t n,
			       uint8_t *out);

/* Point lookup: bloom, index binary search, the block's CRC (checked once per block for the
 * table's life), restart binary search. 0 with *val (pointing into the mapping, valid until
 * close), *vlen and *flags filled; SL_ENOTFOUND; SL_ECORRUPT (stderr names file and block
 * offset, once per block; other blocks stay readable); -EINVAL for a key of 0 or more than
 * SL_SST_MAX_KEY bytes. Thread-safe. */
int sl__sst_get(struct sl_sst *t, const void *key, size_t klen, const void **val, size_t *vlen,
		uint32_t *flags);

struct sl_sst_iter;

/* Iterators: one thread at a time each; any number per table. A new iterator stands at the
 * first entry; SL_ECORRUPT sticks until the next seek. */
int sl__sst_iter_new(struct sl_sst *t, struct sl_sst_iter **out);
void sl__sst_iter_free(struct sl_sst_iter *it);
/* Position at the first entry >= key (klen 0: the first entry). 0 or SL_ECORRUPT. */
int sl__sst_iter_seek(struct sl_sst_iter *it, const void *key, size_t klen);
/* The current entry, then advance: 0, SL_EEND, or SL_ECORRUPT. key/val point into the
 * iterator (key) and the mapping (val); valid until the next call. */
int sl__sst_iter_next(struct sl_sst_iter *it, const uint8_t **key, size_t *klen,
		      const uint8_t **val, size_t *vlen, uint32_t *flags);

/* Check everything: every block's CRC, key order within and across blocks, each index entry
 * against its block, every key present in the bloom, footer counts. 0, or SL_ECORRUPT with
 * *bad_off set to the offset of the first bad block (the footer's offset for footer damage)
 * and what set to a static description. */
int sl__sst_verify(struct sl_sst *t, uint64_t *bad_off, const char **what);

#endif /* SL_SST_H */
