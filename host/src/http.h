/* http.h - the admin endpoint (libmicrohttpd, one internal polling thread) and the small
 * HTTP/1.0 client the CLI uses to talk to it. http knows nothing of what it serves: a handler
 * answers each request. Bind addresses are explicit (HOST:PORT); nothing listens by default.
 */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>

/* A request: method ("GET", "POST"), path without the query, and its query parameters through
 * param(ctx, key) (NULL when absent). The handler writes the body into out (cap bytes, NUL
 * terminated), may set *ctype (default "application/json"), and returns the HTTP status.
 * Called on the endpoint's thread, one request at a time. */
typedef int (*sl_http_handler)(void *arg, const char *method, const char *path,
			       const char *(*param)(void *ctx, const char *key), void *ctx,
			       char *out, size_t cap, const char **ctype);

struct sl_http;

/* Serve on addr (IPv4 HOST:PORT). 0, SL_ECONFIG (bad address), -EADDRINUSE or -EIO. */
int sl__http_open(const char *addr, sl_http_handler h, void *arg, struct sl_http **out);
/* Stop serving (waits for a request under way). Accepts NULL. */
void sl__http_close(struct sl_http *s);

/* One request to addr (HOST:PORT): the body into out (NUL terminated, cut at cap - 1), the
 * status into *status. 0, SL_ECONFIG, SL_ETIMEDOUT (timeout_ms), -errno (connect refused...). */
int sl__http_request(const char *addr, const char *method, const char *path, char *out,
		     size_t cap, int *status, int timeout_ms);

#endif /* SL_HTTP_H */
