/* sluice - the operator CLI: ingest a capture, look up orders and trades, replay events,
 * verify checksums, show statistics. Every subcommand takes --data DIR right after its name.
 * Parses options, calls libsluice, prints.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "sluice.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice COMMAND --data DIR [args]\n"
		"  sluice ingest --data DIR FILE [--port P] [--accel MODE] [--memtable-mb N]\n"
		"        [--no-compaction] [--retain-mb N] [--retain-secs N] [--no-sync] [--quiet]\n"
		"        ingest a pcap (MoldUDP64 over UDP) or a NASDAQ raw ITCH file\n"
		"  sluice get --data DIR order LOCATE REF [--json]\n"
		"  sluice get --data DIR orders LOCATE:REF... [--json]   (one batched lookup)\n"
		"  sluice get --data DIR trade MATCH [--json]\n"
		"  sluice get --data DIR stock LOCATE [--json]\n"
		"  sluice scan --data DIR orders|trades LOCATE [--from NS] [--to NS] [--count N]\n"
		"        [--json]   a stock's orders (by add time) or trades in a time range\n"
		"  sluice replay --data DIR [--from SEQ] [--count N] [--json]\n"
		"  sluice compact --data DIR [--accel MODE]   full compaction (sluiced stopped)\n"
		"  sluice verify --data DIR\n"
		"  sluice accel [--json]   accelerator backends, calibration and routing\n"
		"every command also takes --accel=MODE (auto, cpu, sim, opencl, xrt),\n"
		"  --accel-binary FILE (xclbin or OpenCL binary), --accel-device NAME|P:D\n"
		"  sluice stats --data DIR [--json]\n"
		"  sluice version\n"
		"  sluice cluster status --admin HOST:PORT [--json]   roles, sequences, follower lag\n"
		"  sluice cluster add --admin HOST:PORT ID RAFT_HOST:PORT   add, then promote\n"
		"  sluice cluster remove --admin HOST:PORT ID\n"
		"  sluice cluster transfer --admin HOST:PORT [ID]   hand leadership over\n"
		"  sluice get --admin HOST:PORT order LOCATE REF | trade MATCH   a running node's\n"
		"  sluice replay --admin HOST:PORT --from SEQ [--count N]    answer (JSON, with the\n"
		"                        applied_seq it reflects; followers answer too)\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (!s[0] || *end || errno || s[0] == '-') {
		fprintf(stderr, "sluice: not a number: %s\n", s);
		return -1;
	}
	*v = x;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Common: `--data DIR` right after the command name; the rest is returned in argc/argv. */
static int take_data(int *argc, char ***argv, const char **dir)
{
	if (*argc < 3 || strcmp((*argv)[1], "--data")) {
		fprintf(stderr, "sluice %s: --data DIR must come right after the command\n",
			(*argv)[0]);
		return -1;
	}
	*dir = (*argv)[2];
	*argc -= 3;
	*argv += 3;
	return 0;
}

static int has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], flag))
			return 1;
	return 0;
}

/* --accel, --accel-binary and --accel-device, taken out of argv by main for every command. */
static const char *g_accel, *g_accel_binary, *g_accel_device;

static void accel_options(struct sl_options *o)
{
	if (g_accel)
		o->accel = g_accel;
	o->accel_binary = g_accel_binary;
	o->accel_device = g_accel_device;
}

/* Strip the accelerator options (--accel MODE, --accel=MODE, ...) from argv; -1 on a missing
 * value. */
static int take_accel(int *argc, char **argv)
{
	int w = 0;
	for (int i = 0; i < *argc; i++) {
		const char **slot = NULL;
		const char *v = NULL;
		static const struct {
			const char *flag;
			const char **slot;
		} f[] = { { "--accel", &g_accel },
			  { "--accel-binary", &g_accel_binary },
			  { "--accel-device", &g_accel_device } };
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]) && !slot; k++) {
			size_t n = strlen(f[k].flag);
			if (!strcmp(argv[i], f[k].flag)) {
				if (i + 1 >= *argc) {
					fprintf(stderr, "sluice: %s needs a value\n", f[k].flag);
					return -1;
				}
				slot = f[k].slot;
				v = argv[++i];
			} else if (!strncmp(argv[i], f[k].flag, n) && argv[i][n] == '=') {
				slot = f[k].slot;
				v = argv[i] + n + 1;
			}
		}
		if (slot)
			*slot = v;
		else
			argv[w++] = argv[i];
	}
	*argc = w;
	return 0;
}

static int open_ro(const char *dir, struct sl_db **db)
{
	struct sl_options o;
	sl_options_init(&o);
	accel_options(&o);
	o.data_dir = dir;
	o.flags = SL_OPEN_RDONLY;
	int r = sl_db_open(&o, db);
	if (r < 0)
		fprintf(stderr, "sluice: opening %s: %s\n", dir, sl_strerror(r));
	return r;
}

struct bar {
	uint64_t t0, last;
	int tty, quiet;
};

static void on_progress(void *arg, const struct sl_ingest_progress *p)
{
	struct bar *b = arg;
	uint64_t now = mono_ns();
	if (b->quiet || (!p->done && now - b->last < 200000000ull))
		return;
	b->last = now;
	double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
	int width = 30, fill = (int)(frac * width);
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	double secs = (double)(now - b->t0) / 1e9;
	fprintf(stderr, "%s[%s] %5.1f%% %" PRIu64 " records %.0f/s%s", b->tty ? "\r" : "", bar,
		frac * 100, p->records, secs > 0 ? (double)p->records / secs : 0.0,
		b->tty && !p->done ? "" : "\n");
}

static int cmd_ingest(int argc, char **argv)
{
	const char *dir, *file = NULL;
	if (take_data(&argc, &argv, &dir))
		return 2;
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = dir;
	o.flags = SL_OPEN_CREATE;
	accel_options(&o);
	uint64_t port = 0;
	int quiet = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			if (parse_u64(argv[++i], &port) || port > 65535)
				return 2;
		} else if (!strcmp(argv[i], "--no-sync")) {
			o.flags |= SL_OPEN_NO_SYNC;
		} else if (!strcmp(argv[i], "--memtable-mb") && i + 1 < argc) {
			uint64_t mb;
			if (parse_u64(argv[++i], &mb) || mb > (1u << 20))
				return 2;
			o.memtable_bytes = mb << 20;
		} else if (!strcmp(argv[i], "--no-compaction")) {
			o.compaction = 0;
		} else if (!strcmp(argv[i], "--retain-mb") && i + 1 < argc) {
			uint64_t mb;
			if (parse_u64(argv[++i], &mb) || mb > (1ull << 40))
				return 2;
			o.event_retain_bytes = mb << 20;
		} else if (!strcmp(argv[i], "--retain-secs") && i + 1 < argc) {
			if (parse_u64(argv[++i], &o.event_retain_secs))
				return 2;
		} else if (!strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else if (argv[i][0] != '-' && !file) {
			file = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!file) {
		usage(stderr);
		return 2;
	}
	struct sl_db *db;
	int r = sl_db_open(&o, &db);
	if (r < 0) {
		fprintf(stderr, "sluice: opening %s: %s\n", dir, sl_strerror(r));
		return 1;
	}
	struct sl_stats s0, s;
	sl_db_stats(db, &s0);
	struct bar b = { .t0 = mono_ns(), .tty = isatty(2), .quiet = quiet };
	int rc = 0;
	r = sl_db_ingest_file(db, file, (uint16_t)port, on_progress, &b);
	if (r < 0) {
		fprintf(stderr, "sluice: ingesting %s: %s\n", file, sl_strerror(r));
		rc = 1;
	}
	sl_db_sync(db);
	int w = sl_db_wait_durable(db, sl_db_last_seq(db), -1);
	/* A bulk load ends in tables: the next open replays no log, and the shape of the store
	 * depends on the data and --memtable-mb only, not on how far the flush thread got. */
	if (w == 0 && o.memtable_bytes && (w = sl_db_flush(db)) < 0)
		fprintf(stderr, "sluice: flushing the memtable: %s\n", sl_strerror(w));
	double secs = (double)(mono_ns() - b.t0) / 1e9;
	sl_db_stats(db, &s);
	uint64_t n = s.messages - s0.messages;
	printf("ingested %s: %" PRIu64 " messages in %.3f s (%.0f msg/s durable), packets %" PRIu64
	       ", gaps %" PRIu64 " (%" PRIu64 " messages lost), duplicates %" PRIu64
	       ", unknown %" PRIu64 ", bad length %" PRIu64 ", durable seq %" PRIu64 "\n",
	       file, n, secs, secs > 0 ? (double)n / secs : 0.0, s.packets, s.gaps_detected,
	       s.lost_messages, s.duplicates, s.messages_unknown, s.messages_bad_length,
	       s.durable_seq);
	if (w < 0) {
		fprintf(stderr, "sluice: sync: %s\n", sl_strerror(w));
		rc = 1;
	}
	if ((r = sl_db_close(db)) < 0) {
		fprintf(stderr, "sluice: closing: %s\n", sl_strerror(r));
		rc = 1;
	}
	return rc;
}

/* LOCATE:REF... looked up in one sl_db_get_orders call; one line per key, in order. */
static int get_orders(const char *dir, int n, char **keys, int json)
{
	uint16_t *loc = calloc((size_t)n, sizeof(*loc));
	uint64_t *ref = calloc((size_t)n, sizeof(*ref));
	struct sl_order *out = calloc((size_t)n, sizeof(*out));
	int *rc = calloc((size_t)n, sizeof(*rc));
	int ret = 2;
	if (!loc || !ref || !out || !rc) {
		fprintf(stderr, "sluice: out of memory\n");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		char *colon = strchr(keys[i], ':');
		uint64_t l;
		if (!colon) {
			fprintf(stderr, "sluice: expected LOCATE:REF, got %s\n", keys[i]);
			goto out;
		}
		*colon = 0;
		if (parse_u64(keys[i], &l) || l > 65535 || parse_u64(colon + 1, &ref[i]))
			goto out;
		loc[i] = (uint16_t)l;
	}
	struct sl_db *db;
	ret = 1;
	if (open_ro(dir, &db) < 0)
		goto out;
	int r = sl_db_get_orders(db, (size_t)n, loc, ref, out, rc);
	ret = r ? 1 : 0;
	for (int i = 0; !r && i < n; i++) {
		char line[2048];
		if (rc[i] == 0) {
			sl_order_format(&out[i], json, line, sizeof(line));
			puts(line);
		} else {
			printf(json ? "{\"locate\":%u,\"ref\":%" PRIu64 ",\"error\":\"%s\"}\n"
				    : "order %u %" PRIu64 ": %s\n",
			       loc[i], ref[i], sl_strerror(rc[i]));
			if (rc[i] != SL_ENOTFOUND)
				ret = 1;
		}
	}
	sl_db_close(db);
out:
	free(loc);
	free(ref);
	free(out);
	free(rc);
	return ret;
}

/* A read from a running node's admin endpoint: prints its JSON answer. */
static int remote_read(const char *admin, const char *path)
{
	static char body[1u << 17];
	int status = 0;
	int r = sl__http_request(admin, "GET", path, body, sizeof(body), &status, 20000);
	if (r < 0) {
		fprintf(stderr, "sluice: %s: %s\n", admin, sl_strerror(r));
		return 1;
	}
	fputs(body, status == 200 ? stdout : stderr);
	return status == 200 ? 0 : 1;
}

static int cmd_get(int argc, char **argv)
{
	const char *dir;
	char path[256];
	if (argc >= 3 && !strcmp(argv[1], "--admin")) {
		uint64_t a = 0, b = 0;
		if (argc == 6 && !strcmp(argv[3], "order") && !parse_u64(argv[4], &a) &&
		    !parse_u64(argv[5], &b) && a <= 65535)
			snprintf(path, sizeof(path), "/order?locate=%" PRIu64 "&ref=%" PRIu64, a, b);
		else if (argc == 5 && !strcmp(argv[3], "trade") && !parse_u64(argv[4], &a))
			snprintf(path, sizeof(path), "/trade?match=%" PRIu64, a);
		else {
			usage(stderr);
			return 2;
		}
		return remote_read(argv[2], path);
	}
	if (take_data(&argc, &argv, &dir))
		return 2;
	int json = has_flag(argc, argv, "--json") ? SL_FORMAT_JSON : 0;
	if (json)
		argc--; /* --json is last or absent in every valid form below */
	if (argc >= 2 && !strcmp(argv[0], "orders"))
		return get_orders(dir, argc - 1, argv + 1, json);
	uint64_t a = 0, b = 0;
	if (argc == 3 && !strcmp(argv[0], "order")) {
		if (parse_u64(argv[1], &a) || parse_u64(argv[2], &b) || a > 65535)
			return 2;
	} else if (argc == 2 && (!strcmp(argv[0], "trade") || !strcmp(argv[0], "stock"))) {
		if (parse_u64(argv[1], &a) || (argv[0][0] == 's' && a > 65535))
			return 2;
	} else {
		usage(stderr);
		return 2;
	}
	struct sl_db *db;
	if (open_ro(dir, &db) < 0)
		return 1;
	char line[2048];
	int r;
	if (argv[0][0] == 'o') {
		struct sl_order ord;
		r = sl_db_get_order(db, (uint16_t)a, b, &ord);
		if (!r)
			sl_order_format(&ord, json, line, sizeof(line));
	} else if (argv[0][0] == 't') {
		struct sl_trade t;
		r = sl_db_get_trade(db, a, &t);
		if (!r)
			sl_trade_format(&t, json, line, sizeof(line));
	} else {
		struct sl_stock st;
		r = sl_db_get_stock(db, (uint16_t)a, &st);
		if (!r)
			snprintf(line, sizeof(line),
				 json ? "{\"locate\":%u,\"stock\":\"%s\",\"market_category\":\"%c\","
					"\"round_lot_size\":%u,\"trading_state\":\"%c\"}"
				      : "stock %u %s category %c round lot %u state %c",
				 st.locate, st.stock, st.market_category, st.round_lot_size,
				 st.trading_state);
	}
	sl_db_close(db);
	if (r == SL_ENOTFOUND) {
		fprintf(stderr, "sluice: %s not found\n", argv[0]);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "sluice: %s\n", sl_strerror(r));
		return 1;
	}
	puts(line);
	return 0;
}

static int cmd_replay(int argc, char **argv)
{
	const char *dir;
	if (argc >= 3 && !strcmp(argv[1], "--admin")) {
		uint64_t from = 0, cnt = 1000;
		int ok = 1;
		for (int i = 3; i < argc && ok; i++) {
			if (!strcmp(argv[i], "--from") && i + 1 < argc)
				ok = !parse_u64(argv[++i], &from);
			else if (!strcmp(argv[i], "--count") && i + 1 < argc)
				ok = !parse_u64(argv[++i], &cnt);
			else
				ok = 0;
		}
		if (!ok || !from) {
			usage(stderr);
			return 2;
		}
		char path[256];
		snprintf(path, sizeof(path), "/replay?from=%" PRIu64 "&count=%" PRIu64, from, cnt);
		return remote_read(argv[2], path);
	}
	if (take_data(&argc, &argv, &dir))
		return 2;
	uint64_t from = 0, cnt = UINT64_MAX; /* 0: the oldest retained */
	int json = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc) {
			if (parse_u64(argv[++i], &from))
				return 2;
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (parse_u64(argv[++i], &cnt))
				return 2;
		} else if (!strcmp(argv[i], "--json")) {
			json = SL_FORMAT_JSON;
		} else {
			usage(stderr);
			return 2;
		}
	}
	struct sl_db *db;
	if (open_ro(dir, &db) < 0)
		return 1;
	struct sl_iter *it;
	int r = sl_iter_open(db, from, &it);
	char line[2048];
	uint64_t n = 0;
	while (r == 0 && n < cnt) {
		struct sl_event ev;
		r = sl_iter_next(it, &ev);
		if (r)
			break;
		sl_event_format(&ev, json, line, sizeof(line));
		puts(line);
		n++;
	}
	sl_iter_close(it);
	sl_db_close(db);
	if (r && r != SL_EEND) {
		fprintf(stderr, "sluice: replay stopped after %" PRIu64 " events: %s\n", n,
			sl_strerror(r));
		return 1;
	}
	return 0;
}

static int cmd_scan(int argc, char **argv)
{
	const char *dir;
	if (take_data(&argc, &argv, &dir))
		return 2;
	uint64_t loc, from = 0, to = 0, cnt = UINT64_MAX;
	int json = 0;
	if (argc < 2 || (strcmp(argv[0], "orders") && strcmp(argv[0], "trades")) ||
	    parse_u64(argv[1], &loc) || loc > 65535) {
		usage(stderr);
		return 2;
	}
	int kind = argv[0][0] == 'o' ? SL_SCAN_ORDERS : SL_SCAN_TRADES;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc) {
			if (parse_u64(argv[++i], &from))
				return 2;
		} else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
			if (parse_u64(argv[++i], &to))
				return 2;
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (parse_u64(argv[++i], &cnt))
				return 2;
		} else if (!strcmp(argv[i], "--json")) {
			json = SL_FORMAT_JSON;
		} else {
			usage(stderr);
			return 2;
		}
	}
	struct sl_db *db;
	if (open_ro(dir, &db) < 0)
		return 1;
	struct sl_scan *sc;
	int r = sl_scan_open(db, kind, (uint16_t)loc, from, to, &sc);
	uint64_t n = 0, bad = 0;
	char line[2048];
	while (r == 0 && n < cnt) {
		if (kind == SL_SCAN_ORDERS) {
			struct sl_order o;
			r = sl_scan_next_order(sc, &o);
			if (r == 0)
				sl_order_format(&o, json, line, sizeof(line));
		} else {
			struct sl_trade t;
			r = sl_scan_next_trade(sc, &t);
			if (r == 0)
				sl_trade_format(&t, json, line, sizeof(line));
		}
		if (r == SL_ECORRUPT) {
			bad++; /* named on stderr; the scan goes on past the damaged table */
			r = 0;
			continue;
		}
		if (r == 0) {
			puts(line);
			n++;
		}
	}
	if (sc)
		sl_scan_close(sc);
	sl_db_close(db);
	if (r && r != SL_EEND) {
		fprintf(stderr, "sluice: scan stopped after %" PRIu64 " records: %s\n", n,
			sl_strerror(r));
		return 1;
	}
	if (bad) {
		fprintf(stderr, "sluice: scan: %" PRIu64 " damaged table range(s) skipped\n", bad);
		return 1;
	}
	return 0;
}

static int cmd_compact(int argc, char **argv)
{
	const char *dir;
	if (take_data(&argc, &argv, &dir))
		return 2;
	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = dir;
	o.compaction = 0; /* only the full compaction asked for */
	accel_options(&o);
	if (argc) {
		usage(stderr);
		return 2;
	}
	struct sl_db *db;
	int r = sl_db_open(&o, &db);
	if (r < 0) {
		fprintf(stderr, "sluice: opening %s: %s\n", dir, sl_strerror(r));
		return 1;
	}
	struct sl_stats a, b;
	sl_db_stats(db, &a);
	uint64_t t0 = mono_ns();
	r = sl_db_compact(db);
	double secs = (double)(mono_ns() - t0) / 1e9;
	sl_db_stats(db, &b);
	int rc = 0;
	if (r < 0) {
		fprintf(stderr, "sluice: compacting %s: %s (the store is unchanged)\n", dir,
			sl_strerror(r));
		rc = 1;
	} else {
		uint64_t sa = 0, sb = 0;
		for (int l = 0; l < 6; l++) {
			sa += a.level_bytes[l];
			sb += b.level_bytes[l];
		}
		printf("compacted %s in %.3f s: state tables %" PRIu64 " -> %" PRIu64 " (%" PRIu64
		       " -> %" PRIu64 " bytes), read %" PRIu64 " bytes, wrote %" PRIu64
		       ", dropped %" PRIu64 " entries (shadowed versions and final orders)\n",
		       dir, secs, a.tables - a.level_tables[6], b.tables - b.level_tables[6], sa, sb,
		       b.compacted_read_bytes, b.compacted_bytes, b.compaction_dropped);
	}
	if ((r = sl_db_close(db)) < 0) {
		fprintf(stderr, "sluice: closing: %s\n", sl_strerror(r));
		rc = 1;
	}
	return rc;
}

static int cmd_accel(int argc, char **argv)
{
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = SL_FORMAT_JSON;
		} else {
			usage(stderr);
			return 2;
		}
	}
	char *buf = malloc(1 << 16);
	if (!buf)
		return 1;
	int r = sl_accel_report(g_accel, g_accel_binary, g_accel_device, json, buf, 1 << 16);
	if (r == 0)
		puts(buf);
	else
		fprintf(stderr, "sluice: accel: %s\n", sl_strerror(r));
	free(buf);
	return r ? 1 : 0;
}

static int cmd_verify(int argc, char **argv)
{
	const char *dir;
	if (take_data(&argc, &argv, &dir))
		return 2;
	if (argc) {
		usage(stderr);
		return 2;
	}
	char path[4096];
	uint64_t off = 0, records = 0, torn = 0;
	int r = sl_verify(dir, path, sizeof(path), &off, &records, &torn);
	if (r < 0) {
		if (path[0])
			printf("verify: FAILED: %s at offset %" PRIu64 ": %s\n", path, off,
			       sl_strerror(r));
		else
			printf("verify: FAILED: %s: %s\n", dir, sl_strerror(r));
		return 1;
	}
	printf("verify: ok: %" PRIu64 " log records, the manifest and every table block: every "
	       "CRC32C matches", records);
	if (torn)
		printf(" (torn tail of %" PRIu64 " bytes after the last record, repaired at next "
		       "open)", torn);
	printf("\n");
	return 0;
}

static int cmd_stats(int argc, char **argv)
{
	const char *dir;
	if (take_data(&argc, &argv, &dir))
		return 2;
	int json = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = SL_FORMAT_JSON;
		} else {
			usage(stderr);
			return 2;
		}
	}
	struct sl_db *db;
	if (open_ro(dir, &db) < 0)
		return 1;
	struct sl_stats s;
	sl_db_stats(db, &s);
	sl_db_close(db);
	char buf[8192];
	sl_stats_format(&s, json, buf, sizeof(buf));
	puts(buf);
	return 0;
}

/* sluice cluster SUB --admin HOST:PORT ...: one request to a node's admin endpoint. */
static int cmd_cluster(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "", *admin = NULL, *args[2] = { NULL, NULL };
	int json = 0, nargs = 0;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--admin") && i + 1 < argc)
			admin = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (nargs < 2 && argv[i][0] != '-')
			args[nargs++] = argv[i];
		else
			admin = NULL, i = argc; /* unknown: usage below */
	}
	char path[512];
	const char *method = "POST";
	if (!strcmp(sub, "status") && !nargs) {
		method = "GET";
		snprintf(path, sizeof(path), "/status%s", json ? "" : "?format=text");
	} else if (!strcmp(sub, "add") && nargs == 2) {
		snprintf(path, sizeof(path), "/cluster/add?id=%s&address=%s", args[0], args[1]);
	} else if (!strcmp(sub, "remove") && nargs == 1) {
		snprintf(path, sizeof(path), "/cluster/remove?id=%s", args[0]);
	} else if (!strcmp(sub, "transfer") && nargs <= 1) {
		snprintf(path, sizeof(path), "/cluster/transfer%s%s", nargs ? "?id=" : "",
			 nargs ? args[0] : "");
	} else {
		admin = NULL;
	}
	if (!admin) {
		usage(stderr);
		return 2;
	}
	static char body[65536];
	int status = 0;
	int r = sl__http_request(admin, method, path, body, sizeof(body), &status, 20000);
	if (r < 0) {
		fprintf(stderr, "sluice: cluster %s: %s: %s\n", sub, admin, sl_strerror(r));
		return 1;
	}
	fputs(body, status == 200 ? stdout : stderr);
	return status == 200 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (take_accel(&argc, argv))
		return 2;
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	argc--;
	argv++;
	if (!strcmp(cmd, "accel"))
		return cmd_accel(argc, argv);
	if (!strcmp(cmd, "ingest"))
		return cmd_ingest(argc, argv);
	if (!strcmp(cmd, "get"))
		return cmd_get(argc, argv);
	if (!strcmp(cmd, "replay"))
		return cmd_replay(argc, argv);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc, argv);
	if (!strcmp(cmd, "scan"))
		return cmd_scan(argc, argv);
	if (!strcmp(cmd, "compact"))
		return cmd_compact(argc, argv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "cluster"))
		return cmd_cluster(argc, argv);
	if (!strcmp(cmd, "version")) {
		printf("sluice %s\n", sl_version());
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "sluice: unknown command %s\n", cmd);
	usage(stderr);
	return 2;
}
