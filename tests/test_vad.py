"""rtcd's voice activity rule over the router's audio-level rings."""

from __future__ import annotations

import numpy as np

from switchboard.engine.vad import MIN_ON_SECONDS, WINDOW, VoiceActivity


def feed(levels: np.ndarray, counts: np.ndarray, tid: int, values: list[int]) -> None:
    ring = levels.shape[1]
    for v in values:
        levels[tid, counts[tid] % ring] = v
        counts[tid] += 1


def test_speech_turns_on_and_silence_turns_off_after_two_seconds() -> None:
    levels = np.zeros((4, 64), dtype=np.uint8)
    counts = np.zeros(4, dtype=np.uint64)
    vad = VoiceActivity()
    vad.add(2)
    rng = np.random.default_rng(1)
    feed(levels, counts, 2, [127] * WINDOW)                       # silence: steady -127 dBov
    assert vad.evaluate(levels, counts, 0.0) == []
    feed(levels, counts, 2, rng.integers(20, 90, WINDOW).tolist())  # speech: levels jump around
    assert vad.evaluate(levels, counts, 1.0) == [(2, True)]
    feed(levels, counts, 2, [127] * WINDOW)
    assert vad.evaluate(levels, counts, 1.0 + MIN_ON_SECONDS / 2) == [], "not before 2 s"
    feed(levels, counts, 2, [127] * 5)
    assert vad.evaluate(levels, counts, 1.0 + MIN_ON_SECONDS + 0.1) == [(2, False)]


def test_a_track_that_stops_sending_goes_quiet() -> None:
    levels = np.zeros((4, 64), dtype=np.uint8)
    counts = np.zeros(4, dtype=np.uint64)
    vad = VoiceActivity()
    vad.add(1)
    feed(levels, counts, 1, np.random.default_rng(2).integers(10, 100, WINDOW).tolist())
    assert vad.evaluate(levels, counts, 0.0) == [(1, True)]
    assert vad.evaluate(levels, counts, 1.5) == []          # no new packets, but under a second stale
    assert vad.evaluate(levels, counts, 3.0) == [(1, False)]
    assert vad.reset(1) is False


def test_reset_on_mute_reports_it_was_speaking() -> None:
    levels = np.zeros((2, 64), dtype=np.uint8)
    counts = np.zeros(2, dtype=np.uint64)
    vad = VoiceActivity()
    vad.add(0)
    feed(levels, counts, 0, np.random.default_rng(3).integers(10, 100, WINDOW).tolist())
    assert vad.evaluate(levels, counts, 0.0) == [(0, True)]
    assert vad.reset(0) is True
