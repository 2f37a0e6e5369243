/* xrt_shim.c - XRT's native C API (xrt_capi.h) over a device model, built as a shared library
 * named libxrt_coreutil.so.2 so that accel_xrt.c's dlopen path runs where no XRT exists (the
 * model is described in xrt_shim.h). This file holds the handles: devices with their memory and
 * a device thread, the stand-in xclbin, kernels with their memory connectivity, buffer objects
 * with host backing and device memory, and runs; the kernels themselves are in
 * xrt_shim_kernels.c. It is a test double, never part of libsluice.
 *
 * Locking: each device has one mutex for everything of it (its queue, its objects' reference
 * counts, run states); kernels run on its thread without it. Objects are reference counted so
 * that, as in XRT, a run keeps its kernel and buffers alive and a buffer or kernel its device.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xrt_shim.h"
#include "xrt_shim_kernels.h"

#define SHIM_API __attribute__((visibility("default")))

#define MAX_KERNELS 64
#define MAX_BANKS   64
#define NAME_CAP    64
#define LINE_CAP    1024
#define DEV_JUNK    0xDB /* device memory is not zeroed on a card either */

/* Handle magics; a closed handle gets its *_CLOSED value, so using it again is refused. */
enum {
	MAGIC_DEV = 0x58444556,
	MAGIC_KERNEL = 0x584b524e,
	MAGIC_BO = 0x58424f30,
	MAGIC_RUN = 0x5852554e,
	MAGIC_CLOSED = 0x0,
};

/* One kernel of the xclbin: its arguments' kinds ('g', '4', '8') and memory groups. */
struct xkernel {
	char name[NAME_CAP];
	int nargs;
	char kind[SHIM_MAX_ARGS];
	uint32_t group[SHIM_MAX_ARGS];
};

struct xclbin {
	xuid_t uuid;
	int nbanks;
	char bank[MAX_BANKS][24];
	int nkernels;
	struct xkernel k[MAX_KERNELS];
};

struct srun;

struct sdev {
	uint32_t magic;
	unsigned index;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* the queue changed; a run finished */
	pthread_t thread;
	int stop;
	struct srun *head, *tail; /* started runs, in order */
	uint64_t started;	  /* runs taken by the compute units, ever */
	int refs;		  /* the open handle, each buffer object and kernel */
	int loaded;
	struct xclbin xb;
	uint64_t mem_cap, mem_used;
};

struct sbo {
	uint32_t magic;
	struct sdev *d;
	int refs; /* the handle, and each run argument naming it */
	uint64_t size;
	uint32_t grp;
	uint8_t *host; /* host backing: xrtBOMap, xrtBOWrite, xrtBORead */
	uint8_t *mem;  /* device memory: what kernels see */
};

struct skernel {
	uint32_t magic;
	struct sdev *d;
	int refs; /* the handle and each run */
	struct xkernel meta;
	const struct shim_kernel_impl *impl;
};

struct srun {
	uint32_t magic;
	struct skernel *k;
	struct sbo *bo[SHIM_MAX_ARGS]; /* referenced while set */
	uint64_t u[SHIM_MAX_ARGS];
	uint32_t set; /* arguments set, a bit each */
	enum ert_cmd_state state;
	int hung; /* SLUICE_XRT_SHIM_HANG_RUN picked it: it stays RUNNING for good */
	struct shim_arg snap[SHIM_MAX_ARGS]; /* the arguments as started */
	struct srun *next;
};

/* Tests that provoke errors on purpose set SLUICE_XRT_SHIM_QUIET. */
static int quiet(void)
{
	const char *q = getenv("SLUICE_XRT_SHIM_QUIET");
	return q && q[0] && strcmp(q, "0");
}

/* XRT reports a failed call on stderr and in errno; so does the shim. */
static void say(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!quiet())
		fprintf(stderr, "[XRT shim] ERROR: %s\n", msg);
	errno = err;
}

static uint64_t env_u64(const char *name, uint64_t dflt, uint64_t max)
{
	const char *s = getenv(name);
	char *end;
	if (!s || !s[0])
		return dflt;
	unsigned long long v = strtoull(s, &end, 10);
	return *end || v == 0 || v > max ? dflt : v;
}

/* ---- Devices ----------------------------------------------------------------------------------
 */

/* Drop n references and unlock; the last one frees the device (its thread already joined). */
static void dev_put_unlock(struct sdev *d, int n)
{
	d->refs -= n;
	int last = d->refs == 0;
	pthread_mutex_unlock(&d->mu);
	if (last) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

static void bo_put_locked(struct sbo *b)
{
	if (--b->refs)
		return;
	b->d->mem_used -= b->size;
	b->d->refs--; /* never the last: the caller holds the device */
	free(b->host);
	free(b->mem);
	free(b);
}

static void kernel_put_locked(struct skernel *k)
{
	if (--k->refs)
		return;
	k->d->refs--;
	free(k);
}

/* The compute units: started runs in order, each run to completion. */
static void *dev_main(void *arg)
{
	struct sdev *d = arg;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (!d->head && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		struct srun *r = d->head;
		if (!r)
			break;
		d->head = r->next;
		if (!d->head)
			d->tail = NULL;
		r->state = ERT_CMD_STATE_RUNNING;
		/* A hung compute unit: this run never completes (the other units go on). */
		if (++d->started == env_u64("SLUICE_XRT_SHIM_HANG_RUN", 0, UINT64_MAX)) {
			r->hung = 1;
			continue;
		}
		pthread_mutex_unlock(&d->mu);
		char err[512] = "";
		int rc = r->k->impl->run(r->snap, err, sizeof(err));
		if (rc && !quiet())
			fprintf(stderr, "[XRT shim] ERROR: run of %s failed: %s\n", r->k->meta.name,
				err);
		pthread_mutex_lock(&d->mu);
		r->state = rc ? ERT_CMD_STATE_ERROR : ERT_CMD_STATE_COMPLETED;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

SHIM_API xrtDeviceHandle xrtDeviceOpen(unsigned int index)
{
	unsigned n = (unsigned)env_u64("SLUICE_XRT_SHIM_DEVICES", 1, 64);
	if (index >= n) {
		say(ENODEV, "no device %u (the shim models %u: SLUICE_XRT_SHIM_DEVICES)", index, n);
		return NULL;
	}
	shim_kernels_init();
	struct sdev *d = calloc(1, sizeof(*d));
	if (!d) {
		say(ENOMEM, "no memory for device %u", index);
		return NULL;
	}
	d->magic = MAGIC_DEV;
	d->index = index;
	d->refs = 1;
	d->mem_cap = env_u64("SLUICE_XRT_SHIM_MEM_MB", 4096, 1u << 20) << 20;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	int e = pthread_create(&d->thread, NULL, dev_main, d);
	if (e) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
		say(e, "cannot start device %u's thread", index);
		return NULL;
	}
	return d;
}

static struct sdev *dev_get(xrtDeviceHandle h, const char *fn)
{
	struct sdev *d = h;
	if (!d || d->magic != MAGIC_DEV) {
		say(EINVAL, "%s: not an open device handle", fn);
		return NULL;
	}
	return d;
}

/* Runs started before this complete first; objects still open keep the memory until freed. */
SHIM_API int xrtDeviceClose(xrtDeviceHandle dhdl)
{
	struct sdev *d = dev_get(dhdl, __func__);
	if (!d)
		return -1;
	pthread_mutex_lock(&d->mu);
	d->magic = MAGIC_CLOSED;
	d->stop = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_mutex_lock(&d->mu);
	dev_put_unlock(d, 1);
	return 0;
}

/* ---- The stand-in xclbin ----------------------------------------------------------------------
 */

static int hexval(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

static int parse_uuid(const char *s, xuid_t out)
{
	for (int i = 0; i < 16; i++) {
		int hi = hexval((unsigned char)s[2 * i]),
		    lo = hi < 0 ? -1 : hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return s[32] == 0 ? 0 : -1;
}

/* The kinds of a kernel as its implementation's signature spells them ("g u64 ..."). */
static void kinds_str(const struct xkernel *k, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = 0;
	for (int i = 0; i < k->nargs && n < cap; i++) {
		const char *s = k->kind[i] == 'g' ? "g" : k->kind[i] == '4' ? "u32" : "u64";
		int w = snprintf(buf + n, cap - n, "%s%s", i ? " " : "", s);
		n += w > 0 ? (size_t)w : 0;
	}
}

/* "kernel NAME ARG..." into k; 0 or -1 with the reason in err. */
static int parse_kernel(char *rest, const struct xclbin *xb, struct xkernel *k, char *err,
			size_t cap)
{
	char *save = NULL, *tok = strtok_r(rest, " \t", &save);
	if (!tok || strlen(tok) >= NAME_CAP) {
		snprintf(err, cap, "a kernel line without a name (or one too long)");
		return -1;
	}
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", tok);
	while ((tok = strtok_r(NULL, " \t", &save))) {
		if (k->nargs == SHIM_MAX_ARGS) {
			snprintf(err, cap, "kernel %s: more than %d arguments", k->name,
				 SHIM_MAX_ARGS);
			return -1;
		}
		int i = k->nargs++;
		char *end;
		if (tok[0] == 'g') {
			unsigned long g = strtoul(tok + 1, &end, 10);
			if (end == tok + 1 || *end || g >= (unsigned long)xb->nbanks) {
				snprintf(err, cap, "kernel %s argument %d: \"%s\" names no bank",
					 k->name, i, tok);
				return -1;
			}
			k->kind[i] = 'g';
			k->group[i] = (uint32_t)g;
		} else if (!strcmp(tok, "u32") || !strcmp(tok, "u64")) {
			k->kind[i] = tok[1] == '3' ? '4' : '8';
		} else {
			snprintf(err, cap, "kernel %s argument %d: unknown kind \"%s\"", k->name, i,
				 tok);
			return -1;
		}
	}
	const struct shim_kernel_impl *impl = shim_kernel_find(k->name);
	char sig[128];
	kinds_str(k, sig, sizeof(sig));
	if (impl && strcmp(sig, impl->sig)) {
		snprintf(err, cap, "kernel %s: the xclbin declares (%s), the shim implements (%s)",
			 k->name, sig, impl->sig);
		return -1;
	}
	return 0;
}

/* Read the stand-in xclbin at path: 0, or -1 with errno set and the reason in err. */
static int parse_xclbin(const char *path, struct xclbin *xb, char *err, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, cap, "cannot open %s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	char line[LINE_CAP];
	int ln = 0, have_uuid = 0, r = -1;
	memset(xb, 0, sizeof(*xb));
	size_t got = fread(line, 1, 8, f);
	if (got == 8 && !memcmp(line, "xclbin2", 8)) {
		snprintf(err, cap,
			 "%s is a real xclbin (axlf): the shim does not parse those (it "
			 "loads the stand-in firmware/fpga/shim_xclbin.sh makes)",
			 path);
		goto out_close;
	}
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		ln++;
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = 0;
		else if (!feof(f)) {
			snprintf(err, cap, "%s:%d: line too long", path, ln);
			goto out_close;
		}
		if (ln == 1) {
			if (strcmp(line, XRT_SHIM_XCLBIN_MAGIC)) {
				snprintf(err, cap,
					 "%s is not an xclbin the shim knows (its first line "
					 "is not \"%s\")",
					 path, XRT_SHIM_XCLBIN_MAGIC);
				goto out_close;
			}
			continue;
		}
		if (!line[0] || line[0] == '#')
			continue;
		char *sp = strchr(line, ' ');
		char *rest = sp ? sp + 1 : line + n;
		if (sp)
			*sp = 0;
		if (!strcmp(line, "uuid")) {
			if (parse_uuid(rest, xb->uuid)) {
				snprintf(err, cap, "%s:%d: a uuid is 32 hex digits", path, ln);
				goto out_close;
			}
			have_uuid = 1;
		} else if (!strcmp(line, "bank")) {
			char tag[24];
			unsigned g;
			if (sscanf(rest, "%u %23s", &g, tag) != 2 || g != (unsigned)xb->nbanks ||
			    xb->nbanks == MAX_BANKS) {
				snprintf(err, cap,
					 "%s:%d: banks are \"bank N TAG\", numbered from 0 in "
					 "order",
					 path, ln);
				goto out_close;
			}
			snprintf(xb->bank[xb->nbanks++], sizeof(xb->bank[0]), "%s", tag);
		} else if (!strcmp(line, "kernel")) {
			char why[256];
			if (xb->nkernels == MAX_KERNELS ||
			    parse_kernel(rest, xb, &xb->k[xb->nkernels], why, sizeof(why))) {
				snprintf(err, cap, "%s:%d: %s", path, ln,
					 xb->nkernels == MAX_KERNELS ? "too many kernels" : why);
				goto out_close;
			}
			xb->nkernels++;
		} else {
			snprintf(err, cap, "%s:%d: unknown line \"%.40s\"", path, ln, line);
			goto out_close;
		}
	}
	if (ln == 0 || !have_uuid) {
		snprintf(err, cap, "%s: %s", path, ln ? "no uuid line" : "empty");
		goto out_close;
	}
	r = 0;
out_close:
	fclose(f);
	if (r)
		errno = EINVAL;
	return r;
}

SHIM_API int xrtDeviceLoadXclbinFile(xrtDeviceHandle dhdl, const char *xclbin_fnm)
{
	struct sdev *d = dev_get(dhdl, __func__);
	if (!d)
		return -1;
	struct xclbin *xb = malloc(sizeof(*xb));
	char err[512];
	if (!xb) {
		say(ENOMEM, "no memory to load an xclbin");
		return -1;
	}
	if (!xclbin_fnm || parse_xclbin(xclbin_fnm, xb, err, sizeof(err))) {
		int e = xclbin_fnm ? errno : EINVAL;
		free(xb);
		say(e, "xrtDeviceLoadXclbinFile: %s", xclbin_fnm ? err : "no file name");
		return -1;
	}
	pthread_mutex_lock(&d->mu);
	d->xb = *xb;
	d->loaded = 1;
	pthread_mutex_unlock(&d->mu);
	free(xb);
	return 0;
}

SHIM_API int xrtDeviceGetXclbinUUID(xrtDeviceHandle dhdl, xuid_t out)
{
	struct sdev *d = dev_get(dhdl, __func__);
	if (!d)
		return -1;
	pthread_mutex_lock(&d->mu);
	int loaded = d->loaded;
	if (loaded)
		memcpy(out, d->xb.uuid, sizeof(xuid_t));
	pthread_mutex_unlock(&d->mu);
	if (!loaded) {
		say(EINVAL, "xrtDeviceGetXclbinUUID: no xclbin loaded on device %u", d->index);
		return -1;
	}
	return 0;
}

/* ---- Kernels ------------------------------------------------------------------------------------
 */

/* name may carry XRT's ":{instance,...}" selector; the shim has one compute unit a kernel. */
SHIM_API xrtKernelHandle xrtPLKernelOpen(xrtDeviceHandle deviceHandle, const xuid_t xclbinId,
					 const char *name)
{
	struct sdev *d = dev_get(deviceHandle, __func__);
	if (!d || !name)
		return NULL;
	char base[NAME_CAP];
	snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, ":"), name);
	pthread_mutex_lock(&d->mu);
	const struct xkernel *meta = NULL;
	int uuid_ok = d->loaded && !memcmp(d->xb.uuid, xclbinId, sizeof(xuid_t));
	for (int i = 0; uuid_ok && i < d->xb.nkernels && !meta; i++)
		if (!strcmp(d->xb.k[i].name, base))
			meta = &d->xb.k[i];
	const struct shim_kernel_impl *impl = meta ? shim_kernel_find(base) : NULL;
	struct skernel *k = impl ? calloc(1, sizeof(*k)) : NULL;
	if (k) {
		k->magic = MAGIC_KERNEL;
		k->d = d;
		k->refs = 1;
		k->meta = *meta;
		k->impl = impl;
		d->refs++;
	}
	pthread_mutex_unlock(&d->mu);
	if (!k)
		say(!uuid_ok || !meta ? ENOENT
		    : impl	      ? ENOMEM
				      : ENOSYS,
		    "xrtPLKernelOpen(%s): %s", name,
		    !uuid_ok ? "no xclbin with that uuid is loaded"
		    : !meta  ? "no such kernel in the xclbin"
		    : impl   ? "no memory"
			     : "the shim has no implementation of it");
	return k;
}

static struct skernel *kernel_get(xrtKernelHandle h, const char *fn)
{
	struct skernel *k = h;
	if (!k || k->magic != MAGIC_KERNEL) {
		say(EINVAL, "%s: not an open kernel handle", fn);
		return NULL;
	}
	return k;
}

SHIM_API int xrtKernelClose(xrtKernelHandle kernelHandle)
{
	struct skernel *k = kernel_get(kernelHandle, __func__);
	if (!k)
		return -1;
	struct sdev *d = k->d;
	pthread_mutex_lock(&d->mu);
	k->magic = MAGIC_CLOSED;
	d->refs++; /* hold the device across the kernel's release */
	kernel_put_locked(k);
	dev_put_unlock(d, 1);
	return 0;
}

SHIM_API int xrtKernelArgGroupId(xrtKernelHandle kernelHandle, int argno)
{
	struct skernel *k = kernel_get(kernelHandle, __func__);
	if (!k)
		return -EINVAL;
	if (argno < 0 || argno >= k->meta.nargs || k->meta.kind[argno] != 'g') {
		say(EINVAL, "xrtKernelArgGroupId(%s, %d): not a global argument", k->meta.name,
		    argno);
		return -EINVAL;
	}
	return (int)k->meta.group[argno];
}

/* ---- Buffer objects -----------------------------------------------------------------------------
 */

/* flags beyond the bank are accepted and ignored: every buffer has host backing. */
SHIM_API xrtBufferHandle xrtBOAlloc(xrtDeviceHandle dhdl, size_t size, xrtBufferFlags flags,
				    xrtMemoryGroup grp)
{
	(void)flags;
	struct sdev *d = dev_get(dhdl, __func__);
	if (!d)
		return NULL;
	if (size == 0) {
		say(EINVAL, "xrtBOAlloc: size 0");
		return NULL;
	}
	pthread_mutex_lock(&d->mu);
	int nbanks = d->loaded ? d->xb.nbanks : 1;
	int room = size <= d->mem_cap - d->mem_used;
	if (grp < (uint32_t)nbanks && room)
		d->mem_used += size;
	pthread_mutex_unlock(&d->mu);
	if (grp >= (uint32_t)nbanks || !room) {
		say(grp >= (uint32_t)nbanks ? EINVAL : ENOMEM, "xrtBOAlloc(%zu bytes, bank %u): %s",
		    size, grp,
		    grp >= (uint32_t)nbanks ? "no such memory bank" : "device memory exhausted");
		return NULL;
	}
	struct sbo *b = calloc(1, sizeof(*b));
	void *host = NULL;
	uint8_t *mem = malloc(size);
	if (!b || posix_memalign(&host, 4096, size) || !mem) {
		free(b);
		free(host);
		free(mem);
		pthread_mutex_lock(&d->mu);
		d->mem_used -= size;
		pthread_mutex_unlock(&d->mu);
		say(ENOMEM, "xrtBOAlloc(%zu bytes): no host memory", size);
		return NULL;
	}
	memset(host, 0, size);
	memset(mem, DEV_JUNK, size);
	*b = (struct sbo){ .magic = MAGIC_BO,
			   .d = d,
			   .refs = 1,
			   .size = size,
			   .grp = grp,
			   .host = host,
			   .mem = mem };
	pthread_mutex_lock(&d->mu);
	d->refs++;
	pthread_mutex_unlock(&d->mu);
	return b;
}

static struct sbo *bo_get(xrtBufferHandle h, const char *fn)
{
	struct sbo *b = h;
	if (!b || b->magic != MAGIC_BO) {
		say(EINVAL, "%s: not a buffer object handle", fn);
		return NULL;
	}
	return b;
}

SHIM_API int xrtBOFree(xrtBufferHandle bhdl)
{
	struct sbo *b = bo_get(bhdl, __func__);
	if (!b)
		return -1;
	struct sdev *d = b->d;
	pthread_mutex_lock(&d->mu);
	b->magic = MAGIC_CLOSED;
	d->refs++;
	bo_put_locked(b);
	dev_put_unlock(d, 1);
	return 0;
}

SHIM_API void *xrtBOMap(xrtBufferHandle bhdl)
{
	struct sbo *b = bo_get(bhdl, __func__);
	return b ? b->host : NULL;
}

static int bo_range(const struct sbo *b, size_t size, size_t off, const char *fn)
{
	if (off > b->size || size > b->size - off) {
		say(EINVAL, "%s: [%zu, +%zu) past the buffer's %" PRIu64 " bytes", fn, off, size,
		    b->size);
		return -1;
	}
	return 0;
}

SHIM_API int xrtBOSync(xrtBufferHandle bhdl, enum xclBOSyncDirection dir, size_t size,
		       size_t offset)
{
	struct sbo *b = bo_get(bhdl, __func__);
	if (!b || bo_range(b, size, offset, __func__))
		return -1;
	if (dir == XCL_BO_SYNC_BO_TO_DEVICE) {
		memcpy(b->mem + offset, b->host + offset, size);
	} else if (dir == XCL_BO_SYNC_BO_FROM_DEVICE) {
		memcpy(b->host + offset, b->mem + offset, size);
	} else {
		say(EINVAL, "xrtBOSync: direction %d (AIE) is not modelled", (int)dir);
		return -1;
	}
	return 0;
}

SHIM_API int xrtBOWrite(xrtBufferHandle bhdl, const void *src, size_t size, size_t seek)
{
	struct sbo *b = bo_get(bhdl, __func__);
	if (!b || bo_range(b, size, seek, __func__))
		return -1;
	if (size)
		memcpy(b->host + seek, src, size);
	return 0;
}

SHIM_API int xrtBORead(xrtBufferHandle bhdl, void *dst, size_t size, size_t skip)
{
	struct sbo *b = bo_get(bhdl, __func__);
	if (!b || bo_range(b, size, skip, __func__))
		return -1;
	if (size)
		memcpy(dst, b->host + skip, size);
	return 0;
}

/* ---- Runs
 * ------------------------------------------------------------------------------------------ */

SHIM_API xrtRunHandle xrtRunOpen(xrtKernelHandle kernelHandle)
{
	struct skernel *k = kernel_get(kernelHandle, __func__);
	if (!k)
		return NULL;
	struct srun *r = calloc(1, sizeof(*r));
	if (!r) {
		say(ENOMEM, "xrtRunOpen: no memory");
		return NULL;
	}
	r->magic = MAGIC_RUN;
	r->k = k;
	r->state = ERT_CMD_STATE_NEW;
	pthread_mutex_lock(&k->d->mu);
	k->refs++;
	pthread_mutex_unlock(&k->d->mu);
	return r;
}

static struct srun *run_get(xrtRunHandle h, const char *fn)
{
	struct srun *r = h;
	if (!r || r->magic != MAGIC_RUN) {
		say(EINVAL, "%s: not a run handle", fn);
		return NULL;
	}
	return r;
}

static int in_flight(const struct srun *r)
{
	return r->state == ERT_CMD_STATE_QUEUED || r->state == ERT_CMD_STATE_RUNNING;
}

/* The value's type is read from the varargs by the argument's kind, as XRT reads it by the
 * xclbin's argument metadata: a buffer handle, unsigned int or uint64_t. */
SHIM_API int xrtRunSetArg(xrtRunHandle rhdl, int index, ...)
{
	struct srun *r = run_get(rhdl, __func__);
	if (!r)
		return -1;
	const struct xkernel *m = &r->k->meta;
	if (index < 0 || index >= m->nargs) {
		say(EINVAL, "xrtRunSetArg(%s, %d): the kernel has %d arguments", m->name, index,
		    m->nargs);
		return -1;
	}
	va_list ap;
	va_start(ap, index);
	struct sbo *b = NULL;
	uint64_t u = 0;
	if (m->kind[index] == 'g')
		b = va_arg(ap, xrtBufferHandle);
	else if (m->kind[index] == '4')
		u = va_arg(ap, unsigned int);
	else
		u = va_arg(ap, uint64_t);
	va_end(ap);
	if (m->kind[index] == 'g' && !bo_get(b, __func__))
		return -1;
	struct sdev *d = r->k->d;
	const char *why = NULL;
	pthread_mutex_lock(&d->mu);
	if (in_flight(r))
		why = "the run is in flight";
	else if (b && b->d != d)
		why = "the buffer is on another device";
	else if (b && b->grp != m->group[index])
		why = "the buffer is not in the bank the argument is connected to";
	if (!why) {
		if (r->bo[index])
			bo_put_locked(r->bo[index]);
		if (b)
			b->refs++;
		r->bo[index] = b;
		r->u[index] = u;
		r->set |= 1u << index;
	}
	uint32_t want = m->group[index], have = b ? b->grp : 0;
	char tag[sizeof(d->xb.bank[0])];
	snprintf(tag, sizeof(tag), "%s", want < MAX_BANKS ? d->xb.bank[want] : "?");
	pthread_mutex_unlock(&d->mu);
	if (why) {
		say(EINVAL, "xrtRunSetArg(%s, %d): %s (argument: bank %u %s; buffer: bank %u)",
		    m->name, index, why, want, tag, have);
		return -1;
	}
	return 0;
}

SHIM_API int xrtRunStart(xrtRunHandle rhdl)
{
	struct srun *r = run_get(rhdl, __func__);
	if (!r)
		return -1;
	const struct xkernel *m = &r->k->meta;
	struct sdev *d = r->k->d;
	const char *why = NULL;
	pthread_mutex_lock(&d->mu);
	if (in_flight(r))
		why = "the run is already in flight";
	else if (r->set != (1u << m->nargs) - 1)
		why = "not every argument is set";
	else if (d->stop)
		why = "the device is closed";
	if (!why) {
		for (int i = 0; i < m->nargs; i++)
			r->snap[i] = r->bo[i] ? (struct shim_arg){ .mem = r->bo[i]->mem,
								   .size = r->bo[i]->size }
					      : (struct shim_arg){ .u = r->u[i] };
		r->state = ERT_CMD_STATE_QUEUED;
		r->next = NULL;
		if (d->tail)
			d->tail->next = r;
		else
			d->head = r;
		d->tail = r;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	if (why) {
		say(EINVAL, "xrtRunStart(%s): %s", m->name, why);
		return -1;
	}
	return 0;
}

SHIM_API enum ert_cmd_state xrtRunWait(xrtRunHandle rhdl)
{
	struct srun *r = run_get(rhdl, __func__);
	if (!r)
		return ERT_CMD_STATE_ABORT;
	struct sdev *d = r->k->d;
	pthread_mutex_lock(&d->mu);
	while (in_flight(r))
		pthread_cond_wait(&d->cv, &d->mu);
	enum ert_cmd_state st = r->state;
	pthread_mutex_unlock(&d->mu);
	return st;
}

SHIM_API enum ert_cmd_state xrtRunWaitFor(xrtRunHandle rhdl, unsigned int timeout_ms)
{
	struct srun *r = run_get(rhdl, __func__);
	if (!r)
		return ERT_CMD_STATE_ABORT;
	struct sdev *d = r->k->d;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&d->mu);
	while (in_flight(r))
		if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT)
			break;
	enum ert_cmd_state st = r->state;
	pthread_mutex_unlock(&d->mu);
	return st;
}

/* A run in flight completes first (a hung one is let go as it is); then its buffers and
 * kernel are let go. */
SHIM_API int xrtRunClose(xrtRunHandle rhdl)
{
	struct srun *r = run_get(rhdl, __func__);
	if (!r)
		return -1;
	struct sdev *d = r->k->d;
	pthread_mutex_lock(&d->mu);
	while (in_flight(r) && !r->hung)
		pthread_cond_wait(&d->cv, &d->mu);
	r->magic = MAGIC_CLOSED;
	for (int i = 0; i < SHIM_MAX_ARGS; i++)
		if (r->bo[i])
			bo_put_locked(r->bo[i]);
	d->refs++;
	kernel_put_locked(r->k);
	free(r);
	dev_put_unlock(d, 1);
	return 0;
}

SHIM_API const char *sluice_xrt_shim_describe(void)
{
	return "XRT shim (sim/shim): XRT's C API over the firmware's kernels on the host, no FPGA";
}
