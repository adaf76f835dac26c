"""The RTC server: groups, calls and sessions over the media plane.

This is the API the host-facing service (the rtcd-compatible WebSocket API),
the embedded mode and the demo all drive. It mirrors rtcd's ``rtc.Server``:

- ``init_session(SessionConfig)`` when a participant joins a call (rtcd
  ``join``); the client's first SDP offer must follow within 10 s;
- ``handle_message(Message)`` for what the client sends through the host
  (``rtc`` messages: ICE, SDP, Mute, Unmute, ScreenOn, ScreenOff, VideoOn,
  VideoOff);
- ``close_session(session_id)`` (rtcd ``leave``);
- out: ``on_message(Message)`` (SDP and ICE to relay to the client, VoiceOn
  and VoiceOff) and ``on_close(SessionConfig, reason)`` for every session
  end, whatever the cause.

Groups isolate installations (the host API uses the authenticated client id;
embedded hosts use ``"default"``). A call exists from its first join to its
last leave; at most one participant shares a screen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from switchboard.engine import candidates as cand
from switchboard.engine.mediaplane import MediaConfig, MediaPlane
from switchboard.engine.transportserver import TransportConfig, TransportServer
from switchboard.engine.vad import VoiceActivity

from .sdp import Candidate
from .session import PublishedTrack, RtcSession

log = logging.getLogger("sfu.rtc")


class MessageType(enum.IntEnum):
    """``rtc.Message.type`` values (rtcd ``service/rtc/msg.go``)."""

    ICE = 1
    SDP = 2
    MUTE = 3
    UNMUTE = 4
    SCREEN_ON = 5
    SCREEN_OFF = 6
    VOICE_ON = 7
    VOICE_OFF = 8
    VIDEO_ON = 9
    VIDEO_OFF = 10


@dataclass(frozen=True)
class SessionConfig:
    """A participant's session, as the host's ``join`` describes it."""

    group_id: str
    call_id: str
    user_id: str
    session_id: str
    channel_id: str = ""
    av1_support: bool = False
    dc_signaling: bool = False


@dataclass(frozen=True)
class Message:
    """rtcd's ``rtc.Message``: what travels between host and server per session."""

    group_id: str
    user_id: str
    session_id: str
    call_id: str
    type: int
    data: bytes = b""


class RtcError(Exception):
    """A control-plane request the RTC server refuses."""


class SessionExistsError(RtcError):
    pass


class UnknownSessionError(RtcError, LookupError):
    pass


class CallFullError(RtcError):
    pass


class DrainingError(RtcError):
    pass


class RtcMetrics(Protocol):
    """What the server reports; the service maps these to rtcd_* metrics."""

    def error(self, group_id: str, kind: str) -> None: ...
    def conn_state(self, state: str) -> None: ...
    def connection_time(self, group_id: str, seconds: float) -> None: ...
    def dc_open_time(self, group_id: str, seconds: float) -> None: ...
    def lock_grab_time(self, group_id: str, seconds: float) -> None: ...
    def lock_locked_time(self, group_id: str, seconds: float) -> None: ...
    def client_loss_rate(self, group_id: str, value: float) -> None: ...
    def client_rtt(self, group_id: str, value: float) -> None: ...
    def client_jitter(self, group_id: str, value: float) -> None: ...


class CountingMetrics:
    """Default metrics sink: plain counters (tests and embedded hosts read them)."""

    def __init__(self) -> None:
        self.errors: dict[tuple[str, str], int] = {}
        self.states: dict[str, int] = {}
        self.observations: dict[str, list[float]] = {}

    def error(self, group_id: str, kind: str) -> None:
        self.errors[(group_id, kind)] = self.errors.get((group_id, kind), 0) + 1

    def conn_state(self, state: str) -> None:
        self.states[state] = self.states.get(state, 0) + 1

    def _observe(self, name: str, value: float) -> None:
        values = self.observations.setdefault(name, [])
        if len(values) < 10000:
            values.append(value)

    def connection_time(self, group_id: str, seconds: float) -> None:
        self._observe("connection_time", seconds)

    def dc_open_time(self, group_id: str, seconds: float) -> None:
        self._observe("dc_open_time", seconds)

    def lock_grab_time(self, group_id: str, seconds: float) -> None:
        self._observe("lock_grab_time", seconds)

    def lock_locked_time(self, group_id: str, seconds: float) -> None:
        self._observe("lock_locked_time", seconds)

    def client_loss_rate(self, group_id: str, value: float) -> None:
        self._observe("client_loss_rate", value)

    def client_rtt(self, group_id: str, value: float) -> None:
        self._observe("client_rtt", value)

    def client_jitter(self, group_id: str, value: float) -> None:
        self._observe("client_jitter", value)


@dataclass(frozen=True)
class RtcConfig:
    """Settings of the RTC server."""

    media: MediaConfig = field(default_factory=MediaConfig)
    """Media sockets and router limits."""
    transport: TransportConfig = field(default_factory=lambda: TransportConfig(tcp_addresses=("0.0.0.0",)))
    """ICE-TCP listener and ICE timers."""
    candidates: cand.CandidateConfig = field(default_factory=cand.CandidateConfig)
    """How our ICE candidates are built (addresses, overrides, STUN discovery)."""
    local_ips: tuple[str, ...] | None = None
    """Interface addresses to advertise instead of discovering them (tests)."""
    max_participants: int = 0
    """Most sessions per call; 0 = unlimited."""
    signaling_timeout: float = 10.0
    """Seconds after a join within which the client's first offer must arrive."""
    answer_timeout: float = 10.0
    """Seconds the server waits for the answer to its offer."""
    lock_timeout: float = 5.0
    """Seconds the server waits for the signaling lock."""
    vad_interval: float = 0.1
    """Seconds between voice activity evaluations."""
    trickle_candidates: bool = True
    """Send our candidates as ICE messages after the first answer (rtcd does);
    they are in the SDP answer as well."""
    nack_buffer_size: int = 256
    """Packets kept per video track for NACK retransmission (rtc.nack_buffer_size)."""


class Call:
    """The sessions of one call in one group."""

    def __init__(self, group_id: str, call_id: str) -> None:
        self.group_id = group_id
        self.call_id = call_id
        self.sessions: dict[str, RtcSession] = {}
        self.screen_session: RtcSession | None = None
        self.created = time.monotonic()

    def track_added(self, track: PublishedTrack) -> None:
        for s in self.sessions.values():
            if s is not track.session and s.tracks_ready:
                s.add_subscription(track)

    def track_removed(self, track: PublishedTrack) -> None:
        for s in self.sessions.values():
            if s is not track.session:
                s.remove_subscription(track)


class RtcServer:
    """See the module docstring."""

    def __init__(
        self,
        config: RtcConfig | None = None,
        *,
        on_message: Callable[[Message], None] | None = None,
        on_close: Callable[[SessionConfig, str], None] | None = None,
        metrics: RtcMetrics | None = None,
    ) -> None:
        self.config = config or RtcConfig()
        self.plane = MediaPlane(self.config.media)
        self.transports = TransportServer(self.plane, self.config.transport)
        self.metrics: RtcMetrics = metrics or CountingMetrics()
        self.on_message = on_message or (lambda m: None)
        self.on_close = on_close or (lambda c, r: None)
        self.groups: dict[str, dict[str, Call]] = {}
        self.sessions: dict[str, RtcSession] = {}
        self.vad = VoiceActivity()
        self.voice_tracks: dict[int, RtcSession] = {}
        self.candidates: list[Candidate] = []
        self.draining = False
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._vad_handle: asyncio.TimerHandle | None = None
        self._stun_task: asyncio.Task[None] | None = None
        self._track_listeners: list[Callable[[PublishedTrack, bool], None]] = []

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.transports.start()
        ccfg = self.config.candidates
        # Candidates from local addresses (and any override) at once; a STUN
        # lookup of the public address runs in the background and replaces
        # them when it answers, so an unreachable STUN server never delays or
        # fails startup (Calls issue #110).
        await self._gather(dataclasses.replace(ccfg, stun_url="") if ccfg.stun_url else ccfg)
        if ccfg.stun_url:
            self._stun_task = self.loop.create_task(self._gather(ccfg))
        self._vad_handle = self.loop.call_later(self.config.vad_interval, self._vad_tick)

    async def _gather(self, ccfg: cand.CandidateConfig) -> None:
        udp_port = self.plane.socket_info[0].address[1]
        tcp_ports = self.transports.tcp_ports
        try:
            found = await cand.gather_host_candidates(ccfg, local_ips=self.config.local_ips)
        except Exception:
            if self.candidates:  # the background STUN pass: keep what we have
                log.exception("ICE candidate discovery failed; keeping the local candidates")
                return
            raise
        candidates = []
        for c in found:
            parsed = Candidate.parse(c.to_sdp())
            # the configured ports are what we bound unless a test asked for port 0
            if parsed.transport == "udp" and parsed.port == ccfg.ice_port_udp:
                parsed = dataclasses.replace(parsed, port=udp_port)
            elif parsed.transport == "tcp" and parsed.port == ccfg.ice_port_tcp:
                if not tcp_ports:
                    continue
                parsed = dataclasses.replace(parsed, port=tcp_ports[0])
            candidates.append(parsed)
        self.candidates = candidates
        log.info("ICE candidates: %s", ", ".join(f"{c.transport} {c.address}:{c.port}" for c in candidates))

    async def stop(self) -> None:
        self.stopping = True
        if self._stun_task is not None:
            self._stun_task.cancel()
        for sid in list(self.sessions):
            self.close_session(sid, "server stopped")
        if self._vad_handle is not None:
            self._vad_handle.cancel()
        await self.transports.stop()

    # ---------------------------------------------------------------- sessions

    def init_session(self, cfg: SessionConfig) -> RtcSession:
        if cfg.session_id in self.sessions:
            raise SessionExistsError("user session already exists")
        calls = self.groups.setdefault(cfg.group_id, {})
        call = calls.get(cfg.call_id)
        if call is None:
            if self.draining:
                if not calls:
                    self.groups.pop(cfg.group_id, None)
                raise DrainingError("the server is draining and accepts no new calls")
            call = calls[cfg.call_id] = Call(cfg.group_id, cfg.call_id)
        limit = self.config.max_participants
        if limit and len(call.sessions) >= limit:
            raise CallFullError(f"call {cfg.call_id} is full ({limit} participants)")
        session = RtcSession(self, cfg, call)
        call.sessions[cfg.session_id] = session
        self.sessions[cfg.session_id] = session
        log.info("session %s joined call %s (group %s)", cfg.session_id, cfg.call_id, cfg.group_id)
        return session

    def close_session(self, session_id: str, reason: str = "leave") -> None:
        """End a session for any reason; ``on_close`` always follows."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        session.close(reason)
        call = session.call
        call.sessions.pop(session_id, None)
        if not call.sessions:
            calls = self.groups.get(call.group_id, {})
            calls.pop(call.call_id, None)
            if not calls:
                self.groups.pop(call.group_id, None)
        log.info("session %s left call %s: %s", session_id, call.call_id, reason)
        try:
            self.on_close(session.cfg, reason)
        except Exception:
            log.exception("on_close handler failed")

    def handle_message(self, msg: Message) -> None:
        session = self.sessions.get(msg.session_id)
        if session is None:
            raise UnknownSessionError(f"session {msg.session_id!r} not found")
        t = msg.type
        if t == MessageType.SDP:
            session.handle_sdp(msg.data)
        elif t == MessageType.ICE:
            session.handle_ice(msg.data)
        elif t == MessageType.MUTE:
            session.set_muted(True)
        elif t == MessageType.UNMUTE:
            session.set_muted(False)
        elif t == MessageType.SCREEN_ON:
            session.screen_on(msg.data)
        elif t == MessageType.SCREEN_OFF:
            session.screen_off()
        elif t == MessageType.VIDEO_ON:
            session.video_on(msg.data)
        elif t == MessageType.VIDEO_OFF:
            pass  # rtcd: no-op; the client removes the track with an offer
        else:
            raise RtcError(f"unexpected message type {t}")

    def get_sessions(self, group_id: str, call_id: str) -> list[SessionConfig]:
        call = self.groups.get(group_id, {}).get(call_id)
        return [] if call is None else [s.cfg for s in call.sessions.values()]

    def calls(self) -> list[Call]:
        return [c for calls in self.groups.values() for c in calls.values()]

    # ---------------------------------------------------------------- events out

    def emit_signal(self, session: RtcSession, mtype: int, data: bytes) -> None:
        cfg = session.cfg
        self.on_message(Message(cfg.group_id, cfg.user_id, cfg.session_id, cfg.call_id, mtype, data))

    def emit_vad(self, session: RtcSession, on: bool) -> None:
        self.emit_signal(session, MessageType.VOICE_ON if on else MessageType.VOICE_OFF, b"")

    def add_track_listener(self, cb: Callable[[PublishedTrack, bool], None]) -> None:
        """cb(track, published?) for metrics (rtcd_rtc_rtp_tracks_total)."""
        self._track_listeners.append(cb)

    def track_published(self, track: PublishedTrack) -> None:
        for cb in self._track_listeners:
            cb(track, True)

    def track_unpublished(self, track: PublishedTrack) -> None:
        for cb in self._track_listeners:
            cb(track, False)

    def _vad_tick(self) -> None:
        try:
            if self.vad.tracks:
                levels, counts = self.plane.audio_levels()
                for tid, on in self.vad.evaluate(levels, counts, time.monotonic()):
                    session = self.voice_tracks.get(tid)
                    if session is not None and not session.closed and not (on and session.muted):
                        self.emit_vad(session, on)
        except Exception:
            log.exception("voice activity evaluation failed")
        finally:
            self._vad_handle = self.loop.call_later(self.config.vad_interval, self._vad_tick)
