/* accel.h - the accelerator seam: CRC32C and the fused compaction merge (in later releases also
 * bloom build/probe) behind one small versioned vtable. Callers see struct sl_accel and these
 * inline calls only, never a backend. accel depends only on the leaves block.h (the table
 * data-block codec) and bloom.h (the filter's hash and bit layout), which every backend
 * reproduces bit for bit.
 *
 * Every backend must give bit-identical results to the cpu backend (accel_cpu.c, ISA-L).
 */
#ifndef SL_ACCEL_H
#define SL_ACCEL_H

#include <stddef.h>
#include <stdint.h>

#define SL_ACCEL_OPS_VERSION 2

struct sl_accel_buf {
	const void *data;
	size_t len;
};

/* ---- The fused merge job ------------------------------------------------------------------
 *
 * k sorted runs in, one merged run out, as a table's data blocks ready to write. A run is a
 * sequence of encoded data blocks (block.h: entries, restarts, count, CRC32C) in key order,
 * typically a slice of one table's mapping. The job checks each input block's CRC and layout
 * before using it, decodes the entries, merges them in key (memcmp) order, and where several runs
 * hold the same key keeps the entry of the lowest-numbered run (runs[0] is the newest). An entry
 * whose flags have SL_ACCEL_TOMBSTONE set is dropped from the output when the job has
 * SL_ACCEL_MERGE_DROP_TOMBSTONES (the output is the bottom of the tree: nothing older remains
 * under it); otherwise it is kept like any other. Only keys k with lo < k <= hi are emitted
 * (lo_len 0: no lower bound; hi_len 0: no upper bound), so a host can cut a large merge into
 * jobs of bounded size by handing each one the blocks that overlap its key range.
 *
 * Out: the surviving entries encoded as data blocks exactly as block.h's encoder cuts them
 * (block_bytes, restart_interval), back to back in out; per output block its offset in out,
 * size (trailer included), CRC32C (the same value stored in its trailer) and last key; and the
 * bloom filter (bloom.h) over every output key, sized sl__bloom_bytes(entries, bits_per_key)
 * with sl__bloom_probes(bits_per_key) probes. That is everything a table needs besides its
 * index and footer, so the data crosses to a device once.
 *
 * Zero parameters take sst's defaults: block_bytes 4096, restart_interval 16, bits_per_key 10.
 * Input blocks need no alignment. A run's blocks are read in order and only as far as needed:
 * each is checked (CRC, then layout) when the merge reaches it, its entries as they are decoded
 * (bounds, restart points, keys strictly increasing within the run, across its blocks too);
 * blocks after the first key above hi are never read.
 *
 * Returns 0; -ENOSPC when out, blocks or bloom is too small (need_* then say exactly how much
 * is needed, all three: grow and submit again; the counters are filled, out_len, n_blocks and
 * bloom_len are 0); SL_ECORRUPT for a damaged input block (bad_run, bad_block name it; nothing
 * useful is in the outputs) or input keys out of order within a run (named the same way: the
 * block where the order breaks); -EINVAL for bad parameters (block_bytes < 64, bits_per_key >
 * 64, n_runs > SL_ACCEL_MAX_RUNS, unknown flags, a NULL pointer with a nonzero length or
 * capacity); -ENOMEM when a backend's scratch cannot be had; -EFBIG when one output block would
 * pass 4 GiB (block offsets are u32: only values of nearly that size can). On success need_* are
 * what was used. bloom_probes is set on every return past the parameter checks. */
#define SL_ACCEL_MAX_RUNS 256
#define SL_ACCEL_MAX_KEY 64
#define SL_ACCEL_TOMBSTONE 1u /* entry flag: droppable at the bottom (sst.h SL_SST_TOMBSTONE) */

enum sl_accel_merge_flags {
	SL_ACCEL_MERGE_DROP_TOMBSTONES = 1 << 0,
};

struct sl_accel_run {
	const struct sl_accel_buf *blocks; /* encoded data blocks, trailers included, in key order */
	size_t n_blocks;
};

struct sl_accel_block {
	uint64_t off;   /* in out */
	uint32_t len;   /* trailer included */
	uint32_t crc;   /* CRC32C of the first len - 4 bytes, as stored in the last 4 */
	uint32_t last_len;
	uint8_t last[SL_ACCEL_MAX_KEY];
};

struct sl_accel_merge_job {
	/* In */
	const struct sl_accel_run *runs;
	size_t n_runs;
	const uint8_t *lo, *hi;
	size_t lo_len, hi_len;
	uint32_t flags;              /* enum sl_accel_merge_flags */
	uint32_t block_bytes;        /* target data block size (sst's default 4096) */
	uint32_t restart_interval;   /* entries between full keys (16) */
	uint32_t bits_per_key;       /* bloom bits per key (10) */
	/* Out buffers, owned by the caller */
	uint8_t *out;
	size_t out_cap;
	struct sl_accel_block *blocks;
	size_t blocks_cap;
	uint8_t *bloom;
	size_t bloom_cap;
	/* Out values */
	size_t out_len, n_blocks, bloom_len;
	uint32_t bloom_probes;
	uint64_t entries_in, entries_out; /* entries read (in range) and written */
	uint64_t dropped_older;           /* shadowed by a newer run's entry of the same key */
	uint64_t dropped_tombstones;
	uint8_t smallest[SL_ACCEL_MAX_KEY];
	uint32_t smallest_len;            /* 0 when nothing was written */
	size_t need_out, need_blocks, need_bloom; /* with -ENOSPC */
	size_t bad_run, bad_block;                /* with SL_ECORRUPT */
};

struct sl_accel_ops {
	int version;           /* SL_ACCEL_OPS_VERSION */
	const char *name;      /* "cpu", ... */
	/* Probe and open the device. 0, -ENODEV when absent, or -errno. */
	int (*open)(void **dev);
	void (*close)(void *dev);
	/* out[i] = CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of bufs[i], for
	 * i < n. Buffers may have any length (0 included) and alignment. Returns 0 or -errno. */
	int (*crc32c_batch)(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out);
	/* The fused merge job (above), synchronously. Thread-safe for distinct jobs. */
	int (*merge)(void *dev, struct sl_accel_merge_job *job);
};

struct sl_accel {
	const struct sl_accel_ops *ops;
	void *dev;
};

/* The backends compiled in. */
extern const struct sl_accel_ops sl__accel_cpu_ops;

/* Open the backend named by mode: "cpu", or "auto"/NULL (the fastest present; in this release
 * always cpu). SL_ECONFIG for an unknown name, -ENODEV when the named backend is absent. */
int sl__accel_open(const char *mode, struct sl_accel **out);
void sl__accel_close(struct sl_accel *a);

static inline int sl__accel_crc32c_batch(const struct sl_accel *a, const struct sl_accel_buf *bufs,
					 size_t n, uint32_t *out)
{
	return a->ops->crc32c_batch(a->dev, bufs, n, out);
}

static inline int sl__accel_merge(const struct sl_accel *a, struct sl_accel_merge_job *job)
{
	return a->ops->merge(a->dev, job);
}

/* One buffer: the batch call with n = 1. */
static inline uint32_t sl__accel_crc32c(const struct sl_accel *a, const void *data, size_t len)
{
	struct sl_accel_buf b = { data, len };
	uint32_t crc = 0;
	a->ops->crc32c_batch(a->dev, &b, 1, &crc);
	return crc;
}

#endif /* SL_ACCEL_H */
