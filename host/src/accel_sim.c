/* accel_sim.c - placeholder until the sim backend lands: it reports itself absent. */
#include <errno.h>
#include <stdio.h>

#include "accel.h"

static int stub_open(const struct sl_accel_config *cfg, void **dev, char *why, size_t why_cap)
{
	(void)cfg;
	*dev = NULL;
	if (why && why_cap)
		snprintf(why, why_cap, "the sim backend is not built in this release");
	return -ENODEV;
}

const struct sl_accel_ops sl__accel_sim_ops = {
	.version = SL_ACCEL_OPS_VERSION,
	.name = "sim",
	.open = stub_open,
};
