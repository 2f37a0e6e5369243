/* accel_inputs.c - inputs of merge jobs for the accelerator backend tests (see accel_inputs.h).
 * Test code only: it uses libc directly and fails by cmocka assertions.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "accel_inputs.h"
#include "block.h"
#include "bloom.h"
#include "sluice.h"

uint64_t rng_state;
int pool_words;
static uint8_t *vpool;

uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void fill_rnd(void *p, size_t n)
{
	uint8_t *b = p;
	for (; n >= 8; b += 8, n -= 8) {
		uint64_t v = rnd();
		memcpy(b, &v, 8);
	}
	for (; n; n--)
		*b++ = (uint8_t)rnd();
}
uint8_t *pool_get(void)
{
	if (!vpool) {
		vpool = malloc(POOL_BYTES);
		assert_non_null(vpool);
		if (pool_words)
			fill_rnd(vpool, POOL_BYTES);
		else
			for (size_t i = 0; i < POOL_BYTES; i++)
				vpool[i] = (uint8_t)rnd();
	}
	return vpool;
}

void pool_free(void)
{
	free(vpool);
	vpool = NULL;
}

int key_ref_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? (c < 0 ? -1 : 1) : (alen > blen) - (alen < blen);
}

int tent_cmp(const void *pa, const void *pb)
{
	const struct tent *a = pa, *b = pb;
	int c = key_ref_cmp(a->key, a->klen, b->key, b->klen);
	return c ? c : (a->run > b->run) - (a->run < b->run);
}

static void trun_seal(struct trun *r, struct sl_block_enc *enc, struct sl_accel *a)
{
	size_t body = sl__block_enc_finish(enc), len = body + 4;
	sl__block_put_u32(enc->buf + body, sl__accel_crc32c(a, enc->buf, body));
	size_t skew = 1 + rnd() % 7;
	uint8_t *m = malloc(len + skew);
	assert_non_null(m);
	memcpy(m + skew, enc->buf, len);
	r->mem[r->nblocks] = m;
	r->bufs[r->nblocks].data = m + skew;
	r->bufs[r->nblocks].len = len;
	r->nblocks++;
	sl__block_enc_reset(enc);
}

/* Encode r->e[0..n) with the codec into blocks of block_bytes (CRCs by the accelerator). */
void trun_encode(struct trun *r, struct sl_accel *a, uint32_t block_bytes, uint32_t interval)
{
	size_t cap = 64;
	for (size_t i = 0; i < r->n; i++)
		cap = r->e[i].vlen + 256 > cap ? r->e[i].vlen + 256 : cap;
	cap += block_bytes + 256;
	uint8_t *buf = malloc(cap);
	uint32_t *rs = malloc((r->n + 1) * sizeof(*rs));
	r->bufs = calloc(r->n + 1, sizeof(*r->bufs));
	r->mem = calloc(r->n + 1, sizeof(*r->mem));
	assert_true(buf && rs && r->bufs && r->mem);
	r->nblocks = 0;
	struct sl_block_enc enc;
	sl__block_enc_init(&enc, block_bytes, interval, buf, cap, rs, r->n + 1);
	for (size_t i = 0; i < r->n; i++) {
		const struct tent *t = &r->e[i];
		if (sl__block_enc_full(&enc, t->klen, t->vlen))
			trun_seal(r, &enc, a);
		assert_int_equal(
			sl__block_enc_add(&enc, t->key, t->klen, t->val, t->vlen, t->flags), 0);
	}
	if (enc.entries)
		trun_seal(r, &enc, a);
	free(buf);
	free(rs);
}

void trun_free(struct trun *r)
{
	for (size_t i = 0; i < r->nblocks; i++)
		free(r->mem[i]);
	free(r->mem);
	free(r->bufs);
	free(r->e);
	memset(r, 0, sizeof(*r));
}

void truns_free(struct trun *runs, size_t k)
{
	for (size_t r = 0; r < k; r++)
		trun_free(&runs[r]);
}

void job_runs(struct sl_accel_merge_job *j, struct sl_accel_run *ar, struct trun *runs, size_t k)
{
	for (size_t r = 0; r < k; r++) {
		ar[r].blocks = runs[r].bufs;
		ar[r].n_blocks = runs[r].nblocks;
	}
	j->runs = ar;
	j->n_runs = k;
}

/* A universe of n sorted distinct keys of 1..64 bytes that share prefixes. */
struct tent *universe(size_t *n)
{
	struct tent *u = calloc(*n + 1, sizeof(*u));
	assert_non_null(u);
	for (size_t i = 0; i < *n; i++) {
		size_t kl = rnd() % 4 ? 1 + rnd() % 24 : 1 + rnd() % SL_ACCEL_MAX_KEY;
		for (size_t b = 0; b < kl; b++)
			u[i].key[b] = b < 3 ? (uint8_t)('a' + rnd() % 3) : (uint8_t)rnd();
		u[i].klen = (uint8_t)kl;
	}
	qsort(u, *n, sizeof(*u), tent_cmp);
	size_t m = 0;
	for (size_t i = 0; i < *n; i++)
		if (!m || key_ref_cmp(u[m - 1].key, u[m - 1].klen, u[i].key, u[i].klen))
			u[m++] = u[i];
	*n = m;
	return u;
}

/* A run: each universe key with probability 1/every, a random value (now and then a big one)
 * and now and then a tombstone. */
void make_run(struct trun *r, const struct tent *u, size_t un, unsigned every, int big)
{
	uint8_t *pool = pool_get();
	int bigs = 0;
	r->e = calloc(un + 1, sizeof(*r->e));
	assert_non_null(r->e);
	r->n = 0;
	for (size_t i = 0; i < un; i++) {
		if (rnd() % every)
			continue;
		struct tent *t = &r->e[r->n++];
		*t = u[i];
		uint32_t v = rnd() % 16 ? (uint32_t)(rnd() % 60) : (uint32_t)(rnd() % 3000);
		/* Big values: at most two a run, or the outputs outgrow what a test should hold. */
		if (big && bigs < 2 && rnd() % 200 == 0) {
			v = bigs++ ? (uint32_t)(rnd() % (1u << 20)) : (1u << 20);
		}
		t->vlen = v;
		t->val = pool + rnd() % (POOL_BYTES - v + 1);
		t->flags = rnd() % 6 == 0 ? SL_ACCEL_TOMBSTONE : (uint8_t)(rnd() % 2 ? 0 : 0x80);
		if (t->flags & SL_ACCEL_TOMBSTONE && rnd() % 2)
			t->vlen = 0;
	}
}

const uint32_t block_sizes[6] = { 64, 100, 256, 1024, 4096, 65536 };

/* A bound: a universe key, a key between, or a random one. */
void pick_bound(const struct tent *u, size_t un, uint8_t *k, size_t *klen)
{
	const struct tent *t = &u[rnd() % un];
	memcpy(k, t->key, t->klen);
	*klen = t->klen;
	switch (rnd() % 3) {
	case 0:
		break;
	case 1: /* just above t */
		if (*klen < SL_ACCEL_MAX_KEY)
			k[(*klen)++] = 0;
		break;
	default: /* a prefix of t: below it */
		*klen = 1 + rnd() % t->klen;
		break;
	}
}

/* ---- Merge jobs on two backends side by side ---------------------------------------------- */

/* One job's output buffers, of the given capacities, filled with the same junk on both sides. */
void tout_alloc(struct tout *o, struct sl_accel_merge_job *j, size_t out, size_t blocks,
		       size_t bloom)
{
	o->out = out ? malloc(out) : NULL;
	o->blocks = blocks ? malloc(blocks * sizeof(*o->blocks)) : NULL;
	o->bloom = bloom ? malloc(bloom) : NULL;
	assert_true((!out || o->out) && (!blocks || o->blocks) && (!bloom || o->bloom));
	if (out)
		memset(o->out, 0x3C, out);
	if (blocks)
		memset(o->blocks, 0x5A, blocks * sizeof(*o->blocks));
	if (bloom)
		memset(o->bloom, 0xA5, bloom);
	j->out = o->out;
	j->out_cap = out;
	j->blocks = o->blocks;
	j->blocks_cap = blocks;
	j->bloom = o->bloom;
	j->bloom_cap = bloom;
}

void tout_free(struct tout *o)
{
	free(o->out);
	free(o->blocks);
	free(o->bloom);
	memset(o, 0, sizeof(*o));
}

int merge_vs(struct sl_accel *dev, struct sl_accel *ref, const struct sl_accel_merge_job *job,
	     size_t out, size_t blocks, size_t bloom, struct sl_accel_merge_job *res)
{
	struct sl_accel_merge_job a = *job, b = *job;
	struct tout oa, ob;
	tout_alloc(&oa, &a, out, blocks, bloom);
	tout_alloc(&ob, &b, out, blocks, bloom);
	/* Out values start as junk: both must write the same ones. */
	size_t from = offsetof(struct sl_accel_merge_job, out_len);
	memset((uint8_t *)&a + from, 0x77, sizeof(a) - from);
	memset((uint8_t *)&b + from, 0x77, sizeof(b) - from);
	int ra = sl__accel_merge(dev, &a), rb = sl__accel_merge(ref, &b);
	assert_int_equal(ra, rb);
	assert_int_equal(a.out_len, b.out_len);
	assert_int_equal(a.n_blocks, b.n_blocks);
	assert_int_equal(a.bloom_len, b.bloom_len);
	assert_int_equal(a.bloom_probes, b.bloom_probes);
	assert_int_equal(a.entries_in, b.entries_in);
	assert_int_equal(a.entries_out, b.entries_out);
	assert_int_equal(a.dropped_older, b.dropped_older);
	assert_int_equal(a.dropped_tombstones, b.dropped_tombstones);
	assert_int_equal(a.smallest_len, b.smallest_len);
	assert_int_equal(a.need_out, b.need_out);
	assert_int_equal(a.need_blocks, b.need_blocks);
	assert_int_equal(a.need_bloom, b.need_bloom);
	assert_int_equal(a.bad_run, b.bad_run);
	assert_int_equal(a.bad_block, b.bad_block);
	assert_memory_equal((uint8_t *)&a + from, (uint8_t *)&b + from, sizeof(a) - from);
	if (ra == 0) {
		if (a.out_len)
			assert_memory_equal(a.out, b.out, a.out_len);
		if (a.n_blocks)
			assert_memory_equal(a.blocks, b.blocks, a.n_blocks * sizeof(*a.blocks));
		assert_memory_equal(a.bloom, b.bloom, a.bloom_len);
	}
	if (res)
		*res = a;
	tout_free(&oa);
	tout_free(&ob);
	return ra;
}

void merge_vs_grow(struct sl_accel *dev, struct sl_accel *ref, const struct sl_accel_merge_job *job,
		   size_t out, size_t blocks, size_t bloom)
{
	struct sl_accel_merge_job r;
	int st = merge_vs(dev, ref, job, out, blocks, bloom, &r);
	if (st != -ENOSPC) {
		assert_int_equal(st, 0);
		return;
	}
	size_t need[3] = { r.need_out, r.need_blocks, r.need_bloom };
	int which = (int)(rnd() % 3);
	if (need[which]) {
		size_t s[3] = { need[0], need[1], need[2] };
		s[which]--;
		assert_int_equal(merge_vs(dev, ref, job, s[0], s[1], s[2], NULL), -ENOSPC);
	}
	assert_int_equal(merge_vs(dev, ref, job, need[0], need[1], need[2], NULL), 0);
}

/* ---- The merge job's comparisons, shared by the device backends' tests --------------------- */

void merge_vs_random_round(struct sl_accel *dev, struct sl_accel *ref, int round)
{
	size_t k = 1 + rnd() % 20, un = 20 + rnd() % 1200;
	struct tent *u = universe(&un);
	struct trun runs[20];
	struct sl_accel_run ar[20];
	memset(runs, 0, sizeof(runs));
	unsigned every = 1 + (unsigned)(rnd() % 6);
	for (size_t r = 0; r < k; r++) {
		make_run(&runs[r], u, un, rnd() % 8 == 0 ? 100000 : every, round % 6 == 0);
		trun_encode(&runs[r], ref, block_sizes[rnd() % N_BLOCK_SIZES],
			    1 + (uint32_t)(rnd() % 20));
	}
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, k);
	uint32_t bb = block_sizes[rnd() % N_BLOCK_SIZES];
	j.block_bytes = rnd() % 4 == 0 && bb == 4096 ? 0 : bb;
	j.restart_interval = rnd() % 4 ? (rnd() % 2 ? 0 : 16) : 1 + (uint32_t)(rnd() % 40);
	j.bits_per_key = rnd() % 3 ? (rnd() % 2 ? 0 : 10) : 1 + (uint32_t)(rnd() % 20);
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
	switch (rnd() % 3) {
	case 0:
		merge_vs_grow(dev, ref, &j, 0, 0, 0);
		break;
	case 1:
		merge_vs_grow(dev, ref, &j, 1 + rnd() % 5000, 1 + rnd() % 10, 64);
		break;
	default:
		merge_vs_grow(dev, ref, &j, 8 << 20, 70000, 1 << 16);
		break;
	}
	for (size_t r = 0; r < k; r++)
		trun_free(&runs[r]);
	free(u);
}

/* Named cases: newest wins and tombstones (kept, dropped), no runs, empty runs, nothing in
 * range, lo == hi, 256 runs, 1 MiB values in 64-byte blocks, and an output much larger than
 * its input (restart every entry over keys that shared 60 bytes), past the backend's first
 * estimate of the room it needs. */
void merge_vs_cases(struct sl_accel *dev, struct sl_accel *ref)
{
	struct sl_accel_merge_job j;
	memset(&j, 0, sizeof(j));
	merge_vs_grow(dev, ref, &j, 0, 0, 0);
	assert_int_equal(merge_vs(dev, ref, &j, 0, 0, 64, NULL), 0);

	size_t un = 300;
	struct tent *u = universe(&un);
	static struct trun runs[SL_ACCEL_MAX_RUNS];
	static struct sl_accel_run ar[SL_ACCEL_MAX_RUNS];
	memset(runs, 0, sizeof(runs));
	for (int r = 0; r < 5; r++) {
		/* Runs 0 and 3 empty, the rest dense: many duplicate keys. */
		make_run(&runs[r], u, un, r == 0 || r == 3 ? 1000000 : 1, 0);
		trun_encode(&runs[r], ref, 256, 4);
	}
	job_runs(&j, ar, runs, 5);
	for (int drop = 0; drop < 2; drop++) {
		j.flags = drop ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
		merge_vs_grow(dev, ref, &j, 1 << 20, 10000, 1 << 12);
		struct sl_accel_merge_job r;
		assert_int_equal(merge_vs(dev, ref, &j, 1 << 20, 10000, 1 << 12, &r), 0);
		assert_true(r.dropped_older > 0);
		assert_true(drop ? r.dropped_tombstones > 0 : r.dropped_tombstones == 0);
	}
	j.lo = u[un - 1].key;
	j.lo_len = u[un - 1].klen;
	merge_vs_grow(dev, ref, &j, 1 << 20, 10000, 1 << 12);
	j.lo = j.hi = u[un / 2].key;
	j.lo_len = j.hi_len = u[un / 2].klen;
	merge_vs_grow(dev, ref, &j, 1 << 20, 10000, 1 << 12);
	j.hi = u[un / 2 + 1].key;
	j.hi_len = u[un / 2 + 1].klen;
	merge_vs_grow(dev, ref, &j, 1 << 20, 10000, 1 << 12);
	j.lo_len = j.hi_len = 0;
	/* 256 runs, most of them empty. */
	for (int r = 5; r < SL_ACCEL_MAX_RUNS; r++) {
		make_run(&runs[r], u, un, r % 50 ? 1000000 : 3, 0);
		trun_encode(&runs[r], ref, 4096, 16);
	}
	job_runs(&j, ar, runs, SL_ACCEL_MAX_RUNS);
	merge_vs_grow(dev, ref, &j, 1 << 20, 10000, 1 << 12);
	for (int r = 0; r < SL_ACCEL_MAX_RUNS; r++)
		trun_free(&runs[r]);
	free(u);

	/* 1 MiB values, 64-byte blocks. */
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
		trun_encode(&runs[r], ref, 64, 1);
	}
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 3);
	j.block_bytes = 64;
	merge_vs_grow(dev, ref, &j, 1000, 2, 64);
	for (int r = 0; r < 3; r++)
		trun_free(&runs[r]);

	/* Output far larger than input. */
	runs[0].e = calloc(2000, sizeof(struct tent));
	assert_non_null(runs[0].e);
	for (int i = 0; i < 2000; i++) {
		struct tent *t = &runs[0].e[runs[0].n++];
		t->klen = SL_ACCEL_MAX_KEY;
		memset(t->key, 'p', 60);
		sl__block_put_u32(t->key + 60, __builtin_bswap32((uint32_t)i));
		t->val = pool;
	}
	trun_encode(&runs[0], ref, 65536, 1000);
	memset(&j, 0, sizeof(j));
	job_runs(&j, ar, runs, 1);
	j.restart_interval = 1;
	j.block_bytes = 256;
	struct sl_accel_merge_job r;
	assert_int_equal(merge_vs(dev, ref, &j, 1 << 20, 10000, 1 << 12, &r), 0);
	assert_true(r.out_len > 5 * runs[0].bufs[0].len);
	trun_free(&runs[0]);

	/* The refusals are the reference's. */
	struct sl_accel_buf nodata = { NULL, 100 };
	struct sl_accel_run bad_run = { &nodata, 1 };
	static const uint8_t key[] = "k";
	for (int c = 0; c < 9; c++) {
		memset(&j, 0, sizeof(j));
		switch (c) {
		case 0:
			j.block_bytes = 63;
			break;
		case 1:
			j.bits_per_key = 65;
			break;
		case 2:
			j.n_runs = SL_ACCEL_MAX_RUNS + 1;
			j.runs = ar;
			break;
		case 3:
			j.n_runs = 1;
			break;
		case 4:
			j.flags = 1u << 5;
			break;
		case 5:
			j.lo_len = 3;
			break;
		case 6:
			j.hi = key;
			j.hi_len = 0;
			j.runs = &bad_run;
			j.n_runs = 1;
			break;
		case 7:
			j.lo = key;
			j.lo_len = 1;
			j.bits_per_key = 64;
			break; /* valid */
		default:
			j.out_cap = 10;
			break; /* out NULL */
		}
		struct sl_accel_merge_job a = j, b = j;
		assert_int_equal(sl__accel_merge(dev, &a), sl__accel_merge(ref, &b));
		assert_memory_equal(&a, &b, sizeof(a));
	}
	assert_int_equal(sl__accel_merge(dev, NULL), -EINVAL);
}

/* Five runs of small blocks for the corruption tests. */
static void corrupt_setup(struct sl_accel *ref, struct trun *runs, struct sl_accel_run *ar,
			  struct sl_accel_merge_job *j)
{
	size_t un = 1500;
	struct tent *u = universe(&un);
	for (int r = 0; r < 5; r++) {
		make_run(&runs[r], u, un, 2, 0);
		trun_encode(&runs[r], ref, 256, 4);
		assert_true(runs[r].nblocks >= 4);
	}
	free(u);
	memset(j, 0, sizeof(*j));
	job_runs(j, ar, runs, 5);
}

/* Flipped bits anywhere in an input block, blocks too short, damage behind a valid CRC, blocks
 * swapped or repeated (keys out of order), damage past hi (never read): the same status, the
 * same bad_run and bad_block, the same counters. */
void merge_vs_corrupt(struct sl_accel *dev, struct sl_accel *ref, int rounds)
{
	struct trun runs[5];
	struct sl_accel_run ar[5];
	struct sl_accel_merge_job j;
	memset(runs, 0, sizeof(runs));
	corrupt_setup(ref, runs, ar, &j);
	for (int round = 0; round < rounds; round++) {
		size_t r = rnd() % 5, b = rnd() % runs[r].nblocks, len = runs[r].bufs[b].len;
		static const size_t fixed[] = { 0, 1, 8 };
		size_t at = round < 3 ? (round ? len - fixed[round] : 0) : rnd() % len;
		uint8_t *p = (uint8_t *)runs[r].bufs[b].data, bit = (uint8_t)(1u << (rnd() % 8));
		p[at] ^= bit;
		assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), SL_ECORRUPT);
		p[at] ^= bit;
	}
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), 0);
	size_t keep = runs[3].bufs[2].len;
	for (size_t len = 0; len < SL_BLOCK_MIN; len += 4) {
		runs[3].bufs[2].len = len;
		assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), SL_ECORRUPT);
	}
	runs[3].bufs[2].len = keep;
	/* An absurd restart count and an overlong value, each behind a valid CRC. */
	uint8_t *p = (uint8_t *)runs[1].bufs[1].data;
	size_t len = runs[1].bufs[1].len;
	uint8_t save[8];
	memcpy(save, p + len - 8, 8);
	sl__block_put_u32(p + len - 8, 0xFFFF);
	sl__block_put_u32(p + len - 4, sl__accel_crc32c(ref, p, len - 4));
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), SL_ECORRUPT);
	memcpy(p + len - 8, save, 8);
	uint8_t v = p[2];
	p[2] = 0x7f;
	sl__block_put_u32(p + len - 4, sl__accel_crc32c(ref, p, len - 4));
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), SL_ECORRUPT);
	p[2] = v;
	memcpy(p + len - 4, save + 4, 4);
	/* Blocks swapped; a block repeated. */
	struct sl_accel_buf t = runs[4].bufs[1];
	runs[4].bufs[1] = runs[4].bufs[2];
	runs[4].bufs[2] = t;
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), SL_ECORRUPT);
	runs[4].bufs[2] = runs[4].bufs[1];
	runs[4].bufs[1] = t;
	t = runs[2].bufs[1];
	runs[2].bufs[1] = runs[2].bufs[0];
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), SL_ECORRUPT);
	runs[2].bufs[1] = t;
	/* Blocks made by hand, each behind a valid CRC: a five-byte value length in range (an odd
	 * but valid varint), then past 32 bits; a key, then a value, one byte past the entries; a
	 * restart offset inside the entry (never met). */
	static const struct {
		uint8_t e[12], elen, nr, bad;
		uint32_t rs[2];
	} hand[] = {
		{ { 0, 1, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 'z' }, 9, 1, 0, { 0 } },
		{ { 0, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 'z' }, 9, 1, 1, { 0 } },
		{ { 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 'z' }, 9, 1, 1, { 0 } },
		{ { 0, 6, 0, 0, 'z', 0, 0, 0, 0 }, 9, 1, 1, { 0 } },
		{ { 0, 1, 5, 0, 'z', 1, 2, 3, 4 }, 9, 1, 1, { 0 } },
		{ { 0, 1, 4, 0, 'z', 1, 2, 3, 4 }, 9, 1, 0, { 0 } },
		{ { 0, 1, 4, 0, 'z', 1, 2, 3, 4 }, 9, 2, 1, { 0, 3 } },
	};
	for (size_t h = 0; h < sizeof(hand) / sizeof(hand[0]); h++) {
		uint8_t blk[40];
		size_t n = hand[h].elen;
		memcpy(blk, hand[h].e, n);
		for (int i = 0; i < hand[h].nr; i++, n += 4)
			sl__block_put_u32(blk + n, hand[h].rs[i]);
		sl__block_put_u32(blk + n, hand[h].nr);
		sl__block_put_u32(blk + n + 4, sl__accel_crc32c(ref, blk, n + 4));
		struct sl_accel_buf hb = { blk, n + 8 };
		struct sl_accel_run har[6];
		memcpy(har, ar, sizeof(ar));
		har[5] = (struct sl_accel_run){ &hb, 1 };
		struct sl_accel_merge_job hj = j;
		hj.runs = har;
		hj.n_runs = 6;
		struct sl_accel_merge_job r;
		assert_int_equal(merge_vs(dev, ref, &hj, 4 << 20, 40000, 1 << 16, &r),
				 hand[h].bad ? SL_ECORRUPT : 0);
		if (hand[h].bad)
			assert_int_equal(r.bad_run, 5);
	}
	/* Damage in run 0's last block, past hi: never read. */
	p = (uint8_t *)runs[0].bufs[runs[0].nblocks - 1].data;
	p[0] ^= 1;
	j.hi = runs[0].e[0].key;
	j.hi_len = runs[0].e[0].klen;
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, NULL), 0);
	j.hi_len = 0;
	struct sl_accel_merge_job r;
	assert_int_equal(merge_vs(dev, ref, &j, 4 << 20, 40000, 1 << 16, &r), SL_ECORRUPT);
	assert_int_equal(r.bad_run, 0);
	assert_int_equal(r.bad_block, runs[0].nblocks - 1);
	p[0] ^= 1;
	for (int i = 0; i < 5; i++)
		trun_free(&runs[i]);
}

/* ---- CRC32C and bloom filters, a device backend against a reference --------------------------- */

void crc_vs(struct sl_accel *dev, struct sl_accel *ref, const struct sl_accel_buf *b, size_t n)
{
	uint32_t *x = malloc((n + 1) * 4), *y = malloc((n + 1) * 4);
	assert_true(x && y);
	memset(x, 0x11, (n + 1) * 4);
	memset(y, 0x11, (n + 1) * 4);
	assert_int_equal(sl__accel_crc32c_batch(dev, b, n, x), 0);
	assert_int_equal(sl__accel_crc32c_batch(ref, b, n, y), 0);
	assert_memory_equal(x, y, (n + 1) * 4);
	free(x);
	free(y);
}

void crc_vs_cases(struct sl_accel *dev, struct sl_accel *ref, int rounds)
{
	size_t big = (1u << 20) + 4099;
	uint8_t *data = malloc(big + 64);
	assert_non_null(data);
	for (size_t i = 0; i < big + 64; i++)
		data[i] = (uint8_t)rnd();
	/* The check value, empty and NULL buffers, one byte, unaligned odd lengths across the
	 * chunk size, one buffer of a MiB and more. */
	struct sl_accel_buf fixed[] = {
		{ "123456789", 9 }, { NULL, 0 },	{ data + 1, 1 },
		{ data + 3, 2047 }, { data + 5, 2048 }, { data + 7, 2049 },
		{ data + 9, 4097 }, { data + 11, big }, { data, 0 },
	};
	crc_vs(dev, ref, fixed, sizeof(fixed) / sizeof(fixed[0]));
	uint32_t c;
	assert_int_equal(sl__accel_crc32c_batch(dev, fixed, 1, &c), 0);
	assert_int_equal(c, 0xE3069283u);
	crc_vs(dev, ref, fixed, 0);
	/* Random batches, one large (20000 small buffers, as a commit of log records is). */
	for (int round = 0; round < rounds; round++) {
		size_t n = round == 0 ? 20000 : 1 + rnd() % 300;
		struct sl_accel_buf *b = malloc(n * sizeof(*b));
		assert_non_null(b);
		for (size_t i = 0; i < n; i++) {
			size_t len = rnd() % 8 == 0 ? rnd() % 20000 : rnd() % 80;
			b[i].len = len;
			b[i].data = data + rnd() % (big - len);
		}
		crc_vs(dev, ref, b, n);
		free(b);
	}
	free(data);
}

void bloom_build_vs(struct sl_accel *dev, struct sl_accel *ref, int rounds)
{
	for (int round = 0; round < rounds; round++) {
		size_t n = round == 0 ? 0 : round == 1 ? 1 : rnd() % 5000;
		size_t size = SL_BLOOM_BLOCK * (round == 2 ? 1 : 1 + rnd() % 300);
		uint32_t k = round < 4 ? (round == 3 ? 64 : 1) : 1 + (uint32_t)(rnd() % 20);
		uint64_t *h = malloc((n + 1) * 8);
		uint8_t *x = malloc(size), *y = malloc(size);
		assert_true(h && x && y);
		for (size_t i = 0; i < n; i++)
			h[i] = rnd();
		/* Bits already set stay set. */
		for (size_t i = 0; i < size; i++)
			x[i] = y[i] = rnd() % 4 ? 0 : (uint8_t)rnd();
		assert_int_equal(sl__accel_bloom_build(dev, h, n, k, x, size), 0);
		assert_int_equal(sl__accel_bloom_build(ref, h, n, k, y, size), 0);
		assert_memory_equal(x, y, size);
		free(h);
		free(x);
		free(y);
	}
	/* The refusals are cpu's. */
	uint64_t h = 1;
	uint8_t f[128] = { 0 };
	static const struct {
		size_t n, size;
		uint32_t k;
		int null_h, null_f;
	} bad[] = {
		{ 1, 100, 6, 0, 0 }, { 1, 128, 0, 0, 0 }, { 1, 128, 65, 0, 0 },
		{ 1, 128, 6, 1, 0 }, { 1, 128, 6, 0, 1 }, { 0, 0, 6, 1, 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const uint64_t *hp = bad[i].null_h ? NULL : &h;
		uint8_t *fp = bad[i].null_f ? NULL : f;
		assert_int_equal(
			sl__accel_bloom_build(dev, hp, bad[i].n, bad[i].k, fp, bad[i].size),
			sl__accel_bloom_build(ref, hp, bad[i].n, bad[i].k, fp, bad[i].size));
	}
}

void bloom_probe_vs(struct sl_accel *dev, struct sl_accel *ref, int rounds)
{
	enum { NF = 7 };
	struct sl_accel_filter f[NF];
	uint8_t *bits[NF];
	uint64_t *keys[NF];
	size_t nkeys[NF];
	for (int i = 0; i < NF; i++) {
		/* Sizes 0 and 32 (below a block: rule nothing out), k 0 (likewise), a 4-block
		 * filter with a ragged tail, then ordinary ones. */
		size_t size = i == 0   ? 0
			      : i == 1 ? 32
			      : i == 3 ? 4 * 64 + 17
				       : 64 * (1 + rnd() % 200);
		nkeys[i] = 50 + rnd() % 2000;
		bits[i] = calloc(1, size + 1);
		keys[i] = malloc(nkeys[i] * 8);
		assert_true(bits[i] && keys[i]);
		f[i] = (struct sl_accel_filter){ bits[i], size,
						 i == 2 ? 0 : 1 + (uint32_t)(rnd() % 12) };
		for (size_t j = 0; j < nkeys[i]; j++)
			keys[i][j] = rnd();
		if (size >= 64)
			sl__bloom_add(bits[i], size / 64 * 64, keys[i], nkeys[i],
				      f[i].k ? f[i].k : 1);
	}
	for (int round = 0; round < rounds; round++) {
		size_t n = round == 0 ? 1 : rnd() % 6000;
		uint64_t *h = malloc((n + 1) * 8);
		uint32_t *which = malloc((n + 1) * 4);
		uint8_t *x = malloc(n + 1), *y = malloc(n + 1);
		assert_true(h && which && x && y);
		for (size_t i = 0; i < n; i++) {
			which[i] = (uint32_t)(rnd() % NF);
			/* Half present keys, half random ones. */
			h[i] = rnd() % 2 ? keys[which[i]][rnd() % nkeys[which[i]]] : rnd();
		}
		const uint32_t *w = round % 3 == 0 ? NULL : which;
		const struct sl_accel_filter *ff = w ? f : &f[3 + round % 4];
		memset(x, 7, n + 1);
		memset(y, 7, n + 1);
		assert_int_equal(sl__accel_bloom_probe(dev, ff, w ? NF : 1, w, h, n, x), 0);
		assert_int_equal(sl__accel_bloom_probe(ref, ff, w ? NF : 1, w, h, n, y), 0);
		assert_memory_equal(x, y, n + 1);
		/* A which[] past the filters: -EINVAL, nothing written. */
		if (n) {
			which[n / 2] = NF;
			assert_int_equal(sl__accel_bloom_probe(dev, f, NF, which, h, n, x),
					 -EINVAL);
			assert_int_equal(sl__accel_bloom_probe(ref, f, NF, which, h, n, y),
					 -EINVAL);
			assert_memory_equal(x, y, n + 1);
		}
		free(h);
		free(which);
		free(x);
		free(y);
	}
	uint8_t o;
	uint64_t h = 5;
	assert_int_equal(sl__accel_bloom_probe(dev, f, 0, NULL, &h, 1, &o), -EINVAL);
	assert_int_equal(sl__accel_bloom_probe(dev, NULL, 1, NULL, &h, 1, &o), -EINVAL);
	assert_int_equal(sl__accel_bloom_probe(dev, f, 1, NULL, NULL, 1, &o), -EINVAL);
	assert_int_equal(sl__accel_bloom_probe(dev, f, 1, NULL, &h, 0, &o), 0);
	for (int i = 0; i < NF; i++) {
		free(bits[i]);
		free(keys[i]);
	}
}
