/* fault_os.h - a struct sl_os twin for tests: it passes every call through to sl__os_default()
 * and, as armed, fails the Nth call of an operation with an errno (once or from then on), tears
 * the Nth pwrite (writes only its first K bytes), slows calls down, or "crashes": from the crash
 * point on every write-ish call silently does nothing, as if the process had died and its later
 * writes were lost, so a test can reopen the directory with the default os and check recovery.
 * It counts calls per operation, live allocations and open descriptors (for leak checks).
 * Every function is thread-safe: the code under test calls the os from its own threads.
 */
#ifndef SL_FAULT_OS_H
#define SL_FAULT_OS_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

enum fault_op {
	FAULT_OPEN,
	FAULT_CLOSE,
	FAULT_PREAD,
	FAULT_PWRITE,
	FAULT_FDATASYNC,
	FAULT_FSYNC,
	FAULT_FALLOCATE,
	FAULT_FTRUNCATE,
	FAULT_FSIZE,
	FAULT_UNLINK,
	FAULT_RENAME,
	FAULT_MKDIR,
	FAULT_LIST,
	FAULT_SYNC_DIR,
	FAULT_LOCK,
	FAULT_MMAP,
	FAULT_MALLOC, /* malloc and sl__os_calloc */
	FAULT_REALLOC,
	FAULT_NOPS
};

struct fault_os;

/* A new twin with nothing armed, or NULL when out of memory. Free it after the last user of
 * its os (fault_os_get) is closed. */
struct fault_os *fault_os_new(void);
void fault_os_free(struct fault_os *fo);

/* The os to hand to the code under test; valid until fault_os_free. */
const struct sl_os *fault_os_get(struct fault_os *fo);

/* Fail the nth matching call of op from now on (1: the very next) with err (a negative errno;
 * malloc and realloc return NULL instead). sticky: every matching call after it fails too.
 * Re-arming an op replaces its earlier fault. */
void fault_os_fail(struct fault_os *fo, enum fault_op op, uint64_t nth, int err, int sticky);

/* Tear the nth matching pwrite from now on: write only its first keep bytes (keep may exceed
 * the call's length: then all of it). Then err < 0: return err (later pwrites pass); err == 0:
 * crash there (fault_os_crash) and report success to the caller. */
void fault_os_tear(struct fault_os *fo, uint64_t nth, size_t keep, int err);

/* Crash at the nth matching call of op from now on: that call and everything after it that
 * writes does nothing and reports success. */
void fault_os_crash_at(struct fault_os *fo, enum fault_op op, uint64_t nth);

/* Crash now. From here open with O_CREAT/O_TRUNC gives a descriptor of /dev/null, and pwrite,
 * fdatasync, fsync, fallocate, ftruncate, unlink, rename, mkdir and sync_dir do nothing and
 * succeed. Reads, close, list, lock and memory still work. Calls cb(arg) once, on the thread
 * that crashed, at the crash, with the twin's lock held so no other call of the twin runs until
 * it returns (a test reads "what was durable at the crash" there); cb must not call the twin.
 * Set it with fault_os_on_crash before arming. */
void fault_os_crash(struct fault_os *fo);
void fault_os_on_crash(struct fault_os *fo, void (*cb)(void *arg), void *arg);
int fault_os_crashed(struct fault_os *fo);

/* Sleep usec in every matching call of op (0: stop), before the call is made. */
void fault_os_delay(struct fault_os *fo, enum fault_op op, unsigned usec);

/* Only calls on a path ending with suffix (or on a descriptor whose file has such a name now:
 * renames through the twin are followed; rename: either name) match the armed faults and
 * delays; NULL or "" matches every call. malloc and realloc always match. Counting
 * (fault_os_calls) is not filtered. */
void fault_os_match(struct fault_os *fo, const char *suffix);

/* Disarm every fault and delay and leave crash mode (counters are kept). */
void fault_os_reset(struct fault_os *fo);

/* Calls of op so far, failed or not. */
uint64_t fault_os_calls(struct fault_os *fo, enum fault_op op);
/* Allocations made through the twin and not freed yet. */
int64_t fault_os_live_allocs(struct fault_os *fo);
/* Descriptors opened through the twin (open, lock) and not closed yet. */
int64_t fault_os_open_fds(struct fault_os *fo);

#endif /* SL_FAULT_OS_H */
