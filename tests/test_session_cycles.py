"""Ended sessions are freed by reference counting, not by the garbage collector
(engine/transport.py `WebRtcTransport._release`, engine/dtls.py `DtlsEndpoint.release`,
signaling/session.py `RtcSession.close`).

A full collection walks every tracked object and holds the event loop, so media, while it
runs: with 800 sessions that is 80-160 ms on a small VM. Before these changes every ended
session was ~75-220 objects of cyclic garbage (transport <-> session, ICE session tag,
pyOpenSSL's verify-callback helper, a cancelled negotiation task's traceback), so memory
depended on full collections. Now a session's whole state must be gone the moment it closes,
with the collector off, however it closed; that is what lets `tune_gc` make full collections
rare (tests/test_gc_tuning.py).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from conftest import loopback_rtc_config  # noqa: E402
from simclient import MediaProfile, SimClient, open_user_socket  # noqa: E402
from switchboard.engine.certificate import generate_certificate  # noqa: E402
from switchboard.signaling.rtc import Message, RtcServer, SessionConfig  # noqa: E402


class _FakeLoadPlane:
    """What SimClient asks of the benchmark's native load plane; no media here."""

    def __init__(self) -> None:
        self.senders = 0

    def add_sender(self, *args: Any, **kw: Any) -> int:
        self.senders += 1
        return self.senders

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


async def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("how", ["leave", "consent lost", "client closes DTLS", "server stops"])
async def test_ended_sessions_are_freed_without_the_collector(how: str) -> None:
    """Four participants (one unmuted, so the server renegotiates with the others), then
    one way of ending: nothing of the sessions may survive with the collector disabled."""
    loop = asyncio.get_running_loop()
    clients: dict[str, SimClient] = {}

    def on_message(msg: Message) -> None:
        if msg.session_id in clients:
            clients[msg.session_id].on_rtc(msg.type, msg.data)

    server = RtcServer(loopback_rtc_config(trickle_candidates=False), on_message=on_message)
    await server.start()
    cert = generate_certificate()
    plane: Any = _FakeLoadPlane()
    socks = []
    for i in range(4):
        sock = open_user_socket()
        socks.append(sock)
        sid = f"s{i}"
        server.init_session(SessionConfig("g", "c", f"u{i}", sid))

        def send_rtc(mtype: int, data: bytes, sid: str = sid, i: int = i) -> None:
            if sid in server.sessions:
                server.handle_message(Message("g", f"u{i}", sid, "c", mtype, data))

        client = SimClient(plane=plane, sock=sock, uid=i, session_id=sid, user_id=f"u{i}",
                           call_id="c", certificate=cert, profile=MediaProfile(ping_interval=0.2),
                           send_rtc=send_rtc, unmuted=i == 0, sharer=False)
        clients[sid] = client

        def readable(sock: Any = sock, client: SimClient = client) -> None:
            while True:
                try:
                    data = sock.recv(2048)
                except OSError:
                    return
                client.on_datagram(1 if data[0] < 4 else 2, data)

        loop.add_reader(sock.fileno(), readable)
        client.start()
    try:
        await wait_for(lambda: all(c.ready for c in clients.values()))
        await wait_for(lambda: all(c.offers_answered for c in list(clients.values())[1:]))
        await asyncio.sleep(0.5)  # pings, pongs, SACKs
        refs = []
        for session in server.sessions.values():
            t = session.transport
            assert t.dtls is not None
            refs += [weakref.ref(o) for o in (session, t, t.dtls, t.dtls._ssl, t.sctp, t.channels)]
        del session, t
        gc.collect()
        gc.disable()
        try:
            if how == "leave":
                for sid in list(server.sessions):
                    server.close_session(sid, "leave")
            elif how == "consent lost":
                for transport in [s.transport for s in server.sessions.values()]:
                    transport.close("ICE consent lost", notify_peer=False)
                del transport
            elif how == "client closes DTLS":
                for c in clients.values():
                    c.close()  # close_notify
                await wait_for(lambda: not server.sessions, timeout=5)
            else:
                await server.stop()
            await asyncio.sleep(0.05)  # cancelled negotiation tasks finish
            alive = [type(r()).__name__ for r in refs if r() is not None]
        finally:
            gc.enable()
        assert not server.sessions
        assert alive == []
    finally:
        for c in clients.values():
            c.close()
        for sock in socks:
            loop.remove_reader(sock.fileno())
            sock.close()
        if not server.stopping:
            await server.stop()
