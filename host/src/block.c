/* block.c - the data block codec (the contract and the layout are in block.h). Freestanding:
 * <stdint.h>, <stddef.h> and <string.h> only, no allocation, no I/O, no checksums, so that the
 * accelerator firmware builds this file as it is. Every offset read from a block is checked
 * against the block's bounds before it is used; nothing here trusts a byte of the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "block.h"

const char *sl__block_strerror(int err)
{
	/* The decoder's strings are the ones sst has always printed and verify reports. */
	switch (err < 0 ? -err : err) {
	case SL_BLOCK_ESPACE:
		return "block buffer too small";
	case SL_BLOCK_ERESTARTS:
		return "block restart array full";
	case SL_BLOCK_EARG:
		return "key length out of range";
	case SL_BLOCK_EBIG:
		return "data block larger than 4 GiB";
	case SL_BLOCK_ESIZE:
		return "bad data block size";
	case SL_BLOCK_ECOUNT:
		return "bad restart count in data block";
	case SL_BLOCK_EFIRST:
		return "first restart point is not the block start";
	case SL_BLOCK_EENTRY:
		return "malformed entry in data block";
	case SL_BLOCK_ERESTART:
		return "bad restart point in data block";
	case SL_BLOCK_EBOUNDARY:
		return "restart point not on an entry boundary";
	case SL_BLOCK_EORDER:
		return "keys not increasing";
	}
	return "unknown data block error";
}

/* ---- Encoder ------------------------------------------------------------------------------ */

void sl__block_enc_init(struct sl_block_enc *e, uint32_t block_bytes, uint32_t restart_interval,
			uint8_t *buf, size_t cap, uint32_t *restarts, size_t restarts_cap)
{
	memset(e, 0, sizeof(*e));
	e->buf = buf;
	e->cap = cap;
	e->restarts = restarts;
	e->restarts_cap = restarts_cap;
	e->block_bytes = block_bytes;
	e->restart_interval = restart_interval ? restart_interval : 1;
}

void sl__block_enc_reset(struct sl_block_enc *e)
{
	e->len = 0;
	e->nrestarts = 0;
	e->since_restart = 0;
	e->entries = 0;
}

static size_t put_varint(uint8_t *p, uint32_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* How many leading bytes a and b share, n at most: eight at a time, the first differing byte
 * found as the lowest set bit of the xor of two little-endian words. */
static inline size_t common_prefix(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return i + ((size_t)__builtin_ctzll(x ^ y) >> 3);
	}
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

int sl__block_enc_add(struct sl_block_enc *e, const uint8_t *key, size_t klen, const void *val,
		      size_t vlen, uint8_t flags)
{
	if (klen == 0 || klen > SL_BLOCK_MAX_KEY)
		return -SL_BLOCK_EARG;
	if (vlen > UINT32_MAX)
		return -SL_BLOCK_EBIG;
	int restart = e->len == 0 || e->since_restart >= e->restart_interval;
	size_t shared = 0;
	if (!restart)
		shared = common_prefix(key, e->last, klen < e->last_len ? klen : e->last_len);
	size_t unshared = klen - shared;
	size_t esz = sl__block_varint_len(shared) + sl__block_varint_len(unshared) +
		     sl__block_varint_len(vlen) + 1 + unshared + vlen;
	size_t nr = e->nrestarts + (size_t)restart;
	/* The exact size of the block were it cut right after this entry: the test that makes a
	 * caller's -ESPACE mean "the finished block would not fit", never an estimate. */
	size_t total = e->len + esz + 4 * nr + SL_BLOCK_TRAILER;
	if (total > UINT32_MAX)
		return -SL_BLOCK_EBIG;
	if (e->buf) {
		if (total > e->cap)
			return -SL_BLOCK_ESPACE;
		if (restart && e->nrestarts >= e->restarts_cap)
			return -SL_BLOCK_ERESTARTS;
		if (restart)
			e->restarts[e->nrestarts] = (uint32_t)e->len;
		uint8_t *p = e->buf + e->len;
		p += put_varint(p, (uint32_t)shared);
		p += put_varint(p, (uint32_t)unshared);
		p += put_varint(p, (uint32_t)vlen);
		*p++ = flags;
		memcpy(p, key + shared, unshared);
		p += unshared;
		if (vlen)
			memcpy(p, val, vlen);
	}
	e->len += esz;
	e->nrestarts = nr;
	e->since_restart = restart ? 1 : e->since_restart + 1;
	e->entries++;
	memcpy(e->last + shared, key + shared, unshared);
	e->last_len = klen;
	return 0;
}

size_t sl__block_enc_finish(struct sl_block_enc *e)
{
	if (e->buf) {
		uint8_t *p = e->buf + e->len;
		for (size_t i = 0; i < e->nrestarts; i++, p += 4)
			sl__block_put_u32(p, e->restarts[i]);
		sl__block_put_u32(p, (uint32_t)e->nrestarts);
	}
	return e->len + 4 * e->nrestarts + 4;
}

/* ---- Decoder ------------------------------------------------------------------------------ */

int sl__block_parse(struct sl_block *b, const uint8_t *p, size_t len)
{
	if (len < SL_BLOCK_MIN || len > UINT32_MAX)
		return -SL_BLOCK_ESIZE;
	uint32_t n = sl__block_get_u32(p + len - SL_BLOCK_TRAILER);
	/* Every restart point starts an entry of SL_BLOCK_MIN_ENTRY bytes or more, so a count the
	 * block cannot hold is damage, found before any offset is formed from it. */
	if (n == 0 || n > (len - SL_BLOCK_TRAILER - SL_BLOCK_MIN_ENTRY) / 4)
		return -SL_BLOCK_ECOUNT;
	b->p = p;
	b->nrestarts = n;
	b->data_end = (uint32_t)(len - SL_BLOCK_TRAILER - 4 * (size_t)n);
	if (sl__block_get_u32(p + b->data_end) != 0)
		return -SL_BLOCK_EFIRST;
	return 0;
}

int sl__block_seek_restart(const struct sl_block *b, const uint8_t *key, size_t klen, uint32_t *idx)
{
	uint32_t lo = 0, hi = b->nrestarts - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		uint32_t off = sl__block_restart(b, mid);
		struct sl_block_ent e;
		/* prev_len 0: an entry at a restart point must carry its whole key. */
		if (off >= b->data_end || sl__block_decode(b, off, 0, &e) < 0)
			return -SL_BLOCK_ERESTART;
		if (sl__block_key_cmp(e.suffix, e.unshared, key, klen) <= 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	*idx = lo;
	return 0;
}
