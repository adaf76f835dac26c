"""One peer connection's transport on the shared media port.

A `WebRtcTransport` ties together, for one client:

- its ICE-lite session (credentials, nominated 5-tuple, consent),
- its DTLS endpoint (we are the DTLS server when we answer ``passive``),
- the SCTP association and data channels carried inside DTLS (RFC 8261,
  RFC 8831), and
- its session in the native router, which gets the 5-tuple when ICE
  nominates it and the SRTP keys when DTLS completes.

Only control-plane traffic (STUN, DTLS, SCTP) reaches this class; media never
does. All protocol objects are sans-I/O; this class moves their bytes and runs
their timers on the event loop (one timer handle per transport, rescheduled
to the earliest deadline of DTLS and SCTP).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from . import dtls as dtls_mod
from . import sctp as sctp_mod
from .certificate import Fingerprint
from .datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    DataChannel,
    DataChannelManager,
)
from .dtls import DtlsEndpoint, SetupRole
from .ice import IceSession, generate_credentials

if TYPE_CHECKING:
    from .transportserver import TcpConnection, TransportServer

log = logging.getLogger("sfu.transport")

#: Seconds: deadlines further out get their loop timer from the server's sweep (see
#: `WebRtcTransport._schedule`); must exceed that sweep's 1 s period.
FAR_TIMER = 5.0


class TransportState(enum.Enum):
    NEW = "new"                  #: waiting for ICE
    CONNECTING = "connecting"    #: ICE nominated, DTLS handshake running
    CONNECTED = "connected"      #: DTLS done, SRTP keys installed in the router
    CLOSED = "closed"


class TransportListener(Protocol):
    """What the owner of a transport (a WebRTC session) hears from it."""

    def transport_connected(self, transport: WebRtcTransport) -> None: ...

    def transport_channel_open(self, transport: WebRtcTransport, channel: DataChannel) -> None: ...

    def transport_message(self, transport: WebRtcTransport, channel: DataChannel, data: bytes | str) -> None: ...

    def transport_closed(self, transport: WebRtcTransport, reason: str) -> None: ...


class _ClosedListener:
    """Listens to a closed transport (which says nothing more): holds no session."""

    def transport_connected(self, transport: WebRtcTransport) -> None:
        pass

    def transport_channel_open(self, transport: WebRtcTransport, channel: DataChannel) -> None:
        pass

    def transport_message(self, transport: WebRtcTransport, channel: DataChannel, data: bytes | str) -> None:
        pass

    def transport_closed(self, transport: WebRtcTransport, reason: str) -> None:
        pass


_CLOSED_LISTENER = _ClosedListener()


class WebRtcTransport:
    """See the module docstring. Created by `TransportServer.create_transport`."""

    def __init__(self, server: TransportServer, sid: int, ice: IceSession, listener: TransportListener) -> None:
        self.server = server
        self.sid = sid
        self.ice = ice
        self.listener = listener
        self.state = TransportState.NEW
        self.dtls: DtlsEndpoint | None = None
        self.sctp: sctp_mod.SctpAssociation | None = None
        self.channels: DataChannelManager | None = None
        self.remote_fingerprints: list[Fingerprint] = []
        self.local_setup = SetupRole.PASSIVE
        self.addr: tuple[str, int] | None = None
        self.sock = -1
        self.tcp: TcpConnection | None = None
        self.created = time.monotonic()
        self.connected_at: float | None = None
        self.close_reason: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.far_deadline: float | None = None
        """A deadline too far out for a loop timer yet (see `_schedule`)."""
        self._on_close: list[Callable[[WebRtcTransport], None]] = []
        self._pumping = False      # inside _pump: sends are queued, the running pass flushes them
        self._pump_again = False   # something was queued while pumping

    def __repr__(self) -> str:
        return f"WebRtcTransport(sid={self.sid}, {self.state.value}, {self.addr})"

    # ---------------------------------------------------------------- negotiation input

    @property
    def local_ufrag(self) -> str:
        return self.ice.local_ufrag

    @property
    def local_pwd(self) -> str:
        return self.ice.local_pwd

    @property
    def local_fingerprint(self) -> str:
        return self.server.certificate.fingerprint("sha-256")

    def set_remote_parameters(
        self,
        ice_ufrag: str,
        ice_pwd: str,
        fingerprints: Sequence[Fingerprint],
        remote_setup: str,
    ) -> bool:
        """Apply the client's ICE credentials, DTLS fingerprints and setup role
        from an offer or answer. Returns True when this is an ICE restart (new
        remote credentials after the first ones): the session, its tracks and
        subscriptions stay; only ICE credentials change."""
        restart = self.ice.remote_ufrag is not None and self.ice.remote_ufrag != ice_ufrag
        if restart:
            ufrag, pwd = generate_credentials()
            self.ice.restart(ufrag, pwd)
            log.info("%r: ICE restart (remote ufrag %s -> %s)", self, self.ice.remote_ufrag, ice_ufrag)
        if self.ice.remote_ufrag != ice_ufrag or self.ice.remote_pwd != ice_pwd:
            self.ice.set_remote(ice_ufrag, ice_pwd)
        if self.dtls is None:
            self.remote_fingerprints = list(fingerprints)
            role = SetupRole(remote_setup)
            # we answer passive to actpass/active offers; to a passive peer we are active
            self.local_setup = SetupRole.ACTIVE if role is SetupRole.PASSIVE else SetupRole.PASSIVE
            cert = self.server.certificate
            self.dtls = DtlsEndpoint(
                cert.certificate,
                cert.private_key,
                is_server=self.local_setup is SetupRole.PASSIVE,
                remote_fingerprints=self.remote_fingerprints,
                config=self.server.dtls_config,
            )
        return restart

    # ---------------------------------------------------------------- ICE

    def on_nominated(self, addr: tuple[str, int], sock: int, tcp: TcpConnection | None = None) -> None:
        """ICE nominated (or moved) the client's 5-tuple: media now flows there."""
        if self.state is TransportState.CLOSED:
            return
        previous = self.addr
        self.addr, self.sock, self.tcp = addr, sock, tcp
        if tcp is not None:
            self.server.plane.bind_session_stream(self.sid)
        else:
            self.server.plane.bind_session(self.sid, sock, addr)
        if previous is not None and previous != addr:
            log.info("%r: client moved from %s to %s", self, previous, addr)
        if self.state is TransportState.NEW:
            self.state = TransportState.CONNECTING
            if self.dtls is not None and not self.dtls.is_server:
                self.dtls.start(time.monotonic())
                self._pump()

    # ---------------------------------------------------------------- DTLS / SCTP

    def on_dtls(self, data: bytes) -> None:
        dtls = self.dtls
        if dtls is None or self.state is TransportState.CLOSED:
            return
        dtls.receive(data, time.monotonic())
        self._pump()

    def _send(self, data: bytes) -> None:
        if self.tcp is not None:
            self.tcp.send_frame(data)
        elif self.addr is not None:
            self.server.plane.send_datagram(self.sock, self.addr, data)

    def _pump(self) -> None:
        """Move bytes between DTLS, SCTP and the network; deliver events;
        reschedule the timer. Called after every input.

        Channel events are delivered before SCTP output is collected, so what a
        listener sends in answer to a message (the Pong to a Ping) leaves in the
        same SCTP packet as the SACK for it: one record, one datagram. Sends
        made by listeners while the pump runs are only queued (`send_message`
        does not pump again); this pass flushes them."""
        if self._pumping:
            self._pump_again = True
            return
        dtls = self.dtls
        if dtls is None:
            return
        self._pumping = True
        try:
            now = time.monotonic()
            for _ in range(8):  # events can produce output that produces events
                self._pump_again = False
                for event in dtls.events():
                    if type(event) is dtls_mod.ApplicationData:
                        if self.sctp is not None:
                            self.sctp.receive(event.data, now)
                    elif isinstance(event, dtls_mod.HandshakeComplete):
                        self._on_handshake(event.srtp_keys, now)
                    elif isinstance(event, dtls_mod.Closed):
                        self.close(f"DTLS closed by the client ({event.reason})", notify_peer=False)
                        return
                    elif isinstance(event, dtls_mod.Failed):
                        self.close(f"DTLS failed: {event.error}", notify_peer=False)
                        return
                sctp, channels = self.sctp, self.channels
                if sctp is not None and channels is not None:
                    for ev in channels.events(now):
                        if self.state is TransportState.CLOSED:
                            return
                        if type(ev) is ChannelMessage:
                            self.listener.transport_message(self, ev.channel, ev.data)
                        elif isinstance(ev, ChannelOpened):
                            self.listener.transport_channel_open(self, ev.channel)
                        elif isinstance(ev, ChannelClosed):
                            log.debug("%r: data channel %s closed", self, ev.channel.label)
                        elif isinstance(ev, sctp_mod.Closed):
                            self.close(f"SCTP association closed ({ev.reason})", notify_peer=True)
                            return
                    if self.state is TransportState.CLOSED:
                        return
                    self._pump_again = False  # this flush takes what listeners queued
                    for packet in sctp.datagrams_to_send(now):
                        try:
                            dtls.send_application_data(packet)
                        except dtls_mod.DtlsError as exc:
                            log.debug("%r: SCTP packet not sent: %s", self, exc)
                for datagram in dtls.datagrams_to_send():
                    self._send(datagram)
                if not self._pump_again:
                    break
        finally:
            self._pumping = False
        self._schedule()

    def _on_handshake(self, keys: dtls_mod.SrtpKeys, now: float) -> None:
        self.server.plane.set_session_keys(self.sid, str(keys.profile_name), keys.local_key_salt, keys.remote_key_salt)
        self.state = TransportState.CONNECTED
        self.connected_at = now
        assert self.dtls is not None
        self.sctp = sctp_mod.SctpAssociation(is_client=not self.dtls.is_server)
        self.channels = DataChannelManager(self.sctp, dtls_is_server=self.dtls.is_server)
        self.sctp.start(now)
        log.info("%r: connected (%s, %.0f ms after creation)", self, keys.profile_name, (now - self.created) * 1000)
        self.listener.transport_connected(self)

    def _schedule(self) -> None:
        """Arm the loop timer for the earliest DTLS/SCTP deadline. One further out than
        `FAR_TIMER` (the SCTP heartbeat, 30 s, which moves on every message sent) gets no
        timer: `TransportServer`'s once-a-second sweep arms it when it comes near. So a ping
        round trip costs one timer (T3 armed with the Pong, dropped by the SACK), not two
        re-arms of the heartbeat as well."""
        if self.state is TransportState.CLOSED:
            return
        at = self.dtls.next_timer() if self.dtls is not None else None
        if self.sctp is not None:
            t = self.sctp.next_timer()
            if t is not None and (at is None or t < at):
                at = t
        if at is not None and at - time.monotonic() > FAR_TIMER:
            self.far_deadline = at
            at = None
        else:
            self.far_deadline = None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            # deadlines are time.monotonic() values, the clock of asyncio's and uvloop's loops
            self._timer = self.server.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.state is TransportState.CLOSED:
            return
        now = time.monotonic()
        if self.dtls is not None and (t := self.dtls.next_timer()) is not None and t <= now:
            self.dtls.handle_timer(now)
        if self.sctp is not None and (t := self.sctp.next_timer()) is not None and t <= now:
            self.sctp.handle_timer(now)
        self._pump()

    # ---------------------------------------------------------------- data channels

    def channel(self, label: str) -> DataChannel | None:
        if self.channels is None:
            return None
        for ch in self.channels.channels:
            if ch.label == label:
                return ch
        return None

    def send_message(self, channel: DataChannel, data: bytes | str) -> None:
        """Queue a data-channel message; dropped silently once closed."""
        if self.channels is None or self.state is not TransportState.CONNECTED:
            return
        try:
            self.channels.send(channel, data, time.monotonic())
        except Exception as exc:  # channel closing, association gone
            log.debug("%r: message on %s not sent: %s", self, channel.label, exc)
            return
        self._pump()

    # ---------------------------------------------------------------- close

    def add_close_callback(self, cb: Callable[[WebRtcTransport], None]) -> None:
        self._on_close.append(cb)

    def close(self, reason: str, *, notify_peer: bool = True) -> None:
        """Tear down: DTLS close_notify (if connected), router session freed,
        ICE session removed, listener told why."""
        if self.state is TransportState.CLOSED:
            return
        self.state = TransportState.CLOSED
        self.close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if notify_peer and self.dtls is not None:
            if self.sctp is not None:
                self.sctp.abort("session closed")
            self.dtls.close()
            for datagram in self.dtls.datagrams_to_send():
                self._send(datagram)
        log.info("%r: closed: %s", self, reason)
        try:
            self.listener.transport_closed(self, reason)
        finally:
            for cb in self._on_close:
                cb(self)
            self.server.forget(self)
            self._release()

    def _release(self) -> None:
        """Break the reference cycles a closed transport is part of (its listener, which
        holds it; its ICE session, which tags it; close callbacks; OpenSSL's verify callback),
        so reference counting frees the session's state at once. Otherwise every ended
        session would wait, as cyclic garbage, for a full collection: with many sessions
        those stall the loop for tens of ms, and are made rare (see `tune_gc` in
        signaling/service.py)."""
        self.listener = _CLOSED_LISTENER
        self._on_close.clear()
        if self.ice.tag is self:
            self.ice.tag = None
        if self.dtls is not None:
            self.dtls.release()
