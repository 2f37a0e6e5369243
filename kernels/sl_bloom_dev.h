/* sl_bloom_dev.h - host/src/bloom.h's filter in OpenCL C: the key hash, the block choice and
 * the probe bits, reproduced bit for bit (bloom.h documents each step; the tests compare every
 * filter with bloom.c's). Bits are set with atomic_or on the filter's little-endian 32-bit
 * words: bit b of a 64-byte block is bit (b & 31) of word (b >> 5). OpenCL C only.
 */
#ifndef SL_BLOOM_DEV_H
#define SL_BLOOM_DEV_H

#define BLOOM_SEED    0x736c756963653530UL
#define BLOOM_LEN_M   0x9e3779b97f4a7c15UL
#define BLOOM_WORD_M1 0xff51afd7ed558ccdUL
#define BLOOM_WORD_M2 0xc4ceb9fe1a85ec53UL
#define BLOOM_ACC_M   0x9fb21c651e98df25UL
#define BLOOM_FIN_M1  0xbf58476d1ce4e5b9UL
#define BLOOM_FIN_M2  0x94d049bb133111ebUL
#define BLOOM_PROBE_M 0x9e3779b9u

static inline ulong bloom_mix_word(ulong w)
{
	w ^= w >> 33;
	w *= BLOOM_WORD_M1;
	w ^= w >> 33;
	w *= BLOOM_WORD_M2;
	w ^= w >> 33;
	return w;
}

/* sl__bloom_hash of a key in private memory (len 1..64). */
static inline ulong bloom_hash(const uchar *key, uint len)
{
	ulong h = BLOOM_SEED ^ ((ulong)len * BLOOM_LEN_M);
	uint off = 0;
	for (; off < len; off += 8) {
		ulong w = 0;
		for (uint i = 0; i < 8 && off + i < len; i++)
			w |= (ulong)key[off + i] << (8 * i);
		h = (h ^ bloom_mix_word(w)) * BLOOM_ACC_M;
	}
	h ^= h >> 30;
	h *= BLOOM_FIN_M1;
	h ^= h >> 27;
	h *= BLOOM_FIN_M2;
	h ^= h >> 31;
	return h;
}

/* The index of hash's block in a filter of nblocks (<= 2^32) blocks. */
static inline ulong bloom_block(ulong hash, ulong nblocks)
{
	return ((hash >> 32) * nblocks) >> 32;
}

static inline uint bloom_next_bit(uint *x)
{
	*x *= BLOOM_PROBE_M;
	*x ^= *x >> 16;
	return *x >> 23;
}

/* Set hash's k bits in the filter (its 32-bit words). */
static inline void bloom_set(__global uint *filter, ulong nblocks, ulong hash, uint k)
{
	__global uint *blk = filter + bloom_block(hash, nblocks) * 16;
	uint x = (uint)hash;
	for (uint j = 0; j < k; j++) {
		uint bit = bloom_next_bit(&x);
		atomic_or(blk + (bit >> 5), 1u << (bit & 31));
	}
}

#endif /* SL_BLOOM_DEV_H */
