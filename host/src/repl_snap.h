/* repl_snap.h - the table files of replication snapshots, on their own channel. A snapshot's
 * raft buffer carries only a description of its tables (sl__snap_desc_*); every node keeps the
 * files of the snapshots it holds as hard links in DATA/snap/<id:016x>/ and serves them on its
 * data address; a node installing a snapshot fetches them one by one into a staging directory,
 * so no table is ever held in memory whole.
 *
 * Wire (TCP, little-endian): the server says hello: magic "SLSV"(u32) version(u32) nonce_a[32];
 * the client answers id(u64) nonce_c[32] HMAC(key, "sluice-d" id cluster na nc)[32]; the server
 * proves the key back with HMAC(key, "sluice-s" ...)[32] or closes (a refusal is logged with the
 * address). Then requests: op(u32, 1 = get) reserved(u32) snapshot id(u64) file_no(u64); the
 * reply: status(i32: 0 or -errno) reserved(u32) size(u64), then chunks of len(u32) crc32c(u32)
 * data[len], ended by a chunk of length 0 whose crc is the CRC32C of the whole file. The client
 * checks every chunk, the whole and the size the description gave. Op 2 (info, the other
 * fields zero) answers status(i32) reserved(u32) applied_seq(u64) term(u64): a node starting
 * with an empty directory asks its peers whether the cluster has run (repl_node.c). Op 3
 * (latest) answers status reserved length(u64) then checkpoint(u64) and the description of
 * the newest snapshot the server holds (root/<id>/DESC): an installer whose snapshot's files
 * are nowhere any more takes a newer one instead.
 */
#ifndef SL_REPL_SNAP_H
#define SL_REPL_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

#define SL_SNAP_DESC_MAGIC 0x44534c53u /* "SLSD" */

/* A description: the snapshot's id and its tables (file_no names the file in the snapshot's
 * directory). encode: *out malloc'd. decode: *t malloc'd; SL_ECORRUPT for a bad one. */
int sl__snap_desc_encode(uint64_t id, const struct sl_table_info *t, size_t n, void **out,
			 size_t *len);
int sl__snap_desc_decode(const void *p, size_t len, uint64_t *id, struct sl_table_info **t,
			 size_t *n);

/* Who is talking: the shared cluster key, the cluster id, this node's id. Copied where kept. */
struct sl_snap_auth {
	const uint8_t *key;
	size_t key_len;
	const char *cluster_id;
	uint64_t node_id;
};

struct sl_snapsrv;
struct sl_snapsrv_stats {
	uint64_t connections, refused, files_served, bytes_served, missing;
};

/* Serve root's snapshots (root/<id:016x>/<file_no:016x>.sst) on addr (IPv4 HOST:PORT), a
 * thread per connection. 0, SL_ECONFIG (bad address), -errno (bind). */
int sl__snapsrv_open(const char *addr, const char *root, const struct sl_snap_auth *auth,
		     struct sl_snapsrv **out);
/* Stops accepting, cuts open connections, waits for their threads. Accepts NULL. */
void sl__snapsrv_close(struct sl_snapsrv *s);
void sl__snapsrv_get_stats(struct sl_snapsrv *s, struct sl_snapsrv_stats *out);
/* What op 2 (info) answers: this node's applied sequence and raft term (0 or -errno). */
void sl__snapsrv_set_info(struct sl_snapsrv *s,
			  int (*info)(void *arg, uint64_t *applied_seq, uint64_t *term), void *arg);
/* Called before op 3 answers: pin the node's current tables as a new snapshot (so the asker
 * gets the newest state there is, not the last periodic snapshot). */
void sl__snapsrv_set_pin(struct sl_snapsrv *s, int (*pin)(void *arg), void *arg);
/* Tests: flip one bit in the data of every chunk number n (1-based) it sends after now (0: never). */
void sl__snapsrv_damage_chunk(struct sl_snapsrv *s, unsigned n);

/* A client connection. open: connect and authenticate within timeout_ms. 0, -ECONNREFUSED,
 * -ETIMEDOUT, -EACCES (the server refused us or could not prove the key), SL_ECONFIG (bad
 * address). get: fetch one table of one snapshot into dst (created, fsynced): 0, -ENOENT (the
 * peer does not hold it), SL_ECORRUPT (a chunk's or the whole file's CRC32C, or its size, is
 * not what was promised: dst is removed), -errno. why (may be NULL) says which in a line. */
struct sl_snapcli;
int sl__snapcli_open(const char *addr, const struct sl_snap_auth *auth, unsigned timeout_ms,
		     struct sl_snapcli **out, char *why, size_t cap);
int sl__snapcli_get(struct sl_snapcli *c, uint64_t id, uint64_t file_no, uint64_t size,
		    const char *dst, char *why, size_t cap);
/* The newest snapshot the peer holds (op 3): its tables' checkpoint and description (malloc'd).
 * -ENOENT when it holds none whose description it kept. */
int sl__snapcli_latest(struct sl_snapcli *c, uint64_t *checkpoint, void **desc, size_t *len);
/* Ask the peer what it holds (op 2): 0 with its applied sequence and term, or an error. */
int sl__snapcli_info(struct sl_snapcli *c, uint64_t *applied_seq, uint64_t *term);
void sl__snapcli_close(struct sl_snapcli *c);

#endif /* SL_REPL_SNAP_H */
