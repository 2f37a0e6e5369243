/* accel.c - the seam itself: the list of backends, opening one by name, and asynchronous
 * requests for backends that have no queue of their own (they run at submit and complete at the
 * next poll). The backends live in accel_<name>.c; this file is the only one that lists them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "sluice.h"

const struct sl_accel_ops *const sl__accel_backends[] = {
	&sl__accel_cpu_ops,
	&sl__accel_sim_ops,
	&sl__accel_opencl_ops,
	&sl__accel_xrt_ops,
};
const size_t sl__accel_nbackends = sizeof(sl__accel_backends) / sizeof(sl__accel_backends[0]);

int sl__accel_open_cfg(const char *mode, const struct sl_accel_config *cfg,
		       struct sl_accel **out, char *why, size_t why_cap)
{
	*out = NULL;
	if (why && why_cap)
		why[0] = 0;
	const struct sl_accel_ops *ops = NULL;
	if (!mode || !strcmp(mode, "auto")) {
		ops = &sl__accel_auto_ops;
	} else {
		for (size_t i = 0; i < sl__accel_nbackends; i++)
			if (!strcmp(mode, sl__accel_backends[i]->name))
				ops = sl__accel_backends[i];
		if (!ops) {
			if (why && why_cap)
				snprintf(why, why_cap, "unknown accelerator mode \"%s\" (auto, cpu, sim, "
					 "opencl, xrt)", mode);
			return SL_ECONFIG;
		}
	}
	if (ops->version != SL_ACCEL_OPS_VERSION)
		return SL_EVERSION;
	struct sl_accel_config none = { 0 };
	struct sl_accel *a = calloc(1, sizeof(*a));
	pthread_mutex_t *mu = malloc(sizeof(*mu));
	if (!a || !mu) {
		free(a);
		free(mu);
		return -ENOMEM;
	}
	pthread_mutex_init(mu, NULL);
	a->mu = mu;
	a->done_tail = &a->done;
	a->ops = ops;
	int r = ops->open(cfg ? cfg : &none, &a->dev, why, why_cap);
	if (r < 0) {
		pthread_mutex_destroy(mu);
		free(mu);
		free(a);
		return r;
	}
	*out = a;
	return 0;
}

int sl__accel_open(const char *mode, struct sl_accel **out)
{
	return sl__accel_open_cfg(mode, NULL, out, NULL, 0);
}

void sl__accel_close(struct sl_accel *a)
{
	if (!a)
		return;
	/* Requests still queued complete first: their buffers belong to callers. */
	while (a->inflight)
		sl__accel_poll(a, 1000000);
	a->ops->close(a->dev);
	pthread_mutex_destroy(a->mu);
	free(a->mu);
	free(a);
}

int sl__accel_merge_check(const struct sl_accel_merge_job *j)
{
	if (j->n_runs > SL_ACCEL_MAX_RUNS || (j->n_runs && !j->runs))
		return -EINVAL;
	if ((j->block_bytes && j->block_bytes < 64) || j->bits_per_key > 64 ||
	    (j->flags & ~(uint32_t)SL_ACCEL_MERGE_DROP_TOMBSTONES))
		return -EINVAL;
	if ((j->lo_len && !j->lo) || (j->hi_len && !j->hi) || (j->out_cap && !j->out) ||
	    (j->blocks_cap && !j->blocks) || (j->bloom_cap && !j->bloom))
		return -EINVAL;
	for (size_t i = 0; i < j->n_runs; i++) {
		const struct sl_accel_run *run = &j->runs[i];
		if (run->n_blocks && !run->blocks)
			return -EINVAL;
		for (size_t b = 0; b < run->n_blocks; b++)
			if (run->blocks[b].len && !run->blocks[b].data)
				return -EINVAL;
	}
	return 0;
}

int sl__accel_run_req(const struct sl_accel_ops *ops, void *dev, struct sl_accel_req *req)
{
	int r;
	switch (req->op) {
	case SL_ACCEL_OP_CRC32C:
		r = ops->crc32c_batch(dev, req->u.crc.bufs, req->u.crc.n, req->u.crc.out);
		break;
	case SL_ACCEL_OP_BLOOM_BUILD:
		r = ops->bloom_build(dev, req->u.build.hashes, req->u.build.n, req->u.build.k,
				     req->u.build.filter, req->u.build.size);
		break;
	case SL_ACCEL_OP_BLOOM_PROBE:
		r = ops->bloom_probe(dev, req->u.probe.filters, req->u.probe.nfilters,
				     req->u.probe.which, req->u.probe.hashes, req->u.probe.n,
				     req->u.probe.out);
		break;
	case SL_ACCEL_OP_MERGE:
		r = req->u.merge ? ops->merge(dev, req->u.merge) : -EINVAL;
		break;
	default:
		r = -EINVAL;
	}
	req->status = r;
	return r;
}

/* ---- Device faults -------------------------------------------------------------------------- */

static const char *op_name(int op)
{
	switch (op) {
	case SL_ACCEL_OP_CRC32C:
		return "crc32c";
	case SL_ACCEL_OP_BLOOM_BUILD:
		return "bloom build";
	case SL_ACCEL_OP_BLOOM_PROBE:
		return "bloom probe";
	case SL_ACCEL_OP_MERGE:
		return "merge";
	}
	return "request";
}

static int said_eio, said_timeout, said_lost;

int sl__accel_fault(const struct sl_accel *ca, struct sl_accel_req *req, int r)
{
	struct sl_accel *a = (struct sl_accel *)ca; /* the seam's own counters */
	if (a->ops == &sl__accel_cpu_ops)
		return r; /* not a device: nothing to fall back to */
	int was_lost = __atomic_load_n(&a->lost, __ATOMIC_RELAXED);
	if (r == -ENODEV && !was_lost) {
		__atomic_store_n(&a->lost, 1, __ATOMIC_RELAXED);
		if (!__atomic_exchange_n(&said_lost, 1, __ATOMIC_RELAXED))
			fprintf(stderr, "sluice: accel: %s device lost (a %s call found it): that "
				"call and every later one run on cpu\n", a->ops->name, op_name(req->op));
	} else if (r == -ETIMEDOUT) {
		if (!__atomic_exchange_n(&said_timeout, 1, __ATOMIC_RELAXED))
			fprintf(stderr, "sluice: accel: %s %s timed out (device reset); the call ran "
				"on cpu\n", a->ops->name, op_name(req->op));
	} else if (r == -EIO) {
		if (!__atomic_exchange_n(&said_eio, 1, __ATOMIC_RELAXED))
			fprintf(stderr, "sluice: accel: %s %s failed (I/O error); the call ran on "
				"cpu\n", a->ops->name, op_name(req->op));
	}
	__atomic_fetch_add(&a->fallbacks, 1, __ATOMIC_RELAXED);
	return sl__accel_run_req(&sl__accel_cpu_ops, NULL, req);
}

void sl__accel_health(const struct sl_accel *a, struct sl_accel_health *out)
{
	out->fallbacks = __atomic_load_n(&a->fallbacks, __ATOMIC_RELAXED);
	out->lost = __atomic_load_n(&a->lost, __ATOMIC_RELAXED);
}

/* ---- Asynchronous requests ------------------------------------------------------------------ */

int sl__accel_submit(struct sl_accel *a, struct sl_accel_req *req)
{
	req->next = NULL;
	req->device_ns = 0;
	pthread_mutex_lock(a->mu);
	a->inflight++;
	pthread_mutex_unlock(a->mu);
	if (a->ops->submit && !__atomic_load_n(&a->lost, __ATOMIC_RELAXED)) {
		int r = a->ops->submit(a->dev, req);
		if (r < 0) {
			pthread_mutex_lock(a->mu);
			a->inflight--;
			pthread_mutex_unlock(a->mu);
		}
		return r;
	}
	if (__atomic_load_n(&a->lost, __ATOMIC_RELAXED))
		sl__accel_fault(a, req, -ENODEV);
	else if (sl__accel_run_req(a->ops, a->dev, req) < 0 && sl__accel_is_fault(req->status))
		sl__accel_fault(a, req, req->status);
	pthread_mutex_lock(a->mu);
	*a->done_tail = req;
	a->done_tail = &req->next;
	pthread_mutex_unlock(a->mu);
	return 0;
}

int sl__accel_poll(struct sl_accel *a, int64_t timeout_ns)
{
	struct sl_accel_req *list = NULL;
	if (a->ops->poll)
		a->ops->poll(a->dev, timeout_ns, &list);
	pthread_mutex_lock(a->mu);
	/* The seam's own list (backends without a queue) goes after the backend's. */
	struct sl_accel_req **tail = &list;
	while (*tail)
		tail = &(*tail)->next;
	*tail = a->done;
	a->done = NULL;
	a->done_tail = &a->done;
	pthread_mutex_unlock(a->mu);
	int n = 0;
	while (list) {
		struct sl_accel_req *r = list;
		list = r->next;
		r->next = NULL;
		n++;
		/* A device fault: the request again on cpu before its callback sees it. */
		if (r->status < 0 && sl__accel_is_fault(r->status) && a->ops != &sl__accel_cpu_ops)
			sl__accel_fault(a, r, r->status);
		if (r->done)
			r->done(r, r->arg);
	}
	pthread_mutex_lock(a->mu);
	a->inflight -= (uint64_t)n;
	pthread_mutex_unlock(a->mu);
	return n;
}
