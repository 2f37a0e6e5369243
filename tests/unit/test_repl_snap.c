/* test_repl_snap.c - the snapshot table channel (repl_snap.c) over real loopback TCP: the
 * description's round trip and its damage; a file of several chunks fetched byte for byte; a
 * client with another key or cluster id refused on both sides (and counted); a file the server
 * lacks; a chunk damaged in transit and a size other than described caught, the partial file
 * removed; a second fetch on the same connection after an error; the newest kept snapshot.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "repl_snap.h"
#include "sluice.h"
#include "testutil.h"

#define SNAP_ID 0x18ea5996c1689f59ull
#define FILE_NO 0x2aull
#define FILE_BYTES ((3u << 20) + 12345u) /* four chunks, the last a short one */

struct fix {
	char dir[256], root[300], addr[64], dst[320];
	struct sl_snapsrv *srv;
	uint8_t *data;
};

static const uint8_t KEY[] = "0123456789abcdef0123456789abcdef";

static struct sl_snap_auth auth(uint64_t node, const char *key, const char *cluster)
{
	return (struct sl_snap_auth){ (const uint8_t *)key, strlen(key), cluster, node };
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	assert_non_null(sl_test_mkdtemp(f->dir, sizeof(f->dir), "repl_snap"));
	snprintf(f->root, sizeof(f->root), "%s/snap", f->dir);
	assert_int_equal(mkdir(f->root, 0755), 0);
	char sdir[400], path[500];
	snprintf(sdir, sizeof(sdir), "%s/%016llx", f->root, (unsigned long long)SNAP_ID);
	assert_int_equal(mkdir(sdir, 0755), 0);
	snprintf(path, sizeof(path), "%s/%016llx.sst", sdir, (unsigned long long)FILE_NO);
	f->data = malloc(FILE_BYTES);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < FILE_BYTES; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		f->data[i] = (uint8_t)x;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->data, FILE_BYTES), FILE_BYTES);
	close(fd);
	snprintf(f->dst, sizeof(f->dst), "%s/fetched.sst", f->dir);
	/* A port of our own: the pid spreads concurrent runs. */
	for (int tries = 0; tries < 20; tries++) {
		snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d",
			 30000 + (int)((getpid() * 7 + tries * 131) % 20000));
		struct sl_snap_auth a = auth(1, (const char *)KEY, "ci");
		if (sl__snapsrv_open(f->addr, f->root, &a, &f->srv) == 0)
			break;
	}
	assert_non_null(f->srv);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	sl__snapsrv_close(f->srv);
	sl_test_rm_rf(f->dir);
	free(f->data);
	free(f);
	return 0;
}

static void test_desc_roundtrip_and_damage(void **state)
{
	(void)state;
	struct sl_table_info t[3];
	memset(t, 0, sizeof(t));
	for (int i = 0; i < 3; i++) {
		t[i].file_no = 100 + (uint64_t)i;
		t[i].level = (uint32_t)i * 3;
		t[i].file_bytes = 4096u * (uint64_t)(i + 1);
		t[i].entries = 10u + (uint64_t)i;
		t[i].smallest_len = 5;
		memcpy(t[i].smallest, "alpha", 5);
		t[i].largest_len = SL_MANIFEST_MAX_KEY;
		memset(t[i].largest, 0x7f - i, SL_MANIFEST_MAX_KEY);
		t[i].min_seq = 1 + 1000u * (uint64_t)i;
		t[i].max_seq = 999 + 1000u * (uint64_t)i;
	}
	void *p;
	size_t len, n;
	assert_int_equal(sl__snap_desc_encode(SNAP_ID, t, 3, &p, &len), 0);
	assert_int_equal(len, 24 + 3 * 184);
	uint64_t id;
	struct sl_table_info *back;
	assert_int_equal(sl__snap_desc_decode(p, len, &id, &back, &n), 0);
	assert_int_equal(id, SNAP_ID);
	assert_int_equal(n, 3);
	assert_memory_equal(back, t, sizeof(t));
	free(back);
	/* Every single bit flipped, and every length short of the whole, is refused. */
	for (size_t bit = 0; bit < len * 8; bit += 3) {
		((uint8_t *)p)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int r = sl__snap_desc_decode(p, len, &id, &back, &n);
		((uint8_t *)p)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(r, SL_ECORRUPT);
	}
	for (size_t cut = 0; cut < len; cut += 23)
		assert_int_equal(sl__snap_desc_decode(p, cut, &id, &back, &n), SL_ECORRUPT);
	free(p);
	/* No tables: a snapshot of an empty store. */
	assert_int_equal(sl__snap_desc_encode(7, NULL, 0, &p, &len), 0);
	assert_int_equal(sl__snap_desc_decode(p, len, &id, &back, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(id, 7);
	free(back);
	free(p);
}

static void test_fetch_exact(void **state)
{
	struct fix *f = *state;
	struct sl_snap_auth a = auth(2, (const char *)KEY, "ci");
	struct sl_snapcli *c;
	char why[512];
	assert_int_equal(sl__snapcli_open(f->addr, &a, 5000, &c, why, sizeof(why)), 0);
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO, FILE_BYTES, f->dst, why,
					 sizeof(why)), 0);
	size_t n;
	uint8_t *got = sl_test_slurp(f->dst, &n);
	assert_int_equal(n, FILE_BYTES);
	assert_memory_equal(got, f->data, FILE_BYTES);
	free(got);
	/* Again on the same connection. */
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO, FILE_BYTES, f->dst, why,
					 sizeof(why)), 0);
	sl__snapcli_close(c);
	struct sl_snapsrv_stats st;
	sl__snapsrv_get_stats(f->srv, &st);
	assert_int_equal(st.files_served, 2);
	assert_int_equal(st.bytes_served, 2ull * FILE_BYTES);
	assert_int_equal(st.refused, 0);
}

static void test_wrong_key_or_cluster_refused(void **state)
{
	struct fix *f = *state;
	struct sl_snapcli *c = NULL;
	char why[512];
	struct sl_snap_auth bad = auth(3, "another key of 32 bytes.........", "ci");
	assert_int_equal(sl__snapcli_open(f->addr, &bad, 5000, &c, why, sizeof(why)), -EACCES);
	assert_null(c);
	assert_non_null(strstr(why, f->addr));
	struct sl_snap_auth other = auth(3, (const char *)KEY, "another-cluster");
	assert_int_equal(sl__snapcli_open(f->addr, &other, 5000, &c, why, sizeof(why)), -EACCES);
	/* The refusals are counted once each connection thread has finished. */
	struct sl_snapsrv_stats st;
	for (int i = 0; i < 200; i++) {
		sl__snapsrv_get_stats(f->srv, &st);
		if (st.refused == 2)
			break;
		usleep(10000);
	}
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.files_served, 0);
	/* Nothing listens there: refused at connect. */
	assert_int_equal(sl__snapcli_open("127.0.0.1:1", &bad, 1000, &c, why, sizeof(why)),
			 -ECONNREFUSED);
	assert_int_equal(sl__snapcli_open("no-port", &bad, 1000, &c, why, sizeof(why)),
			 SL_ECONFIG);
}

static void test_missing_damaged_and_short(void **state)
{
	struct fix *f = *state;
	struct sl_snap_auth a = auth(2, (const char *)KEY, "ci");
	struct sl_snapcli *c;
	char why[512];
	assert_int_equal(sl__snapcli_open(f->addr, &a, 5000, &c, why, sizeof(why)), 0);
	/* A snapshot or a file the server does not hold. */
	assert_int_equal(sl__snapcli_get(c, SNAP_ID + 1, FILE_NO, FILE_BYTES, f->dst, why,
					 sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "does not hold"));
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO + 1, FILE_BYTES, f->dst, why,
					 sizeof(why)), -ENOENT);
	assert_false(sl_test_file_exists(f->dst));
	/* The description promised another size: caught at the end, the file removed. */
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO, FILE_BYTES - 1, f->dst, why,
					 sizeof(why)), SL_ECORRUPT);
	assert_non_null(strstr(why, "described"));
	assert_false(sl_test_file_exists(f->dst));
	/* The connection is still good after those. */
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO, FILE_BYTES, f->dst, why,
					 sizeof(why)), 0);
	/* A bit flipped in the third chunk on the wire: that chunk's CRC32C catches it. */
	sl__snapsrv_damage_chunk(f->srv, 3);
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO, FILE_BYTES, f->dst, why,
					 sizeof(why)), SL_ECORRUPT);
	assert_non_null(strstr(why, "offset 2097152 fails its CRC32C"));
	assert_false(sl_test_file_exists(f->dst));
	sl__snapcli_close(c);
	/* A fresh connection once the server is well again. */
	sl__snapsrv_damage_chunk(f->srv, 0);
	assert_int_equal(sl__snapcli_open(f->addr, &a, 5000, &c, why, sizeof(why)), 0);
	assert_int_equal(sl__snapcli_get(c, SNAP_ID, FILE_NO, FILE_BYTES, f->dst, why,
					 sizeof(why)), 0);
	sl__snapcli_close(c);
	struct sl_snapsrv_stats st;
	sl__snapsrv_get_stats(f->srv, &st);
	assert_int_equal(st.missing, 2);
}

/* Op 3: the newest snapshot whose description the server kept (DESC), for an installer whose
 * own snapshot's files are gone; none kept: -ENOENT. */
static void test_latest(void **state)
{
	struct fix *f = *state;
	struct sl_snap_auth a = auth(2, (const char *)KEY, "ci");
	struct sl_snapcli *c;
	char why[512];
	uint64_t cp = 0;
	void *d = NULL;
	size_t dl = 0;
	assert_int_equal(sl__snapcli_open(f->addr, &a, 5000, &c, why, sizeof(why)), 0);
	assert_int_equal(sl__snapcli_latest(c, &cp, &d, &dl), -ENOENT);
	struct sl_table_info t = { .file_no = FILE_NO, .file_bytes = FILE_BYTES, .level = 1 };
	void *enc;
	size_t elen;
	assert_int_equal(sl__snap_desc_encode(SNAP_ID, &t, 1, &enc, &elen), 0);
	char path[600];
	snprintf(path, sizeof(path), "%s/%016llx/DESC", f->root, (unsigned long long)SNAP_ID);
	FILE *o = fopen(path, "wb");
	uint64_t want = 123456;
	fwrite(&want, 8, 1, o);
	fwrite(enc, 1, elen, o);
	fclose(o);
	/* An older snapshot without a kept description does not count; a newer one would. */
	snprintf(path, sizeof(path), "%s/%016llx", f->root, (unsigned long long)SNAP_ID - 5);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(sl__snapcli_latest(c, &cp, &d, &dl), 0);
	assert_int_equal(cp, want);
	assert_int_equal(dl, elen);
	assert_memory_equal(d, enc, elen);
	uint64_t id;
	struct sl_table_info *back;
	size_t n;
	assert_int_equal(sl__snap_desc_decode(d, dl, &id, &back, &n), 0);
	assert_int_equal(id, SNAP_ID);
	assert_int_equal(n, 1);
	/* And the files it names come over as usual. */
	assert_int_equal(sl__snapcli_get(c, id, back[0].file_no, back[0].file_bytes, f->dst, why,
					 sizeof(why)), 0);
	free(back);
	free(d);
	free(enc);
	sl__snapcli_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desc_roundtrip_and_damage),
		cmocka_unit_test_setup_teardown(test_fetch_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key_or_cluster_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_missing_damaged_and_short, setup, teardown),
		cmocka_unit_test_setup_teardown(test_latest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
