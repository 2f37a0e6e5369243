/* test_block.c - unit tests of the data block codec: exact bytes of a small block, round trips
 * of random entries through the encoder (cut exactly where the rule says) and the iterator, the
 * restart points, the measuring (dry) mode against the writing one, the encoder's refusals, the
 * restart search, and malformed blocks (bad counts, offsets, lengths, truncated varints, keys
 * out of order, random damage) refused without a crash (run it under ASan). The layout is
 * re-derived here from block.h's comment. Links block.o and err.o only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "block.h"

/* splitmix64: fixed seeds make every failure reproducible. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static int ref_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? (c < 0 ? -1 : 1) : (alen > blen) - (alen < blen);
}

/* ---- The model ---------------------------------------------------------------------------- */

struct ent {
	uint8_t key[SL_BLOCK_MAX_KEY];
	uint8_t klen;
	uint8_t flags;
	uint32_t vlen;
	const uint8_t *val; /* into a shared pool of random bytes */
};

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	return ref_cmp(x->key, x->klen, y->key, y->klen);
}

static uint8_t pool[1 << 17];

/* n sorted, distinct entries (n may shrink); keys share prefixes, values 0..max_v bytes. */
static struct ent *model(size_t *n, uint64_t seed, size_t max_k, size_t max_v)
{
	uint64_t s = seed;
	for (size_t i = 0; i < sizeof(pool); i++)
		pool[i] = (uint8_t)rnd_next(&s);
	struct ent *e = calloc(*n ? *n : 1, sizeof(*e));
	assert_non_null(e);
	for (size_t i = 0; i < *n; i++) {
		size_t kl = 1 + rnd_next(&s) % max_k;
		for (size_t j = 0; j < kl; j++)
			e[i].key[j] =
				j < 4 ? (uint8_t)('a' + rnd_next(&s) % 2) : (uint8_t)rnd_next(&s);
		e[i].klen = (uint8_t)kl;
		e[i].vlen = (uint32_t)(rnd_next(&s) % (max_v + 1));
		e[i].val = pool + rnd_next(&s) % (sizeof(pool) - e[i].vlen);
		e[i].flags = (uint8_t)rnd_next(&s);
	}
	qsort(e, *n, sizeof(*e), ent_cmp);
	size_t m = 0;
	for (size_t i = 0; i < *n; i++)
		if (!m || ent_cmp(&e[m - 1], &e[i]))
			e[m++] = e[i];
	*n = m;
	return e;
}

/* Entries encoded as blocks, cut where the codec says: blocks back to back in buf. */
struct encoded {
	uint8_t *buf;
	size_t len;
	size_t nblocks;
	size_t *off, *blen; /* per block */
	size_t *first;	    /* per block: index of its first entry */
};

static void encode_all(const struct ent *e, size_t n, uint32_t block_bytes, uint32_t interval,
		       struct encoded *out)
{
	size_t cap = 64;
	for (size_t i = 0; i < n; i++)
		cap += e[i].vlen + 2 * SL_BLOCK_MAX_KEY + 64;
	out->buf = malloc(cap);
	out->off = calloc(n + 1, sizeof(size_t));
	out->blen = calloc(n + 1, sizeof(size_t));
	out->first = calloc(n + 1, sizeof(size_t));
	assert_true(out->buf && out->off && out->blen && out->first);
	uint32_t *restarts = calloc(n + 1, sizeof(uint32_t));
	assert_non_null(restarts);
	struct sl_block_enc enc;
	sl__block_enc_init(&enc, block_bytes, interval, out->buf, cap, restarts, n + 1);
	size_t at = 0;
	out->nblocks = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n ? enc.entries > 0 : sl__block_enc_full(&enc, e[i].klen, e[i].vlen)) {
			size_t body = sl__block_enc_finish(&enc);
			sl__block_put_u32(enc.buf + body, 0xC0FFEE00u + (uint32_t)out->nblocks);
			out->off[out->nblocks] = at;
			out->blen[out->nblocks] = body + 4;
			out->nblocks++;
			at += body + 4;
			sl__block_enc_reset(&enc);
			enc.buf = out->buf + at;
			enc.cap = cap - at;
		}
		if (i == n)
			break;
		if (enc.entries == 0)
			out->first[out->nblocks] = i;
		assert_int_equal(sl__block_enc_add(&enc, e[i].key, e[i].klen, e[i].val, e[i].vlen,
						   e[i].flags),
				 0);
	}
	out->first[out->nblocks] = n;
	out->len = at;
	free(restarts);
}

static void encoded_free(struct encoded *x)
{
	free(x->buf);
	free(x->off);
	free(x->blen);
	free(x->first);
}

/* Decode one varint the plain way (the test's own reading of the layout). */
static uint32_t rd_varint(const uint8_t *p, size_t *at)
{
	uint32_t v = 0;
	for (int sh = 0;; sh += 7) {
		uint8_t c = p[(*at)++];
		v |= (uint32_t)(c & 0x7f) << sh;
		if (!(c & 0x80))
			return v;
	}
}

/* ---- Exact bytes -------------------------------------------------------------------------- */

static void test_block_enc_exact_bytes(void **state)
{
	(void)state;
	uint8_t buf[128];
	uint32_t rs[4];
	struct sl_block_enc enc;
	memset(buf, 0xEE, sizeof(buf));
	sl__block_enc_init(&enc, 4096, 2, buf, sizeof(buf), rs, 4);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"apple", 5, "12", 2, 0), 0);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"apply", 5, "", 0, 1), 0);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"b", 1, "xyz", 3, 0x80), 0);
	/* 200 bytes of value: a two-byte varint. */
	static uint8_t big[200];
	memset(big, 'v', sizeof(big));
	uint8_t ck[2] = { 'b', 0 };
	uint8_t buf2[512];
	uint32_t rs2[4];
	struct sl_block_enc enc2;
	sl__block_enc_init(&enc2, 4096, 2, buf2, sizeof(buf2), rs2, 4);
	assert_int_equal(sl__block_enc_add(&enc2, (const uint8_t *)"b", 1, "", 0, 0), 0);
	assert_int_equal(sl__block_enc_add(&enc2, ck, 2, big, 200, 0), 0);
	size_t body2 = sl__block_enc_finish(&enc2);
	static const uint8_t want2_head[] = { 0, 1, 0, 0, 'b', 1, 1, 0xC8, 0x01, 0, 0 };
	assert_memory_equal(buf2, want2_head, sizeof(want2_head));
	assert_int_equal(body2, 5 + 6 + 200 + 4 + 4);

	size_t body = sl__block_enc_finish(&enc);
	static const uint8_t want[] = {
		0, 5, 2, 0,    'a', 'p', 'p', 'l', 'e', '1', '2', /* restart 0 at 0 */
		4, 1, 0, 1,    'y',				  /* shares "appl" */
		0, 1, 3, 0x80, 'b', 'x', 'y', 'z',		  /* restart 1 at 16 */
		0, 0, 0, 0,    16,  0,	 0,   0,		  /* restart offsets */
		2, 0, 0, 0,					  /* their count */
	};
	assert_int_equal(body, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(buf[body], 0xEE); /* the CRC is the caller's */
	assert_int_equal(enc.entries, 3);
	assert_int_equal(enc.nrestarts, 2);
	assert_int_equal(enc.last_len, 1);
	assert_memory_equal(enc.last, "b", 1);
	/* reset starts a new block with its whole key, and keeps the last key. */
	sl__block_enc_reset(&enc);
	assert_int_equal(enc.len, 0);
	assert_int_equal(enc.entries, 0);
	assert_int_equal(enc.last_len, 1);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"bb", 2, "", 0, 0), 0);
	static const uint8_t want3[] = { 0, 2, 0, 0, 'b', 'b' };
	assert_memory_equal(buf, want3, sizeof(want3));
}

/* ---- Round trips -------------------------------------------------------------------------- */

/* Every block of an encoding: parse, walk with order checks, entries equal to the model, the
 * restart points every interval entries with whole keys, and the block sizes by the rule. */
static void check_encoded(const struct ent *e, size_t n, uint32_t block_bytes, uint32_t interval,
			  const struct encoded *x)
{
	struct sl_block_iter it;
	it.klen = 0;
	size_t i = 0;
	for (size_t b = 0; b < x->nblocks; b++) {
		const uint8_t *p = x->buf + x->off[b];
		size_t len = x->blen[b];
		struct sl_block blk;
		assert_int_equal(sl__block_parse(&blk, p, len), 0);
		assert_int_equal(le32(p + len - 4), 0xC0FFEE00u + (uint32_t)b);
		size_t count = x->first[b + 1] - x->first[b];
		assert_true(count > 0);
		/* Blocks stay within block_bytes unless they hold one entry. */
		if (count > 1)
			assert_true(len <= block_bytes);
		/* And a block was cut only because its next entry would not have fitted. */
		if (b + 1 < x->nblocks) {
			const struct ent *nx = &e[x->first[b + 1]];
			size_t esz = 1 + sl__block_varint_len(nx->klen) +
				     sl__block_varint_len(nx->vlen) + 1 + nx->klen + nx->vlen;
			assert_true(blk.data_end + esz + 4 * ((size_t)blk.nrestarts + 1) + 8 >
				    block_bytes);
		}
		assert_int_equal(blk.nrestarts, (count + interval - 1) / interval);
		assert_int_equal(blk.data_end + 4 * blk.nrestarts + 8, len);
		sl__block_iter_start(&it, &blk, 0, SL_BLOCK_ITER_ORDER);
		size_t j = 0;
		int r;
		while ((r = sl__block_iter_next(&it)) > 0) {
			const struct ent *m = &e[i];
			if (j % interval == 0) {
				/* A restart point, listed, with a whole key. */
				uint32_t off = sl__block_restart(&blk, (uint32_t)(j / interval));
				size_t at = off;
				assert_int_equal(rd_varint(p, &at), 0);
				assert_int_equal(rd_varint(p, &at), m->klen);
			}
			assert_int_equal(it.klen, m->klen);
			assert_memory_equal(it.key, m->key, m->klen);
			assert_int_equal(it.vlen, m->vlen);
			if (m->vlen)
				assert_memory_equal(it.val, m->val, m->vlen);
			assert_int_equal(it.flags, m->flags);
			i++;
			j++;
		}
		assert_int_equal(r, 0);
		assert_int_equal(j, count);
		/* Past the end it stays at the end. */
		assert_int_equal(sl__block_iter_next(&it), 0);
	}
	assert_int_equal(i, n);
}

static void test_block_round_trip_random(void **state)
{
	(void)state;
	static const uint32_t blocks[] = { 64, 100, 512, 4096, 65536 };
	static const uint32_t intervals[] = { 1, 2, 3, 16, 1000 };
	uint64_t seed = 1;
	for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++) {
		for (size_t r = 0; r < sizeof(intervals) / sizeof(intervals[0]); r++) {
			size_t n = 1500;
			struct ent *e = model(&n, seed++, SL_BLOCK_MAX_KEY, r % 2 ? 300 : 40);
			struct encoded x;
			encode_all(e, n, blocks[b], intervals[r], &x);
			check_encoded(e, n, blocks[b], intervals[r], &x);
			encoded_free(&x);
			free(e);
		}
	}
}

/* The measuring mode counts exactly what the writing mode writes. */
static void test_block_enc_dry_matches(void **state)
{
	(void)state;
	size_t n = 3000;
	struct ent *e = model(&n, 77, 40, 2000);
	static uint8_t buf[1 << 16];
	uint32_t rs[1024];
	struct sl_block_enc w, d;
	sl__block_enc_init(&w, 4096, 5, buf, sizeof(buf), rs, 1024);
	sl__block_enc_init(&d, 4096, 5, NULL, 0, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sl__block_enc_full(&w, e[i].klen, e[i].vlen),
				 sl__block_enc_full(&d, e[i].klen, e[i].vlen));
		if (sl__block_enc_full(&w, e[i].klen, e[i].vlen)) {
			size_t a = sl__block_enc_finish(&w), b2 = sl__block_enc_finish(&d);
			assert_int_equal(a, b2);
			sl__block_enc_reset(&w);
			sl__block_enc_reset(&d);
		}
		assert_int_equal(sl__block_enc_add(&w, e[i].key, e[i].klen, e[i].val, e[i].vlen, 0),
				 0);
		assert_int_equal(sl__block_enc_add(&d, e[i].key, e[i].klen, e[i].val, e[i].vlen, 0),
				 0);
		assert_int_equal(w.len, d.len);
		assert_int_equal(w.nrestarts, d.nrestarts);
	}
	free(e);
}

/* The cut rule at its edge: with block_bytes 64, entries of 1-byte keys and v-byte values. */
static void test_block_enc_full_edge(void **state)
{
	(void)state;
	uint8_t buf[4096];
	uint32_t rs[64];
	struct sl_block_enc enc;
	sl__block_enc_init(&enc, 64, 16, buf, sizeof(buf), rs, 64);
	/* An empty block takes anything, however large. */
	assert_false(sl__block_enc_full(&enc, 64, 1u << 20));
	assert_int_equal(sl__block_enc_need(&enc, 1, 10), 0 + 15 + 4 + 8);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"a", 1, pool, 10, 0), 0);
	/* Now len 15, one restart: an entry of bound 1+1+1+1+1+v fits while
	 * 15 + (5 + v) + 4 * 2 + 8 <= 64, i.e. v <= 28. */
	assert_int_equal(enc.len, 15);
	assert_false(sl__block_enc_full(&enc, 1, 28));
	assert_true(sl__block_enc_full(&enc, 1, 29));
	/* A value of 128 bytes takes a two-byte varint in the bound. */
	assert_int_equal(sl__block_entry_bound(1, 127), 1 + 1 + 1 + 1 + 1 + 127);
	assert_int_equal(sl__block_entry_bound(1, 128), 1 + 1 + 2 + 1 + 1 + 128);
	assert_int_equal(sl__block_entry_bound(64, 1u << 20), 1 + 1 + 3 + 1 + 64 + (1u << 20));
	/* Filled to the edge, the block comes out within 64 bytes: entries, one restart (the rule
	 * reserved a second), count, CRC. */
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"b", 1, pool, 28, 0), 0);
	assert_int_equal(sl__block_enc_finish(&enc) + 4, 15 + 33 + 4 + 4 + 4);
}

/* The encoder's refusals leave it as it was. */
static void test_block_enc_refusals(void **state)
{
	(void)state;
	uint8_t buf[64];
	uint32_t rs[1];
	struct sl_block_enc enc;
	sl__block_enc_init(&enc, 4096, 1, buf, sizeof(buf), rs, 1);
	uint8_t k[SL_BLOCK_MAX_KEY + 1];
	memset(k, 'k', sizeof(k));
	assert_int_equal(sl__block_enc_add(&enc, k, 0, "", 0, 0), -SL_BLOCK_EARG);
	assert_int_equal(sl__block_enc_add(&enc, k, SL_BLOCK_MAX_KEY + 1, "", 0, 0),
			 -SL_BLOCK_EARG);
	/* Exactly full: 4 + 1 + 47 (entry) + 4 (restart) + 8 = 64 bytes with the CRC. */
	assert_int_equal(sl__block_enc_add(&enc, k, 1, pool, 48, 0), -SL_BLOCK_ESPACE);
	assert_int_equal(enc.len, 0);
	assert_int_equal(enc.entries, 0);
	assert_int_equal(sl__block_enc_add(&enc, k, 1, pool, 47, 0), 0);
	assert_int_equal(sl__block_enc_finish(&enc) + 4, 64);
	/* Restart slots: interval 1, one slot. */
	sl__block_enc_reset(&enc);
	enc.cap = sizeof(buf);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"a", 1, "", 0, 0), 0);
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"b", 1, "", 0, 0),
			 -SL_BLOCK_ERESTARTS);
	assert_int_equal(enc.entries, 1);
	assert_int_equal(enc.nrestarts, 1);
	assert_memory_equal(enc.last, "a", 1);
	/* Grown (moved), it goes on. */
	uint32_t rs2[2];
	rs2[0] = rs[0];
	enc.restarts = rs2;
	enc.restarts_cap = 2;
	assert_int_equal(sl__block_enc_add(&enc, (const uint8_t *)"b", 1, "", 0, 0), 0);
	assert_int_equal(sl__block_enc_finish(&enc), 5 + 5 + 8 + 4);
	assert_int_equal(le32(buf + 10), 0);
	assert_int_equal(le32(buf + 14), 5);
	assert_int_equal(le32(buf + 18), 2);
	/* The measuring mode never runs out of anything. */
	struct sl_block_enc d;
	sl__block_enc_init(&d, 64, 1, NULL, 0, NULL, 0);
	for (int i = 0; i < 100; i++) {
		uint8_t key[2] = { 'a', (uint8_t)i };
		assert_int_equal(sl__block_enc_add(&d, key, 2, pool, 1000, 0), 0);
	}
	assert_int_equal(d.nrestarts, 100);
	assert_int_equal(sl__block_enc_finish(&d), 100 * (1 + 1 + 2 + 1 + 2 + 1000) + 400 + 4);
}

/* ---- Restart search ----------------------------------------------------------------------- */

static void test_block_seek_restart(void **state)
{
	(void)state;
	size_t n = 400;
	struct ent *e = model(&n, 5, 24, 8);
	struct encoded x;
	encode_all(e, n, 1u << 20, 4, &x);
	assert_int_equal(x.nblocks, 1);
	struct sl_block blk;
	assert_int_equal(sl__block_parse(&blk, x.buf, x.blen[0]), 0);
	for (size_t i = 0; i < n; i++) {
		uint32_t idx = 99999;
		assert_int_equal(sl__block_seek_restart(&blk, e[i].key, e[i].klen, &idx), 0);
		assert_int_equal(idx, i / 4);
		/* From there, a walk meets the key. */
		struct sl_block_iter it;
		it.klen = 0;
		sl__block_iter_start(&it, &blk, idx, SL_BLOCK_ITER_ORDER);
		for (size_t j = idx * 4; j <= i; j++)
			assert_int_equal(sl__block_iter_next(&it), 1);
		assert_int_equal(it.klen, e[i].klen);
		assert_memory_equal(it.key, e[i].key, e[i].klen);
	}
	/* Below the first key: restart 0. Above the last: the last restart. */
	uint32_t idx;
	assert_int_equal(sl__block_seek_restart(&blk, (const uint8_t *)"\0", 1, &idx), 0);
	assert_int_equal(idx, 0);
	uint8_t top[SL_BLOCK_MAX_KEY];
	memset(top, 0xff, sizeof(top));
	assert_int_equal(sl__block_seek_restart(&blk, top, sizeof(top), &idx), 0);
	assert_int_equal(idx, blk.nrestarts - 1);
	/* A restart offset past the entries, or into the middle of one: refused. */
	uint8_t *copy = malloc(x.blen[0]);
	assert_non_null(copy);
	memcpy(copy, x.buf, x.blen[0]);
	struct sl_block cb;
	assert_int_equal(sl__block_parse(&cb, copy, x.blen[0]), 0);
	uint32_t mid = cb.nrestarts / 2;
	put32(copy + cb.data_end + 4 * mid, cb.data_end + 7);
	assert_int_equal(sl__block_seek_restart(&cb, e[n / 2].key, e[n / 2].klen, &idx),
			 -SL_BLOCK_ERESTART);
	put32(copy + cb.data_end + 4 * mid, sl__block_restart(&blk, mid) + 1);
	int r = sl__block_seek_restart(&cb, e[n / 2].key, e[n / 2].klen, &idx);
	assert_true(r == -SL_BLOCK_ERESTART || r == 0);
	free(copy);
	encoded_free(&x);
	free(e);
}

/* ---- Malformed blocks --------------------------------------------------------------------- */

/* A walk over the block from its start: 0 at a clean end, else the first error. */
static int walk(const uint8_t *p, size_t len, uint32_t opts)
{
	struct sl_block blk;
	int r = sl__block_parse(&blk, p, len);
	if (r < 0)
		return r;
	struct sl_block_iter it;
	it.klen = 0;
	sl__block_iter_start(&it, &blk, 0, opts);
	size_t steps = 0;
	while ((r = sl__block_iter_next(&it)) > 0)
		assert_true(++steps <= len); /* every entry advances by at least a byte */
	return r;
}

/* A heap copy of exactly len bytes, so ASan sees any read past the block. */
static uint8_t *dup_block(const uint8_t *p, size_t len)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	memcpy(b, p, len);
	return b;
}

static void test_block_parse_rejects(void **state)
{
	(void)state;
	uint8_t b[64];
	memset(b, 0, sizeof(b));
	struct sl_block blk;
	/* Too short for one entry, a restart and the trailer. */
	for (size_t len = 0; len < SL_BLOCK_MIN; len++)
		assert_int_equal(sl__block_parse(&blk, b, len), -SL_BLOCK_ESIZE);
	/* Count 0, and counts that leave no room for an entry. */
	put32(b + 64 - 8, 0);
	assert_int_equal(sl__block_parse(&blk, b, 64), -SL_BLOCK_ECOUNT);
	put32(b + 64 - 8, (64 - 8 - 5) / 4 + 1);
	assert_int_equal(sl__block_parse(&blk, b, 64), -SL_BLOCK_ECOUNT);
	put32(b + 64 - 8, UINT32_MAX);
	assert_int_equal(sl__block_parse(&blk, b, 64), -SL_BLOCK_ECOUNT);
	/* The largest count that fits parses (its entries are another matter). */
	put32(b + 64 - 8, (64 - 8 - 5) / 4);
	assert_int_equal(sl__block_parse(&blk, b, 64), 0);
	assert_int_equal(blk.data_end, 64 - 8 - 4 * ((64 - 8 - 5) / 4));
	/* restart[0] must be 0. */
	put32(b + 64 - 8, 1);
	put32(b + 64 - 12, 3);
	assert_int_equal(sl__block_parse(&blk, b, 64), -SL_BLOCK_EFIRST);
	put32(b + 64 - 12, 0);
	assert_int_equal(sl__block_parse(&blk, b, 64), 0);
	assert_int_equal(blk.nrestarts, 1);
	assert_int_equal(blk.data_end, 52);
	assert_string_equal(sl__block_strerror(-SL_BLOCK_ECOUNT),
			    "bad restart count in data block");
	assert_string_equal(sl__block_strerror(SL_BLOCK_EORDER), "keys not increasing");
	assert_string_equal(sl__block_strerror(12345), "unknown data block error");
}

/* Build "entries | restarts | count | crc" from raw entry bytes. */
static size_t raw_block(uint8_t *out, const uint8_t *ents, size_t elen, const uint32_t *rs,
			size_t nr)
{
	memcpy(out, ents, elen);
	for (size_t i = 0; i < nr; i++)
		put32(out + elen + 4 * i, rs[i]);
	put32(out + elen + 4 * nr, (uint32_t)nr);
	put32(out + elen + 4 * nr + 4, 0);
	return elen + 4 * nr + 8;
}

static void expect_walk(const uint8_t *ents, size_t elen, const uint32_t *rs, size_t nr,
			uint32_t opts, int want)
{
	uint8_t tmp[512];
	size_t len = raw_block(tmp, ents, elen, rs, nr);
	uint8_t *b = dup_block(tmp, len);
	assert_int_equal(walk(b, len, opts), want);
	free(b);
}

static void test_block_iter_rejects(void **state)
{
	(void)state;
	static const uint32_t r0[] = { 0 }, r05[] = { 0, 5 }, r06[] = { 0, 6 }, r03[] = { 0, 3 };
	/* Sound: "ab" then "ac" sharing one byte. */
	static const uint8_t ok[] = { 0, 2, 0, 0, 'a', 'b', 1, 1, 0, 0, 'c' };
	expect_walk(ok, sizeof(ok), r0, 1, SL_BLOCK_ITER_ORDER, 0);
	/* Out of order ("ab" then "aa"): refused only when order is checked. */
	static const uint8_t desc[] = { 0, 2, 0, 0, 'a', 'b', 1, 1, 0, 0, 'a' };
	expect_walk(desc, sizeof(desc), r0, 1, SL_BLOCK_ITER_ORDER, -SL_BLOCK_EORDER);
	expect_walk(desc, sizeof(desc), r0, 1, 0, 0);
	/* A repeated key is out of order too; so is a proper prefix after its extension. */
	static const uint8_t dup[] = { 0, 2, 0, 0, 'a', 'b', 0, 2, 0, 0, 'a', 'b' };
	static const uint32_t r06b[] = { 0, 6 };
	expect_walk(dup, sizeof(dup), r06b, 2, SL_BLOCK_ITER_ORDER, -SL_BLOCK_EORDER);
	static const uint8_t pre[] = { 0, 2, 0, 0, 'a', 'b', 0, 1, 0, 0, 'a' };
	expect_walk(pre, sizeof(pre), r06b, 2, SL_BLOCK_ITER_ORDER, -SL_BLOCK_EORDER);
	/* The first entry shares with nothing: a restart point must be a whole key. */
	static const uint8_t sh0[] = { 1, 2, 0, 0, 'a', 'b' };
	expect_walk(sh0, sizeof(sh0), r0, 1, 0, -SL_BLOCK_ERESTART);
	/* Shares more than the previous key has. */
	static const uint8_t sh3[] = { 0, 1, 0, 0, 'a', 2, 1, 0, 0, 'b' };
	expect_walk(sh3, sizeof(sh3), r0, 1, 0, -SL_BLOCK_EENTRY);
	/* Empty key; key longer than SL_BLOCK_MAX_KEY (a 65-byte suffix). */
	static const uint8_t k0[] = { 0, 0, 0, 0, 'x' };
	expect_walk(k0, sizeof(k0), r0, 1, 0, -SL_BLOCK_ERESTART);
	uint8_t k65[5 + 65];
	memset(k65, 'k', sizeof(k65));
	k65[0] = 0;
	k65[1] = 65;
	k65[2] = 0;
	k65[3] = 0;
	expect_walk(k65, sizeof(k65), r0, 1, 0, -SL_BLOCK_ERESTART);
	/* Suffix or value running past the entries (into the restart array). */
	static const uint8_t klong[] = { 0, 9, 0, 0, 'a', 'b' };
	expect_walk(klong, sizeof(klong), r0, 1, 0, -SL_BLOCK_ERESTART);
	static const uint8_t vlong[] = { 0, 1, 0, 0, 'a', 0, 1, 5, 0, 'b', 'x' };
	expect_walk(vlong, sizeof(vlong), r0, 1, 0, -SL_BLOCK_EENTRY);
	/* Truncated varints: a continuation bit on the last byte of the entries, and a varint
	 * of more than 32 bits. */
	static const uint8_t tv1[] = { 0, 1, 0, 0, 'a', 0x80, 0x80, 0x80 };
	expect_walk(tv1, sizeof(tv1), r0, 1, 0, -SL_BLOCK_EENTRY);
	static const uint8_t tv2[] = { 0, 1, 0, 0, 'a', 0, 1, 0xff, 0xff, 0xff, 0xff, 0x1f, 0 };
	expect_walk(tv2, sizeof(tv2), r0, 1, 0, -SL_BLOCK_EENTRY);
	static const uint8_t tv3[] = { 0, 1, 0, 0, 'a', 0, 1, 0x80 };
	expect_walk(tv3, sizeof(tv3), r0, 1, 0, -SL_BLOCK_EENTRY);
	/* No flags byte before the end. */
	static const uint8_t nf[] = { 0, 1, 0, 0, 'a', 0, 1, 0 };
	expect_walk(nf, sizeof(nf), r0, 1, 0, -SL_BLOCK_EENTRY);
	/* Restart points: off an entry boundary (inside the second entry), past the entries, and
	 * one on a boundary whose entry is not whole. */
	static const uint8_t two[] = { 0, 1, 0, 0, 'a', 0, 1, 0, 0, 'b' };
	expect_walk(two, sizeof(two), r06, 2, 0, -SL_BLOCK_EBOUNDARY);
	static const uint32_t rpast[] = { 0, 200 };
	expect_walk(two, sizeof(two), rpast, 2, 0, -SL_BLOCK_EBOUNDARY);
	static const uint32_t rback[] = { 0, 5, 3 };
	expect_walk(two, sizeof(two), rback, 3, 0, -SL_BLOCK_EBOUNDARY);
	expect_walk(two, sizeof(two), r05, 2, SL_BLOCK_ITER_ORDER, 0);
	static const uint8_t notwhole[] = { 0, 2, 0, 0, 'a', 'b', 1, 1, 0, 0, 'c' };
	expect_walk(notwhole, sizeof(notwhole), r06, 2, 0, -SL_BLOCK_ERESTART);
	expect_walk(notwhole, sizeof(notwhole), r03, 2, 0, -SL_BLOCK_EBOUNDARY);
	/* An error leaves the iterator where it was: the same error again. */
	uint8_t tmp[64];
	size_t len = raw_block(tmp, desc, sizeof(desc), r0, 1);
	struct sl_block blk;
	assert_int_equal(sl__block_parse(&blk, tmp, len), 0);
	struct sl_block_iter it;
	it.klen = 0;
	sl__block_iter_start(&it, &blk, 0, SL_BLOCK_ITER_ORDER);
	assert_int_equal(sl__block_iter_next(&it), 1);
	assert_int_equal(sl__block_iter_next(&it), -SL_BLOCK_EORDER);
	assert_int_equal(sl__block_iter_next(&it), -SL_BLOCK_EORDER);
	assert_int_equal(it.klen, 2);
	assert_memory_equal(it.key, "ab", 2);
	/* Order across blocks: the key kept from before is compared with the first. */
	len = raw_block(tmp, ok, sizeof(ok), r0, 1);
	assert_int_equal(sl__block_parse(&blk, tmp, len), 0);
	memcpy(it.key, "b", 1);
	it.klen = 1;
	sl__block_iter_start(&it, &blk, 0, SL_BLOCK_ITER_ORDER);
	assert_int_equal(sl__block_iter_next(&it), -SL_BLOCK_EORDER);
	memcpy(it.key, "a", 1);
	it.klen = 1;
	assert_int_equal(sl__block_iter_next(&it), 1);
}

/* Random damage to sound blocks: every walk ends (clean or with an error) without reading
 * outside the block. */
static void test_block_fuzz(void **state)
{
	(void)state;
	size_t n = 600;
	struct ent *e = model(&n, 9, 30, 50);
	struct encoded x;
	encode_all(e, n, 512, 3, &x);
	uint64_t s = 10;
	size_t errors = 0, runs = 0;
	for (size_t round = 0; round < 20000; round++) {
		size_t b = rnd_next(&s) % x.nblocks;
		size_t len = x.blen[b];
		/* Sometimes cut short or cut at the front: a truncated block. */
		size_t from = 0;
		if (round % 7 == 0)
			len -= rnd_next(&s) % len;
		if (round % 11 == 0) {
			from = rnd_next(&s) % len;
			len -= from;
		}
		uint8_t *c = dup_block(x.buf + x.off[b] + from, len);
		size_t flips = rnd_next(&s) % 4;
		for (size_t f = 0; f < flips && len; f++)
			c[rnd_next(&s) % len] ^= (uint8_t)(1u << (rnd_next(&s) % 8));
		int r = walk(c, len, rnd_next(&s) % 2 ? SL_BLOCK_ITER_ORDER : 0);
		assert_true(r <= 0);
		errors += r < 0;
		struct sl_block blk;
		if (sl__block_parse(&blk, c, len) == 0) {
			uint32_t idx;
			r = sl__block_seek_restart(&blk, e[round % n].key, e[round % n].klen, &idx);
			assert_true(r == 0 || r == -SL_BLOCK_ERESTART);
			if (r == 0) {
				assert_true(idx < blk.nrestarts);
				struct sl_block_iter it;
				it.klen = 0;
				sl__block_iter_start(&it, &blk, idx, 0);
				while (sl__block_iter_next(&it) > 0)
					;
			}
		}
		runs++;
		free(c);
	}
	assert_true(errors > runs / 4);
	encoded_free(&x);
	free(e);
}

static void test_block_key_cmp(void **state)
{
	(void)state;
	static const struct {
		const char *k;
		size_t n;
	} keys[] = {
		{ "", 0 },
		{ "\0", 1 },
		{ "\0\0", 2 },
		{ "a", 1 },
		{ "a\0", 2 },
		{ "ab", 2 },
		{ "abcdefg", 7 },
		{ "abcdefgh", 8 },
		{ "abcdefgh\0", 9 },
		{ "abcdefghi", 9 },
		{ "abcdefgi", 8 },
		{ "abcdefh", 7 },
		{ "b", 1 },
		{ "\x7f", 1 },
		{ "\x80", 1 },
		{ "\xff", 1 },
		{ "\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9 },
	};
	size_t n = sizeof(keys) / sizeof(keys[0]);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			const uint8_t *a = (const uint8_t *)keys[i].k,
				      *b = (const uint8_t *)keys[j].k;
			int want = i == j ? 0 : (i < j ? -1 : 1); /* the list is in order */
			assert_int_equal(sl__block_key_cmp(a, keys[i].n, b, keys[j].n), want);
			assert_int_equal(ref_cmp(a, keys[i].n, b, keys[j].n), want);
		}
	}
	/* Random keys of up to 64 bytes differing (or not) anywhere. */
	uint64_t s = 3;
	uint8_t a[SL_BLOCK_MAX_KEY], b[SL_BLOCK_MAX_KEY];
	for (int i = 0; i < 20000; i++) {
		size_t al = rnd_next(&s) % 65, bl = rnd_next(&s) % 65;
		for (size_t j = 0; j < SL_BLOCK_MAX_KEY; j++)
			a[j] = b[j] = (uint8_t)rnd_next(&s);
		if (al && bl && i % 4)
			b[rnd_next(&s) % (al < bl ? al : bl)] ^= (uint8_t)(rnd_next(&s) | 1);
		assert_int_equal(sl__block_key_cmp(a, al, b, bl), ref_cmp(a, al, b, bl));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_enc_exact_bytes),
		cmocka_unit_test(test_block_round_trip_random),
		cmocka_unit_test(test_block_enc_dry_matches),
		cmocka_unit_test(test_block_enc_full_edge),
		cmocka_unit_test(test_block_enc_refusals),
		cmocka_unit_test(test_block_seek_restart),
		cmocka_unit_test(test_block_parse_rejects),
		cmocka_unit_test(test_block_iter_rejects),
		cmocka_unit_test(test_block_fuzz),
		cmocka_unit_test(test_block_key_cmp),
	};
	return cmocka_run_group_tests_name("block", tests, NULL, NULL);
}
