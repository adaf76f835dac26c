"""Python handles on the test pages and the server, for the scenarios.

``Harness`` owns the relay (and so the ``RtcServer``), the browser and the participants (one
browser context per participant: one Chromium process, isolated pages). ``Participant`` calls
``window.sb`` in its page. ``wait_until`` polls a condition with a generous deadline: the
machine is small and shared, so scenarios assert on stats and states, never on durations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, BrowserContext, Page
from switchboard.signaling.rtc import RtcServer
from switchboard.signaling.session import RtcSession

from . import png
from .relay import Relay

T = TypeVar("T")


class ScenarioFailure(AssertionError):
    """A scenario expectation that did not hold; the message says which."""


async def wait_until(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 30.0, interval: float = 0.2
) -> T:
    """Poll ``check`` until it returns something truthy; raise ScenarioFailure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ScenarioFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


class Participant:
    """One RTCPeer page. ``name`` is its session id (and, prefixed, its user id)."""

    def __init__(self, harness: Harness, name: str, context: BrowserContext, page: Page) -> None:
        self.harness = harness
        self.name = name
        self.context = context
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda m: self._note(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self._note(f"pageerror: {e}"))

    def _note(self, line: str) -> None:
        self.console.append(line)
        del self.console[:-100]

    async def sb(self, method: str, *args: Any) -> Any:
        """Call ``window.sb.<method>(...args)`` in the page and return its (JSON) result."""
        return await self.page.evaluate(f"(args) => window.sb.{method}(...args)", list(args))

    @property
    def session(self) -> RtcSession | None:
        return self.harness.server.sessions.get(self.name)

    async def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.sb("summary")
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.sb("stats")
        return result

    def senders_by_mid(self) -> dict[str, tuple[str, str]]:
        """mid -> (sending session id, track type) for what the server forwards to us."""
        s = self.session
        if s is None:
            return {}
        return {
            sub.mid: (sub.track.session.session_id, sub.track.type)
            for sub in s.subscriptions.values() if sub.mid is not None
        }

    async def heard(self) -> dict[str, dict[str, Any]]:
        """Sending session -> its inbound-rtp audio stats in our page."""
        senders = self.senders_by_mid()
        out: dict[str, dict[str, Any]] = {}
        for a in (await self.stats())["audioIn"]:
            sender = senders.get(a["mid"])
            if sender is not None and sender[1] == "voice":
                out[sender[0]] = a
        return out

    async def screenshot(self, label: str, mid: str | None = None) -> dict[str, Any]:
        """Save PNGs of the page and of the <video> showing ``mid`` (default: the first one)
        under the artifacts directory; return the luma statistics of the video's picture."""
        page_png = await self.page.screenshot(type="png")
        (self.harness.artifacts / f"{label}-{self.name}.png").write_bytes(page_png)
        selector = "video" if mid is None else f'video[data-mid="{mid}"]'
        video_png = await self.page.locator(selector).first.screenshot(type="png")
        path = self.harness.artifacts / f"{label}-{self.name}-video.png"
        path.write_bytes(video_png)
        info: dict[str, Any] = {"path": str(path), **png.luma_stats(video_png)}
        return info


class Harness:
    """What a scenario gets: the server, the relay, a browser, the participants."""

    def __init__(self, relay: Relay, browser: Browser, artifacts: Path) -> None:
        self.relay = relay
        self.browser = browser
        self.artifacts = artifacts
        self.participants: dict[str, Participant] = {}

    @property
    def server(self) -> RtcServer:
        return self.relay.server

    async def join(self, name: str, *, call: str = "call1", simulcast: bool = False) -> Participant:
        """Open a page for ``name`` and join the call (the RTCPeer's first offer follows)."""
        context = await self.browser.new_context(viewport={"width": 1320, "height": 400})
        page = await context.new_page()
        p = Participant(self, name, context, page)
        self.participants[name] = p
        await page.goto(f"{self.relay.url}?session={name}&call={call}")
        await p.sb("join", {"simulcast": simulcast})
        return p

    async def connected(self, *names: str, timeout: float = 40.0) -> None:
        """Wait until each page's RTCPeer is connected and the server saw its calls-dc open."""
        for name in names:
            p = self.participants[name]

            async def ready(p: Participant = p) -> bool:
                s = p.session
                summary = await p.summary()
                if summary["signalErrors"] or summary["closed"] or summary["serverClose"]:
                    raise ScenarioFailure(f"{p.name} failed to connect: {self.describe_failure(summary)}")
                return bool(summary["connected"] and s is not None and s.dc is not None and s.tracks_ready)

            await wait_until(ready, f"{name} to connect and open calls-dc", timeout)

    async def settled(self, name: str, timeout: float = 20.0) -> None:
        """Wait until no server offer is pending for ``name`` and its page is in 'stable'."""
        p = self.participants[name]

        async def idle() -> bool:
            s = p.session
            if s is None:
                raise ScenarioFailure(f"the server closed {name}'s session: {self.relay.traffic_of(name).closed}")
            # private state of RtcSession, read defensively: is another server offer coming?
            task = getattr(s, "_negotiator", None)
            busy = getattr(s, "_needs_offer", False) or (task is not None and not task.done())
            server_idle = s.neg.pending_offer is None and not busy
            summary = await p.summary()
            if summary["signalErrors"]:
                raise ScenarioFailure(f"{name}: {self.describe_failure(summary)}")
            return server_idle and summary["signalingState"] == "stable"

        await wait_until(idle, f"{name}'s negotiation to settle", timeout, interval=0.1)

    @staticmethod
    def describe_failure(summary: dict[str, Any]) -> str:
        parts = []
        for e in summary.get("signalErrors", []):
            parts.append(f"setting the {e['type']} failed: {e['message']}")
        parts += [f"RTCPeer error: {e}" for e in summary.get("peerErrors", [])]
        if summary.get("closed"):
            parts.append(f"RTCPeer closed: {summary['closed']}")
        if summary.get("serverClose"):
            parts.append(f"server closed the session: {summary['serverClose']}")
        return "; ".join(parts) or "no error reported"

    async def diagnostics(self) -> dict[str, Any]:
        """Everything useful when a scenario fails: page states, logs, SDPs, server state."""
        out: dict[str, Any] = {"relay_errors": self.relay.errors}
        for name, p in self.participants.items():
            entry: dict[str, Any] = {"console": p.console[-30:]}
            try:
                entry["summary"] = await p.summary()
                entry["page"] = await p.sb("diagnostics")
                entry["stats"] = await p.stats()
            except Exception as exc:  # noqa: BLE001 - the page may be gone: report what we can
                entry["error"] = f"{type(exc).__name__}: {exc}"
            t = self.relay.traffic_of(name)
            entry["traffic"] = {
                "server_offers": t.server_offers, "client_answers": t.client_answers,
                "client_offers": t.client_offers, "server_answers": t.server_answers,
                "closed": t.closed,
                "last_sdps": [{"dir": d, "type": k, "sdp": sdp} for _, d, k, sdp in t.sdps],
            }
            s = p.session
            if s is not None:
                entry["server"] = {
                    "transport": s.transport.state.value,
                    "dc_open": s.dc is not None,
                    "mids": list(s.neg.mids),
                    "out_tracks": sorted(s.neg.out_tracks),
                    "pending_offer": s.neg.pending_offer is not None,
                    "published": [f"{t.type}@{t.mid}" for t in s.published.values()],
                    "subscriptions": [f"{sub.track.label}@{sub.mid}" for sub in s.subscriptions.values()],
                }
            out[name] = entry
        metrics = self.server.metrics
        out["server_errors"] = {f"{g}/{k}": n for (g, k), n in getattr(metrics, "errors", {}).items()}
        return out

    async def close(self) -> None:
        for p in self.participants.values():
            await p.context.close()
