/* accel_opencl.c - placeholder until the opencl backend lands: it reports itself absent. */
#include <errno.h>
#include <stdio.h>

#include "accel.h"

static int stub_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	(void)cfg;
	*dev = NULL;
	if (why && why_cap)
		snprintf(why, why_cap, "the opencl backend is not built in this release");
	return -ENODEV;
}

const struct sl_accel_ops sl__accel_opencl_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "opencl",
	.open = stub_open,
};
