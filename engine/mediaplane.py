"""The Python face of the media plane: sockets, the event loop, and the router.

``MediaPlane`` owns the UDP socket(s) on the media port, registers the native
router with the running event loop (``add_reader``: one Python->C call per
readiness event; asyncio and uvloop both work), installs SRTP keys, and
exposes the routing tables (sessions, tracks, consumers) with typed errors.
Everything per packet happens in ``switchboard._native``; this module runs at
control-plane rate only: session set-up, STUN/DTLS datagrams, RTCP reports once
a second, counters read in bulk as numpy arrays.

Why the native layer owns the fd instead of a ``DatagramProtocol``: asyncio
and uvloop hand one ``bytes`` object and one address tuple to Python for every
datagram, which alone costs more than forwarding the packet in C.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from switchboard._native import core as _core
from switchboard._native.core import (
    CapacityError,
    DuplicateError,
    RouterError,
    SrtpContext,
    SrtpError,
    UnknownIdError,
)

__all__ = [
    "CapacityError",
    "DuplicateError",
    "MediaConfig",
    "MediaEvent",
    "MediaPlane",
    "RouterError",
    "SocketInfo",
    "SrtpError",
    "UnknownIdError",
    "KIND_AUDIO",
    "KIND_VIDEO",
]

log = logging.getLogger("sfu.media")

KIND_AUDIO: int = _core.KIND_AUDIO_
KIND_VIDEO: int = _core.KIND_VIDEO_

EVENT_STUN: int = _core.EVENT_STUN
EVENT_DTLS: int = _core.EVENT_DTLS
EVENT_BYE: int = _core.EVENT_BYE
EVENT_SSRC_LEARNED: int = _core.EVENT_SSRC_LEARNED
EVENT_UNKNOWN_SSRC: int = _core.EVENT_UNKNOWN_SSRC
EVENT_STREAM_SEND: int = _core.EVENT_STREAM_SEND

SESSION_COUNTERS: tuple[str, ...] = _core.SESSION_COUNTERS
TRACK_COUNTERS: tuple[str, ...] = _core.TRACK_COUNTERS
CONSUMER_COUNTERS: tuple[str, ...] = _core.CONSUMER_COUNTERS
GLOBAL_COUNTERS: tuple[str, ...] = _core.GLOBAL_COUNTERS

SRTP_PROFILES: tuple[str, ...] = tuple(_core.SRTP_PROFILES)

_MIB = 1 << 20
EVENT_SLICE = 0.0005
"""Seconds of control-event handling after which the media sockets are read again."""
EVENT_BATCH = 0.005
"""Seconds of control-event handling after which the rest waits for the next loop iteration."""
REPORT_PARTS = 20
"""Slices one RTCP report round is spread over (see MediaPlane._reports)."""


@dataclass(frozen=True)
class MediaConfig:
    """Media plane settings; copied into C integers when the router is built."""

    addresses: tuple[str, ...] = ("0.0.0.0",)
    """Local IP addresses to open a UDP socket on (IPv4 or IPv6 literals)."""
    port: int = 8443
    """UDP port shared by every session (0 picks a free port, for tests)."""
    socket_buffer_bytes: int = 16 * _MIB
    """SO_RCVBUF/SO_SNDBUF to ask for; the kernel caps it at net.core.rmem_max/wmem_max."""
    max_sessions: int = 8192
    """Most concurrent sessions (peer connections)."""
    max_tracks: int = 16384
    """Most concurrent published tracks."""
    max_consumers: int = 131072
    """Most concurrent subscriptions (track x subscriber)."""
    recv_batch: int = 64
    """Datagrams per recvmmsg call."""
    send_slots: int = 1024
    """Queued outgoing datagrams per sendmmsg flush (the kernel caps one call at 1024)."""
    event_slots: int = 1024
    """Bounded queue of STUN/DTLS/RTCP events for Python; overflow is counted and dropped."""
    report_interval: float = 1.0
    """Seconds between RTCP SR/RR rounds."""
    pli_interval: float = 1.0
    """Minimum seconds between PLIs forwarded to one source."""
    srtp_out_window: int = 512
    """Replay window of the SRTP contexts we protect with. libsrtp refuses to
    protect a sequence number older than the window, so this bounds how far
    back a NACK can be answered from a retransmission ring (rings larger than
    it are useless). Larger windows cost a little on every protect."""
    coalesce_us: int = 0
    """When a read finds only a few packets, wait this long once for more
    (interrupt moderation; 0 = off). Trades up to this much delay for fewer
    wake-ups and bigger sendmmsg batches."""
    dont_fragment: bool = True
    """Send IPv4 datagrams with DF set (IP_PMTUDISC_PROBE: never fragmented, up
    to the interface MTU; larger ones fail and are counted as send errors).
    WebRTC packets stay under ~1200 bytes, and DF packets skip the kernel's
    per-destination IP ID hashing, measurable with thousands of peers."""
    native_gcm: bool = True
    """Seal outbound AEAD_AES_128_GCM RTP with Switchboard's AES-NI/PCLMULQDQ
    code (one 256-byte, prefetchable key record per session) instead of
    libsrtp, whose per-stream state is a chain of cold heap objects once there
    are thousands of sessions. Ignored (libsrtp is used) on CPUs without those
    instructions; SRTCP, inbound packets and AES-CM stay with libsrtp."""

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("MediaConfig.addresses: at least one address is needed")
        if not (0 <= self.port <= 65535):
            raise ValueError(f"MediaConfig.port: {self.port} is not in 0-65535")
        if self.socket_buffer_bytes < 65536:
            raise ValueError("MediaConfig.socket_buffer_bytes: must be at least 65536")
        if not (1 <= self.recv_batch <= 1024):
            raise ValueError("MediaConfig.recv_batch: must be 1-1024")
        if not (16 <= self.send_slots <= 1024):
            raise ValueError("MediaConfig.send_slots: must be 16-1024")
        if self.report_interval <= 0 or self.pli_interval < 0:
            raise ValueError("MediaConfig.report_interval must be > 0 and pli_interval >= 0")
        if not (64 <= self.srtp_out_window <= 32768):
            raise ValueError("MediaConfig.srtp_out_window: must be 64-32768")
        if not (0 <= self.coalesce_us <= 5000):
            raise ValueError("MediaConfig.coalesce_us: must be 0-5000")


@dataclass(frozen=True)
class SocketInfo:
    """One media socket as the kernel actually set it up."""

    index: int
    address: tuple[str, int]
    rcvbuf: int
    sndbuf: int
    rcvbuf_capped: bool
    sndbuf_capped: bool


class MediaEvent(NamedTuple):
    """Something the media plane hands to the control plane (a named tuple: one is made
    per STUN/DTLS datagram, and a tuple is several times cheaper to build than a frozen
    dataclass)."""

    kind: int
    session: int
    sock: int
    addr: tuple[str, int] | None
    data: bytes
    a: int
    b: int


@dataclass
class _SessionKeys:
    inbound: SrtpContext
    outbound: SrtpContext
    profile: str


_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_PROBE = getattr(socket, "IP_PMTUDISC_PROBE", 3)


def _open_socket(host: str, port: int, bufsize: int, dont_fragment: bool = True) -> tuple[socket.socket, int, int]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        elif dont_fragment:
            # DF on every datagram (PROBE: up to the interface MTU, ignoring
            # learned path MTUs). Besides never fragmenting media, a DF packet
            # gets IP ID 0, so the kernel skips the per-destination IP ID
            # hash (__ip_select_ident, a cache-missing atomic per datagram
            # once there are thousands of peers).
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):
            # SO_RCVBUFFORCE/SO_SNDBUFFORCE (33/32) pass the sysctl cap when
            # we have CAP_NET_ADMIN; otherwise ask normally and report the cap.
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, bufsize)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, bufsize)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    # Linux reports twice the value set (bookkeeping overhead).
    rcv = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    snd = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
    return sock, rcv, snd


class MediaPlane:
    """Sockets + native router + event loop glue. See the module docstring.

    Ids returned by ``add_session``, ``publish`` and ``subscribe`` are small
    integers; they index the counter arrays and are reused after removal.
    """

    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        c = self.config
        self.router = _core.Router(
            max_sessions=c.max_sessions,
            max_tracks=c.max_tracks,
            max_consumers=c.max_consumers,
            recv_batch=c.recv_batch,
            send_slots=c.send_slots,
            event_slots=c.event_slots,
            native_gcm=c.native_gcm,
        )
        self.router.pli_interval = c.pli_interval
        self.router.coalesce_ns = c.coalesce_us * 1000
        self.router.event_callback = self._drain_events
        self.sockets: list[socket.socket] = []
        self.socket_info: list[SocketInfo] = []
        self._keys: dict[int, _SessionKeys] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._report_handle: asyncio.TimerHandle | None = None
        self._handlers: list[Callable[[MediaEvent], None]] = []
        self._draining = False
        self.event_slices = 0
        """Times a batch of control events was interrupted to read the media sockets."""
        self.python_send_errors = 0

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the sockets and start forwarding on the running loop."""
        if self._loop is not None:
            raise RouterError("media plane already started")
        loop = asyncio.get_running_loop()
        try:
            for host in self.config.addresses:
                sock, rcv, snd = _open_socket(host, self.config.port, self.config.socket_buffer_bytes,
                                              self.config.dont_fragment)
                self.sockets.append(sock)
                index = self.router.add_socket(sock.fileno())
                want = self.config.socket_buffer_bytes
                info = SocketInfo(index, sock.getsockname()[:2], rcv, snd, rcv < want, snd < want)
                self.socket_info.append(info)
                if info.rcvbuf_capped or info.sndbuf_capped:
                    log.warning(
                        "UDP socket %s: receive buffer %d and send buffer %d bytes, asked for %d; "
                        "the kernel capped them: raise net.core.rmem_max and net.core.wmem_max "
                        "(sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d) to avoid drops",
                        info.address, rcv, snd, want, want, want,
                    )
                loop.add_reader(sock.fileno(), self.router.on_readable, index)
        except BaseException:
            self._close_sockets(loop)
            raise
        self._loop = loop
        self._report_handle = loop.call_later(self.config.report_interval / REPORT_PARTS, self._reports)

    async def stop(self) -> None:
        if self._loop is None:
            return
        if self._report_handle is not None:
            self._report_handle.cancel()
        self._close_sockets(self._loop)
        self._loop = None

    def _close_sockets(self, loop: asyncio.AbstractEventLoop) -> None:
        for sock in self.sockets:
            try:
                loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass
            sock.close()
        self.sockets.clear()

    def _reports(self) -> None:
        # one round per report_interval, in REPORT_PARTS slices: a whole
        # round over thousands of sessions would hold the loop (and delay
        # media reads) for milliseconds
        assert self._loop is not None
        try:
            self.router.send_reports(REPORT_PARTS)
        finally:
            self._report_handle = self._loop.call_later(self.config.report_interval / REPORT_PARTS, self._reports)

    # ---------------------------------------------------------------- events

    def add_event_handler(self, handler: Callable[[MediaEvent], None]) -> None:
        """Receive STUN/DTLS datagrams and RTCP events (control-plane rate)."""
        self._handlers.append(handler)

    def _drain_events(self) -> None:
        """Hand the router's queued events to the handlers (the router calls this after a read
        that queued some).

        In slices: after every `EVENT_SLICE` seconds of handlers the media sockets are read
        (`Router.on_readable`), so a long batch of control events (a burst of DTLS records,
        consent checks, joins) never leaves media waiting in the socket for longer than a
        slice. Those reads queue new events, which this call takes too (a nested call from
        the read returns at once). After `EVENT_BATCH` seconds the rest waits for the next
        loop iteration, so timers and other sockets get their turn."""
        if self._draining:
            return
        self._draining = True
        try:
            router = self.router
            handlers = self._handlers
            clock = time.perf_counter
            start = clock()
            slice_end = start + EVENT_SLICE
            while True:
                batch = router.poll_events()
                if not batch:
                    return
                for raw in batch:
                    event = MediaEvent._make(raw)
                    for handler in handlers:
                        try:
                            handler(event)
                        except Exception:  # a handler bug must not stop the media plane
                            log.exception("media event handler failed on %s", event)
                    now = clock()
                    if now >= slice_end:
                        self._read_media()
                        now = clock()
                        slice_end = now + EVENT_SLICE
                        self.event_slices += 1
                if now - start >= EVENT_BATCH and self._loop is not None:
                    # what the reads queued waits for the next loop iteration
                    self._loop.call_soon(self._drain_events)
                    return
        finally:
            self._draining = False

    def _read_media(self) -> None:
        """Forward what waits in the media sockets now (between slices of control events)."""
        if self._loop is None:
            return
        for info in self.socket_info:
            self.router.on_readable(info.index)

    def send_datagram(self, sock: int, addr: tuple[str, int], data: bytes) -> bool:
        """Send a control datagram (STUN, DTLS) from the media port."""
        try:
            self.sockets[sock].sendto(data, addr)
            return True
        except (BlockingIOError, OSError) as exc:
            self.python_send_errors += 1
            log.debug("send to %s failed: %s", addr, exc)
            return False

    # ---------------------------------------------------------------- sessions

    def add_session(self, rtcp_ssrc: int = 1) -> int:
        return int(self.router.session_new(rtcp_ssrc))

    def bind_session(self, sid: int, sock: int, addr: tuple[str, int]) -> None:
        """Accept media from ``addr`` (the ICE-nominated 5-tuple) for ``sid``."""
        self.router.session_bind(sid, sock, addr[0], addr[1])

    def bind_session_stream(self, sid: int) -> None:
        """Bind ``sid`` to an ICE-TCP connection: its media comes in through
        ``inject`` and goes out as EVENT_STREAM_SEND events."""
        self.router.session_bind_stream(sid)

    def inject(self, sid: int, data: bytes) -> None:
        """One media packet that arrived for ``sid`` over ICE-TCP."""
        self.router.inject(sid, data)

    def unbind_session(self, sid: int) -> None:
        self.router.session_unbind(sid)

    def session_address(self, sid: int) -> tuple[int, tuple[str, int] | None] | None:
        """(socket index, client address) of a bound session; (-1, None) on ICE-TCP."""
        return self.router.session_address(sid)

    def set_session_keys(self, sid: int, profile: str, local_key_salt: bytes, remote_key_salt: bytes) -> None:
        """Install DTLS-SRTP keys: ``local`` protects what we send, ``remote``
        unprotects what the client sends."""
        inbound = SrtpContext(profile, remote_key_salt, False)
        outbound = SrtpContext(profile, local_key_salt, True, self.config.srtp_out_window)
        self.router.session_set_srtp(sid, inbound, outbound)
        self._keys[sid] = _SessionKeys(inbound, outbound, profile)

    def set_session_extensions(self, sid: int, *, mid: int = 0, rid: int = 0, audio_level: int = 0,
                               twcc: int = 0) -> None:
        """Extension ids the client numbered; ``twcc`` turns on transport-cc feedback to it."""
        self.router.session_set_extensions(sid, mid, rid, audio_level, twcc)

    def remove_session(self, sid: int) -> None:
        self.router.session_free(sid)
        self._keys.pop(sid, None)

    # ---------------------------------------------------------------- tracks

    def publish(
        self,
        sid: int,
        *,
        kind: int,
        clock_rate: int,
        ssrc: int = 0,
        mid: str = "",
        rid: str = "",
        nack_slots: int = 0,
        nack_upstream: bool = False,
    ) -> int:
        return int(
            self.router.track_new(
                sid, ssrc, kind, clock_rate, mid=mid.encode(), rid=rid.encode(),
                nack_slots=nack_slots, nack_upstream=nack_upstream,
            )
        )

    def unpublish(self, tid: int) -> None:
        self.router.track_free(tid)

    def set_track_muted(self, tid: int, muted: bool) -> None:
        self.router.track_set_muted(tid, muted)

    def request_keyframe(self, tid: int) -> bool:
        return bool(self.router.request_keyframe(tid))

    def track_info(self, tid: int) -> dict[str, Any]:
        return dict(self.router.track_info(tid))

    # ---------------------------------------------------------------- consumers

    def subscribe(
        self,
        tid: int,
        sid: int,
        out_ssrc: int,
        *,
        pt_map: dict[int, int] | None = None,
        ext_map: dict[int, int] | None = None,
        paused: bool = False,
    ) -> int:
        return int(self.router.consumer_new(tid, sid, out_ssrc, pt_map=pt_map, ext_map=ext_map, paused=paused))

    def unsubscribe(self, cid: int) -> None:
        self.router.consumer_free(cid)

    def set_paused(self, cid: int, paused: bool) -> None:
        self.router.consumer_set_paused(cid, paused)

    def switch_source(self, cid: int, tid: int) -> None:
        self.router.consumer_switch(cid, tid)

    def consumer_info(self, cid: int) -> dict[str, Any]:
        return dict(self.router.consumer_info(cid))

    # ---------------------------------------------------------------- RTCP

    def send_rtcp(self, sid: int, data: bytes) -> None:
        self.router.send_rtcp(sid, data)

    def send_reports(self) -> int:
        return int(self.router.send_reports())

    # ---------------------------------------------------------------- counters

    @property
    def global_counters(self) -> np.ndarray:
        return self.router.global_counters

    @property
    def session_counters(self) -> np.ndarray:
        return self.router.session_counters

    @property
    def track_counters(self) -> np.ndarray:
        return self.router.track_counters

    @property
    def consumer_counters(self) -> np.ndarray:
        return self.router.consumer_counters

    def global_stats(self) -> dict[str, int]:
        return dict(zip(GLOBAL_COUNTERS, (int(x) for x in self.router.global_counters)))

    def session_stats(self, sid: int) -> dict[str, int]:
        return dict(zip(SESSION_COUNTERS, (int(x) for x in self.router.session_counters[sid])))

    def track_stats(self, tid: int) -> dict[str, int]:
        return dict(zip(TRACK_COUNTERS, (int(x) for x in self.router.track_counters[tid])))

    def consumer_stats(self, cid: int) -> dict[str, int]:
        return dict(zip(CONSUMER_COUNTERS, (int(x) for x in self.router.consumer_counters[cid])))

    def latency(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts[kind, bucket], sums[kind]): forwarded source packets by
        forwarding latency (LATENCY_BUCKETS, then +Inf), audio row 0, video row 1."""
        return self.router.latency_counts, self.router.latency_sums

    def audio_levels(self) -> tuple[np.ndarray, np.ndarray]:
        """(levels[track, ring], count[track]): the last AUDIO_LEVEL_RING audio
        levels (RFC 6464 -dBov, 0 loudest .. 127 silence) per track, and how
        many were ever written; read in bulk for voice activity detection."""
        return self.router.audio_levels, self.router.audio_level_count

