/* xrt_shim_kernels.h - the compute units of the XRT shim: the OpenCL kernels of kernels/ by
 * name, each with its argument signature and a function that runs it over its whole index range
 * on device memory, with the firmware's code. xrt_shim.c (the API) knows them only through this
 * table; they know nothing of handles or runs.
 */
#ifndef SL_XRT_SHIM_KERNELS_H
#define SL_XRT_SHIM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define SHIM_MAX_ARGS 16

/* One argument of a run as the kernel sees it: a global is its buffer's device memory (mem,
 * size bytes); a scalar is u. */
struct shim_arg {
	uint8_t *mem;
	uint64_t size;
	uint64_t u;
};

struct shim_kernel_impl {
	const char *name;
	const char *sig; /* argument kinds, space-separated: g (global pointer), u32, u64 */
	/* Check every offset and length against the buffers, then run: 0, or -1 with the reason in
	 * err (nothing written then). */
	int (*run)(const struct shim_arg *a, char *err, size_t err_cap);
};

/* The kernel named name, or NULL. */
const struct shim_kernel_impl *shim_kernel_find(const char *name);

/* Build the CRC tables once per process (thread-safe). */
void shim_kernels_init(void);

#endif /* SL_XRT_SHIM_KERNELS_H */
