/* keys.c - table keys and values for the engine's records (see keys.h): big-endian keys so
 * memcmp sorts numerically, little-endian versioned values of fixed length. Pure functions;
 * keys knows the public record structs and nothing of tables or files.
 */
#include <string.h>

#include "itch.h"
#include "keys.h"

/* Little-endian field writers and readers (n <= 8); values are read with bounds already
 * checked. */
static uint8_t *put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + n;
}

static uint64_t get_le(const uint8_t **pp, int n)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	*pp = p + n;
	return v;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* A symbol of up to n characters, NUL padded on disk, NUL terminated in the struct. */
static void get_sym(const uint8_t **pp, char *dst, size_t n)
{
	memcpy(dst, *pp, n);
	dst[n] = 0;
	*pp += n;
}

size_t sl__key_event(uint8_t *out, uint64_t seq)
{
	out[0] = SL_KEY_EVENT;
	sl__put_be64(out + 1, seq);
	return SL_KEY_EVENT_LEN;
}

size_t sl__key_order(uint8_t *out, uint16_t locate, uint64_t ref)
{
	out[0] = SL_KEY_ORDER;
	sl__put_be16(out + 1, locate);
	sl__put_be64(out + 3, ref);
	return SL_KEY_ORDER_LEN;
}

size_t sl__key_stock(uint8_t *out, uint16_t locate)
{
	out[0] = SL_KEY_STOCK;
	sl__put_be16(out + 1, locate);
	return SL_KEY_STOCK_LEN;
}

size_t sl__key_trade(uint8_t *out, uint64_t match)
{
	out[0] = SL_KEY_TRADE;
	sl__put_be64(out + 1, match);
	return SL_KEY_TRADE_LEN;
}

int sl__key_parse(const uint8_t *key, size_t len, uint64_t *a, uint16_t *locate)
{
	if (!len)
		return 0;
	uint64_t x = 0;
	uint16_t l = 0;
	switch (key[0]) {
	case SL_KEY_EVENT:
	case SL_KEY_TRADE:
		if (len != SL_KEY_EVENT_LEN)
			return 0;
		x = sl__be64(key + 1);
		break;
	case SL_KEY_ORDER:
		if (len != SL_KEY_ORDER_LEN)
			return 0;
		l = sl__be16(key + 1);
		x = sl__be64(key + 3);
		break;
	case SL_KEY_STOCK:
		if (len != SL_KEY_STOCK_LEN)
			return 0;
		l = sl__be16(key + 1);
		break;
	default:
		return 0;
	}
	if (a)
		*a = x;
	if (locate)
		*locate = l;
	return key[0];
}

size_t sl__val_order_encode(uint8_t *out, const struct sl_order *o)
{
	uint8_t *p = out;
	*p++ = SL_VAL_VERSION;
	*p++ = (uint8_t)o->side;
	*p++ = o->status;
	*p++ = 0;
	p = put_le(p, o->price, 4);
	p = put_le(p, o->shares, 4);
	p = put_le(p, o->orig_shares, 4);
	p = put_le(p, o->executed_shares, 4);
	p = put_le(p, o->cancelled_shares, 4);
	char sym[8] = { 0 }, mpid[4] = { 0 };
	memcpy(sym, o->stock, strnlen(o->stock, 8));
	memcpy(mpid, o->mpid, strnlen(o->mpid, 4));
	p = put_bytes(p, sym, 8);
	p = put_bytes(p, mpid, 4);
	p = put_le(p, o->replaced_by, 8);
	p = put_le(p, o->replaces, 8);
	p = put_le(p, o->added_ts, 8);
	p = put_le(p, o->updated_ts, 8);
	p = put_le(p, o->added_seq, 8);
	p = put_le(p, o->updated_seq, 8);
	return (size_t)(p - out);
}

int sl__val_order_decode(const uint8_t *v, size_t len, uint16_t locate, uint64_t ref,
			 struct sl_order *o)
{
	if (len != SL_VAL_ORDER_LEN || v[0] != SL_VAL_VERSION)
		return SL_ECORRUPT;
	memset(o, 0, sizeof(*o));
	o->version = SL_ORDER_VERSION;
	o->locate = locate;
	o->ref = ref;
	o->side = (char)v[1];
	o->status = v[2];
	const uint8_t *p = v + 4;
	o->price = (uint32_t)get_le(&p, 4);
	o->shares = (uint32_t)get_le(&p, 4);
	o->orig_shares = (uint32_t)get_le(&p, 4);
	o->executed_shares = (uint32_t)get_le(&p, 4);
	o->cancelled_shares = (uint32_t)get_le(&p, 4);
	get_sym(&p, o->stock, 8);
	get_sym(&p, o->mpid, 4);
	o->replaced_by = get_le(&p, 8);
	o->replaces = get_le(&p, 8);
	o->added_ts = get_le(&p, 8);
	o->updated_ts = get_le(&p, 8);
	o->added_seq = get_le(&p, 8);
	o->updated_seq = get_le(&p, 8);
	return 0;
}

size_t sl__val_trade_encode(uint8_t *out, const struct sl_trade *t)
{
	uint8_t *p = out;
	*p++ = SL_VAL_VERSION;
	*p++ = (uint8_t)t->kind;
	*p++ = (uint8_t)t->side;
	*p++ = (uint8_t)t->cross_type;
	*p++ = t->printable;
	*p++ = t->broken;
	p = put_le(p, t->locate, 2);
	p = put_le(p, t->ref, 8);
	p = put_le(p, t->shares, 8);
	p = put_le(p, t->price, 4);
	char sym[8] = { 0 };
	memcpy(sym, t->stock, strnlen(t->stock, 8));
	p = put_bytes(p, sym, 8);
	p = put_le(p, t->ts, 8);
	p = put_le(p, t->seq, 8);
	memset(p, 0, 12); /* room to grow without a new version */
	p += 12;
	return (size_t)(p - out);
}

int sl__val_trade_decode(const uint8_t *v, size_t len, uint64_t match, struct sl_trade *t)
{
	if (len != SL_VAL_TRADE_LEN || v[0] != SL_VAL_VERSION)
		return SL_ECORRUPT;
	memset(t, 0, sizeof(*t));
	t->version = SL_TRADE_VERSION;
	t->match = match;
	t->kind = (char)v[1];
	t->side = (char)v[2];
	t->cross_type = (char)v[3];
	t->printable = v[4];
	t->broken = v[5];
	const uint8_t *p = v + 6;
	t->locate = (uint16_t)get_le(&p, 2);
	t->ref = get_le(&p, 8);
	t->shares = get_le(&p, 8);
	t->price = (uint32_t)get_le(&p, 4);
	get_sym(&p, t->stock, 8);
	t->ts = get_le(&p, 8);
	t->seq = get_le(&p, 8);
	return 0;
}

size_t sl__val_stock_encode(uint8_t *out, const struct sl_stock *s)
{
	uint8_t *p = out;
	*p++ = SL_VAL_VERSION;
	*p++ = (uint8_t)s->market_category;
	*p++ = (uint8_t)s->financial_status;
	*p++ = (uint8_t)s->trading_state;
	p = put_le(p, s->round_lot_size, 4);
	char sym[8] = { 0 };
	memcpy(sym, s->stock, strnlen(s->stock, 8));
	p = put_bytes(p, sym, 8);
	p = put_le(p, s->seq, 8);
	return (size_t)(p - out);
}

int sl__val_stock_decode(const uint8_t *v, size_t len, uint16_t locate, struct sl_stock *s)
{
	if (len != SL_VAL_STOCK_LEN || v[0] != SL_VAL_VERSION)
		return SL_ECORRUPT;
	memset(s, 0, sizeof(*s));
	s->version = SL_STOCK_VERSION;
	s->locate = locate;
	s->market_category = (char)v[1];
	s->financial_status = (char)v[2];
	s->trading_state = (char)v[3];
	const uint8_t *p = v + 4;
	s->round_lot_size = (uint32_t)get_le(&p, 4);
	get_sym(&p, s->stock, 8);
	s->seq = get_le(&p, 8);
	return 0;
}

size_t sl__val_event_encode(uint8_t *out, uint32_t kind, uint64_t rx_ns, const void *payload,
			    size_t len)
{
	uint8_t *p = out;
	*p++ = SL_VAL_VERSION;
	*p++ = (uint8_t)kind;
	p = put_le(p, 0, 2);
	p = put_le(p, rx_ns, 8);
	if (len)
		p = put_bytes(p, payload, len);
	return (size_t)(p - out);
}

int sl__val_event_decode(const uint8_t *v, size_t len, uint32_t *kind, uint64_t *rx_ns,
			 const uint8_t **payload, size_t *plen)
{
	if (len < SL_VAL_EVENT_HDR || v[0] != SL_VAL_VERSION || !v[1])
		return SL_ECORRUPT;
	const uint8_t *p = v + 4;
	*kind = v[1];
	*rx_ns = get_le(&p, 8);
	*payload = v + SL_VAL_EVENT_HDR;
	*plen = len - SL_VAL_EVENT_HDR;
	return 0;
}
