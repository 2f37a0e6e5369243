/* merge.cl - the fused compaction merge job of host/src/accel.h in OpenCL C, bit-identical to
 * accel_cpu.c: slk_merge (one work-item) walks the input blocks as block.h's decoder does, with
 * every check in the same order, merges the runs through the same loser tree (newest run wins a
 * tie), drops tombstones when asked, keeps keys in (lo, hi] and encodes the survivors with
 * block.h's encoder and cut rule; then slk_merge_crc (one work-item per output block) stores
 * each block's CRC32C and slk_merge_bloom (one per output block) sets the filter's bits for its
 * keys. The input blocks' CRCs come from slk_crc32c run over them first (crc32c.cl); the merge
 * compares them only when it reaches a block, so what is reported stays what cpu reports.
 */
#include "sl_kernel_abi.h"
#include "sl_crc32c_tab.h"
#include "sl_bloom_dev.h"

static uint get_u32(__global const uchar *p)
{
	return (uint)p[0] | (uint)p[1] << 8 | (uint)p[2] << 16 | (uint)p[3] << 24;
}

static void put_u32(__global uchar *p, uint v)
{
	p[0] = (uchar)v;
	p[1] = (uchar)(v >> 8);
	p[2] = (uchar)(v >> 16);
	p[3] = (uchar)(v >> 24);
}

/* memcmp order, a proper prefix first: <0, 0, >0 (block.h sl__block_key_cmp). */
static int key_cmp(__global const uchar *a, ulong alen, __global const uchar *b, ulong blen)
{
	ulong n = alen < blen ? alen : blen;
	for (ulong i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* block.h sl__block_varint: LEB128 of at most 32 bits from p[*pos, end); 0 when malformed. */
static int get_varint(__global const uchar *p, uint *pos, uint end, uint *out)
{
	uint v = 0;
	for (uint shift = 0; shift < 35 && *pos < end; shift += 7) {
		uint c = p[(*pos)++];
		if (shift == 28 && c > 0x0f)
			return 0;
		v |= (c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 1;
		}
	}
	return 0;
}

static uint varint_len(ulong v)
{
	uint n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint put_varint(__global uchar *p, uint v)
{
	uint n = 0;
	while (v >= 0x80) {
		p[n++] = (uchar)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uchar)v;
	return n;
}

static void copy_bytes(__global uchar *dst, __global const uchar *src, ulong n)
{
	ulong i = 0;
	for (; i + 16 <= n; i += 16)
		vstore16(vload16(0, src + i), 0, dst + i);
	for (; i < n; i++)
		dst[i] = src[i];
}

/* Everything the merge keeps in private memory; the cursors, the tree and the two key buffers
 * are in scratch (global), since 256 cursors do not fit a work-item's registers. */
struct merge {
	__global const uchar *in;
	__global const struct slk_merge_params *prm;
	__global const struct slk_inblock *inblocks;
	__global const uint *acc;
	__global struct slk_cursor *cur;
	__global uint *tree, *win;
	__global uchar *ekey; /* the key just emitted */
	__global uchar *last; /* the encoder's last key */
	__global uchar *out;
	__global struct slk_block *blocks;
	__global struct slk_merge_result *res;
	uint k;
	/* The encoder (block.h struct sl_block_enc). */
	ulong len, nrestarts;
	uint since_restart, entries, last_len;
	ulong block_off, n_blocks;
	int out_dry, blocks_dry;
	/* Counters. */
	ulong entries_in, entries_out, dropped_older, dropped_tombstones;
};

static int corrupt(struct merge *m, uint run, uint block)
{
	m->res->bad_run = run;
	m->res->bad_block = block;
	return SLK_MERGE_CORRUPT;
}

/* accel_cpu.c cursor_load: check run i's next block (size, CRC, then layout) and stand before
 * its first entry. */
static int cursor_load(struct merge *m, uint i)
{
	__global struct slk_cursor *c = &m->cur[i];
	uint bi = c->next_block++;
	uint gi = c->first_block + bi;
	ulong len = m->inblocks[gi].len, off = m->inblocks[gi].off;
	if (len < SLK_BLOCK_MIN || len > 0xFFFFFFFFUL)
		return corrupt(m, i, bi);
	__global const uchar *p = m->in + off;
	if ((m->acc[gi] ^ 0xFFFFFFFFu) != get_u32(p + len - 4))
		return corrupt(m, i, bi);
	/* sl__block_parse */
	uint n = get_u32(p + len - 8);
	if (n == 0 || n > (len - 8 - 5) / 4)
		return corrupt(m, i, bi);
	uint data_end = (uint)(len - 8 - 4 * (ulong)n);
	if (get_u32(p + data_end) != 0)
		return corrupt(m, i, bi);
	c->base = off;
	c->data_end = data_end;
	c->nrestarts = n;
	c->pos = 0;
	c->next_restart = 0;
	c->next_off = 0;
	return 0;
}

/* block.h sl__block_iter_next with SL_BLOCK_ITER_ORDER: 1 and the next entry in the cursor, 0
 * past the last, -1 for any damage. */
static int iter_next(struct merge *m, __global struct slk_cursor *c)
{
	uint pos = c->pos, end = c->data_end;
	if (pos >= end)
		return c->next_restart == c->nrestarts ? 0 : -1;
	int at_restart = pos >= c->next_off;
	if (pos > c->next_off)
		return -1;
	__global const uchar *p = m->in + c->base;
	uint prev = at_restart ? 0 : c->klen;
	uint shared, unshared, vlen;
	if (!get_varint(p, &pos, end, &shared) || !get_varint(p, &pos, end, &unshared) ||
	    !get_varint(p, &pos, end, &vlen) || pos >= end)
		return -1;
	uint flags = p[pos++];
	if (shared > prev || unshared > SLK_MAX_KEY - shared || shared + unshared == 0 ||
	    unshared > end - pos)
		return -1;
	uint suffix = pos;
	pos += unshared;
	if (vlen > end - pos)
		return -1;
	if (key_cmp(p + suffix, unshared, c->key + shared, c->klen - shared) <= 0)
		return -1;
	for (uint i = 0; i < unshared; i++)
		c->key[shared + i] = p[suffix + i];
	c->klen = shared + unshared;
	c->val = c->base + pos;
	c->vlen = vlen;
	c->flags = flags;
	c->pos = pos + vlen;
	if (at_restart) {
		uint n = ++c->next_restart;
		c->next_off = n < c->nrestarts ? get_u32(p + end + 4 * (ulong)n) : 0xFFFFFFFFu;
	}
	return 1;
}

/* The key's first 8 bytes as a big-endian integer, zero-padded (accel_cpu.c key_prefix). */
static ulong key_prefix(__global const uchar *k, uint klen)
{
	ulong v = 0;
	for (uint i = 0; i < 8; i++)
		v = v << 8 | (i < klen ? k[i] : 0);
	return v;
}

/* accel_cpu.c cursor_next: run i on to its next entry in (lo, hi]; 0 (done set when there is
 * none) or SLK_MERGE_CORRUPT. */
static int cursor_next(struct merge *m, uint i)
{
	__global struct slk_cursor *c = &m->cur[i];
	__global const struct slk_merge_params *prm = m->prm;
	for (;;) {
		int r = iter_next(m, c);
		if (r > 0) {
			if (!c->past_lo) {
				if (key_cmp(c->key, c->klen, m->in + prm->lo_off, prm->lo_len) <= 0)
					continue;
				c->past_lo = 1;
			}
			if (prm->hi_len &&
			    key_cmp(c->key, c->klen, m->in + prm->hi_off, prm->hi_len) > 0)
				break;
			c->pfx = key_prefix(c->key, c->klen);
			m->entries_in++;
			return 0;
		}
		if (r < 0)
			return corrupt(m, i, c->next_block - 1);
		if (c->next_block == c->n_blocks)
			break;
		r = cursor_load(m, i);
		if (r)
			return r;
	}
	c->done = 1;
	c->pfx = ~0UL;
	return 0;
}

/* Does run a's entry come before run b's (key order, then the newer run)? */
static int before(struct merge *m, uint a, uint b)
{
	__global const struct slk_cursor *x = &m->cur[a], *y = &m->cur[b];
	if (x->pfx != y->pfx)
		return x->pfx < y->pfx;
	if (x->done)
		return 0;
	if (y->done)
		return 1;
	uint s = x->klen >= 8 && y->klen >= 8 ? 8 : 0;
	int c = key_cmp(x->key + s, x->klen - s, y->key + s, y->klen - s);
	return c < 0 || (c == 0 && a < b);
}

static void replay(struct merge *m, uint i)
{
	uint w = i;
	for (uint n = (i + m->k) / 2; n > 0; n /= 2) {
		if (before(m, m->tree[n], w)) {
			uint t = m->tree[n];
			m->tree[n] = w;
			w = t;
		}
	}
	m->tree[0] = w;
}

static void build_tree(struct merge *m)
{
	uint k = m->k;
	for (uint i = 0; i < k; i++)
		m->win[k + i] = i;
	for (uint n = k - 1; n > 0; n--) {
		uint a = m->win[2 * n], b = m->win[2 * n + 1];
		int a_first = before(m, a, b);
		m->win[n] = a_first ? a : b;
		m->tree[n] = a_first ? b : a;
	}
	m->tree[0] = k > 1 ? m->win[1] : 0;
}

/* Close the block being built (block.h sl__block_enc_finish): its restart offsets, found again
 * by walking the entries just written (restart points are entries 0, I, 2I, ...: the encoder
 * restarts every restart_interval entries), and the count; the CRC comes later (slk_merge_crc).
 * Past out_cap or blocks_cap only count. */
static void cut_block(struct merge *m)
{
	ulong blen = m->len + 4 * m->nrestarts + 8;
	if (m->n_blocks >= m->prm->blocks_cap)
		m->blocks_dry = 1;
	if (!m->out_dry) {
		__global uchar *b = m->out + m->block_off;
		uint pos = 0, end = (uint)m->len, interval = m->prm->restart_interval, r = 0;
		for (uint e = 0; e < m->entries; e++) {
			uint shared, unshared, vlen;
			if (e % interval == 0)
				put_u32(b + m->len + 4 * (ulong)r++, pos);
			get_varint(b, &pos, end, &shared);
			get_varint(b, &pos, end, &unshared);
			get_varint(b, &pos, end, &vlen);
			pos += 1 + unshared + vlen;
		}
		put_u32(b + m->len + 4 * m->nrestarts, (uint)m->nrestarts);
		if (!m->blocks_dry) {
			__global struct slk_block *d = &m->blocks[m->n_blocks];
			d->off = m->block_off;
			d->len = (uint)blen;
			d->crc = 0;
			d->last_len = m->last_len;
			for (uint i = 0; i < SLK_MAX_KEY; i++)
				d->last[i] = i < m->last_len ? m->last[i] : 0;
			d->pad = 0;
		}
	}
	m->n_blocks++;
	m->block_off += blen;
	m->len = 0;
	m->nrestarts = 0;
	m->since_restart = 0;
	m->entries = 0;
}

/* accel_cpu.c emit with block.h sl__block_enc_full and sl__block_enc_add: append the entry,
 * cutting first when the codec says so. 0, or SLK_MERGE_FBIG. */
static int emit(struct merge *m, uint klen, ulong val, uint vlen, uint flags)
{
	__global const struct slk_merge_params *prm = m->prm;
	__global const uchar *key = m->ekey;
	if ((flags & SLK_TOMBSTONE) && (prm->flags & SLK_DROP_TOMBS)) {
		m->dropped_tombstones++;
		return 0;
	}
	ulong bound = 1 + varint_len(klen) + varint_len(vlen) + 1 + klen + (ulong)vlen;
	if (m->len && m->len + bound + 4 * (m->nrestarts + 1) + 8 > prm->block_bytes)
		cut_block(m);
	int restart = m->len == 0 || m->since_restart >= prm->restart_interval;
	uint shared = 0;
	if (!restart) {
		uint n = klen < m->last_len ? klen : m->last_len;
		while (shared < n && key[shared] == m->last[shared])
			shared++;
	}
	uint unshared = klen - shared;
	ulong esz = varint_len(shared) + varint_len(unshared) + varint_len(vlen) + 1 + unshared +
		    (ulong)vlen;
	ulong nr = m->nrestarts + (restart ? 1 : 0);
	ulong total = m->len + esz + 4 * nr + 8;
	if (total > 0xFFFFFFFFUL)
		return SLK_MERGE_FBIG;
	/* The block with this entry would pass the output buffer: measure from here on. */
	if (!m->out_dry && total > prm->out_cap - m->block_off)
		m->out_dry = 1;
	if (!m->out_dry) {
		__global uchar *p = m->out + m->block_off + m->len;
		p += put_varint(p, shared);
		p += put_varint(p, unshared);
		p += put_varint(p, vlen);
		*p++ = (uchar)flags;
		for (uint i = 0; i < unshared; i++)
			p[i] = key[shared + i];
		copy_bytes(p + unshared, m->in + val, vlen);
	}
	m->len += esz;
	m->nrestarts = nr;
	m->since_restart = restart ? 1 : m->since_restart + 1;
	m->entries++;
	for (uint i = shared; i < klen; i++)
		m->last[i] = key[i];
	m->last_len = klen;
	if (!m->entries_out) {
		for (uint i = 0; i < klen; i++)
			m->res->smallest[i] = key[i];
		m->res->smallest_len = klen;
	}
	m->entries_out++;
	return 0;
}

/* accel_cpu.c merge_runs. */
static int merge_runs(struct merge *m)
{
	__global const struct slk_merge_params *prm = m->prm;
	__global const struct slk_run *runs =
		(__global const struct slk_run *)(m->in + prm->runs_off);
	int r;
	for (uint i = 0; i < m->k; i++) {
		__global struct slk_cursor *c = &m->cur[i];
		c->first_block = runs[i].first_block;
		c->n_blocks = runs[i].n_blocks;
		c->next_block = 0;
		c->data_end = c->nrestarts = c->pos = c->next_restart = c->next_off = 0;
		c->klen = 0;
		c->done = 0;
		c->past_lo = prm->lo_len == 0;
		if ((r = cursor_next(m, i)))
			return r;
	}
	if (m->k)
		build_tree(m);
	while (m->k && !m->cur[m->tree[0]].done) {
		uint w = m->tree[0];
		__global const struct slk_cursor *c = &m->cur[w];
		uint klen = c->klen;
		ulong prefix = c->pfx;
		for (uint i = 0; i < klen; i++)
			m->ekey[i] = c->key[i];
		if ((r = emit(m, klen, c->val, c->vlen, c->flags)))
			return r;
		if ((r = cursor_next(m, w)))
			return r;
		replay(m, w);
		for (;;) {
			uint t = m->tree[0];
			__global const struct slk_cursor *d = &m->cur[t];
			if (d->pfx != prefix || d->done || key_cmp(d->key, d->klen, m->ekey, klen))
				break;
			m->dropped_older++;
			if ((r = cursor_next(m, t)))
				return r;
			replay(m, t);
		}
	}
	if (m->entries)
		cut_block(m);
	return 0;
}

/* in: the params at 0 and what they point to; out, blocks: the output and its descriptors (as
 * far as out_cap and blocks_cap go); scratch: the cursors at 0, the tree and keys where the
 * params say; res: the result. One work-item. */
SLK_KERNEL void slk_merge(__global const uchar *in, __global uchar *out,
			  __global struct slk_block *blocks, __global uchar *scratch,
			  __global struct slk_merge_result *res)
{
	if (get_global_id(0) != 0)
		return;
	struct merge m;
	__global const struct slk_merge_params *prm = (__global const struct slk_merge_params *)in;
	m.in = in;
	m.prm = prm;
	m.inblocks = (__global const struct slk_inblock *)(in + prm->blocks_off);
	m.acc = (__global const uint *)(in + prm->acc_off);
	m.cur = (__global struct slk_cursor *)scratch;
	m.tree = (__global uint *)(scratch + prm->tree_off);
	m.win = m.tree + prm->n_runs + 1;
	m.ekey = scratch + prm->key_off;
	m.last = m.ekey + SLK_MAX_KEY;
	m.out = out;
	m.blocks = blocks;
	m.res = res;
	m.k = prm->n_runs;
	m.len = m.nrestarts = 0;
	m.since_restart = m.entries = m.last_len = 0;
	m.block_off = m.n_blocks = 0;
	m.out_dry = m.blocks_dry = 0;
	m.entries_in = m.entries_out = m.dropped_older = m.dropped_tombstones = 0;
	res->smallest_len = 0;
	res->bad_run = res->bad_block = 0;
	int r = merge_runs(&m);
	res->status = r;
	res->out_len = m.block_off;
	res->n_blocks = m.n_blocks;
	res->entries_in = m.entries_in;
	res->entries_out = m.entries_out;
	res->dropped_older = m.dropped_older;
	res->dropped_tombstones = m.dropped_tombstones;
}

/* Each output block's CRC32C, into its trailer and its descriptor. */
SLK_KERNEL void slk_merge_crc(__global uchar *out, __global struct slk_block *blocks, ulong n)
{
	SLK_FOR_ITEMS(i, n)
	{
		ulong off = blocks[i].off, len = blocks[i].len;
		uint crc = crc_update(0xFFFFFFFFu, out + off, len - 4) ^ 0xFFFFFFFFu;
		put_u32(out + off + len - 4, crc);
		blocks[i].crc = crc;
	}
}

/* Every key of output block i into the filter (nblocks blocks, k probes). */
SLK_KERNEL void slk_merge_bloom(__global const uchar *out, __global const struct slk_block *blocks,
				ulong n, __global uint *filter, ulong nblocks, uint k)
{
	SLK_FOR_ITEMS(i, n)
	{
		__global const uchar *b = out + blocks[i].off;
		uint len = blocks[i].len;
		uint end = len - 8 - 4 * get_u32(b + len - 8), pos = 0, klen = 0;
		uchar key[SLK_MAX_KEY];
		while (pos < end) {
			uint shared, unshared, vlen;
			get_varint(b, &pos, end, &shared);
			get_varint(b, &pos, end, &unshared);
			get_varint(b, &pos, end, &vlen);
			pos++; /* flags */
			for (uint j = 0; j < unshared; j++)
				key[shared + j] = b[pos + j];
			klen = shared + unshared;
			pos += unshared + vlen;
			bloom_set(filter, nblocks, bloom_hash(key, klen), k);
		}
	}
}
