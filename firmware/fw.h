/* fw.h - the device-side command processor: what a device core runs for each descriptor taken
 * off the submission ring (fw_process), its view of device memory (struct fw_device: the memory,
 * the buffer table, the CRC tables built at boot), and the kernels it dispatches to (CRC32C,
 * bloom build and probe through bloom.c, the fused merge of fw_merge.c). Freestanding C:
 * <stdint.h>, <stddef.h>, <string.h>, block.h and bloom.h only; no allocation, no I/O, no
 * locks. The device model in sim/ runs it on a host thread; no real card has run it.
 *
 * Threading: fw_process may run on several cores at once over one fw_device (it writes only
 * inside the buffers its descriptor names). The buffer table is written by whoever manages
 * device memory (sim/) while commands run; entries are read and written with relaxed atomics,
 * field by field, and a torn read can at worst name another range inside device memory, which
 * the bounds check below still confines to [0, mem_size).
 */
#ifndef SL_FW_H
#define SL_FW_H

#include <stddef.h>
#include <stdint.h>

#include "fw_abi.h"

/* A handle is (generation << FW_HANDLE_INDEX_BITS) | index; 0 is never a handle. */
#define FW_HANDLE_INDEX_BITS 16
#define FW_HANDLE_INDEX_MASK ((1u << FW_HANDLE_INDEX_BITS) - 1)

/* One entry of the buffer table: live while handle is nonzero. */
struct fw_buffer {
	uint32_t handle;
	uint32_t rsvd;
	uint64_t base; /* offset in device memory */
	uint64_t size;
};

struct fw_device {
	uint8_t *mem; /* device memory, mem_size bytes */
	uint64_t mem_size;
	struct fw_buffer *bufs; /* the buffer table, n_bufs entries, indexed by handle index */
	uint32_t n_bufs;
	uint32_t crc_table[8][256]; /* slice-by-8 CRC32C tables, built by fw_boot */
};

/* Make d ready: the fields above filled by the caller, the CRC tables built. */
void fw_boot(struct fw_device *d);

/* Validate one descriptor and run it. Writes *out completely (tag, status, detail, result,
 * work; device_ns 0 for the model to fill) and returns out->status. A descriptor that fails
 * validation changes nothing in device memory. */
uint32_t fw_process(const struct fw_device *d, const struct fw_desc *desc,
		    struct fw_completion *out);

/* A static name of a status ("bad handle", ...), for messages. */
const char *fw_strstatus(uint32_t status);

/* ---- Kernels (fw_kernels.c) ----------------------------------------------------------------- */

/* CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of n bytes at p. */
uint32_t fw_crc32c(const struct fw_device *d, const uint8_t *p, uint64_t n);

#endif /* SL_FW_H */
