"""Tests for engine/datachannel.py: DCEP codec, channel bookkeeping, and interop with aiortc.

The interop tests run aiortc's RTCSctpTransport (the client, as a browser would be) against
our association over an in-memory pipe with random loss. aiortc uses real asyncio timers, so
they run on an event loop with a virtual clock: when nothing is ready the loop jumps to its
next timer instead of sleeping, so aiortc's 1-3 s retransmission timers cost no wall time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import selectors
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

import pytest
from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcsctptransport import RTCSctpCapabilities, RTCSctpTransport
from hypothesis import given
from hypothesis import strategies as st
from switchboard.engine.datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelState,
    DataChannel,
    DataChannelError,
    DataChannelEvent,
    DataChannelManager,
    DcepAck,
    DcepOpen,
    encode_dcep,
    parse_dcep,
)
from switchboard.engine.sctp import (
    Closed,
    Connected,
    DataChunk,
    OutgoingResetRequest,
    ReconfigChunk,
    SctpAssociation,
    SctpPacket,
)

Event: TypeAlias = DataChannelEvent | Connected | Closed


# ---------------------------------------------------------------------------------------------
# DCEP codec
# ---------------------------------------------------------------------------------------------

# What a browser sends for pc.createDataChannel("calls-dc"): reliable, ordered, priority 256.
CALLS_DC_OPEN = bytes.fromhex("03000100000000000008000063616c6c732d6463")


def test_dcep_open_roundtrip_is_byte_exact() -> None:
    message = parse_dcep(CALLS_DC_OPEN)
    assert message == DcepOpen(
        channel_type=0, priority=256, reliability=0, label="calls-dc", protocol=""
    )
    assert encode_dcep(message) == CALLS_DC_OPEN
    partial = DcepOpen(0x81, 512, 3, "lossy", "chat/1")
    data = bytes.fromhex("0381020000000003000500066c6f737379") + b"chat/1"
    assert encode_dcep(partial) == data
    assert parse_dcep(data) == partial


def test_dcep_ack_roundtrip() -> None:
    assert parse_dcep(b"\x02") == DcepAck()
    assert encode_dcep(DcepAck()) == b"\x02"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "DCEP message is empty"),
        (b"\x02\x00", "DATA_CHANNEL_ACK has an invalid length of 2 bytes"),
        (b"\x07", "unknown DCEP message type 7"),
        (b"\x03\x00\x01", "DATA_CHANNEL_OPEN is too short (3 bytes, need 12)"),
        (
            bytes.fromhex("030300000000000000000000"),
            "DATA_CHANNEL_OPEN has an unknown channel type 0x03",
        ),
        (
            CALLS_DC_OPEN[:-1],
            "DATA_CHANNEL_OPEN length 19 does not match label length 8 and protocol length 0",
        ),
        (
            CALLS_DC_OPEN + b"x",
            "DATA_CHANNEL_OPEN length 21 does not match label length 8 and protocol length 0",
        ),
    ],
)
def test_dcep_garbage_raises_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_dcep(data)
    assert str(info.value) == message


def test_dcep_label_must_be_utf8() -> None:
    with pytest.raises(ValueError, match="^DATA_CHANNEL_OPEN label or protocol is not UTF-8"):
        parse_dcep(bytes.fromhex("030001000000000000020000") + b"\xff\xfe")


@given(st.binary(max_size=64))
def test_dcep_parser_on_arbitrary_bytes(data: bytes) -> None:
    try:
        message = parse_dcep(data)
    except ValueError:
        return
    assert encode_dcep(message) == data


# ---------------------------------------------------------------------------------------------
# Our manager against our manager, fake clock
# ---------------------------------------------------------------------------------------------


def state_of(channel: DataChannel) -> ChannelState:
    """The channel's state, read through a call (mypy narrows attributes across asserts)."""
    return channel.state


class Side:
    def __init__(self, dtls_is_server: bool, active: bool) -> None:
        self.assoc = SctpAssociation(is_client=active)
        self.manager = DataChannelManager(self.assoc, dtls_is_server=dtls_is_server)
        self.events: list[Event] = []

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def messages(self) -> list[bytes | str]:
        return [e.data for e in self.of(ChannelMessage)]


class Link:
    """Client (DTLS client) and server sides joined by a lossy link on a fake clock."""

    def __init__(self, *, loss: float = 0.0, jitter: float = 0.0, seed: int = 1) -> None:
        self.client = Side(dtls_is_server=False, active=True)
        self.server = Side(dtls_is_server=True, active=False)
        self.sides = [self.client, self.server]
        self.loss, self.jitter = loss, jitter
        self.rng = random.Random(seed)
        self.now = 0.0
        self.queue: list[tuple[float, int, int, bytes]] = []
        self.seq = itertools.count()
        # rewrite(src_index, packet) -> the packet to deliver, or None to lose it.
        self.rewrite: Callable[[int, bytes], bytes | None] | None = None
        for side in self.sides:
            side.assoc.start(0.0)
        self.run_until(lambda: bool(self.client.of(Connected) and self.server.of(Connected)))

    def flush(self) -> None:
        for i, side in enumerate(self.sides):
            side.events.extend(side.manager.events(self.now))
            for packet in side.assoc.datagrams_to_send(self.now):
                if self.rng.random() < self.loss:
                    continue
                if self.rewrite is not None:
                    rewritten = self.rewrite(i, packet)
                    if rewritten is None:
                        continue
                    packet = rewritten
                when = self.now + 0.02 + self.rng.uniform(0, self.jitter)
                heapq.heappush(self.queue, (when, next(self.seq), 1 - i, packet))
            side.events.extend(side.manager.events(self.now))

    def run_until(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        end = self.now + timeout
        while True:
            self.flush()
            if predicate():
                return
            if self.now > end:
                raise AssertionError(f"timed out at t={self.now:.3f}")
            times = [self.queue[0][0]] if self.queue else []
            times += [t for s in self.sides if (t := s.assoc.next_timer()) is not None]
            self.now = max(self.now, min(times))
            while self.queue and self.queue[0][0] <= self.now:
                _, _, dst, packet = heapq.heappop(self.queue)
                self.sides[dst].assoc.receive(packet, self.now)
                self.flush()
            for side in self.sides:
                t = side.assoc.next_timer()
                if t is not None and t <= self.now:
                    side.assoc.handle_timer(self.now)


def test_channels_open_both_ways_with_dcep_and_id_parity() -> None:
    link = Link()
    c, s = link.client, link.server
    dc = c.manager.open_channel("calls-dc", now=link.now)
    assert dc.stream_id == 0 and dc.state is ChannelState.CONNECTING
    dc2 = c.manager.open_channel(
        "second", protocol="p", ordered=False, max_retransmits=2, priority=512, now=link.now
    )
    assert dc2.stream_id == 2
    sdc = s.manager.open_channel("from-server", max_packet_lifetime=1500, now=link.now)
    assert sdc.stream_id == 1
    link.run_until(lambda: len(s.of(ChannelOpened)) == 3 and len(c.of(ChannelOpened)) == 3)
    remote = {e.channel.label: e.channel for e in s.of(ChannelOpened)}
    assert remote["calls-dc"].stream_id == 0 and remote["calls-dc"].ordered
    second = remote["second"]
    assert (
        second.stream_id,
        second.protocol,
        second.ordered,
        second.max_retransmits,
        second.priority,
    ) == (2, "p", False, 2, 512)
    assert remote["from-server"] is sdc
    theirs = next(e.channel for e in c.of(ChannelOpened) if e.channel.label == "from-server")
    assert theirs.stream_id == 1 and theirs.max_packet_lifetime == 1500
    assert state_of(dc) is ChannelState.OPEN and state_of(sdc) is ChannelState.OPEN
    assert s.manager.open_channel("next", now=link.now).stream_id == 3


def test_text_binary_and_empty_messages_both_ways_over_a_lossy_link() -> None:
    link = Link(loss=0.1, jitter=0.02, seed=4)
    c, s = link.client, link.server
    dc = c.manager.open_channel("calls-dc", now=link.now)
    # Sending before the ACK is allowed; those messages go ordered after the OPEN.
    c.manager.send(dc, "early", link.now)
    link.run_until(lambda: bool(s.of(ChannelOpened)))
    server_dc = s.of(ChannelOpened)[0].channel
    big = random.Random(1).randbytes(100 * 1024)
    sent: list[bytes | str] = ["ping", b"\x00\x01\x02", "", b"", "héllo ✓", big]
    for item in sent:
        c.manager.send(dc, item, link.now)
        s.manager.send(server_dc, item, link.now)
    link.run_until(lambda: len(s.messages()) == 7 and len(c.messages()) == 6, timeout=120)
    assert s.messages() == ["early", *sent]
    assert c.messages() == sent
    assert all(e.channel is server_dc for e in s.of(ChannelMessage))
    assert s.manager.stats.bad_dcep == 0


def test_close_by_either_side_resets_the_stream_and_frees_the_id() -> None:
    link = Link(loss=0.1, seed=9)
    c, s = link.client, link.server
    dc = c.manager.open_channel("calls-dc", now=link.now)
    link.run_until(lambda: bool(s.of(ChannelOpened)) and dc.state is ChannelState.OPEN)
    server_dc = s.of(ChannelOpened)[0].channel
    c.manager.send(dc, "last words", link.now)
    c.manager.close_channel(dc, link.now)
    assert dc.state is ChannelState.CLOSING
    with pytest.raises(DataChannelError, match=r"^channel 'calls-dc' \(stream 0\) is closing$"):
        c.manager.send(dc, "too late", link.now)
    link.run_until(lambda: bool(c.of(ChannelClosed) and s.of(ChannelClosed)))
    assert s.messages() == ["last words"]
    assert c.of(ChannelClosed) == [ChannelClosed(dc)] and s.of(ChannelClosed) == [
        ChannelClosed(server_dc)
    ]
    assert dc.state is server_dc.state is ChannelState.CLOSED
    assert c.manager.channels == [] and s.manager.channels == []
    # The server closes the next one; the id is reused and SSNs start over.
    again = c.manager.open_channel("again", now=link.now)
    assert again.stream_id == 2
    link.run_until(lambda: len(s.of(ChannelOpened)) == 2)
    server_again = s.of(ChannelOpened)[1].channel
    s.manager.close_channel(server_again, link.now)
    link.run_until(lambda: len(c.of(ChannelClosed)) == 2 and len(s.of(ChannelClosed)) == 2)
    reuse = c.manager.open_channel("reuse", now=link.now)
    link.run_until(lambda: len(s.of(ChannelOpened)) == 3 and reuse.state is ChannelState.OPEN)
    c.manager.send(reuse, "works", link.now)
    link.run_until(lambda: s.messages()[-1:] == ["works"])


def test_a_closing_channel_waits_for_the_peers_reset() -> None:
    link = Link()
    c, s = link.client, link.server
    dc = c.manager.open_channel("calls-dc", now=link.now)
    link.run_until(lambda: dc.state is ChannelState.OPEN)

    def strip_server_reset_requests(src: int, packet: bytes) -> bytes | None:
        parsed = SctpPacket.parse(packet)
        kept = tuple(
            chunk
            for chunk in parsed.chunks
            if not (
                src == 1
                and isinstance(chunk, ReconfigChunk)
                and any(isinstance(p, OutgoingResetRequest) for p in chunk.params)
            )
        )
        if not kept:
            return None
        return SctpPacket(
            parsed.source_port, parsed.destination_port, parsed.verification_tag, kept
        ).serialize()

    link.rewrite = strip_server_reset_requests
    c.manager.close_channel(dc, link.now)
    # Our reset is acknowledged, but the peer's own reset never arrives.
    link.run_until(
        lambda: (
            s.of(ChannelClosed) == []
            and c.assoc._reconfig_request is None
            and bool(s.assoc._reconfig_request)
        )
    )
    link.run_until(lambda: link.now > 0.5)
    assert dc.state is ChannelState.CLOSING and not c.of(ChannelClosed)
    link.rewrite = None  # the server's retransmitted request gets through
    link.run_until(lambda: bool(c.of(ChannelClosed) and s.of(ChannelClosed)))
    assert state_of(dc) is ChannelState.CLOSED


def test_garbage_is_counted_not_raised() -> None:
    link = Link()
    c, s = link.client, link.server
    dc = c.manager.open_channel("calls-dc", now=link.now)
    link.run_until(lambda: dc.state is ChannelState.OPEN)
    assoc = c.assoc
    assoc.send(0, 50, b"\x03garbage", now=link.now)  # malformed DCEP
    assoc.send(0, 50, b"\x02", now=link.now)  # ACK for a channel that is already open
    assoc.send(0, 51, b"\xff\xfe", now=link.now)  # text that is not UTF-8
    assoc.send(0, 54, b"old", now=link.now)  # deprecated PPID
    assoc.send(8, 53, b"nobody", now=link.now)  # no channel on stream 8
    assoc.send(0, 50, CALLS_DC_OPEN, now=link.now)  # OPEN on a stream already in use
    c.manager.send(dc, "still fine", link.now)
    link.run_until(lambda: s.messages() == ["still fine"])
    stats = s.manager.stats
    assert (stats.bad_dcep, stats.unexpected_dcep, stats.bad_messages, stats.unknown_stream) == (
        1,
        2,
        2,
        1,
    )
    assert len(s.of(ChannelOpened)) == 1


def test_association_loss_closes_every_channel() -> None:
    link = Link()
    c, s = link.client, link.server
    channels = [c.manager.open_channel(f"dc{i}", now=link.now) for i in range(3)]
    link.run_until(lambda: all(ch.state is ChannelState.OPEN for ch in channels))
    c.assoc.abort()
    link.run_until(lambda: bool(s.of(Closed)))
    assert [e.channel.label for e in s.of(ChannelClosed)] == ["dc0", "dc1", "dc2"]
    assert [e.channel for e in c.of(ChannelClosed)] == channels
    assert s.of(Closed) == [Closed("aborted by peer: cause 12 (aborted locally)")]


def test_api_errors() -> None:
    assoc = SctpAssociation()
    manager = DataChannelManager(assoc, dtls_is_server=True)
    with pytest.raises(DataChannelError, match="^the SCTP association is not established$"):
        manager.open_channel("x", now=0.0)
    with pytest.raises(
        DataChannelError, match="^set max_retransmits or max_packet_lifetime, not both$"
    ):
        manager.open_channel("x", max_retransmits=1, max_packet_lifetime=1, now=0.0)
    negotiated = manager.add_negotiated_channel(5, "neg")
    assert negotiated.state is ChannelState.OPEN and negotiated.negotiated
    with pytest.raises(DataChannelError, match="^stream id 5 is already in use$"):
        manager.add_negotiated_channel(5, "neg")
    with pytest.raises(DataChannelError, match="^cannot send in state closed$"):
        manager.send(negotiated, "x", 0.0)
    stranger = DataChannel(7, "stranger")
    with pytest.raises(DataChannelError, match=r"^channel 'stranger' \(stream 7\) is connecting$"):
        manager.send(stranger, "x", 0.0)
    # Closing without an association closes locally.
    manager.close_channel(negotiated, 0.0)
    assert manager.events(0.0) == [ChannelClosed(negotiated)]


def test_negotiated_channels_skip_dcep() -> None:
    link = Link()
    c, s = link.client, link.server
    a = c.manager.add_negotiated_channel(10, "neg")
    b = s.manager.add_negotiated_channel(10, "neg")
    c.manager.send(a, b"raw", link.now)
    link.run_until(lambda: s.messages() == [b"raw"])
    assert s.of(ChannelMessage)[0].channel is b
    assert not s.of(ChannelOpened)


# ---------------------------------------------------------------------------------------------
# Interop with aiortc, on a virtual-clock event loop
# ---------------------------------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: instead of waiting ``timeout`` it advances the loop's virtual clock."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events:
            if timeout is None:
                events = super().select(0.01)
            elif timeout > 0:
                self._loop.virtual_now += timeout
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual_now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self.virtual_now


class FakeDtlsTransport:
    """What RTCSctpTransport needs from RTCDtlsTransport: a role, a state, send/receive."""

    state = "connected"

    def __init__(self, role: str, send: Callable[[bytes], None]) -> None:
        self._role = role
        self._send = send
        self.receiver: Any = None

    def _register_data_receiver(self, receiver: Any) -> None:
        self.receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        self.receiver = None

    async def _send_data(self, data: bytes) -> None:
        self._send(data)


class Pipe:
    """Our association (DTLS server) <-> aiortc's RTCSctpTransport (DTLS client)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, active: bool, loss: float, seed: int
    ) -> None:
        self.loop = loop
        self.rng = random.Random(seed)
        self.loss = loss
        self.delay = 0.01
        self.assoc = SctpAssociation(is_client=active)
        self.manager = DataChannelManager(self.assoc, dtls_is_server=True)
        self.events: list[Event] = []
        self.timer: asyncio.TimerHandle | None = None
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.to_ours: deque[bytes] = deque()
        self.to_aiortc: deque[bytes] = deque()
        self.dtls = FakeDtlsTransport("client", self._from_aiortc)
        self.theirs = RTCSctpTransport(self.dtls)  # type: ignore[arg-type]
        self.consumer = loop.create_task(self._feed_aiortc())
        self.packets_to_aiortc = 0
        self.packets_from_aiortc = 0
        # How often aiortc sent each DATA TSN: more than once means it retransmitted.
        self.aiortc_data_tsns: dict[int, int] = {}
        # Chunk type names each side put on the wire.
        self.ours_sent: set[str] = set()
        self.aiortc_sent: set[str] = set()

    def _lost(self) -> bool:
        return self.rng.random() < self.loss

    def _from_aiortc(self, data: bytes) -> None:
        self.packets_from_aiortc += 1
        for chunk in SctpPacket.parse(data, accept_zero_checksum=False).chunks:
            self.aiortc_sent.add(type(chunk).__name__)
            if isinstance(chunk, DataChunk):
                self.aiortc_data_tsns[chunk.tsn] = self.aiortc_data_tsns.get(chunk.tsn, 0) + 1
        if not self._lost():
            self.to_ours.append(data)
            self.loop.call_later(self.delay, self._receive)

    def _receive(self) -> None:
        # FIFO: asyncio's timer heap does not keep equal deadlines in order, so each callback
        # takes the oldest packet rather than its own.
        self.assoc.receive(self.to_ours.popleft(), self.loop.time())
        self.pump()

    def _deliver_to_aiortc(self) -> None:
        self.inbox.put_nowait(self.to_aiortc.popleft())

    def _on_timer(self) -> None:
        self.timer = None
        self.assoc.handle_timer(self.loop.time())
        self.pump()

    def pump(self) -> None:
        now = self.loop.time()
        self.events.extend(self.manager.events(now))
        for packet in self.assoc.datagrams_to_send(now):
            assert len(packet) <= 1188
            for chunk in SctpPacket.parse(packet, accept_zero_checksum=False).chunks:
                self.ours_sent.add(type(chunk).__name__)
            self.packets_to_aiortc += 1
            if not self._lost():
                self.to_aiortc.append(packet)
                self.loop.call_later(self.delay, self._deliver_to_aiortc)
        self.events.extend(self.manager.events(now))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadline = self.assoc.next_timer()
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    async def _feed_aiortc(self) -> None:
        while True:
            packet = await self.inbox.get()
            if self.dtls.receiver is not None:
                await self.dtls.receiver._handle_data(packet)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def until(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        end = self.loop.time() + timeout
        while not predicate():
            if self.loop.time() > end:
                raise AssertionError(f"timed out at virtual t={self.loop.time():.2f}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await self.theirs.stop()
        self.consumer.cancel()
        if self.timer is not None:
            self.timer.cancel()


def run_virtual(
    scenario: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None]],
) -> float:
    """Run ``scenario`` on a virtual-clock loop; return the wall time it took."""
    loop = VirtualClockLoop()
    started = time.monotonic()
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(loop), timeout=600))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return time.monotonic() - started


async def calls_dc_scenario(
    loop: asyncio.AbstractEventLoop, *, active: bool, loss: float, seed: int
) -> Pipe:
    pipe = Pipe(loop, active=active, loss=loss, seed=seed)
    pipe.assoc.start(loop.time())
    pipe.pump()
    await pipe.theirs.start(RTCSctpCapabilities(maxMessageSize=262144), 5000)
    # aiortc, as the browser, opens calls-dc.
    channel = RTCDataChannel(pipe.theirs, RTCDataChannelParameters(label="calls-dc"))
    their_messages: list[bytes | str] = []
    channel.on("message", their_messages.append)
    await pipe.until(lambda: bool(pipe.of(ChannelOpened)))
    ours: DataChannel = pipe.of(ChannelOpened)[0].channel
    assert (ours.label, ours.stream_id, ours.ordered, ours.protocol) == ("calls-dc", 0, True, "")
    await pipe.until(lambda: channel.readyState == "open")

    big_up = random.Random(seed).randbytes(100 * 1024)
    big_down = big_up[::-1]
    up: list[bytes | str] = ["ping", b"\x01\x02\x03", "", b"", big_up, "after the big one"]
    down: list[bytes | str] = ["pong", b"\xff" * 10, "", b"", big_down, "done"]
    for item in up:
        channel.send(item)
    for item in down:
        pipe.manager.send(ours, item, loop.time())
    pipe.pump()
    await pipe.until(
        lambda: len(pipe.of(ChannelMessage)) == len(up) and len(their_messages) == len(down)
    )
    assert [e.data for e in pipe.of(ChannelMessage)] == up
    assert their_messages == down

    # The browser closes the channel: stream reset both ways.
    channel.close()
    await pipe.until(lambda: bool(pipe.of(ChannelClosed)) and channel.readyState == "closed")
    assert pipe.of(ChannelClosed) == [ChannelClosed(ours)]
    assert pipe.manager.channels == []
    return pipe


@pytest.mark.interop
@pytest.mark.parametrize("active", [False, True], ids=["passive", "init-collision"])
def test_aiortc_client_calls_dc_with_loss(active: bool) -> None:
    result: dict[str, Pipe] = {}

    async def scenario(loop: asyncio.AbstractEventLoop) -> None:
        pipe = await calls_dc_scenario(loop, active=active, loss=0.1, seed=21 if active else 5)
        result["pipe"] = pipe
        # The server can open a channel too (odd id); aiortc acknowledges it.
        their_channels: list[RTCDataChannel] = []
        pipe.theirs.on("datachannel", their_channels.append)
        mine = pipe.manager.open_channel("server-dc", now=loop.time())
        assert mine.stream_id == 1
        pipe.pump()
        await pipe.until(lambda: mine.state is ChannelState.OPEN and bool(their_channels))
        assert their_channels[0].label == "server-dc" and their_channels[0].id == 1
        got: list[bytes | str] = []
        their_channels[0].on("message", got.append)
        pipe.manager.send(mine, "hello from the SFU", loop.time())
        pipe.pump()
        await pipe.until(lambda: got == ["hello from the SFU"])
        pipe.loss = 0.0  # so aiortc's single ABORT arrives
        await pipe.close()
        await pipe.until(lambda: bool(pipe.of(Closed)))
        assert pipe.of(Closed) == [Closed("aborted by peer")]

    wall = run_virtual(scenario)
    pipe = result["pipe"]
    assert wall < 15.0
    assert pipe.assoc.stats.bad_packets == 0
    # Loss really happened and was repaired in both directions.
    assert pipe.assoc.stats.retransmissions > 0
    assert max(pipe.aiortc_data_tsns.values()) > 1
    # aiortc always sends INIT; when we do too, both sides also answer with INIT-ACK.
    assert "InitChunk" in pipe.aiortc_sent
    assert ("InitChunk" in pipe.ours_sent) is active
    assert ("InitAckChunk" in pipe.aiortc_sent) is active
    assert {"ReconfigChunk", "SackChunk", "CookieAckChunk"} <= pipe.ours_sent


@pytest.mark.interop
def test_aiortc_lossless_exchange_needs_no_retransmission() -> None:
    result: dict[str, Pipe] = {}

    async def scenario(loop: asyncio.AbstractEventLoop) -> None:
        result["pipe"] = await calls_dc_scenario(loop, active=False, loss=0.0, seed=3)
        await result["pipe"].close()

    assert run_virtual(scenario) < 15.0
    pipe = result["pipe"]
    assert pipe.assoc.stats.retransmissions == 0
    assert pipe.assoc.stats.t3_expirations == 0
    assert pipe.assoc.stats.duplicate_tsns == 0


def test_virtual_clock_loop_jumps_over_sleeps() -> None:
    async def scenario(loop: asyncio.AbstractEventLoop) -> None:
        t0 = loop.time()
        await asyncio.sleep(300)
        assert loop.time() - t0 == pytest.approx(300)

    assert run_virtual(scenario) < 1.0
