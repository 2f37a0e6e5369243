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
