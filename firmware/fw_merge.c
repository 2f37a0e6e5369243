/* fw_merge.c - the fused compaction merge engine (contract in fw_merge.h and accel.h): a loser
 * tree over one cursor per run, each walking its blocks with the block codec (block.c), the
 * output cut and encoded by the same codec, the filter laid out by bloom.c. The one merge of
 * Sluice: the device firmware runs it (fw_cmd.c), and so do the cpu backend (accel_cpu.c) and
 * the XRT shim on the host. Every byte of state is carved from the caller's scratch, and when the
 * scratch has no room for every output key's hash the filter is built afterwards from the
 * output blocks themselves. Freestanding.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "fw_merge.h"

#define DEFAULT_BLOCK_BYTES 4096u
#define DEFAULT_RESTART	    16u
#define MIN_BLOCK_BYTES	    64u
#define MAX_BLOOM_BITS	    64u
#define HASH_BATCH	    64 /* hashes gathered on the stack by the filter's second pass */

_Static_assert(FW_MERGE_MAX_KEY == SL_BLOCK_MAX_KEY, "the job's keys are the codec's keys");
_Static_assert(FW_MERGE_TOMBSTONE == 1u, "accel.h's SL_ACCEL_TOMBSTONE");

/* One run being read: the walk over its current block, which holds the current entry (key
 * rebuilt in it.key, value pointing into the input). The walk checks key order from entry to
 * entry and, since a new block keeps the key, from block to block. */
struct cursor {
	struct sl_block_iter it;
	uint64_t n_blocks;
	uint64_t next_block; /* the block to load when this one ends */
	int done;	     /* no more entries in range */
	int past_lo;	     /* the current key is above lo (no more lo comparisons needed) */
};

/* Per run: a cursor, its key prefix, three tree slots (tree and first-round winners). */
_Static_assert(sizeof(struct cursor) + 8 + 3 * 4 <= FW_MERGE_SCRATCH_PER_RUN,
	       "FW_MERGE_SCRATCH_PER_RUN covers a run's state");

struct merge {
	const struct fw_merge_params *p;
	const struct fw_merge_io *io;
	struct fw_merge_result *res;
	uint32_t k;	    /* runs */
	struct cursor *cur; /* k of them */
	/* Per run, its key's first 8 bytes as key_prefix makes them (UINT64_MAX once done): the
	 * tree's comparisons read this small array and touch a cursor only on a tie. */
	uint64_t *pfx;
	uint32_t *tree; /* tree[0]: the current winner; tree[1..k): each match's loser */
	/* The output: the block being built by the codec, at block_off in out. */
	struct sl_block_enc enc;
	uint64_t block_off;
	uint64_t n_blocks;
	int out_short;	  /* out ran out: the encoder measures only from there on */
	int blocks_short; /* blocks ran out: blocks are counted only */
	uint8_t no_out;	  /* what enc.buf points at when out is NULL (cap 0) */
	/* Output keys' hashes while they fit (hashes_cap); past that the filter's second pass. */
	uint64_t *hashes;
	uint64_t hashes_cap;
};

/* The first 8 bytes of a key as a big-endian integer, zero-padded: keys compare as these do
 * wherever these differ, so most comparisons in the tree are one integer compare. k is a
 * cursor's 64-byte key buffer: 8 bytes are always readable; those past klen are masked off. */
static inline uint64_t key_prefix(const uint8_t *k, size_t klen)
{
	uint64_t v;
	memcpy(&v, k, 8);
	if (klen < 8)
		v &= (1ull << (8 * klen)) - 1;
	return __builtin_bswap64(v);
}

/* Does run a's current entry come before run b's? Key order, then the lower (newer) run
 * first, so that of equal keys the newest wins. An exhausted run comes after everything. */
static inline int before(const struct merge *m, uint32_t a, uint32_t b)
{
	if (m->pfx[a] != m->pfx[b])
		return m->pfx[a] < m->pfx[b];
	const struct cursor *x = &m->cur[a], *y = &m->cur[b];
	if (x->done)
		return 0;
	if (y->done)
		return 1;
	/* Equal prefixes: the first 8 bytes are equal where both keys have them. */
	size_t s = x->it.klen >= 8 && y->it.klen >= 8 ? 8 : 0;
	int c = sl__block_key_cmp(x->it.key + s, x->it.klen - s, y->it.key + s, y->it.klen - s);
	return c < 0 || (c == 0 && a < b);
}

/* Run i's entry changed: play it up from its leaf against the losers stored on the way. */
static inline void replay(struct merge *m, uint32_t i)
{
	uint32_t w = i;
	for (uint32_t n = (i + m->k) / 2; n > 0; n /= 2) {
		if (before(m, m->tree[n], w)) {
			uint32_t t = m->tree[n];
			m->tree[n] = w;
			w = t;
		}
	}
	m->tree[0] = w;
}

/* The first tournament. Leaves are k..2k-1 (run i at k + i), node n's children 2n and 2n + 1:
 * a complete binary tree for any k. win holds each node's winner on the way up. */
static void build_tree(struct merge *m, uint32_t *win)
{
	uint32_t k = m->k;
	for (uint32_t i = 0; i < k; i++)
		win[k + i] = i;
	for (uint32_t n = k - 1; n > 0; n--) {
		uint32_t a = win[2 * n], b = win[2 * n + 1];
		int a_first = before(m, a, b);
		win[n] = a_first ? a : b;
		m->tree[n] = a_first ? b : a;
	}
	m->tree[0] = k > 1 ? win[1] : 0;
}

static uint32_t corrupt(struct merge *m, uint32_t run, uint64_t block)
{
	m->res->bad_run = run;
	m->res->bad_block = block;
	return FW_ECORRUPT;
}

/* Check run i's next block (CRC, then layout) and start walking it. */
static uint32_t cursor_load(struct merge *m, uint32_t i)
{
	struct cursor *c = &m->cur[i];
	uint64_t bi = c->next_block++, len = 0;
	const uint8_t *p = NULL;
	struct sl_block blk;
	m->io->block(m->io->ctx, i, bi, &p, &len);
	m->res->bytes_read += len;
	if (len < SL_BLOCK_MIN ||
	    m->io->crc32c(m->io->ctx, p, len - 4) != sl__block_get_u32(p + len - 4) ||
	    sl__block_parse(&blk, p, len) < 0)
		return corrupt(m, i, bi);
	sl__block_iter_start(&c->it, &blk, 0, SL_BLOCK_ITER_ORDER);
	return FW_OK;
}

/* Move run i to its next entry in range (lo, hi]: FW_OK (done set when there is none), or
 * FW_ECORRUPT. Entries up to lo are read, checked and passed over; the first one above hi ends
 * the run, and its later blocks are never read. */
static uint32_t cursor_next(struct merge *m, uint32_t i)
{
	struct cursor *c = &m->cur[i];
	const struct fw_merge_params *p = m->p;
	uint32_t r;
	for (;;) {
		int n = sl__block_iter_next(&c->it);
		if (n > 0) {
			if (!c->past_lo) {
				if (sl__block_key_cmp(c->it.key, c->it.klen, p->lo, p->lo_len) <= 0)
					continue;
				c->past_lo = 1;
			}
			if (p->hi_len &&
			    sl__block_key_cmp(c->it.key, c->it.klen, p->hi, p->hi_len) > 0)
				break;
			m->pfx[i] = key_prefix(c->it.key, c->it.klen);
			m->res->entries_in++;
			return FW_OK;
		}
		if (n < 0)
			return corrupt(m, i, c->next_block - 1);
		if (c->next_block == c->n_blocks)
			break;
		if ((r = cursor_load(m, i)) != FW_OK)
			return r;
	}
	c->done = 1;
	m->pfx[i] = UINT64_MAX;
	return FW_OK;
}

/* Write output block entry i, field by field (the table may be unaligned; bytes of last past
 * last_len and the reserved word are left as they are, as the reference leaves them). */
static void put_block(uint8_t *table, uint64_t i, uint64_t off, uint32_t len, uint32_t crc,
		      const uint8_t *last, uint32_t last_len)
{
	uint8_t *e = table + i * sizeof(struct fw_out_block);
	memcpy(e + offsetof(struct fw_out_block, off), &off, 8);
	memcpy(e + offsetof(struct fw_out_block, len), &len, 4);
	memcpy(e + offsetof(struct fw_out_block, crc), &crc, 4);
	memcpy(e + offsetof(struct fw_out_block, last_len), &last_len, 4);
	memcpy(e + offsetof(struct fw_out_block, last), last, last_len);
}

/* Close the block being built: restarts and count by the codec, its CRC in its trailer and in
 * the block table; then start the next one after it. Once out or blocks ran short, only count. */
static void cut_block(struct merge *m)
{
	const struct fw_merge_params *p = m->p;
	size_t body = sl__block_enc_finish(&m->enc), len = body + 4;
	if (m->n_blocks >= p->blocks_cap)
		m->blocks_short = 1;
	if (!m->out_short) {
		uint8_t *b = p->out + m->block_off;
		uint32_t crc = m->io->crc32c(m->io->ctx, b, body);
		sl__block_put_u32(b + body, crc);
		if (!m->blocks_short)
			put_block(p->blocks, m->n_blocks, m->block_off, (uint32_t)len, crc,
				  m->enc.last, (uint32_t)m->enc.last_len);
	}
	m->n_blocks++;
	m->block_off += len;
	sl__block_enc_reset(&m->enc);
	if (!m->out_short) {
		m->enc.buf = p->out + m->block_off;
		m->enc.cap = p->out_cap - m->block_off;
	}
}

/* Append the surviving entry to the output, cutting blocks as the codec says. */
static uint32_t emit(struct merge *m, const uint8_t *key, size_t klen, const uint8_t *val,
		     uint32_t vlen, uint8_t flags)
{
	struct fw_merge_result *res = m->res;
	if ((flags & FW_MERGE_TOMBSTONE) && (m->p->flags & FW_MERGE_DROP_TOMBSTONES)) {
		res->dropped_tombstones++;
		return FW_OK;
	}
	if (sl__block_enc_full(&m->enc, klen, vlen))
		cut_block(m);
	for (;;) {
		int r = sl__block_enc_add(&m->enc, key, klen, val, vlen, flags);
		if (r == 0)
			break;
		if (r == -SL_BLOCK_ESPACE) {
			/* The block with this entry would not fit what is left of out: measure
			 * from here on, so the caller learns the exact size it needs. */
			m->out_short = 1;
			m->enc.buf = NULL;
			m->enc.restarts = NULL;
			continue;
		}
		/* The restart array is sized for the densest block the codec can cut. */
		if (r == -SL_BLOCK_ERESTARTS)
			return FW_ESCRATCH;
		/* Else a block past 4 GiB (keys come 1..64 bytes long from the codec). */
		return FW_EFBIG;
	}
	if (!res->entries_out) {
		memcpy(res->smallest, key, klen);
		res->smallest_len = (uint32_t)klen;
		res->smallest_written = (uint32_t)klen;
	}
	res->entries_out++;
	/* Short of space the call ends in FW_ENOSPC and no filter is built: no need for hashes. */
	if (!m->out_short && !m->blocks_short && res->entries_out <= m->hashes_cap)
		m->hashes[res->entries_out - 1] = sl__bloom_hash(key, klen);
	return FW_OK;
}

/* The whole merge: every run's first entry, then the winner out and its run on, each key's
 * older copies passed over, until every run is done. */
static uint32_t merge_runs(struct merge *m, uint32_t *win)
{
	uint32_t r;
	for (uint32_t i = 0; i < m->k; i++) {
		struct cursor *c = &m->cur[i];
		c->n_blocks = m->io->run_blocks(m->io->ctx, i);
		c->past_lo = m->p->lo_len == 0;
		if ((r = cursor_next(m, i)) != FW_OK)
			return r;
	}
	if (m->k)
		build_tree(m, win);
	while (m->k && !m->cur[m->tree[0]].done) {
		uint32_t w = m->tree[0];
		struct cursor *c = &m->cur[w];
		/* The key stays needed after its run moves on: to pass over older copies. */
		uint8_t key[SL_BLOCK_MAX_KEY];
		size_t klen = c->it.klen;
		uint64_t prefix = m->pfx[w];
		memcpy(key, c->it.key, sizeof(key));
		if ((r = emit(m, key, klen, c->it.val, c->it.vlen, c->it.flags)) != FW_OK)
			return r;
		if ((r = cursor_next(m, w)) != FW_OK)
			return r;
		replay(m, w);
		for (;;) {
			uint32_t t = m->tree[0];
			const struct cursor *d = &m->cur[t];
			if (m->pfx[t] != prefix || d->done ||
			    sl__block_key_cmp(d->it.key, d->it.klen, key, klen))
				break;
			m->res->dropped_older++;
			if ((r = cursor_next(m, t)) != FW_OK)
				return r;
			replay(m, t);
		}
	}
	if (m->enc.entries)
		cut_block(m);
	return FW_OK;
}

/* The filter from the output blocks, when the scratch could not hold every key's hash: each
 * block decoded again (it was just written and is well formed) and its keys hashed in batches.
 * The bits are the same: a filter is the union of its keys' bits, in any order. */
static void bloom_from_blocks(const struct merge *m, uint8_t *bloom, size_t size, uint32_t k)
{
	uint64_t h[HASH_BATCH];
	size_t nh = 0;
	for (uint64_t i = 0; i < m->n_blocks; i++) {
		const uint8_t *e = m->p->blocks + i * sizeof(struct fw_out_block);
		uint64_t off;
		uint32_t len;
		memcpy(&off, e + offsetof(struct fw_out_block, off), 8);
		memcpy(&len, e + offsetof(struct fw_out_block, len), 4);
		struct sl_block blk;
		struct sl_block_iter it;
		if (sl__block_parse(&blk, m->p->out + off, len) < 0)
			continue; /* not reached: the codec wrote it */
		it.klen = 0;
		sl__block_iter_start(&it, &blk, 0, 0);
		while (sl__block_iter_next(&it) > 0) {
			h[nh++] = sl__bloom_hash(it.key, it.klen);
			if (nh == HASH_BATCH) {
				sl__bloom_add(bloom, size, h, nh, k);
				nh = 0;
			}
		}
	}
	if (nh)
		sl__bloom_add(bloom, size, h, nh, k);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

uint32_t fw_merge(const struct fw_merge_params *p, const struct fw_merge_io *io,
		  struct fw_merge_result *res, uint64_t *scratch_need)
{
	if (p->n_runs > FW_MERGE_MAX_RUNS || (p->block_bytes && p->block_bytes < MIN_BLOCK_BYTES) ||
	    p->bits_per_key > MAX_BLOOM_BITS || (p->flags & ~(uint32_t)FW_MERGE_DROP_TOMBSTONES))
		return FW_EARG;
	uint32_t block_bytes = p->block_bytes ? p->block_bytes : DEFAULT_BLOCK_BYTES;
	uint32_t restart = p->restart_interval ? p->restart_interval : DEFAULT_RESTART;
	uint32_t bits = p->bits_per_key ? p->bits_per_key : SL_BLOOM_DEFAULT_BITS;
	uint32_t k = p->n_runs;

	/* Scratch: cursors (one at least), prefixes, tree and winners, restarts, then hashes. */
	uint64_t need = fw_merge_scratch_bytes(k, block_bytes, p->input_bytes);
	*scratch_need = need;
	if (p->scratch_len < need)
		return FW_ESCRATCH;
	uintptr_t base = (uintptr_t)p->scratch, at = align_up(base, 16);
	uint64_t restarts_cap = fw_merge_restarts_cap(block_bytes, p->input_bytes);
	struct merge m = { .p = p, .io = io, .res = res, .k = k };
	m.cur = (struct cursor *)at;
	at += (uint64_t)(k ? k : 1) * sizeof(struct cursor);
	m.pfx = (uint64_t *)(at = align_up(at, 8));
	at += (uint64_t)k * 8;
	m.tree = (uint32_t *)at;
	at += (uint64_t)(3 * k + 1) * 4;
	uint32_t *restarts = (uint32_t *)at;
	at += restarts_cap * 4;
	at = align_up(at, 8);
	m.hashes = (uint64_t *)at;
	m.hashes_cap = (p->scratch_len - (at - base)) / 8;
	memset(m.cur, 0, (k ? k : 1) * sizeof(struct cursor));

	memset(res, 0, sizeof(*res));
	res->bloom_probes = sl__bloom_probes(bits);
	sl__block_enc_init(&m.enc, block_bytes, restart, p->out ? p->out : &m.no_out,
			   p->out ? p->out_cap : 0, restarts, restarts_cap);
	uint32_t r = merge_runs(&m, m.tree + k);
	if (r == FW_OK) {
		res->need_out = m.block_off;
		res->need_blocks = m.n_blocks;
		res->need_bloom = sl__bloom_bytes(res->entries_out, bits);
		if (m.out_short || m.blocks_short || res->need_bloom > p->bloom_cap) {
			r = FW_ENOSPC;
		} else {
			memset(p->bloom, 0, res->need_bloom);
			if (res->entries_out <= m.hashes_cap)
				sl__bloom_add(p->bloom, res->need_bloom, m.hashes, res->entries_out,
					      res->bloom_probes);
			else
				bloom_from_blocks(&m, p->bloom, res->need_bloom, res->bloom_probes);
			res->out_len = m.block_off;
			res->n_blocks = m.n_blocks;
			res->bloom_len = res->need_bloom;
		}
	}
	if (r != FW_OK)
		res->smallest_len = 0;
	return r;
}
