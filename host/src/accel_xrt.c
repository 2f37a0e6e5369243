/* accel_xrt.c - the xrt backend: every operation of accel.h on an FPGA card through XRT's native
 * C API (device, xclbin, kernels, buffer objects, runs), running the OpenCL C kernels of kernels/
 * that firmware/fpga's recipe (v++) builds into an xclbin. XRT is loaded with dlopen at open
 * (SLUICE_XRT_LIB, else libxrt_coreutil.so.2), so Sluice builds and runs where it is absent;
 * the tests run this file against sim/shim's stand-in library. No card has run it. Results are
 * bit-identical to accel_cpu.c: the kernels and their argument layouts are the opencl backend's
 * (kernels/sl_kernel_abi.h), and the checks and out values are cpu's.
 *
 * Work runs on lanes: a lane owns a run handle per kernel and its buffer objects (grown on
 * demand, never shrunk), and a call holds one lane from start to end, so NLANES threads call at
 * once. A call writes its input into a buffer's host mapping, syncs it to the device, starts the
 * kernels one after another (each waits for the last: they depend on each other), and syncs back
 * only the bytes it reads. submit/poll: a request queue served by NLANES worker threads
 * (started at the first submit), each running one request at a time on a lane exactly as a
 * synchronous call does, so the submitter's thread is free while the card works; poll hands
 * back what finished, device_ns the wall time of the request's run.
 * Each kernel is started once per call with its item count (the kernels' loop form: one
 * work-item does every item). A run not complete within the watchdog's timeout (config
 * timeout_ms, 30 s) means a hung compute unit: the call and every later one are -ENODEV (a
 * card needs `xbutil reset`), and the seam runs them on cpu.
 * accel is a leaf: this file knows block.h and bloom.h only.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"
#include "block.h"
#include "bloom.h"
#include "sl_kernel_abi.h"
#include "sluice.h"
#include "xrt_capi.h" /* the XRT C API's declarations: types only, nothing is linked */
#include "xrt_shim.h" /* the name of the shim's marker entry point */

#define NLANES	  4
#define MIN_ALLOC (64u << 10) /* smallest buffer object: small calls never reallocate */
#define XRT_LIB	  "libxrt_coreutil.so.2"

_Static_assert(SLK_MAX_KEY == SL_ACCEL_MAX_KEY && SLK_MAX_KEY == SL_BLOCK_MAX_KEY, "key size");
_Static_assert(SLK_BLOCK_MIN == SL_BLOCK_MIN, "the smallest block");
_Static_assert(SLK_TOMBSTONE == SL_ACCEL_TOMBSTONE, "tombstone flag");
_Static_assert(SLK_DROP_TOMBS == SL_ACCEL_MERGE_DROP_TOMBSTONES, "merge flag");
_Static_assert(sizeof(struct slk_block) == sizeof(struct sl_accel_block), "block descriptors");
static const uint32_t abi_sizes[] = SLK_ABI_SIZES;

/* ---- XRT, resolved at open ------------------------------------------------------------------ */

#define XRT_FUNCS(X)                                                                               \
	X(xrtDeviceOpen)                                                                           \
	X(xrtDeviceClose)                                                                          \
	X(xrtDeviceLoadXclbinFile)                                                                 \
	X(xrtDeviceGetXclbinUUID)                                                                  \
	X(xrtPLKernelOpen)                                                                         \
	X(xrtKernelClose)                                                                          \
	X(xrtKernelArgGroupId)                                                                     \
	X(xrtBOAlloc)                                                                              \
	X(xrtBOFree)                                                                               \
	X(xrtBOMap)                                                                                \
	X(xrtBOSync)                                                                               \
	X(xrtBOWrite)                                                                              \
	X(xrtBORead)                                                                               \
	X(xrtRunOpen)                                                                              \
	X(xrtRunSetArg)                                                                            \
	X(xrtRunStart)                                                                             \
	X(xrtRunWaitFor)                                                                           \
	X(xrtRunClose)

/* Pointers to XRT's functions, each named and typed as the function. */
struct xrt_api {
#define X(f) __typeof__(&f) f;
	XRT_FUNCS(X)
#undef X
};

static const struct {
	const char *name;
	size_t off;
} api_syms[] = {
#define X(f) { #f, offsetof(struct xrt_api, f) },
	XRT_FUNCS(X)
#undef X
};

/* ---- Kernels and buffers -------------------------------------------------------------------- */

enum kern { K_ABI, K_CRC, K_BUILD, K_PROBE, K_MERGE, K_MCRC, K_MBLOOM, K_N };
static const char *const kern_names[K_N] = {
	"slk_abi",   "slk_crc32c",    "slk_bloom_build", "slk_bloom_probe",
	"slk_merge", "slk_merge_crc", "slk_merge_bloom",
};

/* A lane's buffer objects, and the kernel arguments each is passed as: one memory bank each,
 * which the xclbin's connectivity must give all of them (checked at open). */
enum { M_IN, M_OUT, M_BLK, M_SCR, M_RES, M_BLOOM, M_N };
static const struct {
	int n;
	struct {
		int k, arg;
	} use[4];
} role_uses[M_N] = {
	[M_IN] = { 4, { { K_CRC, 0 }, { K_BUILD, 0 }, { K_PROBE, 0 }, { K_MERGE, 0 } } },
	[M_OUT] = { 3, { { K_MERGE, 1 }, { K_MCRC, 0 }, { K_MBLOOM, 0 } } },
	[M_BLK] = { 3, { { K_MERGE, 2 }, { K_MCRC, 1 }, { K_MBLOOM, 1 } } },
	[M_SCR] = { 1, { { K_MERGE, 3 } } },
	[M_RES] = { 1, { { K_MERGE, 4 } } },
	[M_BLOOM] = { 1, { { K_MBLOOM, 3 } } },
};

struct bo {
	xrtBufferHandle h;
	uint8_t *map; /* the host backing, mapped for the buffer's life */
	size_t cap;
};

struct xdev;

struct lane {
	struct xdev *d;
	xrtRunHandle run[K_N];
	struct bo m[M_N];
	int busy; /* under d->mu */
	int hung; /* a run of it never completed: its handles are let go, never closed */
};

struct xdev {
	struct xrt_api x;
	xrtDeviceHandle dev;
	xuid_t uuid;
	xrtKernelHandle k[K_N];
	xrtMemoryGroup grp[M_N];
	int shim; /* the library is sim/shim's stand-in, not XRT */
	unsigned timeout_ms; /* the watchdog: a run not complete by then is hung */
	int hung;	     /* a compute unit hung: the card needs a reset (xbutil reset); every
			        call is -ENODEV and the seam runs it on cpu (atomic) */
	struct sl_accel_info info;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a lane freed */
	struct lane lane[NLANES];
	/* submit/poll, under mu: the queue the workers take from, what finished, counts. */
	pthread_cond_t cv_work, cv_done;
	struct sl_accel_req *q_head, **q_tail, *done, **done_tail;
	unsigned queued, running, nworkers, stopping;
	pthread_t worker[NLANES];
};

#define QUEUE_MAX (4 * NLANES) /* submit says -EAGAIN past this many queued */

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...)
{
	if (!why || !cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* XRT's C API fails with errno set (some versions negate it). */
static const char *xrt_err(void)
{
	int e = errno < 0 ? -errno : errno;
	return strerror(e ? e : EIO);
}

/* ---- Buffers and runs on a lane ------------------------------------------------------------- */

static void bo_release(struct lane *l, struct bo *b)
{
	if (b->h)
		l->d->x.xrtBOFree(b->h);
	memset(b, 0, sizeof(*b));
}

/* Buffer m of at least need bytes, in its bank (contents not kept): a power of two from
 * MIN_ALLOC. */
static int bo_need(struct lane *l, int m, size_t need)
{
	struct bo *b = &l->m[m];
	if (need <= b->cap && b->h)
		return 0;
	size_t cap = MIN_ALLOC;
	while (cap < need && cap <= SIZE_MAX / 2)
		cap *= 2;
	if (cap < need)
		return -ENOMEM;
	bo_release(l, b);
	const struct xrt_api *x = &l->d->x;
	b->h = x->xrtBOAlloc(l->d->dev, cap, XRT_BO_FLAGS_NONE, l->d->grp[m]);
	if (!b->h)
		return -ENOMEM;
	b->map = x->xrtBOMap(b->h);
	if (!b->map) {
		bo_release(l, b);
		return -ENOMEM;
	}
	b->cap = cap;
	return 0;
}

static int bo_sync(struct lane *l, int m, enum xclBOSyncDirection dir, size_t off, size_t len)
{
	if (!len)
		return 0;
	return l->d->x.xrtBOSync(l->m[m].h, dir, len, off) ? -EIO : 0;
}

/* Run kernel k with the arguments sig spells, one letter each: b a buffer role (int), U a
 * uint64_t (OpenCL ulong), u an unsigned int (uint); XRT reads each by the xclbin's argument
 * type, so the C types here must be exactly these. Waits for the end. 0 or -EIO. */
static int launch(struct lane *l, int k, const char *sig, ...)
{
	const struct xrt_api *x = &l->d->x;
	xrtRunHandle run = l->run[k];
	va_list ap;
	int r = 0;
	va_start(ap, sig);
	for (int i = 0; sig[i] && !r; i++) {
		if (sig[i] == 'b')
			r = x->xrtRunSetArg(run, i, l->m[va_arg(ap, int)].h);
		else if (sig[i] == 'U')
			r = x->xrtRunSetArg(run, i, va_arg(ap, uint64_t));
		else
			r = x->xrtRunSetArg(run, i, va_arg(ap, unsigned int));
	}
	va_end(ap);
	if (r || x->xrtRunStart(run))
		return -EIO;
	enum ert_cmd_state st = x->xrtRunWaitFor(run, l->d->timeout_ms);
	if (st == ERT_CMD_STATE_COMPLETED)
		return 0;
	if (st == ERT_CMD_STATE_NEW || st == ERT_CMD_STATE_QUEUED ||
	    st == ERT_CMD_STATE_RUNNING || st == ERT_CMD_STATE_SUBMITTED ||
	    st == ERT_CMD_STATE_TIMEOUT || st == ERT_CMD_STATE_NORESPONSE) {
		/* The watchdog: the compute unit is hung. Nothing more goes to the card. */
		l->hung = 1;
		__atomic_store_n(&l->d->hung, 1, __ATOMIC_RELAXED);
		return -ENODEV;
	}
	return -EIO;
}

/* ---- CRC32C -----------------------------------------------------------------------------------
 * In: chunk descriptors at 0, one u32 accumulator per buffer (zeroed), the buffers' bytes back to
 * back from a 64-byte boundary (sl_kernel_abi.h says how the chunks' CRCs combine). */

static int crc_run(struct lane *l, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	size_t chunks = 0, bytes = 0;
	if (n >= SLK_CRC_FIRST)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		chunks += bufs[i].len ? (bufs[i].len + SLK_CRC_CHUNK - 1) / SLK_CRC_CHUNK : 1;
		bytes += bufs[i].len;
	}
	size_t acc = chunks * sizeof(struct slk_crc_chunk), at = align_up(acc + 4 * n, 64);
	int r = bo_need(l, M_IN, at + bytes);
	if (r)
		return r;
	uint8_t *s = l->m[M_IN].map;
	struct slk_crc_chunk *c = (struct slk_crc_chunk *)s;
	memset(s + acc, 0, 4 * n);
	for (size_t i = 0; i < n; i++) {
		size_t len = bufs[i].len, off = 0;
		if (len)
			memcpy(s + at, bufs[i].data, len);
		do {
			size_t cl = min_sz(len - off, SLK_CRC_CHUNK);
			*c++ = (struct slk_crc_chunk){ .off = at + off,
						       .after = len - off - cl,
						       .len = (uint32_t)cl,
						       .slot = (uint32_t)i |
							       (off ? 0 : SLK_CRC_FIRST) };
			off += cl;
		} while (off < len);
		at += len;
	}
	if ((r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_TO_DEVICE, 0, at)) ||
	    (r = launch(l, K_CRC, "bUUU", M_IN, (uint64_t)0, (uint64_t)chunks, (uint64_t)acc)) ||
	    (r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_FROM_DEVICE, acc, 4 * n)))
		return r;
	for (size_t i = 0; i < n; i++) {
		uint32_t v;
		memcpy(&v, s + acc + 4 * i, 4);
		out[i] = v ^ 0xFFFFFFFFu;
	}
	return 0;
}

/* ---- Bloom filters ----------------------------------------------------------------------------
 * Build: the hashes at 0, the filter (as the caller has it: set bits stay set) from a 64-byte
 * boundary after them. Probe: the hashes at 0, which[] after them, the filter descriptors, the
 * answers, then every filter's whole blocks, each from a 64-byte boundary. */

static int build_run(struct lane *l, const uint64_t *hashes, size_t n, uint32_t k, uint8_t *filter,
		     size_t size)
{
	size_t foff = align_up(8 * n, 64);
	int r = bo_need(l, M_IN, foff + size);
	if (r)
		return r;
	uint8_t *s = l->m[M_IN].map;
	memcpy(s, hashes, 8 * n);
	memcpy(s + foff, filter, size);
	if ((r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_TO_DEVICE, 0, foff + size)) ||
	    (r = launch(l, K_BUILD, "bUUUUu", M_IN, (uint64_t)0, (uint64_t)n, (uint64_t)foff,
			(uint64_t)(size / SL_BLOOM_BLOCK), (unsigned int)k)) ||
	    (r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_FROM_DEVICE, foff, size)))
		return r;
	memcpy(filter, s + foff, size);
	return 0;
}

static int probe_run(struct lane *l, const struct sl_accel_filter *f, size_t nfilters,
		     const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	size_t nf = which ? nfilters : 1;
	size_t woff = 8 * n, descs = align_up(woff + (which ? 4 * n : 0), 8);
	size_t aoff = descs + nf * sizeof(struct slk_filter), bits = align_up(aoff + n, 64);
	size_t end = bits;
	for (size_t i = 0; i < nf; i++)
		end += (f[i].size / SL_BLOOM_BLOCK) * SL_BLOOM_BLOCK;
	int r = bo_need(l, M_IN, end);
	if (r)
		return r;
	uint8_t *s = l->m[M_IN].map;
	memcpy(s, hashes, 8 * n);
	if (which)
		memcpy(s + woff, which, 4 * n);
	struct slk_filter *d = (struct slk_filter *)(s + descs);
	for (size_t i = 0, at = bits; i < nf; i++) {
		size_t nb = f[i].size / SL_BLOOM_BLOCK;
		d[i] = (struct slk_filter){ .off = at, .nblocks = nb, .k = f[i].k };
		if (nb)
			memcpy(s + at, f[i].bits, nb * SL_BLOOM_BLOCK);
		at += nb * SL_BLOOM_BLOCK;
	}
	uint64_t wo = which ? woff : UINT64_MAX;
	if ((r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_TO_DEVICE, 0, end)) ||
	    (r = launch(l, K_PROBE, "bUUUUU", M_IN, (uint64_t)0, wo, (uint64_t)descs, (uint64_t)n,
			(uint64_t)aoff)) ||
	    (r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_FROM_DEVICE, aoff, n)))
		return r;
	memcpy(out, s + aoff, n);
	return 0;
}

/* ---- The merge job ----------------------------------------------------------------------------
 * In: the params at 0, then the runs, the input block descriptors, one CRC accumulator per block,
 * the CRC chunks over the blocks (their first len - 4 bytes), lo, hi, and the blocks' bytes from
 * a 64-byte boundary. slk_crc32c checks the blocks' CRCs into the accumulators; slk_merge merges
 * into out and blocks, which hold what the caller's do or an estimate, whichever is less (if the
 * job fits the caller's buffers but not those, they grow to the exact needs and slk_merge runs
 * again); then slk_merge_crc and slk_merge_bloom finish the blocks and make the filter, and the
 * outputs are synced back at their exact sizes. */

/* Where merge_layout put things. */
struct mlayout {
	size_t in_len;		   /* bytes of the input buffer in use */
	size_t chunks, chunks_off; /* CRC chunks over the input blocks */
	size_t acc_off;		   /* their accumulators */
	size_t bytes;		   /* of the input blocks */
	size_t scratch;		   /* bytes of scratch slk_merge needs */
};

/* Lay the job out in the input buffer, the params complete but for out_cap and blocks_cap. */
static int merge_layout(struct lane *l, const struct sl_accel_merge_job *j, struct mlayout *ml)
{
	size_t k = j->n_runs, nb = 0, bytes = 0, chunks = 0;
	for (size_t i = 0; i < k; i++)
		for (size_t b = 0; b < j->runs[i].n_blocks; b++) {
			size_t len = j->runs[i].blocks[b].len;
			nb++;
			bytes += len;
			if (len >= SL_BLOCK_MIN && len <= UINT32_MAX)
				chunks += (len - 4 + SLK_CRC_CHUNK - 1) / SLK_CRC_CHUNK;
		}
	if (nb >= UINT32_MAX)
		return -ENOMEM;
	size_t runs_off = align_up(sizeof(struct slk_merge_params), 64);
	size_t blocks_off = align_up(runs_off + k * sizeof(struct slk_run), 8);
	size_t acc_off = blocks_off + nb * sizeof(struct slk_inblock);
	size_t chunks_off = align_up(acc_off + 4 * nb, 8);
	size_t lo_off = chunks_off + chunks * sizeof(struct slk_crc_chunk);
	size_t hi_off = lo_off + j->lo_len;
	size_t data_off = align_up(hi_off + j->hi_len, 64);
	/* Scratch: the cursors, the tree and winners, the two keys. */
	size_t tree_off = align_up((k ? k : 1) * sizeof(struct slk_cursor), 8);
	size_t key_off = align_up(tree_off + 4 * (3 * k + 2), 8);
	int r = bo_need(l, M_IN, data_off + bytes);
	if (r)
		return r;
	uint8_t *s = l->m[M_IN].map;
	struct slk_merge_params *prm = (struct slk_merge_params *)s;
	*prm = (struct slk_merge_params){
		.runs_off = runs_off,
		.blocks_off = blocks_off,
		.acc_off = acc_off,
		.lo_off = lo_off,
		.hi_off = hi_off,
		.lo_len = j->lo_len,
		.hi_len = j->hi_len,
		.tree_off = tree_off,
		.key_off = key_off,
		.n_runs = (uint32_t)k,
		.flags = j->flags,
		.block_bytes = j->block_bytes ? j->block_bytes : 4096,
		.restart_interval = j->restart_interval ? j->restart_interval : 16,
		.n_inblocks = (uint32_t)nb,
	};
	struct slk_run *sr = (struct slk_run *)(s + runs_off);
	struct slk_inblock *ib = (struct slk_inblock *)(s + blocks_off);
	struct slk_crc_chunk *c = (struct slk_crc_chunk *)(s + chunks_off);
	memset(s + acc_off, 0, 4 * nb);
	if (j->lo_len)
		memcpy(s + lo_off, j->lo, j->lo_len);
	if (j->hi_len)
		memcpy(s + hi_off, j->hi, j->hi_len);
	size_t at = data_off, gi = 0;
	for (size_t i = 0; i < k; i++) {
		sr[i] = (struct slk_run){ (uint32_t)gi, (uint32_t)j->runs[i].n_blocks };
		for (size_t b = 0; b < j->runs[i].n_blocks; b++, gi++) {
			size_t len = j->runs[i].blocks[b].len;
			ib[gi] = (struct slk_inblock){ at, len };
			if (len)
				memcpy(s + at, j->runs[i].blocks[b].data, len);
			/* A block too short or too long is corrupt before its CRC is read. */
			for (size_t off = 0;
			     len >= SL_BLOCK_MIN && len <= UINT32_MAX && off < len - 4;
			     off += SLK_CRC_CHUNK) {
				size_t cl = min_sz(len - 4 - off, SLK_CRC_CHUNK);
				*c++ = (struct slk_crc_chunk){ .off = at + off,
							       .after = len - 4 - off - cl,
							       .len = (uint32_t)cl,
							       .slot = (uint32_t)gi |
								       (off ? 0 : SLK_CRC_FIRST) };
			}
			at += len;
		}
	}
	*ml = (struct mlayout){ .in_len = at,
				.chunks = chunks,
				.chunks_off = chunks_off,
				.acc_off = acc_off,
				.bytes = bytes,
				.scratch = key_off + 2 * SLK_MAX_KEY };
	return 0;
}

/* slk_merge with out and blocks of d_out bytes and d_blocks descriptors; its result in *res. */
static int merge_pass(struct lane *l, size_t d_out, size_t d_blocks, struct slk_merge_result *res)
{
	const struct xrt_api *x = &l->d->x;
	uint64_t caps[2] = { d_out, d_blocks };
	int r;
	_Static_assert(offsetof(struct slk_merge_params, blocks_cap) ==
			       offsetof(struct slk_merge_params, out_cap) + 8,
		       "out_cap, blocks_cap");
	if ((r = bo_need(l, M_OUT, d_out)) ||
	    (r = bo_need(l, M_BLK, d_blocks * sizeof(struct slk_block))))
		return r;
	/* Only the caps change from pass to pass: written through XRT's copy-in, then synced. */
	if (x->xrtBOWrite(l->m[M_IN].h, caps, sizeof(caps),
			  offsetof(struct slk_merge_params, out_cap)) ||
	    (r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_TO_DEVICE,
			 offsetof(struct slk_merge_params, out_cap), sizeof(caps))))
		return r ? r : -EIO;
	if ((r = launch(l, K_MERGE, "bbbbb", M_IN, M_OUT, M_BLK, M_SCR, M_RES)) ||
	    (r = bo_sync(l, M_RES, XCL_BO_SYNC_BO_FROM_DEVICE, 0, sizeof(*res))))
		return r;
	return x->xrtBORead(l->m[M_RES].h, res, sizeof(*res), 0) ? -EIO : 0;
}

/* The outputs of a merge that fits: CRCs, filter, and everything copied to the job. */
static int merge_finish(struct lane *l, struct sl_accel_merge_job *j,
			const struct slk_merge_result *res, size_t need_bloom)
{
	size_t nblk = res->n_blocks, out_len = res->out_len;
	int r;
	if (nblk) {
		if ((r = bo_need(l, M_BLOOM, need_bloom)))
			return r;
		memset(l->m[M_BLOOM].map, 0, need_bloom);
		if ((r = bo_sync(l, M_BLOOM, XCL_BO_SYNC_BO_TO_DEVICE, 0, need_bloom)) ||
		    (r = launch(l, K_MCRC, "bbU", M_OUT, M_BLK, (uint64_t)nblk)) ||
		    (r = launch(l, K_MBLOOM, "bbUbUu", M_OUT, M_BLK, (uint64_t)nblk, M_BLOOM,
				(uint64_t)(need_bloom / SL_BLOOM_BLOCK),
				(unsigned int)j->bloom_probes)) ||
		    (r = bo_sync(l, M_OUT, XCL_BO_SYNC_BO_FROM_DEVICE, 0, out_len)) ||
		    (r = bo_sync(l, M_BLK, XCL_BO_SYNC_BO_FROM_DEVICE, 0,
				 nblk * sizeof(struct slk_block))) ||
		    (r = bo_sync(l, M_BLOOM, XCL_BO_SYNC_BO_FROM_DEVICE, 0, need_bloom)))
			return r;
		memcpy(j->bloom, l->m[M_BLOOM].map, need_bloom);
	} else {
		memset(j->bloom, 0, need_bloom); /* no keys: an empty filter */
	}
	if (out_len)
		memcpy(j->out, l->m[M_OUT].map, out_len);
	/* Field by field: the bytes of last[] past last_len stay as the caller had them. */
	const struct slk_block *b = (const struct slk_block *)l->m[M_BLK].map;
	for (size_t i = 0; i < nblk; i++) {
		struct sl_accel_block *o = &j->blocks[i];
		o->off = b[i].off;
		o->len = b[i].len;
		o->crc = b[i].crc;
		o->last_len = b[i].last_len;
		memcpy(o->last, b[i].last, min_sz(b[i].last_len, SLK_MAX_KEY));
	}
	j->out_len = out_len;
	j->n_blocks = nblk;
	j->bloom_len = need_bloom;
	j->smallest_len = res->smallest_len;
	return 0;
}

static int merge_run(struct lane *l, struct sl_accel_merge_job *j)
{
	struct mlayout ml;
	int r = merge_layout(l, j, &ml);
	if (r)
		return r;
	const struct slk_merge_params *prm = (const struct slk_merge_params *)l->m[M_IN].map;
	uint32_t bits = j->bits_per_key ? j->bits_per_key : SL_BLOOM_DEFAULT_BITS;
	size_t d_out = min_sz(j->out_cap, ml.bytes + ml.bytes / 4 + 4096);
	size_t d_blocks = min_sz(j->blocks_cap, 2 * (d_out / prm->block_bytes) + 16);
	if ((r = bo_need(l, M_SCR, ml.scratch)) ||
	    (r = bo_need(l, M_RES, sizeof(struct slk_merge_result))) ||
	    (r = bo_sync(l, M_IN, XCL_BO_SYNC_BO_TO_DEVICE, 0, ml.in_len)))
		return r;
	if (ml.chunks && (r = launch(l, K_CRC, "bUUU", M_IN, (uint64_t)ml.chunks_off,
				     (uint64_t)ml.chunks, (uint64_t)ml.acc_off)))
		return r;
	struct slk_merge_result res;
	for (int pass = 0;; pass++) {
		if ((r = merge_pass(l, d_out, d_blocks, &res)))
			return r;
		j->entries_in = res.entries_in;
		j->entries_out = res.entries_out;
		j->dropped_older = res.dropped_older;
		j->dropped_tombstones = res.dropped_tombstones;
		/* cpu writes the first key out when it emits it, whatever happens later. */
		if (res.smallest_len <= SLK_MAX_KEY)
			memcpy(j->smallest, res.smallest, res.smallest_len);
		if (res.status == SLK_MERGE_CORRUPT) {
			j->bad_run = res.bad_run;
			j->bad_block = res.bad_block;
			return SL_ECORRUPT;
		}
		if (res.status == SLK_MERGE_FBIG)
			return -EFBIG;
		if (res.status != SLK_MERGE_OK)
			return -EIO;
		j->need_out = res.out_len;
		j->need_blocks = res.n_blocks;
		j->need_bloom = sl__bloom_bytes(res.entries_out, bits);
		if (res.out_len > j->out_cap || res.n_blocks > j->blocks_cap ||
		    j->need_bloom > j->bloom_cap)
			return -ENOSPC;
		if (res.out_len <= d_out && res.n_blocks <= d_blocks)
			break;
		/* The estimate was short: once more with room for exactly what it needs. */
		if (pass)
			return -EIO;
		d_out = res.out_len;
		d_blocks = res.n_blocks;
	}
	return merge_finish(l, j, &res, j->need_bloom);
}

/* ---- The operations ----------------------------------------------------------------------------
 */

/* A free lane, waiting for one; NULL once a compute unit hung (the caller says -ENODEV). */
static struct lane *lane_get(struct xdev *d)
{
	if (__atomic_load_n(&d->hung, __ATOMIC_RELAXED))
		return NULL;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		for (int i = 0; i < NLANES; i++)
			if (!d->lane[i].busy) {
				d->lane[i].busy = 1;
				pthread_mutex_unlock(&d->mu);
				return &d->lane[i];
			}
		pthread_cond_wait(&d->cv, &d->mu);
	}
}

static void lane_put(struct lane *l)
{
	pthread_mutex_lock(&l->d->mu);
	l->busy = 0;
	pthread_cond_signal(&l->d->cv);
	pthread_mutex_unlock(&l->d->mu);
}

static int xrt_crc32c_batch(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	if (n && (!bufs || !out))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (bufs[i].len && !bufs[i].data)
			return -EINVAL;
	if (!n)
		return 0;
	struct lane *l = lane_get(dev);
	if (!l)
		return -ENODEV;
	int r = crc_run(l, bufs, n, out);
	lane_put(l);
	return r;
}

static int xrt_bloom_build(void *dev, const uint64_t *hashes, size_t n, uint32_t k, uint8_t *filter,
			   size_t size)
{
	if (size % SL_BLOOM_BLOCK || k == 0 || k > 64 || (n && !hashes) || (size && !filter))
		return -EINVAL;
	if (!size || !n)
		return 0;
	struct lane *l = lane_get(dev);
	if (!l)
		return -ENODEV;
	int r = build_run(l, hashes, n, k, filter, size);
	lane_put(l);
	return r;
}

static int xrt_bloom_probe(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
			   const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	if (n && (!hashes || !out || !nfilters || !filters))
		return -EINVAL;
	for (size_t i = 0; which && i < n; i++)
		if (which[i] >= nfilters)
			return -EINVAL;
	for (size_t i = 0; n && i < (which ? nfilters : 1); i++)
		if (filters[i].size >= SL_BLOOM_BLOCK && !filters[i].bits)
			return -EINVAL;
	if (!n)
		return 0;
	struct lane *l = lane_get(dev);
	if (!l)
		return -ENODEV;
	int r = probe_run(l, filters, nfilters, which, hashes, n, out);
	lane_put(l);
	return r;
}

static int xrt_merge(void *dev, struct sl_accel_merge_job *j)
{
	if (!j)
		return -EINVAL;
	int r = sl__accel_merge_check(j);
	if (r < 0)
		return r;
	uint32_t bits = j->bits_per_key ? j->bits_per_key : SL_BLOOM_DEFAULT_BITS;
	j->out_len = j->n_blocks = j->bloom_len = 0;
	j->bloom_probes = sl__bloom_probes(bits);
	j->entries_in = j->entries_out = j->dropped_older = j->dropped_tombstones = 0;
	j->smallest_len = 0;
	j->need_out = j->need_blocks = j->need_bloom = 0;
	j->bad_run = j->bad_block = 0;
	struct lane *l = lane_get(dev);
	if (!l)
		return -ENODEV;
	r = merge_run(l, j);
	lane_put(l);
	if (r < 0)
		j->smallest_len = 0;
	return r;
}

/* ---- Open, close, info ------------------------------------------------------------------------
 */

/* SLUICE_XRT_LIB, else XRT's library by its soname, then where XRT installs it. */
static void *lib_open(char *why, size_t why_cap)
{
	const char *env = getenv("SLUICE_XRT_LIB");
	if (env && env[0]) {
		void *h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			say(why, why_cap, "XRT library %s (SLUICE_XRT_LIB) not loadable: %s", env,
			    dlerror());
		return h;
	}
	char alt[512] = "";
	const char *root = getenv("XILINX_XRT");
	if (root && root[0])
		snprintf(alt, sizeof(alt), "%s/lib/" XRT_LIB, root);
	const char *const names[] = { XRT_LIB, "libxrt_coreutil.so", alt,
				      "/opt/xilinx/xrt/lib/" XRT_LIB };
	char other[256] = ""; /* a library found but not loadable */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!names[i][0])
			continue;
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (h)
			return h;
		const char *e = dlerror();
		if (e && !strstr(e, "No such file") && !other[0])
			snprintf(other, sizeof(other), "%s", e);
	}
	if (other[0])
		say(why, why_cap, "XRT found but not loadable: %s", other);
	else
		say(why, why_cap, "XRT not installed (" XRT_LIB " not found)");
	return NULL;
}

static int api_resolve(struct xdev *d, void *lib, char *why, size_t why_cap)
{
	for (size_t i = 0; i < sizeof(api_syms) / sizeof(api_syms[0]); i++) {
		void *p = dlsym(lib, api_syms[i].name);
		if (!p) {
			say(why, why_cap, "the XRT library lacks %s (XRT 2.8 or later has it)",
			    api_syms[i].name);
			return -ENODEV;
		}
		memcpy((char *)&d->x + api_syms[i].off, &p, sizeof(p));
	}
	const char *(*describe)(void);
	void *p = dlsym(lib, XRT_SHIM_DESCRIBE);
	memcpy(&describe, &p, sizeof(p));
	if (describe) {
		d->shim = 1;
		snprintf(d->info.device, sizeof(d->info.device), "%s", describe());
	}
	return 0;
}

static int parse_index(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;
	if (!s || !s[0]) {
		*out = 0;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end || errno || v > 255 || !strchr("0123456789", s[0]))
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* Every buffer's bank: the group of each kernel argument it is passed as, which must agree. */
static int find_groups(struct xdev *d, const char *xclbin, char *why, size_t why_cap)
{
	for (int m = 0; m < M_N; m++) {
		int first = -1;
		for (int u = 0; u < role_uses[m].n; u++) {
			int k = role_uses[m].use[u].k, a = role_uses[m].use[u].arg;
			int g = d->x.xrtKernelArgGroupId(d->k[k], a);
			if (g < 0) {
				say(why, why_cap,
				    "xclbin %s: %s argument %d has no memory bank (%s)", xclbin,
				    kern_names[k], a, xrt_err());
				return -ENODEV;
			}
			if (first >= 0 && g != first) {
				int k0 = role_uses[m].use[0].k, a0 = role_uses[m].use[0].arg;
				say(why, why_cap,
				    "xclbin %s connects %s argument %d to memory bank "
				    "%d but %s argument %d to bank %d: they share a buffer (see "
				    "firmware/fpga/connectivity.cfg)",
				    xclbin, kern_names[k0], a0, first, kern_names[k], a, g);
				return -ENODEV;
			}
			first = g;
		}
		d->grp[m] = (xrtMemoryGroup)first;
	}
	return 0;
}

/* Run slk_abi: the xclbin's structs must be laid out as this file's. */
static int check_abi(struct xdev *d, const char *xclbin, char *why, size_t why_cap)
{
	const struct xrt_api *x = &d->x;
	struct slk_abi_report rep;
	memset(&rep, 0, sizeof(rep));
	int g = x->xrtKernelArgGroupId(d->k[K_ABI], 0), ok = 0;
	xrtBufferHandle bo =
		g < 0 ? NULL : x->xrtBOAlloc(d->dev, 4096, XRT_BO_FLAGS_NONE, (xrtMemoryGroup)g);
	xrtRunHandle run = bo ? x->xrtRunOpen(d->k[K_ABI]) : NULL;
	if (run && !x->xrtRunSetArg(run, 0, bo) && !x->xrtRunStart(run) &&
	    x->xrtRunWaitFor(run, d->timeout_ms) == ERT_CMD_STATE_COMPLETED &&
	    !x->xrtBOSync(bo, XCL_BO_SYNC_BO_FROM_DEVICE, sizeof(rep), 0) &&
	    !x->xrtBORead(bo, &rep, sizeof(rep), 0))
		ok = 1;
	if (run)
		x->xrtRunClose(run);
	if (bo)
		x->xrtBOFree(bo);
	uint32_t got[] = { rep.size_crc_chunk, rep.size_filter, rep.size_params, rep.size_run,
			   rep.size_inblock,   rep.size_block,	rep.size_result, rep.size_cursor };
	_Static_assert(sizeof(got) == sizeof(abi_sizes), "one size per struct");
	if (!ok) {
		say(why, why_cap, "xclbin %s: slk_abi did not run (%s)", xclbin, xrt_err());
		return -ENODEV;
	}
	if (rep.version != SLK_ABI_VERSION || memcmp(got, abi_sizes, sizeof(got))) {
		say(why, why_cap,
		    "xclbin %s was built from other kernels (ABI version %u, expected "
		    "%u; or struct sizes)",
		    xclbin, rep.version, SLK_ABI_VERSION);
		return -ENODEV;
	}
	return 0;
}

static void xrt_close(void *dev)
{
	struct xdev *d = dev;
	if (!d)
		return;
	/* Workers finish what is queued, then stop. */
	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	pthread_cond_broadcast(&d->cv_work);
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_join(d->worker[i], NULL);
	pthread_cond_destroy(&d->cv_work);
	pthread_cond_destroy(&d->cv_done);
	for (int i = 0; i < NLANES; i++) {
		struct lane *l = &d->lane[i];
		if (l->hung && !d->shim)
			continue; /* closing a hung run may wait for it forever (the shim lets go) */
		for (int k = 0; k < K_N; k++)
			if (l->run[k])
				d->x.xrtRunClose(l->run[k]);
		for (int m = 0; m < M_N; m++)
			bo_release(l, &l->m[m]);
	}
	for (int k = 0; k < K_N; k++)
		if (d->k[k])
			d->x.xrtKernelClose(d->k[k]);
	if (d->dev)
		d->x.xrtDeviceClose(d->dev);
	/* The library stays loaded: XRT keeps threads and exit handlers of its own. */
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static void xrt_info(void *dev, struct sl_accel_info *out)
{
	*out = ((struct xdev *)dev)->info;
}

static void fill_info(struct xdev *d, unsigned idx, const char *xclbin)
{
	struct sl_accel_info *in = &d->info;
	Dl_info dl;
	char uuid[33];
	for (int i = 0; i < 16; i++)
		snprintf(uuid + 2 * i, 3, "%02x", d->uuid[i]);
	const char *lib =
		dladdr((void *)d->x.xrtDeviceOpen, &dl) && dl.dli_fname ? dl.dli_fname : XRT_LIB;
	snprintf(in->name, sizeof(in->name), "xrt");
	if (!d->shim)
		snprintf(in->device, sizeof(in->device), "XRT device %u", idx);
	say(in->detail, sizeof(in->detail), "device %u; xclbin %s (uuid %s); %s; %d lanes", idx,
	    xclbin, uuid, lib, NLANES);
	/* The shim is a stand-in, not a device: the planner never routes to it. */
	in->flags = d->shim ? 0 : SL_ACCEL_INFO_DEVICE;
}

static int open_device(struct xdev *d, const struct sl_accel_config *cfg, unsigned idx, char *why,
		       size_t why_cap)
{
	const struct xrt_api *x = &d->x;
	const char *xclbin = cfg->binary;
	d->dev = x->xrtDeviceOpen(idx);
	if (!d->dev) {
		say(why, why_cap, "no XRT device %u (%s)", idx, xrt_err());
		return -ENODEV;
	}
	if (access(xclbin, R_OK) < 0) {
		say(why, why_cap, "cannot read xclbin %s: %s", xclbin, strerror(errno));
		return -ENODEV;
	}
	if (x->xrtDeviceLoadXclbinFile(d->dev, xclbin)) {
		say(why, why_cap, "XRT could not load xclbin %s on device %u (%s)", xclbin, idx,
		    xrt_err());
		return -ENODEV;
	}
	if (x->xrtDeviceGetXclbinUUID(d->dev, d->uuid)) {
		say(why, why_cap, "no xclbin UUID on XRT device %u (%s)", idx, xrt_err());
		return -ENODEV;
	}
	for (int k = 0; k < K_N; k++) {
		d->k[k] = x->xrtPLKernelOpen(d->dev, d->uuid, kern_names[k]);
		if (!d->k[k]) {
			say(why, why_cap, "xclbin %s lacks kernel %s (%s)", xclbin, kern_names[k],
			    xrt_err());
			return -ENODEV;
		}
	}
	int r = find_groups(d, xclbin, why, why_cap);
	if (r < 0 || (r = check_abi(d, xclbin, why, why_cap)) < 0)
		return r;
	for (int i = 0; i < NLANES; i++) {
		d->lane[i].d = d;
		for (int k = K_ABI + 1; k < K_N; k++)
			if (!(d->lane[i].run[k] = x->xrtRunOpen(d->k[k]))) {
				say(why, why_cap, "cannot open runs of %s (%s)", kern_names[k],
				    xrt_err());
				return -ENOMEM;
			}
	}
	fill_info(d, idx, xclbin);
	return 0;
}

static int xrt_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	*dev = NULL;
	void *lib = lib_open(why, why_cap);
	if (!lib)
		return -ENODEV;
	if (!cfg->binary || !cfg->binary[0]) {
		say(why, why_cap, "no --accel-binary xclbin given");
		return -ENODEV;
	}
	unsigned idx;
	if (parse_index(cfg->device, &idx) < 0) {
		say(why, why_cap, "XRT device \"%s\" is not a device index", cfg->device);
		return -ENODEV;
	}
	struct xdev *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->cv_work, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv_done, &ca);
	pthread_condattr_destroy(&ca);
	d->q_tail = &d->q_head;
	d->done_tail = &d->done;
	d->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	int r = api_resolve(d, lib, why, why_cap);
	if (r < 0 || (r = open_device(d, cfg, idx, why, why_cap)) < 0) {
		xrt_close(d);
		return r;
	}
	*dev = d;
	return 0;
}

/* ---- submit/poll ---------------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *worker_main(void *arg)
{
	struct xdev *d = arg;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		struct sl_accel_req *q = d->q_head;
		if (!q) {
			if (d->stopping)
				break;
			pthread_cond_wait(&d->cv_work, &d->mu);
			continue;
		}
		if (!(d->q_head = q->next))
			d->q_tail = &d->q_head;
		d->queued--;
		d->running++;
		pthread_mutex_unlock(&d->mu);
		uint64_t t0 = mono_ns();
		sl__accel_run_req(&sl__accel_xrt_ops, d, q);
		q->device_ns = mono_ns() - t0;
		q->next = NULL;
		pthread_mutex_lock(&d->mu);
		d->running--;
		*d->done_tail = q;
		d->done_tail = &q->next;
		pthread_cond_broadcast(&d->cv_done);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

static int xrt_submit(void *dev, struct sl_accel_req *q)
{
	struct xdev *d = dev;
	int r = 0;
	pthread_mutex_lock(&d->mu);
	if (d->queued >= QUEUE_MAX) {
		r = -EAGAIN;
	} else if (d->nworkers < NLANES && d->queued + d->running >= d->nworkers) {
		/* One more worker while every one is taken (none idle), up to one per lane. */
		if (pthread_create(&d->worker[d->nworkers], NULL, worker_main, d) == 0)
			d->nworkers++;
		else if (!d->nworkers)
			r = -EAGAIN; /* no thread to run it: the caller polls and tries again */
	}
	if (!r) {
		q->next = NULL;
		*d->q_tail = q;
		d->q_tail = &q->next;
		d->queued++;
		pthread_cond_signal(&d->cv_work);
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

static int xrt_poll(void *dev, int64_t timeout_ns, struct sl_accel_req **out)
{
	struct xdev *d = dev;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ns > 0) {
		int64_t ns = until.tv_nsec + timeout_ns % 1000000000;
		until.tv_sec += timeout_ns / 1000000000 + ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
	}
	pthread_mutex_lock(&d->mu);
	while (!d->done && timeout_ns > 0 && d->queued + d->running > 0)
		if (pthread_cond_timedwait(&d->cv_done, &d->mu, &until) == ETIMEDOUT)
			break;
	int n = 0;
	for (struct sl_accel_req *q = d->done; q; q = q->next)
		n++;
	*out = d->done;
	d->done = NULL;
	d->done_tail = &d->done;
	pthread_mutex_unlock(&d->mu);
	return n;
}

const struct sl_accel_ops sl__accel_xrt_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "xrt",
	.open = xrt_open,
	.close = xrt_close,
	.info = xrt_info,
	.crc32c_batch = xrt_crc32c_batch,
	.bloom_build = xrt_bloom_build,
	.bloom_probe = xrt_bloom_probe,
	.merge = xrt_merge,
	.submit = xrt_submit,
	.poll = xrt_poll,
};
