"""SCTP over DTLS for WebRTC data channels: packet codec and a sans-I/O association.

Specifications:

- RFC 9260 (obsoletes RFC 4960), Stream Control Transmission Protocol:
  https://www.rfc-editor.org/rfc/rfc9260
- RFC 8261, Datagram Transport Layer Security (DTLS) Encapsulation of SCTP Packets:
  https://www.rfc-editor.org/rfc/rfc8261
- RFC 3758, SCTP Partial Reliability Extension (FORWARD-TSN):
  https://www.rfc-editor.org/rfc/rfc3758
- RFC 6525, SCTP Stream Reconfiguration (RE-CONFIG, stream reset):
  https://www.rfc-editor.org/rfc/rfc6525
- RFC 9653, Zero Checksum for SCTP: https://www.rfc-editor.org/rfc/rfc9653
- RFC 8831 section 6 (the SCTP profile WebRTC uses): https://www.rfc-editor.org/rfc/rfc8831

Why this module exists: WebRTC data channels run SCTP inside DTLS, and the browser's first offer
to the SFU carries only a data channel, so no media flows before the association is up. Every
DTLS application-data record is exactly one SCTP packet (RFC 8261 section 4), which makes SCTP a
pure bytes-in/bytes-out protocol here: no IP addresses, no multi-homing, one path. That lets
the association be sans-I/O in the aioquic style: :meth:`SctpAssociation.receive` takes a packet
and ``now``, :meth:`SctpAssociation.datagrams_to_send` returns packets for DTLS,
:meth:`SctpAssociation.next_timer` / :meth:`SctpAssociation.handle_timer` drive time, and
:meth:`SctpAssociation.events` returns typed events. Tests run it on a fake clock.

Scope (what a WebRTC peer actually needs, and nothing else): one path, no ADD-IP, no AUTH,
no I-DATA. Both sides may send INIT at once (aiortc always does; RFC 8841 section 9.3 lets
either end initiate); the collision is resolved by RFC 9260 sections 5.2.1 and 5.2.4, using
one fixed local verification tag per association so every INIT-ACK and COOKIE-ECHO agree.
The INIT-ACK's state
cookie is HMAC-SHA256-signed with a per-association secret and carries everything needed to
build the association, so a passive side keeps no state before a valid COOKIE-ECHO.

Hot-path failures are counted, never raised: :meth:`SctpAssociation.receive` swallows any
malformed packet and bumps :attr:`SctpAssociation.stats`. The codec (:meth:`SctpPacket.parse`)
raises :class:`ValueError` with a message naming the broken field.

Worked example, SACK gap blocks (RFC 9260 section 3.3.4): with cumulative TSN ack 100 and TSNs
102, 103 and 105 received, the gap blocks are offsets from the cumulative ack,
``(2, 3)`` and ``(5, 5)``; the sender infers that 101 and 104 are missing. TSN arithmetic is
serial (RFC 1982) modulo 2**32, so 0x00000001 is "after" 0xFFFFFFFF.

Wire detail that is easy to get wrong: the CRC32c is stored little-endian in the common header
(the CRC register is transmitted as is, RFC 9260 appendix B), unlike every other field.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import struct
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from switchboard._native.core import crc32c as _native_crc32c

__all__ = [
    "AbortChunk",
    "AddIncomingStreamsRequest",
    "AddOutgoingStreamsRequest",
    "AssociationState",
    "Chunk",
    "Closed",
    "Connected",
    "CookieAckChunk",
    "CookieEchoChunk",
    "DataChunk",
    "ErrorChunk",
    "ForwardTsnChunk",
    "HeartbeatAckChunk",
    "HeartbeatChunk",
    "IncomingResetRequest",
    "InitAckChunk",
    "InitChunk",
    "OutgoingResetRequest",
    "ReconfigChunk",
    "ReconfigParam",
    "ReconfigResponse",
    "SackChunk",
    "SctpAssociation",
    "SctpConfig",
    "SctpConfigError",
    "SctpError",
    "SctpEvent",
    "SctpMessageError",
    "SctpPacket",
    "SctpStateError",
    "SctpStats",
    "SctpStreamError",
    "ShutdownAckChunk",
    "ShutdownChunk",
    "ShutdownCompleteChunk",
    "SsnTsnResetRequest",
    "StreamData",
    "StreamReset",
    "StreamResetCompleted",
    "UnknownChunk",
    "UnknownReconfigParam",
    "crc32c",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

COMMON_HEADER_LENGTH = 12
CHUNK_HEADER_LENGTH = 4
DATA_CHUNK_HEADER_LENGTH = 16

# Chunk types (RFC 9260 section 3.2, RFC 3758, RFC 6525).
CHUNK_DATA = 0
CHUNK_INIT = 1
CHUNK_INIT_ACK = 2
CHUNK_SACK = 3
CHUNK_HEARTBEAT = 4
CHUNK_HEARTBEAT_ACK = 5
CHUNK_ABORT = 6
CHUNK_SHUTDOWN = 7
CHUNK_SHUTDOWN_ACK = 8
CHUNK_ERROR = 9
CHUNK_COOKIE_ECHO = 10
CHUNK_COOKIE_ACK = 11
CHUNK_SHUTDOWN_COMPLETE = 14
CHUNK_RECONFIG = 130
CHUNK_FORWARD_TSN = 192

# DATA chunk flags.
DATA_FLAG_END = 0x01
DATA_FLAG_BEGIN = 0x02
DATA_FLAG_UNORDERED = 0x04
DATA_FLAG_IMMEDIATE = 0x08  # RFC 7053 SACK-IMMEDIATELY
# ABORT / SHUTDOWN-COMPLETE "T" bit: the verification tag is the sender's own (reflected).
FLAG_TAG_REFLECTED = 0x01

# Parameters (RFC 9260 section 3.3.2.1 and extensions).
PARAM_HEARTBEAT_INFO = 0x0001
PARAM_STATE_COOKIE = 0x0007
PARAM_UNRECOGNIZED = 0x0008
PARAM_ZERO_CHECKSUM_ACCEPTABLE = 0x8001  # RFC 9653
PARAM_SUPPORTED_EXTENSIONS = 0x8008  # RFC 5061
PARAM_FORWARD_TSN_SUPPORTED = 0xC000  # RFC 3758
# Parameters an INIT may carry that we understand well enough to ignore without reporting:
# IPv4/IPv6 address, cookie preservative, host name, supported address types, ECN capable,
# AUTH random/chunk list/HMAC algorithms (RFC 4895), adaptation layer indication (RFC 5061).
_IGNORED_INIT_PARAMS = frozenset({5, 6, 9, 11, 12, 0x8000, 0x8002, 0x8003, 0x8004, 0xC006})
# RFC 9653: error detection method 1 is "SCTP over DTLS" (the DTLS record MAC protects us).
ZERO_CHECKSUM_EDMID_DTLS = 1

# Error causes (RFC 9260 section 3.3.10).
CAUSE_INVALID_STREAM = 1
CAUSE_STALE_COOKIE = 3
CAUSE_UNRECOGNIZED_CHUNK = 6
CAUSE_PROTOCOL_VIOLATION = 13
CAUSE_USER_ABORT = 12

# RE-CONFIG parameter types and results (RFC 6525 sections 4 and 4.4).
RECONFIG_OUTGOING_RESET = 13
RECONFIG_INCOMING_RESET = 14
RECONFIG_SSN_TSN_RESET = 15
RECONFIG_RESPONSE = 16
RECONFIG_ADD_OUTGOING = 17
RECONFIG_ADD_INCOMING = 18
RESULT_SUCCESS_NOTHING_TO_DO = 0
RESULT_SUCCESS_PERFORMED = 1
RESULT_DENIED = 2
RESULT_ERROR_BAD_SEQUENCE = 5
RESULT_IN_PROGRESS = 6

_U32 = 0xFFFFFFFF
_U16 = 0xFFFF

Param = tuple[int, bytes]
"""A TLV parameter or error cause: (type or cause code, value without the 4-byte header)."""


# ---------------------------------------------------------------------------------------------
# CRC32c (Castagnoli), RFC 9260 appendix B; reflected polynomial 0x82F63B78
# ---------------------------------------------------------------------------------------------


def _make_crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c_reference(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32c of ``data`` in pure Python (the reference the native one is tested against)."""
    table = _CRC32C_TABLE
    c = crc ^ _U32
    for b in bytes(data):
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ _U32


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32c of ``data``; pass a previous result as ``crc`` to continue over more data."""
    return int(_native_crc32c(data, crc))


# ---------------------------------------------------------------------------------------------
# Serial number arithmetic (RFC 1982) for 32-bit TSNs and 16-bit SSNs
# ---------------------------------------------------------------------------------------------


def tsn_lt(a: int, b: int) -> bool:
    return a != b and ((b - a) & _U32) < 0x80000000


def tsn_le(a: int, b: int) -> bool:
    return a == b or ((b - a) & _U32) < 0x80000000


def tsn_add(a: int, n: int) -> int:
    return (a + n) & _U32


def ssn_lt(a: int, b: int) -> bool:
    return a != b and ((b - a) & _U16) < 0x8000


# ---------------------------------------------------------------------------------------------
# TLV helpers (parameters and error causes share one format)
# ---------------------------------------------------------------------------------------------


def _encode_tlvs(items: Iterable[Param], what: str) -> bytes:
    # Every TLV but the last is padded to 4 bytes; the last one's padding is left to the
    # chunk padding, so the chunk length excludes it (RFC 9260 section 3.2).
    out = bytearray()
    pad = 0
    for tlv_type, value in items:
        length = 4 + len(value)
        if length > 0xFFFF:
            raise ValueError(f"{what} of type {tlv_type} is too long ({len(value)} bytes)")
        out += b"\x00" * pad
        out += struct.pack("!HH", tlv_type, length)
        out += value
        pad = -length % 4
    return bytes(out)


def _decode_tlvs(body: bytes, what: str) -> tuple[Param, ...]:
    items: list[Param] = []
    pos = 0
    end = len(body)
    while pos < end:
        if end - pos < 4:
            raise ValueError(f"{what} has {end - pos} trailing bytes")
        tlv_type, length = struct.unpack_from("!HH", body, pos)
        if length < 4 or pos + length > end:
            raise ValueError(f"{what} has an invalid length of {length} bytes")
        items.append((tlv_type, body[pos + 4 : pos + length]))
        pos += length + (-length % 4)
    return tuple(items)


def _check_u32(value: int, name: str) -> None:
    if not 0 <= value <= _U32:
        raise ValueError(f"{name} must be a 32-bit unsigned integer, got {value}")


def _check_u16(value: int, name: str) -> None:
    if not 0 <= value <= _U16:
        raise ValueError(f"{name} must be a 16-bit unsigned integer, got {value}")


# ---------------------------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataChunk:
    """DATA (RFC 9260 section 3.3.1): one fragment of a user message."""

    tsn: int
    stream_id: int
    ssn: int
    ppid: int
    user_data: bytes
    unordered: bool = False
    beginning: bool = True
    ending: bool = True
    immediate: bool = False
    CHUNK_TYPE: ClassVar[int] = CHUNK_DATA

    def _flags(self) -> int:
        return (
            (DATA_FLAG_UNORDERED if self.unordered else 0)
            | (DATA_FLAG_BEGIN if self.beginning else 0)
            | (DATA_FLAG_END if self.ending else 0)
            | (DATA_FLAG_IMMEDIATE if self.immediate else 0)
        )

    def _body(self) -> bytes:
        return struct.pack("!IHHI", self.tsn, self.stream_id, self.ssn, self.ppid) + self.user_data

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> DataChunk:
        if len(body) < 12:
            raise ValueError(f"DATA chunk is too short ({len(body) + 4} bytes, need 16)")
        if len(body) == 12:
            raise ValueError("DATA chunk has no user data")
        tsn, stream_id, ssn, ppid = struct.unpack_from("!IHHI", body)
        return cls(
            tsn,
            stream_id,
            ssn,
            ppid,
            body[12:],
            unordered=bool(flags & DATA_FLAG_UNORDERED),
            beginning=bool(flags & DATA_FLAG_BEGIN),
            ending=bool(flags & DATA_FLAG_END),
            immediate=bool(flags & DATA_FLAG_IMMEDIATE),
        )


@dataclass(frozen=True, slots=True)
class _InitBase:
    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    params: tuple[Param, ...] = ()
    _NAME: ClassVar[str] = "INIT"

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return struct.pack(
            "!IIHHI",
            self.initiate_tag,
            self.a_rwnd,
            self.outbound_streams,
            self.inbound_streams,
            self.initial_tsn,
        ) + _encode_tlvs(self.params, f"{self._NAME} parameter")

    def param(self, param_type: int) -> bytes | None:
        """The value of the first parameter of ``param_type``, or None."""
        for t, v in self.params:
            if t == param_type:
                return v
        return None


@dataclass(frozen=True, slots=True)
class InitChunk(_InitBase):
    """INIT (RFC 9260 section 3.3.2)."""

    CHUNK_TYPE: ClassVar[int] = CHUNK_INIT
    _NAME: ClassVar[str] = "INIT"

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> InitChunk:
        if len(body) < 16:
            raise ValueError(f"INIT chunk is too short ({len(body) + 4} bytes, need 20)")
        tag, a_rwnd, os_, mis, tsn = struct.unpack_from("!IIHHI", body)
        return cls(tag, a_rwnd, os_, mis, tsn, _decode_tlvs(body[16:], "INIT parameter"))


@dataclass(frozen=True, slots=True)
class InitAckChunk(_InitBase):
    """INIT-ACK (RFC 9260 section 3.3.3)."""

    CHUNK_TYPE: ClassVar[int] = CHUNK_INIT_ACK
    _NAME: ClassVar[str] = "INIT-ACK"

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> InitAckChunk:
        if len(body) < 16:
            raise ValueError(f"INIT-ACK chunk is too short ({len(body) + 4} bytes, need 20)")
        tag, a_rwnd, os_, mis, tsn = struct.unpack_from("!IIHHI", body)
        return cls(tag, a_rwnd, os_, mis, tsn, _decode_tlvs(body[16:], "INIT-ACK parameter"))


@dataclass(frozen=True, slots=True)
class SackChunk:
    """SACK (RFC 9260 section 3.3.4). Gap blocks are (start, end) offsets from the ack."""

    cumulative_tsn: int
    a_rwnd: int
    gaps: tuple[tuple[int, int], ...] = ()
    duplicates: tuple[int, ...] = ()
    CHUNK_TYPE: ClassVar[int] = CHUNK_SACK

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        out = bytearray(
            struct.pack(
                "!IIHH", self.cumulative_tsn, self.a_rwnd, len(self.gaps), len(self.duplicates)
            )
        )
        for start, end in self.gaps:
            out += struct.pack("!HH", start, end)
        for tsn in self.duplicates:
            out += struct.pack("!I", tsn)
        return bytes(out)

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> SackChunk:
        if len(body) < 12:
            raise ValueError(f"SACK chunk is too short ({len(body) + 4} bytes, need 16)")
        cum, a_rwnd, n_gaps, n_dups = struct.unpack_from("!IIHH", body)
        if len(body) != 12 + 4 * (n_gaps + n_dups):
            raise ValueError(
                f"SACK chunk length {len(body) + 4} does not match "
                f"{n_gaps} gap blocks and {n_dups} duplicate TSNs"
            )
        gaps = tuple((s, e) for s, e in struct.iter_unpack("!HH", body[12 : 12 + 4 * n_gaps]))
        dups = tuple(d for (d,) in struct.iter_unpack("!I", body[12 + 4 * n_gaps :]))
        return cls(cum, a_rwnd, gaps, dups)


@dataclass(frozen=True, slots=True)
class HeartbeatChunk:
    """HEARTBEAT (RFC 9260 section 3.3.5); the info parameter is opaque to the peer."""

    params: tuple[Param, ...]
    CHUNK_TYPE: ClassVar[int] = CHUNK_HEARTBEAT

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return _encode_tlvs(self.params, "HEARTBEAT parameter")

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> HeartbeatChunk:
        return cls(_decode_tlvs(body, "HEARTBEAT parameter"))


@dataclass(frozen=True, slots=True)
class HeartbeatAckChunk:
    """HEARTBEAT-ACK (RFC 9260 section 3.3.6): echoes the HEARTBEAT's parameters."""

    params: tuple[Param, ...]
    CHUNK_TYPE: ClassVar[int] = CHUNK_HEARTBEAT_ACK

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return _encode_tlvs(self.params, "HEARTBEAT-ACK parameter")

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> HeartbeatAckChunk:
        return cls(_decode_tlvs(body, "HEARTBEAT-ACK parameter"))


@dataclass(frozen=True, slots=True)
class AbortChunk:
    """ABORT (RFC 9260 section 3.3.7)."""

    causes: tuple[Param, ...] = ()
    tag_reflected: bool = False
    CHUNK_TYPE: ClassVar[int] = CHUNK_ABORT

    def _flags(self) -> int:
        return FLAG_TAG_REFLECTED if self.tag_reflected else 0

    def _body(self) -> bytes:
        return _encode_tlvs(self.causes, "ABORT error cause")

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> AbortChunk:
        return cls(_decode_tlvs(body, "ABORT error cause"), bool(flags & FLAG_TAG_REFLECTED))


@dataclass(frozen=True, slots=True)
class ShutdownChunk:
    """SHUTDOWN (RFC 9260 section 3.3.8)."""

    cumulative_tsn: int
    CHUNK_TYPE: ClassVar[int] = CHUNK_SHUTDOWN

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return struct.pack("!I", self.cumulative_tsn)

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> ShutdownChunk:
        if len(body) != 4:
            raise ValueError(f"SHUTDOWN chunk has an invalid length of {len(body) + 4} bytes")
        return cls(struct.unpack("!I", body)[0])


@dataclass(frozen=True, slots=True)
class ShutdownAckChunk:
    """SHUTDOWN-ACK (RFC 9260 section 3.3.9)."""

    CHUNK_TYPE: ClassVar[int] = CHUNK_SHUTDOWN_ACK

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return b""

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> ShutdownAckChunk:
        return cls()


@dataclass(frozen=True, slots=True)
class ErrorChunk:
    """ERROR (RFC 9260 section 3.3.10): one or more error causes."""

    causes: tuple[Param, ...]
    CHUNK_TYPE: ClassVar[int] = CHUNK_ERROR

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return _encode_tlvs(self.causes, "ERROR cause")

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> ErrorChunk:
        return cls(_decode_tlvs(body, "ERROR cause"))


@dataclass(frozen=True, slots=True)
class CookieEchoChunk:
    """COOKIE-ECHO (RFC 9260 section 3.3.11): the state cookie, verbatim."""

    cookie: bytes
    CHUNK_TYPE: ClassVar[int] = CHUNK_COOKIE_ECHO

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return self.cookie

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> CookieEchoChunk:
        return cls(body)


@dataclass(frozen=True, slots=True)
class CookieAckChunk:
    """COOKIE-ACK (RFC 9260 section 3.3.12)."""

    CHUNK_TYPE: ClassVar[int] = CHUNK_COOKIE_ACK

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return b""

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> CookieAckChunk:
        return cls()


@dataclass(frozen=True, slots=True)
class ShutdownCompleteChunk:
    """SHUTDOWN-COMPLETE (RFC 9260 section 3.3.13)."""

    tag_reflected: bool = False
    CHUNK_TYPE: ClassVar[int] = CHUNK_SHUTDOWN_COMPLETE

    def _flags(self) -> int:
        return FLAG_TAG_REFLECTED if self.tag_reflected else 0

    def _body(self) -> bytes:
        return b""

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> ShutdownCompleteChunk:
        return cls(bool(flags & FLAG_TAG_REFLECTED))


@dataclass(frozen=True, slots=True)
class ForwardTsnChunk:
    """FORWARD-TSN (RFC 3758 section 3.2): skip abandoned TSNs; (stream, SSN) per ordered stream."""

    new_cumulative_tsn: int
    streams: tuple[tuple[int, int], ...] = ()
    CHUNK_TYPE: ClassVar[int] = CHUNK_FORWARD_TSN

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        out = bytearray(struct.pack("!I", self.new_cumulative_tsn))
        for stream_id, ssn in self.streams:
            out += struct.pack("!HH", stream_id, ssn)
        return bytes(out)

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> ForwardTsnChunk:
        if len(body) < 4 or len(body) % 4:
            raise ValueError(f"FORWARD-TSN chunk has an invalid length of {len(body) + 4} bytes")
        (new_cum,) = struct.unpack_from("!I", body)
        streams = tuple((s, n) for s, n in struct.iter_unpack("!HH", body[4:]))
        return cls(new_cum, streams)


# RE-CONFIG parameters (RFC 6525 section 4).


@dataclass(frozen=True, slots=True)
class OutgoingResetRequest:
    """Outgoing SSN Reset Request: the sender resets its outgoing streams (our incoming ones)."""

    request_seq: int
    response_seq: int
    last_tsn: int
    streams: tuple[int, ...] = ()
    PARAM_TYPE: ClassVar[int] = RECONFIG_OUTGOING_RESET

    def _value(self) -> bytes:
        return struct.pack(
            f"!III{len(self.streams)}H",
            self.request_seq,
            self.response_seq,
            self.last_tsn,
            *self.streams,
        )

    @classmethod
    def _parse(cls, value: bytes) -> OutgoingResetRequest:
        if len(value) < 12 or len(value) % 2:
            raise ValueError(
                f"Outgoing SSN Reset Request has an invalid length of {len(value) + 4} bytes"
            )
        req, resp, last = struct.unpack_from("!III", value)
        streams = tuple(s for (s,) in struct.iter_unpack("!H", value[12:]))
        return cls(req, resp, last, streams)


@dataclass(frozen=True, slots=True)
class IncomingResetRequest:
    """Incoming SSN Reset Request: the sender asks us to reset our outgoing streams."""

    request_seq: int
    streams: tuple[int, ...] = ()
    PARAM_TYPE: ClassVar[int] = RECONFIG_INCOMING_RESET

    def _value(self) -> bytes:
        return struct.pack(f"!I{len(self.streams)}H", self.request_seq, *self.streams)

    @classmethod
    def _parse(cls, value: bytes) -> IncomingResetRequest:
        if len(value) < 4 or len(value) % 2:
            raise ValueError(
                f"Incoming SSN Reset Request has an invalid length of {len(value) + 4} bytes"
            )
        (req,) = struct.unpack_from("!I", value)
        return cls(req, tuple(s for (s,) in struct.iter_unpack("!H", value[4:])))


@dataclass(frozen=True, slots=True)
class SsnTsnResetRequest:
    """SSN/TSN Reset Request (unused by browsers; answered with "denied")."""

    request_seq: int
    PARAM_TYPE: ClassVar[int] = RECONFIG_SSN_TSN_RESET

    def _value(self) -> bytes:
        return struct.pack("!I", self.request_seq)

    @classmethod
    def _parse(cls, value: bytes) -> SsnTsnResetRequest:
        if len(value) != 4:
            raise ValueError(
                f"SSN/TSN Reset Request has an invalid length of {len(value) + 4} bytes"
            )
        return cls(struct.unpack("!I", value)[0])


@dataclass(frozen=True, slots=True)
class ReconfigResponse:
    """Re-configuration Response (RFC 6525 section 4.4)."""

    response_seq: int
    result: int
    sender_next_tsn: int | None = None
    receiver_next_tsn: int | None = None
    PARAM_TYPE: ClassVar[int] = RECONFIG_RESPONSE

    def _value(self) -> bytes:
        out = struct.pack("!II", self.response_seq, self.result)
        if self.sender_next_tsn is not None:
            out += struct.pack("!II", self.sender_next_tsn, self.receiver_next_tsn or 0)
        return out

    @classmethod
    def _parse(cls, value: bytes) -> ReconfigResponse:
        if len(value) == 8:
            return cls(*struct.unpack("!II", value))
        if len(value) == 16:
            return cls(*struct.unpack("!IIII", value))
        raise ValueError(
            f"Re-configuration Response has an invalid length of {len(value) + 4} bytes"
        )


@dataclass(frozen=True, slots=True)
class AddOutgoingStreamsRequest:
    """Add Outgoing Streams Request: the sender adds outgoing streams (our incoming ones)."""

    request_seq: int
    new_streams: int
    PARAM_TYPE: ClassVar[int] = RECONFIG_ADD_OUTGOING

    def _value(self) -> bytes:
        return struct.pack("!IHH", self.request_seq, self.new_streams, 0)

    @classmethod
    def _parse(cls, value: bytes) -> AddOutgoingStreamsRequest:
        if len(value) != 8:
            raise ValueError(
                f"Add Outgoing Streams Request has an invalid length of {len(value) + 4} bytes"
            )
        req, n, _reserved = struct.unpack("!IHH", value)
        return cls(req, n)


@dataclass(frozen=True, slots=True)
class AddIncomingStreamsRequest:
    """Add Incoming Streams Request: the sender asks us to add outgoing streams."""

    request_seq: int
    new_streams: int
    PARAM_TYPE: ClassVar[int] = RECONFIG_ADD_INCOMING

    def _value(self) -> bytes:
        return struct.pack("!IHH", self.request_seq, self.new_streams, 0)

    @classmethod
    def _parse(cls, value: bytes) -> AddIncomingStreamsRequest:
        if len(value) != 8:
            raise ValueError(
                f"Add Incoming Streams Request has an invalid length of {len(value) + 4} bytes"
            )
        req, n, _reserved = struct.unpack("!IHH", value)
        return cls(req, n)


@dataclass(frozen=True, slots=True)
class UnknownReconfigParam:
    """A RE-CONFIG parameter type we do not know, kept verbatim."""

    param_type: int
    value: bytes

    def _value(self) -> bytes:
        return self.value


ReconfigParam: TypeAlias = (
    OutgoingResetRequest
    | IncomingResetRequest
    | SsnTsnResetRequest
    | ReconfigResponse
    | AddOutgoingStreamsRequest
    | AddIncomingStreamsRequest
    | UnknownReconfigParam
)

_RECONFIG_PARSERS: dict[int, Callable[[bytes], ReconfigParam]] = {
    RECONFIG_OUTGOING_RESET: OutgoingResetRequest._parse,
    RECONFIG_INCOMING_RESET: IncomingResetRequest._parse,
    RECONFIG_SSN_TSN_RESET: SsnTsnResetRequest._parse,
    RECONFIG_RESPONSE: ReconfigResponse._parse,
    RECONFIG_ADD_OUTGOING: AddOutgoingStreamsRequest._parse,
    RECONFIG_ADD_INCOMING: AddIncomingStreamsRequest._parse,
}


def _reconfig_param_type(param: ReconfigParam) -> int:
    if isinstance(param, UnknownReconfigParam):
        return param.param_type
    return param.PARAM_TYPE


@dataclass(frozen=True, slots=True)
class ReconfigChunk:
    """RE-CONFIG (RFC 6525 section 3.1): one or two re-configuration parameters."""

    params: tuple[ReconfigParam, ...]
    CHUNK_TYPE: ClassVar[int] = CHUNK_RECONFIG

    def _flags(self) -> int:
        return 0

    def _body(self) -> bytes:
        return _encode_tlvs(
            ((_reconfig_param_type(p), p._value()) for p in self.params), "RE-CONFIG parameter"
        )

    @classmethod
    def _parse(cls, flags: int, body: bytes) -> ReconfigChunk:
        raw = _decode_tlvs(body, "RE-CONFIG parameter")
        if not raw:
            raise ValueError("RE-CONFIG chunk has no parameters")
        params: list[ReconfigParam] = []
        for param_type, value in raw:
            parser = _RECONFIG_PARSERS.get(param_type)
            params.append(parser(value) if parser else UnknownReconfigParam(param_type, value))
        return cls(tuple(params))


@dataclass(frozen=True, slots=True)
class UnknownChunk:
    """A chunk type we do not implement, kept verbatim (its top two type bits say what to do)."""

    chunk_type: int
    flags: int
    body: bytes

    def _flags(self) -> int:
        return self.flags

    def _body(self) -> bytes:
        return self.body


Chunk: TypeAlias = (
    DataChunk
    | InitChunk
    | InitAckChunk
    | SackChunk
    | HeartbeatChunk
    | HeartbeatAckChunk
    | AbortChunk
    | ShutdownChunk
    | ShutdownAckChunk
    | ErrorChunk
    | CookieEchoChunk
    | CookieAckChunk
    | ShutdownCompleteChunk
    | ForwardTsnChunk
    | ReconfigChunk
    | UnknownChunk
)

_CHUNK_PARSERS: dict[int, Callable[[int, bytes], Chunk]] = {
    DataChunk.CHUNK_TYPE: DataChunk._parse,
    InitChunk.CHUNK_TYPE: InitChunk._parse,
    InitAckChunk.CHUNK_TYPE: InitAckChunk._parse,
    SackChunk.CHUNK_TYPE: SackChunk._parse,
    HeartbeatChunk.CHUNK_TYPE: HeartbeatChunk._parse,
    HeartbeatAckChunk.CHUNK_TYPE: HeartbeatAckChunk._parse,
    AbortChunk.CHUNK_TYPE: AbortChunk._parse,
    ShutdownChunk.CHUNK_TYPE: ShutdownChunk._parse,
    ShutdownAckChunk.CHUNK_TYPE: ShutdownAckChunk._parse,
    ErrorChunk.CHUNK_TYPE: ErrorChunk._parse,
    CookieEchoChunk.CHUNK_TYPE: CookieEchoChunk._parse,
    CookieAckChunk.CHUNK_TYPE: CookieAckChunk._parse,
    ShutdownCompleteChunk.CHUNK_TYPE: ShutdownCompleteChunk._parse,
    ForwardTsnChunk.CHUNK_TYPE: ForwardTsnChunk._parse,
    ReconfigChunk.CHUNK_TYPE: ReconfigChunk._parse,
}


def chunk_type_of(chunk: Chunk) -> int:
    """The wire chunk type of ``chunk``."""
    if isinstance(chunk, UnknownChunk):
        return chunk.chunk_type
    return chunk.CHUNK_TYPE


def encode_chunk(chunk: Chunk) -> bytes:
    """One chunk with its header and padding to a multiple of 4 bytes."""
    body = chunk._body()
    length = CHUNK_HEADER_LENGTH + len(body)
    if length > 0xFFFF:
        raise ValueError(f"chunk of type {chunk_type_of(chunk)} is too long ({length} bytes)")
    return (
        struct.pack("!BBH", chunk_type_of(chunk), chunk._flags(), length)
        + body
        + b"\x00" * (-length % 4)
    )


def _finish_packet(header_and_chunks: bytearray) -> bytes:
    struct.pack_into("<I", header_and_chunks, 8, crc32c(header_and_chunks))
    return bytes(header_and_chunks)


@dataclass(frozen=True, slots=True)
class SctpPacket:
    """An SCTP packet: common header plus chunks (RFC 9260 section 3)."""

    source_port: int
    destination_port: int
    verification_tag: int
    chunks: tuple[Chunk, ...]

    def serialize(self) -> bytes:
        """Encode with a correct CRC32c (we never send zero checksums)."""
        _check_u16(self.source_port, "source port")
        _check_u16(self.destination_port, "destination port")
        _check_u32(self.verification_tag, "verification tag")
        buf = bytearray(
            struct.pack("!HHII", self.source_port, self.destination_port, self.verification_tag, 0)
        )
        for chunk in self.chunks:
            buf += encode_chunk(chunk)
        return _finish_packet(buf)

    @classmethod
    def parse(cls, data: bytes, *, accept_zero_checksum: bool = True) -> SctpPacket:
        """Decode one packet; raise ValueError naming the problem if it is malformed.

        ``accept_zero_checksum``: take a checksum field of 0 as valid without computing the
        CRC (RFC 9653, with DTLS as the alternate error detection method).
        """
        data = bytes(data)
        if len(data) < COMMON_HEADER_LENGTH + CHUNK_HEADER_LENGTH:
            raise ValueError(
                f"SCTP packet is too short ({len(data)} bytes, need at least "
                f"{COMMON_HEADER_LENGTH + CHUNK_HEADER_LENGTH})"
            )
        source_port, destination_port, tag = struct.unpack_from("!HHI", data)
        (checksum,) = struct.unpack_from("<I", data, 8)
        zero_ok = checksum == 0 and accept_zero_checksum
        if not zero_ok and checksum != crc32c(data[:8] + b"\x00\x00\x00\x00" + data[12:]):
            raise ValueError("SCTP packet has an invalid checksum")
        chunks: list[Chunk] = []
        pos = COMMON_HEADER_LENGTH
        end = len(data)
        while pos < end:
            if end - pos < CHUNK_HEADER_LENGTH:
                raise ValueError(f"SCTP packet has {end - pos} trailing bytes")
            chunk_type, flags, length = struct.unpack_from("!BBH", data, pos)
            if length < CHUNK_HEADER_LENGTH or pos + length > end:
                raise ValueError(
                    f"SCTP chunk of type {chunk_type} has an invalid length of {length} bytes"
                )
            body = data[pos + CHUNK_HEADER_LENGTH : pos + length]
            parser = _CHUNK_PARSERS.get(chunk_type)
            chunks.append(parser(flags, body) if parser else UnknownChunk(chunk_type, flags, body))
            pos += length + (-length % 4)
        return cls(source_port, destination_port, tag, tuple(chunks))


# ---------------------------------------------------------------------------------------------
# Configuration, counters, events, errors
# ---------------------------------------------------------------------------------------------


class SctpError(Exception):
    """Base class of control-plane errors raised by the association API."""


class SctpConfigError(SctpError, ValueError):
    """An :class:`SctpConfig` field is out of range."""


class SctpStateError(SctpError):
    """The operation is not allowed in the association's current state."""


class SctpStreamError(SctpError):
    """The stream identifier is invalid, or the stream cannot be used or reset right now."""


class SctpMessageError(SctpError, ValueError):
    """The message cannot be sent (empty, too large, or bad parameters)."""


@dataclass(frozen=True, slots=True)
class SctpConfig:
    """Association settings. Defaults follow what browsers (dcSCTP, usrsctp) use for WebRTC."""

    max_packet_size: int = 1188
    """Largest SCTP packet we send, common header included. 1188 (a multiple of 4) fits an IPv6
    minimum-MTU (1280) datagram after IPv6 (40), UDP (8) and DTLS 1.2 AES-GCM record (37)
    overhead with a few bytes to spare; Chrome uses 1191."""

    receive_window: int = 1024 * 1024
    """Receive buffer we advertise as a_rwnd (bytes): room for several maximum-size messages."""

    max_message_size: int = 256 * 1024
    """Largest message we send or accept (bytes). Match the SDP a=max-message-size."""

    outbound_streams: int = 65535
    """Outbound streams we ask for (OS); the result is min(this, the peer's MIS)."""

    inbound_streams: int = 65535
    """Maximum inbound streams we accept (MIS)."""

    rto_initial: float = 1.0
    """Initial retransmission timeout (s), RFC 9260 RTO.Initial; also the first T1 timeout."""

    rto_min: float = 0.4
    """Lower RTO bound (s). Above the peer's 200 ms delayed-SACK timer so a delayed SACK never
    triggers a spurious T3 retransmission; the RFC's 1 s is too slow for WebRTC."""

    rto_max: float = 10.0
    """Upper RTO bound (s); WebRTC stacks cap well below the RFC's 60 s."""

    max_retransmissions: int = 10
    """Association.Max.Retrans: consecutive timeouts before the peer is declared unreachable."""

    max_init_retransmissions: int = 8
    """Max.Init.Retransmits: INIT / COOKIE-ECHO resends before setup fails."""

    delayed_sack_timeout: float = 0.2
    """Delayed SACK timer (s): a SACK goes out after this or at every second DATA packet."""

    heartbeat_interval: float = 30.0
    """Idle time (s) before sending a HEARTBEAT (plus one RTO, RFC 9260 section 8.3)."""

    cookie_lifetime: float = 60.0
    """How long (s) a state cookie in our INIT-ACK stays valid."""

    initial_cwnd_packets: int = 10
    """Initial congestion window in packets (RFC 9260 says ~3; dcSCTP and TCP IW10 use 10)."""

    max_burst: int = 4
    """Max.Burst: new DATA packets sent at once beyond the flight size (RFC 9260 7.2.4)."""

    partial_reliability: bool = True
    """Advertise and honour FORWARD-TSN (RFC 3758), needed for maxRetransmits/maxPacketLifeTime
    data channels."""

    zero_checksum: bool = True
    """Advertise RFC 9653 zero checksum (DTLS method) and accept checksum 0 from the peer.
    Chrome then skips its CRC; we always send a correct CRC."""

    def __post_init__(self) -> None:
        if not 256 <= self.max_packet_size <= 65535 or self.max_packet_size % 4:
            raise SctpConfigError(
                f"max_packet_size must be a multiple of 4 in 256..65535, got {self.max_packet_size}"
            )
        if not 1500 <= self.receive_window <= _U32:
            raise SctpConfigError(
                f"receive_window must be in 1500..2**32-1, got {self.receive_window}"
            )
        if not 1 <= self.max_message_size <= self.receive_window:
            raise SctpConfigError(
                f"max_message_size must be in 1..receive_window, got {self.max_message_size}"
            )
        for name in ("outbound_streams", "inbound_streams"):
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                raise SctpConfigError(f"{name} must be in 1..65535, got {value}")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise SctpConfigError(
                "rto_min, rto_initial and rto_max must satisfy 0 < rto_min <= rto_initial <= "
                f"rto_max, got {self.rto_min}, {self.rto_initial}, {self.rto_max}"
            )
        for name in (
            "max_retransmissions",
            "max_init_retransmissions",
            "initial_cwnd_packets",
            "max_burst",
        ):
            value = getattr(self, name)
            if value < 1:
                raise SctpConfigError(f"{name} must be at least 1, got {value}")
        for name in ("delayed_sack_timeout", "heartbeat_interval", "cookie_lifetime"):
            value = getattr(self, name)
            if value <= 0:
                raise SctpConfigError(f"{name} must be positive, got {value}")

    @property
    def max_user_data(self) -> int:
        """User data bytes per DATA chunk so one chunk fills one packet."""
        return (self.max_packet_size - COMMON_HEADER_LENGTH - DATA_CHUNK_HEADER_LENGTH) // 4 * 4


@dataclass(slots=True)
class SctpStats:
    """Counters. Drops are counted here, never raised."""

    packets_received: int = 0
    packets_sent: int = 0
    bad_packets: int = 0
    """Packets that failed to parse (length, checksum, chunk or parameter format)."""
    bad_ports: int = 0
    bad_verification_tag: int = 0
    out_of_the_blue: int = 0
    """Packets that do not belong to an association (before INIT, after close)."""
    bad_cookies: int = 0
    stale_cookies: int = 0
    unknown_chunks: int = 0
    protocol_violations: int = 0
    data_chunks_received: int = 0
    duplicate_tsns: int = 0
    dropped_data_chunks: int = 0
    """DATA chunks dropped for lack of buffer space or an invalid stream; the peer resends."""
    messages_received: int = 0
    messages_sent: int = 0
    data_chunks_sent: int = 0
    retransmissions: int = 0
    fast_retransmits: int = 0
    t3_expirations: int = 0
    abandoned_messages: int = 0
    forward_tsn_received: int = 0
    heartbeats_sent: int = 0
    heartbeats_received: int = 0
    sacks_sent: int = 0
    sacks_received: int = 0


@dataclass(frozen=True, slots=True)
class Connected:
    """The association is established."""

    outbound_streams: int
    """Streams we may send on (0..outbound_streams-1)."""
    inbound_streams: int
    """Streams the peer may send on."""


@dataclass(frozen=True, slots=True)
class StreamData:
    """A complete user message."""

    stream_id: int
    ppid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer reset its outgoing streams (our incoming ones); empty means all streams."""

    stream_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StreamResetCompleted:
    """Our request to reset our outgoing streams finished (``success`` False: peer denied)."""

    stream_ids: tuple[int, ...]
    success: bool


@dataclass(frozen=True, slots=True)
class Closed:
    """The association is gone for good; ``reason`` says why."""

    reason: str


SctpEvent: TypeAlias = Connected | StreamData | StreamReset | StreamResetCompleted | Closed


class AssociationState(enum.Enum):
    """RFC 9260 section 4 states."""

    CLOSED = "closed"
    COOKIE_WAIT = "cookie-wait"
    COOKIE_ECHOED = "cookie-echoed"
    ESTABLISHED = "established"
    SHUTDOWN_PENDING = "shutdown-pending"
    SHUTDOWN_SENT = "shutdown-sent"
    SHUTDOWN_RECEIVED = "shutdown-received"
    SHUTDOWN_ACK_SENT = "shutdown-ack-sent"


_DATA_STATES = frozenset(
    {
        AssociationState.ESTABLISHED,
        AssociationState.SHUTDOWN_PENDING,
        AssociationState.SHUTDOWN_RECEIVED,
        AssociationState.SHUTDOWN_SENT,
        AssociationState.SHUTDOWN_ACK_SENT,
    }
)

# States in which new (not yet sent) DATA may go out.
_NEW_DATA_STATES = frozenset(
    {
        AssociationState.ESTABLISHED,
        AssociationState.SHUTDOWN_PENDING,
        AssociationState.SHUTDOWN_RECEIVED,
    }
)

# ---------------------------------------------------------------------------------------------
# Association internals
# ---------------------------------------------------------------------------------------------

# State cookie: version, creation time, our tag, peer tag, our initial TSN, peer initial TSN,
# peer a_rwnd, peer OS, peer MIS, peer feature flags; then HMAC-SHA256 over all of it.
_COOKIE_FORMAT = struct.Struct("!BdIIIIIHHB")
_COOKIE_VERSION = 1
_COOKIE_MAC_LENGTH = 32
_COOKIE_LENGTH = _COOKIE_FORMAT.size + _COOKIE_MAC_LENGTH
_PEER_PRSCTP = 0x01
_PEER_RECONFIG = 0x02
_PEER_ZERO_CHECKSUM = 0x04

_HEARTBEAT_INFO = struct.Struct("!8sd")
_COMMON_HEADER = struct.Struct("!HHI")
_PACKET_HEADER = struct.Struct("!HHII")  # ports, verification tag, checksum (filled in later)
_SACK_NO_GAPS = struct.Struct("!BBHIIHH")  # chunk header, cum TSN ack, a_rwnd, 0 gaps, 0 dups
_DATA_FIELDS = struct.Struct("!IHHI")
_SACK_FIELDS = struct.Struct("!II")
_MAX_GAP_BLOCKS = 128
_MAX_DUPLICATES = 16
_MAX_FORWARD_TSN_STREAMS = 256
_MAX_BUFFERED_CHUNKS = 16384
_MAX_RECONFIG_STREAMS = 128


class _OutChunk:
    """A DATA chunk we sent or will send, with its retransmission bookkeeping."""

    __slots__ = (
        "abandoned",
        "acked",
        "data",
        "expiry",
        "flags",
        "in_flight",
        "max_retransmits",
        "message_id",
        "misses",
        "ppid",
        "retransmit",
        "sent_count",
        "sent_time",
        "ssn",
        "stream_id",
        "tsn",
    )

    def __init__(
        self,
        tsn: int,
        stream_id: int,
        ssn: int,
        ppid: int,
        data: bytes,
        flags: int,
        message_id: int,
        max_retransmits: int | None,
        expiry: float | None,
    ) -> None:
        self.tsn = tsn
        self.stream_id = stream_id
        self.ssn = ssn
        self.ppid = ppid
        self.data = data
        self.flags = flags
        self.message_id = message_id
        self.max_retransmits = max_retransmits
        self.expiry = expiry
        self.sent_count = 0
        self.sent_time = 0.0
        self.acked = False  # acknowledged by a gap block (not yet cumulatively)
        self.in_flight = False
        self.retransmit = False
        self.misses = 0
        self.abandoned = False

    def encode(self) -> bytes:
        length = DATA_CHUNK_HEADER_LENGTH + len(self.data)
        return (
            struct.pack(
                "!BBHIHHI",
                CHUNK_DATA,
                self.flags,
                length,
                self.tsn,
                self.stream_id,
                self.ssn,
                self.ppid,
            )
            + self.data
            + b"\x00" * (-length % 4)
        )


@dataclass(slots=True)
class _Control:
    """A queued control chunk: encoded bytes, its verification tag, bundling rule."""

    data: bytes
    tag: int
    alone: bool = False


@dataclass(frozen=True, slots=True)
class _Cookie:
    created: float
    local_tag: int
    peer_tag: int
    local_tsn: int
    peer_tsn: int
    peer_rwnd: int
    peer_os: int
    peer_mis: int
    peer_flags: int


class _PacketBuilder:
    """Packs encoded chunks into packets no larger than the configured size."""

    def __init__(self, association: SctpAssociation) -> None:
        self._assoc = association
        self.packets: list[bytes] = []
        self._current = bytearray()
        self._tag = 0

    def _header(self, tag: int) -> bytearray:
        return bytearray(
            struct.pack("!HHII", self._assoc.local_port, self._assoc.remote_port, tag, 0)
        )

    def flush(self) -> None:
        if len(self._current) > COMMON_HEADER_LENGTH:
            self.packets.append(_finish_packet(self._current))
        self._current = bytearray()

    def add(self, chunk: bytes, tag: int, *, alone: bool = False) -> None:
        limit = self._assoc.config.max_packet_size
        if (
            alone
            or not self._current
            or self._tag != tag
            or len(self._current) + len(chunk) > limit
        ):
            self.flush()
            self._current = self._header(tag)
            self._tag = tag
        self._current += chunk
        if alone:
            self.flush()


# ---------------------------------------------------------------------------------------------
# The association
# ---------------------------------------------------------------------------------------------


class SctpAssociation:
    """One SCTP association over one DTLS connection, sans-I/O.

    Drive it with :meth:`receive` (one decrypted DTLS record), :meth:`handle_timer` (when
    :meth:`next_timer` is due) and API calls; after each, hand :meth:`datagrams_to_send` to DTLS
    and drain :meth:`events`.
    """

    def __init__(
        self,
        *,
        is_client: bool = False,
        local_port: int = 5000,
        remote_port: int = 5000,
        config: SctpConfig | None = None,
    ) -> None:
        """``is_client``: :meth:`start` sends INIT (active open); otherwise the association only
        answers the peer's INIT. In WebRTC both sides may be active; collisions are handled.
        """
        _check_u16(local_port, "local_port")
        _check_u16(remote_port, "remote_port")
        self.is_client = is_client
        self.local_port = local_port
        self.remote_port = remote_port
        self.config = config or SctpConfig()
        self.stats = SctpStats()
        self._state = AssociationState.CLOSED
        self._terminated = False
        self._events: list[SctpEvent] = []
        self._controls: list[_Control] = []
        self._abort_packet: bytes | None = None
        self._secret = os.urandom(32)

        self._local_tag = self._random_u32(nonzero=True)
        self._local_initial_tsn = self._random_u32()
        self._peer_tag = 0
        self._peer_initial_tsn = 0
        self._peer_prsctp = False
        self._peer_reconfig = False
        self._peer_zero_checksum = False
        self._outbound_streams = 0
        self._inbound_streams = 0
        # Peer values from its INIT-ACK, used when our COOKIE-ECHO is acknowledged:
        # (tag, initial TSN, a_rwnd, OS, MIS, feature flags).
        self._pending_peer: tuple[int, int, int, int, int, int] | None = None

        # Outbound data.
        self._next_tsn = self._local_initial_tsn
        self._cum_ack = tsn_add(self._local_initial_tsn, -1)
        self._out_queue: deque[_OutChunk] = deque()
        self._sent: deque[_OutChunk] = deque()
        self._out_ssn: dict[int, int] = {}
        self._message_counter = 0
        self._flight_size = 0
        self._peer_rwnd = 0
        mtu = self.config.max_packet_size
        self._cwnd = self.config.initial_cwnd_packets * mtu
        self._ssthresh = self.config.receive_window
        self._partial_bytes_acked = 0
        self._fast_recovery_exit: int | None = None
        self._fast_rtx_budget = 0
        self._rtx_pending = False  # some sent chunk may be marked for retransmission
        self._adv_peer_ack = self._cum_ack
        self._forward_tsn: ForwardTsnChunk | None = None

        # Inbound data.
        self._peer_cum_tsn = 0
        self._received_above: set[int] = set()
        self._duplicates: list[int] = []
        self._reassembly: dict[int, DataChunk] = {}
        self._held_bytes = 0
        self._in_ssn: dict[int, int] = {}
        self._pending_ordered: dict[int, dict[int, tuple[int, bytes]]] = {}
        self._sack_due = False
        self._sack_now = False
        self._data_packets_unacked = 0

        # RTT and timers.
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = self.config.rto_initial
        self._rtt_epoch = float("-inf")  # RTT samples only from chunks sent after this
        self._error_count = 0
        self._t1_deadline: float | None = None
        self._t1_chunk: _Control | None = None
        self._t1_count = 0
        self._t1_timeout = self.config.rto_initial
        self._stale_restarts = 0
        self._t2_deadline: float | None = None
        self._t2_count = 0
        self._t3_deadline: float | None = None
        self._sack_deadline: float | None = None
        self._hb_deadline: float | None = None
        self._hb_outstanding: bytes | None = None
        self._reconfig_deadline: float | None = None

        # Stream reconfiguration (RFC 6525).
        self._reconfig_next_seq = self._local_initial_tsn
        self._reconfig_request: OutgoingResetRequest | None = None
        self._reconfig_queue: list[int] = []
        self._resetting: set[int] = set()
        self._peer_reconfig_expected = 0
        self._peer_reconfig_last_result = RESULT_SUCCESS_PERFORMED
        self._peer_reset_deferred: OutgoingResetRequest | None = None
        self._deferred_data: list[DataChunk] = []

    # -- public properties ---------------------------------------------------------------------

    @property
    def state(self) -> AssociationState:
        return self._state

    @property
    def local_tag(self) -> int:
        """Our verification tag (fixed for the association's life)."""
        return self._local_tag

    @property
    def peer_tag(self) -> int:
        """The peer's verification tag (0 until known)."""
        return self._peer_tag

    @property
    def rto(self) -> float:
        """Current retransmission timeout (s)."""
        return self._rto

    @property
    def srtt(self) -> float | None:
        """Smoothed round-trip time (s), or None before the first measurement."""
        return self._srtt

    @property
    def cwnd(self) -> int:
        return self._cwnd

    @property
    def outbound_streams(self) -> int:
        """Negotiated number of outbound streams (0 before establishment)."""
        return self._outbound_streams

    @property
    def peer_supports_partial_reliability(self) -> bool:
        return self._peer_prsctp

    @property
    def peer_supports_stream_reset(self) -> bool:
        return self._peer_reconfig

    @property
    def buffered_amount(self) -> int:
        """User bytes queued or in flight and not yet acknowledged."""
        return sum(len(c.data) for c in self._out_queue) + sum(
            len(c.data) for c in self._sent if not c.acked and not c.abandoned
        )

    # -- public API ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin. An active side (``is_client``) sends INIT; a passive side just listens."""
        if self.is_client:
            self.connect(now)

    def connect(self, now: float) -> None:
        """Send INIT (active open). Allowed only before the association exists."""
        if self._state is not AssociationState.CLOSED or self._terminated:
            raise SctpStateError(f"cannot send INIT in state {self._state.value}")
        init = InitChunk(
            initiate_tag=self._local_tag,
            a_rwnd=self.config.receive_window,
            outbound_streams=self.config.outbound_streams,
            inbound_streams=self.config.inbound_streams,
            initial_tsn=self._local_initial_tsn,
            params=self._local_extension_params(),
        )
        control = _Control(encode_chunk(init), 0, alone=True)
        self._controls.append(control)
        self._t1_start(control, now)
        self._set_state(AssociationState.COOKIE_WAIT)

    def send(
        self,
        stream_id: int,
        ppid: int,
        data: bytes,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        lifetime: float | None = None,
        now: float,
    ) -> None:
        """Queue one user message.

        ``max_retransmits`` / ``lifetime`` (seconds) make it partially reliable (RFC 3758) when
        the peer supports FORWARD-TSN; otherwise the message is fully reliable.
        """
        if self._state is not AssociationState.ESTABLISHED:
            raise SctpStateError(f"cannot send in state {self._state.value}")
        if not 0 <= stream_id < self._outbound_streams:
            raise SctpStreamError(
                f"stream {stream_id} is out of range (0..{self._outbound_streams - 1})"
            )
        if stream_id in self._resetting:
            raise SctpStreamError(f"stream {stream_id} is being reset")
        if not 0 <= ppid <= _U32:
            raise SctpMessageError(f"ppid must be a 32-bit unsigned integer, got {ppid}")
        if not data:
            raise SctpMessageError(
                "SCTP cannot carry an empty message; WebRTC sends one zero byte with ppid 56/57"
            )
        if len(data) > self.config.max_message_size:
            raise SctpMessageError(
                f"message of {len(data)} bytes exceeds max_message_size "
                f"({self.config.max_message_size})"
            )
        if max_retransmits is not None and max_retransmits < 0:
            raise SctpMessageError(f"max_retransmits must be >= 0, got {max_retransmits}")
        if lifetime is not None and lifetime < 0:
            raise SctpMessageError(f"lifetime must be >= 0, got {lifetime}")
        if not self._peer_prsctp:
            max_retransmits = None
            lifetime = None
        expiry = None if lifetime is None else now + lifetime

        data = bytes(data)
        if ordered:
            ssn = self._out_ssn.get(stream_id, 0)
            self._out_ssn[stream_id] = (ssn + 1) & _U16
            flags = 0
        else:
            ssn = 0
            flags = DATA_FLAG_UNORDERED
        self._message_counter += 1
        step = self.config.max_user_data
        total = len(data)
        for pos in range(0, total, step):
            frag_flags = flags
            if pos == 0:
                frag_flags |= DATA_FLAG_BEGIN
            if pos + step >= total:
                frag_flags |= DATA_FLAG_END
            self._out_queue.append(
                _OutChunk(
                    self._next_tsn,
                    stream_id,
                    ssn,
                    ppid,
                    data[pos : pos + step],
                    frag_flags,
                    self._message_counter,
                    max_retransmits,
                    expiry,
                )
            )
            self._next_tsn = tsn_add(self._next_tsn, 1)
        self.stats.messages_sent += 1

    def reset_streams(self, stream_ids: Iterable[int], now: float) -> None:
        """Reset our outgoing streams (RFC 6525); how WebRTC closes a data channel.

        Completion is reported by a :class:`StreamResetCompleted` event; until then sending on
        these streams raises :class:`SctpStreamError`.
        """
        if self._state is not AssociationState.ESTABLISHED:
            raise SctpStateError(f"cannot reset streams in state {self._state.value}")
        if not self._peer_reconfig:
            raise SctpStreamError("the peer does not support stream reset (RFC 6525 RE-CONFIG)")
        ids = list(dict.fromkeys(stream_ids))
        for sid in ids:
            if not 0 <= sid < self._outbound_streams:
                raise SctpStreamError(
                    f"stream {sid} is out of range (0..{self._outbound_streams - 1})"
                )
        for sid in ids:
            if sid not in self._resetting:
                self._resetting.add(sid)
                self._reconfig_queue.append(sid)
        self._maybe_send_reconfig(now)

    def close(self, now: float) -> None:
        """Graceful shutdown (SHUTDOWN after all queued data is acknowledged)."""
        if self._terminated:
            return
        if self._state is AssociationState.ESTABLISHED:
            self._set_state(AssociationState.SHUTDOWN_PENDING)
            self._check_shutdown(now)
        elif self._state in (
            AssociationState.CLOSED,
            AssociationState.COOKIE_WAIT,
            AssociationState.COOKIE_ECHOED,
        ):
            self._terminate("closed before the association was established")

    def abort(self, reason: str = "aborted locally") -> None:
        """Send ABORT and close at once."""
        if self._terminated:
            return
        if self._state is not AssociationState.CLOSED or self._peer_tag:
            self._abort_packet = self._packet_with(
                AbortChunk(((CAUSE_USER_ABORT, reason.encode()[:200]),)), self._peer_tag
            )
        self._terminate(reason)

    def events(self) -> list[SctpEvent]:
        """Drain pending events."""
        events, self._events = self._events, []
        return events

    def next_timer(self) -> float | None:
        """The earliest time :meth:`handle_timer` must be called, or None."""
        at = self._hb_deadline
        for d in (
            self._t3_deadline,
            self._sack_deadline,
            self._t1_deadline,
            self._t2_deadline,
            self._reconfig_deadline,
        ):
            if d is not None and (at is None or d < at):
                at = d
        return at

    def handle_timer(self, now: float) -> None:
        """Run every timer that is due at ``now``."""
        if self._terminated:
            return
        if self._t1_deadline is not None and now >= self._t1_deadline:
            self._on_t1(now)
        if self._t2_deadline is not None and now >= self._t2_deadline:
            self._on_t2(now)
        if self._t3_deadline is not None and now >= self._t3_deadline:
            self._on_t3(now)
        if self._sack_deadline is not None and now >= self._sack_deadline:
            self._sack_deadline = None
            if self._sack_due:
                self._sack_now = True
        if self._reconfig_deadline is not None and now >= self._reconfig_deadline:
            self._on_reconfig_timer(now)
        if self._hb_deadline is not None and now >= self._hb_deadline:
            self._on_heartbeat_timer(now)

    def receive(self, data: bytes, now: float) -> None:
        """Handle one SCTP packet (one DTLS application-data record). Never raises on input."""
        self.stats.packets_received += 1
        if (
            self._state is AssociationState.ESTABLISHED
            and not self._terminated
            and self._receive_single(data, now)
        ):
            return
        try:
            packet = SctpPacket.parse(data, accept_zero_checksum=self.config.zero_checksum)
        except ValueError as exc:
            self.stats.bad_packets += 1
            logger.debug("dropping malformed SCTP packet: %s", exc)
            return
        if self._terminated:
            self.stats.out_of_the_blue += 1
            return
        if packet.destination_port != self.local_port or packet.source_port != self.remote_port:
            self.stats.bad_ports += 1
            return
        if not packet.chunks:
            self.stats.bad_packets += 1
            return
        if not self._check_tag(packet):
            return
        had_data = False
        for chunk in packet.chunks:
            if self._terminated:
                break
            if isinstance(chunk, DataChunk):
                had_data = True
                self._on_data(chunk, now)
            elif isinstance(chunk, UnknownChunk):
                if not self._on_unknown_chunk(chunk):
                    break
            elif not self._on_control_chunk(chunk, packet, now):
                break
        if had_data and not self._terminated:
            self._after_data_packet(now)
        if self._peer_reset_deferred is not None:
            self._try_deferred_reset(now)

    def _receive_single(self, data: bytes, now: float) -> bool:
        """The established association's common packets, one DATA or one SACK chunk without
        gap blocks, handled without building packet and chunk objects; same checks, counters
        and effects as the general path. False: not such a packet, use the general path."""
        n = len(data)
        if n < COMMON_HEADER_LENGTH + CHUNK_HEADER_LENGTH:
            return False
        chunk_type = data[12]
        if chunk_type == CHUNK_DATA:
            pass
        elif chunk_type != CHUNK_SACK:
            return False
        length = (data[14] << 8) | data[15]
        end = COMMON_HEADER_LENGTH + length
        # exactly one chunk: nothing but (at most) its padding after it
        if length < CHUNK_HEADER_LENGTH or end > n or n > end + (-length % 4):
            return False
        stats = self.stats
        if chunk_type == CHUNK_SACK and (
            length != 16 or data[24] or data[25] or data[26] or data[27]
        ):
            return False  # gap blocks, duplicates or a bad length: the general path
        source_port, destination_port, tag = _COMMON_HEADER.unpack_from(data)
        checksum = data[8] | (data[9] << 8) | (data[10] << 16) | (data[11] << 24)
        if not (checksum == 0 and self.config.zero_checksum) and checksum != crc32c(
            data[:8] + b"\x00\x00\x00\x00" + data[12:]
        ):
            stats.bad_packets += 1
            logger.debug("dropping malformed SCTP packet: SCTP packet has an invalid checksum")
            return True
        if chunk_type == CHUNK_DATA and length <= DATA_CHUNK_HEADER_LENGTH:
            stats.bad_packets += 1
            logger.debug("dropping malformed SCTP packet: DATA chunk without user data")
            return True
        if destination_port != self.local_port or source_port != self.remote_port:
            stats.bad_ports += 1
            return True
        if tag != self._local_tag:
            stats.bad_verification_tag += 1
            return True
        if chunk_type == CHUNK_DATA:
            tsn, stream_id, ssn, ppid = _DATA_FIELDS.unpack_from(data, 16)
            self._on_data_fields(
                tsn, stream_id, ssn, ppid, data[13], data[28:end], now, None
            )
            if not self._terminated:
                self._after_data_packet(now)
        else:
            cum, a_rwnd = _SACK_FIELDS.unpack_from(data, 16)
            stats.sacks_received += 1
            self._process_cum_ack(cum, (), a_rwnd, now)
        if self._peer_reset_deferred is not None:
            self._try_deferred_reset(now)
        return True

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Packets to hand to DTLS now, each at most ``config.max_packet_size`` bytes."""
        if (
            not self._controls
            and not self._out_queue
            and not self._rtx_pending
            and self._forward_tsn is None
            and self._abort_packet is None
            and not (self._sack_due and self._sack_now)
        ):
            self._fast_rtx_budget = 0  # what _collect_data would do
            return []
        if self._abort_packet is not None:
            packet, self._abort_packet = self._abort_packet, None
            self._controls.clear()
            self.stats.packets_sent += 1
            return [packet]
        controls = self._controls
        sent_controls = bool(controls)
        data_states = self._state in _DATA_STATES and not self._terminated
        if data_states:
            data_chunks = self._collect_data(now)
        else:
            data_chunks = []
        # Chunks after the controls, in this order, all with the peer's tag.
        chunks: list[bytes] = []
        if self._sack_due and data_states and (self._sack_now or data_chunks or sent_controls):
            chunks.append(self._encoded_sack())
            self._sack_due = False
            self._sack_now = False
            self._sack_deadline = None
            self._data_packets_unacked = 0
            self._duplicates.clear()
            self.stats.sacks_sent += 1
        if self._forward_tsn is not None and data_states:
            chunks.append(encode_chunk(self._forward_tsn))
            self._forward_tsn = None
            if self._t3_deadline is None:
                self._t3_deadline = now + self._rto
        chunks += data_chunks
        tag = self._peer_tag
        if not sent_controls and chunks:
            single = self._one_packet(chunks, tag)
            if single is not None:
                self.stats.packets_sent += 1
                return [single]
        builder = _PacketBuilder(self)
        for control in controls:
            builder.add(control.data, control.tag, alone=control.alone)
        controls.clear()
        for encoded in chunks:
            builder.add(encoded, tag)
        builder.flush()
        self.stats.packets_sent += len(builder.packets)
        return builder.packets

    # -- helpers: lifecycle ----------------------------------------------------------------------

    @staticmethod
    def _random_u32(nonzero: bool = False) -> int:
        while True:
            value = int.from_bytes(os.urandom(4), "big")
            if value or not nonzero:
                return value

    def _set_state(self, state: AssociationState) -> None:
        if state is not self._state:
            logger.debug("SCTP association %s -> %s", self._state.value, state.value)
            self._state = state

    def _terminate(self, reason: str) -> None:
        if self._terminated:
            return
        logger.debug("SCTP association closed: %s", reason)
        self._terminated = True
        self._set_state(AssociationState.CLOSED)
        self._t1_deadline = self._t2_deadline = self._t3_deadline = None
        self._sack_deadline = self._hb_deadline = self._reconfig_deadline = None
        self._out_queue.clear()
        self._sent.clear()
        self._reassembly.clear()
        self._pending_ordered.clear()
        self._events.append(Closed(reason))

    def _local_extension_params(self) -> tuple[Param, ...]:
        extensions = [CHUNK_RECONFIG]
        params: list[Param] = []
        if self.config.partial_reliability:
            extensions.append(CHUNK_FORWARD_TSN)
            params.append((PARAM_FORWARD_TSN_SUPPORTED, b""))
        params.append((PARAM_SUPPORTED_EXTENSIONS, bytes(extensions)))
        if self.config.zero_checksum:
            params.append(
                (PARAM_ZERO_CHECKSUM_ACCEPTABLE, struct.pack("!I", ZERO_CHECKSUM_EDMID_DTLS))
            )
        return tuple(params)

    def _read_peer_params(self, params: tuple[Param, ...]) -> tuple[int, list[Param]]:
        """Peer feature flags from INIT/INIT-ACK parameters, plus the ones to report."""
        flags = 0
        unrecognized: list[Param] = []
        for param_type, value in params:
            if param_type == PARAM_FORWARD_TSN_SUPPORTED:
                flags |= _PEER_PRSCTP
            elif param_type == PARAM_SUPPORTED_EXTENSIONS:
                if CHUNK_RECONFIG in value:
                    flags |= _PEER_RECONFIG
                if CHUNK_FORWARD_TSN in value:
                    flags |= _PEER_PRSCTP
            elif param_type == PARAM_ZERO_CHECKSUM_ACCEPTABLE:
                if len(value) == 4 and struct.unpack("!I", value)[0] == ZERO_CHECKSUM_EDMID_DTLS:
                    flags |= _PEER_ZERO_CHECKSUM
            elif param_type in (PARAM_STATE_COOKIE, PARAM_UNRECOGNIZED):
                pass
            elif param_type not in _IGNORED_INIT_PARAMS:
                # Top two bits (RFC 9260 section 3.2.1): bit 15 = skip and continue,
                # bit 14 = report it.
                if param_type & 0x4000:
                    tlv = struct.pack("!HH", param_type, 4 + len(value)) + value
                    unrecognized.append((PARAM_UNRECOGNIZED, tlv))
                if not param_type & 0x8000:
                    break
        if not self.config.partial_reliability:
            flags &= ~_PEER_PRSCTP
        return flags, unrecognized

    def _establish(
        self,
        peer_tag: int,
        peer_tsn: int,
        peer_rwnd: int,
        peer_os: int,
        peer_mis: int,
        peer_flags: int,
        now: float,
    ) -> None:
        self._peer_tag = peer_tag
        self._peer_initial_tsn = peer_tsn
        self._peer_cum_tsn = tsn_add(peer_tsn, -1)
        self._peer_reconfig_expected = peer_tsn
        self._peer_rwnd = peer_rwnd
        self._ssthresh = peer_rwnd
        self._peer_prsctp = bool(peer_flags & _PEER_PRSCTP)
        self._peer_reconfig = bool(peer_flags & _PEER_RECONFIG)
        self._peer_zero_checksum = bool(peer_flags & _PEER_ZERO_CHECKSUM)
        self._outbound_streams = min(self.config.outbound_streams, peer_mis)
        self._inbound_streams = min(self.config.inbound_streams, peer_os)
        self._t1_stop()
        self._set_state(AssociationState.ESTABLISHED)
        self._hb_deadline = now + self.config.heartbeat_interval + self._rto
        self._events.append(Connected(self._outbound_streams, self._inbound_streams))

    def _check_tag(self, packet: SctpPacket) -> bool:
        """Verification tag rules of RFC 9260 section 8.5.1."""
        first = packet.chunks[0]
        tag = packet.verification_tag
        if isinstance(first, InitChunk):
            if len(packet.chunks) != 1 or tag != 0:
                self.stats.bad_verification_tag += 1
                return False
            return True
        if any(
            isinstance(c, (InitChunk, InitAckChunk, ShutdownCompleteChunk))
            for c in packet.chunks[1:]
        ):
            # These must never be bundled (RFC 9260 section 6.10).
            self.stats.protocol_violations += 1
            return False
        if isinstance(first, (AbortChunk, ShutdownCompleteChunk)) and first.tag_reflected:
            ok = self._peer_tag != 0 and tag == self._peer_tag
        else:
            ok = tag == self._local_tag
        if not ok:
            self.stats.bad_verification_tag += 1
            return False
        if self._state is AssociationState.CLOSED and not isinstance(
            first, (CookieEchoChunk, AbortChunk)
        ):
            # No association yet: only INIT and COOKIE-ECHO may start one.
            self.stats.out_of_the_blue += 1
            return False
        return True

    # -- helpers: control chunks -----------------------------------------------------------------

    def _queue(self, chunk: Chunk, tag: int | None = None, *, alone: bool = False) -> None:
        self._controls.append(
            _Control(encode_chunk(chunk), self._peer_tag if tag is None else tag, alone)
        )

    def _packet_with(self, chunk: Chunk, tag: int) -> bytes:
        return SctpPacket(self.local_port, self.remote_port, tag, (chunk,)).serialize()

    def _on_unknown_chunk(self, chunk: UnknownChunk) -> bool:
        """RFC 9260 section 3.2: the top two type bits decide; False stops the packet."""
        self.stats.unknown_chunks += 1
        if chunk.chunk_type & 0x40 and self._peer_tag:
            self._queue(ErrorChunk(((CAUSE_UNRECOGNIZED_CHUNK, encode_chunk(chunk)),)))
        return bool(chunk.chunk_type & 0x80)

    def _on_control_chunk(self, chunk: Chunk, packet: SctpPacket, now: float) -> bool:
        """Handle a non-DATA chunk; False stops processing the rest of the packet."""
        state = self._state
        if isinstance(chunk, SackChunk):
            if state in _DATA_STATES:
                self._on_sack(chunk, now)
        elif isinstance(chunk, InitChunk):
            self._on_init(chunk, now)
            return False
        elif isinstance(chunk, InitAckChunk):
            self._on_init_ack(chunk, now)
            return False
        elif isinstance(chunk, CookieEchoChunk):
            if chunk is not packet.chunks[0]:
                self.stats.protocol_violations += 1
                return False
            return self._on_cookie_echo(chunk, packet.verification_tag, now)
        elif isinstance(chunk, CookieAckChunk):
            if state is AssociationState.COOKIE_ECHOED:
                self._establish_from_pending(now)
        elif isinstance(chunk, HeartbeatChunk):
            self.stats.heartbeats_received += 1
            if state in _DATA_STATES or state is AssociationState.COOKIE_ECHOED:
                self._queue(HeartbeatAckChunk(chunk.params))
        elif isinstance(chunk, HeartbeatAckChunk):
            self._on_heartbeat_ack(chunk, now)
        elif isinstance(chunk, ForwardTsnChunk):
            if state in _DATA_STATES and self.config.partial_reliability:
                self._on_forward_tsn(chunk, now)
        elif isinstance(chunk, ReconfigChunk):
            if state in _DATA_STATES:
                self._on_reconfig(chunk, now)
        elif isinstance(chunk, AbortChunk):
            self._terminate("aborted by peer" + _describe_causes(chunk.causes))
            return False
        elif isinstance(chunk, ShutdownChunk):
            self._on_shutdown(chunk, now)
        elif isinstance(chunk, ShutdownAckChunk):
            if state in (AssociationState.SHUTDOWN_SENT, AssociationState.SHUTDOWN_ACK_SENT):
                self._queue(ShutdownCompleteChunk())
                self._terminate("shutdown complete")
                return False
        elif isinstance(chunk, ShutdownCompleteChunk):
            if state is AssociationState.SHUTDOWN_ACK_SENT:
                self._terminate("shutdown complete")
                return False
        elif isinstance(chunk, ErrorChunk):
            self._on_error(chunk, now)
        return True

    def _make_cookie(self, init: InitChunk, peer_flags: int, now: float) -> bytes:
        body = _COOKIE_FORMAT.pack(
            _COOKIE_VERSION,
            now,
            self._local_tag,
            init.initiate_tag,
            self._local_initial_tsn,
            init.initial_tsn,
            init.a_rwnd,
            init.outbound_streams,
            init.inbound_streams,
            peer_flags,
        )
        return body + hmac.new(self._secret, body, hashlib.sha256).digest()

    def _read_cookie(self, cookie: bytes) -> _Cookie | None:
        if len(cookie) != _COOKIE_LENGTH:
            return None
        body, mac = cookie[: _COOKIE_FORMAT.size], cookie[_COOKIE_FORMAT.size :]
        if not hmac.compare_digest(mac, hmac.new(self._secret, body, hashlib.sha256).digest()):
            return None
        version, *fields = _COOKIE_FORMAT.unpack(body)
        if version != _COOKIE_VERSION:
            return None
        return _Cookie(*fields)

    def _on_init(self, init: InitChunk, now: float) -> None:
        if init.initiate_tag == 0 or init.outbound_streams == 0 or init.inbound_streams == 0:
            self.stats.protocol_violations += 1
            return
        if self._state not in (
            AssociationState.CLOSED,
            AssociationState.COOKIE_WAIT,
            AssociationState.COOKIE_ECHOED,
            AssociationState.ESTABLISHED,
        ):
            return
        # Stateless answer: everything needed later travels in the signed cookie. Our tag and
        # initial TSN are fixed for the association's life, so an INIT collision (we are in
        # COOKIE-WAIT/ECHOED) gets the same values our own INIT carried (RFC 9260 5.2.1).
        peer_flags, unrecognized = self._read_peer_params(init.params)
        params = list(self._local_extension_params())
        params.append((PARAM_STATE_COOKIE, self._make_cookie(init, peer_flags, now)))
        params.extend(unrecognized)
        init_ack = InitAckChunk(
            initiate_tag=self._local_tag,
            a_rwnd=self._free_window(),
            outbound_streams=self.config.outbound_streams,
            inbound_streams=self.config.inbound_streams,
            initial_tsn=self._local_initial_tsn,
            params=tuple(params),
        )
        self._queue(init_ack, init.initiate_tag, alone=True)

    def _on_init_ack(self, init_ack: InitAckChunk, now: float) -> None:
        if self._state is not AssociationState.COOKIE_WAIT:
            return
        cookie = init_ack.param(PARAM_STATE_COOKIE)
        if (
            cookie is None
            or init_ack.initiate_tag == 0
            or init_ack.outbound_streams == 0
            or init_ack.inbound_streams == 0
        ):
            self.stats.protocol_violations += 1
            return
        peer_flags, _unrecognized = self._read_peer_params(init_ack.params)
        self._pending_peer = (
            init_ack.initiate_tag,
            init_ack.initial_tsn,
            init_ack.a_rwnd,
            init_ack.outbound_streams,
            init_ack.inbound_streams,
            peer_flags,
        )
        self._peer_tag = init_ack.initiate_tag
        self._t1_stop()
        echo = _Control(encode_chunk(CookieEchoChunk(cookie)), init_ack.initiate_tag)
        self._controls.append(echo)
        self._t1_start(echo, now)
        self._set_state(AssociationState.COOKIE_ECHOED)

    def _establish_from_pending(self, now: float) -> None:
        if self._pending_peer is not None:
            self._establish(*self._pending_peer, now=now)

    def _on_cookie_echo(self, echo: CookieEchoChunk, tag: int, now: float) -> bool:
        cookie = self._read_cookie(echo.cookie)
        if cookie is None or cookie.local_tag != tag or tag != self._local_tag:
            self.stats.bad_cookies += 1
            return False
        age = now - cookie.created
        if age > self.config.cookie_lifetime or age < -1.0:
            self.stats.stale_cookies += 1
            staleness = int(max(0.0, age - self.config.cookie_lifetime) * 1e6) & _U32
            self._queue(
                ErrorChunk(((CAUSE_STALE_COOKIE, struct.pack("!I", staleness)),)), cookie.peer_tag
            )
            return False
        if self._state in (
            AssociationState.CLOSED,
            AssociationState.COOKIE_WAIT,
            AssociationState.COOKIE_ECHOED,
        ):
            self._establish(
                cookie.peer_tag,
                cookie.peer_tsn,
                cookie.peer_rwnd,
                cookie.peer_os,
                cookie.peer_mis,
                cookie.peer_flags,
                now,
            )
            self._queue(CookieAckChunk())
            return True
        if cookie.peer_tag == self._peer_tag:
            # Our COOKIE-ACK was lost (RFC 9260 5.2.4 case D): acknowledge again.
            self._queue(CookieAckChunk())
            return True
        # A peer restart (case A) is not supported: WebRTC peers never restart.
        self.stats.protocol_violations += 1
        return False

    def _on_error(self, chunk: ErrorChunk, now: float) -> None:
        if self._state is AssociationState.COOKIE_ECHOED and any(
            code == CAUSE_STALE_COOKIE for code, _ in chunk.causes
        ):
            # Our echo took too long: start over with a fresh INIT (RFC 9260 5.2.6). Each
            # restart counts as an INIT retransmission, so a peer that always finds our
            # cookies stale cannot keep us looping.
            self._stale_restarts += 1
            if self._stale_restarts > self.config.max_init_retransmissions:
                self._terminate(
                    f"association setup failed: {self._stale_restarts} stale cookie errors"
                )
                return
            self._t1_stop()
            self._set_state(AssociationState.CLOSED)
            self.connect(now)
            return
        logger.debug("SCTP peer reported an error%s", _describe_causes(chunk.causes))

    def _on_shutdown(self, chunk: ShutdownChunk, now: float) -> None:
        state = self._state
        if state not in _DATA_STATES:
            return
        self._process_cum_ack(chunk.cumulative_tsn, (), self._peer_rwnd + self._flight_size, now)
        if state is AssociationState.SHUTDOWN_SENT:
            self._t2_deadline = None
            self._queue(ShutdownAckChunk())
            self._t2_start(now)
            self._set_state(AssociationState.SHUTDOWN_ACK_SENT)
        elif state in (
            AssociationState.ESTABLISHED,
            AssociationState.SHUTDOWN_PENDING,
            AssociationState.SHUTDOWN_RECEIVED,
        ):
            self._set_state(AssociationState.SHUTDOWN_RECEIVED)
            self._check_shutdown(now)

    def _check_shutdown(self, now: float) -> None:
        if self._out_queue or self._sent:
            return
        if self._state is AssociationState.SHUTDOWN_PENDING:
            self._queue(ShutdownChunk(self._peer_cum_tsn))
            self._t2_start(now)
            self._set_state(AssociationState.SHUTDOWN_SENT)
        elif self._state is AssociationState.SHUTDOWN_RECEIVED:
            self._queue(ShutdownAckChunk())
            self._t2_start(now)
            self._set_state(AssociationState.SHUTDOWN_ACK_SENT)

    # -- helpers: timers ------------------------------------------------------------------------

    def _t1_start(self, control: _Control, now: float) -> None:
        self._t1_chunk = control
        self._t1_count = 0
        self._t1_timeout = self.config.rto_initial
        self._t1_deadline = now + self._t1_timeout

    def _t1_stop(self) -> None:
        self._t1_deadline = None
        self._t1_chunk = None

    def _on_t1(self, now: float) -> None:
        self._t1_count += 1
        if self._t1_count > self.config.max_init_retransmissions or self._t1_chunk is None:
            what = "INIT" if self._state is AssociationState.COOKIE_WAIT else "COOKIE-ECHO"
            self._terminate(
                f"association setup failed: no answer to {what} after {self._t1_count} attempts"
            )
            return
        self._controls.append(self._t1_chunk)
        self.stats.retransmissions += 1
        self._t1_timeout = min(self._t1_timeout * 2, self.config.rto_max)
        self._t1_deadline = now + self._t1_timeout

    def _t2_start(self, now: float) -> None:
        self._t2_count = 0
        self._t2_deadline = now + self._rto

    def _on_t2(self, now: float) -> None:
        self._t2_count += 1
        if self._bump_errors():
            return
        if self._state is AssociationState.SHUTDOWN_SENT:
            self._queue(ShutdownChunk(self._peer_cum_tsn))
        elif self._state is AssociationState.SHUTDOWN_ACK_SENT:
            self._queue(ShutdownAckChunk())
        else:
            self._t2_deadline = None
            return
        self._rto = min(self._rto * 2, self.config.rto_max)
        self._t2_deadline = now + self._rto

    def _bump_errors(self) -> bool:
        """Count a timeout; True if the association just failed."""
        self._error_count += 1
        if self._error_count > self.config.max_retransmissions:
            self._terminate(
                f"peer unreachable: {self._error_count} consecutive retransmission timeouts"
            )
            return True
        return False

    def _on_heartbeat_timer(self, now: float) -> None:
        self._hb_deadline = None
        if self._state not in _DATA_STATES:
            return
        if self._hb_outstanding is not None and self._bump_errors():
            return
        nonce = os.urandom(8)
        self._hb_outstanding = nonce
        self._queue(HeartbeatChunk(((PARAM_HEARTBEAT_INFO, _HEARTBEAT_INFO.pack(nonce, now)),)))
        self.stats.heartbeats_sent += 1
        self._hb_deadline = now + self.config.heartbeat_interval + self._rto

    def _on_heartbeat_ack(self, chunk: HeartbeatAckChunk, now: float) -> None:
        if self._hb_outstanding is None:
            return
        for param_type, value in chunk.params:
            if param_type == PARAM_HEARTBEAT_INFO and len(value) == _HEARTBEAT_INFO.size:
                nonce, sent = _HEARTBEAT_INFO.unpack(value)
                if nonce == self._hb_outstanding and 0 <= now - sent < 3600:
                    self._hb_outstanding = None
                    self._error_count = 0
                    self._update_rtt(now - sent)

    def _update_rtt(self, rtt: float) -> None:
        """RFC 9260 section 6.3.1 (alpha 1/8, beta 1/4)."""
        if self._srtt is None:
            self._srtt = rtt
            self._rttvar = rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self._rto = min(
            max(self._srtt + 4 * self._rttvar, self.config.rto_min), self.config.rto_max
        )

    # -- helpers: inbound data ------------------------------------------------------------------

    def _free_window(self) -> int:
        return max(0, self.config.receive_window - self._held_bytes)

    def _on_data(self, chunk: DataChunk, now: float) -> None:
        self._on_data_fields(
            chunk.tsn,
            chunk.stream_id,
            chunk.ssn,
            chunk.ppid,
            chunk._flags(),
            chunk.user_data,
            now,
            chunk,
        )

    def _on_data_fields(
        self,
        tsn: int,
        stream_id: int,
        ssn: int,
        ppid: int,
        flags: int,
        user_data: bytes,
        now: float,
        chunk: DataChunk | None,
    ) -> None:
        """One DATA chunk; ``chunk`` is built only if it must be kept (fragments, held data)."""
        if self._state not in _DATA_STATES:
            return
        self.stats.data_chunks_received += 1
        self._sack_due = True
        if flags & DATA_FLAG_IMMEDIATE:
            self._sack_now = True
        peer_cum = self._peer_cum_tsn
        if tsn_le(tsn, peer_cum) or tsn in self._received_above:
            self.stats.duplicate_tsns += 1
            if len(self._duplicates) < _MAX_DUPLICATES:
                self._duplicates.append(tsn)
            self._sack_now = True
            return
        distance = (tsn - peer_cum) & _U32
        size = len(user_data)
        in_sequence = distance == 1
        if distance > 0xFFFF or (
            not in_sequence
            and (
                self._held_bytes + size > self.config.receive_window
                or len(self._reassembly) >= _MAX_BUFFERED_CHUNKS
            )
        ):
            # No room: drop without acknowledging, the peer will resend (RFC 9260 6.2).
            self.stats.dropped_data_chunks += 1
            self._sack_now = True
            return
        if self._held_bytes + size > self.config.receive_window + self.config.max_message_size:
            self._protocol_abort("receive buffer exhausted")
            return
        # Mark received.
        if in_sequence:
            self._peer_cum_tsn = tsn
            if self._received_above:
                self._advance_peer_cum()
        else:
            self._received_above.add(tsn)
            self._sack_now = True
        if stream_id >= self._inbound_streams:
            self.stats.dropped_data_chunks += 1
            self._queue(ErrorChunk(((CAUSE_INVALID_STREAM, struct.pack("!HH", stream_id, 0)),)))
            return
        self._held_bytes += size
        deferred = self._peer_reset_deferred
        if deferred is None and flags & (DATA_FLAG_BEGIN | DATA_FLAG_END) == (
            DATA_FLAG_BEGIN | DATA_FLAG_END
        ):
            # A whole message in one chunk (every ping, every small message).
            self._on_message(stream_id, ssn, bool(flags & DATA_FLAG_UNORDERED), ppid, user_data)
            return
        if chunk is None:
            chunk = DataChunk(
                tsn,
                stream_id,
                ssn,
                ppid,
                user_data,
                unordered=bool(flags & DATA_FLAG_UNORDERED),
                beginning=bool(flags & DATA_FLAG_BEGIN),
                ending=bool(flags & DATA_FLAG_END),
                immediate=bool(flags & DATA_FLAG_IMMEDIATE),
            )
        if (
            deferred is not None
            and tsn_lt(deferred.last_tsn, tsn)
            and (not deferred.streams or stream_id in deferred.streams)
        ):
            # Data sent after a stream reset the peer asked for, which we have not been able to
            # perform yet: hold it until the reset is done (RFC 6525 section 5.2.2 E2).
            self._deferred_data.append(chunk)
            return
        self._reassemble(chunk)

    def _advance_peer_cum(self) -> None:
        above = self._received_above
        nxt = tsn_add(self._peer_cum_tsn, 1)
        while nxt in above:
            above.discard(nxt)
            self._peer_cum_tsn = nxt
            nxt = tsn_add(nxt, 1)

    def _reassemble(self, chunk: DataChunk) -> None:
        buf = self._reassembly
        tsn = chunk.tsn
        if chunk.beginning and chunk.ending:
            self._on_message(
                chunk.stream_id, chunk.ssn, chunk.unordered, chunk.ppid, chunk.user_data
            )
            return
        buf[tsn] = chunk
        # Fragments of one message have consecutive TSNs (RFC 9260 section 6.9).
        start = tsn
        current = chunk
        while not current.beginning:
            prev = buf.get(tsn_add(start, -1))
            if prev is None or prev.ending or not _same_message(prev, current):
                return
            start = tsn_add(start, -1)
            current = prev
        end = tsn
        current = chunk
        while not current.ending:
            nxt = buf.get(tsn_add(end, 1))
            if nxt is None or nxt.beginning or not _same_message(nxt, current):
                return
            end = tsn_add(end, 1)
            current = nxt
        parts = []
        t = start
        while True:
            parts.append(buf.pop(t).user_data)
            if t == end:
                break
            t = tsn_add(t, 1)
        self._on_message(chunk.stream_id, chunk.ssn, chunk.unordered, chunk.ppid, b"".join(parts))

    def _on_message(
        self, stream_id: int, ssn: int, unordered: bool, ppid: int, data: bytes
    ) -> None:
        if len(data) > self.config.max_message_size:
            self._held_bytes -= len(data)
            self._protocol_abort(
                f"peer sent a {len(data)}-byte message, more than max_message_size "
                f"({self.config.max_message_size})"
            )
            return
        if unordered:
            self._deliver(stream_id, ppid, data)
            return
        expected = self._in_ssn.get(stream_id, 0)
        if ssn == expected:
            self._deliver(stream_id, ppid, data)
            self._in_ssn[stream_id] = (expected + 1) & _U16
            self._deliver_pending(stream_id)
        elif ssn_lt(ssn, expected):
            # An old SSN on a new TSN: the peer is confused; drop it.
            self._held_bytes -= len(data)
            self.stats.protocol_violations += 1
        else:
            pending = self._pending_ordered.setdefault(stream_id, {})
            if ssn in pending:
                self._held_bytes -= len(data)
                self.stats.protocol_violations += 1
            else:
                pending[ssn] = (ppid, data)

    def _deliver_pending(self, stream_id: int) -> None:
        pending = self._pending_ordered.get(stream_id)
        if not pending:
            return
        expected = self._in_ssn.get(stream_id, 0)
        while expected in pending:
            ppid, data = pending.pop(expected)
            self._deliver(stream_id, ppid, data)
            expected = (expected + 1) & _U16
        self._in_ssn[stream_id] = expected
        if not pending:
            del self._pending_ordered[stream_id]

    def _deliver(self, stream_id: int, ppid: int, data: bytes) -> None:
        self._held_bytes -= len(data)
        self.stats.messages_received += 1
        self._events.append(StreamData(stream_id, ppid, data))

    def _after_data_packet(self, now: float) -> None:
        self._data_packets_unacked += 1
        if (
            self._data_packets_unacked >= 2
            or self._received_above
            or self._state is not AssociationState.ESTABLISHED
        ):
            self._sack_now = True
        if self._sack_due and not self._sack_now and self._sack_deadline is None:
            self._sack_deadline = now + self.config.delayed_sack_timeout

    def _one_packet(self, chunks: list[bytes], tag: int) -> bytes | None:
        """The packet `_PacketBuilder` would make of ``chunks`` if they fit in one (a Pong and
        its SACK), built without it; None if they do not fit."""
        size = COMMON_HEADER_LENGTH
        for c in chunks:
            size += len(c)
        if size > self.config.max_packet_size:
            return None
        packet = bytearray(_PACKET_HEADER.pack(self.local_port, self.remote_port, tag, 0))
        packet += b"".join(chunks)
        return _finish_packet(packet)

    def _encoded_sack(self) -> bytes:
        """`_build_sack`, encoded; packed directly in the usual case (no gaps, no duplicates)."""
        if not self._received_above and not self._duplicates:
            return _SACK_NO_GAPS.pack(
                CHUNK_SACK, 0, 16, self._peer_cum_tsn, self._free_window(), 0, 0
            )
        return encode_chunk(self._build_sack())

    def _build_sack(self) -> SackChunk:
        cum = self._peer_cum_tsn
        gaps: list[tuple[int, int]] = []
        for offset in sorted((t - cum) & _U32 for t in self._received_above):
            if gaps and gaps[-1][1] + 1 == offset:
                gaps[-1] = (gaps[-1][0], offset)
            elif len(gaps) < _MAX_GAP_BLOCKS:
                gaps.append((offset, offset))
            else:
                break
        return SackChunk(cum, self._free_window(), tuple(gaps), tuple(self._duplicates))

    def _on_forward_tsn(self, chunk: ForwardTsnChunk, now: float) -> None:
        self.stats.forward_tsn_received += 1
        self._sack_due = True
        self._sack_now = True
        new_cum = chunk.new_cumulative_tsn
        if tsn_le(new_cum, self._peer_cum_tsn):
            return
        if ((new_cum - self._peer_cum_tsn) & _U32) > 0xFFFF or tsn_le(
            tsn_add(self._peer_cum_tsn, 0x7FFFFFFF), new_cum
        ):
            self.stats.protocol_violations += 1
            return
        self._peer_cum_tsn = new_cum
        self._received_above = {t for t in self._received_above if tsn_lt(new_cum, t)}
        self._advance_peer_cum()
        # Fragments at or below the new cumulative TSN can never complete.
        for tsn in [t for t in self._reassembly if tsn_le(t, new_cum)]:
            self._held_bytes -= len(self._reassembly.pop(tsn).user_data)
        for stream_id, ssn in chunk.streams:
            expected = self._in_ssn.get(stream_id, 0)
            if ssn_lt(ssn, expected):
                continue  # Already past it (a repeated FORWARD-TSN).
            pending = self._pending_ordered.get(stream_id, {})
            # Complete messages up to the skipped SSN are still delivered, in order.
            for held in sorted(
                (s for s in pending if not ssn_lt(ssn, s)), key=lambda s: (s - expected) & _U16
            ):
                ppid, data = pending.pop(held)
                self._deliver(stream_id, ppid, data)
            self._in_ssn[stream_id] = (ssn + 1) & _U16
            if not pending:
                self._pending_ordered.pop(stream_id, None)
            self._deliver_pending(stream_id)

    def _protocol_abort(self, reason: str) -> None:
        self.stats.protocol_violations += 1
        self._abort_packet = self._packet_with(
            AbortChunk(((CAUSE_PROTOCOL_VIOLATION, reason.encode()[:200]),)), self._peer_tag
        )
        self._terminate(reason)

    # -- helpers: outbound data ------------------------------------------------------------------

    def _collect_data(self, now: float) -> list[bytes]:
        """Pick DATA chunks to send now (retransmissions first) and update flight state."""
        out: list[bytes] = []
        mtu = self.config.max_packet_size
        burst = self.config.max_burst * mtu
        cwnd = min(self._cwnd, self._flight_size + burst)
        first_outstanding = True
        blocked = False
        for c in self._sent if self._rtx_pending else ():
            if c.acked or c.abandoned:
                continue
            if c.retransmit:
                if self._fast_rtx_budget > 0:
                    self._fast_rtx_budget -= len(c.data) + DATA_CHUNK_HEADER_LENGTH
                elif self._flight_size >= cwnd:
                    blocked = True
                    break
                c.retransmit = False
                c.misses = 0
                c.sent_count += 1
                c.sent_time = now
                c.in_flight = True
                self._flight_size += len(c.data)
                self.stats.retransmissions += 1
                self.stats.data_chunks_sent += 1
                out.append(c.encode())
                if first_outstanding:
                    self._t3_deadline = now + self._rto
            first_outstanding = False
        self._rtx_pending = blocked
        self._fast_rtx_budget = 0
        if self._state in _NEW_DATA_STATES:
            queue = self._out_queue
            while queue:
                c = queue[0]
                if c.abandoned or self._should_abandon(c, now):
                    self._abandon(c, now)
                    continue
                if self._flight_size >= cwnd:
                    break
                if len(c.data) > self._peer_rwnd and self._flight_size > 0:
                    break
                queue.popleft()
                self._sent.append(c)
                c.sent_count = 1
                c.sent_time = now
                c.in_flight = True
                self._flight_size += len(c.data)
                self._peer_rwnd = max(0, self._peer_rwnd - len(c.data))
                self.stats.data_chunks_sent += 1
                out.append(c.encode())
                if self._t3_deadline is None:
                    self._t3_deadline = now + self._rto
        if out and self._hb_deadline is not None:
            self._hb_deadline = now + self.config.heartbeat_interval + self._rto
        return out

    def _should_abandon(self, c: _OutChunk, now: float) -> bool:
        if not self._peer_prsctp:
            return False
        if c.max_retransmits is not None and c.sent_count > c.max_retransmits:
            return True
        return c.expiry is not None and now >= c.expiry

    def _abandon(self, chunk: _OutChunk, now: float) -> None:
        """Abandon the whole message ``chunk`` belongs to (RFC 3758 section 3.5 A3)."""
        mid = chunk.message_id
        self.stats.abandoned_messages += 1
        for c in self._sent:
            if c.message_id == mid and not c.abandoned:
                self._mark_abandoned(c)
        # Unsent fragments of the message sit at the head of the queue; their TSNs must be
        # skipped too, so they move to the sent list as abandoned.
        queue = self._out_queue
        while queue and queue[0].message_id == mid:
            c = queue.popleft()
            self._mark_abandoned(c)
            self._sent.append(c)
        self._update_forward_tsn()

    def _mark_abandoned(self, c: _OutChunk) -> None:
        c.abandoned = True
        c.retransmit = False
        if c.in_flight:
            c.in_flight = False
            self._flight_size -= len(c.data)

    def _adv_ack_pending(self) -> bool:
        return bool(self._sent) and self._sent[0].abandoned

    def _update_forward_tsn(self) -> None:
        """Advance Advanced.Peer.Ack.Point over abandoned chunks (RFC 3758 C1-C3)."""
        adv = self._cum_ack
        streams: dict[int, int] = {}
        for c in self._sent:
            if not c.abandoned:
                break
            adv = c.tsn
            if not c.flags & DATA_FLAG_UNORDERED:
                streams[c.stream_id] = c.ssn
        self._adv_peer_ack = adv
        if tsn_lt(self._cum_ack, adv):
            self._forward_tsn = ForwardTsnChunk(
                adv, tuple(sorted(streams.items()))[:_MAX_FORWARD_TSN_STREAMS]
            )
        else:
            self._forward_tsn = None

    def _on_sack(self, sack: SackChunk, now: float) -> None:
        self.stats.sacks_received += 1
        self._process_cum_ack(sack.cumulative_tsn, sack.gaps, sack.a_rwnd, now)

    def _process_cum_ack(
        self, cum: int, gaps: tuple[tuple[int, int], ...], a_rwnd: int, now: float
    ) -> None:
        if tsn_lt(cum, self._cum_ack):
            return  # An old, reordered SACK.
        if not tsn_lt(cum, self._next_tsn):
            self.stats.protocol_violations += 1
            return  # Acknowledges data we never sent.
        mtu = self.config.max_packet_size
        flight_before = self._flight_size
        cum_advanced = tsn_lt(self._cum_ack, cum)
        newly_acked = 0
        # RTT sample: the newest transmission among newly acknowledged chunks that were sent
        # once (Karn). The oldest one would include every earlier lost SACK's delay; chunks
        # sent before the last T3 expiry are skipped too, as their SACK may have been lost
        # and this one only came after the timeout's recovery.
        rtt_sent: float | None = None
        htna: int | None = None
        sent = self._sent
        while sent and tsn_le(sent[0].tsn, cum):
            c = sent.popleft()
            if not c.acked and not c.abandoned:
                newly_acked += len(c.data)
                htna = c.tsn
                if c.sent_count == 1 and (rtt_sent is None or c.sent_time > rtt_sent):
                    rtt_sent = c.sent_time
            if c.in_flight:
                c.in_flight = False
                self._flight_size -= len(c.data)
        self._cum_ack = cum
        if gaps:
            starts = []
            ends = []
            for start, end in gaps:
                if start <= end:
                    starts.append(tsn_add(cum, start))
                    ends.append(tsn_add(cum, end))
            order = sorted(range(len(starts)), key=lambda i: (starts[i] - cum) & _U32)
            starts = [starts[i] for i in order]
            ends = [ends[i] for i in order]
            offsets = [(s - cum) & _U32 for s in starts]
            for c in sent:
                off = (c.tsn - cum) & _U32
                i = bisect_right(offsets, off) - 1
                if i >= 0 and off <= (ends[i] - cum) & _U32 and not c.acked:
                    c.acked = True
                    if not c.abandoned:
                        newly_acked += len(c.data)
                        htna = c.tsn
                        if c.sent_count == 1 and (rtt_sent is None or c.sent_time > rtt_sent):
                            rtt_sent = c.sent_time
                    if c.in_flight:
                        c.in_flight = False
                        self._flight_size -= len(c.data)
                    c.retransmit = False
        if rtt_sent is not None and rtt_sent >= self._rtt_epoch:
            self._update_rtt(now - rtt_sent)
        if newly_acked:
            self._error_count = 0

        # Fast retransmit: strike unacknowledged chunks below the highest TSN newly
        # acknowledged by this SACK (the HTNA rule, RFC 9260 section 7.2.4).
        marked = False
        if htna is not None and gaps:
            # A list copy: abandoning a message may move queued chunks onto ``sent``.
            for c in list(sent):
                if not tsn_lt(c.tsn, htna):
                    break
                if c.acked or c.abandoned or c.retransmit or not c.in_flight:
                    continue
                c.misses += 1
                if c.misses >= 3:
                    c.misses = 0
                    if self._should_abandon(c, now):
                        self._abandon(c, now)
                        continue
                    c.retransmit = True
                    self._rtx_pending = True
                    c.in_flight = False
                    self._flight_size -= len(c.data)
                    self.stats.fast_retransmits += 1
                    marked = True

        # Congestion control (RFC 9260 section 7.2).
        in_recovery = self._fast_recovery_exit is not None
        if (
            in_recovery
            and self._fast_recovery_exit is not None
            and tsn_le(self._fast_recovery_exit, cum)
        ):
            self._fast_recovery_exit = None
            in_recovery = False
        if marked and not in_recovery:
            self._ssthresh = max(self._cwnd // 2, 4 * mtu)
            self._cwnd = self._ssthresh
            self._partial_bytes_acked = 0
            self._fast_recovery_exit = tsn_add(self._next_tsn, -1)
            self._fast_rtx_budget = mtu
        elif cum_advanced and not in_recovery and newly_acked:
            if self._cwnd <= self._ssthresh:
                if flight_before + mtu >= self._cwnd:
                    self._cwnd += min(newly_acked, mtu)
            else:
                self._partial_bytes_acked += newly_acked
                if self._partial_bytes_acked >= self._cwnd and flight_before + mtu >= self._cwnd:
                    self._partial_bytes_acked -= self._cwnd
                    self._cwnd += mtu
        self._peer_rwnd = max(0, a_rwnd - self._flight_size)

        # T3-rtx: runs while anything is outstanding (or a FORWARD-TSN is unacknowledged);
        # restarts when the ack point moves.
        outstanding = self._adv_ack_pending() or any(not c.acked and not c.abandoned for c in sent)
        if not outstanding:
            self._t3_deadline = None
        elif cum_advanced or self._t3_deadline is None:
            self._t3_deadline = now + self._rto
        if self._adv_ack_pending() or self._forward_tsn is not None:
            self._update_forward_tsn()
        if self._state in (AssociationState.SHUTDOWN_PENDING, AssociationState.SHUTDOWN_RECEIVED):
            self._check_shutdown(now)

    def _on_t3(self, now: float) -> None:
        self._t3_deadline = None
        self.stats.t3_expirations += 1
        self._rtt_epoch = now
        outstanding = [c for c in self._sent if not c.acked and not c.abandoned]
        if not outstanding and not self._adv_ack_pending():
            return
        if self._bump_errors():
            return
        self._rto = min(self._rto * 2, self.config.rto_max)
        mtu = self.config.max_packet_size
        self._ssthresh = max(self._cwnd // 2, 4 * mtu)
        self._cwnd = mtu
        self._partial_bytes_acked = 0
        self._fast_recovery_exit = None
        for c in outstanding:
            if c.abandoned:
                continue
            if self._should_abandon(c, now):
                self._abandon(c, now)
                continue
            c.retransmit = True
            self._rtx_pending = True
            c.misses = 0
            if c.in_flight:
                c.in_flight = False
                self._flight_size -= len(c.data)
        self._update_forward_tsn()
        self._t3_deadline = now + self._rto

    # -- helpers: stream reconfiguration --------------------------------------------------------

    def _maybe_send_reconfig(self, now: float) -> None:
        if self._reconfig_request is not None or not self._reconfig_queue:
            return
        streams = tuple(self._reconfig_queue[:_MAX_RECONFIG_STREAMS])
        del self._reconfig_queue[:_MAX_RECONFIG_STREAMS]
        request = OutgoingResetRequest(
            request_seq=self._reconfig_next_seq,
            response_seq=tsn_add(self._peer_reconfig_expected, -1),
            last_tsn=tsn_add(self._next_tsn, -1),
            streams=streams,
        )
        self._reconfig_next_seq = tsn_add(self._reconfig_next_seq, 1)
        self._reconfig_request = request
        self._queue(ReconfigChunk((request,)))
        self._reconfig_deadline = now + self._rto

    def _on_reconfig_timer(self, now: float) -> None:
        self._reconfig_deadline = None
        request = self._reconfig_request
        if request is None:
            return
        if self._bump_errors():
            return
        self._queue(ReconfigChunk((request,)))
        self._reconfig_deadline = now + self._rto

    def _on_reconfig(self, chunk: ReconfigChunk, now: float) -> None:
        responses: list[ReconfigParam] = []
        for param in chunk.params:
            if isinstance(param, OutgoingResetRequest):
                responses.append(self._on_peer_reset_request(param, now))
            elif isinstance(param, ReconfigResponse):
                self._on_reconfig_response(param, now)
            elif isinstance(param, AddOutgoingStreamsRequest):
                responses.append(self._answer_simple_request(param.request_seq, True))
            elif isinstance(
                param, (IncomingResetRequest, SsnTsnResetRequest, AddIncomingStreamsRequest)
            ):
                responses.append(self._answer_simple_request(param.request_seq, False))
        for response in responses:
            self._queue(ReconfigChunk((response,)))

    def _answer_simple_request(self, seq: int, accept: bool) -> ReconfigResponse:
        if seq == self._peer_reconfig_expected:
            self._peer_reconfig_expected = tsn_add(seq, 1)
            self._peer_reconfig_last_result = RESULT_SUCCESS_PERFORMED if accept else RESULT_DENIED
            return ReconfigResponse(seq, self._peer_reconfig_last_result)
        if seq == tsn_add(self._peer_reconfig_expected, -1):
            return ReconfigResponse(seq, self._peer_reconfig_last_result)
        return ReconfigResponse(seq, RESULT_ERROR_BAD_SEQUENCE)

    def _on_peer_reset_request(self, request: OutgoingResetRequest, now: float) -> ReconfigResponse:
        seq = request.request_seq
        if seq == self._peer_reconfig_expected:
            if self._peer_reset_deferred is not None:
                # One deferred request at a time.
                return ReconfigResponse(seq, RESULT_IN_PROGRESS)
            self._peer_reconfig_expected = tsn_add(seq, 1)
            if tsn_le(request.last_tsn, self._peer_cum_tsn):
                self._perform_peer_reset(request)
                self._peer_reconfig_last_result = RESULT_SUCCESS_PERFORMED
            else:
                self._peer_reset_deferred = request
                self._peer_reconfig_last_result = RESULT_IN_PROGRESS
            return ReconfigResponse(seq, self._peer_reconfig_last_result)
        if seq == tsn_add(self._peer_reconfig_expected, -1):
            return ReconfigResponse(seq, self._peer_reconfig_last_result)
        return ReconfigResponse(seq, RESULT_ERROR_BAD_SEQUENCE)

    def _try_deferred_reset(self, now: float) -> None:
        request = self._peer_reset_deferred
        if request is None or self._terminated or not tsn_le(request.last_tsn, self._peer_cum_tsn):
            return
        self._peer_reset_deferred = None
        self._perform_peer_reset(request)
        self._peer_reconfig_last_result = RESULT_SUCCESS_PERFORMED
        self._queue(
            ReconfigChunk((ReconfigResponse(request.request_seq, RESULT_SUCCESS_PERFORMED),))
        )
        held, self._deferred_data = self._deferred_data, []
        for chunk in held:
            self._reassemble(chunk)

    def _perform_peer_reset(self, request: OutgoingResetRequest) -> None:
        streams = request.streams or tuple(set(self._in_ssn) | set(self._pending_ordered))
        for sid in streams:
            self._in_ssn.pop(sid, None)
            for _ppid, data in self._pending_ordered.pop(sid, {}).values():
                self._held_bytes -= len(data)
        self._events.append(StreamReset(request.streams))

    def _on_reconfig_response(self, response: ReconfigResponse, now: float) -> None:
        request = self._reconfig_request
        if request is None or response.response_seq != request.request_seq:
            return
        if response.result == RESULT_IN_PROGRESS:
            # The peer still waits for our data; ask again later (RFC 6525 5.2.7).
            self._reconfig_deadline = now + self._rto
            return
        self._reconfig_request = None
        self._reconfig_deadline = None
        self._error_count = 0
        success = response.result in (RESULT_SUCCESS_PERFORMED, RESULT_SUCCESS_NOTHING_TO_DO)
        for sid in request.streams:
            self._resetting.discard(sid)
            if success:
                self._out_ssn.pop(sid, None)
        self._events.append(StreamResetCompleted(request.streams, success))
        self._maybe_send_reconfig(now)


def _same_message(a: DataChunk, b: DataChunk) -> bool:
    return (
        a.stream_id == b.stream_id
        and a.unordered == b.unordered
        and (a.unordered or a.ssn == b.ssn)
    )


def _describe_causes(causes: tuple[Param, ...]) -> str:
    if not causes:
        return ""
    parts = []
    for code, value in causes:
        text = (
            value.decode("utf-8", "replace")
            if code in (CAUSE_USER_ABORT, CAUSE_PROTOCOL_VIOLATION)
            else value.hex()
        )
        parts.append(f"cause {code}" + (f" ({text})" if text else ""))
    return ": " + ", ".join(parts)
