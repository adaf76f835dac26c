"""Typed access to the native load plane (``switchboard._native.core.LoadPlane``).

The load plane lives in ``_native/client.pyx`` (compiled into the one native module); see its
header comment for what it does per packet and why. This module gives the benchmark's Python
a typed view of it (a Protocol, so ``mypy --strict`` checks our calls even while the native
module's stub does not list the class) and one factory with the benchmark's defaults.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import numpy as np
from switchboard._native import core as _core
from switchboard._native.core import SrtpContext

# The native module's stub (core.pyi) does not list the load plane yet: reach it untyped here,
# and type it with the Protocol below.
_native: Any = _core

#: Column names of ``LoadPlane.user_counters``.
USER_COUNTERS: tuple[str, ...] = tuple(_native.LP_USER_COUNTERS)


class LoadPlaneApi(Protocol):
    """The methods of ``_native.core.LoadPlane`` the benchmark uses."""

    @property
    def event_fd(self) -> int: ...
    @property
    def n_users(self) -> int: ...
    @property
    def n_senders(self) -> int: ...
    @property
    def realtime_scheduling(self) -> bool: ...
    @property
    def user_counters(self) -> np.ndarray: ...

    def add_user(self, fd: int, rtcp_ssrc: int) -> int: ...
    def set_user_keys(self, uid: int, inbound: SrtpContext, outbound: SrtpContext) -> None: ...
    def set_user_extensions(self, uid: int, twcc_out: int = 0, twcc_in: int = 0) -> None: ...
    def add_sender(self, uid: int, ssrc: int, kind: int, pt: int, clock_rate: int, interval: float,
                   burst: int, payload_len: int, *, audio_level_id: int = 0, mid_id: int = 0,
                   mid: bytes = b"", rid_id: int = 0, rid: bytes = b"", nack_ring: bool = False) -> int: ...
    def set_sender_active(self, sidx: int, active: bool) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def poll_events(self) -> list[tuple[int, int, bytes]]: ...
    def window_begin(self) -> None: ...
    def window_end(self) -> None: ...
    def delay_histogram(self) -> tuple[np.ndarray, int, float, float]: ...
    def slow_packets(self) -> list[tuple[float, float, int, int]]: ...
    def streams(self) -> list[dict[str, Any]]: ...
    def senders(self) -> list[dict[str, Any]]: ...
    def stats(self) -> dict[str, Any]: ...


def new_load_plane(max_users: int, max_senders: int, *, max_streams: int = 16, poll_us: float = 100.0,
                   rtcp_interval: float = 1.0, rt_priority: int = 0) -> LoadPlaneApi:
    """A LoadPlane sized for ``max_users`` users and ``max_senders`` streams they send."""
    plane = _native.LoadPlane(max_users, max_senders, max_streams=max_streams, poll_us=poll_us,
                                        rtcp_interval=rtcp_interval, rt_priority=rt_priority)
    return cast(LoadPlaneApi, plane)


def build_twcc_feedback(sender_ssrc: int, media_ssrc: int, seqs: list[int], arrivals_ns: list[int],
                        fb_count: int = 0) -> bytes:
    """The plaintext transport-cc feedback packet the load plane would send (test hook)."""
    return cast(bytes, _native.build_twcc_feedback(sender_ssrc, media_ssrc, seqs, arrivals_ns,
                                                              fb_count))
