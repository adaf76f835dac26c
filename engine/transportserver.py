"""Every WebRTC transport on the shared media port, UDP and ICE-TCP.

The `TransportServer` owns the `MediaPlane` (native router + UDP sockets), the
ICE-lite server that answers connectivity checks for all sessions, the DTLS
certificate, and a passive ICE-TCP listener on the same port number
(RFC 6544, RFC 4571 framing) for clients whose UDP is blocked.

Datagram routing (the media plane already split them by first byte,
RFC 7983): STUN goes to the ICE-lite server, whose answers go back out of the
socket they came in on and whose nominations bind the session's 5-tuple in
the router; DTLS goes to the transport bound to that 5-tuple. Media never
comes here. On ICE-TCP connections we split frames ourselves: STUN and DTLS as
above, media injected into the router for that session (the router hands us
its protected output for the connection as EV_STREAM_SEND events).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from .certificate import LocalCertificate, process_certificate
from .dtls import DtlsConfig
from .ice import (
    IceConfig,
    IceLiteServer,
    Nominated,
    SendStun,
    TcpFramer,
    TcpFramingError,
    frame_tcp,
)
from .mediaplane import (
    EVENT_BYE,
    EVENT_DTLS,
    EVENT_SSRC_LEARNED,
    EVENT_STREAM_SEND,
    EVENT_STUN,
    EVENT_UNKNOWN_SSRC,
    MediaEvent,
    MediaPlane,
)
from .transport import FAR_TIMER, TransportListener, TransportState, WebRtcTransport

log = logging.getLogger("sfu.transport")

#: socket index space for ICE-TCP connections (UDP sockets use 0..15)
TCP_SOCK_BASE = 1 << 16


@dataclass(frozen=True)
class TransportConfig:
    """Transport-level settings (media sockets are in MediaConfig)."""

    tcp_addresses: tuple[str, ...] = ()
    """Addresses for the passive ICE-TCP listener; empty = no ICE-TCP."""
    tcp_port: int = 8443
    """ICE-TCP port (rtcd: ice_port_tcp)."""
    ice_connect_timeout: float = 30.0
    """Seconds a new session may take to receive its first nomination."""
    ice_consent_timeout: float = 30.0
    """Seconds without a valid consent check before a session is closed (RFC 7675)."""
    max_tcp_buffer: int = 4 << 20
    """Bytes queued on one ICE-TCP connection before it is considered stuck and closed."""


class TcpConnection(asyncio.Protocol):
    """One passive ICE-TCP connection; carries exactly one transport once nominated."""

    def __init__(self, server: TransportServer) -> None:
        self.server = server
        self.framer = TcpFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.index = server._next_tcp_index()
        self.webrtc: WebRtcTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.server._tcp[self.index] = self

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except TcpFramingError as exc:
            log.info("ICE-TCP %s: %s; closing", self.peer, exc)
            self.close()
            return
        for frame in frames:
            self.server._on_tcp_frame(self, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._tcp.pop(self.index, None)
        if self.webrtc is not None and self.webrtc.tcp is self:
            self.webrtc.close("ICE-TCP connection lost", notify_peer=False)

    def send_frame(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > self.server.config.max_tcp_buffer:
            log.info("ICE-TCP %s: peer is not reading; closing", self.peer)
            self.close()
            return
        self.transport.write(frame_tcp(data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TransportServer:
    """See the module docstring."""

    def __init__(
        self,
        plane: MediaPlane,
        config: TransportConfig | None = None,
        *,
        certificate: LocalCertificate | None = None,
        dtls_config: DtlsConfig | None = None,
    ) -> None:
        self.plane = plane
        self.config = config or TransportConfig()
        self.certificate = certificate or process_certificate()
        self.dtls_config = dtls_config or DtlsConfig()
        self.ice = IceLiteServer(IceConfig(
            consent_timeout=self.config.ice_consent_timeout,
            connect_timeout=self.config.ice_connect_timeout,
        ))
        self.transports: dict[int, WebRtcTransport] = {}
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._tcp: dict[int, TcpConnection] = {}
        self._tcp_servers: list[asyncio.AbstractServer] = []
        self._tcp_counter = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self.media_handlers: list[Callable[[WebRtcTransport, MediaEvent], None]] = []
        plane.add_event_handler(self._on_media_event)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.plane._loop is None:
            await self.plane.start()
        for host in self.config.tcp_addresses:
            server = await self.loop.create_server(
                lambda: TcpConnection(self), host, self.config.tcp_port, reuse_address=True
            )
            self._tcp_servers.append(server)
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    async def stop(self) -> None:
        for t in list(self.transports.values()):
            t.close("server shutting down")
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._tcp_servers:
            server.close()
        for conn in list(self._tcp.values()):
            conn.close()
        await self.plane.stop()

    @property
    def tcp_ports(self) -> list[int]:
        ports = []
        for server in self._tcp_servers:
            sockets = getattr(server, "sockets", None)
            if sockets:
                ports.append(int(sockets[0].getsockname()[1]))
        return ports

    def _next_tcp_index(self) -> int:
        self._tcp_counter += 1
        return TCP_SOCK_BASE + self._tcp_counter

    # ---------------------------------------------------------------- transports

    def create_transport(self, listener: TransportListener) -> WebRtcTransport:
        sid = self.plane.add_session(rtcp_ssrc=int.from_bytes(os.urandom(4), "big") or 1)
        ice = self.ice.create_session(time.monotonic())
        transport = WebRtcTransport(self, sid, ice, listener)
        ice.tag = transport
        self.transports[sid] = transport
        return transport

    def forget(self, transport: WebRtcTransport) -> None:
        """Called by a transport once closed: release its ICE and router state."""
        self.ice.remove_session(transport.ice)
        if self.transports.get(transport.sid) is transport:
            del self.transports[transport.sid]
            self.plane.remove_session(transport.sid)
        if transport.tcp is not None:
            transport.tcp.close()

    def _sweep(self) -> None:
        """Once a second: close sessions whose ICE consent expired (RFC 7675) or
        that never connected, and arm the timers of transports whose far deadline
        (a heartbeat) came near (see `WebRtcTransport._schedule`)."""
        try:
            now = time.monotonic()
            for session in self.ice.expired(now):
                transport = session.tag
                if isinstance(transport, WebRtcTransport):
                    reason = "ICE consent lost" if session.selected is not None else "ICE connect timeout"
                    transport.close(reason, notify_peer=False)
            near = now + FAR_TIMER
            for transport in self.transports.values():
                far = transport.far_deadline
                if far is not None and far <= near:
                    transport._schedule()
        finally:
            self._sweeper = self.loop.call_later(1.0, self._sweep)

    # ---------------------------------------------------------------- datagrams

    def _on_media_event(self, event: MediaEvent) -> None:
        if event.kind == EVENT_STUN:
            assert event.addr is not None
            self._on_stun(event.data, event.addr, event.sock, None)
        elif event.kind == EVENT_DTLS:
            t = self.transports.get(event.session) if event.session >= 0 else None
            if t is not None:
                t.on_dtls(event.data)
        elif event.kind == EVENT_STREAM_SEND:
            t = self.transports.get(event.session)
            if t is not None and t.tcp is not None:
                t.tcp.send_frame(event.data)
        elif event.kind in (EVENT_BYE, EVENT_SSRC_LEARNED, EVENT_UNKNOWN_SSRC):
            t = self.transports.get(event.session)
            if t is not None:
                for handler in self.media_handlers:
                    handler(t, event)

    def _on_stun(self, data: bytes, addr: tuple[str, int], sock: int, conn: TcpConnection | None) -> None:
        for action in self.ice.handle_stun(data, addr, sock, time.monotonic()):
            if isinstance(action, SendStun):
                if action.sock_index >= TCP_SOCK_BASE:
                    c = self._tcp.get(action.sock_index)
                    if c is not None:
                        c.send_frame(action.data)
                else:
                    self.plane.send_datagram(action.sock_index, action.addr, action.data)
            elif isinstance(action, Nominated):
                transport = action.session.tag
                if not isinstance(transport, WebRtcTransport) or transport.state is TransportState.CLOSED:
                    continue
                if action.sock_index >= TCP_SOCK_BASE:
                    c = self._tcp.get(action.sock_index)
                    if c is None:
                        continue
                    c.webrtc = transport
                    transport.on_nominated(action.addr, action.sock_index, c)
                else:
                    transport.on_nominated(action.addr, action.sock_index)

    def _on_tcp_frame(self, conn: TcpConnection, frame: bytes) -> None:
        first = frame[0]
        if first <= 3:
            self._on_stun(frame, conn.peer, conn.index, conn)
        elif conn.webrtc is None or conn.webrtc.tcp is not conn:
            return  # nothing but STUN before nomination
        elif 20 <= first <= 63:
            conn.webrtc.on_dtls(frame)
        elif 128 <= first <= 191:
            self.plane.inject(conn.webrtc.sid, frame)
