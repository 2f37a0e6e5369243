/* xrt_shim.h - the XRT shim: a shared library built as libxrt_coreutil.so.2 that defines the
 * entry points of xrt_capi.h over a device model (device memory, buffer objects with separate
 * host backing, compute units that run the firmware's kernels on a thread), so that
 * host/src/accel_xrt.c's XRT code path runs, and is tested, where no XRT and no card exist. It
 * is not XRT and not part of libsluice; tests point SLUICE_XRT_LIB at it.
 *
 * What it models of XRT: a buffer object has host backing (xrtBOMap, xrtBOWrite, xrtBORead) and
 * device memory, and only xrtBOSync moves bytes between them; kernels see device memory only.
 * Each global argument of a kernel is connected to one memory bank (xrtKernelArgGroupId), and a
 * buffer passed to it must have been allocated in that bank (real XRT copies it with a warning;
 * the shim refuses, as the C API's varargs path gives a card the wrong bank's address). Scalars
 * are read from xrtRunSetArg's varargs by the argument's width. Runs start asynchronously and
 * complete in order on the device's thread; xrtRunWait returns ERT_CMD_STATE_COMPLETED, or
 * ERT_CMD_STATE_ERROR when a kernel refused its arguments (an offset past its buffer), with the
 * reason on stderr.
 *
 * What it runs: the OpenCL kernels of kernels/ by name, each over its whole index range in one
 * run (the single-work-item loop form a card's compute unit needs), with the firmware's code
 * (firmware/fw_kernels.c, fw_merge.c, through host/src/bloom.c and block.c) and the kernels'
 * argument layouts (kernels/sl_kernel_abi.h).
 *
 * The "xclbin" it loads is a text stand-in that firmware/fpga/shim_xclbin.sh makes from the
 * kernels' sources and firmware/fpga/connectivity.cfg; a real xclbin (an axlf image) is
 * recognised and refused, never parsed:
 *
 *   sluice-xrt-shim-xclbin 1
 *   uuid <32 hex digits>
 *   bank <group> <tag>                     one per memory bank, e.g. "bank 0 DDR[0]"
 *   kernel <name> <arg> ...                one per kernel; an arg is g<group> (a global
 *                                          pointer in that bank), u32 or u64
 *
 * Environment: SLUICE_XRT_SHIM_DEVICES (devices to model, default 1), SLUICE_XRT_SHIM_MEM_MB
 * (device memory per device, default 4096), SLUICE_XRT_SHIM_QUIET (1: no messages on stderr, for
 * tests that provoke errors), SLUICE_XRT_SHIM_HANG_RUN (N: the N-th run a device takes, counting
 * from 1, hangs: it stays RUNNING, xrtRunWaitFor times out, xrtRunClose lets it go).
 */
#ifndef SL_XRT_SHIM_H
#define SL_XRT_SHIM_H

#include "xrt_capi.h"

#define XRT_SHIM_XCLBIN_MAGIC "sluice-xrt-shim-xclbin 1"

/* The entry point no real XRT has: the backend looks it up to learn that it drives the shim
 * (then it does not claim a device, so the planner never routes work to it). Returns a static
 * one-line description. */
#define XRT_SHIM_DESCRIBE "sluice_xrt_shim_describe"
const char *sluice_xrt_shim_describe(void);

#endif /* SL_XRT_SHIM_H */
