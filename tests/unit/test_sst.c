/* test_sst.c - unit tests of sorted string tables: exact round trips (empty, one entry, many
 * random entries, empty and maximal values, tombstones, every restart interval and block size)
 * through get, iterators and verify; argument and order errors; corruption of every part of a
 * table, truncation at every length and random bit flips (also with the CRCs recomputed, so the
 * bounds checks behind them are what is tested) that must never crash and never answer wrong;
 * I/O and allocation faults through tests/unit/fault_os.c that must leave no file and no leak;
 * readers racing on one table; the data block accessors and tables written from a merge job
 * (sl__sst_write_merged): read back exactly, byte for byte the writer's table of the same
 * entries, refused when inconsistent, and leaving no file on a fault. Links sst.o, block.o,
 * bloom.o, os.o, accel.o, accel_cpu.o, err.o and fault_os.o only. The byte layout is re-derived
 * here from the layout comment of sst.c, not from its structs. Each test works in its own mkdtemp
 * directory and removes it. SL_TEST_QUICK=1 shrinks the sizes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "accel.h"
#include "bloom.h"
#include "fault_os.h"
#include "os.h"
#include "sluice.h"
#include "sst.h"
#include "testutil.h"

#define FOOTER 64

static struct sl_accel *acc;
static int quick;

/* Full size normally, a tenth (at least lo) under SL_TEST_QUICK. */
static size_t scaled(size_t full, size_t lo)
{
	if (!quick)
		return full;
	return full / 10 > lo ? full / 10 : lo;
}

/* splitmix64: fixed seeds make every failure reproducible. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- Directories and files ---------------------------------------------------------------- */

struct tdir {
	char path[64];
	char file[96];
};

static void tdir_new(struct tdir *t)
{
	assert_non_null(sl_test_mkdtemp(t->path, sizeof(t->path), "sst"));
	snprintf(t->file, sizeof(t->file), "%s/000001.sst", t->path);
}

static void tdir_free(struct tdir *t)
{
	assert_int_equal(sl_test_rm_rf(t->path), 0);
}

static void spew(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, b + done, n - done, (off_t)done);
		assert_true(r > 0);
		done += (size_t)r;
	}
	close(fd);
}

/* ---- An os whose "mapping" is an exact-size heap copy ------------------------------------- */

/* ASan watches the heap, not mappings: a read past the end of a mapped table lands silently in
 * the rest of its page. The fuzz tests read tables through this os instead, whose mmap copies
 * the file into a malloc'ed buffer of exactly its length, so any overrun hits a redzone. */
static const uint8_t *heap_base; /* the last table "mapped" (tests map one at a time) */

static int heap_mmap(void *ctx, int fd, size_t len, void **addr)
{
	(void)ctx;
	uint8_t *b = malloc(len);
	if (!b)
		return -ENOMEM;
	ssize_t got = sl__os_pread_all(sl__os_default(), fd, b, len, 0);
	if (got != (ssize_t)len) {
		free(b);
		return got < 0 ? (int)got : -EIO;
	}
	*addr = b;
	heap_base = b;
	return 0;
}

static int heap_munmap(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	(void)len;
	free(addr);
	return 0;
}

static struct sl_os_ops heap_ops;
static struct sl_os heap_os_s;

static const struct sl_os *heap_os(void)
{
	if (!heap_os_s.ops) {
		heap_ops = *sl__os_default()->ops;
		heap_ops.mmap = heap_mmap;
		heap_ops.munmap = heap_munmap;
		heap_os_s.ops = &heap_ops;
	}
	return &heap_os_s;
}

/* ---- Stderr capture ----------------------------------------------------------------------- */

struct cap {
	int saved;
	char path[128];
};

static void cap_begin(struct cap *c, const struct tdir *t)
{
	snprintf(c->path, sizeof(c->path), "%s/stderr.txt", t->path);
	fflush(stderr);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

/* Restore stderr; return what was written, NUL-terminated (free it). */
static char *cap_end(struct cap *c)
{
	fflush(stderr);
	assert_int_equal(dup2(c->saved, 2), 2);
	close(c->saved);
	size_t n;
	uint8_t *b = sl_test_slurp(c->path, &n);
	b[n] = 0;
	unlink(c->path);
	return (char *)b;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- The model: what the test wrote ------------------------------------------------------- */

struct ent {
	uint8_t key[SL_SST_MAX_KEY];
	uint8_t klen;
	uint8_t flags;
	uint32_t vlen;
	uint64_t vseed;
};

static void fill_value(uint8_t *b, uint64_t seed, size_t n)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = rnd_next(&s);
		memcpy(b + i, &r, n - i < 8 ? n - i : 8);
	}
}

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

/* Sort the model and drop duplicate keys; *n shrinks accordingly. */
static void sort_unique(struct ent *e, size_t *n)
{
	qsort(e, *n, sizeof(*e), ent_cmp);
	size_t m = 0;
	for (size_t i = 0; i < *n; i++)
		if (!m || ent_cmp(&e[m - 1], &e[i]))
			e[m++] = e[i];
	*n = m;
}

/* A random key: a few bytes from a small alphabet (so neighbours share prefixes and prefix
 * compression has work to do), then random bytes (zeros included), 1..max bytes in all. */
static void random_key(uint64_t *s, uint8_t *k, uint8_t *klen, size_t max)
{
	size_t n = 1 + rnd_next(s) % max;
	for (size_t i = 0; i < n; i++)
		k[i] = i < 3 ? (uint8_t)('a' + rnd_next(s) % 3) : (uint8_t)rnd_next(s);
	*klen = (uint8_t)n;
}

/* n random entries, sorted and without duplicates (n may shrink by a few). Values are
 * 0..max_v bytes; about one in eight entries is a tombstone. */
static struct ent *model_random(size_t *n, uint64_t seed, size_t max_k, size_t max_v)
{
	struct ent *e = calloc(*n ? *n : 1, sizeof(*e));
	assert_non_null(e);
	uint64_t s = seed;
	for (size_t i = 0; i < *n; i++) {
		random_key(&s, e[i].key, &e[i].klen, max_k);
		e[i].vlen = (uint32_t)(rnd_next(&s) % (max_v + 1));
		e[i].vseed = rnd_next(&s);
		e[i].flags = rnd_next(&s) % 8 == 0 ? SL_SST_TOMBSTONE : 0;
	}
	sort_unique(e, n);
	return e;
}

static int model_find(const struct ent *e, size_t n, const uint8_t *k, size_t klen)
{
	struct ent probe = { .klen = (uint8_t)klen };
	memcpy(probe.key, k, klen);
	return bsearch(&probe, e, n, sizeof(*e), ent_cmp) != NULL;
}

/* The index of the first entry >= k. */
static size_t model_lower(const struct ent *e, size_t n, const uint8_t *k, size_t klen)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(e[mid].key, e[mid].klen, k, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct sl_sst_options opts(uint32_t block, uint32_t restart)
{
	struct sl_sst_options o = { .block_bytes = block,
				    .restart_interval = restart,
				    .no_sync = 1 };
	return o;
}

/* Write the model as a table; returns finish's result. */
static int write_with(const struct sl_os *os, const char *path, const struct sl_sst_options *o,
		      const struct ent *e, size_t n, struct sl_sst_meta *meta)
{
	struct sl_sst_writer *w;
	int r = sl__sst_writer_open(os, acc, path, o, &w);
	if (r < 0)
		return r;
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap = e[i].vlen > cap ? e[i].vlen : cap;
	uint8_t *v = malloc(cap);
	assert_non_null(v);
	for (size_t i = 0; i < n; i++) {
		fill_value(v, e[i].vseed, e[i].vlen);
		r = sl__sst_writer_add(w, e[i].key, e[i].klen, v, e[i].vlen, e[i].flags);
		if (r < 0) {
			free(v);
			sl__sst_writer_abort(w);
			return r;
		}
	}
	free(v);
	return sl__sst_writer_finish(w, meta);
}

static void write_table(const char *path, const struct sl_sst_options *o, const struct ent *e,
			size_t n, struct sl_sst_meta *meta)
{
	struct sl_sst_meta m;
	assert_int_equal(write_with(sl__os_default(), path, o, e, n, meta ? meta : &m), 0);
}

static struct sl_sst *open_ok(const char *path)
{
	struct sl_sst *t;
	assert_int_equal(sl__sst_open(sl__os_default(), acc, path, &t), 0);
	return t;
}

/* Entry i as read: 0 when it is exactly the model's. */
static int check_value(const struct ent *e, const void *val, size_t vlen, uint32_t flags)
{
	if (vlen != e->vlen || flags != e->flags)
		return -1;
	uint8_t *b = malloc(e->vlen ? e->vlen : 1);
	assert_non_null(b);
	fill_value(b, e->vseed, e->vlen);
	int bad = e->vlen && memcmp(b, val, e->vlen);
	free(b);
	return bad ? -1 : 0;
}

static void expect_get(struct sl_sst *t, const struct ent *e)
{
	const void *v = NULL;
	size_t vlen = 99;
	uint32_t flags = 99;
	assert_int_equal(sl__sst_get(t, e->key, e->klen, &v, &vlen, &flags), 0);
	assert_int_equal(check_value(e, v, vlen, flags), 0);
}

/* Every entry comes back from get, exactly. */
static void expect_all_gets(struct sl_sst *t, const struct ent *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_get(t, &e[i]);
}

/* A full scan from seek(NULL, 0) returns exactly the model, then SL_EEND (twice). */
static void expect_scan(struct sl_sst *t, const struct ent *e, size_t n)
{
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	assert_int_equal(sl__sst_iter_seek(it, NULL, 0), 0);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *k, *v;
		size_t klen, vlen;
		uint32_t flags;
		assert_int_equal(sl__sst_iter_next(it, &k, &klen, &v, &vlen, &flags), 0);
		assert_int_equal(klen, e[i].klen);
		assert_memory_equal(k, e[i].key, klen);
		assert_int_equal(check_value(&e[i], v, vlen, flags), 0);
	}
	assert_int_equal(sl__sst_iter_next(it, NULL, NULL, NULL, NULL, NULL), SL_EEND);
	assert_int_equal(sl__sst_iter_next(it, NULL, NULL, NULL, NULL, NULL), SL_EEND);
	sl__sst_iter_free(it);
}

static void expect_verify_ok(struct sl_sst *t)
{
	uint64_t off = 77;
	const char *what = "x";
	assert_int_equal(sl__sst_verify(t, &off, &what), 0);
	assert_int_equal(off, 0);
	assert_null(what);
}

static void expect_meta(const struct sl_sst_meta *m, const struct ent *e, size_t n,
			uint64_t file_bytes)
{
	assert_int_equal(m->entries, n);
	assert_int_equal(m->file_bytes, file_bytes);
	if (n) {
		assert_int_equal(m->smallest_len, e[0].klen);
		assert_memory_equal(m->smallest, e[0].key, e[0].klen);
		assert_int_equal(m->largest_len, e[n - 1].klen);
		assert_memory_equal(m->largest, e[n - 1].key, e[n - 1].klen);
	} else {
		assert_int_equal(m->smallest_len, 0);
		assert_int_equal(m->largest_len, 0);
	}
	assert_int_equal(m->bloom_probes, sl__bloom_probes(SL_BLOOM_DEFAULT_BITS));
	assert_int_equal(m->bloom_bytes, sl__bloom_bytes(n, SL_BLOOM_DEFAULT_BITS));
}

/* ---- The layout, re-derived --------------------------------------------------------------- */

struct layout {
	uint64_t bloom_off, index_off, footer_off, entries;
	uint32_t bloom_size, index_size;
	size_t nblocks;
	uint64_t *boff; /* data block offsets, nblocks + 1 of them (the last is bloom_off) */
	uint8_t (*last)[SL_SST_MAX_KEY]; /* each block's last key, per the index */
	uint8_t *last_len;
	uint64_t *ents; /* file offset of every entry, in order */
	size_t nents;
	uint64_t *dend;	    /* per block: file offset of the end of its entries */
	uint64_t *last_ent; /* per block: file offset of its last entry */
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void layout_of(const char *path, struct layout *l)
{
	size_t n;
	uint8_t *b = sl_test_slurp(path, &n);
	assert_true(n >= FOOTER);
	const uint8_t *f = b + n - FOOTER;
	assert_memory_equal(f, "SLUICEST", 8);
	assert_int_equal(f[8] | f[9] << 8, 1); /* version */
	l->footer_off = n - FOOTER;
	l->bloom_size = le32(f + 12);
	l->bloom_off = le64(f + 16);
	l->index_off = le64(f + 24);
	l->entries = le64(f + 32);
	l->index_size = le32(f + 56);
	assert_int_equal(le32(f + 60), sl__accel_crc32c(acc, f, 60));
	assert_int_equal(l->bloom_off + l->bloom_size, l->index_off);
	assert_int_equal(l->index_off + l->index_size, l->footer_off);
	const uint8_t *ib = b + l->index_off;
	assert_int_equal(le32(ib + l->index_size - 4),
			 sl__accel_crc32c(acc, ib, l->index_size - 4));
	l->nblocks = le32(ib + l->index_size - 8);
	l->boff = calloc(l->nblocks + 1, sizeof(*l->boff));
	l->last = calloc(l->nblocks + 1, sizeof(*l->last));
	l->last_len = calloc(l->nblocks + 1, 1);
	assert_true(l->boff && l->last && l->last_len);
	size_t pos = 1 + ib[0];
	for (size_t i = 0; i < l->nblocks; i++) {
		size_t kl = ib[pos];
		memcpy(l->last[i], ib + pos + 1, kl);
		l->last_len[i] = (uint8_t)kl;
		l->boff[i] = le64(ib + pos + 1 + kl);
		uint32_t size = le32(ib + pos + 1 + kl + 8);
		assert_int_equal(l->boff[i], i ? l->boff[i - 1] + le32(ib + pos - 4) : 0);
		/* The block's own CRC, its last 4 bytes. */
		assert_int_equal(le32(b + l->boff[i] + size - 4),
				 sl__accel_crc32c(acc, b + l->boff[i], size - 4));
		pos += 1 + kl + 12;
		l->boff[i + 1] = l->boff[i] + size;
	}
	assert_int_equal(pos, l->index_size - 8);
	assert_int_equal(l->boff[l->nblocks], l->bloom_off);
	/* Walk every block's entries: varint shared, varint unshared, varint vlen, u8 flags, the
	 * key's unshared bytes, the value. */
	l->ents = calloc(l->entries + 1, sizeof(*l->ents));
	assert_non_null(l->ents);
	l->nents = 0;
	l->dend = calloc(l->nblocks + 1, sizeof(*l->dend));
	l->last_ent = calloc(l->nblocks + 1, sizeof(*l->last_ent));
	assert_true(l->dend && l->last_ent);
	for (size_t i = 0; i < l->nblocks; i++) {
		const uint8_t *p = b + l->boff[i];
		uint32_t size = (uint32_t)(l->boff[i + 1] - l->boff[i]);
		uint32_t nr = le32(p + size - 8), end = size - 8 - 4 * nr, at = 0;
		assert_int_equal(le32(p + end), 0);
		l->dend[i] = l->boff[i] + end;
		while (at < end) {
			assert_true(l->nents < l->entries);
			l->last_ent[i] = l->boff[i] + at;
			l->ents[l->nents++] = l->boff[i] + at;
			uint32_t v[3];
			for (int j = 0; j < 3; j++) {
				v[j] = 0;
				for (int sh = 0;; sh += 7) {
					uint8_t c = p[at++];
					v[j] |= (uint32_t)(c & 0x7f) << sh;
					if (!(c & 0x80))
						break;
				}
			}
			at += 1 + v[1] + v[2];
		}
		assert_int_equal(at, end);
	}
	assert_int_equal(l->nents, l->entries);
	assert_int_equal(le32(b + l->index_off - 4),
			 sl__accel_crc32c(acc, b + l->bloom_off, l->bloom_size - 4));
	free(b);
}

static void layout_free(struct layout *l)
{
	free(l->boff);
	free(l->last);
	free(l->last_len);
	free(l->ents);
	free(l->dend);
	free(l->last_ent);
}

/* The block of a model entry, by the index: the first block whose last key is >= its key. */
static size_t block_of(const struct layout *l, const struct ent *e)
{
	size_t lo = 0, hi = l->nblocks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(l->last[mid], l->last_len[mid], e->key, e->klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	assert_true(lo < l->nblocks);
	return lo;
}

static void flip_in(uint8_t *b, uint64_t off, int bit)
{
	b[off] ^= (uint8_t)(1u << bit);
}

static void expect_open_fails(const char *path, int err)
{
	struct sl_sst *t = (struct sl_sst *)&t;
	assert_int_equal(sl__sst_open(heap_os(), acc, path, &t), err);
	assert_null(t);
}

/* Put valid CRCs back on every damaged part, so nothing but the structural checks stand
 * between the flipped bytes and the reader. */
static void fix_crcs(uint8_t *b, size_t len, const struct layout *l)
{
	for (size_t i = 0; i < l->nblocks; i++) {
		uint8_t *p = b + l->boff[i];
		size_t sz = l->boff[i + 1] - l->boff[i];
		uint32_t crc = sl__accel_crc32c(acc, p, sz - 4);
		memcpy(p + sz - 4, &crc, 4);
	}
	uint32_t crc = sl__accel_crc32c(acc, b + l->bloom_off, l->bloom_size - 4);
	memcpy(b + l->bloom_off + l->bloom_size - 4, &crc, 4);
	crc = sl__accel_crc32c(acc, b + l->index_off, l->index_size - 4);
	memcpy(b + l->index_off + l->index_size - 4, &crc, 4);
	crc = sl__accel_crc32c(acc, b + len - FOOTER, FOOTER - 4);
	memcpy(b + len - 4, &crc, 4);
}

/* ---- Round trips -------------------------------------------------------------------------- */

static void test_writer_finish_empty_table(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct sl_sst_options o = opts(0, 0);
	o.user[0] = 5;
	struct sl_sst_meta wm, rm;
	write_table(d.file, &o, NULL, 0, &wm);
	struct stat st;
	assert_int_equal(stat(d.file, &st), 0);
	expect_meta(&wm, NULL, 0, (uint64_t)st.st_size);
	assert_int_equal(wm.data_blocks, 0);
	struct sl_sst *t = open_ok(d.file);
	sl__sst_get_meta(t, &rm);
	assert_memory_equal(&wm, &rm, sizeof(wm));
	assert_int_equal(rm.user[0], 5);
	assert_int_equal(sl__sst_get(t, "a", 1, NULL, NULL, NULL), SL_ENOTFOUND);
	expect_scan(t, NULL, 0);
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	assert_int_equal(sl__sst_iter_seek(it, "k", 1), 0);
	assert_int_equal(sl__sst_iter_next(it, NULL, NULL, NULL, NULL, NULL), SL_EEND);
	sl__sst_iter_free(it);
	expect_verify_ok(t);
	assert_string_equal(sl__sst_path(t), d.file);
	sl__sst_close(t);
	tdir_free(&d);
}

static void test_writer_add_one_entry(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct ent e = { .key = "order", .klen = 5, .vlen = 7, .vseed = 1 };
	struct sl_sst_options o = opts(0, 0);
	struct sl_sst_meta wm, rm;
	write_table(d.file, &o, &e, 1, &wm);
	struct sl_sst *t = open_ok(d.file);
	sl__sst_get_meta(t, &rm);
	assert_memory_equal(&wm, &rm, sizeof(wm));
	assert_int_equal(rm.data_blocks, 1);
	expect_meta(&rm, &e, 1, rm.file_bytes);
	expect_get(t, &e);
	assert_int_equal(sl__sst_get(t, "orde", 4, NULL, NULL, NULL), SL_ENOTFOUND);
	assert_int_equal(sl__sst_get(t, "order!", 6, NULL, NULL, NULL), SL_ENOTFOUND);
	assert_int_equal(sl__sst_get(t, "", 0, NULL, NULL, NULL), -EINVAL);
	expect_scan(t, &e, 1);
	expect_verify_ok(t);
	sl__sst_close(t);
	tdir_free(&d);
}

static void test_get_many_random_entries(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = scaled(200000, 20000);
	struct ent *e = model_random(&n, 1, 32, 120);
	struct sl_sst_options o = opts(0, 0);
	o.user[0] = 1000;
	o.user[1] = 1000 + n;
	struct sl_sst_meta wm, rm;
	write_table(d.file, &o, e, n, &wm);
	struct sl_sst *t = open_ok(d.file);
	sl__sst_get_meta(t, &rm);
	assert_memory_equal(&wm, &rm, sizeof(wm));
	struct stat st;
	assert_int_equal(stat(d.file, &st), 0);
	expect_meta(&rm, e, n, (uint64_t)st.st_size);
	assert_int_equal(rm.user[0], 1000);
	assert_int_equal(rm.user[1], 1000 + n);
	struct layout l;
	layout_of(d.file, &l);
	assert_int_equal(l.nblocks, rm.data_blocks);
	assert_int_equal(l.entries, n);
	/* Blocks stay within block_bytes (no entry here is near its size). */
	for (size_t i = 0; i < l.nblocks; i++)
		assert_true(l.boff[i + 1] - l.boff[i] <= 4096);
	assert_true(l.nblocks > n / 100);
	layout_free(&l);
	expect_all_gets(t, e, n);
	/* Absent keys miss, and the bloom filter turns nearly all away (1% expected). */
	uint64_t s = 99;
	size_t absent = 0, passed = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t k[SL_SST_MAX_KEY], klen;
		random_key(&s, k, &klen, 32);
		if (model_find(e, n, k, klen))
			continue;
		absent++;
		assert_int_equal(sl__sst_get(t, k, klen, NULL, NULL, NULL), SL_ENOTFOUND);
		passed += sl__sst_may_contain(t, sl__bloom_hash(k, klen)) != 0;
	}
	/* Keys of 1..3 bytes from a 3-letter alphabet are mostly present: ~9% of the draws. */
	assert_true(absent > n * 8 / 10);
	assert_true(passed * 100 < absent * 2);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sl__sst_may_contain(t, sl__bloom_hash(e[i].key, e[i].klen)), 1);
	expect_scan(t, e, n);
	expect_verify_ok(t);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

/* Seek to model keys, to keys between them, before the first and after the last; each time the
 * iterator continues with exactly the model's following entries. */
static void test_iter_seek_random_keys(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = scaled(50000, 5000);
	struct ent *e = model_random(&n, 2, 24, 40);
	struct sl_sst_options o = opts(1024, 8);
	write_table(d.file, &o, e, n, NULL);
	struct sl_sst *t = open_ok(d.file);
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	uint64_t s = 3;
	size_t rounds = scaled(20000, 2000);
	for (size_t r = 0; r < rounds; r++) {
		uint8_t k[SL_SST_MAX_KEY + 1];
		uint8_t klen;
		switch (r % 5) {
		case 0: /* present */
		case 1: {
			const struct ent *x = &e[rnd_next(&s) % n];
			memcpy(k, x->key, x->klen);
			klen = x->klen;
			break;
		}
		case 2: /* random, mostly absent */
			random_key(&s, k, &klen, 24);
			break;
		case 3: /* before the first key */
			k[0] = 0;
			klen = 1;
			if (r % 2)
				klen = 0;
			break;
		default: /* after the last key */
			memset(k, 0xff, SL_SST_MAX_KEY);
			klen = SL_SST_MAX_KEY;
			break;
		}
		assert_int_equal(sl__sst_iter_seek(it, k, klen), 0);
		size_t at = klen ? model_lower(e, n, k, klen) : 0;
		size_t steps = 1 + rnd_next(&s) % 40;
		for (size_t j = 0; j < steps; j++, at++) {
			const uint8_t *kk, *v;
			size_t kl, vl;
			uint32_t fl;
			int rc = sl__sst_iter_next(it, &kk, &kl, &v, &vl, &fl);
			if (at >= n) {
				assert_int_equal(rc, SL_EEND);
				break;
			}
			assert_int_equal(rc, 0);
			assert_int_equal(kl, e[at].klen);
			assert_memory_equal(kk, e[at].key, kl);
			assert_int_equal(check_value(&e[at], v, vl, fl), 0);
		}
	}
	/* Before the first key: the very first entry. */
	assert_int_equal(sl__sst_iter_seek(it, "\0", 1), 0);
	const uint8_t *kk;
	size_t kl;
	assert_int_equal(sl__sst_iter_next(it, &kk, &kl, NULL, NULL, NULL), 0);
	assert_int_equal(kl, e[0].klen);
	assert_memory_equal(kk, e[0].key, kl);
	/* Past the last key: the end at once. */
	assert_int_equal(sl__sst_iter_seek(it, "\xff\xff\xff\xff", 4), 0);
	assert_int_equal(sl__sst_iter_next(it, &kk, &kl, NULL, NULL, NULL), SL_EEND);
	sl__sst_iter_free(it);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

/* Values of size 0 and up to SL_SST_MAX_VALUE, far above the block size, among small ones. */
static void test_get_value_sizes(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 400;
	struct ent *e = model_random(&n, 4, 16, 64);
	uint32_t sizes[] = { 0, 1, 4095, 4096, 4097, 70000, SL_SST_MAX_VALUE };
	for (size_t i = 0; i < n; i++) {
		if (i % 5 == 0)
			e[i].vlen = 0;
		if (i % 37 == 0)
			e[i].vlen = sizes[(i / 37) % (sizeof(sizes) / sizeof(sizes[0]))];
	}
	e[0].vlen = SL_SST_MAX_VALUE;
	e[n - 1].vlen = SL_SST_MAX_VALUE;
	struct sl_sst_options o = opts(4096, 16);
	write_table(d.file, &o, e, n, NULL);
	struct sl_sst *t = open_ok(d.file);
	expect_all_gets(t, e, n);
	expect_scan(t, e, n);
	expect_verify_ok(t);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

static void test_get_tombstone_flags(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 3000;
	struct ent *e = model_random(&n, 5, 20, 30);
	for (size_t i = 0; i < n; i++) {
		e[i].flags = (i % 3 == 0) ? SL_SST_TOMBSTONE : (uint8_t)(i % 3 == 1 ? 0 : 0x80);
		if (e[i].flags == SL_SST_TOMBSTONE)
			e[i].vlen = 0;
	}
	struct sl_sst_options o = opts(512, 4);
	write_table(d.file, &o, e, n, NULL);
	struct sl_sst *t = open_ok(d.file);
	expect_all_gets(t, e, n);
	expect_scan(t, e, n);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

/* Restart intervals from 1 (every key whole) to more than a block holds; block sizes from the
 * minimum (every entry its own oversized block) to 64 KiB; keys of the maximum length. */
static void test_get_block_and_restart_options(void **state)
{
	(void)state;
	uint32_t blocks[] = { 64, 256, 4096, 65536 };
	uint32_t restarts[] = { 1, 2, 16, 1000 };
	for (size_t b = 0; b < 4; b++) {
		for (size_t r = 0; r < 4; r++) {
			struct tdir d;
			tdir_new(&d);
			size_t n = scaled(3000, 600);
			struct ent *e = model_random(&n, 10 + b * 4 + r, SL_SST_MAX_KEY, 100);
			for (size_t i = 0; i < n; i += 7) {
				/* Keys of the maximum length too. */
				memset(e[i].key + e[i].klen, 0xff, SL_SST_MAX_KEY - e[i].klen);
				e[i].klen = SL_SST_MAX_KEY;
			}
			sort_unique(e, &n);
			struct sl_sst_options o = opts(blocks[b], restarts[r]);
			write_table(d.file, &o, e, n, NULL);
			struct sl_sst *t = open_ok(d.file);
			expect_all_gets(t, e, n);
			expect_scan(t, e, n);
			expect_verify_ok(t);
			sl__sst_close(t);
			free(e);
			tdir_free(&d);
		}
	}
}

/* ---- Argument errors ---------------------------------------------------------------------- */

static void test_writer_add_order(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct sl_sst_options o = opts(0, 0);
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, d.file, &o, &w), 0);
	assert_int_equal(sl__sst_writer_add(w, "b", 1, "1", 1, 0), 0);
	assert_int_equal(sl__sst_writer_add(w, "b", 1, "2", 1, 0), SL_EORDER);
	assert_int_equal(sl__sst_writer_add(w, "a", 1, "2", 1, 0), SL_EORDER);
	assert_int_equal(sl__sst_writer_add(w, "ab", 2, "2", 1, 0), SL_EORDER);
	/* A refused entry leaves the writer as it was. */
	assert_int_equal(sl__sst_writer_add(w, "b\0", 2, "3", 1, 0), 0);
	assert_int_equal(sl__sst_writer_add(w, "b", 1, "4", 1, 0), SL_EORDER);
	assert_int_equal(sl__sst_writer_add(w, "c", 1, "5", 1, 0), 0);
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), 0);
	assert_int_equal(m.entries, 3);
	struct sl_sst *t = open_ok(d.file);
	const void *v;
	size_t vlen;
	assert_int_equal(sl__sst_get(t, "b\0", 2, &v, &vlen, NULL), 0);
	assert_int_equal(vlen, 1);
	assert_memory_equal(v, "3", 1);
	assert_int_equal(sl__sst_get(t, "c", 1, &v, &vlen, NULL), 0);
	assert_memory_equal(v, "5", 1);
	assert_int_equal(sl__sst_get(t, "a", 1, &v, &vlen, NULL), SL_ENOTFOUND);
	expect_verify_ok(t);
	sl__sst_close(t);
	tdir_free(&d);
}

static void test_writer_add_bad_lengths(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct sl_sst_options o = opts(0, 0);
	struct sl_sst_writer *w;
	uint8_t k[SL_SST_MAX_KEY + 1];
	memset(k, 'k', sizeof(k));
	uint8_t *big = calloc(1, SL_SST_MAX_VALUE + 1);
	assert_non_null(big);
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, d.file, &o, &w), 0);
	assert_int_equal(sl__sst_writer_add(w, k, 0, "v", 1, 0), -EINVAL);
	assert_int_equal(sl__sst_writer_add(w, k, SL_SST_MAX_KEY + 1, "v", 1, 0), -EINVAL);
	assert_int_equal(sl__sst_writer_add(w, k, 1, big, SL_SST_MAX_VALUE + 1, 0), -EINVAL);
	assert_int_equal(sl__sst_writer_add(w, k, 1, "v", 1, 0x100), -EINVAL);
	assert_int_equal(sl__sst_writer_add(w, k, SL_SST_MAX_KEY, big, SL_SST_MAX_VALUE, 0), 0);
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), 0);
	assert_int_equal(m.entries, 1);
	struct sl_sst *t = open_ok(d.file);
	const void *v;
	size_t vlen;
	assert_int_equal(sl__sst_get(t, k, SL_SST_MAX_KEY, &v, &vlen, NULL), 0);
	assert_int_equal(vlen, SL_SST_MAX_VALUE);
	assert_memory_equal(v, big, SL_SST_MAX_VALUE);
	assert_int_equal(sl__sst_get(t, k, SL_SST_MAX_KEY + 1, &v, &vlen, NULL), -EINVAL);
	sl__sst_close(t);
	free(big);
	tdir_free(&d);
}

static void test_writer_open_bad_options(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct sl_sst_writer *w = (struct sl_sst_writer *)&w;
	struct sl_sst_options bad[] = {
		{ .block_bytes = 16 },
		{ .block_bytes = 1u << 30 },
		{ .restart_interval = (1u << 16) + 1 },
		{ .bloom_bits_per_key = 1000 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, d.file, &bad[i], &w),
				 SL_ECONFIG);
		assert_null(w);
		assert_false(sl_test_file_exists(d.file));
	}
	/* NULL options are the defaults. */
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, d.file, NULL, &w), 0);
	sl__sst_writer_abort(w);
	assert_false(sl_test_file_exists(d.file));
	sl__sst_writer_abort(NULL);
	tdir_free(&d);
}

/* O_EXCL: an existing file is never overwritten. */
static void test_writer_open_exists(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	spew(d.file, (const uint8_t *)"keep", 4);
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, d.file, NULL, &w), -EEXIST);
	size_t n;
	uint8_t *b = sl_test_slurp(d.file, &n);
	assert_int_equal(n, 4);
	assert_memory_equal(b, "keep", 4);
	free(b);
	tdir_free(&d);
}

static void test_writer_abort_removes_file(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct sl_sst_options o = opts(128, 0);
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, d.file, &o, &w), 0);
	char k[16];
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k%05d", i);
		assert_int_equal(sl__sst_writer_add(w, k, strlen(k), k, strlen(k), 0), 0);
	}
	assert_true(sl_test_file_exists(d.file));
	sl__sst_writer_abort(w);
	assert_false(sl_test_file_exists(d.file));
	tdir_free(&d);
}

static void test_get_meta_user_values(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 1000;
	struct ent *e = model_random(&n, 6, 16, 16);
	struct sl_sst_options o = opts(0, 0);
	o.user[0] = 0xfedcba9876543210ull;
	o.user[1] = UINT64_MAX;
	o.bloom_bits_per_key = 16;
	struct sl_sst_meta wm, rm;
	write_table(d.file, &o, e, n, &wm);
	struct sl_sst *t = open_ok(d.file);
	sl__sst_get_meta(t, &rm);
	assert_memory_equal(&wm, &rm, sizeof(wm));
	assert_int_equal(rm.user[0], 0xfedcba9876543210ull);
	assert_int_equal(rm.user[1], UINT64_MAX);
	assert_int_equal(rm.bloom_probes, sl__bloom_probes(16));
	assert_int_equal(rm.bloom_bytes, sl__bloom_bytes(n, 16));
	assert_int_equal(rm.entries, n);
	assert_int_equal(rm.smallest_len, e[0].klen);
	assert_memory_equal(rm.smallest, e[0].key, e[0].klen);
	assert_int_equal(rm.largest_len, e[n - 1].klen);
	assert_memory_equal(rm.largest, e[n - 1].key, e[n - 1].klen);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

/* ---- Corruption --------------------------------------------------------------------------- */

/* A bit flip in one data block: the table opens, that block's keys are SL_ECORRUPT (reported
 * once, naming file and block offset), every other key still reads, and verify names it. */
static void test_get_corrupt_data_block(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 5000;
	struct ent *e = model_random(&n, 7, 20, 60);
	struct sl_sst_options o = opts(1024, 16);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	size_t bad = l.nblocks / 2;
	sl_test_flip_bit(d.file, l.boff[bad] + 37, 3);

	struct sl_sst *t = open_ok(d.file);
	struct cap c;
	cap_begin(&c, &d);
	size_t in_bad = 0;
	for (size_t i = 0; i < n; i++) {
		size_t b = block_of(&l, &e[i]);
		if (b == bad) {
			in_bad++;
			assert_int_equal(sl__sst_get(t, e[i].key, e[i].klen, NULL, NULL, NULL),
					 SL_ECORRUPT);
		} else {
			expect_get(t, &e[i]);
		}
	}
	char *err = cap_end(&c);
	assert_true(in_bad > 1);
	char want[256];
	snprintf(want, sizeof(want),
		 "sluice: sst: %s: data block checksum mismatch at offset %llu\n", d.file,
		 (unsigned long long)l.boff[bad]);
	assert_string_equal(err, want);
	free(err);

	/* A scan returns everything before the block, then the error, which sticks. */
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	size_t i = 0;
	int r;
	const uint8_t *k;
	size_t klen;
	while ((r = sl__sst_iter_next(it, &k, &klen, NULL, NULL, NULL)) == 0) {
		assert_int_equal(klen, e[i].klen);
		assert_memory_equal(k, e[i].key, klen);
		i++;
	}
	assert_int_equal(r, SL_ECORRUPT);
	assert_int_equal(block_of(&l, &e[i]), bad);
	assert_int_equal(sl__sst_iter_next(it, &k, &klen, NULL, NULL, NULL), SL_ECORRUPT);
	/* Seeking into the block fails; seeking past it works. */
	assert_int_equal(sl__sst_iter_seek(it, e[i].key, e[i].klen), SL_ECORRUPT);
	size_t after = i;
	while (block_of(&l, &e[after]) == bad)
		after++;
	assert_int_equal(sl__sst_iter_seek(it, e[after].key, e[after].klen), 0);
	assert_int_equal(sl__sst_iter_next(it, &k, &klen, NULL, NULL, NULL), 0);
	assert_memory_equal(k, e[after].key, klen);
	sl__sst_iter_free(it);

	uint64_t off;
	const char *what;
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, l.boff[bad]);
	assert_string_equal(what, "data block checksum mismatch");
	sl__sst_close(t);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* verify names the first bad block when several are bad. */
static void test_verify_names_first_bad_block(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 3000;
	struct ent *e = model_random(&n, 8, 20, 60);
	struct sl_sst_options o = opts(512, 16);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	/* The last byte of a block is its CRC; the block at the far end of the verify batches. */
	size_t b1 = l.nblocks > 70 ? 66 : l.nblocks - 2, b2 = l.nblocks - 1;
	sl_test_flip_bit(d.file, l.boff[b2], 0);
	sl_test_flip_bit(d.file, l.boff[b1 + 1] - 1, 7);
	struct sl_sst *t = open_ok(d.file);
	uint64_t off;
	const char *what;
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, l.boff[b1]);
	assert_non_null(what);
	/* NULL outputs are allowed. */
	assert_int_equal(sl__sst_verify(t, NULL, NULL), SL_ECORRUPT);
	sl__sst_close(t);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* Blocks damaged with their CRC recomputed (a writer bug, a hand-made file): each fault in the
 * structure is SL_ECORRUPT for exactly the lookups that meet it, and verify names the block. */
static void test_get_malformed_block_valid_crc(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 600;
	struct ent *e = model_random(&n, 25, 20, 60);
	struct sl_sst_options o = opts(1024, 4);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	size_t len;
	uint8_t *pristine = sl_test_slurp(d.file, &len);
	uint8_t *b = malloc(len);
	assert_non_null(b);
	struct cap c;
	const void *v;
	size_t vlen;
	uint64_t off;
	const char *what;
	const struct ent *first = &e[0], *last0 = NULL;
	for (size_t i = 0; i < n && block_of(&l, &e[i]) == 0; i++)
		last0 = &e[i];
	assert_true(last0 && last0 != first);

	/* 1. The first entry claims a shared prefix: no previous key to share with. */
	memcpy(b, pristine, len);
	b[0] = 1;
	fix_crcs(b, len, &l);
	spew(d.file, b, len);
	struct sl_sst *t = open_ok(d.file);
	cap_begin(&c, &d);
	assert_int_equal(sl__sst_get(t, first->key, first->klen, &v, &vlen, NULL), SL_ECORRUPT);
	assert_int_equal(sl__sst_get(t, first->key, first->klen, &v, &vlen, NULL), SL_ECORRUPT);
	char *msg = cap_end(&c);
	char want[256];
	snprintf(want, sizeof(want), "sluice: sst: %s: malformed entry in data block at offset 0\n",
		 d.file);
	assert_string_equal(msg, want);
	free(msg);
	expect_get(t, &e[n - 1]);
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, 0);
	assert_string_equal(what, "bad restart point in data block");
	sl__sst_close(t);

	/* 2. An absurd restart count. */
	memcpy(b, pristine, len);
	memset(b + l.boff[1] - 8, 0xff, 4);
	fix_crcs(b, len, &l);
	spew(d.file, b, len);
	t = open_ok(d.file);
	cap_begin(&c, &d);
	assert_int_equal(sl__sst_get(t, last0->key, last0->klen, &v, &vlen, NULL), SL_ECORRUPT);
	free(cap_end(&c));
	expect_get(t, &e[n - 1]);
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, 0);
	assert_string_equal(what, "bad restart count in data block");
	sl__sst_close(t);

	/* 3. The block's last value runs past its entries (into the restart array). */
	memcpy(b, pristine, len);
	assert_true(b[l.last_ent[0] + 2] < 64);
	b[l.last_ent[0] + 2] += 64;
	fix_crcs(b, len, &l);
	spew(d.file, b, len);
	t = open_ok(d.file);
	cap_begin(&c, &d);
	assert_int_equal(sl__sst_get(t, last0->key, last0->klen, &v, &vlen, NULL), SL_ECORRUPT);
	free(cap_end(&c));
	/* The block is now known bad: its other keys fail too, other blocks still read. */
	assert_int_equal(sl__sst_get(t, first->key, first->klen, &v, &vlen, NULL), SL_ECORRUPT);
	expect_get(t, &e[n - 1]);
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, 0);
	assert_string_equal(what, "malformed entry in data block");
	sl__sst_close(t);

	/* 4. A restart point off the entry boundaries: verify finds it. */
	memcpy(b, pristine, len);
	uint32_t nr = le32(b + l.boff[1] - 8);
	assert_true(nr >= 2);
	uint8_t *r1 = b + l.dend[0] + 4;
	uint32_t r1v = le32(r1) + 1;
	memcpy(r1, &r1v, 4);
	fix_crcs(b, len, &l);
	spew(d.file, b, len);
	t = open_ok(d.file);
	cap_begin(&c, &d);
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, 0);
	assert_string_equal(what, "restart point not on an entry boundary");
	free(cap_end(&c));
	sl__sst_close(t);

	/* 5. Two keys swapped in order across blocks: verify names the second block. */
	memcpy(b, pristine, len);
	size_t k1 = 0;
	while (block_of(&l, &e[k1]) == 0)
		k1++;
	assert_int_equal(b[l.ents[k1]], 0); /* the first entry of block 1: a whole key */
	memset(b + l.ents[k1] + 4, 0, 1);   /* its first byte 0: below block 0's keys */
	fix_crcs(b, len, &l);
	spew(d.file, b, len);
	t = open_ok(d.file);
	assert_int_equal(sl__sst_verify(t, &off, &what), SL_ECORRUPT);
	assert_int_equal(off, l.boff[1]);
	assert_string_equal(what, "keys not increasing");
	sl__sst_close(t);

	free(b);
	free(pristine);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* Every bit of the given range flipped in turn (at most max_bits of them, spread evenly): the
 * open fails with err and one stderr line naming the file. */
static void flip_range_expect(const struct tdir *d, uint64_t from, uint64_t len, size_t max_bits,
			      int err)
{
	size_t n;
	uint8_t *pristine = sl_test_slurp(d->file, &n);
	uint64_t bits = len * 8, step = bits > max_bits ? bits / max_bits : 1;
	struct cap c;
	for (uint64_t b = 0; b < bits; b += step) {
		uint8_t *copy = malloc(n);
		assert_non_null(copy);
		memcpy(copy, pristine, n);
		flip_in(copy, from + b / 8, (int)(b % 8));
		spew(d->file, copy, n);
		free(copy);
		cap_begin(&c, d);
		expect_open_fails(d->file, err);
		char *msg = cap_end(&c);
		assert_int_equal(count_lines(msg), 1);
		assert_non_null(strstr(msg, d->file));
		assert_non_null(strstr(msg, " at offset "));
		free(msg);
	}
	spew(d->file, pristine, n);
	free(pristine);
}

static void test_open_corrupt_index(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 2000;
	struct ent *e = model_random(&n, 9, 20, 60);
	struct sl_sst_options o = opts(1024, 16);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	flip_range_expect(&d, l.index_off, l.index_size, scaled(4000, 800), SL_ECORRUPT);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

static void test_open_corrupt_bloom(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 2000;
	struct ent *e = model_random(&n, 10, 20, 60);
	struct sl_sst_options o = opts(1024, 16);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	flip_range_expect(&d, l.bloom_off, l.bloom_size, scaled(2000, 500), SL_ECORRUPT);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* All 512 bits of the footer, one at a time. */
static void test_open_corrupt_footer(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 500;
	struct ent *e = model_random(&n, 11, 20, 60);
	struct sl_sst_options o = opts(1024, 16);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	flip_range_expect(&d, l.footer_off, FOOTER, FOOTER * 8, SL_ECORRUPT);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* A footer that checks out but names another format version: SL_EVERSION. */
static void test_open_unknown_version(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 50;
	struct ent *e = model_random(&n, 12, 20, 60);
	write_table(d.file, NULL, e, n, NULL);
	size_t len;
	uint8_t *b = sl_test_slurp(d.file, &len);
	uint8_t *f = b + len - FOOTER;
	f[8] = 2;
	uint32_t crc = sl__accel_crc32c(acc, f, 60);
	memcpy(f + 60, &crc, 4);
	spew(d.file, b, len);
	struct cap c;
	cap_begin(&c, &d);
	expect_open_fails(d.file, SL_EVERSION);
	char *msg = cap_end(&c);
	assert_non_null(strstr(msg, "format version 2 not supported"));
	free(msg);
	free(b);
	free(e);
	tdir_free(&d);
}

/* Truncated at every length (a stride of them for the larger table): never a crash, always
 * SL_ECORRUPT, nothing leaked. */
static void test_open_truncated(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 300;
	struct ent *e = model_random(&n, 13, 20, 40);
	struct sl_sst_options o = opts(512, 4);
	write_table(d.file, &o, e, n, NULL);
	size_t len;
	uint8_t *b = sl_test_slurp(d.file, &len);
	struct fault_os *fo = fault_os_new();
	struct cap c;
	cap_begin(&c, &d);
	size_t step = quick ? 7 : 1;
	for (size_t cut = 0; cut < len; cut += (cut < 200 || len - cut < 200) ? 1 : step) {
		spew(d.file, b, cut);
		struct sl_sst *t;
		assert_int_equal(sl__sst_open(fault_os_get(fo), acc, d.file, &t), SL_ECORRUPT);
	}
	char *msg = cap_end(&c);
	assert_non_null(strstr(msg, "file too short for a footer at offset 0"));
	free(msg);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	/* Extended with zeros, garbage or a second copy: also refused. */
	uint8_t *b2 = malloc(2 * len);
	assert_non_null(b2);
	memcpy(b2, b, len);
	memset(b2 + len, 0, len);
	spew(d.file, b2, len + 100);
	cap_begin(&c, &d);
	expect_open_fails(d.file, SL_ECORRUPT);
	memcpy(b2 + len, b, len);
	spew(d.file, b2, 2 * len);
	expect_open_fails(d.file, SL_ECORRUPT);
	free(cap_end(&c));
	free(b2);
	free(b);
	free(e);
	tdir_free(&d);
}

static void test_open_garbage_and_empty(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	struct cap c;
	cap_begin(&c, &d);
	spew(d.file, NULL, 0);
	expect_open_fails(d.file, SL_ECORRUPT);
	uint8_t g[8192];
	uint64_t s = 14;
	for (size_t i = 0; i < sizeof(g); i++)
		g[i] = (uint8_t)rnd_next(&s);
	spew(d.file, g, sizeof(g));
	expect_open_fails(d.file, SL_ECORRUPT);
	/* The right magic in the right place, the rest garbage. */
	memcpy(g + sizeof(g) - FOOTER, "SLUICEST", 8);
	spew(d.file, g, sizeof(g));
	expect_open_fails(d.file, SL_ECORRUPT);
	char *msg = cap_end(&c);
	char want[512];
	snprintf(want, sizeof(want),
		 "sluice: sst: %s: file too short for a footer at offset 0\n"
		 "sluice: sst: %s: bad footer magic (not a table, or truncated) at offset %zu\n"
		 "sluice: sst: %s: footer checksum mismatch at offset %zu\n",
		 d.file, d.file, sizeof(g) - FOOTER, d.file, sizeof(g) - FOOTER);
	assert_string_equal(msg, want);
	free(msg);
	/* Missing: the errno. */
	unlink(d.file);
	expect_open_fails(d.file, -ENOENT);
	tdir_free(&d);
}

/* Read the first and last byte of what a table handed out (ASan checks they exist). */
static void touch(const void *p, size_t n)
{
	volatile uint8_t sink = 0;
	if (n)
		sink = (uint8_t)(((const uint8_t *)p)[0] ^ ((const uint8_t *)p)[n - 1]);
	(void)sink;
}

/* A value handed out lies wholly inside the entries of one data block of the table last opened
 * through heap_os: an overrun inside the file is invisible to ASan but caught here. */
static void assert_in_block(const struct layout *l, const void *p, size_t n)
{
	const uint8_t *q = p;
	assert_true(q >= heap_base && q <= heap_base + l->bloom_off);
	uint64_t off = (uint64_t)(q - heap_base);
	size_t lo = 0, hi = l->nblocks;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->boff[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	assert_true(off + n <= l->dend[lo]);
}

/* Everything a table can answer, checked against the model: each answer is exact or an error
 * the contract allows; never a crash, never a wrong value. strict: the CRCs are intact, so a
 * present key may not be reported missing and a damaged table must fail verify. */
static void exercise(struct sl_sst *t, const struct ent *e, size_t n, int strict,
		     const struct layout *l)
{
	for (size_t i = 0; i < n; i++) {
		const void *v;
		size_t vlen;
		uint32_t fl;
		int r = sl__sst_get(t, e[i].key, e[i].klen, &v, &vlen, &fl);
		if (r == 0 && strict)
			assert_int_equal(check_value(&e[i], v, vlen, fl), 0);
		else if (strict)
			assert_int_equal(r, SL_ECORRUPT);
		else
			assert_true(r == 0 || r == SL_ECORRUPT || r == SL_ENOTFOUND);
		if (r == 0) {
			touch(v, vlen);
			assert_in_block(l, v, vlen);
		}
	}
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	int r;
	size_t i = 0;
	const uint8_t *k, *v;
	size_t klen, vlen;
	uint32_t fl;
	while ((r = sl__sst_iter_next(it, &k, &klen, &v, &vlen, &fl)) == 0) {
		assert_true(klen >= 1 && klen <= SL_SST_MAX_KEY);
		if (strict) {
			assert_true(i < n);
			assert_int_equal(klen, e[i].klen);
			assert_memory_equal(k, e[i].key, klen);
			assert_int_equal(check_value(&e[i], v, vlen, fl), 0);
		} else {
			touch(k, klen);
			touch(v, vlen);
		}
		assert_in_block(l, v, vlen);
		i++;
	}
	assert_true(r == SL_EEND || r == SL_ECORRUPT);
	if (strict && r == SL_EEND)
		assert_int_equal(i, n);
	for (int j = 0; j < 20; j++) {
		const struct ent *x = &e[(size_t)j * 7919 % n];
		r = sl__sst_iter_seek(it, x->key, x->klen);
		assert_true(r == 0 || r == SL_ECORRUPT);
		r = sl__sst_iter_next(it, &k, &klen, &v, &vlen, &fl);
		assert_true(r == 0 || r == SL_ECORRUPT || r == SL_EEND);
	}
	sl__sst_iter_free(it);
	uint64_t off;
	const char *what;
	r = sl__sst_verify(t, &off, &what);
	assert_true(r == 0 || r == SL_ECORRUPT);
	if (r == SL_ECORRUPT)
		assert_non_null(what);
}

/* Random bit flips all over a table: the open fails, or every answer is right or an error. */
static void test_open_fuzz_bit_flips(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 1500;
	struct ent *e = model_random(&n, 15, 24, 80);
	struct sl_sst_options o = opts(1024, 8);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	size_t len;
	uint8_t *pristine = sl_test_slurp(d.file, &len);
	uint8_t *copy = malloc(len);
	assert_non_null(copy);
	uint64_t s = 16;
	size_t rounds = scaled(400, 200), opened = 0;
	struct cap c;
	cap_begin(&c, &d);
	for (size_t r = 0; r < rounds; r++) {
		memcpy(copy, pristine, len);
		size_t flips = 1 + rnd_next(&s) % 8;
		for (size_t f = 0; f < flips; f++)
			flip_in(copy, rnd_next(&s) % len, (int)(rnd_next(&s) % 8));
		spew(d.file, copy, len);
		struct sl_sst *t;
		int rc = sl__sst_open(heap_os(), acc, d.file, &t);
		assert_true(rc == 0 || rc == SL_ECORRUPT);
		if (rc)
			continue;
		opened++;
		exercise(t, e, n, 1, &l);
		sl__sst_close(t);
	}
	free(cap_end(&c));
	/* Most flips land in data blocks, which leave the table open. */
	assert_true(opened > rounds / 2);
	layout_free(&l);
	free(copy);
	free(pristine);
	free(e);
	tdir_free(&d);
}

/* Random flips with every CRC recomputed: the reader must still never read out of bounds
 * (run it under ASan) and answer only what the contract allows. */
static void test_open_fuzz_fixed_crcs(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 1500;
	struct ent *e = model_random(&n, 17, 24, 80);
	struct sl_sst_options o = opts(1024, 8);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	size_t len;
	uint8_t *pristine = sl_test_slurp(d.file, &len);
	uint8_t *copy = malloc(len);
	assert_non_null(copy);
	uint64_t s = 18;
	size_t rounds = scaled(600, 300), opened = 0;
	struct cap c;
	cap_begin(&c, &d);
	for (size_t r = 0; r < rounds; r++) {
		memcpy(copy, pristine, len);
		size_t flips = 1 + rnd_next(&s) % 4;
		for (size_t f = 0; f < flips; f++) {
			/* Mostly the structure: block trailers and entry headers, the index. */
			uint64_t at;
			switch (rnd_next(&s) % 6) {
			case 4: /* an entry's header: its lengths */
				at = l.ents[rnd_next(&s) % l.nents] + rnd_next(&s) % 4;
				break;
			case 5: /* the header of a block's last entry: may point past the block */
				at = l.last_ent[rnd_next(&s) % l.nblocks] + rnd_next(&s) % 4;
				break;
			case 0: {
				size_t b = rnd_next(&s) % l.nblocks;
				at = l.boff[b + 1] - 5 - rnd_next(&s) % 40;
				break;
			}
			case 1:
				at = l.index_off + rnd_next(&s) % (l.index_size - 4);
				break;
			case 2:
				at = l.footer_off + rnd_next(&s) % (FOOTER - 4);
				break;
			default:
				at = rnd_next(&s) % l.bloom_off;
				break;
			}
			flip_in(copy, at, (int)(rnd_next(&s) % 8));
		}
		fix_crcs(copy, len, &l);
		spew(d.file, copy, len);
		struct sl_sst *t;
		int rc = sl__sst_open(heap_os(), acc, d.file, &t);
		assert_true(rc == 0 || rc == SL_ECORRUPT || rc == SL_EVERSION);
		if (rc)
			continue;
		opened++;
		exercise(t, e, n, 0, &l);
		sl__sst_close(t);
	}
	free(cap_end(&c));
	assert_true(opened > 0);
	free(copy);
	free(pristine);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* ---- Faults ------------------------------------------------------------------------------- */

static void expect_no_leak(struct fault_os *fo)
{
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
}

/* ENOSPC on a block write in the middle: that add and every later one fail with it, finish
 * returns it, and the file is gone. */
static void test_writer_add_enospc_mid_table(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 2000;
	struct ent *e = model_random(&n, 19, 20, 60);
	struct fault_os *fo = fault_os_new();
	fault_os_fail(fo, FAULT_PWRITE, 5, -ENOSPC, 0);
	struct sl_sst_options o = opts(512, 16);
	o.no_sync = 0;
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(fault_os_get(fo), acc, d.file, &o, &w), 0);
	size_t first_fail = n;
	uint8_t v[128];
	for (size_t i = 0; i < n; i++) {
		fill_value(v, e[i].vseed, e[i].vlen);
		int r = sl__sst_writer_add(w, e[i].key, e[i].klen, v, e[i].vlen, 0);
		if (r < 0) {
			assert_int_equal(r, -ENOSPC);
			if (first_fail == n)
				first_fail = i;
		} else {
			assert_int_equal(first_fail, n);
		}
	}
	assert_true(first_fail > 0 && first_fail < n);
	assert_int_equal(fault_os_calls(fo, FAULT_PWRITE), 5);
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), -ENOSPC);
	assert_false(sl_test_file_exists(d.file));
	assert_int_equal(fault_os_calls(fo, FAULT_FDATASYNC), 0);
	expect_no_leak(fo);
	fault_os_free(fo);
	free(e);
	tdir_free(&d);
}

/* The failures of finish, one by one: the write of the tail, the fdatasync, the close, the
 * directory sync. Each returns the error and leaves no file. */
static void test_writer_finish_faults(void **state)
{
	(void)state;
	struct {
		enum fault_op op;
		int err;
	} cases[] = {
		{ FAULT_PWRITE, -ENOSPC },  { FAULT_PWRITE, -EIO },    { FAULT_FDATASYNC, -ENOSPC },
		{ FAULT_FDATASYNC, -EIO },  { FAULT_CLOSE, -EIO },     { FAULT_SYNC_DIR, -EIO },
		{ FAULT_REALLOC, -ENOMEM }, { FAULT_MALLOC, -ENOMEM },
	};
	size_t n = 500;
	struct ent *e = model_random(&n, 20, 20, 60);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct tdir d;
		tdir_new(&d);
		struct fault_os *fo = fault_os_new();
		struct sl_sst_options o = opts(1024, 16);
		o.no_sync = 0;
		struct sl_sst_writer *w;
		assert_int_equal(sl__sst_writer_open(fault_os_get(fo), acc, d.file, &o, &w), 0);
		uint8_t v[128];
		for (size_t i = 0; i < n; i++) {
			fill_value(v, e[i].vseed, e[i].vlen);
			assert_int_equal(
				sl__sst_writer_add(w, e[i].key, e[i].klen, v, e[i].vlen, 0), 0);
		}
		/* Armed now, the next call of the op is finish's own. */
		fault_os_fail(fo, cases[c].op, 1, cases[c].err, 0);
		struct sl_sst_meta m;
		int r = sl__sst_writer_finish(w, &m);
		if (cases[c].op == FAULT_MALLOC || cases[c].op == FAULT_REALLOC)
			assert_true(r == -ENOMEM || r == 0);
		else
			assert_int_equal(r, cases[c].err);
		assert_int_equal(sl_test_file_exists(d.file), r == 0);
		expect_no_leak(fo);
		fault_os_free(fo);
		tdir_free(&d);
	}
	free(e);
}

/* A torn final write that reports success (the disk lies; a crash follows): the table that
 * remains must not open as valid. fault_os's crash mode then swallows the fdatasync. */
static void test_writer_finish_torn_tail(void **state)
{
	(void)state;
	size_t n = 800;
	struct ent *e = model_random(&n, 21, 20, 60);
	struct sl_sst_options o = opts(1024, 16);
	struct sl_sst_meta m;
	struct tdir d;
	tdir_new(&d);
	write_table(d.file, &o, e, n, &m);
	struct layout l;
	layout_of(d.file, &l);
	unlink(d.file);
	uint64_t tail = m.file_bytes - l.bloom_off;
	uint64_t keeps[] = { 0, 1, 64, tail / 2, tail - FOOTER, tail - 4, tail - 1 };
	struct cap c;
	cap_begin(&c, &d);
	for (size_t k = 0; k < sizeof(keeps) / sizeof(keeps[0]); k++) {
		struct fault_os *fo = fault_os_new();
		fault_os_tear(fo, l.nblocks + 1, (size_t)keeps[k], 0);
		assert_int_equal(write_with(fault_os_get(fo), d.file, &o, e, n, &m), 0);
		assert_int_equal(fault_os_crashed(fo), 1);
		expect_no_leak(fo);
		fault_os_free(fo);
		expect_open_fails(d.file, SL_ECORRUPT);
		unlink(d.file);
	}
	free(cap_end(&c));
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

static void test_open_mmap_fails(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 100;
	struct ent *e = model_random(&n, 22, 20, 60);
	write_table(d.file, NULL, e, n, NULL);
	struct fault_os *fo = fault_os_new();
	fault_os_fail(fo, FAULT_MMAP, 1, -ENOMEM, 0);
	struct sl_sst *t = (struct sl_sst *)&t;
	assert_int_equal(sl__sst_open(fault_os_get(fo), acc, d.file, &t), -ENOMEM);
	assert_null(t);
	expect_no_leak(fo);
	fault_os_fail(fo, FAULT_FSIZE, 1, -EIO, 0);
	assert_int_equal(sl__sst_open(fault_os_get(fo), acc, d.file, &t), -EIO);
	expect_no_leak(fo);
	fault_os_fail(fo, FAULT_OPEN, 1, -EMFILE, 0);
	assert_int_equal(sl__sst_open(fault_os_get(fo), acc, d.file, &t), -EMFILE);
	expect_no_leak(fo);
	/* And it opens fine once the faults are gone, with no descriptor held. */
	assert_int_equal(sl__sst_open(fault_os_get(fo), acc, d.file, &t), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	expect_all_gets(t, e, n);
	struct sl_sst_iter *it;
	assert_int_equal(sl__sst_iter_new(t, &it), 0);
	sl__sst_iter_free(it);
	sl__sst_close(t);
	expect_no_leak(fo);
	fault_os_free(fo);
	free(e);
	tdir_free(&d);
}

/* Every allocation of the writer and of open fails in turn: each failure is -ENOMEM, leaves no
 * file behind a failed writer, and leaks nothing; the run that sees no failure succeeds. */
static void test_writer_open_enomem_sweep(void **state)
{
	(void)state;
	size_t n = 3000;
	struct ent *e = model_random(&n, 23, 20, 60);
	struct sl_sst_options o = opts(256, 16);
	enum fault_op ops[] = { FAULT_MALLOC, FAULT_REALLOC };
	for (size_t k = 0; k < 2; k++) {
		for (uint64_t nth = 1;; nth++) {
			struct tdir d;
			tdir_new(&d);
			struct fault_os *fo = fault_os_new();
			fault_os_fail(fo, ops[k], nth, -ENOMEM, 0);
			uint64_t before = fault_os_calls(fo, ops[k]);
			struct sl_sst_meta m;
			int r = write_with(fault_os_get(fo), d.file, &o, e, n, &m);
			int fired = fault_os_calls(fo, ops[k]) - before >= nth;
			expect_no_leak(fo);
			if (r < 0) {
				assert_int_equal(r, -ENOMEM);
				assert_false(sl_test_file_exists(d.file));
			} else {
				assert_false(fired);
			}
			fault_os_reset(fo);
			if (r == 0) {
				/* Now the reader's allocations. */
				for (uint64_t j = 1;; j++) {
					struct sl_sst *t;
					fault_os_fail(fo, ops[k], j, -ENOMEM, 0);
					int rr = sl__sst_open(fault_os_get(fo), acc, d.file, &t);
					if (rr == 0) {
						expect_all_gets(t, e, n);
						sl__sst_close(t);
					} else {
						assert_int_equal(rr, -ENOMEM);
					}
					expect_no_leak(fo);
					fault_os_reset(fo);
					if (rr == 0)
						break;
				}
			}
			fault_os_free(fo);
			tdir_free(&d);
			if (r == 0)
				break;
		}
	}
	free(e);
}

/* ---- Threads ------------------------------------------------------------------------------ */

struct reader_arg {
	struct sl_sst *t;
	const struct ent *e;
	size_t n;
	const uint8_t *bad; /* per entry: 1 if its block is damaged */
	uint64_t seed;
	size_t corrupt;
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	uint64_t s = a->seed;
	for (size_t j = 0; j < a->n * 2; j++) {
		size_t i = rnd_next(&s) % a->n;
		const void *v;
		size_t vlen;
		uint32_t fl;
		int r = sl__sst_get(a->t, a->e[i].key, a->e[i].klen, &v, &vlen, &fl);
		if (a->bad[i]) {
			if (r != SL_ECORRUPT)
				return (void *)1;
			a->corrupt++;
		} else if (r != 0 || check_value(&a->e[i], v, vlen, fl)) {
			return (void *)1;
		}
	}
	return NULL;
}

/* Readers racing on a fresh table share the verified bitmap; a damaged block is reported
 * exactly once however many of them hit it first. */
static void test_get_threads_share_bitmap(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = scaled(20000, 4000);
	struct ent *e = model_random(&n, 24, 20, 60);
	struct sl_sst_options o = opts(1024, 16);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	size_t bad_blocks[3] = { 0, l.nblocks / 3, l.nblocks - 1 };
	for (int i = 0; i < 3; i++)
		sl_test_flip_bit(d.file, l.boff[bad_blocks[i]] + 3, 1);
	uint8_t *bad = calloc(n, 1);
	assert_non_null(bad);
	for (size_t i = 0; i < n; i++) {
		size_t b = block_of(&l, &e[i]);
		bad[i] = b == bad_blocks[0] || b == bad_blocks[1] || b == bad_blocks[2];
	}
	struct sl_sst *t = open_ok(d.file);
	enum { THREADS = 8 };
	pthread_t th[THREADS];
	struct reader_arg args[THREADS];
	struct cap c;
	cap_begin(&c, &d);
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct reader_arg){ t, e, n, bad, 100 + (uint64_t)i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
	}
	size_t corrupt = 0;
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
		corrupt += args[i].corrupt;
	}
	char *msg = cap_end(&c);
	assert_true(corrupt > 0);
	assert_int_equal(count_lines(msg), 3);
	for (int i = 0; i < 3; i++) {
		char want[64];
		snprintf(want, sizeof(want), "at offset %llu\n",
			 (unsigned long long)l.boff[bad_blocks[i]]);
		assert_non_null(strstr(msg, want));
	}
	free(msg);
	sl__sst_close(t);
	free(bad);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* ---- Merged tables ------------------------------------------------------------------------ */

/* A table's data blocks as the accessors give them, checked against the file's layout. */
static void test_sst_block_exposes_blocks(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 3000;
	struct ent *e = model_random(&n, 30, 24, 60);
	struct sl_sst_options o = opts(512, 8);
	write_table(d.file, &o, e, n, NULL);
	struct layout l;
	layout_of(d.file, &l);
	size_t flen;
	uint8_t *file = sl_test_slurp(d.file, &flen);
	struct sl_sst *t = open_ok(d.file);
	assert_int_equal(sl__sst_block_count(t), l.nblocks);
	const uint8_t *base = NULL;
	for (size_t i = 0; i < l.nblocks; i++) {
		struct sl_accel_buf b;
		const uint8_t *last;
		size_t last_len;
		sl__sst_block(t, i, &b, &last, &last_len);
		assert_int_equal(b.len, l.boff[i + 1] - l.boff[i]);
		assert_memory_equal(b.data, file + l.boff[i], b.len);
		/* Into one mapping, back to back. */
		if (!i)
			base = b.data;
		assert_ptr_equal(b.data, base + l.boff[i]);
		assert_int_equal(last_len, l.last_len[i]);
		assert_memory_equal(last, l.last[i], last_len);
		/* The last key is the index's: it points into the mapping's index block. */
		assert_true(last >= base + l.index_off && last < base + l.footer_off);
		sl__sst_block(t, i, &b, NULL, NULL);
		assert_int_equal(b.len, l.boff[i + 1] - l.boff[i]);
	}
	sl__sst_close(t);
	/* An empty table has none. */
	struct tdir d2;
	tdir_new(&d2);
	write_table(d2.file, &o, NULL, 0, NULL);
	t = open_ok(d2.file);
	assert_int_equal(sl__sst_block_count(t), 0);
	sl__sst_close(t);
	tdir_free(&d2);
	free(file);
	layout_free(&l);
	free(e);
	tdir_free(&d);
}

/* A merge job over open tables (t[0] the newest), its buffers grown until it fits. */
struct mjob {
	struct sl_accel_merge_job j;
	struct sl_accel_run runs[4];
	struct sl_accel_buf *bufs[4];
	struct tout {
		uint8_t *out;
		struct sl_accel_block *blocks;
		uint8_t *bloom;
	} o;
};

static void mjob_run(struct mjob *m, struct sl_sst **t, size_t k, uint32_t block, uint32_t restart,
		     uint32_t flags)
{
	memset(m, 0, sizeof(*m));
	for (size_t r = 0; r < k; r++) {
		uint64_t nb = sl__sst_block_count(t[r]);
		m->bufs[r] = calloc(nb + 1, sizeof(struct sl_accel_buf));
		assert_non_null(m->bufs[r]);
		for (uint64_t i = 0; i < nb; i++)
			sl__sst_block(t[r], i, &m->bufs[r][i], NULL, NULL);
		m->runs[r].blocks = m->bufs[r];
		m->runs[r].n_blocks = nb;
	}
	m->j.runs = m->runs;
	m->j.n_runs = k;
	m->j.block_bytes = block;
	m->j.restart_interval = restart;
	m->j.flags = flags;
	int r;
	while ((r = sl__accel_merge(acc, &m->j)) == -ENOSPC) {
		free(m->o.out);
		free(m->o.blocks);
		free(m->o.bloom);
		m->o.out = malloc(m->j.need_out ? m->j.need_out : 1);
		m->o.blocks = malloc((m->j.need_blocks ? m->j.need_blocks : 1) *
				     sizeof(struct sl_accel_block));
		m->o.bloom = malloc(m->j.need_bloom);
		assert_true(m->o.out && m->o.blocks && m->o.bloom);
		m->j.out = m->o.out;
		m->j.out_cap = m->j.need_out;
		m->j.blocks = m->o.blocks;
		m->j.blocks_cap = m->j.need_blocks;
		m->j.bloom = m->o.bloom;
		m->j.bloom_cap = m->j.need_bloom;
	}
	assert_int_equal(r, 0);
}

static void mjob_free(struct mjob *m)
{
	for (size_t r = 0; r < 4; r++)
		free(m->bufs[r]);
	free(m->o.out);
	free(m->o.blocks);
	free(m->o.bloom);
}

/* The merge of models the plain way: a[] newest, then b[]; the newer entry of a key wins;
 * tombstones dropped when asked. */
static struct ent *model_merge(const struct ent *a, size_t na, const struct ent *b, size_t nb,
			       int drop, size_t *n)
{
	struct ent *m = calloc(na + nb + 1, sizeof(*m));
	assert_non_null(m);
	size_t i = 0, j = 0, k = 0;
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : ent_cmp(&a[i], &b[j]);
		const struct ent *w = c <= 0 ? &a[i] : &b[j];
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
		if (drop && (w->flags & SL_SST_TOMBSTONE))
			continue;
		m[k++] = *w;
	}
	*n = k;
	return m;
}

/* Two written tables that share keys, merged by the cpu job and written by write_merged: the
 * table opens, verifies, and reads back exactly the merge, with and without tombstones. */
static void test_write_merged_two_tables(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t na = scaled(20000, 4000), nb = scaled(30000, 6000);
	struct ent *a = model_random(&na, 31, 20, 80);
	struct ent *b = model_random(&nb, 32, 20, 80);
	/* A third of the newer keys also in the older table, with other values and flags. */
	for (size_t i = 0; i < nb; i += 3) {
		b[i] = a[(i * 7) % na];
		b[i].vseed ^= 0x5555;
		b[i].flags ^= SL_SST_TOMBSTONE;
	}
	sort_unique(b, &nb);
	char pa[128], pb[128];
	snprintf(pa, sizeof(pa), "%s/a.sst", d.path);
	snprintf(pb, sizeof(pb), "%s/b.sst", d.path);
	struct sl_sst_options o = opts(1024, 16);
	write_table(pa, &o, a, na, NULL);
	o = opts(2048, 4);
	write_table(pb, &o, b, nb, NULL);
	struct sl_sst *t[2] = { open_ok(pa), open_ok(pb) };
	for (int drop = 0; drop < 2; drop++) {
		size_t n;
		struct ent *m = model_merge(a, na, b, nb, drop, &n);
		struct mjob mj;
		mjob_run(&mj, t, 2, 4096, 16, drop ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0);
		assert_int_equal(mj.j.entries_out, n);
		assert_int_equal(mj.j.entries_in, na + nb);
		struct sl_sst_options mo = opts(0, 0);
		mo.user[0] = 17;
		mo.user[1] = 42;
		mo.bloom_bits_per_key = 1000; /* ignored: the job's filter is used */
		struct sl_sst_meta wm, rm;
		unlink(d.file);
		assert_int_equal(
			sl__sst_write_merged(sl__os_default(), acc, d.file, &mo, &mj.j, &wm), 0);
		struct stat st;
		assert_int_equal(stat(d.file, &st), 0);
		expect_meta(&wm, m, n, (uint64_t)st.st_size);
		assert_int_equal(wm.data_blocks, mj.j.n_blocks);
		assert_int_equal(wm.user[0], 17);
		assert_int_equal(wm.user[1], 42);
		struct sl_sst *mt = open_ok(d.file);
		sl__sst_get_meta(mt, &rm);
		assert_memory_equal(&wm, &rm, sizeof(wm));
		expect_verify_ok(mt);
		expect_scan(mt, m, n);
		expect_all_gets(mt, m, n);
		sl__sst_close(mt);
		mjob_free(&mj);
		free(m);
	}
	sl__sst_close(t[0]);
	sl__sst_close(t[1]);
	free(a);
	free(b);
	tdir_free(&d);
}

/* The writer and the merge job are one codec: entries split over two tables, merged with the
 * writer's parameters and written by write_merged, make the very bytes the writer makes of
 * all of them, for every block size and restart interval tried. */
static void test_write_merged_byte_identical(void **state)
{
	(void)state;
	static const uint32_t blocks[] = { 64, 256, 4096, 65536 };
	static const uint32_t restarts[] = { 1, 3, 16 };
	for (size_t bi = 0; bi < 4; bi++) {
		for (size_t ri = 0; ri < 3; ri++) {
			struct tdir d;
			tdir_new(&d);
			size_t n = scaled(4000, 1000);
			struct ent *e = model_random(&n, 40 + bi * 3 + ri, SL_SST_MAX_KEY, 150);
			e[n / 2].vlen = SL_SST_MAX_VALUE; /* one oversized entry among them */
			struct ent *x = calloc(n, sizeof(*x)), *y = calloc(n, sizeof(*y));
			assert_true(x && y);
			size_t nx = 0, ny = 0;
			uint64_t s = 50 + bi;
			for (size_t i = 0; i < n; i++) {
				if (rnd_next(&s) % 2)
					x[nx++] = e[i];
				else
					y[ny++] = e[i];
			}
			char whole[128], px[128], py[128];
			snprintf(whole, sizeof(whole), "%s/whole.sst", d.path);
			snprintf(px, sizeof(px), "%s/x.sst", d.path);
			snprintf(py, sizeof(py), "%s/y.sst", d.path);
			struct sl_sst_options o = opts(blocks[bi], restarts[ri]);
			o.user[0] = 7;
			write_table(whole, &o, e, n, NULL);
			/* The inputs' own block sizes differ: the job re-cuts. */
			struct sl_sst_options oi = opts(blocks[(bi + 1) % 4], 5);
			write_table(px, &oi, x, nx, NULL);
			write_table(py, &oi, y, ny, NULL);
			struct sl_sst *t[2] = { open_ok(px), open_ok(py) };
			struct mjob mj;
			mjob_run(&mj, t, 2, blocks[bi], restarts[ri], 0);
			assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o,
							      &mj.j, NULL),
					 0);
			size_t la, lb;
			uint8_t *fa = sl_test_slurp(whole, &la), *fb = sl_test_slurp(d.file, &lb);
			assert_int_equal(la, lb);
			assert_memory_equal(fa, fb, la);
			free(fa);
			free(fb);
			mjob_free(&mj);
			sl__sst_close(t[0]);
			sl__sst_close(t[1]);
			free(x);
			free(y);
			free(e);
			tdir_free(&d);
		}
	}
}

/* What write_merged refuses: no entries, outputs that do not hold together, bad options, an
 * existing file; each leaves no new file. */
static void test_write_merged_refusals(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 2000;
	struct ent *e = model_random(&n, 60, 20, 40);
	char pa[128];
	snprintf(pa, sizeof(pa), "%s/a.sst", d.path);
	struct sl_sst_options o = opts(512, 16);
	write_table(pa, &o, e, n, NULL);
	struct sl_sst *t = open_ok(pa);
	struct mjob mj;
	mjob_run(&mj, &t, 1, 512, 16, 0);
	assert_true(mj.j.n_blocks > 3);
	struct sl_accel_merge_job j = mj.j;
	/* Nothing to write. */
	j.entries_out = 0;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	j = mj.j;
	j.n_blocks = 0;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	/* Blocks that do not tile out, a CRC that is not the stored one, keys out of order, a
	 * filter size off the 64-byte grain, no probes. */
	j = mj.j;
	j.out_len--;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	j = mj.j;
	j.n_blocks--;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	j = mj.j;
	j.blocks[1].crc ^= 1;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	j.blocks[1].crc ^= 1;
	struct sl_accel_block sb = j.blocks[2];
	j.blocks[2].last_len = j.blocks[0].last_len;
	memcpy(j.blocks[2].last, j.blocks[0].last, j.blocks[0].last_len);
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	j.blocks[2] = sb;
	j.bloom_len -= 1;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	j = mj.j;
	j.bloom_probes = 0;
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &o, &j, NULL),
			 -EINVAL);
	assert_false(sl_test_file_exists(d.file));
	/* Bad options, and an existing file (never overwritten). */
	struct sl_sst_options bad = opts(16, 0);
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, &bad, &mj.j, NULL),
			 SL_ECONFIG);
	assert_false(sl_test_file_exists(d.file));
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, pa, &o, &mj.j, NULL), -EEXIST);
	expect_scan(t, e, n);
	/* NULL options are the defaults; the job as it is works. */
	assert_int_equal(sl__sst_write_merged(sl__os_default(), acc, d.file, NULL, &mj.j, NULL), 0);
	struct sl_sst *mt = open_ok(d.file);
	expect_scan(mt, e, n);
	expect_verify_ok(mt);
	sl__sst_close(mt);
	mjob_free(&mj);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

/* I/O and allocation failures during write_merged: each returns its error, leaves no file and
 * leaks nothing; with the fault gone the same job writes a sound table. */
static void test_write_merged_faults(void **state)
{
	(void)state;
	struct tdir d;
	tdir_new(&d);
	size_t n = 3000;
	struct ent *e = model_random(&n, 61, 20, 60);
	char pa[128];
	snprintf(pa, sizeof(pa), "%s/a.sst", d.path);
	struct sl_sst_options o = opts(1024, 16);
	write_table(pa, &o, e, n, NULL);
	struct sl_sst *t = open_ok(pa);
	struct mjob mj;
	mjob_run(&mj, &t, 1, 4096, 16, 0);
	struct {
		enum fault_op op;
		uint64_t nth;
		int err;
	} cases[] = {
		{ FAULT_PWRITE, 1, -ENOSPC }, /* the data blocks */
		{ FAULT_PWRITE, 2, -ENOSPC }, /* bloom, index, footer */
		{ FAULT_PWRITE, 1, -EIO },    { FAULT_FDATASYNC, 1, -ENOSPC },
		{ FAULT_FDATASYNC, 1, -EIO }, { FAULT_CLOSE, 1, -EIO },
		{ FAULT_SYNC_DIR, 1, -EIO },  { FAULT_OPEN, 1, -EMFILE },
	};
	o.no_sync = 0;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct fault_os *fo = fault_os_new();
		fault_os_fail(fo, cases[c].op, cases[c].nth, cases[c].err, 0);
		struct sl_sst_meta m;
		assert_int_equal(sl__sst_write_merged(fault_os_get(fo), acc, d.file, &o, &mj.j, &m),
				 cases[c].err);
		assert_false(sl_test_file_exists(d.file));
		expect_no_leak(fo);
		fault_os_free(fo);
	}
	/* Every allocation failing in turn: -ENOMEM and no file, until none is left to fail. */
	for (uint64_t nth = 1;; nth++) {
		struct fault_os *fo = fault_os_new();
		fault_os_fail(fo, FAULT_MALLOC, nth, -ENOMEM, 0);
		int r = sl__sst_write_merged(fault_os_get(fo), acc, d.file, &o, &mj.j, NULL);
		expect_no_leak(fo);
		fault_os_free(fo);
		if (r == 0)
			break;
		assert_int_equal(r, -ENOMEM);
		assert_false(sl_test_file_exists(d.file));
	}
	/* The syncs were made: one fdatasync and one directory sync. */
	unlink(d.file);
	struct fault_os *fo = fault_os_new();
	assert_int_equal(sl__sst_write_merged(fault_os_get(fo), acc, d.file, &o, &mj.j, NULL), 0);
	assert_int_equal(fault_os_calls(fo, FAULT_FDATASYNC), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_SYNC_DIR), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_PWRITE), 2);
	expect_no_leak(fo);
	fault_os_free(fo);
	struct sl_sst *mt = open_ok(d.file);
	expect_scan(mt, e, n);
	expect_verify_ok(mt);
	sl__sst_close(mt);
	mjob_free(&mj);
	sl__sst_close(t);
	free(e);
	tdir_free(&d);
}

/* ---- main --------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	const char *q = getenv("SL_TEST_QUICK");
	quick = q && *q && *q != '0';
	return sl__accel_open(sl_test_accel(), &acc);
}

static int group_teardown(void **state)
{
	(void)state;
	sl__accel_close(acc);
	return 0;
}

int main(void)
{
	alarm(600);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_finish_empty_table),
		cmocka_unit_test(test_writer_add_one_entry),
		cmocka_unit_test(test_get_many_random_entries),
		cmocka_unit_test(test_iter_seek_random_keys),
		cmocka_unit_test(test_get_value_sizes),
		cmocka_unit_test(test_get_tombstone_flags),
		cmocka_unit_test(test_get_block_and_restart_options),
		cmocka_unit_test(test_writer_add_order),
		cmocka_unit_test(test_writer_add_bad_lengths),
		cmocka_unit_test(test_writer_open_bad_options),
		cmocka_unit_test(test_writer_open_exists),
		cmocka_unit_test(test_writer_abort_removes_file),
		cmocka_unit_test(test_get_meta_user_values),
		cmocka_unit_test(test_get_corrupt_data_block),
		cmocka_unit_test(test_verify_names_first_bad_block),
		cmocka_unit_test(test_get_malformed_block_valid_crc),
		cmocka_unit_test(test_open_corrupt_index),
		cmocka_unit_test(test_open_corrupt_bloom),
		cmocka_unit_test(test_open_corrupt_footer),
		cmocka_unit_test(test_open_unknown_version),
		cmocka_unit_test(test_open_truncated),
		cmocka_unit_test(test_open_garbage_and_empty),
		cmocka_unit_test(test_open_fuzz_bit_flips),
		cmocka_unit_test(test_open_fuzz_fixed_crcs),
		cmocka_unit_test(test_writer_add_enospc_mid_table),
		cmocka_unit_test(test_writer_finish_faults),
		cmocka_unit_test(test_writer_finish_torn_tail),
		cmocka_unit_test(test_open_mmap_fails),
		cmocka_unit_test(test_writer_open_enomem_sweep),
		cmocka_unit_test(test_get_threads_share_bitmap),
		cmocka_unit_test(test_sst_block_exposes_blocks),
		cmocka_unit_test(test_write_merged_two_tables),
		cmocka_unit_test(test_write_merged_byte_identical),
		cmocka_unit_test(test_write_merged_refusals),
		cmocka_unit_test(test_write_merged_faults),
	};
	return cmocka_run_group_tests_name("sst", tests, group_setup, group_teardown);
}
