/* accel_cpu.c - the reference backend: CRC32C by ISA-L (which picks the fastest kernel for the
 * CPU it runs on at load time). Stateless, so every call is thread-safe.
 */
#include <isa-l/crc.h>
#include <limits.h>

#include "accel.h"

static int cpu_open(void **dev)
{
	*dev = NULL;
	return 0;
}

static void cpu_close(void *dev)
{
	(void)dev;
}

static int cpu_crc32c_batch(void *dev, const struct sl_accel_buf *bufs, size_t n, uint32_t *out)
{
	(void)dev;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = bufs[i].data;
		size_t len = bufs[i].len;
		/* ISA-L takes an int length and no final inversion: chain large buffers. */
		unsigned int crc = 0xFFFFFFFFu;
		while (len > (size_t)INT_MAX) {
			crc = crc32_iscsi((unsigned char *)p, INT_MAX, crc);
			p += INT_MAX;
			len -= INT_MAX;
		}
		crc = crc32_iscsi((unsigned char *)p, (int)len, crc);
		out[i] = crc ^ 0xFFFFFFFFu;
	}
	return 0;
}

const struct sl_accel_ops sl__accel_cpu_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "cpu",
	.open = cpu_open,
	.close = cpu_close,
	.crc32c_batch = cpu_crc32c_batch,
};
