/* test_manifest.c - unit tests of the manifest: exact versions after edits and reopens (checked
 * against a model the test keeps itself), level order and overlap rules, refused edits that
 * change nothing, checkpoints and file numbers, refcounted versions, rewrites, torn tails and
 * corruption in the middle named by file and offset, damaged CURRENT, I/O and allocation faults
 * and crashes at every step through tests/unit/fault_os.c, and readers racing the writer.
 * Links manifest.o, os.o, accel.o, accel_cpu.o, err.o and fault_os.o only. The on-disk layout
 * is re-derived here from manifest.c's description (an encoder of the test's own), not from its
 * structs, so a layout error cannot hide behind itself. Each test works in its own mkdtemp
 * directory and removes it. SL_TEST_QUICK=1 shrinks the loops.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "fault_os.h"
#include "manifest.h"
#include "os.h"
#include "sluice.h"
#include "testutil.h"

#define FILE_HDR   40
#define REC_HDR	   8
#define EDIT_HDR   24
#define TABLE_HDR  48
#define EMPTY_FILE (FILE_HDR + REC_HDR + EDIT_HDR)
#define MAXT	   512

static struct sl_accel *acc;
static int quick;

static size_t scaled(size_t full, size_t lo)
{
	if (!quick)
		return full;
	return full / 5 > lo ? full / 5 : lo;
}

/* ---- Files -------------------------------------------------------------------------------- */

struct tdir {
	char path[64];
};

static void tdir_new(struct tdir *t)
{
	assert_non_null(sl_test_mkdtemp(t->path, sizeof(t->path), "manifest"));
}

static void tdir_free(struct tdir *t)
{
	assert_int_equal(sl_test_rm_rf(t->path), 0);
}

static void in_dir(const char *dir, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static void mf_file(const char *dir, uint64_t n, char *out, size_t cap)
{
	snprintf(out, cap, "%s/MANIFEST-%016" PRIx64, dir, n);
}

static void spit(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's entries, sorted and joined with spaces ("CURRENT MANIFEST-..."). */
static void dir_listing(const char *dir, char *out, size_t cap)
{
	char *names[64];
	size_t n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		assert_true(n < 64);
		names[n] = strdup(e->d_name);
		assert_non_null(names[n]);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	out[0] = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, cap - l, "%s%s", i ? " " : "", names[i]);
		free(names[i]);
	}
}

static void expect_listing(const char *dir, const char *want)
{
	char got[2048];
	dir_listing(dir, got, sizeof(got));
	assert_string_equal(got, want);
}

/* Every file of a directory, names and bytes, for "nothing changed" checks. */
static uint8_t *dir_snapshot(const char *dir, size_t *n)
{
	char names[2048];
	dir_listing(dir, names, sizeof(names));
	size_t total = strlen(names) + 1;
	uint8_t *all = malloc(total);
	assert_non_null(all);
	memcpy(all, names, total);
	char *save = NULL;
	for (char *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
		char p[256];
		in_dir(dir, name, p, sizeof(p));
		size_t len;
		uint8_t *b = sl_test_slurp(p, &len);
		all = realloc(all, total + len);
		assert_non_null(all);
		memcpy(all + total, b, len);
		total += len;
		free(b);
	}
	*n = total;
	return all;
}

static void expect_unchanged(const char *dir, const uint8_t *before, size_t n)
{
	size_t m;
	uint8_t *now = dir_snapshot(dir, &m);
	assert_int_equal(m, n);
	assert_memory_equal(now, before, n);
	free(now);
}

static void copy_dir(const char *from, const char *to)
{
	DIR *d = opendir(from);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char a[512], b[512];
		in_dir(from, e->d_name, a, sizeof(a));
		in_dir(to, e->d_name, b, sizeof(b));
		size_t n;
		uint8_t *p = sl_test_slurp(a, &n);
		spit(b, p, n);
		free(p);
	}
	closedir(d);
}

/* stderr into a file while a call runs, to check the exact message. */
struct capture {
	int saved;
	char path[64];
};

static void capture_begin(struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/sl_test_manifest_err.XXXXXX");
	int fd = mkstemp(c->path);
	assert_true(fd >= 0);
	fflush(stderr);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

/* What was written to stderr since capture_begin (malloc'ed, NUL-terminated). */
static char *capture_end(struct capture *c)
{
	fflush(stderr);
	assert_int_equal(dup2(c->saved, 2), 2);
	close(c->saved);
	size_t n;
	char *s = (char *)sl_test_slurp(c->path, &n);
	unlink(c->path);
	return s;
}

/* ---- The test's own encoder of the documented format ------------------------------------- */

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void b_put(struct bytes *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void b_u16(struct bytes *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	b_put(b, x, 2);
}

static void b_u32(struct bytes *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	b_put(b, x, 4);
}

static void b_u64(struct bytes *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	b_put(b, x, 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint32_t crc(const void *p, size_t n)
{
	return sl__accel_crc32c(acc, p, n);
}

static void enc_header(struct bytes *b, uint64_t number, uint64_t base_edits)
{
	size_t at = b->n;
	b_put(b, "SLUICEMF", 8);
	b_u32(b, 1);
	b_u32(b, FILE_HDR);
	b_u64(b, number);
	b_u64(b, base_edits);
	b_u32(b, 0);
	b_u32(b, crc(b->p + at, 36));
}

static void enc_table(struct bytes *b, const struct sl_table_info *t)
{
	b_u64(b, t->file_no);
	b_u64(b, t->file_bytes);
	b_u64(b, t->entries);
	b_u64(b, t->min_seq);
	b_u64(b, t->max_seq);
	b_u32(b, t->level);
	b_u16(b, (uint16_t)t->smallest_len);
	b_u16(b, (uint16_t)t->largest_len);
	b_put(b, t->smallest, t->smallest_len);
	b_put(b, t->largest, t->largest_len);
}

/* One record: length, CRC, and the payload of an edit. */
static void enc_record(struct bytes *b, uint64_t ckpt, uint64_t next,
		       const struct sl_table_info *add, size_t n_add, const uint64_t *del,
		       size_t n_del)
{
	struct bytes pl = { 0 };
	b_u64(&pl, ckpt);
	b_u64(&pl, next);
	b_u32(&pl, (uint32_t)n_add);
	b_u32(&pl, (uint32_t)n_del);
	for (size_t i = 0; i < n_add; i++)
		enc_table(&pl, &add[i]);
	for (size_t i = 0; i < n_del; i++)
		b_u64(&pl, del[i]);
	b_u32(b, (uint32_t)pl.n);
	b_u32(b, crc(pl.p, pl.n));
	b_put(b, pl.p, pl.n);
	free(pl.p);
}

static void current_bytes(uint64_t number, char out[43])
{
	snprintf(out, 43, "MANIFEST-%016" PRIx64 "\n", number);
	snprintf(out + 26, 17, "crc32c %08" PRIx32 "\n", crc(out, 26));
}

static void write_current(const char *dir, uint64_t number)
{
	char b[43], p[256];
	current_bytes(number, b);
	in_dir(dir, "CURRENT", p, sizeof(p));
	spit(p, b, 42);
}

/* Offsets of the records of a manifest file's bytes (walking the length fields); returns how
 * many. */
static size_t walk_records(const uint8_t *d, size_t n, uint64_t *offs, size_t cap)
{
	size_t k = 0;
	uint64_t off = FILE_HDR;
	while (off + REC_HDR <= n) {
		uint32_t len = get_u32(d + off);
		if (off + REC_HDR + len > n)
			break;
		assert_true(k < cap);
		offs[k++] = off;
		off += REC_HDR + len;
	}
	return k;
}

/* ---- Tables and the model ----------------------------------------------------------------- */

/* A table with keys "k<lo>" .. "k<hi>" (six digits: they sort as numbers). */
static struct sl_table_info mk(uint64_t no, uint32_t level, unsigned lo, unsigned hi)
{
	struct sl_table_info t;
	memset(&t, 0, sizeof(t));
	t.file_no = no;
	t.level = level;
	t.file_bytes = 4096 + no * 7;
	t.entries = hi - lo + 1;
	t.smallest_len = (uint32_t)snprintf((char *)t.smallest, sizeof(t.smallest), "k%06u", lo);
	t.largest_len = (uint32_t)snprintf((char *)t.largest, sizeof(t.largest), "k%06u", hi);
	t.min_seq = no * 1000;
	t.max_seq = no * 1000 + 999;
	return t;
}

static void set_keys(struct sl_table_info *t, const char *lo, size_t lo_len, const char *hi,
		     size_t hi_len)
{
	memset(t->smallest, 0xee, sizeof(t->smallest)); /* garbage past the length */
	memset(t->largest, 0xee, sizeof(t->largest));
	memcpy(t->smallest, lo, lo_len);
	memcpy(t->largest, hi, hi_len);
	t->smallest_len = (uint32_t)lo_len;
	t->largest_len = (uint32_t)hi_len;
}

/* What the test expects the manifest to hold, kept independently of it. */
struct model {
	struct sl_table_info t[MAXT];
	size_t n;
	uint64_t checkpoint, next, edits;
	uint64_t handed; /* what sl__manifest_new_file_no returns next */
};

static struct model *model_new(void)
{
	struct model *md = calloc(1, sizeof(*md));
	assert_non_null(md);
	md->next = 1;
	md->handed = 1;
	return md;
}

static uint64_t new_no(struct sl_manifest *m, struct model *md)
{
	uint64_t no = sl__manifest_new_file_no(m);
	assert_int_equal(no, md->handed);
	md->handed++;
	return no;
}

static void model_apply(struct model *md, const struct sl_manifest_edit *e)
{
	for (size_t i = 0; i < e->n_del; i++) {
		size_t j = 0;
		while (j < md->n && md->t[j].file_no != e->del[i])
			j++;
		assert_true(j < md->n);
		md->t[j] = md->t[--md->n];
	}
	uint64_t next = md->next > md->handed ? md->next : md->handed;
	for (size_t i = 0; i < e->n_add; i++) {
		assert_true(md->n < MAXT);
		md->t[md->n++] = e->add[i];
		if (e->add[i].file_no >= next)
			next = e->add[i].file_no + 1;
	}
	if (e->checkpoint_seq)
		md->checkpoint = e->checkpoint_seq;
	md->next = next;
	md->handed = next;
	md->edits++;
}

/* After a reopen the counter restarts from what the last edit recorded. */
static void model_reopened(struct model *md)
{
	md->handed = md->next;
}

static int key_cmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c < 0 ? -1 : 1;
	return al < bl ? -1 : al > bl;
}

static int order_cmp(const void *x, const void *y)
{
	const struct sl_table_info *a = x, *b = y;
	if (a->level == 0)
		return a->file_no > b->file_no ? -1 : a->file_no < b->file_no;
	return key_cmp(a->smallest, a->smallest_len, b->smallest, b->smallest_len);
}

static int zero_from(const uint8_t *p, size_t from, size_t n)
{
	for (size_t i = from; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* NULL when v holds exactly the model's set (in the documented order), else what differs. */
static const char *model_diff(const struct sl_version *v, const struct model *md)
{
	static char why[256];
	if (v->checkpoint_seq != md->checkpoint || v->next_file_no != md->next ||
	    v->edits != md->edits) {
		snprintf(why, sizeof(why),
			 "checkpoint %" PRIu64 "/%" PRIu64 " next %" PRIu64 "/%" PRIu64
			 " edits %" PRIu64 "/%" PRIu64,
			 v->checkpoint_seq, md->checkpoint, v->next_file_no, md->next, v->edits,
			 md->edits);
		return why;
	}
	static struct sl_table_info exp[MAXT];
	for (uint32_t l = 0; l < SL_LEVELS; l++) {
		size_t k = 0;
		for (size_t i = 0; i < md->n; i++)
			if (md->t[i].level == l)
				exp[k++] = md->t[i];
		qsort(exp, k, sizeof(exp[0]), order_cmp);
		if (v->n[l] != k) {
			snprintf(why, sizeof(why), "level %u: %zu tables, want %zu", l, v->n[l], k);
			return why;
		}
		for (size_t i = 0; i < k; i++) {
			const struct sl_table_info *a = &v->tables[l][i], *b = &exp[i];
			if (a->file_no != b->file_no || a->level != b->level ||
			    a->file_bytes != b->file_bytes || a->entries != b->entries ||
			    a->min_seq != b->min_seq || a->max_seq != b->max_seq ||
			    a->smallest_len != b->smallest_len ||
			    a->largest_len != b->largest_len ||
			    memcmp(a->smallest, b->smallest, b->smallest_len) ||
			    memcmp(a->largest, b->largest, b->largest_len) ||
			    !zero_from(a->smallest, a->smallest_len, SL_MANIFEST_MAX_KEY) ||
			    !zero_from(a->largest, a->largest_len, SL_MANIFEST_MAX_KEY)) {
				snprintf(why, sizeof(why),
					 "level %u table %zu: %016" PRIx64 ", want %016" PRIx64, l,
					 i, a->file_no, b->file_no);
				return why;
			}
		}
	}
	return NULL;
}

static void expect_model(struct sl_manifest *m, const struct model *md)
{
	struct sl_version *v = sl__manifest_acquire(m);
	const char *d = model_diff(v, md);
	if (d)
		fail_msg("version differs: %s", d);
	sl__manifest_release(m, v);
}

static struct sl_manifest *mopen(const char *dir, const struct sl_os *os, int rdonly)
{
	struct sl_manifest *m = NULL;
	assert_int_equal(sl__manifest_open(os, acc, dir, rdonly, &m), 0);
	assert_non_null(m);
	return m;
}

/* Reopen (writable, read-only) and verify: all three see exactly the model. */
static void reopen_expect(const char *dir, struct model *md)
{
	struct sl_manifest *m = mopen(dir, sl__os_default(), 1);
	expect_model(m, md);
	sl__manifest_close(m);
	m = mopen(dir, sl__os_default(), 0);
	expect_model(m, md);
	assert_int_equal(sl__manifest_file_bytes(m), sl_test_file_size(sl__manifest_path(m)));
	sl__manifest_close(m);
	char path[256] = "x";
	uint64_t off = 1;
	assert_int_equal(sl__manifest_verify(sl__os_default(), acc, dir, path, sizeof(path), &off),
			 0);
	assert_string_equal(path, "");
	assert_int_equal(off, 0);
	model_reopened(md);
}

static int apply(struct sl_manifest *m, const struct sl_table_info *add, size_t n_add,
		 const uint64_t *del, size_t n_del, uint64_t ckpt)
{
	struct sl_manifest_edit e = {
		.add = add, .n_add = n_add, .del = del, .n_del = n_del, .checkpoint_seq = ckpt
	};
	return sl__manifest_apply(m, &e);
}

/* Apply and expect success; the model follows. */
static void apply_ok(struct sl_manifest *m, struct model *md, const struct sl_table_info *add,
		     size_t n_add, const uint64_t *del, size_t n_del, uint64_t ckpt)
{
	struct sl_manifest_edit e = {
		.add = add, .n_add = n_add, .del = del, .n_del = n_del, .checkpoint_seq = ckpt
	};
	assert_int_equal(sl__manifest_apply(m, &e), 0);
	model_apply(md, &e);
	expect_model(m, md);
	assert_int_equal(sl__manifest_file_bytes(m), sl_test_file_size(sl__manifest_path(m)));
}

/* Apply and expect a refusal that changes nothing: same version, same files. */
static void apply_refused(struct sl_manifest *m, const char *dir, const struct model *md,
			  const struct sl_table_info *add, size_t n_add, const uint64_t *del,
			  size_t n_del, uint64_t ckpt)
{
	size_t n;
	uint8_t *before = dir_snapshot(dir, &n);
	struct sl_version *v = sl__manifest_acquire(m);
	uint64_t bytes = sl__manifest_file_bytes(m);
	assert_int_equal(apply(m, add, n_add, del, n_del, ckpt), -EINVAL);
	struct sl_version *w = sl__manifest_acquire(m);
	assert_ptr_equal(v, w);
	assert_int_equal(sl__manifest_file_bytes(m), bytes);
	sl__manifest_release(m, w);
	sl__manifest_release(m, v);
	expect_model(m, md);
	expect_unchanged(dir, before, n);
	free(before);
}

/* A store of several edits at several levels, some tables deleted. */
static void build_store(const char *dir, struct model *md)
{
	struct sl_manifest *m = mopen(dir, sl__os_default(), 0);
	for (unsigned i = 0; i < 6; i++) {
		struct sl_table_info t[2];
		t[0] = mk(new_no(m, md), 0, 0, 1000);
		t[1] = mk(new_no(m, md), 1 + i % 3, 100 * i, 100 * i + 50);
		apply_ok(m, md, t, 2, NULL, 0, 10 * (i + 1));
	}
	uint64_t del[2] = { md->t[0].file_no, md->t[3].file_no };
	apply_ok(m, md, NULL, 0, del, 2, 0);
	sl__manifest_close(m);
	model_reopened(md);
}

/* ---- Open, create, format ----------------------------------------------------------------- */

static void test_manifest_open_creates_empty(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	struct sl_version *v = sl__manifest_acquire(m);
	assert_int_equal(v->refs, 2);
	assert_null(model_diff(v, md));
	for (int l = 0; l < SL_LEVELS; l++) {
		assert_int_equal(v->n[l], 0);
		assert_null(v->tables[l]);
	}
	sl__manifest_release(m, v);
	char p[256];
	mf_file(t.path, 1, p, sizeof(p));
	assert_string_equal(sl__manifest_path(m), p);
	assert_int_equal(sl__manifest_file_bytes(m), EMPTY_FILE);
	sl__manifest_close(m);
	expect_listing(t.path, "CURRENT MANIFEST-0000000000000001");
	/* The bytes, re-derived: CURRENT, then the header and an empty snapshot. */
	char cur[43];
	current_bytes(1, cur);
	size_t n;
	in_dir(t.path, "CURRENT", p, sizeof(p));
	uint8_t *b = sl_test_slurp(p, &n);
	assert_int_equal(n, 42);
	assert_memory_equal(b, cur, 42);
	free(b);
	struct bytes want = { 0 };
	enc_header(&want, 1, 0);
	enc_record(&want, 0, 1, NULL, 0, NULL, 0);
	mf_file(t.path, 1, p, sizeof(p));
	b = sl_test_slurp(p, &n);
	assert_int_equal(n, want.n);
	assert_memory_equal(b, want.p, n);
	free(b);
	free(want.p);
	reopen_expect(t.path, md);
	expect_listing(t.path, "CURRENT MANIFEST-0000000000000001");
	tdir_free(&t);

	/* Read-only on an empty or missing directory: an empty store, nothing created. */
	tdir_new(&t);
	m = mopen(t.path, sl__os_default(), 1);
	expect_model(m, md);
	assert_string_equal(sl__manifest_path(m), "");
	assert_int_equal(sl__manifest_file_bytes(m), 0);
	assert_int_equal(apply(m, NULL, 0, NULL, 0, 1), SL_ERDONLY);
	sl__manifest_close(m);
	expect_listing(t.path, "");
	char missing[128];
	in_dir(t.path, "nope", missing, sizeof(missing));
	m = mopen(missing, sl__os_default(), 1);
	expect_model(m, md);
	sl__manifest_close(m);
	assert_int_equal(sl__manifest_verify(sl__os_default(), acc, missing, NULL, 0, NULL), 0);
	struct sl_manifest *m2 = (struct sl_manifest *)1;
	assert_int_equal(sl__manifest_open(sl__os_default(), acc, missing, 0, &m2), -ENOENT);
	assert_null(m2);
	sl__manifest_close(NULL);
	tdir_free(&t);
	free(md);
}

/* The bytes of a file made by edits equal those of the test's own encoder. */
static void test_manifest_apply_file_format(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	struct sl_table_info a[2] = { mk(new_no(m, md), 2, 5, 9), mk(new_no(m, md), 0, 1, 3) };
	set_keys(&a[1], "", 0, "\xff\x00z", 3); /* empty smallest key, binary largest */
	apply_ok(m, md, a, 2, NULL, 0, 7);
	uint64_t del = a[0].file_no;
	apply_ok(m, md, NULL, 0, &del, 1, 0);
	sl__manifest_close(m);
	struct bytes want = { 0 };
	enc_header(&want, 1, 0);
	enc_record(&want, 0, 1, NULL, 0, NULL, 0);
	enc_record(&want, 7, 3, a, 2, NULL, 0);
	enc_record(&want, 7, 3, NULL, 0, &del, 1);
	char p[256];
	mf_file(t.path, 1, p, sizeof(p));
	size_t n;
	uint8_t *b = sl_test_slurp(p, &n);
	assert_int_equal(n, want.n);
	assert_memory_equal(b, want.p, n);
	/* And spot checks against the description itself. */
	assert_memory_equal(b, "SLUICEMF", 8);
	assert_int_equal(get_u32(b + 8), 1);
	assert_int_equal(get_u64(b + 16), 1);
	uint64_t offs[8];
	assert_int_equal(walk_records(b, n, offs, 8), 3);
	assert_int_equal(get_u32(b + offs[1]), EDIT_HDR + 2 * TABLE_HDR + 7 + 7 + 0 + 3);
	assert_int_equal(get_u64(b + offs[1] + REC_HDR), 7);
	assert_int_equal(get_u64(b + offs[1] + REC_HDR + 8), 3);
	assert_int_equal(get_u32(b + offs[1] + REC_HDR + 16), 2);
	assert_int_equal(get_u32(b + offs[1] + REC_HDR + 20), 0);
	free(b);
	free(want.p);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

/* ---- Edits -------------------------------------------------------------------------------- */

static void test_manifest_apply_all_levels_reopen(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	/* Three tables at every level: disjoint ranges at levels >= 1, overlapping at 0. */
	for (uint32_t l = 0; l < SL_LEVELS; l++) {
		struct sl_table_info a[3];
		for (unsigned i = 0; i < 3; i++) {
			unsigned lo = l == 0 ? 0 : 1000 * (2 - i);
			a[i] = mk(new_no(m, md), l, lo, lo + 500 + l);
		}
		apply_ok(m, md, a, 3, NULL, 0, 100 + l);
	}
	/* Delete one table of every level in one edit. */
	uint64_t del[SL_LEVELS];
	for (uint32_t l = 0; l < SL_LEVELS; l++)
		del[l] = 1 + 3 * l + (l % 3);
	apply_ok(m, md, NULL, 0, del, SL_LEVELS, 200);
	/* A move: the same table deleted from level 1 and added at level 2 in one edit, into
	 * the range 0..999 that level 2 lost above (1000..1502 and 2000..2502 remain there). */
	struct sl_version *v = sl__manifest_acquire(m);
	assert_int_equal(v->n[1], 2);
	assert_int_equal(v->n[2], 2);
	struct sl_table_info mv = v->tables[1][0]; /* k000000..k000501 */
	assert_int_equal(mv.file_no, 6);
	assert_int_equal(v->tables[2][0].file_no, 8);
	sl__manifest_release(m, v);
	mv.level = 2;
	uint64_t mvdel = mv.file_no;
	apply_ok(m, md, &mv, 1, &mvdel, 1, 0);
	/* Adds and a delete in one edit, with a checkpoint. */
	struct sl_table_info a[2] = { mk(new_no(m, md), 6, 9000, 9100),
				      mk(new_no(m, md), 0, 5, 6) };
	uint64_t d2[1] = { 2 };
	apply_ok(m, md, a, 2, d2, 1, 300);
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	/* The reopened manifest takes more edits and numbers go on from the recorded next. */
	m = mopen(t.path, sl__os_default(), 0);
	struct sl_table_info b = mk(new_no(m, md), 3, 50000, 50001);
	apply_ok(m, md, &b, 1, NULL, 0, 0);
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

static void test_manifest_apply_level0_newest_first(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	uint64_t no[5];
	for (int i = 0; i < 5; i++)
		no[i] = new_no(m, md);
	/* Added out of order, overlapping freely: read back highest number first. */
	struct sl_table_info a[3] = { mk(no[2], 0, 0, 10), mk(no[0], 0, 5, 50),
				      mk(no[4], 0, 0, 100) };
	apply_ok(m, md, a, 3, NULL, 0, 0);
	struct sl_table_info b[2] = { mk(no[1], 0, 7, 8), mk(no[3], 0, 0, 0) };
	apply_ok(m, md, b, 2, NULL, 0, 0);
	struct sl_version *v = sl__manifest_acquire(m);
	assert_int_equal(v->n[0], 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(v->tables[0][i].file_no, no[4 - i]);
	sl__manifest_release(m, v);
	uint64_t del = no[3];
	apply_ok(m, md, NULL, 0, &del, 1, 0);
	sl__manifest_close(m);
	m = mopen(t.path, sl__os_default(), 1);
	v = sl__manifest_acquire(m);
	assert_int_equal(v->n[0], 4);
	assert_int_equal(v->tables[0][0].file_no, no[4]);
	assert_int_equal(v->tables[0][1].file_no, no[2]);
	assert_int_equal(v->tables[0][2].file_no, no[1]);
	assert_int_equal(v->tables[0][3].file_no, no[0]);
	sl__manifest_release(m, v);
	sl__manifest_close(m);
	tdir_free(&t);
	free(md);
}

static void test_manifest_apply_overlap_rejected(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	struct sl_table_info base[2] = { mk(new_no(m, md), 1, 10, 20),
					 mk(new_no(m, md), 1, 30, 40) };
	apply_ok(m, md, base, 2, NULL, 0, 0);
	static const unsigned bad[][2] = {
		{ 20, 25 }, /* touches the largest key */
		{ 25, 30 }, /* touches the smallest key */
		{ 15, 16 }, /* inside */
		{ 0, 100 }, /* around both */
		{ 5, 10 },  /* ends on a smallest key */
		{ 10, 12 }, /* the same smallest key */
		{ 40, 40 }, /* one key, the largest */
	};
	uint64_t no = new_no(m, md);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_table_info x = mk(no, 1, bad[i][0], bad[i][1]);
		apply_refused(m, t.path, md, &x, 1, NULL, 0, 0);
	}
	/* Two new tables overlapping each other: neither goes in. */
	struct sl_table_info pair[2] = { mk(no, 3, 0, 10), mk(no + 1, 3, 10, 20) };
	apply_refused(m, t.path, md, pair, 2, NULL, 0, 0);
	/* A move onto a level where it overlaps: the delete is not applied either. */
	struct sl_table_info mv = base[0];
	struct sl_table_info blocker = mk(no, 2, 15, 15);
	apply_ok(m, md, &blocker, 1, NULL, 0, 0);
	mv.level = 2;
	uint64_t mvdel = base[0].file_no;
	apply_refused(m, t.path, md, &mv, 1, &mvdel, 1, 0);
	/* Keys compare by bytes, then length: "ab" < "ab\0" < "abc"; adjacent is fine. */
	struct sl_table_info k[3] = { mk(new_no(m, md), 4, 0, 0), mk(new_no(m, md), 4, 0, 0),
				      mk(new_no(m, md), 4, 0, 0) };
	set_keys(&k[0], "a", 1, "ab", 2);
	set_keys(&k[1], "ab\0", 3, "ab\0\xff", 4);
	set_keys(&k[2], "abc", 3, "b", 1);
	apply_ok(m, md, k, 3, NULL, 0, 0);
	struct sl_table_info k2 = mk(md->handed, 4, 0, 0);
	set_keys(&k2, "ab", 2, "ab", 2);
	apply_refused(m, t.path, md, &k2, 1, NULL, 0, 0);
	set_keys(&k2, "ab\0\xff\x01", 5, "ab\x01", 3); /* between k[1] and k[2]: fits */
	k2.file_no = new_no(m, md);
	apply_ok(m, md, &k2, 1, NULL, 0, 0);
	/* Level 0 takes overlaps; the same range at another level is fine too. */
	struct sl_table_info ok[2] = { mk(new_no(m, md), 0, 10, 40), mk(new_no(m, md), 5, 10, 40) };
	apply_ok(m, md, ok, 2, NULL, 0, 0);
	struct sl_version *v = sl__manifest_acquire(m);
	assert_int_equal(v->n[4], 4);
	assert_int_equal(v->tables[4][0].file_no, k[0].file_no);
	assert_int_equal(v->tables[4][1].file_no, k[1].file_no);
	assert_int_equal(v->tables[4][2].file_no, k2.file_no);
	assert_int_equal(v->tables[4][3].file_no, k[2].file_no);
	sl__manifest_release(m, v);
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

static void test_manifest_apply_invalid_rejected(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	struct sl_table_info a[2] = { mk(new_no(m, md), 0, 1, 2), mk(new_no(m, md), 1, 1, 2) };
	apply_ok(m, md, a, 2, NULL, 0, 50);
	uint64_t no = new_no(m, md);
	struct sl_table_info x = mk(no, 0, 1, 2);
	uint64_t absent = 999, twice[2] = { a[0].file_no, a[0].file_no };
	apply_refused(m, t.path, md, NULL, 0, &absent, 1, 0); /* delete of an absent one */
	apply_refused(m, t.path, md, NULL, 0, twice, 2, 0);   /* deleted twice */
	apply_refused(m, t.path, md, &a[1], 1, NULL, 0, 0);   /* add of a live one */
	struct sl_table_info dup[2] = { x, x };
	apply_refused(m, t.path, md, dup, 2, NULL, 0, 0); /* added twice */
	x.level = SL_LEVELS;
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 0); /* level out of range */
	x = mk(no, 0, 1, 2);
	x.smallest_len = SL_MANIFEST_MAX_KEY + 1;
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 0); /* key too long */
	x = mk(no, 0, 1, 2);
	x.largest_len = SL_MANIFEST_MAX_KEY + 1;
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 0);
	x = mk(no, 0, 5, 2);
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 0); /* smallest above largest */
	x = mk(0, 0, 1, 2);
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 0); /* file number 0 */
	x = mk(UINT64_MAX, 0, 1, 2);
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 0); /* no next number after it */
	x = mk(no, 0, 1, 2);
	apply_refused(m, t.path, md, &x, 1, NULL, 0, 49);   /* checkpoint decreases */
	apply_refused(m, t.path, md, &x, 1, &absent, 1, 0); /* good add, bad delete */
	apply_refused(m, t.path, md, NULL, 1, NULL, 0, 0);  /* n_add without tables */
	apply_refused(m, t.path, md, NULL, 0, NULL, 1, 0);  /* n_del without numbers */
	assert_int_equal(sl__manifest_apply(m, NULL), -EINVAL);
	/* Then a good edit goes through, and a reopen shows exactly the good ones. */
	apply_ok(m, md, &x, 1, &a[0].file_no, 1, 0);
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	m = mopen(t.path, sl__os_default(), 1);
	assert_int_equal(apply(m, NULL, 0, NULL, 0, 0), SL_ERDONLY);
	sl__manifest_close(m);
	tdir_free(&t);
	free(md);
}

static void test_manifest_apply_checkpoint_monotonic(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	apply_ok(m, md, NULL, 0, NULL, 0, 0); /* 0: keep (0) */
	apply_ok(m, md, NULL, 0, NULL, 0, 5);
	apply_ok(m, md, NULL, 0, NULL, 0, 0); /* keeps 5 */
	apply_ok(m, md, NULL, 0, NULL, 0, 5); /* equal is fine */
	apply_refused(m, t.path, md, NULL, 0, NULL, 0, 4);
	apply_ok(m, md, NULL, 0, NULL, 0, UINT64_MAX - 1);
	apply_refused(m, t.path, md, NULL, 0, NULL, 0, 6);
	sl__manifest_close(m);
	assert_int_equal(md->checkpoint, UINT64_MAX - 1);
	assert_int_equal(md->edits, 5);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

struct numbers {
	struct sl_manifest *m;
	uint64_t got[2000];
};

static void *take_numbers(void *arg)
{
	struct numbers *n = arg;
	for (size_t i = 0; i < 2000; i++)
		n->got[i] = sl__manifest_new_file_no(n->m);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_manifest_new_file_no_persists(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	assert_int_equal(new_no(m, md), 1);
	assert_int_equal(new_no(m, md), 2);
	assert_int_equal(new_no(m, md), 3);
	apply_ok(m, md, NULL, 0, NULL, 0, 0); /* records next 4 */
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	m = mopen(t.path, sl__os_default(), 0);
	assert_int_equal(new_no(m, md), 4);
	/* A table numbered past the counter raises it. */
	struct sl_table_info a = mk(100, 2, 1, 1);
	apply_ok(m, md, &a, 1, NULL, 0, 0);
	assert_int_equal(md->next, 101);
	assert_int_equal(new_no(m, md), 101);
	assert_int_equal(new_no(m, md), 102);
	sl__manifest_close(m);
	/* Numbers handed out after the last edit were never recorded: they come again (no
	 * durable edit names them). */
	reopen_expect(t.path, md);
	m = mopen(t.path, sl__os_default(), 0);
	assert_int_equal(new_no(m, md), 101);
	/* Two threads take numbers at once: all distinct, none below the counter. */
	pthread_t th[2];
	struct numbers *n = calloc(2, sizeof(*n));
	assert_non_null(n);
	for (int i = 0; i < 2; i++) {
		n[i].m = m;
		assert_int_equal(pthread_create(&th[i], NULL, take_numbers, &n[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	uint64_t all[4000];
	memcpy(all, n[0].got, sizeof(n[0].got));
	memcpy(all + 2000, n[1].got, sizeof(n[1].got));
	qsort(all, 4000, sizeof(all[0]), cmp_u64);
	for (size_t i = 0; i < 4000; i++)
		assert_int_equal(all[i], 102 + i);
	free(n);
	assert_int_equal(sl__manifest_new_file_no(m), 4102);
	sl__manifest_close(m);
	tdir_free(&t);
	free(md);
}

/* ---- Versions ----------------------------------------------------------------------------- */

static void test_manifest_acquire_survives_edits(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	const struct sl_os *os = fault_os_get(fo);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, os, 0);
	struct sl_table_info a[3] = { mk(new_no(m, md), 0, 1, 9), mk(new_no(m, md), 1, 1, 9),
				      mk(new_no(m, md), 2, 1, 9) };
	apply_ok(m, md, a, 3, NULL, 0, 10);
	struct model *was = malloc(sizeof(*was));
	assert_non_null(was);
	memcpy(was, md, sizeof(*was));
	struct sl_version *v1 = sl__manifest_acquire(m);
	assert_int_equal(v1->refs, 2);
	struct sl_version *v1b = sl__manifest_acquire(m);
	assert_ptr_equal(v1, v1b);
	assert_int_equal(v1->refs, 3);
	sl__manifest_release(m, v1b);
	assert_int_equal(v1->refs, 2);
	/* Later edits replace the version; the held one stays as it was. */
	for (int i = 0; i < 5; i++) {
		struct sl_table_info b =
			mk(new_no(m, md), 3, 100 * (unsigned)i, 100 * (unsigned)i + 1);
		apply_ok(m, md, &b, 1, &a[i % 3].file_no, i < 3, 20 + (uint64_t)i);
	}
	assert_int_equal(v1->refs, 1);
	assert_null(model_diff(v1, was));
	struct sl_version *v2 = sl__manifest_acquire(m);
	assert_true(v2 != v1);
	assert_int_equal(v2->refs, 2);
	sl__manifest_release(m, v1);
	/* A version held past close stays valid and is freed by its last release. */
	sl__manifest_close(m);
	assert_int_equal(v2->refs, 1);
	assert_null(model_diff(v2, md));
	assert_true(fault_os_live_allocs(fo) > 0);
	sl__manifest_release(NULL, v2);
	sl__manifest_release(NULL, NULL);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	free(was);
	tdir_free(&t);
	free(md);
}

/* Readers acquire and release while the writer applies (and rewrites): every version a reader
 * sees is whole and consistent. The writer's edit i sets checkpoint i, adds one level-0 table
 * and keeps at most 8. */
struct reader {
	struct sl_manifest *m;
	int *stop;
	uint64_t seen, last_edits;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
		struct sl_version *v = sl__manifest_acquire(r->m);
		size_t want = v->edits < 8 ? (size_t)v->edits : 8;
		if (__atomic_load_n(&v->refs, __ATOMIC_RELAXED) < 1 ||
		    v->checkpoint_seq != v->edits || v->n[0] != want || v->edits < r->last_edits)
			r->bad = 1;
		for (size_t i = 1; i < v->n[0]; i++)
			if (v->tables[0][i].file_no >= v->tables[0][i - 1].file_no ||
			    v->tables[0][i].level != 0)
				r->bad = 1;
		if (v->n[0] && v->tables[0][0].file_no != v->edits)
			r->bad = 1;
		r->last_edits = v->edits;
		r->seen++;
		sl__manifest_release(r->m, v);
	}
	return NULL;
}

static void test_manifest_acquire_concurrent(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
	sl__manifest_set_rewrite_bytes(m, 2048);
	int stop = 0;
	struct reader rd[2] = { { .m = m, .stop = &stop }, { .m = m, .stop = &stop } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	size_t n = scaled(400, 100);
	for (size_t i = 1; i <= n; i++) {
		struct sl_table_info a = mk(new_no(m, md), 0, 0, 100);
		uint64_t del = i - 8;
		struct sl_manifest_edit e = {
			.add = &a, .n_add = 1, .del = &del, .n_del = i > 8, .checkpoint_seq = i
		};
		assert_int_equal(sl__manifest_apply(m, &e), 0);
		model_apply(md, &e);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_false(rd[i].bad);
		assert_true(rd[i].seen > 0);
	}
	struct sl_version *v = sl__manifest_acquire(m);
	assert_int_equal(v->refs, 2);
	sl__manifest_release(m, v);
	expect_model(m, md);
	assert_true(strcmp(sl__manifest_path(m) + strlen(t.path), "/MANIFEST-0000000000000001"));
	sl__manifest_close(m);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

/* ---- Rewrites ----------------------------------------------------------------------------- */

/* The size of a file holding md's set as its snapshot. */
static uint64_t snapshot_size(const struct model *md)
{
	uint64_t n = FILE_HDR + REC_HDR + EDIT_HDR;
	for (size_t i = 0; i < md->n; i++)
		n += TABLE_HDR + md->t[i].smallest_len + md->t[i].largest_len;
	return n;
}

struct rewrites {
	uint64_t number; /* of the live manifest */
	uint64_t snap;	 /* its snapshot's size */
	uint64_t count;
};

/* Edits that churn a few live tables (the log grows, the live set does not), checking after
 * each the documented rule: a rewrite exactly when the file passed the limit and is at least
 * twice its snapshot, into the next number, the old file gone. */
static void churn(struct sl_manifest *m, struct model *md, const char *dir, size_t n,
		  uint64_t limit, struct rewrites *rw)
{
	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)md->handed;
		struct sl_table_info a = mk(new_no(m, md), 1 + k % 6, 10 * k, 10 * k + 5);
		uint64_t del = md->n >= 10 ? md->t[0].file_no : 0;
		uint64_t grown = sl__manifest_file_bytes(m) + REC_HDR + EDIT_HDR + TABLE_HDR +
				 a.smallest_len + a.largest_len + (del ? 8 : 0);
		apply_ok(m, md, &a, 1, &del, del != 0, md->checkpoint + 1);
		if (grown > limit && grown >= 2 * rw->snap) {
			rw->number++;
			rw->count++;
			rw->snap = snapshot_size(md);
			assert_int_equal(sl__manifest_file_bytes(m), rw->snap);
		} else {
			assert_int_equal(sl__manifest_file_bytes(m), grown);
		}
		char want[256], names[128];
		mf_file(dir, rw->number, want, sizeof(want));
		assert_string_equal(sl__manifest_path(m), want);
		snprintf(names, sizeof(names), "CURRENT MANIFEST-%016" PRIx64, rw->number);
		expect_listing(dir, names);
	}
}

static void test_manifest_apply_rewrites_at_threshold(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	sl__manifest_set_rewrite_bytes(m, 1024);
	struct rewrites rw = { .number = 1, .snap = EMPTY_FILE };
	size_t n = scaled(500, 100);
	churn(m, md, t.path, n, 1024, &rw);
	assert_true(rw.count >= n / 10);
	sl__manifest_close(m);
	assert_int_equal(md->edits, n);
	reopen_expect(t.path, md);
	/* After a reopen (the default limit until set again) it goes on the same way. */
	m = mopen(t.path, sl__os_default(), 0);
	churn(m, md, t.path, 10, 4u << 20, &rw);
	sl__manifest_set_rewrite_bytes(m, 300);
	uint64_t before = rw.count;
	churn(m, md, t.path, 50, 300, &rw);
	assert_true(rw.count > before);
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

/* ---- Torn tails and corruption ------------------------------------------------------------ */

static void test_manifest_open_torn_tail(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	struct model *before = model_new();
	for (unsigned i = 0; i < 4; i++) {
		if (i == 3)
			memcpy(before, md, sizeof(*md));
		struct sl_table_info a[2] = { mk(new_no(m, md), 0, i, i + 9),
					      mk(new_no(m, md), 1 + i, i, i + 9) };
		apply_ok(m, md, a, 2, NULL, 0, i + 1);
	}
	char path[256];
	snprintf(path, sizeof(path), "%s", sl__manifest_path(m));
	sl__manifest_close(m);
	model_reopened(before);
	size_t n;
	uint8_t *orig = sl_test_slurp(path, &n);
	uint64_t offs[16];
	size_t k = walk_records(orig, n, offs, 16);
	assert_int_equal(k, 5);
	uint64_t last = offs[4], len = n - last;
	/* Cut the last record by every length from 1 byte to all of it. */
	for (uint64_t cut = 1; cut <= len; cut++) {
		spit(path, orig, n - cut);
		/* Read-only sees the earlier edits and changes nothing. */
		struct capture q;
		capture_begin(&q);
		m = mopen(t.path, sl__os_default(), 1);
		expect_model(m, before);
		assert_int_equal(sl__manifest_file_bytes(m), n - cut);
		sl__manifest_close(m);
		assert_int_equal(sl_test_file_size(path), n - cut);
		assert_int_equal(sl__manifest_verify(sl__os_default(), acc, t.path, NULL, 0, NULL),
				 0);
		free(capture_end(&q));
		/* Writable: the tail is reported (exactly) and cut off. */
		struct capture c;
		capture_begin(&c);
		m = mopen(t.path, sl__os_default(), 0);
		char *err = capture_end(&c);
		char want[512];
		snprintf(want, sizeof(want),
			 "sluice: manifest: %s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
			 "; truncated\n",
			 path, len - cut, last);
		assert_string_equal(err, cut == len ? "" : want);
		free(err);
		expect_model(m, before);
		assert_int_equal(sl_test_file_size(path), last);
		assert_int_equal(sl__manifest_file_bytes(m), last);
		sl__manifest_close(m);
	}
	/* A whole last record with a bad checksum, or garbage/zeros after the last good one:
	 * dropped just the same. */
	for (int c = 0; c < 3; c++) {
		spit(path, orig, n);
		struct model *want = md;
		if (c == 0) {
			sl_test_flip_bit(path, last + REC_HDR + 10, 3);
			want = before;
		} else {
			uint8_t junk[100];
			memset(junk, c == 1 ? 0 : 0x5a, sizeof(junk));
			int fd = open(path, O_WRONLY | O_APPEND);
			assert_true(fd >= 0);
			assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
			close(fd);
		}
		struct capture q;
		capture_begin(&q);
		m = mopen(t.path, sl__os_default(), 0);
		free(capture_end(&q));
		expect_model(m, want);
		assert_int_equal(sl_test_file_size(path), c == 0 ? last : n);
		sl__manifest_close(m);
	}
	/* After a cut, edits append right after the last good record. */
	spit(path, orig, n - 3);
	memcpy(md, before, sizeof(*md));
	struct capture q;
	capture_begin(&q);
	m = mopen(t.path, sl__os_default(), 0);
	free(capture_end(&q));
	struct sl_table_info a = mk(new_no(m, md), 6, 0, 0);
	apply_ok(m, md, &a, 1, NULL, 0, 0);
	sl__manifest_close(m);
	reopen_expect(t.path, md);
	free(orig);
	free(before);
	tdir_free(&t);
	free(md);
}

/* Open must fail with SL_ECORRUPT naming path and off, on stderr and through verify, and
 * change nothing. */
static void expect_corrupt(const char *dir, const char *path, uint64_t off)
{
	size_t n;
	uint8_t *before = dir_snapshot(dir, &n);
	char want[512];
	snprintf(want, sizeof(want), "sluice: manifest: %s at offset %" PRIu64 ": ", path, off);
	for (int rdonly = 0; rdonly < 2; rdonly++) {
		struct capture c;
		capture_begin(&c);
		struct sl_manifest *m = (struct sl_manifest *)1;
		int r = sl__manifest_open(sl__os_default(), acc, dir, rdonly, &m);
		char *err = capture_end(&c);
		assert_int_equal(r, SL_ECORRUPT);
		assert_null(m);
		if (strncmp(err, want, strlen(want)))
			fail_msg("stderr: \"%s\", want it to start \"%s\"", err, want);
		assert_non_null(strchr(err, '\n'));
		free(err);
	}
	char got[256];
	uint64_t at = 0;
	struct capture c;
	capture_begin(&c);
	int r = sl__manifest_verify(sl__os_default(), acc, dir, got, sizeof(got), &at);
	free(capture_end(&c));
	assert_int_equal(r, SL_ECORRUPT);
	assert_string_equal(got, path);
	assert_int_equal(at, off);
	expect_unchanged(dir, before, n);
	free(before);
}

static void test_manifest_open_corrupt_middle(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	for (unsigned i = 0; i < 6; i++) {
		struct sl_table_info a = mk(new_no(m, md), i % SL_LEVELS, i, i + 3);
		apply_ok(m, md, &a, 1, NULL, 0, 0);
	}
	char path[256];
	snprintf(path, sizeof(path), "%s", sl__manifest_path(m));
	sl__manifest_close(m);
	model_reopened(md);
	size_t n;
	uint8_t *orig = sl_test_slurp(path, &n);
	uint64_t offs[16];
	assert_int_equal(walk_records(orig, n, offs, 16), 7);
	/* A flipped bit anywhere in a record with a good one after it: its length, its CRC, its
	 * edit header, a table, a key. */
	for (size_t r = 1; r <= 5; r++) {
		uint64_t len = get_u32(orig + offs[r]);
		uint64_t at[] = { 0,
				  1,
				  3,
				  4,
				  7,
				  REC_HDR,
				  REC_HDR + 17,
				  REC_HDR + EDIT_HDR + 5,
				  REC_HDR + len - 1 };
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			for (int bit = 0; bit < 8; bit += quick ? 7 : 3) {
				sl_test_flip_bit(path, offs[r] + at[i], bit);
				expect_corrupt(t.path, path, offs[r]);
				sl_test_flip_bit(path, offs[r] + at[i], bit);
			}
		}
	}
	/* The snapshot record and the header are never torn: damage there is corruption even
	 * with nothing after it. */
	spit(path, orig, offs[1]);
	sl_test_flip_bit(path, offs[0] + REC_HDR + 2, 0);
	expect_corrupt(t.path, path, offs[0]);
	spit(path, orig, n);
	sl_test_flip_bit(path, 3, 1);
	expect_corrupt(t.path, path, 0);
	spit(path, orig, n);
	sl_test_flip_bit(path, 37, 1); /* the header's CRC */
	expect_corrupt(t.path, path, 0);
	spit(path, orig, FILE_HDR + 5);
	expect_corrupt(t.path, path, FILE_HDR);
	spit(path, orig, FILE_HDR);
	expect_corrupt(t.path, path, FILE_HDR);
	spit(path, orig, 20);
	expect_corrupt(t.path, path, 0);
	/* Restored, it opens as before. */
	spit(path, orig, n);
	reopen_expect(t.path, md);
	free(orig);
	tdir_free(&t);
	free(md);
}

/* Records with good CRCs that break the rules: corruption at their offset, last or not. */
static void test_manifest_open_invalid_record(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	char path[256];
	mf_file(t.path, 1, path, sizeof(path));
	struct sl_table_info t1 = mk(1, 1, 10, 20), t2 = mk(2, 1, 15, 30);
	struct sl_table_info lvl = mk(3, SL_LEVELS, 1, 2);
	uint64_t d99 = 99, d1 = 1;
	for (int c = 0; c < 9; c++) {
		for (int after = 0; after < 2; after++) {
			struct bytes b = { 0 };
			enc_header(&b, 1, 0);
			enc_record(&b, 0, 1, NULL, 0, NULL, 0);
			enc_record(&b, 10, 5, &t1, 1, NULL, 0);
			uint64_t bad = b.n;
			switch (c) {
			case 0: /* deletes an absent table */
				enc_record(&b, 10, 5, NULL, 0, &d99, 1);
				break;
			case 1: /* adds a live one */
				enc_record(&b, 10, 5, &t1, 1, NULL, 0);
				break;
			case 2: /* overlaps at level 1 */
				enc_record(&b, 10, 5, &t2, 1, NULL, 0);
				break;
			case 3: /* checkpoint decreases */
				enc_record(&b, 9, 5, NULL, 0, NULL, 0);
				break;
			case 4: /* next file number decreases */
				enc_record(&b, 10, 4, NULL, 0, NULL, 0);
				break;
			case 5: /* a table numbered at or past next_file_no */
				t2 = mk(5, 2, 1, 1);
				enc_record(&b, 10, 5, &t2, 1, NULL, 0);
				t2 = mk(2, 1, 15, 30);
				break;
			case 6: /* level out of range */
				enc_record(&b, 10, 5, &lvl, 1, NULL, 0);
				break;
			case 7: /* key longer than the maximum (its bytes are there) */
			{
				struct bytes pl = { 0 };
				b_u64(&pl, 10);
				b_u64(&pl, 5);
				b_u32(&pl, 1);
				b_u32(&pl, 0);
				b_u64(&pl, 3);
				for (int i = 0; i < 4; i++)
					b_u64(&pl, 0);
				b_u32(&pl, 0);
				b_u16(&pl, SL_MANIFEST_MAX_KEY + 1);
				b_u16(&pl, 0);
				for (int i = 0; i <= SL_MANIFEST_MAX_KEY; i++)
					b_put(&pl, "a", 1);
				b_u32(&b, (uint32_t)pl.n);
				b_u32(&b, crc(pl.p, pl.n));
				b_put(&b, pl.p, pl.n);
				free(pl.p);
			} break;
			case 8: /* more bytes than its counts say */
			{
				struct bytes pl = { 0 };
				b_u64(&pl, 10);
				b_u64(&pl, 5);
				b_u32(&pl, 0);
				b_u32(&pl, 1);
				b_u64(&pl, 1);
				b_u64(&pl, 1);
				b_u32(&b, (uint32_t)pl.n);
				b_u32(&b, crc(pl.p, pl.n));
				b_put(&b, pl.p, pl.n);
				free(pl.p);
				break;
			}
			}
			if (after)
				enc_record(&b, 10, 5, NULL, 0, &d1, 1);
			spit(path, b.p, b.n);
			write_current(t.path, 1);
			expect_corrupt(t.path, path, bad);
			free(b.p);
		}
	}
	/* A format version this build does not know: SL_EVERSION, named like corruption. */
	{
		struct bytes b = { 0 };
		enc_header(&b, 1, 0);
		b.p[8] = 2;
		uint32_t c = crc(b.p, 36);
		memcpy(b.p + 36, &c, 4);
		enc_record(&b, 0, 1, NULL, 0, NULL, 0);
		spit(path, b.p, b.n);
		free(b.p);
		char got[256];
		uint64_t at = 1;
		struct capture q;
		capture_begin(&q);
		struct sl_manifest *m = NULL;
		assert_int_equal(sl__manifest_open(sl__os_default(), acc, t.path, 0, &m),
				 SL_EVERSION);
		assert_int_equal(
			sl__manifest_verify(sl__os_default(), acc, t.path, got, sizeof(got), &at),
			SL_EVERSION);
		char *err = capture_end(&q);
		char want[512];
		snprintf(
			want, sizeof(want),
			"sluice: manifest: %s at offset 0: format version 2 (this build reads 1)\n",
			path);
		assert_non_null(strstr(err, want));
		free(err);
		assert_string_equal(got, path);
		assert_int_equal(at, 0);
	}
	/* The same file with the good records only opens. */
	struct bytes b = { 0 };
	enc_header(&b, 1, 4);
	enc_record(&b, 0, 1, NULL, 0, NULL, 0);
	enc_record(&b, 10, 5, &t1, 1, NULL, 0);
	enc_record(&b, 10, 5, NULL, 0, &d1, 1);
	spit(path, b.p, b.n);
	free(b.p);
	struct model *md = model_new();
	md->checkpoint = 10;
	md->next = 5;
	md->edits = 6; /* base_edits 4, then two edits after the snapshot */
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

static void test_manifest_open_bad_current(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	build_store(t.path, md);
	char cur[256], mf[256];
	in_dir(t.path, "CURRENT", cur, sizeof(cur));
	mf_file(t.path, 1, mf, sizeof(mf));
	size_t n;
	uint8_t *good = sl_test_slurp(cur, &n);
	assert_int_equal(n, 42);
	/* Damaged in every way: a CRC digit, the name, uppercase, short, long, empty. */
	static const char *bad[] = {
		NULL, /* the CRC's last digit changed (below) */
		"MANIFEST-0000000000000002\ncrc32c 00000000\n",
		"MANIFEST-000000000000000A\ncrc32c 00000000\n",
		"MANIFEST-0000000000000001\n",
		"MANIFEST-0000000000000001\ncrc32c 00000000\n\n",
		"",
		"hello\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i]) {
			spit(cur, bad[i], strlen(bad[i]));
		} else {
			char b[43];
			memcpy(b, good, 42);
			b[40] = b[40] == '0' ? '1' : '0';
			spit(cur, b, 42);
		}
		expect_corrupt(t.path, cur, 0);
	}
	/* Naming a file that is not there, with a good CRC. */
	write_current(t.path, 9);
	expect_corrupt(t.path, cur, 0);
	/* Naming a file whose header says another number. */
	char mf2[256];
	mf_file(t.path, 2, mf2, sizeof(mf2));
	size_t fn;
	uint8_t *fb = sl_test_slurp(mf, &fn);
	spit(mf2, fb, fn);
	write_current(t.path, 2);
	expect_corrupt(t.path, mf2, 0);
	unlink(mf2);
	/* Missing, with a manifest of edits in the directory. */
	unlink(cur);
	expect_corrupt(t.path, cur, 0);
	/* Put back, all is as before. */
	spit(cur, good, 42);
	reopen_expect(t.path, md);
	free(fb);
	/* A creation that crashed before CURRENT was renamed in (MANIFEST-1 of at most the
	 * empty size, maybe torn, maybe a CURRENT.tmp): a writable open starts over. */
	for (size_t cut = 0; cut <= EMPTY_FILE; cut += quick ? 36 : 6) {
		tdir_free(&t);
		tdir_new(&t);
		struct model *empty = model_new();
		struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
		sl__manifest_close(m);
		in_dir(t.path, "CURRENT", cur, sizeof(cur));
		mf_file(t.path, 1, mf, sizeof(mf));
		uint8_t *e = sl_test_slurp(mf, &fn);
		unlink(cur);
		spit(mf, e, cut);
		free(e);
		if (cut % 12 == 0) {
			char tmp[256];
			in_dir(t.path, "CURRENT.tmp", tmp, sizeof(tmp));
			spit(tmp, "MANIFEST-00", 11);
		}
		m = mopen(t.path, sl__os_default(), 1);
		expect_model(m, empty);
		sl__manifest_close(m);
		m = mopen(t.path, sl__os_default(), 0);
		expect_model(m, empty);
		sl__manifest_close(m);
		expect_listing(t.path, "CURRENT MANIFEST-0000000000000001");
		assert_int_equal(sl_test_file_size(mf), EMPTY_FILE);
		free(empty);
	}
	free(good);
	tdir_free(&t);
	free(md);
}

static void test_manifest_open_removes_leftovers(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	build_store(t.path, md);
	static const char *extra[] = { "CURRENT.tmp",
				       "MANIFEST-0000000000000005",
				       "MANIFEST-0000000000000000",
				       "MANIFEST-0000000000000001.tmp",
				       "MANIFEST-xyz",
				       "0000000000000001.sst" };
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		char p[256];
		in_dir(t.path, extra[i], p, sizeof(p));
		spit(p, "junk", 4);
	}
	const char *all = "0000000000000001.sst CURRENT CURRENT.tmp MANIFEST-0000000000000000 "
			  "MANIFEST-0000000000000001 MANIFEST-0000000000000001.tmp "
			  "MANIFEST-0000000000000005 MANIFEST-xyz";
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 1);
	expect_model(m, md);
	sl__manifest_close(m);
	expect_listing(t.path, all);
	assert_int_equal(sl__manifest_verify(sl__os_default(), acc, t.path, NULL, 0, NULL), 0);
	expect_listing(t.path, all);
	m = mopen(t.path, sl__os_default(), 0);
	expect_model(m, md);
	sl__manifest_close(m);
	/* Only what is the manifest's own goes: names of its exact pattern and CURRENT.tmp. */
	expect_listing(t.path, "0000000000000001.sst CURRENT MANIFEST-0000000000000000 "
			       "MANIFEST-0000000000000001 MANIFEST-0000000000000001.tmp "
			       "MANIFEST-xyz");
	tdir_free(&t);
	free(md);
}

/* ---- I/O faults --------------------------------------------------------------------------- */

/* A failed apply: the error, the same version, the file back at its old length; then the same
 * edit retried goes through. */
static void fail_then_retry(struct sl_manifest *m, struct fault_os *fo, struct model *md, int err)
{
	char path[256];
	snprintf(path, sizeof(path), "%s", sl__manifest_path(m));
	uint64_t bytes = sl__manifest_file_bytes(m);
	struct sl_version *v = sl__manifest_acquire(m);
	uint64_t no = new_no(m, md);
	struct sl_table_info a = mk(no, 2, 7000 + 10 * (unsigned)no, 7001 + 10 * (unsigned)no);
	uint64_t del = md->t[0].file_no;
	assert_int_equal(apply(m, &a, 1, &del, 1, md->checkpoint + 1), err);
	struct sl_version *w = sl__manifest_acquire(m);
	assert_ptr_equal(v, w);
	sl__manifest_release(m, w);
	sl__manifest_release(m, v);
	expect_model(m, md);
	assert_int_equal(sl__manifest_file_bytes(m), bytes);
	assert_int_equal(sl_test_file_size(path), bytes);
	fault_os_reset(fo);
	apply_ok(m, md, &a, 1, &del, 1, md->checkpoint + 1);
}

static void test_manifest_apply_enospc_on_pwrite(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	build_store(t.path, md);
	struct fault_os *fo = fault_os_new();
	struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
	fault_os_fail(fo, FAULT_PWRITE, 1, -ENOSPC, 1);
	fail_then_retry(m, fo, md, -ENOSPC);
	/* A write that lands partly before ENOSPC is cut back too. */
	fault_os_tear(fo, 1, 11, -ENOSPC);
	fail_then_retry(m, fo, md, -ENOSPC);
	sl__manifest_close(m);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

static void test_manifest_apply_eio_on_fdatasync(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	build_store(t.path, md);
	struct fault_os *fo = fault_os_new();
	struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
	/* The record reached the file before its sync failed: it is cut off again. */
	fault_os_fail(fo, FAULT_FDATASYNC, 1, -EIO, 0);
	fail_then_retry(m, fo, md, -EIO);
	/* And again after good edits: the cut goes back exactly to the last of them. */
	apply_ok(m, md, NULL, 0, NULL, 0, md->checkpoint + 1);
	fault_os_fail(fo, FAULT_FDATASYNC, 1, -EIO, 0);
	fail_then_retry(m, fo, md, -EIO);
	sl__manifest_close(m);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	reopen_expect(t.path, md);
	tdir_free(&t);
	free(md);
}

/* The sync fails and so does cutting the record back: no more edits until a reopen, which
 * finds the edit or not, and a sound store either way. */
static void test_manifest_apply_undo_fails(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	build_store(t.path, md);
	struct fault_os *fo = fault_os_new();
	struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
	fault_os_fail(fo, FAULT_FDATASYNC, 1, -EIO, 0);
	fault_os_fail(fo, FAULT_FTRUNCATE, 1, -EIO, 0);
	struct model *pre = malloc(sizeof(*pre));
	assert_non_null(pre);
	memcpy(pre, md, sizeof(*md));
	struct sl_table_info a = mk(new_no(m, md), 4, 1, 2);
	struct capture c;
	capture_begin(&c);
	assert_int_equal(apply(m, &a, 1, NULL, 0, 0), -EIO);
	free(capture_end(&c));
	assert_int_equal(apply(m, &a, 1, NULL, 0, 0), SL_EFAILED);
	expect_model(m, pre);
	sl__manifest_close(m);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	struct sl_manifest_edit e = { .add = &a, .n_add = 1 };
	model_apply(md, &e);
	m = mopen(t.path, sl__os_default(), 0);
	struct sl_version *v = sl__manifest_acquire(m);
	assert_true(!model_diff(v, md) || !model_diff(v, pre));
	sl__manifest_release(m, v);
	sl__manifest_close(m);
	free(pre);
	tdir_free(&t);
	free(md);
}

/* A rewrite that fails is not the edit's failure: the edit is installed, the old file stays
 * live, and the next edit tries again. */
static void test_manifest_apply_rewrite_faults(void **state)
{
	(void)state;
	static const struct {
		enum fault_op op;
		uint64_t nth;
		const char *match;
		int switched; /* CURRENT names the new file when the fault strikes */
	} cases[] = {
		{ FAULT_OPEN, 1, "MANIFEST-0000000000000002", 0 },
		{ FAULT_PWRITE, 1, "MANIFEST-0000000000000002", 0 },
		{ FAULT_FDATASYNC, 1, "MANIFEST-0000000000000002", 0 },
		{ FAULT_SYNC_DIR, 1, NULL, 0 }, /* the new file's name */
		{ FAULT_OPEN, 1, "CURRENT.tmp", 0 },
		{ FAULT_PWRITE, 1, "CURRENT.tmp", 0 },
		{ FAULT_FSYNC, 1, "CURRENT.tmp", 0 },
		{ FAULT_CLOSE, 1, "CURRENT.tmp", 0 },
		{ FAULT_RENAME, 1, "CURRENT.tmp", 0 },
		{ FAULT_SYNC_DIR, 2, NULL, 1 }, /* the rename */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int sticky = 0; sticky < 2; sticky++) {
			struct tdir t;
			tdir_new(&t);
			struct model *md = model_new();
			build_store(t.path, md);
			struct fault_os *fo = fault_os_new();
			struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
			sl__manifest_set_rewrite_bytes(m, 0);
			char p1[256], p2[256], tmp[256];
			mf_file(t.path, 1, p1, sizeof(p1));
			mf_file(t.path, 2, p2, sizeof(p2));
			in_dir(t.path, "CURRENT.tmp", tmp, sizeof(tmp));
			/* Only the rewrite's calls match (sync_dir: the directory's path). */
			fault_os_match(fo, cases[i].match ? cases[i].match : t.path);
			fault_os_fail(fo, cases[i].op, cases[i].nth, -EIO, sticky);
			struct sl_table_info a = mk(new_no(m, md), 5, 1, 2);
			struct capture c;
			capture_begin(&c);
			int r = apply(m, &a, 1, NULL, 0, 0);
			char *err = capture_end(&c);
			assert_int_equal(r, 0);
			assert_non_null(strstr(err, "sluice: manifest: rewriting "));
			free(err);
			struct sl_manifest_edit e = { .add = &a, .n_add = 1 };
			model_apply(md, &e);
			expect_model(m, md);
			assert_false(sl_test_file_exists(tmp));
			if (cases[i].switched) {
				/* The old file stays until a directory sync succeeds, and no
				 * edit goes to the new one before that. */
				assert_string_equal(sl__manifest_path(m), p2);
				assert_true(sl_test_file_exists(p1));
				if (sticky) {
					uint64_t bytes = sl_test_file_size(p2);
					struct sl_table_info b = mk(new_no(m, md), 5, 5, 6);
					assert_int_equal(apply(m, &b, 1, NULL, 0, 0), -EIO);
					assert_int_equal(sl_test_file_size(p2), bytes);
					expect_model(m, md);
				}
			} else {
				assert_string_equal(sl__manifest_path(m), p1);
				assert_false(sl_test_file_exists(p2));
			}
			fault_os_reset(fo);
			struct sl_table_info b = mk(new_no(m, md), 5, 10, 11);
			apply_ok(m, md, &b, 1, NULL, 0, 0);
			/* Rewritten now, or switched for good: the old file is gone. */
			assert_string_equal(sl__manifest_path(m), p2);
			expect_listing(t.path, "CURRENT MANIFEST-0000000000000002");
			sl__manifest_close(m);
			assert_int_equal(fault_os_live_allocs(fo), 0);
			assert_int_equal(fault_os_open_fds(fo), 0);
			fault_os_free(fo);
			reopen_expect(t.path, md);
			tdir_free(&t);
			free(md);
		}
	}
}

/* ---- Crashes ------------------------------------------------------------------------------ */

static const enum fault_op write_ops[] = { FAULT_OPEN,	   FAULT_PWRITE,    FAULT_FDATASYNC,
					   FAULT_FSYNC,	   FAULT_FTRUNCATE, FAULT_RENAME,
					   FAULT_SYNC_DIR, FAULT_UNLINK };
#define N_WRITE_OPS (sizeof(write_ops) / sizeof(write_ops[0]))

/* The edit that crashes: it passes the rewrite limit set below. */
static void crash_edit(struct sl_manifest *m, struct model *md, struct sl_table_info *a,
		       uint64_t *del)
{
	*a = mk(new_no(m, md), 3, 800, 900);
	*del = md->t[1].file_no;
	sl__manifest_set_rewrite_bytes(m, sl__manifest_file_bytes(m));
}

static void test_manifest_apply_crash_at_every_step(void **state)
{
	(void)state;
	struct tdir tmpl;
	tdir_new(&tmpl);
	struct model *base = model_new();
	build_store(tmpl.path, base);
	/* Count the calls an edit with a rewrite makes, op by op. */
	uint64_t calls[N_WRITE_OPS];
	{
		struct tdir t;
		tdir_new(&t);
		copy_dir(tmpl.path, t.path);
		struct model *md = malloc(sizeof(*md));
		assert_non_null(md);
		memcpy(md, base, sizeof(*md));
		struct fault_os *fo = fault_os_new();
		struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
		struct sl_table_info a;
		uint64_t del;
		crash_edit(m, md, &a, &del);
		uint64_t c0[N_WRITE_OPS];
		for (size_t i = 0; i < N_WRITE_OPS; i++)
			c0[i] = fault_os_calls(fo, write_ops[i]);
		apply_ok(m, md, &a, 1, &del, 1, 1000);
		for (size_t i = 0; i < N_WRITE_OPS; i++)
			calls[i] = fault_os_calls(fo, write_ops[i]) - c0[i];
		char want[256];
		mf_file(t.path, 2, want, sizeof(want));
		assert_string_equal(sl__manifest_path(m), want);
		sl__manifest_close(m);
		fault_os_free(fo);
		free(md);
		tdir_free(&t);
	}
	/* Every one of them, crashed at in turn (and tears of the edit's own write). */
	size_t steps = 0;
	for (size_t i = 0; i < N_WRITE_OPS + 1; i++) {
		uint64_t count = i < N_WRITE_OPS ? calls[i] : 5;
		for (uint64_t nth = 1; nth <= count; nth++) {
			struct tdir t;
			tdir_new(&t);
			copy_dir(tmpl.path, t.path);
			struct model *pre = malloc(sizeof(*pre)), *post = malloc(sizeof(*post));
			assert_non_null(pre);
			assert_non_null(post);
			memcpy(post, base, sizeof(*post));
			struct fault_os *fo = fault_os_new();
			struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
			struct sl_table_info a;
			uint64_t del;
			crash_edit(m, post, &a, &del);
			memcpy(pre, post, sizeof(*pre));
			struct sl_manifest_edit e = { .add = &a,
						      .n_add = 1,
						      .del = &del,
						      .n_del = 1,
						      .checkpoint_seq = 1000 };
			model_apply(post, &e);
			static const size_t keep[] = { 0, 1, 8, 20, 60 };
			if (i < N_WRITE_OPS)
				fault_os_crash_at(fo, write_ops[i], nth);
			else
				fault_os_tear(fo, 1, keep[nth - 1], 0);
			/* The dead process believes everything went well. */
			assert_int_equal(sl__manifest_apply(m, &e), 0);
			assert_true(fault_os_crashed(fo));
			sl__manifest_close(m);
			assert_int_equal(fault_os_live_allocs(fo), 0);
			assert_int_equal(fault_os_open_fds(fo), 0);
			fault_os_free(fo);
			/* Recovery: the old manifest or the new one, whole. */
			struct capture c;
			capture_begin(&c);
			m = mopen(t.path, sl__os_default(), 0);
			free(capture_end(&c));
			struct sl_version *v = sl__manifest_acquire(m);
			const char *dpre = model_diff(v, pre),
				   *dpost = dpre ? model_diff(v, post) : NULL;
			if (dpre && dpost)
				fail_msg("crash at op %zu call %" PRIu64 ": neither: %s", i, nth,
					 dpost);
			/* A crash at or inside the edit's own write loses the edit; any later
			 * one keeps it (the twin loses no written data, as after a process
			 * crash): old manifest or new, it is the post-edit version. */
			if ((i == 1 && nth == 1) || i == N_WRITE_OPS)
				assert_null(dpre);
			else
				assert_null(model_diff(v, post));
			sl__manifest_release(m, v);
			char names[128];
			snprintf(names, sizeof(names), "CURRENT %s",
				 strrchr(sl__manifest_path(m), '/') + 1);
			expect_listing(t.path, names);
			/* And it goes on. */
			struct model *md = dpre ? post : pre;
			model_reopened(md);
			struct sl_table_info b = mk(new_no(m, md), 6, 1, 1);
			apply_ok(m, md, &b, 1, NULL, 0, 0);
			sl__manifest_close(m);
			reopen_expect(t.path, md);
			free(pre);
			free(post);
			tdir_free(&t);
			steps++;
		}
	}
	assert_int_equal(calls[0], 2); /* the new manifest, CURRENT.tmp */
	assert_int_equal(calls[1], 3); /* the edit, the new manifest, CURRENT.tmp */
	assert_int_equal(calls[2], 2); /* the edit, the new manifest */
	assert_int_equal(calls[3], 1); /* CURRENT.tmp */
	assert_int_equal(calls[4], 0);
	assert_int_equal(calls[5], 1);
	assert_int_equal(calls[6], 2); /* the new manifest's name, then CURRENT's */
	assert_int_equal(calls[7], 1); /* the old manifest */
	assert_int_equal(steps, 17);
	tdir_free(&tmpl);
	free(base);
}

/* ---- Allocation and open faults ----------------------------------------------------------- */

/* Every allocation of an open failing in turn: -ENOMEM, nothing leaked, no descriptor left,
 * the store unharmed. */
static void alloc_fault_case(const char *dir, enum fault_op op, struct model *md)
{
	for (uint64_t nth = 1;; nth++) {
		struct fault_os *fo = fault_os_new();
		fault_os_fail(fo, op, nth, -ENOMEM, 0);
		struct sl_manifest *m = NULL;
		int r = sl__manifest_open(fault_os_get(fo), acc, dir, 0, &m);
		uint64_t calls = fault_os_calls(fo, op);
		if (r == 0) {
			expect_model(m, md);
			sl__manifest_close(m);
		} else {
			assert_int_equal(r, -ENOMEM);
			assert_null(m);
		}
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
		fault_os_free(fo);
		if (r == 0) {
			assert_true(calls < nth);
			break;
		}
		assert_true(nth < 10000);
	}
	reopen_expect(dir, md);
}

static void test_manifest_open_enomem(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model *md = model_new();
	/* An empty directory (the create path). */
	alloc_fault_case(t.path, FAULT_MALLOC, md);
	tdir_free(&t);
	tdir_new(&t);
	alloc_fault_case(t.path, FAULT_REALLOC, md);
	/* A store with a rewritten manifest, many tables and edits. */
	struct sl_manifest *m = mopen(t.path, sl__os_default(), 0);
	sl__manifest_set_rewrite_bytes(m, 4096);
	for (unsigned i = 0; i < 60; i++) {
		struct sl_table_info a[3] = { mk(new_no(m, md), 0, i, i),
					      mk(new_no(m, md), 1 + i % 6, 10 * i, 10 * i + 1),
					      mk(new_no(m, md), 1 + (i + 3) % 6, 10 * i + 2,
						 10 * i + 3) };
		uint64_t del = md->t[0].file_no;
		apply_ok(m, md, a, 3, &del, i % 2, i);
	}
	char path[256];
	snprintf(path, sizeof(path), "%s", sl__manifest_path(m));
	sl__manifest_close(m);
	model_reopened(md);
	assert_true(strcmp(strrchr(path, '/'), "/MANIFEST-0000000000000001"));
	alloc_fault_case(t.path, FAULT_MALLOC, md);
	alloc_fault_case(t.path, FAULT_REALLOC, md);
	/* Other failures of an open: the error comes back, nothing leaks. */
	static const enum fault_op ops[] = { FAULT_OPEN, FAULT_PREAD, FAULT_FSIZE };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		for (int rdonly = 0; rdonly < 2; rdonly++) {
			struct fault_os *fo = fault_os_new();
			fault_os_fail(fo, ops[i], 1, -EIO, 0);
			struct sl_manifest *x = NULL;
			assert_int_equal(
				sl__manifest_open(fault_os_get(fo), acc, t.path, rdonly, &x), -EIO);
			assert_int_equal(fault_os_live_allocs(fo), 0);
			assert_int_equal(fault_os_open_fds(fo), 0);
			fault_os_free(fo);
		}
	}
	/* A torn tail whose cut fails: the error, and the tail still there for next time. */
	struct fault_os *fo = fault_os_new();
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "torn", 4), 4);
	close(fd);
	uint64_t size = sl_test_file_size(path);
	fault_os_fail(fo, FAULT_FTRUNCATE, 1, -EIO, 0);
	struct sl_manifest *x = NULL;
	struct capture c;
	capture_begin(&c);
	assert_int_equal(sl__manifest_open(fault_os_get(fo), acc, t.path, 0, &x), -EIO);
	free(capture_end(&c));
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	assert_int_equal(sl_test_file_size(path), size);
	capture_begin(&c);
	reopen_expect(t.path, md);
	free(capture_end(&c));
	assert_int_equal(sl_test_file_size(path), size - 4);
	tdir_free(&t);

	/* Creating a store: a failure before CURRENT is in place leaves nothing behind; after,
	 * a store that opens. */
	static const struct {
		enum fault_op op;
		uint64_t nth; /* the first open is CURRENT's (missing): 2 is MANIFEST-1's */
		const char *left;
	} cf[] = {
		{ FAULT_LIST, 1, "" },
		{ FAULT_OPEN, 2, "" },
		{ FAULT_PWRITE, 1, "" },
		{ FAULT_FDATASYNC, 1, "" },
		{ FAULT_SYNC_DIR, 1, "" },
		{ FAULT_OPEN, 3, "" },
		{ FAULT_PWRITE, 2, "" },
		{ FAULT_FSYNC, 1, "" },
		{ FAULT_CLOSE, 1, "" },
		{ FAULT_RENAME, 1, "" },
		{ FAULT_SYNC_DIR, 2, "CURRENT MANIFEST-0000000000000001" },
	};
	for (size_t i = 0; i < sizeof(cf) / sizeof(cf[0]); i++) {
		tdir_new(&t);
		fo = fault_os_new();
		fault_os_fail(fo, cf[i].op, cf[i].nth, -EIO, 0);
		x = NULL;
		assert_int_equal(sl__manifest_open(fault_os_get(fo), acc, t.path, 0, &x), -EIO);
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
		fault_os_free(fo);
		expect_listing(t.path, cf[i].left);
		struct model *empty = model_new();
		reopen_expect(t.path, empty);
		free(empty);
		tdir_free(&t);
	}
	free(md);
}

/* Every allocation of an edit failing in turn: -ENOMEM and nothing changed, or (past the
 * edit's own, in its rewrite) success. */
static void test_manifest_apply_enomem(void **state)
{
	(void)state;
	static const enum fault_op ops[] = { FAULT_MALLOC, FAULT_REALLOC };
	for (size_t o = 0; o < 2; o++) {
		struct tdir t;
		tdir_new(&t);
		struct model *md = model_new();
		build_store(t.path, md);
		struct fault_os *fo = fault_os_new();
		struct sl_manifest *m = mopen(t.path, fault_os_get(fo), 0);
		size_t failed = 0;
		for (uint64_t nth = 1;; nth++) {
			sl__manifest_set_rewrite_bytes(m, sl__manifest_file_bytes(m));
			struct sl_table_info a[2] = { mk(new_no(m, md), 0, 1, 2),
						      mk(md->handed, 4, 10 * (unsigned)nth,
							 10 * (unsigned)nth + 1) };
			md->handed++;
			assert_int_equal(sl__manifest_new_file_no(m), a[1].file_no);
			uint64_t del = md->t[0].file_no;
			size_t n;
			uint8_t *before = dir_snapshot(t.path, &n);
			fault_os_fail(fo, ops[o], nth, -ENOMEM, 0);
			uint64_t c0 = fault_os_calls(fo, ops[o]);
			struct capture c;
			capture_begin(&c);
			int r = apply(m, a, 2, &del, 1, 0);
			free(capture_end(&c));
			uint64_t calls = fault_os_calls(fo, ops[o]) - c0;
			fault_os_reset(fo);
			if (r) {
				assert_int_equal(r, -ENOMEM);
				expect_unchanged(t.path, before, n);
				failed++;
			} else {
				struct sl_manifest_edit e = {
					.add = a, .n_add = 2, .del = &del, .n_del = 1
				};
				model_apply(md, &e);
			}
			free(before);
			expect_model(m, md);
			if (calls < nth)
				break;
		}
		assert_true(failed >= 1);
		sl__manifest_close(m);
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
		fault_os_free(fo);
		reopen_expect(t.path, md);
		tdir_free(&t);
		free(md);
	}
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
	/* A hang (a deadlock in the manifest) fails the run instead of stalling it. */
	alarm(300);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_open_creates_empty),
		cmocka_unit_test(test_manifest_apply_file_format),
		cmocka_unit_test(test_manifest_apply_all_levels_reopen),
		cmocka_unit_test(test_manifest_apply_level0_newest_first),
		cmocka_unit_test(test_manifest_apply_overlap_rejected),
		cmocka_unit_test(test_manifest_apply_invalid_rejected),
		cmocka_unit_test(test_manifest_apply_checkpoint_monotonic),
		cmocka_unit_test(test_manifest_new_file_no_persists),
		cmocka_unit_test(test_manifest_acquire_survives_edits),
		cmocka_unit_test(test_manifest_acquire_concurrent),
		cmocka_unit_test(test_manifest_apply_rewrites_at_threshold),
		cmocka_unit_test(test_manifest_open_torn_tail),
		cmocka_unit_test(test_manifest_open_corrupt_middle),
		cmocka_unit_test(test_manifest_open_invalid_record),
		cmocka_unit_test(test_manifest_open_bad_current),
		cmocka_unit_test(test_manifest_open_removes_leftovers),
		cmocka_unit_test(test_manifest_apply_enospc_on_pwrite),
		cmocka_unit_test(test_manifest_apply_eio_on_fdatasync),
		cmocka_unit_test(test_manifest_apply_undo_fails),
		cmocka_unit_test(test_manifest_apply_rewrite_faults),
		cmocka_unit_test(test_manifest_apply_crash_at_every_step),
		cmocka_unit_test(test_manifest_open_enomem),
		cmocka_unit_test(test_manifest_apply_enomem),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
