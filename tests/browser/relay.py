"""The test relay: serves the page and bridges each page's WebSocket to ``RtcServer``.

It plays the Mattermost plugin's part (reference/rtcd.md 2.6/2.7) with a much simpler wire
format. Page -> relay JSON ``{"type": ...}``:

- ``join``: ``RtcServer.init_session`` (the client's first offer must follow), answered with
  ``{"type": "joined"}``;
- ``sdp`` ``{"data": {"type", "sdp"}}`` / ``ice`` ``{"data": RTCIceCandidateInit}``: rtc
  messages 2 / 1;
- ``mute`` / ``unmute`` / ``screen_on`` ``{"data": {"screenStreamID"}}`` / ``screen_off``:
  rtc messages 3 / 4 / 5 / 6;
- ``leave``: ``RtcServer.close_session``; a closed WebSocket does the same.

Relay -> page: ``{"type": "signal", "data": "<json>"}`` (server SDP or ICE, to feed to
``RTCPeer.signal``), ``{"type": "vad", "on": bool}``, ``{"type": "close", "reason"}`` and
``{"type": "error", "message"}``.

The relay also counts what crosses it per session (offers and answers each way) and keeps the
last SDPs, which is what the driver asserts on and reports when something goes wrong. It can
hold messages back (server offers to a page; a page's messages to the server) so that the
races a real client runs into (glare; an answer with an offer right behind it) happen on cue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from switchboard.signaling.rtc import (
    Message,
    MessageType,
    RtcConfig,
    RtcError,
    RtcServer,
    SessionConfig,
)

log = logging.getLogger("sfu.test.relay")

PAGE_DIR = Path(__file__).resolve().parent / "page"
GROUP = "default"


@dataclass
class SessionTraffic:
    """What crossed the relay for one session (``t_*`` are ``time.monotonic()`` values)."""

    server_offers: int = 0          # server offers sent to the page
    client_answers: int = 0         # the page's answers (to server offers)
    client_offers: int = 0          # the page's own offers
    server_answers: int = 0         # server answers to them
    candidates: int = 0             # trickled client candidates
    t_join: float | None = None
    t_first_offer: float | None = None
    t_unmute: float | None = None
    vad: list[tuple[float, bool]] = field(default_factory=list)
    closed: str | None = None
    sdps: deque[tuple[float, str, str, str]] = field(default_factory=lambda: deque(maxlen=6))
    """Last SDPs: (time, "to-page"/"from-page", type, sdp)."""


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, session_id: str, call_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.call_id = call_id
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()

    async def writer(self) -> None:
        while (text := await self.outbox.get()) is not None:
            if self.ws.closed:
                return
            await self.ws.send_str(text)

    def send(self, obj: dict[str, Any]) -> None:
        self.outbox.put_nowait(json.dumps(obj))


class Relay:
    """Owns the ``RtcServer`` and the HTTP/WebSocket side (see the module docstring)."""

    def __init__(self, config: RtcConfig, bundle: Path) -> None:
        self.bundle = bundle
        self.server = RtcServer(config, on_message=self._server_message, on_close=self._server_closed)
        self.conns: dict[str, _Conn] = {}
        self.traffic: dict[str, SessionTraffic] = {}
        self.errors: list[str] = []
        self.held_offers: dict[str, list[str]] = {}
        """Sessions whose server offers are held back (value: the held messages)."""
        self.held_from_page: dict[str, list[dict[str, Any]]] = {}
        """Sessions whose page messages are held back (value: the held messages)."""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        await self.server.start()
        app = web.Application()
        app.router.add_get("/", self._page("index.html", "text/html"))
        app.router.add_get("/peer.js", self._page("peer.js", "text/javascript"))
        app.router.add_get("/calls-common.js", self._file(self.bundle, "text/javascript"))
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/favicon.ico", self._no_content)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for conn in list(self.conns.values()):
            conn.outbox.put_nowait(None)
            await conn.ws.close()
        await self.server.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    def traffic_of(self, session_id: str) -> SessionTraffic:
        return self.traffic.setdefault(session_id, SessionTraffic())

    # ---------------------------------------------------------------- holding messages back
    # Scenarios use these to make races deterministic: glare (a server offer still on its way
    # while the client offers) and an answer with a client offer right behind it.

    def hold_offers(self, session_id: str) -> None:
        """Keep the server's offers to this page in the relay until ``release_offers``."""
        self.held_offers.setdefault(session_id, [])

    def release_offers(self, session_id: str) -> int:
        held = self.held_offers.pop(session_id, [])
        conn = self.conns.get(session_id)
        for text in held:
            if conn is not None:
                conn.send({"type": "signal", "data": text})
        return len(held)

    def hold_from_page(self, session_id: str) -> None:
        """Keep this page's messages in the relay until ``release_from_page``."""
        self.held_from_page.setdefault(session_id, [])

    def release_from_page(self, session_id: str) -> list[str]:
        """Hand all held page messages to the server back to back (no await in between,
        as when they arrive in one read). Returns their types."""
        held = self.held_from_page.pop(session_id, [])
        conn = self.conns.get(session_id)
        kinds = []
        for msg in held:
            kinds.append(msg["type"] if msg["type"] != "sdp" else msg["data"]["type"])
            if conn is not None:
                self._dispatch(conn, msg)
        return kinds

    # ---------------------------------------------------------------- HTTP

    @staticmethod
    def _file(path: Path, content_type: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=path.read_bytes(), content_type=content_type,
                                headers={"Cache-Control": "no-store"})
        return handler

    @staticmethod
    async def _no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    def _page(self, name: str, content_type: str) -> Any:
        return self._file(PAGE_DIR / name, content_type)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        session_id = request.query["session"]
        call_id = request.query.get("call", "call1")
        ws = web.WebSocketResponse(max_msg_size=1 << 22)
        await ws.prepare(request)
        conn = _Conn(ws, session_id, call_id)
        self.conns[session_id] = conn
        writer = asyncio.ensure_future(conn.writer())
        try:
            async for m in ws:
                if m.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(m.data)
                held = self.held_from_page.get(session_id)
                if held is not None:
                    held.append(msg)
                else:
                    self._dispatch(conn, msg)
        finally:
            if self.conns.get(session_id) is conn:
                del self.conns[session_id]
            conn.outbox.put_nowait(None)
            await writer
            if session_id in self.server.sessions:
                self.server.close_session(session_id, "relay websocket closed")
        return ws

    # ---------------------------------------------------------------- page -> server

    def _dispatch(self, conn: _Conn, msg: dict[str, Any]) -> None:
        try:
            self._from_page(conn, msg)
        except (RtcError, ValueError, KeyError, TypeError) as exc:
            text = f"{type(exc).__name__}: {exc}"
            self.errors.append(f"{conn.session_id}: {text}")
            conn.send({"type": "error", "message": text})

    def _from_page(self, conn: _Conn, msg: dict[str, Any]) -> None:
        sid = conn.session_id
        t = msg["type"]
        traffic = self.traffic_of(sid)
        if t == "join":
            self.server.init_session(SessionConfig(GROUP, conn.call_id, f"user-{sid}", sid))
            traffic.t_join = time.monotonic()
            conn.send({"type": "joined"})
            return
        if t == "leave":
            self.server.close_session(sid, "leave")
            return
        mtype: int
        data = b""
        if t == "sdp":
            desc = msg["data"]
            kind = desc["type"]
            if kind == "offer":
                traffic.client_offers += 1
                if traffic.t_first_offer is None:
                    traffic.t_first_offer = time.monotonic()
            elif kind == "answer":
                traffic.client_answers += 1
            traffic.sdps.append((time.monotonic(), "from-page", kind, desc["sdp"]))
            mtype, data = MessageType.SDP, json.dumps(desc).encode()
        elif t == "ice":
            traffic.candidates += 1
            mtype, data = MessageType.ICE, json.dumps(msg["data"]).encode()
        elif t == "mute":
            mtype = MessageType.MUTE
        elif t == "unmute":
            traffic.t_unmute = traffic.t_unmute or time.monotonic()
            mtype = MessageType.UNMUTE
        elif t == "screen_on":
            mtype, data = MessageType.SCREEN_ON, json.dumps(msg["data"]).encode()
        elif t == "screen_off":
            mtype = MessageType.SCREEN_OFF
        else:
            raise ValueError(f"unknown message type {t!r}")
        self.server.handle_message(Message(GROUP, f"user-{sid}", sid, conn.call_id, mtype, data))

    # ---------------------------------------------------------------- server -> page

    def _server_message(self, msg: Message) -> None:
        traffic = self.traffic_of(msg.session_id)
        conn = self.conns.get(msg.session_id)
        if msg.type in (MessageType.SDP, MessageType.ICE):
            text = msg.data.decode()
            if msg.type == MessageType.SDP:
                desc = json.loads(text)
                if desc["type"] == "offer":
                    traffic.server_offers += 1
                else:
                    traffic.server_answers += 1
                traffic.sdps.append((time.monotonic(), "to-page", desc["type"], desc["sdp"]))
                held = self.held_offers.get(msg.session_id)
                if held is not None and desc["type"] == "offer":
                    held.append(text)
                    return
            if conn is not None:
                conn.send({"type": "signal", "data": text})
        elif msg.type in (MessageType.VOICE_ON, MessageType.VOICE_OFF):
            on = msg.type == MessageType.VOICE_ON
            traffic.vad.append((time.monotonic(), on))
            if conn is not None:
                conn.send({"type": "vad", "on": on})

    def _server_closed(self, cfg: SessionConfig, reason: str) -> None:
        self.traffic_of(cfg.session_id).closed = reason
        conn = self.conns.get(cfg.session_id)
        if conn is not None:
            conn.send({"type": "close", "reason": reason})
