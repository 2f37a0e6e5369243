/* compact.c - leveled compaction (the contract is compact.h).
 *
 * Picking. Level 0 scores its table count against l0_trigger; level n >= 1 its bytes against
 * base_bytes * ratio^(n-1); the bottom state level has no target. The highest score >= 1 wins.
 * Level 0 compacts all its tables (each its own run, newest first) with the level-1 tables
 * they overlap; level n >= 1 compacts one table, chosen round-robin through the key space (a
 * per-level cursor after the last one compacted, as LevelDB does), with the level n+1 tables it
 * overlaps. Tombstones are dropped when no deeper state level holds a table overlapping the
 * inputs: nothing older can then be uncovered by dropping them.
 *
 * Running. The inputs' data blocks stay where they are (the tables' mappings). The merge is cut
 * into jobs of about table_bytes of input each: every block's last key is a candidate cut point,
 * and walking them in key order while adding up block sizes gives cut keys c1 < c2 < ...; job j
 * emits the keys in (c[j-1], c[j]] and gets, from each run, the blocks that can hold such keys
 * (a block holds the keys after its predecessor's last key up to its own). Each job is one
 * accelerator call that returns the output table's data blocks with their CRCs and its bloom
 * filter; the host only writes them (sst's write_merged adds index and footer). So memory is
 * bounded by one job, whatever the size of the compaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compact.h"
#include "sluice.h"
#include "sst.h"

#define DEFAULT_L0_TRIGGER  4u
#define DEFAULT_BASE_BYTES  (256ull << 20)
#define DEFAULT_RATIO	    10u
#define DEFAULT_TABLE_BYTES (64ull << 20)

struct sl_compactor {
	struct sl_compact_config c;
	char *dir;
	/* Per level: the largest key of the last table compacted (round-robin cursor). */
	uint8_t cursor[SL_LEVELS][SL_MANIFEST_MAX_KEY];
	uint32_t cursor_len[SL_LEVELS];
	/* The merge job's buffers, kept between jobs and grown on -ENOSPC. */
	uint8_t *out, *bloom;
	size_t out_cap, bloom_cap;
	struct sl_accel_block *blocks;
	size_t blocks_cap;
};

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int sl__compactor_new(const struct sl_compact_config *c, struct sl_compactor **out)
{
	struct sl_compactor *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->c = *c;
	if (!k->c.l0_trigger)
		k->c.l0_trigger = DEFAULT_L0_TRIGGER;
	if (!k->c.base_bytes)
		k->c.base_bytes = DEFAULT_BASE_BYTES;
	if (k->c.ratio < 2)
		k->c.ratio = DEFAULT_RATIO;
	if (!k->c.table_bytes)
		k->c.table_bytes = DEFAULT_TABLE_BYTES;
	k->dir = strdup(c->dir);
	if (!k->dir) {
		free(k);
		return -ENOMEM;
	}
	k->c.dir = k->dir;
	*out = k;
	return 0;
}

void sl__compactor_free(struct sl_compactor *k)
{
	if (!k)
		return;
	free(k->out);
	free(k->bloom);
	free(k->blocks);
	free(k->dir);
	free(k);
}

/* ---- Picking -------------------------------------------------------------------------------- */

static uint64_t level_bytes(const struct sl_version *v, int l)
{
	uint64_t b = 0;
	for (size_t i = 0; i < v->n[l]; i++)
		b += v->tables[l][i].file_bytes;
	return b;
}

static uint64_t level_target(const struct sl_compactor *k, int l)
{
	uint64_t t = k->c.base_bytes;
	for (int i = 1; i < l; i++)
		t = t > UINT64_MAX / k->c.ratio ? UINT64_MAX : t * k->c.ratio;
	return t;
}

double sl__compact_score(const struct sl_compactor *k, const struct sl_version *v, int level)
{
	if (level < 0 || level >= SL_STATE_BOTTOM)
		return 0;
	if (level == 0)
		return (double)v->n[0] / k->c.l0_trigger;
	return (double)level_bytes(v, level) / (double)level_target(k, level);
}

static int overlaps(const struct sl_table_info *t, const uint8_t *lo, size_t lo_len,
		    const uint8_t *hi, size_t hi_len)
{
	return key_cmp(t->largest, t->largest_len, lo, lo_len) >= 0 &&
	       key_cmp(t->smallest, t->smallest_len, hi, hi_len) <= 0;
}

/* The key range of a set of tables. */
static void range_of(const struct sl_table_info *const *t, size_t n, const uint8_t **lo,
		     size_t *lo_len, const uint8_t **hi, size_t *hi_len)
{
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || key_cmp(t[i]->smallest, t[i]->smallest_len, *lo, *lo_len) < 0) {
			*lo = t[i]->smallest;
			*lo_len = t[i]->smallest_len;
		}
		if (i == 0 || key_cmp(t[i]->largest, t[i]->largest_len, *hi, *hi_len) > 0) {
			*hi = t[i]->largest;
			*hi_len = t[i]->largest_len;
		}
	}
}

static struct sl_compact_run *add_run(struct sl_compact_pick *p, int level, size_t cap)
{
	struct sl_compact_run *r = &p->runs[p->n_runs];
	r->t = calloc(cap ? cap : 1, sizeof(*r->t));
	if (!r->t)
		return NULL;
	r->level = level;
	r->n = 0;
	p->n_runs++;
	return r;
}

static void run_push(struct sl_compact_pick *p, struct sl_compact_run *r,
		     const struct sl_table_info *t)
{
	r->t[r->n++] = *t;
	p->in_bytes += t->file_bytes;
}

void sl__compact_pick_free(struct sl_compact_pick *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_runs; i++)
		free(p->runs[i].t);
	free(p->runs);
	free(p);
}

/* Does any state level deeper than out hold a table overlapping [lo, hi]? */
static int deeper_overlap(const struct sl_version *v, int out, const uint8_t *lo, size_t lo_len,
			  const uint8_t *hi, size_t hi_len)
{
	for (int l = out + 1; l <= SL_STATE_BOTTOM; l++)
		for (size_t i = 0; i < v->n[l]; i++)
			if (overlaps(&v->tables[l][i], lo, lo_len, hi, hi_len))
				return 1;
	return 0;
}

/* Level l's tables overlapping [lo, hi], in key order, into a new run. */
static int add_overlapping(struct sl_compact_pick *p, const struct sl_version *v, int l,
			   const uint8_t *lo, size_t lo_len, const uint8_t *hi, size_t hi_len)
{
	size_t cnt = 0;
	for (size_t i = 0; i < v->n[l]; i++)
		cnt += overlaps(&v->tables[l][i], lo, lo_len, hi, hi_len);
	if (!cnt)
		return 0;
	struct sl_compact_run *r = add_run(p, l, cnt);
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < v->n[l]; i++)
		if (overlaps(&v->tables[l][i], lo, lo_len, hi, hi_len))
			run_push(p, r, &v->tables[l][i]);
	return 0;
}

static int pick_full(const struct sl_version *v, struct sl_compact_pick *p)
{
	int deepest = 0;
	for (int l = 0; l <= SL_STATE_BOTTOM; l++)
		if (v->n[l])
			deepest = l;
	size_t l0 = v->n[0];
	/* Level 0 newest first: with too many for one merge, take the oldest (the newer ones
	 * stay above the output, which keeps the order of versions). */
	size_t skip = 0, room = SL_ACCEL_MAX_RUNS - SL_STATE_BOTTOM;
	if (l0 > room)
		skip = l0 - room;
	p->out_level = deepest ? deepest : 1;
	p->full = 1;
	p->drop_tombstones = 1; /* every state level is an input below the output */
	for (size_t i = skip; i < l0; i++) {
		struct sl_compact_run *r = add_run(p, 0, 1);
		if (!r)
			return -ENOMEM;
		run_push(p, r, &v->tables[0][i]);
	}
	if (skip)
		p->drop_tombstones = 0; /* newer level-0 tables stay above: keep it simple */
	for (int l = 1; l <= SL_STATE_BOTTOM; l++) {
		if (!v->n[l])
			continue;
		struct sl_compact_run *r = add_run(p, l, v->n[l]);
		if (!r)
			return -ENOMEM;
		for (size_t i = 0; i < v->n[l]; i++)
			run_push(p, r, &v->tables[l][i]);
	}
	return p->n_runs ? 1 : 0;
}

static int pick_level0(const struct sl_version *v, struct sl_compact_pick *p)
{
	size_t n = v->n[0] < SL_ACCEL_MAX_RUNS - 1 ? v->n[0] : SL_ACCEL_MAX_RUNS - 1;
	size_t skip = v->n[0] - n;
	const struct sl_table_info *in[SL_ACCEL_MAX_RUNS];
	for (size_t i = 0; i < n; i++) {
		in[i] = &v->tables[0][skip + i];
		struct sl_compact_run *r = add_run(p, 0, 1);
		if (!r)
			return -ENOMEM;
		run_push(p, r, in[i]);
	}
	const uint8_t *lo = NULL, *hi = NULL;
	size_t lo_len = 0, hi_len = 0;
	range_of(in, n, &lo, &lo_len, &hi, &hi_len);
	p->out_level = 1;
	int rr = add_overlapping(p, v, 1, lo, lo_len, hi, hi_len);
	if (rr)
		return rr;
	/* The level-1 inputs may widen the range. */
	const uint8_t *l1 = lo, *h1 = hi;
	size_t l1n = lo_len, h1n = hi_len;
	struct sl_compact_run *last = &p->runs[p->n_runs - 1];
	if (last->level == 1) {
		if (key_cmp(last->t[0].smallest, last->t[0].smallest_len, l1, l1n) < 0)
			l1 = last->t[0].smallest, l1n = last->t[0].smallest_len;
		const struct sl_table_info *e = &last->t[last->n - 1];
		if (key_cmp(e->largest, e->largest_len, h1, h1n) > 0)
			h1 = e->largest, h1n = e->largest_len;
	}
	p->drop_tombstones = skip == 0 && !deeper_overlap(v, 1, l1, l1n, h1, h1n);
	return 1;
}

static int pick_level(struct sl_compactor *k, const struct sl_version *v, int l,
		      struct sl_compact_pick *p)
{
	/* The first table after the cursor, wrapping around. */
	size_t i = 0;
	if (k->cursor_len[l])
		while (i < v->n[l] && key_cmp(v->tables[l][i].largest, v->tables[l][i].largest_len,
					      k->cursor[l], k->cursor_len[l]) <= 0)
			i++;
	if (i == v->n[l])
		i = 0;
	const struct sl_table_info *t = &v->tables[l][i];
	memcpy(k->cursor[l], t->largest, t->largest_len);
	k->cursor_len[l] = t->largest_len;
	struct sl_compact_run *r = add_run(p, l, 1);
	if (!r)
		return -ENOMEM;
	run_push(p, r, t);
	p->out_level = l + 1;
	int rr = add_overlapping(p, v, l + 1, t->smallest, t->smallest_len, t->largest,
				 t->largest_len);
	if (rr)
		return rr;
	const uint8_t *lo = t->smallest, *hi = t->largest;
	size_t lo_len = t->smallest_len, hi_len = t->largest_len;
	struct sl_compact_run *last = &p->runs[p->n_runs - 1];
	if (last->level == l + 1) {
		if (key_cmp(last->t[0].smallest, last->t[0].smallest_len, lo, lo_len) < 0)
			lo = last->t[0].smallest, lo_len = last->t[0].smallest_len;
		const struct sl_table_info *e = &last->t[last->n - 1];
		if (key_cmp(e->largest, e->largest_len, hi, hi_len) > 0)
			hi = e->largest, hi_len = e->largest_len;
	}
	p->drop_tombstones = !deeper_overlap(v, l + 1, lo, lo_len, hi, hi_len);
	return 1;
}

int sl__compact_pick(struct sl_compactor *k, const struct sl_version *v, int full,
		     struct sl_compact_pick **out)
{
	*out = NULL;
	struct sl_compact_pick *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->runs = calloc(SL_ACCEL_MAX_RUNS, sizeof(*p->runs));
	if (!p->runs) {
		free(p);
		return -ENOMEM;
	}
	int r = 0;
	if (full) {
		r = pick_full(v, p);
	} else {
		int best = -1;
		double best_score = 1.0;
		for (int l = 0; l < SL_STATE_BOTTOM; l++) {
			double s = sl__compact_score(k, v, l);
			if (s >= best_score && (l > 0 ? v->n[l] > 0 : v->n[0] > 0)) {
				best = l;
				best_score = s;
			}
		}
		if (best == 0)
			r = pick_level0(v, p);
		else if (best > 0)
			r = pick_level(k, v, best, p);
	}
	if (r <= 0) {
		sl__compact_pick_free(p);
		return r;
	}
	*out = p;
	return 1;
}

/* ---- Running -------------------------------------------------------------------------------- */

/* One input block: where it is and the last key it holds. */
struct iblock {
	struct sl_accel_buf data;
	const uint8_t *last;
	size_t last_len;
};

/* A run's blocks over all its tables, in key order. */
struct irun {
	struct iblock *b;
	size_t n;
};

struct cut {
	const uint8_t *key;
	size_t len;
	uint32_t bytes;
};

static int cut_cmp(const void *a, const void *b)
{
	const struct cut *x = a, *y = b;
	return key_cmp(x->key, x->len, y->key, y->len);
}

/* The first block of r whose last key is > key (or >= key with inclusive), n when none. */
static size_t first_after(const struct irun *r, const uint8_t *key, size_t len, int inclusive)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(r->b[mid].last, r->b[mid].last_len, key, len);
		if (c < 0 || (c == 0 && !inclusive))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int grow_buf(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 1;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static void table_path(const struct sl_compactor *k, uint64_t file_no, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".sst", k->dir, file_no);
}

/* State shared by the jobs of one compaction. */
struct run_ctx {
	struct sl_compactor *k;
	struct sl_manifest *m;
	struct sl_tables *tc;
	const struct sl_compact_pick *p;
	struct irun *runs;
	struct sl_accel_run *aruns;
	struct sl_accel_buf *abufs; /* every run's job slice, back to back */
	uint64_t min_seq, max_seq;
	struct sl_table_info *outs;
	size_t n_outs, outs_cap;
	struct sl_compact_result *res;
};

/* Merge the keys in (lo, hi] (lo NULL: from the start; hi NULL: to the end) into one table. */
static int run_job(struct run_ctx *x, const uint8_t *lo, size_t lo_len, const uint8_t *hi,
		   size_t hi_len)
{
	struct sl_compactor *k = x->k;
	size_t nb = 0, in_bytes = 0;
	for (size_t r = 0; r < x->p->n_runs; r++) {
		const struct irun *ir = &x->runs[r];
		size_t a = lo ? first_after(ir, lo, lo_len, 0) : 0;
		size_t b = hi ? first_after(ir, hi, hi_len, 1) : ir->n;
		if (b < ir->n)
			b++; /* the block holding hi (or the first past it) */
		if (a > b)
			a = b;
		x->aruns[r].blocks = x->abufs + nb;
		x->aruns[r].n_blocks = b - a;
		for (size_t i = a; i < b; i++) {
			x->abufs[nb++] = ir->b[i].data;
			in_bytes += ir->b[i].data.len;
		}
	}
	if (!nb)
		return 0;
	struct sl_accel_merge_job j;
	int r;
	size_t need_out = in_bytes + in_bytes / 8 + 4096, need_blocks = need_out / 512 + 16,
	       need_bloom = 4096;
	for (int attempt = 0;; attempt++) {
		if ((r = grow_buf((void **)&k->out, &k->out_cap, need_out, 1)) ||
		    (r = grow_buf((void **)&k->blocks, &k->blocks_cap, need_blocks,
				  sizeof(*k->blocks))) ||
		    (r = grow_buf((void **)&k->bloom, &k->bloom_cap, need_bloom, 1)))
			return r;
		memset(&j, 0, sizeof(j));
		j.runs = x->aruns;
		j.n_runs = x->p->n_runs;
		j.lo = lo;
		j.lo_len = lo ? lo_len : 0;
		j.hi = hi;
		j.hi_len = hi ? hi_len : 0;
		j.flags = x->p->drop_tombstones ? SL_ACCEL_MERGE_DROP_TOMBSTONES : 0;
		j.block_bytes = k->c.block_bytes;
		j.out = k->out;
		j.out_cap = k->out_cap;
		j.blocks = k->blocks;
		j.blocks_cap = k->blocks_cap;
		j.bloom = k->bloom;
		j.bloom_cap = k->bloom_cap;
		r = sl__accel_merge(k->c.accel, &j);
		if (r != -ENOSPC || attempt == 3)
			break;
		need_out = j.need_out > need_out ? j.need_out : need_out;
		need_blocks = j.need_blocks > need_blocks ? j.need_blocks : need_blocks;
		need_bloom = j.need_bloom > need_bloom ? j.need_bloom : need_bloom;
	}
	if (r == SL_ECORRUPT) {
		/* Name the table: find which of the run's tables holds the bad block. */
		const struct sl_compact_run *cr = &x->p->runs[j.bad_run];
		const struct sl_accel_buf *bad = &j.runs[j.bad_run].blocks[j.bad_block];
		const char *what = "?";
		for (size_t t = 0; t < cr->n; t++) {
			struct sl_sst *s;
			if (sl__tables_get(x->tc, cr->t[t].file_no, &s))
				continue;
			uint64_t cnt = sl__sst_block_count(s);
			struct sl_accel_buf first, lastb;
			const uint8_t *kk;
			size_t kl;
			sl__sst_block(s, 0, &first, &kk, &kl);
			sl__sst_block(s, cnt - 1, &lastb, &kk, &kl);
			const uint8_t *bp = bad->data, *fp = first.data, *lp = lastb.data;
			if (bp >= fp && bp <= lp) {
				fprintf(stderr, "sluice: compact: %s at offset %zu: damaged data block "
					"(compaction stopped, the store is unchanged)\n",
					sl__sst_path(s), (size_t)(bp - fp));
				what = NULL;
			}
			sl__tables_put(x->tc, s);
			if (!what)
				break;
		}
		if (what)
			fprintf(stderr, "sluice: compact: a damaged input block (run %zu block %zu)\n",
				j.bad_run, j.bad_block);
		return r;
	}
	if (r)
		return r;
	x->res->jobs++;
	x->res->entries_in += j.entries_in;
	x->res->entries_out += j.entries_out;
	x->res->dropped_older += j.dropped_older;
	x->res->dropped_tombstones += j.dropped_tombstones;
	if (!j.entries_out)
		return 0;
	if ((r = grow_buf((void **)&x->outs, &x->outs_cap, x->n_outs + 1, sizeof(*x->outs))))
		return r;
	uint64_t no = sl__manifest_new_file_no(x->m);
	char path[4200];
	table_path(k, no, path, sizeof(path));
	struct sl_sst_options o = { .no_sync = k->c.no_sync, .user = { x->min_seq, x->max_seq } };
	struct sl_sst_meta meta;
	if ((r = sl__sst_write_merged(k->c.os, k->c.accel, path, &o, &j, &meta)))
		return r;
	struct sl_table_info *t = &x->outs[x->n_outs++];
	memset(t, 0, sizeof(*t));
	t->file_no = no;
	t->level = (uint32_t)x->p->out_level;
	t->file_bytes = meta.file_bytes;
	t->entries = meta.entries;
	memcpy(t->smallest, meta.smallest, meta.smallest_len);
	t->smallest_len = meta.smallest_len;
	memcpy(t->largest, meta.largest, meta.largest_len);
	t->largest_len = meta.largest_len;
	t->min_seq = x->min_seq;
	t->max_seq = x->max_seq;
	x->res->tables_out++;
	x->res->bytes_out += meta.file_bytes;
	return 0;
}

/* Cut keys: walking every input block's last key in order, one each time about table_bytes of
 * input has gone by. */
static int make_cuts(struct run_ctx *x, size_t total_blocks, struct cut **cuts, size_t *ncuts)
{
	*cuts = NULL;
	*ncuts = 0;
	struct cut *all = malloc((total_blocks ? total_blocks : 1) * sizeof(*all));
	if (!all)
		return -ENOMEM;
	size_t n = 0;
	for (size_t r = 0; r < x->p->n_runs; r++)
		for (size_t i = 0; i < x->runs[r].n; i++)
			all[n++] = (struct cut){ x->runs[r].b[i].last, x->runs[r].b[i].last_len,
						 (uint32_t)x->runs[r].b[i].data.len };
	qsort(all, n, sizeof(*all), cut_cmp);
	size_t out = 0;
	uint64_t acc = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		acc += all[i].bytes;
		/* Equal keys (the same key ending blocks of several runs) cut once, at the last. */
		if (acc >= x->k->c.table_bytes &&
		    key_cmp(all[i].key, all[i].len, all[i + 1].key, all[i + 1].len) != 0) {
			all[out++] = all[i];
			acc = 0;
		}
	}
	*cuts = all;
	*ncuts = out;
	return 0;
}

static void forget_outputs(struct run_ctx *x)
{
	for (size_t i = 0; i < x->n_outs; i++) {
		char path[4200];
		table_path(x->k, x->outs[i].file_no, path, sizeof(path));
		x->k->c.os->ops->unlink(x->k->c.os->ctx, path);
	}
}

int sl__compact_run(struct sl_compactor *k, struct sl_manifest *m, struct sl_tables *tc,
		    const struct sl_compact_pick *p, struct sl_compact_result *res)
{
	memset(res, 0, sizeof(*res));
	struct run_ctx x = { .k = k, .m = m, .tc = tc, .p = p, .res = res, .min_seq = UINT64_MAX };
	size_t ntables = 0;
	for (size_t r = 0; r < p->n_runs; r++)
		ntables += p->runs[r].n;
	struct sl_sst **held = calloc(ntables ? ntables : 1, sizeof(*held));
	x.runs = calloc(p->n_runs ? p->n_runs : 1, sizeof(*x.runs));
	x.aruns = calloc(p->n_runs ? p->n_runs : 1, sizeof(*x.aruns));
	int rc = -ENOMEM;
	size_t nheld = 0, total_blocks = 0;
	struct cut *cuts = NULL;
	size_t ncuts = 0;
	if (!held || !x.runs || !x.aruns)
		goto out;
	/* Open every input and list its blocks. */
	for (size_t r = 0; r < p->n_runs; r++) {
		size_t nb = 0;
		for (size_t t = 0; t < p->runs[r].n; t++) {
			const struct sl_table_info *ti = &p->runs[r].t[t];
			if ((rc = sl__tables_get(tc, ti->file_no, &held[nheld])) < 0)
				goto out;
			nb += sl__sst_block_count(held[nheld++]);
			res->tables_in++;
			res->bytes_in += ti->file_bytes;
			if (ti->min_seq < x.min_seq)
				x.min_seq = ti->min_seq;
			if (ti->max_seq > x.max_seq)
				x.max_seq = ti->max_seq;
		}
		rc = -ENOMEM;
		x.runs[r].b = malloc((nb ? nb : 1) * sizeof(*x.runs[r].b));
		if (!x.runs[r].b)
			goto out;
		total_blocks += nb;
	}
	if (x.min_seq == UINT64_MAX)
		x.min_seq = 0;
	for (size_t r = 0, h = 0; r < p->n_runs; r++) {
		for (size_t t = 0; t < p->runs[r].n; t++, h++) {
			uint64_t cnt = sl__sst_block_count(held[h]);
			for (uint64_t i = 0; i < cnt; i++) {
				struct iblock *b = &x.runs[r].b[x.runs[r].n++];
				sl__sst_block(held[h], i, &b->data, &b->last, &b->last_len);
			}
		}
	}
	x.abufs = malloc((total_blocks ? total_blocks : 1) * sizeof(*x.abufs));
	if (!x.abufs)
		goto out;
	if ((rc = make_cuts(&x, total_blocks, &cuts, &ncuts)))
		goto out;
	for (size_t c = 0; c <= ncuts; c++) {
		const uint8_t *lo = c ? cuts[c - 1].key : NULL, *hi = c < ncuts ? cuts[c].key : NULL;
		size_t lo_len = c ? cuts[c - 1].len : 0, hi_len = c < ncuts ? cuts[c].len : 0;
		if (k->c.stop && __atomic_load_n(k->c.stop, __ATOMIC_ACQUIRE)) {
			rc = -ECANCELED;
			goto out_unlink;
		}
		if ((rc = run_job(&x, lo, lo_len, hi, hi_len)))
			goto out_unlink;
	}
	/* One edit: the outputs in, the inputs out. */
	rc = -ENOMEM;
	res->obsolete = malloc((ntables ? ntables : 1) * sizeof(*res->obsolete));
	if (!res->obsolete)
		goto out_unlink;
	for (size_t r = 0; r < p->n_runs; r++)
		for (size_t t = 0; t < p->runs[r].n; t++)
			res->obsolete[res->n_obsolete++] = p->runs[r].t[t].file_no;
	struct sl_manifest_edit e = {
		.add = x.outs, .n_add = x.n_outs, .del = res->obsolete, .n_del = res->n_obsolete
	};
	if ((rc = sl__manifest_apply(m, &e))) {
		free(res->obsolete);
		res->obsolete = NULL;
		res->n_obsolete = 0;
		goto out_unlink;
	}
	goto out;
out_unlink:
	forget_outputs(&x);
out:
	for (size_t i = 0; i < nheld; i++)
		sl__tables_put(tc, held[i]);
	free(held);
	if (x.runs)
		for (size_t r = 0; r < p->n_runs; r++)
			free(x.runs[r].b);
	free(x.runs);
	free(x.aruns);
	free(x.abufs);
	free(x.outs);
	free(cuts);
	return rc;
}

void sl__compact_result_free(struct sl_compact_result *res)
{
	free(res->obsolete);
	res->obsolete = NULL;
	res->n_obsolete = 0;
}
