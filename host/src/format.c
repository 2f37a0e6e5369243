/* format.c - text and JSON renderings of the public structs (events, orders, trades, stats)
 * for the CLI and for gateways that log. Pure functions over their arguments; ITCH field
 * rendering itself belongs to itch.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "itch.h"
#include "log.h"
#include "sluice.h"

struct out {
	char *buf;
	size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->len < o->cap ? o->cap - o->len : 0;
	int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

static int finish(struct out *o)
{
	if (o->cap)
		o->buf[o->len < o->cap ? o->len : o->cap - 1] = 0;
	return (int)o->len;
}

SL_API const char *sl_order_status_name(int status)
{
	static const char *const names[] = { "open", "executed", "cancelled", "deleted",
					     "replaced" };
	return status >= 0 && status <= SL_ORDER_REPLACED ? names[status] : "unknown";
}

static void price4(char *b, size_t cap, uint32_t p)
{
	snprintf(b, cap, "%" PRIu32 ".%04" PRIu32, p / 10000, p % 10000);
}

SL_API int sl_order_format(const struct sl_order *x, int flags, char *buf, size_t cap)
{
	struct out o = { buf, cap, 0 };
	char px[32];
	price4(px, sizeof(px), x->price);
	if (flags & SL_FORMAT_JSON) {
		put(&o,
		    "{\"locate\":%u,\"ref\":%" PRIu64 ",\"side\":\"%c\",\"shares\":%" PRIu32
		    ",\"price\":%" PRIu32 ",\"status\":\"%s\",\"stock\":\"%s\",\"mpid\":\"%s\","
		    "\"orig_shares\":%" PRIu32 ",\"executed_shares\":%" PRIu32
		    ",\"cancelled_shares\":%" PRIu32 ",\"replaced_by\":%" PRIu64
		    ",\"replaces\":%" PRIu64 ",\"added_ts\":%" PRIu64 ",\"updated_ts\":%" PRIu64
		    ",\"added_seq\":%" PRIu64 ",\"updated_seq\":%" PRIu64 "}",
		    x->locate, x->ref, x->side, x->shares, x->price,
		    sl_order_status_name(x->status), x->stock, x->mpid, x->orig_shares,
		    x->executed_shares, x->cancelled_shares, x->replaced_by, x->replaces,
		    x->added_ts, x->updated_ts, x->added_seq, x->updated_seq);
	} else {
		put(&o,
		    "order %u/%" PRIu64 " %c %" PRIu32 " %s @ %s (%" PRIu32 ") %s: orig %" PRIu32
		    " executed %" PRIu32 " cancelled %" PRIu32,
		    x->locate, x->ref, x->side, x->shares, x->stock, px, x->price,
		    sl_order_status_name(x->status), x->orig_shares, x->executed_shares,
		    x->cancelled_shares);
		if (x->mpid[0])
			put(&o, " mpid %s", x->mpid);
		if (x->replaces)
			put(&o, " replaces %" PRIu64, x->replaces);
		if (x->replaced_by)
			put(&o, " replaced-by %" PRIu64, x->replaced_by);
		put(&o, " seq %" PRIu64 "..%" PRIu64, x->added_seq, x->updated_seq);
	}
	return finish(&o);
}

SL_API int sl_trade_format(const struct sl_trade *t, int flags, char *buf, size_t cap)
{
	struct out o = { buf, cap, 0 };
	char px[32];
	price4(px, sizeof(px), t->price);
	if (flags & SL_FORMAT_JSON) {
		put(&o,
		    "{\"match\":%" PRIu64 ",\"kind\":\"%c\",\"locate\":%u,\"stock\":\"%s\","
		    "\"side\":\"%c\",\"ref\":%" PRIu64 ",\"shares\":%" PRIu64 ",\"price\":%" PRIu32
		    ",\"printable\":\"%c\",\"broken\":%s,\"ts\":%" PRIu64 ",\"seq\":%" PRIu64 "}",
		    t->match, t->kind, t->locate, t->stock, t->side, t->ref, t->shares, t->price,
		    t->printable ? t->printable : 'Y', t->broken ? "true" : "false", t->ts,
		    t->seq);
	} else {
		put(&o, "trade %" PRIu64 " %c %s %" PRIu64 " @ %s (%" PRIu32 ")", t->match, t->kind,
		    t->stock, t->shares, px, t->price);
		if (t->ref)
			put(&o, " order %" PRIu64 " %c", t->ref, t->side);
		if (t->kind == SL_TRADE_CROSS)
			put(&o, " cross %c", t->cross_type);
		if (t->broken)
			put(&o, " BROKEN");
		put(&o, " seq %" PRIu64, t->seq);
	}
	return finish(&o);
}

SL_API int sl_event_format(const struct sl_event *ev, int flags, char *buf, size_t cap)
{
	struct out o = { buf, cap, 0 };
	int json = flags & SL_FORMAT_JSON;
	if (ev->kind == SL_EVENT_GAP) {
		if (json)
			put(&o,
			    "{\"seq\":%" PRIu64 ",\"rx_ns\":%" PRIu64 ",\"type\":\"gap\","
			    "\"count\":%" PRIu64 "}",
			    ev->seq, ev->rx_ns, ev->gap_count);
		else
			put(&o, "%" PRIu64 " GAP lost %" PRIu64 " messages (%" PRIu64 "..%" PRIu64 ")",
			    ev->seq, ev->gap_count, ev->seq, ev->seq + ev->gap_count - 1);
		return finish(&o);
	}
	struct sl_itch_msg m;
	int r = sl__itch_decode(ev->data, ev->len, &m);
	if (r < 0) {
		if (json)
			put(&o, "{\"seq\":%" PRIu64 ",\"rx_ns\":%" PRIu64 ",\"type\":\"bad\",\"len\":%u,"
			    "\"hex\":\"", ev->seq, ev->rx_ns, ev->len);
		else
			put(&o, "%" PRIu64 " BAD %s len=%u hex=", ev->seq, sl_strerror(r), ev->len);
		for (uint32_t i = 0; i < ev->len && i < 64; i++)
			put(&o, "%02x", ev->data[i]);
		if (json)
			put(&o, "\"}");
		return finish(&o);
	}
	char body[1024];
	sl__itch_format(&m, flags, body, sizeof(body));
	if (json)
		/* Splice the sequence into the message's own object. */
		put(&o, "{\"seq\":%" PRIu64 ",\"rx_ns\":%" PRIu64 ",%s", ev->seq, ev->rx_ns,
		    body[0] == '{' ? body + 1 : body);
	else
		put(&o, "%" PRIu64 " %s", ev->seq, body);
	return finish(&o);
}

SL_API int sl_stats_format(const struct sl_stats *s, int flags, char *buf, size_t cap)
{
	struct out o = { buf, cap, 0 };
	/* One table drives both renderings so they never disagree. */
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{ "last_seq", s->last_seq },
		{ "durable_seq", s->durable_seq },
		{ "applied_seq", s->applied_seq },
		{ "apply_waits", s->apply_waits },
		{ "messages", s->messages },
		{ "messages_unknown", s->messages_unknown },
		{ "messages_bad_length", s->messages_bad_length },
		{ "packets", s->packets },
		{ "packets_bad", s->packets_bad },
		{ "heartbeats", s->heartbeats },
		{ "end_of_session", s->end_of_session },
		{ "packets_other_session", s->packets_other_session },
		{ "messages_delivered", s->messages_delivered },
		{ "duplicates", s->duplicates },
		{ "gaps_detected", s->gaps_detected },
		{ "gap_messages", s->gap_messages },
		{ "gaps_filled", s->gaps_filled },
		{ "gaps_lost", s->gaps_lost },
		{ "lost_messages", s->lost_messages },
		{ "rerequests_sent", s->rerequests_sent },
		{ "packets_reordered", s->packets_reordered },
		{ "reorder_overflow", s->reorder_overflow },
		{ "session_ended", s->session_ended },
		{ "orders", s->orders },
		{ "orders_open", s->orders_open },
		{ "trades", s->trades },
		{ "stocks", s->stocks },
		{ "orders_missing", s->orders_missing },
		{ "wal_segments", s->wal_segments },
		{ "wal_bytes", s->wal_bytes },
		{ "wal_commits", s->wal_commits },
		{ "wal_syncs", s->wal_syncs },
		{ "wal_records", s->wal_records },
		{ "wal_backpressure_waits", s->wal_backpressure_waits },
		{ "wal_io_errors", s->wal_io_errors },
		{ "recovered_records", s->recovered_records },
		{ "recovery_torn_bytes", s->recovery_torn_bytes },
		{ "recovery_ns", s->recovery_ns },
		{ "checkpoint_seq", s->checkpoint_seq },
		{ "tables", s->tables },
		{ "table_bytes", s->table_bytes },
		{ "rotations", s->rotations },
		{ "rotate_waits", s->rotate_waits },
		{ "flushes", s->flushes },
		{ "flush_errors", s->flush_errors },
		{ "flushed_bytes", s->flushed_bytes },
		{ "compactions", s->compactions },
		{ "compaction_errors", s->compaction_errors },
		{ "compaction_running", s->compaction_running },
		{ "compaction_pending", s->compaction_pending },
		{ "compacted_read_bytes", s->compacted_read_bytes },
		{ "compacted_bytes", s->compacted_bytes },
		{ "compaction_dropped", s->compaction_dropped },
		{ "events_retired_tables", s->events_retired_tables },
		{ "events_retired_bytes", s->events_retired_bytes },
		{ "bloom_probes", s->bloom_probes },
		{ "bloom_negatives", s->bloom_negatives },
		{ "bloom_false_positives", s->bloom_false_positives },
		{ "accel_fallbacks", s->accel_fallbacks },
		{ "accel_lost", s->accel_lost },
	};
	/* Bytes written (log + flushed and compacted tables) per byte logged; 0 until this
	 * process wrote anything. */
	double wamp = s->wal_bytes ? (double)(s->wal_bytes + s->flushed_bytes + s->compacted_bytes) /
					     (double)s->wal_bytes
				   : 0.0;
	/* Of the probes of keys a table did not hold, the share its bloom let through. */
	uint64_t absent = s->bloom_negatives + s->bloom_false_positives;
	double fpr = absent ? (double)s->bloom_false_positives / (double)absent : 0.0;
	size_t n = sizeof(f) / sizeof(f[0]);
	if (flags & SL_FORMAT_JSON) {
		put(&o, "{\"session\":\"%s\"", s->session);
		for (size_t i = 0; i < n; i++)
			put(&o, ",\"%s\":%" PRIu64, f[i].name, f[i].v);
		put(&o, ",\"bloom_false_positive_rate\":%.5f", fpr);
		put(&o, ",\"write_amplification\":%.3f,\"levels\":[", wamp);
		for (int l = 0; l < 7; l++)
			put(&o, "%s{\"level\":%d,\"tables\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
			    l ? "," : "", l, s->level_tables[l], s->level_bytes[l]);
		put(&o, "]");
		put(&o, ",\"msg_by_type\":{");
		int first = 1;
		for (int t = 0; t < 128; t++) {
			if (!s->msg_by_type[t])
				continue;
			put(&o, "%s\"%c\":%" PRIu64, first ? "" : ",", t, s->msg_by_type[t]);
			first = 0;
		}
		put(&o, "}}");
	} else {
		put(&o, "%-24s %s\n", "session", s->session[0] ? s->session : "-");
		for (size_t i = 0; i < n; i++)
			put(&o, "%-24s %" PRIu64 "\n", f[i].name, f[i].v);
		put(&o, "%-24s %.3f\n", "write_amplification", wamp);
		put(&o, "%-24s %.5f\n", "bloom_false_positive_rate", fpr);
		for (int l = 0; l < 7; l++)
			if (s->level_tables[l])
				put(&o, "level %d%-16s %" PRIu64 " tables, %" PRIu64 " bytes%s\n", l, "",
				    s->level_tables[l], s->level_bytes[l], l == 6 ? " (events)" : "");
		put(&o, "%-24s", "msg_by_type");
		for (int t = 0; t < 128; t++)
			if (s->msg_by_type[t])
				put(&o, " %c=%" PRIu64, t, s->msg_by_type[t]);
	}
	return finish(&o);
}
