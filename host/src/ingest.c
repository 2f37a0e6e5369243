/* ingest.c - capture replay: a pcap of MoldUDP64 datagrams or a NASDAQ raw ITCH file read in
 * batches and appended through the public API, with progress reports. A front end like udp.c:
 * it feeds db and knows nothing of the log or the state.
 */
#include <stdio.h>

#include "pcap.h"
#include "sluice.h"

#define INGEST_BATCH 256

SL_API int sl_db_ingest_file(struct sl_db *db, const char *path, uint16_t dst_port,
			     void (*progress)(void *arg, const struct sl_ingest_progress *p),
			     void *arg)
{
	struct sl_capture *c;
	int r = sl__capture_open(path, dst_port, &c);
	if (r < 0)
		return r;
	int kind = sl__capture_kind(c);
	/* The reader's record buffer is reused per record, so a batch keeps its own copies. */
	static _Thread_local uint8_t store[INGEST_BATCH][2048];
	struct sl_packet pk[INGEST_BATCH];
	struct sl_msg mg[INGEST_BATCH];
	size_t n = 0;
	uint64_t records = 0;
	struct sl_capture_stats cs;
	for (;;) {
		struct sl_capture_rec rec;
		int rr = sl__capture_next(c, &rec);
		if (rr == 0 && rec.len > sizeof(store[0])) {
			fprintf(stderr, "sluice: ingest: %s: record %llu of %u bytes skipped\n", path,
				(unsigned long long)records, rec.len);
			continue;
		}
		if (rr == 0) {
			__builtin_memcpy(store[n], rec.data, rec.len);
			if (kind == SL_CAPTURE_PCAP)
				pk[n] = (struct sl_packet){ store[n], rec.len, rec.ts_ns };
			else
				mg[n] = (struct sl_msg){ store[n], (uint16_t)rec.len, 0 };
			n++;
			records++;
		}
		if (n == INGEST_BATCH || (rr != 0 && n)) {
			r = kind == SL_CAPTURE_PCAP ? sl_db_append_packets(db, pk, n)
						    : sl_db_append_messages(db, mg, n, NULL);
			n = 0;
			if (r < 0)
				break;
		}
		if (progress && (rr != 0 || records % 65536 == 0)) {
			sl__capture_get_stats(c, &cs);
			struct sl_ingest_progress p = { cs.bytes_read, cs.file_bytes, records,
							rr != 0 };
			if (rr == 0 || rr == SL_EEND)
				progress(arg, &p);
		}
		if (rr == SL_EEND)
			break;
		if (rr < 0) {
			r = rr;
			break;
		}
	}
	if (r == 0 && kind == SL_CAPTURE_PCAP)
		r = sl_db_close_gaps(db);
	sl__capture_close(c);
	return r;
}
