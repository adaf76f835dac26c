"""Fuzzing the native router through real loopback sockets, with an exact
model of where every datagram must be counted.

A MediaPlane on 127.0.0.1 carries one working stream: ``pub`` publishes a
video track, ``sub`` and two misbehaving peers (``bad_gcm``, ``bad_cm``,
one per SRTP profile) subscribe to it. The bad peers also publish an
audio track (routed by SSRC, audio level extension negotiated) and two
video tracks routed by MID/RID, so garbage that passes SRTP can reach
every branch of the RTP path: SSRC lookup, MID/RID learning, audio
levels. Hypothesis sends, from the bad peers, from ``pub``'s own socket
and from an unregistered socket: random bytes of every RFC 7983 class,
empty and oversized datagrams, replays, and garbage that is *validly
SRTP/SRTCP-protected* with the sender's keys (bad CSRC counts, extension
blocks and elements that overrun, bad padding, RTCP with lengths that
overrun, NACKs with huge BLPs, truncated FIR entries, BYE and SR/RR counts
larger than their packets, REMB and transport-cc noise...).

``Model`` predicts, for each datagram, the one place it is counted
(RFC 7983 demux class, unknown source, SRTP failure by libsrtp status,
malformed, unknown SSRC, a track's packets, accepted RTCP) and what RTCP
that passed authentication does (NACK/PLI/REMB/TWCC counters, retransmit
requests, report blocks, BYE events), up to the first malformed packet of
a compound. Its SRTP verdicts come from a mirror inbound ``SrtpContext``
fed the same datagrams in the same order; everything after decryption is
re-derived here from RFC 3550/8285/4585. After every example the real
counter deltas must equal the model's, the legitimate subscriber must have
received exactly the packets published, and the process must be alive.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylibsrtp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rtpkit import SrtpPeer, build_nack, build_rtp, rtp_fields
from switchboard._native.core import MAX_DATAGRAM_SIZE, SrtpContext, SrtpError
from switchboard.engine.mediaplane import (
    CONSUMER_COUNTERS,
    EVENT_BYE,
    EVENT_DTLS,
    EVENT_SSRC_LEARNED,
    EVENT_STUN,
    EVENT_UNKNOWN_SSRC,
    GLOBAL_COUNTERS,
    KIND_AUDIO,
    KIND_VIDEO,
    SESSION_COUNTERS,
    TRACK_COUNTERS,
    MediaConfig,
    MediaEvent,
    MediaPlane,
)

CM80 = "AES_CM_128_HMAC_SHA1_80"
GCM = "AEAD_AES_128_GCM"
LEGIT_SSRC = 0x1E617
AUDIO_SSRC = 0xA0D10
POOL_SSRCS = (0x5501, 0x5502, 0xFFFFFFFF, 0)
EXT_MID, EXT_RID, EXT_LEVEL = 1, 2, 3
AUTH_FAIL, REPLAY_FAIL, REPLAY_OLD = 7, 9, 10


def u16(b: bytes, off: int) -> int:
    return int(struct.unpack_from("!H", b, off)[0])


def u32(b: bytes, off: int) -> int:
    return int(struct.unpack_from("!I", b, off)[0])


# --------------------------------------------------------------------------
# the RTP header as the router sees it (RFC 3550 5.1, RFC 8285)


@dataclass(frozen=True)
class View:
    ssrc: int
    ext_profile: int
    block: bytes


def rtp_view(p: bytes) -> View | None:
    """None where the router counts the packet malformed."""
    n = len(p)
    if n < 12 or p[0] >> 6 != 2:
        return None
    off = 12 + 4 * (p[0] & 0x0F)
    if off > n:
        return None
    profile, block = 0, b""
    if p[0] & 0x10:
        if off + 4 > n:
            return None
        profile, words = struct.unpack_from("!HH", p, off)
        if off + 4 + 4 * words > n:
            return None
        block = p[off + 4 : off + 4 + 4 * words]
        off += 4 + 4 * words
    if p[0] & 0x20 and (p[-1] == 0 or off + p[-1] > n):
        return None
    return View(u32(p, 8), profile, block)


def ext_find(v: View, ext_id: int) -> bytes | None:
    """The first element with this id; None when absent, after ID 15, or when
    an element before it overruns the block."""
    b, i = v.block, 0
    if not b or ext_id <= 0:
        return None
    if v.ext_profile == 0xBEDE:
        while i < len(b):
            if b[i] == 0:
                i += 1
                continue
            eid, ln = b[i] >> 4, (b[i] & 0x0F) + 1
            if eid == 15 or i + 1 + ln > len(b):
                return None
            if eid == ext_id:
                return b[i + 1 : i + 1 + ln]
            i += 1 + ln
    elif v.ext_profile >> 4 == 0x100:
        while i < len(b):
            if b[i] == 0:
                i += 1
                continue
            if i + 2 > len(b) or i + 2 + b[i + 1] > len(b):
                return None
            if b[i] == ext_id:
                return b[i + 2 : i + 2 + b[i + 1]]
            i += 2 + b[i + 1]
    return None


# --------------------------------------------------------------------------
# the rig: one plane, its peers, and the model of its counters


@dataclass
class TrackModel:
    tid: int
    kind: int
    ssrc: int


@dataclass(repr=False)
class Sender:
    """A socket that sends to the plane; registered peers carry a mirror of
    the plane's inbound SRTP context for them."""

    name: str
    sock: socket.socket
    peer: SrtpPeer | None = None
    mirror: SrtpContext | None = None
    exts: tuple[int, int, int] = (0, 0, 0)
    by_ssrc: dict[int, TrackModel] = field(default_factory=dict)
    by_name: dict[tuple[bytes, bytes], TrackModel] = field(default_factory=dict)
    consumers: dict[int, int] = field(default_factory=dict)  # out SSRC -> consumer id
    last_unknown: int = 0
    next_seq: dict[int, int] = field(default_factory=dict)
    history: list[bytes] = field(default_factory=list)  # protected datagrams, for replays

    @property
    def sid(self) -> int:
        return self.peer.sid if self.peer else -1

    def __repr__(self) -> str:
        return f"Sender({self.name})"


class Model:
    """Expected counter deltas and events for the datagrams sent since reset()."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.reset()

    def reset(self) -> None:
        self.g: Counter[str] = Counter()
        self.s: Counter[tuple[int, str]] = Counter()
        self.t: Counter[tuple[int, str]] = Counter()
        self.c: Counter[tuple[int, str]] = Counter()
        self.rtx_requests: Counter[int] = Counter()
        self.keyframe_requests: Counter[int] = Counter()
        self.levels: Counter[int] = Counter()
        self.events: list[tuple[int, int, int, int, bytes]] = []

    def datagram(self, src: Sender, d: bytes) -> None:
        n = len(d)
        self.g["rx_datagrams"] += 1
        if n > MAX_DATAGRAM_SIZE:
            self.g["drop_truncated"] += 1
        elif n == 0:
            self.g["drop_unknown_type"] += 1
        elif d[0] <= 3:
            self.events.append((EVENT_STUN, src.sid, 0, 0, d))
        elif 20 <= d[0] <= 63:
            self.events.append((EVENT_DTLS, src.sid, 0, 0, d))
        elif not 128 <= d[0] <= 191:
            self.g["drop_unknown_type"] += 1
        elif src.mirror is None:
            self.g["drop_unknown_source"] += 1
        else:
            self.s[src.sid, "rx_packets"] += 1
            rtcp = n >= 2 and 192 <= d[1] <= 223
            if n < (8 if rtcp else 12):
                self.s[src.sid, "drop_malformed"] += 1
                return
            try:
                plain = src.mirror.unprotect(d, rtcp=rtcp)
            except SrtpError as exc:
                code = int(str(exc).rsplit(" ", 1)[1])
                reason = {
                    AUTH_FAIL: "drop_srtp_auth",
                    REPLAY_FAIL: "drop_replay",
                    REPLAY_OLD: "drop_replay",
                }
                self.s[src.sid, reason.get(code, "drop_srtp_other")] += 1
                return
            if rtcp:
                self.s[src.sid, "rx_rtcp"] += 1
                self.rtcp(src, plain)
            else:
                self.rtp(src, plain)

    def rtp(self, src: Sender, p: bytes) -> None:
        v = rtp_view(p)
        if v is None:
            self.s[src.sid, "drop_malformed"] += 1
            return
        t = src.by_ssrc.get(v.ssrc) or self.learn(src, v)
        if t is None:
            self.s[src.sid, "drop_unknown_ssrc"] += 1
            if src.last_unknown != v.ssrc:
                src.last_unknown = v.ssrc
                self.events.append((EVENT_UNKNOWN_SSRC, src.sid, v.ssrc, 0, b""))
            return
        self.t[t.tid, "packets"] += 1
        if t.kind == KIND_AUDIO and src.exts[2]:
            level = ext_find(v, src.exts[2])
            if level:
                self.levels[t.tid] += 1

    def learn(self, src: Sender, v: View) -> TrackModel | None:
        mid_id, rid_id, _ = src.exts
        mid = ext_find(v, mid_id) if mid_id else None
        if mid is None:
            return None
        rid = ext_find(v, rid_id) if rid_id else None
        t = src.by_name.get((mid, rid if rid is not None else b""))
        if t is None:
            return None
        if t.ssrc:
            del src.by_ssrc[t.ssrc]
        t.ssrc = v.ssrc
        src.by_ssrc[v.ssrc] = t
        self.events.append((EVENT_SSRC_LEARNED, src.sid, t.tid, v.ssrc, b""))
        return t

    def rtcp(self, src: Sender, p: bytes) -> None:
        """RFC 3550 6.1 compound walk: items are acted on in order; the first
        malformed one is counted once and ends the walk. With the P bit set
        the last octet counts padding octets, which are not content (6.4.1);
        a padding count of 0 or beyond the packet is malformed."""
        sid, off, n = src.sid, 0, len(p)
        while off < n:
            if off + 4 > n or p[off] >> 6 != 2 or off + 4 * u16(p, off + 2) + 4 > n:
                self.s[sid, "drop_malformed"] += 1
                return
            q, total, count, pt = off, 4 * u16(p, off + 2) + 4, p[off] & 0x1F, p[off + 1]
            ln = total
            if p[off] & 0x20:
                pad = p[off + total - 1]
                if pad == 0 or pad > total - 4:
                    self.s[sid, "drop_malformed"] += 1
                    return
                ln = total - pad
            off += total
            if pt in (200, 201):
                base = 28 if pt == 200 else 8
                if ln < base + 24 * count:
                    self.s[sid, "drop_malformed"] += 1
                    return
                for k in range(count):
                    cid = src.consumers.get(u32(p, q + base + 24 * k))
                    if cid is not None:
                        self.c[cid, "rr_count"] += 1
            elif pt == 203:
                for k in range(min(count, (ln - 4) // 4)):
                    self.events.append((EVENT_BYE, sid, u32(p, q + 4 + 4 * k), 0, b""))
            elif pt == 205 and ln >= 12:
                if count == 1:
                    self.s[sid, "nack_rx"] += 1
                    cid = src.consumers.get(u32(p, q + 8))
                    if cid is not None:
                        self.c[cid, "nack_rx"] += 1
                        for k in range(12, ln - 3, 4):
                            self.rtx_requests[cid] += 1 + u16(p, q + k + 2).bit_count()
                elif count == 15:
                    self.s[sid, "twcc_rx"] += 1
            elif pt == 206 and ln >= 12:
                if count in (1, 4):
                    self.s[sid, "pli_rx"] += 1
                    targets = (
                        [u32(p, q + 8)]
                        if count == 1
                        else [u32(p, q + k) for k in range(12, ln - 7, 8)]
                    )
                    for media in targets:
                        cid = src.consumers.get(media)
                        if cid is not None:
                            self.c[cid, "pli_rx"] += 1
                            self.keyframe_requests[self.rig.consumer_track[cid]] += 1
                elif count == 15:
                    self.s[sid, "remb_rx"] += 1


@dataclass(repr=False)
class Rig:
    loop: asyncio.AbstractEventLoop
    plane: MediaPlane
    pub: Sender
    sub: SrtpPeer
    bad: list[Sender]
    stranger: Sender
    legit_tid: int
    consumer_track: dict[int, int]
    legit_consumers: list[int]
    sub_consumer: int
    next_legit_seq: int = 1
    events: list[MediaEvent] = field(default_factory=list)
    model: Model = field(init=False)

    def __post_init__(self) -> None:
        self.model = Model(self)

    def __repr__(self) -> str:
        return "Rig()"

    @property
    def senders(self) -> list[Sender]:
        return [self.pub, *self.bad, self.stranger]

    def pump(self) -> None:
        """What the event loop does on readiness, called directly so every
        datagram sent so far is processed before we look."""
        while self.plane.router.on_readable(0):
            pass

    def drain_peers(self) -> None:
        for peer in (self.pub.peer, self.sub, *(b.peer for b in self.bad)):
            assert peer is not None
            peer.recv_raw()

    def snapshot(self) -> dict[str, np.ndarray]:
        p = self.plane
        return {
            "g": p.global_counters.copy(),
            "s": p.session_counters.copy(),
            "t": p.track_counters.copy(),
            "c": p.consumer_counters.copy(),
            "lc": p.router.audio_level_count.copy(),
        }


def make_sender(plane: MediaPlane, name: str, profile: str) -> Sender:
    peer = SrtpPeer(plane, profile=profile)
    return Sender(name, peer.sock, peer, SrtpContext(profile, peer.tx_key, False))


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    loop = asyncio.new_event_loop()
    plane = MediaPlane(
        MediaConfig(
            addresses=("127.0.0.1",),
            port=0,
            report_interval=3600,
            pli_interval=0.05,
            event_slots=4096,
        )
    )
    loop.run_until_complete(plane.start())
    pub = make_sender(plane, "pub", CM80)
    sub = SrtpPeer(plane, profile=GCM)
    bad = [make_sender(plane, "bad_gcm", GCM), make_sender(plane, "bad_cm", CM80)]
    stranger_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger_sock.bind(("127.0.0.1", 0))
    stranger = Sender("stranger", stranger_sock)
    legit_tid = plane.publish(
        pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=LEGIT_SSRC, nack_slots=64
    )
    pub.by_ssrc[LEGIT_SSRC] = TrackModel(legit_tid, KIND_VIDEO, LEGIT_SSRC)
    consumer_track: dict[int, int] = {}
    sub_cid = plane.subscribe(legit_tid, sub.sid, 0x5B)
    consumer_track[sub_cid] = legit_tid
    legit_consumers = [sub_cid]
    for k, b in enumerate(bad):
        assert b.peer is not None
        out = 0xBAD0 + k
        cid = plane.subscribe(legit_tid, b.sid, out)
        b.consumers[out] = cid
        consumer_track[cid] = legit_tid
        legit_consumers.append(cid)
        plane.set_session_extensions(b.sid, mid=EXT_MID, rid=EXT_RID, audio_level=EXT_LEVEL)
        b.exts = (EXT_MID, EXT_RID, EXT_LEVEL)
        tid = plane.publish(b.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=AUDIO_SSRC)
        b.by_ssrc[AUDIO_SSRC] = TrackModel(tid, KIND_AUDIO, AUDIO_SSRC)
        for rid in ("", "r"):
            tid = plane.publish(b.sid, kind=KIND_VIDEO, clock_rate=90000, mid="m", rid=rid)
            b.by_name[b"m", rid.encode()] = TrackModel(tid, KIND_VIDEO, 0)
    r = Rig(
        loop, plane, pub, sub, bad, stranger, legit_tid, consumer_track, legit_consumers, sub_cid
    )
    plane.add_event_handler(r.events.append)
    try:
        yield r
    finally:
        loop.run_until_complete(plane.stop())
        loop.close()
        for peer in (pub.peer, sub, *(b.peer for b in bad)):
            assert peer is not None
            peer.close()
        stranger_sock.close()


# --------------------------------------------------------------------------
# garbage


ssrcs = st.sampled_from([AUDIO_SSRC, AUDIO_SSRC, LEGIT_SSRC, 0xBAD0, *POOL_SSRCS]) | st.integers(
    0, 0xFFFFFFFF
)

elements = st.one_of(
    st.just((EXT_MID, b"m")),
    st.just((EXT_RID, b"r")),
    st.just((EXT_RID, b"")),
    st.tuples(st.just(EXT_LEVEL), st.binary(min_size=1, max_size=2)),
    st.tuples(st.integers(0, 255), st.binary(max_size=20)),
)


@st.composite
def ext_blocks(draw: st.DrawFn, consistent: bool) -> bytes:
    """An extension block; when ``consistent`` its length word matches its
    body (libsrtp then protects it and the router parses its elements)."""
    profile = draw(st.sampled_from([0xBEDE, 0xBEDE, 0x1000, 0x1007]) | st.integers(0, 0xFFFF))
    body = b""
    for eid, data in draw(st.lists(elements, max_size=5)):
        body += bytes(draw(st.integers(0, 2)))
        if profile == 0xBEDE:
            body += bytes([((eid & 0x0F) << 4) | ((max(len(data), 1) - 1) & 0x0F)]) + data
        else:
            body += (
                bytes([eid, len(data) if draw(st.integers(0, 3)) else draw(st.integers(0, 255))])
                + data
            )
    body += draw(st.binary(max_size=3)) if draw(st.booleans()) else b""
    body += bytes(-len(body) % 4)
    words = (
        len(body) // 4 if consistent or draw(st.integers(0, 3)) else draw(st.integers(0, 0xFFFF))
    )
    return struct.pack("!HH", profile, words) + body


@st.composite
def routable_rtp(draw: st.DrawFn) -> bytes:
    """Well-formed RTP aimed at the bad peers' tracks: MID "m" (with or
    without RID "r") to learn a new SSRC, or the audio track's SSRC with an
    audio level; random payload and sometimes a bad padding count."""
    ssrc = draw(st.sampled_from([AUDIO_SSRC, *POOL_SSRCS]) | st.integers(0, 0xFFFFFFFF))
    els = draw(
        st.lists(
            st.sampled_from([(EXT_MID, b"m"), (EXT_RID, b"r"), (EXT_LEVEL, b"\x7f"), (5, b"zz")]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    if draw(st.booleans()):
        body = b"".join(bytes([(e << 4) | (len(d) - 1)]) + d for e, d in els)
        profile = 0xBEDE
    else:
        body = b"".join(bytes([e, len(d)]) + d for e, d in els)
        profile = 0x1000
    body += bytes(-len(body) % 4)
    padding = draw(st.sampled_from([0, 0, 1, 4, 0, 200]))
    b0 = 0x90 | (0x20 if padding else 0)
    payload = draw(st.binary(max_size=20))
    return (
        struct.pack("!BBHIIHH", b0, 111, 0, 0, ssrc, profile, len(body) // 4)
        + body
        + payload
        + (bytes(max(padding - 1, 0)) + bytes([padding]) if padding else b"")
    )


@st.composite
def garbage_rtp(draw: st.DrawFn) -> bytes:
    """An RTP plaintext for the sender's SRTP context. Mostly a header that
    libsrtp accepts (then the router's own parse and lookups see it), with
    extension elements aimed at the MID/RID/audio-level ids and padding
    counts that may not fit; sometimes CSRC count, extension length and
    packet length disagree (libsrtp refuses: it goes out unprotected)."""
    consistent = draw(st.integers(0, 3)) > 0
    b0 = 0x80 | draw(st.integers(0, 0x3F))
    cc = b0 & 0x0F
    head = struct.pack(
        "!BBHII", b0, draw(st.integers(0, 255)), 0, draw(st.integers(0, 0xFFFFFFFF)), draw(ssrcs)
    )
    if consistent:
        csrc = draw(st.binary(min_size=4 * cc, max_size=4 * cc))
    else:
        csrc = draw(st.binary(min_size=4 * cc, max_size=4 * cc) | st.binary(max_size=4 * cc))
    ext = (
        draw(ext_blocks(consistent))
        if b0 & 0x10 and (consistent or draw(st.integers(0, 4)))
        else b""
    )
    payload = draw(st.binary(max_size=48))
    tail = b""
    if b0 & 0x20:
        count = draw(st.integers(1, len(payload) + 1) | st.integers(0, 255))
        tail = bytes(max(0, min(count, len(payload) + 1) - 1)) + bytes([count])
    return head + csrc + ext + payload + tail


def rtcp_header(count: int, pt: int, body: bytes, length: int | None = None) -> bytes:
    words = (len(body) + 4) // 4 - 1 if length is None else length
    return struct.pack("!BBH", 0x80 | (count & 0x1F), pt, words & 0xFFFF) + body


media = st.sampled_from([0xBAD0, 0xBAD1, LEGIT_SSRC, AUDIO_SSRC]) | st.integers(0, 0xFFFFFFFF)
lengths = st.none() | st.none() | st.integers(0, 0xFFFF) | st.integers(-1, 1)


@st.composite
def rtcp_items(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            ["sr", "rr", "bye", "nack", "pli", "fir", "remb", "twcc", "app", "sdes", "raw"]
        )
    )
    count = draw(st.integers(0, 31))
    sender = struct.pack("!I", draw(media))
    if kind in ("sr", "rr"):
        blocks = b"".join(
            struct.pack("!I", draw(media)) + draw(st.binary(min_size=20, max_size=20))
            for _ in range(draw(st.integers(0, min(count + 1, 4))))
        )
        body = (
            sender + (draw(st.binary(min_size=20, max_size=20)) if kind == "sr" else b"") + blocks
        )
        pt = 200 if kind == "sr" else 201
    elif kind == "bye":
        body = b"".join(
            struct.pack("!I", draw(media)) for _ in range(draw(st.integers(0, min(count + 2, 8))))
        )
        body += draw(st.binary(max_size=12))
        pt = 203
    elif kind == "nack":
        blp = st.just(0xFFFF) | st.integers(0, 0xFFFF)
        fcis = b"".join(
            struct.pack("!HH", draw(st.integers(0, 0xFFFF)), draw(blp))
            for _ in range(draw(st.integers(0, 40)))
        )
        body, pt, count = (
            sender + struct.pack("!I", draw(media)) + fcis,
            205,
            draw(st.just(1) | st.integers(0, 31)),
        )
    elif kind in ("pli", "fir"):
        body = sender + struct.pack("!I", draw(media))
        if kind == "fir":
            body += b"".join(
                struct.pack("!IB3x", draw(media), 1) for _ in range(draw(st.integers(0, 4)))
            )
            body += draw(st.binary(max_size=7))  # a truncated entry
        pt, count = 206, 1 if kind == "pli" else 4
    elif kind == "remb":
        body = (
            sender
            + bytes(4)
            + b"REMB"
            + bytes([draw(st.integers(0, 255))])
            + draw(st.binary(max_size=24))
        )
        pt, count = 206, 15
    elif kind == "twcc":
        body, pt, count = (
            sender + struct.pack("!I", draw(media)) + draw(st.binary(max_size=40)),
            205,
            15,
        )
    elif kind == "app":
        body, pt = draw(st.binary(max_size=20)), 204
    elif kind == "sdes":
        body, pt = draw(st.binary(max_size=24)), 202
    else:
        body, pt = draw(st.binary(max_size=24)), draw(st.integers(192, 223) | st.integers(0, 255))
    length = draw(lengths)
    if length is not None and length in (-1, 0, 1):
        length = max(0, (len(body) + 4) // 4 - 1 + length)
    return rtcp_header(count, pt, body, length)


@st.composite
def garbage_rtcp(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(rtcp_items(), min_size=1, max_size=4))
    return b"".join(items) + draw(st.binary(max_size=5) | st.just(b""))


raw_bytes = st.tuples(
    st.sampled_from([0, 1, 3, 4, 16, 19, 20, 22, 63, 64, 79, 80, 127, 128, 144, 160, 191, 192, 255])
    | st.integers(0, 255),
    st.binary(max_size=80),
).map(lambda t: bytes([t[0]]) + t[1])

Action = tuple[str, str, Any]

actions = st.one_of(
    st.tuples(st.sampled_from(["bad_gcm", "bad_cm", "pub", "stranger"]), st.just("raw"), raw_bytes),
    st.tuples(
        st.sampled_from(["bad_gcm", "bad_cm", "pub", "stranger"]),
        st.just("raw"),
        st.binary(max_size=7)
        | st.sampled_from([b"", b"\x80", b"\x80\xc8", b"\x90\xc9" + bytes(6)]),
    ),
    st.tuples(
        st.sampled_from(["bad_gcm", "bad_cm", "stranger"]),
        st.just("big"),
        st.tuples(
            st.sampled_from([0x80, 0x81, 0x16, 0x00]),
            st.sampled_from(
                [MAX_DATAGRAM_SIZE - 1, MAX_DATAGRAM_SIZE, MAX_DATAGRAM_SIZE + 1, 2048, 2049, 3000]
            ),
        ),
    ),
    st.tuples(
        st.sampled_from(["bad_gcm", "bad_cm", "bad_gcm", "bad_cm", "pub", "stranger"]),
        st.just("srtp"),
        garbage_rtp(),
    ),
    st.tuples(st.sampled_from(["bad_gcm", "bad_cm"]), st.just("srtp"), routable_rtp()),
    st.tuples(
        st.sampled_from(["bad_gcm", "bad_cm", "bad_gcm", "bad_cm", "pub", "stranger"]),
        st.just("srtcp"),
        garbage_rtcp(),
    ),
    st.tuples(
        st.sampled_from(["bad_gcm", "bad_cm", "pub"]), st.just("replay"), st.integers(0, 1000)
    ),
)


def sender_named(rig: Rig, name: str) -> Sender:
    return next(s for s in rig.senders if s.name == name)


def make_datagram(rig: Rig, src: Sender, kind: str, arg: Any) -> bytes | None:
    if kind == "raw":
        return bytes(arg)
    if kind == "big":
        first, size = arg
        return bytes([first]) + os.urandom(size - 1)
    if kind == "replay":
        keyed = src if src.peer else rig.bad[0]
        return keyed.history[arg % len(keyed.history)] if keyed.history else None
    # protected with the keys of the sender (the stranger borrows bad_gcm's)
    keyed = src if src.peer else rig.bad[0]
    assert keyed.peer is not None
    plain = bytes(arg)
    wire: bytes
    try:
        if kind == "srtp":
            ssrc = u32(plain, 8)
            if ssrc == LEGIT_SSRC and keyed is rig.pub:
                ssrc ^= 1  # pub's own stream stays the legitimate one
            seq = keyed.next_seq.get(ssrc, 1)
            keyed.next_seq[ssrc] = seq + 1
            plain = (
                plain[:2]
                + struct.pack("!H", seq & 0xFFFF)
                + plain[4:8]
                + struct.pack("!I", ssrc)
                + plain[12:]
            )
            wire = keyed.peer.tx.protect(plain)
        else:
            wire = keyed.peer.tx.protect_rtcp(plain)
    except pylibsrtp.Error:
        return plain  # libsrtp refused the header: send it as it is
    keyed.history.append(wire)
    del keyed.history[:-50]
    return wire


def send_legit(rig: Rig, count: int) -> list[bytes]:
    pub = rig.pub.peer
    assert pub is not None
    sent = []
    for _ in range(count):
        seq = rig.next_legit_seq
        rig.next_legit_seq += 1
        plain = build_rtp(
            ssrc=LEGIT_SSRC, seq=seq, ts=seq * 3000, pt=96, payload=struct.pack("!Q", seq) * 12
        )
        wire = pub.tx.protect(plain)
        rig.pub.history.append(wire)
        rig.model.datagram(rig.pub, wire)
        pub.send_raw(wire)
        sent.append(plain)
    return sent


def check(rig: Rig, before: dict[str, np.ndarray], legit: list[bytes]) -> None:
    after = rig.snapshot()
    m = rig.model
    d = {k: after[k].astype(np.int64) - before[k].astype(np.int64) for k in after}

    def g(name: str) -> int:
        return int(d["g"][GLOBAL_COUNTERS.index(name)])

    def s(sid: int, name: str) -> int:
        return int(d["s"][sid, SESSION_COUNTERS.index(name)])

    def t(tid: int, name: str) -> int:
        return int(d["t"][tid, TRACK_COUNTERS.index(name)])

    def c(cid: int, name: str) -> int:
        return int(d["c"][cid, CONSUMER_COUNTERS.index(name)])

    for name in ("rx_datagrams", "drop_truncated", "drop_unknown_type", "drop_unknown_source"):
        assert g(name) == m.g[name], name
    observed = [(e.kind, e.session, e.a, e.b, e.data) for e in rig.events]
    assert g("events") + g("drop_event_overflow") == len(m.events)
    if g("drop_event_overflow") == 0:
        assert sorted(observed) == sorted(m.events)
    rig.events.clear()
    for src in (rig.pub, *rig.bad):
        for name in (
            "rx_packets",
            "rx_rtcp",
            "drop_not_ready",
            "drop_malformed",
            "drop_srtp_auth",
            "drop_replay",
            "drop_srtp_other",
            "drop_unknown_ssrc",
            "nack_rx",
            "twcc_rx",
            "pli_rx",
            "remb_rx",
        ):
            assert s(src.sid, name) == m.s[src.sid, name], (src.name, name)
        for tm in {id(x): x for x in (*src.by_ssrc.values(), *src.by_name.values())}.values():
            assert t(tm.tid, "packets") == m.t[tm.tid, "packets"], (src.name, tm)
            assert int(d["lc"][tm.tid]) == m.levels[tm.tid], (src.name, tm)
    for cid in rig.legit_consumers:
        assert c(cid, "packets") == len(legit)
        assert c(cid, "nack_rx") == m.c[cid, "nack_rx"]
        assert c(cid, "rtx") + c(cid, "rtx_miss") == m.rtx_requests[cid]
        assert c(cid, "pli_rx") == m.c[cid, "pli_rx"]
        assert c(cid, "rr_count") == m.c[cid, "rr_count"]
    assert t(rig.legit_tid, "forwarded") == len(legit) * len(rig.legit_consumers)
    assert (
        t(rig.legit_tid, "pli_forwarded") + t(rig.legit_tid, "pli_limited")
        == m.keyframe_requests[rig.legit_tid]
    )
    # the legitimate subscriber got exactly the published packets, in order
    rtp, _ = rig.sub.recv()
    assert [rtp_fields(p)[1] for p in rtp] == [rtp_fields(p)[1] for p in legit]
    assert [p[12:] for p in rtp] == [p[12:] for p in legit]
    assert {rtp_fields(p)[3] for p in rtp} <= {0x5B}


def run_batch(rig: Rig, batch: list[Action]) -> None:
    rig.pump()
    rig.drain_peers()
    rig.events.clear()
    rig.model.reset()
    before = rig.snapshot()
    legit = send_legit(rig, 2)
    for i, (who, kind, arg) in enumerate(batch):
        src = sender_named(rig, who)
        data = make_datagram(rig, src, kind, arg)
        if data is None:
            continue
        rig.model.datagram(src, data)
        src.sock.sendto(data, rig.pub.peer.server if rig.pub.peer else ("127.0.0.1", 0))
        if i % 3 == 2:
            legit += send_legit(rig, 1)
    legit += send_legit(rig, 2)
    rig.pump()
    check(rig, before, legit)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(actions, min_size=1, max_size=12))
def test_garbage_is_counted_once_and_the_stream_survives(rig: Rig, batch: list[Action]) -> None:
    run_batch(rig, batch)


# --------------------------------------------------------------------------
# the brief's list of authenticated-but-malformed packets, one by one


AUTHENTIC_MALFORMED: dict[str, tuple[str, bytes]] = {
    "CSRC count 15, no CSRCs (libsrtp refuses to protect: sent raw)": (
        "srtp",
        struct.pack("!BBHII", 0x8F, 96, 0, 1, 0x5501) + b"x",
    ),
    "extension length 16 words, 1 present (refused: sent raw)": (
        "srtp",
        struct.pack("!BBHII", 0x90, 96, 0, 1, 0x5501) + b"\xbe\xde\x00\x10" + bytes(4),
    ),
    "padding count 0": ("srtp", struct.pack("!BBHII", 0xA0, 96, 0, 1, 0x5501) + b"abc\x00"),
    "padding count 200 > payload": (
        "srtp",
        struct.pack("!BBHII", 0xA0, 96, 0, 1, 0x5501) + b"abc\xc8",
    ),
    "one-byte element overrunning its block, MID first": (
        "srtp",
        struct.pack("!BBHII", 0x90, 96, 0, 1, 0x5502) + b"\xbe\xde\x00\x01\x10m\x2f\x00" + b"pl",
    ),
    "RTCP length overruns": ("srtcp", rtcp_header(0, 201, struct.pack("!I", 1), length=40)),
    "RR then a second packet cut short": (
        "srtcp",
        rtcp_header(0, 201, struct.pack("!I", 1)) + b"\x81\xce\x00\x05" + bytes(8),
    ),
    "NACK, 40 FCIs with BLP 0xFFFF for bad_gcm's consumer": (
        "srtcp",
        rtcp_header(
            1,
            205,
            struct.pack("!II", 1, 0xBAD0)
            + b"".join(struct.pack("!HH", k * 17, 0xFFFF) for k in range(40)),
        ),
    ),
    "FIR with a truncated entry": (
        "srtcp",
        rtcp_header(4, 206, struct.pack("!IIIB3x", 1, 0, 0xBAD0, 1) + struct.pack("!I", 0xBAD0)),
    ),
    "BYE count 31, one SSRC": ("srtcp", rtcp_header(31, 203, struct.pack("!I", 0xB1E))),
    "SR count 31, two report blocks, then a PLI never reached": (
        "srtcp",
        rtcp_header(31, 200, bytes(24) + (struct.pack("!I", 0xBAD0) + bytes(20)) * 2)
        + rtcp_header(1, 206, struct.pack("!II", 1, 0xBAD0)),
    ),
    "PLI then malformed: the PLI is acted on": (
        "srtcp",
        rtcp_header(1, 206, struct.pack("!II", 1, 0xBAD0)) + b"\x40\xc9\x00\x00",
    ),
    "REMB claiming 255 SSRCs": (
        "srtcp",
        rtcp_header(15, 206, struct.pack("!II4sB3x", 1, 0, b"REMB", 255)),
    ),
    "transport-cc noise": (
        "srtcp",
        rtcp_header(15, 205, struct.pack("!II", 1, 0xBAD0) + b"\xff" * 12),
    ),
    "RR about bad_gcm's consumer, then 3 stray bytes": (
        "srtcp",
        rtcp_header(1, 201, struct.pack("!I", 1) + struct.pack("!I", 0xBAD0) + bytes(20))
        + b"\x80\x00\x00",
    ),
}


@pytest.mark.parametrize("case", list(AUTHENTIC_MALFORMED))
def test_authentic_malformed_packets(rig: Rig, case: str) -> None:
    kind, plain = AUTHENTIC_MALFORMED[case]
    run_batch(rig, [("bad_gcm", kind, plain), ("bad_cm", kind, plain), ("stranger", kind, plain)])


def test_retransmission_and_keyframe_counts_are_exact(rig: Rig) -> None:
    """A NACK for 40 x 17 sequence numbers is answered, or counted as a miss,
    once for each of them."""
    before = rig.snapshot()
    nack = AUTHENTIC_MALFORMED["NACK, 40 FCIs with BLP 0xFFFF for bad_gcm's consumer"][1]
    run_batch(rig, [("bad_gcm", "srtcp", nack)])
    after = rig.snapshot()
    cid = rig.bad[0].consumers[0xBAD0]
    i_rtx, i_miss = CONSUMER_COUNTERS.index("rtx"), CONSUMER_COUNTERS.index("rtx_miss")
    assert (
        int(
            after["c"][cid, i_rtx]
            + after["c"][cid, i_miss]
            - before["c"][cid, i_rtx]
            - before["c"][cid, i_miss]
        )
        == 40 * 17
    )


# --------------------------------------------------------------------------
# found while writing these tests


async def test_nack_retransmits_anything_still_in_the_ring(plane: MediaPlane) -> None:
    """The ring holds 1024 packets, but the subscriber's outbound SRTP context
    is created with libsrtp's default replay window (128), and libsrtp's
    sender refuses an index that far behind even with allow_repeat_tx
    (status 10, see test_srtp_vectors): a NACK for a packet 200 back is
    counted as a ring miss although the packet is in the ring."""
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=0x77, nack_slots=1024)
    cid = plane.subscribe(tid, sub.sid, 0x7777)
    for seq in range(1, 301):
        pub.send_rtp(ssrc=0x77, seq=seq, ts=seq, pt=96, payload=b"v" * 50)
        if seq % 50 == 0:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(sub.recv_raw()) == 300
    sub.send_rtcp(build_nack(1, 0x7777, [100, 250]))  # 200 and 50 behind the newest
    await asyncio.sleep(0.05)
    assert sorted(rtp_fields(sub.rx.unprotect(p))[1] for p in sub.recv_raw()) == [100, 250]
    stats = plane.consumer_stats(cid)
    assert stats["rtx"] == 2 and stats["rtx_miss"] == 0
    assert plane.track_stats(tid)["packets"] == 300


async def test_padded_nack_asks_only_for_its_fci(plane: MediaPlane) -> None:
    """RFC 3550 6.4.1: a NACK with P set and 4 padding octets (00 00 00 04)
    carries one FCI. The router reads the padding as a second FCI (PID 0,
    BLP 4) and looks up sequence numbers 0 and 3 as well."""
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_VIDEO, clock_rate=90000, ssrc=0x88, nack_slots=64)
    cid = plane.subscribe(tid, sub.sid, 0x8888)
    for seq in range(1, 11):
        pub.send_rtp(ssrc=0x88, seq=seq, ts=seq, pt=96, payload=b"v")
    await asyncio.sleep(0.05)
    sub.recv_raw()
    nack = struct.pack("!BBHIIHH", 0xA1, 205, 4, 1, 0x8888, 5, 0) + b"\x00\x00\x00\x04"
    sub.send_rtcp(nack)
    await asyncio.sleep(0.05)
    assert [rtp_fields(sub.rx.unprotect(p))[1] for p in sub.recv_raw()] == [5]
    stats = plane.consumer_stats(cid)
    assert stats["rtx"] + stats["rtx_miss"] == 1
