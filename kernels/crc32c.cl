/* crc32c.cl - CRC32C of a batch of buffers, one item per chunk of at most SLK_CRC_CHUNK
 * bytes (sl_kernel_abi.h: struct slk_crc_chunk says how the chunks' CRCs combine). Serves the
 * crc32c_batch operation and the merge job's check of its input blocks.
 */
#include "sl_kernel_abi.h"
#include "sl_crc32c_tab.h"

/* buf holds the data, n chunk descriptors at chunks_off (8-aligned) and the accumulators at
 * acc_off (4-aligned, zeroed by the host). */
SLK_KERNEL void slk_crc32c(__global uchar *buf, ulong chunks_off, ulong n, ulong acc_off)
{
	__global uint *acc = (__global uint *)(buf + acc_off);
	SLK_FOR_ITEMS(i, n)
	{
		__global const struct slk_crc_chunk *c =
			(__global const struct slk_crc_chunk *)(buf + chunks_off) + i;
		ulong len = c->len, after = c->after;
		uint slot = c->slot;
		uint r = crc_shift(crc_update(0, buf + c->off, len), after);
		if (slot & SLK_CRC_FIRST)
			r ^= crc_shift(0xFFFFFFFFu, len + after);
		atomic_xor(acc + (slot & ~SLK_CRC_FIRST), r);
	}
}
