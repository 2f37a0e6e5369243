/* repl_node.h - one cluster node as sluiced runs it: the engine opened over the replicated log
 * (repl.c), canonical raft on raft_uv (its log and snapshots in DATA/raft) and raft_uv_tcp
 * wrapped in peer authentication (repl_auth.c), raft's libuv loop on its own thread, and the
 * admin endpoint (http.c): GET /status, POST /cluster/add|remove|transfer.
 */
#ifndef SL_REPL_NODE_H
#define SL_REPL_NODE_H

#include <stddef.h>

#include "sluice.h"

#define SL_NODE_MAX_PEERS 9
#define SL_NODE_DATA_PORT_OFFSET 1000

struct sl_node_config {
	const char *cluster_id;    /* required: peers of another cluster are refused */
	unsigned node_id;          /* this node's raft id (1..) */
	const char *peers;         /* "1=HOST:PORT,2=HOST:PORT,...": raft addresses (required) */
	const char *key_file;      /* the shared cluster key (required, 16..256 bytes) */
	const char *raft_bind;     /* listen here (IPv4 HOST:PORT, same port) instead of this
				      node's address in peers */
	const char *admin;         /* serve the admin endpoint here (NULL: none) */
	unsigned election_ms;      /* raft election timeout (200) */
	unsigned heartbeat_ms;     /* (50) */
	unsigned snapshot_threshold, snapshot_trailing; /* entries (4096; a quarter of the
							    threshold, at most 1024) */
	unsigned segment_mb;       /* raft log segment size, MiB (64) */
	int join;                  /* a new node: no bootstrap; it waits to be added */
	const char *data_bind;     /* serve snapshot table files here (IPv4 HOST:PORT) instead of
				      this node's data address */
	const char *data_peers;    /* "1=HOST:PORT,...": the nodes' data addresses (default: each
				      raft address with its port + SL_NODE_DATA_PORT_OFFSET) */
};

/* Parse one "key=value" (the long option names of sluiced: cluster-id, node, peers,
 * cluster-key-file, raft-bind, admin, election-ms, heartbeat-ms, snapshot-entries, join,
 * data-bind, data-peers, raft-segment-mb). The value is kept by pointer: it must
 * outlive nc. 0, or SL_ECONFIG naming the key on stderr. */
int sl__node_config_set(struct sl_node_config *nc, const char *key, const char *value);

/* Read a config file of such lines ('#' starts a comment). Its text is kept in *storage (free
 * it after the node closes). 0, SL_ECONFIG naming file and line, -errno. */
int sl__node_config_file(struct sl_node_config *nc, const char *path, char **storage);

struct sl_node;

/* Open the engine in o->data_dir over the replicated log, start raft (bootstrapping the peers
 * as voters on first start unless join) and the admin endpoint. 0, SL_ECONFIG (named on
 * stderr), or the failing step's error. */
int sl__node_open(const struct sl_node_config *nc, const struct sl_options *o,
		  struct sl_node **out);
/* The engine: append and query it as usual (appends on a follower: see sl__db_open_log). */
struct sl_db *sl__node_db(struct sl_node *n);
/* GET /status's document. Returns its length (cut at cap). Any thread. */
size_t sl__node_status_json(struct sl_node *n, char *buf, size_t cap);
/* Stop raft and the endpoint, then close the engine. Accepts NULL. The db's close result. */
int sl__node_close(struct sl_node *n);

#endif /* SL_REPL_NODE_H */
