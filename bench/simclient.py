"""A simulated WebRTC participant's control plane, for the calls benchmark.

- RFC 8445 (ICE; we are the controlling agent against an ICE-lite server) and RFC 7675
  (consent freshness): https://www.rfc-editor.org/rfc/rfc8445, https://www.rfc-editor.org/rfc/rfc7675
- RFC 8489 (STUN: USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY,
  FINGERPRINT): https://www.rfc-editor.org/rfc/rfc8489
- RFC 5763/5764 (DTLS-SRTP; we answer the server as the DTLS client, ``a=setup:active``)
- RFC 8261, RFC 8831/8832 (SCTP over DTLS, data channels, DCEP)
- RFC 8829 (JSEP: Unified Plan offers/answers, BUNDLE, rtcp-mux), RFC 8853 (simulcast rids)
- Mattermost ``RTCPeer``'s ``calls-dc`` protocol (``signaling/dcmsg.py``): a msgpack Ping every
  second, SDP over the data channel when the host asked for it.

Why it looks like this: a sizing benchmark must make the SFU do what real browsers make it
do, per connection, or the per-connection costs (the 1000 one-to-one calls row) are not
measured. So every simulated user negotiates exactly like the Calls web app's ``RTCPeer``: it
joins through the host API, makes the first offer (the ``calls-dc`` data channel, plus its
microphone when it will unmute, plus its screen after ``ScreenOn``), runs ICE with consent
checks, the DTLS handshake and SCTP, opens ``calls-dc``, pings on it every second, answers the
server's renegotiations (over the WebSocket or the data channel) and unmutes with rtc message 4.
The per-packet work (SRTP, pacing, RTCP, receive accounting) is native: the ``LoadPlane`` in
``switchboard._native.core``. This module only uses the product's sans-I/O building blocks
(``engine.stun``, ``engine.dtls``, ``engine.sctp``, ``engine.datachannel``, ``signaling.sdp``,
``signaling.dcmsg``) and moves their bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadplane import LoadPlaneApi
from switchboard._native.core import SrtpContext
from switchboard.engine import dtls as dtls_mod
from switchboard.engine import sctp as sctp_mod
from switchboard.engine import stun
from switchboard.engine.certificate import LocalCertificate
from switchboard.engine.datachannel import (
    ChannelMessage,
    ChannelOpened,
    DataChannel,
    DataChannelError,
    DataChannelManager,
)
from switchboard.signaling import dcmsg
from switchboard.signaling.dcmsg import DCMessageType
from switchboard.signaling.sdp import (
    Connection,
    Fingerprint,
    Group,
    HeaderExtension,
    MediaDescription,
    Msid,
    MsidSemantic,
    Origin,
    Rid,
    RtcpFeedback,
    RtpCodec,
    SdpError,
    SessionDescription,
    Simulcast,
    Ssrc,
)

log = logging.getLogger("bench.simclient")

#: rtc message types (rtcd ``service/rtc/msg.go``).
RTC_ICE, RTC_SDP, RTC_MUTE, RTC_UNMUTE, RTC_SCREEN_ON = 1, 2, 3, 4, 5

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
RRID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

#: Chrome's extension ids, as in its offers (tests/data/sdp/chrome_av_simulcast_offer.sdp).
AUDIO_EXTMAPS = ((1, AUDIO_LEVEL_URI), (3, TWCC_URI), (4, MID_URI))
VIDEO_EXTMAPS = ((3, TWCC_URI), (4, MID_URI), (10, RID_URI), (11, RRID_URI))

KIND_AUDIO, KIND_VIDEO = 0, 1
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not export it
_SO_RCVBUFFORCE, _SO_SNDBUFFORCE = 33, 32
_PING = dcmsg.encode(DCMessageType.PING)
_PRIORITY = struct.pack("!I", (110 << 24) | (65535 << 8) | 255)  # peer-reflexive, RFC 8445 5.1.2.1


class SimClientError(Exception):
    """A simulated participant could not join; the message says at which step."""


class IceFailed(SimClientError):
    pass


class DtlsFailed(SimClientError):
    pass


class SignalingFailed(SimClientError):
    pass


@dataclass(frozen=True)
class MediaProfile:
    """What every simulated participant sends (the rest of its role is per user)."""

    audio_payload: int = 160
    """Opus payload bytes per 20 ms packet (160 B ~ 64 kbit/s; SRTP packets of ~200 B)."""
    video_fps: int = 25
    """Screen frames per second (a burst of ``video_packets`` packets each)."""
    video_packets: int = 4
    """Packets per frame: 25 x 4 = 100 packets/s."""
    video_payload: int = 1150
    """Bytes per video packet payload (~1200-byte SRTP packets, ~1 Mbit/s)."""
    simulcast: bool = False
    """Send the screen as the RTCPeer simulcast pair l (5 fps, 500 kbit/s) and h (20 fps,
    2.5 Mbit/s) instead of one ~1 Mbit/s stream."""
    ping_interval: float = 1.0
    """calls-dc Ping period (RTCPeer: 1 s)."""
    consent_interval: float = 2.5
    """STUN consent checks on the selected pair (Chrome: every ~2.5 s when stable)."""
    dc_signaling: bool = False
    """Ask the host for SDP over the data channel once it is open (RTCPeer ``dcSignaling``)."""


@dataclass
class JoinTimes:
    """Monotonic timestamps of one participant's join, for the join-time percentiles."""

    join_sent: float = 0.0
    answer: float | None = None
    ice: float | None = None
    dtls: float | None = None
    dc_open: float | None = None
    failed: str | None = None


def _udp_socket(buffer_bytes: int) -> socket.socket:
    """A UDP socket with ``buffer_bytes`` of buffers (SO_*BUFFORCE when permitted) and kernel
    receive timestamps, as the LoadPlane wants it; the caller binds it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for force, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, buffer_bytes)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def open_user_socket(host: str = "127.0.0.1", buffer_bytes: int = 1 << 20) -> socket.socket:
    """A non-blocking UDP socket of one user (LoadPlane.add_user without src_ip)."""
    sock = _udp_socket(buffer_bytes)
    try:
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def open_shared_socket(buffer_bytes: int = 16 << 20) -> socket.socket:
    """A wildcard-bound UDP socket that carries many users, each with its own
    127.x.y.z address chosen per datagram (IP_PKTINFO), for LoadPlane.add_shared_socket.
    Wildcard because it must receive what the SFU sends to any of those addresses."""
    sock = _udp_socket(buffer_bytes)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind(("0.0.0.0", 0))
    except BaseException:
        sock.close()
        raise
    return sock


def shared_user_ip(index: int) -> str:
    """The loopback source address of user ``index`` on shared sockets (127.2.0.1, ...)."""
    n = index + 1
    if n >= 1 << 24:
        raise ValueError("too many users for 127.2.0.0/8 addresses")
    return f"127.{2 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def _ssrc() -> int:
    return int.from_bytes(os.urandom(4), "big") or 1


class SimClient:
    """One participant. Created by the load runner, which routes to it the host's rtc
    messages (``on_rtc``) and the plane's STUN/DTLS datagrams (``on_datagram``) and sends
    what it asks through ``send_rtc``."""

    def __init__(
        self,
        *,
        plane: LoadPlaneApi,
        sock: socket.socket,
        uid: int,
        session_id: str,
        user_id: str,
        call_id: str,
        certificate: LocalCertificate,
        profile: MediaProfile,
        send_rtc: Callable[[int, bytes], None],
        unmuted: bool,
        sharer: bool,
        on_ready: Callable[[SimClient], None] | None = None,
        src_ip: str | None = None,
    ) -> None:
        self.plane = plane
        self.sock = sock
        self.src_ip = src_ip
        """Our address on a shared socket (``open_shared_socket``); None: ``sock`` is ours alone."""
        self._pktinfo = (
            [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, socket.inet_aton(src_ip), bytes(4)))]
            if src_ip else [])
        self.uid = uid
        self.session_id = session_id
        self.user_id = user_id
        self.call_id = call_id
        self.certificate = certificate
        self.profile = profile
        self.send_rtc = send_rtc
        self.unmuted = unmuted
        self.sharer = sharer
        self.on_ready = on_ready
        self.loop = asyncio.get_running_loop()
        self.times = JoinTimes()
        self.local_ufrag = secrets.token_hex(4)
        self.local_pwd = secrets.token_hex(12)
        self._tiebreaker = os.urandom(8)
        self.remote_ufrag = ""
        self.remote_pwd = ""
        self.server_addr: tuple[str, int] | None = None
        self.stream_id = secrets.token_hex(8)
        self.screen_stream_id = secrets.token_hex(8)
        self.dtls: dtls_mod.DtlsEndpoint | None = None
        self.sctp: sctp_mod.SctpAssociation | None = None
        self.channels: DataChannelManager | None = None
        self.dc: DataChannel | None = None
        self.ice_done = False
        self.closed = False
        self._pending_tx: dict[bytes, float] = {}
        self._ice_tries = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._ice_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._consent_timer: asyncio.TimerHandle | None = None
        self._ping_sent: float | None = None
        self._sdp_version = 1
        self._session_version = 1
        self.rtt_samples: list[float] = []
        self.control_sent = 0                 # STUN and DTLS datagrams sent from Python
        self.consent_ok = 0
        self.consent_sent = 0
        self.offers_answered = 0
        self.pings_sent = 0
        self.pongs = 0
        self.senders: list[int] = []          # LoadPlane sender indexes
        self._audio_ssrc = _ssrc()
        self._video_ssrc = _ssrc()
        self._own_sections: dict[str, MediaDescription] = {}

    # ---------------------------------------------------------------- join

    def start(self) -> None:
        """Announce the screen (if sharing) and send the first offer."""
        self.times.join_sent = time.monotonic()
        if self.sharer:
            self.send_rtc(RTC_SCREEN_ON, json.dumps({"screenStreamID": self.screen_stream_id}).encode())
        offer = self._first_offer()
        self.send_rtc(RTC_SDP, json.dumps({"type": "offer", "sdp": str(offer)}).encode())

    def _transport_attrs(self, m: MediaDescription) -> None:
        m.ice_ufrag = self.local_ufrag
        m.ice_pwd = self.local_pwd
        m.ice_options = ["trickle"]
        m.fingerprints = [Fingerprint("sha-256", self.certificate.fingerprint("sha-256"))]

    def _first_offer(self) -> SessionDescription:
        media: list[MediaDescription] = []
        dc = MediaDescription(kind="application", proto="UDP/DTLS/SCTP", formats=["webrtc-datachannel"],
                              connection=Connection(), mid="0", sctp_port=5000, max_message_size=262144)
        media.append(dc)
        if self.unmuted:
            audio = MediaDescription(
                kind="audio", formats=["111"], connection=Connection(), mid=str(len(media)),
                direction="sendonly", rtcp_mux=True, rtcp_rsize=True,
                extmaps=[HeaderExtension(i, u) for i, u in AUDIO_EXTMAPS],
                codecs=[RtpCodec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1",
                                 (RtcpFeedback("transport-cc"),))],
            )
            track = secrets.token_hex(8)
            audio.msids = [Msid(self.stream_id, track)]
            audio.ssrcs = [Ssrc(self._audio_ssrc, cname=self.user_id, msid=f"{self.stream_id} {track}")]
            media.append(audio)
        if self.sharer:
            video = MediaDescription(
                kind="video", formats=["96"], connection=Connection(), mid=str(len(media)),
                direction="sendonly", rtcp_mux=True, rtcp_rsize=True,
                extmaps=[HeaderExtension(i, u) for i, u in VIDEO_EXTMAPS],
                codecs=[RtpCodec(96, "VP8", 90000, None, None, (
                    RtcpFeedback("goog-remb"), RtcpFeedback("transport-cc"), RtcpFeedback("ccm", "fir"),
                    RtcpFeedback("nack"), RtcpFeedback("nack", "pli")))],
            )
            track = secrets.token_hex(8)
            video.msids = [Msid(self.screen_stream_id, track)]
            if self.profile.simulcast:
                video.rids = [Rid("l", "send"), Rid("h", "send")]
                video.simulcast = Simulcast(send=(("l",), ("h",)))
            else:
                video.ssrcs = [Ssrc(self._video_ssrc, cname=self.user_id,
                                    msid=f"{self.screen_stream_id} {track}")]
            media.append(video)
        for m in media:
            self._transport_attrs(m)
            m.setup = "actpass"
            if m.kind != "application":
                self._own_sections[str(m.mid)] = m
        return SessionDescription(
            origin=Origin("-", int.from_bytes(os.urandom(7), "big"), self._next_version()),
            groups=[Group("BUNDLE", tuple(str(m.mid) for m in media))],
            msid_semantic=MsidSemantic("WMS", (self.stream_id,)),
            media=media,
        )

    def _next_version(self) -> int:
        self._session_version += 1
        return self._session_version

    # ---------------------------------------------------------------- host messages

    def on_rtc(self, mtype: int, data: bytes) -> None:
        """An rtc message from the SFU, relayed by the host: SDP (answer or offer) or ICE."""
        if self.closed:
            return
        if mtype == RTC_SDP:
            try:
                obj = json.loads(data)
                kind, text = obj["type"], obj["sdp"]
            except (ValueError, KeyError, TypeError) as exc:
                self.fail(SignalingFailed(f"unreadable SDP message from the SFU: {exc}"))
                return
            if kind == "answer":
                self._on_answer(text)
            elif kind == "offer":
                self._on_offer(text, via_dc=False)
        # rtc ICE (trickled server candidates): the answer already lists them

    def _on_answer(self, text: str) -> None:
        if self.times.answer is not None:
            return
        self.times.answer = time.monotonic()
        try:
            answer = SessionDescription.parse(text)
        except SdpError as exc:
            self.fail(SignalingFailed(f"the SFU's answer does not parse: {exc}"))
            return
        media = answer.media[0] if answer.media else None
        if media is None:
            self.fail(SignalingFailed("the SFU's answer has no m-section"))
            return
        self.remote_ufrag = media.ice_ufrag or answer.ice_ufrag or ""
        self.remote_pwd = media.ice_pwd or answer.ice_pwd or ""
        fps = media.fingerprints or answer.fingerprints
        cands = [c for m in answer.media for c in m.candidates if c.transport.lower() == "udp" and ":" not in c.address]
        if not self.remote_ufrag or not self.remote_pwd or not fps or not cands:
            self.fail(SignalingFailed("the SFU's answer lacks ICE credentials, a fingerprint or a UDP candidate"))
            return
        if (media.setup or answer.setup) not in (None, "passive"):
            self.fail(SignalingFailed(f"the SFU answered a=setup:{media.setup}; expected passive"))
            return
        self.server_addr = (cands[0].address, cands[0].port)
        try:
            self.dtls = dtls_mod.DtlsEndpoint(
                self.certificate.certificate, self.certificate.private_key, is_server=False,
                remote_fingerprints=[(f.algorithm, f.value) for f in fps])
        except dtls_mod.DtlsError as exc:
            self.fail(DtlsFailed(f"cannot verify the SFU's fingerprint: {exc}"))
            return
        self._configure_media(answer)
        self._ice_check()

    def _configure_media(self, answer: SessionDescription) -> None:
        """Create this user's senders from what the answer accepted (ids it kept)."""
        prof = self.profile
        twcc_out = 0
        for m in answer.media:
            own = self._own_sections.get(str(m.mid))
            if own is None or m.rejected:
                continue
            ids = {e.uri: e.id for e in m.extmaps}
            twcc_out = twcc_out or ids.get(TWCC_URI, 0)
            mid_id = ids.get(MID_URI, 0)
            pt = m.codecs[0].payload_type if m.codecs else own.codecs[0].payload_type
            if m.kind == "audio":
                self.senders.append(self.plane.add_sender(
                    self.uid, self._audio_ssrc, KIND_AUDIO, pt, 48000, 0.02, 1, prof.audio_payload,
                    audio_level_id=ids.get(AUDIO_LEVEL_URI, 0), mid_id=mid_id, mid=str(m.mid).encode()))
            elif m.kind == "video":
                rid_id = ids.get(RID_URI, 0)
                if prof.simulcast:
                    for rid, fps, per_frame in (("l", 5, 10), ("h", 20, 12)):
                        self.senders.append(self.plane.add_sender(
                            self.uid, _ssrc(), KIND_VIDEO, pt, 90000, 1.0 / fps, per_frame, prof.video_payload,
                            mid_id=mid_id, mid=str(m.mid).encode(), rid_id=rid_id, rid=rid.encode(),
                            nack_ring=True))
                else:
                    self.senders.append(self.plane.add_sender(
                        self.uid, self._video_ssrc, KIND_VIDEO, pt, 90000, 1.0 / prof.video_fps,
                        prof.video_packets, prof.video_payload, mid_id=mid_id, mid=str(m.mid).encode(),
                        nack_ring=True))
        if twcc_out:
            self.plane.set_user_extensions(self.uid, twcc_out=twcc_out)

    # ---------------------------------------------------------------- ICE

    def _binding_request(self, use_candidate: bool) -> tuple[bytes, bytes]:
        attrs = [
            (stun.Attr.USERNAME, f"{self.remote_ufrag}:{self.local_ufrag}".encode()),
            (stun.Attr.PRIORITY, _PRIORITY),
            (stun.Attr.ICE_CONTROLLING, self._tiebreaker),
        ]
        if use_candidate:
            attrs.append((stun.Attr.USE_CANDIDATE, b""))
        msg = stun.StunMessage(stun.Method.BINDING, stun.StunClass.REQUEST, attributes=attrs)
        data = msg.encode(integrity_key=self.remote_pwd.encode(), fingerprint=True)
        return msg.transaction_id, data

    def _ice_check(self) -> None:
        self._ice_timer = None
        if self.closed or self.ice_done:
            return
        if self._ice_tries >= 8:
            self.fail(IceFailed(f"no answer to {self._ice_tries} STUN binding requests from {self.server_addr}"))
            return
        self._ice_tries += 1
        tid, data = self._binding_request(use_candidate=True)
        self._pending_tx[tid] = time.monotonic()
        assert self.server_addr is not None
        self._sendto(data)
        self._ice_timer = self.loop.call_later(min(0.05 * 2 ** self._ice_tries, 1.6), self._ice_check)

    def _consent(self) -> None:
        self._consent_timer = None
        if self.closed:
            return
        tid, data = self._binding_request(use_candidate=False)
        if len(self._pending_tx) > 16:
            self._pending_tx.clear()
        self._pending_tx[tid] = time.monotonic()
        self.consent_sent += 1
        self._send(data)
        jitter = 0.8 + 0.4 * (os.urandom(1)[0] / 255)
        self._consent_timer = self.loop.call_later(self.profile.consent_interval * jitter, self._consent)

    def on_datagram(self, kind: int, data: bytes) -> None:
        """A STUN (kind 1) or DTLS (kind 2) datagram the plane received for this user."""
        if self.closed:
            return
        if kind == 1:
            self._on_stun(data)
        elif self.dtls is not None:
            self.dtls.receive(data, time.monotonic())
            self._pump()

    def _on_stun(self, data: bytes) -> None:
        try:
            msg = stun.parse_message(data)
        except stun.StunError:
            return
        if msg.msg_class != stun.StunClass.SUCCESS or msg.transaction_id not in self._pending_tx:
            return
        del self._pending_tx[msg.transaction_id]
        if not msg.check_integrity(self.remote_pwd.encode()):
            return
        if self.ice_done:
            self.consent_ok += 1
            return
        self.ice_done = True
        self.times.ice = time.monotonic()
        if self._ice_timer is not None:
            self._ice_timer.cancel()
            self._ice_timer = None
        assert self.server_addr is not None
        if self.src_ip:
            self.plane.set_user_peer(self.uid, *self.server_addr)
        else:
            self.sock.connect(self.server_addr)
        assert self.dtls is not None
        self.dtls.start(time.monotonic())
        self._pump()
        self._consent_timer = self.loop.call_later(self.profile.consent_interval * (0.5 + os.urandom(1)[0] / 255),
                                                   self._consent)

    def _sendto(self, data: bytes) -> None:
        assert self.server_addr is not None
        self.control_sent += 1
        try:
            if self._pktinfo:
                self.sock.sendmsg([data], self._pktinfo, 0, self.server_addr)
            else:
                self.sock.sendto(data, self.server_addr)
        except OSError as exc:
            log.debug("user %d: send failed: %s", self.uid, exc)

    def _send(self, data: bytes) -> None:
        if self._pktinfo:
            self._sendto(data)
            return
        self.control_sent += 1
        try:
            self.sock.send(data)
        except OSError as exc:
            log.debug("user %d: send failed: %s", self.uid, exc)

    # ---------------------------------------------------------------- DTLS, SCTP, data channel

    def _pump(self) -> None:
        dtls = self.dtls
        if dtls is None or self.closed:
            return
        now = time.monotonic()
        for _ in range(8):
            progressed = False
            for event in dtls.events():
                progressed = True
                if isinstance(event, dtls_mod.HandshakeComplete):
                    self._on_keys(event.srtp_keys, now)
                elif isinstance(event, dtls_mod.ApplicationData):
                    if self.sctp is not None:
                        self.sctp.receive(event.data, now)
                elif isinstance(event, dtls_mod.Failed):
                    self.fail(DtlsFailed(f"DTLS failed: {event.error}"))
                    return
                elif isinstance(event, dtls_mod.Closed):
                    self.fail(DtlsFailed(f"DTLS closed by the SFU ({event.reason})"))
                    return
            if self.sctp is not None and self.channels is not None:
                for packet in self.sctp.datagrams_to_send(now):
                    try:
                        dtls.send_application_data(packet)
                    except dtls_mod.DtlsError:
                        pass
                for ev in self.channels.events(now):
                    progressed = True
                    if isinstance(ev, sctp_mod.Connected):
                        # RTCPeer creates calls-dc at once; DCEP goes out when SCTP is up
                        self.dc = self.channels.open_channel(dcmsg.LABEL, now=now)
                    elif isinstance(ev, ChannelOpened):
                        self._on_channel_open(ev.channel)
                    elif isinstance(ev, ChannelMessage):
                        self._on_channel_message(ev.data)
                    elif isinstance(ev, sctp_mod.Closed):
                        self.fail(SignalingFailed(f"SCTP closed ({ev.reason})"))
                        return
            for datagram in dtls.datagrams_to_send():
                self._send(datagram)
            if not progressed:
                break
        self._schedule()

    def _schedule(self) -> None:
        """One timer handle per participant for DTLS and SCTP. A handle that fires early is
        cheaper than cancelling and re-creating one on every packet (SCTP moves its
        deadlines on each SACK), so only an earlier deadline replaces the pending handle."""
        deadlines = []
        if self.dtls is not None and (t := self.dtls.next_timer()) is not None:
            deadlines.append(t)
        if self.sctp is not None and (t := self.sctp.next_timer()) is not None:
            deadlines.append(t)
        at = min(deadlines, default=None)
        if at is None or (self._timer_at is not None and self._timer_at <= at):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.closed:
            return
        now = time.monotonic()
        if self.dtls is not None and (t := self.dtls.next_timer()) is not None and t <= now:
            self.dtls.handle_timer(now)
        if self.sctp is not None and (t := self.sctp.next_timer()) is not None and t <= now:
            self.sctp.handle_timer(now)
        self._pump()

    def _on_keys(self, keys: dtls_mod.SrtpKeys, now: float) -> None:
        self.times.dtls = now
        profile = str(keys.profile_name)
        self.plane.set_user_keys(self.uid, SrtpContext(profile, keys.remote_key_salt, False),
                                 SrtpContext(profile, keys.local_key_salt, True, 512))
        self.sctp = sctp_mod.SctpAssociation(is_client=True)
        self.channels = DataChannelManager(self.sctp, dtls_is_server=False)
        self.sctp.start(now)

    def _on_channel_open(self, channel: DataChannel) -> None:
        if channel is not self.dc or self.times.dc_open is not None:
            return
        self.times.dc_open = time.monotonic()
        if self.unmuted:
            self.send_rtc(RTC_UNMUTE, b"")
        for sidx in self.senders:
            self.plane.set_sender_active(sidx, True)
        self._ping_timer = self.loop.call_later(self.profile.ping_interval * os.urandom(1)[0] / 255, self._ping)
        if self.on_ready is not None:
            self.on_ready(self)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.closed:
            return
        self._send_dc(_PING)
        self._ping_sent = time.monotonic()
        self.pings_sent += 1
        self._ping_timer = self.loop.call_later(self.profile.ping_interval, self._ping)

    def _send_dc(self, data: bytes | str) -> None:
        if self.channels is None or self.dc is None:
            return
        try:
            self.channels.send(self.dc, data, time.monotonic())
        except DataChannelError:
            return
        self._pump()

    def _on_channel_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            return
        try:
            msg = dcmsg.decode(data)
        except dcmsg.DCMessageError:
            return
        if msg.type is DCMessageType.PONG:
            self.pongs += 1
            if self._ping_sent is not None:
                self.rtt_samples.append(time.monotonic() - self._ping_sent)
                if len(self.rtt_samples) > 64:
                    del self.rtt_samples[:32]
                self._ping_sent = None
        elif msg.type is DCMessageType.SDP and msg.payload.get("type") == "offer":
            self._on_offer(msg.payload["sdp"], via_dc=True)

    # ---------------------------------------------------------------- server offers

    def _on_offer(self, text: str, *, via_dc: bool) -> None:
        try:
            offer = SessionDescription.parse(text)
            answer = self.answer_for(offer)
        except (SdpError, SignalingFailed) as exc:
            self.fail(SignalingFailed(f"cannot answer the SFU's offer: {exc}"))
            return
        self.offers_answered += 1
        twcc_in = 0
        for m in offer.media:
            if m.kind in ("audio", "video") and m.direction in ("sendonly", "sendrecv") and not m.rejected:
                for e in m.extmaps:
                    if e.uri == TWCC_URI:
                        twcc_in = e.id
        if twcc_in:
            self.plane.set_user_extensions(self.uid, twcc_out=self._twcc_out(), twcc_in=twcc_in)
        body = str(answer)
        if via_dc:
            self._send_dc(dcmsg.encode_sdp("answer", body))
        else:
            self.send_rtc(RTC_SDP, json.dumps({"type": "answer", "sdp": body}).encode())

    def _twcc_out(self) -> int:
        for m in self._own_sections.values():
            for e in m.extmaps:
                if e.uri == TWCC_URI:
                    return e.id
        return 0

    def answer_for(self, offer: SessionDescription) -> SessionDescription:
        """Answer a server offer: our own sections stay sendonly as first offered, the
        server's sendonly sections become recvonly, everything bundled on our transport."""
        media: list[MediaDescription] = []
        accepted: list[str] = []
        for om in offer.media:
            mid = str(om.mid)
            if om.kind == "application":
                am = MediaDescription(kind="application", proto=om.proto, formats=list(om.formats),
                                      connection=Connection(), mid=mid, sctp_port=om.sctp_port or 5000,
                                      max_message_size=262144)
            elif om.rejected or not om.codecs:
                am = MediaDescription(kind=om.kind, port=0, proto=om.proto, formats=list(om.formats),
                                      connection=Connection(), mid=mid, direction="inactive",
                                      codecs=list(om.codecs[:1]))
            else:
                own = self._own_sections.get(mid)
                if own is not None:
                    direction = "sendonly" if om.effective_direction in ("recvonly", "sendrecv") else "inactive"
                elif om.effective_direction in ("sendonly", "sendrecv"):
                    direction = "recvonly"
                else:
                    direction = "inactive"
                codec = om.codecs[0]
                am = MediaDescription(kind=om.kind, proto=om.proto, formats=[str(codec.payload_type)],
                                      connection=Connection(), mid=mid, direction=direction,
                                      codecs=[codec], extmaps=list(om.extmaps), rtcp_mux=True,
                                      rtcp_rsize=om.rtcp_rsize)
                if own is not None and direction == "sendonly":
                    am.msids = list(own.msids)
                    am.ssrcs = list(own.ssrcs)
                    if own.rids:
                        am.rids = [Rid(r.id, "send") for r in own.rids]
                        am.simulcast = own.simulcast
            self._transport_attrs(am)
            am.setup = "active"
            media.append(am)
            if not am.rejected:
                accepted.append(mid)
        return SessionDescription(
            origin=Origin("-", offer.origin.session_id ^ 1, self._next_version()),
            groups=[Group("BUNDLE", tuple(accepted))],
            msid_semantic=MsidSemantic("WMS", (self.stream_id,)),
            media=media,
        )

    # ---------------------------------------------------------------- end

    @property
    def ready(self) -> bool:
        return self.times.dc_open is not None

    def fail(self, exc: SimClientError) -> None:
        if self.times.failed is None:
            self.times.failed = str(exc)
            log.info("user %d (%s): %s", self.uid, self.session_id, exc)
        self.close()

    def close(self) -> None:
        """Stop timers and media; send DTLS close_notify if connected."""
        if self.closed:
            return
        self.closed = True
        for sidx in self.senders:
            self.plane.set_sender_active(sidx, False)
        for handle in (self._timer, self._ice_timer, self._ping_timer, self._consent_timer):
            if handle is not None:
                handle.cancel()
        if self.dtls is not None and self.times.dtls is not None:
            self.dtls.close()
            for datagram in self.dtls.datagrams_to_send():
                self._send(datagram)

    def summary(self) -> dict[str, Any]:
        return {"uid": self.uid, "session": self.session_id, "failed": self.times.failed,
                "ready": self.ready, "pings": self.pings_sent, "pongs": self.pongs,
                "consent_sent": self.consent_sent, "consent_ok": self.consent_ok,
                "offers_answered": self.offers_answered}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a non-empty list, else None."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


__all__ = [
    "DtlsFailed",
    "IceFailed",
    "JoinTimes",
    "MediaProfile",
    "SignalingFailed",
    "SimClient",
    "SimClientError",
    "open_shared_socket",
    "open_user_socket",
    "shared_user_ip",
    "percentile",
]
