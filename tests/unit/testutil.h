/* testutil.h - small helpers shared by the test programs: scratch directories and files. Header
 * only (static inline), so a test binary still links nothing but its module and declared
 * dependencies.
 */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int sl_test_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

/* Remove a directory tree; 0 or -1 (errno set). */
static inline int sl_test_rm_rf(const char *dir)
{
	return nftw(dir, sl_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory /tmp/sl_test_<tag>.XXXXXX in buf; buf on success, NULL on failure. */
static inline char *sl_test_mkdtemp(char *buf, size_t cap, const char *tag)
{
	snprintf(buf, cap, "/tmp/sl_test_%s.XXXXXX", tag);
	return mkdtemp(buf);
}

static inline int sl_test_file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Helpers that assert, for test programs that include cmocka.h first. */
#ifdef cmocka_unit_test
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

static inline uint64_t sl_test_file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* The whole file, malloc'ed and NUL-terminated; *n its size. */
static inline uint8_t *sl_test_slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fd);
	b[got] = 0;
	*n = got;
	return b;
}

/* Flip bit `bit` (0..7) of the byte at off, in place. */
static inline void sl_test_flip_bit(const char *path, uint64_t off, int bit)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= (uint8_t)(1u << bit);
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}
#endif

/* The accelerator backend a test opens: SLUICE_ACCEL when tests/run.sh repeats the engine's
 * tests on another backend, else the reference. */
static inline const char *sl_test_accel(void)
{
	const char *e = getenv("SLUICE_ACCEL");
	return e && e[0] ? e : "cpu";
}

#endif /* SL_TESTUTIL_H */
