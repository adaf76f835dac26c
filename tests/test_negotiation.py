"""Offer/answer: answering browser offers, stable numbering across server re-offers, errors.

``FakeBrowser`` plays the client. It reads our descriptions with **aiortc's** SDP parser (an
independent implementation), writes its own offers and answers as text, and enforces what real
browsers enforce: Chrome's "RTP extension ID reassignment not supported" (one id, one URI for the
life of the connection), stable payload types on an active m-line, and m-lines that never move.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import aiortc.sdp as aiortc_sdp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.signaling import sdp
from switchboard.signaling.negotiation import (
    AUDIO_LEVEL_URI,
    MID_URI,
    REPAIRED_RID_URI,
    RID_URI,
    TWCC_URI,
    IceParams,
    NegotiationError,
    NegotiationState,
    OutTrack,
    answer_client_offer,
    apply_answer,
    create_server_offer,
    describe_offer,
)
from switchboard.signaling.sdp import Candidate, Fingerprint, Simulcast

DATA = Path(__file__).parent / "data" / "sdp"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"
CSRC_LEVEL = "urn:ietf:params:rtp-hdrext:csrc-audio-level"

SERVER_ICE = IceParams("SrVr", "serverpasswordserverpw1")
SERVER_FP = Fingerprint("sha-256", ":".join(["AB"] * 32))
SERVER_CANDIDATES = [
    Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 8443, "host"),
    Candidate("2", 1, "tcp", 1518280447, "192.0.2.10", 8443, "host", tcptype="passive"),
]


def raw(name: str) -> str:
    return (DATA / name).read_bytes().decode()


def load(name: str) -> sdp.SessionDescription:
    return sdp.parse((DATA / name).read_bytes())


def answer(state: NegotiationState, offer: sdp.SessionDescription, **kw: Any) -> str:
    """Answer with the server's defaults and return the text, checked to re-parse equal."""
    kw.setdefault("local_ice", SERVER_ICE)
    kw.setdefault("local_fingerprint", SERVER_FP)
    kw.setdefault("candidates", SERVER_CANDIDATES)
    desc = answer_client_offer(state, offer, **kw)
    text: str = sdp.render(desc)
    assert sdp.parse(text) == desc
    return text


# --------------------------------------------------------------------------------------------
# A fake browser
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Profile:
    name: str
    pts: dict[str, int]  # codec name (lower) -> the browser's default payload type
    exts: dict[str, int]  # URI -> the browser's default id
    kind_exts: dict[str, list[str]]


CHROME = Profile(
    "chrome",
    {"opus": 111, "vp8": 96, "av1": 45},
    {
        AUDIO_LEVEL_URI: 1,
        ABS_SEND_TIME: 2,
        TWCC_URI: 3,
        MID_URI: 4,
        RID_URI: 10,
        REPAIRED_RID_URI: 11,
        TOFFSET: 14,
    },
    {
        "audio": [AUDIO_LEVEL_URI, ABS_SEND_TIME, TWCC_URI, MID_URI],
        "video": [TOFFSET, ABS_SEND_TIME, TWCC_URI, MID_URI, RID_URI, REPAIRED_RID_URI],
    },
)
FIREFOX = Profile(
    "firefox",
    {"opus": 109, "vp8": 120, "av1": 123},
    {AUDIO_LEVEL_URI: 1, CSRC_LEVEL: 2, MID_URI: 3, ABS_SEND_TIME: 4, TOFFSET: 5, TWCC_URI: 7},
    {
        "audio": [AUDIO_LEVEL_URI, CSRC_LEVEL, MID_URI],
        "video": [MID_URI, ABS_SEND_TIME, TOFFSET, TWCC_URI],
    },
)
CODEC_LINES = {
    "opus": "opus/48000/2",
    "vp8": "VP8/90000",
    "av1": "AV1/90000",
}


@dataclasses.dataclass
class Section:
    mid: str
    kind: str
    direction: str  # the browser transceiver's direction
    stopped: bool = False
    own_ssrc: int | None = None


def _pt(codec: Any) -> int:
    assert isinstance(codec.payloadType, int)
    return codec.payloadType


class FakeBrowser:
    def __init__(self, profile: Profile, ufrag: str = "CliU") -> None:
        self.p = profile
        self.ufrag, self.pwd = ufrag, "clientpasswordclientpw1"
        self.version = 1
        self.sections: list[Section] = []
        self.ext_lifetime: dict[int, str] = {}  # every id this connection ever saw
        self.ext_ids = dict(profile.exts)  # ids the browser uses in its own offers
        self.pt_names: dict[int, str] = {}  # every payload type ever seen
        self.pts = dict(profile.pts)  # codec -> payload type for its own offers
        self.mid_pts: dict[str, dict[str, int]] = {}  # active mid -> codec -> pt
        self.received: dict[str, str] = {}  # mid -> msid of the server's track on it

    # ---- what real browsers enforce ---------------------------------------------------------

    def _learn(self, text: str) -> aiortc_sdp.SessionDescription:
        desc = aiortc_sdp.SessionDescription.parse(text)
        mids = [m.rtp.muxId for m in desc.media]
        assert mids[: len(self.sections)] == [s.mid for s in self.sections], "m-lines moved"
        for m in desc.media:
            for e in m.rtp.headerExtensions:
                old = self.ext_lifetime.setdefault(e.id, e.uri)
                if old != e.uri:
                    raise AssertionError(
                        f"RTP extension ID reassignment not supported (mid={m.rtp.muxId}, "
                        f"id={e.id}, old_uri={old}, new_uri={e.uri})"
                    )
                self.ext_ids.setdefault(e.uri, e.id)
                if self.ext_ids[e.uri] != e.id and self.ext_lifetime.get(e.id) == e.uri:
                    self.ext_ids[e.uri] = e.id
            for c in m.rtp.codecs:
                name = c.mimeType.split("/")[1].lower()
                old_name = self.pt_names.setdefault(_pt(c), name)
                assert old_name == name, f"pt {c.payloadType} was {old_name}, now {name}"
            if m.port == 0 or m.kind not in ("audio", "video"):
                continue
            mid = m.rtp.muxId
            now = {c.mimeType.split("/")[1].lower(): _pt(c) for c in m.rtp.codecs}
            for name, pt in self.mid_pts.get(mid, {}).items():
                if name in now:
                    assert now[name] == pt, f"mid {mid}: {name} moved from pt {pt} to {now[name]}"
            self.mid_pts.setdefault(mid, {}).update(now)
            for name, pt in now.items():
                self.pts.setdefault(name, pt)
                if self.pts[name] != pt:
                    self.pts[name] = pt
        return desc

    def _free_ext_id(self, uri: str) -> int:
        ext_id = self.ext_ids.get(uri)
        if ext_id is not None and self.ext_lifetime.get(ext_id, uri) == uri:
            return ext_id
        ext_id = next(i for i in range(1, 15) if i not in self.ext_lifetime)
        self.ext_ids[uri] = ext_id
        return ext_id

    # ---- writing descriptions ---------------------------------------------------------------

    def _head(self, mids: list[str]) -> list[str]:
        self.version += 1
        return [
            "v=0",
            f"o=- 4611731400430051336 {self.version} IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE " + " ".join(mids),
            "a=msid-semantic: WMS",
        ]

    def _transport(self, setup: str) -> list[str]:
        return [
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{self.ufrag}",
            f"a=ice-pwd:{self.pwd}",
            "a=fingerprint:sha-256 " + ":".join(["CD"] * 32),
            f"a=setup:{setup}",
        ]

    def _rtp_lines(
        self, sec: Section, setup: str, codecs: list[tuple[int, str]], exts: list[tuple[int, str]]
    ) -> list[str]:
        out = [f"m={sec.kind} 9 UDP/TLS/RTP/SAVPF " + " ".join(str(pt) for pt, _ in codecs)]
        out += self._transport(setup) + [f"a=mid:{sec.mid}"]
        out += [f"a=extmap:{i} {uri}" for i, uri in exts]
        out += [f"a={sec.direction}"]
        if sec.own_ssrc is not None:
            out += [f"a=msid:own-stream own-{sec.mid}"]
        out += ["a=rtcp-mux"]
        for pt, name in codecs:
            out += [f"a=rtpmap:{pt} {CODEC_LINES[name]}"]
            if sec.kind == "video":
                out += [
                    f"a=rtcp-fb:{pt} {fb}"
                    for fb in ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
                ]
        if sec.own_ssrc is not None:
            out += [
                f"a=ssrc:{sec.own_ssrc} cname:browser",
                f"a=ssrc:{sec.own_ssrc} msid:own-stream own-{sec.mid}",
            ]
        return out

    def first_offer(self) -> str:
        self.sections = [Section("0", "application", "sendrecv")]
        return self.offer()

    def offer(self, add: tuple[str, ...] = ()) -> str:
        """A (re-)offer: every known section plus a new sendrecv one per kind in ``add``."""
        for kind in add:
            taken = {s.mid for s in self.sections}
            mid = str(next(n for n in range(100) if str(n) not in taken))
            self.sections.append(Section(mid, kind, "sendrecv", own_ssrc=1000 + int(mid)))
        lines = self._head([s.mid for s in self.sections if not s.stopped])
        for sec in self.sections:
            if sec.stopped:
                pt = 0 if sec.kind != "application" else "webrtc-datachannel"
                proto = "UDP/TLS/RTP/SAVPF" if sec.kind != "application" else "UDP/DTLS/SCTP"
                lines += [f"m={sec.kind} 0 {proto} {pt}", "c=IN IP4 0.0.0.0", f"a=mid:{sec.mid}"]
            elif sec.kind == "application":
                lines += ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel"]
                lines += self._transport("actpass")
                lines += [f"a=mid:{sec.mid}", "a=sctp-port:5000", "a=max-message-size:262144"]
            else:
                names = ["opus"] if sec.kind == "audio" else ["vp8", "av1"]
                codecs = [(self.pts[n], n) for n in names]
                exts = [(self._free_ext_id(u), u) for u in self.p.kind_exts[sec.kind]]
                lines += self._rtp_lines(sec, "actpass", codecs, exts)
        text = "\r\n".join(lines) + "\r\n"
        self._learn(text)
        return text

    def answer(self, offer_text: str) -> str:
        desc = self._learn(offer_text)
        accepted = []
        body: list[str] = []
        for i, m in enumerate(desc.media):
            mid = m.rtp.muxId
            if i == len(self.sections):
                self.sections.append(Section(mid, m.kind, "recvonly"))
            sec = self.sections[i]
            if m.port == 0:
                sec.stopped = True
                self.received.pop(mid, None)
                fmt = m.fmt[0]
                body += [f"m={m.kind} 0 {m.profile} {fmt}", "c=IN IP4 0.0.0.0", f"a=mid:{mid}"]
                continue
            accepted.append(mid)
            if m.kind == "application":
                body += ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel"]
                body += self._transport("active")
                body += [f"a=mid:{mid}", "a=sctp-port:5000", "a=max-message-size:262144"]
                continue
            codecs = [
                (_pt(c), c.mimeType.split("/")[1].lower())
                for c in m.rtp.codecs
                if c.mimeType.split("/")[1].lower() in self.p.pts
            ]
            exts = [
                (e.id, e.uri) for e in m.rtp.headerExtensions if e.uri in self.p.kind_exts[m.kind]
            ]
            sends = sec.own_ssrc is not None
            sec_dir = {
                "sendonly": "recvonly",
                "recvonly": "sendonly" if sends else "inactive",
                "sendrecv": "sendrecv" if sends else "recvonly",
                "inactive": "inactive",
            }[m.direction or "sendrecv"]
            if m.direction in ("sendonly", "sendrecv") and m.msid:
                self.received[mid] = m.msid
            else:
                self.received.pop(mid, None)
            body += self._rtp_lines(
                dataclasses.replace(sec, direction=sec_dir), "active", codecs, exts
            )
        text = "\r\n".join(self._head(accepted) + body) + "\r\n"
        self._learn(text)
        return text


def connect(profile: Profile, fixture: str | None = None) -> tuple[NegotiationState, FakeBrowser]:
    """A connected pair: the browser's first offer (DC only, or a fixture) answered."""
    state = NegotiationState(cname="sfu")
    browser = FakeBrowser(profile)
    if fixture is None:
        first = browser.first_offer()
    else:
        first = raw(fixture)
        parsed = sdp.parse(first)
        browser.ufrag = parsed.media[0].ice_ufrag or parsed.ice_ufrag or ""
        browser.pwd = parsed.media[0].ice_pwd or parsed.ice_pwd or ""
        browser.sections = [
            Section(
                m.mid or "",
                m.kind,
                m.effective_direction,
                own_ssrc=m.ssrcs[0].ssrc if m.ssrcs else None,
            )
            for m in parsed.media
        ]
        browser._learn(first)
    answer_text = answer(state, sdp.parse(first))
    browser._learn(answer_text)
    return state, browser


def server_round(
    state: NegotiationState, browser: FakeBrowser, tracks: list[OutTrack]
) -> tuple[list[OutTrack], str]:
    offer = create_server_offer(state, tracks=tracks)
    text = str(offer)
    assert sdp.parse(text) == offer.description
    apply_answer(state, sdp.parse(browser.answer(text)))
    return list(offer.tracks), text


# --------------------------------------------------------------------------------------------
# Answering client offers
# --------------------------------------------------------------------------------------------


def test_answer_chrome_dc_only_first_offer() -> None:
    state = NegotiationState(cname="sfu", session_id=42)
    offer = load("chrome_dc_offer.sdp")
    info = describe_offer(state, offer)
    assert (info.ice_ufrag, info.ice_pwd, info.setup) == (
        "Xq3l",
        "2vd7N4nsVWbTBCI3lC93kM6C",
        "actpass",
    )
    assert not info.ice_restart and info.bundle_mids == ("0",)
    assert info.fingerprints == tuple(offer.media[0].fingerprints)
    assert info.media[0].kind == "application" and info.media[0].accepted
    assert state.mids == ()  # describe_offer changes nothing

    text = answer(state, offer)
    ans = sdp.parse(text)
    assert ans.ice_lite and ans.groups[0].mids == ("0",)
    assert ans.origin.session_id == 42
    (m,) = ans.media
    assert (m.kind, m.mid, m.proto, m.formats) == (
        "application",
        "0",
        "UDP/DTLS/SCTP",
        ["webrtc-datachannel"],
    )
    assert (m.sctp_port, m.max_message_size, m.setup) == (5000, 262144, "passive")
    assert (m.ice_ufrag, m.ice_pwd) == ("SrVr", "serverpasswordserverpw1")
    assert m.fingerprints == [SERVER_FP]
    assert m.candidates == SERVER_CANDIDATES and m.end_of_candidates
    assert m.port == 8443 and m.connection is not None and m.connection.address == "192.0.2.10"
    # an independent parser reads it too
    other = aiortc_sdp.SessionDescription.parse(text)
    ice = other.media[0].ice
    assert ice is not None and ice.iceLite and other.media[0].sctp_port == 5000
    assert len(other.media[0].ice_candidates) == 2
    assert state.mids == ("0",) and state.remote_ice == ("Xq3l", "2vd7N4nsVWbTBCI3lC93kM6C")
    assert state.last_remote == info


def test_answer_chrome_audio_video_simulcast() -> None:
    state = NegotiationState(cname="sfu")
    answer(state, load("chrome_dc_offer.sdp"))
    offer = load("chrome_av_simulcast_offer.sdp")
    info = describe_offer(state, offer)
    ans = sdp.parse(answer(state, offer))
    assert ans.groups[0].mids == ("0", "1", "2")
    app, audio, video = ans.media
    assert audio.direction == "recvonly" and video.direction == "recvonly"
    assert [(c.payload_type, c.name, c.fmtp) for c in audio.codecs] == [
        (111, "opus", "minptime=10;useinbandfec=1")
    ]
    assert [str(fb) for fb in audio.codecs[0].rtcp_feedback] == ["transport-cc"]
    assert [(e.id, e.uri) for e in audio.extmaps] == [
        (1, AUDIO_LEVEL_URI),
        (3, TWCC_URI),
        (4, MID_URI),
    ]
    assert [(c.payload_type, c.name) for c in video.codecs] == [(96, "VP8"), (45, "AV1")]
    assert [str(fb) for fb in video.codecs[0].rtcp_feedback] == [
        "transport-cc",
        "ccm fir",
        "nack",
        "nack pli",
    ]  # no goog-remb
    assert video.codecs[1].fmtp == "level-idx=5;profile=0;tier=0"
    assert sorted(e.id for e in video.extmaps) == [3, 4, 10, 11]
    assert video.simulcast == Simulcast(recv=(("l",), ("h",)))
    assert [(r.id, r.direction) for r in video.rids] == [("l", "recv"), ("h", "recv")]
    assert all(m.rtcp_mux for m in (audio, video)) and not audio.msids and not audio.ssrcs
    assert all(m.setup == "passive" for m in ans.media)
    assert app.candidates and not audio.candidates  # candidates ride on the BUNDLE tag only

    a, v = info.media[1], info.media[2]
    assert a.client_sends and not a.server_sends and a.ssrcs == (2841350931,)
    assert a.stream_id == "4f1d0c8e-2b7a-4d55-9a61-0c3e5b7f9a12"
    assert a.track_id == "0d6b3e2a-9c41-4a7e-b5f8-63e1d2c0a9b4" and a.cname == "kd8Fq0y1v2LrXh3T"
    opus = a.codec("opus")
    assert opus is not None and opus.payload_type == 111
    assert a.extension_id(AUDIO_LEVEL_URI) == 1 and a.extension_id(ABS_SEND_TIME) is None
    assert v.rids == ("l", "h") and v.ssrcs == () and v.client_sends
    assert v.extension_id(RID_URI) == 10 and v.extension_id(REPAIRED_RID_URI) == 11
    assert [c.payload_type for c in v.codecs] == [96, 45]
    assert state.mids == ("0", "1", "2")


def test_simulcast_dropped_without_rid_extension() -> None:
    text = raw("chrome_av_simulcast_offer.sdp")
    text = text.replace(f"a=extmap:10 {RID_URI}\r\n", "")
    state = NegotiationState()
    ans = sdp.parse(answer(state, sdp.parse(text)))
    assert ans.media[2].simulcast is None and ans.media[2].rids == []
    assert state.last_remote is not None and state.last_remote.media[2].rids == ()


def test_firefox_offer_and_numbering_adopted() -> None:
    state = NegotiationState(cname="sfu")
    ans = sdp.parse(answer(state, load("firefox_offer.sdp")))
    audio, video, app = ans.media
    assert ans.groups[0].mids == ("0", "1", "2")
    assert all(m.port == 8443 and not m.bundle_only for m in ans.media)  # bundle-only accepted
    assert [c.payload_type for c in audio.codecs] == [109]
    assert [(c.payload_type, c.name) for c in video.codecs] == [(120, "VP8"), (123, "AV1")]
    assert {e.uri: e.id for e in audio.extmaps} == {AUDIO_LEVEL_URI: 1, MID_URI: 3}
    assert {e.uri: e.id for e in video.extmaps} == {MID_URI: 3, TWCC_URI: 7}
    assert audio.direction == "recvonly" and video.direction == "recvonly"
    assert app.sctp_port == 5000
    info = state.last_remote
    assert info is not None
    assert info.fingerprints[0].value.startswith("A4:1F")  # Firefox's session-level one
    assert info.media[1].ssrc_groups[0].semantics == "FID"

    offer = create_server_offer(
        state,
        tracks=[
            OutTrack(None, "audio", 5001, "peer", "voice_peer_1", "opus"),
            OutTrack(None, "video", 5002, "peer", "screen_peer_1", "VP8"),
        ],
    )
    new_audio, new_video = offer.description.media[3:]
    assert [t.mid for t in offer.tracks] == ["3", "4"]
    assert new_audio.payload_types == [109] and new_video.payload_types == [120]
    assert {e.uri: e.id for e in new_audio.extmaps} == {AUDIO_LEVEL_URI: 1, MID_URI: 3, TWCC_URI: 7}
    assert {e.uri: e.id for e in new_video.extmaps} == {MID_URI: 3, TWCC_URI: 7}
    assert new_audio.codecs[0].fmtp == "minptime=10;useinbandfec=1"
    # audio is offered sendrecv (as pion's AddTrack does): a client whose addTrack()
    # reuses this transceiver can start sending in its answer; video is sendonly
    assert new_audio.direction == "sendrecv" and new_audio.ssrcs[0].cname == "sfu"
    assert new_video.direction == "sendonly"
    assert [str(m) for m in new_audio.msids] == ["peer voice_peer_1"]
    # the client's own sections keep receiving
    assert [m.direction for m in offer.description.media[:2]] == ["recvonly", "recvonly"]


def test_aiortc_numbering_adopted() -> None:
    state = NegotiationState()
    answer(state, load("aiortc_offer.sdp"))
    assert state.payload_type("opus", 48000, 2) == 96 and state.payload_type("VP8", 90000) == 97
    offer = create_server_offer(
        state, tracks=[OutTrack(None, "audio", 7, "s", "t", "opus")]
    ).description
    new = offer.media[-1]
    assert new.payload_types == [96]
    ids = {e.uri: e.id for e in new.extmaps}
    assert ids[MID_URI] == 1 and ids[AUDIO_LEVEL_URI] == 2
    assert ids[TWCC_URI] not in (1, 2, 3)  # 3 is aiortc's abs-send-time


@pytest.mark.parametrize(
    ("profile", "fixture"),
    [(CHROME, None), (FIREFOX, "firefox_offer.sdp")],
    ids=["chrome-dc-first", "firefox-av-first"],
)
def test_twenty_server_offers_keep_numbering(profile: Profile, fixture: str | None) -> None:
    state, browser = connect(profile, fixture)
    prev_mids = [s.mid for s in browser.sections]
    rng = random.Random(1234)
    tracks: list[OutTrack] = []
    seen_ext: dict[int, str] = {}
    seen_pt: dict[int, str] = {}
    mid_pts: dict[str, list[int]] = {}
    ssrc = 10_000
    for step in range(20):
        if step == 10:  # the client adds its own audio in between (first unmute)
            apply_text = answer(state, sdp.parse(browser.offer(add=("audio",))))
            browser._learn(apply_text)
        if tracks and (rng.random() < 0.35 or len(tracks) > 5):
            tracks.pop(rng.randrange(len(tracks)))
        else:
            kind = rng.choice(["audio", "video"])
            ssrc += 1
            tracks.append(
                OutTrack(
                    None,
                    kind,
                    ssrc,
                    f"sess{ssrc}",
                    f"{kind}_{ssrc}",
                    "opus" if kind == "audio" else "VP8",
                )
            )
        tracks, text = server_round(state, browser, tracks)
        desc = sdp.parse(text)
        mids = [m.mid for m in desc.media]
        assert mids[: len(prev_mids)] == prev_mids, "m-line order changed"
        assert len(set(mids)) == len(mids)
        prev_mids = [m for m in mids if m is not None]
        live = {t.mid for t in tracks}
        for m in desc.media:
            assert m.mid is not None
            if m.kind == "application":
                assert m.port != 0
                continue
            if m.mid in live:
                want = "sendrecv" if m.kind == "audio" else "sendonly"
                assert m.port != 0 and m.direction == want and m.mid in desc.groups[0].mids
            elif m.port == 0:
                assert m.mid not in desc.groups[0].mids
            for e in m.extmaps:
                assert seen_ext.setdefault(e.id, e.uri) == e.uri, f"id {e.id} reassigned"
            for c in m.codecs:
                if c.name:
                    assert seen_pt.setdefault(c.payload_type, c.name) == c.name
            if m.port:
                assert mid_pts.setdefault(m.mid, m.payload_types) == m.payload_types
        # one URI, one id: no URI appears under two ids either
        assert len(set(seen_ext.values())) == len(seen_ext)
        assert state.out_tracks == {t.mid: t for t in tracks}
    assert browser.received == {t.mid: f"{t.stream_id} {t.track_id}" for t in tracks}
    # Chrome's DC-only offer numbered nothing: the server's picks are Chrome's own numbers.
    # Firefox numbered opus/VP8/mid/audio-level/twcc in its first offer: those are reused.
    assert seen_pt[profile.pts["opus"]] == "opus" and seen_pt[profile.pts["vp8"]] == "VP8"
    assert seen_ext[profile.exts[MID_URI]] == MID_URI
    assert seen_ext[profile.exts[AUDIO_LEVEL_URI]] == AUDIO_LEVEL_URI
    assert seen_ext[profile.exts[TWCC_URI]] == TWCC_URI


def test_client_reoffer_adds_audio_keeps_sections() -> None:
    state, browser = connect(CHROME)
    voice = OutTrack(None, "audio", 4242, "alice", "voice_alice_1", "opus")
    (voice,), _ = server_round(state, browser, [voice])
    assert voice.mid == "1"
    browser.sections[1].direction = "sendrecv"  # RTCPeer's Firefox workaround, on any browser
    reoffer = sdp.parse(browser.offer(add=("audio",)))
    assert [m.mid for m in reoffer.media] == ["0", "1", "2"]
    info = describe_offer(state, reoffer)
    ans = sdp.parse(answer(state, reoffer))
    app, remote_voice, own = ans.media
    assert app.sctp_port == 5000
    # the client sends on a mid the server created (Chrome's addTrack() reused the
    # receiving transceiver): the server receives there too, as pion does
    assert remote_voice.direction == "sendrecv"
    assert [str(m) for m in remote_voice.msids] == ["alice voice_alice_1"]
    assert remote_voice.ssrcs[0].ssrc == 4242 and remote_voice.payload_types == [111]
    assert own.direction == "recvonly" and own.payload_types == [111]
    assert info.media[2].client_sends and info.media[2].ssrcs == (1002,)
    assert info.media[1].server_sends and info.media[1].client_sends
    assert info.media[1].out_track == voice
    assert state.mids == ("0", "1", "2")
    browser._learn(sdp.render(ans))
    # the next server offer keeps both directions where the client sends
    offer = create_server_offer(state, tracks=[voice]).description
    assert [m.direction for m in offer.media[1:]] == ["sendrecv", "recvonly"]


def test_recvonly_client_section_gets_server_track() -> None:
    offer_text = raw("chrome_av_simulcast_offer.sdp")
    offer_text = offer_text.replace("a=sendrecv", "a=recvonly")
    offer = sdp.parse(offer_text)
    voice = OutTrack(None, "audio", 99, "bob", "voice_bob", "opus")
    state = NegotiationState(cname="sfu")
    ans = sdp.parse(answer(state, offer, server_sends={"1": voice}))
    assert ans.media[1].direction == "sendonly" and ans.media[1].ssrcs[0].ssrc == 99
    assert state.out_tracks == {"1": dataclasses.replace(voice, mid="1")}
    ans2 = sdp.parse(answer(NegotiationState(), offer))
    assert ans2.media[1].direction == "inactive" and not ans2.media[1].msids


def test_unsupported_codecs_rejected_with_port_zero() -> None:
    text = raw("chrome_av_simulcast_offer.sdp")
    text = text.replace(
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 109 114 115 116 117 118 39 40 45 46 "
        "98 99 100 101 119 120 121",
        "m=video 9 UDP/TLS/RTP/SAVPF 103 104",
    )
    text = "\r\n".join(
        line
        for line in text.split("\r\n")
        if not line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))
        or line.split(":")[1].split()[0]
        not in {
            "96",
            "97",
            "107",
            "108",
            "109",
            "114",
            "115",
            "116",
            "117",
            "118",
            "39",
            "40",
            "45",
            "46",
            "98",
            "99",
            "100",
            "101",
            "119",
            "120",
            "121",
        }
    )
    state = NegotiationState()
    ans = sdp.parse(answer(state, sdp.parse(text)))
    video = ans.media[2]
    assert video.port == 0 and video.direction == "inactive" and video.payload_types == [103]
    assert ans.groups[0].mids == ("0", "1")
    assert state.last_remote is not None and not state.last_remote.media[2].accepted
    # a rejected mid stays rejected and is re-offered with port 0
    offer = create_server_offer(state, tracks=[]).description
    assert offer.media[2].port == 0 and offer.media[2].mid == "2"


def test_removed_track_stops_section_and_mid_is_not_recycled() -> None:
    state, browser = connect(CHROME)
    tracks, _ = server_round(state, browser, [OutTrack(None, "video", 1, "s", "screen", "VP8")])
    assert tracks[0].mid == "1"
    _, text = server_round(state, browser, [])
    desc = sdp.parse(text)
    assert desc.media[1].port == 0 and desc.media[1].direction == "inactive"
    assert desc.groups[0].mids == ("0",)
    tracks, text = server_round(state, browser, [OutTrack(None, "video", 2, "s", "screen2", "VP8")])
    assert tracks[0].mid == "2"
    desc = sdp.parse(text)
    assert [m.mid for m in desc.media] == ["0", "1", "2"] and desc.media[1].port == 0
    assert desc.media[2].payload_types == desc.media[1].payload_types == [96]
    assert browser.sections[1].stopped


def test_rollback_keeps_numbers_and_never_reuses_mids() -> None:
    state, _browser = connect(CHROME)
    first = create_server_offer(state, tracks=[OutTrack(None, "audio", 1, "s", "a", "opus")])
    with pytest.raises(NegotiationError, match="already waiting for its answer"):
        create_server_offer(state, tracks=[])
    state.rollback()
    assert state.pending_offer is None
    second = create_server_offer(state, tracks=[OutTrack(None, "audio", 1, "s", "a", "opus")])
    assert first.tracks[0].mid == "1" and second.tracks[0].mid == "2"
    assert second.description.media[-1].payload_types == first.description.media[-1].payload_types
    assert second.description.origin.session_version > first.description.origin.session_version


def test_tentative_server_id_given_up_when_client_uses_it() -> None:
    """Ids we pick for a client that never numbered a URI are tentative: if its answer declines
    the extension and it later uses that id for another URI, the client wins and ours moves."""
    state, browser = connect(CHROME)
    browser.p = dataclasses.replace(CHROME, kind_exts={"audio": [MID_URI], "video": [MID_URI]})
    tracks, text = server_round(state, browser, [OutTrack(None, "audio", 1, "s", "a", "opus")])
    ours = {e.uri: e.id for e in sdp.parse(text).media[1].extmaps}
    assert ours == {AUDIO_LEVEL_URI: 1, MID_URI: 4, TWCC_URI: 3}  # Chrome's numbers, free
    assert 3 not in state.extension_id_history  # declined: still tentative
    # the browser then numbers id 3 itself, for abs-send-time, on a section of its own
    browser.ext_lifetime.pop(3)
    reoffer = browser.offer(add=("audio",)).replace(
        f"a=mid:2\r\na=extmap:4 {MID_URI}",
        f"a=mid:2\r\na=extmap:4 {MID_URI}\r\na=extmap:3 {ABS_SEND_TIME}",
    )
    assert f"a=extmap:3 {ABS_SEND_TIME}" in reoffer
    answer(state, sdp.parse(reoffer))
    assert state.extension_id_history[3] == ABS_SEND_TIME
    offer = create_server_offer(
        state, tracks=[*tracks, OutTrack(None, "audio", 2, "s", "b", "opus")]
    ).description
    new = {e.uri: e.id for e in offer.media[-1].extmaps}
    assert new[MID_URI] == 4 and new[TWCC_URI] not in (3, 4) and new[AUDIO_LEVEL_URI] == 1
    assert state.extension_id(TWCC_URI) == new[TWCC_URI]


def test_ice_restart() -> None:
    state, browser = connect(CHROME)
    browser.ufrag = "NewU"
    offer = sdp.parse(browser.offer())
    assert describe_offer(state, offer).ice_restart
    with pytest.raises(NegotiationError) as info:
        answer(state, offer)
    assert str(info.value) == (
        "the offer restarts ICE (its ice-ufrag changed); answer with new local ICE credentials"
    )
    new_ice = IceParams("Srv2", "serverpasswordserverpw2")
    ans = sdp.parse(answer(state, offer, local_ice=new_ice))
    assert ans.media[0].ice_ufrag == "Srv2" and state.remote_ice == ("NewU", browser.pwd)
    # a server-initiated restart: new credentials in the offer, the client answers with its own
    newer = IceParams("Srv3", "serverpasswordserverpw3")
    offer2 = create_server_offer(state, tracks=[], local_ice=newer)
    assert offer2.description.media[0].ice_ufrag == "Srv3"
    browser.ufrag = "New2"
    info2 = apply_answer(state, sdp.parse(browser.answer(str(offer2))))
    assert info2.ice_restart and state.local_ice == newer
    offer3 = create_server_offer(state, tracks=[]).description
    assert offer3.media[0].ice_ufrag == "Srv3"  # same credentials unless restarted


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _without(text: str, *prefixes: str) -> sdp.SessionDescription:
    return sdp.parse(
        "\r\n".join(line for line in text.split("\r\n") if not line.startswith(prefixes))
    )


CHROME_AV = raw("chrome_av_simulcast_offer.sdp")


@pytest.mark.parametrize(
    ("offer", "message"),
    [
        (
            _without(CHROME_AV, "a=rtcp-mux"),
            "m-section mid=1 has no a=rtcp-mux; the server requires RTCP multiplexing (RFC 5761)",
        ),
        (
            _without(CHROME_AV, "a=fingerprint"),
            "the offer has no a=fingerprint; DTLS-SRTP is mandatory",
        ),
        (_without(CHROME_AV, "a=ice-ufrag"), "the offer has no a=ice-ufrag"),
        (_without(CHROME_AV, "a=ice-pwd"), "the offer has no a=ice-pwd"),
        (
            sdp.parse(CHROME_AV.replace("a=setup:actpass", "a=setup:passive")),
            (
                "the offer has a=setup:passive, but the server is always the DTLS server (it answers "
                "a=setup:passive); offer actpass or active"
            ),
        ),
        (
            _without(CHROME_AV, "a=group"),
            "the offer has no a=group:BUNDLE; the server runs all media over one transport",
        ),
        (
            sdp.parse(CHROME_AV.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1")),
            (
                "m-section mid=2 is not in the offer's BUNDLE group; the server runs all media over "
                "one transport"
            ),
        ),
        (
            sdp.parse(
                CHROME_AV.replace(
                    f"a=extmap:3 {TWCC_URI}\r\na=extmap:5", f"a=extmap:3 {TOFFSET}\r\na=extmap:5"
                )
            ),
            (
                f"extension id 3 means {TWCC_URI} and {TOFFSET} in the same description; one id must "
                "name one URI across a BUNDLE group (RFC 8285)"
            ),
        ),
    ],
)
def test_offer_errors(offer: sdp.SessionDescription, message: str) -> None:
    state = NegotiationState()
    with pytest.raises(NegotiationError) as info:
        describe_offer(state, offer)
    assert str(info.value) == message
    with pytest.raises(NegotiationError):
        answer(state, offer)
    assert state.mids == ()


def test_reoffer_errors() -> None:
    state = NegotiationState()
    answer(state, load("chrome_dc_offer.sdp"))
    answer(state, load("chrome_av_simulcast_offer.sdp"))
    dc_only = load("chrome_dc_offer.sdp")
    with pytest.raises(
        NegotiationError,
        match=r"^the offer has 1 m-sections but 3 are "
        r"negotiated; a new offer keeps every m-section",
    ):
        describe_offer(state, dc_only)
    swapped = CHROME_AV.replace("a=mid:1", "a=mid:X").replace("a=mid:2", "a=mid:1")
    swapped = swapped.replace("a=mid:X", "a=mid:2").replace("BUNDLE 0 1 2", "BUNDLE 0 2 1")
    with pytest.raises(NegotiationError, match="m-section 1 has mid '2' but '1' was negotiated"):
        describe_offer(state, sdp.parse(swapped))
    renumbered = CHROME_AV.replace(f"a=extmap:1 {AUDIO_LEVEL_URI}", f"a=extmap:1 {TOFFSET}")
    with pytest.raises(NegotiationError) as info:
        describe_offer(state, sdp.parse(renumbered))
    assert str(info.value) == (
        f"extension id 1 was {AUDIO_LEVEL_URI} and is now {TOFFSET}; an "
        "id may not be reassigned during a connection (RFC 8285)"
    )


def test_glare_and_order_errors() -> None:
    fresh = NegotiationState()
    with pytest.raises(NegotiationError, match="the client has not made its first offer yet"):
        create_server_offer(fresh, tracks=[])
    with pytest.raises(NegotiationError, match="^there is no server offer waiting for an answer$"):
        apply_answer(fresh, load("chrome_dc_offer.sdp"))
    state, browser = connect(CHROME)
    create_server_offer(state, tracks=[OutTrack(None, "audio", 1, "s", "a", "opus")])
    with pytest.raises(
        NegotiationError, match=r"^a server offer is waiting for its answer \(glare"
    ):
        describe_offer(state, sdp.parse(browser.offer(add=("audio",))))


def test_server_offer_track_errors() -> None:
    state, _browser = connect(CHROME)
    with pytest.raises(NegotiationError, match="H264 is not a video codec the server forwards"):
        create_server_offer(state, tracks=[OutTrack(None, "video", 1, "s", "t", "H264")])
    with pytest.raises(NegotiationError, match="names mid '7', which does not exist"):
        create_server_offer(state, tracks=[OutTrack("7", "audio", 1, "s", "t", "opus")])
    with pytest.raises(NegotiationError, match="ssrc 1 is used twice"):
        create_server_offer(
            state,
            tracks=[
                OutTrack(None, "audio", 1, "s", "t", "opus"),
                OutTrack(None, "audio", 1, "s", "u", "opus"),
            ],
        )
    with pytest.raises(ValueError, match="OutTrack.kind must be 'audio' or 'video'"):
        OutTrack(None, "text", 1, "s", "t", "opus")
    with pytest.raises(ValueError, match="IceParams.pwd must be 22-256 characters"):
        IceParams("abcd", "short")


def _answer_errors() -> list[tuple[str, str]]:
    return [
        ("a=mid:1", "answer m-section 1 has mid 'Z', the offer had '1'"),
        (
            "a=rtpmap:111 opus/48000/2",
            ("the answer uses payload type 112 on mid=1, which the offer did not contain"),
        ),
        (
            "a=extmap:4 ",
            (f"the answer maps extension id 4 on mid=1 to urn:x:other, the offer to {MID_URI}"),
        ),
        (
            "a=setup:active",
            ("the answer has a=setup:passive; the client must stay the DTLS client (active)"),
        ),
        ("a=rtcp-mux", "the answer has no a=rtcp-mux on mid=1"),
    ]


@pytest.mark.parametrize(("needle", "message"), _answer_errors())
def test_answer_errors(needle: str, message: str) -> None:
    state, browser = connect(CHROME)
    offer = create_server_offer(state, tracks=[OutTrack(None, "audio", 1, "s", "a", "opus")])
    good = browser.answer(str(offer))
    replacements = {
        "a=mid:1": "a=mid:Z",
        "a=rtpmap:111 opus/48000/2": "a=rtpmap:112 opus/48000/2",
        "a=extmap:4 ": "a=extmap:4 urn:x:other\r\na=x-dropped:",
        "a=setup:active": "a=setup:passive",
        "a=recvonly": "a=sendrecv",
        "a=rtcp-mux": "a=x-no-mux",
    }
    bad = good.replace(needle, replacements[needle])
    if needle == "a=rtpmap:111 opus/48000/2":
        bad = bad.replace("UDP/TLS/RTP/SAVPF 111", "UDP/TLS/RTP/SAVPF 112")
    if needle == "a=mid:1":
        bad = bad.replace("BUNDLE 0 1", "BUNDLE 0 Z")
    with pytest.raises(NegotiationError) as info:
        apply_answer(state, sdp.parse(bad))
    assert str(info.value) == message
    assert state.pending_offer is not None  # still pending: the caller may roll back
    apply_answer(state, sdp.parse(good))
    assert state.pending_offer is None and state.out_tracks["1"].ssrc == 1


def test_answer_without_common_codec() -> None:
    state, browser = connect(CHROME)
    offer = create_server_offer(state, tracks=[OutTrack(None, "audio", 1, "s", "a", "opus")])
    bad = browser.answer(str(offer))
    bad = bad.replace("UDP/TLS/RTP/SAVPF 111", "UDP/TLS/RTP/SAVPF 0").replace(
        "a=rtpmap:111 opus/48000/2", "a=rtpmap:0 PCMU/8000"
    )
    with pytest.raises(NegotiationError, match="payload type 0 on mid=1, which the offer did not"):
        apply_answer(state, sdp.parse(bad))


def test_malformed_client_offer_names_the_line() -> None:
    lines = CHROME_AV.split("\r\n")
    n = lines.index("a=rtpmap:111 opus/48000/2")
    lines[n] = "a=rtpmap:111 opus"
    with pytest.raises(sdp.SdpError) as info:
        sdp.parse("\r\n".join(lines))
    assert info.value.line_no == n + 1
    assert str(info.value) == (
        f"SDP line {n + 1}: a=rtpmap encoding must be <name>/<clock rate>"
        "[/<channels>]: 'a=rtpmap:111 opus'"
    )


# --------------------------------------------------------------------------------------------
# aiortc as a real client
# --------------------------------------------------------------------------------------------


async def test_aiortc_peer_accepts_answer_and_server_offer() -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    try:
        pc.createDataChannel("calls-dc")
        pc.addTransceiver("audio", direction="sendrecv")
        await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), 10)
        state = NegotiationState(cname="sfu")
        local = [Candidate("1", 1, "udp", 2130706431, "127.0.0.1", 9, "host")]
        ans = answer_client_offer(
            state,
            sdp.parse(pc.localDescription.sdp),
            local_ice=SERVER_ICE,
            local_fingerprint=SERVER_FP,
            candidates=local,
        )
        await asyncio.wait_for(
            pc.setRemoteDescription(RTCSessionDescription(str(ans), "answer")), 10
        )
        assert [t.mid for t in pc.getTransceivers()] == ["0"]

        offer = create_server_offer(
            state, tracks=[OutTrack(None, "audio", 31337, "peer", "voice_peer", "opus")]
        )
        await asyncio.wait_for(
            pc.setRemoteDescription(RTCSessionDescription(str(offer), "offer")), 10
        )
        client_answer = await pc.createAnswer()
        info = apply_answer(state, sdp.parse(client_answer.sdp))
        new = info.media_by_mid(offer.tracks[0].mid or "")
        opus = None if new is None else new.codec("opus")
        assert new is not None and new.server_sends and opus is not None
        # aiortc's own opus number, adopted
        assert opus.payload_type == state.payload_type("opus", 48000, 2) == 96
        assert [t.mid for t in pc.getTransceivers()] == ["0", offer.tracks[0].mid]
    finally:
        await asyncio.wait_for(pc.close(), 10)


def test_server_sends_errors() -> None:
    offer = load("chrome_av_simulcast_offer.sdp")
    voice = OutTrack(None, "audio", 1, "s", "voice", "opus")
    with pytest.raises(NegotiationError, match="^server_sends names mid '9', which the offer"):
        describe_offer(NegotiationState(), offer, server_sends={"9": voice})
    with pytest.raises(
        NegotiationError, match="^the server's audio track cannot go on video mid=2"
    ):
        describe_offer(NegotiationState(), offer, server_sends={"2": voice})
    recvonly = sdp.parse(raw("chrome_av_simulcast_offer.sdp").replace("a=sendonly", "a=recvonly"))
    av1 = OutTrack(None, "video", 2, "s", "screen", "AV1")
    vp9 = OutTrack(None, "video", 2, "s", "screen", "VP9")
    assert (
        describe_offer(NegotiationState(), recvonly, server_sends={"2": av1}).media[2].server_sends
    )
    with pytest.raises(NegotiationError) as info:
        describe_offer(NegotiationState(), recvonly, server_sends={"2": vp9})
    assert str(info.value) == "the server sends VP9 on mid=2, but the client did not offer it there"


# --------------------------------------------------------------------------------------------
# Robustness: whatever parses, negotiation raises NegotiationError or succeeds
# --------------------------------------------------------------------------------------------

_LINES = sorted(
    {line for p in DATA.glob("*.sdp") for line in raw(p.name).split("\r\n") if line}
    | {
        "a=group:BUNDLE 0 1 2 3",
        "a=setup:passive",
        "a=recvonly",
        "a=inactive",
        "a=sendrecv",
        "m=audio 0 UDP/TLS/RTP/SAVPF 111",
        "m=text 9 TCP/MSRP *",
        "a=mid:3",
        "a=bundle-only",
    }
)


@st.composite
def _descriptions(draw: st.DrawFn) -> sdp.SessionDescription | None:
    """A real offer with random lines dropped and pool lines inserted."""
    name = draw(st.sampled_from(sorted(p.name for p in DATA.glob("*.sdp"))))
    lines = raw(name).split("\r\n")
    kept = [line for line in lines if not line or draw(st.integers(0, 39)) != 0]
    for _ in range(draw(st.integers(0, 3))):
        kept.insert(draw(st.integers(4, len(kept))), draw(st.sampled_from(_LINES)))
    try:
        return sdp.parse("\r\n".join(kept))
    except sdp.SdpError:
        return None


@given(_descriptions(), _descriptions())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_negotiation_never_crashes(
    first: sdp.SessionDescription | None, second: sdp.SessionDescription | None
) -> None:
    state, _ = connect(CHROME)
    for desc in (first, second):
        if desc is None:
            continue
        try:
            describe_offer(state, desc)
            answer_client_offer(
                state, desc, local_ice=SERVER_ICE, local_fingerprint=SERVER_FP, candidates=[]
            )
        except NegotiationError:
            pass
        try:
            create_server_offer(state, tracks=[OutTrack(None, "audio", 5, "s", "t", "opus")])
            apply_answer(state, desc)
        except NegotiationError:
            state.rollback()


def test_answer_direction_must_fit_a_sendonly_video_offer() -> None:
    state, browser = connect(CHROME)
    offer = create_server_offer(state, tracks=[OutTrack(None, "video", 7, "s", "screen_s_1", "VP8")])
    good = browser.answer(str(offer))
    assert "a=recvonly" in good
    with pytest.raises(NegotiationError, match="the answer says sendrecv on mid=1, which cannot answer sendonly"):
        apply_answer(state, sdp.parse(good.replace("a=recvonly", "a=sendrecv")))
