/* bloom.h - a cache-line-blocked bloom filter: each key's bits all fall in one 64-byte block
 * chosen by its hash, so a probe touches one cache line. The hash and the bit layout are fixed
 * and documented here because every accelerator backend must reproduce them bit for bit
 * (bloom.c's top comment has the same with the reasons; tests/unit/test_bloom.c pins values).
 * bloom knows nothing of tables or files.
 *
 * Hash, arithmetic mod 2^64 (constants are the ones in bloom.c):
 *	h = 0x736c756963653530 ^ (len * 0x9e3779b97f4a7c15)
 *	per 8-byte little-endian key word w, the last one zero-padded:
 *		w = fmix64(w)	(murmur3: w ^= w >> 33; w *= 0xff51afd7ed558ccd; w ^= w >> 33;
 *				 w *= 0xc4ceb9fe1a85ec53; w ^= w >> 33)
 *		h = (h ^ w) * 0x9fb21c651e98df25
 *	h ^= h >> 30; h *= 0xbf58476d1ce4e5b9; h ^= h >> 27; h *= 0x94d049bb133111eb; h ^= h >> 31
 * Block: nblocks = size / 64; block = ((h >> 32) * nblocks) >> 32 (so at most 2^32 blocks).
 * Bits (a per-probe remix, not double hashing): x = (uint32_t)h; for each of k probes, mod 2^32,
 *	x *= 0x9e3779b9; x ^= x >> 16; bit = x >> 23;
 * sets/tests bit (bit & 7) of byte (bit >> 3) of the block, i.e. bit (bit & 63) of its
 * little-endian 64-bit word (bit >> 6). Probes may repeat a bit.
 */
#ifndef SL_BLOOM_H
#define SL_BLOOM_H

#include <stddef.h>
#include <stdint.h>

#define SL_BLOOM_BLOCK 64          /* bytes per block: one cache line, 512 bits */
#define SL_BLOOM_DEFAULT_BITS 10   /* bits per key */

/* 64-bit hash of a key, the only hash the filter uses. Defined over little-endian 8-byte words
 * with multiply/xor-shift mixing so that OpenCL C and firmware code can compute it exactly. */
uint64_t sl__bloom_hash(const void *key, size_t len);

/* Probes per key for a given bits-per-key: the k that keeps false positives lowest for this
 * blocked layout (6 at 10 bits/key, lower than a plain filter's c ln 2); 0 reads as 1, and
 * past 32 bits/key it stays at 15. */
uint32_t sl__bloom_probes(uint32_t bits_per_key);

/* Filter size in bytes for n keys: a multiple of SL_BLOOM_BLOCK, at least one block, at most
 * 2^32 blocks (256 GiB) where the block choice stops fitting in 64 bits. */
size_t sl__bloom_bytes(uint64_t nkeys, uint32_t bits_per_key);

/* Set the bits of n key hashes in filter (size bytes, zeroed by the caller, a multiple of
 * SL_BLOOM_BLOCK), k probes each. */
void sl__bloom_add(uint8_t *filter, size_t size, const uint64_t *hashes, size_t n, uint32_t k);

/* 1 if the key with this hash may be present, 0 if it is certainly absent. A size below one
 * block (or k = 0) rules nothing out: 1. */
int sl__bloom_may_contain(const uint8_t *filter, size_t size, uint64_t hash, uint32_t k);

/* Probe many hashes against one filter: out[i] = may_contain(hashes[i]). Prefetches ahead. */
void sl__bloom_probe_batch(const uint8_t *filter, size_t size, const uint64_t *hashes, size_t n,
			   uint32_t k, uint8_t *out);

#endif /* SL_BLOOM_H */
