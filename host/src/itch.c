/* itch.c - the ITCH 5.0 codec: one packed struct per message type pins the wire layout to the
 * spec, decode and encode are a switch over those structs, and format renders decoded fields as
 * text or JSON. Like itch.h it knows nothing of MoldUDP64, the log or the store.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "itch.h"
#include "sluice.h"

/* ---- Wire layouts --------------------------------------------------------------------------- */

/* Every multi-byte field is a byte array read and written with the sl__be* helpers, so these
 * structs have alignment 1, no padding and no dependence on host byte order. A pointer to one is
 * laid over a message only after its length has been checked, and every access through it is a
 * character-type access (which may alias anything). The offsets asserted after each struct are
 * the Offset column of the spec's tables.
 */
#define WIRE_AT(s, f, off)                                                                         \
	_Static_assert(offsetof(struct wire_##s, f) == (off), "ITCH 5.0 offset of " #s "." #f)

struct wire_hdr {
	uint8_t type;
	uint8_t locate[2];
	uint8_t tracking[2];
	uint8_t timestamp[6]; /* nanoseconds since midnight */
} __attribute__((packed));
_Static_assert(offsetof(struct wire_hdr, locate) == 1, "ITCH 5.0 header");
_Static_assert(offsetof(struct wire_hdr, tracking) == 3, "ITCH 5.0 header");
_Static_assert(offsetof(struct wire_hdr, timestamp) == 5, "ITCH 5.0 header");
_Static_assert(sizeof(struct wire_hdr) == 11, "ITCH 5.0 header");

struct wire_system_event {
	struct wire_hdr h;
	uint8_t event_code;
} __attribute__((packed));
WIRE_AT(system_event, event_code, 11);

struct wire_stock_directory {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t market_category;
	uint8_t financial_status;
	uint8_t round_lot_size[4];
	uint8_t round_lots_only;
	uint8_t issue_classification;
	uint8_t issue_subtype[2];
	uint8_t authenticity;
	uint8_t short_sale_threshold;
	uint8_t ipo_flag;
	uint8_t luld_ref_price_tier;
	uint8_t etp_flag;
	uint8_t etp_leverage_factor[4];
	uint8_t inverse_indicator;
} __attribute__((packed));
WIRE_AT(stock_directory, stock, 11);
WIRE_AT(stock_directory, market_category, 19);
WIRE_AT(stock_directory, financial_status, 20);
WIRE_AT(stock_directory, round_lot_size, 21);
WIRE_AT(stock_directory, round_lots_only, 25);
WIRE_AT(stock_directory, issue_classification, 26);
WIRE_AT(stock_directory, issue_subtype, 27);
WIRE_AT(stock_directory, authenticity, 29);
WIRE_AT(stock_directory, short_sale_threshold, 30);
WIRE_AT(stock_directory, ipo_flag, 31);
WIRE_AT(stock_directory, luld_ref_price_tier, 32);
WIRE_AT(stock_directory, etp_flag, 33);
WIRE_AT(stock_directory, etp_leverage_factor, 34);
WIRE_AT(stock_directory, inverse_indicator, 38);

struct wire_trading_action {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t trading_state;
	uint8_t reserved;
	uint8_t reason[4];
} __attribute__((packed));
WIRE_AT(trading_action, stock, 11);
WIRE_AT(trading_action, trading_state, 19);
WIRE_AT(trading_action, reserved, 20);
WIRE_AT(trading_action, reason, 21);

struct wire_reg_sho {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t action;
} __attribute__((packed));
WIRE_AT(reg_sho, stock, 11);
WIRE_AT(reg_sho, action, 19);

struct wire_mp_position {
	struct wire_hdr h;
	uint8_t mpid[4];
	uint8_t stock[8];
	uint8_t primary_mm;
	uint8_t mm_mode;
	uint8_t participant_state;
} __attribute__((packed));
WIRE_AT(mp_position, mpid, 11);
WIRE_AT(mp_position, stock, 15);
WIRE_AT(mp_position, primary_mm, 23);
WIRE_AT(mp_position, mm_mode, 24);
WIRE_AT(mp_position, participant_state, 25);

struct wire_mwcb_decline {
	struct wire_hdr h;
	uint8_t level1[8]; /* Price(8) */
	uint8_t level2[8];
	uint8_t level3[8];
} __attribute__((packed));
WIRE_AT(mwcb_decline, level1, 11);
WIRE_AT(mwcb_decline, level2, 19);
WIRE_AT(mwcb_decline, level3, 27);

struct wire_mwcb_status {
	struct wire_hdr h;
	uint8_t breached_level;
} __attribute__((packed));
WIRE_AT(mwcb_status, breached_level, 11);

struct wire_ipo_quoting {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t release_time[4]; /* seconds since midnight */
	uint8_t release_qualifier;
	uint8_t ipo_price[4];
} __attribute__((packed));
WIRE_AT(ipo_quoting, stock, 11);
WIRE_AT(ipo_quoting, release_time, 19);
WIRE_AT(ipo_quoting, release_qualifier, 23);
WIRE_AT(ipo_quoting, ipo_price, 24);

struct wire_luld_collar {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t ref_price[4];
	uint8_t upper_price[4];
	uint8_t lower_price[4];
	uint8_t extension[4];
} __attribute__((packed));
WIRE_AT(luld_collar, stock, 11);
WIRE_AT(luld_collar, ref_price, 19);
WIRE_AT(luld_collar, upper_price, 23);
WIRE_AT(luld_collar, lower_price, 27);
WIRE_AT(luld_collar, extension, 31);

struct wire_operational_halt {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t market_code;
	uint8_t action;
} __attribute__((packed));
WIRE_AT(operational_halt, stock, 11);
WIRE_AT(operational_halt, market_code, 19);
WIRE_AT(operational_halt, action, 20);

struct wire_add_order {
	struct wire_hdr h;
	uint8_t ref[8];
	uint8_t side;
	uint8_t shares[4];
	uint8_t stock[8];
	uint8_t price[4];
} __attribute__((packed));
WIRE_AT(add_order, ref, 11);
WIRE_AT(add_order, side, 19);
WIRE_AT(add_order, shares, 20);
WIRE_AT(add_order, stock, 24);
WIRE_AT(add_order, price, 32);

/* F is A with the attribution appended, so it shares A's decoder. */
struct wire_add_order_mpid {
	struct wire_add_order a;
	uint8_t mpid[4];
} __attribute__((packed));
WIRE_AT(add_order_mpid, mpid, 36);

struct wire_order_executed {
	struct wire_hdr h;
	uint8_t ref[8];
	uint8_t shares[4];
	uint8_t match[8];
} __attribute__((packed));
WIRE_AT(order_executed, ref, 11);
WIRE_AT(order_executed, shares, 19);
WIRE_AT(order_executed, match, 23);

/* C is E with the printable flag and the execution price appended. */
struct wire_order_executed_price {
	struct wire_order_executed e;
	uint8_t printable;
	uint8_t price[4];
} __attribute__((packed));
WIRE_AT(order_executed_price, printable, 31);
WIRE_AT(order_executed_price, price, 32);

struct wire_order_cancel {
	struct wire_hdr h;
	uint8_t ref[8];
	uint8_t shares[4];
} __attribute__((packed));
WIRE_AT(order_cancel, ref, 11);
WIRE_AT(order_cancel, shares, 19);

struct wire_order_delete {
	struct wire_hdr h;
	uint8_t ref[8];
} __attribute__((packed));
WIRE_AT(order_delete, ref, 11);

struct wire_order_replace {
	struct wire_hdr h;
	uint8_t orig_ref[8];
	uint8_t new_ref[8];
	uint8_t shares[4];
	uint8_t price[4];
} __attribute__((packed));
WIRE_AT(order_replace, orig_ref, 11);
WIRE_AT(order_replace, new_ref, 19);
WIRE_AT(order_replace, shares, 27);
WIRE_AT(order_replace, price, 31);

struct wire_trade {
	struct wire_hdr h;
	uint8_t ref[8];
	uint8_t side;
	uint8_t shares[4];
	uint8_t stock[8];
	uint8_t price[4];
	uint8_t match[8];
} __attribute__((packed));
WIRE_AT(trade, ref, 11);
WIRE_AT(trade, side, 19);
WIRE_AT(trade, shares, 20);
WIRE_AT(trade, stock, 24);
WIRE_AT(trade, price, 32);
WIRE_AT(trade, match, 36);

struct wire_cross_trade {
	struct wire_hdr h;
	uint8_t shares[8];
	uint8_t stock[8];
	uint8_t price[4];
	uint8_t match[8];
	uint8_t cross_type;
} __attribute__((packed));
WIRE_AT(cross_trade, shares, 11);
WIRE_AT(cross_trade, stock, 19);
WIRE_AT(cross_trade, price, 27);
WIRE_AT(cross_trade, match, 31);
WIRE_AT(cross_trade, cross_type, 39);

struct wire_broken_trade {
	struct wire_hdr h;
	uint8_t match[8];
} __attribute__((packed));
WIRE_AT(broken_trade, match, 11);

struct wire_noii {
	struct wire_hdr h;
	uint8_t paired_shares[8];
	uint8_t imbalance_shares[8];
	uint8_t imbalance_direction;
	uint8_t stock[8];
	uint8_t far_price[4];
	uint8_t near_price[4];
	uint8_t ref_price[4];
	uint8_t cross_type;
	uint8_t price_variation;
} __attribute__((packed));
WIRE_AT(noii, paired_shares, 11);
WIRE_AT(noii, imbalance_shares, 19);
WIRE_AT(noii, imbalance_direction, 27);
WIRE_AT(noii, stock, 28);
WIRE_AT(noii, far_price, 36);
WIRE_AT(noii, near_price, 40);
WIRE_AT(noii, ref_price, 44);
WIRE_AT(noii, cross_type, 48);
WIRE_AT(noii, price_variation, 49);

struct wire_rpii {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t interest_flag;
} __attribute__((packed));
WIRE_AT(rpii, stock, 11);
WIRE_AT(rpii, interest_flag, 19);

struct wire_dlcr {
	struct wire_hdr h;
	uint8_t stock[8];
	uint8_t open_eligibility;
	uint8_t min_price[4];
	uint8_t max_price[4];
	uint8_t near_price[4];
	uint8_t near_time[8];
	uint8_t lower_collar[4];
	uint8_t upper_collar[4];
} __attribute__((packed));
WIRE_AT(dlcr, stock, 11);
WIRE_AT(dlcr, open_eligibility, 19);
WIRE_AT(dlcr, min_price, 20);
WIRE_AT(dlcr, max_price, 24);
WIRE_AT(dlcr, near_price, 28);
WIRE_AT(dlcr, near_time, 32);
WIRE_AT(dlcr, lower_collar, 40);
WIRE_AT(dlcr, upper_collar, 44);

/* ---- The type table ------------------------------------------------------------------------- */

/* One line per message type: letter, name (of the wire struct, the codec functions and the type
 * name string) and the length the spec gives. The length table, the names, the switches and the
 * asserts below are all generated from it, so a type cannot be half added.
 */
#define ITCH_TYPES(X)                                                                              \
	X(SL_ITCH_SYSTEM_EVENT, system_event, 12)                                                  \
	X(SL_ITCH_STOCK_DIRECTORY, stock_directory, 39)                                            \
	X(SL_ITCH_TRADING_ACTION, trading_action, 25)                                              \
	X(SL_ITCH_REG_SHO, reg_sho, 20)                                                            \
	X(SL_ITCH_MP_POSITION, mp_position, 26)                                                    \
	X(SL_ITCH_MWCB_DECLINE, mwcb_decline, 35)                                                  \
	X(SL_ITCH_MWCB_STATUS, mwcb_status, 12)                                                    \
	X(SL_ITCH_IPO_QUOTING, ipo_quoting, 28)                                                    \
	X(SL_ITCH_LULD_COLLAR, luld_collar, 35)                                                    \
	X(SL_ITCH_OPERATIONAL_HALT, operational_halt, 21)                                          \
	X(SL_ITCH_ADD_ORDER, add_order, 36)                                                        \
	X(SL_ITCH_ADD_ORDER_MPID, add_order_mpid, 40)                                              \
	X(SL_ITCH_ORDER_EXECUTED, order_executed, 31)                                              \
	X(SL_ITCH_ORDER_EXECUTED_PRICE, order_executed_price, 36)                                  \
	X(SL_ITCH_ORDER_CANCEL, order_cancel, 23)                                                  \
	X(SL_ITCH_ORDER_DELETE, order_delete, 19)                                                  \
	X(SL_ITCH_ORDER_REPLACE, order_replace, 35)                                                \
	X(SL_ITCH_TRADE, trade, 44)                                                                \
	X(SL_ITCH_CROSS_TRADE, cross_trade, 40)                                                    \
	X(SL_ITCH_BROKEN_TRADE, broken_trade, 19)                                                  \
	X(SL_ITCH_NOII, noii, 50)                                                                  \
	X(SL_ITCH_RPII, rpii, 20)                                                                  \
	X(SL_ITCH_DLCR, dlcr, 48)

#define ASSERT_LEN(c, name, len)                                                                   \
	_Static_assert(sizeof(struct wire_##name) == (len), "ITCH 5.0 length of " #name);          \
	_Static_assert((len) <= SL_ITCH_MAX_LEN, "SL_ITCH_MAX_LEN too small for " #name);          \
	_Static_assert((c) > 0 && (c) < 128, "ITCH type letters are ASCII");
ITCH_TYPES(ASSERT_LEN)
#undef ASSERT_LEN
_Static_assert(sizeof(struct wire_noii) == SL_ITCH_MAX_LEN, "NOII is the longest message");

/* Indexed by any byte, so the decoder needs no range check before the lookup. The entries are
 * the struct sizes, which the asserts above tie to the spec. */
static const uint8_t msg_len[256] = {
#define LEN_ENTRY(c, name, len) [c] = sizeof(struct wire_##name),
	ITCH_TYPES(LEN_ENTRY)
#undef LEN_ENTRY
};

static const char *const type_names[128] = {
#define NAME_ENTRY(c, name, len) [c] = #name,
	ITCH_TYPES(NAME_ENTRY)
#undef NAME_ENTRY
};

size_t sl__itch_msg_len(uint8_t type)
{
	return msg_len[type];
}

const char *sl__itch_type_name(uint8_t type)
{
	return type < 128 ? type_names[type] : NULL;
}

/* ---- Decode --------------------------------------------------------------------------------- */

/* Each decoder runs after the length check, so p holds exactly sizeof(struct wire_<name>)
 * bytes. Character fields are copied as they are: validating codes is the consumer's business,
 * and a logged message must re-encode to the same bytes.
 */
static void decode_system_event(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_system_event *w = (const void *)p;

	m->u.system_event.event_code = (char)w->event_code;
}

static void decode_stock_directory(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_stock_directory *w = (const void *)p;

	memcpy(m->u.stock_directory.stock, w->stock, 8);
	m->u.stock_directory.market_category = (char)w->market_category;
	m->u.stock_directory.financial_status = (char)w->financial_status;
	m->u.stock_directory.round_lot_size = sl__be32(w->round_lot_size);
	m->u.stock_directory.round_lots_only = (char)w->round_lots_only;
	m->u.stock_directory.issue_classification = (char)w->issue_classification;
	memcpy(m->u.stock_directory.issue_subtype, w->issue_subtype, 2);
	m->u.stock_directory.authenticity = (char)w->authenticity;
	m->u.stock_directory.short_sale_threshold = (char)w->short_sale_threshold;
	m->u.stock_directory.ipo_flag = (char)w->ipo_flag;
	m->u.stock_directory.luld_ref_price_tier = (char)w->luld_ref_price_tier;
	m->u.stock_directory.etp_flag = (char)w->etp_flag;
	m->u.stock_directory.etp_leverage_factor = sl__be32(w->etp_leverage_factor);
	m->u.stock_directory.inverse_indicator = (char)w->inverse_indicator;
}

static void decode_trading_action(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_trading_action *w = (const void *)p;

	memcpy(m->u.trading_action.stock, w->stock, 8);
	m->u.trading_action.trading_state = (char)w->trading_state;
	m->u.trading_action.reserved = (char)w->reserved;
	memcpy(m->u.trading_action.reason, w->reason, 4);
}

static void decode_reg_sho(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_reg_sho *w = (const void *)p;

	memcpy(m->u.reg_sho.stock, w->stock, 8);
	m->u.reg_sho.action = (char)w->action;
}

static void decode_mp_position(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_mp_position *w = (const void *)p;

	memcpy(m->u.mp_position.mpid, w->mpid, 4);
	memcpy(m->u.mp_position.stock, w->stock, 8);
	m->u.mp_position.primary_mm = (char)w->primary_mm;
	m->u.mp_position.mm_mode = (char)w->mm_mode;
	m->u.mp_position.participant_state = (char)w->participant_state;
}

static void decode_mwcb_decline(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_mwcb_decline *w = (const void *)p;

	m->u.mwcb_decline.level1 = sl__be64(w->level1);
	m->u.mwcb_decline.level2 = sl__be64(w->level2);
	m->u.mwcb_decline.level3 = sl__be64(w->level3);
}

static void decode_mwcb_status(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_mwcb_status *w = (const void *)p;

	m->u.mwcb_status.breached_level = (char)w->breached_level;
}

static void decode_ipo_quoting(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_ipo_quoting *w = (const void *)p;

	memcpy(m->u.ipo_quoting.stock, w->stock, 8);
	m->u.ipo_quoting.release_time = sl__be32(w->release_time);
	m->u.ipo_quoting.release_qualifier = (char)w->release_qualifier;
	m->u.ipo_quoting.ipo_price = sl__be32(w->ipo_price);
}

static void decode_luld_collar(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_luld_collar *w = (const void *)p;

	memcpy(m->u.luld_collar.stock, w->stock, 8);
	m->u.luld_collar.ref_price = sl__be32(w->ref_price);
	m->u.luld_collar.upper_price = sl__be32(w->upper_price);
	m->u.luld_collar.lower_price = sl__be32(w->lower_price);
	m->u.luld_collar.extension = sl__be32(w->extension);
}

static void decode_operational_halt(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_operational_halt *w = (const void *)p;

	memcpy(m->u.operational_halt.stock, w->stock, 8);
	m->u.operational_halt.market_code = (char)w->market_code;
	m->u.operational_halt.action = (char)w->action;
}

static void decode_add_order(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_add_order *w = (const void *)p;

	m->u.add_order.ref = sl__be64(w->ref);
	m->u.add_order.side = (char)w->side;
	m->u.add_order.shares = sl__be32(w->shares);
	memcpy(m->u.add_order.stock, w->stock, 8);
	m->u.add_order.price = sl__be32(w->price);
}

static void decode_add_order_mpid(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_add_order_mpid *w = (const void *)p;

	decode_add_order(p, m);
	memcpy(m->u.add_order.mpid, w->mpid, 4);
}

static void decode_order_executed(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_order_executed *w = (const void *)p;

	m->u.executed.ref = sl__be64(w->ref);
	m->u.executed.shares = sl__be32(w->shares);
	m->u.executed.match = sl__be64(w->match);
}

static void decode_order_executed_price(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_order_executed_price *w = (const void *)p;

	decode_order_executed(p, m);
	m->u.executed.printable = (char)w->printable;
	m->u.executed.price = sl__be32(w->price);
}

static void decode_order_cancel(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_order_cancel *w = (const void *)p;

	m->u.cancel.ref = sl__be64(w->ref);
	m->u.cancel.shares = sl__be32(w->shares);
}

static void decode_order_delete(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_order_delete *w = (const void *)p;

	m->u.del.ref = sl__be64(w->ref);
}

static void decode_order_replace(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_order_replace *w = (const void *)p;

	m->u.replace.orig_ref = sl__be64(w->orig_ref);
	m->u.replace.new_ref = sl__be64(w->new_ref);
	m->u.replace.shares = sl__be32(w->shares);
	m->u.replace.price = sl__be32(w->price);
}

static void decode_trade(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_trade *w = (const void *)p;

	m->u.trade.ref = sl__be64(w->ref);
	m->u.trade.side = (char)w->side;
	m->u.trade.shares = sl__be32(w->shares);
	memcpy(m->u.trade.stock, w->stock, 8);
	m->u.trade.price = sl__be32(w->price);
	m->u.trade.match = sl__be64(w->match);
}

static void decode_cross_trade(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_cross_trade *w = (const void *)p;

	m->u.cross_trade.shares = sl__be64(w->shares);
	memcpy(m->u.cross_trade.stock, w->stock, 8);
	m->u.cross_trade.price = sl__be32(w->price);
	m->u.cross_trade.match = sl__be64(w->match);
	m->u.cross_trade.cross_type = (char)w->cross_type;
}

static void decode_broken_trade(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_broken_trade *w = (const void *)p;

	m->u.broken_trade.match = sl__be64(w->match);
}

static void decode_noii(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_noii *w = (const void *)p;

	m->u.noii.paired_shares = sl__be64(w->paired_shares);
	m->u.noii.imbalance_shares = sl__be64(w->imbalance_shares);
	m->u.noii.imbalance_direction = (char)w->imbalance_direction;
	memcpy(m->u.noii.stock, w->stock, 8);
	m->u.noii.far_price = sl__be32(w->far_price);
	m->u.noii.near_price = sl__be32(w->near_price);
	m->u.noii.ref_price = sl__be32(w->ref_price);
	m->u.noii.cross_type = (char)w->cross_type;
	m->u.noii.price_variation = (char)w->price_variation;
}

static void decode_rpii(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_rpii *w = (const void *)p;

	memcpy(m->u.rpii.stock, w->stock, 8);
	m->u.rpii.interest_flag = (char)w->interest_flag;
}

static void decode_dlcr(const uint8_t *p, struct sl_itch_msg *m)
{
	const struct wire_dlcr *w = (const void *)p;

	memcpy(m->u.dlcr.stock, w->stock, 8);
	m->u.dlcr.open_eligibility = (char)w->open_eligibility;
	m->u.dlcr.min_price = sl__be32(w->min_price);
	m->u.dlcr.max_price = sl__be32(w->max_price);
	m->u.dlcr.near_price = sl__be32(w->near_price);
	m->u.dlcr.near_time = sl__be64(w->near_time);
	m->u.dlcr.lower_collar = sl__be32(w->lower_collar);
	m->u.dlcr.upper_collar = sl__be32(w->upper_collar);
}

int sl__itch_decode(const uint8_t *p, size_t len, struct sl_itch_msg *out)
{
	const struct wire_hdr *h = (const void *)p;
	size_t want;

	/* The length check comes first and is exact: after it every decoder may read its whole
	 * struct, and nothing past p + len exists for it to read. */
	if (len == 0)
		return SL_EBADMSG;
	want = msg_len[p[0]];
	if (want == 0)
		return SL_EUNKNOWN;
	if (len != want)
		return SL_EBADMSG;

	/* Zero everything first so fields a type does not carry (mpid of A, printable and price
	 * of E) and the padding read as 0: consumers may copy or hash the whole struct. It costs
	 * two cache lines of stores, nothing next to a miss on the order table. */
	memset(out, 0, sizeof(*out));
	out->type = h->type;
	out->locate = sl__be16(h->locate);
	out->tracking = sl__be16(h->tracking);
	out->timestamp = sl__be48(h->timestamp);

	switch (p[0]) {
#define DECODE_CASE(c, name, len)                                                                  \
	case c:                                                                                    \
		decode_##name(p, out);                                                             \
		break;
		ITCH_TYPES(DECODE_CASE)
#undef DECODE_CASE
	}
	return 0;
}

/* ---- Encode --------------------------------------------------------------------------------- */

/* Mirrors of the decoders: each writes every byte of its struct, so the output never carries
 * stale bytes from the caller's buffer. */
static void encode_system_event(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_system_event *w = (void *)p;

	w->event_code = (uint8_t)m->u.system_event.event_code;
}

static void encode_stock_directory(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_stock_directory *w = (void *)p;

	memcpy(w->stock, m->u.stock_directory.stock, 8);
	w->market_category = (uint8_t)m->u.stock_directory.market_category;
	w->financial_status = (uint8_t)m->u.stock_directory.financial_status;
	sl__put_be32(w->round_lot_size, m->u.stock_directory.round_lot_size);
	w->round_lots_only = (uint8_t)m->u.stock_directory.round_lots_only;
	w->issue_classification = (uint8_t)m->u.stock_directory.issue_classification;
	memcpy(w->issue_subtype, m->u.stock_directory.issue_subtype, 2);
	w->authenticity = (uint8_t)m->u.stock_directory.authenticity;
	w->short_sale_threshold = (uint8_t)m->u.stock_directory.short_sale_threshold;
	w->ipo_flag = (uint8_t)m->u.stock_directory.ipo_flag;
	w->luld_ref_price_tier = (uint8_t)m->u.stock_directory.luld_ref_price_tier;
	w->etp_flag = (uint8_t)m->u.stock_directory.etp_flag;
	sl__put_be32(w->etp_leverage_factor, m->u.stock_directory.etp_leverage_factor);
	w->inverse_indicator = (uint8_t)m->u.stock_directory.inverse_indicator;
}

static void encode_trading_action(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_trading_action *w = (void *)p;

	memcpy(w->stock, m->u.trading_action.stock, 8);
	w->trading_state = (uint8_t)m->u.trading_action.trading_state;
	w->reserved = (uint8_t)m->u.trading_action.reserved;
	memcpy(w->reason, m->u.trading_action.reason, 4);
}

static void encode_reg_sho(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_reg_sho *w = (void *)p;

	memcpy(w->stock, m->u.reg_sho.stock, 8);
	w->action = (uint8_t)m->u.reg_sho.action;
}

static void encode_mp_position(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_mp_position *w = (void *)p;

	memcpy(w->mpid, m->u.mp_position.mpid, 4);
	memcpy(w->stock, m->u.mp_position.stock, 8);
	w->primary_mm = (uint8_t)m->u.mp_position.primary_mm;
	w->mm_mode = (uint8_t)m->u.mp_position.mm_mode;
	w->participant_state = (uint8_t)m->u.mp_position.participant_state;
}

static void encode_mwcb_decline(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_mwcb_decline *w = (void *)p;

	sl__put_be64(w->level1, m->u.mwcb_decline.level1);
	sl__put_be64(w->level2, m->u.mwcb_decline.level2);
	sl__put_be64(w->level3, m->u.mwcb_decline.level3);
}

static void encode_mwcb_status(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_mwcb_status *w = (void *)p;

	w->breached_level = (uint8_t)m->u.mwcb_status.breached_level;
}

static void encode_ipo_quoting(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_ipo_quoting *w = (void *)p;

	memcpy(w->stock, m->u.ipo_quoting.stock, 8);
	sl__put_be32(w->release_time, m->u.ipo_quoting.release_time);
	w->release_qualifier = (uint8_t)m->u.ipo_quoting.release_qualifier;
	sl__put_be32(w->ipo_price, m->u.ipo_quoting.ipo_price);
}

static void encode_luld_collar(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_luld_collar *w = (void *)p;

	memcpy(w->stock, m->u.luld_collar.stock, 8);
	sl__put_be32(w->ref_price, m->u.luld_collar.ref_price);
	sl__put_be32(w->upper_price, m->u.luld_collar.upper_price);
	sl__put_be32(w->lower_price, m->u.luld_collar.lower_price);
	sl__put_be32(w->extension, m->u.luld_collar.extension);
}

static void encode_operational_halt(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_operational_halt *w = (void *)p;

	memcpy(w->stock, m->u.operational_halt.stock, 8);
	w->market_code = (uint8_t)m->u.operational_halt.market_code;
	w->action = (uint8_t)m->u.operational_halt.action;
}

static void encode_add_order(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_add_order *w = (void *)p;

	sl__put_be64(w->ref, m->u.add_order.ref);
	w->side = (uint8_t)m->u.add_order.side;
	sl__put_be32(w->shares, m->u.add_order.shares);
	memcpy(w->stock, m->u.add_order.stock, 8);
	sl__put_be32(w->price, m->u.add_order.price);
}

static void encode_add_order_mpid(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_add_order_mpid *w = (void *)p;

	encode_add_order(m, p);
	memcpy(w->mpid, m->u.add_order.mpid, 4);
}

static void encode_order_executed(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_order_executed *w = (void *)p;

	sl__put_be64(w->ref, m->u.executed.ref);
	sl__put_be32(w->shares, m->u.executed.shares);
	sl__put_be64(w->match, m->u.executed.match);
}

static void encode_order_executed_price(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_order_executed_price *w = (void *)p;

	encode_order_executed(m, p);
	w->printable = (uint8_t)m->u.executed.printable;
	sl__put_be32(w->price, m->u.executed.price);
}

static void encode_order_cancel(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_order_cancel *w = (void *)p;

	sl__put_be64(w->ref, m->u.cancel.ref);
	sl__put_be32(w->shares, m->u.cancel.shares);
}

static void encode_order_delete(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_order_delete *w = (void *)p;

	sl__put_be64(w->ref, m->u.del.ref);
}

static void encode_order_replace(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_order_replace *w = (void *)p;

	sl__put_be64(w->orig_ref, m->u.replace.orig_ref);
	sl__put_be64(w->new_ref, m->u.replace.new_ref);
	sl__put_be32(w->shares, m->u.replace.shares);
	sl__put_be32(w->price, m->u.replace.price);
}

static void encode_trade(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_trade *w = (void *)p;

	sl__put_be64(w->ref, m->u.trade.ref);
	w->side = (uint8_t)m->u.trade.side;
	sl__put_be32(w->shares, m->u.trade.shares);
	memcpy(w->stock, m->u.trade.stock, 8);
	sl__put_be32(w->price, m->u.trade.price);
	sl__put_be64(w->match, m->u.trade.match);
}

static void encode_cross_trade(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_cross_trade *w = (void *)p;

	sl__put_be64(w->shares, m->u.cross_trade.shares);
	memcpy(w->stock, m->u.cross_trade.stock, 8);
	sl__put_be32(w->price, m->u.cross_trade.price);
	sl__put_be64(w->match, m->u.cross_trade.match);
	w->cross_type = (uint8_t)m->u.cross_trade.cross_type;
}

static void encode_broken_trade(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_broken_trade *w = (void *)p;

	sl__put_be64(w->match, m->u.broken_trade.match);
}

static void encode_noii(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_noii *w = (void *)p;

	sl__put_be64(w->paired_shares, m->u.noii.paired_shares);
	sl__put_be64(w->imbalance_shares, m->u.noii.imbalance_shares);
	w->imbalance_direction = (uint8_t)m->u.noii.imbalance_direction;
	memcpy(w->stock, m->u.noii.stock, 8);
	sl__put_be32(w->far_price, m->u.noii.far_price);
	sl__put_be32(w->near_price, m->u.noii.near_price);
	sl__put_be32(w->ref_price, m->u.noii.ref_price);
	w->cross_type = (uint8_t)m->u.noii.cross_type;
	w->price_variation = (uint8_t)m->u.noii.price_variation;
}

static void encode_rpii(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_rpii *w = (void *)p;

	memcpy(w->stock, m->u.rpii.stock, 8);
	w->interest_flag = (uint8_t)m->u.rpii.interest_flag;
}

static void encode_dlcr(const struct sl_itch_msg *m, uint8_t *p)
{
	struct wire_dlcr *w = (void *)p;

	memcpy(w->stock, m->u.dlcr.stock, 8);
	w->open_eligibility = (uint8_t)m->u.dlcr.open_eligibility;
	sl__put_be32(w->min_price, m->u.dlcr.min_price);
	sl__put_be32(w->max_price, m->u.dlcr.max_price);
	sl__put_be32(w->near_price, m->u.dlcr.near_price);
	sl__put_be64(w->near_time, m->u.dlcr.near_time);
	sl__put_be32(w->lower_collar, m->u.dlcr.lower_collar);
	sl__put_be32(w->upper_collar, m->u.dlcr.upper_collar);
}

int sl__itch_encode(const struct sl_itch_msg *m, uint8_t *out, size_t cap)
{
	struct wire_hdr *h = (void *)out;
	size_t len = msg_len[m->type];

	if (len == 0)
		return SL_EUNKNOWN;
	if (cap < len)
		return -ENOSPC;
	/* The wire timestamp has 48 bits. Truncating a larger one would break
	 * decode(encode(m)) == m without a word, so refuse it (a day has fewer than 2^47 ns). */
	if (m->timestamp >> 48)
		return -ERANGE;

	h->type = m->type;
	sl__put_be16(h->locate, m->locate);
	sl__put_be16(h->tracking, m->tracking);
	sl__put_be48(h->timestamp, m->timestamp);

	switch (m->type) {
#define ENCODE_CASE(c, name, len)                                                                  \
	case c:                                                                                    \
		encode_##name(m, out);                                                             \
		break;
		ITCH_TYPES(ENCODE_CASE)
#undef ENCODE_CASE
	}
	return (int)len;
}

/* ---- Format --------------------------------------------------------------------------------- */

/* An snprintf-like sink: it copies what fits in cap - 1 bytes and counts everything, so one pass
 * both renders and measures. Text is "key=value" pairs separated by single spaces; a value byte
 * that is not a visible ASCII character (or is a backslash) is written as \xNN so a line never
 * holds a space, a control byte or a newline inside a value. JSON escapes such bytes as \u00NN
 * (the byte read as Latin-1) so the object is always valid JSON and pure ASCII.
 */
struct fmt {
	char *buf;
	size_t cap;
	size_t len; /* bytes the whole output needs, NUL excluded */
	int json;
};

static void put_mem(struct fmt *f, const char *s, size_t n)
{
	if (f->len < f->cap) {
		size_t room = f->cap - f->len;

		memcpy(f->buf + f->len, s, n < room ? n : room);
	}
	f->len += n;
}

static void put_str(struct fmt *f, const char *s)
{
	put_mem(f, s, strlen(s));
}

static void put_ch(struct fmt *f, char c)
{
	put_mem(f, &c, 1);
}

static void put_u64(struct fmt *f, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_mem(f, tmp + i, sizeof(tmp) - i);
}

/* v as exactly digits decimal digits, zero padded: the fraction of a fixed-point number. */
static void put_frac(struct fmt *f, uint64_t v, int digits)
{
	char tmp[20];
	int i;

	for (i = digits - 1; i >= 0; i--) {
		tmp[i] = (char)('0' + v % 10);
		v /= 10;
	}
	put_mem(f, tmp, (size_t)digits);
}

static void put_hex2(struct fmt *f, uint8_t b)
{
	static const char hex[] = "0123456789abcdef";

	put_ch(f, hex[b >> 4]);
	put_ch(f, hex[b & 15]);
}

static void put_value_byte(struct fmt *f, uint8_t b)
{
	if (f->json) {
		if (b == '"' || b == '\\') {
			put_ch(f, '\\');
			put_ch(f, (char)b);
		} else if (b >= 0x20 && b < 0x7f) {
			put_ch(f, (char)b);
		} else {
			put_str(f, "\\u00");
			put_hex2(f, b);
		}
	} else {
		if (b > 0x20 && b < 0x7f && b != '\\') {
			put_ch(f, (char)b);
		} else {
			put_str(f, "\\x");
			put_hex2(f, b);
		}
	}
}

static void put_key(struct fmt *f, const char *key)
{
	if (f->json) {
		put_str(f, ",\"");
		put_str(f, key);
		put_str(f, "\":");
	} else {
		put_ch(f, ' ');
		put_str(f, key);
		put_ch(f, '=');
	}
}

static void fld_u(struct fmt *f, const char *key, uint64_t v)
{
	put_key(f, key);
	put_u64(f, v);
}

/* A fixed-width alpha field (symbol, MPID, reason) with its space padding removed. */
static void fld_s(struct fmt *f, const char *key, const char *s, size_t n)
{
	size_t i;

	while (n > 0 && s[n - 1] == ' ')
		n--;
	put_key(f, key);
	if (f->json)
		put_ch(f, '"');
	for (i = 0; i < n; i++)
		put_value_byte(f, (uint8_t)s[i]);
	if (f->json)
		put_ch(f, '"');
}

/* A one-byte alpha field: unlike fld_s a space is a value here (it means "not applicable" for
 * many codes), so it is kept, as \x20 in text. */
static void fld_c(struct fmt *f, const char *key, char c)
{
	put_key(f, key);
	if (f->json)
		put_ch(f, '"');
	put_value_byte(f, (uint8_t)c);
	if (f->json)
		put_ch(f, '"');
}

/* A Price(4) or Price(8) field: the raw integer always, and in text also the decimal rendering
 * under pxkey so a reader need not count implied decimals. */
static void fld_price(struct fmt *f, const char *key, const char *pxkey, uint64_t v, int decimals)
{
	uint64_t scale = decimals == 8 ? 100000000 : 10000;

	fld_u(f, key, v);
	if (f->json)
		return;
	put_key(f, pxkey);
	put_u64(f, v / scale);
	put_ch(f, '.');
	put_frac(f, v % scale, decimals);
}

static void fld_px4(struct fmt *f, const char *key, const char *pxkey, uint32_t v)
{
	fld_price(f, key, pxkey, v, 4);
}

static void format_system_event(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_c(f, "event_code", m->u.system_event.event_code);
}

static void format_stock_directory(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.stock_directory.stock, 8);
	fld_c(f, "market_category", m->u.stock_directory.market_category);
	fld_c(f, "financial_status", m->u.stock_directory.financial_status);
	fld_u(f, "round_lot_size", m->u.stock_directory.round_lot_size);
	fld_c(f, "round_lots_only", m->u.stock_directory.round_lots_only);
	fld_c(f, "issue_classification", m->u.stock_directory.issue_classification);
	fld_s(f, "issue_subtype", m->u.stock_directory.issue_subtype, 2);
	fld_c(f, "authenticity", m->u.stock_directory.authenticity);
	fld_c(f, "short_sale_threshold", m->u.stock_directory.short_sale_threshold);
	fld_c(f, "ipo_flag", m->u.stock_directory.ipo_flag);
	fld_c(f, "luld_ref_price_tier", m->u.stock_directory.luld_ref_price_tier);
	fld_c(f, "etp_flag", m->u.stock_directory.etp_flag);
	fld_u(f, "etp_leverage_factor", m->u.stock_directory.etp_leverage_factor);
	fld_c(f, "inverse_indicator", m->u.stock_directory.inverse_indicator);
}

static void format_trading_action(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.trading_action.stock, 8);
	fld_c(f, "trading_state", m->u.trading_action.trading_state);
	fld_c(f, "reserved", m->u.trading_action.reserved);
	fld_s(f, "reason", m->u.trading_action.reason, 4);
}

static void format_reg_sho(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.reg_sho.stock, 8);
	fld_c(f, "reg_sho_action", m->u.reg_sho.action);
}

static void format_mp_position(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "mpid", m->u.mp_position.mpid, 4);
	fld_s(f, "stock", m->u.mp_position.stock, 8);
	fld_c(f, "primary_market_maker", m->u.mp_position.primary_mm);
	fld_c(f, "market_maker_mode", m->u.mp_position.mm_mode);
	fld_c(f, "market_participant_state", m->u.mp_position.participant_state);
}

static void format_mwcb_decline(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_price(f, "level1", "level1_px", m->u.mwcb_decline.level1, 8);
	fld_price(f, "level2", "level2_px", m->u.mwcb_decline.level2, 8);
	fld_price(f, "level3", "level3_px", m->u.mwcb_decline.level3, 8);
}

static void format_mwcb_status(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_c(f, "breached_level", m->u.mwcb_status.breached_level);
}

static void format_ipo_quoting(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.ipo_quoting.stock, 8);
	fld_u(f, "release_time", m->u.ipo_quoting.release_time);
	fld_c(f, "release_qualifier", m->u.ipo_quoting.release_qualifier);
	fld_px4(f, "ipo_price", "ipo_px", m->u.ipo_quoting.ipo_price);
}

static void format_luld_collar(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.luld_collar.stock, 8);
	fld_px4(f, "ref_price", "ref_px", m->u.luld_collar.ref_price);
	fld_px4(f, "upper_price", "upper_px", m->u.luld_collar.upper_price);
	fld_px4(f, "lower_price", "lower_px", m->u.luld_collar.lower_price);
	fld_u(f, "extension", m->u.luld_collar.extension);
}

static void format_operational_halt(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.operational_halt.stock, 8);
	fld_c(f, "market_code", m->u.operational_halt.market_code);
	fld_c(f, "action", m->u.operational_halt.action);
}

static void format_add_order(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "ref", m->u.add_order.ref);
	fld_c(f, "side", m->u.add_order.side);
	fld_u(f, "shares", m->u.add_order.shares);
	fld_s(f, "stock", m->u.add_order.stock, 8);
	fld_px4(f, "price", "px", m->u.add_order.price);
}

static void format_add_order_mpid(struct fmt *f, const struct sl_itch_msg *m)
{
	format_add_order(f, m);
	fld_s(f, "mpid", m->u.add_order.mpid, 4);
}

static void format_order_executed(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "ref", m->u.executed.ref);
	fld_u(f, "shares", m->u.executed.shares);
	fld_u(f, "match", m->u.executed.match);
}

static void format_order_executed_price(struct fmt *f, const struct sl_itch_msg *m)
{
	format_order_executed(f, m);
	fld_c(f, "printable", m->u.executed.printable);
	fld_px4(f, "price", "px", m->u.executed.price);
}

static void format_order_cancel(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "ref", m->u.cancel.ref);
	fld_u(f, "shares", m->u.cancel.shares);
}

static void format_order_delete(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "ref", m->u.del.ref);
}

static void format_order_replace(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "orig_ref", m->u.replace.orig_ref);
	fld_u(f, "new_ref", m->u.replace.new_ref);
	fld_u(f, "shares", m->u.replace.shares);
	fld_px4(f, "price", "px", m->u.replace.price);
}

static void format_trade(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "ref", m->u.trade.ref);
	fld_c(f, "side", m->u.trade.side);
	fld_u(f, "shares", m->u.trade.shares);
	fld_s(f, "stock", m->u.trade.stock, 8);
	fld_px4(f, "price", "px", m->u.trade.price);
	fld_u(f, "match", m->u.trade.match);
}

static void format_cross_trade(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "shares", m->u.cross_trade.shares);
	fld_s(f, "stock", m->u.cross_trade.stock, 8);
	fld_px4(f, "cross_price", "cross_px", m->u.cross_trade.price);
	fld_u(f, "match", m->u.cross_trade.match);
	fld_c(f, "cross_type", m->u.cross_trade.cross_type);
}

static void format_broken_trade(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "match", m->u.broken_trade.match);
}

static void format_noii(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_u(f, "paired_shares", m->u.noii.paired_shares);
	fld_u(f, "imbalance_shares", m->u.noii.imbalance_shares);
	fld_c(f, "imbalance_direction", m->u.noii.imbalance_direction);
	fld_s(f, "stock", m->u.noii.stock, 8);
	fld_px4(f, "far_price", "far_px", m->u.noii.far_price);
	fld_px4(f, "near_price", "near_px", m->u.noii.near_price);
	fld_px4(f, "current_ref_price", "current_ref_px", m->u.noii.ref_price);
	fld_c(f, "cross_type", m->u.noii.cross_type);
	fld_c(f, "price_variation_indicator", m->u.noii.price_variation);
}

static void format_rpii(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.rpii.stock, 8);
	fld_c(f, "interest_flag", m->u.rpii.interest_flag);
}

static void format_dlcr(struct fmt *f, const struct sl_itch_msg *m)
{
	fld_s(f, "stock", m->u.dlcr.stock, 8);
	fld_c(f, "open_eligibility_status", m->u.dlcr.open_eligibility);
	fld_px4(f, "min_allowable_price", "min_allowable_px", m->u.dlcr.min_price);
	fld_px4(f, "max_allowable_price", "max_allowable_px", m->u.dlcr.max_price);
	fld_px4(f, "near_execution_price", "near_execution_px", m->u.dlcr.near_price);
	fld_u(f, "near_execution_time", m->u.dlcr.near_time);
	fld_px4(f, "lower_price_range_collar", "lower_price_range_collar_px",
		m->u.dlcr.lower_collar);
	fld_px4(f, "upper_price_range_collar", "upper_price_range_collar_px",
		m->u.dlcr.upper_collar);
}

int sl__itch_format(const struct sl_itch_msg *m, int flags, char *buf, size_t cap)
{
	struct fmt f = { .buf = buf, .cap = cap, .json = (flags & SL_FORMAT_JSON) != 0 };
	const char *name = sl__itch_type_name(m->type);

	if (!name) {
		if (cap > 0)
			buf[0] = '\0';
		return SL_EUNKNOWN;
	}

	if (f.json) {
		put_str(&f, "{\"type\":\"");
		put_ch(&f, (char)m->type);
		put_str(&f, "\",\"name\":\"");
		put_str(&f, name);
		put_ch(&f, '"');
		fld_u(&f, "locate", m->locate);
		fld_u(&f, "tracking", m->tracking);
		fld_u(&f, "timestamp", m->timestamp);
	} else {
		put_ch(&f, (char)m->type);
		put_ch(&f, ' ');
		put_str(&f, name);
		fld_u(&f, "locate", m->locate);
		fld_u(&f, "track", m->tracking);
		put_key(&f, "ts");
		put_u64(&f, m->timestamp / 1000000000);
		put_ch(&f, '.');
		put_frac(&f, m->timestamp % 1000000000, 9);
	}

	switch (m->type) {
#define FORMAT_CASE(c, name, len)                                                                  \
	case c:                                                                                    \
		format_##name(&f, m);                                                              \
		break;
		ITCH_TYPES(FORMAT_CASE)
#undef FORMAT_CASE
	}

	if (f.json)
		put_ch(&f, '}');
	if (cap > 0)
		buf[f.len < cap ? f.len : cap - 1] = '\0';
	return (int)f.len;
}
