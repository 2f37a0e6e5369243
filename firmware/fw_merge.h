/* fw_merge.h - the fused compaction merge (accel.h's merge job) as a freestanding engine: k
 * sorted runs of encoded data blocks in, the merged run out as data blocks with CRCs, an output
 * block table and the bloom filter over the output keys. It allocates nothing: all its state
 * lives in scratch the caller provides (fw_merge_scratch_bytes in fw_abi.h), input blocks come
 * through a callback and CRCs through another, so the same engine could serve a host backend
 * (ISA-L CRC, malloc'd scratch) and a device (its own CRC, scratch in device memory).
 * Freestanding: <stdint.h>, <stddef.h>, <string.h>, block.h and bloom.h only.
 */
#ifndef SL_FW_MERGE_H
#define SL_FW_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "fw_abi.h"

struct fw_merge_io {
	void *ctx;
	/* How many blocks run r has, and block b of it (b < that): its bytes and length. */
	uint64_t (*run_blocks)(void *ctx, uint32_t run);
	void (*block)(void *ctx, uint32_t run, uint64_t b, const uint8_t **p, uint64_t *len);
	/* CRC32C of n bytes (input checks and output trailers). */
	uint32_t (*crc32c)(void *ctx, const uint8_t *p, uint64_t n);
};

struct fw_merge_params {
	uint32_t n_runs;	   /* <= FW_MERGE_MAX_RUNS */
	uint32_t flags;		   /* enum fw_merge_flags */
	uint32_t block_bytes;	   /* 0: 4096; else >= 64 */
	uint32_t restart_interval; /* 0: 16 */
	uint32_t bits_per_key;	   /* 0: 10; <= 64 */
	const uint8_t *lo, *hi;	   /* keys k with lo < k <= hi; a length of 0: unbounded */
	uint64_t lo_len, hi_len;
	uint64_t input_bytes; /* at least the bytes of all input blocks (bounds the restarts) */
	uint8_t *out;	      /* out_cap bytes (NULL with 0) */
	uint64_t out_cap;
	uint8_t *blocks; /* blocks_cap struct fw_out_block, any alignment (NULL with 0) */
	uint64_t blocks_cap;
	uint8_t *bloom; /* bloom_cap bytes (NULL with 0) */
	uint64_t bloom_cap;
	void *scratch; /* scratch_len bytes, any alignment */
	uint64_t scratch_len;
};

/* Run the merge. Returns FW_OK; FW_EARG (res untouched; *scratch_need unset) for parameters
 * accel.h calls invalid; FW_ESCRATCH with *scratch_need (res untouched); or, with res filled
 * exactly as accel.h fills the job's out values, FW_ENOSPC, FW_ECORRUPT, FW_EFBIG. Output
 * buffers hold nothing useful unless FW_OK. The regions named in p must not overlap. */
uint32_t fw_merge(const struct fw_merge_params *p, const struct fw_merge_io *io,
		  struct fw_merge_result *res, uint64_t *scratch_need);

#endif /* SL_FW_MERGE_H */
