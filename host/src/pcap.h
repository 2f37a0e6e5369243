/* pcap.h - capture files: write and read classic pcap (Ethernet/IPv4/UDP, micro- or nanosecond
 * timestamps, either byte order, optional 802.1Q tags on read) and NASDAQ's raw binary format
 * (each ITCH message preceded by its u16 big-endian length, as NASDAQ publishes its historical
 * TotalView-ITCH 5.0 files). Capture files are tooling, not durable state: plain stdio is used.
 */
#ifndef SL_PCAP_H
#define SL_PCAP_H

#include <stddef.h>
#include <stdint.h>

enum sl_capture_kind {
	SL_CAPTURE_PCAP = 1,    /* records are UDP payloads: MoldUDP64 packets */
	SL_CAPTURE_RAW = 2,     /* records are ITCH messages */
};

struct sl_capture_rec {
	const uint8_t *data;    /* valid until the next call on the reader */
	uint32_t len;
	uint64_t ts_ns;         /* pcap: capture time; raw: 0 */
	uint32_t src_ip, dst_ip;        /* host order; pcap only */
	uint16_t src_port, dst_port;
};

struct sl_capture_stats {
	uint64_t records, skipped_non_udp, skipped_port, truncated, bad;
	uint64_t bytes_read, file_bytes;
};

struct sl_capture;

/* Open a capture, detecting its kind from the first bytes (a pcap magic, else raw).
 * dst_port != 0 keeps only UDP datagrams to that port (pcap). 0, -errno, SL_EBADMSG. */
int sl__capture_open(const char *path, uint16_t dst_port, struct sl_capture **out);
int sl__capture_kind(const struct sl_capture *c);
/* 0 and *rec filled; SL_EEND at the end; SL_EBADMSG for a truncated or impossible record
 * (counted; the file position names it in the message on stderr). */
int sl__capture_next(struct sl_capture *c, struct sl_capture_rec *rec);
void sl__capture_get_stats(const struct sl_capture *c, struct sl_capture_stats *out);
void sl__capture_close(struct sl_capture *c);

struct sl_capture_writer;

/* kind SL_CAPTURE_PCAP writes a nanosecond pcap (LINKTYPE_ETHERNET) whose frames carry valid
 * IPv4 header checksums; SL_CAPTURE_RAW writes length-prefixed messages. */
int sl__capture_writer_open(const char *path, int kind, struct sl_capture_writer **out);
/* pcap: one Ethernet/IPv4/UDP frame from src to dst (host-order addresses) at ts_ns.
 * raw: the record's bytes with a u16 length prefix (addresses ignored). 0 or -errno. */
int sl__capture_write(struct sl_capture_writer *w, const void *data, uint32_t len, uint64_t ts_ns,
		      uint32_t src_ip, uint16_t src_port, uint32_t dst_ip, uint16_t dst_port);
/* Flush and close; returns the first write error. Accepts NULL. */
int sl__capture_writer_close(struct sl_capture_writer *w);

#endif /* SL_PCAP_H */
