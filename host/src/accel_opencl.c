/* accel_opencl.c - the opencl backend: every operation of accel.h on an OpenCL device reached
 * through the ICD loader (a GPU, PoCL on the CPU, or an FPGA through XRT's ICD), with the
 * kernels of kernels/ (OpenCL C 1.2, embedded at build time as one program source) built from
 * source, loaded from the on-disk program-binary cache, or given as a binary (--accel-binary).
 * Results are bit-identical to accel_cpu.c; the tests compare every operation.
 *
 * Work runs on lanes: each lane owns an in-order command queue, its own kernel objects (argument
 * setting is not thread-safe per kernel), persistent device buffers and pinned (ALLOC_HOST_PTR,
 * kept mapped) staging, all grown on demand and never shrunk. A synchronous call or a submitted
 * request holds one lane from start to completion, so NLANES calls run on NLANES queues at once
 * and a submit past that gets -EAGAIN. A call is a few phases, each one batch of commands whose
 * last event the host waits on (synchronous) or gets a completion callback for (submitted); no
 * clFinish on the way. accel is a leaf: this file knows block.h and bloom.h only.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"
#include "block.h"
#include "bloom.h"
#include "sl_kernel_abi.h"
#include "sl_kernels.h" /* generated from kernels/: static const char sl_kernels_src[] */
#include "sluice.h"

#define NLANES		       4 /* command queues, and requests in flight at most */
#define MAX_PLATFORMS	       16
#define MAX_DEVICES	       64
#define MIN_ALLOC	       (64u << 10) /* smallest buffer: small calls never reallocate */
#define BUILD_OPTS	       "-cl-std=CL1.2"
#define EXEC_MORE	       1 /* a phase is on the queue: wait for ex.ev, then step */
#define PLATFORM_NOT_FOUND_KHR (-1001)

/* ---- The shared layouts, as the host compiler sees them ------------------------------------ */

_Static_assert(SLK_MAX_KEY == SL_ACCEL_MAX_KEY && SLK_MAX_KEY == SL_BLOCK_MAX_KEY, "key size");
_Static_assert(SLK_BLOCK_MIN == SL_BLOCK_MIN, "the smallest block");
_Static_assert(SLK_TOMBSTONE == SL_ACCEL_TOMBSTONE, "tombstone flag");
_Static_assert(SLK_DROP_TOMBS == SL_ACCEL_MERGE_DROP_TOMBSTONES, "merge flag");
_Static_assert(sizeof(struct slk_block) == sizeof(struct sl_accel_block) &&
		       offsetof(struct slk_block, len) == offsetof(struct sl_accel_block, len) &&
		       offsetof(struct slk_block, crc) == offsetof(struct sl_accel_block, crc) &&
		       offsetof(struct slk_block, last_len) ==
			       offsetof(struct sl_accel_block, last_len) &&
		       offsetof(struct slk_block, last) == offsetof(struct sl_accel_block, last),
	       "output block descriptors are copied field by field from the same layout");
static const uint32_t abi_sizes[] = SLK_ABI_SIZES;
_Static_assert(sizeof(struct slk_crc_chunk) == 24 && sizeof(struct slk_filter) == 24 &&
		       sizeof(struct slk_merge_params) == 112 && sizeof(struct slk_run) == 8 &&
		       sizeof(struct slk_inblock) == 16 && sizeof(struct slk_block) == 88 &&
		       sizeof(struct slk_merge_result) == 136 && sizeof(struct slk_cursor) == 144 &&
		       sizeof(struct slk_abi_report) == 40,
	       "sl_kernel_abi.h layouts (SLK_ABI_SIZES must say the same)");

enum kern { K_CRC, K_BUILD, K_PROBE, K_MERGE, K_MCRC, K_MBLOOM, K_N };
static const char *const kern_names[K_N] = {
	"slk_crc32c", "slk_bloom_build", "slk_bloom_probe",
	"slk_merge",  "slk_merge_crc",	 "slk_merge_bloom",
};

/* Device buffers of a lane: what each operation puts where is said at its start function. */
enum { M_IN, M_OUT, M_BLK, M_BLOOM, M_SCR, M_RES, M_N };
enum { P_IN, P_OUT, P_N }; /* pinned staging */

struct dmem {
	cl_mem mem;
	size_t cap;
};

struct pin {
	cl_mem mem;
	uint8_t *map; /* mapped for the buffer's life */
	size_t cap;
};

/* One operation on a lane, from start to completion. */
struct exec {
	struct sl_accel_req *req;
	int phase;
	cl_event ev0, ev; /* the first command (for device_ns) and the phase's last */
	size_t at;	  /* crc, build, probe: where their result sits in the input layout */
	/* merge */
	size_t in_len, d_out, d_blocks, need_bloom, chunks, chunks_off, acc_off;
	size_t blocks_at, bloom_at; /* in the out staging, phase 2 */
	uint32_t bits;
	int reruns;
	struct slk_merge_result res;
};

struct ocl;

struct lane {
	struct ocl *d;
	cl_command_queue q;
	cl_kernel k[K_N];
	struct dmem m[M_N];
	struct pin p[P_N];
	struct exec ex;
	/* Under d->mu: */
	int busy, async; /* held by a call; by a submitted request */
	int armed, fired, stepping;
	cl_int fired_status;
	uint64_t armed_ns; /* when the current phase's callback was asked for (the watchdog) */
	int hung;	   /* its phase outlived the watchdog: the lane stays busy for good */
	int deaf;	   /* test hook: this phase's completion is never seen */
};

struct ocl {
	cl_platform_id plat;
	cl_device_id dev;
	cl_context ctx;
	cl_program prog;
	cl_device_type type;
	cl_ulong max_alloc;
	size_t local[K_N]; /* work-group size per kernel: fixed, so a device compiles each once */
	int one_wi;        /* launch each kernel as one work-item (config.one_work_item, FPGAs) */
	uint64_t timeout_ns; /* the watchdog: a phase not complete by then is hung */
	int hung;	   /* a phase hung: every call is -ENODEV from then on (atomic) */
	uint64_t arms;	   /* phases armed, ever (the test hook counts them) */
	uint64_t deaf_at;  /* SLUICE_OPENCL_TEST_HANG: the arm whose completion is never seen */
	struct sl_accel_info info;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a lane freed, an event fired, a request done */
	struct sl_accel_req *done, **done_tail;
	struct lane lane[NLANES];
};

static int cl_errno(cl_int e)
{
	switch (e) {
	case CL_SUCCESS:
		return 0;
	case CL_OUT_OF_HOST_MEMORY:
	case CL_OUT_OF_RESOURCES:
	case CL_MEM_OBJECT_ALLOCATION_FAILURE:
	case CL_INVALID_BUFFER_SIZE:
		return -ENOMEM;
	case CL_DEVICE_NOT_FOUND:
	case CL_DEVICE_NOT_AVAILABLE:
	case PLATFORM_NOT_FOUND_KHR:
		return -ENODEV;
	default:
		return -EIO;
	}
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...)
{
	if (!why || !cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* A string property, truncated to cap (OpenCL refuses a buffer shorter than the value). */
static void dev_str(cl_device_id d, cl_device_info what, char *buf, size_t cap)
{
	char tmp[1024];
	if (clGetDeviceInfo(d, what, sizeof(tmp) - 1, tmp, NULL) != CL_SUCCESS)
		tmp[0] = 0;
	tmp[sizeof(tmp) - 1] = 0;
	snprintf(buf, cap, "%s", tmp);
}

static void plat_str(cl_platform_id p, cl_platform_info what, char *buf, size_t cap)
{
	char tmp[1024];
	if (clGetPlatformInfo(p, what, sizeof(tmp) - 1, tmp, NULL) != CL_SUCCESS)
		tmp[0] = 0;
	tmp[sizeof(tmp) - 1] = 0;
	snprintf(buf, cap, "%s", tmp);
}

/* ---- Finding the device ---------------------------------------------------------------------- */

struct cand {
	cl_platform_id plat;
	cl_device_id dev;
	unsigned pi, di;
	cl_device_type type;
	char pname[96], dname[96];
};

static int is_device_type(cl_device_type t)
{
	return (t & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
}

static const char *type_name(cl_device_type t)
{
	return t & CL_DEVICE_TYPE_GPU		? "GPU"
	       : t & CL_DEVICE_TYPE_ACCELERATOR ? "accelerator"
	       : t & CL_DEVICE_TYPE_CPU		? "CPU"
						: "other";
}

/* "P:D" with decimal indexes only. */
static int parse_index(const char *s, unsigned *pi, unsigned *di)
{
	int n = 0;
	if (sscanf(s, "%u:%u%n", pi, di, &n) != 2 || s[n] || !strchr("0123456789", s[0]))
		return 0;
	return 1;
}

/* Every device of every platform, in the ICD's order. Enumerating only: nothing is built. */
static int enumerate(struct cand *c, size_t cap, size_t *n, char *why, size_t why_cap)
{
	cl_platform_id plats[MAX_PLATFORMS];
	cl_uint np = 0;
	cl_int e = clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
	*n = 0;
	if (e != CL_SUCCESS || np == 0) {
		if (e == CL_SUCCESS || e == PLATFORM_NOT_FOUND_KHR)
			say(why, why_cap, "no OpenCL platform (the ICD loader found none)");
		else
			say(why, why_cap, "no OpenCL platform (clGetPlatformIDs: error %d)", e);
		return -ENODEV;
	}
	for (cl_uint p = 0; p < np && p < MAX_PLATFORMS; p++) {
		cl_device_id devs[MAX_DEVICES];
		cl_uint nd = 0;
		char pname[96] = "";
		plat_str(plats[p], CL_PLATFORM_NAME, pname, sizeof(pname));
		if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) !=
		    CL_SUCCESS)
			continue;
		for (cl_uint d = 0; d < nd && d < MAX_DEVICES && *n < cap; d++) {
			struct cand *x = &c[(*n)++];
			memset(x, 0, sizeof(*x));
			x->plat = plats[p];
			x->dev = devs[d];
			x->pi = p;
			x->di = d;
			memcpy(x->pname, pname, sizeof(pname));
			clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof(x->type), &x->type, NULL);
			dev_str(devs[d], CL_DEVICE_NAME, x->dname, sizeof(x->dname));
		}
	}
	if (*n == 0) {
		say(why, why_cap, "no OpenCL device on %u platform%s", np, np == 1 ? "" : "s");
		return -ENODEV;
	}
	return 0;
}

/* "0:0 NAME (CPU), ..." of every device, or (cpus_only) of those that are neither GPUs nor
 * accelerators. */
static void list_devices(const struct cand *c, size_t n, int cpus_only, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n && len + 1 < cap; i++) {
		if (cpus_only && is_device_type(c[i].type))
			continue;
		int w = snprintf(buf + len, cap - len, "%s%u:%u %s (%s)", len ? ", " : "", c[i].pi,
				 c[i].di, c[i].dname, type_name(c[i].type));
		len += w > 0 ? (size_t)w : 0;
	}
}

/* The device cfg names (or the first GPU/accelerator, else the first device), honouring
 * devices_only. -ENODEV with a reason when there is none. */
static int select_device(const struct sl_accel_config *cfg, struct cand *out, char *why,
			 size_t why_cap)
{
	struct cand c[MAX_DEVICES];
	size_t n;
	int r = enumerate(c, MAX_DEVICES, &n, why, why_cap);
	if (r < 0)
		return r;
	const char *sel = cfg->device && cfg->device[0] ? cfg->device : NULL;
	unsigned pi, di;
	int by_index = sel && parse_index(sel, &pi, &di);
	const struct cand *pick = NULL;
	int matched = 0;
	for (int pass = 0; pass < 2 && !pick; pass++) {
		for (size_t i = 0; i < n && !pick; i++) {
			int m = !sel	   ? 1
				: by_index ? c[i].pi == pi && c[i].di == di
					   : strcasestr(c[i].dname, sel) ||
						     strcasestr(c[i].pname, sel);
			matched |= m;
			/* Without a selector GPUs and accelerators go first; CPUs are the second
			 * pass, and never when only devices will do. */
			if (m && (is_device_type(c[i].type) || (pass == 1 && !cfg->devices_only)))
				pick = &c[i];
		}
	}
	if (pick) {
		*out = *pick;
		return 0;
	}
	char list[160];
	if (sel && !matched) {
		list_devices(c, n, 0, list, sizeof(list));
		say(why, why_cap, "no OpenCL device matches \"%s\" (devices: %s)", sel, list);
	} else {
		list_devices(c, n, 1, list, sizeof(list));
		say(why, why_cap, "no OpenCL GPU or accelerator (only CPU devices: %s)", list);
	}
	return -ENODEV;
}

/* ---- The program: from source, the cache, or a given binary ----------------------------------
 *
 * The cache holds one file per (kernel source, build options, ABI version, platform, device,
 * driver version): <dir>/opencl-<FNV-1a 64 of all of them>.bin, a 32-byte header (magic, key,
 * size, CRC32C of the binary) and the binary from clGetProgramInfo. Written to a temporary name
 * and renamed, so a reader never sees half a file; a file that fails any check is rebuilt. */
#define CACHE_MAGIC "SLCLPRG1"

struct cache_hdr {
	char magic[8];
	uint64_t key;
	uint64_t size;
	uint32_t crc;
	uint32_t abi;
};
_Static_assert(sizeof(struct cache_hdr) == 32, "cache file header");

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
	return fnv1a(h, s, strlen(s) + 1);
}

static uint32_t crc32c_host(const void *p, size_t n)
{
	struct sl_accel_buf b = { p, n };
	uint32_t c = 0;
	sl__accel_cpu_ops.crc32c_batch(NULL, &b, 1, &c);
	return c;
}

static uint64_t program_key(struct ocl *d)
{
	static const cl_platform_info pinfo[] = { CL_PLATFORM_NAME, CL_PLATFORM_VERSION };
	static const cl_device_info dinfo[] = { CL_DEVICE_NAME, CL_DEVICE_VERSION,
						CL_DRIVER_VERSION };
	char s[256];
	uint64_t h = fnv_str(0xcbf29ce484222325ull, sl_kernels_src);
	h = fnv_str(h, BUILD_OPTS);
	h = fnv1a(h, &(uint32_t){ SLK_ABI_VERSION }, 4);
	for (size_t i = 0; i < sizeof(pinfo) / sizeof(pinfo[0]); i++) {
		plat_str(d->plat, pinfo[i], s, sizeof(s));
		h = fnv_str(h, s);
	}
	for (size_t i = 0; i < sizeof(dinfo) / sizeof(dinfo[0]); i++) {
		dev_str(d->dev, dinfo[i], s, sizeof(s));
		h = fnv_str(h, s);
	}
	return h;
}

/* The cache directory: cfg's, else $XDG_CACHE_HOME/sluice, else $HOME/.cache/sluice; made if
 * missing. 0, or -errno (no cache). */
static int cache_dir(const struct sl_accel_config *cfg, char *dir, size_t cap)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n;
	if (cfg->cache_dir && cfg->cache_dir[0])
		n = snprintf(dir, cap, "%s", cfg->cache_dir);
	else if (x && x[0] == '/')
		n = snprintf(dir, cap, "%s/sluice", x);
	else if (home && home[0])
		n = snprintf(dir, cap, "%s/.cache/sluice", home);
	else
		return -ENOENT;
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	/* mkdir -p */
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		int r = mkdir(dir, 0755);
		*p = c;
		if (r < 0 && errno != EEXIST)
			return -errno;
		if (!c)
			break;
	}
	return access(dir, W_OK | X_OK) < 0 ? -errno : 0;
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out_close;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len + 1);
	if (!*buf) {
		r = -ENOMEM;
		goto out_close;
	}
	for (size_t got = 0; got < *len;) {
		ssize_t k = read(fd, *buf + got, *len - got);
		if (k <= 0) {
			r = k < 0 ? -errno : -EIO;
			free(*buf);
			*buf = NULL;
			goto out_close;
		}
		got += (size_t)k;
	}
out_close:
	close(fd);
	return r;
}

/* A cache-format file's binary (after its header), or NULL when it is not one or fails a check;
 * *key_ok says whether it was made for this source and device. */
static const uint8_t *cache_payload(const uint8_t *buf, size_t len, uint64_t key, size_t *plen,
				    int *key_ok)
{
	struct cache_hdr h;
	if (len < sizeof(h))
		return NULL;
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, CACHE_MAGIC, 8) || h.size != len - sizeof(h) ||
	    h.abi != SLK_ABI_VERSION || crc32c_host(buf + sizeof(h), h.size) != h.crc)
		return NULL;
	*plen = h.size;
	*key_ok = h.key == key;
	return buf + sizeof(h);
}

static int cache_store(struct ocl *d, const char *path, uint64_t key)
{
	size_t size = 0;
	int r = -EIO;
	if (clGetProgramInfo(d->prog, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, NULL) || !size)
		return r;
	uint8_t *buf = malloc(sizeof(struct cache_hdr) + size);
	if (!buf)
		return -ENOMEM;
	unsigned char *bin = buf + sizeof(struct cache_hdr);
	if (clGetProgramInfo(d->prog, CL_PROGRAM_BINARIES, sizeof(bin), &bin, NULL) == CL_SUCCESS) {
		struct cache_hdr h = { .key = key, .size = size, .abi = SLK_ABI_VERSION };
		memcpy(h.magic, CACHE_MAGIC, 8);
		h.crc = crc32c_host(bin, size);
		memcpy(buf, &h, sizeof(h));
		/* A name of its own: other threads and processes may be storing the same file. */
		char tmp[PATH_MAX + 32];
		snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
		int fd = mkstemp(tmp);
		if (fd >= 0) {
			fchmod(fd, 0644);
			size_t n = sizeof(h) + size;
			int ok = write(fd, buf, n) == (ssize_t)n;
			ok &= close(fd) == 0;
			if (ok && rename(tmp, path) == 0)
				r = 0;
			else
				unlink(tmp);
		}
	}
	free(buf);
	return r;
}

/* Build d->prog from source or from a binary; on failure the first line of the build log in
 * why (the whole log goes to stderr: a kernel that does not build is a bug to report). */
static int build(struct ocl *d, const uint8_t *bin, size_t len, char *why, size_t why_cap)
{
	cl_int e, st = CL_SUCCESS;
	if (bin) {
		const unsigned char *b = bin;
		d->prog = clCreateProgramWithBinary(d->ctx, 1, &d->dev, &len, &b, &st, &e);
	} else {
		const char *src = sl_kernels_src;
		d->prog = clCreateProgramWithSource(d->ctx, 1, &src, NULL, &e);
	}
	if (!d->prog || e != CL_SUCCESS || st != CL_SUCCESS) {
		say(why, why_cap, "OpenCL program %s refused (error %d)", bin ? "binary" : "source",
		    e != CL_SUCCESS ? e : st);
		goto out_release;
	}
	e = clBuildProgram(d->prog, 1, &d->dev, BUILD_OPTS, NULL, NULL);
	if (e == CL_SUCCESS)
		return 0;
	char log[4096] = "";
	clGetProgramBuildInfo(d->prog, d->dev, CL_PROGRAM_BUILD_LOG, sizeof(log) - 1, log, NULL);
	if (!bin)
		fprintf(stderr, "sluice: opencl: kernel build failed:\n%s\n", log);
	char *nl = strchr(log, '\n');
	if (nl)
		*nl = 0;
	say(why, why_cap, "OpenCL program %s does not build (error %d%s%s)",
	    bin ? "binary" : "source", e, log[0] ? ": " : "", log);
out_release:
	if (d->prog)
		clReleaseProgram(d->prog);
	d->prog = NULL;
	return -ENODEV;
}

/* Say once per process that there is no cache, and why. */
static void no_cache_once(const char *dir, int err)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&said))
		fprintf(stderr,
			"sluice: opencl: no program cache (%s: %s); kernels are built from "
			"source at each open\n",
			dir[0] ? dir : "no directory", strerror(-err));
}

/* Load or build the program; note (for info's detail) says how: "binary FILE", "cache FILE",
 * "source, cached in DIR" or "source, no cache". */
static int get_program(struct ocl *d, const struct sl_accel_config *cfg, char *note,
		       size_t note_cap, char *why, size_t why_cap)
{
	uint64_t key = program_key(d);
	uint8_t *buf = NULL;
	size_t len = 0, plen;
	int r, key_ok;
	if (cfg->binary && cfg->binary[0]) {
		if ((r = read_file(cfg->binary, &buf, &len)) < 0) {
			say(why, why_cap, "cannot read %s: %s", cfg->binary, strerror(-r));
			return r;
		}
		const uint8_t *bin = cache_payload(buf, len, key, &plen, &key_ok);
		if (bin && !key_ok) {
			say(why, why_cap,
			    "%s was built from other kernel sources or for another "
			    "device or driver",
			    cfg->binary);
			free(buf);
			return -EINVAL;
		}
		r = build(d, bin ? bin : buf, bin ? plen : len, why, why_cap);
		free(buf);
		snprintf(note, note_cap, "binary %s", cfg->binary);
		return r;
	}
	char dir[PATH_MAX - 64], path[PATH_MAX];
	dir[0] = path[0] = 0;
	int cache = cache_dir(cfg, dir, sizeof(dir));
	if (cache == 0) {
		snprintf(path, sizeof(path), "%s/opencl-%016llx.bin", dir, (unsigned long long)key);
		if (read_file(path, &buf, &len) == 0) {
			const uint8_t *bin = cache_payload(buf, len, key, &plen, &key_ok);
			int ok = bin && key_ok && build(d, bin, plen, NULL, 0) == 0;
			free(buf);
			if (ok) {
				snprintf(note, note_cap, "cache %s", path);
				return 0;
			}
		}
	} else {
		no_cache_once(dir, cache);
	}
	if ((r = build(d, NULL, 0, why, why_cap)) < 0)
		return r;
	if (cache == 0 && (cache = cache_store(d, path, key)) < 0)
		no_cache_once(path, cache);
	if (cache == 0)
		snprintf(note, note_cap, "source, cached in %s", dir);
	else
		snprintf(note, note_cap, "source, no cache");
	return 0;
}

/* ---- Lanes and their buffers ----------------------------------------------------------------- */

/* What to allocate for need bytes: a power of two from MIN_ALLOC, within the device's limit;
 * 0 when need is past it. */
static size_t alloc_size(const struct ocl *d, size_t need)
{
	if (need > d->max_alloc)
		return 0;
	size_t cap = MIN_ALLOC;
	while (cap < need && cap <= SIZE_MAX / 2)
		cap *= 2;
	return cap < need ? need : cap > d->max_alloc ? (size_t)d->max_alloc : cap;
}

static int dmem_need(struct lane *l, int i, size_t need)
{
	struct dmem *m = &l->m[i];
	if (need <= m->cap && m->mem)
		return 0;
	size_t cap = alloc_size(l->d, need);
	if (!cap)
		return -ENOMEM;
	if (m->mem)
		clReleaseMemObject(m->mem);
	m->cap = 0;
	cl_int e;
	m->mem = clCreateBuffer(l->d->ctx, CL_MEM_READ_WRITE, cap, NULL, &e);
	if (!m->mem)
		return cl_errno(e) ? cl_errno(e) : -ENOMEM;
	m->cap = cap;
	return 0;
}

static void pin_release(struct lane *l, struct pin *p)
{
	if (!p->mem)
		return;
	if (clEnqueueUnmapMemObject(l->q, p->mem, p->map, 0, NULL, NULL) == CL_SUCCESS)
		clFinish(l->q);
	clReleaseMemObject(p->mem);
	memset(p, 0, sizeof(*p));
}

/* Pinned staging of need bytes or more (contents not kept). Only between phases: the lane's
 * queue holds nothing of this call then. */
static int pin_need(struct lane *l, int i, size_t need)
{
	struct pin *p = &l->p[i];
	if (need <= p->cap && p->mem)
		return 0;
	size_t cap = alloc_size(l->d, need);
	if (!cap)
		return -ENOMEM;
	pin_release(l, p);
	cl_int e;
	p->mem =
		clCreateBuffer(l->d->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, cap, NULL, &e);
	if (!p->mem)
		return cl_errno(e) ? cl_errno(e) : -ENOMEM;
	p->map = clEnqueueMapBuffer(l->q, p->mem, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, cap, 0,
				    NULL, NULL, &e);
	if (!p->map) {
		clReleaseMemObject(p->mem);
		p->mem = NULL;
		return cl_errno(e) ? cl_errno(e) : -ENOMEM;
	}
	p->cap = cap;
	return 0;
}

/* Input staging and its device buffer, both of len bytes at least. */
static int stage_in(struct lane *l, size_t len)
{
	int r = pin_need(l, P_IN, len);
	return r ? r : dmem_need(l, M_IN, len);
}

static cl_int set_args(cl_kernel k, int n, const size_t *sizes, const void *const *vals)
{
	cl_int e = CL_SUCCESS;
	for (int i = 0; i < n && e == CL_SUCCESS; i++)
		e = clSetKernelArg(k, (cl_uint)i, sizes[i], vals[i]);
	return e;
}

/* Launch kernel k over n work-items (rounded up to whole work-groups; the kernels check their
 * bound). */
static cl_int launch(struct lane *l, int k, size_t n)
{
	size_t loc = l->d->local[k], g = l->d->one_wi ? 1 : align_up(n ? n : 1, loc);
	return clEnqueueNDRangeKernel(l->q, l->k[k], 1, NULL, &g, &loc, 0, NULL, NULL);
}

/* Upload the first len bytes of the input staging: the phase's first command. */
static cl_int upload(struct lane *l, size_t len)
{
	return clEnqueueWriteBuffer(l->q, l->m[M_IN].mem, CL_FALSE, 0, len, l->p[P_IN].map, 0, NULL,
				    l->ex.ev0 ? NULL : &l->ex.ev0);
}

/* Read len bytes at off of device buffer m into the out staging at at; last: its event ends
 * the phase. */
static cl_int download(struct lane *l, int m, size_t off, size_t len, size_t at, int last)
{
	if (last && l->ex.ev) {
		clReleaseEvent(l->ex.ev);
		l->ex.ev = NULL;
	}
	return clEnqueueReadBuffer(l->q, l->m[m].mem, CL_FALSE, off, len, l->p[P_OUT].map + at, 0,
				   NULL, last ? &l->ex.ev : NULL);
}

/* ---- CRC32C -----------------------------------------------------------------------------------
 * Input layout: chunk descriptors at 0, one u32 accumulator per buffer at ex.at, the buffers'
 * bytes back to back from a 64-byte boundary. */

static int crc_start(struct lane *l)
{
	const struct sl_accel_buf *bufs = l->ex.req->u.crc.bufs;
	size_t n = l->ex.req->u.crc.n, chunks = 0, bytes = 0;
	if (n >= SLK_CRC_FIRST)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		chunks += bufs[i].len ? (bufs[i].len + SLK_CRC_CHUNK - 1) / SLK_CRC_CHUNK : 1;
		bytes += bufs[i].len;
	}
	size_t acc = chunks * sizeof(struct slk_crc_chunk);
	size_t data = align_up(acc + 4 * n, 64);
	int r = stage_in(l, data + bytes);
	if (r || (r = pin_need(l, P_OUT, 4 * n)))
		return r;
	uint8_t *s = l->p[P_IN].map;
	struct slk_crc_chunk *c = (struct slk_crc_chunk *)s;
	memset(s + acc, 0, 4 * n);
	size_t at = data;
	for (size_t i = 0; i < n; i++) {
		size_t len = bufs[i].len, off = 0;
		if (len)
			memcpy(s + at, bufs[i].data, len);
		do {
			size_t cl = min_sz(len - off, SLK_CRC_CHUNK);
			*c++ = (struct slk_crc_chunk){ .off = at + off,
						       .after = len - off - cl,
						       .len = (uint32_t)cl,
						       .slot = (uint32_t)i |
							       (off ? 0 : SLK_CRC_FIRST) };
			off += cl;
		} while (off < len);
		at += len;
	}
	l->ex.at = acc;
	cl_ulong coff = 0, cn = chunks, aoff = acc;
	const size_t sz[] = { sizeof(cl_mem), 8, 8, 8 };
	const void *const v[] = { &l->m[M_IN].mem, &coff, &cn, &aoff };
	cl_int e = upload(l, at);
	if (!e)
		e = set_args(l->k[K_CRC], 4, sz, v);
	if (!e)
		e = launch(l, K_CRC, chunks);
	if (!e)
		e = download(l, M_IN, acc, 4 * n, 0, 1);
	return e ? cl_errno(e) : EXEC_MORE;
}

static int crc_finish(struct lane *l)
{
	const uint32_t *acc = (const uint32_t *)l->p[P_OUT].map;
	uint32_t *out = l->ex.req->u.crc.out;
	for (size_t i = 0; i < l->ex.req->u.crc.n; i++)
		out[i] = acc[i] ^ 0xFFFFFFFFu;
	return 0;
}

/* ---- Bloom filters ----------------------------------------------------------------------------
 * Build: the hashes at 0, the filter (as the caller has it: set bits stay set) at ex.at. Probe:
 * the hashes at 0, which[] after them, the filter descriptors, the result bytes at ex.at, then
 * every filter's whole blocks, each from a 64-byte boundary. */

static int build_start(struct lane *l)
{
	const struct sl_accel_req *q = l->ex.req;
	size_t n = q->u.build.n, size = q->u.build.size;
	size_t foff = align_up(8 * n, 64);
	int r = stage_in(l, foff + size);
	if (r || (r = pin_need(l, P_OUT, size)))
		return r;
	memcpy(l->p[P_IN].map, q->u.build.hashes, 8 * n);
	memcpy(l->p[P_IN].map + foff, q->u.build.filter, size);
	l->ex.at = foff;
	cl_ulong hoff = 0, cn = n, fo = foff, nb = size / SL_BLOOM_BLOCK;
	cl_uint k = q->u.build.k;
	const size_t sz[] = { sizeof(cl_mem), 8, 8, 8, 8, 4 };
	const void *const v[] = { &l->m[M_IN].mem, &hoff, &cn, &fo, &nb, &k };
	cl_int e = upload(l, foff + size);
	if (!e)
		e = set_args(l->k[K_BUILD], 6, sz, v);
	if (!e)
		e = launch(l, K_BUILD, n);
	if (!e)
		e = download(l, M_IN, foff, size, 0, 1);
	return e ? cl_errno(e) : EXEC_MORE;
}

static int build_finish(struct lane *l)
{
	memcpy(l->ex.req->u.build.filter, l->p[P_OUT].map, l->ex.req->u.build.size);
	return 0;
}

static int probe_start(struct lane *l)
{
	const struct sl_accel_req *q = l->ex.req;
	size_t n = q->u.probe.n, nf = q->u.probe.which ? q->u.probe.nfilters : 1;
	const struct sl_accel_filter *f = q->u.probe.filters;
	size_t which = 8 * n, descs = align_up(which + (q->u.probe.which ? 4 * n : 0), 8);
	size_t out = descs + nf * sizeof(struct slk_filter), bits = align_up(out + n, 64);
	for (size_t i = 0; i < nf; i++)
		bits += (f[i].size / SL_BLOOM_BLOCK) * SL_BLOOM_BLOCK;
	int r = stage_in(l, bits);
	if (r || (r = pin_need(l, P_OUT, n)))
		return r;
	uint8_t *s = l->p[P_IN].map;
	memcpy(s, q->u.probe.hashes, 8 * n);
	if (q->u.probe.which)
		memcpy(s + which, q->u.probe.which, 4 * n);
	struct slk_filter *d = (struct slk_filter *)(s + descs);
	size_t at = align_up(out + n, 64);
	for (size_t i = 0; i < nf; i++) {
		size_t nb = f[i].size / SL_BLOOM_BLOCK;
		d[i] = (struct slk_filter){ .off = at, .nblocks = nb, .k = f[i].k };
		if (nb)
			memcpy(s + at, f[i].bits, nb * SL_BLOOM_BLOCK);
		at += nb * SL_BLOOM_BLOCK;
	}
	l->ex.at = out;
	cl_ulong ho = 0, wo = q->u.probe.which ? which : ~(cl_ulong)0, fo = descs, cn = n, oo = out;
	const size_t sz[] = { sizeof(cl_mem), 8, 8, 8, 8, 8 };
	const void *const v[] = { &l->m[M_IN].mem, &ho, &wo, &fo, &cn, &oo };
	cl_int e = upload(l, at);
	if (!e)
		e = set_args(l->k[K_PROBE], 6, sz, v);
	if (!e)
		e = launch(l, K_PROBE, n);
	if (!e)
		e = download(l, M_IN, out, n, 0, 1);
	return e ? cl_errno(e) : EXEC_MORE;
}

static int probe_finish(struct lane *l)
{
	memcpy(l->ex.req->u.probe.out, l->p[P_OUT].map, l->ex.req->u.probe.n);
	return 0;
}

/* ---- The merge job ----------------------------------------------------------------------------
 * Phase 1: upload (params, runs, input block descriptors, CRC accumulators and chunks, lo, hi,
 * the blocks), check every input block's CRC (slk_crc32c), merge (slk_merge), read the result.
 * The output and descriptor buffers hold what the caller's do or an estimate, whichever is less;
 * if the job fits the caller's but not those, they grow to the exact needs and phase 1 runs
 * again. Phase 2 (only when everything fits): output CRCs, the filter, and the outputs read
 * back at their exact sizes. Phase 3 copies them out. */

/* Check the job and reset its out values as cpu does: 0 to go on, or the final status. */
static int merge_precheck(struct sl_accel_merge_job *j)
{
	int r = sl__accel_merge_check(j);
	if (r < 0)
		return r;
	uint32_t bits = j->bits_per_key ? j->bits_per_key : SL_BLOOM_DEFAULT_BITS;
	j->out_len = j->n_blocks = j->bloom_len = 0;
	j->bloom_probes = sl__bloom_probes(bits);
	j->entries_in = j->entries_out = j->dropped_older = j->dropped_tombstones = 0;
	j->smallest_len = 0;
	j->need_out = j->need_blocks = j->need_bloom = 0;
	j->bad_run = j->bad_block = 0;
	return 0;
}

static cl_int merge_enqueue_phase1(struct lane *l)
{
	struct exec *x = &l->ex;
	struct slk_merge_params *prm = (struct slk_merge_params *)l->p[P_IN].map;
	prm->out_cap = x->d_out;
	prm->blocks_cap = x->d_blocks;
	cl_ulong co = x->chunks_off, cn = x->chunks, ao = x->acc_off;
	const size_t sz[] = { sizeof(cl_mem), 8, 8, 8 };
	const void *const v[] = { &l->m[M_IN].mem, &co, &cn, &ao };
	const size_t msz[] = { sizeof(cl_mem), sizeof(cl_mem), sizeof(cl_mem), sizeof(cl_mem),
			       sizeof(cl_mem) };
	const void *const mv[] = { &l->m[M_IN].mem, &l->m[M_OUT].mem, &l->m[M_BLK].mem,
				   &l->m[M_SCR].mem, &l->m[M_RES].mem };
	size_t one = 1;
	cl_int e = upload(l, x->in_len);
	if (!e && x->chunks) {
		e = set_args(l->k[K_CRC], 4, sz, v);
		if (!e)
			e = launch(l, K_CRC, x->chunks);
	}
	if (!e)
		e = set_args(l->k[K_MERGE], 5, msz, mv);
	if (!e)
		e = clEnqueueNDRangeKernel(l->q, l->k[K_MERGE], 1, NULL, &one, &one, 0, NULL, NULL);
	if (!e)
		e = download(l, M_RES, 0, sizeof(struct slk_merge_result), 0, 1);
	return e;
}

static int merge_start(struct lane *l)
{
	struct exec *x = &l->ex;
	const struct sl_accel_merge_job *j = x->req->u.merge;
	size_t k = j->n_runs, nb = 0, bytes = 0, chunks = 0;
	for (size_t i = 0; i < k; i++)
		for (size_t b = 0; b < j->runs[i].n_blocks; b++) {
			size_t len = j->runs[i].blocks[b].len;
			nb++;
			bytes += len;
			if (len >= SL_BLOCK_MIN && len <= UINT32_MAX)
				chunks += (len - 4 + SLK_CRC_CHUNK - 1) / SLK_CRC_CHUNK;
		}
	if (nb >= UINT32_MAX)
		return -ENOMEM;
	/* The input layout. */
	size_t runs_off = align_up(sizeof(struct slk_merge_params), 64);
	size_t blocks_off = align_up(runs_off + k * sizeof(struct slk_run), 8);
	size_t acc_off = blocks_off + nb * sizeof(struct slk_inblock);
	size_t chunks_off = align_up(acc_off + 4 * nb, 8);
	size_t lo_off = chunks_off + chunks * sizeof(struct slk_crc_chunk);
	size_t hi_off = lo_off + j->lo_len;
	size_t data_off = align_up(hi_off + j->hi_len, 64);
	x->in_len = data_off + bytes;
	x->chunks = chunks;
	x->chunks_off = chunks_off;
	x->acc_off = acc_off;
	/* Scratch: cursors, tree and winners, the two keys. */
	size_t tree_off = align_up((k ? k : 1) * sizeof(struct slk_cursor), 8);
	size_t key_off = align_up(tree_off + 4 * (3 * k + 2), 8);
	size_t scratch = key_off + 2 * SLK_MAX_KEY;
	/* Output room: what the caller has, or about what the input makes, whichever is less. */
	uint32_t bb = j->block_bytes ? j->block_bytes : 4096;
	x->bits = j->bits_per_key ? j->bits_per_key : SL_BLOOM_DEFAULT_BITS;
	x->d_out = min_sz(j->out_cap, bytes + bytes / 4 + 4096);
	x->d_blocks = min_sz(j->blocks_cap, 2 * (x->d_out / bb) + 16);
	int r = stage_in(l, x->in_len);
	if (!r)
		r = pin_need(l, P_OUT, sizeof(struct slk_merge_result));
	if (!r)
		r = dmem_need(l, M_OUT, x->d_out);
	if (!r)
		r = dmem_need(l, M_BLK, x->d_blocks * sizeof(struct slk_block));
	if (!r)
		r = dmem_need(l, M_SCR, scratch);
	if (!r)
		r = dmem_need(l, M_RES, sizeof(struct slk_merge_result));
	if (r)
		return r;
	uint8_t *s = l->p[P_IN].map;
	struct slk_merge_params *prm = (struct slk_merge_params *)s;
	*prm = (struct slk_merge_params){
		.runs_off = runs_off,
		.blocks_off = blocks_off,
		.acc_off = acc_off,
		.lo_off = lo_off,
		.hi_off = hi_off,
		.lo_len = j->lo_len,
		.hi_len = j->hi_len,
		.tree_off = tree_off,
		.key_off = key_off,
		.n_runs = (uint32_t)k,
		.flags = j->flags,
		.block_bytes = bb,
		.restart_interval = j->restart_interval ? j->restart_interval : 16,
		.n_inblocks = (uint32_t)nb,
	};
	struct slk_run *sr = (struct slk_run *)(s + runs_off);
	struct slk_inblock *ib = (struct slk_inblock *)(s + blocks_off);
	struct slk_crc_chunk *c = (struct slk_crc_chunk *)(s + chunks_off);
	memset(s + acc_off, 0, 4 * nb);
	if (j->lo_len)
		memcpy(s + lo_off, j->lo, j->lo_len);
	if (j->hi_len)
		memcpy(s + hi_off, j->hi, j->hi_len);
	size_t at = data_off, gi = 0;
	for (size_t i = 0; i < k; i++) {
		sr[i] = (struct slk_run){ (uint32_t)gi, (uint32_t)j->runs[i].n_blocks };
		for (size_t b = 0; b < j->runs[i].n_blocks; b++, gi++) {
			size_t len = j->runs[i].blocks[b].len;
			ib[gi] = (struct slk_inblock){ at, len };
			if (len)
				memcpy(s + at, j->runs[i].blocks[b].data, len);
			if (len >= SL_BLOCK_MIN && len <= UINT32_MAX)
				for (size_t off = 0; off < len - 4; off += SLK_CRC_CHUNK) {
					size_t cl = min_sz(len - 4 - off, SLK_CRC_CHUNK);
					*c++ = (struct slk_crc_chunk){
						.off = at + off,
						.after = len - 4 - off - cl,
						.len = (uint32_t)cl,
						.slot = (uint32_t)gi | (off ? 0 : SLK_CRC_FIRST)
					};
				}
			at += len;
		}
	}
	x->phase = 1;
	cl_int e = merge_enqueue_phase1(l);
	return e ? cl_errno(e) : EXEC_MORE;
}

/* After phase 1: the result decides. */
static int merge_phase1_done(struct lane *l)
{
	struct exec *x = &l->ex;
	struct sl_accel_merge_job *j = x->req->u.merge;
	struct slk_merge_result *res = &x->res;
	memcpy(res, l->p[P_OUT].map, sizeof(*res));
	j->entries_in = res->entries_in;
	j->entries_out = res->entries_out;
	j->dropped_older = res->dropped_older;
	j->dropped_tombstones = res->dropped_tombstones;
	/* cpu writes the first key out when it emits it, whatever happens later. */
	if (res->smallest_len <= SLK_MAX_KEY)
		memcpy(j->smallest, res->smallest, res->smallest_len);
	if (res->status == SLK_MERGE_CORRUPT) {
		j->bad_run = res->bad_run;
		j->bad_block = res->bad_block;
		return SL_ECORRUPT;
	}
	if (res->status == SLK_MERGE_FBIG)
		return -EFBIG;
	if (res->status != SLK_MERGE_OK)
		return -EIO;
	size_t need_bloom = sl__bloom_bytes(res->entries_out, x->bits);
	j->need_out = res->out_len;
	j->need_blocks = res->n_blocks;
	j->need_bloom = need_bloom;
	if (res->out_len > j->out_cap || res->n_blocks > j->blocks_cap || need_bloom > j->bloom_cap)
		return -ENOSPC;
	int r;
	if (res->out_len > x->d_out || res->n_blocks > x->d_blocks) {
		/* The estimate was short: once more with room for exactly what it needs. */
		if (x->reruns++)
			return -EIO;
		x->d_out = res->out_len;
		x->d_blocks = res->n_blocks;
		if ((r = dmem_need(l, M_OUT, x->d_out)) ||
		    (r = dmem_need(l, M_BLK, x->d_blocks * sizeof(struct slk_block))))
			return r;
		cl_int e = merge_enqueue_phase1(l);
		return e ? cl_errno(e) : EXEC_MORE;
	}
	/* Phase 2. */
	size_t nblk = res->n_blocks, out_len = res->out_len;
	x->need_bloom = need_bloom;
	x->blocks_at = align_up(out_len, 64);
	x->bloom_at = align_up(x->blocks_at + nblk * sizeof(struct slk_block), 64);
	if ((r = dmem_need(l, M_BLOOM, need_bloom)) ||
	    (r = pin_need(l, P_OUT, x->bloom_at + need_bloom)))
		return r;
	cl_uchar zero = 0;
	cl_int e = clEnqueueFillBuffer(l->q, l->m[M_BLOOM].mem, &zero, 1, 0, need_bloom, 0, NULL,
				       NULL);
	if (!e && nblk) {
		cl_ulong n = nblk, fb = need_bloom / SL_BLOOM_BLOCK;
		cl_uint kp = j->bloom_probes;
		const size_t csz[] = { sizeof(cl_mem), sizeof(cl_mem), 8 };
		const void *const cv[] = { &l->m[M_OUT].mem, &l->m[M_BLK].mem, &n };
		const size_t bsz[] = { sizeof(cl_mem), sizeof(cl_mem), 8, sizeof(cl_mem), 8, 4 };
		const void *const bv[] = {
			&l->m[M_OUT].mem, &l->m[M_BLK].mem, &n, &l->m[M_BLOOM].mem, &fb, &kp
		};
		e = set_args(l->k[K_MCRC], 3, csz, cv);
		if (!e)
			e = launch(l, K_MCRC, nblk);
		if (!e)
			e = set_args(l->k[K_MBLOOM], 6, bsz, bv);
		if (!e)
			e = launch(l, K_MBLOOM, nblk);
		if (!e)
			e = download(l, M_OUT, 0, out_len, 0, 0);
		if (!e)
			e = download(l, M_BLK, 0, nblk * sizeof(struct slk_block), x->blocks_at, 0);
	}
	if (!e)
		e = download(l, M_BLOOM, 0, need_bloom, x->bloom_at, 1);
	x->phase = 2;
	return e ? cl_errno(e) : EXEC_MORE;
}

static int merge_phase2_done(struct lane *l)
{
	struct exec *x = &l->ex;
	struct sl_accel_merge_job *j = x->req->u.merge;
	const uint8_t *s = l->p[P_OUT].map;
	size_t nblk = x->res.n_blocks;
	if (x->res.out_len)
		memcpy(j->out, s, x->res.out_len);
	/* Field by field: the bytes of last[] past last_len stay as the caller had them. */
	const struct slk_block *b = (const struct slk_block *)(s + x->blocks_at);
	for (size_t i = 0; i < nblk; i++) {
		struct sl_accel_block *o = &j->blocks[i];
		o->off = b[i].off;
		o->len = b[i].len;
		o->crc = b[i].crc;
		o->last_len = b[i].last_len;
		memcpy(o->last, b[i].last, min_sz(b[i].last_len, SLK_MAX_KEY));
	}
	memcpy(j->bloom, s + x->bloom_at, x->need_bloom);
	j->out_len = x->res.out_len;
	j->n_blocks = nblk;
	j->bloom_len = x->need_bloom;
	j->smallest_len = x->res.smallest_len;
	return 0;
}

/* ---- Running operations --------------------------------------------------------------------- */

/* Validate as cpu does: EXEC_MORE when the device has work to do, else the final status. */
static int precheck(struct sl_accel_req *q)
{
	switch (q->op) {
	case SL_ACCEL_OP_CRC32C:
		if (q->u.crc.n && (!q->u.crc.bufs || !q->u.crc.out))
			return -EINVAL;
		for (size_t i = 0; i < q->u.crc.n; i++)
			if (q->u.crc.bufs[i].len && !q->u.crc.bufs[i].data)
				return -EINVAL;
		return q->u.crc.n ? EXEC_MORE : 0;
	case SL_ACCEL_OP_BLOOM_BUILD: {
		size_t size = q->u.build.size, n = q->u.build.n;
		if (size % SL_BLOOM_BLOCK || q->u.build.k == 0 || q->u.build.k > 64 ||
		    (n && !q->u.build.hashes) || (size && !q->u.build.filter))
			return -EINVAL;
		return size && n ? EXEC_MORE : 0;
	}
	case SL_ACCEL_OP_BLOOM_PROBE: {
		size_t n = q->u.probe.n, nf = q->u.probe.nfilters;
		if (n && (!q->u.probe.hashes || !q->u.probe.out || !nf || !q->u.probe.filters))
			return -EINVAL;
		if (q->u.probe.which)
			for (size_t i = 0; i < n; i++)
				if (q->u.probe.which[i] >= nf)
					return -EINVAL;
		for (size_t i = 0; n && i < (q->u.probe.which ? nf : 1); i++)
			if (q->u.probe.filters[i].size >= SL_BLOOM_BLOCK &&
			    !q->u.probe.filters[i].bits)
				return -EINVAL;
		return n ? EXEC_MORE : 0;
	}
	case SL_ACCEL_OP_MERGE: {
		if (!q->u.merge)
			return -EINVAL;
		int r = merge_precheck(q->u.merge);
		return r < 0 ? r : EXEC_MORE;
	}
	default:
		return -EINVAL;
	}
}

static int exec_start(struct lane *l, struct sl_accel_req *q)
{
	struct exec *x = &l->ex;
	memset(x, 0, sizeof(*x));
	x->req = q;
	int r;
	switch (q->op) {
	case SL_ACCEL_OP_CRC32C:
		r = crc_start(l);
		break;
	case SL_ACCEL_OP_BLOOM_BUILD:
		r = build_start(l);
		break;
	case SL_ACCEL_OP_BLOOM_PROBE:
		r = probe_start(l);
		break;
	default:
		r = merge_start(l);
		break;
	}
	if (r == EXEC_MORE)
		clFlush(l->q);
	return r;
}

/* The phase's last event has completed: the next phase, or the final status. */
static int exec_step(struct lane *l)
{
	int r;
	switch (l->ex.req->op) {
	case SL_ACCEL_OP_CRC32C:
		return crc_finish(l);
	case SL_ACCEL_OP_BLOOM_BUILD:
		return build_finish(l);
	case SL_ACCEL_OP_BLOOM_PROBE:
		return probe_finish(l);
	default:
		r = l->ex.phase == 1 ? merge_phase1_done(l) : merge_phase2_done(l);
		if (r == EXEC_MORE)
			clFlush(l->q);
		return r;
	}
}

/* The call is over: its events go; after a failure its commands are let finish first, since
 * they use the lane's buffers. */
static void exec_end(struct lane *l, int status)
{
	if (status < 0 && status != -ENOSPC && status != SL_ECORRUPT && status != -EFBIG)
		clFinish(l->q);
	if (l->ex.ev0)
		clReleaseEvent(l->ex.ev0);
	if (l->ex.ev)
		clReleaseEvent(l->ex.ev);
	l->ex.ev0 = l->ex.ev = NULL;
}

static uint64_t device_ns(const struct exec *x)
{
	cl_ulong t0 = 0, t1 = 0;
	if (!x->ev0 || !x->ev ||
	    clGetEventProfilingInfo(x->ev0, CL_PROFILING_COMMAND_START, sizeof(t0), &t0, NULL) ||
	    clGetEventProfilingInfo(x->ev, CL_PROFILING_COMMAND_END, sizeof(t1), &t1, NULL))
		return 0;
	return t1 > t0 ? t1 - t0 : 0;
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void CL_CALLBACK on_event(cl_event ev, cl_int status, void *arg)
{
	(void)ev;
	struct lane *l = arg;
	pthread_mutex_lock(&l->d->mu);
	if (!l->deaf) {
		l->fired = 1;
		l->fired_status = status;
		pthread_cond_broadcast(&l->d->cv);
	}
	pthread_mutex_unlock(&l->d->mu);
}

/* Ask for a callback when the lane's current phase ends. Called without d->mu: the runtime
 * may run the callback at once, on this thread. */
static int arm(struct lane *l)
{
	struct ocl *d = l->d;
	pthread_mutex_lock(&d->mu);
	l->armed = 1;
	l->fired = 0;
	l->armed_ns = mono_ns();
	l->deaf = ++d->arms == d->deaf_at;
	pthread_mutex_unlock(&d->mu);
	return cl_errno(clSetEventCallback(l->ex.ev, CL_COMPLETE, on_event, l));
}

/* The watchdog gave up on l's phase: the device is presumed hung (a GPU or card that needs a
 * reset). The lane keeps its buffers and stays busy (its commands may still use them); every
 * later call is -ENODEV, which the seam runs on cpu. Under d->mu. */
static void hang_locked(struct ocl *d, struct lane *l)
{
	l->hung = 1;
	__atomic_store_n(&d->hung, 1, __ATOMIC_RELAXED);
}

static void push_done_locked(struct ocl *d, struct sl_accel_req *q)
{
	q->next = NULL;
	*d->done_tail = q;
	d->done_tail = &q->next;
	pthread_cond_broadcast(&d->cv);
}

static void lane_put_locked(struct ocl *d, struct lane *l)
{
	l->busy = l->async = l->armed = l->fired = 0;
	pthread_cond_broadcast(&d->cv);
}

/* Move submitted requests on: for each lane whose phase has ended, the next phase, or its
 * completion onto the done list and the lane freed. Called with d->mu held; drops it around
 * the work. Any thread may do this (the poller, a caller waiting for a lane): completion here
 * runs no user callback, the seam's poll does. */
static void reap_locked(struct ocl *d)
{
	for (int i = 0; i < NLANES; i++) {
		struct lane *l = &d->lane[i];
		if (!l->async || !l->armed || !l->fired || l->stepping || l->hung)
			continue;
		l->stepping = 1;
		l->armed = l->fired = 0;
		cl_int st = l->fired_status;
		pthread_mutex_unlock(&d->mu);
		int r = st < 0 ? -EIO : exec_step(l);
		if (r == EXEC_MORE && (r = arm(l)) == 0)
			r = EXEC_MORE;
		struct sl_accel_req *q = l->ex.req;
		if (r != EXEC_MORE) {
			q->status = r;
			q->device_ns = device_ns(&l->ex);
			exec_end(l, r);
		}
		pthread_mutex_lock(&d->mu);
		l->stepping = 0;
		if (r != EXEC_MORE) {
			push_done_locked(d, q);
			lane_put_locked(d, l);
		}
	}
}

/* Has a submitted request's phase ended with nobody stepping it yet? (An event can fire while
 * its lane is being stepped, whose broadcast then found nobody waiting.) */
static int ready_locked(const struct ocl *d)
{
	for (int i = 0; i < NLANES; i++) {
		const struct lane *l = &d->lane[i];
		if (l->async && l->armed && l->fired && !l->stepping && !l->hung)
			return 1;
	}
	return 0;
}

/* A free lane (the lowest: its buffers are the warm ones), or NULL when !wait and none is. */
static struct lane *lane_get(struct ocl *d, int wait, int async)
{
	pthread_mutex_lock(&d->mu);
	for (;;) {
		for (int i = 0; i < NLANES; i++) {
			struct lane *l = &d->lane[i];
			if (!l->busy) {
				l->busy = 1;
				l->async = async;
				l->armed = l->fired = 0;
				pthread_mutex_unlock(&d->mu);
				return l;
			}
		}
		if (!wait)
			break;
		reap_locked(d);
		int any = 0;
		for (int i = 0; i < NLANES; i++)
			any |= !d->lane[i].busy;
		if (!any && !ready_locked(d))
			pthread_cond_wait(&d->cv, &d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Wait for the lane's current phase, up to the watchdog's timeout: 0, -EIO (the runtime says
 * the commands failed), or -ENODEV (hung: the lane is left as it is). */
static int wait_phase(struct lane *l)
{
	struct ocl *d = l->d;
	int r = arm(l);
	if (r < 0)
		return r;
	struct timespec ts;
	uint64_t dl = l->armed_ns + d->timeout_ns;
	ts.tv_sec = (time_t)(dl / 1000000000u);
	ts.tv_nsec = (long)(dl % 1000000000u);
	pthread_mutex_lock(&d->mu);
	while (!l->fired)
		if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT && !l->fired)
			break;
	if (!l->fired)
		hang_locked(d, l);
	r = !l->fired ? -ENODEV : l->fired_status < 0 ? -EIO : 0;
	l->armed = l->fired = 0;
	pthread_mutex_unlock(&d->mu);
	return r;
}

static int run_sync(struct ocl *d, struct sl_accel_req *q)
{
	int r = precheck(q);
	if (r != EXEC_MORE)
		return r;
	if (__atomic_load_n(&d->hung, __ATOMIC_RELAXED))
		return -ENODEV;
	struct lane *l = lane_get(d, 1, 0);
	r = exec_start(l, q);
	while (r == EXEC_MORE) {
		r = wait_phase(l);
		if (r == -ENODEV)
			return r; /* the lane stays busy: its commands never ended */
		if (r == 0)
			r = exec_step(l);
	}
	exec_end(l, r);
	pthread_mutex_lock(&d->mu);
	lane_put_locked(d, l);
	pthread_mutex_unlock(&d->mu);
	return r;
}

static int ocl_crc32c_batch(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_CRC32C, .u.crc = { bufs, n, out } };
	return run_sync(dev, &q);
}

static int ocl_bloom_build(void *dev, const uint64_t *hashes, size_t n, uint32_t k, uint8_t *filter,
			   size_t size)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_BLOOM_BUILD,
				  .u.build = { hashes, n, k, filter, size } };
	return run_sync(dev, &q);
}

static int ocl_bloom_probe(void *dev, const struct sl_accel_filter *filters, size_t nfilters,
			   const uint32_t *which, const uint64_t *hashes, size_t n, uint8_t *out)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_BLOOM_PROBE,
				  .u.probe = { filters, nfilters, which, hashes, n, out } };
	return run_sync(dev, &q);
}

static int ocl_merge(void *dev, struct sl_accel_merge_job *job)
{
	struct sl_accel_req q = { .op = SL_ACCEL_OP_MERGE, .u.merge = job };
	return run_sync(dev, &q);
}

/* Queue req on a free lane: 0, or -EAGAIN with every lane busy. Requests that need no device
 * (invalid, or empty) complete at the next poll. */
static int ocl_submit(void *dev, struct sl_accel_req *q)
{
	struct ocl *d = dev;
	int r = precheck(q);
	if (r == EXEC_MORE && __atomic_load_n(&d->hung, __ATOMIC_RELAXED))
		r = -ENODEV;
	if (r == EXEC_MORE) {
		struct lane *l = lane_get(d, 0, 1);
		if (!l)
			return -EAGAIN;
		r = exec_start(l, q);
		if (r == EXEC_MORE && (r = arm(l)) == 0)
			return 0;
		exec_end(l, r);
		pthread_mutex_lock(&d->mu);
		lane_put_locked(d, l);
		pthread_mutex_unlock(&d->mu);
	}
	q->status = r;
	q->device_ns = 0;
	pthread_mutex_lock(&d->mu);
	push_done_locked(d, q);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int ocl_poll(void *dev, int64_t timeout_ns, struct sl_accel_req **out)
{
	struct ocl *d = dev;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ns > 0) {
		int64_t ns = until.tv_nsec + timeout_ns % 1000000000;
		until.tv_sec += timeout_ns / 1000000000 + ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
	}
	pthread_mutex_lock(&d->mu);
	for (;;) {
		reap_locked(d);
		/* The watchdog: a submitted phase past its deadline is hung; its request ends
		 * with -ENODEV (the seam runs it on cpu) and its lane stays busy. */
		uint64_t now = mono_ns(), next = UINT64_MAX;
		int inflight = 0;
		for (int i = 0; i < NLANES; i++) {
			struct lane *l = &d->lane[i];
			if (!l->async || l->hung)
				continue;
			if (l->armed && !l->fired && !l->stepping) {
				uint64_t dl = l->armed_ns + d->timeout_ns;
				if (dl <= now) {
					hang_locked(d, l);
					l->ex.req->status = -ENODEV;
					l->ex.req->device_ns = 0;
					push_done_locked(d, l->ex.req);
					continue;
				}
				next = dl < next ? dl : next;
			}
			inflight = 1;
		}
		if (d->done || timeout_ns <= 0 || !inflight)
			break;
		if (ready_locked(d))
			continue;
		struct timespec w = until;
		if (next != UINT64_MAX &&
		    next < (uint64_t)until.tv_sec * 1000000000u + (uint64_t)until.tv_nsec) {
			w.tv_sec = (time_t)(next / 1000000000u);
			w.tv_nsec = (long)(next % 1000000000u);
		}
		if (pthread_cond_timedwait(&d->cv, &d->mu, &w) == ETIMEDOUT && mono_ns() >=
		    (uint64_t)until.tv_sec * 1000000000u + (uint64_t)until.tv_nsec) {
			reap_locked(d);
			break;
		}
	}
	int n = 0;
	for (struct sl_accel_req *q = d->done; q; q = q->next)
		n++;
	*out = d->done;
	d->done = NULL;
	d->done_tail = &d->done;
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* ---- Open, close, info ---------------------------------------------------------------------- */

static void lane_release(struct lane *l)
{
	if (!l->q)
		return;
	if (l->hung && !l->deaf)
		return; /* its commands may never end: leave the lane as it is */
	clFinish(l->q);
	for (int i = 0; i < P_N; i++)
		pin_release(l, &l->p[i]);
	for (int i = 0; i < M_N; i++)
		if (l->m[i].mem)
			clReleaseMemObject(l->m[i].mem);
	for (int i = 0; i < K_N; i++)
		if (l->k[i])
			clReleaseKernel(l->k[i]);
	clReleaseCommandQueue(l->q);
	memset(l, 0, sizeof(*l));
}

static void ocl_close(void *dev)
{
	struct ocl *d = dev;
	if (!d)
		return;
	for (int i = 0; i < NLANES; i++)
		lane_release(&d->lane[i]);
	if (d->prog)
		clReleaseProgram(d->prog);
	if (d->ctx)
		clReleaseContext(d->ctx);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static void ocl_info(void *dev, struct sl_accel_info *out)
{
	*out = ((struct ocl *)dev)->info;
}

/* Run slk_abi: the program's structs must be laid out as this file's. */
static int check_abi(struct ocl *d, char *why, size_t why_cap)
{
	struct lane *l = &d->lane[0];
	struct slk_abi_report rep;
	memset(&rep, 0, sizeof(rep));
	cl_int e;
	cl_kernel k = clCreateKernel(d->prog, "slk_abi", &e);
	cl_mem m = k ? clCreateBuffer(d->ctx, CL_MEM_READ_WRITE, sizeof(rep), NULL, &e) : NULL;
	size_t one = 1;
	if (m) {
		e = clSetKernelArg(k, 0, sizeof(m), &m);
		if (!e)
			e = clEnqueueNDRangeKernel(l->q, k, 1, NULL, &one, &one, 0, NULL, NULL);
		if (!e)
			e = clEnqueueReadBuffer(l->q, m, CL_TRUE, 0, sizeof(rep), &rep, 0, NULL,
						NULL);
		clReleaseMemObject(m);
	}
	if (k)
		clReleaseKernel(k);
	uint32_t got[] = { rep.size_crc_chunk, rep.size_filter, rep.size_params, rep.size_run,
			   rep.size_inblock,   rep.size_block,	rep.size_result, rep.size_cursor };
	_Static_assert(sizeof(got) == sizeof(abi_sizes), "one size per struct");
	if (e != CL_SUCCESS) {
		say(why, why_cap, "OpenCL program has no working slk_abi kernel (error %d)", e);
		return -ENODEV;
	}
	if (rep.version != SLK_ABI_VERSION || memcmp(got, abi_sizes, sizeof(got))) {
		say(why, why_cap,
		    "OpenCL program's kernel ABI differs from the host's (version %u, "
		    "expected %u; or struct sizes)",
		    rep.version, SLK_ABI_VERSION);
		return -ENODEV;
	}
	return 0;
}

static int make_lanes(struct ocl *d)
{
	for (int i = 0; i < NLANES; i++) {
		struct lane *l = &d->lane[i];
		cl_int e;
		l->d = d;
		l->q = clCreateCommandQueue(d->ctx, d->dev, CL_QUEUE_PROFILING_ENABLE, &e);
		if (!l->q)
			return cl_errno(e) ? cl_errno(e) : -ENOMEM;
	}
	return 0;
}

static int make_kernels(struct ocl *d, char *why, size_t why_cap)
{
	for (int i = 0; i < NLANES; i++)
		for (int k = 0; k < K_N; k++) {
			cl_int e;
			d->lane[i].k[k] = clCreateKernel(d->prog, kern_names[k], &e);
			if (!d->lane[i].k[k]) {
				say(why, why_cap, "OpenCL program lacks kernel %s (error %d)",
				    kern_names[k], e);
				return -ENODEV;
			}
		}
	/* 64 work-items a group, or the largest power of two the kernel allows below that. */
	for (int k = 0; k < K_N; k++) {
		size_t wgs = 1;
		clGetKernelWorkGroupInfo(d->lane[0].k[k], d->dev, CL_KERNEL_WORK_GROUP_SIZE,
					 sizeof(wgs), &wgs, NULL);
		d->local[k] = 1;
		while (!d->one_wi && d->local[k] * 2 <= 64 && d->local[k] * 2 <= wgs)
			d->local[k] *= 2;
	}
	return 0;
}

static void fill_info(struct ocl *d, const char *pname, const char *note)
{
	char dname[96], dver[64], drv[48];
	cl_uint cus = 0;
	cl_ulong mem = 0;
	dev_str(d->dev, CL_DEVICE_NAME, dname, sizeof(dname));
	dev_str(d->dev, CL_DEVICE_VERSION, dver, sizeof(dver));
	dev_str(d->dev, CL_DRIVER_VERSION, drv, sizeof(drv));
	clGetDeviceInfo(d->dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cus), &cus, NULL);
	clGetDeviceInfo(d->dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(mem), &mem, NULL);
	struct sl_accel_info *in = &d->info;
	memset(in, 0, sizeof(*in));
	snprintf(in->name, sizeof(in->name), "opencl");
	/* "OpenCL 3.0 PoCL HSTR: ..." -> "OpenCL 3.0": the rest is in detail. */
	char ver[24];
	say(ver, sizeof(ver), "%s", dver);
	char *sp = strchr(ver[0] ? ver + 7 : ver, ' ');
	if (sp && !strncmp(ver, "OpenCL ", 7))
		*sp = 0;
	snprintf(in->device, sizeof(in->device), "%s (%s)", dname, ver);
	say(in->detail, sizeof(in->detail),
	    "%s device; platform %s; driver %s; %u compute units; %.1f GiB global memory; "
	    "program: %s%s",
	    type_name(d->type), pname, drv, cus, (double)mem / (1u << 30), note,
	    d->one_wi ? "; kernels start as one work-item" : "");
	in->flags = is_device_type(d->type) ? SL_ACCEL_INFO_DEVICE : 0;
}

static int ocl_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	*dev = NULL;
	struct cand c;
	int r = select_device(cfg, &c, why, why_cap);
	if (r < 0)
		return r;
	struct ocl *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&d->mu, NULL);
	d->done_tail = &d->done;
	d->plat = c.plat;
	d->dev = c.dev;
	d->type = c.type;
	d->one_wi = cfg->one_work_item || (c.type & CL_DEVICE_TYPE_ACCELERATOR);
	d->timeout_ns = (uint64_t)(cfg->timeout_ms ? cfg->timeout_ms : 30000) * 1000000u;
	const char *hang = getenv("SLUICE_OPENCL_TEST_HANG");
	d->deaf_at = hang && hang[0] ? strtoull(hang, NULL, 10) : 0;
	cl_bool little = CL_FALSE, avail = CL_FALSE, compiler = CL_FALSE;
	clGetDeviceInfo(d->dev, CL_DEVICE_ENDIAN_LITTLE, sizeof(little), &little, NULL);
	clGetDeviceInfo(d->dev, CL_DEVICE_AVAILABLE, sizeof(avail), &avail, NULL);
	clGetDeviceInfo(d->dev, CL_DEVICE_COMPILER_AVAILABLE, sizeof(compiler), &compiler, NULL);
	clGetDeviceInfo(d->dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(d->max_alloc), &d->max_alloc,
			NULL);
	if (!little || !avail || (!compiler && !(cfg->binary && cfg->binary[0]))) {
		say(why, why_cap, "OpenCL device %s is %s", c.dname,
		    !little  ? "big-endian (the kernels read little-endian data)"
		    : !avail ? "not available"
			     : "without a compiler (give a program binary: --accel-binary)");
		r = -ENODEV;
		goto out_close;
	}
	cl_int e;
	cl_context_properties props[] = { CL_CONTEXT_PLATFORM, (cl_context_properties)d->plat, 0 };
	d->ctx = clCreateContext(props, 1, &d->dev, NULL, NULL, &e);
	if (!d->ctx) {
		say(why, why_cap, "cannot create an OpenCL context on %s (error %d)", c.dname, e);
		r = cl_errno(e) ? cl_errno(e) : -ENODEV;
		goto out_close;
	}
	char note[PATH_MAX + 32];
	if ((r = make_lanes(d)) < 0 ||
	    (r = get_program(d, cfg, note, sizeof(note), why, why_cap)) < 0 ||
	    (r = check_abi(d, why, why_cap)) < 0 || (r = make_kernels(d, why, why_cap)) < 0)
		goto out_close;
	fill_info(d, c.pname, note);
	*dev = d;
	return 0;
out_close:
	ocl_close(d);
	return r;
}

const struct sl_accel_ops sl__accel_opencl_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "opencl",
	.open = ocl_open,
	.close = ocl_close,
	.info = ocl_info,
	.crc32c_batch = ocl_crc32c_batch,
	.bloom_build = ocl_bloom_build,
	.bloom_probe = ocl_bloom_probe,
	.merge = ocl_merge,
	.submit = ocl_submit,
	.poll = ocl_poll,
};
