/* os.c - the default struct sl_os: thin POSIX wrappers that retry EINTR, complete short writes
 * and return -errno. The bottom layer; it knows nothing of any other module.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "sluice.h"

static int os_open(void *ctx, const char *path, int flags, int mode)
{
	(void)ctx;
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static int os_close(void *ctx, int fd)
{
	(void)ctx;
	/* Linux closes the descriptor even when close() reports EINTR: never retry. */
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t os_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	(void)ctx;
	ssize_t r;
	do
		r = pread(fd, buf, n, off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static ssize_t os_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
	(void)ctx;
	const char *p = buf;
	size_t done = 0;
	while (done < n) {
		ssize_t r = pwrite(fd, p + done, n - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int os_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	int r;
	do
		r = fdatasync(fd);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int os_fsync(void *ctx, int fd)
{
	(void)ctx;
	int r;
	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int os_fallocate(void *ctx, int fd, off_t off, off_t len)
{
	(void)ctx;
	int r;
	do
		r = posix_fallocate(fd, off, len);
	while (r == EINTR);
	return -r;
}

static int os_ftruncate(void *ctx, int fd, off_t len)
{
	(void)ctx;
	int r;
	do
		r = ftruncate(fd, len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int os_fsize(void *ctx, int fd, uint64_t *size)
{
	(void)ctx;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int os_unlink(void *ctx, const char *path)
{
	(void)ctx;
	return unlink(path) < 0 ? -errno : 0;
}

static int os_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return rename(from, to) < 0 ? -errno : 0;
}

static int os_mkdir(void *ctx, const char *path, int mode)
{
	(void)ctx;
	return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

static int os_list(void *ctx, const char *dir, int (*cb)(void *arg, const char *name), void *arg)
{
	(void)ctx;
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int r = 0;
	struct dirent *e;
	/* readdir returns NULL both at the end and on an error; only errno tells them apart. A
	 * listing cut short must not pass for the whole directory (the WAL would miss segments). */
	for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
		if (e->d_name[0] == '.' &&
		    (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
			continue;
		r = cb(arg, e->d_name);
		if (r)
			break;
	}
	if (!e && errno)
		r = -errno;
	closedir(d);
	return r;
}

static int os_sync_dir(void *ctx, const char *dir)
{
	int fd = os_open(ctx, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	int r = os_fsync(ctx, fd);
	os_close(ctx, fd);
	return r;
}

static int os_lock(void *ctx, const char *path)
{
	int fd = os_open(ctx, path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		os_close(ctx, fd);
		return e == EWOULDBLOCK ? SL_ELOCKED : -e;
	}
	return fd;
}

static int os_mmap(void *ctx, int fd, size_t len, void **addr)
{
	(void)ctx;
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

static int os_munmap(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	return munmap(addr, len) < 0 ? -errno : 0;
}

static void *os_malloc(void *ctx, size_t n)
{
	(void)ctx;
	return malloc(n);
}

static void *os_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	return realloc(p, n);
}

static void os_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t os_now_ns(void *ctx)
{
	(void)ctx;
	return clock_ns(CLOCK_REALTIME);
}

static uint64_t os_mono_ns(void *ctx)
{
	(void)ctx;
	return clock_ns(CLOCK_MONOTONIC);
}

static const struct sl_os_ops default_ops = {
	.version = SL_OS_VERSION,
	.open = os_open,
	.close = os_close,
	.pread = os_pread,
	.pwrite = os_pwrite,
	.fdatasync = os_fdatasync,
	.fsync = os_fsync,
	.fallocate = os_fallocate,
	.ftruncate = os_ftruncate,
	.fsize = os_fsize,
	.unlink = os_unlink,
	.rename = os_rename,
	.mkdir = os_mkdir,
	.list = os_list,
	.sync_dir = os_sync_dir,
	.lock = os_lock,
	.mmap = os_mmap,
	.munmap = os_munmap,
	.malloc = os_malloc,
	.realloc = os_realloc,
	.free = os_free,
	.now_ns = os_now_ns,
	.mono_ns = os_mono_ns,
};

static const struct sl_os default_os = { .ops = &default_ops, .ctx = NULL };

const struct sl_os *sl__os_default(void)
{
	return &default_os;
}

int sl__os_pwrite_all(const struct sl_os *os, int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	size_t done = 0;
	while (done < n) {
		ssize_t r = os->ops->pwrite(os->ctx, fd, p + done, n - done, off + (off_t)done);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

ssize_t sl__os_pread_all(const struct sl_os *os, int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	size_t done = 0;
	while (done < n) {
		ssize_t r = os->ops->pread(os->ctx, fd, p + done, n - done, off + (off_t)done);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}
