/* fw_kernels.h - the kernels the command processor dispatches to (fw_kernels.c). Their
 * arguments are pointers into device memory that fw_cmd.c has checked, with every table entry
 * in bounds: kernels never validate. Tables and arrays may sit at any alignment. Freestanding.
 */
#ifndef SL_FW_KERNELS_H
#define SL_FW_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "fw.h"
#include "fw_merge.h"

/* out[i] (u32 LE) = CRC32C of segment i (struct fw_seg at segs, into data), i < n. *bytes: the
 * bytes checksummed. */
void fw_kernel_crc32c(const struct fw_device *d, const uint8_t *segs, const uint8_t *data,
		      uint8_t *out, uint64_t n, uint64_t *bytes);

/* Set the bits of n hashes (u64 LE), k probes each, in a filter of size bytes (a multiple of
 * 64; 0: nothing). */
void fw_kernel_bloom_build(const uint8_t *hashes, uint64_t n, uint32_t k, uint8_t *filter,
			   uint64_t size);

/* out[i] = may_contain(filter which[i] (u32 LE; which NULL: filter 0), hash i), i < n; filters
 * are struct fw_filter at table with their bits at bits + off. */
void fw_kernel_bloom_probe(const uint8_t *table, const uint8_t *bits, const uint8_t *which,
			   const uint8_t *hashes, uint64_t n, uint8_t *out);

/* The merge's input as it lies in device memory. */
struct fw_merge_tables {
	const uint8_t *runs; /* struct fw_merge_run[n_runs] */
	const uint8_t *segs; /* struct fw_seg[n_blocks], offsets into data */
	const uint8_t *data; /* the input blocks */
};

/* fw_merge over those tables with the device's CRC32C; p's in and out buffers filled by the
 * caller. Returns fw_merge's status. */
uint32_t fw_kernel_merge(const struct fw_device *d, const struct fw_merge_tables *t,
			 struct fw_merge_params *p, struct fw_merge_result *res, uint64_t *need);

#endif /* SL_FW_KERNELS_H */
