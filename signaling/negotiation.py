"""Offer/answer for the SFU: answer client offers, make server offers, keep numbering stable.

Specifications:

- RFC 3264  the offer/answer model (directions are mirrored; payload types echo the offer)
- RFC 8829  JSEP 5.2/5.3 (m-sections never move or disappear; stopped ones get port 0)
- RFC 8843  BUNDLE (one transport; the first mid of the answer's group is the BUNDLE tag)
- RFC 8285  header extensions: one id means one URI for the whole bundle
- RFC 8842  DTLS roles: offers say ``actpass``; the server always answers ``passive``
- RFC 8851 / RFC 8853  rid simulcast (``send l;h`` answered ``recv l;h``)
- RFC 5761  rtcp-mux, which we require (single 5-tuple per peer)

Why this module exists. The client (``RTCPeer``) makes the first offer, data channel only; from then
on the server offers each forwarded track it adds or removes. Browsers remember the numbering of
every description for the whole life of the connection: Chrome rejects a remote offer that gives an
extension id a new URI ("RTP extension ID reassignment not supported"), and an m-line whose opus
payload type changes goes silent. Chrome numbers opus 111 / VP8 96 / audio-level 1 / mid 4, Firefox
opus 109 / VP8 120 / audio-level 1 / mid 3, aiortc opus 96 / mid 1. So a
:class:`NegotiationState` per peer connection adopts the client's numbers, reuses them in every
server offer, picks fresh numbers only for what the client never numbered, and never hands a number
the client used for one thing to another.

This is pure logic: no I/O, no clock, no engine imports. The engine never sees SDP text; what it
needs comes out as plain dataclasses (:class:`RemoteInfo`, :class:`MediaInfo`).

Typical use::

    state = NegotiationState()
    info = describe_offer(state, offer)                 # validate; ICE restart? codecs, ssrcs, rids
    answer = answer_client_offer(state, offer, local_ice=..., local_fingerprint=..., candidates=...)
    offer2 = create_server_offer(state, tracks=[OutTrack(None, "audio", 1234, "sid", "tid", "opus")])
    info2 = apply_answer(state, parse(client_answer_text))
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from .sdp import (
    Candidate,
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
    SessionDescription,
    Simulcast,
    Ssrc,
    SsrcGroup,
)

__all__ = [
    "AUDIO_LEVEL_URI",
    "MID_URI",
    "REPAIRED_RID_URI",
    "RID_URI",
    "SERVER_CODECS",
    "TWCC_URI",
    "IceParams",
    "MediaInfo",
    "NegotiatedCodec",
    "NegotiationError",
    "NegotiationState",
    "OutTrack",
    "RemoteInfo",
    "ServerCodec",
    "ServerOffer",
    "answer_client_offer",
    "apply_answer",
    "create_server_offer",
    "describe_offer",
]

MID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
AUDIO_LEVEL_URI: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TWCC_URI: Final = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

#: Extensions we accept per kind (answers echo the client's ids for these).
_RECV_EXTENSIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "audio": (AUDIO_LEVEL_URI, MID_URI, TWCC_URI),
    "video": (MID_URI, RID_URI, REPAIRED_RID_URI, TWCC_URI),
}
#: Extensions offered on a new server (sendonly) section: we never send simulcast, so no rids.
_SEND_EXTENSIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "audio": (AUDIO_LEVEL_URI, MID_URI, TWCC_URI),
    "video": (MID_URI, TWCC_URI),
}
#: Ids picked for a URI the client never numbered, if still free (Chrome's own numbers).
_PREFERRED_EXT_IDS: Final[Mapping[str, int]] = {
    AUDIO_LEVEL_URI: 1,
    TWCC_URI: 3,
    MID_URI: 4,
    RID_URI: 10,
    REPAIRED_RID_URI: 11,
}
#: Free one-byte-header ids first (RFC 8285: 1-14), then two-byte ones (15 is reserved).
_EXT_ID_ORDER: Final = (*range(1, 15), *range(16, 256))
#: Dynamic payload types: RFC 3551's 96-127, then the 35-63 range libwebrtc also uses.
_PT_ORDER: Final = (*range(96, 128), *range(35, 64))

_SCTP_PROTOS: Final = frozenset({"UDP/DTLS/SCTP", "TCP/DTLS/SCTP"})
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+", re.ASCII)

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_REVERSE: Final[Mapping[str, str]] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
#: What an answer may say for each offered direction (RFC 3264 section 6.1).
_ANSWERABLE: Final[Mapping[str, frozenset[str]]] = {
    "sendrecv": frozenset({"sendrecv", "sendonly", "recvonly", "inactive"}),
    "sendonly": frozenset({"recvonly", "inactive"}),
    "recvonly": frozenset({"sendonly", "inactive"}),
    "inactive": frozenset({"inactive"}),
}


class NegotiationError(ValueError):
    """A description we cannot accept, or a request the negotiation state cannot satisfy."""


def _direction(send: bool, recv: bool) -> str:
    if send:
        return "sendrecv" if recv else "sendonly"
    return "recvonly" if recv else "inactive"


def _sends(direction: str) -> bool:
    return direction in ("sendrecv", "sendonly")


def _receives(direction: str) -> bool:
    return direction in ("sendrecv", "recvonly")


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerCodec:
    """A codec the SFU forwards, with the payload type it prefers when the client has none."""

    #: "audio" or "video".
    kind: str
    #: Encoding name as written in a=rtpmap (matched case-insensitively).
    name: str
    #: RTP clock rate in Hz.
    clock_rate: int
    #: Channel count (audio); None for video.
    channels: int | None
    #: Payload type used only if the client never numbered this codec and it is still free.
    payload_type: int
    #: a=fmtp we write; None means echo the client's.
    fmtp: str | None
    #: RTCP feedback we support; answers keep the intersection with the client's.
    rtcp_feedback: tuple[RtcpFeedback, ...]


_VIDEO_FB: Final = (
    RtcpFeedback("transport-cc"),
    RtcpFeedback("ccm", "fir"),
    RtcpFeedback("nack"),
    RtcpFeedback("nack", "pli"),
)
#: The server's codec table (rtcd's media engine minus goog-remb; see reference/rtcd.md 1.5).
SERVER_CODECS: Final = (
    ServerCodec(
        "audio",
        "opus",
        48000,
        2,
        111,
        "minptime=10;useinbandfec=1",
        (RtcpFeedback("transport-cc"),),
    ),
    ServerCodec("video", "VP8", 90000, None, 96, None, _VIDEO_FB),
    ServerCodec("video", "AV1", 90000, None, 45, None, _VIDEO_FB),
)

_CodecKey = tuple[str, int, int]


def _key(name: str, clock_rate: int, channels: int | None) -> _CodecKey:
    return (name.lower(), clock_rate, channels or 1)


def _server_codec(kind: str, codec: RtpCodec) -> ServerCodec | None:
    key = _key(codec.name, codec.clock_rate, codec.channels)
    for sc in SERVER_CODECS:
        if sc.kind == kind and _key(sc.name, sc.clock_rate, sc.channels) == key:
            return sc
    return None


def _server_codec_by_name(kind: str, name: str) -> ServerCodec | None:
    for sc in SERVER_CODECS:
        if sc.kind == kind and sc.name.lower() == name.lower():
            return sc
    return None


@dataclass(frozen=True, slots=True)
class IceParams:
    """The server's ICE credentials for one peer connection (RFC 8839 section 5.4)."""

    #: ice-ufrag: 4 to 256 ice-chars (letters, digits, '+', '/').
    ufrag: str
    #: ice-pwd: 22 to 256 ice-chars.
    pwd: str
    #: Write a=ice-lite (the server only answers connectivity checks).
    ice_lite: bool = True

    def __post_init__(self) -> None:
        if not 4 <= len(self.ufrag) <= 256 or _ICE_CHARS.fullmatch(self.ufrag) is None:
            raise ValueError("IceParams.ufrag must be 4-256 characters of [A-Za-z0-9+/]")
        if not 22 <= len(self.pwd) <= 256 or _ICE_CHARS.fullmatch(self.pwd) is None:
            raise ValueError("IceParams.pwd must be 22-256 characters of [A-Za-z0-9+/]")


@dataclass(frozen=True, slots=True)
class OutTrack:
    """A track the server sends to this peer connection."""

    #: The m-section it goes on; None asks :func:`create_server_offer` for a new section.
    mid: str | None
    #: "audio" or "video".
    kind: str
    #: The SSRC the server sends it with on this connection.
    ssrc: int
    #: msid stream id (rtcd: the sender's session id, so audio and video share a stream).
    stream_id: str
    #: msid track id (rtcd: "<type>_<sender session>_<random>").
    track_id: str
    #: "opus", "VP8" or "AV1" (case-insensitive).
    codec_name: str

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ValueError(f"OutTrack.kind must be 'audio' or 'video', not {self.kind!r}")
        if not 0 <= self.ssrc < 2**32:
            raise ValueError("OutTrack.ssrc must be a 32-bit unsigned integer")
        for name in ("stream_id", "track_id"):
            value = getattr(self, name)
            if not value or any(ch.isspace() for ch in value):
                raise ValueError(f"OutTrack.{name} must be non-empty without white space")


@dataclass(frozen=True, slots=True)
class NegotiatedCodec:
    """A payload type both sides agreed on, numbered as the client numbered it."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None
    fmtp: str | None
    #: Agreed feedback, e.g. ("transport-cc", "nack", "nack pli", "ccm fir").
    rtcp_feedback: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the engine needs about one m-section after an offer/answer round."""

    mid: str
    #: Position of the m-line (never changes for a mid).
    index: int
    #: "audio", "video" or "application" (or whatever unknown kind the client used).
    kind: str
    #: False when the section is rejected / stopped (port 0).
    accepted: bool
    #: The client's direction as it wrote it (RFC default sendrecv when absent).
    client_direction: str
    #: Our direction for the section in the description we wrote.
    local_direction: str
    #: The client's SSRCs in order of appearance (none for rid-only simulcast).
    ssrcs: tuple[int, ...]
    #: a=ssrc-group lines (FID media/RTX pairs, SIM).
    ssrc_groups: tuple[SsrcGroup, ...]
    #: The client's RTCP CNAME, if it wrote one.
    cname: str | None
    #: Accepted simulcast rids the client sends, in its order (empty without simulcast).
    rids: tuple[str, ...]
    #: The client's msid stream id (None for none or "-").
    stream_id: str | None
    #: The client's msid track id.
    track_id: str | None
    #: Agreed codecs in preference order.
    codecs: tuple[NegotiatedCodec, ...]
    #: Agreed header extensions as (id, uri), the client's numbers.
    extensions: tuple[tuple[int, str], ...]
    #: The server's outbound track on this mid, when the server sends on it.
    out_track: OutTrack | None
    #: SCTP port and max message size of the client (application sections).
    sctp_port: int | None = None
    max_message_size: int | None = None

    @property
    def client_sends(self) -> bool:
        """The server should expect media from the client on this mid."""
        return self.accepted and _sends(self.client_direction) and _receives(self.local_direction)

    @property
    def server_sends(self) -> bool:
        """The client agreed to receive the server's track on this mid."""
        return self.accepted and _sends(self.local_direction) and _receives(self.client_direction)

    def extension_id(self, uri: str) -> int | None:
        """The agreed id of a header extension, or None."""
        for ext_id, ext_uri in self.extensions:
            if ext_uri == uri:
                return ext_id
        return None

    def codec(self, name: str) -> NegotiatedCodec | None:
        """The first agreed codec with this encoding name (case-insensitive)."""
        for c in self.codecs:
            if c.name.lower() == name.lower():
                return c
        return None


@dataclass(frozen=True, slots=True)
class RemoteInfo:
    """What the engine needs from a client offer or answer; no SDP text."""

    #: "offer" or "answer".
    type: str
    ice_ufrag: str
    ice_pwd: str
    #: The client's ICE credentials changed since the last description (ICE restart).
    ice_restart: bool
    ice_options: tuple[str, ...]
    #: Certificate fingerprints to check the client's DTLS certificate against.
    fingerprints: tuple[Fingerprint, ...]
    #: The client's a=setup (actpass/active); the server is always the DTLS server.
    setup: str
    #: Candidates that came inside the description (more may trickle).
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool
    #: The agreed BUNDLE group, tag first.
    bundle_mids: tuple[str, ...]
    media: tuple[MediaInfo, ...]

    def media_by_mid(self, mid: str) -> MediaInfo | None:
        """The section with this mid, if any."""
        for m in self.media:
            if m.mid == mid:
                return m
        return None


@dataclass(frozen=True, slots=True)
class ServerOffer:
    """The result of :func:`create_server_offer`."""

    description: SessionDescription
    #: The requested tracks in the same order, each with the mid it went on.
    tracks: tuple[OutTrack, ...]

    def __str__(self) -> str:
        return str(self.description)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Section:
    """One m-section as it stands in the last description we wrote (or are offering)."""

    mid: str
    kind: str
    proto: str
    origin: str  # "client" (the client's offer created it) or "server"
    rejected: bool = False
    #: Our codec lines, client-numbered. A rejected section keeps one for its m-line.
    codecs: list[RtpCodec] = field(default_factory=list)
    extmaps: list[HeaderExtension] = field(default_factory=list)
    local_direction: str = "inactive"
    client_direction: str = "inactive"
    out_track: OutTrack | None = None
    #: Our a=rid (recv) lines and a=simulcast:recv, when we receive simulcast.
    rids: list[Rid] = field(default_factory=list)
    simulcast: Simulcast | None = None
    #: m-line formats of non-RTP sections.
    formats: list[str] = field(default_factory=list)

    def copy(self) -> _Section:
        return dataclasses.replace(
            self,
            codecs=list(self.codecs),
            extmaps=list(self.extmaps),
            rids=list(self.rids),
            formats=list(self.formats),
        )


@dataclass(slots=True)
class _Pending:
    description: SessionDescription
    sections: list[_Section]
    local_ice: IceParams
    local_fingerprints: tuple[Fingerprint, ...]
    candidates: tuple[Candidate, ...]


class NegotiationState:
    """Everything one peer connection's negotiation must remember for its whole life.

    Numbers are adopted from the client: every payload type and extension id that appears in a
    client offer or answer is recorded with what it meant. Numbers the server picks itself are
    tentative until the client's answer confirms them; a tentative number the client later uses
    for something else is given up (the client wins), a confirmed one never changes meaning.
    """

    def __init__(
        self,
        *,
        cname: str | None = None,
        session_id: int | None = None,
        sctp_port: int = 5000,
        max_message_size: int = 262144,
    ) -> None:
        #: RTCP CNAME of every SSRC the server sends on this connection.
        self.cname = cname or secrets.token_urlsafe(12)
        #: o= session id of our descriptions.
        self.session_id = secrets.randbits(62) if session_id is None else session_id
        #: Our a=sctp-port and a=max-message-size.
        self.sctp_port = sctp_port
        self.max_message_size = max_message_size
        self._version = 0
        self._sections: list[_Section] = []
        self._mids_ever: set[str] = set()
        self._pt_by_codec: dict[_CodecKey, int] = {}
        self._pt_owner: dict[int, tuple[_CodecKey, bool]] = {}
        self._client_codecs: dict[_CodecKey, RtpCodec] = {}
        self._ext_by_uri: dict[str, int] = {}
        self._ext_owner: dict[int, tuple[str, bool]] = {}
        self._pending: _Pending | None = None
        #: Our ICE credentials and certificate fingerprints (from the last description we wrote).
        self.local_ice: IceParams | None = None
        self.local_fingerprints: tuple[Fingerprint, ...] = ()
        #: Our candidates (repeated in server offers unless new ones are given).
        self.local_candidates: tuple[Candidate, ...] = ()
        #: The client's current ICE ufrag and pwd.
        self.remote_ice: tuple[str, str] | None = None
        self.remote_fingerprints: tuple[Fingerprint, ...] = ()
        #: The BUNDLE tag mid of the current transport.
        self.bundle_tag: str | None = None
        #: What the engine was told about the last client description.
        self.last_remote: RemoteInfo | None = None

    # ---- read-only views -------------------------------------------------------------------

    @property
    def mids(self) -> tuple[str, ...]:
        """The negotiated mids in m-line order (rejected ones included)."""
        return tuple(s.mid for s in self._sections)

    @property
    def pending_offer(self) -> SessionDescription | None:
        """The server offer waiting for the client's answer."""
        return None if self._pending is None else self._pending.description

    @property
    def out_tracks(self) -> dict[str, OutTrack]:
        """mid -> the server's track on it, as last negotiated."""
        return {
            s.mid: s.out_track for s in self._sections if s.out_track is not None and not s.rejected
        }

    @property
    def extension_ids(self) -> dict[str, int]:
        """URI -> the id the server uses for it now."""
        return dict(self._ext_by_uri)

    @property
    def extension_id_history(self) -> dict[int, str]:
        """id -> the URI it has meant for the client (confirmed numbers only)."""
        return {i: uri for i, (uri, confirmed) in self._ext_owner.items() if confirmed}

    @property
    def payload_type_history(self) -> dict[int, str]:
        """pt -> "name/clock[/channels]" it has meant for the client (confirmed numbers only)."""
        return {
            pt: f"{k[0]}/{k[1]}/{k[2]}"
            for pt, (k, confirmed) in self._pt_owner.items()
            if confirmed
        }

    def payload_type(self, name: str, clock_rate: int, channels: int | None = None) -> int | None:
        """The payload type the server uses for a codec on this connection, if any yet."""
        return self._pt_by_codec.get(_key(name, clock_rate, channels))

    def extension_id(self, uri: str) -> int | None:
        """The id the server uses for a header extension on this connection, if any yet."""
        return self._ext_by_uri.get(uri)

    def rollback(self) -> None:
        """Forget the pending server offer (its answer never came, or glare went the client's
        way). Numbers it picked stay reserved; mids it allocated are never reused."""
        self._pending = None

    # ---- numbering -------------------------------------------------------------------------

    def _check_client_extmaps(self, descs: Sequence[MediaDescription]) -> None:
        seen: dict[int, str] = {}
        for m in descs:
            for e in m.extmaps:
                if seen.setdefault(e.id, e.uri) != e.uri:
                    raise NegotiationError(
                        f"extension id {e.id} means {seen[e.id]} and {e.uri} in the same "
                        "description; one id must name one URI across a BUNDLE group (RFC 8285)"
                    )
                owner = self._ext_owner.get(e.id)
                if owner is not None and owner[1] and owner[0] != e.uri:
                    raise NegotiationError(
                        f"extension id {e.id} was {owner[0]} and is now {e.uri}; "
                        "an id may not be reassigned during a connection (RFC 8285)"
                    )

    def _note_client_extmap(self, ext_id: int, uri: str) -> None:
        owner = self._ext_owner.get(ext_id)
        if owner is not None and owner[0] != uri and self._ext_by_uri.get(owner[0]) == ext_id:
            del self._ext_by_uri[owner[0]]  # a tentative pick of ours the client took over
        self._ext_owner[ext_id] = (uri, True)
        self._ext_by_uri[uri] = ext_id

    def _note_client_codec(self, codec: RtpCodec) -> None:
        if not codec.name:
            return
        key = _key(codec.name, codec.clock_rate, codec.channels)
        owner = self._pt_owner.get(codec.payload_type)
        if (
            owner is not None
            and owner[0] != key
            and self._pt_by_codec.get(owner[0]) == codec.payload_type
        ):
            del self._pt_by_codec[owner[0]]
        self._pt_owner[codec.payload_type] = (key, True)
        if key[0] != "rtx" and key[0] != "red":
            self._pt_by_codec[key] = codec.payload_type
            self._client_codecs[key] = codec

    def _pick_extension_id(self, uri: str) -> int:
        current = self._ext_by_uri.get(uri)
        if current is not None:
            return current
        preferred = _PREFERRED_EXT_IDS.get(uri)
        choices: tuple[int, ...] = ((preferred,) if preferred is not None else ()) + _EXT_ID_ORDER
        for ext_id in choices:
            if ext_id not in self._ext_owner:
                self._ext_owner[ext_id] = (uri, False)
                self._ext_by_uri[uri] = ext_id
                return ext_id
        raise NegotiationError(f"no free header extension id left for {uri}")

    def _pick_codec(self, sc: ServerCodec) -> RtpCodec:
        key = _key(sc.name, sc.clock_rate, sc.channels)
        pt = self._pt_by_codec.get(key)
        if pt is None:
            for candidate in (sc.payload_type, *_PT_ORDER):
                if candidate not in self._pt_owner:
                    pt = candidate
                    break
            else:
                raise NegotiationError(f"no free payload type left for {sc.name}")
            self._pt_owner[pt] = (key, False)
            self._pt_by_codec[key] = pt
        template = self._client_codecs.get(key)
        name = template.name if template is not None else sc.name
        fmtp = sc.fmtp if sc.fmtp is not None else (template.fmtp if template else None)
        return RtpCodec(pt, name, sc.clock_rate, sc.channels, fmtp, sc.rtcp_feedback)

    def _new_mid(self) -> str:
        taken = self._mids_ever | {s.mid for s in self._sections}
        n = len(self._sections)
        while str(n) in taken:
            n += 1
        self._mids_ever.add(str(n))
        return str(n)

    def _next_origin(self) -> Origin:
        self._version += 1
        return Origin("-", self.session_id, self._version, "IN", "IP4", "127.0.0.1")


# --------------------------------------------------------------------------------------------
# Helpers shared by answers and offers
# --------------------------------------------------------------------------------------------


def _as_fingerprints(value: Fingerprint | Sequence[Fingerprint]) -> tuple[Fingerprint, ...]:
    fps = (value,) if isinstance(value, Fingerprint) else tuple(value)
    if not fps:
        raise NegotiationError("the server needs at least one certificate fingerprint")
    return fps


def _intersect_codecs(kind: str, offered: Sequence[RtpCodec]) -> list[RtpCodec]:
    result = []
    for c in offered:
        sc = _server_codec(kind, c)
        if sc is None:
            continue
        feedback = tuple(fb for fb in c.rtcp_feedback if fb in sc.rtcp_feedback)
        fmtp = sc.fmtp if sc.fmtp is not None else c.fmtp
        result.append(RtpCodec(c.payload_type, c.name, c.clock_rate, c.channels, fmtp, feedback))
    return result


def _intersect_extmaps(kind: str, offered: Sequence[HeaderExtension]) -> list[HeaderExtension]:
    supported = _RECV_EXTENSIONS.get(kind, ())
    return [
        HeaderExtension(e.id, e.uri, None if e.direction is None else _REVERSE[e.direction])
        for e in offered
        if e.uri in supported
    ]


def _default_address(candidates: Sequence[Candidate]) -> tuple[int, Connection]:
    """JSEP: the m-line port and c= carry the default candidate; 9 / 0.0.0.0 without one."""
    rtp = [c for c in candidates if c.component == 1]
    udp = [c for c in rtp if c.transport == "udp"]
    for c in udp or rtp:
        return c.port, Connection("IN", "IP6" if ":" in c.address else "IP4", c.address)
    return 9, Connection()


def _render_sections(
    state: NegotiationState,
    sections: Sequence[_Section],
    *,
    ice: IceParams,
    fingerprints: tuple[Fingerprint, ...],
    setup: str,
    candidates: Sequence[Candidate],
    bundle_tag: str | None,
) -> SessionDescription:
    accepted = [s.mid for s in sections if not s.rejected]
    if bundle_tag not in accepted:
        bundle_tag = accepted[0] if accepted else None
    port, connection = _default_address(candidates)
    desc = SessionDescription(
        origin=state._next_origin(),
        msid_semantic=MsidSemantic("WMS", ("*",)),
        ice_lite=ice.ice_lite,
    )
    if bundle_tag is not None:
        desc.groups.append(Group("BUNDLE", (bundle_tag, *[m for m in accepted if m != bundle_tag])))
    for s in sections:
        if s.rejected:
            # ICE and DTLS attributes stay on stopped sections: harmless to
            # browsers, and stricter parsers (aiortc) require them everywhere
            m = MediaDescription(s.kind, port=0, proto=s.proto, connection=Connection(), mid=s.mid,
                                 ice_ufrag=ice.ufrag, ice_pwd=ice.pwd,
                                 fingerprints=list(fingerprints), setup=setup)
            if m.is_rtp:
                first = s.codecs[0] if s.codecs else RtpCodec(0, "", 0)
                m.codecs = [
                    RtpCodec(first.payload_type, first.name, first.clock_rate, first.channels)
                ]
                m.direction = "inactive"
                m.rtcp_mux = True
            else:
                m.formats = list(s.formats[:1]) or ["webrtc-datachannel"]
            desc.media.append(m)
            continue
        m = MediaDescription(
            s.kind,
            port=port,
            proto=s.proto,
            connection=connection,
            mid=s.mid,
            ice_ufrag=ice.ufrag,
            ice_pwd=ice.pwd,
            fingerprints=list(fingerprints),
            setup=setup,
        )
        if s.mid == bundle_tag and candidates:
            m.candidates = list(candidates)
            m.end_of_candidates = True
        if s.kind == "application":
            m.formats = list(s.formats)
            m.sctp_port = state.sctp_port
            m.max_message_size = state.max_message_size
        else:
            m.direction = s.local_direction
            m.codecs = list(s.codecs)
            m.extmaps = list(s.extmaps)
            m.rtcp_mux = True
            t = s.out_track
            if t is not None and _sends(s.local_direction):
                m.msids = [Msid(t.stream_id, t.track_id)]
                m.ssrcs = [Ssrc(t.ssrc, cname=state.cname, msid=f"{t.stream_id} {t.track_id}")]
            m.rids = list(s.rids)
            m.simulcast = s.simulcast
        desc.media.append(m)
    return desc


def _msid(m: MediaDescription) -> tuple[str | None, str | None]:
    stream: str | None
    track: str | None
    if m.msids:
        stream, track = m.msids[0].stream_id, m.msids[0].track_id
    else:
        stream = track = None
        for s in m.ssrcs:
            if s.msid:
                words = s.msid.split()
                stream = words[0] if words else None
                track = words[1] if len(words) > 1 else None
                break
    return (None if stream == "-" else stream), track


def _media_info(index: int, remote: MediaDescription, sec: _Section) -> MediaInfo:
    stream_id, track_id = _msid(remote)
    cname = next((s.cname for s in remote.ssrcs if s.cname is not None), None)
    rids: tuple[str, ...] = ()
    if sec.simulcast is not None:
        rids = sec.simulcast.recv_rids
    return MediaInfo(
        mid=sec.mid,
        index=index,
        kind=sec.kind,
        accepted=not sec.rejected,
        client_direction=remote.effective_direction if remote.is_rtp else "sendrecv",
        local_direction="inactive" if sec.rejected else sec.local_direction,
        ssrcs=tuple(s.ssrc for s in remote.ssrcs),
        ssrc_groups=tuple(remote.ssrc_groups),
        cname=cname,
        rids=rids,
        stream_id=stream_id,
        track_id=track_id,
        codecs=()
        if sec.rejected
        else tuple(
            NegotiatedCodec(
                c.payload_type,
                c.name,
                c.clock_rate,
                c.channels,
                c.fmtp,
                tuple(str(fb) for fb in c.rtcp_feedback),
            )
            for c in sec.codecs
        ),
        extensions=() if sec.rejected else tuple((e.id, e.uri) for e in sec.extmaps),
        out_track=sec.out_track if not sec.rejected and _sends(sec.local_direction) else None,
        sctp_port=remote.sctp_port,
        max_message_size=remote.max_message_size,
    )


def _transport_params(
    desc: SessionDescription, transport: MediaDescription, what: str
) -> tuple[str, str, tuple[Fingerprint, ...], str | None]:
    ufrag = transport.ice_ufrag or desc.ice_ufrag
    pwd = transport.ice_pwd or desc.ice_pwd
    fingerprints = tuple(transport.fingerprints or desc.fingerprints)
    if not ufrag:
        raise NegotiationError(f"the {what} has no a=ice-ufrag")
    if not pwd:
        raise NegotiationError(f"the {what} has no a=ice-pwd")
    if not fingerprints:
        raise NegotiationError(f"the {what} has no a=fingerprint; DTLS-SRTP is mandatory")
    return ufrag, pwd, fingerprints, transport.setup or desc.setup


def _candidates(desc: SessionDescription) -> tuple[tuple[Candidate, ...], bool]:
    seen: list[Candidate] = []
    for m in desc.media:
        for c in m.candidates:
            if c not in seen:
                seen.append(c)
    eoc = desc.end_of_candidates or any(m.end_of_candidates for m in desc.media)
    return tuple(seen), eoc


# --------------------------------------------------------------------------------------------
# Client offers
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _OfferPlan:
    sections: list[_Section]
    info: RemoteInfo
    remote_ice: tuple[str, str]


def _plan_answer(
    state: NegotiationState,
    offer: SessionDescription,
    server_sends: Mapping[str, OutTrack] | None,
) -> _OfferPlan:
    if state._pending is not None:
        raise NegotiationError(
            "a server offer is waiting for its answer (glare): the server is the impolite peer "
            "and ignores client offers until it is answered or rolled back"
        )
    if not offer.media:
        raise NegotiationError("the offer has no m-sections")
    for i, m in enumerate(offer.media):
        if m.mid is None:
            raise NegotiationError(f"m-section {i} (m={m.kind}) has no a=mid")
    old = state._sections
    if len(offer.media) < len(old):
        raise NegotiationError(
            f"the offer has {len(offer.media)} m-sections but {len(old)} are negotiated; "
            "a new offer keeps every m-section, in order (RFC 8829 5.2.2)"
        )
    offered_kinds = {m.mid: m.kind for m in offer.media}
    for i, sec in enumerate(old):
        m = offer.media[i]
        if m.mid != sec.mid:
            if not sec.rejected or m.mid in {s.mid for s in old}:
                raise NegotiationError(
                    f"m-section {i} has mid {m.mid!r} but {sec.mid!r} was negotiated there; "
                    "m-sections may not be reordered or renamed"
                )
        elif m.kind != sec.kind:
            raise NegotiationError(f"m-section mid={m.mid} changed from {sec.kind} to {m.kind}")

    if server_sends is None:
        sends = {s.mid: s.out_track for s in old if s.out_track is not None and not s.rejected}
    else:
        sends = {}
        for mid, track in server_sends.items():
            if mid not in offered_kinds:
                raise NegotiationError(f"server_sends names mid {mid!r}, which the offer lacks")
            if offered_kinds[mid] != track.kind:
                raise NegotiationError(
                    f"the server's {track.kind} track cannot go on {offered_kinds[mid]} mid={mid}"
                )
            if track.mid not in (None, mid):
                raise NegotiationError(f"server_sends[{mid!r}] is a track for mid {track.mid!r}")
            sends[mid] = dataclasses.replace(track, mid=mid)

    state._check_client_extmaps(offer.media)

    group = offer.bundle_group()
    group_mids = group.mids if group is not None else ()
    transport = next(
        (m for mid in group_mids for m in offer.media if m.mid == mid and not m.rejected),
        next((m for m in offer.media if not m.rejected), offer.media[0]),
    )
    ufrag, pwd, fingerprints, setup = _transport_params(offer, transport, "offer")
    setup = setup or "active"  # RFC 4145: a missing a=setup means active
    if setup not in ("actpass", "active"):
        raise NegotiationError(
            f"the offer has a=setup:{setup}, but the server is always the DTLS server "
            "(it answers a=setup:passive); offer actpass or active"
        )
    ice_restart = state.remote_ice is not None and state.remote_ice[0] != ufrag

    sections: list[_Section] = []
    infos: list[MediaInfo] = []
    for i, m in enumerate(offer.media):
        assert m.mid is not None
        prev = old[i] if i < len(old) and old[i].mid == m.mid else None
        sec = _Section(m.mid, m.kind, m.proto, prev.origin if prev is not None else "client")
        sec.client_direction = m.effective_direction
        sec.formats = list(m.formats)
        sec.codecs = list(m.codecs[:1])  # what a rejected section shows on its m-line
        if m.rejected or (prev is not None and prev.rejected):
            sec.rejected = True
        elif m.kind == "application":
            if m.proto not in _SCTP_PROTOS or "webrtc-datachannel" not in m.formats:
                sec.rejected = True
            sec.formats = ["webrtc-datachannel"]
            sec.local_direction = sec.client_direction = "sendrecv"
        elif m.kind in ("audio", "video") and "RTP/SAVP" in m.proto:
            if not m.rtcp_mux:
                raise NegotiationError(
                    f"m-section mid={m.mid} has no a=rtcp-mux; the server requires RTCP "
                    "multiplexing (RFC 5761)"
                )
            _plan_rtp_section(sec, m, sends.get(m.mid))
        else:
            sec.rejected = True  # unknown kind or an insecure / non-RTP protocol
        sections.append(sec)
        infos.append(_media_info(i, m, sec))

    accepted = [s.mid for s in sections if not s.rejected]
    if len(accepted) > 1:
        if group is None:
            raise NegotiationError(
                "the offer has no a=group:BUNDLE; the server runs all media over one transport"
            )
        for mid in accepted:
            if mid not in group_mids:
                raise NegotiationError(
                    f"m-section mid={mid} is not in the offer's BUNDLE group; the server runs "
                    "all media over one transport"
                )
    tag = next((mid for mid in group_mids if mid in accepted), accepted[0] if accepted else None)
    bundle = (
        () if tag is None else (tag, *[mid for mid in group_mids if mid in accepted and mid != tag])
    )
    candidates, eoc = _candidates(offer)
    info = RemoteInfo(
        type="offer",
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        ice_restart=ice_restart,
        ice_options=tuple(transport.ice_options or offer.ice_options),
        fingerprints=fingerprints,
        setup=setup,
        candidates=candidates,
        end_of_candidates=eoc,
        bundle_mids=bundle,
        media=tuple(infos),
    )
    return _OfferPlan(sections, info, (ufrag, pwd))


def _plan_rtp_section(sec: _Section, m: MediaDescription, out: OutTrack | None) -> None:
    codecs = _intersect_codecs(m.kind, m.codecs)
    if not codecs:
        sec.rejected = True  # nothing we can forward: reject the m-line, not the offer
        return
    sec.codecs = codecs
    sec.extmaps = _intersect_extmaps(m.kind, m.extmaps)
    client_dir = m.effective_direction
    if out is not None and out.kind != m.kind:
        raise NegotiationError(f"the server's {out.kind} track cannot go on {m.kind} mid={sec.mid}")
    we_send = out is not None and _receives(client_dir)
    # The client may send on a section the server created: Chrome's addTrack() reuses a
    # transceiver that so far only received (RTCPeer's first unmute once others' audio was
    # offered). pion (rtcd) then turns its transceiver to sendrecv; so do we.
    we_recv = _sends(client_dir)
    if we_send:
        assert out is not None
        if not any(c.name.lower() == out.codec_name.lower() for c in codecs):
            raise NegotiationError(
                f"the server sends {out.codec_name} on mid={sec.mid}, but the client did not "
                "offer it there"
            )
    sec.out_track = out
    sec.local_direction = _direction(we_send, we_recv)
    if (
        we_recv
        and m.simulcast is not None
        and m.simulcast.send
        and any(e.uri == RID_URI for e in sec.extmaps)
    ):
        send_rids = {r.id for r in m.rids if r.direction == "send"}
        streams = []
        for stream in m.simulcast.send:
            alternatives = tuple(a for a in stream if a.lstrip("~") in send_rids)
            if alternatives:
                streams.append(alternatives)
        if streams:
            sec.simulcast = Simulcast(recv=tuple(streams))
            sec.rids = [Rid(r, "recv") for r in sec.simulcast.recv_rids]


def describe_offer(
    state: NegotiationState,
    offer: SessionDescription,
    *,
    server_sends: Mapping[str, OutTrack] | None = None,
) -> RemoteInfo:
    """Validate a client offer and say what answering it would agree to; changes nothing.

    Use it before :func:`answer_client_offer` to learn about an ICE restart (new local ICE
    credentials are then needed), the client's SSRCs, rids, msids, payload types and extension
    ids. Raises :class:`NegotiationError`.
    """
    return _plan_answer(state, offer, server_sends).info


def answer_client_offer(
    state: NegotiationState,
    offer: SessionDescription,
    *,
    local_ice: IceParams,
    local_fingerprint: Fingerprint | Sequence[Fingerprint],
    candidates: Sequence[Candidate] = (),
    server_sends: Mapping[str, OutTrack] | None = None,
) -> SessionDescription:
    """Answer a client offer and record it in ``state``.

    Every m-section is answered: the data channel with our SCTP port; audio and video with the
    codecs and extensions both sides support (the client's numbers), the direction following
    who sends (a client ``sendrecv`` on a server-created mid is answered ``sendonly``); sections
    with nothing in common get port 0. ``server_sends`` maps mid -> the server's track on it
    (default: the tracks already negotiated). ``a=setup:passive``, ``a=ice-lite``, all accepted
    mids in one BUNDLE group, candidates and ``a=end-of-candidates`` in the BUNDLE-tag section.
    ``state.last_remote`` then holds the :class:`RemoteInfo` of the offer.
    """
    fingerprints = _as_fingerprints(local_fingerprint)
    plan = _plan_answer(state, offer, server_sends)
    if (
        plan.info.ice_restart
        and state.local_ice is not None
        and state.local_ice.ufrag == local_ice.ufrag
    ):
        raise NegotiationError(
            "the offer restarts ICE (its ice-ufrag changed); answer with new local ICE credentials"
        )
    for m in offer.media:
        for c in m.codecs:
            state._note_client_codec(c)
        for e in m.extmaps:
            state._note_client_extmap(e.id, e.uri)
    answer = _render_sections(
        state,
        plan.sections,
        ice=local_ice,
        fingerprints=fingerprints,
        setup="passive",
        candidates=candidates,
        bundle_tag=plan.info.bundle_mids[0] if plan.info.bundle_mids else None,
    )
    state._sections = plan.sections
    state._mids_ever.update(s.mid for s in plan.sections)
    state.local_ice = local_ice
    state.local_fingerprints = fingerprints
    state.local_candidates = tuple(candidates)
    state.remote_ice = plan.remote_ice
    state.remote_fingerprints = plan.info.fingerprints
    state.bundle_tag = plan.info.bundle_mids[0] if plan.info.bundle_mids else None
    state.last_remote = plan.info
    return answer


# --------------------------------------------------------------------------------------------
# Server offers
# --------------------------------------------------------------------------------------------


def create_server_offer(
    state: NegotiationState,
    *,
    tracks: Sequence[OutTrack],
    local_ice: IceParams | None = None,
    local_fingerprint: Fingerprint | Sequence[Fingerprint] | None = None,
    candidates: Sequence[Candidate] | None = None,
) -> ServerOffer:
    """Offer the server's current set of outbound tracks.

    ``tracks`` is the whole set the server wants to send now: a track with a ``mid`` stays on
    that section, a track with ``mid=None`` gets a new ``sendonly`` section (new mid, appended),
    and a server-created section whose track is absent is stopped (port 0; mids are never
    recycled). Client-created sections are re-offered with the client's direction kept.
    Payload types and extension ids are the ones negotiated before; new ones reuse the client's
    numbering or take a number it never used. ``local_ice`` different from the current one is
    an ICE restart. Call :func:`apply_answer` with the client's answer (or ``state.rollback()``).
    """
    if state.local_ice is None:
        raise NegotiationError(
            "the client has not made its first offer yet; the server only re-offers "
            "a negotiated connection"
        )
    if state._pending is not None:
        raise NegotiationError("a server offer is already waiting for its answer")
    ice = local_ice or state.local_ice
    fingerprints = (
        state.local_fingerprints
        if local_fingerprint is None
        else _as_fingerprints(local_fingerprint)
    )
    cands = state.local_candidates if candidates is None else tuple(candidates)

    by_mid: dict[str, OutTrack] = {}
    ssrcs: set[int] = set()
    current = {s.mid: s for s in state._sections}
    for t in tracks:
        sc = _server_codec_by_name(t.kind, t.codec_name)
        if sc is None:
            raise NegotiationError(
                f"track {t.track_id}: {t.codec_name} is not a {t.kind} codec the server forwards"
            )
        if t.ssrc in ssrcs:
            raise NegotiationError(f"track {t.track_id}: ssrc {t.ssrc} is used twice")
        ssrcs.add(t.ssrc)
        if t.mid is None:
            continue
        sec = current.get(t.mid)
        if sec is None:
            raise NegotiationError(f"track {t.track_id} names mid {t.mid!r}, which does not exist")
        if sec.rejected:
            raise NegotiationError(f"track {t.track_id} names mid {t.mid!r}, which is stopped")
        if sec.kind != t.kind:
            raise NegotiationError(f"track {t.track_id} is {t.kind} but mid {t.mid} is {sec.kind}")
        if t.mid in by_mid:
            raise NegotiationError(f"two tracks name mid {t.mid!r}")
        if not any(c.name.lower() == t.codec_name.lower() for c in sec.codecs):
            raise NegotiationError(
                f"track {t.track_id}: {t.codec_name} was not negotiated on mid {t.mid}"
            )
        by_mid[t.mid] = t

    sections = [s.copy() for s in state._sections]
    for sec in sections:
        if sec.rejected or sec.kind not in ("audio", "video"):
            continue
        out = by_mid.get(sec.mid)
        client_sends = sec.origin == "client" or _sends(sec.client_direction)
        if out is None and not client_sends:
            sec.rejected = True  # the track went away: stop the transceiver (JSEP 5.2.2)
            sec.out_track = None
            continue
        sec.out_track = out
        # server audio sections stay sendrecv (see below); a section the client sends on
        # stays open (recvonly) when the server's track on it goes away
        sec.local_direction = _direction(out is not None, client_sends or sec.kind == "audio")

    resolved: list[OutTrack] = []
    for t in tracks:
        if t.mid is not None:
            resolved.append(t)
            continue
        sc = _server_codec_by_name(t.kind, t.codec_name)
        assert sc is not None
        mid = state._new_mid()
        placed = dataclasses.replace(t, mid=mid)
        sections.append(
            _Section(
                mid,
                t.kind,
                "UDP/TLS/RTP/SAVPF",
                "server",
                codecs=[state._pick_codec(sc)],
                extmaps=[
                    HeaderExtension(state._pick_extension_id(uri), uri)
                    for uri in _SEND_EXTENSIONS[t.kind]
                ],
                # Audio is offered sendrecv, as pion's AddTrack (rtcd) does: if the client's
                # addTrack() reuses this transceiver while its own offer lost a glare, its
                # answer can still start sending here (a sendonly offer is answered recvonly,
                # and Chrome then sees no need to negotiate again).
                local_direction="sendrecv" if t.kind == "audio" else "sendonly",
                out_track=placed,
            )
        )
        resolved.append(placed)

    description = _render_sections(
        state,
        sections,
        ice=ice,
        fingerprints=fingerprints,
        setup="actpass",
        candidates=cands,
        bundle_tag=state.bundle_tag,
    )
    state._pending = _Pending(description, sections, ice, fingerprints, cands)
    return ServerOffer(description, tuple(resolved))


def apply_answer(state: NegotiationState, answer: SessionDescription) -> RemoteInfo:
    """Validate the client's answer to the pending server offer and record it.

    Checks that the mids match in order, that payload types and extension ids are ones the
    offer made (with the same meaning), that directions are legal replies, that rtcp-mux,
    ICE credentials and a fingerprint are present and that the client stays the DTLS client.
    Raises :class:`NegotiationError` and leaves the offer pending (so the caller may roll back).
    """
    pending = state._pending
    if pending is None:
        raise NegotiationError("there is no server offer waiting for an answer")
    offer = pending.description
    if len(answer.media) != len(offer.media):
        raise NegotiationError(
            f"the answer has {len(answer.media)} m-sections, the offer had {len(offer.media)}"
        )
    for i, (om, am) in enumerate(zip(offer.media, answer.media)):
        if am.mid != om.mid:
            raise NegotiationError(
                f"answer m-section {i} has mid {am.mid!r}, the offer had {om.mid!r}"
            )
        if am.kind != om.kind:
            raise NegotiationError(f"answer mid={am.mid} is {am.kind}, the offer had {om.kind}")
    state._check_client_extmaps(answer.media)

    group = answer.bundle_group()
    group_mids = group.mids if group is not None else ()
    accepted = [am.mid for am in answer.media if not am.rejected]
    if len(accepted) > 1:
        missing = [mid for mid in accepted if mid not in group_mids]
        if missing:
            raise NegotiationError(
                f"the answer does not bundle mid={missing[0]}; the server runs all media over "
                "one transport"
            )
    transport = next(
        (am for mid in group_mids for am in answer.media if am.mid == mid and not am.rejected),
        next(
            (am for am in answer.media if not am.rejected),
            answer.media[0],
        ),
    )
    ufrag, pwd, fingerprints, setup = _transport_params(answer, transport, "answer")
    setup = setup or "active"
    if setup == "actpass":
        raise NegotiationError("a=setup:actpass is not allowed in an answer (RFC 8842)")
    if setup != "active":
        raise NegotiationError(
            f"the answer has a=setup:{setup}; the client must stay the DTLS client (active)"
        )

    sections = [s.copy() for s in pending.sections]
    infos: list[MediaInfo] = []
    for i, (sec, om, am) in enumerate(zip(sections, offer.media, answer.media)):
        if sec.rejected:
            # A stopped section stays stopped whatever the answer says (aiortc
            # answers it with a port and a=inactive); we send nothing on it.
            pass
        elif am.rejected:
            sec.rejected = True
            sec.out_track = None
        elif sec.kind in ("audio", "video"):
            _apply_rtp_answer(sec, om, am)
        infos.append(_media_info(i, am, sec))

    for am in answer.media:
        for c in am.codecs:
            state._note_client_codec(c)
        for e in am.extmaps:
            state._note_client_extmap(e.id, e.uri)
    ice_restart = state.remote_ice is not None and state.remote_ice[0] != ufrag
    candidates, eoc = _candidates(answer)
    tag = next((mid for mid in group_mids if mid in accepted), accepted[0] if accepted else None)
    info = RemoteInfo(
        type="answer",
        ice_ufrag=ufrag,
        ice_pwd=pwd,
        ice_restart=ice_restart,
        ice_options=tuple(transport.ice_options or answer.ice_options),
        fingerprints=fingerprints,
        setup=setup,
        candidates=candidates,
        end_of_candidates=eoc,
        bundle_mids=()
        if tag is None
        else (tag, *[m for m in group_mids if m in accepted and m != tag]),
        media=tuple(infos),
    )
    state._sections = sections
    state._mids_ever.update(s.mid for s in sections)
    state.local_ice = pending.local_ice
    state.local_fingerprints = pending.local_fingerprints
    state.local_candidates = pending.candidates
    state.remote_ice = (ufrag, pwd)
    state.remote_fingerprints = fingerprints
    state.bundle_tag = tag
    state.last_remote = info
    state._pending = None
    return info


def _apply_rtp_answer(sec: _Section, om: MediaDescription, am: MediaDescription) -> None:
    if not am.rtcp_mux:
        raise NegotiationError(f"the answer has no a=rtcp-mux on mid={sec.mid}")
    codecs = []
    for c in am.codecs:
        offered = om.codec(c.payload_type)
        if offered is None:
            raise NegotiationError(
                f"the answer uses payload type {c.payload_type} on mid={sec.mid}, "
                "which the offer did not contain"
            )
        if c.name and c.name.lower() != offered.name.lower():
            raise NegotiationError(
                f"the answer maps payload type {c.payload_type} on mid={sec.mid} to {c.name}, "
                f"the offer to {offered.name}"
            )
        codecs.append(offered)
    if not codecs:
        raise NegotiationError(f"no common codec on mid={sec.mid}")
    extmaps = []
    for e in am.extmaps:
        offered_ext = next((x for x in om.extmaps if x.id == e.id), None)
        if offered_ext is None:
            raise NegotiationError(
                f"the answer uses extension id {e.id} ({e.uri}) on mid={sec.mid}, "
                "which the offer did not contain"
            )
        if offered_ext.uri != e.uri:
            raise NegotiationError(
                f"the answer maps extension id {e.id} on mid={sec.mid} to {e.uri}, "
                f"the offer to {offered_ext.uri}"
            )
        extmaps.append(offered_ext)
    direction = am.effective_direction
    if direction not in _ANSWERABLE[sec.local_direction]:
        raise NegotiationError(
            f"the answer says {direction} on mid={sec.mid}, which cannot answer "
            f"{sec.local_direction}"
        )
    t = sec.out_track
    if (
        t is not None
        and _receives(direction)
        and not any(c.name.lower() == t.codec_name.lower() for c in codecs)
    ):
        raise NegotiationError(
            f"the answer on mid={sec.mid} dropped {t.codec_name}, the codec of the server's track"
        )
    sec.codecs = codecs
    sec.extmaps = extmaps
    sec.client_direction = direction
    if sec.simulcast is not None:
        answered = am.simulcast.send_rids if am.simulcast is not None else ()
        kept = tuple(r for r in sec.simulcast.recv_rids if r in answered)
        sec.simulcast = Simulcast(recv=tuple((r,) for r in kept)) if kept else None
        sec.rids = [Rid(r, "recv") for r in kept]
