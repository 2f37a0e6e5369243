/* xsk.h - internals of the AF_XDP front end (xsk.c) that its tests reach: the feed line syntax
 * and the UMEM frame size rule. The public API is in sluice.h (sl_xsk_*).
 */
#ifndef SL_XSK_H
#define SL_XSK_H

#include <stddef.h>
#include <stdint.h>

#include "sluice_xdp.h"

/* Parse "ADDR:PORT[,ADDR:PORT...]" (IPv4, [IPv6], "*" or "" for any address) into feed map keys
 * (sluice_xdp.h). Returns the number of lines (1..max), or SL_ECONFIG with the offending line
 * copied into bad (cap bytes) when not NULL. */
int sl__xsk_parse_feed(const char *spec, struct sl_xdp_feed_key *keys, int max, char *bad,
		       size_t cap);

/* The UMEM frame size for an interface MTU: 2048 or 4096, whichever holds the kernel's XDP
 * headroom, two VLAN tags and the largest frame; 0 when even 4096 cannot (the program is not
 * built for multi-buffer frames). */
uint32_t sl__xsk_frame_size(uint32_t mtu);

#endif /* SL_XSK_H */
