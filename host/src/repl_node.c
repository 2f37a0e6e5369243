/* repl_node.c - a cluster node (see repl_node.h). Threads: the caller's (appends, through the
 * db), raft's libuv loop (raft, the FSM, proposals, membership changes, snapshots), the admin
 * endpoint's and the snapshot channel's (repl_snap.c: it serves DATA/snap). The loop is woken by an async handle (appends, admin requests, stop) and polls
 * for role changes every few milliseconds (raft 0.15 has no state callback).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "db.h"
#include "accel.h"
#include "http.h"
#include "manifest.h"
#include "repl.h"
#include "repl_auth.h"
#include "repl_snap.h"
#include "sst.h"
#include "repl_node.h"

#define POLL_MS 5

enum { OP_NONE, OP_ADD, OP_REMOVE, OP_TRANSFER };

struct peer {
	unsigned id;
	char address[128];
};

struct sl_node {
	struct sl_node_config cfg;
	char cluster_id[64];
	struct peer peers[SL_NODE_MAX_PEERS];
	unsigned npeers;
	const char *self_addr;
	char raft_dir[4200];
	char snap_root[4200];       /* DATA/snap: the table files of the snapshots this node holds */
	char snap_in[4200];         /* DATA/snap-in: staging for an install */
	struct peer data_peers[SL_NODE_MAX_PEERS];
	unsigned ndata_peers;
	uint8_t key[SL_AUTH_MAX_KEY];
	size_t key_len;
	struct sl_snapsrv *snapsrv;
	uint64_t last_snap_id;      /* __atomic */

	struct sl_repl *repl;
	struct sl_db *db;
	struct sl_http *http;

	uv_loop_t loop;
	uv_async_t async;
	uv_timer_t timer;
	struct raft_uv_transport tcp;
	struct sl_auth *auth;
	struct raft_io io;
	struct raft raft;
	pthread_t thread;
	int loop_init, tcp_init, io_init, raft_init, thread_started, stopping;

	/* One membership change or transfer at a time: the admin thread asks, raft's thread
	 * runs it. opmu/opcv guard the fields below. */
	pthread_mutex_t opmu;
	pthread_cond_t opcv;
	int op, op_started, op_done, op_status;
	raft_id op_id;
	char op_address[128], op_err[256];
	struct raft_change change;
	struct raft_transfer transfer;
};

/* ---- Configuration ------------------------------------------------------------------------ */

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!s[0] || *end || errno || v > max)
		return SL_ECONFIG;
	*out = v;
	return 0;
}

int sl__node_config_set(struct sl_node_config *nc, const char *key, const char *value)
{
	unsigned long v = 0;
	int r = 0;
	if (!strcmp(key, "cluster-id"))
		nc->cluster_id = value;
	else if (!strcmp(key, "node"))
		r = parse_uint(value, 1u << 30, &v), nc->node_id = (unsigned)v;
	else if (!strcmp(key, "peers"))
		nc->peers = value;
	else if (!strcmp(key, "cluster-key-file"))
		nc->key_file = value;
	else if (!strcmp(key, "raft-bind"))
		nc->raft_bind = value;
	else if (!strcmp(key, "admin"))
		nc->admin = value;
	else if (!strcmp(key, "election-ms"))
		r = parse_uint(value, 60000, &v), nc->election_ms = (unsigned)v;
	else if (!strcmp(key, "heartbeat-ms"))
		r = parse_uint(value, 60000, &v), nc->heartbeat_ms = (unsigned)v;
	else if (!strcmp(key, "snapshot-entries"))
		r = parse_uint(value, 1u << 30, &v), nc->snapshot_threshold = (unsigned)v;
	else if (!strcmp(key, "raft-segment-mb"))
		r = parse_uint(value, 4096, &v), nc->segment_mb = (unsigned)v;
	else if (!strcmp(key, "data-bind"))
		nc->data_bind = value;
	else if (!strcmp(key, "data-peers"))
		nc->data_peers = value;
	else if (!strcmp(key, "join"))
		nc->join = !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "true");
	else
		r = SL_ECONFIG;
	if (r)
		fprintf(stderr, "sluice: cluster: bad option %s=%s\n", key, value);
	return r;
}

int sl__node_config_file(struct sl_node_config *nc, const char *path, char **storage)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = -errno;
		fprintf(stderr, "sluice: cluster: config %s: %s\n", path, strerror(errno));
		return e;
	}
	char *text = calloc(1, 65536);
	size_t n = text ? fread(text, 1, 65535, f) : 0;
	fclose(f);
	if (!text)
		return -ENOMEM;
	text[n] = 0;
	*storage = text;
	int line = 0;
	for (char *p = text, *next; p && *p; p = next) {
		line++;
		next = strchr(p, '\n');
		if (next)
			*next++ = 0;
		char *hash = strchr(p, '#');
		if (hash)
			*hash = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strlen(p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
			p[--len] = 0;
		if (!*p)
			continue;
		char *eq = strchr(p, '=');
		if (!eq) {
			fprintf(stderr, "sluice: cluster: config %s line %d: expected key=value\n",
				path, line);
			return SL_ECONFIG;
		}
		*eq = 0;
		char *k = p, *kend = eq;
		while (kend > k && (kend[-1] == ' ' || kend[-1] == '\t'))
			*--kend = 0;
		char *v = eq + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (sl__node_config_set(nc, k, v)) {
			fprintf(stderr, "sluice: cluster: config %s line %d\n", path, line);
			return SL_ECONFIG;
		}
	}
	return 0;
}

static int parse_peers(struct peer *peers, unsigned *npeers, const char *spec)
{
	const char *p = spec;
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[160];
		if (len >= sizeof(item) || *npeers == SL_NODE_MAX_PEERS)
			return SL_ECONFIG;
		memcpy(item, p, len);
		item[len] = 0;
		char *eq = strchr(item, '=');
		unsigned long id;
		if (!eq || strlen(eq + 1) >= sizeof(peers[0].address) || !strchr(eq + 1, ':'))
			return SL_ECONFIG;
		*eq = 0;
		if (parse_uint(item, 1u << 30, &id) || id == 0)
			return SL_ECONFIG;
		for (unsigned i = 0; i < *npeers; i++)
			if (peers[i].id == id || !strcmp(peers[i].address, eq + 1))
				return SL_ECONFIG;
		peers[*npeers].id = (unsigned)id;
		snprintf(peers[*npeers].address, sizeof(peers[0].address), "%s", eq + 1);
		(*npeers)++;
		p = comma ? comma + 1 : NULL;
	}
	return *npeers ? 0 : SL_ECONFIG;
}

/* A node's data address: --data-peers names it, else its raft address's port + the offset. */
static void data_address(const struct sl_node *n, uint64_t id, const char *raft_addr, char *out,
			 size_t cap)
{
	for (unsigned i = 0; i < n->ndata_peers; i++)
		if (n->data_peers[i].id == id) {
			snprintf(out, cap, "%s", n->data_peers[i].address);
			return;
		}
	const char *colon = raft_addr ? strrchr(raft_addr, ':') : NULL;
	if (!colon) {
		snprintf(out, cap, "?");
		return;
	}
	unsigned long port = strtoul(colon + 1, NULL, 10) + SL_NODE_DATA_PORT_OFFSET;
	snprintf(out, cap, "%.*s:%lu", (int)(colon - raft_addr), raft_addr, port);
}

/* ---- Snapshots' tables (raft's thread, through the FSM) ------------------------------------- */

/* Remove a directory of plain files. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[8400];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the newest few snapshots' tables (raft keeps two snapshots; a follower may still be
 * fetching from the one before). */
static void prune_snapshots(struct sl_node *n, unsigned keep)
{
	DIR *d = opendir(n->snap_root);
	if (!d)
		return;
	char *names[256];
	unsigned k = 0;
	struct dirent *e;
	while ((e = readdir(d)) && k < 256)
		if (strlen(e->d_name) == 16 && strspn(e->d_name, "0123456789abcdef") == 16)
			names[k++] = strdup(e->d_name);
	closedir(d);
	qsort(names, k, sizeof(names[0]), cmp_name);
	for (unsigned i = 0; i < k; i++) {
		if (names[i] && i + keep < k) {
			char dir[8400];
			snprintf(dir, sizeof(dir), "%s/%s", n->snap_root, names[i]);
			remove_dir(dir);
		}
		free(names[i]);
	}
}

/* Keep a held snapshot's description next to its files (DESC: the checkpoint, then the
 * description), so this node can offer it to an installer whose own snapshot's files are gone. */
static void save_desc(const char *dir, uint64_t checkpoint, const void *desc, size_t len)
{
	char path[4400];
	snprintf(path, sizeof(path), "%s/DESC", dir);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(&checkpoint, 8, 1, f);
	fwrite(desc, 1, len, f);
	fclose(f);
}

/* The snapshot channel's info: what this node applied, and its term. Any thread. */
static int node_info(void *arg, uint64_t *applied_seq, uint64_t *term)
{
	struct sl_node *n = arg;
	struct sl_repl_status st;
	sl__repl_get_status(n->repl, &st);
	*applied_seq = st.applied_seq;
	*term = st.term;
	return 0;
}

/* A node with no raft state that would bootstrap as a voter: refuse when a peer says the
 * cluster has run (applied records). A voter that lost its state could vote twice in one term
 * (two leaders); it must rejoin as a new member instead. SL_ECONFIG (said on stderr) or 0. */
static int check_fresh_start(struct sl_node *n)
{
	char p1[4300], p2[4300];
	snprintf(p1, sizeof(p1), "%s/metadata1", n->raft_dir);
	snprintf(p2, sizeof(p2), "%s/metadata2", n->raft_dir);
	if (n->cfg.join || access(p1, F_OK) == 0 || access(p2, F_OK) == 0)
		return 0;
	struct sl_snap_auth au = { n->key, n->key_len, n->cluster_id, n->cfg.node_id };
	for (unsigned i = 0; i < n->npeers; i++) {
		if (n->peers[i].id == n->cfg.node_id)
			continue;
		char addr[160];
		data_address(n, n->peers[i].id, n->peers[i].address, addr, sizeof(addr));
		struct sl_snapcli *c;
		uint64_t applied = 0, term = 0;
		if (sl__snapcli_open(addr, &au, 1000, &c, NULL, 0))
			continue; /* down or not started: it cannot say */
		int r = sl__snapcli_info(c, &applied, &term);
		sl__snapcli_close(c);
		if (r == 0 && applied > 0) {
			fprintf(stderr, "sluice: cluster: node %u has no raft state, but node %u has "
				"applied through seq %" PRIu64 " (term %" PRIu64 "): a voter that "
				"lost its directory must not vote again. Rejoin instead: `sluice "
				"cluster remove %u` on the leader, start this node with --join, then "
				"`sluice cluster add %u %s`\n", n->cfg.node_id, n->peers[i].id,
				applied, term, n->cfg.node_id, n->cfg.node_id, n->self_addr);
			return SL_ECONFIG;
		}
	}
	return 0;
}

static int snap_take(void *arg, uint64_t *checkpoint, void **desc, size_t *len)
{
	struct sl_node *n = arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t id = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, last;
	/* Raft's thread and the snapshot channel's (pin_now) both make snapshots. */
	last = __atomic_load_n(&n->last_snap_id, __ATOMIC_RELAXED);
	do {
		if (id <= last)
			id = last + 1;
	} while (!__atomic_compare_exchange_n(&n->last_snap_id, &last, id, 0, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	char dir[4300];
	snprintf(dir, sizeof(dir), "%s/%016" PRIx64, n->snap_root, id);
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	struct sl_table_info *t = NULL;
	size_t k = 0;
	int r = sl__db_pin_tables(n->db, dir, &t, &k, checkpoint);
	if (!r)
		r = sl__snap_desc_encode(id, t, k, desc, len);
	if (!r)
		save_desc(dir, *checkpoint, *desc, *len);
	free(t);
	if (r)
		remove_dir(dir);
	else
		prune_snapshots(n, 4);
	return r;
}

static void snap_flush(void *arg)
{
	struct sl_node *n = arg;
	sl__db_request_flush(n->db);
}

/* The snapshot channel's thread, for a peer whose snapshot's files are gone: this node's
 * current tables as a new snapshot (no records: the asker applies those from its own). */
static int pin_now(void *arg)
{
	uint64_t cp;
	void *desc = NULL;
	size_t len = 0;
	int r = snap_take(arg, &cp, &desc, &len);
	free(desc);
	return r;
}

/* Fetch what is missing of tables t into snap_in from one peer. */
static int fetch_from(struct sl_node *n, const char *addr, uint64_t id,
		      const struct sl_table_info *t, size_t k, unsigned char *done)
{
	struct sl_snap_auth au = { n->key, n->key_len, n->cluster_id, n->cfg.node_id };
	struct sl_snapcli *c;
	char why[512] = "";
	int r = sl__snapcli_open(addr, &au, 5000, &c, why, sizeof(why));
	if (r) {
		fprintf(stderr, "sluice: cluster: snapshot %016" PRIx64 ": %s\n", id, why);
		return r;
	}
	for (size_t i = 0; i < k && !r; i++) {
		if (done[i])
			continue;
		char dst[4300];
		snprintf(dst, sizeof(dst), "%s/%016" PRIx64 ".sst", n->snap_in, t[i].file_no);
		r = sl__snapcli_get(c, id, t[i].file_no, t[i].file_bytes, dst, why, sizeof(why));
		if (r)
			fprintf(stderr, "sluice: cluster: snapshot %016" PRIx64 ": %s\n", id, why);
		else
			done[i] = 1;
	}
	sl__snapcli_close(c);
	return r;
}

/* Every block of every fetched table checks out (the channel checked the bytes in transit;
 * this checks the tables are what a store can open). */
static int verify_fetched(struct sl_node *n, const struct sl_table_info *t, size_t k)
{
	struct sl_accel *a;
	int r = sl__accel_open("cpu", &a);
	for (size_t i = 0; i < k && !r; i++) {
		char path[4300];
		snprintf(path, sizeof(path), "%s/%016" PRIx64 ".sst", n->snap_in, t[i].file_no);
		struct sl_sst *h;
		uint64_t bad = 0;
		const char *what = "";
		if ((r = sl__sst_open(sl__os_default(), a, path, &h)))
			break;
		r = sl__sst_verify(h, &bad, &what);
		sl__sst_close(h);
		if (r)
			fprintf(stderr, "sluice: cluster: fetched table %s: %s at offset %" PRIu64
				"\n", path, what, bad);
	}
	sl__accel_close(a);
	return r;
}

struct source {
	uint64_t id;
	char addr[160];
};

/* The leader first (it sent the snapshot), then every other node of the configuration. */
static unsigned snap_sources(struct sl_node *n, struct source *src)
{
	unsigned ns = 0;
	raft_id lid = 0;
	const char *laddr = NULL;
	raft_leader(&n->raft, &lid, &laddr);
	if (lid && lid != n->cfg.node_id) {
		src[ns].id = lid;
		data_address(n, lid, laddr, src[ns].addr, sizeof(src[ns].addr));
		ns++;
	}
	for (unsigned i = 0; i < n->raft.configuration.n && ns <= SL_NODE_MAX_PEERS; i++) {
		const struct raft_server *sv = &n->raft.configuration.servers[i];
		if (sv->id == n->cfg.node_id || sv->id == lid)
			continue;
		src[ns].id = sv->id;
		data_address(n, sv->id, sv->address, src[ns].addr, sizeof(src[ns].addr));
		ns++;
	}
	return ns;
}

/* Another node's newest snapshot whose tables reach at least checkpoint, fetched whole from
 * it into snap_in: any such snapshot is as good (its tables hold only committed records, and
 * what follows is applied by sequence, each once). 0 with *id, *t, *k, *cp set, or an error. */
static int fetch_substitute(struct sl_node *n, const struct source *src, unsigned ns,
			    uint64_t checkpoint, uint64_t *id, struct sl_table_info **t,
			    size_t *k, uint64_t *cp, void **desc, size_t *dlen)
{
	struct sl_snap_auth au = { n->key, n->key_len, n->cluster_id, n->cfg.node_id };
	int r = -ENOENT;
	for (unsigned i = 0; i < ns && r; i++) {
		struct sl_snapcli *c;
		if (sl__snapcli_open(src[i].addr, &au, 2000, &c, NULL, 0))
			continue;
		void *d = NULL;
		size_t dl = 0;
		uint64_t c2 = 0;
		r = sl__snapcli_latest(c, &c2, &d, &dl);
		sl__snapcli_close(c);
		struct sl_table_info *t2 = NULL;
		size_t k2 = 0;
		uint64_t id2 = 0;
		if (!r && (c2 < checkpoint || sl__snap_desc_decode(d, dl, &id2, &t2, &k2)))
			r = -ENOENT;
		unsigned char *done = r ? NULL : calloc(k2 ? k2 : 1, 1);
		if (!r && !done)
			r = -ENOMEM;
		if (!r) {
			remove_dir(n->snap_in);
			mkdir(n->snap_in, 0755);
			r = fetch_from(n, src[i].addr, id2, t2, k2, done);
		}
		free(done);
		if (r) {
			free(t2);
			free(d);
			continue;
		}
		fprintf(stderr, "sluice: cluster: took node %" PRIu64 "'s snapshot %016" PRIx64
			" (tables through seq %" PRIu64 ") instead\n", src[i].id, id2, c2);
		*id = id2, *t = t2, *k = k2, *cp = c2, *desc = d, *dlen = dl;
	}
	return r;
}

static int snap_install(void *arg, const void *desc, size_t len, uint64_t checkpoint,
			uint64_t *installed)
{
	struct sl_node *n = arg;
	uint64_t id, cp = checkpoint;
	struct sl_table_info *t = NULL;
	size_t k = 0, dlen = len;
	void *dcopy = NULL;
	int r = sl__snap_desc_decode(desc, len, &id, &t, &k);
	if (r) {
		fprintf(stderr, "sluice: cluster: a snapshot's table description is damaged\n");
		return r;
	}
	struct source src[SL_NODE_MAX_PEERS + 1];
	unsigned ns = snap_sources(n, src);
	/* Raft has recorded the snapshot as this node's state already (0.15 gives no way back):
	 * the tables must come, so keep trying; the snapshot's own files first (from any node
	 * that holds them), else a newer snapshot of another node. */
	for (int attempt = 0; attempt < 5; attempt++) {
		if (attempt) {
			sleep(1);
			ns = snap_sources(n, src);
		}
		unsigned char *done = calloc(k ? k : 1, 1);
		if (!done) {
			r = -ENOMEM;
			continue;
		}
		remove_dir(n->snap_in);
		if (mkdir(n->snap_in, 0755) && errno != EEXIST) {
			free(done);
			r = -errno;
			continue;
		}
		r = -ENOENT;
		for (unsigned i = 0; i < ns && r; i++)
			r = fetch_from(n, src[i].addr, id, t, k, done);
		free(done);
		if (r) {
			struct sl_table_info *t2;
			size_t k2;
			uint64_t id2, c2;
			void *d2;
			if (fetch_substitute(n, src, ns, checkpoint, &id2, &t2, &k2, &c2, &d2,
					     &dlen) == 0) {
				free(t);
				free(dcopy);
				t = t2, k = k2, id = id2, cp = c2, dcopy = d2, r = 0;
			}
		}
		if (!r)
			r = verify_fetched(n, t, k);
		if (!r)
			break;
	}
	if (r) {
		/* Raft believes this node holds the snapshot; going on would leave a hole in the
		 * store. Stop: at the next start raft loads the snapshot again and this install
		 * runs again (a supervisor restarts the node). */
		fprintf(stderr, "sluice: cluster: FATAL: no node could send the tables of snapshot "
			"%016" PRIx64 " (through seq %" PRIu64 "): %s; stopping so that a restart "
			"tries again\n", id, checkpoint, sl_strerror(r));
		_exit(75);
	}
	/* This node holds the snapshot now: it serves the same files under the same names. */
	char dir[4300];
	snprintf(dir, sizeof(dir), "%s/%016" PRIx64, n->snap_root, id);
	mkdir(dir, 0755);
	for (size_t i = 0; i < k; i++) {
		char from[4300], to[4400];
		snprintf(from, sizeof(from), "%s/%016" PRIx64 ".sst", n->snap_in, t[i].file_no);
		snprintf(to, sizeof(to), "%s/%016" PRIx64 ".sst", dir, t[i].file_no);
		if (link(from, to) && errno != EEXIST)
			fprintf(stderr, "sluice: cluster: keeping %s for serving: %s\n", to,
				strerror(errno));
	}
	save_desc(dir, cp, dcopy ? dcopy : desc, dlen);
	if ((r = sl__db_install_tables(n->db, n->snap_in, t, k, cp)) == 0) {
		r = (int)k;
		*installed = cp;
		fprintf(stderr, "sluice: cluster: installed snapshot %016" PRIx64 ": %zu tables "
			"through seq %" PRIu64 "\n", id, k, cp);
	}
	prune_snapshots(n, 4);
	remove_dir(n->snap_in);
	free(dcopy);
	free(t);
	return r;
}

/* ---- Raft's thread ------------------------------------------------------------------------ */

static void kick(void *arg)
{
	struct sl_node *n = arg;
	uv_async_send(&n->async);
}

static void op_finish(struct sl_node *n, int status)
{
	pthread_mutex_lock(&n->opmu);
	n->op_done = 1;
	n->op_status = status;
	if (status)
		snprintf(n->op_err, sizeof(n->op_err), "%s", raft_strerror(status));
	pthread_cond_broadcast(&n->opcv);
	pthread_mutex_unlock(&n->opmu);
}

static void assigned(struct raft_change *req, int status)
{
	op_finish(req->data, status);
}

static void added(struct raft_change *req, int status)
{
	struct sl_node *n = req->data;
	if (status) {
		op_finish(n, status);
		return;
	}
	/* Promotion to voter: raft first catches the new node up in rounds, then promotes. */
	int r = raft_assign(&n->raft, &n->change, n->op_id, RAFT_VOTER, assigned);
	if (r)
		op_finish(n, r);
}

static void removed(struct raft_change *req, int status)
{
	op_finish(req->data, status);
}

static void transferred(struct raft_transfer *req)
{
	struct sl_node *n = req->data;
	/* Still leading: the transfer did not happen (target not caught up, or gone). */
	op_finish(n, raft_state(&n->raft) == RAFT_LEADER ? RAFT_CANCELED : 0);
}

static void start_op(struct sl_node *n)
{
	pthread_mutex_lock(&n->opmu);
	int op = n->op_started ? OP_NONE : n->op;
	n->op_started = 1;
	pthread_mutex_unlock(&n->opmu);
	int r = 0;
	n->change.data = n;
	n->transfer.data = n;
	switch (op) {
	case OP_ADD: {
		/* Again after an add that reported an error but went through (a leader change
		 * under way): a member already is one; promote it if it is not a voter yet. */
		const struct raft_server *sv = NULL;
		for (unsigned i = 0; i < n->raft.configuration.n; i++)
			if (n->raft.configuration.servers[i].id == n->op_id)
				sv = &n->raft.configuration.servers[i];
		if (sv && sv->role == RAFT_VOTER && !strcmp(sv->address, n->op_address))
			op_finish(n, 0);
		else if (sv && !strcmp(sv->address, n->op_address))
			r = raft_assign(&n->raft, &n->change, n->op_id, RAFT_VOTER, assigned);
		else
			r = raft_add(&n->raft, &n->change, n->op_id, n->op_address, added);
		break;
	}
	case OP_REMOVE:
		r = raft_remove(&n->raft, &n->change, n->op_id, removed);
		break;
	case OP_TRANSFER:
		r = raft_transfer(&n->raft, &n->transfer, n->op_id, transferred);
		break;
	default:
		return;
	}
	if (r)
		op_finish(n, r);
}

static void raft_closed(struct raft *r)
{
	struct sl_node *n = r->data;
	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->tcp);
}

static void on_async(uv_async_t *a)
{
	struct sl_node *n = a->data;
	if (n->stopping == 1) {
		n->stopping = 2;
		sl__repl_shutdown(n->repl);
		uv_timer_stop(&n->timer);
		uv_close((uv_handle_t *)&n->timer, NULL);
		uv_close((uv_handle_t *)&n->async, NULL);
		raft_close(&n->raft, raft_closed);
		return;
	}
	if (n->stopping)
		return;
	sl__repl_poll(n->repl);
	start_op(n);
}

static void on_timer(uv_timer_t *t)
{
	struct sl_node *n = t->data;
	sl__repl_poll(n->repl);
}

static void *loop_main(void *arg)
{
	struct sl_node *n = arg;
	pthread_setname_np(pthread_self(), "sl-raft");
	uv_run(&n->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ---- Status and the admin endpoint -------------------------------------------------------- */

static const char *role_name(int state)
{
	switch (state) {
	case RAFT_LEADER: return "leader";
	case RAFT_FOLLOWER: return "follower";
	case RAFT_CANDIDATE: return "candidate";
	default: return "unavailable";
	}
}

size_t sl__node_status_json(struct sl_node *n, char *buf, size_t cap)
{
	struct sl_repl_status s;
	sl__repl_get_status(n->repl, &s);
	struct sl_auth_stats as = { 0 };
	/* The auth counters belong to raft's thread; a torn read of a counter is harmless. */
	sl__auth_get_stats(n->auth, &as);
	struct sl_snapsrv_stats ss = { 0 };
	if (n->snapsrv)
		sl__snapsrv_get_stats(n->snapsrv, &ss);
	size_t len = 0;
#define OUT(...)                                                                           \
	do {                                                                               \
		int k_ = snprintf(buf + len, len < cap ? cap - len : 0, __VA_ARGS__);      \
		if (k_ > 0)                                                                \
			len += (size_t)k_;                                                 \
	} while (0)
	OUT("{\"cluster_id\":\"%s\",\"node\":%" PRIu64 ",\"role\":\"%s\",\"ready\":%s,"
	    "\"leader\":%" PRIu64 ",\"leader_address\":\"%s\",\"term\":%" PRIu64
	    ",\"epoch\":%" PRIu64 ",\"commit_index\":%" PRIu64 ",\"applied_index\":%" PRIu64
	    ",\"last_index\":%" PRIu64 ",\"commit_seq\":%" PRIu64 ",\"applied_seq\":%" PRIu64
	    ",\"proposed_seq\":%" PRIu64 ",\"entries_applied\":%" PRIu64
	    ",\"records_applied\":%" PRIu64 ",\"proposals\":%" PRIu64
	    ",\"proposals_failed\":%" PRIu64 ",\"snapshots_taken\":%" PRIu64
	    ",\"snapshots_restored\":%" PRIu64 ",\"snapshot_bytes\":%" PRIu64
	    ",\"snapshot_tables_fetched\":%" PRIu64 ",\"snapshot_files_served\":%" PRIu64
	    ",\"frames_corrupt\":%" PRIu64
	    ",\"peers_refused\":%" PRIu64 ",\"servers\":[",
	    n->cluster_id, (uint64_t)n->cfg.node_id, role_name(s.state),
	    s.ready ? "true" : "false", s.leader_id, s.leader_address, s.term, s.epoch,
	    s.commit_index, s.applied_index, s.last_index, s.applied_seq,
	    sl_db_applied_seq(n->db), s.proposed_seq, s.entries_applied, s.records_applied,
	    s.proposals, s.proposals_failed, s.snapshots_taken, s.snapshots_restored,
	    s.snapshot_bytes, s.snapshot_tables_installed, ss.files_served, s.frames_corrupt, as.refused_in + as.refused_out);
	for (unsigned i = 0; i < s.n_servers; i++) {
		const char *role = s.servers[i].role == RAFT_VOTER ? "voter" :
				   s.servers[i].role == RAFT_STANDBY ? "standby" : "spare";
		OUT("%s{\"id\":%" PRIu64 ",\"address\":\"%s\",\"role\":\"%s\"", i ? "," : "",
		    s.servers[i].id, s.servers[i].address, role);
		if (s.state == RAFT_LEADER)
			OUT(",\"match_index\":%" PRIu64 ",\"lag_entries\":%" PRIu64,
			    s.servers[i].match_index,
			    s.last_index > s.servers[i].match_index ?
				    s.last_index - s.servers[i].match_index : 0);
		OUT("}");
	}
	OUT("]}\n");
#undef OUT
	return len < cap ? len : cap - 1;
}

/* Run one membership change or transfer on raft's thread and wait for it (15 s). */
static int run_op(struct sl_node *n, int op, raft_id id, const char *address, char *out,
		  size_t cap)
{
	pthread_mutex_lock(&n->opmu);
	if (n->op && !n->op_done) {
		pthread_mutex_unlock(&n->opmu);
		snprintf(out, cap, "{\"error\":\"another change is under way\"}\n");
		return 409;
	}
	n->op = op;
	n->op_id = id;
	snprintf(n->op_address, sizeof(n->op_address), "%s", address ? address : "");
	n->op_started = n->op_done = 0;
	n->op_err[0] = 0;
	pthread_mutex_unlock(&n->opmu);
	uv_async_send(&n->async);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 15;
	pthread_mutex_lock(&n->opmu);
	while (!n->op_done)
		if (pthread_cond_timedwait(&n->opcv, &n->opmu, &ts))
			break;
	int done = n->op_done, st = n->op_status;
	char err[256];
	snprintf(err, sizeof(err), "%s", n->op_err);
	pthread_mutex_unlock(&n->opmu);
	if (!done) {
		snprintf(out, cap, "{\"error\":\"still under way after 15 s\"}\n");
		return 504;
	}
	if (st) {
		struct sl_repl_status s;
		sl__repl_get_status(n->repl, &s);
		snprintf(out, cap, "{\"error\":\"%s\",\"leader\":%" PRIu64 ",\"leader_address\":"
			 "\"%s\"}\n", err, s.leader_id, s.leader_address);
		return st == RAFT_NOTLEADER ? 409 : 500;
	}
	snprintf(out, cap, "{\"ok\":true}\n");
	return 200;
}

/* The same as text, for `sluice cluster status`: one line for the node, one per server. */
static void status_text(struct sl_node *n, char *buf, size_t cap)
{
	struct sl_repl_status s;
	sl__repl_get_status(n->repl, &s);
	size_t len = 0;
	int k = snprintf(buf, cap, "cluster %s node %u: %s%s, leader %" PRIu64 " (%s), term %"
			 PRIu64 ", commit_seq %" PRIu64 ", applied_seq %" PRIu64 ", commit_index %"
			 PRIu64 ", last_index %" PRIu64 "\n", n->cluster_id, n->cfg.node_id,
			 role_name(s.state), s.state == RAFT_LEADER && !s.ready ? " (catching up)" :
			 "", s.leader_id, s.leader_address[0] ? s.leader_address : "-", s.term,
			 s.applied_seq, sl_db_applied_seq(n->db), s.commit_index, s.last_index);
	len = k > 0 ? (size_t)k : 0;
	for (unsigned i = 0; i < s.n_servers && len < cap; i++) {
		const char *role = s.servers[i].role == RAFT_VOTER ? "voter" :
				   s.servers[i].role == RAFT_STANDBY ? "standby" : "spare";
		if (s.state == RAFT_LEADER)
			k = snprintf(buf + len, cap - len, "  node %" PRIu64 " %s %s: match_index %"
				     PRIu64 ", lag %" PRIu64 " entries\n", s.servers[i].id,
				     s.servers[i].address, role, s.servers[i].match_index,
				     s.last_index > s.servers[i].match_index ?
					     s.last_index - s.servers[i].match_index : 0);
		else
			k = snprintf(buf + len, cap - len, "  node %" PRIu64 " %s %s%s\n",
				     s.servers[i].id, s.servers[i].address, role,
				     s.servers[i].id == s.leader_id ? " (leader)" : "");
		len += k > 0 ? (size_t)k : 0;
	}
	if (s.state != RAFT_LEADER && len < cap)
		snprintf(buf + len, cap - len, "  (per-follower lag: ask the leader)\n");
}

static int param_u64(const char *(*param)(void *ctx, const char *key), void *ctx,
		     const char *key, uint64_t max, uint64_t *out)
{
	const char *v = param(ctx, key);
	char *end;
	if (!v || !v[0])
		return -1;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (*end || errno || x > max)
		return -1;
	*out = x;
	return 0;
}

/* Reads over the network, on any node: GET /order?locate=&ref=, /trade?match=,
 * /replay?from=&count= (events in order, as many as fit; "next" says where to go on). Each
 * answer says the sequence it reflects (applied_seq) and the node's role: a follower answers
 * up to what it applied. 0 when path is not one of them. */
static int reads(struct sl_node *n, const char *path,
		 const char *(*param)(void *ctx, const char *key), void *ctx, char *out,
		 size_t cap, int *status)
{
	struct sl_repl_status rs;
	sl__repl_get_status(n->repl, &rs);
	uint64_t applied = sl_db_applied_seq(n->db), a = 0, b = 0;
	int k = snprintf(out, cap, "{\"node\":%u,\"role\":\"%s\",\"applied_seq\":%" PRIu64 ",",
			 n->cfg.node_id, role_name(rs.state), applied);
	size_t len = k > 0 && (size_t)k < cap ? (size_t)k : 0;
	int r;
	*status = 400;
	if (!strcmp(path, "/order") || !strcmp(path, "/trade")) {
		int order = path[1] == 'o';
		if (order ? param_u64(param, ctx, "locate", 65535, &a) ||
				    param_u64(param, ctx, "ref", UINT64_MAX, &b)
			  : param_u64(param, ctx, "match", UINT64_MAX, &a)) {
			snprintf(out + len, cap - len, "\"error\":\"%s\"}\n",
				 order ? "locate and ref expected" : "match expected");
			return 1;
		}
		char obj[2048];
		if (order) {
			struct sl_order o;
			if ((r = sl_db_get_order(n->db, (uint16_t)a, b, &o)) == 0)
				sl_order_format(&o, SL_FORMAT_JSON, obj, sizeof(obj));
		} else {
			struct sl_trade t;
			if ((r = sl_db_get_trade(n->db, a, &t)) == 0)
				sl_trade_format(&t, SL_FORMAT_JSON, obj, sizeof(obj));
		}
		*status = r == 0 ? 200 : r == SL_ENOTFOUND ? 404 : 500;
		if (r)
			snprintf(out + len, cap - len, "\"error\":\"%s\"}\n", sl_strerror(r));
		else
			snprintf(out + len, cap - len, "\"%s\":%s}\n", order ? "order" : "trade",
				 obj);
		return 1;
	}
	if (strcmp(path, "/replay"))
		return 0;
	uint64_t count = 1000;
	if (param_u64(param, ctx, "from", UINT64_MAX, &a) ||
	    (param(ctx, "count") && param_u64(param, ctx, "count", 100000, &count))) {
		snprintf(out + len, cap - len, "\"error\":\"from (and count <= 100000) "
			 "expected\"}\n");
		return 1;
	}
	struct sl_iter *it;
	if ((r = sl_iter_open(n->db, a, &it)) < 0) {
		*status = 500;
		snprintf(out + len, cap - len, "\"error\":\"%s\"}\n", sl_strerror(r));
		return 1;
	}
	k = snprintf(out + len, cap - len, "\"events\":[");
	len += k > 0 ? (size_t)k : 0;
	uint64_t next = a, got = 0;
	char line[2048];
	while (got < count) {
		struct sl_event ev;
		if ((r = sl_iter_next(it, &ev)))
			break;
		int l = sl_event_format(&ev, SL_FORMAT_JSON, line, sizeof(line));
		/* Room for this one, the closing part and a margin, or stop here. */
		if (l < 0 || len + (size_t)l + 128 >= cap)
			break;
		len += (size_t)snprintf(out + len, cap - len, "%s%s", got ? "," : "", line);
		next = ev.seq + 1;
		got++;
	}
	sl_iter_close(it);
	*status = r == 0 || r == SL_EEND ? 200 : 500;
	snprintf(out + len, cap - len, "],\"count\":%" PRIu64 ",\"next\":%" PRIu64 "%s%s%s}\n",
		 got, next, *status == 200 ? "" : ",\"error\":\"",
		 *status == 200 ? "" : sl_strerror(r), *status == 200 ? "" : "\"");
	return 1;
}

static int admin(void *arg, const char *method, const char *path,
		 const char *(*param)(void *ctx, const char *key), void *ctx, char *out,
		 size_t cap, const char **ctype)
{
	struct sl_node *n = arg;
	int status;
	if (!strcmp(method, "GET") && reads(n, path, param, ctx, out, cap, &status))
		return status;
	if (!strcmp(path, "/status") && !strcmp(method, "GET")) {
		const char *fmt = param(ctx, "format");
		if (fmt && !strcmp(fmt, "text")) {
			*ctype = "text/plain";
			status_text(n, out, cap);
		} else {
			sl__node_status_json(n, out, cap);
		}
		return 200;
	}
	int op = !strcmp(path, "/cluster/add") ? OP_ADD :
		 !strcmp(path, "/cluster/remove") ? OP_REMOVE :
		 !strcmp(path, "/cluster/transfer") ? OP_TRANSFER : OP_NONE;
	if (op == OP_NONE) {
		snprintf(out, cap, "{\"error\":\"no such resource\"}\n");
		return 404;
	}
	if (strcmp(method, "POST")) {
		snprintf(out, cap, "{\"error\":\"use POST\"}\n");
		return 405;
	}
	const char *ids = param(ctx, "id"), *address = param(ctx, "address");
	unsigned long id = 0;
	if ((ids && parse_uint(ids, 1u << 30, &id)) || (op != OP_TRANSFER && !id) ||
	    (op == OP_ADD && (!address || !strchr(address, ':') || strlen(address) >= 128))) {
		snprintf(out, cap, "{\"error\":\"bad or missing id/address\"}\n");
		return 400;
	}
	return run_op(n, op, id, address, out, cap);
}

/* ---- Open / close ------------------------------------------------------------------------- */

static int fail(int r, const char *what)
{
	fprintf(stderr, "sluice: cluster: %s: %s\n", what, r > 0 ? raft_strerror(r) :
		sl_strerror(r));
	return r > 0 ? -EIO : r;
}

static int start_raft(struct sl_node *n, const uint8_t *key, size_t key_len)
{
	const struct sl_node_config *c = &n->cfg;
	int r;
	if ((r = uv_loop_init(&n->loop)))
		return fail(-EIO, "libuv loop");
	n->loop_init = 1;
	if ((r = raft_uv_tcp_init(&n->tcp, &n->loop)))
		return fail(r, "raft tcp transport");
	n->tcp_init = 1;
	if (c->raft_bind && (r = raft_uv_tcp_set_bind_address(&n->tcp, c->raft_bind)))
		return fail(r, "--raft-bind");
	if ((r = sl__auth_new(&n->tcp, &n->loop, key, key_len, n->cluster_id, &n->auth)))
		return fail(r, "peer authentication");
	if ((r = raft_uv_init(&n->io, &n->loop, n->raft_dir, sl__auth_transport(n->auth))))
		return fail(r, "raft storage");
	n->io_init = 1;
	/* raft_uv 0.15 implements async_work but says version 1, which rules out asynchronous
	 * snapshots (raft's own later releases say 2). */
	n->io.version = 2;
	/* Big segments: raft_uv stalls appends for tens of milliseconds when it moves to a new
	 * segment; at 8 MiB (its default) that is every second or so at 100k msg/s. */
	raft_uv_set_segment_size(&n->io, (size_t)(c->segment_mb ? c->segment_mb : 64) << 20);
	if ((r = raft_init(&n->raft, &n->io, sl__repl_fsm(n->repl), c->node_id, n->self_addr)))
		return fail(r, "raft");
	n->raft_init = 1;
	n->raft.data = n;
	raft_set_election_timeout(&n->raft, c->election_ms ? c->election_ms : 200);
	raft_set_heartbeat_timeout(&n->raft, c->heartbeat_ms ? c->heartbeat_ms : 50);
	raft_set_pre_vote(&n->raft, true);
	raft_set_snapshot_threshold(&n->raft, c->snapshot_threshold ? c->snapshot_threshold :
			4096);
	/* Entries kept behind a snapshot: a follower that far behind catches up from the log. */
	unsigned thr = c->snapshot_threshold ? c->snapshot_threshold : 4096;
	raft_set_snapshot_trailing(&n->raft, c->snapshot_trailing ? c->snapshot_trailing :
				   thr / 4 < 1024 ? thr / 4 + 1 : 1024);
	if (!c->join) {
		struct raft_configuration conf;
		raft_configuration_init(&conf);
		for (unsigned i = 0; i < n->npeers; i++)
			if ((r = raft_configuration_add(&conf, n->peers[i].id, n->peers[i].address,
							RAFT_VOTER))) {
				raft_configuration_close(&conf);
				return fail(r, "raft configuration");
			}
		r = raft_bootstrap(&n->raft, &conf);
		raft_configuration_close(&conf);
		if (r && r != RAFT_CANTBOOTSTRAP) /* CANTBOOTSTRAP: it has state already */
			return fail(r, "raft bootstrap");
	}
	sl__repl_attach(n->repl, &n->raft, kick, n);
	uv_async_init(&n->loop, &n->async, on_async);
	n->async.data = n;
	uv_timer_init(&n->loop, &n->timer);
	n->timer.data = n;
	uv_timer_start(&n->timer, on_timer, POLL_MS, POLL_MS);
	if ((r = raft_start(&n->raft))) {
		fprintf(stderr, "sluice: cluster: raft: %s\n", raft_errmsg(&n->raft));
		return fail(r, "raft start");
	}
	if (pthread_create(&n->thread, NULL, loop_main, n))
		return fail(-EAGAIN, "raft thread");
	n->thread_started = 1;
	return 0;
}

int sl__node_open(const struct sl_node_config *nc, const struct sl_options *o,
		  struct sl_node **out)
{
	if (!nc->cluster_id || !nc->cluster_id[0] || strlen(nc->cluster_id) >= 64 ||
	    !nc->node_id || !nc->peers || !nc->key_file || !o->data_dir) {
		fprintf(stderr, "sluice: cluster: --cluster-id (< 64 chars), --node, --peers and "
			"--cluster-key-file are all required\n");
		return SL_ECONFIG;
	}
	/* libuv writes to raft's TCP streams with write(2): a peer that died would end this
	 * process with SIGPIPE instead of a failed write that raft handles. */
	signal(SIGPIPE, SIG_IGN);
	struct sl_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->cfg = *nc;
	pthread_mutex_init(&n->opmu, NULL);
	pthread_cond_init(&n->opcv, NULL);
	snprintf(n->cluster_id, sizeof(n->cluster_id), "%s", nc->cluster_id);
	uint8_t key[SL_AUTH_MAX_KEY];
	size_t key_len = 0;
	int r = parse_peers(n->peers, &n->npeers, nc->peers);
	if (!r && nc->data_peers && parse_peers(n->data_peers, &n->ndata_peers, nc->data_peers)) {
		fprintf(stderr, "sluice: cluster: --data-peers \"%s\": expected ID=HOST:PORT,...\n",
			nc->data_peers);
		r = SL_ECONFIG;
		goto out_free;
	}
	if (r) {
		fprintf(stderr, "sluice: cluster: --peers \"%s\": expected ID=HOST:PORT,... with "
			"distinct ids (1..) and addresses, at most %d\n", nc->peers,
			SL_NODE_MAX_PEERS);
		goto out_free;
	}
	for (unsigned i = 0; i < n->npeers; i++)
		if (n->peers[i].id == nc->node_id)
			n->self_addr = n->peers[i].address;
	if (!n->self_addr) {
		fprintf(stderr, "sluice: cluster: node %u is not in --peers\n", nc->node_id);
		r = SL_ECONFIG;
		goto out_free;
	}
	if ((r = sl__auth_read_key(nc->key_file, key, sizeof(key), &key_len)))
		goto out_free;
	if (o->flags & SL_OPEN_CREATE)
		mkdir(o->data_dir, 0755);
	snprintf(n->raft_dir, sizeof(n->raft_dir), "%s/raft", o->data_dir);
	if (mkdir(n->raft_dir, 0755) && errno != EEXIST) {
		r = -errno;
		fprintf(stderr, "sluice: cluster: %s: %s\n", n->raft_dir, strerror(errno));
		goto out_free;
	}
	/* An empty local log: the offline tools (sluice replay, verify) read the tables, which
	 * hold everything after a clean stop. Cluster mode itself never writes to it. */
	char wal[4200];
	snprintf(wal, sizeof(wal), "%s/wal", o->data_dir);
	mkdir(wal, 0755);
	if ((r = sl__repl_new(NULL, &n->repl)))
		goto out_free;
	struct sl_log log;
	sl__repl_log(n->repl, &log);
	/* The engine binds to the log before raft starts: raft's recovery (its snapshot, then
	 * its entries) goes through the engine's apply path like everything after. */
	if ((r = sl__db_open_log(o, &log, &n->db))) {
		fprintf(stderr, "sluice: cluster: opening %s: %s\n", o->data_dir, sl_strerror(r));
		goto out_free;
	}
	/* Snapshots' tables: pinned in DATA/snap, served on the data address, fetched into
	 * DATA/snap-in when this node installs one. */
	snprintf(n->snap_root, sizeof(n->snap_root), "%s/snap", o->data_dir);
	snprintf(n->snap_in, sizeof(n->snap_in), "%s/snap-in", o->data_dir);
	mkdir(n->snap_root, 0755);
	memcpy(n->key, key, key_len);
	n->key_len = key_len;
	char daddr[160];
	data_address(n, nc->node_id, n->self_addr, daddr, sizeof(daddr));
	struct sl_snap_auth au = { n->key, n->key_len, n->cluster_id, nc->node_id };
	if ((r = sl__snapsrv_open(nc->data_bind ? nc->data_bind : daddr, n->snap_root, &au,
				  &n->snapsrv))) {
		fprintf(stderr, "sluice: cluster: snapshot channel on %s: %s\n",
			nc->data_bind ? nc->data_bind : daddr, sl_strerror(r));
		goto out_free;
	}
	struct sl_repl_snap_ops so = { snap_take, snap_install, snap_flush, n };
	sl__repl_set_snap_ops(n->repl, &so);
	sl__snapsrv_set_info(n->snapsrv, node_info, n);
	sl__snapsrv_set_pin(n->snapsrv, pin_now, n);
	if ((r = check_fresh_start(n)))
		goto out_free;
	if ((r = start_raft(n, key, key_len)))
		goto out_free;
	if (nc->admin && (r = sl__http_open(nc->admin, admin, n, &n->http))) {
		fprintf(stderr, "sluice: cluster: --admin %s: %s\n", nc->admin, sl_strerror(r));
		goto out_free;
	}
	fprintf(stderr, "sluice: cluster %s: node %u at %s (snapshot data on %s), %u peers%s%s\n",
		n->cluster_id, nc->node_id, n->self_addr, nc->data_bind ? nc->data_bind : daddr,
		n->npeers, nc->admin ? ", admin on " : "", nc->admin ? nc->admin : "");
	memset(key, 0, sizeof(key));
	*out = n;
	return 0;
out_free:
	memset(key, 0, sizeof(key));
	sl__node_close(n);
	return r;
}

struct sl_db *sl__node_db(struct sl_node *n)
{
	return n->db;
}

int sl__node_close(struct sl_node *n)
{
	if (!n)
		return 0;
	sl__http_close(n->http);
	if (n->thread_started) {
		n->stopping = 1;
		uv_async_send(&n->async);
		pthread_join(n->thread, NULL);
	} else if (n->loop_init) {
		/* Started nothing: release what was set up, on this thread. */
		if (n->raft_init) {
			n->stopping = 2;
			if (n->async.data) {
				uv_close((uv_handle_t *)&n->async, NULL);
				uv_close((uv_handle_t *)&n->timer, NULL);
			}
			raft_close(&n->raft, raft_closed);
		} else {
			if (n->io_init)
				raft_uv_close(&n->io);
			if (n->tcp_init)
				raft_uv_tcp_close(&n->tcp);
		}
		uv_run(&n->loop, UV_RUN_DEFAULT);
	}
	if (n->loop_init)
		uv_loop_close(&n->loop);
	sl__auth_free(n->auth);
	sl__snapsrv_close(n->snapsrv);
	memset(n->key, 0, sizeof(n->key));
	int r = 0;
	if (n->db && n->thread_started && (r = sl__db_flush_quiesced(n->db)) < 0)
		fprintf(stderr, "sluice: cluster: writing the applied state to tables: %s\n",
			sl_strerror(r));
	int rc = sl_db_close(n->db);
	r = r < 0 ? r : rc;
	sl__repl_free(n->repl);
	pthread_mutex_destroy(&n->opmu);
	pthread_cond_destroy(&n->opcv);
	free(n);
	return r;
}
