/* fw_cmd.c - the command processor: one descriptor in, one completion out. It reads the
 * descriptor once (a driver may rewrite the ring entry meanwhile), checks the opcode, flags,
 * arguments and reserved fields, resolves every reference through the buffer table against
 * device memory with overflow-safe arithmetic, refuses written references that overlap others,
 * checks every table entry (CRC segments, filters, merge runs and blocks) against the buffer it
 * points into, and only then dispatches to a kernel (fw_kernels.c). Any failure before dispatch
 * is an error completion and leaves device memory as it was. Freestanding: fw_abi.h says the
 * formats, fw.h the contract.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fw.h"
#include "fw_kernels.h"
#include "fw_merge.h"

/* A resolved reference: len bytes at p, which is abs bytes into device memory. */
struct rref {
	uint8_t *p;
	uint64_t abs, len;
	int null;
};

/* Per opcode: the references it uses and writes (bit i: reference i), how many arguments it
 * takes and which flags it knows. */
struct op_spec {
	uint8_t refs, writes, nargs;
	uint32_t flags;
};

static const struct op_spec specs[] = {
	[FW_OP_CRC32C] = { 0x07, 0x04, 1, 0 },
	[FW_OP_BLOOM_BUILD] = { 0x03, 0x02, 2, 0 },
	[FW_OP_BLOOM_PROBE] = { 0x1f, 0x10, 2, 0 },
	[FW_OP_MERGE] = { 0x7f, 0x7c, 3, FW_MERGE_DROP_TOMBSTONES },
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static uint32_t fail(struct fw_completion *c, uint32_t status, uint32_t detail, uint64_t r0)
{
	c->detail = detail;
	c->result[0] = r0;
	return status;
}

/* Resolve a reference: the buffer table entry its handle names must be live and lie inside
 * device memory, and [off, off + len) inside the buffer. The entry is read with atomics, and
 * its handle again after base and size: a buffer freed or reused meanwhile is refused. */
static uint32_t resolve(const struct fw_device *d, const struct fw_ref *r, struct rref *out,
			struct fw_completion *c, uint32_t i)
{
	if (r->handle == 0) {
		if (r->off || r->len)
			return fail(c, FW_EHANDLE, i, 0);
		/* Never dereferenced (length 0), but a valid pointer for offset arithmetic. */
		*out = (struct rref){ d->mem, 0, 0, 1 };
		return FW_OK;
	}
	uint32_t idx = r->handle & FW_HANDLE_INDEX_MASK;
	if (idx >= d->n_bufs)
		return fail(c, FW_EHANDLE, i, 0);
	const struct fw_buffer *b = &d->bufs[idx];
	uint32_t h = __atomic_load_n(&b->handle, __ATOMIC_ACQUIRE);
	/* Acquire loads: the second look at the handle comes after base and size were read. */
	uint64_t base = __atomic_load_n(&b->base, __ATOMIC_ACQUIRE);
	uint64_t size = __atomic_load_n(&b->size, __ATOMIC_ACQUIRE);
	if (h != r->handle || __atomic_load_n(&b->handle, __ATOMIC_RELAXED) != h)
		return fail(c, FW_EHANDLE, i, 0);
	if (base > d->mem_size || size > d->mem_size - base)
		return fail(c, FW_EHANDLE, i, 0);
	if (r->off > size || r->len > size - r->off)
		return fail(c, FW_ERANGE, i, 0);
	*out = (struct rref){ d->mem + base + r->off, base + r->off, r->len, 0 };
	return FW_OK;
}

/* The descriptor's shape: known opcode, no unknown flags, unused arguments, reserved fields and
 * unused references zero; every used reference resolved; no written one overlapping another. */
static uint32_t check_desc(const struct fw_device *d, const struct fw_desc *x, struct rref *rr,
			   struct fw_completion *c)
{
	if (x->opcode == 0 || x->opcode >= NSPECS)
		return fail(c, FW_EOPCODE, 0, x->opcode);
	const struct op_spec *s = &specs[x->opcode];
	if (x->flags & ~s->flags)
		return fail(c, FW_EARG, FW_PARAM_FLAGS, x->flags);
	if (x->rsvd[0] || x->rsvd[1])
		return fail(c, FW_EARG, FW_PARAM_RESERVED, 0);
	for (uint32_t a = s->nargs; a < 4; a++)
		if (x->arg[a])
			return fail(c, FW_EARG, FW_PARAM_RESERVED, 0);
	for (uint32_t i = 0; i < FW_DESC_REFS; i++) {
		const struct fw_ref *r = &x->ref[i];
		if (!(s->refs & (1u << i))) {
			if (r->handle || r->rsvd || r->off || r->len)
				return fail(c, FW_EARG, FW_PARAM_RESERVED, i);
			rr[i] = (struct rref){ d->mem, 0, 0, 1 };
			continue;
		}
		if (r->rsvd)
			return fail(c, FW_EARG, FW_PARAM_RESERVED, i);
		uint32_t st = resolve(d, r, &rr[i], c, i);
		if (st != FW_OK)
			return st;
	}
	for (uint32_t w = 0; w < FW_DESC_REFS; w++) {
		if (!(s->writes & (1u << w)) || !rr[w].len)
			continue;
		for (uint32_t o = 0; o < FW_DESC_REFS; o++)
			if (o != w && (s->refs & (1u << o)) && rr[o].len &&
			    rr[o].abs < rr[w].abs + rr[w].len && rr[w].abs < rr[o].abs + rr[o].len)
				return fail(c, FW_EOVERLAP, w, o);
	}
	return FW_OK;
}

/* n items of size bytes must fit in reference i: FW_EARG when n * size overflows, FW_ESHORT
 * (with the bytes needed) when the reference is shorter. */
static uint32_t need_items(const struct rref *rr, uint32_t i, uint64_t n, uint64_t size,
			   struct fw_completion *c)
{
	uint64_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes))
		return fail(c, FW_EARG, FW_PARAM_COUNT, n);
	if (rr[i].len < bytes)
		return fail(c, FW_ESHORT, i, bytes);
	return FW_OK;
}

/* [off, off + len) inside a reference of ref_len bytes, without overflow. */
static int in_ref(uint64_t off, uint64_t len, uint64_t ref_len)
{
	return off <= ref_len && len <= ref_len - off;
}

static uint32_t do_crc32c(const struct fw_device *d, const struct fw_desc *x, const struct rref *rr,
			  struct fw_completion *c)
{
	uint64_t n = x->arg[0], bytes;
	uint32_t st;
	if ((st = need_items(rr, 0, n, sizeof(struct fw_seg), c)) ||
	    (st = need_items(rr, 2, n, 4, c)))
		return st;
	for (uint64_t i = 0; i < n; i++) {
		struct fw_seg s;
		memcpy(&s, rr[0].p + i * sizeof(s), sizeof(s));
		if (!in_ref(s.off, s.len, rr[1].len))
			return fail(c, FW_ERANGE, 1, i);
	}
	fw_kernel_crc32c(d, rr[0].p, rr[1].p, rr[2].p, n, &bytes);
	c->result[0] = n;
	c->work_bytes = bytes;
	c->work_items = n;
	return FW_OK;
}

static uint32_t do_bloom_build(const struct fw_desc *x, const struct rref *rr,
			       struct fw_completion *c)
{
	uint64_t n = x->arg[0], k = x->arg[1];
	uint32_t st;
	if ((st = need_items(rr, 0, n, 8, c)))
		return st;
	if (k == 0 || k > 64)
		return fail(c, FW_EARG, FW_PARAM_K, k);
	if (rr[1].len % 64)
		return fail(c, FW_EARG, FW_PARAM_SIZE, rr[1].len);
	fw_kernel_bloom_build(rr[0].p, n, (uint32_t)k, rr[1].p, rr[1].len);
	c->result[0] = n;
	c->work_bytes = 8 * n;
	c->work_items = n;
	return FW_OK;
}

static uint32_t do_bloom_probe(const struct fw_desc *x, const struct rref *rr,
			       struct fw_completion *c)
{
	uint64_t n = x->arg[0], nf = x->arg[1];
	uint32_t st;
	if ((st = need_items(rr, 0, nf, sizeof(struct fw_filter), c)) ||
	    (st = need_items(rr, 3, n, 8, c)) || (st = need_items(rr, 4, n, 1, c)) ||
	    (!rr[2].null && (st = need_items(rr, 2, n, 4, c))))
		return st;
	if (n && !nf)
		return fail(c, FW_EARG, FW_PARAM_NFILTERS, 0);
	for (uint64_t f = 0; f < nf; f++) {
		struct fw_filter e;
		memcpy(&e, rr[0].p + f * sizeof(e), sizeof(e));
		if (e.rsvd)
			return fail(c, FW_EARG, FW_PARAM_RESERVED, f);
		if (!in_ref(e.off, e.size, rr[1].len))
			return fail(c, FW_ERANGE, 1, f);
	}
	if (!rr[2].null)
		for (uint64_t i = 0; i < n; i++) {
			uint32_t w;
			memcpy(&w, rr[2].p + 4 * i, 4);
			if (w >= nf)
				return fail(c, FW_EARG, FW_PARAM_WHICH, i);
		}
	fw_kernel_bloom_probe(rr[0].p, rr[1].p, rr[2].null ? NULL : rr[2].p, rr[3].p, n, rr[4].p);
	c->result[0] = n;
	c->work_bytes = 8 * n;
	c->work_items = n;
	return FW_OK;
}

/* The job reference: header, runs, input block table, lo, hi, each in bounds; every run's
 * blocks inside the table and every block inside the input reference. */
static uint32_t do_merge(const struct fw_device *d, const struct fw_desc *x, const struct rref *rr,
			 struct fw_completion *c)
{
	uint64_t bb = x->arg[0], ri = x->arg[1], bits = x->arg[2];
	if (bb > UINT32_MAX || (bb && bb < 64))
		return fail(c, FW_EARG, FW_PARAM_BLOCK_BYTES, bb);
	if (ri > UINT32_MAX)
		return fail(c, FW_EARG, FW_PARAM_RESTART, ri);
	if (bits > 64)
		return fail(c, FW_EARG, FW_PARAM_BITS, bits);
	if (rr[6].len < sizeof(struct fw_merge_result))
		return fail(c, FW_ESHORT, 6, sizeof(struct fw_merge_result));
	struct fw_merge_job job;
	if (rr[0].len < sizeof(job))
		return fail(c, FW_ESHORT, 0, sizeof(job));
	memcpy(&job, rr[0].p, sizeof(job));
	if (job.n_runs > FW_MERGE_MAX_RUNS)
		return fail(c, FW_EARG, FW_PARAM_RUNS, job.n_runs);
	uint64_t runs_at = sizeof(job), segs_at, lo_at, hi_at, end, t;
	if (__builtin_mul_overflow(job.n_blocks, sizeof(struct fw_seg), &t) ||
	    __builtin_add_overflow(runs_at, job.n_runs * sizeof(struct fw_merge_run), &segs_at) ||
	    __builtin_add_overflow(segs_at, t, &lo_at) ||
	    __builtin_add_overflow(lo_at, job.lo_len, &hi_at) ||
	    __builtin_add_overflow(hi_at, job.hi_len, &end))
		return fail(c, FW_EARG, FW_PARAM_COUNT, job.n_blocks);
	if (rr[0].len < end)
		return fail(c, FW_ESHORT, 0, end);
	const uint8_t *job_p = rr[0].p;
	for (uint64_t r = 0; r < job.n_runs; r++) {
		struct fw_merge_run run;
		memcpy(&run, job_p + runs_at + r * sizeof(run), sizeof(run));
		if (!in_ref(run.first, run.n_blocks, job.n_blocks))
			return fail(c, FW_EARG, FW_PARAM_RUN_BLOCKS, r);
	}
	for (uint64_t b = 0; b < job.n_blocks; b++) {
		struct fw_seg s;
		memcpy(&s, job_p + segs_at + b * sizeof(s), sizeof(s));
		if (!in_ref(s.off, s.len, rr[1].len))
			return fail(c, FW_ERANGE, 1, b);
	}
	struct fw_merge_tables tables = { job_p + runs_at, job_p + segs_at, rr[1].p };
	struct fw_merge_params p = {
		.n_runs = (uint32_t)job.n_runs,
		.flags = x->flags,
		.block_bytes = (uint32_t)bb,
		.restart_interval = (uint32_t)ri,
		.bits_per_key = (uint32_t)bits,
		.lo = job_p + lo_at,
		.hi = job_p + hi_at,
		.lo_len = job.lo_len,
		.hi_len = job.hi_len,
		.input_bytes = rr[1].len,
		.out = rr[3].len ? rr[3].p : NULL,
		.out_cap = rr[3].len,
		.blocks = rr[4].p,
		.blocks_cap = rr[4].len / sizeof(struct fw_out_block),
		.bloom = rr[5].p,
		.bloom_cap = rr[5].len,
		.scratch = rr[2].p,
		.scratch_len = rr[2].len,
	};
	struct fw_merge_result res;
	uint64_t need = 0;
	uint32_t st = fw_kernel_merge(d, &tables, &p, &res, &need);
	if (st == FW_ESCRATCH)
		return fail(c, FW_ESCRATCH, 2, need);
	if (st == FW_EARG) /* not reached: every parameter was checked above */
		return fail(c, FW_EARG, 0, 0);
	memcpy(rr[6].p, &res, sizeof(res));
	c->work_bytes = res.bytes_read;
	c->work_items = res.entries_in;
	if (st == FW_OK) {
		c->result[0] = res.out_len;
		c->result[1] = res.n_blocks;
		c->result[2] = res.entries_out;
	}
	return st;
}

uint32_t fw_process(const struct fw_device *d, const struct fw_desc *desc,
		    struct fw_completion *out)
{
	/* One read of the ring entry: what is checked is what runs. */
	struct fw_desc x;
	struct rref rr[FW_DESC_REFS];
	memcpy(&x, desc, sizeof(x));
	memset(out, 0, sizeof(*out));
	out->tag = x.tag;
	uint32_t st = check_desc(d, &x, rr, out);
	if (st == FW_OK) {
		switch (x.opcode) {
		case FW_OP_CRC32C:
			st = do_crc32c(d, &x, rr, out);
			break;
		case FW_OP_BLOOM_BUILD:
			st = do_bloom_build(&x, rr, out);
			break;
		case FW_OP_BLOOM_PROBE:
			st = do_bloom_probe(&x, rr, out);
			break;
		default:
			st = do_merge(d, &x, rr, out);
			break;
		}
	}
	out->status = st;
	return st;
}

const char *fw_strstatus(uint32_t status)
{
	static const char *const names[FW_NSTATUS] = {
		[FW_OK] = "ok",
		[FW_EOPCODE] = "unknown opcode",
		[FW_EHANDLE] = "bad buffer handle",
		[FW_ERANGE] = "reference out of range",
		[FW_EOVERLAP] = "written reference overlaps another",
		[FW_ESHORT] = "buffer shorter than the arguments need",
		[FW_EARG] = "bad argument",
		[FW_ENOSPC] = "output buffers too small",
		[FW_ECORRUPT] = "corrupt input",
		[FW_EFBIG] = "output block past 4 GiB",
		[FW_ESCRATCH] = "scratch too small",
	};
	return status < FW_NSTATUS ? names[status] : "unknown status";
}
