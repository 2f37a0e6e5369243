/* repl_auth.h - peer authentication for cluster traffic: a raft_uv transport that wraps
 * another (raft_uv_tcp) and, on every connection, after raft's own handshake and before raft
 * sees the stream, runs a mutual challenge-response with the shared cluster key:
 *   acceptor -> connector: nonce_a (32 random bytes)
 *   connector -> acceptor: nonce_c (32) || HMAC-SHA256(key, "sluice-c" id cluster nonce_a nonce_c)
 *   acceptor -> connector: HMAC-SHA256(key, "sluice-a" id cluster nonce_a nonce_c)
 * where id is the connector's raft id and cluster the cluster id. Each side reads exactly the
 * bytes it expects (raft's data never mixes in); a peer without the key, with another cluster
 * id, or silent for 3 s is refused, and the refusal is logged on stderr with its address.
 * Only raft's thread calls into it. repl_auth knows nothing of the FSM or the engine.
 */
#ifndef SL_REPL_AUTH_H
#define SL_REPL_AUTH_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <uv.h>

#define SL_AUTH_MIN_KEY 16
#define SL_AUTH_MAX_KEY 256

struct sl_auth;

/* Wrap inner (initialized, e.g. by raft_uv_tcp_init) in an authenticating transport *out, to
 * hand raft_uv_init. The key is copied. 0, SL_ECONFIG (key shorter than SL_AUTH_MIN_KEY or
 * longer than SL_AUTH_MAX_KEY, cluster id longer than 63), -ENOMEM. */
int sl__auth_new(struct raft_uv_transport *inner, uv_loop_t *loop, const void *key, size_t len,
		 const char *cluster_id, struct sl_auth **out);
struct raft_uv_transport *sl__auth_transport(struct sl_auth *a);
/* After raft_uv_close has closed the transport (its close callback ran). Accepts NULL. */
void sl__auth_free(struct sl_auth *a);

struct sl_auth_stats {
	uint64_t accepted, connected, refused_in, refused_out;
};
void sl__auth_get_stats(struct sl_auth *a, struct sl_auth_stats *out);

/* Read a key file: its bytes, a trailing newline dropped. 0, SL_ECONFIG (too short, too long:
 * named on stderr), -errno. */
int sl__auth_read_key(const char *path, uint8_t *key, size_t cap, size_t *len);

/* The MAC both handshakes use (here and repl_snap.c's): HMAC-SHA256(key, tag (8 bytes) ||
 * id (u64 LE) || cluster id (64 bytes, zero-padded) || na (32) || nc (32)) into out (32). */
#define SL_AUTH_NONCE 32
#define SL_AUTH_MAC 32
void sl__auth_mac(const uint8_t *key, size_t key_len, const char *tag, uint64_t id,
		  const char *cluster, const uint8_t *na, const uint8_t *nc, uint8_t *out);

#endif /* SL_REPL_AUTH_H */
