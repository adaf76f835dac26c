"""Real-browser interop: Mattermost's unmodified RTCPeer (npm @mattermost/calls-common 0.27.2)
in headless Debian Chromium against RtcServer.

Each test runs one scenario of ``tests/browser`` in a fresh network namespace with only
loopback (``unshare --net``), in a subprocess that prints one JSON result line; the test
asserts on what the pages' ``getStats()`` and the server's counters reported, never on how
long things took. Screenshots, the JSON results and the server logs go to
``test-artifacts/browser/``. Needs ``scripts/bootstrap test`` (Debian chromium, ``npm ci`` in
tests/js, Playwright for Python); the RTCPeer bundle is built here, at test time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import RESULT_PREFIX, png
from browser.bundle import build_bundle
from browser.chromium import EXECUTABLE
from hypothesis import given, settings
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parent
ARTIFACTS = TESTS.parent / "test-artifacts" / "browser"


# ------------------------------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not EXECUTABLE.exists():
        pytest.fail(f"{EXECUTABLE} is missing; run `scripts/bootstrap test` (installs Debian chromium)")
    yield build_bundle(tmp_path_factory.mktemp("rtcpeer"))


def _netns_prefix() -> list[str]:
    if os.geteuid() == 0:
        return ["unshare", "--net", "--"]
    return ["unshare", "--user", "--map-root-user", "--net", "--"]


def _describe(result: dict[str, Any]) -> str:
    """A readable failure report: the error, each page's states and errors, the last SDPs."""
    lines = [f"scenario {result.get('scenario')}: {result.get('error')}"]
    diagnostics = result.get("diagnostics") or {}
    for name, d in diagnostics.items():
        if not isinstance(d, dict) or "traffic" not in d:
            if d:
                lines.append(f"{name}: {d}")
            continue
        s = d.get("summary", {})
        lines.append(
            f"--- {name}: connected={s.get('connected')} ice={[x for _, x in s.get('iceStates', [])]} "
            f"signaling={s.get('signalingState')} offers sent/received={s.get('offersSent')}/"
            f"{s.get('offersReceived')} transceivers={s.get('transceivers')}"
        )
        for e in s.get("signalErrors", []):
            lines.append(f"    setRemoteDescription({e['type']}) failed: {e['message']}")
            if e.get("sdp"):
                lines.append("    the SDP:\n      " + "\n      ".join(e["sdp"].splitlines()))
        for e in s.get("peerErrors", []):
            lines.append(f"    RTCPeer error: {e}")
        lines.append(f"    server: {d.get('server')}")
        lines.append(f"    relay: { {k: v for k, v in d['traffic'].items() if k != 'last_sdps'} }")
        for sdp in d["traffic"].get("last_sdps", [])[-2:]:
            media = [x for x in sdp["sdp"].splitlines() if x.startswith(("m=", "a=mid", "a=send", "a=recv",
                                                                        "a=inactive", "a=msid:"))]
            lines.append(f"    last {sdp['dir']} {sdp['type']}: {' | '.join(media)}")
    return "\n".join(lines)


def run_scenario(name: str, bundle: Path, timeout: float = 150.0) -> dict[str, Any]:
    """Run ``python -m browser.run <name>`` in a new network namespace; return its report."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
    cmd = [*_netns_prefix(), sys.executable, "-m", "browser.run", name,
           "--bundle", str(bundle), "--artifacts", str(ARTIFACTS), "--timeout", "100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=TESTS, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        (ARTIFACTS / f"{name}.log").write_text(err)
        pytest.fail(f"scenario {name} hung for {timeout:.0f} s; log in {ARTIFACTS / (name + '.log')}")
    (ARTIFACTS / f"{name}.log").write_text(err)
    lines = [x for x in out.splitlines() if x.startswith(RESULT_PREFIX)]
    if not lines:
        pytest.fail(f"scenario {name} printed no result (exit {proc.returncode}):\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX):])
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    if not result["ok"]:
        pytest.fail(_describe(result) + f"\n(full result: {ARTIFACTS / (name + '.json')})", pytrace=False)
    report: dict[str, Any] = result["report"]
    return report


def _healthy(ice_states: list[str]) -> bool:
    return ice_states[-1] in ("connected", "completed") and "failed" not in ice_states \
        and "disconnected" not in ice_states


# ------------------------------------------------------------------------------------- browser tests

interop = pytest.mark.interop


@interop
def test_three_rtcpeer_participants_hear_each_other(bundle: Path) -> None:
    report = run_scenario("call", bundle)
    people = report["participants"]
    assert sorted(people) == ["alice", "bob", "carol"]
    for name, p in people.items():
        others = sorted(set(people) - {name})
        assert sorted(p["heard"]) == others, name
        for sender, audio in p["heard"].items():
            assert audio["packetsReceived"] > 0 and audio["totalAudioEnergy"] > 0, (name, sender, audio)
            assert audio["codec"] == "audio/opus"
        assert p["rtt_s"] > 0, "calls-dc text ping was answered with pong"
        assert _healthy(p["ice_states"]), p["ice_states"]
        assert p["selected_pair"]["local"].startswith("udp 127.0.0.1:")
        assert p["first_offer_to_first_forwarded_s"] > 0
    # bob and carol unmuted after receiving others' audio: their microphones went out on
    # transceivers the server had created to send alice's voice (Chrome's addTrack reuse)
    assert people["alice"]["voice_mid_also_carries"] == []
    assert people["bob"]["voice_mid_also_carries"] == ["alice"]
    assert people["carol"]["voice_mid_also_carries"] == ["alice"]
    # carol published her microphone muted first: received and dropped, never forwarded
    assert report["carol_muted_track"]["forwarded"] == 0
    assert report["carol_muted_track"]["muted_drops"] > 0
    print(json.dumps({n: {k: p[k] for k in ("first_offer_to_first_forwarded_s", "unmute_to_first_forwarded_s")}
                      for n, p in people.items()}))


@interop
def test_answer_then_offer_race_and_glare(bundle: Path) -> None:
    report = run_scenario("glare", bundle)
    # the answer and the unmute offer were handed to the server back to back
    assert [k for k in report["bob_released"] if k in ("answer", "offer")] == ["answer", "offer"]
    for name in ("alice", "bob", "carol"):
        assert report[name]["voice_mid"] is not None, f"{name}'s voice is published"


@interop
def test_screen_share_renders_at_the_other_participant(bundle: Path) -> None:
    report = run_scenario("screen", bundle)
    assert report["shared"]["label"].startswith("screen:")
    assert report["server_track"]["codec"] == "VP8"
    assert report["server_track"]["layers"] == [""]
    inbound = report["alice_inbound"]
    assert inbound["framesDecoded"] > 0 and inbound["codec"] == "video/VP8"
    assert report["alice_element"]["videoWidth"] > 0 and report["alice_element"]["variance"] > 1
    assert report["screenshot"]["variance"] > 10, report["screenshot"]
    assert any(o["framesEncoded"] > 0 for o in report["bob_outbound"])


@interop
def test_simulcast_screen_share_renders(bundle: Path) -> None:
    report = run_scenario("screen_simulcast", bundle)
    assert report["server_track"]["layers"] == ["h", "l"]
    assert report["alice_inbound"]["framesDecoded"] > 0
    assert report["screenshot"]["variance"] > 10, report["screenshot"]
    assert {o["rid"] for o in report["bob_outbound"]} == {"l", "h"}


@interop
def test_twenty_server_renegotiations_keep_ice_connected(bundle: Path) -> None:
    report = run_scenario("renegotiate", bundle)
    assert report["server_offers_to_alice"] >= 20
    assert report["answers_from_alice"] >= 20
    assert _healthy(report["alice_ice_states"]), report["alice_ice_states"]
    assert "disconnected" not in report["alice_conn_states"] and "failed" not in report["alice_conn_states"]
    assert report["selected_pair_changes"] == 1
    assert [r["toggle"] for r in report["rendered"]] == [1, 10]
    assert all(r["framesDecoded"] > 0 and r["size"][0] > 0 for r in report["rendered"])
    assert report["bob_audio_at_alice"]["totalAudioEnergy"] > 0


# ------------------------------------------------------------------------------------- png helper


def _encode_png(img: np.ndarray, filters: list[int]) -> bytes:
    """A test PNG encoder applying the given filter type per row (the decoder's oracle)."""
    h, w, c = img.shape
    raw = bytearray()
    prev = np.zeros(w * c, dtype=np.int64)
    for y in range(h):
        row = img[y].reshape(-1).astype(np.int64)
        left = np.concatenate([np.zeros(c, dtype=np.int64), row[:-c]])
        upleft = np.concatenate([np.zeros(c, dtype=np.int64), prev[:-c]])
        f = filters[y % len(filters)]
        if f == 0:
            out = row
        elif f == 1:
            out = row - left
        elif f == 2:
            out = row - prev
        elif f == 3:
            out = row - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            out = row - pred
        raw.append(f)
        raw += (out % 256).astype(np.uint8).tobytes()
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2 if c == 3 else 6, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw))) \
        + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decode_round_trips_every_filter(channels: int) -> None:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(9, 13, channels), dtype=np.uint8)
    assert np.array_equal(png.decode(_encode_png(img, [0, 1, 2, 3, 4])), img)
    flat = np.full((4, 5, channels), 40, dtype=np.uint8)
    stats = png.luma_stats(_encode_png(flat, [1, 4]))
    assert stats["variance"] == pytest.approx(0.0) and stats["distinct"] == 1


def test_png_decode_rejects_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="not a PNG file"):
        png.decode(b"GIF89a")
    good = _encode_png(np.zeros((2, 2, 3), dtype=np.uint8), [0])
    with pytest.raises(ValueError, match="truncated PNG chunk"):
        png.decode(good[:45])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_png_decode_garbage_raises_value_error(data: bytes) -> None:
    for blob in (data, b"\x89PNG\r\n\x1a\n" + data):
        try:
            png.decode(blob)
        except ValueError:
            pass
