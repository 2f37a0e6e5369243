/* manifest.c - the set of live tables (see manifest.h): an append-only log of CRC'd edits in
 * DIR/MANIFEST-<n>, replayed into refcounted immutable versions and rewritten as one snapshot
 * when it grows, with DIR/CURRENT switched atomically. manifest sits on os and accel only and
 * knows nothing of what tables contain: numbers, levels, key ranges and sizes are all it sees.
 *
 * On disk, little-endian:
 *   MANIFEST-<n:016x>: a file header, then records back to back.
 *     header (40 bytes): "SLUICEMF", u32 version (1), u32 header length (40), u64 n (the
 *       number in the file's own name), u64 base_edits, u32 reserved (0), u32 CRC32C of the
 *       36 bytes before it.
 *     record: u32 payload length, u32 CRC32C of the payload, then the payload, one edit:
 *       u64 checkpoint_seq (its value after the edit), u64 next_file_no, u32 n_add, u32 n_del,
 *       n_add tables, each u64 file_no, file_bytes, entries, min_seq, max_seq; u32 level;
 *         u16 smallest_len, largest_len (48 bytes), then the smallest key's bytes and the
 *         largest key's bytes;
 *       n_del u64 file numbers.
 *     A record's deletes apply before its adds (so one edit may move a table between levels).
 *     The first record of every file is a snapshot: the whole live set as adds, on an empty
 *     set, standing for base_edits edits. A new store starts with an empty snapshot.
 *   CURRENT: "MANIFEST-<n:016x>\n" then "crc32c <8 hex digits>\n" (42 bytes), the CRC32C of
 *     the first line, newline included. Written as CURRENT.tmp, fsync, rename, fsync(DIR).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "sluice.h"

#define MF_MAGIC	 "SLUICEMF"
#define MF_VERSION	 1
#define FILE_HDR_LEN	 40
#define REC_HDR_LEN	 8
#define EDIT_HDR_LEN	 24
#define TABLE_FIXED_LEN	 48
#define MAX_PAYLOAD	 (1u << 30)
#define DEFAULT_REWRITE	 (4ull << 20)
#define CURRENT_LINE_LEN 26 /* "MANIFEST-" + 16 hex digits + "\n" */
#define CURRENT_LEN	 42 /* that line + "crc32c " + 8 hex digits + "\n" */
#define MF_NAME_LEN	 25 /* "MANIFEST-" + 16 hex digits */
#define DIR_CAP		 4000
#define PATH_CAP	 4096
/* A new store's file: the header and an empty snapshot. A MANIFEST-1 no longer than this
 * with no CURRENT beside it is a creation that crashed before CURRENT was renamed in. */
#define EMPTY_FILE_LEN (FILE_HDR_LEN + REC_HDR_LEN + EDIT_HDR_LEN)

struct file_hdr_disk {
	char magic[8];
	uint32_t version;
	uint32_t hdr_len;
	uint64_t number;
	uint64_t base_edits;
	uint32_t reserved;
	uint32_t crc; /* CRC32C of bytes [0, 36) */
};
_Static_assert(sizeof(struct file_hdr_disk) == FILE_HDR_LEN, "file header is 40 bytes");
_Static_assert(offsetof(struct file_hdr_disk, crc) == 36, "header CRC covers 36 bytes");

struct rec_hdr_disk {
	uint32_t len; /* of the payload */
	uint32_t crc; /* CRC32C of the payload */
};
_Static_assert(sizeof(struct rec_hdr_disk) == REC_HDR_LEN, "record header is 8 bytes");

struct edit_hdr_disk {
	uint64_t checkpoint_seq;
	uint64_t next_file_no;
	uint32_t n_add;
	uint32_t n_del;
};
_Static_assert(sizeof(struct edit_hdr_disk) == EDIT_HDR_LEN, "edit header is 24 bytes");

/* The fixed part of a table; its two keys follow it. */
struct table_disk {
	uint64_t file_no;
	uint64_t file_bytes;
	uint64_t entries;
	uint64_t min_seq;
	uint64_t max_seq;
	uint32_t level;
	uint16_t smallest_len;
	uint16_t largest_len;
};
_Static_assert(sizeof(struct table_disk) == TABLE_FIXED_LEN, "table fixed part is 48 bytes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk integers are little-endian");
_Static_assert(SL_MANIFEST_MAX_KEY <= UINT16_MAX, "key lengths are stored as u16");

/* A version and what frees it: one allocation, the tables of every level in v.tables[] point
 * into t[]. It carries its os so a release after sl__manifest_close still works. */
struct version {
	struct sl_version v; /* first: a struct sl_version * of ours is a struct version * */
	const struct sl_os *os;
	struct sl_table_info t[];
};

/* Where verify wants the first bad spot. */
struct report {
	char *path;
	size_t cap;
	uint64_t off;
};

struct sl_manifest {
	const struct sl_os *os;
	struct sl_accel *accel;
	int rdonly;
	struct report *rp; /* verify only, during open */
	char dir[DIR_CAP];

	/* The writer lock: apply, rewrite and everything below up to the atomics. Open fills
	 * them before anyone else sees m. */
	pthread_mutex_t mu;
	int fd;		     /* the live manifest, read-write; -1 when rdonly */
	uint64_t number;     /* n of the live MANIFEST-n; 0 when rdonly and there is none */
	char path[PATH_CAP]; /* its path ("" when there is none) */
	uint64_t snap_bytes; /* end of its snapshot record */
	uint64_t torn_off;   /* where a torn tail was dropped at open (0: none) */
	uint8_t *buf;	     /* serialization buffer, kept between edits */
	size_t buf_cap;
	int failed;		 /* a failed append could not be undone: no more edits */
	int dir_sync_pending;	 /* CURRENT was renamed but the directory sync failed */
	char old_path[PATH_CAP]; /* the file to delete once that sync succeeds */

	/* Read by anyone, with __atomic builtins (relaxed: each is a lone counter). Builtins,
	 * not ck_pr: ThreadSanitizer understands their ordering, not ck_pr's inline asm. */
	uint64_t file_bytes;
	uint64_t rewrite_bytes;
	uint64_t next_file_no;

	/* The current version. vmu is held only to swap the pointer (apply) or to take a
	 * reference (acquire): a reader never sees a version whose last reference is gone. */
	pthread_mutex_t vmu;
	struct sl_version *cur;
};

/* ---- Small helpers ------------------------------------------------------------------------ */

static uint32_t crc_of(const struct sl_manifest *m, const void *p, size_t n)
{
	return sl__accel_crc32c(m->accel, p, n);
}

static void mf_path(const struct sl_manifest *m, uint64_t number, char *out, size_t cap)
{
	snprintf(out, cap, "%s/MANIFEST-%016" PRIx64, m->dir, number);
}

static void dir_file(const struct sl_manifest *m, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", m->dir, name);
}

/* Lowercase hex digits only, exactly n of them: a name or CURRENT written by anyone else is
 * not ours. */
static int parse_hex(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* MANIFEST-<16 hex digits>, nonzero: 0 and *number, or -1. */
static int parse_mf_name(const char *name, uint64_t *number)
{
	if (strlen(name) != MF_NAME_LEN || memcmp(name, "MANIFEST-", 9))
		return -1;
	if (parse_hex(name + 9, 16, number) < 0 || !*number)
		return -1;
	return 0;
}

static int keycmp(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
	uint32_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* A level's order: level 0 newest (highest file number) first, the others by smallest key. */
static int level_cmp(uint32_t level, const struct sl_table_info *a, const struct sl_table_info *b)
{
	if (level == 0)
		return a->file_no > b->file_no ? -1 : a->file_no < b->file_no;
	return keycmp(a->smallest, a->smallest_len, b->smallest, b->smallest_len);
}

/* Grow the array at *pp (of elem-byte elements, *cap of them) to hold need. The pointer is
 * passed as void * and copied with memcpy so one helper serves every element type. */
static int grow(const struct sl_os *os, void *pp, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;
	while (n < need) {
		if (n > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		n *= 2;
	}
	void *p;
	memcpy(&p, pp, sizeof(p));
	void *q = os->ops->realloc(os->ctx, p, n * elem);
	if (!q)
		return -ENOMEM;
	memcpy(pp, &q, sizeof(q));
	*cap = n;
	return 0;
}

/* Report bad data at path:off on stderr and to verify's caller; returns err. */
__attribute__((format(printf, 5, 6))) static int
bad(struct sl_manifest *m, int err, const char *path, uint64_t off, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sluice: manifest: %s at offset %" PRIu64 ": %s\n", path, off, why);
	if (m->rp) {
		if (m->rp->path && m->rp->cap)
			snprintf(m->rp->path, m->rp->cap, "%s", path);
		m->rp->off = off;
	}
	return err;
}

/* ---- Versions ----------------------------------------------------------------------------- */

static void version_put(struct sl_version *sv)
{
	if (!sv)
		return;
	struct version *v = (struct version *)sv;
	/* Release: everything this holder did with the version happens before the count drops.
	 * Acquire: the thread that frees sees all of it. */
	if (__atomic_sub_fetch(&v->v.refs, 1, __ATOMIC_ACQ_REL) == 0)
		sl__os_free(v->os, v);
}

/* Make nv current and drop the manifest's reference to the one it replaces (which lives on
 * while readers hold it). */
static void install(struct sl_manifest *m, struct sl_version *nv)
{
	pthread_mutex_lock(&m->vmu);
	struct sl_version *old = m->cur;
	m->cur = nv;
	pthread_mutex_unlock(&m->vmu);
	version_put(old);
}

/* ---- Building versions -------------------------------------------------------------------- */

/* An edit, from apply's caller or decoded from a record. */
struct edit_view {
	uint64_t checkpoint_seq; /* the value after the edit */
	uint64_t next_file_no;
	const struct sl_table_info *add;
	size_t n_add;
	const uint64_t *del;
	size_t n_del;
};

struct live_ref {
	uint64_t file_no;
	uint32_t slot; /* in pool */
	uint32_t level;
};

/* A mutable set of live tables that checks each change as it is made: replay runs every
 * record through one builder (a record costs O(changes * log n) plus small memmoves, not a
 * copy of the whole set) and apply runs its edit through a copy of the current version. */
struct builder {
	const struct sl_os *os;
	struct sl_table_info *pool; /* every table ever added; deleted slots are not reused */
	size_t pool_n, pool_cap;
	struct live_ref *live; /* the live tables by file number */
	size_t live_n, live_cap;
	uint32_t *lv[SL_LEVELS]; /* slots of each level's tables, in the level's order */
	size_t lv_n[SL_LEVELS], lv_cap[SL_LEVELS];
	uint64_t checkpoint_seq, next_file_no, edits;
};

static void builder_init(struct builder *b, const struct sl_os *os)
{
	memset(b, 0, sizeof(*b));
	b->os = os;
	b->next_file_no = 1;
}

static void builder_release(struct builder *b)
{
	const struct sl_os *os = b->os;
	os->ops->free(os->ctx, b->pool);
	os->ops->free(os->ctx, b->live);
	for (int l = 0; l < SL_LEVELS; l++)
		os->ops->free(os->ctx, b->lv[l]);
	memset(b, 0, sizeof(*b));
	b->os = os;
}

/* Index of file_no in b->live, or where it would go (*found 0). */
static size_t live_find(const struct builder *b, uint64_t file_no, int *found)
{
	size_t lo = 0, hi = b->live_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->live[mid].file_no < file_no)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < b->live_n && b->live[lo].file_no == file_no;
	return lo;
}

/* First index of level whose table does not come before t in the level's order. */
static size_t level_lower_bound(const struct builder *b, uint32_t level,
				const struct sl_table_info *t)
{
	size_t lo = 0, hi = b->lv_n[level];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (level_cmp(level, &b->pool[b->lv[level][mid]], t) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int live_cmp(const void *a, const void *b)
{
	const struct live_ref *x = a, *y = b;
	return x->file_no < y->file_no ? -1 : x->file_no > y->file_no;
}

/* Fill an empty builder with v's tables (v already obeys every rule). */
static int builder_load(struct builder *b, const struct sl_version *v)
{
	size_t total = 0;
	for (int l = 0; l < SL_LEVELS; l++)
		total += v->n[l];
	int r = grow(b->os, &b->pool, &b->pool_cap, total, sizeof(*b->pool));
	if (!r)
		r = grow(b->os, &b->live, &b->live_cap, total, sizeof(*b->live));
	for (int l = 0; l < SL_LEVELS && !r; l++)
		r = grow(b->os, &b->lv[l], &b->lv_cap[l], v->n[l], sizeof(*b->lv[l]));
	if (r)
		return r;
	for (int l = 0; l < SL_LEVELS; l++) {
		for (size_t i = 0; i < v->n[l]; i++) {
			uint32_t slot = (uint32_t)b->pool_n++;
			b->pool[slot] = v->tables[l][i];
			b->lv[l][b->lv_n[l]++] = slot;
			b->live[b->live_n++] =
				(struct live_ref){ v->tables[l][i].file_no, slot, (uint32_t)l };
		}
	}
	if (b->live_n)
		qsort(b->live, b->live_n, sizeof(*b->live), live_cmp);
	b->checkpoint_seq = v->checkpoint_seq;
	b->next_file_no = v->next_file_no;
	b->edits = v->edits;
	return 0;
}

static int builder_del(struct builder *b, uint64_t file_no, char *why, size_t cap)
{
	int found;
	size_t i = live_find(b, file_no, &found);
	if (!found) {
		snprintf(why, cap, "deletes table %016" PRIx64 ", which is not live", file_no);
		return -EINVAL;
	}
	struct live_ref ref = b->live[i];
	memmove(&b->live[i], &b->live[i + 1], (b->live_n - i - 1) * sizeof(*b->live));
	b->live_n--;
	/* File numbers (level 0) and smallest keys (levels >= 1, which never overlap) are
	 * unique within a level: the lower bound is the table itself. */
	uint32_t l = ref.level;
	size_t j = level_lower_bound(b, l, &b->pool[ref.slot]);
	if (j >= b->lv_n[l] || b->lv[l][j] != ref.slot) {
		snprintf(why, cap, "table %016" PRIx64 " missing from level %u", file_no, l);
		return -EINVAL; /* cannot happen: the builder keeps both indexes in step */
	}
	memmove(&b->lv[l][j], &b->lv[l][j + 1], (b->lv_n[l] - j - 1) * sizeof(*b->lv[l]));
	b->lv_n[l]--;
	return 0;
}

static int check_table(const struct sl_table_info *t, uint64_t next_file_no, char *why, size_t cap)
{
	if (t->level >= SL_LEVELS) {
		snprintf(why, cap, "table %016" PRIx64 " at level %u (levels are 0..%d)",
			 t->file_no, t->level, SL_LEVELS - 1);
		return -EINVAL;
	}
	if (t->smallest_len > SL_MANIFEST_MAX_KEY || t->largest_len > SL_MANIFEST_MAX_KEY) {
		snprintf(why, cap, "table %016" PRIx64 " has a key longer than %d bytes",
			 t->file_no, SL_MANIFEST_MAX_KEY);
		return -EINVAL;
	}
	if (keycmp(t->smallest, t->smallest_len, t->largest, t->largest_len) > 0) {
		snprintf(why, cap, "table %016" PRIx64 " has its smallest key above its largest",
			 t->file_no);
		return -EINVAL;
	}
	if (t->file_no == 0 || t->file_no >= next_file_no) {
		snprintf(why, cap, "table number %016" PRIx64 " not in 1..next_file_no %016" PRIx64,
			 t->file_no, next_file_no);
		return -EINVAL;
	}
	return 0;
}

static int builder_add(struct builder *b, const struct sl_table_info *t, uint64_t next_file_no,
		       char *why, size_t cap)
{
	int r = check_table(t, next_file_no, why, cap);
	if (r)
		return r;
	int found;
	size_t i = live_find(b, t->file_no, &found);
	if (found) {
		snprintf(why, cap, "adds table %016" PRIx64 ", which is live", t->file_no);
		return -EINVAL;
	}
	uint32_t l = t->level;
	size_t j = level_lower_bound(b, l, t);
	if (l > 0) {
		/* Sorted by smallest key and disjoint: only the neighbours can overlap t. */
		const struct sl_table_info *o = NULL;
		if (j < b->lv_n[l] &&
		    keycmp(t->largest, t->largest_len, b->pool[b->lv[l][j]].smallest,
			   b->pool[b->lv[l][j]].smallest_len) >= 0)
			o = &b->pool[b->lv[l][j]];
		else if (j > 0 && keycmp(b->pool[b->lv[l][j - 1]].largest,
					 b->pool[b->lv[l][j - 1]].largest_len, t->smallest,
					 t->smallest_len) >= 0)
			o = &b->pool[b->lv[l][j - 1]];
		if (o) {
			snprintf(why, cap,
				 "table %016" PRIx64 " overlaps table %016" PRIx64 " at level %u",
				 t->file_no, o->file_no, l);
			return -EINVAL;
		}
	}
	if (b->pool_n >= UINT32_MAX)
		return -ENOMEM;
	if ((r = grow(b->os, &b->pool, &b->pool_cap, b->pool_n + 1, sizeof(*b->pool))) ||
	    (r = grow(b->os, &b->live, &b->live_cap, b->live_n + 1, sizeof(*b->live))) ||
	    (r = grow(b->os, &b->lv[l], &b->lv_cap[l], b->lv_n[l] + 1, sizeof(*b->lv[l]))))
		return r;
	uint32_t slot = (uint32_t)b->pool_n++;
	/* Copy the keys' bytes only: the rest of the arrays is zero in every version, so two
	 * versions with equal tables compare equal byte for byte. */
	struct sl_table_info *p = &b->pool[slot];
	memset(p, 0, sizeof(*p));
	p->file_no = t->file_no;
	p->level = t->level;
	p->file_bytes = t->file_bytes;
	p->entries = t->entries;
	memcpy(p->smallest, t->smallest, t->smallest_len);
	memcpy(p->largest, t->largest, t->largest_len);
	p->smallest_len = t->smallest_len;
	p->largest_len = t->largest_len;
	p->min_seq = t->min_seq;
	p->max_seq = t->max_seq;
	memmove(&b->live[i + 1], &b->live[i], (b->live_n - i) * sizeof(*b->live));
	b->live[i] = (struct live_ref){ t->file_no, slot, l };
	b->live_n++;
	memmove(&b->lv[l][j + 1], &b->lv[l][j], (b->lv_n[l] - j) * sizeof(*b->lv[l]));
	b->lv[l][j] = slot;
	b->lv_n[l]++;
	return 0;
}

/* Apply one edit: 0, -EINVAL with why (the builder is then half changed: throw it away), or
 * -ENOMEM. Deletes first, then adds. */
static int builder_apply(struct builder *b, const struct edit_view *e, char *why, size_t cap)
{
	if (e->checkpoint_seq < b->checkpoint_seq) {
		snprintf(why, cap, "checkpoint %" PRIu64 " below the current %" PRIu64,
			 e->checkpoint_seq, b->checkpoint_seq);
		return -EINVAL;
	}
	if (e->next_file_no < b->next_file_no) {
		snprintf(why, cap, "next file number %016" PRIx64 " below the current %016" PRIx64,
			 e->next_file_no, b->next_file_no);
		return -EINVAL;
	}
	int r;
	for (size_t i = 0; i < e->n_del; i++)
		if ((r = builder_del(b, e->del[i], why, cap)))
			return r;
	for (size_t i = 0; i < e->n_add; i++)
		if ((r = builder_add(b, &e->add[i], e->next_file_no, why, cap)))
			return r;
	b->checkpoint_seq = e->checkpoint_seq;
	b->next_file_no = e->next_file_no;
	b->edits++;
	return 0;
}

/* The builder's set as a new version with one reference, or NULL when out of memory. */
static struct sl_version *builder_freeze(const struct builder *b)
{
	struct version *v =
		sl__os_malloc(b->os, sizeof(*v) + b->live_n * sizeof(struct sl_table_info));
	if (!v)
		return NULL;
	memset(&v->v, 0, sizeof(v->v));
	v->os = b->os;
	size_t k = 0;
	for (int l = 0; l < SL_LEVELS; l++) {
		v->v.n[l] = b->lv_n[l];
		v->v.tables[l] = b->lv_n[l] ? &v->t[k] : NULL;
		for (size_t i = 0; i < b->lv_n[l]; i++)
			v->t[k++] = b->pool[b->lv[l][i]];
	}
	v->v.refs = 1;
	v->v.checkpoint_seq = b->checkpoint_seq;
	v->v.next_file_no = b->next_file_no;
	v->v.edits = b->edits;
	return &v->v;
}

/* ---- Encoding ----------------------------------------------------------------------------- */

static size_t table_len(const struct sl_table_info *t)
{
	return TABLE_FIXED_LEN + t->smallest_len + t->largest_len;
}

static uint8_t *put_table(uint8_t *p, const struct sl_table_info *t)
{
	struct table_disk d = {
		.file_no = t->file_no,
		.file_bytes = t->file_bytes,
		.entries = t->entries,
		.min_seq = t->min_seq,
		.max_seq = t->max_seq,
		.level = t->level,
		.smallest_len = (uint16_t)t->smallest_len,
		.largest_len = (uint16_t)t->largest_len,
	};
	memcpy(p, &d, sizeof(d));
	p += sizeof(d);
	memcpy(p, t->smallest, t->smallest_len);
	p += t->smallest_len;
	memcpy(p, t->largest, t->largest_len);
	return p + t->largest_len;
}

static uint8_t *put_edit_hdr(uint8_t *p, uint64_t checkpoint_seq, uint64_t next_file_no,
			     size_t n_add, size_t n_del)
{
	struct edit_hdr_disk h = {
		.checkpoint_seq = checkpoint_seq,
		.next_file_no = next_file_no,
		.n_add = (uint32_t)n_add,
		.n_del = (uint32_t)n_del,
	};
	memcpy(p, &h, sizeof(h));
	return p + sizeof(h);
}

/* Fill in the length and CRC of the record at rec whose payload is len bytes. */
static void seal_record(const struct sl_manifest *m, uint8_t *rec, size_t len)
{
	struct rec_hdr_disk h = { .len = (uint32_t)len, .crc = crc_of(m, rec + REC_HDR_LEN, len) };
	memcpy(rec, &h, sizeof(h));
}

static int buf_reserve(struct sl_manifest *m, size_t n)
{
	return grow(m->os, &m->buf, &m->buf_cap, n, 1);
}

/* The record of an edit (already checked by a builder) in m->buf; *len its size. */
static int encode_edit(struct sl_manifest *m, const struct edit_view *e, size_t *len)
{
	size_t payload = EDIT_HDR_LEN + e->n_del * 8;
	for (size_t i = 0; i < e->n_add; i++)
		payload += table_len(&e->add[i]);
	if (payload > MAX_PAYLOAD || e->n_add > UINT32_MAX || e->n_del > UINT32_MAX)
		return -EINVAL;
	int r = buf_reserve(m, REC_HDR_LEN + payload);
	if (r)
		return r;
	uint8_t *p = put_edit_hdr(m->buf + REC_HDR_LEN, e->checkpoint_seq, e->next_file_no,
				  e->n_add, e->n_del);
	for (size_t i = 0; i < e->n_add; i++)
		p = put_table(p, &e->add[i]);
	for (size_t i = 0; i < e->n_del; i++) {
		memcpy(p, &e->del[i], 8);
		p += 8;
	}
	seal_record(m, m->buf, payload);
	*len = REC_HDR_LEN + payload;
	return 0;
}

/* A whole manifest file holding v as its snapshot, in m->buf; *len its size. */
static int encode_file(struct sl_manifest *m, const struct sl_version *v, uint64_t number,
		       size_t *len)
{
	size_t payload = EDIT_HDR_LEN, n = 0;
	for (int l = 0; l < SL_LEVELS; l++) {
		n += v->n[l];
		for (size_t i = 0; i < v->n[l]; i++)
			payload += table_len(&v->tables[l][i]);
	}
	if (payload > MAX_PAYLOAD || n > UINT32_MAX)
		return -EFBIG;
	int r = buf_reserve(m, FILE_HDR_LEN + REC_HDR_LEN + payload);
	if (r)
		return r;
	struct file_hdr_disk h = {
		.version = MF_VERSION,
		.hdr_len = FILE_HDR_LEN,
		.number = number,
		.base_edits = v->edits,
	};
	memcpy(h.magic, MF_MAGIC, 8);
	h.crc = crc_of(m, &h, offsetof(struct file_hdr_disk, crc));
	memcpy(m->buf, &h, sizeof(h));
	uint8_t *rec = m->buf + FILE_HDR_LEN;
	uint8_t *p = put_edit_hdr(rec + REC_HDR_LEN, v->checkpoint_seq, v->next_file_no, n, 0);
	for (int l = 0; l < SL_LEVELS; l++)
		for (size_t i = 0; i < v->n[l]; i++)
			p = put_table(p, &v->tables[l][i]);
	seal_record(m, rec, payload);
	*len = FILE_HDR_LEN + REC_HDR_LEN + payload;
	return 0;
}

/* ---- Decoding ----------------------------------------------------------------------------- */

struct scratch {
	struct sl_table_info *add;
	size_t add_cap;
	uint64_t *del;
	size_t del_cap;
};

/* 1 when an intact record (its length fits what follows, its counts fit its length, its CRC
 * matches) starts at off, *len its payload length; 0 otherwise, with why. */
static int record_at(const struct sl_manifest *m, const uint8_t *d, uint64_t size, uint64_t off,
		     uint32_t *len, const char **why)
{
	if (size - off < REC_HDR_LEN) {
		*why = "record header cut short";
		return 0;
	}
	struct rec_hdr_disk h;
	memcpy(&h, d + off, sizeof(h));
	if (h.len < EDIT_HDR_LEN || h.len > MAX_PAYLOAD) {
		*why = "bad record length";
		return 0;
	}
	if (size - off - REC_HDR_LEN < h.len) {
		*why = "record runs past the end of the file";
		return 0;
	}
	struct edit_hdr_disk e;
	memcpy(&e, d + off + REC_HDR_LEN, sizeof(e));
	if (EDIT_HDR_LEN + (uint64_t)e.n_add * TABLE_FIXED_LEN + (uint64_t)e.n_del * 8 > h.len) {
		*why = "record counts exceed its length";
		return 0;
	}
	if (crc_of(m, d + off + REC_HDR_LEN, h.len) != h.crc) {
		*why = "checksum mismatch";
		return 0;
	}
	*len = h.len;
	return 1;
}

/* Whether an intact record starts anywhere in [from, size): a bad record with one after it
 * is damage in the middle, not a torn tail (apply only ever appends at the end). */
static int record_after(const struct sl_manifest *m, const uint8_t *d, uint64_t size, uint64_t from)
{
	uint32_t len;
	const char *why;
	for (uint64_t off = from; off + REC_HDR_LEN + EDIT_HDR_LEN <= size; off++)
		if (record_at(m, d, size, off, &len, &why))
			return 1;
	return 0;
}

/* The edit in an intact payload p of len bytes: 0, -EINVAL (why), or -ENOMEM. */
static int decode_edit(const struct sl_os *os, const uint8_t *p, uint32_t len, struct scratch *s,
		       struct edit_view *e, const char **why)
{
	struct edit_hdr_disk h;
	memcpy(&h, p, sizeof(h));
	int r = grow(os, &s->add, &s->add_cap, h.n_add, sizeof(*s->add));
	if (!r)
		r = grow(os, &s->del, &s->del_cap, h.n_del, sizeof(*s->del));
	if (r)
		return r;
	size_t q = EDIT_HDR_LEN;
	for (uint32_t i = 0; i < h.n_add; i++) {
		struct table_disk t;
		if (len - q < TABLE_FIXED_LEN) {
			*why = "table runs past the record";
			return -EINVAL;
		}
		memcpy(&t, p + q, sizeof(t));
		q += TABLE_FIXED_LEN;
		if (t.smallest_len > SL_MANIFEST_MAX_KEY || t.largest_len > SL_MANIFEST_MAX_KEY) {
			*why = "key longer than the maximum";
			return -EINVAL;
		}
		if (len - q < (size_t)t.smallest_len + t.largest_len) {
			*why = "key runs past the record";
			return -EINVAL;
		}
		struct sl_table_info *a = &s->add[i];
		memset(a, 0, sizeof(*a));
		a->file_no = t.file_no;
		a->level = t.level;
		a->file_bytes = t.file_bytes;
		a->entries = t.entries;
		a->min_seq = t.min_seq;
		a->max_seq = t.max_seq;
		a->smallest_len = t.smallest_len;
		a->largest_len = t.largest_len;
		memcpy(a->smallest, p + q, t.smallest_len);
		q += t.smallest_len;
		memcpy(a->largest, p + q, t.largest_len);
		q += t.largest_len;
	}
	if (len - q != (size_t)h.n_del * 8) {
		*why = "record length does not match its contents";
		return -EINVAL;
	}
	for (uint32_t i = 0; i < h.n_del; i++)
		memcpy(&s->del[i], p + q + (size_t)i * 8, 8);
	*e = (struct edit_view){
		.checkpoint_seq = h.checkpoint_seq,
		.next_file_no = h.next_file_no,
		.add = s->add,
		.n_add = h.n_add,
		.del = s->del,
		.n_del = h.n_del,
	};
	return 0;
}

/* ---- Replay ------------------------------------------------------------------------------- */

static int check_file_hdr(struct sl_manifest *m, const char *path, const uint8_t *d, uint64_t size,
			  uint64_t number, uint64_t *base_edits)
{
	if (size < FILE_HDR_LEN)
		return bad(m, SL_ECORRUPT, path, 0, "file shorter than its header");
	struct file_hdr_disk h;
	memcpy(&h, d, sizeof(h));
	if (memcmp(h.magic, MF_MAGIC, 8))
		return bad(m, SL_ECORRUPT, path, 0, "bad magic");
	if (crc_of(m, d, offsetof(struct file_hdr_disk, crc)) != h.crc)
		return bad(m, SL_ECORRUPT, path, 0, "header checksum mismatch");
	if (h.version != MF_VERSION)
		return bad(m, SL_EVERSION, path, 0, "format version %u (this build reads %d)",
			   h.version, MF_VERSION);
	if (h.hdr_len != FILE_HDR_LEN || h.reserved)
		return bad(m, SL_ECORRUPT, path, 0, "bad header length or reserved field");
	if (h.number != number)
		return bad(m, SL_ECORRUPT, path, 0, "header says MANIFEST-%016" PRIx64, h.number);
	*base_edits = h.base_edits;
	return 0;
}

/* Replay the file's bytes d[0, size) into a builder. *good_end: the end of the last good
 * record (a torn tail after it is dropped); *snap_end: the end of the snapshot record. */
static int replay(struct sl_manifest *m, const char *path, const uint8_t *d, uint64_t size,
		  uint64_t number, struct builder *b, uint64_t *good_end, uint64_t *snap_end)
{
	uint64_t base_edits = 0;
	int r = check_file_hdr(m, path, d, size, number, &base_edits);
	if (r)
		return r;
	struct scratch s = { 0 };
	uint64_t off = FILE_HDR_LEN;
	uint64_t records = 0;
	while (off < size) {
		uint32_t len;
		const char *why = NULL;
		if (!record_at(m, d, size, off, &len, &why)) {
			/* The snapshot was synced before CURRENT named this file: it cannot be
			 * torn. Any other bad record is a torn append if it is the last thing in
			 * the file. */
			if (!records) {
				r = bad(m, SL_ECORRUPT, path, off, "snapshot record: %s", why);
				goto out_free;
			}
			if (record_after(m, d, size, off + 1)) {
				r = bad(m, SL_ECORRUPT, path, off,
					"%s, with a good record after it", why);
				goto out_free;
			}
			break;
		}
		struct edit_view e;
		r = decode_edit(m->os, d + off + REC_HDR_LEN, len, &s, &e, &why);
		if (r == -EINVAL)
			r = bad(m, SL_ECORRUPT, path, off, "%s", why);
		if (r)
			goto out_free;
		char buf[160];
		r = builder_apply(b, &e, buf, sizeof(buf));
		if (r == -EINVAL)
			r = bad(m, SL_ECORRUPT, path, off, "%s", buf);
		if (r)
			goto out_free;
		off += REC_HDR_LEN + len;
		if (!records++) {
			b->edits = base_edits; /* the snapshot stands for them */
			*snap_end = off;
		}
	}
	if (!records) {
		r = bad(m, SL_ECORRUPT, path, off, "no snapshot record");
		goto out_free;
	}
	*good_end = off;
	r = 0;
out_free:
	m->os->ops->free(m->os->ctx, s.add);
	m->os->ops->free(m->os->ctx, s.del);
	return r;
}

/* Read and replay MANIFEST-number, truncate a torn tail unless rdonly, and install the result
 * as the current version; keeps the file open for appends unless rdonly. */
static int load(struct sl_manifest *m, uint64_t number)
{
	const struct sl_os *os = m->os;
	char path[PATH_CAP];
	mf_path(m, number, path, sizeof(path));
	int fd = os->ops->open(os->ctx, path, m->rdonly ? O_RDONLY : O_RDWR, 0);
	if (fd == -ENOENT) {
		char cur[PATH_CAP];
		dir_file(m, "CURRENT", cur, sizeof(cur));
		return bad(m, SL_ECORRUPT, cur, 0, "names %s, which does not exist", path);
	}
	if (fd < 0)
		return fd;
	uint64_t size;
	int r = os->ops->fsize(os->ctx, fd, &size);
	if (r)
		goto out_close;
	if (size > SIZE_MAX - 1) {
		r = -EFBIG;
		goto out_close;
	}
	uint8_t *d = sl__os_malloc(os, (size_t)size + 1);
	if (!d) {
		r = -ENOMEM;
		goto out_close;
	}
	ssize_t got = sl__os_pread_all(os, fd, d, (size_t)size, 0);
	if (got < 0) {
		r = (int)got;
		goto out_free_data;
	}
	size = (uint64_t)got; /* a file that shrank under us: replay what is there */
	struct builder b;
	builder_init(&b, os);
	uint64_t good_end = 0, snap_end = 0;
	r = replay(m, path, d, size, number, &b, &good_end, &snap_end);
	if (r)
		goto out_release;
	if (good_end < size) {
		/* Only an append can tear, and an append is acknowledged only after its
		 * fdatasync: the torn record was never acknowledged. Cut it off (and make the cut
		 * durable) so the next append lands right after the last good record. */
		m->torn_off = good_end;
		fprintf(stderr,
			"sluice: manifest: %s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
			"%s\n",
			path, size - good_end, good_end, m->rdonly ? "" : "; truncated");
		if (!m->rdonly && ((r = os->ops->ftruncate(os->ctx, fd, (off_t)good_end)) ||
				   (r = os->ops->fdatasync(os->ctx, fd))))
			goto out_release;
	}
	struct sl_version *v = builder_freeze(&b);
	if (!v) {
		r = -ENOMEM;
		goto out_release;
	}
	m->cur = v;
	m->next_file_no = v->next_file_no;
	m->number = number;
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->file_bytes = m->rdonly ? size : good_end;
	m->snap_bytes = snap_end;
	if (!m->rdonly) {
		m->fd = fd;
		fd = -1;
	}
out_release:
	builder_release(&b);
out_free_data:
	sl__os_free(os, d);
out_close:
	if (fd >= 0)
		os->ops->close(os->ctx, fd);
	return r;
}

/* ---- CURRENT ------------------------------------------------------------------------------ */

/* The number CURRENT names: 0, -ENOENT when there is no CURRENT, SL_ECORRUPT, or -errno. */
static int read_current(struct sl_manifest *m, uint64_t *number)
{
	const struct sl_os *os = m->os;
	char path[PATH_CAP], b[CURRENT_LEN + 8];
	dir_file(m, "CURRENT", path, sizeof(path));
	int fd = os->ops->open(os->ctx, path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	ssize_t got = sl__os_pread_all(os, fd, b, sizeof(b), 0);
	os->ops->close(os->ctx, fd);
	if (got < 0)
		return (int)got;
	uint64_t crc;
	if (got != CURRENT_LEN || memcmp(b, "MANIFEST-", 9) || b[CURRENT_LINE_LEN - 1] != '\n' ||
	    memcmp(b + CURRENT_LINE_LEN, "crc32c ", 7) || b[CURRENT_LEN - 1] != '\n' ||
	    parse_hex(b + 9, 16, number) < 0 || parse_hex(b + CURRENT_LINE_LEN + 7, 8, &crc) < 0)
		return bad(m, SL_ECORRUPT, path, 0,
			   "not \"MANIFEST-<16 hex digits>\\ncrc32c <8 hex>\\n\"");
	if (crc != crc_of(m, b, CURRENT_LINE_LEN))
		return bad(m, SL_ECORRUPT, path, 0, "checksum mismatch");
	if (!*number)
		return bad(m, SL_ECORRUPT, path, 0, "names MANIFEST-0");
	return 0;
}

/* Point CURRENT at MANIFEST-number: write CURRENT.tmp and fsync it, then rename it over
 * CURRENT (atomic: a crash leaves the old CURRENT or the new one, both whole). The caller
 * syncs the directory to make the rename durable. On failure CURRENT is unchanged. */
static int write_current(struct sl_manifest *m, uint64_t number)
{
	const struct sl_os *os = m->os;
	char tmp[PATH_CAP], path[PATH_CAP], b[CURRENT_LEN + 1];
	dir_file(m, "CURRENT.tmp", tmp, sizeof(tmp));
	dir_file(m, "CURRENT", path, sizeof(path));
	snprintf(b, sizeof(b), "MANIFEST-%016" PRIx64 "\n", number);
	snprintf(b + CURRENT_LINE_LEN, sizeof(b) - CURRENT_LINE_LEN, "crc32c %08" PRIx32 "\n",
		 crc_of(m, b, CURRENT_LINE_LEN));
	int fd = os->ops->open(os->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	int r = sl__os_pwrite_all(os, fd, b, CURRENT_LEN, 0);
	if (!r)
		r = os->ops->fsync(os->ctx, fd);
	int rc = os->ops->close(os->ctx, fd);
	if (!r)
		r = rc;
	if (!r)
		r = os->ops->rename(os->ctx, tmp, path);
	if (r)
		os->ops->unlink(os->ctx, tmp);
	return r;
}

/* ---- Creating and rewriting --------------------------------------------------------------- */

/* Write v as a whole new MANIFEST-number and return its open fd and size. Its data is synced,
 * and then the directory, so its name is durable before CURRENT can name it (a rename of
 * CURRENT made durable ahead of the new file's own entry would name a missing file). On
 * failure the file is removed. */
static int write_file(struct sl_manifest *m, const struct sl_version *v, uint64_t number,
		      char *path, size_t cap, size_t *len)
{
	const struct sl_os *os = m->os;
	int r = encode_file(m, v, number, len);
	if (r)
		return r;
	mf_path(m, number, path, cap);
	int fd = os->ops->open(os->ctx, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	r = sl__os_pwrite_all(os, fd, m->buf, *len, 0);
	if (!r)
		r = os->ops->fdatasync(os->ctx, fd);
	if (!r)
		r = os->ops->sync_dir(os->ctx, m->dir);
	if (r) {
		os->ops->close(os->ctx, fd);
		os->ops->unlink(os->ctx, path);
		return r;
	}
	return fd;
}

/* A new store: MANIFEST-1 holding an empty snapshot, then CURRENT. MANIFEST-1 is complete and
 * synced before CURRENT names it; a crash before the rename leaves a MANIFEST-1 of at most
 * EMPTY_FILE_LEN bytes and no CURRENT, which open recognizes and starts over. */
static int create_store(struct sl_manifest *m)
{
	const struct sl_os *os = m->os;
	struct builder b;
	builder_init(&b, os);
	struct sl_version *v = builder_freeze(&b);
	if (!v)
		return -ENOMEM;
	char path[PATH_CAP];
	size_t len;
	int fd = write_file(m, v, 1, path, sizeof(path), &len);
	int r = fd < 0 ? fd : 0;
	if (r)
		goto out_put;
	if ((r = write_current(m, 1))) {
		os->ops->unlink(os->ctx, path);
		goto out_close;
	}
	/* CURRENT is in place: from here the store exists even if this open fails. */
	if ((r = os->ops->sync_dir(os->ctx, m->dir)))
		goto out_close;
	m->fd = fd;
	m->number = 1;
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->file_bytes = len;
	m->snap_bytes = len;
	m->cur = v;
	m->next_file_no = v->next_file_no;
	return 0;
out_close:
	os->ops->close(os->ctx, fd);
out_put:
	version_put(v);
	return r;
}

/* The directory sync that makes a switched CURRENT durable succeeded late: only now may the
 * old manifest go (until then a crash could bring the old CURRENT back). */
static int finish_switch(struct sl_manifest *m)
{
	int r = m->os->ops->sync_dir(m->os->ctx, m->dir);
	if (r)
		return r;
	m->os->ops->unlink(m->os->ctx, m->old_path);
	m->dir_sync_pending = 0;
	return 0;
}

/* Rewrite the current version as MANIFEST-(n+1). Crash ordering:
 *  1. the new file is written whole and fdatasynced under its final name, and the directory
 *     synced; CURRENT still names the old file, which holds every edit, so a crash here
 *     leaves the old manifest (the new file is a leftover that the next open removes);
 *  2. CURRENT.tmp is written and fsynced, then renamed over CURRENT: atomic, so a crash
 *     leaves CURRENT naming either file, and both are complete;
 *  3. the directory is synced: the rename is durable, and only then
 *  4. the old file is deleted.
 * A failure before the rename changes nothing (the new file is removed; the next edit tries
 * again). A failed directory sync after it leaves the switch made but not durable: appends go
 * to the new file only after a later sync succeeds (apply retries it first), and the old file
 * stays until then. */
static int rewrite(struct sl_manifest *m)
{
	const struct sl_os *os = m->os;
	char path[PATH_CAP];
	size_t len;
	uint64_t number = m->number + 1;
	int fd = write_file(m, m->cur, number, path, sizeof(path), &len);
	if (fd < 0)
		return fd;
	int r = write_current(m, number);
	if (r) {
		os->ops->close(os->ctx, fd);
		os->ops->unlink(os->ctx, path);
		return r;
	}
	os->ops->close(os->ctx, m->fd);
	snprintf(m->old_path, sizeof(m->old_path), "%s", m->path);
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->fd = fd;
	m->number = number;
	m->snap_bytes = len;
	__atomic_store_n(&m->file_bytes, len, __ATOMIC_RELAXED);
	m->dir_sync_pending = 1;
	return finish_switch(m);
}

/* Rewrite once the log is past the limit and at least twice its snapshot (so a large live
 * set does not rewrite at every edit). The edit that got here is durable and installed
 * already: a failed rewrite is reported on stderr and retried at the next edit. */
static void maybe_rewrite(struct sl_manifest *m)
{
	uint64_t bytes = m->file_bytes; /* only the writer changes it, under mu */
	if (bytes <= __atomic_load_n(&m->rewrite_bytes, __ATOMIC_RELAXED) ||
	    bytes < 2 * m->snap_bytes)
		return;
	char old[PATH_CAP];
	snprintf(old, sizeof(old), "%s", m->path);
	int r = rewrite(m);
	if (r)
		fprintf(stderr,
			"sluice: manifest: rewriting %s as MANIFEST-%016" PRIx64 " failed: %s%s\n",
			old, m->dir_sync_pending ? m->number : m->number + 1, sl_strerror(r),
			m->dir_sync_pending
				? "; CURRENT switched, directory sync retried at the next edit"
				: "; retried at the next edit");
}

/* ---- Open and close ----------------------------------------------------------------------- */

static int install_empty(struct sl_manifest *m)
{
	struct builder b;
	builder_init(&b, m->os);
	m->cur = builder_freeze(&b);
	return m->cur ? 0 : -ENOMEM;
}

struct mf_scan {
	uint64_t n, first;
	char name[MF_NAME_LEN + 1];
};

static int scan_cb(void *arg, const char *name)
{
	struct mf_scan *s = arg;
	uint64_t number;
	if (parse_mf_name(name, &number) < 0)
		return 0;
	if (!s->n++) {
		s->first = number;
		snprintf(s->name, sizeof(s->name), "%s", name);
	}
	return 0;
}

/* Whether path is at most bytes long: 1, 0, or -errno. */
static int file_at_most(const struct sl_os *os, const char *path, uint64_t bytes)
{
	int fd = os->ops->open(os->ctx, path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	uint64_t size;
	int r = os->ops->fsize(os->ctx, fd, &size);
	os->ops->close(os->ctx, fd);
	return r ? r : size <= bytes;
}

/* There is no CURRENT: a new store (no manifest at all, or one a crashed creation left), or
 * damage (a manifest with edits and nothing naming it). */
static int no_current(struct sl_manifest *m)
{
	struct mf_scan s = { 0 };
	int r = m->os->ops->list(m->os->ctx, m->dir, scan_cb, &s);
	if (r == -ENOENT && m->rdonly)
		return install_empty(m); /* no directory yet: an empty store, as the wal says */
	if (r)
		return r;
	int fresh = s.n == 0;
	if (s.n == 1 && s.first == 1) {
		char path[PATH_CAP];
		mf_path(m, 1, path, sizeof(path));
		if ((fresh = file_at_most(m->os, path, EMPTY_FILE_LEN)) < 0)
			return fresh;
	}
	if (!fresh) {
		char path[PATH_CAP];
		dir_file(m, "CURRENT", path, sizeof(path));
		return bad(m, SL_ECORRUPT, path, 0,
			   "missing, but %s/%s exists (restore CURRENT to open)", m->dir, s.name);
	}
	return m->rdonly ? install_empty(m) : create_store(m);
}

struct leftovers {
	struct sl_manifest *m;
	int remove;
	size_t n;
};

static int leftover_cb(void *arg, const char *name)
{
	struct leftovers *lo = arg;
	uint64_t number;
	if (strcmp(name, "CURRENT.tmp") &&
	    (parse_mf_name(name, &number) < 0 || number == lo->m->number))
		return 0;
	lo->n++;
	if (lo->remove) {
		char path[PATH_CAP];
		dir_file(lo->m, name, path, sizeof(path));
		lo->m->os->ops->unlink(lo->m->os->ctx, path);
	}
	return 0;
}

/* Remove what interrupted rewrites left: manifests CURRENT does not name, and CURRENT.tmp.
 * The directory is synced first: CURRENT may have been renamed by a process that died before
 * its directory sync, and the file it replaced must survive until that rename is durable.
 * Best effort: whatever stays is removed at the next open. */
static void remove_leftovers(struct sl_manifest *m)
{
	struct leftovers lo = { .m = m };
	if (m->os->ops->list(m->os->ctx, m->dir, leftover_cb, &lo) || !lo.n)
		return;
	if (m->os->ops->sync_dir(m->os->ctx, m->dir))
		return;
	lo.remove = 1;
	m->os->ops->list(m->os->ctx, m->dir, leftover_cb, &lo);
}

static void manifest_free(struct sl_manifest *m)
{
	if (!m)
		return;
	const struct sl_os *os = m->os;
	version_put(m->cur);
	if (m->fd >= 0)
		os->ops->close(os->ctx, m->fd);
	os->ops->free(os->ctx, m->buf);
	pthread_mutex_destroy(&m->mu);
	pthread_mutex_destroy(&m->vmu);
	sl__os_free(os, m);
}

static int manifest_open(const struct sl_os *os, struct sl_accel *accel, const char *dir,
			 int rdonly, struct report *rp, struct sl_manifest **out)
{
	*out = NULL;
	if (!os || !accel || !dir)
		return -EINVAL;
	if (strlen(dir) >= DIR_CAP)
		return -ENAMETOOLONG;
	struct sl_manifest *m = sl__os_calloc(os, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->os = os;
	m->accel = accel;
	m->rdonly = !!rdonly;
	m->rp = rp;
	m->fd = -1;
	m->next_file_no = 1;
	m->rewrite_bytes = DEFAULT_REWRITE;
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_init(&m->vmu, NULL);
	uint64_t number = 0;
	int r = read_current(m, &number);
	if (r == -ENOENT)
		r = no_current(m);
	else if (!r)
		r = load(m, number);
	if (r) {
		manifest_free(m);
		return r;
	}
	if (!m->rdonly)
		remove_leftovers(m);
	m->rp = NULL;
	*out = m;
	return 0;
}

int sl__manifest_open(const struct sl_os *os, struct sl_accel *accel, const char *dir, int rdonly,
		      struct sl_manifest **out)
{
	return manifest_open(os, accel, dir, rdonly, NULL, out);
}

void sl__manifest_close(struct sl_manifest *m)
{
	if (!m)
		return;
	if (m->dir_sync_pending)
		finish_switch(m); /* best effort: otherwise the next open removes the old file */
	manifest_free(m);
}

int sl__manifest_verify(const struct sl_os *os, struct sl_accel *accel, const char *dir, char *path,
			size_t cap, uint64_t *off)
{
	struct report rp = { .path = path, .cap = cap };
	if (path && cap)
		path[0] = 0;
	struct sl_manifest *m = NULL;
	int r = manifest_open(os, accel, dir, 1, &rp, &m);
	sl__manifest_close(m);
	if (off)
		*off = rp.off;
	return r;
}

/* ---- Edits -------------------------------------------------------------------------------- */

/* Undo a failed append: cut the file back to its length before it, durably, so a retry
 * appends at the same place and a reopen never sees the edit that failed. */
static void undo_append(struct sl_manifest *m, uint64_t prev, int err)
{
	const struct sl_os *os = m->os;
	int r = os->ops->ftruncate(os->ctx, m->fd, (off_t)prev);
	if (!r)
		r = os->ops->fdatasync(os->ctx, m->fd);
	if (r) {
		/* What the file holds past prev is unknown (maybe the whole edit, which a
		 * reopen would then replay): refuse further edits until a reopen has looked. */
		m->failed = r;
		fprintf(stderr,
			"sluice: manifest: %s: append failed (%s) and cutting it back failed (%s); "
			"no more edits until reopened\n",
			m->path, sl_strerror(err), sl_strerror(r));
	}
}

static void raise_next_file_no(struct sl_manifest *m, uint64_t want)
{
	uint64_t cur = __atomic_load_n(&m->next_file_no, __ATOMIC_RELAXED);
	while (cur < want && !__atomic_compare_exchange_n(&m->next_file_no, &cur, want, 0,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static int apply_locked(struct sl_manifest *m, const struct sl_manifest_edit *e)
{
	const struct sl_os *os = m->os;
	if (m->failed)
		return SL_EFAILED;
	int r;
	if (m->dir_sync_pending && (r = finish_switch(m)))
		return r;
	const struct sl_version *cur = m->cur;
	struct edit_view view = {
		.checkpoint_seq = e->checkpoint_seq ? e->checkpoint_seq : cur->checkpoint_seq,
		.next_file_no = __atomic_load_n(&m->next_file_no, __ATOMIC_RELAXED),
		.add = e->add,
		.n_add = e->n_add,
		.del = e->del,
		.n_del = e->n_del,
	};
	/* The record carries a next_file_no above every number handed out so far and every
	 * table it adds, so no number in use is handed out again after a restart. */
	if (view.next_file_no < cur->next_file_no)
		view.next_file_no = cur->next_file_no;
	for (size_t i = 0; i < e->n_add; i++)
		if (e->add[i].file_no >= view.next_file_no && e->add[i].file_no < UINT64_MAX)
			view.next_file_no = e->add[i].file_no + 1;

	/* Check everything and build the new version before any I/O: an edit refused, or an
	 * allocation that fails, leaves no trace. */
	struct builder b;
	builder_init(&b, os);
	char why[160];
	size_t len = 0;
	struct sl_version *nv = NULL;
	if ((r = builder_load(&b, cur)))
		goto out_release;
	if ((r = builder_apply(&b, &view, why, sizeof(why))))
		goto out_release;
	if ((r = encode_edit(m, &view, &len)))
		goto out_release;
	if (!(nv = builder_freeze(&b))) {
		r = -ENOMEM;
		goto out_release;
	}
	/* One write for the record, then fdatasync: the edit is durable before it is installed
	 * and before apply returns, so the caller may delete the files it obsoletes. */
	uint64_t prev = m->file_bytes;
	r = sl__os_pwrite_all(os, m->fd, m->buf, len, (off_t)prev);
	if (!r)
		r = os->ops->fdatasync(os->ctx, m->fd);
	if (r) {
		undo_append(m, prev, r);
		version_put(nv);
		goto out_release;
	}
	__atomic_store_n(&m->file_bytes, prev + len, __ATOMIC_RELAXED);
	install(m, nv);
	raise_next_file_no(m, view.next_file_no);
	maybe_rewrite(m);
out_release:
	builder_release(&b);
	return r;
}

int sl__manifest_apply(struct sl_manifest *m, const struct sl_manifest_edit *e)
{
	if (!m || !e || (e->n_add && !e->add) || (e->n_del && !e->del))
		return -EINVAL;
	if (m->rdonly)
		return SL_ERDONLY;
	pthread_mutex_lock(&m->mu);
	int r = apply_locked(m, e);
	pthread_mutex_unlock(&m->mu);
	return r;
}

uint64_t sl__manifest_new_file_no(struct sl_manifest *m)
{
	return __atomic_fetch_add(&m->next_file_no, 1, __ATOMIC_RELAXED);
}

struct sl_version *sl__manifest_acquire(struct sl_manifest *m)
{
	pthread_mutex_lock(&m->vmu);
	struct sl_version *v = m->cur;
	__atomic_fetch_add(&v->refs, 1, __ATOMIC_RELAXED); /* vmu orders it before any put */
	pthread_mutex_unlock(&m->vmu);
	return v;
}

void sl__manifest_release(struct sl_manifest *m, struct sl_version *v)
{
	/* m may be closed already: the version frees itself with its own os. */
	(void)m;
	version_put(v);
}

uint64_t sl__manifest_torn_off(const struct sl_manifest *m)
{
	return m->torn_off;
}

uint64_t sl__manifest_file_bytes(const struct sl_manifest *m)
{
	return __atomic_load_n(&m->file_bytes, __ATOMIC_RELAXED);
}

const char *sl__manifest_path(const struct sl_manifest *m)
{
	return m->path;
}

void sl__manifest_set_rewrite_bytes(struct sl_manifest *m, uint64_t bytes)
{
	__atomic_store_n(&m->rewrite_bytes, bytes, __ATOMIC_RELAXED);
}
