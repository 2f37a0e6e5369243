/* bench_common.h - helpers that bench_ingest.c and bench_store.c share: the report and progress
 * streams (say, progress), fatal errors (die), the monotonic clock (mono_ns), allocation
 * (xcalloc), the temporary root under --dir and its removal (g_root, make_root, remove_root,
 * rm_tree), the synthetic ITCH session (feed_open, gen_message_views), the machine description
 * (struct machine, machine_probe) and JSON string output (json_str). Benchmarks only: nothing
 * here is part of the library.
 *
 * The Makefile builds every bench/ *.c into its own binary, so this header is self-contained and
 * every helper is static: each benchmark compiles its own copy. Define BENCH_NAME (the prefix of
 * error messages, e.g. "bench_store") before including it. All of it is setup and reporting code
 * for the main thread, except mono_ns, which any thread may call.
 */
#ifndef SLUICE_BENCH_COMMON_H
#define SLUICE_BENCH_COMMON_H

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_common.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "feed.h"
#include "sluice.h"

/* Each benchmark uses the part of these helpers it needs. */
#pragma GCC diagnostic ignored "-Wunused-function"

/* The directory make_root created under --dir (removed at exit), or "" before and after. */

static char g_root[PATH_MAX];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The report: stdout (with --json, only the JSON object goes there). */
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* What is being run, on stderr, so that stdout stays the report alone. */
static void progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, BENCH_NAME ": %s: %s\n", what, why);
	exit(1);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		die("calloc", strerror(ENOMEM));
	return p;
}

/* ---- Temporary directories ------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT)
		fprintf(stderr, BENCH_NAME ": removing %s: %s\n", path, strerror(errno));
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_root(void)
{
	if (g_root[0])
		rm_tree(g_root);
	g_root[0] = 0;
}

static void make_root(const char *dir)
{
	if ((size_t)snprintf(g_root, sizeof(g_root), "%s/sluice-bench-XXXXXX", dir) >=
	    sizeof(g_root) - 64)
		die(dir, strerror(ENAMETOOLONG));
	if (!mkdtemp(g_root)) {
		int e = errno;
		g_root[0] = 0;
		die(dir, strerror(e));
	}
	atexit(remove_root);
}

/* ---- Data ----------------------------------------------------------------------------------- */

/* A generator of the synthetic session for seed and messages; dies on failure. The caller frees
 * it with sl__feed_free. */
static struct sl_feed *feed_open(uint64_t seed, uint64_t messages)
{
	struct sl_feed_config fc;
	struct sl_feed *f;
	sl__feed_config_init(&fc);
	fc.seed = seed;
	fc.messages = messages;
	int r = sl__feed_new(&fc, &f);
	if (r < 0)
		die("feed", sl_strerror(r));
	return f;
}

/* The n messages back to back in one buffer (64 bytes each at most), with sl_msg views: *bytes
 * and *msgs are new heap arrays that the caller frees. Returns the ITCH bytes of all messages. */
static uint64_t gen_message_views(uint64_t seed, uint64_t n, uint8_t **bytes, struct sl_msg **msgs)
{
	struct sl_feed *f = feed_open(seed, n);
	size_t used = 0;
	*bytes = xcalloc((size_t)n, 64);
	*msgs = xcalloc(n, sizeof(**msgs));
	for (uint64_t i = 0; i < n; i++) {
		int len = sl__feed_next_msg(f, *bytes + used, 64);
		if (len <= 0)
			die("feed", len < 0 ? sl_strerror(len) : "ended early");
		/* rx_ns 0: the library stamps each call with the time it saw it. */
		(*msgs)[i] = (struct sl_msg){ .data = *bytes + used, .len = (uint16_t)len };
		used += (size_t)len;
	}
	sl__feed_free(f);
	return used;
}

/* ---- Machine -------------------------------------------------------------------------------- */


struct machine {
	long nproc;
	char cpu[128];
	char kernel[2 * sizeof(((struct utsname *)0)->release) + 2];
	char fs[64];
	char device[256];
	char mount[256];
	uint64_t mem_bytes;
};

static void cpu_model(char *out, size_t cap)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	snprintf(out, cap, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon || strncmp(line, "model name", 10))
			continue;
		colon++;
		while (isspace((unsigned char)*colon))
			colon++;
		colon[strcspn(colon, "\n")] = 0;
		snprintf(out, cap, "%s", colon);
		break;
	}
	fclose(f);
}

static const char *fs_magic_name(unsigned long type)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} known[] = {
		{ 0xEF53, "ext2/3/4" },	 { 0x58465342, "xfs" },	      { 0x9123683E, "btrfs" },
		{ 0x01021994, "tmpfs" }, { 0x794c7630, "overlayfs" }, { 0x2FC12FC1, "zfs" },
		{ 0xF2F52010, "f2fs" },	 { 0x6969, "nfs" },
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].magic == type)
			return known[i].name;
	return "unknown";
}

/* The file system of dir: the longest mount point in /proc/self/mounts that is a prefix of its
 * real path; statfs's magic number when that fails. */
static void dir_fs(const char *dir, struct machine *m)
{
	char real[PATH_MAX], dev[256], mnt[256], type[64];
	size_t best = 0;
	struct statfs sf;
	snprintf(m->fs, sizeof(m->fs), "%s",
		 statfs(dir, &sf) == 0 ? fs_magic_name((unsigned long)sf.f_type) : "unknown");
	snprintf(m->device, sizeof(m->device), "?");
	snprintf(m->mount, sizeof(m->mount), "?");
	FILE *f = fopen("/proc/self/mounts", "r");
	if (!realpath(dir, real) || !f) {
		if (f)
			fclose(f);
		return;
	}
	while (fscanf(f, "%255s %255s %63s %*[^\n]", dev, mnt, type) == 3) {
		size_t l = strlen(mnt);
		int under = !strncmp(real, mnt, l) && (real[l] == '/' || real[l] == 0 || l == 1);
		if (under && l >= best) {
			best = l;
			snprintf(m->fs, sizeof(m->fs), "%s", type);
			snprintf(m->device, sizeof(m->device), "%s", dev);
			snprintf(m->mount, sizeof(m->mount), "%s", mnt);
		}
	}
	fclose(f);
}

/* Fills *m for a run under dir: CPUs, memory, CPU model, kernel, and dir's file system. */
static void machine_probe(const char *dir, struct machine *m)
{
	struct utsname u;
	memset(m, 0, sizeof(*m));
	m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psz > 0)
		m->mem_bytes = (uint64_t)pages * (uint64_t)psz;
	cpu_model(m->cpu, sizeof(m->cpu));
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
	dir_fs(dir, m);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* s as a JSON string literal on stdout. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

#endif /* SLUICE_BENCH_COMMON_H */
