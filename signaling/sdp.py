"""Session descriptions: the model, parser and renderer for Unified Plan SDP.

Specifications:

- RFC 8866  SDP: Session Description Protocol (line grammar, ``v o s t c b m a``)
- RFC 8829  JSEP (what browsers put in offers and answers; one m-section per transceiver)
- RFC 8843  BUNDLE (``a=group:BUNDLE``, ``a=bundle-only``), RFC 8830 ``a=msid``
- RFC 8839  ICE in SDP (``a=candidate``, ``a=ice-ufrag/pwd/options``, ``a=ice-lite``)
- RFC 8840  Trickle ICE (``a=end-of-candidates``)
- RFC 8842  DTLS in SDP (``a=setup``, ``a=fingerprint``), RFC 8841 SCTP in SDP
  (``a=sctp-port``, ``a=max-message-size``)
- RFC 4585  ``a=rtcp-fb``; RFC 5761 ``a=rtcp-mux``; RFC 5506 ``a=rtcp-rsize``
- RFC 8285  ``a=extmap`` / ``a=extmap-allow-mixed``; RFC 5576 ``a=ssrc``/``a=ssrc-group``
- RFC 8851  ``a=rid``; RFC 8853 ``a=simulcast``

Why this module exists and what it is not: the SFU answers browser offers and makes its own
offers, so it must read everything Chrome, Firefox and aiortc write and write back something they
accept. This module only turns text into a typed model and back; it makes no decisions (that is
``negotiation.py``) and the engine never sees its output. Attributes we do not interpret
(``a=rtcp``, ``a=ptime``, ``a=rtcp-fb:*``...) are kept verbatim in ``attributes`` so that a
description survives a parse/render round trip.

The model is semantic, not textual: ``parse(render(d)) == d`` holds for every ``d`` that
``parse`` returns, but ``render(parse(text))`` may order lines differently from ``text`` (for
example Firefox writes ``a=fmtp`` before ``a=rtpmap``; we render ``rtpmap``, ``rtcp-fb``, ``fmtp``
per payload type, as Chrome does).

Malformed input raises :class:`SdpError` (a ``ValueError``) naming the line number and the line;
nothing else escapes :func:`parse`, whatever bytes it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DIRECTIONS",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Connection",
    "Fingerprint",
    "Group",
    "HeaderExtension",
    "MediaDescription",
    "Msid",
    "MsidSemantic",
    "Origin",
    "Rid",
    "RtcpFeedback",
    "RtpCodec",
    "SdpError",
    "SessionDescription",
    "Simulcast",
    "Ssrc",
    "SsrcGroup",
    "parse",
    "render",
]

#: The four media directions of RFC 8866 section 6.7, in no particular order.
DIRECTIONS: Final = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
SETUP_ROLES: Final = frozenset({"active", "passive", "actpass", "holdconn"})
RID_DIRECTIONS: Final = frozenset({"send", "recv"})

# Line types RFC 8866 defines. Anything else is an error; these are kept even when not modelled.
_SESSION_LINE_TYPES: Final = frozenset("vosiuepcbtrzka")
_MEDIA_LINE_TYPES: Final = frozenset("icbka")

_DIGITS = re.compile(r"[0-9]{1,20}", re.ASCII)
_FIRST_WORD = re.compile(r"(\S+)\s+(.*)", re.DOTALL)
_FMTP = re.compile(r"(\S+)(?:\s+(.*))?", re.DOTALL)
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+", re.ASCII)  # RFC 8866 "token"
_RID_ID = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)  # RFC 8851 rid-id
_FINGERPRINT_HEX = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*", re.ASCII)


class SdpError(ValueError):
    """A description that cannot be parsed; carries the 1-based line number and the line.

    ``line_no`` is 0 when the problem is not tied to one line (undecodable bytes) or when a
    single attribute value was parsed on its own (:meth:`Candidate.parse`).
    """

    def __init__(self, line_no: int, line: str, reason: str) -> None:
        self.line_no = line_no
        self.line = line
        self.reason = reason
        if line_no:
            message = f"SDP line {line_no}: {reason}: {line!r}"
        elif line:
            message = f"SDP: {reason}: {line!r}"
        else:
            message = f"SDP: {reason}"
        super().__init__(message)


class _Bad(Exception):
    """Raised by the per-line helpers; the line loop adds the line number and text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(text: str, what: str, lo: int = 0, hi: int = 2**32 - 1) -> int:
    if _DIGITS.fullmatch(text) is None:
        raise _Bad(f"{what} is not a number")
    value = int(text)
    if not lo <= value <= hi:
        raise _Bad(f"{what} {value} is out of range {lo}..{hi}")
    return value


def _token(text: str, what: str) -> str:
    if _TOKEN.fullmatch(text) is None:
        raise _Bad(f"{what} is not a valid token")
    return text


def _first_word(value: str, what: str) -> tuple[str, str]:
    """Split ``"<word> <rest>"`` on the first run of white space; the rest is kept verbatim."""
    m = _FIRST_WORD.fullmatch(value)
    if m is None:
        raise _Bad(f"expected '{what}'")
    return m.group(1), m.group(2)


# --------------------------------------------------------------------------------------------
# Model: small frozen values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 8866 5.2)."""

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>``; JSEP uses ``IN IP4 0.0.0.0``."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` such as ``AS:2500`` or ``TIAS:2500000``."""

    type: str
    value: int


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``a=`` line we keep but do not interpret: ``a=<name>[:<value>]``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Group:
    """``a=group:<semantics> <mid>...`` (RFC 5888); BUNDLE is the one that matters."""

    semantics: str
    mids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MsidSemantic:
    """``a=msid-semantic:WMS [ids]``, the legacy Plan B session attribute Chrome still writes."""

    semantic: str = "WMS"
    identifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <hex:hex:...>`` (RFC 8122): the peer's DTLS certificate digest.

    The algorithm is stored lower case and the digest upper case, so two fingerprints compare
    equal however the peer spelled them.
    """

    algorithm: str
    value: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", self.algorithm.lower())
        object.__setattr__(self, "value", self.value.upper())

    @property
    def digest(self) -> bytes:
        """The digest bytes, for comparison with the certificate seen in the DTLS handshake."""
        return bytes.fromhex(self.value.replace(":", ""))

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"


@dataclass(frozen=True, slots=True)
class Msid:
    """``a=msid:<stream-id> [<track-id>]`` (RFC 8830); Chrome writes ``-`` for no stream."""

    stream_id: str
    track_id: str | None = None

    def __str__(self) -> str:
        return self.stream_id if self.track_id is None else f"{self.stream_id} {self.track_id}"


@dataclass(frozen=True, slots=True)
class Ssrc:
    """All ``a=ssrc:<ssrc> <attr>[:<value>]`` lines of one SSRC (RFC 5576).

    ``cname`` and ``msid`` are the two attributes browsers write; anything else (``label``,
    ``mslabel``, a second ``cname``) is kept in ``attributes`` in order.
    """

    ssrc: int
    cname: str | None = None
    msid: str | None = None
    attributes: tuple[Attribute, ...] = ()


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """``a=ssrc-group:<semantics> <ssrc>...``; ``FID`` pairs media with RTX, ``SIM`` is Plan-B
    style simulcast."""

    semantics: str
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RtcpFeedback:
    """One ``a=rtcp-fb:<pt> <type> [<parameter>]`` entry, e.g. ``nack pli`` or ``transport-cc``."""

    type: str
    parameter: str | None = None

    def __str__(self) -> str:
        return self.type if self.parameter is None else f"{self.type} {self.parameter}"


@dataclass(frozen=True, slots=True)
class RtpCodec:
    """One payload type of an RTP m-section with its ``rtpmap``, ``fmtp`` and ``rtcp-fb`` lines.

    ``name == ""`` (and ``clock_rate == 0``) means the m-line listed the payload type without an
    ``a=rtpmap`` (static payload types such as 0/PCMU may do that); it renders with no rtpmap.
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None
    rtcp_feedback: tuple[RtcpFeedback, ...] = ()

    @property
    def mime_type(self) -> str:
        """``"audio/opus"``-style name without the kind: ``opus``, ``VP8``... lower-cased."""
        return self.name.lower()

    def fmtp_parameters(self) -> dict[str, str]:
        """``a=fmtp`` split on ``;`` into ``key=value`` pairs; a bare value maps to ``""``."""
        params: dict[str, str] = {}
        for item in (self.fmtp or "").split(";"):
            key, _, value = item.strip().partition("=")
            if key:
                params[key] = value
        return params


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """``a=extmap:<id>[/<direction>] <uri> [<attributes>]`` (RFC 8285)."""

    id: int
    uri: str
    direction: str | None = None
    attributes: str | None = None


@dataclass(frozen=True, slots=True)
class Rid:
    """``a=rid:<id> <send|recv> [<restrictions>]`` (RFC 8851); restrictions kept verbatim."""

    id: str
    direction: str
    params: str | None = None


@dataclass(frozen=True, slots=True)
class Simulcast:
    """``a=simulcast:<send|recv> <streams> [<recv|send> <streams>]`` (RFC 8853).

    Each direction is a tuple of streams; each stream a tuple of alternative rids. A rid
    prefixed with ``~`` is paused. ``a=simulcast:send l;h`` is ``send=(("l",), ("h",))``.
    """

    send: tuple[tuple[str, ...], ...] = ()
    recv: tuple[tuple[str, ...], ...] = ()

    @staticmethod
    def _flatten(streams: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
        return tuple(alt.lstrip("~") for stream in streams for alt in stream)

    @property
    def send_rids(self) -> tuple[str, ...]:
        """Every rid of the send direction, in order, without the pause marker."""
        return self._flatten(self.send)

    @property
    def recv_rids(self) -> tuple[str, ...]:
        """Every rid of the receive direction, in order, without the pause marker."""
        return self._flatten(self.recv)

    def __str__(self) -> str:
        parts = []
        for direction, streams in (("send", self.send), ("recv", self.recv)):
            if streams:
                parts.append(f"{direction} " + ";".join(",".join(s) for s in streams))
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An ICE candidate, ``candidate:<foundation> <component> <transport> <priority> <address>
    <port> typ <type> [raddr <a> rport <p>] [tcptype <t>] [<ext-name> <ext-value>]...``
    (RFC 8839 section 5.1; ``generation``/``ufrag``/``network-id``/``network-cost`` are the
    libwebrtc extensions).

    The transport is stored lower case (Firefox writes ``UDP``). ``address`` may be a
    hostname (mDNS ``....local``); resolving it is the engine's business.
    """

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    generation: int | None = None
    ufrag: str | None = None
    network_id: int | None = None
    network_cost: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", self.transport.lower())

    @property
    def ip(self) -> str:
        """Alias of ``address``."""
        return self.address

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """Parse a trickled candidate: the attribute value with or without ``candidate:``.

        Accepts what ``RTCIceCandidate.candidate`` holds (``candidate:842163049 1 udp ...``) and
        the bare value after ``a=candidate:``. Raises :class:`SdpError` with ``line_no == 0``.
        """
        value = text
        value = value.removeprefix("a=")
        value = value.removeprefix("candidate:")
        try:
            return _parse_candidate(value)
        except _Bad as exc:
            raise SdpError(0, text, exc.reason) from None

    def to_sdp(self) -> str:
        """The attribute value (what follows ``a=candidate:``)."""
        parts = [
            self.foundation,
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        if self.generation is not None:
            parts += ["generation", str(self.generation)]
        if self.ufrag is not None:
            parts += ["ufrag", self.ufrag]
        if self.network_id is not None:
            parts += ["network-id", str(self.network_id)]
        if self.network_cost is not None:
            parts += ["network-cost", str(self.network_cost)]
        for name, val in self.extensions:
            parts += [name, val]
        return " ".join(parts)

    def __str__(self) -> str:
        return "candidate:" + self.to_sdp()


# --------------------------------------------------------------------------------------------
# Model: sections
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class MediaDescription:
    """One m-section: an ``m=`` line and everything up to the next one.

    Attribute fields left at their defaults are simply absent from the SDP. For RTP
    protocols the m-line's payload types are ``[c.payload_type for c in codecs]``;
    ``formats`` holds the m-line formats of other protocols (``webrtc-datachannel``).
    """

    kind: str
    port: int = 9
    proto: str = "UDP/TLS/RTP/SAVPF"
    #: m-line formats for non-RTP protocols; empty for RTP sections (see ``codecs``).
    formats: list[str] = field(default_factory=list)
    #: ``m=<kind> <port>/<number of ports>``; None when the m-line gave no count.
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    #: ``i=`` and ``k=`` lines kept verbatim as (type, value).
    extra_lines: list[tuple[str, str]] = field(default_factory=list)
    mid: str | None = None
    #: None when the section has no direction attribute (RFC 8866 default: sendrecv).
    direction: str | None = None
    msids: list[Msid] = field(default_factory=list)
    ssrcs: list[Ssrc] = field(default_factory=list)
    ssrc_groups: list[SsrcGroup] = field(default_factory=list)
    codecs: list[RtpCodec] = field(default_factory=list)
    extmaps: list[HeaderExtension] = field(default_factory=list)
    extmap_allow_mixed: bool = False
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    rids: list[Rid] = field(default_factory=list)
    simulcast: Simulcast | None = None
    candidates: list[Candidate] = field(default_factory=list)
    end_of_candidates: bool = False
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: list[str] = field(default_factory=list)
    fingerprints: list[Fingerprint] = field(default_factory=list)
    setup: str | None = None
    bundle_only: bool = False
    sctp_port: int | None = None
    max_message_size: int | None = None
    #: Attributes we keep but do not interpret, in order.
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def is_rtp(self) -> bool:
        """True for ``.../RTP/...`` protocols (audio and video)."""
        return "RTP/" in self.proto

    @property
    def payload_types(self) -> list[int]:
        """The m-line payload types of an RTP section."""
        return [c.payload_type for c in self.codecs]

    @property
    def effective_direction(self) -> str:
        """The direction, with the RFC 8866 default ``sendrecv`` when none is written."""
        return self.direction or "sendrecv"

    @property
    def rejected(self) -> bool:
        """Port 0 without ``a=bundle-only``: the section is rejected or stopped (JSEP 5.2.2)."""
        return self.port == 0 and not self.bundle_only

    def codec(self, payload_type: int) -> RtpCodec | None:
        """The codec with this payload type, if the section lists it."""
        for c in self.codecs:
            if c.payload_type == payload_type:
                return c
        return None


@dataclass(slots=True)
class SessionDescription:
    """A whole description: session-level lines plus the m-sections in order."""

    origin: Origin = field(default_factory=Origin)
    name: str = "-"
    timing: tuple[int, int] = (0, 0)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    #: ``i= u= e= p= r= z= k=`` lines and repeated ``t=`` lines, verbatim as (type, value).
    extra_lines: list[tuple[str, str]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    msid_semantic: MsidSemantic | None = None
    ice_lite: bool = False
    ice_options: list[str] = field(default_factory=list)
    #: Session-level ICE and DTLS parameters, as Firefox writes them; media-level ones win.
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    fingerprints: list[Fingerprint] = field(default_factory=list)
    setup: str | None = None
    extmap_allow_mixed: bool = False
    end_of_candidates: bool = False
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Same as the module-level :func:`parse`."""
        return parse(text)

    def __str__(self) -> str:
        return render(self)

    def bundle_group(self) -> Group | None:
        """The first ``a=group:BUNDLE``, if any."""
        for group in self.groups:
            if group.semantics == "BUNDLE":
                return group
        return None

    def media_by_mid(self, mid: str) -> MediaDescription | None:
        """The m-section with this mid, if any."""
        for media in self.media:
            if media.mid == mid:
                return media
        return None


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def _parse_candidate(value: str) -> Candidate:
    words = value.split()
    if len(words) < 8:
        raise _Bad("candidate needs at least 8 fields")
    if words[6] != "typ":
        raise _Bad("candidate has no 'typ' in field 7")
    foundation = words[0]
    component = _int(words[1], "candidate component", 1, 256)
    transport = _token(words[2], "candidate transport")
    priority = _int(words[3], "candidate priority")
    address = words[4]
    port = _int(words[5], "candidate port", 0, 65535)
    cand_type = _token(words[7], "candidate type")
    known: dict[str, str] = {}
    extensions: list[tuple[str, str]] = []
    rest = words[8:]
    if len(rest) % 2:
        raise _Bad(f"candidate extension {rest[-1]!r} has no value")
    for i in range(0, len(rest), 2):
        name, val = rest[i], rest[i + 1]
        if name in (
            "raddr",
            "rport",
            "tcptype",
            "generation",
            "ufrag",
            "network-id",
            "network-cost",
        ):
            if name in known:
                raise _Bad(f"candidate has two '{name}'")
            known[name] = val
        else:
            extensions.append((name, val))

    def opt_int(name: str, hi: int = 2**32 - 1) -> int | None:
        return None if name not in known else _int(known[name], f"candidate {name}", 0, hi)

    return Candidate(
        foundation=foundation,
        component=component,
        transport=transport,
        priority=priority,
        address=address,
        port=port,
        type=cand_type,
        related_address=known.get("raddr"),
        related_port=opt_int("rport", 65535),
        tcptype=known.get("tcptype"),
        generation=opt_int("generation"),
        ufrag=known.get("ufrag"),
        network_id=opt_int("network-id"),
        network_cost=opt_int("network-cost"),
        extensions=tuple(extensions),
    )


def _parse_connection(value: str) -> Connection:
    words = value.split()
    if len(words) != 3:
        raise _Bad("c= needs 3 fields")
    return Connection(words[0], words[1], words[2])


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep:
        raise _Bad("b= needs '<type>:<value>'")
    return Bandwidth(_token(bwtype, "bandwidth type"), _int(amount, "bandwidth"))


def _parse_fingerprint(value: str) -> Fingerprint:
    words = value.split()
    if len(words) != 2:
        raise _Bad("a=fingerprint needs '<algorithm> <hex>'")
    algorithm = _token(words[0], "fingerprint algorithm")
    if _FINGERPRINT_HEX.fullmatch(words[1]) is None:
        raise _Bad("fingerprint is not colon-separated hex")
    return Fingerprint(algorithm, words[1])


def _parse_setup(value: str) -> str:
    if value not in SETUP_ROLES:
        raise _Bad("a=setup must be active, passive, actpass or holdconn")
    return value


def _parse_simulcast(value: str) -> Simulcast:
    words = value.split()
    if len(words) not in (2, 4):
        raise _Bad("a=simulcast needs '<send|recv> <rids>' once or twice")
    result: dict[str, tuple[tuple[str, ...], ...]] = {}
    for i in range(0, len(words), 2):
        direction, streams_text = words[i], words[i + 1]
        if direction not in RID_DIRECTIONS:
            raise _Bad(f"a=simulcast direction {direction!r} is not send or recv")
        if direction in result:
            raise _Bad(f"a=simulcast has two '{direction}' lists")
        streams = []
        for stream in streams_text.split(";"):
            alternatives = tuple(stream.split(","))
            for alt in alternatives:
                if _RID_ID.fullmatch(alt.removeprefix("~")) is None:
                    raise _Bad(f"a=simulcast rid {alt!r} is not valid")
            streams.append(alternatives)
        result[direction] = tuple(streams)
    return Simulcast(send=result.get("send", ()), recv=result.get("recv", ()))


class _MediaBuilder:
    """Collects one m-section's lines; codecs are assembled at the end because Firefox writes
    ``a=fmtp`` and ``a=rtcp-fb`` before the ``a=rtpmap`` of the same payload type."""

    def __init__(self, media: MediaDescription, line_no: int, line: str, fmt: list[int]) -> None:
        self.media = media
        self.line_no = line_no
        self.line = line
        self.mid_line_no = 0
        self.mid_line = ""
        self.fmt = fmt
        self.rtpmap: dict[int, tuple[str, int, int | None]] = {}
        self.fmtp: dict[int, str] = {}
        self.feedback: dict[int, list[RtcpFeedback]] = {}
        self.ssrcs: dict[int, list[Attribute]] = {}

    def _payload_type(self, text: str) -> int:
        pt = _int(text, "payload type", 0, 127)
        if pt not in self.fmt:
            raise _Bad(f"payload type {pt} is not listed in the m-line")
        return pt

    def attribute(self, name: str, value: str | None) -> None:
        m = self.media
        if not m.is_rtp and name in ("rtpmap", "fmtp", "rtcp-fb"):
            m.attributes.append(Attribute(name, value))  # e.g. legacy SCTP drafts: kept only
            return
        if value is None:
            if name in DIRECTIONS:
                if m.direction is not None:
                    raise _Bad("more than one direction attribute")
                m.direction = name
            elif name == "rtcp-mux":
                m.rtcp_mux = True
            elif name == "rtcp-rsize":
                m.rtcp_rsize = True
            elif name == "extmap-allow-mixed":
                m.extmap_allow_mixed = True
            elif name == "end-of-candidates":
                m.end_of_candidates = True
            elif name == "bundle-only":
                m.bundle_only = True
            else:
                m.attributes.append(Attribute(name, None))
            return
        if name == "mid":
            if m.mid is not None:
                raise _Bad("more than one a=mid")
            if not value:
                raise _Bad("a=mid is empty")
            m.mid = value
        elif name == "rtpmap":
            pt_text, encoding = _first_word(value, "a=rtpmap:<pt> <name>/<clock>[/<channels>]")
            pt = self._payload_type(pt_text)
            if pt in self.rtpmap:
                raise _Bad(f"second a=rtpmap for payload type {pt}")
            parts = encoding.split("/")
            if len(parts) not in (2, 3) or not parts[0]:
                raise _Bad("a=rtpmap encoding must be <name>/<clock rate>[/<channels>]")
            codec_name = _token(parts[0], "codec name")
            clock = _int(parts[1], "clock rate", 1)
            channels = _int(parts[2], "channel count", 1, 255) if len(parts) == 3 else None
            self.rtpmap[pt] = (codec_name, clock, channels)
        elif name == "fmtp":
            m_fmtp = _FMTP.fullmatch(value)
            if m_fmtp is None:
                raise _Bad("a=fmtp needs '<pt> <parameters>'")
            pt = self._payload_type(m_fmtp.group(1))
            params = m_fmtp.group(2) or ""
            if pt in self.fmtp:
                raise _Bad(f"second a=fmtp for payload type {pt}")
            self.fmtp[pt] = params
        elif name == "rtcp-fb":
            words = value.split()
            if len(words) < 2:
                raise _Bad("a=rtcp-fb needs '<pt> <type> [<parameter>]'")
            if words[0] == "*":
                m.attributes.append(Attribute(name, value))  # wildcard: kept, not interpreted
                return
            pt = self._payload_type(words[0])
            fb = RtcpFeedback(words[1], " ".join(words[2:]) or None)
            self.feedback.setdefault(pt, []).append(fb)
        elif name == "extmap":
            words = value.split(None, 2)
            if len(words) < 2:
                raise _Bad("a=extmap needs '<id>[/<direction>] <uri>'")
            id_text, slash, direction = words[0].partition("/")
            ext_id = _int(id_text, "extension id", 1, 4351)
            if slash and direction not in DIRECTIONS:
                raise _Bad("a=extmap direction is not a media direction")
            if any(e.id == ext_id for e in m.extmaps):
                raise _Bad(f"extension id {ext_id} is used twice in this m-section")
            m.extmaps.append(
                HeaderExtension(
                    ext_id,
                    words[1],
                    direction if slash else None,
                    words[2] if len(words) == 3 else None,
                )
            )
        elif name == "msid":
            words = value.split()
            if len(words) not in (1, 2):
                raise _Bad("a=msid needs '<stream id> [<track id>]'")
            m.msids.append(Msid(words[0], words[1] if len(words) == 2 else None))
        elif name == "ssrc":
            ssrc_text, rest = _first_word(value, "a=ssrc:<ssrc> <attribute>[:<value>]")
            ssrc = _int(ssrc_text, "ssrc")
            attr, sep, attr_value = rest.partition(":")
            if not attr:
                raise _Bad("a=ssrc has no attribute name")
            self.ssrcs.setdefault(ssrc, []).append(Attribute(attr, attr_value if sep else None))
        elif name == "ssrc-group":
            words = value.split()
            if len(words) < 2:
                raise _Bad("a=ssrc-group needs '<semantics> <ssrc>...'")
            ssrcs = tuple(_int(w, "ssrc") for w in words[1:])
            m.ssrc_groups.append(SsrcGroup(_token(words[0], "ssrc-group semantics"), ssrcs))
        elif name == "rid":
            words = value.split(None, 2)
            if len(words) < 2:
                raise _Bad("a=rid needs '<id> <send|recv> [<restrictions>]'")
            if _RID_ID.fullmatch(words[0]) is None:
                raise _Bad("rid id may only hold letters, digits, '-' and '_'")
            if words[1] not in RID_DIRECTIONS:
                raise _Bad("a=rid direction must be send or recv")
            m.rids.append(Rid(words[0], words[1], words[2] if len(words) == 3 else None))
        elif name == "simulcast":
            if m.simulcast is not None:
                raise _Bad("more than one a=simulcast")
            m.simulcast = _parse_simulcast(value)
        elif name == "candidate":
            m.candidates.append(_parse_candidate(value))
        elif name == "ice-ufrag":
            m.ice_ufrag = value
        elif name == "ice-pwd":
            m.ice_pwd = value
        elif name == "ice-options":
            m.ice_options.extend(value.split())
        elif name == "fingerprint":
            m.fingerprints.append(_parse_fingerprint(value))
        elif name == "setup":
            m.setup = _parse_setup(value)
        elif name == "sctp-port":
            m.sctp_port = _int(value, "sctp port", 0, 65535)
        elif name == "max-message-size":
            m.max_message_size = _int(value, "max-message-size")
        else:
            m.attributes.append(Attribute(name, value))

    def finish(self) -> MediaDescription:
        m = self.media
        if m.is_rtp:
            m.codecs = []
            for pt in self.fmt:
                codec_name, clock, channels = self.rtpmap.get(pt, ("", 0, None))
                m.codecs.append(
                    RtpCodec(
                        pt,
                        codec_name,
                        clock,
                        channels,
                        self.fmtp.get(pt),
                        tuple(self.feedback.get(pt, ())),
                    )
                )
        for ssrc, attrs in self.ssrcs.items():
            cname = msid = None
            others: list[Attribute] = []
            for attr in attrs:
                if attr.name == "cname" and cname is None and attr.value is not None:
                    cname = attr.value
                elif attr.name == "msid" and msid is None and attr.value is not None:
                    msid = attr.value
                else:
                    others.append(attr)
            m.ssrcs.append(Ssrc(ssrc, cname, msid, tuple(others)))
        return m


def _parse_m_line(value: str) -> tuple[MediaDescription, list[int]]:
    words = value.split()
    if len(words) < 4:
        raise _Bad("m-line needs '<media> <port> <proto> <format>...'")
    kind = _token(words[0], "media type")
    port_text, slash, count_text = words[1].partition("/")
    port = _int(port_text, "port", 0, 65535)
    port_count = _int(count_text, "port count", 1, 65535) if slash else None
    proto = words[2]
    if not all(_TOKEN.fullmatch(p) for p in proto.split("/")):
        raise _Bad("m-line protocol is not valid")
    media = MediaDescription(kind=kind, port=port, proto=proto, port_count=port_count)
    fmt: list[int] = []
    if media.is_rtp:
        for word in words[3:]:
            pt = _int(word, "payload type", 0, 127)
            if pt in fmt:
                raise _Bad(f"payload type {pt} is listed twice")
            fmt.append(pt)
    else:
        media.formats = words[3:]
    return media, fmt


class _SessionParser:
    def __init__(self) -> None:
        self.desc = SessionDescription()
        self.builders: list[_MediaBuilder] = []
        self.seen: set[str] = set()
        self.group_lines: list[tuple[int, str, Group]] = []

    def session_line(self, line_type: str, value: str, line_no: int, line: str) -> None:
        d = self.desc
        if line_type in "vos" and line_type in self.seen:
            raise _Bad(f"second {line_type}= line")
        if line_type == "v":
            raise _Bad("v= must be the first line")  # the first line is handled by parse()
        if line_type == "o":
            words = value.split()
            if len(words) != 6:
                raise _Bad("o= needs 6 fields")
            d.origin = Origin(
                words[0],
                _int(words[1], "session id", 0, 10**20),
                _int(words[2], "session version", 0, 10**20),
                words[3],
                words[4],
                words[5],
            )
        elif line_type == "s":
            d.name = value
        elif line_type == "t" and "t" not in self.seen:
            words = value.split()
            if len(words) != 2:
                raise _Bad("t= needs '<start> <stop>'")
            d.timing = (
                _int(words[0], "start time", 0, 10**20),
                _int(words[1], "stop time", 0, 10**20),
            )
        elif line_type == "c":
            if d.connection is not None:
                raise _Bad("second session-level c= line")
            d.connection = _parse_connection(value)
        elif line_type == "b":
            d.bandwidths.append(_parse_bandwidth(value))
        elif line_type == "a":
            self.session_attribute(value, line_no, line)
        else:
            d.extra_lines.append((line_type, value))
        self.seen.add(line_type)

    def session_attribute(self, value: str, line_no: int, line: str) -> None:
        d = self.desc
        name, sep, attr_value = value.partition(":")
        if not sep:
            if name == "ice-lite":
                d.ice_lite = True
            elif name == "extmap-allow-mixed":
                d.extmap_allow_mixed = True
            elif name == "end-of-candidates":
                d.end_of_candidates = True
            else:
                d.attributes.append(Attribute(name, None))
            return
        if name == "group":
            words = attr_value.split()
            if not words:
                raise _Bad("a=group needs '<semantics> <mid>...'")
            group = Group(_token(words[0], "group semantics"), tuple(words[1:]))
            d.groups.append(group)
            self.group_lines.append((line_no, line, group))
        elif name == "msid-semantic":
            words = attr_value.split()
            if not words:
                raise _Bad("a=msid-semantic needs a semantic")
            d.msid_semantic = MsidSemantic(words[0], tuple(words[1:]))
        elif name == "ice-options":
            d.ice_options.extend(attr_value.split())
        elif name == "ice-ufrag":
            d.ice_ufrag = attr_value
        elif name == "ice-pwd":
            d.ice_pwd = attr_value
        elif name == "fingerprint":
            d.fingerprints.append(_parse_fingerprint(attr_value))
        elif name == "setup":
            d.setup = _parse_setup(attr_value)
        else:
            d.attributes.append(Attribute(name, attr_value))

    def media_line(self, line_type: str, value: str) -> None:
        builder = self.builders[-1]
        m = builder.media
        if line_type == "c":
            if m.connection is not None:
                raise _Bad("second c= line in this m-section")
            m.connection = _parse_connection(value)
        elif line_type == "b":
            m.bandwidths.append(_parse_bandwidth(value))
        elif line_type == "a":
            name, sep, attr_value = value.partition(":")
            builder.attribute(name, attr_value if sep else None)
        else:
            m.extra_lines.append((line_type, value))

    def feed(self, line_no: int, line: str) -> None:
        if len(line) < 2 or line[1] != "=":
            raise _Bad("expected '<type>=<value>'")
        line_type, value = line[0], line[2:]
        if line_type == "m":
            for required in "os":
                if required not in self.seen:
                    raise _Bad(f"m-line before the session's {required}= line")
            media, fmt = _parse_m_line(value)
            self.builders.append(_MediaBuilder(media, line_no, line, fmt))
            return
        if not self.builders:
            if line_type not in _SESSION_LINE_TYPES:
                raise _Bad(f"unknown line type {line_type!r}")
            self.session_line(line_type, value, line_no, line)
            return
        if line_type not in _MEDIA_LINE_TYPES:
            if line_type in _SESSION_LINE_TYPES:
                raise _Bad(f"session-level {line_type}= line inside an m-section")
            raise _Bad(f"unknown line type {line_type!r}")
        before = self.builders[-1].media.mid
        self.media_line(line_type, value)
        if before is None and self.builders[-1].media.mid is not None:
            self.builders[-1].mid_line_no, self.builders[-1].mid_line = line_no, line

    def finish(self) -> SessionDescription:
        for required in "os":
            if required not in self.seen:
                raise SdpError(0, "", f"the description has no {required}= line")
        desc = self.desc
        desc.media = [b.finish() for b in self.builders]
        mids: set[str] = set()
        for b in self.builders:
            mid = b.media.mid
            if mid is None:
                continue
            if mid in mids:
                raise SdpError(b.mid_line_no, b.mid_line, f"mid {mid!r} is used twice")
            mids.add(mid)
        if desc.bundle_group() is not None:
            for b in self.builders:
                if b.media.mid is None:
                    raise SdpError(
                        b.line_no, b.line, "m-section has no a=mid but the session uses BUNDLE"
                    )
        for line_no, line, group in self.group_lines:
            for mid in group.mids:
                if mid not in mids:
                    raise SdpError(
                        line_no, line, f"group names mid {mid!r}, which no m-section has"
                    )
        return desc


def parse(text: str | bytes) -> SessionDescription:
    """Parse a session description; raises :class:`SdpError` for anything malformed.

    Lines may end in ``\\r\\n`` or ``\\n``; blank lines are ignored. ``bytes`` must be UTF-8.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError(0, "", "the description is not valid UTF-8") from None
    if not isinstance(text, str):
        raise SdpError(0, "", f"expected str or bytes, got {type(text).__name__}")
    parser = _SessionParser()
    line_no = 0
    first = True
    for line_no, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if not line:
            continue
        try:
            if first:
                if line != "v=0":
                    raise _Bad("the description must start with 'v=0'")
                first = False
                continue
            parser.feed(line_no, line)
        except _Bad as exc:
            raise SdpError(line_no, line, exc.reason) from None
    if first:
        raise SdpError(0, "", "the description is empty")
    return parser.finish()


# --------------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------------


def _render_media(m: MediaDescription, out: list[str]) -> None:
    formats = [str(pt) for pt in m.payload_types] if m.is_rtp else list(m.formats)
    port = str(m.port) if m.port_count is None else f"{m.port}/{m.port_count}"
    out.append(" ".join([f"m={m.kind}", port, m.proto, *formats]))
    if m.connection is not None:
        out.append(f"c={m.connection}")
    out.extend(f"b={b.type}:{b.value}" for b in m.bandwidths)
    out.extend(f"{t}={v}" for t, v in m.extra_lines)
    if m.bundle_only:
        out.append("a=bundle-only")
    out.extend(f"a=candidate:{c.to_sdp()}" for c in m.candidates)
    if m.end_of_candidates:
        out.append("a=end-of-candidates")
    if m.ice_ufrag is not None:
        out.append(f"a=ice-ufrag:{m.ice_ufrag}")
    if m.ice_pwd is not None:
        out.append(f"a=ice-pwd:{m.ice_pwd}")
    if m.ice_options:
        out.append("a=ice-options:" + " ".join(m.ice_options))
    out.extend(f"a=fingerprint:{f}" for f in m.fingerprints)
    if m.setup is not None:
        out.append(f"a=setup:{m.setup}")
    if m.mid is not None:
        out.append(f"a=mid:{m.mid}")
    if m.extmap_allow_mixed:
        out.append("a=extmap-allow-mixed")
    for e in m.extmaps:
        ident = str(e.id) if e.direction is None else f"{e.id}/{e.direction}"
        tail = "" if e.attributes is None else f" {e.attributes}"
        out.append(f"a=extmap:{ident} {e.uri}{tail}")
    if m.direction is not None:
        out.append(f"a={m.direction}")
    out.extend(f"a=msid:{msid}" for msid in m.msids)
    if m.rtcp_mux:
        out.append("a=rtcp-mux")
    if m.rtcp_rsize:
        out.append("a=rtcp-rsize")
    for c in m.codecs:
        if c.name:
            channels = "" if c.channels is None else f"/{c.channels}"
            out.append(f"a=rtpmap:{c.payload_type} {c.name}/{c.clock_rate}{channels}")
        out.extend(f"a=rtcp-fb:{c.payload_type} {fb}" for fb in c.rtcp_feedback)
        if c.fmtp is not None:
            out.append(f"a=fmtp:{c.payload_type} {c.fmtp}")
    if m.sctp_port is not None:
        out.append(f"a=sctp-port:{m.sctp_port}")
    if m.max_message_size is not None:
        out.append(f"a=max-message-size:{m.max_message_size}")
    for r in m.rids:
        out.append(f"a=rid:{r.id} {r.direction}" + ("" if r.params is None else f" {r.params}"))
    if m.simulcast is not None:
        out.append(f"a=simulcast:{m.simulcast}")
    for g in m.ssrc_groups:
        out.append(f"a=ssrc-group:{g.semantics} " + " ".join(str(s) for s in g.ssrcs))
    for s in m.ssrcs:
        if s.cname is not None:
            out.append(f"a=ssrc:{s.ssrc} cname:{s.cname}")
        if s.msid is not None:
            out.append(f"a=ssrc:{s.ssrc} msid:{s.msid}")
        out.extend(f"a=ssrc:{s.ssrc} {attr}" for attr in s.attributes)
    out.extend(f"a={attr}" for attr in m.attributes)


def render(desc: SessionDescription) -> str:
    """Render with ``\\r\\n`` line ends, in RFC 8866 line order (Chrome-like attribute order)."""
    out = ["v=0", f"o={desc.origin}", f"s={desc.name}"]
    if desc.connection is not None:
        out.append(f"c={desc.connection}")
    out.extend(f"b={b.type}:{b.value}" for b in desc.bandwidths)
    out.append(f"t={desc.timing[0]} {desc.timing[1]}")
    out.extend(f"{t}={v}" for t, v in desc.extra_lines)
    for g in desc.groups:
        out.append(" ".join([f"a=group:{g.semantics}", *g.mids]))
    if desc.extmap_allow_mixed:
        out.append("a=extmap-allow-mixed")
    if desc.msid_semantic is not None:
        ms = desc.msid_semantic
        out.append(" ".join([f"a=msid-semantic:{ms.semantic}", *ms.identifiers]))
    if desc.ice_lite:
        out.append("a=ice-lite")
    if desc.ice_options:
        out.append("a=ice-options:" + " ".join(desc.ice_options))
    if desc.ice_ufrag is not None:
        out.append(f"a=ice-ufrag:{desc.ice_ufrag}")
    if desc.ice_pwd is not None:
        out.append(f"a=ice-pwd:{desc.ice_pwd}")
    out.extend(f"a=fingerprint:{f}" for f in desc.fingerprints)
    if desc.setup is not None:
        out.append(f"a=setup:{desc.setup}")
    if desc.end_of_candidates:
        out.append("a=end-of-candidates")
    out.extend(f"a={attr}" for attr in desc.attributes)
    for media in desc.media:
        _render_media(media, out)
    return "\r\n".join(out) + "\r\n"
