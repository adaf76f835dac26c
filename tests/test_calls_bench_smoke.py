"""The calls benchmark (bench/calls.py) and its native load plane, at a tiny scale.

- The smoke run starts ``switchboard serve`` and 6 simulated WebRTC participants (2 calls x 3
  users, 2 unmuted, one screen share) for a 3-second window: the last output line is JSON with
  the keys the issue names, media flowed both ways, and loss is computed from stamps.
- The load plane alone, two users wired to each other over loopback (no SFU): stamps, the
  measurement window, the delay histogram, SR/RR exchange, and generic NACK answered with a
  retransmission when a relay drops one video packet.
- The transport-cc feedback builder, parsed back by the router's RTCP parser.
- The PNG writer and the Prometheus text parser the harness uses.

A soak test (10 minutes at 100x8x2, RSS must stay flat) is marked ``soak`` and excluded by
default: ``python -m pytest -m soak tests/test_calls_bench_smoke.py``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from loadplane import USER_COUNTERS, build_twcc_feedback, new_load_plane  # noqa: E402
from pngchart import Panel, bar_chart, encode_png  # noqa: E402
from simclient import open_shared_socket, shared_user_ip  # noqa: E402
from switchboard._native.core import LoadPlaneError, SrtpContext, parse_rtcp  # noqa: E402
from sysmon import delta, histogram_quantile, metric, parse_metrics  # noqa: E402

REQUIRED = ("us_per_pkt", "cpu_pct", "rss_mb", "in_mbps", "out_mbps", "out_pps", "loss", "delay_p99_ms",
            "join_p95_ms")
GCM = "AEAD_AES_128_GCM"


def _run_bench(*args: str, timeout: float = 150) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = subprocess.run([sys.executable, str(BENCH / "calls.py"), *args, "--json", "-q"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


def test_smoke_run_reports_the_keys_with_media_flowing_and_loss_computed() -> None:
    proc, r = _run_bench("--calls", "2", "--users", "3", "--unmuted", "2", "--screen", "1", "--duration", "3",
                         "--join-window", "1", "--warmup", "0.5", "--settle-timeout", "20", "--rt-priority", "0")
    for key in REQUIRED:
        assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (key, r[key])
    # the table with the seeds' columns was printed before the JSON line
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| Calls"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:7] == ["Calls", "Users/call", "Unmuted/call", "Screen sharing", "CPU (avg)", "Memory (avg)",
                           "Bandwidth (in/out)"]
    assert {"us/pkt", "out pps", "loss", "delay p50/p99"} <= set(columns)
    assert r["ready"] == 6 and r["failed"] == 0
    # voice: 2 calls x 2 senders x 2 receivers x 50 pps; screen: 1 x 2 receivers x 100 pps
    assert 0.7 * 600 < r["out_pps"] < 1.5 * 600 + 200, r["out_pps"]
    assert r["expected_packets"] > 0.8 * (400 + 200) * r["window_s"]
    assert 0.0 <= r["loss"] <= 0.01
    assert r["received_packets"] == round(r["expected_packets"] * (1 - r["loss"]))
    assert r["pairs"] == 2 * (2 * 2) + 2           # voice pairs + the screen's two receivers
    assert 0 < r["delay_p50_ms"] <= r["delay_p99_ms"] < 1000
    assert r["us_per_pkt"] > 0 and r["cores"] > 0 and r["rss_mb"] > 10
    # the clients' own count of what they received agrees with the SFU's counters
    assert 0.9 < r["crosscheck_out"] < 1.2
    assert r["client"]["pongs"] > 0 and r["client"]["consent_ok"] > 0
    assert "tuning" in r and r["udp_errors"].keys() == {"RcvbufErrors", "SndbufErrors", "InErrors"}


# ------------------------------------------------------------------ the load plane alone

def _udp_pair() -> tuple[socket.socket, socket.socket]:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
    return a, b


def test_load_plane_pair_counts_stamps_in_window_and_exchanges_rtcp() -> None:
    a, b = _udp_pair()
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    ka, kb = os.urandom(28), os.urandom(28)
    plane = new_load_plane(2, 2, rtcp_interval=0.2)
    ua = plane.add_user(a.fileno(), 111)
    ub = plane.add_user(b.fileno(), 222)
    plane.set_user_keys(ua, SrtpContext(GCM, kb, False), SrtpContext(GCM, ka, True))
    plane.set_user_keys(ub, SrtpContext(GCM, ka, False), SrtpContext(GCM, kb, True))
    audio = plane.add_sender(ua, 0x1234, 0, 111, 48000, 0.02, 1, 160, audio_level_id=1, mid_id=4, mid=b"1")
    video = plane.add_sender(ub, 0x5678, 1, 96, 90000, 0.04, 4, 1150, mid_id=4, mid=b"2", nack_ring=True)
    plane.set_sender_active(audio, True)
    plane.set_sender_active(video, True)
    plane.start()
    try:
        time.sleep(0.3)
        plane.window_begin()
        time.sleep(1.0)
        plane.window_end()
        time.sleep(0.1)
        a.send(b"\x00\x01\x00\x00" + bytes(16))     # a STUN-looking datagram goes to Python
        time.sleep(0.05)
        events = plane.poll_events()
    finally:
        plane.stop()
    assert events == [(ub, 1, b"\x00\x01\x00\x00" + bytes(16))]
    senders = {s["sender"]: s for s in plane.senders()}
    streams = {s["user"]: s for s in plane.streams()}
    assert 45 <= senders[audio]["window"] <= 55       # 50 pps for 1 s
    assert 90 <= senders[video]["window"] <= 110      # 25 frames x 4 packets
    assert streams[ub]["sender"] == audio and streams[ub]["window"] == senders[audio]["window"]
    assert streams[ua]["sender"] == video and streams[ua]["window"] == senders[video]["window"]
    assert streams[ua]["kind"] == "video" and streams[ub]["kind"] == "audio"
    hist, n, total, worst = plane.delay_histogram()
    assert n == senders[audio]["window"] + senders[video]["window"] == int(hist.sum())
    assert 0 < total / n < 0.05 and worst < 0.1
    counters = dict(zip(USER_COUNTERS, plane.user_counters[ua].tolist()))
    assert counters["sr_rx"] > 0 and counters["srtp_fail"] == 0 and counters["replay"] == 0
    # each side's SR carried a report block about the other's stream
    assert senders[audio]["rr_count"] > 0 and senders[video]["rr_count"] > 0
    assert senders[audio]["rr_cum_lost"] == 0
    a.close()
    b.close()


def test_load_plane_shared_socket_users_talk_through_their_own_addresses() -> None:
    """Two users on one wildcard socket, 127.2.0.1 and 127.2.0.2, each the
    other's peer: every datagram leaves from its user's address (IP_PKTINFO)
    and is handed to the user it was sent to; nothing lands elsewhere."""
    shared = open_shared_socket(1 << 20)
    port = shared.getsockname()[1]
    ka, kb = os.urandom(28), os.urandom(28)
    plane = new_load_plane(4, 2, rtcp_interval=0.2)
    k = plane.add_shared_socket(shared.fileno())
    assert k == 0
    ua = plane.add_user(shared.fileno(), 111, shared_user_ip(0))
    ub = plane.add_user(shared.fileno(), 222, shared_user_ip(1))
    assert (shared_user_ip(0), shared_user_ip(1)) == ("127.2.0.1", "127.2.0.2")
    plane.set_user_peer(ua, shared_user_ip(1), port)
    plane.set_user_peer(ub, shared_user_ip(0), port)
    plane.set_user_keys(ua, SrtpContext(GCM, kb, False), SrtpContext(GCM, ka, True))
    plane.set_user_keys(ub, SrtpContext(GCM, ka, False), SrtpContext(GCM, kb, True))
    audio = plane.add_sender(ua, 0x1234, 0, 111, 48000, 0.02, 1, 160)
    plane.set_sender_active(audio, True)
    outsider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plane.start()
    try:
        time.sleep(0.3)
        plane.window_begin()
        time.sleep(1.0)
        plane.window_end()
        time.sleep(0.1)
        outsider.sendto(b"\x00\x01\x00\x00" + bytes(16), (shared_user_ip(1), port))   # STUN-looking, to B
        outsider.sendto(b"\x00\x01\x00\x00" + bytes(16), ("127.2.0.99", port))        # to nobody
        time.sleep(0.05)
        events = plane.poll_events()
        stats = plane.stats()
    finally:
        plane.stop()
    assert events == [(ub, 1, b"\x00\x01\x00\x00" + bytes(16))]
    assert stats["rx_unknown"] == 1
    senders = {s["sender"]: s for s in plane.senders()}
    streams = {s["user"]: s for s in plane.streams()}
    assert 45 <= senders[audio]["window"] <= 55
    assert streams[ub]["sender"] == audio and streams[ub]["window"] == senders[audio]["window"]
    counters_b = dict(zip(USER_COUNTERS, plane.user_counters[ub].tolist()))
    counters_a = dict(zip(USER_COUNTERS, plane.user_counters[ua].tolist()))
    assert counters_b["srtp_fail"] == 0 and counters_b["sr_rx"] > 0
    assert counters_a["sr_rx"] == 0 and counters_a["rr_rx"] > 0
    with pytest.raises(LoadPlaneError, match="not a shared socket"):
        plane.add_user(outsider.fileno(), 333, "127.2.0.3")
    with pytest.raises(LoadPlaneError, match="already has a user"):
        plane.add_user(shared.fileno(), 444, shared_user_ip(0))
    outsider.close()
    shared.close()


def test_load_plane_nacks_a_dropped_video_packet_and_the_sender_retransmits_it() -> None:
    # user A sends video to user B through a relay that drops the 30th packet
    a, relay_a = _udp_pair()
    b, relay_b = _udp_pair()
    a.connect(relay_a.getsockname())
    b.connect(relay_b.getsockname())
    relay_a.connect(a.getsockname())
    relay_b.connect(b.getsockname())
    relay_a.setblocking(True)
    relay_b.setblocking(True)
    relay_a.settimeout(0.2)
    relay_b.settimeout(0.2)
    stop = threading.Event()
    dropped: list[int] = []

    def forward(src: socket.socket, dst: socket.socket, drop_rtp_number: int | None) -> None:
        seen = 0
        while not stop.is_set():
            try:
                data = src.recv(2048)
            except (TimeoutError, OSError):
                continue
            if not (192 <= data[1] <= 223):            # RTP, not RTCP
                seen += 1
                if seen == drop_rtp_number:
                    dropped.append(struct.unpack("!H", data[2:4])[0])
                    continue
            dst.send(data)

    threads = [threading.Thread(target=forward, args=(relay_a, relay_b, 30), daemon=True),
               threading.Thread(target=forward, args=(relay_b, relay_a, None), daemon=True)]
    for t in threads:
        t.start()
    ka, kb = os.urandom(28), os.urandom(28)
    plane = new_load_plane(2, 1, rtcp_interval=0.5)
    ua = plane.add_user(a.fileno(), 111)
    ub = plane.add_user(b.fileno(), 222)
    plane.set_user_keys(ua, SrtpContext(GCM, kb, False), SrtpContext(GCM, ka, True, 512))
    plane.set_user_keys(ub, SrtpContext(GCM, ka, False), SrtpContext(GCM, kb, True, 512))
    video = plane.add_sender(ua, 0x5678, 1, 96, 90000, 0.04, 4, 1150, nack_ring=True)
    plane.set_sender_active(video, True)
    plane.start()
    try:
        plane.window_begin()
        time.sleep(1.0)
        plane.window_end()
        time.sleep(0.2)
    finally:
        plane.stop()
        stop.set()
        for t in threads:
            t.join(1)
    assert len(dropped) == 1
    sender = plane.senders()[video]
    stream = next(s for s in plane.streams() if s["user"] == ub)
    assert stream["gaps"] == 1 and stream["nacks"] == 1
    assert sender["nack_rx"] == 1 and sender["rtx"] == 1
    assert stream["window"] == sender["window"]       # the retransmission filled the hole
    for s in (a, b, relay_a, relay_b):
        s.close()


def test_transport_cc_feedback_parses_back_with_statuses_and_deltas() -> None:
    seqs = [10, 11, 13, 12, 20]
    t0 = 1_000_000_000
    arrivals = [t0, t0 + 250_000, t0 + 2_000_000, t0 + 1_000_000, t0 + 100_000_000]
    fb = build_twcc_feedback(0xAAAA, 0xBBBB, seqs, arrivals, fb_count=7)
    (item,) = parse_rtcp(fb)
    assert item["type"] == "twcc" and item["sender_ssrc"] == 0xAAAA and item["media_ssrc"] == 0xBBBB
    assert item["base_seq"] == 10 and item["status_count"] == 11 and item["fb_count"] == 7
    assert item["statuses"] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2]
    # cumulative receive deltas reproduce the arrivals, in sequence order, to the 250 us unit
    times, t = [], item["reference_time"] * 64_000_000
    for d in item["deltas"]:
        t += d * 250_000
        times.append(t)
    wrap = (1 << 24) * 64_000_000                       # the 24-bit reference time wraps
    want = [t0, t0 + 250_000, t0 + 1_000_000, t0 + 2_000_000, t0 + 100_000_000]
    assert abs(times[0] - want[0] % wrap) < 250_000
    for got, w in zip(times, want):
        assert abs((got - times[0]) - (w - want[0])) < 250_000


def test_transport_cc_feedback_handles_sequence_wrap_and_rejects_bad_input() -> None:
    fb = build_twcc_feedback(1, 2, [65534, 65535, 0, 1], [5_000_000, 5_250_000, 5_500_000, 5_750_000])
    (item,) = parse_rtcp(fb)
    assert item["base_seq"] == 65534 and item["status_count"] == 4 and item["statuses"] == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        build_twcc_feedback(1, 2, [1, 2], [3])
    with pytest.raises(ValueError):
        build_twcc_feedback(1, 2, [], [])


# ------------------------------------------------------------------ harness helpers

def test_png_chart_is_a_valid_png_of_the_requested_size() -> None:
    png = bar_chart([Panel("CPU", ("100X8X2", "10X50X2"), ("OURS", "RTCD"), ((0.5, 2.4), (0.3, None)), "CORES")],
                    "TEST", width=400, panel_height=200)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack("!II", png[16:24])
    assert (width, height) == (400, 70 + 200)
    idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + 3 * width)
    with pytest.raises(ValueError):
        encode_png(b"not an array")  # type: ignore[arg-type]


def test_prometheus_text_parser_sums_labels_and_reads_histograms() -> None:
    a = parse_metrics('# HELP x\nswitchboard_datagrams_total{direction="out"} 10\n'
                      'switchboard_datagrams_total{direction="in"} 4\nrtcd_rtc_dc_open_time_bucket{groupID="g",le="0.1"} 3\n'
                      'rtcd_rtc_dc_open_time_bucket{groupID="g",le="1.0"} 9\nrtcd_rtc_dc_open_time_bucket{groupID="g",le="+Inf"} 10\n'
                      'garbage line\n')
    b = parse_metrics('switchboard_datagrams_total{direction="out"} 25\n')
    assert metric(a, "switchboard_datagrams_total") == 14
    assert delta(a, b, "switchboard_datagrams_total", direction="out") == 15
    assert histogram_quantile(a, "rtcd_rtc_dc_open_time", 0.5) == 1.0
    assert histogram_quantile(a, "rtcd_rtc_dc_open_time", 0.25) == 0.1
    assert histogram_quantile(a, "missing", 0.5) is None


@pytest.mark.soak
def test_soak_100x8x2_for_ten_minutes_keeps_rss_flat_and_loses_nothing() -> None:
    _, r = _run_bench("--calls", "100", "--users", "8", "--unmuted", "2", "--duration", "600", timeout=1200)
    assert r["loss"] == 0
    assert r["rss_slope_mb_per_min"] is not None and abs(r["rss_slope_mb_per_min"]) < 0.5
