"""The calls benchmark's load process: C calls x U users, K unmuted, S screen sharers.

Run by ``bench/calls.py`` (pinned to the load core); it can also run alone against any
rtcd-compatible host API (``python bench/loadclient.py --url http://127.0.0.1:8045 ...``).

What it does, like a host with browsers would (reference rtcd.md section 6 for Mattermost's
``lt``, which this replaces with something light enough for one core):

1. registers a host client (self-registration) and opens one host WebSocket;
2. joins every user through it, spread uniformly at random over the join window: each user is
   a :class:`simclient.SimClient` (ICE, DTLS, SCTP, ``calls-dc``, SDP) with its own UDP socket,
   and its media runs in the native ``LoadPlane`` thread;
3. waits until every user's data channel is open and every receiver gets every source it
   should (the settle phase), then a short warm-up;
4. opens the measured window (``LoadPlane.window_begin``), keeps it for ``--duration`` seconds,
   closes it, lets in-flight packets drain, and reads the results;
5. leaves every session.

Output: JSON lines on stdout, flushed as they happen, for the orchestrator:
``{"event": "progress", "phase": ..., "done": n, "total": N}``,
``{"event": "window", "state": "begin" | "end", "t": <time.time()>}`` and at the end
``{"event": "result", ...}`` (see :meth:`LoadRun.result`). Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import resource
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadplane import USER_COUNTERS, LoadPlaneApi, new_load_plane  # noqa: E402
from simclient import (  # noqa: E402
    MediaProfile,
    SimClient,
    SimClientError,
    open_shared_socket,
    open_user_socket,
    percentile,
    shared_user_ip,
)
from switchboard.engine.certificate import generate_certificate  # noqa: E402
from switchboard.signaling.client import HostClient  # noqa: E402
from switchboard.signaling.rtc import Message  # noqa: E402

log = logging.getLogger("bench.loadclient")


@dataclass(frozen=True)
class LoadConfig:
    """One load run's shape and pacing."""

    url: str
    """Base URL of the SFU's host API."""
    calls: int = 1
    """Concurrent calls."""
    users: int = 2
    """Participants per call."""
    unmuted: int = 1
    """Participants per call who unmute and send voice (the first ones of each call)."""
    screen: int = 0
    """Calls in which participant 0 shares a screen."""
    duration: float = 30.0
    """Seconds of measured window."""
    join_window: float = 10.0
    """Joins are spread uniformly at random over this many seconds."""
    settle_timeout: float = 30.0
    """Seconds after the last join to wait for every stream to flow before measuring anyway."""
    warmup: float = 2.0
    """Seconds between settling and the window."""
    drain: float = 0.5
    """Seconds after the window for in-flight packets before reading results."""
    profile: MediaProfile = field(default_factory=MediaProfile)
    """Media sizes, rates and signaling options of every participant."""
    client_id: str = ""
    """Host API client id (random when empty)."""
    auth_key: str = ""
    """Host API key (random when empty)."""
    rt_priority: int = 0
    """SCHED_FIFO priority of the media thread (0: normal scheduling)."""
    poll_us: float = 100.0
    """Longest sleep of the media thread (its receive polling interval)."""
    rtcp_interval: float = 1.0
    """Nominal RTCP report interval per participant (randomised 0.5-1.5x)."""
    seed: int = 0
    """Random seed for join times and session ids (0: random)."""
    leave: bool = True
    """Leave every session at the end (the SFU then frees them)."""
    shared_sockets: int = 8
    """Wildcard sockets that carry all users, each user with its own 127.x.y.z address
    (polled without epoll, so the SFU's sends do not run epoll wake-ups for 1000s of
    sockets); 0: one socket per user, registered with epoll."""
    controlled: bool = False
    """Wait for a ``begin`` line on stdin before opening the window (the orchestrator samples
    the SFU first), and announce ``drained`` once in-flight packets are counted."""


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _thread_runtimes_ns() -> dict[int, int]:
    """Exact run time of each thread of this process (schedstat, ns), by thread id."""
    out: dict[int, int] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/schedstat") as f:
                out[int(task)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


def stall_episodes(slow: list[tuple[float, float, int, int]], gap: float = 0.02) -> dict[str, Any]:
    """Group packets delayed >= 2 ms into episodes (arrivals less than ``gap`` s apart). Many
    receivers and sources in one episode point at the SFU stalling; few at one client."""
    if not slow:
        return {"packets": 0, "episodes": 0}
    slow = sorted(slow)
    episodes: list[list[tuple[float, float, int, int]]] = [[slow[0]]]
    for item in slow[1:]:
        if item[0] - episodes[-1][-1][0] <= gap:
            episodes[-1].append(item)
        else:
            episodes.append([item])
    starts = [e[0][0] for e in episodes]
    gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
    worst = max(episodes, key=lambda e: max(x[1] for x in e))
    return {
        "packets": len(slow),
        "episodes": len(episodes),
        "median_interval_s": gaps[len(gaps) // 2] if gaps else None,
        "max_delay_ms": max(x[1] for x in slow) * 1e3,
        "median_receivers_per_episode": sorted(len({x[2] for x in e}) for e in episodes)[len(episodes) // 2],
        "median_sources_per_episode": sorted(len({x[3] for x in e}) for e in episodes)[len(episodes) // 2],
        "worst_episode": {"packets": len(worst), "receivers": len({x[2] for x in worst}),
                          "sources": len({x[3] for x in worst}),
                          "span_ms": (worst[-1][0] - worst[0][0]) * 1e3},
        "truncated": len(slow) >= 4096,
    }


class SimClientClosed(SimClientError):
    """The SFU closed the session (host ``close`` message)."""


@dataclass
class _Participant:
    index: int
    call: int
    slot: int
    unmuted: bool
    sharer: bool
    session_id: str
    user_id: str
    call_id: str
    client: SimClient | None = None


class _HostLink:
    """The host WebSocket, with our messages sent strictly in order (join before offer)."""

    def __init__(self, url: str, client_id: str, auth_key: str,
                 on_rtc: Callable[[Message], None], on_close: Callable[[str], None]) -> None:
        self.host = HostClient(url, client_id, auth_key, on_rtc=on_rtc, on_close=on_close)
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    async def start(self) -> None:
        await self.host.connect()
        self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _writer(self) -> None:
        while True:
            kind, arg = await self._queue.get()
            try:
                if kind == "join":
                    await self.host.join(**arg)
                elif kind == "rtc":
                    await self.host.send_rtc(arg)
                elif kind == "leave":
                    await self.host.leave(arg)
                self.sent += 1
            except Exception as exc:  # the link is broken: report, keep draining
                log.warning("host link: %s failed: %s", kind, exc)

    def put(self, kind: str, arg: Any) -> None:
        self._queue.put_nowait((kind, arg))

    async def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.host.close()


class LoadRun:
    """See the module docstring."""

    def __init__(self, cfg: LoadConfig, emit: Callable[[dict[str, Any]], None] = _emit) -> None:
        self.cfg = cfg
        self.emit = emit
        self.rng = random.Random(cfg.seed or None)
        self.participants: list[_Participant] = []
        self.by_session: dict[str, _Participant] = {}
        self.plane: LoadPlaneApi | None = None
        self.sockets: list[Any] = []
        """Each user's socket (shared sockets appear once per user)."""
        self.user_ips: list[str | None] = []
        self._owned_sockets: list[Any] = []
        self.link: _HostLink | None = None
        self.vad_events = 0
        self.closed_by_sfu: list[str] = []
        self.window: dict[str, Any] = {}
        self.window_start_real = 0.0
        self._ready = 0

    # ---------------------------------------------------------------- roles

    def _plan(self) -> None:
        cfg = self.cfg
        tag = secrets.token_hex(3)
        for c in range(cfg.calls):
            call_id = f"bench-{tag}-call{c}"
            for u in range(cfg.users):
                p = _Participant(
                    index=len(self.participants), call=c, slot=u, unmuted=u < cfg.unmuted,
                    sharer=(u == 0 and c < cfg.screen), session_id=f"{tag}c{c}u{u}{secrets.token_hex(4)}",
                    user_id=f"user-c{c}-u{u}", call_id=call_id)
                self.participants.append(p)
                self.by_session[p.session_id] = p

    # ---------------------------------------------------------------- callbacks

    def _on_rtc(self, msg: Message) -> None:
        p = self.by_session.get(msg.session_id)
        if p is None or p.client is None:
            return
        if msg.type in (7, 8):
            self.vad_events += 1
            return
        p.client.on_rtc(int(msg.type), bytes(msg.data))

    def _on_close(self, session_id: str) -> None:
        p = self.by_session.get(session_id)
        if p is not None and p.client is not None and not p.client.closed:
            self.closed_by_sfu.append(session_id)
            p.client.fail(SimClientClosed("the SFU closed the session"))

    def _on_plane_events(self) -> None:
        assert self.plane is not None
        for uid, kind, data in self.plane.poll_events():
            client = self.participants[uid].client
            if client is not None:
                client.on_datagram(kind, data)

    def _on_ready(self, client: SimClient) -> None:
        self._ready += 1

    def _send_rtc_for(self, p: _Participant) -> Callable[[int, bytes], None]:
        link = self.link
        assert link is not None

        def send(mtype: int, data: bytes) -> None:
            link.put("rtc", Message("", p.user_id, p.session_id, p.call_id, mtype, data))
        return send

    def _join(self, p: _Participant) -> None:
        assert self.plane is not None and self.link is not None
        p.client = SimClient(
            plane=self.plane, sock=self.sockets[p.index], uid=p.index, session_id=p.session_id,
            user_id=p.user_id, call_id=p.call_id, certificate=self.certificate, profile=self.cfg.profile,
            send_rtc=self._send_rtc_for(p), unmuted=p.unmuted, sharer=p.sharer, on_ready=self._on_ready,
            src_ip=self.user_ips[p.index])
        self.link.put("join", {"call_id": p.call_id, "user_id": p.user_id, "session_id": p.session_id,
                               "channel_id": p.call_id, "dc_signaling": self.cfg.profile.dc_signaling})
        p.client.start()

    # ---------------------------------------------------------------- expectations

    def _sources(self) -> dict[int, list[int]]:
        """Per call: the global sender indexes a receiver must get (voice of the unmuted;
        the screen's forwarded layer: the only one, or 'l' with simulcast)."""
        out: dict[int, list[int]] = {}
        for p in self.participants:
            if p.client is None:
                continue
            senders = p.client.senders
            if not senders:
                continue
            srcs = out.setdefault(p.call, [])
            if p.unmuted:
                srcs.append(senders[0])
            if p.sharer:
                srcs.append(senders[1] if p.unmuted else senders[0])
        return out

    def _expected_pairs(self) -> set[tuple[int, int]]:
        assert self.plane is not None
        sources = self._sources()
        owner = {s["sender"]: s["user"] for s in self.plane.senders()}
        pairs: set[tuple[int, int]] = set()
        for p in self.participants:
            for s in sources.get(p.call, []):
                if owner.get(s) != p.index:
                    pairs.add((p.index, s))
        return pairs

    def _flowing(self, expected: set[tuple[int, int]]) -> int:
        assert self.plane is not None
        seen = {(s["user"], s["sender"]) for s in self.plane.streams() if s["total"] > 0}
        return len(expected & seen)

    # ---------------------------------------------------------------- run

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self._plan()
        n = len(self.participants)
        if n == 0:
            raise ValueError("nothing to do: calls x users is 0")
        self.certificate = generate_certificate()
        max_senders = n + 2 * cfg.screen + 1
        self.plane = new_load_plane(n, max_senders, max_streams=min(1024, cfg.unmuted + 6),
                                    poll_us=cfg.poll_us, rtcp_interval=cfg.rtcp_interval,
                                    rt_priority=cfg.rt_priority)
        shared = [open_shared_socket() for _ in range(min(cfg.shared_sockets, n))]
        for sock in shared:
            self.plane.add_shared_socket(sock.fileno())
        self._owned_sockets = list(shared)
        for i in range(n):
            ssrc = int.from_bytes(os.urandom(4), "big") or 1
            if shared:
                sock = shared[i % len(shared)]
                self.user_ips.append(shared_user_ip(i))
                self.plane.add_user(sock.fileno(), ssrc, self.user_ips[-1])
            else:
                sock = open_user_socket()
                self._owned_sockets.append(sock)
                self.user_ips.append(None)
                self.plane.add_user(sock.fileno(), ssrc)
            self.sockets.append(sock)
        self.plane.start()
        loop.add_reader(self.plane.event_fd, self._on_plane_events)
        self.link = _HostLink(cfg.url, cfg.client_id or f"bench{secrets.token_hex(4)}",
                              cfg.auth_key or secrets.token_hex(16), self._on_rtc, self._on_close)
        try:
            await self.link.start()
            return await self._phases(loop)
        finally:
            await self._teardown(loop)

    async def _phases(self, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        cfg = self.cfg
        assert self.plane is not None
        n = len(self.participants)
        t0 = loop.time() + 0.2
        order = list(self.participants)
        self.rng.shuffle(order)
        offsets = sorted(self.rng.uniform(0, cfg.join_window) for _ in order)
        for p, off in zip(order, offsets):
            loop.call_at(t0 + off, self._join, p)
        # join phase
        join_end = t0 + cfg.join_window
        while loop.time() < join_end + 0.1:
            await asyncio.sleep(0.5)
            joined = sum(1 for p in self.participants if p.client is not None)
            self.emit({"event": "progress", "phase": "join", "done": joined, "total": n,
                       "ready": self._ready})
        # settle: every data channel open, every expected stream flowing
        deadline = loop.time() + cfg.settle_timeout
        expected: set[tuple[int, int]] = set()
        flowing = 0
        while True:
            failed = sum(1 for p in self.participants if p.client is not None and p.client.times.failed)
            expected = self._expected_pairs()
            flowing = self._flowing(expected)
            self.emit({"event": "progress", "phase": "settle", "done": flowing, "total": len(expected),
                       "ready": self._ready, "failed": failed})
            if (self._ready + failed >= n and flowing >= len(expected)) or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        settled = flowing >= len(expected) and self._ready == n
        # Every participant's objects now live until the end: move them out of the garbage
        # collector's reach, or its full collections (tens of ms with 1000+ participants)
        # stall this process's control plane and its share of the core.
        gc.collect()
        gc.freeze()
        await asyncio.sleep(cfg.warmup)
        if cfg.controlled:
            self.emit({"event": "window", "state": "ready", "t": time.time()})
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() != "begin":
                raise RuntimeError(f"expected 'begin' on stdin, got {line!r}")
        # measured window
        counters0 = self.plane.user_counters.sum(axis=0).copy()
        control0 = self._control_sent()
        cpu0, rt0 = _self_cpu(), _thread_runtimes_ns()
        self.plane.window_begin()
        w0 = time.monotonic()
        self.window_start_real = time.time()
        self.emit({"event": "window", "state": "begin", "t": self.window_start_real})
        while time.monotonic() - w0 < cfg.duration:
            await asyncio.sleep(min(1.0, max(0.0, cfg.duration - (time.monotonic() - w0))))
            self.emit({"event": "progress", "phase": "measure", "done": round(time.monotonic() - w0, 1),
                       "total": cfg.duration})
        self.plane.window_end()
        w1 = time.monotonic()
        self.emit({"event": "window", "state": "end", "t": time.time()})
        cpu1, rt1 = _self_cpu(), _thread_runtimes_ns()
        main_tid = os.getpid()
        threads = {tid: rt1[tid] - rt0.get(tid, 0) for tid in rt1}
        main_ns = threads.pop(main_tid, 0)
        media_ns = max(threads.values(), default=0)
        log.info("thread run times in the window (s): main %.2f, others %s", main_ns * 1e-9,
                    {tid: round(v * 1e-9, 2) for tid, v in threads.items()})
        counters1 = self.plane.user_counters.sum(axis=0).copy()
        control1 = self._control_sent()
        await asyncio.sleep(cfg.drain)
        self.emit({"event": "window", "state": "drained", "t": time.time()})
        self.window = {"seconds": w1 - w0, "settled": settled, "expected_pairs": len(expected),
                       "flowing_pairs": flowing, "load_cpu_s": cpu1 - cpu0,
                       "load_runtime_s": (main_ns + sum(threads.values())) * 1e-9,
                       "load_python_s": main_ns * 1e-9, "load_media_thread_s": media_ns * 1e-9,
                       "control_sent": control1 - control0,
                       "counters": {k: int(b - a) for k, a, b in zip(USER_COUNTERS, counters0, counters1)}}
        return self.result(expected)

    def _control_sent(self) -> int:
        return sum(p.client.control_sent for p in self.participants if p.client is not None)

    def result(self, expected: set[tuple[int, int]]) -> dict[str, Any]:
        """Everything the clients measured, as one JSON-able dict."""
        assert self.plane is not None
        streams = self.plane.streams()
        senders = {s["sender"]: s for s in self.plane.senders()}
        got: dict[tuple[int, int], dict[str, Any]] = {}
        for s in streams:
            if s["sender"] >= 0:
                got[(s["user"], s["sender"])] = s
        exp_total = rec_total = 0
        per_pair_loss: list[float] = []
        lossy: list[dict[str, Any]] = []
        for (uid, sidx) in sorted(expected):
            want = int(senders[sidx]["window"]) if sidx in senders else 0
            have = min(int(got[(uid, sidx)]["window"]), want) if (uid, sidx) in got else 0
            exp_total += want
            rec_total += have
            loss = (want - have) / want if want else 0.0
            per_pair_loss.append(loss)
            if want and have < want and len(lossy) < 20:
                lossy.append({"receiver": uid, "sender": sidx, "source_user": senders[sidx]["user"],
                              "expected": want, "received": have})
        unexpected = sum(1 for key in got if key not in expected)
        hist, n_delay, delay_sum, delay_max = self.plane.delay_histogram()
        cum = np.cumsum(hist)

        def pct(q: float) -> float | None:
            if n_delay == 0:
                return None
            return float(np.searchsorted(cum, q * n_delay)) * 1e-3  # bucket in us -> ms

        joins = [p.client.times for p in self.participants if p.client is not None]
        dc_ms = [1000 * (t.dc_open - t.join_sent) for t in joins if t.dc_open is not None]
        ice_ms = [1000 * (t.ice - t.join_sent) for t in joins if t.ice is not None]
        failures = [f"{p.session_id}: {p.client.times.failed}" for p in self.participants
                    if p.client is not None and p.client.times.failed]
        rtts = [r for p in self.participants if p.client is not None for r in p.client.rtt_samples]
        stats = self.plane.stats()
        slow = stall_episodes(self.plane.slow_packets())
        summaries = [p.client.summary() for p in self.participants if p.client is not None]
        totals = {k: int(v) for k, v in zip(USER_COUNTERS, self.plane.user_counters.sum(axis=0))}
        dups = sum(int(s["dups"]) for s in streams)
        w = self.window
        return {
            "event": "result",
            "config": {**{k: v for k, v in asdict(self.cfg).items() if k != "profile"},
                       "profile": asdict(self.cfg.profile)},
            "participants": len(self.participants),
            "ready": self._ready,
            "failed": len(failures),
            "failures": failures[:10],
            "closed_by_sfu": len(self.closed_by_sfu),
            "window": w,
            "loss": (exp_total - rec_total) / exp_total if exp_total else None,
            "expected_packets": exp_total,
            "received_packets": rec_total,
            "pairs": len(expected),
            "pairs_with_loss": sum(1 for x in per_pair_loss if x > 0),
            "max_pair_loss": max(per_pair_loss, default=0.0),
            "lossy_pairs": lossy,
            "unexpected_streams": unexpected,
            "duplicates": dups,
            "delay_p50_ms": pct(0.50),
            "delay_p99_ms": pct(0.99),
            "delay_p999_ms": pct(0.999),
            "delay_mean_ms": delay_sum / n_delay * 1e3 if n_delay else None,
            "delay_max_ms": delay_max * 1e3,
            "delay_max_at_s": (stats["delay_max_at"] - self.window_start_real) if stats.get("delay_max_at") else None,
            "delay_samples": n_delay,
            "join_p50_ms": percentile(dc_ms, 50),
            "join_p95_ms": percentile(dc_ms, 95),
            "join_max_ms": max(dc_ms, default=None),
            "ice_p50_ms": percentile(ice_ms, 50),
            "dc_rtt_p50_ms": (percentile(rtts, 50) or 0) * 1e3 if rtts else None,
            "pings": sum(s["pings"] for s in summaries),
            "pongs": sum(s["pongs"] for s in summaries),
            "consent_sent": sum(s["consent_sent"] for s in summaries),
            "consent_ok": sum(s["consent_ok"] for s in summaries),
            "offers_answered": sum(s["offers_answered"] for s in summaries),
            "vad_events": self.vad_events,
            "plane": stats,
            "stalls": slow,
            "totals": totals,
            "rtx": sum(int(s["rtx"]) for s in senders.values()),
            "pli_rx": sum(int(s["pli_rx"]) for s in senders.values()),
        }

    async def _teardown(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.link is not None:
            if self.cfg.leave:
                for p in self.participants:
                    if p.client is not None:
                        self.link.put("leave", p.session_id)
                await self.link.flush(5.0)
            for p in self.participants:
                if p.client is not None:
                    p.client.close()
            await asyncio.sleep(0.1)
            await self.link.close()
        if self.plane is not None:
            try:
                loop.remove_reader(self.plane.event_fd)
            except (ValueError, OSError):
                pass
            self.plane.stop()
        for sock in self._owned_sockets:
            sock.close()


def parse_args(argv: list[str] | None = None) -> tuple[LoadConfig, argparse.Namespace]:
    ap = argparse.ArgumentParser(description="Simulated WebRTC participants against an rtcd-compatible SFU.")
    ap.add_argument("--url", required=True, help="host API base URL, e.g. http://127.0.0.1:8045")
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--users", type=int, default=2)
    ap.add_argument("--unmuted", type=int, default=1)
    ap.add_argument("--screen", type=int, default=0)
    ap.add_argument("--simulcast", action="store_true")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--join-window", type=float, default=10.0)
    ap.add_argument("--settle-timeout", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--audio-payload", type=int, default=160)
    ap.add_argument("--ping-interval", type=float, default=1.0)
    ap.add_argument("--consent-interval", type=float, default=2.5)
    ap.add_argument("--rtcp-interval", type=float, default=1.0)
    ap.add_argument("--dc-signaling", action="store_true")
    ap.add_argument("--poll-us", type=float, default=100.0)
    ap.add_argument("--shared-sockets", type=int, default=8,
                    help="wildcard sockets carrying all users (0: one socket per user, with epoll)")
    ap.add_argument("--rt-priority", type=int, default=0)
    ap.add_argument("--client-id", default="")
    ap.add_argument("--auth-key", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-leave", action="store_true")
    ap.add_argument("--controlled", action="store_true",
                    help="wait for 'begin' on stdin before the window (used by calls.py)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    profile = MediaProfile(audio_payload=a.audio_payload, simulcast=a.simulcast, ping_interval=a.ping_interval,
                           consent_interval=a.consent_interval, dc_signaling=a.dc_signaling)
    cfg = LoadConfig(url=a.url, calls=a.calls, users=a.users, unmuted=min(a.unmuted, a.users), screen=min(a.screen, a.calls),
                     duration=a.duration, join_window=a.join_window, settle_timeout=a.settle_timeout,
                     warmup=a.warmup, profile=profile, client_id=a.client_id, auth_key=a.auth_key,
                     rt_priority=a.rt_priority, poll_us=a.poll_us, rtcp_interval=a.rtcp_interval, seed=a.seed,
                     leave=not a.no_leave, controlled=a.controlled, shared_sockets=a.shared_sockets)
    return cfg, a


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="loadclient %(levelname)s %(name)s: %(message)s")
    run = LoadRun(cfg)
    try:
        import uvloop
        result = uvloop.run(run.run())
    except ImportError:  # pragma: no cover
        result = asyncio.run(run.run())
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
