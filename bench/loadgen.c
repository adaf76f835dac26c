/*
 * Load generator for bench/forwarding.py: replays pre-encrypted SRTP audio
 * streams at 50 packets/s per sender (each sender with its own random phase,
 * so arrivals are not synchronised), and drains every simulated user's
 * receive socket, counting forwarded packets without decrypting them.
 *
 * Why one C process and few sockets: the forwarder must be the bottleneck,
 * never the load. Every simulated user has its own source address
 * (127.1.x.y on a shared wildcard-bound socket, the source picked per
 * message with IP_PKTINFO), which gives the SFU the distinct 5-tuples it
 * keys sessions on while this process drains a handful of sockets with
 * recvmmsg(64) instead of thousands with one datagram each.
 *
 * Receiving is polled on a fixed tick (default 100 us), never woken by
 * arrivals: the sockets are in no epoll set and nobody sleeps on them, so a
 * forwarder's send never pays for waking its receiver (as with a NIC), and
 * this process reads in batches instead of one wake-up per datagram. Sends
 * are paced exactly (clock_nanosleep to each due time).
 *
 * Each packet carries, in a one-byte RTP header extension (id 14, 8 bytes;
 * RFC 8285), its scheduled send time (us after t0) and its index k in its
 * stream. Header extensions are authenticated but not encrypted by SRTP, so
 * the receiver reads them in the clear: duplicates and loss are found per
 * consumer (out SSRC = OUT_SSRC_BASE + consumer index) with a bitmap of k,
 * and the forwarding delay is the kernel's receive timestamp of the copy
 * (SO_TIMESTAMPNS: taken when the forwarder's send delivered it into our
 * socket) minus the time we handed packet k of that sender to sendmmsg, so
 * neither this process's send lateness (reported as lag) nor its receive
 * lateness is counted.
 *
 * The measured window: at t0+warm and t0+warm+measure this process samples
 * the forwarder's exact CPU time (/proc/<pid>/task/<tid>/schedstat, ns),
 * ksoftirqd's, its own, /proc/stat and its packet counters, so the counts
 * and the CPU cover the same interval. Result: one JSON object on stdout.
 *
 * Usage: loadgen <config file>   (written by forwarding.py; see parse_config)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKS 32
#define RECV_BATCH 64
#define SEND_BATCH 64
#define RECV_SLOT 2048
#define OUT_SSRC_BASE 0x40000000u
#define EXT_ID 14
#define HIST_US 200000 /* 1 us bins up to 200 ms, then one overflow bin */
#define MAX_CPUS 16
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif
#ifndef SO_TIMESTAMPNS
#define SO_TIMESTAMPNS 35
#endif
#ifndef SCM_TIMESTAMPNS
#define SCM_TIMESTAMPNS SO_TIMESTAMPNS
#endif

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void fail(const char *what) {
    fprintf(stderr, "loadgen: %s\n", what);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ config */

static struct {
    struct sockaddr_in fwd;
    int fwd_pid, ksoftirqd_pid[MAX_CPUS], n_ksoftirqd;
    char packets_path[4096], sample_path[4096];
    int sample_max;
    uint64_t period_ns, lead_ns, warm_ns, measure_ns, drain_ns, tick_ns;
    int n_pkts; /* packets each sender sends */
    int n_socks, fds[MAX_SOCKS];
    int rcvbuf;
    int n_users;
    uint32_t *user_ip; /* network order */
    int *user_sock;
    int n_senders;
    int *sender_user;
    uint64_t *sender_phase;
    int n_consumers;
    int *cons_sender, *cons_user;
} cfg;

static void expect_word(FILE *f, const char *want) {
    char w[64];
    if (fscanf(f, "%63s", w) != 1 || strcmp(w, want) != 0) {
        fprintf(stderr, "loadgen: config: expected '%s'\n", want);
        exit(2);
    }
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) fail("out of memory");
    return p;
}

static void parse_config(const char *path) {
    FILE *f = fopen(path, "r");
    char ip[64];
    int port;
    if (!f) die("open config");
    expect_word(f, "forwarder");
    if (fscanf(f, "%63s %d %d", ip, &port, &cfg.fwd_pid) != 3) fail("config: forwarder");
    cfg.fwd.sin_family = AF_INET;
    cfg.fwd.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &cfg.fwd.sin_addr) != 1) fail("config: forwarder address");
    expect_word(f, "ksoftirqd");
    if (fscanf(f, "%d", &cfg.n_ksoftirqd) != 1 || cfg.n_ksoftirqd < 0 || cfg.n_ksoftirqd > MAX_CPUS)
        fail("config: ksoftirqd");
    for (int i = 0; i < cfg.n_ksoftirqd; i++)
        if (fscanf(f, "%d", &cfg.ksoftirqd_pid[i]) != 1) fail("config: ksoftirqd pid");
    expect_word(f, "packets");
    if (fscanf(f, "%4095s %d", cfg.packets_path, &cfg.n_pkts) != 2 || cfg.n_pkts < 1) fail("config: packets");
    expect_word(f, "sample");
    if (fscanf(f, "%4095s %d", cfg.sample_path, &cfg.sample_max) != 2) fail("config: sample");
    expect_word(f, "timing");
    unsigned long long a, b, c, d, e, g;
    if (fscanf(f, "%llu %llu %llu %llu %llu %llu", &a, &b, &c, &d, &e, &g) != 6) fail("config: timing");
    cfg.period_ns = a, cfg.lead_ns = b, cfg.warm_ns = c, cfg.measure_ns = d, cfg.drain_ns = e, cfg.tick_ns = g;
    if (cfg.period_ns == 0 || cfg.tick_ns == 0) fail("config: period and tick must be > 0");
    expect_word(f, "sockets");
    if (fscanf(f, "%d %d", &cfg.n_socks, &cfg.rcvbuf) != 2 || cfg.n_socks < 1 || cfg.n_socks > MAX_SOCKS)
        fail("config: sockets");
    for (int i = 0; i < cfg.n_socks; i++)
        if (fscanf(f, "%d", &cfg.fds[i]) != 1) fail("config: socket fd");
    expect_word(f, "users");
    if (fscanf(f, "%d", &cfg.n_users) != 1 || cfg.n_users < 1) fail("config: users");
    cfg.user_ip = xcalloc((size_t)cfg.n_users, sizeof(uint32_t));
    cfg.user_sock = xcalloc((size_t)cfg.n_users, sizeof(int));
    for (int i = 0; i < cfg.n_users; i++) {
        if (fscanf(f, "%63s %d", ip, &cfg.user_sock[i]) != 2) fail("config: user");
        if (inet_pton(AF_INET, ip, &cfg.user_ip[i]) != 1) fail("config: user address");
        if (cfg.user_sock[i] < 0 || cfg.user_sock[i] >= cfg.n_socks) fail("config: user socket");
    }
    expect_word(f, "senders");
    if (fscanf(f, "%d", &cfg.n_senders) != 1 || cfg.n_senders < 1) fail("config: senders");
    cfg.sender_user = xcalloc((size_t)cfg.n_senders, sizeof(int));
    cfg.sender_phase = xcalloc((size_t)cfg.n_senders, sizeof(uint64_t));
    for (int i = 0; i < cfg.n_senders; i++) {
        unsigned long long ph;
        if (fscanf(f, "%d %llu", &cfg.sender_user[i], &ph) != 2) fail("config: sender");
        if (cfg.sender_user[i] < 0 || cfg.sender_user[i] >= cfg.n_users || ph >= cfg.period_ns)
            fail("config: sender out of range");
        cfg.sender_phase[i] = ph;
    }
    expect_word(f, "consumers");
    if (fscanf(f, "%d", &cfg.n_consumers) != 1 || cfg.n_consumers < 1) fail("config: consumers");
    cfg.cons_sender = xcalloc((size_t)cfg.n_consumers, sizeof(int));
    cfg.cons_user = xcalloc((size_t)cfg.n_consumers, sizeof(int));
    for (int i = 0; i < cfg.n_consumers; i++) {
        if (fscanf(f, "%d %d", &cfg.cons_sender[i], &cfg.cons_user[i]) != 2) fail("config: consumer");
        if (cfg.cons_sender[i] < 0 || cfg.cons_sender[i] >= cfg.n_senders || cfg.cons_user[i] < 0 ||
            cfg.cons_user[i] >= cfg.n_users)
            fail("config: consumer out of range");
    }
    fclose(f);
}

/* ------------------------------------------------------------ packets file
 * header: u32 magic "SBPK", u32 n_senders, u32 n_pkts, u32 stride;
 * then sender-major slots of `stride` bytes: u16 length (little endian) + packet */

static const uint8_t *pk_base;
static uint32_t pk_senders, pk_pkts, pk_stride;

static void map_packets(void) {
    int fd = open(cfg.packets_path, O_RDONLY);
    struct stat st;
    uint32_t h[4];
    if (fd < 0) die("open packets");
    if (fstat(fd, &st) < 0) die("stat packets");
    if (read(fd, h, sizeof h) != (ssize_t)sizeof h || h[0] != 0x4b504253u) fail("packets: bad header");
    pk_senders = h[1], pk_pkts = h[2], pk_stride = h[3];
    if ((uint32_t)cfg.n_senders > pk_senders || (uint32_t)cfg.n_pkts > pk_pkts) fail("packets: file too small");
    if ((uint64_t)st.st_size < 16 + (uint64_t)pk_senders * pk_pkts * pk_stride) fail("packets: truncated");
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) die("mmap packets");
    pk_base = (const uint8_t *)m + 16;
    close(fd);
}

static const uint8_t *packet(int sender, int k, uint16_t *len) {
    const uint8_t *slot = pk_base + ((uint64_t)sender * pk_pkts + (uint64_t)k) * pk_stride;
    memcpy(len, slot, 2);
    return slot + 2;
}

/* ------------------------------------------------------------ CPU sampling */

static uint64_t task_cpu_ns(int pid) {
    /* exact run time of every thread of `pid` (ns), from schedstat */
    char path[64], buf[128];
    uint64_t total = 0;
    DIR *d;
    struct dirent *e;
    if (pid <= 0) return 0;
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    d = opendir(path);
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char p2[128];
        snprintf(p2, sizeof p2, "/proc/%d/task/%.20s/schedstat", pid, e->d_name);
        int fd = open(p2, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = 0;
            total += strtoull(buf, NULL, 10);
        }
    }
    closedir(d);
    return total;
}

typedef struct {
    uint64_t t, fwd_cpu, self_cpu, ksoftirqd[MAX_CPUS];
    uint64_t sent, rx_rtp;
    int n_cpus;
    uint64_t busy[MAX_CPUS], total[MAX_CPUS]; /* /proc/stat ticks */
} Sample;

static void read_proc_stat(Sample *s) {
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    s->n_cpus = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8] = {0};
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9') continue;
        if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) < 9)
            continue;
        if (cpu < 0 || cpu >= MAX_CPUS) continue;
        /* user nice system idle iowait irq softirq steal */
        s->busy[cpu] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        s->total[cpu] = s->busy[cpu] + v[3] + v[4];
        if (cpu + 1 > s->n_cpus) s->n_cpus = cpu + 1;
    }
    fclose(f);
}

static uint64_t stat_sent, stat_rx_rtp;

static void take_sample(Sample *s) {
    s->fwd_cpu = task_cpu_ns(cfg.fwd_pid);
    s->self_cpu = task_cpu_ns(getpid());
    for (int i = 0; i < cfg.n_ksoftirqd; i++) s->ksoftirqd[i] = task_cpu_ns(cfg.ksoftirqd_pid[i]);
    read_proc_stat(s);
    s->sent = stat_sent;
    s->rx_rtp = stat_rx_rtp;
    s->t = now_ns();
}

/* ------------------------------------------------------------ histograms */

typedef struct {
    uint32_t bins[HIST_US + 1];
    uint64_t n, max_ns;
} Hist;

static void hist_add(Hist *h, int64_t ns) {
    if (ns < 0) ns = 0;
    uint64_t us = (uint64_t)ns / 1000;
    h->bins[us > HIST_US ? HIST_US : us]++;
    h->n++;
    if ((uint64_t)ns > h->max_ns) h->max_ns = (uint64_t)ns;
}

static double hist_pct(const Hist *h, double q) {
    if (!h->n) return 0.0;
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    if (want >= h->n) want = h->n - 1;
    for (int i = 0; i <= HIST_US; i++) {
        seen += h->bins[i];
        if (seen > want) return i == HIST_US ? (double)h->max_ns / 1000.0 : (double)i + 0.5;
    }
    return (double)h->max_ns / 1000.0;
}

static void hist_json(const char *name, const Hist *h) {
    printf("\"%s\":{\"n\":%llu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}", name,
           (unsigned long long)h->n, hist_pct(h, 0.5), hist_pct(h, 0.9), hist_pct(h, 0.99), hist_pct(h, 0.999),
           (double)h->max_ns / 1000.0);
}

/* ------------------------------------------------------------ sending */

typedef struct {
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } ctl[SEND_BATCH];
    int sender[SEND_BATCH], k[SEND_BATCH];
    int n;
} SendQ;

static SendQ *sendq;
static uint32_t *sender_sent; /* packets queued per sender */
static uint64_t *sent_rt;      /* [sender * n_pkts + k]: CLOCK_REALTIME ns when handed to sendmmsg */
static uint64_t stat_send_errors, stat_send_calls;

static void flush_sends(int si) {
    SendQ *q = &sendq[si];
    int off = 0, tries = 0;
    uint64_t rt = realtime_ns();
    for (int i = 0; i < q->n; i++) sent_rt[(uint64_t)q->sender[i] * (uint64_t)cfg.n_pkts + (uint64_t)q->k[i]] = rt;
    while (off < q->n && tries < 8) {
        int k = sendmmsg(cfg.fds[si], q->msgs + off, (unsigned)(q->n - off), MSG_DONTWAIT);
        stat_send_calls++;
        if (k <= 0) {
            tries++;
            if (k < 0 && errno != EAGAIN && errno != EINTR && errno != ENOBUFS) {
                /* e.g. ECONNREFUSED from an earlier ICMP: skip the head message */
                stat_send_errors++;
                off++;
            }
            continue;
        }
        off += k;
    }
    if (off < q->n) stat_send_errors += (uint64_t)(q->n - off);
    stat_sent += (uint64_t)off;
    q->n = 0;
}

static void queue_send(int sender, int k) {
    int user = cfg.sender_user[sender];
    int si = cfg.user_sock[user];
    SendQ *q = &sendq[si];
    uint16_t len;
    const uint8_t *p = packet(sender, k, &len);
    int i = q->n;
    q->iov[i].iov_base = (void *)p;
    q->iov[i].iov_len = len;
    struct msghdr *m = &q->msgs[i].msg_hdr;
    memset(m, 0, sizeof *m);
    m->msg_name = &cfg.fwd;
    m->msg_namelen = sizeof cfg.fwd;
    m->msg_iov = &q->iov[i];
    m->msg_iovlen = 1;
    m->msg_control = q->ctl[i].buf;
    m->msg_controllen = sizeof q->ctl[i].buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ipi_spec_dst.s_addr = cfg.user_ip[user];
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    q->sender[i] = sender;
    q->k[i] = k;
    q->n = i + 1;
    sender_sent[sender]++;
    if (q->n == SEND_BATCH) flush_sends(si);
}

/* ------------------------------------------------------------ receiving */

static uint8_t *rbuf;
static struct mmsghdr rmsgs[RECV_BATCH];
static struct iovec riov[RECV_BATCH];
static union {
    char buf[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(uint32_t)) +
             CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr align;
} rctl[RECV_BATCH];

static uint64_t **bitmap;
static uint64_t stat_rx_rtcp, stat_dups, stat_unknown, stat_misrouted, stat_noext, stat_bad, stat_unique;
static uint64_t stat_recv_calls;
static uint64_t t0, t_ws;
static Hist *delay_hist, *lag_hist;
static uint8_t *sample_buf;
static uint16_t *sample_len;

static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void on_packet(int si, const uint8_t *p, int n, uint32_t dst_ip, uint64_t rx_rt) {
    if (n < 12 || (p[0] >> 6) != 2) {
        stat_bad++;
        return;
    }
    if (p[1] >= 192 && p[1] <= 223) { /* RTCP (RFC 5761 demux) */
        stat_rx_rtcp++;
        return;
    }
    uint32_t c = be32(p + 8) - OUT_SSRC_BASE;
    if (c >= (uint32_t)cfg.n_consumers) {
        stat_unknown++;
        return;
    }
    int user = cfg.cons_user[c];
    /* destination address only where IP_PKTINFO is on (socket 0), port everywhere */
    if (cfg.user_sock[user] != si || (dst_ip && cfg.user_ip[user] != dst_ip)) stat_misrouted++;
    /* find header extension id 14 (one-byte form) */
    int off = 12 + 4 * (p[0] & 0x0f);
    int found = 0;
    uint32_t sched_us = 0, k = 0;
    if ((p[0] & 0x10) && off + 4 <= n && p[off] == 0xBE && p[off + 1] == 0xDE) {
        int words = (p[off + 2] << 8) | p[off + 3];
        int q = off + 4, end = off + 4 + 4 * words;
        if (end > n) end = n;
        while (q < end) {
            uint8_t b = p[q];
            if (b == 0) {
                q++;
                continue;
            }
            int id = b >> 4, ln = (b & 0x0f) + 1;
            if (id == 15) break;
            if (id == EXT_ID && ln == 8 && q + 1 + 8 <= end) {
                sched_us = be32(p + q + 1);
                k = be32(p + q + 5);
                found = 1;
                break;
            }
            q += 1 + ln;
        }
    }
    if (!found || k >= (uint32_t)cfg.n_pkts) {
        stat_noext++;
        return;
    }
    uint64_t *bm = bitmap[c];
    uint64_t bit = 1ull << (k & 63);
    if (bm[k >> 6] & bit) {
        stat_dups++;
        return;
    }
    bm[k >> 6] |= bit;
    stat_unique++;
    stat_rx_rtp++;
    uint64_t sched = t0 + (uint64_t)sched_us * 1000ull;
    uint64_t sent = sent_rt[(uint64_t)cfg.cons_sender[c] * (uint64_t)cfg.n_pkts + k];
    if (sched >= t_ws && sent && rx_rt) hist_add(delay_hist, (int64_t)(rx_rt - sent));
    if ((int)c < cfg.sample_max && sample_len[c] == 0 && n <= RECV_SLOT) {
        memcpy(sample_buf + (size_t)c * RECV_SLOT, p, (size_t)n);
        sample_len[c] = (uint16_t)n;
    }
}

static void drain_socket(int si) {
    for (int round = 0; round < 32; round++) {
        for (int i = 0; i < RECV_BATCH; i++) {
            rmsgs[i].msg_hdr.msg_control = rctl[i].buf;
            rmsgs[i].msg_hdr.msg_controllen = sizeof rctl[i].buf;
            rmsgs[i].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(cfg.fds[si], rmsgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        stat_recv_calls++;
        if (n <= 0) return;
        for (int i = 0; i < n; i++) {
            uint32_t dst = 0;
            uint64_t rx_rt = 0;
            struct msghdr *m = &rmsgs[i].msg_hdr;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                    struct in_pktinfo pi;
                    memcpy(&pi, CMSG_DATA(c), sizeof pi);
                    dst = pi.ipi_addr.s_addr;
                } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    rx_rt = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
                }
            }
            if (m->msg_flags & MSG_TRUNC) {
                stat_bad++;
                continue;
            }
            on_packet(si, rbuf + (size_t)i * RECV_SLOT, (int)rmsgs[i].msg_len, dst, rx_rt);
        }
        if (n < RECV_BATCH) return;
    }
}

/* ------------------------------------------------------------ main */

static int cmp_phase(const void *a, const void *b) {
    uint64_t x = cfg.sender_phase[*(const int *)a], y = cfg.sender_phase[*(const int *)b];
    return x < y ? -1 : x > y;
}

static void sample_json(const char *name, const Sample *a, const Sample *b) {
    printf("\"%s\":{\"wall_ns\":%llu,\"fwd_cpu_ns\":%llu,\"self_cpu_ns\":%llu,\"sent\":%llu,\"rx_rtp\":%llu,"
           "\"ksoftirqd_ns\":[",
           name, (unsigned long long)(b->t - a->t), (unsigned long long)(b->fwd_cpu - a->fwd_cpu),
           (unsigned long long)(b->self_cpu - a->self_cpu), (unsigned long long)(b->sent - a->sent),
           (unsigned long long)(b->rx_rtp - a->rx_rtp));
    for (int i = 0; i < cfg.n_ksoftirqd; i++)
        printf("%s%llu", i ? "," : "", (unsigned long long)(b->ksoftirqd[i] - a->ksoftirqd[i]));
    printf("],\"cpu_busy_ticks\":[");
    for (int i = 0; i < b->n_cpus && i < a->n_cpus; i++)
        printf("%s%llu", i ? "," : "", (unsigned long long)(b->busy[i] - a->busy[i]));
    printf("],\"cpu_total_ticks\":[");
    for (int i = 0; i < b->n_cpus && i < a->n_cpus; i++)
        printf("%s%llu", i ? "," : "", (unsigned long long)(b->total[i] - a->total[i]));
    printf("]}");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: loadgen <config>\n");
        return 2;
    }
    parse_config(argv[1]);
    map_packets();

    int one = 1;
    for (int i = 0; i < cfg.n_socks; i++) {
        int fd = cfg.fds[i];
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &cfg.rcvbuf, sizeof cfg.rcvbuf) < 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg.rcvbuf, sizeof cfg.rcvbuf);
        /* receive timestamps and destination addresses on socket 0 only (a
           1/n_socks sample of users): control messages cost per datagram */
        if (i == 0 && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) die("IP_PKTINFO");
        if (i == 0 && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) die("SO_TIMESTAMPNS");
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    int eff_rcvbuf = 0;
    socklen_t sl = sizeof eff_rcvbuf;
    getsockopt(cfg.fds[0], SOL_SOCKET, SO_RCVBUF, &eff_rcvbuf, &sl);

    sendq = xcalloc((size_t)cfg.n_socks, sizeof(SendQ));
    sender_sent = xcalloc((size_t)cfg.n_senders, sizeof(uint32_t));
    sent_rt = xcalloc((size_t)cfg.n_senders * (size_t)cfg.n_pkts, sizeof(uint64_t));
    rbuf = xcalloc(RECV_BATCH, RECV_SLOT);
    for (int i = 0; i < RECV_BATCH; i++) {
        riov[i].iov_base = rbuf + (size_t)i * RECV_SLOT;
        riov[i].iov_len = RECV_SLOT;
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    size_t words = ((size_t)cfg.n_pkts + 63) / 64;
    bitmap = xcalloc((size_t)cfg.n_consumers, sizeof(uint64_t *));
    uint64_t *bits = xcalloc((size_t)cfg.n_consumers * words, sizeof(uint64_t));
    for (int c = 0; c < cfg.n_consumers; c++) bitmap[c] = bits + (size_t)c * words;
    delay_hist = xcalloc(1, sizeof(Hist));
    lag_hist = xcalloc(1, sizeof(Hist));
    if (cfg.sample_max > cfg.n_consumers) cfg.sample_max = cfg.n_consumers;
    if (cfg.sample_max < 0) cfg.sample_max = 0;
    sample_buf = xcalloc((size_t)(cfg.sample_max ? cfg.sample_max : 1), RECV_SLOT);
    sample_len = xcalloc((size_t)(cfg.sample_max ? cfg.sample_max : 1), sizeof(uint16_t));

    /* the send schedule: senders ordered by phase; event j = round j / N,
       sender ord[j % N], due at t0 + round * period + phase */
    int N = cfg.n_senders;
    int *ord = xcalloc((size_t)N, sizeof(int));
    uint64_t max_phase = 0;
    for (int i = 0; i < N; i++) {
        ord[i] = i;
        if (cfg.sender_phase[i] > max_phase) max_phase = cfg.sender_phase[i];
    }
    qsort(ord, (size_t)N, sizeof(int), cmp_phase);
    uint64_t total = (uint64_t)N * (uint64_t)cfg.n_pkts, j = 0;

    Sample s_start, s_ws = {0}, s_we = {0}, s_end;
    take_sample(&s_start);
    t0 = now_ns() + cfg.lead_ns;
    t_ws = t0 + cfg.warm_ns;
    uint64_t t_we = t_ws + cfg.measure_ns;
    uint64_t t_sched_end = t0 + (uint64_t)(cfg.n_pkts - 1) * cfg.period_ns + max_phase;
    uint64_t t_end = t_sched_end + cfg.drain_ns;
    uint64_t hard = t_end + 10ull * 1000000000ull;
    uint64_t next_drain = t0;
    int ws = 0, we = 0;

    for (;;) {
        uint64_t now = now_ns();
        if (!ws && now >= t_ws) take_sample(&s_ws), ws = 1;
        if (ws && !we && now >= t_we) take_sample(&s_we), we = 1;
        int burst = 0;
        while (j < total && burst < 1024) {
            uint64_t round = j / (uint64_t)N;
            int s = ord[j % (uint64_t)N];
            uint64_t due = t0 + round * cfg.period_ns + cfg.sender_phase[s];
            if (due > now) break;
            queue_send(s, (int)round);
            if (due >= t_ws) hist_add(lag_hist, (int64_t)(now - due));
            j++, burst++;
        }
        for (int si = 0; si < cfg.n_socks; si++)
            if (sendq[si].n) flush_sends(si);
        if (now >= next_drain) {
            for (int si = 0; si < cfg.n_socks; si++) drain_socket(si);
            next_drain = now + cfg.tick_ns;
        }
        if ((j >= total && now >= t_end && we) || now >= hard) break;
        uint64_t next = next_drain;
        if (j < total) {
            uint64_t round = j / (uint64_t)N;
            uint64_t due = t0 + round * cfg.period_ns + cfg.sender_phase[ord[j % (uint64_t)N]];
            if (due < next) next = due;
        }
        if (!ws && t_ws < next) next = t_ws;
        if (ws && !we && t_we < next) next = t_we;
        now = now_ns();
        if (next > now) {
            struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
    }
    for (int si = 0; si < cfg.n_socks; si++) drain_socket(si);
    take_sample(&s_end);

    uint64_t expected = 0;
    for (int c = 0; c < cfg.n_consumers; c++) expected += sender_sent[cfg.cons_sender[c]];
    /* datagrams our own sockets dropped (queue full): SO_MEMINFO's sk_drops */
    uint64_t rxq_total = 0;
    for (int si = 0; si < cfg.n_socks; si++) {
        uint32_t mem[SK_MEMINFO_VARS] = {0};
        socklen_t ml = sizeof mem;
        if (getsockopt(cfg.fds[si], SOL_SOCKET, SO_MEMINFO, mem, &ml) == 0 && ml > SK_MEMINFO_DROPS * 4)
            rxq_total += mem[SK_MEMINFO_DROPS];
    }

    if (cfg.sample_max > 0) {
        FILE *f = fopen(cfg.sample_path, "wb");
        if (!f) die("open sample");
        for (int c = 0; c < cfg.sample_max; c++) {
            if (!sample_len[c]) continue;
            uint32_t cc = (uint32_t)c;
            fwrite(&cc, 4, 1, f);
            fwrite(&sample_len[c], 2, 1, f);
            fwrite(sample_buf + (size_t)c * RECV_SLOT, 1, sample_len[c], f);
        }
        fclose(f);
    }

    printf("{\"sent\":%llu,\"send_errors\":%llu,\"send_calls\":%llu,\"expected\":%llu,\"unique\":%llu,"
           "\"rx_rtp\":%llu,\"rx_rtcp\":%llu,\"dups\":%llu,\"unknown_ssrc\":%llu,\"misrouted\":%llu,"
           "\"no_ext\":%llu,\"bad\":%llu,\"recv_calls\":%llu,\"rcvq_drops\":%llu,\"rcvbuf\":%d,\"windowed\":%d,",
           (unsigned long long)stat_sent, (unsigned long long)stat_send_errors,
           (unsigned long long)stat_send_calls, (unsigned long long)expected, (unsigned long long)stat_unique,
           (unsigned long long)stat_rx_rtp, (unsigned long long)stat_rx_rtcp, (unsigned long long)stat_dups,
           (unsigned long long)stat_unknown, (unsigned long long)stat_misrouted, (unsigned long long)stat_noext,
           (unsigned long long)stat_bad, (unsigned long long)stat_recv_calls, (unsigned long long)rxq_total,
           eff_rcvbuf, ws && we);
    hist_json("delay_us", delay_hist);
    printf(",");
    hist_json("lag_us", lag_hist);
    printf(",");
    if (ws && we)
        sample_json("window", &s_ws, &s_we);
    else
        sample_json("window", &s_start, &s_end);
    printf(",");
    sample_json("run", &s_start, &s_end);
    printf("}\n");
    fflush(stdout);
    return 0;
}
