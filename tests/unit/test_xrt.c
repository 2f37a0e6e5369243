/* test_xrt.c - unit tests of the xrt backend (accel_xrt.c). Without XRT on the machine the
 * backend must say so (-ENODEV, "XRT not installed (...)"); then, with SLUICE_XRT_LIB pointing at
 * the XRT shim (sim/shim, built by the Makefile as $(BUILD)/lib/libxrt_coreutil.so.2) and the
 * shim's stand-in xclbin, every operation runs through XRT's C API (device, xclbin, kernels,
 * buffer objects, syncs, runs) and is compared with the cpu reference bit for bit: outputs,
 * return codes and every out value of the merge job, -ENOSPC needs and SL_ECORRUPT's
 * bad_run/bad_block included, over random sizes (0, 1, odd, unaligned, large batches), duplicate
 * keys, empty runs, tombstones, key ranges, tiny blocks and damaged inputs. Bad xclbins (missing,
 * garbage, a real axlf, a kernel missing, banks that do not agree, a signature the kernels do not
 * have) are refused with a reason, and the shim itself is checked to demand XRT's syncs and bank
 * placement, so that passing here means the backend does what XRT needs.
 *
 * The shim and the xclbin are found through SL_XRT_SHIM_LIB and SL_XRT_SHIM_XCLBIN (absolute
 * paths the Makefile passes), else $BUILD/lib and $BUILD/tests. Links the accel modules and err.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "accel.h"
#include "accel_inputs.h"
#include "block.h"
#include "bloom.h"
#include "sluice.h"
#include "testutil.h"
#include "xrt_capi.h"

#ifndef SL_XRT_SHIM_LIB
#define SL_XRT_SHIM_LIB ""
#endif
#ifndef SL_XRT_SHIM_XCLBIN
#define SL_XRT_SHIM_XCLBIN ""
#endif

static struct sl_accel *cpu, *xa; /* xa: the xrt backend on the shim */
static char shim_lib[512], shim_xclbin[512], tmpdir[128];
static int quick;

static int open_xrt(const char *binary, const char *device, struct sl_accel **a, char *why,
		    size_t cap)
{
	struct sl_accel_config cfg = { .binary = binary, .device = device };
	*a = NULL;
	why[0] = 0;
	return sl__accel_open_cfg("xrt", &cfg, a, why, cap);
}

/* The first of the paths that exists, into out. */
static int find_file(char *out, size_t cap, const char *built_in, const char *under_build)
{
	const char *b = getenv("BUILD");
	if (built_in[0] && access(built_in, R_OK) == 0) {
		snprintf(out, cap, "%s", built_in);
		return 0;
	}
	snprintf(out, cap, "%s/%s", b && b[0] ? b : "build", under_build);
	return access(out, R_OK);
}

/* ---- Without XRT ------------------------------------------------------------------------------
 */

/* Is XRT's library loadable here, as the backend looks for it? */
static int xrt_installed(void)
{
	static const char *const names[] = { "libxrt_coreutil.so.2", "libxrt_coreutil.so",
					     "/opt/xilinx/xrt/lib/libxrt_coreutil.so.2" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (h) {
			dlclose(h);
			return 1;
		}
	}
	const char *root = getenv("XILINX_XRT");
	return root && root[0];
}

static void test_open_absent(void **state)
{
	(void)state;
	char why[256];
	struct sl_accel *a;
	unsetenv("SLUICE_XRT_LIB");
	int r = open_xrt(shim_xclbin, NULL, &a, why, sizeof(why));
	if (xrt_installed()) {
		printf("    XRT is installed here: open %d (%s)\n", r, why);
		if (a)
			sl__accel_close(a);
		return;
	}
	assert_int_equal(r, -ENODEV);
	assert_null(a);
	assert_string_equal(why, "XRT not installed (libxrt_coreutil.so.2 not found)");
	/* No xclbin either: the library is looked for first. */
	assert_int_equal(open_xrt(NULL, NULL, &a, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "XRT not installed (libxrt_coreutil.so.2 not found)");
	/* The planner still opens (cpu alone). */
	assert_int_equal(sl__accel_open_cfg("auto", &(struct sl_accel_config){ .calibrate = -1 },
					    &a, why, sizeof(why)),
			 0);
	sl__accel_close(a);
	setenv("SLUICE_XRT_LIB", shim_lib, 1);
}

static void test_open_bad_library(void **state)
{
	(void)state;
	char why[256];
	struct sl_accel *a;
	setenv("SLUICE_XRT_LIB", "/nonexistent/libxrt_coreutil.so.2", 1);
	assert_int_equal(open_xrt(shim_xclbin, NULL, &a, why, sizeof(why)), -ENODEV);
	assert_non_null(strstr(why, "/nonexistent/libxrt_coreutil.so.2 (SLUICE_XRT_LIB) not "
				    "loadable"));
	/* A library without XRT's entry points. */
	setenv("SLUICE_XRT_LIB", "libm.so.6", 1);
	assert_int_equal(open_xrt(shim_xclbin, NULL, &a, why, sizeof(why)), -ENODEV);
	assert_string_equal(why, "the XRT library lacks xrtDeviceOpen (XRT 2.8 or later has it)");
	setenv("SLUICE_XRT_LIB", shim_lib, 1);
}

/* ---- Bad xclbins and devices ----------------------------------------------------------------- */

/* The stand-in xclbin with every line containing `drop` removed and `from` replaced by `to`
 * (NULL: none), written to a file of the temporary directory. */
static const char *xclbin_variant(const char *name, const char *drop, const char *from,
				  const char *to)
{
	static char path[256];
	size_t n;
	uint8_t *src = sl_test_slurp(shim_xclbin, &n);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	int dropped = 0, replaced = 0;
	for (char *save = NULL, *line = strtok_r((char *)src, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (drop && strstr(line, drop)) {
			dropped = 1;
			continue;
		}
		if (from && !strcmp(line, from)) {
			line = (char *)to;
			replaced = 1;
		}
		fprintf(f, "%s\n", line);
	}
	assert_int_equal(fclose(f), 0);
	free(src);
	assert_true(!drop || dropped);
	assert_true(!from || replaced);
	return path;
}

static void expect_refused(const char *binary, const char *device, const char *needle)
{
	char why[512];
	struct sl_accel *a;
	assert_int_equal(open_xrt(binary, device, &a, why, sizeof(why)), -ENODEV);
	assert_null(a);
	if (!strstr(why, needle))
		fail_msg("reason \"%s\" lacks \"%s\"", why, needle);
}

static void test_open_refusals(void **state)
{
	(void)state;
	char path[256];
	setenv("SLUICE_XRT_SHIM_QUIET", "1", 1);
	expect_refused(NULL, NULL, "no --accel-binary xclbin given");
	expect_refused("", NULL, "no --accel-binary xclbin given");
	expect_refused("/nonexistent/sluice.xclbin", NULL,
		       "cannot read xclbin /nonexistent/sluice.xclbin: No such file");
	/* Garbage, an empty file, and a real xclbin (an axlf image: magic "xclbin2"). */
	snprintf(path, sizeof(path), "%s/garbage.xclbin", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("not an xclbin at all\n", f);
	fclose(f);
	expect_refused(path, NULL, "XRT could not load xclbin");
	expect_refused(path, NULL, path);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	expect_refused(path, NULL, "XRT could not load xclbin");
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite("xclbin2\0\0\0\0\0\0\0\0\0", 1, 16, f), 16);
	fclose(f);
	expect_refused(path, NULL, "XRT could not load xclbin");
	/* A kernel missing: named. */
	expect_refused(xclbin_variant("nobloom.xclbin", "kernel slk_merge_bloom ", NULL, NULL),
		       NULL, "lacks kernel slk_merge_bloom");
	expect_refused(xclbin_variant("noabi.xclbin", "kernel slk_abi ", NULL, NULL), NULL,
		       "lacks kernel slk_abi");
	/* Kernels that share a buffer connected to different banks. */
	expect_refused(xclbin_variant("banks.xclbin", NULL, "kernel slk_merge_crc g1 g1 u64",
				      "kernel slk_merge_crc g0 g1 u64"),
		       NULL,
		       "connects slk_merge argument 1 to memory bank 1 but slk_merge_crc "
		       "argument 0 to bank 0");
	/* A kernel declared with arguments the kernels do not have. */
	expect_refused(xclbin_variant("sig.xclbin", NULL, "kernel slk_crc32c g0 u64 u64 u64",
				      "kernel slk_crc32c g0 u64 u64"),
		       NULL, "XRT could not load xclbin");
	/* Devices: an index past the shim's one device, and something not an index. */
	expect_refused(shim_xclbin, "3", "no XRT device 3");
	expect_refused(shim_xclbin, "0:0", "XRT device \"0:0\" is not a device index");
	/* Two devices modelled: the second one opens. */
	setenv("SLUICE_XRT_SHIM_DEVICES", "2", 1);
	char why[256];
	struct sl_accel *a;
	assert_int_equal(open_xrt(shim_xclbin, "1", &a, why, sizeof(why)), 0);
	struct sl_accel_info in;
	sl__accel_info(a, &in);
	assert_non_null(strstr(in.detail, "device 1;"));
	uint32_t c;
	assert_int_equal(sl__accel_crc32c_batch(a, &(struct sl_accel_buf){ "123456789", 9 }, 1, &c),
			 0);
	assert_int_equal(c, 0xE3069283u);
	sl__accel_close(a);
	unsetenv("SLUICE_XRT_SHIM_DEVICES");
	unsetenv("SLUICE_XRT_SHIM_QUIET");
}

static void test_info(void **state)
{
	(void)state;
	struct sl_accel_info in;
	sl__accel_info(xa, &in);
	assert_string_equal(in.name, "xrt");
	assert_non_null(strstr(in.device, "XRT shim"));
	assert_non_null(strstr(in.detail, "xclbin "));
	assert_non_null(strstr(in.detail, "(uuid "));
	assert_non_null(strstr(in.detail, "libxrt_coreutil.so.2"));
	/* The shim is no device: the planner must never route to it. */
	assert_int_equal(in.flags & (SL_ACCEL_INFO_DEVICE | SL_ACCEL_INFO_MODEL), 0);
	printf("    %s\n    %s\n", in.device, in.detail);
}

/* ---- The shim keeps XRT's rules ------------------------------------------------------------ */

struct xrt_fns {
	__typeof__(&xrtDeviceOpen) open;
	__typeof__(&xrtDeviceClose) close;
	__typeof__(&xrtDeviceLoadXclbinFile) load;
	__typeof__(&xrtDeviceGetXclbinUUID) uuid;
	__typeof__(&xrtPLKernelOpen) kopen;
	__typeof__(&xrtKernelClose) kclose;
	__typeof__(&xrtKernelArgGroupId) group;
	__typeof__(&xrtBOAlloc) alloc;
	__typeof__(&xrtBOFree) free;
	__typeof__(&xrtBOMap) map;
	__typeof__(&xrtBOSync) sync;
	__typeof__(&xrtRunOpen) ropen;
	__typeof__(&xrtRunSetArg) set;
	__typeof__(&xrtRunStart) start;
	__typeof__(&xrtRunWait) wait;
	__typeof__(&xrtRunClose) rclose;
};

static void *sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);
	assert_non_null(p);
	return p;
}

#define RESOLVE(fn, name) memcpy(&(fn), &(void *){ sym(lib, name) }, sizeof(void *))

/* A kernel sees device memory only: written to the host mapping and not synced, its input is
 * not there (the run fails on the junk), and its output is not in the mapping until synced
 * back. A buffer from a bank the argument is not connected to is refused. */
static void test_shim_needs_sync(void **state)
{
	(void)state;
	void *lib = dlopen(shim_lib, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(lib);
	setenv("SLUICE_XRT_SHIM_QUIET", "1", 1);
	struct xrt_fns x;
	RESOLVE(x.open, "xrtDeviceOpen");
	RESOLVE(x.close, "xrtDeviceClose");
	RESOLVE(x.load, "xrtDeviceLoadXclbinFile");
	RESOLVE(x.uuid, "xrtDeviceGetXclbinUUID");
	RESOLVE(x.kopen, "xrtPLKernelOpen");
	RESOLVE(x.kclose, "xrtKernelClose");
	RESOLVE(x.group, "xrtKernelArgGroupId");
	RESOLVE(x.alloc, "xrtBOAlloc");
	RESOLVE(x.free, "xrtBOFree");
	RESOLVE(x.map, "xrtBOMap");
	RESOLVE(x.sync, "xrtBOSync");
	RESOLVE(x.ropen, "xrtRunOpen");
	RESOLVE(x.set, "xrtRunSetArg");
	RESOLVE(x.start, "xrtRunStart");
	RESOLVE(x.wait, "xrtRunWait");
	RESOLVE(x.rclose, "xrtRunClose");
	xrtDeviceHandle d = x.open(0);
	assert_non_null(d);
	xuid_t id;
	assert_int_equal(x.uuid(d, id), -1); /* nothing loaded yet */
	assert_int_equal(x.load(d, shim_xclbin), 0);
	assert_int_equal(x.uuid(d, id), 0);
	assert_null(x.kopen(d, id, "slk_no_such_kernel"));
	xrtKernelHandle k = x.kopen(d, id, "slk_crc32c");
	assert_non_null(k);
	assert_int_equal(x.group(k, 0), 0);
	assert_true(x.group(k, 1) < 0); /* a scalar */
	xrtBufferHandle b = x.alloc(d, 4096, XRT_BO_FLAGS_NONE, 0);
	xrtBufferHandle other = x.alloc(d, 4096, XRT_BO_FLAGS_NONE, 1);
	assert_true(b && other);
	uint8_t *m = x.map(b);
	assert_non_null(m);
	/* One chunk: "123456789" at 64, its accumulator at 32. */
	struct {
		uint64_t off, after;
		uint32_t len, slot;
	} ch = { 64, 0, 9, 0x80000000u };
	memcpy(m, &ch, sizeof(ch));
	memset(m + 32, 0, 4);
	memcpy(m + 64, "123456789", 9);
	xrtRunHandle r = x.ropen(k);
	assert_non_null(r);
	assert_int_equal(x.set(r, 0, other), -1); /* bank 1: not connected */
	assert_int_equal(x.start(r), -1);	  /* arguments not set */
	assert_int_equal(x.set(r, 0, b), 0);
	assert_int_equal(x.set(r, 1, (uint64_t)0), 0);
	assert_int_equal(x.set(r, 2, (uint64_t)1), 0);
	assert_int_equal(x.set(r, 3, (uint64_t)32), 0);
	assert_int_equal(x.start(r), 0);
	assert_int_equal(x.wait(r), ERT_CMD_STATE_ERROR); /* junk chunk table on the device */
	assert_int_equal(x.sync(b, XCL_BO_SYNC_BO_TO_DEVICE, 128, 0), 0);
	assert_int_equal(x.start(r), 0);
	assert_int_equal(x.wait(r), ERT_CMD_STATE_COMPLETED);
	uint32_t acc;
	memcpy(&acc, m + 32, 4);
	assert_int_equal(acc, 0); /* not synced back yet */
	assert_int_equal(x.sync(b, XCL_BO_SYNC_BO_FROM_DEVICE, 4, 32), 0);
	memcpy(&acc, m + 32, 4);
	assert_int_equal(acc ^ 0xFFFFFFFFu, 0xE3069283u);
	assert_int_equal(x.sync(b, XCL_BO_SYNC_BO_FROM_DEVICE, 4096, 1), -1); /* past the end */
	/* Closing in any order: the run holds its kernel and buffer. */
	assert_int_equal(x.kclose(k), 0);
	assert_int_equal(x.free(b), 0);
	assert_int_equal(x.start(r), 0);
	assert_int_equal(x.wait(r), ERT_CMD_STATE_COMPLETED);
	assert_int_equal(x.rclose(r), 0);
	assert_int_equal(x.free(other), 0);
	assert_int_equal(x.close(d), 0);
	dlclose(lib);
	unsetenv("SLUICE_XRT_SHIM_QUIET");
}

/* ---- CRC32C and bloom filters against cpu ------------------------------------------------------
 */

static void test_crc32c_vs_cpu(void **state)
{
	(void)state;
	crc_vs_cases(xa, cpu, quick ? 4 : 10);
	/* The refusals are the other backends'. */
	uint32_t c;
	struct sl_accel_buf nodata = { NULL, 3 };
	assert_int_equal(sl__accel_crc32c_batch(xa, &nodata, 1, &c), -EINVAL);
	assert_int_equal(sl__accel_crc32c_batch(xa, NULL, 1, &c), -EINVAL);
}

static void test_bloom_build_vs_cpu(void **state)
{
	(void)state;
	bloom_build_vs(xa, cpu, 16);
}

static void test_bloom_probe_vs_cpu(void **state)
{
	(void)state;
	bloom_probe_vs(xa, cpu, 10);
}

/* ---- The merge job, xrt and cpu side by side (accel_inputs.c) --------------------------------- */

static void test_merge_random_vs_cpu(void **state)
{
	(void)state;
	for (int round = 0; round < (quick ? 12 : 40); round++)
		merge_vs_random_round(xa, cpu, round);
}

static void test_merge_cases_vs_cpu(void **state)
{
	(void)state;
	merge_vs_cases(xa, cpu);
}

static void test_merge_corrupt_vs_cpu(void **state)
{
	(void)state;
	merge_vs_corrupt(xa, cpu, quick ? 10 : 30);
}

/* ---- Through the seam: submitted requests and concurrent calls ----------------------------------
 */

static void count_done(struct sl_accel_req *req, void *arg)
{
	(void)req;
	(*(int *)arg)++;
}

/* Submit until accepted: -EAGAIN (queue full) means poll, then submit again. */
static int submit_retry(struct sl_accel_req *q, int *got)
{
	int r;
	while ((r = sl__accel_submit(xa, q)) == -EAGAIN)
		*got += sl__accel_poll(xa, 1000000);
	return r;
}

/* xrt's own queue: worker threads run the requests on lanes while the caller goes on; every
 * result as cpu makes it, each callback once, a bad request completed with -EINVAL. */
static void test_submit_poll(void **state)
{
	(void)state;
	enum { M = 6 };
	struct trun runs[M][3];
	struct sl_accel_run ar[M][3];
	struct sl_accel_merge_job j[M], want[M];
	struct tout o[M], wo[M];
	memset(runs, 0, sizeof(runs));
	int calls[M + 5] = { 0 }, got = 0;
	struct sl_accel_req m[M];
	for (int i = 0; i < M; i++) {
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
		m[i] = (struct sl_accel_req){
			.op = SL_ACCEL_OP_MERGE, .u.merge = &j[i], .done = count_done, .arg = &calls[i]
		};
		assert_int_equal(submit_retry(&m[i], &got), 0);
	}
	uint8_t data[5000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)rnd();
	struct sl_accel_buf bufs[3] = { { data, 5000 }, { data + 1, 0 }, { data + 7, 999 } };
	uint32_t crc[3], crc_want[3];
	uint64_t h[500];
	for (int i = 0; i < 500; i++)
		h[i] = rnd();
	uint8_t f[1024] = { 0 }, fw[1024] = { 0 }, hit[500], hit_want[500];
	assert_int_equal(sl__accel_bloom_build(cpu, h, 250, 6, fw, sizeof(fw)), 0);
	struct sl_accel_filter filt = { fw, sizeof(fw), 6 };
	struct sl_accel_req more[5] = {
		{ .op = SL_ACCEL_OP_CRC32C, .u.crc = { bufs, 3, crc } },
		{ .op = SL_ACCEL_OP_CRC32C, .u.crc = { bufs, 0, crc } },
		{ .op = 99 },
		{ .op = SL_ACCEL_OP_BLOOM_BUILD, .u.build = { h, 250, 6, f, sizeof(f) } },
		{ .op = SL_ACCEL_OP_BLOOM_PROBE, .u.probe = { &filt, 1, NULL, h, 500, hit } },
	};
	for (int i = 0; i < 5; i++) {
		more[i].done = count_done;
		more[i].arg = &calls[M + i];
		assert_int_equal(submit_retry(&more[i], &got), 0);
	}
	for (int spins = 0; got < M + 5 && spins < 1000; spins++)
		got += sl__accel_poll(xa, 5000000000ll);
	assert_int_equal(got, M + 5);
	assert_int_equal(sl__accel_poll(xa, 0), 0);
	for (int i = 0; i < M + 5; i++)
		assert_int_equal(calls[i], 1);
	for (int i = 0; i < M; i++) {
		assert_int_equal(m[i].status, 0);
		assert_true(m[i].device_ns > 0);
		assert_int_equal(j[i].out_len, want[i].out_len);
		assert_int_equal(j[i].n_blocks, want[i].n_blocks);
		assert_int_equal(j[i].entries_out, want[i].entries_out);
		assert_memory_equal(j[i].out, want[i].out, want[i].out_len);
		assert_memory_equal(j[i].blocks, want[i].blocks,
				    want[i].n_blocks * sizeof(*j[i].blocks));
		assert_memory_equal(j[i].bloom, want[i].bloom, want[i].bloom_len);
		tout_free(&o[i]);
		tout_free(&wo[i]);
		truns_free(runs[i], 3);
	}
	assert_int_equal(more[0].status, 0);
	assert_int_equal(sl__accel_crc32c_batch(cpu, bufs, 3, crc_want), 0);
	assert_memory_equal(crc, crc_want, sizeof(crc));
	assert_int_equal(more[1].status, 0);
	assert_int_equal(more[2].status, -EINVAL);
	assert_int_equal(more[3].status, 0);
	assert_memory_equal(f, fw, sizeof(f));
	assert_int_equal(more[4].status, 0);
	assert_int_equal(sl__accel_bloom_probe(cpu, &filt, 1, NULL, h, 500, hit_want), 0);
	assert_memory_equal(hit, hit_want, sizeof(hit));
}

/* A compute unit that hangs (the shim's SLUICE_XRT_SHIM_HANG_RUN): the watchdog gives up on the
 * run after timeout_ms, the backend says -ENODEV for it and every later call, and the seam runs
 * them on cpu: every answer is cpu's, each fallback counted, the device marked lost. Runs: 1 is
 * slk_abi at open, 2 the first CRC batch, 3 the second (it hangs). */
static void test_hung_compute_unit(void **state)
{
	(void)state;
	setenv("SLUICE_XRT_SHIM_HANG_RUN", "3", 1);
	struct sl_accel_config cfg = { .binary = shim_xclbin, .timeout_ms = 100 };
	struct sl_accel *a = NULL;
	char why[256] = "";
	assert_int_equal(sl__accel_open_cfg("xrt", &cfg, &a, why, sizeof(why)), 0);
	uint8_t data[5000];
	fill_rnd(data, sizeof(data));
	struct sl_accel_buf bufs[3] = { { data, 5000 }, { data + 1, 0 }, { data + 7, 999 } };
	uint32_t got[3], want[3];
	assert_int_equal(sl__accel_crc32c_batch(cpu, bufs, 3, want), 0);
	struct sl_accel_health h;
	for (int i = 0; i < 4; i++) {
		memset(got, 0, sizeof(got));
		assert_int_equal(sl__accel_crc32c_batch(a, bufs, 3, got), 0);
		assert_memory_equal(got, want, sizeof(got));
		sl__accel_health(a, &h);
		assert_int_equal(h.fallbacks, i < 1 ? 0 : (uint64_t)i);
		assert_int_equal(h.lost, i >= 1);
	}
	uint64_t hs[200];
	for (int i = 0; i < 200; i++)
		hs[i] = rnd();
	uint8_t f[512] = { 0 }, fw[512] = { 0 };
	assert_int_equal(sl__accel_bloom_build(a, hs, 200, 5, f, sizeof(f)), 0);
	assert_int_equal(sl__accel_bloom_build(cpu, hs, 200, 5, fw, sizeof(fw)), 0);
	assert_memory_equal(f, fw, sizeof(f));
	sl__accel_health(a, &h);
	assert_int_equal(h.fallbacks, 4);
	sl__accel_close(a); /* lets the hung run go; never waits for it */
	unsetenv("SLUICE_XRT_SHIM_HANG_RUN");
}

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
	for (int i = 0; i < 3 && !w->rc; i++) {
		w->rc = sl__accel_merge(xa, w->j);
		if (!w->rc)
			w->rc = sl__accel_crc32c_batch(xa, w->bufs, w->n, w->crc);
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
		assert_memory_equal(j[t].blocks, want[t].blocks,
				    want[t].n_blocks * sizeof(*j[t].blocks));
		assert_memory_equal(j[t].bloom, want[t].bloom, want[t].bloom_len);
		assert_memory_equal(crc[t], crc_want[t], sizeof(crc[t]));
		tout_free(&o[t]);
		tout_free(&wo[t]);
		for (int r = 0; r < K; r++)
			trun_free(&runs[t][r]);
	}
}

/* Opens the backend on the shim for the tests after it (they run in this order). */
static void test_open_shim(void **state)
{
	(void)state;
	char why[256];
	setenv("SLUICE_XRT_LIB", shim_lib, 1);
	int r = open_xrt(shim_xclbin, NULL, &xa, why, sizeof(why));
	if (r)
		fail_msg("cannot open the xrt backend on the shim: %d (%s)", r, why);
}

int main(void)
{
	rng_state = 0x7a7;
	const char *q = getenv("SL_TEST_QUICK");
	quick = q && q[0] && strcmp(q, "0");
	if (find_file(shim_lib, sizeof(shim_lib), SL_XRT_SHIM_LIB, "lib/libxrt_coreutil.so.2") ||
	    find_file(shim_xclbin, sizeof(shim_xclbin), SL_XRT_SHIM_XCLBIN,
		      "tests/sluice-shim.xclbin")) {
		fprintf(stderr, "xrt: the XRT shim or its xclbin is missing (%s, %s): make tests\n",
			shim_lib, shim_xclbin);
		return 1;
	}
	if (!sl_test_mkdtemp(tmpdir, sizeof(tmpdir), "xrt") || sl__accel_open("cpu", &cpu) != 0)
		return 1;
	printf("xrt: %s\n", xrt_installed() ? "XRT installed here; testing against the shim too"
					    : "XRT absent, testing against the shim");
	/* The absent case first, with SLUICE_XRT_LIB unset; from the second test on the shim. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_absent),
		cmocka_unit_test(test_open_shim),
		cmocka_unit_test(test_open_bad_library),
		cmocka_unit_test(test_open_refusals),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_shim_needs_sync),
		cmocka_unit_test(test_crc32c_vs_cpu),
		cmocka_unit_test(test_bloom_build_vs_cpu),
		cmocka_unit_test(test_bloom_probe_vs_cpu),
		cmocka_unit_test(test_merge_cases_vs_cpu),
		cmocka_unit_test(test_merge_random_vs_cpu),
		cmocka_unit_test(test_merge_corrupt_vs_cpu),
		cmocka_unit_test(test_submit_poll),
		cmocka_unit_test(test_hung_compute_unit),
		cmocka_unit_test(test_threads),
	};
	int r = cmocka_run_group_tests_name("xrt", tests, NULL, NULL);
	sl__accel_close(xa);
	sl__accel_close(cpu);
	pool_free();
	sl_test_rm_rf(tmpdir);
	return r;
}
