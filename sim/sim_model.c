/* sim_model.c - the cost model: the two device profiles (a PCIe Gen3 FPGA card and a PCIe Gen4
 * GPU), parsing a profile spec, and the modelled time of a DMA transfer and of a command.
 * Times are integer nanoseconds, rounded up, so tests can state them exactly. The figures are
 * assumptions written down from public specifications and typical measurements (sim/README.md
 * gives the reasoning); no card has been measured for them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define DEFAULT_RING   64
#define MAX_RING       4096
#define DEFAULT_TIMEOUT_MS 30000u
#define MAX_TIMEOUT_MS     3600000u
#define DEFAULT_MEM_MB 1024
#define MAX_MEM_MB     (1u << 20)

static const struct sim_profile profiles[] = {
	{
		.name = "fpga",
		.card = "PCIe Gen3 x16 FPGA card (Alveo U250-class, DDR4, kernels at 300 MHz)",
		.h2d_mbps = 12000,
		.d2h_mbps = 12000,
		.dma_latency_ns = 2000,
		.launch_ns = 20000,
		.crc_mbps = 15000,
		.crc_seg_ps = 20000,
		.build_mps = 400,
		.probe_mps = 600,
		.merge_mbps = 1000,
		.card_mem_mb = 65536,
	},
	{
		.name = "gpu",
		.card = "PCIe Gen4 x16 GPU (A100-class, HBM2e)",
		.h2d_mbps = 24000,
		.d2h_mbps = 24000,
		.dma_latency_ns = 2000,
		.launch_ns = 8000,
		.crc_mbps = 100000,
		.crc_seg_ps = 500,
		.build_mps = 4000,
		.probe_mps = 8000,
		.merge_mbps = 8000,
		.card_mem_mb = 40960,
	},
};

/* A decimal number in [lo, hi] taking all of s[0, n). */
static int number(const char *s, size_t n, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 9)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int sim_profile_parse(const char *spec, struct sim_profile *out, char *why, size_t why_cap)
{
	if (!spec || !spec[0])
		spec = "fpga";
	size_t name_len = strcspn(spec, ",");
	const struct sim_profile *p = NULL;
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if (strlen(profiles[i].name) == name_len &&
		    !strncmp(spec, profiles[i].name, name_len))
			p = &profiles[i];
	if (!p) {
		if (why && why_cap)
			snprintf(why, why_cap, "unknown sim profile \"%s\" (fpga, gpu)", spec);
		return -EINVAL;
	}
	*out = *p;
	out->ring = DEFAULT_RING;
	out->mem_bytes = (uint64_t)DEFAULT_MEM_MB << 20;
	out->timeout_ns = (uint64_t)DEFAULT_TIMEOUT_MS * 1000000u;
	out->fault = SIM_FAULT_NONE;
	out->fault_after = 0;
	out->fault_opcode = 0;
	/* Options: ",key=value" after the name. */
	for (const char *s = spec + name_len; *s;) {
		s++; /* the comma */
		size_t n = strcspn(s, ",");
		const char *eq = memchr(s, '=', n);
		uint64_t v = 0;
		if (eq && (size_t)(eq - s) == 4 && !strncmp(s, "ring", 4) &&
		    !number(eq + 1, n - 5, 1, MAX_RING, &v)) {
			out->ring = (uint32_t)v;
		} else if (eq && (size_t)(eq - s) == 6 && !strncmp(s, "mem_mb", 6) &&
			   !number(eq + 1, n - 7, 1, MAX_MEM_MB, &v)) {
			out->mem_bytes = v << 20;
		} else if (eq && (size_t)(eq - s) == 10 && !strncmp(s, "timeout_ms", 10) &&
			   !number(eq + 1, n - 11, 1, MAX_TIMEOUT_MS, &v)) {
			out->timeout_ns = v * 1000000u;
		} else if (eq && (size_t)(eq - s) == 5 && !strncmp(s, "fault", 5) && n > 11 &&
			   (!strncmp(eq + 1, "hang@", 5) || !strncmp(eq + 1, "lost@", 5)) &&
			   ((n == 16 && !strncmp(eq + 6, "merge", 5)) ||
			    !number(eq + 6, n - 11, 0, UINT32_MAX, &v))) {
			out->fault = eq[1] == 'h' ? SIM_FAULT_HANG : SIM_FAULT_LOST;
			out->fault_opcode = n == 16 && !strncmp(eq + 6, "merge", 5) ? FW_OP_MERGE : 0;
			out->fault_after = out->fault_opcode ? 0 : v;
		} else {
			if (why && why_cap)
				snprintf(why, why_cap,
					 "bad sim profile option in \"%s\" "
					 "(ring=1..4096, mem_mb=1..1048576, timeout_ms=1..3600000, "
					 "fault=hang@N|lost@N|hang@merge|lost@merge)",
					 spec);
			return -EINVAL;
		}
		s += n;
	}
	return 0;
}

void sim_profile_describe(const struct sim_profile *p, char *buf, size_t cap)
{
	snprintf(
		buf, cap,
		"modelled %s: PCIe %llu/%llu MB/s h2d/d2h, %llu ns per DMA, %llu ns launch; "
		"kernels: CRC32C %llu MB/s + %llu ps/buffer, bloom build %llu M/s, probe %llu M/s, "
		"merge %llu MB/s; ring %u, %llu MiB device memory",
		p->name, (unsigned long long)p->h2d_mbps, (unsigned long long)p->d2h_mbps,
		(unsigned long long)p->dma_latency_ns, (unsigned long long)p->launch_ns,
		(unsigned long long)p->crc_mbps, (unsigned long long)p->crc_seg_ps,
		(unsigned long long)p->build_mps, (unsigned long long)p->probe_mps,
		(unsigned long long)p->merge_mbps, p->ring,
		(unsigned long long)(p->mem_bytes >> 20));
}

/* ceil(a * 1000 / b): time in ns of a units at b million units per second, or ps -> ns. */
static uint64_t per_rate(uint64_t a, uint64_t b)
{
	return (a * 1000 + b - 1) / b;
}

uint64_t sim_dma_ns(const struct sim_profile *p, enum sim_dir dir, uint64_t bytes)
{
	if (!bytes)
		return 0;
	return p->dma_latency_ns + per_rate(bytes, dir == SIM_H2D ? p->h2d_mbps : p->d2h_mbps);
}

uint64_t sim_cmd_ns(const struct sim_profile *p, uint32_t opcode, const struct fw_completion *c)
{
	uint64_t k = 0;
	switch (opcode) {
	case FW_OP_CRC32C:
		k = per_rate(c->work_bytes, p->crc_mbps) +
		    (c->work_items * p->crc_seg_ps + 999) / 1000;
		break;
	case FW_OP_BLOOM_BUILD:
		k = per_rate(c->work_items, p->build_mps);
		break;
	case FW_OP_BLOOM_PROBE:
		k = per_rate(c->work_items, p->probe_mps);
		break;
	case FW_OP_MERGE:
		k = per_rate(c->work_bytes, p->merge_mbps);
		break;
	}
	return p->launch_ns + k;
}
