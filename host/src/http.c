/* http.c - the admin endpoint on libmicrohttpd and a minimal blocking HTTP/1.0 client (see
 * http.h). Every body is built whole by the handler: the endpoint serves small JSON documents.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "sluice.h"

#define BODY_CAP (64u << 10)

struct sl_http {
	struct MHD_Daemon *d;
	sl_http_handler h;
	void *arg;
};

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
	char host[256];
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !colon[1])
		return SL_ECONFIG;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port == 0 || port > 65535)
		return SL_ECONFIG;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, NULL, &hints, &ai))
		return SL_ECONFIG;
	*sa = *(struct sockaddr_in *)ai->ai_addr;
	sa->sin_port = htons((uint16_t)port);
	freeaddrinfo(ai);
	return 0;
}

static const char *get_param(void *ctx, const char *key)
{
	return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_len, void **state)
{
	(void)version;
	(void)upload;
	struct sl_http *s = cls;
	static int marker;
	if (!*state) {
		*state = &marker; /* headers now; answer once any body is consumed */
		return MHD_YES;
	}
	if (*upload_len) {
		*upload_len = 0; /* bodies are ignored: parameters come in the query */
		return MHD_YES;
	}
	char *body = malloc(BODY_CAP);
	if (!body)
		return MHD_NO;
	body[0] = 0;
	const char *ctype = "application/json";
	int status = s->h(s->arg, method, url, get_param, c, body, BODY_CAP, &ctype);
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
								  MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

int sl__http_open(const char *addr, sl_http_handler h, void *arg, struct sl_http **out)
{
	struct sockaddr_in sa;
	int r = parse_addr(addr, &sa);
	if (r)
		return r;
	struct sl_http *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->h = h;
	s->arg = arg;
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
				ntohs(sa.sin_port), NULL, NULL, on_request, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (!s->d) {
		free(s);
		return -EADDRINUSE;
	}
	*out = s;
	return 0;
}

void sl__http_close(struct sl_http *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->d);
	free(s);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for events until the deadline. 0, SL_ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return SL_ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

int sl__http_request(const char *addr, const char *method, const char *path, char *out,
		     size_t cap, int *status, int timeout_ms)
{
	struct sockaddr_in sa;
	int r = parse_addr(addr, &sa);
	if (r)
		return r;
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 5000);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto out_close;
		}
		if ((r = wait_fd(fd, POLLOUT, deadline)))
			goto out_close;
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			r = -err;
			goto out_close;
		}
	}
	char req[1024];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
			 method, path, addr);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		r = SL_ECONFIG;
		goto out_close;
	}
	for (int off = 0; off < n;) {
		ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			if ((r = wait_fd(fd, POLLOUT, deadline)))
				goto out_close;
			continue;
		}
		if (w < 0) {
			r = -errno;
			goto out_close;
		}
		off += (int)w;
	}
	size_t bcap = BODY_CAP + 4096, got = 0;
	char *buf = malloc(bcap);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		ssize_t g = recv(fd, buf + got, bcap - 1 - got, 0);
		if (g < 0 && errno == EAGAIN) {
			if ((r = wait_fd(fd, POLLIN, deadline)))
				break;
			continue;
		}
		if (g < 0) {
			r = -errno;
			break;
		}
		if (g == 0 || (got += (size_t)g) == bcap - 1)
			break;
	}
	buf[got] = 0;
	const char *sp = strchr(buf, ' '), *body = strstr(buf, "\r\n\r\n");
	if (!r && (!sp || !body || strncmp(buf, "HTTP/1.", 7)))
		r = SL_EBADMSG;
	if (!r) {
		*status = atoi(sp + 1);
		snprintf(out, cap, "%s", body + 4);
	}
	free(buf);
out_close:
	close(fd);
	return r;
}
