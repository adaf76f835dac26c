"""RTP header parsing (RFC 3550 section 5.1; header extensions RFC 8285):
``switchboard._native.core.parse_rtp`` against a pure-Python reference.

``parse_rtp`` is the diagnostic hook over the same C view (``rtp_parse``)
the router parses every packet with, so these tests pin the hot path's
idea of where the payload starts and ends. The reference parser below is
written from the RFCs, independently of the Cython code; hypothesis
compares the two on generated valid packets, on mutations of them and on
arbitrary bytes: the outcomes (a dict, or ValueError with its message)
must be identical.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard._native.core import parse_rtp

MALFORMED = "malformed RTP header"
OVERRUN = "RTP header extension element overruns its block"


# --------------------------------------------------------------------------
# reference parser


def ref_extensions(profile: int, block: bytes) -> dict[int, bytes]:
    """RFC 8285 4.2 (one-byte, 0xBEDE) and 4.3 (two-byte, 0x100 + appbits).
    Zero bytes between elements are padding; ID 15 in the one-byte form ends
    the parse; other profiles are opaque (no elements)."""
    out: dict[int, bytes] = {}
    i = 0
    if profile == 0xBEDE:
        while i < len(block):
            if block[i] == 0:
                i += 1
                continue
            ext_id, length = block[i] >> 4, (block[i] & 0x0F) + 1
            if ext_id == 15:
                break
            if i + 1 + length > len(block):
                raise ValueError(OVERRUN)
            out[ext_id] = block[i + 1 : i + 1 + length]
            i += 1 + length
    elif profile >> 4 == 0x100:
        while i < len(block):
            if block[i] == 0:
                i += 1
                continue
            if i + 2 > len(block) or i + 2 + block[i + 1] > len(block):
                raise ValueError(OVERRUN)
            out[block[i]] = block[i + 2 : i + 2 + block[i + 1]]
            i += 2 + block[i + 1]
    return out


def ref_parse_rtp(data: bytes) -> dict[str, Any]:
    n = len(data)
    if n < 12 or data[0] >> 6 != 2:
        raise ValueError(MALFORMED)
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if off > n:
        raise ValueError(MALFORMED)
    csrcs = list(struct.unpack_from(f"!{cc}I", data, 12))
    profile = 0
    block = b""
    if b0 & 0x10:
        if off + 4 > n:
            raise ValueError(MALFORMED)
        profile, words = struct.unpack_from("!HH", data, off)
        off += 4
        if off + 4 * words > n:
            raise ValueError(MALFORMED)
        block = data[off : off + 4 * words]
        off += 4 * words
    pad = 0
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or off + pad > n:
            raise ValueError(MALFORMED)
    return {
        "marker": bool(b1 & 0x80),
        "payload_type": b1 & 0x7F,
        "sequence_number": seq,
        "timestamp": ts,
        "ssrc": ssrc,
        "csrc": csrcs,
        "extension_profile": profile,
        "extensions": ref_extensions(profile, block),
        "payload": data[off : n - pad],
        "padding": pad,
    }


def outcome(parse: Any, data: bytes) -> tuple[str, Any]:
    try:
        return ("ok", parse(data))
    except ValueError as exc:
        return ("ValueError", str(exc))


# --------------------------------------------------------------------------
# generated packets


@st.composite
def extension_blocks(draw: st.DrawFn) -> tuple[int, bytes, dict[int, bytes]]:
    """(profile, block words, expected elements)."""
    kind = draw(st.sampled_from(["one", "two", "other", "empty"]))
    body = b""
    expected: dict[int, bytes] = {}
    if kind == "empty":
        return 0xBEDE, b"", {}
    if kind == "other":
        profile = draw(st.integers(0, 0xFFFF).filter(lambda p: p != 0xBEDE and p >> 4 != 0x100))
        return profile, draw(st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))), {}
    one = kind == "one"
    ids = st.integers(1, 14) if one else st.integers(1, 255)
    elements = draw(
        st.lists(
            st.tuples(ids, st.binary(min_size=1 if one else 0, max_size=16 if one else 40)),
            unique_by=lambda e: e[0],
            max_size=6,
        )
    )
    for ext_id, data in elements:
        body += bytes(draw(st.integers(0, 3)))  # padding between elements
        body += bytes([(ext_id << 4) | (len(data) - 1)] if one else [ext_id, len(data)]) + data
        expected[ext_id] = data
    if one and draw(st.booleans()):
        # ID 15: everything after it is ignored, whatever it looks like
        body += bytes([0xF0 | draw(st.integers(0, 15))]) + draw(st.binary(max_size=20))
    body += bytes(-len(body) % 4)
    profile = 0xBEDE if one else 0x1000 | draw(st.integers(0, 15))
    return profile, body, expected


@st.composite
def rtp_packets(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    marker = draw(st.booleans())
    pt = draw(st.integers(0, 127))
    seq = draw(st.integers(0, 0xFFFF))
    ts = draw(st.integers(0, 0xFFFFFFFF))
    ssrc = draw(st.integers(0, 0xFFFFFFFF))
    csrcs = draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))
    ext = draw(st.none() | extension_blocks())
    payload = draw(st.binary(max_size=64))
    padding = draw(st.integers(0, 255) | st.just(0))
    b0 = 0x80 | len(csrcs) | (0x10 if ext else 0) | (0x20 if padding else 0)
    data = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    data += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext:
        data += struct.pack("!HH", ext[0], len(ext[1]) // 4) + ext[1]
    data += payload
    if padding:
        data += draw(st.binary(min_size=padding - 1, max_size=padding - 1)) + bytes([padding])
    expected = {
        "marker": marker,
        "payload_type": pt,
        "sequence_number": seq,
        "timestamp": ts,
        "ssrc": ssrc,
        "csrc": csrcs,
        "extension_profile": ext[0] if ext else 0,
        "extensions": ext[2] if ext else {},
        "payload": payload,
        "padding": padding,
    }
    return data, expected


@settings(max_examples=400, deadline=None)
@given(rtp_packets())
def test_round_trip_build_parse(packet: tuple[bytes, dict[str, Any]]) -> None:
    data, expected = packet
    assert parse_rtp(data) == expected
    assert ref_parse_rtp(data) == expected
    assert parse_rtp(bytearray(data)) == expected
    assert parse_rtp(memoryview(b"xx" + data)[2:]) == expected


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(rtp_packets())[0])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "truncate", "extend", "flags"]))
        if op == "set" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "extend":
            data += draw(st.binary(max_size=8))
        elif op == "flags" and data:
            data[0] ^= draw(st.sampled_from([0x10, 0x20, 0x0F, 0x01, 0x40, 0x80]))
    return bytes(data)


@settings(max_examples=600, deadline=None)
@given(mutated_packets() | st.binary(max_size=120))
def test_native_agrees_with_reference_on_any_bytes(data: bytes) -> None:
    """Oracle: on near-valid and arbitrary input both parsers produce the
    same dict or the same ValueError; nothing else is ever raised."""
    native = outcome(parse_rtp, data)
    assert native == outcome(ref_parse_rtp, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_give_a_dict_or_value_error(data: bytes) -> None:
    try:
        result = parse_rtp(data)
    except ValueError:
        return
    assert isinstance(result, dict)
    # what it returns stays inside the buffer
    assert len(result["payload"]) + result["padding"] <= len(data) - 12


# --------------------------------------------------------------------------
# edge cases, by hand


HDR = struct.pack("!BBHII", 0x80, 96, 1, 2, 3)


def with_b0(b0: int, rest: bytes = b"") -> bytes:
    return bytes([b0]) + HDR[1:] + rest


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(HDR[:11], id="11 bytes"),
        pytest.param(b"\x40" + HDR[1:], id="version 1"),
        pytest.param(b"\xc0" + HDR[1:], id="version 3"),
        pytest.param(with_b0(0x8F, bytes(56)), id="CC=15 overruns by 4"),
        pytest.param(with_b0(0x81), id="CC=1, no CSRC"),
        pytest.param(with_b0(0x90, b"\xbe\xde"), id="extension header cut"),
        pytest.param(
            with_b0(0x90, b"\xbe\xde\x00\x02" + bytes(7)), id="extension length overruns by 1"
        ),
        pytest.param(with_b0(0x90, b"\xbe\xde\xff\xff" + bytes(100)), id="extension length 65535"),
        pytest.param(with_b0(0xA0, b"abc\x00"), id="padding count 0"),
        pytest.param(with_b0(0xA0, b"abc\x05"), id="padding larger than payload"),
        pytest.param(with_b0(0xA0), id="padding bit, no payload: count is the SSRC's last byte"),
        pytest.param(
            with_b0(0xB0, b"\xbe\xde\x00\x01\x10\xaa\x00\x00" + b"\x06"),
            id="padding eats extension",
        ),
    ],
)
def test_malformed_headers(data: bytes) -> None:
    with pytest.raises(ValueError, match=f"^{MALFORMED}$"):
        parse_rtp(data)
    with pytest.raises(ValueError, match=f"^{MALFORMED}$"):
        ref_parse_rtp(data)


def test_header_ends_exactly_at_the_buffer() -> None:
    data = with_b0(0x8F, b"".join(struct.pack("!I", c) for c in range(15)))
    assert parse_rtp(data)["csrc"] == list(range(15))
    assert parse_rtp(data)["payload"] == b""
    assert parse_rtp(with_b0(0x90, b"\xbe\xde\x00\x00"))["extensions"] == {}


def test_padding_covering_the_whole_payload() -> None:
    r = parse_rtp(with_b0(0xA0, b"\x00\x00\x03"))
    assert r["payload"] == b"" and r["padding"] == 3
    # the SSRC's last byte (3) is the padding count when nothing follows the
    # header: 3 bytes of padding would reach back into the header
    assert outcome(parse_rtp, with_b0(0xA0)) == ("ValueError", MALFORMED)


def test_one_byte_elements_with_padding_between_and_after() -> None:
    block = b"\x00\x10\xaa\x00\x00\x21\xbb\xcc\x00\x00\x00\x00"
    r = parse_rtp(with_b0(0x90, b"\xbe\xde\x00\x03" + block + b"PAYLOAD"))
    assert r["extensions"] == {1: b"\xaa", 2: b"\xbb\xcc"}
    assert r["payload"] == b"PAYLOAD"


def test_id_15_stops_parsing_even_before_garbage() -> None:
    # after ID 15 comes an element whose length would overrun: never read
    block = b"\x10\xaa\xf3\x4f\x00\x00\x00\x00"
    r = parse_rtp(with_b0(0x90, b"\xbe\xde\x00\x02" + block))
    assert r["extensions"] == {1: b"\xaa"}


def test_one_byte_element_overrunning_its_block() -> None:
    data = with_b0(
        0x90, b"\xbe\xde\x00\x01\x10\xaa\x23\xbb" + b"after"
    )  # id 2 wants 3 bytes, 1 left
    with pytest.raises(ValueError, match=f"^{OVERRUN}$"):
        parse_rtp(data)
    assert outcome(ref_parse_rtp, data) == ("ValueError", OVERRUN)


def test_two_byte_elements_zero_length_and_appbits() -> None:
    block = b"\x05\x00\x00\xff\x02\xaa\xbb\x00"
    r = parse_rtp(with_b0(0x90, b"\x10\x07\x00\x02" + block))
    assert r["extension_profile"] == 0x1007
    assert r["extensions"] == {5: b"", 255: b"\xaa\xbb"}


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b"\x00\x00\x00\x07", id="id without its length byte"),
        pytest.param(b"\x07\x03\xaa\xbb", id="data overruns"),
    ],
)
def test_two_byte_element_overrunning_its_block(block: bytes) -> None:
    with pytest.raises(ValueError, match=f"^{OVERRUN}$"):
        parse_rtp(with_b0(0x90, b"\x10\x00\x00\x01" + block + b"tail"))


def test_unknown_extension_profile_is_skipped_whole() -> None:
    r = parse_rtp(with_b0(0x90, b"\xab\xcd\x00\x01\xff\xff\xff\xff" + b"pl"))
    assert r["extension_profile"] == 0xABCD
    assert r["extensions"] == {} and r["payload"] == b"pl"


def test_fields_at_their_limits() -> None:
    data = struct.pack("!BBHII", 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + b"x"
    assert parse_rtp(data) == {
        "marker": True,
        "payload_type": 127,
        "sequence_number": 65535,
        "timestamp": 0xFFFFFFFF,
        "ssrc": 0xFFFFFFFF,
        "csrc": [],
        "extension_profile": 0,
        "extensions": {},
        "payload": b"x",
        "padding": 0,
    }
