"""SDP model, parser and renderer: real browser offers, round trips, errors, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.signaling import sdp
from switchboard.signaling.sdp import (
    Attribute,
    Candidate,
    Fingerprint,
    Group,
    HeaderExtension,
    MediaDescription,
    Msid,
    Rid,
    RtcpFeedback,
    RtpCodec,
    SdpError,
    SessionDescription,
    Simulcast,
    Ssrc,
    SsrcGroup,
)

DATA = Path(__file__).parent / "data" / "sdp"
FIXTURES = sorted(p.name for p in DATA.glob("*.sdp"))


def load(name: str) -> str:
    return (DATA / name).read_bytes().decode()


def test_fixtures_present() -> None:
    assert {
        "chrome_dc_offer.sdp",
        "chrome_av_simulcast_offer.sdp",
        "firefox_offer.sdp",
        "aiortc_offer.sdp",
    } <= set(FIXTURES)


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_round_trip(name: str) -> None:
    text = load(name)
    assert "\r\n" in text
    desc = sdp.parse(text)
    rendered = sdp.render(desc)
    assert rendered.endswith("\r\n")
    assert "\n" not in rendered.replace("\r\n", "")
    assert sdp.parse(rendered) == desc
    # the same text with bare \n line ends is the same description
    assert sdp.parse(text.replace("\r\n", "\n")) == desc
    assert sdp.parse(text.encode()) == desc


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_renders_the_same_lines(name: str) -> None:
    """Semantically identical: every line comes back, only the order may differ."""

    def lines(text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            if line.startswith("a=msid-semantic:"):  # Chrome writes "a=msid-semantic: WMS"
                line = "a=msid-semantic:" + line.split(":", 1)[1].strip()
            out.append(line)
        return sorted(out)

    text = load(name)
    assert lines(sdp.render(sdp.parse(text))) == lines(text)


def test_chrome_dc_offer_fields() -> None:
    d = sdp.parse(load("chrome_dc_offer.sdp"))
    assert d.origin.session_id == 6187443025893172540
    assert d.origin.session_version == 2
    assert d.groups == [Group("BUNDLE", ("0",))]
    assert d.extmap_allow_mixed
    assert d.msid_semantic is not None and d.msid_semantic.semantic == "WMS"
    assert d.msid_semantic.identifiers == ()
    (m,) = d.media
    assert (m.kind, m.port, m.proto, m.formats) == (
        "application",
        9,
        "UDP/DTLS/SCTP",
        ["webrtc-datachannel"],
    )
    assert not m.is_rtp and not m.rejected
    assert (m.mid, m.sctp_port, m.max_message_size) == ("0", 5000, 262144)
    assert (m.ice_ufrag, m.ice_pwd) == ("Xq3l", "2vd7N4nsVWbTBCI3lC93kM6C")
    assert m.ice_options == ["trickle"]
    assert m.setup == "actpass"
    assert m.fingerprints[0].algorithm == "sha-256"
    assert m.fingerprints[0].digest[:2] == b"\x5c\x6a"
    assert len(m.fingerprints[0].digest) == 32


def test_chrome_av_simulcast_offer_fields() -> None:
    d = sdp.parse(load("chrome_av_simulcast_offer.sdp"))
    assert [m.mid for m in d.media] == ["0", "1", "2"]
    audio, video = d.media[1], d.media[2]
    opus = audio.codec(111)
    assert opus == RtpCodec(
        111, "opus", 48000, 2, "minptime=10;useinbandfec=1", (RtcpFeedback("transport-cc"),)
    )
    assert opus.fmtp_parameters() == {"minptime": "10", "useinbandfec": "1"}
    assert audio.payload_types == [111, 63, 9, 0, 8, 13, 110, 126]
    assert audio.codec(63) == RtpCodec(63, "red", 48000, 2, "111/111")
    assert audio.direction == "sendrecv" and audio.rtcp_mux and audio.rtcp_rsize
    assert HeaderExtension(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level") in audio.extmaps
    assert audio.msids == [
        Msid("4f1d0c8e-2b7a-4d55-9a61-0c3e5b7f9a12", "0d6b3e2a-9c41-4a7e-b5f8-63e1d2c0a9b4")
    ]
    assert audio.ssrcs == [
        Ssrc(
            2841350931,
            "kd8Fq0y1v2LrXh3T",
            "4f1d0c8e-2b7a-4d55-9a61-0c3e5b7f9a12 0d6b3e2a-9c41-4a7e-b5f8-63e1d2c0a9b4",
        )
    ]
    assert Attribute("rtcp", "9 IN IP4 0.0.0.0") in audio.attributes  # kept, not interpreted
    vp8 = video.codec(96)
    assert vp8 is not None and vp8.name == "VP8" and vp8.clock_rate == 90000
    assert [str(fb) for fb in vp8.rtcp_feedback] == [
        "goog-remb",
        "transport-cc",
        "ccm fir",
        "nack",
        "nack pli",
    ]
    assert video.codec(45) == RtpCodec(
        45, "AV1", 90000, None, "level-idx=5;profile=0;tier=0", vp8.rtcp_feedback
    )
    assert video.direction == "sendonly"
    assert video.rids == [Rid("l", "send"), Rid("h", "send")]
    assert video.simulcast == Simulcast(send=(("l",), ("h",)))
    assert video.simulcast.send_rids == ("l", "h")
    assert video.ssrcs == []
    ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in video.extmaps}
    assert ids["rtp-stream-id"] == 10 and ids["repaired-rtp-stream-id"] == 11


def test_firefox_offer_fields() -> None:
    d = sdp.parse(load("firefox_offer.sdp"))
    assert d.origin.username == "mozilla...THIS_IS_SDPARTA-99.0"
    assert d.fingerprints[0].algorithm == "sha-256"  # session level, as Firefox writes it
    assert d.ice_options == ["trickle"]
    assert d.msid_semantic is not None and d.msid_semantic.identifiers == ("*",)
    audio, video, app = d.media
    assert audio.ice_ufrag == "7b3e9c21" and audio.setup == "actpass"
    # fmtp was written before rtpmap: still one codec
    assert audio.codec(109) == RtpCodec(
        109, "opus", 48000, 2, "maxplaybackrate=48000;stereo=1;useinbandfec=1"
    )
    assert audio.codec(9) == RtpCodec(9, "G722", 8000, 1)
    assert (
        HeaderExtension(2, "urn:ietf:params:rtp-hdrext:csrc-audio-level", "recvonly")
        in audio.extmaps
    )
    assert video.port == 0 and video.bundle_only and not video.rejected
    assert app.port == 0 and app.bundle_only and app.direction == "sendrecv"
    assert app.max_message_size == 1073741823
    vp8 = video.codec(120)
    assert vp8 is not None and vp8.fmtp == "max-fs=12288;max-fr=60"
    assert RtcpFeedback("nack", "pli") in vp8.rtcp_feedback
    assert video.ssrc_groups == [SsrcGroup("FID", (3462719054, 1183564207))]
    assert [s.ssrc for s in video.ssrcs] == [3462719054, 1183564207]


def test_aiortc_offer_fields() -> None:
    d = sdp.parse(load("aiortc_offer.sdp"))
    audio = d.media[0]
    assert audio.codec(96) == RtpCodec(96, "opus", 48000, 2)
    assert len(audio.fingerprints) == 3
    assert audio.end_of_candidates
    v4, v6 = audio.candidates
    assert (v4.transport, v4.type, v4.component, v4.priority) == ("udp", "host", 1, 2130706431)
    assert v4.port == audio.port and audio.connection is not None
    assert v4.address == audio.connection.address
    assert ":" in v6.address
    assert d.media[1].ssrc_groups[0].semantics == "FID"


def test_build_and_render() -> None:
    media = MediaDescription(
        "video",
        mid="3",
        direction="sendonly",
        codecs=[RtpCodec(96, "VP8", 90000, rtcp_feedback=(RtcpFeedback("nack", "pli"),))],
        extmaps=[HeaderExtension(4, "urn:ietf:params:rtp-hdrext:sdes:mid")],
        msids=[Msid("stream", "track")],
        ssrcs=[Ssrc(1234, "cname", "stream track")],
        rtcp_mux=True,
        rids=[Rid("l", "recv", "pt=96;max-width=1280")],
        simulcast=Simulcast(recv=(("l", "~m"), ("h",))),
    )
    desc = SessionDescription(groups=[Group("BUNDLE", ("3",))], ice_lite=True, media=[media])
    text = str(desc)
    assert "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" in text
    assert "a=rtcp-fb:96 nack pli\r\n" in text
    assert "a=simulcast:recv l,~m;h\r\n" in text
    assert "a=rid:l recv pt=96;max-width=1280\r\n" in text
    assert "a=ssrc:1234 msid:stream track\r\n" in text
    assert text.startswith("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
    assert SessionDescription.parse(text) == desc
    assert media.simulcast is not None and media.simulcast.recv_rids == ("l", "m", "h")


def test_unknown_attributes_and_lines_are_kept() -> None:
    text = (
        "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=x\ni=info\nt=0 0\nr=7d 1h 0 25h\n"
        "a=x-session:1\na=flag\n"
        "m=audio 9 RTP/SAVPF 0\nb=AS:64\ni=media info\na=ptime:20\na=rtcp-fb:* nack\n"
        "a=x-odd\n"
    )
    d = sdp.parse(text)
    assert d.extra_lines == [("i", "info"), ("r", "7d 1h 0 25h")]
    assert d.attributes == [Attribute("x-session", "1"), Attribute("flag")]
    m = d.media[0]
    assert m.codecs == [RtpCodec(0, "", 0)]  # static payload type without rtpmap
    assert m.bandwidths[0].value == 64
    assert m.attributes == [
        Attribute("ptime", "20"),
        Attribute("rtcp-fb", "* nack"),
        Attribute("x-odd"),
    ]
    assert sdp.parse(sdp.render(d)) == d
    assert "a=rtcp-fb:* nack" in sdp.render(d)


# ---- candidates ----------------------------------------------------------------------------


def test_candidate_parse_full() -> None:
    c = Candidate.parse(
        "candidate:842163049 1 UDP 1677729535 203.0.113.7 61665 typ srflx raddr 192.168.1.5 "
        "rport 61665 generation 0 ufrag Xq3l network-id 1 network-cost 10 x-foo bar"
    )
    assert c == Candidate(
        "842163049",
        1,
        "udp",
        1677729535,
        "203.0.113.7",
        61665,
        "srflx",
        related_address="192.168.1.5",
        related_port=61665,
        generation=0,
        ufrag="Xq3l",
        network_id=1,
        network_cost=10,
        extensions=(("x-foo", "bar"),),
    )
    assert Candidate.parse(str(c)) == c
    assert Candidate.parse("a=" + str(c)) == c
    assert Candidate.parse(c.to_sdp()) == c
    tcp = Candidate.parse("1 1 tcp 1518280447 192.0.2.1 8443 typ host tcptype passive")
    assert (tcp.transport, tcp.tcptype, tcp.ip) == ("tcp", "passive", "192.0.2.1")
    mdns = Candidate.parse("candidate:1 1 udp 2113937151 5f1d0c.local 50000 typ host")
    assert mdns.address == "5f1d0c.local"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("candidate:1 1 udp 1 1.2.3.4 5", "candidate needs at least 8 fields"),
        ("candidate:1 1 udp 1 1.2.3.4 5 host x", "candidate has no 'typ' in field 7"),
        ("candidate:1 x udp 1 1.2.3.4 5 typ host", "candidate component is not a number"),
        ("candidate:1 1 udp 1 1.2.3.4 99999 typ host", "candidate port 99999 is out of range"),
        ("candidate:1 1 udp 1 1.2.3.4 5 typ host raddr", "candidate extension 'raddr' has no"),
        ("candidate:1 1 udp 1 1.2.3.4 5 typ host rport x", "candidate rport is not a number"),
    ],
)
def test_candidate_errors(text: str, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        Candidate.parse(text)
    assert reason in str(info.value)
    assert info.value.line_no == 0 and info.value.line == text


# ---- errors --------------------------------------------------------------------------------

HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("body", "line_no", "reason"),
    [
        ("m=audio 9 UDP/TLS/RTP/SAVPF\r\n", 5, "m-line needs '<media> <port> <proto> <format>...'"),
        ("m=audio nine UDP/TLS/RTP/SAVPF 111\r\n", 5, "port is not a number"),
        ("m=audio 70000 UDP/TLS/RTP/SAVPF 111\r\n", 5, "port 70000 is out of range 0..65535"),
        ("m=audio 9 UDP/TLS/RTP/SAVPF opus\r\n", 5, "payload type is not a number"),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 111 111\r\n", 5, "payload type 111 is listed twice"),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus\r\n",
            6,
            "a=rtpmap encoding must be <name>/<clock rate>[/<channels>]",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/x/2\r\n",
            6,
            "clock rate is not a number",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:112 opus/48000/2\r\n",
            6,
            "payload type 112 is not listed in the m-line",
        ),
        (
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
                "a=rtpmap:111 opus/48000/2\r\n"
            ),
            7,
            "second a=rtpmap for payload type 111",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=recvonly\r\n",
            7,
            "more than one direction attribute",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:client\r\n",
            6,
            "a=setup must be active, passive, actpass or holdconn",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 XYZ\r\n",
            6,
            "fingerprint is not colon-separated hex",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:0 urn:x\r\n",
            6,
            "extension id 0 is out of range 1..4351",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:1 urn:x\r\na=extmap:1 urn:y\r\n",
            7,
            "extension id 1 is used twice in this m-section",
        ),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ssrc:12x cname:a\r\n", 6, "ssrc is not a number"),
        (
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rid:l both\r\n",
            6,
            "a=rid direction must be send or recv",
        ),
        (
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=simulcast:sideways l\r\n",
            6,
            "a=simulcast direction 'sideways' is not send or recv",
        ),
        (
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:abc\r\n",
            6,
            "sctp port is not a number",
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nt=0 0\r\n",
            6,
            "session-level t= line inside an m-section",
        ),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nx=1\r\n", 6, "unknown line type 'x'"),
        ("bogus\r\n", 5, "expected '<type>=<value>'"),
        ("c=IN IP4\r\n", 5, "c= needs 3 fields"),
        (
            "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
            6,
            "m-section has no a=mid but the session uses BUNDLE",
        ),
        (
            "a=group:BUNDLE 0 7\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n",
            5,
            "group names mid '7', which no m-section has",
        ),
        (
            (
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
                "a=mid:0\r\n"
            ),
            8,
            "mid '0' is used twice",
        ),
    ],
)
def test_errors_name_the_line(body: str, line_no: int, reason: str) -> None:
    text = HEAD + body
    with pytest.raises(SdpError) as info:
        sdp.parse(text)
    err = info.value
    assert err.line_no == line_no
    assert err.reason == reason
    line = text.split("\r\n")[line_no - 1]
    assert err.line == line
    assert str(err) == f"SDP line {line_no}: {reason}: {line!r}"


def test_error_message_format() -> None:
    with pytest.raises(
        SdpError,
        match=r"^SDP line 5: port is not a number: 'm=audio x UDP/TLS/"
        r"RTP/SAVPF 0'$",
    ):
        sdp.parse(HEAD + "m=audio x UDP/TLS/RTP/SAVPF 0\r\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "SDP: the description is empty"),
        ("\r\n\r\n", "SDP: the description is empty"),
        (
            "o=- 1 1 IN IP4 0.0.0.0\r\n",
            ("SDP line 1: the description must start with 'v=0': 'o=- 1 1 IN IP4 0.0.0.0'"),
        ),
        ("v=0\r\ns=-\r\n", "SDP: the description has no o= line"),
        (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 RTP/AVP 0\r\n",
            "SDP line 3: m-line before the session's s= line: 'm=audio 9 RTP/AVP 0'",
        ),
        (
            "v=0\r\no=- 1 IN IP4 0.0.0.0\r\n",
            "SDP line 2: o= needs 6 fields: 'o=- 1 IN IP4 0.0.0.0'",
        ),
        ("v=0\r\nv=0\r\n", "SDP line 2: v= must be the first line: 'v=0'"),
    ],
)
def test_session_errors(text: str, message: str) -> None:
    with pytest.raises(SdpError) as info:
        sdp.parse(text)
    assert str(info.value) == message


def test_bytes_input() -> None:
    with pytest.raises(SdpError, match="not valid UTF-8"):
        sdp.parse(b"v=0\r\n\xff\xfe")
    assert sdp.parse(HEAD.encode()).name == "-"
    assert isinstance(SdpError(1, "x", "y"), ValueError)


def test_fingerprint_normalised() -> None:
    assert Fingerprint("SHA-256", "ab:cd") == Fingerprint("sha-256", "AB:CD")


# ---- property tests ------------------------------------------------------------------------


def _parse_or_error(data: str | bytes) -> SessionDescription | None:
    try:
        return sdp.parse(data)
    except SdpError:
        return None


@given(st.text(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_never_crashes(text: str) -> None:
    _parse_or_error(text)
    _parse_or_error(HEAD + text)


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _parse_or_error(data)
    _parse_or_error(HEAD.encode() + data)


_POOL = sorted(
    {line for name in FIXTURES for line in load(name).split("\r\n") if line}
    | {
        "a=rtcp-fb:* nack",
        "a=simulcast:send l,~m;h recv x",
        "a=rid:x recv pt=96",
        "a=ssrc:5 label:foo",
        "a=ssrc:5 cname",
        "a=extmap:9/sendonly urn:x attr  more",
        "a=fmtp:96",
        "a=fmtp:96\tx=1",
        "b=AS:30",
        "i=hello",
        "k=prompt",
        "a=x-y",
        "a=:",
        "a=",
        "a=ice-lite",
        "a=end-of-candidates",
        "c=IN IP6 ::1",
        "t=1 2",
        "z=0 0",
        "a=candidate:1 1 TCP 5 h.local 9 typ host tcptype active generation 0 weird value",
        "m=audio 0 UDP/TLS/RTP/SAVPF 0",
        "m=video 9/2 RTP/AVPF 96 97",
        "m=text 9 TCP/MSRP *",
    }
)


@st.composite
def _sdp_like(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(_POOL), max_size=40))
    mutated = []
    for line in lines:
        if draw(st.integers(0, 9)) == 0 and line:
            cut = draw(st.integers(0, len(line)))
            line = line[:cut] + draw(st.text(max_size=3)) + line[cut:]
        mutated.append(line)
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    return HEAD.replace("\r\n", eol) + eol.join(mutated) + eol


@given(_sdp_like())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_render_parse_is_identity(text: str) -> None:
    desc = _parse_or_error(text)
    if desc is not None:
        assert sdp.parse(sdp.render(desc)) == desc
