"""A client that changes address and restarts ICE keeps its call.

The roaming client is assembled from independent parts: aioice (a full ICE
agent, controlling), a DTLS client endpoint, pylibsrtp, and real Opus frames
from PyAV. It publishes a tone that an aiortc participant decodes. Then it
moves to a new local socket (a new address) with new ICE credentials and
re-offers: the server answers with new credentials, ICE nominates the new
address, and the same DTLS association and SRTP keys carry on. The listener
keeps hearing the tone without any renegotiation on its side.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import time

import aioice
import av
import numpy as np
import pylibsrtp
import pytest

from aiortc_client import AiortcClient, Hub
from rtpkit import build_rtp
from switchboard.engine import dtls as dtls_mod
from switchboard.engine.certificate import generate_certificate, parse_fingerprint
from switchboard.signaling.rtc import Message, MessageType, RtcServer, SessionConfig
from switchboard.signaling.sdp import SessionDescription

pytestmark = pytest.mark.interop

SSRC = 0x5EED1234


def opus_packets(freq: float, count: int) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    out: list[bytes] = []
    for i in range(count):
        t = (np.arange(960) + i * 960) / 48000
        pcm = (0.3 * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        out.extend(bytes(p) for p in enc.encode(frame))
    return out


class RoamingClient:
    def __init__(self, server: RtcServer, session_id: str) -> None:
        self.server = server
        self.cfg = SessionConfig("default", "call1", "roamer", session_id)
        self.cert = generate_certificate()
        self.answers: asyncio.Queue[str] = asyncio.Queue()
        self.conn: aioice.Connection | None = None
        self.dtls: dtls_mod.DtlsEndpoint | None = None
        self.srtp: pylibsrtp.Session | None = None
        self.reader: asyncio.Task[None] | None = None
        self.seq = 0

    def on_message(self, msg: Message) -> None:
        if msg.type == MessageType.SDP:
            obj = json.loads(msg.data)
            if obj["type"] == "answer":
                self.answers.put_nowait(obj["sdp"])

    def send(self, mtype: int, data: bytes = b"") -> None:
        c = self.cfg
        self.server.handle_message(Message(c.group_id, c.user_id, c.session_id, c.call_id, mtype, data))

    def offer_sdp(self, conn: aioice.Connection, version: int) -> str:
        fp = self.cert.fingerprint("sha-256")
        lines = [
            "v=0", f"o=- 4242 {version} IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
            "a=msid-semantic: WMS roam",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{conn.local_username}", f"a=ice-pwd:{conn.local_password}",
            f"a=fingerprint:sha-256 {fp}", "a=setup:actpass", "a=mid:0",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=sendonly", "a=msid:roam voice0", "a=rtcp-mux", "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            f"a=ssrc:{SSRC} cname:roamer", f"a=ssrc:{SSRC} msid:roam voice0",
        ]
        return "\r\n".join(lines) + "\r\n"

    async def negotiate(self, version: int) -> None:
        conn = aioice.Connection(ice_controlling=True, use_ipv6=False)
        await conn.gather_candidates()
        self.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": self.offer_sdp(conn, version)}).encode())
        answer = SessionDescription.parse(await asyncio.wait_for(self.answers.get(), 10))
        m = answer.media[0]
        conn.remote_username, conn.remote_password = m.ice_ufrag, m.ice_pwd
        for c in m.candidates:
            if c.transport == "udp":
                await conn.add_remote_candidate(aioice.Candidate.from_sdp(c.to_sdp()))
        await conn.add_remote_candidate(None)
        await asyncio.wait_for(conn.connect(), 10)
        old = self.conn
        self.conn = conn
        if self.reader is not None:
            self.reader.cancel()
        self.reader = asyncio.ensure_future(self._read(conn))
        if old is not None:
            await old.close()
        if self.dtls is None:
            fps = [parse_fingerprint(str(f)) for f in (m.fingerprints or answer.fingerprints)]
            self.dtls = dtls_mod.DtlsEndpoint(self.cert.certificate, self.cert.private_key, is_server=False,
                                              remote_fingerprints=fps)
            self.dtls.start(time.monotonic())
            await self._flush()
            deadline = time.monotonic() + 10
            while self.srtp is None:
                assert time.monotonic() < deadline, "DTLS handshake did not complete"
                await asyncio.sleep(0.02)
                if (t := self.dtls.next_timer()) is not None and t <= time.monotonic():
                    self.dtls.handle_timer(time.monotonic())
                    await self._flush()

    async def _read(self, conn: aioice.Connection) -> None:
        while True:
            try:
                data = await conn.recv()
            except ConnectionError:
                return
            if self.dtls is not None and 20 <= data[0] <= 63:
                self.dtls.receive(data, time.monotonic())
                for ev in self.dtls.events():
                    if isinstance(ev, dtls_mod.HandshakeComplete):
                        k = ev.srtp_keys
                        profile = {"AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
                                   "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80}
                        self.srtp = pylibsrtp.Session(pylibsrtp.Policy(
                            key=k.local_key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                            srtp_profile=profile[str(k.profile_name)]))
                await self._flush()

    async def _flush(self) -> None:
        assert self.dtls is not None and self.conn is not None
        for d in self.dtls.datagrams_to_send():
            await self.conn.send(d)

    async def stream(self, payloads: list[bytes]) -> None:
        assert self.srtp is not None and self.conn is not None
        for p in payloads:
            pkt = build_rtp(ssrc=SSRC, seq=self.seq, ts=self.seq * 960, pt=111, payload=p,
                            extensions={1: bytes([0x80 | 30])})
            self.seq += 1
            await self.conn.send(self.srtp.protect(pkt))
            await asyncio.sleep(0.02)


async def test_roaming_client_restarts_ice_and_keeps_its_call(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    listener = AiortcClient(server, "listener")
    hub.clients["listener"] = listener
    await listener.join()
    roamer = RoamingClient(server, "roamer")
    orig = hub.on_message
    hub.on_message = lambda m: roamer.on_message(m) if m.session_id == "roamer" else orig(m)  # type: ignore[method-assign]
    server.on_message = hub.on_message
    server.init_session(roamer.cfg)
    await roamer.negotiate(1)
    roamer.send(MessageType.UNMUTE)
    session = server.sessions["roamer"]
    first_addr = session.transport.addr
    tid = next(iter(session.published.values())).layers[""]
    packets = opus_packets(523.0, 150)
    await roamer.stream(packets[:50])
    await asyncio.sleep(0.3)
    heard = listener.frequencies()
    assert len(heard) == 1 and abs(next(iter(heard.values())) - 523) < 10
    sub = next(iter(server.sessions["listener"].subscriptions.values()))
    consumer = sub.consumer
    forwarded = server.plane.track_stats(tid)["forwarded"]
    offers_before = server.sessions["listener"].neg.pending_offer, len(server.sessions["listener"].neg.mids)

    await roamer.negotiate(2)  # new socket, new ICE credentials: an ICE restart from a new address
    assert session.transport.addr != first_addr, "the session was rebound to the new address"
    assert server.sessions["roamer"] is session and session.transport.state.value == "connected"
    frames_before = sum(len(v) for v in listener.audio.values())
    await roamer.stream(packets[50:150])
    await asyncio.sleep(0.3)
    assert server.plane.track_stats(tid)["forwarded"] >= forwarded + 95
    assert sum(len(v) for v in listener.audio.values()) > frames_before + 50
    assert abs(next(iter(listener.frequencies().values())) - 523) < 10
    # same track, same subscription, no renegotiation towards the listener
    assert next(iter(session.published.values())).layers[""] == tid
    assert next(iter(server.sessions["listener"].subscriptions.values())).consumer == consumer
    assert (server.sessions["listener"].neg.pending_offer, len(server.sessions["listener"].neg.mids)) == offers_before
    assert not any(s == "roamer" for s, _ in hub.closed)
    await roamer.conn.close()  # type: ignore[union-attr]
