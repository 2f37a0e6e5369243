/* xrt_shim_kernels.c - the XRT shim's compute units: each OpenCL kernel of kernels/ with the
 * argument layout of kernels/sl_kernel_abi.h, run over its whole index range with the
 * firmware's code (CRC32C by firmware/fw_kernels.c's tables, bloom build and probe by its
 * kernels over host/src/bloom.c, the merge by firmware/fw_merge.c). A kernel checks every offset,
 * length and table entry against its buffers before it writes a byte, as a card's kernel does
 * not: a layout bug in the host then ends the run in an error that names it, not in a crash.
 * Knows nothing of XRT's handles; xrt_shim.c calls these through the table at the end.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "fw.h"
#include "fw_kernels.h"
#include "fw_merge.h"
#include "sl_kernel_abi.h"
#include "xrt_shim_kernels.h"

#define CRC32C_POLY 0x82F63B78u /* reflected */
#define HASH_BATCH  256

/* The merge writes output block descriptors as the firmware lays them out; the kernels' layout
 * must be the same, field for field. */
_Static_assert(sizeof(struct slk_block) == sizeof(struct fw_out_block) &&
		       offsetof(struct slk_block, off) == offsetof(struct fw_out_block, off) &&
		       offsetof(struct slk_block, len) == offsetof(struct fw_out_block, len) &&
		       offsetof(struct slk_block, crc) == offsetof(struct fw_out_block, crc) &&
		       offsetof(struct slk_block, last_len) ==
			       offsetof(struct fw_out_block, last_len) &&
		       offsetof(struct slk_block, last) == offsetof(struct fw_out_block, last),
	       "slk_block and fw_out_block");
_Static_assert(SLK_DROP_TOMBS == FW_MERGE_DROP_TOMBSTONES, "merge flags");
_Static_assert(SLK_MAX_KEY == FW_MERGE_MAX_KEY, "key size");

/* The firmware's device state: only its CRC tables are used (kernels get pointers). */
static struct fw_device fwd;
/* x2n[k] = x^(2^k) mod P (reflected): shifting a CRC register over n zero bytes. */
static uint32_t x2n[32];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

/* [off, off + len) inside a buffer of size bytes. */
static int in_buf(uint64_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

/* n items of item bytes at off inside a buffer of size bytes. */
static int in_buf_n(uint64_t size, uint64_t off, uint64_t n, uint64_t item)
{
	return n <= UINT64_MAX / item && in_buf(size, off, n * item);
}

/* ---- CRC32C register arithmetic (a * b mod P, bit 31 being x^0) ------------------------------ */

static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;
	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return p;
}

/* The register crc advanced over n zero bytes. */
static uint32_t crc_shift(uint32_t crc, uint64_t n)
{
	uint32_t p = 1u << 31; /* x^0 */
	for (unsigned k = 3; n; n >>= 1, k++)
		if (n & 1)
			p = multmodp(x2n[k & 31], p);
	return multmodp(p, crc);
}

static void init_tables(void)
{
	fw_boot(&fwd);
	x2n[0] = 1u << 30; /* x^1 */
	for (int k = 1; k < 32; k++)
		x2n[k] = multmodp(x2n[k - 1], x2n[k - 1]);
}

void shim_kernels_init(void)
{
	pthread_once(&init_once, init_tables);
}

/* ---- slk_abi(report) ---------------------------------------------------------------------- */

static int k_abi(const struct shim_arg *a, char *err, size_t cap)
{
	struct slk_abi_report rep = {
		.version = SLK_ABI_VERSION,
		.size_crc_chunk = sizeof(struct slk_crc_chunk),
		.size_filter = sizeof(struct slk_filter),
		.size_params = sizeof(struct slk_merge_params),
		.size_run = sizeof(struct slk_run),
		.size_inblock = sizeof(struct slk_inblock),
		.size_block = sizeof(struct slk_block),
		.size_result = sizeof(struct slk_merge_result),
		.size_cursor = sizeof(struct slk_cursor),
	};
	if (a[0].size < sizeof(rep))
		return fail(err, cap, "slk_abi: report buffer of %" PRIu64 " bytes, %zu needed",
			    a[0].size, sizeof(rep));
	memcpy(a[0].mem, &rep, sizeof(rep));
	return 0;
}

/* ---- slk_crc32c(buf, chunks_off, n, acc_off) ----------------------------------------------
 * Each chunk's raw CRC (register 0 in), shifted over the bytes of its buffer after it, xored
 * into its buffer's accumulator; the first chunk adds ~0 shifted over the whole buffer. From
 * the firmware's CRC32C c of the chunk (register ~0 in, ~ out) that is shift(~c, after) for a
 * first chunk and shift(~c, after) ^ shift(~0, len + after) for the others. */

static int k_crc32c(const struct shim_arg *a, char *err, size_t cap)
{
	const struct shim_arg *b = &a[0];
	uint64_t coff = a[1].u, n = a[2].u, aoff = a[3].u;
	if (coff % 8 || aoff % 4 || !in_buf_n(b->size, coff, n, sizeof(struct slk_crc_chunk)))
		return fail(err, cap,
			    "slk_crc32c: %" PRIu64 " chunks at %" PRIu64 " (8-aligned), "
			    "accumulators at %" PRIu64 " (4-aligned): outside buf (%" PRIu64
			    " bytes)",
			    n, coff, aoff, b->size);
	for (uint64_t i = 0; i < n; i++) {
		struct slk_crc_chunk c;
		memcpy(&c, b->mem + coff + i * sizeof(c), sizeof(c));
		uint64_t slot = c.slot & ~SLK_CRC_FIRST;
		if (!in_buf(b->size, c.off, c.len) || c.after > UINT64_MAX - c.len ||
		    !in_buf_n(b->size, aoff, slot + 1, 4))
			return fail(err, cap,
				    "slk_crc32c: chunk %" PRIu64 " ([%" PRIu64 ", +%u), "
				    "accumulator %" PRIu64 ") outside buf (%" PRIu64 " bytes)",
				    i, c.off, c.len, slot, b->size);
	}
	for (uint64_t i = 0; i < n; i++) {
		struct slk_crc_chunk c;
		memcpy(&c, b->mem + coff + i * sizeof(c), sizeof(c));
		uint8_t *acc = b->mem + aoff + 4 * (uint64_t)(c.slot & ~SLK_CRC_FIRST);
		uint32_t r = crc_shift(~fw_crc32c(&fwd, b->mem + c.off, c.len), c.after), v;
		if (!(c.slot & SLK_CRC_FIRST))
			r ^= crc_shift(0xFFFFFFFFu, c.len + c.after);
		memcpy(&v, acc, 4);
		v ^= r;
		memcpy(acc, &v, 4);
	}
	return 0;
}

/* ---- slk_bloom_build(buf, hashes_off, n, filter_off, nblocks, k) ------------------------------
 */

static int k_bloom_build(const struct shim_arg *a, char *err, size_t cap)
{
	const struct shim_arg *b = &a[0];
	uint64_t hoff = a[1].u, n = a[2].u, foff = a[3].u, nb = a[4].u;
	uint32_t k = (uint32_t)a[5].u;
	if (hoff % 8 || !in_buf_n(b->size, hoff, n, 8))
		return fail(err, cap,
			    "slk_bloom_build: %" PRIu64 " hashes at %" PRIu64
			    " (8-aligned) outside buf (%" PRIu64 " bytes)",
			    n, hoff, b->size);
	if (foff % SL_BLOOM_BLOCK || nb == 0 || !in_buf_n(b->size, foff, nb, SL_BLOOM_BLOCK))
		return fail(err, cap,
			    "slk_bloom_build: filter of %" PRIu64 " blocks at %" PRIu64
			    " (64-aligned, at least one block) outside buf (%" PRIu64 " bytes)",
			    nb, foff, b->size);
	if (k == 0 || k > 64)
		return fail(err, cap, "slk_bloom_build: %u probes (1..64)", k);
	fw_kernel_bloom_build(b->mem + hoff, n, k, b->mem + foff, nb * SL_BLOOM_BLOCK);
	return 0;
}

/* ---- slk_bloom_probe(buf, hashes_off, which_off, filters_off, n, out_off) -------------------- */

static int k_bloom_probe(const struct shim_arg *a, char *err, size_t cap)
{
	const struct shim_arg *b = &a[0];
	uint64_t hoff = a[1].u, woff = a[2].u, foff = a[3].u, n = a[4].u, ooff = a[5].u;
	int which = woff != UINT64_MAX;
	if (hoff % 8 || !in_buf_n(b->size, hoff, n, 8) || !in_buf(b->size, ooff, n) ||
	    (which && (woff % 4 || !in_buf_n(b->size, woff, n, 4))) || foff % 8)
		return fail(err, cap,
			    "slk_bloom_probe: %" PRIu64 " hashes at %" PRIu64 ", which at %" PRIu64
			    ", answers at %" PRIu64 " or filters at %" PRIu64 " misaligned or "
			    "outside buf (%" PRIu64 " bytes)",
			    n, hoff, woff, ooff, foff, b->size);
	uint64_t nf = 1;
	for (uint64_t i = 0; which && i < n; i++) {
		uint32_t w;
		memcpy(&w, b->mem + woff + 4 * i, 4);
		nf = (uint64_t)w + 1 > nf ? (uint64_t)w + 1 : nf;
	}
	if (!in_buf_n(b->size, foff, nf, sizeof(struct slk_filter)))
		return fail(err, cap,
			    "slk_bloom_probe: %" PRIu64 " filter descriptors at %" PRIu64
			    " outside buf (%" PRIu64 " bytes)",
			    nf, foff, b->size);
	/* The firmware's filter table: offsets into buf, sizes in bytes. */
	struct fw_filter *t = calloc(nf, sizeof(*t));
	if (!t)
		return fail(err, cap, "slk_bloom_probe: no memory for %" PRIu64 " filters", nf);
	for (uint64_t f = 0; f < nf; f++) {
		struct slk_filter s;
		memcpy(&s, b->mem + foff + f * sizeof(s), sizeof(s));
		if (s.off % SL_BLOOM_BLOCK ||
		    !in_buf_n(b->size, s.off, s.nblocks, SL_BLOOM_BLOCK)) {
			free(t);
			return fail(err, cap,
				    "slk_bloom_probe: filter %" PRIu64 " (%" PRIu64
				    " blocks at %" PRIu64 ", 64-aligned) outside buf (%" PRIu64
				    " bytes)",
				    f, s.nblocks, s.off, b->size);
		}
		t[f] = (struct fw_filter){ .off = s.off,
					   .size = s.nblocks * SL_BLOOM_BLOCK,
					   .k = s.k };
	}
	fw_kernel_bloom_probe((const uint8_t *)t, b->mem, which ? b->mem + woff : NULL,
			      b->mem + hoff, n, b->mem + ooff);
	free(t);
	return 0;
}

/* ---- slk_merge(in, out, blocks, scratch, res) ------------------------------------------------
 * fw_merge over the kernel's tables in `in`, writing out and blocks in place (as far as out_cap
 * and blocks_cap go: past them it only measures, as slk_merge does) and its filter into memory
 * of its own (slk_merge_bloom makes the job's). An input block's CRC is the accumulator the
 * slk_crc32c pre-pass left, as in the kernel, so the host's chunking is checked too. */

struct merge_src {
	const uint8_t *in;
	uint64_t runs_off, blocks_off, acc_off;
	const uint8_t *last; /* the block handed out last, its length and index */
	uint64_t last_len;
	uint64_t last_gi;
};

static struct slk_run src_run(const struct merge_src *s, uint32_t run)
{
	struct slk_run r;
	memcpy(&r, s->in + s->runs_off + (uint64_t)run * sizeof(r), sizeof(r));
	return r;
}

static uint64_t src_run_blocks(void *ctx, uint32_t run)
{
	return src_run(ctx, run).n_blocks;
}

static void src_block(void *ctx, uint32_t run, uint64_t b, const uint8_t **p, uint64_t *len)
{
	struct merge_src *s = ctx;
	struct slk_inblock ib;
	uint64_t gi = src_run(s, run).first_block + b;
	memcpy(&ib, s->in + s->blocks_off + gi * sizeof(ib), sizeof(ib));
	*p = s->in + ib.off;
	*len = ib.len;
	s->last = *p;
	s->last_len = ib.len;
	s->last_gi = gi;
}

/* The merge asks for an input block's CRC right after the block itself (its first len - 4
 * bytes): that one comes from the pre-pass; output blocks' are computed. */
static uint32_t src_crc32c(void *ctx, const uint8_t *p, uint64_t n)
{
	const struct merge_src *s = ctx;
	if (p == s->last && n + 4 == s->last_len) {
		uint32_t acc;
		memcpy(&acc, s->in + s->acc_off + 4 * s->last_gi, 4);
		return acc ^ 0xFFFFFFFFu;
	}
	return fw_crc32c(&fwd, p, n);
}

/* Every table the merge reads lies inside `in`; the output capacities inside their buffers. */
static int merge_check(const struct shim_arg *a, const struct slk_merge_params *m,
		       uint64_t *input_bytes, char *err, size_t cap)
{
	uint64_t in = a[0].size, k = m->n_runs, nb = m->n_inblocks;
	if (k > FW_MERGE_MAX_RUNS || m->flags & ~SLK_DROP_TOMBS || m->block_bytes < 64 ||
	    m->restart_interval == 0)
		return fail(err, cap,
			    "slk_merge: bad parameters (%" PRIu64 " runs, flags %#x, "
			    "block_bytes %u, restart_interval %u)",
			    k, m->flags, m->block_bytes, m->restart_interval);
	if (m->runs_off % 4 || !in_buf_n(in, m->runs_off, k, sizeof(struct slk_run)) ||
	    m->blocks_off % 8 || !in_buf_n(in, m->blocks_off, nb, sizeof(struct slk_inblock)) ||
	    m->acc_off % 4 || !in_buf_n(in, m->acc_off, nb, 4) ||
	    !in_buf(in, m->lo_off, m->lo_len) || !in_buf(in, m->hi_off, m->hi_len))
		return fail(err, cap,
			    "slk_merge: a table of the parameters (runs at %" PRIu64
			    ", blocks at %" PRIu64 ", accumulators at %" PRIu64 ", lo, hi) outside "
			    "in (%" PRIu64 " bytes)",
			    m->runs_off, m->blocks_off, m->acc_off, in);
	/* Scratch: the cursors at 0, the tree and winners at tree_off, the two keys at key_off,
	 * apart from each other (the shim's merge keeps its state elsewhere, the kernel there). */
	uint64_t scr = a[3].size, cur_end = (k ? k : 1) * sizeof(struct slk_cursor);
	uint64_t tree_end = m->tree_off + 4 * (3 * k + 1), key_end = m->key_off + 2 * SLK_MAX_KEY;
	int apart = m->tree_off >= cur_end && m->key_off >= cur_end &&
		    (m->key_off >= tree_end || key_end <= m->tree_off);
	if (m->out_cap > a[1].size ||
	    !in_buf_n(a[2].size, 0, m->blocks_cap, sizeof(struct slk_block)) ||
	    !in_buf(scr, 0, cur_end) || !in_buf_n(scr, m->tree_off, 3 * k + 1, 4) ||
	    !in_buf(scr, m->key_off, 2 * SLK_MAX_KEY) || !apart ||
	    a[4].size < sizeof(struct slk_merge_result))
		return fail(err, cap,
			    "slk_merge: out_cap %" PRIu64 " (out: %" PRIu64 " bytes), "
			    "blocks_cap %" PRIu64 " (blocks: %" PRIu64 " bytes), scratch (%" PRIu64
			    " bytes) or res (%" PRIu64 " bytes) too small",
			    m->out_cap, a[1].size, m->blocks_cap, a[2].size, scr, a[4].size);
	for (uint64_t r = 0; r < k; r++) {
		struct slk_run run;
		memcpy(&run, a[0].mem + m->runs_off + r * sizeof(run), sizeof(run));
		if ((uint64_t)run.first_block + run.n_blocks > nb)
			return fail(err, cap,
				    "slk_merge: run %" PRIu64 " (blocks %u + %u) past the "
				    "%" PRIu64 " block descriptors",
				    r, run.first_block, run.n_blocks, nb);
	}
	*input_bytes = 0;
	for (uint64_t i = 0; i < nb; i++) {
		struct slk_inblock ib;
		memcpy(&ib, a[0].mem + m->blocks_off + i * sizeof(ib), sizeof(ib));
		if (!in_buf(in, ib.off, ib.len))
			return fail(err, cap,
				    "slk_merge: input block %" PRIu64 " ([%" PRIu64 ", +%" PRIu64
				    ")) outside in (%" PRIu64 " bytes)",
				    i, ib.off, ib.len, in);
		*input_bytes += ib.len;
	}
	return 0;
}

static int k_merge(const struct shim_arg *a, char *err, size_t cap)
{
	struct slk_merge_params m;
	uint64_t input_bytes = 0;
	if (a[0].size < sizeof(m))
		return fail(err, cap, "slk_merge: in (%" PRIu64 " bytes) holds no parameters",
			    a[0].size);
	memcpy(&m, a[0].mem, sizeof(m));
	if (merge_check(a, &m, &input_bytes, err, cap))
		return -1;
	/* The filter here is a by-product (one bit per key, at most one key per 5 input
	 * bytes); scratch is the firmware's own. Both are the compute unit's local memory. */
	size_t bloom_cap = sl__bloom_bytes(input_bytes / 5 + 1, 1);
	uint64_t scratch_len = fw_merge_scratch_bytes(m.n_runs, m.block_bytes, input_bytes);
	uint8_t *bloom = malloc(bloom_cap);
	void *scratch = malloc(scratch_len);
	if (!bloom || !scratch) {
		free(bloom);
		free(scratch);
		return fail(err, cap, "slk_merge: no local memory (%zu + %" PRIu64 " bytes)",
			    bloom_cap, scratch_len);
	}
	struct merge_src src = { .in = a[0].mem,
				 .runs_off = m.runs_off,
				 .blocks_off = m.blocks_off,
				 .acc_off = m.acc_off };
	struct fw_merge_io io = {
		.ctx = &src, .run_blocks = src_run_blocks, .block = src_block, .crc32c = src_crc32c
	};
	struct fw_merge_params p = {
		.n_runs = m.n_runs,
		.flags = m.flags,
		.block_bytes = m.block_bytes,
		.restart_interval = m.restart_interval,
		.bits_per_key = 1,
		.lo = a[0].mem + m.lo_off,
		.lo_len = m.lo_len,
		.hi = a[0].mem + m.hi_off,
		.hi_len = m.hi_len,
		.input_bytes = input_bytes,
		.out = m.out_cap ? a[1].mem : NULL,
		.out_cap = m.out_cap,
		.blocks = m.blocks_cap ? a[2].mem : NULL,
		.blocks_cap = m.blocks_cap,
		.bloom = bloom,
		.bloom_cap = bloom_cap,
		.scratch = scratch,
		.scratch_len = scratch_len,
	};
	struct fw_merge_result fr;
	uint64_t need = 0;
	uint32_t st = fw_merge(&p, &io, &fr, &need);
	free(bloom);
	free(scratch);
	struct slk_merge_result r;
	memset(&r, 0, sizeof(r));
	switch (st) {
	case FW_OK:
		r.out_len = fr.out_len;
		r.n_blocks = fr.n_blocks;
		/* slk_merge leaves the CRCs to slk_merge_crc: descriptors say 0, trailers are
		 * not written. The firmware made them; take them back out. */
		for (uint64_t i = 0; i < fr.n_blocks; i++) {
			uint8_t *e = a[2].mem + i * sizeof(struct slk_block);
			struct slk_block d;
			memcpy(&d, e, sizeof(d));
			memset(e + offsetof(struct slk_block, crc), 0, 4);
			memset(a[1].mem + d.off + d.len - 4, 0xDB, 4);
		}
		break;
	case FW_ENOSPC:
		/* Only out or blocks can be short here: what the job needs, as slk_merge says. */
		if (fr.need_bloom > bloom_cap)
			return fail(err, cap,
				    "slk_merge: the filter by-product needs %" PRIu64
				    " bytes, %zu held",
				    fr.need_bloom, bloom_cap);
		r.out_len = fr.need_out;
		r.n_blocks = fr.need_blocks;
		break;
	case FW_ECORRUPT:
		r.status = SLK_MERGE_CORRUPT;
		r.bad_run = fr.bad_run;
		r.bad_block = fr.bad_block;
		break;
	case FW_EFBIG:
		r.status = SLK_MERGE_FBIG;
		break;
	default:
		return fail(err, cap,
			    "slk_merge: the firmware's merge refused the job (status %u, "
			    "scratch %" PRIu64 " of %" PRIu64 ")",
			    st, scratch_len, need);
	}
	r.entries_in = fr.entries_in;
	r.entries_out = fr.entries_out;
	r.dropped_older = fr.dropped_older;
	r.dropped_tombstones = fr.dropped_tombstones;
	r.smallest_len = fr.smallest_written;
	memcpy(r.smallest, fr.smallest,
	       fr.smallest_written < SLK_MAX_KEY ? fr.smallest_written : SLK_MAX_KEY);
	memcpy(a[4].mem, &r, sizeof(r));
	return 0;
}

/* ---- slk_merge_crc(out, blocks, n) and slk_merge_bloom(out, blocks, n, filter, nblocks, k) --- */

static int blocks_check(const char *name, const struct shim_arg *out, const struct shim_arg *blk,
			uint64_t n, char *err, size_t cap)
{
	if (!in_buf_n(blk->size, 0, n, sizeof(struct slk_block)))
		return fail(err, cap,
			    "%s: %" PRIu64 " block descriptors outside blocks (%" PRIu64 " bytes)",
			    name, n, blk->size);
	for (uint64_t i = 0; i < n; i++) {
		struct slk_block d;
		memcpy(&d, blk->mem + i * sizeof(d), sizeof(d));
		if (d.len < SL_BLOCK_MIN || !in_buf(out->size, d.off, d.len))
			return fail(err, cap,
				    "%s: block %" PRIu64 " ([%" PRIu64 ", +%u)) outside "
				    "out (%" PRIu64 " bytes) or shorter than a block",
				    name, i, d.off, d.len, out->size);
	}
	return 0;
}

static int k_merge_crc(const struct shim_arg *a, char *err, size_t cap)
{
	uint64_t n = a[2].u;
	if (blocks_check("slk_merge_crc", &a[0], &a[1], n, err, cap))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *e = a[1].mem + i * sizeof(struct slk_block);
		struct slk_block d;
		memcpy(&d, e, sizeof(d));
		uint32_t crc = fw_crc32c(&fwd, a[0].mem + d.off, d.len - 4);
		sl__block_put_u32(a[0].mem + d.off + d.len - 4, crc);
		memcpy(e + offsetof(struct slk_block, crc), &crc, 4);
	}
	return 0;
}

static int k_merge_bloom(const struct shim_arg *a, char *err, size_t cap)
{
	uint64_t n = a[2].u, nb = a[4].u;
	uint32_t k = (uint32_t)a[5].u;
	if (blocks_check("slk_merge_bloom", &a[0], &a[1], n, err, cap))
		return -1;
	if (nb == 0 || !in_buf_n(a[3].size, 0, nb, SL_BLOOM_BLOCK) || k == 0 || k > 64)
		return fail(err, cap,
			    "slk_merge_bloom: filter of %" PRIu64 " blocks (filter: %" PRIu64
			    " bytes), %u probes",
			    nb, a[3].size, k);
	uint64_t h[HASH_BATCH];
	size_t nh = 0;
	for (uint64_t i = 0; i < n; i++) {
		struct slk_block d;
		struct sl_block blk;
		struct sl_block_iter it;
		memcpy(&d, a[1].mem + i * sizeof(d), sizeof(d));
		if (sl__block_parse(&blk, a[0].mem + d.off, d.len) < 0)
			return fail(err, cap,
				    "slk_merge_bloom: output block %" PRIu64 " does not "
				    "parse",
				    i);
		it.klen = 0;
		sl__block_iter_start(&it, &blk, 0, 0);
		int r;
		while ((r = sl__block_iter_next(&it)) > 0) {
			h[nh++] = sl__bloom_hash(it.key, it.klen);
			if (nh == HASH_BATCH) {
				sl__bloom_add(a[3].mem, nb * SL_BLOOM_BLOCK, h, nh, k);
				nh = 0;
			}
		}
		if (r < 0)
			return fail(err, cap,
				    "slk_merge_bloom: output block %" PRIu64 " is damaged "
				    "(its keys are partly in the filter)",
				    i);
	}
	if (nh)
		sl__bloom_add(a[3].mem, nb * SL_BLOOM_BLOCK, h, nh, k);
	return 0;
}

/* ---- The table -------------------------------------------------------------------------------
 * Signatures as the .cl files of kernels/ declare the kernels: a __global pointer is g, uint u32,
 * ulong u64. xrt_shim.c refuses an xclbin that declares a kernel otherwise. */

static const struct shim_kernel_impl kernels[] = {
	{ "slk_abi", "g", k_abi },
	{ "slk_crc32c", "g u64 u64 u64", k_crc32c },
	{ "slk_bloom_build", "g u64 u64 u64 u64 u32", k_bloom_build },
	{ "slk_bloom_probe", "g u64 u64 u64 u64 u64", k_bloom_probe },
	{ "slk_merge", "g g g g g", k_merge },
	{ "slk_merge_crc", "g g u64", k_merge_crc },
	{ "slk_merge_bloom", "g g u64 g u64 u32", k_merge_bloom },
};

const struct shim_kernel_impl *shim_kernel_find(const char *name)
{
	for (size_t i = 0; i < sizeof(kernels) / sizeof(kernels[0]); i++)
		if (!strcmp(kernels[i].name, name))
			return &kernels[i];
	return NULL;
}
