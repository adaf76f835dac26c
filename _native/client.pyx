# The load generator's media plane ("client mode"): many simulated WebRTC
# users driven by one native thread, for bench/calls.py.
#
# References: RFC 3550 (RTP/RTCP: SR, RR, report blocks, A.1/A.3/A.8 loss
# and jitter), RFC 3711 / RFC 7714 (SRTP), RFC 4585 6.2.1 (generic NACK),
# RFC 8285 (one-byte header extensions), RFC 6464 (audio level),
# draft-holmer-rmcat-transport-wide-cc-extensions-01 (transport-cc).
#
# Why native: a benchmark that must leave the SFU its core cannot spend a
# Python call per media packet (about 1.5 us) on 10k-140k packets/s. Python
# keeps the control plane (ICE, DTLS, SCTP, SDP: bench/simclient.py); this
# thread does what a browser does per packet and per RTCP interval:
#
# - shared sockets (the default of bench/calls.py): every user has its own
#   source address 127.2.x.y (the SFU keys sessions by 5-tuple) on one of a
#   few wildcard-bound sockets, chosen per datagram with IP_PKTINFO, and
#   those sockets are polled without epoll. A socket per user registered
#   with epoll makes every datagram the SFU sends run the epoll wake-up
#   callback inside the SFU's own sendmmsg (loopback delivers in the
#   sender's context), which charged the SFU ~0.3-0.6 us per packet that a
#   NIC would not; bench/forwarding.py's load generator avoids it the same
#   way. The older mode, one socket per user,
#   connected to the SFU once ICE picked the pair;
# - paced senders: Opus-sized packets every 20 ms per unmuted user, or
#   VP8-like frames (bursts of ~1200-byte packets, marker on the last), each
#   sender with a random phase so senders are not synchronised. Every packet
#   is protected with the user's SRTP key and carries, inside the encrypted
#   payload, a stamp: magic, global sender index, packet index k and the
#   send time (CLOCK_REALTIME ns). The SFU strips header extensions it did
#   not map, so the stamp travels in the payload and receivers unprotect
#   every packet, as browsers do;
# - receiving: epoll with a zero timeout (this thread never blocks on the
#   sockets, so the SFU's sends never pay for waking it), recvmmsg per ready
#   socket, the kernel's receive timestamp (SO_TIMESTAMPNS) per datagram.
#   STUN and DTLS go to Python through an event ring (eventfd wakes the
#   asyncio loop); SRTP/SRTCP stay here;
# - per (receiver, SSRC) reception statistics, loss counted by stamp over a
#   measurement window, duplicates (SRTP replay check), reordering, one-way
#   delay histogram (kernel receive time minus send stamp, 1 us buckets);
# - browser-like RTCP, built and protected once per interval: SR per active
#   sender (with report blocks), else RR, plus SDES CNAME; generic NACK for
#   gaps in video streams at once; retransmission of NACKed video packets
#   from a per-sender ring; transport-cc feedback every ~100 ms for streams
#   that carry a transport-wide sequence number (only when the SFU stamps
#   one; its id comes from the negotiated SDP).
#
# Window semantics (exact loss without clock games): window_begin() records
# each sender's next packet index as k_start and sets k_end to "infinity";
# window_end() sets k_end to the next index. A receiver counts a packet in
# the window when k_start <= k < k_end of the sender named in its stamp, so
# expected = k_end - k_start per (receiver, source) and late arrivals of
# in-window packets still count while Python waits for the drain.
#
# Locking: every table lives in one C struct (LpState) shared by the thread
# and Python. The thread holds `mu` while it works and releases it while it
# sleeps; Python's methods take it (without the GIL) for their short calls
# and never create a Python object while holding it (an allocation can run
# the garbage collector for tens of milliseconds: readers copy the C data
# out first). The thread never touches a Python object or the GIL.

from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
import numpy as _np


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    int EPOLLIN
    int EPOLL_CTL_ADD
    int EPOLL_CLOEXEC


cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_NONBLOCK
    int EFD_CLOEXEC


cdef extern from "<unistd.h>" nogil:
    ssize_t lp_write "write"(int fd, const void *buf, size_t count)
    ssize_t lp_read "read"(int fd, void *buf, size_t count)
    int lp_close "close"(int fd)


cdef extern from "<sys/socket.h>" nogil:
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *m)
    cmsghdr *CMSG_NXTHDR(msghdr *m, cmsghdr *c)
    unsigned char *CMSG_DATA(cmsghdr *c)
    ssize_t lp_send "send"(int fd, const void *buf, size_t n, int flags)
    ssize_t lp_sendmsg "sendmsg"(int fd, const msghdr *m, int flags)
    size_t CMSG_SPACE(size_t n)
    size_t CMSG_LEN(size_t n)
    int SOL_SOCKET
    int SCM_TIMESTAMPNS


cdef extern from "<netinet/in.h>" nogil:
    struct in_pktinfo:
        int ipi_ifindex
        in_addr ipi_spec_dst
        in_addr ipi_addr
    int IPPROTO_IP
    int IP_PKTINFO


cdef extern from "<time.h>" nogil:
    int clock_nanosleep(int clk, int flags, const timespec *req, timespec *rem)
    int TIMER_ABSTIME


cdef extern from "<sched.h>" nogil:
    struct sched_param:
        int sched_priority
    int SCHED_FIFO


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_attr_t:
        pass
    ctypedef struct pthread_mutexattr_t:
        pass
    int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *) noexcept nogil,
                       void *arg)
    int pthread_join(pthread_t t, void **ret)
    int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    pthread_t pthread_self()
    int pthread_setschedparam(pthread_t t, int policy, const sched_param *p)


cdef enum:
    LP_MAGIC = 0x53424C44        # "SBLD": our stamp at the start of every payload
    LP_STAMP_LEN = 21            # magic 4, sender 4, k 4, send time ns 8, kind 1
    LP_BATCH = 16                # recvmmsg batch per ready socket
    LP_MAX_ROUNDS = 8            # recvmmsg calls per ready socket per poll
    LP_EPOLL_EVENTS = 512
    LP_CMSG = 128                # control buffer per datagram (a timespec, an in_pktinfo)
    LP_MAX_SHARED = 64           # shared sockets
    LP_EV_DATA = 1600            # largest STUN/DTLS datagram handed to Python
    LP_HIST = 100000             # delay histogram: 1 us buckets up to 100 ms, then one overflow
    LP_RING = 512                # NACK ring per video sender (power of two)
    LP_RING_SLOT = 1536
    LP_TWCC_MAX = 1024           # transport-cc arrivals buffered per user between feedbacks
    LP_NO_SENDER = 0xFFFFFFFF
    LP_REPORT_MAX = 1200
    LP_SLOW = 4096               # in-window packets slower than slow_ns kept for diagnosis

cdef enum LpKind:
    LP_AUDIO = 0
    LP_VIDEO = 1

cdef enum LpEventKind:
    LP_EV_STUN = 1
    LP_EV_DTLS = 2

cdef enum:  # per-user counters (LP_USER_COUNTERS names them)
    LU_RX_DATAGRAMS
    LU_RX_RTP
    LU_RX_RTCP
    LU_RX_BYTES
    LU_TX_RTP
    LU_TX_RTCP
    LU_TX_BYTES
    LU_TX_ERRORS
    LU_SRTP_FAIL
    LU_REPLAY
    LU_NO_KEYS
    LU_NOT_STAMPED
    LU_NACK_TX
    LU_NACK_RX
    LU_RTX_TX
    LU_PLI_RX
    LU_SR_RX
    LU_RR_RX
    LU_TWCC_FB_TX
    LU_TWCC_FB_RX
    LU_EVENTS
    LU_EVENT_DROPS
    LU_STREAM_OVERFLOW
    LU_COUNT

LP_USER_COUNTERS = (
    "rx_datagrams", "rx_rtp", "rx_rtcp", "rx_bytes", "tx_rtp", "tx_rtcp", "tx_bytes", "tx_errors",
    "srtp_fail", "replay", "no_keys", "not_stamped", "nack_tx", "nack_rx", "rtx_tx", "pli_rx",
    "sr_rx", "rr_rx", "twcc_fb_tx", "twcc_fb_rx", "events", "event_drops", "stream_overflow",
)


cdef struct LpSender:
    int32_t user
    int32_t next_in_user
    uint32_t ssrc
    uint8_t pt
    uint8_t kind
    uint8_t active
    uint8_t audio_level_id
    uint8_t mid_id
    uint8_t rid_id
    uint8_t mid_len
    uint8_t rid_len
    uint8_t mid[16]
    uint8_t rid[16]
    uint32_t clock_rate
    int64_t interval_ns         # between bursts (frames); 20 ms for audio
    int32_t burst               # packets per burst
    int32_t payload_len
    uint32_t ts_step            # RTP timestamp step per burst
    uint16_t seq
    uint32_t ts
    uint32_t k                  # next packet index (the stamp's counter)
    uint32_t k_start
    uint32_t k_end
    int64_t last_send_mono      # for the SR's RTP timestamp
    uint32_t sr_packets
    uint32_t sr_octets
    uint64_t sent
    uint64_t rtx
    uint64_t nack_rx
    uint64_t pli_rx
    uint8_t rr_fraction         # the SFU's last report block about this stream
    uint32_t rr_cum_lost
    uint64_t rr_count
    uint8_t *ring               # plaintext copies for NACK (video)
    uint16_t *ring_seq
    uint16_t *ring_len


cdef struct LpStream:
    uint32_t ssrc
    uint32_t sender             # global sender index from the stamp (LP_NO_SENDER until seen)
    uint8_t kind
    uint8_t seq_init
    uint32_t clock_rate
    uint16_t max_seq
    uint32_t cycles
    uint32_t base_seq
    uint32_t received
    uint32_t expected_prior
    uint32_t received_prior
    double jitter
    int64_t last_transit
    uint32_t lsr
    int64_t lsr_mono
    uint64_t win_received
    uint64_t total
    uint64_t dups
    uint64_t reordered
    uint64_t gaps
    uint64_t nacks
    int64_t first_rx_ns
    int64_t last_rx_ns


cdef struct LpUser:
    int fd
    uint8_t keyed
    uint8_t shared              # fd is a shared wildcard socket: send from src_ip to peer
    uint8_t has_peer
    uint32_t src_ip             # network order
    sockaddr_in peer
    void *srtp_in
    void *srtp_out
    uint32_t rtcp_ssrc
    uint8_t twcc_out_id         # transport-cc id on packets we send (0 = none)
    uint8_t twcc_in_id          # transport-cc id on packets we receive (0 = none)
    uint16_t twcc_seq
    uint8_t twcc_fb_count
    int32_t first_sender
    int32_t n_streams
    int64_t next_rtcp
    int64_t next_twcc
    int32_t twcc_n
    uint16_t *twcc_seqs
    int64_t *twcc_arrivals


cdef struct LpHeapItem:
    int64_t key
    int32_t id


cdef struct LpEvent:
    int32_t user
    int32_t kind
    int32_t length


cdef struct LpState:
    int32_t max_users
    int32_t n_users
    int32_t max_senders
    int32_t n_senders
    int32_t max_streams
    LpUser *users
    LpSender *senders
    LpStream *streams           # max_users x max_streams
    uint64_t *ucnt              # max_users x LU_COUNT
    LpHeapItem *sheap           # senders by next due time
    int32_t sheap_n
    LpHeapItem *uheap           # users by next RTCP / transport-cc time
    int32_t uheap_n
    int epfd
    int evfd
    int shared_fds[LP_MAX_SHARED]
    int n_shared
    int n_epoll                 # users with their own socket (registered with epoll)
    IdMap shared_map            # (shared socket index, destination IP) -> user
    uint64_t rx_unknown         # datagrams on a shared socket for no user
    pthread_mutex_t mu
    pthread_t thread
    int started
    volatile int running
    int rt_prio
    int rt_ok
    int64_t poll_ns
    int64_t rtcp_interval_ns
    int64_t twcc_interval_ns
    uint64_t rng
    uint8_t audio_level         # RFC 6464 level we send (0 loudest .. 127 silence)
    # window
    int window_open
    uint64_t *hist              # LP_HIST + 1
    uint64_t delay_n
    double delay_sum
    int64_t delay_max_ns
    int64_t delay_max_at        # receive time (CLOCK_REALTIME ns) of the slowest packet
    # events for Python
    int32_t ev_slots
    int32_t ev_head
    int32_t ev_count
    int ev_notified
    LpEvent *ev
    uint8_t *ev_data
    uint64_t ev_dropped
    # thread statistics
    uint64_t loops
    uint64_t late_1ms           # bursts sent more than 1 ms after their due time
    uint64_t late_5ms
    int64_t late_max_ns
    uint64_t bursts
    uint64_t polls_ready
    int64_t loop_max_ns         # longest locked work section of one loop iteration
    uint64_t loops_over_1ms
    int64_t slow_ns
    int32_t n_slow
    int64_t *slow               # (receive realtime ns, delay ns, user, sender) x LP_SLOW
    # buffers
    epoll_event evs[LP_EPOLL_EVENTS]
    mmsghdr rmsgs[LP_BATCH]
    iovec riov[LP_BATCH]
    uint8_t *rbuf
    uint8_t *cbuf
    uint8_t *sbuf
    uint8_t *tbuf


# ------------------------------------------------------------------ helpers

cdef inline int64_t lp_mono_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int64_t lp_real_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline uint64_t lp_ntp_from_real(int64_t real_ns) noexcept nogil:
    cdef uint64_t secs = <uint64_t>(real_ns // 1000000000) + <uint64_t>2208988800
    cdef uint64_t frac = ((<uint64_t>(real_ns % 1000000000)) << 32) // <uint64_t>1000000000
    return (secs << 32) | frac


cdef inline uint64_t lp_rand(LpState *st) noexcept nogil:
    # xorshift64*
    cdef uint64_t x = st.rng
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    st.rng = x
    return x * <uint64_t>0x2545F4914F6CDD1D


cdef inline void lp_wr64(uint8_t *p, uint64_t v) noexcept nogil:
    wr32(p, <uint32_t>(v >> 32))
    wr32(p + 4, <uint32_t>v)


cdef inline uint64_t lp_rd64(const uint8_t *p) noexcept nogil:
    return (<uint64_t>rd32(p) << 32) | rd32(p + 4)


# min-heaps of (key, id)

cdef inline void lp_heap_push(LpHeapItem *h, int32_t *n, int64_t key, int32_t id) noexcept nogil:
    cdef int32_t i = n[0], parent
    n[0] += 1
    while i > 0:
        parent = (i - 1) >> 1
        if h[parent].key <= key:
            break
        h[i] = h[parent]
        i = parent
    h[i].key = key
    h[i].id = id


cdef inline LpHeapItem lp_heap_pop(LpHeapItem *h, int32_t *n) noexcept nogil:
    cdef LpHeapItem top = h[0]
    cdef LpHeapItem last
    cdef int32_t i = 0, child, size
    n[0] -= 1
    size = n[0]
    if size > 0:
        last = h[size]
        while True:
            child = 2 * i + 1
            if child >= size:
                break
            if child + 1 < size and h[child + 1].key < h[child].key:
                child += 1
            if h[child].key >= last.key:
                break
            h[i] = h[child]
            i = child
        h[i] = last
    return top


# ------------------------------------------------------------------ events to Python

cdef void lp_push_event(LpState *st, int32_t user, int32_t kind, const uint8_t *data, int n) noexcept nogil:
    cdef int32_t i
    if st.ev_count >= st.ev_slots or n > LP_EV_DATA:
        st.ev_dropped += 1
        st.ucnt[<size_t>user * LU_COUNT + LU_EVENT_DROPS] += 1
        return
    i = (st.ev_head + st.ev_count) % st.ev_slots
    st.ev[i].user = user
    st.ev[i].kind = kind
    st.ev[i].length = n
    memcpy(st.ev_data + <size_t>i * LP_EV_DATA, data, n)
    st.ev_count += 1
    st.ucnt[<size_t>user * LU_COUNT + LU_EVENTS] += 1


# ------------------------------------------------------------------ sending

cdef inline void lp_count_send(LpState *st, int32_t uid, ssize_t r, int ln, int counter) noexcept nogil:
    cdef uint64_t *c = st.ucnt + <size_t>uid * LU_COUNT
    if r == ln:
        c[counter] += 1
        c[LU_TX_BYTES] += ln
    else:
        c[LU_TX_ERRORS] += 1


cdef ssize_t lp_user_send(LpUser *u, const uint8_t *p, int n) noexcept nogil:
    """One datagram from the user to the SFU: send() on its own connected
    socket, or sendmsg() from its address (IP_PKTINFO) on a shared one."""
    cdef msghdr m
    cdef iovec io
    cdef uint64_t ctl[8]
    cdef cmsghdr *c
    cdef in_pktinfo *pi
    if not u.shared:
        return lp_send(u.fd, p, n, MSG_DONTWAIT)
    if not u.has_peer:
        return -1
    io.iov_base = <void *>p
    io.iov_len = n
    memset(&m, 0, sizeof(msghdr))
    memset(ctl, 0, sizeof(ctl))
    m.msg_name = &u.peer
    m.msg_namelen = sizeof(sockaddr_in)
    m.msg_iov = &io
    m.msg_iovlen = 1
    m.msg_control = ctl
    m.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo))
    c = CMSG_FIRSTHDR(&m)
    c.cmsg_level = IPPROTO_IP
    c.cmsg_type = IP_PKTINFO
    c.cmsg_len = CMSG_LEN(sizeof(in_pktinfo))
    pi = <in_pktinfo *>CMSG_DATA(c)
    pi.ipi_spec_dst.s_addr = u.src_ip
    return lp_sendmsg(u.fd, &m, MSG_DONTWAIT)


cdef int lp_build_rtp(LpState *st, LpSender *s, LpUser *u, uint32_t sender_idx, bint marker,
                      uint8_t *p) noexcept nogil:
    """Write one plaintext RTP packet of sender ``s`` into ``p``; returns its length."""
    cdef int i = 16, pay
    p[0] = 0x90                                   # V=2, X=1
    p[1] = <uint8_t>((0x80 if marker else 0) | (s.pt & 0x7F))
    wr16(p + 2, s.seq)
    wr32(p + 4, s.ts)
    wr32(p + 8, s.ssrc)
    p[12] = 0xBE
    p[13] = 0xDE
    if s.audio_level_id:
        p[i] = <uint8_t>(s.audio_level_id << 4)
        p[i + 1] = 0x80 | (st.audio_level & 0x7F)     # V bit: voice
        i += 2
    if u.twcc_out_id:
        p[i] = <uint8_t>((u.twcc_out_id << 4) | 1)
        wr16(p + i + 1, u.twcc_seq)
        u.twcc_seq += 1
        i += 3
    if s.mid_id and s.mid_len:
        p[i] = <uint8_t>((s.mid_id << 4) | (s.mid_len - 1))
        memcpy(p + i + 1, s.mid, s.mid_len)
        i += 1 + s.mid_len
    if s.rid_id and s.rid_len:
        p[i] = <uint8_t>((s.rid_id << 4) | (s.rid_len - 1))
        memcpy(p + i + 1, s.rid, s.rid_len)
        i += 1 + s.rid_len
    while (i - 16) & 3:
        p[i] = 0
        i += 1
    wr16(p + 14, <uint16_t>((i - 16) // 4))
    pay = i
    wr32(p + pay, LP_MAGIC)
    wr32(p + pay + 4, sender_idx)
    wr32(p + pay + 8, s.k)
    lp_wr64(p + pay + 12, <uint64_t>lp_real_ns())
    p[pay + 20] = s.kind
    return pay + s.payload_len


cdef void lp_send_burst(LpState *st, int32_t sidx, int64_t now) noexcept nogil:
    cdef LpSender *s = &st.senders[sidx]
    cdef LpUser *u = &st.users[s.user]
    cdef uint8_t *p = st.sbuf
    cdef int b, n, ln
    cdef uint32_t slot
    cdef ssize_t r
    for b in range(s.burst):
        n = lp_build_rtp(st, s, u, <uint32_t>sidx, s.kind == LP_VIDEO and b == s.burst - 1, p)
        if s.ring != NULL and n <= LP_RING_SLOT:
            slot = s.seq & (LP_RING - 1)
            memcpy(s.ring + <size_t>slot * LP_RING_SLOT, p, n)
            s.ring_seq[slot] = s.seq
            s.ring_len[slot] = <uint16_t>n
        ln = n
        if srtp_protect_fn(u.srtp_out, p, &ln) != SRTP_OK:
            st.ucnt[<size_t>s.user * LU_COUNT + LU_SRTP_FAIL] += 1
        else:
            r = lp_user_send(u, p, ln)
            lp_count_send(st, s.user, r, ln, LU_TX_RTP)
        s.seq += 1
        s.k += 1
        s.sent += 1
        s.sr_packets += 1
        s.sr_octets += <uint32_t>s.payload_len
    s.last_send_mono = now
    s.ts += s.ts_step


cdef void lp_send_due(LpState *st, int64_t now) noexcept nogil:
    cdef LpHeapItem it
    cdef LpSender *s
    cdef int64_t late
    while st.sheap_n > 0 and st.sheap[0].key <= now:
        it = lp_heap_pop(st.sheap, &st.sheap_n)
        s = &st.senders[it.id]
        if s.active and st.users[s.user].keyed:
            late = now - it.key
            if late > 1000000:
                st.late_1ms += 1
                if late > 5000000:
                    st.late_5ms += 1
            if late > st.late_max_ns:
                st.late_max_ns = late
            st.bursts += 1
            lp_send_burst(st, it.id, now)
        else:
            # an idle sender keeps its place in time: RTP time runs on
            s.ts += s.ts_step
        lp_heap_push(st.sheap, &st.sheap_n, it.key + s.interval_ns, it.id)


cdef void lp_retransmit(LpState *st, LpSender *s, int32_t uid, uint16_t seq) noexcept nogil:
    cdef uint32_t slot
    cdef int n, ln
    cdef ssize_t r
    cdef LpUser *u = &st.users[uid]
    if s.ring == NULL:
        return
    slot = seq & (LP_RING - 1)
    n = s.ring_len[slot]
    if n == 0 or s.ring_seq[slot] != seq:
        return
    memcpy(st.tbuf, s.ring + <size_t>slot * LP_RING_SLOT, n)
    ln = n
    if srtp_protect_fn(u.srtp_out, st.tbuf, &ln) != SRTP_OK:
        st.ucnt[<size_t>uid * LU_COUNT + LU_SRTP_FAIL] += 1
        return
    r = lp_user_send(u, st.tbuf, ln)
    lp_count_send(st, uid, r, ln, LU_RTX_TX)
    s.rtx += 1


# ------------------------------------------------------------------ RTCP we send

cdef inline void lp_send_rtcp(LpState *st, int32_t uid, uint8_t *p, int n) noexcept nogil:
    cdef LpUser *u = &st.users[uid]
    cdef int ln = n
    cdef ssize_t r
    if srtp_protect_rtcp_fn(u.srtp_out, p, &ln) != SRTP_OK:
        st.ucnt[<size_t>uid * LU_COUNT + LU_SRTP_FAIL] += 1
        return
    r = lp_user_send(u, p, ln)
    lp_count_send(st, uid, r, ln, LU_TX_RTCP)


cdef int lp_report_block(LpStream *rs, uint8_t *p, int64_t now) noexcept nogil:
    cdef uint32_t ext_max = rs.cycles + rs.max_seq
    cdef uint32_t expected = ext_max - rs.base_seq + 1
    cdef uint32_t lost = expected - rs.received if expected > rs.received else 0
    cdef uint32_t exp_int = expected - rs.expected_prior
    cdef uint32_t rec_int = rs.received - rs.received_prior
    cdef uint32_t lost_int = exp_int - rec_int if exp_int > rec_int else 0
    cdef uint32_t cum = lost if lost < 0x7FFFFF else 0x7FFFFF
    cdef uint32_t dlsr = 0
    rs.expected_prior = expected
    rs.received_prior = rs.received
    wr32(p, rs.ssrc)
    p[4] = <uint8_t>((lost_int << 8) // exp_int) if exp_int else 0
    p[5] = <uint8_t>(cum >> 16)
    p[6] = <uint8_t>(cum >> 8)
    p[7] = <uint8_t>cum
    wr32(p + 8, ext_max)
    wr32(p + 12, <uint32_t>rs.jitter)
    wr32(p + 16, rs.lsr)
    if rs.lsr:
        dlsr = <uint32_t>(((now - rs.lsr_mono) * 65536) // 1000000000)
    wr32(p + 20, dlsr)
    return 24


cdef void lp_send_reports(LpState *st, int32_t uid, int64_t now) noexcept nogil:
    """One compound per interval: SR for the first active sender carrying the
    report blocks (RR when the user sends nothing), SRs for other active
    senders, SDES CNAME (RFC 3550 6.1)."""
    cdef LpUser *u = &st.users[uid]
    cdef uint8_t *p = st.tbuf
    cdef int n, blocks = 0, k, start
    cdef int32_t sidx = u.first_sender, first = -1
    cdef LpSender *s
    cdef LpStream *rs = st.streams + <size_t>uid * st.max_streams
    cdef uint64_t ntp = lp_ntp_from_real(lp_real_ns())
    while sidx >= 0:
        if st.senders[sidx].active and st.senders[sidx].sent:
            first = sidx
            break
        sidx = st.senders[sidx].next_in_user
    if first >= 0:
        s = &st.senders[first]
        n = 28
        wr32(p + 4, s.ssrc)
        lp_wr64(p + 8, ntp)
        wr32(p + 16, s.ts + <uint32_t>(((now - s.last_send_mono) * <int64_t>s.clock_rate) // 1000000000))
        wr32(p + 20, s.sr_packets)
        wr32(p + 24, s.sr_octets)
    else:
        n = 8
        wr32(p + 4, u.rtcp_ssrc)
    for k in range(u.n_streams):
        if rs[k].seq_init and blocks < 31 and n + 24 <= LP_REPORT_MAX - 200:
            n += lp_report_block(&rs[k], p + n, now)
            blocks += 1
    rtcp_write_header(p, blocks, RTCP_SR if first >= 0 else RTCP_RR, n)
    if first >= 0:
        sidx = st.senders[first].next_in_user
        while sidx >= 0 and n + 28 + 20 <= LP_REPORT_MAX:
            s = &st.senders[sidx]
            sidx = s.next_in_user
            if not s.active or not s.sent:
                continue
            start = n
            wr32(p + n + 4, s.ssrc)
            lp_wr64(p + n + 8, ntp)
            wr32(p + n + 16, s.ts + <uint32_t>(((now - s.last_send_mono) * <int64_t>s.clock_rate) // 1000000000))
            wr32(p + n + 20, s.sr_packets)
            wr32(p + n + 24, s.sr_octets)
            n += 28
            rtcp_write_header(p + start, 0, RTCP_SR, 28)
    # SDES: one chunk, CNAME "lt-XXXXXX" (9 bytes) -> 4 + 4 + 2 + 9 + end + pad = 20
    start = n
    wr32(p + n + 4, st.senders[first].ssrc if first >= 0 else u.rtcp_ssrc)
    p[n + 8] = 1
    p[n + 9] = 9
    memcpy(p + n + 10, b"lt-", 3)
    for k in range(6):
        p[n + 13 + k] = b"0123456789abcdef"[(uid >> (20 - 4 * k)) & 15]
    p[n + 19] = 0
    n += 20
    rtcp_write_header(p + start, 1, RTCP_SDES, 20)
    lp_send_rtcp(st, uid, p, n)


cdef int lp_build_twcc(uint8_t *p, uint32_t sender_ssrc, uint32_t media_ssrc, const uint16_t *seqs,
                       const int64_t *arrivals, int cnt, uint8_t fb_count, int32_t *order,
                       int64_t *by_index) noexcept nogil:
    """transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
    section 3.1) for ``cnt`` recorded (sequence, arrival ns) pairs, in any
    order. Status vector chunks of seven 2-bit symbols; receive deltas in
    250 us units, 1 byte when 0..255 ('small'), else 2 bytes ('large').
    ``order``/``by_index`` are scratch arrays of LP_TWCC_MAX entries."""
    cdef uint16_t base = seqs[0]
    cdef int i, idx, count = 0, n, sym, chunk, k, pad
    cdef int64_t ref_us64, prev, d, first_arrival = -1
    cdef int16_t rel
    for i in range(1, cnt):
        rel = <int16_t>(seqs[i] - base)
        if rel < 0:
            base = seqs[i]
    for i in range(LP_TWCC_MAX):
        by_index[i] = -1
    for i in range(cnt):
        idx = <uint16_t>(seqs[i] - base)
        if idx >= LP_TWCC_MAX:
            continue
        if by_index[idx] < 0:
            by_index[idx] = arrivals[i]
        if idx + 1 > count:
            count = idx + 1
    if count == 0:
        return 0
    for i in range(count):
        if by_index[i] >= 0:
            first_arrival = by_index[i]
            break
    # reference time: multiples of 64 ms, 24 bits
    ref_us64 = (first_arrival // 1000) // 64000
    n = 20
    # symbols
    prev = ref_us64 * 64000 * 1000
    for i in range(count):
        if by_index[i] < 0:
            order[i] = 0
        else:
            d = (by_index[i] - prev) // 250000
            order[i] = 1 if 0 <= d <= 255 else 2
            prev += d * 250000
    i = 0
    while i < count:
        chunk = 0xC000
        for k in range(7):
            sym = order[i + k] if i + k < count else 0
            chunk |= sym << (12 - 2 * k)
        wr16(p + n, <uint16_t>chunk)
        n += 2
        i += 7
    prev = ref_us64 * 64000 * 1000
    for i in range(count):
        if order[i] == 0:
            continue
        d = (by_index[i] - prev) // 250000
        prev += d * 250000
        if order[i] == 1:
            p[n] = <uint8_t>d
            n += 1
        else:
            if d > 32767:
                d = 32767
            elif d < -32768:
                d = -32768
            wr16(p + n, <uint16_t>(<int16_t>d))
            n += 2
    pad = (4 - (n & 3)) & 3
    for k in range(pad):
        p[n + k] = 0
    if pad:
        p[n + pad - 1] = <uint8_t>pad
    n += pad
    rtcp_write_header(p, 15, RTCP_RTPFB, n)
    if pad:
        p[0] |= 0x20
    wr32(p + 4, sender_ssrc)
    wr32(p + 8, media_ssrc)
    wr16(p + 12, base)
    wr16(p + 14, <uint16_t>count)
    p[16] = <uint8_t>(ref_us64 >> 16)
    p[17] = <uint8_t>(ref_us64 >> 8)
    p[18] = <uint8_t>ref_us64
    p[19] = fb_count
    return n


cdef void lp_send_twcc(LpState *st, int32_t uid) noexcept nogil:
    cdef LpUser *u = &st.users[uid]
    cdef int n
    cdef uint32_t media = st.streams[<size_t>uid * st.max_streams].ssrc if u.n_streams else 0
    if u.twcc_n == 0:
        return
    n = lp_build_twcc(st.tbuf, u.rtcp_ssrc, media, u.twcc_seqs, u.twcc_arrivals, u.twcc_n,
                      u.twcc_fb_count, <int32_t *>(st.tbuf + 4096), <int64_t *>(st.tbuf + 8192))
    u.twcc_n = 0
    if n <= 0:
        return
    u.twcc_fb_count += 1
    st.ucnt[<size_t>uid * LU_COUNT + LU_TWCC_FB_TX] += 1
    lp_send_rtcp(st, uid, st.tbuf, n)


cdef void lp_user_timers(LpState *st, int64_t now) noexcept nogil:
    cdef LpHeapItem it
    cdef LpUser *u
    cdef int64_t nxt
    while st.uheap_n > 0 and st.uheap[0].key <= now:
        it = lp_heap_pop(st.uheap, &st.uheap_n)
        u = &st.users[it.id]
        if u.next_rtcp <= now:
            if u.keyed:
                lp_send_reports(st, it.id, now)
            # RFC 3550 6.3.1: randomise each interval to 0.5-1.5 times the nominal one
            u.next_rtcp = now + st.rtcp_interval_ns // 2 + <int64_t>(lp_rand(st) % <uint64_t>(st.rtcp_interval_ns + 1))
        if u.next_twcc <= now:
            if u.keyed and u.twcc_in_id:
                lp_send_twcc(st, it.id)
            u.next_twcc = now + st.twcc_interval_ns
        nxt = u.next_rtcp
        if u.twcc_in_id and u.next_twcc < nxt:
            nxt = u.next_twcc
        lp_heap_push(st.uheap, &st.uheap_n, nxt, it.id)


# ------------------------------------------------------------------ receiving

cdef LpStream *lp_stream(LpState *st, int32_t uid, uint32_t ssrc) noexcept nogil:
    cdef LpUser *u = &st.users[uid]
    cdef LpStream *rs = st.streams + <size_t>uid * st.max_streams
    cdef int k
    for k in range(u.n_streams):
        if rs[k].ssrc == ssrc:
            return &rs[k]
    return NULL


cdef void lp_send_nack(LpState *st, int32_t uid, LpStream *rs, uint16_t first, int missing) noexcept nogil:
    cdef uint16_t pids[4]
    cdef uint16_t blps[4]
    cdef int nfci = 0, i = 0, k, n
    if missing > 68:
        return                       # a restart, not loss
    while i < missing and nfci < 4:
        pids[nfci] = <uint16_t>(first + i)
        blps[nfci] = 0
        for k in range(16):
            if i + 1 + k < missing:
                blps[nfci] |= <uint16_t>(1 << k)
        i += 17
        nfci += 1
    n = rtcp_write_nack(st.tbuf, st.users[uid].rtcp_ssrc, rs.ssrc, pids, blps, nfci)
    rs.nacks += 1
    st.ucnt[<size_t>uid * LU_COUNT + LU_NACK_TX] += 1
    lp_send_rtcp(st, uid, st.tbuf, n)


cdef void lp_on_rtp(LpState *st, int32_t uid, uint8_t *p, int n, int64_t rx_real, int64_t now) noexcept nogil:
    cdef LpUser *u = &st.users[uid]
    cdef uint64_t *cnt = st.ucnt + <size_t>uid * LU_COUNT
    cdef RtpView v
    cdef LpStream *rs
    cdef int err, off, ln
    cdef uint32_t sidx = LP_NO_SENDER, k = 0
    cdef uint8_t kind = LP_AUDIO
    cdef int64_t sent_real = 0, d, arrival, transit
    cdef int16_t delta
    cdef const uint8_t *pl
    cdef LpSender *src
    err = srtp_unprotect_fn(u.srtp_in, p, &n)
    if err != SRTP_OK:
        if err == SRTP_ERR_REPLAY_FAIL or err == SRTP_ERR_REPLAY_OLD:
            cnt[LU_REPLAY] += 1
            if rtp_parse(p, n, &v) == 0:
                rs = lp_stream(st, uid, v.ssrc)
                if rs != NULL:
                    rs.dups += 1
        else:
            cnt[LU_SRTP_FAIL] += 1
        return
    if rtp_parse(p, n, &v) != 0:
        cnt[LU_SRTP_FAIL] += 1
        return
    cnt[LU_RX_RTP] += 1
    if v.payload_len >= LP_STAMP_LEN and rd32(p + v.payload_off) == LP_MAGIC:
        pl = p + v.payload_off
        sidx = rd32(pl + 4)
        k = rd32(pl + 8)
        sent_real = <int64_t>lp_rd64(pl + 12)
        kind = pl[20]
        if sidx >= <uint32_t>st.n_senders:
            sidx = LP_NO_SENDER
    if sidx == LP_NO_SENDER:
        cnt[LU_NOT_STAMPED] += 1
    rs = lp_stream(st, uid, v.ssrc)
    if rs == NULL:
        if u.n_streams >= st.max_streams:
            cnt[LU_STREAM_OVERFLOW] += 1
            return
        rs = st.streams + <size_t>uid * st.max_streams + u.n_streams
        u.n_streams += 1
        memset(rs, 0, sizeof(LpStream))
        rs.ssrc = v.ssrc
        rs.sender = sidx
        rs.kind = kind
        rs.clock_rate = 90000 if kind == LP_VIDEO else 48000
        rs.first_rx_ns = rx_real
    if rs.sender == LP_NO_SENDER:
        rs.sender = sidx
    rs.total += 1
    rs.last_rx_ns = rx_real
    # reception statistics (RFC 3550 A.1, A.8)
    if not rs.seq_init:
        rs.seq_init = 1
        rs.base_seq = v.seq
        rs.max_seq = v.seq
        rs.received = 1
        rs.last_transit = ((now // 1000) * <int64_t>rs.clock_rate) // 1000000 - <int64_t>v.ts
    else:
        delta = <int16_t>(v.seq - rs.max_seq)
        if delta > 0:
            if v.seq < rs.max_seq:
                rs.cycles += 65536
            if delta > 1:
                rs.gaps += delta - 1
                if rs.kind == LP_VIDEO and u.keyed:
                    lp_send_nack(st, uid, rs, <uint16_t>(rs.max_seq + 1), delta - 1)
            rs.max_seq = v.seq
        else:
            rs.reordered += 1
        rs.received += 1
        arrival = ((now // 1000) * <int64_t>rs.clock_rate) // 1000000
        transit = arrival - <int64_t>v.ts
        d = <int64_t><int32_t>(<uint32_t>(transit - rs.last_transit))
        rs.last_transit = transit
        if d < 0:
            d = -d
        rs.jitter += (<double>d - rs.jitter) / 16.0
    # the measurement window, by the source's packet index
    if sidx != LP_NO_SENDER:
        src = &st.senders[sidx]
        if src.k_start <= k < src.k_end:
            rs.win_received += 1
            d = rx_real - sent_real
            if d < 0:
                d = 0
            if d > st.delay_max_ns:
                st.delay_max_ns = d
                st.delay_max_at = rx_real
            st.delay_n += 1
            st.delay_sum += <double>d
            if d >= st.slow_ns and st.n_slow < LP_SLOW:
                st.slow[4 * st.n_slow] = rx_real
                st.slow[4 * st.n_slow + 1] = d
                st.slow[4 * st.n_slow + 2] = uid
                st.slow[4 * st.n_slow + 3] = <int64_t>sidx
                st.n_slow += 1
            d //= 1000
            st.hist[d if d < LP_HIST else LP_HIST] += 1
    # transport-wide sequence numbers stamped by the SFU
    if u.twcc_in_id and u.twcc_n < LP_TWCC_MAX:
        off = rtp_ext_find(p, &v, u.twcc_in_id, &ln)
        if off >= 0 and ln >= 2:
            u.twcc_seqs[u.twcc_n] = rd16(p + off)
            u.twcc_arrivals[u.twcc_n] = rx_real
            u.twcc_n += 1


cdef LpSender *lp_own_sender(LpState *st, int32_t uid, uint32_t ssrc) noexcept nogil:
    cdef int32_t sidx = st.users[uid].first_sender
    while sidx >= 0:
        if st.senders[sidx].ssrc == ssrc:
            return &st.senders[sidx]
        sidx = st.senders[sidx].next_in_user
    return NULL


cdef void lp_on_rtcp(LpState *st, int32_t uid, uint8_t *p, int n, int64_t now) noexcept nogil:
    cdef LpUser *u = &st.users[uid]
    cdef uint64_t *cnt = st.ucnt + <size_t>uid * LU_COUNT
    cdef RtcpItem it
    cdef int off = 0, r, k, base, bit
    cdef const uint8_t *q
    cdef const uint8_t *b
    cdef LpStream *rs
    cdef LpSender *s
    cdef uint16_t pid, blp
    if srtp_unprotect_rtcp_fn(u.srtp_in, p, &n) != SRTP_OK:
        cnt[LU_SRTP_FAIL] += 1
        return
    cnt[LU_RX_RTCP] += 1
    while True:
        r = rtcp_next(p, n, off, &it)
        if r <= 0:
            break
        q = p + it.off
        off += it.len
        if it.pt == RTCP_SR or it.pt == RTCP_RR:
            base = 28 if it.pt == RTCP_SR else 8
            if it.blen < base + 24 * it.count:
                break
            if it.pt == RTCP_SR:
                cnt[LU_SR_RX] += 1
                rs = lp_stream(st, uid, rd32(q + 4))
                if rs != NULL:
                    rs.lsr = (rd32(q + 8) << 16) | (rd32(q + 12) >> 16)
                    rs.lsr_mono = now
            else:
                cnt[LU_RR_RX] += 1
            for k in range(it.count):
                b = q + base + 24 * k
                s = lp_own_sender(st, uid, rd32(b))
                if s != NULL:
                    s.rr_fraction = b[4]
                    s.rr_cum_lost = (<uint32_t>b[5] << 16) | (<uint32_t>b[6] << 8) | b[7]
                    s.rr_count += 1
        elif it.pt == RTCP_RTPFB and it.blen >= 12:
            if it.count == 1:
                cnt[LU_NACK_RX] += 1
                s = lp_own_sender(st, uid, rd32(q + 8))
                if s != NULL:
                    s.nack_rx += 1
                    for k in range(12, it.blen - 3, 4):
                        pid = rd16(q + k)
                        blp = rd16(q + k + 2)
                        lp_retransmit(st, s, uid, pid)
                        for bit in range(16):
                            if blp & (1 << bit):
                                lp_retransmit(st, s, uid, <uint16_t>(pid + bit + 1))
            elif it.count == 15:
                cnt[LU_TWCC_FB_RX] += 1
        elif it.pt == RTCP_PSFB and it.blen >= 12:
            if it.count == 1 or it.count == 4:
                cnt[LU_PLI_RX] += 1
                s = lp_own_sender(st, uid, rd32(q + 8) if it.count == 1 else
                                  (rd32(q + 12) if it.blen >= 20 else 0))
                if s != NULL:
                    s.pli_rx += 1


cdef void lp_on_datagram(LpState *st, int32_t uid, uint8_t *p, int n, int64_t rx_real,
                         int64_t now) noexcept nogil:
    cdef uint64_t *cnt = st.ucnt + <size_t>uid * LU_COUNT
    cdef uint8_t b
    cnt[LU_RX_DATAGRAMS] += 1
    cnt[LU_RX_BYTES] += n
    if n < 1:
        return
    b = p[0]
    if b <= 3:
        lp_push_event(st, uid, LP_EV_STUN, p, n)
    elif 20 <= b <= 63:
        lp_push_event(st, uid, LP_EV_DTLS, p, n)
    elif 128 <= b <= 191:
        if not st.users[uid].keyed:
            cnt[LU_NO_KEYS] += 1
        elif rtcp_is_rtcp(p, n):
            lp_on_rtcp(st, uid, p, n, now)
        elif n >= 12:
            lp_on_rtp(st, uid, p, n, rx_real, now)


cdef void lp_drain(LpState *st, int fd, int32_t uid, int shared) noexcept nogil:
    """Read a socket dry: the user's own (``uid``), or shared socket number
    ``shared`` (``uid`` -1), where each datagram goes to the user whose
    address it was sent to (IP_PKTINFO)."""
    cdef int i, got, rounds = 0
    cdef int32_t to
    cdef uint32_t dst
    cdef int64_t now, rx_real
    cdef cmsghdr *c
    cdef timespec *ts
    while rounds < LP_MAX_ROUNDS:
        for i in range(LP_BATCH):
            st.rmsgs[i].msg_hdr.msg_name = NULL
            st.rmsgs[i].msg_hdr.msg_namelen = 0
            st.rmsgs[i].msg_hdr.msg_control = st.cbuf + i * LP_CMSG
            st.rmsgs[i].msg_hdr.msg_controllen = LP_CMSG
            st.rmsgs[i].msg_hdr.msg_flags = 0
        got = recvmmsg(fd, st.rmsgs, LP_BATCH, MSG_DONTWAIT, NULL)
        if got <= 0:
            break
        now = lp_mono_ns()
        for i in range(got):
            rx_real = 0
            dst = 0
            c = CMSG_FIRSTHDR(&st.rmsgs[i].msg_hdr)
            while c != NULL:
                if c.cmsg_level == SOL_SOCKET and c.cmsg_type == SCM_TIMESTAMPNS:
                    ts = <timespec *>CMSG_DATA(c)
                    rx_real = <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
                elif c.cmsg_level == IPPROTO_IP and c.cmsg_type == IP_PKTINFO:
                    dst = (<in_pktinfo *>CMSG_DATA(c)).ipi_addr.s_addr
                c = CMSG_NXTHDR(&st.rmsgs[i].msg_hdr, c)
            to = uid if shared < 0 else idmap_get(&st.shared_map, (<uint64_t>shared << 32) | dst)
            if st.rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                continue
            if to < 0:
                st.rx_unknown += 1
                continue
            if rx_real == 0:
                rx_real = lp_real_ns()
            lp_on_datagram(st, to, st.rbuf + <size_t>i * SLOT_SIZE, st.rmsgs[i].msg_len, rx_real, now)
        rounds += 1
        if got < LP_BATCH:
            break


cdef void lp_poll(LpState *st) noexcept nogil:
    cdef int i, n
    for i in range(st.n_shared):
        lp_drain(st, st.shared_fds[i], -1, i)
    if st.n_epoll == 0:
        return
    n = epoll_wait(st.epfd, st.evs, LP_EPOLL_EVENTS, 0)
    if n <= 0:
        return
    st.polls_ready += n
    for i in range(n):
        lp_drain(st, st.users[st.evs[i].data.u32].fd, <int32_t>st.evs[i].data.u32, -1)


cdef void *lp_thread_main(void *arg) noexcept nogil:
    cdef LpState *st = <LpState *>arg
    cdef sched_param sp
    cdef int64_t now, wake, t0
    cdef timespec ts
    cdef uint64_t one = 1
    if st.rt_prio > 0:
        sp.sched_priority = st.rt_prio
        st.rt_ok = 1 if pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0 else 0
    while st.running:
        pthread_mutex_lock(&st.mu)
        now = lp_mono_ns()
        t0 = now
        lp_send_due(st, now)
        lp_poll(st)
        now = lp_mono_ns()
        lp_user_timers(st, now)
        st.loops += 1
        if now - t0 > st.loop_max_ns:
            st.loop_max_ns = now - t0
        if now - t0 > 1000000:
            st.loops_over_1ms += 1
        wake = now + st.poll_ns
        if st.sheap_n > 0 and st.sheap[0].key < wake:
            wake = st.sheap[0].key
        if st.uheap_n > 0 and st.uheap[0].key < wake:
            wake = st.uheap[0].key
        if st.ev_count and not st.ev_notified:
            st.ev_notified = 1
            lp_write(st.evfd, &one, 8)
        pthread_mutex_unlock(&st.mu)
        if wake > now:
            ts.tv_sec = wake // 1000000000
            ts.tv_nsec = wake % 1000000000
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
    return NULL


# ------------------------------------------------------------------ Python API

class LoadPlaneError(Exception):
    """Misuse of the load plane's API (bad ids, limits, state)."""


cdef class LoadPlane:
    """Media for many simulated WebRTC users, on one native thread. See the
    comment at the top of this file.

    Typical use (bench/simclient.py): ``add_user(fd)`` per user socket;
    ``add_sender(...)`` per stream it will send; ``start()``; register
    ``event_fd`` with the event loop and call ``poll_events()`` when it is
    readable (STUN and DTLS datagrams, per user); once DTLS is done,
    ``set_user_keys``; then ``set_sender_active``. ``window_begin`` /
    ``window_end`` bracket the measured window; ``streams()``,
    ``senders()``, ``user_counters``, ``delay_histogram()`` and ``stats()``
    read the results.
    """

    cdef LpState *st
    cdef list _keys
    cdef readonly object user_counters

    def __cinit__(self, int max_users, int max_senders, int max_streams=16, double poll_us=100.0,
                  double rtcp_interval=1.0, double twcc_interval=0.1, int event_slots=4096,
                  int rt_priority=0, uint64_t seed=0x9E3779B97F4A7C15, int audio_level=30):
        cdef LpState *st
        cdef int i
        if max_users < 1 or max_senders < 1 or not (1 <= max_streams <= 1024):
            raise LoadPlaneError("max_users and max_senders must be positive, max_streams 1-1024")
        if not (10.0 <= poll_us <= 100000.0) or rtcp_interval <= 0 or twcc_interval <= 0:
            raise LoadPlaneError("poll_us must be 10-100000, intervals positive")
        if event_slots < 16:
            raise LoadPlaneError("event_slots must be at least 16")
        st = <LpState *>PyMem_Calloc(1, sizeof(LpState))
        if st == NULL:
            raise MemoryError()
        self.st = st
        st.epfd = -1
        st.evfd = -1
        st.max_users = max_users
        st.max_senders = max_senders
        st.max_streams = max_streams
        st.poll_ns = <int64_t>(poll_us * 1000)
        st.rtcp_interval_ns = <int64_t>(rtcp_interval * 1e9)
        st.twcc_interval_ns = <int64_t>(twcc_interval * 1e9)
        st.rt_prio = rt_priority
        st.rng = seed or 1
        st.audio_level = <uint8_t>(audio_level & 0x7F)
        st.ev_slots = event_slots
        st.users = <LpUser *>PyMem_Calloc(max_users, sizeof(LpUser))
        st.senders = <LpSender *>PyMem_Calloc(max_senders, sizeof(LpSender))
        st.streams = <LpStream *>PyMem_Calloc(<size_t>max_users * max_streams, sizeof(LpStream))
        st.sheap = <LpHeapItem *>PyMem_Calloc(max_senders, sizeof(LpHeapItem))
        st.uheap = <LpHeapItem *>PyMem_Calloc(max_users, sizeof(LpHeapItem))
        st.hist = <uint64_t *>PyMem_Calloc(LP_HIST + 1, sizeof(uint64_t))
        st.slow = <int64_t *>PyMem_Calloc(4 * LP_SLOW, sizeof(int64_t))
        st.slow_ns = 2000000
        st.ev = <LpEvent *>PyMem_Calloc(event_slots, sizeof(LpEvent))
        st.ev_data = <uint8_t *>PyMem_Malloc(<size_t>event_slots * LP_EV_DATA)
        st.rbuf = <uint8_t *>PyMem_Malloc(<size_t>LP_BATCH * SLOT_SIZE)
        st.cbuf = <uint8_t *>PyMem_Calloc(LP_BATCH, LP_CMSG)
        st.sbuf = <uint8_t *>PyMem_Calloc(1, SLOT_SIZE)
        st.tbuf = <uint8_t *>PyMem_Calloc(1, 8192 + 8 * LP_TWCC_MAX)
        if (st.users == NULL or st.senders == NULL or st.streams == NULL or st.sheap == NULL
                or st.uheap == NULL or st.hist == NULL or st.slow == NULL or st.ev == NULL or st.ev_data == NULL
                or st.rbuf == NULL or st.cbuf == NULL or st.sbuf == NULL or st.tbuf == NULL):
            raise MemoryError()
        for i in range(LP_BATCH):
            st.riov[i].iov_base = st.rbuf + <size_t>i * SLOT_SIZE
            st.riov[i].iov_len = SLOT_SIZE
            st.rmsgs[i].msg_hdr.msg_iov = &st.riov[i]
            st.rmsgs[i].msg_hdr.msg_iovlen = 1
        self.user_counters = _np.zeros((max_users, LU_COUNT), dtype=_np.uint64)
        cdef uint64_t[:, ::1] uc = self.user_counters
        st.ucnt = &uc[0, 0]
        st.epfd = epoll_create1(EPOLL_CLOEXEC)
        st.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if st.epfd < 0 or st.evfd < 0:
            raise OSError(errno, "epoll_create1/eventfd failed")
        idmap_init(&st.shared_map, max_users)
        pthread_mutex_init(&st.mu, NULL)
        self._keys = [None] * max_users

    def __dealloc__(self):
        cdef LpState *st = self.st
        cdef int i
        if st == NULL:
            return
        if st.started:
            st.running = 0
            with nogil:
                pthread_join(st.thread, NULL)
        if st.senders != NULL:
            for i in range(st.n_senders):
                PyMem_Free(st.senders[i].ring)
                PyMem_Free(st.senders[i].ring_seq)
                PyMem_Free(st.senders[i].ring_len)
        if st.users != NULL:
            for i in range(st.n_users):
                PyMem_Free(st.users[i].twcc_seqs)
                PyMem_Free(st.users[i].twcc_arrivals)
        if st.epfd >= 0:
            lp_close(st.epfd)
        if st.evfd >= 0:
            lp_close(st.evfd)
        PyMem_Free(st.users)
        PyMem_Free(st.senders)
        PyMem_Free(st.streams)
        PyMem_Free(st.sheap)
        PyMem_Free(st.uheap)
        PyMem_Free(st.hist)
        PyMem_Free(st.slow)
        PyMem_Free(st.ev)
        PyMem_Free(st.ev_data)
        PyMem_Free(st.rbuf)
        PyMem_Free(st.cbuf)
        PyMem_Free(st.sbuf)
        PyMem_Free(st.tbuf)
        idmap_free(&st.shared_map)
        pthread_mutex_destroy(&st.mu)
        PyMem_Free(st)
        self.st = NULL

    cdef inline void _lock(self) noexcept:
        with nogil:
            pthread_mutex_lock(&self.st.mu)

    cdef inline void _unlock(self) noexcept:
        pthread_mutex_unlock(&self.st.mu)

    cdef LpUser *_user(self, int uid) except NULL:
        if uid < 0 or uid >= self.st.n_users:
            raise LoadPlaneError(f"unknown user {uid}")
        return &self.st.users[uid]

    cdef LpSender *_sender(self, int sidx) except NULL:
        if sidx < 0 or sidx >= self.st.n_senders:
            raise LoadPlaneError(f"unknown sender {sidx}")
        return &self.st.senders[sidx]

    # ---------------------------------------------------------------- properties

    @property
    def event_fd(self):
        """An eventfd that becomes readable when ``poll_events`` has work."""
        return self.st.evfd

    @property
    def n_users(self):
        return self.st.n_users

    @property
    def n_senders(self):
        return self.st.n_senders

    @property
    def realtime_scheduling(self):
        """True once the thread runs SCHED_FIFO (rt_priority > 0 and permitted)."""
        return bool(self.st.rt_ok)

    # ---------------------------------------------------------------- users and senders

    def add_shared_socket(self, int fd):
        """A wildcard-bound, non-blocking UDP socket with SO_TIMESTAMPNS and
        IP_PKTINFO on, to carry many users (``add_user(fd, ssrc, src_ip)``).
        Polled every loop, never through epoll. Returns its index."""
        cdef LpState *st = self.st
        if st.n_shared >= LP_MAX_SHARED:
            raise LoadPlaneError(f"at most {LP_MAX_SHARED} shared sockets")
        self._lock()
        st.shared_fds[st.n_shared] = fd
        st.n_shared += 1
        self._unlock()
        return st.n_shared - 1

    def add_user(self, int fd, uint32_t rtcp_ssrc, str src_ip=None):
        """A user: with its own bound, non-blocking UDP socket (SO_TIMESTAMPNS
        on, for kernel receive times; connected to the SFU before media
        flows), or with ``src_ip`` as its address on the shared socket ``fd``
        (then ``set_user_peer`` names the SFU). The caller keeps sockets open."""
        cdef LpState *st = self.st
        cdef epoll_event ev
        cdef int uid, k, shared = -1
        cdef uint32_t ip = 0
        cdef LpUser *u
        if st.n_users >= st.max_users:
            raise LoadPlaneError(f"user limit {st.max_users} reached")
        if rtcp_ssrc == 0:
            raise LoadPlaneError("rtcp_ssrc must be non-zero")
        if src_ip is not None:
            for k in range(st.n_shared):
                if st.shared_fds[k] == fd:
                    shared = k
            if shared < 0:
                raise LoadPlaneError(f"fd {fd} is not a shared socket (add_shared_socket first)")
            if inet_pton(AF_INET, src_ip.encode(), &ip) != 1:
                raise LoadPlaneError(f"not an IPv4 address: {src_ip!r}")
            if idmap_get(&st.shared_map, (<uint64_t>shared << 32) | ip) >= 0:
                raise LoadPlaneError(f"{src_ip} already has a user on shared socket {shared}")
        self._lock()
        try:
            uid = st.n_users
            u = &st.users[uid]
            memset(u, 0, sizeof(LpUser))
            u.fd = fd
            u.rtcp_ssrc = rtcp_ssrc
            u.first_sender = -1
            u.next_rtcp = lp_mono_ns() + <int64_t>(lp_rand(st) % <uint64_t>st.rtcp_interval_ns)
            u.next_twcc = u.next_rtcp
            if shared >= 0:
                u.shared = 1
                u.src_ip = ip
                if idmap_put(&st.shared_map, (<uint64_t>shared << 32) | ip, uid) != 0:
                    raise LoadPlaneError("shared address table full")
            else:
                ev.events = EPOLLIN
                ev.data.u64 = 0
                ev.data.u32 = <uint32_t>uid
                if epoll_ctl(st.epfd, EPOLL_CTL_ADD, fd, &ev) != 0:
                    raise OSError(errno, f"epoll_ctl failed for fd {fd}")
                st.n_epoll += 1
            st.n_users += 1
            lp_heap_push(st.uheap, &st.uheap_n, u.next_rtcp, uid)
        finally:
            self._unlock()
        return uid

    def set_user_peer(self, int uid, str host, int port):
        """The SFU's address for a user on a shared socket (its own socket is
        connected instead)."""
        cdef LpUser *u = self._user(uid)
        cdef sockaddr_in a
        memset(&a, 0, sizeof(sockaddr_in))
        if not u.shared:
            raise LoadPlaneError(f"user {uid} has its own socket: connect it instead")
        if inet_pton(AF_INET, host.encode(), &a.sin_addr) != 1 or not (0 < port < 65536):
            raise LoadPlaneError(f"not an IPv4 address and port: {host!r}, {port}")
        a.sin_family = AF_INET
        a.sin_port = htons(<uint16_t>port)
        self._lock()
        u.peer = a
        u.has_peer = 1
        self._unlock()

    def set_user_keys(self, int uid, SrtpContext inbound, SrtpContext outbound):
        """Install the user's SRTP contexts (DTLS-SRTP: ``outbound`` protects
        with the client's write key). Media flows from now on."""
        cdef LpUser *u = self._user(uid)
        if inbound.outbound or not outbound.outbound:
            raise LoadPlaneError("set_user_keys needs an inbound and an outbound context")
        self._keys[uid] = (inbound, outbound)
        cdef void *pin = inbound.ptr()
        cdef void *pout = outbound.ptr()
        self._lock()
        u.srtp_in = pin
        u.srtp_out = pout
        u.keyed = 1
        self._unlock()

    def set_user_extensions(self, int uid, int twcc_out=0, int twcc_in=0):
        """transport-cc extension ids: ``twcc_out`` on packets we send,
        ``twcc_in`` on packets the SFU sends us (0 = not negotiated)."""
        cdef LpUser *u = self._user(uid)
        if not (0 <= twcc_out <= 14 and 0 <= twcc_in <= 14):
            raise LoadPlaneError("one-byte extension ids are 1-14 (0 = none)")
        if twcc_in and u.twcc_seqs == NULL:
            u.twcc_seqs = <uint16_t *>PyMem_Calloc(LP_TWCC_MAX, sizeof(uint16_t))
            u.twcc_arrivals = <int64_t *>PyMem_Calloc(LP_TWCC_MAX, sizeof(int64_t))
            if u.twcc_seqs == NULL or u.twcc_arrivals == NULL:
                raise MemoryError()
        self._lock()
        u.twcc_out_id = twcc_out
        u.twcc_in_id = twcc_in
        self._unlock()

    def add_sender(self, int uid, uint32_t ssrc, int kind, int pt, uint32_t clock_rate,
                   double interval, int burst, int payload_len, *, int audio_level_id=0,
                   int mid_id=0, bytes mid=b"", int rid_id=0, bytes rid=b"", bint nack_ring=False):
        """A stream the user will send (inactive until ``set_sender_active``):
        every ``interval`` seconds a burst of ``burst`` packets of
        ``payload_len`` payload bytes, marker on the last, RTP time advancing
        by ``interval`` x clock rate per burst. Its first due time has a
        random phase within one interval. Returns the global sender index
        (the one carried in the stamp)."""
        cdef LpState *st = self.st
        cdef LpUser *u = self._user(uid)
        cdef LpSender *s
        cdef int sidx
        cdef int64_t interval_ns = <int64_t>(interval * 1e9)
        if st.n_senders >= st.max_senders:
            raise LoadPlaneError(f"sender limit {st.max_senders} reached")
        if kind not in (LP_AUDIO, LP_VIDEO) or not (0 <= pt <= 127) or clock_rate == 0:
            raise LoadPlaneError("bad kind, payload type or clock rate")
        if interval_ns < 1000000 or not (1 <= burst <= 64):
            raise LoadPlaneError("interval must be >= 1 ms and burst 1-64")
        if not (LP_STAMP_LEN <= payload_len <= 1400):
            raise LoadPlaneError(f"payload_len must be {LP_STAMP_LEN}-1400")
        if len(mid) > 16 or len(rid) > 16 or not (0 <= audio_level_id <= 14 and 0 <= mid_id <= 14
                                                    and 0 <= rid_id <= 14):
            raise LoadPlaneError("MID/RID up to 16 bytes; one-byte extension ids are 1-14")
        if ssrc == 0:
            raise LoadPlaneError("ssrc must be non-zero")
        self._lock()
        try:
            sidx = st.n_senders
            s = &st.senders[sidx]
            memset(s, 0, sizeof(LpSender))
            s.user = uid
            s.ssrc = ssrc
            s.kind = kind
            s.pt = pt
            s.clock_rate = clock_rate
            s.interval_ns = interval_ns
            s.burst = burst
            s.payload_len = payload_len
            s.ts_step = <uint32_t>(interval * clock_rate + 0.5)
            s.seq = <uint16_t>lp_rand(st)
            s.ts = <uint32_t>lp_rand(st)
            s.audio_level_id = audio_level_id
            s.mid_id = mid_id
            s.mid_len = len(mid)
            if mid:
                memcpy(s.mid, <const char *>mid, len(mid))
            s.rid_id = rid_id
            s.rid_len = len(rid)
            if rid:
                memcpy(s.rid, <const char *>rid, len(rid))
            if nack_ring:
                s.ring = <uint8_t *>PyMem_Malloc(<size_t>LP_RING * LP_RING_SLOT)
                s.ring_seq = <uint16_t *>PyMem_Calloc(LP_RING, sizeof(uint16_t))
                s.ring_len = <uint16_t *>PyMem_Calloc(LP_RING, sizeof(uint16_t))
                if s.ring == NULL or s.ring_seq == NULL or s.ring_len == NULL:
                    raise MemoryError()
            s.next_in_user = u.first_sender
            u.first_sender = sidx
            st.n_senders += 1
            lp_heap_push(st.sheap, &st.sheap_n,
                         lp_mono_ns() + <int64_t>(lp_rand(st) % <uint64_t>interval_ns), sidx)
        finally:
            self._unlock()
        return sidx

    def set_sender_active(self, int sidx, bint active):
        cdef LpSender *s = self._sender(sidx)
        self._lock()
        s.active = active
        self._unlock()

    # ---------------------------------------------------------------- thread

    def start(self):
        """Start the media thread (SCHED_FIFO at rt_priority when permitted)."""
        cdef LpState *st = self.st
        cdef int rc
        if st.started:
            raise LoadPlaneError("already started")
        st.running = 1
        rc = pthread_create(&st.thread, NULL, lp_thread_main, <void *>st)
        if rc != 0:
            st.running = 0
            raise OSError(rc, "pthread_create failed")
        st.started = 1

    def stop(self):
        """Stop and join the media thread (idempotent)."""
        cdef LpState *st = self.st
        if not st.started:
            return
        st.running = 0
        with nogil:
            pthread_join(st.thread, NULL)
        st.started = 0

    # ---------------------------------------------------------------- events

    def poll_events(self):
        """STUN and DTLS datagrams received since the last call:
        a list of (user, kind, data) with kind 1 = STUN, 2 = DTLS.

        The ring is copied out under the lock and Python objects are made
        after releasing it: an allocation may run the garbage collector,
        and the media thread must never wait for that."""
        cdef LpState *st = self.st
        cdef list out = []
        cdef uint64_t buf
        cdef int32_t n = 0, i, j
        cdef LpEvent *hdr = NULL
        cdef uint8_t *data = NULL
        lp_read(st.evfd, &buf, 8)
        hdr = <LpEvent *>PyMem_Malloc(st.ev_slots * sizeof(LpEvent))
        data = <uint8_t *>PyMem_Malloc(<size_t>st.ev_slots * LP_EV_DATA)
        if hdr == NULL or data == NULL:
            PyMem_Free(hdr)
            PyMem_Free(data)
            raise MemoryError()
        try:
            with nogil:
                pthread_mutex_lock(&st.mu)
                while st.ev_count:
                    j = st.ev_head
                    hdr[n] = st.ev[j]
                    memcpy(data + <size_t>n * LP_EV_DATA, st.ev_data + <size_t>j * LP_EV_DATA, st.ev[j].length)
                    n += 1
                    st.ev_head = (st.ev_head + 1) % st.ev_slots
                    st.ev_count -= 1
                st.ev_notified = 0
                pthread_mutex_unlock(&st.mu)
            for i in range(n):
                out.append((hdr[i].user, hdr[i].kind, (<char *>(data + <size_t>i * LP_EV_DATA))[:hdr[i].length]))
        finally:
            PyMem_Free(hdr)
            PyMem_Free(data)
        return out

    # ---------------------------------------------------------------- measurement

    def window_begin(self):
        """Open the measured window: reset the delay histogram and in-window
        counts; every sender's next packet is the first one expected."""
        cdef LpState *st = self.st
        cdef int i
        cdef size_t k
        self._lock()
        for i in range(st.n_senders):
            st.senders[i].k_start = st.senders[i].k
            st.senders[i].k_end = 0xFFFFFFFF
        for k in range(<size_t>st.n_users * st.max_streams):
            st.streams[k].win_received = 0
        memset(st.hist, 0, (LP_HIST + 1) * sizeof(uint64_t))
        st.n_slow = 0
        st.loop_max_ns = 0
        st.loops_over_1ms = 0
        st.delay_n = 0
        st.delay_sum = 0
        st.delay_max_ns = 0
        st.delay_max_at = 0
        st.window_open = 1
        self._unlock()

    def window_end(self):
        """Close the window: packets sent from now on are not expected.
        In-window packets still in flight keep counting until read."""
        cdef LpState *st = self.st
        cdef int i
        self._lock()
        for i in range(st.n_senders):
            if st.senders[i].k_end == 0xFFFFFFFF:
                st.senders[i].k_end = st.senders[i].k
        st.window_open = 0
        self._unlock()

    def delay_histogram(self):
        """(counts, n, sum_s, max_s): counts[i] = in-window packets whose
        one-way delay was in [i, i+1) us; the last bucket is >= 100 ms."""
        cdef LpState *st = self.st
        cdef uint64_t[::1] view
        cdef uint64_t n
        cdef double total
        cdef int64_t mx
        out = _np.zeros(LP_HIST + 1, dtype=_np.uint64)
        view = out
        with nogil:
            pthread_mutex_lock(&st.mu)
            memcpy(&view[0], st.hist, (LP_HIST + 1) * sizeof(uint64_t))
            n = st.delay_n
            total = st.delay_sum
            mx = st.delay_max_ns
            pthread_mutex_unlock(&st.mu)
        return out, int(n), total * 1e-9, mx * 1e-9

    def slow_packets(self):
        """In-window packets whose one-way delay was at least 2 ms (the first 4096):
        a list of (receive time, CLOCK_REALTIME s; delay s; receiving user; sender)."""
        cdef LpState *st = self.st
        cdef int i, n
        cdef int64_t *copy = <int64_t *>PyMem_Malloc(4 * LP_SLOW * sizeof(int64_t))
        if copy == NULL:
            raise MemoryError()
        out = []
        try:
            with nogil:
                pthread_mutex_lock(&st.mu)
                n = st.n_slow
                memcpy(copy, st.slow, 4 * n * sizeof(int64_t))
                pthread_mutex_unlock(&st.mu)
            for i in range(n):
                out.append((copy[4 * i] * 1e-9, copy[4 * i + 1] * 1e-9, <int>copy[4 * i + 2], <int>copy[4 * i + 3]))
        finally:
            PyMem_Free(copy)
        return out

    def streams(self):
        """Per (receiving user, SSRC): a list of dicts with the source sender
        (-1 if never stamped), kind, in-window and total packets, duplicates,
        reordering, gaps, NACKs sent, jitter (RTP units) and RFC 3550 loss."""
        cdef LpState *st = self.st
        cdef int uid, k, n_users
        cdef LpStream *rs
        cdef LpStream *copy = NULL
        cdef int32_t *counts = NULL
        cdef uint32_t expected
        cdef size_t total = <size_t>st.max_users * st.max_streams
        out = []
        copy = <LpStream *>PyMem_Malloc(total * sizeof(LpStream))
        counts = <int32_t *>PyMem_Malloc(st.max_users * sizeof(int32_t))
        if copy == NULL or counts == NULL:
            PyMem_Free(copy)
            PyMem_Free(counts)
            raise MemoryError()
        try:
            with nogil:
                pthread_mutex_lock(&st.mu)
                n_users = st.n_users
                memcpy(copy, st.streams, total * sizeof(LpStream))
                for uid in range(n_users):
                    counts[uid] = st.users[uid].n_streams
                pthread_mutex_unlock(&st.mu)
            for uid in range(n_users):
                for k in range(counts[uid]):
                    rs = copy + <size_t>uid * st.max_streams + k
                    expected = (rs.cycles + rs.max_seq) - rs.base_seq + 1 if rs.seq_init else 0
                    out.append({
                        "user": uid, "ssrc": rs.ssrc,
                        "sender": -1 if rs.sender == LP_NO_SENDER else <int>rs.sender,
                        "kind": "video" if rs.kind == LP_VIDEO else "audio",
                        "window": rs.win_received, "total": rs.total, "dups": rs.dups,
                        "reordered": rs.reordered, "gaps": rs.gaps, "nacks": rs.nacks,
                        "jitter": rs.jitter, "rtp_expected": expected, "rtp_received": rs.received,
                    })
        finally:
            PyMem_Free(copy)
            PyMem_Free(counts)
        return out

    def senders(self):
        """Per sender: user, ssrc, kind, active, packets sent, in-window
        packet count (k_end - k_start), retransmissions, NACKs and PLIs
        received, and the SFU's last report block about it."""
        cdef LpState *st = self.st
        cdef int i, n
        cdef LpSender *s
        cdef LpSender *copy = <LpSender *>PyMem_Malloc(st.max_senders * sizeof(LpSender))
        if copy == NULL:
            raise MemoryError()
        out = []
        try:
            with nogil:
                pthread_mutex_lock(&st.mu)
                n = st.n_senders
                memcpy(copy, st.senders, n * sizeof(LpSender))
                pthread_mutex_unlock(&st.mu)
            for i in range(n):
                s = &copy[i]
                window = 0
                if s.k_end != 0xFFFFFFFF and s.k_end >= s.k_start:
                    window = s.k_end - s.k_start
                elif s.k_end == 0xFFFFFFFF:
                    window = s.k - s.k_start
                out.append({
                    "sender": i, "user": s.user, "ssrc": s.ssrc,
                    "kind": "video" if s.kind == LP_VIDEO else "audio", "active": bool(s.active),
                    "sent": s.sent, "window": window, "rtx": s.rtx, "nack_rx": s.nack_rx,
                    "pli_rx": s.pli_rx, "rr_fraction_lost": s.rr_fraction / 256.0,
                    "rr_cum_lost": s.rr_cum_lost, "rr_count": s.rr_count,
                })
        finally:
            PyMem_Free(copy)
        return out

    def stats(self):
        """The thread's own health: loop count, bursts sent, bursts late by
        over 1 ms and 5 ms, worst lateness (s), ready sockets polled, event
        drops, whether it runs SCHED_FIFO."""
        cdef LpState *st = self.st
        cdef LpState copy
        with nogil:
            pthread_mutex_lock(&st.mu)
            memcpy(&copy, st, sizeof(LpState))
            pthread_mutex_unlock(&st.mu)
        return {"loops": copy.loops, "bursts": copy.bursts, "late_1ms": copy.late_1ms,
                "late_5ms": copy.late_5ms, "late_max_s": copy.late_max_ns * 1e-9,
                "polls_ready": copy.polls_ready, "rx_unknown": copy.rx_unknown, "event_drops": copy.ev_dropped,
                "loop_max_s": copy.loop_max_ns * 1e-9, "loops_over_1ms": copy.loops_over_1ms,
                "delay_max_at": copy.delay_max_at * 1e-9, "realtime": bool(copy.rt_ok)}


def build_twcc_feedback(uint32_t sender_ssrc, uint32_t media_ssrc, seqs, arrivals_ns, int fb_count=0):
    """The transport-cc feedback packet LoadPlane sends for these (sequence,
    arrival ns) pairs (plaintext RTCP; a test hook)."""
    cdef int cnt = len(seqs)
    cdef int i, n
    if cnt != len(arrivals_ns) or not (1 <= cnt <= LP_TWCC_MAX):
        raise ValueError(f"need 1-{LP_TWCC_MAX} sequence numbers with as many arrival times")
    cdef uint16_t *sq = <uint16_t *>PyMem_Malloc(cnt * sizeof(uint16_t))
    cdef int64_t *ar = <int64_t *>PyMem_Malloc(cnt * sizeof(int64_t))
    cdef uint8_t *buf = <uint8_t *>PyMem_Calloc(1, 8192 + 8 * LP_TWCC_MAX)
    if sq == NULL or ar == NULL or buf == NULL:
        PyMem_Free(sq)
        PyMem_Free(ar)
        PyMem_Free(buf)
        raise MemoryError()
    try:
        for i in range(cnt):
            sq[i] = <uint16_t>seqs[i]
            ar[i] = <int64_t>arrivals_ns[i]
        n = lp_build_twcc(buf, sender_ssrc, media_ssrc, sq, ar, cnt, <uint8_t>fb_count,
                          <int32_t *>(buf + 4096), <int64_t *>(buf + 8192))
        return (<char *>buf)[:n]
    finally:
        PyMem_Free(sq)
        PyMem_Free(ar)
        PyMem_Free(buf)
