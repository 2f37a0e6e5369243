/* test_corrupt.c - damage to a store's files, through the public API: sl_verify, read-only
 * opens, point lookups of every key, multi-get and replay. One store with several state and
 * event tables is built once; every case damages its own copy of it (a bit flipped in a data
 * block, the index, the bloom block or the footer of a table, in a manifest edit or CURRENT; a
 * table or the manifest truncated; a table missing) and asserts exactly which file and offset
 * verify names, which keys fail and with what error (computed by replaying each lookup over
 * this file's own parse of the tables, from the layouts documented in sst.c and manifest.c),
 * that every other key answers exactly what it answered before the damage, and what replay
 * gives. Failures inside a case are collected and reported together, so one run shows every
 * way a case differs from the contract.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "feed.h"
#include "itch.h"
#include "keys.h"
#include "manifest.h"
#include "os.h"
#include "sluice.h"
#include "sst.h"
#include "tables.h"
#include "testutil.h"

/* ---- Layouts (sst.c and manifest.c document them; parsed here independently) ------------- */

#define SST_FOOTER  64
#define SST_TRAILER 8  /* u32 restart count, u32 CRC */
#define MF_HDR	    40 /* manifest file header */
#define MF_REC_HDR  8  /* u32 payload length, u32 CRC */
#define WAL_SEG_HDR 64

/* The store: a feed with a small memtable, appended until the fourth rotation lands exactly at
 * the end of an append, so every message is in tables and the log tail is empty. */
#define FEED_MESSAGES 90000
#define TAIL_MESSAGES 4000
#define ROTATIONS     4
#define CHUNK	      64

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static int get_varint(const uint8_t *p, uint32_t *pos, uint32_t end, uint32_t *out)
{
	uint32_t v = 0;
	for (unsigned shift = 0; shift < 35 && *pos < end; shift += 7) {
		uint8_t b = p[(*pos)++];
		v |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 1;
		}
	}
	return 0;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : alen < blen ? -1 : alen > blen;
}

/* ---- Collected failures ------------------------------------------------------------------- */

static char errs[32768];
static size_t errs_len;
static int nerrs;
static const char *cur_case = "setup";

static void errs_add(const char *fmt, va_list ap)
{
	if (errs_len + 2 >= sizeof(errs))
		return;
	int n = vsnprintf(errs + errs_len, sizeof(errs) - errs_len - 1, fmt, ap);
	if (n < 0)
		return;
	size_t room = sizeof(errs) - errs_len - 2;
	errs_len += (size_t)n < room ? (size_t)n : room;
}

__attribute__((format(printf, 1, 2))) static void errs_put(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	errs_add(fmt, ap);
	va_end(ap);
}

/* A failed check of the current case: kept, the case goes on, the test fails at its end. */
__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
	nerrs++;
	errs_put("  [%s] ", cur_case);
	va_list ap;
	va_start(ap, fmt);
	errs_add(fmt, ap);
	va_end(ap);
	errs_put("\n");
}

static void test_begin(void)
{
	errs_len = 0;
	errs[0] = 0;
	nerrs = 0;
}

static void test_end(void)
{
	if (nerrs)
		fail_msg("%d check(s) failed:\n%s", nerrs, errs);
}

static void expect_rc(const char *what, int got, int want)
{
	if (got != want)
		note("%s: got %d (%s), want %d (%s)", what, got, sl_strerror(got), want,
		     sl_strerror(want));
}

/* ---- The parsed store --------------------------------------------------------------------- */

struct tkey {
	uint8_t k[SL_SST_MAX_KEY];
	uint8_t len;
	uint8_t flags;
};

struct blk {
	uint64_t off;
	uint32_t size;
	uint8_t last[SL_SST_MAX_KEY];
	uint32_t last_len;
	size_t first, n; /* its keys: tab.keys[first, first + n) */
};

struct tab {
	struct sl_table_info info; /* the manifest's record */
	char name[32];		   /* <16 hex>.sst */
	uint64_t size, bloom_off, index_off, footer_off;
	uint32_t bloom_size, index_size, probes;
	uint8_t *bloom; /* the filter, bloom_size - 4 bytes */
	struct blk *blk;
	size_t nblk;
	struct tkey *keys;
	size_t nkeys;
};

/* One key the tests ask for, and its answer before any damage. */
struct qkey {
	uint8_t key[SL_KEY_MAX_LEN];
	uint8_t klen;
	char kind; /* 'O', 'T', 'S' */
	uint16_t locate;
	uint64_t a; /* ref or match */
	uint64_t hash;
	int rc;
	union {
		struct sl_order o;
		struct sl_trade t;
		struct sl_stock s;
	} v;
};

struct ev {
	uint64_t seq, rx_ns, gap_count;
	uint32_t kind, len;
	uint8_t data[SL_ITCH_MAX_LEN];
};

struct mfrec {
	uint64_t off;
	uint32_t len;
	uint64_t checkpoint;
};

/* A store as parsed: its tables in the version's order, its keys and answers, its replay. */
struct store {
	char dir[64];
	struct tab *tabs;
	size_t ntabs;
	size_t lv[SL_LEVELS][64]; /* per level, indexes into tabs in version order */
	size_t nlv[SL_LEVELS];
	uint64_t checkpoint, last_seq, wal_first_seq;
	char mf_name[40];
	struct mfrec *recs;
	size_t nrecs;
	uint64_t mf_size;
	struct qkey *keys;
	size_t nkeys;
	struct ev *evs; /* evs[i] is sequence i + 1 */
	size_t nevs;
};

struct fixture {
	struct store base; /* every message in tables */
	struct store tail; /* base plus TAIL_MESSAGES in the log only */
	struct store comp; /* base after a full compaction: state tables at a deeper level */
	uint8_t (*msgs)[SL_ITCH_MAX_LEN];
	uint16_t *lens;
	size_t nmsgs, base_msgs;
};

static struct fixture *F;

/* ---- Files -------------------------------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
	size_t n;
	uint8_t *b = sl_test_slurp(from, &n);
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, b + done, n - done);
		assert_true(w > 0);
		done += (size_t)w;
	}
	close(fd);
	free(b);
}

static void copy_dir(const char *from, const char *to)
{
	DIR *d = opendir(from);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char a[512], b[512];
		snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
		snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
		struct stat st;
		assert_int_equal(lstat(a, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			assert_int_equal(mkdir(b, 0755), 0);
			copy_dir(a, b);
		} else if (S_ISREG(st.st_mode)) {
			copy_file(a, b);
		}
	}
	closedir(d);
}

static void file_path(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

/* ---- Parsing tables ----------------------------------------------------------------------- */

static void parse_block(struct tab *t, const uint8_t *map, struct blk *b, size_t *cap)
{
	const uint8_t *p = map + b->off;
	uint32_t n = get_u32(p + b->size - SST_TRAILER);
	uint32_t end = b->size - SST_TRAILER - 4 * n, pos = 0;
	uint8_t cur[SL_SST_MAX_KEY];
	uint32_t cur_len = 0;
	b->first = t->nkeys;
	while (pos < end) {
		uint32_t shared = 0, unshared = 0, vlen = 0;
		assert_true(get_varint(p, &pos, end, &shared));
		assert_true(get_varint(p, &pos, end, &unshared));
		assert_true(get_varint(p, &pos, end, &vlen));
		uint8_t flags = p[pos++];
		assert_true(shared <= cur_len && shared + unshared <= SL_SST_MAX_KEY);
		memcpy(cur + shared, p + pos, unshared);
		cur_len = shared + unshared;
		pos += unshared + vlen;
		assert_true(pos <= end);
		if (t->nkeys == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			t->keys = realloc(t->keys, *cap * sizeof(*t->keys));
			assert_non_null(t->keys);
		}
		struct tkey *k = &t->keys[t->nkeys++];
		memcpy(k->k, cur, cur_len);
		k->len = (uint8_t)cur_len;
		k->flags = flags;
	}
	b->n = t->nkeys - b->first;
	assert_true(b->n > 0);
	assert_int_equal(key_cmp(cur, cur_len, b->last, b->last_len), 0);
}

/* Footer, bloom, index and every data block's keys, as the layout comment of sst.c says. */
static void parse_table(struct tab *t, const char *dir)
{
	char path[512];
	snprintf(t->name, sizeof(t->name), "%016" PRIx64 ".sst", t->info.file_no);
	file_path(path, sizeof(path), dir, t->name);
	size_t size;
	uint8_t *map = sl_test_slurp(path, &size);
	t->size = size;
	assert_true(size >= SST_FOOTER);
	t->footer_off = size - SST_FOOTER;
	const uint8_t *f = map + t->footer_off;
	assert_memory_equal(f, "SLUICEST", 8);
	t->probes = (uint16_t)(f[10] | f[11] << 8);
	t->bloom_size = get_u32(f + 12);
	t->bloom_off = get_u64(f + 16);
	t->index_off = get_u64(f + 24);
	t->index_size = get_u32(f + 56);
	assert_int_equal(t->index_off, t->bloom_off + t->bloom_size);
	assert_int_equal(t->index_off + t->index_size, t->footer_off);
	t->bloom = malloc(t->bloom_size - 4);
	assert_non_null(t->bloom);
	memcpy(t->bloom, map + t->bloom_off, t->bloom_size - 4);
	const uint8_t *ib = map + t->index_off;
	uint32_t body = t->index_size - SST_TRAILER;
	uint32_t count = get_u32(ib + body);
	t->nblk = count;
	t->blk = calloc(count ? count : 1, sizeof(*t->blk));
	assert_non_null(t->blk);
	size_t pos = 1 + ib[0], kcap = 0;
	uint64_t expect = 0;
	for (uint32_t i = 0; i < count; i++) {
		struct blk *b = &t->blk[i];
		b->last_len = ib[pos];
		memcpy(b->last, ib + pos + 1, b->last_len);
		b->off = get_u64(ib + pos + 1 + b->last_len);
		b->size = get_u32(ib + pos + 1 + b->last_len + 8);
		pos += 13 + b->last_len;
		assert_int_equal(b->off, expect);
		expect += b->size;
		parse_block(t, map, b, &kcap);
	}
	assert_int_equal(pos, body);
	assert_int_equal(expect, t->bloom_off);
	assert_int_equal(t->nkeys, t->info.entries);
	assert_int_equal(t->size, t->info.file_bytes);
	free(map);
}

static void free_store(struct store *s)
{
	for (size_t i = 0; i < s->ntabs; i++) {
		free(s->tabs[i].bloom);
		free(s->tabs[i].blk);
		free(s->tabs[i].keys);
	}
	free(s->tabs);
	free(s->recs);
	free(s->keys);
	free(s->evs);
	if (s->dir[0])
		sl_test_rm_rf(s->dir);
	memset(s, 0, sizeof(*s));
}

/* The manifest's version (through the manifest module: which tables are live is its call) and
 * the records of the manifest file (parsed here). */
static void parse_manifest(struct store *s)
{
	struct sl_accel *a;
	assert_int_equal(sl__accel_open("cpu", &a), 0);
	struct sl_manifest *m;
	assert_int_equal(sl__manifest_open(sl__os_default(), a, s->dir, 1, &m), 0);
	struct sl_version *v = sl__manifest_acquire(m);
	s->checkpoint = v->checkpoint_seq;
	size_t n = 0;
	for (int l = 0; l < SL_LEVELS; l++)
		n += v->n[l];
	s->tabs = calloc(n, sizeof(*s->tabs));
	assert_non_null(s->tabs);
	for (int l = 0; l < SL_LEVELS; l++) {
		assert_true(v->n[l] <= 64);
		for (size_t i = 0; i < v->n[l]; i++) {
			struct tab *t = &s->tabs[s->ntabs];
			t->info = v->tables[l][i];
			parse_table(t, s->dir);
			s->lv[l][s->nlv[l]++] = s->ntabs++;
		}
	}
	sl__manifest_release(m, v);
	sl__manifest_close(m);
	sl__accel_close(a);

	char path[512];
	size_t n_cur;
	file_path(path, sizeof(path), s->dir, "CURRENT");
	uint8_t *cur = sl_test_slurp(path, &n_cur);
	assert_int_equal(n_cur, 42);
	memcpy(s->mf_name, cur, 25);
	s->mf_name[25] = 0;
	free(cur);
	file_path(path, sizeof(path), s->dir, s->mf_name);
	size_t size;
	uint8_t *d = sl_test_slurp(path, &size);
	s->mf_size = size;
	size_t cap = 16;
	s->recs = malloc(cap * sizeof(*s->recs));
	for (uint64_t off = MF_HDR; off < size;) {
		assert_true(size - off >= MF_REC_HDR);
		uint32_t len = get_u32(d + off);
		assert_true(off + MF_REC_HDR + len <= size);
		if (s->nrecs == cap)
			s->recs = realloc(s->recs, (cap *= 2) * sizeof(*s->recs));
		s->recs[s->nrecs++] = (struct mfrec){ off, len, get_u64(d + off + MF_REC_HDR) };
		off += MF_REC_HDR + len;
	}
	free(d);
}

/* The sequence of the first record in the log's oldest segment (0 when it holds none). */
static uint64_t wal_first_seq(const char *dir)
{
	char wdir[512];
	snprintf(wdir, sizeof(wdir), "%s/wal", dir);
	DIR *d = opendir(wdir);
	assert_non_null(d);
	struct dirent *e;
	char first[64] = "";
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l == 20 && !strcmp(e->d_name + 16, ".wal") &&
		    (!first[0] || strcmp(e->d_name, first) < 0))
			memcpy(first, e->d_name, l + 1);
	}
	closedir(d);
	if (!first[0])
		return 0;
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", wdir, first);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	uint8_t h[24];
	ssize_t got = pread(fd, h, sizeof(h), WAL_SEG_HDR);
	close(fd);
	return got == (ssize_t)sizeof(h) ? get_u64(h + 8) : 0;
}

/* ---- Queries ------------------------------------------------------------------------------ */

static void add_key(struct qkey **keys, size_t *n, size_t *cap, const uint8_t *k, size_t klen)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4096;
		*keys = realloc(*keys, *cap * sizeof(**keys));
		assert_non_null(*keys);
	}
	struct qkey *q = &(*keys)[(*n)++];
	memset(q, 0, sizeof(*q));
	memcpy(q->key, k, klen);
	q->klen = (uint8_t)klen;
	q->kind = (char)k[0];
	assert_true(sl__key_parse(k, klen, &q->a, &q->locate) == q->kind);
	q->hash = sl__bloom_hash(k, klen);
}

static int qkey_cmp(const void *a, const void *b)
{
	const struct qkey *x = a, *y = b;
	return key_cmp(x->key, x->klen, y->key, y->klen);
}

/* Sort and drop duplicates. */
static void unique_keys(struct qkey *keys, size_t *n)
{
	qsort(keys, *n, sizeof(*keys), qkey_cmp);
	size_t w = 0;
	for (size_t i = 0; i < *n; i++)
		if (!w || qkey_cmp(&keys[w - 1], &keys[i]))
			keys[w++] = keys[i];
	*n = w;
}

static int get_key(struct sl_db *db, const struct qkey *k, void *out, size_t size)
{
	memset(out, 0, size);
	switch (k->kind) {
	case 'O':
		return sl_db_get_order(db, k->locate, k->a, out);
	case 'T':
		return sl_db_get_trade(db, k->a, out);
	default:
		return sl_db_get_stock(db, k->locate, out);
	}
}

static size_t answer_size(const struct qkey *k)
{
	return k->kind == 'O'	? sizeof(struct sl_order)
	       : k->kind == 'T' ? sizeof(struct sl_trade)
				: sizeof(struct sl_stock);
}

/* The options every store here is written with: small log segments and memtables, no syncs
 * (each store is closed cleanly), no background compaction. */
static void store_options(struct sl_options *o, const char *dir, uint64_t memtable_bytes)
{
	sl_options_init(o);
	o->data_dir = dir;
	o->flags = SL_OPEN_CREATE | SL_OPEN_NO_SYNC;
	o->wal_segment_bytes = 128 * 1024; /* the smallest: flushes let segments go */
	o->wal_buffer_bytes = 1 << 20;
	o->memtable_bytes = memtable_bytes;
	o->expected_orders = 4096;
	o->compaction = 0;
}

static struct sl_db *open_rdonly(const char *dir, int *rc)
{
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = dir;
	o.flags = SL_OPEN_RDONLY;
	struct sl_db *db = NULL;
	*rc = sl_db_open(&o, &db);
	return *rc ? NULL : db;
}

static void record_answers(struct store *s)
{
	int r;
	struct sl_db *db = open_rdonly(s->dir, &r);
	assert_int_equal(r, 0);
	for (size_t i = 0; i < s->nkeys; i++) {
		struct qkey *k = &s->keys[i];
		k->rc = get_key(db, k, &k->v, answer_size(k));
		assert_true(k->rc == 0 || k->rc == SL_ENOTFOUND);
	}
	struct sl_iter *it;
	assert_int_equal(sl_iter_open(db, 1, &it), 0);
	size_t cap = 65536;
	s->evs = malloc(cap * sizeof(*s->evs));
	struct sl_event e;
	while ((r = sl_iter_next(it, &e)) == 0) {
		if (s->nevs == cap)
			s->evs = realloc(s->evs, (cap *= 2) * sizeof(*s->evs));
		assert_int_equal(e.seq, s->nevs + 1);
		assert_true(e.len <= SL_ITCH_MAX_LEN);
		struct ev *v = &s->evs[s->nevs++];
		*v = (struct ev){ e.seq, e.rx_ns, e.gap_count, e.kind, e.len, { 0 } };
		memcpy(v->data, e.data, e.len);
	}
	assert_int_equal(r, SL_EEND);
	assert_int_equal(s->nevs, s->last_seq);
	sl_iter_close(it);
	sl_db_close(db);
}

/* Every state key of every state table, and some that exist nowhere. */
static void collect_table_keys(struct store *s, struct qkey **keys, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < s->ntabs; i++) {
		const struct tab *t = &s->tabs[i];
		if (t->info.level == SL_EVENT_LEVEL)
			continue;
		for (size_t j = 0; j < t->nkeys; j++)
			add_key(keys, n, cap, t->keys[j].k, t->keys[j].len);
	}
	uint8_t k[SL_KEY_MAX_LEN];
	for (uint64_t i = 0; i < 40; i++) {
		add_key(keys, n, cap, k,
			sl__key_order(k, (uint16_t)(1 + i % 8), 900000000000ull + i));
		add_key(keys, n, cap, k, sl__key_trade(k, 800000000000ull + i));
		add_key(keys, n, cap, k, sl__key_stock(k, (uint16_t)(60000 + i)));
	}
}

/* ---- The expected outcome: each lookup replayed over the parsed tables ---------------------- */

/* What is damaged: a whole table that does not open (with that error), or one data block. */
struct damage {
	long whole; /* index into tabs, or -1 */
	int whole_err;
	long btab; /* index into tabs, or -1 */
	long blk;
};

static const struct damage NO_DAMAGE = { -1, 0, -1, -1 };

static int covers(const struct sl_table_info *t, const uint8_t *k, size_t kl)
{
	return key_cmp(t->smallest, t->smallest_len, k, kl) <= 0 &&
	       key_cmp(k, kl, t->largest, t->largest_len) <= 0;
}

static size_t index_search(const struct tab *t, const uint8_t *k, size_t kl)
{
	size_t lo = 0, hi = t->nblk;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(t->blk[mid].last, t->blk[mid].last_len, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int block_has(const struct tab *t, size_t b, const uint8_t *k, size_t kl)
{
	const struct tkey *keys = t->keys + t->blk[b].first;
	size_t lo = 0, hi = t->blk[b].n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(keys[mid].k, keys[mid].len, k, kl);
		if (!c)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

#define SIM_FOUND 1
#define SIM_NONE  0

/* One table's part of a lookup: SIM_FOUND (the search stops here), SIM_NONE (go on), or the
 * error the damage gives. */
static int sim_table(const struct store *s, size_t ti, const struct qkey *q, const struct damage *d)
{
	const struct tab *t = &s->tabs[ti];
	if (d->whole == (long)ti)
		return d->whole_err;
	if (!sl__bloom_may_contain(t->bloom, t->bloom_size - 4, q->hash, t->probes))
		return SIM_NONE;
	size_t b = index_search(t, q->key, q->klen);
	if (b == t->nblk)
		return SIM_NONE;
	if (d->btab == (long)ti && d->blk == (long)b)
		return SL_ECORRUPT;
	return block_has(t, b, q->key, q->klen) ? SIM_FOUND : SIM_NONE;
}

/* sl__tables_lookup's walk (tables.h): level 0 newest first where the range holds the key,
 * then one table per level by key range. */
static int sim_lookup(const struct store *s, const struct qkey *q, const struct damage *d)
{
	for (size_t i = 0; i < s->nlv[0]; i++) {
		size_t ti = s->lv[0][i];
		if (!covers(&s->tabs[ti].info, q->key, q->klen))
			continue;
		int r = sim_table(s, ti, q, d);
		if (r != SIM_NONE)
			return r;
	}
	for (int l = 1; l < SL_LEVELS; l++) {
		size_t lo = 0, hi = s->nlv[l];
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct sl_table_info *t = &s->tabs[s->lv[l][mid]].info;
			if (key_cmp(t->largest, t->largest_len, q->key, q->klen) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == s->nlv[l] || !covers(&s->tabs[s->lv[l][lo]].info, q->key, q->klen))
			continue;
		int r = sim_table(s, s->lv[l][lo], q, d);
		if (r != SIM_NONE)
			return r;
	}
	return SIM_NONE;
}

/* The answer a key must give under d: its answer before the damage, or the damage's error. */
static int expected_rc(const struct store *s, const struct qkey *q, const struct damage *d)
{
	int r = sim_lookup(s, q, d);
	return r == SIM_FOUND || r == SIM_NONE ? q->rc : r;
}

/* ---- Checks ------------------------------------------------------------------------------- */

static void check_verify(const char *dir, int want_rc, const char *want_name, uint64_t want_off)
{
	char path[4200] = "", want[600];
	uint64_t off = UINT64_MAX, recs = 0, torn = 0;
	int r = sl_verify(dir, path, sizeof(path), &off, &recs, &torn);
	expect_rc("sl_verify", r, want_rc);
	if (!want_rc)
		return;
	file_path(want, sizeof(want), dir, want_name);
	if (strcmp(path, want))
		note("sl_verify names \"%s\", want \"%s\"", path, want);
	if (off != want_off)
		note("sl_verify offset %" PRIu64 ", want %" PRIu64 " (%s)", off, want_off,
		     want_name);
}

/* Every key against its expected answer, singly and through sl_db_get_orders. */
static void check_keys(const struct store *s, struct sl_db *db, const struct damage *d,
		       size_t *n_failed)
{
	size_t bad = 0, failed = 0;
	uint16_t *locs = malloc(s->nkeys * sizeof(*locs));
	uint64_t *refs = malloc(s->nkeys * sizeof(*refs));
	int *single = malloc(s->nkeys * sizeof(*single));
	size_t no = 0;
	for (size_t i = 0; i < s->nkeys; i++) {
		const struct qkey *q = &s->keys[i];
		union {
			struct sl_order o;
			struct sl_trade t;
			struct sl_stock s;
		} got;
		int want = expected_rc(s, q, d);
		int r = get_key(db, q, &got, answer_size(q));
		if (q->kind == 'O') {
			locs[no] = q->locate;
			refs[no] = q->a;
			single[no++] = r;
		}
		if (r != q->rc)
			failed++;
		if (r != want || (r == 0 && memcmp(&got, &q->v, answer_size(q)))) {
			if (bad++ < 8)
				note("key %c locate %u %" PRIu64 ": got %d (%s), want %d (%s)%s",
				     q->kind, q->locate, q->a, r, sl_strerror(r), want,
				     sl_strerror(want), r == want ? " with a different value" : "");
		}
	}
	if (bad > 8)
		note("... %zu keys in all answered otherwise than expected", bad);
	struct sl_order *out = calloc(no ? no : 1, sizeof(*out));
	int *rc = malloc((no ? no : 1) * sizeof(*rc));
	expect_rc("sl_db_get_orders", sl_db_get_orders(db, no, locs, refs, out, rc), 0);
	size_t mismatch = 0;
	for (size_t i = 0, j = 0; i < s->nkeys; i++) {
		const struct qkey *q = &s->keys[i];
		if (q->kind != 'O')
			continue;
		if (rc[j] != single[j] || (rc[j] == 0 && memcmp(&out[j], &q->v, sizeof(out[j]))))
			if (mismatch++ < 4)
				note("multi-get %u/%" PRIu64 ": rc %d, single get %d", q->locate,
				     q->a, rc[j], single[j]);
		j++;
	}
	free(out);
	free(rc);
	free(locs);
	free(refs);
	free(single);
	if (n_failed)
		*n_failed = failed;
}

/* Replay from `from`: exactly the recorded events up to (not including) stop, then end_rc; an
 * error is sticky (the next call returns it again). open_rc: what sl_iter_open must return. */
static void check_replay(const struct store *s, struct sl_db *db, uint64_t from, int open_rc,
			 uint64_t stop, int end_rc)
{
	struct sl_iter *it = NULL;
	int r = sl_iter_open(db, from, &it);
	char what[96];
	snprintf(what, sizeof(what), "sl_iter_open from %" PRIu64, from);
	expect_rc(what, r, open_rc);
	if (r)
		return;
	uint64_t want = from;
	struct sl_event e;
	while ((r = sl_iter_next(it, &e)) == 0) {
		if (want >= stop || e.seq != want) {
			note("replay from %" PRIu64 ": event %" PRIu64 ", want %s %" PRIu64, from,
			     e.seq, want >= stop ? "the end at" : "sequence", want);
			break;
		}
		const struct ev *v = &s->evs[want - 1];
		if (e.kind != v->kind || e.len != v->len || e.rx_ns != v->rx_ns ||
		    e.gap_count != v->gap_count || memcmp(e.data, v->data, e.len)) {
			note("replay from %" PRIu64 ": event %" PRIu64 " differs", from, e.seq);
			break;
		}
		want++;
	}
	if (!r) {
		sl_iter_close(it);
		return;
	}
	if (want != stop)
		note("replay from %" PRIu64 ": stopped with %d (%s) before %" PRIu64
		     ", want it to stop before %" PRIu64,
		     from, r, sl_strerror(r), want, stop);
	snprintf(what, sizeof(what), "replay from %" PRIu64 ": end", from);
	expect_rc(what, r, end_rc);
	if (end_rc != SL_EEND) {
		snprintf(what, sizeof(what), "replay from %" PRIu64 ": the call after the error",
			 from);
		expect_rc(what, sl_iter_next(it, &e), end_rc);
	}
	sl_iter_close(it);
}

/* The whole replay is intact. */
static void check_replay_whole(const struct store *s, struct sl_db *db)
{
	check_replay(s, db, 1, 0, s->last_seq + 1, SL_EEND);
}

/* ---- Cases -------------------------------------------------------------------------------- */

struct ccase {
	char dir[64];
	const struct store *s;
};

static void case_begin(struct ccase *c, const struct store *s, const char *tag)
{
	cur_case = tag;
	c->s = s;
	assert_non_null(sl_test_mkdtemp(c->dir, sizeof(c->dir), tag));
	copy_dir(s->dir, c->dir);
}

static void case_end(struct ccase *c)
{
	sl_test_rm_rf(c->dir);
}

static void case_path(const struct ccase *c, const char *name, char *out, size_t cap)
{
	file_path(out, cap, c->dir, name);
}

static const struct tab *tab_of(const struct store *s, int level, size_t i)
{
	assert_true(i < s->nlv[level]);
	return &s->tabs[s->lv[level][i]];
}

static long tab_index(const struct store *s, const struct tab *t)
{
	return (long)(t - s->tabs);
}

/* The state tables in version order: 0 is the newest. */
static const struct tab *state_tab(const struct store *s, size_t i)
{
	return tab_of(s, 0, i);
}

static const struct tab *oldest_state_tab(const struct store *s)
{
	return tab_of(s, 0, s->nlv[0] - 1);
}

/* A block in the middle of t's order keys (its last key an order key, and so is the next
 * block's): no stock or trade lookup can land in it. */
static size_t middle_order_block(const struct tab *t)
{
	size_t n = 0;
	while (n < t->nblk && t->blk[n].last[0] == SL_KEY_ORDER)
		n++;
	assert_true(n >= 3);
	return (n - 1) / 2;
}

/* The block holding t's first stock key. */
static size_t stock_block(const struct tab *t)
{
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = sl__key_stock(k, 0);
	size_t b = index_search(t, k, kl);
	assert_true(b < t->nblk);
	assert_true(t->keys[t->blk[b].first + t->blk[b].n - 1].k[0] >= SL_KEY_STOCK);
	return b;
}

/* Open read-only, and check every key against d and the whole replay. A table's damage must
 * not stop the store from opening: the keys it does not hold keep being served. */
static int check_state_damage(const struct ccase *c, const struct damage *d, size_t *n_failed)
{
	int r;
	struct sl_db *db = open_rdonly(c->dir, &r);
	expect_rc("read-only open", r, 0);
	if (!db)
		return 0;
	check_keys(c->s, db, d, n_failed);
	check_replay_whole(c->s, db);
	sl_db_close(db);
	return 1;
}

/* How many keys the damage must make fail, by the parse (so a case can say it tested some). */
static size_t count_expected_failures(const struct store *s, const struct damage *d)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nkeys; i++)
		n += expected_rc(s, &s->keys[i], d) != s->keys[i].rc;
	return n;
}

/* One bit flipped in data block b of state table t: verify names t and the block's offset; the
 * keys whose lookup reads that block fail with SL_ECORRUPT, every other key answers as before. */
static void data_block_case(const struct store *s, const struct tab *t, size_t b, const char *tag)
{
	struct ccase c;
	case_begin(&c, s, tag);
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	const struct blk *bk = &t->blk[b];
	sl_test_flip_bit(path, bk->off + bk->size / 2, 3);
	struct damage d = { -1, 0, tab_index(s, t), (long)b };
	size_t want_failed = count_expected_failures(s, &d), failed = 0;
	print_message("  [%s] block %zu of %zu of %s (offset %" PRIu64 ", %zu keys): %zu of %zu "
		      "keys must fail\n",
		      tag, b, t->nblk, t->name, bk->off, bk->n, want_failed, s->nkeys);
	if (!want_failed)
		note("setup: no key reads block %zu of %s", b, t->name);
	check_verify(c.dir, SL_ECORRUPT, t->name, bk->off);
	if (check_state_damage(&c, &d, &failed) && failed != want_failed)
		note("%zu keys failed, want %zu", failed, want_failed);
	case_end(&c);
}

/* A state table that does not open (err): every key whose lookup reaches it fails with err,
 * every other key answers as before; verify names it at want_off. */
static void whole_table_case(struct ccase *c, const struct tab *t, int err, uint64_t want_off)
{
	struct damage d = { tab_index(c->s, t), err, -1, -1 };
	size_t want_failed = count_expected_failures(c->s, &d), failed = 0;
	print_message("  [%s] %s does not open: %zu of %zu keys must fail with %s\n", cur_case,
		      t->name, want_failed, c->s->nkeys, sl_strerror(err));
	if (!want_failed)
		note("setup: no key reaches %s", t->name);
	check_verify(c->dir, err, t->name, want_off);
	if (check_state_damage(c, &d, &failed) && failed != want_failed)
		note("%zu keys failed, want %zu", failed, want_failed);
	case_end(c);
}

/* ---- (a) data blocks of state tables ------------------------------------------------------ */

static void test_state_data_block_oldest_table(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = oldest_state_tab(&F->base);
	data_block_case(&F->base, t, middle_order_block(t), "cor_blk_old");
	test_end();
}

static void test_state_data_block_newest_table(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 0);
	data_block_case(&F->base, t, middle_order_block(t), "cor_blk_new");
	test_end();
}

static void test_state_data_block_first_and_last(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 1);
	data_block_case(&F->base, t, 0, "cor_blk_first");
	data_block_case(&F->base, t, t->nblk - 1, "cor_blk_last");
	test_end();
}

/* The block holding the newest table's stock directory entries: opening reads the directory
 * back from the tables, and one damaged block there must not take the whole store down. */
static void test_state_data_block_stock_directory(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 0);
	data_block_case(&F->base, t, stock_block(t), "cor_blk_stock");
	test_end();
}

/* ---- (b) (c) (d) index, bloom, footer ------------------------------------------------------- */

static void test_state_index_block(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 1);
	struct ccase c;
	case_begin(&c, &F->base, "cor_index");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->index_off + t->index_size / 2, 5);
	/* sst.h: the open checks the index block's CRC and names the index block's offset. */
	whole_table_case(&c, t, SL_ECORRUPT, t->index_off);
	test_end();
}

static void test_state_bloom_block(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 1);
	struct ccase c;
	case_begin(&c, &F->base, "cor_bloom");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->bloom_off + (t->bloom_size - 4) / 2, 1);
	whole_table_case(&c, t, SL_ECORRUPT, t->bloom_off);
	test_end();
}

static void test_state_footer(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 1);
	struct ccase c;
	case_begin(&c, &F->base, "cor_footer");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->footer_off + 20, 0); /* inside bloom_off */
	whole_table_case(&c, t, SL_ECORRUPT, t->footer_off);
	test_end();
}

/* The oldest table's footer: the walk reaches it last, so only keys no newer table holds fail. */
static void test_state_footer_oldest_table(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = oldest_state_tab(&F->base);
	struct ccase c;
	case_begin(&c, &F->base, "cor_footer_old");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->footer_off + 2, 6); /* the magic */
	whole_table_case(&c, t, SL_ECORRUPT, t->footer_off);
	test_end();
}

/* ---- (f) truncated tables ----------------------------------------------------------------- */

/* Cut at `size`: the footer is looked for in the last 64 bytes, so verify names the offset where
 * it should be (the file is too short for one below 64 bytes: offset 0). */
static void truncated_table_case(const struct tab *t, uint64_t size, const char *tag)
{
	struct ccase c;
	case_begin(&c, &F->base, tag);
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)size), 0);
	whole_table_case(&c, t, SL_ECORRUPT, size >= SST_FOOTER ? size - SST_FOOTER : 0);
}

static void test_state_truncated(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 1);
	truncated_table_case(t, t->blk[1].off + t->blk[1].size / 2, "cor_trunc_data");
	truncated_table_case(t, t->index_off + t->index_size / 2, "cor_trunc_index");
	truncated_table_case(t, t->footer_off + SST_FOOTER / 2, "cor_trunc_footer");
	truncated_table_case(t, 40, "cor_trunc_40");
	truncated_table_case(t, 0, "cor_trunc_0");
	test_end();
}

/* ---- (i) a missing table ------------------------------------------------------------------ */

static void test_state_table_missing(void **state)
{
	(void)state;
	test_begin();
	const struct tab *t = state_tab(&F->base, 1);
	struct ccase c;
	case_begin(&c, &F->base, "cor_missing");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	/* tables.h: a missing file is -ENOENT, reported at offset 0. */
	whole_table_case(&c, t, -ENOENT, 0);
	test_end();
}

/* ---- (h) event tables --------------------------------------------------------------------- */

static uint64_t key_seq(const struct tkey *k)
{
	uint64_t seq;
	assert_int_equal(sl__key_parse(k->k, k->len, &seq, NULL), SL_KEY_EVENT);
	return seq;
}

/* A bit flipped in a data block of the middle event table holding sequences [s1, s2]: replay
 * gives everything before s1 exactly, then SL_ECORRUPT, and keeps returning it (the cursor's
 * error is sticky); an iterator opened inside the block fails on its first event; one opened
 * at s2 + 1 gives everything after the block exactly. State queries are untouched. */
static void test_event_data_block(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	const struct tab *t = tab_of(s, SL_EVENT_LEVEL, s->nlv[SL_EVENT_LEVEL] / 2);
	size_t b = t->nblk / 2;
	const struct blk *bk = &t->blk[b];
	uint64_t s1 = key_seq(&t->keys[bk->first]), s2 = key_seq(&t->keys[bk->first + bk->n - 1]);
	assert_true(s1 > 1 && s2 < s->last_seq);
	struct ccase c;
	case_begin(&c, s, "cor_ev_blk");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, bk->off + bk->size / 3, 7);
	check_verify(c.dir, SL_ECORRUPT, t->name, bk->off);
	int r;
	struct sl_db *db = open_rdonly(c.dir, &r);
	expect_rc("read-only open", r, 0);
	if (db) {
		check_keys(s, db, &NO_DAMAGE, NULL);
		check_replay(s, db, 1, 0, s1, SL_ECORRUPT);
		check_replay(s, db, s1, 0, s1, SL_ECORRUPT);
		check_replay(s, db, (s1 + s2) / 2, 0, (s1 + s2) / 2, SL_ECORRUPT);
		check_replay(s, db, s2 + 1, 0, s->last_seq + 1, SL_EEND);
		sl_db_close(db);
	}
	case_end(&c);
	test_end();
}

/* An event table that does not open: tables.h has the cursor take every table it may read at
 * open, so sl_iter_open from any sequence up to the table's last fails with the table's open
 * error; from the sequence after it, replay is exact. verify names the table. */
static void event_whole_table_case(struct ccase *c, const struct tab *t, int err, uint64_t off)
{
	const struct store *s = c->s;
	check_verify(c->dir, err, t->name, off);
	int r;
	struct sl_db *db = open_rdonly(c->dir, &r);
	expect_rc("read-only open", r, 0);
	if (db) {
		check_keys(s, db, &NO_DAMAGE, NULL);
		check_replay(s, db, 1, err, 0, 0);
		check_replay(s, db, t->info.min_seq, err, 0, 0);
		check_replay(s, db, t->info.max_seq, err, 0, 0);
		check_replay(s, db, t->info.max_seq + 1, 0, s->last_seq + 1, SL_EEND);
		sl_db_close(db);
	}
	case_end(c);
}

static void test_event_table_missing(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	const struct tab *t = tab_of(s, SL_EVENT_LEVEL, s->nlv[SL_EVENT_LEVEL] / 2);
	struct ccase c;
	case_begin(&c, s, "cor_ev_missing");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	event_whole_table_case(&c, t, -ENOENT, 0);
	test_end();
}

static void test_event_footer(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	const struct tab *t = tab_of(s, SL_EVENT_LEVEL, s->nlv[SL_EVENT_LEVEL] / 2);
	struct ccase c;
	case_begin(&c, s, "cor_ev_footer");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->footer_off + 40, 4); /* entries */
	event_whole_table_case(&c, t, SL_ECORRUPT, t->footer_off);
	test_end();
}

/* Two damaged tables: verify reports the first in level, then manifest, order (tables.h). */
static void test_two_damaged_tables_first_reported(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	const struct tab *ev = tab_of(s, SL_EVENT_LEVEL, 0);
	const struct tab *st = oldest_state_tab(s);
	size_t b = middle_order_block(st);
	struct ccase c;
	case_begin(&c, s, "cor_two");
	char path[512];
	case_path(&c, ev->name, path, sizeof(path));
	sl_test_flip_bit(path, ev->blk[0].off + 5, 2);
	case_path(&c, st->name, path, sizeof(path));
	sl_test_flip_bit(path, st->blk[b].off + 7, 2);
	check_verify(c.dir, SL_ECORRUPT, st->name, st->blk[b].off);
	case_end(&c);
	test_end();
}

/* ---- (e) (g) the manifest and CURRENT ------------------------------------------------------- */

/* The manifest or CURRENT damaged so that the manifest does not load: verify and the open both
 * fail with SL_ECORRUPT, verify naming the file and the offset (manifest.h: a bad edit
 * followed by good ones, a bad snapshot or header, a bad CURRENT). */
static void manifest_fatal_case(struct ccase *c, const char *name, uint64_t off)
{
	check_verify(c->dir, SL_ECORRUPT, name, off);
	int r;
	struct sl_db *db = open_rdonly(c->dir, &r);
	expect_rc("read-only open", r, SL_ECORRUPT);
	sl_db_close(db);
	case_end(c);
}

/* The manifest lost its records from number j on (a damaged or torn last edit, or a cut): the
 * edits before j stand (manifest.h: a torn last edit is dropped). The store is then whole only
 * if the log still holds everything after the checkpoint of edit j - 1: then the open succeeds
 * and recovers the rest from the log (every key and the whole replay exactly as before) and
 * verify passes. Otherwise the flush recorded by the lost edit already let the log go: the
 * open fails with SL_ECORRUPT (db.c: the log starts past the tables' end), and verify must not
 * call such a store sound: SL_ECORRUPT naming the manifest and the offset of the first edit
 * it lost. */
static void manifest_lost_tail_case(struct ccase *c, size_t j)
{
	const struct store *s = c->s;
	uint64_t cp = s->recs[j - 1].checkpoint;
	int whole = s->wal_first_seq && s->wal_first_seq <= cp + 1;
	print_message("  manifest keeps %zu of %zu records: checkpoint %" PRIu64
		      ", the log starts at %" PRIu64 ": %s\n",
		      j, s->nrecs, cp, s->wal_first_seq,
		      whole ? "recoverable" : "the lost edit's data is gone");
	int r;
	struct sl_db *db = open_rdonly(c->dir, &r);
	if (whole) {
		check_verify(c->dir, 0, NULL, 0);
		expect_rc("read-only open", r, 0);
		if (db) {
			check_keys(s, db, &NO_DAMAGE, NULL);
			check_replay_whole(s, db);
		}
	} else {
		check_verify(c->dir, SL_ECORRUPT, s->mf_name, s->recs[j].off);
		expect_rc("read-only open", r, SL_ECORRUPT);
	}
	sl_db_close(db);
	case_end(c);
}

static void test_manifest_middle_edit(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	assert_true(s->nrecs >= 4);
	size_t j = s->nrecs / 2;
	struct ccase c;
	case_begin(&c, s, "cor_mf_mid");
	char path[512];
	case_path(&c, s->mf_name, path, sizeof(path));
	sl_test_flip_bit(path, s->recs[j].off + MF_REC_HDR + s->recs[j].len / 2, 4);
	manifest_fatal_case(&c, s->mf_name, s->recs[j].off);
	test_end();
}

static void test_manifest_middle_edit_length(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	size_t j = s->nrecs / 2;
	struct ccase c;
	case_begin(&c, s, "cor_mf_len");
	char path[512];
	case_path(&c, s->mf_name, path, sizeof(path));
	sl_test_flip_bit(path, s->recs[j].off, 2); /* its payload length */
	manifest_fatal_case(&c, s->mf_name, s->recs[j].off);
	test_end();
}

static void test_manifest_snapshot_and_header(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	struct ccase c;
	char path[512];
	case_begin(&c, s, "cor_mf_snap");
	case_path(&c, s->mf_name, path, sizeof(path));
	sl_test_flip_bit(path, s->recs[0].off + MF_REC_HDR + 3, 0);
	manifest_fatal_case(&c, s->mf_name, s->recs[0].off);
	case_begin(&c, s, "cor_mf_hdr");
	case_path(&c, s->mf_name, path, sizeof(path));
	sl_test_flip_bit(path, 20, 0);
	manifest_fatal_case(&c, s->mf_name, 0);
	test_end();
}

static void test_manifest_current(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	struct ccase c;
	char path[512];
	case_begin(&c, s, "cor_current");
	case_path(&c, "CURRENT", path, sizeof(path));
	sl_test_flip_bit(path, 20, 0);
	manifest_fatal_case(&c, "CURRENT", 0);
	case_begin(&c, s, "cor_current_gone");
	case_path(&c, "CURRENT", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	manifest_fatal_case(&c, "CURRENT", 0);
	test_end();
}

static void test_manifest_last_edit(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	size_t j = s->nrecs - 1;
	struct ccase c;
	case_begin(&c, s, "cor_mf_last");
	char path[512];
	case_path(&c, s->mf_name, path, sizeof(path));
	sl_test_flip_bit(path, s->recs[j].off + MF_REC_HDR + s->recs[j].len - 1, 7);
	manifest_lost_tail_case(&c, j);
	test_end();
}

/* A writable open of a store whose last manifest edit is damaged, when the log no longer holds
 * what that edit recorded: the open fails (as the read-only one does), and it must fail before
 * it repairs anything: the manifest keeps its bytes and the tables the lost edit named stay
 * (they are all that is left of those sequences), so that nothing is destroyed before an
 * operator can look. */
static void test_manifest_last_edit_writable_open_destroys_nothing(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	size_t j = s->nrecs - 1;
	uint64_t cp = s->recs[j - 1].checkpoint;
	assert_true(s->wal_first_seq > cp + 1); /* the log cannot fill in */
	struct ccase c;
	case_begin(&c, s, "cor_mf_last_rw");
	char path[512];
	case_path(&c, s->mf_name, path, sizeof(path));
	sl_test_flip_bit(path, s->recs[j].off + MF_REC_HDR + s->recs[j].len - 1, 7);
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = c.dir;
	o.wal_segment_bytes = 128 * 1024;
	struct sl_db *db = NULL;
	expect_rc("writable open", sl_db_open(&o, &db), SL_ECORRUPT);
	sl_db_close(db);
	if (sl_test_file_size(path) != s->mf_size)
		note("the manifest is %" PRIu64 " bytes after the open, was %" PRIu64,
		     sl_test_file_size(path), s->mf_size);
	for (size_t i = 0; i < s->ntabs; i++) {
		char tp[512];
		case_path(&c, s->tabs[i].name, tp, sizeof(tp));
		if (!sl_test_file_exists(tp))
			note("the open deleted %s (level %u, sequences %" PRIu64 "..%" PRIu64 ")",
			     s->tabs[i].name, s->tabs[i].info.level, s->tabs[i].info.min_seq,
			     s->tabs[i].info.max_seq);
	}
	case_end(&c);
	test_end();
}

static void test_manifest_truncated(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	size_t last = s->nrecs - 1, mid = s->nrecs / 2;
	struct ccase c;
	char path[512];
	/* Mid last record, and exactly at its start (no torn bytes at all). */
	case_begin(&c, s, "cor_mft_last");
	case_path(&c, s->mf_name, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)(s->recs[last].off + MF_REC_HDR + 5)), 0);
	manifest_lost_tail_case(&c, last);
	case_begin(&c, s, "cor_mft_bound");
	case_path(&c, s->mf_name, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)s->recs[last].off), 0);
	manifest_lost_tail_case(&c, last);
	/* Mid a middle record: it and everything after it are gone. */
	case_begin(&c, s, "cor_mft_mid");
	case_path(&c, s->mf_name, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)(s->recs[mid].off + 3)), 0);
	manifest_lost_tail_case(&c, mid);
	/* Inside the snapshot, inside the header, to nothing. */
	case_begin(&c, s, "cor_mft_snap");
	case_path(&c, s->mf_name, path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)(s->recs[0].off + 4)), 0);
	manifest_fatal_case(&c, s->mf_name, s->recs[0].off);
	case_begin(&c, s, "cor_mft_hdr");
	case_path(&c, s->mf_name, path, sizeof(path));
	assert_int_equal(truncate(path, 20), 0);
	manifest_fatal_case(&c, s->mf_name, 0);
	case_begin(&c, s, "cor_mft_0");
	case_path(&c, s->mf_name, path, sizeof(path));
	assert_int_equal(truncate(path, 0), 0);
	manifest_fatal_case(&c, s->mf_name, 0);
	test_end();
}

/* ---- Tables below level 0 ---------------------------------------------------------------- */

/* The deepest state level holding tables. */
static int deep_level(const struct store *s)
{
	int l = SL_EVENT_LEVEL - 1;
	while (l > 0 && !s->nlv[l])
		l--;
	return l;
}

/* After a full compaction the state lives below level 0, where a lookup picks one table per
 * level by key range: a damaged block there fails exactly the keys read from it. */
static void test_compacted_data_block(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->comp;
	const struct tab *t = tab_of(s, deep_level(s), s->nlv[deep_level(s)] / 2);
	data_block_case(s, t, middle_order_block(t), "cor_comp_blk");
	test_end();
}

static void test_compacted_index_block(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->comp;
	const struct tab *t = tab_of(s, deep_level(s), 0);
	struct ccase c;
	case_begin(&c, s, "cor_comp_index");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->index_off + t->index_size / 3, 2);
	whole_table_case(&c, t, SL_ECORRUPT, t->index_off);
	test_end();
}

/* A full compaction that has to read a damaged block fails with SL_ECORRUPT and leaves the
 * store exactly as it was (sluice.h): the manifest keeps its bytes, no table is added or
 * removed, verify names the same block, and every key answers as it did with the damage. */
static void test_compact_over_damaged_block(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->base;
	const struct tab *t = oldest_state_tab(s);
	size_t b = middle_order_block(t);
	struct ccase c;
	case_begin(&c, s, "cor_compact");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->blk[b].off + t->blk[b].size / 2, 6);
	struct sl_options o;
	store_options(&o, c.dir, 0);
	o.flags &= ~(uint32_t)SL_OPEN_CREATE;
	struct sl_db *db = NULL;
	int r = sl_db_open(&o, &db);
	expect_rc("writable open", r, 0);
	if (db) {
		expect_rc("sl_db_compact", sl_db_compact(db), SL_ECORRUPT);
		expect_rc("close", sl_db_close(db), 0);
	}
	char mf[512];
	case_path(&c, s->mf_name, mf, sizeof(mf));
	if (sl_test_file_size(mf) != s->mf_size)
		note("the manifest is %" PRIu64 " bytes, was %" PRIu64, sl_test_file_size(mf),
		     s->mf_size);
	size_t tables = 0;
	DIR *d = opendir(c.dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strlen(e->d_name) != 20 || strcmp(e->d_name + 16, ".sst"))
			continue;
		tables++;
		int known = 0;
		for (size_t i = 0; i < s->ntabs; i++)
			known |= !strcmp(s->tabs[i].name, e->d_name);
		if (!known)
			note("a table the store did not have: %s", e->d_name);
	}
	closedir(d);
	if (tables != s->ntabs)
		note("%zu tables, want %zu", tables, s->ntabs);
	check_verify(c.dir, SL_ECORRUPT, t->name, t->blk[b].off);
	struct damage dm = { -1, 0, tab_index(s, t), (long)b };
	check_state_damage(&c, &dm, NULL);
	case_end(&c);
	test_end();
}

/* ---- A log tail over damaged tables ------------------------------------------------------- */

/* The log's tail is replayed over the tables at open: an execution, cancel or replace of an
 * order whose table block is damaged cannot be applied. What it would have made (the trade of
 * an execution, the new order of a replace) must then answer with an error, never as missing:
 * every key answers exactly as before the damage, or SL_ECORRUPT. */
static void test_log_tail_over_damaged_block(void **state)
{
	(void)state;
	test_begin();
	const struct store *s = &F->tail;
	const struct tab *t = state_tab(s, 0);
	/* The block of the newest table that the tail's executions, cancels and replaces name
	 * most often. */
	size_t *refs = calloc(t->nblk, sizeof(*refs));
	for (size_t i = F->base_msgs; i < F->nmsgs; i++) {
		struct sl_itch_msg m;
		if (sl__itch_decode(F->msgs[i], F->lens[i], &m))
			continue;
		uint64_t ref;
		if (m.type == 'E' || m.type == 'C')
			ref = m.u.executed.ref;
		else if (m.type == 'U')
			ref = m.u.replace.orig_ref;
		else
			continue;
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = sl__key_order(k, m.locate, ref);
		size_t b = index_search(t, k, kl);
		if (b < t->nblk && block_has(t, b, k, kl) && t->keys[t->blk[b].first].k[0] == 'O')
			refs[b]++;
	}
	size_t best = 0;
	for (size_t b = 1; b < t->nblk; b++)
		if (refs[b] > refs[best])
			best = b;
	print_message("  block %zu of %s: %zu of the tail's messages name its orders\n", best,
		      t->name, refs[best]);
	assert_true(refs[best] > 0);
	free(refs);
	struct ccase c;
	case_begin(&c, s, "cor_tail");
	char path[512];
	case_path(&c, t->name, path, sizeof(path));
	sl_test_flip_bit(path, t->blk[best].off + t->blk[best].size / 2, 3);
	check_verify(c.dir, SL_ECORRUPT, t->name, t->blk[best].off);
	/* The log tail names orders only the damaged block holds: the state it describes cannot
	 * be rebuilt. A read-only open serves the rest and answers SL_ECORRUPT (never "not
	 * found") for every key those messages touched or made; a writable open refuses (what
	 * it flushed next would lose those keys for good), names the block, changes nothing. */
	int r;
	struct sl_db *db = open_rdonly(c.dir, &r);
	expect_rc("read-only open", r, 0);
	if (db) {
		size_t lost = 0, errors = 0, changed = 0;
		for (size_t i = 0; i < s->nkeys; i++) {
			const struct qkey *q = &s->keys[i];
			union {
				struct sl_order o;
				struct sl_trade t;
				struct sl_stock s;
			} got;
			int g = get_key(db, q, &got, answer_size(q));
			if (g == q->rc && (g || !memcmp(&got, &q->v, answer_size(q))))
				continue;
			if (g == SL_ECORRUPT) {
				errors++;
				continue;
			}
			if (g == SL_ENOTFOUND)
				lost++;
			else
				changed++;
			if (lost + changed <= 6)
				note("key %c locate %u %" PRIu64 ": got %d (%s), want %d (%s) or "
				     "SL_ECORRUPT",
				     q->kind, q->locate, q->a, g, sl_strerror(g), q->rc,
				     sl_strerror(q->rc));
		}
		print_message("  %zu keys fail with SL_ECORRUPT, %zu are silently missing, %zu "
			      "changed\n",
			      errors, lost, changed);
		if (lost || changed)
			note("%zu keys answered as missing and %zu with another value instead of "
			     "an error",
			     lost, changed);
		if (!errors)
			note("no key failed with SL_ECORRUPT");
		check_replay_whole(s, db);
		sl_db_close(db);
	}
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = c.dir;
	r = sl_db_open(&o, &db);
	expect_rc("writable open", r, SL_ECORRUPT);
	if (r == 0)
		sl_db_close(db);
	check_verify(c.dir, SL_ECORRUPT, t->name, t->blk[best].off);
	case_end(&c);
	test_end();
}

/* ---- Set-up ------------------------------------------------------------------------------- */

static void gen_feed(struct fixture *f, size_t n)
{
	struct sl_feed_config c;
	sl__feed_config_init(&c);
	c.seed = 41;
	c.messages = n;
	struct sl_feed *fd;
	assert_int_equal(sl__feed_new(&c, &fd), 0);
	f->msgs = malloc(n * sizeof(*f->msgs));
	f->lens = malloc(n * sizeof(*f->lens));
	assert_non_null(f->msgs);
	assert_non_null(f->lens);
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[64];
		int len = sl__feed_next_msg(fd, buf, sizeof(buf));
		assert_true(len > 0 && len <= SL_ITCH_MAX_LEN);
		memcpy(f->msgs[i], buf, (size_t)len);
		f->lens[i] = (uint16_t)len;
	}
	f->nmsgs = n;
	sl__feed_free(fd);
}

static void append_range(struct sl_db *db, const struct fixture *f, size_t from, size_t to)
{
	struct sl_msg batch[CHUNK];
	size_t k = 0;
	for (size_t i = from; i < to; i++) {
		batch[k++] = (struct sl_msg){ f->msgs[i], f->lens[i], 1000 + i };
		if (k == CHUNK || i + 1 == to) {
			uint64_t last;
			assert_int_equal(sl_db_append_messages(db, batch, k, &last), 0);
			assert_int_equal(sl_db_wait_durable(db, last, -1), 0);
			k = 0;
		}
	}
}

/* Append chunks until the ROTATIONS-th rotation (it happens right after the chunk that fills
 * the memtable, before the chunk's sequence counts as applied), then wait for every flush. */
static void build_base(struct fixture *f, struct store *s)
{
	assert_non_null(sl_test_mkdtemp(s->dir, sizeof(s->dir), "cor_base"));
	struct sl_options o;
	store_options(&o, s->dir, 768 * 1024);
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	struct sl_stats st;
	size_t i = 0;
	do {
		assert_true(i < f->nmsgs - TAIL_MESSAGES);
		size_t to = i + CHUNK;
		append_range(db, f, i, to);
		i = to;
		sl_db_stats(db, &st);
	} while (st.rotations < ROTATIONS);
	f->base_msgs = i;
	for (int w = 0; w < 1000 && (st.flushes < st.rotations || st.checkpoint_seq != i); w++) {
		usleep(5000);
		sl_db_stats(db, &st);
	}
	assert_int_equal(st.flushes, ROTATIONS);
	assert_int_equal(st.flush_errors, 0);
	assert_int_equal(st.checkpoint_seq, i);
	assert_int_equal(sl_db_close(db), 0);
	s->last_seq = i;
}

static void finish_store(struct store *s, const struct qkey *extra, size_t nextra)
{
	parse_manifest(s);
	s->wal_first_seq = wal_first_seq(s->dir);
	size_t cap = 0;
	collect_table_keys(s, &s->keys, &s->nkeys, &cap);
	for (size_t i = 0; i < nextra; i++)
		add_key(&s->keys, &s->nkeys, &cap, extra[i].key, extra[i].klen);
	unique_keys(s->keys, &s->nkeys);
	record_answers(s);
}

/* Keys the tail's messages make or change. */
static void tail_keys(const struct fixture *f, struct qkey **keys, size_t *n)
{
	size_t cap = 0;
	*keys = NULL;
	*n = 0;
	for (size_t i = f->base_msgs; i < f->nmsgs; i++) {
		struct sl_itch_msg m;
		if (sl__itch_decode(f->msgs[i], f->lens[i], &m))
			continue;
		uint8_t k[SL_KEY_MAX_LEN];
		switch (m.type) {
		case 'A':
		case 'F':
			add_key(keys, n, &cap, k, sl__key_order(k, m.locate, m.u.add_order.ref));
			break;
		case 'E':
		case 'C':
			add_key(keys, n, &cap, k, sl__key_order(k, m.locate, m.u.executed.ref));
			add_key(keys, n, &cap, k, sl__key_trade(k, m.u.executed.match));
			break;
		case 'U':
			add_key(keys, n, &cap, k, sl__key_order(k, m.locate, m.u.replace.orig_ref));
			add_key(keys, n, &cap, k, sl__key_order(k, m.locate, m.u.replace.new_ref));
			break;
		case 'P':
			add_key(keys, n, &cap, k, sl__key_trade(k, m.u.trade.match));
			break;
		case 'Q':
			add_key(keys, n, &cap, k, sl__key_trade(k, m.u.cross_trade.match));
			break;
		default:
			break;
		}
	}
}

static int setup(void **state)
{
	(void)state;
	F = calloc(1, sizeof(*F));
	assert_non_null(F);
	gen_feed(F, FEED_MESSAGES);
	build_base(F, &F->base);
	finish_store(&F->base, NULL, 0);

	/* The same store with TAIL_MESSAGES more in the log (no rotation: they stay there). */
	struct store *t = &F->tail;
	assert_non_null(sl_test_mkdtemp(t->dir, sizeof(t->dir), "cor_tail"));
	copy_dir(F->base.dir, t->dir);
	F->nmsgs = F->base_msgs + TAIL_MESSAGES;
	struct sl_options o;
	store_options(&o, t->dir, 0);
	struct sl_db *db;
	assert_int_equal(sl_db_open(&o, &db), 0);
	append_range(db, F, F->base_msgs, F->nmsgs);
	assert_int_equal(sl_db_close(db), 0);
	t->last_seq = F->nmsgs;
	struct qkey *extra;
	size_t nextra;
	tail_keys(F, &extra, &nextra);
	finish_store(t, extra, nextra);
	free(extra);

	/* The same store after a full compaction (every state table merged into the bottom
	 * level), asked for the same keys. */
	struct store *cs = &F->comp;
	assert_non_null(sl_test_mkdtemp(cs->dir, sizeof(cs->dir), "cor_comp"));
	copy_dir(F->base.dir, cs->dir);
	store_options(&o, cs->dir, 0);
	assert_int_equal(sl_db_open(&o, &db), 0);
	assert_int_equal(sl_db_compact(db), 0);
	assert_int_equal(sl_db_close(db), 0);
	cs->last_seq = F->base.last_seq;
	finish_store(cs, F->base.keys, F->base.nkeys);
	assert_int_equal(cs->nlv[0], 0);
	assert_true(deep_level(cs) >= 1);

	/* The parse agrees with the stores before any damage: the walk finds exactly the keys
	 * that answer. */
	const struct store *all[] = { &F->base, cs };
	for (size_t a = 0; a < 2; a++)
		for (size_t i = 0; i < all[a]->nkeys; i++)
			assert_int_equal(sim_lookup(all[a], &all[a]->keys[i], &NO_DAMAGE) ==
						 SIM_FOUND,
					 all[a]->keys[i].rc == 0);
	const struct store *s = &F->base;
	size_t found = 0;
	for (size_t i = 0; i < s->nkeys; i++)
		found += s->keys[i].rc == 0;
	print_message("store: %zu messages, %zu state tables, %zu event tables, %zu manifest "
		      "records, %zu keys (%zu found), the log starts at %" PRIu64
		      "; compacted: %zu tables at level %d\n",
		      s->last_seq, s->nlv[0], s->nlv[SL_EVENT_LEVEL], s->nrecs, s->nkeys, found,
		      s->wal_first_seq, cs->nlv[deep_level(cs)], deep_level(cs));
	assert_true(s->nlv[0] == ROTATIONS && s->nlv[SL_EVENT_LEVEL] == ROTATIONS);
	char path[4200];
	uint64_t off, recs, torn;
	assert_int_equal(sl_verify(s->dir, path, sizeof(path), &off, &recs, &torn), 0);
	assert_int_equal(sl_verify(t->dir, path, sizeof(path), &off, &recs, &torn), 0);
	assert_int_equal(sl_verify(cs->dir, path, sizeof(path), &off, &recs, &torn), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free_store(&F->base);
	free_store(&F->tail);
	free_store(&F->comp);
	free(F->msgs);
	free(F->lens);
	free(F);
	F = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_data_block_oldest_table),
		cmocka_unit_test(test_state_data_block_newest_table),
		cmocka_unit_test(test_state_data_block_first_and_last),
		cmocka_unit_test(test_state_data_block_stock_directory),
		cmocka_unit_test(test_state_index_block),
		cmocka_unit_test(test_state_bloom_block),
		cmocka_unit_test(test_state_footer),
		cmocka_unit_test(test_state_footer_oldest_table),
		cmocka_unit_test(test_state_truncated),
		cmocka_unit_test(test_state_table_missing),
		cmocka_unit_test(test_event_data_block),
		cmocka_unit_test(test_event_table_missing),
		cmocka_unit_test(test_event_footer),
		cmocka_unit_test(test_two_damaged_tables_first_reported),
		cmocka_unit_test(test_manifest_middle_edit),
		cmocka_unit_test(test_manifest_middle_edit_length),
		cmocka_unit_test(test_manifest_snapshot_and_header),
		cmocka_unit_test(test_manifest_current),
		cmocka_unit_test(test_manifest_last_edit),
		cmocka_unit_test(test_manifest_last_edit_writable_open_destroys_nothing),
		cmocka_unit_test(test_manifest_truncated),
		cmocka_unit_test(test_compacted_data_block),
		cmocka_unit_test(test_compacted_index_block),
		cmocka_unit_test(test_compact_over_damaged_block),
		cmocka_unit_test(test_log_tail_over_damaged_block),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
