/* block.h - the sorted table's data block codec: the one encoder and decoder of the entries,
 * restart array and trailer that sst writes and reads and the merge job (accel.h) builds on any
 * backend. block is a freestanding leaf: it uses <stdint.h>, <stddef.h> and <string.h> only,
 * never allocates and never checksums (the caller computes the CRC32C, so the codec stays free
 * of accel), because accelerator firmware compiles this same file.
 *
 * A block, integers little-endian, nothing aligned:
 *   entry...  | u32 restart[n] | u32 n | u32 CRC32C of all bytes before it
 *   entry     varint shared | varint unshared | varint vlen | u8 flags | key[shared..] | value
 * shared is how many leading bytes the key takes from the previous key; a restart point (its
 * offset listed in restart[]) carries its whole key (shared 0), every restart_interval entries
 * and always at offset 0. Varints are LEB128 of at most 32 bits. Keys are 1..SL_BLOCK_MAX_KEY
 * bytes, strictly increasing in memcmp order (a proper prefix first).
 *
 * Nothing here is thread-aware: an encoder or iterator belongs to one thread at a time; blocks
 * being read are immutable.
 */
#ifndef SL_BLOCK_H
#define SL_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the key comparison and prefix search read keys as little-endian words");

#define SL_BLOCK_MAX_KEY   64
#define SL_BLOCK_TRAILER   8 /* u32 restart count, u32 CRC32C */
#define SL_BLOCK_MIN_ENTRY 5 /* three one-byte varints, the flags, one key byte */
#define SL_BLOCK_MIN	   (SL_BLOCK_MIN_ENTRY + 4 + SL_BLOCK_TRAILER) /* the smallest block */

/* Why a block is refused, returned negated (-SL_BLOCK_E...). sl__block_strerror names each. */
enum sl_block_err {
	SL_BLOCK_ESPACE = 1, /* encoder: the entry does not fit the caller's buffer */
	SL_BLOCK_ERESTARTS,  /* encoder: the caller's restart array is full */
	SL_BLOCK_EARG,	     /* encoder: key of 0 or more than SL_BLOCK_MAX_KEY bytes */
	SL_BLOCK_EBIG,	     /* encoder: the block would pass 4 GiB (its offsets are u32) */
	SL_BLOCK_ESIZE,	     /* decoder: block shorter than SL_BLOCK_MIN or longer than 4 GiB */
	SL_BLOCK_ECOUNT,     /* decoder: restart count 0 or more than the block can hold */
	SL_BLOCK_EFIRST,     /* decoder: restart[0] is not 0 */
	SL_BLOCK_EENTRY,    /* decoder: an entry's lengths run past the entries or a key's bounds */
	SL_BLOCK_ERESTART,  /* decoder: the entry at a restart point is not a whole key */
	SL_BLOCK_EBOUNDARY, /* decoder: a restart offset is not on an entry boundary */
	SL_BLOCK_EORDER,    /* decoder: keys not strictly increasing */
};

/* A static description of an sl_block_err (positive or negated), for messages. */
const char *sl__block_strerror(int err);

/* memcmp order of two keys, a proper prefix first: <0, 0, >0. Eight bytes at a time, inline:
 * a lookup makes a few dozen comparisons of short keys and a merge one or two per entry, and a
 * call to memcmp for each cost more than half of a cached get. */
static inline int sl__block_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen, i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y) {
			/* Little-endian loads: swapped, the first differing byte is the highest. */
			x = __builtin_bswap64(x);
			y = __builtin_bswap64(y);
			return x < y ? -1 : 1;
		}
	}
	for (; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return alen < blen ? -1 : alen > blen;
}

/* ---- Encoder ------------------------------------------------------------------------------
 *
 * Builds one block at a time in storage the caller owns: the entries go to buf, the restart
 * offsets to a separate array (their count is not known until the block is cut) which finish
 * copies after the entries. With buf NULL the encoder only measures: every call does the same
 * arithmetic and writes nothing (restarts may be NULL too), so a caller whose buffer ran out
 * can learn the exact size it needs by carrying on dry.
 *
 * Use: init; per entry, cut first when sl__block_enc_full says so (finish, CRC, reset), then
 * add; at the end finish the last block if it holds an entry. The caller may move buf or
 * restarts (contents kept, e.g. by realloc) between calls and update the fields below. */
struct sl_block_enc {
	uint8_t *buf; /* the block being built, cap bytes; NULL: measure only */
	size_t cap;
	uint32_t *restarts; /* restart offsets, restarts_cap of them */
	size_t restarts_cap;
	uint32_t block_bytes;	   /* the target size that sl__block_enc_full cuts at */
	uint32_t restart_interval; /* >= 1 */
	size_t len;		   /* bytes of entries so far */
	size_t nrestarts;
	uint32_t since_restart; /* entries since the last restart point */
	uint32_t entries;	/* in the block being built */
	/* The last key added; kept across sl__block_enc_reset (a block's last key is the table's
	 * index key for it, and the writer's order check needs it). */
	uint8_t last[SL_BLOCK_MAX_KEY];
	size_t last_len;
};

void sl__block_enc_init(struct sl_block_enc *e, uint32_t block_bytes, uint32_t restart_interval,
			uint8_t *buf, size_t cap, uint32_t *restarts, size_t restarts_cap);

/* Start the next block (in the same storage unless the caller changed buf/restarts). */
void sl__block_enc_reset(struct sl_block_enc *e);

static inline size_t sl__block_varint_len(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* The bytes an entry takes at most: as a restart point, with its whole key. */
static inline size_t sl__block_entry_bound(size_t klen, size_t vlen)
{
	return 1 + sl__block_varint_len(klen) + sl__block_varint_len(vlen) + 1 + klen + vlen;
}

/* Must the block be cut before this entry? True when it holds entries and the entry, sized by
 * sl__block_entry_bound, with one more restart slot and the trailer, would pass block_bytes:
 * blocks stay within block_bytes except one holding a single oversized entry. */
static inline int sl__block_enc_full(const struct sl_block_enc *e, size_t klen, size_t vlen)
{
	return e->len && e->len + sl__block_entry_bound(klen, vlen) + 4 * (e->nrestarts + 1) +
					 SL_BLOCK_TRAILER >
				 e->block_bytes;
}

/* The buffer size that is always enough to add this entry to the block as it stands and then
 * finish it (trailer and CRC included); restarts then need nrestarts + 1 slots. */
static inline size_t sl__block_enc_need(const struct sl_block_enc *e, size_t klen, size_t vlen)
{
	return e->len + sl__block_entry_bound(klen, vlen) + 4 * (e->nrestarts + 1) +
	       SL_BLOCK_TRAILER;
}

/* Append an entry (key after the last one: not checked here; flags a byte). 0; -SL_BLOCK_ESPACE
 * when the block with it would not fit cap exactly (trailer and CRC included), or
 * -SL_BLOCK_ERESTARTS when it is a restart point and the array is full: nothing changed, so the
 * caller may grow or go dry and add again; -SL_BLOCK_EARG; -SL_BLOCK_EBIG. */
int sl__block_enc_add(struct sl_block_enc *e, const uint8_t *key, size_t klen, const void *val,
		      size_t vlen, uint8_t flags);

/* Close the block: the restart array and count after the entries (dry: only counted). Returns
 * the bytes the CRC covers; the caller stores the CRC32C of buf[0, n) at buf + n (with
 * sl__block_put_u32), so the block is n + 4 bytes. The block must hold an entry. */
size_t sl__block_enc_finish(struct sl_block_enc *e);

static inline void sl__block_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t sl__block_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- Decoder ------------------------------------------------------------------------------ */

/* A block's parts, bounds-checked by sl__block_parse. */
struct sl_block {
	const uint8_t *p;
	uint32_t data_end; /* entries lie in [0, data_end); the restart array starts there */
	uint32_t nrestarts;
};

/* Split the len bytes at p (a whole block, trailer included; its CRC is the caller's to check,
 * before or after) into entries and restart array: 0, or -SL_BLOCK_ESIZE, -SL_BLOCK_ECOUNT,
 * -SL_BLOCK_EFIRST. Checks the count and restart[0] only (O(1)): the other restart offsets are
 * checked where they are used (sl__block_seek_restart, sl__block_iter_next). */
int sl__block_parse(struct sl_block *b, const uint8_t *p, size_t len);

/* Restart offset i (i < nrestarts), unchecked. */
static inline uint32_t sl__block_restart(const struct sl_block *b, uint32_t i)
{
	return sl__block_get_u32(b->p + b->data_end + 4 * (size_t)i);
}

/* The last restart point whose key is <= key (0 if none is): from it a forward scan finds key
 * if the block holds it. 0 and *idx, or -SL_BLOCK_ERESTART when a restart point the search
 * reads is out of the entries or not a whole key. */
int sl__block_seek_restart(const struct sl_block *b, const uint8_t *key, size_t klen,
			   uint32_t *idx);

/* A forward walk over a block's entries that rebuilds each key from the previous one. It checks
 * as it goes that every entry lies within the entries with a key of 1..SL_BLOCK_MAX_KEY bytes,
 * that the restart offsets from where it started on fall exactly on entry boundaries with whole
 * keys (all of them by the end), and with SL_BLOCK_ITER_ORDER that each key is above the one
 * before (compared against the key in the iterator, so set klen 0 for no predecessor, or keep
 * the previous block's last key to check order across blocks). */
enum sl_block_iter_flags {
	SL_BLOCK_ITER_ORDER = 1 << 0,
};

struct sl_block_iter {
	struct sl_block b;
	uint32_t pos;	       /* offset of the next entry */
	uint32_t next_restart; /* index of the next restart point to meet */
	uint32_t next_off;     /* its offset (UINT32_MAX past the last): one compare an entry */
	uint32_t opts;	       /* enum sl_block_iter_flags */
	/* The current entry: key rebuilt here, val pointing into the block. */
	uint32_t vlen;
	const uint8_t *val;
	uint8_t flags;
	uint8_t key[SL_BLOCK_MAX_KEY];
	size_t klen;
};

/* Stand before the entry at restart point idx (< b->nrestarts; 0: the block's start). key and
 * klen are left as they are (see above). */
static inline void sl__block_iter_start(struct sl_block_iter *it, const struct sl_block *b,
					uint32_t idx, uint32_t opts)
{
	it->b = *b;
	it->pos = sl__block_restart(b, idx);
	it->next_restart = idx;
	it->next_off = it->pos;
	it->opts = opts;
}

/* The decoder's inner steps are inline, here, because every table scan, lookup and merge runs
 * them once per entry (as calls they cost a table scan a fifth more). sl__block_varint and
 * sl__block_decode serve sl__block_iter_next and block.c only. */

/* Decode a varint from p[*pos, end); 0 when it runs past end or does not fit in 32 bits. Most
 * are one byte (prefix lengths, suffix lengths, small values): that case first. */
static inline int sl__block_varint(const uint8_t *p, uint32_t *pos, uint32_t end, uint32_t *out)
{
	if (*pos < end && p[*pos] < 0x80) {
		*out = p[(*pos)++];
		return 1;
	}
	uint32_t v = 0;
	for (unsigned shift = 0; shift < 35 && *pos < end; shift += 7) {
		uint8_t c = p[(*pos)++];
		if (shift == 28 && c > 0x0f)
			return 0;
		v |= (uint32_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 1;
		}
	}
	return 0;
}

struct sl_block_ent {
	uint32_t shared, unshared, vlen, next; /* next: offset of the following entry */
	const uint8_t *suffix;		       /* the unshared key bytes */
	const uint8_t *val;
	uint8_t flags;
};

/* Decode the entry at pos after a key of prev_len bytes; 0, or -1 if it is malformed. */
static inline int sl__block_decode(const struct sl_block *b, uint32_t pos, size_t prev_len,
				   struct sl_block_ent *e)
{
	const uint8_t *p = b->p;
	uint32_t end = b->data_end;
	/* Most entries: three one-byte varints and the flags, read at once. */
	if (pos < end && end - pos >= 4 && (p[pos] | p[pos + 1] | p[pos + 2]) < 0x80) {
		e->shared = p[pos];
		e->unshared = p[pos + 1];
		e->vlen = p[pos + 2];
		pos += 3;
	} else if (!sl__block_varint(p, &pos, end, &e->shared) ||
		   !sl__block_varint(p, &pos, end, &e->unshared) ||
		   !sl__block_varint(p, &pos, end, &e->vlen) || pos >= end) {
		return -1;
	}
	e->flags = p[pos++];
	if (e->shared > prev_len || e->unshared > SL_BLOCK_MAX_KEY - e->shared ||
	    e->shared + e->unshared == 0 || e->unshared > end - pos)
		return -1;
	e->suffix = p + pos;
	pos += e->unshared;
	if (e->vlen > end - pos)
		return -1;
	e->val = p + pos;
	e->next = pos + e->vlen;
	return 0;
}

/* Decode the next entry into it: 1; 0 past the last one; or -SL_BLOCK_EENTRY, -SL_BLOCK_ERESTART,
 * -SL_BLOCK_EBOUNDARY, -SL_BLOCK_EORDER (the iterator is then unchanged). */
static inline int sl__block_iter_next(struct sl_block_iter *it)
{
	const struct sl_block *b = &it->b;
	uint32_t pos = it->pos;
	if (pos >= b->data_end)
		return it->next_restart == b->nrestarts ? 0 : -SL_BLOCK_EBOUNDARY;
	/* Restart offsets increase, so the next one not yet met is either this entry's offset or
	 * beyond it; one behind it was skipped over: it points into an entry. */
	int at_restart = pos >= it->next_off;
	if (pos > it->next_off)
		return -SL_BLOCK_EBOUNDARY;
	struct sl_block_ent e;
	if (sl__block_decode(b, pos, at_restart ? 0 : it->klen, &e) < 0)
		return at_restart ? -SL_BLOCK_ERESTART : -SL_BLOCK_EENTRY;
	/* The new key shares its first e.shared bytes with the old, so comparing the rest is
	 * comparing the keys, before the old one is overwritten. */
	if ((it->opts & SL_BLOCK_ITER_ORDER) &&
	    sl__block_key_cmp(e.suffix, e.unshared, it->key + e.shared, it->klen - e.shared) <= 0)
		return -SL_BLOCK_EORDER;
	memcpy(it->key + e.shared, e.suffix, e.unshared);
	it->klen = e.shared + e.unshared;
	it->val = e.val;
	it->vlen = e.vlen;
	it->flags = e.flags;
	it->pos = e.next;
	if (at_restart) {
		uint32_t n = ++it->next_restart;
		it->next_off = n < b->nrestarts ? sl__block_restart(b, n) : UINT32_MAX;
	}
	return 1;
}

#endif /* SL_BLOCK_H */
