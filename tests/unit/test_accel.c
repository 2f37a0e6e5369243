/* test_accel.c - unit tests of the accelerator seam and its cpu backend: CRC32C against known
 * vectors and against a bitwise reference written here from the definition (so an error in
 * ISA-L's use cannot hide behind the same error in the test), batches of mixed sizes and
 * alignments equal to one-by-one results, and backend selection by name; the fused merge job
 * against a plain reference written here (sort everything, newest run wins, tombstones, key
 * ranges) over random runs built with the block codec, its outputs decoded and re-encoded, its
 * CRCs against the bitwise reference and its filter against one built here; exact -ENOSPC
 * needs; damaged and out-of-order inputs named by run and block; bad parameters; concurrent
 * jobs. Links accel.o, accel_cpu.o, block.o, bloom.o and err.o only.
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
#include "sluice.h"

/* CRC32C by the definition: reflected polynomial 0x82F63B78, init and final xor ~0. */
static uint32_t crc32c_ref(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
	}
	return c ^ 0xFFFFFFFFu;
}

static struct sl_accel *open_cpu(void)
{
	struct sl_accel *a = NULL;
	assert_int_equal(sl__accel_open("cpu", &a), 0);
	assert_non_null(a);
	return a;
}

/* ---- CRC32C ------------------------------------------------------------------------------- */

static void test_crc32c_known_vectors(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	uint8_t zeros[32], ones[32];
	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xFF, sizeof(ones));
	/* The check value of the Castagnoli CRC, and the iSCSI vectors of RFC 3720 B.4. */
	assert_int_equal(sl__accel_crc32c(a, "123456789", 9), 0xE3069283u);
	assert_int_equal(sl__accel_crc32c(a, "", 0), 0);
	assert_int_equal(sl__accel_crc32c(a, NULL, 0), 0);
	assert_int_equal(sl__accel_crc32c(a, zeros, 32), 0x8A9136AAu);
	assert_int_equal(sl__accel_crc32c(a, ones, 32), 0x62A8AB43u);
	uint8_t inc[32], dec[32];
	for (int i = 0; i < 32; i++) {
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	assert_int_equal(sl__accel_crc32c(a, inc, 32), 0x46DD794Eu);
	assert_int_equal(sl__accel_crc32c(a, dec, 32), 0x113FDB5Cu);
	/* The reference agrees on the same vectors. */
	assert_int_equal(crc32c_ref("123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c_ref(zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c_ref(inc, 32), 0x46DD794Eu);
	sl__accel_close(a);
}

static void test_crc32c_batch_matches_reference(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	/* Sizes around every kernel's block boundaries, at every alignment 0..15. */
	static const size_t sizes[] = {
		0,  1,	 2,   3,   7,	8,   9,	  15,  16,   17,   31,	 32,   33,   63,    64,
		65, 127, 128, 129, 255, 256, 257, 511, 1023, 1024, 1025, 4095, 4097, 65535, 100003
	};
	enum { NS = sizeof(sizes) / sizeof(sizes[0]), NB = NS * 16 };
	uint8_t *pool = malloc(100003 + 64);
	assert_non_null(pool);
	for (size_t i = 0; i < 100003 + 64; i++)
		pool[i] = (uint8_t)rnd();
	struct sl_accel_buf bufs[NB];
	uint32_t out[NB], one[NB];
	for (size_t i = 0; i < NB; i++) {
		size_t align = i % 16, len = sizes[i / 16];
		bufs[i].data = pool + align + (rnd() % 32);
		bufs[i].len = len;
	}
	memset(out, 0xA5, sizeof(out));
	assert_int_equal(sl__accel_crc32c_batch(a, bufs, NB, out), 0);
	for (size_t i = 0; i < NB; i++) {
		one[i] = sl__accel_crc32c(a, bufs[i].data, bufs[i].len);
		assert_int_equal(one[i], out[i]);
		assert_int_equal(out[i], crc32c_ref(bufs[i].data, bufs[i].len));
	}
	/* n = 0 touches nothing. */
	uint32_t untouched = 0x12345678u;
	assert_int_equal(sl__accel_crc32c_batch(a, bufs, 0, &untouched), 0);
	assert_int_equal(untouched, 0x12345678u);
	free(pool);
	sl__accel_close(a);
}

static void test_crc32c_batch_random_mixed(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	enum { N = 500 };
	uint8_t *pool = malloc(70000);
	assert_non_null(pool);
	for (size_t i = 0; i < 70000; i++)
		pool[i] = (uint8_t)rnd();
	struct sl_accel_buf bufs[N];
	uint32_t out[N];
	for (int round = 0; round < 20; round++) {
		size_t n = 1 + rnd() % N;
		for (size_t i = 0; i < n; i++) {
			/* Mostly the small records the WAL checksums, now and then a large one. */
			size_t len = rnd() % 8 ? rnd() % 80 : rnd() % 65560;
			bufs[i].len = len;
			bufs[i].data = pool + rnd() % (70000 - len + 1);
		}
		assert_int_equal(sl__accel_crc32c_batch(a, bufs, n, out), 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i], crc32c_ref(bufs[i].data, bufs[i].len));
	}
	free(pool);
	sl__accel_close(a);
}

/* ---- Backend selection -------------------------------------------------------------------- */

static void test_accel_open_by_name(void **state)
{
	(void)state;
	static const char *const ok[] = { "cpu", "auto", NULL };
	for (size_t i = 0; i < 3; i++) {
		struct sl_accel *a = NULL;
		assert_int_equal(sl__accel_open(ok[i], &a), 0);
		assert_non_null(a);
		assert_non_null(a->ops);
		assert_int_equal(a->ops->version, SL_ACCEL_OPS_VERSION);
		/* auto (and NULL) is the planner; with no device present it routes to cpu. */
		assert_string_equal(a->ops->name, i == 0 ? "cpu" : "auto");
		assert_int_equal(sl__accel_crc32c(a, "123456789", 9), 0xE3069283u);
		sl__accel_close(a);
	}
}

static void test_accel_open_unknown_name(void **state)
{
	(void)state;
	static const char *const bad[] = { "gpu", "", "CPU", "cpu ", "opencl-typo" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_accel *a = (struct sl_accel *)0x1;
		char why[160];
		assert_int_equal(sl__accel_open_cfg(bad[i], NULL, &a, why, sizeof(why)), SL_ECONFIG);
		/* *out is NULL on failure, and why names the mode. */
		assert_null(a);
		assert_non_null(strstr(why, "unknown accelerator mode"));
	}
}

static void test_accel_close_null(void **state)
{
	(void)state;
	sl__accel_close(NULL);
}

/* ---- The merge job ------------------------------------------------------------------------ */

/* What the merge must produce, computed the plain way: all entries, sorted by key and then
 * run, the first of each key kept, tombstones dropped when asked, only keys in (lo, hi]. */
struct expect {
	struct tent *e;
	size_t n;
	uint64_t entries_in, dropped_older, dropped_tombstones;
};

static int in_range(const struct tent *t, const struct sl_accel_merge_job *j)
{
	if (j->lo_len && key_ref_cmp(t->key, t->klen, j->lo, j->lo_len) <= 0)
		return 0;
	if (j->hi_len && key_ref_cmp(t->key, t->klen, j->hi, j->hi_len) > 0)
		return 0;
	return 1;
}

static void reference(const struct trun *runs, size_t k, const struct sl_accel_merge_job *j,
		      struct expect *x)
{
	size_t total = 0;
	for (size_t r = 0; r < k; r++)
		total += runs[r].n;
	struct tent *all = calloc(total + 1, sizeof(*all));
	x->e = calloc(total + 1, sizeof(*x->e));
	assert_true(all && x->e);
	size_t m = 0;
	for (size_t r = 0; r < k; r++)
		for (size_t i = 0; i < runs[r].n; i++)
			if (in_range(&runs[r].e[i], j)) {
				all[m] = runs[r].e[i];
				all[m++].run = (uint32_t)r;
			}
	qsort(all, m, sizeof(*all), tent_cmp);
	x->n = 0;
	x->entries_in = m;
	x->dropped_older = x->dropped_tombstones = 0;
	for (size_t i = 0; i < m; i++) {
		if (i && !key_ref_cmp(all[i].key, all[i].klen, all[i - 1].key, all[i - 1].klen)) {
			x->dropped_older++;
			continue;
		}
		if ((all[i].flags & SL_ACCEL_TOMBSTONE) &&
		    (j->flags & SL_ACCEL_MERGE_DROP_TOMBSTONES)) {
			x->dropped_tombstones++;
			continue;
		}
		x->e[x->n++] = all[i];
	}
	free(all);
}

/* The output, checked against the reference: counts; blocks back to back, each CRC equal to
 * the bitwise reference and to its trailer, each block decoding to the expected entries with
 * its last key in blocks[]; all bytes equal to the expected entries encoded independently
 * (the cut rule); and the filter equal to one built here from the expected keys. */
static void check_output(const struct sl_accel_merge_job *j, const struct expect *x,
			 uint32_t block_bytes, uint32_t interval, uint32_t bits)
{
	assert_int_equal(j->entries_out, x->n);
	assert_int_equal(j->entries_in, x->entries_in);
	assert_int_equal(j->dropped_older, x->dropped_older);
	assert_int_equal(j->dropped_tombstones, x->dropped_tombstones);
	assert_int_equal(j->need_out, j->out_len);
	assert_int_equal(j->need_blocks, j->n_blocks);
	assert_int_equal(j->need_bloom, j->bloom_len);
	if (x->n) {
		assert_int_equal(j->smallest_len, x->e[0].klen);
		assert_memory_equal(j->smallest, x->e[0].key, x->e[0].klen);
	} else {
		assert_int_equal(j->smallest_len, 0);
		assert_int_equal(j->n_blocks, 0);
		assert_int_equal(j->out_len, 0);
	}
	/* Decode. */
	size_t i = 0;
	uint64_t off = 0;
	struct sl_block_iter it;
	it.klen = 0;
	for (size_t b = 0; b < j->n_blocks; b++) {
		const struct sl_accel_block *ob = &j->blocks[b];
		assert_int_equal(ob->off, off);
		assert_true(ob->len <= j->out_len - off);
		const uint8_t *p = j->out + ob->off;
		assert_int_equal(ob->crc, crc32c_ref(p, ob->len - 4));
		assert_int_equal(ob->crc, sl__block_get_u32(p + ob->len - 4));
		struct sl_block blk;
		assert_int_equal(sl__block_parse(&blk, p, ob->len), 0);
		sl__block_iter_start(&it, &blk, 0, SL_BLOCK_ITER_ORDER);
		int r;
		size_t in_block = 0;
		while ((r = sl__block_iter_next(&it)) > 0) {
			assert_true(i < x->n);
			const struct tent *t = &x->e[i++];
			assert_int_equal(it.klen, t->klen);
			assert_memory_equal(it.key, t->key, t->klen);
			assert_int_equal(it.flags, t->flags);
			assert_int_equal(it.vlen, t->vlen);
			if (t->vlen)
				assert_memory_equal(it.val, t->val, t->vlen);
			in_block++;
		}
		assert_int_equal(r, 0);
		if (in_block > 1)
			assert_true(ob->len <= block_bytes);
		assert_int_equal(ob->last_len, it.klen);
		assert_memory_equal(ob->last, it.key, it.klen);
		off += ob->len;
	}
	assert_int_equal(i, x->n);
	assert_int_equal(off, j->out_len);
	/* The same entries through the codec here: the same bytes. */
	if (x->n) {
		struct trun again = { .e = x->e, .n = x->n };
		struct sl_accel *a = NULL;
		assert_int_equal(sl__accel_open("cpu", &a), 0);
		trun_encode(&again, a, block_bytes, interval);
		sl__accel_close(a);
		assert_int_equal(again.nblocks, j->n_blocks);
		for (size_t b = 0; b < again.nblocks; b++) {
			assert_int_equal(again.bufs[b].len, j->blocks[b].len);
			assert_memory_equal(again.bufs[b].data, j->out + j->blocks[b].off,
					    again.bufs[b].len);
		}
		again.e = NULL;
		trun_free(&again);
	}
	/* The filter. */
	size_t fb = sl__bloom_bytes(x->n, bits);
	assert_int_equal(j->bloom_len, fb);
	assert_int_equal(j->bloom_probes, sl__bloom_probes(bits));
	uint8_t *f = calloc(1, fb);
	uint64_t *h = malloc((x->n + 1) * sizeof(*h));
	assert_true(f && h);
	for (size_t k = 0; k < x->n; k++)
		h[k] = sl__bloom_hash(x->e[k].key, x->e[k].klen);
	sl__bloom_add(f, fb, h, x->n, sl__bloom_probes(bits));
	assert_memory_equal(j->bloom, f, fb);
	free(f);
	free(h);
}

/* Output buffers: tout_alloc (accel_inputs.c), exactly the given sizes on the heap, so ASan
 * sees a write past them. */

/* Submit with the buffers as they are; on -ENOSPC the needs must be exact: buffers one short
 * of any need fail again with the same needs, buffers of exactly the needs succeed. */
static int submit_grow(struct sl_accel *a, struct sl_accel_merge_job *j, struct tout *o)
{
	int r = sl__accel_merge(a, j);
	if (r != -ENOSPC)
		return r;
	size_t no = j->need_out, nb = j->need_blocks, nf = j->need_bloom;
	assert_true(no > j->out_cap || nb > j->blocks_cap || nf > j->bloom_cap);
	assert_int_equal(j->out_len, 0);
	assert_int_equal(j->n_blocks, 0);
	assert_int_equal(j->bloom_len, 0);
	for (int which = 0; which < 3; which++) {
		size_t s[3] = { no, nb, nf };
		if (!s[which])
			continue;
		s[which]--;
		tout_free(o);
		tout_alloc(o, j, s[0], s[1], s[2]);
		assert_int_equal(sl__accel_merge(a, j), -ENOSPC);
		assert_int_equal(j->need_out, no);
		assert_int_equal(j->need_blocks, nb);
		assert_int_equal(j->need_bloom, nf);
	}
	tout_free(o);
	tout_alloc(o, j, no, nb, nf);
	r = sl__accel_merge(a, j);
	if (r == 0) {
		assert_int_equal(j->out_len, no);
		assert_int_equal(j->n_blocks, nb);
		assert_int_equal(j->bloom_len, nf);
	}
	return r;
}

static void merge_random_round(struct sl_accel *a, int round)
{
	size_t k = 1 + rnd() % 20, un = 20 + rnd() % 1500;
	struct tent *u = universe(&un);
	struct trun runs[20];
	struct sl_accel_run ar[20];
	memset(runs, 0, sizeof(runs));
	unsigned every = 1 + (unsigned)(rnd() % 6);
	for (size_t r = 0; r < k; r++) {
		make_run(&runs[r], u, un, rnd() % 8 == 0 ? 100000 : every, round % 5 == 0);
		/* Input blocks of another size than the output's: the merge re-cuts them. */
		trun_encode(&runs[r], a, block_sizes[rnd() % N_BLOCK_SIZES],
			    1 + (uint32_t)(rnd() % 20));
	}
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, k);
	uint32_t bb = block_sizes[rnd() % N_BLOCK_SIZES];
	uint32_t ri = rnd() % 4 ? 16 : 1 + (uint32_t)(rnd() % 40);
	uint32_t bits = rnd() % 3 ? 10 : 1 + (uint32_t)(rnd() % 20);
	j.block_bytes = rnd() % 4 == 0 && bb == 4096 ? 0 : bb;
	j.restart_interval = ri == 16 && rnd() % 2 ? 0 : ri;
	j.bits_per_key = bits == 10 && rnd() % 2 ? 0 : bits;
	j.flags = rnd() % 2 ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
	uint8_t lo[SL_ACCEL_MAX_KEY], hi[SL_ACCEL_MAX_KEY];
	if (rnd() % 3 == 0) {
		pick_bound(u, un, lo, &j.lo_len);
		j.lo = lo;
	}
	if (rnd() % 3 == 0) {
		pick_bound(u, un, hi, &j.hi_len);
		j.hi = hi;
	}
	struct expect x;
	reference(runs, k, &j, &x);
	struct tout o;
	/* Buffers from none at all to plenty: the exact needs come back either way. */
	switch (rnd() % 3) {
	case 0:
		tout_alloc(&o, &j, 0, 0, 0);
		break;
	case 1:
		tout_alloc(&o, &j, 1 + rnd() % 5000, 1 + rnd() % 10, 64);
		break;
	default:
		tout_alloc(&o, &j, 8 << 20, 70000, 1 << 16);
		break;
	}
	assert_int_equal(submit_grow(a, &j, &o), 0);
	check_output(&j, &x, bb, ri, bits);
	tout_free(&o);
	free(x.e);
	for (size_t r = 0; r < k; r++)
		trun_free(&runs[r]);
	free(u);
}

static void test_merge_random_against_reference(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	for (int round = 0; round < 300; round++)
		merge_random_round(a, round);
	sl__accel_close(a);
}

/* A small case spelled out: newest wins, tombstones kept or dropped, counters. */
static void test_merge_newest_wins_tombstones(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	/* run 0 (newest): b=tomb, c="c0"; run 1: a="a1", b="b1", c="c1"; run 2: b="b2", d="d2". */
	static const struct {
		int run;
		const char *k, *v;
		uint8_t flags;
	} in[] = {
		{ 0, "b", "", SL_ACCEL_TOMBSTONE },
		{ 0, "c", "c0", 0 },
		{ 1, "a", "a1", 0 },
		{ 1, "b", "b1", 0 },
		{ 1, "c", "c1", 0 },
		{ 2, "b", "b2", 0 },
		{ 2, "d", "d2", SL_ACCEL_TOMBSTONE },
	};
	struct trun runs[3];
	memset(runs, 0, sizeof(runs));
	for (int r = 0; r < 3; r++) {
		runs[r].e = calloc(8, sizeof(struct tent));
		assert_non_null(runs[r].e);
	}
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct trun *r = &runs[in[i].run];
		struct tent *t = &r->e[r->n++];
		t->klen = (uint8_t)strlen(in[i].k);
		memcpy(t->key, in[i].k, t->klen);
		t->val = (const uint8_t *)in[i].v;
		t->vlen = (uint32_t)strlen(in[i].v);
		t->flags = in[i].flags;
	}
	for (int r = 0; r < 3; r++)
		trun_encode(&runs[r], a, 4096, 16);
	struct sl_accel_run ar[3];
	for (int drop = 0; drop < 2; drop++) {
		struct sl_accel_merge_job j;
		memset(&j, 0, sizeof(j));
		job_runs(&j, ar, runs, 3);
		j.flags = drop ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
		struct tout o;
		tout_alloc(&o, &j, 4096, 4, 64);
		assert_int_equal(sl__accel_merge(a, &j), 0);
		assert_int_equal(j.entries_in, 7);
		assert_int_equal(j.dropped_older, 3);
		assert_int_equal(j.dropped_tombstones, drop ? 2 : 0);
		assert_int_equal(j.entries_out, drop ? 2 : 4);
		assert_int_equal(j.n_blocks, 1);
		/* Walk the block: a=a1, [b tomb], c=c0, [d tomb]. */
		struct sl_block blk;
		assert_int_equal(sl__block_parse(&blk, j.out, j.blocks[0].len), 0);
		struct sl_block_iter it;
		it.klen = 0;
		sl__block_iter_start(&it, &blk, 0, SL_BLOCK_ITER_ORDER);
		static const char *const want_keep[] = { "a", "a1", "b", "", "c", "c0", "d", "d2" };
		static const char *const want_drop[] = { "a", "a1", "c", "c0" };
		const char *const *w = drop ? want_drop : want_keep;
		for (uint64_t e = 0; e < j.entries_out; e++) {
			assert_int_equal(sl__block_iter_next(&it), 1);
			assert_int_equal(it.klen, 1);
			assert_memory_equal(it.key, w[2 * e], 1);
			assert_int_equal(it.vlen, strlen(w[2 * e + 1]));
			assert_memory_equal(it.val, w[2 * e + 1], it.vlen);
			assert_int_equal(it.flags,
					 (!drop && (e == 1 || e == 3)) ? SL_ACCEL_TOMBSTONE : 0);
		}
		assert_int_equal(sl__block_iter_next(&it), 0);
		assert_int_equal(j.smallest_len, 1);
		assert_int_equal(j.smallest[0], 'a');
		assert_int_equal(j.blocks[0].last_len, 1);
		assert_int_equal(j.blocks[0].last[0], drop ? 'c' : 'd');
		tout_free(&o);
	}
	for (int r = 0; r < 3; r++)
		trun_free(&runs[r]);
	sl__accel_close(a);
}

/* One run in, merged with itself only, with the same block parameters: the same bytes out. */
static void test_merge_one_run_identity(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	size_t un = 3000;
	struct tent *u = universe(&un);
	struct trun run;
	memset(&run, 0, sizeof(run));
	make_run(&run, u, un, 1, 0);
	trun_encode(&run, a, 1024, 8);
	struct sl_accel_run ar;
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, &ar, &run, 1);
	j.block_bytes = 1024;
	j.restart_interval = 8;
	struct tout o;
	tout_alloc(&o, &j, 0, 0, 0);
	assert_int_equal(submit_grow(a, &j, &o), 0);
	assert_int_equal(j.n_blocks, run.nblocks);
	for (size_t b = 0; b < run.nblocks; b++) {
		assert_int_equal(j.blocks[b].len, run.bufs[b].len);
		assert_memory_equal(j.out + j.blocks[b].off, run.bufs[b].data, run.bufs[b].len);
	}
	tout_free(&o);
	trun_free(&run);
	free(u);
	sl__accel_close(a);
}

/* No runs, empty runs, a range that holds nothing: an empty output with a one-block filter. */
static void test_merge_empty(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	struct tout o;
	tout_alloc(&o, &j, 0, 0, 0);
	assert_int_equal(sl__accel_merge(a, &j), -ENOSPC);
	assert_int_equal(j.need_out, 0);
	assert_int_equal(j.need_blocks, 0);
	assert_int_equal(j.need_bloom, SL_BLOOM_BLOCK);
	tout_free(&o);
	tout_alloc(&o, &j, 0, 0, SL_BLOOM_BLOCK);
	assert_int_equal(sl__accel_merge(a, &j), 0);
	assert_int_equal(j.out_len, 0);
	assert_int_equal(j.n_blocks, 0);
	assert_int_equal(j.bloom_len, SL_BLOOM_BLOCK);
	assert_int_equal(j.entries_in, 0);
	assert_int_equal(j.entries_out, 0);
	assert_int_equal(j.smallest_len, 0);
	uint8_t zero[SL_BLOOM_BLOCK] = { 0 };
	assert_memory_equal(j.bloom, zero, SL_BLOOM_BLOCK);
	/* Three empty runs and one whose keys all lie outside (lo, hi]. */
	size_t un = 100;
	struct tent *u = universe(&un);
	struct trun runs[4];
	memset(runs, 0, sizeof(runs));
	for (int r = 0; r < 4; r++) {
		make_run(&runs[r], u, un, r == 2 ? 1 : 1000000, 0);
		trun_encode(&runs[r], a, 256, 4);
	}
	struct sl_accel_run ar[4];
	job_runs(&j, ar, runs, 4);
	j.lo = u[un - 1].key;
	j.lo_len = u[un - 1].klen;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	assert_int_equal(j.entries_out, 0);
	assert_int_equal(j.entries_in, 0);
	assert_int_equal(j.n_blocks, 0);
	/* lo above hi: nothing either. */
	j.lo = u[un / 2].key;
	j.lo_len = u[un / 2].klen;
	j.hi = u[un / 3].key;
	j.hi_len = u[un / 3].klen;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	assert_int_equal(j.entries_out, 0);
	/* lo == hi: nothing; hi one key up: that key. */
	j.hi = j.lo;
	j.hi_len = j.lo_len;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	assert_int_equal(j.entries_out, 0);
	tout_free(&o);
	tout_alloc(&o, &j, 4096, 4, 64);
	j.hi = u[un / 2 + 1].key;
	j.hi_len = u[un / 2 + 1].klen;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	assert_int_equal(j.entries_out, 1);
	assert_int_equal(j.smallest_len, u[un / 2 + 1].klen);
	assert_memory_equal(j.smallest, u[un / 2 + 1].key, j.smallest_len);
	tout_free(&o);
	for (int r = 0; r < 4; r++)
		trun_free(&runs[r]);
	free(u);
	sl__accel_close(a);
}

/* Merges on several threads at once: inputs, references and exact buffers made first, here;
 * then every job runs again on its own thread, five times, all at the same time; then each
 * output is checked here (cmocka's asserts are for the main thread). */
struct merge_thread {
	struct sl_accel *a;
	struct sl_accel_merge_job *j;
	int rc;
};

static void *merge_thread_main(void *p)
{
	struct merge_thread *t = p;
	for (int i = 0; i < 5 && !t->rc; i++)
		t->rc = sl__accel_merge(t->a, t->j);
	return NULL;
}

static void test_merge_threads(void **state)
{
	(void)state;
	enum { T = 6, K = 5 };
	struct sl_accel *a = open_cpu();
	struct trun runs[T][K];
	struct sl_accel_run ar[T][K];
	struct sl_accel_merge_job j[T];
	struct tout o[T];
	struct expect x[T];
	struct merge_thread mt[T];
	pthread_t th[T];
	memset(runs, 0, sizeof(runs));
	for (int t = 0; t < T; t++) {
		size_t un = 500 + rnd() % 1000;
		struct tent *u = universe(&un);
		for (int r = 0; r < K; r++) {
			make_run(&runs[t][r], u, un, 2, 0);
			trun_encode(&runs[t][r], a, 512, 16);
		}
		free(u);
		memset(&j[t], 0, sizeof(j[t]));
		job_runs(&j[t], ar[t], runs[t], K);
		j[t].block_bytes = 1024;
		j[t].flags = t % 2 ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
		reference(runs[t], K, &j[t], &x[t]);
		tout_alloc(&o[t], &j[t], 0, 0, 0);
		assert_int_equal(submit_grow(a, &j[t], &o[t]), 0);
		mt[t] = (struct merge_thread){ a, &j[t], 0 };
	}
	for (int t = 0; t < T; t++)
		assert_int_equal(pthread_create(&th[t], NULL, merge_thread_main, &mt[t]), 0);
	for (int t = 0; t < T; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(mt[t].rc, 0);
		check_output(&j[t], &x[t], 1024, 16, 10);
		tout_free(&o[t]);
		free(x[t].e);
		for (int r = 0; r < K; r++)
			trun_free(&runs[t][r]);
	}
	sl__accel_close(a);
}

/* Runs of a few 1 MiB values with 64-byte blocks: each such entry a block of its own. */
static void test_merge_big_values_tiny_blocks(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	uint8_t *pool = pool_get();
	struct trun runs[3];
	memset(runs, 0, sizeof(runs));
	for (int r = 0; r < 3; r++) {
		runs[r].e = calloc(8, sizeof(struct tent));
		assert_non_null(runs[r].e);
		for (int i = 0; i < 6; i++) {
			struct tent *t = &runs[r].e[runs[r].n++];
			t->klen = (uint8_t)(1 + (i * 13) % SL_ACCEL_MAX_KEY);
			memset(t->key, 'k', t->klen);
			t->key[0] = (uint8_t)('a' + 2 * i + (r == 2)); /* runs 0 and 1 share keys */
			t->vlen = i % 2 ? (1u << 20) : (uint32_t)i;
			t->val = pool + (size_t)r * 1000 + (size_t)i;
		}
		trun_encode(&runs[r], a, 64, 1);
	}
	struct sl_accel_run ar[3];
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 3);
	j.block_bytes = 64;
	struct expect x;
	reference(runs, 3, &j, &x);
	assert_int_equal(x.n, 12);
	assert_int_equal(x.dropped_older, 6);
	struct tout o;
	tout_alloc(&o, &j, 1000, 2, 64);
	assert_int_equal(submit_grow(a, &j, &o), 0);
	check_output(&j, &x, 64, 16, 10);
	/* Six 1 MiB entries, each alone in its block; the small ones share 64-byte blocks. */
	size_t big = 0;
	for (size_t b = 0; b < j.n_blocks; b++)
		big += j.blocks[b].len > (1u << 20);
	assert_int_equal(big, 6);
	tout_free(&o);
	free(x.e);
	for (int r = 0; r < 3; r++)
		trun_free(&runs[r]);
	sl__accel_close(a);
}

/* Five runs of small blocks for the corruption tests. */
static void corrupt_setup(struct sl_accel *a, struct trun *runs, struct sl_accel_run *ar,
			  struct sl_accel_merge_job *j, struct tout *o)
{
	size_t un = 2000;
	struct tent *u = universe(&un);
	for (int r = 0; r < 5; r++) {
		make_run(&runs[r], u, un, 2, 0);
		trun_encode(&runs[r], a, 256, 4);
		assert_true(runs[r].nblocks >= 4);
	}
	free(u);
	memset(j, 0, sizeof(*j));
	job_runs(j, ar, runs, 5);
	tout_alloc(o, j, 4 << 20, 40000, 1 << 16);
}

/* A flipped bit anywhere in an input block (entries, restart array, count, CRC): SL_ECORRUPT
 * naming that run and block; with the bit back, the merge succeeds. */
static void test_merge_corrupt_input_block(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	struct trun runs[5];
	struct sl_accel_run ar[5];
	struct sl_accel_merge_job j;
	struct tout o;
	memset(runs, 0, sizeof(runs));
	corrupt_setup(a, runs, ar, &j, &o);
	for (int round = 0; round < 200; round++) {
		size_t r = rnd() % 5, b = rnd() % runs[r].nblocks;
		size_t len = runs[r].bufs[b].len;
		/* The first byte, the CRC's last, the restart count's first, then anywhere. */
		static const size_t fixed[] = { 0, 1, 8 };
		size_t at = round < 3 ? (round ? len - fixed[round] : 0) : rnd() % len;
		uint8_t *p = (uint8_t *)runs[r].bufs[b].data, bit = (uint8_t)(1u << (rnd() % 8));
		p[at] ^= bit;
		j.bad_run = j.bad_block = 999;
		assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
		assert_int_equal(j.bad_run, r);
		assert_int_equal(j.bad_block, b);
		assert_int_equal(j.out_len, 0);
		assert_int_equal(j.n_blocks, 0);
		p[at] ^= bit;
	}
	assert_int_equal(sl__accel_merge(a, &j), 0);
	/* A block too short to be one (its CRC cannot even be found). */
	size_t keep = runs[3].bufs[2].len;
	for (size_t len = 0; len < SL_BLOCK_MIN; len++) {
		runs[3].bufs[2].len = len;
		assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
		assert_int_equal(j.bad_run, 3);
		assert_int_equal(j.bad_block, 2);
	}
	runs[3].bufs[2].len = keep;
	/* Damage behind a valid CRC: an absurd restart count, a value running past the entries. */
	uint8_t *p = (uint8_t *)runs[1].bufs[1].data;
	size_t len = runs[1].bufs[1].len;
	uint8_t save[8];
	memcpy(save, p + len - 8, 8);
	sl__block_put_u32(p + len - 8, 0xFFFF);
	sl__block_put_u32(p + len - 4, crc32c_ref(p, len - 4));
	assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
	assert_int_equal(j.bad_run, 1);
	assert_int_equal(j.bad_block, 1);
	memcpy(p + len - 8, save, 8);
	uint8_t v = p[2];
	p[2] = 0x7f; /* the first entry's value length */
	memcpy(save, p + len - 4, 4);
	sl__block_put_u32(p + len - 4, crc32c_ref(p, len - 4));
	assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
	assert_int_equal(j.bad_run, 1);
	assert_int_equal(j.bad_block, 1);
	p[2] = v;
	memcpy(p + len - 4, save, 4);
	assert_int_equal(sl__accel_merge(a, &j), 0);
	/* A damaged block past hi is never read: no error. */
	const struct tent *last0 = &runs[0].e[0];
	p = (uint8_t *)runs[0].bufs[runs[0].nblocks - 1].data;
	p[0] ^= 1;
	j.hi = last0->key;
	j.hi_len = last0->klen;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	j.hi_len = 0;
	assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
	assert_int_equal(j.bad_run, 0);
	assert_int_equal(j.bad_block, runs[0].nblocks - 1);
	p[0] ^= 1;
	tout_free(&o);
	for (int r = 0; r < 5; r++)
		trun_free(&runs[r]);
	sl__accel_close(a);
}

/* Keys out of order within a run (blocks swapped; a repeated key across blocks; a block whose
 * own entries descend): SL_ECORRUPT naming the block where the order breaks. */
static void test_merge_corrupt_run_order(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	struct trun runs[5];
	struct sl_accel_run ar[5];
	struct sl_accel_merge_job j;
	struct tout o;
	memset(runs, 0, sizeof(runs));
	corrupt_setup(a, runs, ar, &j, &o);
	/* Blocks 1 and 2 of run 4 swapped: block 2 (once block 1) goes below block 1's keys. */
	struct sl_accel_buf t = runs[4].bufs[1];
	runs[4].bufs[1] = runs[4].bufs[2];
	runs[4].bufs[2] = t;
	assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
	assert_int_equal(j.bad_run, 4);
	assert_int_equal(j.bad_block, 2);
	runs[4].bufs[2] = runs[4].bufs[1];
	runs[4].bufs[1] = t;
	/* Block 0 of run 2 twice: its first key repeats in block 1. */
	t = runs[2].bufs[1];
	runs[2].bufs[1] = runs[2].bufs[0];
	assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
	assert_int_equal(j.bad_run, 2);
	assert_int_equal(j.bad_block, 1);
	runs[2].bufs[1] = t;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	/* A run whose third block holds "m" then "l" (the encoder does not check order). */
	struct trun bad;
	memset(&bad, 0, sizeof(bad));
	bad.e = calloc(8, sizeof(struct tent));
	assert_non_null(bad.e);
	static const char *const keys[] = { "a", "b", "c", "d", "m", "l", "n" };
	for (int i = 0; i < 7; i++) {
		struct tent *e = &bad.e[bad.n++];
		e->key[0] = (uint8_t)keys[i][0];
		e->klen = 1;
		e->val = pool_get();
		e->vlen = 16;
	}
	trun_encode(&bad, a, 64, 16); /* two 21-byte entries a block */
	assert_int_equal(bad.nblocks, 4);
	struct sl_accel_run ar2[6];
	memcpy(ar2, ar, sizeof(ar));
	ar2[5].blocks = bad.bufs;
	ar2[5].n_blocks = bad.nblocks;
	j.runs = ar2;
	j.n_runs = 6;
	assert_int_equal(sl__accel_merge(a, &j), SL_ECORRUPT);
	assert_int_equal(j.bad_run, 5);
	assert_int_equal(j.bad_block, 2);
	trun_free(&bad);
	tout_free(&o);
	for (int r = 0; r < 5; r++)
		trun_free(&runs[r]);
	sl__accel_close(a);
}

static void test_merge_einval(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	struct sl_accel_merge_job j, ok;
	memset(&ok, 0, sizeof(ok));
	struct tout o;
	tout_alloc(&o, &ok, 4096, 4, 64);
	struct sl_accel_run runs[SL_ACCEL_MAX_RUNS + 1];
	memset(runs, 0, sizeof(runs));
	struct sl_accel_buf nodata = { NULL, 100 };
	j = ok;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	j = ok;
	j.block_bytes = 63;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j.block_bytes = 64;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	j = ok;
	j.bits_per_key = 65;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j.bits_per_key = 64;
	assert_int_equal(sl__accel_merge(a, &j), 0);
	assert_int_equal(j.bloom_probes, sl__bloom_probes(64));
	j = ok;
	j.runs = runs;
	j.n_runs = SL_ACCEL_MAX_RUNS + 1;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j.n_runs = SL_ACCEL_MAX_RUNS; /* all empty */
	assert_int_equal(sl__accel_merge(a, &j), 0);
	j = ok;
	j.n_runs = 1; /* runs NULL */
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	j.flags = 1u << 5;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	j.lo_len = 3; /* lo NULL */
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	j.hi_len = 3;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	j.out = NULL;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	j.blocks = NULL;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	j.bloom = NULL;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	j = ok;
	runs[0].n_blocks = 1; /* blocks NULL */
	j.runs = runs;
	j.n_runs = 1;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	runs[0].blocks = &nodata;
	assert_int_equal(sl__accel_merge(a, &j), -EINVAL);
	tout_free(&o);
	sl__accel_close(a);
}

/* ---- The planner routing to a device ----------------------------------------------------------
 * No card is here, so the planner is asked to plan over the sim as if it were one, timed by its
 * modelled device time (config.plan_models, the GPU profile): it must find a crossover for the
 * merge, send a job below it to cpu and one above it to the device, both answering as cpu. */

/* A merge job over k runs drawn from a universe of about un keys; *bytes its input. */
static void planner_job(struct trun *runs, struct sl_accel_run *ar, size_t k, size_t un,
			struct sl_accel *cpu, struct sl_accel_merge_job *j, uint64_t *bytes)
{
	struct tent *u = universe(&un);
	memset(runs, 0, k * sizeof(*runs));
	for (size_t r = 0; r < k; r++) {
		make_run(&runs[r], u, un, 2, 0);
		trun_encode(&runs[r], cpu, 4096, 16);
	}
	free(u);
	memset(j, 0, sizeof(*j));
	job_runs(j, ar, runs, k);
	*bytes = 0;
	for (size_t r = 0; r < k; r++)
		for (size_t b = 0; b < runs[r].nblocks; b++)
			*bytes += runs[r].bufs[b].len;
}

static void test_planner_routes_to_device(void **state)
{
	(void)state;
	struct sl_accel *cpu = open_cpu();
	struct sl_accel_config cfg = { .sim_profile = "gpu", .plan_models = 1 };
	struct sl_accel *a = NULL;
	char why[200];
	assert_int_equal(sl__accel_open_cfg("auto", &cfg, &a, why, sizeof(why)), 0);
	const char *to = NULL;
	uint64_t from = sl__accel_auto_threshold(a, SL_ACCEL_OP_MERGE, &to);
	print_message("    merge: %s from %llu bytes\n", to, (unsigned long long)from);
	assert_string_equal(to, "sim");
	/* The GPU model merges at 8 GB/s behind a 24 GB/s link: it pays from tens of KiB. */
	assert_true(from > 0 && from < (4u << 20));
	struct trun small[1], big[4];
	struct sl_accel_run ars[1], arb[4];
	struct sl_accel_merge_job js, jb;
	uint64_t bs, bb;
	planner_job(small, ars, 1, 8, cpu, &js, &bs);
	size_t un = 2000;
	memset(big, 0, sizeof(big));
	do {
		truns_free(big, 4);
		planner_job(big, arb, 4, un, cpu, &jb, &bb);
		un *= 2;
	} while (bb < from);
	assert_true(bs < from); /* 8 keys: a few hundred bytes */
	assert_int_equal(merge_vs(a, cpu, &js, 1 << 16, 64, 1 << 12, NULL), 0);
	assert_int_equal(sl__accel_auto_routed(a, "cpu", SL_ACCEL_OP_MERGE), 1);
	assert_int_equal(sl__accel_auto_routed(a, "sim", SL_ACCEL_OP_MERGE), 0);
	size_t out = (size_t)bb * 2 + (1 << 16);
	assert_int_equal(merge_vs(a, cpu, &jb, out, out / 64, out / 4, NULL), 0);
	assert_int_equal(sl__accel_auto_routed(a, "cpu", SL_ACCEL_OP_MERGE), 1);
	assert_int_equal(sl__accel_auto_routed(a, "sim", SL_ACCEL_OP_MERGE), 1);
	truns_free(small, 1);
	truns_free(big, 4);
	sl__accel_close(a);
	/* Without plan_models the sim is never a member: everything stays on cpu. */
	cfg.plan_models = 0;
	assert_int_equal(sl__accel_open_cfg("auto", &cfg, &a, why, sizeof(why)), 0);
	assert_int_equal(sl__accel_auto_threshold(a, SL_ACCEL_OP_MERGE, &to) == UINT64_MAX ||
				 strcmp(to, "sim") != 0,
			 1);
	sl__accel_close(a);
	sl__accel_close(cpu);
}

int main(void)
{
	rng_state = 0x5eed;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_vectors),
		cmocka_unit_test(test_crc32c_batch_matches_reference),
		cmocka_unit_test(test_crc32c_batch_random_mixed),
		cmocka_unit_test(test_accel_open_by_name),
		cmocka_unit_test(test_accel_open_unknown_name),
		cmocka_unit_test(test_accel_close_null),
		cmocka_unit_test(test_merge_newest_wins_tombstones),
		cmocka_unit_test(test_merge_one_run_identity),
		cmocka_unit_test(test_merge_empty),
		cmocka_unit_test(test_merge_random_against_reference),
		cmocka_unit_test(test_merge_big_values_tiny_blocks),
		cmocka_unit_test(test_merge_threads),
		cmocka_unit_test(test_merge_corrupt_input_block),
		cmocka_unit_test(test_merge_corrupt_run_order),
		cmocka_unit_test(test_merge_einval),
		cmocka_unit_test(test_planner_routes_to_device),
	};
	int r = cmocka_run_group_tests_name("accel", tests, NULL, NULL);
	pool_free();
	return r;
}
