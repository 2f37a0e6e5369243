/* keys.h - how the engine's records become table entries: keys whose memcmp order is the
 * numeric order of their fields (a kind byte, then big-endian integers), and fixed,
 * versioned little-endian values. Event keys ('E') sort before orders ('O'), stocks ('S') and
 * trades ('T'), so a table can hold the event stream and the state side by side. keys knows the
 * public record structs (sluice.h) and nothing of tables or files.
 */
#ifndef SL_KEYS_H
#define SL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

enum sl_key_kind {
	SL_KEY_EVENT = 'E',
	SL_KEY_ORDER = 'O',
	SL_KEY_STOCK = 'S',
	SL_KEY_TRADE = 'T',
};

#define SL_KEY_EVENT_LEN 9  /* 'E' seq */
#define SL_KEY_ORDER_LEN 11 /* 'O' locate ref */
#define SL_KEY_STOCK_LEN 3  /* 'S' locate */
#define SL_KEY_TRADE_LEN 9  /* 'T' match */
#define SL_KEY_MAX_LEN 11

#define SL_VAL_VERSION 1
#define SL_VAL_ORDER_LEN 84
#define SL_VAL_TRADE_LEN 64
#define SL_VAL_STOCK_LEN 24
#define SL_VAL_EVENT_HDR 12 /* version, kind, u16 pad, u64 rx_ns; then the payload */

/* Keys: each writes its fixed length into out and returns it. */
size_t sl__key_event(uint8_t *out, uint64_t seq);
size_t sl__key_order(uint8_t *out, uint16_t locate, uint64_t ref);
size_t sl__key_stock(uint8_t *out, uint16_t locate);
size_t sl__key_trade(uint8_t *out, uint64_t match);

/* Parse a key: its kind, or 0 for a key of no known kind or length; fields by pointer (NULL
 * to skip). */
int sl__key_parse(const uint8_t *key, size_t len, uint64_t *a, uint16_t *locate);

/* Values: encode writes the fixed length; decode checks version and length (SL_ECORRUPT
 * otherwise) and fills the public struct (its version field included). */
size_t sl__val_order_encode(uint8_t *out, const struct sl_order *o);
int sl__val_order_decode(const uint8_t *v, size_t len, uint16_t locate, uint64_t ref,
			 struct sl_order *o);
size_t sl__val_trade_encode(uint8_t *out, const struct sl_trade *t);
int sl__val_trade_decode(const uint8_t *v, size_t len, uint64_t match, struct sl_trade *t);
size_t sl__val_stock_encode(uint8_t *out, const struct sl_stock *s);
int sl__val_stock_decode(const uint8_t *v, size_t len, uint16_t locate, struct sl_stock *s);

/* An event value: header then payload (the raw message, or the u64 count of a GAP). kind is
 * the log record type (log.h). Returns the length written (SL_VAL_EVENT_HDR + len). */
size_t sl__val_event_encode(uint8_t *out, uint32_t kind, uint64_t rx_ns, const void *payload,
			    size_t len);
/* 0 and the fields (payload points into v), or SL_ECORRUPT. */
int sl__val_event_decode(const uint8_t *v, size_t len, uint32_t *kind, uint64_t *rx_ns,
			 const uint8_t **payload, size_t *plen);

#endif /* SL_KEYS_H */
