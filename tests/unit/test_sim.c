/* test_sim.c - unit tests of the sim backend (host/src/accel_sim.c), the device model (sim/) and
 * the firmware's command processor (firmware/): every operation through sl__accel_open("sim")
 * against the cpu backend, byte for byte and value for value, on both profiles (CRC32C batches
 * of every size and alignment up to 100k buffers; bloom build and probe up to 1M hashes; the
 * merge over random runs with tombstones, key ranges, tiny blocks, exact -ENOSPC needs, damaged
 * and out-of-order inputs, bad parameters); asynchronous requests (callbacks once each, a full
 * ring, close with requests in flight, concurrent synchronous callers); malformed descriptors
 * sent straight to the device, each answered by its error completion with device memory left
 * as it was; and the cost model's times, exactly.
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

#include <cmocka.h>

#include "accel.h"
#include "accel_inputs.h"
#include "block.h"
#include "bloom.h"
#include "fw.h"
#include "fw_abi.h"
#include "sim.h"
#include "sluice.h"

static const char *const profiles[] = { "fpga", "gpu" };
#define NPROFILES 2

static struct sl_accel *open_backend(const char *mode, const char *profile)
{
	struct sl_accel_config cfg = { .sim_profile = profile };
	struct sl_accel *a = NULL;
	char why[200];
	int r = sl__accel_open_cfg(mode, &cfg, &a, why, sizeof(why));
	if (r)
		print_error("open %s (%s): %d %s\n", mode, profile ? profile : "-", r, why);
	assert_int_equal(r, 0);
	assert_non_null(a);
	return a;
}

/* ---- Open and info -------------------------------------------------------------------------- */

static void test_sim_open_profiles(void **state)
{
	(void)state;
	static const char *const ok[] = {
		NULL, "", "fpga", "gpu", "gpu,ring=4", "fpga,mem_mb=64", "fpga,ring=1,mem_mb=8"
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct sl_accel *a = open_backend("sim", ok[i]);
		struct sl_accel_info info;
		sl__accel_info(a, &info);
		assert_string_equal(info.name, "sim");
		assert_int_equal(info.flags, SL_ACCEL_INFO_MODEL);
		int gpu = ok[i] && !strncmp(ok[i], "gpu", 3);
		assert_non_null(strstr(info.detail, gpu ? "modelled gpu" : "modelled fpga"));
		assert_non_null(strstr(info.device, gpu ? "Gen4" : "Gen3"));
		assert_non_null(strstr(info.detail, gpu ? "8000 ns launch" : "20000 ns launch"));
		assert_int_equal(sl__accel_crc32c(a, "123456789", 9), 0xE3069283u);
		sl__accel_close(a);
	}
	static const char *const bad[] = {
		"tpu",		 "FPGA",	"fpga,",	   "fpga,ring=0",
		"gpu,ring=5000", "gpu,mem_mb=", "fpga,colour=red", "fpgax"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_accel_config cfg = { .sim_profile = bad[i] };
		struct sl_accel *a = (struct sl_accel *)0x1;
		char why[200] = "";
		assert_int_equal(sl__accel_open_cfg("sim", &cfg, &a, why, sizeof(why)), SL_ECONFIG);
		assert_null(a);
		assert_non_null(strstr(why, "sim profile"));
	}
}

/* ---- CRC32C --------------------------------------------------------------------------------- */

static void test_crc32c_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	enum { POOL = 300000 };
	uint8_t *pool = malloc(POOL);
	assert_non_null(pool);
	fill_rnd(pool, POOL);
	for (int p = 0; p < NPROFILES; p++) {
		struct sl_accel *sim = open_backend("sim", profiles[p]);
		/* Every size around the slice-by-8 steps, at every alignment 0..15. */
		static const size_t sizes[] = { 0,   1,	   2,	 3,    7,     8,      9,     15,
						16,  17,   31,	 63,   64,    65,     127,   255,
						256, 1023, 4095, 4097, 65535, 100003, 262147 };
		enum { NS = sizeof(sizes) / sizeof(sizes[0]) };
		struct sl_accel_buf bufs[NS * 16];
		for (size_t i = 0; i < NS * 16; i++)
			bufs[i] = (struct sl_accel_buf){ pool + i % 16, sizes[i / 16] };
		crc_vs(sim, cpu, bufs, NS * 16);
		/* One at a time, the known vector, NULL with 0. */
		for (size_t i = 0; i < NS; i++)
			assert_int_equal(sl__accel_crc32c(sim, pool + 3, sizes[i]),
					 sl__accel_crc32c(cpu, pool + 3, sizes[i]));
		assert_int_equal(sl__accel_crc32c(sim, NULL, 0), 0);
		/* Random batches of random slices. */
		for (int round = 0; round < 20; round++) {
			size_t n = 1 + rnd() % 300;
			for (size_t i = 0; i < n; i++) {
				size_t len = rnd() % 8 ? rnd() % 100 : rnd() % 70000;
				bufs[i] = (struct sl_accel_buf){ pool + rnd() % (POOL - len + 1),
								 len };
			}
			crc_vs(sim, cpu, bufs, n);
		}
		/* n = 0 touches nothing. */
		uint32_t untouched = 0x12345678u;
		assert_int_equal(sl__accel_crc32c_batch(sim, bufs, 0, &untouched), 0);
		assert_int_equal(untouched, 0x12345678u);
		sl__accel_close(sim);
	}
	free(pool);
	sl__accel_close(cpu);
}

static void test_crc32c_huge_batch(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *sim = open_backend("sim", "gpu");
	enum { N = 100000, POOL = 1 << 20 };
	uint8_t *pool = malloc(POOL);
	struct sl_accel_buf *bufs = malloc(N * sizeof(*bufs));
	assert_true(pool && bufs);
	fill_rnd(pool, POOL);
	for (size_t i = 0; i < N; i++) {
		size_t len = i % 97 == 0 ? 0 : rnd() % 61;
		bufs[i] = (struct sl_accel_buf){ i % 97 == 0 && i % 2 ? NULL
								      : pool + rnd() % (POOL - 64),
						 len };
	}
	crc_vs(sim, cpu, bufs, N);
	free(bufs);
	free(pool);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* ---- Bloom build and probe ------------------------------------------------------------------ */

static void build_both(struct sl_accel *cpu, struct sl_accel *sim, const uint64_t *h, size_t n,
		       uint32_t k, size_t size, int expect)
{
	/* One guard block past the filter: nothing may be written there. */
	uint8_t *a = malloc(size + 64), *b = malloc(size + 64);
	assert_true(a && b);
	fill_rnd(a, size + 64);
	for (size_t i = 0; i < size; i++)
		a[i] &= (uint8_t)rnd(); /* some bits already set: they stay set */
	memcpy(b, a, size + 64);
	assert_int_equal(sl__accel_bloom_build(cpu, h, n, k, a, size), expect);
	assert_int_equal(sl__accel_bloom_build(sim, h, n, k, b, size), expect);
	assert_memory_equal(a, b, size + 64);
	free(a);
	free(b);
}

static uint64_t *hashes_new(size_t n)
{
	uint64_t *h = malloc((n + 1) * sizeof(*h));
	assert_non_null(h);
	for (size_t i = 0; i < n; i++)
		h[i] = rnd();
	return h;
}

static void test_bloom_build_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	for (int p = 0; p < NPROFILES; p++) {
		struct sl_accel *sim = open_backend("sim", profiles[p]);
		uint64_t *h = hashes_new(5000);
		static const size_t ns[] = { 0, 1, 2, 3, 63, 64, 65, 1000, 5000 };
		static const uint32_t ks[] = { 1, 2, 6, 7, 15, 33, 64 };
		static const size_t sizes[] = { 0, 64, 128, 192, 4096, 6400 };
		for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
			for (size_t b = 0; b < sizeof(ks) / sizeof(ks[0]); b++)
				build_both(cpu, sim, h, ns[a], ks[b], sizes[(a + b) % 6], 0);
		/* Bad arguments: -EINVAL from both, the filter untouched. */
		build_both(cpu, sim, h, 10, 6, 100, -EINVAL);
		build_both(cpu, sim, h, 10, 0, 128, -EINVAL);
		build_both(cpu, sim, h, 10, 65, 128, -EINVAL);
		build_both(cpu, sim, NULL, 10, 6, 128, -EINVAL);
		assert_int_equal(sl__accel_bloom_build(sim, h, 10, 6, NULL, 64), -EINVAL);
		free(h);
		sl__accel_close(sim);
	}
	/* A million hashes into a filter of 10 bits a key. */
	struct sl_accel *sim = open_backend("sim", "fpga");
	uint64_t *h = hashes_new(1000000);
	build_both(cpu, sim, h, 1000000, 6, sl__bloom_bytes(1000000, 10), 0);
	free(h);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* nf filters of assorted sizes (below a block, odd sizes, whole blocks), half their keys added. */
struct filters {
	struct sl_accel_filter f[8];
	uint8_t *mem[8];
	size_t n;
};

static void filters_make(struct filters *fs, struct sl_accel *cpu, const uint64_t *h, size_t nh)
{
	static const size_t sizes[] = { 0, 32, 64, 100, 4096, 8192 + 40, 65536, 640 };
	fs->n = 8;
	for (size_t i = 0; i < fs->n; i++) {
		size_t s = sizes[i];
		fs->mem[i] = calloc(1, s + 1);
		assert_non_null(fs->mem[i]);
		fs->f[i] = (struct sl_accel_filter){ s ? fs->mem[i] : NULL, s, (uint32_t)(1 + i) };
		size_t whole = s / 64 * 64;
		if (whole)
			assert_int_equal(sl__accel_bloom_build(cpu, h, nh / 2, fs->f[i].k,
							       fs->mem[i], whole),
					 0);
		if (s > whole)
			fill_rnd(fs->mem[i] + whole, s - whole);
	}
}

static void filters_free(struct filters *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		free(fs->mem[i]);
}

static void probe_both(struct sl_accel *cpu, struct sl_accel *sim, const struct filters *fs,
		       const uint32_t *which, const uint64_t *h, size_t n, int expect)
{
	uint8_t *a = malloc(n + 16), *b = malloc(n + 16);
	assert_true(a && b);
	memset(a, 0x77, n + 16);
	memset(b, 0x77, n + 16);
	assert_int_equal(sl__accel_bloom_probe(cpu, fs->f, fs->n, which, h, n, a), expect);
	assert_int_equal(sl__accel_bloom_probe(sim, fs->f, fs->n, which, h, n, b), expect);
	assert_memory_equal(a, b, n + 16);
	free(a);
	free(b);
}

static void test_bloom_probe_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	enum { N = 20000 };
	uint64_t *h = hashes_new(N);
	uint32_t *which = malloc(N * sizeof(*which));
	assert_non_null(which);
	struct filters fs;
	filters_make(&fs, cpu, h, N);
	for (int p = 0; p < NPROFILES; p++) {
		struct sl_accel *sim = open_backend("sim", profiles[p]);
		for (size_t i = 0; i < N; i++)
			which[i] = (uint32_t)(rnd() % fs.n);
		static const size_t ns[] = { 0, 1, 2, 7, 100, 4097, N };
		for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
			probe_both(cpu, sim, &fs, which, h, ns[i], 0);
			probe_both(cpu, sim, &fs, NULL, h, ns[i], 0);
		}
		/* Each filter alone through which, and as filter 0 of its own. */
		for (size_t f = 0; f < fs.n; f++) {
			struct filters one = { .n = 1 };
			one.f[0] = fs.f[f];
			probe_both(cpu, sim, &one, NULL, h, 3000, 0);
			for (size_t i = 0; i < 3000; i++)
				which[i] = (uint32_t)f;
			probe_both(cpu, sim, &fs, which, h, 3000, 0);
		}
		/* A which out of range: -EINVAL from both, out untouched. */
		for (size_t i = 0; i < 100; i++)
			which[i] = (uint32_t)(rnd() % fs.n);
		which[77] = (uint32_t)fs.n;
		probe_both(cpu, sim, &fs, which, h, 100, -EINVAL);
		uint8_t o;
		assert_int_equal(sl__accel_bloom_probe(sim, fs.f, 0, NULL, h, 1, &o), -EINVAL);
		assert_int_equal(sl__accel_bloom_probe(sim, fs.f, 1, NULL, NULL, 1, &o), -EINVAL);
		sl__accel_close(sim);
	}
	/* A million probes of one filter. */
	struct sl_accel *sim = open_backend("sim", "gpu");
	enum { M = 1000000 };
	uint64_t *hm = hashes_new(M);
	size_t size = sl__bloom_bytes(M / 2, 10);
	struct filters big = { .n = 1 };
	big.mem[0] = calloc(1, size);
	assert_non_null(big.mem[0]);
	big.f[0] = (struct sl_accel_filter){ big.mem[0], size, 6 };
	assert_int_equal(sl__accel_bloom_build(cpu, hm, M / 2, 6, big.mem[0], size), 0);
	probe_both(cpu, sim, &big, NULL, hm, M, 0);
	filters_free(&big);
	free(hm);
	sl__accel_close(sim);
	filters_free(&fs);
	free(which);
	free(h);
	sl__accel_close(cpu);
}

/* ---- Merge inputs (built as tests/unit/test_accel.c builds them) ---------------------------- */

/* ---- The merge against the cpu backend ------------------------------------------------------- */

/* Output buffers of exactly the given sizes, filled alike for both backends. */
struct mbufs {
	uint8_t *out, *bloom;
	struct sl_accel_block *blocks;
};

static void mbufs_alloc(struct mbufs *m, struct sl_accel_merge_job *j, size_t out, size_t blocks,
			size_t bloom, uint64_t seed)
{
	m->out = out ? malloc(out) : NULL;
	m->blocks = blocks ? malloc(blocks * sizeof(*m->blocks)) : NULL;
	m->bloom = bloom ? malloc(bloom) : NULL;
	assert_true((!out || m->out) && (!blocks || m->blocks) && (!bloom || m->bloom));
	uint64_t keep = rng_state;
	rng_state = seed;
	fill_rnd(m->out, out);
	fill_rnd(m->blocks, blocks * sizeof(*m->blocks));
	fill_rnd(m->bloom, bloom);
	rng_state = keep;
	j->out = m->out;
	j->out_cap = out;
	j->blocks = m->blocks;
	j->blocks_cap = blocks;
	j->bloom = m->bloom;
	j->bloom_cap = bloom;
}

static void mbufs_free(struct mbufs *m)
{
	free(m->out);
	free(m->blocks);
	free(m->bloom);
}

/* One job twice, for cpu (a) and sim (b): output buffers of the given sizes filled alike, the
 * job's out values prefilled with the same garbage. */
struct mpair {
	struct sl_accel_merge_job a, b;
	struct mbufs ma, mb;
	size_t out, blocks, bloom;
};

static void mpair_init(struct mpair *p, const struct sl_accel_merge_job *tmpl, size_t out,
		       size_t blocks, size_t bloom)
{
	uint64_t seed = rnd();
	size_t from = offsetof(struct sl_accel_merge_job, out_len);
	p->a = *tmpl;
	fill_rnd((uint8_t *)&p->a + from, sizeof(p->a) - from);
	p->b = p->a;
	p->out = out;
	p->blocks = blocks;
	p->bloom = bloom;
	mbufs_alloc(&p->ma, &p->a, out, blocks, bloom, seed);
	mbufs_alloc(&p->mb, &p->b, out, blocks, bloom, seed);
}

/* The same return, the same out values (smallest's every byte), and on success the same bytes
 * in every output buffer, all of it. Frees the buffers. */
static void mpair_check(struct mpair *p, int ra, int rb)
{
	const struct sl_accel_merge_job *a = &p->a, *b = &p->b;
	assert_int_equal(rb, ra);
	assert_int_equal(b->out_len, a->out_len);
	assert_int_equal(b->n_blocks, a->n_blocks);
	assert_int_equal(b->bloom_len, a->bloom_len);
	assert_int_equal(b->bloom_probes, a->bloom_probes);
	assert_int_equal(b->entries_in, a->entries_in);
	assert_int_equal(b->entries_out, a->entries_out);
	assert_int_equal(b->dropped_older, a->dropped_older);
	assert_int_equal(b->dropped_tombstones, a->dropped_tombstones);
	assert_memory_equal(b->smallest, a->smallest, sizeof(a->smallest));
	assert_int_equal(b->smallest_len, a->smallest_len);
	assert_int_equal(b->need_out, a->need_out);
	assert_int_equal(b->need_blocks, a->need_blocks);
	assert_int_equal(b->need_bloom, a->need_bloom);
	assert_int_equal(b->bad_run, a->bad_run);
	assert_int_equal(b->bad_block, a->bad_block);
	if (ra == 0) {
		if (p->out)
			assert_memory_equal(p->mb.out, p->ma.out, p->out);
		if (p->blocks)
			assert_memory_equal(p->mb.blocks, p->ma.blocks,
					    p->blocks * sizeof(*p->ma.blocks));
		if (p->bloom)
			assert_memory_equal(p->mb.bloom, p->ma.bloom, p->bloom);
	}
	mbufs_free(&p->ma);
	mbufs_free(&p->mb);
}

/* The job on both backends, synchronously, checked. Returns the status; *after (if not NULL)
 * gets cpu's job after the call. */
static int merge_both(struct sl_accel *cpu, struct sl_accel *sim,
		      const struct sl_accel_merge_job *tmpl, size_t out, size_t blocks,
		      size_t bloom, struct sl_accel_merge_job *after)
{
	struct mpair p;
	mpair_init(&p, tmpl, out, blocks, bloom);
	int ra = sl__accel_merge(cpu, &p.a), rb = sl__accel_merge(sim, &p.b);
	mpair_check(&p, ra, rb);
	if (after)
		*after = p.a;
	return ra;
}

/* Buffers as given, then on -ENOSPC exactly the needs (and one short of each need: -ENOSPC
 * again with the same needs, on both). */
static void merge_both_grow(struct sl_accel *cpu, struct sl_accel *sim,
			    const struct sl_accel_merge_job *j, size_t out, size_t blocks,
			    size_t bloom)
{
	struct sl_accel_merge_job x;
	int r = merge_both(cpu, sim, j, out, blocks, bloom, &x);
	if (r != -ENOSPC)
		return;
	size_t need[3] = { x.need_out, x.need_blocks, x.need_bloom };
	for (int w = 0; w < 3; w++) {
		if (!need[w])
			continue;
		size_t s[3] = { need[0], need[1], need[2] };
		s[w]--;
		assert_int_equal(merge_both(cpu, sim, j, s[0], s[1], s[2], NULL), -ENOSPC);
	}
	assert_int_equal(merge_both(cpu, sim, j, need[0], need[1], need[2], NULL), 0);
}

/* With output buffers roomy enough for the corruption tests' runs. */
static int merge_roomy(struct sl_accel *cpu, struct sl_accel *sim,
		       const struct sl_accel_merge_job *j)
{
	return merge_both(cpu, sim, j, 1 << 20, 10000, 1 << 14, NULL);
}

static void pick_bound_wide(const struct tent *u, size_t un, uint8_t *k, size_t *klen)
{
	const struct tent *t = &u[rnd() % un];
	memcpy(k, t->key, t->klen);
	*klen = t->klen;
	switch (rnd() % 4) {
	case 0:
		break;
	case 1: /* just above t */
		if (*klen < SL_ACCEL_MAX_KEY)
			k[(*klen)++] = 0;
		break;
	case 2: /* a prefix of t: below it */
		*klen = 1 + rnd() % t->klen;
		break;
	default: /* longer than any key: t padded to 64 bytes and past */
		memset(k + *klen, 0, 2 * SL_ACCEL_MAX_KEY - *klen);
		*klen = SL_ACCEL_MAX_KEY + 1 + rnd() % SL_ACCEL_MAX_KEY;
		break;
	}
}

static void merge_random_round(struct sl_accel *cpu, struct sl_accel *sim, int round)
{
	size_t k = 1 + rnd() % 12, un = 20 + rnd() % 800;
	struct tent *u = universe(&un);
	struct trun runs[12];
	struct sl_accel_run ar[12];
	memset(runs, 0, sizeof(runs));
	unsigned every = 1 + (unsigned)(rnd() % 6);
	for (size_t r = 0; r < k; r++) {
		make_run(&runs[r], u, un, rnd() % 8 == 0 ? 100000 : every, round % 7 == 0);
		trun_encode(&runs[r], cpu, block_sizes[rnd() % N_BLOCK_SIZES],
			    1 + (uint32_t)(rnd() % 20));
	}
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, k);
	uint32_t bb = block_sizes[rnd() % N_BLOCK_SIZES];
	j.block_bytes = rnd() % 4 == 0 && bb == 4096 ? 0 : bb;
	j.restart_interval = rnd() % 4 ? 16 : (uint32_t)(rnd() % 40);
	j.bits_per_key = rnd() % 3 ? 10 : (uint32_t)(rnd() % 21);
	j.flags = rnd() % 2 ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
	uint8_t lo[2 * SL_ACCEL_MAX_KEY], hi[2 * SL_ACCEL_MAX_KEY];
	if (rnd() % 3 == 0) {
		pick_bound_wide(u, un, lo, &j.lo_len);
		j.lo = lo;
	}
	if (rnd() % 3 == 0) {
		pick_bound_wide(u, un, hi, &j.hi_len);
		j.hi = hi;
	}
	switch (rnd() % 3) {
	case 0:
		merge_both_grow(cpu, sim, &j, 0, 0, 0);
		break;
	case 1:
		merge_both_grow(cpu, sim, &j, 1 + rnd() % 5000, 1 + rnd() % 10, 64);
		break;
	default:
		merge_both_grow(cpu, sim, &j, 3 << 20, 20000, 1 << 15);
		break;
	}
	truns_free(runs, k);
	free(u);
}

static void test_merge_random_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	for (int p = 0; p < NPROFILES; p++) {
		struct sl_accel *sim = open_backend("sim", profiles[p]);
		for (int round = 0; round < 100; round++)
			merge_random_round(cpu, sim, round);
		sl__accel_close(sim);
	}
	sl__accel_close(cpu);
}

/* Fixed small cases: no runs, empty runs, all out of range, duplicates, tombstones kept and
 * dropped, a single run re-cut, tiny blocks with 1 MiB values, every restart interval. */
static void test_merge_cases_match_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *sim = open_backend("sim", "fpga");
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	/* No runs: an empty output, a one-block filter; with no bloom room, -ENOSPC. */
	assert_int_equal(merge_both(cpu, sim, &j, 0, 0, 0, NULL), -ENOSPC);
	assert_int_equal(merge_both(cpu, sim, &j, 0, 0, 64, NULL), 0);
	/* Empty runs, and one whose keys are all at or below lo. */
	size_t un = 300;
	struct tent *u = universe(&un);
	struct trun runs[4];
	struct sl_accel_run ar[4];
	memset(runs, 0, sizeof(runs));
	for (int r = 0; r < 4; r++) {
		make_run(&runs[r], u, un, r == 2 ? 1 : 1000000, 0);
		trun_encode(&runs[r], cpu, 256, 4);
	}
	job_runs(&j, ar, runs, 4);
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -ENOSPC);
	assert_int_equal(merge_both(cpu, sim, &j, 1 << 16, 256, 1024, NULL), 0);
	j.lo = u[un - 1].key;
	j.lo_len = u[un - 1].klen;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), 0);
	/* lo above hi; lo == hi; hi one key up. */
	j.lo = u[un / 2].key;
	j.lo_len = u[un / 2].klen;
	j.hi = u[un / 3].key;
	j.hi_len = u[un / 3].klen;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), 0);
	j.hi = j.lo;
	j.hi_len = j.lo_len;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), 0);
	j.hi = u[un / 2 + 1].key;
	j.hi_len = u[un / 2 + 1].klen;
	struct sl_accel_merge_job x;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, &x), 0);
	assert_int_equal(x.entries_out, 1);
	truns_free(runs, 4);
	/* Every key in every run (all duplicates), tombstones, both ways, every block size. */
	for (int r = 0; r < 4; r++) {
		make_run(&runs[r], u, un, 1, 0);
		trun_encode(&runs[r], cpu, block_sizes[r], (uint32_t)r + 1);
	}
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 4);
	for (int drop = 0; drop < 2; drop++)
		for (size_t b = 0; b < N_BLOCK_SIZES; b++)
			for (uint32_t ri = 0; ri < 3; ri++) {
				j.flags = drop ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
				j.block_bytes = block_sizes[b];
				j.restart_interval = ri * 7;
				merge_both_grow(cpu, sim, &j, 0, 0, 0);
			}
	/* One run re-cut with its own parameters: the same bytes as its input. */
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 1);
	j.block_bytes = block_sizes[0];
	j.restart_interval = 1;
	assert_int_equal(merge_both(cpu, sim, &j, 1 << 20, 10000, 8192, &x), 0);
	assert_int_equal(x.n_blocks, runs[0].nblocks);
	truns_free(runs, 4);
	free(u);
	/* 1 MiB values in 64-byte blocks. */
	uint8_t *pool = pool_get();
	for (int r = 0; r < 3; r++) {
		runs[r].e = calloc(8, sizeof(struct tent));
		assert_non_null(runs[r].e);
		for (int i = 0; i < 6; i++) {
			struct tent *t = &runs[r].e[runs[r].n++];
			t->klen = (uint8_t)(1 + (i * 13) % SL_ACCEL_MAX_KEY);
			memset(t->key, 'k', t->klen);
			t->key[0] = (uint8_t)('a' + 2 * i + (r == 2));
			t->vlen = i % 2 ? (1u << 20) : (uint32_t)i;
			t->val = pool + (size_t)r * 1000 + (size_t)i;
		}
		trun_encode(&runs[r], cpu, 64, 1);
	}
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 3);
	j.block_bytes = 64;
	merge_both_grow(cpu, sim, &j, 1000, 2, 64);
	truns_free(runs, 3);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* A flipped bit anywhere in an input block, a block too short, damage behind a valid CRC,
 * blocks out of order: SL_ECORRUPT from both, naming the same run and block, with the same
 * counts and smallest; a damaged block past hi is never read by either. */
static void test_merge_corrupt_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	for (int p = 0; p < NPROFILES; p++) {
		struct sl_accel *sim = open_backend("sim", profiles[p]);
		size_t un = 1500;
		struct tent *u = universe(&un);
		struct trun runs[5];
		struct sl_accel_run ar[5];
		memset(runs, 0, sizeof(runs));
		for (int r = 0; r < 5; r++) {
			make_run(&runs[r], u, un, 2, 0);
			trun_encode(&runs[r], cpu, 256, 4);
			assert_true(runs[r].nblocks >= 4);
		}
		free(u);
		struct sl_accel_merge_job j;
		memset(&j, 0, sizeof(j));
		job_runs(&j, ar, runs, 5);
		for (int round = 0; round < 80; round++) {
			size_t r = rnd() % 5, b = rnd() % runs[r].nblocks;
			size_t at = rnd() % runs[r].bufs[b].len;
			uint8_t *q = (uint8_t *)runs[r].bufs[b].data,
				bit = (uint8_t)(1u << (rnd() % 8));
			q[at] ^= bit;
			struct sl_accel_merge_job x;
			assert_int_equal(merge_both(cpu, sim, &j, 1 << 20, 10000, 1 << 14, &x),
					 SL_ECORRUPT);
			assert_int_equal(x.bad_run, r);
			assert_int_equal(x.bad_block, b);
			q[at] ^= bit;
		}
		assert_int_equal(merge_roomy(cpu, sim, &j), 0);
		/* Too short to be a block. */
		size_t keep = runs[3].bufs[2].len;
		for (size_t len = 0; len < SL_BLOCK_MIN; len += 5) {
			runs[3].bufs[2].len = len;
			assert_int_equal(merge_roomy(cpu, sim, &j), SL_ECORRUPT);
		}
		runs[3].bufs[2].len = keep;
		/* An absurd restart count behind a valid CRC. */
		uint8_t *q = (uint8_t *)runs[1].bufs[1].data, save[8];
		size_t len = runs[1].bufs[1].len;
		memcpy(save, q + len - 8, 8);
		sl__block_put_u32(q + len - 8, 0xFFFF);
		sl__block_put_u32(q + len - 4, sl__accel_crc32c(cpu, q, len - 4));
		assert_int_equal(merge_roomy(cpu, sim, &j), SL_ECORRUPT);
		memcpy(q + len - 8, save, 8);
		/* Blocks 1 and 2 of run 4 swapped; block 0 of run 2 twice. */
		struct sl_accel_buf t = runs[4].bufs[1];
		runs[4].bufs[1] = runs[4].bufs[2];
		runs[4].bufs[2] = t;
		assert_int_equal(merge_roomy(cpu, sim, &j), SL_ECORRUPT);
		runs[4].bufs[2] = runs[4].bufs[1];
		runs[4].bufs[1] = t;
		t = runs[2].bufs[1];
		runs[2].bufs[1] = runs[2].bufs[0];
		assert_int_equal(merge_roomy(cpu, sim, &j), SL_ECORRUPT);
		runs[2].bufs[1] = t;
		/* Past hi: never read. */
		q = (uint8_t *)runs[0].bufs[runs[0].nblocks - 1].data;
		q[0] ^= 1;
		j.hi = runs[0].e[0].key;
		j.hi_len = runs[0].e[0].klen;
		assert_int_equal(merge_roomy(cpu, sim, &j), 0);
		j.hi_len = 0;
		assert_int_equal(merge_roomy(cpu, sim, &j), SL_ECORRUPT);
		q[0] ^= 1;
		truns_free(runs, 5);
		sl__accel_close(sim);
	}
	sl__accel_close(cpu);
}

static void test_merge_einval_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *sim = open_backend("sim", "gpu");
	static struct sl_accel_run runs[SL_ACCEL_MAX_RUNS + 1];
	struct sl_accel_buf nodata = { NULL, 100 };
	struct sl_accel_merge_job ok, j;
	memset(&ok, 0, sizeof(ok));
	memset(runs, 0, sizeof(runs));
	j = ok;
	j.block_bytes = 63;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j.block_bytes = 64;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), 0);
	j = ok;
	j.bits_per_key = 65;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j.bits_per_key = 64;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), 0);
	j = ok;
	j.runs = runs;
	j.n_runs = SL_ACCEL_MAX_RUNS + 1;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j.n_runs = SL_ACCEL_MAX_RUNS;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), 0);
	j = ok;
	j.n_runs = 1;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j = ok;
	j.flags = 1u << 5;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j = ok;
	j.lo_len = 3;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j = ok;
	j.hi_len = 3;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	j = ok;
	runs[0].n_blocks = 1;
	j.runs = runs;
	j.n_runs = 1;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	runs[0].blocks = &nodata;
	assert_int_equal(merge_both(cpu, sim, &j, 4096, 4, 64, NULL), -EINVAL);
	/* A NULL output with a capacity. */
	j = ok;
	j.out_cap = 10;
	assert_int_equal(sl__accel_merge(sim, &j), -EINVAL);
	assert_int_equal(sl__accel_merge(cpu, &j), -EINVAL);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* ---- Asynchronous requests ------------------------------------------------------------------ */

struct areq {
	struct sl_accel_req req;
	int calls;
	uint32_t crc[4];
	struct sl_accel_buf bufs[4];
	uint8_t filter[256];
	uint8_t probe[64];
};

static void areq_done(struct sl_accel_req *req, void *arg)
{
	struct areq *q = arg;
	assert_ptr_equal(&q->req, req);
	q->calls++;
}

static void test_async_many(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *sim = open_backend("sim", "fpga,ring=8");
	enum { N = 200 };
	struct areq *q = calloc(N, sizeof(*q));
	uint8_t *pool = malloc(1 << 16);
	uint64_t *h = hashes_new(64);
	assert_true(q && pool);
	fill_rnd(pool, 1 << 16);
	struct sl_accel_filter filt = { NULL, 256, 6 };
	uint8_t fbits[256] = { 0 };
	assert_int_equal(sl__accel_bloom_build(cpu, h, 32, 6, fbits, 256), 0);
	filt.bits = fbits;
	size_t submitted = 0, completed = 0;
	while (completed < N) {
		while (submitted < N) {
			struct areq *x = &q[submitted];
			memset(&x->req, 0, sizeof(x->req));
			x->req.done = areq_done;
			x->req.arg = x;
			switch (submitted % 4) {
			case 0:
				for (int i = 0; i < 4; i++)
					x->bufs[i] = (struct sl_accel_buf){ pool + rnd() % 60000,
									    rnd() % 5000 };
				x->req.op = SL_ACCEL_OP_CRC32C;
				x->req.u.crc.bufs = x->bufs;
				x->req.u.crc.n = 4;
				x->req.u.crc.out = x->crc;
				break;
			case 1:
				x->req.op = SL_ACCEL_OP_BLOOM_BUILD;
				x->req.u.build.hashes = h;
				x->req.u.build.n = 64;
				x->req.u.build.k = submitted % 3 ? 6 : 0; /* every third: -EINVAL */
				x->req.u.build.filter = x->filter;
				x->req.u.build.size = sizeof(x->filter);
				break;
			case 2:
				x->req.op = SL_ACCEL_OP_BLOOM_PROBE;
				x->req.u.probe.filters = &filt;
				x->req.u.probe.nfilters = 1;
				x->req.u.probe.hashes = h;
				x->req.u.probe.n = 64;
				x->req.u.probe.out = x->probe;
				break;
			default:
				x->req.op = 99; /* unknown: -EINVAL */
				break;
			}
			int r = sl__accel_submit(sim, &x->req);
			if (r == -EAGAIN)
				break;
			assert_int_equal(r, 0);
			submitted++;
			/* A synchronous call among them (polled, it may run theirs too). */
			if (submitted % 16 == 0)
				assert_int_equal(sl__accel_crc32c(sim, pool + submitted, 999),
						 sl__accel_crc32c(cpu, pool + submitted, 999));
		}
		completed += (size_t)sl__accel_poll(sim, 1000000000);
	}
	assert_int_equal(sl__accel_poll(sim, 0), 0);
	for (size_t i = 0; i < N; i++) {
		struct areq *x = &q[i];
		assert_int_equal(x->calls, 1);
		switch (i % 4) {
		case 0: {
			uint32_t want[4];
			assert_int_equal(x->req.status, 0);
			assert_int_equal(sl__accel_crc32c_batch(cpu, x->bufs, 4, want), 0);
			assert_memory_equal(x->crc, want, sizeof(want));
			assert_true(x->req.device_ns > 20000);
			break;
		}
		case 1: {
			uint8_t want[256] = { 0 };
			int k = i % 3 ? 6 : 0;
			assert_int_equal(x->req.status, k ? 0 : -EINVAL);
			if (k) {
				assert_int_equal(sl__accel_bloom_build(cpu, h, 64, 6, want, 256),
						 0);
				assert_memory_equal(x->filter, want, 256);
			}
			break;
		}
		case 2: {
			uint8_t want[64];
			assert_int_equal(x->req.status, 0);
			assert_int_equal(sl__accel_bloom_probe(cpu, &filt, 1, NULL, h, 64, want),
					 0);
			assert_memory_equal(x->probe, want, 64);
			break;
		}
		default:
			assert_int_equal(x->req.status, -EINVAL);
			assert_int_equal(x->req.device_ns, 0);
		}
	}
	free(h);
	free(pool);
	free(q);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* With the device held, a ring of 4 takes 4 requests and refuses the fifth; once one has
 * completed (poll), the next one goes on. */
static void test_async_ring_full(void **state)
{
	(void)state;
	struct sl_accel *sim = open_backend("sim", "gpu,ring=4");
	struct areq q[6];
	memset(q, 0, sizeof(q));
	static const char text[] = "123456789";
	sim_test_hold(1);
	for (int i = 0; i < 6; i++) {
		q[i].bufs[0] = (struct sl_accel_buf){ text, 9 };
		q[i].req.op = SL_ACCEL_OP_CRC32C;
		q[i].req.u.crc.bufs = q[i].bufs;
		q[i].req.u.crc.n = 1;
		q[i].req.u.crc.out = q[i].crc;
		q[i].req.done = areq_done;
		q[i].req.arg = &q[i];
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(sl__accel_submit(sim, &q[i].req), 0);
	assert_int_equal(sl__accel_submit(sim, &q[4].req), -EAGAIN);
	assert_int_equal(sl__accel_poll(sim, 0), 0);
	assert_int_equal(q[4].calls, 0);
	sim_test_hold(0);
	int n = sl__accel_poll(sim, 5000000000ll);
	assert_true(n >= 1);
	assert_int_equal(sl__accel_submit(sim, &q[4].req), 0);
	while (sl__accel_submit(sim, &q[5].req) == -EAGAIN)
		n += sl__accel_poll(sim, 1000000000);
	while (n < 6)
		n += sl__accel_poll(sim, 1000000000);
	assert_int_equal(n, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(q[i].calls, 1);
		assert_int_equal(q[i].req.status, 0);
		assert_int_equal(q[i].crc[0], 0xE3069283u);
	}
	sl__accel_close(sim);
}

/* Close with requests on the device: they finish and their callbacks run, once each. */
static void test_async_close_in_flight(void **state)
{
	(void)state;
	struct sl_accel *sim = open_backend("sim", "fpga,ring=16");
	enum { N = 16 };
	struct areq q[N];
	memset(q, 0, sizeof(q));
	uint8_t *data = malloc(1 << 20);
	assert_non_null(data);
	fill_rnd(data, 1 << 20);
	sim_test_hold(1);
	for (int i = 0; i < N; i++) {
		q[i].bufs[0] = (struct sl_accel_buf){ data + i, (1u << 20) - 16 };
		q[i].req.op = SL_ACCEL_OP_CRC32C;
		q[i].req.u.crc.bufs = q[i].bufs;
		q[i].req.u.crc.n = 1;
		q[i].req.u.crc.out = q[i].crc;
		q[i].req.done = areq_done;
		q[i].req.arg = &q[i];
		assert_int_equal(sl__accel_submit(sim, &q[i].req), 0);
	}
	sim_test_hold(0);
	sl__accel_close(sim);
	struct sl_accel *cpu = open_backend("cpu", NULL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(q[i].calls, 1);
		assert_int_equal(q[i].req.status, 0);
		assert_int_equal(q[i].crc[0], sl__accel_crc32c(cpu, data + i, (1u << 20) - 16));
	}
	sl__accel_close(cpu);
	free(data);
}

/* Merges submitted asynchronously (a ring of 3, so some wait for room): roomy buffers, none at
 * all (-ENOSPC with the needs), a damaged block (SL_ECORRUPT naming it), bad parameters
 * (-EINVAL): each completes once with what the cpu backend returns for the same job, and a
 * modelled time that covers at least the launch and the input at the kernel's rate. */
static void test_async_merge_matches_cpu(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *sim = open_backend("sim", "fpga,ring=3");
	enum { K = 4, N = 12 };
	size_t un = 2000;
	struct tent *u = universe(&un);
	struct trun runs[K];
	struct sl_accel_run ar[K];
	memset(runs, 0, sizeof(runs));
	uint64_t input = 0;
	for (int r = 0; r < K; r++) {
		make_run(&runs[r], u, un, 2, 0);
		trun_encode(&runs[r], cpu, 512, 8);
		for (size_t b = 0; b < runs[r].nblocks; b++)
			input += runs[r].bufs[b].len;
	}
	free(u);
	struct sl_accel_merge_job t;
	memset(&t, 0, sizeof(t));
	job_runs(&t, ar, runs, K);
	t.block_bytes = 1024;
	static struct mpair p[N];
	static struct areq q[N];
	int ra[N];
	memset(q, 0, sizeof(q));
	for (int i = 0; i < N; i++) {
		struct sl_accel_merge_job j = t;
		j.flags = i % 2 ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
		j.bits_per_key = (uint32_t)i;
		if (i == 5)
			j.block_bytes = 7; /* -EINVAL */
		if (i % 4 == 3)
			mpair_init(&p[i], &j, 0, 0, 0);
		else
			mpair_init(&p[i], &j, 1 << 20, 4096, 1 << 14);
		uint8_t *bad = (uint8_t *)runs[2].bufs[3].data;
		if (i == 6)
			bad[5] ^= 0x40;
		ra[i] = sl__accel_merge(cpu, &p[i].a);
		q[i].req.op = SL_ACCEL_OP_MERGE;
		q[i].req.u.merge = &p[i].b;
		q[i].req.done = areq_done;
		q[i].req.arg = &q[i];
		int r;
		while ((r = sl__accel_submit(sim, &q[i].req)) == -EAGAIN)
			assert_true(sl__accel_poll(sim, 1000000000) >= 0);
		assert_int_equal(r, 0);
		if (i == 6) {
			/* The device has it: wait before mending the block it reads. */
			while (!q[i].calls)
				sl__accel_poll(sim, 1000000000);
			bad[5] ^= 0x40;
		}
	}
	for (int i = 0; i < N; i++)
		while (!q[i].calls)
			sl__accel_poll(sim, 1000000000);
	struct sim_profile prof;
	assert_int_equal(sim_profile_parse("fpga", &prof, NULL, 0), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(q[i].calls, 1);
		int want = i == 5 ? -EINVAL : i == 6 ? SL_ECORRUPT : i % 4 == 3 ? -ENOSPC : 0;
		assert_int_equal(ra[i], want);
		if (i == 6) {
			assert_int_equal(p[i].a.bad_run, 2);
			assert_int_equal(p[i].a.bad_block, 3);
		}
		if (want == 0)
			assert_true(q[i].req.device_ns >
				    prof.launch_ns + input * 1000 / prof.merge_mbps);
		mpair_check(&p[i], ra[i], q[i].req.status);
	}
	truns_free(runs, K);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* Synchronous calls from several threads at once, on a ring of 2: each gets its own answer. */
struct sync_thread {
	struct sl_accel *sim;
	const uint8_t *data;
	const uint32_t *want;
	size_t n;
	int bad;
};

static void *sync_main(void *p)
{
	struct sync_thread *t = p;
	for (size_t i = 0; i < t->n; i++) {
		struct sl_accel_buf b = { t->data + i, 1000 + i };
		uint32_t c = 0;
		if (sl__accel_crc32c_batch(t->sim, &b, 1, &c) || c != t->want[i])
			t->bad++;
	}
	return NULL;
}

static void test_sync_threads(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *sim = open_backend("sim", "gpu,ring=2");
	enum { T = 4, N = 150 };
	uint8_t *data = malloc(4 * 2000);
	uint32_t want[T][N];
	assert_non_null(data);
	fill_rnd(data, 4 * 2000);
	struct sync_thread st[T];
	pthread_t th[T];
	for (int t = 0; t < T; t++) {
		for (size_t i = 0; i < N; i++)
			want[t][i] = sl__accel_crc32c(cpu, data + 1000 * t + i, 1000 + i);
		st[t] = (struct sync_thread){ sim, data + 1000 * t, want[t], N, 0 };
	}
	for (int t = 0; t < T; t++)
		assert_int_equal(pthread_create(&th[t], NULL, sync_main, &st[t]), 0);
	for (int t = 0; t < T; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(st[t].bad, 0);
	}
	free(data);
	sl__accel_close(sim);
	sl__accel_close(cpu);
}

/* Device memory of 1 MiB: a batch that cannot fit is -ENOMEM; one that fits goes through. */
static void test_sim_device_memory_full(void **state)
{
	(void)state;
	struct sl_accel *sim = open_backend("sim", "fpga,mem_mb=1");
	uint8_t *data = calloc(1, 2 << 20);
	assert_non_null(data);
	struct sl_accel_buf b = { data, 2 << 20 };
	uint32_t c = 7;
	assert_int_equal(sl__accel_crc32c_batch(sim, &b, 1, &c), -ENOMEM);
	/* Asynchronously, with nothing else holding device memory: completed with -ENOMEM. */
	struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C };
	q.u.crc.bufs = &b;
	q.u.crc.n = 1;
	q.u.crc.out = &c;
	assert_int_equal(sl__accel_submit(sim, &q), 0);
	assert_int_equal(sl__accel_poll(sim, -1), 1);
	assert_int_equal(q.status, -ENOMEM);
	assert_int_equal(c, 7);
	b.len = 512 << 10;
	assert_int_equal(sl__accel_crc32c_batch(sim, &b, 1, &c), 0);
	struct sl_accel *cpu = open_backend("cpu", NULL);
	assert_int_equal(c, sl__accel_crc32c(cpu, data, 512 << 10));
	sl__accel_close(cpu);
	sl__accel_close(sim);
	free(data);
}

/* ---- Descriptors straight to the device ----------------------------------------------------- */

/* Four device buffers side by side, each filled with its own pattern, kept here as images. */
#define NB 4
struct bench {
	struct sim_dev *d;
	uint32_t h[NB];
	uint64_t size[NB];
	uint8_t *img[NB];
};

static void bench_open(struct bench *b, const char *profile)
{
	struct sim_profile p;
	assert_int_equal(sim_profile_parse(profile, &p, NULL, 0), 0);
	assert_int_equal(sim_open(&p, &b->d), 0);
	static const uint64_t sizes[NB] = { 4096, 4096, 256, 4096 };
	for (int i = 0; i < NB; i++) {
		b->size[i] = sizes[i];
		assert_int_equal(sim_mem_alloc(b->d, sizes[i], &b->h[i]), 0);
		b->img[i] = malloc(sizes[i]);
		assert_non_null(b->img[i]);
		fill_rnd(b->img[i], sizes[i]);
		assert_int_equal(sim_dma_to_dev(b->d, b->h[i], 0, b->img[i], sizes[i], NULL), 0);
	}
}

/* Device memory as the images say: nothing changed behind their backs. */
static void bench_check(struct bench *b)
{
	for (int i = 0; i < NB; i++) {
		uint8_t *now = malloc(b->size[i]);
		assert_non_null(now);
		assert_int_equal(sim_dma_from_dev(b->d, b->h[i], 0, now, b->size[i], NULL), 0);
		assert_memory_equal(now, b->img[i], b->size[i]);
		free(now);
	}
}

static void bench_put(struct bench *b, int i, uint64_t off, const void *p, uint64_t len)
{
	memcpy(b->img[i] + off, p, len);
	assert_int_equal(sim_dma_to_dev(b->d, b->h[i], off, p, len, NULL), 0);
}

static void bench_close(struct bench *b)
{
	for (int i = 0; i < NB; i++) {
		assert_int_equal(sim_mem_free(b->d, b->h[i]), 0);
		free(b->img[i]);
	}
	sim_close(b->d);
}

static struct fw_completion bench_run(struct bench *b, const struct fw_desc *x)
{
	struct fw_completion c;
	assert_int_equal(sim_sq_write(b->d, x), 0);
	sim_doorbell(b->d);
	assert_int_equal(sim_cq_wait(b->d, -1), 1);
	assert_int_equal(sim_cq_pop(b->d, &c), 1);
	assert_int_equal(c.tag, x->tag);
	return c;
}

static struct fw_ref ref(const struct bench *b, int i, uint64_t off, uint64_t len)
{
	return (struct fw_ref){ b->h[i], 0, off, len };
}

/* A valid CRC32C command: 3 segments of buffer 1, CRCs into buffer 2 at 16. */
static struct fw_desc crc_desc(struct bench *b)
{
	struct fw_seg segs[3] = { { 0, 9 }, { 100, 0 }, { 7, 4000 } };
	bench_put(b, 0, 0, segs, sizeof(segs));
	struct fw_desc x;
	memset(&x, 0, sizeof(x));
	x.opcode = FW_OP_CRC32C;
	x.tag = 0xABCDEF0012345678ull;
	x.arg[0] = 3;
	x.ref[0] = ref(b, 0, 0, sizeof(segs));
	x.ref[1] = ref(b, 1, 0, 4096);
	x.ref[2] = ref(b, 2, 16, 12);
	return x;
}

/* Expect an error completion and device memory unchanged. */
static void expect_error(struct bench *b, const struct fw_desc *x, uint32_t status, uint32_t detail)
{
	struct fw_completion c = bench_run(b, x);
	if (c.status != status || c.detail != detail)
		print_error("status %u (%s) detail %u, want %u detail %u\n", c.status,
			    fw_strstatus(c.status), c.detail, status, detail);
	assert_int_equal(c.status, status);
	assert_int_equal(c.detail, detail);
	assert_int_equal(c.work_bytes, 0);
	bench_check(b);
}

static void test_fw_crc_descriptors(void **state)
{
	(void)state;
	struct bench b;
	bench_open(&b, "fpga");
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct fw_desc ok = crc_desc(&b), x;
	/* The valid one first: the CRCs land where asked and nowhere else. */
	struct fw_completion c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_OK);
	assert_int_equal(c.result[0], 3);
	assert_int_equal(c.work_bytes, 4009);
	assert_int_equal(c.work_items, 3);
	uint32_t want[3] = { sl__accel_crc32c(cpu, b.img[1], 9), 0,
			     sl__accel_crc32c(cpu, b.img[1] + 7, 4000) };
	memcpy(b.img[2] + 16, want, sizeof(want));
	bench_check(&b);
	/* Bad opcodes. */
	static const uint32_t ops[] = { 0, 5, 0xFFFFFFFFu };
	for (size_t i = 0; i < 3; i++) {
		x = ok;
		x.opcode = ops[i];
		expect_error(&b, &x, FW_EOPCODE, 0);
	}
	/* Handles: out of the table, never allocated, the right index with a wrong generation,
	 * a freed buffer; the null handle with a length. */
	x = ok;
	x.ref[1].handle = 0xFFFF;
	expect_error(&b, &x, FW_EHANDLE, 1);
	x = ok;
	x.ref[1].handle = (b.h[1] & FW_HANDLE_INDEX_MASK) + 100;
	expect_error(&b, &x, FW_EHANDLE, 1);
	x = ok;
	x.ref[2].handle = b.h[2] + (1u << FW_HANDLE_INDEX_BITS);
	expect_error(&b, &x, FW_EHANDLE, 2);
	uint32_t gone;
	assert_int_equal(sim_mem_alloc(b.d, 64, &gone), 0);
	assert_int_equal(sim_mem_free(b.d, gone), 0);
	assert_int_equal(sim_mem_free(b.d, gone), -EINVAL);
	x = ok;
	x.ref[0].handle = gone;
	expect_error(&b, &x, FW_EHANDLE, 0);
	x = ok;
	x.ref[1] = (struct fw_ref){ 0, 0, 0, 10 };
	expect_error(&b, &x, FW_EHANDLE, 1);
	/* Ranges: length past the buffer, offset past it, offset + length overflowing. */
	x = ok;
	x.ref[1].len = 4097;
	expect_error(&b, &x, FW_ERANGE, 1);
	x = ok;
	x.ref[2].off = 257;
	x.ref[2].len = 0;
	expect_error(&b, &x, FW_ERANGE, 2);
	x = ok;
	x.ref[2].off = UINT64_MAX - 5;
	x.ref[2].len = 12;
	expect_error(&b, &x, FW_ERANGE, 2);
	x = ok;
	x.ref[2].off = 8;
	x.ref[2].len = UINT64_MAX;
	expect_error(&b, &x, FW_ERANGE, 2);
	/* A segment pointing outside the data: segment 2 runs one byte past it. */
	struct fw_seg bad = { 97, 4000 };
	bench_put(&b, 0, 32, &bad, sizeof(bad));
	x = ok;
	c = bench_run(&b, &x);
	assert_int_equal(c.status, FW_ERANGE);
	assert_int_equal(c.detail, 1);
	assert_int_equal(c.result[0], 2);
	bench_check(&b);
	bad.off = UINT64_MAX;
	bad.len = 2;
	bench_put(&b, 0, 32, &bad, sizeof(bad));
	expect_error(&b, &x, FW_ERANGE, 1);
	ok = crc_desc(&b);
	/* Outputs too small, zero-size outputs, a count no buffer could hold. */
	x = ok;
	x.ref[2].len = 11;
	expect_error(&b, &x, FW_ESHORT, 2);
	x = ok;
	x.ref[2] = (struct fw_ref){ 0, 0, 0, 0 };
	expect_error(&b, &x, FW_ESHORT, 2);
	x = ok;
	x.ref[0].len = 47;
	expect_error(&b, &x, FW_ESHORT, 0);
	x = ok;
	x.arg[0] = UINT64_MAX / 8;
	expect_error(&b, &x, FW_EARG, FW_PARAM_COUNT);
	/* Reserved fields, unused arguments and references, flags. */
	x = ok;
	x.flags = 1;
	expect_error(&b, &x, FW_EARG, FW_PARAM_FLAGS);
	x = ok;
	x.rsvd[1] = 1;
	expect_error(&b, &x, FW_EARG, FW_PARAM_RESERVED);
	x = ok;
	x.arg[3] = 1;
	expect_error(&b, &x, FW_EARG, FW_PARAM_RESERVED);
	x = ok;
	x.ref[5] = ref(&b, 3, 0, 10);
	expect_error(&b, &x, FW_EARG, FW_PARAM_RESERVED);
	x = ok;
	x.ref[1].rsvd = 1;
	expect_error(&b, &x, FW_EARG, FW_PARAM_RESERVED);
	/* The output overlapping an input. */
	x = ok;
	x.ref[2] = ref(&b, 1, 4000, 12);
	expect_error(&b, &x, FW_EOVERLAP, 2);
	x = ok;
	x.ref[2] = ref(&b, 0, 40, 12);
	expect_error(&b, &x, FW_EOVERLAP, 2);
	/* And the valid one still works. */
	c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_OK);
	bench_check(&b);
	struct sim_stats st;
	sim_stats(b.d, &st);
	assert_int_equal(st.commands, 27);
	assert_int_equal(st.errors, 25);
	sl__accel_close(cpu);
	bench_close(&b);
}

static void test_fw_bloom_descriptors(void **state)
{
	(void)state;
	struct bench b;
	bench_open(&b, "gpu");
	struct sl_accel *cpu = open_backend("cpu", NULL);
	/* Build: 100 hashes (buffer 0) into a 1024-byte filter (buffer 1 at 1024). */
	uint64_t h[100];
	for (int i = 0; i < 100; i++)
		h[i] = rnd();
	bench_put(&b, 0, 0, h, sizeof(h));
	uint8_t zero[1024] = { 0 };
	bench_put(&b, 1, 1024, zero, sizeof(zero));
	struct fw_desc ok, x;
	memset(&ok, 0, sizeof(ok));
	ok.opcode = FW_OP_BLOOM_BUILD;
	ok.tag = 7;
	ok.arg[0] = 100;
	ok.arg[1] = 6;
	ok.ref[0] = ref(&b, 0, 0, sizeof(h));
	ok.ref[1] = ref(&b, 1, 1024, 1024);
	x = ok;
	x.arg[1] = 0;
	expect_error(&b, &x, FW_EARG, FW_PARAM_K);
	x = ok;
	x.arg[1] = 65;
	expect_error(&b, &x, FW_EARG, FW_PARAM_K);
	x = ok;
	x.ref[1].len = 1000;
	expect_error(&b, &x, FW_EARG, FW_PARAM_SIZE);
	x = ok;
	x.ref[0].len = 799;
	expect_error(&b, &x, FW_ESHORT, 0);
	x = ok;
	x.ref[1] = ref(&b, 0, 768, 64); /* the filter over the hashes */
	expect_error(&b, &x, FW_EOVERLAP, 1);
	struct fw_completion c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_OK);
	assert_int_equal(sl__accel_bloom_build(cpu, h, 100, 6, b.img[1] + 1024, 1024), 0);
	bench_check(&b);
	/* Probe: filter table in buffer 0 at 1024 (filter 0: that filter; filter 1: 64 bytes at
	 * 0), which in buffer 3, hashes in buffer 0, answers in buffer 2. */
	struct fw_filter ft[2] = { { 1024, 1024, 6, 0 }, { 0, 64, 3, 0 } };
	bench_put(&b, 0, 1024, ft, sizeof(ft));
	uint32_t which[100];
	for (int i = 0; i < 100; i++)
		which[i] = (uint32_t)(i % 2);
	bench_put(&b, 3, 0, which, sizeof(which));
	memset(&ok, 0, sizeof(ok));
	ok.opcode = FW_OP_BLOOM_PROBE;
	ok.arg[0] = 100;
	ok.arg[1] = 2;
	ok.ref[0] = ref(&b, 0, 1024, sizeof(ft));
	ok.ref[1] = ref(&b, 1, 0, 4096);
	ok.ref[2] = ref(&b, 3, 0, sizeof(which));
	ok.ref[3] = ref(&b, 0, 0, sizeof(h));
	ok.ref[4] = ref(&b, 2, 100, 100);
	c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_OK);
	struct sl_accel_filter af[2] = { { b.img[1] + 1024, 1024, 6 }, { b.img[1], 64, 3 } };
	assert_int_equal(sl__accel_bloom_probe(cpu, af, 2, which, h, 100, b.img[2] + 100), 0);
	bench_check(&b);
	/* A which out of range, a filter outside its buffer, a reserved word, no filters. */
	which[42] = 2;
	bench_put(&b, 3, 0, which, sizeof(which));
	c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_EARG);
	assert_int_equal(c.detail, FW_PARAM_WHICH);
	assert_int_equal(c.result[0], 42);
	bench_check(&b);
	x = ok;
	x.ref[2] = (struct fw_ref){ 0 }; /* no which: every key filter 0 */
	ft[1].off = 4033;
	bench_put(&b, 0, 1024, ft, sizeof(ft));
	c = bench_run(&b, &x);
	assert_int_equal(c.status, FW_ERANGE);
	assert_int_equal(c.detail, 1);
	assert_int_equal(c.result[0], 1);
	bench_check(&b);
	ft[1].off = 0;
	ft[1].rsvd = 9;
	bench_put(&b, 0, 1024, ft, sizeof(ft));
	expect_error(&b, &x, FW_EARG, FW_PARAM_RESERVED);
	x.arg[1] = 0;
	x.ref[0].len = 0;
	expect_error(&b, &x, FW_EARG, FW_PARAM_NFILTERS);
	x = ok;
	x.ref[4].len = 99;
	expect_error(&b, &x, FW_ESHORT, 4);
	x = ok;
	x.ref[4] = ref(&b, 3, 396, 100); /* answers over which's last word */
	expect_error(&b, &x, FW_EOVERLAP, 4);
	sl__accel_close(cpu);
	bench_close(&b);
}

/* A merge straight to the device: two runs built here, the job, every buffer laid out in the
 * bench's buffers 0 (job), 1 (input), 3 (scratch, then out at 2048) and 2 (result). */
static void test_fw_merge_descriptors(void **state)
{
	(void)state;
	struct bench b;
	bench_open(&b, "fpga");
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct trun runs[2];
	memset(runs, 0, sizeof(runs));
	for (int r = 0; r < 2; r++) {
		runs[r].e = calloc(8, sizeof(struct tent));
		assert_non_null(runs[r].e);
		for (int i = 0; i < 6; i++) {
			struct tent *t = &runs[r].e[runs[r].n++];
			t->klen = 2;
			t->key[0] = 'k';
			t->key[1] = (uint8_t)('a' + 2 * i + r * (i % 2));
			t->val = pool_get();
			t->vlen = 10;
		}
		trun_encode(&runs[r], cpu, 64, 2);
	}
	/* The job: header, 2 runs, the blocks, no bounds; the input: blocks back to back. */
	uint8_t job[512], input[1024];
	size_t nb = runs[0].nblocks + runs[1].nblocks, off = 0;
	struct fw_merge_job head = { 2, nb, 0, 0 };
	memcpy(job, &head, sizeof(head));
	struct fw_merge_run rr[2] = { { 0, runs[0].nblocks },
				      { runs[0].nblocks, runs[1].nblocks } };
	memcpy(job + 32, rr, sizeof(rr));
	size_t bi = 0;
	for (int r = 0; r < 2; r++)
		for (size_t k = 0; k < runs[r].nblocks; k++, bi++) {
			struct fw_seg s = { off, runs[r].bufs[k].len };
			memcpy(job + 64 + 16 * bi, &s, sizeof(s));
			memcpy(input + off, runs[r].bufs[k].data, s.len);
			off += s.len;
		}
	size_t job_len = 64 + 16 * nb;
	assert_true(off <= sizeof(input) && job_len <= sizeof(job));
	bench_put(&b, 0, 0, job, job_len);
	bench_put(&b, 1, 0, input, off);
	uint64_t scratch = fw_merge_scratch_bytes(2, 256, off);
	assert_true(scratch <= 2048);
	struct fw_desc ok, x;
	memset(&ok, 0, sizeof(ok));
	ok.opcode = FW_OP_MERGE;
	ok.tag = 99;
	ok.arg[0] = 256;
	ok.ref[0] = ref(&b, 0, 0, job_len);
	ok.ref[1] = ref(&b, 1, 0, off);
	ok.ref[2] = ref(&b, 3, 0, scratch);
	ok.ref[3] = ref(&b, 3, 2048, 1024);
	ok.ref[4] = ref(&b, 3, 3072, 88 * 8);
	ok.ref[5] = ref(&b, 0, 2048, 64);
	ok.ref[6] = ref(&b, 2, 0, sizeof(struct fw_merge_result));
	/* Malformed first, memory checked after each. */
	x = ok;
	x.flags = 2;
	expect_error(&b, &x, FW_EARG, FW_PARAM_FLAGS);
	x = ok;
	x.arg[0] = 63;
	expect_error(&b, &x, FW_EARG, FW_PARAM_BLOCK_BYTES);
	x = ok;
	x.arg[0] = 1ull << 32;
	expect_error(&b, &x, FW_EARG, FW_PARAM_BLOCK_BYTES);
	x = ok;
	x.arg[2] = 65;
	expect_error(&b, &x, FW_EARG, FW_PARAM_BITS);
	x = ok;
	x.ref[6].len = sizeof(struct fw_merge_result) - 1;
	expect_error(&b, &x, FW_ESHORT, 6);
	x = ok;
	x.ref[0].len = 31;
	expect_error(&b, &x, FW_ESHORT, 0);
	x = ok;
	x.ref[0].len = job_len - 1;
	expect_error(&b, &x, FW_ESHORT, 0);
	x = ok;
	x.ref[3] = ref(&b, 3, 100, 1024); /* out over the scratch */
	expect_error(&b, &x, FW_EOVERLAP, 2);
	x = ok;
	x.ref[1] = ref(&b, 2, 0, 100); /* input where the result goes */
	expect_error(&b, &x, FW_EOVERLAP, 6);
	/* Too many runs; a run past the block table; a block past the input; counts that
	 * overflow. */
	struct fw_merge_job h2 = head;
	h2.n_runs = FW_MERGE_MAX_RUNS + 1;
	bench_put(&b, 0, 0, &h2, sizeof(h2));
	expect_error(&b, &ok, FW_EARG, FW_PARAM_RUNS);
	h2 = head;
	h2.n_blocks = UINT64_MAX / 8;
	bench_put(&b, 0, 0, &h2, sizeof(h2));
	expect_error(&b, &ok, FW_EARG, FW_PARAM_COUNT);
	h2 = head;
	h2.lo_len = UINT64_MAX - 20;
	bench_put(&b, 0, 0, &h2, sizeof(h2));
	expect_error(&b, &ok, FW_EARG, FW_PARAM_COUNT);
	h2.lo_len = 1000;
	bench_put(&b, 0, 0, &h2, sizeof(h2));
	expect_error(&b, &ok, FW_ESHORT, 0);
	bench_put(&b, 0, 0, &head, sizeof(head));
	struct fw_merge_run r2 = { 1, nb };
	bench_put(&b, 0, 48, &r2, sizeof(r2));
	struct fw_completion c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_EARG);
	assert_int_equal(c.detail, FW_PARAM_RUN_BLOCKS);
	assert_int_equal(c.result[0], 1);
	bench_check(&b);
	r2.first = UINT64_MAX;
	bench_put(&b, 0, 48, &r2, sizeof(r2));
	expect_error(&b, &ok, FW_EARG, FW_PARAM_RUN_BLOCKS);
	bench_put(&b, 0, 48, &rr[1], sizeof(rr[1]));
	struct fw_seg s;
	memcpy(&s, job + 64 + 16 * (nb - 1), sizeof(s));
	s.len++;
	bench_put(&b, 0, 64 + 16 * (nb - 1), &s, sizeof(s));
	c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_ERANGE);
	assert_int_equal(c.detail, 1);
	assert_int_equal(c.result[0], nb - 1);
	bench_check(&b);
	s.len--;
	bench_put(&b, 0, 64 + 16 * (nb - 1), &s, sizeof(s));
	/* Scratch one byte short: the need in the completion, nothing written. */
	x = ok;
	x.ref[2].len = scratch - 1;
	c = bench_run(&b, &x);
	assert_int_equal(c.status, FW_ESCRATCH);
	assert_int_equal(c.detail, 2);
	assert_int_equal(c.result[0], scratch);
	bench_check(&b);
	/* Zero-size outputs: FW_ENOSPC with the exact needs in the result. */
	x = ok;
	x.ref[3] = x.ref[4] = x.ref[5] = (struct fw_ref){ 0 };
	c = bench_run(&b, &x);
	assert_int_equal(c.status, FW_ENOSPC);
	struct fw_merge_result res;
	assert_int_equal(sim_dma_from_dev(b.d, b.h[2], 0, &res, sizeof(res), NULL), 0);
	assert_int_equal(res.entries_in, 12);
	assert_int_equal(res.entries_out, 9);
	assert_int_equal(res.dropped_older, 3);
	assert_int_equal(res.out_len, 0);
	assert_int_equal(res.smallest_len, 0);
	assert_int_equal(res.smallest_written, 2);
	assert_true(res.need_out > 0 && res.need_out <= 1024);
	assert_true(res.need_blocks >= 1 && res.need_blocks <= 8);
	assert_int_equal(res.need_bloom, 64);
	/* The valid job: what the cpu backend makes of the same runs. */
	c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_OK);
	assert_int_equal(sim_dma_from_dev(b.d, b.h[2], 0, &res, sizeof(res), NULL), 0);
	struct sl_accel_run ar[2];
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 2);
	j.block_bytes = 256;
	uint8_t out[1024], bloom[64];
	struct sl_accel_block blocks[8];
	j.out = out;
	j.out_cap = sizeof(out);
	j.blocks = blocks;
	j.blocks_cap = 8;
	j.bloom = bloom;
	j.bloom_cap = 64;
	assert_int_equal(sl__accel_merge(cpu, &j), 0);
	assert_int_equal(res.out_len, j.out_len);
	assert_int_equal(res.n_blocks, j.n_blocks);
	assert_int_equal(res.entries_out, 9);
	assert_int_equal(c.result[0], j.out_len);
	assert_int_equal(c.result[1], j.n_blocks);
	assert_int_equal(c.result[2], 9);
	assert_int_equal(c.work_bytes, off);
	assert_int_equal(c.work_items, 12);
	uint8_t dev_out[1024], dev_bloom[64];
	assert_int_equal(sim_dma_from_dev(b.d, b.h[3], 2048, dev_out, j.out_len, NULL), 0);
	assert_memory_equal(dev_out, out, j.out_len);
	assert_int_equal(sim_dma_from_dev(b.d, b.h[0], 2048, dev_bloom, 64, NULL), 0);
	assert_memory_equal(dev_bloom, bloom, 64);
	for (size_t i = 0; i < j.n_blocks; i++) {
		struct fw_out_block ob;
		assert_int_equal(sim_dma_from_dev(b.d, b.h[3], 3072 + 88 * i, &ob, 88, NULL), 0);
		assert_int_equal(ob.off, blocks[i].off);
		assert_int_equal(ob.len, blocks[i].len);
		assert_int_equal(ob.crc, blocks[i].crc);
		assert_int_equal(ob.last_len, blocks[i].last_len);
		assert_memory_equal(ob.last, blocks[i].last, ob.last_len);
	}
	/* A damaged input block: FW_ECORRUPT naming run 1, block 0. */
	size_t run1 = 0;
	for (size_t k = 0; k < runs[0].nblocks; k++)
		run1 += runs[0].bufs[k].len;
	input[run1 + 3] ^= 0x10;
	bench_put(&b, 1, 0, input, off);
	c = bench_run(&b, &ok);
	assert_int_equal(c.status, FW_ECORRUPT);
	assert_int_equal(sim_dma_from_dev(b.d, b.h[2], 0, &res, sizeof(res), NULL), 0);
	assert_int_equal(res.bad_run, 1);
	assert_int_equal(res.bad_block, 0);
	assert_int_equal(res.out_len, 0);
	truns_free(runs, 2);
	sl__accel_close(cpu);
	bench_close(&b);
}

/* The command processor alone, no device thread: over a table with a torn entry that names
 * memory past the device's end, and with buffers at every handle boundary. */
static void test_fw_process_bounds(void **state)
{
	(void)state;
	static struct fw_device d;
	static uint8_t mem[4096];
	struct fw_buffer bufs[4] = {
		{ 1u << 16 | 0, 0, 0, 1024 },
		{ 1u << 16 | 1, 0, 4000, 200 },	    /* runs past the end of memory */
		{ 1u << 16 | 2, 0, UINT64_MAX, 2 }, /* base past it */
		{ 1u << 16 | 3, 0, 1024, 3072 },
	};
	d.mem = mem;
	d.mem_size = sizeof(mem);
	d.bufs = bufs;
	d.n_bufs = 4;
	fw_boot(&d);
	struct fw_seg seg = { 0, 9 };
	memcpy(mem, &seg, sizeof(seg));
	memcpy(mem + 1024, "123456789", 9);
	struct fw_desc x;
	memset(&x, 0, sizeof(x));
	x.opcode = FW_OP_CRC32C;
	x.arg[0] = 1;
	x.ref[0] = (struct fw_ref){ bufs[0].handle, 0, 0, 16 };
	x.ref[1] = (struct fw_ref){ bufs[3].handle, 0, 0, 9 };
	x.ref[2] = (struct fw_ref){ bufs[0].handle, 0, 1020, 4 };
	struct fw_completion c;
	assert_int_equal(fw_process(&d, &x, &c), FW_OK);
	uint32_t crc;
	memcpy(&crc, mem + 1020, 4);
	assert_int_equal(crc, 0xE3069283u);
	for (int i = 1; i <= 2; i++) {
		x.ref[1].handle = bufs[i].handle;
		assert_int_equal(fw_process(&d, &x, &c), FW_EHANDLE);
		assert_int_equal(c.detail, 1);
	}
	x.ref[1].handle = 1u << 16 | 4; /* past the table */
	assert_int_equal(fw_process(&d, &x, &c), FW_EHANDLE);
	assert_string_equal(fw_strstatus(FW_EHANDLE), "bad buffer handle");
	assert_string_equal(fw_strstatus(1000), "unknown status");
}

/* ---- The cost model ------------------------------------------------------------------------- */

static void test_model_times(void **state)
{
	(void)state;
	struct sim_profile f, g;
	assert_int_equal(sim_profile_parse("fpga", &f, NULL, 0), 0);
	assert_int_equal(sim_profile_parse("gpu", &g, NULL, 0), 0);
	/* DMA: latency + bytes at the link's rate, rounded up; 0 bytes cost nothing. */
	assert_int_equal(sim_dma_ns(&f, SIM_H2D, 0), 0);
	assert_int_equal(sim_dma_ns(&f, SIM_H2D, 1), 2000 + 1);
	assert_int_equal(sim_dma_ns(&f, SIM_H2D, 12000), 2000 + 1000);
	assert_int_equal(sim_dma_ns(&f, SIM_D2H, 1000000), 2000 + 83334);
	assert_int_equal(sim_dma_ns(&g, SIM_H2D, 1000000), 2000 + 41667);
	/* Commands: launch + kernel. */
	struct fw_completion c = { .work_bytes = 15000000, .work_items = 1000 };
	assert_int_equal(sim_cmd_ns(&f, FW_OP_CRC32C, &c), 20000 + 1000000 + 20000);
	assert_int_equal(sim_cmd_ns(&g, FW_OP_CRC32C, &c), 8000 + 150000 + 500);
	c = (struct fw_completion){ .work_bytes = 8000000, .work_items = 1000000 };
	assert_int_equal(sim_cmd_ns(&f, FW_OP_BLOOM_BUILD, &c), 20000 + 2500000);
	assert_int_equal(sim_cmd_ns(&g, FW_OP_BLOOM_BUILD, &c), 8000 + 250000);
	assert_int_equal(sim_cmd_ns(&f, FW_OP_BLOOM_PROBE, &c), 20000 + 1666667);
	assert_int_equal(sim_cmd_ns(&g, FW_OP_BLOOM_PROBE, &c), 8000 + 125000);
	c = (struct fw_completion){ .work_bytes = 1000000, .work_items = 10000 };
	assert_int_equal(sim_cmd_ns(&f, FW_OP_MERGE, &c), 20000 + 1000000);
	assert_int_equal(sim_cmd_ns(&g, FW_OP_MERGE, &c), 8000 + 125000);
	c = (struct fw_completion){ 0 };
	assert_int_equal(sim_cmd_ns(&f, 77, &c), 20000);
	char line[256];
	sim_profile_describe(&g, line, sizeof(line));
	assert_non_null(strstr(line, "24000/24000 MB/s"));
}

/* A CRC32C request's device_ns: segment table and data in, launch and kernel, CRCs out,
 * exactly; it grows with the bytes, and the gpu's is below the fpga's as its figures say. */
static uint64_t crc_device_ns(const char *profile, size_t len)
{
	struct sl_accel *sim = open_backend("sim", profile);
	uint8_t *data = calloc(1, len);
	assert_non_null(data);
	struct sl_accel_buf b[2] = { { data, len }, { data, len / 2 } };
	uint32_t out[2];
	struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C };
	q.u.crc.bufs = b;
	q.u.crc.n = 2;
	q.u.crc.out = out;
	assert_int_equal(sl__accel_submit(sim, &q), 0);
	assert_int_equal(sl__accel_poll(sim, -1), 1);
	assert_int_equal(q.status, 0);
	struct sim_profile p;
	assert_int_equal(sim_profile_parse(profile, &p, NULL, 0), 0);
	struct fw_completion c = { .work_bytes = len + len / 2, .work_items = 2 };
	uint64_t want = sim_dma_ns(&p, SIM_H2D, 32) + sim_dma_ns(&p, SIM_H2D, len + len / 2) +
			sim_cmd_ns(&p, FW_OP_CRC32C, &c) + sim_dma_ns(&p, SIM_D2H, 8);
	assert_int_equal(q.device_ns, want);
	free(data);
	sl__accel_close(sim);
	return q.device_ns;
}

static void test_model_device_ns(void **state)
{
	(void)state;
	uint64_t f1 = crc_device_ns("fpga", 100000), f2 = crc_device_ns("fpga", 1000000);
	uint64_t g1 = crc_device_ns("gpu", 100000), g2 = crc_device_ns("gpu", 1000000);
	assert_true(f1 < f2);
	assert_true(g1 < g2);
	assert_true(g1 < f1);
	assert_true(g2 < f2);
	/* The difference of two sizes is the per-byte part alone: link in plus kernel, 1/12000 +
	 * 1/15000 ns a byte on the fpga, 1/24000 + 1/100000 on the gpu, 2.9 times less. */
	assert_true(f2 - f1 > 2 * (g2 - g1));
}

/* ---- Device faults: a hung kernel, a lost device ---------------------------------------------
 * The profile injects the fault at a given command; the driver's watchdog (timeout_ms) resets
 * the device; the seam runs the failed calls again on cpu (accel.c), so every result is still
 * exactly cpu's, and the counters say what happened. */

struct fault_in {
	uint8_t data[6000];
	struct sl_accel_buf bufs[4];
	uint32_t want[4];
};

static void fault_in_make(struct sl_accel *cpu, struct fault_in *in)
{
	fill_rnd(in->data, sizeof(in->data));
	in->bufs[0] = (struct sl_accel_buf){ in->data, 5000 };
	in->bufs[1] = (struct sl_accel_buf){ in->data + 1, 0 };
	in->bufs[2] = (struct sl_accel_buf){ in->data + 3, 999 };
	in->bufs[3] = (struct sl_accel_buf){ in->data + 17, 4096 };
	assert_int_equal(sl__accel_crc32c_batch(cpu, in->bufs, 4, in->want), 0);
}

/* One CRC batch, synchronously: cpu's answer. */
static void fault_crc(struct sl_accel *a, const struct fault_in *in)
{
	uint32_t got[4] = { 0 };
	assert_int_equal(sl__accel_crc32c_batch(a, in->bufs, 4, got), 0);
	assert_memory_equal(got, in->want, sizeof(got));
}

/* One merge, synchronously: cpu's output, byte for byte. */
static void fault_merge(struct sl_accel *a, struct sl_accel *cpu)
{
	struct trun runs[3];
	struct sl_accel_run ar[3];
	memset(runs, 0, sizeof(runs));
	size_t un = 800;
	struct tent *u = universe(&un);
	for (int r = 0; r < 3; r++) {
		make_run(&runs[r], u, un, 2, 0);
		trun_encode(&runs[r], cpu, 512, 16);
	}
	free(u);
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 3);
	assert_int_equal(merge_vs(a, cpu, &j, 1 << 20, 4000, 1 << 14, NULL), 0);
	truns_free(runs, 3);
}

static uint64_t fallbacks(struct sl_accel *a, int *lost)
{
	struct sl_accel_health h;
	sl__accel_health(a, &h);
	if (lost)
		*lost = h.lost;
	return h.fallbacks;
}

/* The second command hangs: the watchdog resets the device, the call runs on cpu, and the
 * device serves the next calls again. */
static void test_fault_hung_kernel_sync(void **state)
{
	(void)state;
	rng_state = 0xfa17;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *a = open_backend("sim", "fpga,timeout_ms=100,fault=hang@1");
	struct fault_in in;
	fault_in_make(cpu, &in);
	int lost = -1;
	fault_crc(a, &in); /* command 0: the device */
	assert_int_equal(fallbacks(a, &lost), 0);
	fault_merge(a, cpu); /* command 1 hangs: cpu's result all the same */
	assert_int_equal(fallbacks(a, &lost), 1);
	assert_int_equal(lost, 0);
	/* After the reset the device works again: an asynchronous request shows it ran there. */
	uint32_t got[4];
	struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C, .u.crc = { in.bufs, 4, got } };
	assert_int_equal(sl__accel_submit(a, &q), 0);
	int n = 0;
	for (int i = 0; i < 100 && !n; i++)
		n = sl__accel_poll(a, 1000000000);
	assert_int_equal(n, 1);
	assert_int_equal(q.status, 0);
	assert_true(q.device_ns > 0);
	assert_memory_equal(got, in.want, sizeof(got));
	fault_crc(a, &in);
	fault_merge(a, cpu);
	assert_int_equal(fallbacks(a, &lost), 1);
	assert_int_equal(lost, 0);
	sl__accel_close(a);
	sl__accel_close(cpu);
}

/* The device is lost at the third command, in the middle of a merge: that merge and every
 * later call (sync or async) run on cpu, each counted, none waiting for the device again. */
static void test_fault_device_lost(void **state)
{
	(void)state;
	rng_state = 0x105e;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *a = open_backend("sim", "gpu,timeout_ms=100,fault=lost@2");
	struct fault_in in;
	fault_in_make(cpu, &in);
	int lost = -1;
	fault_crc(a, &in);
	fault_crc(a, &in);
	assert_int_equal(fallbacks(a, &lost), 0);
	fault_merge(a, cpu); /* the device goes here */
	assert_int_equal(fallbacks(a, &lost), 1);
	assert_int_equal(lost, 1);
	fault_crc(a, &in);
	fault_merge(a, cpu);
	uint64_t h[300];
	for (int i = 0; i < 300; i++)
		h[i] = rnd();
	uint8_t f[512] = { 0 }, fw[512] = { 0 };
	assert_int_equal(sl__accel_bloom_build(a, h, 300, 7, f, sizeof(f)), 0);
	assert_int_equal(sl__accel_bloom_build(cpu, h, 300, 7, fw, sizeof(fw)), 0);
	assert_memory_equal(f, fw, sizeof(f));
	struct sl_accel_filter filt = { fw, sizeof(fw), 7 };
	uint8_t hit[300], hit_want[300];
	assert_int_equal(sl__accel_bloom_probe(a, &filt, 1, NULL, h, 300, hit), 0);
	assert_int_equal(sl__accel_bloom_probe(cpu, &filt, 1, NULL, h, 300, hit_want), 0);
	assert_memory_equal(hit, hit_want, sizeof(hit));
	assert_int_equal(fallbacks(a, &lost), 5);
	/* Asynchronous requests complete too, on cpu (no device time). */
	uint32_t got[4];
	struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C, .u.crc = { in.bufs, 4, got } };
	assert_int_equal(sl__accel_submit(a, &q), 0);
	assert_int_equal(sl__accel_poll(a, 1000000000), 1);
	assert_int_equal(q.status, 0);
	assert_int_equal(q.device_ns, 0);
	assert_memory_equal(got, in.want, sizeof(got));
	assert_int_equal(fallbacks(a, &lost), 6);
	sl__accel_close(a);
	sl__accel_close(cpu);
}

/* Asynchronous requests behind a hung one: the watchdog fires from poll, the hung request and
 * the two queued behind it (dropped by the reset) run on cpu; the one before it ran on the
 * device; every callback runs once with cpu's answer; the device serves the next request. */
static void test_fault_hung_kernel_async(void **state)
{
	(void)state;
	rng_state = 0xa5c;
	struct sl_accel *cpu = open_backend("cpu", NULL);
	struct sl_accel *a = open_backend("sim", "fpga,timeout_ms=100,fault=hang@1");
	struct fault_in in;
	fault_in_make(cpu, &in);
	uint32_t got[5][4];
	struct sl_accel_req q[5];
	for (int i = 0; i < 4; i++) {
		q[i] = (struct sl_accel_req){ .op = SL_ACCEL_OP_CRC32C,
					      .u.crc = { in.bufs, 4, got[i] } };
		assert_int_equal(sl__accel_submit(a, &q[i]), 0);
	}
	int n = 0;
	for (int spins = 0; n < 4 && spins < 200; spins++)
		n += sl__accel_poll(a, 1000000000);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(q[i].status, 0);
		assert_memory_equal(got[i], in.want, sizeof(got[i]));
	}
	assert_true(q[0].device_ns > 0);
	int lost = -1;
	assert_int_equal(fallbacks(a, &lost), 3);
	assert_int_equal(lost, 0);
	q[4] = (struct sl_accel_req){ .op = SL_ACCEL_OP_CRC32C, .u.crc = { in.bufs, 4, got[4] } };
	assert_int_equal(sl__accel_submit(a, &q[4]), 0);
	n = 0;
	for (int spins = 0; !n && spins < 100; spins++)
		n = sl__accel_poll(a, 1000000000);
	assert_int_equal(q[4].status, 0);
	assert_true(q[4].device_ns > 0);
	assert_memory_equal(got[4], in.want, sizeof(got[4]));
	assert_int_equal(fallbacks(a, &lost), 3);
	sl__accel_close(a);
	sl__accel_close(cpu);
}

/* The profile's fault options are checked like the others. */
static void test_fault_profile_options(void **state)
{
	(void)state;
	struct sim_profile p;
	char why[200];
	assert_int_equal(sim_profile_parse("fpga,fault=lost@7,timeout_ms=250", &p, why, sizeof(why)),
			 0);
	assert_int_equal(p.fault, SIM_FAULT_LOST);
	assert_int_equal(p.fault_after, 7);
	assert_int_equal(p.timeout_ns, 250000000ull);
	assert_int_equal(p.fault_opcode, 0);
	assert_int_equal(sim_profile_parse("gpu,fault=hang@merge", &p, why, sizeof(why)), 0);
	assert_int_equal(p.fault, SIM_FAULT_HANG);
	assert_int_equal(p.fault_opcode, FW_OP_MERGE);
	assert_int_equal(sim_profile_parse("gpu", &p, why, sizeof(why)), 0);
	assert_int_equal(p.fault, SIM_FAULT_NONE);
	assert_int_equal(p.timeout_ns, 30000000000ull);
	const char *bad[] = { "fpga,fault=melt@1", "fpga,fault=hang@", "fpga,fault=hang",
			      "fpga,timeout_ms=0", "fpga,timeout_ms=x", "fpga,fault=lost@merges",
			      "fpga,fault=lost@merg" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		assert_int_equal(sim_profile_parse(bad[i], &p, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "fault=hang@N|lost@N"));
	}
}

int main(void)
{
	rng_state = 0x51a7e;
	pool_words = 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sim_open_profiles),
		cmocka_unit_test(test_crc32c_matches_cpu),
		cmocka_unit_test(test_crc32c_huge_batch),
		cmocka_unit_test(test_bloom_build_matches_cpu),
		cmocka_unit_test(test_bloom_probe_matches_cpu),
		cmocka_unit_test(test_merge_random_matches_cpu),
		cmocka_unit_test(test_merge_cases_match_cpu),
		cmocka_unit_test(test_merge_corrupt_matches_cpu),
		cmocka_unit_test(test_merge_einval_matches_cpu),
		cmocka_unit_test(test_async_many),
		cmocka_unit_test(test_async_ring_full),
		cmocka_unit_test(test_async_close_in_flight),
		cmocka_unit_test(test_async_merge_matches_cpu),
		cmocka_unit_test(test_sync_threads),
		cmocka_unit_test(test_sim_device_memory_full),
		cmocka_unit_test(test_fw_crc_descriptors),
		cmocka_unit_test(test_fw_bloom_descriptors),
		cmocka_unit_test(test_fw_merge_descriptors),
		cmocka_unit_test(test_fw_process_bounds),
		cmocka_unit_test(test_model_times),
		cmocka_unit_test(test_model_device_ns),
		cmocka_unit_test(test_fault_hung_kernel_sync),
		cmocka_unit_test(test_fault_device_lost),
		cmocka_unit_test(test_fault_hung_kernel_async),
		cmocka_unit_test(test_fault_profile_options),
	};
	int r = cmocka_run_group_tests_name("sim", tests, NULL, NULL);
	pool_free();
	return r;
}
