"""Conformance of the host API with rtcd's (reference rtcd.md section 2),
written from the reference: routes, status codes, JSON bodies, the msgpack
WebSocket envelope, message routing, and `close` on every session end."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from switchboard.engine.mediaplane import MediaConfig
from switchboard.engine.transportserver import TransportConfig
from switchboard.signaling import wsmsg
from switchboard.signaling.rtc import MessageType, RtcConfig
from switchboard.signaling.service import RTCD_API_VERSION, Service, ServiceOptions

ADMIN = "admin-secret-key-that-is-long-enough"
KEY = "k" * 32


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def options(tmp: Path, **kw: Any) -> ServiceOptions:
    rtc = RtcConfig(media=MediaConfig(addresses=("127.0.0.1",), port=0),
                    transport=TransportConfig(tcp_addresses=("127.0.0.1",), tcp_port=0),
                    local_ips=("127.0.0.1",), signaling_timeout=kw.pop("signaling_timeout", 10.0),
                    max_participants=kw.pop("max_participants", 0))
    base = dict(listen_address="127.0.0.1:0", enable_admin=True, admin_secret_key=ADMIN,
                data_source=str(tmp / "db"), bcrypt_rounds=4, rtc=rtc, ws_ping_interval=10.0)
    base.update(kw)
    return ServiceOptions(**base)  # type: ignore[arg-type]


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[tuple[Service, str]]:
    service = Service(options(tmp_path))
    await service.start()
    try:
        yield service, f"http://127.0.0.1:{service.port}"
    finally:
        await service.stop()


async def register(url: str, client: str = "client1", key: str = KEY) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/register", json={"clientID": client, "authKey": key},
                             headers=basic("", ADMIN)) as r:
            assert r.status == 201, await r.text()


class Host:
    """A raw host connection speaking the msgpack envelope."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession) -> None:
        self.ws, self.http = ws, http
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type == aiohttp.WSMsgType.BINARY:
                m = wsmsg.decode(frame.data)
                self.inbox.put_nowait((m.type, m.data))

    async def send(self, mtype: str, data: Any) -> None:
        await self.ws.send_bytes(wsmsg.encode(mtype, data))

    async def expect(self, mtype: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            t, d = await asyncio.wait_for(self.inbox.get(), max(0.01, deadline - time.monotonic()))
            if t == mtype:
                return d

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


async def connect(url: str, headers: dict[str, str]) -> Host:
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(url.replace("http", "ws") + "/ws", headers=headers)
    return Host(ws, http)


# ------------------------------------------------------------------ HTTP routes

async def test_version_and_system(svc: tuple[Service, str]) -> None:
    _, url = svc
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/version") as r:
            body = await r.json()
            assert r.status == 200
            assert set(body) == {"buildDate", "buildVersion", "buildHash", "goVersion", "goOS", "goArch"}
            major, minor, _ = (int(x) for x in body["buildVersion"].split("."))
            assert (major, minor) >= (1, 1) and body["buildVersion"] == RTCD_API_VERSION
        async with http.get(url + "/system") as r:
            body = await r.json()
            assert r.status == 200 and isinstance(body["cpu_load"], float)
        async with http.get(url + "/healthz") as r:
            assert r.status == 200
        async with http.get(url + "/readyz") as r:
            assert r.status == 200
        async with http.post(url + "/version") as r:
            assert r.status == 405


async def test_register_rules(svc: tuple[Service, str]) -> None:
    _, url = svc
    async with aiohttp.ClientSession() as http:
        # no credentials and self-registration off
        async with http.post(url + "/register", json={"clientID": "a", "authKey": KEY}) as r:
            assert r.status == 401 and (await r.json())["code"] == "401"
        # admin: created
        async with http.post(url + "/register", json={"clientID": "a", "authKey": KEY}, headers=basic("x", ADMIN)) as r:
            assert r.status == 201 and await r.json() == {"clientID": "a", "code": "201"}
        # duplicate
        async with http.post(url + "/register", json={"clientID": "a", "authKey": KEY}, headers=basic("", ADMIN)) as r:
            body = await r.json()
            assert r.status == 400 and body["code"] == "400" and "already registered" in body["error"]
        # short key
        async with http.post(url + "/register", json={"clientID": "b", "authKey": "short"}, headers=basic("", ADMIN)) as r:
            body = await r.json()
            assert r.status == 400 and "key not long enough" in body["error"]
        # a registered client may register another (rtcd's rule)
        async with http.post(url + "/register", json={"clientID": "c", "authKey": KEY}, headers=basic("a", KEY)) as r:
            assert r.status == 201
        # wrong admin key
        async with http.post(url + "/register", json={"clientID": "d", "authKey": KEY}, headers=basic("", "nope")) as r:
            assert r.status == 401
        # malformed body
        async with http.post(url + "/register", data=b"{not json", headers=basic("", ADMIN)) as r:
            assert r.status == 400
        # unregister: the client itself, then unknown
        async with http.post(url + "/unregister", json={"clientID": "c"}, headers=basic("c", KEY)) as r:
            assert r.status == 200 and await r.json() == {"code": "200"}
        async with http.post(url + "/unregister", json={"clientID": "c"}, headers=basic("", ADMIN)) as r:
            assert r.status == 400 and "not found" in (await r.json())["error"]
        async with http.post(url + "/unregister", json={"clientID": "a"}, headers=basic("c", KEY)) as r:
            assert r.status == 401
        # login gives a 32-char bearer token that works for the API
        async with http.post(url + "/login", json={"clientID": "a", "authKey": KEY}) as r:
            body = await r.json()
            assert r.status == 200 and body["code"] == "200" and len(body["bearerToken"]) == 32
            token = body["bearerToken"]
        async with http.post(url + "/login", json={"clientID": "a", "authKey": "x" * 32}) as r:
            assert r.status == 401
        async with http.get(url + "/calls/none/sessions", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 404
        async with http.get(url + "/calls/none/sessions", headers={"Authorization": "Bearer " + "z" * 32}) as r:
            assert r.status == 401 and await r.text() == "unauthorized"


async def test_unregister_forbidden_without_admin_or_self_registration(tmp_path: Path) -> None:
    service = Service(options(tmp_path, enable_admin=False, admin_secret_key=""))
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{service.port}/unregister", json={"clientID": "a"}) as r:
                assert r.status == 403
    finally:
        await service.stop()


async def test_self_registration(tmp_path: Path) -> None:
    service = Service(options(tmp_path, allow_self_registration=True))
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{service.port}/register",
                                 json={"clientID": "self", "authKey": KEY}) as r:
                assert r.status == 201
    finally:
        await service.stop()


# ------------------------------------------------------------------ WebSocket

async def test_ws_auth_hello_and_unknown_client(svc: tuple[Service, str]) -> None:
    service, url = svc
    await register(url)
    http = aiohttp.ClientSession()
    for headers in (basic("client1", "wrong-key-wrong-key-wrong-key-xx"), basic("nobody", KEY), {}):
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(url.replace("http", "ws") + "/ws", headers=headers)
    await http.close()
    host = await connect(url, basic("client1", KEY))
    hello = await host.expect("hello")
    assert hello["clientID"] == "client1" and len(hello["connID"]) == 26
    await host.close()


async def test_malformed_frames_are_counted_and_connection_survives(svc: tuple[Service, str]) -> None:
    service, url = svc
    await register(url)
    host = await connect(url, basic("client1", KEY))
    await host.expect("hello")
    await host.ws.send_bytes(b"\xc1\xc1")                                   # not msgpack
    await host.ws.send_bytes(msgpack.packb("join"))                          # one value only
    await host.ws.send_bytes(msgpack.packb("dance") + msgpack.packb({}))     # unknown type
    await host.ws.send_bytes(msgpack.packb("leave") + msgpack.packb({"sessionID": 5}))  # not a string map
    await host.ws.send_bytes(msgpack.packb("rtc") + msgpack.packb({"type": 2}))          # no session
    await host.ws.send_str("text frames are not processed")
    await host.send("join", {"callID": "c0", "userID": "u0", "sessionID": "s0"})
    await asyncio.sleep(0.2)
    assert "s0" in service.rtc.sessions, "the connection survived the malformed frames"
    # an oversized frame (over 1 MiB) closes that connection (1009), but the
    # sessions it carried stay: the host reconnects and re-points them
    await host.ws.send_bytes(msgpack.packb("join") + msgpack.packb({"x": b"\x00" * (1 << 20)}))
    await asyncio.wait_for(host.reader, 5)
    assert host.ws.close_code == 1009
    assert "s0" in service.rtc.sessions
    host2 = await connect(url, basic("client1", KEY))
    await host2.expect("hello")
    await host2.send("reconnect", {"sessionID": "s0"})
    await host2.send("join", {"callID": "c1", "userID": "u1", "sessionID": "s1", "channelID": "ch"})
    await asyncio.sleep(0.2)
    assert "s1" in service.rtc.sessions
    await host2.send("leave", {"sessionID": "s0"})
    assert await host2.expect("close") == {"sessionID": "s0"}
    text = await _metrics(url)
    assert 'switchboard_ws_errors_total{reason="malformed"} 5.0' in text
    assert 'switchboard_ws_errors_total{reason="text_frame"} 1.0' in text
    await host2.close()
    await host.close()


async def _metrics(url: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics") as r:
            return await r.text()


async def test_join_sessions_routes_and_close_on_leave(svc: tuple[Service, str]) -> None:
    service, url = svc
    await register(url)
    await register(url, "client2")
    host = await connect(url, basic("client1", KEY))
    await host.expect("hello")
    await host.send("join", {"callID": "call1", "userID": "u1", "sessionID": "s1", "channelID": "ch1",
                             "av1Support": True, "dcSignaling": False, "groupID": "ignored"})
    await host.send("join", {"callID": "call1", "userID": "u2", "sessionID": "s2", "channelID": "ch1"})
    await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/calls/call1/sessions", headers=basic("client1", KEY)) as r:
            body = await r.json()
            assert r.status == 200
            assert sorted(s["SessionID"] for s in body) == ["s1", "s2"]
            s1 = next(s for s in body if s["SessionID"] == "s1")
            assert s1 == {"GroupID": "client1", "CallID": "call1", "UserID": "u1", "SessionID": "s1",
                          "Props": {"channelID": "ch1", "av1Support": True, "dcSignaling": False}}
        async with http.get(url + "/calls/call1/sessions/s2", headers=basic("client1", KEY)) as r:
            assert r.status == 200 and (await r.json())["UserID"] == "u2"
        async with http.get(url + "/calls/call1/sessions/nope", headers=basic("client1", KEY)) as r:
            assert r.status == 404
        # groups are isolated: another client sees nothing of client1's calls
        async with http.get(url + "/calls/call1/sessions", headers=basic("client2", KEY)) as r:
            assert r.status == 404
        async with http.get(url + "/calls/call1/sessions", headers=basic("", ADMIN)) as r:
            assert r.status == 401
    # duplicate join: rtcd logs and replies nothing
    await host.send("join", {"callID": "call1", "userID": "u1", "sessionID": "s1"})
    await host.send("leave", {"sessionID": "s1"})
    assert await host.expect("close") == {"sessionID": "s1"}
    assert "s1" not in service.rtc.sessions
    await host.close()


async def test_reconnect_repoints_and_close_on_every_end(svc: tuple[Service, str], tmp_path: Path) -> None:
    service, url = svc
    await register(url)
    a = await connect(url, basic("client1", KEY))
    await a.expect("hello")
    await a.send("join", {"callID": "call1", "userID": "u1", "sessionID": "s1"})
    await a.send("join", {"callID": "call1", "userID": "u2", "sessionID": "s2"})
    await a.send("join", {"callID": "call1", "userID": "u3", "sessionID": "s3"})
    await asyncio.sleep(0.2)
    b = await connect(url, basic("client1", KEY))
    await b.expect("hello")
    await b.send("reconnect", {"sessionID": "s1"})
    await asyncio.sleep(0.1)
    # a bad client offer on s1 ends it; the close goes to b (re-pointed), not a
    bad_offer = json.dumps({"type": "offer", "sdp": "v=0\r\nbroken"}).encode()
    await b.send("rtc", {"group_id": "", "user_id": "u1", "session_id": "s1", "call_id": "call1",
                         "type": MessageType.SDP, "data": bad_offer})
    assert await b.expect("close") == {"sessionID": "s1"}
    # the session of another group cannot be driven by this connection
    service.rtc.close_session("s2", "rtc connection failed")     # any server-side end
    assert await a.expect("close") == {"sessionID": "s2"}
    await a.send("leave", {"sessionID": "s3"})
    assert await a.expect("close") == {"sessionID": "s3"}
    await a.close()
    await b.close()


async def test_signaling_timeout_and_full_call_send_close(tmp_path: Path) -> None:
    service = Service(options(tmp_path, signaling_timeout=0.3, max_participants=1))
    await service.start()
    url = f"http://127.0.0.1:{service.port}"
    try:
        await register(url)
        host = await connect(url, basic("client1", KEY))
        await host.expect("hello")
        await host.send("join", {"callID": "c", "userID": "u1", "sessionID": "first"})
        await host.send("join", {"callID": "c", "userID": "u2", "sessionID": "second"})
        assert await host.expect("close") == {"sessionID": "second"}     # the call is full
        assert await host.expect("close") == {"sessionID": "first"}      # no offer within the timeout
        await host.close()
    finally:
        await service.stop()


async def test_drain_refuses_new_calls_keeps_existing_and_reports(tmp_path: Path) -> None:
    service = Service(options(tmp_path, drain_grace_seconds=0.5))
    await service.start()
    url = f"http://127.0.0.1:{service.port}"
    try:
        await register(url)
        host = await connect(url, basic("client1", KEY))
        await host.expect("hello")
        await host.send("join", {"callID": "running", "userID": "u1", "sessionID": "s1"})
        await asyncio.sleep(0.1)
        drain = asyncio.ensure_future(service.drain())
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/readyz") as r:
                assert r.status == 503 and (await r.json())["status"] == "draining"
            async with http.get(url + "/system") as r:
                body = await r.json()
                assert body["draining"] is True and body["cpu_load"] >= 1e6
        await host.send("join", {"callID": "new-call", "userID": "u2", "sessionID": "s2"})
        assert await host.expect("close") == {"sessionID": "s2"}
        await host.send("join", {"callID": "running", "userID": "u3", "sessionID": "s3"})
        await asyncio.sleep(0.1)
        assert "s3" in service.rtc.sessions, "joining a running call is still allowed"
        await asyncio.wait_for(drain, 5)   # grace period over: drain returns with sessions left
        await host.close()
    finally:
        await service.stop()
