/* fault_os.c - the fault-injecting struct sl_os twin of tests (see fault_os.h). Each call asks
 * decide() under one mutex what to do (pass, fail, tear, crash), then makes the real call
 * outside it, so threads of the code under test never serialize on their I/O here. Test code
 * only: it uses libc directly for its own bookkeeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_os.h"

#define MAX_FD (1 << 16)

enum rule_kind { RULE_NONE, RULE_FAIL, RULE_TEAR, RULE_CRASH };

struct rule {
	enum rule_kind kind;
	uint64_t nth;  /* the matching call that fires, 1-based from arming */
	uint64_t seen; /* matching calls since arming */
	int err;
	int sticky;
	size_t keep; /* RULE_TEAR: bytes written */
};

struct fault_os {
	struct sl_os os; /* ctx points back here */
	const struct sl_os *real;
	pthread_mutex_t mu;
	/* Guarded by mu. */
	struct rule rules[FAULT_NOPS];
	unsigned delay_us[FAULT_NOPS];
	char suffix[256];
	char **fd_path; /* MAX_FD entries: the path each open descriptor came from */
	int max_fd;	/* the highest descriptor fd_path has held */
	int crashed;
	void (*on_crash)(void *arg);
	void *crash_arg;
	/* Atomic counters (__atomic builtins): read without the mutex. */
	uint64_t calls[FAULT_NOPS];
	int64_t live_allocs, open_fds;
};

/* What decide() tells a call to do. */
struct action {
	enum rule_kind kind; /* RULE_NONE: make the real call */
	int err;
	size_t keep;
	int crashed; /* the twin is (now) in crash mode */
	int newly;   /* this call crashed it */
};

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !memcmp(s + n - m, suffix, m);
}

static int matches_locked(const struct fault_os *fo, const char *path, const char *path2, int fd)
{
	if (!fo->suffix[0])
		return 1;
	if (path && ends_with(path, fo->suffix))
		return 1;
	if (path2 && ends_with(path2, fo->suffix))
		return 1;
	if (fd >= 0 && fd < MAX_FD && fo->fd_path[fd] && ends_with(fo->fd_path[fd], fo->suffix))
		return 1;
	return 0;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Enter crash mode (mu held). The hook runs here, under mu, so no other call can act on the
 * crash (and, say, let the code under test publish a write that never happened) before the
 * hook has looked at the state at the crash. */
static void crash_locked(struct fault_os *fo)
{
	if (fo->crashed)
		return;
	__atomic_store_n(&fo->crashed, 1, __ATOMIC_SEQ_CST);
	if (fo->on_crash)
		fo->on_crash(fo->crash_arg);
}

/* Count the call, apply a delay, and decide its fate. path/path2/fd say what it touches
 * (NULL/-1 when nothing: such calls always match). */
static struct action decide(struct fault_os *fo, enum fault_op op, const char *path,
			    const char *path2, int fd)
{
	struct action a = { .kind = RULE_NONE };
	__atomic_add_fetch(&fo->calls[op], 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&fo->mu);
	int match = (!path && !path2 && fd < 0) || matches_locked(fo, path, path2, fd);
	unsigned delay = match ? fo->delay_us[op] : 0;
	struct rule *r = &fo->rules[op];
	if (match && r->kind != RULE_NONE) {
		r->seen++;
		if (r->seen == r->nth) {
			a.kind = r->kind;
			a.err = r->err;
			a.keep = r->keep;
			if (r->kind != RULE_FAIL || !r->sticky)
				r->kind = RULE_NONE;
		} else if (r->seen > r->nth && r->kind == RULE_FAIL && r->sticky) {
			a.kind = RULE_FAIL;
			a.err = r->err;
		}
	}
	if ((a.kind == RULE_CRASH || (a.kind == RULE_TEAR && a.err == 0)) && !fo->crashed) {
		/* A torn write is its own crash point: its first bytes still land (below). */
		crash_locked(fo);
		a.newly = 1;
	}
	a.crashed = fo->crashed;
	pthread_mutex_unlock(&fo->mu);
	if (delay)
		sleep_us(delay);
	return a;
}

static void remember_fd(struct fault_os *fo, int fd, const char *path)
{
	__atomic_add_fetch(&fo->open_fds, 1, __ATOMIC_SEQ_CST);
	if (fd < 0 || fd >= MAX_FD)
		return;
	char *copy = strdup(path);
	pthread_mutex_lock(&fo->mu);
	free(fo->fd_path[fd]);
	fo->fd_path[fd] = copy;
	if (fd > fo->max_fd)
		fo->max_fd = fd;
	pthread_mutex_unlock(&fo->mu);
}

static void forget_fd(struct fault_os *fo, int fd)
{
	__atomic_sub_fetch(&fo->open_fds, 1, __ATOMIC_SEQ_CST);
	if (fd < 0 || fd >= MAX_FD)
		return;
	pthread_mutex_lock(&fo->mu);
	free(fo->fd_path[fd]);
	fo->fd_path[fd] = NULL;
	pthread_mutex_unlock(&fo->mu);
}

/* ---- The ops -------------------------------------------------------------------------------- */

#define REAL(fo) ((fo)->real->ops)
#define RCTX(fo) ((fo)->real->ctx)

static int f_open(void *ctx, const char *path, int flags, int mode)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_OPEN, path, NULL, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	int fd;
	/* A dead process creates and truncates nothing: hand out a sink instead. */
	if (a.crashed && ((flags & O_TRUNC) || ((flags & O_CREAT) && access(path, F_OK) < 0)))
		fd = REAL(fo)->open(RCTX(fo), "/dev/null", O_RDWR, 0);
	else
		fd = REAL(fo)->open(RCTX(fo), path, flags, mode);
	if (fd >= 0)
		remember_fd(fo, fd, path);
	return fd;
}

static int f_close(void *ctx, int fd)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_CLOSE, NULL, NULL, fd);
	/* Linux releases the descriptor even when close fails: so does the twin. */
	forget_fd(fo, fd);
	int r = REAL(fo)->close(RCTX(fo), fd);
	return a.kind == RULE_FAIL ? a.err : r;
}

static ssize_t f_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_PREAD, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return REAL(fo)->pread(RCTX(fo), fd, buf, n, off);
}

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t n, off_t off)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_PWRITE, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	if (a.kind == RULE_TEAR && !(a.crashed && !a.newly)) {
		size_t k = a.keep < n ? a.keep : n;
		ssize_t r = k ? REAL(fo)->pwrite(RCTX(fo), fd, buf, k, off) : 0;
		if (a.err < 0)
			return a.err;
		if (r < 0)
			return r;
		return (ssize_t)n;
	}
	if (a.crashed)
		return (ssize_t)n;
	return REAL(fo)->pwrite(RCTX(fo), fd, buf, n, off);
}

static int f_fdatasync(void *ctx, int fd)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_FDATASYNC, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->fdatasync(RCTX(fo), fd);
}

static int f_fsync(void *ctx, int fd)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_FSYNC, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->fsync(RCTX(fo), fd);
}

static int f_fallocate(void *ctx, int fd, off_t off, off_t len)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_FALLOCATE, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->fallocate(RCTX(fo), fd, off, len);
}

static int f_ftruncate(void *ctx, int fd, off_t len)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_FTRUNCATE, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->ftruncate(RCTX(fo), fd, len);
}

static int f_fsize(void *ctx, int fd, uint64_t *size)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_FSIZE, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return REAL(fo)->fsize(RCTX(fo), fd, size);
}

static int f_unlink(void *ctx, const char *path)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_UNLINK, path, NULL, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->unlink(RCTX(fo), path);
}

static int f_rename(void *ctx, const char *from, const char *to)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_RENAME, from, to, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	if (a.crashed)
		return 0;
	int r = REAL(fo)->rename(RCTX(fo), from, to);
	if (r < 0)
		return r;
	/* A descriptor follows its file to the new name (so ".wal" matches a renamed segment). */
	pthread_mutex_lock(&fo->mu);
	for (int fd = 0; fd <= fo->max_fd; fd++) {
		if (fo->fd_path[fd] && !strcmp(fo->fd_path[fd], from)) {
			char *copy = strdup(to);
			if (copy) {
				free(fo->fd_path[fd]);
				fo->fd_path[fd] = copy;
			}
		}
	}
	pthread_mutex_unlock(&fo->mu);
	return 0;
}

static int f_mkdir(void *ctx, const char *path, int mode)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_MKDIR, path, NULL, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->mkdir(RCTX(fo), path, mode);
}

static int f_list(void *ctx, const char *dir, int (*cb)(void *arg, const char *name), void *arg)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_LIST, dir, NULL, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	return REAL(fo)->list(RCTX(fo), dir, cb, arg);
}

static int f_sync_dir(void *ctx, const char *dir)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_SYNC_DIR, dir, NULL, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	return a.crashed ? 0 : REAL(fo)->sync_dir(RCTX(fo), dir);
}

static int f_lock(void *ctx, const char *path)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_LOCK, path, NULL, -1);
	if (a.kind == RULE_FAIL)
		return a.err;
	int fd = REAL(fo)->lock(RCTX(fo), path);
	if (fd >= 0)
		remember_fd(fo, fd, path);
	return fd;
}

static int f_mmap(void *ctx, int fd, size_t len, void **addr)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_MMAP, NULL, NULL, fd);
	if (a.kind == RULE_FAIL)
		return a.err;
	return REAL(fo)->mmap(RCTX(fo), fd, len, addr);
}

static int f_munmap(void *ctx, void *addr, size_t len)
{
	struct fault_os *fo = ctx;
	return REAL(fo)->munmap(RCTX(fo), addr, len);
}

static void *f_malloc(void *ctx, size_t n)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_MALLOC, NULL, NULL, -1);
	if (a.kind == RULE_FAIL)
		return NULL;
	void *p = REAL(fo)->malloc(RCTX(fo), n);
	if (p)
		__atomic_add_fetch(&fo->live_allocs, 1, __ATOMIC_SEQ_CST);
	return p;
}

static void *f_realloc(void *ctx, void *p, size_t n)
{
	struct fault_os *fo = ctx;
	struct action a = decide(fo, FAULT_REALLOC, NULL, NULL, -1);
	if (a.kind == RULE_FAIL)
		return NULL;
	void *q = REAL(fo)->realloc(RCTX(fo), p, n);
	if (q && !p)
		__atomic_add_fetch(&fo->live_allocs, 1, __ATOMIC_SEQ_CST);
	return q;
}

static void f_free(void *ctx, void *p)
{
	struct fault_os *fo = ctx;
	if (p)
		__atomic_sub_fetch(&fo->live_allocs, 1, __ATOMIC_SEQ_CST);
	REAL(fo)->free(RCTX(fo), p);
}

static uint64_t f_now_ns(void *ctx)
{
	struct fault_os *fo = ctx;
	return REAL(fo)->now_ns(RCTX(fo));
}

static uint64_t f_mono_ns(void *ctx)
{
	struct fault_os *fo = ctx;
	return REAL(fo)->mono_ns(RCTX(fo));
}

static const struct sl_os_ops fault_ops = {
	.version = SL_OS_VERSION,
	.open = f_open,
	.close = f_close,
	.pread = f_pread,
	.pwrite = f_pwrite,
	.fdatasync = f_fdatasync,
	.fsync = f_fsync,
	.fallocate = f_fallocate,
	.ftruncate = f_ftruncate,
	.fsize = f_fsize,
	.unlink = f_unlink,
	.rename = f_rename,
	.mkdir = f_mkdir,
	.list = f_list,
	.sync_dir = f_sync_dir,
	.lock = f_lock,
	.mmap = f_mmap,
	.munmap = f_munmap,
	.malloc = f_malloc,
	.realloc = f_realloc,
	.free = f_free,
	.now_ns = f_now_ns,
	.mono_ns = f_mono_ns,
};

/* ---- Control -------------------------------------------------------------------------------- */

struct fault_os *fault_os_new(void)
{
	struct fault_os *fo = calloc(1, sizeof(*fo));
	if (!fo)
		return NULL;
	fo->fd_path = calloc(MAX_FD, sizeof(*fo->fd_path));
	if (!fo->fd_path) {
		free(fo);
		return NULL;
	}
	fo->real = sl__os_default();
	fo->os.ops = &fault_ops;
	fo->os.ctx = fo;
	pthread_mutex_init(&fo->mu, NULL);
	return fo;
}

void fault_os_free(struct fault_os *fo)
{
	if (!fo)
		return;
	for (int i = 0; i < MAX_FD; i++)
		free(fo->fd_path[i]);
	free(fo->fd_path);
	pthread_mutex_destroy(&fo->mu);
	free(fo);
}

const struct sl_os *fault_os_get(struct fault_os *fo)
{
	return &fo->os;
}

static void arm(struct fault_os *fo, enum fault_op op, const struct rule *r)
{
	pthread_mutex_lock(&fo->mu);
	fo->rules[op] = *r;
	pthread_mutex_unlock(&fo->mu);
}

void fault_os_fail(struct fault_os *fo, enum fault_op op, uint64_t nth, int err, int sticky)
{
	struct rule r = { .kind = RULE_FAIL, .nth = nth, .err = err, .sticky = sticky };
	arm(fo, op, &r);
}

void fault_os_tear(struct fault_os *fo, uint64_t nth, size_t keep, int err)
{
	struct rule r = { .kind = RULE_TEAR, .nth = nth, .err = err, .keep = keep };
	arm(fo, FAULT_PWRITE, &r);
}

void fault_os_crash_at(struct fault_os *fo, enum fault_op op, uint64_t nth)
{
	struct rule r = { .kind = RULE_CRASH, .nth = nth };
	arm(fo, op, &r);
}

void fault_os_crash(struct fault_os *fo)
{
	pthread_mutex_lock(&fo->mu);
	crash_locked(fo);
	pthread_mutex_unlock(&fo->mu);
}

void fault_os_on_crash(struct fault_os *fo, void (*cb)(void *arg), void *arg)
{
	pthread_mutex_lock(&fo->mu);
	fo->on_crash = cb;
	fo->crash_arg = arg;
	pthread_mutex_unlock(&fo->mu);
}

int fault_os_crashed(struct fault_os *fo)
{
	return __atomic_load_n(&fo->crashed, __ATOMIC_SEQ_CST);
}

void fault_os_delay(struct fault_os *fo, enum fault_op op, unsigned usec)
{
	pthread_mutex_lock(&fo->mu);
	fo->delay_us[op] = usec;
	pthread_mutex_unlock(&fo->mu);
}

void fault_os_match(struct fault_os *fo, const char *suffix)
{
	pthread_mutex_lock(&fo->mu);
	snprintf(fo->suffix, sizeof(fo->suffix), "%s", suffix ? suffix : "");
	pthread_mutex_unlock(&fo->mu);
}

void fault_os_reset(struct fault_os *fo)
{
	pthread_mutex_lock(&fo->mu);
	memset(fo->rules, 0, sizeof(fo->rules));
	memset(fo->delay_us, 0, sizeof(fo->delay_us));
	fo->suffix[0] = 0;
	__atomic_store_n(&fo->crashed, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&fo->mu);
}

uint64_t fault_os_calls(struct fault_os *fo, enum fault_op op)
{
	return __atomic_load_n(&fo->calls[op], __ATOMIC_SEQ_CST);
}

int64_t fault_os_live_allocs(struct fault_os *fo)
{
	return __atomic_load_n(&fo->live_allocs, __ATOMIC_SEQ_CST);
}

int64_t fault_os_open_fds(struct fault_os *fo)
{
	return __atomic_load_n(&fo->open_fds, __ATOMIC_SEQ_CST);
}
