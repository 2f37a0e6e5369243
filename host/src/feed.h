/* feed.h - a deterministic synthetic NASDAQ TotalView-ITCH 5.0 session over MoldUDP64, for
 * sluice-feed, tests, benchmarks and `make run`. The same seed and message count always give the
 * same bytes. The session opens with system events and the stock directory, then runs realistic
 * order lifecycles (adds with and without MPID, partial and full executions, executions with
 * price, cancels, replaces, deletes), non-cross trades, crosses, an occasional broken trade,
 * and every other ITCH 5.0 message type at low rates, and closes with end-of-messages.
 * feed sits beside the pipeline: it uses itch (encode) and mold (packing) and nothing else.
 */
#ifndef SL_FEED_H
#define SL_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "mold.h"

struct sl_feed_config {
	uint64_t seed;
	uint64_t messages;              /* total ITCH messages in the session (>= 1) */
	uint32_t stocks;                /* symbols in the directory (default 64, 1..65535) */
	char session[SL_MOLD_SESSION_LEN]; /* default "SLUICE0001" */
	uint32_t max_packet;            /* MoldUDP64 packet bytes, header included (1400) */
	uint64_t first_seq;             /* sequence of the first message (1) */
};

/* Defaults as documented above. */
void sl__feed_config_init(struct sl_feed_config *c);

struct sl_feed;

int sl__feed_new(const struct sl_feed_config *c, struct sl_feed **out);
void sl__feed_free(struct sl_feed *f);

/* The next ITCH message into buf (cap >= 64). Returns its length, or 0 when all
 * c->messages have been produced. */
int sl__feed_next_msg(struct sl_feed *f, uint8_t *buf, size_t cap);

/* The next MoldUDP64 packet (as many messages as fit in max_packet) into buf (cap >=
 * max_packet). Returns its length and sets *first_seq and *count; 0 when all messages have been
 * packed. Do not mix with sl__feed_next_msg on the same feed. */
int sl__feed_next_packet(struct sl_feed *f, uint8_t *buf, size_t cap, uint64_t *first_seq,
			 uint16_t *count);

/* Sequence the next message will get. */
uint64_t sl__feed_next_seq(const struct sl_feed *f);

/* The session name (10 bytes, not NUL terminated). */
const char *sl__feed_session(const struct sl_feed *f);

#endif /* SL_FEED_H */
