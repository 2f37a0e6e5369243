/* sim_dev.c - the modelled device: device memory and its buffer table, DMA copies, the
 * submission and completion rings, the doorbell and the interrupt, and the device thread that
 * runs the firmware's command processor (fw_process) on each descriptor and posts its completion
 * with the modelled time (sim_model.c); in polled mode a caller's thread does the same. Contract
 * in sim.h. sim knows nothing of the accel seam.
 *
 * Locks: mem_mu guards the allocator and the buffer table's writers (the firmware reads the
 * table without it, through atomics: fw.h); mu guards the rings and the device thread's state.
 * Neither is held while the firmware runs, while data is copied, or while the interrupt
 * callback runs. Counters are atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "fw.h"
#include "sim.h"
#include "sim_asan.h"

#define N_BUFS	     4096	/* buffer table entries: at most this many live buffers */
#define ALIGN	     64		/* buffers start on a 64-byte boundary */
#define GUARD	     64		/* poisoned bytes after each buffer (under ASan) */
#define RELEASE_FROM (4u << 20) /* freed buffers this large give their pages back */
#define HOLD_POLL_NS 1000000	/* how often a held device looks again */

_Static_assert(N_BUFS <= FW_HANDLE_INDEX_MASK + 1, "table indexes fit a handle");

/* A live buffer's extent in device memory (guard and alignment included), kept sorted. */
struct extent {
	uint64_t base, size;
	uint32_t idx;
};

struct sim_dev {
	struct sim_profile prof;
	struct fw_device fw;
	size_t map_bytes;

	pthread_mutex_t mem_mu;
	struct extent *ext; /* n_ext of them, by base */
	uint32_t n_ext;
	uint16_t *gen; /* per table entry: the generation of its last handle */
	uint32_t *free_idx;
	uint32_t n_free;
	uint64_t mem_used, mem_peak;
	uint64_t hiwater; /* the end of the highest extent ever allocated */

	pthread_mutex_t mu;
	pthread_cond_t doorbell; /* to the device: entries rung in, or stop */
	pthread_cond_t posted;	 /* from the device: a completion posted */
	struct fw_desc *sq;
	struct fw_completion *cq;
	/* Monotonic counts; ring positions are these modulo prof.ring. written - popped is what
	 * the rings hold between them, never more than ring, so the completion ring never
	 * overflows. */
	uint64_t sq_written, sq_rung, sq_taken, cq_posted, cq_popped;
	/* Commands a reset dropped: they will never have a completion, so the rings' fill is
	 * sq_written - dropped - cq_popped. */
	uint64_t dropped;
	/* Fault injection (sim_inject): fault happens when fault_at commands have been taken. */
	enum sim_fault fault;
	uint64_t fault_at;     /* commands taken (fault_op 0) or of fault_op taken, at the fault */
	uint32_t fault_op;
	uint64_t op_taken;     /* commands of fault_op taken */
	int hung, lost; /* lost: read without mu by the copies (atomics) */
	uint64_t running; /* taken and in the firmware now: they will complete */
	int stop;
	int sleeping; /* the device thread waits on doorbell: ringing must signal it */
	void (*irq)(void *);
	void *irq_arg;
	pthread_t thread;

	uint64_t commands, errors, h2d_bytes, d2h_bytes, dma_ns, busy_ns;
};

static int g_hold;

void sim_test_hold(int hold)
{
	__atomic_store_n(&g_hold, hold, __ATOMIC_RELAXED);
}

static void add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* ---- Device memory -------------------------------------------------------------------------- */

int sim_mem_alloc(struct sim_dev *d, uint64_t size, uint32_t *handle)
{
	if (!size)
		return -EINVAL;
	if (size > d->map_bytes)
		return -ENOMEM;
	uint64_t asize = (size + ALIGN - 1) / ALIGN * ALIGN + GUARD;
	pthread_mutex_lock(&d->mem_mu);
	if (!d->n_free)
		goto out_nomem;
	/* First fit over the gaps between live extents. */
	uint64_t end = 0;
	uint32_t pos = 0;
	for (; pos < d->n_ext; pos++) {
		if (d->ext[pos].base - end >= asize)
			break;
		end = d->ext[pos].base + d->ext[pos].size;
	}
	if (pos == d->n_ext && d->map_bytes - end < asize)
		goto out_nomem;
	uint32_t idx = d->free_idx[--d->n_free];
	memmove(&d->ext[pos + 1], &d->ext[pos], (d->n_ext - pos) * sizeof(*d->ext));
	d->ext[pos] = (struct extent){ end, asize, idx };
	d->n_ext++;
	if (++d->gen[idx] == 0)
		d->gen[idx] = 1;
	uint32_t h = (uint32_t)d->gen[idx] << FW_HANDLE_INDEX_BITS | idx;
	struct fw_buffer *b = &d->fw.bufs[idx];
	__atomic_store_n(&b->base, end, __ATOMIC_RELAXED);
	__atomic_store_n(&b->size, size, __ATOMIC_RELAXED);
	__atomic_store_n(&b->handle, h, __ATOMIC_RELEASE);
	sim_unpoison(d->fw.mem + end, size);
	sim_poison(d->fw.mem + end + size, asize - size);
	d->mem_used += asize;
	if (end + asize > d->hiwater)
		d->hiwater = end + asize;
	if (d->mem_used > d->mem_peak)
		d->mem_peak = d->mem_used;
	pthread_mutex_unlock(&d->mem_mu);
	*handle = h;
	return 0;
out_nomem:
	pthread_mutex_unlock(&d->mem_mu);
	return -ENOMEM;
}

/* The live table entry of handle h, or NULL. mem_mu held. */
static struct fw_buffer *live(struct sim_dev *d, uint32_t h)
{
	uint32_t idx = h & FW_HANDLE_INDEX_MASK;
	if (!h || idx >= N_BUFS || d->fw.bufs[idx].handle != h)
		return NULL;
	return &d->fw.bufs[idx];
}

int sim_mem_free(struct sim_dev *d, uint32_t h)
{
	pthread_mutex_lock(&d->mem_mu);
	struct fw_buffer *b = live(d, h);
	if (!b) {
		pthread_mutex_unlock(&d->mem_mu);
		return -EINVAL;
	}
	uint32_t idx = h & FW_HANDLE_INDEX_MASK;
	__atomic_store_n(&b->handle, 0, __ATOMIC_RELEASE);
	uint32_t pos = 0;
	while (d->ext[pos].idx != idx)
		pos++;
	struct extent e = d->ext[pos];
	memmove(&d->ext[pos], &d->ext[pos + 1], (d->n_ext - pos - 1) * sizeof(*d->ext));
	d->n_ext--;
	d->free_idx[d->n_free++] = idx;
	d->mem_used -= e.size;
	sim_poison(d->fw.mem + e.base, e.size);
	if (e.size >= RELEASE_FROM) {
		/* The pages inside the extent go back to the host: device memory is address
		 * space, resident only where buffers are in use. */
		uint64_t lo = (e.base + 4095) & ~4095ull, hi = (e.base + e.size) & ~4095ull;
		if (hi > lo)
			madvise(d->fw.mem + lo, hi - lo, MADV_DONTNEED);
	}
	pthread_mutex_unlock(&d->mem_mu);
	return 0;
}

/* Where [off, off + len) of buffer h lies, or -EINVAL. */
int sim_lost(const struct sim_dev *d)
{
	return __atomic_load_n(&d->lost, __ATOMIC_ACQUIRE);
}

static int span(struct sim_dev *d, uint32_t h, uint64_t off, uint64_t len, uint8_t **p)
{
	if (sim_lost(d))
		return -ENODEV;
	pthread_mutex_lock(&d->mem_mu);
	struct fw_buffer *b = live(d, h);
	int ok = b && off <= b->size && len <= b->size - off;
	if (ok)
		*p = d->fw.mem + b->base + off;
	pthread_mutex_unlock(&d->mem_mu);
	return ok ? 0 : -EINVAL;
}

static void dma_done(struct sim_dev *d, enum sim_dir dir, uint64_t bytes, uint64_t *ns)
{
	uint64_t t = sim_dma_ns(&d->prof, dir, bytes);
	add(dir == SIM_H2D ? &d->h2d_bytes : &d->d2h_bytes, bytes);
	add(&d->dma_ns, t);
	if (ns)
		*ns = t;
}

int sim_dma_to_dev(struct sim_dev *d, uint32_t h, uint64_t off, const void *src, uint64_t len,
		   uint64_t *ns)
{
	uint8_t *p;
	int r = span(d, h, off, len, &p);
	if (r)
		return r;
	if (len)
		memcpy(p, src, len);
	dma_done(d, SIM_H2D, len, ns);
	return 0;
}

int sim_dma_to_dev_sg(struct sim_dev *d, uint32_t h, uint64_t off, const struct sim_sg *sg,
		      size_t n, uint64_t *ns)
{
	uint64_t total = 0;
	uint8_t *p;
	for (size_t i = 0; i < n; i++) {
		if (sg[i].len > UINT64_MAX - total)
			return -EINVAL;
		total += sg[i].len;
	}
	int r = span(d, h, off, total, &p);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (sg[i].len)
			memcpy(p, sg[i].p, sg[i].len);
		p += sg[i].len;
	}
	dma_done(d, SIM_H2D, total, ns);
	return 0;
}

int sim_dma_from_dev(struct sim_dev *d, uint32_t h, uint64_t off, void *dst, uint64_t len,
		     uint64_t *ns)
{
	uint8_t *p;
	int r = span(d, h, off, len, &p);
	if (r)
		return r;
	if (len)
		memcpy(dst, p, len);
	dma_done(d, SIM_D2H, len, ns);
	return 0;
}

/* ---- Rings and the device thread ------------------------------------------------------------ */

int sim_sq_write(struct sim_dev *d, const struct fw_desc *desc)
{
	pthread_mutex_lock(&d->mu);
	if (d->lost) {
		pthread_mutex_unlock(&d->mu);
		return -ENODEV;
	}
	if (d->sq_written - d->dropped - d->cq_popped >= d->prof.ring) {
		pthread_mutex_unlock(&d->mu);
		return -EAGAIN;
	}
	d->sq[d->sq_written++ % d->prof.ring] = *desc;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

void sim_doorbell(struct sim_dev *d)
{
	pthread_mutex_lock(&d->mu);
	d->sq_rung = d->sq_written;
	if (d->sleeping)
		pthread_cond_signal(&d->doorbell);
	pthread_mutex_unlock(&d->mu);
}

int sim_cq_pop(struct sim_dev *d, struct fw_completion *out)
{
	int r = 0;
	pthread_mutex_lock(&d->mu);
	if (d->cq_popped < d->cq_posted) {
		*out = d->cq[d->cq_popped++ % d->prof.ring];
		r = 1;
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

static void deadline_in(struct timespec *ts, int64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ns / 1000000000;
	ts->tv_nsec += ns % 1000000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int sim_cq_wait(struct sim_dev *d, int64_t timeout_ns)
{
	struct timespec ts;
	if (timeout_ns > 0)
		deadline_in(&ts, timeout_ns);
	pthread_mutex_lock(&d->mu);
	while (d->cq_popped == d->cq_posted && timeout_ns) {
		if (timeout_ns < 0)
			pthread_cond_wait(&d->posted, &d->mu);
		else if (pthread_cond_timedwait(&d->posted, &d->mu, &ts) == ETIMEDOUT)
			break;
	}
	int r = d->cq_popped < d->cq_posted;
	pthread_mutex_unlock(&d->mu);
	return r;
}

void sim_set_irq(struct sim_dev *d, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&d->mu);
	d->irq = fn;
	d->irq_arg = arg;
	pthread_mutex_unlock(&d->mu);
}

static int held(const struct sim_dev *d)
{
	return __atomic_load_n(&g_hold, __ATOMIC_RELAXED) && !d->stop;
}

/* Take the next rung-in descriptor, run the firmware on it with no lock held, post the
 * completion with its modelled time and raise the interrupt. Called and returns with mu held;
 * 0 when nothing was rung in. */
static int run_one(struct sim_dev *d)
{
	if (d->sq_taken == d->sq_rung || d->hung || d->lost)
		return 0;
	struct fw_desc desc = d->sq[d->sq_taken++ % d->prof.ring];
	int counts = d->fault_op && desc.opcode == d->fault_op;
	d->op_taken += counts;
	if (d->fault != SIM_FAULT_NONE &&
	    (d->fault_op ? counts && d->op_taken > d->fault_at : d->sq_taken > d->fault_at)) {
		/* This command is the one the fault hits: it is taken and never completes. */
		if (d->fault == SIM_FAULT_HANG)
			d->hung = 1;
		else
			__atomic_store_n(&d->lost, 1, __ATOMIC_RELEASE);
		d->fault = SIM_FAULT_NONE;
		return 0;
	}
	d->running++;
	pthread_mutex_unlock(&d->mu);

	struct fw_completion c;
	fw_process(&d->fw, &desc, &c);
	c.device_ns = sim_cmd_ns(&d->prof, desc.opcode, &c);
	add(&d->commands, 1);
	add(&d->errors, c.status != FW_OK);
	add(&d->busy_ns, c.device_ns);

	pthread_mutex_lock(&d->mu);
	d->running--;
	d->cq[d->cq_posted++ % d->prof.ring] = c;
	pthread_cond_broadcast(&d->posted);
	void (*irq)(void *) = d->irq;
	void *irq_arg = d->irq_arg;
	if (irq) {
		pthread_mutex_unlock(&d->mu);
		irq(irq_arg);
		pthread_mutex_lock(&d->mu);
	}
	return 1;
}

/* The device thread: commands as they are rung in; asleep when there are none. Stopping runs
 * what was rung in first. */
static void *device_main(void *arg)
{
	struct sim_dev *d = arg;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		if (held(d)) {
			struct timespec ts;
			deadline_in(&ts, HOLD_POLL_NS);
			pthread_cond_timedwait(&d->doorbell, &d->mu, &ts);
			continue;
		}
		if (run_one(d))
			continue;
		if (d->stop)
			break;
		d->sleeping = 1;
		pthread_cond_wait(&d->doorbell, &d->mu);
		d->sleeping = 0;
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

void sim_doorbell_polled(struct sim_dev *d)
{
	pthread_mutex_lock(&d->mu);
	d->sq_rung = d->sq_written;
	if (held(d)) {
		if (d->sleeping)
			pthread_cond_signal(&d->doorbell);
	} else {
		while (run_one(d))
			;
	}
	pthread_mutex_unlock(&d->mu);
}

void sim_inject(struct sim_dev *d, enum sim_fault f, uint64_t after)
{
	sim_inject_op(d, f, 0, after);
}

void sim_inject_op(struct sim_dev *d, enum sim_fault f, uint32_t opcode, uint64_t after)
{
	pthread_mutex_lock(&d->mu);
	d->fault = f;
	d->fault_op = opcode;
	d->fault_at = (opcode ? d->op_taken : d->sq_taken) + after;
	pthread_mutex_unlock(&d->mu);
}

int sim_reset(struct sim_dev *d)
{
	pthread_mutex_lock(&d->mu);
	/* What the firmware runs now ends first (a reset stops the engines between commands). */
	while (d->running)
		pthread_cond_wait(&d->posted, &d->mu);
	if (d->lost) {
		pthread_mutex_unlock(&d->mu);
		return -ENODEV;
	}
	/* Everything written without a completion: the hung command and what waits behind it. */
	d->dropped += d->sq_written - d->dropped - d->cq_posted;
	d->sq_taken = d->sq_rung = d->sq_written;
	d->hung = 0;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

/* ---- Lifecycle ------------------------------------------------------------------------------ */

static void dev_free(struct sim_dev *d)
{
	if (d->fw.mem)
		munmap(d->fw.mem, d->map_bytes);
	free(d->fw.bufs);
	free(d->ext);
	free(d->gen);
	free(d->free_idx);
	free(d->sq);
	free(d->cq);
	free(d);
}

int sim_open(const struct sim_profile *p, struct sim_dev **out)
{
	*out = NULL;
	if (!p->ring || !p->mem_bytes)
		return -EINVAL;
	struct sim_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->prof = *p;
	d->map_bytes = p->mem_bytes;
	d->fw.bufs = calloc(N_BUFS, sizeof(*d->fw.bufs));
	d->ext = calloc(N_BUFS, sizeof(*d->ext));
	d->gen = calloc(N_BUFS, sizeof(*d->gen));
	d->free_idx = calloc(N_BUFS, sizeof(*d->free_idx));
	d->sq = calloc(p->ring, sizeof(*d->sq));
	d->cq = calloc(p->ring, sizeof(*d->cq));
	/* Address space only: pages become resident as buffers are written. */
	void *m = mmap(NULL, d->map_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	d->fw.mem = m == MAP_FAILED ? NULL : m;
	if (!d->fw.bufs || !d->ext || !d->gen || !d->free_idx || !d->sq || !d->cq || !d->fw.mem) {
		dev_free(d);
		return -ENOMEM;
	}
	d->fw.mem_size = d->map_bytes;
	d->fw.n_bufs = N_BUFS;
	fw_boot(&d->fw);
	/* Lowest indexes first, for readable handles. */
	for (uint32_t i = 0; i < N_BUFS; i++)
		d->free_idx[i] = N_BUFS - 1 - i;
	d->n_free = N_BUFS;
	pthread_mutex_init(&d->mem_mu, NULL);
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->doorbell, &ca);
	pthread_cond_init(&d->posted, &ca);
	pthread_condattr_destroy(&ca);
	d->fault = (enum sim_fault)p->fault;
	d->fault_op = p->fault_opcode;
	d->fault_at = p->fault_after;
	int r = pthread_create(&d->thread, NULL, device_main, d);
	if (r) {
		pthread_cond_destroy(&d->doorbell);
		pthread_cond_destroy(&d->posted);
		pthread_mutex_destroy(&d->mu);
		pthread_mutex_destroy(&d->mem_mu);
		dev_free(d);
		return -r;
	}
	*out = d;
	return 0;
}

void sim_close(struct sim_dev *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = 1;
	pthread_cond_signal(&d->doorbell);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->doorbell);
	pthread_cond_destroy(&d->posted);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->mem_mu);
	/* What ASan was told of the mapping goes with it (only below the high-water mark was
	 * anything poisoned). */
	sim_unpoison(d->fw.mem, d->hiwater);
	dev_free(d);
}

const struct sim_profile *sim_profile(const struct sim_dev *d)
{
	return &d->prof;
}

void sim_stats(struct sim_dev *d, struct sim_stats *out)
{
	out->commands = get(&d->commands);
	out->errors = get(&d->errors);
	out->h2d_bytes = get(&d->h2d_bytes);
	out->d2h_bytes = get(&d->d2h_bytes);
	out->dma_ns = get(&d->dma_ns);
	out->busy_ns = get(&d->busy_ns);
	pthread_mutex_lock(&d->mem_mu);
	out->mem_used = d->mem_used;
	out->mem_peak = d->mem_peak;
	pthread_mutex_unlock(&d->mem_mu);
}
