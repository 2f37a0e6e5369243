/* test_opencl.c - unit tests of the opencl backend (accel_opencl.c, kernels/): every
 * operation against the cpu reference, bit for bit (outputs, return codes and every out value of
 * the merge job, -ENOSPC needs and SL_ECORRUPT's bad_run/bad_block included), over random sizes
 * (0, 1, odd, unaligned, large batches), duplicate keys, empty runs, tombstones, key ranges, tiny
 * blocks and damaged inputs; submitted requests completed by poll with their callbacks and the
 * -EAGAIN bound; concurrent calls; device selection by name and by "P:D"; and the program-binary
 * cache (the second open loads from it and is faster; a cache file given as --accel-binary works).
 *
 * Without a usable OpenCL device it says so in one line and runs only the tests that need none
 * (refusals, and the planner's devices_only probe, which must stay fast). So that "built from
 * source" means compiled, PoCL's own kernel cache is pointed at a fresh directory for the run
 * (unless POCL_CACHE_DIR is set); the backend's cache is the default one, so repeated runs load
 * the program instead of compiling it. Links the accel modules (accel.h's backends) and err only.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "accel.h"
#include "accel_inputs.h"
#include "block.h"
#include "bloom.h"
#include "sluice.h"
#include "testutil.h"

#ifdef __SANITIZE_ADDRESS__
/* PoCL and LLVM keep allocations to process exit (compiler state, device threads): not ours.
 * Everything allocated by sluice itself stays checked. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpocl.so\nleak:libLLVM\nleak:libclang\nleak:libOpenCL.so\n";
}
#endif

static struct sl_accel *cpu, *ocl; /* ocl: NULL without a device */
static char ocl_why[256];
static double ocl_open_s;
static char pocl_dir[128]; /* PoCL's kernel cache for this run, when the test made it */

/* The planner's probe as main makes it first, before anything else loaded the ICDs. */
static struct {
	int r;
	char why[256];
	double s;
	int device;
} cold;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int open_ocl(const struct sl_accel_config *cfg, struct sl_accel **a, char *why, size_t cap)
{
	*a = NULL;
	return sl__accel_open_cfg("opencl", cfg, a, why, cap);
}

/* ---- Without a device ------------------------------------------------------------------------ */

/* No platform at all is -ENODEV too, with its own reason. */
static int no_platform(const char *why)
{
	return strstr(why, "no OpenCL platform") || strstr(why, "no OpenCL device on");
}

static void test_open_bad_selector(void **state)
{
	(void)state;
	static const char *const bad[] = { "no-such-device-7q", "9:9", "0:77" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_accel_config cfg = { .device = bad[i] };
		struct sl_accel *a;
		char why[256] = "";
		assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), -ENODEV);
		assert_null(a);
		if (!no_platform(why)) {
			assert_non_null(strstr(why, "no OpenCL device matches"));
			assert_non_null(strstr(why, bad[i]));
		}
	}
}

/* What the planner asks at every sl_db_open: GPUs and accelerators only. Without one, the
 * answer comes from enumerating alone (nothing built), in under 200 ms from a cold start (main
 * made that call first) and again now. */
static void cold_devices_only(void)
{
	struct sl_accel_config cfg = { .devices_only = 1 };
	struct sl_accel *a = NULL;
	double t0 = now_s();
	cold.r = open_ocl(&cfg, &a, cold.why, sizeof(cold.why));
	cold.s = now_s() - t0;
	if (a) {
		struct sl_accel_info in;
		sl__accel_info(a, &in);
		cold.device = (in.flags & SL_ACCEL_INFO_DEVICE) != 0;
		sl__accel_close(a);
	}
}

static void test_open_devices_only_fast(void **state)
{
	(void)state;
	if (cold.r == 0) { /* a machine with a GPU or an accelerator */
		assert_true(cold.device);
		return;
	}
	assert_int_equal(cold.r, -ENODEV);
	if (!no_platform(cold.why))
		assert_non_null(
			strstr(cold.why, "no OpenCL GPU or accelerator (only CPU devices: "));
	printf("    devices_only open, cold: %.1f ms (%s)\n", cold.s * 1e3, cold.why);
	assert_true(cold.s < 0.2);
	struct sl_accel_config cfg = { .devices_only = 1 };
	struct sl_accel *a;
	char why[256] = "";
	double t0 = now_s();
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), -ENODEV);
	assert_true(now_s() - t0 < 0.2);
	assert_string_equal(why, cold.why);
}

static void test_open_missing_binary(void **state)
{
	(void)state;
	struct sl_accel_config cfg = { .binary = "/nonexistent/sluice-kernels.bin" };
	struct sl_accel *a;
	char why[256] = "";
	int r = open_ocl(&cfg, &a, why, sizeof(why));
	if (no_platform(why)) {
		assert_int_equal(r, -ENODEV);
		return;
	}
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(why, "/nonexistent/sluice-kernels.bin"));
}

/* ---- CRC32C and bloom filters against cpu ------------------------------------------------------
 */

static void test_crc32c_vs_cpu(void **state)
{
	(void)state;
	crc_vs_cases(ocl, cpu, 12);
}

static void test_bloom_build_vs_cpu(void **state)
{
	(void)state;
	bloom_build_vs(ocl, cpu, 20);
}

static void test_bloom_probe_vs_cpu(void **state)
{
	(void)state;
	bloom_probe_vs(ocl, cpu, 10);
}

/* ---- The merge job, opencl and cpu side by side (accel_inputs.c) ------------------------------ */

static void test_merge_random_vs_cpu(void **state)
{
	(void)state;
	for (int round = 0; round < 60; round++)
		merge_vs_random_round(ocl, cpu, round);
}

static void test_merge_cases_vs_cpu(void **state)
{
	(void)state;
	merge_vs_cases(ocl, cpu);
}

static void test_merge_corrupt_vs_cpu(void **state)
{
	(void)state;
	merge_vs_corrupt(ocl, cpu, 40);
}

/* ---- Submitted requests ---------------------------------------------------------------------- */

struct areq {
	struct sl_accel_req req;
	int calls;
};

static void areq_done(struct sl_accel_req *req, void *arg)
{
	struct areq *a = arg;
	assert_ptr_equal(&a->req, req);
	a->calls++;
}

/* Merges, CRC batches and filters submitted at once: the fifth request with four in flight gets
 * -EAGAIN (the backend's four lanes); poll runs every callback once, with the status and
 * results of a synchronous cpu call; requests that need no device (an empty batch, a bad one)
 * complete at the next poll too. */
static void test_submit_poll(void **state)
{
	(void)state;
	struct trun runs[4][3];
	struct sl_accel_run ar[4][3];
	struct sl_accel_merge_job j[4], want[4];
	struct tout o[4], wo[4];
	memset(runs, 0, sizeof(runs));
	for (int i = 0; i < 4; i++) {
		size_t un = 500 + rnd() % 500;
		struct tent *u = universe(&un);
		for (int r = 0; r < 3; r++) {
			make_run(&runs[i][r], u, un, 2, 0);
			trun_encode(&runs[i][r], cpu, 512, 16);
		}
		free(u);
		memset(&j[i], 0, sizeof(j[i]));
		job_runs(&j[i], ar[i], runs[i], 3);
		j[i].flags = i % 2 ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
		want[i] = j[i];
		tout_alloc(&o[i], &j[i], 1 << 20, 4000, 1 << 14);
		tout_alloc(&wo[i], &want[i], 1 << 20, 4000, 1 << 14);
		assert_int_equal(sl__accel_merge(cpu, &want[i]), 0);
	}
	struct areq m[4], extra, empty, bad;
	for (int i = 0; i < 4; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].req = (struct sl_accel_req){
			.op = SL_ACCEL_OP_MERGE, .u.merge = &j[i], .done = areq_done, .arg = &m[i]
		};
		assert_int_equal(sl__accel_submit(ocl, &m[i].req), 0);
	}
	uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)rnd();
	struct sl_accel_buf bufs[3] = { { data, 3000 }, { data + 1, 0 }, { data + 7, 999 } };
	uint32_t crc[3], crc_want[3];
	memset(&extra, 0, sizeof(extra));
	extra.req = (struct sl_accel_req){ .op = SL_ACCEL_OP_CRC32C,
					   .u.crc = { bufs, 3, crc },
					   .done = areq_done,
					   .arg = &extra };
	assert_int_equal(sl__accel_submit(ocl, &extra.req), -EAGAIN);
	/* No device needed: accepted with every lane busy. */
	memset(&empty, 0, sizeof(empty));
	empty.req = (struct sl_accel_req){ .op = SL_ACCEL_OP_CRC32C,
					   .u.crc = { bufs, 0, crc },
					   .done = areq_done,
					   .arg = &empty };
	assert_int_equal(sl__accel_submit(ocl, &empty.req), 0);
	memset(&bad, 0, sizeof(bad));
	bad.req = (struct sl_accel_req){ .op = 99, .done = areq_done, .arg = &bad };
	assert_int_equal(sl__accel_submit(ocl, &bad.req), 0);
	int got = 0;
	for (int spins = 0; got < 6 && spins < 1000; spins++)
		got += sl__accel_poll(ocl, 5000000000ll);
	assert_int_equal(got, 6);
	assert_int_equal(empty.calls, 1);
	assert_int_equal(empty.req.status, 0);
	assert_int_equal(bad.calls, 1);
	assert_int_equal(bad.req.status, -EINVAL);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(m[i].calls, 1);
		assert_int_equal(m[i].req.status, 0);
		assert_true(m[i].req.device_ns > 0);
		assert_int_equal(j[i].out_len, want[i].out_len);
		assert_int_equal(j[i].n_blocks, want[i].n_blocks);
		assert_int_equal(j[i].entries_out, want[i].entries_out);
		assert_memory_equal(j[i].out, want[i].out, want[i].out_len);
		assert_memory_equal(j[i].blocks, want[i].blocks,
				    want[i].n_blocks * sizeof(*j[i].blocks));
		assert_memory_equal(j[i].bloom, want[i].bloom, want[i].bloom_len);
	}
	/* Now there is room; then a filter build and probe in flight together. */
	assert_int_equal(sl__accel_submit(ocl, &extra.req), 0);
	uint64_t h[500];
	for (int i = 0; i < 500; i++)
		h[i] = rnd();
	uint8_t f[1024] = { 0 }, fw[1024] = { 0 }, hit[500], hit_want[500];
	struct areq build, probe;
	memset(&build, 0, sizeof(build));
	build.req = (struct sl_accel_req){ .op = SL_ACCEL_OP_BLOOM_BUILD,
					   .u.build = { h, 250, 6, f, sizeof(f) },
					   .done = areq_done,
					   .arg = &build };
	assert_int_equal(sl__accel_submit(ocl, &build.req), 0);
	assert_int_equal(sl__accel_bloom_build(cpu, h, 250, 6, fw, sizeof(fw)), 0);
	struct sl_accel_filter filt = { fw, sizeof(fw), 6 };
	memset(&probe, 0, sizeof(probe));
	probe.req = (struct sl_accel_req){ .op = SL_ACCEL_OP_BLOOM_PROBE,
					   .u.probe = { &filt, 1, NULL, h, 500, hit },
					   .done = areq_done,
					   .arg = &probe };
	assert_int_equal(sl__accel_submit(ocl, &probe.req), 0);
	got = 0;
	for (int spins = 0; got < 3 && spins < 1000; spins++)
		got += sl__accel_poll(ocl, 5000000000ll);
	assert_int_equal(got, 3);
	assert_int_equal(sl__accel_poll(ocl, 0), 0);
	assert_int_equal(extra.calls, 1);
	assert_int_equal(extra.req.status, 0);
	assert_int_equal(sl__accel_crc32c_batch(cpu, bufs, 3, crc_want), 0);
	assert_memory_equal(crc, crc_want, sizeof(crc));
	assert_int_equal(build.req.status, 0);
	assert_memory_equal(f, fw, sizeof(f));
	assert_int_equal(sl__accel_bloom_probe(cpu, &filt, 1, NULL, h, 500, hit_want), 0);
	assert_int_equal(probe.req.status, 0);
	assert_memory_equal(hit, hit_want, sizeof(hit));
	for (int i = 0; i < 4; i++) {
		tout_free(&o[i]);
		tout_free(&wo[i]);
		for (int r = 0; r < 3; r++)
			trun_free(&runs[i][r]);
	}
}

/* ---- Concurrent synchronous calls --------------------------------------------------------------
 */

struct worker {
	struct sl_accel_merge_job *j;
	const struct sl_accel_buf *bufs;
	size_t n;
	uint32_t *crc;
	int rc;
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	for (int i = 0; i < 4 && !w->rc; i++) {
		w->rc = sl__accel_merge(ocl, w->j);
		if (!w->rc)
			w->rc = sl__accel_crc32c_batch(ocl, w->bufs, w->n, w->crc);
	}
	return NULL;
}

/* Six threads, more than the lanes: each merge and CRC batch as cpu makes it. */
static void test_threads(void **state)
{
	(void)state;
	enum { T = 6, K = 4 };
	struct trun runs[T][K];
	struct sl_accel_run ar[T][K];
	struct sl_accel_merge_job j[T], want[T];
	struct tout o[T], wo[T];
	struct worker w[T];
	pthread_t th[T];
	uint32_t crc[T][64], crc_want[T][64];
	struct sl_accel_buf bufs[T][64];
	uint8_t *pool = pool_get();
	memset(runs, 0, sizeof(runs));
	for (int t = 0; t < T; t++) {
		size_t un = 400 + rnd() % 800;
		struct tent *u = universe(&un);
		for (int r = 0; r < K; r++) {
			make_run(&runs[t][r], u, un, 2, 0);
			trun_encode(&runs[t][r], cpu, 512, 16);
		}
		free(u);
		memset(&j[t], 0, sizeof(j[t]));
		job_runs(&j[t], ar[t], runs[t], K);
		j[t].block_bytes = 1024;
		want[t] = j[t];
		tout_alloc(&o[t], &j[t], 1 << 20, 4000, 1 << 14);
		tout_alloc(&wo[t], &want[t], 1 << 20, 4000, 1 << 14);
		assert_int_equal(sl__accel_merge(cpu, &want[t]), 0);
		for (int i = 0; i < 64; i++) {
			bufs[t][i].len = rnd() % 5000;
			bufs[t][i].data = pool + rnd() % (POOL_BYTES - 5000);
		}
		assert_int_equal(sl__accel_crc32c_batch(cpu, bufs[t], 64, crc_want[t]), 0);
		w[t] = (struct worker){ &j[t], bufs[t], 64, crc[t], 0 };
	}
	for (int t = 0; t < T; t++)
		assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	for (int t = 0; t < T; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(w[t].rc, 0);
		assert_int_equal(j[t].out_len, want[t].out_len);
		assert_memory_equal(j[t].out, want[t].out, want[t].out_len);
		assert_memory_equal(j[t].bloom, want[t].bloom, want[t].bloom_len);
		assert_memory_equal(crc[t], crc_want[t], sizeof(crc[t]));
		tout_free(&o[t]);
		tout_free(&wo[t]);
		for (int r = 0; r < K; r++)
			trun_free(&runs[t][r]);
	}
}

/* ---- The one-work-item form ------------------------------------------------------------------
 * An FPGA compute unit is started once per run (XRT has no NDRange), so every kernel also works
 * as a single work-item looping over all its items (SLK_FOR_ITEMS). The same comparisons as
 * above, with every kernel launched that way. */
static void test_one_work_item_vs_cpu(void **state)
{
	struct sl_accel_config cfg = { .one_work_item = 1 };
	struct sl_accel *wide = ocl, *one = NULL;
	char why[256];
	assert_int_equal(open_ocl(&cfg, &one, why, sizeof(why)), 0);
	struct sl_accel_info in;
	sl__accel_info(one, &in);
	assert_non_null(strstr(in.detail, "kernels start as one work-item"));
	ocl = one;
	test_crc32c_vs_cpu(state);
	test_bloom_build_vs_cpu(state);
	test_bloom_probe_vs_cpu(state);
	test_merge_cases_vs_cpu(state);
	test_merge_corrupt_vs_cpu(state);
	merge_vs_random_round(ocl, cpu, 0);
	ocl = wide;
	sl__accel_close(one);
}

/* ---- The watchdog -----------------------------------------------------------------------------
 * A phase whose completion never comes (the test hook SLUICE_OPENCL_TEST_HANG=N: the N-th phase
 * armed is never seen to end, as with a hung GPU) is given up after timeout_ms: that call and
 * every later one are -ENODEV, which the seam runs on cpu; synchronously and for a submitted
 * request. Arms: each CRC batch is one phase. */
static void test_watchdog_hung_phase(void **state)
{
	(void)state;
	uint8_t data[3000];
	fill_rnd(data, sizeof(data));
	struct sl_accel_buf bufs[2] = { { data, 3000 }, { data + 5, 777 } };
	uint32_t got[2], want[2];
	assert_int_equal(sl__accel_crc32c_batch(cpu, bufs, 2, want), 0);
	for (int async = 0; async < 2; async++) {
		setenv("SLUICE_OPENCL_TEST_HANG", "2", 1);
		struct sl_accel_config cfg = { .timeout_ms = 100 };
		struct sl_accel *a = NULL;
		char why[256];
		assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
		unsetenv("SLUICE_OPENCL_TEST_HANG");
		struct sl_accel_health h;
		for (int i = 0; i < 3; i++) {
			memset(got, 0, sizeof(got));
			if (async && i == 1) {
				struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C,
							  .u.crc = { bufs, 2, got } };
				assert_int_equal(sl__accel_submit(a, &q), 0);
				int n = 0;
				for (int spins = 0; !n && spins < 100; spins++)
					n = sl__accel_poll(a, 1000000000);
				assert_int_equal(n, 1);
				assert_int_equal(q.status, 0);
			} else {
				assert_int_equal(sl__accel_crc32c_batch(a, bufs, 2, got), 0);
			}
			assert_memory_equal(got, want, sizeof(got));
			sl__accel_health(a, &h);
			assert_int_equal(h.fallbacks, (uint64_t)i);
			assert_int_equal(h.lost, i >= 1);
		}
		sl__accel_close(a);
	}
}

/* ---- Device selection, info, the program cache
 * --------------------------------------------------- */

static void test_info(void **state)
{
	(void)state;
	struct sl_accel_info in;
	sl__accel_info(ocl, &in);
	assert_string_equal(in.name, "opencl");
	assert_non_null(strstr(in.device, "(OpenCL "));
	assert_non_null(strstr(in.detail, "compute units"));
	assert_non_null(strstr(in.detail, "program: "));
	/* Only GPUs and accelerators are devices to the planner. */
	int dev = strstr(in.detail, "GPU device") || strstr(in.detail, "accelerator device");
	assert_int_equal(!!(in.flags & SL_ACCEL_INFO_DEVICE), dev);
	printf("    %s\n    %s\n    open %.3f s\n", in.device, in.detail, ocl_open_s);
}

static void test_select_by_name_and_index(void **state)
{
	(void)state;
	struct sl_accel_info in, got;
	sl__accel_info(ocl, &in);
	/* Four characters of the device's name, in upper case: names match case-insensitively. */
	char sel[8] = "";
	for (int i = 0; i < 4 && in.device[i] && in.device[i] != ' '; i++)
		sel[i] = (char)(in.device[i] >= 'a' && in.device[i] <= 'z' ? in.device[i] - 32
									   : in.device[i]);
	struct sl_accel_config cfg = { .device = sel };
	struct sl_accel *a;
	char why[256] = "";
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
	sl__accel_info(a, &got);
	assert_string_equal(got.device, in.device);
	uint32_t c;
	assert_int_equal(sl__accel_crc32c_batch(a, &(struct sl_accel_buf){ "123456789", 9 }, 1, &c),
			 0);
	assert_int_equal(c, 0xE3069283u);
	sl__accel_close(a);
	cfg.device = "0:0";
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
	sl__accel_close(a);
}

/* The path in "program: cache PATH" of a detail line. */
static const char *cache_file(const char *detail)
{
	const char *p = strstr(detail, "program: cache ");
	return p ? p + strlen("program: cache ") : NULL;
}

static void test_cache_and_binary(void **state)
{
	(void)state;
	char dir[128], why[256] = "";
	assert_non_null(sl_test_mkdtemp(dir, sizeof(dir), "ocl_cache"));
	/* Empty PoCL's cache (ours for this run), or it would remember this source's build. */
	if (pocl_dir[0]) {
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "rm -rf %s/*", pocl_dir);
		assert_int_equal(system(cmd), 0);
	}
	struct sl_accel_config cfg = { .cache_dir = dir };
	struct sl_accel *a;
	struct sl_accel_info in;
	double t0 = now_s();
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
	double t_source = now_s() - t0;
	sl__accel_info(a, &in);
	assert_non_null(strstr(in.detail, "program: source, cached in "));
	sl__accel_close(a);
	t0 = now_s();
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
	double t_cache = now_s() - t0;
	sl__accel_info(a, &in);
	const char *file = cache_file(in.detail);
	assert_non_null(file);
	printf("    open from source %.3f s, from the cache %.3f s\n", t_source, t_cache);
	assert_true(t_cache < t_source);
	uint32_t c;
	struct sl_accel_buf b = { "123456789", 9 };
	assert_int_equal(sl__accel_crc32c_batch(a, &b, 1, &c), 0);
	assert_int_equal(c, 0xE3069283u);
	char path[256];
	snprintf(path, sizeof(path), "%s", file);
	sl__accel_close(a);
	/* The cache file as --accel-binary. */
	struct sl_accel_config bcfg = { .binary = path, .cache_dir = dir };
	assert_int_equal(open_ocl(&bcfg, &a, why, sizeof(why)), 0);
	sl__accel_info(a, &in);
	assert_non_null(strstr(in.detail, "program: binary "));
	assert_int_equal(sl__accel_crc32c_batch(a, &b, 1, &c), 0);
	assert_int_equal(c, 0xE3069283u);
	sl__accel_close(a);
	/* Garbage as a binary: refused with a reason. A damaged cache file: built from source
	 * again (and the cache rewritten). */
	size_t n;
	uint8_t *bin = sl_test_slurp(path, &n);
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite("not a program", 1, 13, fp), 13);
	fclose(fp);
	assert_int_equal(open_ocl(&bcfg, &a, why, sizeof(why)), -ENODEV);
	assert_non_null(strstr(why, "binary"));
	bin[n / 2] ^= 1;
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(bin, 1, n, fp), n);
	fclose(fp);
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
	sl__accel_info(a, &in);
	assert_non_null(strstr(in.detail, "program: source, cached in "));
	sl__accel_close(a);
	assert_int_equal(open_ocl(&cfg, &a, why, sizeof(why)), 0);
	sl__accel_info(a, &in);
	assert_non_null(cache_file(in.detail));
	sl__accel_close(a);
	free(bin);
	/* A cache directory that cannot be made: no cache, said in the detail. */
	struct sl_accel_config ncfg = { .cache_dir = "/proc/sluice-no-cache/x" };
	assert_int_equal(open_ocl(&ncfg, &a, why, sizeof(why)), 0);
	sl__accel_info(a, &in);
	assert_non_null(strstr(in.detail, "program: source, no cache"));
	sl__accel_close(a);
	assert_int_equal(sl_test_rm_rf(dir), 0);
}

int main(void)
{
	rng_state = 0x0c1e;
	/* PoCL keeps its own compiled kernels; pointed at a fresh directory, "from source" means
	 * compiled, so the cache comparison is honest. Removed at the end. */
	if (!getenv("POCL_CACHE_DIR") && sl_test_mkdtemp(pocl_dir, sizeof(pocl_dir), "ocl_pocl"))
		setenv("POCL_CACHE_DIR", pocl_dir, 1);
	cold_devices_only();
	const struct CMUnitTest no_device[] = {
		cmocka_unit_test(test_open_devices_only_fast),
		cmocka_unit_test(test_open_bad_selector),
		cmocka_unit_test(test_open_missing_binary),
	};
	const struct CMUnitTest device[] = {
		cmocka_unit_test(test_open_devices_only_fast),
		cmocka_unit_test(test_open_bad_selector),
		cmocka_unit_test(test_open_missing_binary),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_select_by_name_and_index),
		cmocka_unit_test(test_crc32c_vs_cpu),
		cmocka_unit_test(test_bloom_build_vs_cpu),
		cmocka_unit_test(test_bloom_probe_vs_cpu),
		cmocka_unit_test(test_merge_cases_vs_cpu),
		cmocka_unit_test(test_merge_random_vs_cpu),
		cmocka_unit_test(test_merge_corrupt_vs_cpu),
		cmocka_unit_test(test_submit_poll),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_one_work_item_vs_cpu),
		cmocka_unit_test(test_watchdog_hung_phase),
		cmocka_unit_test(test_cache_and_binary),
	};
	int r;
	if (sl__accel_open("cpu", &cpu) != 0)
		return 1;
	double t0 = now_s();
	struct sl_accel_config cfg = { 0 };
	if (open_ocl(&cfg, &ocl, ocl_why, sizeof(ocl_why)) != 0) {
		printf("opencl: no usable OpenCL device (%s): running the tests that need none\n",
		       ocl_why);
		r = cmocka_run_group_tests_name("opencl (no device)", no_device, NULL, NULL);
	} else {
		ocl_open_s = now_s() - t0;
		r = cmocka_run_group_tests_name("opencl", device, NULL, NULL);
		sl__accel_close(ocl);
	}
	sl__accel_close(cpu);
	pool_free();
	if (pocl_dir[0])
		sl_test_rm_rf(pocl_dir);
#ifdef __SANITIZE_ADDRESS__
	/* PoCL ends the worker threads of a released context asynchronously; LeakSanitizer's
	 * stop-the-world at exit has crashed (SIGSEGV in its tracer) on a thread caught halfway
	 * out. Let them finish first. */
	usleep(300000);
#endif
	return r;
}
