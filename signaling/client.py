"""A Python client for the rtcd-compatible host API (ours or rtcd's).

What a host chat server needs: register its credentials, keep a WebSocket
open (reconnecting with a growing back-off, re-pointing its sessions with
``reconnect`` after each reconnection), join and leave sessions, relay
``rtc`` messages both ways, and query the HTTP routes. Used by the demo host
and the load generator.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from . import wsmsg
from .rtc import Message

log = logging.getLogger("sfu.client")


class HostApiError(Exception):
    """An HTTP call to the host API failed; ``status`` and ``body`` say how."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"host API returned {status}: {body}")
        self.status = status
        self.body = body


class HostClient:
    """See the module docstring. Callbacks receive decoded messages:
    ``on_rtc(Message)`` for rtc and vad, ``on_close(session_id)``."""

    def __init__(self, url: str, client_id: str, auth_key: str, *,
                 on_rtc: Callable[[Message], None] | None = None,
                 on_close: Callable[[str], None] | None = None,
                 on_reconnect: Callable[[], Awaitable[None]] | None = None,
                 reconnect_interval: float = 1.0, max_reconnect_wait: float = 30.0,
                 max_reconnect_attempts: int = 8) -> None:
        self.url = url.rstrip("/")
        self.client_id = client_id
        self.auth_key = auth_key
        self.on_rtc = on_rtc or (lambda m: None)
        self.on_close = on_close or (lambda s: None)
        self.on_reconnect = on_reconnect
        self.reconnect_interval = reconnect_interval
        self.max_reconnect_wait = max_reconnect_wait
        self.max_reconnect_attempts = max_reconnect_attempts
        self.conn_id: str | None = None
        self.sessions: set[str] = set()
        self.connected = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def _auth_headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.client_id}:{self.auth_key}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    # ---------------------------------------------------------------- HTTP

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        http = await self._session()
        async with http.request(method, self.url + path, **kw) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise HostApiError(resp.status, text)
            return await resp.json(content_type=None) if text else None

    async def version(self) -> dict[str, Any]:
        return await self._request("GET", "/version")  # type: ignore[no-any-return]

    async def system(self) -> dict[str, Any]:
        return await self._request("GET", "/system")  # type: ignore[no-any-return]

    async def register(self) -> None:
        """Register our credentials (an existing registration is fine)."""
        try:
            await self._request("POST", "/register", json={"clientID": self.client_id, "authKey": self.auth_key},
                                headers=self._auth_headers)
        except HostApiError as exc:
            if exc.status != 400 or "already" not in exc.body:
                raise

    async def get_sessions(self, call_id: str) -> list[dict[str, Any]]:
        try:
            return await self._request("GET", f"/calls/{call_id}/sessions", headers=self._auth_headers)  # type: ignore[no-any-return]
        except HostApiError as exc:
            if exc.status == 404:
                return []
            raise

    # ---------------------------------------------------------------- WebSocket

    async def connect(self) -> None:
        """Open the WebSocket (registering first if the connection is refused)."""
        try:
            await self._open()
        except aiohttp.WSServerHandshakeError:
            await self.register()
            await self._open()

    async def _open(self) -> None:
        http = await self._session()
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        self._ws = await http.ws_connect(ws_url, headers=self._auth_headers, heartbeat=10.0, max_msg_size=1 << 20)
        self.connected.set()
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.BINARY:
                continue
            try:
                msg = wsmsg.decode(frame.data)
            except wsmsg.WsMessageError as exc:
                log.warning("bad frame from the SFU: %s", exc)
                continue
            if msg.type == "hello":
                self.conn_id = msg.data.get("connID")
            elif msg.type in ("rtc", "vad"):
                self.on_rtc(msg.data)
            elif msg.type == "close":
                self.sessions.discard(msg.data["sessionID"])
                self.on_close(msg.data["sessionID"])
        self.connected.clear()
        if not self._closing:
            asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        wait = 0.0
        for attempt in range(1, self.max_reconnect_attempts + 1):
            wait = min(wait + self.reconnect_interval, self.max_reconnect_wait)
            await asyncio.sleep(wait)
            if self._closing:
                return
            try:
                if self.on_reconnect is not None:
                    await self.on_reconnect()
                await self._open()
            except (aiohttp.ClientError, OSError, HostApiError) as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc)
                continue
            for sid in list(self.sessions):
                await self._send("reconnect", {"sessionID": sid})
            return
        log.error("giving up reconnecting to %s after %d attempts", self.url, self.max_reconnect_attempts)

    async def _send(self, mtype: str, data: Any) -> None:
        await self.connected.wait()
        assert self._ws is not None
        await self._ws.send_bytes(wsmsg.encode(mtype, data))

    async def join(self, *, call_id: str, user_id: str, session_id: str, channel_id: str = "",
                   av1_support: bool = False, dc_signaling: bool = False) -> None:
        self.sessions.add(session_id)
        await self._send("join", {"callID": call_id, "userID": user_id, "sessionID": session_id,
                                  "channelID": channel_id, "av1Support": av1_support, "dcSignaling": dc_signaling})

    async def leave(self, session_id: str) -> None:
        await self._send("leave", {"sessionID": session_id})

    async def reconnect(self, session_id: str) -> None:
        await self._send("reconnect", {"sessionID": session_id})

    async def send_rtc(self, msg: Message) -> None:
        await self.connected.wait()
        assert self._ws is not None
        await self._ws.send_bytes(wsmsg.encode_rtc("rtc", msg))

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._http is not None:
            await self._http.close()
