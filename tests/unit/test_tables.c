/* test_tables.c - unit tests of the table cache and lookups through a version: exact answers
 * against a model of which table holds what (level 0 overlapping, newest first, tombstones
 * hiding older values; levels 1-2 disjoint), batch lookups equal to single ones, event replay
 * across event tables, damaged and missing tables reported (never a crash), orphans removed,
 * handles counted and tables closed, and readers racing version changes. Links tables.o, sst.o,
 * bloom.o, manifest.o, keys.o, os.o, accel.o, accel_cpu.o, err.o and fault_os.o only. Each test
 * works in its own mkdtemp directory and removes it. SL_TEST_QUICK=1 shrinks the tables.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "accel.h"
#include "bloom.h"
#include "fault_os.h"
#include "keys.h"
#include "log.h"
#include "manifest.h"
#include "sluice.h"
#include "sst.h"
#include "tables.h"
#include "testutil.h"

static struct sl_accel *acc;
static uint64_t nrefs; /* refs 1..nrefs per locate in every state table */

/* ---- The model: tables defined by rules, so the test knows every entry ------------------ */

/* A state table: every key of kind with locate in [loc_lo, loc_hi] and ref (or match) in
 * [1, nrefs] divisible by step; those divisible by tomb (if nonzero) are tombstones. */
struct tdef {
	uint64_t no;
	uint32_t level;
	char kind;
	uint16_t loc_lo, loc_hi;
	uint64_t step, tomb;
};

/* Precedence order: level 0 newest first, then levels 1 and 2. */
static const struct tdef defs[] = {
	{ 33, 0, 'T', 0, 0, 4, 8 }, { 32, 0, 'O', 1, 2, 13, 0 }, { 31, 0, 'O', 2, 4, 11, 22 },
	{ 30, 0, 'O', 1, 3, 7, 0 }, { 20, 1, 'O', 1, 1, 3, 0 },	 { 21, 1, 'O', 3, 3, 5, 10 },
	{ 10, 2, 'O', 1, 1, 1, 0 }, { 11, 2, 'O', 2, 2, 1, 0 },	 { 12, 2, 'O', 3, 3, 1, 0 },
	{ 13, 2, 'T', 0, 0, 1, 0 },
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static size_t mkkey(char kind, uint16_t loc, uint64_t ref, uint8_t *out)
{
	switch (kind) {
	case 'O':
		return sl__key_order(out, loc, ref);
	case 'T':
		return sl__key_trade(out, ref);
	case 'S':
		return sl__key_stock(out, loc);
	default:
		return sl__key_event(out, ref);
	}
}

static int def_has(const struct tdef *d, char kind, uint16_t loc, uint64_t ref, int *tomb)
{
	if (kind != d->kind || ref < 1 || ref > nrefs || ref % d->step)
		return 0;
	if (kind == 'O' && (loc < d->loc_lo || loc > d->loc_hi))
		return 0;
	*tomb = d->tomb && ref % d->tomb == 0;
	return 1;
}

/* Values of varying length that name their table. */
static size_t mkval(uint64_t no, char kind, uint16_t loc, uint64_t ref, char *out)
{
	int n = sprintf(out, "t%" PRIu64 "/%c/%u/%" PRIu64 "/", no, kind, loc, ref);
	size_t pad = ref % 40;
	memset(out + n, 'x', pad);
	return (size_t)n + pad;
}

/* The index in defs of the table that answers the key (a tombstone included), or -1. */
static int model_source(char kind, uint16_t loc, uint64_t ref, int *tomb)
{
	for (size_t i = 0; i < NDEFS; i++)
		if (def_has(&defs[i], kind, loc, ref, tomb))
			return (int)i;
	*tomb = 0;
	return -1;
}

/* ---- Building a store ----------------------------------------------------------------------- */

struct store {
	char dir[64];
	struct sl_manifest *m;
	struct sl_tables *tc;
};

static void table_path(const char *dir, uint64_t no, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".sst", dir, no);
}

static void info_from(struct sl_table_info *ti, uint64_t no, uint32_t level,
		      const struct sl_sst_meta *m)
{
	memset(ti, 0, sizeof(*ti));
	ti->file_no = no;
	ti->level = level;
	ti->file_bytes = m->file_bytes;
	ti->entries = m->entries;
	memcpy(ti->smallest, m->smallest, m->smallest_len);
	ti->smallest_len = m->smallest_len;
	memcpy(ti->largest, m->largest, m->largest_len);
	ti->largest_len = m->largest_len;
	ti->min_seq = m->user[0];
	ti->max_seq = m->user[1];
}

static void build_state(const char *dir, const struct tdef *d, struct sl_table_info *ti)
{
	char path[128];
	table_path(dir, d->no, path, sizeof(path));
	struct sl_sst_options o = { .block_bytes = 512,
				    .no_sync = 1,
				    .user = { d->no * 100, d->no * 100 + 99 } };
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, path, &o, &w), 0);
	uint16_t lo = d->kind == 'O' ? d->loc_lo : 0, hi = d->kind == 'O' ? d->loc_hi : 0;
	for (uint16_t loc = lo; loc <= hi; loc++) {
		for (uint64_t ref = d->step; ref <= nrefs; ref += d->step) {
			uint8_t k[SL_KEY_MAX_LEN];
			char v[128];
			size_t kl = mkkey(d->kind, loc, ref, k);
			int tomb = d->tomb && ref % d->tomb == 0;
			size_t vl = tomb ? 0 : mkval(d->no, d->kind, loc, ref, v);
			assert_int_equal(
				sl__sst_writer_add(w, k, kl, v, vl, tomb ? SL_SST_TOMBSTONE : 0),
				0);
		}
	}
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), 0);
	info_from(ti, d->no, d->level, &m);
}

static size_t event_payload(uint64_t seq, uint32_t *kind, uint8_t *out)
{
	if (seq % 97 == 0) {
		*kind = SL_LOG_GAP;
		uint64_t count = seq % 5 + 1;
		memcpy(out, &count, 8);
		return 8;
	}
	*kind = SL_LOG_MSG;
	return (size_t)sprintf((char *)out, "msg-%" PRIu64, seq);
}

static void build_events(const char *dir, uint64_t no, uint64_t first, uint64_t last,
			 struct sl_table_info *ti)
{
	char path[128];
	table_path(dir, no, path, sizeof(path));
	struct sl_sst_options o = { .block_bytes = 1024, .no_sync = 1, .user = { first, last } };
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, path, &o, &w), 0);
	for (uint64_t s = first; s <= last; s++) {
		uint8_t k[SL_KEY_EVENT_LEN], p[64], v[128];
		uint32_t kind;
		size_t pl = event_payload(s, &kind, p);
		size_t vl = sl__val_event_encode(v, kind, s * 10, p, pl);
		assert_int_equal(sl__sst_writer_add(w, k, sl__key_event(k, s), v, vl, 0), 0);
	}
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), 0);
	info_from(ti, no, SL_EVENT_LEVEL, &m);
}

/* The state tables of defs and three event tables in one manifest; the cache over os. */
static void store_new(struct store *s, const struct sl_os *os)
{
	memset(s, 0, sizeof(*s));
	assert_non_null(sl_test_mkdtemp(s->dir, sizeof(s->dir), "tables"));
	struct sl_table_info ti[NDEFS + 3];
	for (size_t i = 0; i < NDEFS; i++)
		build_state(s->dir, &defs[i], &ti[i]);
	build_events(s->dir, 40, 1, 1000, &ti[NDEFS]);
	build_events(s->dir, 41, 1001, 2500, &ti[NDEFS + 1]);
	build_events(s->dir, 42, 2501, 4000, &ti[NDEFS + 2]);
	assert_int_equal(sl__manifest_open(sl__os_default(), acc, s->dir, 0, &s->m), 0);
	struct sl_manifest_edit e = { .add = ti, .n_add = NDEFS + 3 };
	assert_int_equal(sl__manifest_apply(s->m, &e), 0);
	assert_int_equal(sl__tables_open(os, acc, s->dir, &s->tc), 0);
}

static void store_free(struct store *s)
{
	uint64_t handles;
	sl__tables_stats(s->tc, NULL, &handles);
	assert_int_equal(handles, 0);
	sl__tables_close(s->tc);
	sl__manifest_close(s->m);
	sl_test_rm_rf(s->dir);
}

/* ---- Checking lookups ------------------------------------------------------------------- */

/* Every key the test asks about: present, shadowed, deleted and absent ones of each kind. */
struct probe {
	char kind;
	uint16_t loc;
	uint64_t ref;
};

static size_t universe(struct probe **out)
{
	size_t cap = (6 + 1) * (nrefs + 4) + 8, n = 0;
	struct probe *p = malloc(cap * sizeof(*p));
	assert_non_null(p);
	for (uint16_t loc = 0; loc <= 5; loc++)
		for (uint64_t ref = 0; ref <= nrefs + 3; ref++)
			p[n++] = (struct probe){ 'O', loc, ref };
	for (uint64_t ref = 0; ref <= nrefs + 3; ref++)
		p[n++] = (struct probe){ 'T', 0, ref };
	/* Absent stocks: above the locates of the racing test's extra table. */
	for (uint16_t loc = 100; loc < 104; loc++)
		p[n++] = (struct probe){ 'S', loc, 0 };
	*out = p;
	return n;
}

/* The answer the model expects: rc, and the value when rc is 0. */
static int expect_of(const struct probe *p, char *val, size_t *vlen)
{
	int tomb;
	int src = model_source(p->kind, p->loc, p->ref, &tomb);
	if (src < 0 || tomb)
		return SL_ENOTFOUND;
	*vlen = mkval(defs[src].no, p->kind, p->loc, p->ref, val);
	return 0;
}

/* Look p up; 0 if the answer is rc_want (and the model's value when that is 0). */
static int check_one(struct sl_tables *tc, const struct sl_version *v, const struct probe *p,
		     int rc_want)
{
	uint8_t k[SL_KEY_MAX_LEN];
	size_t kl = mkkey(p->kind, p->loc, p->ref, k);
	const void *val;
	size_t vl;
	uint32_t fl;
	struct sl_sst *h;
	int r = sl__tables_lookup(tc, v, k, kl, sl__bloom_hash(k, kl), &val, &vl, &fl, &h);
	int bad = r != rc_want;
	if (!bad && r == 0) {
		char want[128];
		size_t wl;
		assert_int_equal(expect_of(p, want, &wl), 0);
		bad = vl != wl || memcmp(val, want, wl) != 0 || fl != 0 || !h;
	}
	if (r != 0 && h)
		bad = 1;
	sl__tables_put(tc, h);
	return bad;
}

static void test_tables_lookup_newest_wins(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_int_equal(v->n[0], 4);
	assert_int_equal(v->tables[0][0].file_no, 33);
	struct probe *u;
	size_t n = universe(&u);
	size_t found = 0, tombs = 0;
	for (size_t i = 0; i < n; i++) {
		char want[128];
		size_t wl;
		int rc = expect_of(&u[i], want, &wl);
		found += rc == 0;
		int tomb;
		tombs += model_source(u[i].kind, u[i].loc, u[i].ref, &tomb) >= 0 && tomb;
		if (check_one(s.tc, v, &u[i], rc))
			fail_msg("key %c/%u/%" PRIu64 ": wrong answer", u[i].kind, u[i].loc,
				 u[i].ref);
	}
	/* Spot checks of the rules themselves, spelled out. */
	struct probe p21 = { 'O', 2, 143 }; /* 11 | 143 and 13 | 143: 32 beats 31 and 11 */
	char want[128];
	size_t wl;
	assert_int_equal(expect_of(&p21, want, &wl), 0);
	assert_memory_equal(want, "t32/", 4);
	struct probe tomb3 = { 'O', 3, 20 }; /* tombstone in 21 hides 12's value */
	assert_int_equal(expect_of(&tomb3, want, &wl), SL_ENOTFOUND);
	assert_int_equal(check_one(s.tc, v, &tomb3, SL_ENOTFOUND), 0);
	struct probe tomb4 = { 'O', 4, 22 }; /* the only entry is a tombstone */
	assert_int_equal(check_one(s.tc, v, &tomb4, SL_ENOTFOUND), 0);
	assert_true(found > 3 * nrefs);
	assert_true(tombs > nrefs / 10);
	/* A bad key length is refused before any table is read. */
	const void *val;
	size_t vl;
	uint32_t fl;
	struct sl_sst *h = (struct sl_sst *)1;
	uint8_t big[SL_SST_MAX_KEY + 1] = { 'O' };
	assert_int_equal(sl__tables_lookup(s.tc, v, big, sizeof(big), 0, &val, &vl, &fl, &h),
			 -EINVAL);
	assert_null(h);
	free(u);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

static void test_tables_lookup_batch_matches_single(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_version *v = sl__manifest_acquire(s.m);
	struct probe *u;
	size_t n = universe(&u);
	srand(7);
	const size_t sizes[] = { 1, 5, SL_TABLES_BATCH, SL_TABLES_BATCH + 1, 300 };
	uint8_t kb[300][SL_KEY_MAX_LEN];
	const uint8_t *keys[300];
	size_t klens[300];
	uint64_t hashes[300];
	struct sl_tables_result res[300];
	size_t hits = 0, total = 0;
	for (int round = 0; round < 40; round++) {
		size_t m = sizes[round % 5];
		for (size_t i = 0; i < m; i++) {
			/* Duplicates on purpose: two results may hold the same table. */
			const struct probe *p = &u[(size_t)rand() % n];
			if (i && rand() % 8 == 0) {
				memcpy(kb[i], kb[i - 1], SL_KEY_MAX_LEN);
				klens[i] = klens[i - 1];
			} else {
				klens[i] = mkkey(p->kind, p->loc, p->ref, kb[i]);
			}
			keys[i] = kb[i];
			hashes[i] = sl__bloom_hash(kb[i], klens[i]);
		}
		assert_int_equal(sl__tables_lookup_batch(s.tc, v, m, keys, klens, hashes, res), 0);
		for (size_t i = 0; i < m; i++) {
			const void *val;
			size_t vl;
			uint32_t fl;
			struct sl_sst *h;
			int r = sl__tables_lookup(s.tc, v, keys[i], klens[i], hashes[i], &val, &vl,
						  &fl, &h);
			assert_int_equal(res[i].rc, r);
			if (r == 0) {
				assert_int_equal(res[i].vlen, vl);
				assert_memory_equal(res[i].val, val, vl);
				assert_ptr_equal(res[i].holder, h);
				assert_int_equal(res[i].flags, fl);
				hits++;
			} else {
				assert_null(res[i].holder);
				assert_null(res[i].val);
			}
			sl__tables_put(s.tc, h);
			sl__tables_put(s.tc, res[i].holder);
			total++;
		}
	}
	assert_true(hits > total / 10);
	assert_true(hits < total);
	/* A bad key anywhere refuses the whole batch. */
	klens[2] = 0;
	assert_int_equal(sl__tables_lookup_batch(s.tc, v, 5, keys, klens, hashes, res), -EINVAL);
	free(u);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

/* ---- Events --------------------------------------------------------------------------------- */

/* Replay from from_seq and expect exactly [want_first, 4000], then SL_EEND (and again). */
static void replay_expect(struct store *s, const struct sl_version *v, uint64_t from_seq,
			  uint64_t want_first)
{
	struct sl_tables_events *c;
	assert_int_equal(sl__tables_events_open(s->tc, v, from_seq, &c), 0);
	uint64_t want = want_first, seq, rx;
	uint32_t kind;
	const uint8_t *p;
	size_t pl;
	int r;
	while ((r = sl__tables_events_next(c, &seq, &kind, &rx, &p, &pl)) == 0) {
		assert_int_equal(seq, want);
		uint8_t wp[64];
		uint32_t wk;
		size_t wl = event_payload(seq, &wk, wp);
		assert_int_equal(kind, wk);
		assert_int_equal(rx, seq * 10);
		assert_int_equal(pl, wl);
		assert_memory_equal(p, wp, wl);
		want++;
	}
	assert_int_equal(r, SL_EEND);
	assert_int_equal(want, want_first <= 4000 ? 4001 : want_first);
	assert_int_equal(sl__tables_events_next(c, &seq, &kind, &rx, &p, &pl), SL_EEND);
	sl__tables_events_close(c);
}

static void test_tables_events_replay_ranges(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_int_equal(v->n[SL_EVENT_LEVEL], 3);
	replay_expect(&s, v, 1, 1);
	replay_expect(&s, v, 0, 1);
	replay_expect(&s, v, 1500, 1500);
	replay_expect(&s, v, 1000, 1000);
	replay_expect(&s, v, 1001, 1001);
	replay_expect(&s, v, 4000, 4000);
	replay_expect(&s, v, 5000, 5000); /* SL_EEND at once */
	sl__manifest_release(s.m, v);
	store_free(&s);
}

static void test_tables_events_open_holds_tables(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_version *v = sl__manifest_acquire(s.m);
	struct sl_tables_events *c;
	assert_int_equal(sl__tables_events_open(s.tc, v, 900, &c), 0);
	/* Retention drops the later tables meanwhile: new version, forgotten, files gone. */
	uint64_t del[2] = { 41, 42 };
	struct sl_manifest_edit e = { .del = del, .n_del = 2 };
	assert_int_equal(sl__manifest_apply(s.m, &e), 0);
	sl__manifest_release(s.m, v);
	for (int i = 0; i < 2; i++) {
		char path[128];
		table_path(s.dir, del[i], path, sizeof(path));
		sl__tables_forget(s.tc, del[i]);
		assert_int_equal(unlink(path), 0);
	}
	size_t open;
	sl__tables_stats(s.tc, &open, NULL);
	assert_int_equal(open, 3);
	uint64_t seq, rx, want = 900;
	uint32_t kind;
	const uint8_t *p;
	size_t pl;
	int r;
	while ((r = sl__tables_events_next(c, &seq, &kind, &rx, &p, &pl)) == 0)
		assert_int_equal(seq, want++);
	assert_int_equal(r, SL_EEND);
	assert_int_equal(want, 4001);
	sl__tables_events_close(c);
	/* The forgotten tables closed with the cursor's last handles. */
	sl__tables_stats(s.tc, &open, NULL);
	assert_int_equal(open, 1);
	store_free(&s);
}

static void test_tables_events_open_missing_table(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_version *v = sl__manifest_acquire(s.m);
	char path[128];
	table_path(s.dir, 42, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	struct sl_tables_events *c = (struct sl_tables_events *)1;
	assert_int_equal(sl__tables_events_open(s.tc, v, 1, &c), -ENOENT);
	assert_null(c);
	size_t open;
	uint64_t handles;
	sl__tables_stats(s.tc, &open, &handles);
	assert_int_equal(handles, 0);
	assert_int_equal(open, 2); /* 40 and 41, idle */
	sl__manifest_release(s.m, v);
	store_free(&s);
}

/* ---- Damage --------------------------------------------------------------------------------- */

struct damages {
	int n;
	struct sl_tables_damage d[8];
};

static int collect(void *arg, const struct sl_tables_damage *d)
{
	struct damages *ds = arg;
	if (ds->n < 8)
		ds->d[ds->n] = *d;
	ds->n++;
	return 0;
}

static void test_tables_lookup_corrupt_block(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	char path[128];
	table_path(s.dir, 11, path, sizeof(path));
	sl_test_flip_bit(path, 5, 3); /* inside table 11's first data block */
	struct sl_version *v = sl__manifest_acquire(s.m);
	/* Keys answered by 11 (locate 2, not shadowed) are SL_ECORRUPT up to the end of its
	 * first block and right after it; every other key is right. */
	uint64_t corrupt = 0, last_corrupt = 0, first_fine = UINT64_MAX;
	for (uint64_t ref = 0; ref <= nrefs + 3; ref++) {
		for (uint16_t loc = 0; loc <= 5; loc++) {
			struct probe p = { 'O', loc, ref };
			int tomb;
			int src = model_source('O', loc, ref, &tomb);
			char want[128];
			size_t wl;
			int rc = expect_of(&p, want, &wl);
			if (src >= 0 && defs[src].no == 11) {
				if (check_one(s.tc, v, &p, SL_ECORRUPT) == 0) {
					corrupt++;
					last_corrupt = ref;
					continue;
				}
				if (first_fine == UINT64_MAX)
					first_fine = ref;
			}
			if (check_one(s.tc, v, &p, rc))
				fail_msg("key O/%u/%" PRIu64 ": wrong answer", loc, ref);
		}
	}
	assert_true(corrupt > 0);
	assert_true(last_corrupt < first_fine);
	struct damages ds = { 0 };
	struct sl_tables_damage first;
	assert_int_equal(sl__tables_verify(s.tc, v, collect, &ds, &first), SL_ECORRUPT);
	assert_int_equal(ds.n, 1);
	assert_int_equal(first.file_no, 11);
	assert_int_equal(first.level, 2);
	assert_string_equal(first.path, path);
	assert_int_equal(first.off, 0);
	assert_int_equal(first.err, SL_ECORRUPT);
	assert_string_equal(first.what, "data block checksum mismatch");
	assert_string_equal(ds.d[0].path, path);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

static void test_tables_verify_missing_file(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_version *v = sl__manifest_acquire(s.m);
	struct sl_tables_damage first;
	assert_int_equal(sl__tables_verify(s.tc, v, NULL, NULL, &first), 0);
	char path[128];
	table_path(s.dir, 12, path, sizeof(path));
	sl__tables_forget(s.tc, 12);
	assert_int_equal(unlink(path), 0);
	struct damages ds = { 0 };
	assert_int_equal(sl__tables_verify(s.tc, v, collect, &ds, &first), -ENOENT);
	assert_int_equal(ds.n, 1);
	assert_int_equal(first.file_no, 12);
	assert_string_equal(first.path, path);
	assert_int_equal(first.err, -ENOENT);
	assert_string_equal(first.what, "table file missing");
	/* Keys that reach table 12 get its error; every other key is right. */
	struct probe *u;
	size_t n = universe(&u), missing = 0;
	for (size_t i = 0; i < n; i++) {
		int tomb;
		int src = model_source(u[i].kind, u[i].loc, u[i].ref, &tomb);
		char want[128];
		size_t wl;
		int rc = src >= 0 && defs[src].no == 12 ? -ENOENT : expect_of(&u[i], want, &wl);
		missing += rc == -ENOENT;
		if (check_one(s.tc, v, &u[i], rc))
			fail_msg("key %c/%u/%" PRIu64 ": wrong answer", u[i].kind, u[i].loc,
				 u[i].ref);
	}
	assert_true(missing > nrefs / 2);
	free(u);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

static void test_tables_verify_manifest_mismatch(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	/* Re-record table 20 with a wrong entry count and table 41 with a wrong range. */
	struct sl_version *v = sl__manifest_acquire(s.m);
	struct sl_table_info t[2] = { v->tables[1][0], v->tables[SL_EVENT_LEVEL][1] };
	sl__manifest_release(s.m, v);
	assert_int_equal(t[0].file_no, 20);
	assert_int_equal(t[1].file_no, 41);
	t[0].entries++;
	t[1].max_seq++;
	uint64_t del[2] = { 20, 41 };
	struct sl_manifest_edit e = { .add = t, .n_add = 2, .del = del, .n_del = 2 };
	assert_int_equal(sl__manifest_apply(s.m, &e), 0);
	v = sl__manifest_acquire(s.m);
	struct damages ds = { 0 };
	struct sl_tables_damage first;
	assert_int_equal(sl__tables_verify(s.tc, v, collect, &ds, &first), SL_ECORRUPT);
	assert_int_equal(ds.n, 2);
	assert_int_equal(ds.d[0].file_no, 20);
	assert_string_equal(ds.d[0].what, "entry count differs from the manifest");
	assert_int_equal(ds.d[0].off, t[0].file_bytes - 64);
	assert_int_equal(ds.d[1].file_no, 41);
	assert_string_equal(ds.d[1].what, "sequence range in the footer differs from the manifest");
	assert_int_equal(first.file_no, 20);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

static int stop_at_first(void *arg, const struct sl_tables_damage *d)
{
	(void)arg;
	(void)d;
	return 42;
}

static void test_tables_verify_callback_stops(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	char path[128];
	table_path(s.dir, 30, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	table_path(s.dir, 13, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_int_equal(sl__tables_verify(s.tc, v, stop_at_first, NULL, NULL), 42);
	struct damages ds = { 0 };
	assert_int_equal(sl__tables_verify(s.tc, v, collect, &ds, NULL), -ENOENT);
	assert_int_equal(ds.n, 2);
	assert_int_equal(ds.d[0].file_no, 30);
	assert_int_equal(ds.d[1].file_no, 13);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

/* ---- Orphans -------------------------------------------------------------------------------- */

static void touch(const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("junk", f);
	fclose(f);
}

static int exists_in(const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return sl_test_file_exists(path);
}

static void test_tables_remove_orphans_leftovers(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	struct sl_table_info ti;
	const struct tdef orphan = { 0x99, 0, 'O', 7, 7, 1, 0 };
	build_state(s.dir, &orphan, &ti);
	touch(s.dir, "00000000000000aa.sst"); /* torn: a flush that died */
	touch(s.dir, "notes.txt");
	touch(s.dir, "0000000000000abc.sst.tmp");
	touch(s.dir, "ABCDEF0000000000.sst");
	touch(s.dir, "00000000000000b.sst");
	/* A cached orphan is closed, not left mapped. */
	struct sl_sst *t;
	assert_int_equal(sl__tables_get(s.tc, 0x99, &t), 0);
	sl__tables_put(s.tc, t);
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_int_equal(sl__tables_remove_orphans(s.tc, v), 2);
	assert_false(exists_in(s.dir, "0000000000000099.sst"));
	assert_false(exists_in(s.dir, "00000000000000aa.sst"));
	assert_true(exists_in(s.dir, "notes.txt"));
	assert_true(exists_in(s.dir, "0000000000000abc.sst.tmp"));
	assert_true(exists_in(s.dir, "ABCDEF0000000000.sst"));
	assert_true(exists_in(s.dir, "00000000000000b.sst"));
	assert_true(exists_in(s.dir, "CURRENT"));
	size_t open;
	sl__tables_stats(s.tc, &open, NULL);
	assert_int_equal(open, 0);
	for (size_t i = 0; i < NDEFS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%016" PRIx64 ".sst", defs[i].no);
		assert_true(exists_in(s.dir, name));
	}
	assert_int_equal(sl__tables_verify(s.tc, v, NULL, NULL, NULL), 0);
	assert_int_equal(sl__tables_remove_orphans(s.tc, v), 0);
	sl__manifest_release(s.m, v);
	store_free(&s);
}

/* ---- The cache ------------------------------------------------------------------------------ */

static void test_tables_get_refcounts_and_closes(void **state)
{
	(void)state;
	struct fault_os *fo = fault_os_new();
	assert_non_null(fo);
	int64_t allocs0 = fault_os_live_allocs(fo);
	struct store s;
	store_new(&s, fault_os_get(fo));
	struct sl_sst *a, *b;
	uint64_t opens = fault_os_calls(fo, FAULT_OPEN);
	assert_int_equal(sl__tables_get(s.tc, 10, &a), 0);
	assert_int_equal(sl__tables_get(s.tc, 10, &b), 0);
	assert_ptr_equal(a, b);
	assert_int_equal(fault_os_calls(fo, FAULT_OPEN), opens + 1);
	assert_int_equal(fault_os_open_fds(fo), 0); /* the mapping keeps the file, not an fd */
	size_t open;
	uint64_t handles;
	sl__tables_stats(s.tc, &open, &handles);
	assert_int_equal(open, 1);
	assert_int_equal(handles, 2);
	sl__tables_put(s.tc, a);
	/* Forgotten while held: closed by the last put. */
	sl__tables_forget(s.tc, 10);
	sl__tables_stats(s.tc, &open, &handles);
	assert_int_equal(open, 1);
	assert_int_equal(handles, 1);
	int64_t allocs_held = fault_os_live_allocs(fo);
	sl__tables_put(s.tc, b);
	sl__tables_stats(s.tc, &open, &handles);
	assert_int_equal(open, 0);
	assert_int_equal(handles, 0);
	assert_true(fault_os_live_allocs(fo) < allocs_held);
	/* Idle tables stay open until forgotten or trimmed. */
	assert_int_equal(sl__tables_get(s.tc, 10, &a), 0);
	assert_int_equal(fault_os_calls(fo, FAULT_OPEN), opens + 2);
	sl__tables_put(s.tc, a);
	assert_int_equal(sl__tables_get(s.tc, 11, &b), 0);
	sl__tables_stats(s.tc, &open, NULL);
	assert_int_equal(open, 2);
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_int_equal(sl__tables_trim(s.tc, v), 0);
	struct sl_version empty;
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(sl__tables_trim(s.tc, &empty), 1); /* 10; 11 is held */
	sl__tables_put(s.tc, b);			    /* trimmed while held: closes now */
	sl__tables_stats(s.tc, &open, NULL);
	assert_int_equal(open, 0);
	/* Out of memory is not remembered; a missing file is, until forgotten. */
	fault_os_fail(fo, FAULT_MALLOC, 1, -ENOMEM, 0);
	assert_int_equal(sl__tables_get(s.tc, 12, &a), -ENOMEM);
	assert_null(a);
	assert_int_equal(sl__tables_get(s.tc, 12, &a), 0);
	sl__tables_put(s.tc, a);
	opens = fault_os_calls(fo, FAULT_OPEN);
	assert_int_equal(sl__tables_get(s.tc, 777, &a), -ENOENT);
	assert_int_equal(sl__tables_get(s.tc, 777, &a), -ENOENT);
	assert_int_equal(fault_os_calls(fo, FAULT_OPEN), opens + 1);
	sl__tables_forget(s.tc, 777);
	assert_int_equal(sl__tables_get(s.tc, 777, &a), -ENOENT);
	assert_int_equal(fault_os_calls(fo, FAULT_OPEN), opens + 2);
	/* Many tables: the map grows and shrinks back without losing any. */
	struct probe *u;
	size_t n = universe(&u);
	for (size_t i = 0; i < n; i += 3) {
		char want[128];
		size_t wl;
		assert_int_equal(check_one(s.tc, v, &u[i], expect_of(&u[i], want, &wl)), 0);
	}
	free(u);
	for (uint64_t no = 1000; no < 1200; no++)
		assert_int_equal(sl__tables_get(s.tc, no, &a), -ENOENT);
	assert_int_equal(sl__tables_trim(s.tc, v), 0);
	for (uint64_t no = 1000; no < 1200; no++)
		assert_int_equal(sl__tables_get(s.tc, no, &a), -ENOENT);
	assert_int_equal(sl__tables_get(s.tc, 13, &a), 0);
	sl__tables_put(s.tc, a);
	sl__manifest_release(s.m, v);
	store_free(&s);
	assert_int_equal(fault_os_live_allocs(fo), allocs0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
}

/* ---- Concurrency ---------------------------------------------------------------------------- */

#define EXTRA_NO      50 /* a level 0 table of stock keys, added and removed by the writer */
#define EXTRA_LOCATES 50

struct race {
	struct store *s;
	struct probe *u;
	size_t n;
	int stop;
	pthread_mutex_t mu;
	uint64_t bad, lookups, with_extra;
	uint64_t rounds; /* reader rounds done so far, for the writer to pace itself by */
};

static int race_stopped(struct race *r)
{
	pthread_mutex_lock(&r->mu);
	int stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	return stop;
}

static void *reader(void *arg)
{
	struct race *r = arg;
	unsigned seed = (unsigned)(uintptr_t)&seed;
	uint64_t bad = 0, n = 0, extra = 0;
	while (!race_stopped(r) || n < 2000) {
		struct sl_version *v = sl__manifest_acquire(r->s->m);
		int has_extra = v->n[0] == 5;
		extra += has_extra;
		for (int i = 0; i < 32; i++, n++) {
			const struct probe *p = &r->u[(size_t)rand_r(&seed) % r->n];
			char want[128];
			size_t wl;
			bad += check_one(r->s->tc, v, p, expect_of(p, want, &wl));
			/* The extra table's keys are there exactly when the version has it. */
			uint8_t k[SL_KEY_MAX_LEN];
			size_t kl = sl__key_stock(k, (uint16_t)(1 + rand_r(&seed) % EXTRA_LOCATES));
			const void *val;
			size_t vl;
			uint32_t fl;
			struct sl_sst *h;
			int rc = sl__tables_lookup(r->s->tc, v, k, kl, sl__bloom_hash(k, kl), &val,
						   &vl, &fl, &h);
			bad += rc != (has_extra ? 0 : SL_ENOTFOUND) ||
			       (rc == 0 && (vl != 3 || memcmp(val, "stk", 3)));
			sl__tables_put(r->s->tc, h);
		}
		sl__manifest_release(r->s->m, v);
		pthread_mutex_lock(&r->mu);
		r->rounds++;
		pthread_mutex_unlock(&r->mu);
	}
	pthread_mutex_lock(&r->mu);
	r->bad += bad;
	r->lookups += n;
	r->with_extra += extra;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void test_tables_lookup_concurrent_versions(void **state)
{
	(void)state;
	struct store s;
	store_new(&s, sl__os_default());
	char path[128];
	table_path(s.dir, EXTRA_NO, path, sizeof(path));
	struct sl_sst_options o = { .no_sync = 1, .user = { 5000, 5001 } };
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(sl__os_default(), acc, path, &o, &w), 0);
	for (uint16_t loc = 1; loc <= EXTRA_LOCATES; loc++) {
		uint8_t k[SL_KEY_MAX_LEN];
		assert_int_equal(sl__sst_writer_add(w, k, sl__key_stock(k, loc), "stk", 3, 0), 0);
	}
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), 0);
	struct sl_table_info extra;
	info_from(&extra, EXTRA_NO, 0, &m);

	struct race r = { .s = &s };
	r.n = universe(&r.u);
	pthread_mutex_init(&r.mu, NULL);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
	int edits = getenv("SL_TEST_QUICK") ? 40 : 100;
	for (int i = 0; i < edits; i++) {
		uint64_t no = EXTRA_NO;
		struct sl_manifest_edit e = { 0 };
		if (i % 2 == 0)
			e.add = &extra, e.n_add = 1;
		else
			e.del = &no, e.n_del = 1;
		assert_int_equal(sl__manifest_apply(s.m, &e), 0);
		/* Versions come and go; the cache drops what the newest one no longer has. */
		struct sl_version *v = sl__manifest_acquire(s.m);
		sl__tables_trim(s.tc, v);
		sl__manifest_release(s.m, v);
		/* Let readers see each version: three more rounds means at least one began after
		 * this edit (each of the two readers has at most one round in flight). */
		pthread_mutex_lock(&r.mu);
		uint64_t until = r.rounds + 3;
		pthread_mutex_unlock(&r.mu);
		for (;;) {
			pthread_mutex_lock(&r.mu);
			int done = r.rounds >= until;
			pthread_mutex_unlock(&r.mu);
			if (done)
				break;
			sched_yield();
		}
	}
	pthread_mutex_lock(&r.mu);
	r.stop = 1;
	pthread_mutex_unlock(&r.mu);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(r.bad, 0);
	assert_true(r.lookups >= 4000);
	assert_true(r.with_extra >= (uint64_t)edits / 2);
	pthread_mutex_destroy(&r.mu);
	free(r.u);
	store_free(&s);
}

static int group_setup(void **state)
{
	(void)state;
	nrefs = getenv("SL_TEST_QUICK") ? 600 : 2000;
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
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_lookup_newest_wins),
		cmocka_unit_test(test_tables_lookup_batch_matches_single),
		cmocka_unit_test(test_tables_events_replay_ranges),
		cmocka_unit_test(test_tables_events_open_holds_tables),
		cmocka_unit_test(test_tables_events_open_missing_table),
		cmocka_unit_test(test_tables_lookup_corrupt_block),
		cmocka_unit_test(test_tables_verify_missing_file),
		cmocka_unit_test(test_tables_verify_manifest_mismatch),
		cmocka_unit_test(test_tables_verify_callback_stops),
		cmocka_unit_test(test_tables_remove_orphans_leftovers),
		cmocka_unit_test(test_tables_get_refcounts_and_closes),
		cmocka_unit_test(test_tables_lookup_concurrent_versions),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
