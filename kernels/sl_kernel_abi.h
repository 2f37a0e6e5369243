/* sl_kernel_abi.h - the structs and constants shared by the host (accel_opencl.c), the OpenCL C
 * kernels of this directory, and any firmware or model that speaks to them. Every field has an
 * explicit width and sits at its natural alignment with explicit padding, so the host's C
 * compiler and a device's OpenCL C compiler lay each struct out the same way; the host
 * _Static_asserts every size and the slk_abi kernel reports the device's view of them at open.
 * All integers are little-endian (the host refuses big-endian devices). This header includes
 * nothing in OpenCL C and <stdint.h> on the host.
 */
#ifndef SL_KERNEL_ABI_H
#define SL_KERNEL_ABI_H

#ifdef __OPENCL_C_VERSION__
typedef uchar slk_u8;
typedef uint slk_u32;
typedef int slk_i32;
typedef ulong slk_u64;
/* Every kernel is written in two forms at once: its items are a grid-stride loop
 * (SLK_FOR_ITEMS), so an NDRange of n work-items does one item each (GPUs, CPUs) and a single
 * work-item started once does them all (an FPGA compute unit, which XRT starts once per run;
 * the OpenCL backend's one-work-item mode launches them the same way). The FPGA build
 * (firmware/fpga/build.sh) defines SLK_FPGA, which tells v++ the work-group is one item. */
#ifdef SLK_FPGA
#define SLK_KERNEL __kernel __attribute__((reqd_work_group_size(1, 1, 1)))
#else
#define SLK_KERNEL __kernel
#endif
#define SLK_FOR_ITEMS(i, n) for (ulong i = get_global_id(0); i < (n); i += get_global_size(0))
#else
#include <stdint.h>
typedef uint8_t slk_u8;
typedef uint32_t slk_u32;
typedef int32_t slk_i32;
typedef uint64_t slk_u64;
#endif

/* Bumped whenever a struct below or a kernel's arguments change: a cached or given program
 * binary built against another version is refused (slk_abi reports the version it was built
 * with). */
#define SLK_ABI_VERSION 1

#define SLK_MAX_KEY    64	   /* SL_ACCEL_MAX_KEY, SL_BLOCK_MAX_KEY */
#define SLK_BLOCK_MIN  17	   /* SL_BLOCK_MIN: one 5-byte entry, restart[1], count, CRC */
#define SLK_TOMBSTONE  1u	   /* SL_ACCEL_TOMBSTONE */
#define SLK_DROP_TOMBS 1u	   /* SL_ACCEL_MERGE_DROP_TOMBSTONES */
#define SLK_CRC_CHUNK  2048u	   /* bytes one work-item checksums */
#define SLK_CRC_FIRST  0x80000000u /* slk_crc_chunk.slot: the buffer's first chunk */
#define SLK_NONE       0xFFFFFFFFu

/* ---- CRC32C ----------------------------------------------------------------------------------
 *
 * A batch is cut into chunks of at most SLK_CRC_CHUNK bytes, one work-item each. A work-item
 * computes the raw CRC of its chunk (register 0 in, no final xor), shifts it over the bytes of
 * its buffer that follow the chunk (a multiply by x^(8 after) mod P) and xors it into its
 * buffer's accumulator, which the host zeroed; the first chunk also xors in ~0 shifted over the
 * whole buffer (the CRC's initial value). The accumulator is then the register after the whole
 * buffer, and the CRC32C is its complement. An empty buffer has one chunk of length 0. */
struct slk_crc_chunk {
	slk_u64 off;   /* the chunk's first byte in the data */
	slk_u64 after; /* bytes of its buffer after the chunk */
	slk_u32 len;   /* bytes in the chunk */
	slk_u32 slot;  /* the accumulator's index, | SLK_CRC_FIRST on a buffer's first chunk */
};

/* ---- Bloom filters ----------------------------------------------------------------------------
 */

/* One filter of a probe batch: its bits at off (64-byte aligned) in the data. */
struct slk_filter {
	slk_u64 off;
	slk_u64 nblocks; /* size / 64; 0 rules nothing out */
	slk_u32 k;
	slk_u32 pad;
};

/* ---- The merge job --------------------------------------------------------------------------
 *
 * The input buffer holds, at offset 0, the params; at the offsets they give, the runs, the
 * input blocks' descriptors, the CRC chunks over those blocks (for the slk_crc32c pre-pass,
 * whose accumulators sit at acc_off, one per input block), lo and hi, and the blocks' bytes.
 * The merge kernel (one work-item) writes the output blocks (without their CRCs), their
 * descriptors and the result; then slk_merge_crc fills in each block's CRC (trailer and
 * descriptor) and slk_merge_bloom sets the filter's bits, one work-item per output block. */
struct slk_merge_params {
	slk_u64 runs_off;   /* struct slk_run[n_runs] */
	slk_u64 blocks_off; /* struct slk_inblock[n_inblocks] */
	slk_u64 acc_off;    /* slk_u32[n_inblocks]: the pre-pass's CRC accumulators */
	slk_u64 lo_off, hi_off;
	slk_u64 lo_len, hi_len;
	slk_u64 out_cap;    /* bytes of the output buffer: past it the kernel only measures */
	slk_u64 blocks_cap; /* descriptors the blocks buffer holds: past it it only counts */
	slk_u64 tree_off; /* in scratch: slk_u32[n_runs + 1], then the winners slk_u32[2 n_runs] */
	slk_u64 key_off;  /* in scratch: the emitted key, then the encoder's last key */
	slk_u32 n_runs;
	slk_u32 flags;
	slk_u32 block_bytes;
	slk_u32 restart_interval;
	slk_u32 n_inblocks;
	slk_u32 pad;
};

struct slk_run {
	slk_u32 first_block; /* index of its first block in the descriptors */
	slk_u32 n_blocks;
};

struct slk_inblock {
	slk_u64 off; /* in the input buffer */
	slk_u64 len; /* as the caller gave it (a block past 4 GiB is corrupt) */
};

/* An output block: the layout of struct sl_accel_block, so the host copies them as they are. */
struct slk_block {
	slk_u64 off;
	slk_u32 len;
	slk_u32 crc;
	slk_u32 last_len;
	slk_u8 last[SLK_MAX_KEY];
	slk_u32 pad;
};

enum slk_merge_status {
	SLK_MERGE_OK = 0,
	SLK_MERGE_CORRUPT = 1, /* bad_run, bad_block name the block */
	SLK_MERGE_FBIG = 2,    /* an output block would pass 4 GiB */
};

struct slk_merge_result {
	slk_u64 out_len;  /* bytes of all output blocks (what the job needs, even past out_cap) */
	slk_u64 n_blocks; /* even past blocks_cap */
	slk_u64 entries_in, entries_out, dropped_older, dropped_tombstones;
	slk_u64 bad_run, bad_block;
	slk_i32 status;	      /* enum slk_merge_status */
	slk_u32 smallest_len; /* the first key written (kept on errors too, as cpu leaves it) */
	slk_u8 smallest[SLK_MAX_KEY];
};

/* One run's reader, in the merge kernel's scratch (the host sizes scratch by it). */
struct slk_cursor {
	slk_u64 base; /* the current block's offset in the input buffer */
	slk_u64 pfx;  /* the key's first 8 bytes, big-endian, zero-padded; ~0 once done */
	slk_u64 val;  /* the current value's offset in the input buffer */
	slk_u32 data_end, nrestarts, pos, next_restart, next_off;
	slk_u32 vlen, klen, flags;
	slk_u32 first_block, n_blocks, next_block;
	slk_u32 done, past_lo, pad;
	slk_u8 key[SLK_MAX_KEY];
};

/* What slk_abi writes: the device compiler's view of the above, checked by the host. */
struct slk_abi_report {
	slk_u32 version;
	slk_u32 size_crc_chunk, size_filter, size_params, size_run, size_inblock, size_block,
		size_result, size_cursor;
	slk_u32 pad;
};

/* The sizes slk_abi must report, in its order: crc_chunk, filter, params, run, inblock, block,
 * result, cursor. */
#define SLK_ABI_SIZES                                                                              \
	{                                                                                          \
		24, 24, 112, 8, 16, 88, 136, 144                                                   \
	}

#endif /* SL_KERNEL_ABI_H */
