"""One participant's WebRTC session: negotiation, tracks, the calls-dc protocol.

Negotiation follows rtcd (reference rtcd.md 1.9):

- The client makes the first offer (usually only the ``calls-dc`` data
  channel); we answer it. It must arrive within 10 s of the join.
- Once the data channel is open, the server sends its own offers to add and
  remove the tracks it forwards to this client. Offers are serialised by a
  signaling lock shared with the client (DC ``Lock``/``Unlock``), each is
  preceded by a ``MediaMap`` and waits up to 10 s for the answer. Several
  pending changes go into one offer.
- The server is the impolite peer: a client offer that arrives while our
  offer waits for its answer is ignored (the browser rolls back and answers).
- Client offers add or remove the client's own tracks (first unmute, screen
  share, camera). Tracks are classified by the msid stream ids the client
  announced with ScreenOn/VideoOn: voice, screen, screen-audio, video.

The engine never sees SDP: ``signaling.negotiation`` turns descriptions into
plain dataclasses, and this module turns those into router operations
(publish a track, subscribe a consumer with payload-type and extension-id
maps so packets arrive numbered the way this client negotiated).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard.engine.certificate import Fingerprint as EngineFingerprint
from switchboard.engine.datachannel import DataChannel
from switchboard.engine.ice import IceError, format_trickle, parse_trickle
from switchboard.engine.mediaplane import KIND_AUDIO, KIND_VIDEO, RouterError
from switchboard.engine.transport import TransportState, WebRtcTransport

from . import dcmsg
from .dcmsg import DCMessageType
from .negotiation import (
    AUDIO_LEVEL_URI,
    MID_URI,
    RID_URI,
    TWCC_URI,
    IceParams,
    MediaInfo,
    NegotiationError,
    NegotiationState,
    OutTrack,
    RemoteInfo,
    answer_client_offer,
    apply_answer,
    create_server_offer,
    describe_offer,
)
from .sdp import Fingerprint, SdpError, SessionDescription

if TYPE_CHECKING:
    from .rtc import Call, RtcServer, SessionConfig

log = logging.getLogger("sfu.session")

VOICE = "voice"
SCREEN = "screen"
SCREEN_AUDIO = "screen-audio"
VIDEO = "video"


class SignalingLock:
    """The one-slot signaling lock both sides take before offering (rtcd
    ``dc/lock.go``). The client asks with DC ``Lock`` and gets ``Lock(bool)``
    at once; the server waits for it. A client that never unlocks loses the
    lock after ``client_hold_max`` seconds."""

    def __init__(self, client_hold_max: float = 15.0) -> None:
        self.holder: str | None = None
        self.since = 0.0
        self.client_hold_max = client_hold_max
        self._released = asyncio.Event()
        self._released.set()

    def try_acquire(self, who: str) -> bool:
        self._expire()
        if self.holder is not None:
            return False
        self.holder = who
        self.since = time.monotonic()
        self._released.clear()
        return True

    async def acquire(self, who: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.try_acquire(who):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._released.wait(), min(remaining, 0.25))
            except TimeoutError:
                pass
        return True

    def release(self, who: str) -> None:
        if self.holder == who:
            self.holder = None
            self._released.set()

    def _expire(self) -> None:
        if self.holder == "client" and time.monotonic() - self.since > self.client_hold_max:
            log.info("client held the signaling lock for over %.0f s; releasing it", self.client_hold_max)
            self.release("client")


@dataclass(eq=False)
class PublishedTrack:
    """A track a client sends us; one router track per simulcast layer."""

    session: RtcSession
    mid: str
    kind: str                       # "audio" / "video"
    type: str                       # voice / screen / screen-audio / video
    codec: str                      # "opus", "VP8", "AV1"
    payload_type: int
    clock_rate: int
    audio_level_id: int | None
    layers: dict[str, int]          # rid ("" without simulcast) -> router track id
    ssrc: int
    track_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def label(self) -> str:
        """rtcd's track id: ``<type>_<sender session>_<random>``."""
        return f"{self.type}_{self.session.session_id}_{self.track_id}"

    def default_layer(self) -> int:
        for rid in ("l", "", "h"):
            if rid in self.layers:
                return self.layers[rid]
        return next(iter(self.layers.values()))


@dataclass(eq=False)
class Subscription:
    """A track we forward to this session."""

    track: PublishedTrack
    out_ssrc: int
    mid: str | None = None
    consumer: int | None = None


class RtcSession:
    """See the module docstring. Created by ``RtcServer.init_session``."""

    def __init__(self, server: RtcServer, cfg: SessionConfig, call: Call) -> None:
        self.server = server
        self.cfg = cfg
        self.call = call
        self.session_id = cfg.session_id
        self.neg = NegotiationState()
        self.lock = SignalingLock()
        self.transport: WebRtcTransport = server.transports.create_transport(self)
        self.dc: DataChannel | None = None
        self.tracks_ready = False          # data channel open: the server may add tracks
        self.published: dict[tuple[str, str], PublishedTrack] = {}   # (mid, type) -> track
        self.subscriptions: dict[int, Subscription] = {}             # id(PublishedTrack) -> sub
        self.screen_stream_id: str | None = None
        self.video_stream_id: str | None = None
        self.muted = True                  # rtcd forwards voice only after Unmute
        self.closed = False
        self.close_reason: str | None = None
        self.created = time.monotonic()
        self.first_offer_at: float | None = None
        self._answer_waiter: asyncio.Future[RemoteInfo] | None = None
        self._answer_via_dc = False
        self._needs_offer = False
        self._negotiator: asyncio.Task[None] | None = None
        self._offer_failures = 0
        self._signaling_timer = server.loop.call_later(server.config.signaling_timeout, self._signaling_timeout)

    def __repr__(self) -> str:
        return f"RtcSession({self.session_id!r}, call={self.cfg.call_id!r})"

    @property
    def sid(self) -> int:
        return self.transport.sid

    @property
    def plane(self) -> Any:
        return self.server.plane

    # ---------------------------------------------------------------- messages from the client

    def handle_sdp(self, payload: bytes | str, *, via_dc: bool = False) -> None:
        """A client SDP message: JSON ``{"type": "offer"|"answer", "sdp": ...}``."""
        try:
            obj = json.loads(payload)
            kind, text = obj["type"], obj["sdp"]
            if not isinstance(kind, str) or not isinstance(text, str):
                raise TypeError("type and sdp must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            self.server.metrics.error(self.cfg.group_id, "signaling")
            log.warning("%r: unreadable SDP message: %s", self, exc)
            return
        if kind == "offer":
            self._on_client_offer(text, via_dc)
        elif kind == "answer":
            self._on_client_answer(text)
        else:
            log.warning("%r: SDP message of unknown type %r", self, kind)

    def handle_ice(self, payload: bytes | str) -> None:
        """A trickled client candidate (we are ICE-lite: informational only)."""
        try:
            self.transport.ice.add_remote_candidate(parse_trickle(payload))
        except (IceError, ValueError) as exc:
            log.debug("%r: ignoring candidate: %s", self, exc)

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        for track in self.published.values():
            if track.type == VOICE:
                for tid in track.layers.values():
                    self.plane.set_track_muted(tid, muted)
                    if muted and self.server.vad.reset(tid):
                        self.server.emit_vad(self, False)

    def screen_on(self, data: bytes | str) -> None:
        try:
            stream_id = json.loads(data)["screenStreamID"]
        except (ValueError, KeyError, TypeError):
            log.warning("%r: ScreenOn without screenStreamID", self)
            return
        if self.call.screen_session not in (None, self):
            log.info("%r: screen share refused: %r is sharing", self, self.call.screen_session)
            return
        self.call.screen_session = self
        self.screen_stream_id = str(stream_id)

    def screen_off(self) -> None:
        if self.call.screen_session is self:
            self.call.screen_session = None
        for key, track in list(self.published.items()):
            if track.type in (SCREEN, SCREEN_AUDIO):
                self._unpublish(key)
        self.screen_stream_id = None

    def video_on(self, data: bytes | str) -> None:
        try:
            self.video_stream_id = str(json.loads(data)["videoStreamID"])
        except (ValueError, KeyError, TypeError):
            log.warning("%r: VideoOn without videoStreamID", self)

    # ---------------------------------------------------------------- client offers

    def _on_client_offer(self, text: str, via_dc: bool) -> None:
        if self.closed:
            return
        if self._answer_waiter is not None:
            # we are the impolite peer: our offer stands, the client rolls back
            log.info("%r: signaling conflict, ignoring the client's offer", self)
            self.server.metrics.error(self.cfg.group_id, "signaling")
            return
        try:
            offer = SessionDescription.parse(text)
            info = describe_offer(self.neg, offer)
            self.transport.set_remote_parameters(
                info.ice_ufrag, info.ice_pwd,
                [EngineFingerprint(f.algorithm, f.value) for f in info.fingerprints], info.setup,
            )
            answer = answer_client_offer(
                self.neg, offer,
                local_ice=IceParams(self.transport.local_ufrag, self.transport.local_pwd),
                local_fingerprint=Fingerprint("sha-256", self.transport.local_fingerprint),
                candidates=self.server.candidates,
            )
        except (SdpError, NegotiationError, IceError, ValueError) as exc:
            self.server.metrics.error(self.cfg.group_id, "signaling")
            log.warning("%r: client offer rejected: %s", self, exc)
            if self.first_offer_at is None:
                self.server.close_session(self.session_id, f"bad offer: {exc}")
            return
        first = self.first_offer_at is None
        if first:
            self.first_offer_at = time.monotonic()
            self._signaling_timer.cancel()
        self._send_sdp("answer", str(answer), via_dc)
        if first and self.server.config.trickle_candidates:
            self._trickle_candidates()
        assert self.neg.last_remote is not None
        self._apply_remote_media(self.neg.last_remote)

    def _apply_remote_media(self, info: RemoteInfo) -> None:
        """Publish what the client now sends; unpublish what it stopped sending."""
        mid_id = rid_id = level_id = twcc_id = 0
        for m in info.media:
            mid_id = mid_id or (m.extension_id(MID_URI) or 0)
            rid_id = rid_id or (m.extension_id(RID_URI) or 0)
            if m.client_sends:
                twcc_id = twcc_id or (m.extension_id(TWCC_URI) or 0)
            if m.kind == "audio":
                level_id = level_id or (m.extension_id(AUDIO_LEVEL_URI) or 0)
        self.plane.set_session_extensions(self.sid, mid=mid_id, rid=rid_id, audio_level=level_id, twcc=twcc_id)
        wanted: dict[tuple[str, str], tuple[MediaInfo, str]] = {}
        for m in info.media:
            if m.kind not in ("audio", "video") or not m.client_sends or not m.codecs:
                continue
            ttype = self._classify(m)
            if ttype is not None:
                wanted[(m.mid, ttype)] = (m, ttype)
        # removals first: a track that changes type (voice -> screen-audio
        # once its stream is announced as the screen) keeps its SSRC
        for key in list(self.published):
            if key not in wanted:
                self._unpublish(key)
        for key, (m, ttype) in wanted.items():
            if key not in self.published:
                self._publish(key, m, ttype)

    def _classify(self, m: MediaInfo) -> str | None:
        sid = m.stream_id
        if m.kind == "audio":
            return SCREEN_AUDIO if sid is not None and sid == self.screen_stream_id else VOICE
        if sid is not None and sid == self.screen_stream_id:
            return SCREEN
        if sid is not None and sid == self.video_stream_id:
            return VIDEO
        if self.screen_stream_id is not None and self.call.screen_session is self and sid is None:
            return SCREEN
        log.warning("%r: unexpected video track on mid %s (stream %r)", self, m.mid, sid)
        self.server.metrics.error(self.cfg.group_id, "track")
        return None

    def _publish(self, key: tuple[str, str], m: MediaInfo, ttype: str) -> None:
        codec = m.codecs[0]
        kind = KIND_AUDIO if m.kind == "audio" else KIND_VIDEO
        rtx = {g.ssrcs[1] for g in m.ssrc_groups if g.semantics == "FID" and len(g.ssrcs) > 1}
        primary = [s for s in m.ssrcs if s not in rtx]
        layers: dict[str, int] = {}
        try:
            if m.rids:
                for rid in m.rids:
                    layers[rid] = self.plane.publish(
                        self.sid, kind=kind, clock_rate=codec.clock_rate, mid=m.mid, rid=rid,
                        nack_slots=self.server.config.nack_buffer_size, nack_upstream=True)
            else:
                layers[""] = self.plane.publish(
                    self.sid, kind=kind, clock_rate=codec.clock_rate,
                    ssrc=primary[0] if primary else 0, mid=m.mid if not primary else "",
                    nack_slots=self.server.config.nack_buffer_size if kind == KIND_VIDEO else 0, nack_upstream=kind == KIND_VIDEO)
        except RouterError as exc:
            for tid in layers.values():
                self.plane.unpublish(tid)
            log.warning("%r: cannot publish mid %s: %s", self, m.mid, exc)
            self.server.metrics.error(self.cfg.group_id, "track")
            return
        track = PublishedTrack(
            session=self, mid=m.mid, kind=m.kind, type=ttype, codec=codec.name,
            payload_type=codec.payload_type, clock_rate=codec.clock_rate,
            audio_level_id=m.extension_id(AUDIO_LEVEL_URI), layers=layers,
            ssrc=primary[0] if primary else 0,
        )
        self.published[key] = track
        if ttype == VOICE:
            for tid in layers.values():
                self.plane.set_track_muted(tid, self.muted)
                self.server.vad.add(tid)
                self.server.voice_tracks[tid] = self
        log.info("%r: publishes %s on mid %s (%s/%d, layers %s)", self, ttype, m.mid, codec.name,
                 codec.payload_type, sorted(layers))
        self.server.track_published(track)
        self.call.track_added(track)

    def _unpublish(self, key: tuple[str, str]) -> None:
        track = self.published.pop(key, None)
        if track is None:
            return
        self.call.track_removed(track)
        for tid in track.layers.values():
            if self.server.vad.reset(tid) and track.type == VOICE:
                self.server.emit_vad(self, False)
            self.server.vad.remove(tid)
            self.server.voice_tracks.pop(tid, None)
            self.plane.unpublish(tid)
        self.server.track_unpublished(track)
        log.info("%r: stopped publishing %s on mid %s", self, track.type, track.mid)

    # ---------------------------------------------------------------- forwarding to this client

    def wants(self, track: PublishedTrack) -> bool:
        """rtcd's AV1 rule: a sender with AV1 support shares its screen twice
        (VP8 and AV1); receivers with AV1 support get the AV1 one, the others
        VP8."""
        codec = track.codec.lower()
        if codec == "av1":
            return self.cfg.av1_support
        if codec == "vp8" and track.type == SCREEN and self.cfg.av1_support:
            return not any(t.type == SCREEN and t.codec.lower() == "av1" for t in track.session.published.values())
        return True

    def add_subscription(self, track: PublishedTrack) -> None:
        """Forward another participant's track to this client (after the next offer)."""
        if self.closed or id(track) in self.subscriptions or not self.wants(track):
            return
        used = {s.out_ssrc for s in self.subscriptions.values()}
        while True:
            ssrc = int.from_bytes(os.urandom(4), "big")
            if ssrc and ssrc not in used:
                break
        self.subscriptions[id(track)] = Subscription(track, ssrc)
        self.schedule_offer()

    def remove_subscription(self, track: PublishedTrack) -> None:
        sub = self.subscriptions.pop(id(track), None)
        if sub is None:
            return
        if sub.consumer is not None:
            try:
                self.plane.unsubscribe(sub.consumer)
            except RouterError:
                pass
            sub.consumer = None
        if sub.mid is not None:
            self.schedule_offer()

    def tracks_initialised(self) -> None:
        """The data channel opened: subscribe to everything already in the call."""
        if self.tracks_ready:
            return
        self.tracks_ready = True
        for other in self.call.sessions.values():
            if other is not self:
                for track in other.published.values():
                    self.add_subscription(track)
        self.schedule_offer()

    def schedule_offer(self) -> None:
        if self.closed or not self.tracks_ready or self.server.stopping:
            return
        self._needs_offer = True
        if self._negotiator is None or self._negotiator.done():
            self._negotiator = self.server.loop.create_task(self._negotiate())

    async def _negotiate(self) -> None:
        cfg = self.server.config
        while self._needs_offer and not self.closed:
            self._needs_offer = False
            wanted = {s.mid for s in self.subscriptions.values() if s.mid is not None}
            current = set(self.neg.out_tracks)
            if not any(s.mid is None for s in self.subscriptions.values()) and wanted == current:
                continue  # nothing to change
            t0 = time.monotonic()
            if not await self.lock.acquire("server", cfg.lock_timeout):
                self.server.metrics.error(self.cfg.group_id, "signaling_lock_timeout")
                log.info("%r: signaling lock timeout; retrying", self)
                self._needs_offer = True
                await asyncio.sleep(0.2)
                continue
            self.server.metrics.lock_grab_time(self.cfg.group_id, time.monotonic() - t0)
            locked_at = time.monotonic()
            try:
                await self._offer_round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not silently end all future offers
                log.exception("%r: server offer round failed", self)
                self.server.metrics.error(self.cfg.group_id, "signaling")
            finally:
                self.lock.release("server")
                self.server.metrics.lock_locked_time(self.cfg.group_id, time.monotonic() - locked_at)

    async def _offer_round(self) -> None:
        subs = list(self.subscriptions.values())
        tracks = [
            OutTrack(s.mid, s.track.kind, s.out_ssrc, s.track.session.session_id, s.track.label, s.track.codec)
            for s in subs
        ]
        try:
            offer = create_server_offer(self.neg, tracks=tracks)
        except NegotiationError as exc:
            log.warning("%r: cannot make an offer: %s", self, exc)
            self.server.metrics.error(self.cfg.group_id, "signaling")
            return
        for sub, placed in zip(subs, offer.tracks):
            sub.mid = placed.mid
        media_map = {
            s.mid: {"type": s.track.type, "sender_id": s.track.session.session_id}
            for s in self.subscriptions.values() if s.mid is not None
        }
        self._send_dc(dcmsg.encode_media_map(media_map))
        loop = self.server.loop
        waiter: asyncio.Future[RemoteInfo] = loop.create_future()
        self._answer_waiter = waiter
        # an in-process host may answer before _send_sdp even returns
        self._send_sdp("offer", str(offer.description), self.cfg.dc_signaling and self.dc is not None)
        try:
            await asyncio.wait_for(waiter, self.server.config.answer_timeout)
        except (TimeoutError, SdpError, NegotiationError) as exc:
            self.neg.rollback()
            for sub in subs:
                if sub.mid is not None and sub.mid not in self.neg.mids:
                    sub.mid = None
            self._offer_failures += 1
            reason = "answer timeout" if isinstance(exc, TimeoutError) else str(exc)
            log.warning("%r: server offer failed (%s)", self, reason)
            self.server.metrics.error(self.cfg.group_id, "signaling")
            if self._offer_failures >= 3:
                self.server.close_session(self.session_id, f"signaling failed: {reason}")
            else:
                self._needs_offer = True
            return
        finally:
            self._answer_waiter = None
        self._offer_failures = 0

    def _on_client_answer(self, text: str) -> None:
        waiter = self._answer_waiter
        if waiter is None or waiter.done():
            log.info("%r: unexpected answer (no offer pending); ignored", self)
            return
        # Apply it here, not when _offer_round resumes: a client offer may arrive right behind
        # this answer (in the same read), and it is not glare once the answer is in.
        self._answer_waiter = None
        try:
            info = apply_answer(self.neg, SessionDescription.parse(text))
        except (SdpError, NegotiationError) as exc:
            waiter.set_exception(exc)
            return
        self._apply_remote_media(info)  # a sendrecv answer may carry the client's microphone
        self._attach_consumers(info)
        waiter.set_result(info)

    def _attach_consumers(self, info: RemoteInfo) -> None:
        for sub in self.subscriptions.values():
            if sub.consumer is not None or sub.mid is None:
                continue
            m = info.media_by_mid(sub.mid)
            if m is None or not m.server_sends:
                continue
            codec = m.codec(sub.track.codec)
            if codec is None:
                continue
            ext_map: dict[int, int] = {}
            sub_level = m.extension_id(AUDIO_LEVEL_URI)
            if sub.track.audio_level_id and sub_level:
                ext_map[sub.track.audio_level_id] = sub_level
            try:
                sub.consumer = self.plane.subscribe(
                    sub.track.default_layer(), self.sid, sub.out_ssrc,
                    pt_map={sub.track.payload_type: codec.payload_type}, ext_map=ext_map)
            except RouterError as exc:
                log.warning("%r: cannot forward %s: %s", self, sub.track.label, exc)
                continue
            if sub.track.kind == "video":
                self.plane.request_keyframe(sub.track.default_layer())

    # ---------------------------------------------------------------- output

    def _send_sdp(self, kind: str, sdp: str, via_dc: bool) -> None:
        if via_dc and self.dc is not None:
            self._send_dc(dcmsg.encode_sdp(kind, sdp))
        else:
            self.server.emit_signal(self, 2, json.dumps({"type": kind, "sdp": sdp}).encode())

    def _trickle_candidates(self) -> None:
        """Also trickle our candidates, as rtcd does (they are in the answer
        too; clients ignore the duplicates). rtcd never sends end-of-candidates."""
        tag = self.neg.bundle_tag or "0"
        index = self.neg.mids.index(tag) if tag in self.neg.mids else 0
        for c in self.server.candidates:
            init = format_trickle(f"candidate:{c.to_sdp()}", sdp_mid=tag, sdp_mline_index=index,
                                  username_fragment=self.transport.local_ufrag)
            self.server.emit_signal(self, 1, json.dumps({"type": "candidate", "candidate": init}).encode())

    def _send_dc(self, data: bytes | str) -> None:
        if self.dc is not None:
            self.transport.send_message(self.dc, data)

    # ---------------------------------------------------------------- transport events

    def transport_connected(self, transport: WebRtcTransport) -> None:
        self.server.metrics.connection_time(self.cfg.group_id, time.monotonic() - self.created)
        self.server.metrics.conn_state("connected")

    def transport_channel_open(self, transport: WebRtcTransport, channel: DataChannel) -> None:
        if channel.label != dcmsg.LABEL or self.dc is not None:
            return
        self.dc = channel
        self.server.metrics.dc_open_time(self.cfg.group_id, time.monotonic() - self.created)
        log.info("%r: data channel open", self)
        self.tracks_initialised()

    def transport_message(self, transport: WebRtcTransport, channel: DataChannel, data: bytes | str) -> None:
        if channel is not self.dc:
            return
        if data == dcmsg.PING:  # every client, every second: answer without decoding
            transport.send_message(channel, dcmsg.PONG)
            return
        if isinstance(data, str):
            if data == "ping":
                self._send_dc("pong")
            return
        try:
            msg = dcmsg.decode(data)
        except dcmsg.DCMessageError as exc:
            self.server.metrics.error(self.cfg.group_id, "signaling")
            log.debug("%r: bad data-channel message: %s", self, exc)
            return
        t = msg.type
        if t is DCMessageType.PING:
            self._send_dc(dcmsg.PONG)
        elif t is DCMessageType.SDP:
            self.handle_sdp(json.dumps(msg.payload), via_dc=True)
        elif t is DCMessageType.LOCK:
            self._send_dc(dcmsg.encode(DCMessageType.LOCK, self.lock.try_acquire("client")))
        elif t is DCMessageType.UNLOCK:
            self.lock.release("client")
        elif t is DCMessageType.LOSS_RATE:
            self.server.metrics.client_loss_rate(self.cfg.group_id, msg.payload)
        elif t is DCMessageType.RTT:
            self.server.metrics.client_rtt(self.cfg.group_id, msg.payload)
        elif t is DCMessageType.JITTER:
            self.server.metrics.client_jitter(self.cfg.group_id, msg.payload)

    def transport_closed(self, transport: WebRtcTransport, reason: str) -> None:
        state = "failed" if "failed" in reason or "lost" in reason or "timeout" in reason else "closed"
        self.server.metrics.conn_state(state)
        self.server.close_session(self.session_id, reason)

    # ---------------------------------------------------------------- end

    def _signaling_timeout(self) -> None:
        if self.first_offer_at is None and not self.closed:
            self.server.metrics.error(self.cfg.group_id, "signaling")
            self.server.close_session(self.session_id, "signaling timeout: no offer within "
                                      f"{self.server.config.signaling_timeout:.0f} s")

    def close(self, reason: str) -> None:
        """Release everything (called by RtcServer.close_session)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._signaling_timer.cancel()
        # Cancel, then forget: a cancelled task keeps its CancelledError, whose traceback holds
        # the task's frame and so this session; holding the task here too would make the
        # session cyclic garbage (freed only by a full collection, see service.tune_gc).
        if self._negotiator is not None and not self._negotiator.done():
            self._negotiator.cancel()
        self._negotiator = None
        if self._answer_waiter is not None and not self._answer_waiter.done():
            self._answer_waiter.cancel()
        self._answer_waiter = None
        if self.call.screen_session is self:
            self.call.screen_session = None
        for key in list(self.published):
            self._unpublish(key)
        for sub in list(self.subscriptions.values()):
            if sub.consumer is not None:
                try:
                    self.plane.unsubscribe(sub.consumer)
                except RouterError:
                    pass
        self.subscriptions.clear()
        if self.transport.state is not TransportState.CLOSED:
            self.transport.close(reason)
