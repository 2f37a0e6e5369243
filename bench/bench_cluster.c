/* bench_cluster.c - replication figures, in one run on one machine:
 *  1. ingest throughput, single node (local WAL, fdatasync) against a 3-node cluster (raft_uv
 *     log with fsync on every node, raft_uv_tcp on loopback, peer authentication): N messages
 *     through the gateway append path as fast as they are taken, until all are durable;
 *  2. commit latency at a paced rate (default 100k messages/s in batches every millisecond,
 *     10 s, after a second's pause for the burst of 1 to settle): append to durable (single
 *     node: fdatasync done; cluster: committed by a majority and applied on the leader),
 *     p50/p99/max and the share of batches over 5 ms, on a waiter thread; the writer sleeps
 *     to each batch's time and the waiter sleeps between batches (neither spins: the nodes
 *     share the machine's cores with them);
 *  3. failover: real sluiced processes (three, on loopback) fed by sluice-feed; the leader is
 *     killed with SIGKILL K times; the time from the kill to the first commit that advances the
 *     committed sequence under a new leader, p50/p99.
 * Benchmarks only: the nodes of 1 and 2 run in this process (repl_node.c, each with its own
 * raft thread, log directory and TCP port); 3 uses the programs next to this one's build.
 */
#define BENCH_NAME "bench_cluster"
#include "bench_common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "http.h"
#include "repl_node.h"

extern char **environ;

struct opts {
	uint64_t messages;
	uint64_t rate;
	double seconds;
	unsigned kills;
	unsigned snapshot_entries;
	unsigned election_ms;      /* failover: sluiced --election-ms (0: its default) */
	uint64_t max_term;         /* failover: the highest raft term seen at the end */
	const char *dir;
	const char *bindir;
	int json;
};

/* ---- Latency: a waiter thread timestamps each batch's durability -------------------------- */

#define MAX_BATCHES (1u << 20)

struct lat {
	struct sl_db *db;
	uint64_t *seq, *t0, *lat;
	volatile uint64_t n;  /* batches appended (writer) */
	uint64_t done;        /* batches seen durable (waiter) */
	volatile int stop;
	sem_t more;           /* posted per batch and at stop: the waiter sleeps, never spins */
};

static void *waiter(void *arg)
{
	struct lat *l = arg;
	for (;;) {
		uint64_t n = __atomic_load_n(&l->n, __ATOMIC_ACQUIRE);
		if (l->done == n) {
			if (l->stop)
				break;
			sem_wait(&l->more);
			continue;
		}
		if (sl_db_wait_durable(l->db, l->seq[l->done], 10ll * 1000000000) < 0)
			die("wait durable", "timed out");
		uint64_t now = mono_ns();
		/* Everything up to this batch is durable now: all of them end here. */
		while (l->done < n && l->seq[l->done] <= sl_db_durable_seq(l->db))
			l->lat[l->done] = now - l->t0[l->done], l->done++;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, uint64_t n, double p)
{
	if (!n)
		return 0;
	uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i];
}

struct result {
	double tput;                   /* messages/s, throughput phase */
	double p50, p99, max;          /* ns, latency phase */
	double over5;                  /* share of batches over 5 ms */
	uint64_t terms;                /* cluster: elections during the run (should be 0) */
	double rate;                   /* messages/s achieved in the latency phase */
};

/* Throughput, then latency, through db's append path; msgs holds enough messages for both. */
static void measure(struct sl_db *db, const struct sl_msg *msgs, const struct opts *o,
		    struct result *res)
{
	uint64_t t0 = mono_ns(), last = 0;
	for (uint64_t i = 0; i < o->messages; i += 256) {
		size_t k = o->messages - i < 256 ? (size_t)(o->messages - i) : 256;
		int r;
		while ((r = sl_db_append_messages(db, msgs + i, k, &last)) == SL_ENOTLEADER)
			usleep(1000);
		if (r < 0)
			die("append", sl_strerror(r));
	}
	if (sl_db_wait_durable(db, last, 60ll * 1000000000) < 0)
		die("throughput", "not durable within 60 s");
	res->tput = (double)o->messages / ((double)(mono_ns() - t0) / 1e9);

	/* Paced: a batch every millisecond, rate/1000 messages each, after a second for the
	 * burst above to settle (followers applying it, a flush): steady state is measured. */
	sleep(1);
	/* Paced: a batch every millisecond, rate/1000 messages each. */
	struct lat l = { .db = db };
	sem_init(&l.more, 0, 0);
	l.seq = xcalloc(MAX_BATCHES, sizeof(uint64_t));
	l.t0 = xcalloc(MAX_BATCHES, sizeof(uint64_t));
	l.lat = xcalloc(MAX_BATCHES, sizeof(uint64_t));
	pthread_t th;
	pthread_create(&th, NULL, waiter, &l);
	uint64_t per = o->rate / 1000 ? o->rate / 1000 : 1, sent = 0;
	uint64_t batches = (uint64_t)(o->seconds * 1000);
	if (batches > MAX_BATCHES)
		batches = MAX_BATCHES;
	uint64_t start = mono_ns();
	for (uint64_t b = 0; b < batches; b++) {
		/* Sleep to the batch's time (a spinning writer would take one of the two CPUs
		 * from the nodes it measures). */
		uint64_t due = start + b * 1000000ull;
		struct timespec ts = { (time_t)(due / 1000000000ull), (long)(due % 1000000000ull) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		uint64_t off = (o->messages + sent) % (2 * o->messages);
		if (off + per > 2 * o->messages)
			off = 0;
		l.t0[b] = mono_ns();
		if (sl_db_append_messages(db, msgs + off, per, &last) < 0)
			die("append", "paced");
		l.seq[b] = last;
		sent += per;
		__atomic_store_n(&l.n, b + 1, __ATOMIC_RELEASE);
		sem_post(&l.more);
	}
	double secs = (double)(mono_ns() - start) / 1e9;
	l.stop = 1;
	sem_post(&l.more);
	pthread_join(th, NULL);
	sem_destroy(&l.more);
	qsort(l.lat, l.done, sizeof(uint64_t), cmp_u64);
	res->p50 = pct(l.lat, l.done, 0.50);
	res->p99 = pct(l.lat, l.done, 0.99);
	uint64_t slow = 0;
	for (uint64_t b = 0; b < l.done; b++)
		slow += l.lat[b] > 5000000;
	res->over5 = l.done ? (double)slow / (double)l.done : 0;
	res->max = l.done ? (double)l.lat[l.done - 1] : 0;
	res->rate = (double)sent / secs;
	free(l.seq);
	free(l.t0);
	free(l.lat);
}

/* ---- In-process cluster --------------------------------------------------------------------- */

static int node_ready_leader(struct sl_node *n)
{
	char buf[4096];
	sl__node_status_json(n, buf, sizeof(buf));
	return strstr(buf, "\"role\":\"leader\",\"ready\":true") != NULL;
}

static void run_single(const struct sl_msg *msgs, const struct opts *o, struct result *res)
{
	char dir[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s/single", g_root);
	struct sl_options so;
	sl_options_init(&so);
	so.data_dir = dir;
	so.flags = SL_OPEN_CREATE;
	so.accel = "cpu";
	struct sl_db *db;
	int r = sl_db_open(&so, &db);
	if (r < 0)
		die("single node", sl_strerror(r));
	measure(db, msgs, o, res);
	sl_db_close(db);
}

static void run_cluster(const struct sl_msg *msgs, const struct opts *o, struct result *res)
{
	char key[PATH_MAX + 64], peers[256], dirs[3][PATH_MAX + 64];
	snprintf(key, sizeof(key), "%s/key", g_root);
	FILE *f = fopen(key, "w");
	if (!f)
		die(key, strerror(errno));
	fputs("bench-cluster-key-0123456789abcdef\n", f);
	fclose(f);
	int base = 26000 + (int)(getpid() % 8000);
	snprintf(peers, sizeof(peers), "1=127.0.0.1:%d,2=127.0.0.1:%d,3=127.0.0.1:%d", base + 1,
		 base + 2, base + 3);
	struct sl_node *nodes[3];
	for (int i = 0; i < 3; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "%s/node%d", g_root, i + 1);
		struct sl_options so;
		sl_options_init(&so);
		so.data_dir = dirs[i];
		so.flags = SL_OPEN_CREATE;
		so.accel = "cpu";
		struct sl_node_config nc = { .cluster_id = "bench", .node_id = (unsigned)i + 1,
					     .peers = peers, .key_file = key,
					     .snapshot_threshold = o->snapshot_entries };
		int r = sl__node_open(&nc, &so, &nodes[i]);
		if (r < 0)
			die("cluster node", sl_strerror(r));
	}
	int leader = -1;
	for (int t = 0; t < 1000 && leader < 0; t++) {
		usleep(10000);
		for (int i = 0; i < 3; i++)
			if (node_ready_leader(nodes[i]))
				leader = i;
	}
	if (leader < 0)
		die("cluster", "no leader within 10 s");
	progress("cluster: node %d leads\n", leader + 1);
	char before[4096], after[4096];
	sl__node_status_json(nodes[leader], before, sizeof(before));
	measure(sl__node_db(nodes[leader]), msgs, o, res);
	sl__node_status_json(nodes[leader], after, sizeof(after));
	/* A term that moved under load is an election nobody asked for. */
	const char *t0 = strstr(before, "\"term\":"), *t1 = strstr(after, "\"term\":");
	res->terms = t0 && t1 ? strtoull(t1 + 7, NULL, 10) - strtoull(t0 + 7, NULL, 10) : 0;
	for (int i = 0; i < 3; i++)
		sl__node_close(nodes[i]);
}

/* ---- Failover with processes ------------------------------------------------------------------ */

static pid_t spawn(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	pid_t pid;
	int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		die(argv[0], strerror(r));
	return pid;
}

struct proc_node {
	pid_t pid;
	char admin[64], data[PATH_MAX + 64], log[PATH_MAX + 64], udp[64];
};

static void start_proc(struct proc_node *n, int id, const struct opts *o, const char *peers,
		       const char *key, const char *rr)
{
	char bin[PATH_MAX + 64], idbuf[8], ems[16];
	snprintf(bin, sizeof(bin), "%s/sluiced", o->bindir);
	snprintf(idbuf, sizeof(idbuf), "%d", id);
	snprintf(ems, sizeof(ems), "%u", o->election_ms ? o->election_ms : 200);
	char *argv[] = { bin, "--data", n->data, "--udp", n->udp, "--rerequest", (char *)rr,
			 "--gap-timeout-ms", "120000", "--stats-ms", "0", "--accel", "cpu",
			 "--cluster-id", "benchfo", "--node", idbuf, "--peers", (char *)peers,
			 "--cluster-key-file", (char *)key, "--admin", n->admin,
			 "--election-ms", ems, NULL };
	n->pid = spawn(argv, n->log);
}

/* The node's JSON status field (a number), or -1 when it does not answer. */
static int64_t proc_status(const struct proc_node *n, int *leader_ready, uint64_t *term)
{
	char body[8192];
	int st = 0;
	*leader_ready = 0;
	if (sl__http_request(n->admin, "GET", "/status", body, sizeof(body), &st, 200) < 0 ||
	    st != 200)
		return -1;
	*leader_ready = strstr(body, "\"role\":\"leader\",\"ready\":true") != NULL;
	const char *tm = strstr(body, "\"term\":");
	if (term && tm && strtoull(tm + 7, NULL, 10) > *term)
		*term = strtoull(tm + 7, NULL, 10);
	const char *c = strstr(body, "\"commit_seq\":");
	return c ? (int64_t)strtoull(c + 13, NULL, 10) : -1;
}

static void run_failover(struct opts *o, uint64_t *fo, unsigned *nfo)
{
	char key[PATH_MAX + 64], peers[256], rr[64];
	snprintf(key, sizeof(key), "%s/key", g_root);
	int base = 34000 + (int)(getpid() % 8000);
	snprintf(peers, sizeof(peers), "1=127.0.0.1:%d,2=127.0.0.1:%d,3=127.0.0.1:%d", base + 1,
		 base + 2, base + 3);
	snprintf(rr, sizeof(rr), "127.0.0.1:%d", base);
	struct proc_node nodes[3];
	for (int i = 0; i < 3; i++) {
		snprintf(nodes[i].admin, sizeof(nodes[i].admin), "127.0.0.1:%d", base + 11 + i);
		snprintf(nodes[i].udp, sizeof(nodes[i].udp), "127.0.0.1:%d", base + 21 + i);
		snprintf(nodes[i].data, sizeof(nodes[i].data), "%s/fo%d", g_root, i + 1);
		snprintf(nodes[i].log, sizeof(nodes[i].log), "%s/fo%d.log", g_root, i + 1);
		start_proc(&nodes[i], i + 1, o, peers, key, rr);
	}
	char fbin[PATH_MAX + 64], msgs[32], port[16];
	snprintf(fbin, sizeof(fbin), "%s/sluice-feed", o->bindir);
	snprintf(msgs, sizeof(msgs), "%u", 20000u * (o->kills * 2 + 10));
	snprintf(port, sizeof(port), "%d", base);
	char *fargv[] = { fbin, "--messages", msgs, "--rate", "20000", "--udp", nodes[0].udp,
			  "--also-udp", nodes[1].udp, "--also-udp", nodes[2].udp, "--port", port,
			  "--linger-ms", "5000", "--quiet", NULL };
	char flog[PATH_MAX + 64];
	snprintf(flog, sizeof(flog), "%s/feed.log", g_root);
	usleep(500000);
	pid_t feed = spawn(fargv, flog);
	*nfo = 0;
	for (unsigned k = 0; k < o->kills; k++) {
		usleep(1000000);
		int who = -1, ready;
		int64_t c0 = -1;
		for (int t = 0; t < 500 && who < 0; t++) {
			for (int i = 0; i < 3 && who < 0; i++) {
				int64_t c = proc_status(&nodes[i], &ready, NULL);
				if (ready)
					who = i, c0 = c;
			}
			if (who < 0)
				usleep(10000);
		}
		if (who < 0) {
			progress("failover: no leader before kill %u\n", k + 1);
			continue;
		}
		uint64_t t0 = mono_ns();
		kill(nodes[who].pid, SIGKILL);
		waitpid(nodes[who].pid, NULL, 0);
		int got = 0;
		while (!got && mono_ns() - t0 < 10000000000ull) {
			for (int i = 0; i < 3 && !got; i++) {
				if (i == who)
					continue;
				int64_t c = proc_status(&nodes[i], &ready, NULL);
				if (ready && c > c0)
					got = 1;
			}
			if (!got)
				usleep(2000);
		}
		uint64_t ns = mono_ns() - t0;
		if (got)
			fo[(*nfo)++] = ns;
		progress("failover %u: node %d killed, first new commit after %.0f ms%s\n", k + 1,
			 who + 1, (double)ns / 1e6, got ? "" : " (none within 10 s)");
		start_proc(&nodes[who], who + 1, o, peers, key, rr);
	}
	/* Elections beyond one per kill were spurious (a follower that missed heartbeats). */
	usleep(1000000);
	for (int i = 0; i < 3; i++) {
		int ready;
		proc_status(&nodes[i], &ready, &o->max_term);
	}
	kill(feed, SIGKILL);
	waitpid(feed, NULL, 0);
	for (int i = 0; i < 3; i++) {
		kill(nodes[i].pid, SIGKILL);
		waitpid(nodes[i].pid, NULL, 0);
	}
}

/* ---- Main ------------------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: bench_cluster [--messages N] [--rate MSG/S] [--seconds S] "
			"[--kills K] [--snapshot-entries N] [--election-ms MS] [--dir DIR] "
			"[--bin DIR] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .messages = 500000, .rate = 100000, .seconds = 10, .kills = 20,
			  .dir = "/tmp", .bindir = NULL };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			o.json = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--messages"))
			o.messages = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			o.rate = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--seconds"))
			o.seconds = atof(v);
		else if (!strcmp(a, "--snapshot-entries"))
			o.snapshot_entries = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--election-ms"))
			o.election_ms = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--kills"))
			o.kills = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--dir"))
			o.dir = v;
		else if (!strcmp(a, "--bin"))
			o.bindir = v;
		else
			usage();
	}
	if (!o.messages || !o.rate || o.seconds <= 0)
		usage();
	char bindir[PATH_MAX + 64];
	if (!o.bindir) {
		/* build/bench/bench_cluster -> build/bin */
		snprintf(bindir, sizeof(bindir), "%s", argv[0]);
		char *slash = strrchr(bindir, '/');
		if (slash)
			*slash = 0;
		else
			snprintf(bindir, sizeof(bindir), ".");
		strncat(bindir, "/../bin", sizeof(bindir) - strlen(bindir) - 1);
		o.bindir = bindir;
	}
	signal(SIGPIPE, SIG_IGN);
	make_root(o.dir);
	struct machine m;
	machine_probe(g_root, &m);
	uint8_t *bytes;
	struct sl_msg *msgs;
	progress("generating %" PRIu64 " messages\n", 2 * o.messages);
	gen_message_views(1, 2 * o.messages, &bytes, &msgs);

	struct result single, cluster;
	progress("single node (WAL, fdatasync)\n");
	run_single(msgs, &o, &single);
	progress("3-node cluster (raft_uv, loopback TCP)\n");
	run_cluster(msgs, &o, &cluster);
	uint64_t *fo = xcalloc(o.kills ? o.kills : 1, sizeof(uint64_t));
	unsigned nfo = 0;
	if (o.kills) {
		progress("failover: %u SIGKILLs of the leader (sluiced processes)\n", o.kills);
		run_failover(&o, fo, &nfo);
	}
	qsort(fo, nfo, sizeof(uint64_t), cmp_u64);
	if (o.json) {
		printf("{\"machine\":{\"cpus\":%ld,\"cpu\":", m.nproc);
		json_str(m.cpu);
		printf(",\"fs\":");
		json_str(m.fs);
		printf("},\"messages\":%" PRIu64 ",\"paced_rate\":%" PRIu64, o.messages, o.rate);
		const struct result *rs[2] = { &single, &cluster };
		const char *names[2] = { "single", "cluster3" };
		for (int i = 0; i < 2; i++)
			printf(",\"%s\":{\"ingest_msg_s\":%.0f,\"paced_msg_s\":%.0f,\"commit_p50_us\":"
			       "%.1f,\"commit_p99_us\":%.1f,\"commit_max_us\":%.1f,"
			       "\"over_5ms\":%.4f}", names[i], rs[i]->tput, rs[i]->rate,
			       rs[i]->p50 / 1e3, rs[i]->p99 / 1e3, rs[i]->max / 1e3,
			       rs[i]->over5);
		printf(",\"cluster_elections\":%" PRIu64, cluster.terms);
		printf(",\"failover\":{\"kills\":%u,\"measured\":%u,\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
		       "\"election_ms\":%u,\"final_term\":%" PRIu64 "}}\n", o.kills, nfo,
		       pct(fo, nfo, 0.5) / 1e6, pct(fo, nfo, 0.99) / 1e6,
		       o.election_ms ? o.election_ms : 200, o.max_term);
	} else {
		say("bench_cluster: %ld CPUs (%s), %s; %" PRIu64 " messages; paced at %" PRIu64
		       " msg/s in 1 ms batches\n", m.nproc, m.cpu, m.fs, o.messages, o.rate);
		printf("%-28s %14s %14s %12s %12s %12s %8s\n", "", "ingest msg/s", "paced msg/s",
		       "commit p50", "commit p99", "commit max", ">5 ms");
		const struct result *rs[2] = { &single, &cluster };
		const char *names[2] = { "single node (WAL)", "3-node cluster (raft)" };
		for (int i = 0; i < 2; i++)
			printf("%-28s %14.0f %14.0f %10.2f ms %10.2f ms %10.2f ms %7.2f%%\n",
			       names[i], rs[i]->tput, rs[i]->rate, rs[i]->p50 / 1e6,
			       rs[i]->p99 / 1e6, rs[i]->max / 1e6, rs[i]->over5 * 100);
		printf("elections during the cluster's runs: %" PRIu64 "\n", cluster.terms);
		if (o.kills)
			printf("failover (SIGKILL of the leader to the first new commit): %u of %u "
			       "measured, p50 %.0f ms, p99 %.0f ms (election timeout %u ms; final "
			       "term %" PRIu64 " after %u kills)\n", nfo, o.kills,
			       pct(fo, nfo, 0.5) / 1e6, pct(fo, nfo, 0.99) / 1e6,
			       o.election_ms ? o.election_ms : 200, o.max_term, o.kills);
	}
	free(fo);
	free(bytes);
	free(msgs);
	return 0;
}
