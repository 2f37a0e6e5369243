/* accel.h - the accelerator seam: CRC32C (and, in later releases, bloom build/probe and the
 * fused compaction merge) behind one small versioned vtable. Callers see struct sl_accel and
 * these inline calls only, never a backend. accel is a leaf: it depends on no other module.
 *
 * Every backend must give bit-identical results to the cpu backend (accel_cpu.c, ISA-L).
 */
#ifndef SL_ACCEL_H
#define SL_ACCEL_H

#include <stddef.h>
#include <stdint.h>

#define SL_ACCEL_OPS_VERSION 1

struct sl_accel_buf {
	const void *data;
	size_t len;
};

struct sl_accel_ops {
	int version;           /* SL_ACCEL_OPS_VERSION */
	const char *name;      /* "cpu", ... */
	/* Probe and open the device. 0, -ENODEV when absent, or -errno. */
	int (*open)(void **dev);
	void (*close)(void *dev);
	/* out[i] = CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of bufs[i], for
	 * i < n. Buffers may have any length (0 included) and alignment. Returns 0 or -errno. */
	int (*crc32c_batch)(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out);
};

struct sl_accel {
	const struct sl_accel_ops *ops;
	void *dev;
};

/* The backends compiled in. */
extern const struct sl_accel_ops sl__accel_cpu_ops;

/* Open the backend named by mode: "cpu", or "auto"/NULL (the fastest present; in this release
 * always cpu). SL_ECONFIG for an unknown name, -ENODEV when the named backend is absent. */
int sl__accel_open(const char *mode, struct sl_accel **out);
void sl__accel_close(struct sl_accel *a);

static inline int sl__accel_crc32c_batch(const struct sl_accel *a, const struct sl_accel_buf *bufs,
					 size_t n, uint32_t *out)
{
	return a->ops->crc32c_batch(a->dev, bufs, n, out);
}

/* One buffer: the batch call with n = 1. */
static inline uint32_t sl__accel_crc32c(const struct sl_accel *a, const void *data, size_t len)
{
	struct sl_accel_buf b = { data, len };
	uint32_t crc = 0;
	a->ops->crc32c_batch(a->dev, &b, 1, &crc);
	return crc;
}

#endif /* SL_ACCEL_H */
