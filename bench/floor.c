/*
 * The kernel floor for bench/forwarding.py: a plain C SFU forwarding loop
 * with no crypto and no Python. epoll on one UDP socket, recvmmsg(64), for
 * every datagram a routing lookup by source address, then per subscriber a
 * copy with the SSRC and sequence number rewritten (as the SFU does), and
 * one sendmmsg per received batch. Packets stay SRTP-encrypted with the
 * sender's keys (the receivers in the benchmark do not decrypt), so this is
 * what forwarding costs when user space does almost nothing: the syscalls,
 * the loopback UDP path and the wake-ups.
 *
 * Usage: floor <routes file> <socket buffer bytes> <max seconds>
 * Prints "READY <port>" when bound; on "stop" (or EOF) on stdin prints one
 * JSON line of counters and exits. Exits by itself after <max seconds>.
 *
 * Routes file (written by forwarding.py, shared with the Python forwarders):
 *   sbroutes 1
 *   users U          then U lines: <ip> <port> <tx key hex> <rx key hex>
 *   tracks T         then T lines: <publisher user> <ssrc> <n> (<user> <out ssrc>) x n
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_FANOUT 16
#define SLOT 2048

typedef struct {
    struct sockaddr_in addr;
    uint32_t out_ssrc; /* network order */
    uint16_t seq_delta;
} Dest;

typedef struct {
    uint64_t key; /* ip << 16 | port, host order; 0 = empty */
    int n;
    Dest *dst;
} Route;

static Route *table;
static uint64_t table_mask;

static void fail(const char *what) {
    fprintf(stderr, "floor: %s (%s)\n", what, errno ? strerror(errno) : "bad input");
    exit(2);
}

static uint64_t hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static Route *lookup(uint64_t key, int insert) {
    uint64_t i = hash64(key) & table_mask;
    for (uint64_t probe = 0; probe <= table_mask; probe++, i = (i + 1) & table_mask) {
        if (table[i].key == key) return &table[i];
        if (table[i].key == 0) {
            if (!insert) return NULL;
            table[i].key = key;
            return &table[i];
        }
    }
    return NULL;
}

static void load_routes(const char *path) {
    FILE *f = fopen(path, "r");
    char w[64], ip[64], kx[256], kr[256];
    int users, tracks, ver;
    if (!f) fail("open routes");
    if (fscanf(f, "%63s %d", w, &ver) != 2 || strcmp(w, "sbroutes") != 0 || ver != 1) fail("routes header");
    if (fscanf(f, "%63s %d", w, &users) != 2 || strcmp(w, "users") != 0 || users < 1) fail("routes users");
    struct sockaddr_in *ua = calloc((size_t)users, sizeof *ua);
    if (!ua) fail("out of memory");
    for (int u = 0; u < users; u++) {
        int port;
        if (fscanf(f, "%63s %d %255s %255s", ip, &port, kx, kr) != 4) fail("routes user line");
        ua[u].sin_family = AF_INET;
        ua[u].sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, ip, &ua[u].sin_addr) != 1) fail("routes user address");
    }
    uint64_t size = 16;
    while (size < 4 * (uint64_t)users) size <<= 1;
    table = calloc(size, sizeof(Route));
    if (!table) fail("out of memory");
    table_mask = size - 1;
    if (fscanf(f, "%63s %d", w, &tracks) != 2 || strcmp(w, "tracks") != 0 || tracks < 0) fail("routes tracks");
    for (int t = 0; t < tracks; t++) {
        int pub, n;
        unsigned long ssrc;
        if (fscanf(f, "%d %lu %d", &pub, &ssrc, &n) != 3 || pub < 0 || pub >= users || n < 0 || n > MAX_FANOUT)
            fail("routes track line");
        uint64_t key = ((uint64_t)ntohl(ua[pub].sin_addr.s_addr) << 16) | ntohs(ua[pub].sin_port);
        Route *r = lookup(key, 1);
        if (!r || r->n) fail("routes: duplicate publisher address (the floor routes by address only)");
        r->n = n;
        r->dst = calloc((size_t)(n ? n : 1), sizeof(Dest));
        if (!r->dst) fail("out of memory");
        for (int i = 0; i < n; i++) {
            int u;
            unsigned long out;
            if (fscanf(f, "%d %lu", &u, &out) != 2 || u < 0 || u >= users) fail("routes consumer");
            r->dst[i].addr = ua[u];
            r->dst[i].out_ssrc = htonl((uint32_t)out);
            r->dst[i].seq_delta = 0;
        }
    }
    free(ua);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: floor <routes> <bufsize> <max seconds>\n");
        return 2;
    }
    load_routes(argv[1]);
    int bufsize = atoi(argv[2]);
    double max_s = atof(argv[3]);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) fail("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof bufsize) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof bufsize) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
    /* DF on every datagram, as the native plane's sockets do (MediaConfig.dont_fragment):
     * the floor must take the same kernel path (no per-destination IP ID hash). */
    int pmtu = IP_PMTUDISC_PROBE;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &me.sin_addr);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) fail("bind");
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    int rcv = 0, snd = 0;
    socklen_t l = sizeof rcv;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &l);
    l = sizeof snd;
    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, &l);

    static uint8_t rbuf[BATCH][SLOT];
    static struct mmsghdr rmsgs[BATCH];
    static struct iovec riov[BATCH];
    static struct sockaddr_in raddr[BATCH];
    static uint8_t sbuf[BATCH * MAX_FANOUT][SLOT];
    static struct mmsghdr smsgs[BATCH * MAX_FANOUT];
    static struct iovec siov[BATCH * MAX_FANOUT];
    for (int i = 0; i < BATCH; i++) {
        riov[i].iov_base = rbuf[i];
        riov[i].iov_len = SLOT;
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
        rmsgs[i].msg_hdr.msg_name = &raddr[i];
    }
    for (int i = 0; i < BATCH * MAX_FANOUT; i++) {
        siov[i].iov_base = sbuf[i];
        smsgs[i].msg_hdr.msg_iov = &siov[i];
        smsgs[i].msg_hdr.msg_iovlen = 1;
        smsgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    }

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll");
    ev.data.u32 = 0;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0) fail("epoll stdin");

    printf("READY %d %d %d\n", ntohs(me.sin_port), rcv / 2, snd / 2);
    fflush(stdout);

    uint64_t rx = 0, tx = 0, unknown = 0, malformed = 0, send_err = 0, recv_calls = 0, send_calls = 0, wakeups = 0;
    struct timespec ts0, ts;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    int running = 1;
    while (running) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, 500);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((double)(ts.tv_sec - ts0.tv_sec) + (double)(ts.tv_nsec - ts0.tv_nsec) * 1e-9 > max_s) break;
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u32 == 0) {
                char cmd[64];
                ssize_t k = read(STDIN_FILENO, cmd, sizeof cmd);
                if (k <= 0 || (k >= 4 && memcmp(cmd, "stop", 4) == 0)) running = 0;
                continue;
            }
            wakeups++;
            for (int round = 0; round < 16; round++) {
                for (int i = 0; i < BATCH; i++) rmsgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
                int got = recvmmsg(fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
                recv_calls++;
                if (got <= 0) break;
                int ns = 0;
                for (int i = 0; i < got; i++) {
                    uint8_t *p = rbuf[i];
                    int len = (int)rmsgs[i].msg_len;
                    rx++;
                    if (len < 12 || len > SLOT) {
                        malformed++;
                        continue;
                    }
                    uint64_t key = ((uint64_t)ntohl(raddr[i].sin_addr.s_addr) << 16) | ntohs(raddr[i].sin_port);
                    Route *r = lookup(key, 0);
                    if (!r) {
                        unknown++;
                        continue;
                    }
                    uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
                    for (int d = 0; d < r->n; d++) {
                        uint8_t *o = sbuf[ns];
                        memcpy(o, p, (size_t)len);
                        memcpy(o + 8, &r->dst[d].out_ssrc, 4);
                        uint16_t s = (uint16_t)(seq + r->dst[d].seq_delta);
                        o[2] = (uint8_t)(s >> 8);
                        o[3] = (uint8_t)s;
                        siov[ns].iov_len = (size_t)len;
                        smsgs[ns].msg_hdr.msg_name = &r->dst[d].addr;
                        ns++;
                    }
                }
                int off = 0;
                while (off < ns) {
                    int k = sendmmsg(fd, smsgs + off, (unsigned)(ns - off), MSG_DONTWAIT);
                    send_calls++;
                    if (k <= 0) {
                        send_err++;
                        off++;
                        continue;
                    }
                    tx += (uint64_t)k;
                    off += k;
                }
                if (got < BATCH) break;
            }
        }
    }
    printf("{\"rx\":%llu,\"tx\":%llu,\"unknown_source\":%llu,\"malformed\":%llu,\"send_errors\":%llu,"
           "\"recv_calls\":%llu,\"send_calls\":%llu,\"wakeups\":%llu,\"rcvbuf\":%d,\"sndbuf\":%d}\n",
           (unsigned long long)rx, (unsigned long long)tx, (unsigned long long)unknown,
           (unsigned long long)malformed, (unsigned long long)send_err, (unsigned long long)recv_calls,
           (unsigned long long)send_calls, (unsigned long long)wakeups, rcv / 2, snd / 2);
    fflush(stdout);
    return 0;
}
