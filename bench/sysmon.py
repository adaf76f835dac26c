"""Measuring a process from outside: /proc readers and a Prometheus text parser.

- proc(5): ``/proc/<pid>/stat`` (utime, stime in clock ticks), ``/proc/<pid>/status``
  (VmRSS), ``/proc/<pid>/task/<tid>/schedstat`` (run time in ns), ``/proc/net/snmp`` (the
  ``Udp:`` counters, among them RcvbufErrors and SndbufErrors), ``/proc/net/udp`` (per-socket
  receive queue and drops): https://man7.org/linux/man-pages/man5/proc.5.html
- The Prometheus text exposition format:
  https://prometheus.io/docs/instrumenting/exposition_formats/

Why two CPU clocks: ``stat``'s utime/stime are what ``top`` and the SFU's own
``rtcd_process_cpu_seconds_total`` report, but this kernel accounts them by sampling at each
tick (250 Hz, no IRQ-time accounting; ``shared/reference/hotpath.md`` pitfall 6), which aliases
with paced senders over short windows. ``schedstat`` is the scheduler's exact run time of each
thread (the clock behind ``CLOCK_THREAD_CPUTIME_ID``), including softirq work done in the
thread's context. The benchmark reports both; long windows make them agree.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """One look at a process (and the host's UDP counters) at wall time ``t``."""

    t: float
    cpu_ticks_s: float          # utime + stime from /proc/<pid>/stat, seconds
    runtime_s: float            # sum of the threads' schedstat run time, seconds
    rss_bytes: int
    softirqd_runtime_s: float   # ksoftirqd of the process's CPU (when pinned), seconds
    udp: dict[str, int]         # /proc/net/snmp Udp:


def read_stat_cpu(pid: int) -> float:
    """utime + stime of the whole process, seconds (tick-based)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def read_runtime(pid: int) -> float:
    """Exact run time of every thread of ``pid`` (schedstat), seconds."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total * 1e-9


def read_rss(pid: int) -> int:
    """Resident set size in bytes (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def read_udp_snmp(path: str = "/proc/net/snmp") -> dict[str, int]:
    """The host's ``Udp:`` counters (InDatagrams, RcvbufErrors, SndbufErrors, ...)."""
    try:
        with open(path) as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}


def udp_socket_drops(port: int, path: str = "/proc/net/udp") -> tuple[int, int] | None:
    """(drops, rx_queue bytes) of the UDP socket bound to local ``port``, or None."""
    try:
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                local = parts[1]
                if int(local.split(":")[1], 16) == port:
                    rx_queue = int(parts[4].split(":")[1], 16)
                    return int(parts[-1]), rx_queue
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return None


def ksoftirqd_pid(cpu: int) -> int | None:
    """The pid of ``ksoftirqd/<cpu>``, or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == f"ksoftirqd/{cpu}":
                    return int(entry)
        except OSError:
            continue
    return None


def sample(pid: int, softirqd: int | None = None) -> ProcSample:
    return ProcSample(
        t=time.monotonic(),
        cpu_ticks_s=read_stat_cpu(pid),
        runtime_s=read_runtime(pid),
        rss_bytes=read_rss(pid),
        softirqd_runtime_s=read_runtime(softirqd) if softirqd else 0.0,
        udp=read_udp_snmp(),
    )


def read_sysctl(name: str) -> int | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------ Prometheus text

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Series:
    """{(name, sorted label pairs): value} for every sample line; comments skipped."""
    out: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            continue
    return out


def metric(series: Series, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and want <= set(ls))


def delta(a: Series, b: Series, name: str, **labels: str) -> float:
    return metric(b, name, **labels) - metric(a, name, **labels)


def histogram_quantile(series: Series, name: str, q: float, **labels: str) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` of histogram ``name`` (all series
    with ``labels`` merged), or None without observations."""
    buckets: dict[float, float] = {}
    for (n, ls), v in series.items():
        if n != name + "_bucket":
            continue
        d = dict(ls)
        if any(d.get(k) != val for k, val in labels.items()):
            continue
        le = float("inf") if d.get("le") == "+Inf" else float(d.get("le", "nan"))
        buckets[le] = buckets.get(le, 0.0) + v
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    for le in bounds:
        if buckets[le] >= q * total:
            return le
    return bounds[-1]
