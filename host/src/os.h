/* os.h - the file, clock and memory seam. Every module that touches the disk or allocates
 * outside its hot path goes through a struct sl_os so tests can swap in a twin that fails after
 * N calls, returns ENOSPC/EIO, or tears writes (tests/unit/fault_os.c). os is the bottom layer:
 * it knows nothing of any other module.
 */
#ifndef SL_OS_H
#define SL_OS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define SL_OS_VERSION 1

/* All functions return >= 0 on success and -errno on failure (never set errno for callers). */
struct sl_os_ops {
	int version;
	int (*open)(void *ctx, const char *path, int flags, int mode);
	int (*close)(void *ctx, int fd);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync)(void *ctx, int fd);
	int (*fsync)(void *ctx, int fd);
	int (*fallocate)(void *ctx, int fd, off_t off, off_t len);
	int (*ftruncate)(void *ctx, int fd, off_t len);
	int (*fsize)(void *ctx, int fd, uint64_t *size);
	int (*unlink)(void *ctx, const char *path);
	int (*rename)(void *ctx, const char *from, const char *to);
	int (*mkdir)(void *ctx, const char *path, int mode);
	/* Call cb(arg, name) for each entry of dir except . and ..; a nonzero cb return stops and
	 * is returned. */
	int (*list)(void *ctx, const char *dir, int (*cb)(void *arg, const char *name), void *arg);
	/* fsync a directory so a create/rename/unlink in it is durable. */
	int (*sync_dir)(void *ctx, const char *dir);
	/* Exclusive advisory lock on path (created if needed); returns the fd holding it or
	 * SL_ELOCKED. Released by close. */
	int (*lock)(void *ctx, const char *path);
	/* Map len bytes of fd read-only (shared) into *addr; unmap with munmap. 0 or -errno. */
	int (*mmap)(void *ctx, int fd, size_t len, void **addr);
	int (*munmap)(void *ctx, void *addr, size_t len);
	void *(*malloc)(void *ctx, size_t n);
	void *(*realloc)(void *ctx, void *p, size_t n);
	void (*free)(void *ctx, void *p);
	uint64_t (*now_ns)(void *ctx);       /* CLOCK_REALTIME */
	uint64_t (*mono_ns)(void *ctx);      /* CLOCK_MONOTONIC */
};

struct sl_os {
	const struct sl_os_ops *ops;
	void *ctx;
};

/* The real thing: POSIX calls with EINTR retried and short writes completed. Static storage. */
const struct sl_os *sl__os_default(void);

/* Convenience wrappers so call sites read naturally. */
static inline void *sl__os_malloc(const struct sl_os *os, size_t n)
{
	return os->ops->malloc(os->ctx, n);
}

static inline void *sl__os_calloc(const struct sl_os *os, size_t n)
{
	void *p = os->ops->malloc(os->ctx, n);
	if (p)
		memset(p, 0, n);
	return p;
}

static inline void sl__os_free(const struct sl_os *os, void *p)
{
	if (p)
		os->ops->free(os->ctx, p);
}

/* Write all n bytes at off (the default ops already loop; twins may tear). 0 or -errno. */
int sl__os_pwrite_all(const struct sl_os *os, int fd, const void *buf, size_t n, off_t off);
/* Read up to n bytes at off, looping over short reads; returns bytes read (< n only at EOF). */
ssize_t sl__os_pread_all(const struct sl_os *os, int fd, void *buf, size_t n, off_t off);

#endif /* SL_OS_H */
