/* accel_inputs.h - inputs of merge jobs for the accelerator backend tests (test_accel, test_sim,
 * test_opencl, test_xrt): a seeded random source, a pool of random value bytes, random sorted
 * key universes and runs drawn from them, runs encoded into CRC-sealed blocks with the block
 * codec, and the job's run list. Test code only: failures are cmocka assertions.
 */
#ifndef SL_ACCEL_INPUTS_H
#define SL_ACCEL_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"

/* The random source (splitmix64): a test sets rng_state to its seed before its first draw. */
extern uint64_t rng_state;
uint64_t rnd(void);
/* n random bytes, eight at a time. */
void fill_rnd(void *p, size_t n);

/* Values point into one pool of random bytes, large enough for SL_SST_MAX_VALUE-sized ones,
 * made at the first pool_get(): byte by byte, or by fill_rnd() where pool_words is set. */
#define POOL_BYTES (3u << 20)
extern int pool_words;
uint8_t *pool_get(void);
void pool_free(void);

struct tent {
	uint8_t key[SL_ACCEL_MAX_KEY];
	uint8_t klen;
	uint8_t flags;
	uint32_t vlen;
	const uint8_t *val;
	uint32_t run;
};

int key_ref_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* By key, then by run. */
int tent_cmp(const void *pa, const void *pb);

/* One input run: its entries (sorted, distinct) and their blocks, each block in its own heap
 * allocation of exactly its size, at an odd offset, so ASan sees a read past any block. */
struct trun {
	struct tent *e;
	size_t n;
	struct sl_accel_buf *bufs;
	uint8_t **mem;
	size_t nblocks;
};

/* Encode r->e[0..n) with the codec into blocks of block_bytes (CRCs by a). */
void trun_encode(struct trun *r, struct sl_accel *a, uint32_t block_bytes, uint32_t interval);
void trun_free(struct trun *r);
void truns_free(struct trun *runs, size_t k);

/* A universe of *n sorted distinct keys of 1..64 bytes that share prefixes (*n: how many). */
struct tent *universe(size_t *n);
/* A run: each universe key with probability 1/every, a random value (now and then a big one
 * where big is set) and now and then a tombstone. */
void make_run(struct trun *r, const struct tent *u, size_t un, unsigned every, int big);
/* The job's runs: ar[0..k) over runs[0..k). */
void job_runs(struct sl_accel_merge_job *j, struct sl_accel_run *ar, struct trun *runs, size_t k);

extern const uint32_t block_sizes[6];
#define N_BLOCK_SIZES (sizeof(block_sizes) / sizeof(block_sizes[0]))

/* A bound: a universe key, a key just above one, or a prefix of one (below it). */
void pick_bound(const struct tent *u, size_t un, uint8_t *k, size_t *klen);

/* One job's output buffers, of the given capacities, filled with junk (the same on both sides
 * of a comparison), and set in j. */
struct tout {
	uint8_t *out;
	struct sl_accel_block *blocks;
	uint8_t *bloom;
};
void tout_alloc(struct tout *o, struct sl_accel_merge_job *j, size_t out, size_t blocks,
		size_t bloom);
void tout_free(struct tout *o);

/* job (its inputs and parameters) on dev and on ref with output buffers of the given sizes: the
 * same return, the same out values (junk neither writes stays equal junk), and on success the
 * same output bytes, descriptors and filter. Returns the status; *res (may be NULL) gets dev's
 * out values. */
int merge_vs(struct sl_accel *dev, struct sl_accel *ref, const struct sl_accel_merge_job *job,
	     size_t out, size_t blocks, size_t bloom, struct sl_accel_merge_job *res);
/* merge_vs with buffers as given; on -ENOSPC again with one need short by one (-ENOSPC, the
 * same needs) and then exactly the needs (success). */
void merge_vs_grow(struct sl_accel *dev, struct sl_accel *ref, const struct sl_accel_merge_job *job,
		   size_t out, size_t blocks, size_t bloom);

/* The device backends' merge comparisons against a reference (cpu), all through merge_vs:
 * one random job (round 0 and every sixth: big values); the named cases (newest wins and
 * tombstones, no runs, empty runs, nothing in range, lo == hi, 256 runs, 1 MiB values in
 * 64-byte blocks, an output far larger than its input, every refusal); and damaged input
 * (rounds of flipped bits, short blocks, damage behind valid CRCs, blocks out of order, hand-made
 * blocks, damage past hi that is never read). */
void merge_vs_random_round(struct sl_accel *dev, struct sl_accel *ref, int round);
void merge_vs_cases(struct sl_accel *dev, struct sl_accel *ref);
void merge_vs_corrupt(struct sl_accel *dev, struct sl_accel *ref, int rounds);

/* CRC32C and bloom filters on dev against ref, the same answers byte for byte. crc_vs: one
 * batch. crc_vs_cases: the check value, empty and NULL buffers, unaligned lengths across the
 * chunk size, a MiB and more, then rounds of random batches (the first of 20000 buffers).
 * bloom_build_vs: rounds of random builds over filters with bits already set, then every
 * refusal (the same return on both). bloom_probe_vs: seven filters (sizes 0 and 32, k 0, a
 * ragged tail, ordinary ones), rounds of batches over them or one of them, a which[] past the
 * filters, then dev's refusals. */
void crc_vs(struct sl_accel *dev, struct sl_accel *ref, const struct sl_accel_buf *b, size_t n);
void crc_vs_cases(struct sl_accel *dev, struct sl_accel *ref, int rounds);
void bloom_build_vs(struct sl_accel *dev, struct sl_accel *ref, int rounds);
void bloom_probe_vs(struct sl_accel *dev, struct sl_accel *ref, int rounds);

#endif
