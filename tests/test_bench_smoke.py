"""The media-plane benchmark (bench/forwarding.py) end to end at a tiny scale:
it compiles its C parts, runs every forwarder at both operating points, and
its JSON line carries the keys the issue names, with packets really
forwarded, decryptable where the forwarder re-encrypts, and no loss."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "forwarding.py"

REQUIRED = (
    "us_per_pkt", "floor_us_per_pkt", "python_us_per_pkt", "loss",
    "sat_us_per_pkt", "sat_floor_us_per_pkt", "sat_python_us_per_pkt", "sat_out_pps",
)


def test_benchmark_smoke_run_reports_every_key_with_packets_forwarded() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke", "--json"], capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    for key in REQUIRED:
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    for key in ("us_per_pkt", "floor_us_per_pkt", "python_us_per_pkt", "sat_us_per_pkt",
                "sat_floor_us_per_pkt", "sat_python_us_per_pkt"):
        assert 0.5 < result[key] < 1000, (key, result[key])
    assert result["loss"] == 0.0
    assert result["sat_out_pps"] > 1000
    seeds = result["trials"]["seeds"]
    assert set(seeds) == {"native", "native+c", "python", "floor"}
    for key, trial in seeds.items():
        # 3 calls x 2 senders x 7 receivers x 50 pps
        assert 0.9 * 2100 < trial["out_pps"] < 1.1 * 2100, (key, trial["out_pps"])
        assert trial["unique"] == trial["expected"] > 0, key
        assert trial["dups"] == trial["misrouted"] == trial["unknown"] == 0, key
        if key != "floor":   # the floor forwards without re-encrypting
            assert trial["decrypt_n"] > 0 and trial["decrypt_ok"] == trial["decrypt_n"], key
    assert "Seeds' rate" in proc.stdout and "Saturation" in proc.stdout
