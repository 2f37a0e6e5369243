/* bench_xdp.c - the XDP/AF_XDP front end against the recvmmsg UDP front end, in one veth setup
 * and one run: packets/s and messages/s received into the durable log, and CPU per million
 * messages. The generator is not the bottleneck: xdp/feedgen.bpf.c runs under BPF_PROG_TEST_RUN
 * in live-frame mode and redirects stamped copies of one real MoldUDP64 packet out of the veth
 * peer, so frames enter the appliance's end as they would from a NIC, with no sender socket in
 * the way. The appliance side runs in a child process in a network namespace of its own.
 * Flow control: the generator keeps at most --window packets ahead of what the engine has
 * appended (the rx ring holds 2048 frames), so no front end loses a packet and both are timed
 * on the same work. A benchmark, never a test; needs root.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define BENCH_NAME "bench_xdp"
#include "bench_common.h"
#include "feedgen.skel.h"
#include "mold.h"

#define PORT_A 26477
#define PORT_B 26478
#define MAX_RUNS 9
static uint64_t CHUNK = 1u << 20; /* program runs per BPF_PROG_TEST_RUN call (--chunk) */

enum mode { M_UDP, M_XDP_POLL, M_XDP_BUSY, M_XDP_AB, M_UDP_RAW, M_XDP_RAW, M_COUNT };
static const char *const mode_name[M_COUNT] = { "udp",	  "xdp",     "xdp-busy",
						"xdp-ab", "udp-raw", "xdp-raw" };
static const char *const mode_desc[M_COUNT] = {
	"recvmmsg UDP front end (64/call)",
	"AF_XDP copy mode, poll()",
	"AF_XDP copy mode, busy poll",
	"AF_XDP copy mode, poll(), A+B lines",
	"front end alone: recvmmsg, packets discarded",
	"front end alone: AF_XDP poll(), frames discarded",
};

static int is_raw(int m)
{
	return m == M_UDP_RAW || m == M_XDP_RAW;
}

struct config {
	uint64_t messages;
	int runs;
	uint32_t window;
	const char *dir;
	int modes[M_COUNT];
	int json;
};

/* Written by the receiver child, read by the generator: a MAP_SHARED page. */
struct shared {
	volatile int state;         /* 0 starting, 1 ready, 2 done, -1 failed */
	char why[256];
	double secs;                /* first packet received .. last message durable */
	double cpu_s;               /* the receiver process, all its threads */
	uint64_t packets, messages, lost, duplicates, xdp_dups, socket_drops;
};

struct result {
	double secs, cpu_s, machine_cpu_s;
	uint64_t packets, messages, lost, duplicates, xdp_dups, socket_drops;
};

static char g_ns[32], g_gen_if[IFNAMSIZ], g_rx_if[IFNAMSIZ];

/* ---- Network set-up ---------------------------------------------------------------------- */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		die(cmd, "failed");
}

static void net_down(void)
{
	if (!g_ns[0])
		return;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null",
		 g_ns, g_gen_if);
	if (system(cmd)) {
		/* Nothing more to do: both may be gone already. */
	}
	g_ns[0] = 0;
}

static void on_signal(int sig)
{
	net_down();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* A veth pair: the generator's end in this namespace (no address: frames are made by hand),
 * the appliance's end in a namespace of its own with 10.78.0.2/24. Fixed MACs so the template
 * frame can be addressed before the child exists. */
static void net_up(void)
{
	snprintf(g_ns, sizeof(g_ns), "slb%d", (int)getpid());
	snprintf(g_gen_if, sizeof(g_gen_if), "slbg%d", (int)getpid());
	snprintf(g_rx_if, sizeof(g_rx_if), "slbr%d", (int)getpid());
	atexit(net_down);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	sh("ip netns add %s", g_ns);
	sh("ip link add %s address 02:00:00:00:00:01 type veth peer name %s address "
	   "02:00:00:00:00:02 netns %s",
	   g_gen_if, g_rx_if, g_ns);
	sh("ip -n %s addr add 10.78.0.2/24 dev %s && ip -n %s link set lo up && "
	   "ip -n %s link set %s up && ip link set %s up",
	   g_ns, g_rx_if, g_ns, g_ns, g_rx_if, g_gen_if);
}

/* ---- The template frame -------------------------------------------------------------------- */

static uint16_t ip_csum(const uint8_t *h, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(h[i] << 8 | h[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Ethernet / IPv4 / UDP (checksum 0) around one MoldUDP64 packet of the synthetic session taken
 * from its steady state (order adds, executions, cancels, ...). Returns the frame length and
 * the packet's message count in *count. */
static size_t make_frame(uint8_t *f, uint16_t *count)
{
	struct sl_feed_config fc;
	struct sl_feed *feed;
	sl__feed_config_init(&fc);
	fc.messages = 200000;
	if (sl__feed_new(&fc, &feed) < 0)
		die("feed", "cannot create");
	uint8_t pkt[2048];
	uint64_t first = 0;
	int len = 0;
	for (int i = 0; i < 100; i++)
		len = sl__feed_next_packet(feed, pkt, sizeof(pkt), &first, count);
	sl__feed_free(feed);
	if (len <= 0)
		die("feed", "no packet");
	static const uint8_t eth[14] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00 };
	memcpy(f, eth, 14);
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint16_t ulen = (uint16_t)(8 + len), tot = (uint16_t)(20 + ulen);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[6] = 0x40; /* don't fragment */
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, "\x0a\x4e\x00\x01\x0a\x4e\x00\x02", 8); /* 10.78.0.1 -> 10.78.0.2 */
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	udp[0] = 40000 >> 8;
	udp[1] = 40000 & 0xff;
	udp[2] = PORT_A >> 8;
	udp[3] = PORT_A & 0xff;
	udp[4] = (uint8_t)(ulen >> 8);
	udp[5] = (uint8_t)ulen;
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, pkt, (size_t)len);
	return 14 + 20 + 8 + (size_t)len;
}

/* ---- The appliance (child) ----------------------------------------------------------------- */

static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void child_fail(struct shared *s, const char *what, const char *why)
{
	snprintf(s->why, sizeof(s->why), "%s: %s", what, why);
	__atomic_store_n(&s->state, -1, __ATOMIC_RELEASE);
	_exit(1);
}

static void receiver(enum mode m, uint64_t total, uint16_t count, const char *dir,
		     struct shared *s, volatile __u64 *gen_appended)
{
	char path[PATH_MAX + 32], why[256];
	snprintf(path, sizeof(path), "/run/netns/%s", g_ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
		child_fail(s, path, strerror(errno));
	close(nsfd);

	struct sl_options o;
	sl_options_init(&o);
	o.data_dir = dir;
	o.flags = SL_OPEN_CREATE;
	o.gap_give_up_ms = 200; /* nothing should be lost; if it is, say so and go on */
	o.memtable_bytes = 0;
	struct sl_db *db = NULL;
	int r = 0;
	/* The raw modes measure the front end alone: no engine behind it. */
	if (!is_raw(m) && (r = sl_db_open(&o, &db)) < 0)
		child_fail(s, "sl_db_open", sl_strerror(r));

	/* The same XDP program runs in every mode; for the UDP front end its feed map names no
	 * port in use, so it passes every frame to the kernel stack. */
	struct sl_xsk_config xc;
	sl_xsk_config_init(&xc);
	xc.ifname = g_rx_if;
	xc.feed = m == M_UDP || m == M_UDP_RAW ? "*:1" : m == M_XDP_AB ? "10.78.0.2:26477,10.78.0.2:26478" :
						       "10.78.0.2:26477";
	xc.busy_poll = m == M_XDP_BUSY;
	struct sl_xsk *x = NULL;
	if ((r = sl_xsk_open(&xc, &x, why, sizeof(why))) < 0)
		child_fail(s, "sl_xsk_open", why);
	struct sl_udp *u = NULL;
	if ((m == M_UDP || m == M_UDP_RAW) && (r = sl_udp_open("10.78.0.2:26477", 64u << 20, &u)) < 0)
		child_fail(s, "sl_udp_open", sl_strerror(r));

	double cpu0 = cpu_now();
	uint64_t t0 = 0, last_progress = mono_ns(), packets = 0;
	__atomic_store_n(&s->state, 1, __ATOMIC_RELEASE);
	uint64_t done = 0;
	while (done < total) {
		r = u ? sl_udp_pump(u, db, 1) : sl_xsk_pump(x, db, 1); /* db NULL: raw */
		if (r < 0)
			child_fail(s, "pump", sl_strerror(r));
		/* Into the generator program's memory-mapped globals: flow control. */
		done = db ? sl_db_last_seq(db) : packets * count;
		*gen_appended = done;
		uint64_t now = mono_ns();
		if (r > 0) {
			if (!t0) {
				t0 = now;
				cpu0 = cpu_now();
			}
			packets += (uint64_t)r;
			last_progress = now;
		} else if (now - last_progress > 10000000000ull) {
			child_fail(s, "receiver", "no packet for 10 s");
		}
	}
	struct sl_stats st;
	memset(&st, 0, sizeof(st));
	if (db) {
		sl_db_sync(db);
		if ((r = sl_db_wait_durable(db, total, 30ll * 1000000000)) < 0)
			child_fail(s, "sl_db_wait_durable", sl_strerror(r));
		sl_db_stats(db, &st);
	} else {
		st.messages_delivered = packets * count;
	}
	s->secs = (double)(mono_ns() - t0) / 1e9;
	s->cpu_s = cpu_now() - cpu0;
	s->packets = packets;
	s->messages = st.messages_delivered;
	s->lost = st.lost_messages;
	s->duplicates = st.duplicates;
	struct sl_xsk_stats xs;
	sl_xsk_get_stats(x, &xs);
	s->xdp_dups = xs.xdp_duplicates;
	s->socket_drops = xs.rx_dropped;
	if (getenv("BENCH_XDP_DEBUG"))
		fprintf(stderr, "bench_xdp:   receiver: %" PRIu64 " packets, %" PRIu64 " batches, %"
			PRIu64 " wakeups, %" PRIu64 " reordered\n", xs.packets, xs.batches,
			xs.wakeups, st.packets_reordered);
	sl_udp_close(u);
	sl_xsk_close(x);
	sl_db_close(db);
	__atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
	_exit(0);
}

/* ---- The generator (parent) ---------------------------------------------------------------- */

/* Busy jiffies of the whole machine (every CPU: user, nice, system, irq, softirq). */
static double machine_busy_s(void)
{
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[8] = { 0 };
	if (!f)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8)
		v[0] = v[1] = v[2] = v[5] = v[6] = v[7] = 0;
	fclose(f);
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static void run_one(const struct config *c, enum mode m, const uint8_t *frame, size_t flen,
		    uint16_t count, struct result *out)
{
	uint64_t packets = c->messages / count, total = packets * count;
	struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				-1, 0);
	if (s == MAP_FAILED)
		die("mmap", strerror(errno));
	memset(s, 0, sizeof(*s));
	char dir[PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/%s", g_root, mode_name[m]);

	struct feedgen *g = feedgen__open();
	if (!g)
		die("feedgen__open", strerror(errno));
	g->rodata->out_ifindex = if_nametoindex(g_gen_if);
	g->rodata->msgs_per_packet = count;
	g->rodata->ab = m == M_XDP_AB;
	g->rodata->port_a = htons(PORT_A);
	g->rodata->port_b = htons(PORT_B);
	/* Busy polling defers the veth's NAPI to the receiver: then the veth's own 256-frame
	 * ring is the limit, not the socket's. */
	uint32_t window = m == M_XDP_BUSY && c->window > 192 ? 192 : c->window;
	g->rodata->window_msgs = (uint64_t)window * count;
	g->rodata->total_packets = packets;
	int r = feedgen__load(g);
	if (r)
		die("feedgen__load", strerror(-r));

	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0)
		receiver(m, total, count, dir, s, &g->bss->appended);
	while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == 0)
		usleep(1000);
	if (s->state < 0) {
		waitpid(pid, NULL, 0);
		die(mode_name[m], s->why);
	}
	uint32_t copies = m == M_XDP_AB ? 2 : 1;
	double busy0 = machine_busy_s();
	/* Long live-frame runs: the program itself waits for the window (see feedgen.bpf.c). */
	uint64_t t_run = 0, calls = 0, tg0 = mono_ns(), frames = packets * copies;
	while (__atomic_load_n(&g->bss->frames, __ATOMIC_ACQUIRE) < frames &&
	       __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) > 0) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)flen,
			    .repeat = (uint32_t)CHUNK, .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
			    .batch_size = 64);
		uint64_t tr0 = mono_ns();
		r = bpf_prog_test_run_opts(bpf_program__fd(g->progs.feedgen), &o);
		t_run += mono_ns() - tr0;
		calls++;
		if (r)
			die("BPF_PROG_TEST_RUN (live frames)", strerror(errno));
	}
	progress("bench_xdp:   generator: %" PRIu64 " calls, %.3f s in BPF_PROG_TEST_RUN of %.3f s\n",
		 calls, (double)t_run / 1e9, (double)(mono_ns() - tg0) / 1e9);
	int status = 0;
	waitpid(pid, &status, 0);
	double busy = machine_busy_s() - busy0;
	feedgen__destroy(g);
	if (s->state != 2)
		die(mode_name[m], s->why[0] ? s->why : "receiver died");
	*out = (struct result){ .secs = s->secs, .cpu_s = s->cpu_s, .machine_cpu_s = busy,
				.packets = s->packets, .messages = s->messages, .lost = s->lost,
				.duplicates = s->duplicates, .xdp_dups = s->xdp_dups,
				.socket_drops = s->socket_drops };
	if (out->messages != total || out->lost)
		die(mode_name[m], "the log does not hold exactly the messages sent");
	munmap(s, sizeof(*s));
	rm_tree(dir);
}

static int cmp_rate(const void *a, const void *b)
{
	const struct result *x = a, *y = b;
	double rx = (double)x->messages / x->secs, ry = (double)y->messages / y->secs;
	return rx < ry ? -1 : rx > ry;
}

/* Against the UDP front end in the same kind of run: with the engine, or alone. */
static double ratio(int m, double mps, double udp, double udp_raw)
{
	double base = is_raw(m) ? udp_raw : udp;
	return base > 0 ? mps / base : 0.0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_xdp [--messages N] [--runs R] [--window PKTS] [--dir DIR]\n"
			"                 [--modes udp,xdp,xdp-busy,xdp-ab,udp-raw,xdp-raw] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	(void)gen_message_views; /* bench_common.h's, unused here */
	struct config c = { .messages = 4000000, .runs = 3, .window = 1024, .dir = "/tmp" };
	for (int i = 0; i < M_COUNT; i++)
		c.modes[i] = 1;
	static const struct option lo[] = { { "messages", required_argument, NULL, 'n' },
					    { "runs", required_argument, NULL, 'r' },
					    { "window", required_argument, NULL, 'w' },
					    { "dir", required_argument, NULL, 'd' },
					    { "modes", required_argument, NULL, 'm' },
					    { "json", no_argument, NULL, 'j' },
					    { "chunk", required_argument, NULL, 'c' },
					    { NULL, 0, NULL, 0 } };
	int opt;
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'n': c.messages = strtoull(optarg, NULL, 10); break;
		case 'r': c.runs = atoi(optarg); break;
		case 'w': c.window = (uint32_t)atoi(optarg); break;
		case 'd': c.dir = optarg; break;
		case 'j': c.json = 1; break;
		case 'c': CHUNK = strtoull(optarg, NULL, 10); break;
		case 'm':
			for (int i = 0; i < M_COUNT; i++)
				c.modes[i] = 0;
			for (char *t = strtok(optarg, ","); t; t = strtok(NULL, ",")) {
				int found = 0;
				for (int i = 0; i < M_COUNT; i++)
					if (!strcmp(t, mode_name[i]))
						c.modes[i] = found = 1;
				if (!found)
					usage();
			}
			break;
		default: usage();
		}
	}
	if (c.runs < 1 || c.runs > MAX_RUNS || c.window < 64 || c.window > 1536 || c.messages < 1000)
		usage();
	if (geteuid() != 0)
		die("bench_xdp", "needs root (network namespaces, veth, XDP, AF_XDP)");

	uint8_t frame[2048];
	uint16_t count = 0;
	size_t flen = make_frame(frame, &count);
	make_root(c.dir);
	net_up();
	struct machine mc;
	machine_probe(c.dir, &mc);

	static struct result res[M_COUNT][MAX_RUNS];
	/* Modes interleaved run by run, so drifting background load hits each alike. */
	for (int r = 0; r < c.runs; r++) {
		for (int m = 0; m < M_COUNT; m++) {
			if (!c.modes[m])
				continue;
			progress("bench_xdp: run %d/%d: %s ...\n", r + 1, c.runs, mode_name[m]);
			run_one(&c, (enum mode)m, frame, flen, count, &res[m][r]);
			progress("bench_xdp:   %.0f msg/s\n",
				 (double)res[m][r].messages / res[m][r].secs);
		}
	}

	double udp_rate = 0, udp_raw_rate = 0;
	struct result med[M_COUNT];
	for (int m = 0; m < M_COUNT; m++) {
		if (!c.modes[m])
			continue;
		qsort(res[m], (size_t)c.runs, sizeof(res[m][0]), cmp_rate);
		med[m] = res[m][c.runs / 2];
		if (m == M_UDP)
			udp_rate = (double)med[m].messages / med[m].secs;
		if (m == M_UDP_RAW)
			udp_raw_rate = (double)med[m].messages / med[m].secs;
	}
	if (c.json) {
		printf("{\"machine\":{\"cpus\":%ld,\"cpu\":", mc.nproc);
		json_str(mc.cpu);
		printf(",\"kernel\":");
		json_str(mc.kernel);
		printf("},\"messages_per_packet\":%u,\"runs\":%d,\"results\":[", count, c.runs);
		int first = 1;
		for (int m = 0; m < M_COUNT; m++) {
			if (!c.modes[m])
				continue;
			const struct result *x = &med[m];
			double mps = (double)x->messages / x->secs;
			printf("%s{\"mode\":\"%s\",\"packets_per_s\":%.0f,\"messages_per_s\":%.0f,"
			       "\"rx_cpu_s_per_m\":%.3f,\"machine_cpu_s_per_m\":%.3f,"
			       "\"vs_udp\":%.2f,\"xdp_duplicates\":%" PRIu64 "}",
			       first ? "" : ",", mode_name[m], (double)x->packets / x->secs, mps,
			       x->cpu_s * 1e6 / (double)x->messages,
			       x->machine_cpu_s * 1e6 / (double)x->messages,
			       ratio(m, mps, udp_rate, udp_raw_rate), x->xdp_dups);
			first = 0;
		}
		printf("]}\n");
		return 0;
	}
	say("bench_xdp: %" PRIu64 " messages (%u per MoldUDP64 packet) into the durable log, veth "
	    "(native XDP, copy mode), generator BPF_PROG_TEST_RUN live frames, window %u "
	    "packets (busy poll: 192), median of %d runs\n",
	    c.messages / count * count, count, c.window, c.runs);
	say("machine: %ld CPUs, %s, %s, log on %s (%s)\n\n", mc.nproc, mc.cpu, mc.kernel, mc.fs,
	    mc.device);
	say("| front end | packets/s | msgs/s | vs recvmmsg | receiver CPU s / M msgs | machine CPU s "
	    "/ M msgs | dropped in XDP |\n|---|---|---|---|---|---|---|\n");
	for (int m = 0; m < M_COUNT; m++) {
		if (!c.modes[m])
			continue;
		const struct result *x = &med[m];
		double mps = (double)x->messages / x->secs;
		say("| %s | %.0f | %.0f | %.2fx | %.3f | %.3f | %" PRIu64 " |\n", mode_desc[m],
		    (double)x->packets / x->secs, mps, ratio(m, mps, udp_rate, udp_raw_rate),
		    x->cpu_s * 1e6 / (double)x->messages,
		    x->machine_cpu_s * 1e6 / (double)x->messages, x->xdp_dups);
	}
	return 0;
}
