/* accel_cpu.c - the reference backend: CRC32C by ISA-L (which picks the fastest kernel for the
 * CPU it runs on at load time), and the fused merge job on the host's own CPU, run by the same
 * freestanding engine the device firmware runs (firmware/fw_merge.c: a loser tree over one
 * cursor per run, each walking its blocks with the block codec, block.c; the output encoded by
 * the same codec and the filter laid out by bloom.c). No state outlives a call (a merge
 * allocates its scratch per job), so every call is thread-safe.
 */
#include <errno.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accel.h"
#include "block.h"
#include "bloom.h"
#include "fw_merge.h"
#include "sluice.h"

#define DEFAULT_BLOCK_BYTES 4096u

static int cpu_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	(void)cfg, (void)why, (void)why_cap;
	*dev = NULL;
	return 0;
}

static void cpu_close(void *dev)
{
	(void)dev;
}

static void cpu_info(void *dev, struct sl_accel_info *out)
{
	(void)dev;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "cpu");
	snprintf(out->device, sizeof(out->device), "host CPU (ISA-L CRC32C, blocked bloom, "
		 "loser-tree merge)");
	snprintf(out->detail, sizeof(out->detail), "the reference backend; %ld online CPUs",
		 sysconf(_SC_NPROCESSORS_ONLN));
}

static int cpu_bloom_build(void *dev, const uint64_t *hashes, size_t n, uint32_t k,
			   uint8_t *filter, size_t size)
{
	(void)dev;
	if (size % SL_BLOOM_BLOCK || k == 0 || k > 64 || (n && !hashes) || (size && !filter))
		return -EINVAL;
	if (size)
		sl__bloom_add(filter, size, hashes, n, k);
	return 0;
}

static int cpu_bloom_probe(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
			   const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	(void)dev;
	if (n && (!hashes || !out || !nfilters || !filters))
		return -EINVAL;
	if (!which) {
		sl__bloom_probe_batch(filters[0].bits, filters[0].size, hashes, n, filters[0].k,
				      out);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (which[i] >= nfilters)
			return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct sl_accel_filter *f = &filters[which[i]];
		out[i] = (uint8_t)sl__bloom_may_contain(f->bits, f->size, hashes[i], f->k);
	}
	return 0;
}

static uint32_t crc32c(const void *data, size_t len)
{
	const unsigned char *p = data;
	/* ISA-L takes an int length and no final inversion: chain large buffers. */
	unsigned int crc = 0xFFFFFFFFu;
	while (len > (size_t)INT_MAX) {
		crc = crc32_iscsi((unsigned char *)p, INT_MAX, crc);
		p += INT_MAX;
		len -= INT_MAX;
	}
	crc = crc32_iscsi((unsigned char *)p, (int)len, crc);
	return crc ^ 0xFFFFFFFFu;
}

static int cpu_crc32c_batch(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	(void)dev;
	for (size_t i = 0; i < n; i++)
		out[i] = crc32c(bufs[i].data, bufs[i].len);
	return 0;
}

/* ---- The merge job ------------------------------------------------------------------------ */

/* The engine is the firmware's (firmware/fw_merge.c, freestanding): the job's runs through its
 * block callback, ISA-L for its CRCs, the job's buffers as its outputs (the block table in
 * place: struct sl_accel_block is struct fw_out_block's layout), its scratch from the heap. */
_Static_assert(sizeof(struct sl_accel_block) == sizeof(struct fw_out_block) &&
		       offsetof(struct sl_accel_block, off) == offsetof(struct fw_out_block, off) &&
		       offsetof(struct sl_accel_block, len) == offsetof(struct fw_out_block, len) &&
		       offsetof(struct sl_accel_block, crc) == offsetof(struct fw_out_block, crc) &&
		       offsetof(struct sl_accel_block, last_len) ==
			       offsetof(struct fw_out_block, last_len) &&
		       offsetof(struct sl_accel_block, last) == offsetof(struct fw_out_block, last),
	       "the job's block table is the firmware's");
_Static_assert(SL_ACCEL_MAX_RUNS <= FW_MERGE_MAX_RUNS, "every job's runs fit the engine");

static uint64_t job_run_blocks(void *ctx, uint32_t run)
{
	const struct sl_accel_merge_job *j = ctx;
	return j->runs[run].n_blocks;
}

static void job_block(void *ctx, uint32_t run, uint64_t b, const uint8_t **p, uint64_t *len)
{
	const struct sl_accel_merge_job *j = ctx;
	*p = j->runs[run].blocks[b].data;
	*len = j->runs[run].blocks[b].len;
}

static uint32_t isal_crc32c(void *ctx, const uint8_t *p, uint64_t n)
{
	(void)ctx;
	return crc32c(p, (size_t)n);
}

int sl__accel_fw_merge_result(struct sl_accel_merge_job *j, const struct fw_merge_result *res,
			      uint32_t status)
{
	if (status != FW_OK && status != FW_ENOSPC && status != FW_ECORRUPT && status != FW_EFBIG)
		return status == FW_EARG ? -EINVAL : -EIO;
	j->out_len = res->out_len;
	j->n_blocks = res->n_blocks;
	j->bloom_len = res->bloom_len;
	j->bloom_probes = res->bloom_probes;
	j->entries_in = res->entries_in;
	j->entries_out = res->entries_out;
	j->dropped_older = res->dropped_older;
	j->dropped_tombstones = res->dropped_tombstones;
	j->need_out = res->need_out;
	j->need_blocks = res->need_blocks;
	j->need_bloom = res->need_bloom;
	j->bad_run = res->bad_run;
	j->bad_block = res->bad_block;
	/* The first output key goes into smallest as the merge writes it, whatever the end. */
	if (res->smallest_written <= SL_ACCEL_MAX_KEY)
		memcpy(j->smallest, res->smallest, res->smallest_written);
	j->smallest_len = res->smallest_len;
	switch (status) {
	case FW_ENOSPC:
		return -ENOSPC;
	case FW_ECORRUPT:
		return SL_ECORRUPT;
	case FW_EFBIG:
		return -EFBIG;
	}
	return 0;
}

static int cpu_merge(void *dev, struct sl_accel_merge_job *j)
{
	(void)dev;
	int r = sl__accel_merge_check(j);
	if (r < 0)
		return r;
	uint64_t input = 0;
	for (size_t i = 0; i < j->n_runs; i++)
		for (size_t b = 0; b < j->runs[i].n_blocks; b++)
			input += j->runs[i].blocks[b].len;
	/* Scratch: the engine's fixed part and room for a hash of every key the input can hold
	 * (an entry takes 5 bytes at least). Only what the job touches is ever paged in. */
	uint32_t bb = j->block_bytes ? j->block_bytes : DEFAULT_BLOCK_BYTES;
	uint64_t scratch_len = fw_merge_scratch_bytes(j->n_runs, bb, input) + 8 * (input / 5 + 1);
	void *scratch = scratch_len <= SIZE_MAX ? malloc((size_t)scratch_len) : NULL;
	if (!scratch)
		return -ENOMEM;
	struct fw_merge_io io = {
		.ctx = j, .run_blocks = job_run_blocks, .block = job_block, .crc32c = isal_crc32c
	};
	struct fw_merge_params p = {
		.n_runs = (uint32_t)j->n_runs,
		.flags = j->flags,
		.block_bytes = j->block_bytes,
		.restart_interval = j->restart_interval,
		.bits_per_key = j->bits_per_key,
		.lo = j->lo,
		.hi = j->hi,
		.lo_len = j->lo_len,
		.hi_len = j->hi_len,
		.input_bytes = input,
		.out = j->out_cap ? j->out : NULL,
		.out_cap = j->out_cap,
		.blocks = (uint8_t *)j->blocks,
		.blocks_cap = j->blocks_cap,
		.bloom = j->bloom,
		.bloom_cap = j->bloom_cap,
		.scratch = scratch,
		.scratch_len = scratch_len,
	};
	struct fw_merge_result res;
	uint64_t need = 0;
	uint32_t st = fw_merge(&p, &io, &res, &need);
	free(scratch);
	return sl__accel_fw_merge_result(j, &res, st);
}

const struct sl_accel_ops sl__accel_cpu_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "cpu",
	.open = cpu_open,
	.close = cpu_close,
	.info = cpu_info,
	.crc32c_batch = cpu_crc32c_batch,
	.bloom_build = cpu_bloom_build,
	.bloom_probe = cpu_bloom_probe,
	.merge = cpu_merge,
};
