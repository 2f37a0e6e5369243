/* fw_abi.h - the wire formats between a driver and the device's command processor: the
 * submission descriptor, the completion, and the tables and results that commands keep in
 * device memory. Everything here is fixed-size and little-endian, with every layout pinned by
 * _Static_assert; it is shared by the firmware (firmware/), the device model (sim/) and the
 * driver (host/src/accel_sim.c), and depends on <stdint.h> and <stddef.h> only.
 *
 * A command is one struct fw_desc on the submission ring. It names its buffers as references
 * (handle, offset, length) into device memory; the firmware checks every reference against the
 * buffer table and device memory bounds, and every table entry inside a buffer against the
 * buffer it points into, before it reads or writes a byte. A command ends as one struct
 * fw_completion on the completion ring carrying the descriptor's tag, a status (FW_OK or an
 * FW_E* code, with detail naming the reference or parameter at fault) and result words.
 *
 * Commands, with their references (in: read; out: written; rw: both) and arguments:
 *
 * FW_OP_CRC32C     out[i] = CRC32C(data[seg[i].off, seg[i].off + seg[i].len)) for i < arg[0].
 *   ref 0 in   seg table: arg[0] entries of struct fw_seg
 *   ref 1 in   data: the bytes the segments point into
 *   ref 2 out  CRCs: arg[0] u32, at least 4 * arg[0] bytes
 *
 * FW_OP_BLOOM_BUILD  set the bits of arg[0] hashes, arg[1] probes each, in a filter (bloom.h).
 *   ref 0 in   hashes: arg[0] u64
 *   ref 1 rw   filter: its length is the filter size (a multiple of 64; 0: nothing to set)
 *
 * FW_OP_BLOOM_PROBE  out[i] = may_contain(filter[which[i]], hash[i]) for i < arg[0], 1 or 0.
 *   ref 0 in   filter table: arg[1] entries of struct fw_filter
 *   ref 1 in   filter bits: what the filter table points into
 *   ref 2 in   which: arg[0] u32 filter numbers, or the null reference: every key filter 0
 *   ref 3 in   hashes: arg[0] u64
 *   ref 4 out  answers: arg[0] bytes
 *
 * FW_OP_MERGE      the fused compaction merge of accel.h (struct sl_accel_merge_job), exactly.
 *   flags      FW_MERGE_DROP_TOMBSTONES
 *   arg[0..2]  block_bytes, restart_interval, bits_per_key (0: 4096, 16, 10 as accel.h says)
 *   ref 0 in   job: struct fw_merge_job, then n_runs struct fw_merge_run, then n_blocks
 *              struct fw_seg (input blocks, offsets into ref 1), then lo_len bytes of lo, then
 *              hi_len bytes of hi
 *   ref 1 in   input blocks: the encoded data blocks (block.h), trailers included
 *   ref 2 rw   scratch: at least fw_merge_scratch_bytes(); what is left after that holds the
 *              output keys' hashes (else the filter is built from the output blocks afterwards)
 *   ref 3 out  out: the merged data blocks; its length is the job's out_cap
 *   ref 4 out  output block table: struct fw_out_block entries; blocks_cap = len / 88
 *   ref 5 out  bloom: the filter; its length is bloom_cap
 *   ref 6 out  result: struct fw_merge_result, written whenever the status is FW_OK,
 *              FW_ENOSPC, FW_ECORRUPT or FW_EFBIG
 *
 * A completion's result words: FW_OP_CRC32C and FW_OP_BLOOM_*: result[0] = n (arg[0]); FW_OP_MERGE
 * with FW_OK: out_len, n_blocks, entries_out; errors: as enum fw_status says. work_bytes and
 * work_items say what the kernel did, for the device's cost model (sim/sim_model.c).
 *
 * Unused references and reserved fields are zero. The null reference (handle 0, offset 0,
 * length 0) stands for "no buffer" wherever a length of 0 is allowed. No written reference may
 * overlap another reference of the same command.
 */
#ifndef SL_FW_ABI_H
#define SL_FW_ABI_H

#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the device formats are little-endian and read in place");

#define FW_ABI_VERSION 1
#define FW_DESC_REFS   8

enum fw_opcode {
	FW_OP_CRC32C = 1,
	FW_OP_BLOOM_BUILD = 2,
	FW_OP_BLOOM_PROBE = 3,
	FW_OP_MERGE = 4,
};

/* A completion's status: 0, or why the command was refused or failed. */
enum fw_status {
	FW_OK = 0,
	FW_EOPCODE = 1,	  /* unknown opcode */
	FW_EHANDLE = 2,	  /* a reference names no live buffer (detail: the reference) */
	FW_ERANGE = 3,	  /* offset + length past the buffer, or overflowing 64 bits (detail: the
			     reference; a table entry pointing outside: the reference pointed into,
			     result[0]: the entry) */
	FW_EOVERLAP = 4,  /* a written reference overlaps another (detail: the written one) */
	FW_ESHORT = 5,	  /* a reference shorter than the arguments need (detail: the reference;
			     result[0]: the bytes needed) */
	FW_EARG = 6,	  /* a bad argument, flag or reserved field (detail: enum fw_param) */
	FW_ENOSPC = 7,	  /* merge: out, block table or bloom too small (needs in the result) */
	FW_ECORRUPT = 8,  /* merge: a damaged input block or keys out of order (bad_run,
			     bad_block in the result) */
	FW_EFBIG = 9,	  /* merge: an output block would pass 4 GiB */
	FW_ESCRATCH = 10, /* merge: scratch too small (result[0]: the bytes needed) */
};
#define FW_NSTATUS 11

/* detail of FW_EARG: which argument. */
enum fw_param {
	FW_PARAM_RESERVED = 1, /* a reserved field or an unused reference is not zero */
	FW_PARAM_FLAGS,	       /* unknown flags */
	FW_PARAM_COUNT,	       /* arg[0] (n) too large for any buffer */
	FW_PARAM_K,	       /* bloom probes 0 or above 64 */
	FW_PARAM_SIZE,	       /* bloom filter size not a multiple of 64 */
	FW_PARAM_WHICH,	       /* a which[i] >= the number of filters */
	FW_PARAM_NFILTERS,     /* no filters for a nonzero number of keys */
	FW_PARAM_BLOCK_BYTES,  /* merge: block_bytes below 64 or above 2^32 - 1 */
	FW_PARAM_BITS,	       /* merge: bits_per_key above 64 */
	FW_PARAM_RUNS,	       /* merge: more than FW_MERGE_MAX_RUNS runs */
	FW_PARAM_RUN_BLOCKS,   /* merge: a run's blocks outside the block table */
	FW_PARAM_RESTART,      /* merge: restart_interval above 2^32 - 1 */
};

/* A reference to device memory: len bytes at off in the buffer handle names. */
struct fw_ref {
	uint32_t handle; /* from the device's buffer table; 0: the null reference */
	uint32_t rsvd;	 /* 0 */
	uint64_t off;	 /* bytes from the buffer's start */
	uint64_t len;	 /* bytes */
};
_Static_assert(sizeof(struct fw_ref) == 24, "fw_ref layout");

/* One submission ring entry: 256 bytes. */
struct fw_desc {
	uint32_t opcode;  /* enum fw_opcode */
	uint32_t flags;	  /* per opcode (FW_MERGE_*); 0 elsewhere */
	uint64_t tag;	  /* the driver's; echoed in the completion */
	uint64_t arg[4];  /* per opcode, above; unused ones 0 */
	uint64_t rsvd[2]; /* 0 */
	struct fw_ref ref[FW_DESC_REFS];
};
_Static_assert(sizeof(struct fw_desc) == 256, "fw_desc layout");
_Static_assert(offsetof(struct fw_desc, ref) == 64, "fw_desc layout");

/* One completion ring entry: 64 bytes. */
struct fw_completion {
	uint64_t tag;	     /* the descriptor's */
	uint32_t status;     /* enum fw_status */
	uint32_t detail;     /* with an error: the reference index or enum fw_param */
	uint64_t result[3];  /* per status and opcode (above); 0 when unused */
	uint64_t work_bytes; /* bytes the kernel streamed (CRC: data; merge: input blocks read) */
	uint64_t work_items; /* items it handled (CRC: segments; bloom: hashes; merge: entries) */
	uint64_t device_ns;  /* written by the device model: launch + kernel time, modelled */
};
_Static_assert(sizeof(struct fw_completion) == 64, "fw_completion layout");

/* A segment of a data reference: CRC32C segments, merge input blocks. */
struct fw_seg {
	uint64_t off; /* from the start of the data reference */
	uint64_t len;
};
_Static_assert(sizeof(struct fw_seg) == 16, "fw_seg layout");

/* A filter of FW_OP_BLOOM_PROBE. Its bits are size bytes at off in the filter-bits reference;
 * only whole 64-byte blocks count (below one: it rules nothing out), as bloom.h says. */
struct fw_filter {
	uint64_t off;
	uint64_t size;
	uint32_t k; /* probes per key */
	uint32_t rsvd;
};
_Static_assert(sizeof(struct fw_filter) == 24, "fw_filter layout");

/* ---- The merge ------------------------------------------------------------------------------ */

#define FW_MERGE_MAX_RUNS  256
#define FW_MERGE_MAX_KEY   64
#define FW_MERGE_TOMBSTONE 1u /* entry flag, accel.h's SL_ACCEL_TOMBSTONE */

enum fw_merge_flags {
	FW_MERGE_DROP_TOMBSTONES = 1 << 0,
};

/* The head of the job reference. */
struct fw_merge_job {
	uint64_t n_runs;   /* <= FW_MERGE_MAX_RUNS; runs[0] is the newest */
	uint64_t n_blocks; /* entries of the input block table */
	uint64_t lo_len;   /* 0: no lower bound */
	uint64_t hi_len;   /* 0: no upper bound */
};
_Static_assert(sizeof(struct fw_merge_job) == 32, "fw_merge_job layout");

/* A run: n_blocks input blocks from block table entry first, in key order. */
struct fw_merge_run {
	uint64_t first;
	uint64_t n_blocks;
};
_Static_assert(sizeof(struct fw_merge_run) == 16, "fw_merge_run layout");

/* An output block (accel.h's struct sl_accel_block). */
struct fw_out_block {
	uint64_t off; /* in out */
	uint32_t len; /* trailer included */
	uint32_t crc; /* CRC32C of the first len - 4 bytes, as stored in the last 4 */
	uint32_t last_len;
	uint8_t last[FW_MERGE_MAX_KEY]; /* bytes past last_len are not written */
	uint32_t rsvd;
};
_Static_assert(sizeof(struct fw_out_block) == 88, "fw_out_block layout");
_Static_assert(offsetof(struct fw_out_block, last) == 20, "fw_out_block layout");

/* What a merge leaves, field for field the out values of accel.h's merge job. */
struct fw_merge_result {
	uint64_t out_len, n_blocks, bloom_len;
	uint64_t entries_in, entries_out, dropped_older, dropped_tombstones;
	uint64_t need_out, need_blocks, need_bloom;
	uint64_t bad_run, bad_block;
	uint32_t bloom_probes;
	uint32_t smallest_len;	   /* 0 unless FW_OK with an entry written */
	uint32_t smallest_written; /* bytes of smallest written (the first output key, on any
				      status: the driver copies them, as the reference leaves
				      them in its job) */
	uint32_t rsvd;
	uint8_t smallest[FW_MERGE_MAX_KEY];
	uint64_t bytes_read; /* input block bytes the merge loaded */
};
_Static_assert(sizeof(struct fw_merge_result) == 184, "fw_merge_result layout");

/* Scratch the merge needs beyond its hashes: per run a cursor, its key prefix and its tree
 * slots (FW_MERGE_SCRATCH_PER_RUN bounds them; fw_merge.c checks), the restart array of the
 * block being built (at most one restart per 5-byte entry, so min(block_bytes, input bytes)
 * / 5 + 2 of them), and alignment slack. Driver and firmware compute it with this function. */
#define FW_MERGE_SCRATCH_PER_RUN 256
#define FW_MERGE_SCRATCH_SLACK	 128

static inline uint64_t fw_merge_restarts_cap(uint64_t block_bytes, uint64_t input_bytes)
{
	uint64_t m = block_bytes < input_bytes ? block_bytes : input_bytes;
	return m / 5 + 2;
}

static inline uint64_t fw_merge_scratch_bytes(uint64_t n_runs, uint64_t block_bytes,
					      uint64_t input_bytes)
{
	return FW_MERGE_SCRATCH_SLACK + (n_runs + 1) * FW_MERGE_SCRATCH_PER_RUN +
	       4 * fw_merge_restarts_cap(block_bytes, input_bytes);
}

#endif /* SL_FW_ABI_H */
