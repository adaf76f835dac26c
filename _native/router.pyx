# The Router: sessions, tracks (producers) and consumers in C tables, fed by
# recvmmsg from the shared UDP socket(s) and flushed with sendmmsg.
#
# One Python->C crossing per readiness event (`on_readable`, registered with
# loop.add_reader). Inside, with the GIL released, every datagram of the batch
# is demultiplexed (RFC 7983), media is unprotected once, parsed as a view,
# and fanned out: for each consumer the packet is copied into a send slot,
# rewritten (SSRC, payload type, sequence number, timestamp, extension ids)
# and protected with the subscriber's SRTP context. All copies of a batch go
# out in one sendmmsg per socket. Failures are counted per reason in numpy-
# visible counter arrays; nothing is raised or logged per packet.
#
# Sequence/timestamp continuity (per consumer). out = in + offset (mod 2^16
# for sequence numbers, mod 2^32 for timestamps). The offsets are recomputed
# when the consumer (re)synchronises: first packet, resume after pause, or a
# switch to another source track. Example: a consumer last sent seq 5000,
# ts 96000 and was paused for 2.0 s on a 48 kHz track. The first packet after
# resume has in-seq 812, in-ts 1000000: out-seq must be 5001, so
# seq_offset = 5001 - 812 = 4189; out-ts must be 96000 + 2.0 * 48000 = 192000,
# so ts_offset = 192000 - 1000000 (mod 2^32) = 4294159296. Packets older than
# the sync point (reordered from before the pause) are dropped as stale, so a
# subscriber never sees a sequence number twice.

from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from libc.math cimport fabs
import numpy as _np

cdef enum:
    MAX_SOCKETS = 16
    IN_STREAMS = 16             # inbound SRTP streams (SSRCs) per session on our AES-GCM
    MAX_NACK_FCI = 4            # NACK items we send upstream per gap (x17 packets)
    REPORT_MAX = 1100           # bytes per RTCP compound we build


class RouterError(Exception):
    """Misuse of the router's control API (the hot path never raises)."""


class UnknownIdError(RouterError, LookupError):
    """A session, track or consumer id that is not allocated."""


class DuplicateError(RouterError):
    """An SSRC, MID/RID or address already claimed by another object."""


class CapacityError(RouterError):
    """The router's configured limit for sessions, tracks or consumers is reached."""


cdef struct Session:
    # what every forwarded copy reads comes first: with an IPv4 peer it all
    # sits in the row's first cache line, the one the fan-out prefetches
    int32_t state
    int32_t sock
    uint8_t stream              # ICE-TCP: outgoing packets go to Python (EV_STREAM_SEND)
    uint8_t gcm_out             # outbound RTP through our AES-GCM (gcm_keys[sid]), not libsrtp
    uint8_t gcm_in              # inbound RTP through our AES-GCM (gcm_in_keys[sid], in_ssrc/in_index)
    uint8_t n_in                # inbound streams in use (in_ssrc[sid * IN_STREAMS + k])
    socklen_t addrlen
    void *srtp_out
    sockaddr_storage addr
    uint64_t addr_key
    void *srtp_in
    uint32_t rtcp_ssrc          # SSRC we use as sender in RTCP to this session
    uint8_t ext_mid             # extension ids as this session's client numbered them
    uint8_t ext_rid
    uint8_t ext_audio_level
    uint8_t ext_twcc            # transport-wide sequence number extension (0 = none)
    uint32_t twcc_media_ssrc    # an SSRC of the client's, named in its feedback
    TwccState *twcc             # allocated when ext_twcc is set
    int32_t first_track         # tracks it publishes
    int32_t first_consumer      # consumers it receives through
    uint32_t last_unknown_ssrc


cdef struct Track:
    int32_t state
    int32_t session
    uint32_t ssrc               # 0 until learned from MID/RID
    int32_t kind
    uint32_t clock_rate
    uint8_t muted
    uint8_t nack_upstream
    int32_t first_consumer
    int32_t next_in_session
    int32_t prev_in_session
    uint64_t name_key           # (session, MID, RID) key, 0 when routed by SSRC only
    # retransmission ring of decrypted source packets, indexed by seq & mask
    uint8_t *ring
    uint16_t *ring_seq
    uint16_t *ring_len
    uint32_t ring_mask
    double last_pli
    # reception statistics (RFC 3550 A.1, A.3, A.8)
    uint8_t seq_init
    uint16_t max_seq
    uint32_t cycles
    uint32_t base_seq
    uint32_t received
    uint32_t expected_prior
    uint32_t received_prior
    double jitter
    int64_t last_transit
    uint32_t lsr                # middle 32 bits of the last SR's NTP time
    double lsr_time


cdef struct Consumer:
    int32_t state
    int32_t track
    int32_t session
    int32_t next_in_track
    int32_t prev_in_track
    int32_t next_in_session
    int32_t prev_in_session
    uint32_t out_ssrc
    uint32_t clock_rate
    uint8_t paused
    uint8_t sync_needed
    uint8_t started
    uint8_t ext_identity
    uint16_t since_sync
    uint16_t seq_offset
    uint32_t ts_offset
    uint16_t base_in_seq
    uint16_t last_seq
    uint32_t last_ts
    double last_time
    uint32_t sr_packets
    uint32_t sr_octets
    # SRTP index of the outgoing stream when we protect it ourselves (AES-GCM
    # path): the highest index sealed and the 128 before it, so a copy is
    # never sealed twice under one IV unless it is a retransmission
    sb_srtp_index out_index
    uint8_t pt_map[128]         # in PT -> out PT, 255 = drop
    uint8_t ext_map[256]        # in ext id -> out ext id, 0 = remove


cdef struct EventHdr:
    int32_t kind
    int32_t session
    int32_t sock
    int32_t length
    int64_t a
    int64_t b
    sockaddr_storage addr
    socklen_t addrlen


cdef inline double mono_now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline uint64_t ntp_now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    cdef uint64_t secs = <uint64_t>ts.tv_sec + <uint64_t>2208988800
    cdef uint64_t frac = ((<uint64_t>ts.tv_nsec) << 32) // <uint64_t>1000000000
    return (secs << 32) | frac


cdef inline uint64_t addr_key(int sock, const sockaddr_storage *a) noexcept nogil:
    cdef const sockaddr_in *s4
    cdef const sockaddr_in6 *s6
    cdef uint64_t h
    cdef int i
    if a.ss_family == AF_INET:
        s4 = <const sockaddr_in *>a
        return ((<uint64_t>1 << 62) | (<uint64_t>sock << 48)
                | (<uint64_t>ntohl(s4.sin_addr.s_addr) << 16) | ntohs(s4.sin_port))
    s6 = <const sockaddr_in6 *>a
    h = <uint64_t>0xcbf29ce484222325
    for i in range(16):
        h = (h ^ s6.sin6_addr.s6_addr[i]) * <uint64_t>0x100000001b3
    h = (h ^ s6.sin6_port) * <uint64_t>0x100000001b3
    h = (h ^ <uint64_t>sock) * <uint64_t>0x100000001b3
    return mix64(h) | (<uint64_t>1 << 63)


cdef inline bint addr_equal(const sockaddr_storage *a, const sockaddr_storage *b) noexcept nogil:
    if a.ss_family != b.ss_family:
        return False
    if a.ss_family == AF_INET:
        return ((<const sockaddr_in *>a).sin_port == (<const sockaddr_in *>b).sin_port
                and (<const sockaddr_in *>a).sin_addr.s_addr == (<const sockaddr_in *>b).sin_addr.s_addr)
    return ((<const sockaddr_in6 *>a).sin6_port == (<const sockaddr_in6 *>b).sin6_port
            and memcmp(&(<const sockaddr_in6 *>a).sin6_addr, &(<const sockaddr_in6 *>b).sin6_addr, 16) == 0)


cdef object addr_tuple(const sockaddr_storage *a):
    cdef char buf[64]
    if a.ss_family == AF_INET:
        inet_ntop(AF_INET, &(<const sockaddr_in *>a).sin_addr, buf, 64)
        return (buf.decode(), ntohs((<const sockaddr_in *>a).sin_port))
    if a.ss_family == AF_INET6:
        inet_ntop(AF_INET6, &(<const sockaddr_in6 *>a).sin6_addr, buf, 64)
        return (buf.decode(), ntohs((<const sockaddr_in6 *>a).sin6_port))
    return None


cdef socklen_t fill_sockaddr(sockaddr_storage *out, str host, int port) except 0:
    cdef bytes h = host.encode()
    memset(out, 0, sizeof(sockaddr_storage))
    if not (0 < port < 65536):
        raise RouterError(f"port {port} out of range")
    if inet_pton(AF_INET, h, &(<sockaddr_in *>out).sin_addr) == 1:
        (<sockaddr_in *>out).sin_family = AF_INET
        (<sockaddr_in *>out).sin_port = htons(<uint16_t>port)
        return sizeof(sockaddr_in)
    if inet_pton(AF_INET6, h, &(<sockaddr_in6 *>out).sin6_addr) == 1:
        (<sockaddr_in6 *>out).sin6_family = AF_INET6
        (<sockaddr_in6 *>out).sin6_port = htons(<uint16_t>port)
        return sizeof(sockaddr_in6)
    raise RouterError(f"not an IP address: {host!r}")


cdef class Router:
    """The media plane's tables and packet loop. See the module comment.

    Ids handed out (session, track, consumer) are small integers that index
    the counter arrays (`session_counters[sid]`, ...). The engine's
    MediaPlane wraps this class; its methods validate and raise RouterError
    subclasses, while the packet path only counts.
    """

    cdef Session *sessions
    cdef Track *tracks
    cdef Consumer *consumers
    cdef readonly int max_sessions, max_tracks, max_consumers
    cdef int32_t *free_sessions
    cdef int32_t *free_tracks
    cdef int32_t *free_consumers
    cdef int n_free_sessions, n_free_tracks, n_free_consumers
    cdef IdMap addr_map, track_map, consumer_map, name_map

    cdef int fds[MAX_SOCKETS]
    cdef readonly int n_sockets

    cdef readonly int recv_batch
    cdef mmsghdr *rmsgs
    cdef iovec *riov
    cdef sockaddr_storage *raddr
    cdef uint8_t *rbuf

    cdef readonly int send_slots
    cdef int nsend
    cdef mmsghdr *smsgs
    cdef iovec *siov
    cdef uint8_t *sbuf
    cdef int32_t *ssession
    cdef int32_t *ssock

    cdef readonly int event_slots
    cdef EventHdr *ehdr
    cdef uint8_t *ebuf
    cdef int ehead, ecount

    cdef readonly object global_counters
    cdef readonly object session_counters
    cdef readonly object track_counters
    cdef readonly object consumer_counters
    cdef readonly object audio_levels
    cdef readonly object audio_level_count
    cdef readonly object latency_counts
    cdef readonly object latency_sums
    cdef uint64_t *lat
    cdef double *lat_sum
    cdef double lat_bounds[N_LATENCY]
    cdef uint64_t batch_fwd[2]
    cdef uint64_t *gc
    cdef uint64_t *sc
    cdef uint64_t *tc
    cdef uint64_t *cc
    cdef uint8_t *levels
    cdef uint64_t *level_count

    cdef double next_twcc
    cdef public object event_callback
    cdef public double pli_interval
    cdef public long coalesce_ns
    cdef uint8_t *scratch
    cdef sb_gcm_key *gcm_keys
    cdef sb_gcm_key *gcm_in_keys
    cdef uint32_t *in_ssrc
    cdef sb_srtp_index *in_index
    cdef int report_cursor
    cdef readonly bint native_gcm

    def __cinit__(self, int max_sessions=8192, int max_tracks=16384, int max_consumers=131072,
                  int recv_batch=64, int send_slots=1024, int event_slots=1024, bint native_gcm=True):
        cdef int i
        if max_sessions < 1 or max_tracks < 1 or max_consumers < 1:
            raise RouterError("router limits must be positive")
        if not (1 <= recv_batch <= 1024) or not (16 <= send_slots <= 1024) or event_slots < 16:
            raise RouterError("recv_batch must be 1-1024, send_slots 16-1024, event_slots >= 16")
        self.max_sessions = max_sessions
        self.max_tracks = max_tracks
        self.max_consumers = max_consumers
        self.recv_batch = recv_batch
        self.send_slots = send_slots
        self.event_slots = event_slots
        self.pli_interval = 1.0
        self.coalesce_ns = 0
        self.sessions = <Session *>PyMem_Calloc(max_sessions, sizeof(Session))
        self.tracks = <Track *>PyMem_Calloc(max_tracks, sizeof(Track))
        self.consumers = <Consumer *>PyMem_Calloc(max_consumers, sizeof(Consumer))
        self.free_sessions = <int32_t *>PyMem_Malloc(max_sessions * sizeof(int32_t))
        self.free_tracks = <int32_t *>PyMem_Malloc(max_tracks * sizeof(int32_t))
        self.free_consumers = <int32_t *>PyMem_Malloc(max_consumers * sizeof(int32_t))
        self.rmsgs = <mmsghdr *>PyMem_Calloc(recv_batch, sizeof(mmsghdr))
        self.riov = <iovec *>PyMem_Calloc(recv_batch, sizeof(iovec))
        self.raddr = <sockaddr_storage *>PyMem_Calloc(recv_batch, sizeof(sockaddr_storage))
        self.rbuf = <uint8_t *>PyMem_Malloc(<size_t>recv_batch * SLOT_SIZE)
        self.smsgs = <mmsghdr *>PyMem_Calloc(send_slots, sizeof(mmsghdr))
        self.siov = <iovec *>PyMem_Calloc(send_slots, sizeof(iovec))
        self.sbuf = <uint8_t *>PyMem_Malloc(<size_t>send_slots * SLOT_SIZE)
        self.ssession = <int32_t *>PyMem_Calloc(send_slots, sizeof(int32_t))
        self.ssock = <int32_t *>PyMem_Calloc(send_slots, sizeof(int32_t))
        self.ehdr = <EventHdr *>PyMem_Calloc(event_slots, sizeof(EventHdr))
        self.ebuf = <uint8_t *>PyMem_Malloc(<size_t>event_slots * SLOT_SIZE)
        self.scratch = <uint8_t *>PyMem_Malloc(SLOT_SIZE)
        self.native_gcm = native_gcm and sb_gcm_available()
        if self.native_gcm:
            self.gcm_keys = sb_gcm_keys_new(max_sessions)
            self.gcm_in_keys = sb_gcm_keys_new(max_sessions)
            self.in_ssrc = <uint32_t *>PyMem_Calloc(<size_t>max_sessions * IN_STREAMS, sizeof(uint32_t))
            self.in_index = <sb_srtp_index *>PyMem_Calloc(<size_t>max_sessions * IN_STREAMS,
                                                          sizeof(sb_srtp_index))
            if (self.gcm_keys == NULL or self.gcm_in_keys == NULL or self.in_ssrc == NULL
                    or self.in_index == NULL):
                raise MemoryError()
        if (self.sessions == NULL or self.tracks == NULL or self.consumers == NULL
                or self.free_sessions == NULL or self.free_tracks == NULL or self.free_consumers == NULL
                or self.rmsgs == NULL or self.riov == NULL or self.raddr == NULL or self.rbuf == NULL
                or self.smsgs == NULL or self.siov == NULL or self.sbuf == NULL or self.ssession == NULL
                or self.ssock == NULL or self.ehdr == NULL or self.ebuf == NULL or self.scratch == NULL):
            raise MemoryError()
        idmap_init(&self.addr_map, max_sessions)
        idmap_init(&self.track_map, max_tracks)
        idmap_init(&self.consumer_map, max_consumers)
        idmap_init(&self.name_map, max_tracks)
        # free lists hand out low ids first
        for i in range(max_sessions):
            self.free_sessions[i] = max_sessions - 1 - i
        self.n_free_sessions = max_sessions
        for i in range(max_tracks):
            self.free_tracks[i] = max_tracks - 1 - i
        self.n_free_tracks = max_tracks
        for i in range(max_consumers):
            self.free_consumers[i] = max_consumers - 1 - i
        self.n_free_consumers = max_consumers
        for i in range(recv_batch):
            self.riov[i].iov_base = self.rbuf + <size_t>i * SLOT_SIZE
            self.riov[i].iov_len = SLOT_SIZE
            self.rmsgs[i].msg_hdr.msg_iov = &self.riov[i]
            self.rmsgs[i].msg_hdr.msg_iovlen = 1
            self.rmsgs[i].msg_hdr.msg_name = &self.raddr[i]
        for i in range(send_slots):
            self.siov[i].iov_base = self.sbuf + <size_t>i * SLOT_SIZE
            self.smsgs[i].msg_hdr.msg_iov = &self.siov[i]
            self.smsgs[i].msg_hdr.msg_iovlen = 1
        # counters live in numpy arrays the engine reads in bulk
        self.global_counters = _np.zeros(G_COUNT, dtype=_np.uint64)
        self.session_counters = _np.zeros((max_sessions, SC_COUNT), dtype=_np.uint64)
        self.track_counters = _np.zeros((max_tracks, TC_COUNT), dtype=_np.uint64)
        self.consumer_counters = _np.zeros((max_consumers, CC_COUNT), dtype=_np.uint64)
        self.audio_levels = _np.zeros((max_tracks, LEVEL_RING), dtype=_np.uint8)
        self.audio_level_count = _np.zeros(max_tracks, dtype=_np.uint64)
        self.latency_counts = _np.zeros((2, N_LATENCY), dtype=_np.uint64)
        self.latency_sums = _np.zeros(2, dtype=_np.float64)
        cdef uint64_t[:, ::1] lt = self.latency_counts
        cdef double[::1] ls = self.latency_sums
        self.lat = &lt[0, 0]
        self.lat_sum = &ls[0]
        for i in range(N_LATENCY - 1):
            self.lat_bounds[i] = LATENCY_BUCKETS[i]
        self.lat_bounds[N_LATENCY - 1] = 1e300
        cdef uint64_t[::1] g = self.global_counters
        cdef uint64_t[:, ::1] s = self.session_counters
        cdef uint64_t[:, ::1] t = self.track_counters
        cdef uint64_t[:, ::1] c = self.consumer_counters
        cdef uint8_t[:, ::1] lv = self.audio_levels
        cdef uint64_t[::1] lc = self.audio_level_count
        self.gc = &g[0]
        self.sc = &s[0, 0]
        self.tc = &t[0, 0]
        self.cc = &c[0, 0]
        self.levels = &lv[0, 0]
        self.level_count = &lc[0]

    def __dealloc__(self):
        cdef int i
        if self.sessions != NULL:
            for i in range(self.max_sessions):
                if self.sessions[i].twcc != NULL:
                    PyMem_Free(self.sessions[i].twcc)
        if self.tracks != NULL:
            for i in range(self.max_tracks):
                if self.tracks[i].ring != NULL:
                    PyMem_Free(self.tracks[i].ring)
                    PyMem_Free(self.tracks[i].ring_seq)
                    PyMem_Free(self.tracks[i].ring_len)
        if self.gcm_keys != NULL:
            memset(self.gcm_keys, 0, <size_t>self.max_sessions * sizeof(sb_gcm_key))
            sb_gcm_keys_free(self.gcm_keys)
        if self.gcm_in_keys != NULL:
            memset(self.gcm_in_keys, 0, <size_t>self.max_sessions * sizeof(sb_gcm_key))
            sb_gcm_keys_free(self.gcm_in_keys)
        PyMem_Free(self.in_ssrc)
        PyMem_Free(self.in_index)
        PyMem_Free(self.sessions)
        PyMem_Free(self.tracks)
        PyMem_Free(self.consumers)
        PyMem_Free(self.free_sessions)
        PyMem_Free(self.free_tracks)
        PyMem_Free(self.free_consumers)
        PyMem_Free(self.rmsgs)
        PyMem_Free(self.riov)
        PyMem_Free(self.raddr)
        PyMem_Free(self.rbuf)
        PyMem_Free(self.smsgs)
        PyMem_Free(self.siov)
        PyMem_Free(self.sbuf)
        PyMem_Free(self.ssession)
        PyMem_Free(self.ssock)
        PyMem_Free(self.ehdr)
        PyMem_Free(self.ebuf)
        PyMem_Free(self.scratch)
        if self.addr_map.slots != NULL:
            idmap_free(&self.addr_map)
            idmap_free(&self.track_map)
            idmap_free(&self.consumer_map)
            idmap_free(&self.name_map)

    # ------------------------------------------------------------ sockets

    def add_socket(self, int fd):
        """Register a bound, non-blocking UDP socket's fd; returns its index.
        The caller keeps the socket open and registers `on_readable(index)`
        with its event loop."""
        if self.n_sockets >= MAX_SOCKETS:
            raise CapacityError(f"at most {MAX_SOCKETS} sockets")
        self.fds[self.n_sockets] = fd
        self.n_sockets += 1
        return self.n_sockets - 1

    def on_readable(self, int sock):
        """Drain the socket: the one Python->C call per readiness event."""
        cdef int n
        if sock < 0 or sock >= self.n_sockets:
            raise RouterError(f"unknown socket index {sock}")
        with nogil:
            n = self._drain(sock)
        if self.ecount and self.event_callback is not None:
            self.event_callback()
        return n

    cdef int _drain(self, int sock) noexcept nogil:
        cdef int fd = self.fds[sock]
        cdef int i, n, total = 0, rounds = 0
        cdef bint coalesced = False
        cdef double now
        cdef timespec pause
        while rounds < 16:
            for i in range(self.recv_batch):
                self.rmsgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
                self.rmsgs[i].msg_hdr.msg_flags = 0
            n = recvmmsg(fd, self.rmsgs, self.recv_batch, MSG_DONTWAIT, NULL)
            self.gc[G_RECV_CALLS] += 1
            if n <= 0:
                break
            now = mono_now()
            for i in range(n):
                self._on_datagram(sock, self.rbuf + <size_t>i * SLOT_SIZE, self.rmsgs[i].msg_len,
                                  self.rmsgs[i].msg_hdr.msg_flags, &self.raddr[i], now)
            if self.batch_fwd[0] or self.batch_fwd[1]:
                self._flush()
                self._account_latency(mono_now() - now)
            total += n
            rounds += 1
            if n < self.recv_batch:
                # Interrupt moderation: when packets trickle in, wait briefly
                # once so the next read (and the sendmmsg) carries a batch.
                if self.coalesce_ns > 0 and not coalesced and n < 8:
                    coalesced = True
                    pause.tv_sec = 0
                    pause.tv_nsec = self.coalesce_ns
                    self._flush()
                    nanosleep(&pause, NULL)
                    continue
                break
        if total and mono_now() >= self.next_twcc:
            self._twcc_flush(mono_now())
        self._flush()
        return total

    cdef inline void _account_latency(self, double dt) noexcept nogil:
        cdef int b = 0, k
        while dt > self.lat_bounds[b]:
            b += 1
        for k in range(2):
            if self.batch_fwd[k]:
                self.lat[k * N_LATENCY + b] += self.batch_fwd[k]
                self.lat_sum[k] += dt * self.batch_fwd[k]
                self.batch_fwd[k] = 0

    # ------------------------------------------------------------ demux

    cdef void _on_datagram(self, int sock, uint8_t *p, int n, int flags,
                           sockaddr_storage *addr, double now) noexcept nogil:
        #  RFC 7983 first-byte demultiplexing:
        #                  +----------------+
        #                  |        [0..3] -+--> STUN      -> Python (event ring)
        #                  |      [16..19] -+--> ZRTP      -> dropped (unknown type)
        #  packet -->      |      [20..63] -+--> DTLS      -> Python (event ring)
        #                  |      [64..79] -+--> TURN Chan -> dropped (unknown type)
        #                  |    [128..191] -+--> RTP/RTCP  -> stays in C
        #                  +----------------+
        cdef uint8_t b
        cdef int32_t sid
        self.gc[G_RX_DATAGRAMS] += 1
        self.gc[G_RX_BYTES] += n
        if flags & MSG_TRUNC or n > MAX_DATAGRAM:
            self.gc[G_DROP_TRUNCATED] += 1
            return
        if n < 1:
            self.gc[G_DROP_UNKNOWN_TYPE] += 1
            return
        b = p[0]
        if b <= 3:
            self._push_event(EV_STUN, self._lookup_addr(sock, addr), sock, addr, p, n, 0, 0)
        elif 20 <= b <= 63:
            self._push_event(EV_DTLS, self._lookup_addr(sock, addr), sock, addr, p, n, 0, 0)
        elif 128 <= b <= 191:
            sid = self._lookup_addr(sock, addr)
            if sid < 0:
                self.gc[G_DROP_UNKNOWN_SOURCE] += 1
                return
            self._on_media(sid, p, n, now)
        else:
            self.gc[G_DROP_UNKNOWN_TYPE] += 1

    cdef inline int32_t _lookup_addr(self, int sock, const sockaddr_storage *addr) noexcept nogil:
        cdef uint64_t key = addr_key(sock, addr)
        cdef int32_t sid = idmap_get(&self.addr_map, key)
        if sid >= 0 and addr.ss_family != AF_INET and not addr_equal(addr, &self.sessions[sid].addr):
            return -1           # IPv6 key collision: not this session
        return sid

    cdef void _on_media(self, int32_t sid, uint8_t *p, int n, double now) noexcept nogil:
        cdef Session *s = &self.sessions[sid]
        cdef uint64_t *cnt = self.sc + <size_t>sid * SC_COUNT
        cnt[SC_RX_PACKETS] += 1
        cnt[SC_RX_BYTES] += n
        if s.srtp_in == NULL:
            cnt[SC_DROP_NOT_READY] += 1
            return
        if rtcp_is_rtcp(p, n):
            self._on_rtcp(sid, s, p, n, now)
        else:
            self._on_rtp(sid, s, p, n, now)

    cdef inline bint _srtp_failed(self, uint64_t *cnt, int err) noexcept nogil:
        if err == SRTP_OK:
            return False
        if err == SRTP_ERR_AUTH_FAIL:
            cnt[SC_DROP_SRTP_AUTH] += 1
        elif err == SRTP_ERR_REPLAY_FAIL or err == SRTP_ERR_REPLAY_OLD:
            cnt[SC_DROP_REPLAY] += 1
        else:
            cnt[SC_DROP_SRTP_OTHER] += 1
        return True

    # ------------------------------------------------------------ RTP

    cdef void _on_rtp(self, int32_t sid, Session *s, uint8_t *p, int n, double now) noexcept nogil:
        cdef uint64_t *cnt = self.sc + <size_t>sid * SC_COUNT
        cdef RtpView v
        cdef int32_t tid
        cdef Track *t
        cdef uint64_t *tcnt
        cdef int off, ln
        cdef uint32_t idx
        if n < 12:
            cnt[SC_DROP_MALFORMED] += 1
            return
        ln = self._open_rtp(sid, s, p, n) if s.gcm_in else -2
        if ln >= 0:
            n = ln
        elif ln == -1:
            return                  # counted
        elif self._srtp_failed(cnt, srtp_unprotect_fn(s.srtp_in, p, &n)):
            return
        if rtp_parse(p, n, &v) != 0:
            cnt[SC_DROP_MALFORMED] += 1
            return
        tid = idmap_get(&self.track_map, key_session_u32(sid, v.ssrc))
        if tid < 0:
            tid = self._learn_ssrc(sid, s, p, &v)
            if tid < 0:
                cnt[SC_DROP_UNKNOWN_SSRC] += 1
                if s.last_unknown_ssrc != v.ssrc:
                    s.last_unknown_ssrc = v.ssrc
                    self._push_event(EV_UNKNOWN_SSRC, sid, s.sock, &s.addr, NULL, 0, v.ssrc, 0)
                return
        t = &self.tracks[tid]
        tcnt = self.tc + <size_t>tid * TC_COUNT
        tcnt[TC_PACKETS] += 1
        tcnt[TC_BYTES] += n
        self._reception(tid, t, sid, s, &v, now)
        if s.twcc != NULL:
            off = rtp_ext_find(p, &v, s.ext_twcc, &ln)
            if off >= 0 and ln >= 2:
                self._twcc_record(s, rd16(p + off), now)
                if s.twcc_media_ssrc == 0:
                    s.twcc_media_ssrc = v.ssrc
        if t.kind == KIND_AUDIO and s.ext_audio_level:
            off = rtp_ext_find(p, &v, s.ext_audio_level, &ln)
            if off >= 0 and ln >= 1:
                self.levels[<size_t>tid * LEVEL_RING + (self.level_count[tid] & (LEVEL_RING - 1))] = p[off] & 0x7F
                self.level_count[tid] += 1
        if t.ring != NULL:
            idx = v.seq & t.ring_mask
            memcpy(t.ring + <size_t>idx * SLOT_SIZE, p, n)
            t.ring_seq[idx] = v.seq
            t.ring_len[idx] = <uint16_t>n
        if t.muted:
            tcnt[TC_MUTED_DROPS] += 1
            return
        if t.first_consumer >= 0:
            self.batch_fwd[t.kind] += 1
        self._fanout(t, tcnt, p, n, &v, now)

    cdef int _open_rtp(self, int32_t sid, Session *s, uint8_t *p, int n) noexcept nogil:
        """Unprotect inbound AEAD_AES_128_GCM RTP with our GCM: the plain
        length, -1 when dropped (counted), -2 to let libsrtp handle it.

        Same semantics as libsrtp's ssrc_any_inbound context, stream by
        stream (srtp_unprotect in libsrtp 2.7): a new SSRC is opened as index
        SEQ (ROC 0) without a replay check and becomes a stream only once a
        packet authenticates; a known one is estimated, replay-checked, then
        opened. Per session the first IN_STREAMS SSRCs are ours for the life
        of its keys; further ones and headers that do not fit go to libsrtp,
        which never sees a packet of an SSRC we hold, and vice versa, so
        each stream has one replay window."""
        cdef uint64_t *cnt = self.sc + <size_t>sid * SC_COUNT
        cdef uint32_t *ssrcs = self.in_ssrc + <size_t>sid * IN_STREAMS
        cdef uint32_t ssrc
        cdef int hl = rtp_header_len(p, n)
        cdef int k, ln
        cdef int64_t idx
        cdef sb_srtp_index *st = NULL
        if hl < 0:
            return -2
        ssrc = rd32(p + 8)
        for k in range(s.n_in):
            if ssrcs[k] == ssrc:
                st = self.in_index + <size_t>sid * IN_STREAMS + k
                break
        if st == NULL:
            if s.n_in >= IN_STREAMS or n < hl + SB_GCM_TAG_LEN:
                return -2
            idx = rd16(p + 2)
        else:
            idx = sb_index_guess(st, rd16(p + 2))
            if sb_index_check(st, idx) != SB_INDEX_NEW:
                cnt[SC_DROP_REPLAY] += 1
                return -1
            if n < hl + SB_GCM_TAG_LEN:
                cnt[SC_DROP_SRTP_OTHER] += 1
                return -1
        ln = sb_gcm_srtp_unprotect(&self.gcm_in_keys[sid], p, hl, n, <uint32_t>(idx >> 16))
        if ln < 0:
            cnt[SC_DROP_SRTP_AUTH] += 1
            return -1
        if st == NULL:
            k = s.n_in
            s.n_in += 1
            ssrcs[k] = ssrc
            st = self.in_index + <size_t>sid * IN_STREAMS + k
            st.init = 0
        sb_index_add(st, idx)
        return ln

    cdef int32_t _learn_ssrc(self, int32_t sid, Session *s, const uint8_t *p, const RtpView *v) noexcept nogil:
        """Unknown SSRC: find the track by the MID (and RID) header extension
        and learn the SSRC, so later packets hit the SSRC table directly."""
        cdef int moff, mlen, roff, rlen = 0
        cdef int32_t tid
        cdef Track *t
        if s.ext_mid == 0:
            return -1
        moff = rtp_ext_find(p, v, s.ext_mid, &mlen)
        if moff < 0:
            return -1
        roff = rtp_ext_find(p, v, s.ext_rid, &rlen) if s.ext_rid else -1
        if roff < 0:
            rlen = 0
        tid = idmap_get(&self.name_map, key_session_name(sid, p + moff, mlen, p + roff if roff >= 0 else p, rlen))
        if tid < 0:
            return -1
        t = &self.tracks[tid]
        if t.ssrc != 0:
            idmap_del(&self.track_map, key_session_u32(sid, t.ssrc))
            t.seq_init = 0
        if idmap_put(&self.track_map, key_session_u32(sid, v.ssrc), tid) != 0:
            return -1
        t.ssrc = v.ssrc
        self._push_event(EV_SSRC_LEARNED, sid, s.sock, &s.addr, NULL, 0, tid, v.ssrc)
        return tid

    cdef inline void _twcc_record(self, Session *s, uint16_t seq, double now) noexcept nogil:
        cdef TwccState *w = s.twcc
        cdef int idx
        if not w.started:
            twcc_reset(w, seq)
        idx = <int16_t>(seq - w.base)
        if idx < 0:
            return              # already reported as lost; too late
        if idx >= TWCC_SLOTS:
            twcc_reset(w, seq)  # a jump: start a new window
            idx = 0
        w.arrival[idx] = <int64_t>(now * 1e6)
        if idx + 1 > w.count:
            w.count = idx + 1

    cdef void _twcc_flush(self, double now) noexcept nogil:
        """Send every pending transport-cc feedback (about every 100 ms)."""
        cdef int sid, ln
        cdef Session *s
        cdef uint8_t *slot
        for sid in range(self.max_sessions):
            s = &self.sessions[sid]
            if s.twcc == NULL or s.twcc.count == 0 or s.state != SESSION_BOUND or s.srtp_out == NULL:
                continue
            while s.twcc.count > 0:
                slot = self._slot()
                ln = twcc_build(s.twcc, slot, 1100, s.rtcp_ssrc, s.twcc_media_ssrc)
                if ln == 0:
                    break
                if srtp_protect_rtcp_fn(s.srtp_out, slot, &ln) != SRTP_OK:
                    break
                self._commit(sid, ln)
                self.sc[<size_t>sid * SC_COUNT + SC_TX_RTCP] += 1
                self.sc[<size_t>sid * SC_COUNT + SC_TWCC_SENT] += 1
        self.next_twcc = now + TWCC_INTERVAL_US * 1e-6

    cdef void _reception(self, int32_t tid, Track *t, int32_t sid, Session *s, const RtpView *v,
                         double now) noexcept nogil:
        cdef int16_t delta
        cdef int64_t arrival, transit, d
        if not t.seq_init:
            t.seq_init = 1
            t.base_seq = v.seq
            t.max_seq = v.seq
            t.cycles = 0
            t.received = 1
            t.expected_prior = 0
            t.received_prior = 0
            t.jitter = 0
            t.last_transit = <int64_t>(now * t.clock_rate) - v.ts
            return
        delta = <int16_t>(v.seq - t.max_seq)
        if delta > 0:
            if v.seq < t.max_seq:
                t.cycles += 65536
            if delta > 1:
                self.tc[<size_t>tid * TC_COUNT + TC_SEQ_GAPS] += delta - 1
                if t.nack_upstream:
                    self._nack_upstream(tid, t, sid, s, <uint16_t>(t.max_seq + 1), delta - 1)
            t.max_seq = v.seq
        else:
            self.tc[<size_t>tid * TC_COUNT + TC_OUT_OF_ORDER] += 1
        t.received += 1
        arrival = <int64_t>(now * t.clock_rate)
        transit = arrival - <int64_t>v.ts
        d = transit - t.last_transit
        # the RTP timestamp wraps at 2^32: fold the difference back
        d = <int64_t><int32_t>(<uint32_t>d)
        t.last_transit = transit
        t.jitter += (fabs(<double>d) - t.jitter) / 16.0

    cdef void _nack_upstream(self, int32_t tid, Track *t, int32_t sid, Session *s,
                             uint16_t first, int missing) noexcept nogil:
        """A gap in a video track: ask the publisher for the missing packets
        at once (generic NACK). Large gaps are a stream restart, not loss."""
        cdef uint16_t pids[MAX_NACK_FCI]
        cdef uint16_t blps[MAX_NACK_FCI]
        cdef int nfci = 0, i = 0, k
        cdef uint8_t *slot
        cdef int ln
        if missing > MAX_NACK_FCI * 17 or s.srtp_out == NULL or s.state != SESSION_BOUND:
            return
        while i < missing and nfci < MAX_NACK_FCI:
            pids[nfci] = <uint16_t>(first + i)
            blps[nfci] = 0
            for k in range(16):
                if i + 1 + k < missing:
                    blps[nfci] |= <uint16_t>(1 << k)
            i += 17
            nfci += 1
        slot = self._slot()
        ln = rtcp_write_nack(slot, s.rtcp_ssrc, t.ssrc, pids, blps, nfci)
        if srtp_protect_rtcp_fn(s.srtp_out, slot, &ln) != SRTP_OK:
            return
        self._commit(sid, ln)
        self.tc[<size_t>tid * TC_COUNT + TC_NACK_SENT] += 1
        self.sc[<size_t>sid * SC_COUNT + SC_NACK_SENT] += 1
        self.sc[<size_t>sid * SC_COUNT + SC_TX_RTCP] += 1

    cdef void _fanout(self, Track *t, uint64_t *tcnt, const uint8_t *p, int n, const RtpView *v,
                      double now) noexcept nogil:
        cdef int32_t cid = t.first_consumer
        cdef Consumer *c
        cdef Session *sub
        cdef uint64_t *ccnt
        cdef uint8_t *slot
        cdef uint8_t out_pt
        cdef uint16_t out_seq
        cdef uint32_t out_ts
        cdef int ln
        if cid >= 0:
            self._prefetch_consumer(cid, v.pt)
        while cid >= 0:
            c = &self.consumers[cid]
            cid = c.next_in_track
            if cid >= 0:
                # Software pipeline: with thousands of subscribers every row a
                # copy touches is cold. The next consumer's row was fetched
                # one step ago; start fetching what its copy needs and the
                # row after it while this copy is built and sealed.
                self._prefetch_next(cid, v.pt)
            ccnt = self.cc + <size_t>(c - self.consumers) * CC_COUNT
            if c.paused:
                ccnt[CC_PAUSED_DROPS] += 1
                continue
            sub = &self.sessions[c.session]
            if sub.state != SESSION_BOUND or sub.srtp_out == NULL:
                ccnt[CC_PAUSED_DROPS] += 1
                continue
            out_pt = c.pt_map[v.pt]
            if out_pt == 255:
                ccnt[CC_PT_DROPS] += 1
                continue
            if c.sync_needed:
                self._sync(c, v, now)
            elif c.since_sync < 1024:
                if <int16_t>(v.seq - c.base_in_seq) < 0:
                    ccnt[CC_STALE_DROPS] += 1
                    continue
                c.since_sync += 1
            out_seq = <uint16_t>(v.seq + c.seq_offset)
            out_ts = v.ts + c.ts_offset
            slot = self._slot()
            memcpy(slot, p, n)
            slot[1] = (slot[1] & 0x80) | out_pt
            wr16(slot + 2, out_seq)
            wr32(slot + 4, out_ts)
            wr32(slot + 8, c.out_ssrc)
            if not c.ext_identity:
                rtp_ext_remap(slot, v, c.ext_map)
            ln = self._seal_rtp(c, sub, slot, v.hdr_len, n, False)
            if ln < 0:
                self.sc[<size_t>c.session * SC_COUNT + SC_DROP_SRTP_OTHER] += 1
                continue
            self._commit(c.session, ln)
            if not c.started or <int16_t>(out_seq - c.last_seq) > 0:
                c.last_seq = out_seq
                c.last_ts = out_ts
                c.last_time = now
                c.started = 1
            c.sr_packets += 1
            c.sr_octets += v.payload_len
            ccnt[CC_PACKETS] += 1
            ccnt[CC_BYTES] += ln
            tcnt[TC_FORWARDED] += 1
            tcnt[TC_FORWARDED_BYTES] += ln

    cdef inline void _prefetch_consumer(self, int32_t cid, uint8_t pt) noexcept nogil:
        cdef const uint8_t *row = <const uint8_t *>&self.consumers[cid]
        sb_prefetch(row)
        sb_prefetch(row + 64)
        sb_prefetch(&self.consumers[cid].pt_map[pt & 0x7F])

    cdef inline void _prefetch_next(self, int32_t cid, uint8_t pt) noexcept nogil:
        cdef Consumer *nxt = &self.consumers[cid]
        cdef int32_t sid = nxt.session
        cdef const uint8_t *keys
        if nxt.next_in_track >= 0:
            self._prefetch_consumer(nxt.next_in_track, pt)
        sb_prefetch(&self.sessions[sid])
        sb_prefetch(self.cc + <size_t>cid * CC_COUNT + CC_PACKETS)
        sb_prefetch(self.sc + <size_t>sid * SC_COUNT + SC_TX_PACKETS)
        if self.gcm_keys != NULL:
            keys = <const uint8_t *>&self.gcm_keys[sid]
            sb_prefetch(keys)
            sb_prefetch(keys + 64)
            sb_prefetch(keys + 128)
            sb_prefetch(keys + 192)

    cdef inline int _seal_rtp(self, Consumer *c, Session *sub, uint8_t *slot, int hdr_len, int n,
                              bint retransmit) noexcept nogil:
        """SRTP-protect one outgoing copy in place; its new length, or -1.

        With our AES-GCM the consumer tracks its stream's SRTP index itself
        (RFC 3711 3.3.1: ROC from the highest sequence number sent) and
        refuses to seal a new packet under an index it has used: one IV never
        covers two different plaintexts. Only a retransmission, rebuilt
        byte for byte from the ring, may reuse its index (libsrtp's
        allow_repeat_tx, which the libsrtp path runs with)."""
        cdef int ln = n
        cdef int64_t idx
        cdef int r
        if not sub.gcm_out:
            if srtp_protect_fn(sub.srtp_out, slot, &ln) != SRTP_OK:
                return -1
            return ln
        idx = sb_index_guess(&c.out_index, rd16(slot + 2))
        if idx < 0:
            return -1
        r = sb_index_check(&c.out_index, idx)
        if r != SB_INDEX_NEW and not retransmit:
            return -1               # sealed before under this IV (or too old to tell)
        sb_index_add(&c.out_index, idx)
        return sb_gcm_srtp_protect(&self.gcm_keys[c.session], slot, hdr_len, n, <uint32_t>(idx >> 16))

    cdef inline void _sync(self, Consumer *c, const RtpView *v, double now) noexcept nogil:
        cdef uint16_t out_seq
        cdef uint32_t out_ts, ticks
        if c.started:
            out_seq = <uint16_t>(c.last_seq + 1)
            ticks = <uint32_t>((now - c.last_time) * c.clock_rate)
            out_ts = c.last_ts + (ticks if ticks > 0 else 1)
        else:
            out_seq = v.seq
            out_ts = v.ts
        c.seq_offset = <uint16_t>(out_seq - v.seq)
        c.ts_offset = out_ts - v.ts
        c.base_in_seq = v.seq
        c.since_sync = 0
        c.sync_needed = 0

    # ------------------------------------------------------------ RTCP

    cdef void _on_rtcp(self, int32_t sid, Session *s, uint8_t *p, int n, double now) noexcept nogil:
        cdef uint64_t *cnt = self.sc + <size_t>sid * SC_COUNT
        cdef RtcpItem it
        cdef int off = 0, r, k, base
        cdef const uint8_t *q
        cdef int32_t id
        if n < 8:
            cnt[SC_DROP_MALFORMED] += 1
            return
        if self._srtp_failed(cnt, srtp_unprotect_rtcp_fn(s.srtp_in, p, &n)):
            return
        cnt[SC_RX_RTCP] += 1
        while True:
            r = rtcp_next(p, n, off, &it)
            if r == 0:
                break
            if r < 0:
                cnt[SC_DROP_MALFORMED] += 1
                break
            q = p + it.off
            off += it.len
            if it.pt == RTCP_SR or it.pt == RTCP_RR:
                base = 28 if it.pt == RTCP_SR else 8
                if it.blen < base + 24 * it.count:
                    cnt[SC_DROP_MALFORMED] += 1
                    break
                if it.pt == RTCP_SR:
                    id = idmap_get(&self.track_map, key_session_u32(sid, rd32(q + 4)))
                    if id >= 0:
                        self.tracks[id].lsr = (rd32(q + 8) << 16) | (rd32(q + 12) >> 16)
                        self.tracks[id].lsr_time = now
                for k in range(it.count):
                    self._report_block(sid, q + base + 24 * k)
            elif it.pt == RTCP_BYE:
                for k in range(min(<int>it.count, (it.blen - 4) // 4)):
                    self._push_event(EV_BYE, sid, s.sock, &s.addr, NULL, 0, rd32(q + 4 + 4 * k), 0)
            elif it.pt == RTCP_RTPFB and it.blen >= 12:
                if it.count == 1:
                    cnt[SC_NACK_RX] += 1
                    id = idmap_get(&self.consumer_map, key_session_u32(sid, rd32(q + 8)))
                    if id >= 0:
                        self.cc[<size_t>id * CC_COUNT + CC_NACK_RX] += 1
                        for k in range(12, it.blen - 3, 4):
                            self._nack_item(id, rd16(q + k), rd16(q + k + 2))
                elif it.count == 15:
                    cnt[SC_TWCC_RX] += 1
            elif it.pt == RTCP_PSFB and it.blen >= 12:
                if it.count == 1:
                    cnt[SC_PLI_RX] += 1
                    self._keyframe_request(sid, rd32(q + 8), now)
                elif it.count == 4:
                    cnt[SC_PLI_RX] += 1
                    for k in range(12, it.blen - 7, 8):
                        self._keyframe_request(sid, rd32(q + k), now)
                elif it.count == 15:
                    cnt[SC_REMB_RX] += 1

    cdef inline void _report_block(self, int32_t sid, const uint8_t *b) noexcept nogil:
        cdef int32_t cid = idmap_get(&self.consumer_map, key_session_u32(sid, rd32(b)))
        cdef uint64_t *ccnt
        if cid < 0:
            return
        ccnt = self.cc + <size_t>cid * CC_COUNT
        ccnt[CC_RR_FRACTION_LOST] = b[4]
        ccnt[CC_RR_CUM_LOST] = ((<uint32_t>b[5] << 16) | (<uint32_t>b[6] << 8) | b[7])
        ccnt[CC_RR_JITTER] = rd32(b + 12)
        ccnt[CC_RR_COUNT] += 1

    cdef void _keyframe_request(self, int32_t sid, uint32_t media_ssrc, double now) noexcept nogil:
        cdef int32_t cid = idmap_get(&self.consumer_map, key_session_u32(sid, media_ssrc))
        if cid < 0:
            return
        self.cc[<size_t>cid * CC_COUNT + CC_PLI_RX] += 1
        self._forward_pli(self.consumers[cid].track, now)

    cdef int _forward_pli(self, int32_t tid, double now) noexcept nogil:
        """Send a PLI for the track to its publisher, at most once per
        `pli_interval` (1 s) per source."""
        cdef Track *t = &self.tracks[tid]
        cdef Session *pub = &self.sessions[t.session]
        cdef uint8_t *slot
        cdef int ln
        if now - t.last_pli < self.pli_interval:
            self.tc[<size_t>tid * TC_COUNT + TC_PLI_LIMITED] += 1
            return 0
        if pub.state != SESSION_BOUND or pub.srtp_out == NULL or t.ssrc == 0:
            return 0
        slot = self._slot()
        ln = rtcp_write_pli(slot, pub.rtcp_ssrc, t.ssrc)
        if srtp_protect_rtcp_fn(pub.srtp_out, slot, &ln) != SRTP_OK:
            return 0
        self._commit(t.session, ln)
        t.last_pli = now
        self.tc[<size_t>tid * TC_COUNT + TC_PLI_FORWARDED] += 1
        self.sc[<size_t>t.session * SC_COUNT + SC_PLI_SENT] += 1
        self.sc[<size_t>t.session * SC_COUNT + SC_TX_RTCP] += 1
        return 1

    cdef void _nack_item(self, int32_t cid, uint16_t pid, uint16_t blp) noexcept nogil:
        cdef int k
        self._retransmit(cid, pid)
        for k in range(16):
            if blp & (1 << k):
                self._retransmit(cid, <uint16_t>(pid + k + 1))

    cdef void _retransmit(self, int32_t cid, uint16_t out_seq) noexcept nogil:
        """Answer one NACKed sequence number from the track's ring, rewritten
        and protected for this consumer exactly as the original was."""
        cdef Consumer *c = &self.consumers[cid]
        cdef Track *t = &self.tracks[c.track]
        cdef Session *sub = &self.sessions[c.session]
        cdef uint64_t *ccnt = self.cc + <size_t>cid * CC_COUNT
        cdef uint16_t in_seq = <uint16_t>(out_seq - c.seq_offset)
        cdef uint32_t idx
        cdef uint8_t *slot
        cdef int n, ln
        cdef RtpView v
        if (t.ring == NULL or not c.started or sub.state != SESSION_BOUND or sub.srtp_out == NULL
                or <int16_t>(in_seq - c.base_in_seq) < 0):
            ccnt[CC_RTX_MISS] += 1
            return
        idx = in_seq & t.ring_mask
        n = t.ring_len[idx]
        if n == 0 or t.ring_seq[idx] != in_seq:
            ccnt[CC_RTX_MISS] += 1
            return
        slot = self._slot()
        memcpy(slot, t.ring + <size_t>idx * SLOT_SIZE, n)
        if rtp_parse(slot, n, &v) != 0 or c.pt_map[v.pt] == 255:
            ccnt[CC_RTX_MISS] += 1
            return
        slot[1] = (slot[1] & 0x80) | c.pt_map[v.pt]
        wr16(slot + 2, out_seq)
        wr32(slot + 4, v.ts + c.ts_offset)
        wr32(slot + 8, c.out_ssrc)
        if not c.ext_identity:
            rtp_ext_remap(slot, &v, c.ext_map)
        ln = self._seal_rtp(c, sub, slot, v.hdr_len, n, True)
        if ln < 0:
            ccnt[CC_RTX_MISS] += 1
            return
        self._commit(c.session, ln)
        ccnt[CC_RTX] += 1
        self.sc[<size_t>c.session * SC_COUNT + SC_RTX_SENT] += 1

    # ------------------------------------------------------------ send queue

    cdef inline uint8_t *_slot(self) noexcept nogil:
        if self.nsend >= self.send_slots:
            self._flush()
        return self.sbuf + <size_t>self.nsend * SLOT_SIZE

    cdef inline void _commit(self, int32_t sid, int ln) noexcept nogil:
        cdef int i = self.nsend
        cdef Session *s = &self.sessions[sid]
        if s.stream:
            # ICE-TCP session: Python frames it onto the TCP connection
            self._push_event(EV_STREAM_SEND, sid, s.sock, &s.addr, self.sbuf + <size_t>i * SLOT_SIZE,
                             ln, 0, 0)
            self.sc[<size_t>sid * SC_COUNT + SC_TX_PACKETS] += 1
            self.sc[<size_t>sid * SC_COUNT + SC_TX_BYTES] += ln
            return
        self.siov[i].iov_len = ln
        self.smsgs[i].msg_hdr.msg_name = &s.addr
        self.smsgs[i].msg_hdr.msg_namelen = s.addrlen
        self.ssession[i] = sid
        self.ssock[i] = s.sock
        self.nsend = i + 1

    cdef void _flush(self) noexcept nogil:
        cdef int i = 0, j, run, k, sid
        cdef int total = self.nsend
        cdef uint64_t *cnt
        while i < total:
            run = 1
            while i + run < total and self.ssock[i + run] == self.ssock[i]:
                run += 1
            k = sendmmsg(self.fds[self.ssock[i]], &self.smsgs[i], run, MSG_DONTWAIT)
            self.gc[G_SEND_CALLS] += 1
            if k <= 0:
                # the kernel refused the head message (buffer full, ICMP
                # error): count it against its session and move on
                self.gc[G_DROP_SEND_ERROR] += 1
                self.sc[<size_t>self.ssession[i] * SC_COUNT + SC_DROP_SEND_ERROR] += 1
                i += 1
                continue
            for j in range(i, i + k):
                sid = self.ssession[j]
                cnt = self.sc + <size_t>sid * SC_COUNT
                cnt[SC_TX_PACKETS] += 1
                cnt[SC_TX_BYTES] += self.siov[j].iov_len
            self.gc[G_TX_DATAGRAMS] += k
            i += k
        self.nsend = 0

    # ------------------------------------------------------------ events

    cdef void _push_event(self, int kind, int32_t sid, int sock, const sockaddr_storage *addr,
                          const uint8_t *data, int n, int64_t a, int64_t b) noexcept nogil:
        cdef int i
        cdef EventHdr *e
        if self.ecount >= self.event_slots:
            self.gc[G_DROP_EVENT_OVERFLOW] += 1
            if sid >= 0:
                self.sc[<size_t>sid * SC_COUNT + SC_DROP_QUEUE_OVERFLOW] += 1
            return
        i = (self.ehead + self.ecount) % self.event_slots
        e = &self.ehdr[i]
        e.kind = kind
        e.session = sid
        e.sock = sock
        e.length = n
        e.a = a
        e.b = b
        memcpy(&e.addr, addr, sizeof(sockaddr_storage))
        if n > 0:
            memcpy(self.ebuf + <size_t>i * SLOT_SIZE, data, n)
        self.ecount += 1
        self.gc[G_EVENTS] += 1

    def poll_events(self):
        """Drain the event ring: a list of (kind, session, sock, addr, data, a, b).
        Control-plane rate only (STUN, DTLS, BYE, SSRC learning)."""
        cdef list out = []
        cdef EventHdr *e
        while self.ecount:
            e = &self.ehdr[self.ehead]
            data = (<char *>(self.ebuf + <size_t>self.ehead * SLOT_SIZE))[:e.length] if e.length else b""
            out.append((e.kind, e.session, e.sock, addr_tuple(&e.addr), data, e.a, e.b))
            self.ehead = (self.ehead + 1) % self.event_slots
            self.ecount -= 1
        return out

    # ------------------------------------------------------------ sessions

    cdef Session *_session(self, int sid) except NULL:
        if sid < 0 or sid >= self.max_sessions or self.sessions[sid].state == SESSION_FREE:
            raise UnknownIdError(f"unknown session {sid}")
        return &self.sessions[sid]

    def session_new(self, uint32_t rtcp_ssrc=1):
        """Allocate a session (no address, no keys yet); returns its id."""
        cdef int32_t sid
        cdef Session *s
        if self.n_free_sessions == 0:
            raise CapacityError(f"session limit {self.max_sessions} reached")
        self.n_free_sessions -= 1
        sid = self.free_sessions[self.n_free_sessions]
        s = &self.sessions[sid]
        memset(s, 0, sizeof(Session))
        s.state = SESSION_NEW
        s.sock = -1
        s.first_track = NO_ID
        s.first_consumer = NO_ID
        s.rtcp_ssrc = rtcp_ssrc
        self.session_counters[sid, :] = 0
        return sid

    def session_bind(self, int sid, int sock, str host, int port):
        """Accept media from (host, port) on socket `sock` for this session
        (ICE nominated that 5-tuple). Re-binding moves the session."""
        cdef Session *s = self._session(sid)
        cdef sockaddr_storage addr
        cdef socklen_t alen
        cdef uint64_t key
        cdef int32_t other
        if sock < 0 or sock >= self.n_sockets:
            raise RouterError(f"unknown socket index {sock}")
        alen = fill_sockaddr(&addr, host, port)
        key = addr_key(sock, &addr)
        other = idmap_get(&self.addr_map, key)
        if other >= 0 and other != sid:
            raise DuplicateError(f"address {host}:{port} is bound to session {other}")
        if s.state == SESSION_BOUND and not s.stream:
            idmap_del(&self.addr_map, s.addr_key)
        s.stream = 0
        if idmap_put(&self.addr_map, key, sid) != 0:
            raise CapacityError("address table full")
        memcpy(&s.addr, &addr, sizeof(sockaddr_storage))
        s.addrlen = alen
        s.addr_key = key
        s.sock = sock
        s.state = SESSION_BOUND

    def session_bind_stream(self, int sid):
        """Bind the session to a stream transport (ICE-TCP): media arrives
        through `inject` and leaves as EV_STREAM_SEND events."""
        cdef Session *s = self._session(sid)
        if s.state == SESSION_BOUND and not s.stream:
            idmap_del(&self.addr_map, s.addr_key)
        memset(&s.addr, 0, sizeof(sockaddr_storage))
        s.addr_key = 0
        s.sock = -1
        s.stream = 1
        s.state = SESSION_BOUND

    def inject(self, int sid, data):
        """Process one media datagram that arrived for `sid` on a stream
        transport (ICE-TCP), as if it came from the session's 5-tuple."""
        cdef Session *s = self._session(sid)
        cdef const uint8_t[::1] buf = data
        cdef int n = buf.shape[0]
        if s.state != SESSION_BOUND or not s.stream:
            raise RouterError(f"session {sid} is not bound to a stream transport")
        if n < 1 or n > MAX_DATAGRAM or not (128 <= buf[0] <= 191):
            self.sc[<size_t>sid * SC_COUNT + SC_DROP_MALFORMED] += 1
            return
        memcpy(self.scratch, &buf[0], n)
        cdef double t0
        with nogil:
            t0 = mono_now()
            self._on_media(sid, self.scratch, n, t0)
            self._flush()
            self._account_latency(mono_now() - t0)
        if self.ecount and self.event_callback is not None:
            self.event_callback()

    def session_unbind(self, int sid):
        cdef Session *s = self._session(sid)
        if s.state == SESSION_BOUND:
            if not s.stream:
                idmap_del(&self.addr_map, s.addr_key)
            s.stream = 0
            s.state = SESSION_NEW

    def session_address(self, int sid):
        """(sock, (host, port)) of a bound session, or None."""
        cdef Session *s = self._session(sid)
        if s.state != SESSION_BOUND:
            return None
        if s.stream:
            return (-1, None)
        return (s.sock, addr_tuple(&s.addr))

    def session_set_srtp(self, int sid, SrtpContext inbound, SrtpContext outbound):
        """Install the session's SRTP contexts. The caller keeps both objects
        alive until the session is freed or the keys are replaced."""
        cdef Session *s = self._session(sid)
        if inbound.outbound or not outbound.outbound:
            raise RouterError("session_set_srtp needs an inbound and an outbound context")
        cdef int32_t cid
        s.srtp_in = inbound.ptr()
        s.srtp_out = outbound.ptr()
        s.gcm_out = self.native_gcm and outbound.gcm_keys(&self.gcm_keys[sid])
        s.gcm_in = self.native_gcm and inbound.gcm_keys(&self.gcm_in_keys[sid])
        s.n_in = 0                  # a new libsrtp context has no streams either
        # new keys start every outgoing stream's index afresh, as a new
        # libsrtp context would
        cid = s.first_consumer
        while cid >= 0:
            self.consumers[cid].out_index.init = 0
            cid = self.consumers[cid].next_in_session

    def session_set_extensions(self, int sid, int mid=0, int rid=0, int audio_level=0, int twcc=0):
        """Header extension ids this session's client uses for MID, RID, audio
        level and transport-wide sequence numbers (0 = not negotiated). With
        twcc set, the router sends the client transport-cc feedback."""
        cdef Session *s = self._session(sid)
        for v in (mid, rid, audio_level, twcc):
            if not (0 <= v <= 255):
                raise RouterError(f"extension id {v} out of range")
        s.ext_mid = mid
        s.ext_rid = rid
        s.ext_audio_level = audio_level
        s.ext_twcc = twcc
        if twcc and s.twcc == NULL:
            s.twcc = <TwccState *>PyMem_Malloc(sizeof(TwccState))
            if s.twcc == NULL:
                raise MemoryError()
            s.twcc.started = 0
            s.twcc.count = 0
            s.twcc.fb_count = 0
        elif not twcc and s.twcc != NULL:
            PyMem_Free(s.twcc)
            s.twcc = NULL

    def session_free(self, int sid):
        """Forget the session, its tracks (and their consumers) and its consumers."""
        cdef Session *s = self._session(sid)
        while s.first_track >= 0:
            self.track_free(s.first_track)
        while s.first_consumer >= 0:
            self.consumer_free(s.first_consumer)
        if s.state == SESSION_BOUND and not s.stream:
            idmap_del(&self.addr_map, s.addr_key)
        s.state = SESSION_FREE
        s.srtp_in = NULL
        s.srtp_out = NULL
        if s.gcm_out:
            memset(&self.gcm_keys[sid], 0, sizeof(sb_gcm_key))
            s.gcm_out = 0
        if s.gcm_in:
            memset(&self.gcm_in_keys[sid], 0, sizeof(sb_gcm_key))
            s.gcm_in = 0
        s.n_in = 0
        if s.twcc != NULL:
            PyMem_Free(s.twcc)
            s.twcc = NULL
        self.free_sessions[self.n_free_sessions] = sid
        self.n_free_sessions += 1

    # ------------------------------------------------------------ tracks

    cdef Track *_track(self, int tid) except NULL:
        if tid < 0 or tid >= self.max_tracks or self.tracks[tid].state == SLOT_FREE:
            raise UnknownIdError(f"unknown track {tid}")
        return &self.tracks[tid]

    def track_new(self, int sid, uint32_t ssrc, int kind, uint32_t clock_rate, *, bytes mid=b"",
                  bytes rid=b"", int nack_slots=0, bint nack_upstream=False):
        """Publish a track from session `sid`. Route it by SSRC, or (ssrc=0)
        by MID/RID and learn the SSRC from the first packet. `nack_slots`
        (0 or a power of two) sizes the retransmission ring."""
        cdef Session *s = self._session(sid)
        cdef int32_t tid
        cdef Track *t
        cdef uint64_t nkey = 0
        cdef const uint8_t *mp
        cdef const uint8_t *rp
        if kind not in (KIND_AUDIO, KIND_VIDEO):
            raise RouterError(f"unknown track kind {kind}")
        if clock_rate == 0:
            raise RouterError("clock_rate must be positive")
        if nack_slots and (nack_slots < 16 or nack_slots > 8192 or nack_slots & (nack_slots - 1)):
            raise RouterError("nack_slots must be 0 or a power of two between 16 and 8192")
        if len(mid) > MAX_MID or len(rid) > MAX_MID:
            raise RouterError(f"MID and RID are limited to {MAX_MID} bytes")
        if ssrc == 0 and not mid:
            raise RouterError("a track needs an SSRC or a MID")
        if ssrc and idmap_get(&self.track_map, key_session_u32(sid, ssrc)) >= 0:
            raise DuplicateError(f"SSRC {ssrc} is already published by session {sid}")
        if mid:
            mp = mid
            rp = rid
            nkey = key_session_name(sid, mp, len(mid), rp, len(rid))
            if idmap_get(&self.name_map, nkey) >= 0:
                raise DuplicateError(f"MID {mid!r} RID {rid!r} is already published by session {sid}")
        if self.n_free_tracks == 0:
            raise CapacityError(f"track limit {self.max_tracks} reached")
        self.n_free_tracks -= 1
        tid = self.free_tracks[self.n_free_tracks]
        t = &self.tracks[tid]
        memset(t, 0, sizeof(Track))
        t.state = SLOT_USED
        t.session = sid
        t.ssrc = ssrc
        t.kind = kind
        t.clock_rate = clock_rate
        t.first_consumer = NO_ID
        t.last_pli = -1e9
        t.nack_upstream = nack_upstream
        t.name_key = nkey
        if nack_slots:
            t.ring = <uint8_t *>PyMem_Malloc(<size_t>nack_slots * SLOT_SIZE)
            t.ring_seq = <uint16_t *>PyMem_Calloc(nack_slots, sizeof(uint16_t))
            t.ring_len = <uint16_t *>PyMem_Calloc(nack_slots, sizeof(uint16_t))
            if t.ring == NULL or t.ring_seq == NULL or t.ring_len == NULL:
                raise MemoryError()
            t.ring_mask = nack_slots - 1
        if ssrc:
            idmap_put(&self.track_map, key_session_u32(sid, ssrc), tid)
        if nkey:
            idmap_put(&self.name_map, nkey, tid)
        t.prev_in_session = NO_ID
        t.next_in_session = s.first_track
        if s.first_track >= 0:
            self.tracks[s.first_track].prev_in_session = tid
        s.first_track = tid
        self.track_counters[tid, :] = 0
        self.audio_level_count[tid] = 0
        return tid

    def track_set_muted(self, int tid, bint muted):
        """Stop (or restart) forwarding a track to all its consumers, e.g. a
        muted microphone. No renegotiation; consumers resync on unmute."""
        cdef Track *t = self._track(tid)
        cdef int32_t cid
        if t.muted and not muted:
            cid = t.first_consumer
            while cid >= 0:
                self.consumers[cid].sync_needed = 1
                cid = self.consumers[cid].next_in_track
        t.muted = muted

    def track_info(self, int tid):
        cdef Track *t = self._track(tid)
        return {"session": t.session, "ssrc": t.ssrc, "kind": t.kind, "clock_rate": t.clock_rate,
                "muted": bool(t.muted), "received": t.received, "jitter": t.jitter}

    def request_keyframe(self, int tid):
        """Send a PLI to the track's publisher (rate limited); True if sent."""
        self._track(tid)
        cdef int sent = self._forward_pli(tid, mono_now())
        self._flush()
        return bool(sent)

    def track_free(self, int tid):
        cdef Track *t = self._track(tid)
        cdef Session *s = &self.sessions[t.session]
        while t.first_consumer >= 0:
            self.consumer_free(t.first_consumer)
        if t.ssrc:
            idmap_del(&self.track_map, key_session_u32(t.session, t.ssrc))
        if t.name_key:
            idmap_del(&self.name_map, t.name_key)
        if t.prev_in_session >= 0:
            self.tracks[t.prev_in_session].next_in_session = t.next_in_session
        else:
            s.first_track = t.next_in_session
        if t.next_in_session >= 0:
            self.tracks[t.next_in_session].prev_in_session = t.prev_in_session
        if t.ring != NULL:
            PyMem_Free(t.ring)
            PyMem_Free(t.ring_seq)
            PyMem_Free(t.ring_len)
            t.ring = NULL
        t.state = SLOT_FREE
        self.free_tracks[self.n_free_tracks] = tid
        self.n_free_tracks += 1

    # ------------------------------------------------------------ consumers

    cdef Consumer *_consumer(self, int cid) except NULL:
        if cid < 0 or cid >= self.max_consumers or self.consumers[cid].state == SLOT_FREE:
            raise UnknownIdError(f"unknown consumer {cid}")
        return &self.consumers[cid]

    cdef void _link_track(self, int32_t cid, int32_t tid) noexcept:
        cdef Consumer *c = &self.consumers[cid]
        cdef Track *t = &self.tracks[tid]
        c.track = tid
        c.clock_rate = t.clock_rate
        c.prev_in_track = NO_ID
        c.next_in_track = t.first_consumer
        if t.first_consumer >= 0:
            self.consumers[t.first_consumer].prev_in_track = cid
        t.first_consumer = cid

    cdef void _unlink_track(self, int32_t cid) noexcept:
        cdef Consumer *c = &self.consumers[cid]
        if c.prev_in_track >= 0:
            self.consumers[c.prev_in_track].next_in_track = c.next_in_track
        else:
            self.tracks[c.track].first_consumer = c.next_in_track
        if c.next_in_track >= 0:
            self.consumers[c.next_in_track].prev_in_track = c.prev_in_track

    def consumer_new(self, int tid, int sid, uint32_t out_ssrc, *, pt_map=None, ext_map=None,
                     bint paused=False):
        """Forward track `tid` to session `sid` as SSRC `out_ssrc`.

        pt_map: {in_pt: out_pt}; payload types not in a given map are dropped
        (None = keep every PT). ext_map: {in_id: out_id}; extensions not in a
        given map are removed (None = keep every extension as is).
        """
        cdef Track *t = self._track(tid)
        cdef Session *s = self._session(sid)
        cdef int32_t cid
        cdef Consumer *c
        cdef int i
        if out_ssrc == 0:
            raise RouterError("out_ssrc must be non-zero")
        if idmap_get(&self.consumer_map, key_session_u32(sid, out_ssrc)) >= 0:
            raise DuplicateError(f"SSRC {out_ssrc} is already sent to session {sid}")
        if self.n_free_consumers == 0:
            raise CapacityError(f"consumer limit {self.max_consumers} reached")
        self.n_free_consumers -= 1
        cid = self.free_consumers[self.n_free_consumers]
        c = &self.consumers[cid]
        memset(c, 0, sizeof(Consumer))
        try:
            self._set_maps(c, pt_map, ext_map)
        except BaseException:
            self.n_free_consumers += 1
            raise
        c.state = SLOT_USED
        c.session = sid
        c.out_ssrc = out_ssrc
        c.paused = paused
        c.sync_needed = 1
        self._link_track(cid, tid)
        c.prev_in_session = NO_ID
        c.next_in_session = s.first_consumer
        if s.first_consumer >= 0:
            self.consumers[s.first_consumer].prev_in_session = cid
        s.first_consumer = cid
        idmap_put(&self.consumer_map, key_session_u32(sid, out_ssrc), cid)
        self.consumer_counters[cid, :] = 0
        return cid

    cdef int _set_maps(self, Consumer *c, pt_map, ext_map) except -1:
        cdef int i
        if pt_map is None:
            for i in range(128):
                c.pt_map[i] = i
        else:
            memset(c.pt_map, 255, 128)
            for k, v in pt_map.items():
                if not (0 <= k < 128 and 0 <= v < 128):
                    raise RouterError(f"payload type mapping {k}->{v} out of range 0-127")
                c.pt_map[k] = v
        if ext_map is None:
            for i in range(256):
                c.ext_map[i] = i
            c.ext_identity = 1
        else:
            memset(c.ext_map, 0, 256)
            for k, v in ext_map.items():
                if not (1 <= k <= 255 and 0 <= v <= 255):
                    raise RouterError(f"extension id mapping {k}->{v} out of range")
                if (k <= 14) != (v <= 14) and v != 0:
                    raise RouterError(f"extension id mapping {k}->{v} changes the header form "
                                      "(one-byte ids are 1-14)")
                c.ext_map[k] = v
            c.ext_identity = 0
        return 0

    def consumer_set_maps(self, int cid, *, pt_map=None, ext_map=None):
        self._set_maps(self._consumer(cid), pt_map, ext_map)

    def consumer_set_paused(self, int cid, bint paused):
        """Pause or resume; a resumed consumer continues its sequence and
        timestamp numbering where it stopped."""
        cdef Consumer *c = self._consumer(cid)
        if c.paused and not paused:
            c.sync_needed = 1
        c.paused = paused

    def consumer_switch(self, int cid, int tid):
        """Feed this consumer from another track (e.g. a simulcast layer or a
        new screen sharer) with continuous numbering for the subscriber."""
        cdef Consumer *c = self._consumer(cid)
        self._track(tid)
        if c.track == tid:
            return
        self._unlink_track(cid)
        self._link_track(cid, tid)
        c.sync_needed = 1

    def consumer_info(self, int cid):
        cdef Consumer *c = self._consumer(cid)
        return {"track": c.track, "session": c.session, "out_ssrc": c.out_ssrc,
                "paused": bool(c.paused), "seq_offset": c.seq_offset, "ts_offset": c.ts_offset,
                "last_seq": c.last_seq, "last_ts": c.last_ts, "started": bool(c.started)}

    def consumer_free(self, int cid):
        cdef Consumer *c = self._consumer(cid)
        cdef Session *s = &self.sessions[c.session]
        self._unlink_track(cid)
        if c.prev_in_session >= 0:
            self.consumers[c.prev_in_session].next_in_session = c.next_in_session
        else:
            s.first_consumer = c.next_in_session
        if c.next_in_session >= 0:
            self.consumers[c.next_in_session].prev_in_session = c.prev_in_session
        idmap_del(&self.consumer_map, key_session_u32(c.session, c.out_ssrc))
        c.state = SLOT_FREE
        self.free_consumers[self.n_free_consumers] = cid
        self.n_free_consumers += 1

    # ------------------------------------------------------------ control-plane sends

    def send_rtcp(self, int sid, data):
        """Protect a plaintext RTCP compound with the session's keys and send it."""
        cdef Session *s = self._session(sid)
        cdef const uint8_t[::1] buf = data
        cdef int n = buf.shape[0]
        cdef uint8_t *slot
        if s.state != SESSION_BOUND or s.srtp_out == NULL:
            raise RouterError(f"session {sid} is not connected")
        if n < 8 or n > MAX_DATAGRAM:
            raise RouterError("RTCP packet must be 8 to 1900 bytes")
        slot = self._slot()
        memcpy(slot, &buf[0], n)
        if srtp_protect_rtcp_fn(s.srtp_out, slot, &n) != SRTP_OK:
            raise RouterError("SRTCP protect failed")
        self._commit(sid, n)
        self.sc[<size_t>sid * SC_COUNT + SC_TX_RTCP] += 1
        self._flush()

    def send_reports(self, int parts=1):
        """Send connected sessions their RTCP: an RR with a report block per
        track it publishes, an SR per stream we send it, and an SDES CNAME.

        With `parts` > 1 only the next 1/parts of the session table is
        visited (a cursor walks round it), so the engine can spread one
        round over the report interval instead of blocking the loop for the
        whole table at once (milliseconds with thousands of sessions, cold
        SRTCP contexts). Returns the packets sent."""
        cdef int sid, i, span, sent = 0
        if parts < 1:
            raise RouterError("parts must be >= 1")
        span = (self.max_sessions + parts - 1) // parts
        with nogil:
            for i in range(span):
                sid = self.report_cursor
                self.report_cursor = (sid + 1) % self.max_sessions
                if self.sessions[sid].state == SESSION_BOUND and self.sessions[sid].srtp_out != NULL:
                    sent += self._reports_for(sid, mono_now(), ntp_now())
            self._flush()
        return sent

    cdef int _reports_for(self, int32_t sid, double now, uint64_t ntp) noexcept nogil:
        cdef Session *s = &self.sessions[sid]
        cdef uint8_t *p = self.scratch
        cdef int n = 0, rr_start, blocks = 0, sent = 0
        cdef int32_t tid = s.first_track, cid = s.first_consumer
        cdef Track *t
        cdef Consumer *c
        cdef uint32_t ext_max, expected, lost, exp_int, rec_int, lost_int, dlsr
        cdef uint8_t fraction
        cdef int32_t cum
        # RR with our report blocks for the tracks this session publishes
        rr_start = n
        n += 8
        while tid >= 0:
            t = &self.tracks[tid]
            tid = t.next_in_session
            if not t.seq_init or t.ssrc == 0:
                continue
            if blocks == 31 or n + 24 > REPORT_MAX:
                break
            ext_max = t.cycles + t.max_seq
            expected = ext_max - t.base_seq + 1
            lost = expected - t.received if expected > t.received else 0
            exp_int = expected - t.expected_prior
            rec_int = t.received - t.received_prior
            t.expected_prior = expected
            t.received_prior = t.received
            lost_int = exp_int - rec_int if exp_int > rec_int else 0
            fraction = <uint8_t>((lost_int << 8) // exp_int) if exp_int else 0
            cum = <int32_t>min(lost, <uint32_t>0x7FFFFF)
            wr32(p + n, t.ssrc)
            p[n + 4] = fraction
            p[n + 5] = <uint8_t>(cum >> 16)
            p[n + 6] = <uint8_t>(cum >> 8)
            p[n + 7] = <uint8_t>cum
            wr32(p + n + 8, ext_max)
            wr32(p + n + 12, <uint32_t>t.jitter)
            wr32(p + n + 16, t.lsr)
            dlsr = <uint32_t>((now - t.lsr_time) * 65536) if t.lsr else 0
            wr32(p + n + 20, dlsr)
            n += 24
            blocks += 1
        rtcp_write_header(p + rr_start, blocks, RTCP_RR, n - rr_start)
        wr32(p + rr_start + 4, s.rtcp_ssrc)
        # an SR per stream we send to this session
        while cid >= 0:
            c = &self.consumers[cid]
            cid = c.next_in_session
            if not c.started:
                continue
            if n + 28 + 20 > REPORT_MAX:
                sent += self._send_compound(sid, s, p, n)
                n = 0
            rtcp_write_header(p + n, 0, RTCP_SR, 28)
            wr32(p + n + 4, c.out_ssrc)
            wr32(p + n + 8, <uint32_t>(ntp >> 32))
            wr32(p + n + 12, <uint32_t>ntp)
            wr32(p + n + 16, c.last_ts + <uint32_t>((now - c.last_time) * c.clock_rate))
            wr32(p + n + 20, c.sr_packets)
            wr32(p + n + 24, c.sr_octets)
            n += 28
        if n == 0:
            return sent
        sent += self._send_compound(sid, s, p, n)
        return sent

    cdef int _send_compound(self, int32_t sid, Session *s, uint8_t *p, int n) noexcept nogil:
        cdef uint8_t *slot
        cdef int ln
        # SDES with a CNAME chunk closes the compound (RFC 3550 6.1)
        p[n + 4 + 4] = 1                          # CNAME
        p[n + 4 + 5] = 8
        memcpy(p + n + 4 + 6, b"sfu-sbrd", 8)
        wr32(p + n + 4, s.rtcp_ssrc)
        p[n + 4 + 14] = 0
        p[n + 4 + 15] = 0
        rtcp_write_header(p + n, 1, RTCP_SDES, 20)
        n += 20
        slot = self._slot()
        memcpy(slot, p, n)
        ln = n
        if srtp_protect_rtcp_fn(s.srtp_out, slot, &ln) != SRTP_OK:
            return 0
        self._commit(sid, ln)
        self.sc[<size_t>sid * SC_COUNT + SC_TX_RTCP] += 1
        return 1
