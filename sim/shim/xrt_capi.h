/* xrt_capi.h - the subset of XRT's native C API that Sluice uses, declared as XRT's public
 * headers declare it: xrt/xrt_device.h (device open, close, xclbin load, xclbin UUID),
 * xrt/xrt_kernel.h (kernel open and close, argument memory groups, runs), xrt/xrt_bo.h (buffer
 * objects), xrt/xrt_uuid.h (xuid_t), xrt/deprecated/xrt.h (enum xclBOSyncDirection),
 * xrt/detail/ert.h (enum ert_cmd_state) and xrt/detail/xrt_mem.h (buffer flags), as of XRT 2.x
 * (the C API is in libxrt_coreutil.so.2 since 2020.2). Names, types and values only; no XRT code.
 *
 * host/src/accel_xrt.c resolves these with dlsym and never links them, so nothing here needs
 * XRT at build time; sim/shim/xrt_shim.c defines them over the device model. Everything returns
 * XRT's way: a NULL handle or -1 with errno set, and a message on stderr.
 */
#ifndef SL_XRT_CAPI_H
#define SL_XRT_CAPI_H

#include <stddef.h>
#include <stdint.h>

/* xrt/xrt_device.h, xrt/xrt_kernel.h, xrt/xrt_bo.h: opaque handles. */
typedef void *xrtDeviceHandle;
typedef void *xrtKernelHandle;
typedef void *xrtRunHandle;
typedef void *xrtBufferHandle;
typedef uint64_t xrtBufferFlags; /* XRT_BO_FLAGS_* | memory bank index */
typedef uint32_t xrtMemoryGroup; /* from xrtKernelArgGroupId */

/* xrt/xrt_uuid.h: uuid_t of <uuid/uuid.h>. */
typedef unsigned char xuid_t[16];

/* xrt/deprecated/xrt.h */
enum xclBOSyncDirection {
	XCL_BO_SYNC_BO_TO_DEVICE = 0,
	XCL_BO_SYNC_BO_FROM_DEVICE = 1,
	XCL_BO_SYNC_BO_GMIO_TO_AIE = 2,
	XCL_BO_SYNC_BO_AIE_TO_GMIO = 3,
};

/* xrt/detail/ert.h */
enum ert_cmd_state {
	ERT_CMD_STATE_NEW = 1,
	ERT_CMD_STATE_QUEUED = 2,
	ERT_CMD_STATE_RUNNING = 3,
	ERT_CMD_STATE_COMPLETED = 4,
	ERT_CMD_STATE_ERROR = 5,
	ERT_CMD_STATE_ABORT = 6,
	ERT_CMD_STATE_SUBMITTED = 7,
	ERT_CMD_STATE_TIMEOUT = 8,
	ERT_CMD_STATE_NORESPONSE = 9,
};

/* xrt/detail/xrt_mem.h */
#define XCL_BO_FLAGS_NONE 0
#define XRT_BO_FLAGS_NONE XCL_BO_FLAGS_NONE

/* xrt/xrt_device.h */
xrtDeviceHandle xrtDeviceOpen(unsigned int index);
xrtDeviceHandle xrtDeviceOpenByBDF(const char *bdf);
int xrtDeviceClose(xrtDeviceHandle dhdl);
int xrtDeviceLoadXclbinFile(xrtDeviceHandle dhdl, const char *xclbin_fnm);
int xrtDeviceGetXclbinUUID(xrtDeviceHandle dhdl, xuid_t out);

/* xrt/xrt_kernel.h */
xrtKernelHandle xrtPLKernelOpen(xrtDeviceHandle deviceHandle, const xuid_t xclbinId,
				const char *name);
int xrtKernelClose(xrtKernelHandle kernelHandle);
int xrtKernelArgGroupId(xrtKernelHandle kernelHandle, int argno);
xrtRunHandle xrtRunOpen(xrtKernelHandle kernelHandle);
/* The value's type follows the argument's in the xclbin: an xrtBufferHandle for a global
 * pointer, unsigned int for a 4-byte scalar (OpenCL uint), uint64_t for an 8-byte one (ulong). */
int xrtRunSetArg(xrtRunHandle rhdl, int index, ...);
int xrtRunStart(xrtRunHandle rhdl);
enum ert_cmd_state xrtRunWait(xrtRunHandle rhdl);
/* The run's state when it completed, or its current state after timeout_ms. */
enum ert_cmd_state xrtRunWaitFor(xrtRunHandle rhdl, unsigned int timeout_ms);
int xrtRunClose(xrtRunHandle rhdl);

/* xrt/xrt_bo.h */
xrtBufferHandle xrtBOAlloc(xrtDeviceHandle dhdl, size_t size, xrtBufferFlags flags,
			   xrtMemoryGroup grp);
int xrtBOFree(xrtBufferHandle bhdl);
void *xrtBOMap(xrtBufferHandle bhdl);
int xrtBOSync(xrtBufferHandle bhdl, enum xclBOSyncDirection dir, size_t size, size_t offset);
int xrtBOWrite(xrtBufferHandle bhdl, const void *src, size_t size, size_t seek);
int xrtBORead(xrtBufferHandle bhdl, void *dst, size_t size, size_t skip);

#endif /* SL_XRT_CAPI_H */
