"""Passive ICE-TCP (RFC 6544, RFC 4571 framing) on the media port number:
a client whose UDP is blocked connects over TCP, and its media takes the same
path as UDP media (the router forwards it to a UDP listener, and forwards
the listener's media back over the TCP connection).

The TCP client is assembled from parts: an asyncio TCP connection, STUN
binding requests built with our STUN codec (checked by the server's ICE-lite
code), a DTLS client endpoint, pylibsrtp, and Opus frames from PyAV; the
other participant is aiortc over UDP.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time

import pylibsrtp
import pytest

from aiortc_client import AiortcClient, Hub, ToneTrack
from rtpkit import build_rtp, rtp_fields
from switchboard.engine import dtls as dtls_mod
from switchboard.engine import stun
from switchboard.engine.certificate import generate_certificate, parse_fingerprint
from switchboard.engine.ice import TcpFramer, frame_tcp
from switchboard.signaling.rtc import Message, MessageType, RtcServer, SessionConfig
from switchboard.signaling.sdp import Fingerprint, SessionDescription
from test_ice_restart import opus_packets

pytestmark = pytest.mark.interop

SSRC = 0x7C9ABC01


class TcpClient:
    def __init__(self, server: RtcServer, session_id: str) -> None:
        self.server = server
        self.cfg = SessionConfig("default", "call1", "tcpuser", session_id)
        self.cert = generate_certificate()
        self.ufrag, self.pwd = "tcpC", "tcp-client-password-0123456789"
        self.answers: asyncio.Queue[str] = asyncio.Queue()
        self.framer = TcpFramer()
        self.dtls: dtls_mod.DtlsEndpoint | None = None
        self.tx: pylibsrtp.Session | None = None
        self.rx: pylibsrtp.Session | None = None
        self.received: list[bytes] = []
        self.stun_ok = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def on_message(self, msg: Message) -> None:
        if msg.type == MessageType.SDP:
            obj = json.loads(msg.data)
            if obj["type"] == "answer":
                self.answers.put_nowait(obj["sdp"])
            else:
                self.send(MessageType.SDP, json.dumps({"type": "answer", "sdp": self.answer(obj["sdp"])}).encode())

    def answer(self, offer_text: str) -> str:
        """Answer a server offer: receive what it sends, keep sending our voice."""
        desc = SessionDescription.parse(offer_text)
        desc.ice_lite = False
        for m in desc.media:
            m.ice_ufrag, m.ice_pwd, m.setup = self.ufrag, self.pwd, "active"
            m.fingerprints = [Fingerprint("sha-256", self.cert.fingerprint("sha-256"))]
            m.candidates, m.end_of_candidates = [], False
            if m.kind == "application":
                continue
            m.direction = {"sendonly": "recvonly", "recvonly": "sendonly", "sendrecv": "recvonly"}.get(
                m.direction or "", m.direction)
            if m.mid != "0":
                m.ssrcs, m.msids = [], []
        return str(desc)

    def send(self, mtype: int, data: bytes = b"") -> None:
        c = self.cfg
        self.server.handle_message(Message(c.group_id, c.user_id, c.session_id, c.call_id, mtype, data))

    def offer(self) -> str:
        fp = self.cert.fingerprint("sha-256")
        return "\r\n".join([
            "v=0", "o=- 77 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0", "a=msid-semantic: WMS tcp",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{self.ufrag}", f"a=ice-pwd:{self.pwd}", f"a=fingerprint:sha-256 {fp}",
            "a=setup:actpass", "a=mid:0", "a=sendrecv", "a=msid:tcp voice0", "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2", f"a=ssrc:{SSRC} cname:tcpuser", "",
        ])

    async def connect(self) -> None:
        self.server.init_session(self.cfg)
        self.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": self.offer()}).encode())
        answer = SessionDescription.parse(await asyncio.wait_for(self.answers.get(), 10))
        m = answer.media[0]
        tcp = [c for c in m.candidates if c.transport == "tcp" and c.tcptype == "passive"]
        assert tcp, "the server offers a passive ICE-TCP candidate"
        self.reader, self.writer = await asyncio.open_connection(tcp[0].address, tcp[0].port)
        asyncio.ensure_future(self._read())
        req = stun.StunMessage(stun.Method.BINDING, stun.StunClass.REQUEST)
        req.add(stun.Attr.USERNAME, f"{m.ice_ufrag}:{self.ufrag}".encode())
        req.add(stun.Attr.PRIORITY, struct.pack("!I", 1845501695))
        req.add(stun.Attr.ICE_CONTROLLING, os.urandom(8))
        req.add(stun.Attr.USE_CANDIDATE)
        self.writer.write(frame_tcp(req.encode(integrity_key=m.ice_pwd.encode(), fingerprint=True)))
        await asyncio.wait_for(self.stun_ok.wait(), 5)
        fps = [parse_fingerprint(str(f)) for f in (m.fingerprints or answer.fingerprints)]
        self.dtls = dtls_mod.DtlsEndpoint(self.cert.certificate, self.cert.private_key, is_server=False,
                                          remote_fingerprints=fps)
        self.dtls.start(time.monotonic())
        self._flush()
        deadline = time.monotonic() + 10
        while self.tx is None:
            assert time.monotonic() < deadline, "DTLS over ICE-TCP did not complete"
            await asyncio.sleep(0.02)

    async def _read(self) -> None:
        assert self.reader is not None
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            for frame in self.framer.feed(data):
                self._on_frame(frame)

    def _on_frame(self, frame: bytes) -> None:
        if frame[0] <= 3:
            msg = stun.parse_message(frame)
            if msg.msg_class == stun.StunClass.SUCCESS:
                self.stun_ok.set()
        elif 20 <= frame[0] <= 63 and self.dtls is not None:
            self.dtls.receive(frame, time.monotonic())
            for ev in self.dtls.events():
                if isinstance(ev, dtls_mod.HandshakeComplete):
                    k = ev.srtp_keys
                    prof = {"AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
                            "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80}
                    profile = prof[str(k.profile_name)]
                    self.tx = pylibsrtp.Session(pylibsrtp.Policy(
                        key=k.local_key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
                    self.rx = pylibsrtp.Session(pylibsrtp.Policy(
                        key=k.remote_key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
            self._flush()
        elif 128 <= frame[0] <= 191 and self.rx is not None:
            if not 192 <= frame[1] <= 223:
                self.received.append(self.rx.unprotect(frame))

    def _flush(self) -> None:
        assert self.dtls is not None and self.writer is not None
        for d in self.dtls.datagrams_to_send():
            self.writer.write(frame_tcp(d))

    async def stream(self, payloads: list[bytes]) -> None:
        assert self.tx is not None and self.writer is not None
        for i, p in enumerate(payloads):
            self.writer.write(frame_tcp(self.tx.protect(build_rtp(ssrc=SSRC, seq=i, ts=i * 960, pt=111, payload=p))))
            await asyncio.sleep(0.02)


async def test_media_over_ice_tcp_both_ways(rtc: tuple[RtcServer, Hub]) -> None:
    server, hub = rtc
    udp = AiortcClient(server, "udp")
    hub.clients["udp"] = udp
    await udp.join(ToneTrack(740))
    udp.send(MessageType.UNMUTE)
    tcp = TcpClient(server, "tcp")
    orig = hub.on_message
    server.on_message = lambda m: tcp.on_message(m) if m.session_id == "tcp" else orig(m)
    await tcp.connect()
    tcp.send(MessageType.UNMUTE)
    session = server.sessions["tcp"]
    assert session.transport.tcp is not None, "nominated over ICE-TCP"
    assert server.plane.session_address(session.sid) == (-1, None)
    await tcp.stream(opus_packets(370.0, 120))
    await asyncio.sleep(0.3)
    heard = udp.frequencies()
    assert len(heard) == 1 and abs(next(iter(heard.values())) - 370) < 10, heard
    # the UDP participant's voice reaches the TCP client through the router's
    # stream output, decryptable with the TCP keys. (Our synthetic client has
    # no data channel, whose opening normally starts the server's offers.)
    session.tracks_initialised()
    for _ in range(100):
        if len(tcp.received) > 20:
            break
        await asyncio.sleep(0.05)
    assert len(tcp.received) > 20
    assert len({rtp_fields(p)[3] for p in tcp.received}) == 1
    stats = server.plane.session_stats(session.sid)
    assert stats["rx_packets"] >= 100 and stats["tx_packets"] >= 20
