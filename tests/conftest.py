from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from switchboard.engine.mediaplane import MediaConfig, MediaPlane  # noqa: E402
from switchboard.engine.transportserver import TransportConfig  # noqa: E402
from switchboard.signaling.rtc import RtcConfig, RtcServer  # noqa: E402


@pytest.fixture
async def plane() -> AsyncIterator[MediaPlane]:
    p = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600))
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def loopback_rtc_config(**kw: object) -> RtcConfig:
    """An RTC server on 127.0.0.1 with ephemeral UDP and ICE-TCP ports."""
    return RtcConfig(
        media=MediaConfig(addresses=("127.0.0.1",), port=0),
        transport=TransportConfig(tcp_addresses=("127.0.0.1",), tcp_port=0),
        local_ips=("127.0.0.1",),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def rtc() -> AsyncIterator[tuple[RtcServer, object]]:
    """An RTC server and the Hub that routes its messages to aiortc clients;
    clients registered in ``hub.clients`` are closed afterwards."""
    from aiortc_client import Hub

    hub = Hub()
    server = RtcServer(loopback_rtc_config(), on_message=hub.on_message, on_close=hub.on_close)
    await server.start()
    try:
        yield server, hub
    finally:
        for c in hub.clients.values():
            await c.close()
        await server.stop()
