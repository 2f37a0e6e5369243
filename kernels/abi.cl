/* abi.cl - slk_abi: the device compiler's view of sl_kernel_abi.h's structs and the ABI version
 * the program was built with, written once at open so the host refuses a program (from any
 * source: built here, cached, or given as a binary) whose layouts differ from its own.
 */
#include "sl_kernel_abi.h"

/* The device's view of the shared structs, for the host to check at open. */
SLK_KERNEL void slk_abi(__global struct slk_abi_report *r)
{
	r->version = SLK_ABI_VERSION;
	r->size_crc_chunk = sizeof(struct slk_crc_chunk);
	r->size_filter = sizeof(struct slk_filter);
	r->size_params = sizeof(struct slk_merge_params);
	r->size_run = sizeof(struct slk_run);
	r->size_inblock = sizeof(struct slk_inblock);
	r->size_block = sizeof(struct slk_block);
	r->size_result = sizeof(struct slk_merge_result);
	r->size_cursor = sizeof(struct slk_cursor);
	r->pad = 0;
}
