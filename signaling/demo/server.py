"""The demo's HTTP and WebSocket side: the web page, and the host <-> browser <-> SFU relay.

One WebSocket per page carries JSON text frames. The page signs in with
``{"type": "login", "name"}`` and gets ``hello`` (itself, every user, its channels, the RTC
settings). After that, a frame with an ``id`` is a request answered by
``{"type": "reply", "id", "ok": true, "data"}`` or ``{"type": "reply", "id", "ok": false,
"error", "code"}``; frames without an ``id`` (``sdp``, ``ice``) are fire-and-forget.

Requests: ``open_channel``, ``direct``, ``post``, ``command`` (server-side slash commands:
``/invite``, ``/archive``, ``/unarchive``, ``/deactivate``, ``/activate``, ``/msg``),
``call_link``, ``resolve_link``, ``call_join``, ``call_leave``, ``call_end``, ``mute``,
``unmute``, ``raise_hand``, ``lower_hand``, ``react``, ``screen_on``, ``screen_off``,
``video_on``, ``video_off``. Events the host pushes: ``channels``, ``channel``, ``posted``,
``post_edited``, ``call`` (a call's participant state, to every member of its channel),
``reaction``, ``user``, ``signal`` (SFU SDP/ICE for this page's session, to hand to the page's
RTC client), ``call_closed`` (the session was ended by the host or the SFU) and
``signed_out``.

This is the part the Mattermost plugin plays (reference/rtcd.md 2.6, 2.7): the host checks
who may do what (``signaling.demo.host``), then relays ``rtc`` messages to the embedded SFU
(ICE 1, SDP 2, Mute 3, Unmute 4, ScreenOn 5, ScreenOff 6, VideoOn 9, VideoOff 10) and the
SFU's answers, offers, candidates and voice activity back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from switchboard.signaling.embed import EmbeddedSFU, SfuEvent
from switchboard.signaling.rtc import CallFullError as SfuCallFullError
from switchboard.signaling.rtc import MessageType, RtcConfig, RtcError

from .host import (
    REACTIONS,
    CallFullError,
    DemoError,
    DemoHost,
    ForbiddenError,
    NotFoundError,
    Removed,
    new_id,
    seed,
)

log = logging.getLogger("sfu.demo")

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_FRAME = 256 * 1024


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``switchboard demo``."""

    http_host: str = "127.0.0.1"
    """Address the web page is served on (``--tls`` uses 0.0.0.0 for the LAN)."""
    http_port: int = 8080
    """TCP port of the web page (0 picks a free port, for tests)."""
    ssl_context: ssl.SSLContext | None = None
    """Serve HTTPS with this context (``--tls``); None serves plain HTTP."""
    rtc: RtcConfig = field(default_factory=RtcConfig)
    """The embedded SFU: media on UDP 8443 and ICE-TCP 8443 by default."""
    max_participants: int = 0
    """Most participants per call; 0 = unlimited (the SFU enforces the same limit)."""
    ice_servers: tuple[dict[str, Any], ...] = ()
    """RTCIceServer dicts handed to the browsers (STUN/TURN)."""
    media_timeout: float = 10.0
    """Seconds the page waits for media to connect before it explains what to open."""
    seed: bool = True
    """Create the demo users and channels."""


class Conn:
    """One page's WebSocket: its user, its call session, an ordered outbox."""

    def __init__(self, ws: web.WebSocketResponse, base_url: str) -> None:
        self.ws = ws
        self.base_url = base_url
        self.id = new_id()
        self.user_id = ""
        self.session_id: str | None = None
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.writer_task: asyncio.Future[None] | None = None

    def send(self, obj: dict[str, Any]) -> None:
        self.outbox.put_nowait(json.dumps(obj))

    async def writer(self) -> None:
        while (text := await self.outbox.get()) is not None:
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except ConnectionError:
                return


Handler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class DemoServer:
    """The chat host, its web page and the embedded SFU (see the module docstring)."""

    def __init__(self, config: DemoConfig | None = None) -> None:
        self.config = config or DemoConfig()
        rtc = self.config.rtc
        if self.config.max_participants != rtc.max_participants:
            from dataclasses import replace
            rtc = replace(rtc, max_participants=self.config.max_participants)
        self.host = DemoHost(max_participants=self.config.max_participants)
        if self.config.seed:
            seed(self.host)
        self.sfu = EmbeddedSFU(rtc, on_event=self._on_sfu_event)
        self.conns: dict[str, Conn] = {}
        self.session_conn: dict[str, Conn] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Handler] = {
            "open_channel": self._open_channel, "direct": self._direct, "post": self._post,
            "command": self._command, "call_link": self._call_link, "resolve_link": self._resolve_link,
            "call_join": self._call_join, "call_leave": self._call_leave, "call_end": self._call_end,
            "mute": self._mute, "unmute": self._mute, "raise_hand": self._hand, "lower_hand": self._hand,
            "react": self._react, "screen_on": self._screen_on, "screen_off": self._screen_off,
            "video_on": self._video_on, "video_off": self._video_off,
        }

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.sfu.start()
        app = web.Application(client_max_size=MAX_FRAME)
        app.router.add_get("/", self._index)
        app.router.add_get("/channels/{channel_id}", self._index)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/users", self._users)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_static("/static/", STATIC_DIR, append_version=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http_host, self.config.http_port,
                           ssl_context=self.config.ssl_context)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            await self.sfu.stop()
            raise
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for conn in list(self.conns.values()):
            conn.outbox.put_nowait(None)
            await conn.ws.close()
        await self.sfu.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def scheme(self) -> str:
        return "https" if self.config.ssl_context is not None else "http"

    def candidates(self) -> list[str]:
        return [f"{c.transport} {c.address}:{c.port}" for c in self.sfu.server.candidates]

    def rtc_ports(self) -> tuple[int, int]:
        udp = self.sfu.server.plane.socket_info[0].address[1]
        tcp = self.sfu.server.transports.tcp_ports
        return udp, (tcp[0] if tcp else 0)

    # ------------------------------------------------------------------------------ HTTP

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "calls": len(self.host.calls)})

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _users(self, request: web.Request) -> web.Response:
        """Who can be picked on the sign-in screen (names and roles are public in the demo)."""
        users = sorted(self.host.users.values(), key=lambda u: (not u.active, u.role == "guest", u.username))
        return web.json_response([u.view() for u in users])

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=20)
        await ws.prepare(request)
        conn = Conn(ws, f"{self.scheme}://{request.host}")
        writer = conn.writer_task = asyncio.ensure_future(conn.writer())
        try:
            async for m in ws:
                if m.type != WSMsgType.TEXT:
                    continue
                try:
                    msg = json.loads(m.data)
                    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                        raise ValueError("a message is a JSON object with a string 'type'")
                except ValueError as exc:
                    conn.send({"type": "error", "error": f"bad message: {exc}"})
                    continue
                try:
                    await self._dispatch(conn, msg)
                except Exception:                       # a bug must not drop the page's connection
                    log.exception("handling %r failed", msg.get("type"))
                    if msg.get("id") is not None:
                        conn.send({"type": "reply", "id": msg["id"], "ok": False, "code": "internal",
                                   "error": "Internal error in the demo server (see its log)."})
                if conn.user_id and conn.id not in self.conns:
                    break                                   # signed out (deactivated)
        finally:
            self._disconnect(conn)
            conn.outbox.put_nowait(None)
            await writer
        return ws

    # ------------------------------------------------------------------------------ dispatch

    async def _dispatch(self, conn: Conn, msg: dict[str, Any]) -> None:
        mtype = msg["type"]
        rid = msg.get("id")
        if mtype in ("sdp", "ice"):
            self._relay_signal(conn, mtype, msg.get("data"))
            return
        try:
            if mtype == "login":
                data: dict[str, Any] | None = self._login(conn, msg)
            elif not conn.user_id:
                raise ForbiddenError("Sign in first.")
            else:
                handler = self._handlers.get(mtype)
                if handler is None:
                    raise NotFoundError(f"Unknown request {mtype!r}.")
                data = await handler(conn, msg)
        except DemoError as exc:
            if rid is not None:
                conn.send({"type": "reply", "id": rid, "ok": False, "error": str(exc), "code": exc.code})
            return
        except (KeyError, TypeError, ValueError) as exc:
            if rid is not None:
                conn.send({"type": "reply", "id": rid, "ok": False, "error": f"bad request: {exc}",
                           "code": "bad_request"})
            return
        if rid is not None:
            conn.send({"type": "reply", "id": rid, "ok": True, "data": data or {}})

    def _login(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        if conn.user_id:
            raise ForbiddenError("Already signed in on this connection.")
        known = {u.id for u in self.host.users.values()}
        user = self.host.login(str(msg["name"]))
        conn.user_id = user.id
        self.conns[conn.id] = conn
        if user.id not in known:
            self._broadcast({"type": "user", "user": user.view()})
            self._push_channels(exclude=conn)
        udp, tcp = self.rtc_ports()
        return {
            "me": user.view(),
            "users": [u.view() for u in self.host.users.values()],
            "channels": self._channels_of(user.id),
            "rtc": {"ice_servers": list(self.config.ice_servers), "udp_port": udp, "tcp_port": tcp,
                    "media_timeout_ms": int(self.config.media_timeout * 1000)},
            "reactions": dict(REACTIONS),
        }

    # ------------------------------------------------------------------------------ channels

    def _channels_of(self, user_id: str) -> list[dict[str, Any]]:
        return [self.host.channel_view(user_id, c) for c in self.host.channels_for(user_id)]

    def _push_channels(self, *, exclude: Conn | None = None) -> None:
        """Everyone's channel list again (membership, archive and DMs change visibility)."""
        for c in list(self.conns.values()):
            if c is not exclude:
                c.send({"type": "channels", "channels": self._channels_of(c.user_id)})

    def _to_channel(self, channel_id: str, obj: dict[str, Any]) -> None:
        ch = self.host.channels[channel_id]
        for c in list(self.conns.values()):
            if self.host.can_see(self.host.users[c.user_id], ch):
                c.send(obj)

    def _broadcast(self, obj: dict[str, Any]) -> None:
        for c in list(self.conns.values()):
            c.send(obj)

    async def _open_channel(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        before = set(self.host.channel(str(msg["channel_id"])).members)
        ch = self.host.open_channel(conn.user_id, str(msg["channel_id"]))
        if ch.members != before:
            self._push_channels()
        posts = self.host.recent_posts(conn.user_id, ch.id)
        return {"channel": self.host.channel_view(conn.user_id, ch), "posts": [p.view() for p in posts]}

    async def _direct(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        count = len(self.host.channels)
        ch = self.host.direct_channel(conn.user_id, str(msg["username"]))
        if len(self.host.channels) != count:
            self._push_channels()
        return {"channel_id": ch.id}

    async def _post(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        p = self.host.post(conn.user_id, str(msg["channel_id"]), str(msg["message"]),
                           str(msg.get("root_id") or ""))
        self._to_channel(p.channel_id, {"type": "posted", "post": p.view()})
        return {"post": p.view()}

    async def _command(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        """Slash commands the host runs (``/call ...`` is handled by the page)."""
        channel_id = str(msg["channel_id"])
        words = str(msg["text"]).strip().split()
        if not words:
            raise NotFoundError("Empty command.")
        cmd, args = words[0].lower(), words[1:]

        def one_user() -> str:
            if len(args) != 1:
                raise ForbiddenError(f"Usage: {cmd} @username")
            return args[0]

        if cmd == "/invite":
            ch, user = self.host.invite(conn.user_id, channel_id, one_user())
            self._push_channels()
            self._post_last(ch.id)
            return {"text": f"Added @{user.username} to {self.host.label(ch)}."}
        if cmd in ("/archive", "/unarchive"):
            ch, removed = self.host.archive(conn.user_id, channel_id, cmd == "/archive")
            self._after_removal(removed)
            self._push_channels()
            self._post_last(ch.id)
            return {"text": f"{self.host.label(ch)} is {'archived' if ch.archived else 'restored'}."}
        if cmd in ("/deactivate", "/activate"):
            user, removed = self.host.set_active(conn.user_id, one_user(), cmd == "/activate")
            self._after_removal(removed)
            self._broadcast({"type": "user", "user": user.view()})
            if not user.active:
                for c in list(self.conns.values()):
                    if c.user_id == user.id:
                        c.send({"type": "signed_out", "reason": f"@{user.username} was deactivated."})
                        self._disconnect(c)
                        c.outbox.put_nowait(None)
                        if c.writer_task is not None:           # deliver what is queued, then close
                            await asyncio.wait([c.writer_task], timeout=5)
                        await c.ws.close()
            return {"text": f"@{user.username} is {'active' if user.active else 'deactivated'}."}
        if cmd == "/msg":
            ch = self.host.direct_channel(conn.user_id, one_user())
            self._push_channels()
            return {"open_channel": ch.id}
        if cmd == "/help":
            return {"text": "Commands: /call start | join | leave | link | end, /invite @user, /msg @user, "
                            "/archive, /unarchive (admin), /deactivate @user and /activate @user (admin)."}
        raise NotFoundError(f"Unknown command {cmd}. Try /help.")

    def _post_last(self, channel_id: str) -> None:
        posts = self.host.posts[channel_id]
        if posts:
            self._to_channel(channel_id, {"type": "posted", "post": posts[-1].view()})

    # ------------------------------------------------------------------------------ call links

    async def _call_link(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        return {"link": self.host.link_for(conn.user_id, str(msg["channel_id"]), conn.base_url)}

    async def _resolve_link(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        ch = self.host.resolve_link(str(msg["channel_id"]))
        self.host.check_can_call(conn.user_id, ch.id)
        return {"channel_id": ch.id}

    # ------------------------------------------------------------------------------ calls

    def _call_event(self, channel_id: str) -> None:
        call = self.host.calls.get(channel_id)
        self._to_channel(channel_id, {"type": "call", "channel_id": channel_id,
                                      "call": call.view() if call is not None else None})

    def _call_post_event(self, channel_id: str, post_id: str, new: bool) -> None:
        post = self.host.find_post(channel_id, post_id)
        self._to_channel(channel_id, {"type": "posted" if new else "post_edited", "post": post.view()})

    async def _call_join(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(msg["channel_id"])
        self.host.check_can_call(conn.user_id, channel_id)
        if conn.session_id is not None:
            self._leave(conn, "left for another call")
        session_id = new_id()
        call, started = self.host.join_call(conn.user_id, channel_id, session_id)
        try:
            self.sfu.join(call_id=call.id, user_id=conn.user_id, session_id=session_id, channel_id=channel_id)
        except SfuCallFullError:
            self.host.leave_call(session_id)
            raise CallFullError(f"Sorry, this call is full: it already has the maximum of "
                                f"{self.config.max_participants} participants.") from None
        except RtcError as exc:
            self.host.leave_call(session_id)
            raise ForbiddenError(f"The SFU refused the call: {exc}") from None
        conn.session_id = session_id
        self.session_conn[session_id] = conn
        self._call_post_event(channel_id, call.post_id, started)
        self._call_event(channel_id)
        return {"session_id": session_id, "call": call.view()}

    async def _call_leave(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        if conn.session_id is None:
            raise NotFoundError("You are not in a call.")
        self._leave(conn, "leave")
        return {}

    async def _call_end(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        self._after_removal(self.host.end_call(conn.user_id, str(msg["channel_id"])))
        return {}

    def _leave(self, conn: Conn, reason: str) -> None:
        sid = conn.session_id
        if sid is None:
            return
        conn.session_id = None
        self.session_conn.pop(sid, None)
        result = self.host.leave_call(sid)
        self.sfu.leave(sid)
        if result is not None:
            call, ended = result
            if ended:
                self._call_post_event(call.channel_id, call.post_id, False)
            self._call_event(call.channel_id)

    def _after_removal(self, removed: Removed) -> None:
        """The host removed sessions (archive, deactivation, call end): tell and release them."""
        for sid in removed.sessions:
            conn = self.session_conn.pop(sid, None)
            self.sfu.leave(sid)
            if conn is not None:
                conn.session_id = None
                conn.send({"type": "call_closed", "reason": removed.reason})
        for channel_id, post_id in removed.ended_calls:
            self._call_post_event(channel_id, post_id, False)
        for channel_id in removed.channels:
            self._call_event(channel_id)

    def _disconnect(self, conn: Conn) -> None:
        self._leave(conn, "websocket closed")
        self.conns.pop(conn.id, None)

    def _session(self, conn: Conn) -> str:
        if conn.session_id is None:
            raise NotFoundError("You are not in a call.")
        return conn.session_id

    async def _mute(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        sid = self._session(conn)
        muted = msg["type"] == "mute"
        call = self.host.set_muted(sid, muted)
        self._signal_sfu(sid, MessageType.MUTE if muted else MessageType.UNMUTE)
        self._call_event(call.channel_id)
        return {}

    async def _hand(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        call = self.host.raise_hand(self._session(conn), msg["type"] == "raise_hand")
        self._call_event(call.channel_id)
        return {}

    async def _react(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        call, p, emoji = self.host.react(self._session(conn), str(msg["name"]))
        self._to_channel(call.channel_id, {"type": "reaction", "channel_id": call.channel_id,
                                           "session_id": p.session_id, "user_id": p.user_id,
                                           "name": msg["name"], "emoji": emoji})
        return {}

    async def _screen_on(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        sid = self._session(conn)
        stream_id = str(msg["data"]["screenStreamID"])
        call = self.host.screen_on(sid)
        self._signal_sfu(sid, MessageType.SCREEN_ON, json.dumps({"screenStreamID": stream_id}))
        self._call_event(call.channel_id)
        return {}

    async def _screen_off(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        sid = self._session(conn)
        call = self.host.screen_off(sid)
        self._signal_sfu(sid, MessageType.SCREEN_OFF)
        self._call_event(call.channel_id)
        return {}

    async def _video_on(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        sid = self._session(conn)
        stream_id = str(msg["data"]["videoStreamID"])
        call = self.host.video_on(sid, True)
        self._signal_sfu(sid, MessageType.VIDEO_ON, json.dumps({"videoStreamID": stream_id}))
        self._call_event(call.channel_id)
        return {}

    async def _video_off(self, conn: Conn, msg: dict[str, Any]) -> dict[str, Any]:
        sid = self._session(conn)
        call = self.host.video_on(sid, False)
        self._signal_sfu(sid, MessageType.VIDEO_OFF)
        self._call_event(call.channel_id)
        return {}

    # ------------------------------------------------------------------------------ SFU relay

    def _signal_sfu(self, session_id: str, mtype: int, data: str = "") -> None:
        try:
            self.sfu.signal(session_id, mtype, data)
        except RtcError as exc:
            log.info("session %s: %s not delivered to the SFU: %s", session_id, MessageType(mtype).name, exc)

    def _relay_signal(self, conn: Conn, kind: str, data: Any) -> None:
        """The page's SDP (``{"type", "sdp"}``) or ICE candidate (RTCIceCandidateInit) for the SFU."""
        if conn.session_id is None or not isinstance(data, dict):
            return
        mtype = MessageType.SDP if kind == "sdp" else MessageType.ICE
        if mtype == MessageType.SDP and not (isinstance(data.get("type"), str) and isinstance(data.get("sdp"), str)):
            conn.send({"type": "error", "error": "bad sdp message"})
            return
        self._signal_sfu(conn.session_id, mtype, json.dumps(data))

    def _on_sfu_event(self, ev: SfuEvent) -> None:
        if ev.kind == "rtc":
            conn = self.session_conn.get(ev.session_id)
            if conn is not None:
                conn.send({"type": "signal", "data": ev.data.decode()})
        elif ev.kind == "vad":
            call = self.host.set_speaking(ev.session_id, ev.type == MessageType.VOICE_ON)
            if call is not None:
                self._call_event(call.channel_id)
        elif ev.kind == "close":
            conn = self.session_conn.pop(ev.session_id, None)
            result = self.host.leave_call(ev.session_id)
            if conn is not None:
                conn.session_id = None
                conn.send({"type": "call_closed", "reason": _friendly_close(ev.reason)})
            if result is not None:
                call, ended = result
                if ended:
                    self._call_post_event(call.channel_id, call.post_id, False)
                self._call_event(call.channel_id)


def _friendly_close(reason: str) -> str:
    r = reason.lower()
    if "signaling timeout" in r:
        return f"The call could not be set up: the browser sent no offer in time ({reason})."
    if "consent" in r or "ice" in r or "timeout" in r:
        return f"The media connection was lost ({reason})."
    return f"The server ended your call session ({reason})."
