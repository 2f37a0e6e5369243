/* bloom.h - a cache-line-blocked bloom filter: each key's bits all fall in one 64-byte block
 * chosen by its hash, so a probe touches one cache line. The hash and the bit layout are fixed
 * and documented here because every accelerator backend must reproduce them bit for bit.
 * bloom knows nothing of tables or files.
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

/* Probes per key for a given bits-per-key (the k that keeps false positives lowest). */
uint32_t sl__bloom_probes(uint32_t bits_per_key);

/* Filter size in bytes for n keys: a multiple of SL_BLOOM_BLOCK, at least one block. */
size_t sl__bloom_bytes(uint64_t nkeys, uint32_t bits_per_key);

/* Set the bits of n key hashes in filter (size bytes, zeroed by the caller, a multiple of
 * SL_BLOOM_BLOCK), k probes each. */
void sl__bloom_add(uint8_t *filter, size_t size, const uint64_t *hashes, size_t n, uint32_t k);

/* 1 if the key with this hash may be present, 0 if it is certainly absent. */
int sl__bloom_may_contain(const uint8_t *filter, size_t size, uint64_t hash, uint32_t k);

/* Probe many hashes against one filter: out[i] = may_contain(hashes[i]). Prefetches ahead. */
void sl__bloom_probe_batch(const uint8_t *filter, size_t size, const uint64_t *hashes, size_t n,
			   uint32_t k, uint8_t *out);

#endif /* SL_BLOOM_H */
