"""engine/transport.py timers: one loop timer per transport, none for far deadlines.

Every ping moves the SCTP heartbeat deadline (30 s out) and sets then clears T3; re-arming a
loop timer for each change cost two cancels and two timer creations per ping. Deadlines
further out than `FAR_TIMER` get no loop timer; the server's once-a-second sweep arms them
when they come near. What must hold: a near deadline always has its timer, at that time;
moving to a far one drops the timer; the sweep arms a far deadline before it is due.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from switchboard.engine.mediaplane import MediaPlane
from switchboard.engine.transport import FAR_TIMER, WebRtcTransport
from switchboard.engine.transportserver import TransportConfig, TransportServer


class _Listener:
    def transport_connected(self, transport: object) -> None: ...
    def transport_channel_open(self, transport: object, channel: object) -> None: ...
    def transport_message(self, transport: object, channel: object, data: object) -> None: ...
    def transport_closed(self, transport: object, reason: str) -> None: ...


class _Deadlines:
    """Stands in for the SCTP association: only its next deadline matters here."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.fired: list[float] = []

    def next_timer(self) -> float | None:
        return self.at

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        self.at = None


@pytest.fixture
async def transport(plane: MediaPlane) -> AsyncIterator[tuple[TransportServer, WebRtcTransport]]:
    server = TransportServer(plane, TransportConfig(tcp_addresses=()))
    await server.start()
    t = server.create_transport(_Listener())
    t.sctp = _Deadlines()  # type: ignore[assignment]
    try:
        yield server, t
    finally:
        await server.stop()


async def test_near_deadlines_get_a_timer_and_far_ones_none(
    transport: tuple[TransportServer, WebRtcTransport],
) -> None:
    server, t = transport
    fake = t.sctp
    assert isinstance(fake, _Deadlines)
    near = time.monotonic() + 0.05
    fake.at = near
    t._schedule()
    assert t._timer is not None and t._timer_at == near and t.far_deadline is None
    far = time.monotonic() + FAR_TIMER + 20
    fake.at = far
    t._schedule()  # the SACK cleared T3; only the heartbeat is left
    assert t._timer is None and t._timer_at is None and t.far_deadline == far
    fake.at = near = time.monotonic() + 0.05
    t._schedule()
    assert t._timer_at == near and t.far_deadline is None
    await asyncio.sleep(0.2)
    assert len(fake.fired) == 1 and fake.fired[0] >= near  # fired, not early


async def test_the_sweep_arms_a_far_deadline_before_it_is_due(
    transport: tuple[TransportServer, WebRtcTransport],
) -> None:
    server, t = transport
    fake = t.sctp
    assert isinstance(fake, _Deadlines)
    fake.at = time.monotonic() + FAR_TIMER + 0.5
    t._schedule()
    assert t._timer is None
    assert server._sweeper is not None
    server._sweeper.cancel()
    server._sweep()  # not near yet
    assert t._timer is None and t.far_deadline == fake.at
    # time passes: the deadline is now nearer than FAR_TIMER
    fake.at = t.far_deadline = time.monotonic() + FAR_TIMER - 1.0
    assert server._sweeper is not None
    server._sweeper.cancel()
    server._sweep()
    assert t._timer is not None and t._timer_at == fake.at and t.far_deadline is None


def test_far_timer_exceeds_the_sweep_period() -> None:
    assert FAR_TIMER > 1.0 + 1.0  # a deadline seen just above FAR_TIMER is armed in time
