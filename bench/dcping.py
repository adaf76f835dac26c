"""Micro-benchmark: the SFU's Python cost of one calls-dc ping round trip (and of a consent check).

Runs a real `RtcServer` (real UDP socket on 127.0.0.1, the native router, ICE-lite, DTLS, SCTP,
the calls-dc session code) and ``--clients`` simulated participants (`simclient.SimClient`: the
calls benchmark's RTCPeer look-alike) in one process, on one event loop, over loopback. Every
client joins (offer with calls-dc only), and once all data channels are open the measurement
window starts: each client sends a msgpack Ping every ``--interval`` seconds (RTCPeer: 1 s) and
the server answers Pong; the client's delayed SACK (200 ms) comes back on its own, as from a
browser.

What is timed is the server's Python only: the router's event callback (every STUN and DTLS
datagram the router hands to Python: ICE, DTLS decrypt, SCTP, DCEP, msgpack, the Pong's way
back out through SCTP, DTLS and ``sendto``) and the transports' timer callbacks (delayed SACK,
T3, heartbeat). STUN handling is timed on its own as well. Results per ping are
``(event callback time - STUN time + timer time) / pongs``.

    python bench/dcping.py                       # 100 clients, 10 s window
    python bench/dcping.py --profile out.prof    # cProfile of the window (server and clients)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simclient import MediaProfile, SimClient, open_user_socket  # noqa: E402
from switchboard.engine.certificate import generate_certificate  # noqa: E402
from switchboard.engine.mediaplane import MediaConfig  # noqa: E402
from switchboard.engine.transport import WebRtcTransport  # noqa: E402
from switchboard.engine.transportserver import TransportConfig  # noqa: E402
from switchboard.signaling import dcmsg  # noqa: E402
from switchboard.signaling.rtc import Message, RtcConfig, RtcServer, SessionConfig  # noqa: E402

_PING_BYTES = dcmsg.encode(dcmsg.DCMessageType.PING)


class _StubPlane:
    """The LoadPlane methods SimClient calls; no media in this benchmark."""

    def set_user_keys(self, *args: Any) -> None:
        pass

    def set_sender_active(self, *args: Any) -> None:
        pass

    def set_user_extensions(self, *args: Any, **kw: Any) -> None:
        pass


class _Timed:
    """Accumulated wall time and calls of a wrapped callable."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.on = False
        self.worst = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            if not self.on:
                return fn(*args, **kw)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                dt = time.perf_counter() - t0
                self.seconds += dt
                self.calls += 1
                self.worst = max(self.worst, dt)
        return timed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    config = RtcConfig(
        media=MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600),
        transport=TransportConfig(tcp_addresses=()),
        local_ips=("127.0.0.1",),
        trickle_candidates=False,
    )
    clients: dict[str, SimClient] = {}

    def on_message(msg: Message) -> None:
        c = clients.get(msg.session_id)
        if c is not None:
            c.on_rtc(msg.type, msg.data)

    server = RtcServer(config, on_message=on_message)
    await server.start()

    events, stun_t, timers = _Timed(), _Timed(), _Timed()
    router = server.plane.router
    router.event_callback = events.wrap(router.event_callback)
    ts = server.transports
    ts._on_stun = stun_t.wrap(ts._on_stun)  # type: ignore[method-assign]
    orig_on_timer = WebRtcTransport._on_timer
    WebRtcTransport._on_timer = timers.wrap(orig_on_timer)  # type: ignore[method-assign]

    cert = generate_certificate()
    profile = MediaProfile(ping_interval=args.interval, consent_interval=2.5)
    plane: Any = _StubPlane()
    socks: list[socket.socket] = []
    try:
        for i in range(args.clients):
            sock = open_user_socket()
            socks.append(sock)
            sid = f"s{i}"
            server.init_session(SessionConfig("g", f"c{i // 8}", f"u{i}", sid))

            def send_rtc(mtype: int, data: bytes, sid: str = sid, i: int = i) -> None:
                server.handle_message(Message("g", f"u{i}", sid, f"c{i // 8}", mtype, data))

            client = SimClient(plane=plane, sock=sock, uid=i, session_id=sid, user_id=f"u{i}",
                               call_id=f"c{i // 8}", certificate=cert, profile=profile,
                               send_rtc=send_rtc, unmuted=False, sharer=False)
            clients[sid] = client

            def readable(sock: socket.socket = sock, client: SimClient = client) -> None:
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        return
                    except OSError:
                        return
                    client.on_datagram(1 if data and data[0] < 4 else 2, data)

            loop.add_reader(sock.fileno(), readable)
            client.start()
            if i % 10 == 9:
                await asyncio.sleep(0.02)
        deadline = time.monotonic() + 60
        while not all(c.ready or c.closed for c in clients.values()):
            if time.monotonic() > deadline:
                raise SystemExit("clients did not connect within 60 s")
            await asyncio.sleep(0.1)
        failed = [c.times.failed for c in clients.values() if c.times.failed]
        if failed:
            raise SystemExit(f"{len(failed)} clients failed: {failed[:3]}")
        await asyncio.sleep(1.5)  # let every client's ping timer start and SACKs settle
        gc.collect()
        if args.loop:
            return replay(args, server, next(iter(clients.values())), [s.fileno() for s in socks])
        pongs0 = sum(c.pongs for c in clients.values())
        consent0 = sum(c.consent_ok for c in clients.values())
        prof = cProfile.Profile() if args.profile else None
        events.on = stun_t.on = timers.on = True
        cpu0, t0 = time.process_time(), time.monotonic()
        if prof is not None:
            prof.enable()
        await asyncio.sleep(args.duration)
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.profile)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - t0
        events.on = stun_t.on = timers.on = False
        pongs = sum(c.pongs for c in clients.values()) - pongs0
        consents = sum(c.consent_ok for c in clients.values()) - consent0
        rtts = sorted(r for c in clients.values() for r in c.rtt_samples[-5:])
    finally:
        WebRtcTransport._on_timer = orig_on_timer  # type: ignore[method-assign]
        for c in clients.values():
            c.close()
        for s in socks:
            loop.remove_reader(s.fileno())
            s.close()
        await server.stop()
    dtls_us = (events.seconds - stun_t.seconds) * 1e6
    return {
        "clients": args.clients,
        "window_s": round(wall, 2),
        "pongs": pongs,
        "consent_checks": consents,
        "server_us_per_ping": round((dtls_us + timers.seconds * 1e6) / max(1, pongs), 1),
        "server_dtls_us_per_ping": round(dtls_us / max(1, pongs), 1),
        "server_timer_us_per_ping": round(timers.seconds * 1e6 / max(1, pongs), 1),
        "server_timer_calls_per_ping": round(timers.calls / max(1, pongs), 2),
        "event_callbacks_per_ping": round(events.calls / max(1, pongs), 2),
        "server_us_per_stun": round(stun_t.seconds * 1e6 / max(1, stun_t.calls), 1),
        "worst_event_callback_ms": round(events.worst * 1e3, 2),
        "process_cpu_pct": round(100 * cpu / wall, 1),
        "rtt_p50_ms": round(rtts[len(rtts) // 2] * 1e3, 2) if rtts else None,
    }


def replay(args: argparse.Namespace, server: RtcServer, client: SimClient, fds: list[int]) -> dict[str, Any]:
    """Synchronous round trips on one established pair, the event loop not running: the
    client's Ping goes to the server's socket, ``router.on_readable`` (the real receive path)
    answers it, the client takes the Pong, sends its delayed SACK at once, and the server
    reads that too. Hot caches, thread CPU time (other processes on the core do not count):
    the cleanest per-ping figure."""
    loop = asyncio.get_running_loop()
    for fd in fds:
        loop.remove_reader(fd)
    loop.remove_reader(server.plane.sockets[0].fileno())
    for h in (client._ping_timer, client._consent_timer, client._timer):
        if h is not None:
            h.cancel()
    router = server.plane.router
    sock = client.sock
    assert client.sctp is not None and client.dc is not None

    def client_read() -> int:
        n = 0
        while True:
            try:
                data = sock.recv(2048)
            except BlockingIOError:
                return n
            n += 1
            client.on_datagram(1 if data[0] < 4 else 2, data)

    prof: cProfile.Profile | None = None
    cpu = [0.0]

    def server_read() -> float:
        if prof is not None:
            prof.enable()
        t0 = time.perf_counter()
        c0 = time.thread_time()
        router.on_readable(0)
        t = time.perf_counter() - t0
        cpu[0] += time.thread_time() - c0
        if prof is not None:
            prof.disable()
        return t

    def round_trip() -> tuple[float, float]:
        client._send_dc(_PING_BYTES)
        t_ping = server_read()
        if client_read() != 1:
            raise SystemExit("no Pong")
        sctp = client.sctp
        assert sctp is not None
        due = sctp.next_timer()
        if due is not None:
            sctp.handle_timer(due)  # the delayed SACK, now
        client._pump()
        t_sack = server_read()
        client_read()
        return t_ping, t_sack

    def stun_check() -> float:
        client._consent()
        if client._consent_timer is not None:
            client._consent_timer.cancel()
        t = server_read()
        client_read()
        return t

    for _ in range(200):
        round_trip()
        stun_check()
    gc.collect()
    prof = cProfile.Profile() if args.profile else None  # the server's reads only
    pings: list[float] = []
    sacks: list[float] = []
    stuns: list[float] = []
    cpu[0] = 0.0
    for _ in range(args.loop):
        a, b = round_trip()
        pings.append(a)
        sacks.append(b)
        stuns.append(stun_check())
    if prof is not None:
        prof.dump_stats(args.profile)

    def low(v: list[float]) -> float:
        # 20th percentile of wall time: the machine is shared, and preemption only adds
        return round(sorted(v)[len(v) // 5] * 1e6, 1)

    if os.environ.get("DCPING_DUMP"):
        for name, v in (("ping", pings), ("sack", sacks), ("stun", stuns)):
            q = sorted(v)
            print(name, [round(q[int(len(q) * f)] * 1e6, 1) for f in (0, 0.05, 0.2, 0.5, 0.8, 0.95)])
    return {
        "mode": "replay",
        "round_trips": args.loop,
        "server_us_per_ping": round(low(pings) + low(sacks), 1),
        "server_us_ping_record": low(pings),
        "server_us_sack_record": low(sacks),
        "server_us_per_stun": low(stuns),
        "cpu_us_per_ping_and_stun": round(cpu[0] / args.loop * 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0, help="ping period per client (s)")
    ap.add_argument("--profile", help="write a cProfile of the window to this file")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop, as switchboard serve does")
    ap.add_argument("--loop", type=int, default=0,
                    help="instead of the timed window: N synchronous round trips on one pair (see replay)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.uvloop:
        import uvloop

        print(json.dumps(uvloop.run(run(args))))
    else:
        print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
