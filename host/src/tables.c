/* tables.c - the open-table cache, lookups through a version, event replay, verify and orphan
 * removal (tables.h). The cache is an open-addressing map from file number to an open table and
 * its handle count under one mutex: a lookup of an open table takes the lock once per table it
 * consults and allocates nothing. tables sits on sst, bloom, manifest and keys; it knows nothing
 * of the log, the memtable or the engine.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "sluice.h"
#include "tables.h"

#define MAP_MIN_CAP  64
#define SST_NAME_LEN 20 /* 16 hex digits and ".sst" */
#define FOOTER_LEN   64 /* sst.h: the footer is the file's last 64 bytes */

/* One cached table: open (sst set), or a remembered open failure (sst NULL, err set). */
struct entry {
	uint64_t file_no;
	struct sl_sst *sst;
	uint64_t refs; /* handles out */
	int err;
	uint8_t used;
	uint8_t doomed; /* forgotten or trimmed: close when the last handle is put */
};

struct sl_tables {
	const struct sl_os *os;
	struct sl_accel *accel;
	char *dir;
	pthread_mutex_t mu; /* guards everything below */
	struct entry *map;
	size_t cap, n; /* cap is a power of two; n used slots, at most cap / 2 */
	uint64_t handles;
	/* Bloom answers seen by lookups (__atomic, relaxed): probes, "certainly absent", and
	 * "maybe" answers whose table did not hold the key. */
	uint64_t bloom_probes, bloom_negatives, bloom_false_pos;
};

static void count_add(uint64_t *c, uint64_t v)
{
	if (v)
		__atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

/* ---- The map ------------------------------------------------------------------------------ */

static size_t slot_of(uint64_t file_no, size_t cap)
{
	/* File numbers are consecutive: a multiplicative hash spreads them over the slots. */
	return (size_t)((file_no * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static struct entry *map_find(struct sl_tables *tc, uint64_t file_no)
{
	for (size_t i = slot_of(file_no, tc->cap);; i = (i + 1) & (tc->cap - 1)) {
		struct entry *e = &tc->map[i];
		if (!e->used)
			return NULL;
		if (e->file_no == file_no)
			return e;
	}
}

/* Place e in a map known to have room and not to hold e->file_no. */
static struct entry *map_place(struct entry *map, size_t cap, const struct entry *e)
{
	size_t i = slot_of(e->file_no, cap);
	while (map[i].used)
		i = (i + 1) & (cap - 1);
	map[i] = *e;
	return &map[i];
}

/* Insert a new entry, growing the map first when it would pass half full. NULL on -ENOMEM. */
static struct entry *map_insert(struct sl_tables *tc, const struct entry *e)
{
	if ((tc->n + 1) * 2 > tc->cap) {
		size_t cap = tc->cap * 2;
		struct entry *map = sl__os_calloc(tc->os, cap * sizeof(*map));
		if (!map)
			return NULL;
		for (size_t i = 0; i < tc->cap; i++)
			if (tc->map[i].used)
				map_place(map, cap, &tc->map[i]);
		sl__os_free(tc->os, tc->map);
		tc->map = map;
		tc->cap = cap;
	}
	tc->n++;
	return map_place(tc->map, tc->cap, e);
}

/* Remove e by backward shift: later members of its probe run move up so that no lookup meets an
 * empty slot before its entry (no tombstones, so lookups never slow down with churn). */
static void map_remove(struct sl_tables *tc, struct entry *e)
{
	size_t mask = tc->cap - 1;
	size_t hole = (size_t)(e - tc->map);
	for (size_t i = (hole + 1) & mask; tc->map[i].used; i = (i + 1) & mask) {
		size_t home = slot_of(tc->map[i].file_no, tc->cap);
		/* The entry at i may fill the hole only if its home is not in (hole, i]. */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			tc->map[hole] = tc->map[i];
			hole = i;
		}
	}
	memset(&tc->map[hole], 0, sizeof(tc->map[hole]));
	tc->n--;
}

/* ---- Cache -------------------------------------------------------------------------------- */

int sl__tables_open(const struct sl_os *os, struct sl_accel *accel, const char *dir,
		    struct sl_tables **out)
{
	*out = NULL;
	struct sl_tables *tc = sl__os_calloc(os, sizeof(*tc));
	if (!tc)
		return -ENOMEM;
	tc->os = os;
	tc->accel = accel;
	size_t len = strlen(dir);
	tc->dir = sl__os_malloc(os, len + 1);
	tc->map = sl__os_calloc(os, MAP_MIN_CAP * sizeof(*tc->map));
	if (!tc->dir || !tc->map) {
		sl__os_free(os, tc->dir);
		sl__os_free(os, tc->map);
		sl__os_free(os, tc);
		return -ENOMEM;
	}
	memcpy(tc->dir, dir, len + 1);
	tc->cap = MAP_MIN_CAP;
	pthread_mutex_init(&tc->mu, NULL);
	*out = tc;
	return 0;
}

void sl__tables_close(struct sl_tables *tc)
{
	if (!tc)
		return;
	for (size_t i = 0; i < tc->cap; i++) {
		/* A handle still out here is a caller bug; its table is closed regardless. */
		assert(tc->map[i].refs == 0);
		if (tc->map[i].used)
			sl__sst_close(tc->map[i].sst);
	}
	pthread_mutex_destroy(&tc->mu);
	sl__os_free(tc->os, tc->map);
	sl__os_free(tc->os, tc->dir);
	sl__os_free(tc->os, tc);
}

static void table_path(const struct sl_tables *tc, uint64_t file_no, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".sst", tc->dir, file_no);
}

/* A name of exactly 16 lowercase hex digits and ".sst": 1 and *no, else 0. */
static int parse_name(const char *name, uint64_t *no)
{
	if (strlen(name) != SST_NAME_LEN || strcmp(name + 16, ".sst") != 0)
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return 0;
	}
	*no = v;
	return 1;
}

/* Failures worth remembering: the file's state, not the process's. */
static int remember_err(int err)
{
	return err != -ENOMEM && err != -EMFILE && err != -ENFILE && err != -EINTR &&
	       err != -EAGAIN;
}

int sl__tables_get(struct sl_tables *tc, uint64_t file_no, struct sl_sst **out)
{
	*out = NULL;
	pthread_mutex_lock(&tc->mu);
	struct entry *e = map_find(tc, file_no);
	if (e) {
		int r = e->err;
		if (e->sst) {
			e->refs++;
			tc->handles++;
			*out = e->sst;
		}
		pthread_mutex_unlock(&tc->mu);
		return r;
	}
	pthread_mutex_unlock(&tc->mu);

	/* Open without the lock: opening reads and checksums the index and bloom blocks, and
	 * lookups of other tables must not wait for that. Two threads may race to open the same
	 * table; the loser closes its copy. */
	char path[4096];
	table_path(tc, file_no, path, sizeof(path));
	struct sl_sst *t = NULL;
	int r = sl__sst_open(tc->os, tc->accel, path, &t);
	if (r == 0)
		sl__sst_set_tag(t, file_no);

	pthread_mutex_lock(&tc->mu);
	e = map_find(tc, file_no);
	if (e && (e->sst || r < 0)) {
		/* Someone else got there first: use theirs (or their remembered failure). */
		r = e->err;
		if (e->sst) {
			e->refs++;
			tc->handles++;
			*out = e->sst;
		}
		pthread_mutex_unlock(&tc->mu);
		sl__sst_close(t);
		return r;
	}
	if (r < 0) {
		struct entry ne = { .file_no = file_no, .err = r, .used = 1 };
		/* Failing to remember a failure only costs a retry next time. */
		if (remember_err(r))
			map_insert(tc, &ne);
		pthread_mutex_unlock(&tc->mu);
		return r;
	}
	if (e) {
		/* A remembered failure, dropped and retried meanwhile: now it opens. */
		e->sst = t;
		e->err = 0;
	} else {
		struct entry ne = { .file_no = file_no, .sst = t, .used = 1 };
		if (!(e = map_insert(tc, &ne))) {
			pthread_mutex_unlock(&tc->mu);
			sl__sst_close(t);
			return -ENOMEM;
		}
	}
	e->refs++;
	tc->handles++;
	*out = t;
	pthread_mutex_unlock(&tc->mu);
	return 0;
}

/* The entry of an open table: its file number is the table's tag (set at open). */
static struct entry *find_sst(struct sl_tables *tc, const struct sl_sst *t)
{
	struct entry *e = map_find(tc, sl__sst_tag(t));
	return e && e->sst == t ? e : NULL;
}

/* Drop k handles of t; close it when the last goes and it was forgotten. */
static void put_n(struct sl_tables *tc, struct sl_sst *t, uint64_t k)
{
	struct sl_sst *close = NULL;
	pthread_mutex_lock(&tc->mu);
	struct entry *e = find_sst(tc, t);
	assert(e && e->refs >= k);
	if (e) {
		e->refs -= k;
		tc->handles -= k;
		if (!e->refs && e->doomed) {
			close = e->sst;
			map_remove(tc, e);
		}
	}
	pthread_mutex_unlock(&tc->mu);
	/* Unmapping can take a while for a big table: not under the lock. */
	sl__sst_close(close);
}

void sl__tables_put(struct sl_tables *tc, struct sl_sst *t)
{
	if (t)
		put_n(tc, t, 1);
}

/* k more handles on t, which the caller holds one of. */
static void ref_more(struct sl_tables *tc, struct sl_sst *t, uint64_t k)
{
	pthread_mutex_lock(&tc->mu);
	struct entry *e = find_sst(tc, t);
	assert(e && e->refs);
	if (e) {
		e->refs += k;
		tc->handles += k;
	}
	pthread_mutex_unlock(&tc->mu);
}

void sl__tables_forget(struct sl_tables *tc, uint64_t file_no)
{
	struct sl_sst *close = NULL;
	pthread_mutex_lock(&tc->mu);
	struct entry *e = map_find(tc, file_no);
	if (e) {
		if (e->refs) {
			e->doomed = 1;
		} else {
			close = e->sst;
			map_remove(tc, e);
		}
	}
	pthread_mutex_unlock(&tc->mu);
	sl__sst_close(close);
}

static int in_version(const struct sl_version *v, uint64_t file_no)
{
	for (int l = 0; l < SL_LEVELS; l++)
		for (size_t i = 0; i < v->n[l]; i++)
			if (v->tables[l][i].file_no == file_no)
				return 1;
	return 0;
}

size_t sl__tables_trim(struct sl_tables *tc, const struct sl_version *v)
{
	size_t closed = 0;
	/* Remove one idle entry at a time and rescan: removal shifts entries, and trimming is rare
	 * (after a version change) while the map is small. */
	for (;;) {
		struct sl_sst *close = NULL;
		int found = 0;
		pthread_mutex_lock(&tc->mu);
		for (size_t i = 0; i < tc->cap && !found; i++) {
			struct entry *e = &tc->map[i];
			if (!e->used || in_version(v, e->file_no))
				continue;
			if (e->refs) {
				e->doomed = 1;
				continue;
			}
			close = e->sst;
			map_remove(tc, e);
			found = 1;
		}
		pthread_mutex_unlock(&tc->mu);
		if (!found)
			return closed;
		if (close) {
			sl__sst_close(close);
			closed++;
		}
	}
}

void sl__tables_stats(struct sl_tables *tc, size_t *open, uint64_t *handles)
{
	pthread_mutex_lock(&tc->mu);
	size_t n = 0;
	for (size_t i = 0; i < tc->cap; i++)
		n += tc->map[i].used && tc->map[i].sst;
	if (open)
		*open = n;
	if (handles)
		*handles = tc->handles;
	pthread_mutex_unlock(&tc->mu);
}

void sl__tables_bloom_stats(struct sl_tables *tc, uint64_t *probes, uint64_t *negatives,
			    uint64_t *false_pos)
{
	*probes = __atomic_load_n(&tc->bloom_probes, __ATOMIC_RELAXED);
	*negatives = __atomic_load_n(&tc->bloom_negatives, __ATOMIC_RELAXED);
	*false_pos = __atomic_load_n(&tc->bloom_false_pos, __ATOMIC_RELAXED);
}

/* ---- Lookups ------------------------------------------------------------------------------ */

/* An entry is the answer unless it is a deletion: a tombstone without a value. A tombstone
 * with a value is a final state (an order fully executed, cancelled, deleted or replaced):
 * still the answer until compaction drops it at the bottom level. */
static int is_deletion(uint32_t flags, size_t vlen)
{
	return (flags & SL_SST_TOMBSTONE) && vlen == 0;
}

/* memcmp order, a prefix first: the order of sst and manifest keys. */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int covers(const struct sl_table_info *t, const uint8_t *key, size_t klen)
{
	return key_cmp(t->smallest, t->smallest_len, key, klen) <= 0 &&
	       key_cmp(key, klen, t->largest, t->largest_len) <= 0;
}

/* The one table of level l >= 1 whose range holds key, or NULL: the first table whose largest
 * key is >= key (levels >= 1 are sorted and disjoint), if its smallest is <= key. */
static const struct sl_table_info *level_find(const struct sl_version *v, int l, const uint8_t *key,
					      size_t klen)
{
	const struct sl_table_info *t = v->tables[l];
	size_t lo = 0, hi = v->n[l];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(t[mid].largest, t[mid].largest_len, key, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < v->n[l] && key_cmp(t[lo].smallest, t[lo].smallest_len, key, klen) <= 0)
		return &t[lo];
	return NULL;
}

/* One table: 0 with a handle in *holder (kept), SL_ENOTFOUND (the handle given back), or an
 * error. A tombstone counts as found here: it ends the search. */
static int table_lookup(struct sl_tables *tc, const struct sl_table_info *ti, const uint8_t *key,
			size_t klen, uint64_t hash, const void **val, size_t *vlen, uint32_t *flags,
			struct sl_sst **holder)
{
	struct sl_sst *t;
	int r = sl__tables_get(tc, ti->file_no, &t);
	if (r < 0)
		return r;
	count_add(&tc->bloom_probes, 1);
	if (!sl__sst_may_contain(t, hash)) {
		count_add(&tc->bloom_negatives, 1);
		sl__tables_put(tc, t);
		return SL_ENOTFOUND;
	}
	r = sl__sst_get(t, key, klen, val, vlen, flags);
	if (r < 0) {
		if (r == SL_ENOTFOUND)
			count_add(&tc->bloom_false_pos, 1);
		sl__tables_put(tc, t);
		return r;
	}
	*holder = t;
	return 0;
}

int sl__tables_lookup(struct sl_tables *tc, const struct sl_version *v, const uint8_t *key,
		      size_t klen, uint64_t hash, const void **val, size_t *vlen, uint32_t *flags,
		      struct sl_sst **holder)
{
	*holder = NULL;
	if (klen == 0 || klen > SL_SST_MAX_KEY)
		return -EINVAL;
	int r = SL_ENOTFOUND;
	/* Level 0 tables may overlap: every one whose range holds the key, newest first. */
	for (size_t i = 0; i < v->n[0] && r == SL_ENOTFOUND; i++)
		if (covers(&v->tables[0][i], key, klen))
			r = table_lookup(tc, &v->tables[0][i], key, klen, hash, val, vlen, flags,
					 holder);
	for (int l = 1; l < SL_LEVELS && r == SL_ENOTFOUND; l++) {
		const struct sl_table_info *ti = level_find(v, l, key, klen);
		if (ti)
			r = table_lookup(tc, ti, key, klen, hash, val, vlen, flags, holder);
	}
	if (r == 0 && is_deletion(*flags, *vlen)) {
		sl__tables_put(tc, *holder);
		*holder = NULL;
		r = SL_ENOTFOUND;
	}
	return r;
}

/* Bloom answers for n hashes against one table, in one batched probe (the place an
 * accelerator's bloom probe slots in). */
static void bloom_probe(const struct sl_sst *t, const uint64_t *hashes, size_t n, uint8_t *out)
{
	sl__sst_may_contain_batch(t, hashes, n, out);
}

/* A chunk of at most SL_TABLES_BATCH keys being looked up together. */
struct chunk {
	struct sl_tables *tc;
	size_t n;
	const uint8_t *const *keys;
	const size_t *klens;
	const uint64_t *hashes;
	struct sl_tables_result *res;
	uint8_t done[SL_TABLES_BATCH];
};

/* Look the keys sel[0..ns) of c up in one table, all blooms first; settle every key the table
 * answers for (found, tombstone, or error). */
static void group_lookup(struct chunk *c, const struct sl_table_info *ti, const uint8_t *sel,
			 size_t ns)
{
	struct sl_sst *t;
	int r = sl__tables_get(c->tc, ti->file_no, &t);
	if (r < 0) {
		for (size_t j = 0; j < ns; j++) {
			c->res[sel[j]].rc = r;
			c->done[sel[j]] = 1;
		}
		return;
	}
	uint64_t h[SL_TABLES_BATCH];
	uint8_t may[SL_TABLES_BATCH];
	for (size_t j = 0; j < ns; j++)
		h[j] = c->hashes[sel[j]];
	bloom_probe(t, h, ns, may);
	uint64_t held = 0, neg = 0, fp = 0;
	for (size_t j = 0; j < ns; j++) {
		if (!may[j]) {
			neg++;
			continue;
		}
		uint8_t k = sel[j];
		struct sl_tables_result *res = &c->res[k];
		r = sl__sst_get(t, c->keys[k], c->klens[k], &res->val, &res->vlen, &res->flags);
		if (r == SL_ENOTFOUND) {
			fp++;
			continue;
		}
		c->done[k] = 1;
		if (r == 0 && !is_deletion(res->flags, res->vlen)) {
			res->rc = 0;
			res->holder = t;
			held++;
		} else {
			res->rc = r == 0 ? SL_ENOTFOUND : r;
			res->val = NULL;
			res->vlen = 0;
			res->flags = 0;
		}
	}
	count_add(&c->tc->bloom_probes, ns);
	count_add(&c->tc->bloom_negatives, neg);
	count_add(&c->tc->bloom_false_pos, fp);
	/* The get gave one handle: keep one per key answered from this table. */
	if (held == 0)
		sl__tables_put(c->tc, t);
	else if (held > 1)
		ref_more(c->tc, t, held - 1);
}

static void chunk_lookup(struct chunk *c, const struct sl_version *v)
{
	uint8_t sel[SL_TABLES_BATCH];
	for (size_t i = 0; i < v->n[0]; i++) {
		const struct sl_table_info *ti = &v->tables[0][i];
		size_t ns = 0;
		for (size_t k = 0; k < c->n; k++)
			if (!c->done[k] && covers(ti, c->keys[k], c->klens[k]))
				sel[ns++] = (uint8_t)k;
		if (ns)
			group_lookup(c, ti, sel, ns);
	}
	for (int l = 1; l < SL_LEVELS; l++) {
		const struct sl_table_info *tab[SL_TABLES_BATCH];
		uint8_t grouped[SL_TABLES_BATCH];
		for (size_t k = 0; k < c->n; k++) {
			tab[k] = c->done[k] ? NULL : level_find(v, l, c->keys[k], c->klens[k]);
			grouped[k] = 0;
		}
		/* Group the keys by table; the chunk is small, so a quadratic pass is cheaper than
		 * sorting. */
		for (size_t k = 0; k < c->n; k++) {
			if (!tab[k] || grouped[k])
				continue;
			size_t ns = 0;
			for (size_t j = k; j < c->n; j++) {
				if (tab[j] == tab[k] && !grouped[j]) {
					grouped[j] = 1;
					sel[ns++] = (uint8_t)j;
				}
			}
			group_lookup(c, tab[k], sel, ns);
		}
	}
}

int sl__tables_lookup_batch(struct sl_tables *tc, const struct sl_version *v, size_t n,
			    const uint8_t *const *keys, const size_t *klens, const uint64_t *hashes,
			    struct sl_tables_result *res)
{
	for (size_t i = 0; i < n; i++)
		if (klens[i] == 0 || klens[i] > SL_SST_MAX_KEY)
			return -EINVAL;
	for (size_t i = 0; i < n; i++)
		res[i] = (struct sl_tables_result){ .rc = SL_ENOTFOUND };
	for (size_t b = 0; b < n; b += SL_TABLES_BATCH) {
		struct chunk c = {
			.tc = tc,
			.n = n - b < SL_TABLES_BATCH ? n - b : SL_TABLES_BATCH,
			.keys = keys + b,
			.klens = klens + b,
			.hashes = hashes + b,
			.res = res + b,
		};
		chunk_lookup(&c, v);
	}
	/* sst may have written into a key's fields for a miss it later settled otherwise. */
	for (size_t i = 0; i < n; i++)
		if (res[i].rc != 0)
			res[i] = (struct sl_tables_result){ .rc = res[i].rc };
	return 0;
}

/* ---- Event replay ------------------------------------------------------------------------- */

struct sl_tables_events {
	struct sl_tables *tc;
	uint64_t from_seq, last_seq; /* last_seq: of the last event returned (0: none yet) */
	struct sl_sst_iter *it;	     /* over t[i], NULL between tables */
	size_t n, i;
	int err; /* sticky */
	struct sl_sst *t[];
};

int sl__tables_events_open(struct sl_tables *tc, const struct sl_version *v, uint64_t from_seq,
			   struct sl_tables_events **out)
{
	*out = NULL;
	const struct sl_table_info *ti = v->tables[SL_EVENT_LEVEL];
	size_t n = v->n[SL_EVENT_LEVEL];
	/* Event tables are sorted by their first key and disjoint, so their max_seq increase:
	 * the first to read is the first whose range ends at or after from_seq. */
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ti[mid].max_seq < from_seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t m = n - lo;
	struct sl_tables_events *c = sl__os_calloc(tc->os, sizeof(*c) + m * sizeof(c->t[0]));
	if (!c)
		return -ENOMEM;
	c->tc = tc;
	c->from_seq = from_seq;
	/* Handles on every table now: later tables must stay readable even if v is superseded
	 * and retention forgets and deletes them before the cursor gets there. */
	for (size_t i = 0; i < m; i++) {
		int r = sl__tables_get(tc, ti[lo + i].file_no, &c->t[i]);
		if (r < 0) {
			c->n = i;
			sl__tables_events_close(c);
			return r;
		}
	}
	c->n = m;
	*out = c;
	return 0;
}

static int events_fail(struct sl_tables_events *c, const char *what)
{
	fprintf(stderr, "sluice: tables: %s: %s after sequence %" PRIu64 "\n",
		sl__sst_path(c->t[c->i]), what, c->last_seq);
	return c->err = SL_ECORRUPT;
}

int sl__tables_events_next(struct sl_tables_events *c, uint64_t *seq, uint32_t *kind,
			   uint64_t *rx_ns, const uint8_t **payload, size_t *plen)
{
	if (c->err)
		return c->err;
	for (;;) {
		int r;
		if (!c->it) {
			if (c->i >= c->n)
				return SL_EEND;
			uint8_t k[SL_KEY_EVENT_LEN];
			size_t kl = sl__key_event(k, c->from_seq);
			/* Seeking every table to from_seq is right for all: only the first holds
			 * earlier events. */
			if ((r = sl__sst_iter_new(c->t[c->i], &c->it)) < 0 ||
			    (r = sl__sst_iter_seek(c->it, k, kl)) < 0)
				return c->err = r;
		}
		const uint8_t *key, *val;
		size_t kl, vl;
		uint32_t fl;
		r = sl__sst_iter_next(c->it, &key, &kl, &val, &vl, &fl);
		if (r == SL_EEND) {
			sl__sst_iter_free(c->it);
			c->it = NULL;
			c->i++;
			continue;
		}
		if (r < 0)
			return c->err = r;
		uint64_t s;
		if (sl__key_parse(key, kl, &s, NULL) != SL_KEY_EVENT)
			return events_fail(c, "not an event key");
		if (s < c->from_seq || (c->last_seq && s <= c->last_seq))
			return events_fail(c, "event sequence out of order");
		if (sl__val_event_decode(val, vl, kind, rx_ns, payload, plen) < 0)
			return events_fail(c, "bad event value");
		c->last_seq = s;
		*seq = s;
		return 0;
	}
}

void sl__tables_events_close(struct sl_tables_events *c)
{
	if (!c)
		return;
	sl__sst_iter_free(c->it);
	for (size_t i = 0; i < c->n; i++)
		sl__tables_put(c->tc, c->t[i]);
	sl__os_free(c->tc->os, c);
}

/* ---- Verify ------------------------------------------------------------------------------- */

/* The footer against the manifest's record of the table: a static reason, or NULL. */
static const char *meta_mismatch(const struct sl_sst_meta *m, const struct sl_table_info *ti)
{
	if (m->entries != ti->entries)
		return "entry count differs from the manifest";
	if (m->file_bytes != ti->file_bytes)
		return "file size differs from the manifest";
	if (m->user[0] != ti->min_seq || m->user[1] != ti->max_seq)
		return "sequence range in the footer differs from the manifest";
	if (key_cmp(m->smallest, m->smallest_len, ti->smallest, ti->smallest_len) ||
	    key_cmp(m->largest, m->largest_len, ti->largest, ti->largest_len))
		return "key range differs from the manifest";
	return NULL;
}

/* Check one table: 0 when sound, 1 with *d filled when damaged, or -ENOMEM. */
static int verify_one(struct sl_tables *tc, const struct sl_table_info *ti,
		      struct sl_tables_damage *d)
{
	memset(d, 0, sizeof(*d));
	d->file_no = ti->file_no;
	d->level = ti->level;
	table_path(tc, ti->file_no, d->path, sizeof(d->path));
	struct sl_sst *t;
	int r = sl__tables_get(tc, ti->file_no, &t);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		d->err = r;
		d->what = r == -ENOENT	     ? "table file missing"
			  : r == SL_ECORRUPT ? "table does not open: damaged footer, index or bloom"
					     : "table does not open";
		/* Open it once more, uncached, to learn where it is damaged. */
		const char *what = NULL;
		uint64_t off = 0;
		if (r == SL_ECORRUPT &&
		    sl__sst_open_report(tc->os, tc->accel, d->path, &off, &what) == SL_ECORRUPT) {
			d->off = off;
			if (what)
				d->what = what;
		}
		return 1;
	}
	uint64_t off = 0;
	const char *what = NULL;
	r = sl__sst_verify(t, &off, &what);
	if (r == -ENOMEM) {
		sl__tables_put(tc, t);
		return r;
	}
	if (r < 0) {
		d->err = r;
		d->off = off;
		d->what = what ? what : "table verify failed";
	} else {
		struct sl_sst_meta m;
		sl__sst_get_meta(t, &m);
		if ((d->what = meta_mismatch(&m, ti))) {
			d->err = SL_ECORRUPT;
			d->off = m.file_bytes >= FOOTER_LEN ? m.file_bytes - FOOTER_LEN : 0;
		}
	}
	sl__tables_put(tc, t);
	return d->err ? 1 : 0;
}

int sl__tables_verify(struct sl_tables *tc, const struct sl_version *v,
		      int (*cb)(void *arg, const struct sl_tables_damage *d), void *arg,
		      struct sl_tables_damage *first)
{
	int first_err = 0;
	for (int l = 0; l < SL_LEVELS; l++) {
		for (size_t i = 0; i < v->n[l]; i++) {
			struct sl_tables_damage d;
			int r = verify_one(tc, &v->tables[l][i], &d);
			if (r < 0)
				return r;
			if (r == 0)
				continue;
			if (!first_err) {
				first_err = d.err;
				if (first)
					*first = d;
			}
			if (cb && (r = cb(arg, &d)) != 0)
				return r;
		}
	}
	return first_err;
}

/* ---- Orphans ------------------------------------------------------------------------------ */

struct orphans {
	struct sl_tables *tc;
	const struct sl_version *v;
	int removed, err;
};

static int orphan_cb(void *arg, const char *name)
{
	struct orphans *o = arg;
	uint64_t no;
	if (!parse_name(name, &no) || in_version(o->v, no))
		return 0;
	char path[4096];
	table_path(o->tc, no, path, sizeof(path));
	/* A cached copy (an open that ran before this) goes first; the file is not live. */
	sl__tables_forget(o->tc, no);
	int r = o->tc->os->ops->unlink(o->tc->os->ctx, path);
	if (r < 0 && r != -ENOENT) {
		o->err = r;
		return 1;
	}
	o->removed += r == 0;
	return 0;
}

int sl__tables_remove_orphans(struct sl_tables *tc, const struct sl_version *v)
{
	struct orphans o = { .tc = tc, .v = v };
	int r = tc->os->ops->list(tc->os->ctx, tc->dir, orphan_cb, &o);
	if (o.err)
		return o.err;
	if (r < 0)
		return r;
	/* Not needed for safety (an orphan that comes back is removed again next time), but it
	 * keeps the directory's state settled once we report it. */
	if (o.removed && (r = tc->os->ops->sync_dir(tc->os->ctx, tc->dir)) < 0)
		return r;
	return o.removed;
}
