"""STUN codec: RFC 5769 vectors, round trips, malformed input, hypothesis garbage."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard.engine import stun
from switchboard.engine.stun import Attr, Method, StunClass, StunMessage

# ---------------------------------------------------------------------------- RFC 5769 vectors

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# 2.1 Sample Request (SOFTWARE "STUN test client", padding bytes are spaces).
RFC5769_REQUEST = bytes.fromhex(
    "00010058"
    "2112a442"
    "b7e7a701bc34d686fa87dfae"
    "80220010"
    "5354554e207465737420636c69656e74"
    "00240004"
    "6e0001ff"
    "80290008"
    "932ff9b151263b36"
    "00060009"
    "6576746a3a68367659202020"
    "00080014"
    "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004"
    "e57a3bcf"
)

# 2.2 Sample IPv4 Response (SOFTWARE "test vector", 192.0.2.1:32853).
RFC5769_RESPONSE_V4 = bytes.fromhex(
    "0101003c"
    "2112a442"
    "b7e7a701bc34d686fa87dfae"
    "8022000b"
    "7465737420766563746f7220"
    "00200008"
    "0001a147e112a643"
    "00080014"
    "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004"
    "c07d4c96"
)

# 2.3 Sample IPv6 Response ([2001:db8:1234:5678:11:2233:4455:6677]:32853).
RFC5769_RESPONSE_V6 = bytes.fromhex(
    "01010048"
    "2112a442"
    "b7e7a701bc34d686fa87dfae"
    "8022000b"
    "7465737420766563746f7220"
    "00200014"
    "0002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014"
    "a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004"
    "c8fb0b4c"
)

# 2.4 Sample Request with Long-Term Authentication (no FINGERPRINT).
RFC5769_LONG_TERM = bytes.fromhex(
    "00010060"
    "2112a442"
    "78ad3433c6ad72c029da412e"
    "00060012"
    "e3839ee38388e383aae38383e382afe382b90000"
    "0015001c"
    "662f2f3439396b39353464364f4c33346f4c39465354767936347341"
    "0014000b"
    "6578616d706c652e6f726700"
    "00080014"
    "f67024656dd64a3e02b8e0712e85c9a28ca89666"
)


def test_rfc5769_request() -> None:
    message = stun.parse_message(RFC5769_REQUEST)
    assert message.method == Method.BINDING
    assert message.msg_class is StunClass.REQUEST
    assert message.transaction_id == TXID
    assert message.software == "STUN test client"
    assert message.priority == 0x6E0001FF
    assert message.ice_controlled == 0x932FF9B151263B36
    assert message.ice_controlling is None
    assert message.username == "evtj:h6vY"
    assert message.fingerprint == 0xE57A3BCF
    assert message.check_integrity(PASSWORD)
    assert not message.check_integrity(PASSWORD + b"x")
    assert [t for t, _ in message.attributes] == [
        Attr.SOFTWARE,
        Attr.PRIORITY,
        Attr.ICE_CONTROLLED,
        Attr.USERNAME,
        Attr.MESSAGE_INTEGRITY,
        Attr.FINGERPRINT,
    ]


def test_rfc5769_ipv4_response() -> None:
    message = stun.parse_message(RFC5769_RESPONSE_V4)
    assert message.msg_class is StunClass.SUCCESS
    assert message.software == "test vector"
    assert message.xor_mapped_address == ("192.0.2.1", 32853)
    assert message.check_integrity(PASSWORD)


def test_rfc5769_ipv6_response() -> None:
    message = stun.parse_message(RFC5769_RESPONSE_V6)
    assert message.xor_mapped_address == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert message.check_integrity(PASSWORD)


def test_rfc5769_long_term_request() -> None:
    message = stun.parse_message(RFC5769_LONG_TERM)
    assert message.transaction_id == bytes.fromhex("78ad3433c6ad72c029da412e")
    assert message.username == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert message.nonce == "f//499k954d6OL34oL9FSTvy64sA"
    assert message.realm == "example.org"
    assert message.fingerprint is None
    # The password "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep is "TheMatrIX".
    key = stun.long_term_key(message.username, message.realm, "TheMatrIX")
    assert message.check_integrity(key)
    assert not message.check_integrity(stun.long_term_key(message.username, "x", "TheMatrIX"))


def test_rfc5769_vectors_reencode_byte_exact() -> None:
    """Our encoder reproduces the vectors (given their space padding): HMAC and CRC exact."""
    request = StunMessage(
        Method.BINDING,
        StunClass.REQUEST,
        TXID,
        [
            (Attr.SOFTWARE, b"STUN test client"),
            (Attr.PRIORITY, struct.pack("!I", 0x6E0001FF)),
            (Attr.ICE_CONTROLLED, bytes.fromhex("932ff9b151263b36")),
            (Attr.USERNAME, b"evtj:h6vY"),
        ],
    )
    encoded = request.encode(integrity_key=PASSWORD, fingerprint=True, _test_padding=b" ")
    assert encoded == RFC5769_REQUEST
    for vector, host in (
        (RFC5769_RESPONSE_V4, "192.0.2.1"),
        (RFC5769_RESPONSE_V6, "2001:db8:1234:5678:11:2233:4455:6677"),
    ):
        response = StunMessage(Method.BINDING, StunClass.SUCCESS, TXID)
        response.add(Attr.SOFTWARE, b"test vector")
        response.add(Attr.XOR_MAPPED_ADDRESS, stun.encode_xor_address(host, 32853, TXID))
        out = response.encode(integrity_key=PASSWORD, fingerprint=True, _test_padding=b" ")
        assert out == vector
        # A parsed message re-encodes to itself (its MI/FP entries are recomputed, not copied).
        assert (
            stun.parse_message(vector).encode(
                integrity_key=PASSWORD, fingerprint=True, _test_padding=b" "
            )
            == vector
        )


def test_zero_padding_by_default() -> None:
    message = StunMessage(Method.BINDING, StunClass.REQUEST, TXID, [(Attr.USERNAME, b"abcde")])
    data = message.encode()
    assert data[20:32] == bytes.fromhex("00060005") + b"abcde\x00\x00\x00"


# --------------------------------------------------------------------------- fast path / errors


@pytest.mark.parametrize(
    "host",
    ["192.0.2.1", "2001:db8::1", "::ffff:10.1.2.3", "fe80::1%eth0"],
)
def test_binding_success_fast_path_matches_generic_encoder(host: str) -> None:
    data = stun.encode_binding_success(TXID, host, 5000, PASSWORD)
    generic = StunMessage(Method.BINDING, StunClass.SUCCESS, TXID)
    generic.add(Attr.XOR_MAPPED_ADDRESS, stun.encode_xor_address(host, 5000, TXID))
    assert data == generic.encode(integrity_key=PASSWORD, fingerprint=True)
    parsed = stun.parse_message(data)
    expected_host = {"::ffff:10.1.2.3": "10.1.2.3", "fe80::1%eth0": "fe80::1"}.get(host, host)
    assert parsed.xor_mapped_address == (expected_host, 5000)
    assert parsed.check_integrity(PASSWORD)
    assert parsed.msg_class is StunClass.SUCCESS and parsed.transaction_id == TXID


def test_error_response_and_unknown_attributes() -> None:
    request = stun.parse_message(RFC5769_REQUEST)
    data = stun.encode_error_response(
        request, 420, integrity_key=PASSWORD, unknown=[0x0003, 0x7777]
    )
    parsed = stun.parse_message(data)
    assert parsed.msg_class is StunClass.ERROR
    assert parsed.transaction_id == TXID
    assert parsed.error_code == (420, "Unknown Attribute")
    assert parsed.unknown_attributes == [0x0003, 0x7777]
    assert parsed.check_integrity(PASSWORD)
    unauth = stun.parse_message(stun.encode_error_response(request, 401))
    assert unauth.error_code == (401, "Unauthorized")
    assert unauth.message_integrity is None
    assert not unauth.check_integrity(PASSWORD)
    assert stun.parse_message(stun.encode_error_response(request, 487)).error_code == (
        487,
        "Role Conflict",
    )


def test_message_type_bits() -> None:
    cases = {
        (Method.BINDING, StunClass.REQUEST): 0x0001,
        (Method.BINDING, StunClass.INDICATION): 0x0011,
        (Method.BINDING, StunClass.SUCCESS): 0x0101,
        (Method.BINDING, StunClass.ERROR): 0x0111,
        (0x003, StunClass.REQUEST): 0x0003,  # TURN Allocate
        (0xFFF, StunClass.ERROR): 0x3FFF,
    }
    for (method, klass), wire in cases.items():
        data = StunMessage(method, klass, TXID).encode()
        assert struct.unpack("!H", data[:2])[0] == wire
        parsed = stun.parse_message(data)
        assert (parsed.method, parsed.msg_class) == (method, klass)


def _with_length(body: bytes) -> bytes:
    return struct.pack("!HHI", 0x0001, len(body), stun.MAGIC_COOKIE) + TXID + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "STUN message shorter than the 20-byte header"),
        (RFC5769_REQUEST[:19], "STUN message shorter than the 20-byte header"),
        (b"\x80" + RFC5769_REQUEST[1:], "not STUN: the two top bits of the message type are set"),
        (
            RFC5769_REQUEST[:4] + b"\x21\x12\xa4\x43" + RFC5769_REQUEST[8:],
            "not STUN: wrong magic cookie",
        ),
        (RFC5769_REQUEST[:-4], "STUN length 88 does not match the 104-byte datagram"),
        (
            b"\x00\x01\x00\x02" + RFC5769_REQUEST[4:20] + b"\x00\x00",
            "STUN length 2 is not a multiple of 4",
        ),
        (_with_length(b"\x00\x06\x00\x10abcd"), "attribute 0x0006 overruns the message"),
        (_with_length(b"\x80\x28\x00\x08" + bytes(8)), "FINGERPRINT must be 4 bytes"),
        (_with_length(b"\x00\x08\x00\x04" + bytes(4)), "MESSAGE-INTEGRITY must be 20 bytes"),
        (
            _with_length(b"\x00\x1c\x00\x08" + bytes(8)),
            "MESSAGE-INTEGRITY-SHA256 must be 16-32 bytes in steps of 4",
        ),
    ],
)
def test_malformed_messages(data: bytes, message: str) -> None:
    with pytest.raises(stun.StunError) as excinfo:
        stun.parse_message(data)
    assert str(excinfo.value) == message


def test_fingerprint_mismatch_and_trailing_attribute() -> None:
    tampered = bytearray(RFC5769_REQUEST)
    tampered[-1] ^= 1
    with pytest.raises(stun.StunFingerprintError, match="STUN FINGERPRINT mismatch"):
        stun.parse_message(bytes(tampered))
    # Any attribute after FINGERPRINT is refused.
    data = StunMessage(Method.BINDING, StunClass.REQUEST, TXID).encode(fingerprint=True)
    extended = bytearray(data + b"\x80\x22\x00\x00")
    struct.pack_into("!H", extended, 2, len(extended) - 20)
    # Fix the CRC for the new length so only the ordering is wrong.
    crc = zlib.crc32(bytes(extended[:20])) ^ stun.FINGERPRINT_XOR
    struct.pack_into("!I", extended, 24, crc)
    with pytest.raises(stun.StunError, match="attribute after FINGERPRINT"):
        stun.parse_message(bytes(extended))


def test_tampered_body_fails_integrity() -> None:
    message = StunMessage(Method.BINDING, StunClass.REQUEST, TXID, [(Attr.USERNAME, b"a:b")])
    data = bytearray(message.encode(integrity_key=PASSWORD))
    assert stun.parse_message(bytes(data)).check_integrity(PASSWORD)
    data[24] ^= 0x20  # 'a' -> 'A' inside USERNAME
    assert not stun.parse_message(bytes(data)).check_integrity(PASSWORD)


def test_attributes_after_integrity_are_ignored() -> None:
    """RFC 8489 14.5: the HMAC uses a length ending at MESSAGE-INTEGRITY; later ones are ignored."""
    base = StunMessage(Method.BINDING, StunClass.REQUEST, TXID, [(Attr.USERNAME, b"u:v")])
    signed = bytearray(base.encode(integrity_key=PASSWORD))
    signed += struct.pack("!HH", Attr.SOFTWARE, 4) + b"evil"
    signed += struct.pack("!HH", Attr.PRIORITY, 4) + b"\x00\x00\x00\x01"
    struct.pack_into("!H", signed, 2, len(signed) - 20)
    parsed = stun.parse_message(bytes(signed))
    assert parsed.check_integrity(PASSWORD)
    assert parsed.software is None and parsed.priority is None
    assert [t for t, _ in parsed.attributes] == [Attr.USERNAME, Attr.MESSAGE_INTEGRITY]


def test_duplicate_attribute_first_wins_and_unknown_required() -> None:
    message = StunMessage(
        Method.BINDING,
        StunClass.REQUEST,
        TXID,
        [
            (Attr.USERNAME, b"first"),
            (Attr.USERNAME, b"second"),
            (0x0003, b"\0\0\0\0"),
            (0xC058, b"x"),
        ],
    )
    parsed = stun.parse_message(message.encode())
    assert parsed.username == "first"
    assert len(parsed.attributes) == 4
    assert parsed.unknown_comprehension_required() == [0x0003]
    assert 0xC058 in parsed and parsed.get(0xC058) == b"x"


def test_typed_accessors_reject_bad_values() -> None:
    bad = StunMessage(
        Method.BINDING,
        StunClass.REQUEST,
        TXID,
        [
            (Attr.PRIORITY, b"\x00\x01"),
            (Attr.ICE_CONTROLLING, b"\x00" * 4),
            (Attr.USERNAME, b"\xff\xfe"),
            (Attr.XOR_MAPPED_ADDRESS, b"\x00\x03\x00\x00\x00\x00\x00\x00"),
            (Attr.ERROR_CODE, b"\x00\x00\x09\x00"),
            (Attr.USE_CANDIDATE, b"\x01"),
            (Attr.UNKNOWN_ATTRIBUTES, b"\x00"),
        ],
    )
    parsed = stun.parse_message(bad.encode())
    expectations = {
        "priority": "attribute 0x0024 has length 2, expected 4",
        "ice_controlling": "attribute 0x802a has length 4, expected 8",
        "username": "attribute 0x0006 is not valid UTF-8",
        "xor_mapped_address": "unknown address family 0x03",
        "error_code": "ERROR-CODE class 1 / number 0 out of range",
        "use_candidate": "attribute 0x0025 has length 1, expected 0",
        "unknown_attributes": "UNKNOWN-ATTRIBUTES length is odd",
    }
    for name, text in expectations.items():
        with pytest.raises(stun.StunError) as excinfo:
            getattr(parsed, name)
        assert str(excinfo.value) == text, name


def test_mapped_address_and_goog_network_info() -> None:
    message = StunMessage(Method.BINDING, StunClass.SUCCESS, TXID)
    message.add(Attr.MAPPED_ADDRESS, stun.encode_address("203.0.113.7", 3478))
    message.add(Attr.GOOG_NETWORK_INFO, b"\x00\x01\x03\xe7")
    parsed = stun.parse_message(message.encode(fingerprint=True))
    assert parsed.mapped_address == ("203.0.113.7", 3478)
    assert parsed.goog_network_info == b"\x00\x01\x03\xe7"
    assert parsed.xor_mapped_address is None


def test_is_stun() -> None:
    assert stun.is_stun(RFC5769_REQUEST)
    assert stun.is_stun(memoryview(RFC5769_RESPONSE_V4))
    assert not stun.is_stun(b"\x80" + RFC5769_REQUEST[1:])
    assert not stun.is_stun(RFC5769_REQUEST[:19])
    assert not stun.is_stun(b"\x16\xfe\xfd" + bytes(30))  # DTLS


def test_constructor_validation() -> None:
    with pytest.raises(stun.StunError, match="transaction id must be 12 bytes"):
        StunMessage(Method.BINDING, StunClass.REQUEST, b"short")
    with pytest.raises(stun.StunError, match="port out of range: 70000"):
        stun.encode_xor_address("1.2.3.4", 70000, TXID)
    with pytest.raises(stun.StunError, match="not an IP address: 'example.com'"):
        stun.encode_address("example.com", 1)


# ---------------------------------------------------------------------------------- hypothesis

ACCESSORS = (
    "username",
    "software",
    "realm",
    "nonce",
    "priority",
    "use_candidate",
    "ice_controlled",
    "ice_controlling",
    "mapped_address",
    "xor_mapped_address",
    "error_code",
    "unknown_attributes",
    "message_integrity",
    "message_integrity_sha256",
    "fingerprint",
    "goog_network_info",
)


def _exercise(data: bytes) -> None:
    try:
        message = stun.parse_message(data)
    except ValueError:
        return
    for name in ACCESSORS:
        try:
            getattr(message, name)
        except ValueError:
            pass
    message.check_integrity(PASSWORD)
    message.unknown_comprehension_required()
    repr(message)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_only_raise_value_error(data: bytes) -> None:
    _exercise(data)


_ATTR_TYPES = st.sampled_from([int(a) for a in Attr] + [0x0003, 0x7FFF, 0x8000, 0xFFFF])


@st.composite
def _plausible_messages(draw: st.DrawFn) -> bytes:
    """A valid header followed by random (often malformed) attribute TLVs."""
    body = b""
    for _ in range(draw(st.integers(0, 6))):
        value = draw(st.binary(max_size=40))
        declared = draw(st.one_of(st.just(len(value)), st.integers(0, 64)))
        pad = b"\0" * (-len(value) % 4)
        body += struct.pack("!HH", draw(_ATTR_TYPES), declared) + value + pad
    msg_type = draw(st.sampled_from([0x0001, 0x0011, 0x0101, 0x0111, 0x0003]))
    return struct.pack("!HHI", msg_type, len(body), stun.MAGIC_COOKIE) + TXID + body


@settings(max_examples=400, deadline=None)
@given(_plausible_messages())
def test_structured_garbage_only_raises_value_error(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=200, deadline=None)
@given(
    method=st.integers(0, 0xFFF),
    klass=st.sampled_from(list(StunClass)),
    attributes=st.lists(
        st.tuples(
            st.integers(0, 0xFFFF).filter(
                lambda t: (
                    t
                    not in (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT)
                )
            ),
            st.binary(max_size=50),
        ),
        max_size=8,
    ),
    integrity=st.booleans(),
    fingerprint=st.booleans(),
)
def test_encode_parse_round_trip(
    method: int,
    klass: StunClass,
    attributes: list[tuple[int, bytes]],
    integrity: bool,
    fingerprint: bool,
) -> None:
    message = StunMessage(method, klass, TXID, attributes)
    data = message.encode(integrity_key=PASSWORD if integrity else None, fingerprint=fingerprint)
    parsed = stun.parse_message(data)
    assert (parsed.method, parsed.msg_class, parsed.transaction_id) == (method, klass, TXID)
    computed = [a for a in parsed.attributes if a[0] in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)]
    assert [a for a in parsed.attributes if a not in computed] == attributes
    assert parsed.check_integrity(PASSWORD) is integrity
    assert (parsed.fingerprint is not None) is fingerprint
