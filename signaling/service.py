"""The rtcd-compatible service: HTTP + WebSocket host API on :8045.

A host chat server (the Mattermost Calls plugin, or our demo) talks to us
exactly as it talks to rtcd (reference rtcd.md section 2):

- ``GET /version``, ``GET /system``, ``POST /register``, ``POST /unregister``,
  ``POST /login``, ``GET /calls/{callID}/sessions[/{sessionID}]``,
  ``GET /metrics``: rtcd's routes, status codes and JSON bodies.
- ``GET /ws`` with Basic (``clientID:authKey``) or Bearer auth: ``hello`` on
  open, pings every 10 s, binary frames of two msgpack values (see
  ``wsmsg``); ``join``, ``leave``, ``reconnect`` and ``rtc`` in; ``rtc``,
  ``vad`` and ``close`` out, each session's messages on the connection
  recorded at ``join`` and re-pointed by ``reconnect``. The group is the
  authenticated client.

Beyond rtcd, without breaking it: ``/healthz`` (liveness) and ``/readyz``
(readiness, 503 while draining); SIGTERM drains with a grace period (no new
calls, existing calls go on; ``/system`` reports it and a very high
``cpu_load`` so the plugin places new calls elsewhere); a malformed frame is
logged and counted and never drops the connection's other sessions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import logging
import os
import platform
import secrets
import signal
import ssl
import string
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from switchboard import __version__
from switchboard.engine.candidates import parse_address_list
from switchboard.engine.mediaplane import MediaConfig
from switchboard.engine.transportserver import TransportConfig

from . import wsmsg
from .auth import AuthError, AuthStore, RateLimitedError
from .config import Config, IceServer, turn_credentials
from .metrics import Metrics
from .rtc import (
    CallFullError,
    DrainingError,
    Message,
    MessageType,
    RtcConfig,
    RtcError,
    RtcServer,
    SessionConfig,
    SessionExistsError,
)

log = logging.getLogger("sfu.service")

#: The rtcd release whose host API we implement; the Calls plugin semver-checks
#: it (>= 1.1.0 enables data-channel locking in browsers).
RTCD_API_VERSION = "1.2.6"

_CONN_ID_CHARS = string.ascii_lowercase + string.digits


def new_id() -> str:
    """A 26-character id, like Mattermost's and rtcd's."""
    return "".join(secrets.choice(_CONN_ID_CHARS) for _ in range(26))


@dataclass(frozen=True)
class ServiceOptions:
    """What the HTTP/WS layer needs (built from the TOML/env config)."""

    listen_address: str = ":8045"
    """host:port of the API (rtcd api.http.listen_address)."""
    tls_cert_file: str = ""
    """PEM certificate for HTTPS; empty = plain HTTP."""
    tls_key_file: str = ""
    allow_self_registration: bool = False
    enable_admin: bool = False
    admin_secret_key: str = ""
    session_cache_minutes: int = 1440
    data_source: str = "/tmp/rtcd_db"
    """Directory of the credentials store."""
    drain_grace_seconds: float = 18000.0
    """After SIGTERM, how long existing calls may go on (the seeds' terminationGracePeriod)."""
    bcrypt_rounds: int = 10
    """bcrypt cost for stored keys (Go's DefaultCost; tests lower it)."""
    ws_ping_interval: float = 10.0
    ws_max_message_bytes: int = 1 << 20
    rtc: RtcConfig = field(default_factory=RtcConfig)
    turn_secret: str = ""
    """turn.static_auth_secret: when set, /ice-servers hands out TURN REST credentials."""
    turn_expiry_minutes: int = 1440
    ice_servers: tuple[IceServer, ...] = ()
    """ICE servers clients should use (rtc.ice_servers)."""
    gc_tuning: bool = False
    """`tune_gc` once started (switchboard.gc_tuning; off for embedded and test use, where
    the process is not ours)."""

    @classmethod
    def from_config(cls, cfg: Config) -> ServiceOptions:
        """Map the rtcd-compatible configuration onto the service and RTC server."""
        r, sb = cfg.rtc, cfg.switchboard
        udp = parse_address_list(r.ice_address_udp, "rtc.ice_address_udp") or ["0.0.0.0"]
        if r.enable_ipv6 and not r.ice_address_udp:
            udp.append("::")
        tcp: list[str] = []
        if sb.enable_ice_tcp:
            tcp = parse_address_list(r.ice_address_tcp, "rtc.ice_address_tcp") or ["0.0.0.0"]
        rtc = RtcConfig(
            media=MediaConfig(addresses=tuple(udp), port=r.ice_port_udp, socket_buffer_bytes=sb.socket_buffer_size,
                              srtp_out_window=max(512, r.nack_buffer_size), coalesce_us=sb.coalesce_us),
            transport=TransportConfig(tcp_addresses=tuple(tcp), tcp_port=r.ice_port_tcp),
            candidates=r.candidate_config(),
            max_participants=sb.max_call_participants,
            nack_buffer_size=r.nack_buffer_size or 256,
        )
        sec = cfg.api.security
        return cls(
            listen_address=cfg.api.http.listen_address,
            tls_cert_file=cfg.api.http.tls.cert_file if cfg.api.http.tls.enable else "",
            tls_key_file=cfg.api.http.tls.cert_key if cfg.api.http.tls.enable else "",
            allow_self_registration=sec.allow_self_registration,
            enable_admin=sec.enable_admin,
            admin_secret_key=sec.admin_secret_key,
            session_cache_minutes=sec.session_cache.expiration_minutes,
            data_source=cfg.store.data_source,
            drain_grace_seconds=sb.drain_grace_period,
            rtc=rtc,
            turn_secret=r.turn.static_auth_secret,
            turn_expiry_minutes=r.turn.credentials_expiration_minutes,
            ice_servers=r.ice_servers,
            gc_tuning=sb.gc_tuning,
        )


#: Collection thresholds (young, middle, full) after `tune_gc`; Python's are (700, 10, 10).
GC_THRESHOLDS = (1500, 5, 100)


def tune_gc() -> None:
    """Make garbage collections rare and short for a long-running SFU process.

    With 800 sessions a full collection walks ~150,000 tracked objects and holds the event
    loop (so media reads) for 80-130 ms on a small VM. So, once started: collect what startup
    left, then ``gc.freeze()`` everything alive (modules, configuration, the app: ~60,000
    objects no later collection needs to walk again), and raise the thresholds: a full
    collection only after 100 middle ones instead of 10 (none while 800 participants join),
    young collections half as often (1,500 net allocations instead of 700) with middle ones
    after 5 young ones, so a middle collection still walks at most ~7,500 objects (a few ms;
    with 10,000 x 10 one took 66 ms). That is safe because ended sessions do not wait for the collector:
    they hold no reference cycles (see `WebRtcTransport._release`), so reference counting
    frees them; the collector is left with rare cycles (exceptions, tasks), which now live a
    little longer. Idempotent. The trade-off is `switchboard.gc_tuning`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("garbage collector tuned: %d objects frozen, thresholds %s",
             gc.get_freeze_count(), gc.get_threshold())


class LoopProbe:
    """Diagnosis: how long the event loop stalls, and what the garbage collector costs.

    ``SWITCHBOARD_LOOP_PROBE=1`` in the environment of ``switchboard serve`` turns it on: a
    timer every `INTERVAL` seconds measures how late it fires (the loop ran nothing else for
    that long: a long callback, a batch of events, a collection), and ``gc.callbacks`` time
    every collection by generation. A summary is logged every `REPORT` seconds (and the worst
    values are reset). Off by default: the timer costs ~1 ms of CPU per second."""

    INTERVAL = 0.005
    REPORT = 10.0

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._gc_start = 0.0
        self.lag_max = 0.0
        self.lag_over_2ms = 0
        self.gc_count = [0, 0, 0]
        self.gc_seconds = [0.0, 0.0, 0.0]
        self.gc_max = [0.0, 0.0, 0.0]
        self._next_report = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        gc.callbacks.append(self._on_gc)
        self._next_report = time.monotonic() + self.REPORT
        self._arm()
        try:  # kill -USR1: count the tracked objects and time a full collection, now
            loop.add_signal_handler(signal.SIGUSR1, self.full_collection)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
            pass
        log.info("loop probe on: %d tracked objects after start, %d frozen",
                 len(gc.get_objects()), gc.get_freeze_count())

    def full_collection(self) -> None:
        objects = len(gc.get_objects())
        t0 = time.perf_counter()
        gc.collect()
        log.info("loop probe: full collection over %d tracked objects (%d frozen) took %.1f ms",
                 objects, gc.get_freeze_count(), (time.perf_counter() - t0) * 1e3)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
            self.report(objects=True)

    def _arm(self) -> None:
        assert self._loop is not None
        self._due = time.monotonic() + self.INTERVAL
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        lag = now - self._due
        if lag > self.lag_max:
            self.lag_max = lag
        if lag > 0.002:
            self.lag_over_2ms += 1
        if now >= self._next_report:
            self.report()
            self._next_report = now + self.REPORT
        self._arm()

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        dt = time.perf_counter() - self._gc_start
        g = info.get("generation", 0)
        self.gc_count[g] += 1
        self.gc_seconds[g] += dt
        if dt > self.gc_max[g]:
            self.gc_max[g] = dt

    def report(self, *, objects: bool = False) -> None:
        """Log and reset the worst values; ``objects`` also counts the tracked objects (a
        walk over all of them: only at the end, it would stall the loop itself)."""
        log.info(
            "loop probe: max lag %.1f ms, %d lags > 2 ms; gc by generation: count %s, "
            "total ms %s, max ms %s; %s%d frozen; thresholds %s",
            self.lag_max * 1e3, self.lag_over_2ms, self.gc_count,
            [round(t * 1e3, 1) for t in self.gc_seconds], [round(t * 1e3, 1) for t in self.gc_max],
            f"{len(gc.get_objects())} tracked objects, " if objects else "",
            gc.get_freeze_count(), gc.get_threshold(),
        )
        self.lag_max = 0.0
        self.lag_over_2ms = 0
        self.gc_max = [0.0, 0.0, 0.0]


class _WsConn:
    def __init__(self, ws: web.WebSocketResponse, client_id: str) -> None:
        self.ws = ws
        self.client_id = client_id
        self.conn_id = new_id()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=5000)
        self.dropped = 0


class _CpuSampler:
    """rtcd's cpu_load: the inverse of the number of idle cores over the last
    second (lower is better; not a percentage)."""

    def __init__(self) -> None:
        self.load = 0.0
        self._last: tuple[float, float] | None = None

    @staticmethod
    def _idle_seconds() -> float:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = 100.0  # USER_HZ
        return (int(fields[4]) + int(fields[5])) / ticks

    def sample(self) -> None:
        try:
            idle, now = self._idle_seconds(), time.monotonic()
        except (OSError, IndexError, ValueError):
            return
        if self._last is not None and now > self._last[1]:
            idle_cores = (idle - self._last[0]) / (now - self._last[1])
            self.load = 1.0 / idle_cores if idle_cores > 0.01 else 100.0
        self._last = (idle, now)


class Service:
    """See the module docstring."""

    def __init__(self, options: ServiceOptions | None = None) -> None:
        self.options = options or ServiceOptions()
        self.metrics = Metrics()
        self.rtc = RtcServer(self.options.rtc, on_message=self._on_rtc_message, on_close=self._on_rtc_close,
                             metrics=self.metrics)
        self.metrics.attach(self.rtc)
        self.auth = AuthStore(self.options.data_source, session_cache_minutes=self.options.session_cache_minutes,
                              bcrypt_rounds=self.options.bcrypt_rounds)
        self.conns: dict[str, _WsConn] = {}
        self.session_conn: dict[str, _WsConn] = {}
        self.cpu = _CpuSampler()
        self.draining = False
        self.started = False
        self.stopped = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.BaseSite | None = None
        self._cpu_task: asyncio.Task[None] | None = None
        self.probe = LoopProbe() if os.environ.get("SWITCHBOARD_LOOP_PROBE") else None
        self.app = self._make_app()

    # ---------------------------------------------------------------- lifecycle

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        r = app.router
        r.add_get("/version", self.h_version)
        r.add_get("/system", self.h_system)
        r.add_post("/register", self.h_register)
        r.add_post("/unregister", self.h_unregister)
        r.add_post("/login", self.h_login)
        r.add_get("/calls/{call_id}/sessions", self.h_sessions)
        r.add_get("/calls/{call_id}/sessions/{session_id}", self.h_session)
        r.add_get("/metrics", self.h_metrics)
        r.add_get("/ws", self.h_ws)
        r.add_get("/ice-servers", self.h_ice_servers)
        r.add_get("/healthz", self.h_healthz)
        r.add_get("/readyz", self.h_readyz)
        return app

    async def start(self) -> None:
        await self.rtc.start()
        host, _, port = self.options.listen_address.rpartition(":")
        ssl_ctx = None
        if self.options.tls_cert_file:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ssl_ctx.load_cert_chain(self.options.tls_cert_file, self.options.tls_key_file)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host or None, int(port), ssl_context=ssl_ctx, reuse_address=True)
        await self._site.start()
        self._cpu_task = asyncio.get_running_loop().create_task(self._cpu_loop())
        if self.probe is not None:
            self.probe.start(asyncio.get_running_loop())
        if self.options.gc_tuning:
            tune_gc()
        self.started = True
        log.info("host API listening on %s (%s)", self.options.listen_address, "https" if ssl_ctx else "http")

    @property
    def port(self) -> int:
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._cpu_task is not None:
            self._cpu_task.cancel()
        if self.probe is not None:
            self.probe.stop()
        for conn in list(self.conns.values()):
            await conn.ws.close()
        await self.rtc.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.auth.close()
        self.stopped.set()

    async def drain(self) -> None:
        """Stop taking new calls; return when the last session ended or the
        grace period passed."""
        if not self.draining:
            self.draining = True
            self.rtc.draining = True
            log.info("draining: %d sessions in %d calls; grace period %.0f s", len(self.rtc.sessions),
                     len(self.rtc.calls()), self.options.drain_grace_seconds)
        deadline = time.monotonic() + self.options.drain_grace_seconds
        while self.rtc.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if self.rtc.sessions:
            log.warning("grace period over with %d sessions left; stopping", len(self.rtc.sessions))

    async def _cpu_loop(self) -> None:
        while True:
            self.cpu.sample()
            await asyncio.sleep(1.0)

    # ---------------------------------------------------------------- auth

    @staticmethod
    def _basic(request: web.Request) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    def _is_admin(self, creds: tuple[str, str] | None) -> bool:
        o = self.options
        return bool(creds and o.enable_admin and o.admin_secret_key
                    and secrets.compare_digest(creds[1], o.admin_secret_key))

    async def _authenticate(self, request: web.Request) -> str | None:
        """The authenticated client id (Basic or Bearer), or None."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.auth.authenticate_token(header[7:].strip())
        creds = self._basic(request)
        if creds is None or not creds[0]:
            return None
        try:
            ok = await asyncio.to_thread(self.auth.authenticate, creds[0], creds[1])
        except RateLimitedError:
            return None
        except AuthError:
            return None
        return creds[0] if ok else None

    # ---------------------------------------------------------------- HTTP

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> web.Response:
        return web.json_response(body, status=status)

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message, "code": str(status)}, status=status)

    async def h_version(self, request: web.Request) -> web.Response:
        return self._json(200, {
            "buildDate": "",
            "buildVersion": RTCD_API_VERSION,
            "buildHash": f"switchboard-{__version__}",
            "goVersion": f"python{platform.python_version()}",
            "goOS": sys.platform,
            "goArch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        })

    async def h_system(self, request: web.Request) -> web.Response:
        load = 1e6 if self.draining else self.cpu.load
        return self._json(200, {"cpu_load": load, "draining": self.draining})

    def ice_servers_for(self, session_id: str) -> list[dict[str, Any]]:
        """The ICE servers a client should use, with TURN REST credentials
        generated from turn.static_auth_secret for TURN entries without a
        static user (rtcd's scheme; coturn's use-auth-secret)."""
        out: list[dict[str, Any]] = []
        for server in self.options.ice_servers:
            entry: dict[str, Any] = {"urls": list(server.urls)}
            if server.is_turn and not server.username and self.options.turn_secret:
                entry["username"], entry["credential"] = turn_credentials(
                    self.options.turn_secret, session_id, self.options.turn_expiry_minutes)
            elif server.username:
                entry["username"], entry["credential"] = server.username, server.credential
            out.append(entry)
        return out

    async def h_ice_servers(self, request: web.Request) -> web.Response:
        """Our addition: ICE servers (with TURN credentials) for one client session."""
        client_id = await self._authenticate(request)
        if not client_id:
            return web.Response(status=401, text="unauthorized")
        session_id = request.query.get("sessionID", "")
        if not session_id:
            return self._error(400, "sessionID is required")
        return web.json_response(self.ice_servers_for(session_id))

    async def h_healthz(self, request: web.Request) -> web.Response:
        return self._json(200, {"status": "ok"})

    async def h_readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return self._json(503, {"status": "draining", "sessions": len(self.rtc.sessions)})
        if not self.started:
            return self._json(503, {"status": "starting"})
        return self._json(200, {"status": "ready", "sessions": len(self.rtc.sessions)})

    async def _body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    async def h_register(self, request: web.Request) -> web.Response:
        o = self.options
        if not o.allow_self_registration:
            creds = self._basic(request)
            if not self._is_admin(creds):
                if creds is None or not await self._client_ok(creds):
                    return self._error(401, "unauthorized")
        body = await self._body(request)
        if body is None:
            return self._error(400, "invalid request body")
        client_id, auth_key = body.get("clientID"), body.get("authKey")
        if not isinstance(client_id, str) or not isinstance(auth_key, str):
            return self._error(400, "invalid request body")
        try:
            await asyncio.to_thread(self.auth.register, client_id, auth_key)
        except AuthError as exc:
            return self._error(400, str(exc))
        return self._json(201, {"clientID": client_id, "code": "201"})

    async def _client_ok(self, creds: tuple[str, str]) -> bool:
        try:
            return bool(await asyncio.to_thread(self.auth.authenticate, creds[0], creds[1]))
        except AuthError:
            return False

    async def h_unregister(self, request: web.Request) -> web.Response:
        o = self.options
        if not (o.enable_admin or o.allow_self_registration):
            return self._error(403, "forbidden")
        creds = self._basic(request)
        body = await self._body(request)
        if body is None or not isinstance(body.get("clientID"), str):
            return self._error(400, "invalid request body")
        client_id = body["clientID"]
        allowed = self._is_admin(creds) or (creds is not None and creds[0] == client_id and await self._client_ok(creds))
        if not allowed:
            return self._error(401, "unauthorized")
        try:
            await asyncio.to_thread(self.auth.unregister, client_id)
        except AuthError as exc:
            return self._error(400, str(exc))
        return self._json(200, {"code": "200"})

    async def h_login(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is None or not isinstance(body.get("clientID"), str) or not isinstance(body.get("authKey"), str):
            return self._error(400, "invalid request body")
        try:
            token = await asyncio.to_thread(self.auth.login, body["clientID"], body["authKey"])
        except AuthError as exc:
            return self._error(401, str(exc))
        return self._json(200, {"bearerToken": token, "code": "200"})

    @staticmethod
    def _session_json(cfg: SessionConfig) -> dict[str, Any]:
        return {
            "GroupID": cfg.group_id, "CallID": cfg.call_id, "UserID": cfg.user_id, "SessionID": cfg.session_id,
            "Props": {"channelID": cfg.channel_id, "av1Support": cfg.av1_support, "dcSignaling": cfg.dc_signaling},
        }

    async def h_sessions(self, request: web.Request) -> web.Response:
        client_id = await self._authenticate(request)
        if not client_id:
            return web.Response(status=401, text="unauthorized")
        sessions = self.rtc.get_sessions(client_id, request.match_info["call_id"])
        if not sessions:
            return web.Response(status=404, text="not found")
        return web.json_response([self._session_json(c) for c in sessions])

    async def h_session(self, request: web.Request) -> web.Response:
        client_id = await self._authenticate(request)
        if not client_id:
            return web.Response(status=401, text="unauthorized")
        for cfg in self.rtc.get_sessions(client_id, request.match_info["call_id"]):
            if cfg.session_id == request.match_info["session_id"]:
                return web.json_response(self._session_json(cfg))
        return web.Response(status=404, text="not found")

    async def h_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ---------------------------------------------------------------- WebSocket

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        client_id = await self._authenticate(request)
        if not client_id:
            # rtcd writes nothing and the upgrade fails; any non-101 status does
            return web.Response(status=401, text="unauthorized")
        ws = web.WebSocketResponse(heartbeat=self.options.ws_ping_interval,
                                   max_msg_size=self.options.ws_max_message_bytes)
        await ws.prepare(request)
        conn = _WsConn(ws, client_id)
        self.conns[conn.conn_id] = conn
        self.metrics.ws_connections.labels(client_id).inc()
        writer = asyncio.get_running_loop().create_task(self._ws_writer(conn))
        self._send(conn, wsmsg.encode("hello", {"clientID": client_id, "connID": conn.conn_id}), "hello")
        log.info("host %s connected (conn %s)", client_id, conn.conn_id)
        try:
            async for frame in ws:
                if frame.type == WSMsgType.BINARY:
                    self._on_frame(conn, frame.data)
                elif frame.type == WSMsgType.TEXT:
                    self.metrics.ws_errors.labels("text_frame").inc()
                    log.warning("host %s sent a text frame; only binary frames are processed", client_id)
                elif frame.type == WSMsgType.ERROR:
                    log.info("host %s connection error: %s", client_id, ws.exception())
                    break
        finally:
            self.conns.pop(conn.conn_id, None)
            self.metrics.ws_connections.labels(client_id).dec()
            writer.cancel()
            log.info("host %s disconnected (conn %s)", client_id, conn.conn_id)
        return ws

    async def _ws_writer(self, conn: _WsConn) -> None:
        while True:
            frame = await conn.queue.get()
            if frame is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError) as exc:
                log.info("send to host %s failed: %s", conn.client_id, exc)
                return

    def _send(self, conn: _WsConn, frame: bytes, mtype: str) -> None:
        try:
            conn.queue.put_nowait(frame)
        except asyncio.QueueFull:
            conn.dropped += 1
            self.metrics.ws_errors.labels("send_queue_full").inc()
            return
        self.metrics.ws_messages.labels(conn.client_id, mtype, "out").inc()

    def _on_frame(self, conn: _WsConn, data: bytes) -> None:
        try:
            msg = wsmsg.decode(data, self.options.ws_max_message_bytes)
        except wsmsg.WsMessageError as exc:
            self.metrics.ws_errors.labels("malformed").inc()
            log.warning("host %s: dropped a frame: %s", conn.client_id, exc)
            return
        self.metrics.ws_messages.labels(conn.client_id, msg.type, "in").inc()
        try:
            if msg.type == "join":
                self._on_join(conn, msg.data)
            elif msg.type == "leave":
                self.rtc.close_session(msg.data["sessionID"], "leave")
            elif msg.type == "reconnect":
                sid = msg.data["sessionID"]
                if sid in self.rtc.sessions and self.rtc.sessions[sid].cfg.group_id == conn.client_id:
                    self.session_conn[sid] = conn
            elif msg.type == "rtc":
                m: Message = msg.data
                session = self.rtc.sessions.get(m.session_id)
                if session is None or session.cfg.group_id != conn.client_id:
                    self.metrics.ws_errors.labels("unknown_session").inc()
                    log.info("host %s: rtc message for unknown session %s", conn.client_id, m.session_id)
                    return
                self.rtc.handle_message(m)
        except (RtcError, ValueError, KeyError) as exc:
            self.metrics.ws_errors.labels("rejected").inc()
            log.warning("host %s: %s message rejected: %s", conn.client_id, msg.type, exc)

    def _on_join(self, conn: _WsConn, data: dict[str, Any]) -> None:
        cfg = SessionConfig(
            group_id=conn.client_id,
            call_id=data["callID"],
            user_id=str(data.get("userID", "")),
            session_id=data["sessionID"],
            channel_id=str(data.get("channelID", "")),
            av1_support=bool(data.get("av1Support", False)),
            dc_signaling=bool(data.get("dcSignaling", False)),
        )
        try:
            self.rtc.init_session(cfg)
        except SessionExistsError:
            # rtcd logs and sends nothing back
            log.warning("host %s: join for existing session %s", conn.client_id, cfg.session_id)
            self.metrics.ws_errors.labels("session_exists").inc()
            return
        except (CallFullError, DrainingError) as exc:
            log.info("host %s: join refused: %s", conn.client_id, exc)
            self.metrics.ws_errors.labels("join_refused").inc()
            self._send(conn, wsmsg.encode("close", {"sessionID": cfg.session_id}), "close")
            return
        self.session_conn[cfg.session_id] = conn

    def _on_rtc_message(self, msg: Message) -> None:
        conn = self.session_conn.get(msg.session_id)
        if conn is None or conn.conn_id not in self.conns:
            self.metrics.ws_errors.labels("no_connection").inc()
            return
        mtype = "vad" if msg.type in (MessageType.VOICE_ON, MessageType.VOICE_OFF) else "rtc"
        self._send(conn, wsmsg.encode_rtc(mtype, msg), mtype)

    def _on_rtc_close(self, cfg: SessionConfig, reason: str) -> None:
        conn = self.session_conn.pop(cfg.session_id, None)
        if conn is None or conn.conn_id not in self.conns:
            return
        self._send(conn, wsmsg.encode("close", {"sessionID": cfg.session_id}), "close")

