"""Prometheus metrics: every ``rtcd_*`` metric of rtcd with its name and
labels (reference rtcd.md section 4), the process collector under the
``rtcd`` namespace, and Switchboard's own ``switchboard_*`` metrics.

Counters that the native router keeps (drops by reason, packets, forwarding
latency) are read in bulk from its numpy arrays at scrape time by a custom
collector, so nothing is updated per packet from Python.

Notes on mapping:

- ``rtcd_rtc_rtp_tracks_writes_time`` is rtcd's time to write one RTP
  packet to one track. Ours is the time from the ``recvmmsg`` that read a
  source packet to the ``sendmmsg`` that sent its copies, counted once per
  forwarded source packet; audio is labelled ``voice`` and video ``screen``
  (rtcd also labels every video write ``screen``).
- ``rtcd_rtc_rtp_tracks_total`` counts published tracks (``direction=in``)
  and forwarded subscriptions (``direction=out``) by MIME type.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from switchboard._native.core import LATENCY_BUCKETS
from switchboard.engine.mediaplane import GLOBAL_COUNTERS, SESSION_COUNTERS

if TYPE_CHECKING:
    from .rtc import RtcServer
    from .session import PublishedTrack

# Go's client exports no *_created series; neither do we.
disable_created_metrics()  # type: ignore[no-untyped-call]

LOSS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0)
WRITE_BUCKETS = (0.001, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)


def _mime(track: PublishedTrack) -> str:
    return f"{track.kind}/{track.codec}" if track.kind == "video" else f"{track.kind}/{track.codec.lower()}"


def read_udp_snmp(path: str = "/proc/net/snmp") -> dict[str, int]:
    """The kernel's UDP counters (InErrors, RcvbufErrors, SndbufErrors, ...)."""
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.startswith("Udp:")]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}


class Metrics:
    """The service's registry. Implements the RtcMetrics protocol."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ns = "rtcd"
        self.conn_states = Counter("conn_states_total", "Peer connection state changes", ["type"],
                                   namespace=ns, subsystem="rtc", registry=r)
        self.errors = Counter("errors_total", "Errors", ["groupID", "type"], namespace=ns, subsystem="rtc",
                              registry=r)
        self.connection_time_h = Histogram("connection_time", "Seconds from session init to connected",
                                           ["groupID"], namespace=ns, subsystem="rtc", registry=r)
        self.dc_open_time_h = Histogram("dc_open_time", "Seconds from session init to data channel open",
                                        ["groupID"], namespace=ns, subsystem="rtc", registry=r)
        self.lock_grab = Histogram("signaling_lock_grab_time", "Seconds waited for the signaling lock",
                                   ["groupID"], namespace=ns, subsystem="rtc", registry=r)
        self.lock_locked = Histogram("signaling_lock_locked_time", "Seconds the signaling lock was held",
                                     ["groupID"], namespace=ns, subsystem="rtc", registry=r)
        self.loss = Histogram("client_loss_rate", "Loss rate reported by clients", ["groupID"],
                              buckets=LOSS_BUCKETS, namespace=ns, subsystem="rtc", registry=r)
        self.rtt = Histogram("client_rtt", "Round trip time reported by clients (s)", ["groupID"],
                             namespace=ns, subsystem="rtc", registry=r)
        self.jitter = Histogram("client_jitter", "Jitter reported by clients (s)", ["groupID"],
                                namespace=ns, subsystem="rtc", registry=r)
        self.ws_connections = Gauge("connections_total", "Open host WebSocket connections", ["clientID"],
                                    namespace=ns, subsystem="ws", registry=r)
        self.ws_messages = Counter("messages_total", "Host WebSocket messages", ["clientID", "type", "direction"],
                                   namespace=ns, subsystem="ws", registry=r)
        self.ws_errors = Counter("switchboard_ws_errors_total", "Host WebSocket frames rejected", ["reason"],
                                 registry=r)
        ProcessCollector(namespace=ns, registry=r)
        self._native: _NativeCollector | None = None

    def attach(self, server: RtcServer) -> None:
        """Export the server's sessions and tracks and the router's counters."""
        self._native = _NativeCollector(server)
        self.registry.register(self._native)

    # RtcMetrics protocol
    def error(self, group_id: str, kind: str) -> None:
        self.errors.labels(group_id, kind).inc()

    def conn_state(self, state: str) -> None:
        self.conn_states.labels(state).inc()

    def connection_time(self, group_id: str, seconds: float) -> None:
        self.connection_time_h.labels(group_id).observe(seconds)

    def dc_open_time(self, group_id: str, seconds: float) -> None:
        self.dc_open_time_h.labels(group_id).observe(seconds)

    def lock_grab_time(self, group_id: str, seconds: float) -> None:
        self.lock_grab.labels(group_id).observe(seconds)

    def lock_locked_time(self, group_id: str, seconds: float) -> None:
        self.lock_locked.labels(group_id).observe(seconds)

    def client_loss_rate(self, group_id: str, value: float) -> None:
        self.loss.labels(group_id).observe(value)

    def client_rtt(self, group_id: str, value: float) -> None:
        self.rtt.labels(group_id).observe(value)

    def client_jitter(self, group_id: str, value: float) -> None:
        self.jitter.labels(group_id).observe(value)


class _NativeCollector(Collector):
    """Reads the router's numpy counters at scrape time."""

    def __init__(self, server: RtcServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        plane = server.plane
        sessions = GaugeMetricFamily("rtcd_rtc_sessions_total", "Active sessions", labels=["groupID"])
        tracks = GaugeMetricFamily("rtcd_rtc_rtp_tracks_total", "Active RTP tracks",
                                   labels=["groupID", "direction", "type"])
        per_group: dict[str, int] = {}
        per_track: dict[tuple[str, str, str], int] = {}
        for session in server.sessions.values():
            group = session.cfg.group_id
            per_group[group] = per_group.get(group, 0) + 1
            for t in session.published.values():
                key = (group, "in", _mime(t))
                per_track[key] = per_track.get(key, 0) + 1
            for sub in session.subscriptions.values():
                if sub.consumer is not None:
                    key = (group, "out", _mime(sub.track))
                    per_track[key] = per_track.get(key, 0) + 1
        for group, n in per_group.items():
            sessions.add_metric([group], n)
        for track_labels, n in per_track.items():
            tracks.add_metric(list(track_labels), n)
        yield sessions
        yield tracks
        # writes time: one histogram per track kind
        writes = HistogramMetricFamily(
            "rtcd_rtc_rtp_tracks_writes_time", "Seconds from reading a media packet to sending its copies",
            labels=["groupID", "type"])
        ours = HistogramMetricFamily(
            "switchboard_forwarding_latency_seconds",
            "Seconds from recvmmsg to sendmmsg per forwarded source packet", labels=["kind"])
        counts, sums = plane.latency()
        for k, (label, kind) in enumerate((("voice", "audio"), ("screen", "video"))):
            cum = np.cumsum(counts[k]).tolist()
            rtcd_buckets = []
            for bound in WRITE_BUCKETS:
                # our buckets are finer; carry counts up to the first of ours above the bound
                idx = sum(1 for b in LATENCY_BUCKETS if b <= bound) - 1
                rtcd_buckets.append((repr(bound), cum[idx] if idx >= 0 else 0))
            rtcd_buckets.append(("+Inf", cum[-1]))
            writes.add_metric(["", label], rtcd_buckets, float(sums[k]))
            buckets = [(repr(b), cum[i]) for i, b in enumerate(LATENCY_BUCKETS)] + [("+Inf", cum[-1])]
            ours.add_metric([kind], buckets, float(sums[k]))
        yield writes
        yield ours
        g = plane.global_counters
        s = plane.session_counters.sum(axis=0)
        drops = CounterMetricFamily("switchboard_drops", "Datagrams dropped by the media plane, by reason",
                                    labels=["reason"])
        for name, value in zip(GLOBAL_COUNTERS, g.tolist()):
            if name.startswith("drop_"):
                drops.add_metric([name[5:]], value)
        for name, value in zip(SESSION_COUNTERS, s.tolist()):
            if name.startswith("drop_"):
                drops.add_metric([f"session_{name[5:]}"], value)
        yield drops
        pk = CounterMetricFamily("switchboard_datagrams", "Datagrams through the media port", labels=["direction"])
        pk.add_metric(["in"], int(g[GLOBAL_COUNTERS.index("rx_datagrams")]))
        pk.add_metric(["out"], int(g[GLOBAL_COUNTERS.index("tx_datagrams")]))
        yield pk
        by = CounterMetricFamily("switchboard_bytes", "Bytes through the media port", labels=["direction"])
        by.add_metric(["in"], int(g[GLOBAL_COUNTERS.index("rx_bytes")]))
        by.add_metric(["out"], int(s[SESSION_COUNTERS.index("tx_bytes")]))
        yield by
        udp = CounterMetricFamily("switchboard_kernel_udp_errors",
                                  "Kernel UDP error counters (/proc/net/snmp), whole host", labels=["type"])
        snmp = read_udp_snmp()
        for counter in ("InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts"):
            if counter in snmp:
                udp.add_metric([counter], snmp[counter])
        yield udp
        calls = GaugeMetricFamily("switchboard_calls", "Active calls")
        calls.add_metric([], len(server.calls()))
        yield calls


def cpu_count() -> int:
    return os.cpu_count() or 1
