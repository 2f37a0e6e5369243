/* accel_auto.c - the planner: a backend made of the others. At open it opens cpu and every real
 * device present (OpenCL GPUs and accelerators, XRT; never the sim, which is a model, nor an
 * OpenCL device that is a CPU), times each operation on each at two sizes (small probes:
 * milliseconds in all), and fits cost(bytes) = launch + bytes * per_byte. A call then goes to
 * the backend whose model predicts the lowest cost for its size: below the crossover the cpu,
 * above it the device. Every backend gives bit-identical results, so routing changes speed only.
 *
 * Sizes are what an operation moves: CRC32C the buffers' bytes, bloom build and probe 8 bytes
 * per hash, merge the input blocks' bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accel.h"
#include "block.h"
#include "bloom.h"
#include "sluice.h"

#define NOPS	    4 /* enum sl_accel_op - 1 */
#define MAX_MEMBERS 4
#define PROBE_REPS  3

struct member {
	const struct sl_accel_ops *ops;
	void *dev;
	struct sl_accel_info info;
	int model; /* timed by its modelled device time (config.plan_models) */
	double launch_ns[NOPS], per_byte_ns[NOPS];
	uint64_t routed[NOPS]; /* calls sent here (atomics) */
};

struct autodev {
	struct member m[MAX_MEMBERS];
	size_t n; /* m[0] is cpu */
	uint64_t threshold[NOPS]; /* bytes from which route[op] is used; UINT64_MAX: cpu only */
	size_t route[NOPS];
	int calibrated;
	/* What else was looked for, for the report. */
	struct {
		char name[16], why[160];
		int available;
	} seen[8];
	size_t nseen;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Calibration ---------------------------------------------------------------------------- */

/* Synthetic inputs, sized by bytes. */
struct probe_data {
	uint8_t *buf;
	size_t len;
	uint64_t *hashes;
	size_t nhash;
	uint8_t *filter;
	size_t fsize;
	/* merge: two runs of encoded blocks */
	uint8_t *blocks;
	struct sl_accel_buf *bufs;
	size_t nbufs[2];
	uint8_t *out, *bloom;
	struct sl_accel_block *oblocks;
	size_t out_cap, bloom_cap, oblocks_cap;
};

static void probe_free(struct probe_data *p)
{
	free(p->buf);
	free(p->hashes);
	free(p->filter);
	free(p->blocks);
	free(p->bufs);
	free(p->out);
	free(p->bloom);
	free(p->oblocks);
	memset(p, 0, sizeof(*p));
}

/* Two runs of interleaved keys (16-byte keys, 32-byte values) filling about bytes. */
static int make_runs(struct probe_data *p, size_t bytes)
{
	size_t per = 52, n = bytes / per / 2 + 1, cap = bytes + 65536;
	uint32_t restarts[4096];
	p->blocks = malloc(cap);
	p->bufs = calloc(2 * (cap / 1024 + 2), sizeof(*p->bufs));
	if (!p->blocks || !p->bufs)
		return -ENOMEM;
	size_t off = 0, nb = 0;
	for (int run = 0; run < 2; run++) {
		struct sl_block_enc e;
		sl__block_enc_init(&e, 4096, 16, p->blocks + off, cap - off, restarts, 4096);
		p->nbufs[run] = 0;
		for (size_t i = 0; i < n; i++) {
			uint8_t key[16], val[32];
			uint64_t k = __builtin_bswap64(2 * i + (uint64_t)run);
			memset(key, 'k', 8);
			memcpy(key + 8, &k, 8);
			memset(val, (int)i, sizeof(val));
			if (sl__block_enc_full(&e, 16, 32)) {
				size_t len = sl__block_enc_finish(&e);
				uint32_t crc = 0;
				sl__block_put_u32(p->blocks + off + len, crc);
				p->bufs[nb++] = (struct sl_accel_buf){ p->blocks + off, len + 4 };
				p->nbufs[run]++;
				off += len + 4;
				if (off + 8192 > cap)
					return -ENOSPC;
				e.buf = p->blocks + off;
				e.cap = cap - off;
				sl__block_enc_reset(&e);
			}
			if (sl__block_enc_add(&e, key, 16, val, 32, 0) < 0)
				return -ENOSPC;
		}
		size_t len = sl__block_enc_finish(&e);
		p->bufs[nb++] = (struct sl_accel_buf){ p->blocks + off, len + 4 };
		p->nbufs[run]++;
		off += len + 4;
	}
	/* The CRCs, by the reference. */
	uint32_t *crcs = malloc(nb * sizeof(*crcs));
	struct sl_accel_buf *body = malloc(nb * sizeof(*body));
	if (!crcs || !body) {
		free(crcs);
		free(body);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nb; i++)
		body[i] = (struct sl_accel_buf){ p->bufs[i].data, p->bufs[i].len - 4 };
	sl__accel_cpu_ops.crc32c_batch(NULL, body, nb, crcs);
	for (size_t i = 0; i < nb; i++)
		sl__block_put_u32((uint8_t *)p->bufs[i].data + p->bufs[i].len - 4, crcs[i]);
	free(crcs);
	free(body);
	p->out_cap = bytes * 2 + 65536;
	p->oblocks_cap = p->out_cap / 512 + 16;
	p->bloom_cap = sl__bloom_bytes(2 * n, 10) + 64;
	p->out = malloc(p->out_cap);
	p->oblocks = malloc(p->oblocks_cap * sizeof(*p->oblocks));
	p->bloom = malloc(p->bloom_cap);
	return p->out && p->oblocks && p->bloom ? 0 : -ENOMEM;
}

static int probe_make(struct probe_data *p, int op, size_t bytes)
{
	memset(p, 0, sizeof(*p));
	switch (op) {
	case SL_ACCEL_OP_CRC32C:
		p->buf = malloc(bytes);
		if (!p->buf)
			return -ENOMEM;
		memset(p->buf, 0x5a, bytes);
		p->len = bytes;
		return 0;
	case SL_ACCEL_OP_BLOOM_BUILD:
	case SL_ACCEL_OP_BLOOM_PROBE:
		p->nhash = bytes / 8 ? bytes / 8 : 1;
		p->hashes = malloc(p->nhash * 8);
		p->fsize = sl__bloom_bytes(p->nhash, 10);
		p->filter = calloc(1, p->fsize);
		if (!p->hashes || !p->filter)
			return -ENOMEM;
		for (size_t i = 0; i < p->nhash; i++)
			p->hashes[i] = sl__bloom_hash(&i, sizeof(i));
		return 0;
	default:
		return make_runs(p, bytes);
	}
}

/* A model's time for one run: the request submitted and polled, its modelled device_ns. */
static int probe_run_model(const struct member *m, int op, struct probe_data *p, uint64_t *ns)
{
	struct sl_accel_req q = { .op = op };
	struct sl_accel_filter f = { p->filter, p->fsize, 6 };
	struct sl_accel_buf b = { p->buf, p->len };
	struct sl_accel_run runs[2] = { { p->bufs, p->nbufs[0] },
					{ p->bufs + p->nbufs[0], p->nbufs[1] } };
	struct sl_accel_merge_job j = {
		.runs = runs, .n_runs = 2, .out = p->out, .out_cap = p->out_cap,
		.blocks = p->oblocks, .blocks_cap = p->oblocks_cap, .bloom = p->bloom,
		.bloom_cap = p->bloom_cap,
	};
	uint32_t crc;
	uint8_t *out = NULL;
	switch (op) {
	case SL_ACCEL_OP_CRC32C:
		q.u.crc.bufs = &b, q.u.crc.n = 1, q.u.crc.out = &crc;
		break;
	case SL_ACCEL_OP_BLOOM_BUILD:
		q.u.build.hashes = p->hashes, q.u.build.n = p->nhash, q.u.build.k = 6;
		q.u.build.filter = p->filter, q.u.build.size = p->fsize;
		break;
	case SL_ACCEL_OP_BLOOM_PROBE:
		if (!(out = malloc(p->nhash)))
			return -ENOMEM;
		q.u.probe.filters = &f, q.u.probe.nfilters = 1, q.u.probe.hashes = p->hashes;
		q.u.probe.n = p->nhash, q.u.probe.out = out;
		break;
	default:
		q.u.merge = &j;
	}
	int r = m->ops->submit && m->ops->poll ? m->ops->submit(m->dev, &q) : -ENOTSUP;
	struct sl_accel_req *done = NULL;
	while (r == 0 && !done)
		m->ops->poll(m->dev, 1000000000, &done);
	free(out);
	if (r < 0)
		return r;
	*ns = q.device_ns;
	return q.status;
}

static int probe_run(const struct member *m, int op, struct probe_data *p)
{
	switch (op) {
	case SL_ACCEL_OP_CRC32C: {
		struct sl_accel_buf b = { p->buf, p->len };
		uint32_t crc;
		return m->ops->crc32c_batch(m->dev, &b, 1, &crc);
	}
	case SL_ACCEL_OP_BLOOM_BUILD:
		return m->ops->bloom_build(m->dev, p->hashes, p->nhash, 6, p->filter, p->fsize);
	case SL_ACCEL_OP_BLOOM_PROBE: {
		struct sl_accel_filter f = { p->filter, p->fsize, 6 };
		uint8_t *out = malloc(p->nhash);
		if (!out)
			return -ENOMEM;
		int r = m->ops->bloom_probe(m->dev, &f, 1, NULL, p->hashes, p->nhash, out);
		free(out);
		return r;
	}
	default: {
		struct sl_accel_run runs[2] = { { p->bufs, p->nbufs[0] },
						{ p->bufs + p->nbufs[0], p->nbufs[1] } };
		struct sl_accel_merge_job j = {
			.runs = runs,
			.n_runs = 2,
			.out = p->out,
			.out_cap = p->out_cap,
			.blocks = p->oblocks,
			.blocks_cap = p->oblocks_cap,
			.bloom = p->bloom,
			.bloom_cap = p->bloom_cap,
		};
		return m->ops->merge(m->dev, &j);
	}
	}
}

/* The best of a few runs of op at bytes on m, in ns; negative: the op failed. */
static double time_op(const struct member *m, int op, size_t bytes)
{
	struct probe_data p;
	double best = -1;
	if (probe_make(&p, op, bytes) == 0) {
		for (int rep = 0; rep < PROBE_REPS; rep++) {
			uint64_t t0 = now_ns(), dev_ns = 0;
			if ((m->model ? probe_run_model(m, op, &p, &dev_ns) : probe_run(m, op, &p)) <
			    0) {
				best = -1;
				break;
			}
			double t = m->model ? (double)dev_ns : (double)(now_ns() - t0);
			if (best < 0 || t < best)
				best = t;
		}
	}
	probe_free(&p);
	return best;
}

static const size_t probe_small = 4096, probe_large = 1u << 20;

static void calibrate(struct autodev *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct member *m = &a->m[i];
		for (int op = 0; op < NOPS; op++) {
			double t1 = time_op(m, op + 1, probe_small), t2 = time_op(m, op + 1, probe_large);
			if (t1 < 0 || t2 < 0) {
				m->launch_ns[op] = INFINITY;
				m->per_byte_ns[op] = INFINITY;
				continue;
			}
			double b = (t2 - t1) / (double)(probe_large - probe_small);
			if (b < 0)
				b = 0;
			double l = t1 - b * (double)probe_small;
			m->launch_ns[op] = l > 0 ? l : 0;
			m->per_byte_ns[op] = b;
		}
	}
	a->calibrated = 1;
}

/* Per op, the device with the lowest per-byte cost that beats cpu somewhere, and the size from
 * which it does. */
static void plan(struct autodev *a)
{
	const struct member *cpu = &a->m[0];
	for (int op = 0; op < NOPS; op++) {
		a->threshold[op] = UINT64_MAX;
		a->route[op] = 0;
		for (size_t i = 1; i < a->n; i++) {
			const struct member *m = &a->m[i];
			double db = cpu->per_byte_ns[op] - m->per_byte_ns[op];
			if (!isfinite(m->per_byte_ns[op]) || db <= 0)
				continue;
			double x = (m->launch_ns[op] - cpu->launch_ns[op]) / db;
			uint64_t t = x <= 0 ? 0 : x >= 1e18 ? UINT64_MAX : (uint64_t)ceil(x);
			if (t < a->threshold[op]) {
				a->threshold[op] = t;
				a->route[op] = i;
			}
		}
	}
}

/* ---- The backend ---------------------------------------------------------------------------- */

static int auto_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	(void)why, (void)why_cap;
	struct autodev *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	struct sl_accel_config c = *cfg;
	c.devices_only = 1;
	for (size_t i = 0; i < sl__accel_nbackends; i++) {
		const struct sl_accel_ops *ops = sl__accel_backends[i];
		char w[160] = "";
		void *d = NULL;
		int r = ops->open(&c, &d, w, sizeof(w));
		if (a->nseen < 8) {
			snprintf(a->seen[a->nseen].name, sizeof(a->seen[0].name), "%s", ops->name);
			snprintf(a->seen[a->nseen].why, sizeof(a->seen[0].why), "%s",
				 r < 0 ? (w[0] ? w : sl_strerror(r)) : "");
			a->seen[a->nseen++].available = r == 0;
		}
		if (r < 0)
			continue;
		struct sl_accel_info info;
		ops->info(d, &info);
		/* cpu, and real devices: the sim is a model (unless plan_models), an OpenCL CPU
		 * device is the cpu again. */
		int model = cfg->plan_models && (info.flags & SL_ACCEL_INFO_MODEL);
		if ((i > 0 && !(info.flags & SL_ACCEL_INFO_DEVICE) && !model) ||
		    a->n == MAX_MEMBERS) {
			if (a->nseen)
				snprintf(a->seen[a->nseen - 1].why, sizeof(a->seen[0].why), "%s",
					 info.flags & SL_ACCEL_INFO_MODEL ? "a model: never routed to"
									  : "not a device");
			ops->close(d);
			continue;
		}
		a->m[a->n++] = (struct member){ .ops = ops, .dev = d, .info = info, .model = model };
	}
	if (a->n > 1 && cfg->calibrate >= 0)
		calibrate(a);
	plan(a);
	*dev = a;
	return 0;
}

static void auto_close(void *dev)
{
	struct autodev *a = dev;
	for (size_t i = 0; i < a->n; i++)
		a->m[i].ops->close(a->m[i].dev);
	free(a);
}

static void auto_info(void *dev, struct sl_accel_info *out)
{
	struct autodev *a = dev;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "auto");
	size_t o = 0;
	for (size_t i = 0; i < a->n && o < sizeof(out->device); i++)
		o += (size_t)snprintf(out->device + o, sizeof(out->device) - o, "%s%s", i ? " + " : "",
				      a->m[i].info.name);
	snprintf(out->detail, sizeof(out->detail), "planner over %zu backend(s)%s", a->n,
		 a->calibrated ? ", calibrated" : "");
}

static const struct member *pick(void *dev, int op, uint64_t bytes)
{
	struct autodev *a = dev;
	struct member *m = &a->m[bytes >= a->threshold[op - 1] ? a->route[op - 1] : 0];
	__atomic_fetch_add(&m->routed[op - 1], 1, __ATOMIC_RELAXED);
	return m;
}

uint64_t sl__accel_auto_routed(const struct sl_accel *a, const char *backend, int op)
{
	if (a->ops != &sl__accel_auto_ops || op < 1 || op > NOPS)
		return 0;
	const struct autodev *ad = a->dev;
	for (size_t i = 0; i < ad->n; i++)
		if (!strcmp(ad->m[i].info.name, backend))
			return __atomic_load_n(&ad->m[i].routed[op - 1], __ATOMIC_RELAXED);
	return 0;
}

uint64_t sl__accel_auto_threshold(const struct sl_accel *a, int op, const char **to)
{
	if (to)
		*to = "cpu";
	if (a->ops != &sl__accel_auto_ops || op < 1 || op > NOPS)
		return UINT64_MAX;
	const struct autodev *ad = a->dev;
	if (to)
		*to = ad->m[ad->route[op - 1]].info.name;
	return ad->threshold[op - 1];
}

static int auto_crc(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += bufs[i].len;
	const struct member *m = pick(dev, SL_ACCEL_OP_CRC32C, bytes);
	return m->ops->crc32c_batch(m->dev, bufs, n, out);
}

static int auto_build(void *dev, const uint64_t *hashes, size_t n, uint32_t k, uint8_t *filter,
		      size_t size)
{
	const struct member *m = pick(dev, SL_ACCEL_OP_BLOOM_BUILD, (uint64_t)n * 8);
	return m->ops->bloom_build(m->dev, hashes, n, k, filter, size);
}

static int auto_probe(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
		      const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	const struct member *m = pick(dev, SL_ACCEL_OP_BLOOM_PROBE, (uint64_t)n * 8);
	return m->ops->bloom_probe(m->dev, filters, nfilters, which, hashes, n, out);
}

static int auto_merge(void *dev, struct sl_accel_merge_job *job)
{
	uint64_t bytes = 0;
	for (size_t r = 0; r < job->n_runs; r++)
		for (size_t i = 0; i < job->runs[r].n_blocks; i++)
			bytes += job->runs[r].blocks[i].len;
	const struct member *m = pick(dev, SL_ACCEL_OP_MERGE, bytes);
	return m->ops->merge(m->dev, job);
}

const struct sl_accel_ops sl__accel_auto_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "auto",
	.open = auto_open,
	.close = auto_close,
	.info = auto_info,
	.crc32c_batch = auto_crc,
	.bloom_build = auto_build,
	.bloom_probe = auto_probe,
	.merge = auto_merge,
};

/* ---- The report (sluice accel) -------------------------------------------------------------- */

static const char *const op_names[NOPS] = { "crc32c", "bloom_build", "bloom_probe", "merge" };

struct out {
	char *buf;
	size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + (o->len < o->cap ? o->len : o->cap),
			  o->len < o->cap ? o->cap - o->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

/* JSON string contents: quotes and backslashes escaped, control characters dropped. */
static void put_str(struct out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			put(o, "\\%c", *s);
		else if ((unsigned char)*s >= 0x20)
			put(o, "%c", *s);
	}
}

SL_API int sl_accel_report(const char *mode, const char *binary, const char *device, int flags,
			   char *buf, size_t cap)
{
	struct sl_accel_config cfg = { .binary = binary, .device = device };
	struct out o = { buf, cap, 0 };
	int json = flags & SL_FORMAT_JSON;
	/* Every backend on its own (the sim included), then the planner's view. */
	if (json)
		put(&o, "{\"backends\":[");
	for (size_t i = 0; i < sl__accel_nbackends; i++) {
		const struct sl_accel_ops *ops = sl__accel_backends[i];
		char why[160] = "";
		void *d = NULL;
		int r = ops->open(&cfg, &d, why, sizeof(why));
		struct sl_accel_info info;
		memset(&info, 0, sizeof(info));
		if (r == 0) {
			ops->info(d, &info);
			ops->close(d);
		}
		if (json) {
			put(&o, "%s{\"name\":\"%s\",\"available\":%s", i ? "," : "", ops->name,
			    r == 0 ? "true" : "false");
			if (r == 0) {
				put(&o, ",\"device\":\"");
				put_str(&o, info.device);
				put(&o, "\",\"detail\":\"");
				put_str(&o, info.detail);
				put(&o, "\",\"real_device\":%s,\"model\":%s",
				    info.flags & SL_ACCEL_INFO_DEVICE ? "true" : "false",
				    info.flags & SL_ACCEL_INFO_MODEL ? "true" : "false");
			} else {
				put(&o, ",\"why\":\"");
				put_str(&o, why[0] ? why : sl_strerror(r));
				put(&o, "\"");
			}
			put(&o, "}");
		} else {
			put(&o, "%-8s %-11s %s%s%s\n", ops->name, r == 0 ? "available" : "absent",
			    r == 0 ? info.device : (why[0] ? why : sl_strerror(r)),
			    r == 0 && info.detail[0] ? " - " : "", r == 0 ? info.detail : "");
		}
	}
	struct sl_accel *a;
	int r = sl__accel_open_cfg(mode ? mode : "auto", &cfg, &a, NULL, 0);
	if (r == 0 && a->ops == &sl__accel_auto_ops) {
		struct autodev *ad = a->dev;
		if (json) {
			put(&o, "],\"mode\":\"auto\",\"members\":[");
			for (size_t i = 0; i < ad->n; i++) {
				put(&o, "%s{\"name\":\"%s\"", i ? "," : "", ad->m[i].info.name);
				for (int op = 0; op < NOPS; op++)
					if (ad->calibrated && isfinite(ad->m[i].per_byte_ns[op]))
						put(&o, ",\"%s\":{\"launch_us\":%.2f,\"ns_per_byte\":%.4f}",
						    op_names[op], ad->m[i].launch_ns[op] / 1e3,
						    ad->m[i].per_byte_ns[op]);
				put(&o, "}");
			}
			put(&o, "],\"routing\":{");
			for (int op = 0; op < NOPS; op++) {
				put(&o, "%s\"%s\":{\"backend\":\"%s\",\"from_bytes\":", op ? "," : "",
				    op_names[op], ad->m[ad->route[op]].info.name);
				if (ad->threshold[op] == UINT64_MAX)
					put(&o, "null}");
				else
					put(&o, "%" PRIu64 "}", ad->threshold[op]);
			}
			put(&o, "}}");
		} else {
			put(&o, "\nauto: %zu backend(s) routed%s\n", ad->n,
			    ad->n > 1 ? (ad->calibrated ? ", calibrated at open" : "")
				      : " (cpu only: no device present)");
			for (size_t i = 0; ad->calibrated && i < ad->n; i++)
				for (int op = 0; op < NOPS; op++)
					put(&o, "  %-8s %-12s launch %9.2f us  %8.4f ns/byte\n",
					    ad->m[i].info.name, op_names[op], ad->m[i].launch_ns[op] / 1e3,
					    ad->m[i].per_byte_ns[op]);
			for (int op = 0; op < NOPS; op++) {
				if (ad->threshold[op] == UINT64_MAX)
					put(&o, "  %-12s -> cpu at every size\n", op_names[op]);
				else
					put(&o, "  %-12s -> %s from %" PRIu64 " bytes, cpu below\n",
					    op_names[op], ad->m[ad->route[op]].info.name,
					    ad->threshold[op]);
			}
		}
	} else if (json) {
		put(&o, "],\"mode\":\"%s\"}", mode ? mode : "auto");
	}
	if (r == 0)
		sl__accel_close(a);
	if (r == SL_ECONFIG)
		return r;
	if (o.len >= cap)
		return -ENOSPC;
	return 0;
}
