/* repl_auth.c - the authenticating raft_uv transport (see repl_auth.h for the protocol). A
 * handshake owns its stream until it hands it to raft or closes it; its memory goes when its
 * timer, its pending write and its stream (closing) have all let go of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl_auth.h"
#include "sluice.h"

#define NONCE 32
#define MAC 32
#define HANDSHAKE_MS 3000

enum { HS_ACCEPT, HS_CONNECT };

struct hs {
	struct sl_auth *a;
	int role, step, done, refs;
	uv_stream_t *stream;
	uv_timer_t timer;
	/* One request and buffer per message: libuv may still hold the first when the second
	 * goes out (the first's callback has not necessarily run). */
	uv_write_t wreq[2];
	raft_id id;
	char address[256];
	struct raft_uv_connect ireq;    /* connect: the inner transport's request */
	struct raft_uv_connect *req;    /* connect: raft's */
	raft_uv_connect_cb cb;
	uint8_t nonce_a[NONCE], nonce_c[NONCE];
	uint8_t rbuf[NONCE + MAC], wbuf[2][NONCE + MAC];
	size_t have, need;
	struct hs *prev, *next;
};

struct sl_auth {
	struct raft_uv_transport outer;
	struct raft_uv_transport *inner;
	uv_loop_t *loop;
	uint8_t key[SL_AUTH_MAX_KEY];
	size_t key_len;
	char cluster[64];
	raft_id self;
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	int closing, inner_closed;
	unsigned handles;              /* ours still closing */
	struct hs *list;               /* handshakes under way */
	struct sl_auth_stats st;
};

static void maybe_closed(struct sl_auth *a)
{
	if (a->closing && a->inner_closed && !a->handles && !a->list && a->close_cb) {
		raft_uv_transport_close_cb cb = a->close_cb;
		a->close_cb = NULL;
		cb(&a->outer);
	}
}

static void hs_unref(struct hs *h)
{
	if (--h->refs)
		return;
	struct sl_auth *a = h->a;
	free(h);
	maybe_closed(a);
}

static void hs_unlink(struct hs *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else if (h->a->list == h)
		h->a->list = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
}

static void timer_closed(uv_handle_t *t)
{
	hs_unref(t->data);
}

static void stream_closed(uv_handle_t *s)
{
	struct hs *h = s->data;
	raft_free(s);
	h->a->handles--;
	hs_unref(h);
}

void sl__auth_mac(const uint8_t *key, size_t key_len, const char *tag, uint64_t id,
		  const char *cluster, const uint8_t *na, const uint8_t *nc, uint8_t *out)
{
	uint8_t msg[8 + 8 + 64 + 2 * NONCE] = { 0 };
	memcpy(msg, tag, 8);
	for (int i = 0; i < 8; i++)
		msg[8 + i] = (uint8_t)(id >> (8 * i));
	memcpy(msg + 16, cluster, strnlen(cluster, 63));
	memcpy(msg + 16 + 64, na, NONCE);
	memcpy(msg + 16 + 64 + NONCE, nc, NONCE);
	unsigned len = MAC;
	HMAC(EVP_sha256(), key, (int)key_len, msg, sizeof(msg), out, &len);
}

static void mac(const struct sl_auth *a, const char *tag, raft_id id, const uint8_t *na,
		const uint8_t *nc, uint8_t out[MAC])
{
	sl__auth_mac(a->key, a->key_len, tag, id, a->cluster, na, nc, out);
}

static void peer_name(uv_stream_t *s, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	snprintf(buf, cap, "?");
	if (uv_tcp_getpeername((uv_tcp_t *)s, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		char ip[64];
		uv_ip4_name(in, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(in->sin_port));
	}
}

/* Give up on a handshake: close the stream, tell raft (connect), log why (when why). */
static void hs_fail(struct hs *h, int status, const char *why)
{
	if (h->done)
		return;
	h->done = 1;
	struct sl_auth *a = h->a;
	if (why) {
		char peer[80];
		peer_name(h->stream, peer, sizeof(peer));
		if (h->role == HS_ACCEPT) {
			a->st.refused_in++;
			fprintf(stderr, "sluice: repl: refused a connection from %s (claims node %"
				PRIu64 " at %s): %s\n", peer, (uint64_t)h->id, h->address, why);
		} else {
			a->st.refused_out++;
			fprintf(stderr, "sluice: repl: refused node %" PRIu64 " at %s: %s\n",
				(uint64_t)h->id, h->address, why);
		}
	}
	uv_read_stop(h->stream);
	h->stream->data = h;
	a->handles++;
	uv_close((uv_handle_t *)h->stream, stream_closed); /* the stream's ref goes there */
	hs_unlink(h);
	if (h->role == HS_CONNECT)
		h->cb(h->req, NULL, status);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, timer_closed);
	maybe_closed(a);
}

static void hs_succeed(struct hs *h)
{
	h->done = 1;
	struct sl_auth *a = h->a;
	uv_read_stop(h->stream);
	h->stream->data = NULL;
	hs_unlink(h);
	uv_stream_t *s = h->stream;
	h->refs--; /* the stream is raft's now */
	if (h->role == HS_ACCEPT) {
		a->st.accepted++;
		a->accept_cb(&a->outer, h->id, h->address, s);
	} else {
		a->st.connected++;
		h->cb(h->req, s, 0);
	}
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
	hs_fail(t->data, RAFT_NOCONNECTION, "no authentication within 3 s");
}

static void on_alloc(uv_handle_t *s, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct hs *h = s->data;
	/* Exactly what the protocol's next message still lacks: raft's bytes never land here. */
	buf->base = (char *)h->rbuf + h->have;
	buf->len = h->need - h->have;
}

static void read_done(struct hs *h);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	struct hs *h = s->data;
	if (h->done)
		return;
	if (n < 0) {
		hs_fail(h, RAFT_NOCONNECTION, "the peer closed the connection during "
			"authentication (it may lack the cluster key)");
		return;
	}
	h->have += (size_t)n;
	if (h->have == h->need) {
		uv_read_stop(s);
		read_done(h);
	}
}

static void read_exactly(struct hs *h, size_t n)
{
	h->have = 0;
	h->need = n;
	int r = uv_read_start(h->stream, on_alloc, on_read);
	if (r)
		hs_fail(h, RAFT_NOCONNECTION, uv_strerror(r));
}

static void on_written(uv_write_t *w, int status)
{
	struct hs *h = w->data;
	if (!h->done) {
		if (status < 0)
			hs_fail(h, RAFT_NOCONNECTION, uv_strerror(status));
		else if (h->role == HS_ACCEPT && w == &h->wreq[1])
			hs_succeed(h); /* mac_a is out: the stream is raft's */
	}
	hs_unref(h);
}

/* Write wbuf[step] (n bytes) with wreq[step]. */
static void write_bytes(struct hs *h, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)h->wbuf[h->step], (unsigned)n);
	h->wreq[h->step].data = h;
	h->refs++;
	int r = uv_write(&h->wreq[h->step], h->stream, &b, 1, on_written);
	if (r) {
		h->refs--;
		hs_fail(h, RAFT_NOCONNECTION, uv_strerror(r));
	}
}

static void read_done(struct hs *h)
{
	struct sl_auth *a = h->a;
	uint8_t want[MAC];
	if (h->role == HS_ACCEPT) {
		/* nonce_c || mac_c */
		memcpy(h->nonce_c, h->rbuf, NONCE);
		mac(a, "sluice-c", h->id, h->nonce_a, h->nonce_c, want);
		if (CRYPTO_memcmp(want, h->rbuf + NONCE, MAC)) {
			hs_fail(h, RAFT_NOCONNECTION, "wrong cluster key or cluster id");
			return;
		}
		h->step = 1;
		mac(a, "sluice-a", h->id, h->nonce_a, h->nonce_c, h->wbuf[1]);
		write_bytes(h, MAC);
		return;
	}
	if (h->step == 0) {
		memcpy(h->nonce_a, h->rbuf, NONCE);
		if (RAND_bytes(h->nonce_c, NONCE) != 1) {
			hs_fail(h, RAFT_NOCONNECTION, "no random bytes");
			return;
		}
		h->step = 1;
		memcpy(h->wbuf[1], h->nonce_c, NONCE);
		mac(a, "sluice-c", a->self, h->nonce_a, h->nonce_c, h->wbuf[1] + NONCE);
		write_bytes(h, NONCE + MAC);
		if (!h->done)
			read_exactly(h, MAC);
		return;
	}
	mac(a, "sluice-a", a->self, h->nonce_a, h->nonce_c, want);
	if (CRYPTO_memcmp(want, h->rbuf, MAC)) {
		hs_fail(h, RAFT_NOCONNECTION, "it does not hold this cluster's key");
		return;
	}
	hs_succeed(h);
}

static struct hs *hs_new(struct sl_auth *a, int role, raft_id id, const char *address)
{
	struct hs *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->a = a;
	h->role = role;
	h->id = id;
	snprintf(h->address, sizeof(h->address), "%s", address ? address : "");
	return h;
}

/* The stream is ours: start the handshake, with a deadline. */
static void hs_start(struct hs *h, uv_stream_t *s)
{
	struct sl_auth *a = h->a;
	h->stream = s;
	s->data = h;
	/* raft_uv_tcp leaves Nagle on: a follower's small append results then wait for the
	 * leader's delayed ACK of the one before (the leader never sends data back on that
	 * connection), which stalled commits by up to tens of milliseconds. */
	if (s->type == UV_TCP)
		uv_tcp_nodelay((uv_tcp_t *)s, 1);
	h->refs = 2; /* the stream (until handed over or closed) and the timer */
	h->next = a->list;
	if (a->list)
		a->list->prev = h;
	a->list = h;
	uv_timer_init(a->loop, &h->timer);
	h->timer.data = h;
	uv_timer_start(&h->timer, on_timeout, HANDSHAKE_MS, 0);
	if (h->role == HS_ACCEPT) {
		if (RAND_bytes(h->nonce_a, NONCE) != 1) {
			hs_fail(h, RAFT_NOCONNECTION, "no random bytes");
			return;
		}
		memcpy(h->wbuf[0], h->nonce_a, NONCE);
		write_bytes(h, NONCE);
		if (!h->done)
			read_exactly(h, NONCE + MAC);
	} else {
		read_exactly(h, NONCE);
	}
}

/* ---- The transport ------------------------------------------------------------------------ */

static void free_stream(uv_handle_t *s)
{
	raft_free(s);
}

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct sl_auth *a = t->impl;
	a->self = id;
	int r = a->inner->init(a->inner, id, address);
	if (r)
		snprintf(t->errmsg, sizeof(t->errmsg), "%s", a->inner->errmsg);
	return r;
}

static void inner_accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
			   uv_stream_t *s)
{
	struct sl_auth *a = inner->data;
	struct hs *h = a->closing ? NULL : hs_new(a, HS_ACCEPT, id, address);
	if (!h) {
		s->data = NULL;
		uv_close((uv_handle_t *)s, free_stream);
		return;
	}
	hs_start(h, s);
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct sl_auth *a = t->impl;
	a->accept_cb = cb;
	int r = a->inner->listen(a->inner, inner_accepted);
	if (r)
		snprintf(t->errmsg, sizeof(t->errmsg), "%s", a->inner->errmsg);
	return r;
}

static void inner_connected(struct raft_uv_connect *ireq, uv_stream_t *s, int status)
{
	struct hs *h = ireq->data;
	if (status || h->a->closing) {
		if (!status) {
			s->data = NULL;
			uv_close((uv_handle_t *)s, free_stream);
			status = RAFT_CANCELED;
		}
		h->cb(h->req, NULL, status);
		struct sl_auth *a = h->a;
		free(h);
		maybe_closed(a);
		return;
	}
	hs_start(h, s);
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
		     const char *address, raft_uv_connect_cb cb)
{
	struct sl_auth *a = t->impl;
	struct hs *h = hs_new(a, HS_CONNECT, id, address);
	if (!h)
		return RAFT_NOMEM;
	h->req = req;
	h->cb = cb;
	h->ireq.data = h;
	int r = a->inner->connect(a->inner, &h->ireq, id, address, inner_connected);
	if (r) {
		snprintf(t->errmsg, sizeof(t->errmsg), "%s", a->inner->errmsg);
		free(h);
	}
	return r;
}

static void inner_closed(struct raft_uv_transport *inner)
{
	struct sl_auth *a = inner->data;
	a->inner_closed = 1;
	maybe_closed(a);
}

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct sl_auth *a = t->impl;
	a->closing = 1;
	a->close_cb = cb;
	while (a->list)
		hs_fail(a->list, RAFT_CANCELED, NULL);
	a->inner->close(a->inner, inner_closed);
}

int sl__auth_new(struct raft_uv_transport *inner, uv_loop_t *loop, const void *key, size_t len,
		 const char *cluster_id, struct sl_auth **out)
{
	if (len < SL_AUTH_MIN_KEY || len > SL_AUTH_MAX_KEY || !cluster_id ||
	    strlen(cluster_id) >= 64)
		return SL_ECONFIG;
	struct sl_auth *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->inner = inner;
	inner->data = a;
	a->loop = loop;
	memcpy(a->key, key, len);
	a->key_len = len;
	snprintf(a->cluster, sizeof(a->cluster), "%s", cluster_id);
	a->outer.impl = a;
	a->outer.init = t_init;
	a->outer.listen = t_listen;
	a->outer.connect = t_connect;
	a->outer.close = t_close;
	*out = a;
	return 0;
}

struct raft_uv_transport *sl__auth_transport(struct sl_auth *a)
{
	return &a->outer;
}

void sl__auth_free(struct sl_auth *a)
{
	if (!a)
		return;
	OPENSSL_cleanse(a->key, sizeof(a->key));
	free(a);
}

void sl__auth_get_stats(struct sl_auth *a, struct sl_auth_stats *out)
{
	*out = a->st;
}

int sl__auth_read_key(const char *path, uint8_t *key, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		fprintf(stderr, "sluice: repl: cluster key file %s: %s\n", path, strerror(errno));
		return e;
	}
	uint8_t buf[SL_AUTH_MAX_KEY + 2];
	ssize_t n = read(fd, buf, sizeof(buf));
	int e = n < 0 ? -errno : 0;
	close(fd);
	if (e)
		return e;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < SL_AUTH_MIN_KEY || (size_t)n > cap || n > SL_AUTH_MAX_KEY) {
		fprintf(stderr, "sluice: repl: cluster key file %s: %zd bytes; it needs %d to %d\n",
			path, n, SL_AUTH_MIN_KEY, SL_AUTH_MAX_KEY);
		return SL_ECONFIG;
	}
	memcpy(key, buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof(buf));
	*len = (size_t)n;
	return 0;
}
