/* bench_accel.c - the accelerator seam's operations (CRC32C batches, bloom build and probe, the
 * fused merge) timed on the same inputs with the cpu backend, with auto and with every other
 * backend that opens, best of 5 runs, each result checked bit for bit against cpu's; for sim also
 * the modelled device time of both profiles (fpga, gpu); the crossovers the planner finds when
 * the sim's models are members (plan_models); and a full compaction end to end through the
 * store (sl_db_compact) with each backend. A benchmark, never a test: it reports figures, and
 * fails only when a backend errs or differs from cpu.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NAME "bench_accel"
#include "bench_common.h"

#include "accel.h"
#include "block.h"
#include "bloom.h"
#include "sluice.h"

#define RUNS	     5
#define MIN_RUN_NS   2000000u /* repeat small ops so one timed run lasts at least this long */
#define NOISE	     1.10     /* auto/cpu at or below this is within noise */
#define CRC_TOTAL    (4u << 20) /* bytes per CRC batch */
#define BITS_PER_KEY 10

enum { B_CPU, B_AUTO, B_SIM, B_OPENCL, B_SIM_FPGA, B_SIM_GPU, NB };
static const char *const b_mode[NB] = { "cpu", "auto", "sim", "opencl", "sim", "sim" };
static const char *const b_label[NB] = { "cpu", "auto", "sim", "opencl", "sim fpga", "sim gpu" };
static const char *const b_profile[NB] = { NULL, NULL, NULL, NULL, "fpga", "gpu" };

struct backend {
	struct sl_accel *a;
	char why[256];
	struct sl_accel_info info;
};

/* One operation at one size: inputs, the cpu reference outputs, a working copy for others. */
struct ocase {
	int op; /* enum sl_accel_op */
	const char *name;
	char size[32];
	/* crc */
	struct sl_accel_buf *bufs;
	size_t nbufs;
	uint32_t *crc, *crc_ref;
	/* bloom */
	uint64_t *hashes;
	size_t n;
	uint32_t k;
	size_t fsize;
	uint8_t *filter, *filter_ref; /* build output; filter_ref is also probe's filter */
	uint8_t *hits, *hits_ref;
	struct sl_accel_filter pf;
	/* merge */
	struct sl_accel_run runs[4];
	struct sl_accel_merge_job job, ref;
	uint8_t *ref_out, *ref_bloom;
	struct sl_accel_block *ref_blocks;
	size_t in_bytes;
	/* results, us per op (<0: not run) */
	double us[NB];
	unsigned reps;
};

static int g_json;
static int g_failed;
static char g_xrt[256]; /* why xrt is not measured */

static void fail(const struct ocase *c, int b, const char *what)
{
	fprintf(stderr, "bench_accel: %s %s on %s: %s\n", c->name, c->size, b_label[b], what);
	g_failed = 1;
}

static void *xmalloc(size_t n)
{
	return xcalloc(n, 1);
}

static uint64_t rng = 0x5eed;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void human(char *s, size_t cap, size_t bytes)
{
	if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
		snprintf(s, cap, "%zu MiB", bytes >> 20);
	else if (bytes >= 1024 && bytes % 1024 == 0)
		snprintf(s, cap, "%zu KiB", bytes >> 10);
	else
		snprintf(s, cap, "%zu B", bytes);
}

/* ---- Inputs ---------------------------------------------------------------------------------- */

static void case_crc(struct ocase *c, size_t len)
{
	char h[16];
	c->op = SL_ACCEL_OP_CRC32C;
	c->name = "crc32c";
	c->nbufs = CRC_TOTAL / len;
	human(h, sizeof(h), len);
	snprintf(c->size, sizeof(c->size), "%s x %zu", h, c->nbufs);
	uint8_t *pool = xmalloc(CRC_TOTAL);
	for (size_t i = 0; i < CRC_TOTAL; i++)
		pool[i] = (uint8_t)rnd();
	c->bufs = xmalloc(c->nbufs * sizeof(*c->bufs));
	for (size_t i = 0; i < c->nbufs; i++)
		c->bufs[i] = (struct sl_accel_buf){ pool + i * len, len };
	c->crc = xmalloc(c->nbufs * 4);
	c->crc_ref = xmalloc(c->nbufs * 4);
}

static void case_bloom(struct ocase *c, int op, size_t n, const char *label)
{
	c->op = op;
	c->name = op == SL_ACCEL_OP_BLOOM_BUILD ? "bloom_build" : "bloom_probe";
	snprintf(c->size, sizeof(c->size), "%s hashes", label);
	c->n = n;
	c->k = sl__bloom_probes(BITS_PER_KEY);
	c->fsize = sl__bloom_bytes(n, BITS_PER_KEY);
	/* Build: n key hashes. Probe: every other one of those, the rest absent keys. */
	c->hashes = xmalloc(n * sizeof(*c->hashes));
	for (size_t i = 0; i < n; i++) {
		uint64_t key = op == SL_ACCEL_OP_BLOOM_PROBE && (i & 1) ? i + (1ull << 40) : i;
		c->hashes[i] = sl__bloom_hash(&key, sizeof(key));
	}
	c->filter = xmalloc(c->fsize);
	c->filter_ref = calloc(1, c->fsize);
	if (!c->filter_ref)
		die("calloc", strerror(ENOMEM));
	if (op == SL_ACCEL_OP_BLOOM_PROBE) {
		for (size_t i = 0; i < n; i++) {
			uint64_t key = i, h = sl__bloom_hash(&key, sizeof(key));
			sl__bloom_add(c->filter_ref, c->fsize, &h, 1, c->k);
		}
		c->pf = (struct sl_accel_filter){ c->filter_ref, c->fsize, c->k };
		c->hits = xmalloc(n);
		c->hits_ref = xmalloc(n);
	}
}

/* One run's blocks, encoded with block.c's encoder, CRCs by the cpu backend (as sst does). */
static size_t encode_run(struct sl_accel_run *run, struct sl_accel *cpu, size_t nkeys, int r,
			 const uint8_t *vals)
{
	enum { BB = 4096 };
	uint8_t buf[BB + 512];
	uint32_t rs[BB];
	size_t cap = 64, nb = 0, bytes = 0;
	struct sl_accel_buf *blocks = xmalloc(cap * sizeof(*blocks));
	struct sl_block_enc e;
	sl__block_enc_init(&e, BB, 16, buf, sizeof(buf), rs, BB);
	for (size_t i = 0; i <= nkeys; i++) {
		uint8_t key[32];
		int in = i < nkeys && (rnd() & 1);
		size_t vlen = 24;
		uint8_t flags = rnd() % 8 == 0 ? SL_ACCEL_TOMBSTONE : 0;
		if (flags)
			vlen = 0;
		snprintf((char *)key, sizeof(key), "user%012zu", i % 1000000000000u);
		if (i < nkeys && !in)
			continue;
		if (i == nkeys ? e.entries > 0 : sl__block_enc_full(&e, 16, vlen)) {
			size_t body = sl__block_enc_finish(&e), len = body + 4;
			sl__block_put_u32(buf + body, sl__accel_crc32c(cpu, buf, body));
			if (nb == cap)
				blocks = realloc(blocks, (cap *= 2) * sizeof(*blocks));
			if (!blocks)
				die("realloc", strerror(ENOMEM));
			uint8_t *m = xmalloc(len);
			memcpy(m, buf, len);
			blocks[nb++] = (struct sl_accel_buf){ m, len };
			bytes += len;
			sl__block_enc_reset(&e);
		}
		if (i == nkeys)
			break;
		int rc = sl__block_enc_add(&e, key, 16, vals + (i * 7 + (size_t)r * 13) % 4096, vlen,
					   flags);
		if (rc < 0)
			die("block encoder", sl__block_strerror(rc));
	}
	run->blocks = blocks;
	run->n_blocks = nb;
	return bytes;
}

static void free_runs(struct ocase *c)
{
	for (int r = 0; r < 4; r++) {
		for (size_t b = 0; b < c->runs[r].n_blocks; b++)
			free((void *)c->runs[r].blocks[b].data);
		free((void *)c->runs[r].blocks);
		c->runs[r] = (struct sl_accel_run){ 0 };
	}
}

static void case_merge(struct ocase *c, struct sl_accel *cpu, size_t target)
{
	static uint8_t vals[4096 + 64];
	for (size_t i = 0; i < sizeof(vals); i++)
		vals[i] = (uint8_t)rnd();
	c->op = SL_ACCEL_OP_MERGE;
	c->name = "merge";
	/* About 40 bytes an entry, each key in half the runs: scale once from a first guess. */
	size_t nkeys = target / 80 + 1;
	for (int pass = 0; pass < 2; pass++) {
		free_runs(c);
		c->in_bytes = 0;
		for (int r = 0; r < 4; r++)
			c->in_bytes += encode_run(&c->runs[r], cpu, nkeys, r, vals);
		nkeys = (size_t)((double)nkeys * target / c->in_bytes) + 1;
	}
	char h[16];
	human(h, sizeof(h), target);
	snprintf(c->size, sizeof(c->size), "4 runs, %s", h);
	/* Learn the exact output sizes from cpu (-ENOSPC), then give every backend those. */
	struct sl_accel_merge_job *j = &c->job;
	*j = (struct sl_accel_merge_job){ .runs = c->runs, .n_runs = 4,
					  .flags = SL_ACCEL_MERGE_DROP_TOMBSTONES };
	int rc = sl__accel_merge(cpu, j);
	if (rc != -ENOSPC)
		die("merge sizing", sl_strerror(rc));
	j->out_cap = j->need_out;
	j->blocks_cap = j->need_blocks;
	j->bloom_cap = j->need_bloom;
	j->out = xmalloc(j->out_cap);
	j->blocks = xmalloc(j->blocks_cap * sizeof(*j->blocks));
	j->bloom = xmalloc(j->bloom_cap);
	c->ref_out = xmalloc(j->out_cap);
	c->ref_blocks = xmalloc(j->blocks_cap * sizeof(*j->blocks));
	c->ref_bloom = xmalloc(j->bloom_cap);
}

/* ---- Running and checking ------------------------------------------------------------------- */

/* Poison the outputs (a filter to build is zeroed: builds OR bits in, so repeats agree). */
static void prepare(struct ocase *c)
{
	switch (c->op) {
	case SL_ACCEL_OP_CRC32C:
		memset(c->crc, 0xA5, c->nbufs * 4);
		break;
	case SL_ACCEL_OP_BLOOM_BUILD:
		memset(c->filter, 0, c->fsize);
		break;
	case SL_ACCEL_OP_BLOOM_PROBE:
		memset(c->hits, 0xA5, c->n);
		break;
	case SL_ACCEL_OP_MERGE:
		memset(c->job.out, 0xA5, c->job.out_cap);
		memset(c->job.bloom, 0xA5, c->job.bloom_cap);
		memset(c->job.blocks, 0xA5, c->job.blocks_cap * sizeof(*c->job.blocks));
		break;
	}
}

static int do_op(struct sl_accel *a, struct ocase *c)
{
	switch (c->op) {
	case SL_ACCEL_OP_CRC32C:
		return sl__accel_crc32c_batch(a, c->bufs, c->nbufs, c->crc);
	case SL_ACCEL_OP_BLOOM_BUILD:
		return sl__accel_bloom_build(a, c->hashes, c->n, c->k, c->filter, c->fsize);
	case SL_ACCEL_OP_BLOOM_PROBE:
		return sl__accel_bloom_probe(a, &c->pf, 1, NULL, c->hashes, c->n, c->hits);
	default:
		return sl__accel_merge(a, &c->job);
	}
}

static void fill_req(struct sl_accel_req *q, struct ocase *c)
{
	memset(q, 0, sizeof(*q));
	q->op = c->op;
	switch (c->op) {
	case SL_ACCEL_OP_CRC32C:
		q->u.crc.bufs = c->bufs;
		q->u.crc.n = c->nbufs;
		q->u.crc.out = c->crc;
		break;
	case SL_ACCEL_OP_BLOOM_BUILD:
		q->u.build.hashes = c->hashes;
		q->u.build.n = c->n;
		q->u.build.k = c->k;
		q->u.build.filter = c->filter;
		q->u.build.size = c->fsize;
		break;
	case SL_ACCEL_OP_BLOOM_PROBE:
		q->u.probe.filters = &c->pf;
		q->u.probe.nfilters = 1;
		q->u.probe.hashes = c->hashes;
		q->u.probe.n = c->n;
		q->u.probe.out = c->hits;
		break;
	default:
		q->u.merge = &c->job;
	}
}

/* Keep cpu's outputs as the reference. */
static void keep_ref(struct ocase *c)
{
	switch (c->op) {
	case SL_ACCEL_OP_CRC32C:
		memcpy(c->crc_ref, c->crc, c->nbufs * 4);
		break;
	case SL_ACCEL_OP_BLOOM_BUILD:
		memcpy(c->filter_ref, c->filter, c->fsize);
		break;
	case SL_ACCEL_OP_BLOOM_PROBE:
		memcpy(c->hits_ref, c->hits, c->n);
		break;
	case SL_ACCEL_OP_MERGE:
		c->ref = c->job;
		memcpy(c->ref_out, c->job.out, c->job.out_len);
		memcpy(c->ref_blocks, c->job.blocks, c->job.n_blocks * sizeof(*c->job.blocks));
		memcpy(c->ref_bloom, c->job.bloom, c->job.bloom_len);
		break;
	}
}

static int same(const struct ocase *c)
{
	const struct sl_accel_merge_job *j = &c->job, *r = &c->ref;
	switch (c->op) {
	case SL_ACCEL_OP_CRC32C:
		return !memcmp(c->crc_ref, c->crc, c->nbufs * 4);
	case SL_ACCEL_OP_BLOOM_BUILD:
		return !memcmp(c->filter_ref, c->filter, c->fsize);
	case SL_ACCEL_OP_BLOOM_PROBE:
		return !memcmp(c->hits_ref, c->hits, c->n);
	}
	if (j->out_len != r->out_len || j->n_blocks != r->n_blocks || j->bloom_len != r->bloom_len ||
	    j->bloom_probes != r->bloom_probes || j->entries_in != r->entries_in ||
	    j->entries_out != r->entries_out || j->dropped_older != r->dropped_older ||
	    j->dropped_tombstones != r->dropped_tombstones || j->smallest_len != r->smallest_len ||
	    memcmp(j->smallest, r->smallest, r->smallest_len) || memcmp(j->out, c->ref_out, r->out_len) ||
	    memcmp(j->bloom, c->ref_bloom, r->bloom_len))
		return 0;
	for (size_t i = 0; i < r->n_blocks; i++) {
		const struct sl_accel_block *x = &j->blocks[i], *y = &c->ref_blocks[i];
		if (x->off != y->off || x->len != y->len || x->crc != y->crc ||
		    x->last_len != y->last_len || memcmp(x->last, y->last, y->last_len))
			return 0;
	}
	return 1;
}

/* Best of RUNS timed runs of reps calls each, in us per call; the last run's outputs checked. */
static double time_op(struct sl_accel *a, struct ocase *c, int b)
{
	prepare(c);
	int rc = do_op(a, c); /* warm-up: first touch, program builds, planner caches */
	if (rc < 0) {
		fail(c, b, sl_strerror(rc));
		return -1;
	}
	uint64_t best = UINT64_MAX;
	for (int run = 0; run < RUNS; run++) {
		prepare(c);
		uint64_t t0 = mono_ns();
		for (unsigned i = 0; i < c->reps && rc == 0; i++)
			rc = do_op(a, c);
		uint64_t t = mono_ns() - t0;
		if (rc < 0) {
			fail(c, b, sl_strerror(rc));
			return -1;
		}
		best = t < best ? t : best;
	}
	if (b == B_CPU)
		keep_ref(c);
	else if (!same(c))
		fail(c, b, "result differs from cpu");
	return (double)best / c->reps / 1e3;
}

static void on_done(struct sl_accel_req *q, void *arg)
{
	(void)q;
	*(int *)arg = 1;
}

/* Submit once and read the modelled device time, in us. */
static double model_op(struct sl_accel *a, struct ocase *c, int b)
{
	struct sl_accel_req q;
	int done = 0;
	prepare(c);
	fill_req(&q, c);
	q.done = on_done;
	q.arg = &done;
	int rc = sl__accel_submit(a, &q);
	if (rc < 0) {
		fail(c, b, sl_strerror(rc));
		return -1;
	}
	while (!done)
		sl__accel_poll(a, 1000000000);
	if (q.status < 0) {
		fail(c, b, sl_strerror(q.status));
		return -1;
	}
	if (!same(c))
		fail(c, b, "result differs from cpu");
	return (double)q.device_ns / 1e3;
}

/* Repeat small operations so that a run lasts MIN_RUN_NS on cpu; the same count for all. */
static void calibrate(struct sl_accel *cpu, struct ocase *c)
{
	prepare(c);
	do_op(cpu, c);
	uint64_t t0 = mono_ns();
	do_op(cpu, c);
	uint64_t t = mono_ns() - t0;
	c->reps = t >= MIN_RUN_NS ? 1 : (unsigned)(MIN_RUN_NS / (t ? t : 1));
	if (c->reps > 100000)
		c->reps = 100000;
	if (c->reps < 1)
		c->reps = 1;
}

/* ---- Report --------------------------------------------------------------------------------- */

static void fmt_us(char *s, size_t cap, double us)
{
	if (us < 0)
		snprintf(s, cap, "-");
	else if (us < 10)
		snprintf(s, cap, "%.2f", us);
	else
		snprintf(s, cap, "%.1f", us);
}

static void json_num(double us)
{
	if (us < 0)
		printf("null");
	else
		printf("%.3f", us);
}

static const char *const op_names[] = { "crc32c", "bloom_build", "bloom_probe", "merge" };

static void report(struct backend *be, struct ocase *cs, size_t nc)
{
	if (g_json) {
		printf("{\"bench\":\"accel\",\"runs\":%d,\"noise\":%.2f,\"backends\":[", RUNS, NOISE);
		for (int b = 0; b < NB; b++) {
			printf("%s{\"name\":", b ? "," : "");
			json_str(b_label[b]);
			printf(",\"opened\":%s,", be[b].a ? "true" : "false");
			if (be[b].a) {
				printf("\"device\":");
				json_str(be[b].info.device);
				printf(",\"backend\":");
				json_str(be[b].info.name);
			} else {
				printf("\"why\":");
				json_str(be[b].why);
			}
			printf("}");
		}
		printf("],\"xrt_skipped\":");
		json_str(g_xrt);
		printf(",\"results\":[");
		for (size_t i = 0; i < nc; i++) {
			const struct ocase *c = &cs[i];
			printf("%s{\"op\":\"%s\",\"size\":\"%s\",\"reps\":%u", i ? "," : "", c->name,
			       c->size, c->reps);
			static const char *const key[NB] = { "cpu_us",	   "auto_us",
							     "sim_us",	   "opencl_us",
							     "sim_fpga_model_us", "sim_gpu_model_us" };
			for (int b = 0; b < NB; b++) {
				printf(",\"%s\":", key[b]);
				json_num(c->us[b]);
			}
			printf(",\"auto_ratio\":");
			json_num(c->us[B_AUTO] >= 0 && c->us[B_CPU] > 0 ? c->us[B_AUTO] / c->us[B_CPU]
									 : -1);
			printf("}");
		}
		printf("],\"auto_within_noise\":{");
		for (int o = 0; o < 4; o++) {
			double worst = 0;
			for (size_t i = 0; i < nc; i++)
				if (cs[i].op == o + 1 && cs[i].us[B_CPU] > 0 && cs[i].us[B_AUTO] >= 0 &&
				    cs[i].us[B_AUTO] / cs[i].us[B_CPU] > worst)
					worst = cs[i].us[B_AUTO] / cs[i].us[B_CPU];
			printf("%s\"%s\":{\"worst_ratio\":%.3f,\"ok\":%s}", o ? "," : "", op_names[o],
			       worst, worst <= NOISE ? "true" : "false");
		}
		printf("},\"identical_to_cpu\":%s}\n", g_failed ? "false" : "true");
		return;
	}
	printf("bench_accel: best of %d runs, us per call; every result checked bit-identical to cpu\n",
	       RUNS);
	for (int b = 0; b < NB; b++) {
		if (be[b].a)
			printf("  %-9s %s: %s%s%s\n", b_label[b], be[b].info.name, be[b].info.device,
			       be[b].info.detail[0] ? " - " : "", be[b].info.detail);
		else
			printf("  %-9s skipped: %s\n", b_label[b], be[b].why);
	}
	printf("  %-9s skipped: %s\n", "xrt", g_xrt);
	printf("\n%-12s %-22s %10s %10s %9s %10s %10s %12s %12s\n", "op", "size", "cpu us",
	       "auto us", "auto/cpu", "opencl us", "sim us", "sim fpga mod", "sim gpu mod");
	for (size_t i = 0; i < nc; i++) {
		const struct ocase *c = &cs[i];
		char s[NB][24], ratio[24];
		for (int b = 0; b < NB; b++)
			fmt_us(s[b], sizeof(s[b]), c->us[b]);
		if (c->us[B_AUTO] >= 0 && c->us[B_CPU] > 0)
			snprintf(ratio, sizeof(ratio), "%.2fx", c->us[B_AUTO] / c->us[B_CPU]);
		else
			snprintf(ratio, sizeof(ratio), "-");
		printf("%-12s %-22s %10s %10s %9s %10s %10s %12s %12s\n", c->name, c->size, s[B_CPU],
		       s[B_AUTO], ratio, s[B_OPENCL], s[B_SIM], s[B_SIM_FPGA], s[B_SIM_GPU]);
	}
	printf("\n");
	for (int o = 0; o < 4; o++) {
		double worst = 0;
		const char *at = "";
		for (size_t i = 0; i < nc; i++)
			if (cs[i].op == o + 1 && cs[i].us[B_CPU] > 0 && cs[i].us[B_AUTO] >= 0 &&
			    cs[i].us[B_AUTO] / cs[i].us[B_CPU] >= worst) {
				worst = cs[i].us[B_AUTO] / cs[i].us[B_CPU];
				at = cs[i].size;
			}
		printf("%-12s auto %s of cpu at every size (worst %.2fx at %s; noise <= %.2fx)\n",
		       op_names[o], worst <= NOISE ? "is within noise" : "is NOT within noise", worst,
		       at, NOISE);
	}
	printf("results %s\n", g_failed ? "DIFFER from cpu (see stderr)" : "bit-identical to cpu");
}

/* ---- The planner's crossovers over the sim's models ---------------------------------------- */

static void crossovers(void)
{
	static const char *const prof[] = { "fpga", "gpu" };
	printf("\nplanner crossovers with the sim's models as members (plan_models; modelled device "
	       "time against this cpu's wall time):\n");
	for (int p = 0; p < 2; p++) {
		struct sl_accel_config cfg = { .sim_profile = prof[p], .plan_models = 1 };
		struct sl_accel *a = NULL;
		char why[200] = "";
		progress("bench_accel: planner over sim %s\n", prof[p]);
		if (sl__accel_open_cfg("auto", &cfg, &a, why, sizeof(why)) < 0) {
			printf("  sim %-5s planner did not open: %s\n", prof[p], why);
			continue;
		}
		printf("  sim %-5s", prof[p]);
		for (int op = 1; op <= 4; op++) {
			const char *to = NULL;
			uint64_t from = sl__accel_auto_threshold(a, op, &to);
			char h[32];
			human(h, sizeof(h), (size_t)from);
			if (from == UINT64_MAX)
				printf("  %s: cpu always;", op_names[op - 1]);
			else
				printf("  %s: %s from %s;", op_names[op - 1], to, h);
		}
		printf("\n");
		sl__accel_close(a);
	}
}

/* ---- A full compaction through the store, per backend ------------------------------------- */

#define E2E_MESSAGES 2000000u

static void compaction_end_to_end(const struct backend *be)
{
	static const int bs[] = { B_CPU, B_SIM, B_OPENCL };
	uint8_t *bytes;
	struct sl_msg *msgs;
	progress("bench_accel: generating %u messages\n", E2E_MESSAGES);
	gen_message_views(7, E2E_MESSAGES, &bytes, &msgs);
	make_root(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	printf("\nfull compaction end to end (sl_db_compact after %u messages ingested with 16 MiB "
	       "memtables and background compaction off; wall time):\n",
	       E2E_MESSAGES);
	double cpu_s = 0;
	for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++) {
		int b = bs[i];
		if (!be[b].a) {
			printf("  %-8s skipped: %s\n", b_label[b], be[b].why);
			continue;
		}
		char dir[PATH_MAX + 32];
		snprintf(dir, sizeof(dir), "%s/%s", g_root, b_mode[b]);
		struct sl_options o;
		sl_options_init(&o);
		o.data_dir = dir;
		o.flags = SL_OPEN_CREATE | SL_OPEN_NO_SYNC;
		o.memtable_bytes = 16u << 20;
		o.compaction = 0;
		o.accel = b_mode[b];
		struct sl_db *db;
		progress("bench_accel: compaction on %s\n", b_label[b]);
		int r = sl_db_open(&o, &db);
		if (r < 0)
			die("sl_db_open", sl_strerror(r));
		for (uint64_t at = 0; at < E2E_MESSAGES; at += 4096) {
			size_t n = E2E_MESSAGES - at < 4096 ? (size_t)(E2E_MESSAGES - at) : 4096;
			if ((r = sl_db_append_messages(db, msgs + at, n, NULL)) < 0)
				die("append", sl_strerror(r));
		}
		if ((r = sl_db_flush(db)) < 0)
			die("flush", sl_strerror(r));
		struct sl_stats s0, s1;
		sl_db_stats(db, &s0);
		uint64_t t0 = mono_ns();
		if ((r = sl_db_compact(db)) < 0)
			die("compact", sl_strerror(r));
		double sec = (double)(mono_ns() - t0) / 1e9;
		sl_db_stats(db, &s1);
		double mb = (double)(s1.compacted_read_bytes - s0.compacted_read_bytes) / 1e6;
		if (b == B_CPU)
			cpu_s = sec;
		printf("  %-8s %8.3f s  %7.1f MB/s read  %6" PRIu64 " tables in  %.2fx cpu's time%s\n",
		       b_label[b], sec, sec > 0 ? mb / sec : 0.0, s0.tables, cpu_s > 0 ? sec / cpu_s : 0,
		       s1.accel_fallbacks ? "  (device faults: fell back to cpu)" : "");
		sl_db_close(db);
	}
	free(bytes);
	free(msgs);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "json", no_argument, NULL, 'j' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "jh", lo, NULL)) != -1) {
		if (ch == 'j') {
			g_json = 1;
		} else {
			fprintf(stderr, "usage: bench_accel [--json]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	struct backend be[NB];
	memset(be, 0, sizeof(be));
	for (int b = 0; b < NB; b++) {
		struct sl_accel_config cfg = { .sim_profile = b_profile[b] };
		fprintf(stderr, "bench_accel: opening %s\n", b_label[b]);
		int rc = sl__accel_open_cfg(b_mode[b], &cfg, &be[b].a, be[b].why, sizeof(be[b].why));
		if (rc < 0) {
			be[b].a = NULL;
			if (!be[b].why[0])
				snprintf(be[b].why, sizeof(be[b].why), "%s", sl_strerror(rc));
			if (b == B_CPU)
				die("cpu backend", be[b].why);
			continue;
		}
		sl__accel_info(be[b].a, &be[b].info);
	}
	{
		struct sl_accel *x = NULL;
		char why[256] = "";
		if (sl__accel_open_cfg("xrt", NULL, &x, why, sizeof(why)) == 0)
			snprintf(g_xrt, sizeof(g_xrt), "opened, but not measured by this benchmark");
		else
			snprintf(g_xrt, sizeof(g_xrt), "%s", why[0] ? why : "absent");
		sl__accel_close(x);
	}

	struct ocase cs[11];
	memset(cs, 0, sizeof(cs));
	size_t nc = 0;
	case_crc(&cs[nc++], 64);
	case_crc(&cs[nc++], 4096);
	case_crc(&cs[nc++], 1u << 20);
	static const size_t ns[] = { 1000, 65536, 1u << 20 };
	static const char *const nl[] = { "1k", "64k", "1M" };
	for (int i = 0; i < 3; i++)
		case_bloom(&cs[nc++], SL_ACCEL_OP_BLOOM_BUILD, ns[i], nl[i]);
	for (int i = 0; i < 3; i++)
		case_bloom(&cs[nc++], SL_ACCEL_OP_BLOOM_PROBE, ns[i], nl[i]);
	case_merge(&cs[nc++], be[B_CPU].a, 64u << 10);
	case_merge(&cs[nc++], be[B_CPU].a, 8u << 20);

	for (size_t i = 0; i < nc; i++) {
		struct ocase *c = &cs[i];
		calibrate(be[B_CPU].a, c);
		for (int b = 0; b < NB; b++) {
			c->us[b] = -1;
			if (!be[b].a)
				continue;
			fprintf(stderr, "bench_accel: %s %s on %s\n", c->name, c->size, b_label[b]);
			if (b == B_SIM_FPGA || b == B_SIM_GPU)
				c->us[b] = model_op(be[b].a, c, b);
			else
				c->us[b] = time_op(be[b].a, c, b);
		}
	}
	report(be, cs, nc);
	for (int b = 0; b < NB; b++)
		sl__accel_close(be[b].a);
	if (!g_json) {
		crossovers();
		compaction_end_to_end(be);
	}
	return g_failed;
}
