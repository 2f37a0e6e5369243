/* accel.h - the accelerator seam: CRC32C, bloom build and probe, and the fused compaction merge
 * behind one versioned vtable, each callable synchronously or submitted asynchronously with a
 * completion callback. Callers see struct sl_accel and the sl__accel_* calls only, never a
 * backend. accel depends only on the leaves block.h (the table data-block codec) and bloom.h
 * (the filter's hash and bit layout), which every backend reproduces bit for bit.
 *
 * Backends: cpu (accel_cpu.c: ISA-L, the reference), sim (accel_sim.c: the device model of sim/
 * running firmware/'s command processor), opencl (accel_opencl.c: any OpenCL device through the
 * ICD loader, kernels/ (OpenCL C)), xrt (accel_xrt.c: native XRT loaded with dlopen), and auto
 * (accel_auto.c: the planner, which calibrates the others at open and routes each call to the
 * one predicted fastest for its size). Every backend must give bit-identical results to cpu.
 */
#ifndef SL_ACCEL_H
#define SL_ACCEL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define SL_ACCEL_OPS_VERSION 3

struct sl_accel_buf {
	const void *data;
	size_t len;
};

/* ---- The fused merge job ------------------------------------------------------------------
 *
 * k sorted runs in, one merged run out, as a table's data blocks ready to write. A run is a
 * sequence of encoded data blocks (block.h: entries, restarts, count, CRC32C) in key order,
 * typically a slice of one table's mapping. The job checks each input block's CRC and layout
 * before using it, decodes the entries, merges them in key (memcmp) order, and where several runs
 * hold the same key keeps the entry of the lowest-numbered run (runs[0] is the newest). An entry
 * whose flags have SL_ACCEL_TOMBSTONE set is dropped from the output when the job has
 * SL_ACCEL_MERGE_DROP_TOMBSTONES (the output is the bottom of the tree: nothing older remains
 * under it); otherwise it is kept like any other. Only keys k with lo < k <= hi are emitted
 * (lo_len 0: no lower bound; hi_len 0: no upper bound), so a host can cut a large merge into
 * jobs of bounded size by handing each one the blocks that overlap its key range.
 *
 * Out: the surviving entries encoded as data blocks exactly as block.h's encoder cuts them
 * (block_bytes, restart_interval), back to back in out; per output block its offset in out,
 * size (trailer included), CRC32C (the same value stored in its trailer) and last key; and the
 * bloom filter (bloom.h) over every output key, sized sl__bloom_bytes(entries, bits_per_key)
 * with sl__bloom_probes(bits_per_key) probes. That is everything a table needs besides its
 * index and footer, so the data crosses to a device once.
 *
 * Zero parameters take sst's defaults: block_bytes 4096, restart_interval 16, bits_per_key 10.
 * Input blocks need no alignment. A run's blocks are read in order and only as far as needed:
 * each is checked (CRC, then layout) when the merge reaches it, its entries as they are decoded
 * (bounds, restart points, keys strictly increasing within the run, across its blocks too);
 * blocks after the first key above hi are never read.
 *
 * Returns 0; -ENOSPC when out, blocks or bloom is too small (need_* then say exactly how much
 * is needed, all three: grow and submit again; the counters are filled, out_len, n_blocks and
 * bloom_len are 0); SL_ECORRUPT for a damaged input block (bad_run, bad_block name it; nothing
 * useful is in the outputs) or input keys out of order within a run (named the same way: the
 * block where the order breaks); -EINVAL for bad parameters (block_bytes < 64, bits_per_key >
 * 64, n_runs > SL_ACCEL_MAX_RUNS, unknown flags, a NULL pointer with a nonzero length or
 * capacity); -ENOMEM when a backend's scratch cannot be had; -EFBIG when one output block would
 * pass 4 GiB (block offsets are u32: only values of nearly that size can). On success need_* are
 * what was used. bloom_probes is set on every return past the parameter checks. */
#define SL_ACCEL_MAX_RUNS 256
#define SL_ACCEL_MAX_KEY 64
#define SL_ACCEL_TOMBSTONE 1u /* entry flag: droppable at the bottom (sst.h SL_SST_TOMBSTONE) */

enum sl_accel_merge_flags {
	SL_ACCEL_MERGE_DROP_TOMBSTONES = 1 << 0,
};

struct sl_accel_run {
	const struct sl_accel_buf *blocks; /* encoded data blocks, trailers included, in key order */
	size_t n_blocks;
};

struct sl_accel_block {
	uint64_t off;   /* in out */
	uint32_t len;   /* trailer included */
	uint32_t crc;   /* CRC32C of the first len - 4 bytes, as stored in the last 4 */
	uint32_t last_len;
	uint8_t last[SL_ACCEL_MAX_KEY];
};

struct sl_accel_merge_job {
	/* In */
	const struct sl_accel_run *runs;
	size_t n_runs;
	const uint8_t *lo, *hi;
	size_t lo_len, hi_len;
	uint32_t flags;              /* enum sl_accel_merge_flags */
	uint32_t block_bytes;        /* target data block size (sst's default 4096) */
	uint32_t restart_interval;   /* entries between full keys (16) */
	uint32_t bits_per_key;       /* bloom bits per key (10) */
	/* Out buffers, owned by the caller */
	uint8_t *out;
	size_t out_cap;
	struct sl_accel_block *blocks;
	size_t blocks_cap;
	uint8_t *bloom;
	size_t bloom_cap;
	/* Out values */
	size_t out_len, n_blocks, bloom_len;
	uint32_t bloom_probes;
	uint64_t entries_in, entries_out; /* entries read (in range) and written */
	uint64_t dropped_older;           /* shadowed by a newer run's entry of the same key */
	uint64_t dropped_tombstones;
	uint8_t smallest[SL_ACCEL_MAX_KEY];
	uint32_t smallest_len;            /* 0 when nothing was written */
	size_t need_out, need_blocks, need_bloom; /* with -ENOSPC */
	size_t bad_run, bad_block;                /* with SL_ECORRUPT */
};

/* ---- Bloom filters ------------------------------------------------------------------------
 *
 * Filters have bloom.h's layout (64-byte blocks, its hash, block choice and probe bits). Both
 * operations take key hashes (sl__bloom_hash), which callers have at hand anyway. */
struct sl_accel_filter {
	const uint8_t *bits;
	size_t size;  /* bytes, a multiple of 64 (below one block: rules nothing out) */
	uint32_t k;   /* probes per key */
};

/* ---- Asynchronous requests ----------------------------------------------------------------
 *
 * Any operation can be submitted and completed later: sl__accel_submit queues it (the buffers
 * it names must stay valid and untouched until completion), sl__accel_poll runs the callbacks
 * of finished requests on the polling thread. A backend without its own queue (cpu) runs a
 * request at submit and completes it at the next poll. */
enum sl_accel_op {
	SL_ACCEL_OP_CRC32C = 1,
	SL_ACCEL_OP_BLOOM_BUILD,
	SL_ACCEL_OP_BLOOM_PROBE,
	SL_ACCEL_OP_MERGE,
};

struct sl_accel_req {
	int op; /* enum sl_accel_op */
	union {
		struct {
			const struct sl_accel_buf *bufs;
			size_t n;
			uint32_t *out;
		} crc;
		struct {
			const uint64_t *hashes;
			size_t n;
			uint32_t k;
			uint8_t *filter;
			size_t size;
		} build;
		struct {
			const struct sl_accel_filter *filters;
			size_t nfilters;
			const uint32_t *which; /* per key: its filter's index (NULL: all filter 0) */
			const uint64_t *hashes;
			size_t n;
			uint8_t *out;
		} probe;
		struct sl_accel_merge_job *merge;
	} u;
	void (*done)(struct sl_accel_req *req, void *arg); /* status is set before it runs */
	void *arg;
	int status;          /* the operation's return, at completion */
	uint64_t device_ns;  /* modelled or measured time on the device (0: not known) */
	struct sl_accel_req *next; /* private to the seam and the backend */
	void *priv;
};

/* What a backend says of itself (sluice accel). */
struct sl_accel_info {
	char name[16];      /* the backend: cpu, sim, opencl, xrt */
	char device[128];   /* the device it drives ("ISA-L on x86-64", "NVIDIA H100 (OpenCL 3.0)") */
	char detail[256];   /* free text: platform, driver, profile, compute units, memory */
	uint32_t flags;     /* SL_ACCEL_INFO_* */
};

enum sl_accel_info_flags {
	SL_ACCEL_INFO_DEVICE = 1 << 0, /* a real device (not the cpu, not a model) */
	SL_ACCEL_INFO_MODEL = 1 << 1,  /* a model of a device (sim): its times are modelled */
};

/* Where and how to open a backend; zeroed fields take defaults. */
struct sl_accel_config {
	const char *binary;      /* --accel-binary: an xclbin or OpenCL program binary */
	const char *device;      /* OpenCL: platform or device name substring, or "P:D" indexes */
	const char *sim_profile; /* sim: "fpga" (PCIe FPGA card, default) or "gpu", optionally
				    followed by ",ring=N" (queue depth) and ",mem_mb=N" (device
				    memory, default 1024); see sim/README.md */
	const char *cache_dir;   /* OpenCL program-binary cache (default $XDG_CACHE_HOME/sluice) */
	int calibrate;           /* auto: 0 = default probes, -1 = none (tests) */
	int devices_only;        /* opencl: GPU and accelerator devices only, never a CPU device
				    (the planner sets it: PoCL on the host is the cpu again) */
	int plan_models;         /* auto: plan over the sim as well, timing it by its modelled
				    device time (what offload would do on the card it models;
				    demos and tests: its wall time is this CPU's) */
	unsigned timeout_ms;     /* xrt, opencl: a run or command phase not complete by then
				    means a hung device (0: 30 s; the sim's watchdog is its
				    profile's timeout_ms) */
	int one_work_item;       /* opencl: start every kernel as one work-item that loops over
				    all items, as an FPGA compute unit runs it (always so on an
				    accelerator-type device; tests set it to check that form) */
};

struct sl_accel_ops {
	int version;           /* SL_ACCEL_OPS_VERSION */
	const char *name;      /* "cpu", "sim", "opencl", "xrt", "auto" */
	/* Probe and open the device. 0, -ENODEV when absent (with a one-line reason in why, which
	 * may be NULL), or -errno. */
	int (*open)(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap);
	void (*close)(void *dev);
	void (*info)(void *dev, struct sl_accel_info *out);
	/* out[i] = CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of bufs[i], for
	 * i < n. Buffers may have any length (0 included) and alignment. Returns 0 or -errno. */
	int (*crc32c_batch)(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out);
	/* Set the bits of n hashes, k probes each, in filter (size bytes, a multiple of 64; bits
	 * already set stay set: zero it first for a new filter). 0 or -errno (-EINVAL: a size not
	 * a multiple of 64, k of 0 or above 64). */
	int (*bloom_build)(void *dev, const uint64_t *hashes, size_t n, uint32_t k, uint8_t *filter,
			   size_t size);
	/* out[i] = may_contain(filters[which ? which[i] : 0], hashes[i]) for i < n (1 or 0). 0, or
	 * -EINVAL for a which[i] >= nfilters. */
	int (*bloom_probe)(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
			   const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out);
	/* The fused merge job (above), synchronously. Thread-safe for distinct jobs. */
	int (*merge)(void *dev, struct sl_accel_merge_job *job);
	/* Optional (NULL: the seam runs requests synchronously at submit). Queue req: 0, or
	 * -EAGAIN when the device queue is full (poll, then submit again). */
	int (*submit)(void *dev, struct sl_accel_req *req);
	/* Optional with submit. Move finished requests to *done (a list through req->next, status
	 * and device_ns set), waiting up to timeout_ns for at least one when none is finished
	 * (0: do not wait). Returns how many. */
	int (*poll)(void *dev, int64_t timeout_ns, struct sl_accel_req **done);
};

struct sl_accel {
	const struct sl_accel_ops *ops;
	void *dev;
	/* The seam's own completion list for backends without submit/poll. */
	void *mu;
	struct sl_accel_req *done, **done_tail;
	uint64_t inflight;
	/* Device faults (sl__accel_fault): calls run again on cpu, and whether the device is
	 * lost (then every call goes to cpu at once). Atomics. */
	uint64_t fallbacks;
	int lost;
};

/* A device fault: a backend's -EIO (a device or driver error), -ETIMEDOUT (its watchdog gave
 * up on a hung command) or -ENODEV (the device is gone). Never from cpu, never for bad
 * arguments (-EINVAL), a full output (-ENOSPC) or damaged input (SL_ECORRUPT). */
static inline int sl__accel_is_fault(int r)
{
	return r == -EIO || r == -ETIMEDOUT || r == -ENODEV;
}

struct sl_accel_health {
	uint64_t fallbacks; /* calls a device fault sent to cpu */
	int lost;	    /* the device is gone: everything runs on cpu */
};
void sl__accel_health(const struct sl_accel *a, struct sl_accel_health *out);

/* The planner's view, for tests and the report: calls of op routed to the member named backend
 * so far (0 when a is not auto or has no such member), and the size from which op goes to a
 * device (UINT64_MAX: cpu at every size) with that device's name in *to (may be NULL). */
uint64_t sl__accel_auto_routed(const struct sl_accel *a, const char *backend, int op);
uint64_t sl__accel_auto_threshold(const struct sl_accel *a, int op, const char **to);

/* The job's out values and return from what the firmware's merge engine (firmware/fw_merge.h)
 * left in res with status: the cpu backend runs that engine on the host, the sim backend reads
 * its result back from device memory. */
struct fw_merge_result;
int sl__accel_fw_merge_result(struct sl_accel_merge_job *j, const struct fw_merge_result *res,
			      uint32_t status);

/* The backends compiled in, cpu first. */
extern const struct sl_accel_ops sl__accel_cpu_ops;
extern const struct sl_accel_ops sl__accel_sim_ops;
extern const struct sl_accel_ops sl__accel_opencl_ops;
extern const struct sl_accel_ops sl__accel_xrt_ops;
extern const struct sl_accel_ops sl__accel_auto_ops;
/* Every backend but auto, in preference order for listing: cpu, sim, opencl, xrt. */
extern const struct sl_accel_ops *const sl__accel_backends[];
extern const size_t sl__accel_nbackends;

/* Open the backend named by mode: "cpu", "sim", "opencl", "xrt", or "auto"/NULL (the planner:
 * cpu plus every real device present, each call routed by the calibrated cost model). cfg may
 * be NULL. SL_ECONFIG for an unknown name, -ENODEV when the named backend is absent (why, if
 * not NULL, says why in one line), or -errno. */
int sl__accel_open_cfg(const char *mode, const struct sl_accel_config *cfg,
		       struct sl_accel **out, char *why, size_t why_cap);
int sl__accel_open(const char *mode, struct sl_accel **out);
void sl__accel_close(struct sl_accel *a);

/* The request again on cpu after a device fault r (or at once once the device is lost):
 * counts it, says so on stderr (once per kind of fault), marks the device lost on -ENODEV.
 * Returns the cpu's status. Thread-safe. */
int sl__accel_fault(const struct sl_accel *a, struct sl_accel_req *req, int r);

/* The calls: the backend's, and on a device fault the same call on cpu, so a caller sees a
 * device fault only as time (results are bit-identical whichever runs them). */
static inline int sl__accel_crc32c_batch(const struct sl_accel *a, const struct sl_accel_buf *bufs,
					 size_t n, uint32_t *out)
{
	int r = __atomic_load_n(&a->lost, __ATOMIC_RELAXED) ? -ENODEV
							     : a->ops->crc32c_batch(a->dev, bufs, n, out);
	if (__builtin_expect(r < 0 && sl__accel_is_fault(r), 0)) {
		struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C, .u.crc = { bufs, n, out } };
		r = sl__accel_fault(a, &q, r);
	}
	return r;
}

static inline int sl__accel_bloom_build(const struct sl_accel *a, const uint64_t *hashes, size_t n,
					uint32_t k, uint8_t *filter, size_t size)
{
	int r = __atomic_load_n(&a->lost, __ATOMIC_RELAXED)
			? -ENODEV
			: a->ops->bloom_build(a->dev, hashes, n, k, filter, size);
	if (__builtin_expect(r < 0 && sl__accel_is_fault(r), 0)) {
		struct sl_accel_req q = { .op = SL_ACCEL_OP_BLOOM_BUILD,
					  .u.build = { hashes, n, k, filter, size } };
		r = sl__accel_fault(a, &q, r);
	}
	return r;
}

static inline int sl__accel_bloom_probe(const struct sl_accel *a,
					const struct sl_accel_filter *filters, size_t nfilters,
					const uint32_t *which, const uint64_t *hashes, size_t n,
					uint8_t *out)
{
	int r = __atomic_load_n(&a->lost, __ATOMIC_RELAXED)
			? -ENODEV
			: a->ops->bloom_probe(a->dev, filters, nfilters, which, hashes, n, out);
	if (__builtin_expect(r < 0 && sl__accel_is_fault(r), 0)) {
		struct sl_accel_req q = { .op = SL_ACCEL_OP_BLOOM_PROBE,
					  .u.probe = { filters, nfilters, which, hashes, n, out } };
		r = sl__accel_fault(a, &q, r);
	}
	return r;
}

static inline int sl__accel_merge(const struct sl_accel *a, struct sl_accel_merge_job *job)
{
	int r = __atomic_load_n(&a->lost, __ATOMIC_RELAXED) ? -ENODEV : a->ops->merge(a->dev, job);
	if (__builtin_expect(r < 0 && sl__accel_is_fault(r), 0)) {
		struct sl_accel_req q = { .op = SL_ACCEL_OP_MERGE, .u.merge = job };
		r = sl__accel_fault(a, &q, r);
	}
	return r;
}

static inline void sl__accel_info(const struct sl_accel *a, struct sl_accel_info *out)
{
	a->ops->info(a->dev, out);
}

/* The merge job's parameter checks every backend makes first (the -EINVAL cases of the job's
 * contract: run count, block size, bits per key, flags, NULL pointers with lengths). 0 or
 * -EINVAL; touches nothing. */
int sl__accel_merge_check(const struct sl_accel_merge_job *j);

/* Run req synchronously through the ops (what submit does for a backend without a queue):
 * sets req->status and returns it. Backends may use it too. */
int sl__accel_run_req(const struct sl_accel_ops *ops, void *dev, struct sl_accel_req *req);

/* Submit req (op, its arguments, done and arg filled). 0 or -EAGAIN (queue full: poll first).
 * Thread-safe. */
int sl__accel_submit(struct sl_accel *a, struct sl_accel_req *req);
/* Run the callbacks of finished requests, waiting up to timeout_ns for one when none has
 * finished and some are in flight. Returns how many completed. One poller at a time. */
int sl__accel_poll(struct sl_accel *a, int64_t timeout_ns);

/* One buffer: the batch call with n = 1. */
static inline uint32_t sl__accel_crc32c(const struct sl_accel *a, const void *data, size_t len)
{
	struct sl_accel_buf b = { data, len };
	uint32_t crc = 0;
	sl__accel_crc32c_batch(a, &b, 1, &crc);
	return crc;
}

#endif /* SL_ACCEL_H */
