"""The calls benchmark: the seeds' per-call CPU/bandwidth table, for Switchboard, on this machine.

``python bench/calls.py --calls 100 --users 8 --unmuted 2 [--screen 0] --duration 30``
starts ``switchboard serve`` (pinned to one core), drives it with real WebRTC participants
from ``bench/loadclient.py`` (pinned to the other core; ICE, DTLS, SCTP, ``calls-dc`` pings,
SRTP media, browser-like RTCP, through the host API like a host), prints a progress bar while
joining and measuring, then a table with the columns of the Calls deployment guide's
Benchmarks table (``shared/seeds/calls-self-hosted-deployment.txt``) plus what a sizing
engineer needs next to them: CPU-microseconds per forwarded packet, packets per second, loss,
forwarding delay and join time. ``--json`` makes the last line one JSON object. ``--table
seeds`` runs every seed row that fits this machine and writes ``results.md``,
``results.json`` and ``chart.png`` (ours beside rtcd's published figures) into a results
folder. See ``bench/CALLS.md`` for how it measures and how to read it.

Why measure this way (``shared/DESIGN.md`` section 5, ``shared/reference/hotpath.md``):

- **From outside the SFU.** CPU from ``/proc/<pid>/stat`` (utime+stime, what operators see;
  tick-based, so windows are long) and ``/proc/<pid>/task/*/schedstat`` (exact), RSS from
  ``/proc/<pid>/status``, packets and bytes from the SFU's own counters scraped from
  ``/metrics`` (``switchboard_datagrams_total``), cross-checked with what the clients counted.
- **One core each.** The SFU gets its own core and, when permitted, SCHED_FIFO, so the
  shared machine's other jobs neither steal its time nor delay its wake-ups; the load runs on
  the other core with its media thread native (a Python call per packet would cost more than
  the SFU's whole budget).
- **CPU per forwarded packet** is the unit that transfers between machines and loads:
  rtcd's published row 1 is 2.4 vCPU for ~70k packets/s out, about 34 us per packet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import sysmon  # noqa: E402
from pngchart import Panel, bar_chart  # noqa: E402

#: Host + UDP header bytes per datagram added to UDP payload bytes for "wire" bandwidth
#: (IPv4 20 + UDP 8; Ethernet framing not counted).
WIRE_OVERHEAD = 28
RECOMMENDED_BUFFER = 16 * 1024 * 1024        # the seeds' net.core.rmem_max / wmem_max
UNTUNED_BUFFER = 212992                      # Linux's default rmem_default / wmem_default


@dataclass(frozen=True)
class SeedRow:
    """One row of the seeds' rtcd Benchmarks table."""

    calls: int
    users: int
    unmuted: int
    screen: bool
    cpu_pct: float
    memory_gb: float
    in_mbps: float
    out_mbps: float
    instance: str
    vcpus: int

    @property
    def cores(self) -> float:
        return self.cpu_pct / 100 * self.vcpus


SEED_ROWS: tuple[SeedRow, ...] = (
    SeedRow(100, 8, 2, False, 60, 0.5, 22, 125, "c6i.xlarge", 4),
    SeedRow(100, 8, 2, False, 30, 0.5, 22, 125, "c6i.2xlarge", 8),
    SeedRow(100, 8, 2, True, 86, 0.7, 280, 2200, "c6i.2xlarge", 8),
    SeedRow(10, 50, 2, False, 35, 0.3, 5.25, 86, "c6i.xlarge", 4),
    SeedRow(10, 50, 2, False, 16, 0.3, 5.25, 86, "c6i.2xlarge", 8),
    SeedRow(10, 50, 2, True, 90, 0.3, 32, 1330, "c6i.xlarge", 4),
    SeedRow(10, 50, 2, True, 45, 0.3, 32, 1330, "c6i.2xlarge", 8),
    SeedRow(5, 200, 2, False, 65, 0.6, 8.2, 180, "c6i.xlarge", 4),
    SeedRow(5, 200, 2, False, 30, 0.6, 8.2, 180, "c6i.2xlarge", 8),
    SeedRow(5, 200, 2, True, 90, 0.7, 31, 2200, "c6i.2xlarge", 8),
)

#: The rows ``--table seeds`` runs: the seeds' shapes, plus 1000 one-to-one calls.
TABLE_ROWS: tuple[tuple[int, int, int, bool], ...] = (
    (100, 8, 2, False), (100, 8, 2, True), (10, 50, 2, False), (10, 50, 2, True),
    (5, 200, 2, False), (5, 200, 2, True), (1000, 2, 2, False),
)

JSON_KEYS = ("us_per_pkt", "cpu_pct", "rss_mb", "in_mbps", "out_mbps", "out_pps", "loss", "delay_p99_ms",
             "join_p95_ms")


class BenchError(Exception):
    """The benchmark could not run (SFU did not start, load process failed, ...)."""


@dataclass(frozen=True)
class RunOptions:
    """One benchmark run (one row)."""

    calls: int
    users: int
    unmuted: int
    screen: int = 0
    simulcast: bool = False
    duration: float = 30.0
    """Seconds of measured window."""
    join_window: float | None = None
    """Seconds over which joins are spread (None: about 25 joins per second, at least 5 s)."""
    settle_timeout: float = 60.0
    warmup: float = 3.0
    sfu_cpu: int = 1
    load_cpu: int = 0
    rt_priority: int = 10
    """SCHED_FIFO priority of the SFU and of the load's media thread (0: normal scheduling;
    needs root or CAP_SYS_NICE, silently normal otherwise)."""
    socket_buffer: int = RECOMMENDED_BUFFER
    """SO_RCVBUF/SO_SNDBUF the SFU asks for (``--untuned`` uses Linux's default size)."""
    dc_signaling: bool = False
    ping_interval: float = 1.0
    rtcp_interval: float = 1.0
    audio_payload: int = 160
    shared_sockets: int = 8
    """Wildcard sockets that carry all simulated users, each with its own 127.x.y.z address
    (0: one socket per user, registered with epoll, whose wake-up callbacks then run inside
    the SFU's sendmmsg on loopback)."""
    perf: bool = False
    """Record ``perf record -e cpu-clock -g`` of the SFU during the window (inflates its CPU)."""
    pyspy: bool = False
    """Sample the SFU's Python stacks with py-spy during the window (inflates its CPU a little)."""
    pyspy_load: bool = False
    """Sample the load process's Python stacks with py-spy during the window."""
    sfu_env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the SFU (diagnosis, e.g. PYTHONASYNCIODEBUG=1 logs slow callbacks)."""
    keep_dir: str | None = None
    """Write logs (and the perf report) here instead of a temporary directory."""

    @property
    def participants(self) -> int:
        return self.calls * self.users

    def effective_join_window(self) -> float:
        if self.join_window is not None:
            return self.join_window
        return max(5.0, self.participants / 25.0)

    def label(self) -> str:
        return f"{self.calls}x{self.users}x{self.unmuted}" + (f"+{self.screen}s" if self.screen else "")


# ------------------------------------------------------------------ helpers

def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP (the media port serves both, like rtcd's 8443), in
    the range rtcd's configuration accepts (80-49151)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 49151)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise BenchError("no free port for UDP and TCP in 20000-49151")


def _pinned(cpu: int, rt_priority: int) -> Callable[[], None]:
    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        if rt_priority > 0:
            with contextlib.suppress(PermissionError, OSError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
    return setup


def _policy(pid: int) -> str:
    try:
        if os.sched_getscheduler(pid) == os.SCHED_FIFO:
            return f"SCHED_FIFO {os.sched_getparam(pid).sched_priority}"
    except OSError:
        return "unknown"
    return "normal"


def _cpu_steal(cpu: int) -> float:
    """Seconds the hypervisor ran something else while this vCPU wanted to run (/proc/stat)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                return int(line.split()[8]) / sysmon.CLK_TCK
    return 0.0


def _cpu_busy(cpu: int) -> float:
    """Busy seconds of one CPU from /proc/stat (user+nice+system+irq+softirq)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2] + v[5] + v[6]) / sysmon.CLK_TCK
    return 0.0


def _linear_slope(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    if den == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den


class Progress:
    """A one-line progress bar on stderr (a new line every few seconds when not a tty)."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, phase: str, done: float, total: float, extra: str = "") -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not self.tty and now - self._last < 5 and done < total:
            return
        self._last = now
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        text = f"{self.label} {phase:<8} [{bar}] {done:g}/{total:g} {extra}"
        if self.tty:
            sys.stderr.write("\r" + text[:150].ljust(150))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ------------------------------------------------------------------ one run

class CallsBench:
    """Runs one row: SFU process, load process, sampling, derived numbers."""

    def __init__(self, opts: RunOptions, quiet: bool = False) -> None:
        self.opts = opts
        self.progress = Progress(opts.label(), quiet)
        self.quiet = quiet
        self.dir = Path(opts.keep_dir) if opts.keep_dir else Path(tempfile.mkdtemp(prefix="sb-calls-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.api_port = _free_port(socket.SOCK_STREAM)
        self.media_port = _free_udp_tcp_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.sfu: subprocess.Popen[bytes] | None = None

    # ---------------------------------------------------------------- SFU

    def _sfu_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "RTCD_API_HTTP_LISTENADDRESS": f"127.0.0.1:{self.api_port}",
            "RTCD_RTC_ICEPORTUDP": str(self.media_port),
            "RTCD_RTC_ICEPORTTCP": str(self.media_port),
            "RTCD_RTC_ICEADDRESSUDP": "127.0.0.1",
            "RTCD_RTC_ICEADDRESSTCP": "127.0.0.1",
            "RTCD_LOGGER_ENABLEFILE": "false",
            "RTCD_LOGGER_CONSOLELEVEL": "INFO",
            "RTCD_STORE_DATASOURCE": str(self.dir / "store"),
            "RTCD_API_SECURITY_ALLOWSELFREGISTRATION": "true",
            "RTCD_SWITCHBOARD_DRAINGRACEPERIOD": "0",
            "RTCD_SWITCHBOARD_SOCKETBUFFERSIZE": str(self.opts.socket_buffer),
        })
        env.update(dict(self.opts.sfu_env))
        return env

    async def start_sfu(self) -> None:
        log = open(self.dir / "sfu.log", "wb")
        self.sfu = subprocess.Popen(
            [sys.executable, "-m", "switchboard.signaling.cli", "serve", "--config", str(self.dir / "none.toml")],
            env=self._sfu_env(), stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_pinned(self.opts.sfu_cpu, self.opts.rt_priority), cwd=str(self.dir))
        log.close()
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.sfu.poll() is not None:
                    raise BenchError(f"switchboard serve exited with {self.sfu.returncode}: "
                                     + self.sfu_log_tail())
                try:
                    async with http.get(self.url + "/version") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise BenchError("switchboard serve did not answer /version within 30 s: " + self.sfu_log_tail())

    def sfu_log_tail(self, n: int = 15) -> str:
        try:
            lines = (self.dir / "sfu.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def sfu_socket_buffer(self) -> tuple[int, int] | None:
        """(receive, send) buffer sizes the SFU's media socket got, from its log."""
        try:
            text = (self.dir / "sfu.log").read_text(errors="replace")
        except OSError:
            return None
        m = re.search(r"receive buffer (\d+), send buffer (\d+) bytes", text)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def stop_sfu(self) -> None:
        if self.sfu is None or self.sfu.poll() is not None:
            return
        self.sfu.send_signal(signal.SIGTERM)
        try:
            self.sfu.wait(10)
        except subprocess.TimeoutExpired:
            self.sfu.kill()
            self.sfu.wait(5)

    async def scrape(self, http: aiohttp.ClientSession) -> sysmon.Series:
        async with http.get(self.url + "/metrics") as r:
            return sysmon.parse_metrics(await r.text())

    # ---------------------------------------------------------------- load

    def _load_cmd(self) -> list[str]:
        o = self.opts
        cmd = [sys.executable, str(BENCH_DIR / "loadclient.py"), "--url", self.url,
               "--calls", str(o.calls), "--users", str(o.users), "--unmuted", str(o.unmuted),
               "--screen", str(o.screen), "--duration", str(o.duration),
               "--join-window", str(o.effective_join_window()), "--settle-timeout", str(o.settle_timeout),
               "--warmup", str(o.warmup), "--rt-priority", str(o.rt_priority),
               "--ping-interval", str(o.ping_interval), "--rtcp-interval", str(o.rtcp_interval),
               "--audio-payload", str(o.audio_payload), "--shared-sockets", str(o.shared_sockets),
               "--controlled"]
        if o.simulcast:
            cmd.append("--simulcast")
        if o.dc_signaling:
            cmd.append("--dc-signaling")
        return cmd

    async def run(self) -> dict[str, Any]:
        os.sched_setaffinity(0, {self.opts.load_cpu})
        try:
            await self.start_sfu()
            return await self._run_load()
        finally:
            self.stop_sfu()
            self.progress.done()
            if self.opts.keep_dir is None:
                shutil.rmtree(self.dir, ignore_errors=True)

    async def _run_load(self) -> dict[str, Any]:
        o = self.opts
        assert self.sfu is not None
        pid = self.sfu.pid
        softirqd = sysmon.ksoftirqd_pid(o.sfu_cpu)
        stderr = open(self.dir / "load.log", "wb")
        load = await asyncio.create_subprocess_exec(
            *self._load_cmd(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            preexec_fn=_pinned(o.load_cpu, 0), limit=1 << 24)
        stderr.close()
        assert load.stdout is not None and load.stdin is not None
        timeout = o.effective_join_window() + o.settle_timeout + o.warmup + o.duration + 120
        deadline = time.monotonic() + timeout
        result: dict[str, Any] | None = None
        s0: sysmon.ProcSample | None = None
        s1: sysmon.ProcSample | None = None
        m0: sysmon.Series = {}
        m1: sysmon.Series = {}
        tm0 = tm1 = 0.0
        busy0 = busy1 = 0.0
        steal0 = steal1 = (0.0, 0.0)
        rss: list[tuple[float, float]] = []
        sock0 = sock1 = None
        max_queue = 0
        perf: subprocess.Popen[bytes] | None = None
        pyspy: subprocess.Popen[bytes] | None = None
        pyspy_load: subprocess.Popen[bytes] | None = None
        sampler: asyncio.Task[None] | None = None
        async with aiohttp.ClientSession() as http:

            async def sample_rss() -> None:
                nonlocal max_queue
                while True:
                    with contextlib.suppress(OSError):
                        rss.append((time.monotonic(), sysmon.read_rss(pid) / 1e6))
                    q = sysmon.udp_socket_drops(self.media_port)
                    if q is not None:
                        max_queue = max(max_queue, q[1])
                    await asyncio.sleep(1.0)

            try:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise BenchError(f"the load process did not finish within {timeout:.0f} s")
                    try:
                        line = await asyncio.wait_for(load.stdout.readline(), remaining)
                    except TimeoutError:
                        continue
                    if not line:
                        break
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    kind = ev.get("event")
                    if kind == "progress":
                        extra = ""
                        if ev["phase"] in ("join", "settle"):
                            extra = f"ready {ev.get('ready', 0)}/{o.participants}"
                            if ev.get("failed"):
                                extra += f" failed {ev['failed']}"
                        self.progress.show(ev["phase"], ev["done"], ev["total"], extra)
                    elif kind == "window" and ev["state"] == "ready":
                        # scrape before the window: a scrape costs the SFU a stall of its own
                        t = time.monotonic()
                        m0 = await self.scrape(http)
                        tm0 = (t + time.monotonic()) / 2
                        sock0 = sysmon.udp_socket_drops(self.media_port)
                        busy0 = _cpu_busy(o.sfu_cpu)
                        steal0 = (_cpu_steal(o.sfu_cpu), _cpu_steal(o.load_cpu))
                        s0 = sysmon.sample(pid, softirqd)
                        load.stdin.write(b"begin\n")
                        await load.stdin.drain()
                    elif kind == "window" and ev["state"] == "begin":
                        sampler = asyncio.get_running_loop().create_task(sample_rss())
                        if o.pyspy_load and shutil.which("py-spy"):
                            pyspy_load = subprocess.Popen(
                                ["py-spy", "record", "-p", str(load.pid), "-r", "200", "--nonblocking", "-f", "raw",
                                 "-d", str(int(o.duration)), "-o", str(self.dir / "pyspy-load.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        if o.perf and shutil.which("perf"):
                            perf = subprocess.Popen(
                                ["perf", "record", "-e", "cpu-clock", "-g", "-p", str(pid), "-o",
                                 str(self.dir / "perf.data")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        if o.pyspy and shutil.which("py-spy"):
                            pyspy = subprocess.Popen(
                                ["py-spy", "record", "-p", str(pid), "-r", "1000", "--idle", "--nonblocking",
                                 "-f", "speedscope", "-d", str(int(o.duration)), "-o", str(self.dir / "pyspy.json")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    elif kind == "window" and ev["state"] == "end":
                        s1 = sysmon.sample(pid, softirqd)
                        busy1 = _cpu_busy(o.sfu_cpu)
                        steal1 = (_cpu_steal(o.sfu_cpu), _cpu_steal(o.load_cpu))
                        sock1 = sysmon.udp_socket_drops(self.media_port)
                        if sampler is not None:
                            sampler.cancel()
                        if perf is not None:
                            perf.send_signal(signal.SIGINT)
                            perf.wait(30)
                    elif kind == "window" and ev["state"] == "drained":
                        # after the clients counted their in-flight packets
                        t = time.monotonic()
                        m1 = await self.scrape(http)
                        tm1 = (t + time.monotonic()) / 2
                    elif kind == "result":
                        result = ev
            finally:
                if sampler is not None:
                    sampler.cancel()
                if load.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        load.kill()
                await load.wait()
        if result is None or s0 is None or s1 is None:
            tail = (self.dir / "load.log").read_text(errors="replace").splitlines()[-15:]
            raise BenchError("the load process ended without a result:\n" + "\n".join(tail))
        derived = self._derive(result, s0, s1, m0, m1, tm1 - tm0, busy1 - busy0, rss, sock0, sock1, max_queue)
        derived["steal_s"] = {"sfu_cpu": steal1[0] - steal0[0], "load_cpu": steal1[1] - steal0[1]}
        if perf is not None:
            derived["perf_report"] = self._perf_report()
        if pyspy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                pyspy.wait(30)
            derived["pyspy_report"] = pyspy_summary(self.dir / "pyspy.json")
        if pyspy_load is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                pyspy_load.wait(30)
            derived["pyspy_load_report"] = raw_profile_summary(self.dir / "pyspy-load.txt")
        derived["scheduling"] = {"sfu": _policy(pid) if self.sfu and self.sfu.poll() is None else "?",
                                 "load_media_thread_fifo": result["plane"].get("realtime")}
        return derived

    def _perf_report(self) -> str:
        out = subprocess.run(
            ["perf", "report", "-i", str(self.dir / "perf.data"), "--stdio", "--no-children",
             "--sort", "dso,sym", "--percent-limit", "0.7"],
            capture_output=True, text=True, timeout=300)
        text = "\n".join(line for line in out.stdout.splitlines() if line and not line.startswith("#")
                         and "---" not in line and not line.strip().startswith("|"))
        (self.dir / "perf.txt").write_text(out.stdout)
        return text

    # ---------------------------------------------------------------- numbers

    def _derive(self, r: dict[str, Any], s0: sysmon.ProcSample, s1: sysmon.ProcSample, m0: sysmon.Series,
                m1: sysmon.Series, dm: float, cpu_busy: float, rss: list[tuple[float, float]],
                sock0: tuple[int, int] | None, sock1: tuple[int, int] | None, max_queue: int) -> dict[str, Any]:
        o = self.opts
        dt = s1.t - s0.t                      # the CPU window (= the clients' window)
        dm = dm if dm > 0 else dt             # the counters' window (scrapes just outside it)
        ncpu = os.cpu_count() or 1
        cpu_s = s1.cpu_ticks_s - s0.cpu_ticks_s
        runtime_s = s1.runtime_s - s0.runtime_s
        softirq_s = s1.softirqd_runtime_s - s0.softirqd_runtime_s
        out_pps = sysmon.delta(m0, m1, "switchboard_datagrams_total", direction="out") / dm
        in_pps = sysmon.delta(m0, m1, "switchboard_datagrams_total", direction="in") / dm
        out_bps = sysmon.delta(m0, m1, "switchboard_bytes_total", direction="out") / dm
        in_bps = sysmon.delta(m0, m1, "switchboard_bytes_total", direction="in") / dm
        metric_cpu = sysmon.delta(m0, m1, "rtcd_process_cpu_seconds_total") / dm * dt
        udp = {k: s1.udp.get(k, 0) - s0.udp.get(k, 0) for k in ("RcvbufErrors", "SndbufErrors", "InErrors")}
        sock_drops = (sock1[0] - sock0[0]) if sock0 and sock1 else None
        counters = r["window"]["counters"]
        cw = r["window"]["seconds"] or dt
        client_rx_pps = counters.get("rx_datagrams", 0) / cw
        client_tx_pps = (counters.get("tx_rtp", 0) + counters.get("tx_rtcp", 0) + counters.get("rtx_tx", 0)
                         + r["window"].get("control_sent", 0)) / cw
        rss_vals = [v for _, v in rss] or [s1.rss_bytes / 1e6]
        slope = _linear_slope([(t - rss[0][0], v) for t, v in rss]) if rss else None

        def per_pkt(cpu: float) -> float | None:
            return cpu / dt / out_pps * 1e6 if out_pps else None

        buffers = self.sfu_socket_buffer()
        drops_total = udp["RcvbufErrors"] + udp["SndbufErrors"] + (sock_drops or 0)
        advice = self._tuning_advice(drops_total, udp, sock_drops, buffers, max_queue)
        return {
            "label": o.label(),
            "calls": o.calls, "users": o.users, "unmuted": o.unmuted, "screen": o.screen,
            "simulcast": o.simulcast, "participants": o.participants,
            "window_s": dt, "counter_window_s": dm,
            "us_per_pkt": per_pkt(cpu_s),
            "us_per_pkt_schedstat": per_pkt(runtime_s),
            "us_per_pkt_with_softirqd": per_pkt(runtime_s + softirq_s),
            "cpu_s": cpu_s, "cpu_runtime_s": runtime_s, "ksoftirqd_s": softirq_s,
            "cpu_metric_s": metric_cpu,
            "cores": cpu_s / dt, "cpu_pct": cpu_s / dt / ncpu * 100,
            "sfu_core_others": max(0.0, cpu_busy - cpu_s - softirq_s) / dt,
            "rss_mb": sum(rss_vals) / len(rss_vals), "rss_max_mb": max(rss_vals),
            "rss_slope_mb_per_min": slope * 60 if slope is not None else None,
            "in_pps": in_pps, "out_pps": out_pps,
            "in_mbps": (in_bps + WIRE_OVERHEAD * in_pps) * 8 / 1e6,
            "out_mbps": (out_bps + WIRE_OVERHEAD * out_pps) * 8 / 1e6,
            "in_udp_mbps": in_bps * 8 / 1e6, "out_udp_mbps": out_bps * 8 / 1e6,
            "client_rx_pps": client_rx_pps, "client_tx_pps": client_tx_pps,
            "crosscheck_out": client_rx_pps / out_pps if out_pps else None,
            "crosscheck_in": in_pps / client_tx_pps if client_tx_pps else None,
            "loss": r["loss"], "expected_packets": r["expected_packets"], "received_packets": r["received_packets"],
            "pairs": r["pairs"], "pairs_with_loss": r["pairs_with_loss"], "max_pair_loss": r["max_pair_loss"],
            "lossy_pairs": r["lossy_pairs"], "duplicates": r["duplicates"],
            "delay_p50_ms": r["delay_p50_ms"], "delay_p99_ms": r["delay_p99_ms"],
            "delay_p999_ms": r["delay_p999_ms"], "delay_max_ms": r["delay_max_ms"],
            "delay_max_at_s": r.get("delay_max_at_s"),
            "join_p50_ms": r["join_p50_ms"], "join_p95_ms": r["join_p95_ms"], "join_max_ms": r["join_max_ms"],
            "dc_open_p95_s_metric": sysmon.histogram_quantile(m1, "rtcd_rtc_dc_open_time", 0.95),
            "forwarding_p99_s_metric": sysmon.histogram_quantile(m1, "switchboard_forwarding_latency_seconds", 0.99),
            "sessions_metric": sysmon.metric(m1, "rtcd_rtc_sessions_total"),
            "rtc_errors": sysmon.delta(m0, m1, "rtcd_rtc_errors_total"),
            "sfu_drops": {dict(ls).get("reason", ""): v - m0.get((n, ls), 0.0)
                          for (n, ls), v in m1.items() if n == "switchboard_drops_total" and v - m0.get((n, ls), 0.0)},
            "udp_errors": udp, "sfu_socket_drops": sock_drops, "sfu_socket_max_queue": max_queue,
            "sfu_socket_buffers": buffers,
            "rmem_max": sysmon.read_sysctl("net.core.rmem_max"), "wmem_max": sysmon.read_sysctl("net.core.wmem_max"),
            "tuning": advice,
            "ready": r["ready"], "failed": r["failed"], "failures": r["failures"],
            "settled": r["window"]["settled"],
            "load_core": r["window"]["load_runtime_s"] / cw,
            "load_python_core": r["window"].get("load_python_s", 0.0) / cw,
            "load_media_core": r["window"].get("load_media_thread_s", 0.0) / cw,
            "load_plane": r["plane"],
            "stalls": r.get("stalls"),
            "client": {k: r[k] for k in ("pings", "pongs", "consent_sent", "consent_ok", "offers_answered",
                                         "vad_events", "rtx", "pli_rx", "dc_rtt_p50_ms", "ice_p50_ms")},
            "client_counters": counters,
        }

    def _tuning_advice(self, drops: int, udp: dict[str, int], sock_drops: int | None,
                       buffers: tuple[int, int] | None, max_queue: int) -> str:
        rcv = buffers[0] if buffers else None
        if drops <= 0:
            return ("no UDP drops (RcvbufErrors, SndbufErrors and the SFU socket's drops all 0)"
                    + (f"; SFU socket buffer {rcv} bytes" if rcv else ""))
        where = f"RcvbufErrors +{udp['RcvbufErrors']}, SndbufErrors +{udp['SndbufErrors']}"
        if sock_drops is not None:
            where += f", SFU socket drops +{sock_drops}"
        if rcv is not None and rcv < RECOMMENDED_BUFFER:
            return (f"UDP drops ({where}) with an SFU socket buffer of {rcv} bytes (peak queue {max_queue}): "
                    "the seeds' tunings (net.core.rmem_max = net.core.wmem_max = 16777216) would give it "
                    f"{RECOMMENDED_BUFFER} bytes, {RECOMMENDED_BUFFER // max(rcv, 1)}x the room: "
                    "they would have avoided these drops unless the SFU was out of CPU")
        return (f"UDP drops ({where}) although the SFU socket already had {rcv} bytes (peak queue "
                f"{max_queue}): the seeds' sysctl tunings would not have avoided them; the drops are "
                "elsewhere (host-wide counter: other processes, or the load sockets) or the SFU ran out of CPU")


def raw_profile_summary(path: Path, top: int = 30) -> str:
    """Inclusive and self share per Python function from py-spy's raw (collapsed) output."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return "(no py-spy output)"
    total = 0
    incl: dict[str, int] = {}
    own: dict[str, int] = {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] for f in stack.split(";")]
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    if not total:
        return "(no samples)"
    rows = [f"{total} samples (inclusive %, self %):"]
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        rows.append(f"  {100 * n / total:5.1f}% {100 * own.get(f, 0) / total:5.1f}%  {f}")
    return "\n".join(rows)


def pyspy_summary(path: Path, top: int = 20, rate: float = 1000.0) -> str:
    """What the SFU's Python did, from py-spy's speedscope output taken with ``--idle`` at
    ``rate`` Hz: inclusive share per function among busy samples, and the longest runs of
    consecutive samples inside one Python callback (a run is time the event loop could not
    read the media socket: it delays forwarding)."""
    try:
        doc = json.loads(path.read_text())
        frames = doc["shared"]["frames"]
        prof = doc["profiles"][0]
        samples, weights = prof["samples"], prof.get("weights") or [1] * len(prof["samples"])
    except (OSError, ValueError, KeyError, IndexError):
        return "(no py-spy output)"
    names = [f"{f['name']} ({str(f.get('file', '')).rsplit('/', 1)[-1]})" for f in frames]
    base = None
    for stack in samples:
        for i, idx in enumerate(stack):
            if frames[idx]["name"] == "run_until_complete" or names[idx].startswith("Runner.run"):
                base = i
        if base is not None:
            break
    depth = (base or 0) + 1
    busy = 0
    total = 0
    incl: dict[str, int] = {}
    runs: list[tuple[int, str]] = []
    cur_name, cur_len = "", 0
    for stack, w in zip(samples, weights):
        total += w
        callback = names[stack[depth]] if len(stack) > depth else ""
        if callback:
            busy += w
            for f in {names[i] for i in stack[depth:]}:
                incl[f] = incl.get(f, 0) + w
        if callback and callback == cur_name:
            cur_len += w
        else:
            if cur_name:
                runs.append((cur_len, cur_name))
            cur_name, cur_len = callback, (w if callback else 0)
    if cur_name:
        runs.append((cur_len, cur_name))
    if not total:
        return "(no samples)"
    seconds = isinstance(weights[0], float)       # py-spy writes weights in seconds
    ms = 1000.0 if seconds else 1000.0 / rate
    out = [f"{len(samples)} samples at {rate:g} Hz; in Python callbacks {100 * busy / total:.1f}% of the time "
           "(the rest: idle or native forwarding)"]
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {f}")
    by_cb: dict[str, list[int]] = {}
    for n, name in runs:
        by_cb.setdefault(name, []).append(n)
    out.append("callbacks that held the loop (runs of consecutive samples): count >= 2 ms, >= 5 ms, longest")
    for name, lens in sorted(by_cb.items(), key=lambda kv: -max(kv[1]))[:12]:
        out.append(f"  {sum(1 for x in lens if x * ms >= 2):5d} {sum(1 for x in lens if x * ms >= 5):5d} "
                   f"{max(lens) * ms:7.1f} ms  {name}")
    return "\n".join(out)


# ------------------------------------------------------------------ output

def _f(v: Any, spec: str, none: str = "-") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return format(v, spec)


def table_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["Calls", "Users/call", "Unmuted/call", "Screen sharing", "CPU (avg)", "Memory (avg)",
            "Bandwidth (in/out)", "us/pkt", "out pps", "loss", "delay p50/p99", "join p95"]
    rows = []
    for r in results:
        screen = "no" if not r["screen"] else ("yes" if r["screen"] == r["calls"] else f"{r['screen']} calls")
        if r.get("simulcast") and r["screen"]:
            screen += " (simulcast)"
        rows.append([
            str(r["calls"]), str(r["users"]), str(r["unmuted"]), screen,
            f"{r['cpu_pct']:.1f}% ({r['cores']:.2f} cores)",
            f"{r['rss_mb'] / 1000:.2f}GB ({r['rss_mb']:.0f} MB)",
            f"{r['in_mbps']:.1f}Mbps / {r['out_mbps']:.0f}Mbps",
            _f(r["us_per_pkt"], ".2f"),
            f"{r['out_pps'] / 1000:.1f}k",
            _f(r["loss"], ".2%"),
            f"{_f(r['delay_p50_ms'], '.2f')}/{_f(r['delay_p99_ms'], '.2f')} ms",
            f"{_f(r['join_p95_ms'], '.0f')} ms",
        ])
    return head, rows


def render_table(results: list[dict[str, Any]], markdown: bool = False) -> str:
    head, rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [sep, "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |", sep.replace("-", "=")]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    out.append(sep)
    return "\n".join(out)


def details(r: dict[str, Any]) -> str:
    lines = [
        f"{r['label']}: {r['participants']} participants, window {r['window_s']:.1f} s, "
        f"scheduling SFU {r['scheduling']['sfu']}, load media thread "
        f"{'SCHED_FIFO' if r['scheduling']['load_media_thread_fifo'] else 'normal'}",
        f"  SFU CPU: {r['cpu_s']:.2f} s tick-based (/proc/pid/stat), {r['cpu_runtime_s']:.2f} s exact (schedstat), "
        f"rtcd_process_cpu_seconds_total +{r['cpu_metric_s']:.2f} s, ksoftirqd +{r['ksoftirqd_s']:.2f} s; "
        f"others on its core {r['sfu_core_others']:.2f} cores; hypervisor steal "
        f"{r.get('steal_s', {}).get('sfu_cpu', 0):.2f} s (SFU core), {r.get('steal_s', {}).get('load_cpu', 0):.2f} s (load core)",
        f"  us/pkt: {_f(r['us_per_pkt'], '.2f')} (stat), {_f(r['us_per_pkt_schedstat'], '.2f')} (schedstat), "
        f"{_f(r['us_per_pkt_with_softirqd'], '.2f')} (schedstat + ksoftirqd)",
        f"  packets (SFU counters): in {r['in_pps']:.0f} pps, out {r['out_pps']:.0f} pps; clients received "
        f"{r['client_rx_pps']:.0f}/s = {_f(r['crosscheck_out'], '.4f')} x SFU out (plus STUN/DTLS the SFU "
        f"sends from Python), SFU got {_f(r['crosscheck_in'], '.4f')} x what the clients sent",
        f"  loss {_f(r['loss'], '.4%')} ({r['received_packets']}/{r['expected_packets']} packets over "
        f"{r['pairs']} receiver/source pairs, {r['pairs_with_loss']} with loss, max {r['max_pair_loss']:.2%}), "
        f"duplicates {r['duplicates']}",
        f"  one-way delay (send stamp -> kernel receive time): p50 {_f(r['delay_p50_ms'], '.3f')} ms, "
        f"p99 {_f(r['delay_p99_ms'], '.3f')} ms, p99.9 {_f(r['delay_p999_ms'], '.3f')} ms, "
        f"max {_f(r['delay_max_ms'], '.2f')} ms ({_f(r.get('delay_max_at_s'), '.1f')} s into the window)",
        f"  join (join sent -> calls-dc open): p50 {_f(r['join_p50_ms'], '.0f')} ms, p95 {_f(r['join_p95_ms'], '.0f')} ms, "
        f"max {_f(r['join_max_ms'], '.0f')} ms; ready {r['ready']}/{r['participants']}, failed {r['failed']}",
        f"  RSS avg {r['rss_mb']:.0f} MB, max {r['rss_max_mb']:.0f} MB, slope "
        f"{_f(r['rss_slope_mb_per_min'], '+.2f')} MB/min",
        f"  UDP: {r['tuning']}",
        f"  load process: {_f(r['load_core'], '.2f')} of its core (Python {_f(r.get('load_python_core'), '.2f')}, "
        f"media thread {_f(r.get('load_media_core'), '.2f')}); media bursts late >1 ms: "
        f"{r['load_plane']['late_1ms']}, >5 ms: {r['load_plane']['late_5ms']}; longest loop "
        f"{r['load_plane'].get('loop_max_s', 0) * 1e3:.1f} ms",
    ]
    st = r.get("stalls") or {}
    if st.get("episodes"):
        w = st["worst_episode"]
        lines.append(f"  delays >= 2 ms: {st['packets']} packets in {st['episodes']} episodes (median "
                     f"{_f(st.get('median_interval_s'), '.3f')} s apart, median {st['median_receivers_per_episode']} "
                     f"receivers and {st['median_sources_per_episode']} sources each; worst {w['packets']} packets, "
                     f"{w['receivers']} receivers, {w['span_ms']:.1f} ms long)")
    if r.get("failures"):
        lines.append("  failures: " + "; ".join(r["failures"][:3]))
    if not r.get("settled"):
        lines.append("  WARNING: not every stream was flowing when the window opened (see loss)")
    if r.get("load_core") is not None and r["load_core"] > 0.9:
        lines.append("  WARNING: the load process used over 90% of its core; it may have been the bottleneck")
    return "\n".join(lines)


def targets(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, PASS/FAIL, for the rows that were run."""
    out = []
    base = next((r for r in results if (r["calls"], r["users"], r["unmuted"], r["screen"]) == (100, 8, 2, 0)), None)
    if base is not None:
        ok = base["loss"] == 0 and base["us_per_pkt"] is not None and base["us_per_pkt"] <= 8
        out.append(f"100x8x2: 0% loss and <= 8 us/pkt: {'PASS' if ok else 'FAIL'} "
                   f"(loss {_f(base['loss'], '.4%')}, {_f(base['us_per_pkt'], '.2f')} us/pkt)")
        ok = base["delay_p99_ms"] is not None and base["delay_p99_ms"] < 2
        out.append(f"100x8x2: forwarding delay p99 < 2 ms: {'PASS' if ok else 'FAIL'} "
                   f"({_f(base['delay_p99_ms'], '.3f')} ms)")
    one = next((r for r in results if (r["users"], r["unmuted"]) == (2, 2)
                and (r["calls"] >= 1000 or r.get("scaled_from", 0) >= 1000)), None)
    if one is not None and base is not None and one["us_per_pkt"] and base["us_per_pkt"]:
        ratio = one["us_per_pkt"] / base["us_per_pkt"]
        scaled = f" (run at {one['calls']} calls: what fits this machine)" if one["calls"] < 1000 else ""
        out.append(f"1000x2x2{scaled}: <= 2x the per-packet cost of 100x8x2: {'PASS' if ratio <= 2 else 'FAIL'} "
                   f"({ratio:.2f}x)")
    for r in results:
        if r["rss_slope_mb_per_min"] is not None and r["window_s"] >= 300:
            out.append(f"{r['label']}: RSS flat over {r['window_s'] / 60:.0f} min: "
                       f"{'PASS' if abs(r['rss_slope_mb_per_min']) < 0.5 else 'FAIL'} "
                       f"({r['rss_slope_mb_per_min']:+.2f} MB/min)")
    return out


def summary_json(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r.get(k) for k in JSON_KEYS}
    out.update({k: v for k, v in r.items() if k not in out})
    return out


# ------------------------------------------------------------------ --table seeds

@dataclass
class FitModel:
    """Rough capacity model to scale down rows this machine cannot hold, in CPU-us per packet
    and ms per participant-second, fitted on this machine (100x8x2 and 400x2x2 runs) and
    rescaled after every run by what was measured."""

    sfu_us_out: float = 6.0
    """SFU CPU per forwarded packet (sending into loopback pays the receivers' delivery)."""
    sfu_us_in: float = 6.0
    """SFU CPU per received packet (wake-up, read, SRTP, routing)."""
    sfu_ms_user: float = 0.3
    """SFU control plane per participant per second (pings, consent, RTCP, timers)."""
    load_us_rx: float = 5.5
    load_us_tx: float = 10.0
    """The load process per packet its participants send (it pays the SFU's receive path)."""
    load_ms_user: float = 0.3
    budget: float = 0.85
    """Share of one core either side may be predicted to use."""

    @staticmethod
    def rates(calls: int, users: int, unmuted: int, screen: int, video_pps: int = 100) -> tuple[float, float]:
        """(forwarded, received) packets per second of a shape."""
        out_pps = calls * unmuted * (users - 1) * 50 + screen * (users - 1) * video_pps
        in_pps = calls * unmuted * 50 + screen * video_pps
        return float(out_pps), float(in_pps)

    def predict(self, calls: int, users: int, unmuted: int, screen: int) -> tuple[float, float]:
        """Predicted (SFU cores, load cores)."""
        out_pps, in_pps = self.rates(calls, users, unmuted, screen)
        n = calls * users
        sfu = (out_pps * self.sfu_us_out + in_pps * self.sfu_us_in) * 1e-6 + n * self.sfu_ms_user * 1e-3
        load = (out_pps * self.load_us_rx + in_pps * self.load_us_tx) * 1e-6 + n * self.load_ms_user * 1e-3
        return sfu, load

    def fits(self, calls: int, users: int, unmuted: int, screen: int) -> bool:
        sfu, load = self.predict(calls, users, unmuted, screen)
        return sfu <= self.budget and load <= self.budget

    def learn(self, r: dict[str, Any]) -> None:
        """Rescale the model halfway (geometrically) towards measured / predicted of the last
        run: shapes differ in what dominates, so one row must not swing the next too far."""
        sfu, load = self.predict(r["calls"], r["users"], r["unmuted"], r["screen"])
        if sfu > 0.05 and r.get("cores"):
            k = min(2.0, max(0.5, math.sqrt(r["cores"] / sfu)))
            self.sfu_us_out *= k
            self.sfu_us_in *= k
            self.sfu_ms_user *= k
        if load > 0.05 and r.get("load_core"):
            k = min(2.0, max(0.5, math.sqrt(r["load_core"] / load)))
            self.load_us_rx *= k
            self.load_us_tx *= k
            self.load_ms_user *= k


def _mbps(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _seed_rows_for(r: dict[str, Any]) -> list[SeedRow]:
    """The seeds' rows of the shape ``r`` ran (or was scaled down from)."""
    calls = r.get("scaled_from", r["calls"])
    return [s for s in SEED_ROWS
            if (s.calls, s.users, s.unmuted, s.screen) == (calls, r["users"], r["unmuted"], bool(r["screen"]))]


def seed_table_markdown(results: list[dict[str, Any]]) -> str:
    """Our rows with the seeds' rtcd rows of the same shape under them. For a row scaled down
    to fit this machine, rtcd's CPU and bandwidth are scaled linearly to the calls we ran
    (marked *): media flows, and so CPU and bandwidth, grow linearly with calls of one shape."""
    lines = ["| Calls | Users/call | Unmuted/call | Screen sharing | CPU (avg) | Memory (avg) | Bandwidth (in/out) | "
             "Instance | CPU-us/pkt |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['calls']} | {r['users']} | {r['unmuted']} | {'yes' if r['screen'] else 'no'} | "
                     f"{r['cpu_pct']:.1f}% ({r['cores']:.2f} cores) | {r['rss_mb'] / 1000:.2f}GB | "
                     f"{r['in_mbps']:.1f}Mbps / {r['out_mbps']:.0f}Mbps | Switchboard, this machine "
                     f"({os.cpu_count()} vCPU; SFU on 1) | {_f(r['us_per_pkt'], '.2f')} |")
        for s in _seed_rows_for(r):
            k = r["calls"] / s.calls
            star = "*" if k != 1 else ""
            out_pps = FitModel.rates(s.calls, s.users, s.unmuted, s.calls if s.screen else 0)[0]
            lines.append(f"| {s.calls}{' -> ' + str(r['calls']) + star if star else ''} | {s.users} | {s.unmuted} | "
                         f"{'yes' if s.screen else 'no'} | {s.cpu_pct:.0f}% ({s.cores * k:.2f} vCPU{star}) | "
                         f"{s.memory_gb}GB | {_mbps(s.in_mbps * k)}Mbps / {_mbps(s.out_mbps * k)}Mbps{star} | rtcd on "
                         f"{s.instance} ({s.vcpus} vCPU) | ~{s.cores / out_pps * 1e6:.0f} (est.) |")
    return "\n".join(lines)


def seed_chart(results: list[dict[str, Any]]) -> bytes:
    groups = tuple(f"{r['calls']}X{r['users']}X{r['unmuted']}{'+S' if r['screen'] else ''}"
                   f"{'*' if r.get('scaled_from') else ''}" for r in results)
    series = ("SWITCHBOARD (THIS MACHINE)", "RTCD C6I.XLARGE", "RTCD C6I.2XLARGE")

    def seed(r: dict[str, Any], inst: str) -> tuple[SeedRow, float] | None:
        for s in _seed_rows_for(r):
            if s.instance == inst:
                return s, r["calls"] / s.calls
        return None

    cpu = []
    bw = []
    for r in results:
        a, b = seed(r, "c6i.xlarge"), seed(r, "c6i.2xlarge")
        cpu.append((r["cores"], a[0].cores * a[1] if a else None, b[0].cores * b[1] if b else None))
        bw.append((r["out_mbps"], a[0].out_mbps * a[1] if a else None, b[0].out_mbps * b[1] if b else None))
    return bar_chart([
        Panel("CPU USED", groups, series, tuple(cpu), "CORES / VCPUS"),
        Panel("BANDWIDTH OUT", groups, series, tuple(bw), "MBIT/S"),
    ], "CALLS BENCHMARK: SWITCHBOARD VS RTCD (SEEDS)",
        note="* SCALED DOWN TO FIT THIS MACHINE; RTCD FIGURES SCALED LINEARLY TO THE SAME CALLS")


def overload(r: dict[str, Any]) -> str:
    """Why a run does not show what the SFU does at that load ('' when it does): the load
    process saturated its core, participants failed, streams never all flowed, or the SFU
    itself ran out of its core."""
    if (r.get("load_core") or 0) > 0.93:
        return f"the load process used {r['load_core']:.2f} of its core"
    if r.get("failed"):
        return f"{r['failed']} participants failed"
    if not r.get("settled"):
        return "not every stream was flowing when the window opened"
    if r.get("cores", 0) > 0.95:
        return f"the SFU used {r['cores']:.2f} of its core"
    return ""


async def run_table(base: RunOptions, out_dir: Path, quiet: bool) -> list[dict[str, Any]]:
    model = FitModel()
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    for calls, users, unmuted, screen in TABLE_ROWS:
        s = calls if screen else 0
        c = calls
        while c > 0 and not model.fits(c, users, unmuted, c if screen else 0):
            c -= max(1, c // 10)
        if c <= 0:
            notes.append(f"{calls}x{users}x{unmuted}{' with screen' if screen else ''}: does not fit at any "
                         "scale on this machine; skipped")
            continue
        if c < calls:
            sfu, load = model.predict(calls, users, unmuted, s)
            notes.append(f"{calls}x{users}x{unmuted}{' with screen' if screen else ''}: predicted SFU "
                         f"{sfu:.2f} cores and load {load:.2f} cores, over the {model.budget:.0%} budget of one "
                         f"core each: ran {c} calls instead")
            s = c if screen else 0
        r = None
        for attempt in range(3):
            opts = replace(base, calls=c, users=users, unmuted=unmuted, screen=s)
            try:
                r = await CallsBench(opts, quiet).run()
            except BenchError as exc:
                notes.append(f"{opts.label()}: failed: {exc}")
                r = None
                break
            model.learn(r)
            why = overload(r)
            if not why or c <= 1 or attempt == 2:
                break
            smaller = max(1, int(c * 0.75))
            notes.append(f"{opts.label()}: {why}: ran {smaller} calls instead")
            c = smaller
            s = c if screen else 0
        if r is None:
            continue
        if c < calls:
            r["scaled_from"] = calls
        results.append(r)
        if not quiet:
            print(details(r), flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = ["# Calls benchmark: the seeds' table on this machine", "",
          f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `python bench/calls.py --table seeds "
          f"--duration {base.duration:g}`.", "", "## Ours", "", render_table(results, markdown=True), "",
          "## Beside rtcd's published figures", "", seed_table_markdown(results), "",
          "rtcd's us/pkt is estimated from its CPU and the packet rate of the shape (voice 50 pps; screen "
          "~100 pps per sharer), not published.", ""]
    if notes:
        md += ["## Rows not run as published", ""] + [f"- {n}" for n in notes] + [""]
    md += ["## Targets", ""] + [f"- {t}" for t in targets(results)] + [""]
    md += ["## Details", "", "```"] + [details(r) for r in results] + ["```", ""]
    (out_dir / "results.md").write_text("\n".join(md))
    (out_dir / "results.json").write_text(json.dumps({"results": results, "notes": notes}, indent=1, default=str))
    if results:
        (out_dir / "chart.png").write_bytes(seed_chart(results))
    for n in notes:
        print("note: " + n, flush=True)
    return results


# ------------------------------------------------------------------ CLI

def parse_args(argv: list[str] | None = None) -> tuple[RunOptions, argparse.Namespace]:
    ap = argparse.ArgumentParser(
        description="Reproduce the Calls deployment guide's benchmark table for Switchboard on this machine.")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--users", type=int, default=8, help="participants per call")
    ap.add_argument("--unmuted", type=int, default=2, help="participants per call who send voice")
    ap.add_argument("--screen", type=int, default=0, help="calls with a screen share")
    ap.add_argument("--simulcast", action="store_true", help="screen as the simulcast l/h pair")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of measured window")
    ap.add_argument("--join-window", type=float, default=None,
                    help="seconds over which joins are spread (default: 25 joins/s, at least 5 s)")
    ap.add_argument("--settle-timeout", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--sfu-cpu", type=int, default=1)
    ap.add_argument("--load-cpu", type=int, default=0)
    ap.add_argument("--rt-priority", type=int, default=10, help="SCHED_FIFO priority (0 = normal scheduling)")
    ap.add_argument("--untuned", action="store_true",
                    help="give the SFU Linux's default socket buffer size (what an untuned host gets)")
    ap.add_argument("--dc-signaling", action="store_true", help="SDP over the data channel (RTCPeer dcSignaling)")
    ap.add_argument("--ping-interval", type=float, default=1.0)
    ap.add_argument("--rtcp-interval", type=float, default=1.0)
    ap.add_argument("--audio-payload", type=int, default=160)
    ap.add_argument("--perf", action="store_true", help="profile the SFU with perf during the window")
    ap.add_argument("--pyspy", action="store_true", help="sample the SFU's Python stacks with py-spy")
    ap.add_argument("--pyspy-load", action="store_true", help="sample the load process's Python stacks")
    ap.add_argument("--keep", default=None, help="keep logs in this directory")
    ap.add_argument("--sfu-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the SFU (diagnosis; repeatable)")
    ap.add_argument("--table", choices=["seeds"], help="run every seed row that fits this machine")
    ap.add_argument("--out", default=None, help="results folder for --table (default bench/results/<time>)")
    ap.add_argument("--json", action="store_true", help="make the last output line one JSON object")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--shared-sockets", type=int, default=8,
                    help="sockets carrying all simulated users (0 = one socket per user, with epoll)")
    a = ap.parse_args(argv)
    opts = RunOptions(
        calls=a.calls, users=a.users, unmuted=min(a.unmuted, a.users), screen=min(a.screen, a.calls),
        simulcast=a.simulcast, duration=a.duration, join_window=a.join_window, settle_timeout=a.settle_timeout,
        warmup=a.warmup, sfu_cpu=a.sfu_cpu, load_cpu=a.load_cpu, rt_priority=a.rt_priority,
        socket_buffer=UNTUNED_BUFFER if a.untuned else RECOMMENDED_BUFFER, dc_signaling=a.dc_signaling,
        ping_interval=a.ping_interval, rtcp_interval=a.rtcp_interval, audio_payload=a.audio_payload,
        shared_sockets=max(0, a.shared_sockets), perf=a.perf, pyspy=a.pyspy, pyspy_load=a.pyspy_load, keep_dir=a.keep,
        sfu_env=tuple((e.split("=", 1)[0], e.split("=", 1)[1]) for e in a.sfu_env if "=" in e))
    if opts.calls < 1 or opts.users < 1 or opts.duration <= 0:
        ap.error("--calls and --users must be >= 1 and --duration > 0")
    if os.cpu_count() is not None and max(opts.sfu_cpu, opts.load_cpu) >= (os.cpu_count() or 1):
        ap.error(f"this machine has {os.cpu_count()} CPUs")
    return opts, a


def main(argv: list[str] | None = None) -> int:
    opts, a = parse_args(argv)
    # asyncio's child watcher warns when subprocess's own clean-up reaped a finished load
    # process first ("Unknown child process pid"); harmless between rows
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    if a.table == "seeds":
        out = Path(a.out) if a.out else BENCH_DIR / "results" / time.strftime("%Y%m%d-%H%M%S")
        results = asyncio.run(run_table(opts, out, a.quiet))
        print(render_table(results))
        for t in targets(results):
            print(t)
        print(f"results: {out}/results.md, results.json, chart.png", flush=True)
        if a.json:
            print(json.dumps({"results": [summary_json(r) for r in results]}, default=str))
        return 0 if results else 1
    try:
        result = asyncio.run(CallsBench(opts, a.quiet).run())
    except BenchError as exc:
        print(f"calls benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(render_table([result]))
    print(details(result))
    for t in targets([result]):
        print(t)
    if result.get("perf_report"):
        print("perf (SFU, during the window; --no-children, dso/symbol):")
        print("\n".join(result["perf_report"].splitlines()[:40]))
    if result.get("pyspy_report"):
        print("py-spy (SFU Python stacks during the window):")
        print(result["pyspy_report"])
    if result.get("pyspy_load_report"):
        print("py-spy (load process during the window):")
        print(result["pyspy_load_report"])
    if a.json:
        print(json.dumps(summary_json(result), default=str))
    return 0


__all__ = ["BenchError", "CallsBench", "RunOptions", "SEED_ROWS", "main"]

if __name__ == "__main__":
    sys.exit(main())
