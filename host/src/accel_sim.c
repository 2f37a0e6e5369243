/* accel_sim.c - the sim backend: a driver for the modelled device of sim/, written as a driver
 * for a PCIe card would be. Each operation becomes one command: its inputs are copied into
 * device buffers (one DMA per input, scattered host buffers gathered in one transfer), a
 * descriptor (firmware/fw_abi.h) goes on the submission ring and the doorbell rings; the
 * device's interrupt handler takes completions off the completion ring; outputs are copied
 * back and the buffers freed. A synchronous call is a submit and a wait, in polled mode (the
 * caller's thread runs the device's command processor rather than sleeping while the device
 * thread wakes: sim.h says why); submit/poll queue requests on the ring for the device thread.
 * Device buffers are allocated per command, exactly sized, and freed at its end. Results are
 * bit-identical to the cpu backend's: the same checks here before anything reaches the device,
 * the same algorithms in firmware. Each request's device_ns is its modelled time: copies in,
 * launch and kernel, copies out.
 *
 * Threads: every entry point is thread-safe. mu guards the ring slots, the list of finished
 * asynchronous requests and the counters; it is never held across a copy or the device's work.
 * The interrupt handler runs where a command completes (the device thread, or a synchronous
 * caller in polled mode): it finishes asynchronous commands there (so their device memory is
 * back as soon as they are done) and wakes synchronous callers, who finish their own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accel.h"
#include "bloom.h"
#include "fw_abi.h"
#include "sim.h"
#include "sluice.h"

#define MERGE_HASHES_MAX 32768 /* output keys' hashes kept in scratch, at most (256 KiB) */

_Static_assert(SL_ACCEL_MAX_RUNS == FW_MERGE_MAX_RUNS, "run limits agree");
_Static_assert(SL_ACCEL_MAX_KEY == FW_MERGE_MAX_KEY, "key limits agree");
_Static_assert(SL_ACCEL_TOMBSTONE == FW_MERGE_TOMBSTONE, "tombstone flags agree");
_Static_assert((int)SL_ACCEL_MERGE_DROP_TOMBSTONES == (int)FW_MERGE_DROP_TOMBSTONES,
	       "merge flags agree");

/* One command from preparation to its caller. */
struct cmd {
	struct sl_accel_req *req;
	int sync;
	int completed; /* the completion is in cpl (sync commands: the caller finishes) */
	int failed;    /* the watchdog gave up on it: -ETIMEDOUT or -ENODEV (cpl unset) */
	uint64_t issued_ns; /* when it went on the ring (the watchdog's clock) */
	uint64_t tag;
	struct fw_desc desc;
	struct fw_completion cpl;
	uint32_t buf; /* its device buffer (0: none) */
	uint64_t h2d_ns, d2h_ns;
	struct cmd *next; /* the finished list */
};

struct simdrv {
	struct sim_dev *sim;
	struct sim_profile prof;
	pthread_mutex_t mu;
	pthread_cond_t cv;	       /* a command completed or finished; a slot came free */
	struct cmd **slots;	       /* per ring entry: the command that holds it, or NULL */
	uint32_t *gen;		       /* per slot: the tag generation */
	uint32_t nslots, nbusy;	       /* ring entries, those holding a command on the device */
	uint64_t holding;	       /* commands holding device buffers (staged to finished) */
	uint64_t released;	       /* commands that gave their buffers back, ever */
	struct cmd *done, **done_tail; /* finished asynchronous commands, for poll */
	uint64_t async_out;	       /* asynchronous requests submitted and not yet polled */
	uint64_t spurious;	       /* completions whose tag named no command (a device fault) */
	int recovering;		       /* the watchdog resets the device: nothing new is issued */
	uint64_t timeouts, resets;     /* commands the watchdog gave up on; resets it made */
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void lock(struct simdrv *v)
{
	pthread_mutex_lock(&v->mu);
}

static void unlock(struct simdrv *v)
{
	pthread_mutex_unlock(&v->mu);
}

/* ---- Device buffers ------------------------------------------------------------------------- */

/* The command's device memory: one buffer, reference i the len[i] bytes at a 64-byte-aligned
 * offset in it (len[i] 0: the null reference), so the firmware sees separate references that
 * never overlap, and a command costs one allocation. 0 or -ENOMEM. */
static int dbufs(struct simdrv *v, struct cmd *c, const uint64_t *len, int n)
{
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		if (!len[i])
			continue;
		if (len[i] > UINT64_MAX - 64 - total)
			return -ENOMEM;
		c->desc.ref[i].off = total;
		c->desc.ref[i].len = len[i];
		total = (total + len[i] + 63) & ~63ull;
	}
	if (!total)
		return 0;
	int r = sim_mem_alloc(v->sim, total, &c->buf);
	if (r < 0)
		return r;
	for (int i = 0; i < n; i++)
		if (len[i])
			c->desc.ref[i].handle = c->buf;
	return 0;
}

static void dbufs_free(struct simdrv *v, struct cmd *c)
{
	if (c->buf)
		sim_mem_free(v->sim, c->buf);
	c->buf = 0;
}

/* Copies to and from reference i (at off in it), their modelled time added to the command's. */
static int to_dev(struct simdrv *v, struct cmd *c, int i, const void *src, uint64_t len)
{
	uint64_t ns = 0;
	const struct fw_ref *f = &c->desc.ref[i];
	int r = len ? sim_dma_to_dev(v->sim, f->handle, f->off, src, len, &ns) : 0;
	c->h2d_ns += ns;
	return r;
}

static int to_dev_sg(struct simdrv *v, struct cmd *c, int i, const struct sim_sg *sg, size_t n)
{
	uint64_t ns = 0;
	const struct fw_ref *f = &c->desc.ref[i];
	int r = f->len ? sim_dma_to_dev_sg(v->sim, f->handle, f->off, sg, n, &ns) : 0;
	c->h2d_ns += ns;
	return r;
}

static int from_dev(struct simdrv *v, struct cmd *c, int i, uint64_t off, void *dst, uint64_t len)
{
	uint64_t ns = 0;
	const struct fw_ref *f = &c->desc.ref[i];
	int r = len ? sim_dma_from_dev(v->sim, f->handle, f->off + off, dst, len, &ns) : 0;
	c->d2h_ns += ns;
	return r;
}

/* ---- CRC32C --------------------------------------------------------------------------------- */

/* Refs: 0 segment table, 1 data (every buffer back to back, one gathered transfer), 2 CRCs. */
static int crc_stage(struct simdrv *v, struct cmd *c)
{
	const struct sl_accel_req *q = c->req;
	size_t n = q->u.crc.n;
	struct fw_seg *segs = malloc(n * (sizeof(*segs) + sizeof(struct sim_sg)));
	if (!segs)
		return -ENOMEM;
	struct sim_sg *sg = (struct sim_sg *)(segs + n);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		segs[i] = (struct fw_seg){ total, q->u.crc.bufs[i].len };
		sg[i] = (struct sim_sg){ q->u.crc.bufs[i].data, q->u.crc.bufs[i].len };
		total += q->u.crc.bufs[i].len;
	}
	c->desc.opcode = FW_OP_CRC32C;
	c->desc.arg[0] = n;
	int r;
	uint64_t len[3] = { n * sizeof(*segs), total, 4 * (uint64_t)n };
	if (!(r = dbufs(v, c, len, 3)) && !(r = to_dev(v, c, 0, segs, len[0])))
		r = to_dev_sg(v, c, 1, sg, n);
	free(segs);
	return r;
}

static int crc_finish(struct simdrv *v, struct cmd *c)
{
	/* The device's u32s are little-endian, as this host's are (fw_abi.h). */
	return from_dev(v, c, 2, 0, c->req->u.crc.out, 4 * (uint64_t)c->req->u.crc.n) ? -EIO : 0;
}

/* ---- Bloom build and probe ------------------------------------------------------------------ */

/* Refs: 0 hashes, 1 the filter (copied in: bits already set stay set, and back). */
static int build_stage(struct simdrv *v, struct cmd *c)
{
	const struct sl_accel_req *q = c->req;
	size_t n = q->u.build.n, size = q->u.build.size;
	int r;
	c->desc.opcode = FW_OP_BLOOM_BUILD;
	c->desc.arg[0] = n;
	c->desc.arg[1] = q->u.build.k;
	uint64_t len[2] = { 8 * (uint64_t)n, size };
	if (!(r = dbufs(v, c, len, 2)) && !(r = to_dev(v, c, 0, q->u.build.hashes, len[0])))
		r = to_dev(v, c, 1, q->u.build.filter, size);
	return r;
}

static int build_finish(struct simdrv *v, struct cmd *c)
{
	return from_dev(v, c, 1, 0, c->req->u.build.filter, c->req->u.build.size) ? -EIO : 0;
}

/* Refs: 0 filter table, 1 the bits of the filters the keys use (whole 64-byte blocks only: a
 * filter's partial block is never read), 2 which (or null), 3 hashes, 4 answers. */
static int probe_stage(struct simdrv *v, struct cmd *c)
{
	const struct sl_accel_req *q = c->req;
	size_t n = q->u.probe.n, nf = q->u.probe.nfilters;
	const struct sl_accel_filter *f = q->u.probe.filters;
	const uint32_t *which = q->u.probe.which;
	struct fw_filter *tab = calloc(nf, sizeof(*tab) + sizeof(struct sim_sg) + 1);
	if (!tab)
		return -ENOMEM;
	struct sim_sg *sg = (struct sim_sg *)(tab + nf);
	uint8_t *used = (uint8_t *)(sg + nf);
	if (which)
		for (size_t i = 0; i < n; i++)
			used[which[i]] = 1;
	else
		used[0] = 1;
	uint64_t bits = 0;
	size_t nsg = 0;
	for (size_t i = 0; i < nf; i++) {
		tab[i].k = f[i].k;
		if (!used[i] || f[i].size < SL_BLOOM_BLOCK)
			continue;
		tab[i].off = bits;
		tab[i].size = f[i].size / SL_BLOOM_BLOCK * SL_BLOOM_BLOCK;
		sg[nsg++] = (struct sim_sg){ f[i].bits, tab[i].size };
		bits += tab[i].size;
	}
	c->desc.opcode = FW_OP_BLOOM_PROBE;
	c->desc.arg[0] = n;
	c->desc.arg[1] = nf;
	int r;
	uint64_t len[5] = { nf * sizeof(*tab), bits, which ? 4 * (uint64_t)n : 0, 8 * (uint64_t)n,
			    n };
	if (!(r = dbufs(v, c, len, 5)) && !(r = to_dev(v, c, 0, tab, len[0])) &&
	    !(r = to_dev(v, c, 2, which, len[2])) &&
	    !(r = to_dev(v, c, 3, q->u.probe.hashes, len[3])))
		r = to_dev_sg(v, c, 1, sg, nsg);
	free(tab);
	return r;
}

static int probe_finish(struct simdrv *v, struct cmd *c)
{
	return from_dev(v, c, 4, 0, c->req->u.probe.out, c->req->u.probe.n) ? -EIO : 0;
}

/* ---- The merge ------------------------------------------------------------------------------ */

/* The cpu backend's parameter checks, in its order: -EINVAL before anything is touched. */
static int merge_check(struct sl_accel_merge_job *j)
{
	int r = sl__accel_merge_check(j);
	if (r)
		return r;
	/* Past the checks every out value starts as the reference leaves it. */
	j->out_len = j->n_blocks = j->bloom_len = 0;
	j->bloom_probes =
		sl__bloom_probes(j->bits_per_key ? j->bits_per_key : SL_BLOOM_DEFAULT_BITS);
	j->entries_in = j->entries_out = j->dropped_older = j->dropped_tombstones = 0;
	j->smallest_len = 0;
	j->need_out = j->need_blocks = j->need_bloom = 0;
	j->bad_run = j->bad_block = 0;
	return 0;
}

/* Refs: 0 job (header, runs, block table, lo, hi), 1 input blocks (gathered), 2 scratch, 3 out,
 * 4 output block table, 5 bloom, 6 result. Output buffers are not copied in: the firmware
 * writes what the caller gets back. */
static int merge_stage(struct simdrv *v, struct cmd *c)
{
	const struct sl_accel_merge_job *j = c->req->u.merge;
	uint64_t nb = 0, input = 0;
	for (size_t i = 0; i < j->n_runs; i++) {
		nb += j->runs[i].n_blocks;
		for (size_t b = 0; b < j->runs[i].n_blocks; b++)
			input += j->runs[i].blocks[b].len;
	}
	uint64_t runs_at = sizeof(struct fw_merge_job);
	uint64_t segs_at = runs_at + j->n_runs * sizeof(struct fw_merge_run);
	uint64_t lo_at = segs_at + nb * sizeof(struct fw_seg), hi_at = lo_at + j->lo_len;
	uint64_t job_len = hi_at + j->hi_len;
	uint64_t sg_at = (job_len + 7) & ~7ull; /* the gather list after the job, aligned */
	uint8_t *job = malloc(sg_at + nb * sizeof(struct sim_sg));
	if (!job)
		return -ENOMEM;
	struct sim_sg *sg = (struct sim_sg *)(job + sg_at);
	struct fw_merge_job head = { j->n_runs, nb, j->lo_len, j->hi_len };
	memcpy(job, &head, sizeof(head));
	uint64_t first = 0, off = 0;
	for (size_t i = 0; i < j->n_runs; i++) {
		struct fw_merge_run run = { first, j->runs[i].n_blocks };
		memcpy(job + runs_at + i * sizeof(run), &run, sizeof(run));
		for (size_t b = 0; b < j->runs[i].n_blocks; b++) {
			const struct sl_accel_buf *in = &j->runs[i].blocks[b];
			struct fw_seg s = { off, in->len };
			memcpy(job + segs_at + (first + b) * sizeof(s), &s, sizeof(s));
			sg[first + b] = (struct sim_sg){ in->data, in->len };
			off += in->len;
		}
		first += j->runs[i].n_blocks;
	}
	if (j->lo_len)
		memcpy(job + lo_at, j->lo, j->lo_len);
	if (j->hi_len)
		memcpy(job + hi_at, j->hi, j->hi_len);

	/* Scratch: the firmware's fixed part, and every output key's hash when the input cannot
	 * hold more keys than MERGE_HASHES_MAX (each entry takes 5 bytes at least); else the
	 * firmware builds the filter from the output blocks. */
	uint32_t bb = j->block_bytes ? j->block_bytes : 4096;
	uint64_t scratch = fw_merge_scratch_bytes(j->n_runs, bb, input);
	uint64_t max_keys = input / 5 + 1;
	if (max_keys <= MERGE_HASHES_MAX)
		scratch += 8 * max_keys;

	c->desc.opcode = FW_OP_MERGE;
	c->desc.flags = j->flags;
	c->desc.arg[0] = j->block_bytes;
	c->desc.arg[1] = j->restart_interval;
	c->desc.arg[2] = j->bits_per_key;
	int r;
	uint64_t len[7] = {
		job_len,
		input,
		scratch,
		j->out_cap,
		j->blocks_cap * sizeof(struct fw_out_block),
		j->bloom_cap,
		sizeof(struct fw_merge_result),
	};
	if (!(r = dbufs(v, c, len, 7)) && !(r = to_dev(v, c, 0, job, job_len)))
		r = to_dev_sg(v, c, 1, sg, nb);
	free(job);
	return r;
}

static int merge_finish(struct simdrv *v, struct cmd *c)
{
	struct sl_accel_merge_job *j = c->req->u.merge;
	uint32_t st = c->cpl.status;
	if (st != FW_OK && st != FW_ENOSPC && st != FW_ECORRUPT && st != FW_EFBIG)
		return st == FW_EARG ? -EINVAL : -EIO;
	struct fw_merge_result res;
	if (from_dev(v, c, 6, 0, &res, sizeof(res)))
		return -EIO;
	int r = sl__accel_fw_merge_result(j, &res, st);
	if (r)
		return r;
	if (res.out_len > j->out_cap || res.n_blocks > j->blocks_cap ||
	    res.bloom_len > j->bloom_cap)
		return -EIO; /* a device that overstates its output */
	if (from_dev(v, c, 3, 0, j->out, res.out_len) ||
	    from_dev(v, c, 5, 0, j->bloom, res.bloom_len))
		return -EIO;
	/* The block table field by field: bytes of last past last_len stay the caller's. */
	struct fw_out_block ob[64];
	for (uint64_t i = 0; i < res.n_blocks; i += 64) {
		uint64_t m = res.n_blocks - i < 64 ? res.n_blocks - i : 64;
		if (from_dev(v, c, 4, i * sizeof(*ob), ob, m * sizeof(*ob)))
			return -EIO;
		for (uint64_t b = 0; b < m; b++) {
			struct sl_accel_block *o = &j->blocks[i + b];
			o->off = ob[b].off;
			o->len = ob[b].len;
			o->crc = ob[b].crc;
			o->last_len = ob[b].last_len <= SL_ACCEL_MAX_KEY ? ob[b].last_len : 0;
			memcpy(o->last, ob[b].last, o->last_len);
		}
	}
	return 0;
}

/* ---- Commands ------------------------------------------------------------------------------- */

/* The host's checks of a request, the cpu backend's: -EINVAL as it would return it, 1 when it
 * has nothing to do (0 items), 0 to go to the device. */
static int check_req(struct sl_accel_req *q)
{
	switch (q->op) {
	case SL_ACCEL_OP_CRC32C:
		if (q->u.crc.n && (!q->u.crc.bufs || !q->u.crc.out))
			return -EINVAL;
		for (size_t i = 0; i < q->u.crc.n; i++)
			if (q->u.crc.bufs[i].len && !q->u.crc.bufs[i].data)
				return -EINVAL;
		return q->u.crc.n ? 0 : 1;
	case SL_ACCEL_OP_BLOOM_BUILD:
		if (q->u.build.size % SL_BLOOM_BLOCK || q->u.build.k == 0 || q->u.build.k > 64 ||
		    (q->u.build.n && !q->u.build.hashes) || (q->u.build.size && !q->u.build.filter))
			return -EINVAL;
		return q->u.build.n && q->u.build.size ? 0 : 1;
	case SL_ACCEL_OP_BLOOM_PROBE:
		if (q->u.probe.n && (!q->u.probe.hashes || !q->u.probe.out ||
				     !q->u.probe.nfilters || !q->u.probe.filters))
			return -EINVAL;
		if (q->u.probe.which)
			for (size_t i = 0; i < q->u.probe.n; i++)
				if (q->u.probe.which[i] >= q->u.probe.nfilters)
					return -EINVAL;
		return q->u.probe.n ? 0 : 1;
	case SL_ACCEL_OP_MERGE:
		return q->u.merge ? merge_check(q->u.merge) : -EINVAL;
	}
	return -EINVAL;
}

static int stage(struct simdrv *v, struct cmd *c)
{
	memset(&c->desc, 0, sizeof(c->desc));
	c->h2d_ns = c->d2h_ns = 0;
	switch (c->req->op) {
	case SL_ACCEL_OP_CRC32C:
		return crc_stage(v, c);
	case SL_ACCEL_OP_BLOOM_BUILD:
		return build_stage(v, c);
	case SL_ACCEL_OP_BLOOM_PROBE:
		return probe_stage(v, c);
	default:
		return merge_stage(v, c);
	}
}

/* A command gives its device buffers back: waiters for device memory look again. */
static void release(struct simdrv *v, struct cmd *c)
{
	dbufs_free(v, c);
	lock(v);
	v->holding--;
	v->released++;
	pthread_cond_broadcast(&v->cv);
	unlock(v);
}

/* Outputs back, buffers released, status and modelled time into the request. A status the
 * host's checks should have caught first (FW_EARG) is -EINVAL; any other refusal is a driver
 * or device fault: -EIO. */
static void finish(struct simdrv *v, struct cmd *c)
{
	struct sl_accel_req *q = c->req;
	int r;
	if (c->failed)
		r = c->failed;
	else if (q->op == SL_ACCEL_OP_MERGE)
		r = merge_finish(v, c);
	else if (c->cpl.status != FW_OK)
		r = c->cpl.status == FW_EARG ? -EINVAL : -EIO;
	else if (q->op == SL_ACCEL_OP_CRC32C)
		r = crc_finish(v, c);
	else if (q->op == SL_ACCEL_OP_BLOOM_BUILD)
		r = build_finish(v, c);
	else
		r = probe_finish(v, c);
	release(v, c);
	q->status = r;
	q->device_ns = c->failed ? 0 : c->h2d_ns + c->cpl.device_ns + c->d2h_ns;
}

/* The interrupt handler, where a command completed (the device thread, or a caller in polled
 * mode): each completion's command is looked up by its tag and its ring slot freed; synchronous
 * callers are woken, asynchronous commands finished here and queued for poll. A tag that names
 * no command (a device fault) is counted and dropped. */
static void on_irq(void *arg)
{
	struct simdrv *v = arg;
	struct fw_completion cpl;
	while (sim_cq_pop(v->sim, &cpl)) {
		uint32_t idx = (uint32_t)cpl.tag;
		lock(v);
		struct cmd *c = idx < v->nslots ? v->slots[idx] : NULL;
		if (!c || c->tag != cpl.tag) {
			v->spurious++;
			unlock(v);
			continue;
		}
		v->slots[idx] = NULL;
		v->nbusy--;
		c->cpl = cpl;
		c->completed = 1;
		if (c->sync) {
			pthread_cond_broadcast(&v->cv);
			unlock(v);
			continue;
		}
		unlock(v);
		finish(v, c);
		lock(v);
		c->next = NULL;
		*v->done_tail = c;
		v->done_tail = &c->next;
		pthread_cond_broadcast(&v->cv);
		unlock(v);
	}
}

/* Stage c and put it on the ring. With wait, a full ring, or device memory held by other
 * commands, waits for them; without, those are -EAGAIN. -ENOMEM when device memory cannot
 * hold the command with no other command holding any. */
static int issue(struct simdrv *v, struct cmd *c, int wait)
{
	int r;
	if (sim_lost(v->sim))
		return -ENODEV;
	lock(v);
	if (!wait && v->nbusy == v->nslots) {
		unlock(v);
		return -EAGAIN;
	}
	v->holding++;
	unlock(v);
	for (;;) {
		r = stage(v, c);
		if (r != -ENOMEM)
			break;
		/* Give back what was had, as a release (another waiter may now fit), then wait
		 * for one by some other command, if any holds memory. */
		release(v, c);
		lock(v);
		if (!v->holding || !wait) {
			unlock(v);
			return v->holding ? -EAGAIN : -ENOMEM;
		}
		uint64_t seen = v->released;
		while (v->released == seen && v->holding)
			pthread_cond_wait(&v->cv, &v->mu);
		v->holding++;
		unlock(v);
	}
	if (r < 0) {
		release(v, c);
		return r;
	}
	lock(v);
	while (v->nbusy == v->nslots || v->recovering) {
		if (!wait) {
			unlock(v);
			release(v, c);
			return -EAGAIN;
		}
		pthread_cond_wait(&v->cv, &v->mu);
	}
	uint32_t idx = 0;
	while (v->slots[idx])
		idx++;
	v->slots[idx] = c;
	v->nbusy++;
	c->tag = (uint64_t)++v->gen[idx] << 32 | idx;
	c->desc.tag = c->tag;
	c->completed = 0;
	c->issued_ns = now_ns();
	/* The ring has room: it never holds more than nslots commands, and a slot is freed only
	 * once its completion is off the completion ring. */
	r = sim_sq_write(v->sim, &c->desc);
	if (r < 0) {
		v->slots[idx] = NULL;
		v->nbusy--;
	} else if (!wait) {
		sim_doorbell(v->sim);
	}
	unlock(v);
	if (r < 0) {
		release(v, c);
		return r;
	}
	/* A caller that waits lends its thread to the device (sim.h: polled mode), with no lock
	 * held: the interrupt handler may run on this thread. */
	if (wait)
		sim_doorbell_polled(v->sim);
	return 0;
}

/* ---- The watchdog ---------------------------------------------------------------------------
 * A command not complete timeout_ns after it went on the ring is presumed hung. The device is
 * reset (what it runs finishes first, the rest of its rings is dropped), completions it posted
 * are taken as ever, and every command still on the ring fails: -ETIMEDOUT, or -ENODEV when the
 * reset finds the device lost (from then on every call is -ENODEV at once). Nothing new is
 * issued meanwhile. The seam runs failed calls again on the cpu backend (accel.c). */

/* 1 when a command on the ring is overdue; else *next (if any is on the ring) is the earliest
 * deadline. Under mu. */
static int overdue_locked(struct simdrv *v, uint64_t now, uint64_t *next)
{
	*next = UINT64_MAX;
	for (uint32_t i = 0; i < v->nslots; i++) {
		struct cmd *c = v->slots[i];
		if (!c)
			continue;
		uint64_t dl = c->issued_ns + v->prof.timeout_ns;
		if (dl <= now)
			return 1;
		if (dl < *next)
			*next = dl;
	}
	return 0;
}

static void on_irq(void *arg);

static void recover(struct simdrv *v)
{
	lock(v);
	if (v->recovering) { /* another thread does it: wait for its end */
		while (v->recovering)
			pthread_cond_wait(&v->cv, &v->mu);
		unlock(v);
		return;
	}
	uint64_t next;
	if (!overdue_locked(v, now_ns(), &next)) { /* it completed meanwhile */
		unlock(v);
		return;
	}
	v->recovering = 1;
	unlock(v);
	int lost = sim_reset(v->sim) == -ENODEV;
	on_irq(v); /* what completed before the reset */
	struct cmd *failed = NULL;
	lock(v);
	for (uint32_t i = 0; i < v->nslots; i++) {
		struct cmd *c = v->slots[i];
		if (!c)
			continue;
		v->slots[i] = NULL;
		v->nbusy--;
		v->timeouts++;
		c->failed = lost ? -ENODEV : -ETIMEDOUT;
		c->completed = 1;
		if (!c->sync) {
			c->next = failed;
			failed = c;
		}
	}
	v->resets++;
	v->recovering = 0;
	pthread_cond_broadcast(&v->cv);
	unlock(v);
	while (failed) {
		struct cmd *c = failed;
		failed = c->next;
		finish(v, c);
		lock(v);
		c->next = NULL;
		*v->done_tail = c;
		v->done_tail = &c->next;
		pthread_cond_broadcast(&v->cv);
		unlock(v);
	}
}

static void abs_time(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

static int run_sync(struct simdrv *v, struct sl_accel_req *q)
{
	q->device_ns = 0;
	int r = check_req(q);
	if (r != 0)
		return q->status = r < 0 ? r : 0;
	struct cmd c = { .req = q, .sync = 1 };
	if ((r = issue(v, &c, 1)) < 0)
		return q->status = r;
	lock(v);
	while (!c.completed) {
		struct timespec ts;
		abs_time(&ts, c.issued_ns + v->prof.timeout_ns);
		if (pthread_cond_timedwait(&v->cv, &v->mu, &ts) == ETIMEDOUT && !c.completed) {
			unlock(v);
			recover(v);
			lock(v);
		}
	}
	unlock(v);
	finish(v, &c);
	return q->status;
}

/* ---- The ops -------------------------------------------------------------------------------- */

static int sim_crc32c_batch(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C };
	q.u.crc.bufs = bufs;
	q.u.crc.n = n;
	q.u.crc.out = out;
	return run_sync(dev, &q);
}

static int sim_bloom_build(void *dev, const uint64_t *hashes, size_t n, uint32_t k, uint8_t *filter,
			   size_t size)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_BLOOM_BUILD };
	q.u.build.hashes = hashes;
	q.u.build.n = n;
	q.u.build.k = k;
	q.u.build.filter = filter;
	q.u.build.size = size;
	return run_sync(dev, &q);
}

static int sim_bloom_probe(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
			   const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_BLOOM_PROBE };
	q.u.probe.filters = filters;
	q.u.probe.nfilters = nfilters;
	q.u.probe.which = which;
	q.u.probe.hashes = hashes;
	q.u.probe.n = n;
	q.u.probe.out = out;
	return run_sync(dev, &q);
}

static int sim_merge(void *dev, struct sl_accel_merge_job *job)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_MERGE };
	q.u.merge = job;
	return run_sync(dev, &q);
}

/* A request that ends without the device (checks failed, nothing to do, no memory): finished
 * now, returned by the next poll. */
static void complete_now(struct simdrv *v, struct cmd *c, int status)
{
	c->req->status = status;
	c->req->device_ns = 0;
	lock(v);
	c->next = NULL;
	*v->done_tail = c;
	v->done_tail = &c->next;
	pthread_cond_broadcast(&v->cv);
	unlock(v);
}

static int sim_submit(void *dev, struct sl_accel_req *q)
{
	struct simdrv *v = dev;
	struct cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->req = q;
	q->priv = c;
	lock(v);
	v->async_out++;
	unlock(v);
	int r = check_req(q);
	if (r == 0)
		r = issue(v, c, 0);
	if (r == -EAGAIN) {
		lock(v);
		v->async_out--;
		unlock(v);
		q->priv = NULL;
		free(c);
		return -EAGAIN;
	}
	if (r != 0)
		complete_now(v, c, r < 0 ? r : 0);
	return 0;
}

static int sim_poll(void *dev, int64_t timeout_ns, struct sl_accel_req **out)
{
	struct simdrv *v = dev;
	struct timespec ts;
	if (timeout_ns > 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ns / 1000000000;
		ts.tv_nsec += timeout_ns % 1000000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	uint64_t until = timeout_ns > 0 ? (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec
					: 0;
	lock(v);
	for (;;) {
		uint64_t now = now_ns(), next;
		if (overdue_locked(v, now, &next)) {
			unlock(v);
			recover(v);
			lock(v);
			continue;
		}
		if (v->done || !v->async_out || !timeout_ns || (timeout_ns > 0 && now >= until))
			break;
		/* Sleep to the poll's end or the earliest watchdog deadline, whichever is first. */
		uint64_t wake = timeout_ns > 0 && until < next ? until : next;
		if (wake == UINT64_MAX) {
			pthread_cond_wait(&v->cv, &v->mu);
		} else {
			struct timespec w;
			abs_time(&w, wake);
			pthread_cond_timedwait(&v->cv, &v->mu, &w);
		}
	}
	struct cmd *list = v->done;
	v->done = NULL;
	v->done_tail = &v->done;
	int n = 0;
	for (struct cmd *c = list; c; c = c->next)
		n++;
	v->async_out -= (uint64_t)n;
	unlock(v);
	struct sl_accel_req *head = NULL, **tail = &head;
	while (list) {
		struct cmd *c = list;
		list = c->next;
		*tail = c->req;
		tail = &c->req->next;
		c->req->priv = NULL;
		free(c);
	}
	*tail = NULL;
	*out = head;
	return n;
}

/* ---- Open, close, info ---------------------------------------------------------------------- */

static int sim_open_dev(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	*dev = NULL;
	struct simdrv *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	int r = sim_profile_parse(cfg ? cfg->sim_profile : NULL, &v->prof, why, why_cap);
	if (r < 0) {
		free(v);
		return SL_ECONFIG;
	}
	v->nslots = v->prof.ring;
	v->slots = calloc(v->nslots, sizeof(*v->slots));
	v->gen = calloc(v->nslots, sizeof(*v->gen));
	if (!v->slots || !v->gen) {
		r = -ENOMEM;
		goto out_free;
	}
	if ((r = sim_open(&v->prof, &v->sim)) < 0) {
		if (why && why_cap)
			snprintf(why, why_cap, "sim: the device model did not start: %s",
				 strerror(-r));
		goto out_free;
	}
	pthread_mutex_init(&v->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cv, &ca);
	pthread_condattr_destroy(&ca);
	v->done_tail = &v->done;
	sim_set_irq(v->sim, on_irq, v);
	*dev = v;
	return 0;
out_free:
	free(v->slots);
	free(v->gen);
	free(v);
	return r;
}

static void sim_close_dev(void *dev)
{
	struct simdrv *v = dev;
	if (!v)
		return;
	/* Commands on the device finish first: their buffers belong to callers. */
	lock(v);
	while (v->nbusy)
		pthread_cond_wait(&v->cv, &v->mu);
	unlock(v);
	sim_close(v->sim);
	/* Finished requests nobody polled (the seam polls them all before closing). */
	while (v->done) {
		struct cmd *c = v->done;
		v->done = c->next;
		c->req->priv = NULL;
		free(c);
	}
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
	free(v->slots);
	free(v->gen);
	free(v);
}

static void sim_info(void *dev, struct sl_accel_info *out)
{
	struct simdrv *v = dev;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "sim");
	snprintf(out->device, sizeof(out->device), "model of a %s", v->prof.card);
	sim_profile_describe(&v->prof, out->detail, sizeof(out->detail));
	out->flags = SL_ACCEL_INFO_MODEL;
}

const struct sl_accel_ops sl__accel_sim_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "sim",
	.open = sim_open_dev,
	.close = sim_close_dev,
	.info = sim_info,
	.crc32c_batch = sim_crc32c_batch,
	.bloom_build = sim_bloom_build,
	.bloom_probe = sim_bloom_probe,
	.merge = sim_merge,
	.submit = sim_submit,
	.poll = sim_poll,
};
