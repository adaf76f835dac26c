"""engine/mediaplane.py: control events are handled in slices, with media read in between.

A burst of STUN/DTLS datagrams becomes one batch of events for Python. While Python handles
it, media waits in the socket, and its forwarding delay grows with the batch. The plane reads
the media sockets after every `EVENT_SLICE` seconds of handlers and lets the event loop run
after `EVENT_BATCH` seconds. Over real loopback sockets: a slow handler, RTP sent while it
runs, and what the subscriber has received by the time the batch ends.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from rtpkit import SrtpPeer
from switchboard.engine import mediaplane as mp
from switchboard.engine.mediaplane import EVENT_STUN, KIND_AUDIO, MediaEvent, MediaPlane

STUN = b"\x00\x01\x00\x00\x21\x12\xa4\x42"


def stun(i: int) -> bytes:
    return STUN + i.to_bytes(12, "big")


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def wait_for(predicate: object, timeout: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


def forwarding_pair(plane: MediaPlane) -> tuple[SrtpPeer, SrtpPeer]:
    pub, sub = SrtpPeer(plane), SrtpPeer(plane)
    tid = plane.publish(pub.sid, kind=KIND_AUDIO, clock_rate=48000, ssrc=0x5151)
    plane.subscribe(tid, sub.sid, 0x6161)
    return pub, sub


async def test_media_is_forwarded_in_the_middle_of_a_long_batch(
    plane: MediaPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mp, "EVENT_BATCH", 10.0)  # this test is about slices only
    pub, sub = forwarding_pair(plane)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    seen: list[bytes] = []
    forwarded_during_batch: list[int] = []

    def slow_handler(event: MediaEvent) -> None:
        if event.kind != EVENT_STUN:
            return
        seen.append(event.data)
        if len(seen) == 1:
            # media and more control datagrams arrive while the batch is being handled
            for seq in range(5):
                pub.send_rtp(ssrc=0x5151, seq=seq, ts=seq * 960, pt=111, payload=b"v" * 40)
            for i in range(100, 105):
                stranger.sendto(stun(i), pub.server)
        busy(0.0002)
        if len(seen) == 35:  # the last event of the first burst
            forwarded_during_batch.append(len(sub.recv_raw()))

    plane.add_event_handler(slow_handler)
    slices = plane.event_slices
    for i in range(35):
        stranger.sendto(stun(i), pub.server)
    await wait_for(lambda: len(seen) >= 40)
    # 35 events of >= 0.2 ms: several slices; the RTP sent during the first one was forwarded
    # before the batch ended, and the control datagrams that came with it joined the batch.
    assert plane.event_slices - slices >= 3
    assert forwarded_during_batch == [5]
    assert seen == [stun(i) for i in range(35)] + [stun(i) for i in range(100, 105)]
    stranger.close()


async def test_a_very_long_batch_lets_the_loop_run(
    plane: MediaPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After EVENT_BATCH seconds, what the slices read in waits for one loop iteration."""
    monkeypatch.setattr(mp, "EVENT_BATCH", 0.002)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    target = plane.socket_info[0].address
    seen: list[int] = []
    ticks: list[tuple[int, int]] = []  # (events handled, datagrams read) while the loop ran

    def handler(event: MediaEvent) -> None:
        if event.kind != EVENT_STUN:
            return
        seen.append(int.from_bytes(event.data[8:], "big"))
        if len(seen) == 1:  # a second burst lands while the first one is handled
            for i in range(30, 60):
                stranger.sendto(stun(i), target)
        busy(0.0003)

    async def ticker() -> None:
        while len(seen) < 60:
            ticks.append((len(seen), plane.global_stats()["rx_datagrams"]))
            await asyncio.sleep(0)

    plane.add_event_handler(handler)
    rx0 = plane.global_stats()["rx_datagrams"]
    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    for i in range(30):
        stranger.sendto(stun(i), target)
    await wait_for(lambda: len(seen) >= 60)
    await task
    assert seen == list(range(60))  # nothing lost, nothing reordered
    # the slices of the first batch read the second burst, and the loop ran before it was
    # handled
    assert (30, rx0 + 60) in ticks
    stranger.close()


async def test_a_handler_error_does_not_stop_the_batch(plane: MediaPlane) -> None:
    seen: list[bytes] = []

    def broken(event: MediaEvent) -> None:
        raise RuntimeError("handler bug")

    plane.add_event_handler(broken)
    plane.add_event_handler(lambda e: seen.append(e.data))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    for i in range(3):
        stranger.sendto(stun(i), plane.socket_info[0].address)
    await wait_for(lambda: len(seen) == 3)
    assert seen == [stun(0), stun(1), stun(2)]
    assert not plane._draining
    stranger.close()
