/* test_compact.c - unit tests of leveled compaction: picks (level-0 count, level sizes against
 * their targets, round-robin through a level, full), and runs checked entry by entry against a
 * model of every table written (newest version wins; final states and deletions dropped only
 * where nothing older lies below), outputs disjoint and cut near the target size, one manifest
 * edit, inputs listed obsolete; a damaged input block, a full disk while writing an output and
 * a failing manifest edit each leave the store exactly as it was, with no output file behind.
 * Links compact.o, tables.o, sst.o, block.o, bloom.o, manifest.o, keys.o, os.o, accel.o,
 * accel_cpu.o, err.o and fault_os.o only.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "accel.h"
#include "bloom.h"
#include "compact.h"
#include "fault_os.h"
#include "keys.h"
#include "manifest.h"
#include "sluice.h"
#include "sst.h"
#include "tables.h"
#include "testutil.h"

#define NLOC  8
#define NREF  600
#define NKEYS (NLOC * NREF)

static struct sl_accel *acc;

/* ---- The model: per key, every version written, by precedence ------------------------------ */

enum { ABSENT = 0, VALUE, FINAL, DELETED };

struct ver {
	uint64_t table; /* file number of the table that wrote it (its value names it) */
	uint64_t loc;   /* file number of the table holding it now (compactions move it) */
	uint8_t kind;   /* VALUE, FINAL (tombstone with a value), DELETED (tombstone, no value) */
};

struct model {
	/* Newest first: what a lookup sees is the first entry. */
	struct ver v[NKEYS][8];
	size_t n[NKEYS];
};

static struct model *mod;

static size_t key_of(size_t i, uint8_t *k)
{
	return sl__key_order(k, (uint16_t)(i / NREF), i % NREF + 1);
}

static size_t val_of(uint64_t table, size_t i, char *out)
{
	int n = sprintf(out, "t%" PRIu64 "/k%zu/", table, i);
	size_t pad = (i * 7 + table) % 50;
	memset(out + n, 'v', pad);
	return (size_t)n + pad;
}

struct store {
	char dir[64];
	const struct sl_os *os;
	struct fault_os *fo;
	struct sl_manifest *m;
	struct sl_tables *tc;
};

static void store_open(struct store *s)
{
	memset(s, 0, sizeof(*s));
	sl_test_mkdtemp(s->dir, sizeof(s->dir), "compact");
	s->fo = fault_os_new();
	assert_non_null(s->fo);
	s->os = fault_os_get(s->fo);
	assert_int_equal(sl__manifest_open(s->os, acc, s->dir, 0, &s->m), 0);
	assert_int_equal(sl__tables_open(s->os, acc, s->dir, &s->tc), 0);
	memset(mod, 0, sizeof(*mod));
}

static void store_close(struct store *s)
{
	sl__tables_close(s->tc);
	sl__manifest_close(s->m);
	fault_os_free(s->fo);
	sl_test_rm_rf(s->dir);
}

/* Write a table at level holding keys i in [lo, hi) with i % step == phase; every tomb-th of
 * them a tombstone (final when fin, else deleted). Level 0 tables are newer than everything
 * before them; deeper levels must be written deepest first (older). */
static uint64_t put_table(struct store *s, uint32_t level, size_t lo, size_t hi, size_t step,
			  size_t phase, size_t tomb, int fin)
{
	uint64_t no = sl__manifest_new_file_no(s->m);
	char path[128];
	snprintf(path, sizeof(path), "%s/%016" PRIx64 ".sst", s->dir, no);
	struct sl_sst_options o = { .block_bytes = 512, .no_sync = 1, .user = { no, no } };
	struct sl_sst_writer *w;
	assert_int_equal(sl__sst_writer_open(s->os, acc, path, &o, &w), 0);
	for (size_t i = lo; i < hi; i++) {
		if (i % step != phase)
			continue;
		uint8_t k[SL_KEY_MAX_LEN];
		char v[128];
		size_t kl = key_of(i, k), vl = 0;
		int t = tomb && i % tomb == 0;
		uint8_t kind = t ? (fin ? FINAL : DELETED) : VALUE;
		if (kind != DELETED)
			vl = val_of(no, i, v);
		assert_int_equal(sl__sst_writer_add(w, k, kl, v, vl, t ? SL_SST_TOMBSTONE : 0), 0);
		/* Newest first: the tests write deeper (older) levels before shallower ones, so
		 * every table written is newer than every one before it. */
		struct ver *vs = mod->v[i];
		assert_true(mod->n[i] < 8);
		memmove(&vs[1], &vs[0], mod->n[i] * sizeof(*vs));
		vs[0] = (struct ver){ no, no, kind };
		mod->n[i]++;
	}
	struct sl_sst_meta m;
	assert_int_equal(sl__sst_writer_finish(w, &m), 0);
	struct sl_table_info ti;
	memset(&ti, 0, sizeof(ti));
	ti.file_no = no;
	ti.level = level;
	ti.file_bytes = m.file_bytes;
	ti.entries = m.entries;
	memcpy(ti.smallest, m.smallest, m.smallest_len);
	ti.smallest_len = m.smallest_len;
	memcpy(ti.largest, m.largest, m.largest_len);
	ti.largest_len = m.largest_len;
	ti.min_seq = ti.max_seq = no;
	struct sl_manifest_edit e = { .add = &ti, .n_add = 1 };
	assert_int_equal(sl__manifest_apply(s->m, &e), 0);
	return no;
}

/* What a lookup of key i must answer: ABSENT, VALUE or FINAL (with table); DELETED reads as
 * absent. */
static int expect(size_t i, uint64_t *table)
{
	if (!mod->n[i])
		return ABSENT;
	struct ver v = mod->v[i][0];
	*table = v.table;
	return v.kind == DELETED ? ABSENT : v.kind;
}

/* Every key through the current version: exactly the model's answer. */
static void check_all(struct store *s)
{
	struct sl_version *v = sl__manifest_acquire(s->m);
	for (size_t i = 0; i < NKEYS; i++) {
		uint8_t k[SL_KEY_MAX_LEN];
		size_t kl = key_of(i, k);
		const void *val;
		size_t vlen;
		uint32_t flags;
		struct sl_sst *h;
		uint64_t table = 0;
		int want = expect(i, &table);
		int r = sl__tables_lookup(s->tc, v, k, kl, sl__bloom_hash(k, kl), &val, &vlen,
					  &flags, &h);
		if (want == ABSENT) {
			if (r != SL_ENOTFOUND)
				fail_msg("key %zu: want absent, got %d", i, r);
			continue;
		}
		if (r != 0)
			fail_msg("key %zu: want %s from table %" PRIu64 ", got %d", i,
				 want == FINAL ? "final" : "value", table, r);
		char exp[128];
		size_t el = val_of(table, i, exp);
		assert_int_equal(vlen, el);
		assert_memory_equal(val, exp, el);
		assert_int_equal(flags, want == FINAL ? SL_SST_TOMBSTONE : 0);
		sl__tables_put(s->tc, h);
	}
	sl__manifest_release(s->m, v);
}

/* Levels >= 1 sorted and disjoint; every table verifies and agrees with its manifest entry. */
static void check_shape(struct store *s)
{
	struct sl_version *v = sl__manifest_acquire(s->m);
	for (int l = 1; l < SL_LEVELS; l++)
		for (size_t i = 1; i < v->n[l]; i++) {
			const struct sl_table_info *a = &v->tables[l][i - 1], *b = &v->tables[l][i];
			assert_true(memcmp(a->largest, b->smallest, SL_KEY_ORDER_LEN) < 0);
		}
	struct sl_tables_damage d;
	assert_int_equal(sl__tables_verify(s->tc, v, NULL, NULL, &d), 0);
	sl__manifest_release(s->m, v);
}

static size_t count_sst(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strlen(e->d_name) == 20 && !strcmp(e->d_name + 16, ".sst");
	closedir(d);
	return n;
}

static void remove_obsolete(struct store *s, const struct sl_compact_result *res)
{
	for (size_t i = 0; i < res->n_obsolete; i++) {
		char path[128];
		snprintf(path, sizeof(path), "%s/%016" PRIx64 ".sst", s->dir, res->obsolete[i]);
		sl__tables_forget(s->tc, res->obsolete[i]);
		assert_int_equal(remove(path), 0);
	}
}

static struct sl_compactor *new_compactor(struct store *s, uint64_t table_bytes,
					  uint64_t base_bytes)
{
	struct sl_compact_config c = {
		.os = s->os,
		.accel = acc,
		.dir = s->dir,
		.no_sync = 1,
		.l0_trigger = 4,
		.base_bytes = base_bytes,
		.ratio = 10,
		.table_bytes = table_bytes,
		.block_bytes = 512,
	};
	struct sl_compactor *k;
	assert_int_equal(sl__compactor_new(&c, &k), 0);
	return k;
}

/* Pick (full or by score) and run; returns the pick's out level, -1 when nothing was picked. */
static int compact(struct store *s, struct sl_compactor *k, int full,
		   struct sl_compact_result *res, int *dropped)
{
	struct sl_version *v = sl__manifest_acquire(s->m);
	struct sl_compact_pick *p;
	int r = sl__compact_pick(k, v, full, &p);
	assert_true(r >= 0);
	if (r == 0) {
		sl__manifest_release(s->m, v);
		return -1;
	}
	int out = p->out_level;
	*dropped = p->drop_tombstones;
	assert_int_equal(sl__compact_run(k, s->m, s->tc, p, res), 0);
	/* The model: a key whose newest version was in an input moved to the output table
	 * covering it, or, a tombstone with drop_tombstones, is gone. */
	struct sl_version *nv = sl__manifest_acquire(s->m);
	for (size_t i = 0; i < NKEYS; i++) {
		if (!mod->n[i])
			continue;
		int in = 0;
		for (size_t ri = 0; ri < p->n_runs; ri++)
			for (size_t t = 0; t < p->runs[ri].n; t++)
				in |= p->runs[ri].t[t].file_no == mod->v[i][0].loc;
		if (!in)
			continue;
		if (p->drop_tombstones && mod->v[i][0].kind != VALUE) {
			mod->n[i] = 0;
			continue;
		}
		uint8_t key[SL_KEY_MAX_LEN];
		key_of(i, key);
		uint64_t loc = 0;
		for (size_t t = 0; t < nv->n[out]; t++) {
			const struct sl_table_info *ti = &nv->tables[out][t];
			if (memcmp(ti->smallest, key, SL_KEY_ORDER_LEN) <= 0 &&
			    memcmp(key, ti->largest, SL_KEY_ORDER_LEN) <= 0)
				loc = ti->file_no;
		}
		if (!loc)
			fail_msg("key %zu (newest from table %" PRIu64 " kind %d in %" PRIu64
				 ") is in no output table of level %d (%zu tables)", i,
				 mod->v[i][0].table, mod->v[i][0].kind, mod->v[i][0].loc, out,
				 nv->n[out]);
		mod->v[i][0].loc = loc;
	}
	sl__manifest_release(s->m, nv);
	sl__compact_pick_free(p);
	sl__manifest_release(s->m, v);
	remove_obsolete(s, res);
	return out;
}

/* ---- Tests ----------------------------------------------------------------------------------- */

static void test_level0_into_level1_newest_wins(void **state)
{
	(void)state;
	struct store s;
	store_open(&s);
	/* Four overlapping level-0 tables: each newer one rewrites part of the keys. */
	put_table(&s, 0, 0, NKEYS, 1, 0, 0, 0);
	put_table(&s, 0, 0, NKEYS, 2, 0, 6, 1);
	put_table(&s, 0, NKEYS / 4, NKEYS, 3, 1, 5, 0);
	put_table(&s, 0, 0, NKEYS / 2, 5, 2, 4, 1);
	check_all(&s);
	struct sl_compactor *k = new_compactor(&s, 8 << 10, 1 << 30);
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_true(sl__compact_score(k, v, 0) >= 1.0);
	sl__manifest_release(s.m, v);
	struct sl_compact_result res;
	int dropped;
	assert_int_equal(compact(&s, k, 0, &res, &dropped), 1);
	/* Nothing below level 1: final states and deletions go. */
	assert_true(dropped);
	assert_int_equal(res.tables_in, 4);
	assert_int_equal(res.n_obsolete, 4);
	assert_true(res.tables_out > 3); /* cut at ~8 KiB of input */
	assert_int_equal(res.entries_out + res.dropped_older + res.dropped_tombstones,
			 res.entries_in);
	sl__compact_result_free(&res);
	check_all(&s);
	check_shape(&s);
	v = sl__manifest_acquire(s.m);
	assert_int_equal(v->n[0], 0);
	assert_int_equal(count_sst(s.dir), v->n[1]);
	sl__manifest_release(s.m, v);
	/* Below the trigger: nothing more to do. */
	assert_int_equal(compact(&s, k, 0, &res, &dropped), -1);
	sl__compactor_free(k);
	store_close(&s);
}

static void test_tombstones_kept_above_older_data(void **state)
{
	(void)state;
	struct store s;
	store_open(&s);
	/* Old data at level 2, then four level-0 tables with final states over it. */
	put_table(&s, 2, 0, NKEYS, 1, 0, 0, 0);
	for (int t = 0; t < 4; t++)
		put_table(&s, 0, 0, NKEYS, 3, (size_t)t % 3, 2, 1);
	struct sl_compactor *k = new_compactor(&s, 1 << 20, 1 << 30);
	struct sl_compact_result res;
	int dropped;
	assert_int_equal(compact(&s, k, 0, &res, &dropped), 1);
	assert_false(dropped);
	assert_int_equal(res.dropped_tombstones, 0);
	sl__compact_result_free(&res);
	check_all(&s); /* final states still answer, over level 2's older values */
	for (size_t i = 0; i < NKEYS; i++)
		assert_true(mod->n[i] > 0);
	check_shape(&s);
	/* A full compaction merges levels 1 and 2 into 2 and drops them. */
	assert_int_equal(compact(&s, k, 1, &res, &dropped), 2);
	assert_true(dropped);
	assert_true(res.dropped_tombstones > 0);
	sl__compact_result_free(&res);
	check_all(&s);
	check_shape(&s);
	struct sl_version *v = sl__manifest_acquire(s.m);
	assert_int_equal(v->n[0] + v->n[1], 0);
	assert_true(v->n[2] > 0);
	sl__manifest_release(s.m, v);
	sl__compactor_free(k);
	store_close(&s);
}

static void test_level_size_round_robin(void **state)
{
	(void)state;
	struct store s;
	store_open(&s);
	put_table(&s, 3, 0, NKEYS, 1, 0, 0, 0);
	for (int t = 0; t < 4; t++)
		put_table(&s, 0, 0, NKEYS, 2, (size_t)t % 2, 7, t & 1);
	/* Level 3 is within its target (base * 100); level 1 with a tiny target: after level 0 goes down, level 1 is over it and is
	 * compacted into level 2 a table at a time, in key order. */
	struct sl_compactor *k = new_compactor(&s, 4 << 10, 8 << 10);
	struct sl_compact_result res;
	int dropped;
	assert_int_equal(compact(&s, k, 0, &res, &dropped), 1);
	sl__compact_result_free(&res);
	struct sl_version *v = sl__manifest_acquire(s.m);
	size_t n1 = v->n[1];
	assert_true(n1 > 2);
	assert_true(sl__compact_score(k, v, 1) >= 1.0);
	/* The first level-1 compaction takes level 1's first table (the cursor starts at the
	 * beginning), the next one the table after it. */
	uint8_t first_largest[SL_KEY_MAX_LEN];
	memcpy(first_largest, v->tables[1][0].largest, SL_KEY_ORDER_LEN);
	sl__manifest_release(s.m, v);
	int steps = 0, out, into2 = 0;
	while ((out = compact(&s, k, 0, &res, &dropped)) > 0) {
		/* Level 1 into 2 keeps tombstones (level 3 lies below); 2 into 3 drops them:
		 * the level-3 tables it overlaps are inputs, and nothing lies deeper. */
		assert_int_equal(dropped, out == 3);
		assert_true(out == 2 || out == 3);
		if (out == 2 && into2++ == 0) {
			/* Round-robin from the start: the first table of level 1 went. */
			v = sl__manifest_acquire(s.m);
			for (size_t i = 0; i < v->n[1]; i++)
				assert_true(memcmp(v->tables[1][i].smallest, first_largest,
						   SL_KEY_ORDER_LEN) > 0);
			sl__manifest_release(s.m, v);
		}
		sl__compact_result_free(&res);
		check_all(&s);
		steps++;
		assert_true(steps < 200);
	}
	assert_true(into2 >= 2);
	v = sl__manifest_acquire(s.m);
	for (int l = 0; l < SL_STATE_BOTTOM; l++)
		assert_true(sl__compact_score(k, v, l) < 1.0);
	sl__manifest_release(s.m, v);
	check_shape(&s);
	sl__compactor_free(k);
	store_close(&s);
}

static void test_full_compaction_everything_to_bottom(void **state)
{
	(void)state;
	struct store s;
	store_open(&s);
	put_table(&s, 3, 0, NKEYS, 1, 0, 9, 1);
	put_table(&s, 2, 0, NKEYS / 2, 2, 0, 5, 0);
	put_table(&s, 2, NKEYS / 2 + 1, NKEYS, 2, 1, 0, 0);
	put_table(&s, 1, 100, 2000, 3, 0, 4, 1);
	for (int t = 0; t < 3; t++)
		put_table(&s, 0, (size_t)t * 500, NKEYS, 4, (size_t)t, 3, t == 1);
	struct sl_compactor *k = new_compactor(&s, 16 << 10, 1 << 30);
	struct sl_compact_result res;
	int dropped;
	assert_int_equal(compact(&s, k, 1, &res, &dropped), 3);
	assert_true(dropped);
	assert_int_equal(res.tables_in, 7);
	sl__compact_result_free(&res);
	check_all(&s);
	check_shape(&s);
	struct sl_version *v = sl__manifest_acquire(s.m);
	for (int l = 0; l < 3; l++)
		assert_int_equal(v->n[l], 0);
	assert_int_equal(count_sst(s.dir), v->n[3]);
	sl__manifest_release(s.m, v);
	sl__compactor_free(k);
	store_close(&s);
}

/* Run a pick expecting failure; the store must be exactly as before. */
static void expect_failure(struct store *s, struct sl_compactor *k, int want)
{
	size_t files = count_sst(s->dir);
	struct sl_version *v = sl__manifest_acquire(s->m);
	uint64_t edits = v->edits;
	struct sl_compact_pick *p;
	assert_int_equal(sl__compact_pick(k, v, 1, &p), 1);
	struct sl_compact_result res;
	int r = sl__compact_run(k, s->m, s->tc, p, &res);
	assert_int_equal(r, want);
	sl__compact_pick_free(p);
	sl__manifest_release(s->m, v);
	v = sl__manifest_acquire(s->m);
	assert_int_equal(v->edits, edits);
	sl__manifest_release(s->m, v);
	assert_int_equal(count_sst(s->dir), files);
	check_all(s);
}

static void test_failures_leave_the_store_unchanged(void **state)
{
	(void)state;
	struct store s;
	store_open(&s);
	for (int t = 0; t < 4; t++)
		put_table(&s, 0, 0, NKEYS, 2, (size_t)t % 2, 5, t & 1);
	struct sl_compactor *k = new_compactor(&s, 8 << 10, 1 << 30);
	/* A full disk while writing an output table (the third pwrite of the outputs). */
	fault_os_fail(s.fo, FAULT_PWRITE, 3, -ENOSPC, 0);
	expect_failure(&s, k, -ENOSPC);
	/* The manifest edit cannot be made durable. */
	fault_os_fail(s.fo, FAULT_FDATASYNC, 1, -EIO, 1);
	expect_failure(&s, k, -EIO);
	fault_os_fail(s.fo, FAULT_FDATASYNC, UINT64_MAX, 0, 0);
	/* A damaged block in the middle of an input table. */
	struct sl_version *v = sl__manifest_acquire(s.m);
	char path[128];
	snprintf(path, sizeof(path), "%s/%016" PRIx64 ".sst", s.dir, v->tables[0][2].file_no);
	sl__manifest_release(s.m, v);
	sl__tables_close(s.tc);
	sl_test_flip_bit(path, 1500, 3);
	assert_int_equal(sl__tables_open(s.os, acc, s.dir, &s.tc), 0);
	size_t files = count_sst(s.dir);
	v = sl__manifest_acquire(s.m);
	struct sl_compact_pick *p;
	assert_int_equal(sl__compact_pick(k, v, 1, &p), 1);
	struct sl_compact_result res;
	assert_int_equal(sl__compact_run(k, s.m, s.tc, p, &res), SL_ECORRUPT);
	sl__compact_pick_free(p);
	sl__manifest_release(s.m, v);
	assert_int_equal(count_sst(s.dir), files);
	sl__compactor_free(k);
	store_close(&s);
}

static void test_cancel_between_jobs(void **state)
{
	(void)state;
	struct store s;
	store_open(&s);
	for (int t = 0; t < 4; t++)
		put_table(&s, 0, 0, NKEYS, 1, 0, 0, 0);
	int stop = 1;
	struct sl_compact_config c = { .os = s.os, .accel = acc, .dir = s.dir, .no_sync = 1,
				       .table_bytes = 4096, .block_bytes = 512, .stop = &stop };
	struct sl_compactor *k;
	assert_int_equal(sl__compactor_new(&c, &k), 0);
	expect_failure(&s, k, -ECANCELED);
	sl__compactor_free(k);
	store_close(&s);
}

int main(void)
{
	mod = calloc(1, sizeof(*mod));
	assert_non_null(mod);
	assert_int_equal(sl__accel_open(sl_test_accel(), &acc), 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level0_into_level1_newest_wins),
		cmocka_unit_test(test_tombstones_kept_above_older_data),
		cmocka_unit_test(test_level_size_round_robin),
		cmocka_unit_test(test_full_compaction_everything_to_bottom),
		cmocka_unit_test(test_failures_leave_the_store_unchanged),
		cmocka_unit_test(test_cancel_between_jobs),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	sl__accel_close(acc);
	free(mod);
	return r;
}
