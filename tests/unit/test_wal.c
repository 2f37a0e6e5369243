/* test_wal.c - unit tests of the write-ahead log behind the log seam: exact round trips through
 * recovery and cursors, group commit, rotation and truncation, ordering errors, torn tails
 * (made by hand in the files and by a crashing os twin), corruption in the middle named by
 * file and offset, I/O and allocation faults through tests/unit/fault_os.c, read-only opens that
 * change nothing, and a writer racing cursors and waiters. Links wal.o, os.o, accel.o,
 * accel_cpu.o, err.o and fault_os.o only. The on-disk layout is re-derived here from wal.h's
 * description, not from wal.c's structs, so a layout error cannot hide behind itself. Each test
 * works in its own mkdtemp directory and removes it. SL_TEST_QUICK=1 shrinks the sizes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "accel.h"
#include "fault_os.h"
#include "log.h"
#include "os.h"
#include "sluice.h"
#include "testutil.h"
#include "wal.h"

#define SEG_HDR 64
#define REC_HDR 24
#define KIB	1024u
#define MIB	(1024u * 1024u)

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

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Directories and files ---------------------------------------------------------------- */

struct tdir {
	char path[64];
	char wal[80];
};

static void tdir_new(struct tdir *t)
{
	assert_non_null(sl_test_mkdtemp(t->path, sizeof(t->path), "wal"));
	snprintf(t->wal, sizeof(t->wal), "%s/wal", t->path);
}

static void tdir_free(struct tdir *t)
{
	assert_int_equal(sl_test_rm_rf(t->path), 0);
}

static void seg_file(const struct tdir *t, uint64_t index, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016llx.wal", t->wal, (unsigned long long)index);
}

static void write_at(const char *path, uint64_t off, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void flip_bit(const char *path, uint64_t off, int bit)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= (uint8_t)(1u << bit);
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The segment files' indexes, sorted; returns how many (at most cap). Also counts *.tmp. */
static size_t seg_indexes(const struct tdir *t, uint64_t *v, size_t cap, size_t *tmps)
{
	size_t n = 0, nt = 0;
	DIR *d = opendir(t->wal);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned long long x;
		char tail[16] = "";
		if (strstr(e->d_name, ".tmp"))
			nt++;
		else if (strlen(e->d_name) == 20 &&
			 sscanf(e->d_name, "%16llx%15s", &x, tail) == 2 && !strcmp(tail, ".wal") &&
			 n < cap)
			v[n++] = x;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_u64);
	if (tmps)
		*tmps = nt;
	return n;
}

/* Every byte of every file in dir/wal, concatenated with the names, for before/after checks. */
static uint8_t *snapshot(const struct tdir *t, size_t *n)
{
	uint64_t idx[4096];
	size_t tmps, k = seg_indexes(t, idx, 4096, &tmps);
	size_t total = 0;
	uint8_t *all = NULL;
	for (size_t i = 0; i < k; i++) {
		char p[200];
		seg_file(t, idx[i], p, sizeof(p));
		size_t len;
		uint8_t *b = sl_test_slurp(p, &len);
		all = realloc(all, total + len + sizeof(idx[i]) + sizeof(len));
		assert_non_null(all);
		memcpy(all + total, &idx[i], sizeof(idx[i]));
		memcpy(all + total + sizeof(idx[i]), &len, sizeof(len));
		memcpy(all + total + sizeof(idx[i]) + sizeof(len), b, len);
		total += len + sizeof(idx[i]) + sizeof(len);
		free(b);
	}
	/* The number of temporary files too. */
	all = realloc(all, total + sizeof(tmps));
	assert_non_null(all);
	memcpy(all + total, &tmps, sizeof(tmps));
	*n = total + sizeof(tmps);
	return all;
}

/* ---- The model: what the test appended --------------------------------------------------- */

static uint64_t rx_of(uint64_t seq)
{
	return seq * 1000003u ^ 0x5a5a5a5a5aull;
}

static uint32_t type_of(uint64_t seq)
{
	return 1 + (uint32_t)(seq % 3);
}

/* Payload bytes are never zero, so a cut anywhere inside one leaves nonzero bytes. */
static uint8_t byte_of(uint64_t seq, uint32_t i)
{
	return (uint8_t)(1 + (seq * 31 + (uint64_t)i * 7) % 255);
}

struct model {
	uint64_t *seq;
	uint32_t *len;
	size_t n, cap;
};

static void model_push(struct model *m, uint64_t seq, uint32_t len)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 1024;
		m->seq = realloc(m->seq, m->cap * sizeof(*m->seq));
		m->len = realloc(m->len, m->cap * sizeof(*m->len));
		assert_non_null(m->seq);
		assert_non_null(m->len);
	}
	m->seq[m->n] = seq;
	m->len[m->n] = len;
	m->n++;
}

static void model_free(struct model *m)
{
	free(m->seq);
	free(m->len);
	memset(m, 0, sizeof(*m));
}

/* n records with seqs first, first + 1, ...; lengths 0..maxlen from the seed. */
static void model_range(struct model *m, uint64_t first, size_t n, uint32_t maxlen, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		model_push(m, first + i, (uint32_t)(rnd_next(&seed) % (maxlen + 1u)));
}

static uint64_t model_last(const struct model *m)
{
	return m->n ? m->seq[m->n - 1] : 0;
}

/* Index of the first record with seq >= from. */
static size_t model_lower(const struct model *m, uint64_t from)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->seq[mid] < from)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Is rec exactly model record i? msg says how not. */
static int rec_is(const struct model *m, size_t i, const struct sl_log_rec *r, char *msg,
		  size_t cap)
{
	if (i >= m->n) {
		snprintf(msg, cap, "record seq %llu past the model's %zu records",
			 (unsigned long long)r->seq, m->n);
		return 0;
	}
	uint64_t seq = m->seq[i];
	if (r->seq != seq || r->len != m->len[i] || r->type != type_of(seq) ||
	    r->rx_ns != rx_of(seq)) {
		snprintf(msg, cap,
			 "record %zu: seq %llu len %u type %u rx %llu; expected seq %llu len %u", i,
			 (unsigned long long)r->seq, r->len, r->type, (unsigned long long)r->rx_ns,
			 (unsigned long long)seq, m->len[i]);
		return 0;
	}
	const uint8_t *p = r->data;
	for (uint32_t k = 0; k < r->len; k++)
		if (p[k] != byte_of(seq, k)) {
			snprintf(msg, cap, "record seq %llu: payload byte %u differs",
				 (unsigned long long)seq, k);
			return 0;
		}
	return 1;
}

/* Append model records [from, to) in batches of up to batch. Returns the first error. */
static int append_model(struct sl_log *log, const struct model *m, size_t from, size_t to,
			size_t batch)
{
	struct sl_log_rec *recs = malloc(batch * sizeof(*recs));
	assert_non_null(recs);
	int r = 0;
	for (size_t i = from; i < to && !r;) {
		size_t k = to - i < batch ? to - i : batch;
		size_t bytes = 0;
		for (size_t j = 0; j < k; j++)
			bytes += m->len[i + j];
		uint8_t *pool = malloc(bytes + 1);
		assert_non_null(pool);
		size_t at = 0;
		for (size_t j = 0; j < k; j++) {
			uint64_t seq = m->seq[i + j];
			uint32_t len = m->len[i + j];
			for (uint32_t b = 0; b < len; b++)
				pool[at + b] = byte_of(seq, b);
			recs[j] = (struct sl_log_rec){ .seq = seq,
						       .rx_ns = rx_of(seq),
						       .data = pool + at,
						       .len = len,
						       .type = type_of(seq) };
			at += len;
		}
		r = log->ops->append_batch(log->impl, recs, k);
		free(pool);
		i += k;
	}
	free(recs);
	return r;
}

/* The recover callback: every record must be the next one of the model. */
struct checker {
	const struct model *m;
	size_t next;
	int bad;
	char msg[256];
};

static int check_cb(void *arg, const struct sl_log_rec *rec)
{
	struct checker *c = arg;
	if (c->bad)
		return -77777;
	if (!rec_is(c->m, c->next, rec, c->msg, sizeof(c->msg))) {
		c->bad = 1;
		return -77777;
	}
	c->next++;
	return 0;
}

/* ---- Opening ------------------------------------------------------------------------------ */

struct wopt {
	uint64_t seg, buf;
	uint32_t interval_us;
	int rdonly;
};

static const struct wopt small = { .seg = SL_WAL_MIN_SEGMENT, .buf = 1 * MIB };
static const struct wopt medium = { .seg = 1 * MIB, .buf = 2 * MIB };

static int wal_open_with(const struct tdir *t, const struct sl_os *os, const struct wopt *o,
			 struct checker *ck, struct sl_log *log)
{
	struct sl_wal_config c = {
		.dir = t->path,
		.segment_bytes = o->seg,
		.buffer_bytes = o->buf,
		.commit_interval_us = o->interval_us,
		.rdonly = o->rdonly,
	};
	memset(log, 0, sizeof(*log));
	return sl__wal_open(&c, os ? os : sl__os_default(), acc, ck ? check_cb : NULL, ck, log);
}

/* Open with the default os, expecting exactly the first `expect` records of m on recovery. */
static void open_expect(const struct tdir *t, const struct wopt *o, const struct model *m,
			size_t expect, struct sl_log *log)
{
	struct checker ck = { .m = m };
	int r = wal_open_with(t, NULL, o, &ck, log);
	if (ck.bad)
		fail_msg("recovery: %s", ck.msg);
	if (r)
		fail_msg("open %s: %s", t->path, sl_strerror(r));
	assert_int_equal(ck.next, expect);
	struct sl_log_stats st;
	log->ops->get_stats(log->impl, &st);
	assert_int_equal(st.recovered_records, expect);
	assert_int_equal(log->ops->durable_seq(log->impl), expect ? m->seq[expect - 1] : 0);
}

static struct sl_log_stats stats_of(struct sl_log *log)
{
	struct sl_log_stats st;
	memset(&st, 0xff, sizeof(st));
	log->ops->get_stats(log->impl, &st);
	return st;
}

/* Read with a cursor from `from`: exactly model records [lower(from), end), then SL_EEND. */
static void check_cursor(struct sl_log *log, const struct model *m, uint64_t from, size_t end)
{
	struct sl_log_cursor *c = NULL;
	assert_int_equal(log->ops->cursor_open(log->impl, from, &c), 0);
	size_t i = model_lower(m, from ? from : 1);
	struct sl_log_rec rec;
	char msg[256];
	for (; i < end; i++) {
		int r = log->ops->cursor_next(c, &rec);
		if (r)
			fail_msg("cursor from %llu: record %zu: %s", (unsigned long long)from, i,
				 sl_strerror(r));
		if (!rec_is(m, i, &rec, msg, sizeof(msg)))
			fail_msg("cursor from %llu: %s", (unsigned long long)from, msg);
	}
	assert_int_equal(log->ops->cursor_next(c, &rec), SL_EEND);
	assert_int_equal(log->ops->cursor_next(c, &rec), SL_EEND);
	log->ops->cursor_close(c);
}

/* ---- The layout, parsed independently of wal.c --------------------------------------------- */

struct recpos {
	uint64_t seg, off, seq;
	uint32_t len;
};

/* Walk every segment's records (header checked, CRC checked) until zeros; returns the count. */
static size_t parse_log(const struct tdir *t, struct recpos *out, size_t cap, uint64_t seg_bytes)
{
	uint64_t idx[4096];
	size_t nseg = seg_indexes(t, idx, 4096, NULL);
	size_t n = 0;
	for (size_t s = 0; s < nseg; s++) {
		char p[200];
		seg_file(t, idx[s], p, sizeof(p));
		size_t size;
		uint8_t *b = sl_test_slurp(p, &size);
		assert_int_equal(size, seg_bytes);
		assert_memory_equal(b, "SLUICEWL", 8);
		uint32_t u32;
		uint64_t u64;
		memcpy(&u32, b + 8, 4);
		assert_int_equal(u32, 1); /* version */
		memcpy(&u32, b + 12, 4);
		assert_int_equal(u32, SEG_HDR);
		memcpy(&u64, b + 16, 8);
		assert_int_equal(u64, idx[s]);
		memcpy(&u64, b + 24, 8);
		assert_int_equal(u64, seg_bytes);
		memcpy(&u32, b + 60, 4);
		assert_int_equal(u32, sl__accel_crc32c(acc, b, 60));
		uint64_t off = SEG_HDR;
		while (off + REC_HDR <= size) {
			static const uint8_t z[REC_HDR];
			if (!memcmp(b + off, z, REC_HDR))
				break;
			uint16_t len;
			memcpy(&u32, b + off, 4);
			memcpy(&len, b + off + 4, 2);
			assert_true(off + REC_HDR + len <= size);
			assert_int_equal(u32,
					 sl__accel_crc32c(acc, b + off + 4, REC_HDR - 4 + len));
			assert_true(b[off + 6] >= 1 && b[off + 6] <= 3);
			assert_int_equal(b[off + 7], 0);
			assert_true(n < cap);
			out[n].seg = idx[s];
			out[n].off = off;
			memcpy(&out[n].seq, b + off + 8, 8);
			out[n].len = len;
			n++;
			off += REC_HDR + len;
		}
		/* After the last record only zeros. */
		for (; off < size; off++)
			assert_int_equal(b[off], 0);
		free(b);
	}
	return n;
}

/* Where records of m land when written from an empty log in one session: the rotation rule. */
static void check_layout(const struct tdir *t, const struct model *m, uint64_t seg_bytes)
{
	struct recpos *pos = malloc((m->n + 1) * sizeof(*pos));
	assert_non_null(pos);
	size_t n = parse_log(t, pos, m->n + 1, seg_bytes);
	assert_int_equal(n, m->n);
	uint64_t seg = 1, off = SEG_HDR;
	for (size_t i = 0; i < n; i++) {
		uint64_t sz = REC_HDR + m->len[i];
		if (off + sz > seg_bytes) {
			seg++;
			off = SEG_HDR;
		}
		assert_int_equal(pos[i].seg, seg);
		assert_int_equal(pos[i].off, off);
		assert_int_equal(pos[i].seq, m->seq[i]);
		assert_int_equal(pos[i].len, m->len[i]);
		off += sz;
	}
	free(pos);
}

/* Find model record i's place on disk. */
static struct recpos locate(const struct tdir *t, const struct model *m, size_t i,
			    uint64_t seg_bytes)
{
	struct recpos *pos = malloc((m->n + 1) * sizeof(*pos));
	assert_non_null(pos);
	size_t n = parse_log(t, pos, m->n + 1, seg_bytes);
	assert_true(i < n);
	assert_int_equal(pos[i].seq, m->seq[i]);
	struct recpos r = pos[i];
	free(pos);
	return r;
}

/* The segment the last of m's first n records lands in, written from an empty log. */
static uint64_t last_seg_of(const struct model *m, size_t n, uint64_t seg_bytes)
{
	uint64_t seg = 1, off = SEG_HDR;
	for (size_t i = 0; i < n; i++) {
		uint64_t sz = REC_HDR + m->len[i];
		if (off + sz > seg_bytes) {
			seg++;
			off = SEG_HDR;
		}
		off += sz;
	}
	return seg;
}

/* Wait until the preparer has made `segs` segments (it keeps one ahead of the writer), so
 * the files on disk after close do not depend on timing. */
static void wait_segments(struct sl_log *log, uint64_t segs)
{
	uint64_t t0 = now_ns();
	while (stats_of(log).segments < segs) {
		assert_true(now_ns() - t0 < 20ull * 1000 * 1000 * 1000);
		usleep(500);
	}
	assert_int_equal(stats_of(log).segments, segs);
}

/* Write m's records [0, n) in batches of batch into a fresh log and close it cleanly: on disk
 * then, segments 1 .. last_seg_of(m, n) + 1. */
static void write_log(const struct tdir *t, const struct wopt *o, const struct model *m, size_t n,
		      size_t batch)
{
	struct sl_log log;
	assert_int_equal(wal_open_with(t, NULL, o, NULL, &log), 0);
	assert_int_equal(append_model(&log, m, 0, n, batch), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, n ? m->seq[n - 1] : 0, -1), 0);
	wait_segments(&log, last_seg_of(m, n, o->seg) + 1);
	assert_int_equal(log.ops->close(log.impl), 0);
}

/* ---- Open, append, recover, cursors -------------------------------------------------------- */

static void test_wal_open_empty(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct sl_log log;
	struct model m = { 0 };
	open_expect(&t, &small, &m, 0, &log);
	assert_string_equal(log.ops->name, "wal");
	assert_int_equal(log.ops->version, SL_LOG_OPS_VERSION);
	char p[200];
	seg_file(&t, 1, p, sizeof(p));
	assert_int_equal(sl_test_file_size(p), SL_WAL_MIN_SEGMENT);
	check_cursor(&log, &m, 1, 0);
	check_cursor(&log, &m, 0, 0);
	assert_int_equal(log.ops->wait_durable(log.impl, 0, 0), 0);
	assert_int_equal(log.ops->close(log.impl), 0);
	open_expect(&t, &small, &m, 0, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	tdir_free(&t);
}

static void test_wal_open_bad_config(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct sl_log log;
	struct wopt o = small;
	o.seg = SL_WAL_MIN_SEGMENT - 1;
	assert_int_equal(wal_open_with(&t, NULL, &o, NULL, &log), SL_ECONFIG);
	o.seg = 1ull << 41;
	assert_int_equal(wal_open_with(&t, NULL, &o, NULL, &log), SL_ECONFIG);
	o = small;
	o.buf = 2 * (REC_HDR + SL_LOG_MAX_PAYLOAD) - 1;
	assert_int_equal(wal_open_with(&t, NULL, &o, NULL, &log), SL_ECONFIG);
	/* Nothing was created. */
	assert_false(sl_test_file_exists(t.wal));
	/* A read-only open of a directory with no log yet is an empty log. */
	o = small;
	o.rdonly = 1;
	struct model m = { 0 };
	open_expect(&t, &o, &m, 0, &log);
	assert_false(sl_test_file_exists(t.wal));
	assert_int_equal(log.ops->close(log.impl), 0);
	tdir_free(&t);
}

/* Payload lengths at every boundary, seq gaps, extreme rx_ns: all back exactly. */
static void test_append_batch_reopen_recovers_all(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	static const uint32_t lens[] = { 0,   1,   2,	 3,	7,     8,     23,    24,   25,
					 63,  64,  65,	 255,	256,   1000,  4095,  4096, 4097,
					 100, 0,   0,	 1,	65534, 65535, 65535, 0,	   65533,
					 12,  512, 2048, 32768, 32767, 65535, 1,     0,	   7 };
	struct model m = { 0 };
	uint64_t seq = 1, s = 42;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		model_push(&m, seq, lens[i]);
		seq += 1 + rnd_next(&s) % 4; /* gaps are allowed */
	}
	size_t nfixed = m.n;
	model_range(&m, seq, scaled(3000, 300), 300, 7);
	struct wopt o = { .seg = 512 * KIB, .buf = 1 * MIB };
	struct sl_log log;
	open_expect(&t, &o, &m, 0, &log);
	/* Batches of varied size, including single records. */
	size_t i = 0, b = 1;
	while (i < m.n) {
		size_t k = m.n - i < b ? m.n - i : b;
		assert_int_equal(append_model(&log, &m, i, i + k, k), 0);
		i += k;
		b = b * 3 % 97 + 1;
	}
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	assert_int_equal(log.ops->durable_seq(log.impl), model_last(&m));
	struct sl_log_stats st = stats_of(&log);
	assert_int_equal(st.records, m.n);
	assert_int_equal(st.io_errors, 0);
	/* Cursors on the live log see it all too. */
	check_cursor(&log, &m, 1, m.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	check_layout(&t, &m, o.seg);

	open_expect(&t, &o, &m, m.n, &log);
	st = stats_of(&log);
	assert_int_equal(st.recovery_torn_bytes, 0);
	assert_int_equal(st.io_errors, 0);
	check_cursor(&log, &m, 0, m.n);
	check_cursor(&log, &m, 1, m.n);
	/* From the middle: an exact seq, a seq in a gap, the first seq of the fixed part. */
	check_cursor(&log, &m, m.seq[nfixed / 2], m.n);
	check_cursor(&log, &m, m.seq[5] + 1, m.n);
	check_cursor(&log, &m, m.seq[nfixed], m.n);
	check_cursor(&log, &m, model_last(&m), m.n);
	/* Past the end: nothing. */
	check_cursor(&log, &m, model_last(&m) + 1, m.n);
	check_cursor(&log, &m, UINT64_MAX, m.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

static void test_append_batch_seq_order_and_bad_records(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 10, 20, 40, 3);
	struct sl_log log;
	open_expect(&t, &small, &m, 0, &log);
	uint8_t big[SL_LOG_MAX_PAYLOAD + 2];
	memset(big, 1, sizeof(big));
	/* seq 0 is below every seq: refused before any record is in. */
	struct sl_log_rec r0 = { .seq = 0, .type = SL_LOG_MSG, .data = big, .len = 1 };
	assert_int_equal(log.ops->append_batch(log.impl, &r0, 1), SL_EORDER);
	assert_int_equal(append_model(&log, &m, 0, 10, 10), 0);
	/* Equal to the last, and below it. */
	struct sl_log_rec r = { .seq = m.seq[9], .type = SL_LOG_MSG, .data = big, .len = 3 };
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), SL_EORDER);
	r.seq = 1;
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), SL_EORDER);
	/* Too long a payload. */
	r.seq = m.seq[10];
	r.len = SL_LOG_MAX_PAYLOAD + 1;
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), -EINVAL);
	/* A type the log cannot read back. */
	r.len = 3;
	r.type = 0;
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), -EINVAL);
	r.type = 4;
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), -EINVAL);
	r.type = 0x101;
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), -EINVAL);
	/* A batch that goes wrong in its middle is refused whole: its good head is not kept. */
	struct sl_log_rec bad[3] = {
		{ .seq = m.seq[10], .type = SL_LOG_MSG, .data = big, .len = 1 },
		{ .seq = m.seq[10] + 5, .type = SL_LOG_MSG, .data = big, .len = 1 },
		{ .seq = m.seq[10] + 5, .type = SL_LOG_MSG, .data = big, .len = 1 },
	};
	assert_int_equal(log.ops->append_batch(log.impl, bad, 3), SL_EORDER);
	bad[2].seq = m.seq[10] + 6;
	bad[2].len = SL_LOG_MAX_PAYLOAD + 1;
	assert_int_equal(log.ops->append_batch(log.impl, bad, 3), -EINVAL);
	/* An empty batch is a no-op. */
	assert_int_equal(log.ops->append_batch(log.impl, bad, 0), 0);
	/* The log goes on as if none of that happened. */
	assert_int_equal(append_model(&log, &m, 10, 20, 4), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	check_cursor(&log, &m, 1, m.n);
	assert_int_equal(stats_of(&log).records, 20);
	assert_int_equal(log.ops->close(log.impl), 0);
	open_expect(&t, &small, &m, m.n, &log);
	/* After a reopen the order continues from the recovered last seq. */
	r.seq = model_last(&m);
	r.type = SL_LOG_MSG;
	assert_int_equal(log.ops->append_batch(log.impl, &r, 1), SL_EORDER);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* A recover callback's nonzero return aborts the open, is returned, and harms nothing. */
static int abort_cb(void *arg, const struct sl_log_rec *rec)
{
	const int *v = arg;
	return rec->seq == 50 ? *v : 0;
}

static void test_wal_open_recover_callback_aborts(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, scaled(4000, 1000), 200, 5);
	write_log(&t, &small, &m, m.n, 100);
	size_t n0;
	uint8_t *before = snapshot(&t, &n0);
	static const int rets[] = { 1, 2, -42, SL_ECORRUPT };
	for (size_t i = 0; i < sizeof(rets) / sizeof(rets[0]); i++) {
		struct sl_wal_config c = { .dir = t.path,
					   .segment_bytes = small.seg,
					   .buffer_bytes = small.buf };
		struct sl_log log;
		int v = rets[i];
		assert_int_equal(sl__wal_open(&c, sl__os_default(), acc, abort_cb, &v, &log), v);
		size_t n1;
		uint8_t *after = snapshot(&t, &n1);
		assert_int_equal(n0, n1);
		assert_memory_equal(before, after, n0);
		free(after);
	}
	free(before);
	struct sl_log log;
	open_expect(&t, &small, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* ---- Group commit and durability ---------------------------------------------------------- */

static void test_wait_durable_group_commit(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	size_t calls = scaled(4000, 400), per = 8;
	model_range(&m, 1, calls * per, 60, 11);
	struct sl_log log;
	open_expect(&t, &medium, &m, 0, &log);
	for (size_t i = 0; i < calls; i++)
		assert_int_equal(append_model(&log, &m, i * per, (i + 1) * per, per), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	assert_int_equal(log.ops->durable_seq(log.impl), model_last(&m));
	struct sl_log_stats st = stats_of(&log);
	assert_int_equal(st.records, m.n);
	assert_true(st.commits >= 1);
	assert_true(st.commits < calls); /* many appends shared a commit */
	assert_true(st.syncs >= st.commits);
	assert_int_equal(st.io_errors, 0);
	uint64_t bytes = 0;
	for (size_t i = 0; i < m.n; i++)
		bytes += REC_HDR + m.len[i];
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(log.ops->close(log.impl), 0);
	open_expect(&t, &medium, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* With a long linger a commit waits for more appends; sync_now cuts it short. */
static void test_sync_now_ends_linger(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 100, 60, 12);
	struct wopt o = medium;
	o.interval_us = 30u * 1000u * 1000u;
	struct sl_log log;
	open_expect(&t, &o, &m, 0, &log);
	assert_int_equal(append_model(&log, &m, 0, 100, 100), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, 100, 50 * 1000 * 1000), SL_ETIMEDOUT);
	assert_int_equal(log.ops->durable_seq(log.impl), 0);
	uint64_t t0 = now_ns();
	log.ops->sync_now(log.impl);
	assert_int_equal(log.ops->wait_durable(log.impl, 100, 10ll * 1000 * 1000 * 1000), 0);
	assert_true(now_ns() - t0 < 10ull * 1000 * 1000 * 1000);
	assert_int_equal(log.ops->durable_seq(log.impl), 100);
	assert_int_equal(stats_of(&log).commits, 1);
	/* close commits what lingers. */
	struct model m2 = { 0 };
	model_range(&m2, 101, 5, 10, 13);
	assert_int_equal(append_model(&log, &m2, 0, 5, 5), 0);
	assert_int_equal(log.ops->close(log.impl), 0);
	for (size_t i = 0; i < m2.n; i++)
		model_push(&m, m2.seq[i], m2.len[i]);
	open_expect(&t, &o, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	model_free(&m2);
	tdir_free(&t);
}

static void test_wait_durable_timeout(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 10, 20, 14);
	struct sl_log log;
	open_expect(&t, &small, &m, 0, &log);
	assert_int_equal(append_model(&log, &m, 0, 10, 10), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, 10, -1), 0);
	/* Durable already: no wait, whatever the timeout. */
	assert_int_equal(log.ops->wait_durable(log.impl, 10, 0), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, 3, 0), 0);
	/* Never appended: times out, after the timeout and not long after. */
	assert_int_equal(log.ops->wait_durable(log.impl, 11, 0), SL_ETIMEDOUT);
	uint64_t t0 = now_ns();
	assert_int_equal(log.ops->wait_durable(log.impl, 11, 80 * 1000 * 1000), SL_ETIMEDOUT);
	uint64_t dt = now_ns() - t0;
	assert_true(dt >= 80ull * 1000 * 1000);
	assert_true(dt < 5ull * 1000 * 1000 * 1000);
	t0 = now_ns();
	assert_int_equal(log.ops->wait_durable(log.impl, UINT64_MAX, 1100 * 1000 * 1000),
			 SL_ETIMEDOUT);
	assert_true(now_ns() - t0 >= 1100ull * 1000 * 1000);
	assert_int_equal(log.ops->durable_seq(log.impl), 10);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

struct mono_arg {
	struct sl_log *log;
	uint64_t intent; /* the last seq handed to append_batch (stored before the call) */
	int stop;
	uint64_t reads, violations, max_seen;
};

static void *mono_main(void *p)
{
	struct mono_arg *a = p;
	uint64_t prev = 0;
	int last = 0;
	/* One more read after stop is seen: the final value is always observed. */
	while (!last) {
		last = __atomic_load_n(&a->stop, __ATOMIC_ACQUIRE);
		uint64_t d = a->log->ops->durable_seq(a->log->impl);
		uint64_t intent = __atomic_load_n(&a->intent, __ATOMIC_ACQUIRE);
		if (d < prev || d > intent)
			a->violations++;
		prev = d;
		a->reads++;
	}
	a->max_seen = prev;
	return NULL;
}

static void test_durable_seq_monotonic(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	size_t n = scaled(200000, 20000);
	model_range(&m, 1, n, 30, 15);
	struct sl_log log;
	open_expect(&t, &medium, &m, 0, &log);
	struct mono_arg a = { .log = &log };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, mono_main, &a), 0);
	for (size_t i = 0; i < n; i += 500) {
		size_t k = n - i < 500 ? n - i : 500;
		__atomic_store_n(&a.intent, m.seq[i + k - 1], __ATOMIC_RELEASE);
		assert_int_equal(append_model(&log, &m, i, i + k, k), 0);
	}
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_int_equal(a.violations, 0);
	assert_true(a.reads > 0);
	assert_int_equal(a.max_seen, model_last(&m));
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* ---- Rotation and truncation -------------------------------------------------------------- */

static void test_append_batch_rotates_segments(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	/* About 40 segments of 128 KiB (8 under SL_TEST_QUICK), records up to 3000 bytes. */
	size_t n = quick ? 700 : 3500;
	model_range(&m, 1, n, 3000, 16);
	struct sl_log log;
	open_expect(&t, &small, &m, 0, &log);
	assert_int_equal(append_model(&log, &m, 0, n, 37), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	/* One segment is prepared ahead of the writer's; stats count every one made. */
	uint64_t last_seg = last_seg_of(&m, m.n, small.seg);
	wait_segments(&log, last_seg + 1);
	check_cursor(&log, &m, 1, m.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	check_layout(&t, &m, small.seg);
	uint64_t idx[4096];
	size_t tmps, nseg = seg_indexes(&t, idx, 4096, &tmps);
	assert_int_equal(tmps, 0);
	assert_true(last_seg >= (quick ? 8u : 40u));
	assert_int_equal(nseg, last_seg + 1);
	for (size_t i = 0; i < nseg; i++)
		assert_int_equal(idx[i], i + 1);

	open_expect(&t, &small, &m, m.n, &log);
	/* Cursors cross segments from anywhere, including a segment's first record. */
	struct recpos p5 = locate(&t, &m, 0, small.seg);
	assert_int_equal(p5.seg, 1);
	size_t first_of_seg3 = 0;
	{
		struct recpos *pos = malloc(m.n * sizeof(*pos));
		assert_int_equal(parse_log(&t, pos, m.n, small.seg), m.n);
		while (pos[first_of_seg3].seg < 3)
			first_of_seg3++;
		free(pos);
	}
	check_cursor(&log, &m, m.seq[first_of_seg3], m.n);
	check_cursor(&log, &m, m.seq[first_of_seg3] - 1, m.n);
	check_cursor(&log, &m, m.seq[m.n / 2], m.n);
	check_cursor(&log, &m, m.seq[m.n - 1], m.n);
	/* Appending after a reopen continues the same files. */
	struct model more = { 0 };
	model_range(&more, model_last(&m) + 1, 300, 3000, 17);
	assert_int_equal(append_model(&log, &more, 0, more.n, 50), 0);
	for (size_t i = 0; i < more.n; i++)
		model_push(&m, more.seq[i], more.len[i]);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	check_cursor(&log, &m, 1, m.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	open_expect(&t, &small, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&more);
	model_free(&m);
	tdir_free(&t);
}

static void test_truncate_before_drops_whole_segments(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	size_t n = quick ? 900 : 2000;
	model_range(&m, 1, n, 2000, 18);
	write_log(&t, &small, &m, n, 64);
	struct recpos *pos = malloc(n * sizeof(*pos));
	assert_non_null(pos);
	assert_int_equal(parse_log(&t, pos, n, small.seg), n);
	uint64_t last_seg = pos[n - 1].seg;
	assert_true(last_seg >= 6);
	/* The first record of segment 4 and one in the middle of segment 4. */
	size_t s4 = 0, s5 = 0;
	while (pos[s4].seg < 4)
		s4++;
	while (pos[s5].seg < 5)
		s5++;
	size_t mid4 = (s4 + s5) / 2;
	assert_true(mid4 > s4);

	struct sl_log log;
	open_expect(&t, &small, &m, n, &log);
	/* Below every record: nothing goes. */
	assert_int_equal(log.ops->truncate_before(log.impl, 1), 0);
	assert_int_equal(log.ops->truncate_before(log.impl, m.seq[0]), 0);
	char p[200];
	seg_file(&t, 1, p, sizeof(p));
	assert_true(sl_test_file_exists(p));
	/* A seq inside segment 4 keeps segment 4 whole (it also holds seq - 1). */
	assert_int_equal(log.ops->truncate_before(log.impl, m.seq[mid4]), 0);
	for (uint64_t s = 1; s <= last_seg + 1; s++) {
		seg_file(&t, s, p, sizeof(p));
		assert_int_equal(sl_test_file_exists(p), s >= 4);
	}
	/* From before the start: from segment 4's first record. */
	struct model from4 = { .seq = m.seq + s4, .len = m.len + s4, .n = n - s4 };
	check_cursor(&log, &from4, 1, from4.n);
	{
		struct sl_log_cursor *c;
		struct sl_log_rec rec;
		assert_int_equal(log.ops->cursor_open(log.impl, 1, &c), 0);
		assert_int_equal(log.ops->cursor_next(c, &rec), 0);
		assert_int_equal(rec.seq, m.seq[s4]);
		log.ops->cursor_close(c);
	}
	/* The first seq of segment 5 drops segment 4, exactly. */
	assert_int_equal(log.ops->truncate_before(log.impl, m.seq[s5]), 0);
	seg_file(&t, 4, p, sizeof(p));
	assert_false(sl_test_file_exists(p));
	seg_file(&t, 5, p, sizeof(p));
	assert_true(sl_test_file_exists(p));
	/* Past the end: the writer's segment (the last with data, or the empty one after it)
	 * always stays, with everything after it. */
	assert_int_equal(log.ops->truncate_before(log.impl, UINT64_MAX), 0);
	seg_file(&t, last_seg + 1, p, sizeof(p));
	assert_true(sl_test_file_exists(p));
	assert_int_equal(log.ops->close(log.impl), 0);
	/* A reopen recovers what is left: whole segments only, so a suffix of the model. */
	uint64_t idx[4096];
	size_t nseg = seg_indexes(&t, idx, 4096, NULL);
	assert_true(nseg >= 1);
	size_t keep_from = 0;
	while (keep_from < n && pos[keep_from].seg < idx[0])
		keep_from++;
	struct model rest = { 0 };
	for (size_t i = keep_from; i < n; i++)
		model_push(&rest, m.seq[i], m.len[i]);
	open_expect(&t, &small, &rest, rest.n, &log);
	check_cursor(&log, &rest, 1, rest.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	free(pos);
	model_free(&rest);
	model_free(&m);
	tdir_free(&t);
}

/* Many segments never hold many descriptors: the process's limit is not a log size limit. */
static void test_append_batch_many_segments_few_fds(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* New descriptors take the lowest free numbers: the ones open now, plus a little
	 * headroom, is the limit. */
	int open_now = 0;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			open_now++;
	struct rlimit lim = old;
	lim.rlim_cur = (rlim_t)open_now + 24;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	struct model m = { 0 };
	/* About 60 segments of 128 KiB. */
	model_range(&m, 1, 4000, 4000, 19);
	struct sl_log log;
	int r = wal_open_with(&t, NULL, &small, NULL, &log);
	int ra = r ? r : append_model(&log, &m, 0, m.n, 100);
	int rw = r ? r : log.ops->wait_durable(log.impl, model_last(&m), -1);
	int rc = r ? r : log.ops->close(log.impl);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(r, 0);
	assert_int_equal(ra, 0);
	assert_int_equal(rw, 0);
	assert_int_equal(rc, 0);
	open_expect(&t, &small, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* close right after a burst that outran the segment preparer still commits everything. */
struct close_arg {
	struct sl_log *log;
	int r;
	int done;
};

static void *close_main(void *p)
{
	struct close_arg *a = p;
	a->r = a->log->ops->close(a->log->impl);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_wal_close_after_burst_past_preparer(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	struct model m = { 0 };
	/* About 10 segments of 128 KiB. */
	model_range(&m, 1, 600, 4000, 20);
	struct wopt o = { .seg = SL_WAL_MIN_SEGMENT, .buf = 8 * MIB };
	struct sl_log log;
	assert_int_equal(wal_open_with(&t, fault_os_get(fo), &o, NULL, &log), 0);
	/* Each segment now takes the preparer 100 ms: the writer gets far ahead. */
	fault_os_delay(fo, FAULT_SYNC_DIR, 100 * 1000);
	assert_int_equal(append_model(&log, &m, 0, m.n, 600), 0);
	struct close_arg a = { .log = &log };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, close_main, &a), 0);
	uint64_t t0 = now_ns();
	while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE) &&
	       now_ns() - t0 < 30ull * 1000 * 1000 * 1000)
		usleep(1000);
	if (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
		fail_msg("close hung: the committer waits for a segment nobody prepares");
	pthread_join(th, NULL);
	assert_int_equal(a.r, 0);
	fault_os_free(fo);
	open_expect(&t, &small, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* ---- Torn tails ---------------------------------------------------------------------------- */

enum tear_kind { TEAR_GARBAGE, TEAR_ZERO_END, TEAR_TRUNCATE, TEAR_HEADER, TEAR_LAST3 };

/* Damage the end of the log as a crash could, then check recovery: the records before the
 * damage, the tail zeroed on disk and counted once, and appends after recovery that last. */
static void torn_tail_case(enum tear_kind kind, const struct wopt *o, size_t n)
{
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, n, 400, 21 + kind);
	/* The last records get a payload long enough to cut inside. */
	for (size_t i = n - 3; i < n; i++)
		m.len[i] = 100 + (uint32_t)i % 50;
	write_log(&t, o, &m, n, 50);
	struct recpos last = locate(&t, &m, n - 1, o->seg);
	char p[200];
	seg_file(&t, last.seg, p, sizeof(p));
	uint64_t rec_end = last.off + REC_HDR + last.len;
	size_t keep = n - 1; /* records that survive */
	uint64_t torn_from = last.off;
	switch (kind) {
	case TEAR_GARBAGE: {
		uint8_t junk[40];
		for (int i = 0; i < 40; i++)
			junk[i] = (uint8_t)(0xA0 + i);
		write_at(p, last.off + REC_HDR + 10, junk, sizeof(junk));
		break;
	}
	case TEAR_ZERO_END: {
		uint8_t z[30] = { 0 };
		write_at(p, rec_end - sizeof(z), z, sizeof(z));
		break;
	}
	case TEAR_TRUNCATE:
		assert_int_equal(truncate(p, (off_t)(last.off + REC_HDR + last.len / 2)), 0);
		break;
	case TEAR_HEADER: {
		/* Only the first 10 bytes of the header made it. */
		uint8_t z[REC_HDR + 200] = { 0 };
		write_at(p, last.off + 10, z, rec_end - last.off - 10);
		break;
	}
	case TEAR_LAST3: {
		/* One torn write over the last three records: garbage from inside the first to
		 * near the end of the last. */
		struct recpos third = locate(&t, &m, n - 3, o->seg);
		assert_int_equal(third.seg, last.seg);
		uint8_t junk[3 * (REC_HDR + 150)];
		size_t len = rec_end - 5 - (third.off + REC_HDR + 3);
		assert_true(len <= sizeof(junk));
		for (size_t i = 0; i < len; i++)
			junk[i] = (uint8_t)(i * 37 + 11) | 1;
		write_at(p, third.off + REC_HDR + 3, junk, len);
		keep = n - 3;
		torn_from = third.off;
		break;
	}
	}
	/* verify sees a sound log with a torn tail and changes nothing. */
	size_t n0;
	uint8_t *before = snapshot(&t, &n0);
	char bad[256] = "x";
	uint64_t off = 99, recs = 0, torn = 0;
	assert_int_equal(
		sl__wal_verify(t.path, sl__os_default(), acc, bad, sizeof(bad), &off, &recs, &torn),
		0);
	assert_int_equal(recs, keep);
	assert_true(torn > 0);
	size_t n1;
	uint8_t *after = snapshot(&t, &n1);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0);
	free(before);
	free(after);

	struct sl_log log;
	open_expect(&t, o, &m, keep, &log);
	struct sl_log_stats st = stats_of(&log);
	assert_int_equal(st.recovery_torn_bytes, torn);
	check_cursor(&log, &m, 1, keep);
	assert_int_equal(log.ops->close(log.impl), 0);
	/* The tail is zeros on disk now: to the end of the file. */
	size_t size;
	uint8_t *b = sl_test_slurp(p, &size);
	for (uint64_t i = torn_from; i < size; i++)
		if (b[i])
			fail_msg("byte %llu of %s not zeroed", (unsigned long long)i, p);
	free(b);
	/* Reopened again: nothing torn any more. */
	open_expect(&t, o, &m, keep, &log);
	assert_int_equal(stats_of(&log).recovery_torn_bytes, 0);
	/* Appends after recovery continue the log (the lost seqs may be written again). */
	struct model m2 = { 0 };
	for (size_t i = 0; i < keep; i++)
		model_push(&m2, m.seq[i], m.len[i]);
	model_range(&m2, m.seq[keep], 200, 300, 40 + kind);
	assert_int_equal(append_model(&log, &m2, keep, m2.n, 30), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m2), -1), 0);
	check_cursor(&log, &m2, 1, m2.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	open_expect(&t, o, &m2, m2.n, &log);
	assert_int_equal(stats_of(&log).recovery_torn_bytes, 0);
	check_cursor(&log, &m2, 1, m2.n);
	assert_int_equal(log.ops->close(log.impl), 0);
	assert_int_equal(
		sl__wal_verify(t.path, sl__os_default(), acc, bad, sizeof(bad), &off, &recs, &torn),
		0);
	assert_int_equal(recs, m2.n);
	assert_int_equal(torn, 0);
	model_free(&m2);
	model_free(&m);
	tdir_free(&t);
}

static void test_wal_open_torn_tail_garbage(void **state)
{
	(void)state;
	torn_tail_case(TEAR_GARBAGE, &small, 300);
	/* Spanning segments: the torn record is in a later one. */
	torn_tail_case(TEAR_GARBAGE, &small, 1500);
}

static void test_wal_open_torn_tail_zeroed_end(void **state)
{
	(void)state;
	torn_tail_case(TEAR_ZERO_END, &small, 300);
	torn_tail_case(TEAR_ZERO_END, &small, 1500);
}

static void test_wal_open_torn_tail_truncated_file(void **state)
{
	(void)state;
	torn_tail_case(TEAR_TRUNCATE, &small, 300);
	torn_tail_case(TEAR_TRUNCATE, &small, 1500);
}

static void test_wal_open_torn_tail_partial_header(void **state)
{
	(void)state;
	torn_tail_case(TEAR_HEADER, &small, 300);
}

static void test_wal_open_torn_tail_last_records(void **state)
{
	(void)state;
	torn_tail_case(TEAR_LAST3, &small, 300);
	torn_tail_case(TEAR_LAST3, &medium, 1500);
}

/* The empty segment prepared after the writer's one has a bad header: it is dropped. */
static void test_wal_open_bad_header_on_empty_last_segment(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 200, 300, 23);
	write_log(&t, &small, &m, m.n, 20);
	uint64_t idx[16];
	size_t nseg = seg_indexes(&t, idx, 16, NULL);
	assert_int_equal(nseg, 2);
	char p[200];
	seg_file(&t, 2, p, sizeof(p));
	flip_bit(p, 20, 0); /* its index field */
	struct sl_log log;
	open_expect(&t, &small, &m, m.n, &log);
	struct model more = { 0 };
	model_range(&more, 201, 2000, 300, 24); /* into segment 2 and beyond */
	assert_int_equal(append_model(&log, &more, 0, more.n, 100), 0);
	for (size_t i = 0; i < more.n; i++)
		model_push(&m, more.seq[i], more.len[i]);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	assert_int_equal(log.ops->close(log.impl), 0);
	open_expect(&t, &small, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	check_layout(&t, &m, small.seg);
	model_free(&more);
	model_free(&m);
	tdir_free(&t);
}

/* ---- Corruption in the middle ---------------------------------------------------------------- */

/* Damage record i of m (written in a fresh log); open must refuse with SL_ECORRUPT naming the
 * segment and the record's offset, change nothing, and verify must say the same. */
static void corrupt_case(const struct tdir *t, const struct model *m, size_t i,
			 const struct wopt *o, void (*damage)(const char *path, uint64_t off))
{
	struct recpos at = locate(t, m, i, o->seg);
	char p[200];
	seg_file(t, at.seg, p, sizeof(p));
	damage(p, at.off);
	size_t n0;
	uint8_t *before = snapshot(t, &n0);
	struct sl_log log;
	struct checker ck = { .m = m };
	assert_int_equal(wal_open_with(t, NULL, o, &ck, &log), SL_ECORRUPT);
	assert_false(ck.bad);
	assert_int_equal(ck.next, i); /* every record before the damage was handed over */
	struct wopt ro = *o;
	ro.rdonly = 1;
	assert_int_equal(wal_open_with(t, NULL, &ro, NULL, &log), SL_ECORRUPT);
	char bad[256] = "";
	uint64_t off = 0, recs = 0, torn = 0;
	assert_int_equal(sl__wal_verify(t->path, sl__os_default(), acc, bad, sizeof(bad), &off,
					&recs, &torn),
			 SL_ECORRUPT);
	assert_string_equal(bad, p);
	assert_int_equal(off, at.off);
	assert_int_equal(recs, i);
	size_t n1;
	uint8_t *after = snapshot(t, &n1);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0);
	free(before);
	free(after);
}

static void damage_payload_bit(const char *path, uint64_t off)
{
	flip_bit(path, off + REC_HDR + 3, 5);
}

static void damage_seq_bit(const char *path, uint64_t off)
{
	flip_bit(path, off + 8, 0);
}

static void damage_len(const char *path, uint64_t off)
{
	flip_bit(path, off + 5, 7); /* len grows by 32 KiB */
}

static void damage_crc(const char *path, uint64_t off)
{
	flip_bit(path, off, 1);
}

static void damage_zero_header(const char *path, uint64_t off)
{
	uint8_t z[REC_HDR] = { 0 };
	write_at(path, off, z, sizeof(z));
}

static void test_wal_open_corrupt_record_in_last_segment(void **state)
{
	(void)state;
	void (*const damages[])(const char *, uint64_t) = { damage_payload_bit, damage_seq_bit,
							    damage_len, damage_crc };
	for (size_t d = 0; d < sizeof(damages) / sizeof(damages[0]); d++) {
		struct tdir t;
		tdir_new(&t);
		struct model m = { 0 };
		model_range(&m, 1, 400, 200, 25);
		for (size_t i = 0; i < m.n; i++)
			m.len[i] += 8;
		write_log(&t, &small, &m, m.n, 40);
		/* Good records follow it in the same (only) segment. */
		assert_int_equal(locate(&t, &m, m.n - 1, small.seg).seg, 1);
		corrupt_case(&t, &m, 200, &small, damages[d]);
		model_free(&m);
		tdir_free(&t);
	}
}

static void test_wal_open_corrupt_record_in_earlier_segment(void **state)
{
	(void)state;
	struct model m = { 0 };
	model_range(&m, 1, 2500, 300, 26);
	for (size_t i = 0; i < m.n; i++)
		m.len[i] += 8;
	/* The middle of segment 2, then segment 2's very last record (good records follow only
	 * in later segments), then segment 1's first. */
	for (int which = 0; which < 3; which++) {
		struct tdir t;
		tdir_new(&t);
		write_log(&t, &small, &m, m.n, 100);
		struct recpos *pos = malloc(m.n * sizeof(*pos));
		assert_int_equal(parse_log(&t, pos, m.n, small.seg), m.n);
		assert_true(pos[m.n - 1].seg >= 4);
		size_t s2 = 0, s3 = 0;
		while (pos[s2].seg < 2)
			s2++;
		while (pos[s3].seg < 3)
			s3++;
		free(pos);
		size_t i = which == 0 ? (s2 + s3) / 2 : which == 1 ? s3 - 1 : 0;
		corrupt_case(&t, &m, i, &small, damage_payload_bit);
		tdir_free(&t);
	}
	model_free(&m);
}

/* Zeros where a record of a full segment was: a hole, not the end of the log. */
static void test_wal_open_hole_in_earlier_segment(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 2500, 300, 27);
	write_log(&t, &small, &m, m.n, 100);
	struct recpos *pos = malloc(m.n * sizeof(*pos));
	assert_int_equal(parse_log(&t, pos, m.n, small.seg), m.n);
	size_t s2 = 0, s3 = 0;
	while (pos[s2].seg < 2)
		s2++;
	while (pos[s3].seg < 3)
		s3++;
	free(pos);
	corrupt_case(&t, &m, (s2 + s3) / 2, &small, damage_zero_header);
	model_free(&m);
	tdir_free(&t);
}

static void test_wal_open_bad_segment_header_in_middle(void **state)
{
	(void)state;
	struct model m = { 0 };
	model_range(&m, 1, 3000, 300, 28);
	/* Each header field: magic, version, index, and the header CRC itself. */
	static const uint64_t offs[] = { 0, 8, 16, 60 };
	for (size_t k = 0; k < 4; k++) {
		struct tdir t;
		tdir_new(&t);
		write_log(&t, &small, &m, m.n, 100);
		struct recpos *pos = malloc(m.n * sizeof(*pos));
		assert_int_equal(parse_log(&t, pos, m.n, small.seg), m.n);
		assert_true(pos[m.n - 1].seg >= 4);
		size_t s2 = 0;
		while (pos[s2].seg < 2)
			s2++;
		free(pos);
		char p[200];
		seg_file(&t, 2, p, sizeof(p));
		flip_bit(p, offs[k], 3);
		struct sl_log log;
		struct checker ck = { .m = &m };
		assert_int_equal(wal_open_with(&t, NULL, &small, &ck, &log), SL_ECORRUPT);
		assert_int_equal(ck.next, s2);
		char bad[256] = "";
		uint64_t off = 7, recs = 0;
		assert_int_equal(sl__wal_verify(t.path, sl__os_default(), acc, bad, sizeof(bad),
						&off, &recs, NULL),
				 SL_ECORRUPT);
		assert_string_equal(bad, p);
		assert_int_equal(off, 0);
		assert_int_equal(recs, s2);
		assert_true(sl_test_file_exists(p));
		tdir_free(&t);
	}
	model_free(&m);
}

/* The last segment with records has a bad header: damage, not an unfinished segment. */
static void test_wal_open_bad_header_on_last_data_segment(void **state)
{
	(void)state;
	struct model m = { 0 };
	model_range(&m, 1, 1000, 300, 36);
	for (int drop_next = 0; drop_next < 2; drop_next++) {
		struct tdir t;
		tdir_new(&t);
		write_log(&t, &small, &m, m.n, 100);
		uint64_t last = last_seg_of(&m, m.n, small.seg);
		assert_true(last >= 2);
		char p[200];
		if (drop_next) {
			/* No empty segment after it: it is the very last file. */
			seg_file(&t, last + 1, p, sizeof(p));
			assert_int_equal(unlink(p), 0);
		}
		size_t before_last = 0;
		{
			struct recpos *pos = malloc(m.n * sizeof(*pos));
			assert_int_equal(parse_log(&t, pos, m.n, small.seg), m.n);
			while (pos[before_last].seg < last)
				before_last++;
			free(pos);
		}
		seg_file(&t, last, p, sizeof(p));
		flip_bit(p, 3, 6); /* the magic */
		size_t n0;
		uint8_t *snap0 = snapshot(&t, &n0);
		struct sl_log log;
		struct checker ck = { .m = &m };
		assert_int_equal(wal_open_with(&t, NULL, &small, &ck, &log), SL_ECORRUPT);
		assert_int_equal(ck.next, before_last);
		char bad[256] = "";
		uint64_t off = 7, recs = 0;
		assert_int_equal(sl__wal_verify(t.path, sl__os_default(), acc, bad, sizeof(bad),
						&off, &recs, NULL),
				 SL_ECORRUPT);
		assert_string_equal(bad, p);
		assert_int_equal(off, 0);
		assert_int_equal(recs, before_last);
		size_t n1;
		uint8_t *snap1 = snapshot(&t, &n1);
		assert_int_equal(n0, n1);
		assert_memory_equal(snap0, snap1, n0);
		free(snap0);
		free(snap1);
		tdir_free(&t);
	}
	model_free(&m);
}

/* ---- Read-only opens ---------------------------------------------------------------------- */

static void test_wal_open_rdonly_changes_nothing(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 1500, 300, 29);
	write_log(&t, &small, &m, m.n, 100);
	struct recpos last = locate(&t, &m, m.n - 1, small.seg);
	char p[200];
	seg_file(&t, last.seg, p, sizeof(p));
	uint8_t junk[16];
	memset(junk, 0xEE, sizeof(junk));
	write_at(p, last.off + 4, junk, sizeof(junk));
	/* A leftover temporary file too: a read-only open must not delete it. */
	char tmp[220];
	snprintf(tmp, sizeof(tmp), "%s/%016llx.wal.tmp", t.wal, (unsigned long long)99);
	int fd = open(tmp, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	size_t n0;
	uint8_t *before = snapshot(&t, &n0);
	struct wopt ro = small;
	ro.rdonly = 1;
	struct sl_log log;
	open_expect(&t, &ro, &m, m.n - 1, &log);
	assert_true(stats_of(&log).recovery_torn_bytes > 0);
	check_cursor(&log, &m, 1, m.n - 1);
	check_cursor(&log, &m, m.seq[700], m.n - 1);
	assert_int_equal(append_model(&log, &m, m.n - 1, m.n, 1), SL_ERDONLY);
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), 1000), SL_ETIMEDOUT);
	assert_int_equal(log.ops->close(log.impl), 0);
	size_t n1;
	uint8_t *after = snapshot(&t, &n1);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0);
	assert_true(sl_test_file_exists(tmp));
	free(before);
	free(after);
	/* A writable open repairs: the tail is zeroed and the temporary file goes. */
	open_expect(&t, &small, &m, m.n - 1, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	assert_false(sl_test_file_exists(tmp));
	model_free(&m);
	tdir_free(&t);
}

/* ---- Cursors racing the writer ------------------------------------------------------------ */

/* A cursor that reached the durable end sees records made durable later (its read cache is
 * not trusted past what it has returned). */
static void test_cursor_next_after_more_durable(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 300, 100, 30);
	struct sl_log log;
	open_expect(&t, &medium, &m, 0, &log);
	struct sl_log_cursor *c;
	assert_int_equal(log.ops->cursor_open(log.impl, 1, &c), 0);
	struct sl_log_rec rec;
	assert_int_equal(log.ops->cursor_next(c, &rec), SL_EEND);
	char msg[256];
	size_t got = 0;
	for (size_t step = 0; step < 3; step++) {
		assert_int_equal(append_model(&log, &m, step * 100, step * 100 + 100, 100), 0);
		assert_int_equal(log.ops->wait_durable(log.impl, m.seq[step * 100 + 99], -1), 0);
		for (; got < step * 100 + 100; got++) {
			int r = log.ops->cursor_next(c, &rec);
			if (r)
				fail_msg("record %zu: %s", got, sl_strerror(r));
			if (!rec_is(&m, got, &rec, msg, sizeof(msg)))
				fail_msg("%s", msg);
		}
		assert_int_equal(log.ops->cursor_next(c, &rec), SL_EEND);
	}
	log.ops->cursor_close(c);
	log.ops->cursor_close(NULL);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

struct race {
	struct sl_log *log;
	size_t n;	   /* records seq 1..n, lengths len_of(seq) */
	uint64_t appended; /* highest seq append_batch returned for */
	int reader_errors; /* counted, and the first described in msg */
	char msg[256];
	pthread_mutex_t mu;
	uint64_t reader_records, reader_opens, waits;
};

static uint32_t race_len(uint64_t seq)
{
	return (uint32_t)(seq * 2654435761u >> 11) % 25;
}

static void race_error(struct race *r, const char *fmt, unsigned long long a, unsigned long long b,
		       int e)
{
	pthread_mutex_lock(&r->mu);
	if (!r->reader_errors++)
		snprintf(r->msg, sizeof(r->msg), "%s (%llu %llu: %s)", fmt, a, b, sl_strerror(e));
	pthread_mutex_unlock(&r->mu);
}

static int race_rec_ok(uint64_t seq, const struct sl_log_rec *rec)
{
	if (rec->seq != seq || rec->len != race_len(seq) || rec->type != type_of(seq) ||
	    rec->rx_ns != rx_of(seq))
		return 0;
	const uint8_t *p = rec->data;
	for (uint32_t k = 0; k < rec->len; k++)
		if (p[k] != byte_of(seq, k))
			return 0;
	return 1;
}

/* Read from `from` until seq `until` has been read, or `limit` records. */
static uint64_t race_read(struct race *r, uint64_t from, uint64_t until, uint64_t limit,
			  uint64_t *seed)
{
	struct sl_log *log = r->log;
	struct sl_log_cursor *c;
	int e = log->ops->cursor_open(log->impl, from, &c);
	if (e) {
		race_error(r, "cursor_open", from, 0, e);
		return 0;
	}
	uint64_t next = from, count = 0;
	while (next <= until && count < limit && !r->reader_errors) {
		struct sl_log_rec rec;
		uint64_t before = log->ops->durable_seq(log->impl);
		e = log->ops->cursor_next(c, &rec);
		if (e == SL_EEND) {
			if (before >= next) {
				race_error(r, "SL_EEND with the next record durable", next, before,
					   e);
				break;
			}
			if (rnd_next(seed) % 4 == 0)
				sched_yield();
			continue;
		}
		if (e) {
			race_error(r, "cursor_next", next, 0, e);
			break;
		}
		uint64_t d = log->ops->durable_seq(log->impl);
		if (!race_rec_ok(next, &rec) || rec.seq > d) {
			race_error(r, "bad record: expected/got", next, rec.seq, 0);
			break;
		}
		next++;
		count++;
	}
	log->ops->cursor_close(c);
	pthread_mutex_lock(&r->mu);
	r->reader_records += count;
	r->reader_opens++;
	pthread_mutex_unlock(&r->mu);
	return count;
}

static void *race_reader(void *p)
{
	struct race *r = p;
	uint64_t seed = (uint64_t)(uintptr_t)&seed;
	/* One long-lived cursor over everything, with short ones from random places between. */
	struct sl_log *log = r->log;
	struct sl_log_cursor *c;
	int e = log->ops->cursor_open(log->impl, 1, &c);
	if (e) {
		race_error(r, "cursor_open", 1, 0, e);
		return NULL;
	}
	uint64_t next = 1;
	while (next <= r->n && !r->reader_errors) {
		struct sl_log_rec rec;
		uint64_t before = log->ops->durable_seq(log->impl);
		e = log->ops->cursor_next(c, &rec);
		if (e == SL_EEND) {
			/* next was durable when the call began: it had to be returned. */
			if (before >= next) {
				race_error(r, "SL_EEND with the next record durable", next, before,
					   e);
				break;
			}
			sched_yield();
			continue;
		}
		if (e) {
			race_error(r, "cursor_next", next, 0, e);
			break;
		}
		uint64_t d = log->ops->durable_seq(log->impl);
		if (!race_rec_ok(next, &rec) || rec.seq > d) {
			race_error(r, "bad record: expected/got", next, rec.seq, 0);
			break;
		}
		next++;
		if (next % 50000 == 0) {
			uint64_t dd = log->ops->durable_seq(log->impl);
			if (dd > 0)
				race_read(r, 1 + rnd_next(&seed) % dd, dd, 3000, &seed);
		}
	}
	log->ops->cursor_close(c);
	pthread_mutex_lock(&r->mu);
	r->reader_records += next - 1;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void *race_waiter(void *p)
{
	struct race *r = p;
	uint64_t seed = 99, target = 0;
	while (target < r->n && !r->reader_errors) {
		uint64_t d = r->log->ops->durable_seq(r->log->impl);
		target = d + 1 + rnd_next(&seed) % 5000;
		if (target > r->n)
			target = r->n;
		int e = r->log->ops->wait_durable(r->log->impl, target, 20ll * 1000 * 1000 * 1000);
		if (e || r->log->ops->durable_seq(r->log->impl) < target) {
			race_error(r, "wait_durable", target, 0, e);
			break;
		}
		pthread_mutex_lock(&r->mu);
		r->waits++;
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

static void test_append_batch_races_cursors_and_waiters(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct race r = { .n = scaled(1000000, 100000) };
	pthread_mutex_init(&r.mu, NULL);
	struct wopt o = { .seg = 4 * MIB, .buf = 4 * MIB };
	struct sl_log log;
	assert_int_equal(wal_open_with(&t, NULL, &o, NULL, &log), 0);
	r.log = &log;
	pthread_t th[3];
	assert_int_equal(pthread_create(&th[0], NULL, race_reader, &r), 0);
	assert_int_equal(pthread_create(&th[1], NULL, race_reader, &r), 0);
	assert_int_equal(pthread_create(&th[2], NULL, race_waiter, &r), 0);
	enum { BATCH_MAX = 1000 };
	struct sl_log_rec *recs = malloc(BATCH_MAX * sizeof(*recs));
	uint8_t *pool = malloc(BATCH_MAX * 32);
	assert_non_null(recs);
	assert_non_null(pool);
	uint64_t seq = 1, seed = 5;
	while (seq <= r.n) {
		size_t k = 1 + rnd_next(&seed) % BATCH_MAX;
		if (seq + k - 1 > r.n)
			k = r.n - seq + 1;
		size_t at = 0;
		for (size_t j = 0; j < k; j++, seq++) {
			uint32_t len = race_len(seq);
			for (uint32_t b = 0; b < len; b++)
				pool[at + b] = byte_of(seq, b);
			recs[j] = (struct sl_log_rec){ .seq = seq,
						       .rx_ns = rx_of(seq),
						       .data = pool + at,
						       .len = len,
						       .type = type_of(seq) };
			at += len;
		}
		int e = log.ops->append_batch(log.impl, recs, k);
		if (e)
			fail_msg("append_batch: %s", sl_strerror(e));
	}
	assert_int_equal(log.ops->wait_durable(log.impl, r.n, -1), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	free(recs);
	free(pool);
	if (r.reader_errors)
		fail_msg("%d reader errors, the first: %s", r.reader_errors, r.msg);
	assert_true(r.reader_records >= 2 * r.n);
	assert_true(r.waits > 0);
	struct sl_log_stats st = stats_of(&log);
	assert_int_equal(st.records, r.n);
	assert_int_equal(st.io_errors, 0);
	assert_int_equal(log.ops->close(log.impl), 0);
	/* Every record back after a reopen, in order. */
	struct model m = { 0 };
	for (uint64_t s = 1; s <= r.n; s++)
		model_push(&m, s, race_len(s));
	open_expect(&t, &o, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	pthread_mutex_destroy(&r.mu);
	tdir_free(&t);
}

/* ---- Faults through the os seam ----------------------------------------------------------- */

/* The part of m a reopen finds must be a prefix of m, at least `durable` long. */
static size_t recovered_prefix(const struct tdir *t, const struct wopt *o, const struct model *m,
			       uint64_t durable)
{
	struct sl_log log;
	struct checker ck = { .m = m };
	int r = wal_open_with(t, NULL, o, &ck, &log);
	if (ck.bad)
		fail_msg("recovery: %s", ck.msg);
	if (r)
		fail_msg("reopen after the fault: %s", sl_strerror(r));
	assert_true(ck.next >= model_lower(m, durable + 1));
	assert_int_equal(log.ops->durable_seq(log.impl), ck.next ? m->seq[ck.next - 1] : 0);
	check_cursor(&log, m, 1, ck.next);
	assert_int_equal(log.ops->close(log.impl), 0);
	return ck.next;
}

/* The log after an I/O error: it refuses appends, waiters get the error, close returns it, and
 * the error is counted once. */
static void check_failed(struct sl_log *log, int err, const struct model *m, size_t upto)
{
	assert_int_equal(log->ops->wait_durable(log->impl, model_last(m), -1), err);
	/* Waiting on what was durable before still succeeds. */
	uint64_t d = log->ops->durable_seq(log->impl);
	assert_int_equal(log->ops->wait_durable(log->impl, d, -1), 0);
	assert_int_equal(append_model(log, m, upto, upto + 1, 1), SL_EFAILED);
	assert_int_equal(append_model(log, m, upto, upto + 1, 1), SL_EFAILED);
	assert_int_equal(log->ops->wait_durable(log->impl, model_last(m), 1000), err);
	assert_int_equal(stats_of(log).io_errors, 1);
	assert_int_equal(log->ops->close(log->impl), err);
}

static void test_append_batch_enospc_on_pwrite(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	struct model m = { 0 };
	model_range(&m, 1, 3000, 200, 31);
	struct sl_log log;
	assert_int_equal(wal_open_with(&t, fault_os_get(fo), &small, NULL, &log), 0);
	assert_int_equal(append_model(&log, &m, 0, 1000, 100), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, m.seq[999], -1), 0);
	/* Writes to segment files fail from now on. */
	fault_os_match(fo, ".wal");
	fault_os_fail(fo, FAULT_PWRITE, 1, -ENOSPC, 1);
	int r = append_model(&log, &m, 1000, 2000, 100);
	assert_true(r == 0 || r == SL_EFAILED);
	check_failed(&log, -ENOSPC, &m, 2000);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	/* The failed write wrote nothing: exactly the durable records come back. */
	assert_int_equal(recovered_prefix(&t, &small, &m, m.seq[999]), 1000);
	/* And the log goes on from there. */
	struct sl_log l2;
	open_expect(&t, &small, &m, 1000, &l2);
	assert_int_equal(append_model(&l2, &m, 1000, 3000, 100), 0);
	assert_int_equal(l2.ops->wait_durable(l2.impl, model_last(&m), -1), 0);
	assert_int_equal(l2.ops->close(l2.impl), 0);
	open_expect(&t, &small, &m, m.n, &l2);
	assert_int_equal(l2.ops->close(l2.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

static void test_append_batch_eio_on_fdatasync(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	struct model m = { 0 };
	model_range(&m, 1, 2000, 200, 32);
	struct sl_log log;
	assert_int_equal(wal_open_with(&t, fault_os_get(fo), &small, NULL, &log), 0);
	assert_int_equal(append_model(&log, &m, 0, 700, 100), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, m.seq[699], -1), 0);
	fault_os_match(fo, ".wal");
	fault_os_fail(fo, FAULT_FDATASYNC, 1, -EIO, 1);
	int r = append_model(&log, &m, 700, 1500, 100);
	assert_true(r == 0 || r == SL_EFAILED);
	check_failed(&log, -EIO, &m, 1500);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	/* The data reached the page cache though its sync failed: a prefix of at least the
	 * durable part comes back, never anything out of order. */
	size_t got = recovered_prefix(&t, &small, &m, m.seq[699]);
	assert_true(got >= 700 && got <= 1500);
	model_free(&m);
	tdir_free(&t);
}

/* The preparer cannot make the next segment (ENOSPC on its zero fill, or its rename). */
static void preparer_fault_case(enum fault_op op)
{
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	struct model m = { 0 };
	model_range(&m, 1, 4000, 300, 33 + op);
	struct sl_log log;
	assert_int_equal(wal_open_with(&t, fault_os_get(fo), &small, NULL, &log), 0);
	/* Segment 1 by open, segment 2 ahead by the preparer: wait until it is there. */
	while (fault_os_calls(fo, FAULT_RENAME) < 2)
		usleep(1000);
	assert_int_equal(append_model(&log, &m, 0, 300, 100), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, m.seq[299], -1), 0);
	fault_os_match(fo, ".tmp");
	fault_os_fail(fo, op, 1, -ENOSPC, 1);
	/* Enough for several segments: segment 3 is needed and cannot be made. */
	int r = append_model(&log, &m, 300, 2000, 100);
	assert_true(r == 0 || r == SL_EFAILED);
	check_failed(&log, -ENOSPC, &m, 2000);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	size_t tmps;
	uint64_t idx[64];
	seg_indexes(&t, idx, 64, &tmps);
	assert_int_equal(tmps, 0); /* the failed segment was cleaned up */
	size_t got = recovered_prefix(&t, &small, &m, m.seq[299]);
	assert_true(got >= 300 && got < 2000);
	model_free(&m);
	tdir_free(&t);
}

static void test_append_batch_enospc_preparing_segment(void **state)
{
	(void)state;
	preparer_fault_case(FAULT_PWRITE);
	preparer_fault_case(FAULT_RENAME);
	preparer_fault_case(FAULT_FDATASYNC);
}

/* Every allocation (and every realloc) of an open failing in turn: -ENOMEM, nothing leaked,
 * no descriptor left open, and the log on disk unharmed. */
static void alloc_fault_case(const struct tdir *t, enum fault_op op, const struct model *m,
			     size_t expect)
{
	for (uint64_t nth = 1;; nth++) {
		struct fault_os *fo = fault_os_new();
		fault_os_fail(fo, op, nth, -ENOMEM, 0);
		struct sl_log log;
		struct checker ck = { .m = m };
		int r = wal_open_with(t, fault_os_get(fo), &small, &ck, &log);
		assert_false(ck.bad);
		if (r == 0) {
			/* The fault was past open's allocations, or hit one of a log thread
			 * (which fails the log: close says so). */
			uint64_t calls = fault_os_calls(fo, op);
			int rc = log.ops->close(log.impl);
			assert_true(rc == 0 || rc == -ENOMEM);
			assert_int_equal(fault_os_live_allocs(fo), 0);
			assert_int_equal(fault_os_open_fds(fo), 0);
			fault_os_free(fo);
			if (calls < nth)
				break;
			continue;
		}
		assert_int_equal(r, -ENOMEM);
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
		fault_os_free(fo);
		assert_true(nth < 1000);
	}
	struct sl_log log;
	open_expect(t, &small, m, expect, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
}

static void test_wal_open_enomem(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	/* An empty directory first, then one with three segments of records. */
	alloc_fault_case(&t, FAULT_MALLOC, &m, 0);
	alloc_fault_case(&t, FAULT_REALLOC, &m, 0);
	tdir_free(&t);
	tdir_new(&t);
	model_range(&m, 1, 600, 400, 34);
	write_log(&t, &small, &m, m.n, 100);
	alloc_fault_case(&t, FAULT_MALLOC, &m, m.n);
	alloc_fault_case(&t, FAULT_REALLOC, &m, m.n);
	/* Other failures at open: the error comes back and nothing leaks. */
	static const enum fault_op ops[] = { FAULT_OPEN, FAULT_LIST, FAULT_PREAD, FAULT_FSIZE,
					     FAULT_MKDIR };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct fault_os *fo = fault_os_new();
		fault_os_fail(fo, ops[i], 1, -EIO, 0);
		struct sl_log log;
		assert_int_equal(wal_open_with(&t, fault_os_get(fo), &small, NULL, &log), -EIO);
		assert_int_equal(fault_os_live_allocs(fo), 0);
		assert_int_equal(fault_os_open_fds(fo), 0);
		fault_os_free(fo);
	}
	struct sl_log log;
	open_expect(&t, &small, &m, m.n, &log);
	assert_int_equal(log.ops->close(log.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* ---- Crashes through the os twin ------------------------------------------------------------ */

struct crash_probe {
	struct sl_log *log;
	uint64_t durable_at_crash;
	int fired;
};

static void crash_probe_cb(void *arg)
{
	struct crash_probe *p = arg;
	/* On the crashing thread, before its write returns: durable_seq is exactly what the log
	 * had promised when the process died. */
	p->durable_at_crash = p->log->ops->durable_seq(p->log->impl);
	p->fired = 1;
}

/* Tear the first write of a known commit: the records wholly inside the kept bytes survive,
 * the partial one is a torn tail of exactly the kept bytes past them. */
static void test_wal_crash_torn_write_exact(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct model m = { 0 };
	model_range(&m, 1, 400, 200, 35);
	for (size_t i = 0; i < m.n; i++)
		m.len[i] += 20;
	struct fault_os *fo = fault_os_new();
	struct sl_log log;
	assert_int_equal(wal_open_with(&t, fault_os_get(fo), &medium, NULL, &log), 0);
	struct crash_probe probe = { .log = &log };
	fault_os_on_crash(fo, crash_probe_cb, &probe);
	assert_int_equal(append_model(&log, &m, 0, 200, 50), 0);
	assert_int_equal(log.ops->wait_durable(log.impl, m.seq[199], -1), 0);
	/* The next commit is records 200..399 in one buffer; keep 3 whole records and 17
	 * bytes of the 4th (inside its payload: 24-byte header + 13). */
	size_t keep = 0;
	for (size_t i = 200; i < 203; i++)
		keep += REC_HDR + m.len[i];
	fault_os_match(fo, ".wal");
	fault_os_tear(fo, 1, keep + REC_HDR + 13, 0);
	assert_int_equal(append_model(&log, &m, 200, 400, 200), 0);
	/* The dead process believes all went well: its "acknowledgements" are worthless. */
	assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
	assert_int_equal(log.ops->close(log.impl), 0);
	assert_true(probe.fired);
	assert_int_equal(probe.durable_at_crash, m.seq[199]);
	fault_os_free(fo);
	struct sl_log l2;
	open_expect(&t, &medium, &m, 203, &l2);
	assert_int_equal(stats_of(&l2).recovery_torn_bytes, REC_HDR + 13);
	assert_int_equal(l2.ops->close(l2.impl), 0);
	model_free(&m);
	tdir_free(&t);
}

/* Crash at random points (a torn segment write, a sync, the preparer's rename) while a writer
 * keeps appending: every record durable at the crash is there, nothing after a torn record. */
static void test_wal_crash_random_points(void **state)
{
	(void)state;
	uint64_t seed = 1234;
	size_t rounds = scaled(30, 6);
	for (size_t round = 0; round < rounds; round++) {
		struct tdir t;
		tdir_new(&t);
		struct model m = { 0 };
		model_range(&m, 1, 3000, 500, 100 + round);
		struct fault_os *fo = fault_os_new();
		struct sl_log log;
		assert_int_equal(wal_open_with(&t, fault_os_get(fo), &small, NULL, &log), 0);
		struct crash_probe probe = { .log = &log };
		fault_os_on_crash(fo, crash_probe_cb, &probe);
		size_t pre = rnd_next(&seed) % 800;
		assert_int_equal(append_model(&log, &m, 0, pre, 37), 0);
		int how = (int)(rnd_next(&seed) % 4);
		uint64_t nth = 1 + rnd_next(&seed) % 12;
		if (how <= 1) {
			fault_os_match(fo, ".wal");
			fault_os_tear(fo, nth, rnd_next(&seed) % 3000, 0);
		} else if (how == 2) {
			fault_os_match(fo, ".wal");
			fault_os_crash_at(fo, FAULT_FDATASYNC, nth);
		} else {
			fault_os_match(fo, ".tmp");
			fault_os_crash_at(fo, FAULT_RENAME, 1 + nth % 3);
		}
		for (size_t i = pre; i < m.n; i += 200) {
			size_t k = m.n - i < 200 ? m.n - i : 200;
			assert_int_equal(append_model(&log, &m, i, i + k, 1 + k / 3), 0);
			if (rnd_next(&seed) % 3 == 0)
				log.ops->sync_now(log.impl);
		}
		assert_int_equal(log.ops->wait_durable(log.impl, model_last(&m), -1), 0);
		assert_int_equal(log.ops->close(log.impl), 0);
		uint64_t durable = fault_os_crashed(fo) ? probe.durable_at_crash : model_last(&m);
		fault_os_free(fo);
		size_t got = recovered_prefix(&t, &small, &m, durable);
		assert_true(got <= m.n);
		/* The recovered log is sound and takes appends. */
		struct sl_log l2;
		struct model m2 = { 0 };
		for (size_t i = 0; i < got; i++)
			model_push(&m2, m.seq[i], m.len[i]);
		open_expect(&t, &small, &m2, got, &l2);
		assert_int_equal(stats_of(&l2).recovery_torn_bytes, 0);
		model_range(&m2, got + 1, 300, 500, 7);
		assert_int_equal(append_model(&l2, &m2, got, m2.n, 50), 0);
		assert_int_equal(l2.ops->close(l2.impl), 0);
		open_expect(&t, &small, &m2, m2.n, &l2);
		assert_int_equal(l2.ops->close(l2.impl), 0);
		model_free(&m2);
		model_free(&m);
		tdir_free(&t);
	}
}

/* ---- main ------------------------------------------------------------------------------------ */

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
	/* A hang (a deadlock in the log) fails the run instead of stalling it. */
	alarm(600);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wal_open_empty),
		cmocka_unit_test(test_wal_open_bad_config),
		cmocka_unit_test(test_append_batch_reopen_recovers_all),
		cmocka_unit_test(test_append_batch_seq_order_and_bad_records),
		cmocka_unit_test(test_wal_open_recover_callback_aborts),
		cmocka_unit_test(test_wait_durable_group_commit),
		cmocka_unit_test(test_sync_now_ends_linger),
		cmocka_unit_test(test_wait_durable_timeout),
		cmocka_unit_test(test_durable_seq_monotonic),
		cmocka_unit_test(test_append_batch_rotates_segments),
		cmocka_unit_test(test_truncate_before_drops_whole_segments),
		cmocka_unit_test(test_append_batch_many_segments_few_fds),
		cmocka_unit_test(test_wal_close_after_burst_past_preparer),
		cmocka_unit_test(test_wal_open_torn_tail_garbage),
		cmocka_unit_test(test_wal_open_torn_tail_zeroed_end),
		cmocka_unit_test(test_wal_open_torn_tail_truncated_file),
		cmocka_unit_test(test_wal_open_torn_tail_partial_header),
		cmocka_unit_test(test_wal_open_torn_tail_last_records),
		cmocka_unit_test(test_wal_open_bad_header_on_empty_last_segment),
		cmocka_unit_test(test_wal_open_corrupt_record_in_last_segment),
		cmocka_unit_test(test_wal_open_corrupt_record_in_earlier_segment),
		cmocka_unit_test(test_wal_open_hole_in_earlier_segment),
		cmocka_unit_test(test_wal_open_bad_segment_header_in_middle),
		cmocka_unit_test(test_wal_open_bad_header_on_last_data_segment),
		cmocka_unit_test(test_wal_open_rdonly_changes_nothing),
		cmocka_unit_test(test_cursor_next_after_more_durable),
		cmocka_unit_test(test_append_batch_races_cursors_and_waiters),
		cmocka_unit_test(test_append_batch_enospc_on_pwrite),
		cmocka_unit_test(test_append_batch_eio_on_fdatasync),
		cmocka_unit_test(test_append_batch_enospc_preparing_segment),
		cmocka_unit_test(test_wal_open_enomem),
		cmocka_unit_test(test_wal_crash_torn_write_exact),
		cmocka_unit_test(test_wal_crash_random_points),
	};
	return cmocka_run_group_tests_name("wal", tests, group_setup, group_teardown);
}
