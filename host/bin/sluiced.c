/* sluiced - the appliance daemon: recovers the store in --data, then feeds it from the UDP
 * front end (--udp), the XDP/AF_XDP front end (--xdp) and/or a capture file (--replay),
 * printing progress, until SIGTERM/SIGINT
 * (or the end of the session with --exit-at-end). Parses options, calls libsluice, prints.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repl_node.h"
#include "sluice.h"

/* Cluster options all go to sl__node_config_set under their own names. */
#define OPT_CLUSTER 1000
#define OPT_CLUSTER_CONFIG 1001

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluiced --data DIR [--udp HOST:PORT | --xdp IFACE --feed LINES] [--replay FILE]\n"
		"               [options]\n"
		"  --data DIR            store directory (created if missing)\n"
		"  --udp HOST:PORT       receive MoldUDP64 on this address (multicast groups join)\n"
		"  --xdp IFACE           receive through XDP + AF_XDP on IFACE (root)\n"
		"  --feed ADDR:PORT[,ADDR:PORT]  with --xdp: the feed's lines (A, B); duplicates\n"
		"                        across lines are dropped in XDP\n"
		"  --queues N            with --xdp: rx queues 0..N-1, one socket each (default 1)\n"
		"  --xdp-mode native|generic  with --xdp: where the program runs (default native)\n"
		"  --zero-copy auto|on|off    with --xdp: AF_XDP zero-copy (default auto: falls\n"
		"                        back to copy mode)\n"
		"  --busy-poll           with --xdp: busy-poll the sockets (spins a core)\n"
		"  --replay FILE         ingest a pcap or NASDAQ raw ITCH file first\n"
		"  --port P              with --replay of a pcap: only datagrams to UDP port P\n"
		"  --rerequest HOST:PORT the feed's MoldUDP64 rewinder (gap re-requests)\n"
		"  --gap-timeout-ms MS   give up on an unfilled gap after MS (default 5000)\n"
		"  --segment-mb N        log segment size (default 64)\n"
		"  --memtable-mb N       flush the memtable to tables past N MiB (default 256)\n"
		"  --no-compaction       no background compaction (sluice compact still works)\n"
		"  --retain-mb N         keep at most N MiB of event tables (replay history)\n"
		"  --retain-secs N       drop event tables whose newest event is older than N s\n"
		"  --rcvbuf BYTES        socket receive buffer\n"
		"  --accel MODE          auto (default: planner) | cpu | sim | opencl | xrt\n"
		"  --accel-binary FILE   xclbin or OpenCL program binary to load\n"
		"  --accel-device D      OpenCL platform/device name substring or P:D indexes\n"
		"  --exit-at-end         exit once end-of-session arrived and every gap is closed\n"
		"  --idle-exit-ms MS     exit after MS without datagrams (0 = never)\n"
		"  --stats-ms MS         progress line interval (default 1000, 0 = none)\n"
		"  --no-sync             never fdatasync (measurement only: not durable)\n"
		"  --quiet               no progress lines\n"
		"Cluster mode (README: Replication): the raft log replaces the local WAL\n"
		"  --cluster-id ID --node N --peers 1=HOST:PORT,2=HOST:PORT,... (raft addresses)\n"
		"  --cluster-key-file F  shared key (16..256 bytes); peers without it are refused\n"
		"  --raft-bind HOST:PORT listen for raft here instead of this node's peer address\n"
		"  --data-peers 1=HOST:PORT,... the nodes' snapshot data addresses (default: each\n"
		"                        raft address with port + 1000); --data-bind HOST:PORT\n"
		"                        listen for it here instead\n"
		"  --admin HOST:PORT     GET /status (JSON), POST /cluster/add|remove|transfer\n"
		"  --election-ms MS      raft election timeout (200); --heartbeat-ms MS (50)\n"
		"  --snapshot-entries N  raft entries between snapshots (4096)\n"
		"  --raft-segment-mb N   raft log segment size (64; raft_uv stalls appends briefly\n"
		"                        at each new segment)\n"
		"  --join                a new node, or one whose directory was lost: wait to be\n"
		"                        added (sluice cluster add); it catches up by snapshot\n"
		"  --cluster-config FILE the same as key=value lines\n");
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void progress_line(struct sl_db *db, uint64_t t0, uint64_t base)
{
	struct sl_stats s;
	sl_db_stats(db, &s);
	double secs = (double)(mono_ns() - t0) / 1e9;
	fprintf(stderr,
		"sluiced: %.1fs messages %" PRIu64 " (%.0f/s) durable %" PRIu64 " gaps %" PRIu64
		"/%" PRIu64 " filled, %" PRIu64 " lost, dup %" PRIu64 " orders open %" PRIu64 "\n",
		secs, s.messages - base, secs > 0 ? (double)(s.messages - base) / secs : 0.0,
		s.durable_seq, s.gaps_filled, s.gaps_detected, s.gaps_lost, s.duplicates,
		s.orders_open);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "udp", required_argument, NULL, 'u' },
		{ "replay", required_argument, NULL, 'r' },
		{ "port", required_argument, NULL, 'p' },
		{ "rerequest", required_argument, NULL, 'R' },
		{ "gap-timeout-ms", required_argument, NULL, 'g' },
		{ "segment-mb", required_argument, NULL, 's' },
		{ "memtable-mb", required_argument, NULL, 'm' },
		{ "no-compaction", no_argument, NULL, 'C' },
		{ "retain-mb", required_argument, NULL, 'M' },
		{ "retain-secs", required_argument, NULL, 'T' },
		{ "rcvbuf", required_argument, NULL, 'b' },
		{ "accel", required_argument, NULL, 'a' },
		{ "accel-binary", required_argument, NULL, 'B' },
		{ "accel-device", required_argument, NULL, 'D' },
		{ "exit-at-end", no_argument, NULL, 'e' },
		{ "idle-exit-ms", required_argument, NULL, 'i' },
		{ "stats-ms", required_argument, NULL, 'S' },
		{ "no-sync", no_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "xdp", required_argument, NULL, 'X' },
		{ "feed", required_argument, NULL, 'F' },
		{ "queues", required_argument, NULL, 'Q' },
		{ "xdp-mode", required_argument, NULL, 'O' },
		{ "zero-copy", required_argument, NULL, 'Z' },
		{ "busy-poll", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "cluster-id", required_argument, NULL, OPT_CLUSTER },
		{ "node", required_argument, NULL, OPT_CLUSTER },
		{ "peers", required_argument, NULL, OPT_CLUSTER },
		{ "cluster-key-file", required_argument, NULL, OPT_CLUSTER },
		{ "raft-bind", required_argument, NULL, OPT_CLUSTER },
		{ "data-bind", required_argument, NULL, OPT_CLUSTER },
		{ "raft-segment-mb", required_argument, NULL, OPT_CLUSTER },
		{ "data-peers", required_argument, NULL, OPT_CLUSTER },
		{ "admin", required_argument, NULL, OPT_CLUSTER },
		{ "election-ms", required_argument, NULL, OPT_CLUSTER },
		{ "heartbeat-ms", required_argument, NULL, OPT_CLUSTER },
		{ "snapshot-entries", required_argument, NULL, OPT_CLUSTER },
		{ "join", no_argument, NULL, OPT_CLUSTER },
		{ "cluster-config", required_argument, NULL, OPT_CLUSTER_CONFIG },
		{ 0, 0, 0, 0 },
	};
	struct sl_options o;
	sl_options_init(&o);
	o.flags |= SL_OPEN_CREATE;
	const char *udp = NULL, *replay = NULL;
	struct sl_xsk_config xc;
	sl_xsk_config_init(&xc);
	unsigned long port = 0, rcvbuf = 0, idle_exit_ms = 0, stats_ms = 1000;
	int exit_at_end = 0, quiet = 0, c, li = 0, cluster = 0;
	struct sl_node_config nc = { 0 };
	char *end, *cluster_text = NULL;
	while ((c = getopt_long(argc, argv, "", longopts, &li)) != -1) {
		unsigned long v = 0;
		if (optarg && strchr("pgsbiSmMTQ", c)) {
			v = strtoul(optarg, &end, 10);
			if (*end || !optarg[0]) {
				fprintf(stderr, "sluiced: not a number: %s\n", optarg);
				return 2;
			}
		}
		switch (c) {
		case 'd': o.data_dir = optarg; break;
		case 'u': udp = optarg; break;
		case 'r': replay = optarg; break;
		case 'p': port = v; break;
		case 'R': o.rerequest_addr = optarg; break;
		case 'g': o.gap_give_up_ms = (uint32_t)v; break;
		case 's': o.wal_segment_bytes = (uint64_t)v << 20; break;
		case 'm': o.memtable_bytes = (uint64_t)v << 20; break;
		case 'C': o.compaction = 0; break;
		case 'M': o.event_retain_bytes = (uint64_t)v << 20; break;
		case 'T': o.event_retain_secs = v; break;
		case 'b': rcvbuf = v; break;
		case 'a': o.accel = optarg; break;
		case 'B': o.accel_binary = optarg; break;
		case 'D': o.accel_device = optarg; break;
		case 'e': exit_at_end = 1; break;
		case 'i': idle_exit_ms = v; break;
		case 'S': stats_ms = v; break;
		case 'n': o.flags |= SL_OPEN_NO_SYNC; break;
		case 'q': quiet = 1; break;
		case 'X': xc.ifname = optarg; break;
		case 'F': xc.feed = optarg; break;
		case 'Q': xc.queues = (uint32_t)v; break;
		case 'P': xc.busy_poll = 1; break;
		case 'O':
			if (!strcmp(optarg, "native"))
				xc.mode = SL_XSK_MODE_NATIVE;
			else if (!strcmp(optarg, "generic"))
				xc.mode = SL_XSK_MODE_GENERIC;
			else {
				fprintf(stderr, "sluiced: --xdp-mode is native or generic, not %s\n",
					optarg);
				return 2;
			}
			break;
		case 'Z':
			if (!strcmp(optarg, "auto"))
				xc.zero_copy = SL_XSK_ZC_AUTO;
			else if (!strcmp(optarg, "on"))
				xc.zero_copy = SL_XSK_ZC_ON;
			else if (!strcmp(optarg, "off"))
				xc.zero_copy = SL_XSK_ZC_OFF;
			else {
				fprintf(stderr, "sluiced: --zero-copy is auto, on or off, not %s\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case OPT_CLUSTER:
			if (sl__node_config_set(&nc, longopts[li].name, optarg ? optarg : "1"))
				return 2;
			cluster = 1;
			break;
		case OPT_CLUSTER_CONFIG:
			if (sl__node_config_file(&nc, optarg, &cluster_text))
				return 2;
			cluster = 1;
			break;
		default: usage(stderr); return 2;
		}
	}
	if (!o.data_dir || optind != argc || (!udp && !replay && !xc.ifname && !cluster) ||
	    port > 65535 || (udp && xc.ifname)) {
		usage(stderr);
		return 2;
	}
	if (xc.ifname && !xc.feed) {
		fprintf(stderr, "sluiced: --xdp needs --feed ADDR:PORT[,ADDR:PORT]\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* The XDP front end first: where it cannot work, say why before touching the store. */
	struct sl_xsk *x = NULL;
	if (xc.ifname) {
		char why[256];
		int xr = sl_xsk_open(&xc, &x, why, sizeof(why));
		if (xr < 0) {
			fprintf(stderr, "sluiced: --xdp %s: %s (%s); the UDP front end (--udp) needs "
				"none of this\n", xc.ifname, why, sl_strerror(xr));
			return 1;
		}
	}
	struct sl_db *db = NULL;
	struct sl_node *node = NULL;
	uint64_t t0 = mono_ns();
	int r = cluster ? sl__node_open(&nc, &o, &node) : sl_db_open(&o, &db);
	if (node)
		db = sl__node_db(node);
	if (r < 0) {
		fprintf(stderr, "sluiced: opening %s: %s\n", o.data_dir, sl_strerror(r));
		sl_xsk_close(x);
		return 1;
	}
	struct sl_stats s;
	sl_db_stats(db, &s);
	fprintf(stderr,
		"sluiced: %s recovered %" PRIu64 " records in %.3f s (torn tail %" PRIu64
		" bytes); durable seq %" PRIu64 "\n",
		o.data_dir, s.recovered_records, (double)s.recovery_ns / 1e9,
		s.recovery_torn_bytes, s.durable_seq);
	uint64_t base = s.messages;
	int rc = 0;
	t0 = mono_ns();
	if (replay) {
		r = sl_db_ingest_file(db, replay, (uint16_t)port, NULL, NULL);
		if (r < 0) {
			fprintf(stderr, "sluiced: replaying %s: %s\n", replay, sl_strerror(r));
			rc = 1;
		}
	}
	struct sl_udp *u = NULL;
	if (udp && !rc) {
		r = sl_udp_open(udp, (uint32_t)rcvbuf, &u);
		if (r < 0) {
			fprintf(stderr, "sluiced: listening on %s: %s\n", udp, sl_strerror(r));
			rc = 1;
		} else if (!quiet) {
			fprintf(stderr, "sluiced: listening on %s%s%s\n", udp,
				o.rerequest_addr ? ", re-requests to " : "",
				o.rerequest_addr ? o.rerequest_addr : "");
		}
	}
	if (x && !quiet) {
		struct sl_xsk_stats xs;
		sl_xsk_get_stats(x, &xs);
		fprintf(stderr, "sluiced: listening on %s with XDP (%s mode, %s, %u queue%s, %u-byte "
			"frames%s) for %s%s%s\n", xc.ifname,
			xs.mode == SL_XSK_MODE_GENERIC ? "generic" : "native",
			xs.zero_copy ? "zero-copy" : "copy", xs.queues, xs.queues == 1 ? "" : "s",
			xs.frame_size, xc.busy_poll ? ", busy polling" : "", xc.feed,
			o.rerequest_addr ? ", re-requests to " : "",
			o.rerequest_addr ? o.rerequest_addr : "");
	}
	uint64_t last_stats = mono_ns(), last_rx = mono_ns();
	while ((u || x || node) && !stop_requested) {
		r = u ? sl_udp_pump(u, db, 50)
		      : x ? sl_xsk_pump(x, db, 50)
			  : (usleep(5000), sl_db_tick(db));
		if (r < 0) {
			fprintf(stderr, "sluiced: %s\n", sl_strerror(r));
			rc = 1;
			break;
		}
		uint64_t now = mono_ns();
		if (r > 0)
			last_rx = now;
		if (!quiet && stats_ms && now - last_stats >= stats_ms * 1000000ull) {
			progress_line(db, t0, base);
			last_stats = now;
		}
		if (exit_at_end) {
			sl_db_stats(db, &s);
			if (s.session_ended)
				break;
		}
		if (idle_exit_ms && now - last_rx >= idle_exit_ms * 1000000ull)
			break;
	}
	/* Shutdown: everything received is made durable before we say goodbye (in a cluster:
	 * what the group committed; the rest is the feed's to resend to the next leader). */
	sl_db_sync(db);
	r = sl_db_wait_durable(db, node ? sl_db_durable_seq(db) : sl_db_last_seq(db),
			       10ll * 1000000000);
	if (r < 0) {
		fprintf(stderr, "sluiced: final sync: %s\n", sl_strerror(r));
		rc = 1;
	}
	if (!quiet || rc)
		progress_line(db, t0, base);
	sl_db_stats(db, &s);
	double secs = (double)(mono_ns() - t0) / 1e9;
	printf("sluiced: summary: session %s, %" PRIu64 " messages in %.2f s (%.0f msg/s), durable "
	       "seq %" PRIu64 ", packets %" PRIu64 ", duplicates %" PRIu64 ", gaps %" PRIu64
	       " detected / %" PRIu64 " filled / %" PRIu64 " lost, re-requests %" PRIu64
	       ", in the memtable now: orders %" PRIu64 " (%" PRIu64 " open), trades %" PRIu64 "\n",
	       s.session[0] ? s.session : "-", s.messages - base, secs,
	       secs > 0 ? (double)(s.messages - base) / secs : 0.0, s.durable_seq, s.packets,
	       s.duplicates, s.gaps_detected, s.gaps_filled, s.gaps_lost, s.rerequests_sent,
	       s.orders, s.orders_open, s.trades);
	if (u) {
		struct sl_udp_stats us;
		sl_udp_get_stats(u, &us);
		printf("sluiced: udp: %" PRIu64 " datagrams in %" PRIu64 " recvmmsg batches, kernel "
		       "drops %" PRIu64 "\n",
		       us.datagrams, us.batches, us.kernel_drops);
	}
	if (x) {
		struct sl_xsk_stats xs;
		sl_xsk_get_stats(x, &xs);
		printf("sluiced: xdp: %" PRIu64 " packets in %" PRIu64 " batches, %" PRIu64
		       " fill-ring wakeups; program: seen %"
		       PRIu64 ", steered %" PRIu64 ", passed %" PRIu64 ", malformed %" PRIu64
		       ", duplicates dropped %" PRIu64 ", no socket %" PRIu64 ", fragments %" PRIu64
		       "; socket drops %" PRIu64 " (ring full %" PRIu64 ", fill ring empty %" PRIu64
		       ", invalid %" PRIu64 ")\n",
		       xs.packets, xs.batches, xs.wakeups, xs.xdp_seen, xs.xdp_steered, xs.xdp_passed,
		       xs.xdp_malformed, xs.xdp_duplicates, xs.xdp_no_socket, xs.xdp_fragments,
		       xs.rx_dropped, xs.rx_ring_full, xs.rx_fill_ring_empty, xs.rx_invalid_descs);
	}
	sl_xsk_close(x);
	sl_udp_close(u);
	r = node ? sl__node_close(node) : sl_db_close(db);
	free(cluster_text);
	if (r < 0) {
		fprintf(stderr, "sluiced: closing: %s\n", sl_strerror(r));
		rc = 1;
	}
	return rc;
}
