"""Whole calls through the host WebSocket API: our Python host client
(`signaling.client.HostClient`) relays between aiortc peers and the service,
as a chat server relays between browsers and rtcd. Media flows, mute stops
it, a screen share reaches the other side, leave sends close, and the rtcd_*
metrics move."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from aiortc_client import AiortcClient, ColorBarsTrack, ToneTrack, wait_for
from switchboard.signaling.client import HostClient
from switchboard.signaling.rtc import Message, MessageType
from switchboard.signaling.service import Service
from test_service import KEY, options

pytestmark = pytest.mark.interop


class RelayedPeer(AiortcClient):
    """An aiortc peer whose messages go through the host client, not to the
    RTC server directly."""

    def __init__(self, host: HostClient, session_id: str) -> None:
        self.host = host
        super().__init__(server=None, session_id=session_id, group_id="client1")  # type: ignore[arg-type]

    def send(self, mtype: int, data: bytes = b"") -> None:
        c = self.cfg
        asyncio.ensure_future(self.host.send_rtc(Message("", c.user_id, c.session_id, c.call_id, mtype, data)))

    async def join(self, *tracks, stream_id=None) -> None:  # type: ignore[no-untyped-def,override]
        await self.host.join(call_id=self.cfg.call_id, user_id=self.cfg.user_id, session_id=self.cfg.session_id)
        for t in tracks:
            self.pc.addTrack(t)
        await self.offer()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Service, HostClient, dict[str, RelayedPeer], list[str]]]:
    service = Service(options(tmp_path, allow_self_registration=True))
    await service.start()
    peers: dict[str, RelayedPeer] = {}
    closed: list[str] = []

    def on_rtc(msg: Message) -> None:
        peer = peers.get(msg.session_id)
        if peer is not None:
            asyncio.ensure_future(peer.on_server_message(msg))

    host = HostClient(f"http://127.0.0.1:{service.port}", "client1", KEY, on_rtc=on_rtc, on_close=closed.append)
    await host.connect()     # the connection is refused, so it registers, then connects
    try:
        yield service, host, peers, closed
    finally:
        for p in peers.values():
            await p.close()
        await host.close()
        await service.stop()


async def test_call_through_the_host_api(setup: tuple[Service, HostClient, dict[str, RelayedPeer], list[str]]) -> None:
    service, host, peers, closed = setup
    assert host.conn_id is not None or await asyncio.sleep(0.2) is None
    a, b = RelayedPeer(host, "sa"), RelayedPeer(host, "sb")
    peers.update(sa=a, sb=b)
    await a.join(ToneTrack(480))
    await b.join(ToneTrack(720))
    a.send(MessageType.UNMUTE)
    b.send(MessageType.UNMUTE)
    await wait_for(lambda: len(a.frequencies()) == 1 and len(b.frequencies()) == 1)
    assert abs(next(iter(a.frequencies().values())) - 720) < 10
    assert abs(next(iter(b.frequencies().values())) - 480) < 10
    sessions = await host.get_sessions("call1")
    assert sorted(s["SessionID"] for s in sessions) == ["sa", "sb"]

    # mute: forwarding of a's voice stops
    tid = next(iter(service.rtc.sessions["sa"].published.values())).layers[""]
    a.send(MessageType.MUTE)
    await asyncio.sleep(0.5)
    fwd = service.rtc.plane.track_stats(tid)["forwarded"]
    await asyncio.sleep(0.7)
    assert service.rtc.plane.track_stats(tid)["forwarded"] == fwd

    # screen share from b reaches a
    b.pc.addTrack(ColorBarsTrack())
    await b.pc.setLocalDescription(await b.pc.createOffer())
    stream_id = [l for l in b.pc.localDescription.sdp.split("\r\n") if l.startswith("a=msid:")][-1].split()[0][7:]
    b.send(MessageType.SCREEN_ON, json.dumps({"screenStreamID": stream_id}).encode())
    b.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": b.pc.localDescription.sdp}).encode())
    await wait_for(lambda: sum(a.video_frames.values()) > 5, timeout=40)

    # metrics present and moving
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{service.port}/metrics") as r:
            text = await r.text()
    def value(pattern: str) -> float:
        m = re.search(pattern + r" ([0-9.e+]+)", text)
        assert m, pattern
        return float(m.group(1))
    assert value(r'rtcd_rtc_sessions_total\{groupID="client1"\}') == 2
    assert value(r'rtcd_rtc_rtp_tracks_total\{direction="in",groupID="client1",type="audio/opus"\}') == 2
    assert value(r'rtcd_rtc_rtp_tracks_total\{direction="out",groupID="client1",type="audio/opus"\}') == 2
    assert value(r'rtcd_rtc_rtp_tracks_total\{direction="in",groupID="client1",type="video/VP8"\}') == 1
    assert value(r'rtcd_rtc_conn_states_total\{type="connected"\}') >= 2
    assert value(r'rtcd_rtc_connection_time_count\{groupID="client1"\}') >= 2
    assert value(r'rtcd_rtc_dc_open_time_count\{groupID="client1"\}') >= 2
    assert value(r'rtcd_rtc_rtp_tracks_writes_time_count\{groupID="",type="voice"\}') > 50
    assert value(r'rtcd_rtc_rtp_tracks_writes_time_count\{groupID="",type="screen"\}') > 5
    assert value(r'rtcd_ws_connections_total\{clientID="client1"\}') == 1
    assert value(r'rtcd_ws_messages_total\{clientID="client1",direction="in",type="rtc"\}') >= 6
    assert value(r'rtcd_ws_messages_total\{clientID="client1",direction="out",type="rtc"\}') >= 4
    assert value(r'rtcd_rtc_signaling_lock_grab_time_count\{groupID="client1"\}') >= 1
    assert value(r"rtcd_process_resident_memory_bytes") > 0
    assert value(r'switchboard_datagrams_total\{direction="out"\}') > 100
    print("\n".join(l for l in text.splitlines() if l.startswith(("rtcd_rtc", "rtcd_ws")) and "_bucket" not in l))

    # leave: close comes back through the host API, the other side's section is stopped
    await host.leave("sa")
    await wait_for(lambda: "sa" in closed, timeout=10)
    await wait_for(lambda: not service.rtc.sessions["sb"].subscriptions, timeout=10)
