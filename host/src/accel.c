/* accel.c - picks and opens an accelerator backend by name. The backends themselves live in
 * accel_<name>.c; this file is the only one that knows the list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "sluice.h"

static const struct sl_accel_ops *const backends[] = {
	&sl__accel_cpu_ops,
};

int sl__accel_open(const char *mode, struct sl_accel **out)
{
	const struct sl_accel_ops *ops = NULL;
	if (!mode || !strcmp(mode, "auto")) {
		ops = backends[0];
	} else {
		for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
			if (!strcmp(mode, backends[i]->name))
				ops = backends[i];
		if (!ops)
			return SL_ECONFIG;
	}
	if (ops->version != SL_ACCEL_OPS_VERSION)
		return SL_EVERSION;
	struct sl_accel *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->ops = ops;
	int r = ops->open(&a->dev);
	if (r < 0) {
		free(a);
		return r;
	}
	*out = a;
	return 0;
}

void sl__accel_close(struct sl_accel *a)
{
	if (!a)
		return;
	a->ops->close(a->dev);
	free(a);
}
