"""Tests for engine/sctp.py: codec, CRC32c, and the association on a fake clock.

Oracles: google_crc32c (aiortc's dependency) for checksums and aiortc's own chunk codec for
byte-exact agreement; hand-built wire bytes for round trips. Association tests join two
associations with a simulated link (loss, delay, jitter) driven by a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
import random
import struct
from collections.abc import Callable

import google_crc32c
import pytest
from aiortc import rtcsctptransport as aiortc_sctp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.engine.sctp import (
    AbortChunk,
    AddIncomingStreamsRequest,
    AddOutgoingStreamsRequest,
    AssociationState,
    Chunk,
    Closed,
    Connected,
    CookieAckChunk,
    CookieEchoChunk,
    DataChunk,
    ErrorChunk,
    ForwardTsnChunk,
    HeartbeatAckChunk,
    HeartbeatChunk,
    IncomingResetRequest,
    InitAckChunk,
    InitChunk,
    OutgoingResetRequest,
    ReconfigChunk,
    ReconfigParam,
    ReconfigResponse,
    SackChunk,
    SctpAssociation,
    SctpConfig,
    SctpConfigError,
    SctpEvent,
    SctpMessageError,
    SctpPacket,
    SctpStateError,
    SctpStreamError,
    ShutdownAckChunk,
    ShutdownChunk,
    ShutdownCompleteChunk,
    SsnTsnResetRequest,
    StreamData,
    StreamReset,
    StreamResetCompleted,
    UnknownChunk,
    UnknownReconfigParam,
    crc32c,
    crc32c_reference,
)

PORT = 5000


# ---------------------------------------------------------------------------------------------
# Wire helpers independent of the codec under test
# ---------------------------------------------------------------------------------------------


def raw_chunk(chunk_type: int, flags: int, body: bytes) -> bytes:
    length = 4 + len(body)
    return struct.pack("!BBH", chunk_type, flags, length) + body + b"\x00" * (-length % 4)


def raw_param(param_type: int, value: bytes, pad: bool = True) -> bytes:
    length = 4 + len(value)
    return (
        struct.pack("!HH", param_type, length) + value + (b"\x00" * (-length % 4) if pad else b"")
    )


def raw_packet(tag: int, *chunks: bytes, checksum: int | None = None) -> bytes:
    body = struct.pack("!HHI", PORT, PORT, tag) + b"\x00\x00\x00\x00" + b"".join(chunks)
    if checksum is None:
        checksum = google_crc32c.value(body)
    return body[:8] + struct.pack("<I", checksum) + body[12:]


def parse(data: bytes) -> SctpPacket:
    return SctpPacket.parse(data)


# ---------------------------------------------------------------------------------------------
# CRC32c
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),  # RFC 3720 appendix B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (b"", 0),
    ],
)
def test_crc32c_vectors(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected
    assert crc32c_reference(data) == expected


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32c_matches_google_and_continues(a: bytes, b: bytes) -> None:
    assert crc32c(a + b) == google_crc32c.value(a + b) == crc32c_reference(a + b)
    assert crc32c(b, crc32c(a)) == crc32c(a + b)


def test_checksum_is_little_endian_on_the_wire() -> None:
    packet = SctpPacket(5000, 5000, 0x01020304, (CookieAckChunk(),)).serialize()
    assert packet.hex() == "1388138801020304ee5a51a50b000004"
    assert struct.unpack_from("<I", packet, 8)[0] == google_crc32c.value(
        packet[:8] + bytes(4) + packet[12:]
    )


# ---------------------------------------------------------------------------------------------
# Codec: byte-exact round trips
# ---------------------------------------------------------------------------------------------

CHROME_LIKE_INIT = raw_packet(
    0,
    raw_chunk(
        1,
        0,
        struct.pack("!IIHHI", 0x6B8B4567, 131072, 1024, 65535, 0x327B23C6)
        + raw_param(0x8008, bytes([130, 192]))  # supported extensions: RE-CONFIG, FORWARD-TSN
        + raw_param(0xC000, b"")  # forward-TSN supported
        + raw_param(0x8001, struct.pack("!I", 1), pad=False),  # zero checksum, DTLS method
    ),
)


def test_roundtrip_init_like_a_browser() -> None:
    packet = parse(CHROME_LIKE_INIT)
    assert (packet.source_port, packet.destination_port, packet.verification_tag) == (
        5000,
        5000,
        0,
    )
    (init,) = packet.chunks
    assert init == InitChunk(
        initiate_tag=0x6B8B4567,
        a_rwnd=131072,
        outbound_streams=1024,
        inbound_streams=65535,
        initial_tsn=0x327B23C6,
        params=((0x8008, b"\x82\xc0"), (0xC000, b""), (0x8001, b"\x00\x00\x00\x01")),
    )
    assert isinstance(init, InitChunk)
    assert init.param(0x8008) == b"\x82\xc0"
    assert init.param(7) is None
    assert packet.serialize() == CHROME_LIKE_INIT


ROUNDTRIP_CASES: list[tuple[str, bytes, Chunk]] = [
    (
        "data",
        raw_chunk(0, 0x03, struct.pack("!IHHI", 2584679421, 1, 1, 51) + b"ping"),
        DataChunk(2584679421, 1, 1, 51, b"ping"),
    ),
    (
        "data unordered middle fragment, padded",
        raw_chunk(0, 0x04, struct.pack("!IHHI", 7, 3, 0, 53) + b"abcde"),
        DataChunk(7, 3, 0, 53, b"abcde", unordered=True, beginning=False, ending=False),
    ),
    (
        "data with I bit",
        raw_chunk(0, 0x0B, struct.pack("!IHHI", 1, 0, 9, 50) + b"\x03"),
        DataChunk(1, 0, 9, 50, b"\x03", immediate=True),
    ),
    (
        "init-ack with cookie",
        raw_chunk(
            2,
            0,
            struct.pack("!IIHHI", 1, 2, 3, 4, 5)
            + raw_param(7, b"cookie!")
            + raw_param(0xC000, b"", pad=False),
        ),
        InitAckChunk(1, 2, 3, 4, 5, ((7, b"cookie!"), (0xC000, b""))),
    ),
    (
        "sack with gaps and duplicates",
        raw_chunk(
            3,
            0,
            struct.pack("!IIHH", 2222939037, 128160, 2, 1)
            + struct.pack("!HHHH", 2, 2, 4, 4)
            + struct.pack("!I", 2222939041),
        ),
        SackChunk(2222939037, 128160, ((2, 2), (4, 4)), (2222939041,)),
    ),
    (
        "heartbeat",
        raw_chunk(4, 0, raw_param(1, b"\x01" * 19, pad=False)),
        HeartbeatChunk(((1, b"\x01" * 19),)),
    ),
    (
        "heartbeat-ack",
        raw_chunk(5, 0, raw_param(1, b"info", pad=False)),
        HeartbeatAckChunk(((1, b"info"),)),
    ),
    (
        "abort with cause",
        raw_chunk(6, 0, raw_param(13, b"Expected B-bit for TSN=4ce1f17f", pad=False)),
        AbortChunk(((13, b"Expected B-bit for TSN=4ce1f17f"),)),
    ),
    ("abort with T bit", raw_chunk(6, 1, b""), AbortChunk((), tag_reflected=True)),
    ("shutdown", raw_chunk(7, 0, struct.pack("!I", 2696426712)), ShutdownChunk(2696426712)),
    ("shutdown-ack", raw_chunk(8, 0, b""), ShutdownAckChunk()),
    (
        "error",
        raw_chunk(9, 0, raw_param(1, b"\x30\x39\x00\x00", pad=False)),
        ErrorChunk(((1, b"\x30\x39\x00\x00"),)),
    ),
    ("cookie-echo", raw_chunk(10, 0, b"12345678"), CookieEchoChunk(b"12345678")),
    ("cookie-ack", raw_chunk(11, 0, b""), CookieAckChunk()),
    ("shutdown-complete", raw_chunk(14, 1, b""), ShutdownCompleteChunk(tag_reflected=True)),
    (
        "forward-tsn",
        raw_chunk(192, 0, struct.pack("!IHHHH", 1000, 1, 5, 3, 0)),
        ForwardTsnChunk(1000, ((1, 5), (3, 0))),
    ),
    (
        "re-config outgoing reset request",
        raw_chunk(
            130,
            0,
            raw_param(13, struct.pack("!IIIH", 2346191451, 3834375283, 2346191454, 1), pad=False),
        ),
        ReconfigChunk((OutgoingResetRequest(2346191451, 3834375283, 2346191454, (1,)),)),
    ),
    (
        "re-config response plus request",
        raw_chunk(
            130,
            0,
            raw_param(16, struct.pack("!II", 2438143828, 1))
            + raw_param(13, struct.pack("!IIIHH", 5, 6, 7, 2, 4), pad=False),
        ),
        ReconfigChunk((ReconfigResponse(2438143828, 1), OutgoingResetRequest(5, 6, 7, (2, 4)))),
    ),
    (
        "re-config add outgoing streams",
        raw_chunk(130, 0, raw_param(17, struct.pack("!IHH", 3389191728, 16, 0), pad=False)),
        ReconfigChunk((AddOutgoingStreamsRequest(3389191728, 16),)),
    ),
    (
        "re-config response with TSNs, incoming and ssn/tsn requests",
        raw_chunk(
            130,
            0,
            raw_param(16, struct.pack("!IIII", 1, 6, 2, 3))
            + raw_param(14, struct.pack("!IH", 9, 7))
            + raw_param(15, struct.pack("!I", 10))
            + raw_param(18, struct.pack("!IHH", 11, 2, 0))
            + raw_param(0x4444, b"xyz", pad=False),
        ),
        ReconfigChunk(
            (
                ReconfigResponse(1, 6, 2, 3),
                IncomingResetRequest(9, (7,)),
                SsnTsnResetRequest(10),
                AddIncomingStreamsRequest(11, 2),
                UnknownReconfigParam(0x4444, b"xyz"),
            )
        ),
    ),
    (
        "unknown chunk",
        raw_chunk(0xC1, 0x5A, b"\x01\x02\x03"),
        UnknownChunk(0xC1, 0x5A, b"\x01\x02\x03"),
    ),
]


@pytest.mark.parametrize(
    ("name", "wire", "chunk"), ROUNDTRIP_CASES, ids=[c[0] for c in ROUNDTRIP_CASES]
)
def test_chunk_roundtrip_is_byte_exact(name: str, wire: bytes, chunk: Chunk) -> None:
    data = raw_packet(0xDEADBEEF, wire)
    packet = parse(data)
    assert packet.chunks == (chunk,)
    assert packet.serialize() == data


def test_bundled_packet_roundtrip() -> None:
    data = raw_packet(
        7,
        raw_chunk(11, 0, b""),
        raw_chunk(3, 0, struct.pack("!IIHH", 10, 5000, 0, 0)),
        raw_chunk(0, 3, struct.pack("!IHHI", 11, 0, 0, 51) + b"hello"),
    )
    packet = parse(data)
    assert [type(c) for c in packet.chunks] == [CookieAckChunk, SackChunk, DataChunk]
    assert packet.serialize() == data


@pytest.mark.parametrize(
    ("name", "wire", "chunk"), ROUNDTRIP_CASES, ids=[c[0] for c in ROUNDTRIP_CASES]
)
def test_aiortc_encodes_the_same_bytes(name: str, wire: bytes, chunk: Chunk) -> None:
    """aiortc's independent codec, fed our packet, re-encodes it identically."""
    ours = SctpPacket(PORT, PORT, 1234, (chunk,)).serialize()
    _, _, tag, chunks = aiortc_sctp.parse_packet(ours)
    if chunk.__class__ is UnknownChunk:
        assert chunks == []  # aiortc drops unknown chunks
        return
    assert aiortc_sctp.serialize_packet(PORT, PORT, tag, chunks[0]) == ours


def test_zero_checksum_is_accepted_only_when_allowed() -> None:
    data = raw_packet(5, raw_chunk(11, 0, b""), checksum=0)
    assert parse(data).chunks == (CookieAckChunk(),)
    with pytest.raises(ValueError, match="^SCTP packet has an invalid checksum$"):
        SctpPacket.parse(data, accept_zero_checksum=False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x13\x88" * 6, "SCTP packet is too short (12 bytes, need at least 16)"),
        (raw_packet(1, raw_chunk(11, 0, b""), checksum=1), "SCTP packet has an invalid checksum"),
        (
            raw_packet(1, struct.pack("!BBH", 11, 0, 2)),
            "SCTP chunk of type 11 has an invalid length of 2 bytes",
        ),
        (
            raw_packet(1, struct.pack("!BBH", 0, 3, 40) + bytes(8)),
            "SCTP chunk of type 0 has an invalid length of 40 bytes",
        ),
        (raw_packet(1, raw_chunk(11, 0, b""), b"\x00\x00"), "SCTP packet has 2 trailing bytes"),
        (raw_packet(1, raw_chunk(0, 3, bytes(8))), "DATA chunk is too short (12 bytes, need 16)"),
        (raw_packet(1, raw_chunk(0, 3, bytes(12))), "DATA chunk has no user data"),
        (raw_packet(1, raw_chunk(1, 0, bytes(12))), "INIT chunk is too short (16 bytes, need 20)"),
        (
            raw_packet(1, raw_chunk(2, 0, bytes(15))),
            "INIT-ACK chunk is too short (19 bytes, need 20)",
        ),
        (
            raw_packet(0, raw_chunk(1, 0, bytes(16) + struct.pack("!HH", 5, 3))),
            "INIT parameter has an invalid length of 3 bytes",
        ),
        (
            raw_packet(0, raw_chunk(1, 0, bytes(16) + struct.pack("!HH", 5, 12) + bytes(4))),
            "INIT parameter has an invalid length of 12 bytes",
        ),
        (
            raw_packet(0, raw_chunk(1, 0, bytes(16) + b"\x00\x05")),
            "INIT parameter has 2 trailing bytes",
        ),
        (
            raw_packet(1, raw_chunk(3, 0, struct.pack("!IIHH", 1, 1, 1, 0))),
            "SACK chunk length 16 does not match 1 gap blocks and 0 duplicate TSNs",
        ),
        (raw_packet(1, raw_chunk(3, 0, bytes(8))), "SACK chunk is too short (12 bytes, need 16)"),
        (
            raw_packet(1, raw_chunk(7, 0, bytes(8))),
            "SHUTDOWN chunk has an invalid length of 12 bytes",
        ),
        (
            raw_packet(1, raw_chunk(192, 0, bytes(6))),
            "FORWARD-TSN chunk has an invalid length of 10 bytes",
        ),
        (raw_packet(1, raw_chunk(130, 0, b"")), "RE-CONFIG chunk has no parameters"),
        (
            raw_packet(1, raw_chunk(130, 0, raw_param(13, bytes(11)))),
            "Outgoing SSN Reset Request has an invalid length of 15 bytes",
        ),
        (
            raw_packet(1, raw_chunk(130, 0, raw_param(16, bytes(12)))),
            "Re-configuration Response has an invalid length of 16 bytes",
        ),
        (
            raw_packet(1, raw_chunk(130, 0, raw_param(17, bytes(4)))),
            "Add Outgoing Streams Request has an invalid length of 8 bytes",
        ),
        (
            raw_packet(1, raw_chunk(6, 0, struct.pack("!HH", 1, 2))),
            "ABORT error cause has an invalid length of 2 bytes",
        ),
    ],
)
def test_garbage_raises_value_error_with_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(data)
    assert str(info.value) == message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_parser_on_arbitrary_bytes(data: bytes) -> None:
    try:
        packet = SctpPacket.parse(data)
    except ValueError:
        return
    assert isinstance(packet, SctpPacket)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=4, max_size=200), st.booleans())
def test_parser_on_arbitrary_chunks_with_valid_checksum(body: bytes, zero: bool) -> None:
    data = raw_packet(99, body, checksum=0 if zero else None)
    try:
        packet = SctpPacket.parse(data)
    except ValueError:
        return
    assert packet.chunks
    # Anything that parses re-encodes, and re-parses to the same chunks.
    assert SctpPacket.parse(packet.serialize()).chunks == packet.chunks


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
params = st.lists(st.tuples(u16, st.binary(max_size=12)), max_size=4).map(tuple)
reconfig_params: st.SearchStrategy[ReconfigParam] = st.one_of(
    st.builds(OutgoingResetRequest, u32, u32, u32, st.lists(u16, max_size=5).map(tuple)),
    st.builds(IncomingResetRequest, u32, st.lists(u16, max_size=5).map(tuple)),
    st.builds(SsnTsnResetRequest, u32),
    st.builds(ReconfigResponse, u32, u32),
    st.builds(ReconfigResponse, u32, u32, u32, u32),
    st.builds(AddOutgoingStreamsRequest, u32, u16),
    st.builds(AddIncomingStreamsRequest, u32, u16),
    st.builds(UnknownReconfigParam, st.integers(19, 0xFFFF), st.binary(max_size=9)),
)
chunks: st.SearchStrategy[Chunk] = st.one_of(
    st.builds(
        DataChunk,
        u32,
        u16,
        u16,
        u32,
        st.binary(min_size=1, max_size=40),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(InitChunk, u32, u32, u16, u16, u32, params),
    st.builds(InitAckChunk, u32, u32, u16, u16, u32, params),
    st.builds(
        SackChunk,
        u32,
        u32,
        st.lists(st.tuples(u16, u16), max_size=4).map(tuple),
        st.lists(u32, max_size=4).map(tuple),
    ),
    st.builds(HeartbeatChunk, params),
    st.builds(HeartbeatAckChunk, params),
    st.builds(AbortChunk, params, st.booleans()),
    st.builds(ShutdownChunk, u32),
    st.builds(ShutdownAckChunk),
    st.builds(ErrorChunk, params),
    st.builds(CookieEchoChunk, st.binary(max_size=40)),
    st.builds(CookieAckChunk),
    st.builds(ShutdownCompleteChunk, st.booleans()),
    st.builds(ForwardTsnChunk, u32, st.lists(st.tuples(u16, u16), max_size=4).map(tuple)),
    st.builds(ReconfigChunk, st.lists(reconfig_params, min_size=1, max_size=3).map(tuple)),
    st.builds(
        UnknownChunk,
        st.sampled_from([15, 64, 0x41, 0x80, 0x84, 0xC1, 0xFF]),
        u8,
        st.binary(max_size=20),
    ),
)


@settings(max_examples=300)
@given(u16, u16, u32, st.lists(chunks, min_size=1, max_size=4).map(tuple))
def test_serialize_parse_roundtrip(
    sport: int, dport: int, tag: int, items: tuple[Chunk, ...]
) -> None:
    packet = SctpPacket(sport, dport, tag, items)
    data = packet.serialize()
    assert SctpPacket.parse(data, accept_zero_checksum=False) == packet
    assert SctpPacket.parse(data).serialize() == data


# ---------------------------------------------------------------------------------------------
# A simulated link on a fake clock
# ---------------------------------------------------------------------------------------------


class Net:
    """Two associations joined by a lossy, jittery link; time is simulated."""

    def __init__(
        self,
        a: SctpAssociation,
        b: SctpAssociation,
        *,
        loss: float = 0.0,
        delay: float = 0.02,
        jitter: float = 0.0,
        seed: int = 1,
    ) -> None:
        self.assocs = [a, b]
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.now = 0.0
        self.queue: list[tuple[float, int, int, bytes]] = []
        self.seq = itertools.count()
        self.events: list[list[SctpEvent]] = [[], []]
        self.sent: list[list[bytes]] = [[], []]
        # drop(src_index, packet) -> True to lose this packet deliberately.
        self.drop: Callable[[int, bytes], bool] | None = None

    def flush(self) -> None:
        for i, assoc in enumerate(self.assocs):
            for packet in assoc.datagrams_to_send(self.now):
                self.sent[i].append(packet)
                if self.drop is not None and self.drop(i, packet):
                    continue
                if self.loss and self.rng.random() < self.loss:
                    continue
                when = (
                    self.now + self.delay + (self.rng.uniform(0, self.jitter) if self.jitter else 0)
                )
                heapq.heappush(self.queue, (when, next(self.seq), 1 - i, packet))
            self.events[i].extend(assoc.events())

    def step(self) -> None:
        self.flush()
        times = [self.queue[0][0]] if self.queue else []
        times += [t for a in self.assocs if (t := a.next_timer()) is not None]
        if not times:
            raise AssertionError("simulation is idle")
        self.now = max(self.now, min(times))
        while self.queue and self.queue[0][0] <= self.now:
            _, _, dst, packet = heapq.heappop(self.queue)
            self.assocs[dst].receive(packet, self.now)
            self.flush()  # as a DTLS adapter does after every record
        for assoc in self.assocs:
            t = assoc.next_timer()
            if t is not None and t <= self.now:
                assoc.handle_timer(self.now)
        self.flush()

    def run_until(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        end = self.now + timeout
        while not predicate():
            if self.now > end:
                raise AssertionError(f"timed out at t={self.now:.3f}")
            self.step()

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            self.flush()
            times = [self.queue[0][0]] if self.queue else []
            times += [t for a in self.assocs if (t := a.next_timer()) is not None]
            if not times or min(times) > end:
                self.now = end
                return
            self.step()

    def data(self, i: int) -> list[StreamData]:
        return [e for e in self.events[i] if isinstance(e, StreamData)]

    def of_type(self, i: int, cls: type) -> list[SctpEvent]:
        return [e for e in self.events[i] if isinstance(e, cls)]


def make_pair(
    *, config: SctpConfig | None = None, loss: float = 0.0, jitter: float = 0.0, seed: int = 1
) -> tuple[SctpAssociation, SctpAssociation, Net]:
    client = SctpAssociation(is_client=True, config=config)
    server = SctpAssociation(config=config)
    return client, server, Net(client, server, loss=loss, jitter=jitter, seed=seed)


def connected_pair(
    *, config: SctpConfig | None = None, loss: float = 0.0, jitter: float = 0.0, seed: int = 1
) -> tuple[SctpAssociation, SctpAssociation, Net]:
    client, server, net = make_pair(config=config, loss=loss, jitter=jitter, seed=seed)
    client.start(net.now)
    server.start(net.now)
    net.run_until(lambda: bool(net.of_type(0, Connected) and net.of_type(1, Connected)))
    return client, server, net


def chunk_types(packets: list[bytes]) -> list[list[str]]:
    return [[type(c).__name__ for c in parse(p).chunks] for p in packets]


# ---------------------------------------------------------------------------------------------
# Association setup
# ---------------------------------------------------------------------------------------------


def test_handshake_passive_server_keeps_no_state_before_cookie_echo() -> None:
    client, server, _net = make_pair()
    client.start(0.0)
    server.start(0.0)  # passive: nothing to send
    assert server.datagrams_to_send(0.0) == []
    (init,) = client.datagrams_to_send(0.0)
    assert chunk_types([init]) == [["InitChunk"]]
    assert parse(init).verification_tag == 0
    server.receive(init, 0.01)
    (init_ack,) = server.datagrams_to_send(0.01)
    assert chunk_types([init_ack]) == [["InitAckChunk"]]
    # Stateless: no state change, no timer, no peer tag remembered.
    assert server.state is AssociationState.CLOSED
    assert server.next_timer() is None
    assert server.peer_tag == 0
    ack = parse(init_ack).chunks[0]
    assert isinstance(ack, InitAckChunk)
    assert ack.initiate_tag == server.local_tag
    assert ack.a_rwnd >= 1024 * 1024
    assert ack.param(0xC000) == b""
    assert ack.param(0x8008) == bytes([130, 192])
    assert ack.param(0x8001) == b"\x00\x00\x00\x01"
    # The peer runs the rest.
    client.receive(init_ack, 0.02)
    (echo,) = client.datagrams_to_send(0.02)
    assert chunk_types([echo]) == [["CookieEchoChunk"]]
    server.receive(echo, 0.03)
    assert server.events() == [Connected(outbound_streams=65535, inbound_streams=65535)]
    assert server.state.value == "established"
    (cookie_ack,) = server.datagrams_to_send(0.03)
    client.receive(cookie_ack, 0.04)
    assert client.events() == [Connected(outbound_streams=65535, inbound_streams=65535)]
    assert client.peer_tag == server.local_tag and server.peer_tag == client.local_tag


def test_init_collision_both_sides_active() -> None:
    a = SctpAssociation(is_client=True)
    b = SctpAssociation(is_client=True)
    net = Net(a, b)
    a.start(0.0)
    b.start(0.0)
    net.run_until(lambda: bool(net.of_type(0, Connected) and net.of_type(1, Connected)))
    assert a.peer_tag == b.local_tag and b.peer_tag == a.local_tag
    a.send(0, 51, b"hi", now=net.now)
    b.send(0, 51, b"yo", now=net.now)
    net.run_until(lambda: bool(net.data(0) and net.data(1)))
    assert net.data(1) == [StreamData(0, 51, b"hi")]
    assert net.data(0) == [StreamData(0, 51, b"yo")]
    net.run_for(1.0)
    deadline = a.next_timer()
    assert deadline is not None and deadline > net.now + 10  # only the heartbeat is left
    assert a.stats.retransmissions == b.stats.retransmissions == 0


def test_init_is_retransmitted_with_backoff() -> None:
    client, _server, net = make_pair()
    sent_at: list[float] = []

    def drop(src: int, packet: bytes) -> bool:
        if isinstance(parse(packet).chunks[0], InitChunk):
            sent_at.append(net.now)
            return len(sent_at) <= 2
        return False

    net.drop = drop
    client.start(0.0)
    net.run_until(lambda: bool(net.of_type(0, Connected)))
    assert sent_at == [0.0, 1.0, 3.0]  # T1-init starts at 1 s and doubles
    assert client.stats.retransmissions == 2


def test_cookie_echo_is_retransmitted() -> None:
    client, _server, net = make_pair()
    echoes: list[float] = []

    def drop(src: int, packet: bytes) -> bool:
        if isinstance(parse(packet).chunks[0], CookieEchoChunk):
            echoes.append(net.now)
            return len(echoes) == 1
        return False

    net.drop = drop
    client.start(0.0)
    net.run_until(lambda: bool(net.of_type(0, Connected) and net.of_type(1, Connected)))
    assert echoes == [pytest.approx(0.04), pytest.approx(1.04)]  # T1-cookie: 1 s


@pytest.mark.parametrize("seed", range(25))
def test_init_collision_under_heavy_loss(seed: int) -> None:
    a = SctpAssociation(is_client=True)
    b = SctpAssociation(is_client=True)
    net = Net(a, b, loss=0.3, jitter=0.05, seed=seed)
    a.start(0.0)
    b.start(random.Random(seed).uniform(0, 0.05))
    net.run_until(
        lambda: bool(net.of_type(0, Connected) and net.of_type(1, Connected)), timeout=120
    )
    assert a.peer_tag == b.local_tag and b.peer_tag == a.local_tag
    for i in range(5):
        a.send(0, 51, b"a%d" % i, now=net.now)
        b.send(1, 51, b"b%d" % i, now=net.now)
    net.run_until(lambda: len(net.data(0)) == 5 and len(net.data(1)) == 5, timeout=120)
    assert [e.data for e in net.data(1)] == [b"a%d" % i for i in range(5)]
    assert [e.data for e in net.data(0)] == [b"b%d" % i for i in range(5)]


def test_setup_fails_after_max_init_retransmissions() -> None:
    client, _server, net = make_pair(config=SctpConfig(max_init_retransmissions=3))
    net.drop = lambda src, packet: True
    client.start(0.0)
    net.run_until(lambda: bool(net.of_type(0, Closed)), timeout=100)
    assert net.of_type(0, Closed) == [
        Closed("association setup failed: no answer to INIT after 4 attempts")
    ]
    assert client.next_timer() is None
    with pytest.raises(SctpStateError, match="^cannot send in state closed$"):
        client.send(0, 51, b"x", now=net.now)


def test_tampered_and_stale_cookies_are_rejected() -> None:
    server = SctpAssociation()
    init = raw_packet(0, raw_chunk(1, 0, struct.pack("!IIHHI", 77, 65536, 10, 10, 1000)))
    server.receive(init, 0.0)
    ack = parse(server.datagrams_to_send(0.0)[0]).chunks[0]
    assert isinstance(ack, InitAckChunk)
    cookie = ack.param(7)
    assert cookie is not None
    tampered = bytearray(cookie)
    tampered[5] ^= 1
    server.receive(raw_packet(server.local_tag, raw_chunk(10, 0, bytes(tampered))), 0.1)
    assert server.stats.bad_cookies == 1
    # Wrong verification tag on the echo.
    server.receive(raw_packet(server.local_tag ^ 1, raw_chunk(10, 0, cookie)), 0.1)
    assert server.stats.bad_verification_tag == 1
    # Too old: answered with a Stale Cookie ERROR to the INIT's tag.
    server.receive(raw_packet(server.local_tag, raw_chunk(10, 0, cookie)), 61.5)
    assert server.stats.stale_cookies == 1
    (error,) = server.datagrams_to_send(61.5)
    packet = parse(error)
    assert packet.verification_tag == 77
    (chunk,) = packet.chunks
    assert isinstance(chunk, ErrorChunk) and chunk.causes[0][0] == 3
    assert server.state is AssociationState.CLOSED
    # In time: established.
    server.receive(raw_packet(server.local_tag, raw_chunk(10, 0, cookie)), 30.0)
    assert server.events() == [Connected(outbound_streams=10, inbound_streams=10)]


def test_stale_cookie_error_makes_the_client_start_over() -> None:
    client, server, net = make_pair(config=SctpConfig(cookie_lifetime=0.05))
    net.delay = 0.03  # the echo arrives 60 ms after the cookie was made
    client.start(0.0)
    net.run_until(lambda: server.stats.stale_cookies >= 1)
    net.delay = 0.01
    net.run_until(lambda: bool(net.of_type(0, Connected)))
    assert client.stats.retransmissions >= 0
    assert len([p for p in net.sent[0] if isinstance(parse(p).chunks[0], InitChunk)]) == 2


def test_endless_stale_cookies_end_the_setup() -> None:
    client, server, net = make_pair(
        config=SctpConfig(cookie_lifetime=0.01, max_init_retransmissions=3)
    )
    client.start(0.0)
    net.run_until(lambda: bool(net.of_type(0, Closed)), timeout=30)
    assert net.of_type(0, Closed) == [Closed("association setup failed: 4 stale cookie errors")]
    assert server.stats.stale_cookies == 4


def test_packets_from_nowhere_and_bad_tags_are_counted() -> None:
    server = SctpAssociation()
    server.receive(b"garbage", 0.0)
    assert server.stats.bad_packets == 1
    server.receive(
        raw_packet(server.local_tag, raw_chunk(3, 0, struct.pack("!IIHH", 1, 1, 0, 0))), 0.0
    )
    assert server.stats.out_of_the_blue == 1
    server.receive(raw_packet(5, raw_chunk(11, 0, b"")), 0.0)
    assert server.stats.bad_verification_tag == 1
    wrong_port = bytearray(raw_packet(0, raw_chunk(1, 0, struct.pack("!IIHHI", 1, 9999, 1, 1, 1))))
    wrong_port[2:4] = b"\x13\x89"
    wrong_port[8:12] = struct.pack(
        "<I", google_crc32c.value(bytes(wrong_port[:8]) + bytes(4) + bytes(wrong_port[12:]))
    )
    server.receive(bytes(wrong_port), 0.0)
    assert server.stats.bad_ports == 1
    # INIT must be alone and carry tag 0; an INIT with tag 0 in its body is a violation.
    server.receive(raw_packet(0, raw_chunk(1, 0, struct.pack("!IIHHI", 0, 9999, 1, 1, 1))), 0.0)
    assert server.stats.protocol_violations == 1
    assert server.datagrams_to_send(0.0) == []
    assert server.events() == []


def test_config_is_validated_with_field_names() -> None:
    with pytest.raises(
        SctpConfigError, match="^max_packet_size must be a multiple of 4 in 256..65535, got 1191$"
    ):
        SctpConfig(max_packet_size=1191)
    with pytest.raises(SctpConfigError, match="^inbound_streams must be in 1..65535, got 0$"):
        SctpConfig(inbound_streams=0)
    with pytest.raises(SctpConfigError, match="rto_min, rto_initial and rto_max"):
        SctpConfig(rto_min=2.0)
    assert SctpConfig().max_user_data == 1160


# ---------------------------------------------------------------------------------------------
# Data transfer
# ---------------------------------------------------------------------------------------------


def test_send_errors_are_typed_and_clear() -> None:
    client, _, net = make_pair()
    with pytest.raises(SctpStateError, match="^cannot send in state closed$"):
        client.send(0, 51, b"x", now=0.0)
    client, _server, net = connected_pair()
    with pytest.raises(SctpMessageError, match="^SCTP cannot carry an empty message"):
        client.send(0, 51, b"", now=net.now)
    with pytest.raises(
        SctpMessageError, match=r"^message of 262145 bytes exceeds max_message_size \(262144\)$"
    ):
        client.send(0, 53, bytes(262145), now=net.now)
    with pytest.raises(SctpStreamError, match=r"^stream 65535 is out of range \(0..65534\)$"):
        client.send(65535, 53, b"x", now=net.now)
    with pytest.raises(SctpMessageError, match="^ppid must be a 32-bit unsigned integer, got -1$"):
        client.send(0, -1, b"x", now=net.now)


def test_ordered_unordered_and_large_messages_both_ways() -> None:
    client, server, net = connected_pair()
    big = random.Random(5).randbytes(256 * 1024)
    client.send(1, 51, b"first", now=net.now)
    client.send(1, 53, big, now=net.now)
    client.send(3, 53, b"unordered", ordered=False, now=net.now)
    server.send(1, 51, b"reply", now=net.now)
    server.send(1, 53, big[::-1], now=net.now)
    net.run_until(lambda: len(net.data(1)) == 3 and len(net.data(0)) == 2)
    got = net.data(1)
    assert StreamData(3, 53, b"unordered") in got
    assert [e for e in got if e.stream_id == 1] == [
        StreamData(1, 51, b"first"),
        StreamData(1, 53, big),
    ]
    assert net.data(0) == [StreamData(1, 51, b"reply"), StreamData(1, 53, big[::-1])]
    assert all(len(p) <= 1188 for side in net.sent for p in side)
    assert max(len(p) for p in net.sent[0]) == 1188


def test_lossy_reordering_link_delivers_everything_in_order_per_stream() -> None:
    client, server, net = connected_pair(loss=0.1, jitter=0.03, seed=7)
    rng = random.Random(3)
    expected: dict[int, list[bytes]] = {0: [], 2: [], 4: []}
    back: list[bytes] = []
    for i in range(120):
        stream = rng.choice([0, 2, 4])
        payload = f"{i}:".encode() + rng.randbytes(rng.choice([10, 500, 3000]))
        client.send(stream, 53, payload, now=net.now)
        expected[stream].append(payload)
        if i % 4 == 0:
            reply = f"r{i}".encode() * 100
            server.send(1, 53, reply, now=net.now)
            back.append(reply)
        net.run_for(0.005)
    big = rng.randbytes(100 * 1024)
    client.send(6, 53, big, now=net.now)
    server.send(7, 53, big, now=net.now)
    total = sum(len(v) for v in expected.values()) + 1
    net.run_until(
        lambda: len(net.data(1)) == total and len(net.data(0)) == len(back) + 1, timeout=120
    )
    for stream, payloads in expected.items():
        assert [e.data for e in net.data(1) if e.stream_id == stream] == payloads
    assert [e.data for e in net.data(1) if e.stream_id == 6] == [big]
    assert [e.data for e in net.data(0) if e.stream_id == 1] == back
    assert [e.data for e in net.data(0) if e.stream_id == 7] == [big]
    assert client.stats.retransmissions > 0
    assert server.stats.duplicate_tsns >= 0
    assert client.stats.bad_packets == server.stats.bad_packets == 0
    # Nothing left over once everything is acknowledged.
    net.run_for(2.0)
    assert client.buffered_amount == 0 and server.buffered_amount == 0
    assert not server._reassembly and not server._pending_ordered
    assert server._held_bytes == 0 and client._held_bytes == 0


def test_delayed_sack_waits_200ms_for_a_single_packet() -> None:
    client, server, net = connected_pair()
    client.send(0, 51, b"one", now=net.now)
    (data,) = client.datagrams_to_send(net.now)
    t0 = net.now
    server.receive(data, t0)
    assert server.datagrams_to_send(t0) == []
    assert server.next_timer() == pytest.approx(t0 + 0.2)
    server.handle_timer(t0 + 0.2)
    (sack,) = server.datagrams_to_send(t0 + 0.2)
    assert chunk_types([sack]) == [["SackChunk"]]
    # Every second packet is acknowledged at once.
    client.receive(sack, t0 + 0.21)
    client.send(0, 51, b"two" * 300, now=t0 + 0.3)
    client.send(0, 51, b"three" * 200, now=t0 + 0.3)
    packets = client.datagrams_to_send(t0 + 0.3)
    assert len(packets) == 2
    server.receive(packets[0], t0 + 0.31)
    assert server.datagrams_to_send(t0 + 0.31) == []
    server.receive(packets[1], t0 + 0.31)
    assert chunk_types(server.datagrams_to_send(t0 + 0.31)) == [["SackChunk"]]


def raw_handshake(
    server: SctpAssociation, tsn: int = 1000, tag: int = 77, a_rwnd: int = 1 << 20
) -> InitAckChunk:
    """Establish ``server`` from hand-made INIT / COOKIE-ECHO; return its INIT-ACK."""
    server.receive(
        raw_packet(
            0,
            raw_chunk(
                1,
                0,
                struct.pack("!IIHHI", tag, a_rwnd, 16, 16, tsn)
                + raw_param(0xC000, b"")
                + raw_param(0x8008, bytes([130, 192]), pad=False),
            ),
        ),
        0.0,
    )
    ack = parse(server.datagrams_to_send(0.0)[0]).chunks[0]
    assert isinstance(ack, InitAckChunk)
    cookie = ack.param(7)
    assert cookie is not None
    server.receive(raw_packet(server.local_tag, raw_chunk(10, 0, cookie)), 0.0)
    assert chunk_types(server.datagrams_to_send(0.0)) == [["CookieAckChunk"]]
    assert isinstance(server.events()[0], Connected)
    return ack


def raw_data(
    server: SctpAssociation,
    tsn: int,
    payload: bytes,
    *,
    sid: int = 0,
    ssn: int = 0,
    flags: int = 3,
    ppid: int = 51,
) -> bytes:
    return raw_packet(
        server.local_tag, raw_chunk(0, flags, struct.pack("!IHHI", tsn, sid, ssn, ppid) + payload)
    )


def sack_of(packets: list[bytes]) -> SackChunk:
    sacks = [c for p in packets for c in parse(p).chunks if isinstance(c, SackChunk)]
    assert len(sacks) == 1, chunk_types(packets)
    return sacks[0]


def test_sack_reports_gap_blocks_and_duplicates() -> None:
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    for tsn, ssn in ((1000, 0), (1002, 2), (1003, 3), (1005, 5), (1002, 2)):
        server.receive(raw_data(server, tsn, b"m%d" % ssn, ssn=ssn), 1.0)
    sack = sack_of(server.datagrams_to_send(1.0))
    assert sack.cumulative_tsn == 1000
    assert sack.gaps == ((2, 3), (5, 5))
    assert sack.duplicates == (1002,)
    assert [e for e in server.events()] == [StreamData(0, 51, b"m0")]
    # The hole fills: everything is delivered in SSN order.
    server.receive(raw_data(server, 1001, b"m1", ssn=1), 1.1)
    server.receive(raw_data(server, 1004, b"m4", ssn=4), 1.1)
    sack = sack_of(server.datagrams_to_send(1.1))
    assert (sack.cumulative_tsn, sack.gaps, sack.duplicates) == (1005, (), ())
    assert [e.data for e in server.events() if isinstance(e, StreamData)] == [
        b"m1",
        b"m2",
        b"m3",
        b"m4",
        b"m5",
    ]


def test_fragments_reassemble_out_of_order_and_interleaved_unordered() -> None:
    server = SctpAssociation()
    raw_handshake(server, tsn=0xFFFFFFFE)  # TSNs wrap around during the message
    # Ordered message "ABC" in three fragments arriving C, A, B; an unordered message inside.
    server.receive(raw_data(server, 0x00000000, b"C", flags=1), 1.0)
    server.receive(raw_data(server, 0x00000001, b"U", flags=7), 1.0)
    assert [e for e in server.events()] == [StreamData(0, 51, b"U")]
    server.receive(raw_data(server, 0xFFFFFFFE, b"A", flags=2), 1.0)
    assert server.events() == []
    server.receive(raw_data(server, 0xFFFFFFFF, b"B", flags=0), 1.0)
    assert server.events() == [StreamData(0, 51, b"ABC")]
    assert sack_of(server.datagrams_to_send(1.0)).cumulative_tsn == 1


def test_data_on_an_invalid_stream_is_acked_and_reported() -> None:
    server = SctpAssociation()
    raw_handshake(server)  # the peer announced 16 outbound streams
    server.receive(raw_data(server, 1000, b"x", sid=16), 1.0)
    packets = server.datagrams_to_send(1.0)
    errors = [c for p in packets for c in parse(p).chunks if isinstance(c, ErrorChunk)]
    assert errors and errors[0].causes == ((1, b"\x00\x10\x00\x00"),)
    assert sack_of(packets).cumulative_tsn == 1000  # bundled with the ERROR
    assert server.events() == []


def test_receive_window_overrun_is_dropped_not_buffered() -> None:
    config = SctpConfig(receive_window=4000, max_message_size=4000)
    server = SctpAssociation(config=config)
    raw_handshake(server, tsn=1000)
    # Out-of-order fragments (1000 is missing) fill the window.
    for i in range(1, 6):
        server.receive(raw_data(server, 1000 + i, bytes(1000), flags=0), 1.0)
    assert server.stats.dropped_data_chunks == 1
    sack = sack_of(server.datagrams_to_send(1.0))
    assert sack.cumulative_tsn == 999 and sack.gaps == ((2, 5),) and sack.a_rwnd == 0


def test_forward_tsn_skips_abandoned_data_and_releases_ordered_messages() -> None:
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    # 1000 (ssn 0) is lost and abandoned by the sender; 1001 is a fragment of an abandoned
    # message; 1002 (ssn 2) is complete and waits for ssn 0 and 1.
    server.receive(raw_data(server, 1001, b"part", ssn=1, flags=2), 1.0)
    server.receive(raw_data(server, 1003, b"two", ssn=2), 1.0)
    assert server.events() == []
    fwd = raw_packet(server.local_tag, raw_chunk(192, 0, struct.pack("!IHH", 1002, 0, 1)))
    server.receive(fwd, 1.1)
    assert server.events() == [StreamData(0, 51, b"two")]
    assert server.stats.forward_tsn_received == 1
    sack = sack_of(server.datagrams_to_send(1.1))
    assert sack.cumulative_tsn == 1003 and sack.gaps == ()
    assert server._held_bytes == 0 and not server._reassembly


def test_fast_retransmit_before_t3() -> None:
    client, _server, net = connected_pair()
    dropped: list[int] = []

    def drop(src: int, packet: bytes) -> bool:
        chunks = parse(packet).chunks
        if src == 0 and isinstance(chunks[0], DataChunk) and not dropped:
            dropped.append(chunks[0].tsn)
            return True
        return False

    net.drop = drop
    t0 = net.now
    for i in range(6):
        client.send(0, 53, bytes([i]) * 1000, now=net.now)
    net.run_until(lambda: len(net.data(1)) == 6)
    assert net.now - t0 < 0.5  # well before the 1 s RTO
    assert client.stats.fast_retransmits == 1
    assert client.stats.t3_expirations == 0
    assert [e.data[0] for e in net.data(1)] == list(range(6))


def test_congestion_window_grows_in_slow_start_and_shrinks_on_loss() -> None:
    client, _server, net = connected_pair()
    assert client.cwnd == 10 * 1188
    client.send(0, 53, bytes(200 * 1024), now=net.now)
    net.run_until(lambda: bool(net.data(1)))
    grown = client.cwnd
    assert grown >= 20 * 1188  # slow start: +1 MTU per full-window SACK
    # A fast retransmit halves the window (never below 4 MTUs)...
    dropped: list[bytes] = []

    def drop_first_data(src: int, packet: bytes) -> bool:
        if src == 0 and not dropped and isinstance(parse(packet).chunks[-1], DataChunk):
            dropped.append(packet)
            return True
        return False

    net.drop = drop_first_data
    for _ in range(8):
        client.send(0, 53, bytes(1100), now=net.now)
    net.run_until(lambda: client.stats.fast_retransmits == 1)
    assert client.cwnd == max(grown // 2, 4 * 1188)
    # ...and a T3 timeout collapses it to one packet.
    net.run_until(lambda: len(net.data(1)) == 9)
    net.drop = lambda src, packet: src == 0 and isinstance(parse(packet).chunks[-1], DataChunk)
    client.send(0, 53, b"x", now=net.now)
    net.run_until(lambda: client.stats.t3_expirations == 1)
    assert client.cwnd == 1188


def test_t3_retransmission_backs_off_and_then_recovers() -> None:
    client, _server, net = connected_pair()
    net.drop = lambda src, packet: src == 0 and isinstance(parse(packet).chunks[-1], DataChunk)
    client.send(0, 51, b"hello", now=net.now)
    net.run_for(4.0)
    assert client.stats.t3_expirations == 2  # at +1 s and +3 s (RTO doubles)
    assert client.rto == 4.0
    net.drop = None
    net.run_until(lambda: bool(net.data(1)))
    assert net.data(1) == [StreamData(0, 51, b"hello")]


def test_unreachable_peer_closes_the_association() -> None:
    config = SctpConfig(max_retransmissions=3, rto_max=2.0)
    client, _server, net = connected_pair(config=config)
    net.drop = lambda src, packet: True
    client.send(0, 51, b"into the void", now=net.now)
    net.run_until(lambda: bool(net.of_type(0, Closed)), timeout=60)
    assert net.of_type(0, Closed) == [
        Closed("peer unreachable: 4 consecutive retransmission timeouts")
    ]
    assert client.state is AssociationState.CLOSED
    assert client.next_timer() is None


def test_heartbeats_when_idle_and_answers_to_peer_heartbeats() -> None:
    client, server, net = connected_pair()
    net.run_for(35.0)
    assert client.stats.heartbeats_sent == 1 and server.stats.heartbeats_sent == 1
    assert client.srtt == pytest.approx(0.04)
    assert client.rto == pytest.approx(0.4)  # clamped to rto_min
    assert not net.of_type(0, Closed)

    server2 = SctpAssociation()
    raw_handshake(server2)
    server2.receive(
        raw_packet(server2.local_tag, raw_chunk(4, 0, raw_param(1, b"opaque-info", pad=False))), 1.0
    )
    (reply,) = server2.datagrams_to_send(1.0)
    assert parse(reply).chunks == (HeartbeatAckChunk(((1, b"opaque-info"),)),)
    assert parse(reply).verification_tag == 77


def test_missed_heartbeats_fail_the_association() -> None:
    _client, _server, net = connected_pair(
        config=SctpConfig(max_retransmissions=2, heartbeat_interval=5.0)
    )
    net.drop = lambda src, packet: True
    net.run_until(lambda: bool(net.of_type(0, Closed)), timeout=100)
    assert net.of_type(0, Closed) == [
        Closed("peer unreachable: 3 consecutive retransmission timeouts")
    ]


def test_partial_reliability_abandons_and_forward_tsn_moves_on() -> None:
    client, server, net = connected_pair()
    assert client.peer_supports_partial_reliability
    lost = {"n": 0}

    def drop(src: int, packet: bytes) -> bool:
        chunks = parse(packet).chunks
        data = [c for c in chunks if isinstance(c, DataChunk) and c.user_data.startswith(b"lossy")]
        if src == 0 and data:
            lost["n"] += 1
            return True
        return False

    net.drop = drop
    # Each message fills its own packet, so the filter drops only the "lossy" ones: the
    # first fragment of a three-fragment message, and a whole unordered message.
    client.send(0, 53, b"lossy" + bytes(3000), max_retransmits=0, now=net.now)
    client.send(0, 53, b"after" + bytes(1100), max_retransmits=0, now=net.now)
    client.send(2, 53, b"lossy timed" + bytes(1100), ordered=False, lifetime=0.5, now=net.now)
    client.send(2, 53, b"fine" + bytes(1100), ordered=False, now=net.now)
    net.run_until(lambda: len(net.data(1)) == 2, timeout=10)
    assert sorted(e.data[:5] for e in net.data(1)) == [b"after", b"fine\x00"]
    # The first message was abandoned at its fast retransmit, releasing "after" at once.
    assert net.now < 0.5
    assert client.stats.abandoned_messages == 1
    net.run_for(3.0)
    # The timed message may be retransmitted until it expires, then is skipped at a T3.
    assert lost["n"] >= 2
    assert client.stats.abandoned_messages == 2
    assert server.stats.forward_tsn_received >= 2
    assert client.buffered_amount == 0 and not client._sent
    assert len(net.data(1)) == 2


def test_unknown_chunks_follow_their_type_bits() -> None:
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    # 0xC1: skip and report; the DATA after it is processed.
    server.receive(
        raw_packet(
            server.local_tag,
            raw_chunk(0xC1, 0, b"ab"),
            raw_chunk(0, 3, struct.pack("!IHHI", 1000, 0, 0, 51) + b"x"),
        ),
        1.0,
    )
    assert server.events() == [StreamData(0, 51, b"x")]
    errors = [
        c
        for p in server.datagrams_to_send(1.0)
        for c in parse(p).chunks
        if isinstance(c, ErrorChunk)
    ]
    assert errors[0].causes[0][0] == 6
    # 0x3F: stop processing silently; the DATA after it is ignored.
    server.receive(
        raw_packet(
            server.local_tag,
            raw_chunk(0x3F, 0, b""),
            raw_chunk(0, 3, struct.pack("!IHHI", 1001, 0, 1, 51) + b"y"),
        ),
        1.0,
    )
    assert server.events() == []
    assert server.stats.unknown_chunks == 2


# ---------------------------------------------------------------------------------------------
# Stream reset (RFC 6525)
# ---------------------------------------------------------------------------------------------


def test_stream_reset_both_directions_and_ssn_restart() -> None:
    client, server, net = connected_pair()
    for i in range(3):
        client.send(1, 51, b"before %d" % i, now=net.now)
    client.reset_streams([1], net.now)
    with pytest.raises(SctpStreamError, match="^stream 1 is being reset$"):
        client.send(1, 51, b"too early", now=net.now)
    net.run_until(lambda: bool(net.of_type(0, StreamResetCompleted)))
    assert net.of_type(0, StreamResetCompleted) == [StreamResetCompleted((1,), True)]
    assert net.of_type(1, StreamReset) == [StreamReset((1,))]
    # Data sent before the reset arrives before the reset event.
    kinds = [type(e).__name__ for e in net.events[1] if not isinstance(e, Connected)]
    assert kinds == ["StreamData", "StreamData", "StreamData", "StreamReset"]
    # The stream restarts at SSN 0 on both ends and keeps working.
    client.send(1, 51, b"after", now=net.now)
    net.run_until(lambda: len(net.data(1)) == 4)
    assert net.data(1)[-1] == StreamData(1, 51, b"after")
    server.reset_streams([1], net.now)
    net.run_until(lambda: bool(net.of_type(1, StreamResetCompleted)))
    assert net.of_type(0, StreamReset) == [StreamReset((1,))]


def test_stream_reset_waits_for_lost_data() -> None:
    client, _server, net = connected_pair()
    lose = {"on": True}

    def drop(src: int, packet: bytes) -> bool:
        return (
            lose["on"]
            and src == 0
            and any(
                isinstance(c, DataChunk) and c.user_data == b"lost once"
                for c in parse(packet).chunks
            )
        )

    net.drop = drop
    client.send(1, 51, b"lost once", now=net.now)
    net.run_for(0.01)
    client.reset_streams([1], net.now)
    net.run_for(0.1)
    # The peer answers "in progress" and defers the reset until it has the data.
    assert not net.of_type(1, StreamReset)
    assert not net.of_type(0, StreamResetCompleted)
    lose["on"] = False
    net.run_until(lambda: bool(net.of_type(0, StreamResetCompleted)), timeout=10)
    events = [e for e in net.events[1] if isinstance(e, (StreamData, StreamReset))]
    assert events == [StreamData(1, 51, b"lost once"), StreamReset((1,))]


def test_peer_reset_request_sequence_numbers() -> None:
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    server.receive(raw_data(server, 1000, b"x", sid=3), 1.0)

    def request(seq: int, last_tsn: int) -> list[ReconfigParam]:
        param = raw_param(13, struct.pack("!IIIH", seq, 0, last_tsn, 3), pad=False)
        server.receive(raw_packet(server.local_tag, raw_chunk(130, 0, param)), 1.0)
        return [
            p
            for pk in server.datagrams_to_send(1.0)
            for c in parse(pk).chunks
            if isinstance(c, ReconfigChunk)
            for p in c.params
        ]

    assert request(1000, 1000) == [ReconfigResponse(1000, 1)]
    assert request(1000, 1000) == [ReconfigResponse(1000, 1)]  # retransmission: same answer
    assert request(1005, 1000) == [ReconfigResponse(1005, 5)]  # bad sequence number
    assert request(1001, 1001) == [ReconfigResponse(1001, 6)]  # data 1001 not received yet
    assert [e for e in server.events() if isinstance(e, StreamReset)] == [StreamReset((3,))]
    server.receive(raw_data(server, 1001, b"y", sid=3, ssn=0), 1.1)  # SSN restarted
    replies = [
        p
        for pk in server.datagrams_to_send(1.1)
        for c in parse(pk).chunks
        if isinstance(c, ReconfigChunk)
        for p in c.params
    ]
    assert replies == [ReconfigResponse(1001, 1)]
    assert server.events() == [StreamData(3, 51, b"y"), StreamReset((3,))]


def test_reset_streams_needs_an_established_association() -> None:
    client = SctpAssociation(is_client=True)
    with pytest.raises(SctpStateError, match="^cannot reset streams in state closed$"):
        client.reset_streams([0], 0.0)


# ---------------------------------------------------------------------------------------------
# Shutdown and abort
# ---------------------------------------------------------------------------------------------


def test_graceful_shutdown_delivers_pending_data_first() -> None:
    client, server, net = connected_pair(loss=0.2, seed=11)
    client.send(0, 53, bytes(20000), now=net.now)
    client.close(net.now)
    assert client.state is AssociationState.SHUTDOWN_PENDING
    with pytest.raises(SctpStateError, match="^cannot send in state shutdown-pending$"):
        client.send(0, 51, b"late", now=net.now)
    net.run_until(lambda: bool(net.of_type(0, Closed) and net.of_type(1, Closed)), timeout=60)
    assert net.data(1) == [StreamData(0, 53, bytes(20000))]
    assert net.of_type(0, Closed) == [Closed("shutdown complete")]
    assert net.of_type(1, Closed) == [Closed("shutdown complete")]
    assert client.next_timer() is None and server.next_timer() is None


def test_abort_closes_both_sides_with_reasons() -> None:
    client, server, net = connected_pair()
    server.abort()
    assert server.events() == [Closed("aborted locally")]
    net.run_until(lambda: bool(net.of_type(0, Closed)))
    assert net.of_type(0, Closed) == [Closed("aborted by peer: cause 12 (aborted locally)")]
    # A closed association ignores everything.
    client.receive(net.sent[1][-1], net.now)
    assert client.stats.out_of_the_blue == 1


def test_close_before_established() -> None:
    client = SctpAssociation(is_client=True)
    client.start(0.0)
    client.close(0.0)
    assert client.events() == [Closed("closed before the association was established")]


# ---------------------------------------------------------------------------------------------
# Fuzzing the association
# ---------------------------------------------------------------------------------------------

fuzz_chunks: st.SearchStrategy[bytes] = st.one_of(
    st.builds(lambda t, f, b: raw_chunk(t, f, b), u8, u8, st.binary(max_size=40)),
    st.builds(
        lambda f, tsn, sid, ssn, p: raw_chunk(0, f, struct.pack("!IHHI", tsn, sid, ssn, 51) + p),
        st.integers(0, 15),
        st.integers(995, 1010) | u32,
        st.integers(0, 20),
        st.integers(0, 5),
        st.binary(min_size=1, max_size=30),
    ),
    st.builds(
        lambda cum, gaps: raw_chunk(
            3,
            0,
            struct.pack("!IIHH", cum, 5000, len(gaps), 0)
            + b"".join(struct.pack("!HH", *g) for g in gaps),
        ),
        u32,
        st.lists(st.tuples(u16, u16), max_size=4),
    ),
    st.builds(
        lambda c, s: raw_chunk(
            192, 0, struct.pack("!I", c) + b"".join(struct.pack("!HH", *x) for x in s)
        ),
        st.integers(995, 1010) | u32,
        st.lists(st.tuples(st.integers(0, 20), u16), max_size=3),
    ),
    st.builds(
        lambda p: raw_chunk(130, 0, p),
        st.sampled_from(
            [
                raw_param(13, struct.pack("!IIIH", 1000, 0, 1003, 1), pad=False),
                raw_param(13, struct.pack("!III", 1001, 0, 999), pad=False),
                raw_param(16, struct.pack("!II", 0, 1), pad=False),
                raw_param(14, struct.pack("!IH", 1000, 2), pad=False),
                raw_param(17, struct.pack("!IHH", 1000, 3, 0), pad=False),
            ]
        ),
    ),
    st.sampled_from(
        [
            raw_chunk(7, 0, struct.pack("!I", 0)),
            raw_chunk(8, 0, b""),
            raw_chunk(14, 0, b""),
            raw_chunk(6, 0, b""),
            raw_chunk(4, 0, raw_param(1, b"x")),
            raw_chunk(5, 0, b""),
            raw_chunk(11, 0, b""),
            raw_chunk(10, 0, bytes(80)),
            raw_chunk(9, 0, raw_param(3, bytes(4))),
        ]
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(fuzz_chunks, min_size=1, max_size=4), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_fuzzed_association_never_raises(packets: list[list[bytes]], tag_ok: list[bool]) -> None:
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    server.send(0, 51, b"outgoing", now=0.0)
    server.datagrams_to_send(0.0)
    now = 0.0
    for i, chunks_ in enumerate(packets):
        now += 0.05
        tag = server.local_tag if tag_ok[i] else 0
        server.receive(raw_packet(tag, *chunks_), now)
        server.receive(raw_packet(tag, *chunks_)[:-1], now)  # truncated
        for packet in server.datagrams_to_send(now):
            assert len(packet) <= 1188
            parse(packet)  # we only ever send valid packets
        if (t := server.next_timer()) is not None and t <= now + 1:
            server.handle_timer(t)
        server.events()
    assert server.stats.bad_packets >= len(packets)
    assert server._held_bytes >= 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_packets_never_crash_either_side(data: st.DataObject) -> None:
    client, server, net = connected_pair(seed=2)
    client.send(0, 53, bytes(5000), now=net.now)
    server.send(1, 51, b"x" * 100, now=net.now)
    rng = random.Random(data.draw(st.integers(0, 2**32)))

    def mutate(src: int, packet: bytes) -> bool:
        if rng.random() < 0.5:
            buf = bytearray(packet)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(12, len(buf))] = rng.randrange(256)
            buf[8:12] = struct.pack(
                "<I", google_crc32c.value(bytes(buf[:8]) + bytes(4) + bytes(buf[12:]))
            )
            net.assocs[1 - src].receive(bytes(buf), net.now)
        return False

    net.drop = mutate
    net.run_for(5.0)
