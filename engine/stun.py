"""STUN message codec: the subset an ICE-lite WebRTC server speaks.

Specs:
- RFC 8489 (STUN, obsoletes RFC 5389): https://www.rfc-editor.org/rfc/rfc8489
- RFC 5769 (test vectors): https://www.rfc-editor.org/rfc/rfc5769
- RFC 8445 section 16 (ICE attributes PRIORITY, USE-CANDIDATE, ICE-CONTROLLED, ICE-CONTROLLING):
  https://www.rfc-editor.org/rfc/rfc8445#section-16

Why this module exists, and why it looks the way it does:

- The SFU terminates ICE itself (ICE-lite, see ``engine/ice.py``). Every browser sends a consent
  check every ~5 s (RFC 7675), so with thousands of sessions this codec runs a few thousand times
  a second. Parsing is one pass over the datagram that records ``(type, value)`` pairs and the
  offsets of MESSAGE-INTEGRITY and FINGERPRINT; typed attribute values are only decoded when
  asked for. MESSAGE-INTEGRITY is checked over the original bytes (no re-encoding) with the
  header length patched as RFC 8489 section 14.5 requires.
- FINGERPRINT is verified while parsing (it is what separates STUN from other traffic sharing the
  port, RFC 8489 section 14.7); a mismatch raises :class:`StunFingerprintError`.
- Everything malformed raises :class:`StunError`, a ``ValueError``: the caller counts the drop.
  Garbage never raises anything else.
- Encoding pads attribute values with zeros (RFC 8489 section 14). Parsing ignores padding content:
  RFC 5769 deliberately pads with spaces to test exactly that.

Message type layout (RFC 8489 section 5): the 14-bit type interleaves the 12-bit method ``M`` and
the 2-bit class ``C``::

     0                 1
     2  3  4 5 6 7 8 9 0 1 2 3 4 5
    +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
    |M |M |M|M|M|C|M|M|M|C|M|M|M|M|
    |11|10|9|8|7|1|6|5|4|0|3|2|1|0|
    +--+--+-+-+-+-+-+-+-+-+-+-+-+-+

so a Binding request is 0x0001, a success response 0x0101, an error response 0x0111 and an
indication 0x0011.

Worked example of the XOR address (RFC 5769 section 2.2): 192.0.2.1:32853 is sent as port
``32853 ^ 0x2112 = 0xA147`` and address ``0xC0000201 ^ 0x2112A442 = 0xE112A643``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
import struct
import zlib
from collections.abc import Iterable, Sequence
from enum import IntEnum

__all__ = [
    "FINGERPRINT_XOR",
    "HEADER_LENGTH",
    "KNOWN_ATTRIBUTES",
    "MAGIC_COOKIE",
    "Attr",
    "ErrorCode",
    "Method",
    "StunClass",
    "StunError",
    "StunFingerprintError",
    "StunMessage",
    "decode_address",
    "decode_xor_address",
    "encode_address",
    "encode_binding_success",
    "encode_error_code",
    "encode_error_response",
    "encode_xor_address",
    "is_stun",
    "long_term_key",
    "new_transaction_id",
    "parse_message",
]

MAGIC_COOKIE = 0x2112A442
HEADER_LENGTH = 20
FINGERPRINT_XOR = 0x5354554E

_MAGIC_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_HEADER = struct.Struct("!HHI")
_ATTR_HEADER = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")

# RFC 8489 section 14.3: USERNAME, and the UTF-8 strings REALM/SOFTWARE/NONCE, are bounded.
_MAX_USERNAME = 513
_MAX_TEXT = 763


class StunError(ValueError):
    """A datagram is not a well-formed STUN message, or an attribute value is malformed."""


class StunFingerprintError(StunError):
    """The FINGERPRINT attribute does not match the message (RFC 8489 section 14.7)."""


class StunClass(IntEnum):
    """The two class bits of the message type (RFC 8489 section 5)."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class Method(IntEnum):
    """STUN methods we know by name; others parse as plain ints."""

    BINDING = 0x001


class Attr(IntEnum):
    """Attribute types (RFC 8489 section 18.3, RFC 8445 section 16, and Google's 0xC057)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REALM = 0x0014
    NONCE = 0x0015
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    XOR_MAPPED_ADDRESS = 0x0020
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    SOFTWARE = 0x8022
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    GOOG_NETWORK_INFO = 0xC057


class ErrorCode(IntEnum):
    """ERROR-CODE values used by an ICE agent (RFC 8489 section 14.8, RFC 8445 section 7.3.1.1)."""

    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    UNKNOWN_ATTRIBUTE = 420
    ROLE_CONFLICT = 487
    SERVER_ERROR = 500


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    420: "Unknown Attribute",
    487: "Role Conflict",
    500: "Server Error",
}

# Plain ints for the parse loop (IntEnum comparisons are slower).
_FINGERPRINT = int(Attr.FINGERPRINT)
_MESSAGE_INTEGRITY = int(Attr.MESSAGE_INTEGRITY)
_MESSAGE_INTEGRITY_SHA256 = int(Attr.MESSAGE_INTEGRITY_SHA256)

# Attributes this codec understands. A *request* carrying a comprehension-required attribute
# (type < 0x8000) outside this set must be answered with 420 (RFC 8489 section 6.3.1).
KNOWN_ATTRIBUTES = frozenset(int(a) for a in Attr)

# Computed on encode; entries of these types in ``StunMessage.attributes`` are skipped by encode().
_COMPUTED = frozenset((Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT))


def _message_type(method: int, msg_class: int) -> int:
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((msg_class & 1) << 4)
        | ((msg_class & 2) << 7)
    )


def _split_type(msg_type: int) -> tuple[int, StunClass]:
    method = (msg_type & 0x000F) | ((msg_type >> 1) & 0x0070) | ((msg_type >> 2) & 0x0F80)
    msg_class = StunClass(((msg_type >> 4) & 1) | ((msg_type >> 7) & 2))
    return method, msg_class


def is_stun(data: bytes | bytearray | memoryview) -> bool:
    """Cheap pre-filter: two zero top bits, a magic cookie and a 4-aligned length (RFC 7983)."""
    return (
        len(data) >= HEADER_LENGTH
        and data[0] < 4
        and data[4:8] == _MAGIC_BYTES
        and (data[3] & 3) == 0
    )


def new_transaction_id() -> bytes:
    """A fresh 96-bit transaction id from the OS CSPRNG (RFC 8489 section 5)."""
    return os.urandom(12)


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """Long-term credential key ``MD5(username ":" realm ":" password)`` (RFC 8489 section 9.2.2).

    ``password`` must already be processed with the OpaqueString profile (SASLprep in RFC 5389);
    this module does not implement that profile (the ICE path only uses short-term credentials).
    """
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()


# --------------------------------------------------------------------------- address attributes


def _host_to_bytes(host: str) -> tuple[int, bytes]:
    """Family code and packed address; IPv4-mapped IPv6 and ``%scope`` suffixes are unwrapped."""
    try:
        return 1, socket.inet_pton(socket.AF_INET, host)
    except (OSError, TypeError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except (OSError, TypeError, AttributeError) as exc:
        raise StunError(f"not an IP address: {host!r}") from exc
    if packed[:12] == _V4_MAPPED_PREFIX:
        return 1, packed[12:]
    return 2, packed


def _check_port(port: int) -> None:
    if not 0 <= port <= 0xFFFF:
        raise StunError(f"port out of range: {port}")


def encode_address(host: str, port: int) -> bytes:
    """MAPPED-ADDRESS value (RFC 8489 section 14.1)."""
    _check_port(port)
    family, packed = _host_to_bytes(host)
    return bytes((0, family)) + _U16.pack(port) + packed


def encode_xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS value (RFC 8489 section 14.2)."""
    _check_port(port)
    family, packed = _host_to_bytes(host)
    mask = _MAGIC_BYTES + transaction_id if family == 2 else _MAGIC_BYTES
    xored = (int.from_bytes(packed, "big") ^ int.from_bytes(mask, "big")).to_bytes(
        len(packed), "big"
    )
    return bytes((0, family)) + _U16.pack(port ^ (MAGIC_COOKIE >> 16)) + xored


def _decode_address_value(value: bytes) -> tuple[int, int, bytes]:
    if len(value) < 4:
        raise StunError("address attribute shorter than 4 bytes")
    family = value[1]
    if family == 1:
        if len(value) != 8:
            raise StunError(f"IPv4 address attribute has length {len(value)}, expected 8")
    elif family == 2:
        if len(value) != 20:
            raise StunError(f"IPv6 address attribute has length {len(value)}, expected 20")
    else:
        raise StunError(f"unknown address family 0x{family:02x}")
    (port,) = _U16.unpack_from(value, 2)
    return family, port, value[4:]


def decode_address(value: bytes) -> tuple[str, int]:
    """Decode a MAPPED-ADDRESS value into ``(host, port)``."""
    family, port, packed = _decode_address_value(value)
    ip = ipaddress.IPv4Address(packed) if family == 1 else ipaddress.IPv6Address(packed)
    return str(ip), port


def decode_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    """Decode an XOR-MAPPED-ADDRESS value into ``(host, port)``."""
    family, port, packed = _decode_address_value(value)
    mask = _MAGIC_BYTES + transaction_id if family == 2 else _MAGIC_BYTES
    raw = (int.from_bytes(packed, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(packed), "big")
    ip = ipaddress.IPv4Address(raw) if family == 1 else ipaddress.IPv6Address(raw)
    return str(ip), port ^ (MAGIC_COOKIE >> 16)


def encode_error_code(code: int, reason: str | None = None) -> bytes:
    """ERROR-CODE value (RFC 8489 section 14.8): class in the hundreds, number 0-99, reason."""
    if not 300 <= code <= 699:
        raise StunError(f"error code out of range: {code}")
    text = (reason if reason is not None else _REASONS.get(code, "")).encode()
    if len(text) > _MAX_TEXT:
        raise StunError("error reason phrase too long")
    return bytes((0, 0, code // 100, code % 100)) + text


# --------------------------------------------------------------------------------- the message


class StunMessage:
    """One STUN message: header fields plus attributes in wire order.

    Parsed messages (:func:`parse_message`) keep the original bytes so that MESSAGE-INTEGRITY can
    be checked without re-encoding; their ``attributes`` list also contains the MESSAGE-INTEGRITY
    and FINGERPRINT entries as received. Attributes that follow MESSAGE-INTEGRITY (other than
    MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) are dropped, as RFC 8489 section 14.5 requires.

    For messages being built, :meth:`encode` computes MESSAGE-INTEGRITY and FINGERPRINT and
    ignores entries of those types in ``attributes``.
    """

    __slots__ = (
        "_first",
        "_fp_offset",
        "_mi_offset",
        "_raw",
        "attributes",
        "method",
        "msg_class",
        "transaction_id",
    )

    def __init__(
        self,
        method: int,
        msg_class: StunClass,
        transaction_id: bytes | None = None,
        attributes: Iterable[tuple[int, bytes]] = (),
    ) -> None:
        if transaction_id is None:
            transaction_id = new_transaction_id()
        if len(transaction_id) != 12:
            raise StunError("transaction id must be 12 bytes")
        if not 0 <= method <= 0xFFF:
            raise StunError(f"method out of range: {method}")
        self.method = method
        self.msg_class = StunClass(msg_class)
        self.transaction_id = transaction_id
        self.attributes: list[tuple[int, bytes]] = []
        self._first: dict[int, bytes] = {}
        self._raw = b""
        self._mi_offset = -1
        self._fp_offset = -1
        for attr_type, value in attributes:
            self.add(attr_type, value)

    def __repr__(self) -> str:
        names = []
        for attr_type, _ in self.attributes:
            try:
                names.append(Attr(attr_type).name)
            except ValueError:
                names.append(f"0x{attr_type:04x}")
        return (
            f"StunMessage(method=0x{self.method:03x}, class={self.msg_class.name}, "
            f"tid={self.transaction_id.hex()}, attrs=[{', '.join(names)}])"
        )

    # ------------------------------------------------------------------ generic access

    def add(self, attr_type: int, value: bytes = b"") -> StunMessage:
        """Append an attribute (value unpadded). Returns ``self`` for chaining."""
        if not 0 <= attr_type <= 0xFFFF:
            raise StunError(f"attribute type out of range: {attr_type}")
        if len(value) > 0xFFFF:
            raise StunError("attribute value longer than 65535 bytes")
        value = bytes(value)
        self.attributes.append((attr_type, value))
        self._first.setdefault(attr_type, value)
        return self

    def get(self, attr_type: int) -> bytes | None:
        """The first value of ``attr_type`` (later duplicates are ignored), or None."""
        return self._first.get(attr_type)

    def __contains__(self, attr_type: object) -> bool:
        return attr_type in self._first

    def unknown_comprehension_required(self) -> list[int]:
        """Comprehension-required attribute types (< 0x8000) this codec does not know."""
        return [t for t in self._first if t < 0x8000 and t not in KNOWN_ATTRIBUTES]

    # ------------------------------------------------------------------ typed attributes

    def _text(self, attr_type: int, limit: int) -> str | None:
        value = self._first.get(attr_type)
        if value is None:
            return None
        if len(value) > limit:
            raise StunError(f"attribute 0x{attr_type:04x} longer than {limit} bytes")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StunError(f"attribute 0x{attr_type:04x} is not valid UTF-8") from exc

    def _fixed(self, attr_type: int, size: int) -> bytes | None:
        value = self._first.get(attr_type)
        if value is not None and len(value) != size:
            raise StunError(f"attribute 0x{attr_type:04x} has length {len(value)}, expected {size}")
        return value

    @property
    def username(self) -> str | None:
        return self._text(Attr.USERNAME, _MAX_USERNAME)

    @property
    def software(self) -> str | None:
        return self._text(Attr.SOFTWARE, _MAX_TEXT)

    @property
    def realm(self) -> str | None:
        return self._text(Attr.REALM, _MAX_TEXT)

    @property
    def nonce(self) -> str | None:
        return self._text(Attr.NONCE, _MAX_TEXT)

    @property
    def priority(self) -> int | None:
        value = self._fixed(Attr.PRIORITY, 4)
        return None if value is None else int(_U32.unpack(value)[0])

    @property
    def use_candidate(self) -> bool:
        return self._fixed(Attr.USE_CANDIDATE, 0) is not None

    @property
    def ice_controlled(self) -> int | None:
        """ICE-CONTROLLED tie-breaker."""
        value = self._fixed(Attr.ICE_CONTROLLED, 8)
        return None if value is None else int(_U64.unpack(value)[0])

    @property
    def ice_controlling(self) -> int | None:
        """ICE-CONTROLLING tie-breaker."""
        value = self._fixed(Attr.ICE_CONTROLLING, 8)
        return None if value is None else int(_U64.unpack(value)[0])

    @property
    def mapped_address(self) -> tuple[str, int] | None:
        value = self._first.get(Attr.MAPPED_ADDRESS)
        return None if value is None else decode_address(value)

    @property
    def xor_mapped_address(self) -> tuple[str, int] | None:
        value = self._first.get(Attr.XOR_MAPPED_ADDRESS)
        return None if value is None else decode_xor_address(value, self.transaction_id)

    @property
    def error_code(self) -> tuple[int, str] | None:
        """``(code, reason)`` from ERROR-CODE."""
        value = self._first.get(Attr.ERROR_CODE)
        if value is None:
            return None
        if len(value) < 4:
            raise StunError("ERROR-CODE shorter than 4 bytes")
        klass, number = value[2] & 0x07, value[3]
        if not 3 <= klass <= 6 or number > 99:
            raise StunError(f"ERROR-CODE class {klass} / number {number} out of range")
        if len(value) - 4 > _MAX_TEXT:
            raise StunError("ERROR-CODE reason phrase too long")
        try:
            reason = value[4:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StunError("ERROR-CODE reason phrase is not valid UTF-8") from exc
        return klass * 100 + number, reason

    @property
    def unknown_attributes(self) -> list[int] | None:
        value = self._first.get(Attr.UNKNOWN_ATTRIBUTES)
        if value is None:
            return None
        if len(value) % 2:
            raise StunError("UNKNOWN-ATTRIBUTES length is odd")
        return [int(v[0]) for v in _U16.iter_unpack(value)]

    @property
    def message_integrity(self) -> bytes | None:
        return self._first.get(Attr.MESSAGE_INTEGRITY)

    @property
    def message_integrity_sha256(self) -> bytes | None:
        """Parsed and length-checked only: ICE does not use it (RFC 8489 section 14.6)."""
        return self._first.get(Attr.MESSAGE_INTEGRITY_SHA256)

    @property
    def fingerprint(self) -> int | None:
        value = self._first.get(Attr.FINGERPRINT)
        return None if value is None else int(_U32.unpack(value)[0])

    @property
    def goog_network_info(self) -> bytes | None:
        """Chrome's GOOG-NETWORK-INFO (network id and cost), kept raw."""
        return self._first.get(Attr.GOOG_NETWORK_INFO)

    # ------------------------------------------------------------------ integrity

    def check_integrity(self, key: bytes) -> bool:
        """Verify MESSAGE-INTEGRITY (HMAC-SHA1) of a parsed message with ``key``.

        The HMAC covers the message up to the MESSAGE-INTEGRITY attribute, with the header length
        set as if MESSAGE-INTEGRITY were the last attribute (RFC 8489 section 14.5), so a
        FINGERPRINT after it does not count. False if the attribute is absent.
        """
        offset = self._mi_offset
        if offset < 0:
            return False
        raw = self._raw
        signed = b"".join((raw[0:2], _U16.pack(offset + 24 - HEADER_LENGTH), raw[4:offset]))
        expected = hmac.digest(key, signed, "sha1")
        return hmac.compare_digest(expected, raw[offset + 4 : offset + 24])

    # ------------------------------------------------------------------ encoding

    def encode(
        self,
        *,
        integrity_key: bytes | None = None,
        fingerprint: bool = False,
        _test_padding: bytes = b"\x00",
    ) -> bytes:
        """Serialise; append MESSAGE-INTEGRITY when ``integrity_key`` is given, then FINGERPRINT.

        ``_test_padding`` exists only so tests can reproduce RFC 5769's space-padded vectors.
        """
        buf = bytearray(HEADER_LENGTH)
        for attr_type, value in self.attributes:
            if attr_type in _COMPUTED:
                continue
            length = len(value)
            buf += _ATTR_HEADER.pack(attr_type, length)
            buf += value
            if length & 3:
                buf += _test_padding * (4 - (length & 3))
        msg_type = _message_type(self.method, self.msg_class)
        if integrity_key is not None:
            _HEADER.pack_into(buf, 0, msg_type, len(buf) + 24 - HEADER_LENGTH, MAGIC_COOKIE)
            buf[8:20] = self.transaction_id
            mac = hmac.digest(integrity_key, buf, "sha1")
            buf += _ATTR_HEADER.pack(Attr.MESSAGE_INTEGRITY, 20)
            buf += mac
        if fingerprint:
            _HEADER.pack_into(buf, 0, msg_type, len(buf) + 8 - HEADER_LENGTH, MAGIC_COOKIE)
            buf[8:20] = self.transaction_id
            crc = zlib.crc32(buf) ^ FINGERPRINT_XOR
            buf += _ATTR_HEADER.pack(Attr.FINGERPRINT, 4)
            buf += _U32.pack(crc)
        if len(buf) - HEADER_LENGTH > 0xFFFF:
            raise StunError("STUN message longer than 65535 bytes")
        _HEADER.pack_into(buf, 0, msg_type, len(buf) - HEADER_LENGTH, MAGIC_COOKIE)
        buf[8:20] = self.transaction_id
        return bytes(buf)


def parse_message(data: bytes | bytearray | memoryview) -> StunMessage:
    """Parse one STUN message; raise :class:`StunError` (a ``ValueError``) on any malformation.

    Checks: header (two zero top bits, magic cookie, length matching the datagram and a multiple
    of 4), attribute TLVs inside the message, MESSAGE-INTEGRITY of 20 bytes,
    MESSAGE-INTEGRITY-SHA256 of 16-32 bytes in steps of 4, FINGERPRINT of 4 bytes, last, and
    matching the CRC. Typed attribute values are validated lazily by the accessors.
    """
    raw = data if isinstance(data, bytes) else bytes(data)
    size = len(raw)
    if size < HEADER_LENGTH:
        raise StunError("STUN message shorter than the 20-byte header")
    msg_type, length, cookie = _HEADER.unpack_from(raw, 0)
    if msg_type & 0xC000:
        raise StunError("not STUN: the two top bits of the message type are set")
    if cookie != MAGIC_COOKIE:
        raise StunError("not STUN: wrong magic cookie")
    if length & 3:
        raise StunError(f"STUN length {length} is not a multiple of 4")
    if HEADER_LENGTH + length != size:
        raise StunError(f"STUN length {length} does not match the {size}-byte datagram")
    method, msg_class = _split_type(msg_type)
    message = StunMessage.__new__(StunMessage)
    message.method = method
    message.msg_class = msg_class
    message.transaction_id = raw[8:20]
    message._raw = raw
    message._mi_offset = -1
    message._fp_offset = -1
    attributes: list[tuple[int, bytes]] = []
    first: dict[int, bytes] = {}
    message.attributes = attributes
    message._first = first

    pos = HEADER_LENGTH
    seen_mi = seen_mi256 = False
    unpack_attr = _ATTR_HEADER.unpack_from
    while pos < size:
        if message._fp_offset >= 0:
            raise StunError("attribute after FINGERPRINT")
        if size - pos < 4:
            raise StunError("truncated attribute header")
        attr_type, attr_len = unpack_attr(raw, pos)
        start = pos + 4
        end = start + attr_len
        if start + ((attr_len + 3) & ~3) > size:
            raise StunError(f"attribute 0x{attr_type:04x} overruns the message")
        if attr_type == _FINGERPRINT:
            if attr_len != 4:
                raise StunError("FINGERPRINT must be 4 bytes")
            crc = zlib.crc32(memoryview(raw)[:pos]) ^ FINGERPRINT_XOR
            if crc != _U32.unpack_from(raw, start)[0]:
                raise StunFingerprintError("STUN FINGERPRINT mismatch")
            message._fp_offset = pos
        elif attr_type == _MESSAGE_INTEGRITY:
            if attr_len != 20:
                raise StunError("MESSAGE-INTEGRITY must be 20 bytes")
            if seen_mi or seen_mi256:
                pos = start + 20
                continue  # ignored: follows an integrity attribute
            seen_mi = True
            message._mi_offset = pos
        elif attr_type == _MESSAGE_INTEGRITY_SHA256:
            if attr_len < 16 or attr_len > 32 or attr_len & 3:
                raise StunError("MESSAGE-INTEGRITY-SHA256 must be 16-32 bytes in steps of 4")
            if seen_mi256:
                pos = end  # 16-32 bytes in steps of 4: already aligned
                continue
            seen_mi256 = True
        elif seen_mi or seen_mi256:
            pos = start + ((attr_len + 3) & ~3)
            continue  # RFC 8489 14.5/14.6: attributes after integrity are ignored
        value = raw[start:end]
        attributes.append((attr_type, value))
        if attr_type not in first:
            first[attr_type] = value
        pos = start + ((attr_len + 3) & ~3)
    return message


def encode_binding_success(
    transaction_id: bytes, host: str, port: int, integrity_key: bytes
) -> bytes:
    """Binding success response: XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT.

    The ICE-lite fast path: one buffer, no intermediate :class:`StunMessage`.
    """
    xma = encode_xor_address(host, port, transaction_id)
    body_end = HEADER_LENGTH + 4 + len(xma)
    buf = bytearray(body_end + 24 + 8)
    _HEADER.pack_into(buf, 0, 0x0101, body_end + 24 - HEADER_LENGTH, MAGIC_COOKIE)
    buf[8:20] = transaction_id
    _ATTR_HEADER.pack_into(buf, HEADER_LENGTH, Attr.XOR_MAPPED_ADDRESS, len(xma))
    buf[HEADER_LENGTH + 4 : body_end] = xma
    view = memoryview(buf)
    mac = hmac.digest(integrity_key, view[:body_end], "sha1")
    _ATTR_HEADER.pack_into(buf, body_end, Attr.MESSAGE_INTEGRITY, 20)
    buf[body_end + 4 : body_end + 24] = mac
    fp_offset = body_end + 24
    _U16.pack_into(buf, 2, fp_offset + 8 - HEADER_LENGTH)
    crc = zlib.crc32(view[:fp_offset]) ^ FINGERPRINT_XOR
    _ATTR_HEADER.pack_into(buf, fp_offset, Attr.FINGERPRINT, 4)
    _U32.pack_into(buf, fp_offset + 4, crc)
    view.release()
    return bytes(buf)


def encode_error_response(
    request: StunMessage,
    code: int,
    *,
    integrity_key: bytes | None = None,
    unknown: Sequence[int] = (),
) -> bytes:
    """Error response to ``request`` with ERROR-CODE (and UNKNOWN-ATTRIBUTES for 420).

    MESSAGE-INTEGRITY is added only when ``integrity_key`` is given, i.e. when the request was
    authenticated (RFC 8489 section 9.1.4); FINGERPRINT always.
    """
    response = StunMessage(request.method, StunClass.ERROR, request.transaction_id)
    response.add(Attr.ERROR_CODE, encode_error_code(code))
    if unknown:
        response.add(Attr.UNKNOWN_ATTRIBUTES, b"".join(_U16.pack(t) for t in unknown))
    return response.encode(integrity_key=integrity_key, fingerprint=True)
