/* test_accel.c - unit tests of the accelerator seam and its cpu backend: CRC32C against known
 * vectors and against a bitwise reference written here from the definition (so an error in
 * ISA-L's use cannot hide behind the same error in the test), batches of mixed sizes and
 * alignments equal to one-by-one results, and backend selection by name. Links accel.o,
 * accel_cpu.o and err.o only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "accel.h"
#include "sluice.h"

/* CRC32C by the definition: reflected polynomial 0x82F63B78, init and final xor ~0. */
static uint32_t crc32c_ref(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
	}
	return c ^ 0xFFFFFFFFu;
}

static uint64_t rng_state = 0x5eed;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct sl_accel *open_cpu(void)
{
	struct sl_accel *a = NULL;
	assert_int_equal(sl__accel_open("cpu", &a), 0);
	assert_non_null(a);
	return a;
}

/* ---- CRC32C ------------------------------------------------------------------------------- */

static void test_crc32c_known_vectors(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	uint8_t zeros[32], ones[32];
	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xFF, sizeof(ones));
	/* The check value of the Castagnoli CRC, and the iSCSI vectors of RFC 3720 B.4. */
	assert_int_equal(sl__accel_crc32c(a, "123456789", 9), 0xE3069283u);
	assert_int_equal(sl__accel_crc32c(a, "", 0), 0);
	assert_int_equal(sl__accel_crc32c(a, NULL, 0), 0);
	assert_int_equal(sl__accel_crc32c(a, zeros, 32), 0x8A9136AAu);
	assert_int_equal(sl__accel_crc32c(a, ones, 32), 0x62A8AB43u);
	uint8_t inc[32], dec[32];
	for (int i = 0; i < 32; i++) {
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	assert_int_equal(sl__accel_crc32c(a, inc, 32), 0x46DD794Eu);
	assert_int_equal(sl__accel_crc32c(a, dec, 32), 0x113FDB5Cu);
	/* The reference agrees on the same vectors. */
	assert_int_equal(crc32c_ref("123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c_ref(zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c_ref(inc, 32), 0x46DD794Eu);
	sl__accel_close(a);
}

static void test_crc32c_batch_matches_reference(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	/* Sizes around every kernel's block boundaries, at every alignment 0..15. */
	static const size_t sizes[] = {
		0,  1,	 2,   3,   7,	8,   9,	  15,  16,   17,   31,	 32,   33,   63,    64,
		65, 127, 128, 129, 255, 256, 257, 511, 1023, 1024, 1025, 4095, 4097, 65535, 100003
	};
	enum { NS = sizeof(sizes) / sizeof(sizes[0]), NB = NS * 16 };
	uint8_t *pool = malloc(100003 + 64);
	assert_non_null(pool);
	for (size_t i = 0; i < 100003 + 64; i++)
		pool[i] = (uint8_t)rnd();
	struct sl_accel_buf bufs[NB];
	uint32_t out[NB], one[NB];
	for (size_t i = 0; i < NB; i++) {
		size_t align = i % 16, len = sizes[i / 16];
		bufs[i].data = pool + align + (rnd() % 32);
		bufs[i].len = len;
	}
	memset(out, 0xA5, sizeof(out));
	assert_int_equal(sl__accel_crc32c_batch(a, bufs, NB, out), 0);
	for (size_t i = 0; i < NB; i++) {
		one[i] = sl__accel_crc32c(a, bufs[i].data, bufs[i].len);
		assert_int_equal(one[i], out[i]);
		assert_int_equal(out[i], crc32c_ref(bufs[i].data, bufs[i].len));
	}
	/* n = 0 touches nothing. */
	uint32_t untouched = 0x12345678u;
	assert_int_equal(sl__accel_crc32c_batch(a, bufs, 0, &untouched), 0);
	assert_int_equal(untouched, 0x12345678u);
	free(pool);
	sl__accel_close(a);
}

static void test_crc32c_batch_random_mixed(void **state)
{
	(void)state;
	struct sl_accel *a = open_cpu();
	enum { N = 500 };
	uint8_t *pool = malloc(70000);
	assert_non_null(pool);
	for (size_t i = 0; i < 70000; i++)
		pool[i] = (uint8_t)rnd();
	struct sl_accel_buf bufs[N];
	uint32_t out[N];
	for (int round = 0; round < 20; round++) {
		size_t n = 1 + rnd() % N;
		for (size_t i = 0; i < n; i++) {
			/* Mostly the small records the WAL checksums, now and then a large one. */
			size_t len = rnd() % 8 ? rnd() % 80 : rnd() % 65560;
			bufs[i].len = len;
			bufs[i].data = pool + rnd() % (70000 - len + 1);
		}
		assert_int_equal(sl__accel_crc32c_batch(a, bufs, n, out), 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i], crc32c_ref(bufs[i].data, bufs[i].len));
	}
	free(pool);
	sl__accel_close(a);
}

/* ---- Backend selection -------------------------------------------------------------------- */

static void test_accel_open_by_name(void **state)
{
	(void)state;
	static const char *const ok[] = { "cpu", "auto", NULL };
	for (size_t i = 0; i < 3; i++) {
		struct sl_accel *a = NULL;
		assert_int_equal(sl__accel_open(ok[i], &a), 0);
		assert_non_null(a);
		assert_non_null(a->ops);
		assert_int_equal(a->ops->version, SL_ACCEL_OPS_VERSION);
		assert_string_equal(a->ops->name, "cpu");
		assert_int_equal(sl__accel_crc32c(a, "123456789", 9), 0xE3069283u);
		sl__accel_close(a);
	}
}

static void test_accel_open_unknown_name(void **state)
{
	(void)state;
	static const char *const bad[] = { "gpu", "", "CPU", "cpu ", "opencl-typo" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_accel *a = (struct sl_accel *)0x1;
		assert_int_equal(sl__accel_open(bad[i], &a), SL_ECONFIG);
		/* *out is left alone on failure. */
		assert_ptr_equal(a, (struct sl_accel *)0x1);
	}
}

static void test_accel_close_null(void **state)
{
	(void)state;
	sl__accel_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_vectors),
		cmocka_unit_test(test_crc32c_batch_matches_reference),
		cmocka_unit_test(test_crc32c_batch_random_mixed),
		cmocka_unit_test(test_accel_open_by_name),
		cmocka_unit_test(test_accel_open_unknown_name),
		cmocka_unit_test(test_accel_close_null),
	};
	return cmocka_run_group_tests_name("accel", tests, NULL, NULL);
}
