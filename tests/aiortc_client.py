"""aiortc as an independent WebRTC client of the RTC server, speaking the
same flow as Mattermost's RTCPeer: a ``calls-dc`` data channel in the first
offer, SDP over the host relay (here: direct calls), answering the server's
offers, and the calls-dc ping. Test-only; aiortc is a test dependency."""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from switchboard.signaling.rtc import Message, MessageType, RtcServer, SessionConfig

# aioice skips loopback when gathering; tests run on loopback only.
_orig_get_host_addresses = aioice.ice.get_host_addresses


def loopback_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    return ["127.0.0.1"]


aioice.ice.get_host_addresses = loopback_only  # type: ignore[assignment]


class ToneTrack(MediaStreamTrack):
    """A sine tone as 20 ms Opus-ready frames (s16 mono 48 kHz)."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        target = self._start + self._pts / 48000
        delay = target - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(960) + self._pts) / 48000
        samples = (self.amplitude * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


class ColorBarsTrack(MediaStreamTrack):
    """A small moving test picture for VP8 (a stand-in screen share)."""

    kind = "video"

    def __init__(self, fps: int = 15) -> None:
        super().__init__()
        self.fps = fps
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._n / self.fps - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        img = np.zeros((240, 320, 3), dtype=np.uint8)
        img[:, :, 0] = (np.arange(320)[None, :] + self._n * 4) % 256
        img[:, :, 1] = 128
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self._n * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


async def wait_for(
    cond: Callable[[], bool],
    timeout: float = 20.0,
    step: float = 0.05,
    what: str | Callable[[], str] = "",
) -> None:
    """Poll ``cond`` until true; on timeout fail saying ``what`` (a callable is evaluated then)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"condition not met in {timeout} s: {detail}")
        await asyncio.sleep(step)


def dominant_frequency(samples: np.ndarray, rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


class AiortcClient:
    """One participant. ``server.on_message`` must route to :meth:`on_server_message`."""

    def __init__(self, server: RtcServer, session_id: str, call_id: str = "call1", user_id: str | None = None,
                 group_id: str = "default") -> None:
        self.server = server
        self.cfg = SessionConfig(group_id, call_id, user_id or f"user-{session_id}", session_id)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.dc = self.pc.createDataChannel("calls-dc")
        self.received: dict[str, list[Any]] = {}
        self.audio: dict[str, list[np.ndarray]] = {}
        self.video_frames: dict[str, int] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.pongs = 0
        self.connected = asyncio.Event()
        self.dc_open = asyncio.Event()
        self.closed_reason: str | None = None
        self._lock = asyncio.Lock()
        self.dc.on("open", self.dc_open.set)
        self.dc.on("message", self._on_dc_message)

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.ensure_future(self._consume(track)))

    def _on_dc_message(self, message: Any) -> None:
        if message == "pong":
            self.pongs += 1

    async def _consume(self, track: MediaStreamTrack) -> None:
        key = track.id
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "audio":
                pcm = frame.to_ndarray().reshape(-1).astype(np.float64)
                channels = len(frame.layout.channels)
                self.audio.setdefault(key, []).append(pcm[::channels])
            else:
                self.video_frames[key] = self.video_frames.get(key, 0) + 1

    def send(self, mtype: int, data: bytes = b"") -> None:
        c = self.cfg
        self.server.handle_message(Message(c.group_id, c.user_id, c.session_id, c.call_id, mtype, data))

    async def join(self, *tracks: MediaStreamTrack, stream_id: str | None = None) -> None:
        self.server.init_session(self.cfg)
        for t in tracks:
            self.pc.addTrack(t)
        await self.offer()

    async def offer(self) -> None:
        async with self._lock:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            self.send(MessageType.SDP, json.dumps({"type": "offer", "sdp": self.pc.localDescription.sdp}).encode())

    async def on_server_message(self, msg: Message) -> None:
        if msg.type != MessageType.SDP:
            return
        obj = json.loads(msg.data)
        if self.pc.signalingState == "closed":
            return
        async with self._lock:
            await self.pc.setRemoteDescription(RTCSessionDescription(obj["sdp"], obj["type"]))
            if obj["type"] == "offer":
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                self.send(MessageType.SDP,
                          json.dumps({"type": "answer", "sdp": self.pc.localDescription.sdp}).encode())

    def frequencies(self) -> dict[str, float]:
        out = {}
        for key, frames in self.audio.items():
            if len(frames) >= 25:
                out[key] = dominant_frequency(np.concatenate(frames[-25:]))
        return out

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.pc.close()


class Hub:
    """Routes the server's outgoing messages to the right aiortc client."""

    def __init__(self) -> None:
        self.clients: dict[str, AiortcClient] = {}
        self.vad: list[tuple[str, int]] = []
        self.closed: list[tuple[str, str]] = []

    def on_message(self, msg: Message) -> None:
        if msg.type in (MessageType.VOICE_ON, MessageType.VOICE_OFF):
            self.vad.append((msg.session_id, msg.type))
        client = self.clients.get(msg.session_id)
        if client is not None:
            asyncio.ensure_future(client.on_server_message(msg))

    def on_close(self, cfg: SessionConfig, reason: str) -> None:
        self.closed.append((cfg.session_id, reason))
        client = self.clients.get(cfg.session_id)
        if client is not None:
            client.closed_reason = reason
