/* sim.h - the accelerator as a driver sees it, modelled on the host: device memory (one host
 * mapping standing for the card's DDR or HBM, carved into buffers named by handles), DMA copies
 * between host and device memory, a submission ring of struct fw_desc with a doorbell, a
 * completion ring of struct fw_completion with an interrupt callback, and a device thread that
 * runs the firmware's command processor (firmware/fw.h) on each descriptor. The work is done
 * for real; only time is modelled: every DMA copy returns its modelled transfer time and every
 * completion carries its modelled launch + kernel time, from a profile of a PCIe FPGA card or a
 * GPU (sim_model.c). sim knows the firmware's formats and nothing of the accel seam above it.
 *
 * Threads: every call here is thread-safe. The interrupt callback runs on the device thread,
 * with no sim lock held; it may call sim_cq_pop, the memory and DMA calls, and sim_sq_write /
 * sim_doorbell, but not sim_close.
 */
#ifndef SL_SIM_H
#define SL_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "fw_abi.h"

/* ---- The cost model (sim_model.c) ----------------------------------------------------------- */

/* A device's parameters. Rates are decimal: MB/s is 10^6 bytes per second, M/s 10^6 items per
 * second. sim/README.md says where each default comes from. */
struct sim_profile {
	char name[16];		 /* "fpga", "gpu" */
	const char *card;	 /* what the profile stands for, in words */
	uint64_t h2d_mbps;	 /* host -> device DMA bandwidth */
	uint64_t d2h_mbps;	 /* device -> host */
	uint64_t dma_latency_ns; /* per DMA transfer: descriptor fetch to completion */
	uint64_t launch_ns;	 /* per command: doorbell to kernel start, plus completion */
	uint64_t crc_mbps;	 /* CRC32C kernel throughput */
	uint64_t crc_seg_ps;	 /* per CRC segment (buffer) overhead, picoseconds */
	uint64_t build_mps;	 /* bloom build: hashes per second, millions */
	uint64_t probe_mps;	 /* bloom probe */
	uint64_t merge_mbps;	 /* merge: input block bytes per second */
	uint64_t card_mem_mb;	 /* the real card's memory (informational) */
	uint64_t mem_bytes;	 /* device memory the model backs (host address space) */
	uint32_t ring;		 /* entries per ring, submission and completion */
	uint64_t timeout_ns;	 /* the driver's watchdog: a command not complete by then is
				    presumed hung and the device reset */
	uint32_t fault;		 /* enum sim_fault injected at open (tests, demos) */
	uint64_t fault_after;	 /* ... at this command */
	uint32_t fault_opcode;	 /* 0: any command counts; else only this FW_OP_ */
};

/* Fill *out from a spec: "fpga" (the default, also for NULL or ""), "gpu", optionally followed
 * by ",ring=N" (1..4096, default 64), ",mem_mb=N" (1..1048576, default 1024), ",timeout_ms=N"
 * (1..3600000, default 30000) and ",fault=hang@N" or ",fault=lost@N" (the N-th command from
 * open, counting from 0, hangs or loses the device: sim_inject), or ",fault=hang@merge" /
 * ",fault=lost@merge" (the first merge command does). 0, or -EINVAL with a one-line reason in
 * why (may be NULL). */
int sim_profile_parse(const char *spec, struct sim_profile *out, char *why, size_t why_cap);

/* One line of the parameters, for sl_accel_info.detail. */
void sim_profile_describe(const struct sim_profile *p, char *buf, size_t cap);

enum sim_dir {
	SIM_H2D,
	SIM_D2H,
};

/* Modelled time of one DMA transfer of bytes (0 bytes: 0 ns). */
uint64_t sim_dma_ns(const struct sim_profile *p, enum sim_dir dir, uint64_t bytes);

/* Modelled device time of one command: launch, plus the kernel's time for the work the
 * completion reports (an error completion before any work: launch only). */
uint64_t sim_cmd_ns(const struct sim_profile *p, uint32_t opcode, const struct fw_completion *c);

/* ---- The device (sim_dev.c) ----------------------------------------------------------------- */

struct sim_dev;

/* Map device memory, boot the firmware, start the device thread. 0, -ENOMEM, or -errno from
 * the thread's creation. */
int sim_open(const struct sim_profile *p, struct sim_dev **out);

/* Stop the device: commands rung in before this run first (their completions are posted and
 * the interrupt callback runs for them); then the thread ends and device memory is unmapped.
 * Accepts NULL. */
void sim_close(struct sim_dev *d);

const struct sim_profile *sim_profile(const struct sim_dev *d);

/* Device memory. A buffer is 64-byte aligned; its contents are undefined until written. 0 and
 * *handle; -EINVAL for size 0; -ENOMEM when no free range or no free handle is left. */
int sim_mem_alloc(struct sim_dev *d, uint64_t size, uint32_t *handle);
/* 0, or -EINVAL for a handle that names no live buffer. The caller must not free a buffer a
 * queued command names. */
int sim_mem_free(struct sim_dev *d, uint32_t handle);

/* Copies between host memory and a buffer: 0 and *ns (modelled time, may be NULL), -EINVAL
 * for a dead handle or a range [off, off + len) outside the buffer (nothing copied), or
 * -ENODEV once the device is lost. */
int sim_dma_to_dev(struct sim_dev *d, uint32_t handle, uint64_t off, const void *src, uint64_t len,
		   uint64_t *ns);
int sim_dma_from_dev(struct sim_dev *d, uint32_t handle, uint64_t off, void *dst, uint64_t len,
		     uint64_t *ns);

/* A gather list: pieces copied back to back from off, as one transfer (one latency). */
struct sim_sg {
	const void *p;
	uint64_t len;
};
int sim_dma_to_dev_sg(struct sim_dev *d, uint32_t handle, uint64_t off, const struct sim_sg *sg,
		      size_t n, uint64_t *ns);

/* The submission ring: write a descriptor into the next free entry (0, -EAGAIN when the ring
 * holds ring commands not yet taken off the completion ring, -ENODEV once the device is
 * lost), then ring the doorbell to
 * hand every written entry to the device. */
int sim_sq_write(struct sim_dev *d, const struct fw_desc *desc);
void sim_doorbell(struct sim_dev *d);
/* Ring the doorbell in polled mode: the calling thread lends itself to the device and runs
 * the command processor on what is rung in until the submission ring is empty (the device
 * thread may take some meanwhile); completions and interrupts are posted as ever, the
 * interrupt callback on this thread. A device is hardware beside the host; here it is a
 * thread on the host's cores, and handing a small command to it costs a sleep and a wake-up
 * (microseconds, tens of them on a loaded host) that no real device has. Polled mode takes
 * that artefact out for a caller that would only wait. Modelled times are the same. While the
 * test hold is on it only rings. Must not be called with a lock the interrupt callback takes. */
void sim_doorbell_polled(struct sim_dev *d);

/* The completion ring: take the oldest completion (1) or find none (0). */
int sim_cq_pop(struct sim_dev *d, struct fw_completion *out);
/* Wait until a completion is on the ring: 1, or 0 after timeout_ns (< 0: no limit). */
int sim_cq_wait(struct sim_dev *d, int64_t timeout_ns);

/* The interrupt: fn(arg) on the device thread after each completion is posted (NULL: none). */
void sim_set_irq(struct sim_dev *d, void (*fn)(void *arg), void *arg);

struct sim_stats {
	uint64_t commands, errors;     /* completions posted; those with a nonzero status */
	uint64_t h2d_bytes, d2h_bytes; /* DMA traffic */
	uint64_t dma_ns;	       /* modelled DMA time, both ways */
	uint64_t busy_ns;	       /* modelled launch + kernel time of every command */
	uint64_t mem_used, mem_peak;   /* device memory held by buffers, guards included */
};
void sim_stats(struct sim_dev *d, struct sim_stats *out);

/* Faults, as a card shows them. SIM_FAULT_HANG: the after-th command taken from now (0: the
 * next) never completes and the device takes nothing more until sim_reset (a hung kernel).
 * SIM_FAULT_LOST: at that command the device falls off the bus: no completion for it or any
 * later one, and copies, ring writes and resets fail with -ENODEV from then on. */
enum sim_fault { SIM_FAULT_NONE, SIM_FAULT_HANG, SIM_FAULT_LOST };
void sim_inject(struct sim_dev *d, enum sim_fault f, uint64_t after);
/* The same, counting only commands with this opcode (FW_OP_*). */
void sim_inject_op(struct sim_dev *d, enum sim_fault f, uint32_t opcode, uint64_t after);
/* Reset the device (what a driver's watchdog does): commands the firmware is running finish
 * and post first; then every command on the rings without a completion is dropped (none will
 * come; its ring entry is free again) and a hang is cleared; buffers and completions already
 * posted stay. 0, or -ENODEV for a lost device. */
int sim_reset(struct sim_dev *d);
/* 1 once the device is lost. */
int sim_lost(const struct sim_dev *d);

/* For tests: while held (nonzero), every device thread in the process stops taking commands
 * off its submission ring, so a test can fill a ring deterministically. */
void sim_test_hold(int hold);

#endif /* SL_SIM_H */
