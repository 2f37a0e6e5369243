/* fw_kernels.c - the device's kernels, called by the command processor (fw_cmd.c) once every
 * reference and table entry of a command has been checked: CRC32C (slice-by-8 over tables that
 * fw_boot builds in the device's own state: the host's ISA-L is not on a device), bloom build
 * and probe (bloom.c's layout, bit for bit), and the merge (fw_merge.c) reading its run and
 * block tables in device memory. Kernels trust their arguments; they never validate.
 * Freestanding.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bloom.h"
#include "fw.h"
#include "fw_kernels.h"
#include "fw_merge.h"

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, reflected */

void fw_boot(struct fw_device *d)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int b = 0; b < 8; b++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
		d->crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++) {
			uint32_t c = d->crc_table[t - 1][i];
			d->crc_table[t][i] = (c >> 8) ^ d->crc_table[0][c & 0xff];
		}
}

static inline uint32_t le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

uint32_t fw_crc32c(const struct fw_device *d, const uint8_t *p, uint64_t n)
{
	const uint32_t(*t)[256] = d->crc_table;
	uint32_t crc = 0xFFFFFFFFu;
	/* Eight bytes a step: the first four folded into the CRC, each byte then looked up in
	 * the table that advances it over the bytes still to come. */
	for (; n >= 8; p += 8, n -= 8) {
		uint32_t lo = le32(p) ^ crc, hi = le32(p + 4);
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		      t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
	}
	for (; n; p++, n--)
		crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

void fw_kernel_crc32c(const struct fw_device *d, const uint8_t *segs, const uint8_t *data,
		      uint8_t *out, uint64_t n, uint64_t *bytes)
{
	uint64_t total = 0;
	for (uint64_t i = 0; i < n; i++) {
		struct fw_seg s;
		memcpy(&s, segs + i * sizeof(s), sizeof(s));
		uint32_t crc = fw_crc32c(d, data + s.off, s.len);
		memcpy(out + 4 * i, &crc, 4);
		total += s.len;
	}
	*bytes = total;
}

/* Hashes are read in batches into an aligned stack array: the reference may hand them at any
 * offset in device memory. */
#define HASH_BATCH 256

void fw_kernel_bloom_build(const uint8_t *hashes, uint64_t n, uint32_t k, uint8_t *filter,
			   uint64_t size)
{
	uint64_t h[HASH_BATCH];
	if (!size)
		return;
	for (uint64_t i = 0; i < n; i += HASH_BATCH) {
		uint64_t m = n - i < HASH_BATCH ? n - i : HASH_BATCH;
		memcpy(h, hashes + 8 * i, 8 * m);
		sl__bloom_add(filter, size, h, m, k);
	}
}

void fw_kernel_bloom_probe(const uint8_t *table, const uint8_t *bits, const uint8_t *which,
			   const uint8_t *hashes, uint64_t n, uint8_t *out)
{
	uint64_t h[HASH_BATCH];
	struct fw_filter f;
	if (!which) {
		/* One filter for every key: the prefetching batch probe. */
		memcpy(&f, table, sizeof(f));
		for (uint64_t i = 0; i < n; i += HASH_BATCH) {
			uint64_t m = n - i < HASH_BATCH ? n - i : HASH_BATCH;
			memcpy(h, hashes + 8 * i, 8 * m);
			sl__bloom_probe_batch(bits + f.off, f.size, h, m, f.k, out + i);
		}
		return;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint32_t w;
		uint64_t hash;
		memcpy(&w, which + 4 * i, 4);
		memcpy(&hash, hashes + 8 * i, 8);
		memcpy(&f, table + (uint64_t)w * sizeof(f), sizeof(f));
		out[i] = (uint8_t)sl__bloom_may_contain(bits + f.off, f.size, hash, f.k);
	}
}

/* ---- The merge: its input through the job's tables in device memory ------------------------ */

struct merge_src {
	const struct fw_device *d;
	const uint8_t *runs; /* struct fw_merge_run[n_runs] */
	const uint8_t *segs; /* struct fw_seg[n_blocks], offsets into data */
	const uint8_t *data;
};

static uint64_t src_run_blocks(void *ctx, uint32_t run)
{
	const struct merge_src *s = ctx;
	struct fw_merge_run r;
	memcpy(&r, s->runs + (uint64_t)run * sizeof(r), sizeof(r));
	return r.n_blocks;
}

static void src_block(void *ctx, uint32_t run, uint64_t b, const uint8_t **p, uint64_t *len)
{
	const struct merge_src *s = ctx;
	struct fw_merge_run r;
	struct fw_seg g;
	memcpy(&r, s->runs + (uint64_t)run * sizeof(r), sizeof(r));
	memcpy(&g, s->segs + (r.first + b) * sizeof(g), sizeof(g));
	*p = s->data + g.off;
	*len = g.len;
}

static uint32_t src_crc32c(void *ctx, const uint8_t *p, uint64_t n)
{
	const struct merge_src *s = ctx;
	return fw_crc32c(s->d, p, n);
}

uint32_t fw_kernel_merge(const struct fw_device *d, const struct fw_merge_tables *t,
			 struct fw_merge_params *p, struct fw_merge_result *res, uint64_t *need)
{
	struct merge_src s = { d, t->runs, t->segs, t->data };
	struct fw_merge_io io = {
		.ctx = &s,
		.run_blocks = src_run_blocks,
		.block = src_block,
		.crc32c = src_crc32c,
	};
	return fw_merge(p, &io, res, need);
}
