"""The SCTP association's fast paths against its general path (engine/sctp.py).

``SctpAssociation._receive_single`` handles an established association's lone DATA or SACK
chunk without building packet objects; ``datagrams_to_send`` returns early when nothing can
be sent, packs a gap-free SACK directly and builds a packet that needs no splitting without
the packet builder. All must be invisible: here every input goes to two identical associations,
one with the fast paths and one without, and everything observable must agree (events,
counters, packets sent, timers, acknowledgement state). ``os.urandom`` is made deterministic
so that twins and the two runs of a simulated link draw the same tags, TSNs and nonces.
"""

from __future__ import annotations

import copy
import random
import struct
from collections.abc import Iterator

import google_crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard.engine import sctp as sctp_mod
from switchboard.engine.sctp import SctpAssociation, StreamData
from test_sctp import connected_pair, fuzz_chunks, raw_chunk, raw_data, raw_handshake, raw_packet


@pytest.fixture(autouse=True)
def deterministic_urandom(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Twins must draw the same heartbeat nonces (a constant, not zero: tags are nonzero)."""
    monkeypatch.setattr(sctp_mod.os, "urandom", lambda n: b"\x5a" * n)
    yield


def general_only(assoc: SctpAssociation) -> SctpAssociation:
    """The same association with the shortcuts switched off: the single-chunk receive path,
    the one-packet send path and the directly packed SACK."""
    assoc._receive_single = lambda data, now: False  # type: ignore[method-assign]
    assoc._one_packet = lambda chunks, tag: None  # type: ignore[method-assign]
    assoc._encoded_sack = lambda: sctp_mod.encode_chunk(assoc._build_sack())  # type: ignore[method-assign]
    return assoc


def observable(assoc: SctpAssociation) -> tuple[object, ...]:
    return (
        assoc.state,
        assoc.stats,
        assoc.next_timer(),
        assoc._peer_cum_tsn,
        sorted(assoc._received_above),
        assoc._held_bytes,
        assoc._cum_ack,
        assoc._flight_size,
        assoc._peer_rwnd,
        assoc._cwnd,
        assoc._srtt,
        assoc._sack_due,
        assoc._sack_now,
        sorted(assoc._reassembly),
        dict(assoc._in_ssn),
    )


def feed_both(fast: SctpAssociation, slow: SctpAssociation, packet: bytes, now: float) -> None:
    fast.receive(packet, now)
    slow.receive(packet, now)
    assert fast.datagrams_to_send(now) == slow.datagrams_to_send(now)
    assert fast.events() == slow.events()
    assert observable(fast) == observable(slow)


def twins() -> tuple[SctpAssociation, SctpAssociation]:
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    return server, general_only(copy.deepcopy(server))


def test_fast_path_takes_the_common_packets() -> None:
    """The fast path really runs (this file would prove nothing otherwise)."""
    server = SctpAssociation()
    raw_handshake(server, tsn=1000)
    taken: list[bool] = []
    real = server._receive_single

    def spy(data: bytes, now: float) -> bool:
        taken.append(real(data, now))
        return taken[-1]

    server._receive_single = spy  # type: ignore[method-assign]
    server.receive(raw_data(server, 1000, b"\x01", ppid=53), 0.1)
    server.send(0, 53, b"\x02", now=0.1)
    [pong] = server.datagrams_to_send(0.1)
    assert [type(c).__name__ for c in sctp_mod.SctpPacket.parse(pong).chunks] == [
        "SackChunk",
        "DataChunk",
    ]
    tag = server.local_tag
    sack = struct.pack("!IIHH", server._next_tsn - 1, 1 << 20, 0, 0)
    server.receive(raw_packet(tag, raw_chunk(3, 0, sack)), 0.3)
    # a SACK with a gap block and a bundled packet go the general way
    gap_sack = struct.pack("!IIHHHH", 5, 1 << 20, 1, 0, 2, 2)
    server.receive(raw_packet(tag, raw_chunk(3, 0, gap_sack)), 0.3)
    a = raw_chunk(0, 3, struct.pack("!IHHI", 1001, 0, 1, 51) + b"a")
    b = raw_chunk(0, 3, struct.pack("!IHHI", 1002, 0, 2, 51) + b"b")
    server.receive(raw_packet(tag, a, b), 0.3)
    assert taken == [True, True, False, False]
    assert [e.data for e in server.events() if isinstance(e, StreamData)] == [b"\x01", b"a", b"b"]
    assert server._sent == type(server._sent)()  # the SACK acknowledged the Pong


CASES = {
    "in order": [(1000, 3, b"x"), (1001, 3, b"y")],
    "duplicate": [(1000, 3, b"x"), (1000, 3, b"x")],
    "gap then fill": [(1002, 3, b"c"), (1001, 3, b"b"), (1000, 3, b"a")],
    "fragments": [(1000, 2, b"he"), (1001, 0, b"ll"), (1002, 1, b"o")],
    "unordered": [(1000, 7, b"u"), (1002, 7, b"w"), (1001, 7, b"v")],
    "immediate": [(1000, 11, b"i")],
    "far ahead": [(1000 + 0x10000, 3, b"far")],
    "old": [(999, 3, b"old")],
}


@pytest.mark.parametrize("name", list(CASES))
def test_data_sequences_agree(name: str) -> None:
    fast, slow = twins()
    now = 0.0
    ssn = 0
    for tsn, flags, payload in CASES[name]:
        now += 0.01
        feed_both(fast, slow, raw_data(fast, tsn, payload, ssn=ssn, flags=flags), now)
        if flags & 1:
            ssn += 1
    for t in (now + 0.25, now + 31.0):
        fast.handle_timer(t)
        slow.handle_timer(t)
        assert fast.datagrams_to_send(t) == slow.datagrams_to_send(t)


def test_bad_packets_are_counted_the_same() -> None:
    fast, slow = twins()
    good = raw_data(fast, 1000, b"payload")
    bad_crc = good[:8] + bytes([good[8] ^ 1]) + good[9:]
    tag = fast.local_tag
    bad_tag = raw_packet(tag ^ 1, raw_chunk(0, 3, struct.pack("!IHHI", 1000, 0, 0, 51) + b"x"))
    body = struct.pack("!HHI", 5001, 5000, fast.local_tag) + bytes(4) + good[12:]
    bad_ports = body[:8] + struct.pack("<I", google_crc32c.value(body)) + body[12:]
    no_user_data = raw_packet(tag, raw_chunk(0, 3, struct.pack("!IHHI", 1000, 0, 0, 51)))
    short_data = raw_packet(tag, raw_chunk(0, 3, struct.pack("!IHH", 1000, 0, 0)))
    bad_stream = raw_data(fast, 1000, b"s", sid=40)
    short_sack = raw_packet(tag, raw_chunk(3, 0, struct.pack("!II", 1, 2)))
    sack_beyond = raw_packet(tag, raw_chunk(3, 0, struct.pack("!IIHH", 12345, 1 << 20, 0, 0)))
    zero_checksum = good[:8] + b"\0\0\0\0" + good[12:]
    trailing = good + b"\0\0\0\0\0"
    for i, packet in enumerate(
        [bad_crc, bad_tag, bad_ports, no_user_data, short_data, bad_stream, short_sack,
         sack_beyond, zero_checksum, trailing, good]
    ):
        feed_both(fast, slow, packet, 0.1 + i / 100)
    assert fast.stats.bad_packets >= 3 and fast.stats.bad_verification_tag == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(fuzz_chunks, min_size=1, max_size=2), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_fuzzed_packets_agree(packets: list[list[bytes]], tag_ok: list[bool]) -> None:
    fast, slow = twins()
    for a in (fast, slow):
        a.send(0, 51, b"outgoing", now=0.0)
    assert fast.datagrams_to_send(0.0) == slow.datagrams_to_send(0.0)
    now = 0.0
    for i, chunks in enumerate(packets):
        now += 0.05
        tag = fast.local_tag if tag_ok[i] else 0
        feed_both(fast, slow, raw_packet(tag, *chunks), now)
        t = fast.next_timer()
        assert t == slow.next_timer()
        if t is not None and t <= now + 1:
            fast.handle_timer(t)
            slow.handle_timer(t)
            assert fast.datagrams_to_send(t) == slow.datagrams_to_send(t)
            assert fast.events() == slow.events()


def run_link(fast: bool, seed: int) -> tuple[list[list[bytes]], list[list[object]]]:
    """A lossy, reordering link carrying messages both ways for 20 simulated seconds."""
    random.seed(seed)
    client, server, net = connected_pair(loss=0.1, jitter=0.03, seed=seed)
    if not fast:
        general_only(client)
        general_only(server)
    rng = random.Random(seed)
    for _ in range(40):
        sender = client if rng.random() < 0.5 else server
        size = rng.choice([1, 20, 1500, 4000])
        sender.send(rng.randrange(3), 53, bytes(size), ordered=rng.random() < 0.8, now=net.now)
        net.run_for(rng.uniform(0.05, 0.5))
    net.run_for(20.0)
    return net.sent, [list(e) for e in net.events]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_link_is_byte_identical_with_and_without_fast_paths(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(sctp_mod.os, "urandom", lambda n: rng.randbytes(n))
    sent_fast, events_fast = run_link(True, seed)
    rng.seed(seed)
    sent_slow, events_slow = run_link(False, seed)
    assert events_fast == events_slow
    assert sent_fast == sent_slow
    assert sum(isinstance(e, StreamData) for side in events_fast for e in side) == 40


@pytest.mark.parametrize("sizes", [[1, 2, 3, 4], [1144], [1145], [1160], [1000, 100, 40], [500, 600], [300] * 6])
def test_queued_messages_are_packed_the_same(sizes: list[int]) -> None:
    """Several queued messages, with a SACK due, in one call: the one-packet shortcut must
    give what the builder gives, up to and across the packet size limit (1188 bytes: a
    12-byte header, a 16-byte SACK, then DATA chunks of 16 + payload, padded)."""
    fast, slow = twins()
    for a in (fast, slow):
        a.receive(raw_data(a, 1000, b"x"), 0.1)  # a SACK becomes due
        for i, size in enumerate(sizes):
            a.send(i % 3, 53, bytes([i]) * size, now=0.1)
    out = fast.datagrams_to_send(0.1)
    assert out == slow.datagrams_to_send(0.1)
    assert all(len(p) <= 1188 for p in out)
    assert observable(fast) == observable(slow)
