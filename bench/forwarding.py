"""Media-plane benchmark: CPU-microseconds per forwarded packet, in one run,
for Switchboard's native plane, a pure-Python forwarder and a plain C
forwarder with no crypto (the kernel floor). See ``bench/README.md``.

Why this shape (``shared/DESIGN.md`` section 5, ``reference/hotpath.md``):
on this machine the loopback UDP path, not SRTP, sets the cost of
forwarding, and the machine is shared and noisy, so absolute numbers drift
by tens of percent between runs while ratios measured back to back in one
run hold. Every forwarder therefore gets the same pre-encrypted traffic from
the same C load generator, runs alone on its own core, and is charged the
exact CPU time of its threads (schedstat, ns; plus ksoftirqd on its core)
over a window in which the receivers count what it sent.

Workload: the seeds' call shape. Calls of 8 users, 2 unmuted; each unmuted
user sends one 200-byte SRTP (AEAD_AES_128_GCM) Opus-size packet every 20 ms
with its own random phase (senders are not synchronised, as real clients
are not), and every other user of the call receives it: fan-out 7 per call,
so 100 calls = 10k packets/s in, 70k out. Two operating points:

* the seeds' rate: 100 calls;
* saturation: the most calls one core forwards without loss (searched per
  forwarder: an overload probe estimates capacity, then a few trials close
  in on the largest lossless load).

``python bench/forwarding.py [--quick] [--json]``; with ``--json`` the last
line of output is one JSON object (keys listed in ``JSON_KEYS``).
Internal entry point: ``--serve-native`` runs the native plane as the
forwarder process of a trial.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pyforward import PROFILE, Track, User, load_routes, serve_until_stopped, write_routes

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

USERS_PER_CALL = 8
UNMUTED_PER_CALL = 2
FANOUT = USERS_PER_CALL - 1
PPS = 50
PERIOD_NS = 1_000_000_000 // PPS
PACKET_BYTES = 200            # 12 RTP + 16 extension + 156 payload + 16 GCM tag
PAYLOAD_BYTES = 156
IN_SSRC_BASE = 0x20000000
OUT_SSRC_BASE = 0x40000000    # out SSRC = base + consumer index (loadgen.c relies on it)
EXT_ID = 14                   # one-byte header extension: u32 scheduled us after t0, u32 packet index
LOAD_SOCKETS = 8              # wildcard-bound sockets the simulated users share (source IP per user)
RECEIVE_TICK_NS = 100_000    # the load generator polls its receive sockets this often
SAMPLE_CONSUMERS = 24         # first packets of this many consumers are decrypted as a check

JSON_KEYS = (
    "us_per_pkt", "floor_us_per_pkt", "python_us_per_pkt", "loss",
    "sat_us_per_pkt", "sat_floor_us_per_pkt", "sat_python_us_per_pkt", "sat_out_pps",
)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run's settings (``--quick`` and ``--smoke`` are presets)."""

    calls: int = 100
    """Calls at the seeds' operating point."""
    warm: float = 1.0
    """Seconds of load before the measured window (queues, caches, ROC settle)."""
    measure: float = 4.0
    """Seconds in the measured window of each trial at the seeds' rate."""
    sat_warm: float = 1.0
    """Warm-up of each saturation trial."""
    sat_measure: float = 3.0
    """Measured window of each saturation trial."""
    drain: float = 0.3
    """Seconds the load generator keeps receiving after its last send."""
    probe_calls: int = 460
    """First saturation trial of the C forwarders (an overload: ~320k out pps offered)."""
    python_probe_calls: int = 300
    """First saturation trial of the Python forwarder (about twice what it can do)."""
    sat_trials: int = 5
    """Most trials per forwarder in the saturation search."""
    rounds: int = 3
    """Trials per forwarder at the seeds' rate, interleaved across forwarders and pooled."""
    confirm_rounds: int = 2
    """Interleaved rounds re-measuring every forwarder at its saturation point (pooled with the search's trial)."""
    sat_loss: float = 1e-4
    """Loss fraction still counted as 'without loss' at saturation (blips on a shared machine)."""
    max_calls: int = 1000
    """Upper bound on calls in any trial."""
    coalesce_us: int = 200
    """Coalescing interval of the native plane's second configuration (the default config has 0)."""
    cpu_fwd: int = 1
    """CPU the forwarder under test is pinned to."""
    cpu_load: int = 0
    """CPU the load generator (and this orchestrator) are pinned to."""
    rt_priority: int = 10
    """SCHED_FIFO priority of the forwarder and the load generator, so that other
    processes on this shared machine neither delay their wake-ups nor share their
    cores (the kernel's RT throttling still leaves others 5%). 0, or no permission:
    use ``nice`` instead."""
    nice: int = -10
    """Niceness of the forwarder and load generator when not SCHED_FIFO."""
    bufsize: int = 16 << 20
    """Socket buffers the forwarders ask for (what MediaConfig asks for by default)."""
    load_bufsize: int = 64 << 20
    """Receive buffers of the load generator's sockets (so the receivers never drop)."""
    quiet_wait: float = 3.0
    """Without SCHED_FIFO: most seconds to wait before a trial for both CPUs to be nearly idle."""
    max_foreign: float = 0.15
    """Without SCHED_FIFO: share of either core used by other processes in a window above which
    the trial is retried once."""
    retries: int = 8
    """Most retries of disturbed trials in one run."""
    forwarders: tuple[str, ...] = ("floor", "native", "python")
    """Which forwarders to run (the JSON keys of skipped ones are null)."""


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"warm": 0.5, "measure": 2.5, "sat_warm": 0.5, "sat_measure": 1.5, "sat_trials": 3, "rounds": 1,
              "confirm_rounds": 0},
    "smoke": {"calls": 3, "warm": 0.3, "measure": 0.6, "sat_warm": 0.2, "sat_measure": 0.4, "drain": 0.2,
              "probe_calls": 8, "python_probe_calls": 6, "sat_trials": 1, "rounds": 1, "confirm_rounds": 0,
              "quiet_wait": 0.0, "retries": 0},
}


# --------------------------------------------------------------------- workload


def user_keys(user: int) -> tuple[bytes, bytes]:
    """(tx, rx) key+salt of a simulated user; deterministic so every trial
    and every forwarder sees the same clients."""
    tx = hashlib.sha256(b"switchboard-bench-tx-%d" % user).digest()[:28]
    rx = hashlib.sha256(b"switchboard-bench-rx-%d" % user).digest()[:28]
    return tx, rx


def sender_user(sender: int) -> int:
    """Senders are numbered call-major: call c's unmuted users are 8c and 8c+1."""
    return (sender // UNMUTED_PER_CALL) * USERS_PER_CALL + sender % UNMUTED_PER_CALL


def sender_payload(sender: int) -> bytes:
    return (hashlib.sha256(b"payload-%d" % sender).digest() * 5)[:PAYLOAD_BYTES]


class PacketStore:
    """Pre-encrypted SRTP packets for every sender, in a file loadgen.c maps.

    Layout: u32 magic 'SBPK', u32 senders, u32 packets per sender, u32 stride,
    then sender-major slots: u16 length (little endian) + packet. Senders are
    appended as trials need more; packet k of sender s carries, in header
    extension 14, its scheduled send time (phase + k * 20 ms, in us after the
    load generator's t0) and k."""

    STRIDE = 256

    def __init__(self, path: str, n_pkts: int, seed: int = 1) -> None:
        self.path = path
        self.n_pkts = n_pkts
        self.n_senders = 0
        self._rng = random.Random(seed)
        self.phases: list[int] = []
        with open(path, "wb") as f:
            f.write(struct.pack("<4I", 0x4B504253, 0, n_pkts, self.STRIDE))

    def ensure(self, n_senders: int) -> float:
        """Make sure packets for ``n_senders`` exist; returns seconds spent."""
        if n_senders <= self.n_senders:
            return 0.0
        import pylibsrtp

        t = time.perf_counter()
        hdr = struct.Struct("!BBHIIHHBII3x")
        slot = struct.Struct("<H")
        policy_args = {"ssrc_type": pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                       "srtp_profile": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM}
        with open(self.path, "r+b") as f:
            f.seek(16 + self.n_senders * self.n_pkts * self.STRIDE)
            for s in range(self.n_senders, n_senders):
                phase = self._rng.randrange(PERIOD_NS)
                self.phases.append(phase)
                session = pylibsrtp.Session(pylibsrtp.Policy(key=user_keys(sender_user(s))[0], **policy_args))
                payload = sender_payload(s)
                seq0 = self._rng.randrange(30000)
                ts0 = self._rng.randrange(1 << 31)
                ssrc = IN_SSRC_BASE + s
                buf = bytearray(self.n_pkts * self.STRIDE)
                for k in range(self.n_pkts):
                    sched_us = (phase + k * PERIOD_NS) // 1000
                    plain = hdr.pack(0x90, 111, (seq0 + k) & 0xFFFF, (ts0 + k * 960) & 0xFFFFFFFF, ssrc,
                                     0xBEDE, 3, (EXT_ID << 4) | 7, sched_us, k) + payload
                    packet = session.protect(plain)
                    off = k * self.STRIDE
                    buf[off:off + 2] = slot.pack(len(packet))
                    buf[off + 2:off + 2 + len(packet)] = packet
                f.write(buf)
            self.n_senders = n_senders
            f.seek(0)
            f.write(struct.pack("<4I", 0x4B504253, n_senders, self.n_pkts, self.STRIDE))
        return time.perf_counter() - t


@dataclass(frozen=True)
class Topology:
    """Users, tracks and consumers of ``calls`` calls, with user addresses on
    the load generator's sockets."""

    calls: int
    users: list[User]
    user_sock: list[int]
    tracks: list[Track]
    consumers: list[tuple[int, int]]
    """(sender, receiving user) per consumer; out SSRC = OUT_SSRC_BASE + index."""


def build_topology(calls: int, ports: Sequence[int]) -> Topology:
    users, user_sock = [], []
    for u in range(calls * USERS_PER_CALL):
        sock = u % len(ports)
        idx = u // len(ports) + 1
        tx, rx = user_keys(u)
        users.append(User(f"127.1.{idx >> 8}.{idx & 0xFF}", ports[sock], tx, rx))
        user_sock.append(sock)
    tracks: list[Track] = []
    consumers: list[tuple[int, int]] = []
    for s in range(calls * UNMUTED_PER_CALL):
        pub = sender_user(s)
        call_base = (pub // USERS_PER_CALL) * USERS_PER_CALL
        cons = []
        for u in range(call_base, call_base + USERS_PER_CALL):
            if u != pub:
                cons.append((u, OUT_SSRC_BASE + len(consumers)))
                consumers.append((s, u))
        tracks.append(Track(pub, IN_SSRC_BASE + s, tuple(cons)))
    return Topology(calls, users, user_sock, tracks, consumers)


# --------------------------------------------------------------------- system


def read_sysctl(name: str) -> int | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return None


def udp_snmp() -> dict[str, int]:
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))


def ksoftirqd_pids() -> list[int]:
    """pid of ksoftirqd/N for N = 0..ncpu-1 (0 where not found)."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("ksoftirqd/"):
            found[int(comm.split("/")[1])] = int(entry)
    n = os.cpu_count() or 1
    return [found.get(i, 0) for i in range(n)]


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """(busy, total) ticks per CPU from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]]
                idle = v[3] + v[4]
                out[int(name[3:])] = (sum(v) - idle, sum(v))
    return out


def wait_quiet(max_wait: float, threshold: float = 0.1, probe: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until every CPU was busy less than
    ``threshold`` over ``probe`` s; returns the busiest CPU's share last seen."""
    deadline = time.monotonic() + max_wait
    busy = 1.0
    while True:
        a = cpu_ticks()
        time.sleep(probe)
        b = cpu_ticks()
        busy = max((b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in a)
        if busy <= threshold or time.monotonic() >= deadline:
            return busy


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def compile_c(workdir: str) -> dict[str, str]:
    out = {}
    for name in ("loadgen", "floor"):
        exe = os.path.join(workdir, name)
        cmd = ["gcc", "-O2", "-Wall", "-o", exe, os.path.join(BENCH_DIR, name + ".c")]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise SystemExit(f"compiling {name}.c failed:\n{res.stderr}")
        out[name] = exe
    return out


def _pinned(cpu: int, rt_priority: int, nice: int) -> Callable[[], None]:
    """Child set-up (runs between fork and exec): pin to ``cpu`` and raise priority."""
    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        if rt_priority > 0:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
                return
            except OSError:
                pass
        if nice:
            try:
                os.nice(nice)
            except OSError:
                pass
    return setup


def scheduling_policy(pid: int) -> str:
    try:
        policy = os.sched_getscheduler(pid)
    except OSError:
        return "?"
    if policy == os.SCHED_FIFO:
        return f"SCHED_FIFO {os.sched_getparam(pid).sched_priority}"
    try:
        with open(f"/proc/{pid}/stat") as f:
            nice = int(f.read().rsplit(")", 1)[1].split()[16])
    except (OSError, ValueError, IndexError):
        nice = 0
    return f"SCHED_OTHER nice {nice}"


# --------------------------------------------------------------------- trials


@dataclass
class Trial:
    """What one forwarder did under one load."""

    kind: str
    calls: int
    coalesce_us: int
    us_per_pkt: float
    fwd_cpu_s: float
    ksoftirqd_s: float
    util: float
    in_pps: float
    out_pps: float
    wall_s: float
    loss: float
    expected: int
    unique: int
    dups: int
    misrouted: int
    unknown: int
    rcvq_drops: int
    rcvbuf_errors: int
    delay_us: dict[str, float]
    lag_us: dict[str, float]
    loadgen_util: float
    foreign_cpu: float
    """Share of the forwarder's core used by other processes in the window (tick-based)."""
    foreign_load_cpu: float
    """Share of the load generator's core used by other processes in the window."""
    quiet_before: float
    attempts: int
    rss_mb: float
    fwd_stats: dict[str, Any]
    fwd_tx: int
    rx_total: int
    decrypt_ok: int
    decrypt_n: int
    rcvbuf: int
    rounds_us: list[float] = dataclasses.field(default_factory=list)
    """us/pkt of each pooled trial (empty for a single trial)."""

    @property
    def out_pkts(self) -> float:
        return self.out_pps * self.wall_s

    def brief(self) -> str:
        return (f"{self.kind:<7} calls={self.calls:<4} us/pkt={self.us_per_pkt:6.2f} util={self.util:4.2f} "
                f"out={self.out_pps / 1e3:6.1f}k pps loss={self.loss:.2e} lg={self.loadgen_util:4.2f}")


def pool(trials: Sequence[Trial]) -> Trial:
    """Several trials of one forwarder at one load as one: CPU and packets
    summed before dividing, loss over all packets, worst delay."""
    if len(trials) == 1:
        return trials[0]
    cpu = sum(t.fwd_cpu_s + t.ksoftirqd_s for t in trials)
    wall = sum(t.wall_s for t in trials)
    out = sum(t.out_pkts for t in trials)
    expected = sum(t.expected for t in trials)
    unique = sum(t.unique for t in trials)
    worst = max(trials, key=lambda t: t.delay_us["p99"])
    return dataclasses.replace(
        trials[0],
        us_per_pkt=cpu * 1e6 / max(1.0, out), fwd_cpu_s=sum(t.fwd_cpu_s for t in trials),
        ksoftirqd_s=sum(t.ksoftirqd_s for t in trials), util=cpu / wall, wall_s=wall,
        in_pps=sum(t.in_pps * t.wall_s for t in trials) / wall, out_pps=out / wall,
        loss=(expected - unique) / max(1, expected), expected=expected, unique=unique,
        dups=sum(t.dups for t in trials), misrouted=sum(t.misrouted for t in trials),
        unknown=sum(t.unknown for t in trials), rcvq_drops=sum(t.rcvq_drops for t in trials),
        rcvbuf_errors=sum(t.rcvbuf_errors for t in trials), delay_us=worst.delay_us,
        lag_us=max(trials, key=lambda t: t.lag_us["p99"]).lag_us,
        loadgen_util=max(t.loadgen_util for t in trials),
        foreign_cpu=sum(t.foreign_cpu for t in trials) / len(trials),
        foreign_load_cpu=sum(t.foreign_load_cpu for t in trials) / len(trials),
        rss_mb=max(t.rss_mb for t in trials), fwd_tx=sum(t.fwd_tx for t in trials),
        rx_total=sum(t.rx_total for t in trials), decrypt_ok=sum(t.decrypt_ok for t in trials),
        decrypt_n=sum(t.decrypt_n for t in trials), attempts=sum(t.attempts for t in trials),
        rounds_us=[t.us_per_pkt for t in trials],
    )


class Bench:
    def __init__(self, cfg: BenchConfig, workdir: str, log: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.log = log
        self.bins = compile_c(workdir)
        n_pkts = math.ceil(max(cfg.warm + cfg.measure, cfg.sat_warm + cfg.sat_measure) * PPS) + 2
        self.store = PacketStore(os.path.join(workdir, "packets.bin"), n_pkts)
        self.ksoftirqd = ksoftirqd_pids()
        self.trial_no = 0
        self.retries_used = 0
        self.policy = "?"
        self.realtime = cfg.rt_priority > 0 and os.geteuid() == 0
        self.gen_s = 0.0

    def _forwarder_cmd(self, kind: str, routes: str, coalesce_us: int, max_s: float) -> list[str]:
        buf = str(self.cfg.bufsize)
        if kind == "floor":
            return [self.bins["floor"], routes, buf, str(max_s)]
        if kind == "python":
            return [sys.executable, os.path.join(BENCH_DIR, "pyforward.py"), routes, buf, str(max_s)]
        if kind == "native":
            return [sys.executable, os.path.abspath(__file__), "--serve-native", routes, str(coalesce_us), buf,
                    str(max_s)]
        raise ValueError(f"unknown forwarder {kind!r}")

    def trial(self, kind: str, calls: int, warm: float, measure: float, coalesce_us: int = 0) -> Trial:
        """One measured trial; repeated once when other processes took more
        than ``max_foreign`` of either core during its window."""
        attempts = 0
        while True:
            attempts += 1
            # Under SCHED_FIFO other processes can neither delay nor share the
            # forwarder's core: no waiting for quiet, no retries.
            quiet = wait_quiet(self.cfg.quiet_wait) if self.cfg.quiet_wait > 0 and not self.realtime else -1.0
            t = self._trial_once(kind, calls, warm, measure, coalesce_us)
            t.quiet_before, t.attempts = quiet, attempts
            self.realtime = self.policy.startswith("SCHED_FIFO")
            disturbed = not self.realtime and max(t.foreign_cpu, t.foreign_load_cpu) > self.cfg.max_foreign
            if not disturbed or attempts >= 2 or self.retries_used >= self.cfg.retries:
                return t
            self.retries_used += 1
            self.log(f"  (retrying: other processes used {t.foreign_cpu:.0%} of the forwarder's core, "
                     f"{t.foreign_load_cpu:.0%} of the load's)")

    def _trial_once(self, kind: str, calls: int, warm: float, measure: float, coalesce_us: int) -> Trial:
        cfg = self.cfg
        calls = max(1, min(calls, cfg.max_calls))
        self.trial_no += 1
        tag = f"t{self.trial_no}"
        self.gen_s += self.store.ensure(calls * UNMUTED_PER_CALL)
        socks = []
        for _ in range(LOAD_SOCKETS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 0))
            socks.append(s)
        topo = build_topology(calls, [s.getsockname()[1] for s in socks])
        routes = os.path.join(self.workdir, f"{tag}.routes")
        write_routes(routes, topo.users, topo.tracks)
        n_pkts = round((warm + measure) * PPS)
        run_s = warm + measure + cfg.drain + 0.1
        proc = subprocess.Popen(self._forwarder_cmd(kind, routes, coalesce_us, run_s + 120),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                # single-threaded orchestrator: preexec_fn is safe here
                                preexec_fn=_pinned(cfg.cpu_fwd, cfg.rt_priority, cfg.nice))  # noqa: PLW1509
        try:
            ready = self._read_line(proc, 60.0, "READY")
            self.policy = scheduling_policy(proc.pid)
            port, fwd_rcvbuf = int(ready.split()[1]), int(ready.split()[2])
            lg_cfg = os.path.join(self.workdir, f"{tag}.loadgen")
            sample = os.path.join(self.workdir, f"{tag}.sample")
            self._write_loadgen_config(lg_cfg, topo, port, proc.pid, sample, n_pkts, warm, measure,
                                       [s.fileno() for s in socks])
            snmp0 = udp_snmp()
            lg = subprocess.run([self.bins["loadgen"], lg_cfg], capture_output=True, text=True,
                                pass_fds=[s.fileno() for s in socks], timeout=run_s + 60, check=False,
                                preexec_fn=_pinned(cfg.cpu_load, cfg.rt_priority, cfg.nice))
            snmp1 = udp_snmp()
            if lg.returncode != 0:
                raise RuntimeError(f"loadgen failed ({lg.returncode}): {lg.stderr.strip()}")
            res = json.loads(lg.stdout.strip().splitlines()[-1])
            rss = rss_bytes(proc.pid)
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            fwd_stats = json.loads(self._read_line(proc, 30.0, "{"))
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for s in socks:
                s.close()
        ok, n = self._check_sample(kind, topo, sample) if kind != "floor" else (0, 0)
        return self._summarise(kind, calls, coalesce_us, res, fwd_stats, snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"],
                               rss, ok, n, fwd_rcvbuf)

    def _read_line(self, proc: subprocess.Popen[str], timeout: float, prefix: str) -> str:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"forwarder exited (code {proc.poll()}) before printing {prefix!r}")
            if line.startswith(prefix):
                return line
        raise RuntimeError(f"forwarder printed no {prefix!r} line within {timeout:.0f} s")

    def _write_loadgen_config(self, path: str, topo: Topology, port: int, pid: int, sample: str, n_pkts: int,
                              warm: float, measure: float, fds: list[int]) -> None:
        c = self.cfg
        lines = [
            f"forwarder 127.0.0.1 {port} {pid}",
            f"ksoftirqd {len(self.ksoftirqd)} " + " ".join(str(p) for p in self.ksoftirqd),
            f"packets {self.store.path} {n_pkts}",
            f"sample {sample} {SAMPLE_CONSUMERS}",
            f"timing {PERIOD_NS} {50_000_000} {int(warm * 1e9)} {int(measure * 1e9)} {int(c.drain * 1e9)} "
            f"{RECEIVE_TICK_NS}",
            f"sockets {len(fds)} {c.load_bufsize} " + " ".join(str(fd) for fd in fds),
            f"users {len(topo.users)}",
        ]
        lines += [f"{u.ip} {topo.user_sock[i]}" for i, u in enumerate(topo.users)]
        n_senders = topo.calls * UNMUTED_PER_CALL
        lines.append(f"senders {n_senders}")
        lines += [f"{sender_user(s)} {self.store.phases[s]}" for s in range(n_senders)]
        lines.append(f"consumers {len(topo.consumers)}")
        lines += [f"{s} {u}" for s, u in topo.consumers]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _check_sample(self, kind: str, topo: Topology, path: str) -> tuple[int, int]:
        """Decrypt the first packet each of the first consumers received with
        that subscriber's keys: the forwarder really re-protected it, with the
        right keys, SSRC and payload."""
        import pylibsrtp

        ok = n = 0
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return 0, 0
        pos = 0
        while pos + 6 <= len(data):
            c, ln = struct.unpack_from("<IH", data, pos)
            pkt = data[pos + 6:pos + 6 + ln]
            pos += 6 + ln
            n += 1
            sender, user = topo.consumers[c]
            session = pylibsrtp.Session(pylibsrtp.Policy(
                key=topo.users[user].rx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM))
            try:
                plain = session.unprotect(pkt)
            except pylibsrtp.Error:
                continue
            ssrc = struct.unpack_from("!I", plain, 8)[0]
            if ssrc == OUT_SSRC_BASE + c and plain.endswith(sender_payload(sender)):
                ok += 1
        return ok, n

    def _summarise(self, kind: str, calls: int, coalesce_us: int, res: dict[str, Any], fwd: dict[str, Any],
                   rcvbuf_errors: int, rss: int, ok: int, n: int, fwd_rcvbuf: int) -> Trial:
        w = res["window"]
        wall = w["wall_ns"] / 1e9
        ksirq = w["ksoftirqd_ns"][self.cfg.cpu_fwd] / 1e9 if self.cfg.cpu_fwd < len(w["ksoftirqd_ns"]) else 0.0
        fwd_cpu = w["fwd_cpu_ns"] / 1e9
        cpu = fwd_cpu + ksirq
        out = max(1, w["rx_rtp"])
        busy = w["cpu_busy_ticks"]
        hz = os.sysconf("SC_CLK_TCK")
        foreign = foreign_load = 0.0
        if self.cfg.cpu_fwd < len(busy) and wall > 0:
            foreign = max(0.0, busy[self.cfg.cpu_fwd] / hz - cpu) / wall
        if self.cfg.cpu_load < len(busy) and wall > 0 and self.cfg.cpu_load != self.cfg.cpu_fwd:
            ks = w["ksoftirqd_ns"]
            own = w["self_cpu_ns"] / 1e9 + (ks[self.cfg.cpu_load] / 1e9 if self.cfg.cpu_load < len(ks) else 0.0)
            foreign_load = max(0.0, busy[self.cfg.cpu_load] / hz - own) / wall
        expected = max(1, res["expected"])
        return Trial(
            kind=kind, calls=calls, coalesce_us=coalesce_us,
            us_per_pkt=cpu * 1e6 / out, fwd_cpu_s=fwd_cpu, ksoftirqd_s=ksirq, util=cpu / wall if wall else 0.0,
            in_pps=w["sent"] / wall if wall else 0.0, out_pps=w["rx_rtp"] / wall if wall else 0.0, wall_s=wall,
            loss=(res["expected"] - res["unique"]) / expected, expected=res["expected"], unique=res["unique"],
            dups=res["dups"], misrouted=res["misrouted"], unknown=res["unknown_ssrc"] + res["no_ext"] + res["bad"],
            rcvq_drops=res["rcvq_drops"], rcvbuf_errors=rcvbuf_errors,
            delay_us=res["delay_us"], lag_us=res["lag_us"],
            loadgen_util=w["self_cpu_ns"] / 1e9 / wall if wall else 0.0, foreign_cpu=foreign,
            foreign_load_cpu=foreign_load, quiet_before=-1.0, attempts=1,
            rss_mb=rss / 2**20, fwd_stats=fwd, fwd_tx=int(fwd.get("tx", fwd.get("tx_datagrams", 0))),
            rx_total=res["rx_rtp"] + res["rx_rtcp"] + res["dups"], decrypt_ok=ok, decrypt_n=n,
            rcvbuf=fwd_rcvbuf,
        )

    # ----------------------------------------------------------------- saturation

    def saturate(self, kind: str, coalesce_us: int = 0) -> tuple[Trial | None, list[Trial]]:
        """Largest lossless load on one core: start with an overload probe,
        estimate capacity from what it delivered per CPU-second, then step
        towards the largest number of calls with loss <= sat_loss."""
        cfg = self.cfg
        calls = cfg.python_probe_calls if kind == "python" else cfg.probe_calls
        best: Trial | None = None
        bad: int | None = None
        trials: list[Trial] = []
        for _ in range(cfg.sat_trials):
            t = self.trial(kind, calls, cfg.sat_warm, cfg.sat_measure, coalesce_us)
            trials.append(t)
            self.log("  sat " + t.brief())
            capacity = t.out_pps / max(t.util, 0.05) / (FANOUT * PPS * UNMUTED_PER_CALL)   # calls at util 1.0
            if t.loss <= cfg.sat_loss:
                if best is None or t.calls > best.calls:
                    best = t
                if t.util >= 0.93 or t.calls >= cfg.max_calls:
                    break
                nxt = int(t.calls * min(1.5, max(1.04, 0.96 / max(t.util, 0.05))))
                if bad is not None:
                    nxt = min(nxt, (t.calls + bad) // 2)
            else:
                bad = t.calls if bad is None else min(bad, t.calls)
                nxt = int(0.92 * capacity)
                if nxt >= t.calls:
                    nxt = int(t.calls * 0.9)
                if best is not None:
                    nxt = max(nxt, (best.calls + t.calls) // 2)
            if best is not None and bad is not None and bad - best.calls <= max(2, int(0.04 * best.calls)):
                break
            if nxt == calls or nxt < 1:
                break
            calls = nxt
        return best, trials


# --------------------------------------------------------------------- native server


def serve_native(routes: str, coalesce_us: int, bufsize: int, max_seconds: float) -> None:
    """Forwarder process of a trial: the engine's MediaPlane with its default
    configuration except the listen address, the coalescing interval under
    test and table sizes large enough for the trial."""
    import uvloop

    uvloop.run(_serve_native(routes, coalesce_us, bufsize, max_seconds))


async def _serve_native(routes: str, coalesce_us: int, bufsize: int, max_seconds: float) -> None:
    from switchboard.engine.mediaplane import KIND_AUDIO, MediaConfig, MediaPlane

    users, tracks = load_routes(routes)
    n_cons = sum(len(t.consumers) for t in tracks)
    defaults = MediaConfig()
    config = MediaConfig(
        addresses=("127.0.0.1",), port=0, socket_buffer_bytes=bufsize, report_interval=1.0,
        coalesce_us=coalesce_us,
        max_sessions=max(defaults.max_sessions, len(users) + 16),
        max_tracks=max(defaults.max_tracks, len(tracks) + 16),
        max_consumers=max(defaults.max_consumers, n_cons + 16),
    )
    plane = MediaPlane(config)
    await plane.start()
    sids = []
    for u in users:
        sid = plane.add_session()
        plane.bind_session(sid, 0, (u.ip, u.port))
        plane.set_session_keys(sid, PROFILE, local_key_salt=u.rx_key, remote_key_salt=u.tx_key)
        sids.append(sid)
    for t in tracks:
        tid = plane.publish(sids[t.publisher], kind=KIND_AUDIO, clock_rate=48000, ssrc=t.ssrc)
        for u, out_ssrc in t.consumers:
            plane.subscribe(tid, sids[u], out_ssrc)
    info = plane.socket_info[0]

    def stats() -> dict[str, object]:
        out: dict[str, object] = dict(plane.global_stats())
        totals = plane.session_counters[sids].sum(axis=0)
        from switchboard.engine.mediaplane import SESSION_COUNTERS

        for name, value in zip(SESSION_COUNTERS, totals):
            out["session_" + name] = int(value)
        out["tx"] = out["session_tx_packets"]
        return out

    try:
        await serve_until_stopped(f"READY {info.address[1]} {info.rcvbuf} {info.sndbuf}", stats, max_seconds)
    finally:
        await plane.stop()


# --------------------------------------------------------------------- report


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def run(cfg: BenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    try:
        os.sched_setaffinity(0, {cfg.cpu_load})
    except OSError:
        pass
    t_start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="sb-bench-")
    try:
        bench = Bench(cfg, workdir, log)
        plan = [(k, co) for k, co in (("floor", 0), ("native", 0), ("python", 0), ("native", cfg.coalesce_us))
                if k in cfg.forwarders]
        log(f"seeds' rate: {cfg.calls} calls, {cfg.calls * UNMUTED_PER_CALL * PPS} pps in, "
            f"{cfg.calls * UNMUTED_PER_CALL * PPS * FANOUT} pps out offered; {cfg.rounds} round(s)")
        seed_trials: dict[str, list[Trial]] = {}
        for _ in range(cfg.rounds):
            for kind, co in plan:
                t = bench.trial(kind, cfg.calls, cfg.warm, cfg.measure, co)
                seed_trials.setdefault(f"{kind}{'+c' if co else ''}", []).append(t)
                log("  " + t.brief() + (f" (coalesce {co} us)" if co else ""))
        seeds = {k: pool(v) for k, v in seed_trials.items()}
        log("saturation: largest lossless load on one core")
        searched: dict[str, tuple[Trial | None, list[Trial]]] = {}
        for kind in ("floor", "native", "python"):
            if kind in cfg.forwarders:
                searched[kind] = bench.saturate(kind)
        native_sat = searched.get("native", (None, []))[0]
        if native_sat is not None:
            t = bench.trial("native", native_sat.calls, cfg.sat_warm, cfg.sat_measure, cfg.coalesce_us)
            log("  sat " + t.brief() + f" (coalesce {cfg.coalesce_us} us, native's saturation load)")
            searched["native+c"] = (t, [t])
        sat: dict[str, tuple[Trial | None, list[Trial]]] = {}
        extra: dict[str, list[Trial]] = {}
        if cfg.confirm_rounds > 0:
            log(f"saturation: re-measuring each point in {cfg.confirm_rounds} interleaved round(s)")
        for _ in range(cfg.confirm_rounds):
            for key in ("floor", "native", "native+c", "python"):
                best = searched.get(key, (None, []))[0]
                if best is not None:
                    t = bench.trial(best.kind, best.calls, cfg.sat_warm, cfg.sat_measure, best.coalesce_us)
                    extra.setdefault(key, []).append(t)
                    log("  sat " + t.brief() + (f" (coalesce {best.coalesce_us} us)" if best.coalesce_us else ""))
        for key, (best, trials) in searched.items():
            if best is not None and key in extra:
                sat[key] = (pool([best, *extra[key]]), trials + extra[key])
            else:
                sat[key] = (best, trials)
        elapsed = time.monotonic() - t_start
        return report(cfg, bench, seeds, sat, elapsed, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(cfg: BenchConfig, bench: Bench, seeds: dict[str, Trial], sat: dict[str, tuple[Trial | None, list[Trial]]],
           elapsed: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Print the tables and build the JSON result."""
    def us(t: Trial | None) -> float | None:
        return None if t is None else t.us_per_pkt

    s_nat, s_floor, s_py, s_natc = (seeds.get(k) for k in ("native", "floor", "python", "native+c"))
    x_nat, x_floor, x_py, x_natc = (sat.get(k, (None, []))[0] for k in ("native", "floor", "python", "native+c"))
    rmem, wmem = read_sysctl("net.core.rmem_max"), read_sysctl("net.core.wmem_max")
    any_t = next(iter(seeds.values()), None) or x_nat or x_floor or x_py
    fwd_rcvbuf = any_t.rcvbuf if any_t else None
    names = {"native": "switchboard native (default: coalesce 0)",
             "native+c": f"switchboard native (coalesce_us={cfg.coalesce_us})",
             "python": "pure Python (uvloop + pylibsrtp)", "floor": "C floor (recvmmsg/sendmmsg, no crypto)"}

    def rounds(t: Trial) -> str:
        return "/".join(f"{x:.1f}" for x in t.rounds_us) if t.rounds_us else f"{t.us_per_pkt:.1f}"

    lines = [
        "",
        f"Media-plane benchmark: calls of {USERS_PER_CALL} users, {UNMUTED_PER_CALL} unmuted; {PACKET_BYTES}-byte "
        f"SRTP ({PROFILE}) packets, {PPS} pps per sender, unsynchronised; loopback.",
        f"Forwarder on CPU {cfg.cpu_fwd}, load generator on CPU {cfg.cpu_load}, both {bench.policy}. "
        f"CPU = forwarder threads + ksoftirqd/{cfg.cpu_fwd} (schedstat, ns) over the window.",
        f"net.core.rmem_max={rmem} wmem_max={wmem}; forwarder sockets asked {cfg.bufsize >> 20} MiB, "
        f"got rcvbuf {fwd_rcvbuf} B (SO_RCVBUFFORCE when root).",
        "",
        f"Seeds' rate: {cfg.calls} calls = {cfg.calls * USERS_PER_CALL} users, "
        f"{cfg.calls * UNMUTED_PER_CALL * PPS} pps in, {cfg.calls * UNMUTED_PER_CALL * PPS * FANOUT} pps out; "
        f"{cfg.rounds} x {cfg.measure:g} s windows per forwarder, interleaved, pooled",
        f"{'forwarder':<42} {'us/pkt':>6} {'x floor':>7} {'per round':>13} {'out pps':>7} {'util':>4} {'loss':>7} "
        f"{'delay p50/p99/max us':>20} {'rcvbufE':>7} {'lg':>4} {'others':>6} {'decrypt':>7}",
    ]
    for key in ("native", "native+c", "python", "floor"):
        t = seeds.get(key)
        if t is None:
            continue
        d = t.delay_us
        dec = f"{t.decrypt_ok}/{t.decrypt_n}" if t.decrypt_n else "-"
        lines.append(
            f"{names[key]:<42} {t.us_per_pkt:6.2f} {_fmt(_ratio(t.us_per_pkt, us(s_floor)), '7.2f')} "
            f"{rounds(t):>13} {t.out_pps:7.0f} {t.util:4.2f} {t.loss:7.1e} "
            f"{d['p50']:5.0f}/{d['p99']:5.0f}/{d['max']:6.0f} {t.rcvbuf_errors:7d} {t.loadgen_util:4.2f} "
            f"{t.foreign_cpu:6.2f} {dec:>7}")
    lines += [
        "",
        f"Saturation: most calls one core forwards with loss <= {cfg.sat_loss:g} ({cfg.sat_measure:g} s windows; "
        f"the point found by the search{', re-measured in interleaved rounds and pooled' if cfg.confirm_rounds else ''})",
        f"{'forwarder':<42} {'calls':>5} {'us/pkt':>6} {'x floor':>7} {'per round':>13} {'out pps':>7} {'util':>4} "
        f"{'loss':>7} {'p99 us':>7} {'overload':>8}  trials (calls:loss)",
    ]
    for key in ("native", "native+c", "python", "floor"):
        if key not in sat:
            continue
        best, trials = sat[key]
        over = [t for t in trials if t.loss > cfg.sat_loss and t.util >= 0.9]
        over_us = max(over, key=lambda t: t.util).us_per_pkt if over else None
        tr = " ".join(f"{t.calls}:{t.loss:.0e}" for t in trials)
        if best is None:
            lines.append(f"{names[key]:<42} no lossless load found  [{tr}]")
            continue
        lines.append(
            f"{names[key]:<42} {best.calls:5d} {best.us_per_pkt:6.2f} "
            f"{_fmt(_ratio(best.us_per_pkt, us(x_floor)), '7.2f')} {rounds(best):>13} {best.out_pps:7.0f} "
            f"{best.util:4.2f} {best.loss:7.1e} {best.delay_us['p99']:7.0f} {_fmt(over_us, '8.2f')}  [{tr}]")

    ratio_floor, sat_ratio_floor = _ratio(us(s_nat), us(s_floor)), _ratio(us(x_nat), us(x_floor))
    sat_python_over_native = _ratio(us(x_py), us(x_nat))
    checks = {
        "seeds_within_1.3x_floor": None if ratio_floor is None else ratio_floor <= 1.3,
        "sat_within_1.3x_floor": None if sat_ratio_floor is None else sat_ratio_floor <= 1.3,
        "sat_2.5x_below_python": None if sat_python_over_native is None else sat_python_over_native >= 2.5,
        "zero_loss_seeds": None if s_nat is None else s_nat.unique == s_nat.expected,
    }
    lines += [
        "",
        "Targets (ratios within this run): native/floor at seeds' rate "
        f"{_fmt(ratio_floor, '.2f')} (<= 1.3), at saturation {_fmt(sat_ratio_floor, '.2f')} (<= 1.3); "
        f"python/native at saturation {_fmt(sat_python_over_native, '.2f')} (>= 2.5); "
        f"native packets lost at seeds' rate {s_nat.expected - s_nat.unique if s_nat else '-'} (0).",
        "  " + "  ".join(f"{k}: {'-' if v is None else ('PASS' if v else 'FAIL')}" for k, v in checks.items()),
    ]
    if s_nat is not None:
        mbit = PACKET_BYTES * 8 / 1e6
        lines += [
            "",
            "Calls | Users/call | Unmuted/call | Screen sharing | CPU | Memory | Bandwidth in/out",
            f"{cfg.calls} | {USERS_PER_CALL} | {UNMUTED_PER_CALL} | 0 | {s_nat.util:.2f} vCPU (forwarding only) | "
            f"{s_nat.rss_mb:.0f} MB | {s_nat.in_pps * mbit:.0f}/{s_nat.out_pps * mbit:.0f} Mbit/s",
        ]
    lines += [
        "",
        f"us_per_pkt (headline) = native plane, default MediaConfig (coalesce_us=0); us_per_pkt_coalesce = "
        f"coalesce_us={cfg.coalesce_us}. lg = load generator's CPU share; others = other processes' share of the "
        f"forwarder's core; rcvbufE = Udp RcvbufErrors (system-wide) during the trials. "
        f"Packet generation {bench.gen_s:.1f} s, total {elapsed:.0f} s.",
    ]
    for line in lines:
        log(line)

    def get(t: Trial | None, name: str) -> Any:
        return None if t is None else getattr(t, name)

    return {
        "us_per_pkt": us(s_nat), "floor_us_per_pkt": us(s_floor), "python_us_per_pkt": us(s_py),
        "loss": get(s_nat, "loss"),
        "us_per_pkt_coalesce": us(s_natc), "coalesce_us": cfg.coalesce_us, "headline_coalesce_us": 0,
        "ratio_floor": ratio_floor, "ratio_python": _ratio(us(s_py), us(s_nat)),
        "ratio_floor_coalesce": _ratio(us(s_natc), us(s_floor)),
        "util": get(s_nat, "util"), "out_pps": get(s_nat, "out_pps"), "calls": cfg.calls,
        "floor_loss": get(s_floor, "loss"), "python_loss": get(s_py, "loss"), "loss_coalesce": get(s_natc, "loss"),
        "delay_p99_us": None if s_nat is None else s_nat.delay_us["p99"],
        "delay_p99_us_coalesce": None if s_natc is None else s_natc.delay_us["p99"],
        "sat_us_per_pkt": us(x_nat), "sat_floor_us_per_pkt": us(x_floor), "sat_python_us_per_pkt": us(x_py),
        "sat_us_per_pkt_coalesce": us(x_natc),
        "sat_out_pps": get(x_nat, "out_pps"), "sat_floor_out_pps": get(x_floor, "out_pps"),
        "sat_python_out_pps": get(x_py, "out_pps"),
        "sat_calls": get(x_nat, "calls"), "sat_floor_calls": get(x_floor, "calls"),
        "sat_python_calls": get(x_py, "calls"), "sat_loss": get(x_nat, "loss"), "sat_util": get(x_nat, "util"),
        "sat_loss_coalesce": get(x_natc, "loss"),
        "sat_ratio_floor": sat_ratio_floor, "sat_ratio_python": sat_python_over_native,
        "checks": checks, "scheduling": bench.policy,
        "rmem_max": rmem, "wmem_max": wmem, "forwarder_rcvbuf": fwd_rcvbuf,
        "rcvbuf_errors": sum(t.rcvbuf_errors for t in seeds.values()),
        "elapsed_s": elapsed,
        "trials": {
            "seeds": {k: _trial_json(t) for k, t in seeds.items()},
            "saturation": {k: [_trial_json(t) for t in v[1]] for k, v in sat.items()},
        },
    }


def _trial_json(t: Trial) -> dict[str, Any]:
    d = dataclasses.asdict(t)
    d.pop("fwd_stats")
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def parse_args(argv: Sequence[str]) -> tuple[BenchConfig, bool]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--quick", action="store_true", help="shorter windows, fewer saturation trials")
    p.add_argument("--smoke", action="store_true", help="tiny scale, a few seconds (for the test suite)")
    p.add_argument("--calls", type=int, help="calls at the seeds' operating point (default 100)")
    p.add_argument("--measure", type=float, help="seconds in the measured window at the seeds' rate")
    p.add_argument("--sat-trials", type=int, help="most saturation trials per forwarder")
    p.add_argument("--probe-calls", type=int, help="calls in the first saturation trial (C forwarders)")
    p.add_argument("--coalesce-us", type=int, help="native plane's second coalescing setting (default 200)")
    p.add_argument("--forwarders", help="comma-separated subset of floor,native,python")
    p.add_argument("--rt-priority", type=int, help="SCHED_FIFO priority of forwarder and load (default 10; 0 = off)")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {}
    if a.quick:
        kw.update(PRESETS["quick"])
    if a.smoke:
        kw.update(PRESETS["smoke"])
    for name in ("calls", "measure", "sat_trials", "probe_calls", "coalesce_us", "rt_priority"):
        if getattr(a, name) is not None:
            kw[name] = getattr(a, name)
    if a.forwarders:
        kinds = tuple(x.strip() for x in a.forwarders.split(",") if x.strip())
        unknown = set(kinds) - {"floor", "native", "python"}
        if unknown:
            p.error(f"unknown forwarders: {', '.join(sorted(unknown))}")
        kw["forwarders"] = kinds
    if (os.cpu_count() or 1) < 2:
        kw.update(cpu_fwd=0, cpu_load=0)
    return BenchConfig(**kw), a.json


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "--serve-native":
        routes, coalesce, bufsize, max_s = argv[1:5]
        serve_native(routes, int(coalesce), int(bufsize), float(max_s))
        return 0
    cfg, as_json = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    result = run(cfg, log)
    if as_json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
