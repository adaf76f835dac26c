"""RTCP compound parsing: ``switchboard._native.core.parse_rtcp`` (the
diagnostic hook over the router's C walker ``rtcp_next``) against packets
built here from the RFCs.

RFC 3550 section 6 (SR, RR, SDES, BYE, APP; compound packets), RFC 4585
6.2.1 (generic NACK) and 6.3.1 (PLI), RFC 5104 4.3.1 (FIR),
draft-alvestrand-rmcat-remb-03 (REMB) and
draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1
(transport-cc feedback).

Every builder returns the wire bytes and the dict ``parse_rtcp`` must give
back, computed from the builder's own inputs (never from the parser), so a
round trip checks both the wire layout and the field semantics (signed
cumulative loss, NACK bitmask expansion, REMB mantissa/exponent, transport-cc
chunk kinds and delta sizes).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard._native.core import parse_rtcp

Item = tuple[bytes, dict[str, Any]]

SR, RR, SDES, BYE, APP, RTPFB, PSFB = 200, 201, 202, 203, 204, 205, 206


def packet(count: int, pt: int, body: bytes, padding: int = 0) -> bytes:
    """One RTCP packet: V=2, P, count/FMT, PT, length in 32-bit words minus one."""
    assert len(body) % 4 == 0 and 0 <= count <= 31
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    return (
        struct.pack(
            "!BBH", 0x80 | (0x20 if padding else 0) | count, pt, (len(body) + len(pad)) // 4
        )
        + body
        + pad
    )


def pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


u32 = st.integers(0, 0xFFFFFFFF)


# --------------------------------------------------------------------------
# builders (each: wire bytes, expected parse)


def report_block(
    ssrc: int, fraction: int, cum: int, high: int, jitter: int, lsr: int, dlsr: int
) -> Item:
    wire = struct.pack("!IB", ssrc, fraction) + (cum & 0xFFFFFF).to_bytes(3, "big")
    wire += struct.pack("!IIII", high, jitter, lsr, dlsr)
    return wire, {
        "ssrc": ssrc,
        "fraction_lost": fraction,
        "cumulative_lost": cum,
        "highest_seq": high,
        "jitter": jitter,
        "lsr": lsr,
        "dlsr": dlsr,
    }


def build_sr(
    ssrc: int,
    ntp: int,
    rtp_ts: int,
    packets: int,
    octets: int,
    reports: list[Item],
    extension: bytes = b"",
) -> Item:
    body = (
        struct.pack("!IQIII", ssrc, ntp, rtp_ts, packets, octets)
        + b"".join(r[0] for r in reports)
        + extension
    )
    return packet(len(reports), SR, body), {
        "type": "sr",
        "ssrc": ssrc,
        "ntp": ntp,
        "rtp_timestamp": rtp_ts,
        "packets": packets,
        "octets": octets,
        "reports": [r[1] for r in reports],
    }


def build_rr(ssrc: int, reports: list[Item], extension: bytes = b"") -> Item:
    body = struct.pack("!I", ssrc) + b"".join(r[0] for r in reports) + extension
    return packet(len(reports), RR, body), {
        "type": "rr",
        "ssrc": ssrc,
        "reports": [r[1] for r in reports],
    }


def build_sdes(chunks: list[tuple[int, list[tuple[int, bytes]]]]) -> Item:
    body = b""
    for ssrc, items in chunks:
        chunk = struct.pack("!I", ssrc) + b"".join(bytes([t, len(v)]) + v for t, v in items)
        body += pad4(chunk + b"\x00")  # a null item ends the list, then pad to 32 bits
    return packet(len(chunks), SDES, body), {
        "type": "sdes",
        "chunks": [{"ssrc": s, "items": list(items)} for s, items in chunks],
    }


def build_bye(ssrcs: list[int], reason: bytes | None = None) -> Item:
    body = b"".join(struct.pack("!I", s) for s in ssrcs)
    expected: dict[str, Any] = {"type": "bye", "ssrcs": ssrcs}
    if reason is not None:
        body += pad4(bytes([len(reason)]) + reason)
        expected["reason"] = reason
    return packet(len(ssrcs), BYE, body), expected


def build_app(subtype: int, ssrc: int, name: bytes, data: bytes) -> Item:
    return packet(subtype, APP, struct.pack("!I", ssrc) + name + data), {
        "type": "app",
        "subtype": subtype,
        "ssrc": ssrc,
        "name": name,
        "data": data,
    }


def build_nack(sender: int, media: int, fcis: list[tuple[int, int]]) -> Item:
    body = struct.pack("!II", sender, media) + b"".join(
        struct.pack("!HH", pid, blp) for pid, blp in fcis
    )
    lost = []
    for pid, blp in fcis:
        lost.append(pid)
        lost += [(pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1]
    return packet(1, RTPFB, body), {
        "type": "nack",
        "sender_ssrc": sender,
        "media_ssrc": media,
        "lost": lost,
    }


def build_pli(sender: int, media: int) -> Item:
    return packet(1, PSFB, struct.pack("!II", sender, media)), {
        "type": "pli",
        "sender_ssrc": sender,
        "media_ssrc": media,
    }


def build_fir(sender: int, entries: list[tuple[int, int]]) -> Item:
    body = struct.pack("!II", sender, 0) + b"".join(struct.pack("!IB3x", s, n) for s, n in entries)
    return packet(4, PSFB, body), {"type": "fir", "sender_ssrc": sender, "entries": entries}


def build_remb(sender: int, exponent: int, mantissa: int, ssrcs: list[int]) -> Item:
    assert exponent < 64 and mantissa < 1 << 18
    body = struct.pack("!II4sB", sender, 0, b"REMB", len(ssrcs))
    body += ((exponent << 18) | mantissa).to_bytes(3, "big") + b"".join(
        struct.pack("!I", s) for s in ssrcs
    )
    return packet(15, PSFB, body), {
        "type": "remb",
        "sender_ssrc": sender,
        "bitrate": mantissa * 2**exponent,
        "ssrcs": ssrcs,
    }


def build_feedback(pt: int, fmt: int, sender: int, media: int, fci: bytes) -> Item:
    return packet(fmt, pt, struct.pack("!II", sender, media) + fci), {
        "type": "feedback",
        "pt": pt,
        "fmt": fmt,
        "sender_ssrc": sender,
        "media_ssrc": media,
    }


# transport-cc packet status chunks: ("run", symbol, length), ("v1", [14 x 0/1]),
# ("v2", [7 x 0-3]); symbols: 0 not received, 1 small delta, 2 large delta
Chunk = tuple[str, Any, Any]


def chunk_symbols(chunk: Chunk) -> list[int]:
    kind, a, b = chunk
    return [a] * b if kind == "run" else list(a)


def encode_chunk(chunk: Chunk) -> bytes:
    kind, a, b = chunk
    if kind == "run":
        word = (a << 13) | b
    elif kind == "v1":
        word = 0x8000 | sum(bit << (13 - k) for k, bit in enumerate(a))
    else:
        word = 0xC000 | sum(sym << (12 - 2 * k) for k, sym in enumerate(a))
    return struct.pack("!H", word)


def build_twcc(
    sender: int,
    media: int,
    base_seq: int,
    ref_time: int,
    fb_count: int,
    chunks: list[Chunk],
    count: int,
    deltas: list[int],
) -> Item:
    statuses = [s for c in chunks for s in chunk_symbols(c)][:count]
    body = (
        struct.pack("!IIHH", sender, media, base_seq, count)
        + ref_time.to_bytes(3, "big")
        + bytes([fb_count])
    )
    body += b"".join(encode_chunk(c) for c in chunks)
    body += b"".join(
        struct.pack("!B", d) if s == 1 else struct.pack("!h", d)
        for s, d in zip([s for s in statuses if s in (1, 2)], deltas, strict=True)
    )
    return packet(15, RTPFB, pad4(body)), {
        "type": "twcc",
        "sender_ssrc": sender,
        "media_ssrc": media,
        "base_seq": base_seq,
        "status_count": count,
        "reference_time": ref_time,
        "fb_count": fb_count,
        "statuses": statuses,
        "deltas": deltas,
    }


def build_unknown(pt: int, count: int, body: bytes) -> Item:
    return packet(count, pt, body), {"type": "unknown", "pt": pt}


def compound(*items: Item) -> tuple[bytes, list[dict[str, Any]]]:
    return b"".join(i[0] for i in items), [i[1] for i in items]


# --------------------------------------------------------------------------
# hypothesis strategies


reports = st.builds(
    report_block,
    u32,
    st.integers(0, 255),
    st.integers(-(1 << 23), (1 << 23) - 1),
    u32,
    u32,
    u32,
    u32,
)
extensions = st.integers(0, 3).map(lambda n: bytes(range(4 * n)))
srs = st.builds(
    build_sr,
    u32,
    st.integers(0, (1 << 64) - 1),
    u32,
    u32,
    u32,
    st.lists(reports, max_size=4),
    extensions,
)
rrs = st.builds(build_rr, u32, st.lists(reports, max_size=4), extensions)
sdes_items = st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=40)), max_size=4)
sdeses = st.builds(build_sdes, st.lists(st.tuples(u32, sdes_items), max_size=4))
byes = st.builds(build_bye, st.lists(u32, max_size=6), st.none() | st.binary(max_size=60))
apps = st.builds(
    build_app,
    st.integers(0, 31),
    u32,
    st.binary(min_size=4, max_size=4),
    st.integers(0, 6).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)
nacks = st.builds(
    build_nack,
    u32,
    u32,
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=6),
)
plis = st.builds(build_pli, u32, u32)
firs = st.builds(build_fir, u32, st.lists(st.tuples(u32, st.integers(0, 255)), max_size=5))
rembs = st.builds(
    build_remb, u32, st.integers(0, 63), st.integers(0, (1 << 18) - 1), st.lists(u32, max_size=5)
)
feedbacks = st.one_of(
    st.builds(
        build_feedback,
        st.just(RTPFB),
        st.sampled_from([0, 2, 3, 8, 14, 31]),
        u32,
        u32,
        st.just(b""),
    ),
    st.builds(
        build_feedback,
        st.just(PSFB),
        st.sampled_from([0, 2, 3, 5, 31]),
        u32,
        u32,
        st.just(b"\x00" * 8),
    ),
    # PSFB FMT 15 (application layer feedback) that is not REMB
    st.builds(
        build_feedback, st.just(PSFB), st.just(15), u32, u32, st.just(b"ABCD\x00\x00\x00\x00")
    ),
)
unknowns = st.builds(
    build_unknown,
    st.sampled_from([0, 72, 192, 195, 207, 208, 223, 255]),
    st.integers(0, 31),
    st.integers(0, 4).map(lambda n: bytes(4 * n)),
)

chunks_strategy = st.one_of(
    st.tuples(st.just("run"), st.integers(0, 3), st.integers(0, 300) | st.just(8191)),
    st.tuples(st.just("v1"), st.lists(st.integers(0, 1), min_size=14, max_size=14), st.none()),
    st.tuples(st.just("v2"), st.lists(st.integers(0, 3), min_size=7, max_size=7), st.none()),
)


@st.composite
def twccs(draw: st.DrawFn) -> Item:
    chunks = draw(st.lists(chunks_strategy, max_size=6))
    while chunks and not chunk_symbols(chunks[-1]):
        chunks.pop()  # the parser stops reading chunks once it has `count` symbols
    if chunks:
        total = sum(len(chunk_symbols(c)) for c in chunks)
        count = total - draw(st.integers(0, len(chunk_symbols(chunks[-1])) - 1))
    else:
        count = 0
    statuses = [s for c in chunks for s in chunk_symbols(c)][:count]
    deltas = [
        draw(st.integers(0, 255) if s == 1 else st.integers(-32768, 32767))
        for s in statuses
        if s in (1, 2)
    ]
    return build_twcc(
        draw(u32),
        draw(u32),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, (1 << 24) - 1)),
        draw(st.integers(0, 255)),
        chunks,
        count,
        deltas,
    )


any_item = st.one_of(
    srs, rrs, sdeses, byes, apps, nacks, plis, firs, rembs, feedbacks, unknowns, twccs()
)
compounds = st.lists(any_item, min_size=1, max_size=5).map(lambda items: compound(*items))


@settings(max_examples=500, deadline=None)
@given(compounds)
def test_compound_round_trip(c: tuple[bytes, list[dict[str, Any]]]) -> None:
    wire, expected = c
    assert parse_rtcp(wire) == expected
    assert parse_rtcp(bytearray(wire)) == expected


@settings(max_examples=150, deadline=None)
@given(compounds)
def test_truncation_at_every_offset(c: tuple[bytes, list[dict[str, Any]]]) -> None:
    """Cut at a packet boundary: the packets before it. Anywhere else: the
    walker finds a length that overruns the buffer, at the cut packet."""
    wire, expected = c
    boundaries = [0]
    for item in expected:
        boundaries.append(
            boundaries[-1] + 4 * (struct.unpack_from("!H", wire, boundaries[-1] + 2)[0] + 1)
        )
    assert boundaries[-1] == len(wire)
    with pytest.raises(ValueError, match="^empty RTCP packet$"):
        parse_rtcp(wire[:0])
    for cut in range(1, len(wire)):
        if cut in boundaries:
            assert parse_rtcp(wire[:cut]) == expected[: boundaries.index(cut)]
        else:
            start = max(b for b in boundaries if b < cut)
            with pytest.raises(ValueError, match=f"^malformed RTCP header at offset {start}$"):
                parse_rtcp(wire[:cut])


@st.composite
def mutated_compounds(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(compounds)[0])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "count", "length", "truncate", "extend"]))
        i = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "count" and data:
            data[i & ~3] = 0x80 | draw(st.integers(0, 31))  # a packet's count, if i hits a header
        elif op == "length" and len(data) >= 4:
            struct.pack_into(
                "!H",
                data,
                (i & ~3) + 2 if (i & ~3) + 4 <= len(data) else 2,
                draw(st.integers(0, 0xFFFF)),
            )
        elif op == "truncate":
            del data[i:]
        elif op == "extend":
            data += draw(st.binary(max_size=12))
    return bytes(data)


@settings(max_examples=500, deadline=None)
@given(
    mutated_compounds()
    | st.binary(max_size=200)
    | st.binary(max_size=100).map(lambda b: b"\x80" + b)
)
def test_any_bytes_give_a_list_or_value_error(data: bytes) -> None:
    try:
        items = parse_rtcp(data)
    except ValueError:
        return
    assert isinstance(items, list) and items
    assert all(isinstance(i, dict) and "type" in i for i in items)


# --------------------------------------------------------------------------
# by hand: field semantics and every error message


def test_sr_with_report_blocks_and_signed_loss() -> None:
    wire, expected = build_sr(
        0x11223344,
        0xDEADBEEF_01020304,
        90000,
        7,
        700,
        [
            report_block(1, 0, -1, 0x1FFFF, 12, 0x12345678, 65536),
            report_block(2, 255, (1 << 23) - 1, 0, 0, 0, 0),
            report_block(3, 1, -(1 << 23), 0, 0, 0, 0),
        ],
    )
    assert wire[0] & 0x1F == 3 and len(wire) == 28 + 3 * 24
    assert wire[28 + 5 : 28 + 8] == b"\xff\xff\xff"
    (item,) = parse_rtcp(wire)
    assert item == expected
    assert [r["cumulative_lost"] for r in item["reports"]] == [-1, (1 << 23) - 1, -(1 << 23)]


def test_sdes_multiple_chunks_and_items() -> None:
    wire, expected = build_sdes(
        [(1, [(1, b"cname@host"), (2, b"Alice"), (8, b"\x03pri")]), (2, []), (3, [(1, b"abc")])]
    )
    # chunk 1: 4 + 12 + 7 + 6 + 1 null = 30 -> 32; chunk 2: ssrc + null + 3 pad
    assert len(wire) == 4 + 32 + 8 + 12
    assert parse_rtcp(wire) == [expected]


def test_bye_with_and_without_reason() -> None:
    assert parse_rtcp(build_bye([1, 2], b"shutting down")[0]) == [
        {"type": "bye", "ssrcs": [1, 2], "reason": b"shutting down"}
    ]
    assert parse_rtcp(build_bye([7])[0]) == [{"type": "bye", "ssrcs": [7]}]
    assert parse_rtcp(build_bye([])[0]) == [{"type": "bye", "ssrcs": []}]


def test_nack_pid_and_blp_expansion() -> None:
    # RFC 4585 6.2.1: BLP bit i reports PID + i + 1
    wire, _ = build_nack(1, 2, [(1000, 0b101), (65535, 0x8001)])
    (item,) = parse_rtcp(wire)
    assert item["lost"] == [1000, 1001, 1003, 65535, 0, 15]


def test_pli_fir_remb() -> None:
    wire, exp = compound(
        build_pli(5, 6), build_fir(5, [(6, 1), (7, 255)]), build_remb(5, 3, 150000, [6, 7])
    )
    assert parse_rtcp(wire) == exp
    assert exp[2]["bitrate"] == 1_200_000
    # the largest REMB: 18-bit mantissa, exponent 63
    (remb,) = parse_rtcp(build_remb(1, 63, (1 << 18) - 1, [])[0])
    assert remb["bitrate"] == ((1 << 18) - 1) << 63


def test_twcc_run_length_and_vectors_small_and_large_deltas() -> None:
    chunks: list[Chunk] = [
        ("run", 1, 3),  # three received, small deltas
        ("v1", [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], None),
        ("v2", [2, 0, 1, 3, 2, 0, 0], None),  # 3 is reserved: no delta
        ("run", 0, 8191),  # a long run of losses
        ("run", 2, 2),
    ]
    statuses = [1, 1, 1, 1, 0, 1] + [0] * 10 + [1, 2, 0, 1, 3, 2, 0, 0] + [0] * 8191 + [2, 2]
    deltas = [0, 255, 4, 8, 250, 1, -32768, 9, 32767, -1, 100]
    wire, expected = build_twcc(0xAAAA, 0xBBBB, 65530, 0xFFFFFF, 9, chunks, len(statuses), deltas)
    assert expected["statuses"] == statuses
    (item,) = parse_rtcp(wire)
    assert item == expected


def test_twcc_count_ends_inside_a_chunk() -> None:
    wire, expected = build_twcc(1, 2, 0, 0, 0, [("run", 1, 100)], 2, [10, 20])
    assert parse_rtcp(wire) == [expected]
    assert parse_rtcp(wire)[0]["statuses"] == [1, 1]


def test_app_unknown_and_generic_feedback() -> None:
    wire, exp = compound(
        build_app(31, 9, b"TEST", b"\x01\x02\x03\x04"),
        build_unknown(207, 3, bytes(8)),
        build_feedback(RTPFB, 3, 1, 2, b""),
        build_feedback(PSFB, 15, 1, 2, b"NOPE"),
    )
    assert parse_rtcp(wire) == exp


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        pytest.param(
            packet(1, RTPFB, struct.pack("!IIHH", 1, 2, 100, 0), padding=4),
            {"type": "nack", "sender_ssrc": 1, "media_ssrc": 2, "lost": [100]},
            id="NACK",
        ),
        pytest.param(
            packet(1, BYE, struct.pack("!I", 5), padding=4), {"type": "bye", "ssrcs": [5]}, id="BYE"
        ),
        pytest.param(
            packet(0, APP, struct.pack("!I4s", 5, b"NAME"), padding=8),
            {"type": "app", "subtype": 0, "ssrc": 5, "name": b"NAME", "data": b""},
            id="APP",
        ),
        pytest.param(
            packet(4, PSFB, struct.pack("!IIIB3x", 1, 0, 6, 1), padding=8),
            {"type": "fir", "sender_ssrc": 1, "entries": [(6, 1)]},
            id="FIR",
        ),
    ],
)
def test_rtcp_padding_octets_are_not_control_information(
    wire: bytes, expected: dict[str, Any]
) -> None:
    """RFC 3550 6.4.1: with P set, the last octet counts padding octets that
    the length includes but that are not part of the packet's content. A
    NACK padded by 4 octets (00 00 00 04) must not grow a bogus FCI (PID 0,
    BLP 4: "retransmit 0 and 3"), nor a BYE a reason, an APP data, or a FIR
    an entry for SSRC 0."""
    assert wire[0] & 0x20
    assert parse_rtcp(wire) == [expected]


def hdr(count: int, pt: int, words: int) -> bytes:
    return struct.pack("!BBH", 0x80 | count, pt, words)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty RTCP packet", id="empty"),
        pytest.param(b"\x80\xc8\x00", "malformed RTCP header at offset 0", id="3 bytes"),
        pytest.param(
            b"\x40\xc9\x00\x01\x00\x00\x00\x00", "malformed RTCP header at offset 0", id="version 1"
        ),
        pytest.param(
            hdr(0, RR, 2) + bytes(4), "malformed RTCP header at offset 0", id="length overruns"
        ),
        pytest.param(
            hdr(0, RR, 1) + bytes(4) + b"\xc0\xc9\x00\x00",
            "malformed RTCP header at offset 8",
            id="second packet version 3",
        ),
        pytest.param(
            hdr(0, RR, 1) + bytes(4) + b"\x80",
            "malformed RTCP header at offset 8",
            id="trailing byte",
        ),
        pytest.param(
            hdr(2, RR, 7) + bytes(28),
            "RTCP SR/RR shorter than its report count",
            id="RR count 2, one block",
        ),
        pytest.param(
            hdr(31, SR, 6) + bytes(24),
            "RTCP SR/RR shorter than its report count",
            id="SR count 31, no blocks",
        ),
        pytest.param(
            hdr(1, SR, 5) + bytes(20),
            "RTCP SR/RR shorter than its report count",
            id="SR shorter than sender info",
        ),
        pytest.param(
            hdr(2, SDES, 2) + struct.pack("!I", 1) + b"\x00\x00\x00\x00",
            "RTCP SDES chunk overruns the packet",
            id="SDES count 2, one chunk",
        ),
        pytest.param(
            hdr(1, SDES, 2) + struct.pack("!I", 1) + b"\x01\x02ab",
            "RTCP SDES chunk is not terminated",
            id="SDES without null item",
        ),
        pytest.param(
            hdr(1, SDES, 2) + struct.pack("!I", 1) + b"\x01\x09ab",
            "RTCP SDES item overruns the packet",
            id="SDES item length 9",
        ),
        pytest.param(
            hdr(1, SDES, 2) + struct.pack("!I", 1) + b"\x01\x01x\x07",
            "RTCP SDES item overruns the packet",
            id="SDES item type without length",
        ),
        pytest.param(
            hdr(3, BYE, 2) + bytes(8), "RTCP BYE shorter than its source count", id="BYE count 3"
        ),
        pytest.param(
            hdr(1, BYE, 2) + struct.pack("!I", 1) + b"\x05abc",
            "RTCP BYE reason overruns the packet",
            id="BYE reason length 5",
        ),
        pytest.param(
            hdr(1, RTPFB, 1) + bytes(4),
            "RTCP feedback packet shorter than 12 bytes",
            id="NACK 8 bytes",
        ),
        pytest.param(
            hdr(4, PSFB, 0), "RTCP feedback packet shorter than 12 bytes", id="FIR 4 bytes"
        ),
        pytest.param(
            hdr(15, PSFB, 4) + bytes(8) + b"REMB\x02\x00\x00\x00",
            "RTCP REMB shorter than its SSRC count",
            id="REMB 2 SSRCs, none there",
        ),
        pytest.param(
            hdr(15, PSFB, 5) + bytes(8) + b"REMB\x02\x00\x00\x00" + bytes(4),
            "RTCP REMB shorter than its SSRC count",
            id="REMB 2 SSRCs, one there",
        ),
        pytest.param(
            hdr(0, APP, 1) + bytes(4), "RTCP APP shorter than 12 bytes", id="APP without name"
        ),
        pytest.param(
            hdr(15, RTPFB, 3) + bytes(12),
            "RTCP transport-cc feedback shorter than 20 bytes",
            id="TWCC 16 bytes",
        ),
        pytest.param(
            hdr(15, RTPFB, 4) + bytes(8) + b"\x00\x00\x00\x05" + bytes(4),
            "RTCP transport-cc status chunks overrun the packet",
            id="TWCC count 5, no chunks",
        ),
        pytest.param(
            hdr(15, RTPFB, 5) + bytes(8) + b"\x00\x00\x00\x05" + bytes(4) + b"\x00\x02\x00\x00",
            "RTCP transport-cc status chunks overrun the packet",
            id="TWCC run too short, then zero run",
        ),
        pytest.param(
            hdr(15, RTPFB, 5) + bytes(8) + b"\x00\x00\x00\x03" + bytes(4) + b"\x40\x03\x00\x00",
            "RTCP transport-cc deltas overrun the packet",
            id="TWCC 3 large deltas, 2 bytes",
        ),
        pytest.param(
            hdr(15, RTPFB, 5) + bytes(8) + b"\x00\x00\x00\x05" + bytes(4) + b"\x20\x05\x01\x02",
            "RTCP transport-cc deltas overrun the packet",
            id="TWCC 5 small deltas, 2 bytes",
        ),
    ],
)
def test_error_messages(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_rtcp(data)


def test_errors_after_valid_packets_still_raise() -> None:
    wire = build_rr(1, [])[0] + build_pli(1, 2)[0] + hdr(2, BYE, 1) + bytes(4)
    with pytest.raises(ValueError, match="^RTCP BYE shorter than its source count$"):
        parse_rtcp(wire)
