/* test_os.c - unit tests of the os seam: the default POSIX ops (round trips, listing, locking,
 * directory sync, -errno returns), the pwrite/pread helpers over short transfers, and the fault
 * twin of tests/unit/fault_os.c doing exactly what it is armed to do. Links os.o, err.o and
 * fault_os.o only. Each test works in its own mkdtemp directory and removes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "fault_os.h"
#include "os.h"
#include "sluice.h"
#include "testutil.h"

/* ---- Helpers ------------------------------------------------------------------------------ */

struct tdir {
	char path[64];
};

static void tdir_new(struct tdir *t)
{
	assert_non_null(sl_test_mkdtemp(t->path, sizeof(t->path), "os"));
}

static void tdir_free(struct tdir *t)
{
	assert_int_equal(sl_test_rm_rf(t->path), 0);
}

static void path_in(const struct tdir *t, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", t->path, name);
}

/* Read a whole small file with libc, independent of the code under test. */
static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* Collects the names os->list reports. */
struct names {
	char v[16][64];
	int n;
	int stop_at; /* return 7 from the callback at this entry (1-based), 0: never */
};

static int names_cb(void *arg, const char *name)
{
	struct names *l = arg;
	if (l->n < 16)
		snprintf(l->v[l->n], sizeof(l->v[0]), "%s", name);
	l->n++;
	return l->stop_at && l->n == l->stop_at ? 7 : 0;
}

static int names_has(const struct names *l, const char *name)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (!strcmp(l->v[i], name))
			return 1;
	return 0;
}

/* ---- The default os ----------------------------------------------------------------------- */

static void test_os_pwrite_pread_round_trip(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	const struct sl_os *os = sl__os_default();
	char p[128];
	path_in(&t, "f", p, sizeof(p));
	int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	uint8_t a[5000], b[5000];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(os->ops->pwrite(os->ctx, fd, a, sizeof(a), 0), (ssize_t)sizeof(a));
	/* A write past the end leaves a hole of zeros. */
	assert_int_equal(sl__os_pwrite_all(os, fd, a, 100, 10000), 0);
	uint64_t size = 0;
	assert_int_equal(os->ops->fsize(os->ctx, fd, &size), 0);
	assert_int_equal(size, 10100);
	memset(b, 0, sizeof(b));
	assert_int_equal(sl__os_pread_all(os, fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(sl__os_pread_all(os, fd, b, 200, 9950), 150);
	for (int i = 0; i < 50; i++)
		assert_int_equal(b[i], 0);
	assert_memory_equal(b + 50, a, 100);
	/* At and past the end: 0 bytes. */
	assert_int_equal(sl__os_pread_all(os, fd, b, 10, 10100), 0);
	assert_int_equal(os->ops->pread(os->ctx, fd, b, 10, 20000), 0);
	assert_int_equal(os->ops->fdatasync(os->ctx, fd), 0);
	assert_int_equal(os->ops->fsync(os->ctx, fd), 0);
	/* ftruncate and fallocate change the size as POSIX says. */
	assert_int_equal(os->ops->ftruncate(os->ctx, fd, 64), 0);
	assert_int_equal(os->ops->fsize(os->ctx, fd, &size), 0);
	assert_int_equal(size, 64);
	assert_int_equal(os->ops->fallocate(os->ctx, fd, 0, 1 << 20), 0);
	assert_int_equal(os->ops->fsize(os->ctx, fd, &size), 0);
	assert_int_equal(size, 1 << 20);
	assert_int_equal(sl__os_pread_all(os, fd, b, 64, 0), 64);
	assert_memory_equal(a, b, 64);
	assert_int_equal(os->ops->close(os->ctx, fd), 0);
	/* What another reader sees. */
	uint8_t c[64];
	assert_int_equal(slurp(p, c, sizeof(c)), 64);
	assert_memory_equal(a, c, 64);
	tdir_free(&t);
}

static void test_os_errors_are_negative_errno(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	const struct sl_os *os = sl__os_default();
	char p[128], q[128];
	path_in(&t, "missing", p, sizeof(p));
	path_in(&t, "other", q, sizeof(q));
	assert_int_equal(os->ops->open(os->ctx, p, O_RDONLY, 0), -ENOENT);
	assert_int_equal(os->ops->unlink(os->ctx, p), -ENOENT);
	assert_int_equal(os->ops->rename(os->ctx, p, q), -ENOENT);
	assert_int_equal(os->ops->mkdir(os->ctx, t.path, 0755), -EEXIST);
	assert_int_equal(os->ops->sync_dir(os->ctx, p), -ENOENT);
	struct names l = { .n = 0 };
	assert_int_equal(os->ops->list(os->ctx, p, names_cb, &l), -ENOENT);
	uint64_t size;
	uint8_t b[8] = { 0 };
	assert_int_equal(os->ops->fsize(os->ctx, -1, &size), -EBADF);
	assert_int_equal(os->ops->pwrite(os->ctx, -1, b, 8, 0), -EBADF);
	assert_int_equal(os->ops->pread(os->ctx, -1, b, 8, 0), -EBADF);
	assert_int_equal(os->ops->fdatasync(os->ctx, -1), -EBADF);
	assert_int_equal(os->ops->close(os->ctx, -1), -EBADF);
	assert_int_equal(sl__os_pwrite_all(os, -1, b, 8, 0), -EBADF);
	assert_int_equal(sl__os_pread_all(os, -1, b, 8, 0), -EBADF);
	/* A read-only descriptor refuses writes. */
	path_in(&t, "ro", p, sizeof(p));
	int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(os->ops->close(os->ctx, fd), 0);
	fd = os->ops->open(os->ctx, p, O_RDONLY, 0);
	assert_true(fd >= 0);
	assert_int_equal(sl__os_pwrite_all(os, fd, b, 8, 0), -EBADF);
	assert_int_equal(os->ops->close(os->ctx, fd), 0);
	tdir_free(&t);
}

static void test_os_list_names(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	const struct sl_os *os = sl__os_default();
	struct names l = { .n = 0 };
	assert_int_equal(os->ops->list(os->ctx, t.path, names_cb, &l), 0);
	assert_int_equal(l.n, 0); /* . and .. are not reported */
	static const char *const files[] = { "a", "bb", ".hidden", "0000000000000001.wal" };
	char p[128];
	for (int i = 0; i < 4; i++) {
		path_in(&t, files[i], p, sizeof(p));
		int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT, 0644);
		assert_true(fd >= 0);
		os->ops->close(os->ctx, fd);
	}
	path_in(&t, "sub", p, sizeof(p));
	assert_int_equal(os->ops->mkdir(os->ctx, p, 0755), 0);
	assert_int_equal(os->ops->list(os->ctx, t.path, names_cb, &l), 0);
	assert_int_equal(l.n, 5);
	for (int i = 0; i < 4; i++)
		assert_true(names_has(&l, files[i]));
	assert_true(names_has(&l, "sub"));
	/* A nonzero callback return stops the walk and is returned. */
	struct names s = { .n = 0, .stop_at = 2 };
	assert_int_equal(os->ops->list(os->ctx, t.path, names_cb, &s), 7);
	assert_int_equal(s.n, 2);
	tdir_free(&t);
}

static void test_os_rename_unlink_sync_dir(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	const struct sl_os *os = sl__os_default();
	char a[128], b[128];
	path_in(&t, "x.tmp", a, sizeof(a));
	path_in(&t, "x", b, sizeof(b));
	int fd = os->ops->open(os->ctx, a, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(sl__os_pwrite_all(os, fd, "hello", 5, 0), 0);
	assert_int_equal(os->ops->close(os->ctx, fd), 0);
	assert_int_equal(os->ops->rename(os->ctx, a, b), 0);
	assert_int_equal(os->ops->sync_dir(os->ctx, t.path), 0);
	assert_false(sl_test_file_exists(a));
	assert_int_equal(sl_test_file_size(b), 5);
	assert_int_equal(os->ops->unlink(os->ctx, b), 0);
	assert_false(sl_test_file_exists(b));
	assert_int_equal(os->ops->sync_dir(os->ctx, t.path), 0);
	tdir_free(&t);
}

static void test_os_lock_twice(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	const struct sl_os *os = sl__os_default();
	char p[128];
	path_in(&t, "LOCK", p, sizeof(p));
	int fd = os->ops->lock(os->ctx, p);
	assert_true(fd >= 0);
	assert_true(sl_test_file_exists(p));
	/* A second open file description (as a second process would have) is refused. */
	assert_int_equal(os->ops->lock(os->ctx, p), SL_ELOCKED);
	assert_int_equal(os->ops->lock(os->ctx, p), SL_ELOCKED);
	assert_int_equal(os->ops->close(os->ctx, fd), 0);
	/* Released by close. */
	int fd2 = os->ops->lock(os->ctx, p);
	assert_true(fd2 >= 0);
	assert_int_equal(os->ops->close(os->ctx, fd2), 0);
	/* A lock file that cannot be created. */
	path_in(&t, "nodir/LOCK", p, sizeof(p));
	assert_int_equal(os->ops->lock(os->ctx, p), -ENOENT);
	tdir_free(&t);
}

static void test_os_memory_and_clocks(void **state)
{
	(void)state;
	const struct sl_os *os = sl__os_default();
	uint8_t *p = sl__os_calloc(os, 1000);
	assert_non_null(p);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(p[i], 0);
	p = os->ops->realloc(os->ctx, p, 100000);
	assert_non_null(p);
	sl__os_free(os, p);
	sl__os_free(os, NULL);
	uint64_t m0 = os->ops->mono_ns(os->ctx), n0 = os->ops->now_ns(os->ctx);
	usleep(2000);
	uint64_t m1 = os->ops->mono_ns(os->ctx), n1 = os->ops->now_ns(os->ctx);
	assert_true(m1 - m0 >= 2000000u);
	assert_true(n1 > n0);
	/* Realtime is in the 2020s or later, in nanoseconds. */
	assert_true(n0 > 1577836800ull * 1000000000ull);
}

/* A vtable whose pwrite moves at most 3 bytes per call, and one that moves none. */
static ssize_t short_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
	(void)ctx;
	return pwrite(fd, buf, n < 3 ? n : 3, off);
}

static ssize_t zero_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
	(void)ctx;
	(void)fd;
	(void)buf;
	(void)n;
	(void)off;
	return 0;
}

static ssize_t short_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	(void)ctx;
	return pread(fd, buf, n < 2 ? n : 2, off);
}

static void test_os_pwrite_all_completes_short_writes(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct sl_os_ops ops = *sl__os_default()->ops;
	ops.pwrite = short_pwrite;
	ops.pread = short_pread;
	struct sl_os os = { &ops, NULL };
	char p[128];
	path_in(&t, "f", p, sizeof(p));
	int fd = open(p, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	const char msg[] = "short writes are completed by the helper";
	assert_int_equal(sl__os_pwrite_all(&os, fd, msg, sizeof(msg), 7), 0);
	char back[sizeof(msg)];
	assert_int_equal(sl__os_pread_all(&os, fd, back, sizeof(back), 7), (ssize_t)sizeof(msg));
	assert_memory_equal(back, msg, sizeof(msg));
	ops.pwrite = zero_pwrite;
	assert_int_equal(sl__os_pwrite_all(&os, fd, msg, sizeof(msg), 0), -EIO);
	close(fd);
	tdir_free(&t);
}

/* ---- The fault twin ----------------------------------------------------------------------- */

static void test_fault_os_passes_through(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	assert_non_null(fo);
	const struct sl_os *os = fault_os_get(fo);
	char p[128], q[128];
	path_in(&t, "f", p, sizeof(p));
	path_in(&t, "g", q, sizeof(q));
	int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fault_os_open_fds(fo), 1);
	assert_int_equal(sl__os_pwrite_all(os, fd, "abcdef", 6, 0), 0);
	char b[6];
	assert_int_equal(sl__os_pread_all(os, fd, b, 6, 0), 6);
	assert_memory_equal(b, "abcdef", 6);
	assert_int_equal(os->ops->fdatasync(os->ctx, fd), 0);
	assert_int_equal(os->ops->close(os->ctx, fd), 0);
	assert_int_equal(fault_os_open_fds(fo), 0);
	assert_int_equal(os->ops->rename(os->ctx, p, q), 0);
	assert_int_equal(os->ops->sync_dir(os->ctx, t.path), 0);
	assert_int_equal(sl_test_file_size(q), 6);
	void *m = sl__os_malloc(os, 10);
	assert_non_null(m);
	assert_int_equal(fault_os_live_allocs(fo), 1);
	m = os->ops->realloc(os->ctx, m, 1000);
	assert_non_null(m);
	assert_int_equal(fault_os_live_allocs(fo), 1);
	sl__os_free(os, m);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	assert_int_equal(fault_os_calls(fo, FAULT_OPEN), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_PWRITE), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_PREAD), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_FDATASYNC), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_CLOSE), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_RENAME), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_SYNC_DIR), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_MALLOC), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_REALLOC), 1);
	assert_int_equal(fault_os_calls(fo, FAULT_UNLINK), 0);
	/* Locks pass through too: a second holder is refused. */
	path_in(&t, "LOCK", p, sizeof(p));
	int l1 = os->ops->lock(os->ctx, p);
	assert_true(l1 >= 0);
	assert_int_equal(os->ops->lock(os->ctx, p), SL_ELOCKED);
	assert_int_equal(fault_os_open_fds(fo), 1);
	os->ops->close(os->ctx, l1);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	tdir_free(&t);
}

static void test_fault_os_fail_nth(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	const struct sl_os *os = fault_os_get(fo);
	char p[128];
	path_in(&t, "f", p, sizeof(p));
	int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	/* Once: the 2nd call from now fails, the ones around it pass. */
	fault_os_fail(fo, FAULT_PWRITE, 2, -ENOSPC, 0);
	assert_int_equal(os->ops->pwrite(os->ctx, fd, "a", 1, 0), 1);
	assert_int_equal(os->ops->pwrite(os->ctx, fd, "b", 1, 1), -ENOSPC);
	assert_int_equal(os->ops->pwrite(os->ctx, fd, "c", 1, 2), 1);
	assert_int_equal(sl_test_file_size(p), 3);
	/* Sticky: the 1st from now and every one after. */
	fault_os_fail(fo, FAULT_FDATASYNC, 1, -EIO, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(os->ops->fdatasync(os->ctx, fd), -EIO);
	assert_int_equal(fault_os_calls(fo, FAULT_FDATASYNC), 5);
	assert_int_equal(fault_os_calls(fo, FAULT_PWRITE), 3);
	/* Other ops are unaffected; reset disarms. */
	assert_int_equal(os->ops->fsync(os->ctx, fd), 0);
	fault_os_reset(fo);
	assert_int_equal(os->ops->fdatasync(os->ctx, fd), 0);
	/* Every op can be failed. */
	fault_os_fail(fo, FAULT_OPEN, 1, -EMFILE, 0);
	assert_int_equal(os->ops->open(os->ctx, p, O_RDONLY, 0), -EMFILE);
	fault_os_fail(fo, FAULT_RENAME, 1, -ENOSPC, 0);
	assert_int_equal(os->ops->rename(os->ctx, p, p), -ENOSPC);
	fault_os_fail(fo, FAULT_SYNC_DIR, 1, -EIO, 0);
	assert_int_equal(os->ops->sync_dir(os->ctx, t.path), -EIO);
	fault_os_fail(fo, FAULT_FALLOCATE, 1, -ENOSPC, 0);
	assert_int_equal(os->ops->fallocate(os->ctx, fd, 0, 4096), -ENOSPC);
	fault_os_fail(fo, FAULT_PREAD, 1, -EIO, 0);
	char b[3];
	assert_int_equal(sl__os_pread_all(os, fd, b, 3, 0), -EIO);
	fault_os_fail(fo, FAULT_FSIZE, 1, -EIO, 0);
	uint64_t size;
	assert_int_equal(os->ops->fsize(os->ctx, fd, &size), -EIO);
	fault_os_fail(fo, FAULT_LIST, 1, -ENOMEM, 0);
	struct names l = { .n = 0 };
	assert_int_equal(os->ops->list(os->ctx, t.path, names_cb, &l), -ENOMEM);
	assert_int_equal(l.n, 0);
	fault_os_fail(fo, FAULT_MKDIR, 1, -ENOSPC, 0);
	path_in(&t, "d", p, sizeof(p));
	assert_int_equal(os->ops->mkdir(os->ctx, p, 0755), -ENOSPC);
	assert_false(sl_test_file_exists(p));
	fault_os_fail(fo, FAULT_MALLOC, 3, -ENOMEM, 0);
	void *m1 = sl__os_malloc(os, 8), *m2 = sl__os_malloc(os, 8);
	assert_non_null(m1);
	assert_non_null(m2);
	assert_null(sl__os_calloc(os, 8));
	void *m3 = sl__os_malloc(os, 8);
	assert_non_null(m3);
	fault_os_fail(fo, FAULT_REALLOC, 1, -ENOMEM, 0);
	assert_null(os->ops->realloc(os->ctx, m3, 64));
	assert_int_equal(fault_os_live_allocs(fo), 3);
	sl__os_free(os, m1);
	sl__os_free(os, m2);
	sl__os_free(os, m3);
	assert_int_equal(fault_os_live_allocs(fo), 0);
	/* A failed close still releases the descriptor, as Linux does. */
	fault_os_fail(fo, FAULT_CLOSE, 1, -EIO, 0);
	assert_int_equal(os->ops->close(os->ctx, fd), -EIO);
	assert_int_equal(fault_os_open_fds(fo), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	fault_os_free(fo);
	tdir_free(&t);
}

static void test_fault_os_tear_with_error(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	const struct sl_os *os = fault_os_get(fo);
	char p[128];
	path_in(&t, "f", p, sizeof(p));
	int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	fault_os_tear(fo, 2, 4, -EIO);
	assert_int_equal(sl__os_pwrite_all(os, fd, "0123456789", 10, 0), 0);
	assert_int_equal(sl__os_pwrite_all(os, fd, "abcdefghij", 10, 10), -EIO);
	assert_int_equal(fault_os_crashed(fo), 0);
	/* Only the first 4 bytes of the torn write landed; later writes pass again. */
	uint8_t b[32];
	assert_int_equal(slurp(p, b, sizeof(b)), 14);
	assert_memory_equal(b, "0123456789abcd", 14);
	assert_int_equal(sl__os_pwrite_all(os, fd, "XY", 2, 20), 0);
	assert_int_equal(sl_test_file_size(p), 22);
	os->ops->close(os->ctx, fd);
	fault_os_free(fo);
	tdir_free(&t);
}

static int hook_calls;

static void count_hook(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&hook_calls, 1, __ATOMIC_SEQ_CST);
}

static void test_fault_os_tear_then_crash(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	const struct sl_os *os = fault_os_get(fo);
	hook_calls = 0;
	fault_os_on_crash(fo, count_hook, NULL);
	char p[128], q[128], r[128];
	path_in(&t, "f", p, sizeof(p));
	path_in(&t, "g", q, sizeof(q));
	path_in(&t, "new", r, sizeof(r));
	int fd = os->ops->open(os->ctx, p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(sl__os_pwrite_all(os, fd, "0123456789", 10, 0), 0);
	fault_os_tear(fo, 1, 3, 0);
	/* The caller is told all went well: a dead process hears nothing. */
	assert_int_equal(sl__os_pwrite_all(os, fd, "abcdefghij", 10, 10), 0);
	assert_int_equal(fault_os_crashed(fo), 1);
	assert_int_equal(hook_calls, 1);
	/* After the crash nothing that writes reaches the disk, and it all "succeeds". */
	assert_int_equal(sl__os_pwrite_all(os, fd, "zzzz", 4, 0), 0);
	assert_int_equal(os->ops->fdatasync(os->ctx, fd), 0);
	assert_int_equal(os->ops->ftruncate(os->ctx, fd, 0), 0);
	assert_int_equal(os->ops->fallocate(os->ctx, fd, 0, 1 << 20), 0);
	assert_int_equal(os->ops->rename(os->ctx, p, q), 0);
	assert_int_equal(os->ops->mkdir(os->ctx, r, 0755), 0);
	assert_int_equal(os->ops->sync_dir(os->ctx, t.path), 0);
	int fd2 = os->ops->open(os->ctx, r, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd2 >= 0);
	assert_int_equal(sl__os_pwrite_all(os, fd2, "x", 1, 0), 0);
	os->ops->close(os->ctx, fd2);
	/* O_TRUNC on an existing file truncates nothing either. */
	fd2 = os->ops->open(os->ctx, p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd2 >= 0);
	os->ops->close(os->ctx, fd2);
	assert_false(sl_test_file_exists(q));
	assert_false(sl_test_file_exists(r));
	/* Reads still work and see the disk as the crash left it. */
	char b[32];
	assert_int_equal(sl__os_pread_all(os, fd, b, sizeof(b), 0), 13);
	assert_memory_equal(b, "0123456789abc", 13);
	assert_int_equal(os->ops->unlink(os->ctx, p), 0);
	assert_true(sl_test_file_exists(p));
	assert_int_equal(hook_calls, 1);
	os->ops->close(os->ctx, fd);
	assert_int_equal(fault_os_open_fds(fo), 0);
	fault_os_free(fo);
	tdir_free(&t);
}

static void test_fault_os_crash_at_and_match(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	const struct sl_os *os = fault_os_get(fo);
	hook_calls = 0;
	fault_os_on_crash(fo, count_hook, NULL);
	char a[128], b[128];
	path_in(&t, "a.wal", a, sizeof(a));
	path_in(&t, "b.tmp", b, sizeof(b));
	int fa = os->ops->open(os->ctx, a, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int fb = os->ops->open(os->ctx, b, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fa >= 0 && fb >= 0);
	/* Only calls on *.tmp count: the 2nd write to b.tmp crashes. */
	fault_os_match(fo, ".tmp");
	fault_os_crash_at(fo, FAULT_PWRITE, 2);
	assert_int_equal(sl__os_pwrite_all(os, fa, "1", 1, 0), 0);
	assert_int_equal(sl__os_pwrite_all(os, fb, "1", 1, 0), 0);
	assert_int_equal(sl__os_pwrite_all(os, fa, "2", 1, 1), 0);
	assert_int_equal(fault_os_crashed(fo), 0);
	assert_int_equal(sl__os_pwrite_all(os, fb, "2", 1, 1), 0);
	assert_int_equal(fault_os_crashed(fo), 1);
	assert_int_equal(hook_calls, 1);
	assert_int_equal(sl__os_pwrite_all(os, fa, "3", 1, 2), 0);
	assert_int_equal(sl_test_file_size(a), 2);
	assert_int_equal(sl_test_file_size(b), 1);
	/* fault_os_crash on a crashed twin calls the hook no more. */
	fault_os_crash(fo);
	assert_int_equal(hook_calls, 1);
	/* Reset leaves crash mode; a failure armed for *.tmp spares a.wal. */
	fault_os_reset(fo);
	assert_int_equal(sl__os_pwrite_all(os, fa, "3", 1, 2), 0);
	assert_int_equal(sl_test_file_size(a), 3);
	fault_os_match(fo, ".tmp");
	fault_os_fail(fo, FAULT_FDATASYNC, 1, -EIO, 1);
	assert_int_equal(os->ops->fdatasync(os->ctx, fa), 0);
	assert_int_equal(os->ops->fdatasync(os->ctx, fb), -EIO);
	assert_int_equal(os->ops->fdatasync(os->ctx, fa), 0);
	assert_int_equal(os->ops->fdatasync(os->ctx, fb), -EIO);
	/* Path calls match on either name of a rename. */
	fault_os_fail(fo, FAULT_RENAME, 1, -ENOSPC, 1);
	char c[128];
	path_in(&t, "c.wal", c, sizeof(c));
	assert_int_equal(os->ops->rename(os->ctx, a, c), 0);
	assert_int_equal(os->ops->rename(os->ctx, b, c), -ENOSPC);
	assert_int_equal(os->ops->rename(os->ctx, c, b), -ENOSPC);
	/* A direct crash. */
	fault_os_reset(fo);
	fault_os_crash(fo);
	assert_int_equal(hook_calls, 2);
	assert_int_equal(os->ops->unlink(os->ctx, c), 0);
	assert_true(sl_test_file_exists(c));
	os->ops->close(os->ctx, fa);
	os->ops->close(os->ctx, fb);
	fault_os_free(fo);
	tdir_free(&t);
}

static void test_fault_os_delay(void **state)
{
	(void)state;
	struct tdir t;
	tdir_new(&t);
	struct fault_os *fo = fault_os_new();
	const struct sl_os *os = fault_os_get(fo);
	fault_os_delay(fo, FAULT_SYNC_DIR, 20000);
	uint64_t t0 = os->ops->mono_ns(os->ctx);
	assert_int_equal(os->ops->sync_dir(os->ctx, t.path), 0);
	uint64_t t1 = os->ops->mono_ns(os->ctx);
	assert_true(t1 - t0 >= 20000000u);
	fault_os_delay(fo, FAULT_SYNC_DIR, 0);
	fault_os_free(fo);
	tdir_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_os_pwrite_pread_round_trip),
		cmocka_unit_test(test_os_errors_are_negative_errno),
		cmocka_unit_test(test_os_list_names),
		cmocka_unit_test(test_os_rename_unlink_sync_dir),
		cmocka_unit_test(test_os_lock_twice),
		cmocka_unit_test(test_os_memory_and_clocks),
		cmocka_unit_test(test_os_pwrite_all_completes_short_writes),
		cmocka_unit_test(test_fault_os_passes_through),
		cmocka_unit_test(test_fault_os_fail_nth),
		cmocka_unit_test(test_fault_os_tear_with_error),
		cmocka_unit_test(test_fault_os_tear_then_crash),
		cmocka_unit_test(test_fault_os_crash_at_and_match),
		cmocka_unit_test(test_fault_os_delay),
	};
	return cmocka_run_group_tests_name("os", tests, NULL, NULL);
}
