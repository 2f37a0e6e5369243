/* accel_cpu.c - the reference backend: CRC32C by ISA-L (which picks the fastest kernel for the
 * CPU it runs on at load time), and the fused merge job on the host's own CPU: a loser tree
 * over one cursor per run, each walking its blocks with the block codec (block.c), the output
 * encoded by the same codec and the filter laid out by bloom.c. No state outlives a call (a
 * merge allocates its scratch per job), so every call is thread-safe.
 */
#include <errno.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accel.h"
#include "block.h"
#include "bloom.h"
#include "sluice.h"

#define DEFAULT_BLOCK_BYTES 4096u
#define DEFAULT_RESTART	    16u

_Static_assert(SL_ACCEL_MAX_KEY == SL_BLOCK_MAX_KEY, "the job's keys are the codec's keys");
_Static_assert(SL_ACCEL_MAX_RUNS <= UINT32_MAX / 2, "run numbers fit the tree's u32 slots");

static int cpu_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	(void)cfg, (void)why, (void)why_cap;
	*dev = NULL;
	return 0;
}

static void cpu_close(void *dev)
{
	(void)dev;
}

static void cpu_info(void *dev, struct sl_accel_info *out)
{
	(void)dev;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "cpu");
	snprintf(out->device, sizeof(out->device), "host CPU (ISA-L CRC32C, blocked bloom, "
		 "loser-tree merge)");
	snprintf(out->detail, sizeof(out->detail), "the reference backend; %ld online CPUs",
		 sysconf(_SC_NPROCESSORS_ONLN));
}

static int cpu_bloom_build(void *dev, const uint64_t *hashes, size_t n, uint32_t k,
			   uint8_t *filter, size_t size)
{
	(void)dev;
	if (size % SL_BLOOM_BLOCK || k == 0 || k > 64 || (n && !hashes) || (size && !filter))
		return -EINVAL;
	if (size)
		sl__bloom_add(filter, size, hashes, n, k);
	return 0;
}

static int cpu_bloom_probe(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
			   const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	(void)dev;
	if (n && (!hashes || !out || !nfilters || !filters))
		return -EINVAL;
	if (!which) {
		sl__bloom_probe_batch(filters[0].bits, filters[0].size, hashes, n, filters[0].k,
				      out);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (which[i] >= nfilters)
			return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct sl_accel_filter *f = &filters[which[i]];
		out[i] = (uint8_t)sl__bloom_may_contain(f->bits, f->size, hashes[i], f->k);
	}
	return 0;
}

static uint32_t crc32c(const void *data, size_t len)
{
	const unsigned char *p = data;
	/* ISA-L takes an int length and no final inversion: chain large buffers. */
	unsigned int crc = 0xFFFFFFFFu;
	while (len > (size_t)INT_MAX) {
		crc = crc32_iscsi((unsigned char *)p, INT_MAX, crc);
		p += INT_MAX;
		len -= INT_MAX;
	}
	crc = crc32_iscsi((unsigned char *)p, (int)len, crc);
	return crc ^ 0xFFFFFFFFu;
}

static int cpu_crc32c_batch(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	(void)dev;
	for (size_t i = 0; i < n; i++)
		out[i] = crc32c(bufs[i].data, bufs[i].len);
	return 0;
}

/* ---- The merge job ------------------------------------------------------------------------ */

/* One run being read: the walk over its current block, which holds the current entry (key
 * rebuilt in it.key, value pointing into the input). The walk checks key order from entry to
 * entry and, since a new block keeps the key, from block to block. */
struct cursor {
	struct sl_block_iter it;
	const struct sl_accel_buf *blocks;
	size_t n_blocks;
	size_t next_block; /* the block to load when this one ends */
	int done;	   /* no more entries in range */
	int past_lo;	   /* the current key is above lo (no more lo comparisons needed) */
};

struct merge {
	struct sl_accel_merge_job *job;
	size_t k;	    /* runs */
	struct cursor *cur; /* k of them */
	/* Per run, its key's first 8 bytes as key_prefix makes them (UINT64_MAX once done): the
	 * tree's comparisons read this small array and touch a cursor only on a tie. */
	uint64_t *pfx;
	uint32_t *tree; /* tree[0]: the current winner; tree[1..k): each match's loser */
	/* The output: the block being built by the codec, at block_off in job->out. */
	struct sl_block_enc enc;
	uint32_t *restarts;
	size_t restarts_cap;
	size_t block_off;
	size_t n_blocks;
	int out_short;	  /* out ran out: the encoder measures only from there on */
	int blocks_short; /* blocks ran out: blocks are counted only */
	uint8_t no_out;	  /* what enc.buf points at when job->out is NULL (cap 0) */
	/* Every output key's bloom hash, for the filter built once entries_out is known. */
	uint64_t *hashes;
	size_t hashes_cap;
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

/* Run i's entry changed: play it up from its leaf against the losers stored on the way, each
 * match's loser staying behind; log2(k) comparisons. */
static inline void replay(struct merge *m, uint32_t i)
{
	uint32_t w = i;
	for (size_t n = (i + m->k) / 2; n > 0; n /= 2) {
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
	size_t k = m->k;
	for (size_t i = 0; i < k; i++)
		win[k + i] = (uint32_t)i;
	for (size_t n = k - 1; n > 0; n--) {
		uint32_t a = win[2 * n], b = win[2 * n + 1];
		int a_first = before(m, a, b);
		win[n] = a_first ? a : b;
		m->tree[n] = a_first ? b : a;
	}
	m->tree[0] = k > 1 ? win[1] : 0;
}

static int corrupt(struct merge *m, size_t run, size_t block)
{
	m->job->bad_run = run;
	m->job->bad_block = block;
	return SL_ECORRUPT;
}

/* Check run i's next block (CRC, then layout) and start walking it. */
static int cursor_load(struct merge *m, uint32_t i)
{
	struct cursor *c = &m->cur[i];
	size_t bi = c->next_block++;
	const struct sl_accel_buf *b = &c->blocks[bi];
	const uint8_t *p = b->data;
	struct sl_block blk;
	if (b->len < SL_BLOCK_MIN || crc32c(p, b->len - 4) != sl__block_get_u32(p + b->len - 4) ||
	    sl__block_parse(&blk, p, b->len) < 0)
		return corrupt(m, i, bi);
	sl__block_iter_start(&c->it, &blk, 0, SL_BLOCK_ITER_ORDER);
	return 0;
}

/* Move run i to its next entry in range (lo, hi]: 0 (done set when there is none), or
 * SL_ECORRUPT. Entries up to lo are read, checked and passed over; the first one above hi ends
 * the run, and its later blocks are never read. */
static int cursor_next(struct merge *m, uint32_t i)
{
	struct cursor *c = &m->cur[i];
	const struct sl_accel_merge_job *j = m->job;
	for (;;) {
		int r = sl__block_iter_next(&c->it);
		if (r > 0) {
			if (!c->past_lo) {
				if (sl__block_key_cmp(c->it.key, c->it.klen, j->lo, j->lo_len) <= 0)
					continue;
				c->past_lo = 1;
			}
			if (j->hi_len &&
			    sl__block_key_cmp(c->it.key, c->it.klen, j->hi, j->hi_len) > 0)
				break;
			m->pfx[i] = key_prefix(c->it.key, c->it.klen);
			m->job->entries_in++;
			return 0;
		}
		if (r < 0)
			return corrupt(m, i, c->next_block - 1);
		if (c->next_block == c->n_blocks)
			break;
		if ((r = cursor_load(m, i)) < 0)
			return r;
	}
	c->done = 1;
	m->pfx[i] = UINT64_MAX;
	return 0;
}

/* Close the block being built: restarts and count by the codec, its CRC in its trailer and in
 * blocks[]; then start the next one after it. Once out or blocks ran short, only count. */
static void cut_block(struct merge *m)
{
	struct sl_accel_merge_job *j = m->job;
	size_t body = sl__block_enc_finish(&m->enc), len = body + 4;
	if (m->n_blocks >= j->blocks_cap)
		m->blocks_short = 1;
	if (!m->out_short) {
		uint8_t *p = j->out + m->block_off;
		uint32_t crc = crc32c(p, body);
		sl__block_put_u32(p + body, crc);
		if (!m->blocks_short) {
			struct sl_accel_block *b = &j->blocks[m->n_blocks];
			b->off = m->block_off;
			b->len = (uint32_t)len;
			b->crc = crc;
			b->last_len = (uint32_t)m->enc.last_len;
			memcpy(b->last, m->enc.last, m->enc.last_len);
		}
	}
	m->n_blocks++;
	m->block_off += len;
	sl__block_enc_reset(&m->enc);
	if (!m->out_short) {
		m->enc.buf = j->out + m->block_off;
		m->enc.cap = j->out_cap - m->block_off;
	}
}

/* Append the surviving entry to the output, cutting blocks as the codec says. */
static int emit(struct merge *m, const uint8_t *key, size_t klen, const uint8_t *val, uint32_t vlen,
		uint8_t flags)
{
	struct sl_accel_merge_job *j = m->job;
	if ((flags & SL_ACCEL_TOMBSTONE) && (j->flags & SL_ACCEL_MERGE_DROP_TOMBSTONES)) {
		j->dropped_tombstones++;
		return 0;
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
		/* Else a block past 4 GiB (keys come 1..64 bytes long from the codec). */
		if (r != -SL_BLOCK_ERESTARTS)
			return -EFBIG;
		size_t n = m->restarts_cap ? 2 * m->restarts_cap : 64;
		uint32_t *q = realloc(m->restarts, n * sizeof(*q));
		if (!q)
			return -ENOMEM;
		m->restarts = q;
		m->restarts_cap = n;
		m->enc.restarts = q;
		m->enc.restarts_cap = n;
	}
	if (!j->entries_out) {
		memcpy(j->smallest, key, klen);
		j->smallest_len = (uint32_t)klen;
	}
	j->entries_out++;
	/* Short of space the call ends in -ENOSPC and no filter is built: no need for hashes. */
	if (m->out_short || m->blocks_short)
		return 0;
	if (j->entries_out > m->hashes_cap) {
		size_t n = m->hashes_cap ? 2 * m->hashes_cap : 1024;
		uint64_t *q = realloc(m->hashes, n * sizeof(*q));
		if (!q)
			return -ENOMEM;
		m->hashes = q;
		m->hashes_cap = n;
	}
	m->hashes[j->entries_out - 1] = sl__bloom_hash(key, klen);
	return 0;
}

/* The whole merge: every run's first entry, then the winner out and its run on, each key's
 * older copies passed over, until every run is done. */
static int merge_runs(struct merge *m, uint32_t *win)
{
	struct sl_accel_merge_job *j = m->job;
	int r;
	for (uint32_t i = 0; i < m->k; i++) {
		struct cursor *c = &m->cur[i];
		c->blocks = j->runs[i].blocks;
		c->n_blocks = j->runs[i].n_blocks;
		c->past_lo = j->lo_len == 0;
		if ((r = cursor_next(m, i)) < 0)
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
		if ((r = emit(m, key, klen, c->it.val, c->it.vlen, c->it.flags)) < 0)
			return r;
		if ((r = cursor_next(m, w)) < 0)
			return r;
		replay(m, w);
		for (;;) {
			uint32_t t = m->tree[0];
			const struct cursor *d = &m->cur[t];
			if (m->pfx[t] != prefix || d->done ||
			    sl__block_key_cmp(d->it.key, d->it.klen, key, klen))
				break;
			j->dropped_older++;
			if ((r = cursor_next(m, t)) < 0)
				return r;
			replay(m, t);
		}
	}
	if (m->enc.entries)
		cut_block(m);
	return 0;
}

static int cpu_merge(void *dev, struct sl_accel_merge_job *j)
{
	(void)dev;
	int r = sl__accel_merge_check(j);
	if (r < 0)
		return r;
	uint32_t block_bytes = j->block_bytes ? j->block_bytes : DEFAULT_BLOCK_BYTES;
	uint32_t restart = j->restart_interval ? j->restart_interval : DEFAULT_RESTART;
	uint32_t bits = j->bits_per_key ? j->bits_per_key : SL_BLOOM_DEFAULT_BITS;
	j->out_len = j->n_blocks = j->bloom_len = 0;
	j->bloom_probes = sl__bloom_probes(bits);
	j->entries_in = j->entries_out = j->dropped_older = j->dropped_tombstones = 0;
	j->smallest_len = 0;
	j->need_out = j->need_blocks = j->need_bloom = 0;
	j->bad_run = j->bad_block = 0;

	/* All scratch in one allocation per job (none per entry): cursors, tree, first-round
	 * winners; the restart array and hashes grow by doubling. */
	size_t k = j->n_runs;
	struct merge m = { .job = j, .k = k };
	size_t cur_bytes = (k ? k : 1) * sizeof(struct cursor), pfx_bytes = k * sizeof(uint64_t);
	void *scratch = calloc(1, cur_bytes + pfx_bytes + (3 * k + 1) * sizeof(uint32_t));
	if (!scratch)
		return -ENOMEM;
	m.cur = scratch;
	m.pfx = (uint64_t *)((uint8_t *)scratch + cur_bytes);
	m.tree = (uint32_t *)((uint8_t *)m.pfx + pfx_bytes);
	uint32_t *win = m.tree + k;
	sl__block_enc_init(&m.enc, block_bytes, restart, j->out ? j->out : &m.no_out,
			   j->out ? j->out_cap : 0, NULL, 0);
	r = merge_runs(&m, win);
	if (r == 0) {
		j->need_out = m.block_off;
		j->need_blocks = m.n_blocks;
		j->need_bloom = sl__bloom_bytes(j->entries_out, bits);
		if (m.out_short || m.blocks_short || j->need_bloom > j->bloom_cap) {
			r = -ENOSPC;
		} else {
			memset(j->bloom, 0, j->need_bloom);
			sl__bloom_add(j->bloom, j->need_bloom, m.hashes, j->entries_out,
				      j->bloom_probes);
			j->out_len = m.block_off;
			j->n_blocks = m.n_blocks;
			j->bloom_len = j->need_bloom;
		}
	}
	if (r < 0)
		j->smallest_len = 0;
	free(m.hashes);
	free(m.restarts);
	free(scratch);
	return r;
}

const struct sl_accel_ops sl__accel_cpu_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "cpu",
	.open = cpu_open,
	.close = cpu_close,
	.info = cpu_info,
	.crc32c_batch = cpu_crc32c_batch,
	.bloom_build = cpu_bloom_build,
	.bloom_probe = cpu_bloom_probe,
	.merge = cpu_merge,
};
