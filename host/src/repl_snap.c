/* repl_snap.c - snapshot table files on their own channel (see repl_snap.h): the description
 * codec, the server (an accepting thread and a thread per connection, blocking sockets with
 * timeouts) and the client.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repl_auth.h"
#include "repl_snap.h"
#include "sluice.h"

#define SRV_MAGIC   0x56534c53u /* "SLSV" */
#define SRV_VERSION 1
#define DESC_VERSION 1
#define CHUNK       (1u << 20)
#define IO_TIMEOUT_S 10
#define MAX_CONNS   16

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire integers are little-endian");

static uint32_t crc32c(const void *p, size_t len, uint32_t seed)
{
	return crc32_iscsi((unsigned char *)p, (int)len, seed);
}

/* ---- Description -------------------------------------------------------------------------- */

struct desc_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t reserved;
	uint64_t id;
	uint32_t n;
	uint32_t crc; /* of the whole description with this field zero */
};

struct desc_table {
	uint64_t file_no;
	uint32_t level, smallest_len, largest_len, reserved;
	uint64_t file_bytes, entries, min_seq, max_seq;
	uint8_t smallest[SL_MANIFEST_MAX_KEY], largest[SL_MANIFEST_MAX_KEY];
};
_Static_assert(sizeof(struct desc_hdr) == 24, "description header is 24 bytes");
_Static_assert(sizeof(struct desc_table) == 184, "description table is 184 bytes");

int sl__snap_desc_encode(uint64_t id, const struct sl_table_info *t, size_t n, void **out,
			 size_t *len)
{
	size_t sz = sizeof(struct desc_hdr) + n * sizeof(struct desc_table);
	uint8_t *p = calloc(1, sz);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct desc_table d = {
			.file_no = t[i].file_no, .level = t[i].level,
			.smallest_len = t[i].smallest_len, .largest_len = t[i].largest_len,
			.file_bytes = t[i].file_bytes, .entries = t[i].entries,
			.min_seq = t[i].min_seq, .max_seq = t[i].max_seq,
		};
		memcpy(d.smallest, t[i].smallest, sizeof(d.smallest));
		memcpy(d.largest, t[i].largest, sizeof(d.largest));
		memcpy(p + sizeof(struct desc_hdr) + i * sizeof(d), &d, sizeof(d));
	}
	struct desc_hdr h = { .magic = SL_SNAP_DESC_MAGIC, .version = DESC_VERSION, .id = id,
			      .n = (uint32_t)n };
	memcpy(p, &h, sizeof(h));
	h.crc = crc32c(p, sz, 0xffffffffu);
	memcpy(p, &h, sizeof(h));
	*out = p;
	*len = sz;
	return 0;
}

int sl__snap_desc_decode(const void *p, size_t len, uint64_t *id, struct sl_table_info **t,
			 size_t *n)
{
	struct desc_hdr h;
	if (len < sizeof(h))
		return SL_ECORRUPT;
	memcpy(&h, p, sizeof(h));
	const uint8_t *q = (const uint8_t *)p + sizeof(h);
	struct desc_hdr z = h;
	z.crc = 0;
	if (h.magic != SL_SNAP_DESC_MAGIC || h.version != DESC_VERSION || h.reserved ||
	    (len - sizeof(h)) / sizeof(struct desc_table) < h.n ||
	    len - sizeof(h) != (size_t)h.n * sizeof(struct desc_table) ||
	    crc32c(q, len - sizeof(h), crc32c(&z, sizeof(z), 0xffffffffu)) != h.crc)
		return SL_ECORRUPT;
	struct sl_table_info *out = calloc(h.n ? h.n : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (uint32_t i = 0; i < h.n; i++) {
		struct desc_table d;
		memcpy(&d, q + i * sizeof(d), sizeof(d));
		if (d.level >= SL_LEVELS || d.smallest_len > SL_MANIFEST_MAX_KEY ||
		    d.largest_len > SL_MANIFEST_MAX_KEY) {
			free(out);
			return SL_ECORRUPT;
		}
		out[i] = (struct sl_table_info){
			.file_no = d.file_no, .level = d.level, .file_bytes = d.file_bytes,
			.entries = d.entries, .smallest_len = d.smallest_len,
			.largest_len = d.largest_len, .min_seq = d.min_seq, .max_seq = d.max_seq,
		};
		memcpy(out[i].smallest, d.smallest, sizeof(d.smallest));
		memcpy(out[i].largest, d.largest, sizeof(d.largest));
	}
	*id = h.id;
	*t = out;
	*n = h.n;
	return 0;
}

/* ---- Sockets ------------------------------------------------------------------------------- */

static int parse_addr(const char *addr, struct sockaddr_in *out)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		return SL_ECONFIG;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || port == 0 || port > 65535)
		return SL_ECONFIG;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, NULL, &hints, &ai))
		return SL_ECONFIG;
	memcpy(out, ai->ai_addr, sizeof(*out));
	out->sin_port = htons((uint16_t)port);
	freeaddrinfo(ai);
	return 0;
}

static void set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* All of n bytes, or -errno (-ETIMEDOUT for a timeout, -ECONNRESET for a closed peer). */
static int read_all(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t got = recv(fd, p, n, 0);
		if (got == 0)
			return -ECONNRESET;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t got = send(fd, p, n, MSG_NOSIGNAL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static void peer_name(int fd, char *buf, size_t cap)
{
	struct sockaddr_in in;
	socklen_t len = sizeof(in);
	snprintf(buf, cap, "?");
	if (getpeername(fd, (struct sockaddr *)&in, &len) == 0 && in.sin_family == AF_INET) {
		char ip[64];
		inet_ntop(AF_INET, &in.sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(in.sin_port));
	}
}

struct hello {
	uint32_t magic, version;
	uint8_t nonce[SL_AUTH_NONCE];
};

struct answer {
	uint64_t id;
	uint8_t nonce[SL_AUTH_NONCE];
	uint8_t mac[SL_AUTH_MAC];
};

struct request {
	uint32_t op, reserved;
	uint64_t snap_id, file_no;
};

struct reply {
	int32_t status;
	uint32_t reserved;
	uint64_t size;
};

struct chunk_hdr {
	uint32_t len, crc;
};

/* ---- Server -------------------------------------------------------------------------------- */

struct sl_snapsrv {
	char root[4096];
	uint8_t key[SL_AUTH_MAX_KEY];
	size_t key_len;
	char cluster[64];
	int lfd;
	pthread_t acceptor;
	int acceptor_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int fds[MAX_CONNS];
	unsigned nconns;
	unsigned damage;
	int (*info)(void *arg, uint64_t *applied_seq, uint64_t *term);
	void *info_arg;
	int (*pin)(void *arg);
	void *pin_arg;
	struct sl_snapsrv_stats st;
};

struct conn {
	struct sl_snapsrv *s;
	int fd;
};

static void srv_count(struct sl_snapsrv *s, uint64_t *c, uint64_t v)
{
	pthread_mutex_lock(&s->mu);
	*c += v;
	pthread_mutex_unlock(&s->mu);
}

/* Send one file: 0 once sent (or answered "missing"), or the connection's error. */
static int serve_file(struct sl_snapsrv *s, int fd, const struct request *rq, uint8_t *buf)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%016" PRIx64 "/%016" PRIx64 ".sst", s->root,
		 rq->snap_id, rq->file_no);
	struct reply rp = { 0 };
	int ffd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat stt;
	if (ffd < 0 || fstat(ffd, &stt) < 0) {
		rp.status = -errno;
		if (ffd >= 0)
			close(ffd);
		srv_count(s, &s->st.missing, 1);
		return write_all(fd, &rp, sizeof(rp));
	}
	rp.size = (uint64_t)stt.st_size;
	int r = write_all(fd, &rp, sizeof(rp));
	uint32_t whole = 0xffffffffu;
	unsigned nchunk = 0;
	for (uint64_t off = 0; !r && off < rp.size;) {
		size_t want = rp.size - off < CHUNK ? (size_t)(rp.size - off) : CHUNK;
		ssize_t got = pread(ffd, buf, want, (off_t)off);
		if (got <= 0) {
			r = got < 0 ? -errno : -EIO; /* the client sees the cut: no end chunk */
			break;
		}
		struct chunk_hdr ch = { (uint32_t)got, crc32c(buf, (size_t)got, 0xffffffffu) };
		whole = crc32c(buf, (size_t)got, whole);
		pthread_mutex_lock(&s->mu);
		unsigned dmg = s->damage;
		pthread_mutex_unlock(&s->mu);
		if (dmg && ++nchunk == dmg)
			buf[got / 2] ^= 0x10;
		if (!(r = write_all(fd, &ch, sizeof(ch))))
			r = write_all(fd, buf, (size_t)got);
		off += (uint64_t)got;
	}
	close(ffd);
	if (r)
		return r;
	struct chunk_hdr end = { 0, whole };
	if ((r = write_all(fd, &end, sizeof(end))) == 0) {
		pthread_mutex_lock(&s->mu);
		s->st.files_served++;
		s->st.bytes_served += rp.size;
		pthread_mutex_unlock(&s->mu);
	}
	return r;
}

/* The newest snapshot this node holds whose description was kept (DESC: the checkpoint, u64,
 * then the description): status, its length, its bytes. */
static int serve_latest(struct sl_snapsrv *s, int fd, uint8_t *buf)
{
	struct reply rp = { .status = -ENOENT };
	pthread_mutex_lock(&s->mu);
	int (*pin)(void *) = s->pin;
	void *parg = s->pin_arg;
	pthread_mutex_unlock(&s->mu);
	if (pin)
		pin(parg); /* a fresh one (best effort): the newest is what the asker wants */
	char best[32] = "";
	DIR *d = opendir(s->root);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[4200];
		if (strlen(e->d_name) != 16 || strcmp(e->d_name, best) <= 0)
			continue;
		snprintf(path, sizeof(path), "%.4000s/%.16s/DESC", s->root, e->d_name);
		if (access(path, R_OK) == 0)
			snprintf(best, sizeof(best), "%.16s", e->d_name);
	}
	if (d)
		closedir(d);
	ssize_t got = 0;
	if (best[0]) {
		char path[4200];
		snprintf(path, sizeof(path), "%.4000s/%.16s/DESC", s->root, best);
		int f = open(path, O_RDONLY | O_CLOEXEC);
		got = f >= 0 ? pread(f, buf, CHUNK, 0) : -1;
		if (f >= 0)
			close(f);
		if (got > 8) {
			rp.status = 0;
			rp.size = (uint64_t)got;
		}
	}
	int r = write_all(fd, &rp, sizeof(rp));
	if (!r && !rp.status)
		r = write_all(fd, buf, (size_t)got);
	return r;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct sl_snapsrv *s = c->s;
	int fd = c->fd;
	free(c);
	char who[80];
	peer_name(fd, who, sizeof(who));
	struct hello h = { .magic = SRV_MAGIC, .version = SRV_VERSION };
	struct answer a;
	uint8_t mac[SL_AUTH_MAC];
	uint8_t *buf = NULL;
	int r = RAND_bytes(h.nonce, sizeof(h.nonce)) == 1 ? 0 : -EIO;
	if (!r)
		r = write_all(fd, &h, sizeof(h));
	if (!r)
		r = read_all(fd, &a, sizeof(a));
	if (!r) {
		sl__auth_mac(s->key, s->key_len, "sluice-d", a.id, s->cluster, h.nonce, a.nonce,
			     mac);
		if (CRYPTO_memcmp(mac, a.mac, sizeof(mac))) {
			fprintf(stderr, "sluice: cluster: snapshot channel: refused %s (node %" PRIu64
				"): wrong cluster key or cluster id\n", who, a.id);
			srv_count(s, &s->st.refused, 1);
			r = -EACCES;
		}
	} else if (r != -ECONNRESET) {
		fprintf(stderr, "sluice: cluster: snapshot channel: refused %s: no answer to the "
			"challenge (%s)\n", who, sl_strerror(r));
		srv_count(s, &s->st.refused, 1);
	}
	if (!r) {
		sl__auth_mac(s->key, s->key_len, "sluice-s", a.id, s->cluster, h.nonce, a.nonce,
			     mac);
		r = write_all(fd, mac, sizeof(mac));
	}
	if (!r && !(buf = malloc(CHUNK)))
		r = -ENOMEM;
	while (!r) {
		struct request rq;
		if ((r = read_all(fd, &rq, sizeof(rq))))
			break;
		if (rq.op == 2) {
			/* What this node holds: applied sequence, then term. */
			uint64_t v[2] = { 0, 0 };
			pthread_mutex_lock(&s->mu);
			int (*info)(void *, uint64_t *, uint64_t *) = s->info;
			void *iarg = s->info_arg;
			pthread_mutex_unlock(&s->mu);
			struct reply rp = { .status = info ? info(iarg, &v[0], &v[1]) : -ENOSYS };
			rp.size = v[0];
			if (!(r = write_all(fd, &rp, sizeof(rp))))
				r = write_all(fd, &v[1], sizeof(v[1]));
			continue;
		}
		if (rq.op == 3) {
			r = serve_latest(s, fd, buf);
			continue;
		}
		if (rq.op != 1)
			break;
		r = serve_file(s, fd, &rq, buf);
	}
	free(buf);
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nconns; i++)
		if (s->fds[i] == fd) {
			s->fds[i] = s->fds[--s->nconns];
			break;
		}
	close(fd);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	struct sl_snapsrv *s = arg;
	pthread_setname_np(pthread_self(), "sl-snapsrv");
	for (;;) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		int pr = poll(&p, 1, 100);
		pthread_mutex_lock(&s->mu);
		int stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (pr <= 0)
			continue;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		set_timeouts(fd, IO_TIMEOUT_S * 1000);
		struct conn *c = malloc(sizeof(*c));
		pthread_mutex_lock(&s->mu);
		s->st.connections++;
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (!c || s->nconns == MAX_CONNS) {
			free(c);
			close(fd);
		} else {
			*c = (struct conn){ s, fd };
			s->fds[s->nconns++] = fd;
			if (pthread_create(&t, &at, conn_main, c)) {
				s->nconns--;
				close(fd);
				free(c);
			}
		}
		pthread_attr_destroy(&at);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

int sl__snapsrv_open(const char *addr, const char *root, const struct sl_snap_auth *auth,
		     struct sl_snapsrv **out)
{
	struct sockaddr_in in;
	int r = parse_addr(addr, &in);
	if (r)
		return r;
	if (auth->key_len > SL_AUTH_MAX_KEY)
		return SL_ECONFIG;
	struct sl_snapsrv *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->root, sizeof(s->root), "%s", root);
	memcpy(s->key, auth->key, auth->key_len);
	s->key_len = auth->key_len;
	snprintf(s->cluster, sizeof(s->cluster), "%s", auth->cluster_id);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s->lfd, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(s->lfd, 16) < 0) {
		r = -errno;
		goto fail;
	}
	if (pthread_create(&s->acceptor, NULL, acceptor_main, s)) {
		r = -EAGAIN;
		goto fail;
	}
	s->acceptor_started = 1;
	*out = s;
	return 0;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	memset(s->key, 0, sizeof(s->key));
	free(s);
	return r;
}

void sl__snapsrv_close(struct sl_snapsrv *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_mutex_unlock(&s->mu);
	if (s->acceptor_started)
		pthread_join(s->acceptor, NULL);
	close(s->lfd);
	pthread_mutex_lock(&s->mu);
	for (unsigned i = 0; i < s->nconns; i++)
		shutdown(s->fds[i], SHUT_RDWR);
	while (s->nconns)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	memset(s->key, 0, sizeof(s->key));
	free(s);
}

void sl__snapsrv_get_stats(struct sl_snapsrv *s, struct sl_snapsrv_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
}

void sl__snapsrv_set_info(struct sl_snapsrv *s,
			  int (*info)(void *arg, uint64_t *applied_seq, uint64_t *term), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->info = info;
	s->info_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

void sl__snapsrv_set_pin(struct sl_snapsrv *s, int (*pin)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->pin = pin;
	s->pin_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

void sl__snapsrv_damage_chunk(struct sl_snapsrv *s, unsigned n)
{
	pthread_mutex_lock(&s->mu);
	s->damage = n;
	pthread_mutex_unlock(&s->mu);
}

/* ---- Client -------------------------------------------------------------------------------- */

struct sl_snapcli {
	int fd;
	char addr[128];
	uint8_t *buf;
};

#define WHY(...) do { if (why) snprintf(why, cap, __VA_ARGS__); } while (0)

int sl__snapcli_open(const char *addr, const struct sl_snap_auth *auth, unsigned timeout_ms,
		     struct sl_snapcli **out, char *why, size_t cap)
{
	struct sockaddr_in in;
	int r = parse_addr(addr, &in);
	if (r) {
		WHY("%s: not an IPv4 HOST:PORT", addr);
		return r;
	}
	struct sl_snapcli *c = calloc(1, sizeof(*c));
	if (!c || !(c->buf = malloc(CHUNK))) {
		free(c);
		return -ENOMEM;
	}
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		goto fail;
	}
	set_timeouts(c->fd, timeout_ms);
	if (connect(c->fd, (struct sockaddr *)&in, sizeof(in)) < 0) {
		r = errno == EINPROGRESS || errno == EAGAIN ? -ETIMEDOUT : -errno;
		WHY("%s: connect: %s", addr, sl_strerror(r));
		goto fail;
	}
	struct hello h;
	struct answer a = { .id = auth->node_id };
	uint8_t mac[SL_AUTH_MAC], want[SL_AUTH_MAC];
	if ((r = read_all(c->fd, &h, sizeof(h)))) {
		WHY("%s: no hello: %s", addr, sl_strerror(r));
		goto fail;
	}
	if (h.magic != SRV_MAGIC || h.version != SRV_VERSION) {
		r = -EPROTO;
		WHY("%s: not a Sluice snapshot channel", addr);
		goto fail;
	}
	if (RAND_bytes(a.nonce, sizeof(a.nonce)) != 1) {
		r = -EIO;
		goto fail;
	}
	sl__auth_mac(auth->key, auth->key_len, "sluice-d", a.id, auth->cluster_id, h.nonce,
		     a.nonce, a.mac);
	if ((r = write_all(c->fd, &a, sizeof(a))) || (r = read_all(c->fd, mac, sizeof(mac)))) {
		WHY("%s: refused (wrong cluster key or id?): %s", addr, sl_strerror(r));
		r = -EACCES;
		goto fail;
	}
	sl__auth_mac(auth->key, auth->key_len, "sluice-s", a.id, auth->cluster_id, h.nonce,
		     a.nonce, want);
	if (CRYPTO_memcmp(mac, want, sizeof(mac))) {
		r = -EACCES;
		WHY("%s: the server does not hold this cluster's key", addr);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	sl__snapcli_close(c);
	return r;
}

int sl__snapcli_get(struct sl_snapcli *c, uint64_t id, uint64_t file_no, uint64_t size,
		    const char *dst, char *why, size_t cap)
{
	struct request rq = { .op = 1, .snap_id = id, .file_no = file_no };
	struct reply rp;
	if (why && cap)
		why[0] = 0;
	int r = write_all(c->fd, &rq, sizeof(rq));
	if (!r)
		r = read_all(c->fd, &rp, sizeof(rp));
	if (r) {
		WHY("%s: asking for %016" PRIx64 ".sst: %s", c->addr, file_no, sl_strerror(r));
		return r;
	}
	if (rp.status) {
		WHY("%s: does not hold %016" PRIx64 ".sst of snapshot %016" PRIx64 ": %s",
		    c->addr, file_no, id, sl_strerror(rp.status));
		return rp.status < 0 ? rp.status : -EPROTO;
	}
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		WHY("%s: %s", dst, sl_strerror(r));
		return r;
	}
	uint64_t got = 0;
	uint32_t whole = 0xffffffffu;
	for (;;) {
		struct chunk_hdr ch;
		if ((r = read_all(c->fd, &ch, sizeof(ch))))
			break;
		if (!ch.len) {
			if (ch.crc != whole || got != rp.size || got != size) {
				r = SL_ECORRUPT;
				WHY("%s: %016" PRIx64 ".sst: %" PRIu64 " bytes (promised %" PRIu64
				    ", described %" PRIu64 "), whole-file CRC32C %s", c->addr,
				    file_no, got, rp.size, size,
				    ch.crc == whole ? "matches" : "differs");
			}
			break;
		}
		if (ch.len > CHUNK || got + ch.len > rp.size) {
			r = SL_ECORRUPT;
			WHY("%s: %016" PRIx64 ".sst: a chunk of %u bytes at %" PRIu64 " overruns it",
			    c->addr, file_no, ch.len, got);
			break;
		}
		if ((r = read_all(c->fd, c->buf, ch.len)))
			break;
		if (crc32c(c->buf, ch.len, 0xffffffffu) != ch.crc) {
			r = SL_ECORRUPT;
			WHY("%s: %016" PRIx64 ".sst: the chunk at offset %" PRIu64 " fails its "
			    "CRC32C", c->addr, file_no, got);
			break;
		}
		whole = crc32c(c->buf, ch.len, whole);
		if (pwrite(fd, c->buf, ch.len, (off_t)got) != (ssize_t)ch.len) {
			r = errno ? -errno : -EIO;
			WHY("%s: writing: %s", dst, sl_strerror(r));
			break;
		}
		got += ch.len;
	}
	if (r && why && !why[0])
		WHY("%s: %016" PRIx64 ".sst at %" PRIu64 ": %s", c->addr, file_no, got,
		    sl_strerror(r));
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r)
		unlink(dst);
	return r;
}

int sl__snapcli_latest(struct sl_snapcli *c, uint64_t *checkpoint, void **desc, size_t *len)
{
	struct request rq = { .op = 3 };
	struct reply rp;
	int r = write_all(c->fd, &rq, sizeof(rq));
	if (!r)
		r = read_all(c->fd, &rp, sizeof(rp));
	if (r)
		return r;
	if (rp.status)
		return rp.status < 0 ? rp.status : -EPROTO;
	if (rp.size <= 8 || rp.size > CHUNK)
		return SL_ECORRUPT;
	if ((r = read_all(c->fd, c->buf, (size_t)rp.size)))
		return r;
	uint8_t *p = malloc((size_t)rp.size - 8);
	if (!p)
		return -ENOMEM;
	memcpy(checkpoint, c->buf, 8);
	memcpy(p, c->buf + 8, (size_t)rp.size - 8);
	*desc = p;
	*len = (size_t)rp.size - 8;
	return 0;
}

int sl__snapcli_info(struct sl_snapcli *c, uint64_t *applied_seq, uint64_t *term)
{
	struct request rq = { .op = 2 };
	struct reply rp;
	int r = write_all(c->fd, &rq, sizeof(rq));
	if (!r)
		r = read_all(c->fd, &rp, sizeof(rp));
	if (!r)
		r = read_all(c->fd, term, sizeof(*term));
	if (r)
		return r;
	*applied_seq = rp.size;
	return rp.status;
}

void sl__snapcli_close(struct sl_snapcli *c)
{
	if (!c)
		return;
	if (c->fd > 0)
		close(c->fd);
	free(c->buf);
	free(c);
}
