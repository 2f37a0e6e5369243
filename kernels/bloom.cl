/* bloom.cl - bloom filter build and probe over key hashes, one item per hash (SLK_FOR_ITEMS), in
 * host/src/bloom.h's layout (sl_bloom_dev.h). Build sets bits with atomic_or, so work-items may
 * share a block; probe reads any of several filters, chosen per hash by which[].
 */
#include "sl_kernel_abi.h"
#include "sl_bloom_dev.h"

/* n hashes at hashes_off (8-aligned) into the filter of nblocks blocks at filter_off (64-aligned,
 * nblocks >= 1), k probes each. */
SLK_KERNEL void slk_bloom_build(__global uchar *buf, ulong hashes_off, ulong n, ulong filter_off,
				ulong nblocks, uint k)
{
	SLK_FOR_ITEMS(i, n)
	{
		ulong h = ((__global const ulong *)(buf + hashes_off))[i];
		bloom_set((__global uint *)(buf + filter_off), nblocks, h, k);
	}
}

/* out[i] = may_contain(filters[which ? which[i] : 0], hashes[i]): n hashes at hashes_off, which
 * at which_off (~0: none), filter descriptors at filters_off (the host checked every which[i]),
 * n result bytes at out_off. */
SLK_KERNEL void slk_bloom_probe(__global uchar *buf, ulong hashes_off, ulong which_off,
				ulong filters_off, ulong n, ulong out_off)
{
	SLK_FOR_ITEMS(i, n)
	{
		ulong h = ((__global const ulong *)(buf + hashes_off))[i];
		uint f = which_off == ~0UL ? 0 : ((__global const uint *)(buf + which_off))[i];
		__global const struct slk_filter *d =
			(__global const struct slk_filter *)(buf + filters_off) + f;
		uchar hit = 1;
		if (d->nblocks) {
			__global const uchar *blk = buf + d->off + bloom_block(h, d->nblocks) * 64;
			uint x = (uint)h, k = d->k;
			for (uint j = 0; j < k; j++) {
				uint bit = bloom_next_bit(&x);
				if (!(blk[bit >> 3] & (1u << (bit & 7)))) {
					hit = 0;
					break;
				}
			}
		}
		buf[out_off + i] = hit;
	}
}
