/* gateway.c - what a trading gateway's use of libsluice looks like: it includes sluice.h and
 * nothing else of Sluice, appends raw ITCH messages it received, waits for durability, looks an
 * order up and replays. Built and run by tests/integration/test_gateway_link.sh against both
 * libsluice.a and libsluice.so.
 */
#include <stdio.h>
#include <string.h>

#include "sluice.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gateway DIR\n");
		return 2;
	}
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = argv[1];
	o.flags = SL_OPEN_CREATE;
	struct sl_db *db;
	int r = sl_db_open(&o, &db);
	if (r) {
		fprintf(stderr, "open: %s\n", sl_strerror(r));
		return 1;
	}
	/* An ITCH 5.0 Add Order (36 bytes): locate 7, ref 42, buy 300 AAPL at 123.4500. */
	unsigned char add[36] = { 'A', 0, 7, 0, 0, 0, 0, 0, 0, 0, 1 };
	add[18] = 42;
	add[19] = 'B';
	add[23] = 0x2c; add[22] = 0x01;      /* shares = 300 */
	memcpy(add + 24, "AAPL    ", 8);
	add[32] = 0x00; add[33] = 0x12; add[34] = 0xd6; add[35] = 0x44; /* 1234500 */
	struct sl_msg m = { add, sizeof(add), 0 };
	uint64_t seq;
	if ((r = sl_db_append_messages(db, &m, 1, &seq)) || (r = sl_db_wait_durable(db, seq, -1))) {
		fprintf(stderr, "append: %s\n", sl_strerror(r));
		return 1;
	}
	struct sl_order ord;
	if ((r = sl_db_get_order(db, 7, 42, &ord))) {
		fprintf(stderr, "get: %s\n", sl_strerror(r));
		return 1;
	}
	char line[512];
	sl_order_format(&ord, SL_FORMAT_JSON, line, sizeof(line));
	printf("%s\n", line);
	sl_db_close(db);
	return 0;
}
