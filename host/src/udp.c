/* udp.c - the socket front end where XDP is unavailable: one UDP socket (unicast or a joined
 * multicast group), datagrams received in batches with recvmmsg and handed to the engine as
 * one sl_db_append_packets call per batch: one syscall and one log append for up to 64
 * packets. A front end: it feeds db through the public API and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

#define UDP_BATCH 64
#define UDP_SLOT 2048 /* MoldUDP64 on Ethernet fits; longer datagrams are truncated, counted */

struct sl_udp {
	int fd;
	struct sl_udp_stats st;
	uint64_t last_tick_ns;
	struct mmsghdr msgs[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	char ctrl[UDP_BATCH][CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct timespec))];
	struct sl_packet pkts[UDP_BATCH];
	uint8_t data[UDP_BATCH][UDP_SLOT];
};

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || !colon[1])
		return SL_ECONFIG;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *ai;
	if (getaddrinfo(host[0] ? host : "0.0.0.0", colon + 1, &hints, &ai))
		return SL_ECONFIG;
	memcpy(sa, ai->ai_addr, sizeof(*sa));
	freeaddrinfo(ai);
	return 0;
}

SL_API int sl_udp_open(const char *addr, uint32_t rcvbuf_bytes, struct sl_udp **out)
{
	struct sockaddr_in sa;
	int r = parse_addr(addr, &sa);
	if (r)
		return r;
	struct sl_udp *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		r = -errno;
		goto out_free;
	}
	int one = 1;
	setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Kernel drop counter and kernel receive timestamps ride along in the control data. */
	setsockopt(u->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	setsockopt(u->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (rcvbuf_bytes) {
		int v = (int)rcvbuf_bytes;
		if (setsockopt(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
			setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	}
	int mcast = IN_MULTICAST(ntohl(sa.sin_addr.s_addr));
	struct sockaddr_in bind_sa = sa;
	if (mcast)
		bind_sa.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(u->fd, (struct sockaddr *)&bind_sa, sizeof(bind_sa)) < 0) {
		r = -errno;
		goto out_close;
	}
	if (mcast) {
		struct ip_mreq mr = { .imr_multiaddr = sa.sin_addr,
				      .imr_interface.s_addr = htonl(INADDR_ANY) };
		if (setsockopt(u->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
			r = -errno;
			goto out_close;
		}
	}
	for (int i = 0; i < UDP_BATCH; i++) {
		u->iov[i].iov_base = u->data[i];
		u->iov[i].iov_len = UDP_SLOT;
		u->msgs[i].msg_hdr.msg_iov = &u->iov[i];
		u->msgs[i].msg_hdr.msg_iovlen = 1;
	}
	*out = u;
	return 0;
out_close:
	close(u->fd);
out_free:
	free(u);
	return r;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

SL_API int sl_udp_pump(struct sl_udp *u, struct sl_db *db, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = u->fd, .events = POLLIN },
				 { .fd = db ? sl_db_poll_fd(db) : -1, .events = POLLIN } };
	int nfds = pfd[1].fd >= 0 ? 2 : 1;
	int pr = poll(pfd, (nfds_t)nfds, timeout_ms);
	if (pr < 0 && errno != EINTR)
		return -errno;
	int got = 0;
	if (pr > 0 && (pfd[0].revents & POLLIN)) {
		for (int i = 0; i < UDP_BATCH; i++) {
			u->msgs[i].msg_hdr.msg_control = u->ctrl[i];
			u->msgs[i].msg_hdr.msg_controllen = sizeof(u->ctrl[i]);
			u->msgs[i].msg_hdr.msg_flags = 0;
		}
		got = recvmmsg(u->fd, u->msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (got < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			got = 0;
		}
		uint64_t now = got ? realtime_ns() : 0;
		for (int i = 0; i < got; i++) {
			struct msghdr *h = &u->msgs[i].msg_hdr;
			uint64_t rx = now;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
				if (c->cmsg_level != SOL_SOCKET)
					continue;
				if (c->cmsg_type == SO_RXQ_OVFL) {
					uint32_t drops;
					memcpy(&drops, CMSG_DATA(c), sizeof(drops));
					u->st.kernel_drops = drops;
				} else if (c->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(c), sizeof(ts));
					rx = (uint64_t)ts.tv_sec * 1000000000ull +
					     (uint64_t)ts.tv_nsec;
				}
			}
			u->pkts[i] = (struct sl_packet){ .data = u->data[i],
							 .len = u->msgs[i].msg_len,
							 .rx_ns = rx };
			u->st.bytes += u->msgs[i].msg_len;
		}
		if (got) {
			u->st.datagrams += (uint64_t)got;
			u->st.batches++;
			int r = db ? sl_db_append_packets(db, u->pkts, (size_t)got) : 0;
			if (r < 0)
				return r;
		}
	}
	if (!db)
		return got; /* the front end alone (benchmarks): nothing to append or tick */
	/* Timers and rewinder replies: when idle, when replies wait, and every 5 ms anyway. */
	uint64_t now = realtime_ns();
	if (got == 0 || (nfds == 2 && (pfd[1].revents & POLLIN)) ||
	    now - u->last_tick_ns > 5000000) {
		u->last_tick_ns = now;
		int r = sl_db_tick(db);
		if (r < 0)
			return r;
	}
	return got;
}

SL_API void sl_udp_get_stats(const struct sl_udp *u, struct sl_udp_stats *out)
{
	*out = u->st;
}

SL_API void sl_udp_close(struct sl_udp *u)
{
	if (!u)
		return;
	close(u->fd);
	free(u);
}
