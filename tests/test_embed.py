"""The embedded API: an in-process SFU for a Python host (group "default",
no HTTP hop), driven with aiortc peers, events through the async iterator."""

from __future__ import annotations

import asyncio
import json

import pytest

from aiortc_client import AiortcClient, ToneTrack
from switchboard.engine.mediaplane import MediaConfig
from switchboard.engine.transportserver import TransportConfig
from switchboard.signaling.embed import EmbeddedSFU, SfuEvent
from switchboard.signaling.rtc import Message, MessageType, RtcConfig

pytestmark = pytest.mark.interop


class EmbeddedPeer(AiortcClient):
    def __init__(self, sfu: EmbeddedSFU, session_id: str) -> None:
        self.sfu = sfu
        super().__init__(server=sfu.server, session_id=session_id)

    def send(self, mtype: int, data: bytes = b"") -> None:
        self.sfu.signal(self.cfg.session_id, mtype, data)

    async def join(self, *tracks, stream_id=None) -> None:  # type: ignore[no-untyped-def,override]
        self.sfu.join(call_id="room", user_id=self.cfg.user_id, session_id=self.cfg.session_id)
        for t in tracks:
            self.pc.addTrack(t)
        await self.offer()


async def test_embedded_call_and_events() -> None:
    config = RtcConfig(media=MediaConfig(addresses=("127.0.0.1",), port=0), transport=TransportConfig(),
                       local_ips=("127.0.0.1",))
    async with EmbeddedSFU(config) as sfu:
        peers = {"e1": EmbeddedPeer(sfu, "e1"), "e2": EmbeddedPeer(sfu, "e2")}
        events: list[SfuEvent] = []

        async def pump() -> None:
            async for ev in sfu.events():
                events.append(ev)
                if ev.kind == "rtc" and ev.session_id in peers:
                    cfg = peers[ev.session_id].cfg
                    await peers[ev.session_id].on_server_message(
                        Message(cfg.group_id, cfg.user_id, cfg.session_id, cfg.call_id, ev.type, ev.data))

        task = asyncio.ensure_future(pump())
        await peers["e1"].join(ToneTrack(610))
        await peers["e2"].join()
        peers["e1"].send(MessageType.UNMUTE)
        for _ in range(400):
            if len(peers["e2"].frequencies()) == 1:
                break
            await asyncio.sleep(0.05)
        assert abs(next(iter(peers["e2"].frequencies().values())) - 610) < 10
        assert [c.session_id for c in sfu.sessions("room")] == ["e1", "e2"]
        assert all(c.group_id == "default" for c in sfu.sessions("room"))
        assert any(e.kind == "rtc" and json.loads(e.data)["type"] == "answer" for e in events)
        sfu.leave("e1")
        await asyncio.sleep(0.1)
        assert any(e.kind == "close" and e.session_id == "e1" and e.reason == "leave" for e in events)
        task.cancel()
        for p in peers.values():
            await p.close()
