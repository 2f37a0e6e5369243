/* test_repl_auth.c - peer authentication (repl_auth.c) over real loopback TCP: two transports
 * with the same key and cluster id connect and hand raft a stream that carries raft's bytes
 * untouched; a wrong key or another cluster id is refused on both sides. One libuv loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "repl_auth.h"
#include "sluice.h"

struct side {
	struct raft_uv_transport tcp;
	struct sl_auth *auth;
	char address[64];
};

struct run {
	uv_loop_t loop;
	struct side a, b;
	struct raft_uv_connect req;
	int connect_status, connected, accepted, closed;
	uv_stream_t *in, *out;
	char got[16];
	size_t ngot;
	uv_write_t w;
};

static void side_open(struct run *r, struct side *s, unsigned id, int port, const char *key,
		      const char *cluster)
{
	snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", port);
	assert_int_equal(raft_uv_tcp_init(&s->tcp, &r->loop), 0);
	assert_int_equal(sl__auth_new(&s->tcp, &r->loop, key, strlen(key), cluster, &s->auth), 0);
	struct raft_uv_transport *t = sl__auth_transport(s->auth);
	t->data = r;
	assert_int_equal(t->init(t, id, s->address), 0);
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address,
		      uv_stream_t *stream)
{
	struct run *r = t->data;
	assert_int_equal(id, 1);
	assert_string_equal(address, r->a.address);
	r->accepted++;
	r->in = stream;
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	struct run *r = req->data;
	r->connected++;
	r->connect_status = status;
	r->out = stream;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct run *r = h->data;
	buf->base = r->got + r->ngot;
	buf->len = sizeof(r->got) - r->ngot;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	struct run *r = s->data;
	if (n > 0)
		r->ngot += (size_t)n;
}

static void on_written(uv_write_t *w, int status)
{
	(void)w;
	assert_int_equal(status, 0);
}

static void free_handle(uv_handle_t *h)
{
	raft_free(h);
}

static void on_closed(struct raft_uv_transport *t)
{
	struct run *r = t->data;
	r->closed++;
}

static void spin(struct run *r, int (*done)(struct run *r))
{
	for (int i = 0; i < 4000 && !done(r); i++)
		uv_run(&r->loop, UV_RUN_NOWAIT), usleep(1000);
}

static int handshake_over(struct run *r)
{
	return r->connected && (r->accepted || r->connect_status);
}

static int data_in(struct run *r)
{
	return r->ngot == 5;
}

static int both_closed(struct run *r)
{
	return r->closed == 2;
}

/* A connects to B; returns connect status. The key and cluster of each side are given. */
static void pair(int port, const char *ka, const char *ca, const char *kb, const char *cb,
		 int expect_ok)
{
	struct run *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	assert_int_equal(uv_loop_init(&r->loop), 0);
	side_open(r, &r->a, 1, port, ka, ca);
	side_open(r, &r->b, 2, port + 1, kb, cb);
	struct raft_uv_transport *ta = sl__auth_transport(r->a.auth),
				 *tb = sl__auth_transport(r->b.auth);
	assert_int_equal(tb->listen(tb, on_accept), 0);
	r->req.data = r;
	assert_int_equal(ta->connect(ta, &r->req, 2, r->b.address, on_connect), 0);
	spin(r, handshake_over);
	assert_int_equal(r->connected, 1);
	struct sl_auth_stats sa, sb;
	sl__auth_get_stats(r->a.auth, &sa);
	sl__auth_get_stats(r->b.auth, &sb);
	if (expect_ok) {
		assert_int_equal(r->connect_status, 0);
		assert_int_equal(r->accepted, 1);
		assert_int_equal(sa.connected, 1);
		assert_int_equal(sb.accepted, 1);
		/* The stream carries raft's bytes from here, exactly. */
		r->in->data = r;
		assert_int_equal(uv_read_start(r->in, on_alloc, on_read), 0);
		uv_buf_t b = uv_buf_init("hello", 5);
		assert_int_equal(uv_write(&r->w, r->out, &b, 1, on_written), 0);
		spin(r, data_in);
		assert_int_equal(r->ngot, 5);
		assert_memory_equal(r->got, "hello", 5);
		uv_close((uv_handle_t *)r->in, free_handle);
		uv_close((uv_handle_t *)r->out, free_handle);
	} else {
		assert_int_not_equal(r->connect_status, 0);
		assert_int_equal(r->accepted, 0);
		assert_true(sb.refused_in == 1 || sa.refused_out == 1);
	}
	ta->close(ta, on_closed);
	tb->close(tb, on_closed);
	spin(r, both_closed);
	assert_int_equal(r->closed, 2);
	raft_uv_tcp_close(&r->a.tcp);
	raft_uv_tcp_close(&r->b.tcp);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&r->loop), 0);
	sl__auth_free(r->a.auth);
	sl__auth_free(r->b.auth);
	free(r);
}

static void test_auth_same_key_connects(void **state)
{
	(void)state;
	pair(23401, "0123456789abcdef-key", "c1", "0123456789abcdef-key", "c1", 1);
}

static void test_auth_wrong_key_refused(void **state)
{
	(void)state;
	pair(23411, "0123456789abcdef-key", "c1", "0123456789abcdef-KEY", "c1", 0);
}

static void test_auth_other_cluster_refused(void **state)
{
	(void)state;
	pair(23421, "0123456789abcdef-key", "c1", "0123456789abcdef-key", "c2", 0);
}

static void test_auth_short_key_rejected(void **state)
{
	(void)state;
	struct sl_auth *a;
	struct raft_uv_transport t;
	assert_int_equal(sl__auth_new(&t, NULL, "short", 5, "c", &a), SL_ECONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_same_key_connects),
		cmocka_unit_test(test_auth_wrong_key_refused),
		cmocka_unit_test(test_auth_other_cluster_refused),
		cmocka_unit_test(test_auth_short_key_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
