/* bloom.c - the cache-line-blocked bloom filter of bloom.h: the key hash, the block choice and
 * the bit positions inside a block. bloom is a leaf: it knows nothing of tables or files and
 * depends on libc only.
 *
 * Everything below is a format: SSTables store filters built with it and the accelerator
 * backends (OpenCL C, firmware) recompute it, so a change is a format change. Exactly:
 *
 * Hash (sl__bloom_hash), all arithmetic mod 2^64:
 *	h = 0x736c756963653530 ^ (len * 0x9e3779b97f4a7c15)
 *	for each 8-byte word w of the key, little-endian, the last one zero-padded:
 *		w ^= w >> 33; w *= 0xff51afd7ed558ccd; w ^= w >> 33;
 *		w *= 0xc4ceb9fe1a85ec53; w ^= w >> 33;		(murmur3's fmix64)
 *		h = (h ^ w) * 0x9fb21c651e98df25;
 *	h ^= h >> 30; h *= 0xbf58476d1ce4e5b9; h ^= h >> 27;
 *	h *= 0x94d049bb133111eb; h ^= h >> 31;			(splitmix64's finalizer)
 * Every word goes through a full finalizer before it meets the state, because keys are short
 * big-endian integers that differ in a few bits of one word; the multiply after the xor makes
 * word order matter; the length in the seed keeps "a" and "a\0" apart.
 *
 * Block: the filter is nblocks = size / 64 blocks of 64 bytes; a key's block is
 *	b = ((h >> 32) * nblocks) >> 32
 * (multiply-shift, no division; nblocks <= 2^32 keeps the product in 64 bits).
 *
 * Bits: x = (uint32_t)h, then for each of the k probes, in 32-bit arithmetic:
 *	x *= 0x9e3779b9; x ^= x >> 16; bit = x >> 23;	(0..511)
 * and bit is bit (bit & 7) of byte (bit >> 3) of the block (so bit (bit & 63) of
 * little-endian 64-bit word (bit >> 6)). This is neither double hashing nor split-block but a
 * per-probe remix: each probe's 9 bits come from the top of a fresh multiply of the previous
 * state. Measured on 1M keys at 10 bits/key it matches truly random positions (0.96%, the
 * theory for a 512-bit block says 0.97%), where double hashing mod 512 gave 1.12%, double
 * hashing over 32 bits 1.04% and split-block (one bit per 64-bit word) 1.8% or worse. Probes
 * may repeat a bit; the k table below accounts for that.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "bloom.h"

#define HASH_SEED   0x736c756963653530ull /* "sluice50" */
#define HASH_LEN_M  0x9e3779b97f4a7c15ull
#define WORD_M1	    0xff51afd7ed558ccdull
#define WORD_M2	    0xc4ceb9fe1a85ec53ull
#define ACC_M	    0x9fb21c651e98df25ull
#define FIN_M1	    0xbf58476d1ce4e5b9ull
#define FIN_M2	    0x94d049bb133111ebull
#define PROBE_M	    0x9e3779b9u
#define BLOCK_SHIFT 6 /* log2(SL_BLOOM_BLOCK) */
#define BLOCK_BITS  (SL_BLOOM_BLOCK * 8)

/* The block choice keeps (h >> 32) * nblocks in 64 bits only up to 2^32 blocks (256 GiB). */
#define MAX_BLOCKS ((uint64_t)1 << 32)

/* How many probes prefetch runs ahead in sl__bloom_probe_batch. A miss takes ~100 ns and a
 * probe's own work a few ns, so the distance must cover tens of probes; the line fill buffers
 * cap what is truly in flight but the prefetches queue behind them. Measured on a 60 MiB
 * filter: 4 -> 21 ns/probe, 12 -> 15, 32 -> 9, 64 -> 8. */
#define PREFETCH_AHEAD 32

_Static_assert(SL_BLOOM_BLOCK == 1 << BLOCK_SHIFT, "BLOCK_SHIFT must match SL_BLOOM_BLOCK");
_Static_assert(BLOCK_BITS == 512, "bit positions are 9 bits");

/* The little-endian 8-byte word at p (memcpy: keys need not be aligned). */
static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	/* memcpy put byte i at address offset i; on a big-endian host that is the wrong end. */
	if (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
		w = __builtin_bswap64(w);
	return w;
}

/* The last n (1..7) bytes of a key as a little-endian word, zero-padded. Byte by byte rather
 * than a memcpy of n bytes, which is a library call when n is not a constant. */
static inline uint64_t load_le_tail(const uint8_t *p, size_t n)
{
	uint64_t w = 0;
	size_t i;

	for (i = 0; i < n; i++)
		w |= (uint64_t)p[i] << (8 * i);
	return w;
}

static inline uint64_t mix_word(uint64_t w)
{
	w ^= w >> 33;
	w *= WORD_M1;
	w ^= w >> 33;
	w *= WORD_M2;
	w ^= w >> 33;
	return w;
}

uint64_t sl__bloom_hash(const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t h = HASH_SEED ^ ((uint64_t)len * HASH_LEN_M);
	size_t off;

	for (off = 0; off + 8 <= len; off += 8)
		h = (h ^ mix_word(load_le64(p + off))) * ACC_M;
	if (off < len)
		h = (h ^ mix_word(load_le_tail(p + off, len - off))) * ACC_M;
	h ^= h >> 30;
	h *= FIN_M1;
	h ^= h >> 27;
	h *= FIN_M2;
	h ^= h >> 31;
	return h;
}

/* The k that minimizes the false-positive rate of this layout, per bits/key 0..32, computed
 * exactly (not from the plain-bloom k = c ln 2): a block holds Poisson(512 / c) keys, each
 * sets k bits drawn with replacement, and a probe hits with E[(set bits / 512)^k]. Blocking
 * makes the load uneven, so the best k is lower than a plain filter's (6 at 10 bits/key, where
 * a plain filter wants 7; k = 7 would give 0.969% instead of 0.966%). 0 bits/key reads as 1. */
/* clang-format off */
static const uint8_t best_k[] = {
	/*  0 */ 1,  1,  1,  2,  3,  3,  4,  5,
	/*  8 */ 5,  6,  6,  7,  8,  8,  9,  9,
	/* 16 */ 9,  10, 10, 11, 11, 11, 12, 12,
	/* 24 */ 12, 13, 13, 13, 14, 14, 14, 14,
	/* 32 */ 15,
};
/* clang-format on */

uint32_t sl__bloom_probes(uint32_t bits_per_key)
{
	const uint32_t last = sizeof(best_k) / sizeof(best_k[0]) - 1;

	/* Past 32 bits/key the rate is below 0.0006% and the best k grows by one per ~4 bits:
	 * more probes would cost more time than the few false positives they save. */
	return best_k[bits_per_key < last ? bits_per_key : last];
}

size_t sl__bloom_bytes(uint64_t nkeys, uint32_t bits_per_key)
{
	uint64_t max_blocks = MAX_BLOCKS;
	uint64_t q = nkeys / BLOCK_BITS, r = nkeys % BLOCK_BITS, blocks;

	if ((uint64_t)SIZE_MAX / SL_BLOOM_BLOCK < max_blocks)
		max_blocks = (uint64_t)SIZE_MAX / SL_BLOOM_BLOCK;
	/* ceil(nkeys * bits_per_key / 512) without overflowing: q * bpk + ceil(r * bpk / 512). */
	if (bits_per_key && q > max_blocks / bits_per_key)
		return (size_t)max_blocks * SL_BLOOM_BLOCK;
	blocks = q * bits_per_key + (r * bits_per_key + BLOCK_BITS - 1) / BLOCK_BITS;
	if (blocks < 1)
		blocks = 1;
	if (blocks > max_blocks)
		blocks = max_blocks;
	return (size_t)blocks * SL_BLOOM_BLOCK;
}

/* The byte offset of hash's block in a filter of nblocks blocks. */
static inline size_t block_offset(uint64_t hash, size_t nblocks)
{
	return (size_t)(((hash >> 32) * (uint64_t)nblocks) >> 32) << BLOCK_SHIFT;
}

static inline uint32_t next_bit(uint32_t *x)
{
	*x *= PROBE_M;
	*x ^= *x >> 16;
	return *x >> 23;
}

void sl__bloom_add(uint8_t *filter, size_t size, const uint64_t *hashes, size_t n, uint32_t k)
{
	size_t nblocks = size >> BLOCK_SHIFT;
	size_t i;
	uint32_t j;

	assert(size % SL_BLOOM_BLOCK == 0 && nblocks >= 1 && nblocks <= MAX_BLOCKS);
	if (nblocks < 1)
		return;
	for (i = 0; i < n; i++) {
		uint8_t *blk = filter + block_offset(hashes[i], nblocks);
		uint32_t x = (uint32_t)hashes[i];

		for (j = 0; j < k; j++) {
			uint32_t bit = next_bit(&x);

			blk[bit >> 3] |= (uint8_t)(1u << (bit & 7));
		}
	}
}

/* 1 if all k bits of hash are set in the block at blk. Stops at the first clear bit: in a loop
 * of may_contain calls over a 60 MiB filter this form took 28 ns/probe and the branch-free one
 * below 55 (the predicted branch seems to let the CPU start the next probe's miss sooner). */
static inline int block_has(const uint8_t *blk, uint64_t hash, uint32_t k)
{
	uint32_t x = (uint32_t)hash;
	uint32_t j;

	for (j = 0; j < k; j++) {
		uint32_t bit = next_bit(&x);

		if (!(blk[bit >> 3] & (1u << (bit & 7))))
			return 0;
	}
	return 1;
}

/* block_has without branches on the data: in a batch, whose lines are already on their way,
 * the mispredicted early exits of absent keys (where it stops is random) cost more than
 * testing every bit. Same answer as block_has. */
static inline int block_has_all(const uint8_t *blk, uint64_t hash, uint32_t k)
{
	uint32_t x = (uint32_t)hash;
	uint32_t all = 1, j;

	for (j = 0; j < k; j++) {
		uint32_t bit = next_bit(&x);

		all &= (uint32_t)blk[bit >> 3] >> (bit & 7);
	}
	return (int)(all & 1);
}

int sl__bloom_may_contain(const uint8_t *filter, size_t size, uint64_t hash, uint32_t k)
{
	size_t nblocks = size >> BLOCK_SHIFT;

	/* No block at all rules nothing out. (A size that is not a whole number of blocks uses
	 * its whole blocks, as add does; sst checks sizes read from disk before probing.) */
	if (nblocks < 1)
		return 1;
	assert(nblocks <= MAX_BLOCKS);
	return block_has(filter + block_offset(hash, nblocks), hash, k);
}

void sl__bloom_probe_batch(const uint8_t *filter, size_t size, const uint64_t *hashes, size_t n,
			   uint32_t k, uint8_t *out)
{
	size_t nblocks = size >> BLOCK_SHIFT;
	size_t i;

	if (nblocks < 1) {
		if (n)
			memset(out, 1, n);
		return;
	}
	assert(nblocks <= MAX_BLOCKS);
	/* Each probe is one likely cache miss in a filter larger than the cache; asking for the
	 * lines of the next PREFETCH_AHEAD probes first lets those misses overlap. */
	for (i = 0; i < n && i < PREFETCH_AHEAD; i++)
		__builtin_prefetch(filter + block_offset(hashes[i], nblocks), 0, 0);
	for (i = 0; i < n; i++) {
		if (i + PREFETCH_AHEAD < n)
			__builtin_prefetch(
				filter + block_offset(hashes[i + PREFETCH_AHEAD], nblocks), 0, 0);
		out[i] = (uint8_t)block_has_all(filter + block_offset(hashes[i], nblocks),
						hashes[i], k);
	}
}
