"""Voice activity from the RTP audio-level extension (RFC 6464), rtcd's way.

rtcd keeps the last 50 audio levels (-dBov, 0 loudest .. 127 silence) of a
voice track and looks at their standard deviation: speech makes the level
jump around, steady noise or silence does not. Voice turns on when the
deviation exceeds 10 and off when it falls below 4, but never sooner than 2 s
after it turned on (reference rtcd.md 1.11).

The native router writes each packet's level into a per-track ring; this
module evaluates every voice track at once with numpy a few times a second,
so there is no Python per packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WINDOW = 50
ON_THRESHOLD = 10.0
OFF_THRESHOLD = 4.0
MIN_ON_SECONDS = 2.0


@dataclass
class _TrackVad:
    voice: bool = False
    since: float = 0.0
    last_count: int = 0
    progressed: float = 0.0


@dataclass
class VoiceActivity:
    """Per-track VAD state over the router's level rings."""

    tracks: dict[int, _TrackVad] = field(default_factory=dict)

    def add(self, tid: int) -> None:
        self.tracks[tid] = _TrackVad()

    def remove(self, tid: int) -> None:
        self.tracks.pop(tid, None)

    def reset(self, tid: int) -> bool:
        """Forget a track's state (mute); True if it was speaking."""
        st = self.tracks.get(tid)
        if st is None:
            return False
        was = st.voice
        st.voice = False
        return was

    def evaluate(self, levels: np.ndarray, counts: np.ndarray, now: float,
                 muted: set[int] | None = None) -> list[tuple[int, bool]]:
        """Changes since the last call: [(track id, voice now on?)]."""
        if not self.tracks:
            return []
        tids = np.fromiter(self.tracks, dtype=np.int64)
        ring = levels.shape[1]
        cnt = counts[tids].astype(np.int64)
        have = cnt >= WINDOW
        # the last WINDOW samples of each ring, oldest first
        idx = (cnt[:, None] - WINDOW + np.arange(WINDOW)[None, :]) % ring
        window = levels[tids[:, None], idx].astype(np.float64)
        std = window.std(axis=1)
        changes = []
        for tid, ok, sd, n in zip(tids.tolist(), have.tolist(), std.tolist(), cnt.tolist()):
            st = self.tracks[tid]
            if muted and tid in muted:
                continue
            if n != st.last_count:
                st.last_count, st.progressed = n, now
            elif now - st.progressed > 1.0:
                ok = False  # the track stopped sending: its window is stale
            if not st.voice and ok and sd > ON_THRESHOLD:
                st.voice, st.since = True, now
                changes.append((tid, True))
            elif st.voice and (not ok or sd < OFF_THRESHOLD) and now - st.since >= MIN_ON_SECONDS:
                st.voice = False
                changes.append((tid, False))
        return changes
