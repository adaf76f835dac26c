"""Garbage collection tuning and the ``[switchboard]`` knobs of issue 6: signaling/service.py
(`tune_gc`, `ServiceOptions.from_config`) and signaling/config.py (``coalesce_us``,
``gc_tuning``). That ended sessions need no collector, which makes rare full collections safe,
is tested in tests/test_session_cycles.py.
"""

from __future__ import annotations

import subprocess
import sys

from switchboard.engine.mediaplane import MediaPlane
from switchboard.signaling import service as service_mod
from switchboard.signaling.config import parse_config
from switchboard.signaling.service import ServiceOptions


def test_config_knobs_reach_the_service_options() -> None:
    options = ServiceOptions.from_config(parse_config({"switchboard": {"coalesce_us": 250}}))
    assert options.rtc.media.coalesce_us == 250
    assert MediaPlane(options.rtc.media).router.coalesce_ns == 250_000
    assert options.gc_tuning is True
    off = ServiceOptions.from_config(parse_config({"switchboard": {"gc_tuning": False}}))
    assert off.gc_tuning is False and off.rtc.media.coalesce_us == 0
    assert ServiceOptions().gc_tuning is False  # embedded and test use: not our process


def test_tune_gc_freezes_and_raises_the_thresholds() -> None:
    code = (
        "import gc; from switchboard.signaling.service import tune_gc, GC_THRESHOLDS\n"
        "before = gc.get_freeze_count(); tune_gc()\n"
        "assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()\n"
        "assert gc.get_freeze_count() > before + 10000, gc.get_freeze_count()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
    assert service_mod.GC_THRESHOLDS[2] > 10 and service_mod.GC_THRESHOLDS[0] >= 700
