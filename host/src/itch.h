/* itch.h - NASDAQ TotalView-ITCH 5.0: decode every message type into a fixed-size normalized
 * struct (host byte order) and encode it back, byte for byte. itch knows nothing of MoldUDP64,
 * the log or the store: it turns bytes into fields and fields into bytes.
 */
#ifndef SL_ITCH_H
#define SL_ITCH_H

#include <stddef.h>
#include <stdint.h>

/* Message type letters (ITCH 5.0 section 1). */
enum sl_itch_type {
	SL_ITCH_SYSTEM_EVENT = 'S',
	SL_ITCH_STOCK_DIRECTORY = 'R',
	SL_ITCH_TRADING_ACTION = 'H',
	SL_ITCH_REG_SHO = 'Y',
	SL_ITCH_MP_POSITION = 'L',
	SL_ITCH_MWCB_DECLINE = 'V',
	SL_ITCH_MWCB_STATUS = 'W',
	SL_ITCH_IPO_QUOTING = 'K',
	SL_ITCH_LULD_COLLAR = 'J',
	SL_ITCH_OPERATIONAL_HALT = 'h',
	SL_ITCH_ADD_ORDER = 'A',
	SL_ITCH_ADD_ORDER_MPID = 'F',
	SL_ITCH_ORDER_EXECUTED = 'E',
	SL_ITCH_ORDER_EXECUTED_PRICE = 'C',
	SL_ITCH_ORDER_CANCEL = 'X',
	SL_ITCH_ORDER_DELETE = 'D',
	SL_ITCH_ORDER_REPLACE = 'U',
	SL_ITCH_TRADE = 'P',
	SL_ITCH_CROSS_TRADE = 'Q',
	SL_ITCH_BROKEN_TRADE = 'B',
	SL_ITCH_NOII = 'I',
	SL_ITCH_RPII = 'N',
	SL_ITCH_DLCR = 'O',
};

/* Longest ITCH 5.0 message (NOII). */
#define SL_ITCH_MAX_LEN 50

/* Exact wire length of a message of this type (type byte included), or 0 if the type is not an
 * ITCH 5.0 message. */
size_t sl__itch_msg_len(uint8_t type);

/* Symbols and MPIDs keep their wire form (space padded, not NUL terminated). Prices keep the
 * ITCH integer: Price(4) has 4 implied decimals, Price(8) (MWCB levels) has 8. Timestamps are
 * nanoseconds since midnight (6 bytes on the wire). */
struct sl_itch_msg {
	uint8_t type;           /* enum sl_itch_type */
	uint16_t locate;
	uint16_t tracking;
	uint64_t timestamp;
	union {
		struct { char event_code; } system_event;
		struct {
			char stock[8];
			char market_category, financial_status;
			uint32_t round_lot_size;
			char round_lots_only, issue_classification;
			char issue_subtype[2];
			char authenticity, short_sale_threshold, ipo_flag, luld_ref_price_tier,
				etp_flag;
			uint32_t etp_leverage_factor;
			char inverse_indicator;
		} stock_directory;
		struct {
			char stock[8];
			char trading_state, reserved;
			char reason[4];
		} trading_action;
		struct { char stock[8]; char action; } reg_sho;
		struct {
			char mpid[4];
			char stock[8];
			char primary_mm, mm_mode, participant_state;
		} mp_position;
		struct { uint64_t level1, level2, level3; } mwcb_decline;
		struct { char breached_level; } mwcb_status;
		struct {
			char stock[8];
			uint32_t release_time;
			char release_qualifier;
			uint32_t ipo_price;
		} ipo_quoting;
		struct {
			char stock[8];
			uint32_t ref_price, upper_price, lower_price, extension;
		} luld_collar;
		struct { char stock[8]; char market_code, action; } operational_halt;
		struct {
			uint64_t ref;
			char side;
			uint32_t shares;
			char stock[8];
			uint32_t price;
			char mpid[4];   /* F only */
		} add_order;        /* A and F */
		struct {
			uint64_t ref;
			uint32_t shares;
			uint64_t match;
			char printable;  /* C only */
			uint32_t price;  /* C only */
		} executed;         /* E and C */
		struct { uint64_t ref; uint32_t shares; } cancel;
		struct { uint64_t ref; } del;
		struct { uint64_t orig_ref, new_ref; uint32_t shares, price; } replace;
		struct {
			uint64_t ref;
			char side;
			uint32_t shares;
			char stock[8];
			uint32_t price;
			uint64_t match;
		} trade;
		struct {
			uint64_t shares;
			char stock[8];
			uint32_t price;
			uint64_t match;
			char cross_type;
		} cross_trade;
		struct { uint64_t match; } broken_trade;
		struct {
			uint64_t paired_shares, imbalance_shares;
			char imbalance_direction;
			char stock[8];
			uint32_t far_price, near_price, ref_price;
			char cross_type, price_variation;
		} noii;
		struct { char stock[8]; char interest_flag; } rpii;
		struct {
			char stock[8];
			char open_eligibility;
			uint32_t min_price, max_price, near_price;
			uint64_t near_time;
			uint32_t lower_collar, upper_collar;
		} dlcr;
	} u;
};

/* Decode one message of exactly len bytes. Returns 0, SL_EUNKNOWN (type not in ITCH 5.0) or
 * SL_EBADMSG (len differs from the type's length). Never reads past p + len. */
int sl__itch_decode(const uint8_t *p, size_t len, struct sl_itch_msg *out);

/* Encode m into out (cap bytes). Returns the length written, SL_EUNKNOWN, or -ENOSPC when cap is
 * smaller than the message. decode(encode(m)) == m for every field the wire carries. */
int sl__itch_encode(const struct sl_itch_msg *m, uint8_t *out, size_t cap);

/* A short name of the type ("add_order", "order_executed", ...) or NULL for an unknown type. */
const char *sl__itch_type_name(uint8_t type);

/* Render a decoded message: "A add_order locate=13 ts=34200.000001234 ref=... side=B ..." or
 * {"type":"A","name":"add_order","locate":13,...}; with flags & SL_FORMAT_JSON. snprintf-like
 * return. Symbols are printed with trailing spaces removed. */
int sl__itch_format(const struct sl_itch_msg *m, int flags, char *buf, size_t cap);

/* Big-endian helpers shared by the wire modules (mold, itch, pcap). */
static inline uint16_t sl__be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t sl__be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t sl__be48(const uint8_t *p)
{
	return (uint64_t)sl__be16(p) << 32 | sl__be32(p + 2);
}

static inline uint64_t sl__be64(const uint8_t *p)
{
	return (uint64_t)sl__be32(p) << 32 | sl__be32(p + 4);
}

static inline void sl__put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void sl__put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void sl__put_be48(uint8_t *p, uint64_t v)
{
	sl__put_be16(p, (uint16_t)(v >> 32));
	sl__put_be32(p + 2, (uint32_t)v);
}

static inline void sl__put_be64(uint8_t *p, uint64_t v)
{
	sl__put_be32(p, (uint32_t)(v >> 32));
	sl__put_be32(p + 4, (uint32_t)v);
}

#endif /* SL_ITCH_H */
